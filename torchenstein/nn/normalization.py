r"""
# Normalisation: Taming the Wild Activations

!!! torchenstein "The Professor speaks"
    Stack layer upon layer and watch the numbers flowing through them: they shrink to dust or swell into
    monsters, one multiplication at a time. Normalisation is the leash. At every layer it drags the
    activations back to mean zero and variance one, then lets the network choose its own scale. Today
    we build BatchNorm and LayerNorm with our bare hands, running statistics and all, and prove them
    equal to PyTorch's to the last buffer.

**You will learn to**

- see why activations drift in scale through a deep network, and how normalisation stops it;
- compute BatchNorm's statistics per channel over the batch (and over $H, W$ for images) and
  LayerNorm's per sample over the last dimensions;
- keep BatchNorm's running statistics exactly as PyTorch does: `momentum`, `momentum=None`,
  the *unbiased* `running_var` and `num_batches_tracked`;
- write `BatchNorm1d`, `BatchNorm2d` and `LayerNorm` from scratch, `state_dict`-compatible with PyTorch's;
- compute the statistics of float16 and bfloat16 inputs in float32, as PyTorch does, so that a large
  spread cannot overflow a variance into `inf` and a row into zeros;
- avoid the traps: evaluating in training mode, batches of one, and normalising over the wrong axes.

## Why normalise

Each layer multiplies its input by a weight matrix. If every layer makes the signal 1.4 times larger,
$L$ layers make it $1.4^L$ times larger; at 0.7 times, $L$ layers shrink it to dust. Gradients
suffer the same fate on the way back, and no single learning rate suits the first layer and the last. A
careful initialisation (the [linear layers](../linear/index.md) lesson) starts the scale near one, but
training moves the weights and the scale wanders off again.

[`activation_stds`][torchenstein.nn.normalization.activation_stds] pushes a batch through a deep random
ReLU network and records the spread of each layer's pre-activations $h = Wx$; `gain` scales the weights
away from the variance-preserving initialisation, `norm` puts a normalisation layer before every ReLU.
The orders of magnitude by which the scale changes from the first layer to the last:

```pycon
>>> import math
>>> import torch
>>> from torchenstein.nn.normalization import activation_stds
>>> runs = {"too small": activation_stds(gain=0.7), "too large": activation_stds(gain=1.4),
...         "BatchNorm": activation_stds(gain=1.4, norm="batch"),
...         "LayerNorm": activation_stds(gain=1.4, norm="layer")}
>>> {name: round(math.log10(stds[-1] / stds[0])) for name, stds in runs.items()}
{'too small': -3, 'too large': 3, 'BatchNorm': 0, 'LayerNorm': 0}

```

Without normalisation the scale drifts by a factor of a thousand either way; with it, it stays put
whatever the gain.

![Left: the standard deviation of pre-activations, layer by layer, on a log scale; without normalisation it falls or climbs geometrically, with BatchNorm or LayerNorm it stays flat. Right: histograms of the order of magnitude of the last layer's pre-activations, far apart without normalisation and together near one with it.](plot_activation_distributions.svg)

## One recipe, different axes

Every normalisation layer in this lesson does the same two steps. First it standardises, with a mean
$\mu$ and a variance $\sigma^2$ computed over some set of numbers; then it applies a learned per-feature
scale $\gamma$ (`weight`) and shift $\beta$ (`bias`):

$$
\hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma\, \hat x + \beta .
$$

The variance is the *biased* one, $\sigma^2 = \frac1n \sum_i (x_i - \mu)^2$ (`correction=0` for the
[`var`][torchenstein.tensors.elementwise.var] of the [element-wise lesson](../../tensors/elementwise/index.md),
which our layers reuse), and the small $\epsilon$ (`eps`, $10^{-5}$ by default) sits *inside* the square
root, so a constant input gives zeros instead of $0/0$. The affine step starts as the identity
($\gamma = 1$, $\beta = 0$) and lets the network undo the standardisation wherever it prefers another scale.

The layers differ only in **which numbers share a $\mu$ and a $\sigma^2$**. For images of shape
$(N, C, H, W)$:

| layer | statistics over | one $\mu$ per | depends on the other samples? |
|---|---|---|---|
| BatchNorm2d | $N, H, W$ | channel | yes, in training |
| LayerNorm over $(C, H, W)$ | $C, H, W$ | sample | never |
| GroupNorm (a challenge) | a group of channels, $H, W$ | sample and group | never |

## BatchNorm: statistics across the batch

BatchNorm (Ioffe and Szegedy, 2015) gives every channel its own $\mu_c$ and $\sigma_c^2$, computed over
all the numbers of that channel in the batch: over $N$ for inputs $(N, C)$, over $N$ and $L$ for
sequences $(N, C, L)$, over $N$, $H$ and $W$ for images $(N, C, H, W)$. The channel is always dim 1.
[`batch_norm`][torchenstein.nn.normalization.batch_norm] is the functional form, with the arguments of
`torch.nn.functional.batch_norm`:

```pycon
>>> import torch.nn.functional as F
>>> from torchenstein.nn.normalization import batch_norm
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(8, 3, 4, 4) * 5 + 2        # (N, C, H, W)
>>> y = batch_norm(x, None, None, training=True)
>>> x.mean(dim=(0, 2, 3)).shape                # one mean per channel, over N, H and W
torch.Size([3])
>>> {"max |mean|": round(y.mean(dim=(0, 2, 3)).abs().max().item(), 4),
...  "variances": y.var(dim=(0, 2, 3), correction=0).round(decimals=3)}
{'max |mean|': 0.0, 'variances': tensor([1., 1., 1.])}
>>> torch.testing.assert_close(y, F.batch_norm(x, None, None, training=True))
>>> batch_norm(torch.full((2, 3), 7.0), None, None, training=True)   # eps inside the root: no NaN
tensor([[0., 0., 0.],
        [0., 0., 0.]])

```

The modules [`BatchNorm1d`][torchenstein.nn.normalization.BatchNorm1d] ($(N, C)$ or $(N, C, L)$) and
[`BatchNorm2d`][torchenstein.nn.normalization.BatchNorm2d] ($(N, C, H, W)$) share a base class and
PyTorch's state: parameters `weight` (ones) and `bias` (zeros); buffers `running_mean` (zeros),
`running_var` (ones) and the `int64` counter `num_batches_tracked`. A `state_dict` loads either way:

```pycon
>>> from torch import nn
>>> from torchenstein.nn.normalization import BatchNorm1d, BatchNorm2d
>>> ours, theirs = BatchNorm2d(3), nn.BatchNorm2d(3)
>>> ours
BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
>>> [name for name, _ in ours.named_parameters()], [name for name, _ in ours.named_buffers()]
(['weight', 'bias'], ['running_mean', 'running_var', 'num_batches_tracked'])
>>> torch.testing.assert_close(ours(x), theirs(x))
>>> torch.testing.assert_close(ours.running_var, theirs.running_var)
>>> theirs.load_state_dict(ours.state_dict())
<All keys matched successfully>
>>> BatchNorm2d(3)(torch.randn(8, 3, 4))
Traceback (most recent call last):
...
ValueError: BatchNorm2d expects input of shape (N, C, H, W), got a 3-D input of shape (8, 3, 4)

```

In training the gradient flows through $\mu$ and $\sigma^2$ too, so a sample's gradient depends on its
batch-mates; autograd handles that, and the tests check our gradients against PyTorch's.

## Running statistics: BatchNorm's memory

At inference, batch statistics would make a prediction depend on whoever else is in the batch. So in
training BatchNorm also keeps **running** estimates of each channel's mean and variance, and in
evaluation mode (`model.eval()`) it normalises with those instead. After each training batch,

$$
\text{running} \leftarrow (1 - m)\cdot\text{running} + m \cdot \text{batch statistic}, \qquad m = \texttt{momentum} = 0.1 .
$$

PyTorch's `momentum` is the weight of the *new* batch, the opposite of an optimiser's momentum. And
`running_var` receives the **unbiased** variance $\frac{n}{n-1}\sigma^2$ ($n$ values per channel): it
estimates the variance of all inputs, not of this one batch. By hand, for one batch of three:

```pycon
>>> bn = BatchNorm1d(2)
>>> batch = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])   # (N=3, C=2)
>>> _ = bn(batch)       # means (3, 20); unbiased variances (4, 300)
>>> for name, buffer in bn.named_buffers():
...     print(f"{name}: {buffer}")
running_mean: tensor([0.3000, 2.0000])
running_var: tensor([ 1.3000, 30.9000])
num_batches_tracked: 1

```

With `momentum=None` the running statistics are instead the plain average of every batch statistic so
far (a cumulative moving average): batch $k$ gets the weight $1/k$, read from `num_batches_tracked`.

```pycon
>>> cma = BatchNorm1d(2, momentum=None)
>>> for b in (batch, batch + 6.0):              # batch means (3, 20), then (9, 26)
...     _ = cma(b)
>>> for name, buffer in cma.named_buffers():
...     print(f"{name}: {buffer}")
running_mean: tensor([ 6., 23.])
running_var: tensor([  4., 300.])
num_batches_tracked: 2

```

In evaluation mode nothing is updated and each sample is normalised alone with the running statistics,
so a batch of one is fine. With `track_running_stats=False` there are no buffers, and the batch
statistics are used in both modes:

```pycon
>>> _ = bn.eval()
>>> one = torch.tensor([[3.0, 2.0]])
>>> torch.testing.assert_close(bn(one), (one - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps))
>>> free = BatchNorm1d(2, track_running_stats=False).eval()
>>> {"running_mean": free.running_mean, "buffers": [name for name, _ in free.named_buffers()]}
{'running_mean': None, 'buffers': []}
>>> torch.testing.assert_close(free(batch), F.batch_norm(batch, None, None, training=True))

```

## LayerNorm: statistics across the features

LayerNorm (Ba, Kiros and Hinton, 2016) turns the table by ninety degrees: each *sample* gets its own
$\mu$ and $\sigma^2$, computed over its last dimensions, the ones named by `normalized_shape`. For a
Transformer's activations $(B, T, C)$ that is `normalized_shape=C`: every token is normalised over its
own $C$ features. No batch-mate is consulted, so there are no running statistics, training and evaluation
behave the same, and a batch of one is fine. The affine `weight` and `bias` have the shape
`normalized_shape`: one $\gamma$ and $\beta$ per feature. `elementwise_affine=False` drops both,
`bias=False` (PyTorch 2.1 and later) only the shift.

```pycon
>>> from torchenstein.nn.normalization import LayerNorm
>>> x = torch.randn(2, 5, 8) * 3 + 1            # (B, T, C)
>>> ours, theirs = LayerNorm(8), nn.LayerNorm(8)
>>> ours
LayerNorm((8,), eps=1e-05, elementwise_affine=True)
>>> torch.testing.assert_close(ours(x), theirs(x))
>>> torch.testing.assert_close(ours(x[:1, :1]), ours(x)[:1, :1])    # one token alone: same answer
>>> list(LayerNorm(8, bias=False).state_dict()), LayerNorm((5, 8))(x).shape
(['weight'], torch.Size([2, 5, 8]))
>>> ours(torch.randn(2, 7))
Traceback (most recent call last):
...
ValueError: input must end with normalized_shape (8,), got input of shape (2, 7)

```

The functional form, [`layer_norm`][torchenstein.nn.normalization.layer_norm], takes the arguments of
`torch.nn.functional.layer_norm`. The next lesson, RMSNorm, removes the mean from the recipe.

## Half precision: statistics in float32

Models are often trained in float16 or bfloat16 (see [Dtypes and devices](../../tensors/dtypes/index.md)).
A variance is a mean of *squares*, and float16 stops at 65504: a row whose spread is above 256 has a
variance float16 cannot hold. Computed in float16 it becomes `inf`, every value divided by it becomes 0,
and a whole row of activations silently vanishes. So PyTorch, and our layers with it, compute the
statistics and the normalisation of float16 and bfloat16 inputs in float32 and round to the input's
dtype **once**, at the end. The output keeps the input's dtype even when the parameters are float32, as
they are under automatic mixed precision, and a float32 `running_var` is updated in float32:

```pycon
>>> _ = torch.manual_seed(0)
>>> h = (torch.randn(2, 64) * 1000).half()                        # a spread of about 1000
>>> torch.finfo(torch.float16).max, h.var(dim=-1, correction=0)    # its variance, about 1e6, does not fit
(65504.0, tensor([inf, inf], dtype=torch.float16))
>>> in_float16 = (h - h.mean(dim=-1, keepdim=True)) / torch.sqrt(h.var(dim=-1, correction=0, keepdim=True) + 1e-5)
>>> in_float16.abs().max().item()                                 # every value divided by inf
0.0
>>> y = layer_norm(h, 64)
>>> {"dtype": y.dtype, "spread": round(y.float().std(dim=-1, correction=0).mean().item(), 2)}
{'dtype': torch.float16, 'spread': 1.0}
>>> torch.testing.assert_close(y, F.layer_norm(h, (64,)), rtol=2**-10, atol=2**-10)   # one float16 rounding
>>> ours, theirs = BatchNorm1d(2), nn.BatchNorm1d(2)               # float32 parameters and buffers
>>> out = ours(h.T)                                               # (N=64, C=2), float16
>>> torch.testing.assert_close(out, theirs(h.T), rtol=2**-10, atol=2**-10)
>>> {"output": out.dtype, "running_var": ours.running_var.dtype, "finite": torch.isfinite(ours.running_var).all().item()}
{'output': torch.float16, 'running_var': torch.float32, 'finite': True}
>>> torch.testing.assert_close(ours.running_var, theirs.running_var)
>>> gamma = torch.ones(8)                                         # float32, autocast-style
>>> layer_norm(torch.randn(4, 8).bfloat16(), 8, gamma).dtype
torch.bfloat16

```

The tolerance $2^{-10}$ is float16's spacing near 1: the two sides may round a value to neighbouring
float16 numbers, never further apart.

## The proof

`tests/test_normalization.py` holds our three modules against PyTorch's on many shapes and settings, in
float32 and float64: outputs in both modes, gradients of input, `weight` and `bias`, `gradcheck`, the
running statistics after several steps with `momentum=0.1` and `None`, strict `state_dict` loading both
ways, batches of one and of none, and every error. In float16 and bfloat16, with float32 or half
parameters, at scales from $10^{-4}$ to past float16's overflow of the variance, it holds outputs to one
rounding of the output's dtype (relative to the output's size, or to 1 near zero; a few roundings for
BatchNorm with half parameters in training, as the note below says) and the running statistics to
PyTorch's; and it feeds in transposed, expanded and empty inputs, channels-last images and a
`normalized_shape` with a zero in it.

!!! note "Where it differs from PyTorch"
    - A refused batch of one leaves our `num_batches_tracked` alone, while PyTorch's has already counted it.
    - BatchNorm in training with float16 or bfloat16 *parameters* (not float32 ones): PyTorch's CPU kernel
      rounds each channel's batch mean and $1/\sigma$ to that dtype before normalising; ours keeps them in
      float32. On centred inputs the outputs then differ by a few roundings, and by more as the mean
      grows against the spread; ours stays within one rounding of the exact answer. With float32
      parameters the two agree to one rounding.
    - Mixed dtypes: PyTorch's CPU kernels take parameters of the input's dtype, or float32 ones for a
      float16/bfloat16 input, and refuse anything else; ours takes any floating parameters, computes in
      float32 (float64 for a float64 input) and returns the input's dtype.
    - A `normalized_shape` of `()`: PyTorch's `LayerNorm` accepts it and fails at the first call; ours
      refuses it when it is built.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: evaluating in training mode"
    Hammer forgets `model.eval()` before testing, as in the [Dropout](../dropout/index.md) lesson. Here
    the victim is BatchNorm: it keeps using batch statistics, so a prediction depends on the batch-mates,
    and every test batch is blended into the running statistics: the test set leaks into the model.
    `torch.no_grad()` switches off autograd, not the training mode.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> bn = BatchNorm1d(4)
    >>> for _ in range(20):                         # training
    ...     _ = bn(torch.randn(32, 4) * 2 + 5)
    >>> patient = torch.randn(1, 4) * 2 + 5
    >>> mates_a, mates_b = torch.randn(7, 4) * 2 + 5, torch.randn(7, 4)
    >>> trained = {name: t.clone() for name, t in bn.state_dict().items()}
    >>> with torch.no_grad():                       # Hammer's "evaluation"
    ...     out_a = bn(torch.cat([patient, mates_a]))[0]
    ...     out_b = bn(torch.cat([patient, mates_b]))[0]
    >>> {"same prediction": torch.allclose(out_a, out_b),
    ...  "running_mean untouched": torch.equal(bn.running_mean, trained["running_mean"])}
    {'same prediction': False, 'running_mean untouched': False}
    >>> _ = bn.load_state_dict(trained)             # undo the damage, then evaluate properly
    >>> _ = bn.eval()
    >>> same = torch.allclose(bn(torch.cat([patient, mates_a]))[0], bn(torch.cat([patient, mates_b]))[0])
    >>> print("same prediction:", same)
    same prediction: True

    ```

!!! hammer "Dr. Hammer's trap: a batch of one in training mode"
    With one value per channel the batch variance is zero and the sample normalises to $\beta$, whatever
    it was: nothing to learn. PyTorch refuses such a batch, and so do we. Train with bigger batches,
    predict in evaluation mode, or use LayerNorm, which never looks at the batch.

    ```pycon
    >>> _ = bn.train()
    >>> bn(patient)
    Traceback (most recent call last):
    ...
    ValueError: BatchNorm1d needs more than 1 value per channel when training, got input of shape (1, 4); use a bigger batch or call .eval()
    >>> _ = bn.eval()
    >>> bn(patient).shape, LayerNorm(4)(patient).shape
    (torch.Size([1, 4]), torch.Size([1, 4]))

    ```

!!! hammer "Dr. Hammer's trap: the biased variance in `running_var`"
    Hammer updates `running_var` with the same biased variance he normalised with. As an estimate of the
    data's variance it is too small by a factor $\frac{n-1}{n}$, worst on small batches, and his running
    statistics no longer match PyTorch's: the same training with `nn.BatchNorm1d` evaluates differently.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(4, 3)
    >>> theirs = nn.BatchNorm1d(3)
    >>> _ = theirs(x)
    >>> hammer = 0.9 * torch.ones(3) + 0.1 * x.var(dim=0, correction=0)
    >>> {"biased (Hammer)": torch.allclose(hammer, theirs.running_var),
    ...  "unbiased": torch.allclose(0.9 + 0.1 * x.var(dim=0), theirs.running_var)}
    {'biased (Hammer)': False, 'unbiased': True}

    ```

!!! hammer "Dr. Hammer's trap: LayerNorm over the wrong dimensions"
    For token sequences $(B, T, C)$ Hammer writes `LayerNorm((T, C))`. The statistics now mix a sequence's
    tokens, so a token's output depends on the others, even later ones a causal model must never see (and
    the $(T, C)$ weights fit one length only). The test: change the last token; does the first one move?

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(1, 4, 8)                    # (B, T, C)
    >>> changed = x.clone()
    >>> changed[0, 3] *= 10                         # only the last token changes
    >>> def first_token_moves(norm):
    ...     return not torch.allclose(norm(x)[0, 0], norm(changed)[0, 0])
    >>> {"LayerNorm((T, C))": first_token_moves(LayerNorm((4, 8))), "LayerNorm(C)": first_token_moves(LayerNorm(8))}
    {'LayerNorm((T, C))': True, 'LayerNorm(C)': False}

    ```

!!! hammer "Dr. Hammer's trap: BatchNorm2d without the spatial dimensions"
    BatchNorm2d takes one mean per *channel* over $N$, $H$ and $W$. Hammer flattens each image and uses
    `BatchNorm1d(C * H * W)`: one noisy mean per pixel from only $N$ numbers, tied to one image size.
    BatchNorm1d on $(N, C, H W)$, on the other hand, is exactly BatchNorm2d.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(8, 3, 4, 4)                 # (N, C, H, W)
    >>> hammer = BatchNorm1d(3 * 4 * 4)
    >>> {"equals BatchNorm2d": torch.allclose(hammer(x.flatten(1)).view_as(x), BatchNorm2d(3)(x), atol=1e-4),
    ...  "means kept": hammer.running_mean.numel()}
    {'equals BatchNorm2d': False, 'means kept': 48}
    >>> torch.testing.assert_close(BatchNorm1d(3)(x.flatten(2)).view_as(x), BatchNorm2d(3)(x))

    ```

## Challenges

**1. GroupNorm.** Write `group_norm(input, num_groups, weight=None, bias=None, eps=1e-5)`, the twin of
`torch.nn.functional.group_norm`. For input $(N, C, \dots)$, split the channels into `num_groups`
consecutive groups, normalise each sample's group over its channels and all trailing dims (biased
variance, `eps` inside the root), then apply the per-channel `weight` and `bias` when given. Raise
`ValueError` when `num_groups` does not divide $C$. One group is LayerNorm over $(C, \dots)$ with a
per-channel affine; $C$ groups is InstanceNorm.

**2. Fold BatchNorm into a Linear layer.** At inference a `BatchNorm1d` after an `nn.Linear` is just
another affine map, so the two fuse into one layer. Write `fold_batchnorm_into_linear(linear, bn)`
returning a *new* `nn.Linear` equal to `bn(linear(x))` in evaluation mode, leaving both originals
untouched. Handle a linear layer without bias and a BatchNorm without affine parameters; raise
`ValueError` when `bn` keeps no running statistics or `bn.num_features != linear.out_features`.
Hint: with $s = \gamma / \sqrt{\sigma^2_\text{run} + \epsilon}$, the new weight is $s_i W_{ij}$ and the
new bias $s\,(b - \mu_\text{run}) + \beta$.

Check an attempt with `check_group_norm(my_function)` (or `check_fold_batchnorm_into_linear`), or put
your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's
answers pass:

```pycon
>>> from torchenstein.nn.normalization import (
...     check_fold_batchnorm_into_linear, check_group_norm, fold_batchnorm_into_linear, group_norm)
>>> check_group_norm(group_norm)
>>> check_fold_batchnorm_into_linear(fold_batchnorm_into_linear)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.elementwise import var

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # float16 and bfloat16 are computed in float32, float32 and float64 in themselves: PyTorch's "opmath"
    # rule, the one the RMSNorm lesson follows too. A float16 variance above 65504 (a spread above 256)
    # would otherwise become inf, and the whole row zero.
    return torch.promote_types(dtype, torch.float32)


def _scale_and_shift(x_hat: Tensor, weight: Tensor | None, bias: Tensor | None, shape: Sequence[int]) -> Tensor:
    # gamma and beta are viewed as `shape`, so they broadcast along the right dims only, and are brought to
    # the computation's dtype, so a float32 gamma meets a float32 x_hat and nothing is rounded early.
    if weight is not None:
        x_hat = x_hat * weight.view(shape).to(x_hat.dtype)
    if bias is not None:
        x_hat = x_hat + bias.view(shape).to(x_hat.dtype)
    return x_hat


def _update_running(running: Tensor, batch_statistic: Tensor, momentum: float) -> None:
    # (1 - m) * running + m * batch, computed in the statistic's (float32 or float64) dtype and rounded
    # into the buffer's dtype once, in place: the buffer stays the same tensor object.
    running.copy_((1 - momentum) * running.to(batch_statistic.dtype) + momentum * batch_statistic)


def batch_norm(
    input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
    bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
) -> Tensor:
    r"""Batch normalisation from scratch, a twin of `torch.nn.functional.batch_norm`.

    Channels live in dim 1. In training each channel's statistics are taken over every other dim, and the
    running statistics, when given, are updated in place as $(1 - m)\,\text{running} + m\,\text{batch}$,
    the variance with the *unbiased* batch variance. float16 and bfloat16 inputs are computed in float32
    and rounded once, at the end.

    Args:
        input: shape $(N, C, \dots)$.
        running_mean: shape $(C,)$ or ``None``; updated in place when ``training``.
        running_var: shape $(C,)$ or ``None``; updated in place when ``training``.
        weight: $\gamma$, shape $(C,)$, or ``None``.
        bias: $\beta$, shape $(C,)$, or ``None``.
        training: use (and record) the batch statistics; otherwise use the running ones.
        momentum: $m$, the weight of the new batch in the running statistics.
        eps: added to the variance inside the square root.

    Returns:
        A tensor of ``input``'s shape and dtype.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.
        ValueError: if ``input`` has fewer than 2 dims, a vector does not have $C$ entries, the running
            statistics are missing when ``training`` is False, or a training batch holds one value per channel.

    Examples:
        >>> x = torch.randn(6, 3)
        >>> torch.testing.assert_close(batch_norm(x, None, None, training=True),
        ...                            F.batch_norm(x, None, None, training=True))
        >>> batch_norm(x, None, None)
        Traceback (most recent call last):
        ...
        ValueError: running_mean and running_var are needed when training=False, got None
    """
    _check_batch_norm_args(input, running_mean, running_var, weight, bias, training, eps)
    C = input.shape[1]
    # Statistics are taken over every dim except the channel dim 1: (N,), (N, L) or (N, H, W).
    dims = (0, *range(2, input.dim()))
    n = math.prod(input.shape[d] for d in dims)  # values per channel
    x = input.to(_compute_dtype(input.dtype))
    if training:
        mean = x.mean(dim=dims)  # (C,)
        biased_var = var(x, dims, correction=0)  # (C,)
        # The running statistics are bookkeeping, not part of the graph. They estimate the variance of the
        # whole population, hence Bessel's n / (n - 1). An empty batch has no statistics to contribute.
        if running_mean is not None and running_var is not None and n > 0:
            with torch.no_grad():
                _update_running(running_mean, mean, momentum)
                _update_running(running_var, biased_var * (n / (n - 1)), momentum)
    else:
        mean, biased_var = running_mean.to(x.dtype), running_var.to(x.dtype)
    # Per-channel vectors are viewed as (1, C, 1, ...) so they broadcast along dim 1 only.
    shape = (1, C) + (1,) * (input.dim() - 2)
    x_hat = (x - mean.view(shape)) / torch.sqrt(biased_var.view(shape) + eps)
    # The only rounding to a float16 or bfloat16 input's dtype happens here.
    return _scale_and_shift(x_hat, weight, bias, shape).to(input.dtype)


class _BatchNorm(nn.Module):
    """The shared body of `BatchNorm1d` and `BatchNorm2d`; subclasses only say which shapes they accept."""

    # PyTorch's BatchNorm modules are at state_dict version 2 (the one with num_batches_tracked).
    _version = 2

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
        track_running_stats: bool = True, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_batch_norm_options(num_features, eps, momentum)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        factory = {"device": device, "dtype": dtype}
        # Registering None keeps the name known to the module but out of the state_dict, as PyTorch does
        # for a BatchNorm without affine parameters or without running statistics.
        self.register_parameter("weight", nn.Parameter(torch.ones(num_features, **factory)) if affine else None)
        self.register_parameter("bias", nn.Parameter(torch.zeros(num_features, **factory)) if affine else None)
        track = track_running_stats
        self.register_buffer("running_mean", torch.zeros(num_features, **factory) if track else None)
        self.register_buffer("running_var", torch.ones(num_features, **factory) if track else None)
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device) if track else None)

    def reset_running_stats(self) -> None:
        """Forget every batch seen: running mean 0, running variance 1, counter 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def _check_input_dim(self, input: Tensor) -> None:
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        # Batch statistics are used in training, and in evaluation too when there are no running ones.
        use_batch_stats = self.training or self.running_mean is None
        # A batch is checked before it is counted, so a refused one leaves num_batches_tracked alone.
        _check_batch_norm_input(self, input, use_batch_stats)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            # momentum=None: batch k gets weight 1/k, which makes the running value the plain average.
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        # In training the running statistics are handed over to be updated; in evaluation, to be used.
        hand_over = self.track_running_stats or not self.training
        running_mean, running_var = (self.running_mean, self.running_var) if hand_over else (None, None)
        return batch_norm(input, running_mean, running_var, self.weight, self.bias, use_batch_stats, momentum, self.eps)

    def extra_repr(self) -> str:
        options = f"momentum={self.momentum}, affine={self.affine}, track_running_stats={self.track_running_stats}"
        return f"{self.num_features}, eps={self.eps}, {options}"


class BatchNorm1d(_BatchNorm):
    r"""BatchNorm from scratch for inputs $(N, C)$ or $(N, C, L)$, a twin of `torch.nn.BatchNorm1d`.

    Args:
        num_features: $C$, the number of channels.
        eps: added to the variance inside the square root.
        momentum: weight of each new batch in the running statistics; ``None`` for the plain average
            of all batches so far.
        affine: learn a per-channel ``weight`` (ones) and ``bias`` (zeros).
        track_running_stats: keep ``running_mean``, ``running_var`` and ``num_batches_tracked``;
            without them the batch statistics are used in evaluation mode as well.
        device: where to create the parameters and buffers.
        dtype: the floating-point dtype of the parameters and running statistics.

    Raises:
        ValueError: on a bad argument, an input of the wrong shape or number of channels, or a training
            batch with one value per channel. A refused batch is not counted in ``num_batches_tracked``.

    Examples:
        >>> bn = BatchNorm1d(3)
        >>> torch.testing.assert_close(bn(torch.randn(4, 3, 5) + 2).mean(dim=(0, 2)), torch.zeros(3))
        >>> BatchNorm1d(3)(torch.randn(4, 2))
        Traceback (most recent call last):
        ...
        ValueError: BatchNorm1d(3) expects 3 channels in dim 1, got input of shape (4, 2)
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (2, 3):
            got = f"a {input.dim()}-D input of shape {tuple(input.shape)}"
            raise ValueError(f"BatchNorm1d expects input of shape (N, C) or (N, C, L), got {got}")


class BatchNorm2d(_BatchNorm):
    r"""BatchNorm from scratch for images $(N, C, H, W)$, a twin of `torch.nn.BatchNorm2d`.

    Each channel is normalised over $N$, $H$ and $W$ together. The arguments are those of
    [`BatchNorm1d`][torchenstein.nn.normalization.BatchNorm1d].

    Raises:
        ValueError: as for `BatchNorm1d`, and for an input that is not 4-D.

    Examples:
        >>> bn = BatchNorm2d(2, affine=False)
        >>> bn(torch.randn(3, 2, 5, 5)).shape, bn.weight
        (torch.Size([3, 2, 5, 5]), None)
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() != 4:
            got = f"a {input.dim()}-D input of shape {tuple(input.shape)}"
            raise ValueError(f"BatchNorm2d expects input of shape (N, C, H, W), got {got}")


def layer_norm(
    input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
    bias: Tensor | None = None, eps: float = 1e-5,
) -> Tensor:
    r"""Layer normalisation from scratch, a twin of `torch.nn.functional.layer_norm`.

    float16 and bfloat16 inputs are computed in float32 and rounded once, at the end.

    Args:
        input: shape $(\dots, *\text{normalized\_shape})$.
        normalized_shape: the trailing shape each sample is normalised over: an int or a sequence of ints.
        weight: $\gamma$, of shape ``normalized_shape``, or ``None``.
        bias: $\beta$, of shape ``normalized_shape``, or ``None``.
        eps: added to the variance inside the square root.

    Returns:
        A tensor of ``input``'s shape and dtype.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.
        ValueError: if ``input`` does not end with ``normalized_shape`` or ``weight``/``bias`` have another shape.

    Examples:
        >>> x = torch.randn(2, 3, 4)
        >>> torch.testing.assert_close(layer_norm(x, (3, 4)), F.layer_norm(x, (3, 4)))
    """
    shape = _check_layer_norm_args(input, normalized_shape, weight, bias, eps)
    x = input.to(_compute_dtype(input.dtype))
    # Each sample's statistics over its last k dims, kept as size-1 dims so they broadcast back.
    dims = tuple(range(-len(shape), 0))
    mean = x.mean(dim=dims, keepdim=True)  # (..., 1, ..., 1)
    biased_var = var(x, dims, correction=0, keepdim=True)  # (..., 1, ..., 1)
    x_hat = (x - mean) / torch.sqrt(biased_var + eps)
    # gamma and beta have the trailing shape, so they broadcast against (..., *normalized_shape) as they are.
    return _scale_and_shift(x_hat, weight, bias, shape).to(input.dtype)


class LayerNorm(nn.Module):
    r"""LayerNorm from scratch, a twin of `torch.nn.LayerNorm`.

    Args:
        normalized_shape: the trailing shape each sample is normalised over, an int or a sequence of
            ints (for $(B, T, C)$ activations: ``C``).
        eps: added to the variance inside the square root.
        elementwise_affine: learn a ``weight`` (ones) and, if ``bias``, a ``bias`` (zeros), each of
            shape ``normalized_shape``.
        bias: learn the shift too (only with ``elementwise_affine``).
        device: where to create the parameters.
        dtype: the floating-point dtype of the parameters.

    Raises:
        ValueError: on a bad argument, or an input that does not end with ``normalized_shape``.

    Examples:
        >>> norm = LayerNorm(4, elementwise_affine=False)
        >>> torch.testing.assert_close(norm(torch.randn(3, 4)).mean(dim=-1), torch.zeros(3))
        >>> LayerNorm(-4)
        Traceback (most recent call last):
        ...
        ValueError: normalized_shape must be a non-negative int or a non-empty sequence of them, got -4
    """

    def __init__(
        self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
        bias: bool = True, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        _check_eps(eps)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        factory = {"device": device, "dtype": dtype}
        weight = nn.Parameter(torch.ones(self.normalized_shape, **factory)) if elementwise_affine else None
        self.register_parameter("weight", weight)
        shift = nn.Parameter(torch.zeros(self.normalized_shape, **factory)) if elementwise_affine and bias else None
        self.register_parameter("bias", shift)

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


def _random_mlp_preactivations(
    *, depth: int, width: int, batch_size: int, gain: float, norm: str | None, seed: int
) -> list[Tensor]:
    for name, size in (("depth", depth), ("width", width), ("batch_size", batch_size)):
        _check_positive_int(name, size)
    norms = {
        None: nn.Identity,
        "batch": lambda: BatchNorm1d(width, affine=False, track_running_stats=False),
        "layer": lambda: LayerNorm(width, elementwise_affine=False),
    }
    if norm not in norms:
        raise ValueError(f"norm must be None, 'batch' or 'layer', got {norm!r}")
    if norm == "batch" and batch_size < 2:
        raise ValueError(f"norm='batch' needs batch_size of at least 2, got {batch_size}")
    normalise = norms[norm]()
    # A private generator and float64: the same numbers on every machine, and the global seed untouched.
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, width, generator=generator, dtype=torch.float64).relu()  # (batch_size, width)
    # sqrt(2 / width) is the variance-preserving scale for ReLU layers; gain pushes it off balance.
    scale = gain * math.sqrt(2.0 / width)
    preactivations = []
    for _ in range(depth):
        weight = torch.randn(width, width, generator=generator, dtype=torch.float64) * scale
        h = x @ weight.T  # (batch_size, width)
        preactivations.append(h)
        x = torch.relu(normalise(h))  # (batch_size, width)
    return preactivations


def activation_stds(
    *, depth: int = 20, width: int = 128, batch_size: int = 256, gain: float = 1.0, norm: str | None = None, seed: int = 0
) -> list[float]:
    r"""The standard deviation of each layer's pre-activations $h = Wx$ in a deep random ReLU network.

    Layer $\ell$ computes $h_\ell = W_\ell x_{\ell-1}$, then $x_\ell = \operatorname{ReLU}(\text{norm}(h_\ell))$;
    the weights are Gaussian with standard deviation $\text{gain}\cdot\sqrt{2/\text{width}}$.

    Args:
        depth: number of layers.
        width: features per layer.
        batch_size: samples pushed through together.
        gain: multiplies the weights; below 1 the signal shrinks, above 1 it grows.
        norm: ``None``, ``"batch"`` (our BatchNorm1d, batch statistics) or ``"layer"`` (our LayerNorm),
            without affine parameters.
        seed: seed of a private generator; the global one is left alone.

    Returns:
        ``depth`` standard deviations, first layer first.

    Raises:
        ValueError: if a size is not a positive int or ``norm`` is not one of the three.

    Examples:
        >>> len(activation_stds(depth=3, width=16, batch_size=32, norm="layer"))
        3
    """
    runs = _random_mlp_preactivations(depth=depth, width=width, batch_size=batch_size, gain=gain, norm=norm, seed=seed)
    return [h.std().item() for h in runs]


def plot_activation_distributions(*, depth: int = 20, width: int = 128, batch_size: int = 256) -> Figure:
    """Draw how the scale of activations drifts through a deep random network, with and without normalisation.

    Args:
        depth: number of layers.
        width: features per layer.
        batch_size: samples pushed through together.

    Returns:
        A figure with two axes: the standard deviation per layer, and histograms of the order of magnitude
        of the last layer's pre-activations.

    Examples:
        >>> fig = plot_activation_distributions(depth=3, width=8, batch_size=8)
        >>> len(fig.axes)
        2
    """
    from matplotlib.ticker import MaxNLocator

    fig, (ax_std, ax_hist) = new_figure(1, 2, width=9.5, height=3.8)
    names = {None: "no norm", "batch": "BatchNorm", "layer": "LayerNorm"}
    for norm, gain in ((n, g) for n in names for g in (0.7, 1.4)):
        label = f"{names[norm]}, gain {gain}"
        colour = {None: PALETTE[3 if gain < 1 else 2], "batch": PALETTE[0], "layer": PALETTE[1]}[norm]
        style = "--" if norm is None else ("-" if gain > 1 else ":")
        hs = _random_mlp_preactivations(depth=depth, width=width, batch_size=batch_size, gain=gain, norm=norm, seed=0)
        stds = [h.std().item() for h in hs]
        ax_std.plot(range(1, depth + 1), stds, style, color=colour, label=label, marker="o", markersize=3)
        # The order of magnitude of each number: where on the log scale the last layer lives.
        if gain == 1.4 or norm is None:
            magnitudes = hs[-1].abs().clamp_min(1e-12).log10().flatten().numpy()
            ax_hist.hist(magnitudes, bins=40, color=colour, alpha=0.55, label=label, histtype="stepfilled")
    ax_std.set(yscale="log", xlabel="layer", ylabel="std of pre-activations $h = Wx$", title="Scale through depth")
    ax_std.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_std.legend(fontsize=7, loc="upper left")
    ax_hist.set(xlabel=r"$\log_{10}|h|$ at the last layer", ylabel="count", title=f"Last layer (layer {depth})")
    ax_hist.legend(fontsize=7)
    return fig


def group_norm(
    input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    r"""Challenge solution: group normalisation, a twin of `torch.nn.functional.group_norm`.

    Args:
        input: shape $(N, C, \dots)$.
        num_groups: $G$, which must divide $C$; each group holds $C/G$ consecutive channels.
        weight: $\gamma$, shape $(C,)$, or ``None``.
        bias: $\beta$, shape $(C,)$, or ``None``.
        eps: added to the variance inside the square root.

    Returns:
        A tensor of ``input``'s shape.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.
        ValueError: if ``input`` has fewer than 2 dims, ``num_groups`` does not divide $C$, or
            ``weight``/``bias`` do not have $C$ entries.

    Examples:
        >>> x = torch.randn(2, 6, 3)
        >>> torch.testing.assert_close(group_norm(x, 3), F.group_norm(x, 3))
        >>> group_norm(x, 4)
        Traceback (most recent call last):
        ...
        ValueError: num_groups must be a positive int that divides C=6, got 4
    """
    _check_input(input, min_dim=2)
    N, C = input.shape[:2]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1 or C % num_groups:
        raise ValueError(f"num_groups must be a positive int that divides C={C}, got {num_groups!r}")
    _check_per_channel(C, weight=weight, bias=bias)
    # Consecutive channels share a group, so one reshape gathers each group's numbers into the last dim,
    # where LayerNorm's statistics are taken (in float32 for half inputs, rounded once at the end).
    grouped = input.to(_compute_dtype(input.dtype)).reshape(N, num_groups, -1)  # (N, G, C/G * ...)
    normalised = layer_norm(grouped, grouped.shape[-1], eps=eps).reshape(input.shape)  # (N, C, ...)
    return _scale_and_shift(normalised, weight, bias, (1, C) + (1,) * (input.dim() - 2)).to(input.dtype)


def check_group_norm(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``group_norm``."""
    generator = torch.Generator().manual_seed(0)
    for shape, groups in (((2, 6), 3), ((3, 4, 5), 2), ((2, 6, 3, 3), 1), ((2, 6, 3, 3), 6), ((1, 8, 4, 2), 4), ((4, 3, 1), 3)):
        x = torch.randn(shape, generator=generator, dtype=torch.float64) * 3 + 1
        weight, bias = torch.randn(2, shape[1], generator=generator, dtype=torch.float64)
        for kwargs in ({}, {"weight": weight, "bias": bias}, {"weight": weight, "eps": 0.5}):
            got = candidate(x, groups, **kwargs)
            where = f"group_norm(input of shape {shape}, num_groups={groups}, {', '.join(kwargs) or 'no affine'})"
            assert isinstance(got, Tensor) and got.shape == x.shape, f"{where}: expected a tensor of shape {shape}, got {got!r}"
            expected = F.group_norm(x, groups, **kwargs)
            torch.testing.assert_close(got, expected, msg=lambda m, where=where: f"{where} differs from F.group_norm: {m}")
    try:
        candidate(torch.randn(2, 6, 3), 4)
    except ValueError:
        return
    raise AssertionError("group_norm(input with C=6, num_groups=4) should raise ValueError: 4 does not divide 6")


def fold_batchnorm_into_linear(linear: nn.Linear, bn: nn.Module) -> nn.Linear:
    r"""Challenge solution: one `nn.Linear` equal to ``bn(linear(x))`` with ``bn`` in evaluation mode.

    Args:
        linear: the linear layer, with or without bias.
        bn: a BatchNorm1d (ours or PyTorch's) with running statistics, affine or not.

    Returns:
        A new `nn.Linear` on ``linear``'s device and dtype; the originals are left untouched.

    Raises:
        ValueError: if ``bn`` keeps no running statistics or its channels do not match ``linear.out_features``.

    Examples:
        >>> linear, bn = nn.Linear(3, 2), nn.BatchNorm1d(2).eval()
        >>> x = torch.randn(4, 3)
        >>> torch.testing.assert_close(fold_batchnorm_into_linear(linear, bn)(x), bn(linear(x)))
    """
    if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
        raise ValueError("bn must keep running statistics (track_running_stats=True) to be folded")
    if bn.num_features != linear.out_features:
        raise ValueError(f"bn.num_features={bn.num_features} must equal linear.out_features={linear.out_features}")
    with torch.no_grad():
        # s = gamma / sqrt(running_var + eps): the factor eval-mode BatchNorm multiplies each channel by.
        s = torch.rsqrt(bn.running_var + bn.eps)  # (out_features,)
        s = s * bn.weight if bn.weight is not None else s
        b = linear.bias if linear.bias is not None else torch.zeros_like(s)
        shift = bn.bias if bn.bias is not None else torch.zeros_like(s)
        # skip_init builds the layer without drawing random initial weights: they are overwritten anyway.
        fused = nn.utils.skip_init(
            nn.Linear, linear.in_features, linear.out_features, device=linear.weight.device, dtype=linear.weight.dtype
        )
        # Row i of W produces output i, so row i is scaled by s_i; the bias goes through the same map.
        fused.weight.copy_(linear.weight * s[:, None])  # (out_features, in_features)
        fused.bias.copy_((b - bn.running_mean) * s + shift)  # (out_features,)
    return fused


def check_fold_batchnorm_into_linear(candidate: Callable[[nn.Linear, nn.Module], nn.Module]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``fold_batchnorm_into_linear``."""
    # A forked generator: the layers are the same on every run, and the caller's seed is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cases = ((3, 2, True, True, 1e-5), (5, 4, False, True, 1e-5), (4, 3, True, False, 0.5), (2, 6, False, False, 1.0))
        for n_in, n_out, linear_bias, affine, eps in cases:
            linear, bn = nn.Linear(n_in, n_out, bias=linear_bias), nn.BatchNorm1d(n_out, eps=eps, affine=affine)
            # Real running statistics, and affine parameters that are not 1 and 0.
            with torch.no_grad():
                for _ in range(3):
                    bn(linear(torch.randn(16, n_in) * 2 + 1))
                if affine:
                    bn.weight.uniform_(0.5, 2.0)
                    bn.bias.normal_()
            bn.eval()
            before, x = [t.clone() for m in (linear, bn) for t in m.state_dict().values()], torch.randn(7, n_in)
            expected = bn(linear(x)).detach()
            fused = candidate(linear, bn)
            where = f"Linear({n_in}, {n_out}, bias={linear_bias}) + BatchNorm1d(affine={affine}, eps={eps})"
            assert isinstance(fused, nn.Linear) and fused is not linear, f"{where}: expected a new nn.Linear, got {fused!r}"
            after = [t for m in (linear, bn) for t in m.state_dict().values()]
            assert all(map(torch.equal, before, after)), f"{where}: the original layers were modified; leave them untouched"
            message = lambda m, where=where: f"{where}: fused output differs: {m}"  # noqa: E731
            torch.testing.assert_close(fused(x).detach(), expected, msg=message)
        no_stats, too_wide = nn.BatchNorm1d(2, track_running_stats=False), nn.BatchNorm1d(3)
        for bad, why in ((no_stats, "has no running statistics"), (too_wide, "has 3 channels for out_features=2")):
            try:
                candidate(nn.Linear(3, 2), bad.eval())
            except ValueError:
                continue
            raise AssertionError(f"fold_batchnorm_into_linear should raise ValueError when bn {why}")


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_eps(eps: object) -> None:
    if isinstance(eps, bool) or not isinstance(eps, Real) or not eps >= 0:
        raise ValueError(f"eps must be a real number >= 0, got {eps!r}")


def _check_input(input: object, min_dim: int = 0) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if input.dim() < min_dim:
        raise ValueError(f"input must have shape (N, C, ...) with at least 2 dims, got shape {tuple(input.shape)}")


def _check_per_channel(C: int, **vectors: Tensor | None) -> None:
    for name, x in vectors.items():
        if x is not None and tuple(x.shape) != (C,):
            raise ValueError(f"{name} must have shape ({C},), one value per channel, got shape {tuple(x.shape)}")


def _check_batch_norm_args(
    input: object, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None,
    bias: Tensor | None, training: bool, eps: object,
) -> None:
    _check_input(input, min_dim=2)
    _check_eps(eps)
    _check_per_channel(input.shape[1], running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    if training and input.numel() // max(input.shape[1], 1) == 1:
        raise ValueError(f"batch_norm needs more than 1 value per channel when training, got shape {tuple(input.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("running_mean and running_var are needed when training=False, got None")


def _check_batch_norm_options(num_features: object, eps: object, momentum: object) -> None:
    _check_positive_int("num_features", num_features)
    _check_eps(eps)
    if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, Real) or not 0 <= momentum <= 1):
        raise ValueError(f"momentum must be None or a number in [0, 1], got {momentum!r}")


def _check_batch_norm_input(module: _BatchNorm, input: object, use_batch_stats: bool) -> None:
    _check_input(input)
    module._check_input_dim(input)
    name, shape, C = type(module).__name__, tuple(input.shape), module.num_features
    if input.shape[1] != C:
        raise ValueError(f"{name}({C}) expects {C} channels in dim 1, got input of shape {shape}")
    if use_batch_stats and input.numel() // C == 1:
        raise ValueError(
            f"{name} needs more than 1 value per channel when training, got input of shape {shape}; "
            "use a bigger batch or call .eval()"
        )


def _as_shape(normalized_shape: object) -> tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    if not isinstance(shape, Sequence) or not shape or not all(type(s) is int and s >= 0 for s in shape):
        raise ValueError(
            f"normalized_shape must be a non-negative int or a non-empty sequence of them, got {normalized_shape!r}"
        )
    return tuple(shape)


def _check_layer_norm_args(
    input: object, normalized_shape: object, weight: Tensor | None, bias: Tensor | None, eps: object
) -> tuple[int, ...]:
    _check_input(input)
    shape = _as_shape(normalized_shape)
    _check_eps(eps)
    k = len(shape)
    if input.dim() < k or tuple(input.shape[input.dim() - k :]) != shape:
        raise ValueError(f"input must end with normalized_shape {shape}, got input of shape {tuple(input.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must have the shape normalized_shape {shape}, got shape {tuple(t.shape)}")
    return shape
