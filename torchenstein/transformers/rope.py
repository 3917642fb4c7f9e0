r"""
# Rotary Position Embeddings: The Monster Learns to Spin

!!! torchenstein "The Professor speaks"
    Adding a seat number to every token was a fine first stitch, but my monster still compared seats, not
    distances. Tonight I stop *adding* positions and start *turning* them: every query and every key is
    spun by an angle proportional to its position, and when two spun vectors meet in a dot product, only
    the *difference* of their angles survives. Llama spins this way, and so does nearly every large
    language model since. We build the wheel by hand, prove it turns exactly like Hugging Face's, and
    learn the four ways Dr. Hammer has found to fall off it.

**You will learn to**

- derive why rotating queries and keys makes their scores depend only on the relative position $m - n$;
- compute the frequencies $\theta_i = \text{base}^{-2i/d}$ and the `cos`/`sin` tables from scratch;
- apply RoPE in the rotate-half layout of Llama and GPT-NeoX, and in the interleaved layout of GPT-J and
  RoFormer, and show the latter is multiplication by $e^{i m \theta}$;
- convert a checkpoint between the two layouts with one permutation of the projection weights;
- prove the relative-position property, the preserved norm, and equality with Hugging Face's
  `LlamaRotaryEmbedding` and `apply_rotary_pos_emb`;
- feed RoPE the right positions in a KV cache, and read its long-range decay;
- keep `inv_freq` in a buffer that `reset_parameters` can rebuild, and dodge Hammer's traps: the wrong
  layout, bfloat16 angles and rotated values.

## Position as an angle

The [positional-encoding lesson](../../nn/positional/index.md) ended with a disappointment: the dot
product of two sinusoidal position vectors depends only on their distance, but attention compares the
*projected sums* of token and position, and the projections spoil the property. RoPE (Su et al., 2021,
"RoFormer") moves the position *after* the projections and turns addition into rotation.

Start in two dimensions. Write $R(\alpha)$ for the rotation by the angle $\alpha$, and rotate the query at
position $m$ by $m\theta$ and the key at position $n$ by $n\theta$, for some frequency $\theta$:

$$
R(\alpha) = \begin{pmatrix} \cos\alpha & -\sin\alpha \\ \sin\alpha & \cos\alpha \end{pmatrix}, \qquad
R(\alpha)^\top = R(-\alpha), \qquad R(\alpha) R(\beta) = R(\alpha + \beta).
$$

A rotation's transpose turns back, and two turns add up. So the score of the rotated pair is

$$
\langle R(m\theta)\, q,\ R(n\theta)\, k \rangle = q^\top R(m\theta)^\top R(n\theta)\, k
= q^\top R\big((n - m)\theta\big)\, k ,
$$

which depends on the positions only through $n - m$. Slide the whole sentence along and every score
stays put; and since a rotation keeps lengths, the rotated vectors are exactly as long as before. Here
it is with the score of a query three seats after its key, at three different places in a sentence:

```pycon
>>> import math
>>> import torch
>>> def turn(v, angle):                                   # R(angle) v
...     c, s = math.cos(angle), math.sin(angle)
...     return torch.tensor([[c, -s], [s, c]], dtype=torch.float64) @ v
>>> q = torch.tensor([1.0, 2.0], dtype=torch.float64)
>>> k = torch.tensor([0.5, -1.0], dtype=torch.float64)
>>> theta = 0.3
>>> {f"m={m}, n={n}": round((turn(q, m * theta) @ turn(k, n * theta)).item(), 6)
...  for m, n in [(5, 2), (13, 10), (103, 100), (2, 5)]}
{'m=5, n=2': -2.499069, 'm=13, n=10': -2.499069, 'm=103, n=100': -2.499069, 'm=2, n=5': 0.634239}

```

The last pair is three seats the *other* way: $R(3\theta) \ne R(-3\theta)$, so unlike the sinusoidal dot
product, RoPE can tell "before" from "after".

**The same thing in complex numbers.** Read the pair $(x_0, x_1)$ as $z = x_0 + i x_1$. Rotating by
$\alpha$ is multiplying by $e^{i\alpha}$, and the dot product of two pairs is
$\operatorname{Re}(z_q \bar z_k)$, so

$$
\operatorname{Re}\!\big(z_q e^{i m\theta}\, \overline{z_k e^{i n\theta}}\big)
= \operatorname{Re}\!\big(z_q \bar z_k\, e^{i (m - n)\theta}\big).
$$

## Many pairs, many frequencies

A head of width $d$ holds $d/2$ pairs of channels, and pair $i$ turns at its own frequency

$$
\theta_i = \text{base}^{-2i/d}, \qquad i = 0, \dots, d/2 - 1, \qquad \text{base} = 10000 ,
$$

the very frequencies of the sinusoidal table. Stack the $d/2$ rotations on a diagonal into one
orthogonal matrix $R_m$; the same algebra, block by block, gives $R_m^\top R_n = R_{n - m}$, and the
score $\langle R_m q, R_n k \rangle = \sum_j \operatorname{Re}\big(z_{q,j}\, \bar z_{k,j}\, e^{i(m-n)\theta_j}\big)$
is a sum of waves, fast ones that tell neighbours apart and slow ones that tell near from far.
[`rope_frequencies`][torchenstein.transformers.rope.rope_frequencies] computes them. Meta's and Hugging Face's code
call the result `inv_freq` and compute it in float32 in the same three steps, so ours is theirs bit for
bit (the tests check Hugging Face's). Llama 3 raised the base (`rope_theta` in Hugging Face's configs) to
500000, which slows every pair but the first:

```pycon
>>> from torchenstein.nn.positional import sinusoidal_frequencies
>>> from torchenstein.transformers.rope import rope_frequencies
>>> rope_frequencies(8)
tensor([1.0000, 0.1000, 0.0100, 0.0010])
>>> torch.allclose(rope_frequencies(128, dtype=torch.float64), sinusoidal_frequencies(128))
True
>>> for base in (10000.0, 500000.0):                    # wavelengths 2 pi / theta_i of pairs 0, 16, 32, 48, 63
...     print(f"base {base:8.0f}:", [round(2 * math.pi / w) for w in rope_frequencies(128, base)[[0, 16, 32, 48, 63]].tolist()])
base    10000: [6, 63, 628, 6283, 54410]
base   500000: [6, 167, 4443, 118143, 2559196]

```

## Rotate-half: the layout of Llama and GPT-NeoX

Which channels form a pair is a convention. Hugging Face's Llama, GPT-NeoX and most code today pair
channel $i$ with channel $i + d/2$. Writing out the rotation of every pair at once gives an elementwise
formula with no matrix at all:

$$
\operatorname{RoPE}(x, m) = x \odot \cos(m\boldsymbol\theta) + \operatorname{rotate\_half}(x) \odot \sin(m\boldsymbol\theta),
\qquad \operatorname{rotate\_half}(x_{:d/2}, x_{d/2:}) = (-x_{d/2:},\ x_{:d/2}),
$$

where $\boldsymbol\theta = (\theta_0, \dots, \theta_{d/2-1}, \theta_0, \dots, \theta_{d/2-1})$ repeats the
frequencies for the two halves. [`rope_cos_sin`][torchenstein.transformers.rope.rope_cos_sin] builds the two
tables for any positions, shape `(*positions.shape, d)`;
[`rotate_half`][torchenstein.transformers.rope.rotate_half] is the quarter turn; and
[`apply_rotary`][torchenstein.transformers.rope.apply_rotary] applies both to queries and keys, with the
arguments of Hugging Face's `apply_rotary_pos_emb`: `unsqueeze_dim=1` inserts the heads' dim into tables
of shape $(B, T, d)$ for queries of shape $(B, H, T, d)$, and `None` leaves tables that already broadcast.

```pycon
>>> from torchenstein.transformers.rope import apply_rotary, rope_cos_sin, rotate_half
>>> cos, sin = rope_cos_sin(torch.arange(3), 8)           # positions 0, 1, 2; head_dim 8
>>> cos.shape
torch.Size([3, 8])
>>> cos[1]                                                # cos(1 * theta_i), twice
tensor([0.5403, 0.9950, 0.9999, 1.0000, 0.5403, 0.9950, 0.9999, 1.0000])
>>> rotate_half(torch.arange(1.0, 9.0))
tensor([-5., -6., -7., -8.,  1.,  2.,  3.,  4.])
>>> _ = torch.manual_seed(0)
>>> q, k = torch.randn(2, 2, 4, 3, 8).unbind(0)           # (B, H, T, d)
>>> q_rot, k_rot = apply_rotary(q, k, cos, sin, unsqueeze_dim=None)
>>> {"position 0 unchanged": torch.equal(q_rot[..., 0, :], q[..., 0, :]),
...  "lengths kept": torch.allclose(q_rot.norm(dim=-1), q.norm(dim=-1))}
{'position 0 unchanged': True, 'lengths kept': True}

```

## Interleaved pairs, and the complex form

The RoFormer paper, GPT-J and Meta's original Llama code pair *neighbours*, $(x_{2i}, x_{2i+1})$, and
their tables repeat each frequency twice in a row, $(\theta_0, \theta_0, \theta_1, \theta_1, \dots)$.
[`apply_rotary_interleaved`][torchenstein.transformers.rope.apply_rotary_interleaved] is the same formula
with GPT-J's quarter turn, [`rotate_every_two`][torchenstein.transformers.rope.rotate_every_two]. Meta's
code writes it in complex numbers instead: `torch.view_as_complex` reads each neighbouring pair of a
`(..., d)` tensor, viewed as `(..., d/2, 2)`, as one complex number, and
[`rope_freqs_cis`][torchenstein.transformers.rope.rope_freqs_cis] builds $e^{i m \theta_j}$ with
`torch.polar`; [`apply_rotary_complex`][torchenstein.transformers.rope.apply_rotary_complex] multiplies
and reads the result back with `torch.view_as_real`. PyTorch has no RoPE of its own to compare with, so
the two forms judge each other:

```pycon
>>> from torchenstein.transformers.rope import apply_rotary_complex, apply_rotary_interleaved, rope_freqs_cis
>>> cos_i, sin_i = rope_cos_sin(torch.arange(3), 8, interleaved=True)
>>> cos_i[1]                                              # each frequency twice in a row
tensor([0.5403, 0.5403, 0.9950, 0.9950, 0.9999, 0.9999, 1.0000, 1.0000])
>>> by_turns = apply_rotary_interleaved(q, k, cos_i, sin_i, unsqueeze_dim=None)
>>> freqs_cis = rope_freqs_cis(torch.arange(3), 8)        # e^{i m theta_j}: (T, d/2) complex
>>> {"dtype": freqs_cis.dtype, "all of modulus 1": freqs_cis.abs().allclose(torch.ones(3, 4))}
{'dtype': torch.complex64, 'all of modulus 1': True}
>>> torch.testing.assert_close(apply_rotary_complex(q, k, freqs_cis), by_turns)
>>> z = torch.view_as_complex(q[0, 0, 1].reshape(4, 2))   # position 1's pairs as complex numbers
>>> torch.testing.assert_close(torch.view_as_real(z * freqs_cis[1]).flatten(), by_turns[0][0, 0, 1])

```

## One permutation between the two layouts

Both layouts rotate the same pairs by the same angles; they only *store* the pair members in different
channels. Channel $j$ of the rotate-half layout is channel `perm[j]` of the interleaved one, where
[`rotate_half_permutation`][torchenstein.transformers.rope.rotate_half_permutation] lists the first
members of all pairs, then the second ones. Permute a vector, rotate the rotate-half way, and you have
permuted the interleaved result:

```pycon
>>> from torchenstein.transformers.rope import rotate_half_permutation
>>> perm = rotate_half_permutation(8)
>>> perm
tensor([0, 2, 4, 6, 1, 3, 5, 7])
>>> torch.testing.assert_close(apply_rotary(q[..., perm], k[..., perm], cos, sin, unsqueeze_dim=None)[0],
...                            by_turns[0][..., perm])

```

A score is a dot product, and a dot product does not care in which order the channels are summed, as
long as query and key use the same order. So a model trained with one layout runs in the other once the
*output rows* of its query and key projections are permuted, head by head:
[`permute_for_rotate_half`][torchenstein.transformers.rope.permute_for_rotate_half] does what Hugging
Face's conversion of Meta's Llama checkpoints does to `wq` and `wk`. Values and the output projection
are not rotated and stay as they are. The scores come out identical:

```pycon
>>> from torchenstein.transformers.rope import permute_for_rotate_half
>>> _ = torch.manual_seed(0)
>>> E, H, d, T = 16, 2, 8, 5
>>> W_q, W_k = torch.randn(2, H * d, E).unbind(0)        # trained with interleaved RoPE
>>> x = torch.randn(T, E)
>>> def heads(w):                                        # project and split: (H, T, d)
...     return (x @ w.T).unflatten(-1, (H, d)).transpose(0, 1)
>>> cos_h, sin_h = rope_cos_sin(torch.arange(T), d)
>>> cos_i, sin_i = rope_cos_sin(torch.arange(T), d, interleaved=True)
>>> q_i, k_i = apply_rotary_interleaved(heads(W_q), heads(W_k), cos_i, sin_i, unsqueeze_dim=None)
>>> true_scores = q_i @ k_i.transpose(-2, -1)            # (H, T, T)
>>> q_h, k_h = apply_rotary(heads(permute_for_rotate_half(W_q, H)), heads(permute_for_rotate_half(W_k, H)),
...                         cos_h, sin_h, unsqueeze_dim=None)
>>> torch.testing.assert_close(q_h @ k_h.transpose(-2, -1), true_scores)

```

## The relative-position property, proved by numbers

[`rotary_score`][torchenstein.transformers.rope.rotary_score] rotates a query to position $m$, a key to
position $n$, and takes their dot product. In float64, shifting both positions by any $s$, up to a
million, leaves the score unchanged to $10^{-9}$, and rotating never changes a length:

```pycon
>>> from torchenstein.transformers.rope import rotary_score
>>> _ = torch.manual_seed(0)
>>> q, k = torch.randn(2, 64, dtype=torch.float64).unbind(0)
>>> shifts = torch.tensor([0, 1, 100, 10_000, 1_000_000])
>>> scores = rotary_score(q, k, 7 + shifts, 3 + shifts)  # m - n = 4 at five places
>>> {"score": round(scores[0].item(), 6),
...  "the same at all five places": torch.allclose(scores, scores[0].expand(5), rtol=0, atol=1e-9)}
{'score': 9.068522, 'the same at all five places': True}
>>> cos64, sin64 = rope_cos_sin(shifts, 64, dtype=torch.float64)
>>> q_far, _ = apply_rotary(q.expand(5, 64), q.expand(5, 64), cos64, sin64, unsqueeze_dim=None)
>>> torch.allclose(q_far.norm(dim=-1), q.norm().expand(5), rtol=0, atol=1e-12)
True

```

The test suite proves both for random widths, bases, positions and shifts, in float64 and for both
layouts, to $10^{-10}\,\lVert q \rVert \lVert k \rVert$.

## The module, and Hugging Face's Llama

Models keep the frequencies in a module that turns position ids into tables.
[`RotaryEmbedding`][torchenstein.transformers.rope.RotaryEmbedding] is the twin of Hugging Face's
`LlamaRotaryEmbedding`: `forward(x, position_ids)` returns `(cos, sin)` of shape
`(*position_ids.shape, d)` in `x`'s dtype (`x` only lends its dtype and device), and `inv_freq` is a
**non-persistent buffer**: it follows `.to(device)` but stays out of the `state_dict`, since it is a
pure function of `head_dim` and `base` (see the [positional lesson](../../nn/positional/index.md) for
why, and for the price).

```pycon
>>> from torchenstein.transformers.rope import RotaryEmbedding
>>> rope = RotaryEmbedding(16, base=500000.0)
>>> hidden = torch.randn(2, 6, 64, dtype=torch.bfloat16)  # (B, T, E): lends dtype and device
>>> position_ids = torch.arange(6).expand(2, 6)           # (B, T)
>>> cos, sin = rope(hidden, position_ids)
>>> {"shape": cos.shape, "dtype": cos.dtype, "state_dict": list(rope.state_dict())}
{'shape': torch.Size([2, 6, 16]), 'dtype': torch.bfloat16, 'state_dict': []}
>>> torch.equal(cos, rope_cos_sin(position_ids, 16, 500000.0, dtype=torch.bfloat16)[0])
True

```

A buffer no checkpoint restores must be computable again: a model built on the `meta` device and
materialised with `to_empty` holds garbage frequencies, and `load_state_dict` reports every key matched.
That is the [positional lesson](../../nn/positional/index.md)'s trap of a table computed only in
`__init__`, and its cure applies unchanged (Hugging Face's `_init_weights` now recomputes every rotary
`inv_freq` for this reason): `RotaryEmbedding` computes its buffer in `reset_parameters`, to be called
once after `to_empty`.

```pycon
>>> with torch.device("meta"):                       # shapes only: nothing is computed
...     lazy = RotaryEmbedding(8)
>>> _ = lazy.to_empty(device="cpu")                  # fresh, uninitialised memory
>>> lazy.reset_parameters()                          # recompute what __init__ computed
>>> torch.equal(lazy.inv_freq, rope_frequencies(8))
True

```

`tests/test_rope.py` builds Hugging Face's `LlamaRotaryEmbedding` from small configs such as
`LlamaConfig(hidden_size=64, num_attention_heads=4)` (head width 16) and proves: `inv_freq` **bitwise** equal for several
bases (`rope_theta`) and head widths; `cos` and `sin` bitwise equal for position ids $0..T-1$, for
offsets deep into a sequence (as in a KV cache), for left-padded rows and for random positions, with `x`
in float32, float16, bfloat16 and float64; and `apply_rotary` bitwise equal to `apply_rotary_pos_emb` in
all four dtypes, for `(B, H, T, d)` and `(B, T, H, d)` inputs and for fewer key heads than query heads,
gradients included. The challenge below is proved equal to Hugging Face's `"linear"` rope scaling.

!!! note "Where it differs from Hugging Face"
    Hugging Face computes the angles in float32 whatever the dtype, and so does `RotaryEmbedding`, even
    after `.double()`, so the module is bitwise Hugging Face's in every dtype. The function
    `rope_cos_sin(..., dtype=torch.float64)` is the exception: it computes frequencies, angles and
    cosines in float64. Near the start of a sequence the two agree to float32 tolerance; far along, ours
    is the more exact (a test pins both at position 100000: ours matches `math.cos` to float64
    precision, Hugging Face's only to float32's). Position ids may be integers of any width (int32
    gives int64's tables, bit for bit) or float32/float64; float16 and bfloat16 ids are refused with a
    `TypeError`, where Hugging Face casts them to float32 too late: float16 has already turned 70000
    into `inf` and its tables into `NaN`.

## Positions in a KV cache

When a model generates one token at a time, the keys of earlier tokens wait, already rotated, in the
KV cache of the [multi-head lesson](../multihead/index.md); only the new token's query and key are
computed. Its position is not 0 but the number of tokens before it, and that is the position it must be
rotated by. Then the new token's scores equal those of the full sequence:

```pycon
>>> _ = torch.manual_seed(0)
>>> q, k = torch.randn(2, 1, 2, 6, 8).unbind(0)          # (B, H, T, d)
>>> cos, sin = rope_cos_sin(torch.arange(6), 8)
>>> q_all, k_all = apply_rotary(q, k, cos, sin, unsqueeze_dim=None)
>>> full = q_all[..., -1:, :] @ k_all.transpose(-2, -1)   # the last query against every key
>>> cache = k_all[..., :-1, :]                           # keys of tokens 0..4, rotated when they arrived
>>> def step(position):
...     cos, sin = rope_cos_sin(torch.tensor([position]), 8)
...     q_new, k_new = apply_rotary(q[..., -1:, :], k[..., -1:, :], cos, sin, unsqueeze_dim=None)
...     return q_new @ torch.cat([cache, k_new], dim=-2).transpose(-2, -1)
>>> {"position 5": torch.allclose(step(5), full, atol=1e-6), "position 0": torch.allclose(step(0), full, atol=1e-6)}
{'position 5': True, 'position 0': False}

```

With left padding, count only the real tokens: the positional lesson's
[`positions_from_padding_mask`][torchenstein.nn.positional.positions_from_padding_mask] gives position
ids for exactly this.

## The picture: frequencies and long-range decay

The left panel of [`plot_rope`][torchenstein.transformers.rope.plot_rope] draws the wavelength of every
pair of a 128-wide head. The first pairs complete a turn every few tokens; the last never complete one
within a long context, so they change slowly and steadily, and a larger base puts more pairs in that
slow regime. The right panel is the RoFormer paper's *long-range decay*: the score of a query with an
equal key (all ones), divided by $d$, against their distance. At distance 0 it is 1; farther apart,
the $d/2$ waves fall out of step and partly cancel, so the score shrinks, with ripples:

```pycon
>>> ones = torch.ones(128, dtype=torch.float64)
>>> for base in (10000.0, 500000.0):
...     print(f"base {base:8.0f}:", [round(rotary_score(ones, ones, r, 0, base).item() / 128, 2)
...                                  for r in (0, 1, 10, 100, 1000, 4000)])
base    10000: [1.0, 0.97, 0.67, 0.48, 0.16, 0.01]
base   500000: [1.0, 0.98, 0.76, 0.61, 0.49, 0.25]

```

![Left: the wavelength of each of 64 pairs of channels on a log scale, rising in a straight line from about 6 tokens to about 54,000 for base 10000 and to about 2.6 million for base 500000, with a dashed line at 8192 tokens. Right: the score of a query with an equal key against relative distance on a log axis, falling from 1 towards 0 with growing ripples, more slowly for the larger base.](plot_rope.svg)

The decay is a tendency, not a rule: a trained model's queries and keys are not all ones, and the
projections are free to line up the slow pairs so that a distant token scores high.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the other codebase's layout"
    Hammer loads projection weights trained with interleaved RoPE (Meta's original checkpoints, GPT-J)
    into a model that rotates the rotate-half way. The shapes fit, nothing raises, and the diagonal of the
    scores is even right, since a query and key turned by the same angle keep their dot product. Every
    other score is wrong. The cure is the permutation above, applied to the query and key weights once,
    when loading.

    ```pycon
    >>> q_hammer, k_hammer = apply_rotary(heads(W_q), heads(W_k), cos_h, sin_h, unsqueeze_dim=None)
    >>> hammer_scores = q_hammer @ k_hammer.transpose(-2, -1)
    >>> {"diagonal right": torch.allclose(hammer_scores.diagonal(dim1=-2, dim2=-1),
    ...                                   true_scores.diagonal(dim1=-2, dim2=-1), atol=1e-5),
    ...  "all scores right": torch.allclose(hammer_scores, true_scores, atol=1e-5)}
    {'diagonal right': True, 'all scores right': False}
    >>> q_fix, k_fix = apply_rotary(heads(permute_for_rotate_half(W_q, H)),
    ...                             heads(permute_for_rotate_half(W_k, H)), cos_h, sin_h, unsqueeze_dim=None)
    >>> torch.allclose(q_fix @ k_fix.transpose(-2, -1), true_scores, atol=1e-5)
    True

    ```

!!! hammer "Dr. Hammer's trap: angles in bfloat16"
    Hammer trains in bfloat16 and computes the angles in it too. bfloat16 keeps 8 significant bits: it
    cannot even hold position 4097, every frequency is rounded, and at position 4096 a small error in a
    frequency is an error of radians in the angle. His cosines are off by nearly the whole range of a
    cosine. Casting a whole model with `.to(torch.bfloat16)` does the same to the `inv_freq` buffer. The
    cure: compute the angles and their cosines in float32 and round only the finished table;
    `reset_parameters` gives the buffer back its float32.

    ```pycon
    >>> position = torch.tensor([4096])
    >>> inv_freq = rope_frequencies(128)
    >>> cos32, _ = rope_cos_sin(position, 128)                          # float32 angles
    >>> torch.tensor([4097.0]).to(torch.bfloat16)
    tensor([4096.], dtype=torch.bfloat16)
    >>> angles = position.to(torch.bfloat16)[:, None] * inv_freq.to(torch.bfloat16)   # Hammer
    >>> hammer_cos = torch.cat([angles, angles], dim=-1).cos()
    >>> ours_cos, _ = rope_cos_sin(position, 128, dtype=torch.bfloat16)  # float32 angles, rounded at the end
    >>> errors = {
    ...     "frequency error (%)": 100 * (inv_freq.to(torch.bfloat16) / inv_freq - 1).abs().max().item(),
    ...     "angle error (radians)": (angles.float() - position * inv_freq).abs().max().item(),
    ...     "cosine error, Hammer": (hammer_cos.float() - cos32).abs().max().item(),
    ...     "cosine error, ours": (ours_cos.float() - cos32).abs().max().item()}
    >>> for name, error in errors.items():
    ...     print(f"{name}: {error:.3f}")
    frequency error (%): 0.365
    angle error (radians): 5.010
    cosine error, Hammer: 1.930
    cosine error, ours: 0.002
    >>> rope = RotaryEmbedding(128).to(torch.bfloat16)               # the whole model cast, buffer too
    >>> probe = torch.zeros(1)                                        # lends float32: no final rounding
    >>> {"buffer": rope.inv_freq.dtype, "cosine error": round((rope(probe, position)[0] - cos32).abs().max().item(), 2)}
    {'buffer': torch.bfloat16, 'cosine error': 1.93}
    >>> rope.reset_parameters()
    >>> {"buffer": rope.inv_freq.dtype, "cosine error": (rope(probe, position)[0] - cos32).abs().max().item()}
    {'buffer': torch.float32, 'cosine error': 0.0}

    ```

!!! hammer "Dr. Hammer's trap: rotating the values too"
    "If rotating is good for queries and keys, it must be good for values," says Hammer. But the
    relative-position property lives in the *scores*; a rotated value carries its absolute position into
    the output, so the same sentence moved 100 seats along now gives a different answer. Rotate queries
    and keys, never values.

    ```pycon
    >>> from torchenstein.transformers.attention import scaled_dot_product_attention
    >>> _ = torch.manual_seed(0)
    >>> q, k, v = torch.randn(3, 1, 6, 8, dtype=torch.float64).unbind(0)   # (H, T, d)
    >>> def attend(start, rotate_v):
    ...     cos, sin = rope_cos_sin(torch.arange(start, start + 6), 8, dtype=torch.float64)
    ...     q_rot, k_rot = apply_rotary(q, k, cos, sin, unsqueeze_dim=None)
    ...     v_used = apply_rotary(v, v, cos, sin, unsqueeze_dim=None)[0] if rotate_v else v
    ...     return scaled_dot_product_attention(q_rot, k_rot, v_used, is_causal=True)
    >>> {"Hammer: moved sentence, same output": torch.allclose(attend(0, True), attend(100, True)),
    ...  "ours: moved sentence, same output": torch.allclose(attend(0, False), attend(100, False))}
    {'Hammer: moved sentence, same output': False, 'ours: moved sentence, same output': True}

    ```

## Challenges

**1. Position interpolation.** A model trained on 2048 positions meets a prompt of 8192. Chen et al.
(2023) squeeze the new positions into the old range: divide every position by a `factor`. Write
`rope_scaling_linear(positions, head_dim, base=10000.0, factor=1.0)` returning float32 `(cos, sin)` in
the rotate-half layout, equal to the tables of `positions / factor`. (Hint: dividing the positions or
the frequencies gives the same angles.) Raise `ValueError` for a `factor` that is not a finite number
above 0.

**2. The rotation as a matrix.** Write `rope_rotation_matrix(position, head_dim, base=10000.0)`: the
float64 $(d, d)$ block-diagonal matrix $R_m$ whose block $i$ turns the interleaved pair
$(x_{2i}, x_{2i+1})$ by $m\,\theta_i$, so that `x @ R.T` equals `apply_rotary_interleaved` of `x`. Then
check $R_m^\top R_n = R_{n-m}$ yourself.

Check an attempt with `check_rope_scaling_linear(my_function)` or `check_rope_rotation_matrix(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.transformers import rope as lesson
>>> lesson.check_rope_scaling_linear(lesson.rope_scaling_linear)
>>> lesson.check_rope_rotation_matrix(lesson.rope_rotation_matrix)

```
"""


from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROPE_BASE = 10000.0
"""The base of RoFormer, GPT-NeoX and Llama 1 and 2; Llama 3 uses 500000 (``rope_theta`` in Hugging Face)."""


def rope_frequencies(
    head_dim: int, base: float = ROPE_BASE, *, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The rotation frequencies $\theta_i = \text{base}^{-2i/d}$, one per pair of channels: ``inv_freq``.

    The operations and their order are those of Meta's Llama and Hugging Face's
    ``compute_default_rope_parameters``, so in float32 the result is theirs bit for bit.

    Args:
        head_dim: $d$, the width of one attention head, a positive even int.
        base: the frequency base (``rope_theta`` in Hugging Face's configs).
        dtype: ``torch.float32`` (everyone's choice) or ``torch.float64``; angles need the precision.
        device: where to build the tensor.

    Returns:
        A tensor of shape ``(head_dim // 2,)``, from 1 down towards ``1 / base``.

    Raises:
        ValueError: if ``head_dim`` is not a positive even int or ``base`` is not a finite number above 1.
        TypeError: if ``dtype`` is not float32 or float64.

    Examples:
        >>> rope_frequencies(8, base=10000.0)
        tensor([1.0000, 0.1000, 0.0100, 0.0010])
        >>> rope_frequencies(8, dtype=torch.bfloat16)
        Traceback (most recent call last):
        ...
        TypeError: dtype must be torch.float32 or torch.float64 (angles m * theta need the precision), got torch.bfloat16
    """
    _check_head_dim(head_dim)
    _check_base(base)
    _check_compute_dtype(dtype)
    # 2i/d for i = 0 .. d/2 - 1, then base to that power, inverted: the same three steps as Llama's code.
    exponents = torch.arange(0, head_dim, 2, dtype=dtype, device=device) / head_dim  # (d/2,)
    return 1.0 / (base**exponents)


def rope_cos_sin_from_frequencies(
    positions: Tensor, inv_freq: Tensor, *, interleaved: bool = False, dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The cosines and sines of the angles $m\,\theta_i$ for every position $m$ and frequency $\theta_i$.

    Args:
        positions: integer or floating positions $m$, any shape ``(...)``: ``(T,)`` or ``(B, T)`` usually.
        inv_freq: the frequencies $\theta_i$, shape ``(d/2,)``, float32 or float64; the angles are computed
            in its dtype.
        interleaved: ``False`` for the rotate-half layout $(\theta_0, \dots, \theta_{d/2-1}, \theta_0, \dots)$,
            ``True`` for interleaved pairs $(\theta_0, \theta_0, \theta_1, \theta_1, \dots)$.
        dtype: the dtype of the result, cast only at the very end; ``None`` keeps ``inv_freq``'s.

    Returns:
        ``(cos, sin)``, each of shape ``(..., d)``.

    Raises:
        TypeError: if a tensor has the wrong type or dtype.

    Examples:
        >>> cos, sin = rope_cos_sin_from_frequencies(torch.arange(3), torch.tensor([1.0, 0.5]))
        >>> cos.shape, sin[2]
        (torch.Size([3, 4]), tensor([0.9093, 0.8415, 0.9093, 0.8415]))
    """
    positions = _check_positions(positions)
    _check_inv_freq(inv_freq)
    # Position times frequency, every pair at every position: an outer product, done in inv_freq's precision.
    angles = positions[..., None].to(inv_freq.dtype) * inv_freq  # (..., d/2)
    if interleaved:
        angles = angles.repeat_interleave(2, dim=-1)  # (..., d): θ0 θ0 θ1 θ1 ...
    else:
        angles = torch.cat((angles, angles), dim=-1)  # (..., d): θ0 θ1 ... θ0 θ1 ...
    dtype = inv_freq.dtype if dtype is None else dtype
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rope_cos_sin(
    positions: Tensor, head_dim: int, base: float = ROPE_BASE, *, interleaved: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    r"""The rotary ``cos`` and ``sin`` tables for ``positions``, computed in float32 (float64 if asked).

    Args:
        positions: integer or floating positions, any shape ``(...)``.
        head_dim: $d$, a positive even int.
        base: the frequency base.
        interleaved: the layout: ``False`` for rotate-half (Llama, GPT-NeoX), ``True`` for interleaved
            pairs (GPT-J, RoFormer).
        dtype: the result's dtype. The angles are computed in float64 when it is float64 and in float32
            otherwise; half precision is a cast at the very end, never the arithmetic.

    Returns:
        ``(cos, sin)``, each of shape ``(..., head_dim)``.

    Raises:
        ValueError: if ``head_dim`` or ``base`` is invalid.
        TypeError: if ``positions`` is not a real tensor, or is float16/bfloat16.

    Examples:
        >>> cos, sin = rope_cos_sin(torch.arange(5), 8)
        >>> cos.shape, cos.dtype
        (torch.Size([5, 8]), torch.float32)
        >>> rope_cos_sin(torch.arange(5), 8, dtype=torch.bfloat16)[0].dtype
        torch.bfloat16
        >>> rope_cos_sin(torch.tensor([70000.0]).half(), 8)
        Traceback (most recent call last):
        ...
        TypeError: positions must be integers, float32 or float64, got dtype torch.float16: half precision cannot hold them (float16 stops at 65504, bfloat16 cannot even hold 257)
    """
    positions = _check_positions(positions)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    inv_freq = rope_frequencies(head_dim, base, dtype=compute, device=positions.device)
    return rope_cos_sin_from_frequencies(positions, inv_freq, interleaved=interleaved, dtype=dtype)


def rotate_half(x: Tensor) -> Tensor:
    r"""Map each pair $(x_i, x_{i + d/2})$ to $(-x_{i + d/2}, x_i)$: a quarter turn, in the rotate-half layout.

    Examples:
        >>> rotate_half(torch.tensor([1, 2, 3, 4]))
        tensor([-3, -4,  1,  2])
    """
    x1, x2 = x.chunk(2, dim=-1)  # the first and second halves of the channels
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x: Tensor) -> Tensor:
    r"""Map each pair $(x_{2i}, x_{2i+1})$ to $(-x_{2i+1}, x_{2i})$: a quarter turn, in the interleaved layout.

    Examples:
        >>> rotate_every_two(torch.tensor([1, 2, 3, 4]))
        tensor([-2,  1, -4,  3])
    """
    pairs = x.unflatten(-1, (-1, 2))  # (..., d/2, 2)
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(
    q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, unsqueeze_dim: int | None = 1,
) -> tuple[Tensor, Tensor]:
    r"""Rotate queries and keys by their positions, in the rotate-half layout of Llama and GPT-NeoX.

    The twin of Hugging Face's ``apply_rotary_pos_emb``, same arguments, same arithmetic:
    $x \cos + \operatorname{rotate\_half}(x) \sin$ for $x$ = ``q`` and ``k``.

    Args:
        q: queries, ``(B, H, T, d)`` usually.
        k: keys, the same but for the number of heads (grouped-query attention shares keys).
        cos: from [`rope_cos_sin`][torchenstein.transformers.rope.rope_cos_sin], ``(B, T, d)`` or ``(T, d)``.
        sin: the same shape as ``cos``.
        unsqueeze_dim: where to insert the heads' dim into ``cos`` and ``sin``: 1 for ``(B, H, T, d)``
            inputs, 2 for ``(B, T, H, d)``; ``None`` when they broadcast as they are.

    Returns:
        ``(q_rotated, k_rotated)``, shaped like ``q`` and ``k``.

    Raises:
        TypeError: if an argument is not a tensor.
        ValueError: if the widths are odd or differ, or ``cos``/``sin`` do not broadcast onto ``q`` and ``k``.

    Examples:
        >>> q, k = torch.randn(2, 4, 5, 8), torch.randn(2, 1, 5, 8)     # (B, H, T, d); one K head
        >>> cos, sin = rope_cos_sin(torch.arange(5).expand(2, 5), 8)    # (B, T, d)
        >>> [t.shape for t in apply_rotary(q, k, cos, sin)]
        [torch.Size([2, 4, 5, 8]), torch.Size([2, 1, 5, 8])]
        >>> apply_rotary(q, k, cos, sin, unsqueeze_dim=2)
        Traceback (most recent call last):
        ...
        ValueError: cos of shape (2, 5, 1, 8) (after unsqueeze_dim=2) must broadcast onto q of shape (2, 4, 5, 8) without growing it
    """
    cos, sin = _check_rotary(q, k, cos, sin, unsqueeze_dim)
    # Each pair (x_i, x_{i+d/2}) turns by its angle: x cos + (quarter-turned x) sin is the 2-D rotation.
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def apply_rotary_interleaved(
    q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, unsqueeze_dim: int | None = 1,
) -> tuple[Tensor, Tensor]:
    r"""Rotate queries and keys in the interleaved layout of GPT-J and RoFormer: pairs $(x_{2i}, x_{2i+1})$.

    Args:
        q: queries.
        k: keys.
        cos: from ``rope_cos_sin(..., interleaved=True)``.
        sin: the same shape as ``cos``.
        unsqueeze_dim: as in [`apply_rotary`][torchenstein.transformers.rope.apply_rotary].

    Returns:
        ``(q_rotated, k_rotated)``, shaped like ``q`` and ``k``.

    Raises:
        TypeError: if an argument is not a tensor.
        ValueError: if the shapes do not fit.

    Examples:
        >>> q = k = torch.tensor([[1.0, 0.0, 1.0, 0.0]])                 # (T=1, d=4)
        >>> cos, sin = rope_cos_sin(torch.tensor([1]), 4, base=4.0, interleaved=True)
        >>> apply_rotary_interleaved(q, k, cos, sin, unsqueeze_dim=None)[0]   # turned by 1 and 1/2 radian
        tensor([[0.5403, 0.8415, 0.8776, 0.4794]])
    """
    cos, sin = _check_rotary(q, k, cos, sin, unsqueeze_dim)
    return q * cos + rotate_every_two(q) * sin, k * cos + rotate_every_two(k) * sin


def rope_freqs_cis(
    positions: Tensor, head_dim: int, base: float = ROPE_BASE, *, dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""The unit complex numbers $e^{i m \theta_j}$, Meta's ``freqs_cis``, computed in float32 (or float64).

    Args:
        positions: integer or floating positions, any shape ``(...)``.
        head_dim: $d$, a positive even int.
        base: the frequency base.
        dtype: the precision of the angles, ``torch.float32`` (complex64 result) or ``torch.float64``
            (complex128).

    Returns:
        A complex tensor of shape ``(..., head_dim // 2)``, every entry of modulus 1.

    Raises:
        ValueError: if ``head_dim`` or ``base`` is invalid.
        TypeError: if ``positions`` is not a real tensor or ``dtype`` not float32 or float64.

    Examples:
        >>> rope_freqs_cis(torch.tensor([0, 1]), 2)
        tensor([[1.0000+0.0000j],
                [0.5403+0.8415j]])
    """
    positions = _check_positions(positions)
    inv_freq = rope_frequencies(head_dim, base, dtype=dtype, device=positions.device)
    angles = positions[..., None].to(dtype) * inv_freq  # (..., d/2)
    # torch.polar(r, angle) = r e^{i angle}: modulus 1, so multiplying by it only turns.
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary_complex(q: Tensor, k: Tensor, freqs_cis: Tensor) -> tuple[Tensor, Tensor]:
    r"""Interleaved RoPE as complex multiplication, the way Meta's original Llama code writes it.

    Each pair $(x_{2j}, x_{2j+1})$ is read as the complex number $x_{2j} + i\,x_{2j+1}$ and multiplied by
    $e^{i m \theta_j}$; the arithmetic runs in float32 (complex64), or float64 for float64 inputs.

    Args:
        q: queries ``(..., d)``.
        k: keys ``(..., d)``.
        freqs_cis: from [`rope_freqs_cis`][torchenstein.transformers.rope.rope_freqs_cis], broadcastable
            onto ``(..., d/2)``.

    Returns:
        ``(q_rotated, k_rotated)`` in the dtypes of ``q`` and ``k``.

    Examples:
        >>> q = torch.tensor([[1.0, 0.0]])
        >>> apply_rotary_complex(q, q, rope_freqs_cis(torch.tensor([1]), 2))[0]
        tensor([[0.5403, 0.8415]])
    """

    def rotate(x: Tensor) -> Tensor:
        compute = torch.float64 if x.dtype == torch.float64 else torch.float32
        # (..., d) real -> (..., d/2, 2) -> (..., d/2) complex: channel 2j is the real part, 2j+1 the imaginary.
        z = torch.view_as_complex(x.to(compute).contiguous().unflatten(-1, (-1, 2)))
        return torch.view_as_real(z * freqs_cis.to(z.dtype)).flatten(-2).to(x.dtype)  # back to (..., d)

    return rotate(q), rotate(k)


def rotate_half_permutation(head_dim: int) -> Tensor:
    r"""The channel order that turns the interleaved layout into the rotate-half one.

    Channel ``j`` of the rotate-half layout is channel ``perm[j]`` of the interleaved one: the first
    members of all pairs ($0, 2, 4, \dots$), then the second members ($1, 3, 5, \dots$).

    Raises:
        ValueError: if ``head_dim`` is not a positive even int.

    Examples:
        >>> rotate_half_permutation(8)
        tensor([0, 2, 4, 6, 1, 3, 5, 7])
    """
    _check_head_dim(head_dim)
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def permute_for_rotate_half(weight: Tensor, num_heads: int) -> Tensor:
    r"""Reorder the output rows of a query or key projection, head by head, from interleaved to rotate-half.

    Hugging Face's conversion of Meta's Llama checkpoints does exactly this to ``wq`` and ``wk``.

    Args:
        weight: ``(num_heads * d, E)`` weight or ``(num_heads * d,)`` bias, its rows head after head.
        num_heads: how many heads the rows hold.

    Returns:
        The same rows, each head's $d$ rows put in the order of
        [`rotate_half_permutation`][torchenstein.transformers.rope.rotate_half_permutation].

    Raises:
        ValueError: if ``num_heads`` does not split ``weight``'s rows into heads of even width.

    Examples:
        >>> permute_for_rotate_half(torch.arange(8), num_heads=2)
        tensor([0, 2, 1, 3, 4, 6, 5, 7])
    """
    _check_num_heads(weight, num_heads)
    d = weight.size(0) // num_heads
    per_head = weight.unflatten(0, (num_heads, d))  # (H, d, ...)
    return per_head[:, rotate_half_permutation(d).to(weight.device)].flatten(0, 1)  # (H * d, ...)


class RotaryEmbedding(nn.Module):
    r"""Compute the rotary ``cos`` and ``sin`` tables for given positions, like Hugging Face's ``LlamaRotaryEmbedding``.

    Args:
        head_dim: $d$, a positive even int.
        base: the frequency base (``rope_theta``).
        interleaved: the layout of the tables (``False``: rotate-half).
        device: where to build ``inv_freq``.

    Attributes:
        inv_freq: the frequencies, ``(head_dim // 2,)`` float32: a non-persistent buffer, left out of the
            ``state_dict`` and computed by ``reset_parameters`` (call it again after ``to_empty``).

    Raises:
        ValueError: if ``head_dim`` or ``base`` is invalid.

    Examples:
        >>> rope = RotaryEmbedding(8)
        >>> rope
        RotaryEmbedding(head_dim=8, base=10000.0, interleaved=False)
        >>> cos, sin = rope(torch.randn(2, 4, 8, dtype=torch.bfloat16), torch.arange(4).expand(2, 4))
        >>> cos.shape, cos.dtype, list(rope.state_dict())
        (torch.Size([2, 4, 8]), torch.bfloat16, [])
    """

    def __init__(self, head_dim: int, base: float = ROPE_BASE, *, interleaved: bool = False,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        _check_head_dim(head_dim)
        _check_base(base)
        self.head_dim, self.base, self.interleaved = head_dim, float(base), bool(interleaved)
        # A buffer moves with `.to(device)`; persistent=False keeps it out of checkpoints, so nothing will
        # ever restore it: it must be computable again, in reset_parameters.
        self.register_buffer("inv_freq", torch.empty(head_dim // 2, dtype=torch.float32, device=device), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Compute ``inv_freq`` again, in float32, on the buffer's device.

        ``__init__`` calls it; so must whoever replaces the buffer's memory (``to_empty`` after building on
        the ``meta`` device). It assigns a fresh tensor rather than copying into the old one, so it also
        repairs a buffer that ``.to(torch.bfloat16)`` rounded. On the ``meta`` device there are no numbers
        to compute, and it leaves the buffer alone.
        """
        if self.inv_freq.is_meta:
            return
        self.inv_freq = rope_frequencies(self.head_dim, self.base, device=self.inv_freq.device)

    def forward(self, x: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(cos, sin)`` of shape ``(*position_ids.shape, head_dim)`` in ``x``'s dtype and device.

        ``x`` only lends its dtype and device, as in Hugging Face. The angles are computed in float32
        whatever ``x``'s dtype (and whatever ``.double()`` made of the buffer), as Hugging Face does.
        """
        inv_freq = self.inv_freq.to(device=x.device, dtype=torch.float32)
        return rope_cos_sin_from_frequencies(position_ids.to(x.device), inv_freq, interleaved=self.interleaved,
                                             dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}, interleaved={self.interleaved}"


def rotary_score(
    q: Tensor, k: Tensor, query_position: int | Tensor, key_position: int | Tensor, base: float = ROPE_BASE,
) -> Tensor:
    r"""The dot product $\langle R_m q, R_n k \rangle$ of a query at position $m$ and a key at position $n$.

    Positions may be tensors (they broadcast), so one call scores a vector against many distances.

    Args:
        q: one query ``(d,)`` (or a batch ``(..., d)``).
        k: one key, shaped like ``q``.
        query_position: $m$, an int or a tensor of positions.
        key_position: $n$, the same.
        base: the frequency base.

    Returns:
        The scores, of the broadcast shape of the positions (and of ``q``'s leading dims); computed in
        ``q``'s dtype when it is float64, in float32 otherwise.

    Examples:
        >>> q = k = torch.ones(4, dtype=torch.float64)
        >>> rotary_score(q, k, 7, 7).item()            # same position: no turn, the plain dot product
        4.0
    """
    d = q.size(-1)
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    cos_q, sin_q = rope_cos_sin(torch.as_tensor(query_position), d, base, dtype=dtype)
    cos_k, sin_k = rope_cos_sin(torch.as_tensor(key_position), d, base, dtype=dtype)
    q_rot = q.to(dtype) * cos_q + rotate_half(q.to(dtype)) * sin_q
    k_rot = k.to(dtype) * cos_k + rotate_half(k.to(dtype)) * sin_k
    return (q_rot * k_rot).sum(-1)


def plot_rope(*, head_dim: int = 128, max_distance: int = 8192, bases: tuple[float, ...] = (ROPE_BASE, 500000.0)) -> Figure:
    """Draw the wavelength of every pair of channels, and the score of a query with itself against distance.

    Args:
        head_dim: $d$, the width of a head.
        max_distance: the largest relative distance drawn.
        bases: the frequency bases to compare.

    Returns:
        A figure with two axes.

    Examples:
        >>> len(plot_rope(head_dim=8, max_distance=16).axes)
        2
    """
    fig, (ax_wave, ax_decay) = new_figure(1, 2, width=9.0, height=3.6)
    # Distances spaced evenly on the log axis (about 1200 of them), dense enough to show the ripples.
    distance = torch.logspace(0, math.log10(max_distance), 1500, dtype=torch.float64).round().long().unique()
    ones = torch.ones(head_dim, dtype=torch.float64)
    for base, colour in zip(bases, PALETTE, strict=False):
        wavelength = 2 * math.pi / rope_frequencies(head_dim, base, dtype=torch.float64)
        ax_wave.plot(wavelength.numpy(), "o", markersize=3, color=colour, label=f"base {base:g}")
        # q = k = ones: every pair contributes 2 cos(r θ_i), so the score is the sum of the waves, over d.
        score = rotary_score(ones, ones, distance, 0, base) / head_dim
        ax_decay.plot(distance.numpy(), score.numpy(), color=colour, linewidth=0.8, label=f"base {base:g}")
    ax_wave.axhline(max_distance, color="#5d6d7e", linestyle="--", linewidth=0.8)
    ax_wave.text(0, max_distance * 1.3, f"{max_distance} tokens", fontsize=8, color="#5d6d7e")
    ax_wave.set(yscale="log", xlabel=f"pair $i$ (of {head_dim // 2})", ylabel=r"wavelength $2\pi/\theta_i$ (tokens)",
                title="One frequency per pair of channels")
    ax_decay.set(xscale="log", xlabel="relative distance $m - n$", ylabel=r"$\langle R_m q, R_n q\rangle / d$, $q$ = ones",
                 title="Scores fade with distance")
    ax_wave.legend()
    ax_decay.legend()
    return fig


def rope_scaling_linear(positions: Tensor, head_dim: int, base: float = ROPE_BASE, factor: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""Challenge solution: position interpolation, the rotary tables for positions divided by ``factor``.

    Dividing every angle $m\,\theta_i$ by ``factor`` is the same whether the positions or the frequencies
    are divided; like Hugging Face's ``"linear"`` rope type, this divides the frequencies.

    Args:
        positions: integer or floating positions, any shape ``(...)``.
        head_dim: $d$, a positive even int.
        base: the frequency base.
        factor: the stretch, a finite number above 0 (4 stretches a 2048-token model over 8192 tokens).

    Returns:
        ``(cos, sin)`` in float32, each ``(..., head_dim)``, rotate-half layout.

    Raises:
        ValueError: if ``factor`` (or ``head_dim``, ``base``) is invalid.

    Examples:
        >>> cos, _ = rope_scaling_linear(torch.tensor([8]), 4, factor=4.0)
        >>> torch.allclose(cos, rope_cos_sin(torch.tensor([2]), 4)[0])
        True
    """
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < math.inf:
        raise ValueError(f"factor must be a finite number above 0, got {factor!r}")
    inv_freq = rope_frequencies(head_dim, base) / factor
    return rope_cos_sin_from_frequencies(positions, inv_freq)


def check_rope_scaling_linear(candidate: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``rope_scaling_linear``."""
    cases = [(torch.arange(6), 8, ROPE_BASE, 1.0), (torch.arange(10), 16, ROPE_BASE, 4.0),
             (torch.arange(12).reshape(2, 6), 8, 500000.0, 2.0), (torch.tensor([0, 3, 100]), 4, 100.0, 0.5)]
    for positions, d, base, factor in cases:
        where = f"positions {positions.tolist()}, head_dim={d}, base={base}, factor={factor}"
        got = candidate(positions, d, base, factor)
        assert isinstance(got, tuple) and len(got) == 2, f"{where}: expected a (cos, sin) pair, got {type(got).__name__}"
        expected = rope_cos_sin(positions.double() / factor, d, base, dtype=torch.float64)
        for name, g, e in zip(("cos", "sin"), got, expected, strict=True):
            assert isinstance(g, Tensor), f"{where}: {name} is not a tensor"
            assert g.shape == e.shape, f"{where}: {name} has shape {tuple(g.shape)}, expected {tuple(e.shape)}"
            assert g.dtype == torch.float32, f"{where}: {name} should be float32, got {g.dtype}"
            assert torch.allclose(g.double(), e, atol=1e-5), (
                f"{where}: {name} differs from the tables of positions / factor (rotate-half layout: "
                "the d/2 frequencies, then the same d/2 again)")
    # Stretching by 4 puts position 4m where position m used to be.
    T, d = 16, 8
    stretched = candidate(torch.arange(0, 4 * T, 4), d, ROPE_BASE, 4.0)
    for g, e in zip(stretched, rope_cos_sin(torch.arange(T), d), strict=True):
        assert torch.allclose(g, e, atol=1e-6), "with factor=4, position 4m must get the angles of position m"
    try:
        candidate(torch.arange(3), 8, ROPE_BASE, 0.0)
    except ValueError:
        return
    raise AssertionError("factor=0.0 divides by zero: raise ValueError")


def rope_rotation_matrix(position: int, head_dim: int, base: float = ROPE_BASE) -> Tensor:
    r"""Challenge solution: the rotation $R_m$ as a $(d, d)$ float64 matrix, for the interleaved layout.

    Block $i$ on the diagonal turns pair $(x_{2i}, x_{2i+1})$ by $m\,\theta_i$, so that
    ``apply_rotary_interleaved`` rotates a vector $x$ into $R_m x$.

    Args:
        position: $m$.
        head_dim: $d$, a positive even int.
        base: the frequency base.

    Returns:
        A float64 tensor of shape ``(head_dim, head_dim)``.

    Raises:
        ValueError: if ``head_dim`` or ``base`` is invalid.

    Examples:
        >>> rope_rotation_matrix(1, 2, base=2.0)      # one block: a turn by 1 radian
        tensor([[ 0.5403, -0.8415],
                [ 0.8415,  0.5403]], dtype=torch.float64)
    """
    angles = position * rope_frequencies(head_dim, base, dtype=torch.float64)  # (d/2,)
    c, s = angles.cos(), angles.sin()
    # Each 2x2 block [[cos, -sin], [sin, cos]] turns its pair counter-clockwise.
    blocks = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)  # (d/2, 2, 2)
    return torch.block_diag(*blocks)


def check_rope_rotation_matrix(candidate: Callable[..., Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``rope_rotation_matrix``."""
    generator = torch.Generator().manual_seed(7)
    for m, d, base in ((0, 4, ROPE_BASE), (1, 2, ROPE_BASE), (3, 8, ROPE_BASE), (17, 16, 100.0), (250, 6, 500000.0)):
        where = f"position={m}, head_dim={d}, base={base}"
        R = candidate(m, d, base)
        assert isinstance(R, Tensor), f"{where}: expected a tensor, got {type(R).__name__}"
        assert R.shape == (d, d), f"{where}: expected shape {(d, d)}, got {tuple(R.shape)}"
        assert R.dtype == torch.float64, f"{where}: expected float64, got {R.dtype}"
        assert torch.allclose(R.T @ R, torch.eye(d, dtype=torch.float64)), f"{where}: R is not a rotation (R^T R != I)"
        x = torch.randn(3, d, dtype=torch.float64, generator=generator)
        cos, sin = rope_cos_sin(torch.full((3,), m), d, base, interleaved=True, dtype=torch.float64)
        expected, _ = apply_rotary_interleaved(x, x, cos, sin, unsqueeze_dim=None)
        assert torch.allclose(x @ R.T, expected), (
            f"{where}: R x must equal apply_rotary_interleaved(x): blocks [[cos, -sin], [sin, cos]] on pairs (2i, 2i+1)")
    R3, R10, R7 = (candidate(m, 8, ROPE_BASE) for m in (3, 10, 7))
    assert torch.allclose(R3.T @ R10, R7), "R_m^T R_n must be R_(n-m): the relative rotation"


def _check_head_dim(head_dim: object) -> None:
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int (channels turn in pairs), got {head_dim!r}")


def _check_base(base: object) -> None:
    if isinstance(base, bool) or not isinstance(base, int | float) or not 1 < base < math.inf:
        raise ValueError(f"base must be a finite number above 1, got {base!r}")


def _check_compute_dtype(dtype: object) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64 (angles m * theta need the precision), got {dtype}")


def _check_inv_freq(inv_freq: object) -> None:
    if not isinstance(inv_freq, Tensor):
        raise TypeError(f"inv_freq must be a 1-D float32 or float64 tensor, got {type(inv_freq).__name__}")
    if inv_freq.dtype not in (torch.float32, torch.float64) or inv_freq.dim() != 1:
        raise TypeError(f"inv_freq must be a 1-D float32 or float64 tensor, got dtype {inv_freq.dtype}, "
                        f"shape {tuple(inv_freq.shape)}")


def _check_positions(positions: object) -> Tensor:
    positions = torch.as_tensor(positions)
    if positions.dtype == torch.bool or positions.is_complex():
        raise TypeError(f"positions must hold integers or real numbers, got dtype {positions.dtype}")
    if positions.dtype in (torch.float16, torch.bfloat16):
        # Too late to compute in float32: the positions themselves are already rounded (or infinite).
        raise TypeError(f"positions must be integers, float32 or float64, got dtype {positions.dtype}: half "
                        "precision cannot hold them (float16 stops at 65504, bfloat16 cannot even hold 257)")
    return positions


def _check_rotary(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor, unsqueeze_dim: int | None) -> tuple[Tensor, Tensor]:
    for name, t in (("q", q), ("k", k), ("cos", cos), ("sin", sin)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    d = q.size(-1)
    if d % 2 or k.size(-1) != d or cos.size(-1) != d:
        raise ValueError(f"q, k and cos must share an even last dim, got q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"cos {tuple(cos.shape)}")
    if cos.shape != sin.shape:
        raise ValueError(f"cos and sin must have the same shape, got {tuple(cos.shape)} and {tuple(sin.shape)}")
    if unsqueeze_dim is not None:
        cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    for name, t in (("q", q), ("k", k)):
        # The tables may have fewer dims than q or k, and size 1 where q or k have more, never the reverse.
        # (Written out: torch.broadcast_shapes imports half of torch.fx on its first call.)
        fits = cos.dim() <= t.dim() and all(c in (1, s) for c, s in zip(reversed(cos.shape), reversed(t.shape), strict=False))
        if not fits:
            raise ValueError(f"cos of shape {tuple(cos.shape)} (after unsqueeze_dim={unsqueeze_dim}) must broadcast "
                             f"onto {name} of shape {tuple(t.shape)} without growing it")
    return cos, sin


def _check_num_heads(weight: Tensor, num_heads: object) -> None:
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    rows = weight.size(0) if weight.dim() else 0
    if rows % num_heads or (rows // num_heads) % 2:
        raise ValueError(f"num_heads={num_heads} must split weight's {rows} rows into heads of even width")
