r"""
# Elemental Tensor Alchemy: Sums, Softmaxes and Explosions

!!! torchenstein "The Professor speaks"
    Transmutation, my apprentice! Element-wise spells change every number at once, reductions boil a
    whole dimension down to a single drop, and in-place spells rewrite a tensor where it stands. Cast
    them carelessly and your softmax explodes into `NaN`, your standard deviation lies, and your row
    means land on the columns. Today we learn to cast them safely.

**You will learn to**

- apply arithmetic, comparisons and maths functions element by element, and predict the result's dtype;
- choose between values with `torch.where` and fence them in with `clamp`;
- reduce along the right dimension with `sum`, `mean`, `max`, `argmax`, `prod`, `var` and `std`,
  and keep that dimension with `keepdim=True` so the result broadcasts back;
- explain Bessel's correction, and write `var` and `std` from sums and means;
- use in-place operations and `out=`, and watch a tensor's version counter;
- write `softmax`, `log_softmax` and `logsumexp` that survive inputs of $\pm 1000$ and $-\infty$,
  and prove them equal to PyTorch's own.

## Element by element

Arithmetic between tensors of the same shape works position by position: the result has the same
shape, and element $i$ depends on element $i$ of each input only. Comparisons work the same way and
return `bool` tensors, which count as 0 and 1 when summed. Maths functions such as `exp`, `log`,
`sqrt` and `abs` are applied to every element:

```pycon
>>> import torch
>>> a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([2.0, 2.0, 3.0])
>>> a + b, a * b, a - b, a ** 2
(tensor([ 3.,  6., 12.]), tensor([ 2.,  8., 27.]), tensor([-1.,  2.,  6.]), tensor([ 1., 16., 81.]))
>>> a.sqrt(), torch.log(a.exp())
(tensor([1., 2., 3.]), tensor([1., 4., 9.]))
>>> a > b, (a > b).sum(), torch.maximum(a, b)
(tensor([False,  True,  True]), tensor(2), tensor([2., 4., 9.]))

```

`torch.maximum` compares two tensors element by element; `torch.max` with one tensor is a reduction,
which we meet below. The result's dtype follows the type promotion rules of
[Dtypes and devices](../dtypes/index.md): an integer tensor meeting a Python float becomes the default
float dtype, `/` between integers is true division and returns floats, `//` floors towards $-\infty$,
and `torch.div(..., rounding_mode="trunc")` truncates towards zero. Maths functions that cannot stay
integers, like `sqrt` and `exp`, return floats too:

```pycon
>>> n = torch.tensor([7, -7])
>>> n + 0.5, n / 2, n // 2, torch.div(n, 2, rounding_mode="trunc")
(tensor([ 7.5000, -6.5000]), tensor([ 3.5000, -3.5000]), tensor([ 3, -4]), tensor([ 3, -3]))
>>> torch.tensor([4, 9]).sqrt(), (n * 2).dtype, (n > 0).dtype
(tensor([2., 3.]), torch.int64, torch.bool)

```

## Choosing and fencing: `torch.where` and `clamp`

`torch.where(condition, x, y)` takes `x` where the condition holds and `y` elsewhere; `clamp(min, max)`
pushes every value into an interval. Both are element-wise, so both broadcast a Python number:

```pycon
>>> x = torch.tensor([-2.0, -0.5, 0.5, 3.0])
>>> torch.where(x > 0, x, 0.0), x.clamp(min=-1.0, max=1.0), x.clamp(min=0.0)
(tensor([0.0000, 0.0000, 0.5000, 3.0000]), tensor([-1.0000, -0.5000,  0.5000,  1.0000]), tensor([0.0000, 0.0000, 0.5000, 3.0000]))

```

`torch.where` computes *both* branches everywhere and only then chooses. A branch that is `NaN` where
it is not chosen does no harm to the values, but its gradient (see the
[primer](../creation/index.md#a-one-minute-primer-on-gradients)) is $0 \cdot \text{NaN} = \text{NaN}$.
Make every branch safe on every input, for instance by clamping what goes into it:

```pycon
>>> x = torch.tensor([-4.0, 4.0], requires_grad=True)
>>> torch.where(x > 0, x.sqrt(), 0.0).sum().backward()
>>> x.grad
tensor([   nan, 0.2500])
>>> x.grad = None
>>> torch.where(x > 0, x.clamp(min=1e-12).sqrt(), 0.0).sum().backward()
>>> x.grad
tensor([0.0000, 0.2500])

```

## Reductions: boiling a dimension away

A reduction combines many elements into one. With no `dim` it reduces the whole tensor to a single
number; with `dim=d` it reduces along dimension `d` only, and that dimension *disappears* from the
shape. A tuple of dims reduces several at once. The rule of thumb: `dim` names the dimension that
vanishes, not the one that survives.

```pycon
>>> x = torch.arange(12.0).reshape(3, 4)
>>> x.sum(), x.sum(dim=0), x.sum(dim=1)
(tensor(66.), tensor([12., 15., 18., 21.]), tensor([ 6., 22., 38.]))
>>> x.mean(dim=1), x.prod(dim=0), x.sum(dim=(0, 1))
(tensor([1.5000, 5.5000, 9.5000]), tensor([  0.,  45., 120., 231.]), tensor(66.))
>>> x.sum(dim=0).shape, x.sum(dim=1).shape, x.sum(dim=1, keepdim=True).shape
(torch.Size([4]), torch.Size([3]), torch.Size([3, 1]))

```

![A 3 by 4 matrix, its sums along dim 0 (a row of four) and along dim 1 with keepdim (a column of three)](plot_reductions.svg)

Integer tensors are refused by `mean` (an integer cannot hold the answer): see the trap "the integer that
would not average" in [Summoning tensors](../creation/index.md).

`torch.max(x)` with no `dim` returns one value; with a `dim` it returns a named pair, the `values` and
the `indices` where they sit. `argmax` returns the indices alone, `min`/`argmin` mirror them, and on
a tie PyTorch documents that the index of the *first* maximum is returned. `amax` reduces like `max`
without indices, and accepts a tuple of dims:

```pycon
>>> scores = torch.tensor([[1, 7, 7], [4, 2, 4]])
>>> best = scores.max(dim=1)
>>> best.values, best.indices, scores.argmax(dim=1)
(tensor([7, 4]), tensor([1, 0]), tensor([1, 0]))
>>> scores.min(dim=0).indices, scores.max(), scores.amax(dim=(0, 1))
(tensor([0, 1, 1]), tensor(7), tensor(7))

```

## Variance, standard deviation and Bessel's correction

The variance of $N$ numbers measures their squared spread around their mean $\bar x$:

$$
\operatorname{Var}(x) = \frac{1}{N - c} \sum_{i=1}^{N} (x_i - \bar x)^2, \qquad
\operatorname{Std}(x) = \sqrt{\operatorname{Var}(x)} .
$$

The *correction* $c$ decides the denominator. With $c = 0$ you get the variance of these $N$ numbers
themselves (the "population" variance, the maximum-likelihood estimate for a Gaussian). But when the
numbers are a *sample* and you want the variance of the distribution they came from, $c = 0$ lies:
$\bar x$ is fitted to the sample, so the sample hugs its own mean more tightly than the true mean,
and the average of the $c=0$ estimate is $\frac{N-1}{N}\sigma^2$. Bessel's correction, $c = 1$, removes
that bias. `torch.var` and `torch.std` use $c = 1$ by default; `correction=0` turns it off. The older
keyword `unbiased=True`/`False` means `correction=1`/`0`.

Our [`var`][torchenstein.tensors.elementwise.var] and [`std`][torchenstein.tensors.elementwise.std]
are built from `mean` and `sum` alone, with PyTorch's argument names. Sampling pairs of standard
normal numbers ($\sigma^2 = 1$, $N = 2$) shows the bias, and the correction that removes it:

```pycon
>>> from torchenstein.tensors.elementwise import std, var
>>> x = torch.tensor([[1.0, 2.0, 3.0, 6.0], [2.0, 2.0, 2.0, 2.0]])
>>> var(x, dim=1), var(x, dim=1, correction=0), std(x, dim=1, keepdim=True).shape
(tensor([4.6667, 0.0000]), tensor([3.5000, 0.0000]), torch.Size([2, 1]))
>>> torch.testing.assert_close(var(x, dim=1, correction=0), torch.var(x, dim=1, unbiased=False))
>>> torch.testing.assert_close(std(x), torch.std(x))
>>> pairs = torch.randn(50_000, 2, generator=torch.Generator().manual_seed(0))
>>> round(var(pairs, dim=1, correction=0).mean().item(), 1), round(var(pairs, dim=1).mean().item(), 1)
(0.5, 1.0)
>>> var(torch.arange(4), dim=0)
Traceback (most recent call last):
...
TypeError: input must be a floating-point tensor, got torch.int64

```

Bessel fixes the variance only: the square root of an unbiased estimate is still a (slightly) biased
estimate of $\sigma$. Normalisation layers, which Part 2 builds (`nn.LayerNorm`, and the normalising step
of `nn.BatchNorm`), rescale numbers to mean 0 and standard deviation 1; they divide by the $c = 0$
standard deviation, so anything you compare with them must use `correction=0`.

## `keepdim`: reductions that broadcast back

A reduction often feeds straight back into the tensor it came from: subtract the mean of each row,
divide by its standard deviation, normalise each row to sum to one. [Broadcasting](../broadcasting/index.md)
aligns shapes on the right, so a reduction over the *first* dimension, `(4,)` from a `(3, 4)` tensor,
lines up with the columns by itself. A reduction over the *last* dimension gives `(3,)`, which is lined
up with the four columns as well, and the shapes clash. Keep the reduced dimension as size 1 with
`keepdim=True`, and the `(3, 1)` result stretches across each row:

```pycon
>>> x = torch.arange(12.0).reshape(3, 4)
>>> (x - x.mean(dim=0)).sum(dim=0)  # (3, 4) - (4,): each column centred
tensor([0., 0., 0., 0.])
>>> x - x.mean(dim=1)
Traceback (most recent call last):
...
RuntimeError: The size of tensor a (4) must match the size of tensor b (3) at non-singleton dimension 1
>>> centred = x - x.mean(dim=1, keepdim=True)  # (3, 4) - (3, 1)
>>> centred.sum(dim=1), (x / x.sum(dim=1, keepdim=True)).sum(dim=1)
(tensor([0., 0., 0.]), tensor([1., 1., 1.]))

```

That error is the lucky case. On a square tensor the shapes agree by accident, and the row means are
subtracted from the columns, silently: see Dr. Hammer's trap "forgetting keepdim on a square tensor".

## In-place operations

A method ending in an underscore (`add_`, `mul_`, `clamp_`, `exp_`) writes its result into the tensor
itself instead of making a new one; `x += 1` is in place too, while `x = x + 1` builds a new tensor
and rebinds the name. Many functions also take `out=`, a tensor to write the result into. Outside
autograd, in-place operations save memory (no new tensor is allocated), and every tensor counts them in a
private version counter, `_version`:

```pycon
>>> x = torch.zeros(3)
>>> same = x
>>> _ = x.add_(1)
>>> x += 1
>>> x = x + 1  # a new tensor: the old one, still called `same`, is untouched
>>> same, same._version, x, x._version
(tensor([2., 2., 2.]), 2, tensor([3., 3., 3.]), 0)
>>> buffer = torch.empty(3)
>>> pointer = buffer.data_ptr()
>>> _ = torch.mul(x, 2, out=buffer)
>>> buffer, f"same memory as before: {buffer.data_ptr() == pointer}"
(tensor([6., 6., 6.]), 'same memory as before: True')

```

Under autograd (see the [primer](../creation/index.md#a-one-minute-primer-on-gradients)) in-place
operations follow two rules of their own: a leaf that requires grad may not be changed in place, and
neither may a tensor that autograd saved for the backward pass. The [autograd lesson](../autograd/index.md)
explains both, and why in-place operations there rarely save memory; keep them for `torch.no_grad()` code
and for buffers you own.

## Numerical stability: the softmax that does not explode

The softmax turns scores into probabilities, and the log-sum-exp is its faithful companion (the
logarithm of the softmax's denominator):

$$
\operatorname{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}, \qquad
\operatorname{logsumexp}(x) = \log \sum_j e^{x_j} .
$$

Written as printed, [`naive_softmax`][torchenstein.tensors.elementwise.naive_softmax] and
[`naive_logsumexp`][torchenstein.tensors.elementwise.naive_logsumexp] die on perfectly ordinary
logits (a classifier's raw scores). `exp` overflows to `inf` once its input passes $\log(\text{max})$ of
the dtype, and rounds to 0 soon after $e^x$ drops below the smallest subnormal; then $\infty/\infty$ and
$0/0$ are `NaN`, and $\log 0 = -\infty$. [Dtypes and devices](../dtypes/index.md) showed float16
overflowing at $e^{12}$; float32 is not immune:

```pycon
>>> import math
>>> from torchenstein.tensors.elementwise import naive_logsumexp, naive_softmax
>>> for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
...     info = torch.finfo(dtype)
...     high, low = math.log(info.max), math.log(info.tiny * info.eps)
...     print(f"{str(dtype):15} e^x > max for x > {high:6.2f}, e^x < smallest subnormal for x < {low:7.2f}")
torch.float16   e^x > max for x >  11.09, e^x < smallest subnormal for x <  -16.64
torch.bfloat16  e^x > max for x >  88.72, e^x < smallest subnormal for x <  -92.19
torch.float32   e^x > max for x >  88.72, e^x < smallest subnormal for x < -103.28
torch.float64   e^x > max for x > 709.78, e^x < smallest subnormal for x < -744.44
>>> big, small = torch.tensor([1000.0, 999.0, 0.0]), torch.tensor([-1000.0, -1001.0, -2000.0])
>>> naive_softmax(big, dim=0), naive_softmax(small, dim=0)
(tensor([nan, nan, 0.]), tensor([nan, nan, nan]))
>>> naive_logsumexp(big, dim=0), naive_logsumexp(small, dim=0)
(tensor(inf), tensor(-inf))

```

![Left: exp of x in float16, bfloat16 and float32, each ending at its overflow threshold. Right: the range of logits where the naive softmax stays finite, per dtype, against the stable softmax that never fails](plot_softmax_overflow.svg)

The cure is one line of algebra. For any constant $m$,
$e^{x_i} / \sum_j e^{x_j} = e^{x_i - m} / \sum_j e^{x_j - m}$ (multiply top and bottom by $e^{-m}$),
and $\log \sum_j e^{x_j} = m + \log \sum_j e^{x_j - m}$. Choose $m = \max_j x_j$: every exponent is
at most 0, so nothing overflows, and the largest term is exactly $e^0 = 1$, so the sum lies between 1
and $N$ and the logarithm never meets zero. Then

$$
\log\operatorname{softmax}(x)_i = (x_i - m) - \log \sum_j e^{x_j - m}
$$

stays finite even where the softmax itself underflows to 0. One more guard for log-sum-exp: when
$m = \pm\infty$, $x - m$ is $\infty - \infty = \text{NaN}$, so an infinite maximum is replaced by a
shift of 0 (PyTorch does the same). A row of nothing but $-\infty$ then has log-sum-exp $-\infty$,
while its softmax is $0/0$, `NaN` in PyTorch and here alike; the
[attention lesson](../../transformers/attention/index.md) shows how to guard such a row. Our
[`softmax`][torchenstein.tensors.elementwise.softmax],
[`log_softmax`][torchenstein.tensors.elementwise.log_softmax] and
[`logsumexp`][torchenstein.tensors.elementwise.logsumexp] agree with PyTorch on all of it:

```pycon
>>> from torchenstein.tensors.elementwise import log_softmax, logsumexp, softmax
>>> inf = math.inf
>>> x = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, -1001.0, -2000.0], [0.0, -inf, 5.0], [-inf, -inf, -inf]])
>>> softmax(x, dim=1)[:3]
tensor([[0.7311, 0.2689, 0.0000],
        [0.7311, 0.2689, 0.0000],
        [0.0067, 0.0000, 0.9933]])
>>> logsumexp(x, dim=1)
tensor([1000.3132, -999.6868,    5.0067,      -inf])
>>> torch.testing.assert_close(softmax(x, dim=1), torch.softmax(x, dim=1), equal_nan=True)
>>> torch.testing.assert_close(log_softmax(x, dim=1), torch.log_softmax(x, dim=1), equal_nan=True)
>>> torch.testing.assert_close(logsumexp(x, dim=1), torch.logsumexp(x, dim=1))
>>> half = x.to(torch.float16)
>>> torch.testing.assert_close(softmax(half, dim=1), torch.softmax(half, dim=1), equal_nan=True)
>>> softmax(torch.arange(3), dim=0)
Traceback (most recent call last):
...
TypeError: input must be a floating-point tensor, got torch.int64

```

Like PyTorch's kernels, ours compute float16 and bfloat16 inputs in float32 and round once at the end:
the dtypes lesson's advice to keep sums in a wider type, applied. (In these two dtypes PyTorch's CPU
`log_softmax` can differ from ours in the last few bits; the tests check that ours is the float64
answer rounded once.) The gradient is unharmed by the shift, since the shift cancels out of the
maths; we even `detach` it, so autograd never differentiates through the `max`.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the naive softmax, and its log"
    Dr. Hammer's softmax is the naive one, so large logits give `NaN`. Patched with the max trick,
    he computes his loss as `log(softmax(x))`. For a confident wrong answer the softmax
    underflows to exactly 0, the log is $-\infty$, and one infinite loss poisons the whole batch.
    `log_softmax` never forms the tiny probability at all.

    ```pycon
    >>> naive_softmax(torch.tensor([0.0, 1000.0]), dim=0)  # the overflow of the section above
    tensor([0., nan])
    >>> logits = torch.tensor([0.0, -200.0])
    >>> softmax(logits, dim=0), torch.log(softmax(logits, dim=0))
    (tensor([1., 0.]), tensor([0., -inf]))
    >>> log_softmax(logits, dim=0)
    tensor([   0., -200.])

    ```

!!! hammer "Dr. Hammer's trap: reducing over the wrong dimension"
    Logits have shape `(batch, classes)`. Dr. Hammer takes `argmax(dim=0)`: the best *example* for
    each class. With as many classes as examples the shapes match, nothing complains, and his
    accuracy is nonsense.

    ```pycon
    >>> logits = torch.tensor([[5.0, 0.0, 0.0], [4.0, 1.0, 0.0], [0.0, 0.0, 3.0]])  # (batch 3, classes 3)
    >>> labels = torch.tensor([0, 0, 2])
    >>> (logits.argmax(dim=0) == labels).float().mean()  # Hammer: one prediction per class
    tensor(0.6667)
    >>> (logits.argmax(dim=-1) == labels).float().mean()  # one prediction per example
    tensor(1.)

    ```

!!! hammer "Dr. Hammer's trap: forgetting keepdim on a square tensor"
    On a `(3, 4)` tensor a missing `keepdim` raises an error. On a square one the means of shape `(3,)`
    line up with the *columns*: row `j`'s mean is subtracted from column `j`, silently.

    ```pycon
    >>> x = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [0.0, 0.0, 0.0]])
    >>> (x - x.mean(dim=1)).sum(dim=1)  # Hammer: rows should sum to zero
    tensor([-16.,  38., -22.])
    >>> (x - x.mean(dim=1, keepdim=True)).sum(dim=1)
    tensor([0., 0., 0.])

    ```

!!! hammer "Dr. Hammer's trap: the wrong correction"
    NumPy's `np.std` defaults to `ddof=0` (no correction), PyTorch's `torch.std` to `correction=1`.
    Dr. Hammer ports a normalisation from NumPy, or rebuilds `LayerNorm` with `x.std()`, and his
    numbers drift by a factor of $\sqrt{N/(N-1)}$.

    ```pycon
    >>> import numpy as np
    >>> import torch.nn.functional as F
    >>> x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    >>> round(torch.std(x).item(), 4), round(float(np.std(x.numpy())), 4), round(std(x, correction=0).item(), 4)
    (2.1602, 1.8708, 1.8708)
    >>> mu = x.mean(dim=-1, keepdim=True)
    >>> hammer = (x - mu) / torch.sqrt(var(x, dim=-1, keepdim=True) + 1e-5)
    >>> ours = (x - mu) / torch.sqrt(var(x, dim=-1, correction=0, keepdim=True) + 1e-5)
    >>> {"Hammer's equals layer_norm": torch.allclose(hammer, F.layer_norm(x, (4,))),
    ...  "ours equals layer_norm": torch.allclose(ours, F.layer_norm(x, (4,)))}
    {"Hammer's equals layer_norm": False, 'ours equals layer_norm': True}

    ```

## Challenges

1. **A log-sigmoid that never overflows.** The sigmoid $\sigma(x) = 1 / (1 + e^{-x})$ squashes any
   number into $(0, 1)$. Write `stable_log_sigmoid(input)`, returning
   $\log \sigma(x) = -\log(1 + e^{-x})$ element by element for a float tensor, equal to
   `torch.nn.functional.logsigmoid` from $-1000$ to $1000$ and at $\pm\infty$, with finite, correct
   gradients (checked away from 0). `torch.log(torch.sigmoid(x))` fails: find out where. One tool
   beyond this lesson: `torch.log1p(y)` computes $\log(1 + y)$ without losing a tiny `y` to rounding.
2. **A mean that ignores padding.** Sequences of different lengths are stored in one tensor by filling
   the short ones up with *padding*, positions that hold no real data. Write
   `mean_without_padding(input, mask, dim, keepdim=False)`:
   the mean of `input` along `dim` over the positions where the bool `mask` (broadcastable to
   `input`) is `True`. A slice with no `True` at all gives `NaN`, like the mean of nothing. Padding may
   hold any garbage, `inf` and `NaN` included, and must not leak into the result.

Check an attempt with `check_stable_log_sigmoid(my_function)` and
`check_mean_without_padding(my_function)`, or put both in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's own answers pass:

```pycon
>>> from torchenstein.tensors.elementwise import check_mean_without_padding, check_stable_log_sigmoid
>>> from torchenstein.tensors.elementwise import mean_without_padding, stable_log_sigmoid
>>> check_stable_log_sigmoid(stable_log_sigmoid)
>>> check_mean_without_padding(mean_without_padding)
>>> tokens = torch.tensor([[1.0, 3.0, float("nan")], [4.0, 0.0, 0.0]])
>>> mean_without_padding(tokens, torch.tensor([[True, True, False], [True, False, False]]), dim=1)
tensor([2., 4.])

```
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_Dims = int | tuple[int, ...] | None


def _check_float(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_dims(dim: object, ndim: int, *, allow_none: bool) -> tuple[int, ...] | None:
    # Normalise `dim` to a tuple of non-negative dims (or None for "all of them"), refusing anything
    # a reader could misread: bools, floats, empty tuples, repeats, and dims the tensor does not have.
    if dim is None and allow_none:
        return None
    dims = (dim,) if isinstance(dim, int) and not isinstance(dim, bool) else dim
    expected = f"{'None, ' if allow_none else ''}an int or a non-empty tuple of ints"
    if not isinstance(dims, tuple) or not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise TypeError(f"dim must be {expected}, got {dim!r}")
    rank = max(ndim, 1)  # a zero-dimensional tensor accepts dim 0 and -1, as in PyTorch
    if not all(-rank <= d < rank for d in dims):
        raise ValueError(f"dim must lie in [{-rank}, {rank - 1}] for a {ndim}-dimensional input, got {dim!r}")
    normalised = tuple(d % rank for d in dims)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"dim must not name a dimension twice, got {dim!r}")
    return normalised


def _check_one_dim(dim: object, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {dim!r}")
    (d,) = _check_dims(dim, ndim, allow_none=False)
    return d


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision inputs are computed in float32 and rounded once at the end, as PyTorch's own
    # kernels do: 10 or 7 bits of mantissa are too few to hold a running sum.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def var(input: torch.Tensor, dim: _Dims = None, *, correction: float = 1, keepdim: bool = False) -> torch.Tensor:
    r"""The variance along ``dim``, built from ``mean`` and ``sum``, like `torch.var`.

    Computes $\frac{1}{\max(0,\,N - c)} \sum_i (x_i - \bar x)^2$, where $N$ counts the reduced elements.

    Args:
        input: a floating-point tensor.
        dim: the dimension or dimensions to reduce; ``None`` reduces them all.
        correction: $c$, subtracted from $N$ in the denominator: 1 (Bessel's correction, the default)
            for the unbiased sample variance, 0 for the variance of the numbers themselves.
        keepdim: keep each reduced dimension, with size 1, so the result broadcasts against ``input``.

    Returns:
        The variance, of ``input``'s dtype. With no degrees of freedom left ($N \le c$) it is ``inf``
        or ``NaN``, as in PyTorch (which also warns).

    Raises:
        TypeError: if ``input`` is not a floating-point tensor, or ``dim`` is not None, an int or a
            non-empty tuple of ints.
        ValueError: if ``dim`` is out of range or repeated, or ``correction`` is negative.

    Examples:
        >>> var(torch.tensor([1.0, 2.0, 3.0, 4.0])), var(torch.tensor([1.0, 2.0, 3.0, 4.0]), correction=0)
        (tensor(1.6667), tensor(1.2500))
        >>> var(torch.ones(2, 3), correction=-1)
        Traceback (most recent call last):
        ...
        ValueError: correction must be a real number >= 0, got -1
    """
    _check_float("input", input)
    dims = _check_dims(dim, input.dim(), allow_none=True)
    if isinstance(correction, bool) or not isinstance(correction, Real) or not correction >= 0:
        raise ValueError(f"correction must be a real number >= 0, got {correction!r}")
    # N is the number of elements that fall into each output element.
    n = math.prod(input.shape[d] for d in dims) if dims is not None and input.dim() else input.numel()
    x = input.to(_compute_dtype(input.dtype))
    # keepdim=True here, so the mean broadcasts back against x, whatever dims were reduced.
    mean = x.mean(dim=dims, keepdim=True)
    total = (x - mean).square().sum(dim=dims, keepdim=keepdim)
    # A denominator that would be negative is clamped to 0, as in PyTorch: the result is then
    # inf (spread divided by nothing) or NaN (0/0).
    return (total / max(0, n - correction)).to(input.dtype)


def std(input: torch.Tensor, dim: _Dims = None, *, correction: float = 1, keepdim: bool = False) -> torch.Tensor:
    """The standard deviation along ``dim``: the square root of `var`, like `torch.std`.

    Args:
        input: a floating-point tensor.
        dim: the dimension or dimensions to reduce; ``None`` reduces them all.
        correction: subtracted from the number of reduced elements in the variance's denominator
            (1, the default, is Bessel's correction).
        keepdim: keep each reduced dimension with size 1.

    Returns:
        The standard deviation, of ``input``'s dtype.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor, or ``dim`` has the wrong type.
        ValueError: if ``dim`` is out of range or repeated, or ``correction`` is negative.

    Examples:
        >>> std(torch.tensor([[0.0, 2.0], [1.0, 1.0]]), dim=1, correction=0)
        tensor([1., 0.])
    """
    # Half-precision inputs stay in float32 through the square root too, and are rounded once.
    _check_float("input", input)
    spread = var(input.to(_compute_dtype(input.dtype)), dim, correction=correction, keepdim=keepdim)
    return spread.sqrt().to(input.dtype)


def naive_softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    r"""The softmax exactly as printed, $e^{x_i} / \sum_j e^{x_j}$: a trap for large or very negative inputs.

    Args:
        input: a floating-point tensor.
        dim: the dimension whose entries sum to one.

    Returns:
        A tensor of ``input``'s shape and dtype, ``NaN`` wherever ``exp`` overflowed or every term underflowed.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``dim`` is not an int.
        ValueError: if ``dim`` is out of range.

    Examples:
        >>> naive_softmax(torch.tensor([0.0, 1.0]), dim=0), naive_softmax(torch.tensor([0.0, 100.0]), dim=0)
        (tensor([0.2689, 0.7311]), tensor([0., nan]))
    """
    d = _check_one_dim(dim, _check_float("input", input).dim())
    e = input.exp()
    return e / e.sum(dim=d, keepdim=True)


def naive_logsumexp(input: torch.Tensor, dim: int | tuple[int, ...], keepdim: bool = False) -> torch.Tensor:
    r"""Log-sum-exp exactly as printed, $\log \sum_j e^{x_j}$: ``inf`` or ``-inf`` for large inputs of either sign.

    Args:
        input: a floating-point tensor.
        dim: the dimension or dimensions to reduce.
        keepdim: keep each reduced dimension with size 1.

    Returns:
        The log-sum-exp, of ``input``'s dtype.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``dim`` has the wrong type.
        ValueError: if ``dim`` is out of range or repeated.

    Examples:
        >>> naive_logsumexp(torch.tensor([0.0, 0.0]), dim=0), naive_logsumexp(torch.tensor([100.0, 0.0]), dim=0)
        (tensor(0.6931), tensor(inf))
    """
    dims = _check_dims(dim, _check_float("input", input).dim(), allow_none=False)
    return input.exp().sum(dim=dims, keepdim=keepdim).log()


def logsumexp(input: torch.Tensor, dim: int | tuple[int, ...], keepdim: bool = False) -> torch.Tensor:
    r"""Log-sum-exp that never overflows: $m + \log \sum_j e^{x_j - m}$ with $m = \max_j x_j$, like `torch.logsumexp`.

    Args:
        input: a floating-point tensor.
        dim: the dimension or dimensions to reduce.
        keepdim: keep each reduced dimension with size 1.

    Returns:
        The log-sum-exp, of ``input``'s dtype: ``-inf`` for a slice of nothing but ``-inf`` (or of no
        elements at all), ``inf`` if the slice holds ``inf``.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``dim`` has the wrong type.
        ValueError: if ``dim`` is out of range or repeated.

    Examples:
        >>> logsumexp(torch.tensor([[0.0, 0.0], [-1000.0, -float("inf")]]), dim=1)
        tensor([ 6.9315e-01, -1.0000e+03])
    """
    dims = _check_dims(dim, _check_float("input", input).dim(), allow_none=False)
    x = input.to(_compute_dtype(input.dtype))
    if x.numel() == 0:
        # Nothing to shift: the log of an empty sum is log(0) = -inf.
        return x.exp().sum(dim=dims, keepdim=keepdim).log().to(input.dtype)
    # The maximum, kept for broadcasting: (..., 1, ...). It is detached because the result does not
    # depend on it mathematically (its gradient terms would cancel). An infinite maximum (a row of
    # -inf, or a +inf entry) becomes 0, since x - m would be inf - inf = NaN, while the unshifted exp
    # of such a row is exactly right (0, or inf).
    m = x.detach().amax(dim=dims, keepdim=True)
    m = m.masked_fill(m.isinf(), 0.0)
    # Every exponent is now <= 0 and the largest is exactly 0: the sum lies in [1, N].
    out = (x - m).exp().sum(dim=dims, keepdim=True).log() + m
    return (out if keepdim else out.squeeze(dims)).to(input.dtype)


def softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    r"""Softmax that never overflows: $e^{x_i - m} / \sum_j e^{x_j - m}$ with $m = \max_j x_j$, like `torch.softmax`.

    Args:
        input: a floating-point tensor.
        dim: the dimension whose entries sum to one.

    Returns:
        A tensor of ``input``'s shape and dtype. A slice of nothing but ``-inf``, or one holding ``inf``
        or ``NaN``, gives ``NaN``, exactly as in PyTorch.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``dim`` is not an int.
        ValueError: if ``dim`` is out of range.

    Examples:
        >>> softmax(torch.tensor([[1000.0, 1000.0], [-1000.0, -2000.0]]), dim=1)
        tensor([[0.5000, 0.5000],
                [1.0000, 0.0000]])
    """
    d = _check_one_dim(dim, _check_float("input", input).dim())
    x = input.to(_compute_dtype(input.dtype))
    if x.numel() == 0:
        return torch.empty_like(input)
    # Unlike logsumexp, no guard for an infinite maximum: PyTorch's softmax of a row of -inf is NaN
    # (0/0, there is no distribution over nothing), and so is ours.
    m = x.detach().amax(dim=d, keepdim=True)
    e = (x - m).exp()  # every entry in [0, 1], and at least one is exactly 1
    return (e / e.sum(dim=d, keepdim=True)).to(input.dtype)


def log_softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    r"""The logarithm of the softmax, computed as $(x_i - m) - \log \sum_j e^{x_j - m}$, like `torch.log_softmax`.

    Args:
        input: a floating-point tensor.
        dim: the dimension along which the probabilities sum to one.

    Returns:
        A tensor of ``input``'s shape and dtype (``NaN`` for a slice of nothing but ``-inf``, as in PyTorch).

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``dim`` is not an int.
        ValueError: if ``dim`` is out of range.

    Examples:
        >>> log_softmax(torch.tensor([0.0, -300.0]), dim=0)
        tensor([   0., -300.])
    """
    d = _check_one_dim(dim, _check_float("input", input).dim())
    x = input.to(_compute_dtype(input.dtype))
    if x.numel() == 0:
        return torch.empty_like(input)
    # Subtracting m before the log keeps (x - m) exact for the largest entries: x - (m + log s) would
    # round m + log s first and lose the small differences we care about.
    shifted = x - x.detach().amax(dim=d, keepdim=True)
    return (shifted - shifted.exp().sum(dim=d, keepdim=True).log()).to(input.dtype)


def plot_softmax_overflow(*, points: int = 400, reach: float = 150.0) -> Figure:
    """Show where ``exp`` overflows in each dtype, and the range of logits a naive softmax survives.

    Args:
        points: how many values of ``x`` (and of the logit offset ``t``) to evaluate.
        reach: the logit offsets run from ``-reach`` to ``reach``.

    Returns:
        A matplotlib figure with two axes.

    Raises:
        ValueError: if ``points`` is below 2 or ``reach`` is not positive.

    Examples:
        >>> fig = plot_softmax_overflow(points=20)
        >>> len(fig.axes)
        2
    """
    if points < 2 or not reach > 0:
        raise ValueError(f"points must be at least 2 and reach positive, got points={points}, reach={reach}")
    fig, (ax_exp, ax_window) = new_figure(1, 2, width=10.5, height=3.8)
    dtypes = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    names = [str(dtype).removeprefix("torch.") for dtype in dtypes]
    zorders = {torch.float16: 4, torch.bfloat16: 3}  # float16 and bfloat16 drawn over float32's wide line
    # Left: exp in each dtype. Overflowed values become NaN, which matplotlib leaves out, so each
    # curve stops at its cliff, marked by a dotted line at log(max).
    x = torch.linspace(-5.0, 100.0, points, dtype=torch.float64)
    styles = (("-", 1.5), ("--", 2.0), ("-", 4.0), ("-", 1.0))
    for colour, dtype, name, (style, width) in zip(PALETTE, dtypes, names, styles, strict=False):
        y = x.to(dtype).exp().double()
        ax_exp.semilogy(x, y.masked_fill(y.isinf(), math.nan), color=colour, linestyle=style, linewidth=width,
                        label=name, zorder=zorders.get(dtype, 2))
        cliff = math.log(torch.finfo(dtype).max)
        if cliff < x[-1].item():
            ax_exp.axvline(cliff, color=colour, linestyle=":", linewidth=1)
    ax_exp.set(xlabel="x", ylabel="exp(x)", title="exp(x) until it overflows (dotted: log of max)")
    ax_exp.legend(loc="lower right")
    # Right: for each dtype, the offsets t where naive_softmax([t, t-1, t-2]) is finite, drawn as
    # horizontal bars; the stable softmax gives the same three numbers for every t.
    t = torch.linspace(-reach, reach, points, dtype=torch.float64)
    step = (t[1] - t[0]).item()
    logits = t[:, None] + torch.tensor([0.0, -1.0, -2.0], dtype=torch.float64)  # (points, 3)
    rows = [(f"naive {name}", naive_softmax(logits.to(dtype), dim=1)) for dtype, name in zip(dtypes, names, strict=True)]
    rows.append(("stable float16", softmax(logits.to(torch.float16), dim=1)))
    for row, (colour, (_label, weights)) in enumerate(zip(PALETTE, rows, strict=False)):
        # One bar per unbroken run of finite rows: (start, width) pairs, as broken_barh wants them.
        spans = []
        for value, ok in zip(t.tolist(), weights.isfinite().all(dim=1).tolist(), strict=True):
            if ok and spans and abs(sum(spans[-1]) - (value - step / 2)) < step / 2:
                spans[-1] = (spans[-1][0], spans[-1][1] + step)
            elif ok:
                spans.append((value - step / 2, step))
        ax_window.broken_barh(spans, (row - 0.35, 0.7), facecolor=colour)
    ax_window.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax_window.set(xlabel="t, for logits [t, t-1, t-2]", xlim=(-reach, reach),
                  title="Where softmax([t, t-1, t-2]) is finite")
    return fig


def plot_reductions(*, rows: int = 3, cols: int = 4) -> Figure:
    """Draw a small matrix beside its sum along dim 0 and its sum along dim 1 with ``keepdim=True``.

    Args:
        rows: rows of the matrix.
        cols: columns of the matrix.

    Returns:
        A matplotlib figure with three axes: the matrix, ``x.sum(dim=0)`` and ``x.sum(dim=1, keepdim=True)``.

    Raises:
        ValueError: if ``rows`` or ``cols`` is not between 1 and 8.

    Examples:
        >>> fig = plot_reductions(rows=2, cols=2)
        >>> len(fig.axes)
        3
    """
    if not (1 <= rows <= 8 and 1 <= cols <= 8):
        raise ValueError(f"rows and cols must be between 1 and 8, got rows={rows}, cols={cols}")
    from matplotlib.colors import LinearSegmentedColormap

    fig, axes = new_figure(1, 3, width=9.5, height=3.2)
    cmap = LinearSegmentedColormap.from_list("lab", ["white", PALETTE[0]])
    x = torch.arange(rows * cols).reshape(rows, cols)  # (rows, cols); each reduction drawn as a 2-D grid
    panels = (
        (x, f"x, shape {tuple(x.shape)}"),
        (x.sum(dim=0, keepdim=True), f"x.sum(dim=0) -> {tuple(x.sum(dim=0).shape)}\n(dim 0 disappears)"),
        (x.sum(dim=1, keepdim=True), f"x.sum(dim=1, keepdim=True) -> {tuple(x.sum(dim=1, keepdim=True).shape)}\n"
                                     "(dim 1 shrinks to size 1)"),
    )
    for ax, (values, title) in zip(axes, panels, strict=True):
        ax.imshow(values.numpy(), cmap=cmap, vmin=0, vmax=max(values.max().item(), 1) * 1.3)
        for (i, j), value in zip(itertools.product(*map(range, values.shape)), values.flatten().tolist(), strict=True):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=10)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return fig


def stable_log_sigmoid(input: torch.Tensor) -> torch.Tensor:
    r"""Challenge solution: $\log\sigma(x) = -\log(1 + e^{-x})$, finite in value and gradient for every finite $x$.

    Args:
        input: a floating-point tensor.

    Returns:
        A tensor of ``input``'s shape and dtype, equal to `torch.nn.functional.logsigmoid`.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> stable_log_sigmoid(torch.tensor([-1000.0, 0.0, 1000.0]))
        tensor([-1.0000e+03, -6.9315e-01, -0.0000e+00])
    """
    _check_float("input", input)
    # For x < 0: log sigma(x) = x - log(1 + e^x); for x >= 0: -log(1 + e^-x). Each branch only ever
    # exponentiates a non-positive number, and log1p keeps the tiny e^-x for large x. torch.where runs
    # both branches everywhere, so each is fed a clamped input: an unchosen branch that overflowed
    # would send NaN into the gradient.
    negative, positive = input.clamp(max=0.0), input.clamp(min=0.0)
    return torch.where(input < 0, negative - torch.log1p(negative.exp()), -torch.log1p((-positive).exp()))


def _attempt(candidate, where: str, *args, **kwargs):
    # Run a learner's attempt; a crash is a failed case that says which inputs caused it.
    try:
        return candidate(*args, **kwargs)
    except Exception as err:  # any failure of the attempt is reported, not crashed on
        raise AssertionError(f"{where}: the attempt raised {type(err).__name__}: {err}") from err


def check_stable_log_sigmoid(candidate: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at `stable_log_sigmoid` against `torch.nn.functional.logsigmoid`, values and gradients.

    Raises:
        AssertionError: if the candidate disagrees anywhere; the message names the dtype and the input.
    """
    inf = math.inf
    extremes = [-inf, -1000.0, -100.0, -30.0, -1.0, 0.0, 1e-3, 1.0, 10.0, 30.0, 100.0, 1000.0, inf]
    generator = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.cat([torch.tensor(extremes, dtype=dtype), 20 * torch.randn(50, dtype=dtype, generator=generator)])
        got = _attempt(candidate, f"{dtype} input from -inf to inf", x.clone())
        assert isinstance(got, torch.Tensor) and got.dtype == dtype, f"for a {dtype} input return a {dtype} tensor, got {got!r}"
        assert got.shape == x.shape, f"the result must have the input's shape {tuple(x.shape)}, got {tuple(got.shape)}"
        _assert_close_at(f"{dtype}: log sigmoid", x, got, F.logsigmoid(x))
        # Gradients at finite, nonzero points must be sigma(-x), including where sigma(x) underflows.
        x = x[x.isfinite() & (x != 0)].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(candidate(x).sum(), x)
        _assert_close_at(f"{dtype}: the gradient of log sigmoid", x.detach(), grad, torch.sigmoid(-x.detach()))


def _assert_close_at(what: str, x: torch.Tensor, got: torch.Tensor, expected: torch.Tensor) -> None:
    wrong = ~(torch.isclose(got, expected, rtol=1e-5, atol=1e-6) | (got == expected))
    if wrong.any():
        i = int(wrong.nonzero()[0])
        raise AssertionError(f"{what} at {x[i].item()!r} should be {expected[i].item()!r}, got {got[i].item()!r}")


def mean_without_padding(input: torch.Tensor, mask: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """Challenge solution: the mean of ``input`` along ``dim`` over the positions where ``mask`` is True.

    Args:
        input: a floating-point tensor.
        mask: a bool tensor broadcastable to ``input``'s shape; ``False`` marks padding.
        dim: the dimension to average over.
        keepdim: keep the reduced dimension with size 1.

    Returns:
        The masked mean, of ``input``'s dtype; ``NaN`` where a slice has no ``True`` at all.

    Raises:
        TypeError: if ``input`` is not floating point or ``mask`` is not a bool tensor.
        ValueError: if ``mask`` does not broadcast to ``input``'s shape, or ``dim`` is out of range.

    Examples:
        >>> x = torch.tensor([[2.0, 4.0, 99.0], [1.0, float("inf"), float("nan")]])
        >>> mean_without_padding(x, torch.tensor([[True, True, False], [True, False, False]]), dim=1)
        tensor([3., 1.])
    """
    _check_float("input", input)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    # Broadcasting to input's shape: no more dims than input, and each trailing size 1 or equal.
    if mask.dim() > input.dim() or any(m not in (1, n) for m, n in zip(mask.shape[::-1], input.shape[::-1], strict=False)):
        raise ValueError(f"mask must broadcast to input's shape {tuple(input.shape)}, got {tuple(mask.shape)}")
    d = _check_one_dim(dim, input.dim())
    # torch.where, not input * mask: padding may hold inf or NaN, and 0 * inf is NaN.
    total = torch.where(mask, input, 0.0).sum(dim=d, keepdim=keepdim)
    # Count the real positions after broadcasting the mask to the input's full shape.
    count = mask.expand(input.shape).sum(dim=d, keepdim=keepdim)
    return total / count


def check_mean_without_padding(candidate: Callable[..., torch.Tensor]) -> None:
    """Check an attempt at `mean_without_padding` on several shapes, dims, garbage padding and empty slices.

    Raises:
        AssertionError: if the candidate disagrees anywhere; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, 3, generator=generator)
    full = torch.rand(4, 5, 3, generator=generator) > 0.4
    full[0, :, 0] = False  # a slice along dim 1 with nothing real in it
    tokens = torch.rand(4, 5, 1, generator=generator) > 0.3  # one flag per token, broadcast over features
    garbage = x.clone()
    garbage[~full] = math.inf
    garbage[~full & (torch.rand(4, 5, 3, generator=generator) > 0.5)] = math.nan
    cases = [
        ("a mask of nothing but True", x, torch.ones_like(full), 1, False),
        ("random mask, dim=1", x, full, 1, False),
        ("random mask, dim=-1, keepdim=True", x, full, -1, True),
        ("random mask, dim=0", x, full, 0, False),
        ("inf and NaN in the padding", garbage, full, 1, True),
        ("a (4, 5, 1) token mask broadcast over features", x, tokens, 1, False),
        ("a (1, 5, 3) mask broadcast along the reduced dim 0", x, full[:1], 0, True),
    ]
    for name, values, mask, dim, keepdim in cases:
        mask_full = mask.expand(values.shape)
        # The truth, one slice at a time: the plain mean of the numbers the mask selects.
        moved, kept = values.movedim(dim, -1), mask_full.movedim(dim, -1)
        expected = torch.tensor([row[keep].double().mean().item() if keep.any() else math.nan
                                 for row, keep in zip(moved.reshape(-1, moved.shape[-1]), kept.reshape(-1, kept.shape[-1]),
                                                      strict=True)], dtype=torch.float64).reshape(moved.shape[:-1])
        if keepdim:
            expected = expected.unsqueeze(dim)
        got = _attempt(candidate, name, values.clone(), mask.clone(), dim=dim, keepdim=keepdim)
        assert isinstance(got, torch.Tensor), f"{name}: return a tensor, got {got!r}"
        assert got.shape == expected.shape, f"{name}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert got.dtype == values.dtype, f"{name}: expected dtype {values.dtype}, got {got.dtype}"
        ok = torch.isclose(got.double(), expected, rtol=1e-5, atol=1e-6) | (got.isnan() & expected.isnan())
        assert ok.all(), f"{name}: expected {expected[~ok][:3].tolist()}, got {got[~ok][:3].tolist()} (NaN only where nothing is real)"
