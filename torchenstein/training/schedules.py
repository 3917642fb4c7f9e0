r"""
# Learning-Rate Schedules: The Tempo of Training

!!! torchenstein "The Professor speaks"
    A monster trained at one speed either crawls for ever or thrashes about the minimum like a cat in a
    sack. The cure is tempo: gentle steps while the optimiser's statistics are newborn, bold ones while
    there is ground to cover, tiny ones at the end to settle. Today we write every schedule as a plain
    function of the step, prove each equal to PyTorch's scheduler objects over whole runs, find out why
    PyTorch's cosine drifts from its own formula, and catch Dr. Hammer stepping his scheduler too often,
    in the wrong order, from zero and from scratch.

**You will learn to**

- write warm-up, cosine, linear, step and one-cycle schedules as pure functions of the step, and prove
  them equal to `LambdaLR`, `CosineAnnealingLR`, `StepLR`, `OneCycleLR` (its momentum included) and the
  warm-up-plus-cosine recipe `SequentialLR(LinearLR, CosineAnnealingLR)`;
- tell PyTorch's closed-form schedules from its chainable (recursive) ones, and measure how far the two
  drift apart;
- drive an optimiser with a schedule two ways: through `LambdaLR`, or by setting `lr` yourself;
- step a scheduler once per optimiser step, after the optimiser, and resume it without a jolt.

## A schedule is a function of the step

A **learning-rate schedule** gives the learning rate $\gamma_t$ for every optimiser step
$t = 0, 1, 2, \dots$ (one call of `optimizer.step()`, many of them per epoch, as in
[The training loop](../loop/index.md)). Why not keep it constant?

- **Warm-up.** At the start, Adam's second-moment estimate rests on a handful of gradients (see
  [Optimisers from scratch, II](../adam/index.md)), and a freshly initialised network's gradients are
  large and erratic. A ramp of rising learning rate over the first hundreds or thousands of steps keeps
  the first updates from wrecking it; Transformers are almost always trained with one.
- **Decay.** Large steps travel; small steps settle. At a constant rate the noise of batch gradients
  (each step sees only one batch of the data) keeps the parameters bouncing around a minimum (the Adam
  lesson's trajectories show the wobble); lowering the rate towards the end lets them come to rest.

Our schedules are plain Python functions: the step goes in, a float comes out, every other argument is a
keyword. There is nothing to save, nothing to step and nothing to forget.
[`linear_warmup`][torchenstein.training.schedules.linear_warmup] ramps up over $W$ steps,
[`cosine_decay`][torchenstein.training.schedules.cosine_decay] and
[`linear_decay`][torchenstein.training.schedules.linear_decay] fall from $\gamma$ to $\gamma_{\min}$ over
$T$ steps, [`step_decay`][torchenstein.training.schedules.step_decay] multiplies by $g$ every $s$ steps:

$$
\gamma^{\text{warm-up}}_t = \gamma\,\frac{t+1}{W+1}\ (t < W), \qquad
\gamma^{\cos}_t = \gamma_{\min} + \tfrac12(\gamma - \gamma_{\min})\Bigl(1 + \cos\frac{\pi t}{T}\Bigr), \qquad
\gamma^{\text{step}}_t = \gamma\, g^{\lfloor t/s \rfloor} .
$$

[`warmup_cosine`][torchenstein.training.schedules.warmup_cosine] chains the first two, the recipe of
most language models: $W$ steps up to the peak, then a cosine that reaches $\gamma_{\min}$ at step $T$
and stays there.

```pycon
>>> from functools import partial
>>> from torchenstein.training.schedules import cosine_decay, step_decay, warmup_cosine
>>> def show(schedule, steps):
...     print({t: round(schedule(t), 4) for t in steps})
>>> recipe_lr = partial(warmup_cosine, warmup_steps=4, total_steps=20, base_lr=1.0, min_lr=0.1)
>>> show(recipe_lr, (0, 3, 4, 12, 20, 25))
{0: 0.2, 3: 0.8, 4: 1.0, 12: 0.55, 20: 0.1, 25: 0.1}
>>> show(partial(step_decay, step_size=10, base_lr=1.0, gamma=0.5), (0, 9, 10, 25))
{0: 1.0, 9: 1.0, 10: 0.5, 25: 0.25}
>>> warmup_cosine(3, warmup_steps=4, total_steps=4, base_lr=1.0)
Traceback (most recent call last):
...
ValueError: total_steps must be larger than warmup_steps=4, got 4

```

## Closed form against PyTorch's chain

PyTorch's schedulers are objects that you `step()` once per optimiser step; each keeps a counter,
`last_epoch` (a step counter, despite its name: after $t$ calls of `step()` it is $t$), and writes `lr`
into the optimiser's parameter groups (its `param_groups`, met in the [SGD lesson](../sgd/index.md)).
Many of them compute the new rate **recursively**, from the rate currently in the optimiser: a
**chainable** form, designed so that several schedulers can act on the same optimiser and compose. For
the cosine,

$$
\gamma_t = \gamma_{\min} + (\gamma_{t-1} - \gamma_{\min})\,\frac{1 + \cos(\pi t / T)}{1 + \cos(\pi (t-1)/T)} ,
$$

which telescopes to the closed form, in exact arithmetic. In floating point, every step multiplies the
previous step's rounding error by a new ratio that is itself rounded, and the errors add up. Many
schedulers also keep a **closed form**, `_get_closed_form_lr()` (a private method, used when `step` is
given an explicit epoch). Our `cosine_decay` performs the same operations as that closed form, so it
agrees with it bit for bit; with the chain it agrees to better than $10^{-14}$ relative but not to the
bit, and the tests find the gap growing with the length of the run:

```pycon
>>> import math
>>> import torch
>>> from torch.optim.lr_scheduler import CosineAnnealingLR, StepLR
>>> def chainable_lrs(make_scheduler, steps, lr=0.5):
...     optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
...     scheduler = make_scheduler(optimizer)
...     lrs = []
...     for _ in range(steps):
...         lrs.append(optimizer.param_groups[0]["lr"])     # the rate this step uses
...         optimizer.step()
...         scheduler.step()
...     return lrs, scheduler
>>> def worst_relative_gap(a, b):
...     return max(abs(x - y) / y for x, y in zip(a, b))
>>> T = 1000
>>> theirs, scheduler = chainable_lrs(lambda o: CosineAnnealingLR(o, T_max=T, eta_min=1e-4), T)
>>> ours = [cosine_decay(t, total_steps=T, base_lr=0.5, min_lr=1e-4) for t in range(T)]
>>> gap = worst_relative_gap(theirs, ours)
>>> print(f"chain bitwise equal: {theirs == ours}   chain within 1e-14: {gap < 1e-14}")
chain bitwise equal: False   chain within 1e-14: True
>>> closed = []
>>> for t in range(T):
...     scheduler.last_epoch = t                  # ask the closed form about step t
...     closed.append(scheduler._get_closed_form_lr()[0])
>>> print(f"closed form bitwise equal: {closed == ours}")
closed form bitwise equal: True
>>> theirs, _ = chainable_lrs(lambda o: StepLR(o, step_size=7, gamma=0.3), 60)
>>> ours = [step_decay(t, step_size=7, base_lr=0.5, gamma=0.3) for t in range(60)]
>>> print(f"StepLR equal: {theirs == ours}, within 1e-15: {worst_relative_gap(theirs, ours) < 1e-15}")
StepLR equal: False, within 1e-15: True

```

`StepLR` chains too: it multiplies the current rate by $g$ at each drop, where we raise $g$ to a power,
and the two roundings differ in the last bit. None of this matters for training (a relative error of
$10^{-14}$ in a learning rate is far below any noise), but it decides what "equal" can mean, and the
tests hold each chain to a stated tolerance while holding the closed forms to the bit. The chain has one
real consequence: it reads the rate from the optimiser, so whatever wrote a wrong rate there, the chain
carries the error forward, as Dr. Hammer will discover when he resumes.

!!! note "Where it differs from PyTorch"
    Past `total_steps` our `cosine_decay` holds its floor; `CosineAnnealingLR` keeps following the
    cosine, which climbs back to the top after another `T_max` steps (it is periodic). Our `one_cycle`
    raises `ValueError` for a step past `total_steps`, as `OneCycleLR` does, and also for a `pct_start`
    that leaves a phase of zero length, where `OneCycleLR` divides by zero. The tests pin all three.

## Driving an optimiser with a schedule

**`LambdaLR`** takes a function of the step that returns a *multiplier* of the optimiser's initial `lr`;
[`as_multiplier`][torchenstein.training.schedules.as_multiplier] divides our schedule by that
`base_lr`, and `functools.partial` fixes its keyword arguments. Dividing by `base_lr` and multiplying
back may round the last bit, so the two agree to $10^{-15}$ relative rather than bitwise.
**By hand**, the way nanoGPT does it, we compute the rate ourselves and write it into every parameter
group with [`set_lr`][torchenstein.training.schedules.set_lr] before each step: no scheduler object at
all, and the step number is the schedule's whole state.

```pycon
>>> from torch.optim.lr_scheduler import LambdaLR
>>> from torchenstein.training.schedules import as_multiplier, set_lr
>>> schedule = partial(warmup_cosine, warmup_steps=10, total_steps=100, base_lr=3e-4, min_lr=3e-5)
>>> via_lambda, _ = chainable_lrs(lambda o: LambdaLR(o, as_multiplier(schedule, base_lr=3e-4)), 100, lr=3e-4)
>>> optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=3e-4)
>>> by_hand = []
>>> for step in range(100):
...     set_lr(optimizer, schedule(step))
...     by_hand.append(optimizer.param_groups[0]["lr"])
...     optimizer.step()
>>> ours = [schedule(t) for t in range(100)]
>>> print(f"LambdaLR within 1e-15: {worst_relative_gap(via_lambda, ours) < 1e-15}")
LambdaLR within 1e-15: True
>>> print(f"by hand bitwise equal: {by_hand == ours}")
by hand bitwise equal: True

```

## Warm-up and cosine with SequentialLR

PyTorch builds the same recipe from two schedulers: `LinearLR` for the ramp and `CosineAnnealingLR` for
the decay, joined by `SequentialLR` at a **milestone**, the step where the second takes over. Our ramp
$\gamma\,(t+1)/(W+1)$ draws the same line as `LinearLR(start_factor=1/(W+1), end_factor=1.0,
total_iters=W)`, whose factor is $\frac{1}{W+1} + \frac{W}{W+1}\cdot\frac{t}{W} = \frac{t+1}{W+1}$. Over a
whole run the two agree to better than $10^{-14}$ relative (both `LinearLR` and `CosineAnnealingLR`
chain):

```pycon
>>> from torch.optim.lr_scheduler import LinearLR, SequentialLR
>>> W, T = 10, 100
>>> def recipe(optimizer, cosine_steps=T - W):
...     warmup = LinearLR(optimizer, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W)
...     cosine = CosineAnnealingLR(optimizer, T_max=cosine_steps, eta_min=3e-5)
...     return SequentialLR(optimizer, [warmup, cosine], milestones=[W])
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")        # older releases warn from inside SequentialLR (see below)
...     theirs, _ = chainable_lrs(recipe, T, lr=3e-4)
...     mistaken, _ = chainable_lrs(lambda o: recipe(o, cosine_steps=T), T, lr=3e-4)
>>> ours = [schedule(t) for t in range(T)]
>>> print(f"SequentialLR within 1e-14: {worst_relative_gap(theirs, ours) < 1e-14}")
SequentialLR within 1e-14: True
>>> print({t: round(theirs[t] / 3e-4, 4) for t in (W - 2, W - 1, W, W + 1)})
{8: 0.8182, 9: 0.9091, 10: 1.0, 11: 0.9997}
>>> print(f"last step, T_max=T-W: {theirs[T - 1] / 3e-4:.3f}   T_max=T: {mistaken[T - 1] / 3e-4:.3f}")
last step, T_max=T-W: 0.100   T_max=T: 0.127

```

This recipe has a reputation for an off-by-one at the milestone. Here is what I found when I took it
apart:

- At step $W$, `SequentialLR` does not step the cosine; it **restarts** it at its own step 0, from its
  closed form. From then on the cosine counts $t - W$, so its `T_max` must be $T - W$. Setting
  `T_max=T` (the common slip) leaves the cosine short of its floor when training ends, as printed.
- `LinearLR` would reach its `end_factor` at its own step `total_iters` $= W$, but at that very step the
  cosine takes over; its step-0 value is the same peak, so the seam is smooth and the peak is used once.
  Choose `total_iters` $\ne$ milestone and the seam shows: a jump up (the warm-up cut short) or a
  plateau (the warm-up finished early).
- How the restart is done has changed: older releases (2.4 among them) called the cosine's `step(0)`,
  which raised a deprecation `UserWarning` from inside PyTorch at the milestone, a warning many users
  took for a bug of their own; recent releases (2.13 among them) restart it quietly. The values are the
  same.

## One cycle

Leslie Smith's **one-cycle** policy climbs from `max_lr / div_factor` to `max_lr` over the first
`pct_start` of the run, then falls far below its start, to `max_lr / div_factor / final_div_factor`,
along a half cosine (`anneal_strategy="cos"`) or a straight line (`"linear"`). With `three_phase=True` it
first falls back to its start symmetrically and only then anneals. While the rate climbs, the
**momentum** (SGD's `momentum`, or Adam's $\beta_1$) falls from `max_momentum` to `base_momentum`, and
it climbs back as the rate falls: a high rate with high momentum would overshoot.
[`one_cycle`][torchenstein.training.schedules.one_cycle] and
[`one_cycle_momentum`][torchenstein.training.schedules.one_cycle_momentum] replay `OneCycleLR`'s
arithmetic, phase boundaries included (its first phase ends at step `pct_start * total_steps - 1`, its
three-phase middle at `2 * pct_start * total_steps - 2`), so they agree with it bit for bit, both values:

```pycon
>>> from torch.optim.lr_scheduler import OneCycleLR
>>> from torchenstein.training.schedules import one_cycle, one_cycle_momentum
>>> options = {"pct_start": 0.25, "anneal_strategy": "linear", "three_phase": True}
>>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
>>> scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=40, div_factor=10.0, **options)
>>> lr_equal = momentum_equal = True
>>> for step in range(40):
...     group = optimizer.param_groups[0]
...     lr_equal &= group["lr"] == one_cycle(step, total_steps=40, max_lr=0.1, div_factor=10.0, **options)
...     momentum_equal &= group["momentum"] == one_cycle_momentum(step, total_steps=40, **options)
...     optimizer.step()
...     scheduler.step()
>>> print(f"learning rates bitwise equal: {lr_equal}, momenta bitwise equal: {momentum_equal}")
learning rates bitwise equal: True, momenta bitwise equal: True
>>> one_cycle(41, total_steps=40, max_lr=0.1)
Traceback (most recent call last):
...
ValueError: step must be at most total_steps=40, got 41

```

Mind the very end. `OneCycleLR` may be stepped `total_steps` times, and after its last step it stands at
step `total_steps`, one past the end of its last phase, where its formula runs on: the cosine climbs back
to the rate of step `total_steps - 2`, and the straight line drops below zero. No update uses that rate
when you step exactly `total_steps` times, but a loop that logs the rate after training, or trains one
step more (PyTorch raises only at the step after), meets it. `one_cycle` returns the same values:

```pycon
>>> {strategy: [f"{one_cycle(t, total_steps=40, max_lr=0.1, anneal_strategy=strategy):.2e}" for t in (38, 39, 40)]
...  for strategy in ("cos", "linear")}
{'cos': ['3.15e-04', '4.00e-07', '3.15e-04'], 'linear': ['3.57e-03', '4.00e-07', '-3.57e-03']}

```

Here are all of them side by side:

![Two panels over 100 steps. Left: warm-up then cosine rises in 10 steps to 1 and curves down to 0.1; linear decay falls in a straight line from 1 to 0; step decay drops by a factor of 0.3 every 33 steps; one-cycle rises from 0.04 to 1 by step 30 and curves down to almost 0. Right: one-cycle with cosine and with linear annealing, and three-phase one-cycle, which falls back to 0.04 by step 60 before sinking to almost 0; their momenta, dashed, move opposite to the learning rate between 0.95 and 0.85, the three-phase one holding 0.95 in its last phase.](plot_schedules.svg)

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: stepping the scheduler per micro-batch"
    Hammer accumulates gradients over 4 micro-batches per optimiser step (see
    [Gradient accumulation](../../tensors/accumulation/index.md)) and calls `scheduler.step()` beside
    `loss.backward()`, once per micro-batch. His schedule runs four times too fast: the warm-up is over
    in a quarter of the intended steps, and the cosine hits its floor with three quarters of the
    training still to go.

    ```pycon
    >>> def lr_per_optimizer_step(scheduler_steps_per_update, updates=100, accumulation=4):
    ...     optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-4)
    ...     scheduler = LambdaLR(optimizer, as_multiplier(schedule, base_lr=3e-4))
    ...     lrs = []
    ...     for _ in range(updates):
    ...         lrs.append(optimizer.param_groups[0]["lr"])
    ...         for micro_batch in range(accumulation):
    ...             if micro_batch == accumulation - 1:
    ...                 optimizer.step()                 # one update per `accumulation` micro-batches
    ...             if scheduler_steps_per_update == "per micro-batch" or micro_batch == accumulation - 1:
    ...                 scheduler.step()
    ...     return {t: round(lrs[t] / 3e-4, 2) for t in (2, 5, 25, 50, 90)}
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")              # PyTorch does warn him, about something else
    ...     print(f"per micro-batch:     {lr_per_optimizer_step('per micro-batch')}")
    per micro-batch:     {2: 0.82, 5: 0.97, 25: 0.1, 50: 0.1, 90: 0.1}
    >>> print(f"per optimiser step:  {lr_per_optimizer_step('per optimiser step')}")
    per optimiser step:  {2: 0.27, 5: 0.55, 25: 0.94, 50: 0.63, 90: 0.13}

    ```

    PyTorch does print a warning here, but about the next trap: his first three scheduler steps come
    before the first optimiser step. `CosineAnnealingLR` would do even worse than our schedule: it does
    not stop at its floor but climbs back up, a cosine being periodic. Count the schedule in optimiser
    steps, and step the scheduler right after `optimizer.step()`.

!!! hammer "Dr. Hammer's trap: `scheduler.step()` before `optimizer.step()`"
    Since PyTorch 1.1 a scheduler sets the rate for the *next* step, so it is stepped *after* the
    optimiser. Hammer's loop does it the other way round. The first value of the schedule is never used,
    every later one comes a step early, and PyTorch says so, once, in a warning:

    ```pycon
    >>> def used_lrs(scheduler_first, steps=4):
    ...     optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ...     scheduler = LambdaLR(optimizer, lambda t: 1 / (t + 1))
    ...     used = []
    ...     for _ in range(steps):
    ...         if scheduler_first:
    ...             scheduler.step()
    ...         used.append(round(optimizer.param_groups[0]["lr"], 3))
    ...         optimizer.step()
    ...         if not scheduler_first:
    ...             scheduler.step()
    ...     return used
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     hammer = used_lrs(scheduler_first=True)
    >>> print(str(caught[0].message).split(". ")[0])
    Detected call of `lr_scheduler.step()` before `optimizer.step()`
    >>> print(f"Hammer's rates: {hammer}   the schedule: {used_lrs(scheduler_first=False)}")
    Hammer's rates: [0.5, 0.333, 0.25, 0.2]   the schedule: [1.0, 0.5, 0.333, 0.25]

    ```

!!! hammer "Dr. Hammer's trap: a warm-up that starts at zero"
    Hammer ramps his rate as $\gamma\,t/W$, a popular convention. At step 0 that is exactly zero: a full
    forward and backward pass, and the parameters do not move at all (Adam at least files the gradient
    in its moments and counts the step). PyTorch's own `LinearLR` refuses a zero start; our ramp
    starts at $\gamma/(W+1)$.

    ```pycon
    >>> def first_update(multiplier):
    ...     p = torch.ones(2, requires_grad=True)
    ...     optimizer = torch.optim.AdamW([p], lr=1e-2)
    ...     scheduler = LambdaLR(optimizer, multiplier)
    ...     p.grad = torch.ones(2)
    ...     optimizer.step()
    ...     return round((1 - p[0]).item(), 4), int(optimizer.state[p]["step"])
    >>> moved, counted = first_update(lambda t: t / 10)
    >>> print(f"from zero, t / W:            moved by {moved}, Adam's steps counted: {counted}")
    from zero, t / W:            moved by 0.0, Adam's steps counted: 1
    >>> moved, counted = first_update(lambda t: (t + 1) / 11)
    >>> print(f"ours, (t + 1) / (W + 1):     moved by {moved}, Adam's steps counted: {counted}")
    ours, (t + 1) / (W + 1):     moved by 0.0009, Adam's steps counted: 1
    >>> LinearLR(optimizer, start_factor=0.0)
    Traceback (most recent call last):
    ...
    ValueError: Starting multiplicative factor expected to be greater than 0 and less or equal to 1.

    ```

!!! hammer "Dr. Hammer's trap: resuming without the scheduler state"
    Hammer's checkpoint (the `state_dict`s of his run, met in the [SGD lesson](../sgd/index.md); a later
    lesson, [Preserving your monster's memories](../checkpoints/index.md), builds complete ones) holds
    the model and the optimiser, not the scheduler. On resume, the fresh scheduler believes it is at step
    0 and warms up again, and `LinearLR`, being chainable, multiplies the restored rate by its warm-up
    ratios: the rate soars past its peak. Loading the scheduler's `state_dict` too fixes it, but only in
    the right order. Building a scheduler writes its own first rate into the optimiser, so it must be built
    *before* `optimizer.load_state_dict` restores the saved rate (PyTorch's documentation warns about
    this); built after, it leaves its step-0 rate there, and the chained cosine carries that error to
    the end of training.

    ```pycon
    >>> def train(optimizer, scheduler, steps):
    ...     for _ in range(steps):
    ...         optimizer.step()
    ...         scheduler.step()
    >>> def fresh():
    ...     optimizer = torch.optim.AdamW([torch.zeros(2, requires_grad=True)], lr=3e-4)
    ...     return optimizer, recipe(optimizer)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     optimizer, scheduler = fresh()
    ...     train(optimizer, scheduler, 40)
    ...     saved = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    ...     resumed = {}
    ...     for how in ("without scheduler", "scheduler built after", "right"):
    ...         if how == "scheduler built after":
    ...             new_optimizer = torch.optim.AdamW([torch.zeros(2, requires_grad=True)], lr=3e-4)
    ...             new_optimizer.load_state_dict(saved["optimizer"])
    ...             new_scheduler = recipe(new_optimizer)
    ...         else:
    ...             new_optimizer, new_scheduler = fresh()
    ...             new_optimizer.load_state_dict(saved["optimizer"])
    ...         if how != "without scheduler":
    ...             new_scheduler.load_state_dict(saved["scheduler"])
    ...         train(new_optimizer, new_scheduler, 5)
    ...         resumed[how] = round(new_optimizer.param_groups[0]["lr"] / 3e-4, 3)
    >>> print(f"the schedule at step 45: {schedule(45) / 3e-4:.3f}")
    the schedule at step 45: 0.704
    >>> resumed
    {'without scheduler': 4.65, 'scheduler built after': 0.092, 'right': 0.704}

    ```

    Nor is the constructor's `last_epoch` argument a resume button: it needs an `initial_lr` in every
    parameter group (a `KeyError` otherwise), and a chainable scheduler built with it trusts whatever rate
    it finds in the optimiser. Load the `state_dict`. A pure function of the step has none of these traps:
    save the step number, and the schedule is restored.

## Challenges

**1. The Transformer's schedule.** "Attention Is All You Need" used
$\text{lrate} = d_{\text{model}}^{-0.5} \min(s^{-0.5},\, s \cdot W^{-1.5})$ at training step $s$ (from 1).
Write `inverse_sqrt(step, *, warmup_steps, base_lr)` for our step $t = s - 1$, scaled so that its peak,
at $s = W$, is `base_lr`: a linear ramp, then decay as $1/\sqrt{s}$. Check it with `check_inverse_sqrt`.

**2. Warm restarts.** `CosineAnnealingWarmRestarts(optimizer, T_0, T_mult, eta_min)` runs a cosine over
`T_0` steps, jumps back to the top, runs the next cosine `T_mult` times longer, and so on. Write it as a
pure function, `cosine_warm_restarts(step, *, T_0, T_mult=1, base_lr, eta_min=0.0)`, equal to PyTorch's
at every step, and check it with `check_cosine_warm_restarts`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

Schedule = Callable[[int], float]
"""A learning-rate schedule: the learning rate as a function of the optimiser step, from 0."""


def linear_warmup(step: int, *, warmup_steps: int, base_lr: float) -> float:
    r"""A linear ramp to ``base_lr``: $\gamma_t = \gamma\,\frac{t+1}{W+1}$ for $t < W$, then $\gamma$.

    The ramp starts at $\gamma/(W+1)$, never at zero, so step 0 already trains, and reaches
    ``base_lr`` at step ``warmup_steps``.

    Args:
        step: the optimiser step ``t``, from 0.
        warmup_steps: ``W``, the number of steps on the ramp (0 for none).
        base_lr: the learning rate the ramp climbs to.

    Returns:
        The learning rate at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.

    Examples:
        >>> [round(linear_warmup(t, warmup_steps=4, base_lr=1.0), 2) for t in range(6)]
        [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    """
    _check_step(step)
    _check_count("warmup_steps", warmup_steps, minimum=0)
    _check_lr("base_lr", base_lr)
    if step < warmup_steps:
        return base_lr * (step + 1) / (warmup_steps + 1)
    return base_lr


def cosine_decay(step: int, *, total_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    r"""Half a cosine from ``base_lr`` at step 0 down to ``min_lr`` at ``total_steps``, then flat.

    $\gamma_t = \gamma_{\min} + \frac12(\gamma - \gamma_{\min})\left(1 + \cos\frac{\pi t}{T}\right)$ for
    $t \le T$, and $\gamma_{\min}$ after.

    Args:
        step: the optimiser step ``t``, from 0.
        total_steps: ``T``, the step at which the cosine reaches ``min_lr``.
        base_lr: the learning rate at step 0.
        min_lr: the floor.

    Returns:
        The learning rate at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.

    Examples:
        >>> [round(cosine_decay(t, total_steps=4, base_lr=1.0), 4) for t in range(6)]
        [1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """
    _check_step(step)
    _check_count("total_steps", total_steps, minimum=1)
    _check_lr("base_lr", base_lr)
    _check_lr("min_lr", min_lr)
    t = min(step, total_steps)
    # The same operations in the same order as CosineAnnealingLR's closed form, so the floats agree bitwise.
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * t / total_steps)) / 2


def linear_decay(step: int, *, total_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    r"""A straight line from ``base_lr`` at step 0 down to ``min_lr`` at ``total_steps``, then flat.

    Args:
        step: the optimiser step ``t``, from 0.
        total_steps: ``T``, the step at which the line reaches ``min_lr``.
        base_lr: the learning rate at step 0.
        min_lr: the floor.

    Returns:
        The learning rate at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.

    Examples:
        >>> [linear_decay(t, total_steps=4, base_lr=1.0) for t in range(6)]
        [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    _check_step(step)
    _check_count("total_steps", total_steps, minimum=1)
    _check_lr("base_lr", base_lr)
    _check_lr("min_lr", min_lr)
    # Written as the floor plus what is left of the drop, so the last value is min_lr exactly.
    return min_lr + (base_lr - min_lr) * (total_steps - min(step, total_steps)) / total_steps


def step_decay(step: int, *, step_size: int, base_lr: float, gamma: float = 0.1) -> float:
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps: $\gamma\,g^{\lfloor t/s \rfloor}$.

    Args:
        step: the optimiser step ``t``, from 0.
        step_size: ``s``, the number of steps between drops.
        base_lr: the learning rate before the first drop.
        gamma: ``g``, the factor of each drop.

    Returns:
        The learning rate at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.

    Examples:
        >>> [step_decay(t, step_size=2, base_lr=1.0, gamma=0.5) for t in range(6)]
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    """
    _check_step(step)
    _check_count("step_size", step_size, minimum=1)
    _check_lr("base_lr", base_lr)
    _check_lr("gamma", gamma)
    return base_lr * gamma ** (step // step_size)


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    r"""The language-model recipe: `linear_warmup` for ``warmup_steps``, then `cosine_decay` to ``min_lr``.

    Steps ``0 .. W-1`` ramp up as $\gamma\,\frac{t+1}{W+1}$; step ``W`` is the peak, ``base_lr``; the cosine
    then reaches ``min_lr`` at ``total_steps`` and stays there.

    Args:
        step: the optimiser step, from 0.
        warmup_steps: ``W``, the steps on the ramp (0 for a plain cosine).
        total_steps: the step at which the schedule reaches ``min_lr``; larger than ``warmup_steps``.
        base_lr: the peak learning rate.
        min_lr: the floor.

    Returns:
        The learning rate at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or ``total_steps <= warmup_steps``.

    Examples:
        >>> [round(warmup_cosine(t, warmup_steps=2, total_steps=6, base_lr=1.0), 4) for t in range(7)]
        [0.3333, 0.6667, 1.0, 0.8536, 0.5, 0.1464, 0.0]
    """
    _check_count("warmup_steps", warmup_steps, minimum=0)
    _check_count("total_steps", total_steps, minimum=1)
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps must be larger than warmup_steps={warmup_steps}, got {total_steps}")
    if step < warmup_steps:
        return linear_warmup(step, warmup_steps=warmup_steps, base_lr=base_lr)
    # The cosine counts its own steps from the end of the warm-up.
    return cosine_decay(step - warmup_steps, total_steps=total_steps - warmup_steps, base_lr=base_lr, min_lr=min_lr)


def as_multiplier(schedule: Schedule, base_lr: float) -> Schedule:
    """Turn a schedule into the multiplier ``LambdaLR`` wants: ``schedule(step) / base_lr``.

    Args:
        schedule: a function of the step returning a learning rate.
        base_lr: the optimiser's ``lr``, which ``LambdaLR`` multiplies by the multiplier.

    Returns:
        A function of the step.

    Raises:
        TypeError: if ``base_lr`` is not a number.
        ValueError: if ``base_lr`` is not a finite number > 0.

    Examples:
        >>> from functools import partial
        >>> multiplier = as_multiplier(partial(step_decay, step_size=2, base_lr=0.5), base_lr=0.5)
        >>> [multiplier(t) for t in range(4)]
        [1.0, 1.0, 0.1, 0.1]
    """
    _check_lr("base_lr", base_lr)
    if base_lr == 0:
        raise ValueError(f"base_lr must be a finite number > 0 to divide by it, got {base_lr!r}")
    return lambda step: schedule(step) / base_lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group, the stateless way to follow a schedule.

    Args:
        optimizer: the optimizer.
        lr: the learning rate for this step.

    Examples:
        >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> set_lr(optimizer, 0.25)
        >>> optimizer.param_groups[0]["lr"]
        0.25
    """
    _check_lr("lr", lr)
    for group in optimizer.param_groups:
        group["lr"] = lr


def _one_cycle_phase(step: int, total_steps: int, pct_start: float, three_phase: bool) -> tuple[int, float]:
    # Which phase a step falls in, and how far through it (0 to 1), with OneCycleLR's own boundaries:
    # phase one ends at step pct_start * T - 1, the three-phase middle at 2 * pct_start * T - 2, the last at T - 1.
    ends = [float(pct_start * total_steps) - 1]
    if three_phase:
        ends.append(float(2 * pct_start * total_steps) - 2)
    ends.append(total_steps - 1)
    start = 0.0
    for phase, end in enumerate(ends):
        if step <= end or phase == len(ends) - 1:
            return phase, (step - start) / (end - start)
        start = end
    raise AssertionError("unreachable: the last phase always matches")  # pragma: no cover


def _anneal(start: float, end: float, pct: float, strategy: str) -> float:
    if strategy == "cos":
        # Half a cosine from start (pct = 0) to end (pct = 1), written as OneCycleLR writes it.
        cos_out = math.cos(math.pi * pct) + 1
        return end + (start - end) / 2.0 * cos_out
    return (end - start) * pct + start


def one_cycle(
    step: int,
    *,
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> float:
    r"""The one-cycle policy: up from ``max_lr / div_factor`` to ``max_lr``, then far below the start.

    Two phases: ``initial_lr = max_lr / div_factor`` rises to ``max_lr`` over the first ``pct_start`` of
    the steps, then falls to ``min_lr = initial_lr / final_div_factor``. With ``three_phase=True`` it
    rises, falls back to ``initial_lr`` symmetrically, and only then anneals to ``min_lr``.

    Args:
        step: the optimiser step, from 0 to ``total_steps`` (the last value is where PyTorch's scheduler
            stands after the final step; no update uses it).
        total_steps: the length of the cycle.
        max_lr: the peak learning rate.
        pct_start: the fraction of the steps spent rising.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: ``max_lr / initial_lr``.
        final_div_factor: ``initial_lr / min_lr``.
        three_phase: rise, fall back, then anneal.

    Returns:
        The learning rate at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or ``pct_start`` leaves a phase with no length.

    Examples:
        >>> [round(one_cycle(t, total_steps=10, max_lr=1.0, pct_start=0.3), 4) for t in (0, 2, 6, 9)]
        [0.04, 1.0, 0.3887, 0.0]
    """
    _check_one_cycle(step, total_steps, pct_start, anneal_strategy, three_phase)
    _check_lr("max_lr", max_lr)
    for name, factor in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
        _check_lr(name, factor)
        if factor == 0:
            raise ValueError(f"{name} must be a finite number > 0, got {factor!r}")
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    # (start, end) learning rate of each phase.
    phases = [(initial_lr, max_lr), (max_lr, initial_lr), (initial_lr, min_lr)] if three_phase else [
        (initial_lr, max_lr), (max_lr, min_lr)
    ]
    phase, pct = _one_cycle_phase(step, total_steps, pct_start, three_phase)
    return _anneal(*phases[phase], pct, anneal_strategy)


def one_cycle_momentum(
    step: int,
    *,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    three_phase: bool = False,
) -> float:
    r"""The momentum half of one-cycle: high while the learning rate is low, low while it is high.

    It mirrors `one_cycle`'s phases: ``max_momentum`` falls to ``base_momentum`` while the learning rate
    rises, and climbs back while it falls (in three phases, it then stays at ``max_momentum``).
    ``OneCycleLR`` writes it into SGD's ``momentum`` or Adam's first beta.

    Args:
        step: the optimiser step, from 0 to ``total_steps``.
        total_steps: the length of the cycle.
        pct_start: the fraction of the steps in the first phase.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        base_momentum: the momentum at the learning-rate peak.
        max_momentum: the momentum at the start and the end.
        three_phase: follow `one_cycle`'s three phases.

    Returns:
        The momentum at ``step``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.

    Examples:
        >>> [round(one_cycle_momentum(t, total_steps=10), 4) for t in (0, 2, 9)]
        [0.95, 0.85, 0.95]
    """
    _check_one_cycle(step, total_steps, pct_start, anneal_strategy, three_phase)
    for name, value in (("base_momentum", base_momentum), ("max_momentum", max_momentum)):
        _check_lr(name, value)
        if value > 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    phases = [(max_momentum, base_momentum), (base_momentum, max_momentum), (max_momentum, max_momentum)]
    phase, pct = _one_cycle_phase(step, total_steps, pct_start, three_phase)
    return _anneal(*phases[phase], pct, anneal_strategy)


def plot_schedules(*, total_steps: int = 100) -> Figure:
    """Draw the schedules of this lesson over ``total_steps`` steps, one-cycle with its momentum.

    Args:
        total_steps: how many steps to draw.

    Returns:
        The figure: the schedules on the left, the one-cycle variants and their momentum on the right.
    """
    _check_count("total_steps", total_steps, minimum=20)
    steps = range(total_steps)
    warmup = total_steps // 10
    schedules = {
        f"warm-up {warmup} + cosine": lambda t: warmup_cosine(
            t, warmup_steps=warmup, total_steps=total_steps, base_lr=1.0, min_lr=0.1
        ),
        "linear decay": lambda t: linear_decay(t, total_steps=total_steps, base_lr=1.0),
        f"step decay, every {total_steps // 3}": lambda t: step_decay(t, step_size=total_steps // 3, base_lr=1.0, gamma=0.3),
        "one-cycle (cos)": lambda t: one_cycle(t, total_steps=total_steps, max_lr=1.0),
    }
    fig, (left, right) = new_figure(1, 2, width=10.0, height=3.6)
    for name, schedule in schedules.items():
        left.plot(list(steps), [schedule(t) for t in steps], linewidth=1.8, label=name)
    left.set_xlabel("optimiser step")
    left.set_ylabel("learning rate / peak")
    left.set_title("schedules")
    left.legend(fontsize=8)
    momentum_axis = right.twinx()
    variants = {
        "cos": {},
        "linear": {"anneal_strategy": "linear"},
        "three-phase": {"three_phase": True},
    }
    for (name, options), color in zip(variants.items(), ("#7b2ff7", "#00a884", "#f2542d"), strict=True):
        right.plot(list(steps), [one_cycle(t, total_steps=total_steps, max_lr=1.0, **options) for t in steps],
                   color=color, linewidth=1.8, label=f"lr, {name}")
        momentum_axis.plot(list(steps), [one_cycle_momentum(t, total_steps=total_steps, **options) for t in steps],
                           color=color, linewidth=1.0, linestyle="--")
    right.set_xlabel("optimiser step")
    right.set_ylabel("learning rate / max_lr (solid)")
    momentum_axis.set_ylabel("momentum (dashed)")
    right.set_title("one-cycle: learning rate and momentum")
    right.legend(fontsize=8, loc="center right")
    return fig


# Challenges


def inverse_sqrt(step: int, *, warmup_steps: int, base_lr: float) -> float:
    r"""The original Transformer's schedule: a linear ramp to ``base_lr``, then $\propto 1/\sqrt{t}$.

    With $s = t + 1$: $\gamma_t = \gamma \min\!\left(\frac{s}{W}, \sqrt{\frac{W}{s}}\right)$, peaking at
    ``base_lr`` at step ``W - 1``.

    Examples:
        >>> [round(inverse_sqrt(t, warmup_steps=4, base_lr=1.0), 4) for t in (0, 3, 15)]
        [0.25, 1.0, 0.5]
    """
    _check_step(step)
    _check_count("warmup_steps", warmup_steps, minimum=1)
    _check_lr("base_lr", base_lr)
    s = step + 1
    return base_lr * min(s / warmup_steps, math.sqrt(warmup_steps / s))


def check_inverse_sqrt(candidate: Callable[..., float]) -> None:
    """Check an attempt at `inverse_sqrt` against the formula of "Attention Is All You Need".

    The paper's rate is ``d_model**-0.5 * min(s**-0.5, s * W**-1.5)`` at training step ``s = t + 1``;
    its peak, at ``s = W``, is ``(d_model * W) ** -0.5``, the ``base_lr`` passed here.

    Raises:
        AssertionError: naming the case and the step that differs.
    """
    for d_model, warmup in ((512, 4000), (64, 10), (8, 1)):
        peak = (d_model * warmup) ** -0.5
        for t in sorted({0, 1, warmup - 2, warmup - 1, warmup, 2 * warmup, 10 * warmup + 7}):
            if t < 0:
                continue
            s = t + 1
            expected = d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)
            got = candidate(t, warmup_steps=warmup, base_lr=peak)
            assert isinstance(got, float), f"d_model={d_model}, W={warmup}: return a float, got {type(got).__name__}"
            assert math.isclose(got, expected, rel_tol=1e-12), (
                f"d_model={d_model}, warmup_steps={warmup}, step {t}: got {got!r}, the paper gives {expected!r}"
            )


def cosine_warm_restarts(step: int, *, T_0: int, T_mult: int = 1, base_lr: float, eta_min: float = 0.0) -> float:
    r"""SGDR's cosine with warm restarts as a pure function of the step, like ``CosineAnnealingWarmRestarts``.

    The first cycle lasts ``T_0`` steps, each next one ``T_mult`` times longer; within a cycle of length
    $T_i$, at $T_{cur}$ steps since its restart, the rate is
    $\eta_{\min} + \frac12(\gamma - \eta_{\min})(1 + \cos(\pi T_{cur}/T_i))$.

    Examples:
        >>> [round(cosine_warm_restarts(t, T_0=2, T_mult=2, base_lr=1.0), 3) for t in range(7)]
        [1.0, 0.5, 1.0, 0.854, 0.5, 0.146, 1.0]
    """
    _check_step(step)
    _check_count("T_0", T_0, minimum=1)
    _check_count("T_mult", T_mult, minimum=1)
    _check_lr("base_lr", base_lr)
    _check_lr("eta_min", eta_min)
    # Walk the cycles in integers, exactly as the scheduler's step() does: no logarithms, no rounding.
    T_i, T_cur = T_0, step
    while T_cur >= T_i:
        T_cur -= T_i
        T_i *= T_mult
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2


def check_cosine_warm_restarts(candidate: Callable[..., float]) -> None:
    """Check an attempt at `cosine_warm_restarts` against ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``.

    Raises:
        AssertionError: naming the case and the step that differs.
    """
    for T_0, T_mult, eta_min in ((5, 1, 0.0), (3, 2, 0.01), (1, 3, 0.0), (7, 1, 0.05)):
        param = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.SGD([param], lr=0.5)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=T_0, T_mult=T_mult, eta_min=eta_min)
        for step in range(60):
            expected = optimizer.param_groups[0]["lr"]
            got = candidate(step, T_0=T_0, T_mult=T_mult, base_lr=0.5, eta_min=eta_min)
            assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-15), (
                f"T_0={T_0}, T_mult={T_mult}, eta_min={eta_min}, step {step}: got {got!r}, PyTorch uses {expected!r}"
            )
            optimizer.step()
            scheduler.step()


# Argument checks, kept here so the ideas above read first.


# The same rules as the other lessons of this part: a wrong type is a TypeError, a wrong value a ValueError.


def _check_step(step: object) -> None:
    _check_count("step", step, minimum=0)


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")


def _check_lr(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_one_cycle(step: object, total_steps: object, pct_start: object, anneal_strategy: object,
                     three_phase: object) -> None:
    _check_step(step)
    _check_count("total_steps", total_steps, minimum=1)
    if step > total_steps:
        raise ValueError(f"step must be at most total_steps={total_steps}, got {step}")
    if not isinstance(pct_start, float):  # OneCycleLR insists on a float too
        raise TypeError(f"pct_start must be a float, got {pct_start!r}")
    if not 0 <= pct_start <= 1:
        raise ValueError(f"pct_start must be a float in [0, 1], got {pct_start!r}")
    if not isinstance(three_phase, bool):
        raise TypeError(f"three_phase must be a bool, got {three_phase!r}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    # A phase of zero length would divide by zero (PyTorch raises ZeroDivisionError there).
    ends = [0.0, float(pct_start * total_steps) - 1]
    if three_phase:
        ends.append(float(2 * pct_start * total_steps) - 2)
    ends.append(total_steps - 1)
    if any(a == b for a, b in zip(ends, ends[1:], strict=False)):
        raise ValueError(f"pct_start={pct_start} with total_steps={total_steps} leaves a one-cycle phase with no length")
