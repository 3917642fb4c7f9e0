"""Shared pytest set-up: every doctest starts from the same seed and the same print options."""

import os

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run and every machine: a red build is reproducible.
settings.register_profile("course", derandomize=True, deadline=None, database=None, max_examples=60)
settings.load_profile("course")

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _fresh_laboratory():
    """Reseed and reset print options, so no example depends on the one that ran before it."""
    torch.manual_seed(0)
    torch.set_printoptions(profile="default")
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_printoptions(profile="default")
    torch.set_default_dtype(torch.float32)
