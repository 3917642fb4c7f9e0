"""The laboratory bench: small helpers every lesson shares.

Choosing a device, seeding every random number generator at once, timing a piece of code honestly,
and drawing figures in the course's style all live here, once, so no lesson copies them.

Examples:
    >>> from torchenstein.lab import pick_device, seed_everything
    >>> pick_device("cpu")
    device(type='cpu')
    >>> _ = seed_everything(0)
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEVICE_PREFERENCE = ("cuda", "mps", "cpu")
"""The order in which the course looks for an accelerator."""

DEVICE_VARIABLE = "TORCHENSTEIN_DEVICE"
"""The environment variable that overrides the automatic choice, e.g. ``TORCHENSTEIN_DEVICE=cpu``."""

SMOKE_VARIABLE = "TORCHENSTEIN_SMOKE"
"""The environment variable that shrinks every lab to a quick run, e.g. ``TORCHENSTEIN_SMOKE=1``."""


def device_available(kind: str) -> bool:
    """Say whether this machine has a device of the given kind.

    Args:
        kind: ``"cuda"``, ``"mps"`` or ``"cpu"``.

    Returns:
        ``True`` when tensors can be placed on that kind of device here.

    Raises:
        ValueError: if ``kind`` is not one of the three.

    Examples:
        >>> device_available("cpu")
        True
        >>> device_available("tpu")
        Traceback (most recent call last):
        ...
        ValueError: kind must be one of ('cuda', 'mps', 'cpu'), got 'tpu'
    """
    if kind not in DEVICE_PREFERENCE:
        raise ValueError(f"kind must be one of {DEVICE_PREFERENCE}, got {kind!r}")
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    return True


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """Choose where tensors should live: CUDA, then Apple's MPS, then the CPU.

    Every lesson that cares about devices asks this one function, so the whole course agrees. Set the
    environment variable ``TORCHENSTEIN_DEVICE`` (say to ``cpu``) to overrule the automatic choice
    everywhere at once.

    Args:
        prefer: a device to insist on (``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"`` or a
            ``torch.device``). ``None`` takes ``TORCHENSTEIN_DEVICE`` if it is set, otherwise the
            best device available.

    Returns:
        The chosen ``torch.device``.

    Raises:
        ValueError: if ``prefer`` names a kind of device this function does not know.
        RuntimeError: if ``prefer`` names a device this machine does not have.

    Examples:
        >>> pick_device("cpu")
        device(type='cpu')
        >>> pick_device().type in DEVICE_PREFERENCE
        True
    """
    if prefer is None:
        prefer = os.environ.get(DEVICE_VARIABLE) or None
    if prefer is None:
        kind = next(k for k in DEVICE_PREFERENCE if device_available(k))
        return torch.device(kind)
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"prefer must name a device such as 'cuda', 'mps' or 'cpu', got {prefer!r}") from err
    if device.type not in DEVICE_PREFERENCE:
        raise ValueError(f"prefer must be one of {DEVICE_PREFERENCE}, got {prefer!r}")
    if not device_available(device.type):
        raise RuntimeError(f"prefer={prefer!r} asks for a {device.type} device, but this machine has none")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's random number generators in one call.

    Args:
        seed: a non-negative integer.

    Returns:
        PyTorch's default CPU generator, now seeded.

    Raises:
        ValueError: if ``seed`` is negative or not an integer.

    Examples:
        >>> _ = seed_everything(3)
        >>> a = torch.rand(2)
        >>> _ = seed_everything(3)
        >>> torch.equal(a, torch.rand(2))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency, but the lab does not insist
        pass
    return torch.manual_seed(seed)


def smoke_run() -> bool:
    """Say whether this is a smoke run: ``TORCHENSTEIN_SMOKE`` is set to anything but ``""`` or ``"0"``.

    A smoke run executes every line of a lab at a size that finishes in seconds, so the test suite can
    prove the lab still works without training for minutes. This is the one place the variable is read.

    Examples:
        >>> import os
        >>> os.environ[SMOKE_VARIABLE] = "1"
        >>> smoke_run()
        True
        >>> del os.environ[SMOKE_VARIABLE]
        >>> smoke_run()
        False
    """
    return os.environ.get(SMOKE_VARIABLE, "") not in ("", "0")


def lab_size(full: int, smoke: int) -> int:
    """Pick a size for a lab: ``full`` normally, ``smoke`` in a smoke run (see `smoke_run`).

    Args:
        full: the size the lab is meant to run at (steps, samples, epochs...).
        smoke: the size that exercises the same code in seconds.

    Raises:
        ValueError: if either size is below 1 or ``smoke`` is larger than ``full``.

    Examples:
        >>> lab_size(2000, 20)
        2000
    """
    if full < 1 or smoke < 1:
        raise ValueError(f"sizes must be at least 1, got full={full}, smoke={smoke}")
    if smoke > full:
        raise ValueError(f"the smoke size must not exceed the full size, got full={full}, smoke={smoke}")
    return smoke if smoke_run() else full


def progress(iterable=None, *, total: int | None = None, desc: str | None = None, **options):
    """A progress bar around a loop: a text bar in the terminal, and in a notebook too unless ipywidgets is there.

    Every long loop of the course (training steps, sampling steps, sweeps) goes through this one
    function. It is tqdm's ``auto`` bar, which picks the widget display in Jupyter when ipywidgets is
    installed and the text one elsewhere; a bar that would only flash past (``total`` under 2) is off,
    and so is every bar when the environment sets ``TQDM_DISABLE=1`` (the site does, drawing figures).

    Args:
        iterable: what to loop over (or ``None`` to update the bar by hand).
        total: the number of steps, when ``iterable`` has no length.
        desc: a label in front of the bar.
        **options: anything else tqdm takes, e.g. ``leave=False``.

    Examples:
        >>> sum(progress(range(3), disable=True))
        3
    """
    import warnings

    # tqdm.auto picks the notebook bar in Jupyter; without ipywidgets it falls back to the text bar, and
    # warns about it. The text bar is what the course wants there too, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if total is not None and total < 2:
        options.setdefault("disable", True)
    # The switch wins over the caller's choice, so no bar anywhere reaches a log that asked for none.
    if os.environ.get("TQDM_DISABLE", "") not in ("", "0"):
        options["disable"] = True
    options.setdefault("dynamic_ncols", True)
    return tqdm(iterable, total=total, desc=desc, **options)


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for every queued kernel on an accelerator to finish (a no-op on the CPU).

    GPUs run asynchronously: without this, a timer measures how long it took to *queue* the work.

    Examples:
        >>> synchronize("cpu")
    """
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":  # pragma: no cover - Apple hardware only
        torch.mps.synchronize()


def time_it(
    fn: Callable[[], object],
    *,
    repeat: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = "cpu",
) -> float:
    """Time a zero-argument function and return the median of ``repeat`` runs, in seconds.

    Warm-up runs come first (they pay for caches, lazy initialisation and kernel selection) and the
    device is synchronised around each run, so the number is the work, not the queueing.

    Args:
        fn: the work to time.
        repeat: how many timed runs; the median is returned.
        warmup: how many untimed runs before them.
        device: the device to synchronise (the work's device).

    Returns:
        The median wall-clock time of one run, in seconds.

    Raises:
        ValueError: if ``repeat`` is below 1 or ``warmup`` below 0.

    Examples:
        >>> t = time_it(lambda: torch.ones(8) + 1, repeat=3)
        >>> t > 0
        True
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more, got {warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# The course palette: mid-tone colours that stay legible on the light figure card in both site themes.
PALETTE = ("#7b2ff7", "#00a884", "#f2542d", "#1f77b4", "#e0a100", "#c2185b", "#5d6d7e")
"""Colours, in the order a figure uses them."""


def _notebook_figure_class() -> type:
    """A matplotlib ``Figure`` that Jupyter shows as a picture when a cell ends with it.

    Jupyter displays an object through its ``_repr_png_`` method. A plain ``Figure`` made without pyplot
    has none, so a notebook cell that ends with ``plot_x()`` would print ``<Figure size ...>``; this one
    draws itself.
    """
    global _FIGURE_CLASS
    if _FIGURE_CLASS is None:
        from matplotlib.figure import Figure

        class NotebookFigure(Figure):
            def _repr_png_(self) -> bytes:
                import io

                buffer = io.BytesIO()
                self.savefig(buffer, format="png", dpi=110)
                return buffer.getvalue()

        _FIGURE_CLASS = NotebookFigure
    return _FIGURE_CLASS


_FIGURE_CLASS: type | None = None


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 7.0, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    """Make a matplotlib figure in the course's style, without touching pyplot's global state.

    Args:
        nrows: rows of axes.
        ncols: columns of axes.
        width: figure width in inches.
        height: figure height in inches.

    Returns:
        The figure and a flat list of its axes, left to right, top to bottom.

    Raises:
        ValueError: if ``nrows`` or ``ncols`` is below 1.

    Examples:
        >>> fig, axes = new_figure(1, 2)
        >>> len(axes)
        2
    """
    if nrows < 1 or ncols < 1:
        raise ValueError(f"nrows and ncols must be at least 1, got nrows={nrows}, ncols={ncols}")
    from cycler import cycler

    fig = _notebook_figure_class()(figsize=(width, height), layout="constrained", facecolor="white")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes:
        ax.set_prop_cycle(cycler(color=PALETTE))
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes
