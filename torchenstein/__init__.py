"""Torchenstein: *Deconstructing Modern Architectures*, a PyTorch course as a Python package.

Each lesson is a module: its docstring is the lesson, its code is what the lesson builds, its examples
are tests. The course order lives in `torchenstein.course`; shared helpers in `torchenstein.lab`.
"""

__version__ = "0.1.0"
