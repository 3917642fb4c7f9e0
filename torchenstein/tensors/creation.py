r"""
# Summoning Tensors: It's Alive!

!!! torchenstein "The Professor speaks"
    Welcome to my laboratory, apprentice! Mind the cables. Every network we will ever build, every
    image it paints and every sentence it writes, is made of one substance: the tensor. Today you learn
    to summon tensors from nothing, to read the certificate each one is born with, and to build
    PyTorch's own summoning spells from scratch, so that no factory function is a mystery to you again.

**You will learn to**

- create tensors from Python data with `torch.tensor`, and predict the dtype it picks;
- fill tensors to order with `zeros`, `ones`, `full` and (carefully!) `empty`;
- lay out ranges with `arange` and `linspace`, and know which endpoints they include;
- write `arange`, `linspace` and `eye` yourself, and prove them equal to PyTorch's;
- draw reproducible random tensors with a private `torch.Generator`;
- share memory with NumPy on purpose, never by accident;
- read a tensor's four birth attributes: shape, dtype, device and `requires_grad`, and know in one minute
  what a gradient, `.backward()`, `.grad` and a leaf are.

## From Python data: `torch.tensor`

`torch.tensor` takes numbers, (nested) lists or a NumPy array, **copies** the data and guesses a dtype:
Python ints become `int64`, Python floats become the default float dtype `float32` (not the `float64`
NumPy would pick), bools become `bool`, and one float in a list of ints makes the whole tensor float.

```pycon
>>> import torch
>>> torch.tensor([1, 2, 3]).dtype
torch.int64
>>> torch.tensor([1, 2.5]).dtype
torch.float32
>>> torch.tensor([[True], [False]]).dtype, torch.tensor(3.0).shape
(torch.bool, torch.Size([]))

```

**How to read the examples** (this holds for every page of the course). A line that starts with `>>>`
(or `...` for its continuation) is Python you can type; the lines under it are what Python prints back.
Every example runs in the course's tests, so what you see is what PyTorch really prints. A line that
prints nothing has succeeded: `torch.testing.assert_close(a, b)`, for instance, is silent when `a` and
`b` agree and raises an error when they do not.

## The birth certificate

Every tensor is born with four attributes you must always be able to read: its `shape`, its `dtype`
(which numbers it can hold), its `device` (which memory it lives in) and `requires_grad` (whether
autograd records what happens to it). [`birth_certificate`][torchenstein.tensors.creation.birth_certificate]
prints all four in one line.

```pycon
>>> from torchenstein.tensors.creation import birth_certificate
>>> print(birth_certificate(torch.tensor([[1, 2, 3], [4, 5, 6]])))
shape=(2, 3) dtype=torch.int64 device=cpu requires_grad=False
>>> print(birth_certificate(torch.zeros(4, dtype=torch.float64, requires_grad=True)))
shape=(4,) dtype=torch.float64 device=cpu requires_grad=True

```

## A one-minute primer on gradients

Training a network means nudging its numbers so that one number, the *loss* (how wrong the network is),
shrinks. The *gradient* of the loss says which way to nudge each number. Several lessons before the
[autograd lesson](../autograd/index.md) touch gradients, so here are the four words they use:

- `requires_grad=True` asks PyTorch to record every operation that uses the tensor;
- `.backward()`, called on a one-element result, walks that record backwards and computes the derivative
  of the result with respect to every recorded input (calling it again *adds* a second helping);
- `.grad` is where that derivative lands: a tensor of the input's shape, one number per element;
- a **leaf** is a tensor you created yourself rather than computed from others; leaves keep a `.grad`,
  intermediate results do not.

```pycon
>>> w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)  # a leaf
>>> y = (w * w).sum()  # y = w0**2 + w1**2 + w2**2, recorded
>>> y.backward()  # dy/dw = 2 * w
>>> w.grad
tensor([2., 4., 6.])
>>> {"w is a leaf": w.is_leaf, "y is a leaf": y.is_leaf}
{'w is a leaf': True, 'y is a leaf': False}

```

Only floating point (and complex) tensors may require gradients: a gradient is a small nudge, and
integers cannot be nudged, so `torch.tensor([1, 2], requires_grad=True)` raises a `RuntimeError`.

## Filled to order: `zeros`, `ones`, `full`, `empty`

These take a shape (as separate numbers or one tuple) and fill it. `full` infers its dtype from the fill
value, like `torch.tensor` does.

```pycon
>>> torch.zeros(3), torch.ones((2,), dtype=torch.int64)
(tensor([0., 0., 0.]), tensor([1, 1]))
>>> torch.full((2, 2), 7)
tensor([[7, 7],
        [7, 7]])
>>> torch.empty(2, 3).shape
torch.Size([2, 3])

```

`torch.empty` only *reserves* memory and writes nothing into it, so its elements are whatever bytes the
last owner of that memory left behind: zeros on a good day, huge numbers or `nan` on a bad one. That is
why we never print them here. Use it only when you will overwrite every element before reading any.

The `_like` family (`zeros_like`, `ones_like`, `full_like`, `empty_like`, `rand_like`, `randn_like`)
copies the shape, dtype and device of an existing tensor, but **not** its `requires_grad`:

```pycon
>>> w = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
>>> print(birth_certificate(torch.zeros_like(w)))
shape=(2, 3) dtype=torch.float64 device=cpu requires_grad=False

```

It copies one thing more, which the birth certificate does not show: the *memory layout*. By default
(`memory_format=torch.preserve_format`) a `_like` tensor keeps the strides of an input that fills its
memory without gaps, so the transpose of a matrix, or an image batch stored channels-last (a layout GPU
convolutions often run faster in), gets a twin laid out the same way; an input with gaps, such as
`x[:, ::2]`, gets plain row-major order, which `memory_format=torch.contiguous_format` asks for always.
(Strides are the step sizes through memory; the lesson [Tensor metamorphosis](../metamorphosis/index.md)
takes them apart.)

```pycon
>>> t = torch.ones(2, 3).t()  # a transposed view: shape (3, 2), column by column in memory
>>> t.stride(), torch.zeros_like(t).stride(), torch.zeros_like(t, memory_format=torch.contiguous_format).stride()
((1, 3), (1, 3), (2, 1))
>>> images = torch.ones(8, 3, 4, 4).to(memory_format=torch.channels_last)
>>> torch.randn_like(images).is_contiguous(memory_format=torch.channels_last)
True

```

## Ranges: `arange` and `linspace`

`torch.arange(start, end, step)` walks from `start` towards `end` in steps of `step` and stops *before*
`end`: the half-open interval $[\text{start}, \text{end})$, exactly like Python's `range`. It makes
$\lceil (\text{end} - \text{start}) / \text{step} \rceil$ elements. `torch.linspace(start, end, steps)`
instead takes the *number* of points and includes **both** endpoints, spaced
$(\text{end} - \text{start}) / (\text{steps} - 1)$ apart.

```pycon
>>> torch.arange(5), torch.arange(10, 0, -3)
(tensor([0, 1, 2, 3, 4]), tensor([10,  7,  4,  1]))
>>> torch.linspace(0, 1, 5)
tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])

```

## From scratch: `arange`, `linspace` and `eye`

Time to build the spells ourselves. All three start from the same primitive, a row of ones summed
cumulatively, which counts $0, 1, 2, \dots$; everything else is arithmetic on that count.
[`arange`][torchenstein.tensors.creation.arange] computes $\text{start} + i \cdot \text{step}$,
[`linspace`][torchenstein.tensors.creation.linspace] walks from both ends towards the middle (so both
endpoints are hit exactly), and [`eye`][torchenstein.tensors.creation.eye] puts a one wherever a row
index equals a column index. They take PyTorch's argument names and refuse the arguments PyTorch refuses,
with a `ValueError` that says why (PyTorch raises a terser `RuntimeError`).

```pycon
>>> from torchenstein.tensors.creation import arange, eye, linspace
>>> torch.equal(arange(10, 0, -3), torch.arange(10, 0, -3))
True
>>> torch.testing.assert_close(arange(-1, 2, 0.3), torch.arange(-1, 2, 0.3))
>>> torch.testing.assert_close(linspace(-2, 5, 8), torch.linspace(-2, 5, 8))
>>> torch.equal(eye(2, 3, dtype=torch.int64), torch.eye(2, 3, dtype=torch.int64))
True
>>> arange(0, 5, 0)
Traceback (most recent call last):
...
ValueError: step must be nonzero, got step=0

```

Integer dtypes hide two surprises, and ours reproduces both. Given float bounds, `arange` walks from the
truncated `start` in truncated steps, but PyTorch counts the *length* differently by width: `int64`
counts it from the truncated bounds, every narrower integer dtype from the bounds as given, in double
precision, like the float dtypes. And `linspace` converts each endpoint to the dtype first, so for
`uint8` a negative int wraps around: `-1` becomes 255, and the range counts *down* from there. (A
float endpoint the dtype cannot hold, such as `-0.5` for `uint8`, is refused by both.)

```pycon
>>> for dtype in (torch.int64, torch.int32, torch.uint8):
...     ours = arange(0, 5.5, dtype=dtype)
...     print(f"{str(dtype):12} {ours.tolist()}  same as torch: {torch.equal(ours, torch.arange(0, 5.5, dtype=dtype))}")
torch.int64  [0, 1, 2, 3, 4]  same as torch: True
torch.int32  [0, 1, 2, 3, 4, 5]  same as torch: True
torch.uint8  [0, 1, 2, 3, 4, 5]  same as torch: True
>>> linspace(-1, 47, 5, dtype=torch.uint8)
tensor([255, 203, 151,  99,  47], dtype=torch.uint8)
>>> torch.equal(linspace(-1, 47, 5, dtype=torch.uint8), torch.linspace(-1, 47, 5, dtype=torch.uint8))
True

```

**Where it differs from PyTorch.** Our versions compute in `float64` and round once at the end;
PyTorch's CPU kernels compute some elements in the output dtype, several at a time. So for floats the
results agree to the last bit or two (a few steps of the dtype's resolution in `float16` and `bfloat16`),
not always to every bit: hence `assert_close`, not `torch.equal`. For integer `linspace`, both truncate
a floating-point value toward zero, and where that value sits a hair from a whole number the two may
land on neighbouring integers. An integer `arange` whose step truncates to 0 (`step=0.5` with
`dtype=torch.int32`) is refused by ours; PyTorch refuses it for `int64` but, in torch 2.13, returns a row
of equal numbers for the narrower dtypes. The tests in `tests/test_creation.py` pin each of these on many
random arguments, in every real dtype.

## Random tensors and a private generator

`torch.rand` draws uniformly from $[0, 1)$, `torch.randn` from the standard normal $\mathcal{N}(0, 1)$,
and `torch.randint(low, high, size)` integers from the half-open $[\text{low}, \text{high})$. Seeding the
global generator with `torch.manual_seed` works, but it couples every random call in your program. A
private `torch.Generator` gives one piece of code its own reproducible stream.

`manual_seed` returns the generator itself, which Python would print; assigning the result to `_`
(Python's conventional name for "a value I do not need") keeps the example quiet. You will see `_ = ...`
on every page.

```pycon
>>> g = torch.Generator().manual_seed(42)
>>> first = torch.randn(3, generator=g)
>>> _ = g.manual_seed(42)
>>> torch.equal(first, torch.randn(3, generator=g))
True
>>> dice = torch.randint(1, 7, (1000,), generator=g)
>>> {"dtype": dice.dtype, "lowest": dice.min().item(), "highest": dice.max().item()}
{'dtype': torch.int64, 'lowest': 1, 'highest': 6}

```

![Histograms of rand (flat on 0 to 1), randn (a bell around 0) and randint (six equal bars)](plot_random_distributions.svg)

## Leaving PyTorch: NumPy and plain Python

`torch.from_numpy(a)` does not copy: the tensor and the array are two views of the same memory, so
changing one changes the other. `tensor.numpy()` shares in the same way (for CPU tensors that do not
require gradients). `torch.tensor(a)` copies. All of them keep NumPy's dtype, usually `float64`.
`item()` turns a one-element tensor into a Python number, `tolist()` any tensor into nested lists.

```pycon
>>> import numpy as np
>>> a = np.zeros(3)
>>> shared, copied = torch.from_numpy(a), torch.tensor(a)
>>> a[0] = 5
>>> shared, copied
(tensor([5., 0., 0.], dtype=torch.float64), tensor([0., 0., 0.], dtype=torch.float64))
>>> shared.numpy()[1] = 6
>>> a
array([5., 6., 0.])
>>> torch.tensor([[2.5]]).item(), torch.arange(4).reshape(2, 2).tolist()
(2.5, [[0, 1], [2, 3]])

```

## Dr. Hammer's traps

Dr. Rudolf Hammer never reads a birth certificate. Here is what that costs him.

!!! hammer "Dr. Hammer's trap: the arange that overshoots"
    With a float step, the length is computed in floating point, where `(1.3 - 1) / 0.1` lands a hair above 3,
    so the ceiling rounds up one step too far and the "excluded" end appears. Fix: when you know how many
    points you want, say so with `linspace`; or step over integers and scale.

    ```pycon
    >>> (1.3 - 1) / 0.1
    3.0000000000000004
    >>> torch.arange(1, 1.3, 0.1)
    tensor([1.0000, 1.1000, 1.2000, 1.3000])
    >>> torch.linspace(1, 1.2, 3)
    tensor([1.0000, 1.1000, 1.2000])
    >>> torch.arange(10, 13) / 10
    tensor([1.0000, 1.1000, 1.2000])

    ```

!!! hammer "Dr. Hammer's trap: the integer that would not average"
    Python ints give an `int64` tensor, which refuses to average (an integer cannot hold the answer) and
    silently truncates any fraction you store in it. Ask for a float, at birth or in the `mean` itself:

    ```pycon
    >>> scores = torch.tensor([1, 2, 4])
    >>> scores.mean()
    Traceback (most recent call last):
    ...
    RuntimeError: mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: Long
    >>> scores[0] = 0.7
    >>> scores
    tensor([0, 2, 4])
    >>> torch.tensor([1, 2, 4], dtype=torch.float32).mean(), torch.tensor([1, 2, 4]).mean(dtype=torch.float64)
    (tensor(2.3333), tensor(2.3333, dtype=torch.float64))

    ```

!!! hammer "Dr. Hammer's trap: NumPy's float64 meets PyTorch's float32"
    Arrays arrive as `float64`, a network's weights are `float32`. `@` is matrix multiplication (its own
    lesson comes soon), and unlike `+` it refuses to mix the two:

    ```pycon
    >>> weights = torch.ones(1, 2)
    >>> weights @ torch.from_numpy(np.ones((2, 1)))
    Traceback (most recent call last):
    ...
    RuntimeError: expected m1 and m2 to have the same dtype, but got: float != double
    >>> weights @ torch.from_numpy(np.ones((2, 1))).float()
    tensor([[2.]])

    ```

!!! hammer "Dr. Hammer's trap: a list of tensors is not a tensor"
    `torch.tensor` wants numbers, not tensors with several elements:

    ```pycon
    >>> rows = [torch.zeros(2), torch.ones(2)]
    >>> torch.tensor(rows)
    Traceback (most recent call last):
    ...
    ValueError: only one element tensors can be converted to Python scalars
    >>> torch.stack(rows)
    tensor([[0., 0.],
            [1., 1.]])

    ```

!!! hammer "Dr. Hammer's trap: the shared-memory surprise"
    Hammer normalises his NumPy data in place *after* making a "copy" with `from_numpy`; his tensor changes
    under his feet. If you need a snapshot, copy:

    ```pycon
    >>> data = np.array([2.0, 4.0])
    >>> snapshot, alias = torch.tensor(data), torch.from_numpy(data)
    >>> data /= 2
    >>> snapshot, alias
    (tensor([2., 4.], dtype=torch.float64), tensor([1., 2.], dtype=torch.float64))

    ```

!!! hammer "Dr. Hammer's trap: reading `empty`"
    Summing a fresh `torch.empty` sums garbage: a different answer on another run or machine, perhaps `nan`
    (so no doctest can show it). If you need zeros, ask for `torch.zeros`; if you use `empty`, write every
    element first, for instance with `torch.empty(3).fill_(2.0)`.

!!! hammer "Dr. Hammer's trap: `item` on many"
    `item()` works only for a tensor with exactly one element:

    ```pycon
    >>> torch.tensor([1.0, 2.0]).item()
    Traceback (most recent call last):
    ...
    RuntimeError: a Tensor with 2 elements cannot be converted to Scalar
    >>> torch.tensor([1.0, 2.0]).tolist()
    [1.0, 2.0]

    ```

## Challenges

1. **A checkerboard.** Write `checkerboard_tensor(n_rows, n_cols)` returning an `int64` tensor of shape
   `(n_rows, n_cols)` whose entry $(i, j)$ is $(i + j) \bmod 2$ (so the top-left square is 0). Raise
   `ValueError` for a negative size. Check it with `check_checkerboard_tensor(my_function)`.
2. **The mirror identity.** Write `anti_identity(n, *, dtype=None)`: an $n \times n$ tensor with ones on
   the anti-diagonal ($i + j = n - 1$) and zeros elsewhere, in `dtype` (the default float dtype when
   `None`). Raise `ValueError` for a negative `n`. Check it with `check_anti_identity(my_function)`.

This lesson's tools are enough: a nested list comprehension handed to `torch.tensor`, or `torch.zeros`
filled in a loop. Mind the empty sizes, where `torch.tensor([])` has the wrong shape *and* the wrong dtype.
(After [Broadcasting](../broadcasting/index.md) the checkerboard is one line.)

Or put both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass, of course:

```pycon
>>> from torchenstein.tensors.creation import anti_identity, check_anti_identity, check_checkerboard_tensor, checkerboard_tensor
>>> check_checkerboard_tensor(checkerboard_tensor)
>>> check_anti_identity(anti_identity)

```
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


def birth_certificate(tensor: torch.Tensor) -> str:
    """Describe the four attributes a tensor is born with: shape, dtype, device and requires_grad.

    Args:
        tensor: any tensor.

    Returns:
        One line such as ``shape=(2, 3) dtype=torch.float32 device=cpu requires_grad=False``.

    Raises:
        TypeError: if ``tensor`` is not a ``torch.Tensor``.

    Examples:
        >>> print(birth_certificate(torch.ones(2, 3)))
        shape=(2, 3) dtype=torch.float32 device=cpu requires_grad=False
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    shape, device = tuple(tensor.shape), tensor.device
    return f"shape={shape} dtype={tensor.dtype} device={device} requires_grad={tensor.requires_grad}"


def _index(n: int) -> torch.Tensor:
    # The one primitive everything here is built on: summing a row of ones cumulatively counts
    # 1, 2, ..., n, and subtracting one gives the indices 0, 1, ..., n - 1. Shape (n,), int64, on the CPU.
    return torch.ones(n, dtype=torch.int64).cumsum(0) - 1


def arange(
    start: float, end: float | None = None, step: float = 1, *, dtype: torch.dtype | None = None, device=None
) -> torch.Tensor:
    r"""Numbers from ``start`` up to but excluding ``end``, ``step`` apart: ``torch.arange`` from scratch.

    Args:
        start: the first value; when ``end`` is ``None`` it is the end and the start is 0.
        end: the bound that is never reached.
        step: the gap between neighbours; negative to count down, never zero.
        dtype: the result's dtype; ``None`` gives ``int64`` for all-int arguments and the default float
            dtype otherwise. With an integer dtype the values walk from ``start`` in steps of ``step``, both
            truncated toward zero.
        device: where the result lives.

    Returns:
        A 1-D tensor of $\lceil (\text{end} - \text{start}) / \text{step} \rceil$ elements, computed in double
        precision from the arguments as given; only ``int64`` counts from the truncated arguments instead.

    Raises:
        TypeError: if an argument is not a number or ``dtype`` is not a real dtype.
        ValueError: if ``step`` is zero (or truncates to zero for an integer dtype), ``start`` or ``end`` is
            not finite, or ``step`` points away from ``end``.

    Examples:
        >>> torch.equal(arange(2, -7, -2), torch.arange(2, -7, -2))
        True
        >>> arange(0, 5.5, dtype=torch.int32), arange(0, 5.5, dtype=torch.int64)
        (tensor([0, 1, 2, 3, 4, 5], dtype=torch.int32), tensor([0, 1, 2, 3, 4]))
    """
    # `arange(5)` means `arange(0, 5)`: a single number is the end, not the start.
    if end is None:
        start, end = 0, start
    dtype = _arange_dtype(start, end, step, dtype)
    if dtype.is_floating_point:
        # ceil((end - start) / step) in double precision, as in PyTorch: that is why a float step can
        # overshoot (see Dr. Hammer's traps). Each value is start + i * step in float64, rounded once.
        size = math.ceil((end - start) / step)
        values = start + step * _index(size).to(torch.float64)
    else:
        # Integer dtypes walk from the truncated start in truncated steps, exactly, in int64. PyTorch's
        # length rule differs by width: int64 counts ceil((end - start) / step) on the truncated integers,
        # the narrower integer dtypes count it from the untruncated arguments, like the float dtypes.
        first, stride = int(start), int(step)
        size = -((first - int(end)) // stride) if dtype == torch.int64 else math.ceil((end - start) / step)
        values = first + stride * _index(size)
    # One conversion to `dtype` (int64 wraps into a narrower integer type, as in PyTorch) and one move.
    return values.to(dtype=dtype, device=device)


def linspace(start: float, end: float, steps: int, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    r"""``steps`` evenly spaced numbers from ``start`` to ``end``, both included: ``torch.linspace`` from scratch.

    Args:
        start: the first value.
        end: the last value (ignored when ``steps`` is 1, as in PyTorch).
        steps: how many values, 0 or more.
        dtype: the result's dtype; ``None`` gives the default float dtype, even for int arguments. With
            an integer dtype, ``start``, ``end`` and every value are truncated toward zero.
        device: where the result lives.

    Returns:
        A 1-D tensor of ``steps`` values, spaced $(\text{end} - \text{start}) / (\text{steps} - 1)$ apart.

    Raises:
        TypeError: if ``start`` or ``end`` is not a number, ``steps`` not an int or ``dtype`` not a real dtype.
        ValueError: if ``steps`` is negative, or ``start`` or ``end`` does not fit ``dtype`` (where PyTorch
            raises "value cannot be converted ... without overflow").

    Examples:
        >>> linspace(0, 10, 6)
        tensor([ 0.,  2.,  4.,  6.,  8., 10.])
        >>> linspace(0, 10, 4, dtype=torch.int64)
        tensor([ 0,  3,  6, 10])
        >>> linspace(-0.5, 10, 4, dtype=torch.uint8)
        Traceback (most recent call last):
        ...
        ValueError: start=-0.5 does not fit torch.uint8: a float endpoint must lie in [0, 255]
    """
    _check_size("steps", steps)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    _check_dtype(dtype)
    # Each endpoint is first converted to `dtype`, as PyTorch converts it: checked against the dtype's
    # range, then, for an integer dtype, truncated toward zero (and a negative int wrapped into uint8).
    start, end = _linspace_endpoint("start", start, dtype), _linspace_endpoint("end", end, dtype)
    # A single point has no spacing; PyTorch puts it at `start`.
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    i = _index(steps).to(torch.float64)  # (steps,)
    # The first half walks forward from `start`, the second half backward from `end`. Each endpoint is
    # then hit exactly (i * step is zero there) and the rounding error is symmetric, as in PyTorch's kernel.
    forward = start + step * i
    backward = end - step * (steps - 1 - i)
    values = torch.where(i < max(steps // 2, 1), forward, backward)
    return values.to(dtype=dtype, device=device)


def eye(n: int, m: int | None = None, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """The ``n`` by ``m`` identity-like matrix, ones where row equals column: ``torch.eye`` from scratch.

    Args:
        n: the number of rows.
        m: the number of columns; ``None`` means ``n``.
        dtype: the result's dtype; ``None`` gives the default float dtype. ``torch.bool`` works too.
        device: where the result lives.

    Returns:
        A tensor of shape ``(n, m)``.

    Raises:
        TypeError: if ``n`` or ``m`` is not an int or ``dtype`` is not a ``torch.dtype``.
        ValueError: if ``n`` or ``m`` is negative.

    Examples:
        >>> eye(2, 3)
        tensor([[1., 0., 0.],
                [0., 1., 0.]])
    """
    m = n if m is None else m
    _check_size("n", n)
    _check_size("m", m)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    _check_dtype(dtype, allow_bool=True)
    rows = _index(n).unsqueeze(1)  # (n, 1)
    cols = _index(m).unsqueeze(0)  # (1, m)
    # Comparing them stretches both to (n, m) (broadcasting, a later lesson) and is True on the diagonal.
    return (rows == cols).to(dtype=dtype, device=device)  # (n, m)


def plot_random_distributions(*, n_samples: int = 4000, seed: int = 0) -> Figure:
    """Histograms of seeded samples from ``torch.rand``, ``torch.randn`` and ``torch.randint(1, 7)``.

    Args:
        n_samples: how many samples each histogram shows.
        seed: the seed of the private generator that draws them.

    Returns:
        A matplotlib figure with three axes.

    Raises:
        ValueError: if ``n_samples`` is below 1.

    Examples:
        >>> fig = plot_random_distributions(n_samples=50)
        >>> len(fig.axes)
        3
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    # A private generator: the figure is the same every time and the global random stream is untouched.
    g = torch.Generator().manual_seed(seed)
    uniform = torch.rand(n_samples, generator=g)
    normal = torch.randn(n_samples, generator=g)
    dice = torch.randint(1, 7, (n_samples,), generator=g)
    fig, axes = new_figure(1, 3, width=9.0, height=3.0)
    # The die's bins are centred on the integers 1..6, so each face gets its own bar.
    panels = [
        (uniform, 20, "torch.rand: uniform on [0, 1)"),
        (normal, 30, "torch.randn: normal N(0, 1)"),
        (dice, [k + 0.5 for k in range(7)], "torch.randint(1, 7): a fair die"),
    ]
    for ax, (samples, bins, title), colour in zip(axes, panels, PALETTE[:3], strict=True):
        ax.hist(samples.numpy(), bins=bins, color=colour, rwidth=0.85)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("count")
    axes[2].set_xticks(range(1, 7))
    return fig


def _attempt(label: str, candidate, *args, **kwargs) -> object:
    # A learner's attempt that crashes is a failed case, reported with the call that crashed it.
    try:
        return candidate(*args, **kwargs)
    except Exception as err:  # any failure of the attempt is reported, not crashed on
        raise AssertionError(f"{label} raised {type(err).__name__}: {err}") from err


def _expect_board(label: str, got: object, shape: tuple[int, int], dtype: torch.dtype, want: list) -> None:
    # An empty board is where attempts built from nested lists fail: torch.tensor([]) is float32 of shape (0,).
    empty = "" if all(shape) else " (an empty board: torch.tensor([]) has shape (0,) and dtype float32; say both)"
    assert isinstance(got, torch.Tensor), f"{label}: expected a tensor, got {type(got).__name__}"
    assert got.shape == shape, f"{label}: expected shape {shape}, got {tuple(got.shape)}{empty}"
    assert got.dtype == dtype, f"{label}: expected dtype {dtype}, got {got.dtype}{empty}"
    assert got.tolist() == want, f"{label}: expected {want}, got {got.tolist()}"


def _expect_value_error(candidate, *args) -> None:
    call = f"{getattr(candidate, '__name__', 'candidate')}{args}"
    try:
        candidate(*args)
    except ValueError:
        return
    except Exception as err:  # the wrong error is a failed case too
        raise AssertionError(f"{call} should raise ValueError for a negative size, got {type(err).__name__}: {err}") from err
    raise AssertionError(f"{call} should raise ValueError for a negative size, but returned a result")


def checkerboard_tensor(n_rows: int, n_cols: int) -> torch.Tensor:
    """Challenge solution: an ``int64`` board whose entry ``(i, j)`` is ``(i + j) % 2``.

    Args:
        n_rows: rows, 0 or more.
        n_cols: columns, 0 or more.

    Returns:
        An ``int64`` tensor of shape ``(n_rows, n_cols)``, 0 in the top-left corner.

    Raises:
        ValueError: if a size is negative.

    Examples:
        >>> checkerboard_tensor(2, 3)
        tensor([[0, 1, 0],
                [1, 0, 1]])
    """
    _check_size("n_rows", n_rows)
    _check_size("n_cols", n_cols)
    # (n_rows, 1) + (1, n_cols) -> (n_rows, n_cols), then parity.
    return (torch.arange(n_rows).unsqueeze(1) + torch.arange(n_cols).unsqueeze(0)) % 2


def check_checkerboard_tensor(candidate) -> None:
    """Check an attempt at ``checkerboard_tensor``; raise ``AssertionError`` saying what is wrong."""
    for n_rows, n_cols in [(0, 0), (0, 3), (1, 1), (1, 4), (3, 2), (5, 5)]:
        want = [[(i + j) % 2 for j in range(n_cols)] for i in range(n_rows)]
        label = f"checkerboard_tensor({n_rows}, {n_cols})"
        _expect_board(label, _attempt(label, candidate, n_rows, n_cols), (n_rows, n_cols), torch.int64, want)
    _expect_value_error(candidate, -1, 2)


def anti_identity(n: int, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Challenge solution: an ``n`` by ``n`` tensor with ones on the anti-diagonal, ``i + j == n - 1``.

    Args:
        n: the size, 0 or more.
        dtype: the result's dtype; ``None`` gives the default float dtype.

    Returns:
        A tensor of shape ``(n, n)``.

    Raises:
        ValueError: if ``n`` is negative.

    Examples:
        >>> anti_identity(2)
        tensor([[0., 1.],
                [1., 0.]])
    """
    _check_size("n", n)
    # The identity with its columns read right to left.
    return torch.eye(n, dtype=dtype).flip(1)


def check_anti_identity(candidate) -> None:
    """Check an attempt at ``anti_identity``; raise ``AssertionError`` saying what is wrong."""
    for n in [0, 1, 2, 5]:
        for dtype in [None, torch.int64, torch.float64]:
            label = f"anti_identity({n}, dtype={dtype})"
            got = _attempt(label, candidate, n) if dtype is None else _attempt(label, candidate, n, dtype=dtype)
            want = [[1 if i + j == n - 1 else 0 for j in range(n)] for i in range(n)]
            # dtype=None means the default float dtype (torch.get_default_dtype()), as for torch.eye.
            want_dtype = torch.get_default_dtype() if dtype is None else dtype
            _expect_board(label, got, (n, n), want_dtype, want)
    _expect_value_error(candidate, -1)


# The argument checks of the factories above, kept here so that each factory reads as its idea.
# A bool is an int to Python, but `start=True` is almost certainly a mistake, so the checks refuse it.
def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an int or a float, got {type(value).__name__} {value!r}")


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {name}={value}")


def _check_dtype(dtype: object, allow_bool: bool = False) -> None:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
    if dtype.is_complex or (dtype == torch.bool and not allow_bool):
        raise TypeError(f"dtype must be a real floating point or integer dtype, got {dtype}")


def _arange_dtype(start: object, end: object, step: object, dtype: object) -> torch.dtype:
    # Checks arange's arguments as PyTorch does (in double precision, before any truncation) and returns
    # the dtype of the result.
    for name, value in (("start", start), ("end", end), ("step", step)):
        _check_number(name, value)
    if dtype is None:
        dtype = torch.get_default_dtype() if any(isinstance(v, float) for v in (start, end, step)) else torch.int64
    _check_dtype(dtype)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"start and end must be finite, got start={start}, end={end}")
    # Written as "not (> 0 or < 0)" so that a `nan` step is refused too.
    if not (step > 0 or step < 0):
        raise ValueError(f"step must be nonzero, got step={step}")
    if not ((step > 0 and end >= start) or (step < 0 and end <= start)):
        raise ValueError(f"step={step} points away from end: cannot walk from start={start} to end={end}")
    if not dtype.is_floating_point and not math.isfinite(step):
        raise ValueError(f"step must be finite for an integer dtype, got step={step}")
    # Where it differs from PyTorch: a step that truncates to 0 for an integer dtype. PyTorch refuses it
    # for int64; for the narrower integer dtypes torch 2.13 returns a row of identical values instead.
    if not dtype.is_floating_point and int(step) == 0:
        raise ValueError(f"step must be nonzero, got step={step}, which truncates to 0 for {dtype}")
    return dtype


def _linspace_endpoint(name: str, value: object, dtype: torch.dtype) -> float:
    # PyTorch converts each endpoint to `dtype` with an overflow check: a float must lie in the dtype's
    # range (infinities and NaN pass for float dtypes), an int too, except that uint8 lets a negative int
    # down to -255 wrap around (-1 becomes 255). For an integer dtype, the value is then truncated.
    _check_number(name, value)
    info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
    low = -info.max if isinstance(value, int) and not dtype.is_signed else info.min
    finite = isinstance(value, int) or math.isfinite(value)
    fits = (not finite or info.min <= value <= info.max) if dtype.is_floating_point else finite and low <= value <= info.max
    if not fits:
        kind = "an int" if isinstance(value, int) else "a float"
        raise ValueError(f"{name}={value!r} does not fit {dtype}: {kind} endpoint must lie in [{low}, {info.max}]")
    if dtype.is_floating_point:
        return float(value)
    return float(int(value) % 256 if dtype == torch.uint8 else int(value))
