r"""
# Multi-Head Attention: Many Heads, One Monster

!!! torchenstein "The Professor speaks"
    One attention is one pair of eyes: each query spends its single unit of attention on one blend of
    keys. My finest creature has *many* pairs, each staring at its own slice of every token, and it costs
    me not one extra parameter. Today we build `nn.MultiheadAttention` from scratch, with its very names,
    masks and quirks, prove it equal to PyTorch's bit for bit, and then teach the heads to share their keys
    so the monster's memory fits in the laboratory.

**You will learn to**

- split attention into heads, and explain why $h$ heads cost what one big head costs;
- write `MultiheadAttention` with PyTorch's constructor, parameter names and `forward`, load
  `nn.MultiheadAttention`'s `state_dict` both ways, and prove outputs, weights and gradients equal;
- combine `key_padding_mask` and `attn_mask` in PyTorch's polarity, and read the weights per head or
  averaged, batch first or not, batched or not;
- know when PyTorch takes its inference fast path and what changes there;
- share keys and values between heads (grouped-query and multi-query attention) and count the
  KV-cache memory it saves.

## One head, many heads

The [previous lesson](../attention/index.md) built scaled dot-product attention: softmax of scaled
scores, masks, weights. Here we take it as given. A **head** is one such attention running on its own
$d = E / h$ channels of every token, with its own slice of the query, key and value projections. With
$h$ heads, token width $E$ and the four projection matrices $W^Q, W^K, W^V, W^O$ of shape $(E, E)$:

$$
\operatorname{head}_i = \operatorname{Attention}(Q W_i^Q, K W_i^K, V W_i^V), \qquad
\operatorname{MultiHead}(Q, K, V) = \operatorname{Concat}(\operatorname{head}_1, \dots, \operatorname{head}_h)\, W^O ,
$$

where $W_i^Q$ holds the $d$ columns of head $i$ (in PyTorch's $xW^\top$ layout, the $d$ *rows*
$i d$ to $(i + 1) d - 1$ of the weight).

Why bother? Each head has **its own softmax**, so each query hands out $h$ separate units of attention
instead of one. One big head must blend everything it wants into a single weighted average: "the
previous word" and "the subject of the sentence" come out as one smeared mixture. Four heads can look
at four places at once, each comparing tokens in its own $d$-dimensional subspace, and $W^O$ mixes what
they found.

And it is free. The projections are the same four $(E, E)$ matrices whatever $h$ is: they are merely
*read* as $h$ blocks. Attention itself costs $h$ heads times $L \cdot S \cdot d$ products, which is
$L \cdot S \cdot E$ for any $h$. [`heads_cost`][torchenstein.transformers.multihead.heads_cost] counts
the parameters and measures the FLOPs with PyTorch's own counter:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torch import nn
>>> from torchenstein.transformers.multihead import MultiheadAttention, heads_cost
>>> E, T = 64, 32
>>> for h in (1, 4, 16):
...     print(f"h={h:2}", heads_cost(E, h, seq_len=T))
h= 1 {'params': 16640, 'flops': 1310720}
h= 4 {'params': 16640, 'flops': 1310720}
h=16 {'params': 16640, 'flops': 1310720}
>>> {"params by hand": 4 * E * E + 4 * E,                            # 4 weights, 4 biases
...  "flops by hand": 4 * (2 * T * E * E) + 2 * (2 * T * T * E)}     # 4 projections; scores and mixing
{'params by hand': 16640, 'flops by hand': 1310720}

```

## Splitting and merging heads: already done

How the heads are cut out and glued back was taught before, and is only used here:
[Tensor Metamorphosis](../../tensors/metamorphosis/index.md) splits `(B, T, E)` into `(B, h, T, d)`
with a view and a transpose ([`split_heads`][torchenstein.tensors.metamorphosis.split_heads],
[`merge_heads`][torchenstein.tensors.metamorphosis.merge_heads]),
[Advanced Einsum](../../tensors/einsum_advanced/index.md) folds the split into the projection, and the
[previous lesson](../attention/index.md#multi-head-attention-in-einsums) wrote a whole multi-head forward
pass as einsums under `nn.MultiheadAttention`'s parameter names,
[`einsum_multi_head_attention`][torchenstein.transformers.attention.einsum_multi_head_attention]. What
that function lacks is a module: parameters of its own, their initialisation, both masks, the layouts,
dropout, the weights. The module below computes the very same thing, as its first doctest shows.

## `MultiheadAttention` from scratch

[`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention] takes
`nn.MultiheadAttention`'s constructor, `(embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None, dtype=None)`, and owns the
same parameters: the three input projections stacked into one `in_proj_weight` of shape $(3E, E)$ (the
fused projection of [The Linear Layer](../../nn/linear/index.md)), `in_proj_bias` $(3E,)$, and
`out_proj`, the course's own [`Linear`][torchenstein.nn.linear.Linear]. PyTorch builds `out_proj`
first (it draws its own numbers), then fills `in_proj_weight` with Xavier's uniform initialisation and
zeroes both biases; we do the same in the same order, so one seed gives both modules the same bits:

```pycon
>>> _ = torch.manual_seed(0)
>>> ours = MultiheadAttention(8, num_heads=2, batch_first=True)
>>> _ = torch.manual_seed(0)
>>> theirs = nn.MultiheadAttention(8, num_heads=2, batch_first=True)
>>> list(ours.state_dict())
['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
>>> all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
True
>>> with torch.no_grad():                     # biases away from zero, so they are tested too
...     for p in theirs.parameters():
...         _ = p.add_(0.3 * torch.randn(p.shape))
>>> ours.load_state_dict(theirs.state_dict())
<All keys matched successfully>
>>> theirs.load_state_dict(ours.state_dict())
<All keys matched successfully>

```

The `forward` takes PyTorch's arguments, `(query, key, value, key_padding_mask=None, need_weights=True,
attn_mask=None, average_attn_weights=True, is_causal=False)`, and returns `(output, weights or None)`.
Step by step:

1. bring every input to one layout, `(B, T, E)`: an unbatched `(T, E)` input becomes a batch of one, a
   `(T, B, E)` input (the default, `batch_first=False`) is transposed, a free view;
2. project: self-attention (`query is key is value`) runs one fused product for all three, and a
   shared memory (`key is value`) one for keys and values, as PyTorch does; then split into heads,
   `(B, h, T, d)`;
3. merge both masks into one additive float mask (next section);
4. multiply the *queries* by $1/\sqrt{d}$ before the product, PyTorch's order, and call the course's
   [`attention_with_weights`][torchenstein.transformers.attention.attention_with_weights] with
   `scale=1`; attention dropout runs in training mode only (see [Train vs Eval](../../nn/modes/index.md));
5. merge the heads and apply `out_proj`; average the weights over the heads if asked.

Self-attention has $S = L$; cross-attention reads another sequence, so $S \ne L$ in general:

```pycon
>>> x = torch.randn(3, 5, 8)                  # (B, L, E)
>>> memory = torch.randn(3, 7, 8)             # (B, S, E)
>>> out, weights = ours(x, memory, memory)
>>> {"output": out.shape, "weights": weights.shape}
{'output': torch.Size([3, 5, 8]), 'weights': torch.Size([3, 5, 7])}
>>> torch.testing.assert_close((out, weights), theirs(x, memory, memory))
>>> torch.testing.assert_close(ours(x, x, x), theirs(x, x, x))
>>> from torchenstein.transformers.attention import einsum_multi_head_attention
>>> params = (ours.in_proj_weight, ours.in_proj_bias, ours.out_proj.weight, ours.out_proj.bias)
>>> torch.testing.assert_close(out, einsum_multi_head_attention(x, memory, memory, 2, *params))

```

The tests (`tests/test_multihead.py`) prove far more. Outputs and weights are **bitwise** equal to
PyTorch's (on its weight-computing path, below) in float32 and float64 for batch first or not, with
and without biases, self- and cross-attention, every mask kind and both together, averaged or per-head
weights, batched and unbatched, in training mode (with `dropout=0`, and with `dropout > 0` under the
same seed) and in evaluation mode; the gradients of the inputs are bitwise equal too, and those of
the parameters equal to float tolerance (their sums over tokens run in another order). In bfloat16 and
float16 the two are not always bitwise equal (PyTorch adds the mask inside `baddbmm`, before rounding,
among other roundings): outputs agree within `atol=rtol=2e-2` and gradients within 5% of their largest
entry. Non-contiguous inputs (strided views, transposes) are bitwise equal too. Initialisation, `state_dict` both ways and the errors are pinned as well.

## Two masks, in PyTorch's polarity

`nn.MultiheadAttention` takes two masks, and its booleans mean the **opposite** of
`scaled_dot_product_attention`'s (the previous lesson's second trap): `True` means *hide*.

- `key_padding_mask`, $(B, S)$: `True` marks a padded key to **ignore**, the same for every query and head.
- `attn_mask`, $(L, S)$ for every sequence and head, or $(B \cdot h, L, S)$ with one mask per sequence
  *and* head, where row $b \cdot h + i$ is sequence $b$, head $i$: `True` means *not allowed*.

Either may instead be a float mask, **added** to the scores. Ours turns each boolean into its float twin
($-\infty$ where `True`), views the padding mask as $(B, 1, 1, S)$ and the attention mask as
$(1, 1, L, S)$ or $(B, h, L, S)$, and adds them: one mask that broadcasts over the scores
$(B, h, L, S)$. A padded sequence with a causal mask:

```pycon
>>> from torchenstein.transformers.attention import causal_mask
>>> lengths = torch.tensor([5, 3, 1])
>>> key_padding_mask = torch.arange(5) >= lengths[:, None]       # (B, S): True = padding, ignore
>>> attn_mask = ~causal_mask(5)                                  # (L, S): True = the future, hidden
>>> out, weights = ours(x, x, x, key_padding_mask=key_padding_mask, attn_mask=attn_mask)
>>> torch.testing.assert_close((out, weights), theirs(x, x, x, key_padding_mask=key_padding_mask,
...                                                   attn_mask=attn_mask))
>>> (weights[1] > 0).long()                                      # sequence 1: 3 real tokens, causal
tensor([[1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0]])
>>> per_head = torch.rand(3 * 2, 5, 5) > 0.5                     # (B * h, L, S)
>>> per_head[..., 0] = False                                     # every query keeps key 0
>>> _, weights = ours(x, x, x, attn_mask=per_head, average_attn_weights=False)
>>> torch.equal(weights[1, 0] == 0, per_head[1 * 2 + 0])         # sequence 1, head 0 is row 2
True
>>> as_float = torch.zeros(3 * 2, 5, 5).masked_fill(per_head, float("-inf"))
>>> torch.testing.assert_close(ours(x, x, x, attn_mask=as_float), ours(x, x, x, attn_mask=per_head))

```

`is_causal=True` is only a *hint* in `nn.MultiheadAttention`: the causal `attn_mask` must come with it
(PyTorch refuses the hint alone, and so do we, with a `ValueError`). One exception: PyTorch's fast
path, below, accepts the hint alone and then applies *no* mask at all.

## Weights, layouts and unbatched inputs

With `need_weights=True` (the default) the weights come back **averaged over the heads**, $(B, L, S)$;
`average_attn_weights=False` gives them per head, $(B, h, L, S)$; `need_weights=False` returns `None`,
and PyTorch then calls its fused `F.scaled_dot_product_attention`, which never builds the weights (our
numbers then agree to float tolerance, no longer bitwise). `batch_first=False`, PyTorch's default,
expects `(T, B, E)`; a 2-D input `(T, E)` is one unbatched sequence, whatever `batch_first` says.

```pycon
>>> out, averaged = ours(x, x, x)
>>> _, each_head = ours(x, x, x, average_attn_weights=False)
>>> {"averaged": averaged.shape, "each head": each_head.shape}
{'averaged': torch.Size([3, 5, 5]), 'each head': torch.Size([3, 2, 5, 5])}
>>> {"averaged is the heads' mean": torch.equal(averaged, each_head.mean(dim=1)),
...  "need_weights=False gives None": ours(x, x, x, need_weights=False)[1] is None}
{"averaged is the heads' mean": True, 'need_weights=False gives None': True}
>>> seq_first = MultiheadAttention(8, 2)                          # batch_first=False: (T, B, E)
>>> _ = seq_first.load_state_dict(ours.state_dict())
>>> xt = x.transpose(0, 1)                                        # (L, B, E)
>>> torch.testing.assert_close(seq_first(xt, xt, xt)[0].transpose(0, 1), out)
>>> single, single_weights = ours(x[0], x[0], x[0])               # (L, E): unbatched
>>> {"output": single.shape, "weights": single_weights.shape}
{'output': torch.Size([5, 8]), 'weights': torch.Size([5, 5])}
>>> torch.testing.assert_close(single, out[0])

```

## PyTorch's fast path

In inference, `nn.MultiheadAttention` may skip all of the above and call one fused kernel,
`torch._native_multi_head_attention`. It does so only when every condition holds: evaluation mode, no
gradient needed, batched input with `batch_first=True`, self-attention (the *same* tensor as query, key
and value), an even number of heads, biases on, boolean masks only (a float mask sends it down the slow
road), no autocast, and the fast path switched on (`torch.backends.mha.get_fastpath_enabled()`).
[`fast_path_taken`][torchenstein.transformers.multihead.fast_path_taken] watches for that call:

```pycon
>>> from torchenstein.transformers.multihead import fast_path_taken
>>> _ = theirs.eval(), ours.eval()
>>> with torch.no_grad():
...     print("self-attention, fast path:", fast_path_taken(theirs, x, x, x))
...     print("cross-attention, fast path:", fast_path_taken(theirs, x, memory, memory))
...     torch.testing.assert_close(ours(x, x, x, key_padding_mask=key_padding_mask),
...                                theirs(x, x, x, key_padding_mask=key_padding_mask))
self-attention, fast path: True
cross-attention, fast path: False

```

!!! note "Where it differs from PyTorch"
    - **Fully masked rows.** A query whose keys are all hidden (an all-padding sequence, say) gets zero
      weights and a zero attention output in ours, so its output is `out_proj.bias`: the guard of the
      previous lesson. PyTorch's weight-computing path returns `NaN` there, and so does its fast path on
      the CPU (a plain tensor of `NaN`, no nested tensor); its `need_weights=False` path returns
      `out_proj.bias` like ours on recent releases (older ones gave `NaN`). The fast path's other rows
      agree with ours to float tolerance when a mask is given, bitwise without one.
    - **The `is_causal` hint.** When PyTorch takes its `need_weights=False` road with no padding mask, it
      trusts the hint and *ignores* `attn_mask`; ours always applies the mask. They agree whenever the
      mask really is causal. And on its fast path PyTorch accepts `is_causal=True` *without* `attn_mask`
      (no error, as of torch 2.13) and lets every query see every key, the future included; ours refuses.
    - **Not built here:** `kdim`/`vdim` other than `embed_dim`, `add_bias_kv`, `add_zero_attn` and nested
      tensors; asking for them raises a `ValueError` that says so. Bad shapes, and inputs whose dtype is not
      the parameters', raise `ValueError`/`TypeError` where PyTorch raises `AssertionError`/`RuntimeError`, and mixed boolean/float masks are accepted
      without PyTorch's deprecation warning.
    - **Dropout.** With `need_weights=True` both draw the same random numbers, so with one seed they drop
      the same weights; with `need_weights=False` PyTorch's fused kernel draws its own.
    - **Speed.** Ours always builds the $(B, h, L, S)$ weights; PyTorch's `need_weights=False` road and its
      fast path use fused kernels that need less memory and time.

```pycon
>>> empty = torch.tensor([[False] * 5, [True] * 5, [False] * 5])    # sequence 1 is all padding
>>> with torch.no_grad():
...     theirs_out, _ = theirs(x, x, x, key_padding_mask=empty)      # the fast path
...     ours_out, _ = ours(x, x, x, key_padding_mask=empty)
>>> {"PyTorch: NaN": theirs_out[1].isnan().all().item(),
...  "ours: out_proj.bias": torch.equal(ours_out[1], ours.out_proj.bias.expand(5, 8))}
{'PyTorch: NaN': True, 'ours: out_proj.bias': True}

```

## Reading the heads

Every head draws its own attention map. [`plot_heads`][torchenstein.transformers.multihead.plot_heads]
runs a seeded, untrained layer with a causal mask over the sentence of the previous lesson and draws
each head's map beside their average, which is what `need_weights=True` returns by default:

![Four causal attention maps of an untrained four-head layer over the nine words "the monster ate the bolt and the monster slept", each lighting up different keys, and a fifth map, their average, paler and more uniform than any single head.](plot_heads.svg)

Even untrained, each head prefers its own keys, and the average is paler than any of them: averaging
blurs exactly the sharp, specialised patterns that make heads worth having.

## Sharing keys and values: GQA and MQA

When a model generates text one token at a time, it keeps the keys and values of every earlier token in
a **KV cache**, so that each new token computes only its own. That cache, not the weights, fills the
accelerator's memory for long sequences. **Grouped-query attention** (GQA) keeps all $H_q$ query heads
but only $H_{kv}$ key/value heads, each shared by a group of $g = H_q / H_{kv}$ neighbouring query
heads; **multi-query attention** (MQA) is the extreme $H_{kv} = 1$, and ordinary multi-head attention
the other extreme, $H_{kv} = H_q$. The $W^K$ and $W^V$ projections shrink to $(H_{kv} d, E)$, and the
cache shrinks by the factor $g$.

[`grouped_query_attention`][torchenstein.transformers.multihead.grouped_query_attention] copies each
key/value head $g$ times with `repeat_interleave`, so query head $i$ meets key head $\lfloor i / g \rfloor$,
and hands the rest to the course's attention. PyTorch 2.5 added the same as
`F.scaled_dot_product_attention(..., enable_gqa=True)` (guarded below for older releases);
[`grouped_query_attention_scores`][torchenstein.transformers.attention.grouped_query_attention_scores],
a challenge of the attention lesson, computes the scores without the copy.

```pycon
>>> from torchenstein.transformers.multihead import grouped_query_attention, sdpa_supports_gqa
>>> _ = torch.manual_seed(0)
>>> q = torch.randn(2, 8, 5, 16)                                  # (B, Hq=8, L, d)
>>> k, v = torch.randn(2, 2, 5, 16), torch.randn(2, 2, 5, 16)     # (B, Hkv=2, S, d): groups of 4
>>> out = grouped_query_attention(q, k, v, is_causal=True)
>>> out.shape
torch.Size([2, 8, 5, 16])
>>> k4, v4 = k.repeat_interleave(4, dim=1), v.repeat_interleave(4, dim=1)
>>> torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k4, v4, is_causal=True))
>>> if sdpa_supports_gqa():                                       # torch >= 2.5
...     torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
>>> torch.equal(k4[:, 5], k[:, 5 // 4])                           # query head 5 reads key head 1
True
>>> grouped_query_attention(q, k[:, :1], v[:, :1]).shape          # MQA: one K/V head for all
torch.Size([2, 8, 5, 16])

```

## What the KV cache weighs

Every layer caches one key and one value tensor of shape $(B, H_{kv}, T, d)$, so

$$
\text{KV-cache bytes} = 2 \cdot \text{layers} \cdot H_{kv} \cdot d \cdot T \cdot B \cdot \text{bytes per element}.
$$

[`kv_cache_bytes`][torchenstein.transformers.multihead.kv_cache_bytes] is the formula;
[`allocate_kv_cache`][torchenstein.transformers.multihead.allocate_kv_cache] builds the real tensors and
[`tensor_bytes`][torchenstein.transformers.multihead.tensor_bytes] measures them,
`t.nelement() * t.element_size()`. For a 7B-sized decoder (32 layers, 32 query heads of width 128) in
bfloat16 with 4096 tokens, the tensors are made on the `meta` device, which gives them shapes and dtypes
but no memory; a small cache is made for real:

```pycon
>>> from torchenstein.transformers.multihead import (
...     KV_CACHE_EXAMPLE, KV_HEADS, allocate_kv_cache, kv_cache_bytes, tensor_bytes)
>>> KV_CACHE_EXAMPLE
{'num_layers': 32, 'head_dim': 128, 'seq_len': 4096, 'batch_size': 1}
>>> for name, heads in KV_HEADS.items():
...     formula = kv_cache_bytes(num_kv_heads=heads, **KV_CACHE_EXAMPLE)
...     cache = allocate_kv_cache(num_kv_heads=heads, device="meta", **KV_CACHE_EXAMPLE)
...     print(f"{name}: {heads:2} K/V heads, {formula // 2**20:4} MiB, measured equal: {tensor_bytes(cache) == formula}")
MHA: 32 K/V heads, 2048 MiB, measured equal: True
GQA:  8 K/V heads,  512 MiB, measured equal: True
MQA:  1 K/V heads,   64 MiB, measured equal: True
>>> small = allocate_kv_cache(num_layers=2, num_kv_heads=2, head_dim=8, seq_len=16, dtype=torch.float16)
>>> {"measured": tensor_bytes(small), "formula": kv_cache_bytes(2, 2, 8, 16, dtype=torch.float16)}
{'measured': 2048, 'formula': 2048}

```

The cache grows linearly with the tokens and with the batch, and GQA divides it by the group size
$g$. Sharing costs some quality, little for small groups and more for a single shared head, which is
why many recent open models chose groups rather than MQA.

![KV-cache memory in GiB against the number of cached tokens, on log-log axes, for 32, 8 and 1 key/value heads: three parallel straight lines, each a factor of 4 or 8 below the previous one.](plot_kv_cache_memory.svg)

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the padding mask the wrong way round"
    Hammer's tokenizer hands him a Hugging Face `attention_mask`, 1 for a real token and 0 for padding,
    and he passes it straight in as `key_padding_mask`. In PyTorch `True` means **ignore**: his queries
    now see *only* the padding, and a sentence without padding sees nothing at all. Flip it.

    ```pycon
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
    >>> attention_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])   # Hugging Face: 1 = keep
    >>> out, weights = mha(x[:2], x[:2], x[:2], key_padding_mask=attention_mask.bool())   # Hammer
    >>> {"sentence 0 reads only padding": bool(weights[0, :, 3:].sum(-1).allclose(torch.ones(5))),
    ...  "sentence 1 is NaN": out[1].isnan().all().item()}
    {'sentence 0 reads only padding': True, 'sentence 1 is NaN': True}
    >>> out, weights = mha(x[:2], x[:2], x[:2], key_padding_mask=attention_mask == 0)    # True = ignore
    >>> {"weight on sentence 0's padding": weights[0, :, 3:].sum().item(), "any NaN": out.isnan().any().item()}
    {"weight on sentence 0's padding": 0.0, 'any NaN': False}

    ```

!!! hammer "Dr. Hammer's trap: forgetting `batch_first`"
    Hammer's batches are `(B, T, E)`, but `nn.MultiheadAttention` defaults to `(T, B, E)`. Nothing
    complains: the output has the right shape. But the module now reads dim 0 as time, so each token
    attends to the tokens at the same position *in the other sentences*. Change sentence 1 and sentence
    0's output moves. With a padding mask the shapes usually give him away, unless $B = T$.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> hammer = nn.MultiheadAttention(8, 2)                     # batch_first=False
    >>> fixed = nn.MultiheadAttention(8, 2, batch_first=True)
    >>> _ = fixed.load_state_dict(hammer.state_dict())
    >>> batch = torch.randn(3, 3, 8)                             # (B, T, E), and B == T
    >>> other = batch.clone()
    >>> other[1] += 1.0                                          # change sentence 1 only
    >>> {"Hammer: sentence 0 moved": not torch.allclose(hammer(batch, batch, batch)[0][0],
    ...                                                  hammer(other, other, other)[0][0]),
    ...  "fixed: sentence 0 moved": not torch.allclose(fixed(batch, batch, batch)[0][0],
    ...                                                 fixed(other, other, other)[0][0])}
    {'Hammer: sentence 0 moved': True, 'fixed: sentence 0 moved': False}
    >>> _ = hammer(batch, batch, batch, key_padding_mask=torch.zeros(3, 3, dtype=torch.bool))   # B == T: silent
    >>> long = torch.randn(2, 4, 8)                              # B != T
    >>> hammer(long, long, long, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    Traceback (most recent call last):
    ...
    AssertionError: Expected key_padded_mask.shape[0] to be 4, but got 2

    ```

!!! hammer "Dr. Hammer's trap: merging heads with the wrong view"
    Attention hands back a fresh `(B, h, T, d)` tensor. Hammer transposes it to `(B, T, h, d)` and calls
    `.view(B, T, E)`: the transposed tensor does not read its memory row by row, so `view` refuses. He
    "fixes" it by dropping the transpose, and `view` happily glues head 0's tokens into one "token".
    Mark each element with `10 * token + channel` and watch (the split side of this trap is in
    [Tensor Metamorphosis](../../tensors/metamorphosis/index.md)):

    ```pycon
    >>> from torchenstein.tensors.metamorphosis import merge_heads, split_heads
    >>> tokens = (10 * torch.arange(4)[:, None] + torch.arange(4)).unsqueeze(0)   # (B=1, T=4, E=4)
    >>> heads = split_heads(tokens, num_heads=2).contiguous()    # like attention's fresh output
    >>> heads.transpose(1, 2).view(1, 4, 4)
    Traceback (most recent call last):
    ...
    RuntimeError: view size is not compatible with input tensor's size and stride (at least one dimension spans across two contiguous subspaces). Use .reshape(...) instead.
    >>> heads.view(1, 4, 4)[0, 0]                                # Hammer: tokens 0 and 1 of head 0
    tensor([ 0,  1, 10, 11])
    >>> heads.transpose(1, 2).contiguous().view(1, 4, 4)[0, 0]   # token 0, all its channels
    tensor([0, 1, 2, 3])
    >>> torch.equal(merge_heads(heads), tokens)
    True

    ```

!!! hammer "Dr. Hammer's trap: averaged weights read as one head"
    Hammer wants to show "what head 0 looks at" and plots `weights[0]`. With the default
    `average_attn_weights=True` the weights are $(B, L, S)$: `weights[0]` is *sentence* 0, averaged over
    all heads. Ask for the heads, and index the head dimension.

    ```pycon
    >>> _, weights = ours(x, x, x, attn_mask=attn_mask)                 # averaged: (B, L, S)
    >>> _, per_head = ours(x, x, x, attn_mask=attn_mask, average_attn_weights=False)   # (B, h, L, S)
    >>> {"weights": weights.shape, "per_head": per_head.shape}
    {'weights': torch.Size([3, 5, 5]), 'per_head': torch.Size([3, 2, 5, 5])}
    >>> {"weights[0] is head 0": torch.equal(weights[0], per_head[0, 0]),
    ...  "weights[0] is the heads' mean": torch.equal(weights[0], per_head[0].mean(dim=0))}
    {'weights[0] is head 0': False, "weights[0] is the heads' mean": True}

    ```

## Challenges

**1. One mask for both.** Write `causal_padding_mask(key_padding_mask, num_heads, dtype=torch.float32)`:
from a boolean $(B, S)$ padding mask (`True` = padding), return the float $(B \cdot h, S, S)$ `attn_mask`
that is 0 where query $i$ may see key $j$ ($j \le i$ and $j$ not padding) and $-\infty$ elsewhere, row
$b \cdot h + i$ for sequence $b$, head $i$. Passed alone to `nn.MultiheadAttention`, it must give what
the causal mask and the padding mask give together.

**2. From MHA to GQA by mean pooling.** GQA models are often made from trained multi-head ones by
averaging the key (and value) heads of each group (Ainslie et al., 2023). Write
`mean_pool_kv_heads(weight, num_heads, num_kv_heads)` for a projection weight $(H d, E)$ or bias
$(H d,)$ stored head by head: return $(H_{kv} d, \dots)$ where new head $n$ is the mean of heads
$n g$ to $n g + g - 1$. Raise `ValueError` if `num_kv_heads` does not divide `num_heads`.

Check an attempt with `check_causal_padding_mask(my_function)` or `check_mean_pool_kv_heads(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.transformers import multihead as lesson
>>> lesson.check_causal_padding_mask(lesson.causal_padding_mask)
>>> lesson.check_mean_pool_kv_heads(lesson.mean_pool_kv_heads)

```
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.nn.linear import Linear, linear
from torchenstein.tensors.metamorphosis import merge_heads, split_heads
from torchenstein.transformers.attention import (
    attention_with_weights,
    causal_mask,
    scaled_dot_product_attention,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class MultiheadAttention(nn.Module):
    r"""Multi-head attention from scratch, a drop-in twin of ``torch.nn.MultiheadAttention``.

    The constructor, the parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``,
    ``out_proj.bias``) and their initialisation are PyTorch's, so the same seed gives the same weights and a
    ``state_dict`` moves between the two in both directions.

    Args:
        embed_dim: $E$, the width of every token, split into ``num_heads`` heads of $E / h$ channels.
        num_heads: $h$, how many heads; it must divide ``embed_dim``.
        dropout: the probability of dropping each attention weight, in training mode only.
        bias: learn the biases of the input and output projections.
        add_bias_kv: must be ``False`` (PyTorch's extra learned key and value are not built here).
        add_zero_attn: must be ``False`` (neither is PyTorch's extra zero key).
        kdim: the width of the keys; only ``None`` or ``embed_dim``.
        vdim: the width of the values; only ``None`` or ``embed_dim``.
        batch_first: inputs are ``(B, T, E)`` when ``True``, ``(T, B, E)`` when ``False`` (PyTorch's default).
        device: where to create the parameters.
        dtype: the parameters' dtype.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if a size is not positive, ``num_heads`` does not divide ``embed_dim``, ``dropout`` is
            outside $[0, 1]$, or a feature this module does not build is asked for.

    Examples:
        >>> mha = MultiheadAttention(8, 2, batch_first=True)
        >>> [(name, tuple(p.shape)) for name, p in mha.named_parameters()]
        [('in_proj_weight', (24, 8)), ('in_proj_bias', (24,)), ('out_proj.weight', (8, 8)), ('out_proj.bias', (8,))]
        >>> MultiheadAttention(8, 2, kdim=4)
        Traceback (most recent call last):
        ...
        ValueError: kdim must be None or embed_dim=8 (separate key and value widths are not built here), got 4
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_init(embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim, batch_first)
        super().__init__()
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        self.dropout = float(dropout)
        self.head_dim = embed_dim // num_heads
        # The attributes PyTorch's own code reads on an attention module (nn.TransformerEncoderLayer does).
        self.kdim = self.vdim = embed_dim
        self._qkv_same_embed_dim, self.bias_k, self.bias_v, self.add_zero_attn = True, None, None, False
        factory = {"device": device, "dtype": dtype}
        # The query, key and value projections stacked along the output rows, in that order: (3E, E).
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))  # (3E,)
        else:
            self.register_parameter("in_proj_bias", None)
        # The course's own Linear draws its weight (and bias) here, as nn.Linear would: the first draws.
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # PyTorch's order: Xavier for the packed weight (after out_proj drew its own), then zero biases.
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        r"""Attend from ``query`` to ``key`` / ``value`` with every head, as ``nn.MultiheadAttention`` does.

        Args:
            query: $(L, B, E)$, or $(B, L, E)$ with ``batch_first``, or $(L, E)$ unbatched.
            key: $(S, B, E)$, $(B, S, E)$ or $(S, E)$, like ``query``.
            value: the same shape as ``key``.
            key_padding_mask: $(B, S)$ (or $(S,)$ unbatched): bool with ``True`` = *ignore this key*, or
                float, added to the scores of each key.
            need_weights: also return the attention weights.
            attn_mask: $(L, S)$ for every sequence and head, or $(B \cdot h, L, S)$ (row ``b * h + i`` for
                sequence ``b``, head ``i``; $(h, L, S)$ unbatched): bool with ``True`` = *not allowed*, or
                float, added to the scores.
            average_attn_weights: average the returned weights over the heads.
            is_causal: a hint that ``attn_mask`` is the causal mask; as in PyTorch the mask must be given,
                and it is the mask that is applied.

        Returns:
            ``(output, weights)``: output shaped like ``query``; weights $(B, L, S)$ averaged or
            $(B, h, L, S)$ per head (without $B$ when unbatched), or ``None`` without ``need_weights``.

        Raises:
            TypeError: if an input or mask has the wrong type or dtype.
            ValueError: if a shape does not fit, or ``is_causal`` comes without ``attn_mask``.

        Examples:
            >>> mha = MultiheadAttention(8, 2, batch_first=True)
            >>> x = torch.randn(3, 5, 8)
            >>> out, weights = mha(x, x, x)
            >>> out.shape, weights.shape
            (torch.Size([3, 5, 8]), torch.Size([3, 5, 5]))
            >>> mha(x, x, x, key_padding_mask=torch.zeros(3, 4, dtype=torch.bool))
            Traceback (most recent call last):
            ...
            ValueError: key_padding_mask must have shape (B, S) = (3, 5), got (3, 4)
        """
        batched = _check_forward(self, query, key, value, key_padding_mask, attn_mask, is_causal)
        # Which inputs are the same tensor decides how many projections run, as in PyTorch. (PyTorch
        # unsqueezes unbatched inputs one by one and so never sees them as one: it projects them apart.)
        shared_key_value = batched and key is value
        self_attention = shared_key_value and query is key
        # One layout inside, (B, T, E): an unbatched input is a batch of one, (T, B, E) is transposed (a view).
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        B, L, E = query.shape
        S, h, d = key.size(1), self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value, self_attention, shared_key_value)  # each (B, h, T, d)
        mask = _merge_masks(attn_mask, key_padding_mask, B, h, L, S, query.dtype)  # (B or 1, h or 1, L, S)
        # PyTorch scales the queries before the product (L * d multiplications instead of L * S); in the
        # same order our numbers round as PyTorch's do, so the product itself is scaled by 1.
        q = q * math.sqrt(1.0 / d)
        dropout_p = self.dropout if self.training else 0.0
        out, weights = attention_with_weights(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=1.0)
        # The heads go back side by side, (B, h, L, d) -> (B, L, E), and W^O mixes them.
        output = self.out_proj(merge_heads(out))  # (B, L, E)
        if not batched:
            output = output.squeeze(0)  # (L, E)
        elif not self.batch_first:
            output = output.transpose(0, 1)  # (L, B, E)
        if not need_weights:
            return output, None
        if average_attn_weights:
            weights = weights.mean(dim=1)  # (B, L, S): one map per sequence, the heads' average
        return output, weights if batched else weights.squeeze(0)

    def _project(self, query: Tensor, key: Tensor, value: Tensor, self_attention: bool, shared: bool):
        """The input projections, split into heads: three ``(B, h, T, d)`` tensors."""
        E, h = self.embed_dim, self.num_heads
        w, b = self.in_proj_weight, self.in_proj_bias
        w_q, w_kv = w[:E], w[E:]  # (E, E), (2E, E)
        b_q, b_kv = (None, None) if b is None else (b[:E], b[E:])
        if self_attention:
            # One input, one fused product for all three: (B, T, E) -> (B, T, 3E), cut along the channels.
            q, k, v = linear(query, w, b).chunk(3, dim=-1)  # each (B, T, E)
        elif shared:
            # Cross-attention with one memory: keys and values share a product, (B, S, 2E).
            q = linear(query, w_q, b_q)
            k, v = linear(key, w_kv, b_kv).chunk(2, dim=-1)
        else:
            (w_k, w_v), (b_k, b_v) = w_kv.chunk(2), (None, None) if b is None else b_kv.chunk(2)
            q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)
        # Channels (h, d), then heads in front of the tokens: a view, no copy.
        return split_heads(q, h), split_heads(k, h), split_heads(v, h)


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    # PyTorch's masks: a bool True hides (a score of -inf), a float is added to the scores as it is.
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _merge_masks(
    attn_mask: Tensor | None, key_padding_mask: Tensor | None, B: int, h: int, L: int, S: int, dtype: torch.dtype
) -> Tensor | None:
    """Both masks as one additive float mask that broadcasts to the scores ``(B, h, L, S)``, or ``None``."""
    merged = None
    if attn_mask is not None:
        attn_mask = _additive(attn_mask, dtype)
        # (L, S) is shared by every sequence and head; (B * h, L, S) lists sequence b's heads at b * h + i.
        merged = attn_mask.view(1, 1, L, S) if attn_mask.dim() == 2 else attn_mask.view(B, h, L, S)
    if key_padding_mask is not None:
        # One verdict per key of each sequence, the same for every head and every query: (B, 1, 1, S).
        padding = _additive(key_padding_mask, dtype).view(B, 1, 1, S)
        merged = padding if merged is None else merged + padding
    return merged


def heads_cost(embed_dim: int, num_heads: int, seq_len: int, batch_size: int = 1) -> dict[str, int]:
    """Count the parameters and the forward FLOPs of a self-attention `MultiheadAttention` layer.

    The FLOPs are measured by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass, without
    gradients, of a fresh layer over zeros.

    Args:
        embed_dim: $E$.
        num_heads: $h$.
        seq_len: $T$, the number of tokens attending to each other.
        batch_size: $B$.

    Returns:
        ``{"params": ..., "flops": ...}``.

    Raises:
        ValueError: if a size is not a positive int or ``num_heads`` does not divide ``embed_dim``.

    Examples:
        >>> heads_cost(8, 2, seq_len=4)
        {'params': 288, 'flops': 2560}
    """
    from torch.utils.flop_counter import FlopCounterMode

    _check_positive(seq_len, "seq_len")
    _check_positive(batch_size, "batch_size")
    mha = MultiheadAttention(embed_dim, num_heads, batch_first=True)
    x = torch.zeros(batch_size, seq_len, embed_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        mha(x, x, x, need_weights=False)
    return {"params": sum(p.numel() for p in mha.parameters()), "flops": counter.get_total_flops()}


def fast_path_taken(module: nn.MultiheadAttention, *args, **kwargs) -> bool:
    """Call ``module(*args, **kwargs)`` and say whether PyTorch took its fused inference fast path.

    The fast path is the one call to ``torch._native_multi_head_attention`` inside
    ``nn.MultiheadAttention.forward``; this function watches for it and puts it back afterwards.

    Examples:
        >>> mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
        >>> x = torch.randn(2, 3, 8)
        >>> with torch.no_grad():
        ...     print(fast_path_taken(mha, x, x, x), fast_path_taken(mha.train(), x, x, x))
        True False
    """
    native = torch._native_multi_head_attention
    calls = []

    def spy(*a, **k):
        calls.append(True)
        return native(*a, **k)

    torch._native_multi_head_attention = spy
    try:
        module(*args, **kwargs)
    finally:
        torch._native_multi_head_attention = native
    return bool(calls)


def grouped_query_attention(
    query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
) -> Tensor:
    r"""Attention in which groups of query heads share one key/value head (GQA; MQA with one K/V head).

    Equal to ``F.scaled_dot_product_attention(..., enable_gqa=True)`` (torch 2.5 and later): query head
    ``i`` reads key/value head ``i // (Hq // Hkv)``, the order of ``repeat_interleave``.

    Args:
        query: $(\dots, H_q, L, d)$.
        key: $(\dots, H_{kv}, S, d)$, with $H_{kv}$ dividing $H_q$.
        value: $(\dots, H_{kv}, S, d_v)$.
        attn_mask: as for
            [`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention].
        dropout_p: as there.
        is_causal: as there.
        scale: as there.

    Returns:
        $(\dots, H_q, L, d_v)$.

    Raises:
        TypeError: if an input is not a tensor.
        ValueError: if the inputs have fewer than 3 dims, or $H_{kv}$ does not divide $H_q$.

    Examples:
        >>> q, k, v = torch.randn(2, 6, 3, 4), torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
        >>> grouped_query_attention(q, k, v).shape
        torch.Size([2, 6, 3, 4])
        >>> grouped_query_attention(q, k[:, :1].expand(2, 4, 5, 4), v)
        Traceback (most recent call last):
        ...
        ValueError: key and value must have the same number of heads Hkv, dividing query's Hq=6, got key (2, 4, 5, 4), value (2, 2, 5, 4)
    """
    _check_gqa(query, key, value)
    group = query.size(-3) // key.size(-3)
    # Each K/V head is copied once per query head of its group, neighbours together: heads
    # (k0, k1) become (k0, k0, k0, k1, k1, k1) for groups of 3, so query head i meets key head i // 3.
    key = key.repeat_interleave(group, dim=-3)  # (..., Hq, S, d)
    value = value.repeat_interleave(group, dim=-3)  # (..., Hq, S, d_v)
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


@functools.cache
def sdpa_supports_gqa() -> bool:
    """Say whether the installed PyTorch's ``F.scaled_dot_product_attention`` takes ``enable_gqa`` (2.5+).

    Examples:
        >>> isinstance(sdpa_supports_gqa(), bool)
        True
    """
    q = torch.zeros(1, 2, 1, 1)
    k = torch.zeros(1, 1, 1, 1)
    try:
        F.scaled_dot_product_attention(q, k, k, enable_gqa=True)
    except TypeError:
        return False
    return True


def kv_cache_bytes(
    num_layers: int, num_kv_heads: int, head_dim: int, seq_len: int, batch_size: int = 1,
    dtype: torch.dtype = torch.bfloat16,
) -> int:
    r"""The memory of a KV cache by formula: $2 \cdot \text{layers} \cdot H_{kv} \cdot d \cdot T \cdot B \cdot$ bytes.

    Args:
        num_layers: attention layers, each with its own cache.
        num_kv_heads: $H_{kv}$: the query heads for MHA, fewer for GQA, 1 for MQA.
        head_dim: $d$, the width of one head.
        seq_len: $T$, the tokens kept.
        batch_size: $B$, the sequences kept.
        dtype: the cache's dtype (its ``itemsize`` is the bytes per element).

    Returns:
        Bytes, an int.

    Raises:
        ValueError: if a size is not a positive int.
        TypeError: if ``dtype`` is not a ``torch.dtype``.

    Examples:
        >>> kv_cache_bytes(num_layers=2, num_kv_heads=4, head_dim=8, seq_len=16, dtype=torch.float32)
        8192
    """
    sizes = {"num_layers": num_layers, "num_kv_heads": num_kv_heads, "head_dim": head_dim,
             "seq_len": seq_len, "batch_size": batch_size}
    for name, n in sizes.items():
        _check_positive(n, name)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
    # Two tensors (K and V) per layer, each holding B * H_kv * T vectors of d elements.
    return 2 * num_layers * num_kv_heads * head_dim * seq_len * batch_size * dtype.itemsize


def allocate_kv_cache(
    num_layers: int, num_kv_heads: int, head_dim: int, seq_len: int, batch_size: int = 1,
    dtype: torch.dtype = torch.bfloat16, device: torch.device | str | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Make a KV cache: for every layer a key and a value tensor, each ``(B, H_kv, T, d)``.

    Takes the arguments of `kv_cache_bytes`, and ``device`` (``"meta"`` gives shapes without memory).

    Returns:
        ``[(key, value), ...]``, one pair per layer, filled with zeros.

    Examples:
        >>> cache = allocate_kv_cache(2, 4, 8, 16, dtype=torch.float32)
        >>> len(cache), cache[0][0].shape
        (2, torch.Size([1, 4, 16, 8]))
    """
    kv_cache_bytes(num_layers, num_kv_heads, head_dim, seq_len, batch_size, dtype)  # checks the arguments
    shape = (batch_size, num_kv_heads, seq_len, head_dim)
    return [(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))
            for _ in range(num_layers)]


def tensor_bytes(tensors: Sequence[Tensor] | Sequence[Sequence[Tensor]]) -> int:
    """Measure the bytes of tensors (or pairs of them): ``sum(t.nelement() * t.element_size())``.

    Examples:
        >>> tensor_bytes([torch.zeros(3, dtype=torch.float64), (torch.zeros(2), torch.zeros(2))])
        40
    """
    total = 0
    for item in tensors:
        if isinstance(item, Tensor):
            total += item.nelement() * item.element_size()
        else:
            total += tensor_bytes(item)
    return total


KV_CACHE_EXAMPLE = {"num_layers": 32, "head_dim": 128, "seq_len": 4096, "batch_size": 1}
"""A 7B-sized decoder's shape (32 layers of 32 query heads of width 128), for the KV-cache sums."""

KV_HEADS = {"MHA": 32, "GQA": 8, "MQA": 1}
"""K/V heads of the example: one per query head, one per group of 4, and a single shared one."""


def plot_heads(*, sentence: str = "the monster ate the bolt and the monster slept", num_heads: int = 4,
               embed_dim: int = 32, seed: int = 0) -> Figure:
    """Draw each head's causal attention map, and their average, for a seeded, untrained layer.

    Every distinct word gets a random embedding (repeated words share theirs); the inputs are scaled up
    so that even untrained heads have sharp opinions.

    Args:
        sentence: words separated by spaces.
        num_heads: heads of the layer.
        embed_dim: width of the layer.
        seed: seed for the embeddings and the layer (the global generator is restored afterwards).

    Returns:
        A figure with one map per head and one for the average.

    Examples:
        >>> fig = plot_heads(sentence="a b a", num_heads=2, embed_dim=8)
        >>> len(fig.axes)
        3
    """
    tokens = sentence.split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mha = MultiheadAttention(embed_dim, num_heads, batch_first=True)
        vocabulary = {word: torch.randn(embed_dim) for word in dict.fromkeys(tokens)}
    x = 3.0 * torch.stack([vocabulary[word] for word in tokens])[None]  # (1, T, E)
    hide_future = ~causal_mask(len(tokens))  # PyTorch's polarity: True = not allowed
    with torch.no_grad():
        _, per_head = mha(x, x, x, attn_mask=hide_future, average_attn_weights=False)  # (1, h, T, T)
    maps = [*per_head[0], per_head[0].mean(dim=0)]
    titles = [f"head {i}" for i in range(num_heads)] + ["average of the heads"]
    fig, axes = new_figure(1, len(maps), width=2.6 * len(maps), height=3.3)
    for ax, weights, title in zip(axes, maps, titles, strict=True):
        ax.grid(False)
        ax.imshow(weights.numpy(), cmap="Purples", vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens if ax is axes[0] else [], fontsize=7)
    axes[0].set_ylabel("query")
    fig.supxlabel("key", fontsize=9)
    return fig


def plot_kv_cache_memory(*, seq_lens: Sequence[int] = (512, 1024, 2048, 4096, 8192, 16384, 32768)) -> Figure:
    """Draw the KV-cache memory of the 7B-sized example against the sequence length, for MHA, GQA and MQA.

    Args:
        seq_lens: the sequence lengths to plot.

    Returns:
        A figure with one axis.

    Examples:
        >>> len(plot_kv_cache_memory(seq_lens=(8, 16)).axes)
        1
    """
    fig, (ax,) = new_figure(1, 1, width=6.4, height=3.6)
    sizes = {k: v for k, v in KV_CACHE_EXAMPLE.items() if k != "seq_len"}
    for (name, heads), colour in zip(KV_HEADS.items(), PALETTE, strict=False):
        gib = [kv_cache_bytes(num_kv_heads=heads, seq_len=T, **sizes) / 2**30 for T in seq_lens]
        ax.plot(seq_lens, gib, "o-", color=colour, label=f"{name}: {heads} K/V heads")
    ax.set(xscale="log", yscale="log", xlabel="tokens in the cache", ylabel="GiB (bfloat16, batch 1)")
    ax.set_xticks(list(seq_lens), [str(T) for T in seq_lens])
    ax.minorticks_off()
    ax.set_title("KV cache of a 32-layer model with 32 query heads of 128")
    ax.legend()
    return fig


def causal_padding_mask(key_padding_mask: Tensor, num_heads: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Challenge solution: one additive ``attn_mask`` that is a causal mask and a key padding mask at once.

    Args:
        key_padding_mask: ``(B, S)`` bool, ``True`` where a key is padding (PyTorch's polarity).
        num_heads: $h$ of the attention layer the mask is for.
        dtype: the float dtype of the result.

    Returns:
        ``(B * num_heads, S, S)``: 0 where query ``i`` may see key ``j`` (``j <= i`` and ``j`` is not
        padding), ``-inf`` elsewhere; row ``b * num_heads + i`` belongs to sequence ``b``, head ``i``.

    Raises:
        TypeError: if ``key_padding_mask`` is not a bool tensor.
        ValueError: if it is not 2-D or ``num_heads`` is not a positive int.

    Examples:
        >>> causal_padding_mask(torch.tensor([[False, False, True]]), num_heads=1)
        tensor([[[0., -inf, -inf],
                 [0., 0., -inf],
                 [0., 0., -inf]]])
    """
    if not isinstance(key_padding_mask, Tensor) or key_padding_mask.dtype != torch.bool:
        got = getattr(key_padding_mask, "dtype", key_padding_mask)
        raise TypeError(f"key_padding_mask must be a bool tensor, got {got!r}")
    if key_padding_mask.dim() != 2:
        raise ValueError(f"key_padding_mask must have shape (B, S), got {tuple(key_padding_mask.shape)}")
    _check_positive(num_heads, "num_heads")
    B, S = key_padding_mask.shape
    # A key is hidden from a query when it lies in the future or is padding: (B, S, S) by broadcasting.
    hidden = ~causal_mask(S, device=key_padding_mask.device) | key_padding_mask[:, None, :]
    # Every head of sequence b gets b's mask, neighbours together: rows b * h to b * h + h - 1.
    hidden = hidden.repeat_interleave(num_heads, dim=0)  # (B * h, S, S)
    return torch.zeros(hidden.shape, dtype=dtype, device=hidden.device).masked_fill(hidden, float("-inf"))


def check_causal_padding_mask(candidate: Callable[..., Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``causal_padding_mask``."""
    generator = torch.Generator().manual_seed(4)
    cases = [
        torch.tensor([[False, False, False]]),
        torch.tensor([[False, False, True, True], [False, False, False, False]]),
        torch.tensor([[False, True], [False, False], [False, True]]),
    ]
    for key_padding_mask, h in zip(cases, (1, 2, 3), strict=True):
        B, S = key_padding_mask.shape
        got = candidate(key_padding_mask, h)
        where = f"key_padding_mask {key_padding_mask.int().tolist()}, num_heads={h}"
        assert isinstance(got, Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.shape == (B * h, S, S), f"{where}: expected shape {(B * h, S, S)}, got {tuple(got.shape)}"
        assert got.dtype == torch.float32, f"{where}: expected the default dtype torch.float32, got {got.dtype}"
        for row in range(B * h):
            b = row // h
            for i in range(S):
                for j in range(S):
                    hidden = j > i or bool(key_padding_mask[b, j])
                    value = got[row, i, j].item()
                    assert value == (float("-inf") if hidden else 0.0), (
                        f"{where}: entry ({row}, {i}, {j}) is {value}, expected {'-inf' if hidden else 0.0} "
                        f"(row {row} is sequence {b}, head {row % h}; True in the padding mask means hidden)"
                    )
        # The same answer as handing PyTorch both masks separately.
        mha = nn.MultiheadAttention(4 * h, h, batch_first=True)
        x = torch.randn(B, S, 4 * h, generator=generator)
        with torch.no_grad():
            merged, _ = mha(x, x, x, attn_mask=got)
            both, _ = mha(x, x, x, attn_mask=_additive(~causal_mask(S), torch.float32),
                          key_padding_mask=_additive(key_padding_mask, torch.float32))
        assert torch.allclose(merged, both, atol=1e-6), f"{where}: nn.MultiheadAttention gives other outputs"
    assert candidate(cases[1], 2, torch.float64).dtype == torch.float64, "the dtype argument is ignored"


def mean_pool_kv_heads(weight: Tensor, num_heads: int, num_kv_heads: int) -> Tensor:
    """Challenge solution: turn a multi-head K or V projection into a grouped one by averaging each group.

    Args:
        weight: a projection weight ``(num_heads * d, E)`` or bias ``(num_heads * d,)``, head by head.
        num_heads: the heads ``weight`` holds.
        num_kv_heads: the heads wanted; it must divide ``num_heads``.

    Returns:
        ``(num_kv_heads * d, ...)``: K/V head ``n`` is the mean of heads ``n * g`` to ``n * g + g - 1``,
        ``g = num_heads // num_kv_heads``.

    Raises:
        ValueError: if the counts are not positive ints, ``num_kv_heads`` does not divide ``num_heads``
            or ``num_heads`` does not divide ``weight.size(0)``.

    Examples:
        >>> mean_pool_kv_heads(torch.arange(4.0), num_heads=4, num_kv_heads=2)
        tensor([0.5000, 2.5000])
    """
    _check_positive(num_heads, "num_heads")
    _check_positive(num_kv_heads, "num_kv_heads")
    if num_heads % num_kv_heads or weight.size(0) % num_heads:
        raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}, which must divide "
                         f"weight.size(0)={weight.size(0)}")
    d = weight.size(0) // num_heads
    # Rows are (head, channel) = (group, member, channel); averaging over the members keeps the groups.
    grouped = weight.reshape(num_kv_heads, num_heads // num_kv_heads, d, *weight.shape[1:])
    return grouped.mean(dim=1).reshape(num_kv_heads * d, *weight.shape[1:])


def check_mean_pool_kv_heads(candidate: Callable[[Tensor, int, int], Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``mean_pool_kv_heads``."""
    generator = torch.Generator().manual_seed(5)
    for H, Hkv, d, E in ((4, 2, 3, 5), (6, 3, 2, 4), (4, 1, 2, 3), (2, 2, 4, 4), (8, 2, 1, 2)):
        g = H // Hkv
        for weight in (torch.randn(H * d, E, generator=generator), torch.randn(H * d, generator=generator)):
            got = candidate(weight, H, Hkv)
            heads = [weight[i * d:(i + 1) * d] for i in range(H)]
            expected = torch.cat([torch.stack(heads[n * g:(n + 1) * g]).mean(0) for n in range(Hkv)])
            where = f"weight {tuple(weight.shape)}, num_heads={H}, num_kv_heads={Hkv}"
            assert isinstance(got, Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
            assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
            assert torch.allclose(got, expected, atol=1e-6), (
                f"{where}: K/V head n must be the mean of the *consecutive* heads n * g .. n * g + g - 1 "
                "(the repeat_interleave convention), each head being d rows"
            )
    # When the heads of each group are equal already, pooling loses nothing: GQA equals MHA.
    k_heads = torch.randn(2, 3, 4, generator=generator).repeat_interleave(2, dim=0)  # 4 heads, pairs equal
    assert torch.equal(candidate(k_heads.reshape(12, 4), 4, 2), k_heads[::2].reshape(6, 4)), (
        "pooling groups of identical heads must give those heads back unchanged"
    )
    try:
        candidate(torch.zeros(6, 2), 3, 2)
    except ValueError:
        return
    raise AssertionError("num_kv_heads=2 does not divide num_heads=3: raise ValueError")


def _check_positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_init(embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim, batch_first) -> None:
    """Raise a clear error for every constructor argument that cannot work (or is not built here)."""
    _check_positive(embed_dim, "embed_dim")
    _check_positive(num_heads, "num_heads")
    if embed_dim % num_heads:
        raise ValueError(f"num_heads must divide embed_dim={embed_dim}, got num_heads={num_heads}")
    if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0.0 <= dropout <= 1.0:
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
    for name, flag in (("bias", bias), ("batch_first", batch_first), ("add_bias_kv", add_bias_kv),
                       ("add_zero_attn", add_zero_attn)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    for name, flag in (("add_bias_kv", add_bias_kv), ("add_zero_attn", add_zero_attn)):
        if flag:
            raise ValueError(f"{name}=True is not built here (an extra key for every sequence); "
                             "use nn.MultiheadAttention")
    for name, dim in (("kdim", kdim), ("vdim", vdim)):
        if dim is not None and dim != embed_dim:
            raise ValueError(f"{name} must be None or embed_dim={embed_dim} (separate key and value widths "
                             f"are not built here), got {dim!r}")


def _check_forward(module: MultiheadAttention, query, key, value, key_padding_mask, attn_mask, is_causal) -> bool:
    """Raise a clear error for every forward argument that cannot work; return whether the input is batched."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != module.in_proj_weight.dtype:
            raise TypeError(f"{name} must have the parameters' dtype {module.in_proj_weight.dtype}, got {t.dtype}")
    if query.dim() not in (2, 3):
        raise ValueError(f"query must be 3-D (batched) or 2-D (unbatched), got shape {tuple(query.shape)}")
    batched = query.dim() == 3
    E = module.embed_dim
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() != query.dim() or t.size(-1) != E:
            raise ValueError(f"{name} must be {query.dim()}-D like query with embed_dim={E} features, "
                             f"got shape {tuple(t.shape)}")
    if key.shape != value.shape:
        raise ValueError(f"key and value must have the same shape, got {tuple(key.shape)} and {tuple(value.shape)}")
    batch_dim = 0 if module.batch_first else 1
    if batched and key.size(batch_dim) != query.size(batch_dim):
        raise ValueError(f"query and key must have the same batch size in dim {batch_dim} (batch_first="
                         f"{module.batch_first}), got {tuple(query.shape)} and {tuple(key.shape)}")
    B = query.size(batch_dim) if batched else None
    L, S = query.size(1 - batch_dim if batched else 0), key.size(1 - batch_dim if batched else 0)
    h = module.num_heads
    for name, mask in (("key_padding_mask", key_padding_mask), ("attn_mask", attn_mask)):
        if mask is None:
            continue
        if not isinstance(mask, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(mask).__name__}")
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise TypeError(f"{name} must be a bool or floating-point tensor, got dtype {mask.dtype}")
    if key_padding_mask is not None:
        expected, text = ((B, S), f"(B, S) = {(B, S)}") if batched else ((S,), f"(S,) = {(S,)}")
        if tuple(key_padding_mask.shape) != expected:
            raise ValueError(f"key_padding_mask must have shape {text}, got {tuple(key_padding_mask.shape)}")
    if attn_mask is not None:
        stacked = (B * h, L, S) if batched else (h, L, S)
        if tuple(attn_mask.shape) not in ((L, S), stacked):
            name = "(B * num_heads, L, S)" if batched else "(num_heads, L, S)"
            raise ValueError(f"attn_mask must have shape (L, S) = {(L, S)} or {name} = {stacked}, "
                             f"got {tuple(attn_mask.shape)}")
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {is_causal!r}")
    if is_causal and attn_mask is None:
        raise ValueError("is_causal=True is only a hint: pass the causal attn_mask too "
                         "(PyTorch refuses the hint alone)")
    return batched


def _check_gqa(query, key, value) -> None:
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 3:
            raise ValueError(f"{name} must have at least 3 dims (..., heads, length, features), got {tuple(t.shape)}")
    Hq, Hkv = query.size(-3), key.size(-3)
    if value.size(-3) != Hkv or Hkv == 0 or Hq % Hkv:
        raise ValueError(f"key and value must have the same number of heads Hkv, dividing query's Hq={Hq}, "
                         f"got key {tuple(key.shape)}, value {tuple(value.shape)}")
