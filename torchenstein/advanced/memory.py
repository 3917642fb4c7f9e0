r"""
# Where Training Memory Goes: The Monster's Ledger

!!! torchenstein "The Professor speaks"
    "Out of memory," the GPU says, and Dr. Hammer halves his batch size until it stops complaining. He never
    asks *what* filled the card. Tonight we ask! Every byte a training step holds belongs to one of four
    piles, and each pile follows a formula we can write on one napkin. We write them for our own GPT,
    weigh the largest pile with the hooks lesson's ledger until formula and measurement agree to the
    byte, and then we shrink it by a trade as old as computing: memory for arithmetic.

**You will learn to**

- split a training step's memory into parameters, gradients, optimiser state and activations, and compute
  each for our GPT in float32 and in bfloat16 mixed precision;
- explain the famous "16 bytes per parameter" of mixed-precision Adam, and why autocast pays them too;
- derive, operation by operation, every byte our GPT saves for its backward pass, and prove the formula
  equal to the measurement for many batch sizes, lengths and depths;
- checkpoint every block with `torch.utils.checkpoint`, keeping the gradients, dropping the saved bytes to
  the blocks' inputs, and count the forward pass it costs;
- compare the formula with `torch.cuda.max_memory_allocated` on a GPU;
- spot three of Dr. Hammer's memory leaks before they spot you.

## Four piles of bytes

A training step needs, besides its data:

- **parameters**: the model's learnable numbers, its weights and biases;
- **gradients**: one number per parameter, $\partial L / \partial \theta$, written by `backward`;
- **optimiser state**: the tensors an optimiser keeps from one step to the next, each the size of the
  parameters. Plain SGD keeps none; SGD with momentum keeps one running direction; Adam and AdamW keep two
  **moments**, running averages of the gradient and of its square (see [SGD](../../training/sgd/index.md)
  and [Adam](../../training/adam/index.md));
- **activations**: the tensors the forward pass saves for the backward pass, the saved tensors of the
  [Hooks](../hooks/index.md) lesson. They grow with the batch; the other three do not.

The first three are a number of bytes per parameter.
[`bytes_per_parameter`][torchenstein.advanced.memory.bytes_per_parameter] writes them down for three
optimisers and three precisions, the optimiser's moments always in float32:

```pycon
>>> import torch
>>> from torchenstein.advanced.memory import bytes_per_parameter
>>> for precision in ("float32", "bfloat16-autocast", "bfloat16-master"):
...     totals = {opt: sum(bytes_per_parameter(opt, precision).values()) for opt in ("sgd", "sgd-momentum", "adamw")}
...     print(f"{precision:18}", totals)
float32            {'sgd': 8, 'sgd-momentum': 12, 'adamw': 16}
bfloat16-autocast  {'sgd': 8, 'sgd-momentum': 12, 'adamw': 16}
bfloat16-master    {'sgd': 8, 'sgd-momentum': 12, 'adamw': 16}
>>> bytes_per_parameter("adamw", "bfloat16-master")
{'parameters': 2, 'gradients': 2, 'master weights': 4, 'optimizer state': 8}
>>> bytes_per_parameter("adam")
Traceback (most recent call last):
...
ValueError: optimizer must be one of ['sgd', 'sgd-momentum', 'adamw'], got 'adam'

```

## Sixteen bytes per parameter

"Mixed-precision Adam costs 16 bytes per parameter" comes from the ZeRO paper (Rajbhandari et al., 2020),
which counted the classic recipe of Megatron-LM: the forward and backward passes run on a **bfloat16** (or
float16) copy of the weights, 2 bytes, and produce 2-byte gradients. But the optimiser cannot update a
16-bit weight: bfloat16 keeps 8 significant bits, and a step a thousand times smaller than the weight rounds
away, as the [Mixed precision](../../training/mixed_precision/index.md) lesson showed. So it keeps a float32
**master copy** of the weights, 4 bytes, and updates that, with two float32 moments, 8 bytes more:
$2 + 2 + 4 + 4 + 4 = 16$. Twelve of the sixteen bytes are the optimiser's.

PyTorch's own mixed precision, `torch.autocast`, splits the same 16 bytes differently: the parameters
*are* the float32 master copy, their gradients are float32 too, and the moments add 8: $4 + 4 + 8 = 16$.
Autocast makes the bfloat16 copies of the weights on the fly, inside the forward pass, and the matrix
products save them for backward: 2 bytes per weight of every matrix, counted below with the activations.
What mixed precision shrinks is the activations, the pile that grows, though by less than half, as we will
see.

## The napkin for our GPT

[`training_memory`][torchenstein.advanced.memory.training_memory] adds the four piles up for the capstone
GPT of the [GPT](../../transformers/gpt/index.md) lesson, whose
[`parameter_budget`][torchenstein.transformers.gpt.parameter_budget] counts its parameters, trained with
AdamW on batches of 12 sequences of 64 tokens. In MiB ($2^{20}$ bytes):

```pycon
>>> from torchenstein.advanced.memory import MIB, format_memory_table, training_memory
>>> from torchenstein.transformers.gpt import GPT, GPTConfig, parameter_budget
>>> config = GPTConfig()
>>> print("parameters:", sum(parameter_budget(config).values()))
parameters: 834304
>>> print(format_memory_table({
...     "float32": training_memory(config, batch_size=12),
...     "bf16 autocast": training_memory(config, batch_size=12, precision="bfloat16-autocast"),
...     "float32, checkpointed": training_memory(config, batch_size=12, checkpointing=True),
... }))
component            float32  bf16 autocast  float32, checkpointed
parameters              3.18           3.18                   3.18
gradients               3.18           3.18                   3.18
master weights          0.00           0.00                   0.00
optimizer state         6.37           6.37                   6.37
activations            25.60          16.48                   3.01
recomputed block        0.00           0.00                   6.02
total                  38.33          29.21                  21.76

```

At this size the activations outweigh everything else together, and they are linear in the batch size: the
next section takes them apart. Autocast cuts them by only about a third, not the half that "2 bytes
instead of 4" promises, for reasons the breakdown shows: the residual stream and the LayerNorm
statistics stay in float32, and the weight copies are new.

## What a block saves, tensor by tensor

A **block** of our GPT is `x + attn(ln_1(x))`, then `h + mlp(ln_2(h))`. Going through it with the rule of
the [Hooks](../hooks/index.md) lesson, *which tensors does each operation need to compute its gradients?*,
with $B$ sequences of $T$ tokens, width $C$ and $H$ heads:

- `ln_1`, a LayerNorm, saves its input $x$ $(B, T, C)$ and, per position, the mean and the reciprocal
  standard deviation it computed, two $(B, T, 1)$ tensors (and its gain and shift, parameters);
- `c_attn`, a Linear, saves its input, the LayerNorm's output $(B, T, C)$ (and its weight);
- `scaled_dot_product_attention` saves $q$, $k$, $v$, its output $(B, H, T, C/H)$ and the
  **log-sum-exp** of each row of scores $(B, H, T)$: with the row's log-sum-exp, backward rebuilds each
  softmax row from $q$ and $k$, so the fused kernel never stores the $(B, H, T, T)$ attention weights;
- `c_proj` saves its input, the heads put side by side $(B, T, C)$;
- the residual sum $h$ is a new tensor, which `ln_2` saves with its mean and rstd; `c_fc` saves
  `ln_2`'s output; GELU saves its input $(B, T, 4C)$; `mlp.c_proj` saves GELU's output $(B, T, 4C)$.

Two of these are the same memory twice. $q$, $k$ and $v$ are views of the one $(B, T, 3C)$ output of
`c_attn`. And the attention kernel writes its output in the $(B, T, H, C/H)$ memory order, so
`y.transpose(1, 2).contiguous()` finds it contiguous already and copies nothing: `c_proj`'s input *is* the
attention's output. Each storage (the memory a tensor and its views share) counted once, with $s$ bytes
per element:

$$
\text{block} = s\,(BTC + 2BT + BTC + 3BTC + BTC + BHT + BTC + 2BT + BTC + 4BTC + 4BTC)
= s\,(16\,BTC + 4\,BT + BHT).
$$

(The log-sum-exp is kept in float32 at least, and under autocast the LayerNorms and the residual stream
keep 4 bytes, as the functions below spell out.)

[`block_activation_bytes`][torchenstein.advanced.memory.block_activation_bytes] lists it tensor by tensor,
and [`activation_bytes`][torchenstein.advanced.memory.activation_bytes] adds the embeddings (the position
ids, `int64`) and the head (`ln_f`, its output, and the log-probabilities of the loss, $(BT, V)$). The
measurement, [`saved_activation_bytes`][torchenstein.advanced.memory.saved_activation_bytes], runs the
forward pass under the hooks lesson's [`SavedTensorLedger`][torchenstein.advanced.hooks.SavedTensorLedger]
and counts each storage once, leaving out the parameters and the caller's ids, which exist anyway:

```pycon
>>> from torchenstein.advanced.memory import activation_bytes, block_activation_bytes, saved_activation_bytes
>>> for what, nbytes in block_activation_bytes(config, batch_size=12).items():
...     print(f"{what:34} {nbytes:>9}")
ln_1 input (the block's input)        393216
ln_1 mean and rstd                      6144
ln_1 output (c_attn's input)          393216
q, k, v (c_attn's output)            1179648
attention output (c_proj's input)     393216
attention logsumexp                    12288
ln_2 input (x + attention)            393216
ln_2 mean and rstd                      6144
ln_2 output (c_fc's input)            393216
GELU input (c_fc's output)           1572864
GELU output (mlp.c_proj's input)     1572864
>>> _ = torch.manual_seed(0)
>>> model = GPT(config)
>>> idx, targets = torch.randint(0, 256, (2, 4, 64))         # a batch of 4, to keep the page quick
>>> {"formula": sum(activation_bytes(config, batch_size=4).values()),
...  "measured": saved_activation_bytes(model, idx, targets)}
{'formula': 8948228, 'measured': 8948228}

```

The tests hold formula and measurement equal, byte for byte, for several batch sizes, lengths, depths,
widths and head counts, with and without biases, in float32 and float64, and under autocast. Under
`torch.autocast(..., dtype=torch.bfloat16)` the matrix products and the attention run in bfloat16, but
LayerNorm is on autocast's float32 list and the residual stream, a float32 embedding plus bfloat16 branches,
stays float32; each matrix product also saves its bfloat16 weight copy:

```pycon
>>> autocast = block_activation_bytes(config, batch_size=12, autocast_dtype=torch.bfloat16)
>>> {"float32 block": sum(block_activation_bytes(config, batch_size=12).values()),
...  "bf16 autocast block": sum(autocast.values()), "of which weight copies": autocast["weight copies (autocast)"]}
{'float32 block': 6316032, 'bf16 autocast block': 3956736, 'of which weight copies': 393216}
>>> {"formula": sum(activation_bytes(config, batch_size=4, autocast_dtype=torch.bfloat16).values()),
...  "measured": saved_activation_bytes(model, idx, targets, autocast_dtype=torch.bfloat16)}
{'formula': 6851076, 'measured': 6851076}

```

**The formula depends on the attention kernel.** The course's own
[`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention] computes
the softmax explicitly, and the softmax saves its output, the $(B, H, T, T)$ weights: a term that grows
with the *square* of the length. Swapping it into a block shows the weights among the saves:

```pycon
>>> from torchenstein.advanced.hooks import SavedTensorLedger
>>> from torchenstein.transformers.attention import scaled_dot_product_attention
>>> def saves_weights(model):
...     with SavedTensorLedger() as ledger:
...         model(idx[:2], targets[:2])
...     return any(record.shape == (2, 4, 64, 64) for record in ledger.records)    # (B, H, T, T)
>>> explicit = GPT(config)
>>> for block in explicit.transformer.h:
...     block.attn.attention = scaled_dot_product_attention
>>> {"fused saves (B, H, T, T)": saves_weights(model), "explicit saves (B, H, T, T)": saves_weights(explicit)}
{'fused saves (B, H, T, T)': False, 'explicit saves (B, H, T, T)': True}

```

## Activation checkpointing: memory for arithmetic

**Activation checkpointing** (Chen et al., 2016, "Training Deep Nets with Sublinear Memory Cost") keeps
only a few tensors, the *checkpoints*, and throws the rest away; in the backward pass it runs the forward
pass of each segment again from its checkpoint to rebuild what that segment's backward needs. PyTorch's
`torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)` does it for one function: the forward
runs with saved-tensor hooks that keep nothing but `args`, and backward calls `fn` again. Pass
`use_reentrant=False`: it is the implementation PyTorch recommends, and recent releases warn when
`use_reentrant` is not given. Our GPT has no switch for it, so
[`checkpointed`][torchenstein.advanced.memory.checkpointed] lends each block a checkpointed forward for the
length of a `with` block; names, `state_dict` and hooks are untouched. Per block, only its input stays:

```pycon
>>> from torchenstein.advanced.memory import checkpointed
>>> with checkpointed(model.transformer.h):
...     measured = saved_activation_bytes(model, idx, targets)
>>> formula = activation_bytes(config, batch_size=4, checkpointing=True)
>>> {"formula": sum(formula.values()), "measured": measured, "blocks": formula["blocks"],
...  "4 block inputs (4, 64, 128) float32": 4 * 4 * 64 * 128 * 4}
{'formula': 1051140, 'measured': 1051140, 'blocks': 524288, '4 block inputs (4, 64, 128) float32': 524288}

```

The price: every block runs forward twice. A forward pre-hook on each block's `mlp` counts
the runs (the block's own hooks fire once: the recomputation calls its `forward` directly), and
[`matmul_flops`][torchenstein.advanced.memory.matmul_flops] counts the FLOPs (floating-point operations)
of the matrix products with `FlopCounterMode`, as in the [Profiling](../profiling/index.md) lesson. A
backward pass costs two forward passes, so a plain step costs three. Checkpointing adds the blocks' forward
pass, *almost*: the recomputation stops as soon as the last tensor backward needs is rebuilt (PyTorch calls
it early stopping), and `mlp.c_proj` saves its input before it multiplies, so the block's last matrix
product, a third of its FLOPs, is never redone. The head is not recomputed at all:

```pycon
>>> from torchenstein.advanced.hooks import temporary_hooks
>>> from torchenstein.advanced.memory import matmul_flops
>>> def mlp_runs(blocks):
...     runs = []
...     with temporary_hooks() as handles:
...         handles += [b.mlp.register_forward_pre_hook(lambda m, args: runs.append(1)) for b in model.transformer.h]
...         with checkpointed(blocks):
...             loss = model(idx, targets)[1]
...         loss.backward()
...     return len(runs)
>>> {"plain": mlp_runs([]), "checkpointed": mlp_runs(model.transformer.h)}
{'plain': 4, 'checkpointed': 8}
>>> plain = matmul_flops(model, idx, targets)
>>> ckpt = matmul_flops(model, idx, targets, checkpointing=True)
>>> {"step / forward, plain": round(plain["forward + backward"] / plain["forward"], 2),
...  "step / forward, checkpointed": round(ckpt["forward + backward"] / ckpt["forward"], 2)}
{'step / forward, plain': 3.0, 'step / forward, checkpointed': 3.64}

```

A recomputed forward pass must produce the very same tensors, so the gradients are the same. In float64 they
agree to the last bits (the tests hold every parameter's gradient to $10^{-12}$ over several sizes):

```pycon
>>> def gradients(blocks):
...     model64.zero_grad()
...     with checkpointed(blocks):
...         loss = model64(idx[:2], targets[:2])[1]
...     loss.backward()
...     return [p.grad.clone() for p in model64.parameters()]
>>> model64 = GPT(GPTConfig(n_layer=2, n_embd=32, n_head=2)).double()
>>> for plain_grad, ckpt_grad in zip(gradients([]), gradients(model64.transformer.h)):
...     torch.testing.assert_close(ckpt_grad, plain_grad, rtol=0, atol=1e-12)

```

Where does the memory go in the backward pass? The block being recomputed saves its full set again, one
block at a time, so the peak holds the block inputs *plus one block*:
[`training_memory`][torchenstein.advanced.memory.training_memory] lists it as `"recomputed block"`. For $L$
blocks that is $L \cdot BTC$ plus one block's $16\,BTC$ instead of $L$ times $16\,BTC$. Time it on your
machine with [`time_checkpointing`][torchenstein.advanced.memory.time_checkpointing] (a benchmark, not a
test: the ratio is your machine's; set it beside the FLOPs ratio above). The figure draws the piles against the batch size;
[`max_batch_size`][torchenstein.advanced.memory.max_batch_size] reads the same formulas backwards, here for a
512 MiB budget:

```pycon
>>> from torchenstein.advanced.memory import max_batch_size
>>> {checkpointing: max_batch_size(config, 512 * MIB, checkpointing=checkpointing) for checkpointing in (False, True)}
{False: 234, True: 663}

```

![Two panels of stacked areas, memory in MiB against the batch size from 1 to 64. Without checkpointing the activations band grows steeply and dominates from a few sequences on, above the thin constant bands of parameters, gradients and optimizer state. With checkpointing the activations band is thin, with a thicker band for the recomputed block above it, and the total at batch 64 is well under half of the left panel's.](plot_memory_by_batch_size.svg)

## On a GPU: the allocator's word

The [allocator](../allocator/index.md) lesson met `torch.cuda.memory_allocated()` (the bytes tensors hold now)
and `torch.cuda.max_memory_allocated()` (the most they held since `torch.cuda.reset_peak_memory_stats()`).
[`cuda_training_step_memory`][torchenstein.advanced.memory.cuda_training_step_memory] trains one warm-up
step (it creates the optimiser state and cuBLAS's workspace), then reads both around a second step. The
growth over the forward pass is the activations plus the logits, which the forward returns (float32
$(B, T, V)$): the log-probabilities saved by the loss are a second tensor of that size. The peak adds the
gradients and what backward holds at its busiest moment.

```pycon
>>> from torchenstein.advanced.memory import cuda_training_step_memory
>>> if torch.cuda.is_available():
...     measured = cuda_training_step_memory(config, batch_size=12)
...     expected = sum(activation_bytes(config, batch_size=12).values()) + 12 * 64 * 256 * 4
...     assert abs(measured["after forward"] - expected) < 0.02 * expected, (measured, expected)

```

On a GPU the attention runs another kernel (the memory-efficient one for float32, flash attention for
bfloat16), whose log-sum-exp may be padded to a multiple of 32 positions, and the allocator rounds every
memory block up to a multiple of 512 bytes, so the tests allow a few percent there, and bound the peak from both sides.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: a list of losses is a list of graphs"
    Hammer validates his model and keeps each batch's loss for a plot: `losses.append(loss)`. A loss is a
    tensor with a `grad_fn`, and the `grad_fn` holds every tensor the batch's forward pass saved. Nothing
    calls `backward` on a validation loss, so nothing frees them: each batch adds a whole graph. The
    ledger counts what stays alive:

    ```pycon
    >>> def validate(batches, keep):
    ...     losses = []
    ...     with SavedTensorLedger() as ledger:
    ...         for _ in range(batches):
    ...             losses.append(keep(model(idx[:2], targets[:2])[1]))
    ...     return ledger.live_bytes()                    # the saves some graph still holds
    >>> kept = {batches: validate(batches, lambda loss: loss) for batches in (1, 3)}
    >>> {"3 losses kept / 1 loss kept": kept[3] / kept[1], "3 floats kept": validate(3, lambda loss: loss.item())}
    {'3 losses kept / 1 loss kept': 3.0, '3 floats kept': 0}

    ```

    Keep `loss.item()`, a Python float: each graph dies with its batch. In a training loop `backward` frees
    the saved tensors, but `total += loss` still chains every step's graph into the next: write
    `total += loss.item()`.

!!! hammer "Dr. Hammer's trap: `eval()` is not `no_grad()`"
    Hammer calls `model.eval()` before validating and believes autograd is off. `eval()` switches dropout
    (and batch normalisation) to their inference behaviour; it says nothing to autograd. Every forward pass
    still saves its whole graph, which lives, at least, until the loss is dropped:

    ```pycon
    >>> _ = model.eval()
    >>> with SavedTensorLedger() as ledger:
    ...     loss = model(idx, targets)[1]
    >>> {"saved in eval mode": ledger.distinct_bytes(exclude=[*model.parameters(), idx, targets]),
    ...  "as in training": sum(activation_bytes(config, batch_size=4).values()), "requires grad": loss.requires_grad}
    {'saved in eval mode': 8948228, 'as in training': 8948228, 'requires grad': True}
    >>> with SavedTensorLedger() as ledger, torch.no_grad():
    ...     loss = model(idx, targets)[1]
    >>> {"saved under no_grad": len(ledger.records), "requires grad": loss.requires_grad}
    {'saved under no_grad': 0, 'requires grad': False}
    >>> _ = model.train()

    ```

    Use both: `eval()` for the model's behaviour, `torch.no_grad()` (or `torch.inference_mode()`) for
    autograd's. Validation then needs no activation memory at all, and runs faster.

!!! hammer "Dr. Hammer's trap: checkpointing dropout without its dice"
    Hammer checkpoints a model with dropout and passes `preserve_rng_state=False`, "to save time". The
    recomputation in backward draws *new* dropout masks, so the gradients belong to a network that never ran
    forward. Nothing fails; the gradients are simply wrong. With the default, `preserve_rng_state=True`,
    checkpoint stashes the random state before the forward pass and restores it before recomputing:

    ```pycon
    >>> dropping = GPT(GPTConfig(n_layer=2, n_embd=32, n_head=2, block_size=16, dropout=0.2)).double()
    >>> def dropout_gradients(blocks, **options):
    ...     dropping.zero_grad()
    ...     _ = torch.manual_seed(1)
    ...     with checkpointed(blocks, **options):
    ...         loss = dropping(idx[:2, :16], targets[:2, :16])[1]
    ...     loss.backward()
    ...     return dropping.transformer.h[0].mlp.c_fc.weight.grad.clone()
    >>> plain = dropout_gradients([])
    >>> {"preserved": torch.allclose(dropout_gradients(dropping.transformer.h), plain),
    ...  "not preserved": torch.allclose(dropout_gradients(dropping.transformer.h, preserve_rng_state=False), plain)}
    {'preserved': True, 'not preserved': False}

    ```

    The formulas of this lesson refuse a model with dropout: its masks are more saved tensors.

    ```pycon
    >>> activation_bytes(dropping.config, batch_size=2)
    Traceback (most recent call last):
    ...
    ValueError: the formulas count a model without dropout (its masks add bytes), got config.dropout=0.2

    ```

## Challenges

**1. The biggest batch that fits.** Write `max_batch_size(config, budget, seq_len=None, *, optimizer="adamw",
precision="float32", checkpointing=False)`: the largest batch size whose `training_memory` total is at most
`budget` bytes, or 0 if not even one sequence fits. Hint: every pile is an affine function of the batch size.

**2. A validation loop that holds nothing.** Write `evaluate(model, batches)`: the mean of
`model(idx, targets)[1]` over an iterable of `(idx, targets)` pairs, as a Python float, with dropout off,
saving not a single tensor for backward, and with the model back in the mode (train or eval) it came in.

Check an attempt with `check_max_batch_size(my_function)` (or `check_evaluate`), or put your functions in a
file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.advanced.memory import check_evaluate, check_max_batch_size, evaluate
>>> check_max_batch_size(max_batch_size)
>>> check_evaluate(evaluate)

```
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from torchenstein.advanced.hooks import SavedTensorLedger
from torchenstein.lab import PALETTE, new_figure, time_it
from torchenstein.transformers.gpt import GPT, GPTConfig, parameter_budget

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

MIB = 1024 * 1024
"""One mebibyte, $2^{20}$ bytes."""

# Parameters, gradients and optimiser state: bytes per parameter


OPTIMIZER_MOMENTS = {"sgd": 0, "sgd-momentum": 1, "adamw": 2}
"""How many running tensors, each the size of the parameters, an optimiser keeps: none, a momentum, two moments."""

PRECISIONS = {
    # Everything in float32: the weights, their gradients.
    "float32": {"parameters": 4, "gradients": 4, "master weights": 0},
    # torch.autocast: the weights and gradients stay float32 (the weights ARE the master copy); bfloat16
    # copies of the weights are made during the forward pass and counted with the activations.
    "bfloat16-autocast": {"parameters": 4, "gradients": 4, "master weights": 0},
    # The classic recipe (Megatron-LM, DeepSpeed): bfloat16 weights and gradients for the passes, and a
    # float32 master copy of the weights that the optimiser updates.
    "bfloat16-master": {"parameters": 2, "gradients": 2, "master weights": 4},
}
"""Bytes per parameter of the weights, their gradients and a float32 master copy, for each training precision."""


def bytes_per_parameter(optimizer: str = "adamw", precision: str = "float32") -> dict[str, int]:
    """The bytes each parameter costs in training, activations aside, split by what holds them.

    Optimiser state is kept in float32 (4 bytes a moment) in every precision: a moment updated by tiny
    steps in bfloat16 would round the steps away.

    Args:
        optimizer: ``"sgd"``, ``"sgd-momentum"`` or ``"adamw"`` (see `OPTIMIZER_MOMENTS`).
        precision: ``"float32"``, ``"bfloat16-autocast"`` or ``"bfloat16-master"`` (see `PRECISIONS`).

    Returns:
        ``{"parameters", "gradients", "master weights", "optimizer state"}`` to bytes per parameter.

    Raises:
        ValueError: if ``optimizer`` or ``precision`` is not one of the names above.

    Examples:
        >>> sum(bytes_per_parameter("adamw", "bfloat16-master").values())
        16
    """
    _check_choice("optimizer", optimizer, OPTIMIZER_MOMENTS)
    _check_choice("precision", precision, PRECISIONS)
    return {**PRECISIONS[precision], "optimizer state": 4 * OPTIMIZER_MOMENTS[optimizer]}


# Activations: what each operation saves for the backward pass


def block_activation_bytes(config: GPTConfig, batch_size: int, seq_len: int | None = None, *,
                           dtype: torch.dtype = torch.float32,
                           autocast_dtype: torch.dtype | None = None) -> dict[str, int]:
    r"""The bytes one `Block` of our GPT saves for its backward pass, tensor by tensor, by formula.

    Each memory block is counted once: ``q``, ``k`` and ``v`` are views of one ``c_attn`` output, and
    the attention's output is ``c_proj``'s input (the transpose back is already contiguous). The
    parameters are not counted: they exist anyway. Exact for the fused model (`GPT` with PyTorch's
    ``scaled_dot_product_attention``) with ``dropout=0.0``, as measured by `saved_activation_bytes`.

    Args:
        config: the model's `GPTConfig` (``dropout`` must be 0.0).
        batch_size: sequences per batch, $B$.
        seq_len: tokens per sequence, $T$ (default ``config.block_size``).
        dtype: the model's dtype, ``torch.float32`` or ``torch.float64``.
        autocast_dtype: ``None``, or ``torch.bfloat16``/``torch.float16`` for a float32 model run under
            ``torch.autocast``.

    Returns:
        ``{what is saved: bytes}``, in the order the forward pass saves them.

    Raises:
        ValueError: for a size below 1, ``seq_len`` above ``block_size``, dropout, or an unsupported dtype.

    Examples:
        >>> parts = block_activation_bytes(GPTConfig(n_embd=8, n_head=2, block_size=4), batch_size=1)
        >>> parts["q, k, v (c_attn's output)"], sum(parts.values())
        (384, 2144)
    """
    B, T = _check_sizes(config, batch_size, seq_len)
    C, H = config.n_embd, config.n_head
    # r: the residual stream's element size (the model's dtype, float32 under autocast too: a float32
    # stream plus a bfloat16 branch is float32). s: the element size the matrix products run in.
    r, s = _element_sizes(dtype, autocast_dtype)
    parts = {
        # LayerNorm's backward needs its input and, per position, the mean and 1/std it computed.
        "ln_1 input (the block's input)": r * B * T * C,
        "ln_1 mean and rstd": 2 * r * B * T,
        # A Linear saves its input for the weight's gradient (and its weight, a parameter, for the input's).
        "ln_1 output (c_attn's input)": s * B * T * C,
        # Fused attention saves q, k and v (three views of one (B, T, 3C) tensor), its output, and the
        # log-sum-exp of every row of scores, in float32 at least: enough to rebuild the softmax in backward
        # without ever storing the (B, H, T, T) weights.
        "q, k, v (c_attn's output)": 3 * s * B * T * C,
        "attention output (c_proj's input)": s * B * T * C,
        "attention logsumexp": max(s, 4) * B * H * T,
        # The residual sum x + attn(...) is a new tensor, and ln_2's input.
        "ln_2 input (x + attention)": r * B * T * C,
        "ln_2 mean and rstd": 2 * r * B * T,
        "ln_2 output (c_fc's input)": s * B * T * C,
        # GELU's derivative needs its input; the next Linear needs GELU's output: two (B, T, 4C) tensors.
        "GELU input (c_fc's output)": 4 * s * B * T * C,
        "GELU output (mlp.c_proj's input)": 4 * s * B * T * C,
    }
    if autocast_dtype is not None:
        # Autocast casts each float32 weight to bfloat16 for its matrix product, and the product saves the
        # copy: 3C^2 + C^2 + 4C^2 + 4C^2 new numbers per block, whatever the batch.
        parts["weight copies (autocast)"] = s * 12 * C * C
    return parts


def activation_bytes(config: GPTConfig, batch_size: int, seq_len: int | None = None, *,
                     dtype: torch.dtype = torch.float32, autocast_dtype: torch.dtype | None = None,
                     checkpointing: bool = False, targets: bool = True) -> dict[str, int]:
    """The bytes our whole GPT saves for its backward pass, by formula: embeddings, blocks and head.

    The token ids and targets are the caller's tensors and are not counted; the position ids the
    forward pass makes (int64) are.

    Args:
        config: the model's `GPTConfig`.
        batch_size: $B$, sequences per step.
        seq_len: $T$, tokens per sequence.
        dtype: the parameters' dtype.
        autocast_dtype: the autocast dtype of the forward pass (``None``: no autocast), as for
            `block_activation_bytes`.
        checkpointing: the blocks run under `checkpointed`, which keeps only each block's input.
        targets: the forward pass computes the loss (its log-probabilities are saved).

    Returns:
        ``{"embeddings", "blocks", "head"}`` to bytes.

    Examples:
        >>> config = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=4, vocab_size=16)
        >>> activation_bytes(config, batch_size=1)
        {'embeddings': 32, 'blocks': 4288, 'head': 548}
        >>> activation_bytes(config, batch_size=1, checkpointing=True)["blocks"]     # 2 inputs of (1, 4, 8)
        256
    """
    B, T = _check_sizes(config, batch_size, seq_len)
    _check_bool("checkpointing", checkpointing)
    _check_bool("targets", targets)
    C, V, L = config.n_embd, config.vocab_size, config.n_layer
    r, s = _element_sizes(dtype, autocast_dtype)
    if checkpointing:
        # checkpoint() keeps each block's input to run the block again in backward, and nothing inside.
        blocks = L * r * B * T * C
    else:
        blocks = L * sum(block_activation_bytes(config, B, T, dtype=dtype, autocast_dtype=autocast_dtype).values())
    # The position embedding's backward needs the positions, torch.arange(T): int64.
    embeddings = 8 * T
    # ln_f (input, mean, rstd, output = lm_head's input), lm_head's weight copy under autocast, and the loss:
    # cross-entropy is log_softmax (saves its output, in float32 at least) then nll_loss (saves a scalar
    # total weight besides the log-probabilities and the targets).
    head = r * B * T * C + 2 * r * B * T + s * B * T * C
    if autocast_dtype is not None:
        head += s * V * C
    if targets:
        wide = max(s, 4)
        head += wide * B * T * V + wide
    return {"embeddings": embeddings, "blocks": blocks, "head": head}


def saved_activation_bytes(model: GPT, idx: Tensor, targets: Tensor | None = None, *,
                           autocast_dtype: torch.dtype | None = None) -> int:
    """Measure: run ``model(idx, targets)`` once and count the memory autograd keeps for backward.

    Every tensor saved is recorded by the hooks lesson's `SavedTensorLedger`; each memory block is counted
    once, and the blocks of the parameters, ``idx`` and ``targets`` (which exist anyway) are left out.

    Args:
        model: our `GPT` (any module called as ``model(idx, targets)`` works).
        idx: token ids ``(B, T)``.
        targets: the ids to predict, or ``None``.
        autocast_dtype: run the forward pass under ``torch.autocast`` on ``idx``'s device in this dtype.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> config = GPTConfig(n_layer=2, n_embd=8, n_head=2, block_size=4, vocab_size=16)
        >>> idx = torch.randint(0, 16, (1, 4))
        >>> saved_activation_bytes(GPT(config), idx, idx)
        4868
    """
    _check_module(model)
    exclude = [*model.parameters(), idx] + ([] if targets is None else [targets])
    autocast = (torch.autocast(idx.device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    with SavedTensorLedger() as ledger, autocast:
        model(idx, targets)
    return ledger.distinct_bytes(exclude=exclude)


# Everything together


def training_memory(config: GPTConfig, batch_size: int, seq_len: int | None = None, *, optimizer: str = "adamw",
                    precision: str = "float32", checkpointing: bool = False) -> dict[str, int]:
    """The bytes one training step of our GPT needs, by component, by formula.

    Args:
        config: the model's `GPTConfig`.
        batch_size: sequences per batch.
        seq_len: tokens per sequence (default ``config.block_size``).
        optimizer: see `bytes_per_parameter`.
        precision: ``"float32"`` or ``"bfloat16-autocast"`` (float32 weights, bfloat16 autocast).
        checkpointing: checkpoint every block (see `checkpointed`).

    Returns:
        ``{"parameters", "gradients", "master weights", "optimizer state", "activations",
        "recomputed block"}`` to bytes. ``"activations"`` is what the forward pass leaves for backward;
        ``"recomputed block"`` is what one block saves again while checkpointing recomputes it (0 without).

    Raises:
        ValueError: for an unknown optimizer, a precision other than the two above, or bad sizes.

    Examples:
        >>> memory = training_memory(GPTConfig(), batch_size=1)
        >>> memory["optimizer state"] == 8 * GPT(GPTConfig()).num_parameters()
        True
    """
    per_parameter = bytes_per_parameter(optimizer, precision)
    if precision == "bfloat16-master":
        raise ValueError("precision must be 'float32' or 'bfloat16-autocast' here (activations are counted for "
                         "those two), got 'bfloat16-master'")
    n = sum(parameter_budget(config).values())
    memory = {part: n * nbytes for part, nbytes in per_parameter.items()}
    autocast_dtype = torch.bfloat16 if precision == "bfloat16-autocast" else None
    memory["activations"] = sum(activation_bytes(config, batch_size, seq_len, autocast_dtype=autocast_dtype,
                                                 checkpointing=checkpointing).values())
    memory["recomputed block"] = (sum(block_activation_bytes(config, batch_size, seq_len,
                                                             autocast_dtype=autocast_dtype).values())
                                  if checkpointing else 0)
    return memory


def format_memory_table(columns: dict[str, dict[str, int]]) -> str:
    """Lay out ``{column: {row: bytes}}`` as a text table in MiB, with a total row.

    Examples:
        >>> print(format_memory_table({"a": {"x": MIB, "y": 2 * MIB}}))
        component       a
        x            1.00
        y            2.00
        total        3.00
    """
    rows = list(dict.fromkeys(row for column in columns.values() for row in column))
    width = max(len(row) for row in [*rows, "component", "total"]) + 2
    widths = [max(len(name), 8) + 2 for name in columns]
    lines = ["component".ljust(width) + "".join(name.rjust(w) for name, w in zip(columns, widths, strict=True))]
    for row in [*rows, "total"]:
        cells = [sum(c.values()) if row == "total" else c.get(row, 0) for c in columns.values()]
        lines.append(row.ljust(width) + "".join(f"{v / MIB:.2f}".rjust(w) for v, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


# Activation checkpointing


@contextlib.contextmanager
def checkpointed(modules: Iterable[nn.Module], *, preserve_rng_state: bool = True) -> Iterator[list[nn.Module]]:
    """While in the block, run each module's forward under ``torch.utils.checkpoint.checkpoint``.

    Inside a checkpointed forward nothing is saved for backward except the module's inputs; backward runs
    the forward again to rebuild what it needs. The modules' own forward is wrapped (and unwrapped on
    leaving the block), so names, ``state_dict`` and hooks stay as they were; a backward pass may run
    after the block ends.

    Args:
        modules: the modules to checkpoint, e.g. ``model.transformer.h``.
        preserve_rng_state: restore the random state before recomputing, so dropout draws the same masks.

    Yields:
        The modules, as a list.

    Raises:
        TypeError: if an element is not an ``nn.Module`` or ``preserve_rng_state`` not a bool.
        ValueError: if a module's forward is already wrapped (checkpointing twice).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> block = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        >>> x = torch.randn(2, 4, requires_grad=True)
        >>> with checkpointed([block]):
        ...     y = block(x)
        >>> y.sum().backward()                          # runs block's forward again, then its backward
        >>> x.grad.shape
        torch.Size([2, 4])
    """
    modules = _check_modules(modules)
    _check_bool("preserve_rng_state", preserve_rng_state)
    try:
        for module in modules:
            # module.forward is the bound method of the class: calling it runs forward without going through
            # module(...), so the module's own hooks still fire once, from the outer call. An instance
            # attribute named forward hides the class's for this one object.
            module.forward = functools.partial(checkpoint, module.forward, use_reentrant=False,
                                               preserve_rng_state=preserve_rng_state)
        yield modules
    finally:
        for module in modules:
            # Deleting the instance attribute lets the class's forward show through again.
            module.__dict__.pop("forward", None)


def matmul_flops(model: GPT, idx: Tensor, targets: Tensor, *, checkpointing: bool = False) -> dict[str, int]:
    """Count the FLOPs of the matrix products of one forward and backward pass, with or without checkpointing.

    Uses ``torch.utils.flop_counter.FlopCounterMode`` and keeps only the matrix products (``mm``, ``addmm``,
    ``bmm``), which it counts on every torch and every device; the attention kernels are left out.

    Returns:
        ``{"forward": flops, "forward + backward": flops}``.

    Examples:
        >>> config = GPTConfig(n_layer=1, n_embd=8, n_head=2, block_size=4, vocab_size=16)
        >>> idx = torch.zeros(1, 4, dtype=torch.long)
        >>> matmul_flops(GPT(config), idx, idx)
        {'forward': 7168, 'forward + backward': 21504}
    """
    from torch.utils.flop_counter import FlopCounterMode

    _check_module(model)
    _check_bool("checkpointing", checkpointing)
    counts = {}
    blocks = model.transformer.h if checkpointing else []
    for label in ("forward", "forward + backward"):
        model.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as counter, checkpointed(blocks):
            loss = model(idx, targets)[1]
            if label != "forward":
                loss.backward()
        per_op = counter.get_flop_counts()["Global"]
        counts[label] = sum(n for op, n in per_op.items() if str(op).split(".")[-1] in ("mm", "addmm", "bmm"))
    model.zero_grad(set_to_none=True)
    return counts


def time_checkpointing(config: GPTConfig | None = None, batch_size: int = 8, *, repeat: int = 5) -> dict[str, float]:
    """Benchmark: the median seconds of one forward and backward pass, without and with checkpointing.

    On the CPU, with `torchenstein.lab.time_it`. Not run by the tests as a claim: timings are your
    machine's. Try ``time_checkpointing()`` and compare the ratio with `matmul_flops`'s.

    Returns:
        ``{"plain": seconds, "checkpointed": seconds}``.

    Examples:
        >>> times = time_checkpointing(GPTConfig(n_layer=1, n_embd=8, n_head=2, block_size=4), 1, repeat=1)
        >>> list(times)
        ['plain', 'checkpointed']
    """
    config = GPTConfig() if config is None else config
    B, T = _check_sizes(config, batch_size, None)
    generator = torch.Generator().manual_seed(0)
    model = GPT(config)
    idx, targets = torch.randint(0, config.vocab_size, (2, B, T), generator=generator)

    def step(blocks: Iterable[nn.Module]) -> None:
        with checkpointed(blocks):
            loss = model(idx, targets)[1]
        loss.backward()
        model.zero_grad(set_to_none=True)

    return {"plain": time_it(lambda: step([]), repeat=repeat),
            "checkpointed": time_it(lambda: step(model.transformer.h), repeat=repeat)}


def plot_memory_by_batch_size(config: GPTConfig | None = None, batch_sizes: Iterable[int] = range(1, 65),
                              seq_len: int | None = None) -> Figure:
    """Draw a float32 AdamW training step's memory by component against the batch size, without and with checkpointing.

    Args:
        config: the model (default: the capstone GPT).
        batch_sizes: the batch sizes on the horizontal axis.
        seq_len: tokens per sequence (default ``config.block_size``).

    Returns:
        A figure with two panels of stacked areas, from `training_memory`.

    Examples:
        >>> fig = plot_memory_by_batch_size(batch_sizes=[1, 2, 4])
        >>> len(fig.axes)
        2
    """
    config = GPTConfig() if config is None else config
    batch_sizes = list(batch_sizes)
    for b in batch_sizes:
        _check_sizes(config, b, seq_len)
    fig, axes = new_figure(1, 2, width=9.5, height=3.6)
    for ax, checkpointing in zip(axes, (False, True), strict=True):
        tables = [training_memory(config, b, seq_len, checkpointing=checkpointing) for b in batch_sizes]
        parts = [part for part in tables[0] if part != "master weights" and (checkpointing or part != "recomputed block")]
        stacks = [[table[part] / MIB for table in tables] for part in parts]
        ax.stackplot(batch_sizes, *stacks, labels=parts, colors=PALETTE[: len(parts)], alpha=0.85)
        title = "with checkpointing (every block)" if checkpointing else "without checkpointing"
        ax.set(title=title, xlabel="batch size (sequences)", ylabel="MiB")
    axes[1].set_ylim(axes[0].get_ylim())
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].legend(loc="upper left", fontsize=8)
    return fig


# On a GPU


def cuda_training_step_memory(config: GPTConfig | None = None, batch_size: int = 12, seq_len: int | None = None, *,
                              checkpointing: bool = False, device: str | torch.device = "cuda") -> dict[str, int]:
    """Measure one float32 AdamW training step of our GPT on a GPU with the caching allocator's counters.

    A first step runs untimed (it creates the optimiser state and cuBLAS's workspace). Then, for the second
    step: the bytes allocated before it, the growth over the forward pass, and the peak growth over
    the whole step (``torch.cuda.max_memory_allocated``, reset before it).

    Returns:
        ``{"before", "after forward", "peak"}``: ``"before"`` is absolute, the other two relative to it.

    Raises:
        RuntimeError: if CUDA is not available.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("cuda_training_step_memory needs a CUDA GPU, and torch.cuda.is_available() is False")
    config = GPTConfig() if config is None else config
    B, T = _check_sizes(config, batch_size, seq_len)
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    idx, targets = torch.randint(0, config.vocab_size, (2, B, T), generator=generator).to(device)
    model = GPT(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    blocks = model.transformer.h if checkpointing else []
    result = {}
    for step in range(2):
        if step == 1:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            result["before"] = torch.cuda.memory_allocated(device)
        with checkpointed(blocks):
            logits, loss = model(idx, targets)
        if step == 1:
            result["after forward"] = torch.cuda.memory_allocated(device) - result["before"]
        del logits
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del loss
    torch.cuda.synchronize(device)
    result["peak"] = torch.cuda.max_memory_allocated(device) - result["before"]
    return result


# Challenges


def max_batch_size(config: GPTConfig, budget: int, seq_len: int | None = None, *, optimizer: str = "adamw",
                   precision: str = "float32", checkpointing: bool = False) -> int:
    """Challenge solution: the largest batch size whose `training_memory` total fits in ``budget`` bytes.

    Returns:
        That batch size, or 0 if not even one sequence fits.

    Examples:
        >>> config = GPTConfig()
        >>> b = max_batch_size(config, 256 * MIB)
        >>> sum(training_memory(config, b).values()) <= 256 * MIB < sum(training_memory(config, b + 1).values())
        True
    """
    # Every component is an affine function of the batch size: a fixed part (weights, gradients, optimiser
    # state, the position ids, the scalar of the loss) plus a part per sequence. Two evaluations give both.
    def total(b: int) -> int:
        return sum(training_memory(config, b, seq_len, optimizer=optimizer, precision=precision,
                                   checkpointing=checkpointing).values())

    per_sequence = total(2) - total(1)
    fixed = total(1) - per_sequence
    return max(0, (budget - fixed) // per_sequence)


def check_max_batch_size(candidate: Callable[..., int]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``max_batch_size``.

    Examples:
        >>> check_max_batch_size(max_batch_size)
    """
    small = GPTConfig(n_layer=2, n_embd=16, n_head=2, block_size=8, vocab_size=32)
    cases = [(GPTConfig(), {}), (GPTConfig(), {"checkpointing": True}), (small, {"optimizer": "sgd"}),
             (small, {"precision": "bfloat16-autocast", "seq_len": 5}), (small, {"optimizer": "sgd-momentum"})]
    for config, options in cases:
        def total(b: int, config: GPTConfig = config, options: dict = options) -> int:
            return sum(training_memory(config, b, **options).values())

        for expected in (1, 7, 40):
            # The budget exactly at the total fits; one byte less does not.
            for budget, answer in ((total(expected), expected), (total(expected) - 1, expected - 1),
                                   (total(expected + 1) - 1, expected)):
                got = candidate(config, budget, **options)
                assert got == answer, (f"{config} with {options or 'the defaults'} and a budget of {budget} bytes: "
                                       f"expected batch size {answer}, got {got!r}")
        got = candidate(config, total(1) // 2, **options)
        assert got == 0, f"{config}, {options}: a budget too small for one sequence must give 0, got {got!r}"


def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Challenge solution: the mean loss of ``model(idx, targets)`` over ``batches``, saving nothing for backward.

    The model is evaluated in eval mode (dropout off) and put back in the mode it was in.

    Examples:
        >>> model = GPT(GPTConfig(n_layer=1, n_embd=8, n_head=2, block_size=4, vocab_size=16))
        >>> idx = torch.zeros(2, 4, dtype=torch.long)
        >>> isinstance(evaluate(model, [(idx, idx)]), float), model.training
        (True, True)
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        # no_grad: no graph, nothing saved. .item(): a Python float, which holds no tensor and no graph.
        with torch.no_grad():
            for idx, targets in batches:
                total += model(idx, targets)[1].item()
                count += 1
    finally:
        model.train(was_training)
    return total / count


def check_evaluate(candidate: Callable[[nn.Module, Iterable[tuple[Tensor, Tensor]]], float]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``evaluate``.

    Examples:
        >>> check_evaluate(evaluate)
    """
    generator = torch.Generator().manual_seed(0)
    config = GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=32, dropout=0.5)
    model = GPT(config)
    batches = [tuple(torch.randint(0, 32, (2, 3, 8), generator=generator)) for _ in range(3)]
    model.eval()
    with torch.no_grad():
        expected = sum(model(idx, targets)[1].item() for idx, targets in batches) / len(batches)
    for training in (True, False):
        model.train(training)
        with SavedTensorLedger() as ledger:
            got = candidate(model, iter(batches))
        assert type(got) is float, f"return a Python float (loss.item()), not {type(got).__name__}"
        assert abs(got - expected) < 1e-6, (f"expected the mean loss {expected:.6f} in eval mode (dropout off), got "
                                            f"{got:.6f}: did you call model.eval()?")
        assert not ledger.records, (f"{len(ledger.records)} tensors were saved for a backward pass that never "
                                    f"comes: evaluate under torch.no_grad()")
        assert model.training is training, (f"the model was in {'train' if training else 'eval'} mode before and "
                                            f"must be put back in it")


# Checks, kept out of the way of the ideas above


def _element_sizes(dtype: object, autocast_dtype: object) -> tuple[int, int]:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if autocast_dtype not in (None, torch.bfloat16, torch.float16):
        raise ValueError(f"autocast_dtype must be None, torch.bfloat16 or torch.float16, got {autocast_dtype!r}")
    if autocast_dtype is not None and dtype != torch.float32:
        raise ValueError(f"autocast_dtype needs a float32 model (its master weights), got dtype={dtype}")
    r = torch.finfo(dtype).bits // 8
    return r, r if autocast_dtype is None else torch.finfo(autocast_dtype).bits // 8


def _check_sizes(config: object, batch_size: object, seq_len: object) -> tuple[int, int]:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    if config.dropout != 0.0:
        raise ValueError(f"the formulas count a model without dropout (its masks add bytes), got "
                         f"config.dropout={config.dropout}")
    seq_len = config.block_size if seq_len is None else seq_len
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if seq_len > config.block_size:
        raise ValueError(f"seq_len must be at most block_size={config.block_size}, got {seq_len}")
    return batch_size, seq_len


def _check_choice(name: str, value: object, choices: dict) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def _check_modules(modules: object) -> list[nn.Module]:
    if isinstance(modules, nn.Module) and not isinstance(modules, (nn.ModuleList, nn.Sequential)):
        raise TypeError(f"modules must be an iterable of modules, got the single module {type(modules).__name__}; "
                        f"wrap it in a list")
    modules = list(modules)
    for module in modules:
        if not isinstance(module, nn.Module):
            raise TypeError(f"modules must hold nn.Module objects, got an element of type {type(module).__name__}")
        if "forward" in module.__dict__:
            raise ValueError(f"modules holds a {type(module).__name__} whose forward is already replaced (checkpointed "
                             f"twice?); leave the first `checkpointed` block first")
    return modules
