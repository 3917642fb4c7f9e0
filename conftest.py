"""Shared pytest set-up: every doctest starts from the same seed and the same print options."""

import functools
import os
import sys

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run and every machine: a red build is reproducible.
settings.register_profile("course", derandomize=True, deadline=None, database=None, max_examples=60)
# CI runs the same properties on fewer examples, to keep the whole suite inside its time budget.
settings.register_profile("ci", parent=settings.get_profile("course"), max_examples=10)
settings.load_profile("ci" if os.environ.get("CI") else "course")

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """Set PyTorch up in every process that runs tests.

    The main process of pytest-xdist runs none, so it does not import PyTorch: the test processes it
    starts, which do, start a second sooner. In each of them, one thread: the suite runs one test
    process per core, and a second PyTorch thread in each would only fight the other process for the
    same cores, which makes small operations many times slower.
    """
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        return
    import torch

    torch.set_num_threads(1)


@functools.cache
def _accelerated() -> bool:
    """Whether an accelerator can run here (see `_reseed`)."""
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available() or (
        hasattr(torch, "xpu") and torch.xpu.is_available()
    )


def _reseed() -> None:
    """``torch.manual_seed(0)``: in full where an accelerator is present, else the CPU generator's part.

    ``torch.manual_seed`` also queues the seed for each accelerator PyTorch was built for and has not
    started, and each queued call formats the whole Python stack, in case it fails later: before every
    test, 60 frames deep, three times over, a tenth of a millisecond grows to several. Where no
    accelerator can run, the CPU's generator is all there is to seed.
    """
    import torch

    if _accelerated():
        torch.manual_seed(0)
    else:
        torch.random.default_generator.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_laboratory():
    """Reseed and reset print options, so no example depends on the one that ran before it."""
    import torch

    _reseed()
    torch.set_printoptions(profile="default")
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_printoptions(profile="default")
    torch.set_default_dtype(torch.float32)


# The longest tests go first: with the suite spread over every core, the site build (one module, one
# worker) then runs beside everything else instead of after it.
LONG_POLES = ("tests/test_site.py", "tests/test_labs.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return LONG_POLES.index(path) if path in LONG_POLES else len(LONG_POLES)

    items.sort(key=rank)  # a stable sort: every other test keeps its order


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End a pytest-xdist worker as soon as its results are sent and pytest has cleaned up after itself.

    What is left is the interpreter's own teardown: freeing every module, tensor and compiled graph one
    by one, seconds per worker at the very end of the suite, which the main process waits for. Nothing of
    the run is lost: the worker reported its tests and coverage when its session finished.
    """
    if hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
