r"""
# Activation Elixirs: The Bends That Bring a Network to Life

!!! torchenstein "The Professor speaks"
    Stack a thousand linear layers and you have built... one linear layer, at great expense. The spark
    of life is a small bent function between them: an activation. Today we brew every elixir on my
    shelf from scratch (ReLU, GELU, SiLU, the squashers, softmax and the gated SwiGLU of modern language
    models), derive their derivatives by hand, and prove each one equal to PyTorch's own.

**You will learn to**

- prove that a stack of linear layers collapses into a single linear map, and see a ReLU break it;
- write `relu`, `leaky_relu`, `gelu` (exact and tanh), `silu`, `tanh`, `sigmoid` and `softmax` from
  scratch, numerically stable, and wrap them in modules with PyTorch's names and arguments;
- write each derivative analytically and prove it equal to autograd's;
- explain smoothness, dead ReLUs and the saturation that makes gradients vanish;
- build LLaMA's gated feed-forward block, `SwiGLU`, with its `w1`, `w2`, `w3`.

## Why bend at all?

A linear layer computes $y = xW^\top + b$. Feed one into another and the algebra folds them together:
$(xW_1^\top + b_1)W_2^\top + b_2 = x(W_2W_1)^\top + (W_2 b_1 + b_2)$, one matrix and one bias. Depth buys
nothing. Every *affine* map also obeys the midpoint rule $f\big(\frac{a+b}{2}\big) = \frac{f(a)+f(b)}{2}$;
put a ReLU between the layers and the rule, and with it the collapse, is broken:

```pycon
>>> import torch
>>> from torch import nn
>>> from torchenstein.nn.activations import ReLU
>>> _ = torch.manual_seed(0)
>>> first, second = nn.Linear(4, 8), nn.Linear(8, 3)
>>> x = torch.randn(5, 4)
>>> W = second.weight @ first.weight              # (3, 8) @ (8, 4) -> (3, 4)
>>> b = second.weight @ first.bias + second.bias  # (3,)
>>> torch.allclose(second(first(x)), x @ W.T + b, atol=1e-6)
True
>>> def midpoint_rule(f, a, c):
...     return torch.allclose(f((a + c) / 2), (f(a) + f(c)) / 2, atol=1e-6)
>>> {"linear stack": midpoint_rule(lambda t: second(first(t)), x, -x),
...  "with a ReLU": midpoint_rule(lambda t: second(ReLU()(first(t))), x, -x)}
{'linear stack': True, 'with a ReLU': False}

```

## ReLU and LeakyReLU: the hinge

$\operatorname{ReLU}(x) = \max(0, x)$ is the cheapest bend there is. Its gradient is 1 for positive inputs
and exactly 0 for negative ones (PyTorch picks 0 at $x = 0$ too), which is both its strength (no shrinking
of gradients on the active side) and its curse (a unit that is negative for every input never learns
again, see the traps). `LeakyReLU` keeps a trickle alive: $x$ for $x > 0$, `negative_slope`$\cdot x$
otherwise. Our [`relu`][torchenstein.nn.activations.relu] and
[`leaky_relu`][torchenstein.nn.activations.leaky_relu] take PyTorch's arguments, `inplace` included:

```pycon
>>> import torch.nn.functional as F
>>> from torchenstein.nn.activations import leaky_relu, relu
>>> x = torch.tensor([-2.0, -0.5, 0.0, 1.5, float("nan")])
>>> relu(x)
tensor([0.0000, 0.0000, 0.0000, 1.5000,    nan])
>>> leaky_relu(x, negative_slope=0.1)
tensor([-0.2000, -0.0500,  0.0000,  1.5000,     nan])
>>> {"relu": torch.equal(relu(x[:4]), F.relu(x[:4])), "leaky_relu": torch.equal(leaky_relu(x[:4], 0.1), F.leaky_relu(x[:4], 0.1))}
{'relu': True, 'leaky_relu': True}

```

## Sigmoid and tanh: the squashers, written stably

$\sigma(x) = \frac{1}{1 + e^{-x}}$ squeezes any number into $(0, 1)$, and
$\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}} = 2\sigma(2x) - 1$ into $(-1, 1)$. Written as printed they
overflow (Dr. Hammer demonstrates below). The cure is the trick of the softmax lesson: only ever
exponentiate a number $\le 0$. For $x \ge 0$ use $\frac{1}{1+e^{-x}}$, for $x < 0$ the equal
$\frac{e^{x}}{1+e^{x}}$; likewise $\tanh(x) = \frac{-\operatorname{expm1}(-2x)}{1 + e^{-2x}}$ for $x \ge 0$
and the mirror image below 0, where `expm1` computes $e^t - 1$ without cancellation near $t = 0$.
[`sigmoid`][torchenstein.nn.activations.sigmoid] and [`tanh`][torchenstein.nn.activations.tanh] survive
anything, infinities and `NaN` included:

```pycon
>>> from torchenstein.nn.activations import sigmoid, tanh
>>> x = torch.tensor([-float("inf"), -1e4, -1.0, 0.0, 1e-8, 1e4, float("inf"), float("nan")])
>>> sigmoid(x)
tensor([0.0000, 0.0000, 0.2689, 0.5000, 0.5000, 1.0000, 1.0000,    nan])
>>> tanh(x)
tensor([-1.0000e+00, -1.0000e+00, -7.6159e-01,  0.0000e+00,  1.0000e-08,  1.0000e+00,  1.0000e+00, nan])
>>> torch.testing.assert_close(sigmoid(x), torch.sigmoid(x), equal_nan=True)
>>> torch.testing.assert_close(tanh(x), torch.tanh(x), equal_nan=True)
>>> torch.allclose(tanh(x[:-1]), 2 * sigmoid(2 * x[:-1]) - 1)
True

```

## GELU: ReLU with a probability in it

GELU weighs its input by the probability that a standard normal variable is smaller:
$\operatorname{GELU}(x) = x\,\Phi(x)$, with $\Phi(x) = \frac12\big(1 + \operatorname{erf}(x/\sqrt2)\big)$.
Far right it is $x$, far left 0, and in between a smooth dip below zero. The GELU paper itself proposed
a cheaper tanh approximation, and the two famous early users both trained with it: Google's original
BERT code and OpenAI's GPT-2 compute

$$
\operatorname{GELU}_{\tanh}(x) = \tfrac12 x\left(1 + \tanh\!\Big(\sqrt{2/\pi}\,\big(x + 0.044715\,x^3\big)\Big)\right).
$$

Hugging Face's port of BERT, whose config says `"gelu"`, computes the exact form instead; its
`"gelu_new"` and `"gelu_pytorch_tanh"` are the tanh one (see the trap below for what mixing them costs).
PyTorch offers both. The cubic term, with its famous constant, bends the tanh to hug $\Phi$. Our
[`gelu`][torchenstein.nn.activations.gelu] takes PyTorch's `approximate="none"|"tanh"`; it writes $\Phi$
with `erfc`, since $1 + \operatorname{erf}(z)$ loses every digit of a tiny tail probability to cancellation:

```pycon
>>> import math
>>> from torchenstein.nn.activations import gelu
>>> x = torch.linspace(-3, 3, 7)
>>> [round(v, 4) for v in gelu(x).tolist()]
[-0.004, -0.0455, -0.1587, 0.0, 0.8413, 1.9545, 2.996]
>>> torch.testing.assert_close(gelu(x), F.gelu(x))
>>> torch.testing.assert_close(gelu(x, approximate="tanh"), F.gelu(x, approximate="tanh"))
>>> far_left = torch.tensor([-6.0])
>>> far_left * 0.5 * (1 + torch.erf(far_left / math.sqrt(2))), gelu(far_left)  # 1 + erf, then erfc
(tensor([-0.]), tensor([-5.9195e-09]))
>>> gelu(x, approximate="fast")
Traceback (most recent call last):
...
ValueError: approximate must be 'none' or 'tanh', got 'fast'

```

## SiLU, alias Swish: the self-gate

$\operatorname{SiLU}(x) = x\,\sigma(x)$: the input gates itself with its own sigmoid. It looks like GELU
(both are $x$ times a smooth step from 0 to 1) but needs no `erf`.
LLaMA and Mistral use it, and EfficientNet did before them.
[`silu`][torchenstein.nn.activations.silu] is built on our stable `sigmoid`:

```pycon
>>> from torchenstein.nn.activations import silu
>>> x = torch.tensor([-1e4, -3.0, -1.0, 0.0, 2.0, 1e4])
>>> silu(x)
tensor([-0.0000e+00, -1.4228e-01, -2.6894e-01,  0.0000e+00,  1.7616e+00,  1.0000e+04])
>>> torch.testing.assert_close(silu(x), F.silu(x))

```

## Softmax: a whole dimension at once

Softmax is the one activation here that is not element-wise: it turns a dimension of scores into
probabilities, $e^{x_i - m} / \sum_j e^{x_j - m}$ with $m$ the maximum. The stable
[`softmax`][torchenstein.tensors.elementwise.softmax] of the
[element-wise lesson](../../tensors/elementwise/index.md) is reused here as it is, and the
[`Softmax`][torchenstein.nn.activations.Softmax] module below simply remembers its `dim`.

## Modules with PyTorch's names

Each function gets a module with the name, arguments and printout of its `torch.nn` twin, so a model
built from ours prints, and loads a `state_dict`, exactly like one built from PyTorch's. None of them owns
a parameter, except [`SwiGLU`][torchenstein.nn.activations.SwiGLU] further down.

```pycon
>>> from torchenstein.nn import activations as ours
>>> shelf = nn.Sequential(ours.ReLU(), ours.LeakyReLU(0.2, inplace=True), ours.GELU(approximate="tanh"),
...                       ours.SiLU(), ours.Tanh(), ours.Sigmoid(), ours.Softmax(dim=-1))
>>> shelf
Sequential(
  (0): ReLU()
  (1): LeakyReLU(negative_slope=0.2, inplace=True)
  (2): GELU(approximate='tanh')
  (3): SiLU()
  (4): Tanh()
  (5): Sigmoid()
  (6): Softmax(dim=-1)
)
>>> theirs = nn.Sequential(nn.ReLU(), nn.LeakyReLU(0.2, inplace=True), nn.GELU(approximate="tanh"),
...                        nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.Softmax(dim=-1))
>>> repr(shelf) == repr(theirs)
True
>>> x = torch.randn(4, 6)
>>> torch.testing.assert_close(shelf(x.clone()), theirs(x.clone()))

```

## Derivatives by hand

Autograd differentiates all of this for us, but knowing the derivatives explains how each elixir trains.
Each one is short, and several are written with the function's own output:

| activation | derivative |
| --- | --- |
| $\operatorname{ReLU}$ | $1$ if $x > 0$, else $0$ |
| $\operatorname{LeakyReLU}$ | $1$ if $x > 0$, else `negative_slope` |
| $\sigma$ | $\sigma(x)\,(1 - \sigma(x))$ |
| $\tanh$ | $1 - \tanh^2(x)$ |
| $\operatorname{SiLU}$ | $\sigma(x)\,\big(1 + x\,(1 - \sigma(x))\big)$ |
| $\operatorname{GELU}$ | $\Phi(x) + x\,\varphi(x)$, with $\varphi(x) = e^{-x^2/2}/\sqrt{2\pi}$ |
| $\operatorname{GELU}_{\tanh}$ | $\frac12(1 + t) + \frac12 x\,(1 - t^2)\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)$ |
| $\operatorname{softmax}$ | $\partial s_i / \partial x_j = s_i(\delta_{ij} - s_j)$, the matrix $\operatorname{diag}(s) - s s^\top$ |

($t$ is the tanh inside $\operatorname{GELU}_{\tanh}$.) [`relu_grad`][torchenstein.nn.activations.relu_grad],
[`leaky_relu_grad`][torchenstein.nn.activations.leaky_relu_grad],
[`sigmoid_grad`][torchenstein.nn.activations.sigmoid_grad], [`tanh_grad`][torchenstein.nn.activations.tanh_grad],
[`silu_grad`][torchenstein.nn.activations.silu_grad], [`gelu_grad`][torchenstein.nn.activations.gelu_grad] and
[`softmax_jacobian`][torchenstein.nn.activations.softmax_jacobian] write them down, and autograd agrees:

```pycon
>>> from torchenstein.nn.activations import gelu_grad, silu_grad, softmax_jacobian
>>> x = torch.randn(7, dtype=torch.float64, requires_grad=True)
>>> (autograd,) = torch.autograd.grad(F.gelu(x, approximate="tanh").sum(), x)
>>> torch.testing.assert_close(gelu_grad(x.detach(), approximate="tanh"), autograd)
>>> (autograd,) = torch.autograd.grad(F.silu(x).sum(), x)
>>> torch.testing.assert_close(silu_grad(x.detach()), autograd)
>>> jacobian = torch.autograd.functional.jacobian(lambda t: F.softmax(t, dim=0), x.detach())
>>> torch.testing.assert_close(softmax_jacobian(x.detach()), jacobian)

```

![Left: ReLU, LeakyReLU, GELU exact and tanh, SiLU, tanh and sigmoid on one axis. Right: their derivatives; ReLU's jumps from 0 to 1, GELU's and SiLU's rise smoothly and overshoot 1, sigmoid's peaks at a quarter](plot_activations.svg)

## Smooth curves, dead units and saturation

*Smoothness.* ReLU's derivative jumps from 0 to 1 at the origin; GELU's and SiLU's pass through $\frac12$
continuously, so a tiny change of input never flips the gradient. Both also dip below zero before
rising, which lets a unit say "a little negative" and keeps a small gradient alive on the left.

```pycon
>>> from torchenstein.nn.activations import relu_grad, sigmoid_grad, tanh_grad
>>> around_zero = torch.tensor([-1e-6, 1e-6])
>>> relu_grad(around_zero), gelu_grad(around_zero).round(decimals=4), silu_grad(around_zero).round(decimals=4)
(tensor([0., 1.]), tensor([0.5000, 0.5000]), tensor([0.5000, 0.5000]))
>>> grid = torch.linspace(-3, 3, 60001, dtype=torch.float64)
>>> for name, y in (("GELU", gelu(grid)), ("SiLU", silu(grid))):
...     print(f"{name} dips to {y.min().item():.4f} at x = {grid[y.argmin()].item():.2f}")
GELU dips to -0.1700 at x = -0.75
SiLU dips to -0.2785 at x = -1.28

```

*Dead units.* Where its input is negative, a ReLU passes back a gradient of exactly 0. A unit whose
pre-activation is negative for *every* input receives no gradient at all, so its weights never move and
it stays dead: see Dr. Hammer's large negative bias below.

*Saturation.* The derivative of the sigmoid is at most $\frac14$, at 0, and tanh's at most 1; both fall
towards 0 as soon as the input is a few units away from 0. Backpropagation multiplies one such factor per
layer, so a deep stack of sigmoids shrinks its gradient geometrically: the vanishing gradient, one
reason deep networks were so hard to train before ReLU.

```pycon
>>> round(sigmoid_grad(grid).max().item(), 4), round(tanh_grad(grid).max().item(), 4)
(0.25, 1.0)
>>> round(sigmoid_grad(torch.tensor(5.0)).item(), 4), round(tanh_grad(torch.tensor(3.0)).item(), 4)
(0.0066, 0.0099)
>>> print(f"ten sigmoid layers, even at their best: {sigmoid_grad(torch.tensor(0.0)).item() ** 10:.2e}")
ten sigmoid layers, even at their best: 9.54e-07

```

## SwiGLU: the gated feed-forward of modern language models

A Transformer's feed-forward block was `Linear → ReLU → Linear` (GELU in BERT and GPT). Shazeer's GLU
variants replace the single activation by a *gate*: one projection, bent by SiLU, multiplies another,
element by element:

$$
\operatorname{SwiGLU}(x) = \Big(\operatorname{SiLU}(x W_1^\top) \odot x W_3^\top\Big) W_2^\top .
$$

LLaMA names the three matrices `w1` (gate), `w3` (up) and `w2` (down), with no biases, and shrinks the
hidden width to about two thirds of the usual four times the model width, so that three matrices cost
what two did. [`swiglu`][torchenstein.nn.activations.swiglu] is the formula; the module
[`SwiGLU`][torchenstein.nn.activations.SwiGLU] holds the three `nn.Linear` layers under those names.
PyTorch has no built-in, so the proof is against a composition of `F.silu` and `F.linear`:

```pycon
>>> from torchenstein.nn.activations import SwiGLU, swiglu
>>> _ = torch.manual_seed(0)
>>> block = SwiGLU(in_features=6, hidden_features=16)
>>> block
SwiGLU(
  (w1): Linear(in_features=6, out_features=16, bias=False)
  (w2): Linear(in_features=16, out_features=6, bias=False)
  (w3): Linear(in_features=6, out_features=16, bias=False)
)
>>> x = torch.randn(2, 5, 6)                                      # (batch, tokens, features)
>>> reference = F.linear(F.silu(F.linear(x, block.w1.weight)) * F.linear(x, block.w3.weight), block.w2.weight)
>>> block(x).shape
torch.Size([2, 5, 6])
>>> {"module": torch.allclose(block(x), reference, atol=1e-6),
...  "function": torch.allclose(swiglu(x, block.w1.weight, block.w2.weight, block.w3.weight), reference, atol=1e-6)}
{'module': True, 'function': True}
>>> mlp = nn.Sequential(nn.Linear(6, 24, bias=False), nn.GELU(), nn.Linear(24, 6, bias=False))
>>> {"SwiGLU": sum(p.numel() for p in block.parameters()), "4x MLP": sum(p.numel() for p in mlp.parameters())}
{'SwiGLU': 288, '4x MLP': 288}

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the sigmoid as printed"
    Dr. Hammer types $\frac{e^x}{1 + e^x}$. In float32 $e^x$ overflows to `inf` between 88 and 89,
    and $\infty / \infty$ is `NaN`: one confident logit and the loss is poisoned. The stable form never
    exponentiates a positive number.

    ```pycon
    >>> x = torch.tensor([-1000.0, 0.0, 88.0, 89.0, 1000.0])
    >>> x.exp() / (1 + x.exp())  # Hammer's sigmoid
    tensor([0.0000, 0.5000, 1.0000,    nan,    nan])
    >>> sigmoid(x)
    tensor([0.0000, 0.5000, 1.0000, 1.0000, 1.0000])

    ```

!!! hammer "Dr. Hammer's trap: the wrong GELU"
    Dr. Hammer loads weights trained with one GELU into a model built with the other: GPT-2's, trained
    with the tanh form, into a model with an exact `nn.GELU()`, say. A GELU has no parameters, so
    `load_state_dict` reports that all keys matched, and every layer is now slightly off. Read the
    checkpoint's config (in Hugging Face models `"gelu"` is the exact form, `"gelu_new"` and
    `"gelu_pytorch_tanh"` the tanh one) and match it. BERT itself was ported this way: Google trained it
    with the tanh form, and the Hugging Face config says `"gelu"`; the small gap measured here is why
    nobody noticed.

    ```pycon
    >>> from torchenstein.nn.activations import GELU
    >>> grid = torch.linspace(-6, 6, 120001, dtype=torch.float64)
    >>> gap = (gelu(grid) - gelu(grid, approximate="tanh")).abs()
    >>> print(f"largest gap {gap.max().item():.5f} at |x| = {grid[gap.argmax()].abs().item():.2f}")  # the gap is even
    largest gap 0.00047 at |x| = 2.70
    >>> _ = torch.manual_seed(0)
    >>> trained = nn.Sequential(nn.Linear(8, 32), GELU(), nn.Linear(32, 8))
    >>> hammer = nn.Sequential(nn.Linear(8, 32), GELU(approximate="tanh"), nn.Linear(32, 8))
    >>> hammer.load_state_dict(trained.state_dict())
    <All keys matched successfully>
    >>> x = 3 * torch.randn(64, 8)
    >>> {"outputs agree to 1e-6": torch.allclose(hammer(x), trained(x), atol=1e-6),
    ...  "differ by more than 1e-5": (hammer(x) - trained(x)).abs().max().item() > 1e-5}
    {'outputs agree to 1e-6': False, 'differ by more than 1e-5': True}

    ```

!!! hammer "Dr. Hammer's trap: softmax over the wrong dimension"
    Logits have shape `(batch, classes)`. Dr. Hammer normalises over `dim=0`, the batch: each *class*
    now sums to one across examples, and each example's "probabilities" are nonsense. Worse,
    `nn.Softmax()` with no `dim` guesses one (with a deprecation warning): for a 3-D input it picks the
    first dimension, the batch again. Our `Softmax` refuses to guess.

    ```pycon
    >>> from torchenstein.nn.activations import Softmax
    >>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])  # (batch 2, classes 3)
    >>> Softmax(dim=0)(logits).sum(dim=1).round(decimals=4)        # Hammer: rows should sum to one
    tensor([1.4502, 1.5498])
    >>> Softmax(dim=-1)(logits).sum(dim=1).round(decimals=4)
    tensor([1., 1.])
    >>> Softmax(dim=None)
    Traceback (most recent call last):
    ...
    TypeError: dim must be an int, got None

    ```

!!! hammer "Dr. Hammer's trap: dead ReLUs"
    A learning rate too large, or an initialisation Dr. Hammer did not think about, pushes a layer's
    biases far negative. Every unit is then negative for every input, ReLU passes back exactly zero,
    and the layer can never recover. Count the units that never fire on a batch; a `LeakyReLU` (or
    GELU, or SiLU) keeps a gradient flowing.

    ```pycon
    >>> from torchenstein.nn.activations import LeakyReLU
    >>> _ = torch.manual_seed(0)
    >>> layer, x = nn.Linear(16, 64), torch.randn(1000, 16)
    >>> def dead_fraction(pre_activations):  # (batch, units): the units never positive on the batch
    ...     return (pre_activations > 0).sum(dim=0).eq(0).float().mean().item()
    >>> dead_fraction(layer(x))
    0.0
    >>> with torch.no_grad():
    ...     _ = layer.bias.fill_(-10.0)
    >>> dead_fraction(layer(x))
    1.0
    >>> ReLU()(layer(x)).sum().backward()
    >>> layer.weight.grad.abs().max().item()
    0.0
    >>> layer.zero_grad()
    >>> LeakyReLU(0.01)(layer(x)).sum().backward()
    >>> bool(layer.weight.grad.abs().max() > 0)
    True

    ```

!!! hammer "Dr. Hammer's trap: `inplace=True` on a tensor someone else still reads"
    `inplace=True` saves one tensor's worth of memory by overwriting the input. Dr. Hammer puts it
    after a `tanh`, which saves its *output* for the backward pass ($1 - \tanh^2$). The ReLU overwrites
    that output, its version counter (a count of the in-place writes to a tensor, which autograd checks
    before using a saved tensor) moves, and `backward` refuses:

    ```pycon
    >>> x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    >>> h = torch.tanh(x)           # tanh saves h for its backward
    >>> ReLU(inplace=True)(h).sum().backward()
    Traceback (most recent call last):
    ...
    RuntimeError: one of the variables needed for gradient computation has been modified by an inplace operation: [torch.FloatTensor [3]], which is output 0 of Tanh..., is at version 1; expected version 0 instead. Hint: ...
    >>> ReLU()(torch.tanh(x)).sum().backward()
    >>> x.grad.round(decimals=4)
    tensor([0.0000, 0.7864, 0.0707])

    ```

    That was the lucky case. Autograd guards only what *it* saved; it knows nothing of the tensors
    *your* code reads. After a `Linear` (which saves its input, not its output) the in-place ReLU passes
    autograd's check, and Dr. Hammer, pleased, writes a residual `h + relu_(h)`. Python evaluates the
    left `h` first, as a reference to the tensor, then the ReLU overwrites that very tensor, and the sum
    adds the rectified `h` to itself. No error, forward or backward: the network computes
    $2\operatorname{ReLU}(h)$ instead of $h + \operatorname{ReLU}(h)$, and trains that. In place is safe
    only on a tensor that nothing else, autograd or your code, reads afterwards.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> layer, x = nn.Linear(3, 3), torch.randn(2, 3)
    >>> intended = layer(x) + relu(layer(x))
    >>> h = layer(x)
    >>> hammer = h + ReLU(inplace=True)(h)
    >>> hammer.sum().backward()      # autograd raises nothing
    >>> {"equals 2 relu(h)": torch.equal(hammer, 2 * relu(layer(x))), "equals h + relu(h)": torch.allclose(hammer, intended)}
    {'equals 2 relu(h)': True, 'equals h + relu(h)': False}

    ```

## Challenges

**Mish.** Write `mish(input)`, $x \tanh(\operatorname{softplus}(x))$ with
$\operatorname{softplus}(x) = \log(1 + e^x)$, element by element for a float tensor. It must equal
`torch.nn.functional.mish` from $-1000$ to $1000$ and at $\pm\infty$ and `NaN`, in float32, float64 and
bfloat16, and its gradient must be finite and correct too: the printed softplus overflows for large $x$,
and its gradient with it, so compute it stably. Check an attempt with `check_mish(my_function)`, or put it
in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answer passes:

```pycon
>>> from torchenstein.nn.activations import check_mish, mish
>>> check_mish(mish)
>>> [round(v, 4) for v in mish(torch.tensor([-1000.0, 0.0, 1.0, 1000.0])).tolist()]
[-0.0, 0.0, 0.8651, 1000.0]

```
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.autograd import softplus
from torchenstein.tensors.elementwise import softmax

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_GELU_KAPPA = 0.044715  # the cubic coefficient of the tanh approximation
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _wide(x: torch.Tensor) -> torch.Tensor:
    # float16 and bfloat16 are computed in float32 and rounded once at the end, as PyTorch's kernels
    # do: seven or ten bits of mantissa are too few for the intermediate exp, erf and products.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # The two halves that the stable formulas exponentiate: x where x < 0 (else 0), and x where x >= 0
    # (else 0). torch.where evaluates both branches everywhere, and an inf/inf in the branch that is not
    # chosen would still send NaN into the gradient; fed these halves, neither branch can overflow.
    # The test is `x < 0`, so NaN lands in the second half and flows on, gradient and all, as in
    # PyTorch; `clamp` would keep NaN's value but silently give it a zero gradient.
    below = x < 0
    return torch.where(below, x, 0.0), torch.where(below, 0.0, x)


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""$\max(0, x)$ element by element, like `torch.nn.functional.relu`.

    Args:
        input: a floating-point tensor.
        inplace: overwrite ``input`` with the result instead of making a new tensor.

    Returns:
        A tensor of ``input``'s shape and dtype (``input`` itself when ``inplace``); ``NaN`` stays ``NaN``.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``inplace`` is not a bool.

    Examples:
        >>> relu(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """
    _check_float("input", input)
    # The test is `x <= 0`, not `x > 0`: NaN fails both, and this way the NaN is kept, as PyTorch keeps
    # it. At exactly 0 the constant branch is chosen, so autograd's derivative there is 0, as in PyTorch.
    if _check_bool("inplace", inplace):
        return input.masked_fill_(input <= 0, 0.0)
    return torch.where(input <= 0, 0.0, input)


def leaky_relu(input: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False) -> torch.Tensor:
    r"""$x$ for $x > 0$, `negative_slope`$\cdot x$ otherwise, like `torch.nn.functional.leaky_relu`.

    Args:
        input: a floating-point tensor.
        negative_slope: the slope on the negative side.
        inplace: overwrite ``input`` with the result.

    Returns:
        A tensor of ``input``'s shape and dtype.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor, ``negative_slope`` not a real number or
            ``inplace`` not a bool.

    Examples:
        >>> leaky_relu(torch.tensor([-10.0, 3.0]), negative_slope=0.2)
        tensor([-2.,  3.])
    """
    _check_float("input", input)
    slope = _check_slope(negative_slope)
    if _check_bool("inplace", inplace):
        # Multiplying by 1 is exact, so the positive side is untouched; autograd saves only the factor.
        return input.mul_(torch.where(input > 0, 1.0, slope).to(input.dtype))
    return torch.where(input > 0, input, input * slope)


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    r"""The logistic sigmoid $1 / (1 + e^{-x})$, never exponentiating a positive number, like `torch.sigmoid`.

    Args:
        input: a floating-point tensor.

    Returns:
        A tensor of ``input``'s shape and dtype, in $[0, 1]$; ``NaN`` stays ``NaN``.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> sigmoid(torch.tensor([-1000.0, 0.0, 1000.0]))
        tensor([0.0000, 0.5000, 1.0000])
    """
    x = _wide(_check_float("input", input))
    negative, positive = _split(x)
    e = negative.exp()  # e^x for x < 0, in (0, 1)
    return torch.where(x < 0, e / (1 + e), 1 / (1 + (-positive).exp())).to(input.dtype)


def tanh(input: torch.Tensor) -> torch.Tensor:
    r"""$\tanh$, as $-\operatorname{expm1}(-2x) / (1 + e^{-2x})$ for $x \ge 0$ and its mirror below, like `torch.tanh`.

    Args:
        input: a floating-point tensor.

    Returns:
        A tensor of ``input``'s shape and dtype, in $[-1, 1]$; ``NaN`` stays ``NaN``.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> tanh(torch.tensor([-1000.0, 0.5, 1000.0]))
        tensor([-1.0000,  0.4621,  1.0000])
    """
    x = _wide(_check_float("input", input))
    # tanh is odd: for x >= 0 we exponentiate -2x <= 0, and for x < 0 the mirrored formula exponentiates
    # 2x < 0. expm1(t) = e^t - 1 keeps the relative precision of tiny inputs (tanh(1e-8) is 1e-8, not 0).
    negative, positive = _split(x)
    above = -torch.expm1(-2 * positive) / (1 + (-2 * positive).exp())
    below = torch.expm1(2 * negative) / (1 + (2 * negative).exp())
    return torch.where(x < 0, below, above).to(input.dtype)


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    r"""GELU, $x\,\Phi(x)$, exact or with the tanh approximation, like `torch.nn.functional.gelu`.

    Args:
        input: a floating-point tensor.
        approximate: ``"none"`` for $x\,\Phi(x)$ with the normal CDF written with ``erfc``, ``"tanh"`` for
            $\frac12 x (1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))$.

    Returns:
        A tensor of ``input``'s shape and dtype. At $-\infty$ both forms give ``NaN`` ($-\infty \cdot 0$), as
        PyTorch does. At $+\infty$ ours gives ``inf``; PyTorch's exact form can give ``NaN`` there, depending
        on the dtype and on which CPU kernel (vectorised or not) runs.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.
        ValueError: if ``approximate`` is neither ``"none"`` nor ``"tanh"``.

    Examples:
        >>> gelu(torch.tensor([-1.0, 0.0, 1.0])), gelu(torch.tensor([-1.0, 0.0, 1.0]), approximate="tanh")
        (tensor([-0.1587,  0.0000,  0.8413]), tensor([-0.1588,  0.0000,  0.8412]))
    """
    x = _wide(_check_float("input", input))
    if _check_approximate(approximate) == "tanh":
        return (0.5 * x * (1 + tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x**3)))).to(input.dtype)
    # Phi(x) = erfc(-x / sqrt 2) / 2. Far left, 1 + erf(x / sqrt 2) would subtract two numbers close to
    # 1 and keep only rounding noise; erfc returns the small tail itself, to full relative precision.
    return (x * 0.5 * torch.erfc(-x * (1 / math.sqrt(2.0)))).to(input.dtype)


def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    r"""SiLU (Swish), $x\,\sigma(x)$, on the stable `sigmoid`, like `torch.nn.functional.silu`.

    Args:
        input: a floating-point tensor.
        inplace: overwrite ``input`` with the result (a half-precision input is then rounded twice).

    Returns:
        A tensor of ``input``'s shape and dtype: ``NaN`` at $-\infty$ ($-\infty \cdot 0$), as in PyTorch.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor or ``inplace`` is not a bool.

    Examples:
        >>> silu(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.2689,  0.0000,  0.7311])
    """
    _check_float("input", input)
    if _check_bool("inplace", inplace):
        # mul_ keeps the old input for its own backward, so this in-place product stays differentiable.
        return input.mul_(sigmoid(input))
    x = _wide(input)
    return (x * sigmoid(x)).to(input.dtype)


def relu_grad(input: torch.Tensor) -> torch.Tensor:
    """The derivative of `relu`: 1 where ``input > 0``, else 0 (0 at 0, as PyTorch's autograd has it).

    Like every derivative here it takes a floating-point ``input`` (anything else raises `TypeError`)
    and returns a tensor of its shape and dtype.

    Examples:
        >>> relu_grad(torch.tensor([-1.0, 0.0, 3.0]))
        tensor([0., 0., 1.])
    """
    return (_check_float("input", input) > 0).to(input.dtype)


def leaky_relu_grad(input: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """The derivative of `leaky_relu`: 1 where ``input > 0``, else ``negative_slope`` (also at 0).

    Examples:
        >>> leaky_relu_grad(torch.tensor([-1.0, 0.0, 3.0]), negative_slope=0.5)
        tensor([0.5000, 0.5000, 1.0000])
    """
    _check_float("input", input)
    return torch.where(input > 0, 1.0, _check_slope(negative_slope)).to(input.dtype)


def sigmoid_grad(input: torch.Tensor) -> torch.Tensor:
    r"""The derivative of `sigmoid`, $\sigma(x)(1 - \sigma(x))$: at most $\frac14$, at $x = 0$.

    Examples:
        >>> sigmoid_grad(torch.tensor([0.0, 1000.0]))
        tensor([0.2500, 0.0000])
    """
    s = sigmoid(_wide(_check_float("input", input)))
    return (s * (1 - s)).to(input.dtype)


def tanh_grad(input: torch.Tensor) -> torch.Tensor:
    r"""The derivative of `tanh`, $1 - \tanh^2(x)$: at most 1, at $x = 0$.

    Examples:
        >>> tanh_grad(torch.tensor([0.0, 1000.0]))
        tensor([1., 0.])
    """
    t = tanh(_wide(_check_float("input", input)))
    return (1 - t * t).to(input.dtype)


def silu_grad(input: torch.Tensor) -> torch.Tensor:
    r"""The derivative of `silu`, $\sigma(x)\,(1 + x(1 - \sigma(x)))$, slightly above 1 for moderate $x > 0$.

    Examples:
        >>> silu_grad(torch.tensor([0.0, 2.0]))
        tensor([0.5000, 1.0908])
    """
    x = _wide(_check_float("input", input))
    s = sigmoid(x)
    return (s * (1 + x * (1 - s))).to(input.dtype)


def gelu_grad(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    r"""The derivative of `gelu`: $\Phi(x) + x\,\varphi(x)$, or that of the tanh form (``approximate="tanh"``).

    Examples:
        >>> gelu_grad(torch.tensor([0.0, 1.0]))
        tensor([0.5000, 1.0833])
    """
    x = _wide(_check_float("input", input))
    if _check_approximate(approximate) == "tanh":
        # Product rule on (x/2)(1 + t), with t = tanh(u) and du/dx = sqrt(2/pi) (1 + 3 kappa x^2).
        t = tanh(_SQRT_2_OVER_PI * (x + _GELU_KAPPA * x**3))
        du = _SQRT_2_OVER_PI * (1 + 3 * _GELU_KAPPA * x**2)
        return (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du).to(input.dtype)
    cdf = 0.5 * torch.erfc(-x * (1 / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return (cdf + x * pdf).to(input.dtype)


def softmax_jacobian(input: torch.Tensor) -> torch.Tensor:
    r"""The Jacobian of `softmax` over a vector, $\partial s_i / \partial x_j = s_i(\delta_{ij} - s_j)$.

    No network builds this $n \times n$ matrix: the backward pass needs only its product with the
    incoming gradient $g$, which is $s \odot (g - \langle g, s\rangle)$.

    Args:
        input: a one-dimensional floating-point tensor of $n$ scores.

    Returns:
        The matrix $\operatorname{diag}(s) - s s^\top$, shape ``(n, n)``; its rows sum to 0.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.
        ValueError: if ``input`` is not one-dimensional.

    Examples:
        >>> softmax_jacobian(torch.zeros(2))
        tensor([[ 0.2500, -0.2500],
                [-0.2500,  0.2500]])
    """
    if _check_float("input", input).dim() != 1:
        raise ValueError(f"input must be one-dimensional, got shape {tuple(input.shape)}")
    s = softmax(input, dim=0)  # (n,)
    return torch.diag(s) - torch.outer(s, s)  # (n, n)


def plot_activations(*, points: int = 401, reach: float = 4.0) -> Figure:
    """Draw the lesson's activations on the left and their analytic derivatives on the right.

    Args:
        points: how many inputs to evaluate.
        reach: the inputs run from ``-reach`` to ``reach``.

    Returns:
        A matplotlib figure with two axes.

    Raises:
        ValueError: if ``points`` is below 2 or ``reach`` is not positive.

    Examples:
        >>> fig = plot_activations(points=11)
        >>> [len(ax.lines) for ax in fig.axes]   # two axes, a curve per activation on each
        [7, 7]
    """
    _check_plot_range(points, reach)
    fig, (ax_f, ax_d) = new_figure(1, 2, width=10.5, height=4.0)
    x = torch.linspace(-reach, reach, points, dtype=torch.float64)
    # Each curve and its derivative come from the lesson's own functions. LeakyReLU gets a visible 0.1
    # slope. ReLU and the exact GELU are drawn wide, since LeakyReLU and the dashed tanh GELU lie on top
    # of them at this scale.
    curves = [
        ("ReLU", relu, relu_grad, "-", 3.5),
        ("LeakyReLU(0.1)", lambda t: leaky_relu(t, 0.1), lambda t: leaky_relu_grad(t, 0.1), "-", 1.5),
        ("GELU", gelu, gelu_grad, "-", 3.5),
        ("GELU (tanh)", lambda t: gelu(t, "tanh"), lambda t: gelu_grad(t, "tanh"), "--", 1.5),
        ("SiLU", silu, silu_grad, "-", 1.5),
        ("tanh", tanh, tanh_grad, "-", 1.5),
        ("sigmoid", sigmoid, sigmoid_grad, "-", 1.5),
    ]
    for colour, (name, f, df, style, width) in zip(PALETTE, curves, strict=True):
        ax_f.plot(x, f(x), color=colour, linestyle=style, linewidth=width, label=name)
        ax_d.plot(x, df(x), color=colour, linestyle=style, linewidth=width, label=name)
    ax_f.set(xlabel="x", ylabel="f(x)", title="Activations", ylim=(-1.5, reach))
    ax_d.set(xlabel="x", ylabel="f'(x)", title="Their derivatives", ylim=(-0.3, 1.3))
    ax_f.legend(loc="upper left", fontsize="small")
    return fig


class ReLU(nn.Module):
    """`relu` as a module, like `torch.nn.ReLU(inplace=False)`.

    Examples:
        >>> ReLU(inplace=True)
        ReLU(inplace=True)
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = _check_bool("inplace", inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(nn.Module):
    """`leaky_relu` as a module, like `torch.nn.LeakyReLU(negative_slope=0.01, inplace=False)`.

    Examples:
        >>> LeakyReLU()
        LeakyReLU(negative_slope=0.01)
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = _check_slope(negative_slope)
        self.inplace = _check_bool("inplace", inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(nn.Module):
    """`gelu` as a module, like `torch.nn.GELU(approximate="none")`.

    Examples:
        >>> GELU(), GELU(approximate="tanh")
        (GELU(approximate='none'), GELU(approximate='tanh'))
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = _check_approximate(approximate)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(nn.Module):
    """`silu` as a module, like `torch.nn.SiLU(inplace=False)`.

    Examples:
        >>> SiLU()(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 0.7311])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = _check_bool("inplace", inplace)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return silu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Tanh(nn.Module):
    """`tanh` as a module, like `torch.nn.Tanh`.

    Examples:
        >>> Tanh()(torch.tensor([0.0]))
        tensor([0.])
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return tanh(input)


class Sigmoid(nn.Module):
    """`sigmoid` as a module, like `torch.nn.Sigmoid`.

    Examples:
        >>> Sigmoid()(torch.tensor([0.0]))
        tensor([0.5000])
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return sigmoid(input)


class Softmax(nn.Module):
    """The element-wise lesson's stable softmax as a module, like `torch.nn.Softmax(dim)`, minus the guessing.

    Args:
        dim: the dimension whose entries sum to one. Required: `torch.nn.Softmax` accepts ``None`` and
            then guesses a dimension; this one refuses.

    Raises:
        TypeError: if ``dim`` is not an int.

    Examples:
        >>> Softmax(dim=1)(torch.zeros(1, 4))
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = _check_dim(dim)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return softmax(input, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def swiglu(input: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
    r"""The SwiGLU feed-forward, $(\operatorname{SiLU}(x W_1^\top) \odot x W_3^\top) W_2^\top$, without biases.

    Args:
        input: a floating-point tensor of shape ``(..., in_features)``.
        w1: the gate projection, ``(hidden_features, in_features)`` as `nn.Linear` stores it.
        w2: the down projection, ``(out_features, hidden_features)``.
        w3: the up projection, ``(hidden_features, in_features)``.

    Returns:
        A tensor of shape ``(..., out_features)``.

    Raises:
        TypeError: if any argument is not a floating-point tensor.
        ValueError: if the shapes do not fit together.

    Examples:
        >>> x, w = torch.ones(3, 2), torch.ones(4, 2)
        >>> swiglu(x, w, torch.ones(5, 4), w).shape
        torch.Size([3, 5])
        >>> swiglu(x, w, torch.ones(5, 3), w)
        Traceback (most recent call last):
        ...
        ValueError: w2 must have shape (out_features, 4) to follow w1 of shape (4, 2), got (5, 3)
    """
    _check_swiglu(input, w1, w2, w3)
    gate = silu(input @ w1.mT)  # (..., hidden)
    up = input @ w3.mT  # (..., hidden)
    return (gate * up) @ w2.mT  # (..., out)


class SwiGLU(nn.Module):
    """The LLaMA-style gated feed-forward block: three `nn.Linear` layers named ``w1``, ``w2``, ``w3``.

    Args:
        in_features: the width of the input.
        hidden_features: the width of the gate and of the up projection.
        out_features: the width of the output; ``None`` means ``in_features``.
        bias: give the three layers biases (LLaMA has none).

    Raises:
        ValueError: if a width is not a positive int.

    Examples:
        >>> block = SwiGLU(4, 8, out_features=2)
        >>> list(block.state_dict())
        ['w1.weight', 'w2.weight', 'w3.weight']
        >>> block(torch.ones(3, 4)).shape
        torch.Size([3, 2])
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 bias: bool = False) -> None:
        super().__init__()
        out_features = in_features if out_features is None else out_features
        _check_widths(in_features=in_features, hidden_features=hidden_features, out_features=out_features)
        # Registered in LLaMA's order, so the state_dict keys and their order match its checkpoints.
        self.w1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.w2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.w3 = nn.Linear(in_features, hidden_features, bias=bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # (..., in) -> gate and up, both (..., hidden) -> their product -> (..., out)
        return self.w2(silu(self.w1(input)) * self.w3(input))


def mish(input: torch.Tensor) -> torch.Tensor:
    r"""Challenge solution: Mish, $x \tanh(\operatorname{softplus}(x))$, with a softplus that never overflows.

    Args:
        input: a floating-point tensor.

    Returns:
        A tensor of ``input``'s shape and dtype, equal to `torch.nn.functional.mish`.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> mish(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 0.8651])
    """
    x = _wide(_check_float("input", input))
    # The autograd lesson's softplus exponentiates only non-positive numbers, so neither its value nor
    # its gradient overflows.
    return (x * tanh(softplus(x))).to(input.dtype)


def _assert_close_at(what: str, x: torch.Tensor | None, got: torch.Tensor, expected: torch.Tensor, rtol: float,
                     atol: float) -> None:
    # Name the first wrong element by its input value, or by its position when there is no single input.
    ok = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        i = int((~ok).flatten().nonzero()[0])
        where = f"input {x.flatten()[i].item()!r}" if x is not None else f"output element {i} (flattened)"
        raise AssertionError(f"{what} at {where} should be {expected.flatten()[i].item()!r}, got {got.flatten()[i].item()!r}")


def check_mish(candidate: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at `mish` against `torch.nn.functional.mish`: values, dtypes and gradients.

    Raises:
        AssertionError: if the candidate disagrees; the message names the dtype and the input.
    """
    inf, generator = math.inf, torch.Generator().manual_seed(0)
    extremes = [-inf, -1000.0, -100.0, -20.0, -1.0, 0.0, 0.5, 3.0, 20.0, 100.0, 1000.0, inf, math.nan]
    for dtype, rtol, atol in ((torch.float32, 1e-5, 1e-6), (torch.float64, 1e-7, 1e-10), (torch.bfloat16, 1.6e-2, 1e-5)):
        x = torch.cat([torch.tensor(extremes), 10 * torch.randn(40, generator=generator)]).to(dtype)
        got = candidate(x.clone())
        assert isinstance(got, torch.Tensor) and got.dtype == dtype, f"for a {dtype} input return a {dtype} tensor, got {got!r}"
        assert got.shape == x.shape, f"the result must have the input's shape {tuple(x.shape)}, got {tuple(got.shape)}"
        _assert_close_at(f"{dtype}: mish", x, got, F.mish(x), rtol, atol)
    # Gradients at finite inputs, in float64, against autograd through PyTorch's own mish.
    x = torch.tensor([-1000.0, -100.0, -20.0, -1.0, 0.0, 0.5, 3.0, 20.0, 100.0, 1000.0], dtype=torch.float64)
    x = torch.cat([x, 10 * torch.randn(20, dtype=torch.float64, generator=generator)]).requires_grad_(True)
    (got,) = torch.autograd.grad(candidate(x).sum(), x)
    (expected,) = torch.autograd.grad(F.mish(x).sum(), x)
    _assert_close_at("the gradient of mish", x.detach(), got, expected, 1e-6, 1e-9)


# Argument checks, kept at the foot so that each elixir above reads as its formula.


def _check_float(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def _check_slope(negative_slope: object) -> float:
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, Real) or math.isnan(negative_slope):
        raise TypeError(f"negative_slope must be a real number, got {negative_slope!r}")
    return float(negative_slope)


def _check_approximate(approximate: object) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate


def _check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {dim!r}")
    return dim


def _check_plot_range(points: object, reach: object) -> None:
    if points < 2 or not reach > 0:
        raise ValueError(f"points must be at least 2 and reach positive, got points={points}, reach={reach}")


def _check_swiglu(input: object, w1: object, w2: object, w3: object) -> None:
    for name, t in (("input", input), ("w1", w1), ("w2", w2), ("w3", w3)):
        _check_float(name, t)
    if input.dim() < 1 or w1.dim() != 2 or w1.shape[1] != input.shape[-1]:
        raise ValueError(f"w1 must have shape (hidden_features, {input.shape[-1] if input.dim() else '?'}), "
                         f"got {tuple(w1.shape)}")
    if w3.shape != w1.shape:
        raise ValueError(f"w3 must have the shape of w1, {tuple(w1.shape)}, got {tuple(w3.shape)}")
    if w2.dim() != 2 or w2.shape[1] != w1.shape[0]:
        raise ValueError(f"w2 must have shape (out_features, {w1.shape[0]}) to follow w1 of shape "
                         f"{tuple(w1.shape)}, got {tuple(w2.shape)}")


def _check_widths(**widths: object) -> None:
    for name, value in widths.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
