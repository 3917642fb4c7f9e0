# %% [markdown]
# # Lab: the capstone, a diffusion model trained here
#
# > **The Professor throws the big switch.** Part 5 took a diffusion model apart: the noise that
# > dissolves a digit, the schedule that doses it, the U-Net that guesses it back, the loss, the two
# > samplers, and the knob called guidance. Tonight the parts go back together and the creature is
# > trained, here, from random weights, on handwritten digits. Then we ask for *sevens* and see whether
# > we get sevens. And since Dr. Hammer judges his generated images by squinting at the nicest ones, we
# > hire a judge who cannot squint: a classifier trained on real digits, which must read our forgeries
# > as fluently as it reads the real thing.
#
# Every piece comes from a lesson, and each section links to the one it comes from. Nothing here is
# new; what is new is that it all runs together. The sizes shrink when the environment variable
# `TORCHENSTEIN_SMOKE=1` is set, so the test suite can run every cell in seconds.

# %%
import time

import torch
from matplotlib.ticker import FormatStrFormatter
from sklearn.linear_model import LogisticRegression

from torchenstein.diffusion.ddim import ddim_sample
from torchenstein.diffusion.ddpm import ddpm_loss, ema_copy, ema_update, ema_warmup_decay, mse_by_timestep
from torchenstein.diffusion.denoiser import UNet
from torchenstein.diffusion.forward import load_digit_images
from torchenstein.diffusion.sampling import ddpm_sample
from torchenstein.diffusion.schedules import noise_schedule
from torchenstein.lab import lab_size, new_figure, progress, seed_everything
from torchenstein.training.adam import AdamW
from torchenstein.training.leak import overlap_by_hash, split_indices
from torchenstein.training.schedules import set_lr, warmup_cosine

SEED = 0
STEPS = lab_size(2500, 8)  # optimiser steps
BATCH = lab_size(128, 32)  # digits per step
PEAK_LR = 2e-3  # AdamW's learning rate at the top of the warm-up
WARMUP = lab_size(100, 2)  # steps of linear warm-up
P_UNCOND = 0.1  # label dropout: the share of training digits shown with the "no label" class
EMA_DECAY = 0.998  # the exponential moving average's decay per step, once warmed up
PER_CLASS = lab_size(50, 3)  # generated digits per class, per sampler setting
DDPM_STEPS = lab_size(250, 4)  # reverse steps of the DDPM sampler
DDIM_STEPS = lab_size(50, 4)  # reverse steps of the DDIM sampler
GUIDANCE_SCALES = (1.0, 3.0)  # w: 1 is the conditional model alone, 3 pushes past it
PROBE = lab_size(350, 20)  # digits per split for the error-by-timestep probe
# These tensors are tiny (8x8 digits, a 200k-parameter net): handing each small operation to a second
# thread costs more than it saves, and on a busy machine the threads wait for each other. On the busy
# two-core machine this lab was written on, one thread trained about ten times faster than two. On a
# larger or quieter machine, delete this line and compare.
torch.set_num_threads(1)
print(f"{STEPS} steps of {BATCH}, peak lr {PEAK_LR}, label dropout {P_UNCOND}, EMA decay {EMA_DECAY}")
print(f"{PER_CLASS} digits per class; DDPM {DDPM_STEPS} steps, DDIM {DDIM_STEPS} steps; w in {GUIDANCE_SCALES}")
print(f"torch {torch.__version__}")

# %% [markdown]
# ## The specimens, split before anything else
#
# [`load_digit_images`](../../../diffusion/forward/) hands us scikit-learn's 1,797 bundled 8×8 digits
# (nothing is downloaded), as images of shape `(1, 8, 8)` whose grey levels 0..16 are mapped linearly to
# $[-1, 1]$: the scale of the standard normal noise the [forward process](../../../diffusion/forward/)
# mixes in.
#
# We cut them in two with [`split_indices`](../../../training/leak/) before anything is trained: the
# diffusion model learns from the **training** digits only, and the **held-out** digits are kept for the
# judgement at the end. They play two roles there: the exam a classifier of real digits is scored on,
# and the yardstick for "how far is a new digit from the training set", which tells memorising from
# generating.

# %%
images, labels = load_digit_images()  # (1797, 1, 8, 8) in [-1, 1], (1797,)
train_idx, held_idx = split_indices(len(images), (0.8, 0.2), torch.Generator().manual_seed(SEED))
x_train, y_train = images[train_idx], labels[train_idx]
x_held, y_held = images[held_idx], labels[held_idx]
print(f"images {tuple(images.shape)} {images.dtype}, labels {tuple(labels.shape)} {labels.dtype}")
print(f"pixel range {images.min().item():.0f} to {images.max().item():.0f}, "
      f"mean {images.mean().item():+.3f}, std {images.std().item():.3f}")
print(f"train {len(x_train)}, held out {len(x_held)}")
print(f"held-out images also in train: {overlap_by_hash(x_train, x_held)}")
print(f"training digits per class: {torch.bincount(y_train, minlength=10).tolist()}")

# %% [markdown]
# The empty list says no held-out digit is an exact copy of a training digit, so "new" below means new.
#
# ## The judge, hired before the forger
#
# An honest measure of generated images needs a referee that has never seen them and was not tuned on
# them. Ours is the plainest one there is: a multinomial logistic regression (one linear layer and a
# softmax) from scikit-learn, trained on the real training digits. We hire it *now*, before the
# diffusion model exists, so nothing about it can be chosen to flatter the results. Its accuracy on the
# real held-out digits is the bar: generated digits that are as legible as real ones score as high.

# %%
judge = LogisticRegression(max_iter=2000)
judge.fit(x_train.flatten(1).numpy(), y_train.numpy())
judge_real = judge.score(x_held.flatten(1).numpy(), y_held.numpy())
print(f"the judge's accuracy on real held-out digits: {judge_real:.3f}")

# %% [markdown]
# ## The apparatus
#
# The noise predictor is the [U-Net](../../../diffusion/denoiser/) of the denoiser lesson, built with
# `num_classes=10`: it takes a noisy digit $x_t$, its timestep $t$ and a class label, and returns its
# guess of the noise $\hat\varepsilon$. Label 10 is its `null_class`, "no label", which is what
# [classifier-free guidance](../../../diffusion/guidance/) needs: one network that is both the conditional
# and the unconditional model.
#
# The noise schedule is DDPM's linear one, 1,000 timesteps, from
# [`noise_schedule`](../../../diffusion/schedules/), exactly as diffusers' `DDPMScheduler` builds it.
#
# Pre-flight check: the U-Net's last convolution starts at zero, so the untrained model predicts
# $\hat\varepsilon = 0$ and its loss, the mean squared error against standard normal noise, should be
# about 1.

# %%
seed_everything(SEED)
model = UNet(num_classes=10)
schedule = noise_schedule(1000)
alphas_cumprod = schedule.alphas_cumprod  # (1000,)
print(f"parameters: {sum(p.numel() for p in model.parameters()):,}, null class: {model.null_class}")
print(f"alpha_bar: first {alphas_cumprod[0].item():.4f}, last {alphas_cumprod[-1].item():.6f}")
with torch.no_grad():
    first = ddpm_loss(lambda x_t, t: model(x_t, t, y_train[:256]), x_train[:256], schedule,
                      torch.Generator().manual_seed(SEED))
print(f"loss of the untrained model: {first.item():.3f} (predicting zero noise: 1)")

# %% [markdown]
# ## The training loop
#
# It is the loop of [Training the denoiser](../../../diffusion/ddpm/) with the Part 3 ingredients around
# it. Each step:
#
# 1. draws a batch of training digits and their labels;
# 2. applies **label dropout**: each label becomes the null class with probability `P_UNCOND`, so the
#    same network also learns the unconditional task (a single line here; the
#    [guidance lesson](../../../diffusion/guidance/) has the full story);
# 3. computes [`ddpm_loss`](../../../diffusion/ddpm/): a uniform random timestep per digit, fresh noise,
#    $x_t$ from [`q_sample`](../../../diffusion/forward/), and the mean squared error of the predicted
#    noise. `ddpm_loss` calls `model(x_t, t)`; the labels ride along in a closure;
# 4. sets the learning rate from [`warmup_cosine`](../../../training/schedules/) with
#    [`set_lr`](../../../training/schedules/) and steps the course's [`AdamW`](../../../training/adam/);
# 5. updates the **EMA**, an exponential moving average of the weights, with
#    [`ema_update`](../../../diffusion/ddpm/). Its decay is warmed up as diffusers' `EMAModel` does
#    ([`ema_warmup_decay`](../../../diffusion/ddpm/), the lesson's challenge): small at first, so the
#    average forgets its random start, then `EMA_DECAY`. The EMA, not the raw model, is what we sample.
#
# One generator draws every batch, label-dropout coin, timestep and noise, so the run is repeatable.

# %%
def drop_labels(y: torch.Tensor, p: float, null_class: int, generator: torch.Generator) -> torch.Tensor:
    """Label dropout: each label becomes ``null_class`` with probability ``p``."""
    return torch.where(torch.rand(y.shape, generator=generator) < p, torch.full_like(y, null_class), y)


optimizer = AdamW(model.parameters(), lr=PEAK_LR, weight_decay=0.0)
ema = ema_copy(model)
generator = torch.Generator().manual_seed(SEED)
losses, rates = [], []
model.train()
started = time.perf_counter()
bar = progress(range(STEPS), desc="training the denoiser")
for step in bar:
    lr = warmup_cosine(step, warmup_steps=WARMUP, total_steps=STEPS, base_lr=PEAK_LR, min_lr=PEAK_LR / 20)
    set_lr(optimizer, lr)
    index = torch.randint(0, len(x_train), (BATCH,), generator=generator)  # (B,), with replacement
    y = drop_labels(y_train[index], P_UNCOND, model.null_class, generator)  # (B,)
    loss = ddpm_loss(lambda x_t, t, y=y: model(x_t, t, y), x_train[index], schedule, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema_update(ema, model, ema_warmup_decay(step + 1, EMA_DECAY))
    losses.append(loss.item())
    rates.append(lr)
    if step % 50 == 0:
        bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
bar.close()
train_seconds = time.perf_counter() - started
model.eval()
print(f"{STEPS} steps in {train_seconds:.0f} s ({STEPS / train_seconds:.1f} steps/s)")
tail = losses[-min(100, len(losses)):]
print(f"loss: first step {losses[0]:.3f}, mean of the last {len(tail)} steps {sum(tail) / len(tail):.4f}")

# %% [markdown]
# The training loss is noisy by nature: each step draws a fresh timestep per digit, and the error at
# $t = 5$ (almost no noise to find) is a very different number from the error at $t = 900$. The curve
# below is smoothed over 50 steps. To compare models we therefore measure at *fixed* timesteps with
# [`mse_by_timestep`](../../../diffusion/ddpm/), on training and held-out digits with the same seed,
# for the raw weights and for the EMA. Two questions: does the EMA help, and does the model do as well
# on digits it never saw (if it were memorising, the held-out error would be clearly higher)?

# %%
probe_steps = (10, 50, 150, 300, 600, 900)


def probe(net: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The net's noise-prediction error at each probe timestep, on the given digits, with a fixed seed."""
    errors = mse_by_timestep(lambda x_t, t: net(x_t, t, y), x0, schedule, probe_steps,
                             torch.Generator().manual_seed(SEED + 1))
    return [round(e, 4) for e in errors.tolist()]


print(f"{'timestep':>22}" + "".join(f"{t:>8}" for t in probe_steps))
for name, net in (("raw weights", model), ("EMA", ema)):
    for split, x0, y in (("train", x_train[:PROBE], y_train[:PROBE]), ("held out", x_held[:PROBE], y_held[:PROBE])):
        print(f"{name + ', ' + split:>22}" + "".join(f"{e:>8.4f}" for e in probe(net, x0, y)))

# %%
fig, (ax_loss, ax_lr) = new_figure(1, 2, width=9, height=3.2)
window = min(50, len(losses))
smooth = torch.tensor(losses).unfold(0, window, 1).mean(dim=1)
ax_loss.plot(losses, color="#cccccc", linewidth=0.6, label="each step")
ax_loss.plot(range(window - 1, len(losses)), smooth, label=f"mean of {window} steps")
ax_loss.set_yscale("log")
ax_loss.yaxis.set_major_formatter(FormatStrFormatter("%g"))
ax_loss.set_xlabel("optimiser step")
ax_loss.set_title("training loss (noise-prediction MSE)")
ax_loss.legend()
ax_lr.plot(rates, color="#f2542d")
ax_lr.set_xlabel("optimiser step")
ax_lr.set_title("learning rate: warm-up, then cosine")
fig  # noqa: B018 (a cell that ends with a figure shows it)

# %% [markdown]
# ## Sampling, with the knob
#
# The guided noise prediction is classifier-free guidance's one line,
# $\tilde\varepsilon = \varepsilon_u + w\,(\varepsilon_c - \varepsilon_u)$: $w = 0$ is the
# unconditional model, $w = 1$ the conditional one, $w > 1$ extrapolates past it, away from "any
# digit" and further towards "this digit". Both predictions come from one forward pass over a doubled
# batch (the [guidance lesson](../../../diffusion/guidance/) builds it properly and proves it equal to
# diffusers'); at $w = 1$ and $w = 0$ the formula needs only one half, so we skip the other.
#
# Two samplers turn predictions into digits, both starting from the *same* noise, so every setting
# below draws "the same" digits:
#
# - [`ddpm_sample`](../../../diffusion/sampling/), the ancestral sampler: fresh noise at every step. It
#   was trained for 1,000 steps; we take `DDPM_STEPS` of them, with its `"trailing"` spacing (every
#   step counted back from $t = 999$, so the first step starts from pure noise) and the posterior
#   between the timesteps we keep. It clips its estimate of $x_0$ to $[-1, 1]$ at each step, diffusers'
#   default.
# - [`ddim_sample`](../../../diffusion/ddim/) with $\eta = 0$: deterministic, `DDIM_STEPS` steps, same
#   spacing, and *without* clipping (`clip_sample=False`), as the [guidance lesson](../../../diffusion/guidance/)
#   samples. Why not diffusers' default? The last DDIM row is there to show what the default does.

# %%
def cfg(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance: start from the unconditional prediction and go w times the difference."""
    return eps_uncond + w * (eps_cond - eps_uncond)


def guided(net: torch.nn.Module, labels: torch.Tensor, w: float):
    """The model ``(x_t, t) -> guided noise`` a sampler calls, for these labels at guidance scale w."""
    null = torch.full_like(labels, net.null_class)

    @torch.no_grad()
    def predict(x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if w == 0:  # unconditional: one half is enough
            return net(x_t, t, null)
        if w == 1:  # conditional: the other half
            return net(x_t, t, labels)
        t_in = torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.dim() == 1 else t
        eps_uncond, eps_cond = net(torch.cat([x_t, x_t]), t_in, torch.cat([null, labels])).chunk(2)
        return cfg(eps_cond, eps_uncond, w)

    return predict


wanted = torch.arange(10).repeat_interleave(PER_CLASS)  # (10 * PER_CLASS,): 0, 0, ..., 9, 9
x_T = torch.randn(len(wanted), 1, 8, 8, generator=torch.Generator().manual_seed(SEED + 2))


def generate(sampler: str, w: float, clip: bool) -> torch.Tensor:
    """PER_CLASS digits of every class from the EMA, with the named sampler at guidance scale w."""
    if sampler == "DDIM":
        return ddim_sample(guided(ema, wanted, w), x_T.clone(), alphas_cumprod, DDIM_STEPS, eta=0.0,
                           timestep_spacing="trailing", clip_sample=clip, progress_bar=False)
    # ddpm_sample draws its own starting noise from the generator: the same seed gives the same x_T.
    return ddpm_sample(guided(ema, wanted, w), x_T.shape, alphas_cumprod, num_inference_steps=DDPM_STEPS,
                       timestep_spacing="trailing", clip_sample=clip,
                       generator=torch.Generator().manual_seed(SEED + 2))


def name(sampler: str, w: float, clip: bool) -> str:
    """A setting's label, e.g. 'DDIM 50, w = 3'."""
    steps = DDIM_STEPS if sampler == "DDIM" else DDPM_STEPS
    return f"{sampler} {steps}, w = {w:g}" + (", clipped" if sampler == "DDIM" and clip else "")


w_high = max(GUIDANCE_SCALES)
settings = [("DDIM", 0.0, False)] + [("DDIM", w, False) for w in GUIDANCE_SCALES]
settings += [("DDIM", w_high, True)] + [("DDPM", w, True) for w in GUIDANCE_SCALES]
samples, seconds = {}, {}
for setting in progress(settings, desc="sampling"):
    start = time.perf_counter()
    samples[name(*setting)] = generate(*setting)
    seconds[name(*setting)] = time.perf_counter() - start
for label, x in samples.items():
    print(f"{label:<24} {tuple(x.shape)}, range {x.min().item():+.2f} to {x.max().item():+.2f}, "
          f"{seconds[label]:5.1f} s")

# %% [markdown]
# Unclipped DDIM overshoots $[-1, 1]$ a little (the ranges above); the digits are clamped to it before
# they are drawn or judged, as a pipeline clamps before it saves a picture.
#
# ## The digits
#
# Each panel is one sampler setting: ten rows, one per requested class (0 at the top), a few samples
# each, all from the same starting noise. The first panel is real held-out digits, for calibration; the
# second is unguided ($w = 0$), where the label was never given, so its rows are whatever the noise
# became.

# %%
SHOWN = min(PER_CLASS, 6)


def mosaic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The first SHOWN digits of every class as one picture: 10 rows of SHOWN tiles, 1 pixel of gutter."""
    rows = []
    for c in range(10):
        tiles = x[y == c][:SHOWN, 0].clamp(-1, 1)  # (SHOWN, 8, 8)
        tiles = torch.nn.functional.pad(tiles, (0, 1, 0, 1), value=-1.0)  # (SHOWN, 9, 9)
        rows.append(torch.cat(list(tiles), dim=1))  # (9, 9 * SHOWN)
    return torch.cat(rows, dim=0)  # (90, 9 * SHOWN)


panels = [("real, held out", x_held, y_held)] + [(label, x, wanted) for label, x in samples.items()]
fig, axes = new_figure(1, len(panels), width=1.9 * len(panels), height=3.9)
for ax, (title, x, y) in zip(axes, panels, strict=True):
    ax.imshow(mosaic(x, y).numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_title(title.replace(", w", "\nw"), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([4 + 9 * c for c in range(10)], [str(c) for c in range(10)], fontsize=7)
    ax.grid(False)
fig  # noqa: B018

# %% [markdown]
# ## The judgement
#
# Three numbers per setting, all printed from code:
#
# - **judge's accuracy**: the share of generated digits the logistic regression reads as the class they
#   were generated for. The real held-out digits set the bar. For $w = 0$ the "requested" class was
#   never told to the model, so chance (0.1) is what an honest sampler should score there.
# - **spread within a class**: the mean Euclidean distance between two digits of the same class (in
#   pixels on the $[-1, 1]$ scale), averaged over classes. A sampler that draws one perfect seven over
#   and over scores high on the judge and low here. Real held-out digits set the bar again. (At $w = 0$
#   the "classes" are arbitrary groups of digits of every kind, so its spread is naturally larger.)
# - **distance to the nearest training digit**, the median over digits. A model that memorised its
#   training set would reproduce training digits, and this would fall towards zero; the real held-out
#   digits, which are new by construction, show what "new" looks like.

# %%
def spread(x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean pairwise distance between digits of the same class, averaged over the ten classes."""
    means = []
    for c in range(10):
        flat = x[y == c].flatten(1)  # (n_c, 64)
        n = len(flat)
        means.append(torch.cdist(flat, flat).sum().item() / (n * (n - 1)))  # the diagonal is zero
    return sum(means) / len(means)


def nearest_training_distance(x: torch.Tensor) -> float:
    """The median, over the digits, of the distance from each to its nearest training digit."""
    return torch.cdist(x.flatten(1), x_train.flatten(1)).min(dim=1).values.median().item()


def judged(x: torch.Tensor, y: torch.Tensor) -> float:
    """The judge's accuracy against the classes the digits were generated (or written) as."""
    return judge.score(x.flatten(1).numpy(), y.numpy())


table = {"real, held out": (x_held, y_held)} | {label: (x.clamp(-1, 1), wanted) for label, x in samples.items()}
print(f"{'digits':<24}{'judge acc.':>11}{'spread':>8}{'nearest train':>15}")
for label, (x, y) in table.items():
    print(f"{label:<24}{judged(x, y):>11.3f}{spread(x, y):>8.2f}{nearest_training_distance(x):>15.2f}")

# %% [markdown]
# The judge's accuracy per class shows *which* digits are hard, for the real ones and for each guided
# setting:

# %%
def per_class(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The judge's accuracy on each class separately."""
    hits = torch.from_numpy(judge.predict(x.flatten(1).numpy())) == y
    return [hits[y == c].float().mean().item() for c in range(10)]


print(f"{'digits':<24}" + "".join(f"{c:>6}" for c in range(10)))
for label, (x, y) in table.items():
    if "w = 0" not in label:
        print(f"{label:<24}" + "".join(f"{a:>6.2f}" for a in per_class(x, y)))

# %% [markdown]
# ## What the numbers say
#
# - **The labels were heard.** Unguided ($w = 0$) the judge's accuracy against the requested class sits
#   at chance, as it must: the model was never told the label. With the label ($w = 1$) it reaches the
#   real digits' bar: the denoiser trained here, in a few minutes on a CPU, draws digits that a
#   classifier of real digits reads as well as it reads real ones.
# - **Guidance buys legibility and costs variety.** The spread within a class is already a little below
#   the real digits' at $w = 1$; at $w = 3$ the judge's accuracy rises to (almost) every digit while the
#   spread falls further and the nearest training digit comes a little closer: the samples crowd
#   towards the most recognisable version of each digit. This is the trade the
#   [guidance lesson](../../../diffusion/guidance/) predicted. An accuracy above the real digits' is no
#   triumph: real digits include ugly ones, and a sampler that only draws textbook digits is *less* like
#   the data, not more. Compare the pictures at $w = 1$ and $w = 3$, row by row.
# - **Not a copying machine.** The generated digits sit about as far from their nearest training digit
#   as new real digits do; a memorising model would sit near zero. The error-by-timestep probe said the
#   same earlier: the held-out error is only a little above the training error, at the small timesteps
#   where there is detail to get wrong.
# - **The EMA barely mattered here.** Its errors in the probe are a hair below the raw weights'. The
#   learning rate had already decayed twentyfold by the end, so the raw weights were no longer jittering
#   much for the average to smooth; on long runs at a constant learning rate the EMA earns its keep.
# - **DDIM with a fifth of the steps is nearly as good.** At $w = 1$ its digits are a little less legible
#   than DDPM's and a little more varied; at $w = 3$ the two agree. It took a fraction of the time
#   (printed with the samples).
# - **Clipping breaks guided DDIM.** The `clipped` DDIM row, diffusers' default `clip_sample=True`, at
#   the same $w$, collapses: its digits are speckled with noise, and the judge's accuracy falls far below
#   the unclipped row. DDPM clips too and is untroubled. Our reading of why: deterministic DDIM carries
#   the sample forward with its own noise estimate, $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 +
#   \sqrt{1 - \bar\alpha_{t'}}\,\hat\varepsilon$. Clipping changes $\hat x_0$ but not $\hat\varepsilon$,
#   so the two no longer add back up to $x_t$, and the mismatch is largest exactly where guidance pushes
#   hardest: early, when $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$
#   divides by a number near 0.006, so a guided $\hat x_0$ lands far outside $[-1, 1]$ and is cut hard.
#   The leftover noise is never removed, because DDIM at $\eta = 0$ adds none and takes none away.
#   DDPM's step uses only the (clipped) $\hat x_0$ and $x_t$ itself, and draws fresh noise, so nothing
#   inconsistent is carried along. (Stable Diffusion's pipelines, guided at $w = 7.5$, also run DDIM with
#   `clip_sample=False`, though there the latents have no fixed range to clip to anyway.)
# - **What the judge cannot see.** A linear classifier on 64 pixels is a blunt instrument: it rewards
#   digits on the right side of ten hyperplanes, not digits that look handwritten. The pictures are part
#   of the evidence, and the numbers only keep them honest. A real paper would use a stronger judge (the
#   Inception network behind the FID score, for photographs) and many more samples; the recipe is the
#   same.
#
# **Try it yourself.** Set `P_UNCOND = 0.0` and look at $w = 3$ (the unconditional half was never
# trained: Hammer's favourite way to break guidance); push `GUIDANCE_SCALES` to `(1.0, 8.0)` and watch
# the spread collapse; or halve `STEPS` and see which number suffers first. Run the lab again with
# `torchenstein lab digits_diffusion`.
