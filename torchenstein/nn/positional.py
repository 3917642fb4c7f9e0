r"""
# Positional Encoding: Teaching the Monster to Count

!!! torchenstein "The Professor speaks"
    My attention machine can weigh every token against every other, yet it cannot tell "the monster bit
    Hammer" from "Hammer bit the monster". Shuffle the words and it shuffles its answers, nothing more: it
    reads a bag, not a sentence. Today we stamp every token with its seat number, first with waves of
    sines and cosines, then with a table the monster learns for itself.

**You will learn to**

- prove that self-attention without positions is *permutation-equivariant*, and see why that is blindness;
- build the sinusoidal table of "Attention Is All You Need" from scratch and prove it equal to the formula;
- switch between the interleaved layout of the paper and the concatenated layout of some libraries;
- prove its properties by code: constant norm, shifts that are rotations, distance-only dot products;
- wrap it in an `nn.Module` whose table is a non-persistent buffer that can be recomputed, and build the
  learned alternative with a sensible initial scale;
- say what each gives up, and dodge the traps: wrong layout, padded positions, the $\sqrt{d}$ scale, a
  table that trains when it should not, and a table lost on the `meta` device.

## Attention cannot tell order

Self-attention mixes tokens with weights that come from dot products between them. Nothing in the recipe
knows *where* a token sits. Write the tokens as the rows of $X$ and a permutation as a matrix $P$ that
reorders rows; a row-by-row softmax commutes with reordering rows and columns, so

$$
\operatorname{softmax}\!\big(PXW_q (PXW_k)^\top\big)\, PXW_v
= P\,\operatorname{softmax}\!\big(XW_q W_k^\top X^\top\big) P^\top P\, XW_v
= P \operatorname{Attn}(X).
$$

Shuffle the input and the output is shuffled the same way: *permutation equivariance*. Here it is with the
course's own [`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention]
and random projections:

```pycon
>>> import torch
>>> from torchenstein.transformers.attention import scaled_dot_product_attention
>>> _ = torch.manual_seed(0)
>>> W_q, W_k, W_v = torch.randn(3, 8, 8).unbind(0)
>>> def self_attention(x):                       # x: (T, D)
...     return scaled_dot_product_attention(x @ W_q, x @ W_k, x @ W_v)
>>> x = torch.randn(5, 8)                        # five tokens
>>> perm = torch.tensor([3, 0, 4, 1, 2])
>>> torch.allclose(self_attention(x[perm]), self_attention(x)[perm], atol=1e-5)
True
>>> monster, bites, hammer = torch.randn(3, 8)
>>> a = self_attention(torch.stack([monster, bites, hammer])).mean(0)    # pooled sentence vector
>>> b = self_attention(torch.stack([hammer, bites, monster])).mean(0)
>>> torch.allclose(a, b, atol=1e-5)              # who bit whom? the monster cannot say
True

```

The cure is to make each token's vector depend on its position: add a position vector $\mathrm{PE}[p]$ to
the token embedding at position $p$ (the [Embeddings](../embeddings/index.md) lesson built the token
side). Add positions, and the shuffle no longer commutes:

```pycon
>>> from torchenstein.nn.positional import sinusoidal_positions
>>> pe = sinusoidal_positions(5, 8)                                      # (T, D)
>>> torch.allclose(self_attention(x[perm] + pe), self_attention(x + pe)[perm], atol=1e-5)
False

```

A causal mask breaks the symmetry a little (a token can tell how many came before it, and decoders
without any positional encoding do learn some order that way), but an encoder is blind without help.

## The sinusoidal recipe

"Attention Is All You Need" stamps position $p$ with sines and cosines of $d/2$ frequencies, in pairs:

$$
\mathrm{PE}[p, 2i] = \sin\!\left(\frac{p}{\text{base}^{2i/d}}\right), \qquad
\mathrm{PE}[p, 2i+1] = \cos\!\left(\frac{p}{\text{base}^{2i/d}}\right), \qquad
\omega_i = \text{base}^{-2i/d},\ \text{base} = 10000 .
$$

Pair $i$ turns at angular frequency $\omega_i$, so its wavelength is $2\pi/\omega_i$: the wavelengths grow
geometrically from $2\pi$ positions towards $2\pi \cdot \text{base}$, which the last pair approaches as $d$
grows. Fast pairs tell neighbours apart, slow pairs tell the beginning from the far end, like the hands
of a clock.
[`sinusoidal_frequencies`][torchenstein.nn.positional.sinusoidal_frequencies] holds the $\omega_i$ and
[`sinusoidal_positions`][torchenstein.nn.positional.sinusoidal_positions] the whole table, shape
`(num_positions, embedding_dim)`.

```pycon
>>> import math
>>> from torchenstein.nn.positional import sinusoidal_frequencies
>>> omega = sinusoidal_frequencies(8)
>>> [round(2 * math.pi / w, 1) for w in omega.tolist()]      # wavelengths, in positions
[6.3, 62.8, 628.3, 6283.2]
>>> table = sinusoidal_positions(4, 8)
>>> table.shape, table.dtype
(torch.Size([4, 8]), torch.float32)
>>> table[0]                                                 # sin 0 = 0, cos 0 = 1
tensor([0., 1., 0., 1., 0., 1., 0., 1.])
>>> torch.allclose(table[:, :2], torch.stack([torch.arange(4.).sin(), torch.arange(4.).cos()], -1))
True
>>> sinusoidal_positions(4, 7)                               # pairs need an even width
Traceback (most recent call last):
...
ValueError: embedding_dim must be a positive even int (sines and cosines come in pairs), got 7

```

## No built-in, so a double loop is the judge

PyTorch has no sinusoidal encoding to compare against, so the judge is the formula itself, written as
literally as code allows: [`sinusoidal_positions_by_loop`][torchenstein.nn.positional.sinusoidal_positions_by_loop]
visits every position and every pair with Python's `math.sin` and `math.cos`, in double precision.
The vectorised version also computes its angles $p\,\omega_i$ in float64 and casts only the finished
table; float32 angles would be rounded before the sine is even taken, and far positions would pay:

```pycon
>>> from torchenstein.nn.positional import sinusoidal_positions_by_loop
>>> judge = sinusoidal_positions_by_loop(range(50), 16)
>>> torch.testing.assert_close(sinusoidal_positions(50, 16, dtype=torch.float64), judge)
>>> torch.testing.assert_close(sinusoidal_positions(50, 16), judge.float())
>>> far = sinusoidal_positions_by_loop(range(8000, 8192), 8)
>>> (sinusoidal_positions(8192, 8)[8000:] - far).abs().max().item() < 1e-6
True
>>> float32_angles = torch.outer(torch.arange(8000.0, 8192.0), omega.float())      # (192, 4)
>>> (float32_angles.sin() - far[:, 0::2]).abs().max().item() > 1e-5
True

```

## Interleaved or concatenated

The paper interleaves: `sin, cos, sin, cos, ...`. tensor2tensor and fairseq put all the sines first and
all the cosines after (and, while at it, space their frequencies as $\text{base}^{-i/(d/2-1)}$ instead
of $\text{base}^{-2i/d}$). With the paper's frequencies, as here, the two layouts hold the same numbers,
with columns permuted: a fixed encoding does not care which you choose, but a pretrained model does.
`layout="concatenated"` builds the other one, and
[`interleaved_to_concatenated`][torchenstein.nn.positional.interleaved_to_concatenated] and
[`concatenated_to_interleaved`][torchenstein.nn.positional.concatenated_to_interleaved] convert any table.

```pycon
>>> from torchenstein.nn.positional import concatenated_to_interleaved, interleaved_to_concatenated
>>> sinusoidal_positions(1, 8, layout="concatenated")[0]
tensor([0., 0., 0., 0., 1., 1., 1., 1.])
>>> concat = sinusoidal_positions(6, 8, layout="concatenated")
>>> torch.equal(concatenated_to_interleaved(concat), sinusoidal_positions(6, 8))
True
>>> torch.equal(interleaved_to_concatenated(sinusoidal_positions(6, 8)), concat)
True

```

## The picture

Rows are positions, columns are dimensions. The left columns flip sign every few rows, the right ones
barely move: each row is a unique barcode, and neighbouring rows look alike (the right panel measures
how alike; the next section proves why it depends on distance alone).

![Left: a heatmap of the sinusoidal table, positions down and dimensions across; the left columns oscillate quickly and the right columns change slowly. Middle: a few sine columns as waves over position, each slower than the one before. Right: the cosine similarity between position 0 and position k, falling with k, with ripples.](plot_sinusoidal_heatmap.svg)

## Three properties, proved by code

**Every row has the same length.** Each pair contributes $\sin^2 + \cos^2 = 1$, so
$\lVert \mathrm{PE}[p] \rVert = \sqrt{d/2}$ for every $p$: positions never outshout each other.

```pycon
>>> table = sinusoidal_positions(1000, 64, dtype=torch.float64)
>>> torch.allclose(table.norm(dim=-1), torch.full((1000,), 32**0.5, dtype=torch.float64))
True

```

**A shift is a rotation.** By the angle-addition formulas, pair $i$ of position $p + k$ is pair $i$ of
position $p$ rotated by the angle $k\,\omega_i$:

$$
\begin{pmatrix} \sin \omega_i (p + k) \\ \cos \omega_i (p + k) \end{pmatrix}
= \begin{pmatrix} \cos \omega_i k & \sin \omega_i k \\ -\sin \omega_i k & \cos \omega_i k \end{pmatrix}
\begin{pmatrix} \sin \omega_i p \\ \cos \omega_i p \end{pmatrix} .
$$

Stack the $d/2$ blocks on a diagonal and you have one matrix $M_k$, the same for *every* $p$, with
$\mathrm{PE}[p + k] = M_k\, \mathrm{PE}[p]$. This is why the authors hoped the model could attend by
relative offset: "$k$ steps back" is a fixed linear map.
[`sinusoidal_shift_matrix`][torchenstein.nn.positional.sinusoidal_shift_matrix] builds it, and one matrix
product proves it for all rows at once (rows are vectors here, so the product is with $M_k^\top$):

```pycon
>>> from torchenstein.nn.positional import sinusoidal_shift_matrix
>>> M = sinusoidal_shift_matrix(3, 64, dtype=torch.float64)            # (D, D)
>>> torch.allclose(table[:-3] @ M.T, table[3:])                        # every p at once
True
>>> torch.allclose(M @ M.T, torch.eye(64, dtype=torch.float64))        # a rotation: lengths kept
True
>>> torch.allclose(sinusoidal_shift_matrix(5, 64, dtype=torch.float64) @ M,
...                sinusoidal_shift_matrix(8, 64, dtype=torch.float64))   # 3 steps then 5 = 8 steps
True

```

**Similarity depends only on distance.** Multiply the pairs out and
$\mathrm{PE}[p] \cdot \mathrm{PE}[q] = \sum_i \cos\big(\omega_i (p - q)\big)$: only the distance survives,
and cosine is even, so only $|p - q|$. Their matrix of dot products is therefore constant along every
diagonal (a Toeplitz matrix) and symmetric:

```pycon
>>> gram = table[:200] @ table[:200].T                        # (200, 200): PE[p] · PE[q]
>>> {"constant diagonals": torch.allclose(gram[1:, 1:], gram[:-1, :-1]), "symmetric": torch.allclose(gram, gram.T)}
{'constant diagonals': True, 'symmetric': True}
>>> distance = torch.arange(200, dtype=torch.float64)
>>> torch.allclose(gram[0], torch.cos(torch.outer(distance, sinusoidal_frequencies(64))).sum(-1))
True
>>> [round(gram[0, k].item() / 32, 3) for k in (0, 1, 4, 16, 32, 128)]   # cosine similarity with p = 0
[1.0, 0.966, 0.748, 0.605, 0.611, 0.284]

```

Similarity falls with distance, though not monotonically (compare distances 16 and 32): close positions
look alike, far ones less so.

## A module: `SinusoidalPositionalEncoding`

[`SinusoidalPositionalEncoding`][torchenstein.nn.positional.SinusoidalPositionalEncoding], built with
`(max_len, embedding_dim)`, computes the table once, for `max_len` positions, and adds its first $T$ rows
to token embeddings of shape $(B, T, D)$. The table is registered as a **buffer**, because it must move with
`.to(device)` and follow `.double()`, but it is never learned; and as a **non-persistent** one, so it
stays out of the `state_dict` (see [Building brains](../modules/index.md)): it is a pure function of
three hyperparameters, so saving it would only bloat every checkpoint, and a checkpoint saved with one
`max_len` loads into a model built with another. The price of leaving it out: no checkpoint can restore
it, so the module must be able to compute it again, and it does so in `reset_parameters` (the last of
Hammer's traps shows when that matters). An optional `dropout` acts on the sum, as in the original
Transformer, and an optional `positions` argument replaces $0, \dots, T-1$ (Hammer's second trap needs it).

```pycon
>>> from torchenstein.nn.positional import SinusoidalPositionalEncoding
>>> _ = torch.manual_seed(0)
>>> encode = SinusoidalPositionalEncoding(max_len=16, embedding_dim=8)
>>> tokens = torch.randn(2, 5, 8)                            # (B, T, D)
>>> out = encode(tokens)
>>> out.shape
torch.Size([2, 5, 8])
>>> print("tokens + table:", torch.equal(out, tokens + sinusoidal_positions(5, 8)))
tokens + table: True
>>> {"buffers": [name for name, _ in encode.named_buffers()], "parameters": list(encode.parameters()),
...  "state_dict": list(encode.state_dict())}
{'buffers': ['pe'], 'parameters': [], 'state_dict': []}
>>> encode.double().pe.dtype
torch.float64
>>> SinusoidalPositionalEncoding(16, 8).load_state_dict(SinusoidalPositionalEncoding(4096, 8).state_dict())
<All keys matched successfully>
>>> encode(torch.randn(1, 20, 8))
Traceback (most recent call last):
...
ValueError: sequence length T=20 exceeds max_len=16: the table has no row for position 16 or later

```

## Learned positions

The other classic answer: let the model learn one vector per position, a plain lookup table indexed by
$0, 1, \dots, T-1$. BERT and GPT-2 do this.
[`LearnedPositionalEmbedding`][torchenstein.nn.positional.LearnedPositionalEmbedding] wraps an
`nn.Embedding(max_len, embedding_dim)`, takes its arguments in that order, as its sinusoidal cousin does,
and has the same forward:

```pycon
>>> from torchenstein.nn.positional import LearnedPositionalEmbedding
>>> _ = torch.manual_seed(0)
>>> learned = LearnedPositionalEmbedding(16, 8)
>>> [(name, tuple(p.shape)) for name, p in learned.named_parameters()]
[('embedding.weight', (16, 8))]
>>> print("tokens + rows 0..4:", torch.equal(learned(tokens), tokens + learned.embedding.weight[:5]))
tokens + rows 0..4: True

```

The table starts as `nn.Embedding` starts, from $\mathcal{N}(0, 1)$: rows of length about $\sqrt{D}$.
GPT-2 draws its position table from $\mathcal{N}(0, 0.01^2)$ and BERT from $\mathcal{N}(0, 0.02^2)$,
small like their token tables (0.02 in both; the [Embeddings](../embeddings/index.md) lesson shows why a
tied token table must start small). Left at $\mathcal{N}(0, 1)$ next to such a token table, the positions would
outshout the words; redraw the table when you copy a recipe:

```pycon
>>> from torch import nn
>>> gpt2_like = LearnedPositionalEmbedding(1024, 768)
>>> round(gpt2_like.embedding.weight.std().item(), 2)         # nn.Embedding's N(0, 1)
1.0
>>> _ = nn.init.normal_(gpt2_like.embedding.weight, std=0.01)   # GPT-2's choice
>>> round(gpt2_like.embedding.weight.std().item(), 3)
0.01

```

## What each gives up

**The sinusoidal table is defined for every position**, even ones no training sentence ever reached,
and even fractional ones. The formula's reach is not the model's, though: a model trained on short
sequences has never seen the rows past them, and in practice Transformers with absolute positions rarely
generalise much beyond the lengths they were trained on.

**A learned table cannot even represent** a position past `max_len`: there is no row to look up.
PyTorch's `nn.Embedding` says so bluntly; our module says it by name:

```pycon
>>> sinusoidal_positions(100_000, 8).shape                   # any length you like
torch.Size([100000, 8])
>>> learned.embedding(torch.arange(20))
Traceback (most recent call last):
...
IndexError: index out of range in self
>>> learned(torch.randn(1, 20, 8))
Traceback (most recent call last):
...
ValueError: sequence length T=20 exceeds max_len=16: the table has no row for position 16 or later

```

**Both are absolute.** They label seats, not distances. The dot product of two *pure* sinusoidal
vectors depends only on their distance, but attention compares projected *sums* of token and position,
and the cross terms keep the absolute position. Slide a whole sentence three seats to the right and the
attention pattern changes:

```pycon
>>> _ = torch.manual_seed(0)
>>> words = torch.randn(6, 8)
>>> def attention_weights(x):
...     return torch.softmax((x @ W_q) @ (x @ W_k).T / 8**0.5, dim=-1)
>>> pe = sinusoidal_positions(9, 8)
>>> torch.allclose(attention_weights(pe[:6]), attention_weights(pe[3:]), atol=1e-5)   # positions alone
False
>>> torch.allclose(pe[:6] @ pe[:6].T, pe[3:] @ pe[3:].T, atol=1e-5)                  # raw dot products
True
>>> torch.allclose(attention_weights(words + pe[:6]), attention_weights(words + pe[3:]), atol=1e-5)
False

```

The projections $W_q$ and $W_k$ alone spoil the pure-distance property. Encodings that are *relative by
construction* rotate the queries and keys themselves, so a score depends on the offset and nothing
else: rotary position embeddings (RoPE) are waiting in Part 4.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: a table in the wrong layout, or off by one"
    Hammer rebuilds the positions of a pretrained model with his own interleaved function, but the
    checkpoint was trained with the concatenated layout. Every column now holds the wrong frequency, the
    tensors have the right shape, and nothing raises. The same silence greets an offset: fairseq, for
    one, numbers its positions from `padding_idx + 1`, not from 0.

    ```pycon
    >>> pretrained = sinusoidal_positions(10, 8, layout="concatenated")   # what the model learned with
    >>> torch.allclose(sinusoidal_positions(10, 8), pretrained)           # Hammer's table
    False
    >>> torch.equal(interleaved_to_concatenated(sinusoidal_positions(10, 8)), pretrained)
    True
    >>> torch.allclose(sinusoidal_positions(11, 8)[1:], sinusoidal_positions(10, 8))   # off by one
    False

    ```

    The cure: compare a few rows with the original implementation's before loading weights.

!!! hammer "Dr. Hammer's trap: positions from the padded length"
    Decoder-only models pad batches on the *left* for generation, so that every sequence ends at the last
    column. Hammer numbers the columns $0 \dots T-1$ as usual, and a short sentence's first real token
    sits at position 2 instead of 0: its encoding depends on how long its neighbours in the batch were.
    [`positions_from_padding_mask`][torchenstein.nn.positional.positions_from_padding_mask] counts only
    the real tokens (right padding, by contrast, leaves the real positions alone).

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> encode = SinusoidalPositionalEncoding(8, 4)              # (max_len, embedding_dim)
    >>> sentence = torch.randn(1, 3, 4)                          # (B, T=3, D)
    >>> alone = encode(sentence)
    >>> padded = torch.cat([torch.zeros(1, 2, 4), sentence], dim=1)    # left-padded to T=5
    >>> mask = torch.tensor([[False, False, True, True, True]])       # True = real token
    >>> torch.allclose(encode(padded)[:, 2:], alone)                  # Hammer
    False
    >>> from torchenstein.nn.positional import positions_from_padding_mask
    >>> positions = positions_from_padding_mask(mask)
    >>> positions
    tensor([[0, 0, 0, 1, 2]])
    >>> torch.allclose(encode(padded, positions=positions)[:, 2:], alone)
    True

    ```

!!! hammer "Dr. Hammer's trap: copying the recipe without its scale"
    The original Transformer multiplies token embeddings by $\sqrt{d}$ before adding the positions. Its
    embeddings are shared with the output layer, and its code (tensor2tensor, like fairseq after it)
    starts them small, with standard deviation $1/\sqrt{d}$: rows of length about 1, against position
    rows of length $\sqrt{d/2}$. Hammer drops the scale, and the positions shout over the words.

    ```pycon
    >>> d = 512
    >>> g = torch.Generator().manual_seed(0)
    >>> small = torch.randn(1000, d, generator=g) / d**0.5        # the paper's token embeddings
    >>> pe_norm = sinusoidal_positions(1, d).norm().item()
    >>> {"token rows": round(small.norm(dim=-1).mean().item(), 1), "position rows": round(pe_norm, 1)}   # Hammer
    {'token rows': 1.0, 'position rows': 16.0}
    >>> round((small * d**0.5).norm(dim=-1).mean().item(), 1)               # scaled: words hold their own
    22.6
    >>> round(torch.randn(1000, d, generator=g).norm(dim=-1).mean().item(), 1)   # nn.Embedding's N(0, 1)
    22.6

    ```

    The last line is the other half of the lesson: `nn.Embedding` starts from $\mathcal{N}(0, 1)$, whose
    rows already have length about $\sqrt{d}$, so multiplying *those* by $\sqrt{d}$ would drown the
    positions instead. The scale belongs to the initialisation it came with; copy both or neither.

!!! hammer "Dr. Hammer's trap: the table as a Parameter"
    Hammer stores the table with `nn.Parameter`. Now the optimiser trains it, so his "fixed" encoding
    drifts away from the formula, and every checkpoint carries it.

    ```pycon
    >>> from torch import nn
    >>> hammer = nn.Module()
    >>> hammer.pe = nn.Parameter(sinusoidal_positions(8, 4))     # Hammer's "fixed" table
    >>> list(hammer.state_dict())
    ['pe']
    >>> optimiser = torch.optim.SGD(hammer.parameters(), lr=0.1)
    >>> (torch.randn(2, 3, 4) + hammer.pe[:3]).pow(2).sum().backward()
    >>> optimiser.step()
    >>> torch.equal(hammer.pe.detach(), sinusoidal_positions(8, 4))
    False
    >>> ours = SinusoidalPositionalEncoding(8, 4)
    >>> {"parameters": list(ours.parameters()), "state_dict": list(ours.state_dict())}   # nothing to train or save
    {'parameters': [], 'state_dict': []}

    ```

!!! hammer "Dr. Hammer's trap: a table computed only in `__init__`"
    Hammer's model is too big to build in memory twice, so he builds it on the `meta` device (tensors
    with a shape and no memory), materialises it with `to_empty`, and fills it from a checkpoint. But
    `to_empty` hands every tensor *fresh, uninitialised memory*, and `load_state_dict` restores only what
    the checkpoint holds: a non-persistent buffer is not in it, and `strict=True` has nothing to miss.
    The report says all keys matched, and the model adds garbage to every token. His table was computed
    in `__init__` and nowhere else, like the `inv_freq` buffer of rotary embeddings (Part 4), which has
    shipped with this very bug (Hugging Face's
    [transformers issue 45902](https://github.com/huggingface/transformers/issues/45902), for one). Deterministic mode fills fresh memory with NaN, which makes
    the garbage visible here; on a real run it is whatever bytes were left in memory.

    ```pycon
    >>> with torch.device("meta"):                           # shapes only: nothing is computed
    ...     model = SinusoidalPositionalEncoding(16, 8)
    >>> model.pe.device.type
    'meta'
    >>> torch.use_deterministic_algorithms(True)             # fresh memory becomes NaN
    >>> _ = model.to_empty(device="cpu")
    >>> torch.use_deterministic_algorithms(False)
    >>> model.load_state_dict({})                            # the checkpoint: no table in it
    <All keys matched successfully>
    >>> print("the table is garbage:", model.pe.isnan().all().item())
    the table is garbage: True
    >>> model.reset_parameters()                             # recompute what __init__ computed
    >>> print("the table is the formula:", torch.equal(model.pe, sinusoidal_positions(16, 8)))
    the table is the formula: True

    ```

    The cure is to compute such a buffer in a method that can run again, `reset_parameters` (the name
    FSDP and Lightning call on every module after `to_empty`), and to call it after materialising; or to
    make the buffer persistent, so that the checkpoint carries and restores it.

## Challenges

**1. Positions anywhere.** Write `sinusoidal_positions_for(positions, embedding_dim, base=10000.0)`:
for a tensor of positions of any shape, integer or floating (fractional positions allowed, negative ones
too), return the interleaved encodings, shape `(*positions.shape, embedding_dim)`. A floating input keeps
its dtype; an integer one gives the default dtype. An odd `embedding_dim` raises `ValueError`. For
`positions = torch.arange(T)` it must agree with `sinusoidal_positions(T, embedding_dim)`.

**2. Relative position indices.** Relative encodings give each query-key pair a bias looked up by their
*offset*; Shaw et al. clip the offset to a maximum distance (T5 buckets it logarithmically). Write
`relative_position_bias_indices(T, max_distance)`: an int64 $(T, T)$ tensor whose entry $[i, j]$ is
$\operatorname{clip}(j - i, -\text{max\_distance}, \text{max\_distance}) + \text{max\_distance}$, an index
into a table of $2\,\text{max\_distance} + 1$ learned biases. Raise `ValueError` for a negative `T` or
`max_distance`.

Check an attempt with `check_sinusoidal_positions_for(my_function)` (or
`check_relative_position_bias_indices`), or put your functions in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.nn.positional import (check_relative_position_bias_indices,
...     check_sinusoidal_positions_for, relative_position_bias_indices, sinusoidal_positions_for)
>>> relative_position_bias_indices(4, 1)
tensor([[1, 2, 2, 2],
        [0, 1, 2, 2],
        [0, 0, 1, 2],
        [0, 0, 0, 1]])
>>> check_sinusoidal_positions_for(sinusoidal_positions_for)
>>> check_relative_position_bias_indices(relative_position_bias_indices)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LAYOUTS = ("interleaved", "concatenated")
"""The two column orders of a sinusoidal table: ``sin, cos, sin, cos, ...`` or all sines, then all cosines."""


def _check_embedding_dim(embedding_dim: object) -> None:
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 2 or embedding_dim % 2:
        raise ValueError(
            f"embedding_dim must be a positive even int (sines and cosines come in pairs), got {embedding_dim!r}"
        )


def _check_count(name: str, n: object, *, minimum: int = 0) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {n!r}")


def _check_base(base: object) -> None:
    if isinstance(base, bool) or not isinstance(base, Real) or not 0 < base < math.inf:
        raise ValueError(f"base must be a positive finite number, got {base!r}")


def _check_dropout(p: object) -> None:
    if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout must be a number in [0, 1], got {p!r}")


def sinusoidal_frequencies(embedding_dim: int, base: float = 10000.0) -> Tensor:
    r"""The angular frequencies $\omega_i = \text{base}^{-2i/d}$, one per sine-cosine pair.

    Args:
        embedding_dim: the width $d$, a positive even int.
        base: the frequency base; the longest wavelength is almost $2\pi \cdot \text{base}$.

    Returns:
        A float64 tensor of shape ``(embedding_dim // 2,)``, from 1 down towards ``1 / base``.

    Raises:
        ValueError: if ``embedding_dim`` is not a positive even int or ``base`` is not positive and finite.

    Examples:
        >>> sinusoidal_frequencies(4, base=100.0)
        tensor([1.0000, 0.1000], dtype=torch.float64)
    """
    _check_embedding_dim(embedding_dim)
    _check_base(base)
    # `2i` runs over the even column indices 0, 2, 4, ...; float64 keeps the slow frequencies exact.
    two_i = torch.arange(0, embedding_dim, 2, dtype=torch.float64)  # (D/2,)
    return torch.tensor(float(base), dtype=torch.float64) ** (-two_i / embedding_dim)


def sinusoidal_positions(
    num_positions: int, embedding_dim: int, base: float = 10000.0, *, layout: str = "interleaved",
    dtype: torch.dtype | None = None, device: torch.device | str | None = None,
) -> Tensor:
    r"""The sinusoidal position table of "Attention Is All You Need", vectorised.

    Args:
        num_positions: how many positions (rows), numbered from 0.
        embedding_dim: the width $d$ (columns), a positive even int.
        base: the frequency base, 10000 in the paper.
        layout: ``"interleaved"`` (the paper's ``sin, cos, sin, cos, ...``) or ``"concatenated"`` (all
            sines, then all cosines, the layout of tensor2tensor and fairseq, with the paper's frequencies).
        dtype: a floating dtype for the result, ``None`` for the default dtype. The angles are always
            computed in float64.
        device: where to put the result.

    Returns:
        A tensor of shape ``(num_positions, embedding_dim)``.

    Raises:
        ValueError: if a size, ``base`` or ``layout`` is invalid.
        TypeError: if ``dtype`` is not a floating dtype.

    Examples:
        >>> sinusoidal_positions(3, 4, layout="sideways")
        Traceback (most recent call last):
        ...
        ValueError: layout must be one of ('interleaved', 'concatenated'), got 'sideways'
    """
    _check_count("num_positions", num_positions)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    omega = sinusoidal_frequencies(embedding_dim, base)  # (D/2,)
    # Every position times every frequency in one outer product: all the angles of the table.
    angles = torch.outer(torch.arange(num_positions, dtype=torch.float64), omega)  # (P, D/2)
    if layout == "interleaved":
        # Stacking on a new last dim and flattening it puts each sine right beside its cosine.
        table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (P, D/2, 2) -> (P, D)
    else:
        table = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (P, D)
    return table.to(dtype=dtype, device=device)


def sinusoidal_positions_by_loop(positions: Iterable[float], embedding_dim: int, base: float = 10000.0) -> Tensor:
    r"""The judge: the paper's formula, one position and one pair at a time, with Python floats (slow on purpose).

    Args:
        positions: the positions to encode, e.g. ``range(50)``; fractional ones work too.
        embedding_dim: the width $d$, a positive even int.
        base: the frequency base.

    Returns:
        A float64 tensor of shape ``(len(positions), embedding_dim)``, interleaved.

    Raises:
        ValueError: if ``embedding_dim`` is not a positive even int.

    Examples:
        >>> sinusoidal_positions_by_loop(range(2), 2)
        tensor([[0.0000, 1.0000],
                [0.8415, 0.5403]], dtype=torch.float64)
    """
    _check_embedding_dim(embedding_dim)
    rows = []
    for p in positions:
        row = []
        for i in range(embedding_dim // 2):
            # Column 2i is the sine and column 2i + 1 the cosine of the same angle.
            angle = p / base ** (2 * i / embedding_dim)
            row += [math.sin(angle), math.cos(angle)]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), embedding_dim)


def _check_table(table: object) -> None:
    if not isinstance(table, torch.Tensor):
        raise TypeError(f"table must be a torch.Tensor, got {type(table).__name__}")
    if table.dim() == 0 or table.size(-1) % 2:
        raise ValueError(f"table's last dim must be even (sine and cosine pairs), got shape {tuple(table.shape)}")


def interleaved_to_concatenated(table: Tensor) -> Tensor:
    """Reorder the last dim from ``sin, cos, sin, cos, ...`` to all sines, then all cosines.

    Args:
        table: a tensor of shape ``(..., D)`` with ``D`` even.

    Returns:
        A new tensor of the same shape, columns permuted.

    Raises:
        TypeError: if ``table`` is not a tensor.
        ValueError: if its last dim is odd.

    Examples:
        >>> interleaved_to_concatenated(torch.tensor([0, 1, 2, 3, 4, 5]))
        tensor([0, 2, 4, 1, 3, 5])
    """
    _check_table(table)
    # The even columns are the sines, the odd ones the cosines.
    return torch.cat([table[..., 0::2], table[..., 1::2]], dim=-1)


def concatenated_to_interleaved(table: Tensor) -> Tensor:
    """Reorder the last dim from all sines, then all cosines, to ``sin, cos, sin, cos, ...``.

    Args:
        table: a tensor of shape ``(..., D)`` with ``D`` even.

    Returns:
        A new tensor of the same shape, columns permuted: the inverse of ``interleaved_to_concatenated``.

    Raises:
        TypeError: if ``table`` is not a tensor.
        ValueError: if its last dim is odd.

    Examples:
        >>> concatenated_to_interleaved(torch.tensor([0, 2, 4, 1, 3, 5]))
        tensor([0, 1, 2, 3, 4, 5])
    """
    _check_table(table)
    half = table.size(-1) // 2
    return torch.stack([table[..., :half], table[..., half:]], dim=-1).flatten(-2)  # (..., D/2, 2) -> (..., D)


def sinusoidal_shift_matrix(
    offset: float, embedding_dim: int, base: float = 10000.0, *, dtype: torch.dtype | None = None
) -> Tensor:
    r"""The block rotation $M_k$ with $\mathrm{PE}[p + k] = M_k\,\mathrm{PE}[p]$ for every position $p$.

    Args:
        offset: the shift $k$; negative and fractional shifts work too.
        embedding_dim: the width $d$, a positive even int.
        base: the frequency base of the (interleaved) table it acts on.
        dtype: a floating dtype, ``None`` for the default dtype.

    Returns:
        A block-diagonal ``(embedding_dim, embedding_dim)`` tensor of $2 \times 2$ rotations by $k\,\omega_i$.

    Raises:
        TypeError: if ``offset`` is not a real number.
        ValueError: if ``embedding_dim`` or ``base`` is invalid.

    Examples:
        >>> table = sinusoidal_positions(6, 4)
        >>> torch.allclose(table[:-2] @ sinusoidal_shift_matrix(2, 4).T, table[2:], atol=1e-6)
        True
    """
    if isinstance(offset, bool) or not isinstance(offset, Real):
        raise TypeError(f"offset must be a real number, got {offset!r}")
    omega = sinusoidal_frequencies(embedding_dim, base)  # (D/2,)
    c, s = torch.cos(offset * omega), torch.sin(offset * omega)  # (D/2,)
    # Row [c, s] makes the new sine and row [-s, c] the new cosine: the angle-addition formulas.
    blocks = torch.stack([torch.stack([c, s], dim=-1), torch.stack([-s, c], dim=-1)], dim=-2)  # (D/2, 2, 2)
    return torch.block_diag(*blocks).to(torch.get_default_dtype() if dtype is None else dtype)


def _token_positions(x: Tensor, positions: Tensor | None, embedding_dim: int, max_len: int) -> Tensor:
    """Check the token embeddings ``x`` and return the position of every token: ``arange(T)`` by default."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of token embeddings, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.dim() != 3 or x.size(-1) != embedding_dim:
        raise ValueError(f"x must have shape (B, T, embedding_dim={embedding_dim}), got {tuple(x.shape)}")
    T = x.size(1)
    if positions is None:
        if T > max_len:
            raise ValueError(
                f"sequence length T={T} exceeds max_len={max_len}: the table has no row for position {max_len} or later"
            )
        return torch.arange(T, device=x.device)  # (T,)
    if not isinstance(positions, torch.Tensor) or positions.is_floating_point() or positions.dtype == torch.bool:
        raise TypeError(f"positions must be an integer tensor, got {positions!r}")
    if positions.shape not in {(T,), x.shape[:2]}:
        raise ValueError(f"positions must have shape (T,) or (B, T) = {tuple(x.shape[:2])}, got {tuple(positions.shape)}")
    if positions.numel() and (positions.min() < 0 or positions.max() >= max_len):
        low, high = positions.min().item(), positions.max().item()
        raise ValueError(f"positions must lie in [0, max_len={max_len}), got values from {low} to {high}")
    return positions


class SinusoidalPositionalEncoding(nn.Module):
    r"""Add the fixed sinusoidal table to token embeddings of shape $(B, T, D)$, then apply dropout.

    Args:
        max_len: how many positions the table holds.
        embedding_dim: the width $D$, a positive even int.
        dropout: dropout probability on the sum, as in the original Transformer.
        base: the frequency base of the table.

    Attributes:
        pe: the table, ``(max_len, embedding_dim)``: a non-persistent buffer, moved and cast with the
            module but left out of the ``state_dict``, and computed by ``reset_parameters`` (call it
            again after ``to_empty``).

    Raises:
        ValueError: if a size, ``dropout`` or ``base`` is invalid.

    Examples:
        >>> encode = SinusoidalPositionalEncoding(8, 4)
        >>> encode
        SinusoidalPositionalEncoding(
          max_len=8, embedding_dim=4, base=10000.0
          (dropout): Dropout(p=0.0, inplace=False)
        )
        >>> encode(torch.zeros(2, 3, 4))[0, 0]
        tensor([0., 1., 0., 1.])
        >>> encode(torch.zeros(2, 3, 5))
        Traceback (most recent call last):
        ...
        ValueError: x must have shape (B, T, embedding_dim=4), got (2, 3, 5)
    """

    def __init__(self, max_len: int, embedding_dim: int, dropout: float = 0.0, base: float = 10000.0):
        super().__init__()
        _check_count("max_len", max_len, minimum=1)
        _check_embedding_dim(embedding_dim)
        _check_dropout(dropout)
        _check_base(base)
        self.max_len, self.embedding_dim, self.base = max_len, embedding_dim, float(base)
        self.dropout = nn.Dropout(dropout)
        # A buffer follows `.to(...)` and `.double()`; persistent=False keeps it out of checkpoints. It is
        # allocated here and filled by reset_parameters, the one place the table is computed, so that the
        # table can be computed again whenever the memory under it is replaced.
        self.register_buffer("pe", torch.empty(max_len, embedding_dim), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Compute the table into ``pe``, on its current device and in its current dtype.

        ``__init__`` calls it; so must whoever replaces the buffer's memory, as ``to_empty`` does after
        building on the ``meta`` device (FSDP and Lightning call ``reset_parameters`` on every module
        there). The name is PyTorch's, though this module has no parameters: it resets the state
        ``load_state_dict`` does not restore.

        Examples:
            >>> encode = SinusoidalPositionalEncoding(8, 4)
            >>> _ = encode.pe.fill_(0.0)
            >>> encode.reset_parameters()
            >>> torch.equal(encode.pe, sinusoidal_positions(8, 4))
            True
        """
        table = sinusoidal_positions(self.max_len, self.embedding_dim, self.base, dtype=self.pe.dtype, device=self.pe.device)
        with torch.no_grad():
            self.pe.copy_(table)

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """Return ``dropout(x + pe[positions])`` for ``x`` of shape ``(B, T, D)``.

        ``positions`` (integer, ``(T,)`` or ``(B, T)``) defaults to ``0 .. T-1``. Raises ``ValueError``
        when a shape does not fit or a position is past ``max_len``, ``TypeError`` for a wrong dtype.
        """
        positions = _token_positions(x, positions, self.embedding_dim, self.max_len)
        # Indexing the table gives (T, D) or (B, T, D); either broadcasts onto x.
        return self.dropout(x + self.pe[positions].to(x.dtype))

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, embedding_dim={self.embedding_dim}, base={self.base}"


class LearnedPositionalEmbedding(nn.Module):
    r"""Add a learned vector per position to token embeddings of shape $(B, T, D)$, then apply dropout.

    Args:
        max_len: how many positions have a vector (the ``num_embeddings`` of the inner ``nn.Embedding``).
        embedding_dim: the width $D$.
        dropout: dropout probability on the sum.

    Attributes:
        embedding: the ``nn.Embedding(max_len, embedding_dim)``, one trainable row per position, drawn from
            ``nn.Embedding``'s $\mathcal{N}(0, 1)$ (GPT-2 redraws with standard deviation 0.01, BERT 0.02).

    Raises:
        ValueError: if a size or ``dropout`` is invalid.

    Examples:
        >>> learned = LearnedPositionalEmbedding(8, 4)
        >>> learned(torch.zeros(2, 3, 4)).shape, sum(p.numel() for p in learned.parameters())
        (torch.Size([2, 3, 4]), 32)
    """

    def __init__(self, max_len: int, embedding_dim: int, dropout: float = 0.0):
        super().__init__()
        _check_count("max_len", max_len, minimum=1)
        _check_count("embedding_dim", embedding_dim, minimum=1)
        _check_dropout(dropout)
        self.max_len, self.embedding_dim = max_len, embedding_dim
        self.embedding = nn.Embedding(max_len, embedding_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """Return ``dropout(x + embedding(positions))``; arguments and errors as in the sinusoidal module."""
        positions = _token_positions(x, positions, self.embedding_dim, self.max_len)
        return self.dropout(x + self.embedding(positions).to(x.dtype))  # (B, T, D)


def positions_from_padding_mask(mask: Tensor) -> Tensor:
    """Number the real tokens of each sequence 0, 1, 2, ..., whatever padding comes before them.

    Args:
        mask: shape ``(B, T)``, ``True`` (or 1) for real tokens, ``False`` (or 0) for padding.

    Returns:
        An int64 ``(B, T)`` tensor: how many real tokens come before each real token. Padding gets 0
        before the first real token and repeats the last position after the last one; attention hides it.

    Raises:
        TypeError: if ``mask`` is not a bool or integer tensor.
        ValueError: if it is not 2-D or an integer mask holds values other than 0 and 1.

    Examples:
        >>> positions_from_padding_mask(torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]]))
        tensor([[0, 0, 0, 1],
                [0, 1, 2, 2]])
    """
    if not isinstance(mask, torch.Tensor) or mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"mask must be a bool or integer tensor, got {mask!r}")
    if mask.dim() != 2:
        raise ValueError(f"mask must have shape (B, T), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError("an integer mask must hold only 0 (padding) and 1 (real token)")
    # The running count of real tokens, minus one, is each real token's index among the real ones.
    return (mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, T)


def plot_sinusoidal_heatmap(*, num_positions: int = 64, embedding_dim: int = 64) -> Figure:
    """Draw the sinusoidal table as a heatmap, a few of its sine columns as waves, and similarity by distance.

    Args:
        num_positions: rows of the table.
        embedding_dim: columns of the table.

    Returns:
        A figure with the heatmap, its colour bar, the waves and the similarity curve.

    Examples:
        >>> len(plot_sinusoidal_heatmap(num_positions=8, embedding_dim=4).axes)
        4
    """
    from matplotlib.colors import LinearSegmentedColormap

    table = sinusoidal_positions(num_positions, embedding_dim, dtype=torch.float64)
    fig, (ax_map, ax_waves, ax_similar) = new_figure(1, 3, width=12.5, height=3.8)
    colormap = LinearSegmentedColormap.from_list("torchenstein", [PALETTE[2], "white", PALETTE[0]])
    ax_map.grid(False)
    image = ax_map.imshow(table.numpy(), cmap=colormap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax_map, label="value")
    ax_map.set(xlabel="embedding dimension", ylabel="position $p$", title="Sinusoidal positions")
    # The table samples continuous waves at whole positions: draw the waves, and the samples on them.
    omega = sinusoidal_frequencies(embedding_dim)
    grid = torch.linspace(0, max(num_positions - 1, 1), 400, dtype=torch.float64)
    columns = dict.fromkeys(2 * (k * embedding_dim // 8) for k in range(4))  # a few sine columns, no repeats
    for colour, column in zip(PALETTE[: len(columns)], columns, strict=True):
        ax_waves.plot(grid, torch.sin(grid * omega[column // 2]), color=colour, linewidth=1.2, label=f"dim {column}")
        ax_waves.plot(range(num_positions), table[:, column], "o", color=colour, markersize=2.5)
    ax_waves.set(xlabel="position $p$", ylabel=r"$\sin(p\,\omega_i)$", title="Each pair turns at its own speed")
    ax_waves.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize=8)
    # Every row has squared length D/2, so dot products divided by D/2 are cosine similarities.
    ax_similar.plot(table @ table[0] / (embedding_dim / 2), color=PALETTE[0])
    ax_similar.set(xlabel="distance $k$", ylabel=r"$\cos(\mathrm{PE}[0], \mathrm{PE}[k])$", title="Similarity by distance")
    return fig


def sinusoidal_positions_for(positions: Tensor, embedding_dim: int, base: float = 10000.0) -> Tensor:
    """Challenge solution: interleaved sinusoidal encodings of any positions, fractional ones included.

    Args:
        positions: a tensor of positions of any shape, integer or floating.
        embedding_dim: the width, a positive even int.
        base: the frequency base.

    Returns:
        A ``(*positions.shape, embedding_dim)`` tensor, in the positions' dtype if floating, else the default.

    Raises:
        TypeError: if ``positions`` is not a real-valued tensor.
        ValueError: if ``embedding_dim`` or ``base`` is invalid.

    Examples:
        >>> sinusoidal_positions_for(torch.tensor([0.5]), 2)
        tensor([[0.4794, 0.8776]])
    """
    if not isinstance(positions, torch.Tensor) or positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must be a real-valued tensor, got {positions!r}")
    dtype = positions.dtype if positions.is_floating_point() else torch.get_default_dtype()
    omega = sinusoidal_frequencies(embedding_dim, base).to(positions.device)  # (D/2,)
    angles = positions.double()[..., None] * omega  # (..., D/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2).to(dtype)  # (..., D)


def check_sinusoidal_positions_for(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``sinusoidal_positions_for``."""
    cases = [
        (torch.arange(7), 8, 10000.0, torch.float32),
        (torch.tensor([0.5, 2.25, -1.0, 13.75], dtype=torch.float64), 6, 10000.0, torch.float64),
        (torch.tensor([[0.0, 1.5, 3.0], [4.0, 5.0, 6.5]]), 4, 100.0, torch.float32),
        (torch.tensor([3]), 2, 10000.0, torch.float32),
        (torch.zeros(0, dtype=torch.int64), 4, 10000.0, torch.float32),
    ]
    for positions, d, base, dtype in cases:
        got = candidate(positions, d, base)
        shape = (*positions.shape, d)
        label = f"sinusoidal_positions_for({positions.tolist()}, {d}, base={base})"
        assert isinstance(got, torch.Tensor), f"{label} should return a tensor, got {type(got).__name__}"
        assert got.shape == shape, f"{label} has shape {tuple(got.shape)}, expected {shape}"
        assert got.dtype == dtype, f"{label} has dtype {got.dtype}, expected {dtype}"
        expected = sinusoidal_positions_by_loop(positions.flatten().tolist(), d, base).reshape(shape).to(dtype)
        try:
            torch.testing.assert_close(got, expected, **({} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}))
        except AssertionError as err:
            raise AssertionError(f"{label} is wrong (interleaved sin, cos expected):\n{err}") from None
    try:
        candidate(torch.arange(3), 7)
    except ValueError:
        return
    raise AssertionError("sinusoidal_positions_for(..., embedding_dim=7) should raise ValueError: dims come in pairs")


def relative_position_bias_indices(T: int, max_distance: int) -> Tensor:
    """Challenge solution: the clipped offsets ``j - i``, shifted to index ``2 * max_distance + 1`` biases.

    Args:
        T: sequence length.
        max_distance: offsets beyond it, either way, share the outermost index.

    Returns:
        An int64 ``(T, T)`` tensor with values in ``[0, 2 * max_distance]``.

    Raises:
        ValueError: if ``T`` or ``max_distance`` is not a non-negative int.

    Examples:
        >>> relative_position_bias_indices(2, 0)
        tensor([[0, 0],
                [0, 0]])
    """
    _check_count("T", T)
    _check_count("max_distance", max_distance)
    # A row of key positions minus a column of query positions: the offset of every pair.
    offset = torch.arange(T)[None, :] - torch.arange(T)[:, None]  # (T, T), entry [i, j] = j - i
    return offset.clamp(-max_distance, max_distance) + max_distance


def check_relative_position_bias_indices(candidate: Callable[[int, int], Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``relative_position_bias_indices``."""
    for T, m in ((0, 2), (1, 0), (4, 1), (5, 2), (3, 10), (6, 0), (7, 3)):
        got = candidate(T, m)
        expected = torch.tensor([[min(max(j - i, -m), m) + m for j in range(T)] for i in range(T)]).reshape(T, T)
        label = f"relative_position_bias_indices({T}, {m})"
        assert isinstance(got, torch.Tensor), f"{label} should return a tensor, got {type(got).__name__}"
        assert got.dtype == torch.int64, f"{label} has dtype {got.dtype}, expected torch.int64 (indices)"
        assert got.shape == (T, T), f"{label} has shape {tuple(got.shape)}, expected {(T, T)}"
        assert torch.equal(got, expected), f"{label} gave\n{got}\nexpected ([i, j] from clip(j - i))\n{expected}"
    for T, m in ((-1, 2), (3, -1)):
        try:
            candidate(T, m)
        except ValueError:
            continue
        raise AssertionError(f"relative_position_bias_indices({T}, {m}) should raise ValueError")
