"""Part 1 of the course: tensors, the primordial ooze."""
