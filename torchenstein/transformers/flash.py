r"""
# Attention That Fits in Memory: FlashAttention by Hand

!!! torchenstein "The Professor speaks"
    Attention compares every query with every key, and the naive recipe writes the whole $L \times S$
    table of scores down before it reads a single value. At a few thousand tokens that table is larger
    than the model that made it! Tonight we never write it down. We walk over it in tiles, keep two
    numbers per query, and still get PyTorch's answer to the last digit, gradients included. This is the
    trick inside FlashAttention, and it fits on one blackboard.

**You will learn to**

- compute a softmax in one pass with a *running* maximum and a *running* sum, and prove it equal to
  `torch.softmax`;
- tile attention over blocks of `block_q` queries and `block_k` keys without ever holding the $L \times S$
  matrix, skip the causal tiles above the diagonal, and prove it equal to
  `F.scaled_dot_product_attention` (`is_causal`, `scale`, boolean masks, $L \ne S$ both ways, odd sizes,
  float16 and bfloat16);
- write the backward pass that *recomputes* the attention weights from one saved number per query, the
  log-sum-exp, as a custom `torch.autograd.Function`;
- measure what autograd keeps for the backward pass with `saved_tensors_hooks`;
- ask PyTorch which of its attention kernels it runs, and choose one with `sdpa_kernel`.

## The matrix that does not fit

The [attention lesson](../attention/index.md) computed $\operatorname{softmax}(QK^\top \cdot
\text{scale})\,V$ by writing down the scores, one number per (query, key) pair: an $L \times S$ matrix per
head. Autograd then keeps matrices of that size for the backward pass. For a model with 32 heads reading
32,768 tokens in float16, one such matrix per layer is

```pycon
>>> heads, L, bytes_per_number = 32, 32_768, 2
>>> heads * L * L * bytes_per_number / 2**30      # GiB, per layer, per sequence
64.0

```

The output is only $L \times d_v$ per head. Nothing forces us to hold the middle of the computation
all at once, if we can compute the softmax without seeing a whole row at once.

## The online softmax

A softmax divides $e^{x_j}$ by the sum over the whole row. Computed naively, $e^{1000}$ overflows, so every
implementation subtracts the row's maximum $m$ first (the result is unchanged, because the factor
$e^{-m}$ cancels between numerator and denominator):

$$
\operatorname{softmax}(x)_j = \frac{e^{x_j - m}}{\ell}, \qquad m = \max_j x_j, \qquad
\ell = \sum_j e^{x_j - m} .
$$

That looks like two passes over the row: one for $m$, one for $\ell$. The **online softmax** (Milakov and
Gimelshein, 2018) reads the row in blocks and keeps both as running values. When a block raises the
maximum from $m$ to $m' = \max(m, \max_{j \in \text{block}} x_j)$, the sum so far was measured against the
old maximum, so it is **rescaled** by $e^{m - m'}$ before the new terms join it:

$$
\ell' = \ell \, e^{m - m'} + \sum_{j \in \text{block}} e^{x_j - m'} .
$$

After the last block, $m$ and $\ell$ are exactly the maximum and the sum of the whole row, and
$m + \log \ell$ is its **log-sum-exp** $\log \sum_j e^{x_j}$, the logarithm of the softmax's denominator. [`online_softmax`][torchenstein.transformers.flash.online_softmax]
does this along the last dimension:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torchenstein.transformers.flash import online_softmax
>>> x = torch.tensor([1.0, 3.0, -2.0, 5.0, 0.5, 4.0, 1000.0])
>>> torch.testing.assert_close(online_softmax(x, block_size=2), torch.softmax(x, dim=-1))
>>> _ = torch.manual_seed(0)
>>> rows = torch.randn(3, 10)
>>> {b: torch.allclose(online_softmax(rows, block_size=b), torch.softmax(rows, dim=-1)) for b in (1, 3, 10)}
{1: True, 3: True, 10: True}

```

The $1000$ did not overflow: every exponent is taken after subtracting a maximum.

## Tiled attention

Attention goes one step further. Query $i$ does not need the weights themselves, only the weighted sum
of values $\sum_j \operatorname{softmax}(s_i)_j\, v_j$. So it keeps, beside its running $m_i$ and
$\ell_i$, a running *unnormalised* output $a_i = \sum_j e^{s_{ij} - m_i} v_j$ (the **accumulator**),
rescaled by the same factor whenever the maximum moves:

$$
\alpha = e^{m - m'}, \qquad \ell' = \alpha\, \ell + \sum_{j} p_j, \qquad a' = \alpha\, a + \sum_{j} p_j\, v_j,
\qquad p_j = e^{s_j - m'} ,
$$

and divides once at the very end: $\operatorname{out}_i = a_i / \ell_i$. Cut the queries into blocks of
`block_q` rows and the keys into blocks of `block_k`; a **tile** is the `block_q` $\times$ `block_k`
rectangle of scores between one block of each. The largest things ever held are one tile of scores and
the `block_q` $\times d_v$ accumulator. This is the forward pass of FlashAttention-2 (Dao, 2023), written
with PyTorch operations instead of one fused GPU **kernel** (a kernel is one compiled routine the device
runs; *fused* means the whole computation happens inside it, with no intermediate written to memory): [`flash_attention_forward`][torchenstein.transformers.flash.flash_attention_forward] takes the
arguments of `F.scaled_dot_product_attention` (`attn_mask`, `is_causal`, `scale`) plus the two block sizes,
and returns the output, the log-sum-exp of every query and the number of tiles it computed and skipped.

```pycon
>>> from torchenstein.transformers.flash import flash_attention_forward
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 11, 8), torch.randn(2, 3, 11, 5)   # (B, h, T, d)
>>> result = flash_attention_forward(q, k, v, block_q=4, block_k=3)
>>> result.output.shape, result.logsumexp.shape
(torch.Size([2, 3, 7, 5]), torch.Size([2, 3, 7]))
>>> torch.testing.assert_close(result.output, F.scaled_dot_product_attention(q, k, v))
>>> scores = q @ k.transpose(-2, -1) / 8**0.5                            # (B, h, L, S), only to check
>>> torch.testing.assert_close(result.logsumexp, torch.logsumexp(scores, dim=-1))
>>> mask = torch.rand(7, 11) > 0.3                                       # True = takes part
>>> torch.testing.assert_close(flash_attention_forward(q, k, v, attn_mask=mask, scale=0.2, block_q=3).output,
...                            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.2))

```

Seven queries and eleven keys are divisible by neither block size: the last tile of each is simply smaller.
A boolean `attn_mask` is sliced tile by tile like the scores. (A mask given as a tensor is itself
$L \times S$; real kernels take masks as *rules*, such as "causal", and the next section does the same.)

## Causal tiles, and the two diagonals

With `is_causal=True`, query $i$ sees key $j$ only when $j \le i$. A tile whose *first* key comes after
its *last* query is hidden entirely: its scores would all be $-\infty$, so the kernel never computes it.
Tiles entirely below the diagonal need no mask at all, and only the tiles the diagonal crosses pay for
one. About half of the work disappears:

```pycon
>>> x = torch.randn(1, 2, 64, 16)
>>> result = flash_attention_forward(x, x, x, is_causal=True, block_q=16, block_k=16)
>>> {"computed": result.tiles_computed, "skipped": result.tiles_skipped}
{'computed': 10, 'skipped': 6}
>>> torch.testing.assert_close(result.output, F.scaled_dot_product_attention(x, x, x, is_causal=True))

```

When $L \ne S$ the diagonal can sit in two places. PyTorch's `is_causal=True` aligns it to the
**top-left** corner: query $i$ sees keys $0..i$. When the $L$ queries are the *last* $L$ tokens of the
$S$ keys (decoding with a cache of earlier keys, or a prompt processed in chunks), the diagonal belongs
in the **bottom-right** corner: query $i$ sees keys $0..i + S - L$. PyTorch spells that
`attn_mask=causal_lower_right(L, S)` from `torch.nn.attention.bias` (a prototype API, present in every
PyTorch this course supports; the code guards the import anyway), and so does ours: the mask is a rule,
never an $L \times S$ tensor.

```pycon
>>> from torch.nn.attention.bias import causal_lower_right
>>> q, k, v = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)   # L=3, S=6
>>> bottom_right = causal_lower_right(3, 6)
>>> ours = flash_attention_forward(q, k, v, attn_mask=bottom_right, block_q=2, block_k=2)
>>> torch.testing.assert_close(ours.output, F.scaled_dot_product_attention(q, k, v, attn_mask=bottom_right))
>>> top_left = flash_attention_forward(q, k, v, is_causal=True, block_q=2, block_k=2)
>>> torch.testing.assert_close(top_left.output, F.scaled_dot_product_attention(q, k, v, is_causal=True))
>>> {"top-left skipped": top_left.tiles_skipped, "bottom-right skipped": ours.tiles_skipped}
{'top-left skipped': 3, 'bottom-right skipped': 0}

```

## Half precision, accumulated in float32

Real kernels read float16 or bfloat16 inputs but keep the scores, $m$, $\ell$ and the accumulator in
float32, and round to the input's dtype once, at the end. Ours does the same (float64 inputs stay float64).
Against `F.scaled_dot_product_attention` in the same half dtype the two differ by about one rounding of
the output (the tests also check that ours is never further from the exact answer than PyTorch's kernel,
beyond one rounding), so they compare with `atol=rtol=2e-3` for float16 and `atol=rtol=2e-2` for bfloat16
(the spacing of representable numbers near 1 is $2^{-10}$ and $2^{-7}$):

```pycon
>>> q, k, v = torch.randn(3, 2, 4, 33, 16).unbind(0)
>>> for dtype, tol in ((torch.float16, 2e-3), (torch.bfloat16, 2e-2)):
...     h = [t.to(dtype) for t in (q, k, v)]
...     ours = flash_attention_forward(*h, is_causal=True, block_q=8, block_k=8)
...     theirs = F.scaled_dot_product_attention(*h, is_causal=True)
...     print(dtype, ours.output.dtype, ours.logsumexp.dtype, torch.allclose(ours.output, theirs, atol=tol, rtol=tol))
torch.float16 torch.float16 torch.float32 True
torch.bfloat16 torch.bfloat16 torch.float32 True

```

## The backward pass: recompute, do not remember

The gradient of attention needs the weights $P = \operatorname{softmax}(S)$, an $L \times S$ matrix. A
naive implementation saves it; FlashAttention saves only the log-sum-exp $\operatorname{lse}_i = m_i +
\log \ell_i$, one number per query, and **recomputes** each tile of weights when the backward pass
needs it, $P_{ij} = e^{s_{ij} - \operatorname{lse}_i}$. Recomputing a tile costs one more small matrix
product; not storing it saves the whole matrix. With $dO$ the gradient of the output, the chain rule
through $O = PV$ and through the softmax gives (with $D_i = \sum_c dO_{ic}\, O_{ic}$, one more number per
query, which equals $\sum_j P_{ij}\, dP_{ij}$):

$$
dV = P^\top dO, \qquad dP = dO\, V^\top, \qquad dS = P \circ (dP - D), \qquad
dQ = \text{scale}\cdot dS\, K, \qquad dK = \text{scale}\cdot dS^\top Q .
$$

Every one of these is a sum over tiles, so the backward pass walks the same tiles as the forward and
skips the same causal ones. [`flash_attention_backward`][torchenstein.transformers.flash.flash_attention_backward]
computes it; [`FlashAttention`][torchenstein.transformers.flash.FlashAttention] is the
`torch.autograd.Function` (the [autograd lesson](../../tensors/autograd/index.md) wrote one) that wires
both passes together, saving the inputs, the output and the log-sum-exp, nothing of size $L \times S$; and
[`flash_attention`][torchenstein.transformers.flash.flash_attention] is the drop-in function:

```pycon
>>> from torchenstein.transformers.flash import flash_attention
>>> _ = torch.manual_seed(0)
>>> q, k, v = (torch.randn(1, 2, 9, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
>>> out = flash_attention(q, k, v, is_causal=True, block_q=4, block_k=4)
>>> grad_output = torch.randn_like(out)
>>> ours = torch.autograd.grad(out, (q, k, v), grad_output)
>>> reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)
>>> theirs = torch.autograd.grad(reference, (q, k, v), grad_output)
>>> for a, b in zip(ours, theirs):
...     torch.testing.assert_close(a, b)
>>> out.grad_fn.name()
'FlashAttentionBackward'
>>> small = [t.detach()[..., :3, :2].requires_grad_() for t in (q, k, v)]
>>> torch.autograd.gradcheck(lambda *t: flash_attention(*t, is_causal=True, block_q=2, block_k=2), small)
True

```

## What autograd keeps

Autograd remembers, for each operation, the tensors its backward will need (the
[autograd lesson](../../tensors/autograd/index.md) met these *saved tensors*). The context manager
`torch.autograd.graph.saved_tensors_hooks(pack_hook, unpack_hook)` calls `pack_hook` on every tensor as it
is saved, which makes a ledger of them easy.
[`saved_for_backward_bytes`][torchenstein.transformers.flash.saved_for_backward_bytes] adds up the bytes
saved by one call, leaving out the inputs and the output (they exist anyway, whoever saves them). The
attention lesson's from-scratch version keeps two float32 matrices of $L \times S$ (the softmax saves
its output, and the product with $V$ saves the weights it multiplied, a copy made by the guard against
empty rows); ours keeps one float32 number per query and head:

```pycon
>>> from torchenstein.transformers.attention import scaled_dot_product_attention
>>> from torchenstein.transformers.flash import saved_for_backward_bytes
>>> B, h, L, d = 1, 4, 256, 16
>>> q, k, v = (torch.randn(B, h, L, d, requires_grad=True) for _ in range(3))
>>> naive = saved_for_backward_bytes(scaled_dot_product_attention, q, k, v)
>>> tiled = saved_for_backward_bytes(flash_attention, q, k, v)
>>> {"naive / (h L^2 4 bytes)": round(naive / (h * L * L * 4), 2), "tiled / (h L 4 bytes)": tiled / (h * L * 4)}
{'naive / (h L^2 4 bytes)': 2.0, 'tiled / (h L 4 bytes)': 1.0}

```

One grows with $L^2$, the other with $L$; the picture makes the difference plain.

![Bytes saved for the backward pass against sequence length, log-log: the naive attention's line rises with slope two and matches the formula of two L-by-L float32 matrices per head; the tiled attention's line rises with slope one and matches one float32 number per query, thousands of times lower at the longest length.](plot_attention_memory.svg)

The *working* memory of the forward pass shrinks the same way: the largest temporaries of the tiled loop
are one `block_q` $\times$ `block_k` tile of scores (and of weights) and the `block_q` $\times d_v$
accumulator, whatever $L$ and $S$ are.

## Which kernel does PyTorch run?

`F.scaled_dot_product_attention` is one function with several implementations behind it, called
**backends**, listed by the enum `torch.nn.attention.SDPBackend`: `MATH` (the plain recipe, written with
ordinary operations), `FLASH_ATTENTION`, `EFFICIENT_ATTENTION` (the memory-efficient kernel of xFormers),
`CUDNN_ATTENTION` (NVIDIA's, in recent releases) and more. At each call PyTorch picks the first one whose
conditions the inputs meet (device, dtype, head size, mask, dropout).
[`sdpa_backend`][torchenstein.transformers.flash.sdpa_backend] asks PyTorch's own chooser which backend a
call would run, and the context manager `torch.nn.attention.sdpa_kernel(backends)` (PyTorch 2.3 and later)
restricts the choice. On this CPU:

```pycon
>>> from torch.nn.attention import SDPBackend, sdpa_kernel
>>> from torchenstein.transformers.flash import sdpa_backend
>>> q = k = v = torch.randn(1, 2, 8, 16)
>>> {"default": sdpa_backend(q, k, v), "with dropout": sdpa_backend(q, k, v, dropout_p=0.1)}
{'default': 'FLASH_ATTENTION', 'with dropout': 'MATH'}
>>> with sdpa_kernel(SDPBackend.MATH):
...     print(sdpa_backend(q, k, v))
MATH
>>> with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
...     F.scaled_dot_product_attention(q, k, v)
Traceback (most recent call last):
...
RuntimeError: No viable backend for scaled_dot_product_attention was found...

```

So PyTorch's CPU build has a flash-style kernel of its own (it keeps the log-sum-exp too, as the tests
measure with the same ledger), and falls back to the plain recipe when it must, here for dropout. On a
CUDA GPU the candidates and their conditions differ by GPU, dtype and PyTorch release, so do not take
anyone's word for it (not even a professor's): run `sdpa_backend` on your own `.cuda()` tensors in
float16 and in float32 and read the answer. The tests compare `flash_attention` with PyTorch's on CUDA
where a GPU exists.

**Where it differs from PyTorch.** Ours is plain Python looping over tiles, so it is far slower than a
fused kernel (the point is the algorithm, not the speed: time both with `torchenstein.lab.time_it`). It
takes boolean masks and `causal_lower_right`/`causal_upper_left` biases but no float masks, no dropout,
no `enable_gqa`, and query, key and value must share their leading (batch, head) dimensions; it refuses
what it does not do with a clear error. Its backward pass is not itself differentiable (no second
derivatives). Rows whose keys are all hidden give a zero output and zero gradients, as PyTorch does from
release 2.5 on (older releases returned `NaN`), and a log-sum-exp of $-\infty$ (the log of an empty sum).

```pycon
>>> flash_attention(q, k, v, attn_mask=torch.zeros(8, 8))
Traceback (most recent call last):
...
TypeError: attn_mask must be a bool tensor or a causal bias from torch.nn.attention.bias, got a tensor of dtype torch.float32

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: a running maximum of minus infinity"
    Hammer's online softmax subtracts the running maximum without a second thought. But when every key a
    query has seen *so far* is masked, that maximum is $-\infty$, and $e^{-\infty - (-\infty)}$ is
    $e^{\text{NaN}}$. One hidden block at the start of a row (padding on the left, a sliding window that
    has moved past the first keys) and the whole row is `NaN`, although the softmax is perfectly defined. The fix: where
    the maximum is still $-\infty$, subtract $0$ instead. Every term is then $e^{-\infty} = 0$, exactly
    right. The same guard makes a row whose keys are *all* hidden come out as zeros ($\ell = 0$, so the
    division is skipped), which is what `F.scaled_dot_product_attention` returns on this PyTorch.

    ```pycon
    >>> x = torch.tensor([float("-inf"), float("-inf"), 1.0, 2.0])
    >>> m = torch.tensor(float("-inf"))
    >>> ell = torch.tensor(0.0)
    >>> for block in x.split(2):                            # Hammer's loop, no guard
    ...     m_new = torch.maximum(m, block.max())
    ...     ell = ell * torch.exp(m - m_new) + torch.exp(block - m_new).sum()
    ...     m = m_new
    >>> ell
    tensor(nan)
    >>> torch.testing.assert_close(online_softmax(x, block_size=2), torch.softmax(x, dim=-1))
    >>> hidden = torch.tensor([[True, True, False], [False, False, False]])   # row 1 sees nothing
    >>> q, k, v = torch.randn(2, 4), torch.randn(3, 4), torch.randn(3, 4)
    >>> ours = flash_attention_forward(q, k, v, attn_mask=hidden, block_k=2)
    >>> theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=hidden)
    >>> {"ours": ours.output[1].tolist(), "PyTorch": theirs[1].tolist(), "lse": ours.logsumexp[1].item()}
    {'ours': [0.0, 0.0, 0.0, 0.0], 'PyTorch': [0.0, 0.0, 0.0, 0.0], 'lse': -inf}

    ```

!!! hammer "Dr. Hammer's trap: forgetting to rescale the accumulator"
    Hammer rescales the running sum $\ell$ when the maximum moves but forgets the accumulator, which was
    summed against the old maximum too. With a single key block nothing moves and his test passes; with
    several blocks the early values get too much weight.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> q, k, v = torch.randn(4, 8), torch.randn(6, 8), torch.randn(6, 3)
    >>> def hammer_attention(q, k, v, block_k):
    ...     m, ell, acc = torch.full((4,), float("-inf")), torch.zeros(4), torch.zeros(4, 3)
    ...     for k_j, v_j in zip(k.split(block_k), v.split(block_k)):
    ...         s = q @ k_j.T / 8**0.5
    ...         m_new = torch.maximum(m, s.amax(-1))
    ...         p = torch.exp(s - m_new[:, None])
    ...         ell = ell * torch.exp(m - m_new) + p.sum(-1)
    ...         acc = acc + p @ v_j                        # should be: exp(m - m_new)[:, None] * acc + ...
    ...         m = m_new
    ...     return acc / ell[:, None]
    >>> reference = F.scaled_dot_product_attention(q, k, v)
    >>> {b: torch.allclose(hammer_attention(q, k, v, b), reference, atol=1e-5) for b in (6, 2)}
    {6: True, 2: False}
    >>> torch.allclose(flash_attention_forward(q, k, v, block_k=2).output, reference, atol=1e-5)
    True

    ```

!!! hammer "Dr. Hammer's trap: the top-left diagonal in a cache"
    Decoding one token at a time, Hammer feeds his new query ($L = 1$) and all $S = 5$ cached keys to
    `F.scaled_dot_product_attention(..., is_causal=True)`. PyTorch aligns the diagonal top-left, so his
    newest token sees only the *first* key of the text and nothing it wrote since. No error, no warning,
    just a model that forgets everything after the first word. The new token is the *last* one, so the
    diagonal belongs bottom-right.

    ```pycon
    >>> from torch.nn.attention.bias import causal_lower_right
    >>> q, k, v = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    >>> hammer = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    >>> torch.allclose(hammer, v[..., :1, :])                # one visible key: its value, unmixed
    True
    >>> right = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(1, 5))
    >>> torch.testing.assert_close(right, F.scaled_dot_product_attention(q, k, v))   # sees all five
    >>> torch.testing.assert_close(flash_attention(q, k, v, attn_mask=causal_lower_right(1, 5)), right)

    ```

## Challenges

**1. Merge two halves of attention.** Split the keys and values of one attention call into two disjoint
halves, attend to each half separately, and you hold two outputs `output_a`, `output_b` (shape
`(..., L, d_v)`) with their log-sum-exps `lse_a`, `lse_b` (shape `(..., L)`). Write
`merge_attention_states(output_a, lse_a, output_b, lse_b)` returning `(output, lse)`, the attention over
all the keys, using only these four tensors. This is how split-key decoding and ring attention combine
partial results on different GPUs. A half whose keys were all hidden has an output of zeros and an lse of
$-\infty$; the merge must not turn that into `NaN`.

**2. Count the skipped tiles.** Write `causal_tiles_skipped(L, S, block_q, block_k, lower_right=False)`
returning how many tiles a causal tiled kernel skips: those whose every (query, key) pair is hidden, for
the top-left diagonal or (with `lower_right=True`) the bottom-right one. Do it with integer arithmetic,
not by building a mask. Raise `ValueError` when a size is below 1.

Check an attempt with `check_merge_attention_states(my_function)` or `check_causal_tiles_skipped`, or put
your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's
answers pass:

```pycon
>>> from torchenstein.transformers.flash import (
...     causal_tiles_skipped, check_causal_tiles_skipped, check_merge_attention_states, merge_attention_states)
>>> check_merge_attention_states(merge_attention_states)
>>> check_causal_tiles_skipped(causal_tiles_skipped)
>>> causal_tiles_skipped(64, 64, 16, 16)
6

```
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.autograd.graph import saved_tensors_hooks

from torchenstein.lab import new_figure
from torchenstein.tensors.broadcasting import broadcast_shapes
from torchenstein.transformers.attention import _check_qkv_tensors

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _causal_bias_module() -> ModuleType | None:
    """``torch.nn.attention.bias``, PyTorch's masks described by a rule instead of a tensor (PyTorch 2.2
    and later), or ``None`` where it is missing.

    Imported when first needed: it loads TorchDynamo, a second more for every process that imports this
    lesson, though most never build a causal bias. A mask that *is* one was made by that module, so
    recognising it needs no import (see ``sys.modules`` in `_check_attention`).
    """
    try:
        import torch.nn.attention.bias as bias
    except ImportError:  # pragma: no cover - older PyTorch
        return None
    return bias

try:  # PyTorch 2.3 and later
    from torch.nn.attention import SDPBackend
except ImportError:  # pragma: no cover - older PyTorch
    SDPBackend = None

INF = float("inf")


def online_softmax(input: Tensor, block_size: int = 4) -> Tensor:
    """Softmax over the last dimension, reading it ``block_size`` entries at a time.

    The running maximum ``m`` and the running sum ``ell`` (of ``exp(x - m)``) are updated block by block;
    the sum is rescaled whenever the maximum grows.

    Args:
        input: a floating-point tensor, shape ``(..., n)``.
        block_size: how many entries each step reads, at least 1.

    Returns:
        ``torch.softmax(input, dim=-1)``, computed in one pass for the statistics.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.
        ValueError: if ``input`` is 0-d or ``block_size`` is below 1.

    Examples:
        >>> online_softmax(torch.tensor([0.0, 0.0, 0.0, 0.0]), block_size=3)
        tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    _check_online(input, block_size)
    m = torch.full(input.shape[:-1], -INF, dtype=input.dtype, device=input.device)  # running maximum
    ell = torch.zeros_like(m)  # running sum of exp(x - m)
    for block in input.split(block_size, dim=-1):
        m_new = torch.maximum(m, block.amax(dim=-1))
        # While every entry so far is -inf the maximum is -inf too; subtracting 0 instead keeps
        # exp(-inf - m) = 0 rather than exp(nan) (Dr. Hammer's first trap).
        m_safe = m_new.masked_fill(m_new == -INF, 0.0)
        # The old sum was measured against the old maximum: rescale it before adding the new block.
        ell = ell * torch.exp(m - m_safe) + torch.exp(block - m_safe[..., None]).sum(dim=-1)
        m = m_new
    return torch.exp(input - m[..., None]) / ell[..., None]


class FlashForward(NamedTuple):
    """What the tiled forward pass returns."""

    output: Tensor
    """The attention output, shape ``(..., L, d_v)``, in the inputs' dtype."""
    logsumexp: Tensor
    """``m + log(ell)`` for every query, shape ``(..., L)``, in the accumulation dtype; ``-inf`` for a query
    whose keys are all hidden."""
    tiles_computed: int
    """How many ``block_q`` x ``block_k`` tiles of scores were computed."""
    tiles_skipped: int
    """How many tiles were skipped because the causal rule hides all of them."""


def flash_attention_forward(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    is_causal: bool = False, scale: float | None = None, *, block_q: int = 64, block_k: int = 64,
) -> FlashForward:
    r"""The tiled forward pass of attention (FlashAttention-2's), never holding the $L \times S$ scores.

    Args:
        query: shape $(\dots, L, d_k)$.
        key: shape $(\dots, S, d_k)$, with the same leading dims as ``query``.
        value: shape $(\dots, S, d_v)$, with the same leading dims as ``query``.
        attn_mask: ``None``, a bool mask broadcastable to $(\dots, L, S)$ (``True`` = takes part), or a
            ``CausalBias`` from ``torch.nn.attention.bias`` (``causal_lower_right(L, S)`` or
            ``causal_upper_left(L, S)``).
        is_causal: the top-left aligned causal mask, as PyTorch's ``is_causal``.
        scale: the factor the scores are multiplied by; ``None`` means $1/\sqrt{d_k}$.
        block_q: queries per tile.
        block_k: keys per tile.

    Returns:
        A `FlashForward`: the output, the log-sum-exp per query, and the tiles computed and skipped.

    Raises:
        TypeError: if an input, the mask or a block size has the wrong type or dtype.
        ValueError: if the shapes do not fit, a block size is below 1, or both a mask and ``is_causal``
            are given.

    Examples:
        >>> q, k, v = torch.randn(3, 5, 4).unbind(0)
        >>> torch.testing.assert_close(flash_attention_forward(q, k, v, block_q=2, block_k=2).output,
        ...                            torch.nn.functional.scaled_dot_product_attention(q, k, v))
    """
    mask, diagonal, scale = _check_attention(query, key, value, attn_mask, is_causal, scale, block_q, block_k)
    L, S, d_v = query.size(-2), key.size(-2), value.size(-1)
    batch = query.shape[:-2]
    acc_dtype = _accumulation_dtype(query.dtype)
    output = query.new_empty(*batch, L, d_v)
    logsumexp = torch.empty(*batch, L, dtype=acc_dtype, device=query.device)
    computed = skipped = 0
    for i0 in range(0, L, block_q):
        i1 = min(i0 + block_q, L)
        q_i = query[..., i0:i1, :].to(acc_dtype)  # (..., bq, d_k)
        # Three running values per query of the block: maximum, sum, and the unnormalised output.
        m = torch.full((*batch, i1 - i0), -INF, dtype=acc_dtype, device=query.device)  # (..., bq)
        ell = torch.zeros_like(m)  # (..., bq)
        acc = torch.zeros(*batch, i1 - i0, d_v, dtype=acc_dtype, device=query.device)  # (..., bq, d_v)
        for j0 in range(0, S, block_k):
            j1 = min(j0 + block_k, S)
            if _tile_hidden(diagonal, i1, j0):
                skipped += 1
                continue
            computed += 1
            s = (q_i @ key[..., j0:j1, :].to(acc_dtype).transpose(-2, -1)) * scale  # (..., bq, bk)
            visible = _tile_visible(mask, diagonal, i0, i1, j0, j1, query.device)
            if visible is not None:
                s = s.masked_fill(~visible, -INF)
            m_new = torch.maximum(m, s.amax(dim=-1))
            # A query whose keys so far are all hidden has m_new = -inf: subtract 0 instead, so every
            # term is exp(-inf) = 0 and never exp(nan).
            m_safe = m_new.masked_fill(m_new == -INF, 0.0)
            p = torch.exp(s - m_safe[..., None])  # (..., bq, bk)
            # The old sum and the old accumulator were both measured against the old maximum.
            alpha = torch.exp(m - m_safe)  # (..., bq)
            ell = alpha * ell + p.sum(dim=-1)
            acc = alpha[..., None] * acc + p @ value[..., j0:j1, :].to(acc_dtype)  # (..., bq, d_v)
            m = m_new
        # One division at the very end; a query that saw no key at all (ell = 0) keeps its zero output.
        empty = ell == 0
        output[..., i0:i1, :] = (acc / ell.masked_fill(empty, 1.0)[..., None]).to(output.dtype)
        logsumexp[..., i0:i1] = (m + torch.log(ell)).masked_fill(empty, -INF)
    return FlashForward(output, logsumexp, computed, skipped)


def flash_attention_backward(
    grad_output: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor, logsumexp: Tensor,
    attn_mask: Tensor | None = None, is_causal: bool = False, scale: float | None = None,
    *, block_q: int = 64, block_k: int = 64,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The tiled backward pass: gradients of query, key and value from the saved log-sum-exp alone.

    Each tile of attention weights is recomputed as $P = e^{s - \operatorname{lse}}$; nothing of size
    $L \times S$ is read or kept. The outer loop runs over key blocks, whose gradients are summed in
    place; the query gradient is summed across them, as FlashAttention-2 does.

    Args:
        grad_output: the gradient of the output, shape $(\dots, L, d_v)$.
        query: as given to `flash_attention_forward`.
        key: as given to `flash_attention_forward`.
        value: as given to `flash_attention_forward`.
        output: the forward pass's output.
        logsumexp: the forward pass's log-sum-exp, shape $(\dots, L)$.
        attn_mask: as given to `flash_attention_forward`.
        is_causal: as given to `flash_attention_forward`.
        scale: as given to `flash_attention_forward`.
        block_q: queries per tile.
        block_k: keys per tile.

    Returns:
        ``(grad_query, grad_key, grad_value)``, each in its input's shape and dtype.

    Examples:
        >>> q, k, v = torch.randn(3, 5, 4).unbind(0)
        >>> forward = flash_attention_forward(q, k, v, block_q=2, block_k=2)
        >>> grads = flash_attention_backward(torch.ones(5, 4), q, k, v, *forward[:2], block_q=2, block_k=2)
        >>> [tuple(g.shape) for g in grads]
        [(5, 4), (5, 4), (5, 4)]
    """
    mask, diagonal, scale = _check_attention(query, key, value, attn_mask, is_causal, scale, block_q, block_k)
    L, S = query.size(-2), key.size(-2)
    acc_dtype = logsumexp.dtype
    # D_i = sum_c dO_ic O_ic, one number per query: the term the softmax's backward subtracts.
    D = (grad_output.to(acc_dtype) * output.to(acc_dtype)).sum(dim=-1)  # (..., L)
    # A query that saw no key has lse = -inf and only -inf scores: subtracting 0 gives P = 0, not nan.
    lse = logsumexp.masked_fill(logsumexp == -INF, 0.0)  # (..., L)
    grad_query = torch.zeros(query.shape, dtype=acc_dtype, device=query.device)
    grad_key = torch.zeros(key.shape, dtype=acc_dtype, device=key.device)
    grad_value = torch.zeros(value.shape, dtype=acc_dtype, device=value.device)
    for j0 in range(0, S, block_k):
        j1 = min(j0 + block_k, S)
        k_j = key[..., j0:j1, :].to(acc_dtype)  # (..., bk, d_k)
        v_j = value[..., j0:j1, :].to(acc_dtype)  # (..., bk, d_v)
        for i0 in range(0, L, block_q):
            i1 = min(i0 + block_q, L)
            if _tile_hidden(diagonal, i1, j0):
                continue
            q_i = query[..., i0:i1, :].to(acc_dtype)  # (..., bq, d_k)
            do_i = grad_output[..., i0:i1, :].to(acc_dtype)  # (..., bq, d_v)
            s = (q_i @ k_j.transpose(-2, -1)) * scale  # (..., bq, bk)
            visible = _tile_visible(mask, diagonal, i0, i1, j0, j1, query.device)
            if visible is not None:
                s = s.masked_fill(~visible, -INF)
            # The weights of this tile, recomputed from one saved number per query.
            p = torch.exp(s - lse[..., i0:i1, None])  # (..., bq, bk)
            grad_value[..., j0:j1, :] += p.transpose(-2, -1) @ do_i
            dp = do_i @ v_j.transpose(-2, -1)  # (..., bq, bk)
            ds = p * (dp - D[..., i0:i1, None])  # the softmax's backward, tile by tile
            grad_query[..., i0:i1, :] += (ds @ k_j) * scale
            grad_key[..., j0:j1, :] += (ds.transpose(-2, -1) @ q_i) * scale
    return grad_query.to(query.dtype), grad_key.to(key.dtype), grad_value.to(value.dtype)


class FlashAttention(torch.autograd.Function):
    """Tiled attention with the recomputing backward pass, as one autograd operation.

    Saved for backward: query, key, value, the output and the log-sum-exp; nothing of size ``L x S``.
    """

    @staticmethod
    def forward(ctx, query, key, value, attn_mask, is_causal, scale, block_q, block_k):
        result = flash_attention_forward(query, key, value, attn_mask, is_causal, scale,
                                         block_q=block_q, block_k=block_k)
        ctx.save_for_backward(query, key, value, result.output, result.logsumexp)
        # The mask is an input or a rule, never a new L x S tensor; keep it as it came.
        ctx.options = (attn_mask, is_causal, scale, block_q, block_k)
        return result.output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        attn_mask, is_causal, scale, block_q, block_k = ctx.options
        grads = flash_attention_backward(grad_output, *ctx.saved_tensors, attn_mask, is_causal, scale,
                                         block_q=block_q, block_k=block_k)
        # No gradient for the mask, the flags or the block sizes.
        return (*grads, None, None, None, None, None)


def flash_attention(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    is_causal: bool = False, scale: float | None = None, *, block_q: int = 64, block_k: int = 64,
) -> Tensor:
    r"""Tiled attention with a tiled backward pass: a stand-in for ``F.scaled_dot_product_attention``.

    Takes the arguments of `flash_attention_forward` (no dropout, no float masks).

    Returns:
        The output, shape $(\dots, L, d_v)$, differentiable once.

    Examples:
        >>> q, k, v = (torch.randn(6, 4, requires_grad=True) for _ in range(3))
        >>> flash_attention(q, k, v, is_causal=True, block_q=4, block_k=4).sum().backward()
        >>> q.grad.shape
        torch.Size([6, 4])
    """
    return FlashAttention.apply(query, key, value, attn_mask, is_causal, scale, block_q, block_k)


def saved_for_backward_bytes(fn: Callable[..., Tensor], *inputs: Tensor) -> int:
    """Count the bytes autograd saves for the backward pass of ``fn(*inputs)``, beyond inputs and output.

    Every tensor saved during the call passes through the pack hook of ``saved_tensors_hooks``; tensors
    that share storage are counted once, and storage shared with an input or the output is left out.

    Args:
        fn: the function to run, returning one tensor.
        *inputs: its tensor arguments (at least one should require grad, or nothing is saved).

    Returns:
        The number of bytes.

    Examples:
        >>> x = torch.randn(1000, requires_grad=True)
        >>> saved_for_backward_bytes(torch.exp, x)        # exp saves its output: nothing extra
        0
        >>> saved_for_backward_bytes(lambda t: t.exp().sum(), x)   # exp's output is now a temporary
        4000
    """
    saved: list[Tensor] = []

    def pack(tensor: Tensor) -> Tensor:
        saved.append(tensor)
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        output = fn(*inputs)
    # Storage is what costs memory: two views of one tensor share it and are counted once.
    known = {t.untyped_storage().data_ptr() for t in (*inputs, output)}
    extra = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved}
    return sum(size for pointer, size in extra.items() if pointer not in known)


def sdpa_backend(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
) -> str:
    """Name the backend ``F.scaled_dot_product_attention`` would run for these arguments.

    It asks ``torch._fused_sdp_choice``, the function PyTorch's own dispatcher consults (a private
    one, so the answer is ``"unknown"`` where it is missing). Inside ``sdpa_kernel(...)`` the answer
    respects the restriction.

    Returns:
        A member name of ``torch.nn.attention.SDPBackend`` such as ``"MATH"`` or ``"FLASH_ATTENTION"``.

    Examples:
        >>> sdpa_backend(*torch.randn(3, 1, 4, 8).unbind(0)) in {"MATH", "FLASH_ATTENTION", "unknown"}
        True
    """
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None or SDPBackend is None:  # pragma: no cover - older PyTorch
        return "unknown"
    index = choose(query, key, value, attn_mask, dropout_p, is_causal, scale=scale)
    names = {member.value: name for name, member in SDPBackend.__members__.items()}
    return names.get(index, "unknown")


def plot_attention_memory(*, lengths: tuple[int, ...] = (64, 128, 256, 512, 1024), d: int = 16) -> Figure:
    """Draw the bytes saved for backward by naive and tiled attention against sequence length (one head).

    The naive one is the attention lesson's from-scratch ``scaled_dot_product_attention``; both are
    measured with `saved_for_backward_bytes` (self-attention, ``L = S``, float32) and drawn beside
    their formulas, two ``L x L`` float32 matrices and one float32 per query.

    Args:
        lengths: the sequence lengths to measure.
        d: the head width.

    Returns:
        The figure.

    Examples:
        >>> fig = plot_attention_memory(lengths=(16, 32))
        >>> len(fig.axes[0].lines)
        4
    """
    from torchenstein.transformers.attention import scaled_dot_product_attention

    generator = torch.Generator().manual_seed(0)
    naive, tiled = [], []
    for L in lengths:
        q, k, v = (torch.randn(1, 1, L, d, generator=generator).requires_grad_() for _ in range(3))
        naive.append(saved_for_backward_bytes(scaled_dot_product_attention, q, k, v))
        tiled.append(saved_for_backward_bytes(flash_attention, q, k, v))
    fig, (ax,) = new_figure(1, 1, width=6.4, height=3.8)
    ax.loglog(lengths, naive, "o", label="naive, measured")
    ax.loglog(lengths, tiled, "s", label="tiled, measured")
    ax.loglog(lengths, [2 * L * L * 4 for L in lengths], "--", label=r"$2 \cdot L^2 \cdot 4$ bytes")
    ax.loglog(lengths, [L * 4 for L in lengths], ":", label=r"$L \cdot 4$ bytes (the log-sum-exp)")
    ax.set(xlabel="sequence length L (= S)", ylabel="bytes saved for backward, one head",
           title="What attention keeps for its backward pass")
    ax.legend(fontsize=8)
    return fig


def merge_attention_states(output_a: Tensor, lse_a: Tensor, output_b: Tensor, lse_b: Tensor) -> tuple[Tensor, Tensor]:
    """Challenge solution: combine attention over two disjoint sets of keys into attention over both.

    Args:
        output_a: attention over the first set, shape ``(..., L, d_v)``.
        lse_a: its log-sum-exp, shape ``(..., L)``; ``-inf`` where that set was entirely hidden.
        output_b: attention over the second set, shape ``(..., L, d_v)``.
        lse_b: its log-sum-exp, shape ``(..., L)``.

    Returns:
        ``(output, lse)`` of attention over both sets; a query that saw nothing in either keeps zeros
        and ``-inf``.

    Examples:
        >>> out, lse = merge_attention_states(torch.ones(1, 2), torch.tensor([0.0]),
        ...                                   torch.zeros(1, 2), torch.tensor([0.0]))
        >>> out, lse
        (tensor([[0.5000, 0.5000]]), tensor([0.6931]))
    """
    # The log-sum-exp of the union is the log of the two sums added: logaddexp.
    lse = torch.logaddexp(lse_a, lse_b)  # (..., L)
    # Each output was normalised by its own sum; its share of the union is exp(lse_x - lse). Where both
    # halves saw nothing lse is -inf, and subtracting 0 instead keeps the shares at 0.
    lse_safe = lse.masked_fill(lse == -INF, 0.0)
    share_a = torch.exp(lse_a - lse_safe)[..., None]  # (..., L, 1)
    share_b = torch.exp(lse_b - lse_safe)[..., None]
    return share_a * output_a + share_b * output_b, lse


def check_merge_attention_states(candidate: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """Check an attempt at ``merge_attention_states``; raise ``AssertionError`` saying which case failed.

    Examples:
        >>> check_merge_attention_states(merge_attention_states)
    """
    generator = torch.Generator().manual_seed(5)
    cases = [("even split", 4, 6, 3), ("uneven split", 5, 9, 2), ("one key on one side", 3, 4, 1)]
    for name, L, S, split in cases:
        q, k, v = (torch.randn(2, n, d, generator=generator, dtype=torch.float64) for n, d in ((L, 8), (S, 8), (S, 3)))
        # A row hidden entirely from the first half, and (in the last case) from everything.
        mask = torch.ones(L, S, dtype=torch.bool)
        mask[0, :split] = False
        if name == "one key on one side":
            mask[1] = False
        full = flash_attention_forward(q, k, v, attn_mask=mask)
        a = flash_attention_forward(q, k[:, :split], v[:, :split], attn_mask=mask[:, :split])
        b = flash_attention_forward(q, k[:, split:], v[:, split:], attn_mask=mask[:, split:])
        got = candidate(a.output, a.logsumexp, b.output, b.logsumexp)
        assert isinstance(got, tuple) and len(got) == 2, f"{name}: return (output, lse), got {type(got).__name__}"
        output, lse = got
        assert output.shape == full.output.shape, f"{name}: output shape {tuple(output.shape)}, expected {tuple(full.output.shape)}"
        assert not output.isnan().any(), f"{name}: NaN in the output; a half that saw no key has lse = -inf"
        assert torch.allclose(output, full.output), (
            f"{name}: wrong output; weight each half by exp(lse_half - lse_total), lse_total = logaddexp(...)")
        assert torch.equal(lse.isinf(), full.logsumexp.isinf()) and torch.allclose(
            lse[lse.isfinite()], full.logsumexp[full.logsumexp.isfinite()]), f"{name}: wrong lse, expected logaddexp"


def causal_tiles_skipped(L: int, S: int, block_q: int, block_k: int, lower_right: bool = False) -> int:
    """Challenge solution: how many tiles a causal tiled kernel skips, by integer arithmetic.

    Args:
        L: number of queries.
        S: number of keys.
        block_q: queries per tile.
        block_k: keys per tile.
        lower_right: align the diagonal bottom-right (query ``i`` sees keys up to ``i + S - L``) instead of
            top-left.

    Returns:
        The number of tiles whose every (query, key) pair is hidden.

    Raises:
        ValueError: if a size is below 1.

    Examples:
        >>> causal_tiles_skipped(4, 4, 2, 2), causal_tiles_skipped(2, 4, 2, 2, lower_right=True)
        (1, 0)
    """
    for name, n in (("L", L), ("S", S), ("block_q", block_q), ("block_k", block_k)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be an int of at least 1, got {n!r}")
    diagonal = S - L if lower_right else 0
    skipped = 0
    for i0 in range(0, L, block_q):
        # The last query of this block row sees keys up to last_query + diagonal; a key block is hidden
        # when it starts after that, i.e. at a start j0 = n * block_k >= first_hidden_key.
        last_query = min(i0 + block_q, L) - 1
        first_hidden_key = max(0, last_query + diagonal + 1)
        first_hidden_block = math.ceil(first_hidden_key / block_k)
        skipped += max(0, math.ceil(S / block_k) - first_hidden_block)
    return skipped


def check_causal_tiles_skipped(candidate: Callable[..., int]) -> None:
    """Check an attempt at ``causal_tiles_skipped`` against the tiled kernel's own count.

    Examples:
        >>> check_causal_tiles_skipped(causal_tiles_skipped)
    """
    for L, S, bq, bk in ((4, 4, 2, 2), (64, 64, 16, 16), (7, 11, 4, 3), (11, 7, 3, 4), (1, 5, 1, 2),
                         (5, 1, 2, 2), (9, 9, 9, 9), (6, 6, 1, 1), (3, 8, 2, 5)):
        q, k = torch.zeros(L, 1), torch.zeros(S, 1)
        for lower_right in (False, True):
            if lower_right and _causal_bias_module() is None:  # pragma: no cover - older PyTorch
                continue
            mask = _causal_bias(L, S, lower_right)
            expected = flash_attention_forward(q, k, k, attn_mask=mask, block_q=bq, block_k=bk).tiles_skipped
            got = candidate(L, S, bq, bk, lower_right=lower_right)
            assert got == expected, (f"causal_tiles_skipped({L}, {S}, {bq}, {bk}, lower_right={lower_right}) "
                                     f"returned {got!r}, expected {expected}")
    try:
        candidate(4, 4, 0, 2)
    except ValueError:
        return
    raise AssertionError("causal_tiles_skipped(4, 4, 0, 2) should raise ValueError: block_q must be at least 1")


# The helpers below keep the loops above short: tile tests, dtypes and argument checks.


def _causal_bias(L: int, S: int, lower_right: bool):
    """A ``CausalBias`` for the given alignment, without the warning PyTorch gives when ``L > S``."""
    import warnings

    from torch.nn.attention.bias import causal_lower_right, causal_upper_left

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return causal_lower_right(L, S) if lower_right else causal_upper_left(L, S)


def _tile_hidden(diagonal: int | None, i1: int, j0: int) -> bool:
    """A causal tile is hidden when its first key comes after the last key its last query may see."""
    return diagonal is not None and j0 > i1 - 1 + diagonal


def _tile_visible(mask, diagonal, i0, i1, j0, j1, device) -> Tensor | None:
    """The (..., bq, bk) bool mask of one tile, or None when every pair of the tile takes part."""
    if mask is not None:
        return mask[..., i0:i1, j0:j1]
    if diagonal is None or j1 - 1 <= i0 + diagonal:  # no rule, or a tile wholly below the diagonal
        return None
    rows = torch.arange(i0, i1, device=device)[:, None]
    cols = torch.arange(j0, j1, device=device)[None, :]
    return cols <= rows + diagonal  # (bq, bk)


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half precision accumulates in float32, as the real kernels do; float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def _check_online(input, block_size) -> None:
    if not isinstance(input, Tensor) or not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {getattr(input, 'dtype', type(input).__name__)}")
    if input.dim() == 0:
        raise ValueError("input must have at least one dim to take the softmax over, got a 0-d tensor")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an int of at least 1, got {block_size!r}")


def _check_attention(query, key, value, attn_mask, is_causal, scale, block_q, block_k):
    """Check every argument; return ``(mask, diagonal, scale)``, the forms the loops use.

    ``mask`` is a bool tensor expanded (a view, no copy) to end in ``(L, S)``, or ``None``; ``diagonal``
    is ``None`` without a causal rule, else the offset ``d`` such that query ``i`` sees keys ``j <= i + d``.
    """
    _check_qkv_tensors(query, key, value)
    if key.shape[:-2] != query.shape[:-2] or value.shape[:-2] != query.shape[:-2]:
        shapes = f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        raise ValueError(f"query, key and value must share their leading (batch, head) dims, got {shapes}")
    if key.size(-1) != query.size(-1) or value.size(-2) != key.size(-2):
        shapes = f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        raise ValueError(f"query, key and value must be (..., L, d_k), (..., S, d_k), (..., S, d_v), got {shapes}")
    for name, n in (("block_q", block_q), ("block_k", block_k)):
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"{name} must be an int, got {n!r}")
        if n < 1:
            raise ValueError(f"{name} must be at least 1, got {n}")
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {is_causal!r}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise TypeError(f"scale must be a number or None, got {scale!r}")
    if scale is None:
        if query.size(-1) == 0:
            raise ValueError("query has d_k=0, so the default scale 1/sqrt(d_k) is undefined; pass scale")
        scale = 1.0 / math.sqrt(query.size(-1))
    L, S = query.size(-2), key.size(-2)
    if attn_mask is not None and is_causal:
        raise ValueError("pass either attn_mask or is_causal=True, not both (PyTorch refuses the pair too)")
    if is_causal:
        return None, 0, scale
    if attn_mask is None:
        return None, None, scale
    bias = sys.modules.get("torch.nn.attention.bias")  # a causal bias exists only once this is imported
    if bias is not None and isinstance(attn_mask, bias.CausalBias):
        if (attn_mask.seq_len_q, attn_mask.seq_len_kv) != (L, S):
            raise ValueError(f"attn_mask is a causal bias for (L, S) = ({attn_mask.seq_len_q}, "
                             f"{attn_mask.seq_len_kv}), but the inputs have (L, S) = ({L}, {S})")
        return None, (S - L if attn_mask.variant == bias.CausalVariant.LOWER_RIGHT else 0), scale
    if not isinstance(attn_mask, Tensor) or attn_mask.dtype != torch.bool:
        got = f"a tensor of dtype {attn_mask.dtype}" if isinstance(attn_mask, Tensor) else type(attn_mask).__name__
        raise TypeError(f"attn_mask must be a bool tensor or a causal bias from torch.nn.attention.bias, got {got}")
    target = (*query.shape[:-2], L, S)
    try:
        fits = broadcast_shapes(attn_mask.shape, target) == torch.Size(target)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"attn_mask must broadcast to the scores' shape {target}, got shape {tuple(attn_mask.shape)}")
    # Give the mask its (L, S) ending as a view, so tiles can be sliced from it whatever its shape.
    mask = attn_mask.reshape((1,) * max(0, 2 - attn_mask.dim()) + tuple(attn_mask.shape))
    return mask.expand(*mask.shape[:-2], L, S), None, scale
