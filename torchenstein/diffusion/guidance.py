r"""
# Guidance: Turning the Knob Past One

!!! torchenstein "The Professor speaks"
    A denoiser that draws *any* digit is a parlour trick; my investors want a *seven*, on demand, and a
    sharp one. Tonight we teach the network to listen to a label, and then we commit the most profitable
    act of mathematical vandalism in generative modelling: we take the conditional prediction, subtract
    the unconditional one, and multiply the difference by *seven and a half*. It works. I will show you
    exactly why, with a denoiser so perfect it needs no training, and exactly what it costs.

**You will learn to**

- write the exact class-conditional denoiser $\mathbb E[\varepsilon \mid x_t, y]$ of a labelled mixture of
  Gaussians, and the unconditional one beside it;
- compute classifier-free guidance, $\tilde\varepsilon = \varepsilon_u + w\,(\varepsilon_c - \varepsilon_u)$,
  with both branches in one forward pass over a doubled batch, equal to diffusers' formula;
- prove numerically that guidance follows the score of $p(x)\,p(y \mid x)^w$, an implicit classifier
  sharpened by $w$;
- measure what $w$ buys (fidelity) and what it costs (diversity, and samples pushed off the data);
- train a tiny class-conditional denoiser with label dropout and guide it;
- dodge four of Dr. Hammer's traps.

## Labels, and a denoiser that knows them

A **class-conditional** denoiser takes a label $y$ as a third input, $\varepsilon_\theta(x_t, t, y)$, and is
trained on labelled data to predict the noise in $x_t$ knowing which class $x_0$ came from. Its best
possible answer is the conditional expectation $\mathbb E[\varepsilon \mid x_t, y]$, just as
[the exact denoiser](../sampling/index.md) that DDIM was tested against is $\mathbb E[\varepsilon \mid x_t]$.
For a mixture of Gaussians whose components carry labels, both are in closed form: class $y$ is the
mixture of its own components (their weights renormalised), so the conditional denoiser is the sampling
lesson's formula with the responsibilities of the other classes' components set to zero.
[`LabelledMixture`][torchenstein.diffusion.guidance.LabelledMixture] extends the sampling lesson's
[`GaussianMixture`][torchenstein.diffusion.sampling.GaussianMixture] (the one DDIM was tested against)
with a class per component, and its
`conditional_denoiser(alphas_cumprod)` is `model(x_t, t, class_labels)`, the signature of
[`MLPDenoiser`][torchenstein.diffusion.denoiser.MLPDenoiser]. As there, the label `null_class` $= C$ (one
past the last class) means "no label", and then the model is unconditional.

Our data: three classes in the plane, each blob of standard deviation 0.2: class 0 on the left, class 1
on the right, and class 2, a group of two blobs, above and below. The blobs overlap, so some points are
ambiguous: the **Bayes classifier** (pick the class of highest posterior probability $p(y \mid x)$)
gets about 93% of the data right, and no classifier can do better.

```pycon
>>> import torch
>>> from torchenstein.diffusion.guidance import LabelledMixture, lesson_labelled_mixture
>>> data = lesson_labelled_mixture()
>>> {"classes": data.classes.tolist(), "null_class": data.null_class, "prior": data.class_prior.tolist()}
{'classes': [0, 1, 2, 2], 'null_class': 3, 'prior': [0.25, 0.25, 0.5]}
>>> x0, y = data.sample_labelled(4000, torch.Generator().manual_seed(0))
>>> round((data.classify(x0) == y).double().mean().item(), 2)
0.93

```

The conditional denoiser for class $y$ is exactly the sampling lesson's denoiser of $p(x \mid y)$, and the
null class gives the whole mixture's:

```pycon
>>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
>>> model = data.conditional_denoiser(alphas_cumprod)
>>> x_t, t = torch.randn(5, 2, dtype=torch.float64), 300
>>> {f"class {c}": torch.allclose(model(x_t, t, torch.full((5,), c)), data.class_mixture(c).denoiser(alphas_cumprod)(x_t, t))
...  for c in range(3)} | {"null": torch.allclose(model(x_t, t, torch.full((5,), 3)), data.denoiser(alphas_cumprod)(x_t, t))}
{'class 0': True, 'class 1': True, 'class 2': True, 'null': True}

```

## Classifier-free guidance

Ho and Salimans (2022, *Classifier-Free Diffusion Guidance*) train one network for both jobs, conditional
and unconditional, and at sampling time combine its two answers:

$$
\tilde\varepsilon(x_t, t, y) = \varepsilon(x_t, t, \varnothing) + w\,\big(\varepsilon(x_t, t, y) - \varepsilon(x_t, t, \varnothing)\big).
$$

Here $w$ is diffusers' `guidance_scale`: $w = 0$ is the unconditional model, $w = 1$ the plain conditional
one, and $w > 1$ steps *past* the conditional prediction, further along the direction that the label
changed it. (The paper writes $(1 + w)\,\varepsilon_c - w\,\varepsilon_u$, so its $w$ is ours minus one;
diffusers' `ClassifierFreeGuidance(use_original_formulation=True)` uses that convention. Stable
Diffusion's default 7.5 is in ours.) [`guided_epsilon`][torchenstein.diffusion.guidance.guided_epsilon]
is that line, with the operations of diffusers' pipelines, `noise_pred_uncond + guidance_scale *
(noise_pred_text - noise_pred_uncond)`.

Both branches see the *same* $x_t$ at the *same* $t$. Running the model twice costs two launches, so
pipelines run it once on a **doubled batch**: the samples twice, the null labels then the real ones,
and `chunk(2)` splits the answer back.
[`classifier_free_guidance`][torchenstein.diffusion.guidance.classifier_free_guidance] does exactly that:

```pycon
>>> from torchenstein.diffusion.guidance import classifier_free_guidance, guided_epsilon
>>> labels, null = torch.tensor([0, 1, 2, 2, 0]), data.null_class
>>> one_pass = classifier_free_guidance(model, x_t, t, labels, 3.0, null)
>>> two_calls = guided_epsilon(model(x_t, t, labels), model(x_t, t, torch.full((5,), null)), 3.0)
>>> noise_pred_uncond, noise_pred_text = model(x_t, t, torch.full((5,), null)), model(x_t, t, labels)
>>> {"one pass = two calls": torch.allclose(one_pass, two_calls),
...  "= diffusers' line": torch.allclose(one_pass, noise_pred_uncond + 3.0 * (noise_pred_text - noise_pred_uncond))}
{'one pass = two calls': True, "= diffusers' line": True}
>>> classifier_free_guidance(model, x_t, t, torch.tensor([0, 1, 3, 2, 0]), 3.0, null)
Traceback (most recent call last):
...
ValueError: labels must be real classes, but they hold the null label 3: [0, 1, 3, 2, 0]

```

The tests prove `guided_epsilon` equal bit for bit to diffusers' `ClassifierFreeGuidance` guider (float32
and float64, $w \in \{0, 2.5, 7.5\}$), and to its original formulation with $w - 1$ up to rounding, and
the doubled batch equal to two calls for per-sample timesteps, 4-d images and a real `MLPDenoiser`.

!!! note "Where it differs from diffusers"
    At $w = 1$ diffusers' guider switches itself off and returns $\varepsilon_c$ untouched (and its
    pipelines skip the unconditional half of the batch); `guided_epsilon` still computes
    $\varepsilon_u + 1 \cdot (\varepsilon_c - \varepsilon_u)$, equal to $\varepsilon_c$ up to one rounding.
    A test pins both.

## Why it works: an implicit classifier

A perfect denoiser is a **score** in disguise. The score of a density is the gradient of its log,
$\nabla_x \log p(x)$, the direction in which the density grows fastest; Tweedie's formula says that for
$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$,

$$
\mathbb E[\varepsilon \mid x_t] = -\sqrt{1 - \bar\alpha_t}\;\nabla_{x_t} \log p_t(x_t),
$$

and the same with $y$ on both sides. Guidance is linear in the two predictions, so it is the score of a
geometric mix, $\tilde\varepsilon = -\sqrt{1 - \bar\alpha_t}\,\nabla \log\big(p_t(x \mid y)^w\, p_t(x)^{1 - w}\big)$,
and Bayes' rule, $p(x \mid y) = p(y \mid x)\,p(x) / p(y)$, rewrites the mix as

$$
p_t(x \mid y)^w\, p_t(x)^{1 - w} \;\propto\; p_t(x)\; p_t(y \mid x)^w .
$$

Guidance samples the data, tilted towards points that a classifier $p_t(y \mid x)$ is sure about, and
$w$ is the exponent that sharpens that classifier. No classifier was ever trained: the difference of
the two branches *is* its gradient, $\nabla \log p_t(y \mid x) = \nabla \log p_t(x \mid y) - \nabla \log p_t(x)$.
With the exact mixture we can check it all, computing $\log p_t(x) + w \log p_t(y \mid x)$ from the
densities themselves and differentiating with autograd:

```pycon
>>> a = alphas_cumprod[t]
>>> x = x_t.clone().requires_grad_()
>>> log_tilted = data.log_density(x, a) + 4.0 * data.class_log_posterior(x, a)[torch.arange(5), labels]
>>> (grad,) = torch.autograd.grad(log_tilted.sum(), x)
>>> (cond_grad,) = torch.autograd.grad(data.log_density(x, a, labels).sum(), x)
>>> {"Tweedie, w = 1": torch.allclose(-(1 - a).sqrt() * cond_grad, model(x_t, t, labels)),
...  "guided = tilted score, w = 4": torch.allclose(-(1 - a).sqrt() * grad, classifier_free_guidance(model, x_t, t, labels, 4.0, null))}
{'Tweedie, w = 1': True, 'guided = tilted score, w = 4': True}

```

One honest caveat: $p_t(x)\,p_t(y \mid x)^w$ at each noise level is *not* the noised version of one
tilted data distribution (tilting and noising do not commute), so a guided sampler follows a family of
scores that no single distribution has. That is the root of the saturation below.

## What guidance buys, and what it costs

[`guidance_sweep`][torchenstein.diffusion.guidance.guidance_sweep] samples 600 points, 200 per class, with
50 deterministic DDIM steps ([`ddim_sample`][torchenstein.diffusion.ddim.ddim_sample], $\eta = 0$) and
the exact denoisers, from the same noise at every $w$, and
[`guidance_stats`][torchenstein.diffusion.guidance.guidance_stats] measures four things: **fidelity**,
the fraction whose Bayes class is the one asked for; **spread**, the standard deviation around the centre
of each blob of samples (diversity); **drift**, how far each class's sample mean has moved from the
true one; and **off data**, the fraction of samples in the data's least likely 1% (below the 1% quantile
of $\log p(x)$ over real points). The first row is real data, for reference:

```pycon
>>> from torchenstein.diffusion.guidance import guidance_stats, guidance_sweep
>>> def row(stats):
...     return (f"{stats.guidance_scale:>4}  fidelity {stats.fidelity:.3f}  spread {stats.spread:.3f}"
...             f"  drift {stats.drift:.3f}  off data {stats.off_data:.3f}")
>>> x0, y = data.sample_labelled(600, torch.Generator().manual_seed(1))
>>> print("data", row(guidance_stats(data, x0, y, 1.0))[4:])
data  fidelity 0.928  spread 0.201  drift 0.024  off data 0.008
>>> for stats, samples, labels in guidance_sweep((0.0, 1.0, 2.0, 4.0, 8.0)):
...     print("w =", row(stats))
w =  0.0  fidelity 0.348  spread 0.362  drift 0.342  off data 0.000
w =  1.0  fidelity 0.945  spread 0.178  drift 0.008  off data 0.000
w =  2.0  fidelity 0.998  spread 0.128  drift 0.115  off data 0.008
w =  4.0  fidelity 1.000  spread 0.104  drift 0.239  off data 0.028
w =  8.0  fidelity 1.000  spread 0.089  drift 0.395  off data 0.423

```

Read it top to bottom. At $w = 0$ the label is ignored: a third of the samples land in the requested
class, the class prior. At $w = 1$ we sample $p(x \mid y)$: fidelity like the data's and no drift (the
spread is a little under 0.2 because 50 DDIM steps under-disperse, as the DDIM lesson measured). At
$w = 2$ fidelity is already 99.8%, bought with diversity: each blob is tighter. Past that, fidelity
has nothing left to gain, the blobs keep shrinking, and the classes are pushed *away from each other*,
off the data: at $w = 8$, 42% of the samples lie where real data almost never does. In images this is
the over-saturated, over-contrasted look of a guidance scale too high.

![Five scatter plots of samples coloured by requested class over grey data: at w = 0 the colours are mixed over all four blobs; at w = 1 each colour covers its class's blobs; at w = 2 and 4 the blobs tighten and move outwards; at w = 8 they are small tight clusters pushed far beyond the data.](plot_guidance_sweep.svg)

## Training with label dropout

A trained model needs both branches, so one network learns both: during training, each label is
replaced by the null class with probability $p_\text{uncond}$ (0.1 to 0.2 is usual), and the model learns
$\varepsilon(x_t, t, \varnothing)$ from those samples with the same loss.
[`drop_labels`][torchenstein.diffusion.guidance.drop_labels] is the coin flip, returning a new tensor:

```pycon
>>> from torchenstein.diffusion.guidance import drop_labels
>>> labels = torch.tensor([0, 1, 2] * 4)
>>> dropped = drop_labels(labels, 0.25, null_class=3, generator=torch.Generator().manual_seed(0))
>>> {"dropped": dropped.tolist(), "original untouched": labels.tolist() == [0, 1, 2] * 4}
{'dropped': [0, 1, 3, 3, 1, 2, 0, 1, 2, 0, 1, 2], 'original untouched': True}
>>> drop_labels(labels, 1.5, null_class=3)
Traceback (most recent call last):
...
ValueError: p must be a probability in [0, 1], got 1.5

```

[`train_guided_denoiser`][torchenstein.diffusion.guidance.train_guided_denoiser] trains a small
`MLPDenoiser(num_classes=3)` on the lesson's data with [`ddpm_loss`][torchenstein.diffusion.ddpm.ddpm_loss]
(the labels ride along in a closure) and the course's `AdamW`. Guided, it hits the requested class more
often than it does unguided:

```pycon
>>> from torchenstein.diffusion.guidance import cfg_sample, train_guided_denoiser
>>> net = train_guided_denoiser(p_uncond=0.2, steps=150)
>>> labels, x_T = torch.arange(300) % 3, torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
>>> with torch.no_grad():
...     fidelity = {w: guidance_stats(data, cfg_sample(net, x_T, alphas_cumprod.float(), labels, w, net.null_class),
...                                   labels, w).fidelity for w in (0.0, 1.0, 3.0)}
>>> {"w = 3 beats w = 0 and w = 1": fidelity[3.0] > fidelity[0.0] + 0.4 and fidelity[3.0] >= fidelity[1.0]}
{'w = 3 beats w = 0 and w = 1': True}

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: forgetting label dropout"
    Dr. Hammer trains with every label present ($p_\text{uncond} = 0$). The conditional model is fine; the
    null class's embedding row is never trained, so the "unconditional" branch answers with whatever the
    random row makes of it. Guidance then extrapolates away from garbage. Compare each model's null branch
    with the exact unconditional denoiser on noisy data:

    ```pycon
    >>> x0, _ = data.sample_labelled(2000, torch.Generator().manual_seed(5))
    >>> t_batch = torch.randint(0, 1000, (2000,), generator=torch.Generator().manual_seed(6))
    >>> a = alphas_cumprod[t_batch, None]
    >>> x_t = (a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(2000, 2, dtype=torch.float64)).float()
    >>> null_labels = torch.full((2000,), 3)
    >>> truth = model(x_t.double(), t_batch, null_labels).float()
    >>> hammer = train_guided_denoiser(p_uncond=0.0, steps=150)
    >>> with torch.no_grad():
    ...     errors = {name: (m(x_t, t_batch, null_labels) - truth).pow(2).mean().item() for name, m in
    ...               (("with dropout", net), ("without", hammer))}
    >>> errors["without"] > 3 * errors["with dropout"]
    True

    ```

!!! hammer "Dr. Hammer's trap: the wrong sign, or the wrong convention"
    Swap the two branches, $\varepsilon_c + w(\varepsilon_u - \varepsilon_c)$, and guidance pushes *away*
    from the label: fidelity falls below even the unguided model's. Copy a paper's $w$ into diffusers'
    formula and every scale is off by one.

    ```pycon
    >>> from torchenstein.diffusion.ddim import ddim_sample
    >>> labels, x_T = torch.arange(300) % 3, torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> def swapped(x, t):
    ...     e_c, e_u = model(x, t, labels), model(x, t, torch.full_like(labels, 3))
    ...     return e_c + 3.0 * (e_u - e_c)
    >>> wrong = ddim_sample(swapped, x_T, alphas_cumprod, 50, clip_sample=False, progress_bar=False)
    >>> right = cfg_sample(model, x_T, alphas_cumprod, labels, 3.0, 3, num_inference_steps=50)
    >>> {"swapped": guidance_stats(data, wrong, labels, 3).fidelity < 0.33,
    ...  "right": guidance_stats(data, right, labels, 3).fidelity > 0.99}
    {'swapped': True, 'right': True}

    ```

!!! hammer "Dr. Hammer's trap: two branches, two different inputs"
    To "save a forward pass", Dr. Hammer reuses the unconditional prediction computed on the previous
    step's sample. The difference $\varepsilon_c - \varepsilon_u$ is then no longer the classifier's
    gradient at one point; it is mostly the difference between two points, multiplied by $w$:

    ```pycon
    >>> g = torch.Generator().manual_seed(0)
    >>> x, lab = torch.randn(5, 2, dtype=torch.float64, generator=g), torch.tensor([0, 1, 2, 0, 1])
    >>> x_before = x + 0.1 * torch.randn(5, 2, dtype=torch.float64, generator=g)     # a step earlier
    >>> right = classifier_free_guidance(model, x, 300, lab, 4.0, 3)
    >>> skewed = guided_epsilon(model(x, 300, lab), model(x_before, 300, torch.full((5,), 3)), 4.0)
    >>> {"largest error": round((skewed - right).abs().max().item(), 1), "largest guided eps": round(right.abs().max().item(), 1)}
    {'largest error': 0.5, 'largest guided eps': 4.9}

    ```

!!! hammer "Dr. Hammer's trap: the scale turned to eleven"
    If 2 is good, 8 must be better? The table above says otherwise: past $w \approx 2$ fidelity is
    already 1, and only the damage grows, the spread halving and nearly half the samples pushed off the
    data at $w = 8$. Choose $w$ by measuring, and look at what the samples cost, not only at what they hit.

## Challenges

**1. Negative-label guidance.** Write `negative_label_guidance(model, x_t, t, labels, negative_labels,
guidance_scale)`: the prediction for a negative label $y^-$ takes the unconditional branch's place,
$\varepsilon(x_t, y^-) + w\,(\varepsilon(x_t, y) - \varepsilon(x_t, y^-))$, pushing towards `labels` and
away from `negative_labels`, with one model call on a doubled batch (this is how a "negative prompt"
works). `check_negative_label_guidance` runs it with the exact denoiser and counts the calls.

**2. Guidance rescale.** Large $w$ inflates the guided prediction's scale. Lin et al. (2024, *Common
Diffusion Noise Schedules and Sample Steps Are Flawed*) rescale it: per sample, multiply
$\tilde\varepsilon$ by $\operatorname{std}(\varepsilon_c) / \operatorname{std}(\tilde\varepsilon)$ (over every
dimension but the batch), then mix that with $\tilde\varepsilon$ by the fraction $\phi$. Write
`rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale=0.0)`, diffusers' function of that name;
`check_rescale_noise_cfg` checks it, and the tests prove the solution equal to diffusers'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from torchenstein.diffusion.ddim import ddim_sample
from torchenstein.diffusion.ddpm import ddpm_loss
from torchenstein.diffusion.denoiser import MLPDenoiser
from torchenstein.diffusion.forward import _describe
from torchenstein.diffusion.sampling import GaussianMixture
from torchenstein.lab import PALETTE, new_figure
from torchenstein.training.adam import AdamW

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

ConditionalModel = Callable[[Tensor, "int | Tensor", Tensor], Tensor]
"""A class-conditional denoiser: ``model(x_t, t, class_labels)`` returns $\\hat\\varepsilon$ of ``x_t``'s shape."""


class LabelledMixture(GaussianMixture):
    r"""A mixture of round Gaussians whose components carry class labels, and its exact denoisers.

    Class $y$ is the group of components labelled $y$; $p(x \mid y)$ is their mixture, with their
    weights renormalised, and $p(y) = \sum_{k: c_k = y} \pi_k$.

    Args:
        means: the centres $\mu_k$, shape ``(K, D)``.
        stds: the standard deviations $s_k$, shape ``(K,)``.
        weights: the mixing weights $\pi_k$, shape ``(K,)``, summing to 1; ``None`` for equal.
        classes: the class $c_k$ of each component, an integer tensor of shape ``(K,)`` using every label
            from 0 to $C - 1$.

    Attributes:
        num_classes: $C$.
        null_class: the label meaning "no label", $C$, as in [`MLPDenoiser`][torchenstein.diffusion.denoiser.MLPDenoiser].

    Examples:
        >>> data = LabelledMixture(torch.tensor([[-1.0], [1.0], [2.0]]), torch.full((3,), 0.5),
        ...                        classes=torch.tensor([0, 1, 1]))
        >>> {"prior": [round(p, 3) for p in data.class_prior.tolist()], "null_class": data.null_class}
        {'prior': [0.333, 0.667], 'null_class': 2}
    """

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor | None = None, *, classes: Tensor) -> None:
        super().__init__(means, stds, weights)
        _check_classes(classes, self.means.size(0))
        self.classes = classes.long()
        self.num_classes = int(self.classes.max()) + 1
        self.null_class = self.num_classes

    @property
    def class_prior(self) -> Tensor:
        """$p(y)$ for every class, shape ``(C,)``, in the mixture's dtype."""
        return torch.zeros(self.num_classes, dtype=self.weights.dtype).index_add_(0, self.classes, self.weights)

    def class_mixture(self, label: int) -> GaussianMixture:
        r"""$p(x \mid y)$ for one class, as the sampling lesson's ``GaussianMixture``."""
        keep = self.classes == label
        return GaussianMixture(self.means[keep], self.stds[keep], self.weights[keep] / self.weights[keep].sum())

    def sample_labelled(self, num_samples: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``num_samples`` labelled points ``(N, D)``, in the mixture's dtype, and their int64 classes ``(N,)``."""
        k = torch.multinomial(self.weights, num_samples, replacement=True, generator=generator)  # (N,)
        noise = torch.randn(num_samples, self.means.size(1), generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k, None] * noise, self.classes[k]

    def log_density(self, x_t: Tensor, alpha_bar: Tensor | float, class_labels: Tensor | None = None) -> Tensor:
        r"""$\log p_t(x_t \mid y)$, or $\log p_t(x_t)$ where the label is the null class (or no labels).

        Args:
            x_t: points, shape ``(B, D)``.
            alpha_bar: $\bar\alpha_t$, a number or a tensor of one value or one per point; 1 is the data.
            class_labels: one label per point, shape ``(B,)``, ``null_class`` for "any class"; or ``None``.

        Returns:
            The log densities, shape ``(B,)``, differentiable in ``x_t``.
        """
        log_joint = self._component_log_joint(x_t, alpha_bar)  # (B, K): log pi_k + log N_k(x_t)
        if class_labels is None:
            return log_joint.logsumexp(1)
        keep = self._keep(class_labels)  # (B, K)
        log_prior = torch.log(self.class_prior.to(log_joint))[class_labels.clamp(max=self.num_classes - 1)]
        conditional = log_joint.masked_fill(~keep, -math.inf).logsumexp(1) - log_prior
        return torch.where(class_labels == self.null_class, log_joint.logsumexp(1), conditional)

    def class_log_posterior(self, x_t: Tensor, alpha_bar: Tensor | float) -> Tensor:
        r"""$\log p_t(y \mid x_t)$ for every class: the exact classifier of noisy points, shape ``(B, C)``."""
        log_joint = self._component_log_joint(x_t, alpha_bar)  # (B, K)
        # Add up the components of each class (in probability, so logsumexp), then normalise over classes.
        onehot = torch.nn.functional.one_hot(self.classes, self.num_classes).T.bool()  # (C, K)
        per_class = log_joint[:, None, :].masked_fill(~onehot, -math.inf).logsumexp(-1)  # (B, C)
        return per_class.log_softmax(dim=1)

    def classify(self, x0: Tensor) -> Tensor:
        """The most likely class of each clean point (the Bayes classifier), shape ``(B,)``, int64."""
        return self.class_log_posterior(x0, 1.0).argmax(dim=1)

    def conditional_denoiser(self, alphas_cumprod: Tensor) -> ConditionalModel:
        r"""The exact $\mathbb E[\varepsilon \mid x_t, y]$ (and $\mathbb E[\varepsilon \mid x_t]$ for the null
        class), as ``model(x_t, t, class_labels)``.

        Args:
            alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.

        Returns:
            ``model(x_t, t, class_labels)``: ``x_t`` of shape ``(B, D)``; ``t`` an int or a tensor of one
            timestep or one per point; ``class_labels`` of shape ``(B,)`` in ``0..C``, ``C`` meaning no label.
        """

        def model(x_t: Tensor, t: int | Tensor, class_labels: Tensor) -> Tensor:
            _check_labels(class_labels, x_t, self.num_classes)
            compute = torch.promote_types(x_t.dtype, torch.float32)
            x = x_t.to(compute)
            alpha_bar = alphas_cumprod.to(device=x.device, dtype=compute)[torch.as_tensor(t, device=x.device)]
            a, var, diff = self._noised(x, alpha_bar)  # (1|B, 1, 1), (1|B, K, 1), (B, K, D)
            # Responsibilities over the components of the requested class only: the others get -inf.
            log_joint = self._component_log_joint(x, alpha_bar)
            r = log_joint.masked_fill(~self._keep(class_labels), -math.inf).softmax(dim=1)[..., None]  # (B, K, 1)
            # Within component k, E[eps | x_t] is linear in x_t (a Gaussian conditioned on a sum).
            eps = (r * (1 - a**2).sqrt() * diff / var).sum(1)  # (B, D)
            return eps.to(x_t.dtype)

        return model

    def _keep(self, class_labels: Tensor) -> Tensor:
        """Which components each label allows, ``(B, K)``: its class's, or all of them for the null class."""
        labels = class_labels.to(self.classes.device)[:, None]  # (B, 1)
        return (self.classes[None, :] == labels) | (labels == self.null_class)

    def _noised(self, x: Tensor, alpha_bar: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
        alpha_bar = torch.as_tensor(alpha_bar, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        a = alpha_bar.sqrt()
        means, stds = self.means.to(x), self.stds.to(x)
        # Component k seen at timestep t is N(a mu_k, var_k I): its signal shrunk, the noise added.
        var = alpha_bar * stds[:, None] ** 2 + 1 - alpha_bar  # (1|B, K, 1)
        return a, var, x[:, None, :] - a * means  # diff: (B, K, D)

    def _component_log_joint(self, x: Tensor, alpha_bar: Tensor | float) -> Tensor:
        _, var, diff = self._noised(x, alpha_bar)
        D = self.means.size(1)
        log_normal = -0.5 * (diff**2).sum(-1, keepdim=True) / var - 0.5 * D * (2 * math.pi * var).log()
        return self.weights.to(x).log() + log_normal[..., 0]  # (B, K)


def lesson_labelled_mixture() -> LabelledMixture:
    """The lesson's data: three classes in the plane, left, right, and a class of two blobs above and below."""
    means = torch.tensor([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.5], [0.0, -0.5]], dtype=torch.float64)
    return LabelledMixture(means, torch.full((4,), 0.2, dtype=torch.float64), classes=torch.tensor([0, 1, 2, 2]))


def guided_epsilon(eps_cond: Tensor, eps_uncond: Tensor, guidance_scale: float | Tensor) -> Tensor:
    r"""Classifier-free guidance's combination, $\tilde\varepsilon = \varepsilon_u + w\,(\varepsilon_c - \varepsilon_u)$.

    ``guidance_scale`` is diffusers' $w$: 0 is the unconditional model, 1 the conditional one, above 1
    extrapolates past it.

    Args:
        eps_cond: the conditional prediction $\varepsilon_c$.
        eps_uncond: the unconditional prediction $\varepsilon_u$, of the same shape.
        guidance_scale: $w$, a number or a tensor that broadcasts against the predictions.

    Returns:
        $\tilde\varepsilon$, of the predictions' shape.

    Examples:
        >>> guided_epsilon(torch.tensor([1.0]), torch.tensor([0.0]), 7.5)
        tensor([7.5000])
    """
    # The same operations in the same order as diffusers' pipelines and its ClassifierFreeGuidance guider.
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def classifier_free_guidance(
    model: ConditionalModel,
    x_t: Tensor,
    t: int | Tensor,
    labels: Tensor,
    guidance_scale: float,
    null_label: int,
) -> Tensor:
    r"""One guided noise prediction: both branches in a single forward pass over a doubled batch.

    Args:
        model: ``model(x_t, t, class_labels)``, trained with label dropout (or exact).
        x_t: the noisy samples, shape ``(B, ...)``.
        t: the timestep: an int, a 0-d tensor, or one per sample, shape ``(B,)``.
        labels: the requested class of each sample, shape ``(B,)``, integer.
        guidance_scale: diffusers' $w$ (1: the conditional model alone).
        null_label: the label that means "no label" (``model.null_class``).

    Returns:
        $\tilde\varepsilon$, of ``x_t``'s shape.

    Raises:
        TypeError: if ``x_t`` or ``labels`` is not a tensor of the right kind, or ``guidance_scale`` is not
            a number.
        ValueError: if ``labels`` does not hold one label per sample, or holds ``null_label``.

    Examples:
        >>> model = lesson_labelled_mixture().conditional_denoiser(torch.linspace(0.99, 0.01, 1000))
        >>> classifier_free_guidance(model, torch.zeros(3, 2), 500, torch.tensor([0, 1, 2]), 3.0, 3).shape
        torch.Size([3, 2])
    """
    _check_guidance_args(x_t, labels, guidance_scale, null_label)
    # The same x_t and the same t for both halves: the branches must see the same noisy sample.
    x_in = torch.cat([x_t, x_t])  # (2B, ...)
    t_in = torch.cat([t, t]) if isinstance(t, Tensor) and t.dim() == 1 else t
    # Unconditional half first, as diffusers' pipelines concatenate [negative/empty prompt, prompt].
    labels_in = torch.cat([torch.full_like(labels, null_label), labels])  # (2B,)
    eps_uncond, eps_cond = model(x_in, t_in, labels_in).chunk(2)  # (B, ...) each
    return guided_epsilon(eps_cond, eps_uncond, guidance_scale)


def cfg_sample(
    model: ConditionalModel,
    sample: Tensor,
    alphas_cumprod: Tensor,
    labels: Tensor,
    guidance_scale: float,
    null_label: int,
    num_inference_steps: int = 25,
) -> Tensor:
    r"""Deterministic DDIM ($\eta = 0$, no clipping) with classifier-free guidance at every step.

    Args:
        model: ``model(x_t, t, class_labels)``.
        sample: the starting noise $x_T$, shape ``(B, D)``.
        alphas_cumprod: $\bar\alpha$ for every training timestep, shape ``(T,)``.
        labels: the requested class of each sample, shape ``(B,)``.
        guidance_scale: diffusers' $w$.
        null_label: the "no label" index.
        num_inference_steps: DDIM steps.

    Returns:
        The samples, of ``sample``'s shape.
    """

    def guided(x_t: Tensor, t: int) -> Tensor:
        return classifier_free_guidance(model, x_t, t, labels, guidance_scale, null_label)

    return ddim_sample(guided, sample, alphas_cumprod, num_inference_steps, clip_sample=False, progress_bar=False)


class GuidanceStats(NamedTuple):
    """What guidance did to samples: how often they land in their class, how varied, how far off the data."""

    guidance_scale: float
    fidelity: float  # the fraction whose most likely class (exact posterior) is the requested one
    spread: float  # the standard deviation per coordinate around the centre of each blob of samples
    drift: float  # the distance from a class's sample mean to its true mean, averaged over classes
    off_data: float  # the fraction in the data's least likely 1% (below the 1% quantile of log p(x))


def guidance_stats(data: LabelledMixture, samples: Tensor, labels: Tensor, guidance_scale: float) -> GuidanceStats:
    r"""Measure samples generated for ``labels``: fidelity, spread, drift of the mean, and how many left the data.

    Args:
        data: the labelled mixture the samples should come from.
        samples: the samples, shape ``(N, D)``.
        labels: the class each sample was generated for, shape ``(N,)``; every class at least once.
        guidance_scale: recorded in the result.

    Returns:
        A ``GuidanceStats`` of floats.
    """
    x = samples.double()
    fidelity = (data.classify(x) == labels).double().mean().item()
    # Each sample joins the nearest mode of its requested class; spread is measured around each blob's own
    # centre, so a class of two blobs is not "spread out", and a pushed blob is "drift", not spread.
    distance = torch.cdist(x, data.means).masked_fill(data.classes[None, :] != labels[:, None], math.inf)
    blob = distance.argmin(dim=1)  # (N,)
    centres = torch.stack([x[blob == k].mean(0) if bool((blob == k).any()) else data.means[k]
                           for k in range(data.means.size(0))])  # (K, D)
    spread = ((x - centres[blob]).pow(2).mean()).sqrt().item()
    drifts = [torch.linalg.vector_norm(x[labels == y].mean(0) - data.class_mixture(y).mean).item()
              for y in range(data.num_classes)]
    # The 1% quantile of the data's own log-density, from a fixed sample of the data.
    reference = data.log_density(data.sample(4000, torch.Generator().manual_seed(12345)), 1.0).quantile(0.01)
    off_data = (data.log_density(x, 1.0) < reference).double().mean().item()
    return GuidanceStats(float(guidance_scale), fidelity, spread, sum(drifts) / len(drifts), off_data)


def _lesson_schedule() -> Tensor:
    # DDPM's linear schedule, in float64: the exact denoisers are the ground truth.
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)


def guidance_sweep(
    guidance_scales: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
    *,
    num_samples: int = 600,
    num_inference_steps: int = 50,
    seed: int = 0,
) -> list[tuple[GuidanceStats, Tensor, Tensor]]:
    """Sample the lesson's mixture with the exact denoisers and classifier-free guidance at several scales.

    Every scale starts from the same noise and asks for the same labels (the classes in turn).

    Args:
        guidance_scales: the values of $w$.
        num_samples: samples per scale, at least two per class.
        num_inference_steps: DDIM steps.
        seed: seeds the starting noise.

    Returns:
        For each scale: its ``GuidanceStats``, the samples ``(N, 2)`` and the labels ``(N,)``.

    Examples:
        >>> [round(stats.fidelity, 2) for stats, _, _ in guidance_sweep((0.0, 4.0), num_samples=30)]
        [0.53, 1.0]
    """
    data = lesson_labelled_mixture()
    if isinstance(num_samples, bool) or not isinstance(num_samples, Integral) or num_samples < 2 * data.num_classes:
        raise ValueError(f"num_samples must be an int of at least {2 * data.num_classes}, got {num_samples!r}")
    model = data.conditional_denoiser(_lesson_schedule())
    labels = torch.arange(num_samples) % data.num_classes  # (N,): 0, 1, 2, 0, 1, 2, ...
    x_T = torch.randn(num_samples, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    results = []
    for w in guidance_scales:
        samples = cfg_sample(model, x_T, _lesson_schedule(), labels, w, data.null_class, num_inference_steps)
        results.append((guidance_stats(data, samples, labels, w), samples, labels))
    return results


def plot_guidance_sweep(*, guidance_scales: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0), num_samples: int = 450) -> Figure:
    """Draw samples of the lesson's three classes at several guidance scales, over the data.

    Args:
        guidance_scales: the values of $w$, one panel each.
        num_samples: samples per panel.

    Returns:
        A figure with one scatter plot per scale, coloured by the requested class.
    """
    data = lesson_labelled_mixture()
    truth, truth_labels = data.sample_labelled(num_samples, torch.Generator().manual_seed(1))
    sweep = guidance_sweep(guidance_scales, num_samples=num_samples)
    fig, axes = new_figure(1, len(sweep), width=2.2 * len(sweep), height=2.6)
    for i, (ax, (stats, samples, labels)) in enumerate(zip(axes, sweep, strict=True)):
        ax.plot(truth[:, 0].numpy(), truth[:, 1].numpy(), "o", markersize=1.5, markeredgewidth=0,
                color="#bbbbbb")
        for y in range(data.num_classes):
            mine = samples[labels == y]
            ax.plot(mine[:, 0].numpy(), mine[:, 1].numpy(), "o", markersize=1.8, markeredgewidth=0,
                    color=PALETTE[y], alpha=0.8)
        ax.set(xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), aspect="equal",
               title=f"w = {stats.guidance_scale:g}\nfidelity {stats.fidelity:.2f}, spread {stats.spread:.2f}")
        ax.title.set_fontsize(8)
        ax.tick_params(labelsize=6, labelleft=i == 0)
    fig.suptitle("Classifier-free guidance with the exact denoisers (grey: the data)", fontsize=10)
    return fig


def drop_labels(labels: Tensor, p: float, null_class: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Label dropout: replace each label by ``null_class`` with probability ``p``, independently.

    Args:
        labels: the class labels, an integer tensor of any shape.
        p: the probability $p_\text{uncond}$ of dropping a label, in $[0, 1]$.
        null_class: the "no label" index.
        generator: draws the coin flips (``None``: the global generator).

    Returns:
        A new tensor of ``labels``' shape and dtype; ``labels`` itself is unchanged.

    Raises:
        TypeError: if ``labels`` is not an integer tensor.
        ValueError: if ``p`` is not in $[0, 1]$.

    Examples:
        >>> drop_labels(torch.tensor([0, 1, 2, 0, 1, 2]), 0.5, 3, torch.Generator().manual_seed(0))
        tensor([3, 1, 3, 3, 3, 2])
    """
    _check_drop_args(labels, p, null_class)
    # One uniform number per label; those below p are dropped. torch.where builds a new tensor.
    dropped = torch.rand(labels.shape, generator=generator, device=labels.device) < p
    return torch.where(dropped, torch.full_like(labels, null_class), labels)


def train_guided_denoiser(
    *, p_uncond: float = 0.2, steps: int = 300, batch_size: int = 256, hidden_dim: int = 64, seed: int = 0
) -> MLPDenoiser:
    """Train a tiny class-conditional ``MLPDenoiser`` on the lesson's mixture, with label dropout.

    Args:
        p_uncond: the label dropout probability (0: Dr. Hammer's way, no unconditional training).
        steps: optimiser steps.
        batch_size: points per step.
        hidden_dim: the width of the MLP.
        seed: seeds the model, the data and every draw of the training.

    Returns:
        The trained model, in eval mode.
    """
    data = lesson_labelled_mixture()
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the model's initial weights
    model = MLPDenoiser(2, hidden_dim, num_layers=2, num_classes=data.num_classes)
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    points, labels = data.sample_labelled(4096, generator)
    points = points.float()
    alphas_cumprod = _lesson_schedule().float()
    for _ in range(steps):
        index = torch.randint(0, len(points), (batch_size,), generator=generator)
        x0, y = points[index], drop_labels(labels[index], p_uncond, model.null_class, generator)
        # ddpm_loss draws the timesteps and the noise; the labels ride along in the closure.
        loss = ddpm_loss(lambda x_t, t, y=y: model(x_t, t, y), x0, alphas_cumprod, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def negative_label_guidance(
    model: ConditionalModel, x_t: Tensor, t: int | Tensor, labels: Tensor, negative_labels: Tensor,
    guidance_scale: float,
) -> Tensor:
    r"""Challenge solution: guidance towards ``labels`` and away from ``negative_labels``, in one forward pass.

    $\tilde\varepsilon = \varepsilon(x_t, y^-) + w\,(\varepsilon(x_t, y) - \varepsilon(x_t, y^-))$: the
    negative label's prediction takes the place of the unconditional one.

    Examples:
        >>> model = lesson_labelled_mixture().conditional_denoiser(torch.linspace(0.99, 0.01, 1000))
        >>> x, t, y = torch.zeros(2, 2), 500, torch.tensor([0, 1])
        >>> torch.allclose(negative_label_guidance(model, x, t, y, torch.tensor([3, 3]), 2.0),
        ...                classifier_free_guidance(model, x, t, y, 2.0, 3))
        True
    """
    x_in = torch.cat([x_t, x_t])  # (2B, ...)
    t_in = torch.cat([t, t]) if isinstance(t, Tensor) and t.dim() == 1 else t
    eps_negative, eps_cond = model(x_in, t_in, torch.cat([negative_labels, labels])).chunk(2)
    return eps_negative + guidance_scale * (eps_cond - eps_negative)


def check_negative_label_guidance(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``negative_label_guidance``."""
    data = lesson_labelled_mixture()
    exact = data.conditional_denoiser(_lesson_schedule())
    batches: list[int] = []

    def counting(x_t: Tensor, t: int | Tensor, class_labels: Tensor) -> Tensor:
        batches.append(x_t.size(0))
        return exact(x_t, t, class_labels)

    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(6, 2, generator=g, dtype=torch.float64)
    labels, negative = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, 2, 0, 2, 0, 1])
    for t, w in ((500, 3.0), (torch.tensor([10, 100, 300, 500, 700, 999]), 1.5), (900, 1.0), (200, 0.0)):
        batches.clear()
        got = candidate(counting, x_t, t, labels, negative, w)
        expected = exact(x_t, t, negative) + w * (exact(x_t, t, labels) - exact(x_t, t, negative))
        where = f"guidance_scale={w}, t={t.tolist() if isinstance(t, Tensor) else t}"
        assert isinstance(got, Tensor) and got.shape == x_t.shape, f"{where}: expected a tensor of shape (6, 2)"
        assert batches == [12], (
            f"{where}: expected one call of the model on the doubled batch of 12, got calls with batches {batches}"
        )
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (
            f"{where}: off by {(got - expected).abs().max().item():.3g}; expected eps(neg) + w (eps(label) - eps(neg))"
        )


def rescale_noise_cfg(noise_cfg: Tensor, noise_pred_text: Tensor, guidance_rescale: float = 0.0) -> Tensor:
    r"""Challenge solution: guidance rescale (Lin et al., 2023): pull the guided prediction's per-sample
    standard deviation back towards the conditional one's, by the fraction ``guidance_rescale``.

    Examples:
        >>> cfg, cond = torch.tensor([[4.0, -4.0]]), torch.tensor([[1.0, -1.0]])
        >>> rescale_noise_cfg(cfg, cond, 1.0), rescale_noise_cfg(cfg, cond, 0.5)
        (tensor([[ 1., -1.]]), tensor([[ 2.5000, -2.5000]]))
    """
    dims = list(range(1, noise_pred_text.dim()))  # every dimension but the batch
    std_text = noise_pred_text.std(dim=dims, keepdim=True)  # (B, 1, ...)
    std_cfg = noise_cfg.std(dim=dims, keepdim=True)
    rescaled = noise_cfg * (std_text / std_cfg)
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


def check_rescale_noise_cfg(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``rescale_noise_cfg``."""
    g = torch.Generator().manual_seed(0)
    for shape in ((4, 2), (3, 4, 8, 8), (2, 16)):
        cond = torch.randn(shape, generator=g, dtype=torch.float64)
        cfg = 5 * torch.randn(shape, generator=g, dtype=torch.float64) + 1
        for phi in (0.0, 0.7, 1.0):
            got = candidate(cfg, cond, phi)
            expected = rescale_noise_cfg(cfg, cond, phi)
            assert isinstance(got, Tensor) and got.shape == cfg.shape, f"shape {shape}, rescale {phi}: wrong shape"
            assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12), (
                f"shape {shape}, guidance_rescale={phi}: off by {(got - expected).abs().max().item():.3g}; the "
                "standard deviation is per sample, over every dimension but the first, with Bessel's correction"
            )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _is_int_tensor(value: object) -> bool:
    return isinstance(value, Tensor) and not value.is_floating_point() and not value.is_complex() \
        and value.dtype != torch.bool


def _check_classes(classes: object, K: int) -> None:
    if not _is_int_tensor(classes) or classes.shape != (K,):
        raise TypeError(f"classes must be an integer tensor of shape ({K},), one per component, got {_describe(classes)}")
    used = sorted(set(classes.tolist()))
    if used != list(range(len(used))):
        raise ValueError(f"classes must use every label from 0 to C - 1, got {used}")


def _check_labels(class_labels: object, x_t: object, num_classes: int) -> None:
    if not isinstance(x_t, Tensor) or not x_t.is_floating_point() or x_t.dim() != 2:
        raise TypeError(f"x_t must be a floating-point tensor of shape (B, D), got {_describe(x_t)}")
    if not _is_int_tensor(class_labels) or class_labels.shape != (x_t.size(0),):
        raise TypeError(f"class_labels must be an integer tensor of shape ({x_t.size(0)},), got {_describe(class_labels)}")
    if class_labels.numel() and not 0 <= int(class_labels.min()) <= int(class_labels.max()) <= num_classes:
        raise ValueError(f"class_labels must lie in 0..{num_classes} ({num_classes}: no label), got "
                         f"{class_labels.tolist()}")


def _check_guidance_args(x_t: object, labels: object, guidance_scale: object, null_label: object) -> None:
    if not isinstance(x_t, Tensor) or not x_t.is_floating_point() or x_t.dim() == 0:
        raise TypeError(f"x_t must be a floating-point tensor of shape (B, ...), got {_describe(x_t)}")
    if not _is_int_tensor(labels) or labels.shape != (x_t.size(0),):
        raise TypeError(f"labels must be an integer tensor of shape ({x_t.size(0)},), got {_describe(labels)}")
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, Real):
        raise TypeError(f"guidance_scale must be a number, got {_describe(guidance_scale)}")
    if isinstance(null_label, bool) or not isinstance(null_label, Integral):
        raise TypeError(f"null_label must be an int, got {_describe(null_label)}")
    if bool((labels == null_label).any()):
        raise ValueError(f"labels must be real classes, but they hold the null label {null_label}: "
                         f"{labels.tolist()}")


def _check_drop_args(labels: object, p: object, null_class: object) -> None:
    if not _is_int_tensor(labels):
        raise TypeError(f"labels must be an integer tensor, got {_describe(labels)}")
    if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if isinstance(null_class, bool) or not isinstance(null_class, Integral):
        raise TypeError(f"null_class must be an int, got {_describe(null_class)}")
