# %% [markdown]
# # Lab: normalisation at depth
#
# > **The Professor throws the big switch.** In the [Normalisation](../../../nn/normalization/) lesson we watched a signal fade or explode
# > through twenty random layers, on toy numbers. Tonight the apparatus is bigger: real handwritten
# > digits, a network dozens of layers deep, every normaliser of Part 2 side by side, several seeds
# > each. No training yet (that is Part 3's business): we only push one batch forward and one loss
# > backward, and measure what arrives at each layer.
#
# Every module in this lab comes from the lessons: [`Linear`](../../../nn/linear/),
# [`BatchNorm1d` and `LayerNorm`](../../../nn/normalization/), [`RMSNorm`](../../../nn/rmsnorm/),
# [`ReLU`](../../../nn/activations/) and [`cross_entropy`](../../../nn/losses/). The sizes shrink when
# the environment variable `TORCHENSTEIN_SMOKE=1` is set, so the test suite can run every cell in seconds.

# %%
import math

import torch
from sklearn.datasets import load_digits
from torch import nn

from torchenstein.lab import lab_size, new_figure, progress, seed_everything
from torchenstein.nn.activations import ReLU
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import cross_entropy
from torchenstein.nn.normalization import BatchNorm1d, LayerNorm
from torchenstein.nn.rmsnorm import RMSNorm

DEPTH = lab_size(48, 4)  # hidden layers
WIDTH = lab_size(256, 32)  # features per hidden layer
BATCH = lab_size(1024, 64)  # digits pushed through at once
SEEDS = lab_size(5, 1)  # independent initialisations per normaliser
print(f"depth {DEPTH}, width {WIDTH}, batch {BATCH}, seeds {SEEDS}, torch {torch.__version__}")

# %% [markdown]
# ## The specimens: real digits
#
# scikit-learn ships 1,797 handwritten digits of 8×8 pixels, so nothing is downloaded. Each image becomes
# a row of 64 numbers, standardised with the batch's own statistics (this lab never evaluates, so there
# is no test set to leak into; Part 3 is where that danger lives).

# %%
digits = load_digits()
images = torch.tensor(digits.data, dtype=torch.float32)  # (1797, 64)
labels = torch.tensor(digits.target, dtype=torch.long)  # (1797,)
generator = torch.Generator().manual_seed(0)
chosen = torch.randperm(len(images), generator=generator)[:BATCH]
x, y = images[chosen], labels[chosen]  # (BATCH, 64), (BATCH,)
x = (x - x.mean(dim=0)) / (x.std(dim=0) + 1e-6)
print(f"inputs {tuple(x.shape)}, classes {sorted(set(y.tolist()))}")

# %% [markdown]
# ## The apparatus: one stack, four normalisers
#
# Each hidden layer is `Linear → normaliser → ReLU`, and a last `Linear` maps to the ten classes. The
# linear layers keep PyTorch's default initialisation (the one the [Linear](../../../nn/linear/) lesson
# rebuilt), which is *not* variance-preserving for ReLU: exactly the situation a normaliser rescues.

# %%
NORMALISERS = {
    "none": lambda width: nn.Identity(),
    "BatchNorm1d": BatchNorm1d,
    "LayerNorm": LayerNorm,
    "RMSNorm": RMSNorm,
}


def deep_stack(normaliser: str, *, depth: int = DEPTH, width: int = WIDTH) -> nn.Sequential:
    """Assemble `depth` hidden layers of Linear, the chosen normaliser and ReLU, then a 10-way head."""
    layers: list[nn.Module] = []
    features = 64
    for _ in range(depth):
        layers += [Linear(features, width), NORMALISERS[normaliser](width), ReLU()]
        features = width
    layers.append(Linear(features, 10))
    return nn.Sequential(*layers)


def measure(model: nn.Sequential) -> tuple[list[float], list[float], float]:
    """One forward and one backward pass: each hidden layer's output std, its weight's gradient norm, the loss."""
    stds = []
    h = x
    for layer in model:
        h = layer(h)
        if isinstance(layer, ReLU):
            stds.append(h.std().item())
    loss = cross_entropy(h, y)
    loss.backward()
    grads = [m.weight.grad.norm().item() for m in model if isinstance(m, Linear)][:-1]
    return stds, grads, loss.item()


# %% [markdown]
# ## The experiment
#
# For every normaliser and every seed: build a fresh stack, measure, keep the numbers. The bar below is
# the same one every long loop of the course shows.

# %%
results = {name: {"stds": [], "grads": [], "loss": []} for name in NORMALISERS}
runs = [(name, seed) for name in NORMALISERS for seed in range(SEEDS)]
for name, seed in progress(runs, desc="stacks"):
    seed_everything(seed)
    stds, grads, loss = measure(deep_stack(name))
    results[name]["stds"].append(stds)
    results[name]["grads"].append(grads)
    results[name]["loss"].append(loss)


def mean_over_seeds(rows: list[list[float]]) -> list[float]:
    """The mean, layer by layer, of one quantity measured with several seeds."""
    return torch.tensor(rows).mean(dim=0).tolist()


# %% [markdown]
# ## What arrived at each layer
#
# The left panel is the spread of each layer's output; the right, the size of the gradient that reaches
# each layer's weights. Log scales: a straight falling line is an exponential collapse.

# %%
fig, (ax_std, ax_grad) = new_figure(1, 2, width=10, height=3.8)
for name in NORMALISERS:
    layers = range(1, DEPTH + 1)
    ax_std.plot(layers, mean_over_seeds(results[name]["stds"]), label=name)
    ax_grad.plot(layers, mean_over_seeds(results[name]["grads"]), label=name)
for ax, title in ((ax_std, "std of each layer's output"), (ax_grad, "norm of each layer's weight gradient")):
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.set_title(title)
ax_std.legend()
fig

# %% [markdown]
# ## The verdict, in numbers
#
# For each normaliser, averaged over seeds: how the spread of the last hidden layer compares with the
# first one's, how the gradient at the first layer compares with the one at the last (above one: the
# gradient grows on its way back; far below one: it vanishes before it arrives), and the initial loss,
# which for a healthy ten-class network sits near $\ln 10$.

# %%
print(f"ln 10 = {math.log(10):.3f}")
for name in NORMALISERS:
    stds = mean_over_seeds(results[name]["stds"])
    grads = mean_over_seeds(results[name]["grads"])
    loss = sum(results[name]["loss"]) / SEEDS
    print(
        f"{name:12} spread, layer {DEPTH} / layer 1: {stds[-1] / stds[0]:8.2e}   "
        f"gradient, layer 1 / layer {DEPTH}: {grads[0] / grads[-1]:8.2e}   initial loss {loss:.3f}"
    )

# %% [markdown]
# Three lessons in those lines.
#
# - **No normaliser.** PyTorch's default initialisation keeps a third of the variance per layer (the Linear
#   lesson's calculation), ReLU halves what is left, and the signal shrinks until the small random biases
#   are most of what a layer passes on. Worse, the gradient that reaches the first layer is a vanishing
#   fraction of the last layer's: trained like this, the last layers would learn and the first ones would
#   barely move.
# - **BatchNorm** holds every layer's spread at one. Its gradients, though, *grow* on the way back at
#   initialisation: the first layer's is larger than the last layer's. That is a known property of deep
#   BatchNorm networks at initialisation (Yang et al., *A Mean Field Theory of Batch Normalization*, 2019),
#   and one reason very deep networks add residual connections as well.
# - **LayerNorm and RMSNorm** hold the spread at one too, and the gradients arrive at every depth within a
#   factor of the last layer's. The two agree closely, as the RMSNorm lesson predicts for activations
#   whose mean is small next to their spread.
#
# **Try it yourself.** Change `WIDTH`, or give every `Linear` the variance-preserving initialisation the
# Linear lesson derives (`torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")`) and see
# how far the un-normalised stack then gets; run the lab again with `torchenstein lab deep_nets_lab`.
