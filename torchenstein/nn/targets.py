r"""
# Inputs and Targets: Feeding the Loss What It Actually Eats

!!! torchenstein "The Professor speaks"
    A loss function is a picky eater, my apprentice. Hand it probabilities where it wanted logits, floats
    where it wanted class numbers, or classes on the wrong axis, and it will either spit everything back
    with a cryptic message or, far worse, swallow it and return a perfectly plausible number that means
    nothing. Today we learn its diet by heart, and build a food taster that explains every refusal in
    plain words before the monster chokes.

**You will learn to**

- tell logits, probabilities and log-probabilities apart, and give each loss the one it expects;
- lay out classification, sequence and image batches with the classes on dim 1, and move a language
  model's `(N, L, C)` logits there (or flatten them) without changing the loss;
- choose between index targets (`int64` class numbers) and probability targets (float distributions),
  and see that label smoothing is nothing but a probability target;
- give binary and multi-label problems float 0/1 targets of the logits' own shape;
- read PyTorch's error messages, and write a validator that accepts exactly what the losses accept and
  explains everything they refuse.

## Three currencies: logits, probabilities, log-probabilities

A classifier's last `Linear` layer emits **logits** $z$: any real numbers, one per class. The softmax
turns them into **probabilities** $p = \operatorname{softmax}(z)$, positive and summing to 1, and the
log-softmax into **log-probabilities** $\log p = z - \log\sum_j e^{z_j}$, all at most 0. Each loss
function expects exactly one of these currencies, and nothing in a tensor's dtype says which one it
holds:

| loss                                   | `input` holds            | `target` holds           |
|----------------------------------------|--------------------------|--------------------------|
| `F.cross_entropy`                      | raw logits               | class numbers, `int64`   |
| `F.nll_loss`                           | log-probabilities        | class numbers, `int64`   |
| `F.binary_cross_entropy_with_logits`   | raw logits               | 0/1 floats, same shape   |
| `F.binary_cross_entropy`               | probabilities in [0, 1]  | 0/1 floats, same shape   |

`F.cross_entropy` is `F.nll_loss` after a log-softmax (here the stable one we built in the
[element-wise lesson](../../tensors/elementwise/index.md)), and `F.binary_cross_entropy_with_logits`
is `F.binary_cross_entropy` after a sigmoid. Always prefer the fused logit versions: the two-step ones
fail on confident logits, as the [Loss potions](../losses/index.md) traps showed.

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torchenstein.tensors.elementwise import log_softmax
>>> _ = torch.manual_seed(0)
>>> logits = torch.randn(4, 3)  # (N, C): 4 samples, 3 classes
>>> labels = torch.tensor([0, 2, 1, 2])  # (N,): one class number per sample
>>> torch.allclose(F.cross_entropy(logits, labels), F.nll_loss(log_softmax(logits, dim=1), labels))
True
>>> yes_no = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
>>> torch.allclose(F.binary_cross_entropy_with_logits(logits, yes_no), F.binary_cross_entropy(logits.sigmoid(), yes_no))
True

```

## Shapes: the class dimension is dim 1

`F.cross_entropy` reads its input as `(N, C, d1, ..., dk)`: the batch on dim 0, the **classes on dim 1**,
and any number of extra dimensions after them, each holding positions that get their own prediction.
An index target drops the class dimension: `(N, d1, ..., dk)`, one class number per position. With
`reduction="none"` the loss has the target's shape, one value per prediction:

| problem                     | logits `input`   | index `target`  |
|-----------------------------|------------------|-----------------|
| one unbatched sample        | `(C,)`           | `()`            |
| classification              | `(N, C)`         | `(N,)`          |
| sequence tagging            | `(N, C, L)`      | `(N, L)`        |
| image segmentation          | `(N, C, H, W)`   | `(N, H, W)`     |

```pycon
>>> N, C, L, H, W = 2, 5, 7, 3, 4
>>> F.cross_entropy(torch.randn(C), torch.tensor(3), reduction="none").shape
torch.Size([])
>>> F.cross_entropy(torch.randn(N, C), torch.randint(0, C, (N,)), reduction="none").shape
torch.Size([2])
>>> F.cross_entropy(torch.randn(N, C, L), torch.randint(0, C, (N, L)), reduction="none").shape
torch.Size([2, 7])
>>> F.cross_entropy(torch.randn(N, C, H, W), torch.randint(0, C, (N, H, W)), reduction="none").shape
torch.Size([2, 3, 4])

```

Why dim 1? Because that is where convolutions keep their channels: a segmentation network's last
convolution emits `(N, C, H, W)` and the loss takes it as it is. The softmax runs along dim 1, so in
every column of the picture below the probabilities sum to one, and the target picks one cell per column:

![Two heatmaps of the same class probabilities for one sequence: on the left laid out as (C, L) with classes down dim 1, as cross_entropy reads them, on the right as (L, C), the way a language model emits them; the target class of each position is outlined in both](plot_class_dimension.svg)

## A language model's logits: `(N, L, C)`

A Transformer keeps the features last, so a language model emits `(N, L, C)`: classes on the *last*
dim. There are two correct ways to feed it to the loss, and they give the same number: move the classes
to dim 1 with `transpose(1, 2)`, or flatten every position into a batch of its own, `(N*L, C)` with
targets `(N*L,)`. The mean over all $N \cdot L$ positions is the same mean either way:

```pycon
>>> _ = torch.manual_seed(0)
>>> logits_nlc = torch.randn(2, 7, 5)  # (N, L, C)
>>> targets_nl = torch.randint(0, 5, (2, 7))  # (N, L)
>>> moved = F.cross_entropy(logits_nlc.transpose(1, 2), targets_nl)  # (N, C, L) and (N, L)
>>> flat = F.cross_entropy(logits_nlc.reshape(-1, 5), targets_nl.reshape(-1))  # (N*L, C) and (N*L,)
>>> torch.allclose(moved, flat)
True
>>> per_position = F.cross_entropy(logits_nlc.transpose(1, 2), targets_nl, reduction="none")  # (N, L)
>>> torch.allclose(per_position.flatten(), F.cross_entropy(logits_nlc.reshape(-1, 5), targets_nl.reshape(-1), reduction="none"))
True

```

Flattening works on the `(N, L, C)` tensor as it is, because its last dim is already the classes; the
same trick on an `(N, C, L)` tensor would need `transpose(1, 2)` first, or it would mix positions
and classes. Passing `(N, L, C)` straight in is refused when `L != C`, with a message that mentions a
"target size", but not the class dim:

```pycon
>>> F.cross_entropy(logits_nlc, targets_nl)
Traceback (most recent call last):
...
RuntimeError: Expected target size [2, 5], got [2, 7]

```

(When `L == C` it is not refused at all; Dr. Hammer will demonstrate.)

## Index targets: class numbers, in `int64`

An index target holds the class number of each position. Use `torch.int64` (`long`): it is the dtype
every cross-entropy path accepts. With torch 2.4 to 2.13 on the CPU, the only other dtype accepted is
`torch.uint8`, and only for `(C,)` and `(N, C)` inputs, not for `(N, C, d1, ...)` ones. `int32`,
`int16`, `int8`, `bool` and every float dtype are refused; the wording of the message changed between
versions (hence the `...`):

```pycon
>>> F.cross_entropy(logits, labels.int())
Traceback (most recent call last):
...
RuntimeError: expected ...Long...Int
>>> F.cross_entropy(logits, labels.to(torch.uint8)).dtype  # (N, C): accepted
torch.float32
>>> F.cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.uint8))
Traceback (most recent call last):
...
RuntimeError: expected scalar type Long but found Byte

```

Every class number must lie in $[0, C)$; the one exception is `ignore_index` (default $-100$), whose
positions are skipped, as [Reduction rituals and ignore_index](../reduction/index.md) explains:

```pycon
>>> F.cross_entropy(logits, torch.tensor([0, 3, 1, 2]))
Traceback (most recent call last):
...
IndexError: Target 3 is out of bounds.

```

## Probability targets: a distribution per position

Since PyTorch 1.10, `F.cross_entropy` also takes **probability targets**: a float tensor of the
*input's own shape*, classes on dim 1, holding a distribution over the classes at each position (soft
labels from a teacher model, from mixup, or from label smoothing). The loss is then

$$
\ell = -\sum_{c} q_c \log \operatorname{softmax}(z)_c ,
$$

and a one-hot $q$ gives back the index-target loss. PyTorch decides which kind of target it has by the
shape alone: same shape as the input means probabilities, which must then be floats:

```pycon
>>> soft = torch.softmax(torch.randn(4, 3), dim=1)  # (N, C), each row sums to 1
>>> by_hand = -(soft * log_softmax(logits, dim=1)).sum(dim=1).mean()
>>> torch.allclose(F.cross_entropy(logits, soft), by_hand)
True
>>> one_hot = F.one_hot(labels, num_classes=3).float()  # (N, C)
>>> torch.allclose(F.cross_entropy(logits, one_hot), F.cross_entropy(logits, labels))
True
>>> F.cross_entropy(logits, one_hot.long())
Traceback (most recent call last):
...
RuntimeError: Expected floating point type for target with class probabilities, got Long

```

PyTorch does not check that each row sums to 1: a target of all ones is accepted and gives the sum of
the per-class losses, a number without meaning. Our validator below at least notices. Nor does
`ignore_index` mean anything here: PyTorch refuses a non-negative one with probability targets, and
accepts any negative one (the default $-100$ among them) without ignoring a thing. To leave positions
out, mask the per-position losses of `reduction="none"` yourself:

```pycon
>>> F.cross_entropy(logits, soft, ignore_index=-1).item() == F.cross_entropy(logits, soft).item()
True
>>> F.cross_entropy(logits, soft, ignore_index=0)
Traceback (most recent call last):
...
RuntimeError: ignore_index is not supported for floating point target

```

## Label smoothing is a probability target

`label_smoothing=ε` trains towards the softened distribution $q$ of
[Loss potions](../losses/index.md) ($1 - \varepsilon$ on the true class, $\varepsilon / C$ on every class),
so without class weights it is exactly cross-entropy with that probability target:

```pycon
>>> eps = 0.1
>>> smoothed = (1 - eps) * one_hot + eps / 3  # (N, C)
>>> smoothed[0]
tensor([0.9333, 0.0333, 0.0333])
>>> torch.allclose(F.cross_entropy(logits, labels, label_smoothing=eps), F.cross_entropy(logits, smoothed))
True

```

![Three panels for five classes and the target class 2: the index target as a single integer, the one-hot distribution it stands for, and the label-smoothed distribution with 0.2 of the mass shared out](plot_target_kinds.svg)

## Binary and multi-label targets

In **multi-class** classification each sample has exactly one class: softmax, `F.cross_entropy`, index
targets. In **multi-label** classification each sample may have any number of labels at once (a photo
holds a cat *and* a sofa), so each label is its own yes/no question with its own sigmoid:
`F.binary_cross_entropy_with_logits`, one logit per label, and a target of the **same shape** holding
floats, 1.0 for yes and 0.0 for no (values between are allowed, as soft labels). A single binary
question is the same thing with one logit per sample. Integer targets are refused, and so is a target
whose shape merely broadcasts to the input's:

```pycon
>>> photo_logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.2, 4.0]])  # (N, K): 2 photos, 3 labels
>>> photo_labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # (N, K), float 0/1
>>> (photo_logits > 0).long()  # predicted labels: several per photo are fine
tensor([[1, 0, 1],
        [0, 1, 1]])
>>> F.binary_cross_entropy_with_logits(photo_logits, photo_labels).shape
torch.Size([])
>>> F.binary_cross_entropy_with_logits(torch.randn(4, 1), torch.ones(4))
Traceback (most recent call last):
...
ValueError: Target size (torch.Size([4])) must be the same as input size (torch.Size([4, 1]))

```

## Dtypes at a glance

Logits and probabilities are floating point (`float32`, `float64`, `float16` or `bfloat16`); an integer
input fails inside the softmax or sigmoid kernel. Index targets are `int64`; probability targets and
binary targets are floats, and need not share the input's float dtype. Plain `F.binary_cross_entropy`
is stricter than its logit sibling and wants both tensors in the same dtype:

```pycon
>>> F.binary_cross_entropy_with_logits(logits, yes_no.double()).dtype
torch.float64
>>> F.binary_cross_entropy(logits.sigmoid(), yes_no.double())
Traceback (most recent call last):
...
RuntimeError: Found dtype Double but expected Float

```

## Reading the errors: a validator that explains

PyTorch's messages name the symptom ("Expected target size [2, 5], got [2, 7]"), rarely the cause.
[`validate_classification_inputs`][torchenstein.nn.targets.validate_classification_inputs] checks a
pair `(input, target)` the way `F.cross_entropy` (`kind="multiclass"`) or
`F.binary_cross_entropy_with_logits` (`kind="binary"` or `"multilabel"`) will read it. It returns one
line saying how the pair will be interpreted, which is worth printing once at the start of training,
or raises a `ValueError`/`TypeError` that names the shapes and dtypes and proposes the fix. Its tests
run it and the real loss over a grid of shape and dtype pairings and find that it
accepts exactly what PyTorch accepts, except in two corners where torch versions disagree and it takes
the stricter side (empty batches, and a `(C,)` input with a `(1,)` target):

```pycon
>>> from torchenstein.nn.targets import validate_classification_inputs
>>> validate_classification_inputs(logits, labels)
'index targets: 4 samples, 3 classes'
>>> validate_classification_inputs(torch.randn(2, 10, 5), torch.randint(0, 10, (2, 5)))
'index targets: 2 samples, 10 classes, 5 positions per sample'
>>> validate_classification_inputs(logits, smoothed)
'probability targets: 4 samples, 3 classes'
>>> validate_classification_inputs(photo_logits, photo_labels, kind="multilabel")
'multi-label targets: 2 samples, 3 labels each'
>>> validate_classification_inputs(torch.randn(2, 5, 10), torch.randint(0, 10, (2, 5)))
Traceback (most recent call last):
...
ValueError: input is (N, L, C) = (2, 5, 10) but the class dim must be dim 1: use input.transpose(1, 2)
>>> validate_classification_inputs(logits, labels.float())
Traceback (most recent call last):
...
TypeError: target holds class numbers as torch.float32, but index targets must be torch.int64: use target.long()

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `(N, L, C)` logits when `L == C`"
    Dr. Hammer trains a tiny language model with a context of 3 tokens over a vocabulary of 3, and passes
    its `(N, L, C)` logits straight to `F.cross_entropy`. The shapes happen to fit the `(N, C, L)` rule,
    so PyTorch reads positions as classes and classes as positions, and returns a loss, with no error, that
    is not the loss of his model. Only the layout tells: move the classes to dim 1, always.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> logits_nlc = torch.randn(2, 3, 3)  # (N, L, C) with L == C == 3
    >>> targets_nl = torch.randint(0, 3, (2, 3))  # (N, L)
    >>> wrong = F.cross_entropy(logits_nlc, targets_nl)  # silently read as (N, C, L)
    >>> right = F.cross_entropy(logits_nlc.transpose(1, 2), targets_nl)
    >>> {"wrong": round(wrong.item(), 3), "right": round(right.item(), 3)}
    {'wrong': 1.873, 'right': 1.05}

    ```

!!! hammer "Dr. Hammer's trap: class numbers stored as floats"
    His labels come out of a NumPy array of floats, `[0., 2., 1., 2.]`. A class number is a name, not a
    quantity, and `F.cross_entropy` refuses it (the message, again, depends on the version).
    `.long()` fixes it.

    ```pycon
    >>> F.cross_entropy(logits, labels.float())
    Traceback (most recent call last):
    ...
    RuntimeError: expected ...Long...Float
    >>> torch.equal(F.cross_entropy(logits, labels.float().long()), F.cross_entropy(logits, labels))
    True

    ```

!!! hammer "Dr. Hammer's trap: one-hot where an index was meant"
    To "help" the loss, Dr. Hammer one-hot encodes his targets. Without options it changes nothing: a
    float one-hot is a probability target with the same loss. Add class weights and it changes the answer:
    with probability targets the weighted mean divides by $N$, not by the sum of the true classes' weights
    that [Loss potions](../losses/index.md) showed for index targets. For sequences it gets worse:
    `F.one_hot` puts the classes *last*, `(N, L, C)`, and when `L == C` the shapes fit and the loss is
    silently wrong. Move them with `movedim(-1, 1)`, or better, keep the index.

    ```pycon
    >>> weight = torch.tensor([1.0, 2.0, 5.0])  # a rare class 2, weighted up
    >>> index_loss = F.cross_entropy(logits, labels, weight=weight)
    >>> torch.allclose(index_loss, F.cross_entropy(logits, one_hot, weight=weight))
    False
    >>> torch.allclose(index_loss * weight[labels].sum() / len(labels), F.cross_entropy(logits, one_hot, weight=weight))
    True
    >>> logits_ncl = logits_nlc.transpose(1, 2)  # (N, C, L), the right layout
    >>> one_hot_nlc = F.one_hot(targets_nl, num_classes=3).float()  # (N, L, C): classes last
    >>> torch.allclose(F.cross_entropy(logits_ncl, one_hot_nlc), right)
    False
    >>> torch.allclose(F.cross_entropy(logits_ncl, one_hot_nlc.movedim(-1, 1)), right)
    True

    ```

!!! hammer "Dr. Hammer's trap: integer targets for BCE"
    His multi-label targets are a `long` tensor of 0s and 1s, the dtype that `F.cross_entropy` taught
    him. `F.binary_cross_entropy_with_logits` computes in floats and cannot write the result back into
    the target's integer dtype. Our validator says which dtype to use instead.

    ```pycon
    >>> int_labels = photo_labels.long()
    >>> F.binary_cross_entropy_with_logits(photo_logits, int_labels)
    Traceback (most recent call last):
    ...
    RuntimeError: result type Float can't be cast to the desired output type Long...
    >>> validate_classification_inputs(photo_logits, int_labels, kind="multilabel")
    Traceback (most recent call last):
    ...
    TypeError: binary_cross_entropy_with_logits needs float targets (1.0 for yes, 0.0 for no), got torch.int64: use target.float()
    >>> F.binary_cross_entropy_with_logits(photo_logits, int_labels.float()).shape
    torch.Size([])

    ```

## Challenges

1. **Sequence cross-entropy.** Write `sequence_cross_entropy(input, target, ignore_index=-100)` for a
   language model's logits `input` of shape `(N, L, C)` and targets `target` of shape `(N, L)`: the
   mean cross-entropy over every position whose target is not `ignore_index`, equal to
   `F.cross_entropy(input.transpose(1, 2), target, ignore_index=ignore_index)`, gradients included,
   and right even when `L == C`. Raise `ValueError` if the shapes do not fit.
2. **Probability targets.** Write `to_probability_targets(target, num_classes, label_smoothing=0.0)`
   that turns `int64` index targets of shape `(N, d1, ..., dk)` into float32 probability targets of
   shape `(N, C, d1, ..., dk)`, classes on dim 1 (a 0-d target gives `(C,)`), such that
   `F.cross_entropy(input, to_probability_targets(target, C, eps))` equals
   `F.cross_entropy(input, target, label_smoothing=eps)`. Raise `ValueError` for a class number outside
   $[0, C)$ or a `label_smoothing` outside $[0, 1]$.

Check an attempt with `check_sequence_cross_entropy(my_function)` or
`check_to_probability_targets(my_function)`, or put both in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.nn.targets import check_sequence_cross_entropy, check_to_probability_targets
>>> from torchenstein.nn.targets import sequence_cross_entropy, to_probability_targets
>>> check_sequence_cross_entropy(sequence_cross_entropy)
>>> check_to_probability_targets(to_probability_targets)

```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = ("multiclass", "binary", "multilabel")
"""The values `kind` takes in [`validate_classification_inputs`][torchenstein.nn.targets.validate_classification_inputs]."""

_DEFAULT_IGNORE_INDEX = -100


def _require_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _all_distributions(target: torch.Tensor, dim: int) -> bool:
    # Non-negative, and summing to 1 along the class dim; the tolerance leaves room for float16 targets.
    sums = target.sum(dim).double()
    return not target.lt(0).any() and torch.allclose(sums, torch.ones_like(sums), atol=1e-3)


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _positions(extra: tuple[int, ...]) -> str:
    # The dims after the class dim, e.g. (5,) for a sequence or (4, 5) for an image.
    return f", {'x'.join(map(str, extra))} positions per sample" if extra else ""


def _misplaced_class_dim_fix(ndim: int) -> str:
    # The permutation that moves the last dim to dim 1, in the spelling people know for each rank.
    if ndim == 3:
        return "input.transpose(1, 2)"
    if ndim == 4:
        return "input.permute(0, 3, 1, 2)"
    return "input.movedim(-1, 1)"


def _explain_index_shape(input: torch.Tensor, target: torch.Tensor, expected: tuple[int, ...]) -> str:
    """The plain-words reason why ``target``'s shape does not fit ``input`` as index targets."""
    shape_in, shape_t = _shape(input), _shape(target)
    # Classes last, as a Transformer emits them: the target then matches the input without its last dim.
    if input.ndim >= 3 and shape_t == shape_in[:-1]:
        letters = "(N, L, C)" if input.ndim == 3 else "(N, H, W, C)" if input.ndim == 4 else "(N, ..., C)"
        return f"input is {letters} = {shape_in} but the class dim must be dim 1: use {_misplaced_class_dim_fix(input.ndim)}"
    # One-hot with the classes last: (N, d1, ..., C) instead of the input's (N, C, d1, ...).
    if input.ndim >= 3 and shape_t == (shape_in[0], *shape_in[2:], shape_in[1]):
        fix = "target.movedim(-1, 1)" if target.is_floating_point() else "target.argmax(-1)"
        return (
            f"target {shape_t} looks one-hot with the classes last, but input {shape_in} has them on dim 1: use {fix}"
        )
    # A trailing dim of size 1, as a DataLoader makes from labels stored as [[0], [2], ...].
    if shape_t == (*expected, 1):
        return f"target is {shape_t} but index targets for input {shape_in} must be {expected}: use target.squeeze(-1)"
    if input.ndim >= 2 and target.ndim >= 1 and shape_t[0] != shape_in[0]:
        return f"input has {shape_in[0]} samples (dim 0 of {shape_in}) but target has {shape_t[0]} (dim 0 of {shape_t})"
    return (
        f"for input {shape_in} (classes on dim {0 if input.ndim == 1 else 1}), index targets must have shape {expected} "
        f"and probability targets shape {shape_in}; got target {shape_t}"
    )


def _validate_multiclass(input: torch.Tensor, target: torch.Tensor, ignore_index: int, num_classes: int | None) -> str:
    shape_in, shape_t = _shape(input), _shape(target)
    class_dim = 0 if input.ndim == 1 else 1
    classes = shape_in[class_dim]
    samples = "one unbatched sample" if input.ndim == 1 else _count(shape_in[0], "sample")
    extra = shape_in[2:]
    if num_classes is not None and classes != num_classes:
        if input.ndim >= 3 and shape_in[-1] == num_classes:
            raise ValueError(
                f"input {shape_in} has {num_classes} classes on its last dim, but the class dim must be dim 1: "
                f"use {_misplaced_class_dim_fix(input.ndim)}"
            )
        raise ValueError(f"input {shape_in} has {classes} classes on dim {class_dim}, expected num_classes={num_classes}")
    # Like PyTorch, decide by shape alone: a target of the input's own shape holds probabilities.
    if shape_t == shape_in:
        if not target.is_floating_point():
            raise TypeError(
                f"target has the input's shape {shape_in}, so it is read as class probabilities, but it holds "
                f"{target.dtype}: for one-hot class numbers use target.argmax({class_dim}) as index targets, "
                "or target.float() as probabilities"
            )
        # PyTorch refuses a non-negative ignore_index here and accepts any negative one, which then
        # ignores nothing: no probability target can equal a class number.
        if ignore_index >= 0:
            raise ValueError(f"ignore_index={ignore_index} only works with index targets: with probability targets "
                             "PyTorch accepts only a negative ignore_index, and it ignores nothing")
        # PyTorch accepts any floats here; a target that is no distribution gets a warning, not a refusal.
        note = ""
        if not _all_distributions(target, class_dim):
            note = f"; warning: the targets along dim {class_dim} are not all distributions (each should sum to 1)"
        return f"probability targets: {samples}, {_count(classes, 'class', 'classes')}{_positions(extra)}{note}"
    # Index targets: the input's shape without the class dim.
    expected = () if input.ndim == 1 else (shape_in[0], *extra)
    if target.is_floating_point() and shape_t == expected:
        raise TypeError(
            f"target holds class numbers as {target.dtype}, but index targets must be torch.int64: use target.long()"
        )
    if shape_t != expected:
        raise ValueError(_explain_index_shape(input, target, expected))
    # torch takes uint8 class numbers for (C,) and (N, C) inputs only; int64 works everywhere.
    if target.dtype == torch.uint8 and input.ndim > 2:
        raise TypeError(
            f"torch.uint8 index targets are accepted only for (C,) or (N, C) inputs, not {shape_in}: use target.long()"
        )
    if target.dtype not in (torch.int64, torch.uint8):
        raise TypeError(f"index targets must be torch.int64, got {target.dtype}: use target.long()")
    # Shapes and dtypes fit; the values must too, or the loss raises "Target 3 is out of bounds" (on a
    # GPU, a device-side assert). Checking reads every target once, a small price next to a crash.
    valid = (target.ge(0) & target.lt(classes)) | target.eq(ignore_index)
    if not valid.all():
        bad = target[~valid][0].item()
        raise ValueError(
            f"target holds class {bad}, but input has {classes} classes on dim {class_dim}: class numbers must lie "
            f"in [0, {classes}) or equal ignore_index={ignore_index}"
        )
    return f"index targets: {samples}, {_count(classes, 'class', 'classes')}{_positions(extra)}"


def _validate_bce(input: torch.Tensor, target: torch.Tensor, kind: str, num_classes: int | None) -> str:
    shape_in, shape_t = _shape(input), _shape(target)
    if not target.is_floating_point():
        raise TypeError(
            "binary_cross_entropy_with_logits needs float targets (1.0 for yes, 0.0 for no), "
            f"got {target.dtype}: use target.float()"
        )
    if kind == "multilabel" and input.ndim < 2:
        raise ValueError(
            f"multilabel input must be (N, K), one column per label, got {shape_in}: "
            "for one yes/no per sample use kind='binary'"
        )
    if num_classes is not None and (kind == "binary" or shape_in[1] != num_classes):
        raise ValueError(f"input {shape_in} does not have num_classes={num_classes} labels on dim 1 (kind={kind!r})")
    if shape_t != shape_in:
        if shape_in == (*shape_t, 1):
            fix = "use target.unsqueeze(-1) (or input.squeeze(-1))"
        elif shape_t == (*shape_in, 1):
            fix = "use target.squeeze(-1)"
        else:
            fix = "give one target per logit"
        raise ValueError(f"target must have the input's shape exactly, got input {shape_in} and target {shape_t}: {fix}")
    note = ""
    if target.numel() and (target.lt(0).any() or target.gt(1).any()):
        note = "; warning: some targets lie outside [0, 1]"
    if kind == "binary":
        return f"binary targets: {_count(input.numel(), 'independent yes/no logit')}{note}"
    labels = shape_in[1]
    extra = shape_in[2:]
    return f"multi-label targets: {_count(shape_in[0], 'sample')}, {_count(labels, 'label')} each{_positions(extra)}{note}"


def validate_classification_inputs(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    kind: str = "multiclass",
    num_classes: int | None = None,
    ignore_index: int = _DEFAULT_IGNORE_INDEX,
) -> str:
    """Check an ``(input, target)`` pair for a classification loss, and say how it will be read.

    ``kind="multiclass"`` checks it as ``F.cross_entropy(input, target, ignore_index=ignore_index)``
    reads it (logits with classes on dim 1; index or probability targets); ``"binary"`` and
    ``"multilabel"`` as ``F.binary_cross_entropy_with_logits(input, target)`` does (float targets of
    the input's shape; multi-label also asks for an ``(N, K, ...)`` input). Without ``num_classes`` it
    accepts exactly the shapes and dtypes PyTorch's loss accepts (see the tests), save two corners where
    torch versions disagree and it takes the strict side: on an empty batch it still refuses the dtypes
    a non-empty batch would fail on, and it refuses a ``(C,)`` input with a ``(1,)`` target. It checks the class numbers too, so an accepted pair never
    makes the loss raise.

    Args:
        input: the logits.
        target: the targets.
        kind: ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
        num_classes: if given, the number of classes (or labels) dim 1 must hold.
        ignore_index: the class number that marks positions to skip (index targets only; with
            probability targets, like PyTorch, any negative value is accepted and ignores nothing).

    Returns:
        One line describing the interpretation, e.g. ``'index targets: 2 samples, 10 classes, 5 positions
        per sample'``; it ends with a warning when PyTorch would accept targets that are not
        distributions (or binary targets outside [0, 1]).

    Raises:
        TypeError: if an argument is not a tensor, the input is not floating point, or the target has a
            dtype the loss refuses.
        ValueError: if ``kind`` is unknown, the shapes do not fit, a class number is out of range or
            ``num_classes`` does not match.

    Examples:
        >>> validate_classification_inputs(torch.randn(2, 3, 4, 5), torch.zeros(2, 4, 5, dtype=torch.long))
        'index targets: 2 samples, 3 classes, 4x5 positions per sample'
        >>> validate_classification_inputs(torch.randn(6), torch.ones(6), kind="binary")
        'binary targets: 6 independent yes/no logits'
        >>> validate_classification_inputs(torch.randn(4, 1), torch.ones(4), kind="binary")
        Traceback (most recent call last):
        ...
        ValueError: target must have the input's shape exactly, got input (4, 1) and target (4,): use target.unsqueeze(-1) (or input.squeeze(-1))
    """
    _require_tensor(input, "input")
    _require_tensor(target, "target")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
    if not input.is_floating_point():
        raise TypeError(f"input must hold floating-point logits, got {input.dtype}: use input.float()")
    if kind == "multiclass":
        if input.ndim == 0:
            raise ValueError("input is a single number, but cross_entropy needs classes: shape (C,), (N, C) or (N, C, ...)")
        return _validate_multiclass(input, target, ignore_index, num_classes)
    if ignore_index != _DEFAULT_IGNORE_INDEX:
        raise ValueError(f"binary_cross_entropy_with_logits has no ignore_index (got {ignore_index}): mask the loss instead")
    return _validate_bce(input, target, kind, num_classes)


def plot_class_dimension(*, num_classes: int = 4, length: int = 6, seed: int = 0) -> Figure:
    """Draw one sequence's class probabilities as ``(C, L)``, as cross_entropy reads them, and as ``(L, C)``.

    Args:
        num_classes: the classes ``C``.
        length: the positions ``L``.
        seed: seed for the random logits and targets.

    Returns:
        A figure with two heatmaps of the same probabilities, the target of each position outlined.

    Raises:
        ValueError: if ``num_classes`` or ``length`` is below 1.

    Examples:
        >>> fig = plot_class_dimension(num_classes=2, length=3)
        >>> len(fig.axes)
        2
    """
    if num_classes < 1 or length < 1:
        raise ValueError(f"num_classes and length must be at least 1, got {num_classes} and {length}")
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Rectangle

    generator = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(1, num_classes, length, generator=generator)  # (N, C, L) with N = 1
    targets = torch.randint(0, num_classes, (1, length), generator=generator)  # (N, L)
    probs = logits.softmax(dim=1)[0]  # (C, L): every column sums to 1
    cmap = LinearSegmentedColormap.from_list("probability", ["white", PALETTE[0]])
    # About 0.6 inches per cell, plus room for the titles and labels.
    fig, axes = new_figure(1, 2, width=0.6 * (length + num_classes) + 2.8, height=0.6 * max(length, num_classes) + 1.8)
    # The same numbers twice: as cross_entropy wants them, and transposed as a language model emits them.
    panels = [
        (probs, "cross_entropy reads (N, C, L)\nclasses down dim 1, one column per position", "position", "class"),
        (probs.T, "a language model emits (N, L, C)\ntranspose(1, 2) before the loss", "class", "position"),
    ]
    for ax, (values, title, xlabel, ylabel) in zip(axes, panels, strict=True):
        ax.grid(False)
        ax.imshow(values.numpy(), cmap=cmap, vmin=0.0, vmax=1.0)
        for r, row in enumerate(values.tolist()):
            for c, value in enumerate(row):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=8)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=range(values.shape[1]), yticks=range(values.shape[0]))
        ax.title.set_fontsize(10)
    # Outline the target cell of every position: (class, position) on the left, (position, class) on the right.
    for position, cls in enumerate(targets[0].tolist()):
        for ax, (x, y) in zip(axes, [(position, cls), (cls, position)], strict=True):
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor=PALETTE[2], linewidth=2.5))
    axes[0].set_xticks(range(length), [f"{p}\ny={t}" for p, t in enumerate(targets[0].tolist())])
    return fig


def plot_target_kinds(*, num_classes: int = 5, target: int = 2, label_smoothing: float = 0.2) -> Figure:
    """Draw one index target, the one-hot distribution it stands for, and its label-smoothed version.

    Args:
        num_classes: the classes ``C``.
        target: the class number.
        label_smoothing: the ``ε`` of the smoothed panel.

    Returns:
        A figure with three panels.

    Raises:
        ValueError: if ``target`` is not in ``[0, num_classes)`` or ``label_smoothing`` not in [0, 1].

    Examples:
        >>> fig = plot_target_kinds(num_classes=3, target=0)
        >>> len(fig.axes)
        3
    """
    if not 0 <= target < num_classes:
        raise ValueError(f"target must lie in [0, {num_classes}), got {target}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    one_hot = F.one_hot(torch.tensor(target), num_classes).float()  # (C,)
    smoothed = to_probability_targets(torch.tensor(target), num_classes, label_smoothing)  # (C,)
    fig, axes = new_figure(1, 3, width=9.0, height=3.0)
    axes[0].grid(False)
    axes[0].axis("off")
    axes[0].text(0.5, 0.55, str(target), ha="center", va="center", fontsize=48, color=PALETTE[0])
    axes[0].text(0.5, 0.12, f"torch.tensor({target}): one int64 per position", ha="center", fontsize=9)
    axes[0].set_title("index target", fontsize=10)
    bars = [
        (axes[1], one_hot, PALETTE[1], "one-hot probability target"),
        (axes[2], smoothed, PALETTE[4], f"label_smoothing = {label_smoothing:g}"),
    ]
    for ax, values, colour, title in bars:
        ax.bar(range(num_classes), values.numpy(), color=colour)
        for c, value in enumerate(values.tolist()):
            ax.text(c, value + 0.02, f"{value:.2f}", ha="center", fontsize=8)
        ax.set(title=title, xlabel="class", ylim=(0.0, 1.15), xticks=range(num_classes))
        ax.title.set_fontsize(10)
    axes[1].set_ylabel("probability")
    return fig


def _check_sequence_shapes(input: torch.Tensor, target: torch.Tensor) -> None:
    _require_tensor(input, "input")
    _require_tensor(target, "target")
    if input.ndim != 3 or _shape(target) != _shape(input)[:2]:
        raise ValueError(
            f"need input (N, L, C) and target (N, L), got {_shape(input)} and {_shape(target)}"
        )


def sequence_cross_entropy(input: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Challenge solution: mean cross-entropy of ``(N, L, C)`` logits against ``(N, L)`` index targets.

    Args:
        input: logits, classes on the last dim, shape ``(N, L, C)``.
        target: ``int64`` class numbers, shape ``(N, L)``.
        ignore_index: positions whose target equals it are left out of the mean.

    Returns:
        A scalar, equal to ``F.cross_entropy(input.transpose(1, 2), target, ignore_index=ignore_index)``.

    Raises:
        ValueError: if the shapes do not fit.

    Examples:
        >>> logits, target = torch.randn(2, 3, 3), torch.tensor([[0, 1, 2], [2, 2, -100]])
        >>> torch.allclose(sequence_cross_entropy(logits, target), F.cross_entropy(logits.transpose(1, 2), target))
        True
    """
    _check_sequence_shapes(input, target)
    num_classes = input.shape[-1]
    # Every position becomes a sample of its own: (N, L, C) -> (N*L, C) and (N, L) -> (N*L,).
    # reshape, not view: the caller's logits may be a non-contiguous slice.
    return F.cross_entropy(input.reshape(-1, num_classes), target.reshape(-1), ignore_index=ignore_index)


def check_sequence_cross_entropy(candidate: Callable[..., torch.Tensor]) -> None:
    """Check an attempt at ``sequence_cross_entropy``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_sequence_cross_entropy(sequence_cross_entropy)
    """
    generator = torch.Generator().manual_seed(7)
    # L == C first: the case where forgetting to move the classes raises nothing and is simply wrong.
    for n, length, classes, ignored in [(2, 4, 4, False), (3, 5, 7, False), (2, 6, 3, True), (1, 1, 2, False)]:
        logits = torch.randn(n, length, classes, generator=generator, dtype=torch.float64)
        target = torch.randint(0, classes, (n, length), generator=generator)
        if ignored:
            target[0, :2] = -100
        where = f"input (N, L, C) = {(n, length, classes)}" + (" with ignored positions" if ignored else "")
        mine, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        got = candidate(mine, target)
        expected = F.cross_entropy(theirs.transpose(1, 2), target)
        assert isinstance(got, torch.Tensor) and got.shape == (), f"{where}: expected a scalar tensor, got {got!r}"
        hint = " (is the class dim moved to dim 1, or are positions flattened into the batch?)"
        if ignored:
            hint = " (are positions with target -100 left out of the mean?)"
        assert torch.allclose(got, expected), f"{where}: expected {expected.item():.6f}, got {got.item():.6f}{hint}"
        got.backward()
        expected.backward()
        assert mine.grad is not None, f"{where}: the loss does not depend on input through autograd"
        assert torch.allclose(mine.grad, theirs.grad), f"{where}: the gradient differs from PyTorch's"
    custom = torch.tensor([[0, 3, 1]])
    got = candidate(torch.zeros(1, 3, 2, dtype=torch.float64), custom, ignore_index=3)
    assert torch.allclose(got, torch.tensor(2.0, dtype=torch.float64).log()), "ignore_index=3 was not honoured"


def to_probability_targets(target: torch.Tensor, num_classes: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """Challenge solution: index targets ``(N, d1, ...)`` as probability targets ``(N, C, d1, ...)``.

    Args:
        target: ``int64`` class numbers, shape ``()`` or ``(N, d1, ..., dk)``.
        num_classes: the classes ``C``.
        label_smoothing: the share ``ε`` of probability spread evenly over all classes.

    Returns:
        A ``float32`` tensor with the classes on dim 1 (shape ``(C,)`` for a 0-d target): ``1 - ε + ε/C``
        at the true class and ``ε/C`` elsewhere.

    Raises:
        TypeError: if ``target`` is not an integer tensor.
        ValueError: if a class number is outside ``[0, num_classes)`` or ``label_smoothing`` outside [0, 1].

    Examples:
        >>> to_probability_targets(torch.tensor([[2, 0]]), 3)  # (N, L) = (1, 2) -> (N, C, L) = (1, 3, 2)
        tensor([[[0., 1.],
                 [0., 0.],
                 [1., 0.]]])
    """
    _check_index_targets(target, num_classes, label_smoothing)
    one_hot = F.one_hot(target.long(), num_classes).float()  # (*target.shape, C): classes last
    # The classes belong on dim 1, where cross_entropy reads them; a 0-d target gives (C,) already.
    if target.ndim >= 1:
        one_hot = one_hot.movedim(-1, 1)  # (N, C, d1, ..., dk)
    return one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes


def _check_index_targets(target: object, num_classes: object, label_smoothing: object) -> None:
    _require_tensor(target, "target")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class numbers, got {target.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"target holds class numbers outside [0, {num_classes}): {target.unique().tolist()}")


def check_to_probability_targets(candidate: Callable[..., torch.Tensor]) -> None:
    """Check an attempt at ``to_probability_targets``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_to_probability_targets(to_probability_targets)
    """
    generator = torch.Generator().manual_seed(11)
    cases = [((4,), 3, 0.0), ((4,), 3, 0.1), ((2, 5), 4, 0.2), ((2, 3), 3, 0.0), ((2, 2, 3), 5, 0.3), ((), 4, 0.1), ((0,), 3, 0.1)]
    for shape, classes, eps in cases:
        target = torch.randint(0, classes, shape, generator=generator)
        where = f"target of shape {shape}, num_classes={classes}, label_smoothing={eps}"
        got = candidate(target, classes, eps)
        expected_shape = (classes,) if not shape else (shape[0], classes, *shape[1:])
        assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.shape == expected_shape, (
            f"{where}: expected shape {expected_shape} (classes on dim 1), got {tuple(got.shape)}"
        )
        assert got.dtype == torch.float32, f"{where}: expected torch.float32, got {got.dtype}"
        class_dim = 0 if not shape else 1
        assert torch.allclose(got.sum(class_dim), torch.ones(())), f"{where}: the targets do not sum to 1 over the classes"
        logits = torch.randn(expected_shape, generator=generator)
        torch.testing.assert_close(
            F.cross_entropy(logits, got),
            F.cross_entropy(logits, target, label_smoothing=eps),
            equal_nan=True,  # an empty batch has a mean of nothing: NaN for both
            msg=lambda m, where=where, eps=eps: f"{where}: the loss differs from label_smoothing={eps}. {m}",
        )
    for bad in (torch.tensor([0, 3]), torch.tensor([-1, 0])):
        try:
            candidate(bad, 3, 0.0)
        except ValueError:
            continue
        raise AssertionError(f"class numbers {bad.tolist()} with num_classes=3 must raise ValueError")
