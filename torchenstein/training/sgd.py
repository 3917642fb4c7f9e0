r"""
# Optimisers from Scratch, I: SGD and the Physics of Momentum

!!! torchenstein "The Professor speaks"
    Every optimiser in my laboratory, however baroque, is a ball rolling downhill with a few gadgets
    bolted on. Today we take the oldest ball, stochastic gradient descent, and bolt on every gadget PyTorch
    offers: weight decay, momentum, dampening, Nesterov's crystal ball, and a switch that rolls the ball
    *uphill*. We derive each gadget's equation, build `torch.optim.SGD` again as a real
    `torch.optim.Optimizer`, and prove it equal to PyTorch's own, step for step and bit for bit.

**You will learn to**

- derive PyTorch's SGD update: plain steps, L2 weight decay, momentum with dampening (and its curious
  first step), Nesterov's look-ahead, and `maximize`;
- write it as a subclass of `torch.optim.Optimizer`, and say which parts the base class gives you and
  which you must write;
- prove it equal to `torch.optim.SGD` over 50 steps for every combination of options, several parameter
  groups, float32 and float64, gradients that are `None`, and `state_dict`s moved both ways mid-run;
- watch plain SGD, momentum and Nesterov race across a long valley and Rosenbrock's banana;
- dodge three of Dr. Hammer's optimiser bugs.

## What an optimiser keeps

In [the training loop](../loop/index.md) an **optimiser** was the object whose `step()` moves the
parameters $\theta$ against their gradients $g = \nabla_\theta L$. Three things live inside it:

- `param_groups`: a list of **parameter groups**, each a dict holding some parameters (`"params"`) and
  the options that apply to them (`"lr"`, `"momentum"`, ...). One group is the usual case; several
  let a model's parts learn differently (a smaller learning rate for a pretrained backbone, say).
  Options a group does not set are filled in from the constructor's arguments, the **defaults**.
- `state`: a dict from each parameter to its **optimiser state**, the tensors that survive from one step
  to the next. Plain SGD needs none; momentum needs one buffer per parameter.
- `step()` and `zero_grad()`: the update, and the clean-up before the next backward.

```pycon
>>> import torch
>>> from torch import nn
>>> layer = nn.Linear(3, 2)
>>> opt = torch.optim.SGD([{"params": [layer.weight]}, {"params": [layer.bias], "lr": 0.5}], lr=0.1, momentum=0.9)
>>> [{"lr": group["lr"], "momentum": group["momentum"], "params": len(group["params"])} for group in opt.param_groups]
[{'lr': 0.1, 'momentum': 0.9, 'params': 1}, {'lr': 0.5, 'momentum': 0.9, 'params': 1}]
>>> {"parameters with state": len(opt.state)}      # no step yet: no state
{'parameters with state': 0}

```

## Plain SGD and L2 weight decay

The plain update takes a step of length proportional to the gradient, scaled by the learning rate
$\gamma$ (PyTorch's `lr`):

$$
\theta_t = \theta_{t-1} - \gamma\, g_t .
$$

**Weight decay** $\lambda$ (`weight_decay`) adds an L2 penalty $\frac{\lambda}{2}\lVert\theta\rVert^2$ to the
loss. Its gradient is $\lambda\theta$, so SGD simply adds that to the gradient before anything else:
$g_t \leftarrow g_t + \lambda\,\theta_{t-1}$. With plain SGD the step becomes
$\theta_t = (1 - \gamma\lambda)\,\theta_{t-1} - \gamma\, \nabla L$: every step shrinks the weights by the
factor $1 - \gamma\lambda$ before the gradient moves them. With a zero gradient, only the shrinking is left:

```pycon
>>> from torchenstein.training.sgd import SGD
>>> theta = nn.Parameter(torch.tensor([1.0, -2.0]))
>>> theta.grad = torch.zeros(2)
>>> SGD([theta], lr=0.5, weight_decay=0.1).step()
>>> theta.detach()                                   # (1 - 0.5 * 0.1) * theta
tensor([ 0.9500, -1.9000])

```

Because the penalty joins the gradient, it also flows through the momentum buffer below. Decoupling the
two is the idea behind AdamW, which a later lesson takes apart.

## Momentum, PyTorch's way

A ball rolling downhill does not stop at every bump: it keeps its velocity. **Momentum** $\mu$
(`momentum`) gives SGD a memory, a **momentum buffer** $b$ per parameter, and steps along the buffer
instead of the raw gradient. **Dampening** $\tau$ (`dampening`) scales down how much each new gradient
adds. PyTorch's rule is

$$
b_1 = g_1, \qquad b_t = \mu\, b_{t-1} + (1 - \tau)\, g_t \;\; (t > 1), \qquad \theta_t = \theta_{t-1} - \gamma\, b_t .
$$

Read the first step carefully: the buffer starts *at the first gradient*, not at zero, and dampening is
not applied to it. Two steps with $\mu = 0.9$, $\tau = 0.5$ and gradients 2 and 4 give $b_1 = 2$ and
$b_2 = 0.9 \cdot 2 + 0.5 \cdot 4 = 3.8$, and PyTorch keeps the buffer in `state[p]["momentum_buffer"]`:

```pycon
>>> theta, twin = nn.Parameter(torch.tensor([1.0])), nn.Parameter(torch.tensor([1.0]))
>>> ours = SGD([theta], lr=0.1, momentum=0.9, dampening=0.5)
>>> theirs = torch.optim.SGD([twin], lr=0.1, momentum=0.9, dampening=0.5)
>>> for g in (2.0, 4.0):
...     theta.grad, twin.grad = torch.tensor([g]), torch.tensor([g])
...     ours.step()
...     theirs.step()
...     print("buffer:", round(ours.state[theta]["momentum_buffer"].item(), 4), " theta:", round(theta.item(), 4))
buffer: 2.0  theta: 0.8
buffer: 3.8  theta: 0.42
>>> {"same buffer as PyTorch's": torch.equal(ours.state[theta]["momentum_buffer"], theirs.state[twin]["momentum_buffer"]),
...  "same theta": torch.equal(theta, twin)}
{"same buffer as PyTorch's": True, 'same theta': True}

```

Unrolling the recursion shows what the buffer is: a weighted sum of every gradient so far, the recent
ones weighted most,

$$
b_t = \mu^{t-1} g_1 + (1 - \tau) \sum_{k=2}^{t} \mu^{t-k} g_k .
$$

On a long, gentle slope where the gradient stays $g$, the buffer grows towards the fixed point
$b = \mu b + (1 - \tau) g$, that is $b_\infty = \frac{1 - \tau}{1 - \mu}\, g$. With $\mu = 0.9$ and no
dampening that is **ten** times the gradient: momentum multiplies the effective learning rate along any
direction the gradient keeps pointing by $1/(1 - \mu)$. Across a narrow ravine, where the gradient flips
sign every step, the terms cancel instead, and the zig-zag is damped. That is the whole trick.

```pycon
>>> w = nn.Parameter(torch.zeros(1))
>>> opt = SGD([w], lr=1.0, momentum=0.9)
>>> for _ in range(200):
...     w.grad = torch.ones(1)                          # a constant slope
...     opt.step()
>>> print(f"buffer after 200 steps: {opt.state[w]['momentum_buffer'].item():.4f}")   # (1 - 0) / (1 - 0.9)
buffer after 200 steps: 10.0000

```

With $\tau = \mu$ the buffer is an exponential moving average of the gradients, $b_\infty = g$, and
thanks to the first step it starts at $g_1$ rather than at zero, so it is not biased towards zero early
on. Many papers write momentum as a *velocity* $v_t = \mu v_{t-1} + \gamma g_t$, $\theta_t = \theta_{t-1} - v_t$.
With a constant $\gamma$ that is the same algorithm ($v_t = \gamma b_t$); it differs when the learning rate
changes during training, which the second challenge explores.

## Nesterov's look-ahead

Momentum will carry the ball to roughly $\theta + \mu v$ whatever the gradient says, so Nesterov's
accelerated gradient evaluates the gradient *there*, at the look-ahead point, rather than at $\theta$:

$$
v_{t+1} = \mu v_t - \gamma \nabla L(\theta_t + \mu v_t), \qquad \theta_{t+1} = \theta_t + v_{t+1} .
$$

Evaluating a gradient somewhere other than at the parameters does not fit a training loop, which computes
the gradient at the parameters it has. The fix is a change of variables: store the look-ahead point
itself, $\phi_t = \theta_t + \mu v_t$. Then

$$
\phi_{t+1} = \theta_{t+1} + \mu v_{t+1} = \phi_t - \mu v_t + (1 + \mu) v_{t+1}
= \phi_t + \mu v_{t+1} - \gamma \nabla L(\phi_t),
$$

using $v_{t+1} - \mu v_t = -\gamma \nabla L(\phi_t)$. Now every gradient is taken at the stored
parameters. Writing $v = -\gamma b$ with PyTorch's buffer $b_{t+1} = \mu b_t + g_{t+1}$ gives PyTorch's
Nesterov step: the gradient plus $\mu$ times the *updated* buffer,

$$
\theta_t = \theta_{t-1} - \gamma\, (g_t + \mu\, b_t) .
$$

PyTorch insists on $\mu > 0$ and $\tau = 0$ for it (there is no look-ahead without momentum, and the
derivation has no dampening), and so do we.

## `maximize`, and the whole update

`maximize=True` climbs instead of descending: the gradient's sign is flipped first, $g_t \leftarrow -g_t$,
*before* weight decay is added. So the weights still shrink towards zero while the objective goes up.
Putting everything in PyTorch's order, for each parameter with a gradient:

1. $g \leftarrow -\nabla L$ if `maximize`, else $\nabla L$;
2. if $\lambda \ne 0$: $g \leftarrow g + \lambda \theta$;
3. if $\mu \ne 0$: $b \leftarrow g$ on the first step, else $b \leftarrow \mu b + (1 - \tau) g$; then
   $g \leftarrow g + \mu b$ with Nesterov, else $g \leftarrow b$;
4. $\theta \leftarrow \theta - \gamma g$.

## Our `SGD`, and what it inherits

[`SGD`][torchenstein.training.sgd.SGD] subclasses `torch.optim.Optimizer`, the honest way to write an
optimiser, because the base class already does everything that is not the update rule:

- **inherited**: turning `params` (an iterable of tensors, or of group dicts) into `param_groups` with
  the defaults filled in, refusing a parameter that appears in two groups; the `state` dict; `zero_grad`;
  `state_dict` and `load_state_dict` (which swap parameters for their indices and back, and cast loaded
  state to each parameter's dtype and device); step hooks; `add_param_group`; `repr`; pickling;
- **written here**: the argument checks (in every group, see below) and `step`, the four lines above,
  using the very tensor operations PyTorch's single-tensor SGD uses, in the same order.

That last point is why the two agree bit for bit. On a small network, ours and PyTorch's step the same
twin parameters from the same gradients, with every option on:

```pycon
>>> import torch.nn.functional as F
>>> from torchenstein.training.loop import make_spiral, minibatches, spiral_classifier
>>> x, y = make_spiral(seed=0)
>>> batches = minibatches(x, y, 50)
>>> _ = torch.manual_seed(0)
>>> net_ours, net_theirs = spiral_classifier(16), spiral_classifier(16)
>>> _ = net_theirs.load_state_dict(net_ours.state_dict())
>>> options = dict(lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
>>> ours, theirs = SGD(net_ours.parameters(), **options), torch.optim.SGD(net_theirs.parameters(), **options)
>>> for step in range(12):
...     input, target = batches[step % len(batches)]
...     for net, opt in ((net_ours, ours), (net_theirs, theirs)):
...         opt.zero_grad()
...         F.cross_entropy(net(input), target).backward()
...         opt.step()
>>> print(f"bitwise equal after 12 steps: {all(torch.equal(a, b) for a, b in zip(net_ours.parameters(), net_theirs.parameters()))}")
bitwise equal after 12 steps: True

```

The state moves between the two both ways, so a **checkpoint** (the `state_dict`s of a run, saved to
carry on later) written with one resumes with the other, and parameter groups keep their own options:

```pycon
>>> {"state_dict": list(ours.state_dict()), "state of parameter 0": list(ours.state_dict()["state"][0])}
{'state_dict': ['state', 'param_groups'], 'state of parameter 0': ['momentum_buffer']}
>>> to_torch, to_ours = torch.optim.SGD(net_ours.parameters(), lr=1.0), SGD(net_theirs.parameters(), lr=1.0)
>>> to_torch.load_state_dict(ours.state_dict())             # the groups' options travel with the state
>>> to_ours.load_state_dict(theirs.state_dict())
>>> w, v = net_ours[0].weight, net_theirs[0].weight
>>> {"same buffers": torch.equal(to_torch.state[w]["momentum_buffer"], to_ours.state[v]["momentum_buffer"]),
...  "lr loaded": to_ours.param_groups[0]["lr"]}
{'same buffers': True, 'lr loaded': 0.05}
>>> head, body = list(net_ours[-1].parameters()), [p for m in net_ours[:-1] for p in m.parameters()]
>>> grouped = SGD([{"params": body}, {"params": head, "lr": 0.5, "nesterov": False}], lr=0.01, momentum=0.9, nesterov=True)
>>> [{"lr": group["lr"], "nesterov": group["nesterov"]} for group in grouped.param_groups]
[{'lr': 0.01, 'nesterov': True}, {'lr': 0.5, 'nesterov': False}]
>>> SGD(net_ours.parameters(), lr=0.1, nesterov=True)
Traceback (most recent call last):
...
ValueError: nesterov=True needs momentum > 0 and dampening == 0, got momentum=0.0 and dampening=0.0

```

`tests/test_sgd.py` proves the equality far more widely, bitwise on the CPU: 50 steps for every valid
combination of `momentum`, `dampening`, `weight_decay`, `nesterov` and `maximize` in float32 and float64,
and 20 steps for a third of them in bfloat16, float16 and complex64, on a matrix, a 0-d and a
non-contiguous parameter; three parameter groups with different options at once; parameters whose
`.grad` is `None` on some steps (skipped, their buffer untouched); sparse gradients; `step(closure)`,
with a function that recomputes the loss; and `state_dict`s moved ours to PyTorch's and PyTorch's to
ours after 20 steps, with the next 30 steps still equal.

**Where it differs from PyTorch.** Ours checks more and offers less. It refuses options that are not finite
numbers (PyTorch accepts `lr=float("nan")` without a word); it checks the options of *every* parameter
group, where PyTorch checks only the defaults (so PyTorch accepts a group with `lr=-1`, or with
`nesterov=True` and no momentum); and it refuses a parameter listed twice, which PyTorch only warns about
before updating it twice per step. It takes no tensor `lr`, and none of the speed switches `foreach`,
`fused` and `differentiable`. PyTorch's `foreach` path, its default on a GPU, runs the same operations
over lists of tensors, and nothing promises the same rounding, so the tests hold it to a tolerance on
the CPU (and a CUDA test, run wherever a GPU is present, compares ours with both of PyTorch's paths
there). Each difference is pinned by a test.

## Trajectories on two loss surfaces

[`plot_sgd_trajectories`][torchenstein.training.sgd.plot_sgd_trajectories] runs our `SGD` on two famous
surfaces with [`sgd_trajectory`][torchenstein.training.sgd.sgd_trajectory], which records every point the
parameters visit. On the left a long valley, $f(x, y) = \frac12 (0.01\,x^2 + y^2)$, a hundred times steeper
across than along: plain SGD crosses the valley at once and then crawls along its floor, momentum builds
up speed along it and overshoots, and Nesterov overshoots less. On the right Rosenbrock's banana,
$f(x, y) = (1 - x)^2 + 100\,(y - x^2)^2$, whose curved valley leads to the minimum at $(1, 1)$: plain SGD is
still crawling when momentum has arrived.

![Left: three paths on the contours of an elongated valley; plain SGD drops to the valley floor and creeps along it, momentum sweeps past the minimum and swings back, Nesterov swings less. Right: three paths on Rosenbrock's banana-shaped valley; plain SGD stops far short of the minimum at (1, 1), momentum and Nesterov reach it](plot_sgd_trajectories.svg)

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: momentum at plain SGD's learning rate"
    Dr. Hammer tuned the learning rate of plain SGD to 1.0 on his spiral classifier, then switched on
    `momentum=0.9` "for free speed". But momentum multiplies the step along any steady direction by
    $1/(1 - \mu) = 10$: his first steps are ten times longer than the ones he tuned, they push most ReLUs
    of the first layer into the region where they output zero for every input (and never recover), and the
    network ends up predicting one class for every point. Divide the learning rate by about
    $1/(1 - \mu)$ when you add momentum (or tune it again):

    ```pycon
    >>> from torchenstein.nn.losses import cross_entropy
    >>> from torchenstein.training.loop import evaluate, fit
    >>> x_val, y_val = make_spiral(seed=1)
    >>> for lr, momentum in ((1.0, 0.0), (1.0, 0.9), (0.1, 0.9)):
    ...     g = torch.Generator().manual_seed(0)
    ...     _ = torch.manual_seed(0)
    ...     net = spiral_classifier()
    ...     _ = fit(net, SGD(net.parameters(), lr=lr, momentum=momentum),
    ...             lambda epoch: minibatches(x, y, 32, shuffle=True, generator=g), cross_entropy, epochs=10,
    ...             progress_bar=False)
    ...     accuracy = evaluate(net, [(x_val, y_val)], cross_entropy)["accuracy"]
    ...     with torch.no_grad():
    ...         classes = net(x_val).argmax(dim=1).unique().numel()
    ...         silent = (net[:2](x_val).amax(dim=0) <= 0).sum().item()     # first-layer ReLUs at 0 everywhere
    ...     print(f"lr={lr} momentum={momentum}: accuracy > 0.8: {accuracy > 0.8}, classes predicted: {classes}, "
    ...           f"most ReLUs silent: {silent > 32}")
    lr=1.0 momentum=0.0: accuracy > 0.8: True, classes predicted: 3, most ReLUs silent: False
    lr=1.0 momentum=0.9: accuracy > 0.8: False, classes predicted: 1, most ReLUs silent: True
    lr=0.1 momentum=0.9: accuracy > 0.8: True, classes predicted: 3, most ReLUs silent: False

    ```

    Nesterov is touchier still: on a quadratic it diverges at a *smaller* learning rate than plain SGD
    (the first challenge finds exactly where). On Rosenbrock's banana, at a learning rate where plain SGD
    and heavy-ball momentum stay finite, Nesterov's path flies off to infinity:

    ```pycon
    >>> from torchenstein.training.sgd import rosenbrock, sgd_trajectory
    >>> runs = {"plain": {}, "momentum": {"momentum": 0.9}, "Nesterov": {"momentum": 0.9, "nesterov": True}}
    >>> {name: bool(sgd_trajectory(rosenbrock, (-1.5, 2.0), 300, lr=1.5e-3, **options)[-1].isfinite().all())
    ...  for name, options in runs.items()}
    {'plain': True, 'momentum': True, 'Nesterov': False}

    ```

!!! hammer "Dr. Hammer's trap: climbing with a negative learning rate"
    Dr. Hammer wants to *maximise* a reward. The constructor refuses `lr=-0.1`, so he builds the optimiser
    with `lr=0.1` and then sets `group["lr"] = -0.1` behind its back. Without weight decay that climbs. With
    weight decay the penalty's gradient is flipped too: the L2 pull towards zero becomes a push away from
    it, and the weights grow without bound. `maximize=True` flips only the objective's gradient; negating
    the loss does the same, bit for bit, at the price of logging a negated number.

    ```pycon
    >>> def reward(w):
    ...     return -(w - 1.0).pow(2).sum()                    # highest at w = 1
    >>> def climb(mode):
    ...     w = nn.Parameter(torch.zeros(1))
    ...     opt = SGD([w], lr=0.1, weight_decay=2.0, maximize=(mode == "maximize"))
    ...     if mode == "hammer":
    ...         opt.param_groups[0]["lr"] = -0.1
    ...     for _ in range(50):
    ...         opt.zero_grad()
    ...         (-reward(w) if mode in ("hammer", "negated loss") else reward(w)).backward()
    ...         opt.step()
    ...     return w.detach()
    >>> {mode: round(climb(mode).item(), 4) for mode in ("maximize", "negated loss")}   # the optimum of reward - |w|**2
    {'maximize': 0.5, 'negated loss': 0.5}
    >>> {"maximize == negated loss, bitwise": torch.equal(climb("maximize"), climb("negated loss")),
    ...  "Hammer's |w| > 1e6": climb("hammer").abs().item() > 1e6}
    {'maximize == negated loss, bitwise': True, "Hammer's |w| > 1e6": True}
    >>> SGD([nn.Parameter(torch.zeros(1))], lr=-0.1)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number >= 0, got -0.1

    ```

!!! hammer "Dr. Hammer's trap: a new optimiser to change the learning rate"
    Halfway through training, Dr. Hammer lowers the learning rate by building a brand-new `SGD`. The new
    optimiser has an empty `state`: every momentum buffer is gone, and the next step restarts from a
    single raw gradient, a jolt in the loss curve. The optimiser's options live in its `param_groups`,
    and changing them in place keeps the state:

    ```pycon
    >>> def resume(rebuild):
    ...     _ = torch.manual_seed(0)
    ...     net = spiral_classifier(16)
    ...     opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    ...     for step in range(8):
    ...         if step == 4 and rebuild:
    ...             opt = SGD(net.parameters(), lr=0.05, momentum=0.9)      # Hammer
    ...         elif step == 4:
    ...             for group in opt.param_groups:
    ...                 group["lr"] = 0.05                                  # the fix
    ...         input, target = batches[step % len(batches)]
    ...         opt.zero_grad()
    ...         F.cross_entropy(net(input), target).backward()
    ...         opt.step()
    ...     return opt, net
    >>> (hammer_opt, hammer_net), (honest_opt, honest_net) = resume(True), resume(False)
    >>> {"same weights": torch.equal(hammer_net[0].weight, honest_net[0].weight),
    ...  "parameters with state": [len(opt.state) for opt in (hammer_opt, honest_opt)],
    ...  "honest lr": honest_opt.param_groups[0]["lr"]}
    {'same weights': False, 'parameters with state': [6, 6], 'honest lr': 0.05}

    ```

    Both have buffers again by the end, but Hammer's remember four steps instead of eight. The same
    happens when a checkpoint saves the model and not the optimiser's `state_dict`.

## Challenges

**1. The largest stable learning rate.** On the quadratic $L(\theta) = \frac{\lambda}{2}\theta^2$ (curvature
$\lambda > 0$), plain SGD is $\theta_t = (1 - \gamma\lambda)\,\theta_{t-1}$, which shrinks exactly when
$|1 - \gamma\lambda| < 1$, that is $\gamma < 2/\lambda$. Write `max_stable_lr(curvature, momentum=0.0,
dampening=0.0, nesterov=False) -> float`, the supremum of the learning rates with which PyTorch's SGD
converges on this quadratic, for heavy-ball momentum with dampening and for Nesterov too. Hint: the
state $(\theta, \gamma b)$ evolves by a $2 \times 2$ matrix; it diverges when an eigenvalue crosses $-1$.
Raise `ValueError` for a curvature that is not positive, a momentum or dampening outside $[0, 1)$, or
Nesterov without momentum or with dampening. (Is momentum's limit above or below $2/\lambda$? And
Nesterov's?)

**2. The textbook momentum.** Write `SutskeverSGD(params, lr=1e-3, momentum=0.0)`, an optimiser
(a subclass of `torch.optim.Optimizer`) with the velocity form
$v_t = \mu v_{t-1} + \gamma g_t$, $\theta_t = \theta_{t-1} - v_t$, $v_0 = 0$, that skips parameters without a
gradient. With a constant learning rate it follows PyTorch's SGD; when the learning rate drops mid-run,
its velocity still carries the old rate for a while, where PyTorch's buffer is rescaled at once.

Check an attempt with `check_max_stable_lr(my_function)` or `check_SutskeverSGD(MyClass)`, or put your
answers in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass:

```pycon
>>> from torchenstein.training.sgd import SutskeverSGD, check_max_stable_lr, check_SutskeverSGD, max_stable_lr
>>> check_max_stable_lr(max_stable_lr)                     # silence: every case passed
>>> check_SutskeverSGD(SutskeverSGD)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from torchenstein.lab import PALETTE, lab_size, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class SGD(torch.optim.Optimizer):
    r"""Stochastic gradient descent with momentum, dampening, Nesterov, weight decay and ``maximize``.

    A from-scratch twin of ``torch.optim.SGD`` with its arguments and its state (``"momentum_buffer"``),
    equal to it bit for bit on the CPU. The parameter groups, ``state``, ``zero_grad``, ``state_dict``,
    ``load_state_dict`` and the step hooks come from ``torch.optim.Optimizer``; ``step`` is written here.

    Args:
        params: the parameters to optimise, or a list of dicts, one per parameter group.
        lr: the learning rate $\gamma$.
        momentum: the momentum factor $\mu$ (0: no buffer at all).
        dampening: $\tau$, how much less each new gradient adds to the buffer, $(1 - \tau)\,g$.
        weight_decay: $\lambda$, the L2 penalty's factor, added to the gradient as $\lambda\theta$.
        nesterov: use Nesterov's look-ahead form (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: climb the objective instead of descending it.

    Raises:
        TypeError: if an option has the wrong type (a tensor ``lr`` included).
        ValueError: if ``lr``, ``momentum`` or ``weight_decay`` is negative or an option is not finite,
            or ``nesterov`` is asked for without momentum or with dampening, in any parameter group; or if a
            parameter is listed twice.

    Examples:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
        >>> opt = SGD([w], lr=0.1, momentum=0.5)
        >>> for _ in range(2):
        ...     w.grad = torch.ones(2)
        ...     opt.step()
        >>> w.detach()
        tensor([0.7500, 1.7500])
        >>> SGD([w], lr=0.1, momentum=-0.5)
        Traceback (most recent call last):
        ...
        ValueError: momentum must be a finite number >= 0, got -0.5
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        _check_options(defaults)
        # The base class builds param_groups (calling add_param_group below for each group), the state
        # dict, and wraps step() so that step hooks run around it.
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group, checking its options (with the defaults filled in) first.

        Examples:
            >>> opt = SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
            >>> opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))], "lr": -1.0})
            Traceback (most recent call last):
            ...
            ValueError: param group 1: lr must be a finite number >= 0, got -1.0
        """
        if isinstance(param_group, dict):
            where = f"param group {len(self.param_groups)}: "
            _check_options({**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}, where)
            param_group = {**param_group, "params": _unique_params(param_group.get("params"), where)}
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Take one step for every parameter that has a gradient.

        Args:
            closure: a function that recomputes the loss (calling ``backward``) and returns it; it runs with
                autograd on, before the update.

        Returns:
            The closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            # The step itself runs under no_grad; the closure needs autograd for its backward.
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    # No gradient this step: no update, no weight decay, and the buffer stays as it is.
                    continue
                # 1. The gradient to descend: the objective's, or its negative to climb.
                g = -p.grad if group["maximize"] else p.grad
                # 2. L2 weight decay: the penalty's gradient lambda * theta, added before momentum sees it.
                if weight_decay != 0:
                    g = g.add(p, alpha=weight_decay)
                # 3. Momentum: the buffer starts as a copy of the first gradient, undampened; after that
                # it decays by mu and takes in (1 - tau) of each new gradient, in place.
                if mu != 0:
                    state = self.state[p]
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = g.detach().clone()
                        state["momentum_buffer"] = buffer
                    else:
                        buffer.mul_(mu).add_(g, alpha=1 - tau)
                    # Nesterov: the gradient plus mu times the updated buffer; heavy ball: the buffer.
                    g = g.add(buffer, alpha=mu) if nesterov else buffer
                # 4. The step, p + (-lr) * g in one kernel, as PyTorch does it.
                p.add_(g, alpha=-lr)
        return loss


def sgd_trajectory(
    loss_fn: Callable[[Tensor], Tensor], start: Sequence[float], steps: int, **options: Any
) -> Tensor:
    """Run our `SGD` on a loss of a few coordinates and record every point it visits.

    Args:
        loss_fn: a function of a 1-D float64 tensor of coordinates, returning a 0-d loss.
        start: the starting coordinates.
        steps: how many steps.
        **options: `SGD`'s options (``lr``, ``momentum``, ``nesterov``, ...).

    Returns:
        A float64 tensor of shape ``(steps + 1, len(start))``, the start first; shorter when the
        coordinates stop being finite (the path ends at the first non-finite point).

    Examples:
        >>> path = sgd_trajectory(lambda p: (p**2).sum() / 2, [1.0, -2.0], 3, lr=0.5)
        >>> path
        tensor([[ 1.0000, -2.0000],
                [ 0.5000, -1.0000],
                [ 0.2500, -0.5000],
                [ 0.1250, -0.2500]], dtype=torch.float64)
    """
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = SGD([p], **options)
    path = [p.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(p).backward()
        optimizer.step()
        path.append(p.detach().clone())
        if not torch.isfinite(p).all():
            break
    return torch.stack(path)


def elongated_valley(p: Tensor) -> Tensor:
    r"""$f(x, y) = \frac12 (0.01\,x^2 + y^2)$: a valley a hundred times steeper across than along."""
    return 0.5 * (0.01 * p[..., 0] ** 2 + p[..., 1] ** 2)


def rosenbrock(p: Tensor) -> Tensor:
    r"""Rosenbrock's banana, $f(x, y) = (1 - x)^2 + 100\,(y - x^2)^2$, with its minimum 0 at $(1, 1)$."""
    return (1 - p[..., 0]) ** 2 + 100 * (p[..., 1] - p[..., 0] ** 2) ** 2


def plot_sgd_trajectories(*, steps: int | None = None) -> Figure:
    """Draw plain SGD, momentum and Nesterov on an elongated valley and on Rosenbrock's banana.

    Args:
        steps: steps on Rosenbrock (``None``: 1000, or 50 in a smoke run); the valley gets a tenth of them.

    Returns:
        A figure with two axes, each showing the contours and the three paths.

    Examples:
        >>> len(plot_sgd_trajectories(steps=20).axes)
        2
    """
    steps = lab_size(1000, 50) if steps is None else steps
    runs = (("plain SGD", {}), ("momentum 0.9", {"momentum": 0.9}), ("Nesterov 0.9", {"momentum": 0.9, "nesterov": True}))
    surfaces = (
        ("Elongated valley, lr = 1.2", elongated_valley, (-10.0, 1.0), 1.2, max(steps // 10, 1),
         (-11.0, 4.0), (-1.5, 1.5), torch.linspace(0.05, 3.0, 10) ** 2),
        ("Rosenbrock's banana, lr = 0.001", rosenbrock, (-1.5, 2.0), 1e-3, steps,
         (-2.0, 2.0), (-0.8, 3.0), torch.logspace(-1, 3, 12)),
    )
    fig, axes = new_figure(1, 2, width=10.5, height=4.2)
    for ax, (title, f, start, lr, n, xlim, ylim, levels) in zip(axes, surfaces, strict=True):
        xs, ys = torch.linspace(*xlim, 200), torch.linspace(*ylim, 200)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (200, 200, 2)
        ax.contour(xs.numpy(), ys.numpy(), f(grid).numpy(), levels=levels.tolist(), colors="#bbbbbb", linewidths=0.7)
        for i, (label, options) in enumerate(runs):
            path = sgd_trajectory(f, start, n, lr=lr, **options).numpy()
            # Plain SGD on top (its path is the shortest), each path ending in a dot where it stopped.
            z = 3 - i
            ax.plot(path[:, 0], path[:, 1], color=PALETTE[i], linewidth=1.3, alpha=0.9, label=label, zorder=z)
            ax.plot(path[-1, 0], path[-1, 1], marker="o", color=PALETTE[i], markersize=5, zorder=z)
        ax.plot(*start, marker="s", color="black", markersize=5)
        ax.plot(*((0.0, 0.0) if f is elongated_valley else (1.0, 1.0)), marker="*", color="black", markersize=10)
        ax.set(title=title, xlim=xlim, ylim=ylim, xlabel="x", ylabel="y")
    axes[0].legend(fontsize=8, loc="lower right")
    return fig


# Challenges


def max_stable_lr(curvature: float, momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False) -> float:
    r"""Challenge solution: the largest learning rate with which PyTorch's SGD converges on $\frac\lambda2\theta^2$.

    With $h = \gamma\lambda$ and $u = \gamma b$, heavy ball is $u' = \mu u + (1 - \tau) h \theta$,
    $\theta' = \theta - u'$; the matrix of that map has an eigenvalue $-1$ when
    $(1 - \tau) h = 2(1 + \mu)$. Nesterov is $u' = \mu u + h\theta$, $\theta' = \theta - h\theta - \mu u'$,
    with an eigenvalue $-1$ when $(1 + 2\mu) h = 2(1 + \mu)$. (The other stability conditions hold for any
    $0 \le \mu < 1$.)

    Args:
        curvature: $\lambda > 0$.
        momentum: $\mu \in [0, 1)$.
        dampening: $\tau \in [0, 1)$.
        nesterov: Nesterov's form (needs ``momentum > 0`` and ``dampening == 0``).

    Returns:
        $2(1 + \mu) / ((1 - \tau)\lambda)$ for heavy ball (plain SGD's $2/\lambda$ at $\mu = 0$), or
        $2(1 + \mu) / ((1 + 2\mu)\lambda)$ for Nesterov.

    Examples:
        >>> {"plain": max_stable_lr(10.0), "momentum": round(max_stable_lr(10.0, 0.9), 4),
        ...  "Nesterov": round(max_stable_lr(10.0, 0.9, nesterov=True), 4)}
        {'plain': 0.2, 'momentum': 0.38, 'Nesterov': 0.1357}
    """
    for name, value in (("curvature", curvature), ("momentum", momentum), ("dampening", dampening)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
    for name, value in (("momentum", momentum), ("dampening", dampening)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0 < curvature < math.inf:
        raise ValueError(f"curvature must be a finite number > 0, got {curvature!r}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0, got momentum={momentum} "
                         f"and dampening={dampening}")
    if nesterov:
        return 2 * (1 + momentum) / ((1 + 2 * momentum) * curvature)
    return 2 * (1 + momentum) / ((1 - dampening) * curvature)


def _diverges(curvature: float, lr: float, momentum: float, dampening: float, nesterov: bool, steps: int = 4000) -> bool:
    # PyTorch's SGD on L = curvature / 2 * theta**2, in Python floats: the update rule, step by step.
    theta, buffer = 1.0, None
    for _ in range(steps):
        g = curvature * theta
        if momentum:
            buffer = g if buffer is None else momentum * buffer + (1 - dampening) * g
            g = g + momentum * buffer if nesterov else buffer
        theta -= lr * g
        if abs(theta) > 1e6:
            return True
    return False


def check_max_stable_lr(candidate: Callable[..., float]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``max_stable_lr``."""
    cases = [(2.0, 0.0, 0.0, False), (10.0, 0.9, 0.0, False), (10.0, 0.9, 0.0, True), (1.0, 0.5, 0.5, False),
             (0.3, 0.99, 0.0, False), (4.0, 0.3, 0.0, True), (1000.0, 0.9, 0.9, False)]
    for curvature, momentum, dampening, nesterov in cases:
        case = f"curvature={curvature}, momentum={momentum}, dampening={dampening}, nesterov={nesterov}"
        got = candidate(curvature, momentum, dampening, nesterov)
        assert isinstance(got, float), f"for {case} expected a float, got {type(got).__name__}"
        below, above = (_diverges(curvature, got * factor, momentum, dampening, nesterov) for factor in (0.97, 1.03))
        assert not below, f"for {case} SGD already diverges at 0.97 * {got}: the limit is lower"
        assert above, f"for {case} SGD still converges at 1.03 * {got}: the limit is higher"
    for args, what in (((0.0,), "a curvature of 0"), ((1.0, 1.0), "momentum=1"), ((1.0, 0.0, 0.0, True), "nesterov without momentum"),
                       ((1.0, 0.9, 0.1, True), "nesterov with dampening"), ((1.0, 0.5, -0.1), "negative dampening")):
        try:
            candidate(*args)
        except ValueError:
            continue
        except Exception as error:
            raise AssertionError(f"{what} must raise ValueError (arguments {args}), got {type(error).__name__}") from error
        raise AssertionError(f"{what} must raise ValueError (arguments {args})")


class SutskeverSGD(torch.optim.Optimizer):
    r"""Challenge solution: momentum in the velocity form, $v_t = \mu v_{t-1} + \gamma g_t$, $\theta_t = \theta_{t-1} - v_t$.

    Args:
        params: the parameters, or a list of parameter-group dicts.
        lr: the learning rate $\gamma$.
        momentum: $\mu$.

    Examples:
        >>> w = torch.nn.Parameter(torch.tensor([1.0]))
        >>> opt = SutskeverSGD([w], lr=0.1, momentum=0.5)
        >>> for _ in range(2):
        ...     w.grad = torch.ones(1)
        ...     opt.step()
        >>> round(w.item(), 4)                 # 1 - 0.1 - (0.5 * 0.1 + 0.1)
        0.75
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3, momentum: float = 0.0):
        _check_options({"lr": lr, "momentum": momentum})
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Take one step for every parameter with a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                # The velocity holds learning rate times gradient: the old rate lives on inside it.
                velocity = self.state[p].setdefault("velocity", torch.zeros_like(p))
                velocity.mul_(group["momentum"]).add_(p.grad, alpha=group["lr"])
                p.sub_(velocity)
        return loss


def check_SutskeverSGD(candidate: type) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``SutskeverSGD`` class."""

    def run(make, lrs, momentum):
        # One float64 parameter vector on a fixed quadratic bowl, plus a parameter that never gets a gradient.
        g = torch.Generator().manual_seed(0)
        a = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
        w = torch.nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))
        idle = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
        opt = make([w, idle], lr=lrs[0], momentum=momentum)
        path = []
        for lr in lrs:
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad()
            (0.5 * a * w**2).sum().backward()
            opt.step()
            path.append(w.detach().clone())
        return torch.stack(path), idle, opt

    def by_hand(lrs, momentum):
        g = torch.Generator().manual_seed(0)
        a = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
        w = torch.randn(5, generator=g, dtype=torch.float64)
        v, path = torch.zeros(5, dtype=torch.float64), []
        for lr in lrs:
            v = momentum * v + lr * a * w
            w = w - v
            path.append(w)
        return torch.stack(path)

    constant, dropped = [0.1] * 30, [0.5] * 15 + [0.05] * 15
    for momentum in (0.0, 0.5, 0.9):
        path, idle, opt = run(candidate, constant, momentum)
        assert isinstance(opt, torch.optim.Optimizer), "SutskeverSGD must subclass torch.optim.Optimizer"
        assert torch.equal(idle.detach(), torch.ones(2, dtype=torch.float64)), (
            "a parameter whose .grad is None must not move"
        )
        reference, _, _ = run(torch.optim.SGD, constant, momentum)
        assert torch.allclose(path, reference, rtol=1e-10, atol=1e-12), (
            f"with a constant lr=0.1 and momentum={momentum} the path must follow torch.optim.SGD's"
        )
        path, _, _ = run(candidate, dropped, momentum)
        expected = by_hand(dropped, momentum)
        assert torch.allclose(path, expected, rtol=1e-10, atol=1e-12), (
            f"after the lr drops from 0.5 to 0.05 (momentum={momentum}) the path must follow v = mu * v + lr * g, "
            "theta -= v: the velocity keeps the old learning rate inside it"
        )
        if momentum:
            torch_path, _, _ = run(torch.optim.SGD, dropped, momentum)
            assert not torch.allclose(path[15:], torch_path[15:]), "internal: the two forms must part ways"


# Argument checks, kept at the foot of the module so the ideas above read first.


def _check_options(options: dict[str, Any], where: str = "") -> None:
    lr = options.get("lr")
    if isinstance(lr, Tensor):
        raise TypeError(f"{where}lr must be a real number, got a Tensor (this SGD takes no tensor learning rate)")
    for name in ("lr", "momentum", "dampening", "weight_decay"):
        if name not in options:
            continue
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{where}{name} must be a real number, got {value!r}")
        if not math.isfinite(value) or (name != "dampening" and value < 0):
            expected = "a finite number" if name == "dampening" else "a finite number >= 0"
            raise ValueError(f"{where}{name} must be {expected}, got {value!r}")
    for name in ("nesterov", "maximize"):
        if name in options and not isinstance(options[name], bool):
            raise TypeError(f"{where}{name} must be a bool, got {options[name]!r}")
    if options.get("nesterov") and (options["momentum"] <= 0 or options["dampening"] != 0):
        raise ValueError(f"{where}nesterov=True needs momentum > 0 and dampening == 0, "
                         f"got momentum={options['momentum']} and dampening={options['dampening']}")


def _unique_params(params: Any, where: str = "") -> Any:
    # A parameter listed twice would be updated twice per step; PyTorch only warns about it.
    if isinstance(params, Tensor):
        return [params]
    if params is None or isinstance(params, set):
        return params  # the base class explains what it expects
    params, seen = list(params), set()
    for p in params:
        if id(p) in seen:
            raise ValueError(f"{where}params must list each parameter once, got one of shape {tuple(p.shape)} twice")
        seen.add(id(p))
    return params
