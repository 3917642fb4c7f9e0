"""Part 6 of the course: advanced PyTorch, the forbidden arts."""
