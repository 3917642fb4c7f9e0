"""Part 3 of the course: training, bringing the monster to life."""
