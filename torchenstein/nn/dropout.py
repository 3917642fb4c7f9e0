r"""
# Dropout: The Art of Strategic Forgetting

!!! torchenstein "The Professor speaks"
    A neuron that can always count on its neighbours grows lazy and conspiratorial: it learns to fix
    their mistakes instead of learning anything itself. So in my laboratory, during training, I knock out
    a random half of them at every step, and the survivors must each be worth something on their own!
    Today we build this controlled amnesia by hand, prove its statistics against `nn.Dropout`, and learn
    why it must fall silent the moment training ends.

**You will learn to**

- explain what dropout does (random zeros during training) and why it helps: no co-adaptation, and an
  implicit ensemble of thinned networks;
- prove, by algebra, by enumerating every mask and by sampling, that *inverted* dropout keeps
  $\mathbb{E}[\operatorname{dropout}(x)] = x$, so evaluation needs no rescaling;
- write `dropout` and a `Dropout` module from scratch, with PyTorch's argument names and edge cases, and
  test them against `nn.Dropout` with tolerances derived from the binomial distribution;
- show that the gradient flows through the very same scaled mask;
- measure how dropout inflates the variance, and why that upsets every `BatchNorm` downstream of it;
- drop attention weights, whole channels (`Dropout1d/2d/3d`) and whole residual branches (DropPath).

## The idea: forget at random

In a training step, dropout sets each activation to zero independently with probability $p$ (the **drop
probability**; $1 - p$ is the keep probability). A different random set of units is silenced at every
step, so no unit can rely on a particular partner being present, and units cannot *co-adapt* into fragile
teams that only work together (Hinton et al., 2012; Srivastava et al., 2014). Each random mask picks
out a *thinned* sub-network that shares its weights with all the others; training with dropout trains
all of them at once. A layer of $n$ units hides $2^n$ of them, far too many to ever meet twice:

```pycon
>>> len(str(2**1024))      # digits in the number of thinned versions of a 1024-unit layer
309

```

At test time we want the *average* prediction of this enormous ensemble, and we want it in a single
forward pass. That is what the scaling below buys: the plain network, with nothing dropped, computes the
ensemble's average exactly for a linear layer, and a good approximation of it through non-linearities
(the "weight scaling inference rule", which works well in practice).

## Inverted dropout: scale now, not later

Draw a mask $m_i \sim \operatorname{Bernoulli}(1 - p)$ for each element (1 = kept) and compute

$$
y_i = \frac{m_i\, x_i}{1 - p}.
$$

Dividing the survivors by $1 - p$ is the **inverted** part. It makes the expected output equal to the
input, because $\mathbb{E}[m_i] = 1 - p$:

$$
\mathbb{E}[y_i] = \frac{\mathbb{E}[m_i]\, x_i}{1 - p} = \frac{(1 - p)\, x_i}{1 - p} = x_i,
\qquad
\operatorname{Var}[y_i] = \frac{x_i^2 \operatorname{Var}[m_i]}{(1 - p)^2} = x_i^2\,\frac{p}{1 - p}.
$$

So at test time dropout simply does nothing: the next layer already saw inputs of the right size on
average. The original paper scaled the other way (no scaling in training, multiply the weights by $1-p$
at test time), which puts the burden on evaluation code that is easy to forget; every modern library
uses the inverted form. The algebra can be checked exactly, since for four elements there are only
$2^4 = 16$ masks: weigh each thinned output by the probability of its mask and add them up.

```pycon
>>> import itertools
>>> import torch
>>> p = 0.25
>>> x = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
>>> masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64)  # (16, 4)
>>> prob = (masks * (1 - p) + (1 - masks) * p).prod(dim=1)   # (16,): probability of each mask
>>> outputs = masks * x / (1 - p)                             # (16, 4): every thinned output
>>> {"masks": masks.shape[0], "total probability": round(prob.sum().item(), 12)}
{'masks': 16, 'total probability': 1.0}
>>> {"E[y] = x": torch.allclose(prob @ outputs, x),
...  "Var[y] = x^2 p / (1 - p)": torch.allclose(prob @ (outputs - x) ** 2, x**2 * p / (1 - p))}
{'E[y] = x': True, 'Var[y] = x^2 p / (1 - p)': True}

```

The same statement, checked by sampling: average 200 000 independent draws of
[`dropout`][torchenstein.nn.dropout.dropout] (written in the next section) and $x$ comes back.

```pycon
>>> from torchenstein.nn.dropout import dropout
>>> g = torch.Generator().manual_seed(0)
>>> dropout(x.expand(200_000, 4), p=p, generator=g).mean(dim=0).round(decimals=1).tolist()
[1.0, -2.0, 3.0, 0.5]

```

## Dropout from scratch

[`dropout`][torchenstein.nn.dropout.dropout] takes `torch.nn.functional.dropout`'s arguments
(`input`, `p`, `training`, `inplace`) plus an optional `generator`, so that a lesson (and a test) can
draw the very same mask twice. It draws one uniform number per element and keeps the element when the
number is below $1 - p$. With all-ones input the output *is* the scaled mask: survivors become
$1 / (1 - 0.5) = 2$.

```pycon
>>> import torch.nn.functional as F
>>> g = torch.Generator().manual_seed(0)
>>> dropout(torch.ones(8), p=0.5, generator=g)
tensor([2., 0., 2., 2., 2., 0., 2., 0.])
>>> a = dropout(torch.ones(8), p=0.5, generator=torch.Generator().manual_seed(1))
>>> torch.equal(a, dropout(torch.ones(8), p=0.5, generator=torch.Generator().manual_seed(1)))
True

```

The edges of $p$ deserve care. With `p=0` (or `training=False`, or an empty tensor) dropout is the
identity: it hands back the input itself and draws **no** random numbers, so the rest of a program's
random stream is the same as without dropout. With `p=1` everything is dropped, and the survivors'
scale $1/(1-p)$ would divide by zero; like PyTorch, ours multiplies by zero instead and never divides.
PyTorch's own CPU path returns early for `p=0` just the same. Anything outside $[0, 1]$ is refused.

```pycon
>>> x = torch.randn(6)
>>> state = g.get_state()
>>> {"p=0 returns x": dropout(x, p=0.0, generator=g) is x,
...  "eval returns x": dropout(x, training=False, generator=g) is x}
{'p=0 returns x': True, 'eval returns x': True}
>>> {"ours at p=1 is zero": torch.equal(dropout(x, p=1.0, generator=g), torch.zeros(6)),
...  "PyTorch's at p=1 is zero": torch.equal(F.dropout(x, p=1.0), torch.zeros(6))}
{'ours at p=1 is zero': True, "PyTorch's at p=1 is zero": True}
>>> torch.equal(g.get_state(), state)       # no random number was drawn
True
>>> rng = torch.get_rng_state()
>>> {"PyTorch's p=0 is the identity": torch.equal(F.dropout(x, p=0.0), x),
...  "and draws nothing": torch.equal(torch.get_rng_state(), rng)}
{"PyTorch's p=0 is the identity": True, 'and draws nothing': True}
>>> dropout(x, p=1.5)
Traceback (most recent call last):
...
ValueError: p must be a probability in [0, 1], got 1.5

```

## The module: `Dropout`

A module only has to remember `p` and `inplace`, and pass its own `self.training` flag down to the
function: `model.train()` and `model.eval()` flip that flag on every submodule.
[`Dropout`][torchenstein.nn.dropout.Dropout] has no parameters and no buffers, so its `state_dict` is
empty, like PyTorch's. In training mode it drops; in eval mode it returns its input untouched. (The
[Train vs eval](../modes/index.md) lesson surveys every module that cares about the flag.)

```pycon
>>> from torch import nn
>>> from torchenstein.nn.dropout import Dropout
>>> drop, theirs = Dropout(p=0.25), nn.Dropout(p=0.25)
>>> drop, theirs, drop.state_dict()
(Dropout(p=0.25, inplace=False), Dropout(p=0.25, inplace=False), OrderedDict())
>>> x = torch.ones(1000, 1000)
>>> y, y_torch = drop(x), theirs(x)
>>> y.unique(), y_torch.unique()
(tensor([0.0000, 1.3333]), tensor([0.0000, 1.3333]))
>>> {"zeroed, ours": round((y == 0).float().mean().item(), 2),
...  "zeroed, PyTorch's": round((y_torch == 0).float().mean().item(), 2)}
{'zeroed, ours': 0.25, "zeroed, PyTorch's": 0.25}
>>> {"mean, ours": round(y.mean().item(), 2), "mean, PyTorch's": round(y_torch.mean().item(), 2)}   # preserved
{'mean, ours': 1.0, "mean, PyTorch's": 1.0}
>>> _ = drop.eval(), theirs.eval()
>>> {"eval, ours": torch.equal(drop(x), x), "eval, PyTorch's": torch.equal(theirs(x), x)}
{'eval, ours': True, "eval, PyTorch's": True}

```

Will our mask equal PyTorch's, bit for bit, for the same seed? Not by design: PyTorch draws its mask with
`bernoulli_` on the CPU and with a fused kernel fed by a different random generator (Philox) on CUDA, and
neither promises to keep its random stream from one version to the next. So the tests never compare
masks; they compare **statistics**, which is all that dropout promises.

## How many are dropped? The binomial answer

In a tensor of $n$ elements the number of zeros is $\operatorname{Binomial}(n, p)$: mean $np$, standard
deviation $\sqrt{n p (1-p)}$. The *fraction* zeroed therefore has mean $p$ and standard deviation
$\sigma = \sqrt{p(1-p)/n}$, which shrinks like $1/\sqrt{n}$. The tests accept a fraction within $5\sigma$
of $p$: honest (an implementation that drops 1% too much or too little on a million elements is caught
by more than twenty $\sigma$) and practically never wrong (a correct implementation lands outside $5\sigma$
with the probability printed below). With fixed seeds the tests are deterministic on top of that.
Below: $\sigma$ for a million elements at $p = 0.25$, that false-alarm probability, and how many
$\sigma$ a 1% error is.

```pycon
>>> import math
>>> n, p = 1_000_000, 0.25
>>> sigma = math.sqrt(p * (1 - p) / n)
>>> round(sigma, 5), f"{math.erfc(5 / math.sqrt(2)):.1e}", round(0.01 / sigma)
(0.00043, '5.7e-07', 23)
>>> fraction = (dropout(torch.ones(n), p=p, generator=torch.Generator().manual_seed(0)) == 0).float().mean()
>>> abs(fraction.item() - p) < 5 * sigma
True

```

[`plot_fraction_zeroed`][torchenstein.nn.dropout.plot_fraction_zeroed] repeats the experiment thousands
of times, for ours and for `nn.Dropout`, and lays the binomial prediction over both histograms:

![Histograms of the fraction of zeros in many dropout draws, from scratch and from nn.Dropout, both following the binomial curve centred on p, well inside the five-sigma band of the tests](plot_fraction_zeroed.svg)

And here is what the masks look like for a few values of $p$, drawn by
[`plot_dropout_masks`][torchenstein.nn.dropout.plot_dropout_masks]:

![Three random dropout masks on a square grid, for drop probabilities 0.1, 0.5 and 0.9, with kept units coloured and dropped units blank](plot_dropout_masks.svg)

## Gradients flow through the same mask

Since $y_i = x_i m_i/(1-p)$ with the mask fixed once drawn, $\partial y_i / \partial x_i = m_i/(1-p)$: a
dropped unit passes no gradient back, and a kept unit passes it on scaled by $1/(1-p)$. Autograd sees
this for free, because our dropout is a multiplication by a constant tensor. With an all-ones input the
output is the scaled mask itself, so the gradient of `y.sum()` must equal `y`, for ours and for PyTorch's:

```pycon
>>> x = torch.ones(8, requires_grad=True)
>>> y = dropout(x, p=0.5, generator=torch.Generator().manual_seed(0))
>>> y.sum().backward()
>>> x.grad
tensor([2., 0., 2., 2., 2., 0., 2., 0.])
>>> x_torch = torch.ones(10_000, requires_grad=True)
>>> y_torch = F.dropout(x_torch, p=0.5)
>>> y_torch.sum().backward()
>>> torch.equal(x_torch.grad, y_torch.detach())
True

```

The tests also run `torch.autograd.gradcheck` on it in float64, with a generator reseeded on every call
so that each evaluation sees the same mask.

## Dropout inflates the variance

For a fixed input the output varies by $x_i^2\,p/(1-p)$, as shown above. For a random input with mean
$\mu$ and variance $\sigma^2$, independent of the mask, the same algebra gives

$$
\mathbb{E}[y] = \mu, \qquad
\operatorname{Var}[y] = \frac{\mathbb{E}[x^2]}{1 - p} - \mu^2 = \frac{\sigma^2}{1 - p} + \mu^2\,\frac{p}{1 - p}.
$$

The mean survives, but the variance of a zero-mean signal grows by the factor $1/(1-p)$ in training, and
drops back in evaluation. Measured on two million standard normal numbers (drop probability, predicted
factor, measured factor, and whether the mean stayed at 0):

```pycon
>>> x = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0))
>>> g = torch.Generator().manual_seed(1)
>>> for p in (0.5, 0.75):
...     y = dropout(x, p=p, generator=g)
...     print(p, round(1 / (1 - p), 1), round((y.var() / x.var()).item(), 1), abs(y.mean().item()) < 0.01)
0.5 2.0 2.0 True
0.75 4.0 4.0 True

```

Any layer that *remembers* the scale of its input from training, a `BatchNorm` with its running
statistics most of all, is fooled by this wherever it sits downstream of the dropout; the last of
Dr. Hammer's traps shows the damage and the cures.

## Dropout on attention weights

Transformers drop attention *weights*: after the softmax, each weight is zeroed with probability
`dropout_p` and the survivors are scaled, so a query cannot lean on a single key. The rows of the weight
matrix then sum to one only on average. Our
[`attention_with_weights`][torchenstein.transformers.attention.attention_with_weights] from the
[attention lesson](../../transformers/attention/index.md) shows the dropped weights: every survivor is
the clean weight divided by $1 - p$, and the output is exactly the dropped weights times the values.

```pycon
>>> from torchenstein.transformers.attention import attention_with_weights
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(3, 4, 32, 16).unbind(0)           # each (B, T, d)
>>> _, clean = attention_with_weights(q, k, v)
>>> out, dropped = attention_with_weights(q, k, v, dropout_p=0.2)
>>> kept = dropped != 0
>>> {"survivors scaled by 1 / 0.8": torch.allclose(dropped[kept], clean[kept] / 0.8),
...  "output = dropped weights @ v": torch.allclose(out, dropped @ v)}
{'survivors scaled by 1 / 0.8': True, 'output = dropped weights @ v': True}
>>> round(kept.float().mean().item(), 1)
0.8

```

Note that `scaled_dot_product_attention` (PyTorch's and ours) has no `training` flag: it drops whenever
`dropout_p > 0`. An attention module must pass `dropout_p=self.dropout_p if self.training else 0.0`
itself, or it keeps dropping in evaluation (the third trap below, in another costume).

## Channel dropout: `Dropout1d`, `Dropout2d`, `Dropout3d`

Neighbouring pixels of a feature map are strongly correlated. Drop one pixel and its neighbours still
carry almost the same value, so element-wise dropout barely hides anything from a convolution. Channel
dropout (Tompson et al., 2015) drops whole feature maps instead: for an input of shape $(N, C, \ast)$ the
mask has shape $(N, C, 1, \dots, 1)$ and is broadcast over the positions, so each channel of each sample is
either all zero or all scaled by $1/(1-p)$. `nn.Dropout1d` (for $(N, C, L)$), `nn.Dropout2d` (for
$(N, C, H, W)$) and `nn.Dropout3d` (for $(N, C, D, H, W)$) all do this one thing;
[`channel_dropout`][torchenstein.nn.dropout.channel_dropout] does it for any number of positional dims.

```pycon
>>> from torchenstein.nn.dropout import channel_dropout
>>> y = channel_dropout(torch.ones(2, 4, 3, 3), p=0.5, generator=torch.Generator().manual_seed(0))
>>> y[:, :, 0, 0]                      # (N, C): one verdict per channel
tensor([[2., 0., 2., 2.],
        [2., 0., 2., 0.]])
>>> torch.equal(y.amin(dim=(2, 3)), y.amax(dim=(2, 3)))   # constant over each 3 x 3 map
True
>>> x = torch.ones(64, 256, 4, 4)
>>> ours = channel_dropout(x, p=0.3, generator=torch.Generator().manual_seed(0))
>>> theirs = nn.Dropout2d(p=0.3)(x)
>>> {name: torch.equal(t.amin(dim=(2, 3)), t.amax(dim=(2, 3))) for name, t in (("ours", ours), ("Dropout2d", theirs))}
{'ours': True, 'Dropout2d': True}
>>> [round((t[:, :, 0, 0] == 0).float().mean().item(), 1) for t in (ours, theirs)]
[0.3, 0.3]

```

Note the number of independent draws: $N \cdot C$ channels, not $N \cdot C \cdot H \cdot W$ elements, so the
binomial tolerance of the tests is computed from the number of channels.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: forgetting `model.eval()`"
    Dr. Hammer evaluates his model straight after training, still in training mode. Dropout keeps
    dropping: two calls on the same input disagree, and the accuracy he reports is that of one random
    thinned network, not of the ensemble. Here a hand-made classifier that is right on every example in
    evaluation loses a good share of its accuracy in training mode.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(Dropout(p=0.25), nn.Linear(16, 1, bias=False))
    >>> _ = nn.init.ones_(model[1].weight)              # the classifier: "is the sum positive?"
    >>> x = torch.randn(10_000, 16)
    >>> labels = x.sum(dim=1, keepdim=True) > 0
    >>> with torch.no_grad():
    ...     first, second = model(x), model(x)           # Hammer: still in training mode
    ...     hammer_accuracy = ((first > 0) == labels).float().mean().item()
    ...     _ = model.eval()
    ...     eval_accuracy = ((model(x) > 0) == labels).float().mean().item()
    ...     same = torch.equal(model(x), model(x))
    >>> {"two calls agree": torch.equal(first, second), "accuracy": round(hammer_accuracy, 1)}   # Hammer
    {'two calls agree': False, 'accuracy': 0.8}
    >>> {"two calls agree": same, "accuracy": eval_accuracy}                                 # eval mode
    {'two calls agree': True, 'accuracy': 1.0}

    ```

!!! hammer "Dr. Hammer's trap: dropout that is not inverted"
    Dr. Hammer writes his own dropout as `x * mask`, without the $1/(1-p)$. In training the next layer
    sees activations that are $1 - p$ times their eval size; it adapts to that. At test time the dropout
    is switched off, he forgets to multiply by $1 - p$, and every activation arrives $1/(1-p)$ times too
    large.

    ```pycon
    >>> p, x = 0.5, torch.ones(1_000_000)
    >>> g = torch.Generator().manual_seed(0)
    >>> hammer_train = x * (torch.rand(x.shape, generator=g) < 1 - p)   # no scaling
    >>> {"training saw": round(hammer_train.mean().item(), 2), "eval sees": x.mean().item()}
    {'training saw': 0.5, 'eval sees': 1.0}
    >>> round(x.mean().item() / hammer_train.mean().item(), 1)          # eval is too large by 1 / (1 - p)
    2.0
    >>> round(dropout(x, p=p, generator=g).mean().item(), 2)            # inverted: training sees eval's scale
    1.0

    ```

!!! hammer "Dr. Hammer's trap: `F.dropout` without `training=self.training`"
    The functional `F.dropout(input, p)` has no idea which mode your module is in, and its `training`
    argument defaults to `True`. Dr. Hammer calls it bare inside `forward`; `model.eval()` flips
    `self.training`, which nobody reads, so his model drops in evaluation too.

    ```pycon
    >>> class HammerNet(nn.Module):
    ...     def forward(self, x):
    ...         return F.dropout(x, p=0.5)                          # training defaults to True!
    >>> class FixedNet(nn.Module):
    ...     def forward(self, x):
    ...         return F.dropout(x, p=0.5, training=self.training)  # or use an nn.Dropout submodule
    >>> x = torch.ones(1000)
    >>> hammer, fixed = HammerNet().eval(), FixedNet().eval()
    >>> {"in training mode": hammer.training, "drops anyway": bool((hammer(x) == 0).any())}
    {'in training mode': False, 'drops anyway': True}
    >>> torch.equal(fixed(x), x)
    True

    ```

!!! hammer "Dr. Hammer's trap: dropout upstream of a BatchNorm"
    A `BatchNorm` estimates the variance of its input during training and divides by it at test time.
    Put dropout in front of it and the variance it learns is the *inflated* training variance, $4/(1-p)$
    here, while in evaluation dropout is gone and the true variance is smaller (Li et al., 2019, call
    this the *variance shift*). The normalised outputs come out too small: their variance should be 1.
    Swapping the two does not cure it: "normalise first, drop after" only hands the shift to the next
    `BatchNorm` downstream, and in a network full of them there is always a next one. Transformers
    escape for another reason: their LayerNorm keeps no running statistics and normalises every sample
    with its own, in training and evaluation alike.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> nets = {"dropout, BatchNorm": nn.Sequential(Dropout(p=0.5), nn.BatchNorm1d(16, momentum=None)),
    ...         "BatchNorm, dropout, BatchNorm": nn.Sequential(
    ...             nn.BatchNorm1d(16, momentum=None), Dropout(p=0.5), nn.BatchNorm1d(16, momentum=None)),
    ...         "dropout, LayerNorm": nn.Sequential(Dropout(p=0.5), nn.LayerNorm(16, elementwise_affine=False))}
    >>> with torch.no_grad():                                  # training mode: the statistics are learned
    ...     for _ in range(20):
    ...         batch = 2 * torch.randn(512, 16)              # activations with variance 4
    ...         for net in nets.values():
    ...             _ = net(batch)
    >>> round(nets["dropout, BatchNorm"][1].running_var.mean().item())    # learned: 4 / (1 - p)
    8
    >>> x = 2 * torch.randn(4096, 16)
    >>> with torch.no_grad():                                  # evaluation: every variance should be 1
    ...     {name: round(net.eval()(x).var().item(), 1) for name, net in nets.items()}
    {'dropout, BatchNorm': 0.5, 'BatchNorm, dropout, BatchNorm': 0.5, 'dropout, LayerNorm': 1.0}

    ```

    The cures: keep dropout after the last `BatchNorm` (just before the final classifier); normalise
    downstream of dropout with a layer that keeps no running statistics (LayerNorm, GroupNorm); or,
    after training, let each `BatchNorm` re-estimate its statistics on training data with dropout off:

    ```pycon
    >>> hammer_net = nets["dropout, BatchNorm"]
    >>> hammer_net[1].reset_running_stats()
    >>> _ = hammer_net[1].train()                              # the BatchNorm listens; the dropout stays off
    >>> with torch.no_grad():
    ...     for _ in range(20):
    ...         _ = hammer_net(2 * torch.randn(512, 16))
    >>> with torch.no_grad():
    ...     round(hammer_net.eval()(x).var().item(), 1)
    1.0

    ```

## Challenges

**1. DropPath (stochastic depth).** Deep residual networks (Huang et al., 2016) and vision Transformers
drop whole residual *branches*: in `x + drop_path(branch(x), p)`, a dropped sample skips the branch and
keeps only its shortcut. Write `drop_path(input, p, training=True, *, generator=None)` that zeroes each
*sample* (a slice along dim 0) with probability `p` and scales the surviving samples by $1/(1-p)$; the
identity in eval mode or for `p=0`, zeros for `p=1`, and `ValueError` for `p` outside $[0, 1]$. Hint: the
mask has shape $(N, 1, \dots, 1)$.

**2. Monte Carlo dropout.** Dropout left on at test time turns one network into a sampler of thinned
networks, and the spread of their predictions is a cheap measure of uncertainty (Gal and Ghahramani,
2016). Write `mc_dropout_predict(model, input, num_samples=32)` returning `(mean, std)` over
`num_samples` forward passes (use `torch.std_mean` over the samples, without tracking gradients) in which
every dropout module (`nn.Dropout`, `nn.Dropout1d/2d/3d` and this lesson's `Dropout`) is in training mode
and **every other module in eval mode**: a `BatchNorm` must use, and not update, its running statistics.
Afterwards every module must be back in the mode it was in. Raise `ValueError` if `num_samples < 2`.

Check an attempt with `check_drop_path(my_function)` or `check_mc_dropout_predict(my_function)`, or put your
functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.nn.dropout import (
...     check_drop_path, check_mc_dropout_predict, drop_path, mc_dropout_predict)
>>> check_drop_path(drop_path)
>>> check_mc_dropout_predict(mc_dropout_predict)

```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _check_p(p: object) -> None:
    """Raise ValueError unless ``p`` is a real number in [0, 1] (a bool is not a probability)."""
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")


def _check_input(input: object) -> None:
    """Raise TypeError unless ``input`` is a floating-point tensor (a mask scaled by 1/(1-p) is fractional)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")


def _masked(
    input: Tensor, p: float, training: bool, inplace: bool, noise_shape: Sequence[int], generator
) -> Tensor:
    """Multiply ``input`` by a scaled Bernoulli mask of ``noise_shape``, broadcast over the rest."""
    # The identity cases return at once and draw nothing, so the random stream is left as it was.
    if not training or p == 0.0 or input.numel() == 0:
        return input
    # Everything is dropped: multiply by zero rather than divide by 1 - p = 0, as PyTorch does.
    if p == 1.0:
        return input.mul_(0.0) if inplace else input * 0.0
    # The uniforms are drawn in float32 whatever the input's dtype, so one seed gives one mask for
    # float32, float64 and bfloat16 alike; an element is kept when its uniform is below 1 - p.
    uniform = torch.rand(noise_shape, generator=generator, device=input.device)
    keep = uniform < 1.0 - p  # noise_shape, bool
    # The survivors' scale lives in the mask, so the backward pass multiplies by the same numbers.
    mask = keep.to(input.dtype) / (1.0 - p)
    return input.mul_(mask) if inplace else input * mask


def dropout(
    input: Tensor,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Inverted dropout from scratch, a twin of `torch.nn.functional.dropout`.

    Each element is zeroed with probability ``p`` and the survivors are multiplied by $1/(1-p)$, so the
    expected output equals the input.

    Args:
        input: a floating-point tensor of any shape.
        p: the probability of zeroing an element, in $[0, 1]$.
        training: drop only when ``True``; otherwise return ``input`` itself.
        inplace: overwrite ``input`` instead of allocating the output.
        generator: a `torch.Generator` on ``input``'s device for the mask; ``None`` uses the global one.

    Returns:
        A tensor of ``input``'s shape and dtype (``input`` itself when nothing is dropped or ``inplace``).
        No random number is drawn when ``training`` is ``False``, ``p`` is 0 or 1, or ``input`` is empty.

    Raises:
        ValueError: if ``p`` is not a number in $[0, 1]$.
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> x = torch.ones(2, 3)
        >>> y = dropout(x, p=0.5, generator=torch.Generator().manual_seed(0))
        >>> y
        tensor([[2., 0., 2.],
                [2., 2., 0.]])
        >>> dropout(x, p=0.5, training=False) is x
        True
        >>> dropout(torch.arange(3), p=0.5)
        Traceback (most recent call last):
        ...
        TypeError: input must be a floating-point tensor, got dtype torch.int64
    """
    _check_p(p)
    _check_input(input)
    # (...): one independent draw per element.
    return _masked(input, float(p), training, inplace, input.shape, generator)


class Dropout(nn.Module):
    r"""Inverted dropout as a module, a twin of `torch.nn.Dropout`: drops in training mode only.

    Args:
        p: the probability of zeroing an element, in $[0, 1]$.
        inplace: overwrite the input instead of allocating the output.

    Raises:
        ValueError: if ``p`` is not a number in $[0, 1]$.

    Examples:
        >>> drop = Dropout(p=0.5)
        >>> drop
        Dropout(p=0.5, inplace=False)
        >>> x = torch.ones(4, 4)
        >>> torch.equal(drop.eval()(x), x)
        True
        >>> Dropout(p=-0.1)
        Traceback (most recent call last):
        ...
        ValueError: p must be a probability in [0, 1], got -0.1
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        _check_p(p)
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        """Drop with probability ``self.p`` when ``self.training``; return ``input`` untouched otherwise."""
        # The module's only job: read its own mode flag, which model.train() and model.eval() set.
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


def channel_dropout(
    input: Tensor, p: float = 0.5, training: bool = True, *, generator: torch.Generator | None = None
) -> Tensor:
    r"""Channel dropout, as in `torch.nn.Dropout1d`, `Dropout2d` and `Dropout3d`: whole channels at a time.

    Args:
        input: a floating-point tensor of shape $(N, C, \ast)$ with at least one positional dim.
        p: the probability of zeroing a channel, in $[0, 1]$.
        training: drop only when ``True``; otherwise return ``input`` itself.
        generator: a `torch.Generator` on ``input``'s device for the mask; ``None`` uses the global one.

    Returns:
        A tensor of ``input``'s shape in which each ``input[n, c]`` is all zero or all scaled by $1/(1-p)$.

    Raises:
        ValueError: if ``p`` is not in $[0, 1]$, or ``input`` has fewer than 3 dims.
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> y = channel_dropout(torch.ones(1, 3, 2), p=0.5, generator=torch.Generator().manual_seed(0))
        >>> y
        tensor([[[2., 2.],
                 [0., 0.],
                 [2., 2.]]])
        >>> channel_dropout(torch.ones(4, 3), p=0.5)
        Traceback (most recent call last):
        ...
        ValueError: input must have shape (N, C, *positions) with at least 3 dims, got shape (4, 3)
    """
    _check_p(p)
    _check_input(input)
    if input.dim() < 3:
        raise ValueError(
            f"input must have shape (N, C, *positions) with at least 3 dims, got shape {tuple(input.shape)}"
        )
    # (N, C, 1, ..., 1): one draw per channel of each sample, broadcast over all its positions.
    noise_shape = (*input.shape[:2], *([1] * (input.dim() - 2)))
    return _masked(input, float(p), training, False, noise_shape, generator)


def plot_dropout_masks(*, ps: Sequence[float] = (0.1, 0.5, 0.9), size: int = 24, seed: int = 0) -> Figure:
    """Draw one random dropout mask on a ``size`` x ``size`` grid for each drop probability in ``ps``.

    Args:
        ps: the drop probabilities, one panel each.
        size: the side of the square grid of units.
        seed: seed of a private generator; the global one is left alone.

    Returns:
        A figure with one axes per probability.

    Examples:
        >>> fig = plot_dropout_masks(ps=(0.5,), size=4)
        >>> len(fig.axes)
        1
    """
    from matplotlib.colors import ListedColormap

    generator = torch.Generator().manual_seed(seed)
    fig, axes = new_figure(1, len(ps), width=2.6 * len(ps) + 0.6, height=3.0)
    for ax, p in zip(axes, ps, strict=True):
        kept = dropout(torch.ones(size, size), p=p, generator=generator) != 0  # (size, size)
        ax.imshow(kept.numpy(), cmap=ListedColormap(["white", PALETTE[0]]), vmin=0, vmax=1)
        ax.grid(False)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("left", "bottom", "top", "right"):
            ax.spines[side].set_visible(True)
        ax.set_title(f"p = {p}: {(~kept).float().mean().item():.0%} dropped")
    fig.suptitle("Dropout masks (coloured = kept, scaled by 1/(1-p))")
    return fig


def plot_fraction_zeroed(*, p: float = 0.3, numel: int = 400, draws: int = 2000, seed: int = 0) -> Figure:
    """Draw histograms of the fraction of zeros over many dropout draws, ours and PyTorch's, against the binomial law.

    Args:
        p: the drop probability.
        numel: elements in each drawn tensor.
        draws: how many tensors are drawn.
        seed: seed of a private generator (ours) and of a forked global one (PyTorch's).

    Returns:
        A figure with one axes.

    Examples:
        >>> fig = plot_fraction_zeroed(numel=10, draws=20)
        >>> len(fig.axes)
        1
    """
    ones = torch.ones(draws, numel)
    # One row per draw: every row is an independent tensor of `numel` elements.
    ours = (dropout(ones, p=p, generator=torch.Generator().manual_seed(seed)) == 0).sum(dim=1)  # (draws,)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        theirs = (F.dropout(ones, p=p) == 0).sum(dim=1)  # (draws,)
    counts = torch.arange(numel + 1)
    pmf = torch.distributions.Binomial(numel, torch.tensor(p)).log_prob(counts.float()).exp()
    sigma = math.sqrt(p * (1 - p) / numel)
    # Bins of whole counts, a few counts wide, so the histogram and the pmf share one scale.
    width = max(1, round(math.sqrt(numel * p * (1 - p)) / 4))
    edges = (torch.arange(-0.5, numel + width, width) / numel).numpy()
    fig, (ax,) = new_figure(1, 1, width=7.0, height=3.6)
    for counted, label, colour in ((ours, "from scratch", PALETTE[0]), (theirs, "nn.Dropout", PALETTE[1])):
        ax.hist((counted / numel).numpy(), bins=edges, density=True, histtype="step", linewidth=1.8,
                color=colour, label=f"{label} ({draws} draws)")
    ax.plot((counts / numel).numpy(), (pmf * numel).numpy(), color=PALETTE[2], label=f"Binomial({numel}, {p})")
    for sign in (-1, 1):
        ax.axvline(p + 5 * sign * sigma, color=PALETTE[6], linestyle="--", linewidth=1)
    low, high = max(0.0, p - 6 * sigma), min(1.0, p + 6 * sigma)
    ax.set(xlim=(low, high), xlabel=f"fraction of the {numel} elements zeroed", ylabel="density")
    ax.set_title(f"Fraction zeroed at p = {p}; dashed: p ± 5σ, the tests' tolerance")
    ax.legend(fontsize=8)
    return fig


def drop_path(
    input: Tensor, p: float, training: bool = True, *, generator: torch.Generator | None = None
) -> Tensor:
    r"""Challenge solution: DropPath (stochastic depth), which drops whole samples of a residual branch.

    Args:
        input: a floating-point tensor of shape $(N, \ast)$, the output of a residual branch.
        p: the probability of dropping a sample, in $[0, 1]$.
        training: drop only when ``True``; otherwise return ``input`` itself.
        generator: a `torch.Generator` on ``input``'s device for the mask; ``None`` uses the global one.

    Returns:
        A tensor of ``input``'s shape in which each ``input[n]`` is all zero or all scaled by $1/(1-p)$.

    Raises:
        ValueError: if ``p`` is not in $[0, 1]$, or ``input`` is 0-dimensional.
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> drop_path(torch.ones(4, 2), p=0.5, generator=torch.Generator().manual_seed(0))
        tensor([[2., 2.],
                [0., 0.],
                [2., 2.],
                [2., 2.]])
    """
    _check_p(p)
    _check_input(input)
    if input.dim() == 0:
        raise ValueError("input must have a batch dim 0 to drop samples along, got a 0-dim tensor")
    # (N, 1, ..., 1): one verdict per sample, broadcast over everything else it holds.
    noise_shape = (input.shape[0], *([1] * (input.dim() - 1)))
    return _masked(input, float(p), training, False, noise_shape, generator)


def _binomial_tolerance(p: float, n: int, sigmas: float = 5.0) -> float:
    """The largest honest distance between an observed fraction of ``n`` Bernoulli(p) draws and ``p``."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def check_drop_path(candidate) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``drop_path``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for p, shape in ((0.2, (20_000, 3, 4)), (0.5, (20_000, 6)), (0.7, (20_000,))):
            x = torch.rand(shape, dtype=torch.float64) + 0.5  # never zero, so a zero means "dropped"
            y = candidate(x, p, generator=torch.Generator().manual_seed(1))
            assert isinstance(y, torch.Tensor) and y.shape == x.shape, f"drop_path must keep the shape {tuple(x.shape)}"
            assert y.dtype == x.dtype, f"drop_path must keep the dtype {x.dtype}, got {y.dtype}"
            flat_x, flat_y = x.reshape(len(x), -1), y.reshape(len(y), -1)
            dropped = (flat_y == 0).all(dim=1)  # (N,)
            kept = (flat_y != 0).all(dim=1)
            assert bool((dropped | kept).all()), "each sample must be dropped whole or kept whole, not element by element"
            assert torch.allclose(flat_y[kept], flat_x[kept] / (1 - p)), f"kept samples must be scaled by 1/(1-p) for p={p}"
            fraction, tolerance = dropped.double().mean().item(), _binomial_tolerance(p, len(x))
            assert abs(fraction - p) <= tolerance, f"p={p} dropped a fraction {fraction:.4f} of the samples, expected {p} ± {tolerance:.4f}"
        x = torch.randn(8, 5)
        assert torch.equal(candidate(x, 0.5, training=False), x), "drop_path must be the identity when training=False"
        assert torch.equal(candidate(x, 0.0), x), "drop_path must be the identity for p=0"
        zeros = candidate(x, 1.0)
        assert torch.equal(zeros, torch.zeros_like(x)), f"p=1 must drop every sample (and divide by nothing), got {zeros}"
        ones = torch.ones(2000, 3, requires_grad=True)
        out = candidate(ones, 0.5)
        out.sum().backward()
        assert ones.grad is not None and torch.allclose(ones.grad, out.detach()), "the gradient must flow through the same scaled mask"
    for bad in (-0.1, 1.5):
        try:
            candidate(torch.ones(4, 2), bad)
        except ValueError:
            continue
        raise AssertionError(f"drop_path(x, {bad}) should raise ValueError: p must lie in [0, 1]")


_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, Dropout)


def mc_dropout_predict(model: nn.Module, input: Tensor, num_samples: int = 32) -> tuple[Tensor, Tensor]:
    """Challenge solution: Monte Carlo dropout, the mean and spread of predictions with dropout left on.

    Args:
        model: any module; its dropout modules are switched to training mode for the call, all others
            to eval mode, and every module's mode is restored afterwards.
        input: the batch to predict.
        num_samples: forward passes to average, at least 2.

    Returns:
        ``(mean, std)`` over the samples, each of the shape of one prediction, without autograd history.

    Raises:
        ValueError: if ``num_samples`` is below 2.

    Examples:
        >>> model = nn.Sequential(nn.Linear(3, 2), Dropout(0.5))
        >>> mean, std = mc_dropout_predict(model.eval(), torch.randn(4, 3), num_samples=8)
        >>> mean.shape, std.shape
        (torch.Size([4, 2]), torch.Size([4, 2]))
        >>> {"model training": model.training, "dropout training": model[1].training}   # modes restored
        {'model training': False, 'dropout training': False}
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an int of at least 2, got {num_samples!r}")
    # Remember every module's own flag: a model may legitimately mix modes, and we must leave it as found.
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        for module in model.modules():
            if isinstance(module, _DROPOUT_MODULES):
                module.train()
        with torch.no_grad():
            samples = torch.stack([model(input) for _ in range(num_samples)])  # (num_samples, *prediction)
        std, mean = torch.std_mean(samples, dim=0)
    finally:
        for module, training in modes.items():
            module.training = training
    return mean, std


def check_mc_dropout_predict(candidate) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``mc_dropout_predict``."""
    n, p, num_samples = 16, 0.5, 2000
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.randn(4, n)
        for drop in (nn.Dropout(p), Dropout(p)):
            linear = nn.Linear(n, 1, bias=False)
            with torch.no_grad():
                linear.weight.copy_(torch.linspace(-1, 1, n))
            model = nn.Sequential(drop, linear).eval()
            mean, std = candidate(model, x, num_samples)
            assert mean.shape == std.shape == (4, 1), f"mean and std must have a prediction's shape (4, 1), got {tuple(mean.shape)}, {tuple(std.shape)}"
            assert not mean.requires_grad and not std.requires_grad, "run the samples under torch.no_grad()"
            assert not model.training and not drop.training, "every module must be back in eval mode afterwards"
            # y = w . (m * x) / (1 - p): mean w . x and variance p / (1 - p) * sum (w x)^2, by the lesson's algebra.
            with torch.no_grad():
                expected_mean = model(x)
                expected_std = ((linear.weight * x) ** 2).sum(dim=1, keepdim=True).mul(p / (1 - p)).sqrt()
            assert torch.all((mean - expected_mean).abs() <= 6 * expected_std / num_samples**0.5), (
                f"the mean over {num_samples} samples should be close to the eval output {expected_mean.flatten()}, got {mean.flatten()}"
            )
            assert torch.allclose(std, expected_std, rtol=0.15), (
                f"with {type(drop).__name__} on, the std should be about {expected_std.flatten()}, got {std.flatten()}"
            )
        batchnorm, linear = nn.BatchNorm1d(n), nn.Linear(n, 2)
        with torch.no_grad():
            batchnorm.running_mean.fill_(3.0)
            batchnorm.running_var.fill_(4.0)
            linear.weight.fill_(0.25)
            linear.bias.zero_()
        model = nn.Sequential(batchnorm, nn.Dropout(p), linear, nn.Identity()).train()
        model[3].eval()  # a model may mix modes; each module's own flag must come back as it was
        flags = [module.training for module in model.modules()]
        stats = [t.clone() for t in (batchnorm.running_mean, batchnorm.running_var, batchnorm.num_batches_tracked)]
        mean, _ = candidate(model, x, 400)
        assert [module.training for module in model.modules()] == flags, "every module must be back in its own mode afterwards"
        for before, after in zip(stats, (batchnorm.running_mean, batchnorm.running_var, batchnorm.num_batches_tracked), strict=True):
            assert torch.equal(before, after), "BatchNorm's running statistics changed: it must stay in eval mode"
        # In eval mode BatchNorm normalises with its running statistics, (x - 3) / 2, not the batch's own.
        with torch.no_grad():
            reference = linear((x - 3.0) / math.sqrt(4.0 + batchnorm.eps))
        assert torch.allclose(mean, reference, atol=0.5), "BatchNorm must normalise with its running statistics (eval mode)"
        plain = nn.Sequential(nn.Linear(n, 3), nn.ReLU()).eval()
        mean, std = candidate(plain, x, 4)
        assert torch.allclose(std, torch.zeros(4, 3)), "a model without dropout must give std 0"
        assert torch.allclose(mean, plain(x).detach()), "a model without dropout must give its eval output as the mean"
    try:
        candidate(plain, x, 1)
    except ValueError:
        return
    raise AssertionError("num_samples=1 should raise ValueError: a spread needs at least 2 samples")
