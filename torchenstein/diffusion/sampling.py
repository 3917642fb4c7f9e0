r"""
# Sampling: Walking Backwards Out of the Noise

!!! torchenstein "The Professor speaks"
    Destroying a masterpiece took one line of algebra. Tonight we *un*-destroy one: we start from a
    bucket of pure static and walk it back, a thousand careful steps, until it is data again. And we will
    not cheat with a half-trained network whose mistakes hide ours: for points drawn from a mixture of
    Gaussians, I know the *perfect* denoiser in closed form. Feed it to our sampler, and out must come
    the data itself. Then we prove our step equal, bit for bit, to the one inside `diffusers`.

**You will learn to**

- derive the **posterior** $q(x_{t-1} \mid x_t, x_0)$, the forward process run backwards, and its mean
  coefficients `posterior_mean_coef1`, `posterior_mean_coef2` and variance $\tilde\beta_t$;
- take one **reverse step** of DDPM: guess $x_0$ from the model's output (noise, sample or $v$), clip it,
  plug it into the posterior, add noise of variance $\tilde\beta_t$ or $\beta_t$, and none at the end;
- write the **exact denoiser** of a Gaussian mixture and sample with it from pure noise, checking the
  result against the data with a tolerance derived from the sample size;
- compute the exact law of DDPM's output for Gaussian data, and see why even a perfect model does not
  give perfect samples in few steps;
- sample in fewer steps, with diffusers' three `timestep_spacing` rules;
- dodge four of Dr. Hammer's traps.

## Running the film backwards

[The forward process](../forward/index.md) noised data $x_0$ one step at a time,
$q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1 - \beta_t}\,x_{t-1}, \beta_t I)$, until $x_{T-1}$ (the sample at
the last timestep, counted from zero as in code) was almost exactly standard normal noise.
**Generating** means going the other way: draw $x_{T-1}$ from $\mathcal N(0, I)$, then draw $x_{T-2}$ given
$x_{T-1}$, and so on down to a clean sample. Each of those draws needs the **reverse process**
$p(x_{t-1} \mid x_t)$, the law of the less noisy sample given the noisier one; drawing a chain of samples,
each from a law that depends on the one before, is called **ancestral sampling**.

The true $p(x_{t-1} \mid x_t)$ depends on the whole data distribution, which is what we do not know.
DDPM (Ho et al., 2020) makes two moves. First, for small $\beta_t$ the reverse step is itself nearly
Gaussian, so it is modelled as one, $\mathcal N(\mu(x_t, t), \sigma_t^2 I)$. Second, its mean is built from
a quantity a network can learn: the **denoiser** of [The denoiser](../denoiser/index.md), a network
$\varepsilon_\theta(x_t, t)$ trained (in [DDPM training](../ddpm/index.md)) to predict the noise in $x_t$.
This lesson is the sampler that turns such a network into samples. It needs nothing but a callable
`model(x_t, t)`, so we can test it with a model we never train.

Everything here runs on one schedule, DDPM's linear one from [Noise schedules](../schedules/index.md):

```pycon
>>> import torch
>>> from torchenstein.diffusion.schedules import noise_schedule
>>> schedule = noise_schedule()                               # DDPMScheduler()'s betas, float32
>>> betas, alphas_cumprod = schedule.betas, schedule.alphas_cumprod
>>> len(alphas_cumprod)
1000

```

## The posterior: the forward process, run backwards

If we *knew* $x_0$, running the forward process backwards would be exact algebra. Write $t'$ for the
timestep the step lands on ($t' = t - 1$ for now) and $\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$ for the
variance the forward process added between them. By Bayes' rule,

$$
q(x_{t'} \mid x_t, x_0) \propto q(x_t \mid x_{t'})\, q(x_{t'} \mid x_0)
= \mathcal N(x_t;\ \sqrt{1 - \beta}\,x_{t'},\ \beta I)\;
  \mathcal N(x_{t'};\ \sqrt{\bar\alpha_{t'}}\,x_0,\ (1 - \bar\alpha_{t'}) I).
$$

Both factors are Gaussian in $x_{t'}$, so their product is one. Its **precision** (one over its variance)
is the sum of theirs, $\frac{1 - \beta}{\beta} + \frac{1}{1 - \bar\alpha_{t'}} = \frac{1 - \bar\alpha_t}
{\beta\,(1 - \bar\alpha_{t'})}$, and its mean is the precision-weighted mean of the two. Completing the
square gives

$$
q(x_{t'} \mid x_t, x_0) = \mathcal N\big(\underbrace{\tfrac{\sqrt{\bar\alpha_{t'}}\,\beta}{1 - \bar\alpha_t}}_{\texttt{posterior\_mean\_coef1}}\, x_0
+ \underbrace{\tfrac{\sqrt{1 - \beta}\,(1 - \bar\alpha_{t'})}{1 - \bar\alpha_t}}_{\texttt{posterior\_mean\_coef2}}\, x_t,\;
\tilde\beta\, I\big), \qquad \tilde\beta = \frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}\,\beta .
$$

The names are those of the DDPM authors' code. At $t = 0$ the step lands on the data itself, noised by
nothing: $\bar\alpha_{t'} = 1$ there, so $\tilde\beta = 0$ and the mean is $x_0$, whatever $x_t$ was.
[`posterior`][torchenstein.diffusion.sampling.posterior]`(alphas_cumprod, timestep, prev_timestep)`
computes the four numbers, with diffusers' operations in diffusers' order. Is the algebra right? For a
scalar, $(x_{t'}, x_t)$ given $x_0$ are jointly Gaussian, and conditioning a joint Gaussian is a textbook
formula (mean plus covariance over variance times the surprise); the two agree:

```pycon
>>> from torchenstein.diffusion.sampling import posterior
>>> ac = alphas_cumprod.double()
>>> t, x0, x_t = 500, 0.7, -0.3
>>> c = posterior(ac, t)                                      # prev_timestep defaults to t - 1
>>> alpha_t = ac[t] / ac[t - 1]                               # x_t = sqrt(alpha_t) x_t' + noise
>>> var_prev, var_t = 1 - ac[t - 1], 1 - ac[t]                # variances of x_t' and x_t given x0
>>> cov = alpha_t.sqrt() * var_prev                           # their covariance
>>> mean = ac[t - 1].sqrt() * x0 + cov / var_t * (x_t - ac[t].sqrt() * x0)
>>> variance = var_prev - cov**2 / var_t
>>> {"mean": torch.allclose(c.posterior_mean_coef1 * x0 + c.posterior_mean_coef2 * x_t, mean),
...  "variance": torch.allclose(c.posterior_variance, variance)}
{'mean': True, 'variance': True}
>>> {"posterior_variance at t = 0": posterior(alphas_cumprod, 0).posterior_variance.item(),
...  "coef1 at t = 0": posterior(alphas_cumprod, 0).posterior_mean_coef1.item()}
{'posterior_variance at t = 0': 0.0, 'coef1 at t = 0': 1.0}

```

## One reverse step

We do not know $x_0$; the model guesses it. A model that predicts the noise implies a clean sample, by
undoing [`q_sample`][torchenstein.diffusion.forward.q_sample] (the first challenge of the forward process,
[`recover_x0`][torchenstein.diffusion.forward.recover_x0]):
$\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon) / \sqrt{\bar\alpha_t}$. diffusers calls it
`pred_original_sample`, and knows three kinds of model, its `prediction_type`: `"epsilon"` (the noise),
`"sample"` (the clean sample itself) and `"v_prediction"` (the "velocity"
$v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$, Salimans and Ho, 2022).
[`predict_x0`][torchenstein.diffusion.sampling.predict_x0] turns each into $\hat x_0$. One DDPM step,
[`ddpm_step`][torchenstein.diffusion.sampling.ddpm_step], is then four lines:

1. $\hat x_0$ from the model's output;
2. optionally clip it to the data's range, `clip_sample` and `clip_sample_range` (on by default in
   diffusers, for images scaled to $[-1, 1]$);
3. the posterior mean with $\hat x_0$ in place of $x_0$:
   $\mu = \texttt{coef1}\cdot\hat x_0 + \texttt{coef2}\cdot x_t$;
4. add noise $\sigma\,z$, $z \sim \mathcal N(0, I)$, with $\sigma^2$ by `variance_type`: `"fixed_small"`,
   the posterior's own $\tilde\beta$ (diffusers' default), or `"fixed_large"`, the forward step's $\beta$.
   On the last step, which lands on the data, add nothing.

Ho et al. tried both variances and found them equally good; they are the extremes of what makes sense:
$\tilde\beta$ is exact when the data is a single point, $\beta$ when the data is standard normal. The step
returns both $x_{t'}$ and $\hat x_0$, as diffusers' `DDPMSchedulerOutput` does, and draws its noise as
diffusers does, from a `torch.Generator` (or takes the noise you pass):

```pycon
>>> from torchenstein.diffusion.sampling import ddpm_step
>>> _ = torch.manual_seed(0)
>>> x_t, eps_hat = torch.randn(4, 2), torch.randn(4, 2)       # a batch of 4 points, a model's output
>>> out = ddpm_step(eps_hat, 999, x_t, alphas_cumprod, generator=torch.Generator().manual_seed(0))
>>> {"prev_sample": tuple(out.prev_sample.shape), "x0_hat in [-1, 1]": bool(out.pred_original_sample.abs().max() <= 1)}
{'prev_sample': (4, 2), 'x0_hat in [-1, 1]': True}
>>> last = ddpm_step(eps_hat, 0, x_t, alphas_cumprod, variance_type="fixed_large", noise=torch.randn(4, 2))
>>> torch.equal(last.prev_sample, last.pred_original_sample)   # the last step: x0_hat, no noise
True

```

## A denoiser we never have to train

What would a *perfect* denoiser predict? Given $x_t$, the noise in it is not determined (many pairs of
$x_0$ and $\varepsilon$ give the same $x_t$), so the best guess in squared error is the average over all of
them, the **conditional expectation** $E[\varepsilon \mid x_t]$. Training with the squared error pushes a
network towards exactly this function, and for some data it has a closed form.

Take data from a **mixture of Gaussians**: pick one of $K$ components $k$ with probability $\pi_k$, then
draw $x_0 \sim \mathcal N(\mu_k, \sigma^2 I)$. Noised, component $k$ becomes
$\mathcal N(\sqrt{\bar\alpha_t}\,\mu_k, s_t^2 I)$ with $s_t^2 = \bar\alpha_t \sigma^2 + 1 - \bar\alpha_t$
(variances add). Within one component, $(x_0, \varepsilon, x_t)$ are jointly Gaussian and the
conditional expectation is linear; across components it is weighted by $w_k(x_t)$, the probability that
$x_t$ came from component $k$ (Bayes again: $\pi_k$ times the density of $x_t$ under component $k$,
normalised by a softmax):

$$
E[\varepsilon \mid x_t] = \sqrt{1 - \bar\alpha_t}\,\sum_k w_k(x_t)\,\frac{x_t - \sqrt{\bar\alpha_t}\,\mu_k}{s_t^2},
\qquad
E[x_0 \mid x_t] = \sum_k w_k(x_t) \Big(\mu_k + \frac{\sqrt{\bar\alpha_t}\,\sigma^2}{s_t^2}\,(x_t - \sqrt{\bar\alpha_t}\,\mu_k)\Big).
$$

[`GaussianMixture`][torchenstein.diffusion.sampling.GaussianMixture] holds such a distribution, with
one standard deviation $s_k$ per component (replace $\sigma$ by $s_k$ inside the sums; our common $\sigma$
is the special case), and its `denoiser(alphas_cumprod, prediction_type)` is that formula, computed in
float64, as a `model(x_t, t)` predicting any of the three targets.
[`GaussianMixtureDenoiser`][torchenstein.diffusion.sampling.GaussianMixtureDenoiser] wraps it as an
`nn.Module` with one common $\sigma$, the signature of a trained denoiser, `model(x_t, t)`. Our data:
eight Gaussians on a ring of radius 0.6, each of standard deviation 0.08, so that nearly every point lies
inside $[-1, 1]$, as images do.

```pycon
>>> from torchenstein.diffusion.sampling import GaussianMixtureDenoiser, ring_of_gaussians
>>> means = ring_of_gaussians(num_modes=8, radius=0.6)        # (K, D) = (8, 2)
>>> model = GaussianMixtureDenoiser(means, 0.08, alphas_cumprod)
>>> data = model.sample_data(500, torch.Generator().manual_seed(1))
>>> {"means": tuple(means.shape), "data": tuple(data.shape), "in [-1, 1]": round((data.abs() <= 1).float().mean().item(), 3)}
{'means': (8, 2), 'data': (500, 2), 'in [-1, 1]': 1.0}

```

It is the best possible denoiser, so no network can beat its squared error. Check that on noised data:
an ε-prediction of zero (the best guess if $x_t$ is ignored) errs by the noise's variance, 1; the exact
denoiser errs by much less.

```pycon
>>> t = torch.full((500,), 300)
>>> noise = torch.randn(500, 2, generator=torch.Generator().manual_seed(2))
>>> x_t = alphas_cumprod[300].sqrt() * data + (1 - alphas_cumprod[300]).sqrt() * noise
>>> {"predict zero": round(noise.pow(2).mean().item(), 2), "exact denoiser": round((model(x_t, t) - noise).pow(2).mean().item(), 2)}
{'predict zero': 0.96, 'exact denoiser': 0.1}

```

## The whole walk: from noise to data

[`ddpm_sample`][torchenstein.diffusion.sampling.ddpm_sample] draws $x_{T-1} \sim \mathcal N(0, I)$ and
calls `ddpm_step` at every timestep from $T - 1$ down to 0. It hands the model its timestep as diffusers'
pipelines do, one int64 timestep per sample, shape $(B,)$, on the samples' device; everything random comes
from one generator, in the order diffusers' `DDPMPipeline` draws it. With the exact denoiser, the samples
must be the data. How closely? As in the forward process, with a tolerance fixed by the sample size:
5 **standard errors** (the standard deviation of an estimate). The mean of $N$ points of variance $v$
has standard error $\sqrt{v / N}$; the count of points near each mode is **binomial** (each of $N$ points
lands there with probability $1/8$), with standard deviation $\sqrt{N \cdot \frac18 \cdot \frac78}$; and the
spread of points around their nearest mode, a standard deviation estimated from $2N$ numbers, has
standard error about $\sigma / \sqrt{2 \cdot 2N}$.

```pycon
>>> from torchenstein.diffusion.sampling import ddpm_sample
>>> N = 500
>>> samples = ddpm_sample(model, (N, 2), alphas_cumprod, generator=torch.Generator().manual_seed(0))
>>> nearest = torch.cdist(samples.double(), means).argmin(dim=1)          # (N,): each point's mode
>>> spread = (samples.double() - means[nearest]).std().item()             # around the modes
>>> variance = 0.6**2 / 2 + 0.08**2                                      # of each coordinate of the data
>>> {"mean": bool((samples.mean(0).abs() < 5 * (variance / N) ** 0.5).all()),
...  "modes": bool(((torch.bincount(nearest, minlength=8) - N / 8).abs() < 5 * (N / 8 * 7 / 8) ** 0.5).all()),
...  "spread": abs(spread - 0.08) < 5 * 0.08 / (4 * N) ** 0.5}
{'mean': True, 'modes': True, 'spread': True}
>>> {"spread": round(spread, 3), "5 standard errors of it": round(5 * 0.08 / (4 * N) ** 0.5, 3)}
{'spread': 0.078, '5 standard errors of it': 0.009}

```

Here is the walk, every point moved by the same sampler: pure noise at timestep 999, a cloud that
shrinks through 300 and 100, a ring by 50, eight blobs by 15, and after the last step eight tight clusters
that look like the data beside them.

![Seven scatter plots of 400 points: a wide round cloud of noise at timestep 999 and 300, a smaller cloud at 100, a fuzzy ring at 50, eight blurred blobs on the ring at 15, then the generated samples, eight tight clusters on a ring, beside the data, which looks the same.](plot_reverse_process.svg)

## A perfect model, an imperfect sampler

"Looks the same" is not "is the same". DDPM's reverse step is Gaussian with a *fixed* variance, and the
true $p(x_{t-1} \mid x_t)$ is only nearly Gaussian, with a variance that depends on the data. For a
single Gaussian, $x_0 \sim \mathcal N(m, \sigma^2)$, we can do better than a sample: the exact $\hat x_0$
is then affine in $x_t$, every unclipped step is $x_{t'} = A\,x_t + b + \sigma_t z$, and the law of the
output, Gaussian, can be carried from $\mathcal N(0, 1)$ through every step without drawing a single number.
[`ddpm_output_law`][torchenstein.diffusion.sampling.ddpm_output_law] does it:

```pycon
>>> from torchenstein.diffusion.sampling import ddpm_output_law, inference_timesteps
>>> for kind in ("fixed_small", "fixed_large"):
...     print(kind, {n: round(ddpm_output_law(0.5, 0.08, alphas_cumprod, inference_timesteps(n),
...                                           variance_type=kind)[1], 4) for n in (1000, 100, 10)})
fixed_small {1000: 0.0763, 100: 0.0608, 10: 0.0204}
fixed_large {1000: 0.0807, 100: 0.0933, 10: 0.3202}
>>> [round(v, 4) for v in ddpm_output_law(0.5, 1.0, alphas_cumprod, variance_type="fixed_large")]
[0.5, 0.9999]

```

Data of standard deviation 0.08 comes out with 0.0763 with $\tilde\beta$ and 0.0807 with $\beta$, after 1000
steps: the two variances bracket the truth, and the gap is what our 500 samples above were too few to see
(5 standard errors of their spread were 0.009). With fewer steps each Gaussian step is a worse fit, and
the gap opens: in 10 steps, a quarter of the spread with $\tilde\beta$, four times it with $\beta$. For
data as wide as the noise, $\beta$ is exact, as Ho et al. observed. A perfect denoiser is therefore not
enough for few-step sampling; better *samplers* are the subject of the next lesson.

## Fewer steps

A thousand calls of the network per sample is slow. diffusers' `set_timesteps(num_inference_steps)`
picks a falling subset of the timesteps, by one of three rules, its `timestep_spacing` (Lin et al., 2024,
Table 2): `"leading"`, multiples of $\lfloor T / n \rfloor$ counted up from 0 (plus `steps_offset`);
`"trailing"`, counted down from $T - 1$ in strides of $T / n$, rounded; and `"linspace"`, $n$ evenly spaced
numbers from 0 to $T - 1$, rounded. [`inference_timesteps`][torchenstein.diffusion.sampling.inference_timesteps]
returns the same:

```pycon
>>> for spacing in ("leading", "trailing", "linspace"):
...     print(f"{spacing:9}", inference_timesteps(5, 1000, spacing).tolist())
leading   [800, 600, 400, 200, 0]
trailing  [999, 799, 599, 399, 199]
linspace  [999, 749, 500, 250, 0]

```

The step from $t$ now lands on $t'$, the *next timestep in the list*, not $t - 1$; after the last one it
lands on the data, $t' = -1$. Nothing else changes: `posterior(alphas_cumprod, t, prev_t)` already uses the
variance of the whole jump, $\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$, never `betas[t]`. "Leading"
never starts at the noisiest timestep (its first is 800, not 999), and "trailing" ends at 199, so its
last step jumps all the way from 199 to the data:

```pycon
>>> jump = posterior(alphas_cumprod, 800, 600)
>>> {"beta of the jump 800 -> 600": round(jump.beta.item(), 4), "betas[800]": round(betas[800].item(), 4)}
{'beta of the jump 800 -> 600': 0.941, 'betas[800]': 0.016}

```

## Against the real thing: `DDPMScheduler.step`

Our step does what diffusers' `DDPMScheduler.step(model_output, timestep, sample, generator=...)` does, in
the same order, in `alphas_cumprod`'s dtype. The tests (`tests/test_sampling.py`) prove:

- **one step**, at timesteps from 999 down to 0, for the linear, scaled-linear and `squaredcos_cap_v2`
  schedules, both variance types, all three prediction types, clipping on, off and to another range,
  with the noise drawn from the same generator seed or passed in: `prev_sample` and
  `pred_original_sample` **bit for bit** equal in float32, and within $10^{-12}$ in float64 (with the
  scheduler's `alphas_cumprod` handed over in float64, so that both compute in float64);
- **whole trajectories**, diffusers' `DDPMPipeline` loop against `ddpm_sample` with the same model and
  the same generator seed (so the same starting noise and the same noise at every step), all 1000 steps
  and fewer steps with every spacing and a `steps_offset`, across the schedules, variance and
  prediction types: every intermediate sample bit for bit equal in float32, within $10^{-12}$ in float64
  for the shorter ones; where the timesteps end above 0 (next note), the final samples within $10^{-6}$
  in float32 and $10^{-9}$ in float64;
- `inference_timesteps` equal to `set_timesteps` for hundreds of $(T, n)$ pairs and every spacing.

The lesson never imports diffusers (it takes seconds); only the tests do.

!!! note "Where it differs from diffusers"
    diffusers adds noise whenever the timestep is above 0, so a list of timesteps that ends above 0
    ("trailing" spacing, or "leading" with a `steps_offset`) gets noise on its last step, the one that
    lands on the data. With `"fixed_small"` that noise is scaled by $\sqrt{10^{-20}}$ (diffusers clamps the
    variance, 0 there, to $10^{-20}$) and is harmless; with `"fixed_large"` it is the full $\sqrt\beta$ of the
    jump: after trailing steps ending at 99, noise of standard deviation 0.32 on the final samples. Ours
    adds no noise on the last step, ever (DDPM's Algorithm 2). A test pins the difference: diffusers' result
    is ours plus that noise. Bad arguments raise `ValueError`/`TypeError` here, where diffusers often
    computes on.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: $\tilde\beta$ with `alphas_cumprod[t - 1]` at $t = 0$"
    Hammer copies the posterior variance from the paper, $\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 -
    \bar\alpha_t}\beta_t$, and writes `alphas_cumprod[t - 1]`. At $t = 0$ Python reads index $-1$ as the
    *last* timestep, whose $\bar\alpha$ is nearly 0: his final step, which should add no noise at all, adds
    noise of variance about 1 and dissolves every sample he has just made. Before timestep 0 lies the
    data, $\bar\alpha = 1$: the DDPM code keeps an array `alphas_cumprod_prev` that starts with 1.

    ```pycon
    >>> t = 0
    >>> hammer = (1 - alphas_cumprod[t - 1]) / (1 - alphas_cumprod[t]) * betas[t]
    >>> alphas_cumprod_prev = torch.cat([torch.ones(1), alphas_cumprod[:-1]])  # (T,): 1 before timestep 0
    >>> ours = (1 - alphas_cumprod_prev[t]) / (1 - alphas_cumprod[t]) * betas[t]
    >>> {"hammer's variance at t = 0": round(hammer.item(), 4), "the true one": ours.item(),
    ...  "posterior()": posterior(alphas_cumprod, 0).posterior_variance.item()}
    {"hammer's variance at t = 0": 0.9998, 'the true one': 0.0, 'posterior()': 0.0}

    ```

!!! hammer "Dr. Hammer's trap: noise on the last step"
    Hammer's loop adds $\sigma_t z$ on every step, including the one that lands on the data: "one more
    bit of noise cannot hurt". With all 1000 steps and `"fixed_small"` it cannot, $\tilde\beta_0 = 0$. But
    with `"fixed_large"` and ten trailing steps, the last step jumps from 99 to the data and its $\beta$ is
    large: the finished samples get noise of standard deviation 0.32, four times the width of each of his
    eight modes. The last step returns the posterior mean, $\hat x_0$ itself, and nothing else.

    ```pycon
    >>> inference_timesteps(10, 1000, "trailing")[-1].item()
    99
    >>> jump = posterior(alphas_cumprod, 99, -1)                 # the last step: 99 -> the data
    >>> {"hammer's noise std": round(jump.beta.sqrt().item(), 2), "the true one": jump.posterior_variance.sqrt().item(),
    ...  "the data's std": 0.08}
    {"hammer's noise std": 0.32, 'the true one': 0.0, "the data's std": 0.08}

    ```

!!! hammer "Dr. Hammer's trap: clipping $\hat x_0$, or not"
    Early in the walk, $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon) / \sqrt{\bar\alpha_t}$
    divides by $\sqrt{\bar\alpha_{999}} = 0.0064$: an error of 0.05 in a trained model's $\hat\varepsilon$
    becomes an error of 7.9 in $\hat x_0$, for images that live in $[-1, 1]$. Clipping to the data's range
    (`clip_sample=True`, diffusers' default) is free insurance there. Hammer learnt that lesson too well: he
    now clips everything, including his data set of points on a ring of radius 2, not in $[-1, 1]$ at all.
    Every $\hat x_0$ is squashed into the square, and his samples come out on a ring of radius 1.3. Clip to
    the range your data really has (`clip_sample_range`), or not at all.

    ```pycon
    >>> imperfect = lambda x_t, t: model(x_t, t) + 0.05          # a trained model, slightly off
    >>> x_t = torch.randn(500, 2, generator=torch.Generator().manual_seed(3))
    >>> t999 = torch.full((500,), 999)
    >>> unclipped = ddpm_step(imperfect(x_t, t999), 999, x_t, alphas_cumprod, clip_sample=False)
    >>> clipped = ddpm_step(imperfect(x_t, t999), 999, x_t, alphas_cumprod, clip_sample=True)
    >>> {"sqrt(alpha_bar_999)": round(alphas_cumprod[999].sqrt().item(), 4),
    ...  "largest |x0_hat|, unclipped": round(unclipped.pred_original_sample.abs().max().item(), 1),
    ...  "clipped": clipped.pred_original_sample.abs().max().item()}
    {'sqrt(alpha_bar_999)': 0.0064, 'largest |x0_hat|, unclipped': 7.9, 'clipped': 1.0}
    >>> wide = GaussianMixtureDenoiser(ring_of_gaussians(radius=2.0), 0.1, alphas_cumprod)
    >>> def mean_radius(clip_sample):
    ...     x = ddpm_sample(wide, (500, 2), alphas_cumprod, num_inference_steps=50, clip_sample=clip_sample,
    ...                     generator=torch.Generator().manual_seed(0))
    ...     return round(x.norm(dim=1).mean().item(), 1)
    >>> {"data radius": 2.0, "clip_sample=True": mean_radius(True), "clip_sample=False": mean_radius(False)}
    {'data radius': 2.0, 'clip_sample=True': 1.3, 'clip_sample=False': 2.0}

    ```

!!! hammer "Dr. Hammer's trap: timesteps of the wrong dtype or device"
    Hammer builds his own few-step schedule with `torch.linspace(999, 0, 5)`: floats. Indexing
    `alphas_cumprod` with a float tensor fails, and his "fix", `.long()`, truncates where diffusers rounds.
    His model lives on the GPU and he passes it `torch.tensor(t)`, made on the CPU: "Expected all
    tensors to be on the same device". The sampler makes each timestep once, as an int64 tensor of shape
    $(B,)$ on the samples' device, `torch.full((B,), t, dtype=torch.int64, device=x.device)`, and
    `ddpm_step` refuses what it cannot index with:

    ```pycon
    >>> hammer_timesteps = torch.linspace(999, 0, 5)
    >>> alphas_cumprod[hammer_timesteps[1]]
    Traceback (most recent call last):
    ...
    IndexError: tensors used as indices must be long, int, byte or bool tensors
    >>> {"truncated": hammer_timesteps.long().tolist(), "diffusers' linspace": inference_timesteps(5, 1000, "linspace").tolist()}
    {'truncated': [999, 749, 499, 249, 0], "diffusers' linspace": [999, 749, 500, 250, 0]}
    >>> ddpm_step(eps_hat, hammer_timesteps[1], torch.randn(4, 2), alphas_cumprod)
    Traceback (most recent call last):
    ...
    TypeError: timestep must be an int or a 0-d integer tensor (one timestep for the batch), got a tensor of dtype torch.float32 and shape ()

    ```

## Challenges

**1. Every posterior at once.** Training code and many samplers precompute the posterior for every
single step $t \to t - 1$. Write `posterior_arrays(alphas_cumprod)` returning a
[`Posterior`][torchenstein.diffusion.sampling.Posterior] of four tensors of shape $(T,)$ whose entry $t$
equals `posterior(alphas_cumprod, t)`, without a Python loop. Mind timestep 0.

**2. Any prediction, back to noise.** Write `predict_epsilon(model_output, timestep, sample, alphas_cumprod,
prediction_type)`: the noise $\hat\varepsilon$ implied by a model of any of the three prediction types (the
inverse of what `predict_x0` does for the clean sample). Hint: for `"v_prediction"`, $(x_t, v)$ is
$(x_0, \varepsilon)$ rotated, and a rotation is undone without dividing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from torchenstein.diffusion.ddpm import PREDICTION_TYPES
from torchenstein.diffusion.forward import _describe
from torchenstein.lab import PALETTE, new_figure, progress

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

VARIANCE_TYPES = ("fixed_small", "fixed_large")
"""The reverse-step variances ``ddpm_step`` draws with, by diffusers' ``variance_type`` names."""

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")
"""How ``inference_timesteps`` spreads fewer steps over the schedule, by diffusers' ``timestep_spacing`` names."""


class Posterior(NamedTuple):
    r"""The forward process run backwards, $q(x_{t'} \mid x_t, x_0)$, named as in the DDPM code."""

    posterior_mean_coef1: Tensor
    r"""The weight of $x_0$ in the mean, $\sqrt{\bar\alpha_{t'}}\,\beta / (1 - \bar\alpha_t)$."""
    posterior_mean_coef2: Tensor
    r"""The weight of $x_t$ in the mean, $\sqrt{\bar\alpha_t / \bar\alpha_{t'}}\,(1 - \bar\alpha_{t'}) / (1 - \bar\alpha_t)$."""
    posterior_variance: Tensor
    r"""$\tilde\beta = \beta\,(1 - \bar\alpha_{t'}) / (1 - \bar\alpha_t)$: diffusers' ``"fixed_small"``."""
    beta: Tensor
    r"""$\beta = 1 - \bar\alpha_t / \bar\alpha_{t'}$, the noise the jump from $t'$ to $t$ adds: ``"fixed_large"``."""


def posterior(alphas_cumprod: Tensor, timestep: int | Tensor, prev_timestep: int | Tensor | None = None) -> Posterior:
    r"""The coefficients of $q(x_{t'} \mid x_t, x_0)$ for the jump back from ``timestep`` to ``prev_timestep``.

    Computed with the operations of ``DDPMScheduler.step``, in the same order and in ``alphas_cumprod``'s
    dtype, so that they are equal to diffusers' bit for bit.

    Args:
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        timestep: $t$, counted from 0.
        prev_timestep: $t' < t$, where the step lands; ``-1`` means the data itself ($\bar\alpha = 1$).
            ``None`` means ``timestep - 1``.

    Returns:
        A ``Posterior`` of four 0-d tensors.

    Raises:
        TypeError: if ``alphas_cumprod`` is not a 1-D floating-point tensor or a timestep is not an integer.
        ValueError: if ``timestep`` is outside ``0..T-1`` or ``prev_timestep`` outside ``-1..timestep-1``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> posterior(alphas_cumprod, 0).posterior_variance.item()   # the last step: nothing left to add
        0.0
    """
    t, prev_t = _check_timesteps(alphas_cumprod, timestep, prev_timestep)
    alpha_prod_t = alphas_cumprod[t]
    # Before timestep 0 lies the data itself, noised by nothing: alpha_bar is exactly 1 there. Not
    # alphas_cumprod[-1], which Python reads as the *last* timestep (Dr. Hammer's first trap).
    one = torch.ones((), dtype=alphas_cumprod.dtype, device=alphas_cumprod.device)
    alpha_prod_t_prev = alphas_cumprod[prev_t] if prev_t >= 0 else one
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    # The jump from t' to t keeps alpha_bar_t / alpha_bar_t' of the variance: one beta, even across skipped steps.
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev
    current_beta_t = 1 - current_alpha_t
    posterior_mean_coef1 = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
    posterior_mean_coef2 = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
    posterior_variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t
    return Posterior(posterior_mean_coef1, posterior_mean_coef2, posterior_variance, current_beta_t)


def predict_x0(
    model_output: Tensor, timestep: int | Tensor, sample: Tensor, alphas_cumprod: Tensor, prediction_type: str = "epsilon"
) -> Tensor:
    r"""The model's guess of the clean sample, from whatever it predicts: diffusers' ``pred_original_sample``.

    Args:
        model_output: the model's prediction at ``timestep``, of ``sample``'s shape.
        timestep: $t$, counted from 0 (one timestep for the whole batch).
        sample: $x_t$.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        prediction_type: ``"epsilon"`` (the noise), ``"sample"`` ($x_0$ itself) or ``"v_prediction"``
            ($v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$).

    Returns:
        $\hat x_0$, of ``sample``'s shape.

    Raises:
        ValueError: if ``prediction_type`` is not one of the three, or the shapes differ.
        TypeError: if a tensor is not floating point or ``timestep`` is not an integer.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> x0, eps = torch.ones(1, 2), torch.zeros(1, 2)
        >>> x_t = 0.6 * x0 + 0.8 * eps                              # timestep 1: sqrt(0.36), sqrt(0.64)
        >>> predict_x0(eps, 1, x_t, alphas_cumprod)
        tensor([[1., 1.]])
    """
    t = _check_step_tensors(model_output, timestep, sample, alphas_cumprod, prediction_type)
    alpha_prod_t = alphas_cumprod.to(sample.device)[t]
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        # Undo the jump: x_0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar), formula (15) of DDPM.
        return (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
    if prediction_type == "sample":
        return model_output
    # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0 and x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps,
    # a rotation of (x_0, eps): rotating back needs no division, even where alpha_bar is 0.
    return (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output


class StepOutput(NamedTuple):
    """What one reverse step returns, named as diffusers' ``DDPMSchedulerOutput``."""

    prev_sample: Tensor
    """The sample at the previous timestep: the input of the next step, or the result after the last."""
    pred_original_sample: Tensor
    r"""$\hat x_0$, clipped if asked: the step's guess of the clean sample."""


def ddpm_step(
    model_output: Tensor,
    timestep: int | Tensor,
    sample: Tensor,
    alphas_cumprod: Tensor,
    *,
    prev_timestep: int | Tensor | None = None,
    variance_type: str = "fixed_small",
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> StepOutput:
    r"""One reverse step of DDPM, from $x_t$ to $x_{t'}$: ``DDPMScheduler.step`` from scratch.

    The defaults are ``DDPMScheduler``'s. The noise is drawn as diffusers draws it
    (``torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype)``, on the
    generator's device, then moved), or passed in. The last step (``prev_timestep`` of ``-1``) draws
    nothing and adds no noise.

    Args:
        model_output: the model's prediction at ``timestep``, of ``sample``'s shape.
        timestep: $t$, counted from 0, one for the whole batch.
        sample: $x_t$.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        prev_timestep: $t'$, where the step lands (``-1``: the data); ``None`` means ``timestep - 1``.
        variance_type: ``"fixed_small"`` ($\tilde\beta$) or ``"fixed_large"`` ($\beta$).
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"`` (see ``predict_x0``).
        clip_sample: clamp $\hat x_0$ to ``[-clip_sample_range, clip_sample_range]``.
        clip_sample_range: the range the data lies in.
        generator: the random number generator the noise is drawn from.
        noise: standard normal noise of ``sample``'s shape, to use instead of drawing.

    Returns:
        A ``StepOutput(prev_sample, pred_original_sample)``.

    Raises:
        TypeError: if a tensor is not floating point or a timestep is not an integer.
        ValueError: if a setting is not one diffusers knows, a timestep is out of range, or shapes differ.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> x_t, eps_hat = torch.randn(4, 2), torch.randn(4, 2)
        >>> out = ddpm_step(eps_hat, 999, x_t, alphas_cumprod, generator=torch.Generator().manual_seed(0))
        >>> out.prev_sample.shape, bool(out.pred_original_sample.abs().max() <= 1)
        (torch.Size([4, 2]), True)
    """
    _check_step_settings(variance_type, clip_sample, clip_sample_range)
    alphas_cumprod = alphas_cumprod.to(sample.device) if isinstance(alphas_cumprod, Tensor) else alphas_cumprod
    # 1. The model's guess of the clean sample, clipped to the data's range if asked.
    pred_original_sample = predict_x0(model_output, timestep, sample, alphas_cumprod, prediction_type)
    if clip_sample:
        pred_original_sample = pred_original_sample.clamp(-clip_sample_range, clip_sample_range)
    # 2. The posterior q(x_t' | x_t, x_0) with the guess in place of the unknown x_0: its mean...
    coefs = posterior(alphas_cumprod, timestep, prev_timestep)
    pred_prev_sample = coefs.posterior_mean_coef1 * pred_original_sample + coefs.posterior_mean_coef2 * sample
    # ...and, unless this step lands on the data, fresh noise at the scale the variance type says.
    if _prev(timestep, prev_timestep) < 0:
        return StepOutput(pred_prev_sample, pred_original_sample)
    if noise is None:
        rand_device = generator.device if generator is not None else model_output.device
        noise = torch.randn(
            model_output.shape, generator=generator, device=rand_device, dtype=model_output.dtype
        ).to(model_output.device)
    elif not isinstance(noise, Tensor) or noise.shape != sample.shape:
        raise ValueError(f"noise must be a tensor of sample's shape {tuple(sample.shape)}, got {_describe(noise)}")
    variance = coefs.posterior_variance if variance_type == "fixed_small" else coefs.beta
    return StepOutput(pred_prev_sample + (variance ** (0.5)) * noise, pred_original_sample)


def inference_timesteps(
    num_inference_steps: int, num_train_timesteps: int = 1000, timestep_spacing: str = "leading", steps_offset: int = 0
) -> Tensor:
    """The timesteps ``DDPMScheduler.set_timesteps(num_inference_steps)`` picks, from the noisiest down.

    Args:
        num_inference_steps: how many reverse steps, from 1 to ``num_train_timesteps``.
        num_train_timesteps: $T$.
        timestep_spacing: ``"leading"`` (multiples of ``T // n``, from 0 up), ``"trailing"`` (from ``T - 1``
            down in strides of ``T / n``) or ``"linspace"`` (``n`` evenly spaced from 0 to ``T - 1``, rounded).
        steps_offset: added to every ``"leading"`` timestep (diffusers ignores it for the others).

    Returns:
        An int64 tensor of shape ``(num_inference_steps,)``, falling.

    Raises:
        TypeError: if a count is not an int.
        ValueError: if ``timestep_spacing`` is unknown or a count is out of range.

    Examples:
        >>> {spacing: inference_timesteps(4, 1000, spacing).tolist() for spacing in TIMESTEP_SPACINGS}
        {'leading': [750, 500, 250, 0], 'trailing': [999, 749, 499, 249], 'linspace': [999, 666, 333, 0]}
    """
    import numpy as np  # as diffusers computes them, so that halves round the same way

    _check_spacing(num_inference_steps, num_train_timesteps, timestep_spacing, steps_offset)
    n, T = num_inference_steps, num_train_timesteps
    if timestep_spacing == "leading":
        timesteps = (np.arange(0, n) * (T // n)).round()[::-1].astype(np.int64) + steps_offset
    elif timestep_spacing == "trailing":
        timesteps = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    else:
        timesteps = np.linspace(0, T - 1, n).round()[::-1].astype(np.int64)
    return torch.from_numpy(timesteps.copy())


def ddpm_sample(
    model: Callable[[Tensor, Tensor], Tensor],
    shape: Sequence[int],
    alphas_cumprod: Tensor,
    *,
    num_inference_steps: int | None = None,
    timestep_spacing: str = "leading",
    steps_offset: int = 0,
    variance_type: str = "fixed_small",
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    return_trajectory: bool = False,
    show_progress: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Generate samples with DDPM: start from pure noise and take every reverse step down to the data.

    Draws in diffusers' ``DDPMPipeline`` order (the starting noise, then each step's noise) from
    ``generator``, so the same seed gives the pipeline's samples.

    Args:
        model: any callable ``model(x_t, t)`` returning a tensor of ``x_t``'s shape; it is called with
            ``t`` an int64 tensor of shape ``(B,)`` on ``x_t``'s device.
        shape: the shape of the batch to generate, ``(B, ...)``.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        num_inference_steps: how many steps; ``None`` takes all ``T`` (``T - 1`` down to 0).
        timestep_spacing: as for ``inference_timesteps``.
        steps_offset: as for ``inference_timesteps``.
        variance_type: as for ``ddpm_step``.
        prediction_type: as for ``ddpm_step``.
        clip_sample: as for ``ddpm_step``.
        clip_sample_range: as for ``ddpm_step``.
        generator: the random number generator for all the noise.
        dtype: the samples' dtype.
        device: the samples' device (``None``: the CPU).
        return_trajectory: also return every intermediate sample.
        show_progress: draw a progress bar.

    Returns:
        The samples, of ``shape``; with ``return_trajectory``, ``(samples, trajectory)`` where
        ``trajectory[i]`` is the input of step ``i`` (``trajectory[0]`` the starting noise) and
        ``trajectory[-1]`` the samples, shape ``(steps + 1, *shape)``.

    Raises:
        ValueError: if a setting is out of range or the model returns the wrong shape.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> zero_noise = lambda x_t, t: torch.zeros_like(x_t)    # a stand-in "model"
        >>> ddpm_sample(zero_noise, (3, 2), alphas_cumprod, num_inference_steps=10).shape
        torch.Size([3, 2])
    """
    shape = tuple(shape)
    T = _check_schedule(alphas_cumprod)
    if num_inference_steps is None:
        timesteps = list(range(T - 1, -1, -1))
    else:
        timesteps = inference_timesteps(num_inference_steps, T, timestep_spacing, steps_offset).tolist()
    _check_step_settings(variance_type, clip_sample, clip_sample_range)
    device = torch.device("cpu") if device is None else torch.device(device)
    alphas_cumprod = alphas_cumprod.to(device)
    # The starting noise, drawn as diffusers' randn_tensor draws it: on the generator's device, then moved.
    rand_device = generator.device if generator is not None else device
    x = torch.randn(shape, generator=generator, dtype=dtype, device=rand_device).to(device)  # x_T: (B, ...)
    trajectory = [x]
    for i in progress(range(len(timesteps)), desc="DDPM sampling", disable=not show_progress):
        t = timesteps[i]
        prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        # The model sees one int64 timestep per sample, on the samples' device.
        t_batch = torch.full((shape[0],), t, dtype=torch.int64, device=device)  # (B,)
        model_output = model(x, t_batch)
        if not isinstance(model_output, Tensor) or model_output.shape != x.shape:
            raise ValueError(f"model must return a tensor of x_t's shape {shape}, got {_describe(model_output)}")
        x = ddpm_step(
            model_output, t, x, alphas_cumprod, prev_timestep=prev_t, variance_type=variance_type,
            prediction_type=prediction_type, clip_sample=clip_sample, clip_sample_range=clip_sample_range,
            generator=generator,
        ).prev_sample
        if return_trajectory:
            trajectory.append(x)
    return (x, torch.stack(trajectory)) if return_trajectory else x


class GaussianMixture:
    r"""A mixture of round Gaussians, $\sum_k \pi_k\, \mathcal N(\mu_k, s_k^2 I)$, and its exact denoiser.

    One standard deviation per component; a common $\sigma$ (the ring of this lesson) is the special case
    ``stds = torch.full((K,), sigma)``.

    Args:
        means: the centres $\mu_k$, shape ``(K, D)``.
        stds: the standard deviations $s_k$, one per component, shape ``(K,)``.
        weights: the mixing weights $\pi_k$, shape ``(K,)``, positive and summing to 1; ``None`` for equal.

    Raises:
        TypeError: if an argument is not a floating-point tensor.
        ValueError: if the shapes disagree, a standard deviation is not positive, or the weights are not
            positive or do not sum to 1.

    Examples:
        >>> mixture = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([0.1, 0.1]))
        >>> mixture.sample(5, torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
        >>> mixture.mean.tolist()
        [0.0, 0.0]
    """

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor | None = None) -> None:
        if weights is None and isinstance(means, Tensor) and means.dim() == 2 and means.is_floating_point():
            weights = torch.full((means.size(0),), 1.0 / means.size(0), dtype=means.dtype)
        _check_mixture(means, stds, weights)
        # Kept in the dtype given (float64 for a ground truth); the denoiser always computes in float64.
        dtype = torch.promote_types(torch.promote_types(means.dtype, stds.dtype), weights.dtype)
        self.means, self.stds, self.weights = means.to(dtype), stds.to(dtype), weights.to(dtype)

    @property
    def mean(self) -> Tensor:
        r"""The mixture's mean, $\sum_k \pi_k \mu_k$, shape ``(D,)``."""
        return self.weights @ self.means

    @property
    def covariance(self) -> Tensor:
        r"""The mixture's covariance, $\sum_k \pi_k (s_k^2 I + \mu_k \mu_k^\top) - m m^\top$, shape ``(D, D)``."""
        D = self.means.size(1)
        second = (self.weights * self.stds**2).sum() * torch.eye(D, dtype=self.means.dtype)
        second = second + torch.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        return second - torch.outer(self.mean, self.mean)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num_samples`` points in the mixture's dtype, shape ``(num_samples, D)``: a component, then a Gaussian."""
        k = torch.multinomial(self.weights, num_samples, replacement=True, generator=generator)  # (N,)
        noise = torch.randn(num_samples, self.means.size(1), generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k, None] * noise

    def denoiser(self, alphas_cumprod: Tensor, prediction_type: str = "epsilon") -> Callable[[Tensor, int | Tensor], Tensor]:
        r"""The exact, optimal denoiser of this mixture: $\mathbb E[\varepsilon \mid x_t]$, $\mathbb E[x_0 \mid
        x_t]$ or $\mathbb E[v \mid x_t]$, in closed form, as a ``model(x_t, t)`` callable.

        Args:
            alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
            prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

        Returns:
            ``model(x_t, t)``: ``x_t`` of shape ``(B, D)``, ``t`` an int (or a tensor of one timestep or
            one per sample); the prediction has ``x_t``'s shape and dtype, computed in float64.

        Raises:
            ValueError: if ``prediction_type`` is not one of the three.
        """
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")

        def model(x_t: Tensor, t: int | Tensor) -> Tensor:
            # float64 throughout: this is the ground truth every sampler is measured against.
            x = x_t.to(torch.float64)  # (B, D)
            alpha_bar = alphas_cumprod.to(device=x.device, dtype=x.dtype)[torch.as_tensor(t, device=x.device)]
            alpha_bar = alpha_bar.reshape(-1, 1, 1)  # () or (B,) -> (1 or B, 1, 1), against (B, K, D)
            a, b = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
            means, stds, weights = (p.to(device=x.device, dtype=x.dtype) for p in (self.means, self.stds, self.weights))
            # Component k seen at timestep t is N(a mu_k, var_k I): its signal shrunk, the noise added.
            var = a**2 * stds[:, None] ** 2 + b**2  # (1 or B, K, 1)
            diff = x[:, None, :] - a * means  # (B, K, D)
            # Which component did x_t come from? Bayes' rule gives each one a responsibility r_k.
            log_density = -0.5 * (diff**2).sum(-1, keepdim=True) / var - 0.5 * means.size(1) * var.log()
            r = (weights.log()[:, None] + log_density).softmax(dim=1)  # (B, K, 1)
            # Within component k both answers are linear in x_t (Gaussians conditioned on a sum).
            eps = (r * b * diff / var).sum(1)  # (B, D): E[eps | x_t]
            x0 = (r * (means + a * stds[:, None] ** 2 * diff / var)).sum(1)  # (B, D): E[x_0 | x_t]
            a, b = a.reshape(-1, 1), b.reshape(-1, 1)
            out = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - b * x0}[prediction_type]
            return out.to(x_t.dtype)

        return model


class GaussianMixtureDenoiser(nn.Module):
    r"""The *exact* denoiser of a mixture of round Gaussians of one common std, as an ``nn.Module``.

    The data is $x_0 \sim \sum_k \pi_k\, \mathcal N(\mu_k, \sigma^2 I)$, a
    [`GaussianMixture`][torchenstein.diffusion.sampling.GaussianMixture] with every $s_k = \sigma$, and
    ``forward`` is that mixture's ``denoiser``: no second derivation, only the signature of a trained
    model, ``model(x_t, t)``, and a module that moves with ``.to(device)``. Computed in float64, returned
    in ``x_t``'s dtype.

    Args:
        means: the components' means $\mu_k$, shape ``(K, D)``.
        std: their common standard deviation $\sigma$, positive.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        weights: the mixture weights $\pi_k$, shape ``(K,)``, positive (normalised here; ``None``: all equal).
        prediction_type: what to return: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> model = GaussianMixtureDenoiser(torch.tensor([[0.5, 0.0], [-0.5, 0.0]]), 0.1, alphas_cumprod)
        >>> model(torch.randn(3, 2), torch.tensor([999, 500, 0])).shape
        torch.Size([3, 2])
    """

    def __init__(
        self, means: Tensor, std: float, alphas_cumprod: Tensor, weights: Tensor | None = None,
        prediction_type: str = "epsilon",
    ) -> None:
        super().__init__()
        _check_denoiser_args(std, prediction_type)
        _check_schedule(alphas_cumprod)
        if isinstance(means, Tensor) and means.is_floating_point():
            means = means.double()  # (K, D)
        if isinstance(weights, Tensor) and weights.is_floating_point() and bool((weights > 0).all()):
            weights = weights.double() / weights.double().sum()  # (K,), normalised to sum to 1
        K = means.size(0) if isinstance(means, Tensor) and means.dim() > 0 else 0
        stds = torch.full((K,), float(std), dtype=torch.float64)  # (K,): one common std
        self.mixture = GaussianMixture(means, stds, weights)  # validated there, once, for every lesson
        self.register_buffer("alphas_cumprod", alphas_cumprod.double())  # (T,)
        self.std = float(std)
        self.prediction_type = prediction_type

    def forward(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        """Predict the noise (or ``x_0``, or ``v``) for ``x_t`` of shape ``(B, D)`` at timestep(s) ``t``."""
        return self.mixture.denoiser(self.alphas_cumprod, self.prediction_type)(x_t, t)

    def sample_data(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``num_samples`` points from the data distribution itself, float32, shape ``(num_samples, D)``."""
        return self.mixture.sample(num_samples, generator).float()


def ring_of_gaussians(num_modes: int = 8, radius: float = 0.6) -> Tensor:
    """The means of ``num_modes`` Gaussians evenly spaced on a circle, shape ``(num_modes, 2)``, float64.

    Examples:
        >>> ring_of_gaussians(4, 1.0).round(decimals=3).tolist()
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-0.0, -1.0]]
    """
    angle = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


def ddpm_output_law(
    data_mean: float, data_std: float, alphas_cumprod: Tensor, timesteps: Sequence[int] | Tensor | None = None,
    variance_type: str = "fixed_small",
) -> tuple[float, float]:
    r"""The exact mean and standard deviation of DDPM's samples, for Gaussian data and its exact denoiser.

    With data $\mathcal N(m, \sigma^2)$, the exact $\hat x_0 = E[x_0 \mid x_t]$ is affine in $x_t$, so each
    unclipped step is $x_{t'} = A x_t + b + \text{std}\cdot z$ and the law of the samples, Gaussian, is
    carried from $\mathcal N(0, 1)$ through every step without drawing a single number.

    Args:
        data_mean: $m$.
        data_std: $\sigma$, positive.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)`` (computed in float64).
        timesteps: the falling timesteps the sampler visits; ``None``: all of them.
        variance_type: ``"fixed_small"`` or ``"fixed_large"``.

    Returns:
        ``(mean, std)`` of the samples, as floats.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> [round(v, 4) for v in ddpm_output_law(0.5, 1.0, alphas_cumprod, variance_type="fixed_large")]
        [0.5, 0.9999]
    """
    _check_step_settings(variance_type, False, 1.0)
    ac = alphas_cumprod.double()
    T = _check_schedule(ac)
    timesteps = list(range(T - 1, -1, -1)) if timesteps is None else [int(t) for t in timesteps]
    mean, var = 0.0, 1.0  # the starting noise, N(0, 1)
    for i, t in enumerate(timesteps):
        prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        c = posterior(ac, t, prev_t)
        alpha_bar = ac[t].item()
        s2 = alpha_bar * data_std**2 + 1 - alpha_bar
        # x0_hat = m + gain (x_t - sqrt(alpha_bar) m), so the step's mean is A x_t + b.
        gain = math.sqrt(alpha_bar) * data_std**2 / s2
        A = c.posterior_mean_coef1.item() * gain + c.posterior_mean_coef2.item()
        b = c.posterior_mean_coef1.item() * data_mean * (1 - math.sqrt(alpha_bar) * gain)
        step_var = 0.0 if prev_t < 0 else (c.posterior_variance if variance_type == "fixed_small" else c.beta).item()
        mean, var = A * mean + b, A * A * var + step_var
    return mean, math.sqrt(var)


def plot_reverse_process(*, num_samples: int = 400, shown: Sequence[int] = (999, 300, 100, 50, 15)) -> Figure:
    """Draw DDPM samples of a ring of eight Gaussians at several timesteps of the reverse process.

    The model is the exact denoiser of the data (``GaussianMixtureDenoiser``), so the picture shows the
    sampler alone: noise at timestep 999, the samples after the last step, and the data beside them.

    Args:
        num_samples: how many points to generate.
        shown: the timesteps (in ``0..999``) whose inputs are drawn before the samples.

    Returns:
        A figure with one scatter plot per timestep, then the samples and the data.

    Raises:
        ValueError: if ``num_samples`` is not a positive int or a timestep in ``shown`` is out of range.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, Integral) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    shown = [int(t) for t in shown]
    if any(not 0 <= t <= 999 for t in shown):
        raise ValueError(f"shown must hold timesteps from 0 to 999, got {shown}")
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
    model = GaussianMixtureDenoiser(ring_of_gaussians(), 0.08, alphas_cumprod)
    generator = torch.Generator().manual_seed(0)
    samples, trajectory = ddpm_sample(model, (num_samples, 2), alphas_cumprod, generator=generator,
                                      return_trajectory=True)  # trajectory: (1001, N, 2)
    # trajectory[i] is the input of the step at timestep 999 - i.
    panels = [(f"t = {t}", trajectory[999 - t]) for t in shown]
    panels += [("samples", samples), ("the data", model.sample_data(num_samples, generator))]
    fig, axes = new_figure(1, len(panels), width=1.9 * len(panels), height=2.3)
    for i, (ax, (title, points)) in enumerate(zip(axes, panels, strict=True)):
        color = PALETTE[1] if title == "the data" else PALETTE[0]
        # Markers on a line without its line: one style for all the points keeps the SVG small.
        ax.plot(points[:, 0].numpy(), points[:, 1].numpy(), "o", markersize=1.8, markeredgewidth=0,
                color=color, alpha=0.7)
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", title=title)
        ax.tick_params(labelsize=6, labelleft=i == 0)
    fig.suptitle("DDPM with the exact denoiser: from noise to a ring of eight Gaussians", fontsize=10)
    return fig


def posterior_arrays(alphas_cumprod: Tensor) -> Posterior:
    r"""Challenge solution: the posterior of every single step $t \to t - 1$ at once, as ``(T,)`` arrays.

    Args:
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.

    Returns:
        A ``Posterior`` of four tensors of shape ``(T,)``: entry ``t`` is ``posterior(alphas_cumprod, t)``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
        >>> arrays = posterior_arrays(alphas_cumprod)
        >>> arrays.posterior_variance.shape, arrays.posterior_variance[0].item()
        (torch.Size([1000]), 0.0)
    """
    _check_schedule(alphas_cumprod)
    # alpha_bar one step earlier: 1 before timestep 0 (the data), then alphas_cumprod shifted by one.
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])  # (T,)
    beta = 1 - alphas_cumprod / alphas_cumprod_prev
    coef1 = alphas_cumprod_prev.sqrt() * beta / (1 - alphas_cumprod)
    coef2 = (alphas_cumprod / alphas_cumprod_prev).sqrt() * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
    variance = beta * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
    return Posterior(coef1, coef2, variance, beta)


def check_posterior_arrays(candidate: Callable[[Tensor], Posterior]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``posterior_arrays``."""
    from torchenstein.diffusion.schedules import noise_schedule

    for settings in ({}, {"beta_schedule": "squaredcos_cap_v2"}, {"num_train_timesteps": 2},
                     {"num_train_timesteps": 50, "beta_schedule": "scaled_linear"}):
        alphas_cumprod = noise_schedule(**settings).alphas_cumprod.double()
        T = len(alphas_cumprod)
        got = candidate(alphas_cumprod)
        assert isinstance(got, tuple) and len(got) == 4, "return Posterior(coef1, coef2, variance, beta)"
        for name, value in zip(Posterior._fields, got, strict=True):
            assert isinstance(value, Tensor) and value.shape == (T,), (
                f"{name} must be a tensor of shape ({T},) for {settings or 'the default schedule'}, got "
                f"{_describe(value)}"
            )
        for t in sorted({0, 1, T // 2, T - 1}):
            expected = posterior(alphas_cumprod, t)
            for name, mine, theirs in zip(Posterior._fields, got, expected, strict=True):
                assert torch.allclose(mine[t], theirs, rtol=1e-9, atol=1e-12), (
                    f"{name} at timestep {t} of {settings or 'the default schedule'}: expected "
                    f"{theirs.item():.6g}, got {mine[t].item():.6g}"
                    + ("; before timestep 0 lies the data, alpha_bar_prev = 1, not alphas_cumprod[-1]"
                       if t == 0 else "")
                )


def predict_epsilon(
    model_output: Tensor, timestep: int | Tensor, sample: Tensor, alphas_cumprod: Tensor, prediction_type: str = "epsilon"
) -> Tensor:
    r"""Challenge solution: the noise the model implies, from whatever it predicts.

    Args:
        model_output: the model's prediction at ``timestep``, of ``sample``'s shape.
        timestep: $t$, counted from 0.
        sample: $x_t$.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

    Returns:
        $\hat\varepsilon$, of ``sample``'s shape.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> x0, eps = torch.ones(1, 2), torch.zeros(1, 2)
        >>> x_t = 0.6 * x0 + 0.8 * eps
        >>> predict_epsilon(x0, 1, x_t, alphas_cumprod, "sample")
        tensor([[0., 0.]])
    """
    t = _check_step_tensors(model_output, timestep, sample, alphas_cumprod, prediction_type)
    alpha_bar = alphas_cumprod.to(sample.device)[t]
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "sample":
        return (sample - alpha_bar.sqrt() * model_output) / (1 - alpha_bar).sqrt()
    # (x_t, v) is (x_0, eps) rotated: eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v.
    return (1 - alpha_bar).sqrt() * sample + alpha_bar.sqrt() * model_output


def check_predict_epsilon(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``predict_epsilon``."""
    from torchenstein.diffusion.schedules import noise_schedule

    g = torch.Generator().manual_seed(0)
    for settings in ({}, {"beta_schedule": "squaredcos_cap_v2"}):
        alphas_cumprod = noise_schedule(**settings).alphas_cumprod.double()
        models = {kind: GaussianMixtureDenoiser(ring_of_gaussians(), 0.1, alphas_cumprod, prediction_type=kind)
                  for kind in PREDICTION_TYPES}
        x_t = torch.randn(16, 2, generator=g, dtype=torch.float64)
        for t in (0, 1, 250, 998):
            truth = models["epsilon"](x_t, t)
            for kind, model in models.items():
                got = candidate(model(x_t, t), t, x_t, alphas_cumprod, kind)
                assert isinstance(got, Tensor) and got.shape == x_t.shape, (
                    f"expected a tensor of shape {tuple(x_t.shape)} for prediction_type={kind!r}, got {_describe(got)}"
                )
                assert torch.allclose(got, truth, rtol=1e-7, atol=1e-7), (
                    f"prediction_type={kind!r}, timestep {t}, {settings or 'the default schedule'}: the noise "
                    f"implied differs from the exact one by up to {(got - truth).abs().max().item():.3g}"
                )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_schedule(alphas_cumprod: object) -> int:
    if not isinstance(alphas_cumprod, Tensor) or not alphas_cumprod.is_floating_point() or alphas_cumprod.dim() != 1:
        raise TypeError(f"alphas_cumprod must be a 1-D floating-point tensor, got {_describe(alphas_cumprod)}")
    if alphas_cumprod.numel() == 0:
        raise ValueError("alphas_cumprod must hold at least one timestep, got an empty tensor")
    return alphas_cumprod.numel()


def _as_int(name: str, value: object) -> int:
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    if (isinstance(value, Tensor) and value.numel() == 1 and value.dim() <= 1 and value.dtype != torch.bool
            and not value.is_floating_point() and not value.is_complex()):
        return int(value.item())
    got = f"a tensor of dtype {value.dtype} and shape {tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)
    raise TypeError(f"{name} must be an int or a 0-d integer tensor (one timestep for the batch), got {got}")


def _prev(timestep: object, prev_timestep: object) -> int:
    return _as_int("timestep", timestep) - 1 if prev_timestep is None else _as_int("prev_timestep", prev_timestep)


def _check_timesteps(alphas_cumprod: object, timestep: object, prev_timestep: object) -> tuple[int, int]:
    T = _check_schedule(alphas_cumprod)
    t, prev_t = _as_int("timestep", timestep), _prev(timestep, prev_timestep)
    if not 0 <= t < T:
        raise ValueError(f"timestep must lie in 0..{T - 1} (counted from 0, as in diffusers), got {t}")
    if not -1 <= prev_t < t:
        raise ValueError(f"prev_timestep must lie in -1..{t - 1} (-1: the data), below timestep {t}, got {prev_t}")
    return t, prev_t


def _check_step_tensors(model_output: object, timestep: object, sample: object, alphas_cumprod: object,
                        prediction_type: object) -> int:
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    for name, value in (("model_output", model_output), ("sample", sample)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {_describe(value)}")
    if model_output.shape != sample.shape:
        raise ValueError(
            f"model_output must have sample's shape {tuple(sample.shape)}, got {tuple(model_output.shape)}"
        )
    t, _ = _check_timesteps(alphas_cumprod, timestep, None)
    return t


def _check_step_settings(variance_type: object, clip_sample: object, clip_sample_range: object) -> None:
    if variance_type not in VARIANCE_TYPES:
        raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
    if not isinstance(clip_sample, bool):
        raise TypeError(f"clip_sample must be a bool, got {clip_sample!r}")
    if isinstance(clip_sample_range, bool) or not isinstance(clip_sample_range, Real) or not clip_sample_range > 0:
        raise ValueError(f"clip_sample_range must be a positive number, got {clip_sample_range!r}")


def _check_spacing(num_inference_steps: object, num_train_timesteps: object, timestep_spacing: object,
                   steps_offset: object) -> None:
    for name, value in (("num_inference_steps", num_inference_steps), ("num_train_timesteps", num_train_timesteps),
                        ("steps_offset", steps_offset)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f"{name} must be an int, got {value!r}")
    if timestep_spacing not in TIMESTEP_SPACINGS:
        raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {timestep_spacing!r}")
    if not 1 <= num_inference_steps <= num_train_timesteps:
        raise ValueError(
            f"num_inference_steps must lie in 1..num_train_timesteps={num_train_timesteps}, got {num_inference_steps}"
        )
    last = (num_inference_steps - 1) * (num_train_timesteps // num_inference_steps) + steps_offset
    if steps_offset < 0 or (timestep_spacing == "leading" and last >= num_train_timesteps):
        raise ValueError(f"steps_offset must be at least 0 and keep every timestep below "
                         f"{num_train_timesteps}, got {steps_offset}")


def _check_denoiser_args(std: object, prediction_type: object) -> None:
    if isinstance(std, bool) or not isinstance(std, Real) or not std > 0:
        raise ValueError(f"std must be a positive number, got {std!r}")
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def _check_mixture(means: object, stds: object, weights: object) -> None:
    if not isinstance(means, Tensor) or not means.is_floating_point():
        raise TypeError(f"means must be a floating-point tensor, got {_describe(means)}")
    if means.dim() != 2 or means.size(0) == 0:
        raise ValueError(f"means must have shape (K, D) with K >= 1, got {tuple(means.shape)}")
    for name, value in (("stds", stds), ("weights", weights)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {_describe(value)}")
    K = means.size(0)
    for name, value in (("stds", stds), ("weights", weights)):
        if value.shape != (K,):
            raise ValueError(f"{name} must have shape ({K},), one per component, got {tuple(value.shape)}")
    if not bool((stds > 0).all()):
        raise ValueError(f"stds must be positive, got {[round(v, 6) for v in stds.tolist()]}")
    total = weights.double().sum().item()
    if not bool((weights > 0).all()) or abs(total - 1) > 1e-5:
        raise ValueError(
            f"weights must be positive and sum to 1, got {[round(v, 6) for v in weights.tolist()]} (sum {total:.6g})"
        )
