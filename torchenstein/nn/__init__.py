"""Part 2 of the course: torch.nn, building brains."""
