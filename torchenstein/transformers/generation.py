r"""
# Generation and the KV Cache: The Monster Finds Its Voice

!!! torchenstein "The Professor speaks"
    My creature scores every byte it might say next, and then... nothing! A list of 256 numbers is not a
    sentence. Tonight we teach it to speak: to choose a token, append it, and choose again, greedily or
    with a dash of chance that we can tame (temperature, top-k, top-p) and prove equal to Hugging Face's.
    And because a monster that re-reads its whole life story before every word is a slow monster, we give
    it a memory of what it has already thought: the **KV cache**. Every logit stays the same; the work
    does not.

**You will learn to**

- turn the last position's logits into the next token: greedy, temperature, top-k and top-p, each a
  logits processor proved equal to Hugging Face's warper, ties, half precision and edge values included;
- sample reproducibly with a seeded `torch.Generator`;
- build a KV cache for our GPT out of its own modules (prefill, one-token steps, position offsets, the
  bottom-right causal mask) and prove every step's logits equal to recomputing everything;
- generate text token for token as Hugging Face's `GPT2LMHeadModel.generate` does with our weights;
- count what the cache saves (FLOPs, by formula) and what it costs (bytes, by formula and measured), and
  time both decoders yourself.

## One token at a time

A GPT of the [previous lessons](../gpt/index.md) maps token ids $(B, T)$ to **logits** $(B, T, V)$:
at every position, one unnormalised score for each of the $V$ tokens that could come next. To **generate**
(or **decode**) text we keep only the last position's row, a $(B, V)$ tensor, turn it into one new token
per sequence, append it, and run the model again: one token per step, each step conditioned on all
before it. This is **autoregressive** decoding. The rule that turns a row of logits into a token is the
**decoding strategy**. The simplest is **greedy**: take the arg-max, the single likeliest token.

```pycon
>>> import math
>>> import torch
>>> from torchenstein.transformers.gpt import GPT, GPTConfig
>>> from torchenstein.transformers.generation import greedy
>>> _ = torch.manual_seed(0)
>>> model = GPT(GPTConfig(n_layer=2, n_embd=32, n_head=4, block_size=16)).eval()
>>> idx = torch.tensor([list(b"the "), list(b"bolt")])          # (B, T) = (2, 4)
>>> logits, _ = model(idx)                                     # (B, T, V)
>>> next_logits = logits[:, -1]                                # (B, V): the scores of the next token
>>> {"logits": tuple(logits.shape), "next": tuple(next_logits.shape), "greedy": greedy(next_logits).shape}
{'logits': (2, 4, 256), 'next': (2, 256), 'greedy': torch.Size([2])}

```

Greedy decoding is deterministic and often dull: it repeats itself, because the likeliest continuation of
a loop is the loop. **Sampling** draws the token from the model's distribution instead, and a few
**logits processors** reshape that distribution first. A logits processor is a function from logits
$(B, V)$ to logits $(B, V)$; a token it removes gets the `filter_value`, $-\infty$ by default, which
the softmax turns into probability zero.

## Temperature, top-k, top-p

**Temperature** $\tau > 0$ divides the logits: $p = \operatorname{softmax}(z / \tau)$. Below one it
sharpens the distribution towards greedy, above one it flattens it towards uniform:

```pycon
>>> from torchenstein.transformers.generation import temperature_scale, top_k_filter, top_p_filter
>>> row = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
>>> for tau in (0.5, 1.0, 2.0):
...     print(f"tau={tau}:", [round(p, 3) for p in temperature_scale(row, tau).softmax(-1).squeeze(0).tolist()])
tau=0.5: [0.865, 0.117, 0.016, 0.002]
tau=1.0: [0.644, 0.237, 0.087, 0.032]
tau=2.0: [0.455, 0.276, 0.167, 0.102]

```

**Top-k** keeps the $k$ highest logits of each row and removes the rest. A token tied with the $k$-th
highest stays too, so a row can keep more than $k$. **Top-p** (nucleus sampling, Holtzman et al., 2020)
keeps the smallest set of likeliest tokens whose probabilities add up to at least $p$: a long tail of
unlikely tokens is cut however long it is, and a confident row keeps few tokens while an unsure row
keeps many. Hugging Face computes it from the other end: sort the probabilities in *ascending* order,
add them up, and remove every token whose running total is at most $1 - p$. Both processors take
`min_tokens_to_keep`, the number of likeliest tokens that no setting may remove.

```pycon
>>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 3.0]]), top_k=1)          # a tie at the top: both stay
tensor([[-inf, 3., -inf, 3.]])
>>> probs = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
>>> for p in (0.3, 0.65, 0.95):
...     print(f"top_p={p}: kept {top_p_filter(probs.log(), p).isfinite().squeeze(0).tolist()}")
top_p=0.3: kept [False, True, False, False]
top_p=0.65: kept [False, True, False, True]
top_p=0.95: kept [True, True, True, True]
>>> top_p_filter(probs.log(), 0.3, min_tokens_to_keep=3).isfinite().sum().item()
3

```

[`process_logits`][torchenstein.transformers.generation.process_logits] chains them in the order of
Hugging Face's `generate`, temperature first, then top-k, then top-p, and skips each step that would
change nothing: a temperature of 1, a `top_k` of `None` or 0, a `top_p` of 1. That last skip matters at
the edge: `top_p_filter` with `top_p=1.0` still removes a token whose probability underflows to zero
(its running total is $0 \le 1 - 1$), exactly as Hugging Face's `TopPLogitsWarper(1.0)` does, while
`generate` never calls it:

```pycon
>>> from torchenstein.transformers.generation import process_logits
>>> far = torch.tensor([[0.0, -200.0]])                  # exp(-200) is below float32's smallest number
>>> {"top_p_filter(1.0)": top_p_filter(far, 1.0).tolist(), "process_logits": process_logits(far).tolist()}
{'top_p_filter(1.0)': [[0.0, -inf]], 'process_logits': [[0.0, -200.0]]}

```

The processors are Hugging Face's warpers, argument for argument. The comparison, in code (importing
`transformers` takes seconds, so it is not run on this page):

```python
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
scores = torch.randn(4, 50)
assert torch.equal(top_k_filter(scores, 5, min_tokens_to_keep=2), TopKLogitsWarper(5, min_tokens_to_keep=2)(None, scores))
assert torch.equal(top_p_filter(scores, 0.9), TopPLogitsWarper(0.9)(None, scores))
assert torch.equal(temperature_scale(scores, 0.7), TemperatureLogitsWarper(0.7)(None, scores))
```

The tests (`tests/test_generation.py`) prove them *bitwise* equal over random logits and logits full of
ties, in float32, float64, float16 and bfloat16, with batch rows, `top_p` from 0 and $10^{-8}$ up to 1,
`top_k` above the vocabulary, several `min_tokens_to_keep` and `filter_value`s, and rows that already hold
$-\infty$. Top-p sorts with `torch.sort` and takes softmax and running sum in the logits' own dtype, as
Hugging Face does, so even the choice among tied tokens at the cut is the same. **Where it differs from
Hugging Face:** `TemperatureLogitsWarper` refuses an `int` temperature such as `1`; ours takes any
positive number (a test pins it). And ours accept logits of shape $(B, V)$ only.

## Sampling, reproducibly

[`sample`][torchenstein.transformers.generation.sample] turns processed logits into probabilities with a
softmax and draws one token per row with `torch.multinomial`. Randomness you cannot replay is a bug
report you cannot reproduce, so it takes a `torch.Generator`: a private random number generator, seeded
once, that nothing else in the program advances.

```pycon
>>> from torchenstein.transformers.generation import sample
>>> logits = torch.tensor([[1.0, 0.0, -1.0, -math.inf]])
>>> draws = [sample(logits.expand(10_000, 4), generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
>>> frequencies = torch.bincount(draws[0], minlength=4) / 10_000
>>> {"same seed, same draws": torch.equal(draws[0], draws[1]), "other seed": torch.equal(draws[0], draws[2]),
...  "frequencies match softmax": torch.allclose(frequencies, logits.softmax(-1).squeeze(0), atol=0.02),
...  "removed token drawn": bool((draws[0] == 3).any())}
{'same seed, same draws': True, 'other seed': False, 'frequencies match softmax': True, 'removed token drawn': False}

```

## The KV cache

Look at what the naive loop computes. To choose token $t+1$ it runs the model on all $t$ tokens,
although tokens $1 \dots t-1$ were there the step before. With a causal mask a position never sees the
positions after it, so the **keys** and **values** that every layer computed for the earlier tokens are
exactly what they were: only the newest token's are new. A **KV cache** keeps, for every layer, the keys
and values of every token so far, two tensors of shape $(B, H, S, d)$ with $H$ heads of width $d$ and $S$
cached positions. Each step then runs the model on the new token alone: its query attends to all cached
keys plus its own, and its key and value join the cache.

[`KVCache`][torchenstein.transformers.generation.KVCache] allocates those tensors once, for the longest
sequence it will hold, with [`allocate_kv_cache`][torchenstein.transformers.multihead.allocate_kv_cache]
from the [multi-head lesson](../multihead/index.md). [`forward_with_cache`][torchenstein.transformers.generation.forward_with_cache]
runs our GPT's own modules (`wte`, `wpe`, each block's `ln_1`, `attn.c_attn`, `attn.c_proj`, `ln_2`,
`mlp`, then `ln_f` and `lm_head`; `gpt.py` is not touched) with three changes:

1. **Positions continue.** The new tokens sit at positions `cache.length`, `cache.length + 1`, ..., so
   their position embeddings are those rows of `wpe`, not rows 0, 1, ...
2. **Keys and values go into the cache** at those positions, and attention reads all of them.
3. **The causal diagonal sits bottom-right.** The first call, the **prefill**, runs the whole prompt with
   the usual causal mask. A later chunk of $T$ queries against $S$ keys is the *last* $T$ tokens, so
   query $i$ sees keys $0 \dots i + S - T$: the bottom-right alignment of the
   [flash lesson](../flash/index.md), not the top-left one of `is_causal=True`. One new token sees every
   key and needs no mask at all.

Every step's logits equal the last rows of a full recomputation:

```pycon
>>> from torchenstein.transformers.generation import KVCache, forward_with_cache
>>> ids = torch.randint(0, 256, (2, 12))                       # a text of 12 tokens, B = 2
>>> full, _ = model(ids)                                       # (B, 12, V), everything at once
>>> cache = KVCache.for_model(model, batch_size=2)
>>> steps = [forward_with_cache(model, ids[:, :5], cache)]     # the prefill: 5 tokens
>>> steps.append(forward_with_cache(model, ids[:, 5:8], cache))   # a chunk of 3 after the cache
>>> for t in range(8, 12):                                     # then one token at a time
...     steps.append(forward_with_cache(model, ids[:, t:t + 1], cache))
>>> torch.testing.assert_close(torch.cat(steps, dim=1), full)
>>> {"cached positions": cache.length, "keys of layer 0": tuple(cache.layers[0][0].shape)}
{'cached positions': 12, 'keys of layer 0': (2, 4, 16, 8)}

```

The tests hold the logits of every step equal to full recomputation with `assert_close`'s float32
tolerances and to $10^{-12}$ in float64, for prompts of 1 to 16 tokens (the whole `block_size`), chunks
and single steps, batches of 1 and 3, with and without biases, and for the model built from the course's
own parts.

## Generating text

[`generate`][torchenstein.transformers.generation.generate] is the loop, with Hugging Face's argument
names: `max_new_tokens`, `do_sample`, `temperature`, `top_k`, `top_p`, `min_tokens_to_keep`, plus a
`generator` and `use_cache` to switch the cache off. Like Hugging Face it takes the last row of logits in
float32, processes it (when sampling), and picks. Greedy decoding with our cache, without it, and Hugging
Face's `generate` on our weights agree token for token (in `tests/test_generation.py`; sampling too, with
the same seed, since both draw with `torch.multinomial` from the same probabilities):

```python
from torchenstein.transformers.gpt import to_hf
hf = to_hf(model)
ours = generate(model, idx, max_new_tokens=12)
theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=12, do_sample=False, pad_token_id=0)
assert torch.equal(ours, theirs)
```

Our GPT has `block_size` position embeddings and not one more. The last token `generate` picks is never
fed back to the model, so a prompt of $T$ tokens may grow to `block_size + 1` tokens, and no further:
`generate` refuses a request that would outgrow the table, and says which argument to change:

```pycon
>>> from torchenstein.transformers.generation import generate
>>> out = generate(model, idx, max_new_tokens=12)
>>> {"out": tuple(out.shape), "same without the cache": torch.equal(out, generate(model, idx, 12, use_cache=False))}
{'out': (2, 16), 'same without the cache': True}
>>> generate(model, idx, max_new_tokens=14)
Traceback (most recent call last):
...
ValueError: max_new_tokens=14 after a prompt of T=4 tokens needs 17 positions (every token but the last new one is fed to the model), but block_size is 16: ask for at most 13 new tokens

```

(Hugging Face's `generate` only warns: past `n_positions` its GPT-2 then fails deep inside, with an
`IndexError` from the position table; a test pins it.) Our model speaks bytes, so
[`decode`][torchenstein.transformers.tokenization.decode] from the [tokenisation lesson](../tokenization/index.md)
turns its output into text. Untrained, it speaks gibberish: its weights are random, so its "likeliest"
bytes are noise, and many are not even valid UTF-8 (`errors="replace"` shows those as `\ufffd`). Print
it yourself; the capstone lab trains one that makes sense.

```pycon
>>> from torchenstein.transformers.tokenization import decode, encode
>>> prompt = torch.tensor([encode("It's alive", [])])                # (1, 10)
>>> babble = generate(model, prompt, max_new_tokens=6, do_sample=True, generator=torch.Generator().manual_seed(0))
>>> text = decode(babble[0].tolist(), [], errors="replace")
>>> {"starts with the prompt": text.startswith("It's alive"), "new bytes": babble.shape[1] - prompt.shape[1]}
{'starts with the prompt': True, 'new bytes': 6}

```

## What the cache costs, and what it saves

**Memory.** The cache holds $2 \cdot L \cdot H \cdot d \cdot S \cdot B$ numbers: the formula of
[`kv_cache_bytes`][torchenstein.transformers.multihead.kv_cache_bytes], with $H d = C$ for our GPT.
[`gpt_cache_bytes`][torchenstein.transformers.generation.gpt_cache_bytes] applies it, and the bytes of
the tensors agree:

```pycon
>>> from torchenstein.transformers.generation import decode_step_flops, gpt_cache_bytes
>>> capstone = GPTConfig()
>>> {"formula": gpt_cache_bytes(capstone, batch_size=12), "tensors": KVCache(capstone, batch_size=12).nbytes()}
{'formula': 3145728, 'tensors': 3145728}

```

Tiny for the capstone model; for large models and long contexts it is the memory that limits how many
sequences a server can decode at once (the multi-head lesson's grouped-query attention shrinks it).

**Work.** Count the FLOPs of the matrix products (two per multiply-add). Per token and block, the four
projections cost $24C^2$ and the head $2VC$; $L_q$ queries against $S$ keys cost $4 L_q S C$ per block.
Without a cache the step that ends at $t$ tokens runs all of them, $L_q = S = t$; with it, only the
newest, $L_q = 1$. [`decode_step_flops`][torchenstein.transformers.generation.decode_step_flops] is that
formula (a test holds it equal to PyTorch's `FlopCounterMode` on a real step):

$$
\text{no cache: } t\,(24LC^2 + 2VC) + 4LCt^2, \qquad \text{cache: } (24LC^2 + 2VC) + 4LCt .
$$

The two differ by exactly a factor $t$: without the cache every one of the $t$ tokens goes through the
same projections, and every query meets all $t$ keys, where the cached step does that for one. Summed
over a whole generation, the uncached cost grows with the square of its length and the cached one
linearly:

```pycon
>>> gpt2 = GPTConfig.gpt2()
>>> [decode_step_flops(gpt2, t, use_cache=False) // decode_step_flops(gpt2, t, use_cache=True) for t in (16, 256, 1024)]
[16, 256, 1024]
>>> totals = {cached: sum(decode_step_flops(gpt2, t, cached) for t in range(1, 1025)) for cached in (False, True)}
>>> {"1024 tokens, no cache (TFLOPs)": round(totals[False] / 1e12, 1), "with cache": round(totals[True] / 1e12, 1)}
{'1024 tokens, no cache (TFLOPs)': 142.9, 'with cache': 0.3}

```

![Two panels for GPT-2 small. Left: the GFLOPs of one decoding step against the context length; without a cache the cost climbs steeply with the length, with the cache it is a nearly flat line near zero. Right: the running total on a log scale; the uncached total ends about five hundred times above the cached one at 1024 tokens.](plot_decoding_cost.svg)

**Time.** FLOPs are not seconds: a one-token step is too small to keep a processor busy, and it reads
every weight to do little with each. Measure. [`decoding_speed`][torchenstein.transformers.generation.decoding_speed]
times greedy decoding with and without our cache on the capstone model (untrained: the speed does not
care) and returns tokens per second. Print it on your machine with
`for name, value in decoding_speed().items(): print(f"{name:10} {value:,.1f}")`:

```pycon
>>> from torchenstein.transformers.generation import decoding_speed
>>> tiny = GPT.from_config(n_layer=1, n_embd=16, n_head=2, block_size=8).eval()
>>> list(decoding_speed(tiny, prompt_tokens=2, repeat=1))
['no cache', 'KV cache', 'speed-up']

```

The race with Hugging Face lives in `python -m torchenstein.bench gpt`, which now times our cached
decoder beside Hugging Face's `generate` with and without its own cache.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: positions that restart at zero"
    Hammer caches keys and values, feeds the new token alone, and lets the model number the positions of
    its input as it always did: from zero. Every new token is embedded as if it began the text. Nothing
    crashes; the logits are simply those of another sentence.

    ```pycon
    >>> cache = KVCache.for_model(model, batch_size=2)
    >>> _ = forward_with_cache(model, ids[:, :11], cache)
    >>> hammer = forward_with_cache(model, ids[:, 11:], cache, position_ids=torch.arange(1))
    >>> torch.allclose(hammer[:, -1], full[:, 11], atol=1e-4)
    False
    >>> cache.length = 11                                   # forget Hammer's step, and redo it right
    >>> torch.testing.assert_close(forward_with_cache(model, ids[:, 11:], cache)[:, -1], full[:, 11])

    ```

!!! hammer "Dr. Hammer's trap: top-p before the temperature"
    Hammer cuts the nucleus first and warms the survivors afterwards. The nucleus is then chosen from the
    *unheated* distribution: at a temperature of 2 the tail he should sample from was already thrown away
    (and at a temperature below 1 he keeps tokens the sharper distribution would drop). Hugging Face's
    `generate`, and `process_logits`, apply the temperature first.

    ```pycon
    >>> row = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])
    >>> hammer = temperature_scale(top_p_filter(row, 0.9), 2.0)
    >>> right = process_logits(row, temperature=2.0, top_p=0.9)
    >>> {"Hammer keeps": hammer.isfinite().sum().item(), "temperature first keeps": right.isfinite().sum().item()}
    {'Hammer keeps': 3, 'temperature first keeps': 4}

    ```

!!! hammer "Dr. Hammer's trap: a nucleus with nobody in it"
    Hammer writes top-p the obvious way: sort descending, remove every token whose running total exceeds
    $p$. When the likeliest token alone holds more than $p$, its running total already exceeds it, and he
    removes it too, and with it everything. A softmax of a row of $-\infty$ is $0/0$, NaN, and
    `torch.multinomial` refuses it. Keep the token that crosses the line, and keep at least
    `min_tokens_to_keep`, as `top_p_filter` does.

    ```pycon
    >>> def hammer_top_p(logits, top_p):
    ...     sorted_logits, order = logits.sort(descending=True)
    ...     remove = sorted_logits.softmax(-1).cumsum(-1) > top_p
    ...     return logits.masked_fill(remove.scatter(-1, order, remove), -math.inf)
    >>> confident = torch.tensor([[5.0, 1.0, 0.0]])          # the best token has probability 0.97
    >>> hammer_top_p(confident, 0.9).softmax(-1)
    tensor([[nan, nan, nan]])
    >>> sample(hammer_top_p(confident, 0.9))
    Traceback (most recent call last):
    ...
    RuntimeError: probability tensor contains either `inf`, `nan` or element < 0
    >>> top_p_filter(confident, 0.9).isfinite().tolist()
    [[True, False, False]]

    ```

!!! hammer "Dr. Hammer's trap: a cache grown with `torch.cat`"
    Hammer's cache starts empty and grows by `torch.cat([cache, new])` at every step. Each `cat` allocates
    a new tensor and copies *everything* cached so far into it, so $n$ steps copy $1 + 2 + \dots + n$ rows:
    quadratic in the length, on top of the attention that reads them anyway, with a fresh allocation
    every step and a shape that changes every step (which stops `torch.compile` and CUDA graphs from
    reusing their work). `KVCache` allocates once and writes each row in place. Hugging Face's default
    `DynamicCache` grows by `torch.cat` too; its `StaticCache` preallocates, for exactly these reasons.

    ```pycon
    >>> new_row = torch.zeros(1, 4, 1, 8)                   # one token's keys in one layer, (B, H, 1, d)
    >>> grown, copied, addresses = new_row[:, :, :0], 0, set()
    >>> for step in range(64):
    ...     grown = torch.cat([grown, new_row], dim=2)
    ...     copied += grown.nelement() * grown.element_size()
    ...     addresses.add(grown.data_ptr())
    >>> buffer, written = torch.zeros(1, 4, 64, 8), 0
    >>> for step in range(64):
    ...     buffer[:, :, step:step + 1] = new_row
    ...     written += new_row.nelement() * new_row.element_size()
    >>> {"cat: bytes copied": copied, "preallocated: bytes written": written, "cat: new tensors": len(addresses) > 1}
    {'cat: bytes copied': 266240, 'preallocated: bytes written': 8192, 'cat: new tensors': True}

    ```

## Challenges

**1. Repetition penalty.** Write `repetition_penalty(input_ids, logits, penalty)`, Hugging Face's
`RepetitionPenaltyLogitsProcessor` for logits $(B, V)$: every token that occurs in row $b$ of
`input_ids` $(B, T)$, once or many times, has its logit divided by `penalty` when positive and multiplied
by it when negative (so `penalty > 1` always makes it less likely). The result keeps the logits' dtype.

**2. Min-p.** Write `min_p_filter(logits, min_p, filter_value=-math.inf, min_tokens_to_keep=1)`, Hugging
Face's `MinPLogitsWarper`: remove every token whose probability is below `min_p` times the probability of
the likeliest token in its row, but keep the `min_tokens_to_keep` likeliest whatever happens.

Check an attempt with `check_repetition_penalty(my_function)` (or `check_min_p_filter`). The Professor's
answers pass (and the tests prove them equal to Hugging Face's):

```pycon
>>> from torchenstein.transformers.generation import (
...     check_min_p_filter, check_repetition_penalty, min_p_filter, repetition_penalty)
>>> check_repetition_penalty(repetition_penalty)
>>> check_min_p_filter(min_p_filter)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from torchenstein.lab import new_figure, time_it
from torchenstein.transformers.gpt import GPT, GPTConfig
from torchenstein.transformers.multihead import allocate_kv_cache, kv_cache_bytes, tensor_bytes

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


# Decoding strategies: each processor takes logits (B, V) and returns logits (B, V), with `filter_value`
# (-inf by default) where a token is removed. They are Hugging Face's warpers, line for line in behaviour.


def greedy(logits: Tensor) -> Tensor:
    """Pick the highest-scoring token of every row: greedy decoding.

    Args:
        logits: scores of shape ``(B, V)``.

    Returns:
        Token ids, shape ``(B,)``, int64. A tie goes to the lowest id, as ``argmax`` does.

    Examples:
        >>> greedy(torch.tensor([[0.1, 2.0, 2.0], [3.0, -1.0, 0.0]]))
        tensor([1, 0])
    """
    _check_logits(logits)
    return logits.argmax(dim=-1)


def temperature_scale(logits: Tensor, temperature: float) -> Tensor:
    """Divide the logits by ``temperature``: Hugging Face's ``TemperatureLogitsWarper``.

    Args:
        logits: scores of shape ``(B, V)``.
        temperature: a positive number; below 1 sharpens the distribution, above 1 flattens it.

    Returns:
        ``logits / temperature``, same shape and dtype.

    Raises:
        ValueError: if ``temperature`` is not positive (0 is greedy decoding: use `greedy`).

    Examples:
        >>> temperature_scale(torch.tensor([[2.0, 1.0]]), 0.5)
        tensor([[4., 2.]])
    """
    _check_logits(logits)
    _check_temperature(temperature)
    return logits / temperature


def top_k_filter(logits: Tensor, top_k: int, filter_value: float = -math.inf, min_tokens_to_keep: int = 1) -> Tensor:
    """Keep the ``top_k`` highest logits of every row: Hugging Face's ``TopKLogitsWarper``.

    Args:
        logits: scores of shape ``(B, V)``.
        top_k: how many tokens to keep (raised to ``min_tokens_to_keep``, capped at ``V``).
        filter_value: what a removed token's logit becomes.
        min_tokens_to_keep: keep at least this many.

    Returns:
        The logits with ``filter_value`` below the k-th largest of each row. Tokens tied with the k-th
        largest are all kept, so a row may keep more than ``top_k``.

    Examples:
        >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 3.0]]), top_k=1)
        tensor([[-inf, 3., -inf, 3.]])
    """
    _check_logits(logits)
    _check_positive_int(top_k, "top_k")
    _check_positive_int(min_tokens_to_keep, "min_tokens_to_keep")
    k = min(max(top_k, min_tokens_to_keep), logits.size(-1))
    # The k-th largest value of each row, (B, 1); everything strictly below it goes.
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, filter_value)


def top_p_filter(logits: Tensor, top_p: float, filter_value: float = -math.inf, min_tokens_to_keep: int = 1) -> Tensor:
    """Keep the smallest set of likeliest tokens whose probability adds up to ``top_p``: nucleus sampling.

    Hugging Face's ``TopPLogitsWarper``: sort ascending, add up the probabilities from the least likely
    upwards, and drop every token whose running total stays at or below ``1 - top_p``; the
    ``min_tokens_to_keep`` likeliest always stay.

    Args:
        logits: scores of shape ``(B, V)``.
        top_p: the probability mass to keep, in ``[0, 1]``.
        filter_value: what a removed token's logit becomes.
        min_tokens_to_keep: keep at least this many.

    Returns:
        The filtered logits, same shape and dtype.

    Examples:
        >>> logits = torch.tensor([[4.0, 3.0, 2.0, 1.0]]).log()     # probabilities 0.4, 0.3, 0.2, 0.1
        >>> top_p_filter(logits, top_p=0.65).isfinite()
        tensor([[ True,  True, False, False]])
    """
    _check_logits(logits)
    _check_top_p(top_p)
    _check_positive_int(min_tokens_to_keep, "min_tokens_to_keep")
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)  # (B, V), least likely first
    # The softmax and the running sum are taken in the logits' dtype, exactly as Hugging Face does.
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    # A token whose running total (it and everything less likely) is at most 1 - top_p lies outside the
    # nucleus: the tokens above it already hold top_p of the probability.
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -min_tokens_to_keep:] = False  # the likeliest sit at the end
    # Back from sorted order to vocabulary order: entry sorted_indices[b, j] takes remove_sorted[b, j].
    remove = remove_sorted.scatter(-1, sorted_indices, remove_sorted)
    return logits.masked_fill(remove, filter_value)


def process_logits(
    logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
    filter_value: float = -math.inf, min_tokens_to_keep: int = 1,
) -> Tensor:
    """Temperature, then top-k, then top-p, in the order (and with the skips) of Hugging Face's ``generate``.

    A temperature of 1, a ``top_k`` of ``None`` or 0, and a ``top_p`` of 1 each switch their step off.

    Examples:
        >>> process_logits(torch.tensor([[1.0, 2.0, 3.0]]), temperature=0.5, top_k=2)
        tensor([[-inf, 4., 6.]])
    """
    if temperature != 1.0:
        logits = temperature_scale(logits, temperature)
    if top_k is not None and top_k != 0:
        logits = top_k_filter(logits, top_k, filter_value, min_tokens_to_keep)
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p, filter_value, min_tokens_to_keep)
    return logits


def sample(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row from ``softmax(logits)``.

    Args:
        logits: scores of shape ``(B, V)``; ``-inf`` entries have probability zero.
        generator: a seeded ``torch.Generator`` for reproducible draws (``None``: PyTorch's global one).

    Returns:
        Token ids, shape ``(B,)``, int64.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> sample(torch.tensor([[0.0, -math.inf, 0.0]]), generator=g).shape
        torch.Size([1])
    """
    _check_logits(logits)
    probs = logits.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


# The KV cache.


class KVCache:
    """A preallocated key/value cache for our `GPT`: per layer a key and a value tensor ``(B, H, S_max, d)``.

    The tensors come from `torchenstein.transformers.multihead.allocate_kv_cache` and are written in
    place; ``length`` says how many positions hold real keys and values.

    Args:
        config: the model's `GPTConfig` (layers, heads, width).
        batch_size: sequences decoded together, $B$.
        max_length: the most positions it can hold (default and maximum: ``config.block_size``).
        dtype: the dtype of keys and values (the model's).
        device: where to keep them (the model's).

    Examples:
        >>> cache = KVCache(GPTConfig(n_layer=2, n_embd=32, n_head=4, block_size=16), batch_size=3)
        >>> len(cache.layers), tuple(cache.layers[0][0].shape), cache.length
        (2, (3, 4, 16, 8), 0)
    """

    def __init__(self, config: GPTConfig, batch_size: int = 1, *, max_length: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> None:
        max_length = _check_cache_args(config, batch_size, max_length)
        self.config, self.batch_size, self.max_length = config, batch_size, max_length
        self.layers = allocate_kv_cache(config.n_layer, config.n_head, config.n_embd // config.n_head,
                                        max_length, batch_size, dtype, device)
        self.length = 0

    @classmethod
    def for_model(cls, model: GPT, batch_size: int = 1, max_length: int | None = None) -> KVCache:
        """A cache with the model's config, dtype and device."""
        weight = model.transformer.wte.weight
        return cls(model.config, batch_size, max_length=max_length, dtype=weight.dtype, device=weight.device)

    def append(self, layer: int, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Write ``T`` new keys and values ``(B, H, T, d)`` after the cached ones of ``layer``.

        Returns:
            Views of all keys and values so far, ``(B, H, length + T, d)``. ``length`` itself moves on only
            when the whole model has run (see `forward_with_cache`), since every layer writes the same slots.
        """
        keys, values = self.layers[layer]
        end = self.length + key.shape[2]
        # Copy into the slots that were reserved at the start: no new memory, nothing old is moved.
        keys[:, :, self.length:end] = key
        values[:, :, self.length:end] = value
        return keys[:, :, :end], values[:, :, :end]

    def nbytes(self) -> int:
        """The bytes the cache tensors take, measured with `torchenstein.transformers.multihead.tensor_bytes`."""
        return tensor_bytes(self.layers)


def forward_with_cache(model: GPT, idx: Tensor, cache: KVCache, position_ids: Tensor | None = None) -> Tensor:
    """Run our `GPT`'s own modules on ``T`` new tokens, reading and extending a `KVCache`.

    The first call (the **prefill**) passes the whole prompt; every later call passes the tokens that came
    after it, usually one. Positions continue from ``cache.length``, and the new queries attend to every
    cached key plus their own, with the causal diagonal aligned bottom-right.

    Args:
        model: our `GPT` (in eval mode for generation: dropout would act otherwise).
        idx: the new token ids, ``(B, T)``.
        cache: the cache, holding the keys and values of the ``cache.length`` tokens before ``idx``.
        position_ids: the positions of the new tokens, ``(T,)``, as Hugging Face's ``position_ids``
            (default: ``cache.length`` onwards, the only right answer for one unpadded text).

    Returns:
        Logits for the new positions, ``(B, T, V)``, equal to the last ``T`` positions of ``model(all ids)``.

    Raises:
        TypeError: if ``idx`` is not an integer tensor or ``cache`` not a `KVCache`.
        ValueError: if the batch size differs from the cache's, or the tokens do not fit in it.

    Examples:
        >>> model = GPT.from_config(n_layer=1, n_embd=32, n_head=2, block_size=8).eval()
        >>> cache = KVCache.for_model(model, batch_size=1)
        >>> forward_with_cache(model, torch.tensor([[1, 2, 3]]), cache).shape, cache.length
        (torch.Size([1, 3, 256]), 3)
    """
    B, T = _check_cache_call(model, idx, cache, position_ids)
    start = cache.length
    t = model.transformer
    # Position ids continue where the cache stops: the new tokens sit at start .. start + T - 1.
    pos = torch.arange(start, start + T, device=idx.device) if position_ids is None else position_ids  # (T,)
    x = t.drop(t.wte(idx) + t.wpe(pos))  # (B, T, C)
    for layer, block in enumerate(t.h):
        # The block's own modules, in its order: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
        x = x + _attention_with_cache(block.attn, block.ln_1(x), cache, layer)
        x = x + block.mlp(block.ln_2(x))  # (B, T, C)
    cache.length = start + T
    return model.lm_head(t.ln_f(x))  # (B, T, V)


def _attention_with_cache(attn, x: Tensor, cache: KVCache, layer: int) -> Tensor:
    B, T, C = x.shape
    H = attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)  # three (B, T, C)
    q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in (q, k, v))  # (B, H, T, d)
    keys, values = cache.append(layer, k, v)  # (B, H, S, d), S = cached + T
    S = keys.shape[2]
    p = attn.dropout if attn.training else 0.0
    if S == T:
        # The prefill: nothing cached, the usual causal mask.
        y = attn.attention(q, keys, values, dropout_p=p, is_causal=True)
    elif T == 1:
        # One new token: it is the last one, so it may see every key, and needs no mask at all.
        y = attn.attention(q, keys, values, dropout_p=p)
    else:
        # A chunk after a cache: query i is token S - T + i, and sees keys 0 .. S - T + i. The diagonal
        # sits bottom-right (the flash lesson's causal_lower_right), not top-left as is_causal puts it.
        mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)  # (T, S)
        y = attn.attention(q, keys, values, attn_mask=mask, dropout_p=p)
    y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
    return attn.resid_dropout(attn.c_proj(y))


@torch.no_grad()
def generate(
    model: GPT, idx: Tensor, max_new_tokens: int, *, do_sample: bool = False, temperature: float = 1.0,
    top_k: int | None = None, top_p: float = 1.0, min_tokens_to_keep: int = 1,
    generator: torch.Generator | None = None, use_cache: bool = True,
) -> Tensor:
    """Extend ``idx`` by ``max_new_tokens`` tokens, greedily or by sampling, with or without a KV cache.

    The arguments are Hugging Face ``generate``'s. As there, the last position's logits are taken in
    float32, processed by `process_logits` (sampling only) and then either arg-maxed or sampled.

    Args:
        model: our `GPT`.
        idx: the prompt, ``(B, T)`` token ids.
        max_new_tokens: how many tokens to add. The last one is never fed back, so the model sees
            ``T + max_new_tokens - 1`` positions, at most ``block_size``.
        do_sample: sample (``True``) or take the arg-max (``False``, greedy).
        temperature: divides the logits before sampling (`temperature_scale`).
        top_k: keep only the ``top_k`` largest logits when sampling (`top_k_filter`; ``None``: all).
        top_p: keep the smallest set of tokens whose probability reaches ``top_p`` (`top_p_filter`).
        min_tokens_to_keep: the fewest tokens top-k and top-p may leave.
        generator: a seeded ``torch.Generator`` for reproducible sampling (``None``: the global one).
        use_cache: run a `KVCache` (``True``) or recompute the whole sequence for every token.

    Returns:
        The prompt and the new tokens, ``(B, T + max_new_tokens)``.

    Raises:
        ValueError: if the sequence would outgrow ``block_size``, or an argument is out of range.

    Examples:
        >>> model = GPT.from_config(n_layer=1, n_embd=32, n_head=2, block_size=8).eval()
        >>> generate(model, torch.tensor([[104, 105]]), max_new_tokens=3).shape
        torch.Size([1, 5])
    """
    B, T = _check_generate(model, idx, max_new_tokens)
    # The output is preallocated too: the prompt, then one column per new token.
    out = idx.new_empty(B, T + max_new_tokens)
    out[:, :T] = idx
    # The cache holds every position the model will see: all but the last new token.
    cache = KVCache.for_model(model, B, max_length=T + max_new_tokens - 1) if use_cache else None
    logits = forward_with_cache(model, idx, cache) if use_cache else model(idx)[0]  # (B, T, V)
    for i in range(T, T + max_new_tokens):
        # Only the last position predicts the next token; float32 as Hugging Face takes it.
        next_logits = logits[:, -1].to(torch.float32)  # (B, V)
        if do_sample:
            next_logits = process_logits(next_logits, temperature=temperature, top_k=top_k, top_p=top_p,
                                         min_tokens_to_keep=min_tokens_to_keep)
            out[:, i] = sample(next_logits, generator)
        else:
            out[:, i] = greedy(next_logits)
        if i + 1 < T + max_new_tokens:
            # With the cache only the newest token runs; without it, the whole sequence runs again.
            logits = forward_with_cache(model, out[:, i:i + 1], cache) if use_cache else model(out[:, :i + 1])[0]
    return out


# What the cache costs and saves.


def gpt_cache_bytes(config: GPTConfig, batch_size: int = 1, max_length: int | None = None,
                    dtype: torch.dtype = torch.float32) -> int:
    """The bytes of a `KVCache` for our GPT, by the formula of `torchenstein.transformers.multihead.kv_cache_bytes`.

    Every layer keeps keys and values for ``n_head`` heads of width ``n_embd // n_head``.

    Examples:
        >>> gpt_cache_bytes(GPTConfig(), batch_size=1)
        262144
    """
    max_length = config.block_size if max_length is None else max_length
    return kv_cache_bytes(config.n_layer, config.n_head, config.n_embd // config.n_head, max_length,
                          batch_size, dtype)


def decode_step_flops(config: GPTConfig, context_len: int, use_cache: bool, batch_size: int = 1) -> int:
    r"""The FLOPs of the matrix products in one decoding step that ends with ``context_len`` tokens.

    Per token and block the four projections cost $24C^2$ FLOPs (2 per multiply-add), the head $2VC$;
    attention of $L_q$ queries against $S$ keys costs $4 L_q S C$ (scores and weighted sum), counted in full
    as a dense kernel computes it. Without a cache the step runs all $t$ = ``context_len`` tokens
    ($L_q = S = t$); with one it runs the newest token only ($L_q = 1$, $S = t$). Embeddings, LayerNorms
    and GELU are left out: they grow the same way and are small.

    Examples:
        >>> config = GPTConfig()
        >>> decode_step_flops(config, 64, use_cache=False) // decode_step_flops(config, 64, use_cache=True)      # exactly context_len
        64
    """
    _check_positive_int(context_len, "context_len")
    _check_positive_int(batch_size, "batch_size")
    L, C, V = config.n_layer, config.n_embd, config.vocab_size
    queries = 1 if use_cache else context_len
    per_token = L * 24 * C * C + 2 * V * C
    attention = L * 4 * queries * context_len * C
    return batch_size * (queries * per_token + attention)


def decoding_speed(model: GPT | None = None, *, prompt_tokens: int = 8, max_new_tokens: int | None = None,
                   batch_size: int = 1, repeat: int = 3) -> dict[str, float]:
    """Measure greedy decoding in tokens per second, with our KV cache and without it.

    Args:
        model: the model (default: an untrained capstone `GPT`, in eval mode); timed on its device.
        prompt_tokens: the length of a random prompt.
        max_new_tokens: new tokens per run (default: fill the context after the prompt).
        batch_size: sequences decoded together.
        repeat: timed runs; `torchenstein.lab.time_it` keeps the median.

    Returns:
        ``{"no cache": tokens/s, "KV cache": tokens/s, "speed-up": ratio}``, counting new tokens of
        every sequence.

    Examples:
        >>> tiny = GPT.from_config(n_layer=1, n_embd=16, n_head=2, block_size=8).eval()
        >>> list(decoding_speed(tiny, prompt_tokens=2, repeat=1))
        ['no cache', 'KV cache', 'speed-up']
    """
    model = GPT(GPTConfig()).eval() if model is None else model
    if max_new_tokens is None:
        max_new_tokens = model.config.block_size - prompt_tokens
    device = model.transformer.wte.weight.device
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (batch_size, prompt_tokens), generator=g).to(device)
    _check_generate(model, prompt, max_new_tokens)
    speed = {}
    for name, use_cache in (("no cache", False), ("KV cache", True)):
        seconds = time_it(lambda use_cache=use_cache: generate(model, prompt, max_new_tokens, use_cache=use_cache),
                          repeat=repeat, device=device)
        speed[name] = batch_size * max_new_tokens / seconds
    speed["speed-up"] = speed["KV cache"] / speed["no cache"]
    return speed


def plot_decoding_cost(config: GPTConfig | None = None) -> Figure:
    """Draw the FLOPs of each decoding step, and of a whole generation, with and without a KV cache.

    Args:
        config: the model (default: GPT-2 small, `GPTConfig.gpt2`), counted with `decode_step_flops`.

    Returns:
        A figure with two panels: FLOPs per step against the context length, and the running total.

    Examples:
        >>> len(plot_decoding_cost().axes)
        2
    """
    config = GPTConfig.gpt2() if config is None else config
    lengths = list(range(1, config.block_size + 1))
    fig, (step_ax, total_ax) = new_figure(1, 2, width=9.0, height=3.4)
    for use_cache, label in ((False, "no cache: the whole context again"), (True, "KV cache: one token")):
        steps = [decode_step_flops(config, t, use_cache) / 1e9 for t in lengths]
        step_ax.plot(lengths, steps, label=label)
        running, totals = 0.0, []
        for s in steps:
            running += s
            totals.append(running)
        total_ax.plot(lengths, totals, label=label)
    step_ax.set_xlabel("tokens in the context")
    step_ax.set_ylabel("GFLOPs of the step")
    step_ax.set_title("One decoding step")
    total_ax.set_yscale("log")
    total_ax.set_xlabel("tokens generated from a 1-token prompt")
    total_ax.set_ylabel("GFLOPs in total")
    total_ax.set_title("The whole generation")
    step_ax.legend(frameon=False, fontsize=8)
    fig.suptitle(f"Decoding cost by formula ({config.n_layer} layers, width {config.n_embd}, vocab {config.vocab_size})")
    return fig


# Challenges.


def repetition_penalty(input_ids: Tensor, logits: Tensor, penalty: float) -> Tensor:
    """Challenge solution: Hugging Face's ``RepetitionPenaltyLogitsProcessor`` on ``(B, V)`` logits.

    Every token that occurs in a row of ``input_ids`` (once or many times) has its logit divided by
    ``penalty`` if positive and multiplied by it if negative, so a penalty above 1 makes it less likely.

    Examples:
        >>> repetition_penalty(torch.tensor([[0, 0, 2]]), torch.tensor([[2.0, 1.0, -1.0]]), penalty=2.0)
        tensor([[ 1.0000,  1.0000, -2.0000]])
    """
    score = torch.gather(logits, 1, input_ids)  # (B, T): the logit of every token seen
    score = torch.where(score < 0, score * penalty, score / penalty)
    # A token seen twice gets the same penalised value twice: the penalty applies once, not per occurrence.
    return logits.scatter(1, input_ids, score)


def check_repetition_penalty(candidate: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``repetition_penalty``."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16):
        logits = torch.randn(3, 11, generator=g).to(dtype)
        input_ids = torch.tensor([[1, 1, 1, 4], [0, 10, 3, 3], [5, 6, 7, 8]])
        for penalty in (1.5, 0.5, 1.0):
            expected = repetition_penalty(input_ids, logits, penalty)
            got = candidate(input_ids, logits.clone(), penalty)
            assert isinstance(got, Tensor) and got.shape == logits.shape and got.dtype == dtype, (
                f"penalty={penalty}, {dtype}: expected a {dtype} tensor of shape {tuple(logits.shape)}")
            assert torch.equal(got, expected), (
                f"penalty={penalty}, {dtype}, input_ids={input_ids.tolist()}: got {got.tolist()}, expected "
                f"{expected.tolist()} (divide positive logits, multiply negative ones, once per distinct token)")


def min_p_filter(logits: Tensor, min_p: float, filter_value: float = -math.inf, min_tokens_to_keep: int = 1) -> Tensor:
    """Challenge solution: Hugging Face's ``MinPLogitsWarper``.

    Remove every token whose probability is below ``min_p`` times the probability of the likeliest token;
    the ``min_tokens_to_keep`` likeliest always stay.

    Examples:
        >>> logits = torch.tensor([[4.0, 2.0, 1.0, 0.5]]).log()     # the best has probability 0.533
        >>> min_p_filter(logits, min_p=0.3).isfinite()
        tensor([[ True,  True, False, False]])
    """
    probs = logits.softmax(dim=-1)  # (B, V)
    remove = probs < min_p * probs.amax(dim=-1, keepdim=True)
    keep = torch.topk(probs, min(min_tokens_to_keep, probs.shape[-1]), dim=-1).indices
    remove = remove.scatter(-1, keep, False)
    return logits.masked_fill(remove, filter_value)


def check_min_p_filter(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``min_p_filter``."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        logits = (3 * torch.randn(4, 13, generator=g)).to(dtype)
        for min_p, keep, value in ((0.1, 1, -math.inf), (0.5, 1, -100.0), (1.0, 3, -math.inf), (0.0, 1, -math.inf)):
            expected = min_p_filter(logits, min_p, value, keep)
            got = candidate(logits.clone(), min_p, filter_value=value, min_tokens_to_keep=keep)
            assert isinstance(got, Tensor) and got.shape == logits.shape and got.dtype == dtype, (
                f"min_p={min_p}, {dtype}: expected a {dtype} tensor of shape {tuple(logits.shape)}")
            assert torch.equal(got, expected), (
                f"min_p={min_p}, min_tokens_to_keep={keep}, filter_value={value}, {dtype}: kept "
                f"{got.ne(value).sum(-1).tolist()} tokens per row, expected {expected.ne(value).sum(-1).tolist()}")


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_logits(logits: object) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        got = f"dtype {logits.dtype}" if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor, got {got}")
    if logits.dim() != 2 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (B, V) with V >= 1, got shape {tuple(logits.shape)}")


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _check_temperature(temperature: object) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {temperature!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature} (for temperature 0, decode greedily)")


def _check_top_p(top_p: object) -> None:
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
        raise TypeError(f"top_p must be a number, got {top_p!r}")
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")


def _check_cache_args(config: object, batch_size: object, max_length: object) -> int:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    max_length = config.block_size if max_length is None else max_length
    _check_positive_int(batch_size, "batch_size")
    _check_positive_int(max_length, "max_length")
    if max_length > config.block_size:
        raise ValueError(f"max_length must be at most block_size={config.block_size}, got {max_length}")
    return max_length


def _check_ids(idx: object) -> tuple[int, int]:
    if not isinstance(idx, Tensor) or idx.dtype not in (torch.int64, torch.int32):
        got = f"dtype {idx.dtype}" if isinstance(idx, Tensor) else type(idx).__name__
        raise TypeError(f"idx must be a tensor of token ids (torch.int64 or torch.int32), got {got}")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must have shape (B, T) with T >= 1, got shape {tuple(idx.shape)}")
    return idx.shape[0], idx.shape[1]


def _check_cache_call(model: object, idx: object, cache: object, position_ids: object) -> tuple[int, int]:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    if not isinstance(cache, KVCache):
        raise TypeError(f"cache must be a KVCache, got {type(cache).__name__}")
    B, T = _check_ids(idx)
    if position_ids is not None and (not isinstance(position_ids, Tensor) or position_ids.shape != (T,)):
        got = tuple(position_ids.shape) if isinstance(position_ids, Tensor) else type(position_ids).__name__
        raise ValueError(f"position_ids must be a tensor of shape ({T},), one position per new token, got {got}")
    if B != cache.batch_size:
        raise ValueError(f"idx has batch size {B}, but the cache was made for batch_size={cache.batch_size}")
    if cache.length + T > cache.max_length:
        raise ValueError(f"idx adds T={T} tokens to a cache holding {cache.length}, but its max_length is "
                         f"{cache.max_length}: {cache.length + T} positions do not fit")
    return B, T


def _check_generate(model: object, idx: object, max_new_tokens: object) -> tuple[int, int]:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    B, T = _check_ids(idx)
    _check_positive_int(max_new_tokens, "max_new_tokens")
    block_size = model.config.block_size
    if T > block_size:
        raise ValueError(f"idx has T={T} tokens, but block_size is {block_size}: the model has no position "
                         f"embedding beyond it; crop the prompt to its last {block_size} tokens or fewer")
    # Every token but the last new one is fed to the model: T + max_new_tokens - 1 positions.
    if T + max_new_tokens - 1 > block_size:
        raise ValueError(f"max_new_tokens={max_new_tokens} after a prompt of T={T} tokens needs "
                         f"{T + max_new_tokens - 1} positions (every token but the last new one is fed to the "
                         f"model), but block_size is {block_size}: ask for at most {block_size - T + 1} new tokens")
    return B, T
