r"""
# Training a DDPM: Teaching the Creature to Unscramble

!!! torchenstein "The Professor speaks"
    We can dissolve a spiral into noise, and we have built a creature with a clock that looks at the
    wreckage. Tonight it learns! The grand theory says: maximise the likelihood of the data through a
    tower of Gaussian divergences. The grand practice says: guess the noise, square the error, repeat.
    I shall show you why the two are the same tower, teach the creature three ways to answer (noise,
    data, or the mysterious $v$) and convert between them exactly, keep a slow, wise average of its
    weights, and prove that it has learned something *without* generating a single sample.

**You will learn to**

- derive DDPM's simple loss from the variational bound, in four steps, and write it as
  [`ddpm_loss`][torchenstein.diffusion.ddpm.ddpm_loss];
- train a denoiser to predict $\varepsilon$, $x_0$ or $v$, convert exactly between the three, and prove
  our $v$ equal to diffusers' `get_velocity`;
- show numerically that the three objectives are one objective with different weights per timestep
  (**SNR weighting**);
- keep an **exponential moving average** of the weights, from scratch, and prove it equal to PyTorch's
  `AveragedModel`;
- train on the spiral in a hundred steps and read the loss *per timestep*, honestly;
- check that training worked without a sampler;
- dodge four of Dr. Hammer's training traps.

## From a likelihood to a mean squared error

[The forward process](../forward/index.md) turned data $x_0$ into noise through $T$ small Gaussian steps
$q(x_t \mid x_{t-1})$. A diffusion model learns the way back: a chain of Gaussians
$p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$, whose means come from a network
with weights $\theta$ and whose variances $\sigma_t^2$ are fixed (DDPM takes $\sigma_t^2 = \beta_t$). In
this section $t$ counts from 1, as in the paper. The chain in four steps:

**1. A bound.** We would like to maximise the **likelihood** $p_\theta(x_0)$, the probability the model
gives to the data; it is an integral over every path $x_{1:T}$ and cannot be computed. Jensen's
inequality gives a computable upper bound on $-\log p_\theta(x_0)$, the **variational bound** (the
negative **ELBO**, evidence lower bound), which splits into one term per timestep:

$$
-\log p_\theta(x_0) \le \mathbb E_q\Big[
\underbrace{D_\text{KL}\big(q(x_T \mid x_0) \,\|\, p(x_T)\big)}_{L_T}
+ \sum_{t=2}^{T} \underbrace{D_\text{KL}\big(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}}
\underbrace{-\,\log p_\theta(x_0 \mid x_1)}_{L_0} \Big].
$$

$D_\text{KL}(q \,\|\, p)$, the **Kullback–Leibler divergence**, measures how far a distribution $p$ is
from $q$ (zero when they are equal). $L_T$ has no parameters: the last step is pure noise either way.

**2. Gaussians everywhere.** Given $x_0$, the step backwards $q(x_{t-1} \mid x_t, x_0)$ is a Gaussian too
(Bayes' rule on Gaussians), with a known variance and the mean
$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t$.
The KL divergence between two Gaussians of fixed variances is, up to a constant, the squared distance of
their means: $L_{t-1} = \frac{1}{2\sigma_t^2} \lVert \tilde\mu_t - \mu_\theta(x_t, t) \rVert^2 + C$.

**3. Predict the noise.** Substitute $x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\varepsilon) / \sqrt{\bar\alpha_t}$
(the jump, turned round) into $\tilde\mu_t$: it becomes $\frac{1}{\sqrt{\alpha_t}}\big(x_t -
\frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,\varepsilon\big)$. The network sees $x_t$ already, so give
$\mu_\theta$ the same form with a network $\varepsilon_\theta(x_t, t)$ in place of $\varepsilon$; then the
distance of the means is the distance of the noises:

$$
L_{t-1} = \underbrace{\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1 - \bar\alpha_t)}}_{\lambda_t}\,
\mathbb E_{x_0, \varepsilon}\big\lVert \varepsilon - \varepsilon_\theta(x_t, t) \big\rVert^2 + C .
$$

**4. Drop the weights.** Ho et al. (2020) found that training with every $\lambda_t$ set to 1 and a
timestep drawn uniformly gives better samples. That is the **simple loss**:

$$
L_\text{simple} = \mathbb E_{t \sim \mathcal U\{1..T\},\, x_0,\, \varepsilon \sim \mathcal N(0, I)}
\Big\lVert \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon,\; t\big)\Big\rVert^2 .
$$

What did dropping the weights do? With $\sigma_t^2 = \beta_t$, $\lambda_t = \beta_t / (2\alpha_t(1 - \bar\alpha_t))$;
in code (counted from zero, as always from here on):

```pycon
>>> import torch
>>> from torchenstein.diffusion.schedules import noise_schedule
>>> schedule = noise_schedule()                          # DDPM's linear schedule, T = 1000
>>> betas, alphas, alphas_cumprod = schedule
>>> lam = betas / (2 * alphas * (1 - alphas_cumprod))   # (T,): the bound's weight of each timestep
>>> {"first": round(lam[0].item(), 4), "last": round(lam[-1].item(), 4), "first / last": round((lam[0] / lam[-1]).item())}
{'first': 0.5, 'last': 0.0102, 'first / last': 49}

```

The bound weighs the first, nearly clean timesteps 49 times more than the last; the simple loss weighs
them all alike, so it spends relatively more effort on the noisy timesteps, where the model must
invent the data's coarse shape.

## The loss in code

[`ddpm_loss`][torchenstein.diffusion.ddpm.ddpm_loss]`(model, x0, schedule, generator=None,
prediction_type="epsilon")` is $L_\text{simple}$ on one **batch**: one timestep per sample, uniform over
$0..T-1$, drawn with `torch.randint(0, T, (B,))`, then fresh standard normal noise of `x0`'s shape, the
jump [`q_sample`][torchenstein.diffusion.forward.q_sample], and the mean squared error of the model's
answer (`F.mse_loss` averages over every element: the squared norm divided by the sample's size, a
constant factor). It takes a `NoiseSchedule` or its `alphas_cumprod`, and draws from `generator` in the
order of the [forward lesson's](../forward/index.md) `noisy_training_batch` challenge: timesteps first,
then the noise.

Our data: [`spiral_data`][torchenstein.diffusion.ddpm.spiral_data], the two-armed spiral of
[The training loop](../../training/loop/index.md) doubled to about unit spread, and the
[`MLPDenoiser`][torchenstein.diffusion.denoiser.MLPDenoiser] of [The denoiser](../denoiser/index.md),
which starts by predicting $\hat\varepsilon = 0$, so its first loss is the mean square of the noise, about 1:

```pycon
>>> from torchenstein.diffusion.ddpm import ddpm_loss, spiral_data
>>> from torchenstein.diffusion.denoiser import MLPDenoiser
>>> from torchenstein.diffusion.forward import q_sample
>>> points = spiral_data()                              # (400, 2)
>>> _ = torch.manual_seed(0)
>>> model = MLPDenoiser(hidden_dim=64)
>>> loss = ddpm_loss(model, points, schedule, generator=torch.Generator().manual_seed(0))
>>> g = torch.Generator().manual_seed(0)                # the same draws, by hand
>>> t = torch.randint(0, 1000, (400,), generator=g)
>>> noise = torch.randn(400, 2, generator=g)
>>> by_hand = ((model(q_sample(points, t, alphas_cumprod, noise), t) - noise) ** 2).mean()
>>> {"points": tuple(points.shape), "loss": round(loss.item(), 2), "by hand": torch.allclose(loss, by_hand),
...  "requires_grad": loss.requires_grad}
{'points': (400, 2), 'loss': 1.0, 'by hand': True, 'requires_grad': True}

```

## Three things to predict: $\varepsilon$, $x_0$ and $v$

The network may answer with anything from which $\varepsilon$ follows. diffusers names three choices,
`prediction_type`: `"epsilon"` (the noise, DDPM's), `"sample"` (the clean $x_0$) and `"v_prediction"`,
Salimans and Ho's (2022) **velocity**

$$
v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0 .
$$

Write $a = \sqrt{\bar\alpha_t}$ and $s = \sqrt{1 - \bar\alpha_t}$; then $a^2 + s^2 = 1$, so there is an
angle $\phi_t$ with $a = \cos\phi_t$, $s = \sin\phi_t$, and $x_t = a x_0 + s\varepsilon$, $v = a\varepsilon -
s x_0$ are $(x_0, \varepsilon)$ **rotated** by $\phi_t$. A rotation is undone by rotating back, with no
division: $x_0 = a x_t - s v$ and $\varepsilon = s x_t + a v$. Between $\varepsilon$ and $x_0$ one must
divide: $x_0 = (x_t - s\varepsilon)/a$ and $\varepsilon = (x_t - a x_0)/s$.
[`velocity`][torchenstein.diffusion.ddpm.velocity] computes $v$ as diffusers' `get_velocity` does;
[`predicted_x0_and_epsilon`][torchenstein.diffusion.ddpm.predicted_x0_and_epsilon] turns any prediction
into the pair $(\hat x_0, \hat\varepsilon)$, and [`convert_prediction`][torchenstein.diffusion.ddpm.convert_prediction]
into any other type. Every conversion, there and back, in float64, at both ends of the schedule:

```pycon
>>> from torchenstein.diffusion.ddpm import PREDICTION_TYPES, convert_prediction, velocity
>>> x0, alpha_bar = points[:8].double(), alphas_cumprod.double()
>>> t = torch.tensor([0, 1, 10, 100, 500, 900, 998, 999])   # (B,)
>>> eps = torch.randn(8, 2, dtype=torch.float64)
>>> x_t = q_sample(x0, t, alpha_bar, eps)
>>> truth = {"epsilon": eps, "sample": x0, "v_prediction": velocity(x0, t, alpha_bar, eps)}
>>> worst = max((convert_prediction(truth[a], x_t, t, alpha_bar, a, b) - truth[b]).abs().max().item()
...             for a in PREDICTION_TYPES for b in PREDICTION_TYPES)
>>> {"worst error of 9 conversions": worst < 1e-12,
...  "a rotation keeps lengths": torch.allclose(x_t**2 + truth["v_prediction"]**2, x0**2 + eps**2)}
{'worst error of 9 conversions': True, 'a rotation keeps lengths': True}

```

The divisions matter at the ends. A schedule rescaled to zero terminal SNR (see
[Noise schedules](../schedules/index.md)) has $a = 0$ at its last timestep: there an $\varepsilon$
prediction says nothing about $x_0$ and the formula divides by zero, while $v$ still does:

```pycon
>>> zero_snr = noise_schedule(rescale_betas_zero_snr=True).alphas_cumprod
>>> last, guess, noisy = torch.tensor([999]), torch.randn(1, 2), torch.randn(1, 2)
>>> {kind: bool(convert_prediction(guess, noisy, last, zero_snr, kind, "sample").isfinite().all())
...  for kind in ("epsilon", "v_prediction")}
{'epsilon': False, 'v_prediction': True}

```

The tests prove `velocity` equal to diffusers' `DDPMScheduler.get_velocity` **bit for bit** in float32
and float64 (images and points, per-sample and single timesteps, several schedules), and every round
trip to within $10^{-12}$ in float64.

## One objective, three weightings

Train with `prediction_type="sample"` and the loss is $\lVert \hat x_0 - x_0 \rVert^2$. Train with
`"epsilon"` and, since $\hat x_0 - x_0 = -\frac{s}{a}(\hat\varepsilon - \varepsilon)$,

$$
\lVert \hat\varepsilon - \varepsilon \rVert^2 = \frac{a^2}{s^2}\lVert \hat x_0 - x_0 \rVert^2
= \operatorname{SNR}(t)\, \lVert \hat x_0 - x_0 \rVert^2, \qquad
\lVert \hat v - v \rVert^2 = \big(\operatorname{SNR}(t) + 1\big)\, \lVert \hat x_0 - x_0 \rVert^2 ,
$$

with $\operatorname{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$, the signal-to-noise ratio of the
[forward lesson](../forward/index.md). The three losses are the *same* $x_0$ error, weighted per
timestep by $w(t) = \operatorname{SNR}$, $1$ or $\operatorname{SNR} + 1$:
[`snr_weighting`][torchenstein.diffusion.ddpm.snr_weighting]. The $\varepsilon$ loss weighs the clean
timesteps ten thousand times more than $x_0$ does, the $v$ loss never weighs a timestep less than 1.
Any prediction, measured three ways:

```pycon
>>> from torchenstein.diffusion.ddpm import snr_weighting
>>> eps_hat = eps + 0.1 * torch.randn(8, 2, dtype=torch.float64)      # an imperfect prediction
>>> guesses = {kind: convert_prediction(eps_hat, x_t, t, alpha_bar, "epsilon", kind) for kind in PREDICTION_TYPES}
>>> def mse(a, b):                                                     # per sample, (B,)
...     return ((a - b) ** 2).mean(dim=1)
>>> x0_error = mse(guesses["sample"], x0)
>>> {kind: torch.allclose(mse(guesses[kind], truth[kind]), snr_weighting(t, alpha_bar, kind) * x0_error)
...  for kind in PREDICTION_TYPES}
{'epsilon': True, 'sample': True, 'v_prediction': True}
>>> {step: round(snr_weighting(step, alpha_bar, "epsilon").item(), 5) for step in (0, 500, 999)}
{0: 9997.34088, 500: 0.08436, 999: 4e-05}

```

So the choice of target *is* a choice of weighting, and the Min-SNR challenge below chooses one on purpose.

## An average of the weights: EMA

The weights of a network trained with a noisy loss jitter from step to step. Image generators evaluate
and sample with an **exponential moving average** (EMA) of the weights instead:
$\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1 - d)\,\theta$ after every optimiser step, with a
**decay** $d$ close to 1, so the average spans roughly the last $1/(1 - d)$ steps (DDPM: $d = 0.9999$ over
800,000 steps; our few hundred steps want about $0.95$). [`ema_copy`][torchenstein.diffusion.ddpm.ema_copy]
makes the average's model (a deep copy, in eval mode, without gradients) and
[`ema_update`][torchenstein.diffusion.ddpm.ema_update] takes one step, with `lerp_`. PyTorch ships the
same average as `torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d))`
(in PyTorch since 2.1), whose first update copies the weights:

```pycon
>>> from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
>>> from torchenstein.diffusion.ddpm import ema_copy, ema_update
>>> from torchenstein.training.adam import AdamW
>>> _ = torch.manual_seed(0)
>>> net = MLPDenoiser(hidden_dim=16)
>>> ours, theirs = ema_copy(net), AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9))
>>> theirs.update_parameters(net)                          # its first update: a copy
>>> optimizer = AdamW(net.parameters(), lr=1e-2)
>>> for step in range(5):
...     loss = ddpm_loss(net, points, schedule)
...     optimizer.zero_grad(set_to_none=True)
...     loss.backward()
...     optimizer.step()
...     ema_update(ours, net, decay=0.9)
...     theirs.update_parameters(net)
>>> {"equal to AveragedModel": all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.module.parameters())),
...  "equal to the live weights": all(torch.equal(a, b) for a, b in zip(ours.parameters(), net.parameters()))}
{'equal to AveragedModel': True, 'equal to the live weights': False}

```

## Training on the spiral

[`train_ddpm`][torchenstein.diffusion.ddpm.train_ddpm] is the loop of
[The training loop](../../training/loop/index.md) around `ddpm_loss`: draw a batch, the loss, zero the
gradients, backward, the course's [`AdamW`][torchenstein.training.adam.AdamW] step, then the EMA step. One
generator, seeded, draws the batches, the timesteps and the noise, and a progress bar from the lab's
`progress` shows the run (switched off here). A hundred steps:

```pycon
>>> from torchenstein.diffusion.ddpm import train_ddpm
>>> _ = torch.manual_seed(0)
>>> model = MLPDenoiser(hidden_dim=64)
>>> untrained = ema_copy(model)                            # the starting point, kept for comparison
>>> run = train_ddpm(model, points, schedule, steps=100, batch_size=128, lr=1e-2, ema_decay=0.95, seed=0,
...                  progress_bar=False)
>>> first, last = sum(run.losses[:10]) / 10, sum(run.losses[-10:]) / 10
>>> {"steps": len(run.losses), "first 10 steps": round(first, 1), "last 10 steps": round(last, 1)}
{'steps': 100, 'first 10 steps': 0.5, 'last 10 steps': 0.2}

```

![The training loss of the spiral denoiser over 200 steps: a noisy line that falls from above 1 within the first few steps and levels off well above zero, its running mean drawn thick, and a dotted line at 1 for the model that predicts zero.](plot_training_curve.svg)

The loss levels off near the 0.2 printed above, not near zero, and that is no failure: at many
timesteps the noise *cannot* be read off $x_t$, as the next section measures.

## Did it learn? The loss per timestep

No sampler is needed to check the model (sampling is the next lesson). Measure the $\varepsilon$ error
at each timestep on the whole data set, with the same noise for the untrained and the trained model:
[`mse_by_timestep`][torchenstein.diffusion.ddpm.mse_by_timestep] (in eval mode, without gradients, every
mode restored afterwards). The untrained model predicts 0 and scores the mean square of the noise, about 1,
everywhere:

```pycon
>>> from torchenstein.diffusion.ddpm import mse_by_timestep
>>> timesteps = [0, 10, 50, 100, 250, 500, 750, 999]
>>> before = mse_by_timestep(untrained, points, schedule, timesteps, torch.Generator().manual_seed(1))
>>> after = mse_by_timestep(run.ema_model, points, schedule, timesteps, torch.Generator().manual_seed(1))
>>> for step, b, a in zip(timesteps, before.tolist(), after.tolist()):
...     print(f"t = {step:3}   untrained {b:.2f}   trained {a:.1f}   under half: {a < b / 2}")
t =   0   untrained 1.03   trained 1.0   under half: False
t =  10   untrained 1.10   trained 1.1   under half: False
t =  50   untrained 1.08   trained 1.0   under half: False
t = 100   untrained 0.96   trained 0.8   under half: False
t = 250   untrained 0.90   trained 0.4   under half: True
t = 500   untrained 1.00   trained 0.1   under half: True
t = 750   untrained 1.12   trained 0.0   under half: True
t = 999   untrained 1.00   trained 0.0   under half: True

```

Honestly, then: the $\varepsilon$ loss is *large at small $t$* and tiny at large $t$. At $t = 999$,
$x_t$ is almost all noise, so $\hat\varepsilon = x_t$ is nearly exact. At $t = 0$ the noise is a
speck of size $s = \sqrt{1 - \bar\alpha_0} \approx 0.01$ (printed in the [forward lesson](../forward/index.md)) on a point whose position along the spiral's blurred arm is itself
uncertain on a larger scale: no denoiser can tell the speck from the data, and the best guess of
$\varepsilon$ is close to 0, with an error close to 1. That is also why it does not matter: the $x_0$
error is the $\varepsilon$ error divided by $\operatorname{SNR}(t)$ (the right panel below). Recover
$\hat x_0$ from a noisy point and compare it with the truth, and with the guess of the untrained model,
$x_t / \sqrt{\bar\alpha_t}$:

```pycon
>>> from torchenstein.diffusion.ddpm import predicted_x0_and_epsilon
>>> def x0_distance(step):                 # mean distance to the truth: trained guess, untrained guess
...     noise = torch.randn(points.shape, generator=torch.Generator().manual_seed(2))
...     x_t = q_sample(points, step, alphas_cumprod, noise)
...     with torch.no_grad():
...         x0_hat, _ = predicted_x0_and_epsilon(run.ema_model(x_t, step), x_t, step, alphas_cumprod)
...     naive = x_t / alphas_cumprod[step].sqrt()
...     return [round((x0_hat - points).norm(dim=1).mean().item(), 1), round((naive - points).norm(dim=1).mean().item(), 2)]
>>> {"t = 50": x0_distance(50), "t = 250": x0_distance(250), "spread of the data": round(points.norm(dim=1).mean().item(), 2)}
{'t = 50': [0.2, 0.22], 't = 250': [0.8, 1.19], 'spread of the data': 1.0}

```

At $t = 50$ the recovered points lie within about a fifth of the data's spread of the truth, but the
plain rescaled $x_t$ is nearly as close: the model adds little where there is little to add. At
$t = 250$ it brings them a third closer than the rescaled $x_t$. Over all timesteps, the $x_0$ error
is tiny where the $\varepsilon$ error is large and grows where the $\varepsilon$ error vanishes, since
there a small error in $\hat\varepsilon$ is divided by a small $\sqrt{\bar\alpha_t}$:

![Two panels over the timesteps 0 to 999. Left: the epsilon error of the untrained model hovers around 1 everywhere; the trained model and its EMA start near 1 at t = 0 and fall steadily to nearly 0 beyond t = 500. Right, on a log scale: the same errors divided by the SNR, the error of the recovered x0, tiny at small t and rising with t; the untrained model's rises furthest, the EMA's least.](plot_loss_by_timestep.svg)

## Against the real thing

The tests (`tests/test_ddpm.py`) prove: `velocity` equal to diffusers' `get_velocity` bit for bit; the
EMA equal, bit for bit, to `AveragedModel` with `get_ema_multi_avg_fn` over 20 training steps in float32
and float64 (and to the formula $d\,\theta_\text{EMA} + (1 - d)\,\theta$ to rounding); `ddpm_loss` equal to
the loss computed by hand from the forward lesson's `noisy_training_batch` for all three prediction types,
on the MLP and on a U-Net; its timesteps covering $0..T-1$ uniformly; the conversions' round trips; the
SNR weighting; training that lowers the $\varepsilon$ error at every $t \ge 250$ measured to under 0.6 of
the untrained model's, and recovers $\hat x_0$ closer than $x_t / \sqrt{\bar\alpha_t}$, with seeds fixed
and margins wide.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: timesteps from 1 to T"
    Hammer copies the paper's $t \sim \mathcal U\{1, \dots, T\}$ into code. `torch.randint(1, T + 1, ...)`
    crashes once in a while (the [forward lesson](../forward/index.md) showed the `IndexError`), so he
    "fixes" it to `torch.randint(1, T, ...)`. Now nothing crashes, and timestep 0, the very step the
    sampler takes last to polish its sample, is never trained on at all:

    ```pycon
    >>> g = torch.Generator().manual_seed(0)
    >>> hammer_t = torch.randint(1, 1000, (100_000,), generator=g)
    >>> ours_t = torch.randint(0, 1000, (100_000,), generator=g)
    >>> {"hammer trains on t = 0": bool((hammer_t == 0).any()), "we do": bool((ours_t == 0).any()),
    ...  "our largest t": int(ours_t.max())}
    {'hammer trains on t = 0': False, 'we do': True, 'our largest t': 999}

    ```

    With 1000 timesteps, one missing step is a blemish; with the few dozen of a short schedule, it is a
    hole. Count from zero, upper end exclusive: `torch.randint(0, T, (B,))`, as `ddpm_loss` does.

!!! hammer "Dr. Hammer's trap: an EMA born in training mode"
    Hammer makes his average with `copy.deepcopy(model)`. A copy keeps every flag of the original, so his
    EMA model is in training mode: its dropout drops, and each evaluation gives another answer (and with
    `requires_grad` still on, every evaluation builds a graph). Worse, he evaluates the *live* model with
    `model.eval()` halfway through training and forgets `model.train()`: the rest of the run trains
    without dropout. `ema_copy` switches the copy to eval mode once and for all, and `mse_by_timestep`
    evaluates inside the [`evaluating`][torchenstein.nn.modes.evaluating] context of
    [Train vs eval](../../nn/modes/index.md), which puts every flag back:

    ```pycon
    >>> import copy
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 32), nn.Dropout(0.1), nn.Linear(32, 2))
    >>> x = torch.randn(4, 2)
    >>> hammer_ema = copy.deepcopy(net)
    >>> {"training": hammer_ema.training, "two calls agree": torch.equal(hammer_ema(x), hammer_ema(x))}
    {'training': True, 'two calls agree': False}
    >>> ema = ema_copy(net)
    >>> {"training": ema.training, "two calls agree": torch.equal(ema(x), ema(x))}
    {'training': False, 'two calls agree': True}
    >>> _ = run.model.train()
    >>> _ = mse_by_timestep(run.model, points, schedule, [500])
    >>> run.model.training                                       # still training after the evaluation
    True

    ```

!!! hammer "Dr. Hammer's trap: one noise for the whole batch"
    Hammer draws `torch.randn(1, 2)`, "a noise", for his batch of points. `q_sample` refuses it, so he
    expands it to the batch's shape. Now it passes, and every point in the batch is pushed in the same
    direction: the batch holds one noise instead of 256, the loss's gradient is averaged over far fewer
    independent draws, and the model learns more slowly (the tests train both ways for the same number of
    steps and Hammer's ends with the larger error).

    ```pycon
    >>> batch = points[:256]
    >>> steps_t = torch.randint(0, 1000, (256,))
    >>> shared = torch.randn(1, 2)
    >>> q_sample(batch, steps_t, alphas_cumprod, shared)
    Traceback (most recent call last):
    ...
    ValueError: noise must have x0's shape (256, 2), got (1, 2)
    >>> hammer_noise = shared.expand_as(batch)                   # accepted, and wrong
    >>> {"hammer's spread over the batch": hammer_noise.std(dim=0).tolist(),
    ...  "ours": [round(v, 1) for v in torch.randn_like(batch).std(dim=0).tolist()]}
    {"hammer's spread over the batch": [0.0, 0.0], 'ours': [1.0, 1.0]}

    ```

!!! hammer "Dr. Hammer's trap: grey levels 0..16 fed to the noise"
    scikit-learn's digits have grey levels from 0 to 16. Hammer trains on them as they are. The schedule
    was designed for data of about unit size; his data's mean square is many times larger, so the
    noise overtakes the signal hundreds of timesteps later than the schedule was designed for. And when his model (trained, at last, on the right scale) produces samples in $[-1, 1]$,
    he shows them as grey levels without converting back, and rounds: three grey levels out of seventeen.
    [`normalize`][torchenstein.diffusion.ddpm.normalize] maps $[0, 16]$ to $[-1, 1]$ (bit for bit the
    rescaling of [`load_digit_images`][torchenstein.diffusion.forward.load_digit_images]) and
    [`denormalize`][torchenstein.diffusion.ddpm.denormalize] maps back, clamping the overshoot first.

    ```pycon
    >>> from torchenstein.diffusion.ddpm import denormalize, normalize
    >>> from torchenstein.diffusion.forward import load_digit_images, snr
    >>> images, _ = load_digit_images()                          # already in [-1, 1]
    >>> raw = denormalize(images)                                # the grey levels 0..16
    >>> def first_noisy_timestep(data):                          # noise outweighs the data's mean square
    ...     return int((snr(alphas_cumprod) * (data**2).mean() < 1).nonzero()[0])
    >>> {"raw 0..16": first_noisy_timestep(raw), "normalised": first_noisy_timestep(images),
    ...  "mean square, raw / normalised": round(((raw**2).mean() / (images**2).mean()).item())}
    {'raw 0..16': 636, 'normalised': 228, 'mean square, raw / normalised': 84}
    >>> {"round trip": torch.equal(normalize(raw), images), "grey levels": len(denormalize(images).unique()),
    ...  "hammer's grey levels": images.round().unique().tolist()}
    {'round trip': True, 'grey levels': 17, "hammer's grey levels": [-1.0, 0.0, 1.0]}

    ```

## Challenges

**1. Min-SNR-γ weights.** Hang et al. (2023) weigh each timestep's $x_0$ error by $\min(\operatorname{SNR}(t), \gamma)$
(with $\gamma = 5$): the clean timesteps, which the $\varepsilon$ loss over-weighs thousands of times,
are capped. For a model trained on another target the weight must be divided by that target's own
$w(t)$ (see "One objective, three weightings"). Write `min_snr_loss_weights(t, alphas_cumprod, snr_gamma=5.0,
prediction_type="epsilon")` returning one weight per timestep, shape $(B,)$, to multiply the per-sample
MSE. `check_min_snr_loss_weights(candidate)` checks it on three schedules and all three prediction types.

**2. An EMA that warms up.** With $d = 0.9999$ the average would remember the random initial weights for
thousands of steps. diffusers' `EMAModel` warms the decay up: with $n$ = `optimization_step` $- 1$, the
decay is 0 while $n \le 0$, then $\min\big(d, \frac{1 + n}{10 + n}\big)$. Write
`ema_warmup_decay(optimization_step, decay=0.9999)`, the rule of `EMAModel.get_decay` with its defaults;
`check_ema_warmup_decay(candidate)` checks it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.diffusion.forward import _check_forward_args, _describe, per_sample, q_sample, snr
from torchenstein.diffusion.schedules import NoiseSchedule, noise_schedule
from torchenstein.lab import PALETTE, new_figure, progress
from torchenstein.nn.modes import evaluating
from torchenstein.training.adam import AdamW
from torchenstein.training.loop import make_spiral

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
"""What a denoiser can be trained to predict, by diffusers' names: the noise, the clean sample, or v."""


def ddpm_loss(
    model: Callable[..., Tensor],
    x0: Tensor,
    schedule: NoiseSchedule | Tensor,
    generator: torch.Generator | None = None,
    prediction_type: str = "epsilon",
) -> Tensor:
    r"""DDPM's simplified loss on one batch: $\lVert \text{target} - \text{model}(x_t, t) \rVert^2$, averaged.

    One timestep per sample is drawn uniformly from ``0..T-1`` (first), then standard normal noise of
    ``x0``'s shape (second), from ``generator``; ``x_t`` is ``q_sample(x0, t, alphas_cumprod, noise)``.

    Args:
        model: a denoiser, called as ``model(x_t, t)`` with ``t`` of shape ``(B,)``.
        x0: a batch of clean samples, shape ``(B, ...)``, floating point, at least one sample.
        schedule: a [`NoiseSchedule`][torchenstein.diffusion.schedules.NoiseSchedule], or its
            ``alphas_cumprod`` alone, shape ``(T,)``.
        generator: the random number generator for the timesteps and the noise (``None``: the global one).
        prediction_type: ``"epsilon"`` (the noise), ``"sample"`` ($x_0$) or ``"v_prediction"`` ($v$).

    Returns:
        The mean squared error, a 0-d tensor with gradients, in float32 (float64 for a float64 model).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``x0`` is empty, ``prediction_type`` is unknown, or the model's output does not
            have ``x0``'s shape.

    Examples:
        >>> from torchenstein.diffusion.denoiser import MLPDenoiser
        >>> loss = ddpm_loss(MLPDenoiser(), torch.randn(8, 2), noise_schedule())
        >>> loss.shape, loss.requires_grad
        (torch.Size([]), True)
    """
    alphas_cumprod = _check_loss_args(model, x0, schedule, generator, prediction_type)
    T = alphas_cumprod.size(0)
    # A generator lives on one device and draws there; the draws then move to the data.
    draw_on = generator.device if generator is not None else x0.device
    # One timestep per sample, uniform over 0..T-1: randint's upper end is exclusive, and the schedule's
    # arrays are indexed from zero.
    t = torch.randint(0, T, (x0.size(0),), generator=generator, device=draw_on).to(x0.device)  # (B,)
    # Fresh noise for every sample and every coordinate: x0's own shape, never one that broadcasts.
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=draw_on).to(x0.device)
    x_t = q_sample(x0, t, alphas_cumprod, noise)  # (B, ...)
    target = training_target(x0, noise, t, alphas_cumprod, prediction_type)  # (B, ...)
    prediction = model(x_t, t)  # (B, ...)
    if not isinstance(prediction, Tensor) or prediction.shape != x0.shape:
        got = tuple(prediction.shape) if isinstance(prediction, Tensor) else type(prediction).__name__
        raise ValueError(f"model(x_t, t) must return a tensor of x0's shape {tuple(x0.shape)}, got {got}")
    # The error is squared and averaged in at least float32, as diffusers' training scripts do: in half
    # precision the squares of small errors would underflow.
    loss_dtype = torch.promote_types(prediction.dtype, torch.float32)
    return F.mse_loss(prediction.to(loss_dtype), target.to(loss_dtype))


def training_target(x0: Tensor, noise: Tensor, t: int | Tensor, alphas_cumprod: Tensor,
                    prediction_type: str = "epsilon") -> Tensor:
    r"""What the model is asked to output for ``x_t = q_sample(x0, t, alphas_cumprod, noise)``.

    Args:
        x0: the clean samples, shape ``(B, ...)``.
        noise: the noise that made ``x_t``, of ``x0``'s shape.
        t: the timestep(s), an int or shape ``(B,)``, counted from 0.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        prediction_type: ``"epsilon"`` ($\varepsilon$), ``"sample"`` ($x_0$) or ``"v_prediction"`` ($v$).

    Returns:
        The target, of ``x0``'s shape and dtype.

    Raises:
        ValueError: if ``prediction_type`` is not one of ``PREDICTION_TYPES``.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> training_target(torch.ones(1, 2), torch.zeros(1, 2), 0, alphas_cumprod, "v_prediction")
        tensor([[-0.6000, -0.6000]])
    """
    _check_prediction_type("prediction_type", prediction_type)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    return velocity(x0, t, alphas_cumprod, noise)


def velocity(x0: Tensor, t: int | Tensor, alphas_cumprod: Tensor, noise: Tensor) -> Tensor:
    r"""The v-prediction target $v = \sqrt{\bar\alpha_t}\,\varepsilon - \sqrt{1 - \bar\alpha_t}\,x_0$.

    The same operations, in the same order, as diffusers' ``DDPMScheduler.get_velocity(x0, noise, t)``;
    float16 and bfloat16 are computed in float32 and rounded once, as in ``q_sample``.

    Args:
        x0: the clean samples, shape ``(B, ...)``.
        t: the timestep(s), an int or shape ``(B,)``, counted from 0.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        noise: the noise, of ``x0``'s shape.

    Returns:
        $v$, of ``x0``'s shape and dtype.

    Raises:
        TypeError: if a tensor is not floating point, or ``t`` is not an int or an integer tensor.
        ValueError: if shapes disagree or a timestep lies outside ``0..T-1``.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> velocity(torch.ones(2, 1), torch.tensor([0, 1]), alphas_cumprod, torch.zeros(2, 1))
        tensor([[-0.6000],
                [-0.8000]])
    """
    t = _check_forward_args("x0", x0, t, "alphas_cumprod", alphas_cumprod, noise)
    compute = torch.promote_types(x0.dtype, torch.float32)
    alpha_bar = alphas_cumprod.to(device=x0.device, dtype=compute)[t]  # () or (B,)
    sqrt_alpha_bar = per_sample(alpha_bar.sqrt(), x0)  # (B, 1, ..., 1)
    sqrt_one_minus_alpha_bar = per_sample((1 - alpha_bar).sqrt(), x0)  # (B, 1, ..., 1)
    # v is x_t's partner: x_t and v are (x0, eps) turned by the angle whose cosine is sqrt(alpha_bar).
    v = sqrt_alpha_bar * noise.to(compute) - sqrt_one_minus_alpha_bar * x0.to(compute)
    return v.to(x0.dtype)


def predicted_x0_and_epsilon(prediction: Tensor, x_t: Tensor, t: int | Tensor, alphas_cumprod: Tensor,
                             prediction_type: str = "epsilon") -> tuple[Tensor, Tensor]:
    r"""Turn any of the three predictions into the pair $(\hat x_0, \hat\varepsilon)$ it implies.

    With $a = \sqrt{\bar\alpha_t}$ and $s = \sqrt{1 - \bar\alpha_t}$ (so $a^2 + s^2 = 1$) and
    $x_t = a x_0 + s \varepsilon$:
    from $\hat\varepsilon$, $\hat x_0 = (x_t - s\hat\varepsilon) / a$; from $\hat x_0$,
    $\hat\varepsilon = (x_t - a\hat x_0) / s$; from $\hat v$, $\hat x_0 = a x_t - s\hat v$ and
    $\hat\varepsilon = s x_t + a\hat v$, with no division at all.

    Args:
        prediction: the model's output, of ``x_t``'s shape.
        x_t: the noisy samples the model saw, shape ``(B, ...)``.
        t: their timestep(s), an int or shape ``(B,)``, counted from 0.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        prediction_type: what ``prediction`` is: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

    Returns:
        ``(x0_hat, epsilon_hat)``, each of ``x_t``'s shape and dtype. Dividing by $a = 0$ (a schedule with
        zero terminal SNR, from ``"epsilon"``) or by $s = 0$ (from ``"sample"``) gives ``inf`` or ``nan``,
        as the formulas do.

    Raises:
        TypeError: if a tensor is not floating point, or ``t`` is not an int or an integer tensor.
        ValueError: if shapes disagree, a timestep is out of range, or ``prediction_type`` is unknown.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> x0_hat, eps_hat = predicted_x0_and_epsilon(torch.zeros(1, 2), torch.ones(1, 2), 1, alphas_cumprod)
        >>> x0_hat                                   # eps_hat = 0: x_t / sqrt(alpha_bar) = 1 / 0.6
        tensor([[1.6667, 1.6667]])
    """
    _check_prediction_type("prediction_type", prediction_type)
    if not isinstance(prediction, Tensor) or not prediction.is_floating_point():
        raise TypeError(f"prediction must be a floating-point tensor, got {_describe(prediction)}")
    if isinstance(x_t, Tensor) and prediction.shape != x_t.shape:
        raise ValueError(f"prediction must have x_t's shape {tuple(x_t.shape)}, got {tuple(prediction.shape)}")
    t = _check_forward_args("x_t", x_t, t, "alphas_cumprod", alphas_cumprod, prediction)
    compute = torch.promote_types(x_t.dtype, torch.float32)
    alpha_bar = alphas_cumprod.to(device=x_t.device, dtype=compute)[t]  # () or (B,)
    a = per_sample(alpha_bar.sqrt(), x_t)  # (B, 1, ..., 1): the signal's scale
    s = per_sample((1 - alpha_bar).sqrt(), x_t)  # (B, 1, ..., 1): the noise's scale
    x, p = x_t.to(compute), prediction.to(compute)
    if prediction_type == "epsilon":
        epsilon = p
        x0 = (x - s * epsilon) / a  # divides by a, which is ~0.006 at the last timestep
    elif prediction_type == "sample":
        x0 = p
        epsilon = (x - a * x0) / s  # divides by s, which is ~0.01 at the first timestep
    else:
        # (x_t, v) is (x0, eps) rotated by an angle; rotating back needs no division.
        x0 = a * x - s * p
        epsilon = s * x + a * p
    return x0.to(x_t.dtype), epsilon.to(x_t.dtype)


def convert_prediction(prediction: Tensor, x_t: Tensor, t: int | Tensor, alphas_cumprod: Tensor,
                       from_type: str, to_type: str) -> Tensor:
    r"""Convert a prediction of one type (``"epsilon"``, ``"sample"``, ``"v_prediction"``) into another.

    Args:
        prediction: the model's output, of ``x_t``'s shape.
        x_t: the noisy samples the model saw, shape ``(B, ...)``.
        t: their timestep(s), an int or shape ``(B,)``, counted from 0.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        from_type: what ``prediction`` is.
        to_type: what to return.

    Returns:
        The prediction of type ``to_type``, of ``x_t``'s shape and dtype.

    Raises:
        ValueError: if a type is not one of ``PREDICTION_TYPES`` (and as ``predicted_x0_and_epsilon``).

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> convert_prediction(torch.zeros(1, 2), torch.ones(1, 2), 0, alphas_cumprod, "epsilon", "v_prediction")
        tensor([[-0.7500, -0.7500]])
        >>> convert_prediction(torch.zeros(1, 2), torch.ones(1, 2), 0, alphas_cumprod, "noise", "sample")
        Traceback (most recent call last):
        ...
        ValueError: from_type must be one of ('epsilon', 'sample', 'v_prediction'), got 'noise'
    """
    _check_prediction_type("from_type", from_type)
    _check_prediction_type("to_type", to_type)
    x0, epsilon = predicted_x0_and_epsilon(prediction, x_t, t, alphas_cumprod, from_type)
    if to_type == "epsilon":
        return epsilon
    if to_type == "sample":
        return x0
    return velocity(x0, t, alphas_cumprod, epsilon)


def snr_weighting(t: int | Tensor, alphas_cumprod: Tensor, prediction_type: str) -> Tensor:
    r"""The weight $w(t)$ with $\text{MSE}_\text{type} = w(t)\,\lVert \hat x_0 - x_0 \rVert^2$ per sample.

    $\text{SNR}(t)$ for ``"epsilon"``, 1 for ``"sample"``, $\text{SNR}(t) + 1$ for ``"v_prediction"``.

    Args:
        t: the timestep(s), an int or an integer tensor of shape ``(B,)``, counted from 0.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.

    Returns:
        The weights, of ``t``'s shape and ``alphas_cumprod``'s dtype.

    Raises:
        ValueError: if ``prediction_type`` is unknown.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.8, 0.5])
        >>> {kind: snr_weighting(torch.tensor([0, 1]), alphas_cumprod, kind).tolist() for kind in PREDICTION_TYPES}
        {'epsilon': [4.0, 1.0], 'sample': [1.0, 1.0], 'v_prediction': [5.0, 2.0]}
    """
    _check_prediction_type("prediction_type", prediction_type)
    ratio = snr(alphas_cumprod)[torch.as_tensor(t, device=alphas_cumprod.device)]  # () or (B,)
    if prediction_type == "epsilon":
        return ratio
    if prediction_type == "sample":
        return torch.ones_like(ratio)
    return ratio + 1


def ema_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` to hold its exponential moving average: in eval mode, without gradients.

    Args:
        model: the network being trained.

    Returns:
        A deep copy with ``training=False`` on every submodule and ``requires_grad=False`` on every
        parameter: it is evaluated, never trained.

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
        >>> ema = ema_copy(net)
        >>> {"training": ema.training, "dropout training": ema[1].training,
        ...  "requires_grad": ema[0].weight.requires_grad, "parent still training": net.training}
        {'training': False, 'dropout training': False, 'requires_grad': False, 'parent still training': True}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    # deepcopy copies the flags too: a copy of a training model is a training model, until told otherwise.
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    r"""One step of the exponential moving average: $\theta_\text{EMA} \leftarrow d\,\theta_\text{EMA} + (1 - d)\,\theta$.

    Parameters are averaged, in place, with ``lerp_`` (as ``torch.optim.swa_utils.get_ema_multi_avg_fn``
    does); buffers (running statistics, which are already averages) are copied.

    Args:
        ema_model: the average, a model of ``model``'s architecture (see ``ema_copy``).
        model: the network being trained.
        decay: $d$ in ``[0, 1]``: how much of the old average each step keeps.

    Raises:
        TypeError: if a model is not an ``nn.Module`` or ``decay`` is not a real number.
        ValueError: if ``decay`` lies outside ``[0, 1]`` or the two models' parameters or buffers differ
            in names or shapes.

    Examples:
        >>> net = nn.Linear(1, 1, bias=False)
        >>> ema = ema_copy(net)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(1.0), ema.weight.fill_(0.0)
        >>> ema_update(ema, net, decay=0.9)
        >>> round(ema.weight.item(), 4)
        0.1
        >>> ema_update(ema, net, decay=1.5)
        Traceback (most recent call last):
        ...
        ValueError: decay must lie in [0, 1], got 1.5
    """
    _check_ema_args(ema_model, model, decay)
    for ema_param, param in zip(ema_model.parameters(), model.parameters(), strict=True):
        # lerp: ema + (1 - d)(param - ema), which is d * ema + (1 - d) * param in one kernel.
        ema_param.lerp_(param.detach().to(ema_param.device), 1 - decay)
    for ema_buffer, buffer in zip(ema_model.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


class DDPMRun(NamedTuple):
    """What ``train_ddpm`` returns."""

    model: nn.Module
    """The trained network, left in training mode."""
    ema_model: nn.Module
    """The exponential moving average of its weights, in eval mode."""
    losses: list[float]
    """The training loss of every step."""


def train_ddpm(
    model: nn.Module,
    data: Tensor,
    schedule: NoiseSchedule | Tensor,
    *,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    ema_decay: float = 0.95,
    prediction_type: str = "epsilon",
    seed: int = 0,
    progress_bar: bool = True,
) -> DDPMRun:
    """Train a denoiser with ``ddpm_loss``, the course's `AdamW` and an EMA of its weights.

    Every step draws a batch of ``batch_size`` samples from ``data`` (with replacement), then its
    timesteps and noise, all from one generator seeded with ``seed``: the same seed and the same initial
    model give the same run.

    Args:
        model: the denoiser, ``model(x_t, t)``; it is trained in place.
        data: the clean training set, shape ``(N, ...)``, on the model's device.
        schedule: a ``NoiseSchedule`` or its ``alphas_cumprod``.
        steps: optimiser steps, at least 1.
        batch_size: samples per step, at least 1.
        lr: AdamW's learning rate.
        weight_decay: AdamW's decoupled weight decay.
        ema_decay: the EMA's decay per step.
        prediction_type: ``"epsilon"``, ``"sample"`` or ``"v_prediction"``.
        seed: seeds the generator of batches, timesteps and noise.
        progress_bar: show a progress bar (through ``lab.progress``).

    Returns:
        A ``DDPMRun``: the model, its EMA and the loss of every step.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or ``data`` not a floating-point tensor.
        ValueError: if ``steps`` or ``batch_size`` is below 1 or ``data`` is empty.

    Examples:
        >>> from torchenstein.diffusion.denoiser import MLPDenoiser
        >>> run = train_ddpm(MLPDenoiser(hidden_dim=16), torch.randn(64, 2), noise_schedule(), steps=3,
        ...                  progress_bar=False)
        >>> len(run.losses), run.model.training, run.ema_model.training
        (3, True, False)
    """
    _check_train_args(model, data, steps, batch_size)
    generator = torch.Generator().manual_seed(seed)
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    # The average starts as a copy of the initial weights, as AveragedModel's first update makes it.
    ema_model = ema_copy(model)
    model.train()
    losses = []
    for _ in progress(range(steps), desc="training the denoiser", disable=not progress_bar):
        index = torch.randint(0, data.size(0), (batch_size,), generator=generator).to(data.device)  # (B,)
        loss = ddpm_loss(model, data[index], schedule, generator, prediction_type)
        # The five lines of The training loop: zero, backward, step (the forward pass was the loss).
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # After the step: the average follows the weights the optimiser just wrote.
        ema_update(ema_model, model, ema_decay)
        # Kept as tensors: .item() at every step would make a GPU wait for each one.
        losses.append(loss.detach())
    return DDPMRun(model, ema_model, torch.stack(losses).tolist())


def mse_by_timestep(model: Callable[..., Tensor], x0: Tensor, schedule: NoiseSchedule | Tensor,
                    timesteps: Sequence[int], generator: torch.Generator | None = None,
                    prediction_type: str = "epsilon") -> Tensor:
    """The model's mean squared error at each of ``timesteps``, over all of ``x0``, in eval mode, without gradients.

    Args:
        model: the denoiser, ``model(x_t, t)``; its modes are restored afterwards.
        x0: clean samples, shape ``(B, ...)``.
        schedule: a ``NoiseSchedule`` or its ``alphas_cumprod``.
        timesteps: the timesteps to measure, each in ``0..T-1``.
        generator: draws the noise, one tensor of ``x0``'s shape per timestep (``None``: the global one).
        prediction_type: what the model predicts.

    Returns:
        A float tensor of shape ``(len(timesteps),)``.

    Examples:
        >>> from torchenstein.diffusion.denoiser import MLPDenoiser
        >>> mse_by_timestep(MLPDenoiser(), torch.zeros(4, 2), noise_schedule(), [0, 999]).shape
        torch.Size([2])
    """
    alphas_cumprod = _check_loss_args(model, x0, schedule, generator, prediction_type)
    draw_on = generator.device if generator is not None else x0.device
    errors = []
    # A plain function has no modes to switch; a module is evaluated in eval mode and restored after.
    modes = evaluating(model) if isinstance(model, nn.Module) else contextlib.nullcontext()
    with modes, torch.no_grad():
        for step in timesteps:
            t = torch.full((x0.size(0),), int(step), device=x0.device)  # (B,): the same timestep for all
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=draw_on).to(x0.device)
            x_t = q_sample(x0, t, alphas_cumprod, noise)
            target = training_target(x0, noise, t, alphas_cumprod, prediction_type)
            prediction = model(x_t, t)
            loss_dtype = torch.promote_types(prediction.dtype, torch.float32)
            errors.append(F.mse_loss(prediction.to(loss_dtype), target.to(loss_dtype)))
    return torch.stack(errors)


def spiral_data(n_per_class: int = 200, seed: int = 0) -> Tensor:
    """The lesson's 2-D data: the two-armed spiral of `make_spiral`, doubled to about unit spread.

    Args:
        n_per_class: points per arm.
        seed: the spiral's seed.

    Returns:
        float32 points of shape ``(2 * n_per_class, 2)``.

    Examples:
        >>> spiral_data(50).shape
        torch.Size([100, 2])
    """
    points, _ = make_spiral(n_per_class, num_classes=2, noise=0.05, seed=seed)  # (N, 2), radius up to 1
    return 2.0 * points


def normalize(pixels: Tensor, low: float = 0.0, high: float = 16.0) -> Tensor:
    """Map values from ``[low, high]`` linearly to ``[-1, 1]``, the scale of the noise.

    The digits' grey levels run from 0 to 16; this is ``load_digit_images``' rescaling, bit for bit.

    Args:
        pixels: a floating-point tensor of values in ``[low, high]``.
        low: the value that becomes -1.
        high: the value that becomes 1, above ``low``.

    Returns:
        A tensor of ``pixels``' shape and dtype.

    Raises:
        TypeError: if ``pixels`` is not a floating-point tensor.
        ValueError: if ``high`` is not above ``low``.

    Examples:
        >>> normalize(torch.tensor([0.0, 4.0, 8.0, 16.0]))
        tensor([-1.0000, -0.5000,  0.0000,  1.0000])
    """
    _check_range(pixels, low, high)
    return (pixels - low) * (2.0 / (high - low)) - 1.0


def denormalize(x: Tensor, low: float = 0.0, high: float = 16.0) -> Tensor:
    """Map model-scale values back from ``[-1, 1]`` to ``[low, high]``, clamping first.

    Generated samples overshoot ``[-1, 1]`` a little; they are clamped so the result is a valid grey level.

    Args:
        x: a floating-point tensor on the model's scale.
        low: the value -1 becomes.
        high: the value 1 becomes, above ``low``.

    Returns:
        A tensor of ``x``'s shape and dtype, in ``[low, high]``.

    Examples:
        >>> denormalize(torch.tensor([-1.0, 0.0, 1.0, 1.3]))
        tensor([ 0.,  8., 16., 16.])
    """
    _check_range(x, low, high)
    return (x.clamp(-1.0, 1.0) + 1.0) * ((high - low) / 2.0) + low


@functools.cache
def _spiral_run(steps: int, seed: int = 0) -> tuple[DDPMRun, nn.Module]:
    """A trained spiral denoiser and its untrained twin, trained once per process for the figures."""
    from torchenstein.diffusion.denoiser import MLPDenoiser

    torch.manual_seed(seed)
    untrained = MLPDenoiser(hidden_dim=64)
    run = train_ddpm(copy.deepcopy(untrained), spiral_data(), noise_schedule(), steps=steps, seed=seed,
                     progress_bar=False)
    return run, untrained


def plot_loss_by_timestep(*, steps: int = 200, num_timesteps: int = 25) -> Figure:
    r"""Draw the ε-MSE of an untrained and a trained spiral denoiser at each timestep, and the same errors in $x_0$.

    Args:
        steps: training steps of the denoiser (trained once per process and kept).
        num_timesteps: how many timesteps, evenly spaced over ``0..999``, to measure.

    Returns:
        A figure with two panels: the ε-MSE against $t$, and the implied $\hat x_0$ error, ε-MSE / SNR,
        on a log scale.

    Examples:
        >>> fig = plot_loss_by_timestep(steps=5, num_timesteps=3)
        >>> len(fig.axes)
        2
    """
    run, untrained = _spiral_run(steps)
    schedule = noise_schedule()
    timesteps = torch.linspace(0, 999, num_timesteps).round().long()
    data = spiral_data()
    curves = {}
    for name, model in (("untrained", untrained), ("trained", run.model), ("EMA", run.ema_model)):
        # The same noise for every model: the curves differ by the models alone.
        curves[name] = mse_by_timestep(model, data, schedule, timesteps.tolist(), torch.Generator().manual_seed(1))
    ratio = snr(schedule.alphas_cumprod)[timesteps]
    fig, (left, right) = new_figure(1, 2, width=8.0, height=3.2)
    for (name, mse), style in zip(curves.items(), (":", "-", "--"), strict=True):
        left.plot(timesteps.numpy(), mse.numpy(), style, marker="o", markersize=3, label=name)
        right.semilogy(timesteps.numpy(), (mse / ratio).numpy(), style, marker="o", markersize=3, label=name)
    left.set(xlabel="timestep t", ylabel=r"$\varepsilon$-MSE", title=r"$\varepsilon$ error per timestep")
    right.set(xlabel="timestep t", ylabel=r"$\hat x_0$ MSE = $\varepsilon$-MSE / SNR",
              title=r"the same errors, in $x_0$")
    left.legend(fontsize=8)
    return fig


def plot_training_curve(*, steps: int = 200, window: int = 20) -> Figure:
    """Draw the loss of every training step of the spiral denoiser, and its running mean.

    Args:
        steps: training steps (trained once per process and kept).
        window: the width of the running mean, in steps.

    Returns:
        A figure with one panel.

    Examples:
        >>> fig = plot_training_curve(steps=5, window=2)
        >>> len(fig.axes)
        1
    """
    run, _ = _spiral_run(steps)
    losses = torch.tensor(run.losses)
    window = max(1, min(window, len(losses)))
    # The running mean of the last `window` losses, from the window-th step on.
    smooth = losses.unfold(0, window, 1).mean(dim=1)
    fig, (ax,) = new_figure(width=6.5, height=3.2)
    ax.plot(range(1, len(losses) + 1), losses.numpy(), color=PALETTE[0], alpha=0.35, linewidth=0.8,
            label="loss of each step")
    ax.plot(range(window, len(losses) + 1), smooth.numpy(), color=PALETTE[0], linewidth=2,
            label=f"running mean of {window}")
    ax.axhline(1.0, color=PALETTE[6], linestyle=":", linewidth=1, label=r"predicting $\hat\varepsilon = 0$")
    ax.set(xlabel="step", ylabel=r"$\varepsilon$-MSE", title="Training the spiral denoiser", ylim=(0, None))
    ax.legend(fontsize=8)
    return fig


def min_snr_loss_weights(t: Tensor, alphas_cumprod: Tensor, snr_gamma: float = 5.0,
                         prediction_type: str = "epsilon") -> Tensor:
    r"""Challenge solution: Min-SNR-γ loss weights, $\min(\text{SNR}(t), \gamma) / w(t)$.

    $w(t)$ is ``snr_weighting``: SNR for ``"epsilon"``, 1 for ``"sample"``, SNR + 1 for ``"v_prediction"``,
    so every objective becomes the $x_0$ error weighted by $\min(\text{SNR}, \gamma)$.

    Args:
        t: timesteps, an integer tensor of shape ``(B,)``.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        snr_gamma: $\gamma$, the cap on the SNR, above 0.
        prediction_type: what the model predicts.

    Returns:
        Weights of shape ``(B,)``, to multiply the per-sample MSE before averaging.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.9, 0.5])               # SNR 9 and 1
        >>> [round(w, 4) for w in min_snr_loss_weights(torch.tensor([0, 1]), alphas_cumprod, snr_gamma=5.0).tolist()]
        [0.5556, 1.0]
    """
    ratio = snr(alphas_cumprod)[t]  # (B,)
    return ratio.clamp(max=snr_gamma) / snr_weighting(t, alphas_cumprod, prediction_type)


def check_min_snr_loss_weights(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``min_snr_loss_weights``."""
    cases = (
        (noise_schedule().alphas_cumprod, torch.tensor([0, 1, 10, 100, 250, 500, 999]), 5.0, "epsilon"),
        (noise_schedule().alphas_cumprod, torch.tensor([0, 100, 259, 999]), 1.0, "v_prediction"),
        (noise_schedule(beta_schedule="squaredcos_cap_v2").alphas_cumprod, torch.arange(0, 1000, 111), 5.0,
         "sample"),
        (noise_schedule(50).alphas_cumprod.double(), torch.tensor([0, 3, 49]), 20.0, "epsilon"),
        (noise_schedule(50).alphas_cumprod.double(), torch.tensor([0, 3, 49]), 0.5, "v_prediction"),
    )
    for alphas_cumprod, t, gamma, kind in cases:
        ratio = (alphas_cumprod / (1 - alphas_cumprod))[t]
        divisor = {"epsilon": ratio, "sample": torch.ones_like(ratio), "v_prediction": ratio + 1}[kind]
        expected = torch.minimum(ratio, torch.full_like(ratio, gamma)) / divisor
        where = f"for prediction_type={kind!r}, snr_gamma={gamma}, t={t.tolist()}"
        try:
            got = candidate(t, alphas_cumprod, snr_gamma=gamma, prediction_type=kind)
        except Exception as err:
            raise AssertionError(f"min_snr_loss_weights raised {type(err).__name__}: {err} {where}") from err
        assert isinstance(got, Tensor) and got.shape == t.shape, (
            f"expected one weight per timestep, shape {tuple(t.shape)}, {where}, got "
            f"{tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__}"
        )
        assert torch.allclose(got.to(expected.dtype), expected, rtol=1e-5, atol=1e-7), (
            f"wrong weights {where}: expected min(SNR, gamma) divided by SNR (epsilon), 1 (sample) or SNR + 1 "
            f"(v_prediction), i.e. {[round(v, 5) for v in expected.tolist()]}, got {[round(v, 5) for v in got.tolist()]}"
        )


def ema_warmup_decay(optimization_step: int, decay: float = 0.9999) -> float:
    """Challenge solution: the EMA decay at a step, warmed up as diffusers' ``EMAModel.get_decay`` does.

    Counting ``n = optimization_step - 1``: 0 while ``n <= 0`` (the average is a copy), then
    ``min(decay, (1 + n) / (10 + n))``, so the first averages forget their random start quickly.

    Args:
        optimization_step: the number of optimiser steps taken so far, at least 0.
        decay: the decay to reach, in ``[0, 1]``.

    Returns:
        The decay to use at this step.

    Examples:
        >>> [round(ema_warmup_decay(n, decay=0.99), 4) for n in (0, 1, 2, 10, 1000)]
        [0.0, 0.0, 0.1818, 0.5, 0.99]
    """
    n = optimization_step - 1
    if n <= 0:
        return 0.0
    return min(decay, (1 + n) / (10 + n))


def check_ema_warmup_decay(candidate: Callable[..., float]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``ema_warmup_decay``."""
    for decay in (0.9999, 0.99, 0.5):
        for step in (0, 1, 2, 3, 10, 11, 100, 991, 10_000, 10**6):
            n = step - 1
            expected = 0.0 if n <= 0 else min(decay, (1 + n) / (10 + n))
            try:
                got = candidate(step, decay=decay)
            except Exception as err:
                raise AssertionError(
                    f"ema_warmup_decay raised {type(err).__name__}: {err} at step {step}, decay {decay}"
                ) from err
            assert isinstance(got, Real), f"expected a float at step {step}, got {type(got).__name__}"
            assert abs(got - expected) <= 1e-12, (
                f"at optimization_step={step} with decay={decay} expected {expected!r} "
                f"(0 up to step 1, then min(decay, (1 + n) / (10 + n)) with n = step - 1), got {got!r}"
            )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_prediction_type(name: str, value: object) -> None:
    if value not in PREDICTION_TYPES:
        raise ValueError(f"{name} must be one of {PREDICTION_TYPES}, got {value!r}")


def _check_loss_args(model: object, x0: object, schedule: object, generator: object,
                     prediction_type: object) -> Tensor:
    """Check the arguments of ddpm_loss and mse_by_timestep, and return the schedule's alphas_cumprod."""
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t), got {type(model).__name__}")
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.dim() == 0:
        raise TypeError(f"x0 must be a floating-point tensor with a batch dimension, got {_describe(x0)}")
    if x0.size(0) == 0:
        raise ValueError(f"x0 must hold at least one sample, got shape {tuple(x0.shape)}")
    alphas_cumprod = schedule.alphas_cumprod if isinstance(schedule, NoiseSchedule) else schedule
    if not isinstance(alphas_cumprod, Tensor) or not alphas_cumprod.is_floating_point() or alphas_cumprod.dim() != 1:
        raise TypeError(f"schedule must be a NoiseSchedule or a 1-D alphas_cumprod tensor, got {_describe(schedule)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    _check_prediction_type("prediction_type", prediction_type)
    return alphas_cumprod


def _check_ema_args(ema_model: object, model: object, decay: object) -> None:
    for name, value in (("ema_model", ema_model), ("model", model)):
        if not isinstance(value, nn.Module):
            raise TypeError(f"{name} must be an nn.Module, got {type(value).__name__}")
    if isinstance(decay, bool) or not isinstance(decay, Real):
        raise TypeError(f"decay must be a real number, got {decay!r}")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay!r}")
    for kind in ("named_parameters", "named_buffers"):
        ours = [(name, tuple(p.shape)) for name, p in getattr(ema_model, kind)()]
        theirs = [(name, tuple(p.shape)) for name, p in getattr(model, kind)()]
        if ours != theirs:
            missing = sorted(set(theirs) ^ set(ours))[:3]
            raise ValueError(
                f"ema_model and model must have the same {kind[6:]} (names and shapes); they differ in {missing}"
            )


def _check_train_args(model: object, data: object, steps: object, batch_size: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(data, Tensor) or not data.is_floating_point() or data.dim() == 0:
        raise TypeError(f"data must be a floating-point tensor of samples, got {_describe(data)}")
    if data.size(0) == 0:
        raise ValueError(f"data must hold at least one sample, got shape {tuple(data.shape)}")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def _check_range(x: object, low: object, high: object) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {_describe(x)}")
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
    if not high > low:
        raise ValueError(f"high must be above low, got low={low!r}, high={high!r}")
