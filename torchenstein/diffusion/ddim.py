r"""
# DDIM: Fifty Steps Where a Thousand Stood

!!! torchenstein "The Professor speaks"
    A thousand model calls per image! My DDPM sampler is exact, and it is *slow*, and Dr. Hammer's
    investors are asking whether they can have the same pictures by lunchtime. They can. Tonight we take
    the very same trained network, change nothing in it, and walk backwards in fifty strides instead of a
    thousand shuffles, deterministically if we please, and then run the walk *uphill* to find the noise
    that makes a given picture. Every stride is proved equal, bit for bit, to Hugging Face's
    `DDIMScheduler`, and measured against a denoiser so perfect that no training can beat it.

**You will learn to**

- test a sampler without training, against the exact, optimal denoiser of the sampling lesson's mixture of
  Gaussians;
- turn any of the three things a model may predict ($\varepsilon$, $x_0$ or $v$) into a predicted $x_0$
  and a predicted noise;
- derive the DDIM step: the predicted $x_0$, the "direction pointing to $x_t$", and the noise
  $\sigma_t(\eta)$ that slides from deterministic ($\eta = 0$) to DDPM-like ($\eta = 1$);
- choose fewer timesteps with the `"leading"`, `"trailing"` and `"linspace"` spacings, and read what
  `steps_offset`, `set_alpha_to_one` and `clip_sample` do;
- invert DDIM, from data to noise and back, and measure the reconstruction error;
- measure sample quality against the number of steps;
- dodge four of Dr. Hammer's DDIM traps.

## A denoiser we do not have to train

[The DDPM lesson](../ddpm/index.md) trained a network $\varepsilon_\theta(x_t, t)$ to predict the noise in
$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$ with a mean squared error, and
[the DDPM sampler](../sampling/index.md) used it for a thousand steps. A trained network is an
imperfect witness, though: when a sampler misbehaves, is it the sampler or the network? Tonight we test
samplers with a perfect witness. The mean squared error is smallest for the **conditional expectation**
$\mathbb E[\varepsilon \mid x_t]$, the average of all the noises that could have produced this $x_t$, so
that is what a perfectly trained network would output. For data drawn from a **mixture of Gaussians**
$\sum_k \pi_k \mathcal N(\mu_k, s_k^2 I)$ (pick component $k$ with probability $\pi_k$, the **weight**,
then draw a Gaussian around its mean $\mu_k$), it has a closed form. Seen at timestep $t$, component $k$
is $\mathcal N(\sqrt{\bar\alpha_t}\,\mu_k, (\bar\alpha_t s_k^2 + 1 - \bar\alpha_t) I)$; Bayes' rule says
how likely each component is to have produced $x_t$ (its **responsibility** $r_k$), and within one
component, $x_0$ and $\varepsilon$ given their weighted sum are Gaussians with means linear in $x_t$:

$$
\mathbb E[\varepsilon \mid x_t] = \sum_k r_k(x_t)\, \frac{\sqrt{1 - \bar\alpha_t}\,(x_t - \sqrt{\bar\alpha_t}\,\mu_k)}
{\bar\alpha_t s_k^2 + 1 - \bar\alpha_t} .
$$

We do not build it again: [the sampling lesson](../sampling/index.md) did, and its
[`GaussianMixture`][torchenstein.diffusion.sampling.GaussianMixture] holds such a distribution, one
standard deviation per component, and its `denoiser(alphas_cumprod)` is that formula as a `model(x_t, t)`,
the signature of [the denoiser lesson](../denoiser/index.md). This lesson imports it (it is also
importable here, as `torchenstein.diffusion.ddim.GaussianMixture`). The lesson's data: three round
clusters in the plane, of three different spreads.

```pycon
>>> import torch
>>> from torchenstein.diffusion.schedules import noise_schedule
>>> from torchenstein.diffusion.ddim import GaussianMixture, lesson_mixture
>>> alphas_cumprod = noise_schedule().alphas_cumprod           # the linear DDPM schedule, T = 1000
>>> data = lesson_mixture()
>>> {"means": data.means.tolist(), "stds": data.stds.tolist(), "weights": data.weights.tolist()}
{'means': [[-0.6, -0.3], [0.5, 0.5], [0.4, -0.6]], 'stds': [0.15, 0.1, 0.05], 'weights': [0.5, 0.3, 0.2]}
>>> model = data.denoiser(alphas_cumprod)
>>> x0 = data.sample(20_000, torch.Generator().manual_seed(0)).float()
>>> noise, t = torch.randn_like(x0), 100
>>> x_t = alphas_cumprod[t].sqrt() * x0 + (1 - alphas_cumprod[t]).sqrt() * noise
>>> mse = lambda guess: round((guess - noise).pow(2).mean().item(), 3)
>>> {"guess 0": mse(torch.zeros_like(noise)), "guess x_t": mse(x_t), "exact denoiser": mse(model(x_t, t))}
{'guess 0': 1.004, 'guess x_t': 0.687, 'exact denoiser': 0.4}

```

No network trained on this data can have a lower expected error than the exact denoiser; the error
left is the noise that genuinely cannot be told apart from the data.

## Three things a model may predict

A network may be trained to predict the noise $\varepsilon$ (`prediction_type="epsilon"`, DDPM's choice),
the clean sample $x_0$ (`"sample"`), or the **velocity** $v = \sqrt{\bar\alpha_t}\,\varepsilon -
\sqrt{1 - \bar\alpha_t}\,x_0$ (`"v_prediction"`, Salimans and Ho, 2022). Given $x_t$ and $\bar\alpha_t$,
each determines the other two, because $x_t$ is one fixed mixture of $x_0$ and $\varepsilon$.
[`predicted_x0_and_epsilon`][torchenstein.diffusion.ddim.predicted_x0_and_epsilon] does the algebra, line
for line as diffusers does. The first two divide by $\sqrt{\bar\alpha_t}$ or $\sqrt{1 - \bar\alpha_t}$,
which blow up at the ends of the schedule; $v$ is a rotation of the pair $(x_0, \varepsilon)$ by an
angle whose cosine is $\sqrt{\bar\alpha_t}$, undone without any division:
$x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1 - \bar\alpha_t}\,v$.

```pycon
>>> from torchenstein.diffusion.ddim import predicted_x0_and_epsilon
>>> x_t = torch.randn(5, 2)
>>> answers = {kind: predicted_x0_and_epsilon(data.denoiser(alphas_cumprod, kind)(x_t, t), x_t,
...                                           alphas_cumprod[t], kind) for kind in ("epsilon", "sample", "v_prediction")}
>>> {kind: torch.allclose(x0_hat, answers["epsilon"][0], atol=1e-5) and torch.allclose(eps_hat, answers["epsilon"][1], atol=1e-5)
...  for kind, (x0_hat, eps_hat) in answers.items()}
{'epsilon': True, 'sample': True, 'v_prediction': True}

```

## The DDIM step

DDPM walks back one timestep at a time because its reverse step is the posterior of *one* forward
step. Song, Meng and Ermon (2021, *Denoising Diffusion Implicit Models*) noticed that training only ever
used the jumps $q(x_t \mid x_0)$, never the steps between, so any process with the same jumps fits the
same trained model. Their step from timestep $t$ to any earlier $t'$ (with $\bar\alpha' = \bar\alpha_{t'}$):

$$
x_{t'} = \underbrace{\sqrt{\bar\alpha'}\;\hat x_0}_{\text{predicted } x_0}
+ \underbrace{\sqrt{1 - \bar\alpha' - \sigma_t^2}\;\hat\varepsilon}_{\text{direction pointing to } x_t}
+ \underbrace{\sigma_t\, z}_{\text{fresh noise}}, \qquad z \sim \mathcal N(0, I).
$$

Why it is right: were $\hat x_0$ and $\hat\varepsilon$ the true $x_0$ and $\varepsilon$, the last two terms
would be independent Gaussians of variances $1 - \bar\alpha' - \sigma_t^2$ and $\sigma_t^2$, together
$1 - \bar\alpha'$, and $x_{t'}$ would be drawn from exactly $q(x_{t'} \mid x_0)$, the forward process's
law at $t'$. Any $\sigma_t$ with $\sigma_t^2 \le 1 - \bar\alpha'$ keeps that law; DDIM picks

$$
\sigma_t(\eta) = \eta \sqrt{\frac{1 - \bar\alpha'}{1 - \bar\alpha_t}\left(1 - \frac{\bar\alpha_t}{\bar\alpha'}\right)} .
$$

At $\eta = 1$ and $t' = t - 1$ this is the DDPM posterior's variance $\tilde\beta_t = \frac{1 -
\bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t$ (since $\bar\alpha_t / \bar\alpha_{t-1} = 1 - \beta_t$), and the
step is DDPM's ancestral step. At $\eta = 0$ there is no fresh noise: the step is deterministic, and a
whole run is a fixed function from $x_T$ to $x_0$, which is what makes inversion possible below.
[`ddim_variance`][torchenstein.diffusion.ddim.ddim_variance] is $\sigma_t(1)^2$:

```pycon
>>> from torchenstein.diffusion.ddim import ddim_variance
>>> betas = noise_schedule().betas
>>> a64 = torch.cumprod(1 - betas.double(), dim=0)              # float64: 1 - a_t / a_(t-1) is a small difference
>>> tilde_beta = (1 - a64[t - 1]) / (1 - a64[t]) * betas[t].double()    # DDPM's, at t = 100
>>> torch.allclose(ddim_variance(a64[t], a64[t - 1]), tilde_beta)
True

```

[`ddim_step`][torchenstein.diffusion.ddim.ddim_step] is diffusers' `DDIMScheduler.step(model_output,
timestep, sample, eta=..., generator=..., variance_noise=...)` as a function: the schedule and the number
of steps $n$ are passed in instead of living in a scheduler object, and the other settings are diffusers'
constructor arguments with their defaults. Three of them matter at once:

- **The previous timestep** is $t' = t - T // n$, diffusers' rule (the spacings below say why that is
  not always the timestep visited next).
- **`set_alpha_to_one`.** After timestep 0 there is no earlier timestep. With `True` (the default) the
  last step lands on $\bar\alpha' = 1$, clean data, and returns $\hat x_0$ itself; with `False` it lands
  on $\bar\alpha_0$ and keeps timestep 0's speck of noise.
- **`clip_sample`** clamps $\hat x_0$ to $[-1, 1]$ (`clip_sample_range`) before it is used: right for
  pixels scaled to $[-1, 1]$, where a prediction outside is certainly wrong, and wrong for data that
  lives elsewhere (latents). It is on by default; we switch it off to measure the method itself.

```pycon
>>> from torchenstein.diffusion.ddim import ddim_step
>>> x = torch.randn(4, 2)
>>> out = ddim_step(model(x, 0), 0, x, alphas_cumprod, 10)                 # the last step of ten
>>> torch.equal(out.prev_sample, out.pred_original_sample)                  # lands on x0-hat itself
True
>>> x = torch.randn(4, 2)
>>> a, a_prev = alphas_cumprod[900], alphas_cumprod[800]
>>> by_hand = a_prev.sqrt() * (x - (1 - a).sqrt() * model(x, 900)) / a.sqrt() + (1 - a_prev).sqrt() * model(x, 900)
>>> torch.allclose(ddim_step(model(x, 900), 900, x, alphas_cumprod, 10, clip_sample=False).prev_sample, by_hand)
True
>>> ddim_step(model(x, 900), 900, x, alphas_cumprod, 10, eta=1.5)
Traceback (most recent call last):
...
ValueError: eta must be a number in [0, 1] (0: DDIM, 1: DDPM's noise), got 1.5

```

The tests (`tests/test_ddim.py`) prove `ddim_step` equal **bit for bit** to `DDIMScheduler.step` in float32
and float64, for the three prediction types, $\eta \in \{0, 0.5, 1\}$ with the noise from a generator or
passed as `variance_noise`, with and without clipping and `set_alpha_to_one`, on the linear, scaled-linear,
cosine and zero-terminal-SNR schedules; and whole runs of `ddim_sample` equal bit for bit to a loop
over `step`, for six configurations of schedule, spacing, offset, prediction type and step count, each
at $\eta \in \{0, 0.5, 1\}$, in float32 and float64. This page never imports diffusers (it takes
seconds to load).

!!! note "Where it differs from diffusers"
    At $\eta = 1$, a step from a timestep with $\bar\alpha_t = 0$ (zero terminal SNR) has
    $1 - \bar\alpha' - \sigma_t^2 = 0$ exactly, and float32 rounding can make it slightly negative:
    diffusers then takes the square root of a negative number and every sample is NaN. `ddim_step` clamps
    it at 0, which changes nothing wherever it is not negative; a test pins both results. Our argument
    checks are also stricter: $\eta$ outside $[0, 1]$, or both a `generator` and `variance_noise`, raise
    a `ValueError` where diffusers goes ahead.

## Fewer steps: which timesteps to visit

DDIM may jump, so a run of $n$ steps visits only $n$ of the $T$ timesteps.
[`ddim_timesteps`][torchenstein.diffusion.ddim.ddim_timesteps] picks them as `set_timesteps` does, with the
spacings of the [DDPM sampler](../sampling/index.md)'s
[`inference_timesteps`][torchenstein.diffusion.sampling.inference_timesteps], which it calls:

- `"leading"`: multiples of $T // n$ from 0, plus `steps_offset` (Stable Diffusion's configuration sets 1);
- `"trailing"`: counted back from $T - 1$ in strides of $T / n$, rounded;
- `"linspace"`: $n$ timesteps evenly spaced from 0 to $T - 1$, rounded.

```pycon
>>> from torchenstein.diffusion.ddim import ddim_timesteps
>>> for spacing, offset in (("leading", 0), ("leading", 1), ("trailing", 0), ("linspace", 0)):
...     print(f"{spacing:8} steps_offset={offset}: {ddim_timesteps(10, 1000, spacing, offset).tolist()}")
leading  steps_offset=0: [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
leading  steps_offset=1: [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
trailing steps_offset=0: [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
linspace steps_offset=0: [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]

```

`"leading"` starts at 900, not 999: the noisiest tenth of the schedule is never visited, and the run
begins from pure noise at a timestep that is not pure noise (Dr. Hammer's third trap). `"trailing"`
starts at $T - 1$ and stops at 99, relying on the last jump to cross the rest. And `"linspace"` visits
both ends, but its strides are 111 while diffusers' step jumps $T // n = 100$: from 999 it lands on
the noise level of 899 and then calls the model as if it stood at 888. That is the documented diffusers
issue #12633; our `ddim_step` follows diffusers' rule so that the two stay equal, and the second challenge
repairs it.

!!! note "Where it differs from diffusers"
    For `"trailing"`, diffusers builds the timesteps with `np.arange(T, 0, -T / n)`, whose floating-point
    stride sometimes yields one value too many: for 62 of the step counts from 1 to 1000 (the first is 61),
    `set_timesteps(n)` returns $n + 1$ timesteps ending in $-1$, and `step` at $-1$ reads
    `alphas_cumprod[-1]`, the *noisiest* entry. `ddim_timesteps` returns the first $n$, the ones diffusers
    returns too, and `ddim_step` refuses a negative timestep. The tests prove the timesteps equal for every
    $n$ from 1 to $T$ at several $T$, and pin the extra $-1$.

    ```pycon
    >>> import math
    >>> too_long = [n for n in range(1, 1001) if math.ceil(-1000 / (-1000 / n)) > n]   # np.arange's length
    >>> {"step counts": len(too_long), "first": too_long[0]}
    {'step counts': 62, 'first': 61}
    >>> len(ddim_timesteps(61, 1000, "trailing")), ddim_timesteps(61, 1000, "trailing")[-3:].tolist()
    (61, [48, 32, 15])

    ```

## Sampling, and what fewer steps cost

[`ddim_sample`][torchenstein.diffusion.ddim.ddim_sample] is a pipeline's loop: for each timestep, one
model call and one `ddim_step`. With the exact denoiser, the only errors left are the sampler's own, so
we can measure them. A **moment** of a distribution is its mean or its covariance (the matrix of
variances and covariances of the coordinates); `moment_distance` adds the length of the difference of
the means to the size (Frobenius norm) of the difference of the covariances. Even a perfect sampler
misses by a little, because 2000 samples are only 2000 samples: the same distance for 2000 true samples
is the floor.

```pycon
>>> from torchenstein.diffusion.ddim import ddim_sample, moment_distance
>>> x_T = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))       # pure noise
>>> {n: round(moment_distance(ddim_sample(model, x_T, alphas_cumprod, n, clip_sample=False, progress_bar=False),
...                           data.mean, data.covariance), 3) for n in (10, 20, 50, 100)}
{10: 0.127, 20: 0.061, 50: 0.036, 100: 0.028}
>>> round(moment_distance(data.sample(2000, torch.Generator().manual_seed(1)), data.mean, data.covariance), 3)
0.014

```

Fifty steps are within a few hundredths of the truth; ten are not. Where does the error come from? With
$\eta = 0$, DDIM is Euler's method (follow the current slope for a whole stride) on an ordinary
differential equation whose exact solution carries noise to data; each stride assumes the predicted
$\hat x_0$ and $\hat\varepsilon$ stay what they were at the stride's start. They do not. Early on,
$\hat x_0 = \mathbb E[x_0 \mid x_t]$ is an *average* of the clusters the sample might still belong to,
and a long stride carries the sample towards that average before it has chosen a cluster: with five
steps, many samples end between the clusters. Late on, a long stride towards $\hat x_0$, the centre of
what is left, lands inside the cluster: the samples come out too tight (Dr. Hammer's first trap
measures by how much).

![Left: three clusters of points in the plane: the true data in grey; DDIM with 5 steps smeared along the lines between the clusters, one cluster nearly missing; DDIM with 100 steps on top of the data. Right: moment distance against the number of steps on log-log axes for eta 0 and 1, falling from about 0.25 at 5 steps to about 0.02 at 100, eta 1 above eta 0, down to the dashed line of 1500 true samples, the level of chance.](plot_quality_vs_steps.svg)

## Inversion: from data back to its noise

At $\eta = 0$ the step only needs $\hat x_0$ and $\hat\varepsilon$ to re-noise to *any* level, higher as
well as lower. Run it upwards, from $x_0$ through the same timesteps in rising order, and you get the
latent $x_T$ that DDIM would turn back into (nearly) $x_0$: **DDIM inversion**, the basis of image
editing methods that invert a photo, change the prompt, and sample again.
[`ddim_inverse_step`][torchenstein.diffusion.ddim.ddim_inverse_step] is diffusers'
`DDIMInverseScheduler.step`, and [`ddim_invert`][torchenstein.diffusion.ddim.ddim_invert] its loop. The
step is an approximation: to climb from $t'$ to $t$ it needs the model's answer at $x_t$, which it does
not have yet, and uses the answer at $x_{t'}$ instead (diffusers' pipelines call the model with the
timestep $t$ on the sample still at $t'$, and so do we). The error shrinks with the stride:

```pycon
>>> from torchenstein.diffusion.ddim import ddim_invert
>>> x0 = data.sample(300, torch.Generator().manual_seed(2)).float()
>>> def reconstruction_error(n):             # root mean square of x0 -> latent -> x0
...     latent = ddim_invert(model, x0, alphas_cumprod, n, clip_sample=False, progress_bar=False)
...     back = ddim_sample(model, latent, alphas_cumprod, n, clip_sample=False, progress_bar=False)
...     return round((back - x0).pow(2).mean().sqrt().item(), 3)
>>> {n: reconstruction_error(n) for n in (10, 20, 50, 100)}
{10: 0.088, 20: 0.064, 50: 0.031, 100: 0.017}

```

The tests prove `ddim_inverse_step` equal bit for bit to `DDIMInverseScheduler.step` (float32 and float64,
the three prediction types, both spacings it supports) and whole inversions equal to a loop over it.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: $\eta = 1$ with ten steps"
    "DDPM is the gold standard," says Hammer, and runs DDIM with $\eta = 1$ and ten steps. With strides
    of 100 timesteps, $\sigma_t$ takes most of the noise budget $\sqrt{1 - \bar\alpha'}$ (printed below
    for the stride from 800 to 700): each step throws away most of the model's noise direction and
    replaces it with fresh noise, and ten steps are too few to correct what fresh noise spoils. Even with the exact denoiser his samples come out
    tighter than $\eta = 0$'s (the spread of one Gaussian, as a share of the true one):

    ```pycon
    >>> one = GaussianMixture(torch.tensor([[0.5]]), torch.tensor([0.1]))
    >>> x_T1 = torch.randn(10_000, 1, generator=torch.Generator().manual_seed(0))
    >>> def spread(n, eta):
    ...     x = ddim_sample(one.denoiser(alphas_cumprod), x_T1, alphas_cumprod, n, eta=eta,
    ...                     generator=torch.Generator().manual_seed(1), clip_sample=False, progress_bar=False)
    ...     return round(x.std().item() / 0.1, 2)
    >>> {f"eta={eta}": {n: spread(n, eta) for n in (10, 100)} for eta in (0.0, 1.0)}
    {'eta=0.0': {10: 0.37, 100: 0.88}, 'eta=1.0': {10: 0.29, 100: 0.79}}
    >>> a, a_prev = alphas_cumprod[800], alphas_cumprod[700]
    >>> round((ddim_variance(a, a_prev).sqrt() / (1 - a_prev).sqrt()).item(), 2)   # sigma's share of the noise
    0.88

    ```

    With a trained model, whose errors fresh noise does not cancel, the gap is far wider (the DDIM paper's
    Table 1). With few steps use $\eta = 0$; keep $\eta > 0$ for runs long enough to correct themselves.

!!! hammer "Dr. Hammer's trap: DDPM's variance on DDIM's skipped timesteps"
    Hammer copies $\sigma_t^2 = \tilde\beta_t$ from his DDPM sampler into the DDIM step and skips 100
    timesteps at a time. But $\tilde\beta_t$ is the variance of *one* step's posterior. Over most of the
    run it is a seventh of the stride's $\sigma_t$, so his "$\eta = 1$" is really $\eta \approx 0.14$;
    on the stride from 100 to 0 it is larger than the whole noise level left, and the square root of a
    negative number is NaN:

    ```pycon
    >>> def tilde_beta(t):                      # DDPM's one-step posterior variance
    ...     return (1 - alphas_cumprod[t - 1]) / (1 - alphas_cumprod[t]) * betas[t]
    >>> [round((tilde_beta(t) / ddim_variance(alphas_cumprod[t], alphas_cumprod[t - 100])).sqrt().item(), 2)
    ...  for t in (900, 500, 200, 100)]                                         # his effective eta
    [0.15, 0.14, 0.22, 4.53]
    >>> (1 - alphas_cumprod[0] - tilde_beta(100)).sqrt()                        # his direction at t = 100
    tensor(nan)

    ```

    The variance belongs to the jump, $\bar\alpha_t \to \bar\alpha_{t'}$: `ddim_variance(alphas_cumprod[t],
    alphas_cumprod[t_prev])`, never a table of per-step variances indexed by $t$.

!!! hammer "Dr. Hammer's trap: a zero-SNR schedule that the sampler never reaches"
    Hammer read [the schedules lesson](../schedules/index.md), rescaled Stable Diffusion's schedule to
    zero terminal SNR and retrained, so that timestep 999 is pure noise. Then he samples with diffusers'
    default `"leading"` spacing and Stable Diffusion's `steps_offset=1`: the first timestep is 901, where
    the signal is still a twentieth of the data, and the repair never reaches his sampler. He switches
    to `"trailing"`, which does start at 999, and every sample is NaN: his model predicts $\varepsilon$,
    and at $\bar\alpha = 0$ the predicted $x_0 = (x_t - \hat\varepsilon) / 0$ is zero divided by zero
    (the schedules lesson's last trap). Lin et al. (2024) prescribe both fixes together: trailing
    timesteps *and* $v$-prediction.

    ```pycon
    >>> zero_snr = noise_schedule(1000, 0.00085, 0.012, "scaled_linear", rescale_betas_zero_snr=True).alphas_cumprod
    >>> {spacing: (int(t0), round(zero_snr[t0].sqrt().item(), 3)) for spacing, t0 in
    ...  (("leading", ddim_timesteps(10, 1000, "leading", 1)[0]), ("trailing", ddim_timesteps(10, 1000, "trailing")[0]))}
    {'leading': (901, 0.054), 'trailing': (999, 0.0)}
    >>> bright = GaussianMixture(torch.tensor([[0.8]]), torch.tensor([0.1]))
    >>> x_T1 = torch.randn(1000, 1, generator=torch.Generator().manual_seed(0))
    >>> def sample(kind):
    ...     return ddim_sample(bright.denoiser(zero_snr, kind), x_T1, zero_snr, 50, timestep_spacing="trailing",
    ...                        prediction_type=kind, clip_sample=False, progress_bar=False)
    >>> sample("epsilon").isnan().all().item()
    True
    >>> round(sample("v_prediction").mean().item(), 2)
    0.8

    ```

!!! hammer "Dr. Hammer's trap: inverting with $\eta > 0$"
    Hammer inverts a photo, then samples it back with his favourite $\eta = 1$ "for quality". Inversion
    finds the one latent that the *deterministic* map sends to his photo; a stochastic sampler adds fresh
    noise at every step and follows another path. His reconstruction misses by more than the data's own
    spread (diffusers' `DDIMInverseScheduler.step` has no `eta` at all, for that reason):

    ```pycon
    >>> latent = ddim_invert(model, x0, alphas_cumprod, 50, clip_sample=False, progress_bar=False)
    >>> def rms_error(eta):
    ...     back = ddim_sample(model, latent, alphas_cumprod, 50, eta=eta, generator=torch.Generator().manual_seed(0),
    ...                        clip_sample=False, progress_bar=False)
    ...     return round((back - x0).pow(2).mean().sqrt().item(), 2)
    >>> {"eta=0": rms_error(0.0), "eta=1": rms_error(1.0), "data's own spread": round(x0.std(0).mean().item(), 2)}
    {'eta=0': 0.03, 'eta=1': 0.68, "data's own spread": 0.5}

    ```

## Challenges

**1. The $v$ target.** A $v$-prediction model is trained to output $v$, so training needs it as a
target. Write `get_velocity(sample, noise, timesteps, alphas_cumprod)`, diffusers' `get_velocity` with the
schedule passed in: $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$ for a batch of
clean `sample`s of any shape $(B, \dots)$, with one timestep per sample. `check_get_velocity` checks that
`predicted_x0_and_epsilon` turns your $v$ back into the clean sample and the noise.

**2. The timestep actually visited next.** Write
`ddim_sample_visited(model, sample, alphas_cumprod, num_inference_steps, *, timestep_spacing="leading")`:
deterministic DDIM ($\eta = 0$, $\varepsilon$-prediction, no clipping) whose step from the $i$-th timestep
of `ddim_timesteps` lands on the $(i + 1)$-th, and from the last on $\bar\alpha = 1$, so that
`"linspace"` and `"trailing"` strides are the ones visited. With `"leading"` it must equal `ddim_sample`.
`check_ddim_sample_visited` runs it for the three spacings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from torchenstein.diffusion.ddpm import PREDICTION_TYPES
from torchenstein.diffusion.forward import _describe
from torchenstein.diffusion.sampling import TIMESTEP_SPACINGS, GaussianMixture, inference_timesteps
from torchenstein.lab import PALETTE, new_figure, progress

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

Model = Callable[[Tensor, int], Tensor]
"""A denoiser: ``model(x_t, t)`` returns a prediction of ``x_t``'s shape for the timestep ``t``."""


def predicted_x0_and_epsilon(
    model_output: Tensor, sample: Tensor, alpha_prod_t: Tensor, prediction_type: str = "epsilon"
) -> tuple[Tensor, Tensor]:
    r"""Turn a model's prediction at $\bar\alpha_t$ into both a predicted $x_0$ and a predicted noise.

    Every line is diffusers' own, in its order, so the results agree bit for bit.

    Args:
        model_output: the model's prediction, of ``sample``'s shape.
        sample: the noisy sample $x_t$.
        alpha_prod_t: $\bar\alpha_t$, a 0-d tensor (or a float).
        prediction_type: what the model predicts: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

    Returns:
        ``(pred_original_sample, pred_epsilon)``, each of ``sample``'s shape.

    Raises:
        ValueError: if ``prediction_type`` is not one of the three.

    Examples:
        >>> x0, eps, alpha_bar = torch.tensor([0.5]), torch.tensor([-1.0]), torch.tensor(0.64)
        >>> x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
        >>> [t.tolist() for t in predicted_x0_and_epsilon(eps, x_t, alpha_bar, "epsilon")]
        [[0.5], [-1.0]]
    """
    _check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    beta_prod_t = 1 - alpha_prod_t
    if prediction_type == "epsilon":
        # x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps, solved for x0.
        pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        pred_epsilon = model_output
    elif prediction_type == "sample":
        # The same equation, solved for eps.
        pred_original_sample = model_output
        pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
    else:
        # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0: a rotation of (x0, eps), undone without division.
        pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
    return pred_original_sample, pred_epsilon


def ddim_variance(alpha_prod_t: Tensor, alpha_prod_t_prev: Tensor) -> Tensor:
    r"""$\sigma_t^2$ at $\eta = 1$ for a jump from $\bar\alpha_t$ to $\bar\alpha_{t'}$: the DDPM posterior's.

    $\sigma^2 = \frac{1 - \bar\alpha_{t'}}{1 - \bar\alpha_t}\left(1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}\right)$,
    in diffusers' order of operations.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> round(ddim_variance(alphas_cumprod[900], alphas_cumprod[800]).item(), 4)
        0.8197
    """
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    return (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)


class DDIMStepOutput(NamedTuple):
    """What one DDIM step returns, named as diffusers' ``DDIMSchedulerOutput``."""

    prev_sample: Tensor
    """The sample at the previous (less noisy) timestep."""
    pred_original_sample: Tensor
    r"""The predicted clean sample $\hat x_0$ the step was built on (clipped if ``clip_sample``)."""


def ddim_step(
    model_output: Tensor,
    timestep: int | Tensor,
    sample: Tensor,
    alphas_cumprod: Tensor,
    num_inference_steps: int,
    *,
    eta: float = 0.0,
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    set_alpha_to_one: bool = True,
    generator: torch.Generator | None = None,
    variance_noise: Tensor | None = None,
) -> DDIMStepOutput:
    r"""One DDIM step, from ``timestep`` to ``timestep - T // num_inference_steps``: ``DDIMScheduler.step``.

    $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t'} - \sigma_t^2}\;\hat\varepsilon
    + \sigma_t z$, with $\sigma_t = \eta\,\sqrt{\texttt{ddim\_variance}}$ and $z$ standard normal.

    Args:
        model_output: the model's prediction at ``timestep``, of ``sample``'s shape.
        timestep: the current timestep $t$, counted from 0.
        sample: the noisy sample $x_t$.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        num_inference_steps: the number of steps of the whole run, which fixes the jump $T // n$.
        eta: $\eta \in [0, 1]$: 0 is deterministic DDIM, 1 the DDPM posterior's noise.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        clip_sample: clamp $\hat x_0$ to ``[-clip_sample_range, clip_sample_range]``.
        clip_sample_range: the clamp's bound.
        set_alpha_to_one: after timestep 0, land on $\bar\alpha = 1$ (clean data) rather than on $\bar\alpha_0$.
        generator: draws $z$ when ``eta > 0`` and no ``variance_noise`` is given.
        variance_noise: $z$ itself, of ``sample``'s shape.

    Returns:
        A ``DDIMStepOutput(prev_sample, pred_original_sample)``.

    Raises:
        TypeError: if a tensor is not floating point, or ``timestep`` is not an integer.
        ValueError: if a shape, timestep, ``eta`` or choice is out of range, or both ``generator`` and
            ``variance_noise`` are given.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> x = torch.randn(3, 2)
        >>> out = ddim_step(torch.zeros(3, 2), 900, x, alphas_cumprod, 10)   # the model says: no noise
        >>> torch.allclose(out.prev_sample, (alphas_cumprod[800] / alphas_cumprod[900]).sqrt() * x.clamp(
        ...     -alphas_cumprod[900].sqrt(), alphas_cumprod[900].sqrt()))
        True
    """
    timestep = _check_step(model_output, timestep, sample, alphas_cumprod, num_inference_steps, eta,
                           prediction_type, generator, variance_noise)
    alphas_cumprod = alphas_cumprod.to(sample.device)
    # 1. The previous timestep: diffusers' rule, one jump of T // n back, whatever the spacing.
    prev_timestep = timestep - len(alphas_cumprod) // num_inference_steps
    # 2. The two noise levels; past timestep 0 there is no entry, and set_alpha_to_one decides what to use.
    final_alpha_cumprod = torch.tensor(1.0, device=sample.device) if set_alpha_to_one else alphas_cumprod[0]
    alpha_prod_t = alphas_cumprod[timestep]
    alpha_prod_t_prev = alphas_cumprod[prev_timestep] if prev_timestep >= 0 else final_alpha_cumprod
    # 3. What the model thinks x_0 is, and the noise that goes with it.
    pred_original_sample, pred_epsilon = predicted_x0_and_epsilon(model_output, sample, alpha_prod_t, prediction_type)
    # 4. Pixel data lives in [-1, 1]: a guess outside it is certainly wrong (and latents must switch this off).
    if clip_sample:
        pred_original_sample = pred_original_sample.clamp(-clip_sample_range, clip_sample_range)
    # 5. sigma_t(eta): 0 for DDIM, the DDPM posterior's standard deviation for eta = 1.
    variance = ddim_variance(alpha_prod_t, alpha_prod_t_prev)
    std_dev_t = eta * variance ** (0.5)
    # 6. "The direction pointing to x_t": the predicted noise, at the noise level left after sigma's share.
    # At eta = 1 from a zero-SNR timestep that level is 0 exactly, and a rounding below 0 would make the
    # square root NaN: clamped at 0 (diffusers does not clamp; elsewhere the clamp changes nothing).
    pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2).clamp(min=0) ** (0.5) * pred_epsilon
    # 7. Re-noise the predicted x_0 to the previous level: the signal, the old noise's direction...
    prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
    # ...and, when eta > 0, fresh noise. Drawn as diffusers draws it, so one generator gives one trajectory.
    if eta > 0:
        if variance_noise is None:
            variance_noise = torch.randn(model_output.shape, generator=generator, device=model_output.device,
                                         dtype=model_output.dtype)
        prev_sample = prev_sample + std_dev_t * variance_noise
    return DDIMStepOutput(prev_sample, pred_original_sample)


def ddim_timesteps(
    num_inference_steps: int,
    num_train_timesteps: int = 1000,
    timestep_spacing: str = "leading",
    steps_offset: int = 0,
) -> Tensor:
    """The timesteps a DDIM run visits, from noisiest to cleanest: ``DDIMScheduler.set_timesteps``.

    Args:
        num_inference_steps: how many steps $n$, from 1 to ``num_train_timesteps``.
        num_train_timesteps: $T$, the number of timesteps the model was trained on.
        timestep_spacing: ``"leading"`` (multiples of $T // n$ from 0), ``"trailing"`` (counted back from
            $T - 1$) or ``"linspace"`` ($n$ evenly spaced from 0 to $T - 1$, rounded).
        steps_offset: added to every ``"leading"`` timestep (the other two ignore it, as in diffusers).

    Returns:
        An int64 tensor of shape ``(num_inference_steps,)``, falling.

    Raises:
        TypeError: if a count is not an int.
        ValueError: if ``timestep_spacing`` is unknown, or a count or the offset is out of range.

    Examples:
        >>> {s: ddim_timesteps(4, 1000, s).tolist() for s in TIMESTEP_SPACINGS}
        {'leading': [750, 500, 250, 0], 'trailing': [999, 749, 499, 249], 'linspace': [999, 666, 333, 0]}
    """
    _check_timesteps(num_inference_steps, num_train_timesteps, timestep_spacing, steps_offset)
    # DDIMScheduler spaces its timesteps as DDPMScheduler does (the sampling lesson's `inference_timesteps`)
    # but for one thing: "trailing" counts down with NumPy's arange, whose float stride leaves one step too
    # many for some counts (62 of 1 to 1000), ending at -1. DDIM keeps the n it was asked for.
    return inference_timesteps(num_inference_steps, num_train_timesteps, timestep_spacing, steps_offset)[
        :num_inference_steps
    ]


def ddim_sample(
    model: Model,
    sample: Tensor,
    alphas_cumprod: Tensor,
    num_inference_steps: int,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    timestep_spacing: str = "leading",
    steps_offset: int = 0,
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    set_alpha_to_one: bool = True,
    progress_bar: bool = True,
) -> Tensor:
    r"""Generate with DDIM: from ``sample`` ($x_T$, usually pure noise) to $x_0$ in ``num_inference_steps``.

    The loop of a diffusers pipeline around ``DDIMScheduler``: ``set_timesteps``, then per timestep one
    model call and one ``step``.

    Args:
        model: ``model(x_t, t)``, returning a prediction of the kind ``prediction_type`` names.
        sample: the starting sample, e.g. ``torch.randn(B, ...)``.
        alphas_cumprod: $\bar\alpha$ for every training timestep, shape ``(T,)``.
        num_inference_steps: the number of steps $n$.
        eta: $\eta \in [0, 1]$, as for ``ddim_step``.
        generator: draws the step noise when ``eta > 0``.
        timestep_spacing: as for ``ddim_timesteps``.
        steps_offset: as for ``ddim_timesteps``.
        prediction_type: as for ``ddim_step``.
        clip_sample: as for ``ddim_step``.
        clip_sample_range: as for ``ddim_step``.
        set_alpha_to_one: as for ``ddim_step``.
        progress_bar: show a progress bar.

    Returns:
        The generated samples, of ``sample``'s shape and dtype.

    Raises:
        TypeError: if ``model`` is not callable, or an argument of ``ddim_step`` is of the wrong type.
        ValueError: as ``ddim_timesteps`` and ``ddim_step``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> data = GaussianMixture(torch.tensor([[0.5]]), torch.tensor([0.2]))
        >>> x0 = ddim_sample(data.denoiser(alphas_cumprod), torch.randn(4000, 1), alphas_cumprod, 100,
        ...                  progress_bar=False)
        >>> round(x0.mean().item(), 1)
        0.5
    """
    if not callable(model):
        raise TypeError(f"model must be a callable model(x_t, t), got {type(model).__name__}")
    T = len(alphas_cumprod) if isinstance(alphas_cumprod, Tensor) else 0
    timesteps = ddim_timesteps(num_inference_steps, T, timestep_spacing, steps_offset)
    for t in progress(timesteps.tolist(), desc=f"DDIM, {num_inference_steps} steps", leave=False,
                      disable=not progress_bar):
        model_output = model(sample, t)
        sample = ddim_step(model_output, t, sample, alphas_cumprod, num_inference_steps, eta=eta,
                           prediction_type=prediction_type, clip_sample=clip_sample,
                           clip_sample_range=clip_sample_range, set_alpha_to_one=set_alpha_to_one,
                           generator=generator).prev_sample
    return sample


def ddim_inverse_step(
    model_output: Tensor,
    timestep: int | Tensor,
    sample: Tensor,
    alphas_cumprod: Tensor,
    num_inference_steps: int,
    *,
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    set_alpha_to_one: bool = True,
) -> DDIMStepOutput:
    r"""One DDIM step *up*, from ``timestep - T // n`` to ``timestep``: ``DDIMInverseScheduler.step``.

    The same re-noising as ``ddim_step`` at $\eta = 0$, with the two noise levels swapped:
    $x_t = \sqrt{\bar\alpha_t}\,\hat x_0 + \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon$.

    Args:
        model_output: the model's prediction, called (as diffusers' pipelines call it) with ``timestep``.
        timestep: the timestep to climb to.
        sample: the sample at the level below, ``timestep - T // n`` (or the data when that is negative).
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        num_inference_steps: the number of steps of the whole inversion.
        prediction_type: as for ``ddim_step``.
        clip_sample: as for ``ddim_step``.
        clip_sample_range: as for ``ddim_step``.
        set_alpha_to_one: below timestep 0, start from $\bar\alpha = 1$ rather than $\bar\alpha_0$.

    Returns:
        A ``DDIMStepOutput``: ``prev_sample`` is the sample at ``timestep`` (diffusers keeps the name).

    Raises:
        TypeError, ValueError: as ``ddim_step``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> x0, eps = torch.randn(3, 2), torch.randn(3, 2)
        >>> up = ddim_inverse_step(eps, 0, x0, alphas_cumprod, 10, clip_sample=False).prev_sample
        >>> torch.allclose(up, alphas_cumprod[0].sqrt() * x0 + (1 - alphas_cumprod[0]).sqrt() * eps)
        True
    """
    timestep = _check_step(model_output, timestep, sample, alphas_cumprod, num_inference_steps, 0.0,
                           prediction_type, None, None)
    alphas_cumprod = alphas_cumprod.to(sample.device)
    T = len(alphas_cumprod)
    # Where the sample is now: one jump below the target (diffusers' min() is a guard for steps_offset).
    current = min(timestep - T // num_inference_steps, T - 1)
    initial_alpha_cumprod = torch.tensor(1.0, device=sample.device) if set_alpha_to_one else alphas_cumprod[0]
    alpha_prod_t = alphas_cumprod[current] if current >= 0 else initial_alpha_cumprod
    alpha_prod_t_next = alphas_cumprod[timestep]
    pred_original_sample, pred_epsilon = predicted_x0_and_epsilon(model_output, sample, alpha_prod_t, prediction_type)
    if clip_sample:
        pred_original_sample = pred_original_sample.clamp(-clip_sample_range, clip_sample_range)
    # No sigma: a random step cannot be run backwards. Re-noise the prediction to the level above.
    pred_sample_direction = (1 - alpha_prod_t_next) ** (0.5) * pred_epsilon
    next_sample = alpha_prod_t_next ** (0.5) * pred_original_sample + pred_sample_direction
    return DDIMStepOutput(next_sample, pred_original_sample)


def ddim_invert(
    model: Model,
    sample: Tensor,
    alphas_cumprod: Tensor,
    num_inference_steps: int,
    *,
    timestep_spacing: str = "leading",
    steps_offset: int = 0,
    prediction_type: str = "epsilon",
    clip_sample: bool = True,
    clip_sample_range: float = 1.0,
    set_alpha_to_one: bool = True,
    progress_bar: bool = True,
) -> Tensor:
    r"""DDIM inversion: from data $x_0$ up to the noisiest timestep ``ddim_sample`` starts from, deterministically.

    The timesteps are ``ddim_timesteps``' in rising order (``DDIMInverseScheduler.set_timesteps``), and the
    model is called at each one before the step, as diffusers' inversion pipelines call it.

    Args:
        model: ``model(x_t, t)``.
        sample: the data $x_0$ to invert.
        alphas_cumprod: $\bar\alpha$ for every training timestep, shape ``(T,)``.
        num_inference_steps: the number of steps $n$.
        timestep_spacing: ``"leading"`` or ``"trailing"`` (diffusers' inverse scheduler offers no other).
        steps_offset: as for ``ddim_timesteps``.
        prediction_type: as for ``ddim_step``.
        clip_sample: as for ``ddim_step``.
        clip_sample_range: as for ``ddim_step``.
        set_alpha_to_one: as for ``ddim_inverse_step``.
        progress_bar: show a progress bar.

    Returns:
        The latent at timestep ``ddim_timesteps(...)[0]``, of ``sample``'s shape and dtype.

    Raises:
        ValueError: if ``timestep_spacing`` is ``"linspace"``, or as ``ddim_timesteps`` and ``ddim_step``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> model = GaussianMixture(torch.tensor([[0.5]]), torch.tensor([0.2])).denoiser(alphas_cumprod)
        >>> x0 = torch.tensor([[0.3], [0.7]])
        >>> latent = ddim_invert(model, x0, alphas_cumprod, 50, clip_sample=False, progress_bar=False)
        >>> back = ddim_sample(model, latent, alphas_cumprod, 50, clip_sample=False, progress_bar=False)
        >>> (back - x0).abs().max().item() < 0.1
        True
    """
    if not callable(model):
        raise TypeError(f"model must be a callable model(x_t, t), got {type(model).__name__}")
    if timestep_spacing not in ("leading", "trailing"):
        raise ValueError(f"timestep_spacing must be 'leading' or 'trailing' to invert, got {timestep_spacing!r}")
    T = len(alphas_cumprod) if isinstance(alphas_cumprod, Tensor) else 0
    timesteps = ddim_timesteps(num_inference_steps, T, timestep_spacing, steps_offset).flip(0)  # rising
    for t in progress(timesteps.tolist(), desc=f"DDIM inversion, {num_inference_steps} steps", leave=False,
                      disable=not progress_bar):
        model_output = model(sample, t)
        sample = ddim_inverse_step(model_output, t, sample, alphas_cumprod, num_inference_steps,
                                   prediction_type=prediction_type, clip_sample=clip_sample,
                                   clip_sample_range=clip_sample_range,
                                   set_alpha_to_one=set_alpha_to_one).prev_sample
    return sample


def moment_distance(samples: Tensor, mean: Tensor, covariance: Tensor) -> float:
    r"""How far samples' moments are from the true ones: $\lVert \hat m - m \rVert_2 + \lVert \hat C - C \rVert_F$.

    Args:
        samples: points, shape ``(N, D)``, ``N`` at least 2.
        mean: the true mean, shape ``(D,)``.
        covariance: the true covariance, shape ``(D, D)``.

    Returns:
        The distance, a float computed in float64.

    Examples:
        >>> moment_distance(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.zeros(2), torch.diag(torch.tensor([2.0, 0.0])))
        0.0
    """
    x = samples.double()
    sample_cov = torch.cov(x.T).reshape(x.size(1), x.size(1))  # (D, D), also for D = 1
    mean_gap = torch.linalg.vector_norm(x.mean(0) - mean.double())
    return (mean_gap + torch.linalg.matrix_norm(sample_cov - covariance.double())).item()


def lesson_mixture() -> GaussianMixture:
    """The lesson's data: three round Gaussians in the plane, of spread 0.05 to 0.15, inside $[-1, 1]^2$."""
    means = torch.tensor([[-0.6, -0.3], [0.5, 0.5], [0.4, -0.6]], dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.15, 0.1, 0.05]), torch.tensor([0.5, 0.3, 0.2]))


def plot_quality_vs_steps(
    *, steps: Sequence[int] = (5, 10, 20, 50, 100), etas: Sequence[float] = (0.0, 1.0), num_samples: int = 1500
) -> Figure:
    r"""Draw DDIM samples of the lesson's mixture, and their moment distance to the truth against the step count.

    Args:
        steps: the step counts to measure.
        etas: the values of $\eta$ to measure.
        num_samples: samples per measurement (the scatter shows at most 600).

    Returns:
        A figure with two axes: samples at the fewest and most steps over the data, and the distances.

    Raises:
        ValueError: if ``steps`` or ``etas`` is empty, or ``num_samples`` is below 2.

    Examples:
        >>> fig = plot_quality_vs_steps(steps=(5, 10), etas=(0.0,), num_samples=50)
        >>> len(fig.axes)
        2
    """
    steps, etas = list(steps), list(etas)
    if not steps or not etas:
        raise ValueError(f"steps and etas must not be empty, got steps={steps} and etas={etas}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, Integral) or num_samples < 2:
        raise ValueError(f"num_samples must be an int of at least 2, got {num_samples!r}")
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    data = lesson_mixture()
    model = data.denoiser(alphas_cumprod)
    x_T = torch.randn(num_samples, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fig, (ax_points, ax_dist) = new_figure(1, 2, width=10.0, height=4.0)
    shown = min(num_samples, 600)
    truth = data.sample(shown, torch.Generator().manual_seed(1))
    ax_points.plot(truth[:, 0].numpy(), truth[:, 1].numpy(), "o", markersize=2.5, markeredgewidth=0,
                   color="#999999", alpha=0.6, label="data")
    for i, eta in enumerate(etas):
        distances = []
        for n in steps:
            x0 = ddim_sample(model, x_T, alphas_cumprod, n, eta=eta, generator=torch.Generator().manual_seed(2),
                             clip_sample=False, progress_bar=False)
            distances.append(moment_distance(x0, data.mean, data.covariance))
            if i == 0 and n in (min(steps), max(steps)):
                ax_points.plot(x0[:shown, 0].numpy(), x0[:shown, 1].numpy(), "o", markersize=2.5,
                               markeredgewidth=0, alpha=0.6, label=f"DDIM, {n} steps, η = {eta:g}",
                               color=PALETTE[0 if n == min(steps) else 1])
        ax_dist.plot(steps, distances, "o-", color=PALETTE[i + 2], label=f"η = {eta:g}")
    floor = moment_distance(data.sample(num_samples, torch.Generator().manual_seed(3)), data.mean, data.covariance)
    ax_dist.axhline(floor, color="#999999", linestyle="--", label=f"{num_samples} true samples (chance)")
    ax_points.set(aspect="equal", xlim=(-1.2, 1.2), ylim=(-1.2, 1.2), title="samples")
    ax_dist.set(xscale="log", yscale="log", xlabel="inference steps", ylabel="moment distance",
                title="distance of the moments to the truth")
    ax_points.legend(fontsize=7, loc="lower left")
    ax_dist.legend(fontsize=8)
    return fig


def get_velocity(sample: Tensor, noise: Tensor, timesteps: Tensor, alphas_cumprod: Tensor) -> Tensor:
    r"""Challenge solution: the $v$ target, $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$.

    Args:
        sample: the clean samples $x_0$, shape ``(B, ...)``.
        noise: the noise $\varepsilon$, of ``sample``'s shape.
        timesteps: one timestep per sample, shape ``(B,)``, integer.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.

    Returns:
        $v$, of ``sample``'s shape and dtype.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> get_velocity(torch.ones(2, 3), torch.zeros(2, 3), torch.tensor([0, 999]), alphas_cumprod)[:, 0]
        tensor([-0.0100, -1.0000])
    """
    alpha_bar = alphas_cumprod.to(device=sample.device, dtype=sample.dtype)[timesteps.to(sample.device)]  # (B,)
    shape = (-1,) + (1,) * (sample.dim() - 1)  # (B,) -> (B, 1, ..., 1)
    return alpha_bar.sqrt().reshape(shape) * noise - (1 - alpha_bar).sqrt().reshape(shape) * sample


def check_get_velocity(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``get_velocity``."""
    g = torch.Generator().manual_seed(0)
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    for shape in ((4, 2), (3, 1, 8, 8), (5,), (8, 1, 8, 8)):
        x0 = torch.randn(shape, generator=g, dtype=torch.float64)
        eps = torch.randn(shape, generator=g, dtype=torch.float64)
        t = torch.randint(0, 1000, (shape[0],), generator=g)
        t[0] = 999
        try:
            v = candidate(x0, eps, t, alphas_cumprod)
        except Exception as err:
            raise AssertionError(f"get_velocity raised {type(err).__name__}: {err} for samples of shape {shape}") from err
        assert isinstance(v, Tensor) and v.shape == x0.shape, (
            f"for samples of shape {shape} expected v of the same shape, got "
            f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}"
        )
        a = alphas_cumprod[t].reshape((-1,) + (1,) * (x0.dim() - 1))
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        for i in range(shape[0]):
            x0_hat, eps_hat = predicted_x0_and_epsilon(v[i], x_t[i], alphas_cumprod[t[i]], "v_prediction")
            assert torch.allclose(x0_hat, x0[i], atol=1e-9) and torch.allclose(eps_hat, eps[i], atol=1e-9), (
                f"sample {i} (timestep {int(t[i])}, shape {shape}): v does not turn back into x0 and the noise; "
                "expected v = sqrt(alpha_bar_t) * noise - sqrt(1 - alpha_bar_t) * sample, alpha_bar_t per sample"
            )


def ddim_sample_visited(
    model: Model, sample: Tensor, alphas_cumprod: Tensor, num_inference_steps: int, *, timestep_spacing: str = "leading"
) -> Tensor:
    r"""Challenge solution: deterministic DDIM ($\eta = 0$, $\varepsilon$-prediction, no clipping) that steps
    from each visited timestep to the *next visited* one, and from the last to $\bar\alpha = 1$.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> model = GaussianMixture(torch.tensor([[0.5]]), torch.tensor([0.2])).denoiser(alphas_cumprod)
        >>> x = torch.randn(5, 1)
        >>> torch.equal(ddim_sample_visited(model, x, alphas_cumprod, 10),
        ...             ddim_sample(model, x, alphas_cumprod, 10, clip_sample=False, progress_bar=False))
        True
    """
    timesteps = ddim_timesteps(num_inference_steps, len(alphas_cumprod), timestep_spacing).tolist()
    for i, t in enumerate(timesteps):
        alpha_prod_t = alphas_cumprod[t]
        alpha_prod_t_prev = alphas_cumprod[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0)
        x0, eps = predicted_x0_and_epsilon(model(sample, t), sample, alpha_prod_t, "epsilon")
        sample = alpha_prod_t_prev ** (0.5) * x0 + (1 - alpha_prod_t_prev) ** (0.5) * eps
    return sample


def check_ddim_sample_visited(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``ddim_sample_visited``."""
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    model = lesson_mixture().denoiser(alphas_cumprod)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for spacing, n in (("leading", 10), ("trailing", 10), ("linspace", 10), ("trailing", 3), ("linspace", 7),
                       ("leading", 1)):
        got = candidate(model, x_T, alphas_cumprod, n, timestep_spacing=spacing)
        expected = ddim_sample_visited(model, x_T, alphas_cumprod, n, timestep_spacing=spacing)
        assert isinstance(got, Tensor) and got.shape == x_T.shape, f"{spacing}, {n} steps: expected shape (64, 2)"
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (
            f"{spacing} spacing, {n} steps: samples differ by up to {(got - expected).abs().max().item():.3g}; each "
            "step must land on the alpha_bar of the next timestep in ddim_timesteps (and 1 after the last), not "
            "on timestep - T // n"
        )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_count(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")


def _check_timesteps(num_inference_steps: object, num_train_timesteps: object, timestep_spacing: object,
                     steps_offset: object) -> None:
    _check_count("num_train_timesteps", num_train_timesteps, 1)
    _check_count("num_inference_steps", num_inference_steps, 1)
    _check_count("steps_offset", steps_offset, 0)
    if num_inference_steps > num_train_timesteps:
        raise ValueError(
            f"num_inference_steps must be at most num_train_timesteps={num_train_timesteps}, got {num_inference_steps}"
        )
    _check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
    if timestep_spacing == "leading":
        last = (num_inference_steps - 1) * (num_train_timesteps // num_inference_steps) + steps_offset
        if last > num_train_timesteps - 1:
            raise ValueError(
                f"steps_offset={steps_offset} pushes the first timestep to {last}, past the last training timestep "
                f"{num_train_timesteps - 1}"
            )


def _check_step(model_output: object, timestep: object, sample: object, alphas_cumprod: object,
                num_inference_steps: object, eta: object, prediction_type: object, generator: object,
                variance_noise: object) -> int:
    """Check the arguments of ddim_step and ddim_inverse_step, and return ``timestep`` as an int."""
    for name, value in (("model_output", model_output), ("sample", sample)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {_describe(value)}")
    if model_output.shape != sample.shape:
        raise ValueError(f"model_output must have sample's shape {tuple(sample.shape)}, got {tuple(model_output.shape)}")
    if not isinstance(alphas_cumprod, Tensor) or not alphas_cumprod.is_floating_point() or alphas_cumprod.dim() != 1:
        raise TypeError(f"alphas_cumprod must be a 1-D floating-point tensor, got {_describe(alphas_cumprod)}")
    T = len(alphas_cumprod)
    _check_count("num_inference_steps", num_inference_steps, 1)
    if num_inference_steps > T:
        raise ValueError(f"num_inference_steps must be at most num_train_timesteps={T}, got {num_inference_steps}")
    if isinstance(timestep, Tensor) and timestep.dim() == 0 and not timestep.is_floating_point():
        timestep = int(timestep)
    if isinstance(timestep, bool) or not isinstance(timestep, Integral):
        raise TypeError(f"timestep must be an int (or a 0-d integer tensor), got {_describe(timestep)}")
    if not 0 <= timestep < T:
        raise ValueError(f"timestep must lie in 0..{T - 1} (counted from 0, as in diffusers), got {timestep}")
    if isinstance(eta, bool) or not isinstance(eta, Real) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number in [0, 1] (0: DDIM, 1: DDPM's noise), got {eta!r}")
    _check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    if generator is not None and variance_noise is not None:
        raise ValueError("pass generator or variance_noise, not both: variance_noise is the noise itself")
    if variance_noise is not None and (not isinstance(variance_noise, Tensor) or variance_noise.shape != sample.shape):
        raise ValueError(f"variance_noise must be a tensor of sample's shape {tuple(sample.shape)}, got "
                         f"{_describe(variance_noise)}")
    return int(timestep)
