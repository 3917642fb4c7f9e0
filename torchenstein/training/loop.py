r"""
# The Training Loop: Five Lines That Bring the Monster to Life

!!! torchenstein "The Professor speaks"
    For two whole parts we have built organs: tensors, gradients, layers, losses. Tonight we throw the
    switch! Five lines, repeated a few thousand times, turn a heap of random numbers into a creature that
    knows a spiral when it sees one. Every one of those five lines has a reason to be exactly where it
    is, and Dr. Hammer has moved, forgotten or doubled each of them at least once. We write the loop by
    hand, check it against PyTorch's own optimiser to the last bit, and learn the two sanity checks that
    catch most bugs before the first epoch ends.

**You will learn to**

- write one training step (forward, loss, `zero_grad(set_to_none=True)`, backward, step) and say why
  each line sits where it does;
- take a step by hand, `p.add_(p.grad, alpha=-lr)`, and prove it equal, bit for bit, to
  `torch.optim.SGD`;
- evaluate honestly on held-out data (eval mode, no graph, every mode restored) and say what
  `torch.no_grad` and `torch.inference_mode` forbid afterwards;
- run the two checks that come before any long run: the initial loss is about $\ln C$, and one batch can
  be learned by heart;
- run a whole fit with a progress bar, draw its loss curves, and reproduce it bit for bit from a seed;
- dodge two of Dr. Hammer's favourite training-loop bugs.

## A monster to train: the spiral

A **data set** is a collection of **samples**, each an input with its **target**, the answer we want.
Ours is drawn by [`make_spiral`][torchenstein.training.loop.make_spiral]: `num_classes` arms of a spiral in
the plane, each arm one **class** (a label from $0$ to $C - 1$), with some noise on the angle so the arms
blur into each other. A seeded generator of its own draws the noise, so the same seed gives the same
points on every machine, and the global random state is left alone. We keep two draws: one to **train**
on, and a **validation** set with another seed, which the model never learns from and which tells us how
well it does on points it has not seen (a *held-out* set).

```pycon
>>> import math
>>> import torch
>>> from torchenstein.training.loop import make_spiral
>>> x_train, y_train = make_spiral(seed=0)
>>> x_val, y_val = make_spiral(seed=1)
>>> {"x": (tuple(x_train.shape), x_train.dtype), "y": (tuple(y_train.shape), y_train.dtype)}
{'x': ((300, 2), torch.float32), 'y': ((300,), torch.int64)}
>>> {"per class": torch.bincount(y_train).tolist(), "same seed, same points": torch.equal(x_train, make_spiral(seed=0)[0])}
{'per class': [100, 100, 100], 'same seed, same points': True}

```

The model, [`spiral_classifier`][torchenstein.training.loop.spiral_classifier], is a small stack of the
course's own [`Linear`][torchenstein.nn.linear.Linear] layers and [`ReLU`][torchenstein.nn.activations.ReLU]s
in a [`Sequential`][torchenstein.nn.containers.Sequential]. For each point it outputs $C$ **logits**: one
real number per class, unnormalised scores that the softmax turns into probabilities (see
[Loss potions](../../nn/losses/index.md)). The loss is the course's
[`cross_entropy`][torchenstein.nn.losses.cross_entropy].

Nobody trains on all samples at once. A **batch** is a small group of samples processed together; one
**step** updates the parameters once, from one batch; one **epoch** is one pass over the whole training
set. [`minibatches`][torchenstein.training.loop.minibatches] cuts the set into batches, in a fresh random
order each time it is called with `shuffle=True` (a ragged last batch keeps the leftovers):

```pycon
>>> from torchenstein.training.loop import minibatches, spiral_classifier
>>> g = torch.Generator().manual_seed(0)
>>> batches = minibatches(x_train, y_train, 32, shuffle=True, generator=g)
>>> {"batches": len(batches), "sizes of the last two": [len(target) for _, target in batches][-2:]}
{'batches': 10, 'sizes of the last two': [32, 12]}
>>> _ = torch.manual_seed(0)
>>> model = spiral_classifier()
>>> model(batches[0][0]).shape                      # (B, C): one logit per class
torch.Size([32, 3])

```

## One step, five lines

[`train_step`][torchenstein.training.loop.train_step] is the heart of every training loop in this course:

```python
output = model(input)                   # 1. forward: autograd records the graph
loss = loss_fn(output, target)          # 2. loss: one scalar for the batch
optimizer.zero_grad(set_to_none=True)   # 3. clear the last step's gradients
loss.backward()                         # 4. backward: fill p.grad, free the graph
optimizer.step()                        # 5. step: move every parameter against its gradient
```

The **forward** pass runs the model and, because the parameters require gradients, autograd records every
operation on the way (the graph of [Autograd](../../tensors/autograd/index.md)). The **loss** reduces the
batch to one number. **Backward** walks the graph from the loss to the parameters and *adds* each
parameter's gradient into its `.grad`; that is why the old gradients must go first, in line 3. Adding is
a feature when you want it ([Gradient accumulation](../../tensors/accumulation/index.md) is built on it)
and a bug when you do not. The **optimiser** is the object that owns the parameters and knows how to
update them; its `step` reads each `.grad` and moves the parameter. The **learning rate** $\gamma$ is how far
it moves: plain stochastic gradient descent (SGD) takes $\theta \leftarrow \theta - \gamma\, \nabla_\theta L$.

Why `set_to_none=True` (the default since PyTorch 2.0)? Writing zeros costs a pass over memory, and then
backward adds to the zeros; with `None`, the old tensors are freed and backward simply writes the fresh
gradient. It also changes meaning: an optimiser *skips* a parameter whose `.grad` is `None`, while a
zero gradient still feeds weight decay and momentum (the accumulation lesson shows both).

```pycon
>>> from torchenstein.nn.losses import cross_entropy
>>> from torchenstein.training.loop import train_step
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> before = [p.detach().clone() for p in model.parameters()]
>>> loss = train_step(model, batches[0], cross_entropy, optimizer)
>>> {"type": type(loss).__name__, "loss": round(loss, 2),
...  "every parameter moved": all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))}
{'type': 'float', 'loss': 1.13, 'every parameter moved': True}

```

`train_step` returns `loss.item()`, a Python float: nothing the caller keeps can hold the graph alive
(Dr. Hammer will show what happens otherwise). On a GPU, `.item()` also makes the CPU wait for the step to
finish; a loop that must never wait keeps `loss.detach()` tensors and converts them once per epoch.

## Stepping by hand, then against `torch.optim.SGD`

What does `optimizer.step()` do for plain SGD? Nothing you could not write yourself.
[`manual_sgd_step`][torchenstein.training.loop.manual_sgd_step] updates each parameter in place with
`p.add_(p.grad, alpha=-lr)`, inside `torch.no_grad()`, skipping parameters whose `.grad` is `None`. Two
twin models, one stepped by hand and one by PyTorch, stay bitwise equal (the tests add float64, float16
and bfloat16, a 0-d and a non-contiguous parameter, and learning rates from 0 to 0.7):

```pycon
>>> from torchenstein.training.loop import manual_sgd_step
>>> _ = torch.manual_seed(0)
>>> ours, theirs = spiral_classifier(), spiral_classifier()
>>> _ = theirs.load_state_dict(ours.state_dict())
>>> sgd = torch.optim.SGD(theirs.parameters(), lr=0.1)
>>> for input, target in batches[:3]:
...     for net in (ours, theirs):
...         net.zero_grad(set_to_none=True)
...         cross_entropy(net(input), target).backward()
...     manual_sgd_step(ours.parameters(), lr=0.1)
...     sgd.step()
>>> print(f"bitwise equal after 3 steps: {all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))}")
bitwise equal after 3 steps: True

```

Bitwise, because it is the very call PyTorch's SGD makes on the CPU: `add_` with `alpha` computes
$p + \alpha g$ in one kernel (on a GPU, PyTorch batches the same update over all parameters into one
`foreach` kernel). The textbook line `p -= lr * p.grad` rounds twice (once for `lr * p.grad`, once
for the subtraction), so it agrees only to within a rounding, and may differ in the last bit. And the
`no_grad` is not decoration: autograd refuses to change a leaf that requires a gradient in place, since
the graph it is recording would lose the value it started from.

```pycon
>>> p = torch.nn.Parameter(torch.ones(2))
>>> p.grad = torch.full((2,), 0.5)
>>> p -= 0.1 * p.grad
Traceback (most recent call last):
...
RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.
>>> with torch.no_grad():
...     p -= 0.1 * p.grad
>>> p.detach()
tensor([0.9500, 0.9500])

```

## Evaluation: eval mode, no graph, every mode restored

To measure a model we run it on the validation set with the two switches of
[Train vs eval](../../nn/modes/index.md) thrown: `eval()`, so dropout and batch normalisation behave as
they will at inference, and `torch.no_grad()`, so autograd records nothing; afterwards every submodule
goes back to its own mode. [`evaluate`][torchenstein.training.loop.evaluate] does all three with that
lesson's [`evaluating`][torchenstein.nn.modes.evaluating] context manager, so it cannot fall into the
two traps that lesson shows (validating with dropout on, and never switching back). It returns the mean
loss and, for class-index targets, the **accuracy** (the share of samples whose largest logit is the true
class). Each batch's mean loss is weighted by its size, so a ragged last batch counts for what it holds,
and the result is the loss of the whole set at once:

```pycon
>>> from torchenstein.training.loop import evaluate
>>> val_batches = minibatches(x_val, y_val, 64)
>>> metrics = evaluate(model, val_batches, cross_entropy)
>>> with torch.no_grad():
...     whole = cross_entropy(model(x_val), y_val).item()
>>> {"metrics": sorted(metrics), "back in training mode": model.training,
...  "equals the whole set's loss": math.isclose(metrics["loss"], whole, rel_tol=1e-5)}
{'metrics': ['accuracy', 'loss'], 'back in training mode': True, "equals the whole set's loss": True}

```

### `no_grad` or `inference_mode`: what each forbids afterwards

[Train vs eval](../../nn/modes/index.md) offered `torch.inference_mode()` as a stricter, slightly faster
`no_grad`. Inside their blocks the two do the same; they differ in what you may do with the outputs
*afterwards*. A tensor made under `no_grad` is an ordinary tensor that does not require a gradient: you
may change it in place, or feed it as a constant into a computation that autograd records. A tensor made
under `inference_mode` is an **inference tensor**, without the version counter and autograd metadata
that autograd needs, and outside the mode it may neither be changed in place nor saved for a backward
pass; `clone()` makes an ordinary copy.

```pycon
>>> layer = torch.nn.Linear(3, 3)
>>> with torch.no_grad():
...     plain = layer(torch.ones(1, 3))
>>> with torch.inference_mode():
...     frozen = layer(torch.ones(1, 3))
>>> {"plain is an inference tensor": torch.is_inference(plain), "frozen is": torch.is_inference(frozen)}
{'plain is an inference tensor': False, 'frozen is': True}
>>> _ = plain.add_(1.0)                              # an ordinary tensor: fine
>>> layer(plain).sum().backward()                    # used as a constant input: fine
>>> frozen.add_(1.0)
Traceback (most recent call last):
...
RuntimeError: Inplace update to inference tensor outside InferenceMode is not allowed...
>>> layer(frozen).sum().backward()
Traceback (most recent call last):
...
RuntimeError: Inference tensors cannot be saved for backward...
>>> layer(frozen.clone()).sum().backward()           # the way out: an ordinary copy

```

`evaluate` uses `no_grad`: a module that builds a cache during evaluation (a table computed on first
use, say) would otherwise cache an inference tensor, and the next training step could not save it for
its backward pass. Keep `inference_mode` for code that only ever predicts.

## Two sanity checks before a long run

### The initial loss is about $\ln C$

A freshly initialised network outputs small logits of nearly equal size, so its softmax is nearly
uniform, $p_c \approx 1/C$, and the cross-entropy of every sample is about $-\ln(1/C) = \ln C$. Measure it
before training: a loss far from $\ln C$ means the last layer is initialised too large (the network is
confidently wrong from the start and spends its first epochs unlearning it), or the loss is given the
wrong thing. Our fresh classifier sits where it should; the same network with its last layer scaled up
twenty times does not:

```pycon
>>> _ = torch.manual_seed(0)
>>> fresh = spiral_classifier()
>>> print(f"ln 3: {math.log(3):.2f}   fresh: {evaluate(fresh, val_batches, cross_entropy)['loss']:.2f}")
ln 3: 1.10   fresh: 1.12
>>> with torch.no_grad():
...     _ = fresh[-1].weight.mul_(20.0)
>>> print(f"last layer x20: {evaluate(fresh, val_batches, cross_entropy)['loss']:.1f}")
last layer x20: 2.7

```

### Overfit one batch first

Before training on everything, train on one batch only, for a hundred steps or so. A working model,
loss and optimiser learn 32 points by heart: the loss goes to nearly zero and the accuracy on that batch
to one. If it cannot, no amount of data will help: the bug is in the plumbing (a detached tensor, the
wrong loss input, a learning rate of zero, parameters the optimiser was never given).
[`overfit_one_batch`][torchenstein.training.loop.overfit_one_batch] runs the check and returns the losses:

```pycon
>>> from torchenstein.training.loop import overfit_one_batch
>>> _ = torch.manual_seed(0)
>>> model = spiral_classifier()
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
>>> losses = overfit_one_batch(model, batches[0], cross_entropy, optimizer, steps=100)
>>> {"first loss": round(losses[0], 2), "last loss below 0.01": losses[-1] < 0.01,
...  "accuracy on the batch": evaluate(model, [batches[0]], cross_entropy)["accuracy"]}
{'first loss': 1.13, 'last loss below 0.01': True, 'accuracy on the batch': 1.0}

```

## The whole loop: `fit`

[`fit`][torchenstein.training.loop.fit] runs `epochs` epochs of `train_step` over the training batches
(a list, a `DataLoader`, or a function of the epoch number that returns the batches, which is how we
reshuffle every epoch), evaluates after each epoch when it is given validation batches, and shows its
progress with the course's bar, [`progress`][torchenstein.lab.progress]. It returns the **history**: one
list per measurement, one entry per epoch. The training loss of an epoch is the mean of its step losses,
each measured *before* its own update, so it describes the model as it was during the epoch, about half an
epoch behind the validation loss, which is measured at the end.

```pycon
>>> from torchenstein.training.loop import fit
>>> def shuffled(seed):
...     g = torch.Generator().manual_seed(seed)
...     return lambda epoch: minibatches(x_train, y_train, 32, shuffle=True, generator=g)
>>> _ = torch.manual_seed(0)
>>> model = spiral_classifier()
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> history = fit(model, optimizer, shuffled(0), cross_entropy, epochs=15, val_batches=val_batches,
...               progress_bar=False)
>>> {name: len(values) for name, values in history.items()}
{'train_loss': 15, 'val_loss': 15, 'val_accuracy': 15}
>>> {"validation loss fell": history["val_loss"][-1] < history["val_loss"][0],
...  "final accuracy above 0.9": history["val_accuracy"][-1] > 0.9}
{'validation loss fell': True, 'final accuracy above 0.9': True}

```

`fit` trains the model in the mode it finds it, and refuses one left in eval mode (by a validation that
forgot `train()`, the second trap of [Train vs eval](../../nn/modes/index.md)): dropout would be silently
off for the whole run.

```pycon
>>> fit(model.eval(), optimizer, shuffled(0), cross_entropy, epochs=1)
Traceback (most recent call last):
...
ValueError: model is in eval mode (model.training is False): call model.train() before fit
>>> _ = model.train()

```

A **loss curve** draws those lists against the epoch. [`plot_loss_curves`][torchenstein.training.loop.plot_loss_curves]
trains the same model and draws both curves beside the regions the trained model assigns to each class:

![Left: training and validation loss over 20 epochs, the validation loss starting at epoch 0 on the dashed line at ln 3 (the initial-loss check), both falling towards zero with a few bumps. Right: the three arms of the validation spiral over the coloured regions where the trained classifier predicts each class](plot_loss_curves.svg)

### Reproducible to the last bit

Everything random in this loop comes from two places: the global generator (the initial weights, seeded
with `torch.manual_seed`) and the shuffling generator we pass in. Seed both and the whole run repeats,
every loss and every weight:

```pycon
>>> def run(seed):
...     _ = torch.manual_seed(seed)
...     net = spiral_classifier()
...     opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
...     return fit(net, opt, shuffled(seed), cross_entropy, epochs=2, progress_bar=False), net
>>> (history_a, net_a), (history_b, net_b) = run(0), run(0)
>>> {"same history": history_a == history_b,
...  "same weights": all(torch.equal(a, b) for a, b in zip(net_a.parameters(), net_b.parameters()))}
{'same history': True, 'same weights': True}

```

That promise holds on one machine, with one PyTorch and the same number of threads. PyTorch does not
promise the same bits across releases, processors or devices, and on a GPU some kernels are
nondeterministic unless you ask for `torch.use_deterministic_algorithms(True)`.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `zero_grad` after `backward`"
    Dr. Hammer tidies the loop: he moves `optimizer.zero_grad()` up, right after `loss.backward()`, "to
    free the gradients as early as possible". Now `step` finds every `.grad` set to `None` and skips every
    parameter: no error, no warning, and a loss that never moves. The overfit-one-batch check above
    catches it at once (leaving `zero_grad` out altogether is the opposite bug: the gradients pile up, as
    the traps of [Gradient accumulation](../../tensors/accumulation/index.md) show).

    ```pycon
    >>> def hammer_step(model, batch, loss_fn, optimizer):
    ...     loss = loss_fn(model(batch[0]), batch[1])
    ...     loss.backward()
    ...     optimizer.zero_grad(set_to_none=True)            # Hammer: one line too early
    ...     optimizer.step()
    ...     return loss.item()
    >>> _ = torch.manual_seed(0)
    >>> net = spiral_classifier()
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    >>> hammer = [hammer_step(net, batches[0], cross_entropy, opt) for _ in range(20)]
    >>> {"first loss": round(hammer[0], 2), "last loss": round(hammer[-1], 2), "parameters with state": len(opt.state)}
    {'first loss': 1.13, 'last loss': 1.13, 'parameters with state': 0}

    ```

!!! hammer "Dr. Hammer's trap: summing the loss tensor"
    To report the epoch's loss, Dr. Hammer writes `total += loss`. The loss is a tensor with a graph, so
    `total` becomes one too: each step's graph is chained onto the last, and all of them stay alive until
    the epoch ends. In a validation loop without `no_grad` the saved activations of every batch stay
    with them. [`graph_size`][torchenstein.training.loop.graph_size] counts the autograd nodes behind a
    tensor; Hammer's grows with every step. `loss.item()` (or `loss.detach()`) keeps the number and drops
    the graph:

    ```pycon
    >>> from torchenstein.training.loop import graph_size
    >>> _ = torch.manual_seed(0)
    >>> net = spiral_classifier()
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> hammer_total, honest_total, sizes = 0.0, 0.0, []
    >>> for input, target in batches[:4]:
    ...     loss = cross_entropy(net(input), target)
    ...     opt.zero_grad(set_to_none=True)
    ...     loss.backward()
    ...     opt.step()
    ...     hammer_total += loss                                 # Hammer: a tensor, graph and all
    ...     honest_total += loss.item()                          # a float
    ...     sizes.append(graph_size(hammer_total))
    >>> {"graph grows by the same amount every step": sizes[1] - sizes[0] == sizes[2] - sizes[1] == sizes[3] - sizes[2] > 0,
    ...  "Hammer's total": type(hammer_total).__name__, "honest total": type(honest_total).__name__}
    {'graph grows by the same amount every step': True, "Hammer's total": 'Tensor', 'honest total': 'float'}

    ```

## Challenges

**1. Accuracy per class.** Write `per_class_accuracy(model, batches, num_classes)` that returns a float32
tensor of shape `(num_classes,)`: for each class $c$, the share of samples whose target is $c$ that the
model classifies as $c$ (the largest logit), or `nan` for a class with no samples. The model must run in
eval mode with autograd off, and every submodule must end in its own original mode. An average accuracy
of 90% can hide a class the model never gets right.

**2. Keep the best.** Write `fit_keep_best(model, optimizer, train_batches, val_batches, loss_fn, epochs)`
that trains like `fit` and returns `(best_state, val_losses)`: the validation loss after each epoch, and
a copy of the model's `state_dict` from the epoch with the lowest one (the first, on a tie). Mind the
copy: `model.state_dict()` returns the model's own tensors, which the next step changes under your feet.

Check an attempt with `check_per_class_accuracy(my_function)` or `check_fit_keep_best(my_function)`, or put
your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's
answers pass:

```pycon
>>> from torchenstein.training.loop import (
...     check_fit_keep_best, check_per_class_accuracy, fit_keep_best, per_class_accuracy)
>>> check_per_class_accuracy(per_class_accuracy)          # silence: every case passed
>>> check_fit_keep_best(fit_keep_best)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, lab_size, new_figure, progress
from torchenstein.nn.activations import ReLU
from torchenstein.nn.containers import Sequential
from torchenstein.nn.dropout import Dropout
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import cross_entropy
from torchenstein.nn.modes import evaluating

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Batch = tuple[Tensor, Tensor]
"""One batch: ``(input, target)``."""

LossFn = Callable[[Tensor, Tensor], Tensor]
"""A loss: ``loss_fn(output, target)`` returns the batch's mean loss as a 0-d tensor."""


def make_spiral(
    n_per_class: int = 100, num_classes: int = 3, *, noise: float = 0.2, seed: int = 0
) -> tuple[Tensor, Tensor]:
    r"""Draw a spiral classification set: ``num_classes`` arms in the plane, one class per arm.

    Sample $i$ of arm $k$ sits at radius $r_i = i / n$ ($i = 1, \dots, n$) and angle
    $4 r_i + 2\pi k / C + \text{noise} \cdot \varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$.

    Args:
        n_per_class: samples per class, at least 1.
        num_classes: the number of arms $C$, at least 2.
        noise: the standard deviation of the angle's noise, in radians, at least 0.
        seed: seed of a private generator; the global one is left alone.

    Returns:
        ``(x, y)``: float32 points of shape ``(n_per_class * num_classes, 2)`` and int64 labels of shape
        ``(n_per_class * num_classes,)``, class by class.

    Raises:
        TypeError: if a count or the seed is not an int, or ``noise`` is not a number.
        ValueError: if a count is too small, or ``noise`` is negative or not finite.

    Examples:
        >>> x, y = make_spiral(4, num_classes=2)
        >>> {"x": tuple(x.shape), "y": y.tolist()}
        {'x': (8, 2), 'y': [0, 0, 0, 0, 1, 1, 1, 1]}
        >>> make_spiral(num_classes=1)
        Traceback (most recent call last):
        ...
        ValueError: num_classes must be at least 2, got 1
    """
    _check_int("n_per_class", n_per_class, minimum=1)
    _check_int("num_classes", num_classes, minimum=2)
    _check_int("seed", seed, minimum=0)
    _check_number("noise", noise)
    generator = torch.Generator().manual_seed(seed)
    # The radius starts one step out from the centre: at radius 0 every arm would share one point, with
    # C different labels, and no model could learn it.
    radius = torch.linspace(0.0, 1.0, n_per_class + 1)[1:].repeat(num_classes)  # (N,)
    label = torch.arange(num_classes).repeat_interleave(n_per_class)  # (N,)
    angle = 4.0 * radius + 2 * math.pi * label / num_classes
    angle = angle + noise * torch.randn(angle.shape, generator=generator)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)  # (N, 2)
    return x, label


def minibatches(
    x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
) -> list[Batch]:
    """Cut ``(x, y)`` into batches of ``batch_size`` samples; the last batch keeps the leftovers.

    Args:
        x: inputs, one sample per row of the first dimension.
        y: targets, as many as ``x`` has samples.
        batch_size: samples per batch, at least 1.
        shuffle: draw a fresh random order of the samples first.
        generator: the generator that draws the order (``None``: the global one).

    Returns:
        A list of ``(input, target)`` pairs.

    Raises:
        TypeError: if ``x`` or ``y`` is not a tensor, or ``batch_size`` is not an int.
        ValueError: if ``x`` and ``y`` hold different numbers of samples, or ``batch_size`` is below 1.

    Examples:
        >>> x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
        >>> [target.tolist() for _, target in minibatches(x, y, 4)]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
        >>> minibatches(x, y[:9], 4)
        Traceback (most recent call last):
        ...
        ValueError: x and y must hold the same number of samples, got 10 and 9
    """
    _check_data(x, y)
    _check_int("batch_size", batch_size, minimum=1)
    n = x.shape[0]
    # One permutation per call: calling again with the same generator gives the next epoch's order.
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return [(x[idx], y[idx]) for idx in order.split(batch_size)]


def spiral_classifier(
    hidden_features: int = 64, num_classes: int = 3, *, in_features: int = 2, dropout: float = 0.0
) -> Sequential:
    """The lesson's model: two hidden layers of the course's `Linear` and `ReLU`, then one logit per class.

    ``Linear -> ReLU -> Linear -> ReLU -> Linear``, with a `Dropout` after each ``ReLU`` when
    ``dropout > 0``. The weights are drawn from the global generator, as ``nn.Linear`` draws them.

    Args:
        hidden_features: width of both hidden layers.
        num_classes: the number of logits per sample.
        in_features: width of each input.
        dropout: the dropout probability after each hidden layer (0: no dropout layers at all).

    Returns:
        A `Sequential` mapping ``(B, in_features)`` to ``(B, num_classes)``.

    Examples:
        >>> spiral_classifier(8)(torch.zeros(5, 2)).shape
        torch.Size([5, 3])
        >>> {"layers": len(spiral_classifier(8)), "with dropout": len(spiral_classifier(8, dropout=0.5))}
        {'layers': 5, 'with dropout': 7}
    """
    layers: list[nn.Module] = [Linear(in_features, hidden_features), ReLU()]
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers += [Linear(hidden_features, hidden_features), ReLU()]
    if dropout > 0:
        layers.append(Dropout(dropout))
    layers.append(Linear(hidden_features, num_classes))
    return Sequential(*layers)


def train_step(model: nn.Module, batch: Batch, loss_fn: LossFn, optimizer: torch.optim.Optimizer) -> float:
    """One training step: forward, loss, ``zero_grad(set_to_none=True)``, backward, optimiser step.

    The model trains in whatever mode it is in (a new module is in training mode); this function does
    not switch modes.

    Args:
        model: the network.
        batch: ``(input, target)``.
        loss_fn: ``loss_fn(model(input), target)`` gives the batch's loss, a 0-d tensor.
        optimizer: an optimiser over ``model``'s parameters.

    Returns:
        The batch's loss, measured before the update, as a Python float.

    Raises:
        TypeError: if ``batch`` is not an ``(input, target)`` pair.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(2, 1)
        >>> batch = (torch.ones(4, 2), torch.zeros(4, 1))
        >>> sgd = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> first, second = (train_step(net, batch, nn.functional.mse_loss, sgd) for _ in range(2))
        >>> second < first
        True
    """
    input, target = _unpack(batch)
    # 1. Forward: the parameters require gradients, so autograd records every operation to the output.
    output = model(input)  # (B, C) logits for a classifier
    # 2. Loss: the whole batch reduced to one scalar, the root of the graph.
    loss = loss_fn(output, target)
    # 3. Clear the last step's gradients. None rather than zeros: backward then writes instead of adding,
    # the old tensors are freed, and a parameter this batch does not reach keeps None, which the
    # optimiser skips.
    optimizer.zero_grad(set_to_none=True)
    # 4. Backward: each parameter's gradient is added into its .grad, and the graph is freed.
    loss.backward()
    # 5. Step: the optimiser moves every parameter with a .grad.
    optimizer.step()
    # A float, so no caller can keep the graph alive by holding on to the loss.
    return loss.item()


def manual_sgd_step(params: Iterable[Tensor], lr: float) -> None:
    r"""Plain SGD by hand, $\theta \leftarrow \theta - \gamma\, g$, bit for bit what ``torch.optim.SGD(lr=lr)`` does.

    Args:
        params: the parameters to update; those whose ``.grad`` is ``None`` are skipped.
        lr: the learning rate $\gamma$, at least 0.

    Raises:
        TypeError: if ``lr`` is not a number.
        ValueError: if ``lr`` is negative or not finite.

    Examples:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        >>> w.grad = torch.tensor([10.0, -10.0])
        >>> manual_sgd_step([w], lr=0.01)
        >>> w.detach()
        tensor([0.9000, 2.1000])
    """
    _check_number("lr", lr)
    # Not a step to differentiate through: without no_grad, autograd refuses to change a leaf in place.
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                continue
            # One kernel computes p + alpha * grad, the same call torch.optim.SGD makes, hence the same bits.
            p.add_(p.grad, alpha=-lr)


def evaluate(model: nn.Module, batches: Iterable[Batch], loss_fn: LossFn) -> dict[str, float]:
    """The mean loss (and accuracy) of ``model`` over ``batches``, in eval mode, with autograd off.

    Every submodule's own mode is restored afterwards, even if the loss raises (see `evaluating`).
    Each batch's loss is weighted by its number of samples, so for a ``loss_fn`` that averages over its
    batch the result is the mean over all samples, however the batches are cut.

    Args:
        model: the network.
        batches: an iterable of ``(input, target)`` pairs.
        loss_fn: ``loss_fn(output, target)`` gives a batch's mean loss.

    Returns:
        ``{"loss": ...}``, plus ``"accuracy"``, the share of targets equal to the ``argmax`` over dim 1 of
        the output, when the targets are class indices (an integer dtype) and the outputs have a class dim.

    Raises:
        TypeError: if a batch is not an ``(input, target)`` pair.
        ValueError: if ``batches`` holds no samples.

    Examples:
        >>> net = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.eye(2))
        ...     _ = net.bias.zero_()
        >>> x, y = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]]), torch.tensor([0, 1, 0])
        >>> metrics = evaluate(net, [(x[:2], y[:2]), (x[2:], y[2:])], cross_entropy)
        >>> {name: round(value, 4) for name, value in metrics.items()}
        {'loss': 0.8557, 'accuracy': 0.6667}
        >>> evaluate(net, [], cross_entropy)
        Traceback (most recent call last):
        ...
        ValueError: batches must hold at least one sample, got none
    """
    # Running sums kept as tensors on the model's device: no graph (no_grad), and no wait for the device
    # until the single conversion to Python at the end.
    total_loss: Tensor | None = None
    correct: Tensor | None = None
    samples, targets_counted = 0, 0
    with evaluating(model), torch.no_grad():
        for batch in batches:
            input, target = _unpack(batch)
            n = len(target) if target.dim() > 0 else 1
            if n == 0:
                continue
            output = model(input)
            loss = loss_fn(output, target).double() * n
            total_loss = loss if total_loss is None else total_loss + loss
            samples += n
            if not target.is_floating_point() and output.dim() >= 2:
                hits = (output.argmax(dim=1) == target).sum()
                correct = hits if correct is None else correct + hits
                targets_counted += target.numel()
    if samples == 0:
        raise ValueError("batches must hold at least one sample, got none")
    metrics = {"loss": total_loss.item() / samples}
    if correct is not None:
        metrics["accuracy"] = correct.item() / targets_counted
    return metrics


def overfit_one_batch(
    model: nn.Module, batch: Batch, loss_fn: LossFn, optimizer: torch.optim.Optimizer, *, steps: int = 200
) -> list[float]:
    """The first sanity check: train on one batch only, for ``steps`` steps, and return the losses.

    A working model, loss and optimiser drive the loss to nearly zero; one that cannot has a bug.

    Args:
        model: the network, in training mode.
        batch: the one ``(input, target)`` batch.
        loss_fn: the loss.
        optimizer: an optimiser over ``model``'s parameters.
        steps: how many steps, at least 1.

    Returns:
        The loss of every step, measured before its update.

    Raises:
        ValueError: if ``steps`` is below 1.

    Examples:
        >>> net = nn.Linear(1, 1)
        >>> batch = (torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [5.0]]))
        >>> losses = overfit_one_batch(net, batch, nn.functional.mse_loss, torch.optim.SGD(net.parameters(), lr=0.1))
        >>> losses[-1] < 1e-4
        True
    """
    _check_int("steps", steps, minimum=1)
    return [train_step(model, batch, loss_fn, optimizer) for _ in range(steps)]


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Iterable[Batch] | Callable[[int], Iterable[Batch]],
    loss_fn: LossFn,
    *,
    epochs: int,
    val_batches: Iterable[Batch] | None = None,
    progress_bar: bool = True,
) -> dict[str, list[float]]:
    """Train for ``epochs`` epochs with `train_step`, evaluating after each epoch, and return the history.

    Args:
        model: the network; it must be in training mode (``model.training``), and the modes of its
            submodules are left as they are.
        optimizer: an optimiser over ``model``'s parameters.
        train_batches: the training batches, either re-iterable (a list, a ``DataLoader``) or a function
            ``epoch -> batches`` called at the start of each epoch (to reshuffle).
        loss_fn: ``loss_fn(output, target)`` gives a batch's mean loss.
        epochs: how many epochs, at least 1.
        val_batches: re-iterable validation batches, evaluated with `evaluate` after each epoch.
        progress_bar: show a bar over the epochs (`torchenstein.lab.progress`).

    Returns:
        ``{"train_loss": [...]}``, the mean step loss of each epoch weighted by batch size, plus
        ``"val_loss"`` (and ``"val_accuracy"`` for class-index targets) when ``val_batches`` is given.

    Raises:
        ValueError: if the model is in eval mode, ``epochs`` is below 1, or an epoch has no samples.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Linear(2, 1)
        >>> data = [(torch.randn(8, 2), torch.randn(8, 1))]
        >>> history = fit(net, torch.optim.SGD(net.parameters(), lr=0.1), data, nn.functional.mse_loss,
        ...               epochs=3, val_batches=data, progress_bar=False)
        >>> {name: len(values) for name, values in history.items()}
        {'train_loss': 3, 'val_loss': 3}
    """
    _check_fit(model, epochs)
    history: dict[str, list[float]] = {"train_loss": []}
    bar = progress(range(epochs), desc="epochs", **({} if progress_bar else {"disable": True}))
    for epoch in bar:
        batches = train_batches(epoch) if callable(train_batches) else train_batches
        total, samples = 0.0, 0
        for batch in batches:
            loss = train_step(model, batch, loss_fn, optimizer)
            n = len(batch[1]) if batch[1].dim() > 0 else 1
            total += loss * n
            samples += n
        if samples == 0:
            raise ValueError(f"train_batches must hold at least one sample, got none in epoch {epoch}")
        history["train_loss"].append(total / samples)
        if val_batches is not None:
            # evaluate switches to eval mode and puts every submodule's own mode back when it is done.
            for name, value in evaluate(model, val_batches, loss_fn).items():
                history.setdefault(f"val_{name}", []).append(value)
        bar.set_postfix({name: round(values[-1], 4) for name, values in history.items()})
    return history


def plot_loss_curves(*, epochs: int | None = None, seed: int = 0) -> Figure:
    """Train the spiral classifier and draw its training and validation loss, and what it learned.

    Args:
        epochs: epochs to train (``None``: 20, or 3 in a smoke run).
        seed: seeds the weights, the shuffling and the training set (the validation set uses ``seed + 1``).

    Returns:
        A figure with two axes: the loss curves, and the validation points over the predicted classes.

    Examples:
        >>> fig = plot_loss_curves(epochs=2)
        >>> len(fig.axes)
        2
    """
    epochs = lab_size(20, 3) if epochs is None else epochs
    x_train, y_train = make_spiral(seed=seed)
    x_val, y_val = make_spiral(seed=seed + 1)
    val_batches = minibatches(x_val, y_val, 100)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = spiral_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.08, momentum=0.9)
    # The validation loss before any training: the initial-loss check, at epoch 0.
    initial = evaluate(model, val_batches, cross_entropy)["loss"]
    history = fit(
        model,
        optimizer,
        lambda epoch: minibatches(x_train, y_train, 32, shuffle=True, generator=generator),
        cross_entropy,
        epochs=epochs,
        val_batches=val_batches,
        progress_bar=False,
    )
    fig, (ax_loss, ax_map) = new_figure(1, 2, width=10.0, height=4.0)
    ax_loss.plot(range(1, epochs + 1), history["train_loss"], label="training loss (mean over the epoch)")
    ax_loss.plot(range(epochs + 1), [initial, *history["val_loss"]], label="validation loss (end of the epoch)")
    ax_loss.axhline(math.log(3), color=PALETTE[6], linestyle="--", linewidth=1, label=r"$\ln C$: the initial loss")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss curves", ylim=(0, None))
    ax_loss.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.legend(fontsize=8)
    # The decision regions: the predicted class on a grid of points covering the data.
    side = torch.linspace(-1.1, 1.1, 200)
    grid_y, grid_x = torch.meshgrid(side, side, indexing="ij")
    with evaluating(model), torch.no_grad():
        predicted = model(torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)).argmax(dim=1)
    from matplotlib.colors import ListedColormap

    colours = ListedColormap(PALETTE[:3])
    ax_map.pcolormesh(side.numpy(), side.numpy(), predicted.reshape(200, 200).numpy(), cmap=colours, alpha=0.25,
                      shading="auto", rasterized=True)  # one small image, not 40,000 vector cells
    ax_map.scatter(x_val[:, 0].numpy(), x_val[:, 1].numpy(), c=y_val.numpy(), cmap=colours, s=10, edgecolors="white", linewidths=0.3)
    accuracy = history["val_accuracy"][-1]
    ax_map.set(title=f"Validation points, predicted regions (accuracy {accuracy:.0%})", aspect="equal")
    ax_map.set_xticks([])
    ax_map.set_yticks([])
    return fig


def graph_size(tensor: Tensor) -> int:
    """Count the distinct autograd nodes behind ``tensor``: 0 for a tensor with no graph.

    Args:
        tensor: any tensor.

    Returns:
        The number of nodes reachable from ``tensor.grad_fn``, leaves' ``AccumulateGrad`` nodes included.

    Examples:
        >>> x = torch.ones(2, requires_grad=True)
        >>> {"(x * 2).sum()": graph_size((x * 2).sum()), "x.detach()": graph_size(x.detach())}
        {'(x * 2).sum()': 3, 'x.detach()': 0}
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    seen: set[Any] = set()
    stack = [tensor.grad_fn] if tensor.grad_fn is not None else []
    # Walk the graph by hand, with a set, so a node reached along two paths is counted once.
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(child for child, _ in node.next_functions if child is not None)
    return len(seen)


# Challenges


def per_class_accuracy(model: nn.Module, batches: Iterable[Batch], num_classes: int) -> Tensor:
    """Challenge solution: the accuracy on each class separately, ``nan`` for a class with no samples.

    Args:
        model: a classifier whose outputs have the classes along dim 1.
        batches: an iterable of ``(input, target)`` pairs with int64 class-index targets.
        num_classes: the number of classes $C$.

    Returns:
        A float32 tensor of shape ``(C,)``.

    Examples:
        >>> net = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = net.weight.copy_(torch.eye(2))
        ...     _ = net.bias.zero_()
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
        >>> per_class_accuracy(net, [(x, torch.tensor([0, 0, 0]))], 3).tolist()
        [0.6666666865348816, nan, nan]
    """
    _check_int("num_classes", num_classes, minimum=1)
    correct = torch.zeros(num_classes, dtype=torch.int64)
    seen = torch.zeros(num_classes, dtype=torch.int64)
    with evaluating(model), torch.no_grad():
        for batch in batches:
            input, target = _unpack(batch)
            hit = model(input).argmax(dim=1) == target  # (B,) bool
            # bincount with the hits as weights counts the correct samples of each class in one call.
            seen += torch.bincount(target.flatten().cpu(), minlength=num_classes)
            correct += torch.bincount(target.flatten().cpu(), weights=hit.flatten().cpu().double(),
                                      minlength=num_classes).long()
    # 0 / 0 is nan, which is exactly the answer for a class with no samples.
    return (correct.double() / seen.double()).float()


def _reference_per_class(outputs: list[Tensor], targets: list[Tensor], num_classes: int) -> list[float]:
    predicted = torch.cat([o.argmax(dim=1) for o in outputs])
    target = torch.cat(targets)
    result = []
    for c in range(num_classes):
        mask = target == c
        result.append(float("nan") if not mask.any() else (predicted[mask] == c).double().mean().item())
    return result


def check_per_class_accuracy(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``per_class_accuracy``."""
    g = torch.Generator().manual_seed(0)
    for num_classes, sizes in ((3, (5, 7)), (4, (16,)), (5, (3, 3, 2))):
        net = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, num_classes))
        _ = net[2].eval()  # frozen on purpose: it must stay in eval mode afterwards
        batches = [(torch.randn(n, 2, generator=g), torch.randint(0, num_classes - 1, (n,), generator=g))
                   for n in sizes]  # the last class never appears
        with torch.no_grad():
            outputs = [net.eval()(x) for x, _ in batches]
        net.train()
        _ = net[2].eval()
        expected = _reference_per_class(outputs, [t for _, t in batches], num_classes)
        modes = [m.training for m in net.modules()]
        got = candidate(net, batches, num_classes)
        assert isinstance(got, Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == (num_classes,) and got.dtype == torch.float32, (
            f"expected a float32 tensor of shape ({num_classes},), got {got.dtype} of shape {tuple(got.shape)}"
        )
        assert not got.requires_grad, "the result requires grad: evaluate under torch.no_grad()"
        assert [m.training for m in net.modules()] == modes, (
            "the modules' modes changed: restore each submodule's own mode (the frozen BatchNorm stays in eval)"
        )
        assert all(p.grad is None for p in net.parameters()), "a parameter received a gradient: no backward here"
        assert math.isnan(got[-1].item()), f"class {num_classes - 1} has no samples: expected nan, got {got[-1].item()}"
        assert torch.allclose(got[:-1].double(), torch.tensor(expected[:-1], dtype=torch.float64), atol=1e-6), (
            f"wrong accuracies for batch sizes {sizes} and {num_classes} classes: expected {expected}, "
            f"got {got.tolist()} (did you run the model in eval mode?)"
        )


def fit_keep_best(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Iterable[Batch],
    val_batches: Iterable[Batch],
    loss_fn: LossFn,
    epochs: int,
) -> tuple[dict[str, Tensor], list[float]]:
    """Challenge solution: train like `fit` and keep a copy of the state from the best validation epoch.

    Args:
        model: the network, in training mode.
        optimizer: an optimiser over ``model``'s parameters.
        train_batches: re-iterable training batches.
        val_batches: re-iterable validation batches.
        loss_fn: the loss.
        epochs: how many epochs, at least 1.

    Returns:
        ``(best_state, val_losses)``: a copy of ``model.state_dict()`` after the epoch with the lowest
        validation loss (the first on a tie), and the validation loss after every epoch.

    Examples:
        >>> net = nn.Linear(1, 1)
        >>> data = [(torch.ones(4, 1), torch.zeros(4, 1))]
        >>> best, losses = fit_keep_best(net, torch.optim.SGD(net.parameters(), lr=0.1), data, data,
        ...                              nn.functional.mse_loss, epochs=3)
        >>> {"kept": list(best), "validation losses": len(losses)}
        {'kept': ['weight', 'bias'], 'validation losses': 3}
    """
    _check_fit(model, epochs)
    best_state: dict[str, Tensor] = {}
    val_losses: list[float] = []
    for _ in range(epochs):
        for batch in train_batches:
            train_step(model, batch, loss_fn, optimizer)
        val_losses.append(evaluate(model, val_batches, loss_fn)["loss"])
        if val_losses[-1] < min(val_losses[:-1], default=math.inf):
            # clone(): state_dict() hands out the model's own tensors, which the next step overwrites.
            best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    return best_state, val_losses


def check_fit_keep_best(candidate: Callable[..., tuple[dict[str, Tensor], list[float]]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``fit_keep_best``."""
    # A regression whose training targets are 2x and validation targets 1x: the weight grows from 0 towards
    # 2, so the validation loss falls until the weight passes 1 and rises after: the best epoch is inside.
    x = torch.linspace(-1.0, 1.0, 16).unsqueeze(1)
    train, val = [(x[:8], 2 * x[:8]), (x[8:], 2 * x[8:])], [(x, x)]
    epochs, lr = 14, 0.05
    w, expected_losses, expected_weights = 0.0, [], []
    for _ in range(epochs):
        for xb, yb in train:
            w -= lr * (2 * ((w * xb - yb) * xb).mean()).item()
        expected_weights.append(w)
        expected_losses.append(((w - 1.0) ** 2) * x.pow(2).mean().item())
    best = min(range(epochs), key=lambda i: (expected_losses[i], i))
    assert 0 < best < epochs - 1, "internal: the best epoch must lie inside the run"
    model = nn.Sequential(nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        model[0].weight.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    got = candidate(model, optimizer, train, val, nn.functional.mse_loss, epochs)
    assert isinstance(got, tuple) and len(got) == 2, "fit_keep_best must return (best_state, val_losses)"
    best_state, val_losses = got
    assert len(val_losses) == epochs, f"expected {epochs} validation losses, one per epoch, got {len(val_losses)}"
    assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7) for a, b in zip(val_losses, expected_losses, strict=True)), (
        f"wrong validation losses: expected {[round(v, 5) for v in expected_losses]}, "
        f"got {[round(float(v), 5) for v in val_losses]}"
    )
    assert list(best_state) == ["0.weight"], f"best_state must be the model's state_dict, got keys {list(best_state)}"
    assert model.training, "the model must be back in training mode after fit_keep_best"
    kept = best_state["0.weight"].item()
    assert not math.isclose(kept, model[0].weight.item()), (
        f"best_state holds the last epoch's weight {kept:.5f}, not the best epoch's "
        f"({expected_weights[best]:.5f}, epoch {best}): state_dict() returns the model's own tensors, clone them"
    )
    assert math.isclose(kept, expected_weights[best], rel_tol=1e-4), (
        f"best_state holds the weight {kept:.5f}, expected {expected_weights[best]:.5f} from epoch {best}, "
        "the one with the lowest validation loss"
    )


# Argument checks, kept at the foot of the module so the ideas above read first.


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_data(x: object, y: object) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor) or t.dim() == 0:
            got = "a 0-d tensor" if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a tensor with a samples dimension, got {got}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same number of samples, got {x.shape[0]} and {y.shape[0]}")


def _unpack(batch: object) -> Batch:
    if not isinstance(batch, Sequence) or len(batch) != 2 or not all(isinstance(t, Tensor) for t in batch):
        raise TypeError(f"a batch must be an (input, target) pair of tensors, got {type(batch).__name__}")
    return batch[0], batch[1]


def _check_fit(model: object, epochs: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not model.training:
        raise ValueError("model is in eval mode (model.training is False): call model.train() before fit")
    _check_int("epochs", epochs, minimum=1)
