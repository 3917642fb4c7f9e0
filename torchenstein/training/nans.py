r"""
# Hunting NaNs: When the Abyss Stares Back

!!! torchenstein "The Professor speaks"
    I have stared into the abyss of `NaN` losses until the abyss stared back. Three days of training, a
    loss curve like a ski slope, and then: `nan`. Every weight `nan`, the checkpoint `nan`, my coffee, I
    am fairly sure, `nan`. Tonight, apprentices, we become hunters. We breed every classic `NaN` in a
    jar and learn the tracks each one leaves; we build a trap that names the module where the first one
    appears, and a guard that keeps one bad batch from poisoning the whole monster.

**You will learn to**

- say what `NaN` and `inf` are, how they spread, and test for them the one way that works;
- reproduce and fix the classic causes: `log(0)`, `exp` overflow, normalising a zero vector, the gradient
  of `sqrt` at 0, float16 overflow, a learning rate that diverges, and one bad sample;
- make autograd's anomaly mode name the backward operation that produced a `NaN`, and read its verdict
  with suspicion;
- build `find_first_nonfinite`, a tracer that names the first module whose output is not finite;
- guard the optimizer with `step_if_finite`, so a bad batch is skipped instead of poisoning the weights.

## What a NaN is, and how it spreads

Floating-point formats (see [Dtypes and devices](../../tensors/dtypes/index.md)) keep a few bit patterns
for values that are not ordinary numbers: $+\infty$ and $-\infty$, which overflow produces, and `NaN`,
"not a number", the answer to questions without one: $0/0$, $\infty - \infty$, $0 \cdot \infty$,
$\sqrt{-1}$, $\log(-1)$. A `NaN` is contagious: almost any arithmetic with a `NaN` operand gives
`NaN`, so one `NaN` in a batch makes the batch's mean loss `NaN`, and `backward` carries it into every
gradient it touches. And a `NaN` equals nothing, not even itself:

```pycon
>>> import math
>>> import torch
>>> from torch import nn
>>> zero, inf = torch.tensor(0.0), torch.tensor(math.inf)
>>> print(f"0/0 = {zero / zero}, inf - inf = {inf - inf}, 0 * inf = {zero * inf}, 1/0 = {1 / zero}")
0/0 = nan, inf - inf = nan, 0 * inf = nan, 1/0 = inf
>>> one = torch.tensor(1.0)
>>> print(f"sqrt(-1) = {(-one).sqrt()}, log(-1) = {(-one).log()}, log(0) = {zero.log()}")
sqrt(-1) = nan, log(-1) = nan, log(0) = -inf
>>> batch_losses = torch.tensor([0.3, math.nan, 0.2])
>>> print(f"mean: {batch_losses.mean()}, max: {batch_losses.max()}")
mean: nan, max: nan
>>> nan = torch.tensor(math.nan)
>>> print(f"nan == nan: {(nan == nan).item()}, isnan(nan): {torch.isnan(nan).item()}")
nan == nan: False, isnan(nan): True
>>> torch.isfinite(torch.tensor([1.0, math.inf, math.nan]))
tensor([ True, False, False])

```

`torch.isfinite` is the test to remember: `False` for `NaN` and for both infinities. Hunt both, because an
infinity rarely stays harmless for long: the next subtraction, or multiplication by zero, turns it into a
`NaN`. The rest of this lesson breeds the usual suspects one by one, then builds the tools that catch
them.

## The logarithm of zero

$\log 0 = -\infty$, and the derivative $1/x$ is $+\infty$ there. A probability that underflowed to exactly
0 (see the stable softmax of [Elemental tensor alchemy](../../tensors/elementwise/index.md)) and then went
through `log` gives an infinite loss; with probability targets, a target of 0 multiplies that $-\infty$
and $0 \cdot (-\infty)$ is `NaN`. The cure is taught in that lesson and in
[Loss potions](../../nn/losses/index.md): never form the probability, take `log_softmax` of the logits.

```pycon
>>> from torchenstein.tensors.elementwise import log_softmax, softmax
>>> logits = torch.tensor([2.0, 0.0, -200.0], requires_grad=True)
>>> target = torch.tensor([0.0, 1.0, 0.0])                # class 1, as a probability vector
>>> probs = softmax(logits, dim=0)
>>> probs.log().detach()                                  # the third probability underflowed to 0
tensor([-0.1269, -2.1269,    -inf])
>>> -(target * probs.log()).sum()                         # 0 * -inf
tensor(nan, grad_fn=<NegBackward0>)
>>> loss = -(target * log_softmax(logits, dim=0)).sum()
>>> loss.backward()
>>> print(f"loss: {loss.item():.4f}, gradient: {logits.grad}")
loss: 2.1269, gradient: tensor([ 0.8808, -0.8808,  0.0000])

```

When the probabilities come from elsewhere, `p.clamp_min(eps).log()` keeps the value finite (and sends no
gradient through the clamped entries). `torch.xlogy(t, p)`, which computes $t \log p$ with $0 \log 0 = 0$,
fixes the value but not the gradient: its derivative in $p$ is $t / p$, and $0/0$ is still `NaN`.

```pycon
>>> p = torch.tensor([1.0, 0.0], requires_grad=True)
>>> value = -torch.xlogy(torch.tensor([1.0, 0.0]), p).sum()
>>> value.backward()
>>> print(f"value is 0: {value.item() == 0}, gradient: {p.grad}")
value is 0: True, gradient: tensor([-1., nan])

```

## `exp` overflow

float32 holds numbers up to about $3.4 \times 10^{38}$, so $e^x$ overflows once $x$ exceeds its
logarithm, and $\infty / \infty$ is `NaN`. The naive softmax of the elementwise lesson dies this way; so
does a sigmoid written by hand as $e^x / (1 + e^x)$. The built-ins use forms that never exponentiate a
large positive number:

```pycon
>>> largest = torch.finfo(torch.float32).max
>>> print(f"largest float32: {largest:.4g}, its logarithm: {math.log(largest):.2f}")
largest float32: 3.403e+38, its logarithm: 88.72
>>> torch.exp(torch.tensor([88.0, 89.0]))
tensor([1.6516e+38,        inf])
>>> x = torch.tensor([0.0, 50.0, 100.0])
>>> print(f"by hand: {torch.exp(x) / (1 + torch.exp(x))}\nsigmoid: {torch.sigmoid(x)}")
by hand: tensor([0.5000, 1.0000,    nan])
sigmoid: tensor([0.5000, 1.0000, 1.0000])

```

The [Autograd](../../tensors/autograd/index.md) lesson shows the same disease in a softplus whose value
survives as `inf` while its gradient becomes `NaN`, and cures it with a custom backward.

## Dividing by a zero norm

Normalising a vector, $x / \lVert x \rVert$, is everywhere: embeddings for cosine similarity, weight
normalisation, the directions of gradients. The norm of a zero vector is a perfectly good 0, and the
division is $0/0$:

```pycon
>>> v = torch.zeros(2, 3)
>>> v[0] = torch.tensor([3.0, 4.0, 0.0])                  # row 1 stays a zero vector
>>> norm = torch.linalg.vector_norm(v, dim=1, keepdim=True)   # (2, 1)
>>> norm.flatten()
tensor([5., 0.])
>>> v / norm
tensor([[0.6000, 0.8000, 0.0000],
        [   nan,    nan,    nan]])

```

The fix is a floor under the denominator, $x / \max(\lVert x \rVert, \epsilon)$, which is exactly what
`torch.nn.functional.normalize` computes. Our [`normalize`][torchenstein.training.nans.normalize] is that
one line, with `F.normalize`'s arguments `p`, `dim` and `eps`; the tests prove it equal, values and
gradients, across norms, dims, shapes and dtypes. Its gradient is finite everywhere, for two reasons:
`vector_norm`'s backward is written to return 0 at a zero vector (a hand-written `x.pow(2).sum().sqrt()`
is not, as the next section shows), and the clamp keeps the division away from 0. Finite is not the
same as small, though: at a zero vector the derivative of $x/\epsilon$ is $1/\epsilon$.

```pycon
>>> import torch.nn.functional as F
>>> from torchenstein.training.nans import normalize
>>> normalize(v, dim=1)
tensor([[0.6000, 0.8000, 0.0000],
        [0.0000, 0.0000, 0.0000]])
>>> print("equal to F.normalize:", torch.equal(normalize(v, dim=1), F.normalize(v, dim=1)))
equal to F.normalize: True
>>> w = torch.zeros(3, requires_grad=True)
>>> torch.linalg.vector_norm(w).backward()
>>> w.grad
tensor([0., 0., 0.])
>>> w.grad = None
>>> normalize(w, dim=0).sum().backward()
>>> w.grad                                                # 1 / eps: finite, and huge
tensor([1.0000e+12, 1.0000e+12, 1.0000e+12])

```

A gradient of $10^{12}$ is the kind that [Gradient clipping](../clipping/index.md) exists for. And one catch,
in PyTorch's `normalize` and ours alike: the default `eps=1e-12` is below the smallest positive float16
number (about $6 \times 10^{-8}$), so in float16 the floor rounds to 0 and the zero vector is $0/0$ once
more. Give float16 an `eps` it can hold, and large enough that the gradient $1/\epsilon$ at a zero vector
stays below 65504: `1e-4` will do.

```pycon
>>> half = v.half()
>>> torch.tensor([1e-12, 6e-8, 1e-4], dtype=torch.float16)
tensor([0.0000e+00, 5.9605e-08, 1.0002e-04], dtype=torch.float16)
>>> print(f"default eps: {F.normalize(half, dim=1)[1].tolist()}, eps=1e-4: {normalize(half, dim=1, eps=1e-4)[1].tolist()}")
default eps: [nan, nan, nan], eps=1e-4: [0.0, 0.0, 0.0]

```

## The gradient of `sqrt` at zero

The distance between two points, written by hand, is $d = \sqrt{\sum_i (a_i - b_i)^2}$. When the points
coincide (a duplicate embedding, an edge of length zero, a prediction that is exactly right) the value is
a fine 0. The gradient is not: the derivative of $\sqrt u$ is $1 / (2\sqrt u) = \infty$ at $u = 0$, and
the chain rule multiplies it by $\partial u / \partial a_i = 2(a_i - b_i) = 0$. $\infty \cdot 0$ is `NaN`:

```pycon
>>> a = torch.tensor([1.0, 2.0], requires_grad=True)
>>> b = torch.tensor([1.0, 2.0])
>>> distance = (a - b).pow(2).sum().sqrt()
>>> distance.backward()
>>> print(f"distance: {distance.item()}, gradient: {a.grad}")
distance: 0.0, gradient: tensor([nan, nan])
>>> a.grad = None
>>> torch.linalg.vector_norm(a - b).backward()           # a backward that knows about 0
>>> a.grad
tensor([0., 0.])

```

The other classic fix is to keep the square root away from zero, $\sqrt{u + \epsilon}$, at the price of
shifting every distance by up to $\sqrt\epsilon$. And one fix does not work: choosing 0 with
`torch.where(u > 0, u.sqrt(), 0.0)` gives the right value, but the unused `u.sqrt()` branch still sends
its $0 \cdot \infty$ back, as [Elemental tensor alchemy](../../tensors/elementwise/index.md) showed. Make
what goes into the branch safe first (a clamp, or `torch.where(u > 0, u, 1.0)`), then choose.

## float16 overflow

float16 stops at 65504. Activations of a few hundred are ordinary, and their *squares* are not: a
variance computed in one pass as $\overline{x^2} - \bar x^2$ becomes $\infty - \infty$. Compute
statistics in float32 (the normalisation layers of Part 2 upcast for this reason; see
[RMSNorm](../../nn/rmsnorm/index.md)), or use bfloat16, which has float32's range:

```pycon
>>> h = torch.tensor([300.0, 300.0, 300.0], dtype=torch.float16)
>>> print(f"largest float16: {torch.finfo(torch.float16).max}, 300 * 300 in float16: {(h * h)[0].item()}")
largest float16: 65504.0, 300 * 300 in float16: inf
>>> (h * h).mean() - h.mean() ** 2                        # a one-pass variance: inf - inf
tensor(nan, dtype=torch.float16)
>>> hf = h.float()
>>> (hf * hf).mean() - hf.mean() ** 2
tensor(0.)
>>> hb = h.bfloat16()
>>> (hb * hb).mean() - hb.mean() ** 2
tensor(0., dtype=torch.bfloat16)

```

## A learning rate that diverges

Not every `NaN` comes from a bad formula. Plain SGD moves each weight by $-\eta\,g$; on a quadratic loss,
a learning rate $\eta$ above $2/\lambda$ (for the loss's largest curvature $\lambda$; the first challenge
of [the SGD lesson](../sgd/index.md) derives the limit) overshoots the minimum by more than it started
from, every step. The loss grows geometrically and overflows to `inf`;
the weights follow more slowly, and once they overflow too, `inf - inf` makes everything `NaN`. The
tell-tale sign comes long before the `NaN`: a loss that *grows* by the same factor step after step. Here
is a linear regression trained with a sane and an insane learning rate:

```pycon
>>> from torchenstein.nn.linear import Linear
>>> from torchenstein.nn.losses import mse_loss
>>> def sgd_losses(lr, steps=80):
...     _ = torch.manual_seed(0)
...     layer = Linear(4, 1)
...     x = torch.randn(32, 4)
...     y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
...     sgd = torch.optim.SGD(layer.parameters(), lr=lr)
...     history = []
...     for _ in range(steps):
...         loss = mse_loss(layer(x), y)
...         sgd.zero_grad()
...         loss.backward()
...         sgd.step()
...         history.append(loss.item())
...     return history
>>> calm, wild = sgd_losses(0.1), sgd_losses(1.5)
>>> print(f"lr 0.1, last loss below 1e-4: {calm[-1] < 1e-4}")
lr 0.1, last loss below 1e-4: True
>>> print("lr 1.5, first losses:", ", ".join(f"{value:.2g}" for value in wild[:5]))
lr 1.5, first losses: 15, 69, 6.3e+02, 6.4e+03, 6.6e+04
>>> first_inf = next(step for step, value in enumerate(wild) if math.isinf(value))
>>> first_nan = next(step for step, value in enumerate(wild) if math.isnan(value))
>>> print(f"loss inf from step {first_inf}, NaN from step {first_nan}")
loss inf from step 35, NaN from step 72

```

The fixes belong to the optimiser lessons (a smaller learning rate, a warm-up that starts small), with
[Gradient clipping](../clipping/index.md) as the fuse that bounds every step.

## One bad sample

A single corrupt value in a data set (a division by zero in preprocessing, a missing measurement stored
as `NaN`, a broken image) reaches the loss the moment its batch comes round. The mean over the batch is
`NaN`; every weight's gradient is a sum over the samples, so every gradient is `NaN`; and one optimizer
step later, every weight is:

```pycon
>>> _ = torch.manual_seed(0)
>>> layer = Linear(3, 2)
>>> sgd = torch.optim.SGD(layer.parameters(), lr=0.1)
>>> x, y = torch.randn(8, 3), torch.randn(8, 2)
>>> x[5, 1] = math.nan                                    # one value, in one sample of eight
>>> loss = mse_loss(layer(x), y)
>>> loss.backward()
>>> sgd.step()
>>> print(f"loss: {loss.item()}, every weight NaN: {layer.weight.isnan().all().item()}, "
...       f"every bias NaN: {layer.bias.isnan().all().item()}")
loss: nan, every weight NaN: True, every bias NaN: True
>>> (~torch.isfinite(x)).any(dim=1).nonzero().flatten()   # which sample?
tensor([5])

```

Check data where it is loaded (the second challenge below drops the bad samples of a batch), and guard
the step, as we shall in a moment.

## Naming the culprit: anomaly detection

A backward pass runs hundreds of operations. Which one made the first `NaN`? Wrap forward and backward
in `torch.autograd.detect_anomaly()` (or switch it on for the whole program with
`torch.autograd.set_detect_anomaly(True)`). During the forward pass it records the Python stack of every
operation; during backward it checks every backward function's output, and at the first one holding a
`NaN` it raises a `RuntimeError` naming that function, after issuing a warning that carries the forward
traceback of the operation that created it. The bookkeeping makes everything slower: a debugging tool,
never a training default. It prints its warnings to the error stream; here we catch them to read them:

```pycon
>>> import warnings
>>> a = torch.tensor([1.0, 2.0], requires_grad=True)
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     with torch.autograd.detect_anomaly():
...         distance = (a - b).pow(2).sum().sqrt()
...         distance.backward()
Traceback (most recent call last):
...
RuntimeError: Function 'PowBackward0' returned nan values in its 0th output.
>>> message = str(caught[-1].message)
>>> message.splitlines()[0]
'Error detected in PowBackward0. Traceback of forward call that caused the error:'
>>> "distance = (a - b).pow(2).sum().sqrt()" in message
True

```

Read the verdict with suspicion. It names `PowBackward0`, the backward of `pow(2)`, not of `sqrt`:
`sqrt`'s backward produced $+\infty$, which is not `NaN`, so it passed; `pow`'s backward multiplied that
$\infty$ by $2(a - b) = 0$. Anomaly mode names where the `NaN` was *born*; the operation *after* it in the
forward pass, whose backward ran just before, is often the real culprit.

## A tracer for the forward pass

Anomaly mode watches the backward pass, but most `NaN`s are born in the forward pass, and there we can
build our own detector. [`find_first_nonfinite`][torchenstein.training.nans.find_first_nonfinite] lends a
*forward hook* to every module (the function a module calls with its input and output each time it runs,
which [`activation_stats`][torchenstein.training.clipping.activation_stats] of the clipping lesson used
to take the pulse of every layer). The hooks check each output as the
modules finish, the first non-finite one stops the forward pass, and its module's qualified name is the
answer. The hooks are removed in a `finally`, so they never outlive the call, even when the model raises.

```pycon
>>> from collections import OrderedDict
>>> from torchenstein.training.nans import find_first_nonfinite
>>> class Log(nn.Module):
...     def forward(self, x):
...         return torch.log(x)                           # NaN for every negative input
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(OrderedDict(
...     encoder=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8)),
...     log=Log(),
...     head=nn.Linear(8, 1),
... ))
>>> x = torch.randn(5, 4)
>>> net(x).isnan().any().item()
True
>>> find_first_nonfinite(net, x)
'log'
>>> find_first_nonfinite(net.encoder, x) is None
True
>>> x[2, 0] = math.nan
>>> find_first_nonfinite(net, x)                          # the very first layer: suspect the data
'encoder.0'

```

Hooks fire when a module *finishes*, so a `NaN` made by a parent's own code between two submodules is
reported at the next submodule that sees it (or at the parent, `""` for the model itself, if no
submodule follows). Run the tracer in the mode you train in: dropout and batch normalisation behave
differently in `eval()`.

## Guarding the step

Finding the cause takes time; meanwhile the run must not die. A `NaN` gradient stepped into the weights
is forever: the weights are `NaN`, and so is the optimizer's *state*, the running averages some
optimizers keep per parameter (momentum, or Adam's averages of the gradient and its square), so even a
perfect next batch cannot repair them. [`step_if_finite`][torchenstein.training.nans.step_if_finite]
checks the loss and every gradient, and steps only if all are finite; otherwise it zeroes the gradients
and reports that it skipped. A skipped step touches neither the weights nor the optimizer's state:

```pycon
>>> from torchenstein.training.nans import step_if_finite
>>> _ = torch.manual_seed(0)
>>> layer = Linear(3, 2)
>>> adamw = torch.optim.AdamW(layer.parameters(), lr=0.01)
>>> def train_step(x, y):
...     loss = mse_loss(layer(x), y)
...     adamw.zero_grad()
...     loss.backward()
...     return step_if_finite(adamw, loss)
>>> x, y = torch.randn(8, 3), torch.randn(8, 2)
>>> train_step(x, y)
True
>>> before = {name: p.detach().clone() for name, p in layer.named_parameters()}
>>> bad = x.clone()
>>> bad[5, 1] = math.nan
>>> train_step(bad, y)
False
>>> unchanged = all(torch.equal(p, before[name]) for name, p in layer.named_parameters())
>>> print(f"weights unchanged: {unchanged}, AdamW's step count: {adamw.state[layer.weight]['step'].item():g}, "
...       f"gradient: {layer.weight.grad}")
weights unchanged: True, AdamW's step count: 1, gradient: None
>>> print(f"next clean batch stepped: {train_step(x, y)}, weights finite: {layer.weight.isfinite().all().item()}")
next clean batch stepped: True, weights finite: True
>>> step_if_finite("adamw")
Traceback (most recent call last):
...
TypeError: optimizer must be a torch.optim.Optimizer, got str

```

The check reads every gradient once and, on a GPU, waits once for the verdict: cheap next to a forward
and backward pass. Count the skips. One skipped step in ten thousand is a bad sample; every step skipped
is a broken model, and the guard only keeps it alive while you hunt. Here is the difference on a
regression whose tenth batch carries one `NaN`:

![Two panels over thirty steps of training, with a dotted line at step 10 where a batch with a NaN sample arrives. Left, the loss on a log scale: the two runs lie on top of each other until step 10, where both have a gap (that batch's loss is NaN); after it the unguarded run has no line at all, while the guarded run keeps falling. Right, the share of weights that are NaN: the unguarded run jumps from 0 to 1 at step 10 and stays there; the guarded run stays at 0.](plot_nan_outbreak.svg)

## A hunter's checklist

1. **Is the data finite?** `torch.isfinite(batch).all()` on inputs and targets, at load time.
2. **Which module?** [`find_first_nonfinite`][torchenstein.training.nans.find_first_nonfinite] on the
   batch that failed.
3. **Which backward?** `torch.autograd.detect_anomaly()`, and a look one operation further along.
4. **Was the loss climbing first?** Then it is the learning rate (or a missing clip), not a formula.
5. **Which dtype?** float16 overflows at 65504; statistics belong in float32.
6. **Keep the run alive** with [`step_if_finite`][torchenstein.training.nans.step_if_finite] while you look.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: testing for NaN with =="
    Dr. Hammer's training loop has a safety check, `if loss == float("nan"): break`. It has never fired,
    and he is proud of it. A `NaN` equals nothing, itself included, so the test is always false.

    ```pycon
    >>> loss = torch.tensor(math.nan)
    >>> print(f"loss == nan: {(loss == math.nan).item()}, loss.item() == nan: {loss.item() == math.nan}")
    loss == nan: False, loss.item() == nan: False
    >>> print(f"torch.isnan: {torch.isnan(loss).item()}, math.isnan: {math.isnan(loss.item())}, "
    ...       f"torch.isfinite: {torch.isfinite(loss).item()}")
    torch.isnan: True, math.isnan: True, torch.isfinite: False

    ```

!!! hammer "Dr. Hammer's trap: the epsilon outside the square root"
    Told that his distance has a `NaN` gradient, Dr. Hammer adds an epsilon: `sqrt(u) + eps`. The value
    is now never 0, and the gradient is exactly as `NaN` as before, because $\infty \cdot 0$ is computed
    before the epsilon is added. The epsilon belongs *inside*, where it moves $u$ away from 0.

    ```pycon
    >>> a = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> ((a - b).pow(2).sum().sqrt() + 1e-8).backward()
    >>> a.grad
    tensor([nan, nan])
    >>> a.grad = None
    >>> ((a - b).pow(2).sum() + 1e-8).sqrt().backward()
    >>> a.grad
    tensor([0., 0.])

    ```

!!! hammer "Dr. Hammer's trap: nan_to_num on the loss"
    Dr. Hammer's loss turns infinite now and then, so he wraps it in `torch.nan_to_num`. The logged loss
    is beautiful. But `nan_to_num`'s backward sends a gradient of 0 into the entry it replaced, and the
    `log` beneath multiplies that 0 by its own infinite derivative: $0 \cdot \infty$, `NaN` once more.
    Painting over the loss does not change the gradient; fix the formula.

    ```pycon
    >>> p = torch.tensor([0.5, 0.0], requires_grad=True)
    >>> loss = torch.nan_to_num(-torch.log(p).sum(), posinf=0.0)
    >>> loss
    tensor(0., grad_fn=<NanToNumBackward0>)
    >>> loss.backward()
    >>> p.grad
    tensor([-0., nan])

    ```

!!! hammer "Dr. Hammer's trap: checking only the loss"
    Dr. Hammer guards his step with `if torch.isfinite(loss): optimizer.step()`. But a finite loss can
    have a `NaN` gradient: the distance of two equal points is 0, and its gradient is `NaN`. His check
    passes, his weights die. Check the gradients too, as `step_if_finite` does.

    ```pycon
    >>> point = nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> sgd = torch.optim.SGD([point], lr=0.1)
    >>> loss = (point - b).pow(2).sum().sqrt()            # the points coincide
    >>> loss.backward()
    >>> print(f"loss finite: {torch.isfinite(loss).item()}, gradient: {point.grad}")
    loss finite: True, gradient: tensor([nan, nan])
    >>> print(f"stepped: {step_if_finite(sgd, loss)}, point: {point.tolist()}")
    stepped: False, point: [1.0, 2.0]

    ```

## Challenges

1. **A cosine similarity that survives zero vectors.** Write `cosine_similarity(x1, x2, dim=1, eps=1e-8)`,
   equal to `torch.nn.functional.cosine_similarity`: the inputs broadcast together, each is divided by its
   norm along `dim` floored at `eps`, and the products are summed over `dim`. Zero vectors must give a
   similarity of 0 and finite gradients, never `NaN`.
2. **Drop the bad samples.** Write `drop_nonfinite_samples(inputs, targets)` returning
   `(inputs, targets, dropped)`: the samples (along dimension 0) whose input and target are entirely finite,
   in their original order, and the int64 indices of the samples dropped. Inputs may have any number of
   dimensions; targets may be class indices (integers are always finite), values or rows of values.

Check an attempt with `check_cosine_similarity(my_function)` and `check_drop_nonfinite_samples(my_function)`,
or put both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass:

```pycon
>>> from torchenstein.training.nans import (check_cosine_similarity, check_drop_nonfinite_samples,
...                                         cosine_similarity, drop_nonfinite_samples)
>>> check_cosine_similarity(cosine_similarity)
>>> check_drop_nonfinite_samples(drop_nonfinite_samples)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import nn

from torchenstein.lab import PALETTE, new_figure, progress
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import mse_loss

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def normalize(input: torch.Tensor, p: float = 2.0, dim: int | tuple[int, ...] = 1, eps: float = 1e-12) -> torch.Tensor:
    r"""Divide by the $p$-norm along ``dim``, never by less than ``eps``: $x / \max(\lVert x \rVert_p, \epsilon)$, like `F.normalize`.

    Args:
        input: a floating-point tensor.
        p: the exponent of the norm.
        dim: the dimension (or dimensions) to normalise over.
        eps: the smallest denominator allowed, so a zero vector gives zeros, not ``0/0``.

    Returns:
        A tensor of ``input``'s shape and dtype whose slices along ``dim`` have norm 1 (or are zero).

    Raises:
        TypeError: if ``input`` is not a floating-point tensor, or ``p``, ``dim`` or ``eps`` has the wrong type.
        ValueError: if ``eps`` is negative or NaN.

    Examples:
        >>> normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]])
    """
    _check_normalize(input, p, dim, eps)
    # vector_norm's backward is written to give 0, not 0/0, at a zero vector; the clamp keeps the
    # division finite. Together: finite values and finite gradients everywhere.
    denom = torch.linalg.vector_norm(input, p, dim=dim, keepdim=True).clamp_min(eps)  # size 1 along dim
    return input / denom


class _FoundNonFinite(Exception):
    """Raised inside a hook to stop the forward pass at the first non-finite output."""


def find_first_nonfinite(model: nn.Module, *inputs: object) -> str | None:
    """Run ``model(*inputs)`` and name the first module whose output holds a ``NaN`` or an ``inf``.

    Every module gets a forward hook (a function the module calls with its input and output each time it
    runs). Hooks run when a module *finishes*, so a child reports before its parent, and the first report
    is the module where the non-finite value first left a module. The forward pass stops right there, and
    every hook is removed afterwards, even if the forward fails.

    Args:
        model: the network.
        *inputs: what to call it with.

    Returns:
        The module's qualified name as in ``named_modules()`` (``""`` for the model itself, when its own
        code between submodules made the value), or ``None`` if every output was finite.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> find_first_nonfinite(net, torch.ones(1, 2)) is None
        True
        >>> find_first_nonfinite(net, torch.tensor([[float("nan"), 1.0]]))
        '0'
    """
    _check_module(model)
    found: list[str] = []

    def watcher(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if not found and not all(bool(torch.isfinite(t).all()) for t in _float_tensors(output)):
                found.append(name)
                raise _FoundNonFinite  # nothing after this point can tell us more

        return hook

    handles = [module.register_forward_hook(watcher(name)) for name, module in model.named_modules()]
    try:
        with torch.no_grad():
            model(*inputs)
    except _FoundNonFinite:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def step_if_finite(optimizer: torch.optim.Optimizer, loss: torch.Tensor | None = None) -> bool:
    """Call ``optimizer.step()`` only if the loss and every gradient are finite; otherwise zero the gradients.

    Args:
        optimizer: any optimizer; the gradients checked are those of its parameters.
        loss: the loss of this step (optional): a non-finite loss skips the step too.

    Returns:
        ``True`` if the optimizer stepped, ``False`` if the step was skipped. A skipped step leaves the
        parameters and the optimizer's state (momentum, Adam's moments and step count) untouched.

    Raises:
        TypeError: if ``optimizer`` is not a ``torch.optim.Optimizer`` or ``loss`` is not a tensor.

    Examples:
        >>> w = nn.Parameter(torch.ones(2))
        >>> sgd = torch.optim.SGD([w], lr=0.1)
        >>> w.grad = torch.tensor([float("nan"), 1.0])
        >>> step_if_finite(sgd), w.tolist(), w.grad
        (False, [1.0, 1.0], None)
    """
    _check_step(optimizer, loss)
    tensors = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if loss is not None:
        tensors.append(loss.detach())
    finite = True
    if tensors:
        # One verdict per tensor, gathered on one device and read once: a GPU waits for the CPU only once.
        device = tensors[0].device
        finite = bool(torch.stack([torch.isfinite(t).all().to(device) for t in tensors]).all())
    if finite:
        optimizer.step()
    else:
        optimizer.zero_grad()
    return finite


def nan_outbreak_run(guard: bool, *, steps: int = 30, bad_step: int = 10, seed: int = 0) -> dict[str, list[float]]:
    """Train a linear regression with SGD and momentum, feed it one batch with a ``NaN`` sample, and record the damage.

    Args:
        guard: step through [`step_if_finite`][torchenstein.training.nans.step_if_finite] (``True``) or
            call ``optimizer.step()`` regardless (``False``).
        steps: optimizer steps, at least 1.
        bad_step: the step whose batch holds one ``NaN`` input (0-based; may be past ``steps``).
        seed: seeds the data and the weights (the global generator is left untouched).

    Returns:
        ``{"loss": [...], "nan_fraction": [...]}``: each step's loss and, after the step, the share of the
        model's parameters that are ``NaN``.

    Raises:
        TypeError: if ``steps``, ``bad_step`` or ``seed`` is not an int.
        ValueError: if ``steps`` is below 1 or ``bad_step`` or ``seed`` is negative.

    Examples:
        >>> run = nan_outbreak_run(guard=False, steps=3, bad_step=1)
        >>> run["nan_fraction"]
        [0.0, 1.0, 1.0]
    """
    for name, value, minimum in (("steps", steps, 1), ("bad_step", bad_step, 0), ("seed", seed, 0)):
        _check_int(name, value, minimum)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Linear(4, 1)
    true_weight = torch.randn(4, 1, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    history: dict[str, list[float]] = {"loss": [], "nan_fraction": []}
    for step in progress(range(steps), desc="guarded" if guard else "unguarded", leave=False):
        x = torch.randn(16, 4, generator=generator)  # (batch, features)
        y = x @ true_weight
        if step == bad_step:
            x[3, 1] = math.nan  # one corrupt value in one sample
        loss = mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if guard:
            step_if_finite(optimizer, loss)
        else:
            optimizer.step()
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        history["loss"].append(loss.item())
        history["nan_fraction"].append(flat.isnan().float().mean().item())
    return history


def plot_nan_outbreak(*, steps: int = 30, bad_step: int = 10) -> Figure:
    """Draw the loss and the share of ``NaN`` weights of `nan_outbreak_run`, with and without the guard.

    Args:
        steps: optimizer steps per run.
        bad_step: the step whose batch holds a ``NaN``.

    Returns:
        A figure with two axes: the loss (log scale) and the share of parameters that are ``NaN``.

    Examples:
        >>> fig = plot_nan_outbreak(steps=4, bad_step=2)
        >>> len(fig.axes)
        2
    """
    runs = {
        "optimizer.step() regardless": nan_outbreak_run(False, steps=steps, bad_step=bad_step),
        "step_if_finite": nan_outbreak_run(True, steps=steps, bad_step=bad_step),
    }
    fig, (ax_loss, ax_nan) = new_figure(1, 2, width=10.0, height=3.6)
    styles = (("o-", 4.0, PALETTE[2]), ("s--", 1.5, PALETTE[1]))  # the first run drawn wide, underneath
    for (label, history), (style, width, colour) in zip(runs.items(), styles, strict=True):
        # matplotlib leaves NaN points out, so the unguarded loss simply stops at the bad batch.
        ax_loss.semilogy(range(steps), history["loss"], style, markersize=3, linewidth=width, color=colour, label=label)
        ax_nan.plot(range(steps), history["nan_fraction"], style, markersize=3, linewidth=width, color=colour,
                    label=label)
    for ax in (ax_loss, ax_nan):
        ax.axvline(bad_step, color="#888888", linewidth=0.8, linestyle=":")
    ax_loss.set(xlabel="step", ylabel="loss", title=f"Loss (a NaN sample arrives at step {bad_step})")
    ax_nan.set(xlabel="step", ylabel="share of weights that are NaN", title="The weights", ylim=(-0.05, 1.05))
    ax_nan.legend(fontsize=8)
    return fig


# Challenges


def cosine_similarity(x1: torch.Tensor, x2: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    r"""Challenge solution: $\frac{x_1}{\max(\lVert x_1 \rVert, \epsilon)} \cdot \frac{x_2}{\max(\lVert x_2 \rVert, \epsilon)}$ along ``dim``, like `F.cosine_similarity`.

    Args:
        x1: a floating-point tensor.
        x2: a floating-point tensor that broadcasts with ``x1``.
        dim: the dimension holding the vectors.
        eps: the smallest norm allowed, so a zero vector gives similarity 0, not ``0/0``.

    Returns:
        The broadcast shape without ``dim``.

    Raises:
        TypeError: if ``x1`` or ``x2`` is not a floating-point tensor.

    Examples:
        >>> cosine_similarity(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
        tensor([0.7071, 0.0000])
    """
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {_describe(x)}")
    x1, x2 = torch.broadcast_tensors(x1, x2)
    return (normalize(x1, dim=dim, eps=eps) * normalize(x2, dim=dim, eps=eps)).sum(dim)


def check_cosine_similarity(candidate: Callable[..., torch.Tensor]) -> None:
    """Check an attempt at `cosine_similarity` against `F.cosine_similarity`, zero vectors included.

    Raises:
        AssertionError: if a value or gradient differs or is not finite; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    cases = [((5, 3), (5, 3), 1), ((4, 6), (1, 6), 1), ((2, 3, 4), (2, 3, 4), -1), ((3, 7), (3, 7), 0)]
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        for shape1, shape2, dim in cases:
            x1 = torch.randn(shape1, generator=generator, dtype=dtype)
            x2 = torch.randn(shape2, generator=generator, dtype=dtype)
            case = f"shapes {shape1} and {shape2}, dim={dim}, {dtype}"
            for a, b in ((x1, x2), (3 * x1, 0.01 * x2)):
                a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
                got = candidate(a, b, dim=dim)
                want = torch.nn.functional.cosine_similarity(a, b, dim=dim)
                assert isinstance(got, torch.Tensor), f"{case}: return a tensor, got {type(got).__name__}"
                assert got.shape == want.shape, f"{case}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
                assert torch.allclose(got, want, rtol=tol, atol=tol), f"{case}: values differ from F.cosine_similarity"
                grads = torch.autograd.grad(got.sum(), (a, b))
                wanted = torch.autograd.grad(want.sum(), (a, b))
                for g, w in zip(grads, wanted, strict=True):
                    assert torch.allclose(g, w, rtol=1e-4, atol=tol), f"{case}: gradients differ from F.cosine_similarity's"
    # Zero vectors: similarity 0, never NaN, and finite gradients.
    x1 = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
    x2 = torch.tensor([[1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    got = candidate(x1, x2)
    assert isinstance(got, torch.Tensor) and got.shape == (3,), f"zero vectors: expected a tensor of shape (3,), got {got!r}"
    assert torch.equal(got.detach(), torch.zeros(3)), f"zero vectors: similarity must be 0, got {got.tolist()}"
    got.sum().backward()
    assert torch.isfinite(x1.grad).all() and torch.isfinite(x2.grad).all(), "zero vectors: gradients must be finite"
    got = candidate(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]]), dim=1, eps=10.0)
    assert torch.allclose(got, torch.tensor([0.04])), f"eps=10 must floor both norms at 10: expected 0.04, got {got.tolist()}"


def drop_nonfinite_samples(inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Challenge solution: remove the samples (along dimension 0) whose input or target holds a ``NaN`` or an ``inf``.

    Args:
        inputs: a batch, samples along dimension 0.
        targets: their targets, samples along dimension 0 (class indices or values).

    Returns:
        ``(inputs, targets, dropped)``: the clean samples in their original order, and the indices of the
        dropped ones as an int64 tensor.

    Raises:
        TypeError: if ``inputs`` or ``targets`` is not a tensor.
        ValueError: if they hold different numbers of samples, or ``inputs`` is 0-d.

    Examples:
        >>> x = torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [3.0, 4.0]])
        >>> clean_x, clean_y, dropped = drop_nonfinite_samples(x, torch.tensor([0, 1, 2]))
        >>> clean_y, dropped
        (tensor([0, 2]), tensor([1]))
    """
    for name, t in (("inputs", inputs), ("targets", targets)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if inputs.dim() == 0 or targets.dim() == 0 or inputs.size(0) != targets.size(0):
        raise ValueError(f"inputs and targets must hold the same number of samples along dimension 0, "
                         f"got shapes {tuple(inputs.shape)} and {tuple(targets.shape)}")
    # isfinite is True for every integer, so class-index targets never drop a sample by themselves.
    keep = _finite_rows(inputs) & _finite_rows(targets)  # (N,)
    return inputs[keep], targets[keep], (~keep).nonzero().flatten()


def _finite_rows(t: torch.Tensor) -> torch.Tensor:
    # One verdict per sample: every value along the other dimensions must be finite.
    finite = torch.isfinite(t)
    return finite.flatten(1).all(dim=1) if finite.dim() > 1 else finite


def check_drop_nonfinite_samples(candidate: Callable[..., tuple]) -> None:
    """Check an attempt at `drop_nonfinite_samples` on clean, dirty, integer-target and all-bad batches.

    Raises:
        AssertionError: if a returned tensor differs from the expected one; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    nan, inf = math.nan, math.inf
    x = torch.randn(6, 3, 2, generator=generator)
    x[1, 2, 0], x[4, 0, 1] = nan, -inf
    y_values = torch.randn(6, generator=generator)
    y_values[2] = inf
    y_classes = torch.tensor([0, 1, 2, 0, 1, 2])
    y_rows = torch.randn(6, 4, generator=generator)
    y_rows[5, 3] = nan
    cases = [
        ("a clean batch", torch.randn(4, 3, generator=generator), torch.arange(4), []),
        ("NaN and -inf in the inputs, class targets", x, y_classes, [1, 4]),
        ("inf in a value target too", x, y_values, [1, 2, 4]),
        ("NaN in a row of 2-D targets", x, y_rows, [1, 4, 5]),
        ("every sample bad", torch.full((3, 2), nan), torch.zeros(3), [0, 1, 2]),
        ("an empty batch", torch.zeros(0, 3), torch.zeros(0), []),
    ]
    for case, inputs, targets, dropped in cases:
        keep = [i for i in range(len(inputs)) if i not in dropped]
        result = candidate(inputs.clone(), targets.clone())
        assert isinstance(result, tuple) and len(result) == 3, f"{case}: return (inputs, targets, dropped), got {result!r}"
        got_x, got_y, got_dropped = result
        assert torch.equal(got_x, inputs[keep]), f"{case}: the clean inputs should be samples {keep}"
        assert torch.equal(got_y, targets[keep]), f"{case}: the clean targets should be those of samples {keep}"
        assert got_y.dtype == targets.dtype, f"{case}: targets must keep their dtype {targets.dtype}, got {got_y.dtype}"
        assert isinstance(got_dropped, torch.Tensor) and got_dropped.dtype == torch.int64, (
            f"{case}: dropped must be an int64 tensor, got {got_dropped!r}")
        assert got_dropped.tolist() == dropped, f"{case}: dropped should be {dropped}, got {got_dropped.tolist()}"


# Argument checks


def _float_tensors(output: object) -> Iterator[torch.Tensor]:
    # A module may return a tensor, a tuple or list of them, or a dict; look inside, ignore the rest.
    if isinstance(output, torch.Tensor):
        if output.is_floating_point() or output.is_complex():
            yield output
    elif isinstance(output, (tuple, list)):
        for item in output:
            yield from _float_tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _float_tensors(item)


def _describe(x: object) -> str:
    return f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_normalize(input: object, p: object, dim: object, eps: object) -> None:
    if not isinstance(input, torch.Tensor) or not (input.is_floating_point() or input.is_complex()):
        raise TypeError(f"input must be a floating-point tensor, got {_describe(input)}")
    if isinstance(p, bool) or not isinstance(p, Real):
        raise TypeError(f"p must be a real number, got {p!r}")
    dims = dim if isinstance(dim, tuple) else (dim,)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) for d in dims):
        raise TypeError(f"dim must be an int or a non-empty tuple of ints, got {dim!r}")
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f"eps must be a real number, got {eps!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be at least 0, got {eps!r}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _check_step(optimizer: object, loss: object) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if loss is not None and not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss must be a tensor or None, got {type(loss).__name__}")
