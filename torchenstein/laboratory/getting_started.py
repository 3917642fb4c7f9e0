r"""
# Getting Started: Switching On the Laboratory

!!! torchenstein "The Professor speaks"
    Welcome, apprentice! Before we bring a single network to life, we check the instruments: which
    PyTorch hums inside your machine, how many threads it may use, and whether a GPU waits in the dark.
    Then we summon a first tensor, time it with an honest stopwatch, and learn to read these pages. A
    scientist who does not know his apparatus measures nothing but his own illusions. Mwahahaha!

**You will learn to**

- check which PyTorch you have, its build, its threads and its devices, in a report written from scratch;
- summon a tensor, read its shape, dtype and device, and move it to the best device the machine has;
- time a matrix product on the CPU (and the GPU, if you have one) and turn seconds into GFLOP/s;
- find your way around a lesson page, its notebook, the labs, the challenges and the `torchenstein`
  command;
- dodge Dr. Hammer's first traps: the unused GPU, the stopwatch that stops too early, and the device that
  is not equal to itself.

## Six words before we start

You know Python and a little NumPy; this page needs six words of PyTorch's:

- A **tensor** is a grid of numbers of one kind, with any number of dimensions: a single number, a vector,
  a matrix, a stack of matrices... It is PyTorch's NumPy array, and it knows which device holds it.
- Its **shape** is its size along each dimension: 2 rows of 3 numbers make shape `(2, 3)`.
- Its **dtype** (data type) is the kind of number each element is stored as: `torch.float32` (a 32-bit
  floating-point number, PyTorch's default for decimals), `torch.int64` (a 64-bit integer), `torch.bool`...
- A **device** is the hardware whose memory holds a tensor's numbers and which does its arithmetic.
- The **CPU** (central processing unit) is the general-purpose processor of every computer, made of a few
  **cores** that each run a program on their own. A **GPU** (graphics processing unit) is a separate chip
  with its own memory and thousands of small arithmetic units that apply one operation to many numbers at
  once, as neural networks need. PyTorch calls NVIDIA's GPUs `cuda`, after **CUDA**, NVIDIA's
  platform for programming them (AMD's GPUs answer to `cuda` too, in ROCm builds), and an Apple-silicon
  Mac's GPU `mps`, after Apple's Metal Performance Shaders.
- A **thread** is one sequence of instructions run by a core. Several threads keep several cores busy:
  PyTorch shares out a large operation on the CPU among a pool of threads.

## Check the instruments

### Which PyTorch, built for what

PyTorch comes in builds: one for the CPU only, others for a particular CUDA (or ROCm) version.
`torch.version.cuda` names that version, and is `None` in a CPU-only build. Apple's GPU is reached
through `torch.backends.mps`, which builds older than 1.12 lack, so careful code asks before touching it.
In the examples, a `...` in the output stands for whatever differs between machines; run them for yours:

```pycon
>>> import torch
>>> mps = getattr(torch.backends, "mps", None)          # absent from builds older than 1.12
>>> mps_available = mps is not None and mps.is_available()
>>> print(f"torch {torch.__version__}; CUDA build: {torch.version.cuda}; MPS available: {mps_available}")
torch ...; CUDA build: ...; MPS available: ...
>>> print(f"CUDA available: {torch.cuda.is_available()}")
CUDA available: ...

```

Without an NVIDIA GPU (or its driver), even a CUDA build answers `False` to `torch.cuda.is_available()`:
the build is a promise, the GPU is the fact.

### Threads: how many hands the CPU lends

```pycon
>>> import os
>>> threads = torch.get_num_threads()
>>> print(f"PyTorch uses {threads} threads; this machine has {os.cpu_count()} logical cores")
PyTorch uses ... threads; this machine has ... logical cores
>>> print(f"at least one thread: {threads >= 1}")
at least one thread: True

```

PyTorch usually starts with a thread per physical core (`os.cpu_count()` counts logical cores, which can
be twice as many). The count matters twice. A large CPU operation, such as a matrix product, is shared
among the threads, so their number caps its speed (the figure below times one thread against all). And
every PyTorch program assumes all the cores are its own: run four experiments at once and their threads
queue for the cores. `torch.set_num_threads(n)`, or `OMP_NUM_THREADS=n` set before Python starts, lowers
the count.

### Devices, and the one the course picks

Every lesson asks one function where tensors should live: [`pick_device`][torchenstein.lab.pick_device],
from the shared helpers of [the laboratory bench](../../lab.md). It takes CUDA if PyTorch can use it, then
MPS, then the CPU, which always exists; [`device_available`][torchenstein.lab.device_available] answers
for one kind:

```pycon
>>> from torchenstein.lab import DEVICE_PREFERENCE, device_available, pick_device
>>> print({kind: device_available(kind) for kind in DEVICE_PREFERENCE})
{'cuda': ..., 'mps': ..., 'cpu': True}
>>> device = pick_device()
>>> print(f"the course will use: {device}")
the course will use: ...
>>> pick_device("cpu")                                  # or insist on one
device(type='cpu')

```

To overrule the choice everywhere for a whole run, set the environment variable `TORCHENSTEIN_DEVICE`,
for instance to run this lesson on the CPU of a machine with a GPU:

```bash
TORCHENSTEIN_DEVICE=cpu torchenstein run getting_started
```

### A laboratory report, from scratch

[`laboratory_report`][torchenstein.laboratory.getting_started.laboratory_report] gathers all of this into
a [`LaboratoryReport`][torchenstein.laboratory.getting_started.LaboratoryReport], a dataclass of plain facts
that prints as a short report. The page checks only what every machine shares:

```pycon
>>> from dataclasses import fields
>>> from torchenstein.laboratory.getting_started import laboratory_report
>>> report = laboratory_report()
>>> print(report)
torch ... (...)
threads: ... for PyTorch's operations, ... cores on this machine
devices: cuda ..., mps ..., cpu yes
the course will use: ...
>>> [field.name for field in fields(report)]
['torch_version', 'build', 'cuda_version', 'threads', 'cpu_cores', 'devices', 'gpu_names', 'picked', 'override']
>>> {"cpu available": report.devices["cpu"], "picked a known kind": report.picked.type in report.devices,
...  "threads is a positive int": isinstance(report.threads, int) and report.threads >= 1}
{'cpu available': True, 'picked a known kind': True, 'threads is a positive int': True}

```

The command `torchenstein doctor` prints the same facts, plus the course's other packages and what is
missing; the tests check that the two agree.

## Summon a first tensor

`torch.tensor` copies Python numbers, nested lists or a NumPy array into a tensor, picks the dtype from
the data (a decimal point makes `float32`) and, unless told otherwise, puts it on the CPU. `.to(device)`
makes a copy on another device:

```pycon
>>> x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
>>> x.shape
torch.Size([2, 3])
>>> x.dtype
torch.float32
>>> x.device
device(type='cpu')
>>> y = x.to(device)                                     # a copy on the chosen device; x stays put
>>> print(f"y is on the chosen device: {y.device.type == device.type}; x is still on: {x.device}")
y is on the chosen device: True; x is still on: cpu
>>> (2 * y).sum().item()                                 # computed where y lives; .item() brings it home
42.0
>>> x.to("cpu") is x                                     # already there: no copy, the same tensor back
True

```

An operation runs where its tensors live, and they must all live on one device (except a tensor holding
a single number with no dimensions, which may join from the CPU like a Python number). On a machine with a
CUDA GPU, adding a GPU tensor to a CPU tensor raises

    RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!

[`device_clash`][torchenstein.laboratory.getting_started.device_clash] tries exactly that and returns the
complaint. The CPU has nothing to clash with, so the check below runs only where a GPU exists:

```pycon
>>> from torchenstein.laboratory.getting_started import device_clash
>>> print(device_clash("cpu"))                           # two CPU tensors always meet
None
>>> if torch.cuda.is_available():
...     assert device_clash("cuda").startswith("Expected all tensors to be on the same device")

```

## Time a matrix product

A **FLOP** is one floating-point operation: an addition or a multiplication. A product of two `(n, n)`
matrices has $n^2$ entries, each a sum of $n$ products, counted as $2n$ operations (a multiplication and an
addition per term), so it costs

$$
\text{FLOPs} = 2n^3, \qquad \text{GFLOP/s} = \frac{2n^3}{\text{seconds} \cdot 10^9},
$$

where GFLOP/s (billions of operations per second) is the speed we compare. PyTorch's own counter,
`torch.utils.flop_counter.FlopCounterMode`, counts the same (the tests check it):

```pycon
>>> n = 256
>>> print(f"an ({n}, {n}) @ ({n}, {n}) product: 2n³ = {2 * n**3:,} FLOPs")
an (256, 256) @ (256, 256) product: 2n³ = 33,554,432 FLOPs

```

[`time_it`][torchenstein.lab.time_it] is the stopwatch, and it returns the median of several runs in
seconds. It runs the work untimed first, a **warm-up**, because a first run pays one-off costs (loading
libraries, choosing a method) that later runs do not; and it **synchronises**, waiting for the GPU to
finish before it reads the clock, because a GPU works through a queue and Python moves on as soon as the
work is queued. Later parts of the course measure more carefully still.
[`time_matmul`][torchenstein.laboratory.getting_started.time_matmul] times one product with it. Your
numbers are your machine's, so the page prints only what every machine shares:

```pycon
>>> from torchenstein.laboratory.getting_started import time_matmul
>>> cpu = time_matmul(256, "cpu")
>>> print(f"CPU: {cpu.gflops:.1f} GFLOP/s, {cpu.seconds:.2e} s per product")
CPU: ... GFLOP/s, ... s per product
>>> {"seconds > 0": cpu.seconds > 0, "GFLOP/s = 2n³ / seconds / 1e9": cpu.gflops == 2 * 256**3 / cpu.seconds / 1e9}
{'seconds > 0': True, 'GFLOP/s = 2n³ / seconds / 1e9': True}
>>> best = time_matmul(256, device)                      # the GPU, where there is one
>>> best.gflops > 0
True
>>> time_matmul(0, "cpu")
Traceback (most recent call last):
...
ValueError: n must be at least 1, got 0

```

[`plot_matmul_speed`][torchenstein.laboratory.getting_started.plot_matmul_speed] times growing products on
the CPU, with all its threads and with one, and on a GPU if there is one. This figure was measured on the
machine that built the site; draw yours with `torchenstein figures torchenstein.laboratory.getting_started`.

![GFLOP/s against matrix size n, 32 to 512, of a float32 matrix product on the machine that built this page: the CPU with all its threads, the CPU with one thread, and the GPU if it has one.](plot_matmul_speed.svg)

Small products spend much of their time on fixed costs (calling into PyTorch, launching work on a GPU),
so speed tends to grow with $n$: a GPU can lose to the CPU on small matrices and win by far on large ones.
The CPU lines tell the story of threads: on an idle machine all the threads finish a product sooner, but a
product is done only when its slowest thread is, so on a crowded machine one thread can beat them all.
Believe your own measurements, not anyone's figure, mine included.

## How to read these pages

**The lesson text** is the docstring of a Python module of the package `torchenstein`. In an example,
`>>>` starts a line you type, `...` continues it, and the rest is what Python prints. Every example is a
test (a **doctest**), so what a page prints, PyTorch printed. A doctest line that prints nothing means the
check passed: `assert` and `torch.testing.assert_close` are silent when all is well. Examples that draw
random numbers first write `_ = torch.manual_seed(0)`: the seed makes the "random" numbers the same on
every run, and `_`, Python's name for a value nobody needs, hides the `Generator` that `manual_seed`
returns, which the prompt would otherwise print.

```pycon
>>> _ = torch.manual_seed(0)
>>> first = torch.rand(3)
>>> _ = torch.manual_seed(0)
>>> assert torch.equal(torch.rand(3), first)             # silent: the same numbers again

```

**The apparatus.** Below the text, *The apparatus* shows every function and class of the lesson in source
order, with its documentation and examples, and a link, "source, lines a–b", to the **annotated source**:
the code with its comments set as prose beside it, each definition linking back to the lesson page.

**The notebook.** The tip "Run this lesson yourself" on each lesson page links to its Jupyter notebook:
the text, every example and every figure, in page order. Download it and run it top to bottom with the
course installed ([Running the examples](../../running-examples.md)); examples that fail on purpose print
their errors instead of stopping the run.

**The labs.** Experiments too long for an example (training for minutes, sweeping a setting) are labs,
shown after a part's lessons as notebooks executed once, outputs and all. `torchenstein lab NAME` runs one
on your machine and writes its notebook; `--smoke` makes it a quick, tiny run.

**The challenges.** Every lesson ends with one to three functions for you to write. The Professor's
solution sits in the source (peek only when stuck) beside a checker, `check_<name>`, whose
`AssertionError` names the case you failed and why. Put your functions, named after the challenges, in a
file and run `torchenstein check my_answers.py`: one line, `PASS` or `FAIL`, per challenge.

**Dr. Hammer's traps.** Dr. Rudolf Hammer, the Professor's rival from
[the origin story](../../origin-story.md), whose leaky training loop once won him a paper, cuts every
corner there is. Each lesson shows his mistakes failing for real, then fixed.

**The `torchenstein` command** comes with the course:

| command | what it does |
| --- | --- |
| `torchenstein list` | the course map: every part, lesson and lab |
| `torchenstein run getting_started` | one lesson's examples and its tests, verbosely |
| `torchenstein check my_answers.py` | your answers to the challenges, checked |
| `torchenstein lab NAME` | execute a lab and write its notebook (`--smoke` for a quick run) |
| `torchenstein figures` | draw every figure of the course into `figures/` |
| `torchenstein doctor` | versions, threads, devices and what is missing: the report above, and more |

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: a GPU in the machine is not a GPU in the code"
    Dr. Hammer's new server has a GPU, `torch.cuda.is_available()` says `True`, and his experiment is as
    slow as on his laptop. `is_available` answers a question; it moves nothing. A tensor is made on the
    CPU unless told otherwise, and everything computed from it stays there. Say where:

    ```pycon
    >>> weights = torch.ones(3)                          # made wherever the default is: the CPU
    >>> weights.device
    device(type='cpu')
    >>> weights = torch.ones(3, device=device)           # made on the chosen device
    >>> weights.device.type == device.type
    True

    ```

!!! hammer "Dr. Hammer's trap: the stopwatch that stops too early"
    Dr. Hammer reads the clock, launches a matrix product, reads the clock again, and boasts of his GPU's
    speed. But the product was only queued when Python moved on, so he timed the queueing; and it was the
    first run, which also paid to set the GPU's libraries up. On the CPU an operation is finished when its
    line returns, so there the mistake hides; where a CUDA GPU exists, the tests show his reading far
    below the honest one. `time_it` warms up untimed, synchronises around each run, keeps the median:

    ```pycon
    >>> import time
    >>> from torchenstein.lab import time_it
    >>> a = torch.rand(256, 256, device=device)
    >>> start = time.perf_counter()                      # Hammer: one cold run, no synchronising
    >>> _ = a @ a                                        # on a GPU: queued, perhaps not yet done
    >>> hammer_seconds = time.perf_counter() - start     # on a GPU: the time to queue it
    >>> calls = []
    >>> def product():
    ...     calls.append(1)
    ...     return a @ a
    >>> seconds = time_it(product, repeat=3, warmup=2, device=device)
    >>> print(f"runs: {len(calls)} (2 warm-up, 3 timed); a positive median: {seconds > 0}")
    runs: 5 (2 warm-up, 3 timed); a positive median: True

    ```

!!! hammer "Dr. Hammer's trap: a device that is not equal to itself"
    To be sure, Dr. Hammer starts every step with `assert x.device == pick_device()`. On his laptop it
    holds: the CPU has no number. On the GPU server it fails at the first step, with `x` exactly where it
    should be: `pick_device()` says `cuda`, a tensor names the GPU it sits on, `cuda:0`, and a device
    without an index is not equal to one with it. Compare the kinds instead.

    ```pycon
    >>> chosen, x_device = torch.device("cuda"), torch.device("cuda:0")    # as on the GPU server
    >>> assert x_device == chosen, f"x is on {x_device}, not on {chosen}"
    Traceback (most recent call last):
    ...
    AssertionError: x is on cuda:0, not on cuda
    >>> assert x_device.type == chosen.type                # the fix: compare the kinds
    >>> torch.ones(2).device == torch.device("cpu")        # why the laptop never noticed
    True

    ```

## Challenges

**1. Choose a device by preference.** Write `best_device(preference, available=device_available)`: return,
as a `torch.device`, the first kind in `preference` (a sequence of `"cuda"`, `"mps"` and `"cpu"`, most
wanted first) for which `available(kind)` is true. Raise `TypeError` if `preference` is a string,
`ValueError` if it is empty or names another kind, and `RuntimeError` if none of its kinds is available.
With `available` the checker plays machines with any devices, GPUs you may not have included.

**2. Borrow threads, and give them back.** Write a context manager `using_threads(num_threads)` (see
`contextlib.contextmanager`) that sets PyTorch's thread count inside its `with` block and restores the old
count on leaving, even when an exception escapes the block (it must not swallow it). Raise `TypeError` if
`num_threads` is not an int (`True` included) and `ValueError` if it is below 1.

Check an attempt with `check_best_device(my_function)` or `check_using_threads(my_function)`, or put your
functions in a file and run `torchenstein check my_answers.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.laboratory.getting_started import (
...     best_device, check_best_device, check_using_threads, using_threads)
>>> check_best_device(best_device)
>>> check_using_threads(using_threads)
>>> best_device(("mps", "cpu"), available=lambda kind: kind == "cpu")
device(type='cpu')

```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

from torchenstein.lab import (
    DEVICE_PREFERENCE,
    DEVICE_VARIABLE,
    device_available,
    new_figure,
    pick_device,
    time_it,
)

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class LaboratoryReport:
    """The facts of one machine's laboratory, as `laboratory_report` gathers them.

    Attributes:
        torch_version: ``torch.__version__``, e.g. ``"2.13.0+cpu"``.
        build: ``"CPU only"``, ``"CUDA 12.4"`` or ``"ROCm 6.2"``: what this PyTorch was built for.
        cuda_version: ``torch.version.cuda``: the CUDA version of the build, ``None`` without CUDA.
        threads: the threads PyTorch shares CPU operations among, ``torch.get_num_threads()``.
        cpu_cores: the logical cores of the machine, ``os.cpu_count()`` (``None`` if unknown).
        devices: for each kind the course knows, in its order of preference, whether it is available.
        gpu_names: the names of the CUDA GPUs PyTorch sees, empty without them.
        picked: the device the course will use, ``pick_device()``.
        override: the value of ``TORCHENSTEIN_DEVICE`` when it is set, else ``None``.
    """

    torch_version: str
    build: str
    cuda_version: str | None
    threads: int
    cpu_cores: int | None
    devices: dict[str, bool]
    gpu_names: tuple[str, ...]
    picked: torch.device
    override: str | None

    def __str__(self) -> str:
        # One line per question a learner asks first: which PyTorch, how many threads, which devices,
        # and which one the course will use. The wording of the lines matches `torchenstein doctor`.
        devices = []
        for kind, available in self.devices.items():
            names = f" ({', '.join(self.gpu_names)})" if kind == "cuda" and self.gpu_names else ""
            devices.append(f"{kind} {'yes' if available else 'no'}{names}")
        override = f" ({DEVICE_VARIABLE}={self.override})" if self.override else ""
        return "\n".join(
            [
                f"torch {self.torch_version} ({self.build})",
                f"threads: {self.threads} for PyTorch's operations, {self.cpu_cores} cores on this machine",
                f"devices: {', '.join(devices)}",
                f"the course will use: {self.picked}{override}",
            ]
        )


def laboratory_report() -> LaboratoryReport:
    """Gather which PyTorch this is, what it was built for, its threads and the devices it can use.

    Returns:
        A `LaboratoryReport`; ``print`` it for a readable summary.

    Raises:
        ValueError: if ``TORCHENSTEIN_DEVICE`` names a kind of device the course does not know.
        RuntimeError: if ``TORCHENSTEIN_DEVICE`` names a device this machine does not have.

    Examples:
        >>> report = laboratory_report()
        >>> {"cpu": report.devices["cpu"], "first line": str(report).splitlines()[0].startswith("torch ")}
        {'cpu': True, 'first line': True}
    """
    # A ROCm build (for AMD GPUs) sets torch.version.hip and drives its GPUs through the `cuda` device
    # type; a CUDA build sets torch.version.cuda; a CPU-only build sets neither.
    hip = getattr(torch.version, "hip", None)
    cuda = torch.version.cuda
    build = f"ROCm {hip}" if hip else f"CUDA {cuda}" if cuda else "CPU only"
    # device_available asks each kind in the course's order, and guards torch.backends.mps for builds
    # that predate it, so the report never crashes on an old or unusual PyTorch.
    devices = {kind: device_available(kind) for kind in DEVICE_PREFERENCE}
    gpu_names = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if devices["cuda"] else ()
    return LaboratoryReport(
        torch_version=torch.__version__,
        build=build,
        cuda_version=cuda,
        threads=torch.get_num_threads(),
        cpu_cores=os.cpu_count(),
        devices=devices,
        gpu_names=gpu_names,
        # pick_device reads TORCHENSTEIN_DEVICE itself: the report shows the choice the lessons will make.
        picked=pick_device(),
        override=os.environ.get(DEVICE_VARIABLE) or None,
    )


def device_clash(device: str | torch.device | None = None) -> str | None:
    """Add a tensor on ``device`` to a tensor on the CPU, and return PyTorch's complaint.

    Args:
        device: where the first tensor lives; ``None`` takes `pick_device`'s choice.

    Returns:
        The message of the ``RuntimeError`` PyTorch raised, or ``None`` if the addition went through, as
        it always does when ``device`` is the CPU.

    Raises:
        ValueError: if ``device`` names a kind of device the course does not know.
        RuntimeError: if ``device`` names a device this machine does not have.

    Examples:
        >>> device_clash("cpu") is None
        True
    """
    device = pick_device(device)
    # Two elements each, not one number: a 0-d CPU tensor would be allowed to join, like a Python scalar.
    here, there = torch.ones(2, device=device), torch.ones(2)
    try:
        here + there
    except RuntimeError as err:
        return str(err)
    return None


class MatmulTiming(NamedTuple):
    """How long one ``(n, n) @ (n, n)`` product took, and the speed that makes."""

    seconds: float
    """The median time of one product, in seconds."""
    gflops: float
    """The speed: ``2 * n**3`` floating-point operations over ``seconds``, in billions per second."""


def time_matmul(
    n: int,
    device: str | torch.device | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    repeat: int = 5,
) -> MatmulTiming:
    """Time the product of two random ``(n, n)`` matrices on ``device`` with `torchenstein.lab.time_it`.

    Args:
        n: the size of the square matrices.
        device: where to multiply; ``None`` takes `pick_device`'s choice.
        dtype: a floating-point dtype for the matrices.
        repeat: timed runs after one warm-up run; the median is kept.

    Returns:
        A `MatmulTiming`: seconds per product and GFLOP/s, counting ``2 * n**3`` operations.

    Raises:
        TypeError: if ``n`` or ``repeat`` is not an int, or ``dtype`` is not a floating-point dtype.
        ValueError: if ``n`` or ``repeat`` is below 1.
        RuntimeError: if ``device`` names a device this machine does not have.

    Examples:
        >>> timing = time_matmul(32, "cpu", repeat=2)
        >>> timing.seconds > 0 and timing.gflops > 0
        True
    """
    _check_matmul_args(n, repeat, dtype)
    device = pick_device(device)
    # The matrices are drawn on the CPU from a private generator, then moved: the same numbers on every
    # device, and the global random stream that the examples seed is left alone.
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=generator, dtype=dtype).to(device)  # (n, n)
    b = torch.rand(n, n, generator=generator, dtype=dtype).to(device)  # (n, n)
    # time_it runs one untimed warm-up, then synchronises the device around each timed run, so the
    # clock measures the product and not the queueing of it.
    seconds = time_it(lambda: a @ b, repeat=repeat, warmup=1, device=device)
    # n^2 entries, each n multiplications and (by convention) n additions.
    flops = 2 * n**3
    return MatmulTiming(seconds, flops / seconds / 1e9)


def plot_matmul_speed(sizes: Sequence[int] = (32, 64, 128, 256, 512), repeat: int = 10) -> Figure:
    """Measure and plot GFLOP/s against matrix size on the CPU (all threads, one thread) and any GPU.

    Args:
        sizes: the matrix sizes ``n`` to time, each at least 1.
        repeat: timed runs per point (after one warm-up).

    Returns:
        A figure with one line per device setting.

    Raises:
        ValueError: if ``sizes`` is empty or holds a size below 1, or ``repeat`` is below 1.
    """
    _check_sizes(sizes)
    _check_count(repeat, "repeat")
    all_threads = torch.get_num_threads()
    curves: dict[str, list[float]] = {}
    curves[f"CPU, {all_threads} thread{'s' if all_threads > 1 else ''}"] = [
        time_matmul(n, "cpu", repeat=repeat).gflops for n in sizes
    ]
    # The same products with one thread show what the others were worth. The count is global to the
    # process, so it is put back even if a measurement fails.
    if all_threads > 1:
        torch.set_num_threads(1)
        try:
            curves["CPU, 1 thread"] = [time_matmul(n, "cpu", repeat=repeat).gflops for n in sizes]
        finally:
            torch.set_num_threads(all_threads)
    for kind in ("cuda", "mps"):
        if device_available(kind):
            name = torch.cuda.get_device_name(0) if kind == "cuda" else "Apple GPU"
            curves[f"{kind} ({name})"] = [time_matmul(n, kind, repeat=repeat).gflops for n in sizes]
    fig, (ax,) = new_figure(width=7.0, height=3.8)
    for label, rates in curves.items():
        ax.plot(list(sizes), rates, "o-", label=label)
    # Sizes double from point to point and speeds span orders of magnitude: both axes are logarithmic.
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(sizes), [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set(
        xlabel="matrix size n",
        ylabel="GFLOP/s  (2n³ operations / seconds)",
        title="A float32 (n, n) @ (n, n) product, measured on this machine",
    )
    ax.legend()
    return fig


# Challenges


def best_device(preference: Sequence[str], available: Callable[[str], bool] = device_available) -> torch.device:
    """Challenge solution: the first kind of device in ``preference`` that is available.

    Args:
        preference: kinds of device, ``"cuda"``, ``"mps"`` or ``"cpu"``, most wanted first.
        available: answers whether a kind is available; `torchenstein.lab.device_available` by default.

    Returns:
        The chosen ``torch.device``.

    Raises:
        TypeError: if ``preference`` is a string rather than a sequence of them.
        ValueError: if ``preference`` is empty or names a kind the course does not know.
        RuntimeError: if no kind in ``preference`` is available.

    Examples:
        >>> best_device(("cuda", "cpu"), available=lambda kind: kind == "cpu")
        device(type='cpu')
    """
    kinds = _check_preference(preference)
    # Every kind is checked before any is tried, so a typo late in the list is caught on every machine.
    for kind in kinds:
        if available(kind):
            return torch.device(kind)
    raise RuntimeError(f"none of preference={kinds} is available on this machine")


def check_best_device(candidate: Callable[..., torch.device]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct `best_device`.

    Examples:
        >>> check_best_device(best_device)
    """

    def machine(*kinds: str) -> Callable[[str], bool]:
        return lambda kind: kind in kinds

    cases = [
        (("cuda", "mps", "cpu"), machine("cpu"), "cpu"),
        (("cuda", "mps", "cpu"), machine("cuda", "cpu"), "cuda"),
        (("cuda", "mps", "cpu"), machine("mps", "cpu"), "mps"),
        (("mps", "cuda", "cpu"), machine("cuda", "mps", "cpu"), "mps"),
        (("cpu", "cuda"), machine("cuda", "cpu"), "cpu"),
        (["cuda", "cpu"], machine("cuda", "cpu"), "cuda"),
        (("mps",), machine("mps"), "mps"),
    ]
    for preference, available, expected in cases:
        where = f"best_device({preference!r}) on a machine with {[k for k in DEVICE_PREFERENCE if available(k)]}"
        got = candidate(preference, available=available)
        assert isinstance(got, torch.device), f"{where}: expected a torch.device, got {got!r}"
        assert got == torch.device(expected), (
            f"{where} = {got!r}, expected device(type={expected!r}): the first available kind, in the order "
            "of preference given"
        )
    first = next(kind for kind in DEVICE_PREFERENCE if device_available(kind))
    got = candidate(DEVICE_PREFERENCE)
    assert got == torch.device(first), (
        f"best_device({DEVICE_PREFERENCE}) = {got!r} on this machine, expected device(type={first!r}): "
        "without `available`, ask torchenstein.lab.device_available"
    )
    for bad, error, why in [
        ((), ValueError, "it is empty"),
        (("tpu", "cpu"), ValueError, "'tpu' is not a kind the course knows"),
        (("cpu", "gpu"), ValueError, "'gpu' is not a kind the course knows, even after an available one"),
        ("cuda", TypeError, "a string is not a sequence of kinds"),
        (("cuda", "mps"), RuntimeError, "neither kind is available"),
    ]:
        try:
            candidate(bad, available=machine("cpu"))
        except error:
            continue
        except Exception as err:  # a wrong exception type is a wrong answer, reported as such
            raise AssertionError(
                f"best_device({bad!r}) raised {type(err).__name__}, expected {error.__name__}: {why}"
            ) from err
        raise AssertionError(f"best_device({bad!r}) on a CPU-only machine should raise {error.__name__}: {why}")


@contextmanager
def using_threads(num_threads: int) -> Iterator[None]:
    """Challenge solution: let PyTorch use ``num_threads`` CPU threads inside a ``with`` block.

    Args:
        num_threads: the thread count inside the block.

    Raises:
        TypeError: if ``num_threads`` is not an int.
        ValueError: if ``num_threads`` is below 1.

    Examples:
        >>> before = torch.get_num_threads()
        >>> with using_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    _check_count(num_threads, "num_threads")
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    # finally runs however the block ends, by its last line or by an exception, which then goes on up.
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Boom(Exception):
    """An exception no learner's code raises, thrown inside the block to see that it comes back out."""


def check_using_threads(candidate: Callable[[int], object]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct `using_threads`.

    Examples:
        >>> check_using_threads(using_threads)
    """
    outside = torch.get_num_threads()
    # Start from a count that is neither 1 nor the number of cores, so that "restoring" to either of
    # those by mistake is caught.
    start = max(outside, os.cpu_count() or 1) + 1
    torch.set_num_threads(start)
    try:
        for n in (1, start + 1):
            with candidate(n):
                inside = torch.get_num_threads()
                assert inside == n, f"using_threads({n}): inside the block PyTorch has {inside} threads, expected {n}"
            after = torch.get_num_threads()
            assert after == start, f"using_threads({n}): {after} threads after the block, expected {start} as before"
        try:
            with candidate(1):
                raise _Boom("raised inside the block")
        except _Boom:
            pass
        else:
            raise AssertionError("using_threads(1) swallowed an exception raised inside its block: let it out")
        after = torch.get_num_threads()
        assert after == start, f"after an exception in the block: {after} threads, expected {start} restored"
        with candidate(1):
            with candidate(2):
                assert torch.get_num_threads() == 2, "nested using_threads(2) inside using_threads(1) did not set 2"
            nested = torch.get_num_threads()
            assert nested == 1, f"leaving a nested block should restore the outer block's 1 thread, got {nested}"
        for bad, error in [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)]:
            try:
                with candidate(bad):
                    pass
            except error:
                continue
            except Exception as err:  # a wrong exception type is a wrong answer, reported as such
                raise AssertionError(
                    f"using_threads({bad!r}) raised {type(err).__name__}, expected {error.__name__}"
                ) from err
            raise AssertionError(f"using_threads({bad!r}) should raise {error.__name__}")
        assert torch.get_num_threads() == start, "a refused thread count must leave the count as it was"
    finally:
        torch.set_num_threads(outside)


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_count(value: object, name: str) -> int:
    # A bool is an int to Python, but `repeat=True` is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _check_matmul_args(n: object, repeat: object, dtype: object) -> None:
    _check_count(n, "n")
    _check_count(repeat, "repeat")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")


def _check_sizes(sizes: object) -> None:
    if (
        isinstance(sizes, str)
        or not isinstance(sizes, Sequence)
        or not sizes
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes)
    ):
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes!r}")


def _check_preference(preference: object) -> tuple[str, ...]:
    # A string is a sequence too, of letters: best_device("cuda") would otherwise ask for "c", "u", ...
    if isinstance(preference, str) or not isinstance(preference, Sequence):
        raise TypeError(f"preference must be a sequence of device kinds such as ('cuda', 'cpu'), got {preference!r}")
    kinds = tuple(preference)
    if not kinds:
        raise ValueError(f"preference must name at least one kind of device from {DEVICE_PREFERENCE}, got ()")
    unknown = [kind for kind in kinds if kind not in DEVICE_PREFERENCE]
    if unknown:
        raise ValueError(f"preference must hold kinds from {DEVICE_PREFERENCE}, got {unknown[0]!r} in {kinds}")
    return kinds
