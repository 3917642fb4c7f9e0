r"""
# The Forward Process: Dissolving Order into Noise

!!! torchenstein "The Professor speaks"
    Any fool can destroy a masterpiece; Dr. Hammer does it daily. But to destroy it *so carefully* that
    the destruction can be learned backwards, one tiny step at a time, that is the secret of every image
    generator in the world! Tonight we dissolve handwritten digits and spirals into pure noise, step by
    step and then in one jump, prove that the two are the same law of chance, and prove our jump equal,
    bit for bit, to the one inside Hugging Face's `diffusers`. Learning to *undo* it comes in the lessons
    that follow.

**You will learn to**

- say what a diffusion model's **forward process**, **timestep** and **noise schedule** are;
- add Gaussian noise one step at a time, $x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon$,
  with [`q_step`][torchenstein.diffusion.forward.q_step];
- derive the jump straight to any timestep, $q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,
  (1-\bar\alpha_t) I)$, and write it as [`q_sample`][torchenstein.diffusion.forward.q_sample];
- prove the two equal in distribution, with a tolerance you derive from the sample size, and sample by
  sample when the jump is given the noise the steps added;
- read the **signal-to-noise ratio** of a timestep;
- dodge four of Dr. Hammer's favourite ways to noise an image wrongly.

## Order, and the noise that eats it

A **diffusion model** generates data (images, sounds, molecules) by learning to undo a fixed, slow
destruction. That destruction is the **forward process**: it starts from a sample of real data $x_0$ and
adds a little Gaussian noise, again and again, for $T$ steps, until nothing of $x_0$ is left and $x_T$ is,
for all practical purposes, a draw from the standard normal distribution $\mathcal N(0, I)$. **Gaussian
noise** $\varepsilon \sim \mathcal N(0, I)$ is a tensor of independent numbers, each drawn from the normal
distribution with mean 0 and variance 1: `torch.randn`. A **timestep** $t$ counts the steps taken so far;
the **noise schedule** is the sequence of numbers $\beta_1, \dots, \beta_T$ (the **betas**), each the
variance of the noise added at its step. The forward process learns nothing: it has no parameters at all.
The model learns the reverse, and this lesson builds what it learns from.

For now a schedule is just a sequence of betas: the one of the DDPM paper (Ho et al., 2020), $T = 1000$
betas spaced evenly from $10^{-4}$ to $0.02$. (The next lesson compares it with the other schedules in
use, and asks how to choose one.)

```pycon
>>> import torch
>>> betas = torch.linspace(1e-4, 0.02, 1000)
>>> {"shape": tuple(betas.shape), "dtype": betas.dtype, "first": round(betas[0].item(), 6),
...  "last": round(betas[-1].item(), 6)}
{'shape': (1000,), 'dtype': torch.float32, 'first': 0.0001, 'last': 0.02}

```

Our data comes in two kinds. Handwritten digits: the 1797 grey 8×8 images that scikit-learn ships with
its package, so nothing is downloaded. [`load_digit_images`][torchenstein.diffusion.forward.load_digit_images]
returns them as a **batch** (a stack of samples along a first dimension) of shape $(B, C, H, W)$, with one
**channel** (a colour plane; grey needs only one), and grey levels rescaled from 0..16 to $[-1, 1]$, the
same scale as the noise. And points in the plane: the spiral of [The training loop](../../training/loop/index.md),
drawn by its [`make_spiral`][torchenstein.training.loop.make_spiral].

```pycon
>>> from torchenstein.diffusion.forward import load_digit_images
>>> from torchenstein.training.loop import make_spiral
>>> images, labels = load_digit_images()
>>> {"images": tuple(images.shape), "dtype": images.dtype, "range": (images.min().item(), images.max().item()),
...  "first labels": labels[:10].tolist()}
{'images': (1797, 1, 8, 8), 'dtype': torch.float32, 'range': (-1.0, 1.0), 'first labels': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
>>> points, arms = make_spiral(n_per_class=200, num_classes=2)
>>> points.shape
torch.Size([400, 2])

```

## One step at a time

One step of the forward process shrinks the previous sample a little and adds a little noise:

$$
x_t = \sqrt{1 - \beta_t}\; x_{t-1} + \sqrt{\beta_t}\; \varepsilon_t, \qquad \varepsilon_t \sim \mathcal N(0, I),
$$

with fresh noise $\varepsilon_t$ at every step. As a distribution, $q(x_t \mid x_{t-1}) = \mathcal
N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)$: the letter $q$ is the diffusion papers' name for the forward
process, and $\mathcal N(\mu, \sigma^2 I)$ the normal distribution with mean $\mu$ and variance $\sigma^2$
in every coordinate. Why shrink before adding? Variances of independent terms add, so if $x_{t-1}$ has
variance 1, then $x_t$ has $(1 - \beta_t) \cdot 1 + \beta_t = 1$ too: the process is **variance
preserving**, and data of unit scale stays at unit scale all the way to $\mathcal N(0, I)$. Without the
shrink the variance would grow by the sum of all the betas:

```pycon
>>> round(betas.sum().item(), 2)
10.05

```

We write $\alpha_t = 1 - \beta_t$, the share of the previous sample's variance each step keeps.

**Counting from zero.** The papers number the steps $t = 1, \dots, T$ and call the data $x_0$. Code,
diffusers' included, numbers them $t = 0, \dots, T - 1$, the indices of the tensor `betas`: code
timestep $t$ is the paper's step $t + 1$, `betas[t]` is $\beta_{t+1}$, and timestep 0 is the first step
away from the data. From here on, a timestep in code is always counted from zero.
[`q_step`][torchenstein.diffusion.forward.q_step]`(x_prev, t, betas, noise)` takes one step: from the
sample before timestep `t` (the data itself when `t` is 0) to the sample at timestep `t`. Like diffusers,
it draws no noise itself: the caller passes it, so every result can be reproduced.

```pycon
>>> from torchenstein.diffusion.forward import q_step
>>> _ = torch.manual_seed(0)
>>> x0 = images[:4]                                            # (B, C, H, W) = (4, 1, 8, 8)
>>> x = q_step(x0, 0, betas, torch.randn_like(x0))             # timestep 0: one step from the data
>>> for t in range(1, 10):
...     x = q_step(x, t, betas, torch.randn_like(x))           # timesteps 1..9
>>> {"shape": tuple(x.shape), "dtype": x.dtype}
{'shape': (4, 1, 8, 8), 'dtype': torch.float32}

```

## One jump: $q(x_t \mid x_0)$

To train, a model needs noisy samples at *random* timesteps, thousands per second, and walking 700 steps
to reach timestep 700 would be absurd. Fortunately the steps compose into one. Write
$\bar\alpha_t = \prod_{s=1}^{t} \alpha_s = \prod_{s=1}^{t} (1 - \beta_s)$, the share of the data's variance
left after $t$ steps. The claim is

$$
q(x_t \mid x_0) = \mathcal N\!\left(\sqrt{\bar\alpha_t}\; x_0,\; (1 - \bar\alpha_t)\, I\right),
\qquad\text{that is}\qquad
x_t = \sqrt{\bar\alpha_t}\; x_0 + \sqrt{1 - \bar\alpha_t}\; \varepsilon, \quad \varepsilon \sim \mathcal N(0, I).
$$

**The proof**, by induction on $t$. For $t = 1$ it is the step itself, since $\bar\alpha_1 = \alpha_1$.
Suppose it holds for $t - 1$: $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,x_0 + \sqrt{1 - \bar\alpha_{t-1}}\,
\bar\varepsilon$ with $\bar\varepsilon \sim \mathcal N(0, I)$. Take one more step:

$$
x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{1 - \alpha_t}\, \varepsilon_t
= \sqrt{\alpha_t \bar\alpha_{t-1}}\; x_0
  + \underbrace{\sqrt{\alpha_t (1 - \bar\alpha_{t-1})}\; \bar\varepsilon + \sqrt{1 - \alpha_t}\; \varepsilon_t}_{\text{two independent Gaussians}} .
$$

First, $\alpha_t \bar\alpha_{t-1} = \bar\alpha_t$. Second, $\bar\varepsilon$ depends only on the noises of
steps before $t$, so it is independent of $\varepsilon_t$, and a sum of independent Gaussians with mean 0
is a Gaussian with mean 0 whose variance is the sum of theirs:
$\alpha_t - \alpha_t \bar\alpha_{t-1} + 1 - \alpha_t = 1 - \bar\alpha_t$. That is the claim for $t$. ∎

In code, $\bar\alpha$ is a cumulative product, and diffusers calls it `alphas_cumprod`: `alphas_cumprod[t]`
is $\bar\alpha$ at code timestep `t`, the product of `1 - betas[s]` for `s` from 0 to `t`.
[`q_sample`][torchenstein.diffusion.forward.q_sample]`(x0, t, alphas_cumprod, noise)` is the jump; `t` is
one timestep, or a tensor of shape $(B,)$ with one timestep per sample, as in training:

```pycon
>>> from torchenstein.diffusion.forward import q_sample
>>> alphas_cumprod = torch.cumprod(1 - betas, dim=0)           # (T,): alpha_bar for t = 0..T-1
>>> t = torch.tensor([0, 100, 500, 999])                       # (B,): one timestep per image
>>> x_t = q_sample(x0, t, alphas_cumprod, torch.randn_like(x0))
>>> x_t.shape
torch.Size([4, 1, 8, 8])
>>> {int(s): round(alphas_cumprod[s].item(), 5) for s in t}
{0: 0.9999, 100: 0.89514, 500: 0.0778, 999: 4e-05}

```

By timestep 999 a share of $4 \cdot 10^{-5}$ of the data's variance is left, a signal $\sqrt{\bar\alpha}
\approx 0.006$ times the image: nearly, but not quite, nothing (the next lesson makes a drama of that
"not quite"). Here is one digit at several timesteps, with the same $\varepsilon$ in every panel:

![A handwritten zero at seven timesteps from 0 to 999: crisp at first, speckled by timestep 100, barely visible at 300, and pure grey noise by 999.](plot_digit_dissolving.svg)

And a spiral of 2-D points, each point noised on its own: the arms blur, the cloud swells and rounds
off, and by the end it is the standard normal's round blob.

![Five scatter plots of a two-armed spiral at timesteps 0, 50, 150, 400 and 999: the arms thicken, merge and end as a round Gaussian cloud.](plot_spiral_dissolving.svg)

## The same law, not the same sample

The chain of steps and the jump are equal *in distribution*: given the same $x_0$, the samples of one
and of the other are drawn from the same **law** (the probability distribution a random quantity is
drawn from), $\mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t) I)$.
They are not the same *numbers*: the chain spends one fresh noise tensor per step, the jump spends one
in all, and no bookkeeping makes $t$ random tensors into the one you happened to pass to the jump.

How do we check a claim about a law with a computer? Draw many samples both ways and compare their
**moments** (mean and variance) with the formula. They never match exactly, so we need a tolerance,
and the sample size fixes it. The mean of $N$ independent draws with variance $\sigma^2$ has a standard
deviation, its **standard error**, of $\sigma / \sqrt N$. For the variance of $N$ Gaussian draws, the
sample variance has standard error $\sigma^2 \sqrt{2 / (N - 1)}$. We accept a deviation of up to 5
standard errors: a correct implementation misses that by chance with probability about $6 \cdot 10^{-7}$
per number checked, while a wrong formula (Dr. Hammer's below) misses by dozens of standard errors or
more.
Ten times more samples buy a tolerance $\sqrt{10}$ times tighter. In float64, so that rounding plays no
part:

```pycon
>>> b = betas.double()
>>> alpha_bar = torch.cumprod(1 - b, dim=0)
>>> point = torch.tensor([1.0, -0.5], dtype=torch.float64)     # one data point x0 in the plane
>>> N, t = 10_000, 299
>>> _ = torch.manual_seed(0)
>>> chain = point.expand(N, 2)                                  # (N, 2): N copies of x0
>>> for s in range(t + 1):
...     chain = q_step(chain, s, b, torch.randn(N, 2, dtype=torch.float64))
>>> jump = q_sample(point.expand(N, 2), t, alpha_bar, torch.randn(N, 2, dtype=torch.float64))
>>> mean, var = alpha_bar[t].sqrt() * point, 1 - alpha_bar[t]   # the law's moments
>>> se_mean, se_var = (var / N).sqrt(), var * (2 / (N - 1)) ** 0.5
>>> def within_5_se(samples):
...     return bool(((samples.mean(0) - mean).abs() < 5 * se_mean).all()
...                 and ((samples.var(0) - var).abs() < 5 * se_var).all())
>>> {"chain": within_5_se(chain), "jump": within_5_se(jump), "same numbers": torch.allclose(chain, jump)}
{'chain': True, 'jump': True, 'same numbers': False}
>>> {"mean": [round(m, 4) for m in mean.tolist()], "variance": round(var.item(), 4),
...  "its standard error": round(se_var.item(), 4)}
{'mean': [0.6296, -0.3148], 'variance': 0.6036, 'its standard error': 0.0085}

```

**Sample by sample, where it applies.** The jump *is* the chain when you hand it the noise the chain
actually added. Every step is linear in its two inputs, so the chain from $x_0$ is the chain from $x_0$
with no noise, which is $\sqrt{\alpha_1 \cdots \alpha_t}\,x_0 = \sqrt{\bar\alpha_t}\,x_0$, plus the chain
from zero with the noises. Run the chain from zero to get that noise part; divided by $\sqrt{1 -
\bar\alpha_t}$ it is a standard normal $\bar\varepsilon$, the jump's noise:

```pycon
>>> noises = torch.randn(t + 1, 2, dtype=torch.float64)         # one noise per step
>>> x, noise_part = point, torch.zeros(2, dtype=torch.float64)
>>> for s in range(t + 1):
...     x = q_step(x, s, b, noises[s])                          # the chain from x0
...     noise_part = q_step(noise_part, s, b, noises[s])        # the same chain from zero
>>> eps_bar = noise_part / (1 - alpha_bar[t]).sqrt()
>>> torch.allclose(q_sample(point, t, alpha_bar, eps_bar), x, rtol=0, atol=1e-12)
True

```

At timestep 0 the chain is one step and needs no bookkeeping: the same noise gives the same sample. In
exact arithmetic, that is; the jump computes its noise scale as $\sqrt{1 - \bar\alpha_0}$ where the step
uses $\sqrt{\beta_0}$, and in float32 the subtraction $1 - 0.9999$ keeps only the few digits that
distinguish $0.9999$ from 1: the two scales agree to about $10^{-4}$ relative, in float64 to about
$10^{-12}$ (diffusers computes it the same way, and so do we, to match it).

```pycon
>>> {"step: sqrt(beta_0)": round(betas[0].sqrt().item(), 7),
...  "jump: sqrt(1 - alpha_bar_0)": round((1 - alphas_cumprod[0]).sqrt().item(), 7)}
{'step: sqrt(beta_0)': 0.01, 'jump: sqrt(1 - alpha_bar_0)': 0.0100008}
>>> def scale_gap(dtype):                 # relative gap of the jump's noise scale to the step's, at t = 0
...     b = betas.to(dtype)
...     return round(((1 - torch.cumprod(1 - b, dim=0)[0]).sqrt() / b[0].sqrt() - 1).item(), 6)
>>> {"float32": scale_gap(torch.float32), "float64": scale_gap(torch.float64)}
{'float32': 8.3e-05, 'float64': 0.0}
>>> eps = torch.randn_like(x0)
>>> torch.allclose(q_step(x0, 0, betas, eps), q_sample(x0, 0, alphas_cumprod, eps), rtol=0, atol=1e-5)
True

```

## Against the real thing: diffusers' `add_noise`

Hugging Face's `diffusers` library draws its training samples with `DDPMScheduler.add_noise(original_samples,
noise, timesteps)`, and `q_sample` takes the same three tensors plus the scheduler's `alphas_cumprod`.
The tests (`tests/test_forward.py`) prove the two equal **bit for bit** in float32 and float64: on images
of shape $(B, C, H, W)$ and on points of shape $(B, 2)$, with per-sample timesteps of shape $(B,)$ (int64
or int32) and with a single timestep, at both ends of the schedule (0 and $T - 1$), for schedules passed as float32 and
as float64, for the scheduler built from several constructor settings, and on random shapes with
random schedules (passed to the scheduler as `trained_betas`). The lesson itself never
imports diffusers, so it loads fast and runs without it.

Bit for bit, because `q_sample` does what `add_noise` does in the same order: look up $\bar\alpha_t$,
take $\sqrt{\bar\alpha_t}$ and $\sqrt{1 - \bar\alpha_t}$, reshape them to $(B, 1, \dots, 1)$, and compute
`sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * noise`. Timesteps in a narrower integer tensor
(uint8, int8, int16) are timesteps to `q_sample`; `add_noise` refuses int16 and reads uint8 as a
boolean mask (an `IndexError`), and a test pins both.

!!! note "Where it differs from diffusers"
    float16 and bfloat16. `add_noise` first casts `alphas_cumprod` to the samples' dtype, then computes
    $1 - \bar\alpha_t$ in it. Near $\bar\alpha_t = 1$, float16's neighbouring numbers are $2^{-11}$ apart
    and bfloat16's $2^{-8}$, so the first timesteps' $\bar\alpha_t$ round to exactly 1 and their noise
    disappears. `q_sample` computes the scales and the sum in float32 and rounds once, at the end, the
    recipe of the [RMSNorm](../../nn/rmsnorm/index.md) lesson. A test pins the difference: diffusers'
    result is the formula with $\bar\alpha$ rounded to the half type first; the two agree to the half
    type's tolerance once noise dominates (SNR below 1, defined below), differ clearly before that, and
    at the timesteps with no noise left diffusers returns the clean image.

    ```pycon
    >>> (1 - alphas_cumprod[:3].half()).sqrt().tolist()          # what add_noise uses in float16
    [0.0, 0.0, 0.0220947265625]
    >>> [round(v, 4) for v in (1 - alphas_cumprod[:3]).sqrt().tolist()]
    [0.01, 0.0148, 0.019]
    >>> {name: int(((1 - alphas_cumprod.to(dtype)) == 0).sum()) for name, dtype in
    ...  (("float16", torch.float16), ("bfloat16", torch.bfloat16))}     # timesteps with no noise
    {'float16': 2, 'bfloat16': 10}
    >>> q_sample(x0.half(), 0, alphas_cumprod, eps.half()).dtype
    torch.float16

    ```

## The signal-to-noise ratio

At timestep $t$ the sample is $\sqrt{\bar\alpha_t}\,x_0$, the **signal**, plus $\sqrt{1 - \bar\alpha_t}\,
\varepsilon$, the **noise**. For data of unit variance, their variances are $\bar\alpha_t$ and $1 -
\bar\alpha_t$, and their ratio is the **signal-to-noise ratio**,

$$
\operatorname{SNR}(t) = \frac{\bar\alpha_t}{1 - \bar\alpha_t}, \qquad
\bar\alpha_t = \frac{\operatorname{SNR}(t)}{1 + \operatorname{SNR}(t)} .
$$

It falls from enormous to nearly zero, and it is the clearest single description of a noise schedule:
two schedules with the same SNR at every timestep noise the data identically. Its logarithm, the
**log-SNR**, spreads the huge range over a readable scale. [`snr`][torchenstein.diffusion.forward.snr]
computes it for every timestep at once:

```pycon
>>> from torchenstein.diffusion.forward import snr
>>> ratio = snr(alphas_cumprod)                                 # (T,)
>>> {t: round(ratio[t].item(), 5) for t in (0, 99, 499, 999)}
{0: 9997.34082, 99: 8.71043, 499: 0.08529, 999: 4e-05}
>>> {"first t with SNR < 1": int((ratio < 1).nonzero()[0]), "timesteps with SNR < 1": int((ratio < 1).sum())}
{'first t with SNR < 1': 259, 'timesteps with SNR < 1': 741}
>>> bool((ratio[1:] < ratio[:-1]).all())                        # falling at every step
True

```

(The exact $\operatorname{SNR}$ at timestep 0 is $0.9999 / 0.0001 = 9999$; float32's $1 - \bar\alpha_0$ is
the rounded value met above.) From timestep 259 on, each sample holds more noise than signal: 741 of the
1000 timesteps are spent below $\operatorname{SNR} = 1$. Whether that is a good use of a thousand steps is
the next lesson's question.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: $\beta_t$ where $\bar\alpha_t$ belongs"
    Hammer reads the one-step formula and writes the jump with it: `sqrt(1 - betas[t]) * x0 +
    sqrt(betas[t]) * noise`. At timestep 999 that is *one* step's worth of noise applied to the clean
    image: the digit is still there, plain as day, at the timestep that was supposed to be pure noise. His
    model never once sees the noise it must start from when it generates.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> batch, t = images[:256], 999
    >>> noise = torch.randn_like(batch)
    >>> hammer = (1 - betas[t]).sqrt() * batch + betas[t].sqrt() * noise
    >>> ours = q_sample(batch, t, alphas_cumprod, noise)
    >>> def kept(x_t):                                          # correlation of x_t with the image
    ...     return abs(round(torch.corrcoef(torch.stack([x_t.flatten(), batch.flatten()]))[0, 1].item(), 1))
    >>> {"hammer": kept(hammer), "q_sample": kept(ours)}
    {'hammer': 1.0, 'q_sample': 0.0}
    >>> {"hammer's signal scale": round((1 - betas[t]).sqrt().item(), 4),
    ...  "the true one": round(alphas_cumprod[t].sqrt().item(), 4)}
    {"hammer's signal scale": 0.9899, 'the true one': 0.0064}

    ```

!!! hammer "Dr. Hammer's trap: $1 - \sqrt{\bar\alpha_t}$ instead of $\sqrt{1 - \bar\alpha_t}$"
    The signal is scaled by $\sqrt{\bar\alpha_t}$, so Hammer reasons that the noise must be scaled by "the
    rest", $1 - \sqrt{\bar\alpha_t}$. But *variances* add to one, not standard deviations. Near the end the
    two scales nearly agree, so his samples at timestep 999 look right; at the start his noise is 200 times
    too weak, and in between his samples lose up to half their variance, which for unit-variance data
    should stay 1:

    ```pycon
    >>> hammer_scale, noise_scale = 1 - alphas_cumprod.sqrt(), (1 - alphas_cumprod).sqrt()   # (T,) each
    >>> {"hammer's at 999": round(hammer_scale[999].item(), 4), "true at 999": round(noise_scale[999].item(), 5)}
    {"hammer's at 999": 0.9936, 'true at 999': 0.99998}
    >>> round((noise_scale[0] / hammer_scale[0]).item())
    200
    >>> def total_variance(scale):                              # for data of variance 1, at every t
    ...     return alphas_cumprod + scale**2
    >>> {t: round(total_variance(hammer_scale)[t].item(), 3) for t in (0, 249, 499, 999)}
    {0: 1.0, 249: 0.6, 499: 0.597, 999: 0.987}
    >>> {"hammer's lowest": round(total_variance(hammer_scale).min().item(), 3),
    ...  "q_sample's lowest": round(total_variance(noise_scale).min().item(), 3)}
    {"hammer's lowest": 0.5, "q_sample's lowest": 1.0}

    ```

!!! hammer "Dr. Hammer's trap: counting timesteps from one"
    The paper draws $t$ from $1, \dots, T$; Hammer copies it into code, `torch.randint(1, T + 1, ...)`,
    and indexes `alphas_cumprod[t]`. One draw in a thousand is $t = T$, so now and then a batch crashes
    (one batch of 128 in eight or so), which he "fixes" with `alphas_cumprod[t - 1]` in one place but not
    in another. Worse, a `t - 1` applied to code that already counts from zero turns timestep 0 into index
    $-1$, which Python happily reads as the *last* entry: the gentlest timestep gets pure noise, and
    nothing complains.

    ```pycon
    >>> T = len(alphas_cumprod)
    >>> round(1 - (1 - 1 / T) ** 128, 2)                         # chance that a batch of 128 holds t = T
    0.12
    >>> alphas_cumprod[torch.tensor([3, T])]                    # paper-style t reaches T
    Traceback (most recent call last):
    ...
    IndexError: index 1000 is out of bounds for dimension 0 with size 1000
    >>> round(alphas_cumprod[torch.tensor(0) - 1].item(), 5)    # timestep 0, shifted: the last entry
    4e-05
    >>> q_sample(x0, T, alphas_cumprod, torch.randn_like(x0))
    Traceback (most recent call last):
    ...
    ValueError: t must hold timesteps from 0 to 999 (counted from 0, as in diffusers), got 1000

    ```

    `q_sample` and `q_step` refuse any timestep outside $0, \dots, T - 1$, negative ones included: draw
    training timesteps with `torch.randint(0, T, (B,))`.

!!! hammer "Dr. Hammer's trap: per-sample timesteps that do not broadcast"
    With one timestep per image, $\sqrt{\bar\alpha_t}$ has shape $(B,)$ and the images $(B, C, H, W)$.
    Broadcasting aligns shapes on the *right* (see [Broadcasting](../../tensors/broadcasting/index.md)),
    so the $B$ scales face the images' *width*. With a batch of 4 it fails loudly. With a batch of 8 and
    8-pixel-wide digits it runs, and scales each column of every image by another sample's timestep.

    ```pycon
    >>> t = torch.tensor([0, 100, 500, 999])
    >>> alphas_cumprod[t].sqrt() * x0                           # (4,) * (4, 1, 8, 8)
    Traceback (most recent call last):
    ...
    RuntimeError: The size of tensor a (4) must match the size of tensor b (8) at non-singleton dimension 3
    >>> t8, x8 = torch.arange(0, 1000, 125), images[:8]         # (8,) and (8, 1, 8, 8)
    >>> (alphas_cumprod[t8].sqrt() * x8).shape                  # no error, wrong numbers
    torch.Size([8, 1, 8, 8])
    >>> from torchenstein.diffusion.forward import per_sample
    >>> per_sample(alphas_cumprod[t8].sqrt(), x8).shape         # (B,) -> (B, 1, 1, 1)
    torch.Size([8, 1, 1, 1])
    >>> torch.equal(alphas_cumprod[t8].sqrt() * x8, per_sample(alphas_cumprod[t8].sqrt(), x8) * x8)
    False

    ```

    [`per_sample`][torchenstein.diffusion.forward.per_sample] reshapes $(B,)$ to $(B, 1, \dots, 1)$ for a
    sample of any number of dimensions, as diffusers does; `q_sample` and `q_step` call it, and refuse a
    `t` whose length is not the batch size.

## Challenges

**1. Back to the data.** Given a noisy sample, its timestep, the schedule and the very noise that was
added, recover the clean sample: write `recover_x0(x_t, t, alphas_cumprod, noise)` that inverts
`q_sample`, for one timestep or one per sample, on samples of any number of dimensions. (A trained model
*predicts* that noise; this formula is how its prediction becomes a guess of the clean image.)

**2. A training batch.** Write `noisy_training_batch(x0, alphas_cumprod, generator)` that draws, with the
given `torch.Generator`, one timestep per sample uniformly from $0, \dots, T - 1$ (first) and a standard
normal noise of `x0`'s shape and dtype (second), and returns `(x_t, t, noise)` with `x_t` from
`q_sample`: the inputs and the target of one step of DDPM training.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from torchenstein.lab import PALETTE, new_figure
from torchenstein.training.loop import make_spiral

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


def load_digit_images() -> tuple[Tensor, Tensor]:
    """The 1797 handwritten 8x8 digits bundled with scikit-learn, as images scaled to ``[-1, 1]``.

    The digits are read from the file that ``sklearn.datasets.load_digits`` reads, without importing
    scikit-learn itself (which takes seconds); if that file is not where scikit-learn keeps it, the
    function falls back to ``load_digits``. Nothing is downloaded. A test proves the two routes equal.

    Returns:
        ``(images, labels)``: float32 images of shape ``(1797, 1, 8, 8)`` with grey levels ``0..16``
        mapped linearly to ``[-1, 1]``, and their int64 digit labels of shape ``(1797,)``.

    Examples:
        >>> images, labels = load_digit_images()
        >>> images.shape, labels.shape, labels.dtype
        (torch.Size([1797, 1, 8, 8]), torch.Size([1797]), torch.int64)
    """
    pixels, labels = _bundled_digits()
    # Grey levels 0..16 become -1..1: the same scale as standard normal noise, so the forward process
    # starts from data of about unit size. The clones keep the cached tensors safe from in-place edits.
    images = (pixels / 8.0 - 1.0).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    return images.clone(), labels.clone()


@functools.cache
def _bundled_digits() -> tuple[Tensor, Tensor]:
    """The digits' pixels (float32, 0..16) and labels, read once per process."""
    import importlib.util
    import os

    import numpy as np

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    path = None
    if spec is not None and spec.origin is not None:
        path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    if path is not None and os.path.exists(path):
        data = np.loadtxt(path, delimiter=",")  # (1797, 65): 64 pixels, then the label
        pixels, labels = data[:, :-1], data[:, -1]
    else:  # pragma: no cover - a scikit-learn that keeps its data elsewhere
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels, labels = digits.data, digits.target
    return torch.tensor(pixels, dtype=torch.float32), torch.tensor(labels, dtype=torch.int64)


def per_sample(values: Tensor, sample: Tensor) -> Tensor:
    """Reshape one value per sample, shape ``(B,)``, to ``(B, 1, ..., 1)``, to broadcast over ``sample``.

    A 0-d ``values`` (one value for the whole batch) is returned as it is: it broadcasts by itself.

    Args:
        values: a tensor of shape ``()`` or ``(B,)``.
        sample: the batch the values will multiply, of shape ``(B, ...)``.

    Returns:
        ``values`` viewed with ``sample.dim() - 1`` trailing dims of size 1 (or unchanged if 0-d).

    Raises:
        ValueError: if ``values`` is not 0-d or 1-d, or its length is not ``sample``'s batch size.

    Examples:
        >>> per_sample(torch.tensor([1.0, 2.0]), torch.ones(2, 3, 8, 8)).shape
        torch.Size([2, 1, 1, 1])
        >>> per_sample(torch.tensor([1.0, 2.0]), torch.ones(3, 2))
        Traceback (most recent call last):
        ...
        ValueError: values has 2 entries, one per sample, but sample has a batch of 3 (shape (3, 2))
    """
    if values.dim() == 0:
        return values
    if values.dim() != 1 or sample.dim() == 0 or values.size(0) != sample.size(0):
        batch = sample.size(0) if sample.dim() > 0 else "none"
        raise ValueError(
            f"values has {values.size(0) if values.dim() == 1 else tuple(values.shape)} entries, one per "
            f"sample, but sample has a batch of {batch} (shape {tuple(sample.shape)})"
        )
    return values.reshape(-1, *([1] * (sample.dim() - 1)))  # (B, 1, ..., 1)


def q_step(x_prev: Tensor, t: int | Tensor, betas: Tensor, noise: Tensor) -> Tensor:
    r"""One step of the forward process: $x_t = \sqrt{1 - \beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\varepsilon$.

    Args:
        x_prev: the sample before timestep ``t`` (the data itself when ``t`` is 0), shape ``(B, ...)``.
        t: the timestep, counted from 0: an int, a 0-d integer tensor, or one per sample, shape ``(B,)``.
        betas: the noise schedule, shape ``(T,)``.
        noise: standard normal noise of ``x_prev``'s shape.

    Returns:
        The sample at timestep ``t``, of ``x_prev``'s shape and dtype. float16 and bfloat16 samples are
        computed in float32 and rounded once.

    Raises:
        TypeError: if a tensor is not floating point, or ``t`` is not an int or an integer tensor.
        ValueError: if shapes disagree or a timestep lies outside ``0..T-1``.

    Examples:
        >>> betas = torch.linspace(1e-4, 0.02, 1000)
        >>> x = q_step(torch.zeros(3), 999, betas, torch.ones(3))   # zero signal: only the noise is left
        >>> [round(v, 4) for v in x.tolist()]
        [0.1414, 0.1414, 0.1414]
    """
    t = _check_forward_args("x_prev", x_prev, t, "betas", betas, noise)
    compute = _compute_dtype(x_prev.dtype)
    beta = betas.to(device=x_prev.device, dtype=compute)[t]  # () or (B,)
    # Shrink, then add: (1 - beta) + beta = 1, so a unit-variance sample stays unit-variance.
    x_t = per_sample((1 - beta).sqrt(), x_prev) * x_prev.to(compute) + per_sample(beta.sqrt(), x_prev) * noise.to(compute)
    return x_t.to(x_prev.dtype)


def q_sample(x0: Tensor, t: int | Tensor, alphas_cumprod: Tensor, noise: Tensor) -> Tensor:
    r"""Jump from the data to timestep ``t``: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$.

    The same computation, in the same order, as ``diffusers.DDPMScheduler.add_noise(x0, noise, t)`` with
    the scheduler's ``alphas_cumprod``: bit for bit equal in float32 and float64. float16 and bfloat16
    samples are computed in float32 and rounded once (diffusers computes in the half type itself).

    Args:
        x0: the clean samples, shape ``(B, ...)``.
        t: the timestep, counted from 0: an int, a 0-d integer tensor, or one per sample, shape ``(B,)``.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        noise: standard normal noise of ``x0``'s shape.

    Returns:
        The noisy samples at timestep ``t``, of ``x0``'s shape and dtype.

    Raises:
        TypeError: if a tensor is not floating point, or ``t`` is not an int or an integer tensor.
        ValueError: if shapes disagree or a timestep lies outside ``0..T-1``.

    Examples:
        >>> alphas_cumprod = torch.tensor([0.64, 0.36])
        >>> q_sample(torch.ones(2, 3), torch.tensor([0, 1]), alphas_cumprod, torch.ones(2, 3))
        tensor([[1.4000, 1.4000, 1.4000],
                [1.4000, 1.4000, 1.4000]])
        >>> q_sample(torch.ones(2, 3), torch.tensor([0.0, 1.0]), alphas_cumprod, torch.ones(2, 3))
        Traceback (most recent call last):
        ...
        TypeError: t must be an int or an integer tensor, got a tensor of dtype torch.float32
    """
    t = _check_forward_args("x0", x0, t, "alphas_cumprod", alphas_cumprod, noise)
    compute = _compute_dtype(x0.dtype)
    alpha_bar = alphas_cumprod.to(device=x0.device, dtype=compute)[t]  # () or (B,)
    sqrt_alpha_bar = per_sample(alpha_bar.sqrt(), x0)  # (B, 1, ..., 1)
    # Variances add, not standard deviations: the noise's scale is sqrt(1 - alpha_bar).
    sqrt_one_minus_alpha_bar = per_sample((1 - alpha_bar).sqrt(), x0)  # (B, 1, ..., 1)
    x_t = sqrt_alpha_bar * x0.to(compute) + sqrt_one_minus_alpha_bar * noise.to(compute)
    return x_t.to(x0.dtype)


def snr(alphas_cumprod: Tensor) -> Tensor:
    r"""The signal-to-noise ratio of every timestep, $\bar\alpha_t / (1 - \bar\alpha_t)$.

    Args:
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.

    Returns:
        A tensor of ``alphas_cumprod``'s shape and dtype; ``inf`` where $\bar\alpha_t = 1$, 0 where it is 0.

    Raises:
        TypeError: if ``alphas_cumprod`` is not a floating-point tensor.

    Examples:
        >>> snr(torch.tensor([0.8, 0.5, 0.2, 0.0]))
        tensor([4.0000, 1.0000, 0.2500, 0.0000])
    """
    if not isinstance(alphas_cumprod, Tensor) or not alphas_cumprod.is_floating_point():
        raise TypeError(f"alphas_cumprod must be a floating-point tensor, got {_describe(alphas_cumprod)}")
    return alphas_cumprod / (1 - alphas_cumprod)


def _linear_betas(num_train_timesteps: int = 1000) -> Tensor:
    """The DDPM paper's betas, evenly spaced from 1e-4 to 0.02 (the next lesson writes the real thing)."""
    return torch.linspace(1e-4, 0.02, num_train_timesteps)


def plot_digit_dissolving(*, timesteps: Sequence[int] = (0, 50, 100, 200, 300, 500, 999), index: int = 0) -> Figure:
    """Draw one handwritten digit at several timesteps of the DDPM schedule, with the same noise in each.

    Args:
        timesteps: the timesteps to show, each in ``0..999``.
        index: which of the 1797 digits to dissolve.

    Returns:
        A figure with one image per timestep.

    Raises:
        ValueError: if ``timesteps`` is empty or ``index`` is out of range.

    Examples:
        >>> fig = plot_digit_dissolving(timesteps=(0, 999))
        >>> len(fig.axes)
        2
    """
    timesteps = list(timesteps)
    if not timesteps:
        raise ValueError("timesteps must hold at least one timestep, got an empty sequence")
    images, labels = load_digit_images()
    if isinstance(index, bool) or not isinstance(index, Integral) or not 0 <= index < len(images):
        raise ValueError(f"index must be an int from 0 to {len(images) - 1}, got {index!r}")
    alphas_cumprod = torch.cumprod(1 - _linear_betas(), dim=0)
    x0 = images[index]  # (1, 8, 8)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    fig, axes = new_figure(1, len(timesteps), width=1.45 * len(timesteps), height=2.0)
    for ax, t in zip(axes, timesteps, strict=True):
        x_t = q_sample(x0, t, alphas_cumprod, noise)  # one timestep for the one image
        # Noisy pixels leave [-1, 1]; they are clipped for display only, so grey means 0 throughout.
        ax.imshow(x_t[0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"t = {t}\n" + r"$\bar\alpha$" + f" = {alphas_cumprod[t].item():.4g}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(f"A handwritten {labels[index].item()} dissolving into noise", fontsize=10)
    return fig


def plot_spiral_dissolving(*, timesteps: Sequence[int] = (0, 50, 150, 400, 999), n_per_class: int = 100) -> Figure:
    """Draw a two-armed spiral of points at several timesteps, each point noised independently.

    Args:
        timesteps: the timesteps to show, each in ``0..999``.
        n_per_class: points per arm of the spiral.

    Returns:
        A figure with one scatter plot per timestep, on common axes.

    Raises:
        ValueError: if ``timesteps`` is empty.

    Examples:
        >>> fig = plot_spiral_dissolving(timesteps=(0, 999), n_per_class=20)
        >>> len(fig.axes)
        2
    """
    timesteps = list(timesteps)
    if not timesteps:
        raise ValueError("timesteps must hold at least one timestep, got an empty sequence")
    points, arms = make_spiral(n_per_class=n_per_class, num_classes=2, noise=0.05, seed=0)  # (N, 2), (N,)
    # The spiral has radius 1; doubled, its spread is about that of the unit Gaussian it dissolves into.
    x0 = 2.0 * points
    alphas_cumprod = torch.cumprod(1 - _linear_betas(), dim=0)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    fig, axes = new_figure(1, len(timesteps), width=2.1 * len(timesteps), height=2.5)
    for ax, t in zip(axes, timesteps, strict=True):
        x_t = q_sample(x0, t, alphas_cumprod, noise)  # (N, 2)
        for arm in (0, 1):
            chosen = x_t[arms == arm]
            # Markers on a line without its line: one style for all the points keeps the SVG small.
            ax.plot(chosen[:, 0].numpy(), chosen[:, 1].numpy(), "o", markersize=2.2, markeredgewidth=0,
                    color=PALETTE[arm], alpha=0.7)
        ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), aspect="equal", title=f"t = {t}")
        ax.tick_params(labelsize=7)
    return fig


def recover_x0(x_t: Tensor, t: int | Tensor, alphas_cumprod: Tensor, noise: Tensor) -> Tensor:
    r"""Challenge solution: undo ``q_sample``, $x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\varepsilon) / \sqrt{\bar\alpha_t}$.

    Args:
        x_t: noisy samples, shape ``(B, ...)``.
        t: their timestep(s), as for ``q_sample``.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        noise: the noise that was added, of ``x_t``'s shape.

    Returns:
        The clean samples, of ``x_t``'s shape and dtype.

    Raises:
        TypeError: if a tensor is not floating point, or ``t`` is not an int or an integer tensor.
        ValueError: if shapes disagree or a timestep lies outside ``0..T-1``.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> x0, noise = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
        >>> t = torch.tensor([0, 10, 100, 500])
        >>> x_t = q_sample(x0, t, alphas_cumprod, noise)
        >>> torch.allclose(recover_x0(x_t, t, alphas_cumprod, noise), x0, atol=1e-4)
        True
    """
    t = _check_forward_args("x_t", x_t, t, "alphas_cumprod", alphas_cumprod, noise)
    compute = _compute_dtype(x_t.dtype)
    alpha_bar = alphas_cumprod.to(device=x_t.device, dtype=compute)[t]  # () or (B,)
    # Subtract the noise at its scale, then undo the signal's shrink. Near t = T - 1 the division by
    # sqrt(alpha_bar) ~ 0.006 magnifies every error in the noise 160 times: the price of inverting.
    signal = x_t.to(compute) - per_sample((1 - alpha_bar).sqrt(), x_t) * noise.to(compute)
    return (signal / per_sample(alpha_bar.sqrt(), x_t)).to(x_t.dtype)


def check_recover_x0(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``recover_x0``."""
    g = torch.Generator().manual_seed(0)
    schedule = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    cases = (
        ((4, 1, 8, 8), torch.tensor([0, 10, 100, 999]), torch.float64),
        ((3, 2), torch.tensor([5, 500, 998]), torch.float64),
        ((2, 3, 4, 4), 250, torch.float64),
        ((5,), torch.tensor([1, 2, 3, 4, 5]), torch.float64),
        ((2, 1, 8, 8), torch.tensor([7, 7]), torch.float32),
        ((8, 1, 8, 8), torch.arange(0, 800, 100), torch.float64),  # batch 8 against width 8: broadcast by B
    )
    for shape, t, dtype in cases:
        x0 = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        noise = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        alphas_cumprod = schedule.to(dtype)
        x_t = q_sample(x0, t, alphas_cumprod, noise)
        t_shape = tuple(t.shape) if isinstance(t, Tensor) else "an int"
        try:
            got = candidate(x_t, t, alphas_cumprod, noise)
        except Exception as err:  # a learner's broadcasting error is a failed case, told as one
            raise AssertionError(
                f"recover_x0 raised {type(err).__name__}: {err} for x_t of shape {shape} and t of shape {t_shape}; "
                "one timestep per sample must be reshaped to (B, 1, ..., 1) to broadcast over x_t"
            ) from err
        assert isinstance(got, Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == x0.shape and got.dtype == x0.dtype, (
            f"for x_t of shape {shape} and dtype {dtype} expected the same shape and dtype, "
            f"got {tuple(got.shape)} and {got.dtype}"
        )
        tolerance = {"rtol": 1e-9, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 1e-3, "atol": 1e-3}
        assert torch.allclose(got, x0, **tolerance), (
            f"x0 not recovered for shape {shape}, t={t.tolist() if isinstance(t, Tensor) else t} ({dtype}): "
            "expected (x_t - sqrt(1 - alpha_bar_t) * noise) / sqrt(alpha_bar_t), with alpha_bar_t taken per "
            "sample and reshaped to (B, 1, ..., 1)"
        )


def noisy_training_batch(x0: Tensor, alphas_cumprod: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    r"""Challenge solution: one DDPM training batch, a random timestep and fresh noise per sample.

    Args:
        x0: clean samples, shape ``(B, ...)``, floating point.
        alphas_cumprod: $\bar\alpha$ for every timestep, shape ``(T,)``.
        generator: the random number generator to draw from (timesteps first, then noise).

    Returns:
        ``(x_t, t, noise)``: the noisy samples (``x0``'s shape and dtype), the int64 timesteps of shape
        ``(B,)``, uniform over ``0..T-1``, and the standard normal noise (``x0``'s shape and dtype).

    Raises:
        TypeError: if ``x0`` is not a floating-point tensor with a batch dimension.

    Examples:
        >>> alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), dim=0)
        >>> x_t, t, noise = noisy_training_batch(torch.zeros(4, 2), alphas_cumprod, torch.Generator().manual_seed(0))
        >>> x_t.shape, t.shape, t.dtype, noise.shape
        (torch.Size([4, 2]), torch.Size([4]), torch.int64, torch.Size([4, 2]))
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point() or x0.dim() == 0:
        raise TypeError(f"x0 must be a floating-point tensor with a batch dimension, got {_describe(x0)}")
    # Counted from zero, as the schedule is indexed: randint's upper end is exclusive.
    t = torch.randint(0, len(alphas_cumprod), (x0.size(0),), generator=generator, device=x0.device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return q_sample(x0, t, alphas_cumprod, noise), t, noise


def check_noisy_training_batch(candidate: Callable[..., tuple[Tensor, Tensor, Tensor]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``noisy_training_batch``."""
    for T, shape, dtype in ((10, (4000, 2), torch.float32), (1000, (4000, 1), torch.float64),
                            (50, (6, 1, 8, 8), torch.float32), (3, (600,), torch.float64)):
        alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), dim=0)
        x0 = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
        try:
            got = candidate(x0, alphas_cumprod, torch.Generator().manual_seed(0))
        except Exception as err:
            raise AssertionError(
                f"noisy_training_batch raised {type(err).__name__}: {err} for x0 of shape {shape} and T={T}"
            ) from err
        assert isinstance(got, tuple) and len(got) == 3, "noisy_training_batch must return (x_t, t, noise)"
        x_t, t, noise = got
        B = shape[0]
        assert t.shape == (B,) and t.dtype == torch.int64, (
            f"t must be int64 of shape ({B},), got {t.dtype} of shape {tuple(t.shape)}"
        )
        assert x_t.shape == x0.shape and noise.shape == x0.shape, "x_t and noise must have x0's shape"
        assert x_t.dtype == dtype and noise.dtype == dtype, f"x_t and noise must keep x0's dtype {dtype}"
        assert 0 <= int(t.min()) and int(t.max()) <= T - 1, (
            f"timesteps must lie in 0..{T - 1} (counted from 0), got values from {int(t.min())} to {int(t.max())}"
        )
        if B >= 600:
            if T <= 10:  # hundreds of draws per timestep: both ends must appear
                assert int(t.min()) == 0 and int(t.max()) == T - 1, (
                    f"with {B} draws from 0..{T - 1} both ends should appear: draw with torch.randint(0, T, (B,))"
                )
            counts = torch.bincount(t, minlength=T).double()
            expected = B / T
            # Each count is binomial: within 6 of its standard deviations, or the draw is not uniform.
            limit = 6 * (expected * (1 - 1 / T)) ** 0.5
            assert ((counts - expected).abs() <= limit).all(), f"timesteps in 0..{T - 1} are not drawn uniformly"
            assert abs(noise.double().mean().item()) < 6 / noise.numel() ** 0.5, "noise must have mean 0"
            assert abs(noise.double().std().item() - 1) < 6 * (1 / (2 * noise.numel())) ** 0.5 + 1e-3, (
                "noise must be standard normal (standard deviation 1)"
            )
        expected_x_t = q_sample(x0, t, alphas_cumprod, noise)
        assert torch.allclose(x_t, expected_x_t, rtol=1e-5, atol=1e-6), (
            f"x_t must be q_sample(x0, t, alphas_cumprod, noise) for the t and noise returned (shape {shape})"
        )
        again = candidate(x0, alphas_cumprod, torch.Generator().manual_seed(0))
        other = candidate(x0, alphas_cumprod, torch.Generator().manual_seed(1))
        assert torch.equal(again[1], t) and torch.equal(again[2], noise), (
            "the same generator state must give the same batch: draw everything from the generator passed in"
        )
        assert not torch.equal(other[2], noise), "another generator seed must give other noise"


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half-precision samples, the sample's own dtype for float32 and float64."""
    return torch.promote_types(dtype, torch.float32)


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"


def _check_forward_args(
    sample_name: str, sample: object, t: object, schedule_name: str, schedule: object, noise: object
) -> Tensor:
    """Check the arguments of q_step, q_sample and recover_x0, and return ``t`` as an int64 tensor."""
    if not isinstance(sample, Tensor) or not sample.is_floating_point():
        raise TypeError(f"{sample_name} must be a floating-point tensor, got {_describe(sample)}")
    if not isinstance(schedule, Tensor) or not schedule.is_floating_point() or schedule.dim() != 1:
        raise TypeError(f"{schedule_name} must be a 1-D floating-point tensor, got {_describe(schedule)}")
    if not isinstance(noise, Tensor) or not noise.is_floating_point():
        raise TypeError(f"noise must be a floating-point tensor, got {_describe(noise)}")
    if noise.shape != sample.shape:
        raise ValueError(f"noise must have {sample_name}'s shape {tuple(sample.shape)}, got {tuple(noise.shape)}")
    if isinstance(t, Integral) and not isinstance(t, bool):
        t = torch.tensor(int(t))
    elif not isinstance(t, Tensor) or t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        got = f"a tensor of dtype {t.dtype}" if isinstance(t, Tensor) else repr(t)
        raise TypeError(f"t must be an int or an integer tensor, got {got}")
    # int64 before comparing: a uint8 t compared with T = 1000 would wrap 1000 round to 232.
    t = t.to(torch.int64)
    if t.dim() > 1:
        raise ValueError(f"t must be one timestep or one per sample, shape () or (B,), got shape {tuple(t.shape)}")
    if t.dim() == 1 and (sample.dim() == 0 or t.size(0) != sample.size(0)):
        raise ValueError(
            f"t has {t.size(0)} timesteps, one per sample, but {sample_name} has shape {tuple(sample.shape)}"
        )
    T = schedule.size(0)
    bad = t[(t < 0) | (t >= T)]
    if bad.numel() > 0:
        got = bad.item() if t.dim() == 0 else bad[:5].tolist()
        raise ValueError(f"t must hold timesteps from 0 to {T - 1} (counted from 0, as in diffusers), got {got}")
    return t.to(device=sample.device)
