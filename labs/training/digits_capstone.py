# %% [markdown]
# # Lab: the capstone training run
#
# > **The Professor throws the big switch.** Part 3 took the training loop apart bolt by bolt. Tonight we
# > put every bolt back and run the whole machine once, properly, on real handwritten digits: splits that
# > cannot leak, statistics fit on the training rows only, AdamW with a warm-up and a cosine, clipped
# > gradients, bfloat16 autocast, a checkpoint of the best epoch, early stopping, a power cut survived to
# > the last bit, and a test set opened exactly once, at the very end. Dr. Hammer's famous 99% on CIFAR-10
# > came from a loop that let the test data leak in; the number we print tonight will be smaller, and true.
#
# Every piece comes from a lesson, and each section links to the one it comes from. Nothing here is new;
# what is new is that it all runs together. The sizes shrink when the environment variable
# `TORCHENSTEIN_SMOKE=1` is set, so the test suite can run every cell in seconds.

# %%
import math
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullFormatter
from sklearn.datasets import load_digits

from torchenstein.lab import lab_size, new_figure, progress, seed_everything
from torchenstein.nn.activations import GELU
from torchenstein.nn.containers import Sequential
from torchenstein.nn.dropout import Dropout
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import cross_entropy
from torchenstein.nn.modes import evaluating
from torchenstein.nn.normalization import LayerNorm
from torchenstein.training.adam import AdamW, param_groups_for_weight_decay
from torchenstein.training.clipping import clip_grad_norm_
from torchenstein.training.leak import Standardizer, overlap_by_hash, split_indices, was_fit_on
from torchenstein.training.loop import evaluate, minibatches, overfit_one_batch
from torchenstein.training.resume import load_training_state, save_training_state
from torchenstein.training.schedules import set_lr, warmup_cosine

SEED = 0
HIDDEN = lab_size(256, 32)  # features per hidden layer
DROPOUT = 0.3  # the probability of zeroing a hidden feature while training
BATCH = 64  # digits per optimizer step
MAX_EPOCHS = lab_size(40, 3)  # the budget; early stopping usually ends the run sooner
PATIENCE = lab_size(8, 2)  # epochs without a better validation loss before we stop
PEAK_LR = 1e-3  # AdamW's learning rate at the top of the warm-up
WEIGHT_DECAY = 0.05  # decoupled decay, on weight matrices only
MAX_NORM = 1.0  # the largest total gradient norm an update may use
print(f"hidden {HIDDEN}, batch {BATCH}, at most {MAX_EPOCHS} epochs, patience {PATIENCE}")
print(f"torch {torch.__version__}")

# %% [markdown]
# ## The specimens, split before anything else
#
# scikit-learn ships its handwritten digits, 8×8 pixels each with grey levels from 0 to 16, so nothing is
# downloaded. The first thing we do with them, before we so much as compute a mean, is cut them into three
# parts with [`split_indices`](../../../training/leak/): a **training** set the optimizer learns from, a
# **validation** set we may look at as often as we like to choose things (the best epoch, when to stop),
# and a **test** set we look at once, when every choice has been made. That is the whole lesson of
# [Dr. Hammer's leak](../../../training/leak/): a number you used to choose something is no longer an
# honest estimate of anything.
#
# Then the check Hammer never ran: no test or validation image is an exact copy of a training image.
# [`overlap_by_hash`](../../../training/leak/) hashes every row's bytes and returns the indices of the
# rows found on both sides; an empty list is a clean split.

# %%
digits = load_digits()
images = torch.tensor(digits.data, dtype=torch.float32)  # (1797, 64), grey levels 0..16
labels = torch.tensor(digits.target, dtype=torch.long)  # (1797,)
splitter = torch.Generator().manual_seed(SEED)
train_idx, val_idx, test_idx = split_indices(len(images), (0.6, 0.2, 0.2), splitter)
print(f"images {tuple(images.shape)}, grey levels {images.min().item():.0f} to {images.max().item():.0f}")
print(f"train {len(train_idx)}, validation {len(val_idx)}, test {len(test_idx)}")
print(f"validation images also in train: {overlap_by_hash(images[train_idx], images[val_idx])}")
print(f"test images also in train:       {overlap_by_hash(images[train_idx], images[test_idx])}")
print(f"test images also in validation:  {overlap_by_hash(images[val_idx], images[test_idx])}")

# %% [markdown]
# Each pixel is then standardised, $z = (x - \mu) / \sigma$, with a
# [`Standardizer`](../../../training/leak/) whose $\mu$ and $\sigma$ come from the **training rows
# only**; the validation and test rows are transformed with those same numbers. Fitting it on all the
# rows would let the test set nudge the inputs the model trains on, the quietest of Hammer's leaks.
# [`was_fit_on`](../../../training/leak/) proves which rows the statistics came from. (The few edge
# pixels that are blank in every training image get a scale of 1 instead of a division by zero.)

# %%
scaler = Standardizer().fit(images[train_idx])
x_train, y_train = scaler.transform(images[train_idx]), labels[train_idx]
x_val, y_val = scaler.transform(images[val_idx]), labels[val_idx]
x_test, y_test = scaler.transform(images[test_idx]), labels[test_idx]
print(scaler)
print(f"statistics fit on the training rows: {was_fit_on(scaler, images[train_idx])}")
print(f"statistics fit on all the rows:      {was_fit_on(scaler, images)}")
blank = [divmod(i, 8) for i in torch.nonzero(scaler.var_ == 0).flatten().tolist()]
print(f"pixels blank in every training image, as (row, column): {blank}")
print(f"training inputs: mean {x_train.mean().item():+.3f}, std {x_train.std().item():.3f}")
print(f"training images per class: {torch.bincount(y_train, minlength=10).tolist()}")

# %% [markdown]
# ## The apparatus
#
# A small multilayer perceptron assembled from lesson modules with [`Sequential`](../../../nn/containers/):
# two hidden layers of [`Linear`](../../../nn/linear/), [`LayerNorm`](../../../nn/normalization/),
# [`GELU`](../../../nn/activations/) and [`Dropout`](../../../nn/dropout/), then a `Linear` head with one
# **logit** (an unnormalised score) per digit. The loss is the course's
# [`cross_entropy`](../../../nn/losses/).
#
# The optimizer is [`AdamW`](../../../training/adam/), with
# [`param_groups_for_weight_decay`](../../../training/adam/) keeping the decay off the biases and
# LayerNorm gains: decay pulls a weight matrix towards zero, which regularises it, but pulling a gain
# towards zero only switches a feature off.

# %%
def classifier(hidden: int = HIDDEN, p: float = DROPOUT) -> Sequential:
    """Two hidden layers of Linear, LayerNorm, GELU and Dropout, then one logit per digit."""
    return Sequential(
        Linear(64, hidden), LayerNorm(hidden), GELU(), Dropout(p),
        Linear(hidden, hidden), LayerNorm(hidden), GELU(), Dropout(p),
        Linear(hidden, 10),
    )


def new_run(seed: int = SEED) -> tuple[Sequential, AdamW, torch.Generator]:
    """A fresh model, its optimizer, and the generator that shuffles its data, every generator seeded."""
    seed_everything(seed)
    model = classifier()
    optimizer = AdamW(param_groups_for_weight_decay(model, WEIGHT_DECAY), lr=PEAK_LR)
    shuffler = torch.Generator().manual_seed(seed)
    return model, optimizer, shuffler


model, optimizer, shuffler = new_run()
print(model)
decayed, not_decayed = optimizer.param_groups
print(f"parameters: {sum(p.numel() for p in model.parameters())}")
print(f"decayed group:     {len(decayed['params'])} tensors, weight_decay={decayed['weight_decay']}")
print(f"not-decayed group: {len(not_decayed['params'])} tensors, weight_decay={not_decayed['weight_decay']}")

# %% [markdown]
# ## Pre-flight checks
#
# The two checks of [The training loop](../../../training/loop/), before any long run. A fresh network
# should be unsure of everything, so its loss should sit near $\ln 10$, the cost of a uniform guess over
# ten classes; and the model, loss and optimizer together should be able to learn one batch by heart with
# [`overfit_one_batch`](../../../training/loop/). That one runs on a throwaway copy of the apparatus, so
# the real run starts untouched.

# %%
val_batches = minibatches(x_val, y_val, 512)
start = evaluate(model, val_batches, cross_entropy)
print(f"initial validation loss {start['loss']:.3f}, ln 10 = {math.log(10):.3f}")
print(f"initial validation accuracy {start['accuracy']:.3f} (chance: 0.100)")

throwaway, throwaway_optimizer, _ = new_run(seed=SEED + 1)
one_batch = (x_train[:BATCH], y_train[:BATCH])
losses = overfit_one_batch(throwaway, one_batch, cross_entropy, throwaway_optimizer, steps=lab_size(100, 10))
print(f"one batch by heart: loss {losses[0]:.3f} -> {losses[-1]:.4f}")
print(f"accuracy on that batch: {evaluate(throwaway, [one_batch], cross_entropy)['accuracy']:.3f}")

# %% [markdown]
# ## The schedule
#
# The learning rate follows [`warmup_cosine`](../../../training/schedules/), a pure function of the
# optimizer step: a linear warm-up over the first epoch (Adam's second-moment estimates are still noisy
# then, so its first steps are its least trustworthy), then half a cosine down to a hundredth of the peak
# at the end of the epoch budget. Being a function of the step, the schedule needs no state of its own in
# a checkpoint: the step number is enough, and [`set_lr`](../../../training/schedules/) applies it before
# each step.

# %%
STEPS_PER_EPOCH = math.ceil(len(x_train) / BATCH)
TOTAL_STEPS = MAX_EPOCHS * STEPS_PER_EPOCH
lr_at = partial(warmup_cosine, warmup_steps=STEPS_PER_EPOCH, total_steps=TOTAL_STEPS,
                base_lr=PEAK_LR, min_lr=PEAK_LR / 100)
print(f"{STEPS_PER_EPOCH} steps per epoch, {TOTAL_STEPS} steps in the budget")
for step in (0, STEPS_PER_EPOCH // 2, STEPS_PER_EPOCH, TOTAL_STEPS // 2, TOTAL_STEPS - 1):
    print(f"  step {step:5}: lr {lr_at(step):.2e}")

# %% [markdown]
# ## One epoch, every piece in its place
#
# The five lines of [The training loop](../../../training/loop/) (forward, loss, `zero_grad`, backward,
# step) with three additions, each from its own lesson:
#
# - The forward pass runs under `torch.autocast("cpu", dtype=torch.bfloat16)`, as in
#   [Mixed precision](../../../training/mixed_precision/): the linear layers compute in bfloat16, the
#   parameters and their gradients stay float32, and bfloat16's float32-sized range means no loss
#   scaler is needed. One detail is ours: autocast recognises PyTorch's `F.cross_entropy` by name and
#   runs it in float32, but our from-scratch `cross_entropy` is made of smaller operations and would
#   return a bfloat16 loss, so we hand it float32 logits ourselves. (Whether bfloat16 is also *faster*
#   depends on the hardware: GPUs and recent server CPUs have bfloat16 units, many laptops do not. The
#   recipe is the point here, and it is the same everywhere.)
# - Between backward and step, [`clip_grad_norm_`](../../../training/clipping/) scales the whole gradient
#   down whenever its total norm exceeds `MAX_NORM`, and returns the norm it found, which we keep.
# - Before the step, `set_lr` applies the schedule.
#
# Two sources of randomness feed the epoch, and both matter later: the order of the batches comes from
# a generator of the data's own (`shuffler`), the dropout masks from PyTorch's global generator. A
# checkpoint that forgets either one resumes into a different run.

# %%
def train_epoch(model: Sequential, optimizer: AdamW, shuffler: torch.Generator, step: int) -> dict[str, list]:
    """One epoch over freshly shuffled training batches, starting at optimizer step ``step``."""
    model.train()
    record = {"loss": [], "grad_norm": [], "lr": [], "size": []}
    for x, y in minibatches(x_train, y_train, BATCH, shuffle=True, generator=shuffler):
        lr = lr_at(step)
        set_lr(optimizer, lr)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)  # (B, 10), bfloat16
            loss = cross_entropy(logits.float(), y)  # float32
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_grad_norm_(model.parameters(), max_norm=MAX_NORM)
        optimizer.step()
        step += 1
        record["loss"].append(loss.item())
        record["grad_norm"].append(grad_norm.item())
        record["lr"].append(lr)
        record["size"].append(len(y))
    return record


# The dtypes, once, on the first training batch.
with torch.autocast("cpu", dtype=torch.bfloat16):
    logits = model(x_train[:BATCH])
    loss = cross_entropy(logits.float(), y_train[:BATCH])
loss.backward()
first_weight = model[0].weight
print(f"logits: {logits.dtype}, loss: {loss.dtype}")
print(f"weight: {first_weight.dtype}, its gradient: {first_weight.grad.dtype}")
model.zero_grad(set_to_none=True)

# %% [markdown]
# ## The whole run: checkpoints and early stopping
#
# After every epoch the model is evaluated on the validation set with
# [`evaluate`](../../../training/loop/), which switches to eval mode (dropout off) and turns autograd off,
# and puts every module's mode back afterwards. Then two checkpoints are written with
# [`save_training_state`](../../../training/resume/) from [Resumable training](../../../training/resume/),
# each atomically (a power cut mid-write leaves the old file, never half a new one):
#
# - `best.pt`, whenever the validation loss is the lowest so far: the model we will keep.
# - `last.pt`, every epoch: everything needed to carry on. Model, optimizer state (Adam's two moments per
#   parameter and its step count), the position (step and epoch), the global random generators and the
#   `shuffler` by name, and in `extra` the run's bookkeeping: the history so far, the best loss, and the
#   patience counter.
#
# **Early stopping**: when `PATIENCE` epochs in a row bring no lower validation loss, the run stops. The
# validation set decides when to stop, which is one more reason it cannot also be the test set.
#
# The loop below is written to start from any saved state, fresh or loaded: the bookkeeping is a plain
# dict that travels in the checkpoint, so a resumed run cannot tell it was ever interrupted.

# %%
def new_bookkeeping() -> dict:
    """Where a run stands: what a checkpoint's ``extra`` carries besides the tensors."""
    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "lr": [], "grad_norm": []}
    return {"epoch": 0, "step": 0, "best_val_loss": math.inf, "best_epoch": 0, "bad_epochs": 0,
            "history": history}


def finished(book: dict) -> bool:
    """The epoch budget is spent, or patience has run out."""
    return book["epoch"] >= MAX_EPOCHS or book["bad_epochs"] >= PATIENCE


def train(model: Sequential, optimizer: AdamW, shuffler: torch.Generator, book: dict, folder: Path, *,
          stop_after: int | None = None, desc: str = "epochs") -> dict:
    """Train to early stopping or the budget, checkpointing each epoch; pull the plug after ``stop_after``."""
    bar = progress(total=MAX_EPOCHS, initial=book["epoch"], desc=desc)
    while not finished(book) and book["epoch"] != stop_after:
        record = train_epoch(model, optimizer, shuffler, book["step"])
        val = evaluate(model, val_batches, cross_entropy)
        book["epoch"] += 1
        book["step"] += len(record["loss"])
        history = book["history"]
        # The epoch's training loss: each step's loss, measured before its update, weighted by batch size.
        summed = sum(loss * n for loss, n in zip(record["loss"], record["size"], strict=True))
        history["train_loss"].append(summed / len(x_train))
        history["val_loss"].append(val["loss"])
        history["val_accuracy"].append(val["accuracy"])
        history["lr"] += record["lr"]
        history["grad_norm"] += record["grad_norm"]
        improved = val["loss"] < book["best_val_loss"]
        if improved:
            book.update(best_val_loss=val["loss"], best_epoch=book["epoch"], bad_epochs=0)
        else:
            book["bad_epochs"] += 1
        # The next step to take opens the next epoch, at its first batch.
        state = {"model": model, "optimizer": optimizer, "step": book["step"], "epoch": book["epoch"],
                 "batch_in_epoch": 0, "generators": {"shuffle": shuffler}, "extra": book}
        if improved:
            save_training_state(folder / "best.pt", **state)
        save_training_state(folder / "last.pt", **state)
        bar.update(1)
        bar.set_postfix(val_loss=f"{val['loss']:.4f}", val_acc=f"{val['accuracy']:.3f}",
                        patience=book["bad_epochs"])
    bar.close()
    return book


# %% [markdown]
# Now the real thing: a fresh model, a fresh optimizer, and the loop until it stops itself.

# %%
lab_folder = tempfile.TemporaryDirectory(prefix="capstone-")
straight = Path(lab_folder.name) / "straight"
straight.mkdir()
model, optimizer, shuffler = new_run()
started = time.perf_counter()
book = train(model, optimizer, shuffler, new_bookkeeping(), straight, desc="the run")
seconds = time.perf_counter() - started

# %%
history = book["history"]
stopped_by = "patience" if book["bad_epochs"] >= PATIENCE else "the epoch budget"
print(f"stopped after epoch {book['epoch']} by {stopped_by}, in {seconds:.1f} s")
print(f"best validation loss {book['best_val_loss']:.4f} at epoch {book['best_epoch']}")
print(f"validation accuracy at that epoch: {history['val_accuracy'][book['best_epoch'] - 1]:.4f}")
print(f"steps clipped: {sum(n > MAX_NORM for n in history['grad_norm'])} of {book['step']}")

# %% [markdown]
# ## The curves
#
# Top left, the losses per epoch, with the best epoch marked; top right, the validation accuracy.
# Bottom, per optimizer step: the learning rate the schedule set, and the total gradient norm
# `clip_grad_norm_` found, with the clipping threshold as a dashed line (the norm is drawn before
# clipping; any step above the line was scaled down to it).

# %%
fig, axes = new_figure(2, 2, width=10, height=6.4)
ax_loss, ax_acc, ax_lr, ax_norm = axes
epochs = range(1, book["epoch"] + 1)
ax_loss.plot(epochs, history["train_loss"], label="train (dropout on, mid-epoch)")
ax_loss.plot(epochs, history["val_loss"], label="validation")
ax_loss.axvline(book["best_epoch"], color="#888888", linestyle=":", label="best epoch")
ax_loss.set_yscale("log")
ax_loss.set_title("cross-entropy per epoch")
ax_loss.legend()
ax_acc.plot(epochs, history["val_accuracy"], color="#00a884")
ax_acc.axvline(book["best_epoch"], color="#888888", linestyle=":")
ax_acc.set_title("validation accuracy per epoch")
for ax in (ax_loss, ax_acc):
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
steps = range(len(history["lr"]))
ax_lr.plot(steps, history["lr"], color="#f2542d")
ax_lr.set_title("learning rate per step")
ax_norm.plot(steps, history["grad_norm"], color="#1f77b4", linewidth=0.8)
ax_norm.axhline(MAX_NORM, color="#888888", linestyle="--", label=f"max_norm = {MAX_NORM}")
ax_norm.set_yscale("log")
ax_norm.set_title("total gradient norm per step, before clipping")
ax_norm.legend()
for ax in (ax_lr, ax_norm):
    ax.set_xlabel("optimizer step")
for ax in (ax_loss, ax_norm):  # log axes, labelled 0.01, 0.1, 1 rather than powers of ten
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
fig  # noqa: B018 (a cell that ends with a figure shows it)

# %%
best = book["best_epoch"] - 1  # the lists count epochs from 0
rows = (("first epoch", 0), (f"best epoch ({best + 1})", best), (f"last epoch ({book['epoch']})", -1))
for label, i in rows:
    print(f"{label:16} train loss {history['train_loss'][i]:.4f}, "
          f"validation loss {history['val_loss'][i]:.4f}, "
          f"validation accuracy {history['val_accuracy'][i]:.4f}")
print(f"best validation accuracy of any epoch: {max(history['val_accuracy']):.4f}, "
      f"at epoch {history['val_accuracy'].index(max(history['val_accuracy'])) + 1}")
norms = history["grad_norm"]
first, later = norms[:STEPS_PER_EPOCH], norms[STEPS_PER_EPOCH:]
print(f"largest gradient norm: {max(norms):.2f}, at step {norms.index(max(norms))}")
print(f"clipped: {sum(n > MAX_NORM for n in first)} of the first epoch's {len(first)} steps, "
      f"{sum(n > MAX_NORM for n in later)} of the {len(later)} steps after it")
print(f"learning rate at the last step: {history['lr'][-1]:.2e} "
      f"(peak {PEAK_LR:.0e}, floor {PEAK_LR / 100:.0e})")

# %% [markdown]
# ## The power cut
#
# A checkpoint earns its keep only if resuming from it gives *the same run*, not merely a similar one.
# So we run the experiment again with the same seed and pull the plug halfway through: after the epoch
# below, the model and optimizer are thrown away as if the process had died. A new process would build
# a new model, optimizer and shuffler (we build them from a different seed, to be sure nothing survives
# by accident), load `last.pt` with [`load_training_state`](../../../training/resume/), which restores the
# weights, Adam's moments and every generator and hands back the position and the bookkeeping, and call
# the same `train` again.
#
# If any piece were missing (the generator state, say, so the data came in another order, or Adam's
# moments, so its first step after the cut were a cold start), the two runs would drift apart and the
# comparison below would print `False`.

# %%
interrupted = Path(lab_folder.name) / "interrupted"
interrupted.mkdir()
cut = max(1, book["epoch"] // 2)
model_a, optimizer_a, shuffler_a = new_run()
train(model_a, optimizer_a, shuffler_a, new_bookkeeping(), interrupted, stop_after=cut, desc="until the cut")
weights_at_cut = [p.detach().clone() for p in model_a.parameters()]
del model_a, optimizer_a, shuffler_a  # the power cut

model_b, optimizer_b, shuffler_b = new_run(seed=SEED + 123)
print(f"the plug was pulled after epoch {cut}")
print(f"new model equal to the one that died, before loading: "
      f"{all(torch.equal(a, b) for a, b in zip(weights_at_cut, model_b.parameters(), strict=True))}")
position, resumed_book = load_training_state(
    interrupted / "last.pt", model=model_b, optimizer=optimizer_b, generators={"shuffle": shuffler_b}
)
print(f"new model equal to the one that died, after loading:  "
      f"{all(torch.equal(a, b) for a, b in zip(weights_at_cut, model_b.parameters(), strict=True))}")
print(f"resuming at step {position.step}, epoch {position.epoch}")
resumed_book = train(model_b, optimizer_b, shuffler_b, resumed_book, interrupted, desc="after the cut")

# %%
same_weights = all(torch.equal(a, b) for a, b in zip(model.parameters(), model_b.parameters(), strict=True))
best_straight = torch.load(straight / "best.pt", weights_only=True)["model"]
best_resumed = torch.load(interrupted / "best.pt", weights_only=True)["model"]
same_best = all(torch.equal(best_straight[name], best_resumed[name]) for name in best_straight)
print(f"resumed run stopped after epoch {resumed_book['epoch']}, "
      f"the straight run after epoch {book['epoch']}")
print(f"histories identical (every loss, accuracy, learning rate and gradient norm): "
      f"{resumed_book['history'] == history}")
print(f"final parameters torch.equal to the uninterrupted run's: {same_weights}")
print(f"best checkpoints torch.equal: {same_best}")

# %% [markdown]
# Identical, bit for bit: the same batches in the same order, the same dropout masks, the same Adam
# moments, the same learning rates, the same stopping epoch. [Resumable training](../../../training/resume/)
# shows what each forgotten piece costs; here none was forgotten. (On a GPU, bitwise also asks for
# deterministic kernels; that lesson says how.)
#
# ## The verdict: the test set, once
#
# Every choice is made: the architecture, the learning rate, the epoch to keep. Only now do we load
# `best.pt`, check it is the model that scored the best validation loss, and open the test set. This
# cell runs the model over the test images one time and derives every test number below from those
# predictions.

# %%
position, saved = load_training_state(
    straight / "best.pt", model=model, optimizer=optimizer, generators={"shuffle": shuffler}
)
check = evaluate(model, val_batches, cross_entropy)
print(f"best.pt was saved after epoch {saved['best_epoch']} (step {position.step}); "
      f"its validation loss now {check['loss']:.4f}, when saved {saved['best_val_loss']:.4f}")

with evaluating(model), torch.no_grad():
    test_logits = model(x_test)  # (359, 10), float32: autocast is for training here
predictions = test_logits.argmax(dim=1)
test_loss = cross_entropy(test_logits, y_test).item()
test_accuracy = (predictions == y_test).float().mean().item()
confusion = torch.zeros(10, 10, dtype=torch.long)
confusion.index_put_((y_test, predictions), torch.ones_like(y_test), accumulate=True)
# The standard error of an accuracy p measured on n independent digits: sqrt(p (1 - p) / n).
standard_error = math.sqrt(test_accuracy * (1 - test_accuracy) / len(y_test))
print(f"validation at the best epoch: accuracy {check['accuracy']:.4f}, loss {check['loss']:.4f}")
print(f"TEST: accuracy {test_accuracy:.4f} ({int((predictions == y_test).sum())} of {len(y_test)}), "
      f"loss {test_loss:.4f}")
print(f"one test digit is worth {1 / len(y_test):.4f} of accuracy; standard error {standard_error:.4f}")
print(f"test minus validation accuracy: {test_accuracy - check['accuracy']:+.4f}")
per_digit = cross_entropy(test_logits, y_test, reduction="none")  # (359,)
wrong = predictions != y_test
print(f"share of the test loss carried by the {int(wrong.sum())} mistakes: "
      f"{(per_digit[wrong].sum() / per_digit.sum()).item():.2f}")

# %% [markdown]
# The confusion matrix counts, for every true digit (row), what the model answered (column); the diagonal
# is the correct answers, everything else a mistake, which is where to look next.

# %%
fig, (ax,) = new_figure(1, 1, width=5.4, height=4.8)
ax.grid(False)
ax.imshow(confusion, cmap="Purples")
for true in range(10):
    for guess in range(10):
        count = int(confusion[true, guess])
        if count:
            ax.text(guess, true, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > confusion.max() / 2 else "black")
ax.set_xticks(range(10))
ax.set_yticks(range(10))
ax.set_xlabel("predicted digit")
ax.set_ylabel("true digit")
ax.set_title("test set confusion matrix")
fig  # noqa: B018

# %%
pairs = [(true, guess) for true in range(10) for guess in range(10) if true != guess]
mistakes = [(true, guess, int(confusion[true, guess])) for true, guess in pairs if confusion[true, guess]]
mistakes.sort(key=lambda m: -m[2])
print(f"test mistakes: {sum(m[2] for m in mistakes)}")
for true, guess, count in mistakes[:5]:
    print(f"  a {true} read as a {guess}: {count}")
lab_folder.cleanup()

# %% [markdown]
# ## What the run showed
#
# - **The split was clean and the statistics honest.** No image appears in two parts, and the
#   standardiser's statistics are those of the training rows alone.
# - **The pre-flight checks passed.** The untrained network's loss sat near $\ln 10$, and one batch was
#   learned by heart: model, loss and optimizer are wired together correctly.
# - **Clipping mattered most at the start.** A fresh network is wrong about everything and its gradient
#   is at its largest; the print after the curves shows that the first epoch's steps were clipped far
#   more often than the later ones, where the leash only trims the occasional spike. The warm-up keeps
#   those first steps small as well: two guards on the same door, the one a schedule, the other a limit.
# - **Validation chose the epoch, early stopping chose when to quit.** After the best epoch the training
#   loss kept falling while the validation loss did not: the network fitted its training digits ever more
#   tightly without getting better at new ones by the measure we chose, and patience ended the run. It
#   ended it before the cosine had reached its floor (the learning-rate panel, and the print after it,
#   show where): a schedule planned for the whole budget and a rule that may stop early pull in
#   different directions, and a longer run would plan its budget from a first run like this one. The
#   training curve sits above the validation one in the first epoch because it is measured with dropout
#   on, averaged over an epoch of weights that were still poor.
# - **Loss and accuracy can disagree about the best epoch.** The print after the curves shows the epoch
#   with the best validation accuracy beside the one with the best validation loss. We decided before
#   the run to keep the lowest loss; swapping the criterion after seeing which one looks better would be
#   one more choice made on the validation set, and one more reason its score flatters.
# - **A power cut changed nothing.** The resumed run equalled the uninterrupted one to the last bit.
# - **The test accuracy was measured once,** on the checkpoint validation chose, and it is the number this
#   lab reports. Read its gap to the validation accuracy against the standard error printed beside it: on
#   a few hundred digits a gap of that size is chance. The test *loss* sits further above the validation
#   loss, and the print says why it is fragile: a handful of confident mistakes carry much of it, so a
#   single digit more or less moves it a long way. The validation score of the chosen epoch leans
#   optimistic by construction (the epoch was chosen for doing well on exactly those images), while the
#   test set had no say in anything. Had we tried a hundred configurations against the validation set,
#   its score would flatter us far more, and only the test set would tell.
#
# **Try it yourself.** Drop `MAX_NORM` to 0.1 and watch the clipped-step counts and the curves; set
# `DROPOUT = 0.0` and watch the gap between the curves open; or commit Hammer's sin on purpose, fitting
# the `Standardizer` on `images` instead of `images[train_idx]`, and ask whether you could have told from
# the test accuracy alone: a leak need not show to make a number dishonest. Run the lab again with
# `torchenstein lab digits_capstone`.
