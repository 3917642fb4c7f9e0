r"""
# Gradient Accumulation: A Giant Batch, Stitched Together

!!! torchenstein "The Professor speaks"
    My monster demands a batch of thousands of images, and my poor GPU holds a few hundred. Build a
    bigger GPU? Eventually! Tonight we stitch the giant batch together from small pieces, and prove, to
    float64 round-off, that the stitched gradient *is* the giant's gradient: when, and only when, every
    piece is weighted correctly.

**You will learn to**

- see gradients pile up in `.grad` across `backward` calls, and use that on purpose;
- split a batch into micro-batches, weight each micro-batch loss correctly, backward each, step once;
- prove that accumulation equals the full batch, for `reduction="mean"` and `reduction="sum"`, with a
  ragged last micro-batch too;
- recognise the traps: forgotten scaling, $1/k$ scaling, zeroing in the wrong place, BatchNorm,
  dropout, and a `.grad` that is `None` rather than zero.

## Why accumulate

A bigger batch gives a less noisy gradient, and many recipes are tuned for a batch size you cannot fit:
the activations that `backward` needs grow with the batch, and memory runs out long before patience does.
Gradient accumulation trades time for memory. Run the batch through in $k$ *micro-batches* $B_1, \dots,
B_k$ of sizes $n_1, \dots, n_k$, one after the other, and add their gradients up before a single
optimizer step. Only one micro-batch's activations are alive at a time.

Why may we add? Because a batch loss is a sum over samples. With `reduction="mean"` over $N$ samples,

$$
L = \frac{1}{N} \sum_{i=1}^{N} \ell_i
  = \sum_{j=1}^{k} \frac{n_j}{N} \underbrace{\frac{1}{n_j} \sum_{i \in B_j} \ell_i}_{L_j,\ \text{micro-batch mean}}
\qquad\Longrightarrow\qquad
\nabla L = \sum_{j=1}^{k} \frac{n_j}{N} \, \nabla L_j .
$$

The gradient is linear, so the full-batch gradient is the weighted sum of micro-batch gradients, with
the weight of each micro-batch being *its share of the samples*, $n_j / N$. Hold on to that fraction: it is
the whole lesson, and Dr. Hammer will get it wrong twice.

## Gradients pile up in `.grad`

`backward` does not *write* a parameter's `.grad`; it *adds* to it, as
[Autograd](../autograd/index.md#gradients-accumulate) showed. For an ordinary training step this piling
up is a nuisance (hence `zero_grad`, which clears it). For accumulation it is the whole mechanism:
PyTorch already sums the micro-batch gradients for us, if we only scale each loss.

## The apparatus: a model, a loss and an optimizer

This lesson borrows three of PyTorch's ready-made tools, which Parts 2 and 3 rebuild from scratch. A
**model** such as `torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))`
runs its layers in turn; each `Linear` computes $x W^\top + b$ with a weight $W$ and bias $b$ that are
leaves requiring grad, its *parameters*, listed by `named_parameters()`. A **loss function** such as
`torch.nn.MSELoss()` turns predictions and targets into one number (here the mean squared error). An
**optimizer** such as `torch.optim.SGD(model.parameters(), lr=0.1)` changes the parameters with
`step()`, by `-lr * .grad` in the plain case, and clears their gradients with `zero_grad()`.

## The recipe

1. Split the batch of $N$ samples into micro-batches of at most `micro_batch_size` samples; the last may
   be smaller.
2. For each micro-batch: forward, compute its loss, **scale** the loss by its weight, `backward`.
   Backward right away: that frees the micro-batch's graph and activations before the next forward.
   (Summing all the losses and calling `backward` once at the end gives the same gradient but keeps
   every graph alive, which is exactly the memory you set out to save.)
3. `optimizer.step()` **once**, after the last micro-batch.
4. Zero the gradients **once** per step, not per micro-batch.

[`micro_batch_slices`][torchenstein.tensors.accumulation.micro_batch_slices] does the splitting and
[`micro_batch_weights`][torchenstein.tensors.accumulation.micro_batch_weights] the weighting:

```pycon
>>> from torchenstein.tensors.accumulation import micro_batch_slices, micro_batch_weights
>>> micro_batch_slices(10, 4)
[slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
>>> micro_batch_weights(10, 4)  # n_j / N, not 1/3 each
[0.4, 0.4, 0.2]
>>> micro_batch_weights(10, 4, reduction="sum")
[1.0, 1.0, 1.0]

```

## Stitched equals whole

[`accumulated_gradients`][torchenstein.tensors.accumulation.accumulated_gradients] follows the recipe
and returns each parameter's gradient by name;
[`full_batch_gradients`][torchenstein.tensors.accumulation.full_batch_gradients] does one big backward.
In float64 they agree to round-off, ragged last micro-batch and all:

```pycon
>>> from torchenstein.tensors.accumulation import accumulated_gradients, full_batch_gradients
>>> _ = torch.manual_seed(0)
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).double()
>>> x, y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
>>> mse = torch.nn.MSELoss()
>>> full = full_batch_gradients(net, mse, x, y)
>>> stitched = accumulated_gradients(net, mse, x, y, micro_batch_size=4)  # micro-batches of 4, 4, 2
>>> list(stitched), [tuple(g.shape) for g in stitched.values()]
(['0.weight', '0.bias', '2.weight', '2.bias'], [(5, 3), (5,), (1, 5), (1,)])
>>> torch.testing.assert_close(stitched, full)

```

The tests prove the same for several models, losses, batch sizes and micro-batch sizes. Bad arguments
are refused with a message that says what went wrong:

```pycon
>>> accumulated_gradients(net, mse, x, y, micro_batch_size=0)
Traceback (most recent call last):
...
ValueError: micro_batch_size must be a positive int, got 0
>>> accumulated_gradients(net, torch.nn.MSELoss(reduction="none"), x, y, micro_batch_size=4)
Traceback (most recent call last):
...
ValueError: reduction must be 'mean' or 'sum' (reduce a 'none' loss yourself first), got 'none'

```

## Sum or mean: what each reduction needs

With `reduction="sum"` the batch loss is the plain sum of the micro-batch sums, so the weights are all
1: no scaling at all. With `reduction="mean"` each micro-batch mean needs its share $n_j/N$. A third way,
handy when you do not know $N$ until the last micro-batch arrives: backward the *sums*, then divide the
accumulated `.grad` by $N$ once, before the step.

```pycon
>>> total = torch.nn.MSELoss(reduction="sum")
>>> torch.testing.assert_close(accumulated_gradients(net, total, x, y, 3), full_batch_gradients(net, total, x, y))
>>> summed = accumulated_gradients(net, total, x, y, micro_batch_size=3)
>>> torch.testing.assert_close({name: g / len(x) for name, g in summed.items()}, full)

```

Mind what "mean" divides by. `MSELoss` averages over every element, but every sample has the same number
of elements, so shares of samples are still right; `CrossEntropyLoss` averages over the samples, but with `ignore_index` or class `weight`s it divides by the number (or total weight) of the targets that
count. Then the weight of a micro-batch is its share of *those*, which is the first challenge below.

## One step with the stitched gradient

An optimizer only ever sees `.grad`. Same gradient, same step:
[`accumulation_step`][torchenstein.tensors.accumulation.accumulation_step] zeroes, accumulates, steps
once and returns the batch loss, and leaves the model exactly where one full-batch SGD step does:

```pycon
>>> import copy
>>> from torchenstein.tensors.accumulation import accumulation_step
>>> twin = copy.deepcopy(net)
>>> big, small = torch.optim.SGD(net.parameters(), lr=0.1), torch.optim.SGD(twin.parameters(), lr=0.1)
>>> big.zero_grad()
>>> full_loss = mse(net(x), y)
>>> full_loss.backward()
>>> big.step()
>>> stitched_loss = accumulation_step(twin, small, mse, x, y, micro_batch_size=4)
>>> torch.testing.assert_close(stitched_loss, full_loss.detach())
>>> all(torch.allclose(a, b) for a, b in zip(net.parameters(), twin.parameters()))
True

```

The tests repeat this for several steps of SGD with momentum and of Adam: the optimizer's state is built
from the gradients, so it stays equal too.

## Dr. Hammer's traps

The traps below reuse `net`, `x` and `y` (ten samples, mostly in micro-batches of 4, 4 and 2) and measure
the damage with [`relative_gradient_error`][torchenstein.tensors.accumulation.relative_gradient_error].
The figure shows the first two traps for every micro-batch size; the right panel is BatchNorm's trap.

![Relative gradient error against micro-batch size: correct weights stay at round-off, forgetting to scale grows with the number of micro-batches, 1/k weights fail whenever the last micro-batch is ragged; BatchNorm in train mode differs, in eval mode and LayerNorm it does not](plot_accumulation.svg)

!!! hammer "Dr. Hammer's trap: the forgotten scale"
    Dr. Hammer calls `backward` on each micro-batch mean as it is. Each micro-batch mean is already on the
    scale of a full-batch mean, so with $k$ equal micro-batches the gradient comes out $k$ times too large: a
    learning rate silently multiplied by $k$.

    ```pycon
    >>> from torchenstein.tensors.accumulation import relative_gradient_error
    >>> def grads_of(model):
    ...     return {name: p.grad.clone() for name, p in model.named_parameters()}
    >>> full = full_batch_gradients(net, mse, x, y)
    >>> net.zero_grad()
    >>> for part in micro_batch_slices(10, 5):  # k = 2 equal micro-batches
    ...     mse(net(x[part]), y[part]).backward()
    >>> unscaled = grads_of(net)
    >>> norm = torch.linalg.vector_norm  # the L2 norm, the length of a gradient as one long vector
    >>> [round((norm(unscaled[name]) / norm(full[name])).item(), 6) for name in full]
    [2.0, 2.0, 2.0, 2.0]
    >>> relative_gradient_error(accumulated_gradients(net, mse, x, y, micro_batch_size=5), full) < 1e-12
    True

    ```

!!! hammer "Dr. Hammer's trap: the $1/k$ average with a ragged tail"
    Scaling by $1/k$ is right only when all micro-batches have the
    same size. With sizes 4, 4 and 2, each of the last two samples gets twice the say of any other sample:

    ```pycon
    >>> net.zero_grad()
    >>> parts = micro_batch_slices(10, 4)
    >>> for part in parts:
    ...     (mse(net(x[part]), y[part]) / len(parts)).backward()
    >>> relative_gradient_error(grads_of(net), full) > 0.01
    True
    >>> relative_gradient_error(accumulated_gradients(net, mse, x, y, micro_batch_size=4), full) < 1e-12
    True

    ```

!!! hammer "Dr. Hammer's trap: zeroing in the wrong place"
    Zero inside the loop and only the last micro-batch survives; never zero and the previous step's gradient
    joins the next. Zero once, at the start of each step (which
    [`accumulated_gradients`][torchenstein.tensors.accumulation.accumulated_gradients] and
    [`accumulation_step`][torchenstein.tensors.accumulation.accumulation_step] do for you):

    ```pycon
    >>> for part, weight in zip(parts, micro_batch_weights(10, 4)):
    ...     net.zero_grad()  # wrong place
    ...     (mse(net(x[part]), y[part]) * weight).backward()
    >>> relative_gradient_error(grads_of(net), full) > 0.01
    True
    >>> for part, weight in zip(parts, micro_batch_weights(10, 4)):  # and now no zeroing at all
    ...     (mse(net(x[part]), y[part]) * weight).backward()
    >>> relative_gradient_error(grads_of(net), full) > 0.01
    True

    ```

!!! hammer "Dr. Hammer's trap: BatchNorm's private statistics"
    In train mode BatchNorm normalises each sample with the mean and variance *of its own batch*. A
    micro-batch has different statistics from the full batch, so every sample's output, and its gradient,
    changes: accumulation is *not* the full batch. (It also updates its running statistics once per
    micro-batch, and a micro-batch of one sample makes it raise an error.) Eval mode, which `model.eval()`
    switches on, uses the fixed running statistics, and LayerNorm normalises each sample on its own; both
    restore equality:

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> def normed(norm):
    ...     return torch.nn.Sequential(torch.nn.Linear(3, 4), norm, torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    >>> bn_net = normed(torch.nn.BatchNorm1d(4))
    >>> bn_twin = copy.deepcopy(bn_net)
    >>> acc, whole = accumulated_gradients(bn_net, mse, x, y, 4), full_batch_gradients(bn_twin, mse, x, y)
    >>> relative_gradient_error(acc, whole) > 0.01
    True
    >>> bn_net[1].num_batches_tracked.item(), bn_twin[1].num_batches_tracked.item()
    (3, 1)
    >>> _ = bn_net.eval()
    >>> relative_gradient_error(accumulated_gradients(bn_net, mse, x, y, 4), full_batch_gradients(bn_net, mse, x, y)) < 1e-12
    True
    >>> ln_net = normed(torch.nn.LayerNorm(4))
    >>> relative_gradient_error(accumulated_gradients(ln_net, mse, x, y, 4), full_batch_gradients(ln_net, mse, x, y)) < 1e-12
    True

    ```

!!! hammer "Dr. Hammer's trap: dropout's different dice"
    Dropout, a layer that zeroes random activations during training, draws a fresh random mask at every
    forward, so the micro-batches and the full batch drop different
    units: two honest samples of the same random gradient, never equal ones. (Reseeding before each does not
    rescue it in general: whether ten rows drawn at once match four, four and two rows drawn in turn depends
    on how the kernel consumes random numbers.) For training this is harmless; for an *equality check* switch
    dropout off with `eval()`:

    ```pycon
    >>> dropper = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)).double()
    >>> relative_gradient_error(accumulated_gradients(dropper, mse, x, y, 4), full_batch_gradients(dropper, mse, x, y)) > 0.01
    True
    >>> _ = dropper.eval()
    >>> relative_gradient_error(accumulated_gradients(dropper, mse, x, y, 4), full_batch_gradients(dropper, mse, x, y)) < 1e-12
    True

    ```

!!! hammer "Dr. Hammer's trap: `None` is not zero"
    `zero_grad()` sets `.grad` to `None` by default (`set_to_none=True`): it frees the memory and the next
    backward simply writes instead of adding. Code that reads `.grad` between steps (logging a norm, clipping
    by hand) must expect `None`:

    ```pycon
    >>> layer = torch.nn.Linear(2, 1)
    >>> layer(torch.ones(1, 2)).sum().backward()
    >>> layer.zero_grad()
    >>> layer.weight.grad is None
    True
    >>> torch.linalg.vector_norm(layer.weight.grad)
    Traceback (most recent call last):
    ...
    TypeError: linalg_vector_norm(): argument 'input' (position 1) must be Tensor, not NoneType

    ```

    And optimizers *skip* a parameter whose `.grad` is `None`, while a `.grad` of zeros is a gradient like
    any other: weight decay (and momentum) still move the parameter. A parameter that took no part in this
    step's loss stays put only with `None`:

    ```pycon
    >>> sgd = torch.optim.SGD(layer.parameters(), lr=0.1, weight_decay=0.5)
    >>> before = layer.weight.detach().clone()
    >>> sgd.step()  # every .grad is None: nothing moves
    >>> torch.equal(layer.weight, before)
    True
    >>> layer(torch.ones(1, 2)).sum().backward()
    >>> sgd.zero_grad(set_to_none=False)  # the old way: zeros, not None
    >>> layer.weight.grad
    tensor([[0., 0.]])
    >>> sgd.step()  # a zero gradient, but weight decay still pulls the weight toward 0
    >>> torch.equal(layer.weight, before)
    False

    ```

## Challenges

1. **Token-weighted micro-batches.** A language model's loss is `CrossEntropyLoss(ignore_index=-100)`:
   the mean over the tokens that count, padding excluded. Write
   `accumulated_token_loss_weights(token_counts) -> torch.Tensor`, which takes the number of counted
   tokens in each micro-batch and returns the float64 weight of each micro-batch's mean loss, so that
   the weighted sum equals the full batch's token mean. A micro-batch with no counted tokens gets weight
   0 (its own mean is `nan`: skip it, do not multiply it). Raise `ValueError` for an empty list, a
   negative count, or no counted token at all.
2. **Clip once, after stitching.** Write `clipped_accumulation_step(model, optimizer, loss_fn, inputs,
   targets, micro_batch_size, max_norm) -> torch.Tensor` for a mean-reduced `loss_fn`: zero, accumulate,
   clip the *accumulated* gradient to total norm `max_norm` (`torch.nn.utils.clip_grad_norm_`), step, and
   return the total norm before clipping. It must leave the model where a full-batch step with clipping
   would. (Clip inside the loop and each micro-batch is clipped on its own: wrong.)

Check an attempt with `check_accumulated_token_loss_weights(my_function)` and
`check_clipped_accumulation_step(my_function)`, or put them in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's own answers pass:

```pycon
>>> from torchenstein.tensors.accumulation import accumulated_token_loss_weights, clipped_accumulation_step
>>> from torchenstein.tensors.accumulation import check_accumulated_token_loss_weights, check_clipped_accumulation_step
>>> accumulated_token_loss_weights([3, 0, 5]).tolist()
[0.375, 0.0, 0.625]
>>> check_accumulated_token_loss_weights(accumulated_token_loss_weights)
>>> check_clipped_accumulation_step(clipped_accumulation_step)

```
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A loss: called as ``loss_fn(model(inputs), targets)``, it returns a scalar."""

REDUCTIONS = ("mean", "sum")
"""The loss reductions that accumulation knows how to weight."""


def _positive_int(name: str, value: object) -> int:
    # bool is an int subclass, and micro_batch_size=True is a bug, not a size of one.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def micro_batch_slices(batch_size: int, micro_batch_size: int) -> list[slice]:
    """Cut the sample indices ``0 .. batch_size - 1`` into consecutive micro-batches.

    Args:
        batch_size: ``N``, the number of samples in the whole batch.
        micro_batch_size: the most samples one micro-batch may hold; the last one may hold fewer.

    Returns:
        ``ceil(N / micro_batch_size)`` slices that cover every sample exactly once, in order.

    Raises:
        ValueError: if either argument is not a positive int.

    Examples:
        >>> micro_batch_slices(5, 2)
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
        >>> micro_batch_slices(3, 8)
        [slice(0, 3, None)]
    """
    batch_size = _positive_int("batch_size", batch_size)
    micro_batch_size = _positive_int("micro_batch_size", micro_batch_size)
    return [slice(start, min(start + micro_batch_size, batch_size)) for start in range(0, batch_size, micro_batch_size)]


def micro_batch_weights(batch_size: int, micro_batch_size: int, reduction: str = "mean") -> list[float]:
    """The factor each micro-batch loss is multiplied by before its ``backward``.

    Args:
        batch_size: ``N``, the number of samples in the whole batch.
        micro_batch_size: the most samples one micro-batch may hold.
        reduction: how the loss reduces over samples, ``"mean"`` or ``"sum"``.

    Returns:
        One weight per micro-batch: ``n_j / N`` for a mean, ``1.0`` for a sum.

    Raises:
        ValueError: if a size is not a positive int or ``reduction`` is neither ``"mean"`` nor ``"sum"``.

    Examples:
        >>> micro_batch_weights(8, 4)
        [0.5, 0.5]
        >>> micro_batch_weights(8, 4, reduction="none")
        Traceback (most recent call last):
        ...
        ValueError: reduction must be 'mean' or 'sum' (reduce a 'none' loss yourself first), got 'none'
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum' (reduce a 'none' loss yourself first), got {reduction!r}")
    slices = micro_batch_slices(batch_size, micro_batch_size)
    if reduction == "sum":
        return [1.0] * len(slices)
    # A micro-batch mean stands for its n_j samples out of N: that is its share of the full mean.
    return [(part.stop - part.start) / batch_size for part in slices]


def _resolve_reduction(loss_fn: LossFn, reduction: str | None) -> str:
    # A torch.nn loss module declares its reduction; a plain function such as F.mse_loss does not, and
    # then we trust the caller, assuming the functional default "mean" when they say nothing.
    declared = getattr(loss_fn, "reduction", None)
    if reduction is None:
        reduction = declared if declared is not None else "mean"
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum' (reduce a 'none' loss yourself first), got {reduction!r}")
    if declared is not None and declared != reduction:
        raise ValueError(f"reduction={reduction!r} contradicts loss_fn.reduction={declared!r}")
    return reduction


def _check_batch(model: object, inputs: object, targets: object) -> int:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, value in (("inputs", inputs), ("targets", targets)):
        if not isinstance(value, torch.Tensor) or value.ndim == 0:
            raise TypeError(f"{name} must be a tensor with a batch dimension first, got {value!r:.60}")
    if inputs.shape[0] != targets.shape[0]:  # type: ignore[union-attr]
        raise ValueError(
            f"inputs and targets must hold the same number of samples, got {inputs.shape[0]} and {targets.shape[0]}"  # type: ignore[union-attr]
        )
    if inputs.shape[0] == 0:  # type: ignore[union-attr]
        raise ValueError("inputs must hold at least one sample, got an empty batch")
    return inputs.shape[0]  # type: ignore[union-attr]


def _gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # A copy, so the next backward or zero_grad cannot change what we return. Parameters that took no
    # part in the loss keep .grad None and are left out.
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def _accumulate(model, loss_fn, inputs, targets, slices, weights) -> torch.Tensor:
    # The heart of it: one forward, one scaled backward per micro-batch. The backward adds this
    # micro-batch's share into every .grad and frees its graph before the next forward begins.
    total = None
    for part, weight in zip(slices, weights, strict=True):
        loss = loss_fn(model(inputs[part]), targets[part])  # a scalar: this micro-batch's mean (or sum)
        (loss * weight).backward()
        # The weighted micro-batch losses add up to the full-batch loss, so log this, not the last one.
        contribution = loss.detach() * weight
        total = contribution if total is None else total + contribution
    return total


def full_batch_gradients(
    model: torch.nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The reference: one forward and one backward over the whole batch.

    Args:
        model: the network; its old gradients are cleared first.
        loss_fn: a loss that reduces to a scalar, such as ``torch.nn.MSELoss()``.
        inputs: the batch, samples along dimension 0.
        targets: what ``loss_fn`` compares the model's output with, samples along dimension 0.

    Returns:
        A copy of each parameter's gradient, by parameter name.

    Raises:
        TypeError: if ``model`` is not a module or ``inputs``/``targets`` are not batched tensors.
        ValueError: if ``inputs`` and ``targets`` hold different numbers of samples, or none.

    Examples:
        >>> layer = torch.nn.Linear(2, 1)
        >>> grads = full_batch_gradients(layer, torch.nn.MSELoss(), torch.randn(4, 2), torch.randn(4, 1))
        >>> {name: tuple(g.shape) for name, g in grads.items()}
        {'weight': (1, 2), 'bias': (1,)}
    """
    _check_batch(model, inputs, targets)
    model.zero_grad(set_to_none=True)
    loss_fn(model(inputs), targets).backward()
    return _gradients(model)


def accumulated_gradients(
    model: torch.nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    micro_batch_size: int,
    *,
    reduction: str | None = None,
) -> dict[str, torch.Tensor]:
    """The full-batch gradient, computed one micro-batch at a time.

    The model's old gradients are cleared first, and the accumulated ones are left in ``.grad`` (ready
    for an optimizer step) as well as returned.

    Args:
        model: the network.
        loss_fn: a loss that reduces to a scalar with a mean or a sum over samples.
        inputs: the batch, samples along dimension 0.
        targets: the targets, samples along dimension 0.
        micro_batch_size: the most samples one forward pass may see.
        reduction: ``"mean"`` or ``"sum"``; by default ``loss_fn.reduction`` if the loss has one,
            otherwise ``"mean"`` (the default of ``torch.nn.functional`` losses).

    Returns:
        A copy of each parameter's gradient, by parameter name: equal to
        [`full_batch_gradients`][torchenstein.tensors.accumulation.full_batch_gradients] up to round-off
        for any model whose samples do not interact (no BatchNorm in train mode) and draw no random
        numbers (no dropout in train mode).

    Raises:
        TypeError: if ``model`` is not a module or ``inputs``/``targets`` are not batched tensors.
        ValueError: if the batch is empty or mismatched, ``micro_batch_size`` is not a positive int,
            or ``reduction`` is not ``"mean"`` or ``"sum"`` or contradicts ``loss_fn.reduction``.

    Examples:
        >>> layer = torch.nn.Linear(2, 1).double()
        >>> x, y = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
        >>> mse = torch.nn.MSELoss()
        >>> torch.testing.assert_close(accumulated_gradients(layer, mse, x, y, 2), full_batch_gradients(layer, mse, x, y))
        >>> accumulated_gradients(layer, mse, x, y, 2, reduction="sum")
        Traceback (most recent call last):
        ...
        ValueError: reduction='sum' contradicts loss_fn.reduction='mean'
    """
    batch_size = _check_batch(model, inputs, targets)
    reduction = _resolve_reduction(loss_fn, reduction)
    slices = micro_batch_slices(batch_size, micro_batch_size)
    weights = micro_batch_weights(batch_size, micro_batch_size, reduction)
    # Zero once, before the first micro-batch; never between them.
    model.zero_grad(set_to_none=True)
    _accumulate(model, loss_fn, inputs, targets, slices, weights)
    return _gradients(model)


def accumulation_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    micro_batch_size: int,
    *,
    reduction: str | None = None,
) -> torch.Tensor:
    """One optimizer step on a batch too big for one forward pass: zero once, accumulate, step once.

    Args:
        model: the network.
        optimizer: an optimizer over (some of) the model's parameters.
        loss_fn: a loss that reduces to a scalar with a mean or a sum over samples.
        inputs: the batch, samples along dimension 0.
        targets: the targets, samples along dimension 0.
        micro_batch_size: the most samples one forward pass may see.
        reduction: as in [`accumulated_gradients`][torchenstein.tensors.accumulation.accumulated_gradients].

    Returns:
        The batch loss before the step (detached): the weighted sum of the micro-batch losses, equal to
        the full-batch loss.

    Raises:
        TypeError: if ``optimizer`` is not a ``torch.optim.Optimizer``, or as
            [`accumulated_gradients`][torchenstein.tensors.accumulation.accumulated_gradients] does.
        ValueError: as [`accumulated_gradients`][torchenstein.tensors.accumulation.accumulated_gradients] does.

    Examples:
        >>> layer = torch.nn.Linear(2, 1)
        >>> sgd = torch.optim.SGD(layer.parameters(), lr=0.1)
        >>> loss = accumulation_step(layer, sgd, torch.nn.MSELoss(), torch.randn(6, 2), torch.randn(6, 1), 4)
        >>> {"shape": loss.shape, "requires_grad": loss.requires_grad}
        {'shape': torch.Size([]), 'requires_grad': False}
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    batch_size = _check_batch(model, inputs, targets)
    reduction = _resolve_reduction(loss_fn, reduction)
    slices = micro_batch_slices(batch_size, micro_batch_size)
    weights = micro_batch_weights(batch_size, micro_batch_size, reduction)
    optimizer.zero_grad()
    loss = _accumulate(model, loss_fn, inputs, targets, slices, weights)
    # The optimizer sees one gradient, the stitched one, exactly as after one full-batch backward.
    optimizer.step()
    return loss


def relative_gradient_error(grads: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    r"""How far a set of gradients is from a reference, as one number.

    The norm of the difference over the norm of the reference, both taken over all parameters at once:
    $\lVert g - g_{\text{ref}} \rVert / \lVert g_{\text{ref}} \rVert$.

    Args:
        grads: gradients by parameter name.
        reference: the gradients to compare with, with the same names.

    Returns:
        The relative error: 0.0 for equal gradients, 1.0 for gradients of zero, and so on.

    Raises:
        ValueError: if the names differ or every reference gradient is zero.

    Examples:
        >>> ref = {"w": torch.tensor([3.0, 4.0])}
        >>> relative_gradient_error({"w": torch.tensor([3.0, 4.0])}, ref), relative_gradient_error({"w": 2 * ref["w"]}, ref)
        (0.0, 1.0)
    """
    if grads.keys() != reference.keys():
        raise ValueError(f"grads and reference must name the same parameters, got {sorted(grads)} and {sorted(reference)}")
    difference = math.sqrt(sum((grads[name] - ref).double().pow(2).sum().item() for name, ref in reference.items()))
    size = math.sqrt(sum(ref.double().pow(2).sum().item() for ref in reference.values()))
    if size == 0:
        raise ValueError("every reference gradient is zero, so a relative error means nothing")
    return difference / size


def _small_net(norm: torch.nn.Module | None = None) -> torch.nn.Sequential:
    # (B, 3) -> (B, 8) -> [norm] -> tanh -> (B, 1), in float64 so round-off stays far below every trap.
    layers = [torch.nn.Linear(3, 8)] + ([norm] if norm is not None else []) + [torch.nn.Tanh(), torch.nn.Linear(8, 1)]
    return torch.nn.Sequential(*layers).double()


def _scaling_errors(net, loss_fn, x, y, micro_batch_size, reference) -> dict[str, float]:
    # The three ways to weight the micro-batches: correct (n_j / N), forgotten (1) and naive (1 / k).
    batch_size = len(x)
    slices = micro_batch_slices(batch_size, micro_batch_size)
    k = len(slices)
    errors = {}
    for label, weights in (
        ("weights n_j / N (correct)", micro_batch_weights(batch_size, micro_batch_size)),
        ("no scaling", [1.0] * k),
        ("weights 1 / k", [1.0 / k] * k),
    ):
        net.zero_grad(set_to_none=True)
        _accumulate(net, loss_fn, x, y, slices, weights)
        errors[label] = relative_gradient_error(_gradients(net), reference)
    return errors


def plot_accumulation(*, batch_size: int = 24, seed: int = 0) -> Figure:
    """Plot how far accumulated gradients are from the full batch's, against the micro-batch size.

    Left: correct weights, no scaling and ``1/k`` weights on a small MLP. Right: the same network with
    BatchNorm in train and eval mode, and with LayerNorm, all with correct weights. Errors of exactly
    zero are drawn at 1e-17 so the log scale can show them.

    Args:
        batch_size: the number of samples ``N`` in the full batch, at least 3.
        seed: seeds the data and the networks' initial weights (the global generator is left untouched).

    Returns:
        A matplotlib figure with two axes.

    Raises:
        ValueError: if ``batch_size`` is below 3 or ``seed`` is not a non-negative int.

    Examples:
        >>> fig = plot_accumulation(batch_size=6)
        >>> len(fig.axes)
        2
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 3:
        raise ValueError(f"batch_size must be an int of at least 3, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    floor = 1e-17
    mse = torch.nn.MSELoss()
    # fork_rng restores the global generator afterwards, so drawing the figure changes no one's seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x, y = torch.randn(batch_size, 3, dtype=torch.float64), torch.randn(batch_size, 1, dtype=torch.float64)
        mlp, bn_net, ln_net = _small_net(), _small_net(torch.nn.BatchNorm1d(8)), _small_net(torch.nn.LayerNorm(8))
    fig, (ax_scale, ax_norm) = new_figure(1, 2, width=10.0, height=3.8)

    sizes = list(range(1, batch_size + 1))
    reference = full_batch_gradients(mlp, mse, x, y)
    curves: dict[str, list[float]] = {}
    for m in sizes:
        for label, error in _scaling_errors(mlp, mse, x, y, m, reference).items():
            curves.setdefault(label, []).append(max(error, floor))
    for (label, errors), colour, marker in zip(curves.items(), PALETTE, "os^", strict=False):
        ax_scale.semilogy(sizes, errors, color=colour, marker=marker, markersize=4, label=label)
    ax_scale.set(xlabel=f"micro-batch size (full batch N = {batch_size})", ylabel="relative gradient error",
                 title="Scaling the micro-batch mean losses", ylim=(floor / 10, None))
    ax_scale.legend(fontsize=8)

    # Train-mode BatchNorm refuses a micro-batch of one sample, so sizes that leave one over are skipped.
    usable = [m for m in range(2, batch_size + 1) if batch_size % m != 1]
    norm_curves: dict[str, list[float]] = {"BatchNorm, train mode": [], "BatchNorm, eval mode": [], "LayerNorm, train mode": []}
    for m in usable:
        for label, net, train in (("BatchNorm, train mode", bn_net, True), ("BatchNorm, eval mode", bn_net, False),
                                  ("LayerNorm, train mode", ln_net, True)):
            # A copy per measurement: train-mode BatchNorm updates its running statistics as it goes.
            probe = copy.deepcopy(net).train(train)
            whole = full_batch_gradients(copy.deepcopy(probe), mse, x, y)
            error = relative_gradient_error(accumulated_gradients(probe, mse, x, y, m), whole)
            norm_curves[label].append(max(error, floor))
    for (label, errors), colour, marker in zip(norm_curves.items(), PALETTE[3:], "Dvx", strict=False):
        ax_norm.semilogy(usable, errors, color=colour, marker=marker, markersize=4, label=label)
    ax_norm.set(xlabel="micro-batch size", ylabel="relative gradient error",
                title="Correct weights, with normalisation layers", ylim=(floor / 10, None))
    ax_norm.legend(fontsize=8)
    return fig


def accumulated_token_loss_weights(token_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Challenge solution: weights for micro-batch losses that are means over counted tokens.

    Args:
        token_counts: how many tokens count (are not ``ignore_index``) in each micro-batch.

    Returns:
        A float64 tensor with one weight per micro-batch: its share of all counted tokens.

    Raises:
        ValueError: if ``token_counts`` is empty, holds a negative count, or counts no token at all.

    Examples:
        >>> accumulated_token_loss_weights([1, 3]).tolist()
        [0.25, 0.75]
    """
    counts = torch.as_tensor(token_counts, dtype=torch.float64).reshape(-1)
    if counts.numel() == 0:
        raise ValueError("token_counts must name at least one micro-batch, got none")
    if (counts < 0).any():
        raise ValueError(f"token_counts must not be negative, got {counts.tolist()}")
    total = counts.sum()
    if total == 0:
        raise ValueError(f"token_counts must count at least one token, got {counts.tolist()}")
    # The full mean divides by all counted tokens; a micro-batch mean divides by its own. The ratio
    # of the two denominators is the weight, exactly as n_j / N was for samples.
    return counts / total


def _token_batch(seed: int, rows: int, length: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Logits (rows, length, vocab) and targets (rows, length), with some rows padded more than others
    # and one row entirely padding, so micro-batches hold very different numbers of counted tokens.
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, length, vocab, dtype=torch.float64, generator=generator)
    targets = torch.randint(vocab, (rows, length), generator=generator)
    lengths = torch.randint(0, length + 1, (rows,), generator=generator)
    lengths[0] = 0
    targets[torch.arange(length) >= lengths[:, None]] = -100
    return logits, targets


def check_accumulated_token_loss_weights(candidate) -> None:
    """Check an attempt at `accumulated_token_loss_weights` on edge cases and on a real token loss.

    Raises:
        AssertionError: if the candidate's weights are wrong, or it accepts impossible counts.
    """
    for counts in ([3, 5, 2], [4], [0, 6, 2], [7, 7, 7, 7], [1, 0, 0]):
        got = torch.as_tensor(candidate(list(counts)), dtype=torch.float64)
        expected = torch.tensor(counts, dtype=torch.float64) / sum(counts)
        assert got.shape == expected.shape, f"for counts {counts} expected {len(counts)} weights, got {got.tolist()}"
        assert torch.allclose(got, expected), f"for counts {counts} expected weights {expected.tolist()}, got {got.tolist()}"
    got = torch.as_tensor(candidate(torch.tensor([2, 6])), dtype=torch.float64)
    assert torch.allclose(got, torch.tensor([0.25, 0.75], dtype=torch.float64)), f"a tensor of counts [2, 6] gave {got.tolist()}"
    for bad in ([], [0, 0], [-1, 3]):
        try:
            candidate(bad)
        except ValueError:
            continue
        raise AssertionError(f"token_counts={bad} must raise ValueError")
    # The real thing: micro-batches of sequences under a token-mean cross-entropy. Only micro-batches
    # with counted tokens contribute; their weighted means must equal the full batch's token mean.
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    for seed in range(3):
        logits, targets = _token_batch(seed, rows=7, length=5, vocab=4)
        full = ce(logits.reshape(-1, 4), targets.reshape(-1))
        parts = micro_batch_slices(7, 3)
        counts = [int((targets[part] != -100).sum()) for part in parts]
        weights = torch.as_tensor(candidate(counts), dtype=torch.float64)
        stitched = sum(weights[j] * ce(logits[part].reshape(-1, 4), targets[part].reshape(-1))
                       for j, part in enumerate(parts) if counts[j] > 0)
        assert torch.allclose(stitched, full), f"token counts {counts}: weighted micro-batch losses give {stitched}, the full batch {full}"


def clipped_accumulation_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    micro_batch_size: int,
    max_norm: float,
) -> torch.Tensor:
    """Challenge solution: an accumulation step that clips the stitched gradient once, then steps.

    Args:
        model: the network.
        optimizer: an optimizer over the model's parameters.
        loss_fn: a mean-reduced loss.
        inputs: the batch, samples along dimension 0.
        targets: the targets, samples along dimension 0.
        micro_batch_size: the most samples one forward pass may see.
        max_norm: the largest total gradient norm allowed, positive.

    Returns:
        The total norm of the accumulated gradient before clipping.

    Raises:
        ValueError: if ``max_norm`` is not positive, or as
            [`accumulation_step`][torchenstein.tensors.accumulation.accumulation_step] does.
        TypeError: as [`accumulation_step`][torchenstein.tensors.accumulation.accumulation_step] does.

    Examples:
        >>> layer = torch.nn.Linear(2, 1)
        >>> sgd = torch.optim.SGD(layer.parameters(), lr=0.1)
        >>> norm = clipped_accumulation_step(layer, sgd, torch.nn.MSELoss(), torch.randn(5, 2), torch.randn(5, 1), 2, 0.1)
        >>> bool(norm > 0)
        True
    """
    if not isinstance(max_norm, (int, float)) or isinstance(max_norm, bool) or not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    batch_size = _check_batch(model, inputs, targets)
    reduction = _resolve_reduction(loss_fn, None)
    slices = micro_batch_slices(batch_size, micro_batch_size)
    optimizer.zero_grad()
    _accumulate(model, loss_fn, inputs, targets, slices, micro_batch_weights(batch_size, micro_batch_size, reduction))
    # Clipping is not linear: the norm of a sum is not the sum of norms. Only the finished gradient
    # is the full batch's gradient, so only it may be clipped.
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return norm


def check_clipped_accumulation_step(candidate) -> None:
    """Check an attempt at `clipped_accumulation_step` against a full-batch step with clipping.

    Raises:
        AssertionError: if the candidate's parameters or returned norm differ from the full-batch step's.
    """
    cases = [(10, 4, 0.05, torch.nn.MSELoss(), False), (9, 3, 1e6, torch.nn.MSELoss(), False),
             (7, 2, 0.2, torch.nn.CrossEntropyLoss(), True), (5, 8, 0.01, torch.nn.MSELoss(), False)]
    for seed, (batch, micro, max_norm, loss_fn, classify) in enumerate(cases):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3 if classify else 1)).double()
            x = torch.randn(batch, 3, dtype=torch.float64)
            y = torch.randint(3, (batch,)) if classify else torch.randn(batch, 1, dtype=torch.float64)
        twin = copy.deepcopy(net)
        # The reference: one full-batch backward, one clip, one step.
        ref_opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
        ref_opt.zero_grad()
        loss_fn(net(x), y).backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
        ref_opt.step()
        # Stale gradients from an earlier step must not leak into the candidate's step.
        for p in twin.parameters():
            p.grad = torch.full_like(p, 3.0)
        norm = candidate(twin, torch.optim.SGD(twin.parameters(), lr=0.5, momentum=0.9), loss_fn, x, y, micro, max_norm)
        where = f"(batch {batch}, micro-batches of {micro}, max_norm {max_norm})"
        assert isinstance(norm, (torch.Tensor, float)), f"return the total norm before clipping {where}, got {norm!r}"
        assert math.isclose(float(norm), ref_norm.item(), rel_tol=1e-9), f"the norm before clipping should be {ref_norm.item():.6g}, got {float(norm):.6g} {where}"
        for (name, got), want in zip(twin.named_parameters(), net.parameters(), strict=True):
            assert torch.allclose(got, want), f"parameter {name} differs from the full-batch step with clipping {where}"
