r"""
# Quantisation: Shrinking the Monster to Fit in a Matchbox

!!! torchenstein "The Professor speaks"
    My creature thinks in float32: four bytes for every synapse, and most of those bytes are noise below
    the noise. Tonight I put it on a diet! Every weight becomes ONE byte, an integer on a ruler, plus one
    float per row that says how long the ruler's steps are. The monster shrinks to a third of its size and
    loses almost nothing of its mind. Almost: Dr. Hammer has found four ways to lose all of it, and we
    shall study every one.

**You will learn to**

- map floats to int8 and back with a scale and a zero point, symmetric and affine, per tensor and per
  channel, and prove every integer equal to `torch.quantize_per_tensor` and `torch.quantize_per_channel`;
- compute the scale and zero point from a minimum and a maximum exactly as PyTorch's `MinMaxObserver`
  and `PerChannelMinMaxObserver` do, with their ranges, their `eps` and their all-zero corner;
- predict the rounding error ($s^2/12$), measure it, and see one outlier row ruin a shared scale;
- quantise the Linear layers of our GPT to int8 weights, count the bytes saved by formula and from the
  `state_dict`, and measure what it costs in loss, untrained and trained;
- dodge four of Dr. Hammer's quantisation blunders: clipping by an unrepresentative calibration batch,
  a symmetric grid for ReLU outputs, one outlier channel, and a zero that is not zero.

## Numbers on a ruler

**Quantisation** stores a real number $x$ as a small integer $q$ on an evenly spaced ruler:

$$
x \approx \hat x = s\,(q - z), \qquad q \in \{q_{\min}, \dots, q_{\max}\},
$$

where the **scale** $s > 0$ is the distance between two neighbouring marks, and the **zero point** $z$ is
the integer that stands for $0.0$. PyTorch's two 8-bit types are `torch.qint8` (signed, $-128 \dots 127$)
and `torch.quint8` (unsigned, $0 \dots 255$). With `reduce_range=True` the observers use one bit fewer,
so that the x86 kernels can add products in 16 bits without overflow.

Two ways to place the ruler:

- **symmetric**: $z$ is fixed (0 for `qint8`), and the ruler reaches $\pm\max|x|$: one half of the
  integers for each sign;
- **affine** (asymmetric): the ruler runs from the smallest value to the largest, and $z$ is wherever
  $0.0$ falls; a lopsided range (ReLU outputs, all $\ge 0$) wastes nothing.

And two granularities: one scale for the whole tensor (**per tensor**), or one for every index along an
axis, usually every output channel (row) of a weight matrix (**per channel**).

```pycon
>>> import torch
>>> from torch import nn
>>> from torchenstein.advanced.quantization import (calculate_qparams, dequantize, min_max, quant_range,
...                                                 quantize_per_channel, quantize_per_tensor)
>>> {"qint8": quant_range(torch.qint8), "quint8": quant_range(torch.quint8),
...  "quint8, reduce_range": quant_range(torch.quint8, reduce_range=True)}
{'qint8': (-128, 127), 'quint8': (0, 255), 'quint8, reduce_range': (0, 127)}

```

## Scale and zero point from a minimum and a maximum

An **observer** watches a tensor, remembers its smallest and largest value, and turns them into $s$ and
$z$. [`min_max`][torchenstein.advanced.quantization.min_max] finds the pair, over the whole tensor or per
channel; [`calculate_qparams`][torchenstein.advanced.quantization.calculate_qparams] follows PyTorch's
recipe. First the range is stretched to contain zero, $x_{\min} \leftarrow \min(x_{\min}, 0)$ and
$x_{\max} \leftarrow \max(x_{\max}, 0)$, so that zero is always on the ruler. Then

$$
\text{symmetric: } s = \frac{\max(-x_{\min}, x_{\max})}{(q_{\max} - q_{\min})/2}, \qquad
\text{affine: } s = \frac{x_{\max} - x_{\min}}{q_{\max} - q_{\min}},\quad
z = q_{\min} - \operatorname{round}\!\left(\frac{x_{\min}}{s}\right),
$$

with $s$ never below `eps` (float32's machine epsilon), and $z$ clamped into the range. Symmetric
`quint8` puts $z$ at 128. Against the real observers:

```pycon
>>> from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(4, 16) + 0.5
>>> observer = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
>>> _ = observer(x)
>>> theirs, ours = observer.calculate_qparams(), calculate_qparams(*min_max(x), torch.quint8)
>>> {"scale equal": torch.equal(ours[0], theirs[0]), "zero point equal": torch.equal(ours[1], theirs[1].long()),
...  "zero point": ours[1].item()}
{'scale equal': True, 'zero point equal': True, 'zero point': 75}
>>> observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
>>> _ = observer(x)
>>> theirs = observer.calculate_qparams()
>>> ours = calculate_qparams(*min_max(x, ch_axis=0), torch.qint8, torch.per_channel_symmetric)
>>> torch.equal(ours[0], theirs[0]), ours[1].tolist()
(True, [0, 0, 0, 0])

```

A tensor of zeros has $x_{\min} = x_{\max} = 0$ and would get $s = 0$: a division by zero waiting to
happen. The `eps` floor gives it the tiniest scale instead, and zero still maps exactly to $z$:

```pycon
>>> calculate_qparams(*min_max(torch.zeros(5)), torch.quint8)
(tensor([1.1921e-07]), tensor([0]))

```

The tests (`tests/test_quantization.py`) prove the scales and zero points equal, bit for bit, to both
observers for `qint8` and `quint8`, the symmetric and affine schemes, `reduce_range` on and off, positive,
negative, mixed and all-zero tensors, channel axes 0, 1 and -1, and an empty tensor (both return
$s = 1$, $z = 0$).

!!! note "Where it differs from PyTorch"
    The observers return `int32` zero points for affine schemes and `int64` for symmetric ones; ours are
    always `int64`. Ours looks at one tensor; an observer keeps a running minimum and maximum over every
    batch it sees (take the `min` of the minima yourself).

## Quantise and dequantise, exactly as PyTorch does

The textbook says $q = \operatorname{clamp}(\operatorname{round}(x/s) + z,\ q_{\min}, q_{\max})$. I read
PyTorch's CPU kernels (FBGEMM's, on x86) and measured them, and they do something subtly different:

1. they multiply by the float32 reciprocal $1/s$ instead of dividing by $s$;
2. they add $z$ **before** rounding: $q = \operatorname{round}(x \cdot \tfrac1s + z)$;
3. `round` is C's `nearbyint`: a tie $k + \tfrac12$ goes to the **even** neighbour (like `torch.round`,
   and unlike Python 2's or C's `round`, which go away from zero);
4. values outside the range are **clamped** to $q_{\min}$ or $q_{\max}$: no overflow, no wrap-around.

Points 2 and 3 together matter: with an odd zero point, ties land on the other side. Half-way values with
$s = 1$ and $z = 71$:

```pycon
>>> ties = torch.tensor([0.5, 1.5, 2.5, -0.5])
>>> {"textbook": (torch.round(ties) + 71).int().tolist(),
...  "ours": quantize_per_tensor(ties, 1.0, 71, torch.quint8).tolist(),
...  "PyTorch": torch.quantize_per_tensor(ties, 1.0, 71, torch.quint8).int_repr().tolist()}
{'textbook': [71, 73, 73, 71], 'ours': [72, 72, 74, 70], 'PyTorch': [72, 72, 74, 70]}

```

One more detail hides in the rounding of $x \cdot \frac1s + z$ itself: the per-tensor kernel computes it
with a fused multiply-add (one rounding to float32), the per-channel kernel rounds the product first and
then the sum (two). The results differ only for values within a float32 rounding of a tie, but differ they
do, so [`quantize_per_tensor`][torchenstein.advanced.quantization.quantize_per_tensor] does the first and
[`quantize_per_channel`][torchenstein.advanced.quantization.quantize_per_channel] the second.
[`dequantize`][torchenstein.advanced.quantization.dequantize] computes $s(q - z)$, in float32 per
tensor and in float64 per channel (where PyTorch keeps its scales in float64), rounded to float32.

```pycon
>>> _ = torch.manual_seed(0)
>>> x = 3 * torch.randn(6, 5)
>>> q = quantize_per_tensor(x, 0.05, -3, torch.qint8)
>>> theirs = torch.quantize_per_tensor(x, 0.05, -3, torch.qint8)
>>> {"dtype": q.dtype, "equal": torch.equal(q, theirs.int_repr()),
...  "clamped": int((q == 127).sum() + (q == -128).sum()),
...  "dequantized equal": torch.equal(dequantize(q, 0.05, -3), theirs.dequantize())}
{'dtype': torch.int8, 'equal': True, 'clamped': 3, 'dequantized equal': True}
>>> scales, zero_points = calculate_qparams(*min_max(x, ch_axis=1), torch.quint8, torch.per_channel_affine)
>>> q = quantize_per_channel(x, scales, zero_points, 1, torch.quint8)
>>> theirs = torch.quantize_per_channel(x, scales, zero_points, 1, torch.quint8)
>>> torch.equal(q, theirs.int_repr()), torch.equal(dequantize(q, scales, zero_points, axis=1), theirs.dequantize())
(True, True)
>>> quantize_per_tensor(x, 0.05, 200, torch.qint8)
Traceback (most recent call last):
...
ValueError: zero_point must lie in [-128, 127], got 200

```

The tests prove the integers and the dequantised values equal to PyTorch's for both dtypes, random
scales over six orders of magnitude, every zero point parity, exact ties (scales that are powers of two),
near ties (ties rebuilt in float32 with arbitrary scales, where fused and unfused rounding part ways),
values far outside the range, infinities, channel axes 0, 1, 2 and -1, non-contiguous and 0-size inputs.

!!! note "Where it differs from PyTorch"
    PyTorch quantises float32 only; ours reads float16, bfloat16 and float64 as float32 first (the
    tests pin that). PyTorch wants a non-negative `axis`; ours takes -1 too. A NaN has no defined
    integer in either. The claim is for PyTorch's CPU kernels, measured on x86 (FBGEMM); its CUDA
    kernels are separate code, which this lesson has not checked, and may treat ties differently.

## How large is the error?

Round $x/s$ to the nearest integer and the error $x - \hat x$ lies in $[-s/2, s/2]$. When the values are
spread over many steps, the error is close to **uniform** on that interval, and a uniform variable on
an interval of width $s$ has variance

$$
\mathbb E\big[(x - \hat x)^2\big] = \frac1s \int_{-s/2}^{s/2} e^2\, de = \frac{s^2}{12}.
$$

So the error is set by the scale alone, and the scale by the largest value. Real weight matrices have a
few **outlier** rows, far larger than the rest.
[`outlier_weight`][torchenstein.advanced.quantization.outlier_weight] builds one: GPT's initialisation,
$\mathcal N(0, 0.02^2)$, with two rows fifty times larger.
[`quantization_mse`][torchenstein.advanced.quantization.quantization_mse] measures every row's mean
squared error and predicts it as $s^2/12$:

```pycon
>>> from torchenstein.advanced.quantization import outlier_weight, quantization_mse
>>> w = outlier_weight()                                     # (64, 256), rows 0 and 1 are outliers
>>> report = {}
>>> for per_channel in (False, True):
...     measured, predicted = quantization_mse(w, per_channel)
...     report["per channel" if per_channel else "per tensor"] = {
...         "measured / predicted": round((measured[2:].mean() / predicted[2:].mean()).item(), 2),
...         "ordinary rows' MSE": f"{measured[2:].mean().item():.1e}"}
>>> report
{'per tensor': {'measured / predicted': 1.01, "ordinary rows' MSE": '8.7e-05'},
 'per channel': {'measured / predicted': 1.0, "ordinary rows' MSE": '2.0e-08'}}

```

The formula holds in both cases, and that is the bad news: per tensor, the two outlier rows set the
step for all sixty-four, and every ordinary row pays over four thousand times the error it would pay with
a ruler of its own. The left panel shows why: one ordinary row, and the few marks of the shared ruler
that fall inside it, against the dense marks of its own.

![Left: a histogram of one ordinary weight row, about plus or minus 0.06 wide, with the per-tensor grid's five or six widely spaced marks across it and the per-channel grid's dense marks. Right: the RMS rounding error of all 64 rows on a log scale, measured dots on the predicted s over root 12 lines; per tensor every row sits near 0.01, per channel the ordinary rows sit near 0.00014 and only the two outliers near 0.01.](plot_quantization_error.svg)

## Weight-only int8 for our GPT

Now the monster itself: the [GPT](../../transformers/gpt/index.md) of Part 4. Almost all its
parameters sit in the four `nn.Linear` layers of every block (`attn.c_attn`, `attn.c_proj`, `mlp.c_fc`,
`mlp.c_proj`). [`QuantizedLinear`][torchenstein.advanced.quantization.QuantizedLinear] stores such a
layer's weight as int8 with one float32 scale per output channel (per-channel symmetric `qint8`, the
recipe above), keeps the bias in float, and **dequantises on the fly**: `forward` rebuilds the float
weight $s_i q_{ij}$ and calls `F.linear`. Activations stay in floating point: this is **weight-only**
quantisation. It saves memory and bandwidth; speed needs kernels that multiply the int8 weight directly,
which this lesson does not write.

[`quantize_linear_layers`][torchenstein.advanced.quantization.quantize_linear_layers] swaps every
`nn.Linear` of a copy of the model for one, **except the tied head**: GPT's `lm_head.weight` *is*
`transformer.wte.weight`. Quantising the head would untie it (an int8 copy for the head, the float table
for the embedding) and store the table twice, so it stays in float, shared, as it was.

```pycon
>>> from torchenstein.transformers.gpt import GPT, GPTConfig
>>> from torchenstein.advanced.quantization import QuantizedLinear, quantize_linear_layers, state_bytes
>>> _ = torch.manual_seed(0)
>>> model = GPT(GPTConfig())                                  # 4 blocks, 128 wide, 256 byte tokens
>>> qmodel = quantize_linear_layers(model)
>>> qmodel.transformer.h[0].mlp.c_fc
QuantizedLinear(in_features=128, out_features=512, bias=True)
>>> qmodel.lm_head.weight is qmodel.transformer.wte.weight, type(qmodel.lm_head).__name__
(True, 'Linear')
>>> layer = qmodel.transformer.h[0].attn.c_attn
>>> theirs = torch.quantize_per_channel(model.transformer.h[0].attn.c_attn.weight.detach(),
...                                     layer.weight_scale, torch.zeros(384, dtype=torch.long), 0, torch.qint8)
>>> torch.equal(layer.weight, theirs.int_repr()), torch.equal(layer.dequantized_weight(), theirs.dequantize())
(True, True)

```

**Bytes.** A float32 GPT with biases holds $N = VC + T_{\max}C + L(12C^2 + 13C) + 2C$ numbers, four
bytes each (the [GPT](../../transformers/gpt/index.md) lesson counts them). Quantised, the $12LC^2$
Linear weights take one byte each, plus a four-byte scale for each of the $9C$ output channels of a
block; the rest stays float32. [`state_bytes`][torchenstein.advanced.quantization.state_bytes] measures
the `state_dict`, counting a tied storage once (as `torch.save` does), and
[`gpt_state_bytes`][torchenstein.advanced.quantization.gpt_state_bytes] is the formula:

```pycon
>>> from torchenstein.advanced.quantization import gpt_state_bytes
>>> before, after = state_bytes(model), state_bytes(qmodel)
>>> {"float32": before, "int8 weights": after, "formula agrees": (before, after) == (
...     gpt_state_bytes(model.config), gpt_state_bytes(model.config, quantized=True)),
...  "ratio": round(before / after, 2)}
{'float32': 3337216, 'int8 weights': 996352, 'formula agrees': True, 'ratio': 3.35}

```

Not quite four times smaller: the embeddings, LayerNorms, biases and scales are still float32.

**Loss.** The only question that matters: how much worse does the monster predict? We measure the loss
on a fixed batch of the course's own text (bytes, the tokens of the
[tokenisation](../../transformers/tokenization/index.md) lesson before any merges) with
[`loss_change`][torchenstein.advanced.quantization.loss_change], for a small GPT just initialised and the
same GPT after thirty AdamW steps ([`tiny_gpt`][torchenstein.advanced.quantization.tiny_gpt]); the batch
is one it never trained on:

```pycon
>>> from torchenstein.advanced.quantization import corpus_batch, loss_change, tiny_gpt
>>> idx, targets = corpus_batch(batch_size=8, block_size=32, seed=0)
>>> for steps in (0, 30):
...     change = loss_change(tiny_gpt(steps), idx, targets)
...     print(f"{steps:2} steps: loss {change['float']:.3f} -> {change['int8']:.3f}, "
...           f"relative change {100 * change['relative']:+.3f}%")
 0 steps: loss 5.519 -> 5.519, relative change -0.002%
30 steps: loss 3.636 -> 3.637, relative change +0.018%

```

A few thousandths of a percent for the newborn model (its weights are all ordinary; the rounding noise
averages out), a couple of hundredths for the trained one: int8 per-channel weights are nearly free.
Larger trained models grow outlier channels in their *activations* too, and 4-bit weights are far
coarser: that is where the real fights of quantisation happen.

## PyTorch's own dynamic quantisation

`torch.ao.quantization.quantize_dynamic` replaces `nn.Linear` layers with int8 versions on the CPU and,
unlike ours, quantises the activations as well, on the fly for every batch (`quint8`, with
`reduce_range`). With `per_channel_dynamic_qconfig` its weight observer is
`PerChannelMinMaxObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)`, our recipe exactly:
the tests prove its int8 weights and scales equal to ours, layer by layer of our GPT, and its outputs
close to ours (not equal: it rounds the activations too). `torch.ao.quantization` is deprecated in
recent PyTorch in favour of the separate `torchao` library, so the lesson does not lean on it.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: calibrating on a batch that is not representative"
    Hammer calibrates his activation scale on the first batch he finds: thirty-two quiet values. Then
    real inputs arrive, four times as spread out, and everything beyond the calibrated range is clamped to
    the last mark. Nothing warns him; the outputs are merely wrong.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> calibration, real = 0.5 * torch.randn(32), 2.0 * torch.randn(10_000)
    >>> def rms_error(x, calibrated_on):
    ...     scale, zero_point = calculate_qparams(*min_max(calibrated_on), torch.quint8)
    ...     s, z = scale.item(), int(zero_point)
    ...     return round((dequantize(quantize_per_tensor(x, s, z, torch.quint8), s, z) - x).pow(2).mean().sqrt().item(), 3)
    >>> low, high = min_max(calibration)
    >>> {"clipped": round(((real < low) | (real > high)).float().mean().item(), 2),
    ...  "RMS error, Hammer": rms_error(real, calibration), "RMS error, representative": rms_error(real, real)}
    {'clipped': 0.62, 'RMS error, Hammer': 1.306, 'RMS error, representative': 0.019}

    ```

    Calibrate on many batches of real data (an observer keeps the running minimum and maximum), and
    where a few wild values would stretch the range, clip them on purpose with a percentile (the second
    challenge).

!!! hammer "Dr. Hammer's trap: a symmetric grid for ReLU outputs"
    Hammer quantises everything symmetrically to `qint8`. After a ReLU every value is $\ge 0$, so the 128
    negative integers are never used: half the ruler wasted, steps twice as long, four times the squared
    error. An affine `quint8` grid puts all 256 marks where the values are.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> h = torch.relu(torch.randn(10_000))
    >>> s_sym, _ = calculate_qparams(*min_max(h), torch.qint8, torch.per_tensor_symmetric)
    >>> s_aff, z_aff = calculate_qparams(*min_max(h), torch.quint8, torch.per_tensor_affine)
    >>> q_sym = quantize_per_tensor(h, s_sym.item(), 0, torch.qint8)
    >>> q_aff = quantize_per_tensor(h, s_aff.item(), int(z_aff), torch.quint8)
    >>> mse_sym = (dequantize(q_sym, s_sym.item(), 0) - h).pow(2).mean()
    >>> mse_aff = (dequantize(q_aff, s_aff.item(), int(z_aff)) - h).pow(2).mean()
    >>> {"integers used, symmetric": q_sym.unique().numel(), "integers used, affine": q_aff.unique().numel(),
    ...  "MSE ratio": round((mse_sym / mse_aff).item(), 1)}
    {'integers used, symmetric': 103, 'integers used, affine': 193, 'MSE ratio': 4.2}

    ```

!!! hammer "Dr. Hammer's trap: one scale for a matrix with an outlier row"
    Per-tensor quantisation is one line shorter, so Hammer uses it for his weights. Two outlier rows set
    the scale, and the ordinary rows, whose values span a step or two, collapse onto a handful of
    integers; more than half of their weights become exactly zero.

    ```pycon
    >>> w = outlier_weight()
    >>> scale, _ = calculate_qparams(*min_max(w), torch.qint8, torch.per_tensor_symmetric)
    >>> q_tensor = quantize_per_tensor(w, scale.item(), 0, torch.qint8)
    >>> scales, zero_points = calculate_qparams(*min_max(w, ch_axis=0), torch.qint8, torch.per_channel_symmetric)
    >>> q_channel = quantize_per_channel(w, scales, zero_points, 0, torch.qint8)
    >>> {name: {"zeros": round((q[2:] == 0).float().mean().item(), 3), "integers used": q[2:].unique().numel()}
    ...  for name, q in (("per tensor", q_tensor), ("per channel", q_channel))}
    {'per tensor': {'zeros': 0.575, 'integers used': 6}, 'per channel': {'zeros': 0.011, 'integers used': 254}}

    ```

    Quantise weights per output channel. (Outliers in *activations* are per input feature, and no
    per-row scale can help there: that needs other tricks, such as keeping those features in float.)

!!! hammer "Dr. Hammer's trap: a zero that is not zero"
    Hammer maps his range $[x_{\min}, x_{\max}]$ straight onto $0 \dots 255$: $\hat x = x_{\min} + s q$. His
    activations are all positive, $0.3 \dots 5$, except the padding, which is exactly zero. Zero is not on
    his ruler; it clamps to $q = 0$ and comes back as $0.3$. Every padded position now whispers into the
    attention sums. His "zero point" $-x_{\min}/s$ is not even an integer, which ours refuses outright:

    ```pycon
    >>> acts = torch.tensor([0.0, 0.0, 0.3, 1.7, 5.0])             # two padding zeros first
    >>> s = (5.0 - 0.3) / 255
    >>> hammer = 0.3 + s * torch.round((acts - 0.3) / s).clamp(0, 255)
    >>> hammer[:2].tolist()
    [0.30000001192092896, 0.30000001192092896]
    >>> quantize_per_tensor(acts, s, -0.3 / s, torch.quint8)
    Traceback (most recent call last):
    ...
    TypeError: zero_point must be an int, so that 0.0 lands exactly on the integer grid, got -16.27659574468085
    >>> scale, zero_point = calculate_qparams(*min_max(acts), torch.quint8)
    >>> q = quantize_per_tensor(acts, scale.item(), int(zero_point), torch.quint8)
    >>> dequantize(q, scale.item(), int(zero_point))[:2].tolist()
    [0.0, 0.0]

    ```

    The observers stretch the range to contain zero and round the zero point to an integer, so
    $s(z - z) = 0$ exactly. Zero must be representable: padding, ReLU outputs and masked values depend
    on it.

## Challenges

**Pack int4.** Four bits hold the integers $-8 \dots 7$, two to a byte, and 4-bit weights halve the
memory again. Write `pack_int4(values)`: an integer tensor with values in $-8 \dots 7$ and an even last
dimension goes in; a `uint8` tensor with a last dimension half as long comes out, element $2i$ in the
low four bits of byte $i$ and element $2i+1$ in the high four, each as a 4-bit two's complement number
(so $-1$ is `0b1111`). Check it with `check_pack_int4(pack_int4)`; the Professor's solution,
[`pack_int4`][torchenstein.advanced.quantization.pack_int4], and its inverse,
[`unpack_int4`][torchenstein.advanced.quantization.unpack_int4], are in the source.

```pycon
>>> from torchenstein.advanced.quantization import check_pack_int4, pack_int4, unpack_int4
>>> packed = pack_int4(torch.tensor([1, 2, -1, -8], dtype=torch.int8))
>>> [f"{byte:08b}" for byte in packed.tolist()], unpack_int4(packed).tolist()
(['00100001', '10001111'], [1, 2, -1, -8])
>>> check_pack_int4(pack_int4)

```

**A percentile observer.** The MinMax observer lets one wild value set the range (the first trap).
Write `percentile_qparams(input, percentile=99.9, dtype=torch.quint8)` returning an affine
`(scale, zero_point)` from the `(100 - percentile)`-th and `percentile`-th percentiles of `input`
(`torch.quantile`), passed through the observers' recipe (zero stretched into the range). Check it with
`check_percentile_qparams(percentile_qparams)`.

```pycon
>>> from torchenstein.advanced.quantization import check_percentile_qparams, percentile_qparams
>>> check_percentile_qparams(percentile_qparams)

```
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.transformers.gpt import GPT, GPTConfig

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

# The two quantised dtypes of PyTorch's eager quantisation, the full range of integers each one holds, and
# the plain integer dtype its `int_repr()` returns.
QUANT_DTYPES: dict[torch.dtype, tuple[int, int, torch.dtype]] = {
    torch.qint8: (-128, 127, torch.int8),
    torch.quint8: (0, 255, torch.uint8),
}
"""``{quantised dtype: (quant_min, quant_max, integer dtype)}`` for ``torch.qint8`` and ``torch.quint8``."""

SYMMETRIC = (torch.per_tensor_symmetric, torch.per_channel_symmetric)
AFFINE = (torch.per_tensor_affine, torch.per_channel_affine)


def quant_range(dtype: torch.dtype = torch.quint8, reduce_range: bool = False) -> tuple[int, int]:
    """The integers ``(quant_min, quant_max)`` a quantised dtype may hold, as PyTorch's observers pick them.

    Args:
        dtype: ``torch.qint8`` (signed, -128..127) or ``torch.quint8`` (unsigned, 0..255).
        reduce_range: halve the range (one bit fewer), as the x86 kernels want for activations.

    Returns:
        ``(quant_min, quant_max)``.

    Raises:
        TypeError: if ``dtype`` is not ``torch.qint8`` or ``torch.quint8``.

    Examples:
        >>> quant_range(torch.qint8), quant_range(torch.quint8), quant_range(torch.quint8, reduce_range=True)
        ((-128, 127), (0, 255), (0, 127))
    """
    quant_min, quant_max, _ = _check_dtype(dtype)
    # One bit fewer: -64..63 or 0..127, so a sum of two products cannot overflow a 16-bit accumulator.
    return (quant_min // 2, quant_max // 2) if reduce_range else (quant_min, quant_max)


def min_max(input: Tensor, ch_axis: int | None = None) -> tuple[Tensor, Tensor]:
    """The smallest and largest value of a tensor, over everything or per channel, as a MinMax observer sees them.

    Args:
        input: a floating-point tensor (read in float32, as the observers do).
        ch_axis: ``None`` for one minimum and maximum over the whole tensor; a dimension for one pair
            per index along it (per channel).

    Returns:
        ``(min_val, max_val)``: 0-d tensors, or 1-D of length ``input.size(ch_axis)``. An empty tensor gives
        ``(inf, -inf)``: nothing observed.

    Examples:
        >>> min_max(torch.tensor([[1.0, -2.0], [3.0, 0.5]]), ch_axis=0)
        (tensor([-2.0000,  0.5000]), tensor([1., 3.]))
        >>> min_max(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        (tensor(-2.), tensor(3.))
    """
    x = _check_float_tensor(input, "input").float()
    if ch_axis is None:
        if x.numel() == 0:
            return torch.tensor(math.inf, device=x.device), torch.tensor(-math.inf, device=x.device)
        return tuple(torch.aminmax(x))
    axis = _check_axis(ch_axis, x.dim(), "ch_axis")
    # Every channel's values in one row: (C, everything else).
    rows = x.movedim(axis, 0).reshape(x.size(axis), x.numel() // max(x.size(axis), 1))  # (C, N / C)
    if rows.numel() == 0:
        return torch.full((rows.size(0),), math.inf), torch.full((rows.size(0),), -math.inf)
    return tuple(torch.aminmax(rows, dim=1))


def calculate_qparams(
    min_val: Tensor,
    max_val: Tensor,
    dtype: torch.dtype = torch.quint8,
    qscheme: torch.qscheme = torch.per_tensor_affine,
    reduce_range: bool = False,
    eps: float = torch.finfo(torch.float32).eps,
) -> tuple[Tensor, Tensor]:
    r"""Scale and zero point from a minimum and a maximum, exactly as PyTorch's MinMax observers compute them.

    The range is first stretched to contain zero, so zero is always exactly representable. Symmetric
    schemes use $s = \max(|x_{\min}|, x_{\max}) / ((q_{\max} - q_{\min}) / 2)$ and a fixed zero point (0 for
    ``qint8``, 128 for ``quint8``); affine ones use $s = (x_{\max} - x_{\min}) / (q_{\max} - q_{\min})$
    and $z = q_{\min} - \operatorname{round}(x_{\min} / s)$. The scale is never below ``eps``.

    Args:
        min_val: the smallest value seen, 0-d (per tensor) or 1-D (per channel).
        max_val: the largest value seen, the same shape.
        dtype: ``torch.qint8`` or ``torch.quint8``.
        qscheme: ``torch.per_tensor_affine``, ``torch.per_tensor_symmetric``, ``torch.per_channel_affine``
            or ``torch.per_channel_symmetric`` (only affine or symmetric matters here).
        reduce_range: use the halved integer range (see `quant_range`).
        eps: the smallest scale allowed (float32's machine epsilon, as in PyTorch).

    Returns:
        ``(scale, zero_point)``: float32 and int64 tensors of shape ``(1,)`` per tensor (the observers'
        shape) or ``(C,)`` per channel. Nothing observed (an empty tensor) gives ``([1.0], [0])``.

    Raises:
        TypeError: if ``dtype`` or ``qscheme`` is not one of those above.
        ValueError: for a symmetric ``quint8`` scheme with ``reduce_range`` (PyTorch refuses it too).

    Examples:
        >>> calculate_qparams(torch.tensor(-1.0), torch.tensor(3.0))
        (tensor([0.0157]), tensor([64]))
    """
    quant_min, quant_max = quant_range(dtype, reduce_range)
    _check_qscheme(qscheme, dtype, reduce_range)
    # An observer that saw nothing returns these defaults (and warns); so do we, silently.
    if min_val.numel() == 0 or bool(((min_val == math.inf) & (max_val == -math.inf)).all()):
        return torch.tensor([1.0]), torch.tensor([0])
    # Stretch the range to contain zero: zero must be exactly representable (padding, ReLU's zeros).
    min_val_neg = torch.clamp(min_val.float(), max=0.0)
    max_val_pos = torch.clamp(max_val.float(), min=0.0)
    eps_t = torch.tensor(eps, dtype=torch.float32, device=min_val_neg.device)
    if qscheme in SYMMETRIC:
        # One half of the integer range for each sign, around a fixed zero point.
        max_abs = torch.maximum(-min_val_neg, max_val_pos)
        scale = torch.maximum(max_abs / (float(quant_max - quant_min) / 2), eps_t)
        # PyTorch's choice for quint8: 128, the middle of 0..255.
        zero_point = torch.full_like(scale, 128 if dtype == torch.quint8 else 0, dtype=torch.int64)
    else:
        # The whole stretched range onto the whole integer range; the zero point is where 0.0 lands.
        scale = torch.maximum((max_val_pos - min_val_neg) / float(quant_max - quant_min), eps_t)
        zero_point = quant_min - torch.round(min_val_neg / scale).to(torch.int64)
        zero_point = torch.clamp(zero_point, quant_min, quant_max)
    # The observers hand back shape (1,) for a per-tensor answer, so FakeQuantize can take it as it is.
    return scale.reshape(-1), zero_point.reshape(-1)


def quantize_per_tensor(input: Tensor, scale: float, zero_point: int, dtype: torch.dtype) -> Tensor:
    r"""Round a float tensor onto the integer grid $q = \operatorname{clamp}(\lfloor x/s + z \rceil)$, as PyTorch's CPU kernel does.

    Equal, integer for integer, to ``torch.quantize_per_tensor(input, scale, zero_point, dtype).int_repr()``
    on the CPU. The kernel multiplies by the float32 reciprocal of the scale, adds the zero point
    *before* rounding, rounds once (a fused multiply-add) and ties go to even.

    Args:
        input: a floating-point tensor (float16, bfloat16 and float64 are read as float32 first; PyTorch
            accepts float32 only).
        scale: the step between two neighbouring integers, a positive number (used in float32).
        zero_point: the integer that stands for 0.0, within the dtype's range.
        dtype: ``torch.qint8`` or ``torch.quint8``.

    Returns:
        An ``int8`` (for ``qint8``) or ``uint8`` (for ``quint8``) tensor of ``input``'s shape.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor, ``zero_point`` not an int, or ``dtype`` wrong.
        ValueError: if ``scale`` is not positive and finite, or ``zero_point`` is outside the dtype's range.

    Examples:
        >>> quantize_per_tensor(torch.tensor([-1.0, 0.0, 0.26, 9.0]), 0.1, 3, torch.quint8)
        tensor([ 0,  3,  6, 93], dtype=torch.uint8)
    """
    quant_min, quant_max, int_dtype = _check_dtype(dtype)
    x = _check_float_tensor(input, "input").float()
    inv_scale = 1.0 / _check_scale(scale)  # float32, as the kernel computes it
    _check_zero_point(zero_point, quant_min, quant_max, "zero_point")
    # x * (1/s) + z rounded ONCE to float32 (the kernel's fused multiply-add): float64 holds the product of
    # two float32 numbers exactly, and one rounding to float32 then does what the FMA does.
    shifted = (x.double() * inv_scale.double() + zero_point).float()
    # torch.round rounds half to even, as C's nearbyint does in the default rounding mode.
    return torch.round(shifted).clamp(quant_min, quant_max).to(int_dtype)


def quantize_per_channel(input: Tensor, scales: Tensor, zero_points: Tensor, axis: int, dtype: torch.dtype) -> Tensor:
    """One scale and zero point per index along ``axis``, as ``torch.quantize_per_channel`` on the CPU.

    Equal to ``torch.quantize_per_channel(input, scales, zero_points, axis, dtype).int_repr()``. This kernel
    is not fused: it rounds ``x * (1/s)`` to float32, adds the zero point (a second rounding), then
    rounds half to even and clamps.

    Args:
        input: a floating-point tensor (read as float32).
        scales: 1-D, one positive scale per channel (used in float32).
        zero_points: 1-D integer tensor, one zero point per channel, within the dtype's range.
        axis: the channel dimension (negative counts from the end; PyTorch wants it non-negative).
        dtype: ``torch.qint8`` or ``torch.quint8``.

    Returns:
        An ``int8`` or ``uint8`` tensor of ``input``'s shape.

    Raises:
        TypeError: if an argument has the wrong type or dtype.
        ValueError: if a shape does not match ``input.size(axis)``, a scale is not positive, or a zero
            point is out of range.

    Examples:
        >>> w = torch.tensor([[0.5, -1.0], [30.0, 12.0]])
        >>> quantize_per_channel(w, torch.tensor([0.01, 0.25]), torch.tensor([0, 0]), 0, torch.qint8)
        tensor([[  50, -100],
                [ 120,   48]], dtype=torch.int8)
    """
    quant_min, quant_max, int_dtype = _check_dtype(dtype)
    x = _check_float_tensor(input, "input").float()
    axis = _check_axis(axis, x.dim(), "axis")
    scales, zero_points = _check_channel_params(scales, zero_points, x.size(axis), quant_min, quant_max)
    # Scales and zero points become (1, .., C, .., 1), so they broadcast along the channel dimension only.
    shape = [1] * x.dim()
    shape[axis] = -1
    inv_scale = (1.0 / scales.float()).view(shape)
    shifted = x * inv_scale + zero_points.float().view(shape)  # two float32 roundings, as the kernel
    return torch.round(shifted).clamp(quant_min, quant_max).to(int_dtype)


def dequantize(int_repr: Tensor, scale: float | Tensor, zero_point: int | Tensor, axis: int | None = None) -> Tensor:
    r"""Back from integers to floats: $\hat x = s\,(q - z)$, equal to PyTorch's ``dequantize()`` on the CPU.

    Args:
        int_repr: the integers (``int8`` or ``uint8``, or any integer dtype).
        scale: a positive number (per tensor), or a 1-D tensor of scales (per channel).
        zero_point: an int (per tensor), or a 1-D integer tensor (per channel).
        axis: ``None`` per tensor; the channel dimension per channel.

    Returns:
        A float32 tensor of ``int_repr``'s shape. Per tensor the product is taken in float32; per channel
        in float64 and then rounded to float32, as PyTorch keeps per-channel scales in float64.

    Raises:
        TypeError: if ``int_repr`` is not an integer tensor.

    Examples:
        >>> dequantize(torch.tensor([0, 3, 6, 93], dtype=torch.uint8), 0.1, 3)
        tensor([-0.3000,  0.0000,  0.3000,  9.0000])
    """
    if not isinstance(int_repr, Tensor) or int_repr.is_floating_point() or int_repr.is_complex():
        raise TypeError(f"int_repr must be an integer tensor, got {_describe(int_repr)}")
    if axis is None:
        return (int_repr.float() - zero_point) * _check_scale(scale)
    axis = _check_axis(axis, int_repr.dim(), "axis")
    shape = [1] * int_repr.dim()
    shape[axis] = -1
    return ((int_repr.double() - zero_point.view(shape)) * scale.double().view(shape)).float()


def quantization_mse(weight: Tensor, per_channel: bool) -> tuple[Tensor, Tensor]:
    r"""The mean squared rounding error of every row of a matrix, measured, and predicted as $s^2/12$.

    The weight is quantised symmetrically to ``qint8`` (zero point 0), with one scale for the whole matrix
    or one per row (output channel), and dequantised again.

    Args:
        weight: a 2-D floating-point matrix ``(out_features, in_features)``.
        per_channel: one scale per row (``True``) or one for the whole matrix (``False``).

    Returns:
        ``(measured, predicted)``: two float tensors of shape ``(out_features,)``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> measured, predicted = quantization_mse(torch.randn(4, 4096), per_channel=True)
        >>> (measured / predicted).round(decimals=1)
        tensor([1., 1., 1., 1.])
    """
    w = _check_float_tensor(weight, "weight").float()
    if w.dim() != 2:
        raise ValueError(f"weight must be a 2-D matrix (out_features, in_features), got shape {tuple(w.shape)}")
    qscheme = torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric
    scale, zero_point = calculate_qparams(*min_max(w, 0 if per_channel else None), torch.qint8, qscheme)
    if per_channel:
        w_hat = dequantize(quantize_per_channel(w, scale, zero_point, 0, torch.qint8), scale, zero_point, 0)
    else:
        s, z = scale.item(), int(zero_point.item())
        w_hat = dequantize(quantize_per_tensor(w, s, z, torch.qint8), s, z)
    measured = (w_hat - w).pow(2).mean(dim=1)  # (out_features,)
    # Rounding error spread evenly over one step [-s/2, s/2] has variance s^2 / 12.
    predicted = (scale.double().pow(2) / 12).float().expand_as(measured)
    return measured, predicted


def outlier_weight(out_features: int = 64, in_features: int = 256, outliers: int = 2, seed: int = 0) -> Tensor:
    """A GPT-initialised weight matrix, N(0, 0.02^2), whose first ``outliers`` rows are fifty times larger.

    Trained networks grow a few such channels; one is enough to ruin a shared scale.

    Examples:
        >>> outlier_weight().shape
        torch.Size([64, 256])
    """
    g = torch.Generator().manual_seed(seed)
    weight = 0.02 * torch.randn(out_features, in_features, generator=g)
    weight[:outliers] *= 50.0
    return weight


def plot_quantization_error() -> Figure:
    """Draw an ordinary row of `outlier_weight` on both grids, and every row's rounding error per tensor and per channel.

    Returns:
        A matplotlib ``Figure`` with two panels.

    Examples:
        >>> fig = plot_quantization_error()
        >>> len(fig.axes)
        2
    """
    weight = outlier_weight()
    fig, (ax_hist, ax_err) = new_figure(1, 2, width=9.0, height=3.6)
    row = weight[10]
    ax_hist.hist(row.numpy(), bins=40, color=PALETTE[3], alpha=0.7, label="row 10 of the weight")
    for per_channel, colour, label in ((False, PALETTE[2], "per-tensor grid"), (True, PALETTE[1], "per-channel grid")):
        qscheme = torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric
        scale, _ = calculate_qparams(*min_max(weight, 0 if per_channel else None), torch.qint8, qscheme)
        s = scale[10 if per_channel else 0].item()
        # The representable values s * q that fall inside this row's spread.
        levels = torch.arange(math.floor(row.min() / s), math.ceil(row.max() / s) + 1) * s
        for i, level in enumerate(levels.tolist()):
            ax_hist.axvline(level, color=colour, linewidth=0.6 if per_channel else 1.6,
                            label=label if i == 0 else None)
    ax_hist.set(title="One ordinary row and the values int8 can hold", xlabel="weight value", ylabel="count")
    ax_hist.legend(fontsize=7, loc="upper left")
    rows = torch.arange(weight.size(0))
    for per_channel, colour, label in ((False, PALETTE[2], "per tensor"), (True, PALETTE[1], "per channel")):
        measured, predicted = quantization_mse(weight, per_channel)
        ax_err.semilogy(rows, measured.sqrt(), "o", markersize=3, color=colour, label=f"{label}: measured")
        ax_err.semilogy(rows, predicted.sqrt(), "-", color=colour, linewidth=1, label=f"{label}: s/sqrt(12)")
    ax_err.set(title="RMS rounding error of every row", xlabel="row (output channel)", ylabel="RMS error")
    ax_err.legend(fontsize=7)
    return fig


class QuantizedLinear(nn.Module):
    """A Linear layer whose weight is stored in int8, with one float32 scale per output channel.

    The weight is quantised symmetrically per output channel (``qint8``, zero point 0, PyTorch's
    ``per_channel_symmetric`` MinMax recipe) and dequantised on the fly in ``forward``: activations stay in
    floating point (weight-only quantisation). The bias stays in floating point.

    Args:
        in_features: the size of each input vector.
        out_features: the size of each output vector.
        bias: whether the layer adds a bias.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> layer = QuantizedLinear.from_float(nn.Linear(8, 3))
        >>> layer
        QuantizedLinear(in_features=8, out_features=3, bias=True)
        >>> {name: t.dtype for name, t in layer.state_dict().items()}
        {'bias': torch.float32, 'weight': torch.int8, 'weight_scale': torch.float32}
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # Buffers, not parameters: an int8 tensor cannot be trained, but it must travel in the state_dict.
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_float(cls, linear: nn.Linear) -> QuantizedLinear:
        """Quantise an ``nn.Linear``: one symmetric int8 scale per row (output channel) of its weight."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None).to(weight.device)
        scale, zero_point = calculate_qparams(*min_max(weight, ch_axis=0), torch.qint8, torch.per_channel_symmetric)
        layer.weight.copy_(quantize_per_channel(weight, scale, zero_point, 0, torch.qint8))  # (out, in)
        layer.weight_scale.copy_(scale)  # (out,)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach().clone().float(), requires_grad=False)
        return layer

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The float weight the int8 one stands for: row ``i`` is ``weight[i] * weight_scale[i]``."""
        return self.weight.to(dtype) * self.weight_scale.to(dtype)[:, None]  # (out, in)

    def forward(self, input: Tensor) -> Tensor:
        # Dequantise, then an ordinary float matmul. Fused kernels skip materialising the float weight (they
        # scale the output instead: (x @ q.T) * s is the same sum), which is where the speed comes from.
        bias = None if self.bias is None else self.bias.to(input.dtype)
        return F.linear(input, self.dequantized_weight(input.dtype), bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize_linear_layers(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every ``nn.Linear`` of a model by a `QuantizedLinear`, except a tied one.

    A Linear whose weight is shared with another module (GPT's ``lm_head``, tied to the token embedding
    ``wte``) is left in floating point: quantising it would untie the two and store the table twice.

    Args:
        model: any module.
        inplace: change ``model`` itself instead of a deep copy of it.

    Returns:
        The quantised model (``model`` itself when ``inplace``).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> mlp = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
        >>> quantize_linear_layers(mlp)
        Sequential(
          (0): QuantizedLinear(in_features=4, out_features=8, bias=True)
          (1): GELU(approximate='none')
          (2): QuantizedLinear(in_features=8, out_features=2, bias=True)
        )
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)  # deepcopy keeps ties: the copy's head and table are still one tensor
    # How often each parameter appears in the model: twice for a tied weight.
    uses: dict[int, int] = {}
    for _, param in model.named_parameters(remove_duplicate=False):
        uses[id(param)] = uses.get(id(param), 0) + 1
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and uses[id(child.weight)] == 1:
                setattr(parent, name, QuantizedLinear.from_float(child))
    return model


def state_bytes(module: nn.Module) -> int:
    """The bytes of a module's ``state_dict``, each storage counted once (a tied weight is saved once).

    Examples:
        >>> state_bytes(nn.Linear(10, 4))       # (4 * 10 + 4) float32 numbers
        176
    """
    storages: dict[int, int] = {}
    for tensor in module.state_dict().values():
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def gpt_state_bytes(config: GPTConfig, quantized: bool = False) -> int:
    r"""The bytes of a float32 `GPT`'s state by formula, before or after `quantize_linear_layers`.

    Every block has four Linear layers with $12C^2$ weights and $3C + C + 4C + C = 9C$ output channels;
    quantised, each weight takes one byte and each output channel a four-byte scale. Everything else (the
    tied table, positions, LayerNorms, biases) stays float32.

    Examples:
        >>> gpt_state_bytes(GPTConfig()), gpt_state_bytes(GPTConfig(), quantized=True)
        (3337216, 996352)
    """
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    per_block = 12 * C * C + (13 * C if config.bias else 2 * C)  # weights, then biases and LayerNorms
    numbers = V * C + T * C + L * per_block + (2 * C if config.bias else C)
    if not quantized:
        return 4 * numbers
    linear_weights = L * 12 * C * C
    return 4 * (numbers - linear_weights) + linear_weights + 4 * L * 9 * C


def corpus_bytes(max_chars: int = 20_000) -> Tensor:
    """The first ``max_chars`` characters of the course's own text, as a 1-D int64 tensor of bytes (0..255).

    Examples:
        >>> corpus_bytes(100).shape, corpus_bytes(100).dtype
        (torch.Size([100]), torch.int64)
    """
    from torchenstein.transformers.tokenization import course_corpus

    return torch.tensor(list(course_corpus(max_chars=max_chars).encode("utf-8")), dtype=torch.long)


def corpus_batch(batch_size: int = 8, block_size: int = 32, seed: int = 0,
                 data: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """A fixed batch of the course's own text: inputs and their next-byte targets.

    Args:
        batch_size: how many sequences.
        block_size: how many bytes each.
        seed: which random windows of the text.
        data: the bytes to draw from; `corpus_bytes` by default.

    Returns:
        ``(idx, targets)``, two ``(batch_size, block_size)`` int64 tensors; ``targets`` is ``idx`` moved by one.

    Examples:
        >>> idx, targets = corpus_batch(2, 5)
        >>> idx.shape, bool((idx[:, 1:] == targets[:, :-1]).all())
        (torch.Size([2, 5]), True)
    """
    data = corpus_bytes() if data is None else data
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, data.numel() - block_size - 1, (batch_size,), generator=g)
    windows = torch.stack([data[s : s + block_size + 1] for s in starts.tolist()])  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def tiny_gpt(steps: int = 0, seed: int = 0, batch_size: int = 8) -> GPT:
    """A one-block, 64-wide GPT, trained for ``steps`` AdamW steps on the course's text (0: just initialised).

    Args:
        steps: how many optimiser steps (30 take well under a second).
        seed: seeds the weights and the batches.
        batch_size: sequences per step.

    Returns:
        The model, in evaluation mode.
    """
    config = GPTConfig(n_layer=1, n_head=4, n_embd=64, block_size=32)
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = corpus_bytes() if steps else None
    for step in range(steps):
        # Batches from seed + 1 on: the evaluation batch (seed 0 by default) is never trained on.
        idx, targets = corpus_batch(batch_size, config.block_size, seed=seed + 1 + step, data=data)
        _, loss = model(idx, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def loss_change(model: nn.Module, idx: Tensor, targets: Tensor) -> dict[str, float]:
    """The loss of a model on one batch before and after `quantize_linear_layers`, and the relative change.

    Returns:
        ``{"float": loss, "int8": loss, "relative": (int8 - float) / float}``.
    """
    was_training = model.training
    model.eval()
    _, loss = model(idx, targets)
    _, loss_q = quantize_linear_layers(model)(idx, targets)
    model.train(was_training)
    return {"float": loss.item(), "int8": loss_q.item(), "relative": (loss_q.item() - loss.item()) / loss.item()}


def pack_int4(values: Tensor) -> Tensor:
    """Challenge solution: pack pairs of 4-bit integers (-8..7) into bytes, two per ``uint8``.

    Element ``2i`` of the last dimension goes to the low nibble of byte ``i``, element ``2i + 1`` to the
    high nibble, each as a 4-bit two's complement number.

    Args:
        values: an integer tensor with values in -8..7 and an even last dimension.

    Returns:
        A ``uint8`` tensor whose last dimension is half as long.

    Examples:
        >>> pack_int4(torch.tensor([1, 2, -1, -8], dtype=torch.int8))
        tensor([ 33, 143], dtype=torch.uint8)
    """
    if not isinstance(values, Tensor) or values.is_floating_point() or values.dim() < 1 or values.size(-1) % 2:
        raise ValueError(f"values must be an integer tensor with an even last dimension, got {_describe(values)}")
    if values.numel() and (values.min() < -8 or values.max() > 7):
        raise ValueError(f"values must lie in -8..7, got {values.min().item()}..{values.max().item()}")
    # & 0xF keeps the low four bits: the nibble of -1 is 0b1111, of -8 is 0b1000 (two's complement).
    nibbles = (values.to(torch.int16) & 0xF).to(torch.uint8)
    low, high = nibbles[..., 0::2], nibbles[..., 1::2]  # (..., n / 2) each
    return low | (high << 4)


def unpack_int4(packed: Tensor) -> Tensor:
    """The inverse of `pack_int4`: two signed 4-bit values out of every byte, as ``int8``.

    Examples:
        >>> unpack_int4(torch.tensor([33, 143], dtype=torch.uint8))
        tensor([ 1,  2, -1, -8], dtype=torch.int8)
    """
    if not isinstance(packed, Tensor) or packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor, got {_describe(packed)}")
    nibbles = torch.stack([packed & 0xF, packed >> 4], dim=-1).to(torch.int8)  # (..., n, 2)
    # Sign-extend 4 bits: 0..7 stay, 8..15 become -8..-1.
    signed = (nibbles ^ 8) - 8
    return signed.flatten(-2)  # (..., 2n)


def check_pack_int4(candidate: Callable[[Tensor], Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct `pack_int4`."""
    g = torch.Generator().manual_seed(0)
    cases = [
        torch.tensor([1, 2], dtype=torch.int8),
        torch.tensor([-8, 7, -1, 0], dtype=torch.int8),
        torch.randint(-8, 8, (3, 16), generator=g, dtype=torch.int8),
        torch.randint(-8, 8, (2, 3, 4), generator=g).to(torch.int8),
        torch.zeros(5, 0, dtype=torch.int8),
    ]
    for values in cases:
        got = candidate(values.clone())
        assert isinstance(got, Tensor) and got.dtype == torch.uint8, (
            f"for values of shape {tuple(values.shape)} expected a uint8 tensor, got {_describe(got)}"
        )
        expected_shape = (*values.shape[:-1], values.size(-1) // 2)
        assert tuple(got.shape) == expected_shape, (
            f"for values of shape {tuple(values.shape)} expected shape {expected_shape} (two values per byte), "
            f"got {tuple(got.shape)}"
        )
        expected = pack_int4(values)
        assert torch.equal(got, expected), (
            f"wrong bytes for values {values.flatten()[:8].tolist()}...: expected {expected.flatten()[:4].tolist()}, "
            f"got {got.flatten()[:4].tolist()} (element 2i in the low nibble, 2i+1 in the high one, "
            "two's complement)"
        )
        assert torch.equal(unpack_int4(got), values), f"unpack_int4 does not give back {values.tolist()}"


def percentile_qparams(input: Tensor, percentile: float = 99.9, dtype: torch.dtype = torch.quint8) -> tuple[Tensor, Tensor]:
    """Challenge solution: an affine scale and zero point from percentiles instead of the minimum and maximum.

    The range runs from the ``(100 - percentile)``-th to the ``percentile``-th percentile of ``input``
    (``torch.quantile``, linear interpolation), so a few outliers are clipped instead of stretching the
    grid for everybody; then it goes through `calculate_qparams` (affine, per tensor).

    Args:
        input: a floating-point tensor with at least one element.
        percentile: in (50, 100]; 100 gives the MinMax answer.
        dtype: ``torch.qint8`` or ``torch.quint8``.

    Returns:
        ``(scale, zero_point)``, each of shape ``(1,)``.

    Examples:
        >>> x = torch.cat([torch.linspace(-1.0, 1.0, 999), torch.tensor([100.0])])
        >>> percentile_qparams(x, 100.0)[0] > 50 * percentile_qparams(x, 99.0)[0]
        tensor([True])
    """
    x = _check_float_tensor(input, "input").float().flatten()
    if x.numel() == 0 or not 50.0 < percentile <= 100.0:
        raise ValueError(f"need a non-empty input and 50 < percentile <= 100, got {x.numel()} values, {percentile}")
    q = torch.tensor([1.0 - percentile / 100.0, percentile / 100.0], dtype=torch.float64).to(x.dtype)
    min_val, max_val = torch.quantile(x, q)
    return calculate_qparams(min_val, max_val, dtype, torch.per_tensor_affine)


def check_percentile_qparams(candidate: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct `percentile_qparams`."""
    g = torch.Generator().manual_seed(0)
    heavy = torch.distributions.StudentT(2.0).sample((4000,))
    cases = [
        (torch.randn(1000, generator=g), 99.0, torch.quint8),
        (torch.randn(50, 40, generator=g) * 3 + 1, 99.9, torch.qint8),
        (heavy, 99.5, torch.quint8),
        (torch.rand(500, generator=g) + 2.0, 98.0, torch.quint8),  # all positive: zero must stay on the grid
        (torch.randn(300, generator=g), 100.0, torch.qint8),
    ]
    for x, p, dtype in cases:
        got = candidate(x, p, dtype)
        assert isinstance(got, tuple) and len(got) == 2, "return a pair (scale, zero_point)"
        scale, zero_point = (torch.as_tensor(t).reshape(-1) for t in got)
        expected_scale, expected_zero_point = percentile_qparams(x, p, dtype)
        assert torch.allclose(scale.float(), expected_scale, rtol=1e-5, atol=0), (
            f"scale for percentile={p}, {dtype}, input of shape {tuple(x.shape)}: expected "
            f"{expected_scale.item():.6g}, got {scale.tolist()} (the range from the {100 - p:g}th to the "
            f"{p:g}th percentile, stretched to contain zero, over quant_max - quant_min)"
        )
        assert torch.equal(zero_point.long(), expected_zero_point), (
            f"zero point for percentile={p}, {dtype}: expected {expected_zero_point.item()}, got {zero_point.tolist()}"
        )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _check_dtype(dtype: object) -> tuple[int, int, torch.dtype]:
    if dtype not in QUANT_DTYPES:
        raise TypeError(f"dtype must be torch.qint8 or torch.quint8, got {dtype!r}")
    return QUANT_DTYPES[dtype]


def _check_qscheme(qscheme: object, dtype: torch.dtype, reduce_range: bool) -> None:
    if qscheme not in SYMMETRIC + AFFINE:
        raise TypeError(f"qscheme must be one of {SYMMETRIC + AFFINE}, got {qscheme!r}")
    if qscheme in SYMMETRIC and dtype == torch.quint8 and reduce_range:
        # Its zero point, 128, would lie outside 0..127; PyTorch's observers refuse this too.
        raise ValueError(f"reduce_range=True cannot be used with a symmetric qscheme ({qscheme}) for torch.quint8")


def _check_float_tensor(input: object, name: str) -> Tensor:
    if not isinstance(input, Tensor) or not input.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {_describe(input)}")
    return input


def _check_axis(axis: object, ndim: int, name: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"{name} must be an int in [{-ndim}, {ndim}) for a {ndim}-D tensor, got {axis!r}")
    return axis % ndim


def _check_scale(scale: object) -> Tensor:
    if isinstance(scale, Tensor) and scale.numel() == 1:
        scale = scale.item()
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return torch.tensor(scale, dtype=torch.float32)


def _check_zero_point(zero_point: object, quant_min: int, quant_max: int, name: str) -> None:
    if isinstance(zero_point, Tensor) and zero_point.numel() == 1 and not zero_point.is_floating_point():
        zero_point = zero_point.item()
    if isinstance(zero_point, bool) or not isinstance(zero_point, int):
        raise TypeError(f"{name} must be an int, so that 0.0 lands exactly on the integer grid, got {zero_point!r}")
    if not quant_min <= zero_point <= quant_max:
        raise ValueError(f"{name} must lie in [{quant_min}, {quant_max}], got {zero_point}")


def _check_channel_params(scales: object, zero_points: object, channels: int, quant_min: int,
                          quant_max: int) -> tuple[Tensor, Tensor]:
    if not isinstance(scales, Tensor) or not scales.is_floating_point() or scales.dim() != 1:
        raise TypeError(f"scales must be a 1-D floating-point tensor, got {_describe(scales)}")
    if not isinstance(zero_points, Tensor) or zero_points.is_floating_point() or zero_points.dim() != 1:
        raise TypeError(f"zero_points must be a 1-D integer tensor, got {_describe(zero_points)}")
    if scales.numel() != channels or zero_points.numel() != channels:
        raise ValueError(f"scales and zero_points need input.size(axis)={channels} entries, "
                         f"got {scales.numel()} and {zero_points.numel()}")
    if channels and not bool((scales > 0).all() and torch.isfinite(scales).all()):
        raise ValueError(f"scales must be positive and finite, got {scales.tolist()}")
    if channels and not bool(((zero_points >= quant_min) & (zero_points <= quant_max)).all()):
        raise ValueError(f"zero_points must lie in [{quant_min}, {quant_max}], got {zero_points.tolist()}")
    return scales, zero_points
