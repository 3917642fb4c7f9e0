r"""
# RMSNorm: Half a LayerNorm, All the Glory

!!! torchenstein "The Professor speaks"
    LayerNorm subtracts the mean, divides by the standard deviation, multiplies by a gain and adds a bias.
    Two of those four steps, I discovered one sleepless night, are mostly ceremony! Throw away the mean and
    the bias, keep only the division by the root mean square, and you get the normaliser that now sits in
    LLaMA, Mistral, Gemma and nearly every language model since. Today we build it, prove it equal to
    PyTorch's own, and find out exactly what it forgets.

**You will learn to**

- write RMSNorm, $y = x / \sqrt{\operatorname{mean}(x^2) + \epsilon} \cdot \gamma$, as a function and as a
  module with PyTorch's names, and prove both equal to `F.rms_norm` and `nn.RMSNorm`;
- handle `eps=None` and bfloat16 the way recent PyTorch does: statistics in float32, one rounding at the end;
- state what RMSNorm is blind to (the scale of its input) and what it still sees (a shift), and prove that
  it *is* LayerNorm for inputs with zero mean;
- explain why modern language models prefer it, and time it against LayerNorm yourself;
- place it in a pre-norm residual block, and dodge three of Dr. Hammer's favourite mistakes.

## The recipe

LayerNorm (see the [Normalisation](../normalization/index.md) lesson) centres and rescales every vector of
features. Over the $n$ features $x_1, \dots, x_n$ it normalises,

$$
\operatorname{LayerNorm}(x)_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}\,\gamma_i + \beta_i,
\qquad \mu = \frac1n \sum_j x_j, \quad \sigma^2 = \frac1n \sum_j (x_j - \mu)^2 .
$$

RMSNorm (Zhang and Sennrich, 2019) drops the mean $\mu$ and the bias $\beta$ and divides by the
**root mean square** instead of the standard deviation:

$$
\operatorname{RMSNorm}(x)_i = \frac{x_i}{\operatorname{RMS}(x)}\,\gamma_i,
\qquad \operatorname{RMS}(x) = \sqrt{\frac1n \sum_j x_j^2 + \epsilon} .
$$

The $\epsilon$ sits **inside** the square root (remember that when Dr. Hammer shows up), and the gain
$\gamma$, called `weight` in PyTorch, starts at all ones. Three lines by hand, checked against
`torch.nn.functional.rms_norm`:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(2, 3, 8)                                  # (B, T, d)
>>> rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6)   # (B, T, 1)
>>> y = x / rms                                               # (B, T, d)
>>> torch.testing.assert_close(y, F.rms_norm(x, (8,), eps=1e-6))
>>> round(y.pow(2).mean(dim=-1).mean().item(), 4)             # every vector now has RMS 1
1.0

```

## RMSNorm from scratch

[`rms_norm`][torchenstein.nn.rmsnorm.rms_norm] takes the arguments of `F.rms_norm`: `input`,
`normalized_shape` (an int or a tuple: the trailing dimensions to normalise over, so `(3, 8)` takes the
root mean square over the last two), an optional `weight` of exactly that shape, and `eps`. When `eps` is
`None`, PyTorch picks the machine epsilon of the dtype it *computes* in:

```pycon
>>> torch.finfo(torch.float32).eps, torch.finfo(torch.float64).eps
(1.1920928955078125e-07, 2.220446049250313e-16)

```

[`RMSNorm`][torchenstein.nn.rmsnorm.RMSNorm] is the module around it, with `nn.RMSNorm`'s signature
`(normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None)`. With
`elementwise_affine=True` it owns one parameter, named `weight` like PyTorch's, so a `state_dict` moves
between the two in either direction.

```pycon
>>> from torchenstein.nn.rmsnorm import RMSNorm, rms_norm
>>> weight = torch.randn(3, 8)
>>> torch.testing.assert_close(rms_norm(x, (3, 8), weight), F.rms_norm(x, (3, 8), weight))
>>> ours, theirs = RMSNorm(8), nn.RMSNorm(8)
>>> ours
RMSNorm((8,), eps=None, elementwise_affine=True)
>>> list(ours.state_dict()), ours.weight.tolist()
(['weight'], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
>>> with torch.no_grad():
...     _ = theirs.weight.copy_(torch.linspace(0.5, 2.0, 8))
>>> _ = ours.load_state_dict(theirs.state_dict())
>>> torch.testing.assert_close(ours(x), theirs(x))
>>> RMSNorm(8, elementwise_affine=False).weight is None
True
>>> ours(torch.randn(2, 4))
Traceback (most recent call last):
...
ValueError: input's trailing dims must equal normalized_shape=(8,), got input shape (2, 4)

```

The tests (`tests/test_rmsnorm.py`) prove far more: outputs, input gradients and weight gradients
against PyTorch's for many shapes and `normalized_shape` lengths (an empty batch and a size-0 dim
included), `eps` given and `None`, with and without the weight, in float32, float64 and bfloat16;
outputs in float16 too, on transposed and expanded inputs, from tiny to large magnitudes, with float32
weights on half inputs (to one rounding of the output's dtype); `torch.autograd.gradcheck` in float64;
and `state_dict` round trips both ways.

## Low precision, full-precision statistics

Language models run in bfloat16, which keeps only 8 significant bits. A mean of thousands of squares in
that format loses its last digits (Dr. Hammer will show how badly), so RMSNorm upcasts: it squares,
averages and takes the reciprocal square root in float32, multiplies by the weight, and rounds to
bfloat16 **once**, at the very end. Recent PyTorch releases do the same (on torch 2.13's CPU the two
agree bit for bit on the inputs I tried; older releases, 2.4 among them, rounded earlier, and kernels may
round differently elsewhere, so the tests hold them to bfloat16's tolerance). PyTorch's default `eps`
follows the computation: float32's epsilon for float16, bfloat16 and float32 inputs, float64's for
float64, as its documentation now says and the tests check. The output keeps the input's dtype.

```pycon
>>> xb = torch.randn(4, 512).bfloat16()
>>> yb = rms_norm(xb, 512)
>>> yb.dtype
torch.bfloat16
>>> exact = rms_norm(xb.double(), 512)
>>> torch.testing.assert_close(yb, F.rms_norm(xb, (512,)))
>>> torch.allclose(yb.double(), exact, rtol=2**-8, atol=0)     # within one bfloat16 rounding
True

```

Hugging Face's LLaMA does nearly the same, but rounds back to bfloat16 *before* multiplying by the
weight, so its output can differ from ours by a rounding: bfloat16 implementations agree to a
tolerance, not to the bit.

## What RMSNorm forgets, and what it remembers

**Scale.** Multiply the input by $c > 0$ and the root mean square grows by the same factor:

$$
\operatorname{RMSNorm}(c\,x) = \frac{c\,x}{\sqrt{c^2 \frac1n \sum_j x_j^2 + \epsilon}}\,\gamma
\;\approx\; \frac{c\,x}{c\,\operatorname{RMS}(x)}\,\gamma = \operatorname{RMSNorm}(x),
$$

exactly when $\epsilon = 0$, and up to $\epsilon$ otherwise: the invariance holds as long as $c^2$ times the
mean square dwarfs $\epsilon$. A negative $c$ flips the sign of the output.

```pycon
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(4, 16)
>>> y = rms_norm(x, 16)
>>> all(torch.allclose(rms_norm(c * x, 16), y, atol=1e-6) for c in (0.5, 3.0, 1000.0))
True
>>> torch.allclose(rms_norm(-2.0 * x, 16), -y, atol=1e-6)
True
>>> torch.allclose(rms_norm(1e-4 * x, 16), y, atol=1e-6)     # mean square 1e-8: now eps matters
False
>>> torch.allclose(rms_norm(1e-4 * x, 16, eps=0.0), y, atol=1e-6)
True

```

**Shift.** Add a constant to every feature and RMSNorm notices: the vector moved away from zero, and its
normalised version leans towards $\pm 1$ everywhere. LayerNorm subtracts the mean first, so it removes the
shift as well: it is invariant to both $c\,x$ and $x + c$.

```pycon
>>> layer_norm = lambda t: F.layer_norm(t, (16,))
>>> torch.allclose(rms_norm(x + 5.0, 16), y, atol=1e-3)
False
>>> torch.allclose(layer_norm(x + 5.0), layer_norm(x), atol=1e-5)
True

```

![Three panels over twelve features: a random input shifted by 0, 1 and 3; RMSNorm's outputs, which change and flatten towards one as the shift grows; LayerNorm's outputs, which lie on top of each other.](plot_rmsnorm_vs_layernorm.svg)

## RMSNorm is LayerNorm for centred inputs

If the features already have mean zero, $\mu = 0$ and $\sigma^2 = \frac1n \sum_j x_j^2$: LayerNorm's
denominator becomes RMSNorm's, and the two are the same function, provided LayerNorm has no bias
(`bias=False`) and both use the same `eps` and `weight`. On an uncentred input they part ways.

```pycon
>>> layer = nn.LayerNorm(16, eps=1e-5, bias=False)
>>> ours = RMSNorm(16, eps=1e-5)
>>> with torch.no_grad():
...     _ = layer.weight.copy_(torch.linspace(-1.0, 2.0, 16))
>>> _ = ours.load_state_dict(layer.state_dict())        # the same key, 'weight', in both
>>> centred = x - x.mean(dim=-1, keepdim=True)
>>> torch.allclose(ours(centred), layer(centred), atol=1e-6)
True
>>> torch.allclose(ours(x), layer(x), atol=1e-6)
False

```

## Why language models prefer it

- **Cheaper.** LayerNorm needs two statistics per vector, a mean and then a variance around it, and the
  second needs the first; RMSNorm needs one reduction, the mean of squares, and has no bias to add,
  store or update. One reduction fewer, and no bias, is the whole of its advantage in cost.
- **Re-centring rarely matters.** Zhang and Sennrich's bet was that LayerNorm's success comes from the
  re-*scaling* invariance, not the re-centring; the many models trained with RMSNorm since suggest they
  were right. T5 used it, then LLaMA, Mistral, Gemma, Qwen and most of their descendants.
- **Not for numerical safety.** You may read that RMSNorm is safer because it subtracts nothing, so
  nothing cancels. That is true only against a *one-pass* LayerNorm, which computes the variance as
  $\operatorname{mean}(x^2) - \operatorname{mean}(x)^2$: when the mean is large against the spread, two
  big, nearly equal numbers are subtracted and the digits of the variance are lost. A *two-pass*
  LayerNorm subtracts the mean first and squares what is left, as the
  [Normalisation](../normalization/index.md) lesson's does (PyTorch's kernels use Welford's running
  update, which does not cancel either):

```pycon
>>> _ = torch.manual_seed(0)
>>> big = torch.randn(4, 512) + 1000.0                             # float32: mean 1000, spread 1
>>> exact = big.double().var(dim=-1, correction=0)
>>> one_pass = big.pow(2).mean(dim=-1) - big.mean(dim=-1).pow(2)   # mean(x^2) - mean(x)^2
>>> two_pass = (big - big.mean(dim=-1, keepdim=True)).pow(2).mean(dim=-1)
>>> {name: bool(((v - exact) / exact).abs().max() < 1e-3) for name, v in (("one pass", one_pass),
...                                                                       ("two passes", two_pass))}
{'one pass': False, 'two passes': True}

```

Do not trust my word on speed: trust a stopwatch, on your own machine.
[`compare_norm_speed`][torchenstein.nn.rmsnorm.compare_norm_speed] times forward and backward of
PyTorch's `F.rms_norm` and `F.layer_norm`, and of our RMSNorm against a LayerNorm written the same way
from plain tensor operations, with `torchenstein.lab.time_it`. It returns seconds per run; the numbers
depend on your CPU and its mood, so this page does not print them. Print them yourself with
`for name, seconds in timings.items(): print(f"{name:18} {seconds * 1e3:.3f} ms")`:

```pycon
>>> from torchenstein.nn.rmsnorm import compare_norm_speed
>>> timings = compare_norm_speed(shape=(2, 64, 512), repeat=3)
>>> list(timings)
['RMSNorm (torch)', 'LayerNorm (torch)', 'RMSNorm (ours)', 'LayerNorm (ours)']

```

The hand-written pair compares like with like: the same elementary operations, one reduction against
two, and one pass over the data fewer. The built-in pair measures kernels, and kernels differ in how
hard someone optimised them: in torch 2.13 on the CPU, for instance, `F.layer_norm` has a hand-fused
backward pass, while the backward of `F.rms_norm` is assembled by autograd from elementary operations, so
the built-ins may well rank the other way round. On a GPU the balance is different again. The lesson
is the Professor's oldest one: measure on the hardware you will train on.

## The pre-norm residual block

A Transformer block sends its input $x$ down a **residual stream** and adds to it what each sub-layer
computes. The original Transformer normalised *after* the addition (post-norm, $\operatorname{norm}(x +
f(x))$); modern language models normalise *before* the sub-layer and leave the stream itself alone
(pre-norm):

$$
h = x + \operatorname{Attention}(\operatorname{RMSNorm}_1(x)), \qquad
\operatorname{out} = h + \operatorname{MLP}(\operatorname{RMSNorm}_2(h)),
$$

with one last RMSNorm before the output layer. The identity path $x \mapsto x$ is never divided by
anything, so gradients flow straight through dozens of blocks, and each sub-layer still sees inputs of
RMS about 1, however large the stream grows. Pre-norm stacks are far more forgiving than post-norm ones:
Xiong et al. (2020) found their gradients well-behaved at initialisation and trained them without a
learning-rate warm-up. Every common recipe still warms up, though (nanoGPT's GPT-2 and LLaMA both over
their first 2000 steps): take pre-norm as a margin of stability, not as a licence to skip the warm-up.
A sketch of the MLP half:

```pycon
>>> _ = torch.manual_seed(0)
>>> norm = RMSNorm(16)
>>> mlp = nn.Sequential(nn.Linear(16, 64), nn.SiLU(), nn.Linear(64, 16))
>>> stream = 10.0 * torch.randn(2, 5, 16)            # (B, T, d): a stream that has grown large
>>> out = stream + mlp(norm(stream))                  # (B, T, d)
>>> out.shape, round(norm(stream).pow(2).mean().item(), 3)
(torch.Size([2, 5, 16]), 1.0)

```

The attention half looks the same with [`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention]
in place of the MLP; the Transformer-block lesson assembles both.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: eps outside the square root"
    Hammer writes `x / (sqrt(mean(x**2)) + eps)`. For activations of ordinary size the two formulas
    differ far below `allclose`'s tolerance, so his unit test passes. For small activations, exactly where
    `eps` is supposed to matter, they do not agree at all.

    ```pycon
    >>> eps = 1e-6
    >>> def hammer_rms_norm(t):
    ...     return t / (t.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps)
    >>> _ = torch.manual_seed(0)
    >>> ordinary = torch.randn(4, 16)
    >>> torch.allclose(hammer_rms_norm(ordinary), F.rms_norm(ordinary, (16,), eps=eps))
    True
    >>> small = torch.tensor([[1e-3, -1e-3, 1e-3, -1e-3]])    # RMS = 1e-3, mean square = 1e-6 = eps
    >>> torch.allclose(hammer_rms_norm(small), F.rms_norm(small, (4,), eps=eps))
    False
    >>> round((hammer_rms_norm(small) / rms_norm(small, 4, eps=eps)).mean().item(), 2)
    1.41
    >>> torch.allclose(rms_norm(small, 4, eps=eps), F.rms_norm(small, (4,), eps=eps))
    True

    ```

    His outputs are $\sqrt{2}$ times too large here: $\sqrt{10^{-6} + 10^{-6}}$ against $10^{-3} + 10^{-6}$.
    A pretrained model whose norms were trained with the other formula drifts off quietly.

!!! hammer "Dr. Hammer's trap: statistics in low precision"
    Hammer keeps everything in the model's dtype "for speed". In bfloat16 the mean of squares is rounded
    to 8 significant bits; in float16 a single feature of 256 or more squares past float16's largest
    number, and the whole vector is divided by infinity.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> xb = torch.randn(8, 2048).bfloat16()
    >>> exact = xb.double().pow(2).mean(dim=-1)                  # (8,)
    >>> def worst_relative_error(mean_square):
    ...     return ((mean_square.double() / exact) - 1).abs().max().item()
    >>> worst_relative_error(xb.float().pow(2).mean(dim=-1)) < 1e-6     # float32 statistics
    True
    >>> 1e-3 < worst_relative_error(xb.pow(2).mean(dim=-1)) < 1e-2       # bfloat16 statistics
    True
    >>> running = torch.zeros(8, dtype=torch.bfloat16)              # a running sum kept in bfloat16
    >>> for j in range(2048):
    ...     running = running + xb[:, j] ** 2
    >>> ((running / 2048).double() / exact).max().item() < 0.7
    True
    >>> h = torch.tensor([[300.0, -200.0, 1.0, 2.0]], dtype=torch.float16)
    >>> torch.finfo(torch.float16).max, h.pow(2).mean(dim=-1)
    (65504.0, tensor([inf], dtype=torch.float16))
    >>> (h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True))).abs().max().item()
    0.0
    >>> torch.allclose(rms_norm(h, 4).float(), rms_norm(h.float(), 4), rtol=1e-3)
    True

    ```

    PyTorch's own bfloat16 `mean` accumulates in float32 and only rounds its result, an error within the
    bounds checked above; a running sum kept in bfloat16, as a hand-written kernel might do, stops
    growing once each new term is smaller than half the spacing of bfloat16 numbers near the sum, and
    reports a mean square less than 0.7 times the truth. The fix is the one `rms_norm` applies: upcast,
    compute the statistics, round once.

Normalising over the wrong dimension leaks here exactly as it does for LayerNorm in the
[Normalisation](../normalization/index.md) traps: the statistics belong to each token's last dim.

!!! hammer "Dr. Hammer's trap: the weight left behind"
    Hammer downloads a pretrained model, builds his norms with `elementwise_affine=False` (or names his
    gain `scale`), gets an error about unexpected keys, and silences it with `strict=False`. The trained
    gains stay on the disk and his model computes something else.

    ```pycon
    >>> trained = nn.RMSNorm(8)
    >>> with torch.no_grad():
    ...     _ = trained.weight.copy_(torch.linspace(0.5, 2.0, 8))
    >>> checkpoint = trained.state_dict()
    >>> hammer = RMSNorm(8, elementwise_affine=False)
    >>> hammer.load_state_dict(checkpoint)
    Traceback (most recent call last):
    ...
    RuntimeError: Error(s) in loading state_dict for RMSNorm: Unexpected key(s) in state_dict: "weight".
    >>> keys = hammer.load_state_dict(checkpoint, strict=False)
    >>> keys.missing_keys, keys.unexpected_keys
    ([], ['weight'])
    >>> x = torch.randn(3, 8)
    >>> torch.allclose(hammer(x), trained(x))
    False
    >>> fixed = RMSNorm(8)
    >>> fixed.load_state_dict(checkpoint)                   # strict, the default: every key must fit
    <All keys matched successfully>
    >>> torch.testing.assert_close(fixed(x), trained(x))

    ```

    Load strictly, and read the missing and unexpected keys whenever you must not.

## Challenges

**1. Gemma's offset weight.** Gemma stores its gain as an offset from one, initialised to zeros, and
scales by $1 + w$. Write `rms_norm_with_offset_weight(x, weight, eps=1e-6)`: RMSNorm over the last
dimension with statistics in float32, multiplied by `1 + weight` (computed in float32 too), and returned
in `x`'s dtype. A zero `weight` must give plain RMSNorm.

**2. QK-norm.** Large attention logits make the softmax saturate and training unstable; models such as
Qwen3 and Gemma 3 normalise queries and keys, per head, before the dot product. Write
`qk_norm(q, k, weight_q, weight_k, eps=1e-6)` for `q` of shape $(B, h_q, L, d_\text{head})$ and `k` of
shape $(B, h_k, S, d_\text{head})$, with weights of shape $(d_\text{head},)$: return `(q_normed, k_normed)`,
each normalised over its head's $d_\text{head}$ features only, with its own weight.

Check an attempt with `check_rms_norm_with_offset_weight(my_function)` (or `check_qk_norm`), or put your
functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.nn.rmsnorm import (
...     check_qk_norm, check_rms_norm_with_offset_weight, qk_norm, rms_norm_with_offset_weight)
>>> check_rms_norm_with_offset_weight(rms_norm_with_offset_weight)
>>> check_qk_norm(qk_norm)

```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure, time_it

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def rms_norm(
    input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None, eps: float | None = None
) -> Tensor:
    r"""RMSNorm from scratch, a drop-in twin of `torch.nn.functional.rms_norm`.

    Computes $x / \sqrt{\operatorname{mean}(x^2) + \epsilon} \cdot \text{weight}$, the mean taken over the
    trailing dimensions named by ``normalized_shape``.

    Args:
        input: a floating-point tensor of shape $(*, \text{normalized\_shape})$.
        normalized_shape: an int or a tuple of ints: the sizes of the trailing dims to normalise over.
        weight: the gain, of shape ``normalized_shape``, or ``None`` for no gain.
        eps: added to the mean square inside the square root; ``None`` means the machine epsilon of the
            computation dtype (float32 for float16, bfloat16 and float32 inputs, float64 for float64).

    Returns:
        A tensor of ``input``'s shape and dtype. Low-precision inputs are computed in float32 and
        rounded once at the end.

    Raises:
        TypeError: if ``input`` or ``weight`` is not a floating-point tensor, or an argument has the wrong type.
        ValueError: if the shapes do not fit or ``eps`` is negative.

    Examples:
        >>> x = torch.randn(2, 4, 6)
        >>> torch.testing.assert_close(rms_norm(x, 6), F.rms_norm(x, (6,)))
        >>> rms_norm(x, 6, weight=torch.ones(4))
        Traceback (most recent call last):
        ...
        ValueError: weight must have shape normalized_shape=(6,), got (4,)
    """
    shape, eps = _check_rms_norm_args(input, normalized_shape, weight, eps)
    # Half and bfloat16 are computed in float32, float64 stays float64: the same "opmath" rule PyTorch
    # uses, and the dtype whose machine epsilon is the default eps.
    compute_dtype = torch.promote_types(input.dtype, torch.float32)
    if eps is None:
        eps = torch.finfo(compute_dtype).eps
    dims = tuple(range(-len(shape), 0))
    x = input.to(compute_dtype)
    # The one reduction of the whole layer: the mean of the squares over the normalised dims. keepdim
    # leaves size-1 dims behind, so the statistic broadcasts back over the features.
    mean_square = x.pow(2).mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
    # eps goes inside the square root; `rsqrt` is one kernel for 1/sqrt, as in PyTorch's own code.
    y = x * torch.rsqrt(mean_square + eps)  # (*, normalized_shape)
    if weight is not None:
        y = y * weight.to(compute_dtype)
    # The only rounding to a low-precision input's dtype happens here, after everything is computed.
    return y.to(input.dtype)


class RMSNorm(nn.Module):
    r"""RMSNorm as a module, a drop-in twin of ``nn.RMSNorm``: same arguments, parameter and ``state_dict``.

    Args:
        normalized_shape: an int or a tuple of ints, the trailing dims to normalise over.
        eps: added inside the square root; ``None`` picks the computation dtype's machine epsilon at
            every call (see [`rms_norm`][torchenstein.nn.rmsnorm.rms_norm]).
        elementwise_affine: learn a gain ``weight`` (``True``) or not (``False``, and ``weight`` is ``None``).
        device: where to create the weight.
        dtype: the weight's dtype.

    Attributes:
        weight: the gain $\gamma$, shape ``normalized_shape``, initialised to ones, or ``None``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``normalized_shape`` is empty or negative, or ``eps`` is negative.

    Examples:
        >>> norm = RMSNorm((3, 4), eps=1e-5)
        >>> norm.weight.shape, norm(torch.randn(2, 3, 4)).shape
        (torch.Size([3, 4]), torch.Size([2, 3, 4]))
        >>> RMSNorm(4, eps=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: eps must be non-negative, got -1.0
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _check_normalized_shape(normalized_shape)
        self.eps = _check_eps(eps)
        if not isinstance(elementwise_affine, bool):
            raise TypeError(f"elementwise_affine must be a bool, got {elementwise_affine!r}")
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            # Assigning an nn.Parameter registers it under the name `weight`, which becomes its
            # state_dict key: the name is what lets a checkpoint of nn.RMSNorm load here.
            self.weight = nn.Parameter(torch.empty(self.normalized_shape, device=device, dtype=dtype))
        else:
            # Registered as None: the attribute exists, the state_dict stays empty, as in PyTorch.
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the gain back to ones, so a fresh layer only normalises.

        Examples:
            >>> norm = RMSNorm(3)
            >>> with torch.no_grad():
            ...     _ = norm.weight.mul_(5.0)
            >>> norm.reset_parameters()
            >>> norm.weight.tolist()
            [1.0, 1.0, 1.0]
        """
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        """Normalise the trailing ``normalized_shape`` dims of ``input`` and apply the gain.

        Examples:
            >>> RMSNorm(4, elementwise_affine=False)(torch.full((2, 4), 3.0))
            tensor([[1., 1., 1., 1.],
                    [1., 1., 1., 1.]])
        """
        return rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        """The text inside ``RMSNorm(...)``, the same as ``nn.RMSNorm``'s.

        Examples:
            >>> RMSNorm(4, eps=1e-6).extra_repr()
            '(4,), eps=1e-06, elementwise_affine=True'
        """
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


def _layer_norm_by_hand(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the last dim from plain tensor operations, the fair rival for the timing."""
    # Two statistics, and the second needs the first: a pass for the mean, another for the variance.
    mean = x.mean(dim=-1, keepdim=True)  # (*, 1)
    centred = x - mean
    variance = centred.pow(2).mean(dim=-1, keepdim=True)  # (*, 1)
    return centred * torch.rsqrt(variance + eps) * weight + bias


def compare_norm_speed(
    *, shape: Sequence[int] = (8, 256, 1024), backward: bool = True, repeat: int = 5, eps: float = 1e-5
) -> dict[str, float]:
    """Time RMSNorm against LayerNorm, PyTorch's kernels and hand-written versions, with ``time_it``.

    Each timed run is a forward pass and, with ``backward=True``, the backward pass for the input and the
    parameters (``torch.autograd.grad``, so no ``.grad`` accumulates between runs). Everything runs on the
    CPU in float32, on a random input normalised over its last dim.

    Args:
        shape: the input's shape; the last dim is the one normalised.
        backward: include the backward pass.
        repeat: timed runs per contender (the median is kept), after one warm-up run.
        eps: the same eps for every contender.

    Returns:
        Seconds per run, keyed ``"RMSNorm (torch)"``, ``"LayerNorm (torch)"``, ``"RMSNorm (ours)"`` and
        ``"LayerNorm (ours)"``.

    Raises:
        ValueError: if ``shape`` is empty or has a dim below 1, or ``repeat`` is below 1.

    Examples:
        >>> timings = compare_norm_speed(shape=(4, 64), repeat=1)
        >>> list(timings)
        ['RMSNorm (torch)', 'LayerNorm (torch)', 'RMSNorm (ours)', 'LayerNorm (ours)']
        >>> all(seconds > 0 for seconds in timings.values())
        True
    """
    shape = tuple(shape)
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
        raise ValueError(f"shape must be a non-empty sequence of positive ints, got {shape!r}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}")
    generator = torch.Generator().manual_seed(0)
    d = shape[-1]
    x = torch.randn(shape, generator=generator).requires_grad_(backward)
    weight = torch.ones(d, requires_grad=backward)
    bias = torch.zeros(d, requires_grad=backward)
    grad_output = torch.randn(shape, generator=generator)
    contenders: dict[str, tuple[Callable[[], Tensor], tuple[Tensor, ...]]] = {
        "RMSNorm (torch)": (lambda: F.rms_norm(x, (d,), weight, eps), (x, weight)),
        "LayerNorm (torch)": (lambda: F.layer_norm(x, (d,), weight, bias, eps), (x, weight, bias)),
        "RMSNorm (ours)": (lambda: rms_norm(x, d, weight, eps), (x, weight)),
        "LayerNorm (ours)": (lambda: _layer_norm_by_hand(x, weight, bias, eps), (x, weight, bias)),
    }
    timings = {}
    for name, (forward, inputs) in contenders.items():
        if backward:

            def step(forward=forward, inputs=inputs):
                torch.autograd.grad(forward(), inputs, grad_output)

        else:

            def step(forward=forward):
                with torch.no_grad():
                    forward()

        timings[name] = time_it(step, repeat=repeat, warmup=1, device="cpu")
    return timings


def plot_rmsnorm_vs_layernorm(
    *, shifts: Sequence[float] = (0.0, 1.0, 3.0), num_features: int = 12, seed: int = 0
) -> Figure:
    """Draw an input shifted by several constants, and what RMSNorm and LayerNorm make of each.

    Args:
        shifts: the constants added to every feature of the input.
        num_features: how many features the vector has (at least 2).
        seed: seed of a private generator for the input.

    Returns:
        A figure with three axes: the inputs, RMSNorm's outputs and LayerNorm's outputs.

    Raises:
        ValueError: if ``num_features`` is below 2 or ``shifts`` is empty.

    Examples:
        >>> fig = plot_rmsnorm_vs_layernorm(shifts=(0.0, 2.0), num_features=4)
        >>> len(fig.axes)
        3
    """
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 2:
        raise ValueError(f"num_features must be an int of at least 2, got {num_features!r}")
    if len(shifts) == 0:
        raise ValueError("shifts must hold at least one constant, got an empty sequence")
    x = torch.randn(num_features, generator=torch.Generator().manual_seed(seed))
    features = range(num_features)
    fig, (ax_in, ax_rms, ax_ln) = new_figure(1, 3, width=10.0, height=3.4)
    # Each shift gets its own colour and marker, and later lines are dashed, so LayerNorm's outputs,
    # which lie exactly on top of each other, stay visible as one line drawn several times.
    for i, shift in enumerate(shifts):
        shifted = x + shift
        style = {"color": PALETTE[i % len(PALETTE)], "marker": "osD^v"[i % 5], "markersize": 4}
        style["linestyle"] = "-" if i == 0 else (0, (4, 2 + i))
        label = f"shift {shift:g}"
        ax_in.plot(features, shifted.numpy(), label=label, **style)
        ax_rms.plot(features, rms_norm(shifted, num_features).numpy(), label=label, **style)
        ax_ln.plot(features, F.layer_norm(shifted, (num_features,)).numpy(), label=label, **style)
    ax_in.set(title="Input $x + c$", xlabel="feature", ylabel="value")
    ax_rms.set(title="RMSNorm$(x + c)$: moves with $c$", xlabel="feature")
    ax_ln.set(title="LayerNorm$(x + c)$: blind to $c$", xlabel="feature")
    # Integer ticks: the horizontal axis counts features.
    for ax in (ax_in, ax_rms, ax_ln):
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_in.legend(fontsize=8)
    return fig


def rms_norm_with_offset_weight(x: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """Challenge solution: Gemma's RMSNorm, which scales by ``1 + weight``, statistics in float32.

    Args:
        x: a floating-point tensor of shape ``(*, d)``.
        weight: the offset gain, shape ``(d,)``; zeros give plain RMSNorm.
        eps: added inside the square root.

    Returns:
        A tensor of ``x``'s shape and dtype.

    Raises:
        TypeError: if ``x`` or ``weight`` is not a floating-point tensor (``x`` with at least one dim).
        ValueError: if ``weight`` is not of shape ``(d,)`` or ``eps`` is negative.

    Examples:
        >>> x = torch.randn(2, 5)
        >>> torch.testing.assert_close(rms_norm_with_offset_weight(x, torch.zeros(5)), rms_norm(x, 5, eps=1e-6))
    """
    if not isinstance(weight, Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, got {weight!r}")
    if not isinstance(x, Tensor) or x.dim() < 1:
        raise TypeError(f"x must be a tensor with at least one dim, got {x!r}")
    # The offset is added in float32 (1 + w in bfloat16 would round away the small offsets).
    return rms_norm(x, x.size(-1), 1.0 + weight.float(), eps)


def check_rms_norm_with_offset_weight(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``rms_norm_with_offset_weight``."""
    g = torch.Generator().manual_seed(0)
    for shape, dtype, eps in (((4,), torch.float32, 1e-6), ((2, 3, 8), torch.float32, 1e-5),
                              ((3, 16), torch.float64, 1e-6), ((2, 5, 32), torch.bfloat16, 1e-6),
                              ((2, 8), torch.float32, 1e-2)):
        d = shape[-1]
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        if eps == 1e-2:
            x = x * 1e-2  # small activations, so a wrong eps shows
        for weight in (torch.zeros(d), 0.1 * torch.randn(d, generator=g), torch.randn(d, generator=g)):
            got = candidate(x, weight, eps)
            assert isinstance(got, Tensor), f"expected a tensor, got {type(got).__name__}"
            assert got.shape == x.shape and got.dtype == x.dtype, (
                f"for x of shape {tuple(x.shape)} and dtype {x.dtype} expected the same shape and dtype, "
                f"got {tuple(got.shape)} and {got.dtype}"
            )
            expected = (x.double() * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + eps)) * (
                1.0 + weight.double()
            )
            tolerance = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-4}
            assert torch.allclose(got.double(), expected, **tolerance), (
                f"wrong values for x of shape {tuple(x.shape)} ({dtype}), eps={eps}, weight={weight.tolist()}: "
                "expected x / sqrt(mean(x**2, last dim) + eps) * (1 + weight)"
            )


def qk_norm(q: Tensor, k: Tensor, weight_q: Tensor, weight_k: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Challenge solution: RMSNorm of queries and keys over each head's features, before attention.

    Args:
        q: queries, shape ``(B, h_q, L, d_head)``.
        k: keys, shape ``(B, h_k, S, d_head)``.
        weight_q: the queries' gain, shape ``(d_head,)``.
        weight_k: the keys' gain, shape ``(d_head,)``.
        eps: added inside the square root.

    Returns:
        ``(q_normed, k_normed)``, with the shapes and dtypes of ``q`` and ``k``.

    Raises:
        ValueError: if ``q`` and ``k`` are not 4-D with the same ``d_head``, or a weight has the wrong shape.

    Examples:
        >>> q, k = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 7, 8)
        >>> q_normed, k_normed = qk_norm(q, k, torch.ones(8), torch.ones(8))
        >>> q_normed.shape, k_normed.shape
        (torch.Size([2, 4, 5, 8]), torch.Size([2, 2, 7, 8]))
    """
    for name, t in (("q", q), ("k", k)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            got = f"shape {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 4-D tensor (B, heads, length, d_head), got {got}")
    if q.size(-1) != k.size(-1):
        raise ValueError(f"q and k must share d_head, got {q.size(-1)} and {k.size(-1)}")
    # The last dim is one head's features: each (batch, head, position) vector is normalised alone,
    # so no head and no position ever sees another's statistics.
    return rms_norm(q, q.size(-1), weight_q, eps), rms_norm(k, k.size(-1), weight_k, eps)


def check_qk_norm(candidate: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``qk_norm``."""
    g = torch.Generator().manual_seed(0)
    for (B, h_q, h_k, L, S, d), eps in (((1, 1, 1, 1, 1, 4), 1e-6), ((2, 4, 4, 5, 5, 8), 1e-6),
                                        ((2, 8, 2, 3, 7, 16), 1e-5), ((1, 2, 1, 6, 2, 32), 1e-2)):
        # Heads get very different scales, so normalising over several heads at once gives wrong numbers.
        head_scale_q = torch.logspace(-1, 1, h_q)[None, :, None, None]
        head_scale_k = torch.logspace(1, -1, h_k)[None, :, None, None]
        q = torch.randn(B, h_q, L, d, generator=g) * head_scale_q
        k = torch.randn(B, h_k, S, d, generator=g) * head_scale_k
        weight_q, weight_k = torch.randn(d, generator=g), torch.randn(d, generator=g)
        got = candidate(q, k, weight_q, weight_k, eps)
        assert isinstance(got, tuple) and len(got) == 2, "qk_norm must return a pair (q_normed, k_normed)"
        q_normed, k_normed = got
        assert q_normed.shape == q.shape and k_normed.shape == k.shape, (
            f"shapes must be kept: expected {tuple(q.shape)} and {tuple(k.shape)}, "
            f"got {tuple(q_normed.shape)} and {tuple(k_normed.shape)}"
        )
        for name, normed, t, w in (("q", q_normed, q, weight_q), ("k", k_normed, k, weight_k)):
            expected = F.rms_norm(t, (d,), w, eps)
            assert torch.allclose(normed, expected, atol=1e-5, rtol=1e-4), (
                f"{name}_normed is wrong for q {tuple(q.shape)}, k {tuple(k.shape)}, eps={eps}: normalise each "
                f"head's d_head={d} features (the last dim) on their own, and multiply by weight_{name}"
            )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_normalized_shape(normalized_shape: object) -> tuple[int, ...]:
    """Turn an int or a sequence of ints into a tuple, as PyTorch does, refusing anything else."""
    if isinstance(normalized_shape, Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, Sequence) or isinstance(normalized_shape, str):
        raise TypeError(f"normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}")
    shape = tuple(normalized_shape)
    if not shape:
        raise ValueError("normalized_shape must name at least one dimension, got ()")
    if any(isinstance(n, bool) or not isinstance(n, Integral) or n < 0 for n in shape):
        raise ValueError(f"normalized_shape must hold non-negative ints, got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def _check_eps(eps: object) -> float | None:
    if eps is None:
        return None
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"eps must be a number or None, got {eps!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be non-negative, got {eps!r}")
    return float(eps)


def _check_rms_norm_args(
    input: object, normalized_shape: object, weight: object, eps: object
) -> tuple[tuple[int, ...], float | None]:
    shape = _check_normalized_shape(normalized_shape)
    eps = _check_eps(eps)
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if input.dim() < len(shape) or tuple(input.shape[input.dim() - len(shape) :]) != shape:
        raise ValueError(
            f"input's trailing dims must equal normalized_shape={shape}, got input shape {tuple(input.shape)}"
        )
    if weight is not None:
        if not isinstance(weight, Tensor) or not weight.is_floating_point():
            raise TypeError(f"weight must be a floating-point tensor or None, got {weight!r}")
        if tuple(weight.shape) != shape:
            raise ValueError(f"weight must have shape normalized_shape={shape}, got {tuple(weight.shape)}")
    return shape, eps
