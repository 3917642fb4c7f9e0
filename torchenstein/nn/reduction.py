r"""
# Reduction Rituals: Who Counts, and Who Divides

!!! torchenstein "The Professor speaks"
    A loss function hands you a heap of numbers, one per target, and then performs a little ritual to turn
    them into one: it adds them up and *divides*. By what? That innocent denominator decides how hard each
    token pulls on the weights, and a wrong one bends a model's training without a single error
    message. Tonight we count the padding out, by hand and by PyTorch, and prove the two agree.

**You will learn to**

- say what `reduction="none"`, `"sum"` and `"mean"` return, and what "mean" really divides by;
- use `ignore_index` (default $-100$): ignored targets give zero loss, zero gradient, and leave the
  denominator of the mean;
- keep ignored targets out of the weighted mean that class `weight`s produce, and guard against the
  all-ignored batch whose mean is $0/0$;
- write `cross_entropy_with_ignore` and `masked_cross_entropy` from log-softmax and `gather`, and prove them
  equal to `F.cross_entropy` for every reduction, with and without weights and label smoothing;
- choose between per-token and per-sequence averages, and keep the denominator right across micro-batches.

## Three reductions

[Loss potions](../losses/index.md) brewed the losses and [Inputs and targets](../targets/index.md) fed
them the right shapes. Every one of them first computes one loss per target, then *reduces*:

- `reduction="none"` returns those per-target losses, in the target's shape: $(N,)$ for an $(N, C)$
  input, $(N, d_1, \dots)$ for an $(N, C, d_1, \dots)$ input;
- `reduction="sum"` returns their sum, a scalar;
- `reduction="mean"` (the default) returns the sum divided by a **denominator**, also a scalar.

The denominator is where the losses part ways. `F.mse_loss` divides by the number of *elements*.
`F.cross_entropy` divides by the number of *targets*, which is not the number of logits: an $(N, C, L)$
input has $N \cdot C \cdot L$ logits but only $N \cdot L$ targets. (And `F.kl_div` has a fourth option,
`"batchmean"`, which divides by the batch size $N$ alone.)

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> _ = torch.manual_seed(0)
>>> logits = torch.randn(2, 3, 4)                 # (N, C, L): 2 sequences, 3 classes, 4 positions
>>> labels = torch.randint(3, (2, 4))             # (N, L)
>>> [tuple(F.cross_entropy(logits, labels, reduction=r).shape) for r in ("none", "sum", "mean")]
[(2, 4), (), ()]
>>> total = F.cross_entropy(logits, labels, reduction="sum")
>>> {"targets": labels.numel(), "logits": logits.numel()}
{'targets': 8, 'logits': 24}
>>> torch.allclose(F.cross_entropy(logits, labels), total / labels.numel())    # divided by the targets
True
>>> torch.allclose(F.cross_entropy(logits, labels), total / logits.numel())    # not by the logits
False
>>> a, b = torch.randn(2, 3), torch.randn(2, 3)
>>> torch.allclose(F.mse_loss(a, b), F.mse_loss(a, b, reduction="sum") / a.numel())
True

```

So "mean" is always "sum divided by something". For the rest of this lesson the something changes.

## `ignore_index`: the targets that do not count

Sequences in a batch have different lengths, so the short ones are padded, and a language model's labels
also hide the prompt it should not be graded on. `F.cross_entropy` and `F.nll_loss` take
`ignore_index`, $-100$ unless you say otherwise: a target equal to it contributes **zero loss, zero
gradient, and nothing to the denominator** of the mean. With $\mathcal{K}$ the positions whose target
counts,

$$
\text{mean} = \frac{1}{|\mathcal{K}|} \sum_{i \in \mathcal{K}} -\log p_{i, y_i}.
$$

```pycon
>>> torch.nn.CrossEntropyLoss().ignore_index
-100
>>> _ = torch.manual_seed(0)
>>> logits = torch.randn(2, 4, 3, requires_grad=True)                # (B, T, C)
>>> labels = torch.tensor([[2, 0, 1, -100], [1, -100, -100, -100]])  # 4 of 8 targets count
>>> per_token = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # class dim is 1
>>> per_token[labels == -100]
tensor([0., 0., 0., 0.], grad_fn=<IndexBackward0>)
>>> mean = F.cross_entropy(logits.transpose(1, 2), labels)
>>> torch.allclose(mean, per_token.sum() / (labels != -100).sum())
True
>>> {"right": round(mean.item(), 4), "half of right": round(per_token.mean().item(), 4)}
{'right': 1.5668, 'half of right': 0.7834}
>>> mean.backward()
>>> logits.grad[labels == -100].abs().sum().item()                   # no gradient reaches padding
0.0

```

The second number is the classic mistake: `reduction="none"` followed by `.mean()` divides by *all*
the positions, padding included. Each padded zero pulls the reported loss down, and the gradient is
scaled down with it, by a factor that changes with every batch's amount of padding.
[`plot_mean_denominators`][torchenstein.nn.reduction.plot_mean_denominators] draws a padded batch and then
both numbers as the padding grows: the correct mean stays where the model is, the wrong one sinks towards
zero, though nothing about the model has changed.

![Left: a padded batch of token losses with the ignored positions left blank and marked with grey crosses. Right: the correctly masked mean stays flat as the fraction of padding grows, while the mean of the reduction none output falls in proportion to the padding](plot_mean_denominators.svg)

## Class weights move the denominator too

With class `weight`s "mean" is the weighted average of [Loss potions](../losses/index.md): the sum of
$w_{y_i}(-\log p_{i, y_i})$ divided by $\sum_{i \in \mathcal{K}} w_{y_i}$, the summed weights of the
targets that **count**. An ignored target leaves both sums, and rescaling all the weights changes "sum"
but not "mean".

## Nobody home: the all-ignored batch

When no target counts, the mean is $0/0$, and PyTorch returns exactly that: `nan`. "sum" gives 0, and
"none" gives zeros.

```pycon
>>> logits, nobody = torch.randn(6, 3), torch.full((6,), -100)
>>> [F.cross_entropy(logits, nobody, reduction=r).tolist() for r in ("mean", "sum", "none")]
[nan, 0.0, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]

```

It happens more often than one would think: a batch of prompts whose answers were all truncated away,
or a small last micro-batch of padding. The plain guard is to count first and skip the step when there
is nothing to learn from: `if (labels != -100).any(): ...`. In distributed training every process must
take the same steps, so a Python `if` on one process's data is not an option there; the second challenge
builds a guard with no branch at all. The fourth of Dr. Hammer's traps shows what the `nan` does if
nobody guards.

## Cross-entropy with `ignore_index`, from scratch

Three steps: log-probabilities with a stable
[`log_softmax`][torchenstein.tensors.elementwise.log_softmax] over the class dimension, the target's
log-probability picked out with [`gather`][torchenstein.tensors.surgery.gather], and a reduction that
divides by the weights of the targets that count.
[`cross_entropy_with_ignore`][torchenstein.nn.reduction.cross_entropy_with_ignore] takes
`F.cross_entropy`'s argument names, class weights and label smoothing included:

```pycon
>>> from torchenstein.nn.reduction import cross_entropy_with_ignore
>>> _ = torch.manual_seed(0)
>>> logits = torch.randn(2, 5, 4)                           # (N, C, L)
>>> labels = torch.tensor([[4, 0, -100, -100], [1, 1, 3, -100]])
>>> weight = torch.rand(5)
>>> for reduction in ("none", "sum", "mean"):
...     ours = cross_entropy_with_ignore(logits, labels, weight=weight, reduction=reduction)
...     torch.testing.assert_close(ours, F.cross_entropy(logits, labels, weight=weight, reduction=reduction))
>>> cross_entropy_with_ignore(logits, labels.clamp_min(0) + 1)
Traceback (most recent call last):
...
ValueError: target must hold class indices in [0, 5) or ignore_index=-100, got 5

```

The tests prove it equal to `F.cross_entropy` for $(C)$, $(N, C)$, $(N, C, L)$ and $(N, C, H, W)$ inputs,
all three reductions, with and without weights and label smoothing, all-ignored and empty batches
included (`nan` for "mean", 0 for "sum"), in float16, bfloat16, float32 and float64, on transposed,
strided and expanded logits and on logits up to each dtype's largest value, and gradients too: against
PyTorch's and with `torch.autograd.gradcheck` in float64. Where it differs from PyTorch: in float16 and
bfloat16 it computes in float32 and rounds once (PyTorch's kernels round in between, so the two agree to
a few units in the last place), and it accepts class weights of any floating dtype, where PyTorch wants
the input's.

## Masking by hand: `masked_cross_entropy`

Often the batch arrives with a mask (a tokeniser's `attention_mask`, 1 for a real token; `.bool()` makes
it boolean) instead of a sentinel in the labels. [`masked_cross_entropy`][torchenstein.nn.reduction.masked_cross_entropy]
takes the mask directly: True means "this target counts". Whatever sits in the labels where the mask is
False is never looked at, not even checked, so the pad token id, or a $-1$, can stay there:

```pycon
>>> from torchenstein.nn.reduction import masked_cross_entropy
>>> mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
>>> padded_with_junk = labels.masked_fill(~mask, 12345)            # not a class at all
>>> torch.allclose(masked_cross_entropy(logits, padded_with_junk, mask), F.cross_entropy(logits, labels))
True

```

One fact worth keeping from the code: it zeroes the ignored losses with `torch.where`, never by
multiplying with the mask. The product $0 \cdot \infty$ is `nan`, and ignored positions are exactly
where junk lives.

## Label smoothing keeps the ignored ignored

[Loss potions](../losses/index.md) defined `label_smoothing=`$\varepsilon$ and its weighted loss. This
lesson's point: an ignored target still gives $\ell_i = 0$, no gradient, and no share of the denominator
(which stays $\sum_{i \in \mathcal{K}} w_{y_i}$):

```pycon
>>> _ = torch.manual_seed(0)
>>> logits = torch.randn(5, 4, requires_grad=True)
>>> labels = torch.tensor([3, -100, 0, -100, 2])
>>> smoothed = F.cross_entropy(logits, labels, label_smoothing=0.1, reduction="none")
>>> smoothed[labels == -100].tolist()
[0.0, 0.0]
>>> mean = F.cross_entropy(logits, labels, label_smoothing=0.1)
>>> torch.allclose(mean, smoothed.sum() / (labels != -100).sum())
True
>>> mean.backward()
>>> logits.grad[labels == -100].abs().sum().item()
0.0
>>> torch.allclose(cross_entropy_with_ignore(logits, labels, label_smoothing=0.1), mean)
True

```

Smoothing the labels yourself into a probability target instead switches `ignore_index` off, as
[Inputs and targets](../targets/index.md) showed: use the built-in `label_smoothing`, or mask by hand.

## Per token or per sequence?

Take a batch of token losses, one row per sequence. Two averages are both called "the mean":

- **per token**: all counted tokens of the batch, each with the same weight, $\frac{1}{\sum_b n_b}
  \sum_b \sum_t \ell_{b,t}$. This is what `F.cross_entropy(..., ignore_index=-100)` on the flattened batch
  gives.
- **per sequence**: each sequence's own mean, then the mean of those,
  $\frac{1}{B} \sum_b \frac{1}{n_b} \sum_t \ell_{b,t}$.

They agree when all lengths are equal. When lengths differ, per sequence gives each token of a short
sequence more say than each token of a long one:

```pycon
>>> from torchenstein.tensors.elementwise import mean_without_padding
>>> token_losses = torch.tensor([[4.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # (B, T)
>>> mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
>>> per_token = token_losses[mask].mean()
>>> per_sequence = mean_without_padding(token_losses, mask, dim=1).mean()
>>> {"per token": round(per_token.item(), 4), "per sequence": round(per_sequence.item(), 4)}
{'per token': 1.6, 'per sequence': 2.5}

```

Language-model pre-training and most fine-tuning use the **per-token** mean: the objective is the
likelihood of the *tokens* of the corpus, so each predicted token counts once, however long the
sequence it sits in. Its gradient estimates the gradient of the corpus's average token loss, and it does
not change when the same tokens are packed into sequences differently. Per-sequence
averaging is a deliberate choice when every *example* should weigh the same (one chat answer equals one
vote); reinforcement-learning recipes for language models argue about exactly this (GRPO averages per
sequence, DAPO switched to per token so that long answers are not under-weighted). Either way, choose it
on purpose. The first challenge below computes the per-sequence mean properly.

## Across micro-batches: divide by the step's tokens

The [Gradient accumulation](../../tensors/accumulation/index.md) lesson split a batch into micro-batches
and weighted each micro-batch mean by its share of the *samples*. With a token mean the share is one of
*tokens*, and micro-batches of the same number of sequences can hold very different numbers of tokens.
The average of the micro-batch means is then not the batch's mean. Two correct ways: weight each
micro-batch mean with
[`accumulated_token_loss_weights`][torchenstein.tensors.accumulation.accumulated_token_loss_weights], or,
simpler, backward each micro-batch's **sum** divided by the number of counted tokens in the **whole step**.
The labels are known before any forward pass, so that number can be counted up front. (With several GPUs,
count over all of them; and since distributed data parallel *averages* the gradients of the processes,
multiply each loss by the number of processes to undo that average.)

```pycon
>>> from torchenstein.tensors.accumulation import accumulated_token_loss_weights
>>> _ = torch.manual_seed(0)
>>> logits = torch.randn(4, 5, 6, dtype=torch.float64, requires_grad=True)   # (B, T, V)
>>> labels = torch.randint(6, (4, 5))
>>> labels[2:, 1:] = -100                     # the second micro-batch is mostly padding
>>> def token_ce(lo, la, reduction="mean"):
...     return F.cross_entropy(lo.flatten(0, 1), la.flatten(), reduction=reduction)
>>> parts = [slice(0, 2), slice(2, 4)]
>>> counts = [int((labels[part] != -100).sum()) for part in parts]
>>> counts
[10, 2]
>>> full = token_ce(logits, labels)
>>> means = [token_ce(logits[part], labels[part]) for part in parts]
>>> weighted = sum(w * m for w, m in zip(accumulated_token_loss_weights(counts), means))
>>> {"full batch": round(full.item(), 4), "weighted means": round(weighted.item(), 4),
...  "plain average of means": round((sum(means) / 2).item(), 4)}
{'full batch': 2.4248, 'weighted means': 2.4248, 'plain average of means': 2.2612}
>>> full.backward()
>>> full_grad, logits.grad = logits.grad, None
>>> for part in parts:
...     (token_ce(logits[part], labels[part], reduction="sum") / sum(counts)).backward()
>>> torch.testing.assert_close(logits.grad, full_grad)

```

The last number, the plain average of the two means, is Dr. Hammer's; it gives the two tokens of the
second micro-batch the same total say as the ten of the first.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `.mean()` of the unreduced losses"
    Dr. Hammer wants the per-token losses for his logs, so he asks for `reduction="none"`, and then
    trains on their `.mean()`. The zeros of the ignored positions join the average: his loss, and his
    gradient, shrink with the padding, and batches with more padding learn less.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> logits = torch.randn(8, 3)
    >>> labels = torch.tensor([0, 1, 2, 1, -100, -100, -100, -100])
    >>> per_token = F.cross_entropy(logits, labels, reduction="none")
    >>> hammer, honest = per_token.mean(), per_token.sum() / (labels != -100).sum()
    >>> {"Hammer": round(hammer.item(), 4), "honest": round(honest.item(), 4)}
    {'Hammer': 0.3839, 'honest': 0.7678}
    >>> torch.allclose(honest, F.cross_entropy(logits, labels))
    True

    ```

!!! hammer "Dr. Hammer's trap: padding the labels with 0"
    Dr. Hammer pads his labels with the pad token's id, 0, and keeps the default `ignore_index=-100`.
    Nothing is ignored: every padded position is a training example that says "after the end, predict
    token 0", the loss includes them, and the gradient pushes the pad logit up.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> logits = torch.randn(2, 4, 5, requires_grad=True)              # (B, T, V); token 0 is the pad
    >>> real = torch.arange(4) < torch.tensor([[4], [2]])               # (B, T): lengths 4 and 2
    >>> tokens = torch.randint(1, 5, (2, 4))
    >>> hammer_labels, honest_labels = tokens.masked_fill(~real, 0), tokens.masked_fill(~real, -100)
    >>> hammer = F.cross_entropy(logits.transpose(1, 2), hammer_labels)
    >>> honest = F.cross_entropy(logits.transpose(1, 2), honest_labels)
    >>> {"Hammer": round(hammer.item(), 4), "honest": round(honest.item(), 4)}
    {'Hammer': 1.5393, 'honest': 1.496}
    >>> hammer.backward()
    >>> logits.grad[1, 2:, 0] < 0                  # descent raises the pad logit at the padded positions
    tensor([True, True])

    ```

    The fix is $-100$ (or a mask) wherever the label must not count. Setting `ignore_index` to the pad
    id works only if the pad token never appears as a real label: many recipes reuse the end-of-sequence
    token as padding (GPT-2 has no pad token of its own), and ignoring it everywhere means the model
    never learns to stop. Build the labels from the attention mask, not from the token ids.

!!! hammer "Dr. Hammer's trap: averaging micro-batch means"
    With gradient accumulation, Dr. Hammer divides each micro-batch's mean by the number of
    micro-batches. That is right only if every micro-batch holds the same number of counted tokens, which
    padded text never does: in the example of the previous section his loss was $2.2612$ instead of
    $2.4248$, and his gradient is off the same way. Divide each micro-batch's sum by the step's total
    count of tokens instead.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> logits = torch.randn(4, 3, requires_grad=True)
    >>> labels = torch.tensor([0, 2, 1, -100])
    >>> (full_grad,) = torch.autograd.grad(F.cross_entropy(logits, labels), logits)
    >>> parts = [slice(0, 2), slice(2, 4)]                  # 2 counted tokens, then 1
    >>> hammer = sum(F.cross_entropy(logits[part], labels[part]) for part in parts) / len(parts)
    >>> honest = sum(F.cross_entropy(logits[part], labels[part], reduction="sum") for part in parts) / (labels != -100).sum()
    >>> {name: torch.allclose(torch.autograd.grad(loss, logits)[0], full_grad) for name, loss in (("Hammer", hammer), ("honest", honest))}
    {'Hammer': False, 'honest': True}

    ```

!!! hammer "Dr. Hammer's trap: the all-ignored batch"
    Once in a long while, a batch has no counted token. PyTorch's mean is `nan` (its own backward then gives
    zero gradients, but the `nan` still ruins every running average and every `loss < best` test
    after it). Dr. Hammer's home-made masked mean is worse: it multiplies by the mask and divides by
    `mask.sum()`, and $0 \cdot \frac{1}{0}$ sends `nan` into every gradient; one optimizer step later every
    weight is `nan`, for good.

    ```pycon
    >>> model = torch.nn.Linear(3, 4)
    >>> x = torch.randn(5, 3)
    >>> labels, mask = torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.bool)  # nothing counts
    >>> running = 1.0 + F.cross_entropy(model(x), labels.masked_fill(~mask, -100)).item()  # the logged average
    >>> running
    nan
    >>> hammer = (F.cross_entropy(model(x), labels, reduction="none") * mask).sum() / mask.sum()
    >>> hammer.backward()
    >>> torch.optim.SGD(model.parameters(), lr=0.1).step()
    >>> bool(model.weight.isnan().all())
    True
    >>> model = torch.nn.Linear(3, 4)
    >>> if mask.any():                                                     # the guard: skip the step
    ...     masked_cross_entropy(model(x), labels, mask).backward()
    >>> {"no gradient": model.weight.grad is None, "any NaN weight": bool(model.weight.isnan().any())}
    {'no gradient': True, 'any NaN weight': False}

    ```

## Challenges

**1. The per-sequence mean.** Write `per_sequence_mean_loss(token_losses, mask)`: `token_losses` is a
$(B, T)$ float tensor, `mask` a $(B, T)$ bool tensor, True where a token counts. Return the mean over
sequences of each sequence's mean over its counted tokens, a scalar that keeps the dtype and the gradient.
A sequence with no counted token is left out of the average (it must not turn the result into `nan`),
padded positions may hold `inf` or `nan` and must change nothing, and a mask with no True anywhere raises
`ValueError`.

**2. A guard with no branch.** Write `nan_safe_token_mean(token_losses, mask)`: the mean of the counted
token losses (same shapes as above, any number of dimensions), except that when nothing counts it returns
0, still attached to the graph, so that `backward()` works and gives zero, finite gradients. No Python `if`
on the data: it must run the same way on every process of a distributed job. Junk in the padding (`inf`,
`nan`) must never reach the value or the gradient.

Check an attempt with `check_per_sequence_mean_loss(my_function)` or `check_nan_safe_token_mean(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.nn.reduction import (
...     check_nan_safe_token_mean, check_per_sequence_mean_loss, nan_safe_token_mean, per_sequence_mean_loss)
>>> check_per_sequence_mean_loss(per_sequence_mean_loss)
>>> check_nan_safe_token_mean(nan_safe_token_mean)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.elementwise import log_softmax
from torchenstein.tensors.surgery import gather

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REDUCTIONS = ("mean", "sum", "none")
"""The reductions PyTorch's losses accept (the legacy `size_average`/`reduce` flags aside)."""


def _cross_entropy_core(
    input: Tensor, target: Tensor, counts: Tensor, class_dim: int, weight: Tensor | None, reduction: str,
    label_smoothing: float,
) -> Tensor:
    num_classes = input.shape[class_dim]
    dtype = input.dtype
    # float16 and bfloat16 are computed in float32 and rounded once at the end; the log-probabilities
    # are rounded to the input's dtype on the way, as PyTorch's log_softmax rounds them.
    wide = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    log_p = log_softmax(input.to(wide), dim=class_dim).to(dtype).to(wide)  # input's shape
    weight = None if weight is None else weight.to(wide)
    # Targets that do not count are pointed at class 0, a safe address for gather; their losses are
    # thrown away below, so the class they point at never matters.
    safe_target = torch.where(counts, target, 0).long()  # target's shape
    picked = gather(log_p, class_dim, safe_target.unsqueeze(class_dim)).squeeze(class_dim)  # target's shape
    # w_{y_i}: each target's class weight, or 1 without weights. These are also the denominator's terms.
    w = torch.ones_like(picked) if weight is None else weight[safe_target]
    losses = -w * picked
    if label_smoothing > 0:
        # The smoothing term: eps / C times the weighted loss against every class, as in PyTorch.
        class_weights = log_p.new_ones(num_classes) if weight is None else weight
        shape = [1] * input.dim()
        shape[class_dim] = num_classes
        smooth = -(log_p * class_weights.view(shape)).sum(dim=class_dim)  # target's shape
        losses = (1 - label_smoothing) * losses + (label_smoothing / num_classes) * smooth
    # torch.where, not multiplication by the mask: 0 * inf (or 0 * nan) is nan, and where's backward
    # hands ignored positions an exact zero gradient.
    losses = torch.where(counts, losses, 0.0)
    if reduction == "none":
        return losses.to(dtype)
    if reduction == "sum":
        return losses.sum().to(dtype)
    # The mean's denominator: the summed weights of the targets that count (their number without
    # weights). With none counting it is 0, and 0 / 0 = nan, exactly as PyTorch returns.
    return (losses.sum() / torch.where(counts, w, 0.0).sum()).to(dtype)


def cross_entropy_with_ignore(
    input: Tensor,
    target: Tensor,
    *,
    ignore_index: int = -100,
    weight: Tensor | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy for class-index targets with `ignore_index`, from scratch, a twin of `F.cross_entropy`.

    Built from [`log_softmax`][torchenstein.tensors.elementwise.log_softmax] and
    [`gather`][torchenstein.tensors.surgery.gather]. A target equal to ``ignore_index`` gives zero loss,
    zero gradient, and no share of the mean's denominator $\sum_{i \in \mathcal{K}} w_{y_i}$.

    Args:
        input: logits of shape $(C)$ or $(N, C, d_1, \dots)$, floating point.
        target: class indices of shape $()$ or $(N, d_1, \dots)$, integers in $[0, C)$ or ``ignore_index``.
        ignore_index: the target value that does not count.
        weight: optional class weights of shape $(C)$.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: $\varepsilon \in [0, 1]$, the share of the target spread evenly over all classes.

    Returns:
        The per-target losses in ``target``'s shape for ``"none"``, else a scalar. ``"mean"`` is ``nan``
        when no target counts, as in PyTorch.

    Raises:
        TypeError: if ``input`` is not floating point or ``target`` is not an integer tensor.
        ValueError: if the shapes do not match, a counted target is not a class, or an option is invalid.

    Examples:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
        >>> cross_entropy_with_ignore(logits, torch.tensor([0, 1, -100]), reduction="none")
        tensor([0.1269, 0.1269, 0.0000])
        >>> cross_entropy_with_ignore(logits, torch.tensor([-100, -100, -100]))
        tensor(nan)
        >>> cross_entropy_with_ignore(logits, torch.tensor([0, 1, 1]), reduction="average")
        Traceback (most recent call last):
        ...
        ValueError: reduction must be one of ('mean', 'sum', 'none'), got 'average'
    """
    class_dim = _check_logits_and_target(input, target)
    weight = _check_options(input, class_dim, weight, reduction, label_smoothing)
    _check_ignore_index(ignore_index)
    counts = target != ignore_index  # target's shape, True = counts
    _check_target_values(target, counts, input.shape[class_dim], ignore_index)
    return _cross_entropy_core(input, target, counts, class_dim, weight, reduction, float(label_smoothing))


def masked_cross_entropy(
    input: Tensor,
    target: Tensor,
    mask: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Cross-entropy over the targets a boolean mask selects; the target under a False is never read.

    Equal to ``F.cross_entropy(input, target.masked_fill(~mask, -100), weight=weight, reduction=reduction)``.

    Args:
        input: logits of shape $(C)$ or $(N, C, d_1, \dots)$, floating point.
        target: integer labels of shape $()$ or $(N, d_1, \dots)$; where ``mask`` is True, classes in $[0, C)$.
        mask: a bool tensor of ``target``'s shape, True where the target counts.
        weight: optional class weights of shape $(C)$.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        The per-target losses (0 where ``mask`` is False) for ``"none"``, else a scalar; ``"mean"`` is
        ``nan`` when the mask is all False.

    Raises:
        TypeError: if a tensor has the wrong kind of dtype.
        ValueError: if the shapes do not match, a counted target is not a class, or an option is invalid.

    Examples:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
        >>> masked_cross_entropy(logits, torch.tensor([0, 1, 7]), torch.tensor([True, True, False]))
        tensor(0.1269)
        >>> masked_cross_entropy(logits, torch.tensor([0, 1, 7]), torch.tensor([1, 1, 0]))
        Traceback (most recent call last):
        ...
        TypeError: mask must be a bool tensor, got torch.int64
    """
    class_dim = _check_logits_and_target(input, target)
    weight = _check_options(input, class_dim, weight, reduction, 0.0)
    _check_mask(mask, target)
    _check_target_values(target, mask, input.shape[class_dim], None)
    return _cross_entropy_core(input, target, mask, class_dim, weight, reduction, 0.0)


def plot_mean_denominators(
    *, batch_size: int = 6, length: int = 16, num_classes: int = 10, points: int = 10, curve_batch_size: int = 256, seed: int = 0
) -> Figure:
    """Draw a padded batch, and the reported loss of the right and the wrong mean as padding grows.

    Args:
        batch_size: sequences in the batch drawn on the left.
        length: positions per sequence.
        num_classes: the vocabulary size of the random logits.
        points: how many padding fractions (from 0 to 0.9) the right panel evaluates.
        curve_batch_size: sequences in the batch of the right panel (many, so the noise stays small).
        seed: the seed of the random logits, labels and lengths.

    Returns:
        A figure with two panels (and the colour bar of the left one).

    Raises:
        ValueError: if a size is below what the figure needs (``points`` and ``length`` at least 2, the
            others at least 1, ``batch_size`` no more than ``curve_batch_size``).

    Examples:
        >>> fig = plot_mean_denominators(batch_size=2, length=4, points=3)
        >>> len(fig.axes)  # two panels and a colour bar
        3
    """
    _check_figure_sizes(batch_size=batch_size, length=length, num_classes=num_classes, points=points,
                        curve_batch_size=curve_batch_size)
    fig, (ax_batch, ax_curve) = new_figure(1, 2, width=9.5, height=3.6)
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(curve_batch_size, num_classes, length, generator=generator)  # (B, C, T)
    labels = torch.randint(num_classes, (curve_batch_size, length), generator=generator)  # (B, T)

    # Left: the first few sequences with random lengths; padded positions are crossed out, not coloured.
    lengths = torch.randint(1, length + 1, (batch_size,), generator=generator)
    padded = torch.arange(length) >= lengths[:, None]  # (B, T)
    token_losses = cross_entropy_with_ignore(logits[:batch_size], labels[:batch_size].masked_fill(padded, -100), reduction="none")
    image = ax_batch.imshow(token_losses.masked_fill(padded, math.nan).numpy(), cmap="viridis", aspect="auto")
    rows, cols = padded.nonzero(as_tuple=True)
    ax_batch.scatter(cols.numpy(), rows.numpy(), marker="x", color="#aaaaaa", s=18)
    ax_batch.set(xlabel="position t", ylabel="sequence b", title="Token losses of a padded batch (x: label -100)")
    ax_batch.grid(False)
    fig.colorbar(image, ax=ax_batch, label="token loss")

    # Right: the same logits with more and more of each sequence's tail padded away.
    fractions, right, wrong = [], [], []
    for k in range(points):
        pad = round(0.9 * length * k / (points - 1))
        hidden = torch.arange(length) >= length - pad  # (T,), the same tail for every sequence
        masked = labels.masked_fill(hidden, -100)
        fractions.append(pad / length)
        right.append(cross_entropy_with_ignore(logits, masked).item())
        wrong.append(cross_entropy_with_ignore(logits, masked, reduction="none").mean().item())
    ax_curve.plot(fractions, right, color=PALETTE[1], marker="o", markersize=4, label="cross_entropy(ignore_index=-100)")
    ax_curve.plot(fractions, wrong, color=PALETTE[2], marker="s", markersize=4, label='cross_entropy(reduction="none").mean()')
    ax_curve.set(xlabel="fraction of positions that are padding", ylabel="reported loss",
                 title="The same model, two denominators", ylim=(0, None))
    ax_curve.legend(fontsize=8)
    return fig


def per_sequence_mean_loss(token_losses: Tensor, mask: Tensor) -> Tensor:
    """Challenge solution: the mean over sequences of each sequence's mean token loss.

    Args:
        token_losses: a $(B, T)$ floating-point tensor of per-token losses.
        mask: a $(B, T)$ bool tensor, True where a token counts.

    Returns:
        A scalar of ``token_losses``' dtype. Sequences with no counted token are left out.

    Raises:
        TypeError: if ``token_losses`` is not floating point or ``mask`` is not bool.
        ValueError: if the shapes differ, are not 2-D, or no token counts at all.

    Examples:
        >>> losses = torch.tensor([[4.0, 9.0], [1.0, 3.0], [7.0, 7.0]])
        >>> per_sequence_mean_loss(losses, torch.tensor([[True, False], [True, True], [False, False]]))
        tensor(3.)
    """
    _check_token_losses(token_losses, mask)
    if token_losses.dim() != 2:
        raise ValueError(f"token_losses must be 2-D (B, T), got shape {tuple(token_losses.shape)}")
    lengths = mask.sum(dim=1)  # (B,)
    present = lengths > 0  # (B,): sequences with something to average
    if not present.any():
        raise ValueError("mask must count at least one token, got none")
    sums = torch.where(mask, token_losses, 0.0).sum(dim=1)  # (B,)
    # An empty sequence divides 0 by 1 here and is then dropped, so no 0 / 0 ever enters the graph.
    means = sums / lengths.clamp_min(1)
    return means[present].mean()


def check_per_sequence_mean_loss(candidate: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Check an attempt at `per_sequence_mean_loss` on ragged, empty and junk-padded batches.

    Raises:
        AssertionError: if the candidate is wrong anywhere; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    losses = torch.rand(5, 6, generator=generator, dtype=torch.float64) * 3
    ragged = torch.arange(6) < torch.tensor([[6], [1], [3], [0], [4]])  # one empty sequence
    junk = losses.masked_fill(~ragged, math.inf)
    junk[3, 2] = math.nan
    cases = [("equal lengths", losses[:, :4], torch.ones(5, 4, dtype=torch.bool)),
             ("ragged lengths with an empty sequence", losses, ragged),
             ("inf and nan in the padding", junk, ragged),
             ("a single token", losses[:1], torch.arange(6)[None] < 1)]
    for name, values, mask in cases:
        expected = sum(row[keep].mean() for row, keep in zip(values, mask, strict=True) if keep.any()) / int(mask.any(dim=1).sum())
        leaf = values.clone().requires_grad_(True)
        got = candidate(leaf, mask.clone())
        assert isinstance(got, torch.Tensor) and got.shape == (), f"{name}: return a scalar tensor, got {got!r}"
        assert got.dtype == values.dtype, f"{name}: keep the dtype {values.dtype}, got {got.dtype}"
        assert torch.allclose(got, expected), f"{name}: expected {expected.item():.6f}, got {got.item():.6f}"
        got.backward()
        # d/d loss_{b,t} = 1 / (number of non-empty sequences * length of sequence b) for counted tokens.
        lengths = mask.sum(dim=1, keepdim=True).clamp_min(1)
        expected_grad = mask / (lengths * int(mask.any(dim=1).sum()))
        assert leaf.grad is not None and torch.allclose(leaf.grad, expected_grad.to(values.dtype)), \
            f"{name}: the gradient must be 1 / (B_nonempty * n_b) on counted tokens and exactly 0 elsewhere, got {leaf.grad}"
    try:
        candidate(losses, torch.zeros_like(ragged))
    except ValueError:
        return
    raise AssertionError("a mask with no True at all must raise ValueError: there is no sequence to average")


def nan_safe_token_mean(token_losses: Tensor, mask: Tensor) -> Tensor:
    """Challenge solution: the mean of the counted token losses, and a harmless 0 when none counts.

    Args:
        token_losses: a floating-point tensor of per-token losses, any shape.
        mask: a bool tensor of the same shape, True where a token counts.

    Returns:
        A scalar of ``token_losses``' dtype, attached to the graph; 0 with zero gradients when the mask
        is all False.

    Raises:
        TypeError: if ``token_losses`` is not floating point or ``mask`` is not bool.
        ValueError: if the shapes differ.

    Examples:
        >>> losses = torch.tensor([2.0, 4.0, math.inf], requires_grad=True)
        >>> nan_safe_token_mean(losses, torch.tensor([True, True, False]))
        tensor(3., grad_fn=<DivBackward0>)
        >>> nan_safe_token_mean(losses, torch.tensor([False, False, False]))
        tensor(0., grad_fn=<DivBackward0>)
    """
    _check_token_losses(token_losses, mask)
    # where() drops the junk before anything touches it, and a count clamped to at least 1 turns the
    # empty case into 0 / 1: no branch, no 0 / 0, and a zero gradient through where's backward.
    total = torch.where(mask, token_losses, 0.0).sum()
    return total / mask.sum().clamp_min(1)


def check_nan_safe_token_mean(candidate: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Check an attempt at `nan_safe_token_mean`, above all on masks with nothing in them.

    Raises:
        AssertionError: if a value or a gradient is wrong or not finite; the message names the case.
    """
    generator = torch.Generator().manual_seed(1)
    losses = torch.rand(3, 5, generator=generator, dtype=torch.float64) * 4
    mask = torch.rand(3, 5, generator=generator) > 0.4
    junk = losses.masked_fill(~mask, math.inf)
    junk[~mask & (torch.rand(3, 5, generator=generator) > 0.5)] = math.nan
    nothing = torch.zeros_like(mask)
    cases = [("a (3, 5) batch", losses, mask), ("a flat vector", losses[0], mask[0]),
             ("inf and nan in the padding", junk, mask), ("nothing counts", losses, nothing),
             ("nothing counts, padding full of inf and nan", junk, nothing)]
    for name, values, keep in cases:
        leaf = values.clone().requires_grad_(True)
        got = candidate(leaf, keep.clone())
        assert isinstance(got, torch.Tensor) and got.shape == (), f"{name}: return a scalar tensor, got {got!r}"
        assert got.dtype == values.dtype, f"{name}: keep the dtype {values.dtype}, got {got.dtype}"
        expected = values[keep].mean() if keep.any() else torch.zeros((), dtype=values.dtype)
        assert torch.allclose(got, expected), f"{name}: expected {expected.item():.6f}, got {got.item()}"
        assert got.requires_grad, f"{name}: the result must stay attached to the graph, so that backward() works"
        got.backward()
        expected_grad = keep / max(int(keep.sum()), 1)
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all(), f"{name}: every gradient must be finite, got {leaf.grad}"
        assert torch.allclose(leaf.grad, expected_grad.to(values.dtype)), f"{name}: the gradient should be 1/count on counted tokens and 0 elsewhere, got {leaf.grad}"


# Argument checks, kept at the foot so that the rituals above read first.


def _check_logits_and_target(input: object, target: object) -> int:
    # The shape contract of F.cross_entropy with class-index targets: input is (C,) with a scalar
    # target, or (N, C, d1, ...) with a target of shape (N, d1, ...). Returns the class dimension.
    if not isinstance(input, torch.Tensor) or not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor of logits, got {getattr(input, 'dtype', type(input).__name__)}")
    if not isinstance(target, torch.Tensor) or target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor of class indices, got {getattr(target, 'dtype', type(target).__name__)}")
    if input.dim() == 0:
        raise ValueError("input must have a class dimension, got a 0-d tensor")
    class_dim = 1 if input.dim() >= 2 else 0
    expected = input.shape[:class_dim] + input.shape[class_dim + 1:]
    if target.shape != expected:
        raise ValueError(f"target must have shape {tuple(expected)} for input of shape {tuple(input.shape)}, got {tuple(target.shape)}")
    return class_dim


def _check_options(input: Tensor, class_dim: int, weight: object, reduction: object, label_smoothing: object) -> Tensor | None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if weight is None:
        return None
    num_classes = input.shape[class_dim]
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point() or weight.shape != (num_classes,):
        raise ValueError(f"weight must be a 1-D floating-point tensor of {num_classes} class weights, got {getattr(weight, 'shape', weight)!r}")
    return weight.to(input.dtype)


def _check_target_values(target: Tensor, counts: Tensor, num_classes: int, ignore_index: int | None) -> None:
    # Only the targets that count must be classes; what hides behind the mask is never read.
    bad = counts & ((target < 0) | (target >= num_classes))
    if bad.any():
        value = target[bad][0].item()
        allowed = f"[0, {num_classes})" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
        raise ValueError(f"target must hold class indices in {allowed}, got {value}")


def _check_token_losses(token_losses: object, mask: object) -> None:
    if not isinstance(token_losses, torch.Tensor) or not token_losses.is_floating_point():
        raise TypeError(f"token_losses must be a floating-point tensor, got {getattr(token_losses, 'dtype', type(token_losses).__name__)}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != token_losses.shape:
        raise ValueError(f"mask must have token_losses' shape {tuple(token_losses.shape)}, got {tuple(mask.shape)}")


def _check_ignore_index(ignore_index: object) -> None:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")


def _check_mask(mask: object, target: Tensor) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != target.shape:
        raise ValueError(f"mask must have target's shape {tuple(target.shape)}, got {tuple(mask.shape)}")


def _check_figure_sizes(**sizes: object) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name in ("length", "points") else 1):
            raise ValueError(f"{name} must be an int of at least {2 if name in ('length', 'points') else 1}, got {value!r}")
    if sizes["batch_size"] > sizes["curve_batch_size"]:
        raise ValueError(f"batch_size must be at most curve_batch_size={sizes['curve_batch_size']}, got {sizes['batch_size']}")
