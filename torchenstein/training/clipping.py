r"""
# Gradient Clipping: A Leash for Exploding Gradients

!!! torchenstein "The Professor speaks"
    One quiet night my monster's loss was falling beautifully, and the next step it was `inf`. Not a
    bug, apprentices: a *cliff*. Somewhere a product of many Jacobians grew past all reason, and one
    gigantic gradient hurled the weights into the void. Tonight we learn to read a gradient's pulse,
    and we put it on a leash: gradient clipping, written from scratch and proved equal to PyTorch's own,
    down to the dtype of the number it returns.

**You will learn to**

- explain why gradients explode through depth and through a weight used again and again;
- compute the total gradient norm as a norm of per-parameter norms, for every `norm_type` PyTorch takes,
  and say where that identity breaks;
- write `clip_grad_norm_` and `clip_grad_value_` from scratch with PyTorch's semantics (`None` gradients,
  a single tensor, a generator read once, no gradients at all, `inf` and `NaN`, mixed dtypes) and prove
  them equal to `torch.nn.utils`;
- watch clipping rescue a run that explodes, and read per-layer gradient norms and activation statistics;
- clip at the right moment, once, on the whole gradient.

## Why gradients explode

Backpropagation multiplies. The gradient that reaches the first layer of a deep network is the loss's
gradient multiplied by the Jacobian of every layer above it (see [Autograd](../../tensors/autograd/index.md)).
Use the *same* weight $W$ at every step, as a recurrent network does through time, and the product is a
matrix power: for $h_d = W^d x$ the gradient with respect to $x$ is $(W^\top)^d$ applied to the gradient
with respect to $h_d$. If $W = a\,Q$ with $Q$ orthogonal (a rotation, which keeps every length), that
gradient's length is exactly $a^d$ times the length it started with. Fifty steps turn a mild $a = 1.1$
into a factor of more than a hundred, and a mild $a = 0.9$ into almost nothing (the *vanishing* gradient,
the same disease in the other direction):

```pycon
>>> import torch
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> q, _ = torch.linalg.qr(torch.randn(8, 8))             # orthogonal: q @ v is as long as v
>>> v = torch.randn(8)
>>> v = v / v.norm()                                       # the gradient arriving at h, of length 1
>>> def input_gradient_norm(a, depth=50):
...     x = torch.randn(8, requires_grad=True)
...     h = x
...     for _ in range(depth):
...         h = (a * q) @ h                                # the same weight, fifty times
...     (h * v).sum().backward()
...     return x.grad.norm().item()
>>> for a in (0.9, 1.0, 1.1):
...     print(f"a = {a}: gradient length {input_gradient_norm(a):.3g}, a ** 50 = {a ** 50:.3g}")
a = 0.9: gradient length 0.00515, a ** 50 = 0.00515
a = 1.0: gradient length 1, a ** 50 = 1
a = 1.1: gradient length 117, a ** 50 = 117

```

Normalisation layers, residual connections and careful initialisation
([Linear layers](../../nn/linear/index.md)) keep $a$ near 1 most of the time. *Most* of the time: a
single unlucky batch, a learning rate a little too bold, a weight that has drifted, and one step's
gradient is a thousand times larger than the last. Gradient descent then takes a step a thousand times
too long. Clipping is the leash: whatever the gradient's length, the step it causes is bounded.

## The total norm is a norm of norms

A model's gradient is not one tensor but one per parameter, $g_1, \dots, g_k$. Clipping treats them as
a single long vector $g$, and measures its $p$-norm. That norm never needs the long vector itself,
because a $p$-norm of a concatenation is the $p$-norm of the pieces' norms:

$$
\lVert g \rVert_p = \Big(\sum_{i=1}^{k} \sum_j |g_{ij}|^p\Big)^{1/p}
= \Big(\sum_{i=1}^{k} \lVert g_i \rVert_p^{\,p}\Big)^{1/p}
= \big\lVert (\lVert g_1 \rVert_p, \dots, \lVert g_k \rVert_p) \big\rVert_p .
$$

The middle step only regroups the sum, so the identity holds for every finite $p \neq 0$, the
"norms" with $p < 1$ included (they break the triangle inequality, but not this algebra). For
$p = \infty$ the norm is the largest $|g_{ij}|$, and the largest of the per-tensor maxima is the same
number; for $p = -\infty$ (PyTorch accepts it) it is the smallest $|g_{ij}|$, likewise. The exception is
$p = 0$, which `torch.linalg.vector_norm` defines as the *count* of non-zero entries: the count of
non-zero counts is the number of tensors with any non-zero entry, not the number of non-zero entries.
PyTorch computes the norm of norms anyway, and so does our
[`get_total_norm`][torchenstein.training.clipping.get_total_norm] (PyTorch 2.6 and later ships the same
function as `torch.nn.utils.get_total_norm`):

```pycon
>>> from torchenstein.training.clipping import get_total_norm
>>> grads = [torch.randn(3, 4), torch.zeros(5), torch.randn(7)]
>>> grads[0][0] = 0.0                                     # four zeros in the first tensor
>>> flat = torch.cat([g.flatten() for g in grads])        # the long vector, (24,)
>>> for p in (2.0, 1.0, 3.0, 0.5, float("inf"), -float("inf")):
...     torch.testing.assert_close(get_total_norm(grads, p), torch.linalg.vector_norm(flat, p))
>>> print(f"p = 0: norm of norms {get_total_norm(grads, 0.0).item():g} (tensors), "
...       f"norm of the long vector {torch.linalg.vector_norm(flat, 0.0).item():g} (entries)")
p = 0: norm of norms 2 (tensors), norm of the long vector 15 (entries)

```

## `clip_grad_norm_` from scratch

With the total norm $n$ in hand, [`clip_grad_norm_`][torchenstein.training.clipping.clip_grad_norm_]
multiplies every gradient, in place (hence the trailing underscore, PyTorch's mark for in-place), by one
**clip coefficient**:

$$
c = \min\left(\frac{\text{max\_norm}}{n + 10^{-6}},\ 1\right), \qquad g_i \leftarrow c\, g_i .
$$

One coefficient for all: the gradient keeps its direction and only its length shrinks, to about
`max_norm` (a hair under, thanks to the $10^{-6}$ that protects an all-zero gradient from $0/0$). A
gradient already shorter than `max_norm` is multiplied by exactly 1. The function returns $n$, the norm
**before** clipping, which is the number worth logging. Against PyTorch's own:

```pycon
>>> from torchenstein.training.clipping import clip_grad_norm_
>>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
>>> twin = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
>>> _ = twin.load_state_dict(model.state_dict())
>>> x = torch.randn(16, 4)
>>> for net in (model, twin):
...     (100 * net(x).square().mean()).backward()           # a large loss: large gradients
>>> before = [p.grad.clone() for p in model.parameters()]
>>> ours = clip_grad_norm_(model.parameters(), max_norm=1.0)
>>> theirs = torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm=1.0)
>>> print(f"returned norm {ours.item():.4f} ({ours.dtype}), same as PyTorch's: {torch.equal(ours, theirs)}")
returned norm 52.7754 (torch.float32), same as PyTorch's: True
>>> print("same clipped gradients:", all(torch.equal(a.grad, b.grad) for a, b in zip(model.parameters(), twin.parameters())))
same clipped gradients: True
>>> print(f"norm after clipping: {get_total_norm([p.grad for p in model.parameters()]).item():.4f}")
norm after clipping: 1.0000
>>> c = model[0].weight.grad / before[0]                                       # one coefficient for all
>>> print(f"one coefficient everywhere: {torch.allclose(c, c.flatten()[0])}, "
...       f"coefficient * norm: {c.flatten()[0].item() * ours.item():.4f}")
one coefficient everywhere: True, coefficient * norm: 1.0000

```

The tests (`tests/test_clipping.py`) prove the equality far more widely: bit for bit on the CPU, returned
norm and clipped gradients, for float32, float64, float16 and bfloat16 gradients, `norm_type` 2, 1, 3, 0.5, 0,
`inf` and `-inf`, `max_norm` from 0 to large, many parameter shapes (0-d and empty ones too), with
`error_if_nonfinite` and every `foreach`, and with gradients that hold `inf` or `NaN`.

## The fine print: `None`, one tensor, a generator, nothing at all

Real parameter lists are untidy, and PyTorch's rules for them are worth knowing by heart:

- a parameter whose `.grad` is `None` (frozen, or unused by this loss) is skipped, neither counted nor
  touched;
- a single tensor is accepted as well as an iterable;
- the iterable is read **once**: `model.parameters()` is a generator, which cannot be rewound, so it is
  turned into a list before anything else looks at it;
- with no gradients at all the total norm is `tensor(0.)`, and an *empty generator* earns a warning;
- a gradient holding `inf` makes the total norm `inf`, the coefficient $1/\infty = 0$, and then $0 \cdot
  \infty$ is `NaN`: the clipped gradient is zeros with `NaN` where the `inf` was. A `NaN` anywhere makes
  every gradient `NaN`. With `error_if_nonfinite=True` the function raises instead, and clips nothing.

```pycon
>>> import warnings
>>> frozen = torch.zeros(3, requires_grad=True)              # .grad is None
>>> w = torch.zeros(2, requires_grad=True)
>>> w.grad = torch.tensor([3.0, 4.0])
>>> norm = clip_grad_norm_([frozen, w], max_norm=1.0)
>>> print(f"norm before: {norm}, frozen.grad: {frozen.grad}, w.grad: {w.grad}")
norm before: 5.0, frozen.grad: None, w.grad: tensor([0.6000, 0.8000])
>>> clip_grad_norm_(w, max_norm=0.5)                       # one tensor; the norm before clipping
tensor(1.0000)
>>> clip_grad_norm_([frozen], max_norm=1.0)                 # nothing to clip
tensor(0.)
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     clip_grad_norm_((p for p in []), max_norm=1.0)
tensor(0.)
>>> print(caught[0].message)
`parameters` is an empty generator, no gradient clipping will occur.
>>> w.grad = torch.tensor([float("inf"), 4.0])
>>> norm = clip_grad_norm_(w, max_norm=1.0)
>>> print(f"norm before: {norm}, w.grad after: {w.grad}")
norm before: inf, w.grad after: tensor([nan, 0.])
>>> w.grad = torch.tensor([float("nan"), 4.0])
>>> clip_grad_norm_(w, max_norm=1.0, error_if_nonfinite=True)
Traceback (most recent call last):
...
RuntimeError: The total norm of order 2.0 for gradients from `parameters` is non-finite, so it cannot be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set `error_if_nonfinite=False`
>>> w.grad                                                  # untouched: the error came first
tensor([nan, 4.])

```

Clipping cannot cure a `NaN`; it can only refuse to spread it. What to do instead of stepping is the
subject of the lesson on hunting `NaN`s, which follows this one.

## Whose precision? The dtype of the norm

Each per-parameter norm is computed in its gradient's dtype (the kernel accumulates float16 and bfloat16
in float32 internally and rounds the finished norm once). The norms are then stacked in the dtype they
all promote to (see [Dtypes and devices](../../tensors/dtypes/index.md)): float16 with bfloat16 gives
float32, anything with float64 gives float64, and that is the dtype of the returned norm and of the
coefficient. For pure float16 gradients the *total* is a float16 number, and float16 stops at 65504: ten
thousand gradient entries of 1000 are each perfectly representable, their norm of $10^5$ is not. The
norm becomes `inf`, the coefficient 0, and every gradient is wiped out, in PyTorch and here alike:

```pycon
>>> for dtypes in [(torch.float16,), (torch.float16, torch.bfloat16), (torch.bfloat16, torch.float64)]:
...     params = [torch.zeros(3, dtype=d, requires_grad=True) for d in dtypes]
...     for p in params:
...         p.grad = torch.ones(3, dtype=p.dtype)
...     print(dtypes, "->", clip_grad_norm_(params, max_norm=1.0).dtype)
(torch.float16,) -> torch.float16
(torch.float16, torch.bfloat16) -> torch.float32
(torch.bfloat16, torch.float64) -> torch.float64
>>> torch.finfo(torch.float16).max
65504.0
>>> h = torch.zeros(10_000, dtype=torch.float16, requires_grad=True)
>>> h.grad = torch.full((10_000,), 1000.0, dtype=torch.float16)
>>> norm = torch.nn.utils.clip_grad_norm_(h, max_norm=1.0)
>>> print(f"norm: {norm.item()} ({norm.dtype}), largest gradient left: {h.grad.abs().max().item()}")
norm: inf (torch.float16), largest gradient left: 0.0
>>> h.grad = torch.full((10_000,), 1000.0, dtype=torch.float16)
>>> n = get_total_norm([h.grad.float()])                     # measure in float32 instead
>>> print(f"norm: {n.item():.5g}, after scaling: {h.grad.float().mul(1.0 / (n + 1e-6)).norm().item():.4f}")
norm: 1e+05, after scaling: 1.0000

```

bfloat16 has float32's range and does not overflow here. The safe habits: keep the gradients you clip
in float32, or measure the norm of float32 copies and scale by it (the first challenge below writes the
function that scales by a norm computed elsewhere).

## Clipping by value

[`clip_grad_value_`][torchenstein.training.clipping.clip_grad_value_] is blunter: it clamps every element
into $[-\text{clip\_value}, \text{clip\_value}]$ on its own and returns nothing. Large coordinates are cut,
small ones survive, so the **direction changes**; norm clipping only ever shortens.

```pycon
>>> from torchenstein.training.clipping import clip_grad_value_
>>> a = torch.zeros(3, requires_grad=True)
>>> b = torch.zeros(3, requires_grad=True)
>>> a.grad = torch.tensor([10.0, 1.0, -0.1])
>>> b.grad = a.grad.clone()
>>> original = a.grad.clone()
>>> clip_grad_value_(a, clip_value=1.0)
>>> _ = clip_grad_norm_(b, max_norm=1.0)
>>> print(f"by value: {a.grad}\nby norm:  {b.grad}")
by value: tensor([ 1.0000,  1.0000, -0.1000])
by norm:  tensor([ 0.9950,  0.0995, -0.0099])
>>> cosine = torch.nn.functional.cosine_similarity
>>> print(f"by value: {cosine(a.grad, original, dim=0):.4f}, by norm: {cosine(b.grad, original, dim=0):.4f}")
by value: 0.7727, by norm: 1.0000
>>> t = torch.zeros(3, requires_grad=True)
>>> t.grad = original.clone()
>>> torch.nn.utils.clip_grad_value_(t, clip_value=1.0)
>>> print("same as PyTorch's clip_grad_value_:", torch.equal(t.grad, a.grad))
same as PyTorch's clip_grad_value_: True

```

## Watching a run explode

Time to see the cliff. [`repeated_weight_run`][torchenstein.training.clipping.repeated_weight_run] trains a
single `Linear(8, 8)` applied ten times in a row (our recurrent network in miniature) with plain SGD, the
learning rate $\eta$ scaling each step $w \leftarrow w - \eta\, g$, and records each step's gradient
norm and loss. At $\eta = 0.01$ all is calm. At $\eta = 0.04$ the first step overshoots, the tenth power
of the weight grows, the next gradient is more than a hundred times larger, and one step later the
loss is `inf` and the gradient `NaN`. Clip the same run to norm 1 and each step is at most $\eta \cdot 1$ long: the same bold
learning rate now trains.

```pycon
>>> from torchenstein.training.clipping import repeated_weight_run
>>> runs = {"lr 0.01": repeated_weight_run(0.01), "lr 0.04": repeated_weight_run(0.04),
...         "lr 0.04, clipped": repeated_weight_run(0.04, max_norm=1.0)}
>>> for name, run in runs.items():
...     norms = ", ".join(f"{value:.2g}" for value in run["grad_norm"][:4])
...     losses = ", ".join(f"{value:.2g}" for value in run["loss"][:3])
...     print(f"{name:17} first norms: {norms:22} first losses: {losses:14} last loss: {run['loss'][-1]:.2g}")
lr 0.01           first norms: 71, 4.2, 3.4, 3.1      first losses: 5.4, 1.2, 1.1  last loss: 0.23
lr 0.04           first norms: 71, 8.1e+03, nan, nan  first losses: 5.4, 6e+02, inf last loss: nan
lr 0.04, clipped  first norms: 71, 37, 19, 11         first losses: 5.4, 3.3, 2.2  last loss: 0.016

```

![Two panels on log scales over forty steps. Left, the total gradient norm: at learning rate 0.01 it falls from about 70 and levels off; at 0.04 without clipping it jumps to about 8000 and the line ends at a cross, where it became infinite; at 0.04 clipped to norm 1 it falls to about 1 and hovers there. Right, the loss of the same runs: the exploding run ends at a cross after two steps, the clipped run falls lowest.](plot_gradient_norms.svg)

The clipped run still *reports* norms far above 1: the returned value is measured before clipping. A
rising curve of those norms is the warning light; clipping is the fuse that keeps the house standing
while you find out why.

## A stethoscope for every layer

The total norm is one number for a whole model. When it misbehaves, ask each parameter.
[`gradient_report`][torchenstein.training.clipping.gradient_report] lists every gradient's norm by name
(`None` for a parameter that received no gradient, itself a finding), and the squares of its values add up
to the square of the total norm. Gradients are half the story; the activations that produce them are the
other half. [`activation_stats`][torchenstein.training.clipping.activation_stats] runs one forward pass
and records the mean, standard deviation and share of exact zeros of every leaf module's output. It uses
*forward hooks*: a forward hook is a function a module calls with its input and output each time it
runs (the hooks lesson of Part 6 opens them up fully). Here is a deep ReLU MLP with PyTorch's default
initialisation, which [Linear layers](../../nn/linear/index.md) showed shrinks the signal at every layer:

```pycon
>>> import math
>>> from torchenstein.nn.containers import sequential_mlp
>>> from torchenstein.training.clipping import activation_stats, gradient_report
>>> _ = torch.manual_seed(0)
>>> deep = sequential_mlp([32] * 7 + [1])                  # Linear layers 0, 2, ..., 12; ReLUs between
>>> x, y = torch.randn(64, 32), torch.randn(64, 1)
>>> torch.nn.functional.mse_loss(deep(x), y).backward()
>>> report = gradient_report(deep)
>>> {name: float(f"{norm:.3g}") for name, norm in report.items() if name.endswith("weight")}
{'0.weight': 0.0032, '2.weight': 0.00402, '4.weight': 0.00502, '6.weight': 0.00473, '8.weight': 0.00815, '10.weight': 0.0147, '12.weight': 0.0585}
>>> print(f"last layer's weight gradient / first layer's: {report['12.weight'] / report['0.weight']:.0f}")
last layer's weight gradient / first layer's: 18
>>> total = clip_grad_norm_(deep.parameters(), max_norm=float("inf"))   # inf: measure, do not clip
>>> from_report = math.sqrt(sum(n * n for n in report.values()))
>>> print(f"total norm {total.item():.4f}, from the report {from_report:.4f}")
total norm 0.1411, from the report 0.1411
>>> stats = activation_stats(deep, x)
>>> {name: round(s["std"], 2) for name, s in stats.items() if int(name) % 2 == 0 and name != "12"}
{'0': 0.6, '2': 0.26, '4': 0.15, '6': 0.1, '8': 0.09, '10': 0.12}
>>> {name: round(s["zero_fraction"], 1) for name, s in stats.items() if int(name) % 2 == 1}
{'1': 0.5, '3': 0.5, '5': 0.6, '7': 0.7, '9': 0.5, '11': 0.5}

```

The hidden activations' spread falls from 0.6 to about 0.1 in four layers, and stops falling only
because the biases add a floor; every ReLU silences half of its units or more; and the first layer's
gradient is 18 times weaker than the last one's. This model's gradients vanish rather than explode, and
no amount of clipping helps, since clipping only shortens. The cure there is initialisation and
normalisation; the report is how you find out which disease you have.

## Where it differs from PyTorch

- A negative or `NaN` `max_norm` raises `ValueError` (PyTorch's coefficient would be negative, flipping
  every gradient, or `NaN`); so does a negative `clip_value` (PyTorch would set every element to it).
- Something that is not a tensor raises `TypeError` naming it (PyTorch: an `AttributeError` about `.grad`).
- `foreach` is accepted and checked, and always takes the loop: PyTorch's fused `_foreach_` kernels give
  the same numbers (the tests compare every `foreach` setting), only in fewer kernel launches.
- With several gradient dtypes at once, PyTorch stacks the per-parameter norms group by group in an order
  of its own, we stack them in parameter order: the sum of the stacked squares can round differently in
  its last bit. With a single dtype the two agree bit for bit on the CPU; with mixed dtypes, to that one
  rounding. On a GPU, PyTorch's fused norm kernel may round differently from `vector_norm`, so there the
  tests hold the two to float tolerance.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: clipping at the wrong moment"
    Dr. Hammer clips, then calls `backward`, then steps. Before `backward` there is nothing to clip (or,
    worse, last step's stale gradients), and `backward` then writes the full, unclipped gradient. Clipping
    after `optimizer.step()` is just as useless: the weights have already moved. The only place is
    between the two; with gradient accumulation, after the *last* micro-batch's `backward` (see
    [Gradient accumulation](../../tensors/accumulation/index.md)); and when the loss was multiplied by a
    scale before `backward`, after the gradients are divided by it again (the mixed-precision lesson
    shows what clipping the scaled gradients does).

    ```pycon
    >>> def one_step(order, lr=0.1):
    ...     _ = torch.manual_seed(0)
    ...     layer = nn.Linear(3, 1)
    ...     sgd = torch.optim.SGD(layer.parameters(), lr=lr)
    ...     loss = lambda: (10 * layer(torch.ones(4, 3))).square().mean()
    ...     for action in order:
    ...         {"backward": lambda: loss().backward(), "step": sgd.step,
    ...          "clip": lambda: clip_grad_norm_(layer.parameters(), max_norm=0.1)}[action]()
    ...     return layer.weight.detach()
    >>> unclipped = one_step(["backward", "step"])
    >>> torch.equal(one_step(["clip", "backward", "step"]), unclipped)
    True
    >>> torch.equal(one_step(["backward", "step", "clip"]), unclipped)
    True
    >>> torch.equal(one_step(["backward", "clip", "step"]), unclipped)
    False

    ```

!!! hammer "Dr. Hammer's trap: clipping each parameter on its own"
    "Each layer deserves its own leash," says Dr. Hammer, and calls `clip_grad_norm_` once per parameter.
    Now every tensor is clipped by its own coefficient: the large ones shrink, the small ones do not, and
    the gradient points somewhere new. One call over all parameters keeps the direction.

    ```pycon
    >>> def two_grads():
    ...     big, small = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    ...     big.grad, small.grad = torch.tensor([30.0, 40.0]), torch.tensor([0.3, 0.4])
    ...     return big, small
    >>> big, small = two_grads()
    >>> original = torch.cat([big.grad, small.grad])
    >>> for p in (big, small):
    ...     _ = clip_grad_norm_(p, max_norm=1.0)             # Hammer: one leash each
    >>> hammer = torch.cat([big.grad, small.grad])
    >>> big, small = two_grads()
    >>> _ = clip_grad_norm_([big, small], max_norm=1.0)      # one leash for all
    >>> together = torch.cat([big.grad, small.grad])
    >>> print(f"Hammer: {cosine(hammer, original, dim=0):.3f}, together: {cosine(together, original, dim=0):.3f}")
    Hammer: 0.899, together: 1.000

    ```

!!! hammer "Dr. Hammer's trap: the returned norm is the norm before"
    Dr. Hammer logs the value `clip_grad_norm_` returns and writes in his paper that "gradient norms were
    kept below 1". They were not: the function returns the norm *before* clipping. The norm after is
    about `min(before, max_norm)`; measure it again if you want it.

    ```pycon
    >>> w = torch.zeros(2, requires_grad=True)
    >>> w.grad = torch.tensor([30.0, 40.0])
    >>> returned = clip_grad_norm_(w, max_norm=1.0)
    >>> print(f"returned: {returned.item():.4f}, after: {get_total_norm(w.grad).item():.4f}")
    returned: 50.0000, after: 1.0000

    ```

!!! hammer "Dr. Hammer's trap: a generator spent twice"
    Dr. Hammer keeps `params = model.parameters()` in a variable and hands it to the optimizer, which
    reads the generator to the end. His later `clip_grad_norm_(params, 1.0)` receives an empty generator
    and clips nothing, for the whole run. Our function (and recent PyTorch releases) warns; older releases
    said nothing at all. Call `model.parameters()` afresh each time, or keep a list.

    ```pycon
    >>> layer = nn.Linear(3, 1)
    >>> params = layer.parameters()
    >>> sgd = torch.optim.SGD(params, lr=0.1)                 # reads the generator to the end
    >>> (100 * layer(torch.ones(2, 3))).sum().backward()
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     norm = clip_grad_norm_(params, max_norm=1.0)
    >>> print(f"the spent generator saw norm {norm.item()}, warnings: {len(caught)}, "
    ...       f"weight gradient left unclipped: {get_total_norm(layer.weight.grad).item():.1f}")
    the spent generator saw norm 0.0, warnings: 1, weight gradient left unclipped: 346.4
    >>> print(f"a fresh layer.parameters() sees norm {clip_grad_norm_(layer.parameters(), max_norm=1.0).item():.1f}")
    a fresh layer.parameters() sees norm 400.0

    ```

## Challenges

1. **Clip by a norm computed elsewhere.** Write `clip_grads_with_norm_(parameters, max_norm, total_norm,
   foreach=None)`, the second half of `clip_grad_norm_` (PyTorch 2.6 and later has it under this name): scale
   every existing `.grad` in place by $\min(\text{max\_norm} / (\text{total\_norm} + 10^{-6}), 1)$ for a
   `total_norm` you are *given*, skip `None` gradients, accept one tensor or an iterable, return nothing.
   It is how a model split across devices clips: each shard computes its own norm, the norms are combined
   as a norm of norms, and every shard scales by the total.
2. **Adaptive gradient clipping.** Write `adaptive_clip_grad_(parameters, clip_factor=0.01, eps=1e-3)`,
   the clipping of the NFNets paper (Brock et al., 2021): clip each *unit* (a row along dimension 0 of a
   parameter with two or more dimensions; the whole tensor for a bias or a scalar) so its gradient norm is
   at most `clip_factor` times its weight norm, with weight norms below `eps` counted as `eps`. A unit's
   gradient over the limit $\lambda$ is multiplied by $\lambda / \max(\lVert G \rVert, 10^{-6})$.

Check an attempt with `check_clip_grads_with_norm_(my_function)` and `check_adaptive_clip_grad_(my_function)`,
or put both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass:

```pycon
>>> from torchenstein.training.clipping import (adaptive_clip_grad_, check_adaptive_clip_grad_,
...                                             check_clip_grads_with_norm_, clip_grads_with_norm_)
>>> check_clip_grads_with_norm_(clip_grads_with_norm_)
>>> check_adaptive_clip_grad_(adaptive_clip_grad_)

```
"""

from __future__ import annotations

import functools
import math
import types
import warnings
from collections.abc import Callable, Iterable
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import nn

from torchenstein.lab import PALETTE, new_figure, progress
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import mse_loss

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_NONFINITE_MESSAGE = (
    "The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
    "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
    "`error_if_nonfinite=False`"
)
"""PyTorch's own words for a total norm that is ``nan`` or ``inf`` under ``error_if_nonfinite=True``."""


@torch.no_grad()
def get_total_norm(
    tensors: torch.Tensor | Iterable[torch.Tensor],
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> torch.Tensor:
    r"""The norm of many tensors seen as one long vector: the norm of their norms, like `torch.nn.utils.get_total_norm`.

    Args:
        tensors: a tensor, or an iterable of tensors (read once, so a generator is fine).
        norm_type: the $p$ of the $p$-norm: any float, ``inf`` or ``-inf`` (or the strings ``"inf"``
            and ``"-inf"``, as PyTorch allows).
        error_if_nonfinite: raise if the total norm is ``nan`` or ``inf``.
        foreach: accepted for PyTorch's signature; the fused kernels it selects give the same numbers,
            so this version always loops.

    Returns:
        A 0-d tensor on the first tensor's device, in the dtype that all the tensors' dtypes promote to;
        ``tensor(0.)`` when there are no tensors at all.

    Raises:
        RuntimeError: with PyTorch's message, if ``error_if_nonfinite`` and the total is not finite.
        TypeError: if ``tensors`` is not a tensor or an iterable of tensors, or a flag is not a bool.
        ValueError: if ``norm_type`` is not a number.

    Examples:
        >>> get_total_norm([torch.tensor([3.0]), torch.tensor([4.0])])
        tensor(5.)
        >>> get_total_norm([torch.tensor([3.0]), torch.tensor([-4.0])], norm_type="inf")
        tensor(4.)
    """
    tensors = _tensor_list("tensors", tensors)
    norm_type = _check_norm_type(norm_type)
    _check_flags(error_if_nonfinite, foreach)
    if not tensors:
        return torch.tensor(0.0)
    # One norm per tensor, each in the tensor's own dtype: the kernel accumulates float16 and bfloat16
    # in float32 and rounds the finished norm once, as PyTorch's per-dtype groups do.
    norms = [torch.linalg.vector_norm(t, norm_type) for t in tensors]
    # The total lives on the first tensor's device, in the dtype every norm promotes to: float16 with
    # bfloat16 gives float32, anything with float64 gives float64.
    dtype = functools.reduce(torch.promote_types, (n.dtype for n in norms))
    stacked = torch.stack([n.to(device=tensors[0].device, dtype=dtype) for n in norms])  # (num_tensors,)
    total_norm = torch.linalg.vector_norm(stacked, norm_type)
    if error_if_nonfinite and not bool(torch.isfinite(total_norm)):
        raise RuntimeError(_NONFINITE_MESSAGE.format(norm_type=norm_type))
    return total_norm


@torch.no_grad()
def clip_grad_norm_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> torch.Tensor:
    r"""Scale all gradients together so their total norm is at most ``max_norm``, like `torch.nn.utils.clip_grad_norm_`.

    Every ``.grad`` is multiplied, in place, by $\min\left(\frac{\text{max\_norm}}{\text{total\_norm} +
    10^{-6}},\ 1\right)$: one coefficient for all, so the direction of the whole gradient is kept.

    Args:
        parameters: a tensor, or an iterable of tensors (read once); those whose ``.grad`` is ``None``
            are skipped.
        max_norm: the largest total norm allowed, at least 0.
        norm_type: the $p$ of the $p$-norm, as in [`get_total_norm`][torchenstein.training.clipping.get_total_norm].
        error_if_nonfinite: raise, and clip nothing, if the total norm is ``nan`` or ``inf``.
        foreach: accepted for PyTorch's signature; this version always loops.

    Returns:
        The total norm of the gradients **before** clipping (see
        [`get_total_norm`][torchenstein.training.clipping.get_total_norm] for its device and dtype);
        ``tensor(0.)`` when no parameter has a gradient.

    Raises:
        RuntimeError: with PyTorch's message, if ``error_if_nonfinite`` and the total is not finite.
        TypeError: if ``parameters`` holds something that is not a tensor, or an argument has the wrong type.
        ValueError: if ``max_norm`` is negative or NaN (PyTorch would flip or poison every gradient).

    Examples:
        >>> w = torch.zeros(2, requires_grad=True)
        >>> w.grad = torch.tensor([3.0, 4.0])
        >>> clip_grad_norm_(w, max_norm=1.0), w.grad
        (tensor(5.), tensor([0.6000, 0.8000]))
    """
    parameters = _tensor_list("parameters", parameters, warn_if_empty_generator=True)
    max_norm = _check_bound("max_norm", max_norm)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    # The 1e-6 keeps an all-zero gradient from dividing by zero; the clamp means clipping only ever
    # shrinks. Clamping a tensor (rather than testing `if coef < 1` in Python) keeps a GPU from
    # having to report the norm back to the CPU before it may go on.
    clip_coef = max_norm / (total_norm + 1e-6)
    clip_coef_clamped = clip_coef.clamp(max=1.0)
    for g in grads:
        g.mul_(clip_coef_clamped.to(g.device))
    return total_norm


@torch.no_grad()
def clip_grad_value_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    clip_value: float,
    foreach: bool | None = None,
) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place, like `torch.nn.utils.clip_grad_value_`.

    Args:
        parameters: a tensor, or an iterable of tensors (read once); ``None`` gradients are skipped.
        clip_value: the largest absolute value an element may keep, at least 0.
        foreach: accepted for PyTorch's signature; this version always loops.

    Raises:
        TypeError: if ``parameters`` holds something that is not a tensor, or an argument has the wrong type.
        ValueError: if ``clip_value`` is negative or NaN (PyTorch would set every element to it).

    Examples:
        >>> w = torch.zeros(3, requires_grad=True)
        >>> w.grad = torch.tensor([-5.0, 0.5, 9.0])
        >>> clip_grad_value_(w, clip_value=1.0)
        >>> w.grad
        tensor([-1.0000,  0.5000,  1.0000])
    """
    parameters = _tensor_list("parameters", parameters)
    clip_value = _check_bound("clip_value", clip_value)
    _check_flags(False, foreach)
    for p in parameters:
        if p.grad is not None:
            # Element by element: each coordinate is cut on its own, so the direction may change.
            p.grad.clamp_(min=-clip_value, max=clip_value)


def repeated_weight_run(
    lr: float,
    max_norm: float | None = None,
    *,
    steps: int = 40,
    depth: int = 10,
    width: int = 8,
    seed: int = 0,
) -> dict[str, list[float]]:
    r"""Train one weight matrix applied ``depth`` times with SGD, and record each step's gradient norm and loss.

    The model is $h = W^{\text{depth}} x$ with a single ``Linear(width, width, bias=False)``, the
    shape of a recurrent network unrolled through time; the target is $1.5\,x$. With ``max_norm``
    the gradient is clipped before every step.

    Args:
        lr: SGD's learning rate, positive.
        max_norm: clip the total gradient norm to this (``None``: no clipping).
        steps: optimizer steps, at least 1.
        depth: how many times the weight is applied, at least 1.
        width: features of the weight, at least 1.
        seed: seeds the data and the weight (the global generator is left untouched).

    Returns:
        ``{"grad_norm": [...], "loss": [...]}``, one entry per step, the norm measured before clipping;
        ``nan`` and ``inf`` once the run has blown up.

    Raises:
        TypeError: if ``lr`` is not a number or a size not an int.
        ValueError: if a size or ``lr`` is out of range, or ``max_norm`` is negative.

    Examples:
        >>> run = repeated_weight_run(0.01, steps=3)
        >>> len(run["grad_norm"]), len(run["loss"])
        (3, 3)
    """
    _check_run(lr, max_norm, steps=steps, depth=depth, width=width, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    # fork_rng: the layer's own initialisation draws from the global generator; restore it afterwards.
    with torch.random.fork_rng(devices=[]):
        layer = Linear(width, width, bias=False)
    with torch.no_grad():
        # Close to the identity, so the product of `depth` copies starts out tame.
        layer.weight.copy_(torch.eye(width) + 0.05 * torch.randn(width, width, generator=generator))
    x = torch.randn(64, width, generator=generator)  # (batch, width)
    target = 1.5 * x
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr)
    history: dict[str, list[float]] = {"grad_norm": [], "loss": []}
    for _ in progress(range(steps), desc=f"lr={lr}, max_norm={max_norm}", leave=False):
        h = x
        for _ in range(depth):
            h = layer(h)  # (batch, width): the same weight again and again
        loss = mse_loss(h, target)
        optimizer.zero_grad()
        loss.backward()
        if max_norm is None:
            norm = get_total_norm([p.grad for p in layer.parameters()])
        else:
            norm = clip_grad_norm_(layer.parameters(), max_norm)
        optimizer.step()
        history["grad_norm"].append(norm.item())
        history["loss"].append(loss.item())
    return history


def gradient_report(model: nn.Module) -> dict[str, float | None]:
    """The L2 norm of every parameter's gradient, by qualified name, ``None`` where there is no gradient.

    Args:
        model: a module after ``backward``.

    Returns:
        ``{name: norm}`` in ``named_parameters`` order. The square root of the sum of the squares is the
        total norm [`clip_grad_norm_`][torchenstein.training.clipping.clip_grad_norm_] returns.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.

    Examples:
        >>> layer = nn.Linear(2, 1)
        >>> gradient_report(layer)
        {'weight': None, 'bias': None}
    """
    _check_module(model)
    return {
        name: None if p.grad is None else torch.linalg.vector_norm(p.grad.detach()).item()
        for name, p in model.named_parameters()
    }


def activation_stats(model: nn.Module, *inputs: torch.Tensor) -> dict[str, dict[str, float]]:
    """Run ``model(*inputs)`` once and record the mean, spread and share of zeros of every leaf module's output.

    A forward hook is a function a module calls with its input and output each time it runs; we lend one
    to every leaf module (one with no children), and take them all back afterwards, even if the forward fails.

    Args:
        model: the network.
        *inputs: what to call it with.

    Returns:
        ``{name: {"mean": ..., "std": ..., "zero_fraction": ...}}`` for each leaf whose output is a
        floating-point tensor, in the order the leaves ran (a leaf that runs twice keeps its last call).

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.

    Examples:
        >>> stats = activation_stats(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), torch.randn(5, 3))
        >>> list(stats), sorted(stats["1"])
        (['0', '1'], ['mean', 'std', 'zero_fraction'])
    """
    _check_module(model)
    stats: dict[str, dict[str, float]] = {}

    def recorder(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                out = output.detach().float()
                stats.pop(name, None)  # a second call moves the entry to the end
                stats[name] = {
                    "mean": out.mean().item(),
                    "std": out.std().item() if out.numel() > 1 else 0.0,
                    "zero_fraction": (out == 0).float().mean().item(),
                }

        return hook

    leaves = [(name, module) for name, module in model.named_modules() if next(module.children(), None) is None]
    handles = [module.register_forward_hook(recorder(name)) for name, module in leaves]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return stats


def plot_gradient_norms(*, steps: int = 40, depth: int = 10) -> Figure:
    """Draw the total gradient norm and the loss of three runs of `repeated_weight_run`.

    A modest learning rate, a learning rate four times larger that explodes, and the same large rate with
    the gradient clipped to norm 1. A cross marks the last finite value of a run that blew up.

    Args:
        steps: optimizer steps per run.
        depth: how many times the weight is applied.

    Returns:
        A figure with two axes: the gradient norm (before clipping) and the loss, both on log scales.

    Examples:
        >>> fig = plot_gradient_norms(steps=3, depth=2)
        >>> len(fig.axes)
        2
    """
    runs = {
        "lr 0.01": repeated_weight_run(0.01, steps=steps, depth=depth),
        "lr 0.04": repeated_weight_run(0.04, steps=steps, depth=depth),
        "lr 0.04, clipped to norm 1": repeated_weight_run(0.04, 1.0, steps=steps, depth=depth),
    }
    fig, (ax_norm, ax_loss) = new_figure(1, 2, width=10.0, height=3.8)
    for (label, history), colour in zip(runs.items(), (PALETTE[1], PALETTE[2], PALETTE[0]), strict=True):
        for ax, key in ((ax_norm, "grad_norm"), (ax_loss, "loss")):
            values = [v if math.isfinite(v) else math.nan for v in history[key]]
            ax.semilogy(range(len(values)), values, "o-", markersize=3, color=colour, label=label)
            finite = [i for i, v in enumerate(values) if math.isfinite(v)]
            if finite and finite[-1] < len(values) - 1:
                ax.plot(finite[-1], values[finite[-1]], "x", color=colour, markersize=12, markeredgewidth=2.5)
    ax_norm.set(xlabel="step", ylabel="total gradient norm (before clipping)", title="Gradient norm")
    ax_loss.set(xlabel="step", ylabel="loss", title="Loss")
    ax_norm.axhline(1.0, color="#888888", linewidth=0.8, linestyle="--")
    ax_loss.legend(fontsize=8)
    return fig


# Challenges


@torch.no_grad()
def clip_grads_with_norm_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    total_norm: torch.Tensor,
    foreach: bool | None = None,
) -> None:
    r"""Challenge solution: scale the gradients by $\min(\text{max\_norm} / (\text{total\_norm} + 10^{-6}), 1)$ for a given total norm.

    The second half of [`clip_grad_norm_`][torchenstein.training.clipping.clip_grad_norm_], for when the
    total norm was computed elsewhere (say, combined from the norms of several shards of a model).

    Args:
        parameters: a tensor, or an iterable of tensors (read once); ``None`` gradients are skipped.
        max_norm: the largest total norm allowed, at least 0.
        total_norm: the total norm to clip by, a tensor.
        foreach: accepted for PyTorch's signature; this version always loops.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``max_norm`` is negative or NaN.

    Examples:
        >>> w = torch.zeros(2, requires_grad=True)
        >>> w.grad = torch.tensor([3.0, 4.0])
        >>> clip_grads_with_norm_(w, 1.0, torch.tensor(10.0))
        >>> w.grad
        tensor([0.3000, 0.4000])
    """
    parameters = _tensor_list("parameters", parameters)
    max_norm = _check_bound("max_norm", max_norm)
    if not isinstance(total_norm, torch.Tensor):
        raise TypeError(f"total_norm must be a torch.Tensor, got {type(total_norm).__name__}")
    _check_flags(False, foreach)
    clip_coef_clamped = (max_norm / (total_norm + 1e-6)).clamp(max=1.0)
    for p in parameters:
        if p.grad is not None:
            p.grad.mul_(clip_coef_clamped.to(p.grad.device))


def _challenge_parameters(seed: int, shapes: list[tuple[int, ...]], scale: float,
                          dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(shapes):
        p = torch.randn(shape, generator=generator, dtype=dtype).requires_grad_(True)
        # Every third parameter has no gradient, as a frozen or unused one would.
        if i % 3 != 2:
            p.grad = scale * torch.randn(shape, generator=generator, dtype=dtype)
        params.append(p)
    return params


def _grads(params: list[torch.Tensor]) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


def _assert_grads(case: str, params: list[torch.Tensor], expected: list[torch.Tensor | None]) -> None:
    for i, (p, want) in enumerate(zip(params, expected, strict=True)):
        if want is None:
            assert p.grad is None, f"{case}: parameter {i} had no gradient and must keep None, got a tensor"
            continue
        assert p.grad is not None, f"{case}: parameter {i} lost its gradient"
        assert p.grad.dtype == want.dtype, f"{case}: parameter {i}'s gradient should stay {want.dtype}, got {p.grad.dtype}"
        assert torch.allclose(p.grad, want, rtol=1e-6, atol=1e-12, equal_nan=True), (
            f"{case}: parameter {i}'s gradient should be {want.flatten()[:3].tolist()}..., "
            f"got {p.grad.flatten()[:3].tolist()}...")


def check_clip_grads_with_norm_(candidate: Callable[..., object]) -> None:
    """Check an attempt at `clip_grads_with_norm_` against `clip_grad_norm_` on many cases.

    Raises:
        AssertionError: if a gradient differs from the expected one; the message names the case.
    """
    shapes = [(3, 4), (5,), (2, 2), (7,), (1,)]
    for seed, (scale, max_norm) in enumerate(((10.0, 1.0), (0.01, 1.0), (3.0, 0.0), (5.0, 2.5))):
        params = _challenge_parameters(seed, shapes, scale)
        twins = [p.detach().clone().requires_grad_(True) for p in params]
        for t, p in zip(twins, params, strict=True):
            t.grad = None if p.grad is None else p.grad.clone()
        total = clip_grad_norm_(twins, max_norm)
        case = f"gradients of norm {total.item():.4g}, max_norm={max_norm}"
        candidate(params, max_norm, total)
        _assert_grads(case, params, _grads(twins))
    # The norm given is the norm used: a caller may know better than the local gradients.
    params = _challenge_parameters(7, shapes, 1.0)
    expected = [None if p.grad is None else p.grad * (1.0 / (100.0 + 1e-6)) for p in params]
    candidate(iter(params), 1.0, torch.tensor(100.0, dtype=torch.float64))
    _assert_grads("a total_norm of 100 given for small gradients (and a generator of parameters)", params, expected)
    # Never amplify: a norm below max_norm leaves the gradients alone.
    params = _challenge_parameters(8, shapes, 1.0)
    expected = _grads(params)
    candidate(params, 5.0, torch.tensor(0.5, dtype=torch.float64))
    _assert_grads("total_norm 0.5 below max_norm 5 (the coefficient is clamped to 1)", params, expected)
    # One tensor on its own, in float32.
    w = torch.zeros(4, requires_grad=True)
    w.grad = torch.full((4,), 2.0)
    candidate(w, 1.0, torch.tensor(4.0))
    _assert_grads("a single float32 tensor", [w], [torch.full((4,), 2.0 / (4.0 + 1e-6))])


@torch.no_grad()
def adaptive_clip_grad_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    clip_factor: float = 0.01,
    eps: float = 1e-3,
) -> None:
    r"""Challenge solution: adaptive gradient clipping (AGC, from the NFNets paper), unit by unit, in place.

    For each unit (a row along dimension 0 of a parameter with 2 or more dimensions; the whole tensor for
    a bias or a scalar) with weight norm $\lVert W \rVert$ and gradient norm $\lVert G \rVert$, let
    $\lambda = \text{clip\_factor} \cdot \max(\lVert W \rVert, \text{eps})$. Where $\lVert G \rVert >
    \lambda$, the unit's gradient is scaled to norm $\lambda$, i.e. multiplied by $\lambda /
    \max(\lVert G \rVert, 10^{-6})$; elsewhere it is left alone.

    Args:
        parameters: a tensor, or an iterable of tensors (read once); ``None`` gradients are skipped.
        clip_factor: the largest ratio of gradient norm to weight norm a unit may keep, positive.
        eps: the smallest weight norm assumed, so units initialised at zero can still learn, positive.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``clip_factor`` or ``eps`` is not positive.

    Examples:
        >>> w = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
        >>> w.grad = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> adaptive_clip_grad_(w, clip_factor=0.1, eps=0.1)
        >>> w.grad
        tensor([[0.5000, 0.0000],
                [0.0100, 0.0000]])
    """
    parameters = _tensor_list("parameters", parameters)
    clip_factor = _check_bound("clip_factor", clip_factor, positive=True)
    eps = _check_bound("eps", eps, positive=True)
    for p in parameters:
        if p.grad is None:
            continue
        # A weight of shape (out, in, ...) has one norm per output unit: (out, 1, ...). A bias, one norm.
        dims = tuple(range(1, p.dim())) if p.dim() > 1 else None
        weight_norm = torch.linalg.vector_norm(p.detach(), dim=dims, keepdim=True)
        grad_norm = torch.linalg.vector_norm(p.grad, dim=dims, keepdim=True)
        max_norm = clip_factor * weight_norm.clamp(min=eps)
        scaled = p.grad * (max_norm / grad_norm.clamp(min=1e-6))
        p.grad.copy_(torch.where(grad_norm > max_norm, scaled, p.grad))


def _reference_agc(weight: torch.Tensor, grad: torch.Tensor, clip_factor: float, eps: float) -> torch.Tensor:
    # Unit by unit in float64 with Python floats: a different road to the same place.
    out = grad.double().clone()
    rows = [out] if weight.dim() <= 1 else list(out)
    weights = [weight.double()] if weight.dim() <= 1 else list(weight.double())
    for w_unit, g_unit in zip(weights, rows, strict=True):
        w_norm = math.sqrt(float((w_unit**2).sum()))
        g_norm = math.sqrt(float((g_unit**2).sum()))
        limit = clip_factor * max(w_norm, eps)
        if g_norm > limit:
            g_unit.mul_(limit / max(g_norm, 1e-6))
    return out.to(grad.dtype)


def check_adaptive_clip_grad_(candidate: Callable[..., object]) -> None:
    """Check an attempt at `adaptive_clip_grad_` against a unit-by-unit reference.

    Raises:
        AssertionError: if a gradient differs from the reference; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    shapes = [(6, 4), (6,), (3, 2, 5), (), (4, 8)]
    for clip_factor, eps, grad_scale in ((0.01, 1e-3, 1.0), (0.1, 1e-3, 0.001), (0.5, 0.1, 3.0)):
        params = []
        for i, shape in enumerate(shapes):
            p = torch.randn(shape, generator=generator, dtype=torch.float64)
            if i == 4:
                p[1] = 0.0  # a unit whose weights are all zero: eps is its floor
            p.requires_grad_(True)
            if i != 1 or clip_factor != 0.1:
                p.grad = grad_scale * torch.randn(shape, generator=generator, dtype=torch.float64)
            params.append(p)
        expected = [None if p.grad is None else _reference_agc(p.detach(), p.grad, clip_factor, eps) for p in params]
        weights = [p.detach().clone() for p in params]
        candidate(params, clip_factor=clip_factor, eps=eps)
        _assert_grads(f"clip_factor={clip_factor}, eps={eps}, gradients of scale {grad_scale}", params, expected)
        for i, (p, w) in enumerate(zip(params, weights, strict=True)):
            assert torch.equal(p.detach(), w), f"parameter {i}'s weights changed: clip the gradient only"
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    w.grad = torch.tensor([[0.0, 1.0], [0.0, 0.01]])
    candidate(w)
    _assert_grads("a single float32 tensor with default arguments", [w], [torch.tensor([[0.0, 0.01], [0.0, 0.01]])])


# Argument checks


def _tensor_list(name: str, tensors: object, *, warn_if_empty_generator: bool = False) -> list[torch.Tensor]:
    # One tensor, or an iterable of them, read exactly once: a generator such as model.parameters()
    # cannot be rewound, so it becomes a list before anything else looks at it.
    if isinstance(tensors, torch.Tensor):
        return [tensors]
    is_generator = isinstance(tensors, types.GeneratorType)
    try:
        result = list(tensors)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{name} must be a tensor or an iterable of tensors, got {type(tensors).__name__}") from None
    for item in result:
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"{name} must hold only tensors, got an item of type {type(item).__name__}")
    if warn_if_empty_generator and is_generator and not result:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    return result


def _check_norm_type(norm_type: object) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, (Real, str)):
        raise TypeError(f"norm_type must be a number or 'inf', got {norm_type!r}")
    try:
        value = float(norm_type)
    except ValueError:
        raise ValueError(f"norm_type must be a number or 'inf', got {norm_type!r}") from None
    if math.isnan(value):
        raise ValueError(f"norm_type must be a number or 'inf', got {norm_type!r}")
    return value


def _check_bound(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value) or value < 0 or (positive and value == 0):
        expected = "positive" if positive else "at least 0"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def _check_flags(error_if_nonfinite: object, foreach: object) -> None:
    if not isinstance(error_if_nonfinite, bool):
        raise TypeError(f"error_if_nonfinite must be a bool, got {error_if_nonfinite!r}")
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"foreach must be None or a bool, got {foreach!r}")


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_run(lr: object, max_norm: object, **sizes: object) -> None:
    if isinstance(lr, bool) or not isinstance(lr, Real):
        raise TypeError(f"lr must be a real number, got {lr!r}")
    if not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if max_norm is not None:
        _check_bound("max_norm", max_norm)
    for name, value in sizes.items():
        minimum = 0 if name == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
