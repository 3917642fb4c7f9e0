"""Part 0 of the course: the laboratory itself."""
