r"""
# Optimisers from Scratch, II: Adam, AdamW and a Step Size for Every Parameter

!!! torchenstein "The Professor speaks"
    Plain gradient descent marches every parameter with the same learning rate, as if a whisker and a
    femur deserved the same stride. Adam keeps two running averages per parameter, of the gradient and
    of its square, and divides one by the square root of the other: every parameter gets a step sized
    to its own gradients. Today we build Adam and AdamW with our own hands, derive the correction that
    keeps their first steps sane, prove them equal to PyTorch's down to the last bit, and settle the
    weight-decay quarrel that split the field in 2017.

**You will learn to**

- write Adam's two moment estimates and its update, and derive its bias correction from scratch;
- build `Adam` and `AdamW` on `torch.optim.Optimizer` with PyTorch's names (`lr`, `betas`, `eps`,
  `weight_decay`, `amsgrad`, `maximize`) and prove them bitwise equal to `torch.optim.Adam` and `AdamW`,
  state and `state_dict` included;
- explain AMSGrad, and why L2 regularisation and decoupled weight decay are the same for SGD and not
  for Adam;
- keep biases and normalisation gains out of weight decay, and know what the usual rule misses;
- dodge Dr. Hammer's favourite Adam mistakes: the wrong decay, the wrong parameters, the wrong `eps`
  and the missing correction.

## Two running averages

The [SGD lesson](../sgd/index.md) built plain gradient descent, $\theta \leftarrow \theta - \gamma g$,
and momentum, whose buffer in the optimiser's state is a decaying sum of past gradients. Adam (Kingma
and Ba, 2015) keeps two **exponential moving averages** (running averages in which each new value gets
weight $1-\beta$ and the old average weight $\beta$) for each parameter, starting from zero:

$$
m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 ,
$$

all element-wise. $m_t$ estimates the gradient's mean, its **first moment**; $v_t$ estimates the mean
of its square, its **second moment**. The update divides one by the square root of the other:

$$
\theta_t = \theta_{t-1} - \gamma\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},
\qquad \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t} .
$$

The hats are the bias correction, derived in the next section. PyTorch's defaults are
$\gamma = 10^{-3}$, $(\beta_1, \beta_2) = (0.9, 0.999)$ and $\epsilon = 10^{-8}$, a small number that
keeps the division finite when $v$ is zero.

The ratio $\hat m / \sqrt{\hat v}$ has no units: multiply every gradient by 1000 and both the
numerator and the denominator grow by 1000. Each parameter moves by roughly $\gamma$ per step whether
its gradients are huge or tiny, until they are so tiny that $\epsilon$ is no longer negligible beside
$\sqrt{\hat v}$. Our [`Adam`][torchenstein.training.adam.Adam] shows it after ten steps:

```pycon
>>> import torch
>>> from torchenstein.training.adam import Adam
>>> _ = torch.manual_seed(0)
>>> grads = torch.randn(10, 3)                      # ten steps of gradients for 3 parameters
>>> def after_ten_steps(scale):
...     p = torch.zeros(3, requires_grad=True)
...     optimizer = Adam([p], lr=0.01)
...     for g in grads:
...         p.grad = scale * g
...         optimizer.step()
...     return p.detach()
>>> reference = after_ten_steps(1.0)
>>> for scale in (1000.0, 1e-3, 1e-6):
...     change = (after_ten_steps(scale) - reference).abs().max() / reference.abs().max()
...     print(f"gradients times {scale:g}: the parameters move {100 * change.item():.2f}% differently")
gradients times 1000: the parameters move 0.00% differently
gradients times 0.001: the parameters move 0.00% differently
gradients times 1e-06: the parameters move 1.28% differently

```

## Bias correction, derived

Both averages start at zero, so early on they are too small. Unroll the recursion for $m$ from $m_0 = 0$:

$$
m_t = (1-\beta_1) \sum_{i=1}^{t} \beta_1^{\,t-i}\, g_i .
$$

If the gradients come from a distribution with a steady mean, $\mathbb{E}[g_i] = \mu$, then

$$
\mathbb{E}[m_t] = \mu\, (1-\beta_1) \sum_{i=1}^{t} \beta_1^{\,t-i}
= \mu\, (1-\beta_1)\, \frac{1-\beta_1^t}{1-\beta_1} = \mu\, (1-\beta_1^t) ,
$$

a geometric series. The estimate is **biased toward zero** by the factor $1-\beta_1^t$: the weights
$(1-\beta_1)\beta_1^{t-i}$ sum to $1-\beta_1^t$, not to 1, because the missing weight $\beta_1^t$ sits on
the zero it started from. Dividing by $1-\beta_1^t$ removes the bias, and the same argument for
$g^2$ gives $\hat v_t = v_t / (1-\beta_2^t)$. At step 1, $m_1 = 0.1\,g_1$ and $v_1 = 0.001\,g_1^2$; the
corrections turn them back into $g_1$ and $g_1^2$, so Adam's first update is exactly
$\gamma\,g_1/(|g_1| + \epsilon)$: the learning rate, with the gradient's sign.

```pycon
>>> p = torch.zeros(2, requires_grad=True)
>>> optimizer = Adam([p], lr=0.01)
>>> p.grad = torch.tensor([4.0, -0.5])
>>> optimizer.step()
>>> state = optimizer.state[p]
>>> def show(t):
...     return [round(x, 6) for x in t.tolist()]
>>> print(f"m_1: {show(state['exp_avg'])}   v_1: {show(state['exp_avg_sq'])}")
m_1: [0.4, -0.05]   v_1: [0.016, 0.00025]
>>> m_hat, v_hat = state["exp_avg"] / (1 - 0.9), state["exp_avg_sq"] / (1 - 0.999)
>>> print(f"m_hat: {show(m_hat)}   v_hat: {show(v_hat)}   first update: {show(p.detach())}")
m_hat: [4.0, -0.5]   v_hat: [16.0, 0.25]   first update: [-0.01, 0.01]
>>> for t in (1, 10, 100, 1000, 5000):
...     print(f"t={t:<5} 1-beta1^t={1 - 0.9**t:.4f}   1-beta2^t={1 - 0.999**t:.4f}")
t=1     1-beta1^t=0.1000   1-beta2^t=0.0010
t=10    1-beta1^t=0.6513   1-beta2^t=0.0100
t=100   1-beta1^t=1.0000   1-beta2^t=0.0952
t=1000  1-beta1^t=1.0000   1-beta2^t=0.6323
t=5000  1-beta1^t=1.0000   1-beta2^t=0.9933

```

The first moment's correction fades within a few dozen steps; the second moment's lasts thousands,
since $\beta_2 = 0.999$ remembers about $1/(1-\beta_2) = 1000$ steps. Leave either one out and the early
steps are far too large or far too small, for a long time:

![Four curves of the step size, in learning rates, over 5000 steps of a constant gradient on a logarithmic axis: with both corrections a flat line at 1; with none it starts near 3 and rises above 6 before slowly returning to 1; correcting only m starts at 31 and decays over thousands of steps; correcting only v starts at 0.1 and reaches 1 within a few dozen steps.](plot_bias_correction.svg)

## Adam from scratch

As in the [SGD lesson](../sgd/index.md), we subclass `torch.optim.Optimizer`, which keeps the parameter
groups, the `state` and the `state_dict`, and write `step` (plus the checks of every group's options,
the **hyperparameters** we choose rather than learn). Each parameter's state holds PyTorch's four names:
`step` (how many updates it has had), `exp_avg` ($m$), `exp_avg_sq` ($v$), and `max_exp_avg_sq` when
`amsgrad` is on. PyTorch stores `step` as a 0-d float tensor on the CPU, not an int, so we do too; a
state then loads into either optimiser unchanged. `maximize=True` negates the gradient, as in SGD.

```pycon
>>> _ = torch.manual_seed(0)
>>> start, grads = torch.randn(3, 4), torch.randn(100, 3, 4)
>>> ours_p, theirs_p = start.clone().requires_grad_(), start.clone().requires_grad_()
>>> ours = Adam([ours_p], lr=0.01, weight_decay=0.1, amsgrad=True)
>>> theirs = torch.optim.Adam([theirs_p], lr=0.01, weight_decay=0.1, amsgrad=True, foreach=False)
>>> for g in grads:
...     ours_p.grad, theirs_p.grad = g.clone(), g.clone()
...     ours.step()
...     theirs.step()
>>> print(f"parameters bitwise equal after 100 steps: {torch.equal(ours_p, theirs_p)}")
parameters bitwise equal after 100 steps: True
>>> {"state": sorted(ours.state[ours_p]), "step": ours.state[ours_p]["step"],
...  "state bitwise equal": all(torch.equal(ours.state[ours_p][k], theirs.state[theirs_p][k]) for k in ours.state[ours_p])}
{'state': ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq', 'step'], 'step': tensor(100.), 'state bitwise equal': True}
>>> theirs.load_state_dict(ours.state_dict())          # our state drives PyTorch's Adam
>>> Adam([ours_p], lr=-1.0)
Traceback (most recent call last):
...
ValueError: lr must be a finite number >= 0, got -1.0

```

`foreach=False` asks PyTorch for its plain loop over parameters, the same operations in the same
order as ours, and the tests hold the two to the bit over a grid of all the options in float32 and
float64 (a third of it in float16 and bfloat16), on 0-d and non-contiguous parameters too. PyTorch's default on a
GPU is the `foreach` implementation, which updates a whole list of tensors per call, and `fused=True`
does the whole update in one kernel. They compute the same formula, but nothing promises the same
rounding, so the tests hold both (and the GPU) to a tolerance of $10^{-5}$ relative in float32 and
$10^{-12}$ in float64, rather than to the bit.

!!! note "Where it differs from PyTorch"
    Ours is the plain loop only: no `foreach`, `fused`, `capturable` or `differentiable` options, no
    tensor `lr` or `betas` (a `TypeError`), and real floating-point dense parameters only. A complex
    parameter or a sparse gradient raises `TypeError` (PyTorch handles complex numbers as pairs of reals,
    and refuses sparse gradients with a `RuntimeError`). As in our SGD, the options of every parameter
    group are checked, not only the defaults, and a parameter listed twice is refused. The tests pin each
    difference.

## AMSGrad

Adam's $\hat v$ forgets: after a burst of large gradients it decays, the denominator shrinks, and the
step grows again. Reddi et al. (2018) showed this can make Adam fail to converge on simple problems,
and proposed **AMSGrad**: divide by the largest $v$ seen so far. PyTorch keeps
$v^{\max}_t = \max(v^{\max}_{t-1}, v_t)$ in `max_exp_avg_sq` and uses
$\hat v_t = v^{\max}_t/(1-\beta_2^t)$; the paper's version had no bias correction. One gradient of 10
followed by gradients of 0.1:

```pycon
>>> def step_sizes(amsgrad, steps=1000):
...     p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
...     optimizer = Adam([p], lr=1.0, betas=(0.9, 0.99), amsgrad=amsgrad)
...     sizes = []
...     for t in range(steps):
...         before = p.detach().clone()
...         p.grad = torch.tensor([10.0 if t == 0 else 0.1], dtype=torch.float64)
...         optimizer.step()
...         sizes.append((p.detach() - before).abs().item())
...     return {t: round(sizes[t - 1], 2) for t in (1, 50, 300, 1000)}
>>> print(f"Adam:    {step_sizes(False)}")
Adam:    {1: 1.0, 50: 0.08, 300: 0.4, 1000: 1.0}
>>> print(f"AMSGrad: {step_sizes(True)}")
AMSGrad: {1: 1.0, 50: 0.07, 300: 0.1, 1000: 0.1}

```

Adam returns to full-size steps once the spike is forgotten; AMSGrad stays cautious for good.

## Weight decay: L2 or decoupled

**Weight decay** shrinks every weight toward zero a little at each step, which discourages large
weights and so overly sharp functions. The [SGD lesson](../sgd/index.md) got it as **L2
regularisation**: the penalty $\frac{\lambda}{2}\|\theta\|^2$ adds $\lambda\theta$ to the gradient, and for
plain SGD that is the same as multiplying the weights by $1-\gamma\lambda$ before the step,
$\theta - \gamma\,(g + \lambda\theta) = (1-\gamma\lambda)\,\theta - \gamma g$.

In Adam the two part ways. Adam's `weight_decay` is L2: $\lambda\theta$ joins the gradient, flows through
$m$ and $v$, and is divided by $\sqrt{\hat v}$ like everything else, so a weight decays by roughly
$\gamma\lambda\theta/\sqrt{\hat v}$ per step: barely where gradients are large, hugely where they are
small. Loshchilov and Hutter (2019) **decoupled** it: AdamW shrinks the weights directly,
$\theta \leftarrow (1-\gamma\lambda)\,\theta$, and then takes the ordinary Adam step on the loss's own
gradient. Two weights start at 1 and see gradients that alternate in sign, one of size 1 and one of
size 0.01; we measure how far 100 steps of decay pulled each (the difference to a run without decay):

```pycon
>>> from torchenstein.training.adam import AdamW
>>> def decay_pull(optimizer_class, steps=100):
...     finals = []
...     for weight_decay in (0.0, 0.1):
...         p = torch.ones(2, requires_grad=True)
...         optimizer = optimizer_class([p], lr=1e-3, weight_decay=weight_decay)
...         for t in range(steps):
...             p.grad = torch.tensor([1.0, 0.01]) * (-1) ** t
...             optimizer.step()
...         finals.append(p.detach())
...     return [round(x, 4) for x in (finals[0] - finals[1]).tolist()]
>>> print(f"Adam  (L2):        {decay_pull(Adam)}")
Adam  (L2):        [0.0097, 0.0959]
>>> print(f"AdamW (decoupled): {decay_pull(AdamW)}")
AdamW (decoupled): [0.0099, 0.0099]

```

Under L2 the weight with small gradients decays ten times harder; under AdamW both shrink by the same
fraction, $1-(1-\gamma\lambda)^{100}$. [`AdamW`][torchenstein.training.adam.AdamW] is our Adam with
`decoupled_weight_decay=True` and a default `weight_decay` of 0.01, just as recent PyTorch releases
make `torch.optim.AdamW` a thin subclass of `torch.optim.Adam`:

```pycon
>>> ours_p, theirs_p = start.clone().requires_grad_(), start.clone().requires_grad_()
>>> ours = AdamW([ours_p], lr=0.01, weight_decay=0.1, betas=(0.8, 0.99))
>>> theirs = torch.optim.AdamW([theirs_p], lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), foreach=False)
>>> for g in grads:
...     ours_p.grad, theirs_p.grad = g.clone(), g.clone()
...     ours.step()
...     theirs.step()
>>> print(f"AdamW bitwise equal after 100 steps: {torch.equal(ours_p, theirs_p)}")
AdamW bitwise equal after 100 steps: True

```

PyTorch multiplies the decay by the learning rate, so a schedule that lowers $\gamma$ lowers the
decay too, and `weight_decay=0.01` with `lr=1e-3` shrinks weights by only $10^{-5}$ per step. The
paper multiplied its decay by the schedule's factor but not by the base learning rate, so its
$\lambda$ values are far smaller than PyTorch's for the same effect; when you copy a recipe, check which
convention its numbers assume.

## Which parameters to decay

Decay says "zero is a good default for this parameter". For a weight matrix that is a fair prior. For
a bias it buys nothing (a bias does not make the function sharper), and for a normalisation gain it
is wrong: the gain's natural value is 1, and decay drags the layer's output toward zero. The usual rule
of thumb, used by nanoGPT and many others, splits by shape: tensors with `p.ndim >= 2` (weight matrices,
convolution kernels) are decayed, vectors (biases, LayerNorm and RMSNorm gains) are not.
[`param_groups_for_weight_decay`][torchenstein.training.adam.param_groups_for_weight_decay] returns
the two parameter groups, ready for any optimiser; a model built from the course's own
[`Embedding`][torchenstein.nn.embeddings.Embedding], [`LayerNorm`][torchenstein.nn.normalization.LayerNorm]
and [`Linear`][torchenstein.nn.linear.Linear]:

```pycon
>>> from torch import nn
>>> from torchenstein.nn.embeddings import Embedding
>>> from torchenstein.nn.linear import Linear
>>> from torchenstein.nn.normalization import LayerNorm
>>> from torchenstein.training.adam import param_groups_for_weight_decay
>>> model = nn.Sequential(Embedding(10, 4), LayerNorm(4), Linear(4, 3))
>>> groups = param_groups_for_weight_decay(model, weight_decay=0.1)
>>> for group in groups:
...     print(f"weight_decay={group['weight_decay']}: shapes {[tuple(p.shape) for p in group['params']]}")
weight_decay=0.1: shapes [(10, 4), (3, 4)]
weight_decay=0.0: shapes [(4,), (4,), (3,)]
>>> optimizer = AdamW(groups, lr=1e-3)
>>> {"weight_decay of each group": [group["weight_decay"] for group in optimizer.param_groups]}
{'weight_decay of each group': [0.1, 0.0]}

```

What the rule misses: an embedding table is 2-D, so it is decayed like a weight matrix, and so is a
learned positional table and an output layer tied to the embedding. Whether embeddings should be
decayed is a judgement call (nanoGPT decays them, minGPT did not); the shape rule makes it silently.
The first challenge below writes the module-type rule instead. Whatever the rule, every parameter
must land in exactly one group: `torch.optim.Optimizer` refuses a parameter in two groups (and ours,
one listed twice in the same group):

```pycon
>>> w = nn.Parameter(torch.ones(3))
>>> AdamW([{"params": [w]}, {"params": [w], "weight_decay": 0.0}])
Traceback (most recent call last):
...
ValueError: some parameters appear in more than one parameter group

```

## Adam on a loss surface

The [SGD lesson](../sgd/index.md)'s long valley showed a single learning rate caught between the steep
direction, which caps it, and the shallow one, along which it then crawls.
[`elongated_bowl`][torchenstein.training.adam.elongated_bowl] is a milder valley,
$\frac12(0.1x^2 + 2y^2)$, twenty times steeper across than along, and
[`optimizer_trajectory`][torchenstein.training.adam.optimizer_trajectory] records the path of any
optimiser on it (`sgd_trajectory` of that lesson records only our SGD's):

```pycon
>>> from torchenstein.training.adam import elongated_bowl, optimizer_trajectory
>>> runs = {
...     "SGD": lambda ps: torch.optim.SGD(ps, lr=0.4),
...     "SGD with momentum": lambda ps: torch.optim.SGD(ps, lr=0.4, momentum=0.7),
...     "Adam": lambda ps: Adam(ps, lr=0.3),
... }
>>> for name, make_optimizer in runs.items():
...     path = optimizer_trajectory(make_optimizer, steps=30)
...     print(f"{name:18} loss after 30 steps: {elongated_bowl(path[-1]).item():.4f}")
SGD                loss after 30 steps: 0.0691
SGD with momentum  loss after 30 steps: 0.0001
Adam               loss after 30 steps: 0.0262

```

![Left: contours of an elongated bowl with three paths from the same start. SGD drops to the valley floor at once, then creeps along the shallow axis; SGD with momentum zigzags across the valley and settles at the minimum; Adam first moves diagonally, equally fast in both coordinates, overshoots the minimum and swings back toward it. Right: the three losses over 40 steps on a logarithmic axis; SGD falls slowly and steadily, momentum falls fastest, to about one millionth, Adam falls quickly and then oscillates around one hundredth.](plot_optimizer_trajectories.svg)

Adam crosses the shallow direction far faster than SGD, because it takes steps of about $\gamma$ in
each coordinate however gentle the slope; with a constant learning rate it then keeps swinging around
the minimum, which is one reason training recipes lower the learning rate over time. Adam is no magic:
on this bowl, well-tuned momentum wins. Its edge is that one learning rate suits parameters whose
gradients differ by orders of magnitude, as a network's embeddings, attention weights and gains do,
where no single SGD learning rate would. It rescales per coordinate, so it helps most when the steep
directions line up with the parameters' own axes, as they do here.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: Adam with weight_decay, thinking it is AdamW"
    Hammer read that AdamW's `weight_decay` is a knob worth tuning, typed `torch.optim.Adam(...,
    weight_decay=...)` and tuned it: 0.01, then 0.1. Nothing changed. His decay was L2, divided by
    $\sqrt{\hat v}$: on a weight the loss ignores, Adam normalises the decay term itself into a step of
    about $\gamma$, whatever $\lambda$ is, and 100 steps take the weight from 1 to about 0.9 either way.
    In AdamW ten times the decay is ten times the shrinkage.

    ```pycon
    >>> def after_100_steps(optimizer_class, weight_decay):
    ...     p = torch.ones(1, requires_grad=True)
    ...     optimizer = optimizer_class([p], lr=1e-3, weight_decay=weight_decay)
    ...     for _ in range(100):
    ...         p.grad = torch.zeros(1)           # the loss does not care about this weight
    ...         optimizer.step()
    ...     return round(p.item(), 4)
    >>> {wd: after_100_steps(Adam, wd) for wd in (0.01, 0.1)}
    {0.01: 0.9017, 0.1: 0.9017}
    >>> {wd: after_100_steps(AdamW, wd) for wd in (0.01, 0.1)}
    {0.01: 0.999, 0.1: 0.99}

    ```

    The fix is to ask for what you mean: `AdamW` (or our `Adam(..., decoupled_weight_decay=True)`,
    which recent PyTorch releases accept too).

!!! hammer "Dr. Hammer's trap: decaying LayerNorm gains and biases"
    Hammer hands `model.parameters()` to AdamW. Decay pulls every parameter toward zero. For a bias,
    zero is where it started, so decaying it costs little and buys nothing; a LayerNorm gain starts at
    1, and decay drags it away from there. Where the data has nothing to say about a gain (its gradient
    is zero), 500 steps shrink it, and the layer's whole output with it:

    ```pycon
    >>> def gain_after(parameters_of, steps=500):
    ...     norm = LayerNorm(4)
    ...     optimizer = AdamW(parameters_of(norm), lr=1e-2, weight_decay=0.1)
    ...     for _ in range(steps):
    ...         norm.weight.grad, norm.bias.grad = torch.zeros(4), torch.zeros(4)
    ...         optimizer.step()
    ...     return round(norm.weight[0].item(), 4)
    >>> print(f"everything decayed: {gain_after(lambda m: m.parameters())}")
    everything decayed: 0.6064
    >>> print(f"ndim >= 2 rule:     {gain_after(lambda m: param_groups_for_weight_decay(m, 0.1))}")
    ndim >= 2 rule:     1.0

    ```

!!! hammer "Dr. Hammer's trap: eps inside the square root"
    Hammer writes the denominator as $\sqrt{\hat v + \epsilon}$. The Adam paper and PyTorch put
    $\epsilon$ outside: $\sqrt{\hat v} + \epsilon$. With $\epsilon = 10^{-8}$ the inside version adds
    up to $\sqrt{\epsilon} = 10^{-4}$ to the denominator, so every parameter whose gradients are well
    below $10^{-4}$ (common deep in a network, or late in training) slows to a crawl:

    ```pycon
    >>> eps = 1e-8
    >>> for g in (1.0, 1e-3, 1e-6):                    # a steady gradient: m_hat = g, v_hat = g**2
    ...     outside, inside = g / (g + eps), g / (g**2 + eps) ** 0.5
    ...     print(f"gradient {g:.0e}: step/lr outside {outside:.4f}, inside {inside:.4f}")
    gradient 1e+00: step/lr outside 1.0000, inside 1.0000
    gradient 1e-03: step/lr outside 1.0000, inside 0.9950
    gradient 1e-06: step/lr outside 0.9901, inside 0.0100

    ```

    Some libraries offer an $\epsilon$ inside the root as a separate option; an `eps` tuned for one
    convention does not transfer to the other.

!!! hammer "Dr. Hammer's trap: forgetting the bias correction"
    Hammer drops the hats "because they vanish after a while". At step 1, from zero state,
    $m_1 = (1-\beta_1)g$ and $v_1 = (1-\beta_2)g^2$. Without any correction the first step is
    $\frac{0.1}{\sqrt{0.001}} \approx 3.16$ learning rates; correcting only $m$ makes it 31.6, a giant
    leap that can wreck a freshly initialised network; correcting only $v$ makes it 0.1, a crawl. The
    figure above shows how long each mistake lasts.

    ```pycon
    >>> beta1, beta2, g = 0.9, 0.999, torch.tensor([2.0, -0.01])
    >>> m, v = (1 - beta1) * g, (1 - beta2) * g**2             # the state after step 1
    >>> variants = {
    ...     "both corrected": (m / (1 - beta1)) / (v / (1 - beta2)).sqrt(),
    ...     "neither": m / v.sqrt(),
    ...     "m only": (m / (1 - beta1)) / v.sqrt(),
    ...     "v only": m / (v / (1 - beta2)).sqrt(),
    ... }
    >>> for name, ratio in variants.items():
    ...     print(f"{name:15} first step in learning rates: {[round(x, 2) for x in ratio.abs().tolist()]}")
    both corrected  first step in learning rates: [1.0, 1.0]
    neither         first step in learning rates: [3.16, 3.16]
    m only          first step in learning rates: [31.62, 31.62]
    v only          first step in learning rates: [0.1, 0.1]

    ```

    Some recipes drop the correction on purpose and rely on a learning-rate warm-up instead (BERT's
    original optimiser did); that is a deliberate trade, with the warm-up taming the early steps.
    Dr. Hammer's was an accident.

## Challenges

**1. Decay by module type.** Write `param_groups_by_module_type(model, weight_decay)` that returns two
parameter groups, `[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay,
"weight_decay": 0.0}]`, where `decay` holds exactly the `weight` of every linear or convolution layer
(`torch.nn.Linear`, `torch.nn.Conv1d/2d/3d`, and the course's
[`Linear`][torchenstein.nn.linear.Linear]), and `no_decay` every other parameter: biases, embeddings,
normalisation gains. A parameter shared with an embedding (a tied output layer) is not decayed. Each
parameter appears exactly once, in the order `model.parameters()` yields it. Check it with
`check_param_groups_by_module_type`.

**2. Adamax.** The Adam paper also proposes **Adamax**, which replaces $\sqrt{v}$ by an exponentially
weighted infinity norm, $u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon)$, and corrects only the first
moment: $\theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,\frac{m_t}{u_t}$. Write
`adamax_step(param, grad, exp_avg, exp_inf, step, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8)`, which
updates `param`, `exp_avg` and `exp_inf` in place for step number `step` (1 for the first update), and
prove it equal to `torch.optim.Adamax` with `check_adamax_step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from torchenstein.lab import new_figure
from torchenstein.nn.embeddings import Embedding
from torchenstein.nn.linear import Linear
from torchenstein.training.sgd import _unique_params

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


def _scalar_dtype() -> torch.dtype:
    # PyTorch keeps the step count in float64 when the default dtype is float64, float32 otherwise.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class Adam(torch.optim.Optimizer):
    r"""Adam from scratch, a twin of `torch.optim.Adam` (its plain, ``foreach=False`` loop).

    Args:
        params: the parameters to optimise, or a list of parameter-group dicts.
        lr: the learning rate $\gamma$.
        betas: $(\beta_1, \beta_2)$, the decay rates of the running averages of the gradient and of its
            square.
        eps: $\epsilon$, added to $\sqrt{\hat v}$ in the denominator.
        weight_decay: $\lambda$. Added to the gradient as $\lambda\theta$ (L2 regularisation), or, with
            ``decoupled_weight_decay=True``, applied as $\theta \leftarrow (1-\gamma\lambda)\theta$ (AdamW).
        amsgrad: divide by the largest second moment seen so far.
        maximize: climb the objective instead of descending it.
        decoupled_weight_decay: use AdamW's decoupled decay.

    Raises:
        TypeError: if a hyperparameter has the wrong type (a tensor ``lr`` or ``betas`` included), or (at
            ``step``) a parameter is complex or its gradient sparse.
        ValueError: if a hyperparameter is out of range or not finite, in any parameter group, or a
            parameter is listed twice.

    Examples:
        >>> p = torch.ones(2, requires_grad=True)
        >>> optimizer = Adam([p], lr=0.1)
        >>> p.grad = torch.tensor([1.0, -1.0])
        >>> optimizer.step()
        >>> p.detach()
        tensor([0.9000, 1.1000])
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        betas = _check_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                       maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group, checking its options (with the defaults filled in) and its parameters first."""
        if isinstance(param_group, dict):
            where = f"param group {len(self.param_groups)}: "
            _check_hyperparameters(where, **{**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}})
            param_group = {**param_group, "params": _unique_params(param_group.get("params"), where)}
        super().add_param_group(param_group)

    def __setstate__(self, state: dict) -> None:
        # load_state_dict ends here. A state_dict saved by an older optimiser may lack the newer flags.
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", False)
            # Older PyTorch releases saved the step as a Python number; make it the 0-d tensor step() expects.
            for param in group["params"]:
                state_of_param = self.state.get(param, {})
                if "step" in state_of_param and not torch.is_tensor(state_of_param["step"]):
                    state_of_param["step"] = torch.tensor(float(state_of_param["step"]), dtype=_scalar_dtype())

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Update every parameter that has a gradient, once.

        Args:
            closure: a function that recomputes the loss (with gradients) and returns it.

        Returns:
            The closure's loss, or ``None`` without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay = group["weight_decay"]
            for param in group["params"]:
                # A parameter without a gradient (frozen, or unused this step) is skipped entirely:
                # no decay, no step count.
                if param.grad is None:
                    continue
                _check_param(param)
                grad = -param.grad if group["maximize"] else param.grad
                state = self.state[param]
                if len(state) == 0:
                    # The state is born lazily, at a parameter's first step, shaped like the parameter.
                    state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"].item()

                if weight_decay != 0:
                    if group["decoupled_weight_decay"]:
                        # AdamW: shrink the weight itself; the moments never see the decay.
                        param.mul_(1 - lr * weight_decay)
                    else:
                        # Adam: L2, the decay joins the gradient (a new tensor: p.grad stays untouched).
                        grad = grad.add(param, alpha=weight_decay)

                # m <- beta1 m + (1 - beta1) g, written as lerp, m + (1 - beta1)(g - m), as PyTorch does.
                exp_avg.lerp_(grad, 1 - beta1)
                # v <- beta2 v + (1 - beta2) g^2.
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

                # The bias corrections are plain Python floats: the step count is the same for every element.
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                step_size = lr / bias_correction1
                if group["amsgrad"]:
                    # AMSGrad: the running maximum of v, corrected like v.
                    torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                    second_moment = state["max_exp_avg_sq"]
                else:
                    second_moment = exp_avg_sq
                # sqrt(v_hat) + eps, with eps outside the square root. The float square root is ** 0.5, as in
                # PyTorch 2.13; older releases used math.sqrt, which very rarely differs in the last bit.
                denom = (second_moment.sqrt() / bias_correction2**0.5).add_(eps)
                # theta <- theta - (lr / (1 - beta1^t)) * m / denom, which is lr * m_hat / (sqrt(v_hat) + eps).
                param.addcdiv_(exp_avg, denom, value=-step_size)
        return loss


class AdamW(Adam):
    r"""AdamW from scratch: Adam with decoupled weight decay, a twin of `torch.optim.AdamW`.

    The same arguments as [`Adam`][torchenstein.training.adam.Adam], with ``weight_decay`` defaulting to
    0.01 and the decay applied as $\theta \leftarrow (1-\gamma\lambda)\,\theta$ before the Adam step.

    Examples:
        >>> p = torch.ones(2, requires_grad=True)
        >>> optimizer = AdamW([p], lr=0.1, weight_decay=0.5)
        >>> p.grad = torch.zeros(2)
        >>> optimizer.step()                     # zero gradient: only the decay, 1 - 0.1 * 0.5
        >>> p.detach()
        tensor([0.9500, 0.9500])
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)

    def __setstate__(self, state: dict) -> None:
        # Whatever state is loaded (an Adam's included), an AdamW stays decoupled, as in PyTorch.
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def param_groups_for_weight_decay(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split a model's parameters into a decayed group (``ndim >= 2``) and an undecayed one (the rest).

    Weight matrices and convolution kernels are decayed; biases and normalisation gains (vectors) are
    not. Embedding tables are 2-D and so are decayed too: the rule cannot tell them from weights.
    A tied parameter appears once, as ``model.parameters()`` yields it once.

    Args:
        model: the model whose parameters to split.
        weight_decay: the decay of the first group (the second gets 0.0).

    Returns:
        ``[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]``,
        ready for any optimiser.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or ``weight_decay`` is not a number.
        ValueError: if ``weight_decay`` is negative or not finite.

    Examples:
        >>> groups = param_groups_for_weight_decay(nn.Linear(3, 2), 0.1)
        >>> [len(group["params"]) for group in groups]
        [1, 1]
        >>> param_groups_for_weight_decay(nn.Linear(3, 2), -0.1)
        Traceback (most recent call last):
        ...
        ValueError: weight_decay must be a finite number >= 0, got -0.1
    """
    _check_model(model)
    _check_hyperparameters(weight_decay=weight_decay)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def elongated_bowl(xy: torch.Tensor) -> torch.Tensor:
    r"""The loss surface $\frac12(0.1\,x^2 + 2\,y^2)$: a valley twenty times steeper across than along.

    Args:
        xy: points of shape ``(..., 2)``.

    Returns:
        The loss at each point, shape ``(...)``.

    Examples:
        >>> elongated_bowl(torch.tensor([[0.0, 0.0], [2.0, 1.0]]))
        tensor([0.0000, 1.2000])
    """
    x, y = xy[..., 0], xy[..., 1]
    return 0.5 * (0.1 * x**2 + 2.0 * y**2)


def optimizer_trajectory(
    make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    *,
    start: Sequence[float] = (-4.0, 1.5),
    steps: int = 30,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] = elongated_bowl,
) -> torch.Tensor:
    """Run an optimiser on a 2-D loss surface and record where the point goes.

    Args:
        make_optimizer: builds the optimiser from a list holding the one point, e.g.
            ``lambda ps: Adam(ps, lr=0.1)``.
        start: the starting point ``(x, y)``.
        steps: how many optimiser steps to take.
        loss_fn: the surface, a function of a ``(2,)`` tensor.

    Returns:
        The path, shape ``(steps + 1, 2)``, the start included.

    Raises:
        TypeError: if ``steps`` is not an int.
        ValueError: if ``steps`` is negative or ``start`` does not hold two numbers.

    Examples:
        >>> optimizer_trajectory(lambda ps: torch.optim.SGD(ps, lr=0.5), steps=2).shape
        torch.Size([3, 2])
    """
    _check_int("steps", steps, minimum=0)
    if len(start) != 2:
        raise ValueError(f"start must hold two numbers (x, y), got {start!r}")
    point = torch.tensor([float(c) for c in start], requires_grad=True)  # (2,)
    optimizer = make_optimizer([point])
    path = [point.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(point).backward()
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)  # (steps + 1, 2)


def plot_optimizer_trajectories(*, steps: int = 40) -> Figure:
    """Draw the paths of SGD, SGD with momentum and Adam on the contours of `elongated_bowl`, and their losses.

    The SGD curves use ``torch.optim.SGD``; Adam is ours.

    Args:
        steps: how many steps each optimiser takes.

    Returns:
        The figure: the paths on the left, the loss at every step on the right.
    """
    runs = {
        "SGD, lr=0.4": lambda ps: torch.optim.SGD(ps, lr=0.4),
        "SGD + momentum 0.7, lr=0.4": lambda ps: torch.optim.SGD(ps, lr=0.4, momentum=0.7),
        "Adam, lr=0.3": lambda ps: Adam(ps, lr=0.3),
    }
    fig, (paths, losses) = new_figure(1, 2, width=10.0, height=3.6)
    xs, ys = torch.linspace(-4.5, 4.5, 181), torch.linspace(-2.0, 2.0, 81)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (81, 181, 2)
    levels = [0.01, 0.05, 0.15, 0.3, 0.6, 1.0, 1.6, 2.4, 3.4]
    paths.contour(xs.numpy(), ys.numpy(), elongated_bowl(grid).numpy(), levels=levels, colors="#bbbbbb", linewidths=0.7)
    for name, make_optimizer in runs.items():
        path = optimizer_trajectory(make_optimizer, steps=steps)  # (steps + 1, 2)
        paths.plot(path[:, 0].numpy(), path[:, 1].numpy(), marker="o", markersize=2.5, linewidth=1.2, label=name)
        losses.plot(elongated_bowl(path).numpy(), linewidth=1.6, label=name)
    paths.plot([-4.0], [1.5], marker="*", markersize=10, color="black", linestyle="none", label="start")
    paths.set_xlabel("x (shallow direction)")
    paths.set_ylabel("y (steep direction)")
    paths.set_title("paths on 0.5 (0.1 x² + 2 y²)")
    paths.legend(loc="lower right", fontsize=8)
    losses.set_yscale("log")
    losses.set_xlabel("step")
    losses.set_ylabel("loss")
    losses.set_title(f"loss over {steps} steps")
    return fig


def relative_step_sizes(steps: int, betas: tuple[float, float] = (0.9, 0.999)) -> dict[str, torch.Tensor]:
    r"""Adam's step, in learning rates, under a constant gradient, with and without each bias correction.

    For a constant gradient $g$, $m_t = (1-\beta_1^t)\,g$ and $v_t = (1-\beta_2^t)\,g^2$ exactly, so the
    ratio of the step to $\gamma$ depends only on which corrections are applied ($\epsilon$ ignored).

    Args:
        steps: the number of steps ``T``.
        betas: $(\beta_1, \beta_2)$.

    Returns:
        Four float64 tensors of shape ``(T,)``, for steps ``1..T``: ``"both corrected"``, ``"neither"``,
        ``"m only"`` and ``"v only"``.

    Examples:
        >>> sizes = relative_step_sizes(3)
        >>> {name: round(s[0].item(), 2) for name, s in sizes.items()}
        {'both corrected': 1.0, 'neither': 3.16, 'm only': 31.62, 'v only': 0.1}
    """
    betas = _check_hyperparameters(betas=betas)
    _check_int("steps", steps, minimum=1)
    t = torch.arange(1, steps + 1, dtype=torch.float64)  # (T,)
    first, second = 1 - betas[0] ** t, 1 - betas[1] ** t  # the weight each average has gathered
    return {
        "both corrected": torch.ones_like(t),
        "neither": first / second.sqrt(),
        "m only": 1 / second.sqrt(),
        "v only": first,
    }


def plot_bias_correction(*, steps: int = 5000) -> Figure:
    """Draw `relative_step_sizes` over ``steps`` steps, on a logarithmic step axis.

    Args:
        steps: how many steps to draw.

    Returns:
        The figure, one panel.
    """
    sizes = relative_step_sizes(steps)
    fig, (ax,) = new_figure(width=7.0, height=3.4)
    t = torch.arange(1, steps + 1).numpy()
    for name, size in sizes.items():
        ax.plot(t, size.numpy(), linewidth=1.6, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("step size / learning rate")
    ax.set_title("Adam under a constant gradient, betas = (0.9, 0.999)")
    ax.legend(fontsize=8)
    return fig


# Challenges


_DECAYED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, Linear)


def param_groups_by_module_type(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay only the weights of linear and convolution layers; never biases, embeddings or gains.

    Args:
        model: the model whose parameters to split.
        weight_decay: the decay of the first group (the second gets 0.0).

    Returns:
        ``[{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]``,
        each in the order of ``model.parameters()``.

    Examples:
        >>> from torchenstein.nn.embeddings import TinyLanguageModel
        >>> groups = param_groups_by_module_type(TinyLanguageModel(7, 3), 0.1)
        >>> [[tuple(p.shape) for p in group["params"]] for group in groups]   # the tied table is not decayed
        [[(3, 3)], [(7, 3), (3,)]]
    """
    _check_model(model)
    _check_hyperparameters(weight_decay=weight_decay)
    # Identity, not equality: parameters are tensors, and == would compare their values.
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, _DECAYED_LAYERS)}
    # A table shared with an embedding (a tied head) stays an embedding.
    decayed -= {id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, Embedding))}
    decay = [p for p in model.parameters() if id(p) in decayed]
    no_decay = [p for p in model.parameters() if id(p) not in decayed]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _group_specimens() -> dict[str, tuple[nn.Module, set[str]]]:
    # Each specimen, with the names of the parameters that must be decayed.
    from torchenstein.nn.embeddings import TinyLanguageModel
    from torchenstein.nn.normalization import LayerNorm
    from torchenstein.nn.rmsnorm import RMSNorm

    torch.manual_seed(0)
    mixed = nn.Sequential(
        Embedding(10, 4), LayerNorm(4), Linear(4, 6), nn.Conv1d(6, 6, 3), RMSNorm(6), nn.Linear(6, 2, bias=False)
    )
    return {
        "a linear layer": (nn.Linear(3, 2), {"weight"}),
        "embedding, norms, our Linear, Conv1d and a bias-free Linear": (mixed, {"2.weight", "3.weight", "5.weight"}),
        "a TinyLanguageModel with a tied head": (TinyLanguageModel(7, 3), {"mix.weight"}),
        "an untied TinyLanguageModel": (TinyLanguageModel(7, 3, tied=False), {"mix.weight", "head.weight"}),
        "torch's Embedding and Conv2d": (nn.Sequential(nn.Embedding(5, 4), nn.Conv2d(4, 2, 1)), {"1.weight"}),
    }


def check_param_groups_by_module_type(candidate: Callable[[nn.Module, float], list[dict]]) -> None:
    """Check an attempt at the challenge `param_groups_by_module_type` on several models.

    Raises:
        AssertionError: naming the model and what went wrong.
    """
    for label, (model, should_decay) in _group_specimens().items():
        groups = candidate(model, 0.05)
        assert isinstance(groups, list) and len(groups) == 2, f"{label}: expected a list of two groups, got {groups!r}"
        decay, no_decay = groups
        assert decay.get("weight_decay") == 0.05, f"{label}: the first group must have weight_decay=0.05"
        assert no_decay.get("weight_decay") == 0.0, f"{label}: the second group must have weight_decay=0.0"
        names = {id(p): name for name, p in model.named_parameters()}
        got_decay = [names.get(id(p), "<not in the model>") for p in decay["params"]]
        got_no_decay = [names.get(id(p), "<not in the model>") for p in no_decay["params"]]
        assert set(got_decay) == should_decay, f"{label}: decayed {sorted(got_decay)}, expected {sorted(should_decay)}"
        expected_order = list(names.values())
        assert got_decay + got_no_decay != [] and sorted(got_decay + got_no_decay) == sorted(expected_order), (
            f"{label}: every parameter must appear exactly once, got {got_decay} and {got_no_decay}"
        )
        for got in (got_decay, got_no_decay):
            assert got == [n for n in expected_order if n in got], f"{label}: keep model.parameters() order, got {got}"
        torch.optim.AdamW(groups)  # a real optimiser accepts them


def adamax_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_inf: torch.Tensor,
    step: int,
    *,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    r"""One Adamax update, in place: $u \leftarrow \max(\beta_2 u, |g| + \epsilon)$, then an Adam-like step.

    Args:
        param: the parameter, updated in place.
        grad: its gradient.
        exp_avg: the first moment $m$, updated in place.
        exp_inf: the infinity norm $u$, updated in place.
        step: the number of this update, from 1.
        lr: the learning rate.
        betas: $(\beta_1, \beta_2)$.
        eps: added to $|g|$ before the maximum.

    Examples:
        >>> p, m, u = torch.ones(2), torch.zeros(2), torch.zeros(2)
        >>> adamax_step(p, torch.tensor([3.0, -1.0]), m, u, 1, lr=0.1)
        >>> p                                     # the first step is lr * sign(g), as in Adam
        tensor([0.9000, 1.1000])
    """
    beta1, beta2 = betas
    exp_avg.lerp_(grad, 1 - beta1)
    # The infinity norm decays by beta2 and is bumped up to |g| whenever the new gradient is larger.
    torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf)
    # Only the first moment needs a correction: a maximum is not an average and is not biased toward 0.
    param.addcdiv_(exp_avg, exp_inf, value=-lr / (1 - beta1**step))


def check_adamax_step(candidate: Callable[..., None]) -> None:
    """Check an attempt at the challenge `adamax_step` against ``torch.optim.Adamax`` over 30 steps.

    Raises:
        AssertionError: naming the case, the step and the tensor that differs.
    """
    cases = {
        "defaults": {},
        "lr=0.05, betas=(0.8, 0.9)": {"lr": 0.05, "betas": (0.8, 0.9)},
        "eps=0.1": {"lr": 0.01, "eps": 0.1},
    }
    generator = torch.Generator().manual_seed(0)
    for label, options in cases.items():
        start = torch.randn(3, 5, generator=generator, dtype=torch.float64)
        grads = torch.randn(30, 3, 5, generator=generator, dtype=torch.float64)
        grads[7] = 0.0  # a step with no gradient at all: only the decay of u and m
        theirs_p = start.clone().requires_grad_()
        theirs = torch.optim.Adamax([theirs_p], foreach=False, **options)
        param, exp_avg, exp_inf = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
        for step, g in enumerate(grads, start=1):
            theirs_p.grad = g.clone()
            theirs.step()
            result = candidate(param, g.clone(), exp_avg, exp_inf, step, **options)
            assert result is None, f"{label}: adamax_step updates in place and returns None, got {type(result)}"
            state = theirs.state[theirs_p]
            for name, got, expected in (
                ("param", param, theirs_p.detach()), ("exp_avg", exp_avg, state["exp_avg"]), ("exp_inf", exp_inf, state["exp_inf"])
            ):
                assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12), (
                    f"{label}, step {step}: {name} differs from torch.optim.Adamax by "
                    f"{(got - expected).abs().max().item():.3g}"
                )


# Argument checks, kept here so the ideas above read first.


def _check_hyperparameters(where: str = "", **values: object) -> tuple[float, float] | None:
    # The same rules as our SGD's: a wrong type is a TypeError, a wrong value a ValueError.
    for name in ("lr", "eps", "weight_decay"):
        if name in values:
            value = values[name]
            if isinstance(value, torch.Tensor):
                raise TypeError(f"{where}{name} must be a real number, got a Tensor (this Adam takes no tensor {name})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{where}{name} must be a real number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{where}{name} must be a finite number >= 0, got {value!r}")
    for name in ("amsgrad", "maximize", "decoupled_weight_decay"):
        if name in values and not isinstance(values[name], bool):
            raise TypeError(f"{where}{name} must be a bool, got {values[name]!r}")
    if "betas" not in values:
        return None
    betas = values["betas"]
    if (
        not isinstance(betas, (tuple, list))
        or len(betas) != 2
        or any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in betas)
    ):
        raise TypeError(f"{where}betas must be a pair of numbers, got {betas!r}")
    if not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"{where}betas must be two numbers in [0, 1), got {betas!r}")
    return (float(betas[0]), float(betas[1]))


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def _check_param(param: torch.Tensor) -> None:
    if param.grad.is_sparse:
        raise TypeError(f"Adam supports dense gradients only, got a sparse gradient for a parameter of shape {tuple(param.shape)}")
    if not param.is_floating_point():
        raise TypeError(f"Adam supports real floating-point parameters only, got dtype {param.dtype}")

