"""Part 5 of the course: diffusion models, order from noise."""
