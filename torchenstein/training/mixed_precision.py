r"""
# Mixed Precision: Half the Bits, None of the Lies

!!! torchenstein "The Professor speaks"
    Sixteen bits! Half the memory, half the traffic, and on a modern GPU matrix multiplications several
    times faster. Dr. Hammer heard this and cast his whole monster to float16 in one line. It stopped
    learning, and he blamed the data. Today we learn to mix: the heavy arithmetic in sixteen bits, the
    delicate parts in thirty-two, and a small machine, the *loss scaler*, that rescues float16 gradients
    from vanishing into zero. We build the scaler ourselves and prove it makes the very same decisions as
    PyTorch's own, step for step.

**You will learn to**

- print which operations `torch.autocast` runs in 16 bits and which in float32, instead of guessing;
- keep parameters and gradients in float32, and show why a 16-bit weight cannot learn;
- watch a float16 gradient underflow to zero, and rescue it by scaling the loss;
- build `LossScaler`, a dynamic loss scaler with `torch.amp.GradScaler`'s names, and prove it equal to
  `GradScaler` over hundreds of steps with overflows, `state_dict` and all;
- unscale before clipping, and explain with numbers why bfloat16 needs no scaler at all.

## Why mix precisions

A float32 number takes 4 bytes; float16 and bfloat16 take 2. The [Dtypes and devices](../../tensors/dtypes/index.md)
lesson showed what each 16-bit format gives up: bfloat16 keeps float32's range and only 8 significant
bits, float16 keeps 11 significant bits and a range that ends at 65504. Halving the bytes halves the
memory of every stored activation and the traffic of every matmul, and GPUs have matrix units
(tensor cores) that multiply 16-bit inputs much faster than float32 ones.

What 16 bits cannot do is *learn slowly*. A training step changes a weight by the learning rate times its
gradient, often a ten-thousandth of the weight or less. Near 1.0 the 16-bit formats have no number that
close, and the update rounds away:

```pycon
>>> import math
>>> import torch
>>> import torch.nn.functional as F
>>> from torch import nn
>>> weight, update = torch.tensor(1.0), 1e-4                  # update = learning rate * gradient
>>> for dtype in (torch.float32, torch.bfloat16, torch.float16):
...     print(f"{str(dtype):15} {weight.to(dtype).item()} - {update} = {(weight.to(dtype) - update).item()}")
torch.float32   1.0 - 0.0001 = 0.9998999834060669
torch.bfloat16  1.0 - 0.0001 = 1.0
torch.float16   1.0 - 0.0001 = 1.0

```

So *mixed* precision: the parameters, their gradients and the optimizer's state (the momentum and running
averages it keeps from step to step) stay float32; the operations that dominate the compute (matrix
multiplications and convolutions) run in 16 bits on 16-bit copies; the operations that need range or
accumulate many terms (losses above all) run in float32. Nobody rewrites a model for this:
`torch.autocast` decides per operation.

## `torch.autocast`: a dtype per operation

Inside `with torch.autocast(device_type, dtype=...)`, every operation PyTorch runs is looked up in
autocast's lists for that device. An operation on the **lower-precision list** casts its floating
inputs to `dtype` and returns `dtype`. An operation on the **float32 list** casts its inputs up to float32.
Every other operation runs in the dtype its inputs already have (mixed inputs promote as they always do).
Don't take the lists on faith:
[`autocast_dtypes`][torchenstein.training.mixed_precision.autocast_dtypes] runs a dozen operations
under CPU autocast with bfloat16 and records the dtype each returns, once for float32 inputs (a model's
input) and once for bfloat16 inputs (the output of an earlier matmul):

```pycon
>>> from torchenstein.training.mixed_precision import autocast_dtypes
>>> from_float32 = autocast_dtypes("cpu", torch.bfloat16)
>>> from_bfloat16 = autocast_dtypes("cpu", torch.bfloat16, input_dtype=torch.bfloat16)
>>> print(f"{'operation':14} {'float32 in':15} bfloat16 in")
operation      float32 in      bfloat16 in
>>> for op in from_float32:
...     print(f"{op:14} {str(from_float32[op]):15} {from_bfloat16[op]}")
linear         torch.bfloat16  torch.bfloat16
matmul         torch.bfloat16  torch.bfloat16
conv1d         torch.bfloat16  torch.bfloat16
relu           torch.float32   torch.bfloat16
exp            torch.float32   torch.bfloat16
sum            torch.float32   torch.bfloat16
softmax        torch.float32   torch.bfloat16
log_softmax    torch.float32   torch.bfloat16
layer_norm     torch.float32   torch.bfloat16
mse_loss       torch.float32   torch.float32
cross_entropy  torch.float32   torch.float32

```

Three groups appear, on the CPU, in torch 2.13. `linear`, `matmul` and `conv1d` come out bfloat16
whatever goes in: the lower-precision list. `mse_loss` and `cross_entropy` come out float32 even from
bfloat16 inputs: the float32 list, because a loss is a mean of many terms, often with a logarithm
or an exponential inside. `relu`, `exp`, `sum`, `softmax`, `log_softmax` and `layer_norm` follow their
input: on the CPU they are on neither list, so after a bfloat16 matmul they run on bfloat16 tensors.
That is less alarming than it sounds, because PyTorch's CPU kernels accumulate a bfloat16 reduction in
float32 and round only the result; a running sum kept in bfloat16 would stop growing at 256, where the
spacing between bfloat16 numbers reaches 2:

```pycon
>>> torch.ones(4096, dtype=torch.bfloat16).sum().item()
4096.0
>>> (torch.tensor(256.0, dtype=torch.bfloat16) + 1).item()
256.0

```

The lists name PyTorch's own operations. A loss you write yourself, the course's own
[`cross_entropy`][torchenstein.nn.losses.cross_entropy] included, is on neither list: it receives the
bfloat16 logits and returns a bfloat16 loss (Dr. Hammer's trap below shows it, and the one cast that
fixes it).

On CUDA the float32 list is longer (PyTorch's autocast documentation lists it): it holds `softmax`,
`log_softmax`, `layer_norm`, `sum`, `exp` and more. Ask the GPU rather than me. This page is built
without one, so the doctest below is skipped, and its output is what `tests/test_mixed_precision.py`
asserts on a GPU:

```pycon
>>> if torch.cuda.is_available():  # doctest: +SKIP
...     on_cuda = autocast_dtypes("cuda", torch.float16, input_dtype=torch.float16)
...     print({op: str(on_cuda[op]) for op in ("linear", "softmax", "layer_norm", "sum", "cross_entropy")})
{'linear': 'torch.float16', 'softmax': 'torch.float32', 'layer_norm': 'torch.float32', 'sum': 'torch.float32', 'cross_entropy': 'torch.float32'}

```

## Parameters stay float32, gradients come back float32

Autocast never touches a parameter. When a linear layer runs, autocast makes a 16-bit *copy* of its
float32 weight for the matmul (and caches the copy for the rest of the context, in case the weight is used
again). The cast is an operation like any other, recorded in the graph, so `backward` sends the gradient
back through it and it arrives in the parameter's own dtype. Run `backward` outside the context: each
backward operation runs in the dtype its forward operation chose anyway.

```pycon
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
>>> x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
>>> with torch.autocast("cpu", dtype=torch.bfloat16):
...     logits = model(x)                                # (32, 4)
...     loss = F.cross_entropy(logits, y)
>>> loss.backward()
>>> print(f"logits: {logits.dtype}, loss: {loss.dtype}")
logits: torch.bfloat16, loss: torch.float32
>>> print(f"weight: {model[0].weight.dtype}, its gradient: {model[0].weight.grad.dtype}")
weight: torch.float32, its gradient: torch.float32
>>> print(f"bytes per logit: {logits.element_size()} (float32: {model(x).element_size()})")
bytes per logit: 2 (float32: 4)
>>> difference = (logits.float() - model(x)).abs().max().item()
>>> print(f"largest difference from float32 logits below 0.05: {difference < 0.05}, zero: {difference == 0}")
largest difference from float32 logits below 0.05: True, zero: False

```

## Float16's small numbers, and bfloat16's lack of a problem

Gradients are small. Below its smallest *normal* number a format keeps fewer and fewer significant bits
(the *subnormal* numbers), and below half its smallest positive number everything rounds to zero. For
float16 that happens a little under $10^{-7}$; bfloat16 reaches as far down as float32 does, because it
keeps float32's 8 exponent bits:

```pycon
>>> for dtype in (torch.float32, torch.bfloat16, torch.float16):
...     info = torch.finfo(dtype)
...     smallest = info.tiny * info.eps                  # the smallest subnormal: the last bit of the smallest normal
...     tiny = torch.tensor(1e-8).to(dtype).item()
...     print(f"{str(dtype):15} max {info.max:.3g}, smallest normal {info.tiny:.3g}, "
...           f"smallest above 0 {smallest:.3g}, 1e-8 becomes {tiny:.3g}")
torch.float32   max 3.4e+38, smallest normal 1.18e-38, smallest above 0 1.4e-45, 1e-8 becomes 1e-08
torch.bfloat16  max 3.39e+38, smallest normal 1.18e-38, smallest above 0 9.18e-41, 1e-8 becomes 1e-08
torch.float16   max 6.55e+04, smallest normal 6.1e-05, smallest above 0 5.96e-08, 1e-8 becomes 0

```

Under float16 autocast the gradient flowing back into a linear layer's output is a float16 tensor, so a
small enough loss gives it nothing but zeros, and the weight's gradient is zero too, even though the
weight itself is float32.
[`small_loss_gradient`][torchenstein.training.mixed_precision.small_loss_gradient] computes the weight
gradient of a loss of about $10^{-7}$, compared with float32's:

```pycon
>>> from torchenstein.training.mixed_precision import small_loss_gradient
>>> reference = small_loss_gradient(None)                   # plain float32
>>> for dtype in (torch.float16, torch.bfloat16):
...     grad = small_loss_gradient(dtype)
...     error = ((grad - reference).norm() / reference.norm()).item()
...     print(f"{str(dtype):15} zero entries: {(grad == 0).sum().item()} of 12, within 1% of float32: {error < 0.01}")
torch.float16   zero entries: 12 of 12, within 1% of float32: False
torch.bfloat16  zero entries: 0 of 12, within 1% of float32: True

```

The same number lies in float16 where in bfloat16 it is merely rounded. That is the whole reason
bfloat16 needs no scaler: its range is float32's, so what underflows in bfloat16 underflows in float32
as well.

## Loss scaling: multiply before, divide after

Gradients are linear in the loss: for any constant $S$,

$$
\frac{\partial (S \cdot L)}{\partial \theta} = S \cdot \frac{\partial L}{\partial \theta}.
$$

So multiply the loss by a large $S$ before `backward`: every gradient along the way is $S$ times larger
and lifted out of float16's underflow. Then divide the float32 parameter gradients by $S$ before the
optimizer reads them. With $S = 2^{16}$ the float16 gradient above comes back:

```pycon
>>> grad = small_loss_gradient(torch.float16, scale=2.0**16)
>>> error = ((grad - reference).norm() / reference.norm()).item()
>>> print(f"zero entries: {(grad == 0).sum().item()} of 12, within 1% of float32: {error < 0.01}")
zero entries: 0 of 12, within 1% of float32: True

```

A power of two is the natural choice: multiplying and dividing by it only moves the exponent, so no
significant bit is lost. But how large? Too small and gradients still underflow; too large and the
biggest ones overflow float16's 65504 and become `inf`. The right $S$ depends on the model and changes as
it trains. So we let the training loop find it.

## A dynamic loss scaler from scratch

[`LossScaler`][torchenstein.training.mixed_precision.LossScaler] follows `torch.amp.GradScaler`: the same
arguments (`init_scale`, `growth_factor`, `backoff_factor`, `growth_interval`, `enabled`), the same
methods, the same `state_dict`. Every iteration:

1. `scale(loss)` returns $S \cdot L$; call `backward` on it.
2. `unscale_(optimizer)` multiplies every gradient by $1/S$ in place and checks them all for `inf` and
   `NaN`. Optional: `step` does it if you did not.
3. `step(optimizer)` calls `optimizer.step()` **only if** every gradient was finite (the guard of
   [`step_if_finite`][torchenstein.training.nans.step_if_finite], built in). An overflow means this
   iteration's gradient is garbage; the step is skipped, and parameters and optimizer state stay exactly
   as they were.
4. `update()` adjusts the scale:

$$
S \leftarrow \begin{cases}
S \cdot \texttt{backoff\_factor} & \text{if a gradient was inf or NaN (and the good-step count restarts)},\\
S \cdot \texttt{growth\_factor} & \text{after } \texttt{growth\_interval} \text{ good steps in a row},\\
S & \text{otherwise.}
\end{cases}
$$

The scale never grows past float32's largest number, and it is kept as a float32, rounded at every change,
exactly as PyTorch keeps it. Here is one iteration by hand, with an overflow planted in a gradient:

```pycon
>>> from torchenstein.training.mixed_precision import LossScaler
>>> _ = torch.manual_seed(0)
>>> model = nn.Linear(8, 4)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> scaler = LossScaler(init_scale=2.0**16, growth_interval=2)
>>> x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
>>> for step in range(4):
...     optimizer.zero_grad()
...     before = model.weight.detach().clone()
...     scaler.scale(F.cross_entropy(model(x), y)).backward()
...     if step == 1:
...         model.weight.grad[0, 0] = math.inf               # what an overflowing float16 backward leaves
...     scaler.step(optimizer)
...     scaler.update()
...     moved = not torch.equal(before, model.weight)
...     print(f"step {step}: weights moved {moved}, scale now 2**{math.log2(scaler.get_scale()):g}")
step 0: weights moved True, scale now 2**16
step 1: weights moved False, scale now 2**15
step 2: weights moved True, scale now 2**15
step 3: weights moved True, scale now 2**16

```

Now the proof. [`run_with_scaler`][torchenstein.training.mixed_precision.run_with_scaler] trains a tiny
classifier with any scaler, plants `inf`s and `NaN`s on chosen steps, and records the scale after every
`update`, which steps were taken, and the final weights. Ours against PyTorch's, 60 steps:

```pycon
>>> from torchenstein.training.mixed_precision import run_with_scaler
>>> settings = dict(init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=7)
>>> faults = dict(steps=60, overflow_steps=[3, 4, 5, 40, 41], nan_steps=[50])
>>> ours = run_with_scaler(LossScaler(**settings), **faults)
>>> theirs = run_with_scaler(torch.amp.GradScaler("cpu", **settings), **faults)
>>> print("same scales:", ours["scale"] == theirs["scale"])
same scales: True
>>> print("same decisions:", ours["stepped"] == theirs["stepped"], "| skipped steps:", ours["stepped"].count(False))
same decisions: True | skipped steps: 6
>>> print("same weights:", all(torch.equal(a, b) for a, b in zip(ours["params"], theirs["params"])))
same weights: True
>>> print(f"scale: 2**10 at the start, 2**{math.log2(ours['scale'][-1]):g} at the end")
scale: 2**10 at the start, 2**10 at the end

```

Equal weights to the last bit: our unscaling multiplies by the same float32 reciprocal, computed in
float64 and rounded once, as PyTorch's kernel does. The state moves between the two in either direction:

```pycon
>>> torch_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=7)
>>> ours = LossScaler(init_scale=2.0**10, growth_interval=7)
>>> ours.state_dict() == torch_scaler.state_dict()
True
>>> ours.state_dict()
{'scale': 1024.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 7, '_growth_tracker': 0}
>>> LossScaler(backoff_factor=1.5)
Traceback (most recent call last):
...
ValueError: backoff_factor must be a number between 0 and 1 (exclusive), got 1.5

```

`tests/test_mixed_precision.py` proves more: the scale trajectory, the step decisions, the losses and
the final weights equal to `GradScaler`'s over hundreds of steps, for float32 and float16-autocast forward
passes, with infs and NaNs, growth and backoff factors that are not powers of two, a scale that hits
float32's ceiling, clipping, two optimizers sharing one scaler, `enabled=False`, `state_dict` at every
step, and checkpoints loaded across (ours into PyTorch's and back) in the middle of a run.

!!! note "Where it differs from PyTorch"
    - Ours keeps the scale as a Python float; PyTorch keeps it in a float32 tensor on the gradients'
      device so that `update` never waits for the GPU. That is why `LossScaler` has no `device` argument.
      The numbers are the same, with one exception: before the first `scale()`, `GradScaler.get_scale()`
      returns `init_scale` as you typed it, while ours has already rounded it to float32 (say `0.1`
      becomes `0.10000000149011612`); the tests pin this.
    - Bad arguments raise `ValueError` or `TypeError` naming the argument; PyTorch raises
      `AssertionError` for a `growth_factor` at most 1 or a `backoff_factor` at least 1, and does not check
      `init_scale` or `growth_interval` at all. An `update()` with nothing checked raises `RuntimeError`
      here, `AssertionError` there.
    - Sparse gradients, and optimizers that unscale inside a fused kernel (PyTorch passes them the scale
      instead of unscaling), are not handled specially: ours unscales every dense gradient itself.

## Watching the scale hunt

With a float16 forward pass, nothing has to be planted: once the scale is too large the backward pass
overflows by itself. Start at $2^{16}$, double after 10 good steps, halve on every overflow, and the scale
climbs until the gradients no longer fit, falls back one notch, climbs again:

![The loss scale on a log-2 axis over 200 steps of float16 training: our scaler's line and torch.amp.GradScaler's dashed line lie on top of each other, climbing in steps from 2^16, then trying the next power of two every eleventh step, overflowing there (a red cross: the step is skipped) and falling back.](plot_loss_scale.svg)

```pycon
>>> run = run_with_scaler(LossScaler(init_scale=2.0**20, growth_interval=5), steps=40, dtype=torch.float16)
>>> skipped = [step for step, stepped in enumerate(run["stepped"]) if not stepped]
>>> print("overflows happened by themselves:", len(skipped) > 0)
overflows happened by themselves: True
>>> print("each overflow halved the scale:", all(run["scale"][i] == run["scale"][i - 1] / 2 for i in skipped))
each overflow halved the scale: True

```

A skipped step now and then is the price of a scale that is as large as it can be. PyTorch's default
`growth_interval` is 2000, so on a real model the scale tries to grow only every couple of thousand steps:
with the default settings, one skipped step in two thousand is the sign of a scaler doing its job.

## Unscale before you clip

Gradient clipping (see [Gradient clipping](../clipping/index.md)) compares the gradient's norm with a
threshold. After `scale(loss).backward()` the gradients are $S$ times too large, and so is their norm:
clip them now and you clip at a threshold $S$ times too small. Call `unscale_` first, clip the true
gradients, then `step`: it sees that this optimizer was already unscaled and does not divide again.
Overflows are still caught, because `unscale_` noted them before clipping could touch anything.

```pycon
>>> _ = torch.manual_seed(0)
>>> model = nn.Linear(8, 4)
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> scaler = LossScaler()
>>> def grad_norm():
...     return torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
>>> scaler.scale(F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 4, (16,)))).backward()
>>> print(f"scaled norm: {grad_norm():.1f} = 2**16 * {grad_norm() / scaler.get_scale():.4f}")
scaled norm: 52331.5 = 2**16 * 0.7985
>>> scaler.unscale_(optimizer)
>>> total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)    # returns the norm before clipping
>>> print(f"true norm: {total.item():.4f}, after clipping: {grad_norm():.4f}")
true norm: 0.7985, after clipping: 0.5000

```

Unscaling twice would divide by $S$ twice, so it is an error, ours as PyTorch's:

```pycon
>>> scaler.unscale_(optimizer)
Traceback (most recent call last):
...
RuntimeError: unscale_() has already been called on this optimizer since the last update().
>>> scaler.step(optimizer)
>>> scaler.update()
>>> round(grad_norm(), 4)                                  # step used the clipped, unscaled gradient
0.5

```

## One loop for every precision

bfloat16 needs no scaler, float16 does, float32 needs neither. `enabled=False` turns every method of
the scaler into a pass-through, so one loop (the loop of [The training loop](../loop/index.md), with
autocast and three scaler calls added) serves all three:

```pycon
>>> def train(dtype, steps=30):
...     _ = torch.manual_seed(0)
...     model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
...     optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
...     scaler = LossScaler(enabled=dtype == torch.float16)
...     x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
...     for _ in range(steps):
...         optimizer.zero_grad()
...         with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
...             loss = F.cross_entropy(model(x), y)
...         scaler.scale(loss).backward()
...         scaler.step(optimizer)
...         scaler.update()
...     return loss.item()
>>> losses = {str(dtype): train(dtype) for dtype in (None, torch.bfloat16, torch.float16)}
>>> print(f"a uniform guess over 4 classes costs {math.log(4):.3f}")
a uniform guess over 4 classes costs 1.386
>>> print({name: round(loss, 1) for name, loss in losses.items()})
{'None': 0.8, 'torch.bfloat16': 0.8, 'torch.float16': 0.8}

```

On a GPU, write `"cuda"` for `"cpu"` and move the model and the batch there; autocast picks float16 by
default on CUDA, and the scaler's decisions are the ones proved above.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: step without update"
    Hammer read that `scaler.step` "does the scaling" and left out `scaler.update()`. The scale can then
    never adapt, and PyTorch stops him at the second iteration, since the scaler still thinks the first is
    in progress. The fix is one line, once per iteration, after every optimizer has stepped.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(8, 4)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> hammer_scaler = torch.amp.GradScaler("cpu")
    >>> for step in range(2):
    ...     optimizer.zero_grad()
    ...     hammer_scaler.scale(model(torch.randn(4, 8)).pow(2).mean()).backward()
    ...     hammer_scaler.step(optimizer)                   # ...and no update()
    Traceback (most recent call last):
    ...
    RuntimeError: step() has already been called since the last update().
    >>> ours = LossScaler()
    >>> for step in range(2):
    ...     optimizer.zero_grad()
    ...     ours.scale(model(torch.randn(4, 8)).pow(2).mean()).backward()
    ...     ours.step(optimizer)
    ...     ours.update()                                   # the fix
    >>> ours.get_scale()
    65536.0

    ```

!!! hammer "Dr. Hammer's trap: clipping the scaled gradients"
    Hammer clips right after `backward`, before anything is unscaled. His gradient of true norm 0.8
    looks like 52 thousand, gets clipped to norm 1, and is then divided by $2^{16}$ in `step`: the optimizer
    receives a gradient 50 thousand times too small, and the model crawls. No error, no warning.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(8, 4)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> scaler = LossScaler()
    >>> scaler.scale(F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 4, (16,)))).backward()
    >>> seen = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)   # before unscale_: wrong
    >>> scaler.step(optimizer)
    >>> scaler.update()
    >>> def grad_norm():
    ...     return torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    >>> print(f"norm clipping saw: {seen.item():.1f}, norm the optimizer used: {grad_norm():.2e}")
    norm clipping saw: 52331.5, norm the optimizer used: 1.53e-05

    ```

    The fix is the order of the previous section: `unscale_`, clip, `step`, `update`; there the optimizer
    used the true gradient (norm 0.7985, under the threshold, left alone by a `max_norm` of 1).

!!! hammer "Dr. Hammer's trap: a loss autocast has never heard of"
    Hammer trains under bfloat16 autocast with the cross-entropy of [Loss potions](../../nn/losses/index.md),
    ours, proved equal to `F.cross_entropy` in every dtype. But under autocast `F.cross_entropy` never
    sees bfloat16: it is on the float32 list, so autocast casts the logits up first. Ours is on no list. It
    receives the bfloat16 logits and, like any PyTorch loss called on bfloat16 tensors, returns a bfloat16
    loss with 8 significant bits. His logged losses move in steps of 1/64 near 2.6, and his early stopping
    compares validation losses that differ only in the digits that were rounded away. The fix is one cast:
    hand a hand-written loss float32 logits.

    ```pycon
    >>> from torchenstein.nn.losses import cross_entropy
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(8, 10)
    >>> x, y = torch.randn(64, 8), torch.randint(0, 10, (64,))
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     logits = model(x)                               # bfloat16
    ...     losses = {"ours on bfloat16 logits": cross_entropy(logits, y),
    ...               "ours on logits.float()": cross_entropy(logits.float(), y),
    ...               "F.cross_entropy": F.cross_entropy(logits, y)}
    >>> for name, loss in losses.items():
    ...     print(f"{name:24} {str(loss.dtype):15} {loss.item():.6f}")
    ours on bfloat16 logits  torch.bfloat16  2.593750
    ours on logits.float()   torch.float32   2.595654
    F.cross_entropy          torch.float32   2.595654
    >>> print(f"spacing of bfloat16 near 2.6: {torch.finfo(torch.bfloat16).eps * 2}")
    spacing of bfloat16 near 2.6: 0.015625

    ```

!!! hammer "Dr. Hammer's trap: `.half()` on the whole model"
    "Why autocast, when `.half()` does it all in one call?" Because `.half()` converts the *parameters*,
    the LayerNorm's among them. Every update smaller than half the float16 spacing near a weight vanishes,
    as in the first section, and the scaler refuses to work with float16 gradients at all.

    ```pycon
    >>> def layer_norm_update(half):
    ...     _ = torch.manual_seed(0)
    ...     model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    ...     model = model.half() if half else model
    ...     optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    ...     before = model[1].weight.detach().clone()
    ...     model(torch.randn(16, 8).to(before.dtype)).float().pow(2).mean().backward()
    ...     optimizer.step()
    ...     return (model[1].weight - before).abs().max().item()
    >>> print(f"LayerNorm weight moved by {layer_norm_update(half=True)} in float16")
    LayerNorm weight moved by 0.0 in float16
    >>> print(f"LayerNorm weight moved by {layer_norm_update(half=False):.1e} in float32")
    LayerNorm weight moved by 4.2e-05 in float32
    >>> model = nn.Linear(8, 4).half()
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> scaler = torch.amp.GradScaler("cpu")
    >>> scaler.scale(model(torch.randn(4, 8).half()).float().pow(2).mean()).backward()
    >>> scaler.step(optimizer)
    Traceback (most recent call last):
    ...
    ValueError: Attempting to unscale FP16 gradients.

    ```

    The fix: keep the model float32 and put only the forward pass under `torch.autocast`.

## Challenges

**1. Predict the scale.** Write `scale_history(overflows, init_scale=2.0**16, growth_factor=2.0,
backoff_factor=0.5, growth_interval=2000)`: given one boolean per iteration (`True` where a gradient
overflowed), return the list of scales after each `update`, as `GradScaler` would have them, without
running any model. Mind the good-step count after a growth and after an overflow, and a scale that
would grow past float32's largest number.

**2. Scaling with accumulation.** Write `scaled_accumulation_step(model, optimizer, scaler, micro_batches,
loss_fn)`: one optimizer step from a list of equal-sized `(inputs, targets)` micro-batches (see
[Gradient accumulation](../../tensors/accumulation/index.md)), with a loss scaler: the same step as one
backward pass over the whole batch, skipped if any micro-batch overflows, and exactly one `update` per
optimizer step. Return the mean loss of the whole batch as a float.

Check an attempt with `check_scale_history(my_function)` or `check_scaled_accumulation_step(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.training.mixed_precision import (
...     check_scale_history, check_scaled_accumulation_step, scale_history, scaled_accumulation_step)
>>> check_scale_history(scale_history)                      # silence: every case passed
>>> check_scaled_accumulation_step(scaled_accumulation_step)

```
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure, progress

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# The operations the lesson asks autocast about, each a function of one float tensor `x` of shape (4, 8).
# Weights are created in float32, as a model's parameters are, so the table shows what autocast does
# to a float32 parameter meeting an activation of the input dtype.
def _autocast_probes(x: Tensor) -> dict[str, Callable[[], Tensor]]:
    generator = torch.Generator(device="cpu").manual_seed(0)
    weight = torch.randn(3, 8, generator=generator).to(x.device)
    kernel = torch.randn(2, 4, 3, generator=generator).to(x.device)
    target = torch.tensor([0, 1, 2, 0], device=x.device)
    return {
        "linear": lambda: F.linear(x, weight),
        "matmul": lambda: x @ x.T,
        "conv1d": lambda: F.conv1d(x[None], kernel),
        "relu": lambda: F.relu(x),
        "exp": lambda: x.exp(),
        "sum": lambda: x.sum(),
        "softmax": lambda: x.softmax(dim=-1),
        "log_softmax": lambda: x.log_softmax(dim=-1),
        "layer_norm": lambda: F.layer_norm(x, (8,)),
        "mse_loss": lambda: F.mse_loss(x, 2 * x),
        "cross_entropy": lambda: F.cross_entropy(x, target),
    }


def autocast_dtypes(
    device_type: str = "cpu", dtype: torch.dtype | None = None, *, input_dtype: torch.dtype = torch.float32
) -> dict[str, torch.dtype]:
    """Ask `torch.autocast` which dtype each of a dozen common operations returns.

    Each operation runs once on a small tensor of ``input_dtype`` inside
    ``torch.autocast(device_type, dtype=dtype)``, and the dtype of its output is recorded. Nothing is
    assumed: the table is whatever this PyTorch build on this device does.

    Args:
        device_type: ``"cpu"`` or ``"cuda"``.
        dtype: the low-precision dtype autocast should use; ``None`` picks bfloat16 on the CPU and
            float16 on CUDA.
        input_dtype: the dtype of the activations fed in: float32, as a model's input is, or the low
            dtype, as the output of an earlier matmul under autocast is.

    Returns:
        The output dtype of each operation, by name, in a fixed order.

    Raises:
        ValueError: if ``device_type`` is neither ``"cpu"`` nor ``"cuda"``, or a dtype is not floating.
        TypeError: if ``dtype`` or ``input_dtype`` is not a ``torch.dtype``.
        RuntimeError: if ``device_type`` is ``"cuda"`` and this machine has no CUDA device.

    Examples:
        >>> table = autocast_dtypes("cpu", torch.bfloat16)
        >>> table["linear"], table["relu"]
        (torch.bfloat16, torch.float32)
        >>> autocast_dtypes("tpu")
        Traceback (most recent call last):
        ...
        ValueError: device_type must be 'cpu' or 'cuda', got 'tpu'
    """
    dtype = _check_autocast_args(device_type, dtype, input_dtype)
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)).to(device_type, input_dtype)
    probes = _autocast_probes(x)
    with torch.autocast(device_type, dtype=dtype):
        return {name: probe().dtype for name, probe in probes.items()}


def small_loss_gradient(dtype: torch.dtype | None, *, scale: float = 1.0, loss_factor: float = 1e-7) -> Tensor:
    r"""The weight gradient of a tiny loss through a linear layer run under CPU autocast, unscaled.

    A linear layer of 4 inputs and 3 outputs (seeded) sees a batch of 8 inputs; the loss is
    ``loss_factor`` times the mean square of its outputs, small like the per-parameter share of a real
    model's loss. The loss is multiplied by ``scale`` before ``backward`` and the gradient divided by
    it afterwards (in float32), which is loss scaling in two lines.

    Args:
        dtype: the autocast dtype (``torch.float16`` or ``torch.bfloat16``), or ``None`` for plain float32.
        scale: the loss scale $S$; the returned gradient is already divided by it.
        loss_factor: how small the loss is.

    Returns:
        The float32 gradient of the weight, shape ``(3, 4)``.

    Raises:
        ValueError: if ``scale`` is not a positive finite number, or ``dtype`` is not a 16-bit float.
        TypeError: if ``scale`` is not a number.

    Examples:
        >>> (small_loss_gradient(torch.float16) == 0).all().item()
        True
        >>> small_loss_gradient(torch.float16, scale=0.0)
        Traceback (most recent call last):
        ...
        ValueError: scale must be a positive finite number, got 0.0
    """
    if dtype not in (None, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float16, torch.bfloat16 or None, got {dtype!r}")
    _check_positive_finite("scale", scale)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        layer = nn.Linear(4, 3)
        x = torch.randn(8, 4)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = layer(x)  # (8, 3), in `dtype` under autocast
        loss = out.float().pow(2).mean() * loss_factor
    # The scaled loss flows backwards through the 16-bit matmul: every intermediate gradient is S times
    # larger than the true one, far from float16's underflow.
    (loss * scale).backward()
    return layer.weight.grad / scale


# A dynamic loss scaler, from scratch. Each optimizer moves through three stages within an iteration:
# "ready" (nothing done), "unscaled" (its gradients were divided by the scale and checked), and
# "stepped". `update` closes the iteration and sends every optimizer back to "ready".
_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


def _float32(value: float) -> float:
    """Round a Python float to the nearest float32, as storing it in PyTorch's float32 scale tensor does."""
    return torch.tensor(value, dtype=torch.float64).float().item()


class LossScaler:
    r"""Dynamic loss scaling from scratch, with the names and behaviour of ``torch.amp.GradScaler``.

    The loss is multiplied by a scale $S$ before ``backward``, so every gradient is $S$ times larger and
    small float16 gradients survive. Before the optimizer steps, the gradients are divided by $S$ and
    checked: if any is ``inf`` or ``NaN`` the step is skipped and $S$ shrinks by ``backoff_factor``;
    after ``growth_interval`` good steps in a row, $S$ grows by ``growth_factor``.

    Args:
        init_scale: the first scale, $2^{16}$ by default.
        growth_factor: what the scale is multiplied by after ``growth_interval`` good steps, above 1.
        backoff_factor: what the scale is multiplied by after an overflow, between 0 and 1.
        growth_interval: how many good steps in a row earn a growth, at least 1.
        enabled: ``False`` turns every method into a pass-through (``step`` simply steps), so one loop
            serves float16, bfloat16 and float32.

    Raises:
        ValueError: if an argument is out of its range.
        TypeError: if an argument has the wrong type.

    Examples:
        >>> scaler = LossScaler(init_scale=1024.0, growth_interval=3)
        >>> scaler.get_scale(), scaler.scale(torch.tensor(0.5))
        (1024.0, tensor(512.))
        >>> LossScaler(growth_factor=0.5)
        Traceback (most recent call last):
        ...
        ValueError: growth_factor must be a number above 1.0, got 0.5
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        _check_scaler_args(init_scale, growth_factor, backoff_factor, growth_interval, enabled)
        self._enabled = enabled
        # PyTorch keeps the scale in a float32 tensor; ours is a Python float rounded to float32 at every
        # change, so both hold the very same number.
        self._scale = _float32(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        # Good steps in a row since the last growth or overflow.
        self._growth_tracker = 0
        # Per optimizer (by id) for the current iteration: its stage, and whether its gradients held an
        # inf or NaN (None until they are checked).
        self._optimizer_states: dict[int, dict[str, Any]] = {}

    def _state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return self._optimizer_states.setdefault(id(optimizer), {"stage": _READY, "found_inf": None})

    def scale(self, outputs: Tensor | Iterable[Tensor]) -> Tensor | Iterable[Tensor]:
        """Multiply a loss (or a list or tuple of them) by the current scale.

        Examples:
            >>> LossScaler(init_scale=8.0).scale([torch.tensor(1.0), torch.tensor(2.0)])
            [tensor(8.), tensor(16.)]
        """
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            # A float32 0-d tensor, as PyTorch multiplies by: a float16 0-d loss comes out float32.
            return outputs * torch.tensor(self._scale, dtype=torch.float32, device=outputs.device)
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(output) for output in outputs)
        if isinstance(outputs, Iterable):
            return map(self.scale, outputs)
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the optimizer's gradients by the scale, in place, and note whether any is inf or NaN.

        Call it at most once per optimizer per iteration, after every backward, when the gradients must
        be read or changed at their true size (clipping); `step` calls it otherwise.

        Raises:
            RuntimeError: if called twice for one optimizer in an iteration, or after `step`.
            ValueError: if a gradient is float16 (float16 parameters: the model was ``.half()``-ed).
        """
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["stage"] == _UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] == _STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # The reciprocal is taken in float64 and rounded once to float32, as PyTorch does: dividing by a
        # float32 scale could round differently from multiplying by its float32 inverse.
        inv_scale = torch.tensor(1.0 / self._scale, dtype=torch.float64).float()
        found_inf = None  # stays None for an optimizer without a single gradient: nothing was checked
        with torch.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    if param.grad.dtype == torch.float16:
                        raise ValueError("Attempting to unscale FP16 gradients.")
                    # Check first, then divide: an inf stays inf (and a NaN NaN) either way, and the
                    # step that would read them is skipped.
                    found_inf = bool(found_inf) or not bool(torch.isfinite(param.grad).all())
                    param.grad.mul_(inv_scale.to(param.grad.device))
        state["found_inf"] = found_inf
        state["stage"] = _UNSCALED

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        """Unscale (unless `unscale_` already did) and call ``optimizer.step()``, unless a gradient overflowed.

        Returns:
            What ``optimizer.step`` returns, or ``None`` when the step is skipped.

        Raises:
            RuntimeError: if called twice in one iteration without `update`, with a ``closure``, or when
                the optimizer has no gradients to check.
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        state = self._state(optimizer)
        if state["stage"] == _STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] == _READY:
            self.unscale_(optimizer)
        if state["found_inf"] is None:
            raise RuntimeError("No inf checks were recorded for this optimizer.")
        # The skipped step: parameters (and the optimizer's state, momentum and all) stay untouched.
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = _STEPPED
        return result

    def update(self, new_scale: float | Tensor | None = None) -> None:
        r"""Close the iteration: back off after an overflow, grow after ``growth_interval`` good steps.

        Args:
            new_scale: set the scale to this instead (a float or a one-element tensor).

        Raises:
            RuntimeError: if no optimizer's gradients were checked in this iteration.
        """
        if not self._enabled:
            return
        if new_scale is not None:
            self._scale = _float32(float(new_scale))
        else:
            checked = [s["found_inf"] for s in self._optimizer_states.values() if s["found_inf"] is not None]
            if not checked:
                raise RuntimeError("No inf checks were recorded prior to update.")
            if any(checked):
                # An overflow: the scale was too large. Shrink it and start counting good steps afresh.
                self._scale = _float32(self._scale * self._backoff_factor)
                self._growth_tracker = 0
            elif self._growth_tracker + 1 == self._growth_interval:
                # A long enough run of good steps: try a larger scale, unless it would be float32's inf.
                grown = _float32(self._scale * self._growth_factor)
                if math.isfinite(grown):
                    self._scale = grown
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
        self._optimizer_states = {}

    def get_scale(self) -> float:
        """The current scale as a Python float (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def is_enabled(self) -> bool:
        """Whether scaling is on."""
        return self._enabled

    def state_dict(self) -> dict[str, float | int]:
        """The scaler's state under ``GradScaler``'s keys, so a checkpoint moves between the two (empty when disabled).

        Examples:
            >>> LossScaler(init_scale=4.0, growth_interval=10).state_dict()
            {'scale': 4.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 10, '_growth_tracker': 0}
        """
        if not self._enabled:
            return {}
        return {
            "scale": self._scale,
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker,
        }

    def load_state_dict(self, state_dict: dict[str, float | int]) -> None:
        """Restore the state `state_dict` returned (ours or ``GradScaler``'s); a no-op when disabled.

        Raises:
            RuntimeError: if ``state_dict`` is empty (saved from a disabled scaler).
            KeyError: if a key is missing.
        """
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler."
            )
        self._scale = _float32(float(state_dict["scale"]))
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def __repr__(self) -> str:
        return (
            f"LossScaler(scale={self.get_scale():g}, growth_factor={self._growth_factor:g}, "
            f"backoff_factor={self._backoff_factor:g}, growth_interval={self._growth_interval}, "
            f"enabled={self._enabled})"
        )


def run_with_scaler(
    scaler: LossScaler | Any,
    *,
    steps: int = 200,
    overflow_steps: Iterable[int] = (),
    nan_steps: Iterable[int] = (),
    dtype: torch.dtype | None = None,
    max_norm: float | None = None,
    seed: int = 0,
) -> dict[str, list]:
    """Train a tiny classifier with a loss scaler, and record the scale and the step decisions.

    The same seeded model (8 inputs, 32 hidden units, 4 classes), batch of 64 and SGD optimizer every
    time, so two scalers run with the same arguments can be compared step for step. Overflows can be
    injected: on the listed steps one gradient element is set to ``inf`` (or ``NaN``) after ``backward``,
    as an overflowing float16 backward pass would leave it. With ``dtype=torch.float16`` the forward pass
    runs under CPU autocast and overflows happen by themselves once the scale is too large.

    Args:
        scaler: a [`LossScaler`][torchenstein.training.mixed_precision.LossScaler] or a
            ``torch.amp.GradScaler("cpu", ...)``.
        steps: how many iterations.
        overflow_steps: iterations (counted from 0) whose gradient gets an ``inf``.
        nan_steps: iterations whose gradient gets a ``NaN``.
        dtype: the autocast dtype of the forward pass, or ``None`` for float32.
        max_norm: if given, unscale and clip the gradient norm to it before each step.
        seed: seeds the model and the data.

    Returns:
        ``{"scale": [...], "stepped": [...], "loss": [...], "params": [...]}``: the scale after each
        ``update``, whether each optimizer step was taken, each iteration's (unscaled) loss, and the
        final parameters.

    Raises:
        TypeError: if ``steps`` is not an int.
        ValueError: if ``steps`` is below 1.

    Examples:
        >>> run = run_with_scaler(LossScaler(init_scale=4.0, growth_interval=2), steps=5, overflow_steps=[2])
        >>> run["scale"], run["stepped"]
        ([4.0, 8.0, 4.0, 4.0, 8.0], [True, True, False, True, True])
    """
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {steps!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    overflow_steps, nan_steps = set(overflow_steps), set(nan_steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
        inputs = torch.randn(64, 8)  # (N, features)
        targets = torch.randint(0, 4, (64,))  # (N,)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    # Count the optimizer steps really taken: a hook runs after every optimizer.step().
    taken = []
    optimizer.register_step_post_hook(lambda *_: taken.append(True))
    first = model[0].weight
    record: dict[str, list] = {"scale": [], "stepped": [], "loss": []}
    for step in progress(range(steps), desc="loss scaling", leave=False):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(inputs), targets)  # float32: cross_entropy is on autocast's float32 list
        scaler.scale(loss).backward()
        if step in overflow_steps:
            first.grad[0, 0] = math.inf
        if step in nan_steps:
            first.grad[0, 0] = math.nan
        if max_norm is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        before = len(taken)
        scaler.step(optimizer)
        scaler.update()
        record["scale"].append(scaler.get_scale())
        record["stepped"].append(len(taken) > before)
        record["loss"].append(loss.item())
    record["params"] = [p.detach().clone() for p in model.parameters()]
    return record


def plot_loss_scale(*, steps: int = 200, growth_interval: int = 10, init_scale: float = 2.0**16) -> Figure:
    """Draw the loss scale over a float16 training run, with every skipped step marked.

    The run is [`run_with_scaler`][torchenstein.training.mixed_precision.run_with_scaler] with a float16
    forward pass and no planted faults: every overflow is real. PyTorch's ``GradScaler`` runs the same
    training and is drawn dashed on top.

    Args:
        steps: how many iterations.
        growth_interval: good steps in a row before the scale doubles.
        init_scale: the first scale.

    Returns:
        A figure with one axis: the scale (log 2) against the step.

    Examples:
        >>> fig = plot_loss_scale(steps=30)
        >>> len(fig.axes), fig.axes[0].get_ylabel()
        (1, 'loss scale (log2)')
    """
    ours = run_with_scaler(
        LossScaler(init_scale=init_scale, growth_interval=growth_interval), steps=steps, dtype=torch.float16
    )
    theirs = run_with_scaler(
        torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=growth_interval),
        steps=steps,
        dtype=torch.float16,
    )
    fig, (ax,) = new_figure(width=7.5, height=3.4)
    # The scale *in use* during each step: the initial one, then whatever the previous update left.
    for run, style in ((ours, {"color": PALETTE[0], "linewidth": 2.2, "label": "LossScaler (ours)"}),
                       (theirs, {"color": PALETTE[1], "linestyle": (0, (4, 3)), "linewidth": 1.4,
                                 "label": "torch.amp.GradScaler"})):
        in_use = [math.log2(s) for s in [init_scale, *run["scale"][:-1]]]
        ax.plot(range(steps), in_use, drawstyle="steps-post", **style)
    in_use = [init_scale, *ours["scale"][:-1]]
    skipped = [step for step, stepped in enumerate(ours["stepped"]) if not stepped]
    ax.scatter(skipped, [math.log2(in_use[step]) for step in skipped], marker="x", color=PALETTE[2], zorder=3,
               label="overflow at this scale: step skipped")
    ax.set(xlabel="step", ylabel="loss scale (log2)", title="Dynamic loss scaling on a float16 forward pass")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def scale_history(
    overflows: Sequence[bool],
    init_scale: float = 2.0**16,
    growth_factor: float = 2.0,
    backoff_factor: float = 0.5,
    growth_interval: int = 2000,
) -> list[float]:
    """Challenge solution: the scale after each ``update``, predicted from the overflow pattern alone.

    Args:
        overflows: one boolean per iteration, ``True`` where a gradient was inf or NaN.
        init_scale: the first scale.
        growth_factor: the factor after ``growth_interval`` good steps in a row.
        backoff_factor: the factor after an overflow.
        growth_interval: good steps in a row that earn a growth.

    Returns:
        The scale after each iteration's ``update``, one float per entry of ``overflows``.

    Raises:
        ValueError: if a factor or the interval is out of range.

    Examples:
        >>> scale_history([False, False, True, False], init_scale=8.0, growth_interval=2)
        [8.0, 16.0, 8.0, 8.0]
    """
    _check_scaler_args(init_scale, growth_factor, backoff_factor, growth_interval, True)
    scale, good_steps, history = _float32(init_scale), 0, []
    for overflow in overflows:
        if overflow:
            scale, good_steps = _float32(scale * backoff_factor), 0
        elif good_steps + 1 == growth_interval:
            grown = _float32(scale * growth_factor)
            scale = grown if math.isfinite(grown) else scale
            good_steps = 0
        else:
            good_steps += 1
        history.append(scale)
    return history


def check_scale_history(candidate: Callable[..., list[float]]) -> None:
    """Check an attempt at `scale_history` against a `LossScaler` driven by the same overflows.

    Raises:
        AssertionError: if a predicted scale differs; the message names the case and the step.
    """
    generator = torch.Generator().manual_seed(0)
    cases = [
        ("no overflow, defaults", [False] * 2001, {}),
        ("an overflow every 5 steps", [i % 5 == 4 for i in range(60)], {"growth_interval": 3}),
        ("overflows in a row", [True] * 6 + [False] * 20, {"growth_interval": 4, "init_scale": 2.0**20}),
        ("random overflows, factors 1.5 and 0.3", (torch.rand(300, generator=generator) < 0.1).tolist(),
         {"growth_factor": 1.5, "backoff_factor": 0.3, "growth_interval": 6, "init_scale": 1000.0}),
        ("growth_interval 1", [False, False, True, False, True, True, False], {"growth_interval": 1}),
        ("at float32's ceiling", [False] * 12, {"init_scale": 2.0**126, "growth_interval": 2}),
        ("no steps at all", [], {}),
    ]
    for case, overflows, settings in cases:
        expected = _scaler_driven_by(tuple(overflows), **settings)
        try:
            got = candidate(list(overflows), **settings)
        except Exception as error:  # a crash is a wrong answer, reported with its case
            raise AssertionError(f"{case}: the candidate raised {error!r}") from error
        assert isinstance(got, list), f"{case}: return a list of floats, got {type(got).__name__}"
        assert len(got) == len(expected), f"{case}: expected {len(expected)} scales (one per step), got {len(got)}"
        for step, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert math.isclose(float(g), e, rel_tol=1e-6), f"{case}: after step {step} the scale is {e!r}, got {g!r}"


@functools.lru_cache(maxsize=16)
def _scaler_driven_by(overflows: tuple[bool, ...], **settings: Any) -> tuple[float, ...]:
    """The scales a real `LossScaler` reaches when its one gradient overflows on the given steps.

    Remembered: a checker run twice (on several attempts) drives the real scaler only once per case.
    """
    scaler = LossScaler(**settings)
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.0)
    history = []
    for overflow in overflows:
        weight.grad = torch.full((1,), math.inf if overflow else 1.0)
        scaler.step(optimizer)
        scaler.update()
        history.append(scaler.get_scale())
    return tuple(history)


def scaled_accumulation_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: LossScaler | Any,
    micro_batches: Sequence[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> float:
    """Challenge solution: one optimizer step accumulated over equal micro-batches, with loss scaling.

    Args:
        model: the network.
        optimizer: an optimizer over its parameters.
        scaler: a `LossScaler` or a ``torch.amp.GradScaler``.
        micro_batches: ``(inputs, targets)`` pairs of equal size.
        loss_fn: a mean-reduced loss.

    Returns:
        The mean loss over the whole batch, as a float.

    Raises:
        ValueError: if there are no micro-batches or their sizes differ.

    Examples:
        >>> layer = nn.Linear(3, 2)
        >>> sgd = torch.optim.SGD(layer.parameters(), lr=0.1)
        >>> batches = [(torch.randn(4, 3), torch.randint(0, 2, (4,))) for _ in range(2)]
        >>> loss = scaled_accumulation_step(layer, sgd, LossScaler(), batches, F.cross_entropy)
        >>> isinstance(loss, float)
        True
    """
    sizes = {len(inputs) for inputs, _ in micro_batches}
    if len(micro_batches) == 0 or len(sizes) != 1:
        raise ValueError(f"micro_batches must be a non-empty list of equal-sized batches, got sizes {sorted(sizes)}")
    k = len(micro_batches)
    optimizer.zero_grad()
    total = 0.0
    for inputs, targets in micro_batches:
        # Each micro-batch mean counts 1/k of the batch mean; every backward adds S times its share.
        loss = loss_fn(model(inputs), targets) / k
        scaler.scale(loss).backward()
        total += loss.item()
    # Only now is the gradient complete: one unscale and check, one step (or skip), one update.
    scaler.step(optimizer)
    scaler.update()
    return total


def check_scaled_accumulation_step(candidate: Callable[..., float]) -> None:
    """Check an attempt at `scaled_accumulation_step` against one full-batch step.

    Raises:
        AssertionError: if the weights, the loss, the skipped step or the scale differ from the reference.
    """
    scalers = [("LossScaler", lambda: LossScaler(init_scale=2.0**12, growth_interval=2))]
    if hasattr(torch.amp, "GradScaler"):
        scalers.append(("GradScaler", lambda: torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2)))
    for name, make_scaler in scalers:
        for k in (1, 3, 4):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(k)
                net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
                inputs, targets = torch.randn(4 * k, 5), torch.randint(0, 3, (4 * k,))
            twin = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
            twin.load_state_dict(net.state_dict())
            micro_batches = list(zip(inputs.split(4), targets.split(4), strict=True))
            case = f"{name}, {k} micro-batches of 4"
            scaler = make_scaler()
            optimizer = torch.optim.SGD(twin.parameters(), lr=0.5, momentum=0.9)
            reference = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
            for step in range(3):
                # Stale gradients from outside the step must not leak in.
                for p in twin.parameters():
                    p.grad = torch.full_like(p, 3.0)
                reference.zero_grad()
                full_loss = F.cross_entropy(net(inputs), targets)
                full_loss.backward()
                reference.step()
                try:
                    loss = candidate(twin, optimizer, scaler, micro_batches, F.cross_entropy)
                except Exception as error:  # a crash is a wrong answer, reported with its case
                    raise AssertionError(f"{case}, step {step}: the candidate raised {error!r}") from error
                assert isinstance(loss, float), f"{case}: return the batch's mean loss as a float, got {loss!r}"
                assert math.isclose(loss, full_loss.item(), rel_tol=1e-5), (
                    f"{case}, step {step}: the batch's mean loss is {full_loss.item():.6f}, got {loss:.6f}"
                )
                for (pname, got), want in zip(twin.named_parameters(), net.parameters(), strict=True):
                    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (
                        f"{case}, step {step}: parameter {pname} differs from one full-batch step"
                    )
            # growth_interval=2: three good steps are one growth, so one update per step, not per micro-batch.
            assert scaler.get_scale() == 2.0**13, (
                f"{case}: after 3 good steps with growth_interval=2 the scale is 8192.0, got {scaler.get_scale()!r} "
                "(call update once per optimizer step)"
            )
            # A poisoned micro-batch: its loss, and so the whole gradient, is not finite. Nothing may move.
            before = [p.detach().clone() for p in twin.parameters()]
            poisoned = [(x.clone(), y) for x, y in micro_batches]
            poisoned[-1][0][0, 0] = math.inf
            try:
                candidate(twin, optimizer, scaler, poisoned, F.cross_entropy)
            except Exception as error:
                raise AssertionError(f"{case}, an overflowing micro-batch: the candidate raised {error!r}") from error
            assert all(torch.equal(a, b) for a, b in zip(before, twin.parameters(), strict=True)), (
                f"{case}: a micro-batch overflowed, so the step must be skipped and no weight may move"
            )
            assert scaler.get_scale() == 2.0**12, f"{case}: an overflow halves the scale to 4096.0, got {scaler.get_scale()!r}"


# Argument checks, kept at the foot of the module so the ideas above read first.


def _check_real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_positive_finite(name: str, value: object) -> float:
    if not (math.isfinite(_check_real(name, value)) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_scaler_args(init_scale, growth_factor, backoff_factor, growth_interval, enabled) -> None:
    """GradScaler's ranges, as ValueError and TypeError naming the argument (PyTorch asserts a few of them)."""
    _check_positive_finite("init_scale", init_scale)
    if not 1.0 < _check_real("growth_factor", growth_factor) < math.inf:
        raise ValueError(f"growth_factor must be a number above 1.0, got {growth_factor!r}")
    if not 0.0 < _check_real("backoff_factor", backoff_factor) < 1.0:
        raise ValueError(f"backoff_factor must be a number between 0 and 1 (exclusive), got {backoff_factor!r}")
    if isinstance(growth_interval, bool) or not isinstance(growth_interval, Integral):
        raise TypeError(f"growth_interval must be an int, got {growth_interval!r}")
    if growth_interval < 1:
        raise ValueError(f"growth_interval must be at least 1, got {growth_interval!r}")
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {enabled!r}")


def _check_autocast_args(device_type: object, dtype: object, input_dtype: object) -> torch.dtype:
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"device_type must be 'cpu' or 'cuda', got {device_type!r}")
    if device_type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device_type='cuda' needs a CUDA device, and this machine has none")
    if dtype is None:
        dtype = torch.bfloat16 if device_type == "cpu" else torch.float16
    for name, value in (("dtype", dtype), ("input_dtype", input_dtype)):
        if not isinstance(value, torch.dtype):
            raise TypeError(f"{name} must be a floating-point torch.dtype, got {value!r}")
        if not value.is_floating_point:
            raise ValueError(f"{name} must be a floating-point torch.dtype, got {value!r}")
    return dtype
