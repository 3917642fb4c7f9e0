r"""
# Scaled Dot-Product Attention: The Art of Selective Obsession

!!! torchenstein "The Professor speaks"
    Every token asks a question, and every token holds up a sign saying what it knows. Attention is the
    machine that matches questions to signs and hands over the goods: two matrix products and one softmax,
    nothing more. Today we build it by hand and hold it against PyTorch's own, number for number and
    gradient for gradient, because in my laboratory "close enough" is how Dr. Hammer talks.

**You will learn to**

- compute attention scores $QK^\top$ and turn them into weights with a softmax over the *key* axis;
- explain, and measure, why the scores are divided by $\sqrt{d_k}$;
- hide the future with a causal mask and padding with a padding mask, in PyTorch's polarity;
- survive rows where every key is hidden, without a single `NaN`;
- write `scaled_dot_product_attention` from scratch and prove it equal to PyTorch's, gradients included;
- read an attention map;
- write attention, and a whole multi-head attention, as einsums, and prove them equal to
  `torch.nn.MultiheadAttention`.

## Queries, keys and values

Attention is a *soft* dictionary lookup. A Python `dict` compares your query with its keys, finds the one
that is equal and returns its value. Attention relaxes "equal" into "similar": each query is compared with
**every** key and receives a weighted mix of **all** the values, the weights saying how well each key matched.

- the **query** $Q$ has shape $(L, d_k)$: $L$ positions that are looking for something;
- the **key** $K$ has shape $(S, d_k)$: $S$ positions announcing what they hold;
- the **value** $V$ has shape $(S, d_v)$: what each of those $S$ positions hands over when chosen.

Queries and keys are compared, so they share the width $d_k$; values may have their own width $d_v$.
$L$ and $S$ may differ (a translator's $L$ output words querying the $S$ input words), and any leading
dimensions, batch and heads, simply ride along.

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torchenstein.transformers.attention import scaled_dot_product_attention
>>> _ = torch.manual_seed(0)
>>> query = torch.randn(2, 3, 8)    # (B, L, d_k)
>>> key = torch.randn(2, 5, 8)      # (B, S, d_k)
>>> value = torch.randn(2, 5, 4)    # (B, S, d_v)
>>> scaled_dot_product_attention(query, key, value).shape
torch.Size([2, 3, 4])

```

## Scores: every query against every key

Similarity is the dot product: the score of query $i$ for key $j$ is $q_i \cdot k_j$, and all of them at once
are one matrix product, $QK^\top$ of shape $(L, S)$. Use `key.transpose(-2, -1)`: it swaps only the last two
dimensions and leaves batch and heads alone.

```pycon
>>> scores = query @ key.transpose(-2, -1)   # (B, L, S)
>>> scores.shape
torch.Size([2, 3, 5])
>>> torch.allclose(scores[1, 2, 4], query[1, 2] @ key[1, 4])
True

```

## Softmax over the key axis

Each query has one unit of attention to spend, shared among the $S$ keys. So the softmax runs along the
**last** dimension, the key axis, and every row of the weight matrix sums to one:

$$
A_{ij} = \frac{e^{s_{ij}}}{\sum_{j'} e^{s_{ij'}}}, \qquad \operatorname{out}_i = \sum_j A_{ij}\, v_j .
$$

```pycon
>>> weights = torch.softmax(scores / 8**0.5, dim=-1)   # (B, L, S)
>>> torch.allclose(weights.sum(dim=-1), torch.ones(2, 3))
True
>>> torch.allclose(weights @ value, F.scaled_dot_product_attention(query, key, value), atol=1e-6)
True

```

## Why divide by $\sqrt{d_k}$

Take queries and keys whose entries are independent with mean 0 and variance 1. A score
$q \cdot k = \sum_{m=1}^{d_k} q_m k_m$ is a sum of $d_k$ such products, each of variance 1, so its variance is
$d_k$ and its spread grows like $\sqrt{d_k}$. Softmax hates a wide input: the biggest score swallows the
whole row and the weights turn nearly one-hot. A one-hot softmax is also a dead one, since its Jacobian
$\operatorname{diag}(a) - aa^\top$ vanishes when $a$ is one-hot, so no gradient reaches the queries and keys.
Dividing by $\sqrt{d_k}$ puts the spread back at 1, whatever the width.
[`softmax_saturation`][torchenstein.transformers.attention.softmax_saturation] measures both effects: the
standard deviation of the scores and the average largest weight in a row of keys (`num_keys=16` of them).

```pycon
>>> from torchenstein.transformers.attention import softmax_saturation
>>> for d_k in (4, 64, 1024):
...     std, top = softmax_saturation(d_k, scaled=False)
...     std_scaled, top_scaled = softmax_saturation(d_k, scaled=True)
...     print(d_k, round(std / d_k**0.5, 1), round(top, 2), round(std_scaled, 1), round(top_scaled, 2))
4 1.0 0.43 1.0 0.24
64 1.0 0.85 1.0 0.24
1024 1.0 0.96 1.0 0.25

```

Unscaled, the spread is $\sqrt{d_k}$ and the top weight creeps towards 1; scaled, the spread is 1 and the
top weight stays put.

![Left: the spread of raw scores grows like the square root of d while scaled scores stay at one. Right: the largest softmax weight approaches one for raw scores and stays flat for scaled ones.](plot_softmax_saturation.svg)

## The whole recipe, from scratch

With an optional mask $M$ added to the scores (next section), the whole machine is

$$
\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}} + M\right) V .
$$

[`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention] takes
exactly the arguments of `torch.nn.functional.scaled_dot_product_attention` (`attn_mask`, `dropout_p`,
`is_causal`, `scale`) with the same meaning, so one can replace the other in a single line.
[`attention_with_weights`][torchenstein.transformers.attention.attention_with_weights] also returns the
weights, for plotting and for peeking. PyTorch's version also knows `enable_gqa` in recent releases, for
grouped queries: the third challenge below computes their scores, and the multi-head lesson the rest.

```pycon
>>> from torchenstein.transformers.attention import attention_with_weights
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(3, 2, 4, 6, 8).unbind(0)    # each (B, heads, T, d_k)
>>> torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
...                            F.scaled_dot_product_attention(q, k, v, is_causal=True))
>>> out, weights = attention_with_weights(q, k, v, scale=0.5)
>>> weights.shape
torch.Size([2, 4, 6, 6])
>>> torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.5))

```

The test suite (`tests/test_attention.py`) proves the agreement far more thoroughly: shapes with
$L \ne S$, length-1 sequences and several leading dimensions; boolean, float, causal, padding and
broadcast masks; a custom scale; float32 and float64 at the default tolerances of
`torch.testing.assert_close` and bfloat16 at a looser tolerance; the gradients of query, key and value against
PyTorch's, and `torch.autograd.gradcheck` in float64.

**Dropout** zeroes random attention weights after the softmax and scales the survivors by
$1/(1 - p)$, so rows sum to one only on average. PyTorch applies it whenever `dropout_p > 0`: there is no
training flag, and a module passes `dropout_p if self.training else 0.0` itself. Nobody can reproduce
PyTorch's random draws, so for dropout the tests (and this example) check statistics, not equality.

```pycon
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(3, 64, 64, 16).unbind(0)
>>> _, dropped = attention_with_weights(q, k, v, dropout_p=0.25)
>>> round((dropped == 0).float().mean().item(), 2), round(dropped.sum(-1).mean().item(), 1)
(0.25, 1.0)

```

## Masks: hiding the future and the padding

A mask decides which keys a query may see. PyTorch's `scaled_dot_product_attention` takes two kinds:

- a **boolean** `attn_mask`: `True` means *takes part in attention*, `False` means hidden;
- a **float** `attn_mask`: **added** to the scores, so `-inf` hides a key (its weight becomes
  $e^{-\infty} = 0$) and a finite value merely nudges it (see the ALiBi challenge).

Either kind is broadcast to the scores' shape $(\dots, L, S)$. A language model must not read tokens it
has yet to predict, so query $i$ may see only keys $j \le i$: the lower triangle,
[`causal_mask`][torchenstein.transformers.attention.causal_mask], which is what `is_causal=True` builds.
When $L \ne S$ PyTorch aligns that triangle to the **top-left** corner (`tril` of an $(L, S)$ block of
ones); the KV-cache lesson will need the bottom-right one instead. Batches of sentences of different
lengths are padded to a common $S$, and [`padding_mask`][torchenstein.transformers.attention.padding_mask]
hides the padded keys, with shape $(B, 1, S)$ so that it broadcasts over the queries.

```pycon
>>> from torchenstein.transformers.attention import causal_mask, padding_mask
>>> causal_mask(4).long()
tensor([[1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 1, 1]])
>>> causal_mask(2, 4).long()          # L < S: top-left aligned, like is_causal
tensor([[1, 0, 0, 0],
        [1, 1, 0, 0]])
>>> padding_mask(torch.tensor([3, 1]), 4).long()    # lengths 3 and 1, padded to S = 4
tensor([[[1, 1, 1, 0]],
        [[1, 0, 0, 0]]])

```

Masks combine with `&`, and a boolean mask becomes its float twin with one `masked_fill`:

```pycon
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(3, 2, 4, 8).unbind(0)                   # (B, T, d)
>>> mask = padding_mask(torch.tensor([4, 2]), 4) & causal_mask(4)  # (B, L, S)
>>> bias = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
>>> ours = scaled_dot_product_attention(q, k, v, attn_mask=bias)
>>> torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
>>> scaled_dot_product_attention(q, k, v, attn_mask=mask.int())
Traceback (most recent call last):
...
TypeError: attn_mask must be a bool or floating-point tensor, got dtype torch.int32

```

An integer mask is refused on purpose: added to the scores, a 0/1 mask would shift them by one instead of
hiding anything.

## When every key is hidden

A row whose keys are all masked has scores that are all $-\infty$, and softmax computes
$e^{-\infty} / \sum e^{-\infty} = 0/0$: `NaN`. It happens for real: a padded sequence of length 0, a
padding mask applied to the query side as well, a sliding window that slides past the real tokens. One
`NaN` in a row poisons the loss, and then every gradient.

```pycon
>>> torch.softmax(torch.full((4,), float("-inf")), dim=-1)
tensor([nan, nan, nan, nan])

```

The guard: find the rows whose scores are all $-\infty$, give them any finite score before the softmax
(so no `NaN` is ever made, not even in the backward pass) and set their weights to zero after. Such a
query receives a zero vector and sends no gradient.

```pycon
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(3, 3, 4).unbind(0)
>>> mask = torch.tensor([[True, True, False], [False, False, False], [True, True, True]])
>>> out, weights = attention_with_weights(q, k, v, attn_mask=mask)
>>> weights[1], out.isnan().any().item()
(tensor([0., 0., 0.]), False)

```

Recent PyTorch releases return zeros here too, but older ones returned `NaN`, so the tests compare the
two only where PyTorch's answer is finite.

## Reading an attention map

An attention map is the weight matrix drawn as a picture: **row $i$ is query $i$**, **column $j$ is key
$j$**, and each row sums to one. In a toy model, [`token_lookup_qkv`][torchenstein.transformers.attention.token_lookup_qkv]
makes every token look for earlier copies of itself (keys are the tokens' one-hot codes, queries the same
codes made louder), and a causal mask hides the future.

```pycon
>>> from torchenstein.transformers.attention import token_lookup_qkv
>>> tokens = "the monster ate the bolt and the monster slept".split()
>>> q, k, v = token_lookup_qkv(tokens)
>>> _, weights = attention_with_weights(q, k, v, is_causal=True)
>>> weights[0, 0].item()            # the first query can only see itself
1.0
>>> (weights[7] > 0.3).nonzero().flatten().tolist()    # the second "monster" finds both monsters
[1, 7]
>>> torch.equal(weights.triu(1), torch.zeros(9, 9))    # nothing above the diagonal: no future
True

```

![An attention map: nine query tokens (rows) against nine key tokens (columns) of the sentence "the monster ate the bolt and the monster slept"; the upper triangle is empty, and repeated words light up the columns of their earlier copies.](plot_attention_map.svg)

How to read it: an empty upper triangle says "causal"; the first row is always one bright cell (the first
token has nothing else to look at); a bright cell off the diagonal means query $i$ found what it was
looking for at key $j$; a row that is evenly pale found nothing in particular and averaged. Notice, too,
how the diagonal of a lonely word fades down the page: a later query has more keys, and each non-match
takes its small share of the unit of attention.

## Attention as einsum

[Advanced einsum](../../tensors/einsum_advanced/index.md) names every axis with a letter, and attention
reads well that way. With batch $b$, heads $h$, queries $q$, keys $k$ and width $d$ it is two
contractions. The scores compare every query with every key along $d$: "bhqd,bhkd->bhqk". The output
mixes the values with the weights along $k$: "bhqk,bhkd->bhqd". No `transpose(-2, -1)` to remember,
because the letters say which axis meets which.
[`einsum_attention`][torchenstein.transformers.attention.einsum_attention] puts the two around a
softmax, and agrees with ours and with PyTorch's:

```pycon
>>> from torchenstein.transformers.attention import einsum_attention
>>> _ = torch.manual_seed(0)
>>> q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
>>> scores = torch.einsum("bhqd,bhkd->bhqk", q, k)
>>> scores.shape
torch.Size([2, 3, 5, 7])
>>> torch.allclose(scores, q @ k.transpose(-2, -1), atol=1e-6)
True
>>> out = einsum_attention(q, k, v, is_causal=True)
>>> out.shape
torch.Size([2, 3, 5, 4])
>>> torch.testing.assert_close(out, scaled_dot_product_attention(q, k, v, is_causal=True))
>>> torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))

```

## Multi-head attention, in einsums

So far the queries, keys and values were given. In a real model each is a *projection* of the tokens,
`x @ W.T + b` with a learned weight of its own (the Q, K and V projections), and the model runs several
attentions side by side, one per *head* of `d = C / h` channels, before an output projection mixes the
heads back into `C` channels. [Tensor metamorphosis](../../tensors/metamorphosis/index.md#the-motivating-monster-splitting-heads)
split and merged the heads with views, and
[Advanced einsum](../../tensors/einsum_advanced/index.md#projections-with-the-head-split-folded-in)
folded each split into its projection. `torch.nn.MultiheadAttention` stores the three input
projections stacked as one `in_proj_weight` of shape `(3C, C)`, queries first, then keys, then values.

A forward pass of multi-head attention is then one einsum per projection, two for attention and a
softmax. [`einsum_multi_head_attention`][torchenstein.transformers.attention.einsum_multi_head_attention]
takes its weights under `torch.nn.MultiheadAttention`'s names, so a module's parameters drop straight in;
[`matmul_multi_head_attention`][torchenstein.transformers.attention.matmul_multi_head_attention] is the
matmul way (projection, split, attention, merge, projection). All three agree.
(`nn.MultiheadAttention`'s boolean `attn_mask` means *hide* where `True`, the opposite of
`scaled_dot_product_attention`'s: hence the `~`.) The multi-head lesson builds the module itself.

```pycon
>>> from torchenstein.transformers.attention import einsum_multi_head_attention, matmul_multi_head_attention
>>> B, T, C, h = 2, 5, 12, 3
>>> x = torch.randn(B, T, C)
>>> mha = torch.nn.MultiheadAttention(C, h, batch_first=True)
>>> weights = (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias)
>>> with torch.no_grad():
...     theirs, _ = mha(x, x, x, attn_mask=~causal_mask(T), need_weights=False)
...     ours = einsum_multi_head_attention(x, x, x, h, *weights, is_causal=True)
...     matmul = matmul_multi_head_attention(x, x, x, h, *weights, is_causal=True)
>>> ours.shape
torch.Size([2, 5, 12])
>>> torch.testing.assert_close(ours, theirs)
>>> torch.testing.assert_close(ours, matmul)

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: softmax over the wrong dimension"
    With a batch dimension in front, `dim=1` is the *query* axis: columns then sum to one and every
    query mixes values in nonsense proportions.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> q, k, v = torch.randn(3, 2, 4, 8).unbind(0)      # (B, T, d)
    >>> scores = q @ k.transpose(-2, -1) / 8**0.5
    >>> torch.allclose(torch.softmax(scores, dim=1).sum(-1), torch.ones(2, 4))   # Hammer
    False
    >>> torch.allclose(torch.softmax(scores, dim=-1) @ v, F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    True

    ```

!!! hammer "Dr. Hammer's trap: the scores with their letters swapped"
    Writing attention as einsum, Dr. Hammer types "bhqd,bhkd->bhkq": a perfectly legal einsum, the
    transpose of the scores. With as many keys as queries the shape is identical, nothing complains, and
    the softmax over the last axis now normalises over *queries*. Test with as many keys as queries and
    the bug hides; give the test $L \ne S$ and it shows at once.

    ```pycon
    >>> qh, kh, vh = torch.randn(3, 1, 2, 4, 8).unbind(0)    # each (B, h, T, d)
    >>> right = torch.einsum("bhqd,bhkd->bhqk", qh, kh)
    >>> hammer = torch.einsum("bhqd,bhkd->bhkq", qh, kh)
    >>> {"same shape": hammer.shape == right.shape, "transposed": torch.equal(hammer, right.transpose(-2, -1))}
    {'same shape': True, 'transposed': True}
    >>> out = torch.einsum("bhqk,bhkd->bhqd", torch.softmax(hammer / 8**0.5, dim=-1), vh)
    >>> torch.allclose(out, F.scaled_dot_product_attention(qh, kh, vh), atol=1e-5)
    False
    >>> out = torch.einsum("bhqk,bhkd->bhqd", torch.softmax(right / 8**0.5, dim=-1), vh)
    >>> torch.allclose(out, F.scaled_dot_product_attention(qh, kh, vh), atol=1e-5)
    True

    ```

!!! hammer "Dr. Hammer's trap: mask polarity reversed"
    For `scaled_dot_product_attention`, `True` means *attend*. Hammer remembers
    `torch.nn.MultiheadAttention`, whose boolean masks mean the opposite (`True` = *ignore*), and builds
    "the future to hide". His model then sees only the future, and its last row sees nothing at all.

    ```pycon
    >>> hide_future = torch.ones(4, 4, dtype=torch.bool).triu(1)
    >>> hammer = F.scaled_dot_product_attention(q, k, v, attn_mask=hide_future)
    >>> torch.allclose(hammer, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    False
    >>> torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=~hide_future),
    ...                            F.scaled_dot_product_attention(q, k, v, is_causal=True))

    ```

!!! hammer "Dr. Hammer's trap: forgetting the scale"
    The unscaled softmax is sharper than it should be, and the numbers are simply wrong.

    ```pycon
    >>> hammer = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
    >>> torch.allclose(hammer, F.scaled_dot_product_attention(q, k, v), atol=1e-4)
    False
    >>> torch.allclose(torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1) @ v,
    ...                F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    True

    ```

!!! hammer "Dr. Hammer's trap: fully masked rows"
    Hammer's hand-written attention masks with `-inf` and calls it a day; one empty sequence turns his
    loss into `NaN`. Ours guards the row.

    ```pycon
    >>> lengths = torch.tensor([3, 0])        # the second sequence is empty
    >>> key_mask = padding_mask(lengths, 4)   # (B, 1, S)
    >>> hammer = torch.softmax(scores.masked_fill(~key_mask, float("-inf")), dim=-1) @ v
    >>> hammer.sum().isnan().item()
    True
    >>> scaled_dot_product_attention(q, k, v, attn_mask=key_mask).sum().isnan().item()
    False

    ```

!!! hammer "Dr. Hammer's trap: a causal mask made with `triu`"
    The upper triangle lets query 0 read every later token: a leak. The test that catches it: change the
    *last* value and see whether the *first* output moves. A language model trained with Hammer's mask
    reads the answer before predicting it: a splendid training loss and a paper, right until someone
    generates text with it.

    ```pycon
    >>> v_changed = v.clone()
    >>> v_changed[:, -1] += 1.0
    >>> def first_output_moves(mask):
    ...     before = scaled_dot_product_attention(q, k, v, attn_mask=mask)[:, 0]
    ...     after = scaled_dot_product_attention(q, k, v_changed, attn_mask=mask)[:, 0]
    ...     return not torch.equal(before, after)
    >>> first_output_moves(torch.ones(4, 4, dtype=torch.bool).triu()), first_output_moves(causal_mask(4))
    (True, False)

    ```

## Challenges

**1. A sliding-window mask.** Write `sliding_window_mask(L, window)` returning a boolean $(L, L)$ mask in
which query $i$ attends to key $j$ exactly when $0 \le i - j <$ `window`: causal, and only the last
`window` tokens (itself included). Raise `ValueError` for `window < 1`.

**2. An ALiBi distance bias.** Write `alibi_bias(L, slopes)`: for a 1-D tensor of $h$ per-head slopes, a
float $(h, L, L)$ additive mask equal to $-\text{slope}_h \cdot (i - j)$ where $j \le i$ and $-\infty$ above
the diagonal, so distant keys are gently penalised and future ones hidden. Its dtype is that of `slopes`.

**3. Grouped-query attention scores.** In grouped-query attention several query heads share one key
head, which shrinks the keys a model must keep. Write `grouped_query_attention_scores(query, key)` for a
query of shape `(B, Hq, L, d)` and a key of shape `(B, Hkv, S, d)`, where `Hkv` divides `Hq` into groups
of `g = Hq // Hkv`: return the unscaled scores, shape `(B, Hq, L, S)`, where query head `i` uses key head
`i // g` (the convention of `repeat_interleave` on the keys, which PyTorch 2.5+ follows for
`enable_gqa`). Use one einsum and no copy of the keys (a `view` of the query groups its heads). Raise
`ValueError` when `Hkv` does not divide `Hq`.

Check an attempt with `check_sliding_window_mask(my_function)` (or `check_alibi_bias`,
`check_grouped_query_attention_scores`), or put your functions in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.transformers.attention import (
...     alibi_bias, check_alibi_bias, check_grouped_query_attention_scores, check_sliding_window_mask,
...     grouped_query_attention_scores, sliding_window_mask)
>>> check_sliding_window_mask(sliding_window_mask)
>>> check_alibi_bias(alibi_bias)
>>> check_grouped_query_attention_scores(grouped_query_attention_scores)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.broadcasting import broadcast_shapes
from torchenstein.tensors.einsum_advanced import (
    _positive_int,
    _require_tensor,
    einsum_merge_heads,
    einsum_project_heads,
)
from torchenstein.tensors.metamorphosis import merge_heads, split_heads

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def softmax_saturation(
    d: int, *, scaled: bool = True, num_keys: int = 16, num_queries: int = 256, seed: int = 0
) -> tuple[float, float]:
    r"""Measure how wide random attention scores are and how peaked their softmax gets, for a width ``d``.

    Args:
        d: the width $d_k$ of queries and keys.
        scaled: divide the scores by $\sqrt{d}$, as attention does.
        num_keys: keys per query (the length of each softmax row).
        num_queries: how many independent rows to average over.
        seed: seed of a private generator; the global one is left alone.

    Returns:
        ``(std, top)``: the standard deviation of the scores and the mean of each row's largest weight.

    Raises:
        ValueError: if ``d``, ``num_keys`` or ``num_queries`` is below 1.

    Examples:
        >>> std, top = softmax_saturation(16, scaled=True, num_queries=64)
        >>> 1 / 16 < top < 1
        True
    """
    for name, n in (("d", d), ("num_keys", num_keys), ("num_queries", num_queries)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    # Every row gets its own keys, so the rows are independent samples of the same experiment.
    query = torch.randn(num_queries, 1, d, generator=generator)
    key = torch.randn(num_queries, num_keys, d, generator=generator)
    scores = (query * key).sum(dim=-1)  # (num_queries, num_keys)
    if scaled:
        scores = scores / math.sqrt(d)
    weights = torch.softmax(scores, dim=-1)
    return scores.std().item(), weights.amax(dim=-1).mean().item()


def _check_qkv_tensors(query, key, value) -> None:
    """Raise a clear error unless query, key and value are floating-point tensors of one dtype, each at least 2-D."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dims (..., length, features), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(f"query, key and value must share a dtype, got {query.dtype}, {key.dtype}, {value.dtype}")


def _check_inputs(query, key, value, attn_mask, dropout_p, is_causal, scale) -> None:
    """Raise a clear ValueError or TypeError for every argument of attention that cannot work."""
    _check_qkv_tensors(query, key, value)
    if key.size(-1) != query.size(-1):
        raise ValueError(f"key's last dim must equal query's d_k={query.size(-1)}, got key shape {tuple(key.shape)}")
    if query.size(-1) == 0 and scale is None:
        raise ValueError("query has d_k=0, so the default scale 1/sqrt(d_k) is undefined; pass scale")
    if value.size(-2) != key.size(-2):
        raise ValueError(f"value must have key's length S={key.size(-2)} in dim -2, got value shape {tuple(value.shape)}")
    try:
        batch = broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError as err:
        shapes = f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        raise ValueError(f"the leading (batch) dims of query, key and value must broadcast, got {shapes}") from err
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {is_causal!r}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, Real) or not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout_p must be a number in [0, 1], got {dropout_p!r}")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, Real)):
        raise TypeError(f"scale must be a number or None, got {scale!r}")
    if attn_mask is None:
        return
    if is_causal:
        raise ValueError("pass either attn_mask or is_causal=True, not both (PyTorch refuses the pair too)")
    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(f"attn_mask must be a torch.Tensor or None, got {type(attn_mask).__name__}")
    if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
        raise TypeError(f"attn_mask must be a bool or floating-point tensor, got dtype {attn_mask.dtype}")
    target = (*batch, query.size(-2), key.size(-2))
    try:
        fits = broadcast_shapes(attn_mask.shape, target) == torch.Size(target)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"attn_mask must broadcast to the scores' shape {target}, got shape {tuple(attn_mask.shape)}")


def attention_with_weights(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Scaled dot-product attention that also returns its weights.

    The arguments mean what they mean for `torch.nn.functional.scaled_dot_product_attention`.

    Args:
        query: shape $(\dots, L, d_k)$.
        key: shape $(\dots, S, d_k)$.
        value: shape $(\dots, S, d_v)$. The leading dims of the three must broadcast.
        attn_mask: a boolean mask (``True`` = takes part in attention) or a float mask added to the
            scores, broadcastable to $(\dots, L, S)$.
        dropout_p: probability of zeroing each weight; applied whenever it is above 0.
        is_causal: hide the future with the top-left aligned mask ``causal_mask(L, S)``.
        scale: the factor the scores are multiplied by; ``None`` means $1/\sqrt{d_k}$.

    Returns:
        ``(output, weights)``: the output, shape $(\dots, L, d_v)$, and the weights actually multiplied
        into ``value`` (after dropout), shape $(\dots, L, S)$. Rows whose keys are all hidden get zero
        weights and a zero output.

    Raises:
        TypeError: if a tensor or the mask has the wrong type or dtype.
        ValueError: if shapes do not fit, both ``attn_mask`` and ``is_causal`` are given, or
            ``dropout_p`` is outside $[0, 1]$.

    Examples:
        >>> q, k, v = torch.randn(3, 5, 4).unbind(0)
        >>> out, weights = attention_with_weights(q, k, v)
        >>> out.shape, weights.shape
        (torch.Size([5, 4]), torch.Size([5, 5]))
        >>> attention_with_weights(q, k[:, :3], v)
        Traceback (most recent call last):
        ...
        ValueError: key's last dim must equal query's d_k=4, got key shape (5, 3)
    """
    _check_inputs(query, key, value, attn_mask, dropout_p, is_causal, scale)
    L, S = query.size(-2), key.size(-2)
    if scale is None:
        scale = 1.0 / math.sqrt(query.size(-1))
    # Every query against every key; `transpose(-2, -1)` leaves batch and head dims alone.
    scores = (query @ key.transpose(-2, -1)) * scale  # (..., L, S)
    if is_causal:
        attn_mask = causal_mask(L, S, device=query.device)
    # A boolean mask hides the keys marked False; a float mask is added as it is.
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask.to(scores.dtype)
    # The guard against 0/0: a row of nothing but -inf gets a harmless finite score before the softmax
    # (so neither the forward nor the backward pass ever makes a NaN) and zero weights after it.
    hidden_row = (scores == float("-inf")).all(dim=-1, keepdim=True)  # (..., L, 1)
    weights = torch.softmax(scores.masked_fill(hidden_row, 0.0), dim=-1)
    weights = weights.masked_fill(hidden_row, 0.0)  # (..., L, S)
    if dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    # Each output row is the weighted mix of the value rows.
    return weights @ value, weights  # (..., L, d_v), (..., L, S)


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
) -> Tensor:
    r"""Attention from scratch, a drop-in twin of `torch.nn.functional.scaled_dot_product_attention`.

    Computes $\operatorname{softmax}(QK^\top \cdot \text{scale} + M)\,V$; see
    [`attention_with_weights`][torchenstein.transformers.attention.attention_with_weights] for the arguments.

    Returns:
        The output, shape $(\dots, L, d_v)$.

    Raises:
        TypeError: if a tensor or the mask has the wrong type or dtype.
        ValueError: if shapes do not fit or the arguments contradict each other.

    Examples:
        >>> q, k, v = torch.randn(3, 2, 5, 4).unbind(0)
        >>> torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True),
        ...                            F.scaled_dot_product_attention(q, k, v, is_causal=True))
        >>> scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(5), is_causal=True)
        Traceback (most recent call last):
        ...
        ValueError: pass either attn_mask or is_causal=True, not both (PyTorch refuses the pair too)
    """
    return attention_with_weights(query, key, value, attn_mask, dropout_p, is_causal, scale)[0]


def _check_length(name: str, n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name} must be a non-negative int, got {n!r}")


def causal_mask(L: int, S: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """The boolean causal mask PyTorch's ``is_causal=True`` uses: query ``i`` sees keys ``j <= i``.

    Args:
        L: number of queries.
        S: number of keys; ``None`` means ``L``. For ``L != S`` the triangle is aligned top-left.
        device: where to build the mask.

    Returns:
        A bool tensor of shape ``(L, S)``, ``True`` where attention is allowed.

    Raises:
        ValueError: if ``L`` or ``S`` is not a non-negative int.

    Examples:
        >>> causal_mask(3).long()
        tensor([[1, 0, 0],
                [1, 1, 0],
                [1, 1, 1]])
        >>> causal_mask(-1)
        Traceback (most recent call last):
        ...
        ValueError: L must be a non-negative int, got -1
    """
    S = L if S is None else S
    _check_length("L", L)
    _check_length("S", S)
    # `tril` keeps the diagonal and everything below it: the present and the past.
    return torch.ones(L, S, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor | Sequence[int], S: int) -> torch.Tensor:
    """A boolean mask that hides the padded keys of sequences padded to length ``S``.

    Args:
        lengths: the true length of each sequence, an integer tensor or list of any shape ``(...)``.
        S: the padded length (number of keys).

    Returns:
        A bool tensor of shape ``(..., 1, S)``, ``True`` for real keys, ready to broadcast over the
        queries. For scores shaped ``(B, heads, L, S)`` pass ``lengths[:, None]``.

    Raises:
        TypeError: if ``lengths`` is not integer.
        ValueError: if ``S`` is negative or a length lies outside ``[0, S]``.

    Examples:
        >>> padding_mask([2, 3], 3).shape
        torch.Size([2, 1, 3])
        >>> padding_mask([4], 3)
        Traceback (most recent call last):
        ...
        ValueError: lengths must lie in [0, S=3], got tensor([4])
    """
    _check_length("S", S)
    lengths = torch.as_tensor(lengths)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > S):
        raise ValueError(f"lengths must lie in [0, S={S}], got {lengths}")
    positions = torch.arange(S, device=lengths.device)  # (S,)
    # Key j is real exactly when j < length; the inserted dim is the query axis, to broadcast over.
    return (positions < lengths[..., None])[..., None, :]  # (..., 1, S)


def token_lookup_qkv(tokens: Sequence[str], *, strength: float = 8.0) -> tuple[torch.Tensor, ...]:
    """A toy attention task: each token looks for (earlier) copies of itself.

    Keys and values are the tokens' one-hot codes and queries are the same codes times ``strength``, so
    a query scores ``strength`` on keys holding its own token and 0 on the others (before scaling).

    Args:
        tokens: the sequence, e.g. ``"the cat saw the cat".split()``.
        strength: how sharp the lookup is: the score of a matching key before scaling.

    Returns:
        ``(query, key, value)``, each of shape ``(len(tokens), vocabulary size)``.

    Raises:
        ValueError: if ``tokens`` is empty.

    Examples:
        >>> q, k, v = token_lookup_qkv(["a", "b", "a"])
        >>> q.shape, v[2].tolist()
        (torch.Size([3, 2]), [1.0, 0.0])
    """
    if len(tokens) == 0:
        raise ValueError("tokens must hold at least one token, got an empty sequence")
    vocabulary = {word: i for i, word in enumerate(dict.fromkeys(tokens))}
    ids = torch.tensor([vocabulary[word] for word in tokens])
    one_hot = F.one_hot(ids, len(vocabulary)).float()  # (T, vocabulary size)
    return one_hot * strength, one_hot, one_hot


def plot_softmax_saturation(*, dims: Sequence[int] = (1, 4, 16, 64, 256, 1024), num_queries: int = 256) -> Figure:
    """Draw the spread of scores and the largest softmax weight against ``d``, with and without scaling.

    Args:
        dims: the widths to try.
        num_queries: rows averaged at each width.

    Returns:
        A figure with two axes.

    Examples:
        >>> fig = plot_softmax_saturation(dims=(1, 4), num_queries=8)
        >>> len(fig.axes)
        2
    """
    fig, (ax_std, ax_top) = new_figure(1, 2, width=8.0, height=3.4)
    for scaled, label, colour in ((False, r"$QK^\top$", PALETTE[2]), (True, r"$QK^\top/\sqrt{d}$", PALETTE[0])):
        stats = [softmax_saturation(d, scaled=scaled, num_queries=num_queries) for d in dims]
        ax_std.plot(dims, [s for s, _ in stats], "o-", color=colour, label=label)
        ax_top.plot(dims, [t for _, t in stats], "o-", color=colour, label=label)
    ax_std.set(xscale="log", yscale="log", xlabel="width $d$", ylabel="std of scores", title="Spread of scores")
    ax_top.set(xscale="log", ylim=(0, 1.05), xlabel="width $d$", ylabel="mean largest weight (16 keys)")
    ax_top.set_title("How one-hot the softmax gets")
    ax_std.legend()
    ax_top.legend()
    return fig


def plot_attention_map(*, sentence: str = "the monster ate the bolt and the monster slept") -> Figure:
    """Draw the causal attention map of the toy lookup task in ``token_lookup_qkv`` on a sentence.

    Args:
        sentence: words separated by spaces.

    Returns:
        A figure with the heatmap and its colour bar.

    Examples:
        >>> fig = plot_attention_map(sentence="a b a")
        >>> len(fig.axes)
        2
    """
    tokens = sentence.split()
    _, weights = attention_with_weights(*token_lookup_qkv(tokens), is_causal=True)
    fig, (ax,) = new_figure(1, 1, width=6.2, height=5.0)
    ax.grid(False)
    image = ax.imshow(weights.numpy(), cmap="Purples", vmin=0.0, vmax=1.0)
    positions = range(len(tokens))
    ax.set_xticks(positions, [f"{j}:{t}" for j, t in enumerate(tokens)], rotation=60, ha="right")
    ax.set_yticks(positions, [f"{i}:{t}" for i, t in enumerate(tokens)])
    # Printing each visible weight on its cell lets the reader check that every row sums to one.
    for i, row in enumerate(weights.tolist()):
        for j, w in enumerate(row[: i + 1]):
            ax.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=7, color="white" if w > 0.5 else "black")
    ax.set(xlabel="key (what is looked at)", ylabel="query (who is looking)", title="Causal attention map")
    fig.colorbar(image, ax=ax, label="attention weight (each row sums to 1)")
    return fig


def einsum_attention(
    query: Tensor, key: Tensor, value: Tensor, is_causal: bool = False, scale: float | None = None
) -> Tensor:
    r"""Scaled dot-product attention written as two einsums.

    Args:
        query: shape $(B, h, L, d_k)$.
        key: shape $(B, h, S, d_k)$.
        value: shape $(B, h, S, d_v)$.
        is_causal: hide the future with the top-left aligned causal mask, as PyTorch's ``is_causal``.
        scale: the factor the scores are multiplied by; ``None`` means $1/\sqrt{d_k}$.

    Returns:
        The output, shape $(B, h, L, d_v)$.

    Raises:
        TypeError: if an input is not a tensor.
        ValueError: if an input is not 4-D or the shapes do not fit together.

    Examples:
        >>> q, k, v = torch.randn(3, 1, 2, 4, 8).unbind(0)
        >>> torch.testing.assert_close(einsum_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
        >>> einsum_attention(q, k[..., :3], v)
        Traceback (most recent call last):
        ...
        ValueError: key must have shape (B, h, S, d_k) = (1, 2, S, 8) like query, got (1, 2, 4, 3)
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        _require_tensor(t, name, ndim=4)
    B, h, L, d_k = query.shape
    if key.shape[:2] != (B, h) or key.size(-1) != d_k:
        raise ValueError(f"key must have shape (B, h, S, d_k) = ({B}, {h}, S, {d_k}) like query, got {tuple(key.shape)}")
    if value.shape[:3] != key.shape[:3]:
        raise ValueError(f"value must have shape (B, h, S, d_v) with key's (B, h, S), got {tuple(value.shape)}")
    if scale is None:
        scale = 1.0 / math.sqrt(d_k)
    # Query q meets key k along the shared width d, which is summed away.
    scores = torch.einsum("bhqd,bhkd->bhqk", query, key) * scale  # (B, h, L, S)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(L, key.size(-2), device=query.device), float("-inf"))
    # One unit of attention per query, spread over the keys: the softmax runs over k, the last letter.
    weights = torch.softmax(scores, dim=-1)
    # Each output row mixes the value rows along k, which is summed away this time.
    return torch.einsum("bhqk,bhkd->bhqd", weights, value)  # (B, h, L, d_v)


def _mha_inputs(query, key, value, num_heads, in_proj_weight, in_proj_bias, out_proj_weight) -> list[tuple]:
    # Check every argument once, then pair each input with its slice of the stacked projection.
    for name, t in (("query", query), ("key", key), ("value", value)):
        _require_tensor(t, name, ndim=3)
    C = query.size(-1)
    if key.shape != value.shape or key.size(0) != query.size(0) or key.size(-1) != C:
        shapes = f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        raise ValueError(f"query, key and value must be (B, L, C), (B, S, C), (B, S, C), got {shapes}")
    for name, t, shape in (("in_proj_weight", in_proj_weight, (3 * C, C)), ("in_proj_bias", in_proj_bias, (3 * C,)),
                           ("out_proj_weight", out_proj_weight, (C, C))):
        if (t is not None or name != "in_proj_bias") and _require_tensor(t, name).shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if C % _positive_int(num_heads, "num_heads"):
        raise ValueError(f"num_heads must divide the embedding size C={C}, got num_heads={num_heads}")
    # nn.MultiheadAttention stacks the three projections along the output channels: query, key, value.
    biases = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
    return list(zip((query, key, value), in_proj_weight.chunk(3), biases, strict=True))


def einsum_multi_head_attention(
    query: Tensor, key: Tensor, value: Tensor, num_heads: int,
    in_proj_weight: Tensor, in_proj_bias: Tensor | None,
    out_proj_weight: Tensor, out_proj_bias: Tensor | None, is_causal: bool = False,
) -> Tensor:
    """Multi-head attention with every contraction written as an einsum (batch first, no dropout).

    The weights are named and shaped as the parameters of ``torch.nn.MultiheadAttention``.

    Args:
        query: shape ``(B, L, C)``.
        key: shape ``(B, S, C)``.
        value: shape ``(B, S, C)``.
        num_heads: how many heads; it must divide ``C``.
        in_proj_weight: the stacked query, key and value weights, shape ``(3C, C)``.
        in_proj_bias: their stacked biases, shape ``(3C,)``, or ``None``.
        out_proj_weight: shape ``(C, C)``.
        out_proj_bias: shape ``(C,)``, or ``None``.
        is_causal: query ``i`` sees only keys ``j <= i``.

    Returns:
        Shape ``(B, L, C)``.

    Raises:
        TypeError: if an input is not a tensor.
        ValueError: if the shapes do not fit or ``num_heads`` does not divide ``C``.

    Examples:
        >>> x = torch.randn(2, 3, 8)
        >>> einsum_multi_head_attention(x, x, x, 2, torch.randn(24, 8), None, torch.randn(8, 8), None).shape
        torch.Size([2, 3, 8])
        >>> einsum_multi_head_attention(x, x, x, 3, torch.randn(24, 8), None, torch.randn(8, 8), None)
        Traceback (most recent call last):
        ...
        ValueError: num_heads must divide the embedding size C=8, got num_heads=3
    """
    inputs = _mha_inputs(query, key, value, num_heads, in_proj_weight, in_proj_bias, out_proj_weight)
    # Projection and head split in one contraction each: (B, T, C) -> (B, h, T, d).
    q, k, v = (einsum_project_heads(t, w, b, num_heads) for t, w, b in inputs)
    out = einsum_attention(q, k, v, is_causal=is_causal)  # (B, h, L, d)
    # Merge and output projection in one contraction: (B, h, L, d) -> (B, L, C).
    return einsum_merge_heads(out, out_proj_weight, out_proj_bias)


def matmul_multi_head_attention(
    query: Tensor, key: Tensor, value: Tensor, num_heads: int,
    in_proj_weight: Tensor, in_proj_bias: Tensor | None,
    out_proj_weight: Tensor, out_proj_bias: Tensor | None, is_causal: bool = False,
) -> Tensor:
    """The same multi-head attention the matmul way: linear, split, attention, merge, linear.

    Takes and returns what `einsum_multi_head_attention` does.

    Examples:
        >>> x, w_in, w_out = torch.randn(2, 3, 8), torch.randn(24, 8), torch.randn(8, 8)
        >>> torch.testing.assert_close(matmul_multi_head_attention(x, x, x, 2, w_in, None, w_out, None),
        ...                            einsum_multi_head_attention(x, x, x, 2, w_in, None, w_out, None))
    """
    inputs = _mha_inputs(query, key, value, num_heads, in_proj_weight, in_proj_bias, out_proj_weight)
    q, k, v = (split_heads(F.linear(t, w, b), num_heads) for t, w, b in inputs)  # each (B, h, T, d)
    out = scaled_dot_product_attention(q, k, v, is_causal=is_causal)  # (B, h, L, d)
    return F.linear(merge_heads(out), out_proj_weight, out_proj_bias)  # (B, L, C)


def sliding_window_mask(L: int, window: int) -> torch.Tensor:
    """Challenge solution: a causal mask that sees only the last ``window`` tokens, itself included.

    Args:
        L: sequence length.
        window: how many keys each query may see, at least 1.

    Returns:
        A bool tensor of shape ``(L, L)``, ``True`` where ``0 <= i - j < window``.

    Raises:
        ValueError: if ``L`` is negative or ``window`` is below 1.

    Examples:
        >>> sliding_window_mask(4, 2).long()
        tensor([[1, 0, 0, 0],
                [1, 1, 0, 0],
                [0, 1, 1, 0],
                [0, 0, 1, 1]])
    """
    _check_length("L", L)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int of at least 1, got {window!r}")
    # The distance i - j of every (query, key) pair, by broadcasting a column against a row.
    distance = torch.arange(L)[:, None] - torch.arange(L)[None, :]  # (L, L)
    return (distance >= 0) & (distance < window)


def check_sliding_window_mask(candidate) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``sliding_window_mask``."""
    for L, window in ((1, 1), (5, 1), (5, 2), (6, 3), (4, 4), (3, 10), (0, 2)):
        got = candidate(L, window)
        expected = causal_mask(L) & ~causal_mask(L).tril(-window)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bool, f"expected a bool tensor, got {got!r}"
        assert got.shape == (L, L), f"sliding_window_mask({L}, {window}) has shape {tuple(got.shape)}, expected {(L, L)}"
        assert torch.equal(got, expected), f"sliding_window_mask({L}, {window}) gave\n{got.int()}\nexpected\n{expected.int()}"
    try:
        candidate(4, 0)
    except ValueError:
        return
    raise AssertionError("sliding_window_mask(4, 0) should raise ValueError: a query must see at least itself")


def alibi_bias(L: int, slopes: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Challenge solution: ALiBi's causal distance penalty as a float ``attn_mask``, one per head.

    Args:
        L: sequence length.
        slopes: the per-head slopes, shape ``(h,)``.

    Returns:
        A float tensor of shape ``(h, L, L)``: ``-slope * (i - j)`` where ``j <= i``, ``-inf`` above.

    Raises:
        ValueError: if ``L`` is negative or ``slopes`` is not 1-D.

    Examples:
        >>> alibi_bias(3, torch.tensor([0.5]))
        tensor([[[ 0.0000,    -inf,    -inf],
                 [-0.5000,  0.0000,    -inf],
                 [-1.0000, -0.5000,  0.0000]]])
    """
    _check_length("L", L)
    slopes = torch.as_tensor(slopes)
    if not slopes.is_floating_point():
        slopes = slopes.float()
    if slopes.dim() != 1:
        raise ValueError(f"slopes must be 1-D (one per head), got shape {tuple(slopes.shape)}")
    distance = torch.arange(L)[:, None] - torch.arange(L)[None, :]  # (L, L)
    # Written as slope times (j - i) so the diagonal is +0.0, not -0.0.
    bias = slopes[:, None, None] * (-distance).to(slopes.dtype)  # (h, L, L)
    return bias.masked_fill(distance < 0, float("-inf"))


def check_alibi_bias(candidate) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``alibi_bias``."""
    for L, slopes in ((1, [1.0]), (4, [0.5]), (5, [1.0, 0.25, 0.0625]), (3, [2.0, 0.5])):
        slopes = torch.tensor(slopes, dtype=torch.float64)
        got = candidate(L, slopes)
        h = len(slopes)
        assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == (h, L, L), f"alibi_bias({L}, <{h} slopes>) has shape {tuple(got.shape)}, expected {(h, L, L)}"
        assert got.dtype == slopes.dtype, f"alibi_bias should keep the slopes' dtype {slopes.dtype}, got {got.dtype}"
        rows, cols = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
        expected = (slopes[:, None, None] * (cols - rows)).masked_fill(cols > rows, float("-inf"))
        assert torch.equal(got, expected), f"alibi_bias({L}, {slopes.tolist()}) gave\n{got}\nexpected\n{expected}"


def grouped_query_attention_scores(query: Tensor, key: Tensor) -> Tensor:
    """Challenge solution: unscaled attention scores when groups of query heads share a key head.

    Args:
        query: shape ``(B, Hq, L, d)``.
        key: shape ``(B, Hkv, S, d)``, with ``Hkv`` dividing ``Hq``.

    Returns:
        Shape ``(B, Hq, L, S)``; query head ``i`` is scored against key head ``i // (Hq // Hkv)``.

    Raises:
        ValueError: if the inputs are not 4-D, do not fit, or ``Hkv`` does not divide ``Hq``.

    Examples:
        >>> q, k = torch.randn(2, 6, 3, 4), torch.randn(2, 2, 5, 4)
        >>> expected = q @ k.repeat_interleave(3, dim=1).transpose(-2, -1)
        >>> torch.allclose(grouped_query_attention_scores(q, k), expected, atol=1e-6)
        True
    """
    _require_tensor(query, "query", ndim=4)
    _require_tensor(key, "key", ndim=4)
    B, Hq, L, d = query.shape
    Hkv = key.size(1)
    if key.size(0) != B or key.size(-1) != d or Hkv == 0 or Hq % Hkv:
        raise ValueError(f"key must have shape (B, Hkv, S, d) = ({B}, Hkv, S, {d}) with Hkv dividing Hq={Hq}, "
                         f"got {tuple(key.shape)}")
    # Consecutive query heads form a group: head i is (group i // g, member i % g), a free view.
    grouped = query.view(B, Hkv, Hq // Hkv, L, d)  # (B, Hkv, g, L, d)
    # Every member of group n meets key head n; the keys are read, never copied.
    scores = torch.einsum("bngqd,bnkd->bngqk", grouped, key)  # (B, Hkv, g, L, S)
    return scores.reshape(B, Hq, L, key.size(2))


def check_grouped_query_attention_scores(candidate: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Check an attempt at ``grouped_query_attention_scores``; raise ``AssertionError`` with a hint if wrong.

    Examples:
        >>> check_grouped_query_attention_scores(grouped_query_attention_scores)
    """
    generator = torch.Generator().manual_seed(3)
    for B, Hq, Hkv, L, S, d in [(2, 6, 2, 3, 5, 4), (1, 4, 4, 2, 2, 3), (1, 4, 1, 3, 1, 2), (2, 8, 4, 1, 3, 5)]:
        query = torch.randn(B, Hq, L, d, generator=generator, dtype=torch.float64)
        key = torch.randn(B, Hkv, S, d, generator=generator, dtype=torch.float64)
        got = candidate(query, key)
        expected = query @ key.repeat_interleave(Hq // Hkv, dim=1).transpose(-2, -1)
        where = f"query {tuple(query.shape)}, key {tuple(key.shape)}"
        assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert torch.allclose(got, expected), (
            f"{where}: wrong scores; query head i must use key head i // (Hq // Hkv) "
            "(consecutive query heads share a key head, like repeat_interleave, not repeat), and no scaling"
        )
    message = "Hq=6 query heads cannot be shared by Hkv=4 key heads: raise ValueError"
    try:
        candidate(torch.zeros(1, 6, 2, 4), torch.zeros(1, 4, 2, 4))
    except ValueError:
        return
    except Exception as err:  # any other failure is a learner's bug to report, not to crash on
        raise AssertionError(f"{message}, not {type(err).__name__}: {err}") from err
    raise AssertionError(message)
