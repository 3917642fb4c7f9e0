r"""
# The Score: Gradients That Point Home

!!! torchenstein "The Professor speaks"
    Every diffusion model I have ever dissected hides the same organ, and it is not the U-Net. It is a
    *gradient*: the gradient of the log-density of the data, the **score**, an arrow at every point of
    space that says "the data is that way". A network that predicts noise is secretly computing it; a
    sampler is secretly climbing it; guidance is secretly *adding* to it. Tonight we write a density in
    torch, let autograd draw its arrows, sample with nothing but those arrows, prove that a denoiser's
    target averages to the very same arrows, and find out where gradients must flow and where, for the
    sake of your memory, they must never go. MWAHAHA!

**You will learn to**

- define the **score** $\nabla_x \log p(x)$, and show that the forward process's own score is
  $-\varepsilon / \sigma_t$;
- write a Gaussian mixture's log-density in torch, prove it equal to `torch.distributions`, and get its
  score from `torch.autograd.grad`, equal to the closed form; explain why summing log-probabilities gives
  every sample its own gradient;
- sample a 2-D density with **Langevin dynamics**, see it fail on separated modes, and fix it by
  **annealing** over noise levels;
- prove numerically that the **denoising score matching** target averages to the true score of the
  noised density, and that the best noise predictor is $-\sigma_t$ times that score;
- say where gradients flow in training and where they must not flow in sampling, and measure the memory
  of backpropagating through $N$ sampling steps;
- add a classifier's gradient to the score: **classifier guidance**;
- dodge four of Dr. Hammer's gradient blunders.

## What a score is

A **probability density** $p(x)$ says how likely each point $x \in \mathbb R^D$ is; its logarithm
$\log p(x)$ is the **log-density**. The **score** is the gradient of the log-density with respect to the
point itself (not with respect to any parameter):

$$
s(x) = \nabla_x \log p(x) .
$$

It is a vector field: at every point an arrow pointing uphill, towards more probable places, longer
where the density changes fast. Two facts make it the hero of diffusion. First, it ignores the
normalising constant: for $p(x) = \tilde p(x) / Z$, $\nabla_x \log p = \nabla_x \log \tilde p - \nabla_x
\log Z = \nabla_x \log \tilde p$, because $Z$ does not depend on $x$. A network can learn the score of a
density whose $Z$ nobody can compute. Second, for a Gaussian it is a straight line back to the mean:
for $\mathcal N(\mu, \sigma^2 I)$, $\log p(x) = -\lVert x - \mu \rVert^2 / (2 \sigma^2) + \text{const}$,
so $s(x) = -(x - \mu) / \sigma^2$.

Now take [the forward process](../forward/index.md)'s jump, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sigma_t\,
\varepsilon$ with $\sigma_t = \sqrt{1 - \bar\alpha_t}$. Given $x_0$, $x_t$ is Gaussian with mean
$\sqrt{\bar\alpha_t}\,x_0$ and variance $\sigma_t^2$, so the score of $q(x_t \mid x_0)$ at the sample
is $-(x_t - \sqrt{\bar\alpha_t}\,x_0)/\sigma_t^2 = -\varepsilon / \sigma_t$: **the noise, flipped and
scaled, is a score.** Autograd agrees, differentiating the Gaussian log-density with respect to $x_t$
([Autograd](../../tensors/autograd/index.md) taught `torch.autograd.grad`):

```pycon
>>> import torch
>>> from torchenstein.diffusion.forward import q_sample
>>> from torchenstein.diffusion.schedules import noise_schedule
>>> alphas_cumprod = noise_schedule().alphas_cumprod.double()     # (T,) = (1000,)
>>> _ = torch.manual_seed(0)
>>> x0, eps = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
>>> t = 300
>>> x_t = q_sample(x0, t, alphas_cumprod, eps).requires_grad_(True)          # (4, 2)
>>> sigma_t = (1 - alphas_cumprod[t]).sqrt()
>>> log_q = -(x_t - alphas_cumprod[t].sqrt() * x0).pow(2).sum() / (2 * sigma_t**2)
>>> (score,) = torch.autograd.grad(log_q, x_t)
>>> {"sigma_t": round(sigma_t.item(), 4), "score == -eps / sigma_t": torch.allclose(score, -eps / sigma_t)}
{'sigma_t': 0.7785, 'score == -eps / sigma_t': True}

```

## A density in torch, and its score by autograd

Our specimen is a **Gaussian mixture**: $K$ round Gaussian bumps, bump $k$ with **weight** $\pi_k$
(the weights are positive and sum to 1), mean $\mu_k$ and standard deviation $s_k$:

$$
p(x) = \sum_{k=1}^{K} \pi_k\, \mathcal N(x; \mu_k, s_k^2 I), \qquad
\log p(x) = \operatorname{logsumexp}_k \big(\log \pi_k + \log \mathcal N(x; \mu_k, s_k^2 I)\big) .
$$

`logsumexp` ($\log \sum_k e^{a_k}$, computed without overflow) keeps points far from every bump finite.
We met this mixture in [the sampling lesson](../sampling/index.md), where
[`GaussianMixture`][torchenstein.diffusion.sampling.GaussianMixture] holds `means` $(K, D)$, `stds`
$(K,)$ and `weights` $(K,)$, samples, and knows its exact denoiser. This lesson's
[`GaussianMixture`][torchenstein.diffusion.score.GaussianMixture] is that class, grown by what we teach
here: its `log_prob` writes the formula in torch and takes `torch.distributions`' method name, because
that is the real thing it must equal (`to_torch()` builds the same mixture as a `MixtureSameFamily`).
[`demo_mixture`][torchenstein.diffusion.score.demo_mixture] is the three-bump mixture in the plane this
lesson plays with.

```pycon
>>> from torchenstein.diffusion.score import GaussianMixture, demo_mixture
>>> mixture = demo_mixture()
>>> {"weights": mixture.weights.tolist(), "means": mixture.means.tolist(), "stds": mixture.stds.tolist()}
{'weights': [0.5, 0.3, 0.2], 'means': [[-1.5, -0.5], [1.5, -0.5], [0.0, 1.5]], 'stds': [0.35, 0.5, 0.3]}
>>> x = torch.randn(1000, 2, dtype=torch.float64)                 # (B, D): a batch of points
>>> mixture.log_prob(x).shape                                     # one log-density per point
torch.Size([1000])
>>> torch.testing.assert_close(mixture.log_prob(x), mixture.to_torch().log_prob(x))
>>> GaussianMixture(torch.zeros(2, 1), torch.ones(2), torch.tensor([0.5, 0.6]))
Traceback (most recent call last):
...
ValueError: weights must be positive and sum to 1, got [0.5, 0.6] (sum 1.1)

```

The score of the mixture, by hand: the gradient of a `logsumexp` is a `softmax`, so

$$
\nabla_x \log p(x) = \sum_k r_k(x)\, \frac{\mu_k - x}{s_k^2}, \qquad
r_k(x) = \frac{\pi_k\, \mathcal N(x; \mu_k, s_k^2 I)}{\sum_j \pi_j\, \mathcal N(x; \mu_j, s_j^2 I)},
$$

each bump's arrow weighted by the **responsibility** $r_k(x)$, the probability that $x$ came from bump
$k$. That is [`mixture_score`][torchenstein.diffusion.score.mixture_score].
[`autograd_score`][torchenstein.diffusion.score.autograd_score]`(log_prob, x)` gets the same arrows
from any log-density at all, by autograd:

```pycon
>>> from torchenstein.diffusion.score import autograd_score, mixture_score
>>> score = autograd_score(mixture.log_prob, x)                    # (B, D)
>>> torch.testing.assert_close(score, mixture_score(mixture, x), rtol=1e-12, atol=1e-12)
>>> torch.testing.assert_close(score, autograd_score(mixture.to_torch().log_prob, x), rtol=1e-12, atol=1e-12)
>>> {"shape": tuple(score.shape), "requires_grad": score.requires_grad, "grad_fn": score.grad_fn}
{'shape': (1000, 2), 'requires_grad': False, 'grad_fn': None}

```

**The `.sum()` trick.** `torch.autograd.grad` differentiates a *scalar*, and `log_prob` returns $B$ of
them. `autograd_score` differentiates their **sum**, and still every point gets its own gradient:

$$
\frac{\partial}{\partial x_i} \sum_{j=1}^{B} \log p(x_j) = \frac{\partial}{\partial x_i} \log p(x_i),
$$

because the term $\log p(x_j)$ does not depend on $x_i$ for $j \neq i$: the samples are computed
independently, so the gradient of the sum is the stack of the per-sample gradients, in one backward
pass. `torch.func.grad` differentiates one sample's log-density on its own, and `torch.func.vmap` maps
it over the batch: per-sample gradients by construction, and they agree. The trick holds only while the samples never meet: a function that mixes the
batch (a batch mean, a BatchNorm in training mode) breaks it.

```pycon
>>> one_point = lambda p: mixture.log_prob(p[None])[0]            # (D,) -> (): one sample at a time
>>> per_sample = torch.func.vmap(torch.func.grad(one_point))(x)
>>> torch.testing.assert_close(score, per_sample)
>>> mixes_the_batch = lambda p: mixture.log_prob(p - p.mean(0))    # every sample now sees the others
>>> torch.allclose(autograd_score(mixes_the_batch, x[:4]), torch.func.vmap(torch.func.grad(
...     lambda p: mixes_the_batch(p[None])[0]))(x[:4]))
False

```

`autograd_score` passes `create_graph=False` to `torch.autograd.grad` by default: the score comes back
as a plain tensor with no graph, which is what a sampler wants. Ask for `create_graph=True` only when
you mean to differentiate the score itself (a loss on the score, a Hessian); then it keeps a `grad_fn`.

```pycon
>>> autograd_score(mixture.log_prob, x[:3], create_graph=True).grad_fn is not None
True

```

## Langevin dynamics: sampling with nothing but a score

Give a particle the score and a little random kick at every step, and it wanders, climbing towards
probable places and jittering so as not to sit on the peaks. With step size $\eta$ and fresh noise
$z_i \sim \mathcal N(0, I)$, the **Langevin** update is

$$
x_{i+1} = x_i + \frac{\eta}{2}\, \nabla_x \log p(x_i) + \sqrt{\eta}\; z_i .
$$

For small $\eta$ and many steps the particles are distributed as $p$ (exactly so as $\eta \to 0$; with
finite $\eta$ a small bias remains), whatever they started from, and $Z$ was never needed.
[`langevin`][torchenstein.diffusion.score.langevin] runs many particles at once, under `torch.no_grad()`
(the score function may still use autograd: below). Started from $\mathcal N(0, I)$ on our mixture, it
places its particles *within* each bump beautifully, and gets the *weights* of the bumps wrong:

```pycon
>>> from torchenstein.diffusion.score import langevin
>>> generator = torch.Generator().manual_seed(0)
>>> start = torch.randn(1000, 2, dtype=torch.float64, generator=generator)
>>> samples = langevin(lambda p: autograd_score(mixture.log_prob, p), start, step_size=0.01,
...                    num_steps=200, generator=generator)
>>> bump = mixture.responsibilities(samples).argmax(-1)          # (B,): the bump each particle sits in
>>> {"bump 0 mean": [round(v, 1) for v in samples[bump == 0].mean(0).tolist()],
...  "bump 0 std": round(samples[bump == 0].std(0).mean().item(), 2)}
{'bump 0 mean': [-1.5, -0.5], 'bump 0 std': 0.35}
>>> {"weights found": [round(v, 3) for v in (torch.bincount(bump, minlength=3) / len(bump)).tolist()]}
{'weights found': [0.329, 0.44, 0.231]}

```

Within a bump the arrows are strong and Langevin mixes fast. Between bumps lies a valley of tiny
density that the score pushes every particle *away* from, so a particle almost never crosses: each stays
in the bump nearest its start, and the weights are those of the starting cloud's regions, not $\pi$.

## Annealed Langevin: noise first, detail last

Song and Ermon's cure (2019): first sample a *blurred* density, where the valleys are filled and
particles cross freely, then sharpen it step by step. The blurring is our forward process. Noise the
mixture to $\bar\alpha$, $x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1 - \bar\alpha}\,\varepsilon$, and bump $k$
becomes a Gaussian with mean $\sqrt{\bar\alpha}\,\mu_k$ and variance $\bar\alpha s_k^2 + 1 - \bar\alpha$
(variances of independent terms add), with its weight unchanged:

$$
p_t(x) = \sum_k \pi_k\, \mathcal N\!\big(x;\ \sqrt{\bar\alpha}\,\mu_k,\ (\bar\alpha s_k^2 + 1 - \bar\alpha)\, I\big) .
$$

[`GaussianMixture.noised`][torchenstein.diffusion.score.GaussianMixture.noised] returns it, and a test
proves it against samples pushed through [`q_sample`][torchenstein.diffusion.forward.q_sample].
[`annealed_langevin`][torchenstein.diffusion.score.annealed_langevin] runs a few Langevin steps at each
of a sequence of $\bar\alpha$ rising to 1 (the data), with a step size proportional to the narrowest
bump's variance at that level, $\eta = c\, \min_k (\bar\alpha s_k^2 + 1 - \bar\alpha)$:

```pycon
>>> from torchenstein.diffusion.score import annealed_langevin, annealing_levels
>>> levels = annealing_levels()                                  # alpha_bar, rising to 1
>>> {"levels": len(levels), "first": round(levels[0].item(), 3), "last": levels[-1].item()}
{'levels': 11, 'first': 0.029, 'last': 1.0}
>>> generator = torch.Generator().manual_seed(0)
>>> start = torch.randn(1000, 2, dtype=torch.float64, generator=generator)
>>> samples = annealed_langevin(mixture, start, levels, generator=generator)
>>> bump = mixture.responsibilities(samples).argmax(-1)
>>> {"weights found": [round(v, 3) for v in (torch.bincount(bump, minlength=3) / len(bump)).tolist()]}
{'weights found': [0.481, 0.319, 0.2]}
>>> {"mean": [round(v, 2) for v in samples.mean(0).tolist()], "true mean": [round(v, 2) for v in mixture.mean.tolist()],
...  "its standard error": [round(v, 3) for v in (mixture.covariance.diagonal() / 1000).sqrt().tolist()]}
{'mean': [-0.23, -0.1], 'true mean': [-0.3, -0.1], 'its standard error': [0.043, 0.028]}

```

The weights are right to within a few hundredths (the tests hold several seeds to within 0.06, and
plain Langevin misses by more than 0.1), and the mean is off by less than twice the standard error that
a thousand samples allow (the standard deviation along each axis, divided by $\sqrt{1000}$). This is, in
miniature, how a diffusion sampler works: start from noise, follow the score of the noised data from
high noise to low. [Sampling](../sampling/index.md) does it with a learned score and DDPM's own update.

![Five panels: the contours of the mixture blurred to alpha-bar 0.03, 0.2, 0.6, 0.9 and 1, with the Langevin particles at each level: one round cloud at first, splitting into three clusters in proportion 0.5, 0.3, 0.2 at the end.](plot_annealed_langevin.svg)

## Denoising score matching: a target you can compute

A network $s_\theta(x_t, t)$ cannot be trained on $\nabla \log p_t$ directly: nobody knows it for real
data. **Denoising score matching** (Vincent, 2011) trains it on the score of the forward step instead,
which we know: $-\varepsilon / \sigma_t$. Why does that work? The loss
$\mathbb E\, \lVert s_\theta(x_t) + \varepsilon / \sigma_t \rVert^2$ is a regression, and a regression is
minimised by the **conditional mean** of its target: the best $s_\theta(x_t)$ is the average of
$-\varepsilon / \sigma_t$ over all the $(x_0, \varepsilon)$ that could have produced this $x_t$. And that
average is the true score of $p_t$:

$$
\mathbb E\!\left[-\frac{\varepsilon}{\sigma_t} \,\middle|\, x_t\right] = \nabla_{x_t} \log p_t(x_t)
\qquad\Longleftrightarrow\qquad
\varepsilon^*(x_t) = \mathbb E[\varepsilon \mid x_t] = -\sigma_t\, \nabla_{x_t} \log p_t(x_t) .
$$

The right-hand form is the one [DDPM training](../ddpm/index.md) uses: the ideal noise predictor
$\varepsilon^*$ is minus $\sigma_t$ times the score of the noised data. We check it two ways at a few
points. **By Monte Carlo**, counting as Bayes would:
[`dsm_monte_carlo`][torchenstein.diffusion.score.dsm_monte_carlo] draws $N$ clean points $x_0^{(i)}$
from the data, weighs each by how likely it makes the given $x_t$, $w_i \propto q(x_t \mid x_0^{(i)})$
(the weights sum to 1), and averages the targets $-\varepsilon^{(i)}/\sigma_t$ with
$\varepsilon^{(i)} = (x_t - \sqrt{\bar\alpha}\,x_0^{(i)})/\sigma_t$. It returns the estimate and its
**standard error** (the standard deviation of an estimate, which shrinks like $1/\sqrt N$), so the
tolerance is derived from the sample count, not guessed. **Exactly**, by the same weighting done in closed
form: [`optimal_eps`][torchenstein.diffusion.score.optimal_eps] computes $\mathbb E[\varepsilon \mid x_t]$
from the posterior of $x_0$, which for a Gaussian mixture is again a Gaussian mixture.

```pycon
>>> from torchenstein.diffusion.score import dsm_monte_carlo, optimal_eps
>>> alpha_bar = torch.tensor(0.5, dtype=torch.float64)
>>> sigma = (1 - alpha_bar).sqrt()
>>> noised = mixture.noised(alpha_bar)                            # p_t, in closed form
>>> points = torch.tensor([[-1.0, 0.0], [0.5, 0.5], [1.5, -1.0]], dtype=torch.float64)   # (3, D): x_t
>>> true_score = autograd_score(noised.log_prob, points)
>>> estimate, standard_error = dsm_monte_carlo(mixture, points, alpha_bar, num_samples=20_000,
...                                            generator=torch.Generator().manual_seed(0))
>>> {"within 5 standard errors": bool(((estimate - true_score).abs() < 5 * standard_error).all()),
...  "largest standard error": round(standard_error.max().item(), 3)}
{'within 5 standard errors': True, 'largest standard error': 0.01}
>>> torch.testing.assert_close(optimal_eps(mixture, points, alpha_bar), -sigma * true_score)

```

The tests repeat it at more points and noise levels, and check that a hundred times more samples make
the standard error about ten times smaller.

## Where gradients flow in training

One training step of a noise predictor, as [DDPM training](../ddpm/index.md) does it, with a tiny MLP
(a stack of [`Linear`][torchenstein.nn.linear.Linear] layers and activations) that reads a point and its
noise level. Gradients must flow through the network's **parameters**, and nowhere else: the data, the
sampled timestep, the noise and the noisy input `x_t` built from them are all constants. None of them
requires grad, so `x_t` has no graph at all, and `backward` stops at the network's input. The target
is the noise itself: a constant too, nothing to detach.

```pycon
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2)).double()   # (x_t, level) -> eps
>>> x0 = mixture.sample(64, generator=torch.Generator().manual_seed(1))             # (B, D): data
>>> t = torch.randint(0, 1000, (64,))                                                # (B,): timesteps
>>> noise = torch.randn_like(x0)
>>> x_t = q_sample(x0, t, alphas_cumprod, noise)
>>> {name: (v.requires_grad, v.grad_fn) for name, v in (("x0", x0), ("t", t), ("noise", noise), ("x_t", x_t))}
{'x0': (False, None), 't': (False, None), 'noise': (False, None), 'x_t': (False, None)}
>>> prediction = model(torch.cat([x_t, (t[:, None] / 1000).double()], dim=1))      # (B, D)
>>> loss = (prediction - noise).pow(2).mean()
>>> loss.backward()
>>> {"every parameter has a .grad": all(p.grad is not None for p in model.parameters()),
...  "noise.grad": noise.grad, "x_t.grad": x_t.grad}
{'every parameter has a .grad': True, 'noise.grad': None, 'x_t.grad': None}
>>> t.requires_grad_(True)
Traceback (most recent call last):
...
RuntimeError: only Tensors of floating point dtype can require gradients

```

The timestep cannot even be asked: integers have no gradient. Its *sampling* is a random choice, and
no gradient flows through a random choice.

## Where they must not flow: sampling

Sampling is a long loop of network calls. Run it with gradients on and autograd records every one of
them, keeping each layer's inputs alive for a backward pass that never comes. Under `torch.no_grad()`
nothing is recorded; `torch.inference_mode()` also skips autograd's bookkeeping and is a little faster
([Autograd](../../tensors/autograd/index.md) compared the two). A sampler that needs a gradient *inside*
the loop (an autograd score, classifier guidance) can still have one under `no_grad`, by switching
recording back on locally with `torch.enable_grad()`, as `autograd_score` does. Under `inference_mode`
it cannot: `enable_grad` switches grad mode back on but not inference mode off, so nothing is recorded
and `torch.autograd.grad` finds no graph to differentiate.

```pycon
>>> with torch.no_grad():
...     kept = autograd_score(mixture.log_prob, x[:2])
>>> kept.shape
torch.Size([2, 2])
>>> with torch.inference_mode():
...     refused = autograd_score(mixture.log_prob, x[:2])
Traceback (most recent call last):
...
RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn

```

How much memory would backpropagating through the sampler cost? Each step of the toy sampler
$x \leftarrow x - 0.1\, f(x)$, with $f$ = `Linear(D, H)`, `SiLU`, `Linear(H, D)`, saves for backward the
first layer's input $(B, D)$, the SiLU's input $(B, H)$ and the second layer's input $(B, H)$: $B(D +
2H)$ numbers per step, whatever the step's index. (The weights are saved too, but they exist anyway.)
[`sampler_saved_bytes`][torchenstein.diffusion.score.sampler_saved_bytes] measures it with
`torch.autograd.graph.saved_tensors_hooks`, a pair of functions autograd calls on every tensor it saves
for backward, and [`sampler_saved_bytes_formula`][torchenstein.diffusion.score.sampler_saved_bytes_formula]
predicts it:

```pycon
>>> from torchenstein.diffusion.score import sampler_saved_bytes, sampler_saved_bytes_formula
>>> model = nn.Sequential(nn.Linear(2, 64), nn.SiLU(), nn.Linear(64, 2))
>>> x = torch.randn(128, 2)
>>> {n: (sampler_saved_bytes(model, x, n), sampler_saved_bytes_formula(128, 2, 64, n)) for n in (1, 2, 4, 8)}
{1: (66560, 66560), 2: (133120, 133120), 4: (266240, 266240), 8: (532480, 532480)}
>>> with torch.no_grad():
...     sampler_saved_bytes(model, x, 8)
0
>>> round(sampler_saved_bytes_formula(batch_size=16, dim=3 * 64 * 64, hidden=4 * 3 * 64 * 64,
...                                   num_steps=1000) / 2**30, 1)                         # GiB
6.6

```

Linear in $N$: doubling the steps doubles the bytes, exactly. Even this toy network on a batch of 16
small images would hold 6.6 GiB for a thousand steps; a real U-Net saves hundreds of activations per
step. That is why nobody backpropagates through a whole sampler: training never needs to, because
denoising score matching trains one random timestep at a time, and methods that must (fine-tuning a
sampler on a reward) backpropagate through a few steps, or recompute them.

## Classifier guidance: adding a gradient

To sample only from class $y$, we want the score of $p(x \mid y)$. Bayes' rule, $p(x \mid y) = p(y \mid x)
p(x) / p(y)$, and the log turns the product into a sum; $p(y)$ does not depend on $x$ and drops out of the
gradient:

$$
\nabla_x \log p(x \mid y) = \nabla_x \log p(x) + \nabla_x \log p(y \mid x) .
$$

The score of the data plus the gradient of a **classifier**'s log-probability. Dhariwal and Nichol (2021)
multiply the second term by a **guidance scale** $w$ to exaggerate the class; [Guidance](../guidance/index.md)
shows the classifier-free version most models use today. For our mixture the perfect classifier is known
exactly: the class is the bump, and $p(y = k \mid x)$ is the responsibility $r_k(x)$.
[`guided_score`][torchenstein.diffusion.score.guided_score] adds its gradient to the score, by autograd;
with $w = 1$ the sum must be exactly the score of bump $k$ alone, a Gaussian, since $p(x)\, r_k(x) =
\pi_k\, \mathcal N(x; \mu_k, s_k^2 I)$ and the constant $\pi_k$ drops out of the gradient:

```pycon
>>> from torchenstein.diffusion.score import guided_score
>>> x = torch.randn(500, 2, dtype=torch.float64)
>>> bump_2 = -(x - mixture.means[2]) / mixture.stds[2] ** 2          # the score of N(mu_2, s_2^2 I)
>>> torch.testing.assert_close(guided_score(mixture, x, y=2, guidance_scale=1.0), bump_2)
>>> generator = torch.Generator().manual_seed(0)
>>> samples = annealed_langevin(mixture, torch.randn(500, 2, dtype=torch.float64, generator=generator),
...                             levels, generator=generator,
...                             score=lambda m, p: guided_score(m, p, y=2, guidance_scale=1.0))
>>> {"share of samples in bump 2": round((mixture.responsibilities(samples).argmax(-1) == 2).double().mean().item(), 2)}
{'share of samples in bump 2': 1.0}

```

At every noise level the sampler uses the classifier *of that level*, $p_t(y \mid x_t)$ (here, the
responsibilities of the noised mixture): a classifier trained on clean data knows nothing of noisy inputs.
The second challenge writes it by hand.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the gradient of the mean"
    `torch.autograd.grad` refuses Hammer's batch of log-probabilities, so he reaches for `.mean()`, the
    habit of every loss he ever wrote. Each point's score comes back divided by the batch size: his
    Langevin drift is $B$ times too weak, and for a batch of 1000 his particles do little but diffuse.

    ```pycon
    >>> points = torch.randn(1000, 2, dtype=torch.float64, requires_grad=True)
    >>> torch.autograd.grad(mixture.log_prob(points), points)
    Traceback (most recent call last):
    ...
    RuntimeError: grad can be implicitly created only for scalar outputs
    >>> (hammer,) = torch.autograd.grad(mixture.log_prob(points).mean(), points)
    >>> (ours,) = torch.autograd.grad(mixture.log_prob(points).sum(), points)
    >>> {"ratio": round((ours / hammer).mean().item(), 6), "sum is the score": torch.allclose(
    ...     ours, mixture_score(mixture, points.detach()))}
    {'ratio': 1000.0, 'sum is the score': True}

    ```

    Sum, never average, when the samples are independent: the sum's gradient is each sample's own.

!!! hammer "Dr. Hammer's trap: sampling with the recorder on"
    Hammer's sampler calls his trained model in a plain loop, with gradients on. Every step the graph
    grows and memory with it (the section above measured it: linearly); at the end he cannot even plot
    his samples:

    ```pycon
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 2))
    >>> sample = torch.randn(8, 2)
    >>> for _ in range(10):
    ...     sample = sample - 0.1 * model(sample)
    >>> sample.grad_fn is not None
    True
    >>> sample.numpy()
    Traceback (most recent call last):
    ...
    RuntimeError: Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.
    >>> with torch.no_grad():
    ...     sample = torch.randn(8, 2)
    ...     for _ in range(10):
    ...         sample = sample - 0.1 * model(sample)
    >>> sample.numpy().shape
    (8, 2)

    ```

    The `detach()` the error suggests would let him plot, but the graph was already built and the
    memory already spent: switch recording off *around the loop*.

!!! hammer "Dr. Hammer's trap: a target with a graph"
    DDPM's target is the noise, a constant. But Hammer likes targets made by a network: the same model at
    a less noisy point, as consistency models and self-distillation do. He forgets to `detach()` it, so
    the gradient flows into the target too, and the model learns to move its target towards its
    prediction as much as the other way round: the cheapest way to lower that loss is to collapse both.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 2))
    >>> noisy, cleaner = torch.randn(32, 2), torch.randn(32, 2)
    >>> def weight_grad(detach):
    ...     target = model(cleaner)
    ...     target = target.detach() if detach else target
    ...     loss = (model(noisy) - target).pow(2).mean()
    ...     (grad,) = torch.autograd.grad(loss, model[0].weight)
    ...     return grad
    >>> constant = model(cleaner).detach().clone()                    # a target that truly is a constant
    >>> (as_constant,) = torch.autograd.grad((model(noisy) - constant).pow(2).mean(), model[0].weight)
    >>> {"detached == constant target": torch.allclose(weight_grad(True), as_constant),
    ...  "forgotten == constant target": torch.allclose(weight_grad(False), as_constant)}
    {'detached == constant target': True, 'forgotten == constant target': False}

    ```

!!! hammer "Dr. Hammer's trap: the sign of the score"
    A noise predictor points *towards the noise*; the score points *away* from it, $s = -\varepsilon /
    \sigma_t$. Hammer plugs his noise predictions into Langevin without the minus sign, and his particles
    climb *down* the density, straight out of the laboratory window:

    ```pycon
    >>> generator = torch.Generator().manual_seed(0)
    >>> start = torch.randn(500, 2, dtype=torch.float64, generator=generator)
    >>> eps_of = lambda p: optimal_eps(mixture, p, torch.tensor(0.9, dtype=torch.float64))
    >>> sigma = 0.1 ** 0.5
    >>> runs = {name: langevin(fn, start, step_size=0.01, num_steps=100, generator=generator)
    ...         for name, fn in (("hammer: +eps / sigma", lambda p: eps_of(p) / sigma),
    ...                          ("ours: -eps / sigma", lambda p: -eps_of(p) / sigma))}
    >>> {name: round(run.norm(dim=1).mean().item(), 1) for name, run in runs.items()}   # mean distance from 0
    {'hammer: +eps / sigma': 4.8, 'ours: -eps / sigma': 1.5}

    ```

## Challenges

**1. Tweedie's denoiser.** Rearranged, the optimal noise predictor gives the best guess of the clean
point: $\mathbb E[x_0 \mid x_t] = \big(x_t + (1 - \bar\alpha)\, \nabla \log p_t(x_t)\big) / \sqrt{\bar\alpha}$
(Tweedie's formula). Write `tweedie_x0(log_prob_t, x_t, alpha_bar)` that takes the noised density's
log-probability function, points of shape $(B, D)$ and a scalar $\bar\alpha$ in $(0, 1]$, gets the score
by autograd, and returns $\mathbb E[x_0 \mid x_t]$, shape $(B, D)$, with no graph attached (no `grad_fn`,
even when `x_t` requires grad). The checker compares it with the exact posterior mean,
[`posterior_mean_x0`][torchenstein.diffusion.score.posterior_mean_x0].

**2. A classifier for noisy points.** Write `noisy_classifier_log_prob(mixture, x_t, y, alpha_bar)`: the
log-probability $\log p_t(y \mid x_t)$ that the point $x_t$, noised to $\bar\alpha$, came from bump $y$,
shape $(B,)$, for integer labels `y` of shape $(B,)$ or a single int. The checker adds its gradient to the
score of the noised mixture and expects the score of the noised bump $y$ alone, at several noise levels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from torchenstein.diffusion import sampling
from torchenstein.diffusion.forward import _describe
from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


class GaussianMixture(sampling.GaussianMixture):
    r"""The sampling lesson's mixture of round Gaussians, plus its log-density, with ``torch.distributions``' names.

    Everything a mixture is (``means``, ``stds``, ``weights``, ``sample``, ``mean``, ``covariance``, the exact
    ``denoiser``) is inherited from [`GaussianMixture`][torchenstein.diffusion.sampling.GaussianMixture];
    this lesson adds only what it teaches: ``log_prob`` by ``logsumexp``, the ``responsibilities``, the
    mixture ``noised`` to $\bar\alpha$, and ``to_torch``, the real thing ``log_prob`` must equal.

    Args:
        means: the means $\mu_k$, shape ``(K, D)``.
        stds: the standard deviations $s_k$ of the round bumps, shape ``(K,)``, positive.
        weights: the mixture weights $\pi_k$, shape ``(K,)``, positive, summing to 1; ``None`` for equal.

    Raises:
        TypeError: if an argument is not a floating-point tensor.
        ValueError: if the shapes disagree, a weight or std is not positive or the weights do not sum to 1.

    Examples:
        >>> m = GaussianMixture(torch.tensor([[0.0], [2.0]]), torch.ones(2), torch.tensor([0.25, 0.75]))
        >>> m.log_prob(torch.zeros(3, 1)).shape
        torch.Size([3])
    """

    def component_log_probs(self, x: Tensor) -> Tensor:
        r"""$\log \pi_k + \log \mathcal N(x; \mu_k, s_k^2 I)$ for every point and bump, shape ``(B, K)``."""
        _check_points("x", x, self.means.size(1))
        weights, means, stds = (p.to(device=x.device, dtype=x.dtype) for p in (self.weights, self.means, self.stds))
        D = means.size(1)
        # (B, 1, D) - (K, D) broadcasts to (B, K, D): every point against every mean.
        squared = (x[:, None, :] - means).pow(2).sum(dim=-1)  # (B, K)
        log_normal = -squared / (2 * stds**2) - D * stds.log() - 0.5 * D * math.log(2 * math.pi)  # (B, K)
        return weights.log() + log_normal

    def log_prob(self, x: Tensor) -> Tensor:
        """The log-density of every point, shape ``(B,)``, as ``MixtureSameFamily.log_prob`` computes it."""
        # logsumexp subtracts the largest term before exponentiating: far from every bump, no -inf.
        return torch.logsumexp(self.component_log_probs(x), dim=-1)

    def responsibilities(self, x: Tensor) -> Tensor:
        r"""$r_k(x)$, the probability that each point came from each bump, shape ``(B, K)``."""
        return torch.softmax(self.component_log_probs(x), dim=-1)

    def noised(self, alpha_bar: float | Tensor) -> GaussianMixture:
        r"""The law of $\sqrt{\bar\alpha}\,x_0 + \sqrt{1 - \bar\alpha}\,\varepsilon$: means shrink, variances grow."""
        alpha_bar = torch.as_tensor(alpha_bar, dtype=self.means.dtype)
        _check_alpha_bar(alpha_bar)
        # Variances of independent terms add: alpha_bar * s^2 from the data, 1 - alpha_bar from the noise.
        stds = (alpha_bar * self.stds**2 + 1 - alpha_bar).sqrt()
        return GaussianMixture(alpha_bar.sqrt() * self.means, stds, self.weights)

    def to_torch(self) -> torch.distributions.MixtureSameFamily:
        """The same mixture built from ``torch.distributions``: the real thing ``log_prob`` must equal."""
        from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

        scale = self.stds[:, None].expand_as(self.means)  # (K, D): the same std along every axis
        return MixtureSameFamily(Categorical(probs=self.weights), Independent(Normal(self.means, scale), 1))


def demo_mixture(dtype: torch.dtype = torch.float64) -> GaussianMixture:
    """The lesson's three bumps in the plane, weights 0.5, 0.3 and 0.2.

    Examples:
        >>> demo_mixture().means.shape
        torch.Size([3, 2])
    """
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=dtype)
    means = torch.tensor([[-1.5, -0.5], [1.5, -0.5], [0.0, 1.5]], dtype=dtype)
    return GaussianMixture(means, torch.tensor([0.35, 0.5, 0.3], dtype=dtype), weights)


def autograd_score(log_prob: Callable[[Tensor], Tensor], x: Tensor, *, create_graph: bool = False) -> Tensor:
    r"""The score $\nabla_x \log p(x)$ of every point, by ``torch.autograd.grad``.

    Args:
        log_prob: maps points of shape ``(B, D)`` to their log-densities, shape ``(B,)``; each output must
            depend on its own point only (the ``.sum()`` trick needs independent samples).
        x: the points, a floating-point tensor of shape ``(B, D)``.
        create_graph: keep the graph of the score, to differentiate it again.

    Returns:
        The scores, shape ``(B, D)``, in ``x``'s dtype; without a graph unless ``create_graph``.

    Raises:
        TypeError: if ``x`` is not a floating-point tensor.
        ValueError: if ``x`` is not 2-D or ``log_prob`` does not return one value per point.

    Examples:
        >>> autograd_score(lambda p: -0.5 * p.pow(2).sum(-1), torch.tensor([[1.0, -2.0]]))   # N(0, I): -x
        tensor([[-1.,  2.]])
    """
    _check_points("x", x)
    # enable_grad: a sampler runs under no_grad, and the score still needs autograd to record, locally.
    with torch.enable_grad():
        # A fresh leaf that requires grad; under create_graph, keep x's own history so it can flow on.
        point = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        log_p = log_prob(point)  # (B,)
        if log_p.shape != x.shape[:1]:
            raise ValueError(f"log_prob must return one value per point, shape ({x.size(0)},), got {tuple(log_p.shape)}")
        # The sum's gradient is every point's own gradient: log p(x_j) does not depend on x_i for j != i.
        (score,) = torch.autograd.grad(log_p.sum(), point, create_graph=create_graph)
    return score


def mixture_score(mixture: GaussianMixture, x: Tensor) -> Tensor:
    r"""The closed-form score of a Gaussian mixture, $\sum_k r_k(x) (\mu_k - x) / s_k^2$, shape ``(B, D)``.

    Examples:
        >>> m = demo_mixture()
        >>> x = torch.randn(5, 2, dtype=torch.float64)
        >>> torch.allclose(mixture_score(m, x), autograd_score(m.log_prob, x))
        True
    """
    r = mixture.responsibilities(x)  # (B, K)
    means, stds = mixture.means.to(x), mixture.stds.to(x)
    # Each bump's own score, (mu_k - x) / s_k^2, for every point: (B, K, D).
    bump_scores = (means - x[:, None, :]) / stds[:, None] ** 2
    return (r[:, :, None] * bump_scores).sum(dim=1)


def langevin(
    score: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    step_size: float,
    num_steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Unadjusted Langevin dynamics, $x \leftarrow x + \frac{\eta}{2} s(x) + \sqrt{\eta}\, z$, for every particle at once.

    Args:
        score: maps particles ``(B, D)`` to their scores ``(B, D)``.
        x: the starting particles, shape ``(B, D)``.
        step_size: $\eta > 0$.
        num_steps: how many steps, at least 0.
        generator: where the kicks $z$ are drawn from.

    Returns:
        The particles after ``num_steps`` steps, shape ``(B, D)``, without a graph.

    Raises:
        ValueError: if ``step_size`` is not positive or ``num_steps`` is negative.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> out = langevin(lambda p: -p, torch.zeros(2000, 1), step_size=0.1, num_steps=100, generator=g)
        >>> round(out.std().item(), 1)                       # N(0, 1): standard deviation about 1
        1.0
    """
    _check_points("x", x)
    _check_langevin(step_size, num_steps)
    # Sampling records nothing; a score that needs autograd turns it back on locally (enable_grad).
    with torch.no_grad():
        for _ in range(num_steps):
            kick = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + 0.5 * step_size * score(x) + math.sqrt(step_size) * kick
    return x


def annealing_levels(num_levels: int = 10, *, snr_min: float = 0.03, snr_max: float = 100.0) -> Tensor:
    r"""Noise levels for annealed Langevin: $\bar\alpha$ for SNRs spaced evenly in log, then 1 (the data).

    The signal-to-noise ratio $\bar\alpha / (1 - \bar\alpha)$ runs geometrically from ``snr_min`` to
    ``snr_max``, so $\bar\alpha = \operatorname{SNR} / (1 + \operatorname{SNR})$; float64, shape
    ``(num_levels + 1,)``.

    Examples:
        >>> annealing_levels(2, snr_min=1.0, snr_max=3.0).tolist()
        [0.5, 0.75, 1.0]
    """
    if isinstance(num_levels, bool) or not isinstance(num_levels, Integral) or num_levels < 1:
        raise ValueError(f"num_levels must be an int of at least 1, got {num_levels!r}")
    if not 0 < snr_min <= snr_max:
        raise ValueError(f"snr_min and snr_max must satisfy 0 < snr_min <= snr_max, got {snr_min!r} and {snr_max!r}")
    snrs = torch.logspace(math.log10(snr_min), math.log10(snr_max), num_levels, dtype=torch.float64)
    return torch.cat([snrs / (1 + snrs), torch.ones(1, dtype=torch.float64)])


def annealed_langevin(
    mixture: GaussianMixture,
    x: Tensor,
    alpha_bars: Sequence[float] | Tensor,
    *,
    num_steps: int = 20,
    step_scale: float = 0.2,
    generator: torch.Generator | None = None,
    score: Callable[[GaussianMixture, Tensor], Tensor] | None = None,
) -> Tensor:
    r"""Langevin at each noise level in turn, on the mixture noised to that $\bar\alpha$.

    Args:
        mixture: the clean density $p_0$.
        x: the starting particles, shape ``(B, D)`` (noise: $\mathcal N(0, I)$ is $p_t$ for $\bar\alpha = 0$).
        alpha_bars: the levels, usually rising to 1.
        num_steps: Langevin steps per level.
        step_scale: $c$ in $\eta = c \min_k \operatorname{var}_k$, the narrowest bump's variance at the level.
        generator: where the kicks are drawn from.
        score: ``score(noised_mixture, x)``; by default the autograd score of the noised mixture.

    Returns:
        The particles after the last level, shape ``(B, D)``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> annealed_langevin(demo_mixture(), torch.randn(4, 2, dtype=torch.float64), [0.5, 1.0], generator=g).shape
        torch.Size([4, 2])
    """
    score = _noised_autograd_score if score is None else score
    for alpha_bar in torch.as_tensor(alpha_bars, dtype=torch.float64).tolist():
        level = mixture.noised(alpha_bar)  # p_t in closed form
        # The step must be small against the narrowest bump, or a particle jumps straight across it.
        step_size = step_scale * level.stds.min().item() ** 2
        x = langevin(lambda p, level=level: score(level, p), x, step_size=step_size, num_steps=num_steps,
                     generator=generator)
    return x


def _noised_autograd_score(level: GaussianMixture, x: Tensor) -> Tensor:
    """The default score of `annealed_langevin`: autograd on the noised mixture's log-density."""
    return autograd_score(level.log_prob, x)


def posterior_mean_x0(mixture: GaussianMixture, x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    r"""$\mathbb E[x_0 \mid x_t]$ in closed form, for $x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\varepsilon$.

    Given bump $k$, $x_0$ and $x_t$ are jointly Gaussian, and the usual conditioning formula gives
    $\mathbb E[x_0 \mid x_t, k] = \mu_k + \frac{\sqrt{\bar\alpha}\, s_k^2}{v_k}(x_t - \sqrt{\bar\alpha}\,\mu_k)$
    with $v_k = \bar\alpha s_k^2 + 1 - \bar\alpha$; the bumps are then weighted by the responsibilities of
    the noised mixture.

    Examples:
        >>> m = demo_mixture()
        >>> x_t = torch.randn(3, 2, dtype=torch.float64)
        >>> torch.allclose(posterior_mean_x0(m, x_t, 1.0), x_t)           # no noise: x_t is x_0
        True
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    noised = mixture.noised(alpha_bar)
    r = noised.responsibilities(x_t)  # (B, K): p_t(bump k | x_t)
    a = alpha_bar.sqrt()
    means, stds = mixture.means.to(x_t), mixture.stds.to(x_t)
    variance = a**2 * stds**2 + 1 - alpha_bar  # (K,)
    gain = (a * stds**2 / variance)[:, None]  # (K, 1)
    per_bump = means + gain * (x_t[:, None, :] - a * means)  # (B, K, D)
    return (r[:, :, None] * per_bump).sum(dim=1)


def optimal_eps(mixture: GaussianMixture, x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    r"""The ideal noise prediction $\mathbb E[\varepsilon \mid x_t] = (x_t - \sqrt{\bar\alpha}\,\mathbb E[x_0 \mid x_t]) / \sigma_t$.

    Args:
        mixture: the clean density.
        x_t: noisy points, shape ``(B, D)``.
        alpha_bar: $\bar\alpha$ in $[0, 1)$ (at 1 there is no noise to predict).

    Examples:
        >>> m, x_t = demo_mixture(), torch.randn(4, 2, dtype=torch.float64)
        >>> sigma = 0.5 ** 0.5
        >>> torch.allclose(optimal_eps(m, x_t, 0.5), -sigma * mixture_score(m.noised(0.5), x_t))
        True
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    if not float(alpha_bar) < 1:
        raise ValueError(f"alpha_bar must be below 1 for there to be noise to predict, got {float(alpha_bar)!r}")
    return (x_t - alpha_bar.sqrt() * posterior_mean_x0(mixture, x_t, alpha_bar)) / (1 - alpha_bar).sqrt()


def dsm_monte_carlo(
    mixture: GaussianMixture,
    x_t: Tensor,
    alpha_bar: float | Tensor,
    *,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Estimate $\mathbb E[-\varepsilon / \sigma_t \mid x_t]$ by weighting data samples by $q(x_t \mid x_0)$.

    Self-normalised importance sampling: draw $x_0^{(i)} \sim p_0$, give each the weight $w_i \propto
    q(x_t \mid x_0^{(i)})$ (summing to 1), and average the DSM targets $-\varepsilon^{(i)} / \sigma_t$.

    Args:
        mixture: the clean density $p_0$.
        x_t: the noisy points to estimate at, shape ``(B, D)``.
        alpha_bar: $\bar\alpha$ in $(0, 1)$.
        num_samples: $N$, the number of clean samples (shared by all points).
        generator: where the samples are drawn from.

    Returns:
        ``(estimate, standard_error)``, both of shape ``(B, D)``: the standard error is the delta-method
        one of a self-normalised estimate, $\sqrt{\sum_i w_i^2 (f_i - \hat f)^2}$, and shrinks like $1/\sqrt N$.

    Examples:
        >>> m = demo_mixture()
        >>> est, se = dsm_monte_carlo(m, torch.zeros(1, 2, dtype=torch.float64), 0.5, num_samples=1000,
        ...                           generator=torch.Generator().manual_seed(0))
        >>> est.shape, bool((se > 0).all())
        (torch.Size([1, 2]), True)
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    if not 0 < float(alpha_bar) < 1:
        raise ValueError(f"alpha_bar must lie strictly between 0 and 1, got {float(alpha_bar)!r}")
    sigma = (1 - alpha_bar).sqrt()
    x0 = mixture.sample(num_samples, generator=generator).to(x_t)  # (N, D)
    # The noise that would turn each x0 into each x_t: (B, N, D).
    eps = (x_t[:, None, :] - alpha_bar.sqrt() * x0) / sigma
    # log q(x_t | x0) up to a constant is -|eps|^2 / 2; softmax normalises the weights over the N samples.
    weights = torch.softmax(-0.5 * eps.pow(2).sum(dim=-1), dim=1)[:, :, None]  # (B, N, 1)
    targets = -eps / sigma  # (B, N, D): the DSM target of every pair
    estimate = (weights * targets).sum(dim=1)  # (B, D)
    standard_error = (weights.pow(2) * (targets - estimate[:, None, :]).pow(2)).sum(dim=1).sqrt()
    return estimate, standard_error


def sampler_saved_bytes(model: torch.nn.Module, x: Tensor, num_steps: int, *, step_size: float = 0.1) -> int:
    r"""Run ``num_steps`` steps of $x \leftarrow x - \eta f(x)$ and count the bytes autograd saves for backward.

    Tensors that live in a parameter's memory are not counted: they exist whether or not autograd keeps
    them. Under ``torch.no_grad()`` nothing is saved and the count is 0.

    Args:
        model: the network $f$.
        x: the starting batch.
        num_steps: the number of sampler steps, at least 0.
        step_size: $\eta$.

    Examples:
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.SiLU(), torch.nn.Linear(4, 2))
        >>> sampler_saved_bytes(net, torch.randn(3, 2), 1)      # 3 * (2 + 4 + 4) float32 numbers
        120
    """
    _check_langevin(step_size, num_steps)
    parameter_memory = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: list[int] = []

    def pack(tensor: Tensor) -> Tensor:
        # Autograd calls this on every tensor it saves for backward; we only write down its size.
        if tensor.untyped_storage().data_ptr() not in parameter_memory:
            saved.append(tensor.numel() * tensor.element_size())
        # A detached alias (same memory, no history): handing back an output itself would close a reference
        # cycle through its own grad_fn, and only the garbage collector could free the graph.
        return tensor.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        for _ in range(num_steps):
            x = x - step_size * model(x)
    return sum(saved)


def sampler_saved_bytes_formula(batch_size: int, dim: int, hidden: int, num_steps: int, *, element_size: int = 4) -> int:
    r"""What ``sampler_saved_bytes`` measures for ``Linear(dim, hidden), SiLU, Linear(hidden, dim)``: $N B (D + 2H)$ numbers.

    Per step: the first layer's input $(B, D)$, the SiLU's input $(B, H)$ and the second layer's input
    $(B, H)$, each ``element_size`` bytes a number (4 for float32).

    Examples:
        >>> sampler_saved_bytes_formula(3, 2, 4, 1)
        120
    """
    return num_steps * batch_size * (dim + 2 * hidden) * element_size


def classifier_log_prob(mixture: GaussianMixture, x: Tensor, y: int | Tensor) -> Tensor:
    r"""The Bayes classifier of the mixture: $\log p(y \mid x) = \log r_y(x)$, shape ``(B,)``.

    Examples:
        >>> m = demo_mixture()
        >>> classifier_log_prob(m, m.means, torch.tensor([0, 1, 2])).exp().round(decimals=2).tolist()
        [1.0, 1.0, 1.0]
    """
    log_r = torch.log_softmax(mixture.component_log_probs(x), dim=-1)  # (B, K)
    y = _check_labels(y, x.size(0), mixture.weights.size(0), x.device)
    return log_r.gather(1, y[:, None]).squeeze(1)


def guided_score(mixture: GaussianMixture, x: Tensor, *, y: int | Tensor, guidance_scale: float = 1.0) -> Tensor:
    r"""Classifier guidance: $\nabla_x \log p(x) + w\, \nabla_x \log p(y \mid x)$, by autograd, shape ``(B, D)``.

    Examples:
        >>> m = demo_mixture()
        >>> x = torch.randn(4, 2, dtype=torch.float64)
        >>> torch.allclose(guided_score(m, x, y=0, guidance_scale=0.0), mixture_score(m, x))
        True
    """
    return autograd_score(lambda p: mixture.log_prob(p) + guidance_scale * classifier_log_prob(mixture, p, y), x)


def plot_annealed_langevin(*, num_particles: int = 400, seed: int = 0) -> Figure:
    """Draw the noised mixture's contours and the annealed Langevin particles at five of its levels.

    Args:
        num_particles: how many particles to run.
        seed: the seed of their starting noise and kicks.

    Returns:
        A figure with five panels, from heavy noise to the data.

    Examples:
        >>> fig = plot_annealed_langevin(num_particles=50)
        >>> len(fig.axes)
        5
    """
    if isinstance(num_particles, bool) or not isinstance(num_particles, Integral) or num_particles < 1:
        raise ValueError(f"num_particles must be an int of at least 1, got {num_particles!r}")
    mixture = demo_mixture()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_particles, 2, dtype=torch.float64, generator=generator)
    shown = (0.03, 0.2, 0.6, 0.9, 1.0)
    grid = torch.linspace(-3.2, 3.2, 80, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    flat = torch.stack([gx.flatten(), gy.flatten()], dim=1)  # (80 * 80, 2)
    fig, axes = new_figure(1, len(shown), width=2.1 * len(shown), height=2.5)
    previous = 0.0
    for ax, alpha_bar in zip(axes, shown, strict=True):
        # The levels between the last panel's and this one, then this one: the same annealing, in stages.
        stage = [a for a in annealing_levels().tolist() if previous < a < alpha_bar] + [alpha_bar]
        x = annealed_langevin(mixture, x, stage, generator=generator)
        previous = alpha_bar
        density = mixture.noised(alpha_bar).log_prob(flat).exp().reshape(80, 80)
        ax.contour(gx.numpy(), gy.numpy(), density.numpy(), levels=6, colors=PALETTE[6], linewidths=0.6)
        ax.plot(x[:, 0].numpy(), x[:, 1].numpy(), "o", markersize=1.8, markeredgewidth=0, color=PALETTE[0],
                alpha=0.7)
        ax.set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal", title=r"$\bar\alpha$ = " + f"{alpha_bar:g}")
        ax.tick_params(labelsize=7)
    return fig


def tweedie_x0(log_prob_t: Callable[[Tensor], Tensor], x_t: Tensor, alpha_bar: float | Tensor) -> Tensor:
    r"""Challenge solution: Tweedie's formula, $\mathbb E[x_0 \mid x_t] = (x_t + (1 - \bar\alpha) \nabla \log p_t) / \sqrt{\bar\alpha}$.

    Args:
        log_prob_t: the log-density of the noised data, ``(B, D) -> (B,)``.
        x_t: noisy points, shape ``(B, D)``.
        alpha_bar: $\bar\alpha$ in $(0, 1]$.

    Returns:
        The posterior means, shape ``(B, D)``, with no graph attached.

    Examples:
        >>> m = demo_mixture()
        >>> x_t = torch.randn(4, 2, dtype=torch.float64)
        >>> torch.allclose(tweedie_x0(m.noised(0.3).log_prob, x_t, 0.3), posterior_mean_x0(m, x_t, 0.3))
        True
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x_t.dtype)
    if not 0 < float(alpha_bar) <= 1:
        raise ValueError(f"alpha_bar must lie in (0, 1], got {float(alpha_bar)!r}")
    score = autograd_score(log_prob_t, x_t)  # (B, D), no graph
    return (x_t.detach() + (1 - alpha_bar) * score) / alpha_bar.sqrt()


def check_tweedie_x0(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``tweedie_x0``."""
    g = torch.Generator().manual_seed(0)
    one_d = GaussianMixture(torch.tensor([[-2.0], [1.0]], dtype=torch.float64),
                            torch.tensor([0.5, 1.0], dtype=torch.float64), torch.tensor([0.3, 0.7], dtype=torch.float64))
    cases = ((demo_mixture(), 0.5, 64), (demo_mixture(), 0.05, 16), (demo_mixture(), 0.99, 16), (one_d, 0.3, 32),
             (demo_mixture(), 1.0, 8))
    for mixture, alpha_bar, B in cases:
        x_t = 2 * torch.randn(B, mixture.means.size(1), generator=g, dtype=torch.float64)
        label = f"alpha_bar={alpha_bar}, x_t of shape {tuple(x_t.shape)}"
        try:
            got = candidate(mixture.noised(alpha_bar).log_prob, x_t, alpha_bar)
        except Exception as err:
            raise AssertionError(f"tweedie_x0 raised {type(err).__name__}: {err} for {label}") from err
        assert isinstance(got, Tensor) and got.shape == x_t.shape, (
            f"for {label} expected a tensor of shape {tuple(x_t.shape)}, got {getattr(got, 'shape', type(got))}"
        )
        expected = posterior_mean_x0(mixture, x_t, alpha_bar)
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (
            f"wrong E[x0 | x_t] for {label}: expected (x_t + (1 - alpha_bar) * score) / sqrt(alpha_bar), "
            "with the score of every point from the SUM of the log-probabilities (not the mean)"
        )
    x_t = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    got = candidate(demo_mixture().noised(0.5).log_prob, x_t, 0.5)
    assert got.grad_fn is None and not got.requires_grad, (
        "the result must carry no graph, even for x_t that requires grad: detach x_t, or build a fresh leaf"
    )
    with torch.no_grad():
        try:
            inside = candidate(demo_mixture().noised(0.5).log_prob, x_t.detach(), 0.5)
        except RuntimeError as err:
            raise AssertionError(
                f"tweedie_x0 failed under torch.no_grad() ({err}): wrap the autograd call in torch.enable_grad()"
            ) from err
    assert torch.allclose(inside, got.detach()), "tweedie_x0 must give the same result under torch.no_grad()"


def noisy_classifier_log_prob(mixture: GaussianMixture, x_t: Tensor, y: int | Tensor, alpha_bar: float | Tensor) -> Tensor:
    r"""Challenge solution: $\log p_t(y \mid x_t)$, the Bayes classifier of the mixture noised to $\bar\alpha$.

    Examples:
        >>> m = demo_mixture()
        >>> x_t = torch.randn(6, 2, dtype=torch.float64)
        >>> noisy_classifier_log_prob(m, x_t, 1, 0.5).shape
        torch.Size([6])
    """
    return classifier_log_prob(mixture.noised(alpha_bar), x_t, y)


def check_noisy_classifier_log_prob(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``noisy_classifier_log_prob``."""
    g = torch.Generator().manual_seed(0)
    mixture = demo_mixture()
    for alpha_bar, y in ((0.1, 0), (0.5, 2), (0.9, 1), (1.0, 2), (0.3, torch.tensor([0, 1, 2, 0, 1, 2, 2, 1]))):
        x_t = 2 * torch.randn(8, 2, generator=g, dtype=torch.float64)
        label = f"alpha_bar={alpha_bar}, y={y.tolist() if isinstance(y, Tensor) else y}"
        try:
            got = candidate(mixture, x_t, y, alpha_bar)
        except Exception as err:
            raise AssertionError(f"noisy_classifier_log_prob raised {type(err).__name__}: {err} for {label}") from err
        assert isinstance(got, Tensor) and got.shape == (8,), (
            f"for {label} expected one log-probability per point, shape (8,), got {getattr(got, 'shape', type(got))}"
        )
        assert bool((got <= 1e-12).all()), f"log-probabilities must be at most 0, got {got.max().item()} for {label}"
        noised = mixture.noised(alpha_bar)
        def log_joint(p, noised=noised, y=y, alpha_bar=alpha_bar):  # log p_t(x) + log p_t(y | x)
            return noised.log_prob(p) + candidate(mixture, p, y, alpha_bar)

        guided = autograd_score(log_joint, x_t)
        labels = torch.as_tensor(y).expand(8)
        bump = -(x_t - noised.means[labels]) / noised.stds[labels, None] ** 2  # the noised bump y's own score
        assert torch.allclose(guided, bump, rtol=1e-8, atol=1e-8), (
            f"for {label}: score of p_t plus the gradient of log p_t(y | x_t) must be the score of the noised bump "
            "y alone; use the responsibilities of the NOISED mixture (means * sqrt(alpha_bar), variances "
            "alpha_bar * s^2 + 1 - alpha_bar), in log space"
        )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_points(name: str, x: object, dim: int | None = None) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {_describe(x)}")
    if x.dim() != 2 or (dim is not None and x.size(1) != dim):
        wanted = f"(B, {dim})" if dim is not None else "(B, D)"
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(x.shape)}")


def _check_alpha_bar(alpha_bar: Tensor) -> None:
    if alpha_bar.dim() != 0 or not 0 <= float(alpha_bar) <= 1:
        raise ValueError(f"alpha_bar must be a single number in [0, 1], got {alpha_bar.tolist()!r}")


def _check_langevin(step_size: object, num_steps: object) -> None:
    if isinstance(step_size, bool) or not isinstance(step_size, Real) or not step_size > 0:
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, Integral) or num_steps < 0:
        raise ValueError(f"num_steps must be an int of at least 0, got {num_steps!r}")


def _check_labels(y: object, batch_size: int, num_classes: int, device: torch.device) -> Tensor:
    """Return ``y`` as int64 labels of shape ``(B,)``, one per point."""
    if isinstance(y, Integral) and not isinstance(y, bool):
        y = torch.tensor(int(y))
    if not isinstance(y, Tensor) or y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"y must be an int or an integer tensor, got {_describe(y)}")
    if y.dim() > 1 or (y.dim() == 1 and y.size(0) != batch_size):
        raise ValueError(f"y must be one label or one per point, shape () or ({batch_size},), got {tuple(y.shape)}")
    if y.numel() and not (0 <= int(y.min()) and int(y.max()) < num_classes):
        raise ValueError(f"y must hold labels from 0 to {num_classes - 1}, got {y.tolist()}")
    return y.to(device=device, dtype=torch.int64).expand(batch_size)
