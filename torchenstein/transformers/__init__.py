"""Part 4 of the course: Transformers, the attention machine."""
