r"""
# Noise Schedules: The Tempo of Destruction

!!! torchenstein "The Professor speaks"
    A thousand steps from a digit to pure noise, yes, but *how fast* at each step? Too fast, and half the
    steps are spent stirring noise that holds nothing; too slow, and the last step still whispers the
    answer to the model, which then cannot generate without it. Tonight we build the three schedules
    that diffusion models actually use, from scratch and with diffusers' own argument names, prove them
    equal to `DDPMScheduler`'s arrays, compare them the only honest way (by signal-to-noise ratio), and
    catch the schedule of a famous image generator leaking brightness through its last step.

**You will learn to**

- build the linear, scaled-linear and cosine schedules as functions returning `betas`, with diffusers'
  names (`num_train_timesteps`, `beta_start`, `beta_end`, `beta_schedule`), and prove `betas`, `alphas`
  and `alphas_cumprod` equal to `DDPMScheduler`'s;
- design a schedule by its $\bar\alpha_t$ and derive the betas from it, as the cosine schedule does;
- compare schedules by $\bar\alpha_t$ and log-SNR, never by their betas;
- show that the common schedules end with signal left, and rescale them to zero terminal SNR, proved
  equal to diffusers' `rescale_zero_terminal_snr`;
- dodge four of Dr. Hammer's schedule mistakes.

## From betas to everything else

[The forward process](../forward/index.md) noised data with a **noise schedule**: a sequence of betas
$\beta_t$, the variance of the noise added at each timestep $t = 0, \dots, T - 1$ (counted from zero, as in
code). From the betas follow $\alpha_t = 1 - \beta_t$ and their running product $\bar\alpha_t$, the share of
the data's variance left at timestep $t$, which is all the jump
[`q_sample`][torchenstein.diffusion.forward.q_sample] needs. diffusers' `DDPMScheduler` builds the three
arrays in its constructor and keeps them as `betas`, `alphas` and `alphas_cumprod`;
[`noise_schedule`][torchenstein.diffusion.schedules.noise_schedule] takes the same arguments and returns
the same three arrays, as a [`NoiseSchedule`][torchenstein.diffusion.schedules.NoiseSchedule]:

- `num_train_timesteps`: $T$, the number of timesteps the model is trained on (1000 by default);
- `beta_schedule`: the shape of the curve, `"linear"`, `"scaled_linear"` or `"squaredcos_cap_v2"`;
- `beta_start`, `beta_end`: the first and last beta of the two linear shapes (the cosine ignores them);
- `rescale_betas_zero_snr`: the repair at the end of this lesson.

```pycon
>>> import torch
>>> from torchenstein.diffusion.schedules import noise_schedule
>>> schedule = noise_schedule()                     # DDPMScheduler()'s defaults
>>> {name: (tuple(a.shape), a.dtype) for name, a in schedule._asdict().items()}
{'betas': ((1000,), torch.float32), 'alphas': ((1000,), torch.float32), 'alphas_cumprod': ((1000,), torch.float32)}
>>> torch.equal(schedule.alphas_cumprod, torch.cumprod(1.0 - schedule.betas, dim=0))
True

```

Everything is float32, as in diffusers; where diffusers computes something in float64 first (the cosine,
below), so do we. The tests (`tests/test_diffusion_schedules.py`) build `DDPMScheduler` from the same
settings and prove all three arrays equal **bit for bit** for the linear and scaled-linear schedules
(`num_train_timesteps` from 1 to 4000, several `beta_start` and `beta_end`, rescaled or not), and for the
cosine to within one float32 rounding (bit for bit on the CPU these lessons were written on). The lesson
never imports diffusers itself: it loads fast and runs without it.

## Linear: the DDPM default

Ho et al. (2020) spaced their betas evenly: [`linear_betas`][torchenstein.diffusion.schedules.linear_betas]
is one `torch.linspace`, from `beta_start` $= 10^{-4}$ to `beta_end` $= 0.02$ over 1000 timesteps. Small
steps first, while the image is clean and a little noise already hides its finest details; larger ones
later, when only coarse shapes are left to destroy.

```pycon
>>> from torchenstein.diffusion.schedules import linear_betas
>>> betas = linear_betas()
>>> {"noise_schedule's": torch.equal(betas, schedule.betas),
...  "betas 0, 1, 999": [round(b, 6) for b in betas[[0, 1, -1]].tolist()]}
{"noise_schedule's": True, 'betas 0, 1, 999': [0.0001, 0.00012, 0.02]}

```

## Scaled linear: linear in $\sqrt\beta$

Latent diffusion (Stable Diffusion among them) spaces the *square roots* evenly and squares them:
$\beta_t = \big(\sqrt{\beta_\text{start}} + \tfrac{t}{T-1}(\sqrt{\beta_\text{end}} - \sqrt{\beta_\text{start}})\big)^2$.
The name "scaled linear" is diffusers'; "linear in the standard deviation" would be more honest. It is
used with its own endpoints, Stable Diffusion's $0.00085$ and $0.012$: the model denoises a small
"latent" image made by an autoencoder (a network trained to squeeze images into a few numbers and
expand them back), not the pixels, and needs less noise to hide it.
[`scaled_linear_betas`][torchenstein.diffusion.schedules.scaled_linear_betas]:

```pycon
>>> from torchenstein.diffusion.schedules import scaled_linear_betas
>>> sd = scaled_linear_betas(1000, beta_start=0.00085, beta_end=0.012)
>>> [round(b, 6) for b in sd[[0, 1, -1]].tolist()]
[0.00085, 0.000855, 0.012]
>>> steps = sd.sqrt().diff()                     # the square roots are evenly spaced...
>>> torch.allclose(steps, steps[0], rtol=1e-3)
True

```

## Cosine: design $\bar\alpha$, derive the betas

Nichol and Dhariwal (2021) turned the question round: choose the curve $\bar\alpha_t$ you want, and find
the betas that produce it. Theirs is a squared cosine,

$$
f(u) = \cos^2\!\left(\frac{u + s}{1 + s} \cdot \frac{\pi}{2}\right), \qquad u = \frac{t}{T} \in [0, 1],
\qquad \bar\alpha = \frac{f(u)}{f(0)},
$$

which falls gently at both ends and steadily in the middle. Since $\bar\alpha_t = \bar\alpha_{t-1}
(1 - \beta_t)$, each beta is one minus a ratio of neighbours: in code, timestep $t$ runs from $u = t/T$
to $u = (t + 1)/T$, and

$$
\beta_t = \min\!\left(1 - \frac{f\big((t + 1)/T\big)}{f(t/T)},\; 0.999\right).
$$

Two details make it work. The **offset** $s = 0.008$ keeps the first steps from being absurdly small:
with $s = 0$, $\sqrt{\beta_0}$ is a quarter of what it is with the offset, which the paper chose so that
$\sqrt{\beta_0}$ sits just below the size of one grey level of an image scaled to $[-1, 1]$, $1/127.5$.
And the **clip** at $0.999$: $f(1)$ is almost exactly 0, so the last beta would be 1 to within
rounding, and a $\beta$ of 1 makes the DDPM paper's reverse step, which multiplies by $1/\sqrt{\alpha_t} =
1/\sqrt{1 - \beta_t}$, divide by zero. (The repair at the end of this lesson sets the last beta to exactly
1 on purpose, and its last trap shows what that costs.) diffusers calls
this schedule `"squaredcos_cap_v2"` and computes it in Python floats (float64), rounding to float32 at the
end; [`cosine_betas`][torchenstein.diffusion.schedules.cosine_betas] does the same with one vectorised
float64 computation.

```pycon
>>> from torchenstein.diffusion.schedules import cosine_betas
>>> cos = cosine_betas()
>>> {"dtype": cos.dtype, "clipped timesteps": torch.nonzero(cos == 0.999).flatten().tolist()}
{'dtype': torch.float32, 'clipped timesteps': [999]}
>>> {"sqrt(beta_0), s = 0": round(cosine_betas(s=0.0)[0].sqrt().item(), 5),
...  "sqrt(beta_0), s = 0.008": round(cos[0].sqrt().item(), 5), "one grey level": round(1 / 127.5, 5)}
{'sqrt(beta_0), s = 0': 0.00157, 'sqrt(beta_0), s = 0.008': 0.00643, 'one grey level': 0.00784}

```

The betas were made from ratios, so their running product telescopes back to the curve,
$\bar\alpha_t = f((t+1)/T) / f(0)$, everywhere but at the clipped last timestep (float32 rounding aside):

```pycon
>>> import math
>>> u = torch.arange(1, 1001, dtype=torch.float64) / 1000           # (T,): the end of each timestep
>>> f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
>>> target = f(u) / f(torch.zeros(1, dtype=torch.float64))
>>> alpha_bar = torch.cumprod(1.0 - cos.double(), dim=0)
>>> {"on the curve before T - 1": bool(torch.allclose(alpha_bar[:-1], target[:-1], rtol=0, atol=1e-6)),
...  "above it at T - 1": alpha_bar[-1].item() > target[-1].item()}
{'on the curve before T - 1': True, 'above it at T - 1': True}

```

## Comparing schedules: $\bar\alpha$ and log-SNR

Betas are the wrong thing to compare: a beta says what one step does, and what matters is what all the
steps so far have done. Compare $\bar\alpha_t$ or, better, the **log-SNR**, $\log \frac{\bar\alpha_t}{1 -
\bar\alpha_t}$, the logarithm of the [signal-to-noise ratio][torchenstein.diffusion.forward.snr] (natural
logarithm, as in the papers). The log-SNR spreads out the ends, where $\bar\alpha$ is squeezed against 1
or 0 and where the schedules differ most.

![Two panels over timesteps 0 to 999: alpha-bar falling from 1 to 0, fastest for the linear schedule, slowest and most symmetric for the cosine; and log-SNR falling from about 10 to between -5 and -20, with the scaled-linear ending highest and the rescaled linear plunging to minus infinity at the last step.](plot_schedules.svg)

```pycon
>>> from torchenstein.diffusion.forward import snr
>>> schedules = {"linear": noise_schedule(),
...              "scaled_linear": noise_schedule(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
...              "cosine": noise_schedule(beta_schedule="squaredcos_cap_v2")}
>>> for name, sch in schedules.items():
...     ratio = snr(sch.alphas_cumprod)
...     print(f"{name:13} SNR < 1 from t = {int((ratio < 1).nonzero()[0])}, "
...           f"alpha_bar < 0.01 for {int((sch.alphas_cumprod < 0.01).sum())} timesteps, "
...           f"log-SNR {ratio[0].log().item():.1f} -> {ratio[-1].log().item():.1f}")
linear        SNR < 1 from t = 259, alpha_bar < 0.01 for 327 timesteps, log-SNR 9.2 -> -10.1
scaled_linear SNR < 1 from t = 354, alpha_bar < 0.01 for 67 timesteps, log-SNR 7.1 -> -5.4
cosine        SNR < 1 from t = 496, alpha_bar < 0.01 for 65 timesteps, log-SNR 10.1 -> -19.8

```

The linear schedule has destroyed most of the signal a quarter of the way in, and spends a third of its
timesteps with less than 1% of the data's variance left: for small images (Nichol and Dhariwal's were
32×32 and 64×64) those last steps teach the model little. The cosine crosses $\operatorname{SNR} = 1$ at
the middle and its log-SNR falls almost in a straight line between the ends. No schedule is best for
every data set: the right one depends on the resolution and on how much information each noise level
still holds, which is why later work (Hoogeboom et al., 2023, among others) shifts the log-SNR curve with
the image size.

## The last step must be pure noise

Training noises the data at every timestep up to $T - 1$; generation starts at timestep $T - 1$ from
pure noise, `torch.randn`. The two agree only if $\bar\alpha_{T-1} = 0$: **zero terminal SNR**. None of the
three schedules above gets there:

```pycon
>>> {name: f"{sch.alphas_cumprod[-1].item():.3g}" for name, sch in schedules.items()}   # alpha_bar at T - 1
{'linear': '4.04e-05', 'scaled_linear': '0.00466', 'cosine': '2.43e-09'}
>>> {name: round(sch.alphas_cumprod[-1].sqrt().item(), 4) for name, sch in schedules.items()}   # signal scale
{'linear': 0.0064, 'scaled_linear': 0.0683, 'cosine': 0.0}

```

The default linear schedule keeps $0.0064 \cdot x_0$ in its last sample, Stable Diffusion's keeps
$0.068 \cdot x_0$. Small? The model is trained to exploit anything it can see, and what survives best is
what is shared by many pixels, like the image's overall brightness (Dr. Hammer's first trap measures it).
At generation time that hint is absent, so the model, which never learned to invent brightness on its
own, produces images of medium brightness only. Lin et al. (2024, *Common Diffusion Noise Schedules and
Sample Steps are Flawed*) found exactly this in Stable Diffusion, and proposed a repair, their Algorithm 1:

1. take $\sqrt{\bar\alpha_t}$ for every timestep;
2. shift it so the last value is 0, and scale it so the first value is unchanged: an affine map,
   $\sqrt{\bar\alpha_t} \mapsto (\sqrt{\bar\alpha_t} - \sqrt{\bar\alpha_{T-1}}) \cdot
   \frac{\sqrt{\bar\alpha_0}}{\sqrt{\bar\alpha_0} - \sqrt{\bar\alpha_{T-1}}}$;
3. square, and undo the running product: $\alpha_0 = \bar\alpha_0$, $\alpha_t = \bar\alpha_t / \bar\alpha_{t-1}$,
   $\beta_t = 1 - \alpha_t$.

The schedule barely moves at the start and bends to exactly zero at the end, and its last beta is exactly 1.
[`rescale_zero_terminal_snr`][torchenstein.diffusion.schedules.rescale_zero_terminal_snr] is those three
steps; in diffusers 0.42 the function of the same name lives in `diffusers.schedulers.scheduling_ddim`
and is copied into `diffusers.schedulers.scheduling_ddpm` (and several other scheduler modules), and
`DDPMScheduler(rescale_betas_zero_snr=True)` applies it to its betas. The tests prove ours equal to both
functions, bit for bit, for the three shapes and several lengths, in float32 and float64, and to the
scheduler's three (float32) arrays.

```pycon
>>> from torchenstein.diffusion.schedules import rescale_zero_terminal_snr
>>> rescaled = rescale_zero_terminal_snr(schedules["linear"].betas)
>>> alpha_bar = torch.cumprod(1.0 - rescaled, dim=0)
>>> {"last alpha_bar": alpha_bar[-1].item(), "last beta": rescaled[-1].item(),
...  "last SNR": round(snr(alpha_bar)[-1].item(), 6)}
{'last alpha_bar': 0.0, 'last beta': 1.0, 'last SNR': 0.0}
>>> torch.allclose(alpha_bar[0], schedules["linear"].alphas_cumprod[0])      # the start is kept
True
>>> torch.equal(noise_schedule(rescale_betas_zero_snr=True).betas, rescaled)
True

```

!!! note "Where it differs from diffusers"
    A single beta, or betas that leave $\bar\alpha$ the same at the first and last timestep (all zeros),
    give diffusers' function nothing to rescale: it divides zero by zero and returns NaN, "not a number".
    Ours refuses them with a `ValueError`, and a test pins both behaviours. float16 and bfloat16 betas
    are rescaled in float32 and rounded once: in float16, diffusers' $\bar\alpha$ underflows to 0 before
    the last timestep and the ratios of step 3 turn into NaN; a test pins
    that too.

At the last timestep, the noisy sample is now the noise itself, bit for bit, as generation assumes:

```pycon
>>> from torchenstein.diffusion.forward import q_sample
>>> _ = torch.manual_seed(0)
>>> x0, noise = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
>>> torch.equal(q_sample(x0, 999, alpha_bar, noise), noise)
True

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: a last step that still holds signal"
    Hammer trains on Stable Diffusion's schedule and wonders why none of his generated images is ever
    truly dark or truly bright. Average a 64×64 image over its pixels: the noise in that average shrinks
    to $\sqrt{1 - \bar\alpha} / 64$, while the signal, the image's brightness times $\sqrt{\bar\alpha}$,
    does not shrink at all. At his last timestep, brightness still shines through the noise four times
    over, and his model learned to read it there instead of inventing it.

    ```pycon
    >>> def brightness_snr(alpha_bar_last, num_pixels=64 * 64):  # brightness 1 against the mean's noise
    ...     return round((alpha_bar_last.sqrt() / ((1 - alpha_bar_last) / num_pixels).sqrt()).item(), 2)
    >>> {name: brightness_snr(sch.alphas_cumprod[-1]) for name, sch in schedules.items()}
    {'linear': 0.41, 'scaled_linear': 4.38, 'cosine': 0.0}
    >>> _ = torch.manual_seed(0)
    >>> bright = torch.tensor([1.0, -1.0]).repeat(500)             # (1000,): light and dark images
    >>> x0 = bright[:, None, None, None].expand(1000, 1, 64, 64)   # (B, C, H, W), every pixel alike
    >>> x_last = q_sample(x0, 999, schedules["scaled_linear"].alphas_cumprod, torch.randn(1000, 1, 64, 64))
    >>> guessed = x_last.mean(dim=(1, 2, 3)).sign()                # read brightness off the last step
    >>> round((guessed == bright).float().mean().item(), 2)        # the share read correctly
    1.0
    >>> sd_rescaled = torch.cumprod(1.0 - rescale_zero_terminal_snr(schedules["scaled_linear"].betas), 0)
    >>> brightness_snr(sd_rescaled[-1])
    0.0

    ```

    Practically every image's brightness can be read off the "pure noise". Rescaled, there is nothing
    left to read.

!!! hammer "Dr. Hammer's trap: fewer steps, same betas"
    Hammer wants faster experiments and trains with `num_train_timesteps=100`, keeping `beta_start` and
    `beta_end`. Those two numbers were chosen for $T = 1000$: with a tenth of the steps, the betas add up
    to a tenth as much noise, and his "pure noise" keeps over a third of the data's variance. Scale the
    betas by $1000 / T$, as Nichol and Dhariwal's code does, or use the cosine, which is defined by
    $\bar\alpha$ and so follows the same curve for any $T$ (all but its clipped last step).

    ```pycon
    >>> def last_alpha_bar(betas):
    ...     return f"{torch.cumprod(1.0 - betas, dim=0)[-1].item():.2g}"
    >>> {"T=100, same betas": last_alpha_bar(linear_betas(100)),
    ...  "T=100, scaled by 10": last_alpha_bar(linear_betas(100, beta_start=1e-3, beta_end=0.2)),
    ...  "T=100, cosine": last_alpha_bar(cosine_betas(100))}
    {'T=100, same betas': '0.36', 'T=100, scaled by 10': '2e-05', 'T=100, cosine': '2.4e-07'}

    ```

!!! hammer "Dr. Hammer's trap: the cosine, one step late"
    Hammer writes the cosine schedule straight from the formula for $\bar\alpha$, evaluating $f(t/T) /
    f(0)$ at the code timesteps $t = 0, \dots, T - 1$. But code timestep 0 is already one step away from
    the data: his $\bar\alpha_0$ is exactly 1, his first timestep adds no noise at all (an infinite SNR),
    and every other timestep is noised as the one before it should be.

    ```pycon
    >>> t = torch.arange(1000, dtype=torch.float64)
    >>> hammer = f(t / 1000) / f(torch.zeros(1, dtype=torch.float64))   # f(t/T), one step late
    >>> {"hammer's alpha_bar_0": hammer[0].item(), "its SNR": snr(hammer)[0].item()}
    {"hammer's alpha_bar_0": 1.0, 'its SNR': inf}
    >>> ours = torch.cumprod(1.0 - cosine_betas().double(), dim=0)
    >>> {"our alpha_bar_0": round(ours[0].item(), 6),
    ...  "hammer's is ours one step late": torch.allclose(hammer[1:], ours[:-1], rtol=0, atol=1e-6)}
    {'our alpha_bar_0': 0.999959, "hammer's is ours one step late": True}

    ```

!!! hammer "Dr. Hammer's trap: rescaled, then divided by zero"
    Proud of his rescaled schedule, Hammer keeps the rest of his code: a model that predicts the noise,
    and a clean image recovered as $x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\varepsilon) / \sqrt{\bar\alpha_t}$.
    At the last timestep $\sqrt{\bar\alpha_t}$ is now exactly 0, and $x_t$ is exactly the noise: predicting
    the noise there is trivial and says nothing about $x_0$, and the formula divides zero by zero.

    ```pycon
    >>> from torchenstein.diffusion.forward import recover_x0
    >>> _ = torch.manual_seed(0)
    >>> x0, noise = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    >>> x_last = q_sample(x0, 999, alpha_bar, noise)                # alpha_bar: the rescaled linear one
    >>> recover_x0(x_last, 999, alpha_bar, noise).isnan().all().item()
    True
    >>> round(1 / alpha_bar[998].sqrt().item())                     # one step earlier: the magnification
    15406

    ```

    Even one step earlier, the division multiplies every error of the predicted noise fifteen thousand
    times. Lin et al. therefore pair zero terminal SNR with a model that predicts another target (they use
    "v", a mix of noise and data) and never divide by $\sqrt{\bar\alpha_t}$ at the end; the lessons on
    training and sampling return to it.

## Challenges

**1. The sigmoid schedule.** diffusers has a fourth shape, `"sigmoid"` (from GeoDiff, Xu et al. 2022):
`num_train_timesteps` evenly spaced numbers from $-6$ to $6$, each passed through the logistic sigmoid and
mapped linearly from $[0, 1]$ onto $[\beta_\text{start}, \beta_\text{end}]$. Write
`sigmoid_betas(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02)` returning float32 betas.

**2. A schedule straight in log-SNR.** Write `linear_log_snr_betas(num_train_timesteps, log_snr_start,
log_snr_end)` returning float32 betas whose $\bar\alpha$ has a log-SNR falling in a straight line, from
`log_snr_start` at timestep 0 to `log_snr_end` at timestep $T - 1$ (evenly spaced, like `torch.linspace`).
Hint: what is $\bar\alpha$ as a function of its log-SNR? Compute in float64, round at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from torchenstein.diffusion.forward import snr
from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
"""The schedule shapes ``make_betas`` and ``noise_schedule`` build, by diffusers' names."""


def linear_betas(num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02) -> Tensor:
    """Betas evenly spaced from ``beta_start`` to ``beta_end``: DDPM's schedule, diffusers' ``"linear"``.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 1.
        beta_start: the first beta, in ``[0, 1]``.
        beta_end: the last beta, in ``[0, 1]``.

    Returns:
        float32 betas of shape ``(num_train_timesteps,)``.

    Raises:
        TypeError: if ``num_train_timesteps`` is not an int or a beta is not a real number.
        ValueError: if ``num_train_timesteps`` is below 1 or a beta lies outside ``[0, 1]``.

    Examples:
        >>> linear_betas(5, 0.1, 0.5)
        tensor([0.1000, 0.2000, 0.3000, 0.4000, 0.5000])
        >>> linear_betas(0)
        Traceback (most recent call last):
        ...
        ValueError: num_train_timesteps must be at least 1, got 0
    """
    _check_settings(num_train_timesteps, beta_start, beta_end)
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)


def scaled_linear_betas(num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02) -> Tensor:
    """Betas whose square roots are evenly spaced: latent diffusion's schedule, diffusers' ``"scaled_linear"``.

    Stable Diffusion uses it with ``beta_start=0.00085`` and ``beta_end=0.012``; the defaults here are
    ``DDPMScheduler``'s, the same for every shape.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 1.
        beta_start: the first beta, in ``[0, 1]``.
        beta_end: the last beta, in ``[0, 1]``.

    Returns:
        float32 betas of shape ``(num_train_timesteps,)``.

    Raises:
        TypeError: if ``num_train_timesteps`` is not an int or a beta is not a real number.
        ValueError: if ``num_train_timesteps`` is below 1 or a beta lies outside ``[0, 1]``.

    Examples:
        >>> scaled_linear_betas(3, 0.01, 0.09)        # square roots 0.1, 0.2, 0.3
        tensor([0.0100, 0.0400, 0.0900])
    """
    _check_settings(num_train_timesteps, beta_start, beta_end)
    # The square roots (standard deviations of each step's noise) are spaced evenly, in float32 as in
    # diffusers, and squared back into variances.
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2


def cosine_betas(num_train_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    r"""Betas that make $\bar\alpha$ a squared cosine: Nichol and Dhariwal's schedule, diffusers' ``"squaredcos_cap_v2"``.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 1.
        s: the offset that keeps the first betas from vanishing, at least 0.
        max_beta: the clip on every beta, in ``(0, 1]``.

    Returns:
        float32 betas of shape ``(num_train_timesteps,)``, computed in float64 and rounded once.

    Raises:
        TypeError: if ``num_train_timesteps`` is not an int or ``s``, ``max_beta`` are not real numbers.
        ValueError: if ``num_train_timesteps`` is below 1, ``s`` is negative or ``max_beta`` is not in ``(0, 1]``.

    Examples:
        >>> betas = cosine_betas(4)
        >>> betas.dtype, betas[-1].item()                 # the last beta is clipped
        (torch.float32, 0.9990000128746033)
    """
    _check_settings(num_train_timesteps, 0.0, 0.0)
    for name, value in (("s", s), ("max_beta", max_beta)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
    if not s >= 0:
        raise ValueError(f"s must be at least 0, got {s!r}")
    if not 0 < max_beta <= 1:
        raise ValueError(f"max_beta must lie in (0, 1], got {max_beta!r}")
    # The T + 1 ends of the timesteps, u = 0, 1/T, ..., 1, and f(u) at each: alpha_bar up to the factor f(0).
    u = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps  # (T + 1,)
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # (T + 1,)
    # Timestep t runs from u = t/T to (t + 1)/T; its beta is one minus the ratio of f at the two ends.
    betas = 1 - f[1:] / f[:-1]  # (T,)
    # f(1) is ~1e-33: unclipped, the last beta would be 1, and the reverse process would divide by zero.
    return betas.clamp(max=max_beta).to(torch.float32)


def make_betas(
    num_train_timesteps: int = 1000,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
    beta_schedule: str = "linear",
) -> Tensor:
    """The betas ``DDPMScheduler(num_train_timesteps, beta_start, beta_end, beta_schedule)`` makes.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 1.
        beta_start: the first beta of the linear shapes (the cosine ignores it, as diffusers does).
        beta_end: the last beta of the linear shapes (likewise ignored by the cosine).
        beta_schedule: ``"linear"``, ``"scaled_linear"`` or ``"squaredcos_cap_v2"``.

    Returns:
        float32 betas of shape ``(num_train_timesteps,)``.

    Raises:
        ValueError: if ``beta_schedule`` is not one of the three, or a setting is out of range.

    Examples:
        >>> torch.equal(make_betas(beta_schedule="squaredcos_cap_v2"), cosine_betas())
        True
        >>> make_betas(beta_schedule="sigmoid")
        Traceback (most recent call last):
        ...
        ValueError: beta_schedule must be one of ('linear', 'scaled_linear', 'squaredcos_cap_v2'), got 'sigmoid'
    """
    if beta_schedule == "linear":
        return linear_betas(num_train_timesteps, beta_start, beta_end)
    if beta_schedule == "scaled_linear":
        return scaled_linear_betas(num_train_timesteps, beta_start, beta_end)
    if beta_schedule == "squaredcos_cap_v2":
        return cosine_betas(num_train_timesteps)
    raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")


class NoiseSchedule(NamedTuple):
    """The three arrays of a noise schedule, named as ``DDPMScheduler``'s attributes."""

    betas: Tensor
    """The variance of the noise each timestep adds, shape ``(T,)``."""
    alphas: Tensor
    """``1 - betas``: the share of the previous sample's variance each timestep keeps."""
    alphas_cumprod: Tensor
    r"""$\bar\alpha$: the running product of ``alphas``, the share of the data's variance left."""


def noise_schedule(
    num_train_timesteps: int = 1000,
    beta_start: float = 0.0001,
    beta_end: float = 0.02,
    beta_schedule: str = "linear",
    rescale_betas_zero_snr: bool = False,
) -> NoiseSchedule:
    """``betas``, ``alphas`` and ``alphas_cumprod`` exactly as ``DDPMScheduler(...)`` builds them.

    Args:
        num_train_timesteps: the number of timesteps $T$ (at least 2 when rescaling).
        beta_start: the first beta of the linear shapes.
        beta_end: the last beta of the linear shapes.
        beta_schedule: ``"linear"``, ``"scaled_linear"`` or ``"squaredcos_cap_v2"``.
        rescale_betas_zero_snr: rescale the betas with ``rescale_zero_terminal_snr`` first.

    Returns:
        A ``NoiseSchedule`` of three float32 tensors of shape ``(num_train_timesteps,)``.

    Raises:
        TypeError: if ``rescale_betas_zero_snr`` is not a bool.
        ValueError: if a setting is out of range (see ``make_betas``).

    Examples:
        >>> schedule = noise_schedule(10, beta_schedule="scaled_linear", rescale_betas_zero_snr=True)
        >>> schedule.alphas_cumprod[-1].item()
        0.0
    """
    if not isinstance(rescale_betas_zero_snr, bool):
        raise TypeError(f"rescale_betas_zero_snr must be a bool, got {rescale_betas_zero_snr!r}")
    betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule)
    if rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    # The same operations as DDPMScheduler's constructor, in the same order and dtype: equal bit for bit.
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    return NoiseSchedule(betas, alphas, alphas_cumprod)


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    r"""Rescale betas so the last timestep keeps no signal at all: Lin et al.'s (2024) Algorithm 1.

    $\sqrt{\bar\alpha_t}$ is shifted so its last value is 0 and scaled so its first value is unchanged;
    the betas are then recovered from the new $\bar\alpha$.

    Args:
        betas: a 1-D floating-point tensor of at least two betas, whose $\bar\alpha$ is not constant.

    Returns:
        The rescaled betas, of ``betas``' shape and dtype; the last one is exactly 1.

    Raises:
        TypeError: if ``betas`` is not a 1-D floating-point tensor.
        ValueError: if it holds fewer than two betas, or the first and last $\bar\alpha$ are equal.

    Examples:
        >>> rescale_zero_terminal_snr(torch.tensor([0.1, 0.2, 0.3]))[-1].item()
        1.0
        >>> rescale_zero_terminal_snr(torch.tensor([0.1]))
        Traceback (most recent call last):
        ...
        ValueError: betas must hold at least two betas to rescale, got 1
    """
    _check_betas(betas)
    # float16 and bfloat16 are rescaled in float32 and rounded once: in float16 the last alpha_bars
    # underflow to 0 and their ratios become 0 / 0 = NaN. float32 and float64 are computed as they are.
    dtype, betas = betas.dtype, betas.to(torch.promote_types(betas.dtype, torch.float32))
    # 1. The signal's scale at every timestep, sqrt(alpha_bar).
    sqrt_alpha_bar = torch.cumprod(1.0 - betas, dim=0).sqrt()  # (T,)
    first, last = sqrt_alpha_bar[0].clone(), sqrt_alpha_bar[-1].clone()
    # 2. An affine map: the last value goes to 0 and the first stays where it was.
    sqrt_alpha_bar = (sqrt_alpha_bar - last) * (first / (first - last))
    # 3. Back to alpha_bar, and undo the running product: alpha_0 = alpha_bar_0, then ratios of neighbours.
    alpha_bar = sqrt_alpha_bar**2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])  # (T,)
    return (1 - alphas).to(dtype)


def plot_schedules(*, num_train_timesteps: int = 1000) -> Figure:
    r"""Draw $\bar\alpha_t$ and log-SNR against $t$ for the linear, scaled-linear and cosine schedules.

    The scaled-linear uses Stable Diffusion's ``beta_start=0.00085`` and ``beta_end=0.012``; the linear
    schedule rescaled to zero terminal SNR is drawn dashed.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 2.

    Returns:
        A figure with two axes: $\bar\alpha_t$, and log-SNR.

    Raises:
        ValueError: if ``num_train_timesteps`` is below 2.

    Examples:
        >>> fig = plot_schedules(num_train_timesteps=50)
        >>> len(fig.axes)
        2
    """
    if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, Integral) or num_train_timesteps < 2:
        raise ValueError(f"num_train_timesteps must be an int of at least 2, got {num_train_timesteps!r}")
    T = num_train_timesteps
    curves = {
        "linear (DDPM)": noise_schedule(T),
        "scaled linear (Stable Diffusion)": noise_schedule(T, 0.00085, 0.012, "scaled_linear"),
        "cosine": noise_schedule(T, beta_schedule="squaredcos_cap_v2"),
        "linear, rescaled to zero terminal SNR": noise_schedule(T, rescale_betas_zero_snr=True),
    }
    fig, (ax_bar, ax_snr) = new_figure(1, 2, width=10.0, height=3.8)
    t = torch.arange(T).numpy()
    for i, (label, schedule) in enumerate(curves.items()):
        # Dashed for the rescaled curve, in the colour of the linear one it repairs.
        style = {"linestyle": "--", "color": PALETTE[0]} if "rescaled" in label else {"color": PALETTE[i]}
        alpha_bar = schedule.alphas_cumprod.double()
        ax_bar.plot(t, alpha_bar.numpy(), label=label, **style)
        # log SNR is -inf where alpha_bar is 0; matplotlib leaves such points out.
        ax_snr.plot(t, snr(alpha_bar).log().numpy(), label=label, **style)
    ax_bar.set(title=r"$\bar\alpha_t$: the share of the data's variance left", xlabel="timestep $t$")
    ax_snr.set(title=r"log-SNR $= \log\,\bar\alpha_t / (1 - \bar\alpha_t)$", xlabel="timestep $t$")
    ax_snr.axhline(0.0, color="#999999", linewidth=0.8)
    ax_bar.legend(fontsize=8)
    return fig


def sigmoid_betas(num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02) -> Tensor:
    """Challenge solution: GeoDiff's sigmoid schedule, diffusers' ``"sigmoid"``.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 1.
        beta_start: the beta the sigmoid's lower end maps to.
        beta_end: the beta its upper end maps to.

    Returns:
        float32 betas of shape ``(num_train_timesteps,)``.

    Raises:
        ValueError: if a setting is out of range.

    Examples:
        >>> betas = sigmoid_betas()
        >>> betas.shape, bool((betas.diff() > 0).all())
        (torch.Size([1000]), True)
    """
    _check_settings(num_train_timesteps, beta_start, beta_end)
    x = torch.linspace(-6, 6, num_train_timesteps, dtype=torch.float32)  # (T,)
    return torch.sigmoid(x) * (beta_end - beta_start) + beta_start


def check_sigmoid_betas(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``sigmoid_betas``."""
    for T, start, end in ((1000, 0.0001, 0.02), (10, 0.001, 0.5), (1, 0.0001, 0.02), (2, 0.0, 1.0), (257, 0.3, 0.1)):
        got = candidate(T, start, end)
        assert isinstance(got, Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == (T,) and got.dtype == torch.float32, (
            f"for num_train_timesteps={T} expected float32 of shape ({T},), got {got.dtype} of shape {tuple(got.shape)}"
        )
        x = torch.linspace(-6, 6, T, dtype=torch.float64)
        expected = torch.sigmoid(x) * (end - start) + start
        assert torch.allclose(got.double(), expected, rtol=1e-6, atol=1e-7), (
            f"wrong betas for num_train_timesteps={T}, beta_start={start}, beta_end={end}: expected "
            "beta_start + (beta_end - beta_start) * sigmoid(x) for x evenly spaced from -6 to 6"
        )


def linear_log_snr_betas(num_train_timesteps: int, log_snr_start: float, log_snr_end: float) -> Tensor:
    """Challenge solution: betas whose log-SNR falls in a straight line from ``log_snr_start`` to ``log_snr_end``.

    Args:
        num_train_timesteps: the number of timesteps $T$, at least 1.
        log_snr_start: the log-SNR at timestep 0.
        log_snr_end: the log-SNR at timestep ``T - 1``, below ``log_snr_start`` (unless ``T`` is 1).

    Returns:
        float32 betas of shape ``(num_train_timesteps,)``, computed in float64 and rounded once.

    Raises:
        ValueError: if ``num_train_timesteps`` is below 1, or the log-SNRs are not finite or do not fall.

    Examples:
        >>> betas = linear_log_snr_betas(1000, 10.0, -10.0)
        >>> log_snr = snr(torch.cumprod(1 - betas.double(), 0)).log()
        >>> round(log_snr[0].item(), 3), round(log_snr[-1].item(), 3)
        (10.0, -10.0)
    """
    _check_settings(num_train_timesteps, 0.0, 0.0)
    if not (math.isfinite(log_snr_start) and math.isfinite(log_snr_end)) or (
        num_train_timesteps > 1 and not log_snr_end < log_snr_start
    ):
        raise ValueError(
            f"log_snr_start and log_snr_end must be finite and falling, got {log_snr_start!r} and {log_snr_end!r}"
        )
    log_snr = torch.linspace(log_snr_start, log_snr_end, num_train_timesteps, dtype=torch.float64)  # (T,)
    # SNR = alpha_bar / (1 - alpha_bar), so alpha_bar = SNR / (1 + SNR) = sigmoid(log SNR).
    alpha_bar = torch.sigmoid(log_snr)
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return (1 - alphas).to(torch.float32)


def check_linear_log_snr_betas(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``linear_log_snr_betas``."""
    for T, start, end in ((1000, 10.0, -10.0), (10, 5.0, -5.0), (200, 2.0, -12.0), (1, 3.0, 3.0), (50, -1.0, -9.0)):
        got = candidate(T, start, end)
        assert isinstance(got, Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == (T,) and got.dtype == torch.float32, (
            f"for num_train_timesteps={T} expected float32 of shape ({T},), got {got.dtype} of shape {tuple(got.shape)}"
        )
        assert bool(((got >= 0) & (got <= 1)).all()), f"betas must lie in [0, 1], got {got.tolist()[:5]}..."
        log_snr = snr(torch.cumprod(1 - got.double(), dim=0)).log()
        expected = torch.linspace(start, end, T, dtype=torch.float64)
        worst = (log_snr - expected).abs().max().item()
        assert worst < 1e-3, (
            f"for num_train_timesteps={T}, log-SNR from {start} to {end}: the betas' log-SNR is off by up to "
            f"{worst:.3g}; alpha_bar_t must be sigmoid(log_snr_t), and beta_t = 1 - alpha_bar_t / alpha_bar_(t-1)"
        )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_settings(num_train_timesteps: object, beta_start: object, beta_end: object) -> None:
    if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, Integral):
        raise TypeError(f"num_train_timesteps must be an int, got {num_train_timesteps!r}")
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be at least 1, got {num_train_timesteps}")
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


def _check_betas(betas: object) -> None:
    if not isinstance(betas, Tensor) or not betas.is_floating_point() or betas.dim() != 1:
        got = f"dtype {betas.dtype} and shape {tuple(betas.shape)}" if isinstance(betas, Tensor) else repr(betas)
        raise TypeError(f"betas must be a 1-D floating-point tensor, got {got}")
    if betas.numel() < 2:
        raise ValueError(f"betas must hold at least two betas to rescale, got {betas.numel()}")
    alpha_bar = torch.cumprod(1.0 - betas.double(), dim=0)
    if alpha_bar[0] == alpha_bar[-1]:
        raise ValueError(
            f"betas must change alpha_bar between the first and last timestep to rescale it, got "
            f"alpha_bar {alpha_bar[0].item()} at both"
        )
