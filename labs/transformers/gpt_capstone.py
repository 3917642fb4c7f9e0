# %% [markdown]
# # Lab: a GPT trained here
#
# > **The Professor throws the biggest switch of all.** For ten lessons we built a language model organ by
# > organ and proved every organ equal to the real thing. Tonight the assembled creature reads. Not the
# > internet: *this course*, every lesson's text, byte by byte, until it writes like me. We split the text
# > so that it is graded only on pages it never read, we train it on this very CPU in minutes,
# > we count every byte it saw and every second it took, and then we let it speak, and we look inside its
# > head while it does. Mwahahaha!
#
# Every piece comes from a lesson, and each section links to the one it comes from: the model from
# [GPT](../../../transformers/gpt/), the bytes from [Tokenisation](../../../transformers/tokenization/),
# the speaking from [Generation](../../../transformers/generation/), the looking from
# [Seeing attention](../../../transformers/seeing/), the training recipe from Part 3. The sizes shrink
# when the environment variable `TORCHENSTEIN_SMOKE=1` is set, so the test suite can run every cell in
# seconds.

# %%
import lzma
import math
import re
import time
from functools import partial

import torch

from torchenstein.lab import lab_size, new_figure, progress, seed_everything
from torchenstein.training.clipping import clip_grad_norm_
from torchenstein.training.schedules import set_lr, warmup_cosine
from torchenstein.transformers.attention import attention_with_weights, causal_mask
from torchenstein.transformers.generation import generate, greedy, process_logits, sample
from torchenstein.transformers.gpt import GPT, GPTConfig, parameter_budget
from torchenstein.transformers.seeing import induction_score, previous_token_score
from torchenstein.transformers.tokenization import course_corpus

SEED = 0
CONFIG = GPTConfig(n_layer=lab_size(4, 2), n_head=lab_size(4, 2), n_embd=lab_size(128, 32))  # context 64
BATCH = 12  # windows of text per optimizer step
STEPS = lab_size(2000, 20)  # optimizer steps
WARMUP = lab_size(100, 5)  # steps of linear warm-up before the cosine
PEAK_LR = 2e-3  # AdamW's learning rate at the top of the warm-up
MIN_LR = PEAK_LR / 10  # where the cosine ends
WEIGHT_DECAY = 0.1  # decoupled decay, on matrices and embedding tables only
MAX_NORM = 1.0  # the largest total gradient norm an update may use
EVAL_EVERY = lab_size(100, 10)  # steps between two estimates of the losses
EVAL_WINDOWS = lab_size(240, 24)  # fixed windows per estimate, from each part
seed_everything(SEED)
print(CONFIG)
print(f"batch {BATCH}, {STEPS} steps, warm-up {WARMUP}, peak lr {PEAK_LR}, "
      f"evaluated every {EVAL_EVERY} steps")
print(f"torch {torch.__version__}, CPU threads: {torch.get_num_threads()}")

# %% [markdown]
# ## The corpus: the course, as bytes
#
# [`course_corpus`](../../../transformers/tokenization/) reads the text of every lesson in course order,
# from the first page of Part 0 to the last of Part 6: Markdown, LaTeX, doctests and all. As in the
# [Tokenisation](../../../transformers/tokenization/) lesson we do not train a tokeniser: each **token**
# is one byte of the UTF-8 encoding, so the vocabulary is the 256 possible bytes and any text at all can
# be written, at the price of longer sequences (a `×` or an `é` is two bytes, an em dash three).

# %%
text = course_corpus()
data = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)  # (N,), one token per byte
print(f"{len(text):,} characters, {len(data):,} bytes, {len(torch.unique(data))} distinct byte values")
print(f"bytes outside ASCII: {(data >= 128).float().mean().item():.2%}")
print(repr(text[:300]))

# %% [markdown]
# ## The split: by position, never by random windows
#
# A training example is a **window**: `block_size + 1` consecutive bytes, whose first `block_size` are the
# input and whose last `block_size` (the same bytes moved on by one) are the targets, one next byte per
# position. The tempting split draws windows from anywhere and sends a random 10% of them to validation.
# That is [Dr. Hammer's leak](../../../training/leak/) in a new coat: two windows that start a few bytes
# apart share almost all their bytes, so nearly every validation window has a near-copy in training,
# and the validation loss measures memory, not writing. The first line the cell below prints counts it, on a
# split of that kind with as many windows as our run will draw.
#
# So we cut the byte stream once, **by position**: the first 90% is the training part, the last 10% the
# validation part, and every window lies wholly inside one of them. The last 10% of the course is its
# last lessons, so the validation text is whole lessons the model never read, on topics it met only in
# passing. That makes the validation loss a harder test than the random split's, and an honest one.

# %%
T = CONFIG.block_size


def overlapping(starts: torch.Tensor, others: torch.Tensor, length: int) -> torch.Tensor:
    """For each window start in ``starts``, whether some window in ``others`` shares at least one byte."""
    others = others.sort().values
    # The nearest other start on either side decides: two windows overlap when their starts are fewer
    # than `length` bytes apart.
    right = torch.searchsorted(others, starts).clamp(max=len(others) - 1)
    left = (right - 1).clamp(min=0)
    nearest = torch.minimum((others[right] - starts).abs(), (others[left] - starts).abs())
    return nearest < length


hammer = torch.Generator().manual_seed(SEED)
starts = torch.randint(0, len(data) - T, (STEPS * BATCH,), generator=hammer)
to_val = torch.rand(len(starts), generator=hammer) < 0.1
leaky = overlapping(starts[to_val], starts[~to_val], T + 1).float().mean().item()
print(f"random windows, random split: {leaky:.1%} of validation windows share bytes with a training window")

split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]
print(f"by position: train {len(train_data):,} bytes, validation {len(val_data):,} bytes")
titles = [m for m in re.finditer(r"^# (.+)\n\n!!! torchenstein", text, flags=re.MULTILINE)]
# Where the cut falls in `text`, counted in characters rather than bytes.
split_char = len(text.encode("utf-8")[:split].decode("utf-8", errors="ignore"))
held_out = [m.group(1) for m in titles if m.start() >= split_char]
print(f"lessons wholly in the validation part: {len(held_out)} of {len(titles)}, from {held_out[0]!r} "
      f"to {held_out[-1]!r}" if held_out else "no lesson wholly in the validation part")

# %% [markdown]
# Batches are drawn from the training part with a generator of their own, seeded, so the run can be
# repeated exactly. The validation estimate uses **fixed** windows, chosen once and spread evenly across
# the validation part, so two estimates differ only because the model changed, not because the windows
# did; the same number of fixed training windows gives a training loss measured the same way. The
# check at the end of the cell is the one the random split failed.

# %%
def windows(part: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the windows that start at ``starts``: two (len(starts), T) tensors."""
    offsets = torch.arange(T + 1)  # (T + 1,)
    chunk = part[starts[:, None] + offsets]  # (B, T + 1)
    return chunk[:, :-1], chunk[:, 1:]  # the targets are the inputs moved on by one byte


batcher = torch.Generator().manual_seed(SEED)


def train_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """BATCH random windows from the training part, drawn with the run's own generator."""
    return windows(train_data, torch.randint(0, len(train_data) - T, (BATCH,), generator=batcher))


def fixed_starts(part: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` window starts spread evenly over ``part``."""
    return torch.linspace(0, len(part) - T - 1, n).long()


val_fixed = windows(val_data, fixed_starts(val_data, EVAL_WINDOWS))
train_fixed = windows(train_data, fixed_starts(train_data, EVAL_WINDOWS))
x, y = train_batch()
print(f"one batch: inputs {tuple(x.shape)}, targets {tuple(y.shape)}")
print(f"input : {bytes(x[0].tolist())!r}")
print(f"target: {bytes(y[0].tolist())!r}")
# In stream coordinates, validation windows start at `split` or later; training windows end before it.
val_starts = split + fixed_starts(val_data, EVAL_WINDOWS)
train_starts = torch.arange(0, len(train_data) - T)  # every start the batcher could ever draw
print(f"by position: {overlapping(val_starts, train_starts, T + 1).sum().item()} validation windows "
      "share bytes with any possible training window")
batcher.manual_seed(SEED)  # the run starts from the generator's first draw

# %% [markdown]
# ## The creature, and what it should score before it learns
#
# The [GPT](../../../transformers/gpt/) of the lesson with its defaults, the course's recipe: 4 blocks of
# 4 heads, a residual stream 128 wide, a context of 64 bytes, GPT-2's initialisation, and the head tied to
# the token table. We count its parameters and check the count against the lesson's formula,
# [`parameter_budget`](../../../transformers/gpt/).
#
# Then the pre-flight check of [The training loop](../../../training/loop/): an untrained model should be
# equally unsure of all 256 bytes, a loss near $\ln 256$. Two more numbers tell us what a good loss is.
# A model that knew only how often each byte occurs (counted on the training part) would score the
# **unigram** cross-entropy on the validation part; anything the GPT does better than that, it learned
# from context. Losses in nats per byte convert to **bits per byte** by dividing by $\ln 2$: 8 bits is
# knowing nothing. And a loss *is* a compression rate: an arithmetic coder driven by the model would store
# each byte in that many bits. So the last baseline is a real compressor, `lzma` (the `.xz` format), given
# the same advantage as the model: the bits it needs for the validation part *after* the training part,
# which it may quote from.

# %%
def estimate(model: GPT, batch: tuple[torch.Tensor, torch.Tensor], chunk: int = 256) -> float:
    """Mean cross-entropy (nats per byte) of ``model`` on fixed windows, in eval mode, without autograd."""
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for xs, ys in zip(batch[0].split(chunk), batch[1].split(chunk), strict=True):
            total += model(xs, ys)[1].item() * len(xs)
    model.train(was_training)
    return total / len(batch[0])


seed_everything(SEED)
model = GPT(CONFIG)
n_params = model.num_parameters()
print(f"parameters: {n_params:,} (formula: {sum(parameter_budget(CONFIG).values()):,})")
start_loss = estimate(model, val_fixed)
print(f"untrained validation loss {start_loss:.3f}, ln 256 = {math.log(256):.3f}")
counts = torch.bincount(train_data, minlength=256).double() + 1  # add-one: no byte gets probability 0
unigram = -(counts / counts.sum()).log()[val_data].mean().item()
print(f"unigram baseline on validation: {unigram:.3f} nats = {unigram / math.log(2):.3f} bits per byte")
raw = text.encode("utf-8")
level = lab_size(6, 1)  # xz's default level; the fastest one in a smoke run
extra_bytes = len(lzma.compress(raw, preset=level)) - len(lzma.compress(raw[:split], preset=level))
lzma_bits = 8 * extra_bytes / len(val_data)  # what the validation part adds to the compressed file
print(f"lzma on validation, after the training part: {lzma_bits:.3f} bits per byte")

# %% [markdown]
# ## The optimiser and the schedule
#
# [`GPT.configure_optimizers`](../../../transformers/gpt/) builds AdamW
# ([Adam](../../../training/adam/)) with weight decay on the matrices and tables only, and GPT's
# $\beta_2 = 0.95$. The learning rate follows [`warmup_cosine`](../../../training/schedules/): a linear
# warm-up while Adam's moment estimates are still noisy, then half a cosine down to a tenth of the peak
# at the last step. [`set_lr`](../../../training/schedules/) applies it before each step, and
# [`clip_grad_norm_`](../../../training/clipping/), the course's own, proved equal to PyTorch's, keeps
# any one step from lurching.

# %%
optimizer = model.configure_optimizers(weight_decay=WEIGHT_DECAY, learning_rate=PEAK_LR)
lr_at = partial(warmup_cosine, warmup_steps=WARMUP, total_steps=STEPS, base_lr=PEAK_LR, min_lr=MIN_LR)
decayed, not_decayed = optimizer.param_groups
print(f"decayed: {sum(p.numel() for p in decayed['params']):,} numbers in {len(decayed['params'])} tensors; "
      f"not decayed: {sum(p.numel() for p in not_decayed['params']):,} in {len(not_decayed['params'])}")
for step in (0, WARMUP // 2, WARMUP, STEPS // 2, STEPS - 1):
    print(f"  step {step:5}: lr {lr_at(step):.2e}")

# %% [markdown]
# ## The run
#
# Forward, loss, `zero_grad`, backward, clip, step: the loop of [The training loop](../../../training/loop/),
# nothing added. Every `EVAL_EVERY` steps (and at the very end) the fixed windows of both parts are scored
# in eval mode under `torch.no_grad()`. The stopwatch runs only around the training steps, so the
# tokens per second it reports are the training speed, not the evaluation's.

# %%
history = {"step": [], "train": [], "val": [], "batch_loss": [], "grad_norm": []}
train_seconds = 0.0
model.train()
bar = progress(range(STEPS), desc="training")
for step in bar:
    if step % EVAL_EVERY == 0:
        history["step"].append(step)
        history["train"].append(estimate(model, train_fixed))
        history["val"].append(estimate(model, val_fixed))
        bar.set_postfix(val_loss=f"{history['val'][-1]:.3f}")
    started = time.perf_counter()
    set_lr(optimizer, lr_at(step))
    x, y = train_batch()
    _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_grad_norm_(model.parameters(), max_norm=MAX_NORM)
    optimizer.step()
    train_seconds += time.perf_counter() - started
    history["batch_loss"].append(loss.item())
    history["grad_norm"].append(grad_norm.item())
history["step"].append(STEPS)
history["train"].append(estimate(model, train_fixed))
history["val"].append(estimate(model, val_fixed))
model.eval()

tokens_seen = STEPS * BATCH * T
epochs = tokens_seen / len(train_data)
print(f"tokens seen: {tokens_seen:,} ({epochs:.2f} epochs, passes over the training part)")
print(f"training time {train_seconds:.1f} s: {tokens_seen / train_seconds:,.0f} tokens per second, "
      f"{1000 * train_seconds / STEPS:.1f} ms per step")
print(f"steps clipped: {sum(n > MAX_NORM for n in history['grad_norm'])} of {STEPS}")
for i in (len(history["step"]) // 4, -1):
    step = history["step"][i]
    print(f"fixed windows at step {step} ({step * BATCH * T / len(train_data):.2f} passes): "
          f"train {history['train'][i]:.3f}, validation {history['val'][i]:.3f}")

# %% [markdown]
# ## The curves

# %%
fig, (ax,) = new_figure(1, 1, width=8.0, height=4.2)
ax.plot(range(STEPS), history["batch_loss"], color="#c9b6f5", linewidth=0.6, label="each training batch")
ax.plot(history["step"], history["train"], marker="o", markersize=3, label="train (fixed windows)")
ax.plot(history["step"], history["val"], marker="o", markersize=3, label="validation (fixed windows)")
ax.axhline(math.log(256), color="#888888", linestyle=":", label="ln 256: knowing nothing")
ax.axhline(unigram, color="#888888", linestyle="--", label="unigram: byte frequencies only")
ax.axhline(lzma_bits * math.log(2), color="#f2542d", linestyle="--", label="lzma (xz), in nats per byte")
ax.set(xlabel="optimizer step", ylabel="cross-entropy (nats per byte)",
       title="A GPT learning to write like the Professor")
ax.legend(fontsize=8)
fig  # noqa: B018 (a cell that ends with a figure shows it)

# %% [markdown]
# The fixed windows are a sample. The number we report is the loss over the **whole** validation part,
# cut into consecutive windows that do not overlap, every byte predicted once (each from the bytes
# before it in its window, between 0 and 63 of them). In bits per byte it is the number of bits an
# arithmetic coder driven by this model would need to compress the Professor's last lessons.

# %%
every = torch.arange(0, len(val_data) - T - 1, T + 1)
val_loss = estimate(model, windows(val_data, every))
print(f"validation loss over all {len(every)} windows ({len(every) * T:,} bytes): "
      f"{val_loss:.4f} nats per byte")
print(f"bits per byte: {val_loss / math.log(2):.3f} (lzma {lzma_bits:.3f}, "
      f"unigram {unigram / math.log(2):.3f}, knowing nothing 8.000)")
print(f"a model of {n_params:,} parameters, {tokens_seen:,} tokens, {train_seconds / 60:.1f} minutes of CPU")

# %% [markdown]
# ## The creature speaks
#
# Speaking is the loop of the [Generation](../../../transformers/generation/) lesson: score the next
# byte from the last position's logits, choose one, append it, repeat. Its
# [`generate`](../../../transformers/generation/) runs a KV cache and stops at the context length, 64
# bytes, because our model has no position embedding beyond it. To write longer we slide the window:
# each new byte is predicted from the **last** 64 bytes only, the whole window recomputed each time
# (no cache: the positions shift with every byte). The choosing is the lesson's own `greedy`, or
# `process_logits` (temperature, then top-k) and `sample` with a seeded generator. Within the first
# window the two loops must agree, and the cell checks that they do.

# %%
def write(prompt: str, new_bytes: int, *, temperature: float | None = None, top_k: int | None = None,
          generator: torch.Generator | None = None) -> str:
    """Continue ``prompt`` by ``new_bytes`` bytes: greedy when ``temperature`` is None, else sampled."""
    idx = torch.tensor([list(prompt.encode("utf-8"))])  # (1, t)
    with torch.no_grad():
        for _ in range(new_bytes):
            logits, _ = model(idx[:, -T:])  # only the last T bytes fit the model
            scores = logits[:, -1].float()  # (1, V): the next byte's logits
            if temperature is None:
                token = greedy(scores)
            else:
                token = sample(process_logits(scores, temperature=temperature, top_k=top_k), generator)
            idx = torch.cat([idx, token[:, None]], dim=1)
    # The model may stop in the middle of a multi-byte character; those bytes show as a replacement mark.
    return bytes(idx[0].tolist()).decode("utf-8", errors="replace")


prompt = "## Dr. Hammer's traps\n\n"
ids = torch.tensor([list(prompt.encode("utf-8"))])
in_window = T - ids.shape[1] + 1  # the most new bytes generate() allows after this prompt
cached = generate(model, ids, in_window)  # greedy, with the lesson's KV cache
ours = write(prompt, in_window)
same = ours == bytes(cached[0].tolist()).decode("utf-8", errors="replace")
print(f"sliding loop equals generate() on the first {in_window} bytes: {same}")

# %% [markdown]
# First **greedy**: always the likeliest byte. Then **sampled** at temperature 0.8 (a little sharper than
# the model's own distribution) from the 40 likeliest bytes. Same prompts, same model.

# %%
PROMPTS = ["# Attention", "!!! hammer \"Dr. Hammer's trap: ", "The Professor", ">>> x = torch."]
LENGTH = lab_size(300, 8)
for prompt in PROMPTS:
    print(f"----- greedy, prompt {prompt!r}")
    print(write(prompt, LENGTH))

# %%
speaker = torch.Generator().manual_seed(SEED)
for prompt in PROMPTS:
    print(f"----- temperature 0.8, top-k 40, prompt {prompt!r}")
    print(write(prompt, LENGTH, temperature=0.8, top_k=40, generator=speaker))

# %% [markdown]
# ## Inside its head
#
# The [Seeing attention](../../../transformers/seeing/) lesson caught attention maps with a forward hook
# on each `MultiheadAttention`, which returns its weights. Our GPT's attention calls the fused
# `F.scaled_dot_product_attention`, which never forms the weights at all. So we catch what the weights are
# made from: a forward hook on each block's `attn.c_attn` keeps its output, the fused queries, keys and
# values, and we recompute the weights with the attention lesson's
# [`attention_with_weights`](../../../transformers/attention/), which returns them. To be sure the
# recomputed maps are the ones the model used, we finish the layer by hand (weights times values, heads
# side by side, `c_proj`) and compare with the layer's real output, caught by a second hook.

# %%
def attention_weights(model: GPT, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Every head's causal attention map on ``idx``: (n_layer, B, n_head, T, T), and the worst mismatch."""
    caught = {}
    hooks = []
    for i, block in enumerate(model.transformer.h):
        hooks.append(block.attn.c_attn.register_forward_hook(
            lambda module, args, out, i=i: caught.__setitem__(("qkv", i), out.detach())))
        hooks.append(block.attn.register_forward_hook(
            lambda module, args, out, i=i: caught.__setitem__(("out", i), out.detach())))
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for hook in hooks:  # hooks left behind would fire on every later call
            hook.remove()
    maps, mismatch = [], 0.0
    for i, block in enumerate(model.transformer.h):
        B, t, C3 = caught[("qkv", i)].shape
        C, H = C3 // 3, block.attn.n_head
        q, k, v = (z.view(B, t, H, C // H).transpose(1, 2) for z in caught[("qkv", i)].split(C, dim=2))
        out, weights = attention_with_weights(q, k, v, is_causal=True)  # (B, H, t, d), (B, H, t, t)
        with torch.no_grad():
            rebuilt = block.attn.c_proj(out.transpose(1, 2).reshape(B, t, C))  # (B, t, C)
        mismatch = max(mismatch, (rebuilt - caught[("out", i)]).abs().max().item())
        maps.append(weights)
    return torch.stack(maps), mismatch


look_at = "the monster ate the bolt, and the monster slept."
look_ids = torch.tensor([list(look_at.encode("utf-8"))])
maps, mismatch = attention_weights(model, look_ids)
print(f"maps: {tuple(maps.shape)} (layer, batch, head, query, key)")
print(f"rebuilt layer output vs the real one: largest difference {mismatch:.1e}")

# %%
L, H = CONFIG.n_layer, CONFIG.n_head
chars = [chr(b) if 32 < b < 127 else "␣" if b == 32 else "·" for b in look_ids[0].tolist()]
fig, axes = new_figure(L, H, width=2.6 * H, height=2.6 * L)
for layer in range(L):
    for head in range(H):
        ax = axes[layer * H + head]
        ax.grid(False)
        ax.imshow(maps[layer, 0, head].numpy(), cmap="Purples", vmin=0.0, vmax=1.0)
        ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        ax.set_xticks(range(len(chars)), chars if layer == L - 1 else [], fontsize=4)
        ax.set_yticks(range(len(chars)), chars if head == 0 else [], fontsize=4)
fig.supxlabel("key (the byte looked at)", fontsize=9)
fig.supylabel("query (the byte looking)", fontsize=9)
fig.suptitle(repr(look_at), fontsize=9)
fig  # noqa: B018

# %% [markdown]
# Pictures flatter; numbers do not. For each head, on stretches of validation text it never trained on:
# the mean weight on the **previous byte** (the seeing lesson's
# [`previous_token_score`](../../../transformers/seeing/)), on the **byte itself**, on the **last space**
# before it (where the current word begins), and on the **first byte** of the window (where some models
# park the weight of a head with nothing to do, an "attention sink"). The first row is the yardstick: a
# head that spread its weight evenly over every byte it may see.

# %%
def head_table(w: torch.Tensor, ids: torch.Tensor) -> list[torch.Tensor]:
    """Per head of maps (B, H, T, T) on bytes ``ids`` (B, T): the four mean weights of the table."""
    B, H, t, _ = w.shape
    pos = torch.arange(t)
    # The latest space strictly before each query: a running maximum of the space positions, moved on by one.
    latest = torch.where(ids == ord(" "), pos, -1).cummax(dim=1).values  # (B, t), at or before each byte
    before = torch.cat([torch.full((B, 1), -1), latest[:, :-1]], dim=1)  # (B, t), -1 where there is none
    on_space = w.gather(-1, before.clamp(min=0)[:, None, :, None].expand(B, H, t, 1)).squeeze(-1)  # (B, H, t)
    has_space = (before >= 0)[:, None].float()  # (B, 1, t)
    return [
        previous_token_score(w),
        torch.diagonal(w, dim1=-2, dim2=-1).mean(dim=(0, -1)),
        (on_space * has_space).sum(dim=(0, -1)) / has_space.sum(),
        w[..., 1:, 0].mean(dim=(0, -1)),  # the queries after the first, looking at the first byte
    ]


probe = windows(val_data, fixed_starts(val_data, 16))[0]  # (16, T) validation windows
probe_maps, _ = attention_weights(model, probe)  # (L, 16, H, T, T)
even = causal_mask(T).float()
even = (even / even.sum(dim=-1, keepdim=True)).expand(len(probe), 1, T, T)  # every visible byte alike
print("layer head  previous  itself  last space  first")
yardstick = [v.item() for v in head_table(even, probe)]
print("  even weights   {:6.2f}  {:6.2f}  {:10.2f}  {:5.2f}".format(*yardstick))
for layer in range(L):
    for head, row in enumerate(zip(*head_table(probe_maps[layer], probe), strict=True)):
        print(f"{layer:5} {head:4}  {row[0]:8.2f}  {row[1]:6.2f}  {row[2]:10.2f}  {row[3]:5.2f}")

# %% [markdown]
# One more question from the seeing lesson: can it **copy**? Random lowercase letters, 32 of them, written
# twice. The first copy cannot be predicted beyond "a letter comes next"; the second can, by a model that
# finds the earlier occurrence of the current letter and says what followed it (an induction head).
# We compare the loss on the two copies, and score every head with the lesson's
# [`induction_score`](../../../transformers/seeing/): its mean weight on the byte after the earlier copy.

# %%
copier = torch.Generator().manual_seed(SEED)
half = T // 2
letters = torch.randint(ord("a"), ord("z") + 1, (16, half), generator=copier)  # (16, 32)
twice = torch.cat([letters, letters], dim=1)  # (16, 64): each row written twice
with torch.no_grad():
    logits, _ = model(twice[:, :-1])  # (16, 63, V): position i predicts byte i + 1
    per_byte = torch.nn.functional.cross_entropy(logits.transpose(1, 2), twice[:, 1:], reduction="none")
print(f"loss on the first copy {per_byte[:, :half - 1].mean().item():.3f}, "
      f"on the second {per_byte[:, half:].mean().item():.3f} nats per byte (ln 26 = {math.log(26):.3f})")
twice_maps, _ = attention_weights(model, twice)  # (L, 16, H, 64, 64)
scores = torch.stack([induction_score(twice_maps[layer], half) for layer in range(L)])  # (L, H)
for layer in range(L):
    print(f"layer {layer} induction scores: " + "  ".join(f"{v:.2f}" for v in scores[layer].tolist()))

# %% [markdown]
# ## What the run shows
#
# - **It learned the look of these pages, not their sense.** Sampled at 0.8, the creature writes
#   Markdown paragraphs, `$$` formulas, doctest prompts with `torch.` calls, backticked names and bold
#   words, and spells the commonest words of the course. The sentences mean nothing, and the invented
#   words show that 1.2 passes over the text did not teach it the course's whole vocabulary. Under a
#   million parameters and a 64-byte context do not hold a thought longer than a line.
# - **Greedy decoding loops.** After a prompt of prose, the likeliest byte leads into a phrase that leads
#   back into itself, and greedy never leaves it: the likeliest continuation of a loop is the loop. After
#   a doctest prompt it manages a few lines of plausible code first. Sampling breaks the loops, at the
#   price of the misspellings.
# - **It beats counting bytes by far, and loses to xz.** In bits per byte the model lands far below the
#   unigram baseline, yet `lzma` stores the same validation text in fewer bits. A compressor *quotes*:
#   these pages repeat long stretches (the Professor's admonition, the imports of every doctest, the names
#   of the code), and xz copies them from megabytes back, where our model sees 64 bytes and, as the copy
#   test shows, has not learned to copy even inside them.
# - **Part of the gap between the curves is the split.** The prints at the end of the run show the gap
#   already open at a quarter of the run, when the model had read under a third of the training text,
#   once, and could not have memorised it: the validation text is the course's last lessons, whose
#   subjects the training text only mentions, and they are harder to predict. The gap then widens, as
#   the model learns the training lessons' own subjects better and begins to meet training windows a
#   second time; this run cannot tell those two apart (dropout, below, is one way to look). The random
#   split would have put a near-copy of most of its validation windows into training, and hidden it all.
# - **Clipping was a leash, not a brake.** The gradient norm was above `MAX_NORM` in most steps, so
#   `clip_grad_norm_` shortened nearly every update, and the step the optimizer took was smaller than the
#   schedule's learning rate alone would give. GPT recipes clip at 1.0 all the same: the leash is what
#   lets them use a large peak learning rate without the occasional huge gradient throwing the run.
# - **The first layer reads the last few bytes; the rest look further.** Every head of layer 0 puts
#   several times the even share of its weight on the previous byte and on the byte itself, the
#   diagonal stripes of the grid: a model of bytes must first assemble bytes into pieces of words, and
#   looking back one or two is how. The deeper heads spread their weight wider, and a few of them draw
#   vertical stripes in the grid: every byte of a word looks back at one key. The "last space" column
#   names that key. In layers 1 to 3 the heads with the largest scores there, several times the even
#   share, are the striped ones: they find the space where the current word began, which is how a model
#   of bytes knows which word it is in the middle of. No head is an attention sink: none gives the first
#   byte more than the even share.
# - **No induction head yet.** On letters written twice, the second copy is no easier than the first,
#   and every head's induction score is near zero. (Both losses sit above $\ln 256$: random letters look
#   like nothing in the course, and the model is confidently wrong about them.) The seeing lesson's toy
#   model learned to copy because its data was nothing but copying; in the language models of Olsson et
#   al. (2022) induction heads appeared in a sudden phase change, after far more text than our 1.5
#   million bytes.
#
# **Try it yourself.** Double `STEPS` and see how far the validation loss still falls; raise `MAX_NORM`
# to 5 and count the clipped steps; set `dropout=0.1` in `CONFIG` and watch the gap between the curves;
# or commit Hammer's sin on purpose, scoring the model on random windows of the whole stream, and watch
# the validation loss flatter you. Run the lab again with `torchenstein lab gpt_capstone`.
