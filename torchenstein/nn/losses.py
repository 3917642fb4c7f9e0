r"""
# Loss Potions: Measuring Exactly How Wrong Your Monster Is

!!! torchenstein "The Professor speaks"
    A monster that cannot measure its own mistakes will never stop making them. The loss is that
    measurement: one number that says how wrong the network is, and, through its gradient, which way to
    become less wrong. Today we brew every potion on the shelf from scratch, and learn which ones
    explode when a prediction grows too confident.

**You will learn to**

- write `mse_loss`, `l1_loss`, `huber_loss` and `smooth_l1_loss` from scratch, prove that Huber is
  Smooth L1 scaled by $\beta$, and read how each gradient grows (or refuses to grow) with the error;
- compute binary cross-entropy on probabilities and on logits, and explain why the first one stops at 100;
- build multi-class cross-entropy as log-softmax followed by the negative log-likelihood, with class
  weights and label smoothing, and match PyTorch's weighted mean exactly;
- compute the KL divergence with `log_target`, know what `"batchmean"` divides by, and scale a
  distillation loss by $T^2$;
- recognise a double softmax, a sigmoid before `binary_cross_entropy`, MSE on probabilities and a
  target that silently broadcasts.

## A loss is a number with a gradient

Every loss here first computes one value per element (or per example) and then *reduces* them:
`reduction="mean"` (the default) averages, `"sum"` adds, `"none"` returns them all. We use the mean almost
everywhere below; [Reduction rituals and ignore_index](../reduction/index.md) explains when the mean's
denominator is not what you think, and [Inputs and targets](../targets/index.md) which shapes and dtypes
each loss expects. Our functions take PyTorch's argument names, but every option after `input`, `target`
(and `weight`) is keyword-only: in most of `torch.nn.functional` those positions still hold the
long-deprecated `size_average` and `reduce`, so `F.mse_loss(x, y, "sum")` does not do what it seems to
(see below).

Each of our losses equals its `torch.nn.functional` twin, and the tests hold them to it over everything
the built-ins take on the CPU: float16, bfloat16, float32 and float64; 0-d, empty, transposed, strided
and expanded inputs; every reduction, with and without weights; logits and errors from the dtype's
tiniest to its largest value, infinities and `NaN` included. Their gradients are proved equal in float32
and float64 (and with `gradcheck` in float64), the regression losses' in half precision too.

!!! note "Where it differs from PyTorch"
    - A `target` of another shape: PyTorch broadcasts it (and warns); ours refuse it (see the last trap).
    - float16 and bfloat16: ours compute every element in float32 and round once, after the reduction.
      PyTorch's kernels round their intermediate results in ways that vary from loss to loss, from
      dtype to dtype and even with the input's length (a vectorised kernel for long inputs, a scalar
      one for short). The two agree to within a few units in the last place (the tests allow four).
    - The options after `input`, `target` (and `weight`) are keyword-only, as explained above.

## Regression: MSE and L1

For a prediction $x$ and a target $y$, with the error $e = x - y$:

$$
\operatorname{MSE} = \frac1n \sum_i e_i^2, \qquad \operatorname{L1} = \frac1n \sum_i |e_i| .
$$

The square punishes large errors much more than small ones; the absolute value punishes them all alike.
[`mse_loss`][torchenstein.nn.losses.mse_loss] and [`l1_loss`][torchenstein.nn.losses.l1_loss] are one line
each, plus the reduction:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torchenstein.nn.losses import l1_loss, mse_loss
>>> prediction = torch.tensor([2.5, 0.0, 2.0, 8.0])
>>> target = torch.tensor([3.0, -0.5, 2.0, 7.0])
>>> {"mse": mse_loss(prediction, target), "l1": l1_loss(prediction, target)}
{'mse': tensor(0.3750), 'l1': tensor(0.5000)}
>>> mse_loss(prediction, target, reduction="none")
tensor([0.2500, 0.2500, 0.0000, 1.0000])
>>> mse_loss(prediction, target, reduction="sum")
tensor(1.5000)
>>> torch.testing.assert_close(mse_loss(prediction, target), F.mse_loss(prediction, target))
>>> torch.testing.assert_close(l1_loss(prediction, target), F.l1_loss(prediction, target))
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")                  # PyTorch warns about the deprecated argument
...     F.mse_loss(prediction, target, "sum")            # "sum" lands in size_average: this is the mean
tensor(0.3750)

```

## Huber and Smooth L1: one potion, two labels

Huber's loss is quadratic for small errors and linear for large ones, with the switch at $\delta$;
Smooth L1 (from Fast R-CNN) does the same with the switch at $\beta$, but its linear part has slope 1:

$$
\operatorname{Huber}_\delta(e) = \begin{cases} \tfrac12 e^2 & |e| < \delta \\ \delta\,(|e| - \tfrac12\delta) & \text{otherwise} \end{cases}
\qquad
\operatorname{SmoothL1}_\beta(e) = \begin{cases} \tfrac12 e^2/\beta & |e| < \beta \\ |e| - \tfrac12\beta & \text{otherwise.} \end{cases}
$$

*Proof that* $\operatorname{Huber}_\delta = \beta \cdot \operatorname{SmoothL1}_\beta$ *when* $\delta = \beta$:
both switch at the same point. Below it, $\beta \cdot \tfrac12 e^2/\beta = \tfrac12 e^2$; above it,
$\beta\,(|e| - \tfrac12\beta) = \delta\,(|e| - \tfrac12\delta)$. The two agree piece by piece, so they
agree everywhere, and so do their means. At $\beta = 0$ Smooth L1 is plain L1 (PyTorch allows it; Huber
insists on $\delta > 0$, since $\operatorname{Huber}_0 = 0$ would learn nothing).
[`huber_loss`][torchenstein.nn.losses.huber_loss] and [`smooth_l1_loss`][torchenstein.nn.losses.smooth_l1_loss]:

```pycon
>>> from torchenstein.nn.losses import huber_loss, smooth_l1_loss
>>> error, zero = torch.tensor([-3.0, -0.5, 0.0, 0.2, 2.0]), torch.zeros(5)
>>> huber_loss(error, zero, reduction="none", delta=2.0)
tensor([4.0000, 0.1250, 0.0000, 0.0200, 2.0000])
>>> smooth_l1_loss(error, zero, reduction="none", beta=2.0)
tensor([2.0000, 0.0625, 0.0000, 0.0100, 1.0000])
>>> for b in (0.5, 1.0, 2.0):
...     torch.testing.assert_close(huber_loss(error, zero, delta=b), b * smooth_l1_loss(error, zero, beta=b))
>>> torch.equal(smooth_l1_loss(error, zero, beta=0.0), l1_loss(error, zero))
True
>>> torch.testing.assert_close(huber_loss(error, zero, delta=2.0), F.huber_loss(error, zero, delta=2.0))

```

## How the gradients behave

The gradient, not the loss, is what trains. Per element, with respect to the prediction:

| loss | $\partial \ell / \partial e$ | behaviour |
| --- | --- | --- |
| MSE | $2e$ | grows with the error: an outlier pulls hardest |
| L1 | $\operatorname{sign}(e)$ | always $\pm 1$: robust to outliers, but no gentler near the target |
| Huber | $e$ clipped to $[-\delta, \delta]$ | quadratic's softness near 0, L1's robustness far away |
| Smooth L1 | $e/\beta$ clipped to $[-1, 1]$ | the same, scaled by $1/\beta$ |

(With `reduction="mean"` every one is divided by $n$.) Autograd, run through our functions, agrees:

```pycon
>>> error = torch.tensor([-10.0, -2.0, -0.5, 0.5, 2.0, 10.0], requires_grad=True)
>>> def slope(loss, **options):
...     (grad,) = torch.autograd.grad(loss(error, torch.zeros(6), reduction="sum", **options), error)
...     return grad
>>> slope(mse_loss)
tensor([-20.,  -4.,  -1.,   1.,   4.,  20.])
>>> slope(l1_loss)
tensor([-1., -1., -1.,  1.,  1.,  1.])
>>> slope(huber_loss, delta=1.0)
tensor([-1.0000, -1.0000, -0.5000,  0.5000,  1.0000,  1.0000])

```

![Left: MSE, L1, Huber and Smooth L1 against the error; the parabola of MSE towers over the others. Right: their derivatives; MSE's is a steep line, L1's a step from -1 to 1, Huber's and Smooth L1's ramps that flatten out](plot_regression_losses.svg)

## Binary cross-entropy on probabilities, and the wall at 100

For a yes/no target $y \in \{0, 1\}$ (or a soft one in $[0, 1]$) and a predicted probability $p$,
the binary cross-entropy is the negative log-likelihood of a coin:

$$
\ell(p, y) = -\big(y \log p + (1 - y) \log(1 - p)\big).
$$

A confidently wrong $p$ makes a logarithm $-\infty$, so PyTorch's `F.binary_cross_entropy` clamps each
logarithm at $-100$ (the first lines below rebuild it by hand). Now the trouble: float32 has no number
between $1 - 2^{-24}$ and $1$, so $\sigma(x) = 1/(1 + e^{-x})$ rounds to *exactly* 1.0 once $e^{-x}$ is too
small to register, and a logit of 20 is already past that point. Then $1 - p = 0$, $\log 0 = -\infty$, the
clamp turns it into $-100$, and every confidently wrong logit, 20 or 100, costs 100:

```pycon
>>> def clamped_bce(p, y):
...     return -(y * p.log().clamp(min=-100) + (1 - y) * torch.log1p(-p).clamp(min=-100))
>>> p, y = torch.tensor([0.9, 0.2, 0.6, 0.0, 1.0]), torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
>>> torch.testing.assert_close(clamped_bce(p, y), F.binary_cross_entropy(p, y, reduction="none"))
>>> logits = torch.tensor([5.0, 20.0, 30.0, 100.0])
>>> p = torch.sigmoid(logits)
>>> p == 1.0
tensor([False,  True,  True,  True])
>>> F.binary_cross_entropy(p, torch.zeros(4), reduction="none").round(decimals=2)
tensor([  5.0100, 100.0000, 100.0000, 100.0000])

```

## Binary cross-entropy with logits: the stable form

The cure is never to form $p$ at all. With $\log \sigma(x) = -\operatorname{softplus}(-x)$,
$\log(1 - \sigma(x)) = \log\sigma(-x) = -\operatorname{softplus}(x)$ and
$\operatorname{softplus}(-x) = \operatorname{softplus}(x) - x$, the loss on the logit $x$ becomes

$$
\ell(x, y) = \operatorname{softplus}(x) - x y = \max(x, 0) - x y + \log\big(1 + e^{-|x|}\big),
$$

where nothing overflows: $e^{-|x|} \le 1$. A `pos_weight` $w_+$ multiplies the positive term,
$-\big(w_+\, y \log\sigma(x) + (1-y)\log\sigma(-x)\big) = (1 - y)\,x - \big(1 + (w_+ - 1)\,y\big)\log\sigma(x)$,
which is how PyTorch computes it, and how
[`binary_cross_entropy_with_logits`][torchenstein.nn.losses.binary_cross_entropy_with_logits] does, reusing
the [`stable_log_sigmoid`][torchenstein.tensors.elementwise.stable_log_sigmoid] of the
[element-wise lesson](../../tensors/elementwise/index.md). The same four logits now cost what they should,
logit 100 with target 0 costs 100 *exactly*, and the gradient is simply $\sigma(x) - y$:

```pycon
>>> from torchenstein.nn.losses import binary_cross_entropy_with_logits
>>> binary_cross_entropy_with_logits(logits, torch.zeros(4), reduction="none")
tensor([  5.0067,  20.0000,  30.0000, 100.0000])
>>> binary_cross_entropy_with_logits(torch.tensor([100.0, -100.0]), torch.tensor([0.0, 1.0]), reduction="none").tolist()
[100.0, 100.0]
>>> x = torch.tensor([-3.0, 0.0, 2.0, 100.0], requires_grad=True)
>>> y = torch.tensor([1.0, 1.0, 0.0, 0.0])
>>> (grad,) = torch.autograd.grad(binary_cross_entropy_with_logits(x, y, reduction="sum"), x)
>>> torch.allclose(grad, torch.sigmoid(x) - y)
True

```

`pos_weight` is the cure for rare positives: with 1 positive per 3 negatives, `pos_weight=3` makes the two
classes pull equally. It broadcasts over the last dimension, one weight per label of a multi-label
problem; `weight` rescales each element's loss:

```pycon
>>> x, y = torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])
>>> plain = binary_cross_entropy_with_logits(x, y, reduction="none")
>>> tripled = binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=torch.tensor(3.0))
>>> torch.allclose(tripled, plain * torch.tensor([3.0, 1.0]))
True
>>> _ = torch.manual_seed(0)
>>> x, y = torch.randn(8, 3), torch.randint(0, 2, (8, 3)).float()   # 8 examples, 3 labels each
>>> pos_weight, weight = torch.tensor([1.0, 4.0, 0.5]), torch.rand(8, 1)
>>> torch.testing.assert_close(binary_cross_entropy_with_logits(x, y, weight, pos_weight=pos_weight),
...                            F.binary_cross_entropy_with_logits(x, y, weight, pos_weight=pos_weight))

```

## Multi-class cross-entropy: log-softmax, then NLL

With $C$ classes the network gives $C$ logits $z$ per example, softmax turns them into probabilities, and
the loss is the negative log-probability of the true class $y$:

$$
\ell = -\log \operatorname{softmax}(z)_y = -z_y + \log \sum_c e^{z_c} .
$$

PyTorch splits it in two, and so do we. [`nll_loss`][torchenstein.nn.losses.nll_loss] takes
log-probabilities of shape `(N, C)` (or `(N, C, d1, ...)`, one distribution per pixel, with targets
`(N, d1, ...)`) and int64 class indices, and picks $-\log p_{i, y_i}$ with the
[`gather`][torchenstein.tensors.surgery.gather] of [tensor surgery](../../tensors/surgery/index.md).
[`cross_entropy`][torchenstein.nn.losses.cross_entropy] feeds it the stable
[`log_softmax`][torchenstein.tensors.elementwise.log_softmax], never `softmax(...).log()`:

```pycon
>>> from torchenstein.nn.losses import cross_entropy, nll_loss
>>> from torchenstein.tensors.elementwise import log_softmax
>>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]])   # (N=3, C=3)
>>> target = torch.tensor([0, 2, 1])                                               # (N,) int64
>>> nll_loss(log_softmax(logits, dim=1), target, reduction="none").round(decimals=4)
tensor([0.2413, 0.1096, 1.0986])
>>> torch.testing.assert_close(cross_entropy(logits, target), F.cross_entropy(logits, target))
>>> _ = torch.manual_seed(0)
>>> scores, labels = torch.randn(2, 4, 5, 5), torch.randint(0, 4, (2, 5, 5))    # (N, C, H, W), (N, H, W)
>>> cross_entropy(scores, labels, reduction="none").shape
torch.Size([2, 5, 5])
>>> torch.testing.assert_close(cross_entropy(scores, labels), F.cross_entropy(scores, labels))

```

The gradient with respect to the logits is the prettiest in deep learning: $\operatorname{softmax}(z) -
\operatorname{onehot}(y)$. Every wrong class is pushed down by its probability, the right one up by
what it lacks:

```pycon
>>> z = logits.clone().requires_grad_(True)
>>> (grad,) = torch.autograd.grad(cross_entropy(z, target, reduction="sum"), z)
>>> torch.allclose(grad, logits.softmax(dim=1) - F.one_hot(target, num_classes=3))
True

```

### Class weights: the mean that is not a mean

`weight[c]` rescales every example of class $c$. The catch is the mean: PyTorch divides the weighted sum
by the sum of the *target classes' weights*, $\sum_i w_{y_i} \ell_i / \sum_i w_{y_i}$, a weighted average,
not by $N$. (Targets equal to `ignore_index`, $-100$ by default, get weight 0 in both sums; the
[reduction lesson](../reduction/index.md) dissects that.)

```pycon
>>> weight = torch.tensor([1.0, 2.0, 5.0])
>>> per_example = cross_entropy(logits, target, weight, reduction="none")     # already weighted
>>> mean = cross_entropy(logits, target, weight)
>>> {"sum / weights of targets": torch.allclose(mean, per_example.sum() / weight[target].sum()),
...  "plain mean": torch.allclose(mean, per_example.mean())}
{'sum / weights of targets': True, 'plain mean': False}

```

A class weight of 0 is *not* the same as `ignore_index`. An ignored target is left out; a target whose
class weight is 0 is still computed and multiplied by 0, and $0 \cdot \infty$ is `NaN`. A model sure
that a zero-weighted class is impossible (a log-probability of $-\infty$, from a masked logit) poisons
the loss in PyTorch, and in ours, which copies it:

```pycon
>>> log_p = torch.tensor([[-float("inf"), 0.0], [0.0, -1.0]])                  # class 0 impossible in row 0
>>> {"weight 0": nll_loss(log_p, torch.tensor([0, 1]), torch.tensor([0.0, 1.0])).item(),
...  "ignored": nll_loss(log_p, torch.tensor([-100, 1])).item(),
...  "PyTorch, weight 0": F.nll_loss(log_p, torch.tensor([0, 1]), torch.tensor([0.0, 1.0])).item()}
{'weight 0': nan, 'ignored': 1.0, 'PyTorch, weight 0': nan}

```

### Label smoothing

Label smoothing with $\varepsilon$ trains towards the target distribution
$q_c = (1 - \varepsilon)\,[c = y] + \varepsilon / C$ instead of a one-hot, so the network is never asked for
infinite logits. With weights, PyTorch weights the true-class part by $w_y$ and each class of the uniform
part by its own $w_c$, which is the same as weighting $q$:

$$
\ell_i = (1 - \varepsilon)\, w_{y_i} \big(-\log p_{i,y_i}\big) + \frac{\varepsilon}{C} \sum_c w_c \big(-\log p_{i,c}\big)
= -\sum_c w_c\, q_{i,c} \log p_{i,c} ,
$$

and the mean divides *both* parts by $\sum_i w_{y_i}$, the same denominator as before (not by the
weights' total under $q$). Our version matches:

```pycon
>>> ours = cross_entropy(logits, target, weight, label_smoothing=0.1)
>>> torch.testing.assert_close(ours, F.cross_entropy(logits, target, weight, label_smoothing=0.1))
>>> per_example = cross_entropy(logits, target, weight, reduction="none", label_smoothing=0.1)
>>> torch.allclose(ours, per_example.sum() / weight[target].sum())
True

```

## KL divergence, and the temperature of distillation

When the target is a distribution $p$ (a teacher's soft labels), $\operatorname{KL}(p \,\|\, q) =
\sum_c p_c \log(p_c / q_c)$ is the cross-entropy minus the target's entropy: the same gradient for the
model's $q$, but zero for a perfect match. [`kl_div`][torchenstein.nn.losses.kl_div] takes
`F.kl_div`'s arguments, and they are a famous trap. The *first* argument, `input`, is the model's
**log**-probabilities $\log q$; the second, `target`, is $p$ itself, or $\log p$ with `log_target=True`.
Element by element the loss is $p\,(\log p - \log q)$, written `xlogy(p, p) - p * input` so that a
$p$ of exactly 0 contributes 0 (the limit of $p \log p$), or `exp(target) * (target - input)` with
`log_target=True`. That second form is the one for a teacher that hands out log-probabilities (a
`log_softmax`): no round trip through `exp` and `log`, so tiny probabilities keep their digits. (A
log-probability of exactly $-\infty$ gives `NaN` there: $0 \cdot (-\infty)$.) Pass probabilities
where log-probabilities belong and the "divergence" goes negative, which no KL can:

```pycon
>>> from torchenstein.nn.losses import kl_div
>>> p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])                 # target distributions
>>> z = torch.tensor([[2.0, 0.5, 0.0], [0.0, 0.0, 1.0]])                 # logits
>>> log_q = z.log_softmax(dim=1)
>>> kl = (p * (p.log() - log_q)).sum(dim=1).mean()                       # the textbook mean KL per sample
>>> entropy = -(p * p.log()).sum(dim=1).mean()
>>> {"batchmean": torch.allclose(kl_div(log_q, p, reduction="batchmean"), kl),
...  "log_target": torch.allclose(kl_div(log_q, p.log(), reduction="batchmean", log_target=True), kl),
...  "cross-entropy = entropy + KL": torch.allclose(F.cross_entropy(z, p), entropy + kl)}
{'batchmean': True, 'log_target': True, 'cross-entropy = entropy + KL': True}
>>> torch.testing.assert_close(kl_div(log_q, p, reduction="batchmean"), F.kl_div(log_q, p, reduction="batchmean"))
>>> kl_div(z.softmax(dim=1), p, reduction="batchmean").item() < 0      # Hammer forgot the log
True

```

The reduction is the second trap. `"sum"` adds every element's term; `"mean"` divides that sum by the
number of *elements*, $N \cdot C$, which is no KL of anything (PyTorch warns about it); `"batchmean"`
divides it by `input.shape[0]` alone. For an `(N, C)` input that is the mean KL per sample. For an
`(N, C, L)` input, one distribution per position, `"batchmean"` still divides by $N$ only: it is the KL
*summed* over the $L$ positions of a sequence, not a per-position value. For the mean per position,
divide the `"sum"` by $N \cdot L$ yourself:

```pycon
>>> _ = torch.manual_seed(0)
>>> p, log_q = torch.randn(2, 5, 7).softmax(dim=1), torch.randn(2, 5, 7).log_softmax(dim=1)   # (N, C, L)
>>> per_position = (p * (p.log() - log_q)).sum(dim=1)                    # (N, L)
>>> batchmean = kl_div(log_q, p, reduction="batchmean")
>>> {"= sum / N": torch.allclose(batchmean, per_position.sum() / 2),
...  "= mean per position": torch.allclose(batchmean, per_position.mean()),
...  "sum / (N * L) = mean per position": torch.allclose(kl_div(log_q, p, reduction="sum") / 14, per_position.mean())}
{'= sum / N': True, '= mean per position': False, 'sum / (N * L) = mean per position': True}

```

*Knowledge distillation* trains a student to match a teacher's distribution, both softened by a
temperature $T > 1$: $p = \operatorname{softmax}(t / T)$ and $q = \operatorname{softmax}(s / T)$ for
teacher and student logits $t$ and $s$. The gradient of $\operatorname{KL}(p \,\|\, q)$ with respect to
$s$ is $(q - p) / T$, and for a large $T$ the difference $q - p$ itself shrinks like $1/T$: the soft
loss's gradient fades like $1/T^2$. Hinton, Vinyals and Dean therefore multiply it by $T^2$, which
keeps its pull comparable to that of the ordinary cross-entropy on the true labels whatever $T$ is,
`loss = alpha * T**2 * kl + (1 - alpha) * cross_entropy(s, labels)`:

```pycon
>>> _ = torch.manual_seed(0)
>>> teacher, student = torch.randn(4, 10), torch.randn(4, 10, requires_grad=True)
>>> def soft_gradient_norm(T):
...     log_p, log_q = (teacher / T).log_softmax(dim=1), (student / T).log_softmax(dim=1)
...     (grad,) = torch.autograd.grad(kl_div(log_q, log_p, reduction="batchmean", log_target=True), student)
...     return grad.norm().item()
>>> for T in (1, 2, 4, 8, 16):
...     print(f"T = {T:2}: gradient {soft_gradient_norm(T):.2e}, times T**2 {T**2 * soft_gradient_norm(T):.3f}")
T =  1: gradient 2.07e-01, times T**2 0.207
T =  2: gradient 5.22e-02, times T**2 0.209
T =  4: gradient 1.33e-02, times T**2 0.212
T =  8: gradient 3.35e-03, times T**2 0.215
T = 16: gradient 8.44e-04, times T**2 0.216

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the double softmax"
    Dr. Hammer's model ends in `nn.Softmax`, and he trains it with `F.cross_entropy`, which applies
    log-softmax *again*. Probabilities in $[0, 1]$ used as logits are almost uniform: the loss can no
    longer go to 0 (with 1000 classes it is stuck above 5.9 for a perfect model), and the gradient of a
    confidently wrong example all but vanishes. Give `cross_entropy` the logits.

    ```pycon
    >>> logits = torch.tensor([[8.0, 0.0, 0.0, 0.0], [0.0, 8.0, 0.0, 0.0]], requires_grad=True)  # right, wrong
    >>> target = torch.tensor([0, 0])
    >>> right = F.cross_entropy(logits, target, reduction="none")
    >>> hammer = F.cross_entropy(logits.softmax(dim=1), target, reduction="none")
    >>> {"logits": [round(v, 3) for v in right.tolist()], "softmax first": [round(v, 3) for v in hammer.tolist()]}
    {'logits': [0.001, 8.001], 'softmax first': [0.744, 1.743]}
    >>> round(torch.autograd.grad(right[1], logits)[0].norm().item(), 2)
    1.41
    >>> torch.autograd.grad(hammer[1], logits)[0].norm().item() < 0.01
    True
    >>> perfect = torch.full((1, 1000), -1e4)
    >>> perfect[0, 0] = 1e4
    >>> {"logits": F.cross_entropy(perfect, torch.tensor([0])).item(),
    ...  "softmax first": round(F.cross_entropy(perfect.softmax(dim=1), torch.tensor([0])).item(), 3)}
    {'logits': 0.0, 'softmax first': 5.909}

    ```

!!! hammer "Dr. Hammer's trap: sigmoid, then binary cross-entropy"
    `F.binary_cross_entropy(torch.sigmoid(x), y)` looks like the logits version in two steps. Once the
    sigmoid saturates to 1.0, the loss is the clamp's 100 instead of $x$, and its gradient is exactly 0:
    $\partial \sigma / \partial x = \sigma (1 - \sigma) = 0$. The most confidently wrong predictions learn
    nothing. His hand-written formula is worse: $\log 0 = -\infty$, and $0 \cdot (-\infty)$ is `NaN`.

    ```pycon
    >>> x = torch.tensor([20.0], requires_grad=True)     # "surely a 1!", says the model; the truth is 0
    >>> hammer = F.binary_cross_entropy(torch.sigmoid(x), torch.zeros(1))
    >>> {"loss": hammer.item(), "gradient": torch.autograd.grad(hammer, x)[0].item()}
    {'loss': 100.0, 'gradient': 0.0}
    >>> right = binary_cross_entropy_with_logits(x, torch.zeros(1))
    >>> {"loss": right.item(), "gradient": torch.autograd.grad(right, x)[0].item()}
    {'loss': 20.0, 'gradient': 1.0}
    >>> p, y = torch.sigmoid(torch.tensor([30.0, 30.0])), torch.tensor([0.0, 1.0])
    >>> -(y * p.log() + (1 - y) * (1 - p).log())
    tensor([inf, nan])

    ```

!!! hammer "Dr. Hammer's trap: MSE on probabilities"
    Dr. Hammer regresses sigmoid outputs onto 0/1 labels with MSE. The gradient with respect to the logit
    is $2(\sigma - y)\,\sigma(1 - \sigma)$: the sigmoid's slope multiplies it, so once a prediction is
    badly wrong, the *more* wrong it is, the *less* it learns. Cross-entropy's $\sigma - y$ has no such factor.

    ```pycon
    >>> x = torch.tensor([-8.0, -2.0, 0.0], requires_grad=True)   # logits; every true label is 1
    >>> y = torch.ones(3)
    >>> (mse_grad,) = torch.autograd.grad(mse_loss(torch.sigmoid(x), y, reduction="sum"), x)
    >>> (bce_grad,) = torch.autograd.grad(binary_cross_entropy_with_logits(x, y, reduction="sum"), x)
    >>> {"MSE": mse_grad.abs().round(decimals=4), "BCE": bce_grad.abs().round(decimals=4)}
    {'MSE': tensor([0.0007, 0.1850, 0.2500]), 'BCE': tensor([0.9997, 0.8808, 0.5000])}

    ```

!!! hammer "Dr. Hammer's trap: a target that broadcasts"
    His regression model outputs shape `(N, 1)`; the targets are `(N,)`. `F.l1_loss` broadcasts the pair
    to `(N, N)`, compares every prediction with every target, warns, and returns a wrong number, here for
    perfect predictions. Squeeze the output; our losses refuse mismatched shapes outright.

    ```pycon
    >>> import warnings
    >>> prediction = torch.tensor([[1.0], [2.0], [3.0], [4.0]])    # (N, 1)
    >>> target = torch.tensor([1.0, 2.0, 3.0, 4.0])                 # (N,)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     hammer = F.l1_loss(prediction, target)
    >>> {"loss of perfect predictions": hammer.item(), "warned": "different to the input size" in str(caught[0].message)}
    {'loss of perfect predictions': 1.25, 'warned': True}
    >>> F.l1_loss(prediction.squeeze(1), target).item()
    0.0
    >>> l1_loss(prediction, target)
    Traceback (most recent call last):
    ...
    ValueError: target must have the shape of input (4, 1), got (4,): PyTorch would broadcast them (and warn)

    ```

## Challenges

1. **Sigmoid focal loss.** Write `sigmoid_focal_loss(input, target, alpha=0.25, gamma=2.0,
   reduction="none")`, the loss of RetinaNet (with torchvision's argument order): for logits $x$, binary
   targets $y$, $p = \sigma(x)$, $p_t = p\,y + (1 - p)(1 - y)$ and $\alpha_t = \alpha y + (1 - \alpha)(1 - y)$,
   $\ell = -\alpha_t (1 - p_t)^\gamma \log p_t$, with no $\alpha$ weighting at all when `alpha` is negative.
   Easy examples ($p_t$ near 1) are down-weighted. It must stay finite and exact for logits of $\pm 100$:
   compute $-\log p_t$ as a binary cross-entropy with logits.
2. **Soft-target cross-entropy.** Write `soft_target_cross_entropy(input, target, reduction="mean")` for
   logits `(N, C)` and target *probabilities* `(N, C)`: $\ell_i = -\sum_c t_{i,c} \log \operatorname{softmax}(x_i)_c$,
   equal to `F.cross_entropy(input, target)` with probability targets (whose mean divides by $N$). Logits
   of $\pm 1000$ must not give `NaN`.

Check an attempt with `check_sigmoid_focal_loss(my_function)` and
`check_soft_target_cross_entropy(my_function)`, or put both in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.nn.losses import (check_sigmoid_focal_loss, check_soft_target_cross_entropy,
...                                     sigmoid_focal_loss, soft_target_cross_entropy)
>>> check_sigmoid_focal_loss(sigmoid_focal_loss)
>>> check_soft_target_cross_entropy(soft_target_cross_entropy)

```
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.elementwise import log_softmax, stable_log_sigmoid
from torchenstein.tensors.surgery import gather

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The three ways every loss here can reduce its per-element values.
_REDUCTIONS = ("mean", "sum", "none")


def _wide(dtype: torch.dtype) -> torch.dtype:
    # float16 and bfloat16 losses are computed in float32 and rounded once, at the very end: 8 or 11
    # bits of mantissa can hold neither a running total nor, near their largest value, a difference.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _widen(*tensors: torch.Tensor | None) -> tuple[torch.dtype, list[torch.Tensor | None]]:
    # The result's dtype, promoted as PyTorch promotes it, and the tensors in the dtype to compute in.
    # For float32 and float64 `.to` is a no-op that returns the tensor itself.
    out = functools.reduce(torch.promote_types, [t.dtype for t in tensors if t is not None])
    return out, [None if t is None else t.to(_wide(out)) for t in tensors]


def _reduce(loss: torch.Tensor, reduction: str, dtype: torch.dtype, weights: torch.Tensor | None = None) -> torch.Tensor:
    # `loss` is in the computing dtype; the result is rounded to `dtype` once, after the reduction.
    if reduction == "none":
        return loss.to(dtype)
    total = loss.sum()
    if reduction == "sum":
        return total.to(dtype)
    # A weighted mean divides by the total weight, a plain one by the count. The mean of nothing is
    # 0/0 = NaN, in PyTorch's losses as in ours.
    count = loss.numel() if weights is None else weights.sum()
    return (total / count).to(dtype)


def mse_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""The squared error $(x - y)^2$, reduced, like `torch.nn.functional.mse_loss`.

    Args:
        input: the predictions, a floating-point tensor.
        target: the targets, a floating-point tensor of the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar for ``"mean"`` and ``"sum"``, a tensor of ``input``'s shape for ``"none"``.

    Raises:
        TypeError: if ``input`` or ``target`` is not a floating-point tensor.
        ValueError: if the shapes differ or ``reduction`` is unknown.

    Examples:
        >>> mse_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
        tensor(5.)
        >>> mse_loss(torch.zeros(2), torch.zeros(2), reduction="average")
        Traceback (most recent call last):
        ...
        ValueError: reduction must be one of ('mean', 'sum', 'none'), got 'average'
    """
    _check_pair(input, target, reduction)
    dtype, (x, y) = _widen(input, target)
    return _reduce((x - y).square(), reduction, dtype)


def l1_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    r"""The absolute error $|x - y|$, reduced, like `torch.nn.functional.l1_loss`.

    It takes the arguments of `mse_loss`, returns the same shapes and raises the same errors. Its
    gradient at an error of exactly 0 is 0, autograd's choice for the kink of ``abs``, and PyTorch's.

    Examples:
        >>> l1_loss(torch.tensor([1.0, -3.0]), torch.tensor([0.0, 0.0]), reduction="none")
        tensor([1., 3.])
    """
    _check_pair(input, target, reduction)
    dtype, (x, y) = _widen(input, target)
    return _reduce((x - y).abs(), reduction, dtype)


def huber_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", delta: float = 1.0) -> torch.Tensor:
    r"""Huber's loss: $\frac12 e^2$ for $|e| < \delta$, else $\delta(|e| - \frac12\delta)$, like `F.huber_loss`.

    It takes the arguments of `mse_loss` and returns the same shapes, plus:

    Args:
        delta: where the quadratic part hands over to the linear one; positive.

    Raises:
        ValueError: as `mse_loss` does, and if ``delta`` is not a positive finite number.

    Examples:
        >>> huber_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
        tensor([0.1250, 2.5000])
    """
    _check_pair(input, target, reduction)
    delta = _check_positive("delta", delta, allow_zero=False)
    dtype, (x, y) = _widen(input, target)
    z = (x - y).abs()
    # Both branches are finite everywhere, so torch.where's unchosen branch never poisons a gradient.
    return _reduce(torch.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta)), reduction, dtype)


def smooth_l1_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean", beta: float = 1.0) -> torch.Tensor:
    r"""Smooth L1: $\frac12 e^2 / \beta$ for $|e| < \beta$, else $|e| - \frac12\beta$, like `F.smooth_l1_loss`.

    It takes the arguments of `mse_loss` and returns the same shapes, plus:

    Args:
        beta: where the quadratic part hands over to the linear one; ``0`` gives plain L1.

    Raises:
        ValueError: as `mse_loss` does, and if ``beta`` is not a non-negative finite number.

    Examples:
        >>> smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none")
        tensor([0.1250, 2.5000])
        >>> smooth_l1_loss(torch.tensor([0.5]), torch.zeros(1), beta=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: beta must be a non-negative finite number, got -1.0
    """
    _check_pair(input, target, reduction)
    beta = _check_positive("beta", beta, allow_zero=True)
    if beta == 0.0:
        # The quadratic branch would divide by zero, and its NaN gradient would leak through torch.where
        # even where the branch is not chosen. PyTorch takes the same exit to l1_loss.
        return l1_loss(input, target, reduction=reduction)
    dtype, (x, y) = _widen(input, target)
    z = (x - y).abs()
    return _reduce(torch.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta), reduction, dtype)


def plot_regression_losses(*, points: int = 401, reach: float = 3.0, delta: float = 1.0, beta: float = 2.0) -> Figure:
    """Draw MSE, L1, Huber and Smooth L1 against the error, and their derivatives computed by autograd.

    Args:
        points: how many errors to evaluate.
        reach: the errors run from ``-reach`` to ``reach``.
        delta: Huber's switch point.
        beta: Smooth L1's switch point.

    Returns:
        A matplotlib figure with two axes.

    Raises:
        ValueError: if ``points`` is below 2 or ``reach`` is not positive.

    Examples:
        >>> fig = plot_regression_losses(points=11)
        >>> [len(ax.lines) for ax in fig.axes]   # two axes, four curves on each
        [4, 4]
    """
    _check_plot_range(points, reach)
    fig, (ax_loss, ax_grad) = new_figure(1, 2, width=10.5, height=4.0)
    zero = torch.zeros(points, dtype=torch.float64)
    losses = [
        ("MSE", mse_loss, {}),
        ("L1", l1_loss, {}),
        (f"Huber (δ = {delta:g})", huber_loss, {"delta": delta}),
        (f"Smooth L1 (β = {beta:g})", smooth_l1_loss, {"beta": beta}),
    ]
    for colour, (name, loss, options) in zip(PALETTE[: len(losses)], losses, strict=True):
        # With reduction="sum" each element's loss depends on its own error only, so the gradient of
        # the sum is, element by element, the derivative of the loss at that error.
        error = torch.linspace(-reach, reach, points, dtype=torch.float64, requires_grad=True)
        values = loss(error, zero, reduction="none", **options)
        (slope,) = torch.autograd.grad(values.sum(), error)
        ax_loss.plot(error.detach(), values.detach(), color=colour, label=name)
        ax_grad.plot(error.detach(), slope, color=colour, label=name)
    ax_loss.set(xlabel="error  x - y", ylabel="loss", title="Regression losses", ylim=(-0.2, reach + 1))
    ax_grad.set(xlabel="error  x - y", ylabel="d loss / d x", title="Their gradients", ylim=(-2.2, 2.2))
    ax_loss.legend(loc="upper center", fontsize="small")
    return fig


def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
                                     reduction: str = "mean", pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Binary cross-entropy on logits, stable for any finite logit, like `F.binary_cross_entropy_with_logits`.

    Computes $(1 - y)\,x - \big(1 + (w_+ - 1)\,y\big)\log\sigma(x)$, which without ``pos_weight`` is
    $\max(x, 0) - x y + \log(1 + e^{-|x|})$; its gradient is $\sigma(x) - y$ then.

    Args:
        input: the logits, a floating-point tensor.
        target: the targets, in $[0, 1]$, of ``input``'s shape.
        weight: an optional floating-point tensor that broadcasts to ``input``'s shape and rescales each
            element's loss.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        pos_weight: an optional floating-point tensor that broadcasts to ``input``'s shape (usually one
            weight per class, shape ``(C,)``) and multiplies the loss of the positive targets.

    Returns:
        A scalar for ``"mean"`` and ``"sum"``, a tensor of ``input``'s shape for ``"none"``.

    Raises:
        TypeError: if a tensor argument is not a floating-point tensor.
        ValueError: if a shape does not fit or ``reduction`` is unknown.

    Examples:
        >>> binary_cross_entropy_with_logits(torch.tensor([0.0, 1000.0]), torch.tensor([1.0, 0.0]), reduction="none")
        tensor([6.9315e-01, 1.0000e+03])
    """
    _check_bce_weights(input, target, reduction, weight, pos_weight)
    dtype, (x, y, weight, pos_weight) = _widen(input, target, weight, pos_weight)
    # log sigma(x) from the element-wise lesson: it exponentiates only non-positive numbers.
    log_sigma = stable_log_sigmoid(x)
    if pos_weight is not None:
        log_sigma = log_sigma * (1 + (pos_weight - 1) * y)
    # (1 - y) x - log sigma(x) is the same loss as -y log sigma(x) - (1 - y) log sigma(-x), because
    # log sigma(-x) = log sigma(x) - x: one log-sigmoid instead of two.
    loss = (1 - y) * x - log_sigma
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, dtype)


def _target_weights(target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int,
                    dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Each position's weight w[y] (1 without class weights), and 0 where the target is ignore_index.
    # Ignored targets are replaced by class 0 so that they index safely; their weight hides them.
    keep = target != ignore_index
    safe = target.masked_fill(~keep, 0)
    w = weight[safe] if weight is not None else torch.ones(target.shape, dtype=dtype, device=target.device)
    return safe, torch.where(keep, w, 0.0), keep


def nll_loss(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
             ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    r"""The negative log-likelihood of the target classes, $-w_{y_i} \log p_{i, y_i}$, like `F.nll_loss`.

    The mean is weighted: $\sum_i w_{y_i} \ell_i / \sum_i w_{y_i}$, over the targets that are not
    ``ignore_index`` (``NaN`` when there are none, as in PyTorch).

    Args:
        input: log-probabilities of shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
        target: int64 class indices of shape ``()``, ``(N,)`` or ``(N, d1, ...)``, in ``[0, C)`` or
            equal to ``ignore_index``.
        weight: an optional tensor of shape ``(C,)``, of ``input``'s dtype: one weight per class.
        ignore_index: a target value that contributes nothing, neither to the loss nor to the mean.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or for ``"none"`` a tensor of ``target``'s shape, already multiplied by the weights.

    Raises:
        TypeError: if ``input`` is not a float tensor, ``target`` not int64, or ``ignore_index`` not an int.
        ValueError: if a shape does not fit, a target is out of range, or ``reduction`` is unknown.

    Examples:
        >>> nll_loss(torch.tensor([[-0.5, -1.0], [-2.0, -0.1]]), torch.tensor([1, 0]))
        tensor(1.5000)
    """
    _check_classification(input, target, weight, ignore_index)
    _check_reduction(reduction)
    dtype, (log_p, weight) = _widen(input, weight)
    # A single distribution (C,) with a 0-d target is a batch of one.
    log_p = log_p.unsqueeze(0) if input.dim() == 1 else log_p  # (N, C, d1, ...)
    batch_target = target.unsqueeze(0) if input.dim() == 1 else target  # (N, d1, ...)
    safe, w, keep = _target_weights(batch_target, weight, ignore_index, log_p.dtype)
    picked = gather(log_p, 1, safe.unsqueeze(1)).squeeze(1)  # (N, d1, ...): log p of each target
    # torch.where on `keep`, not w * picked alone: an ignored position may pick a -inf, and 0 * -inf is
    # NaN. A counted target whose class weight is 0 keeps its product, NaN included, as in PyTorch.
    losses = torch.where(keep, -w * picked, 0.0)
    if reduction == "none":
        return (losses.squeeze(0) if input.dim() == 1 else losses).to(dtype)
    return _reduce(losses, reduction, dtype, weights=w)


def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
                  ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    r"""Cross-entropy on logits with class-index targets: `log_softmax`, then `nll_loss`, like `F.cross_entropy`.

    With ``label_smoothing`` $\varepsilon$ each position's loss is
    $(1 - \varepsilon)\, w_y(-\log p_y) + \frac{\varepsilon}{C} \sum_c w_c(-\log p_c)$, and ``"mean"``
    divides both parts by $\sum_i w_{y_i}$ over the targets that are not ``ignore_index``.

    The other arguments, the result and the errors are those of `nll_loss`.

    Args:
        input: logits of shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
        label_smoothing: $\varepsilon \in [0, 1]$, the share of the target spread evenly over all classes.

    Raises:
        ValueError: also if ``label_smoothing`` leaves $[0, 1]$.

    Examples:
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([1, 3]))
        tensor(1.3863)
        >>> cross_entropy(torch.zeros(2, 4), torch.tensor([1, 4]))
        Traceback (most recent call last):
        ...
        ValueError: target must hold class indices in [0, 4) or ignore_index=-100, got 4
    """
    n_classes = _check_classification(input, target, weight, ignore_index)
    _check_reduction(reduction)
    _check_label_smoothing(label_smoothing)
    class_dim = 0 if input.dim() == 1 else 1
    dtype, (z, weight) = _widen(input, weight)
    # (N, C, d1, ...), stable for any logits. PyTorch's cross_entropy is nll_loss(log_softmax(input)),
    # and its log_softmax returns the input's dtype: we round there too, so that in float16 a
    # log-probability beyond the range of float16 is -inf in both.
    log_p = log_softmax(z, dim=class_dim).to(dtype).to(z.dtype)
    nll = nll_loss(log_p, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return nll.to(dtype)
    # The uniform part: -sum_c w_c log p_c at every position, with w viewed as (1, C, 1, ...) so that
    # it broadcasts along the class dimension.
    w_c = torch.ones(n_classes, dtype=log_p.dtype, device=input.device) if weight is None else weight
    w_shape = [1] * input.dim()
    w_shape[class_dim] = n_classes
    smooth = -(log_p * w_c.view(w_shape)).sum(dim=class_dim)  # target's shape
    _, w, _ = _target_weights(target, weight, ignore_index, log_p.dtype)
    # The mean divides by the same total as the NLL part: the target classes' weights, not those under q.
    smooth = _reduce(torch.where(target != ignore_index, smooth, 0.0), reduction, log_p.dtype, weights=w)
    return ((1 - label_smoothing) * nll + (label_smoothing / n_classes) * smooth).to(dtype)


def kl_div(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
           log_target: bool = False) -> torch.Tensor:
    r"""The KL divergence $\sum p\,(\log p - \log q)$ from log-probabilities $\log q$, like `F.kl_div`.

    Args:
        input: the model's log-probabilities $\log q$, a floating-point tensor.
        target: the target distribution $p$ (or $\log p$ with ``log_target``), of ``input``'s shape.
        reduction: ``"mean"`` (divides by the number of elements, not a KL per sample), ``"batchmean"``
            (divides the sum by ``input.shape[0]``: the mean KL per sample for an ``(N, C)`` input, the KL
            summed over the other dims for a larger one), ``"sum"`` or ``"none"``.
        log_target: whether ``target`` holds $\log p$ rather than $p$.

    Returns:
        A scalar, or for ``"none"`` the element-wise terms in ``input``'s shape. Where it differs from
        PyTorch: ``F.kl_div`` broadcasts a ``target`` of another shape and warns about ``"mean"``; ours
        refuses the first and stays silent about the second.

    Raises:
        TypeError: if ``input``, ``target`` or ``log_target`` has the wrong type.
        ValueError: if the shapes differ or ``reduction`` is unknown.

    Examples:
        >>> kl_div(torch.tensor([[0.5, 0.5]]).log(), torch.tensor([[1.0, 0.0]]), reduction="batchmean")
        tensor(0.6931)
    """
    _check_kl(input, target, reduction, log_target)
    dtype, (log_q, t) = _widen(input, target)
    if log_target:
        pointwise = t.exp() * (t - log_q)
    else:
        # xlogy(p, p) is p log p with 0 log 0 = 0, its limit, where p * p.log() would be 0 * -inf = NaN.
        pointwise = torch.xlogy(t, t) - t * log_q
    if reduction != "batchmean":
        return _reduce(pointwise, reduction, dtype)
    # The sum over every element, divided by the size of dim 0 alone (a 0-d input has no batch).
    total = pointwise.sum()
    return (total / input.shape[0] if input.dim() else total).to(dtype)


def sigmoid_focal_loss(input: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> torch.Tensor:
    r"""Challenge solution: RetinaNet's focal loss $-\alpha_t (1 - p_t)^\gamma \log p_t$ on logits.

    Args:
        input: logits, a floating-point tensor.
        target: binary (or soft) targets of ``input``'s shape.
        alpha: the weight of the positive class, in $[0, 1]$; a negative value turns the weighting off.
        gamma: the focusing exponent, $\ge 0$; ``0`` gives the (alpha-weighted) binary cross-entropy.
        reduction: ``"none"`` (the default, as in torchvision), ``"mean"`` or ``"sum"``.

    Returns:
        A tensor of ``input``'s shape for ``"none"``, a scalar otherwise.

    Raises:
        TypeError: if ``input`` or ``target`` is not a floating-point tensor.
        ValueError: if the shapes differ, ``reduction`` is unknown, ``alpha`` exceeds 1 or ``gamma`` is negative.

    Examples:
        >>> sigmoid_focal_loss(torch.tensor([0.0, 100.0]), torch.tensor([1.0, 0.0]), alpha=-1.0, gamma=0.0)
        tensor([  0.6931, 100.0000])
    """
    _check_pair(input, target, reduction)
    gamma = _check_focal(alpha, gamma)
    # -log p_t is exactly the binary cross-entropy with logits, stable for any logit. p_t itself may
    # round to 0 or 1 (sigma(100) is 1.0 in float32): harmless in (1 - p_t)^gamma, fatal only in a log.
    dtype, (x, y) = _widen(input, target)
    ce = binary_cross_entropy_with_logits(x, y, reduction="none")
    p = torch.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return _reduce(loss, reduction, dtype)


def _direct_focal_loss(x: torch.Tensor, y: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    # The formula exactly as printed, in float64; trustworthy only for moderate logits.
    p = torch.sigmoid(x.double())
    p_t = p * y + (1 - p) * (1 - y)
    alpha_t = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else torch.ones_like(p)
    return -alpha_t * (1 - p_t) ** gamma * p_t.log()


def _assert_close(what: str, got: object, expected: torch.Tensor, rtol: float, atol: float) -> None:
    assert isinstance(got, torch.Tensor), f"{what}: return a tensor, got {type(got).__name__}"
    assert got.shape == expected.shape, f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    assert got.dtype == expected.dtype, f"{what}: expected dtype {expected.dtype}, got {got.dtype}"
    ok = torch.isclose(got, expected, rtol=rtol, atol=atol)
    if not ok.all():
        i = int((~ok).flatten().nonzero()[0])
        raise AssertionError(f"{what}: element {i} (flattened) should be {expected.flatten()[i].item()!r}, "
                             f"got {got.flatten()[i].item()!r}")


def check_sigmoid_focal_loss(candidate: Callable[..., torch.Tensor]) -> None:
    """Check an attempt at `sigmoid_focal_loss`: values, reductions, extreme logits and gradients.

    Raises:
        AssertionError: if the candidate disagrees; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    for alpha, gamma in ((0.25, 2.0), (0.5, 0.0), (0.9, 1.5), (-1.0, 2.0), (0.25, 5.0)):
        x = 4 * torch.randn(6, 5, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 2, (6, 5), generator=generator).double()
        case = f"alpha={alpha}, gamma={gamma}"
        expected = _direct_focal_loss(x, y, alpha, gamma)
        _assert_close(case, candidate(x, y, alpha=alpha, gamma=gamma), expected, 1e-7, 1e-12)
        for reduction, want in (("mean", expected.mean()), ("sum", expected.sum())):
            got = candidate(x, y, alpha=alpha, gamma=gamma, reduction=reduction)
            _assert_close(f"{case}, reduction={reduction!r}", got, want, 1e-7, 1e-12)
        # Gradients, through the same direct formula, in float64.
        x.requires_grad_(True)
        (got,) = torch.autograd.grad(candidate(x, y, alpha=alpha, gamma=gamma).sum(), x)
        (want,) = torch.autograd.grad(_direct_focal_loss(x, y, alpha, gamma).sum(), x)
        _assert_close(f"{case}: the gradient", got, want, 1e-6, 1e-10)
    # Float32, and confidently wrong logits: log p_t must not become -inf. For |x| = 100 the loss is
    # alpha_t * 100 (p_t = e^-100, so (1 - p_t)^gamma = 1); a confidently right logit costs 0.
    x = torch.tensor([100.0, -100.0, 100.0, -100.0, 30.0])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0])
    expected = torch.tensor([75.0, 25.0, 0.0, 0.0, 22.5])
    _assert_close("float32 logits of +-100 and 30 (alpha=0.25, gamma=2)", candidate(x, y, alpha=0.25, gamma=2.0),
                  expected, 1e-5, 1e-6)


def soft_target_cross_entropy(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Challenge solution: cross-entropy against target probabilities, $-\sum_c t_c \log \operatorname{softmax}(x)_c$.

    Args:
        input: logits of shape ``(N, C)``.
        target: probabilities of shape ``(N, C)``, each row summing to one.
        reduction: ``"mean"`` (divides by $N$), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or for ``"none"`` a tensor of shape ``(N,)``; `F.cross_entropy` with probability targets.

    Raises:
        TypeError: if ``input`` or ``target`` is not a floating-point tensor.
        ValueError: if the shapes differ or are not 2-D, or ``reduction`` is unknown.

    Examples:
        >>> soft_target_cross_entropy(torch.zeros(1, 4), torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
        tensor(1.3863)
    """
    _check_pair(input, target, reduction)
    _check_2d(input)
    dtype, (x, t) = _widen(input, target)
    # log_softmax, never softmax(...).log(): an underflowed probability is log 0 = -inf, and a
    # target of 0 times -inf is NaN.
    return _reduce(-(t * log_softmax(x, dim=1)).sum(dim=1), reduction, dtype)


def check_soft_target_cross_entropy(candidate: Callable[..., torch.Tensor]) -> None:
    """Check an attempt at `soft_target_cross_entropy` against `F.cross_entropy` with probability targets.

    Raises:
        AssertionError: if the candidate disagrees; the message names the case.
    """
    generator = torch.Generator().manual_seed(0)
    for dtype, rtol, atol in ((torch.float32, 1e-5, 1e-5), (torch.float64, 1e-7, 1e-10)):
        for n, c in ((5, 3), (1, 7), (16, 10)):
            x = 3 * torch.randn(n, c, generator=generator, dtype=dtype)
            t = torch.rand(n, c, generator=generator, dtype=dtype).softmax(dim=1)
            for reduction in _REDUCTIONS:
                _assert_close(f"input ({n}, {c}) {dtype}, reduction={reduction!r}", candidate(x, t, reduction=reduction),
                              F.cross_entropy(x, t, reduction=reduction), rtol, atol)
            _assert_close(f"input ({n}, {c}) {dtype}, default reduction", candidate(x, t),
                          F.cross_entropy(x, t), rtol, atol)
    # Extreme logits with exact zeros in the target: a naive log(softmax) gives 0 * -inf = NaN.
    x = torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]])
    t = torch.tensor([[0.0, 1.0, 0.0], [0.25, 0.75, 0.0]])
    _assert_close("logits of +-1000", candidate(x, t, reduction="none"), F.cross_entropy(x, t, reduction="none"),
                  1e-5, 1e-5)
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    t = torch.rand(4, 5, generator=generator, dtype=torch.float64).softmax(dim=1)
    (got,) = torch.autograd.grad(candidate(x, t), x)
    (want,) = torch.autograd.grad(F.cross_entropy(x, t), x)
    _assert_close("the gradient", got, want, 1e-7, 1e-10)


# Argument checks, kept at the foot so that every potion above reads as its formula first.


def _check_float(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_reduction(reduction: object) -> str:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _check_pair(input: object, target: object, reduction: object) -> None:
    # The contract of every element-wise loss: two float tensors of one shape. PyTorch broadcasts
    # mismatched shapes with a warning; we refuse, because that broadcast is nearly always a bug.
    _check_float("input", input)
    _check_float("target", target)
    if target.shape != input.shape:
        raise ValueError(f"target must have the shape of input {tuple(input.shape)}, got {tuple(target.shape)}: "
                         "PyTorch would broadcast them (and warn)")
    _check_reduction(reduction)


def _check_broadcasts(name: str, value: object, shape: torch.Size) -> torch.Tensor:
    _check_float(name, value)
    if value.dim() > len(shape) or any(v not in (1, n) for v, n in zip(value.shape[::-1], shape[::-1], strict=False)):
        raise ValueError(f"{name} must broadcast to the input's shape {tuple(shape)}, got {tuple(value.shape)}")
    return value


def _check_positive(name: str, value: object, *, allow_zero: bool) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} finite number, got {value!r}")
    return float(value)


def _check_classification(input: object, target: object, weight: object, ignore_index: object) -> int:
    # The shape contract of nll_loss and cross_entropy; returns the number of classes C.
    _check_float("input", input)
    if input.dim() == 0:
        raise ValueError("input must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-dimensional tensor")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.int64:
        got = target.dtype if isinstance(target, torch.Tensor) else type(target).__name__
        raise TypeError(f"target must be an int64 tensor of class indices, got {got} "
                        "(for probability targets see soft_target_cross_entropy)")
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target must have shape {expected} for input of shape {tuple(input.shape)}, "
                         f"got {tuple(target.shape)}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    n_classes = input.shape[0 if input.dim() == 1 else 1]
    kept = target[target != ignore_index]
    if kept.numel() and (kept.min() < 0 or kept.max() >= n_classes):
        bad = kept[(kept < 0) | (kept >= n_classes)][0].item()
        raise ValueError(f"target must hold class indices in [0, {n_classes}) or ignore_index={ignore_index}, got {bad}")
    if weight is not None:
        _check_float("weight", weight)
        if weight.shape != (n_classes,) or weight.dtype != input.dtype:
            raise ValueError(f"weight must be a {input.dtype} tensor of shape ({n_classes},), one weight per class, "
                             f"got {weight.dtype} of shape {tuple(weight.shape)}")
    return n_classes


def _check_label_smoothing(label_smoothing: object) -> None:
    ok = isinstance(label_smoothing, Real) and not isinstance(label_smoothing, bool) and 0 <= label_smoothing <= 1
    if not ok:
        raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")


def _check_kl(input: object, target: object, reduction: object, log_target: object) -> None:
    _check_pair(input, target, "none")
    if not isinstance(reduction, str) or reduction not in (*_REDUCTIONS, "batchmean"):
        raise ValueError(f"reduction must be one of {(*_REDUCTIONS, 'batchmean')}, got {reduction!r}")
    if not isinstance(log_target, bool):
        raise TypeError(f"log_target must be a bool, got {log_target!r}")


def _check_focal(alpha: object, gamma: object) -> float:
    if isinstance(alpha, bool) or not (isinstance(alpha, Real) and alpha <= 1):
        raise ValueError(f"alpha must be a number in [0, 1], or negative for no weighting, got {alpha!r}")
    return _check_positive("gamma", gamma, allow_zero=True)


def _check_2d(input: torch.Tensor) -> None:
    if input.dim() != 2:
        raise ValueError(f"input must have shape (N, C), got {tuple(input.shape)}")


def _check_plot_range(points: object, reach: object) -> None:
    if points < 2 or not reach > 0:
        raise ValueError(f"points must be at least 2 and reach positive, got points={points}, reach={reach}")


def _check_bce_weights(input: object, target: object, reduction: object, weight: object, pos_weight: object) -> None:
    _check_pair(input, target, reduction)
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            _check_broadcasts(name, value, input.shape)
