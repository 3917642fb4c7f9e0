r"""
# LLaMA: Four Transplants and No Biases

!!! torchenstein "The Professor speaks"
    My GPT monster walks, talks and predicts the next word. But look at the newer creatures in the
    neighbouring cages: LLaMA, Mistral, Qwen. Same skeleton, different organs! Tonight I transplant
    four of them, every one grown in an earlier lesson of this course: RMSNorm for LayerNorm, rotary
    positions for the learned table, a SwiGLU feed-forward for the GELU one, grouped-query attention for
    plain multi-head. Then I cut away every bias. The result must compute, logit for logit, what Hugging
    Face's `LlamaForCausalLM` computes, or I shall know the reason why.

**You will learn to**

- name what changes from GPT-2 to LLaMA, and why each change was made;
- assemble a LLaMA decoder from the course's own `RMSNorm`, `swiglu`, `RotaryEmbedding` and
  `grouped_query_attention`, under Hugging Face's module names, so a `state_dict` moves in one line;
- prove its logits, loss and gradients equal to `transformers.LlamaForCausalLM`'s, for multi-head,
  grouped-query and multi-query attention, tied and untied embeddings, padding and explicit positions;
- feed a left-padded batch the right `attention_mask` and `position_ids`;
- count the parameters by formula, and the KV-cache memory grouped-query attention saves;
- dodge Dr. Hammer's traps: Meta's interleaved checkpoints, normalisation statistics in half precision,
  and a rotary buffer that no checkpoint restores.

## From GPT to LLaMA

The [previous lesson](../gpt/index.md) built GPT-2: a **decoder-only Transformer**, a stack of identical
blocks, each one attention followed by a feed-forward network (a per-token MLP), both wrapped around a
residual stream, the running sum every block reads from and adds to. A final layer turns each token's
vector into **logits**, one unnormalised score per vocabulary entry, whose softmax is the predicted
distribution of the next token. LLaMA (Touvron et al., 2023) keeps all of that and swaps the organs:

| | GPT-2 | LLaMA |
|---|---|---|
| normalisation | LayerNorm, with a bias | [RMSNorm](../../nn/rmsnorm/index.md): no mean, no bias |
| positions | a learned table, added once to the embeddings | [RoPE](../rope/index.md): queries and keys rotated in every layer |
| feed-forward | $E \to 4E \to E$ with GELU | [SwiGLU](../../nn/activations/index.md): gate, up and down, $\frac83 E$ wide |
| attention | multi-head | [grouped-query](../multihead/index.md) (Llama 2 70B, Llama 3): fewer key/value heads |
| biases | in every linear layer and norm | none at all |
| output layer | tied to the token embedding | untied (Llama 1, 2, 3 8B); tied in the small Llama 3.2 |

Every change buys something: RMSNorm one reduction fewer, RoPE scores that depend only on the distance
between tokens and a context not capped by a table, SwiGLU a better loss at equal parameter count
(Shazeer, 2020), grouped-query attention a smaller KV cache (the keys and values of every earlier token,
kept while a model generates text), and the missing biases a few parameters and
nothing much lost. **Tied** embeddings mean one matrix serves twice: as the table of token vectors and,
transposed, as the output layer.

## The configuration

[`LlamaConfig`][torchenstein.transformers.llama.LlamaConfig] is a dataclass with the field names of
Hugging Face's `LlamaConfig` (and its defaults, which describe Llama 2 7B), so
`transformers.LlamaConfig(**dataclasses.asdict(config))` builds the twin configuration. The head width
$d = E / H$ and the group size $g = H / H_{kv}$ follow from it; bad sizes are refused at once:

```pycon
>>> import dataclasses, math
>>> import torch
>>> from torchenstein.transformers.llama import LlamaConfig, LlamaForCausalLM
>>> config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
...                      num_attention_heads=4, num_key_value_heads=2, rope_theta=500.0)
>>> {"head_dim": config.head_dim, "groups": config.num_key_value_groups}
{'head_dim': 8, 'groups': 2}
>>> list(dataclasses.asdict(config))
['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'rms_norm_eps', 'rope_theta', 'max_position_embeddings', 'tie_word_embeddings']
>>> LlamaConfig(hidden_size=32, num_attention_heads=3)
Traceback (most recent call last):
...
ValueError: num_attention_heads must split hidden_size=32 into heads of even width (RoPE turns channels in pairs), got 3

```

## The organs, from earlier lessons

Nothing below is new code; it is old code under new names.

**The feed-forward.** [`LlamaMLP`][torchenstein.transformers.llama.LlamaMLP] computes
$W_\text{down}\big(\operatorname{SiLU}(W_\text{gate}\,x) \odot W_\text{up}\,x\big)$ with the activations
lesson's [`swiglu`][torchenstein.nn.activations.swiglu]. The gate decides, channel by channel, how much
of the "up" projection passes. Its three matrices are named as in Hugging Face (`gate_proj`, `up_proj`,
`down_proj`), where the activations lesson's [`SwiGLU`][torchenstein.nn.activations.SwiGLU] used
Meta's `w1`, `w3`, `w2`; a renamed `state_dict` makes them the same module:

```pycon
>>> from torchenstein.nn.activations import SwiGLU
>>> from torchenstein.transformers.llama import LlamaMLP
>>> _ = torch.manual_seed(0)
>>> mlp = LlamaMLP(8, 24)
>>> twin = SwiGLU(8, 24)
>>> sd = mlp.state_dict()
>>> twin.load_state_dict({"w1.weight": sd["gate_proj.weight"], "w2.weight": sd["down_proj.weight"],
...                       "w3.weight": sd["up_proj.weight"]})
<All keys matched successfully>
>>> x = torch.randn(2, 5, 8)                                   # (B, T, E)
>>> torch.testing.assert_close(mlp(x), twin(x))

```

Three matrices of $E \times I$ cost what two of $E \times 4E$ cost when $I = \frac83 E$. Meta's code
takes that width and rounds it up to a multiple of 256, which gives Llama 2 7B's `intermediate_size`:

```pycon
>>> E = 4096
>>> {"8E/3": round(8 * E / 3, 1), "rounded up": 256 * math.ceil(8 * E / 3 / 256),
...  "Llama 2 7B": LlamaConfig().intermediate_size}
{'8E/3': 10922.7, 'rounded up': 11008, 'Llama 2 7B': 11008}

```

**The attention.** [`LlamaAttention`][torchenstein.transformers.llama.LlamaAttention] projects with
`q_proj` ($H$ heads) and `k_proj`, `v_proj` ($H_{kv}$ heads only), rotates queries and keys with the
rope lesson's [`apply_rotary`][torchenstein.transformers.rope.apply_rotary], hands them to the multihead
lesson's [`grouped_query_attention`][torchenstein.transformers.multihead.grouped_query_attention] with a
causal mask, and mixes the heads with `o_proj`. There are no biases: every projection is a
[`Linear`][torchenstein.nn.linear.Linear] with `bias=False`.

```pycon
>>> from torchenstein.transformers.llama import LlamaAttention
>>> attn = LlamaAttention(config)
>>> {name: tuple(p.shape) for name, p in attn.named_parameters()}
{'q_proj.weight': (32, 32), 'k_proj.weight': (16, 32), 'v_proj.weight': (16, 32), 'o_proj.weight': (32, 32)}

```

**The positions.** One [`RotaryEmbedding`][torchenstein.transformers.rope.RotaryEmbedding] per model
turns position ids into `cos` and `sin` tables of shape $(B, T, d)$, shared by every layer. Nothing is
added to the embeddings: position enters only through the rotation of queries and keys.

**The norms.** Two [`RMSNorm`][torchenstein.nn.rmsnorm.RMSNorm]s per layer, before attention and before
the MLP (the pre-norm block of the RMSNorm lesson), and one after the last layer.

## Assembling the monster

[`LlamaDecoderLayer`][torchenstein.transformers.llama.LlamaDecoderLayer] is the pre-norm block,

$$
h = x + \operatorname{Attn}\big(\operatorname{RMSNorm}_1(x)\big), \qquad
\operatorname{out} = h + \operatorname{MLP}\big(\operatorname{RMSNorm}_2(h)\big),
$$

[`LlamaModel`][torchenstein.transformers.llama.LlamaModel] stacks `embed_tokens`, the layers and the
final `norm`, and [`LlamaForCausalLM`][torchenstein.transformers.llama.LlamaForCausalLM] adds `lm_head`,
the $(V, E)$ output layer. The attribute names are Hugging Face's, so the `state_dict` keys are too:

```pycon
>>> _ = torch.manual_seed(0)
>>> model = LlamaForCausalLM(config)
>>> keys = list(model.state_dict())
>>> print("\n".join(keys[:10] + ["...", keys[-1]]))
model.embed_tokens.weight
model.layers.0.self_attn.q_proj.weight
model.layers.0.self_attn.k_proj.weight
model.layers.0.self_attn.v_proj.weight
model.layers.0.self_attn.o_proj.weight
model.layers.0.mlp.gate_proj.weight
model.layers.0.mlp.up_proj.weight
model.layers.0.mlp.down_proj.weight
model.layers.0.input_layernorm.weight
model.layers.0.post_attention_layernorm.weight
...
lm_head.weight
>>> "model.rotary_emb.inv_freq" in keys                      # a non-persistent buffer
False
>>> ids = torch.randint(0, 64, (2, 7))                        # (B, T) token ids
>>> logits = model(ids)
>>> logits.shape                                              # (B, T, V)
torch.Size([2, 7, 64])

```

[`causal_lm_loss`][torchenstein.transformers.llama.causal_lm_loss] is what Hugging Face computes when
it is given `labels`: the logits at position $t$ are scored, with the course's
[`cross_entropy`][torchenstein.nn.losses.cross_entropy], against the token at $t + 1$, and labels of
`-100` are ignored. Freshly initialised (every weight drawn with standard deviation 0.02, as Hugging
Face does), the logits are nearly equal and the loss is nearly $\ln V$, the loss of a uniform guess:

```pycon
>>> from torchenstein.transformers.llama import causal_lm_loss
>>> loss = causal_lm_loss(logits, ids)
>>> {"loss": round(loss.item(), 2), "ln V": round(math.log(64), 2), "within 0.05": abs(loss.item() - math.log(64)) < 0.05}
{'loss': 4.16, 'ln V': 4.16, 'within 0.05': True}
>>> model(ids.float())
Traceback (most recent call last):
...
TypeError: input_ids must be an integer tensor of token ids, got torch.float32

```

## Proved equal to Hugging Face

`tests/test_llama.py` builds `transformers.LlamaForCausalLM` from the same sizes (a small random config,
nothing downloaded), copies our weights in with one line, and compares:

```python
theirs = transformers.LlamaForCausalLM(
    transformers.LlamaConfig(**dataclasses.asdict(config), attn_implementation="eager"))
theirs.load_state_dict(model.state_dict())      # <All keys matched successfully>
torch.testing.assert_close(model(ids), theirs(ids).logits)
```

It proves the logits equal in float32 (default tolerance) with $H_{kv} = H$ (multi-head), $1 < H_{kv} < H$
(grouped-query) and $H_{kv} = 1$ (multi-query), with tied and untied embeddings, Hugging Face's `eager`
and `sdpa` attention, a left-padded `attention_mask`, explicit `position_ids` (offsets deep into a
sequence too) and sequences of length 1; the loss equal to `theirs(ids, labels=ids).loss`, padding
labels of `-100` included; and the gradients of every parameter equal after `backward`. In float64 the
logits, loss and gradients agree to $10^{-13}$ or better once Hugging Face's norms are made to compute
in float64 (below); in bfloat16, to bfloat16's tolerance.

!!! note "Where it differs from Hugging Face"
    - **float64.** Hugging Face's `LlamaRMSNorm` computes its statistics in float32 *whatever* the
      input's dtype, its eager attention takes the softmax in float32, and its `labels=` loss upcasts
      the logits with `.float()`, so to float32; ours computes float64 in float64. A float64
      comparison therefore agrees only to float32's precision; with Hugging Face's norm patched to keep
      float64, `sdpa` attention and the loss taken on its logits in float64, to $10^{-13}$. A test
      pins both.
    - **bfloat16.** Hugging Face rounds the normalised vector to bfloat16 before multiplying by the
      norm's weight; ours multiplies in float32 and rounds once (the RMSNorm lesson's choice).
    - **Padded positions.** A padding token that comes before every real token sees no key at all.
      Ours gives it a zero attention output (the attention lesson's guard); Hugging Face gives it
      something else. Those positions predict nothing and are compared nowhere.
    - **Not built here:** the KV cache (it belongs to text generation), `inputs_embeds`, a `labels`
      argument (use `causal_lm_loss`), rope scaling, attention dropout, a `head_dim` other than
      $E / H$, and `attention_bias`/`mlp_bias` (Hugging Face's options for LLaMA's cousins).

## Padding and positions

A batch of sentences of different lengths is padded to one length $T$. For generation, models pad on
the **left**, so that every row's last token is a real one. `attention_mask` is Hugging Face's $(B, T)$
mask, 1 for a real token and 0 for padding (the opposite polarity of PyTorch's `key_padding_mask`);
the model combines it with the causal mask, so no query reads a padded key. That mask is essential.
The positions are a subtler matter. Without `position_ids`, Hugging Face numbers every row
$0, \dots, T-1$, whatever the mask says, and so do we: the sentence below then sits at positions 2 to 5
instead of 0 to 3. With the learned position table of the [previous lesson](../gpt/index.md), that
would change its logits. With RoPE it does not: every score depends only on the *distance* between a
query and a key, and a shift of the whole sentence keeps every distance. Pass the true positions
anyway (the positional lesson's
[`positions_from_padding_mask`][torchenstein.nn.positional.positions_from_padding_mask] counts them,
as Hugging Face's `generate` does): they give the very angles of the unpadded run, and a KV cache
continues counting from them.

```pycon
>>> from torchenstein.nn.positional import positions_from_padding_mask
>>> sentence = torch.tensor([[5, 17, 42, 8]])
>>> padded = torch.tensor([[0, 0, 5, 17, 42, 8]])              # two pads on the left
>>> mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
>>> positions = positions_from_padding_mask(mask)
>>> positions
tensor([[0, 0, 0, 1, 2, 3]])
>>> alone = model(sentence)
>>> {"mask and positions": torch.allclose(model(padded, mask, positions)[:, 2:], alone, atol=1e-6),
...  "mask only": torch.allclose(model(padded, mask)[:, 2:], alone, atol=1e-6),
...  "no mask": torch.allclose(model(padded)[:, 2:], alone, atol=1e-6)}
{'mask and positions': True, 'mask only': True, 'no mask': False}
>>> model(padded, mask, positions[0, :4])
Traceback (most recent call last):
...
ValueError: position_ids must have shape (B, T) = (1, 6), (1, T) or (T,), got (4,)

```

## Counting parameters

[`parameter_budget`][torchenstein.transformers.llama.parameter_budget] counts by formula, part by
part; [`parameter_count`][torchenstein.transformers.llama.parameter_count] adds them up. With
$V, E, I, N, H, H_{kv}$ and $d = E / H$:

$$
\underbrace{VE}_\text{embedding}
+ N\big(\underbrace{2EHd + 2EH_{kv}d}_\text{attention} + \underbrace{3EI}_\text{MLP} + \underbrace{2E}_\text{norms}\big)
+ \underbrace{E}_\text{final norm} + \underbrace{VE}_\text{lm\_head, if untied}.
$$

Building the real Llama 2 7B or Llama 3 8B would fill tens of GiB with float32 weights. On the `meta`
device a tensor has a shape and a dtype but no memory, so the module costs nothing and its parameters
can still be counted:

```pycon
>>> from torchenstein.transformers.llama import parameter_budget, parameter_count
>>> llama3_8b = LlamaConfig(vocab_size=128256, intermediate_size=14336, num_key_value_heads=8,
...                         rope_theta=500000.0, max_position_embeddings=8192)
>>> for name, c in (("Llama 2 7B", LlamaConfig()), ("Llama 3 8B", llama3_8b)):
...     with torch.device("meta"):
...         big = LlamaForCausalLM(c)
...     counted = sum(p.numel() for p in big.parameters())
...     print(f"{name}: {parameter_count(c):,} by formula, the module agrees: {counted == parameter_count(c)}, "
...           f"{4 * counted / 2**30:.1f} GiB in float32")
Llama 2 7B: 6,738,415,616 by formula, the module agrees: True, 25.1 GiB in float32
Llama 3 8B: 8,030,261,248 by formula, the module agrees: True, 29.9 GiB in float32
>>> {part: f"{n / parameter_count(llama3_8b):.1%}" for part, n in parameter_budget(llama3_8b).items()}
{'embedding': '6.5%', 'attention': '16.7%', 'mlp': '70.2%', 'norms': '0.0%', 'lm_head': '6.5%'}
>>> tied = dataclasses.replace(config, tie_word_embeddings=True)
>>> sum(p.numel() for p in LlamaForCausalLM(tied).parameters()) == parameter_count(tied)   # counted once
True

```

Seven tenths of Llama 3 8B is feed-forward; the attention is a sixth, and would be a fifth were it not
grouped.
[`gpt_style_parameter_budget`][torchenstein.transformers.llama.gpt_style_parameter_budget] counts a
GPT-2-style decoder the same way (it gives GPT-2 small's 124,439,808), and
[`plot_parameter_budget`][torchenstein.transformers.llama.plot_parameter_budget] compares the two at
GPT-2 small's width, depth and vocabulary. At equal width the LLaMA-style model spends the same on
its MLP, nothing on positions, biases or norm biases, and less on attention once it is grouped:

```pycon
>>> from torchenstein.transformers.llama import gpt_style_parameter_budget
>>> small = LlamaConfig(vocab_size=50257, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
...                     num_attention_heads=12, tie_word_embeddings=True)
>>> {"GPT-2 style": sum(gpt_style_parameter_budget(768, 12, 50257, 1024).values()),
...  "LLaMA style, MHA": parameter_count(small),
...  "LLaMA style, 3 K/V heads": parameter_count(dataclasses.replace(small, num_key_value_heads=3))}
{'GPT-2 style': 124439808, 'LLaMA style, MHA': 123551232, 'LLaMA style, 3 K/V heads': 112934400}

```

![Three stacked horizontal bars of parameters in millions, split into embedding, attention, MLP and norms: GPT-2 style 124.4 M, LLaMA style with multi-head attention 123.6 M, and LLaMA style with grouped-query attention (3 key/value heads) 112.9 M, its attention part over a third smaller and its other parts unchanged.](plot_parameter_budget.svg)

## What grouped-query attention saves

During generation each layer keeps the keys and values of every earlier token, the KV cache of the
[multihead lesson](../multihead/index.md), and its
[`kv_cache_bytes`][torchenstein.transformers.multihead.kv_cache_bytes] gives its size. Llama 3 8B keeps
8 key/value heads for its 32 query heads; with plain multi-head attention it would keep 32:

```pycon
>>> from torchenstein.transformers.multihead import kv_cache_bytes
>>> c = llama3_8b
>>> for name, heads in (("MHA", c.num_attention_heads), ("GQA", c.num_key_value_heads)):
...     size = kv_cache_bytes(c.num_hidden_layers, heads, c.head_dim, seq_len=8192, dtype=torch.bfloat16)
...     print(f"{name}: {heads:2} K/V heads, {size / 2**30:.0f} GiB for 8192 tokens")
MHA: 32 K/V heads, 4 GiB for 8192 tokens
GQA:  8 K/V heads, 1 GiB for 8192 tokens
>>> mha = dataclasses.replace(c, num_key_value_heads=32)
>>> f"{parameter_count(mha) - parameter_count(c):,} parameters saved too"
'805,306,368 parameters saved too'

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: Meta's checkpoint in Hugging Face's layout"
    Meta's original LLaMA code rotates *interleaved* pairs of channels; Hugging Face's rotates halves
    (the [rope lesson](../rope/index.md) explains both). Hammer loads weights trained the interleaved way
    into the rotate-half model: every key matches, every shape fits, and the logits are wrong. He reads
    about `permute_for_rotate_half`, permutes both `q_proj` and `k_proj` with `num_attention_heads`,
    and is wrong again, silently: under grouped-query attention `k_proj` holds only
    `num_key_value_heads` heads, and cutting its rows into the wrong number of heads shuffles channels
    across heads. (To make the difference plain, the "trained" weights are drawn larger than at
    initialisation.)

    ```pycon
    >>> from torchenstein.transformers.rope import permute_for_rotate_half
    >>> _ = torch.manual_seed(0)
    >>> meta_style = LlamaForCausalLM(config, rope_interleaved=True)   # as Meta's code computes
    >>> with torch.no_grad():
    ...     for p in meta_style.parameters():
    ...         _ = p.normal_(0.0, 0.5)
    >>> expected = meta_style(ids)
    >>> hammer = LlamaForCausalLM(config)                              # rotate-half, as Hugging Face
    >>> hammer.load_state_dict(meta_style.state_dict())
    <All keys matched successfully>
    >>> def permuted(state, k_heads):
    ...     state = dict(state)
    ...     for i in range(config.num_hidden_layers):
    ...         q, k = (f"model.layers.{i}.self_attn.{n}_proj.weight" for n in "qk")
    ...         state[q] = permute_for_rotate_half(state[q], config.num_attention_heads)
    ...         state[k] = permute_for_rotate_half(state[k], k_heads)
    ...     return state
    >>> hammer_again = LlamaForCausalLM(config)
    >>> _ = hammer_again.load_state_dict(permuted(meta_style.state_dict(), config.num_attention_heads))
    >>> fixed = LlamaForCausalLM(config)
    >>> _ = fixed.load_state_dict(permuted(meta_style.state_dict(), config.num_key_value_heads))
    >>> {name: torch.allclose(m(ids), expected, atol=1e-4)
    ...  for name, m in (("loaded as is", hammer), ("k permuted as 4 heads", hammer_again),
    ...                  ("k permuted as 2 heads", fixed))}
    {'loaded as is': False, 'k permuted as 4 heads': False, 'k permuted as 2 heads': True}

    ```

    Values and the output projection are not rotated, and stay as they are. The first challenge below
    converts a whole Meta checkpoint, names included.

!!! hammer "Dr. Hammer's trap: RMSNorm statistics in half precision"
    Hammer runs his LLaMA in float16 and writes his own norm, "all in float16, for speed". LLaMA's
    residual streams are known to carry a few **massive activations**, single features in the hundreds
    or thousands. One feature of 300 squares to 90000, beyond float16's largest number, 65504: the mean
    square is infinite and the whole token is normalised to zeros. Hugging Face's `LlamaRMSNorm`
    upcasts to float32 for the statistics, and so does the course's
    [`RMSNorm`][torchenstein.nn.rmsnorm.RMSNorm] (its lesson shows the bfloat16 side of this trap):

    ```pycon
    >>> from torchenstein.nn.rmsnorm import RMSNorm
    >>> _ = torch.manual_seed(0)
    >>> h = torch.randn(1, 32)
    >>> h[0, 7] = 300.0                                        # one massive activation
    >>> h16 = h.half()
    >>> norm16 = RMSNorm(32, eps=1e-5, dtype=torch.float16)     # weight all ones
    >>> def hammer_rms_norm(x, weight, eps):                   # statistics in x's own dtype
    ...     return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
    >>> hammer_out = hammer_rms_norm(h16, norm16.weight, 1e-5)
    >>> ours = norm16(h16)
    >>> x32 = h16.float()                                      # Hugging Face's recipe: upcast first
    >>> theirs = norm16.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).half()
    >>> {"max of x**2 in float16": h16.pow(2).max().item(),
    ...  "Hammer: token all zeros": bool((hammer_out == 0).all()),
    ...  "ours equals Hugging Face's": torch.equal(ours, theirs)}
    {'max of x**2 in float16': inf, 'Hammer: token all zeros': True, "ours equals Hugging Face's": True}

    ```

!!! hammer "Dr. Hammer's trap: the buffer no checkpoint restores"
    To load a big model without first filling memory with random weights, Hammer builds it on the
    `meta` device and loads the checkpoint with `assign=True`, which puts the checkpoint's tensors in
    place of the meta ones. Every key matches. But `inv_freq` is a non-persistent buffer, not in the
    `state_dict`: it is still a meta tensor, and the first forward pass fails. Worse, the other common
    recipe, `to_empty` then `load_state_dict`, does not fail: it leaves `inv_freq` holding whatever the
    fresh memory held, and the model computes nonsense quietly. Either way, recompute the buffer
    (`reset_parameters`, the [rope lesson](../rope/index.md)'s cure, which Hugging Face's own
    `_init_weights` also applies to `inv_freq`).

    ```pycon
    >>> trained = model.state_dict()
    >>> with torch.device("meta"):
    ...     lazy = LlamaForCausalLM(config)
    >>> lazy.load_state_dict(trained, assign=True)
    <All keys matched successfully>
    >>> lazy(ids)
    Traceback (most recent call last):
    ...
    NotImplementedError: Cannot copy out of meta tensor; no data!
    >>> _ = lazy.model.rotary_emb.to_empty(device="cpu")          # memory for the buffer, then its values
    >>> lazy.model.rotary_emb.reset_parameters()
    >>> torch.testing.assert_close(lazy(ids), model(ids))
    >>> with torch.device("meta"):                                # the to_empty road: reset, then load
    ...     lazy = LlamaForCausalLM(config)
    >>> _ = lazy.to_empty(device="cpu")
    >>> lazy.reset_parameters()
    >>> lazy.load_state_dict(trained)
    <All keys matched successfully>
    >>> torch.testing.assert_close(lazy(ids), model(ids))

    ```

## Challenges

**1. Meta's checkpoint, converted.** Write `from_meta_state_dict(state_dict, config)`: take a checkpoint
saved by Meta's original code, with its names (`tok_embeddings.weight`, `norm.weight`, `output.weight`,
and in layer $i$ `layers.{i}.attention.wq.weight`, `wk`, `wv`, `wo`, `feed_forward.w1.weight`, `w2`,
`w3`, `attention_norm.weight`, `ffn_norm.weight`; the tables
[`META_KEYS`][torchenstein.transformers.llama.META_KEYS] and
[`META_LAYER_KEYS`][torchenstein.transformers.llama.META_LAYER_KEYS] pair them with ours) and trained
with interleaved RoPE. Return a state dict that [`LlamaForCausalLM`][torchenstein.transformers.llama.LlamaForCausalLM]
loads strictly and that computes the same logits. Mind the key heads of grouped-query attention, and a
tied model whose checkpoint has no `output.weight`.

**2. From multi-head to grouped-query.** Ainslie et al. (2023) turned trained multi-head models into
grouped-query ones by averaging each group's key and value heads, then trained a little more. Write
`mha_to_gqa(model, num_key_value_heads)` returning a *new* model with that many key/value heads, each
the mean of its group of consecutive heads (the multihead lesson's
[`mean_pool_kv_heads`][torchenstein.transformers.multihead.mean_pool_kv_heads] does one matrix), every
other weight copied. Raise `ValueError` when the heads do not divide.

Check an attempt with `check_from_meta_state_dict(my_function)` or `check_mha_to_gqa(my_function)`, or
put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.transformers import llama as lesson
>>> lesson.check_from_meta_state_dict(lesson.from_meta_state_dict)
>>> lesson.check_mha_to_gqa(lesson.mha_to_gqa)

```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.nn.activations import swiglu
from torchenstein.nn.embeddings import Embedding
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import cross_entropy
from torchenstein.nn.rmsnorm import RMSNorm
from torchenstein.transformers.attention import causal_mask
from torchenstein.transformers.multihead import grouped_query_attention, mean_pool_kv_heads
from torchenstein.transformers.rope import (
    RotaryEmbedding,
    apply_rotary,
    apply_rotary_interleaved,
    permute_for_rotate_half,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclasses.dataclass
class LlamaConfig:
    r"""The sizes of a LLaMA decoder, with the field names (and defaults: Llama 2 7B) of Hugging Face's ``LlamaConfig``.

    ``dataclasses.asdict(config)`` is a valid set of keyword arguments for ``transformers.LlamaConfig``.

    Args:
        vocab_size: $V$, the number of token ids.
        hidden_size: $E$, the width of the residual stream.
        intermediate_size: $I$, the width of the SwiGLU feed-forward's gate and up projections.
        num_hidden_layers: $N$, the number of decoder layers.
        num_attention_heads: $H$, the query heads; it must divide ``hidden_size`` into heads of even width.
        num_key_value_heads: $H_{kv}$, the key/value heads, dividing $H$; ``None`` means $H$ (plain MHA).
        rms_norm_eps: the $\epsilon$ of every RMSNorm.
        rope_theta: the RoPE frequency base.
        max_position_embeddings: the context length the model was trained for. Informational, as in
            Hugging Face: nothing is learned per position, so nothing stops a longer sequence.
        tie_word_embeddings: share one matrix between ``embed_tokens`` and ``lm_head``.

    Raises:
        ValueError: if a size is not a positive int, or the heads do not divide as they must.

    Examples:
        >>> config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...                      num_attention_heads=4, num_key_value_heads=2)
        >>> config.head_dim, config.num_key_value_groups
        (8, 2)
        >>> LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=3)
        Traceback (most recent call last):
        ...
        ValueError: num_key_value_heads must divide num_attention_heads=4, got 3
    """

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        _check_config(self)

    @property
    def head_dim(self) -> int:
        """$d = E / H$, the width of one head."""
        return self.hidden_size // self.num_attention_heads

    @property
    def num_key_value_groups(self) -> int:
        """$g = H / H_{kv}$, the query heads that share one key/value head."""
        return self.num_attention_heads // self.num_key_value_heads


class LlamaMLP(nn.Module):
    r"""The SwiGLU feed-forward under Hugging Face's names: ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

    The [activations lesson](../../nn/activations/index.md)'s `swiglu` does the arithmetic; only the names
    differ from its `SwiGLU` module (``w1, w3, w2`` there, ``gate_proj, up_proj, down_proj`` here).

    Examples:
        >>> mlp = LlamaMLP(8, 24)
        >>> list(mlp.state_dict())
        ['gate_proj.weight', 'up_proj.weight', 'down_proj.weight']
    """

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # (B, T, E) -> gate and up (B, T, I) -> their product -> (B, T, E). swiglu's w1, w2, w3 are
        # gate, down, up.
        return swiglu(x, self.gate_proj.weight, self.down_proj.weight, self.up_proj.weight)


class LlamaAttention(nn.Module):
    r"""Grouped-query self-attention with rotary positions and no biases, under Hugging Face's names.

    Args:
        config: the sizes.
        rope_interleaved: rotate interleaved pairs (Meta's original code) instead of halves (Hugging Face).

    Examples:
        >>> config = LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=1)
        >>> {name: tuple(p.shape) for name, p in LlamaAttention(config).named_parameters()}
        {'q_proj.weight': (32, 32), 'k_proj.weight': (8, 32), 'v_proj.weight': (8, 32), 'o_proj.weight': (32, 32)}
    """

    def __init__(self, config: LlamaConfig, rope_interleaved: bool = False) -> None:
        super().__init__()
        E, H, Hkv, d = config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.num_heads, self.num_key_value_heads, self.head_dim = H, Hkv, d
        self.rope_interleaved = rope_interleaved
        self.q_proj = Linear(E, H * d, bias=False)
        # Keys and values have only H_kv heads: the whole saving of GQA sits in these two shapes.
        self.k_proj = Linear(E, Hkv * d, bias=False)
        self.v_proj = Linear(E, Hkv * d, bias=False)
        self.o_proj = Linear(H * d, E, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``x`` ``(B, T, E)``, ``cos``/``sin`` ``(B, T, d)``, ``attn_mask`` bool ``(B, 1, T, T)`` or ``None`` (causal)."""
        B, T, _ = x.shape
        # Project and split into heads: (B, T, H * d) -> (B, T, H, d) -> (B, H, T, d).
        q = self.q_proj(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.num_key_value_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, d)
        v = self.v_proj(x).view(B, T, self.num_key_value_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, d)
        # Turn queries and keys by their positions; values are never rotated.
        rotate = apply_rotary_interleaved if self.rope_interleaved else apply_rotary
        q, k = rotate(q, k, cos, sin, unsqueeze_dim=1)
        # Each K/V head serves a group of H / H_kv query heads. No mask means plain causal attention.
        if attn_mask is None:
            out = grouped_query_attention(q, k, v, is_causal=True)  # (B, H, T, d)
        else:
            out = grouped_query_attention(q, k, v, attn_mask=attn_mask)  # (B, H, T, d)
        # Merge the heads back: (B, H, T, d) -> (B, T, H * d), then mix them.
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim))


class LlamaDecoderLayer(nn.Module):
    r"""One pre-norm block: $h = x + \operatorname{Attn}(\operatorname{RMSNorm}(x))$, $h + \operatorname{MLP}(\operatorname{RMSNorm}(h))$.

    Examples:
        >>> config = LlamaConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4)
        >>> [name for name, _ in LlamaDecoderLayer(config).named_children()]
        ['self_attn', 'mlp', 'input_layernorm', 'post_attention_layernorm']
    """

    def __init__(self, config: LlamaConfig, rope_interleaved: bool = False) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(config, rope_interleaved)
        self.mlp = LlamaMLP(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        # The residual stream x is never normalised itself: each branch reads a normalised copy and adds back.
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_mask)  # (B, T, E)
        return h + self.mlp(self.post_attention_layernorm(h))  # (B, T, E)


class LlamaModel(nn.Module):
    """The decoder stack: token embeddings, ``num_hidden_layers`` layers, a final RMSNorm, and the rotary tables.

    Examples:
        >>> config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        ...                      num_attention_heads=4)
        >>> LlamaModel(config)(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 32])
    """

    def __init__(self, config: LlamaConfig, rope_interleaved: bool = False) -> None:
        super().__init__()
        # The table is handed in empty (on the current device, meta included): reset_parameters draws it.
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size,
                                      _weight=torch.empty(config.vocab_size, config.hidden_size))
        self.layers = nn.ModuleList(LlamaDecoderLayer(config, rope_interleaved) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        # One rotary module for all layers; its inv_freq is a non-persistent buffer (not in the state_dict).
        self.rotary_emb = RotaryEmbedding(config.head_dim, base=config.rope_theta, interleaved=rope_interleaved)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        """Return the final hidden states ``(B, T, E)``; the arguments are `LlamaForCausalLM.forward`'s."""
        B, T = input_ids.shape
        x = self.embed_tokens(input_ids)  # (B, T, E)
        if position_ids is None:
            # Hugging Face's default too: 0..T-1 for every row, whatever padding the mask declares.
            position_ids = torch.arange(T, device=input_ids.device)
        position_ids = position_ids.expand(B, T)  # (B, T)
        cos, sin = self.rotary_emb(x, position_ids)  # (B, T, d) each, in x's dtype
        attn_mask = None
        if attention_mask is not None:
            # Query i may read key j when j <= i and j is a real token: (T, T) & (B, 1, 1, T) -> (B, 1, T, T).
            attn_mask = causal_mask(T, device=input_ids.device) & attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, cos, sin, attn_mask)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    r"""A LLaMA language model from scratch; its ``state_dict`` is Hugging Face's ``LlamaForCausalLM``'s.

    Args:
        config: the sizes.
        rope_interleaved: rotate interleaved pairs, as Meta's original code did; ``False`` (Hugging Face's
            rotate-half layout) is what every ``transformers`` checkpoint expects.

    Raises:
        TypeError: if ``config`` is not a `LlamaConfig`.

    Examples:
        >>> config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        ...                      num_attention_heads=4, tie_word_embeddings=True)
        >>> model = LlamaForCausalLM(config)
        >>> model.lm_head.weight is model.model.embed_tokens.weight
        True
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 50])
    """

    def __init__(self, config: LlamaConfig, rope_interleaved: bool = False) -> None:
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a torchenstein LlamaConfig, got {type(config).__name__}")
        if not isinstance(rope_interleaved, bool):
            raise TypeError(f"rope_interleaved must be a bool, got {rope_interleaved!r}")
        self.config = config
        self.model = LlamaModel(config, rope_interleaved)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            # One Parameter under two names: the head reads logits off the embedding table itself.
            self.lm_head.weight = self.model.embed_tokens.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as Hugging Face does (normal, std 0.02; norms at one) and recompute ``inv_freq``.

        Call it after ``to_empty`` (building on the ``meta`` device), before loading a checkpoint: the
        checkpoint restores the parameters, but nothing restores the non-persistent ``inv_freq``.
        """
        with torch.no_grad():
            for module in self.modules():
                weight = getattr(module, "weight", None)
                # On the meta device there are no numbers to draw (and drawing none is slow).
                if not isinstance(weight, Tensor) or weight.is_meta:
                    continue
                if isinstance(module, RMSNorm):
                    weight.fill_(1.0)
                elif isinstance(module, Linear | Embedding):
                    weight.normal_(0.0, 0.02)
        self.model.rotary_emb.reset_parameters()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        r"""Return the logits ``(B, T, vocab_size)``.

        Args:
            input_ids: ``(B, T)`` integer token ids.
            attention_mask: ``(B, T)``, 1 (or ``True``) for real tokens, 0 for padding, Hugging Face's
                polarity; ``None`` means no padding.
            position_ids: ``(B, T)`` or ``(T,)`` integer positions for RoPE; ``None`` means $0, \dots, T-1$.

        Raises:
            TypeError: if an argument has the wrong type or dtype.
            ValueError: if a shape is wrong or a token id is out of range.
        """
        _check_forward(input_ids, attention_mask, position_ids, self.config.vocab_size)
        return self.lm_head(self.model(input_ids, attention_mask, position_ids))  # (B, T, V)


def causal_lm_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    r"""Next-token cross-entropy, as Hugging Face's ``labels=`` computes it: position $t$ predicts label $t + 1$.

    The logits are upcast to float32 (at least) first, and labels equal to ``ignore_index`` (padding,
    prompts) do not count.

    Args:
        logits: ``(B, T, V)``.
        labels: ``(B, T)`` token ids, usually the ``input_ids`` themselves.
        ignore_index: the label that takes no part in the mean.

    Returns:
        A 0-d float32 (or float64) tensor: the mean loss over the counted positions.

    Raises:
        ValueError: if the shapes do not fit.

    Examples:
        >>> logits = torch.zeros(1, 3, 4)                   # uniform predictions over 4 tokens
        >>> round(causal_lm_loss(logits, torch.tensor([[0, 1, 2]])).item(), 4) == round(math.log(4), 4)
        True
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, T, V) and labels (B, T), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    wide = torch.float64 if logits.dtype == torch.float64 else torch.float32
    # Drop the last prediction (nothing follows it) and the first label (nothing predicts it).
    shifted_logits = logits[:, :-1].to(wide).flatten(0, 1)  # (B * (T-1), V)
    shifted_labels = labels[:, 1:].flatten()  # (B * (T-1),)
    return cross_entropy(shifted_logits, shifted_labels, ignore_index=ignore_index)


def parameter_budget(config: LlamaConfig) -> dict[str, int]:
    r"""The parameters of a `LlamaForCausalLM` by formula, part by part.

    With $V, E, I, N, H, H_{kv}$ and $d = E/H$ from the config:
    embedding $VE$; attention $N(2 E H d + 2 E H_{kv} d)$; MLP $3NEI$; norms $(2N + 1)E$;
    ``lm_head`` $VE$, or 0 when tied.

    Examples:
        >>> parameter_budget(LlamaConfig(vocab_size=10, hidden_size=4, intermediate_size=8, num_hidden_layers=1,
        ...                              num_attention_heads=2, num_key_value_heads=1))
        {'embedding': 40, 'attention': 48, 'mlp': 96, 'norms': 12, 'lm_head': 40}
    """
    V, E, N = config.vocab_size, config.hidden_size, config.num_hidden_layers
    I = config.intermediate_size  # noqa: E741 - the paper's symbol
    H, Hkv, d = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    return {
        "embedding": V * E,
        # q_proj and o_proj: H heads of d each way; k_proj and v_proj: only H_kv heads. No biases.
        "attention": N * (2 * E * H * d + 2 * E * Hkv * d),
        # gate_proj, up_proj (E -> I) and down_proj (I -> E).
        "mlp": N * 3 * E * I,
        # Two RMSNorm weights per layer and the final one; RMSNorm has no bias.
        "norms": (2 * N + 1) * E,
        "lm_head": 0 if config.tie_word_embeddings else V * E,
    }


def parameter_count(config: LlamaConfig) -> int:
    """The total of `parameter_budget`: equal to ``sum(p.numel() for p in model.parameters())``.

    Examples:
        >>> f"{parameter_count(LlamaConfig()):,}"              # the defaults: Llama 2 7B
        '6,738,415,616'
    """
    return sum(parameter_budget(config).values())


def gpt_style_parameter_budget(hidden_size: int, num_hidden_layers: int, vocab_size: int,
                               max_position_embeddings: int) -> dict[str, int]:
    r"""The same parts for a GPT-2-style decoder by formula: learned positions, biases, LayerNorm, a $4E$ GELU MLP.

    Tied embeddings (as GPT-2), so ``lm_head`` is 0; the positions' table counts as embedding.

    Examples:
        >>> f"{sum(gpt_style_parameter_budget(768, 12, 50257, 1024).values()):,}"   # GPT-2 small
        '124,439,808'
    """
    E, N = hidden_size, num_hidden_layers
    return {
        "embedding": (vocab_size + max_position_embeddings) * E,
        # Fused q, k, v (3E x E plus 3E biases) and the output projection (E x E plus E).
        "attention": N * (4 * E * E + 4 * E),
        # E -> 4E -> E, both with biases.
        "mlp": N * (8 * E * E + 5 * E),
        # LayerNorm has a weight and a bias: two per layer and the final one.
        "norms": (2 * N + 1) * 2 * E,
        "lm_head": 0,
    }


def plot_parameter_budget(*, hidden_size: int = 768, num_hidden_layers: int = 12, vocab_size: int = 50257) -> Figure:
    r"""Draw where the parameters live: GPT-2-style against LLaMA-style (MHA and GQA) at the same width and depth.

    The LLaMA-style MLP is $\frac{8}{3}E$ wide, so its three matrices cost what GPT's two $4E$ ones do.

    Examples:
        >>> len(plot_parameter_budget(hidden_size=64, num_hidden_layers=2, vocab_size=100).axes)
        1
    """
    E, N, V = hidden_size, num_hidden_layers, vocab_size
    H = max(1, E // 64)
    llama = {"vocab_size": V, "hidden_size": E, "intermediate_size": 8 * E // 3, "num_hidden_layers": N,
             "num_attention_heads": H, "tie_word_embeddings": True}
    bars = {
        "GPT-2 style": gpt_style_parameter_budget(E, N, V, 1024),
        "LLaMA style, MHA": parameter_budget(LlamaConfig(**llama)),
        f"LLaMA style, GQA ({max(1, H // 4)} K/V heads)": parameter_budget(LlamaConfig(**llama, num_key_value_heads=max(1, H // 4))),
    }
    fig, (ax,) = new_figure(1, 1, width=7.0, height=3.2)
    names = list(bars)
    left = [0.0] * len(names)
    for part, colour in zip(("embedding", "attention", "mlp", "norms"), PALETTE, strict=False):
        millions = [bars[name][part] / 1e6 for name in names]
        ax.barh(names, millions, left=left, color=colour, label=part)
        left = [a + b for a, b in zip(left, millions, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f} M", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.18 * max(left))
    ax.set(xlabel="parameters (millions)", title=f"Width {E}, {N} layers, {V} tokens, tied embeddings")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=8, frameon=False)
    return fig


def mha_to_gqa(model: LlamaForCausalLM, num_key_value_heads: int) -> LlamaForCausalLM:
    """Challenge solution: a new GQA model from a trained one, each group's K and V heads mean-pooled.

    Args:
        model: a `LlamaForCausalLM`, usually with ``num_key_value_heads == num_attention_heads``.
        num_key_value_heads: the K/V heads wanted; it must divide the model's current K/V heads.

    Returns:
        A new model whose config has the new ``num_key_value_heads``; every other weight is copied.

    Raises:
        ValueError: if ``num_key_value_heads`` does not divide the current number.

    Examples:
        >>> config = LlamaConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        ...                      num_attention_heads=4)
        >>> mha_to_gqa(LlamaForCausalLM(config), 2).model.layers[0].self_attn.k_proj.weight.shape
        torch.Size([8, 16])
    """
    old = model.config
    if isinstance(num_key_value_heads, bool) or not isinstance(num_key_value_heads, int) or num_key_value_heads < 1 \
            or old.num_key_value_heads % num_key_value_heads:
        raise ValueError(f"num_key_value_heads must be a positive int dividing the model's "
                         f"{old.num_key_value_heads} K/V heads, got {num_key_value_heads!r}")
    state = dict(model.state_dict())
    for i in range(old.num_hidden_layers):
        for name in ("k_proj", "v_proj"):
            key = f"model.layers.{i}.self_attn.{name}.weight"
            state[key] = mean_pool_kv_heads(state[key], old.num_key_value_heads, num_key_value_heads)
    new = LlamaForCausalLM(dataclasses.replace(old, num_key_value_heads=num_key_value_heads),
                           rope_interleaved=model.model.rotary_emb.interleaved)
    new.to(device=model.lm_head.weight.device, dtype=model.lm_head.weight.dtype).load_state_dict(state)
    return new


def check_mha_to_gqa(candidate: Callable[[LlamaForCausalLM, int], LlamaForCausalLM]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``mha_to_gqa``."""
    config = LlamaConfig(vocab_size=30, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                         num_attention_heads=6, rope_theta=100.0)
    with torch.random.fork_rng(devices=[]):  # a seeded model, and the caller's random state left alone
        torch.manual_seed(11)
        model = LlamaForCausalLM(config)
    ids = torch.randint(0, 30, (2, 5), generator=torch.Generator().manual_seed(3))
    for Hkv in (3, 2, 1, 6):
        where = f"6 heads to {Hkv} K/V heads"
        new = candidate(model, Hkv)
        assert isinstance(new, LlamaForCausalLM), f"{where}: return a LlamaForCausalLM, got {type(new).__name__}"
        assert new is not model, f"{where}: return a new model, leave the trained one as it is"
        assert new.config.num_key_value_heads == Hkv, f"{where}: the new config must say num_key_value_heads={Hkv}"
        assert model.model.layers[0].self_attn.k_proj.weight.shape == (24, 24), f"{where}: the old model was changed"
        g, d = 6 // Hkv, config.head_dim
        for i, layer in enumerate(new.model.layers):
            old_attn = model.model.layers[i].self_attn
            for name in ("k_proj", "v_proj"):
                heads = getattr(old_attn, name).weight.detach().view(6, d, 24)
                expected = heads.view(Hkv, g, d, 24).mean(1).reshape(Hkv * d, 24)
                got = getattr(layer.self_attn, name).weight.detach()
                assert got.shape == expected.shape, f"{where}: layer {i} {name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
                assert torch.allclose(got, expected, atol=1e-6), (
                    f"{where}: layer {i} {name}: K/V head n must be the mean of heads n*g .. n*g+g-1 (consecutive heads)")
            assert torch.equal(layer.self_attn.q_proj.weight, old_attn.q_proj.weight), f"{where}: q_proj must be copied unchanged"
        assert torch.equal(new.lm_head.weight, model.lm_head.weight), f"{where}: lm_head must be copied unchanged"
        if Hkv == 6:
            assert torch.allclose(new(ids), model(ids), atol=1e-5), f"{where}: keeping every head must keep the logits"
    try:
        candidate(model, 4)
    except ValueError:
        return
    raise AssertionError("4 K/V heads cannot share 6 query heads evenly: raise ValueError")


META_KEYS = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
"""Meta's original names for the parts outside the layers, and Hugging Face's."""

META_LAYER_KEYS = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
"""Meta's names inside layer ``i`` (``layers.{i}.``), and Hugging Face's (``model.layers.{i}.``)."""


def from_meta_state_dict(state_dict: Mapping[str, Tensor], config: LlamaConfig) -> dict[str, Tensor]:
    """Challenge solution: rename a Meta-style LLaMA checkpoint and permute ``wq``, ``wk`` for rotate-half RoPE.

    Args:
        state_dict: Meta's names (`META_KEYS`, `META_LAYER_KEYS`), trained with interleaved RoPE.
        config: the sizes (``wk`` has ``num_key_value_heads`` heads, not ``num_attention_heads``).

    Returns:
        A state dict for `LlamaForCausalLM` (rotate-half), computing the same logits.

    Raises:
        KeyError: if a key is neither Meta's nor expected.

    Examples:
        >>> sorted(from_meta_state_dict({"norm.weight": torch.ones(2)}, LlamaConfig()))
        ['model.norm.weight']
    """
    converted = {}
    for key, value in state_dict.items():
        if key in META_KEYS:
            converted[META_KEYS[key]] = value
            continue
        prefix, i, rest = key.split(".", 2) if key.count(".") >= 2 else (key, "", "")
        if prefix != "layers" or rest not in META_LAYER_KEYS:
            raise KeyError(f"not a key of a Meta LLaMA checkpoint: {key!r}")
        if rest == "attention.wq.weight":
            value = permute_for_rotate_half(value, config.num_attention_heads)
        elif rest == "attention.wk.weight":
            # The keys have only H_kv heads: permuting them as H heads would shuffle channels across heads.
            value = permute_for_rotate_half(value, config.num_key_value_heads)
        converted[f"model.layers.{i}.{META_LAYER_KEYS[rest]}"] = value
    if config.tie_word_embeddings and "lm_head.weight" not in converted and "model.embed_tokens.weight" in converted:
        converted["lm_head.weight"] = converted["model.embed_tokens.weight"]
    return converted


def to_meta_state_dict(model: LlamaForCausalLM) -> dict[str, Tensor]:
    """Rename a model's ``state_dict`` to Meta's names, as they are (no permutation).

    Run it on a model built with ``rope_interleaved=True`` and you have what Meta's code would have saved.

    Examples:
        >>> config = LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
        ...                      num_attention_heads=2)
        >>> list(to_meta_state_dict(LlamaForCausalLM(config)))[:2]
        ['tok_embeddings.weight', 'layers.0.attention.wq.weight']
    """
    back = {hf: meta for meta, hf in META_KEYS.items()}
    layer_back = {hf: meta for meta, hf in META_LAYER_KEYS.items()}
    out = {}
    for key, value in model.state_dict().items():
        if key in back:
            out[back[key]] = value
        else:
            _, _, i, rest = key.split(".", 3)
            out[f"layers.{i}.{layer_back[rest]}"] = value
    return out


def check_from_meta_state_dict(candidate: Callable[[Mapping[str, Tensor], LlamaConfig], Mapping[str, Tensor]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``from_meta_state_dict``."""
    ids = torch.randint(0, 40, (2, 7), generator=torch.Generator().manual_seed(5))
    for Hkv, tied in ((4, False), (2, False), (1, True)):
        config = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=Hkv, rope_theta=50.0, tie_word_embeddings=tied)
        where = f"4 query heads, {Hkv} K/V heads, tied={tied}"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(Hkv)
            meta_model = LlamaForCausalLM(config, rope_interleaved=True)
        meta_state = to_meta_state_dict(meta_model)
        if tied:
            del meta_state["output.weight"]
        converted = candidate(dict(meta_state), config)
        ours = LlamaForCausalLM(config)
        try:
            ours.load_state_dict(converted)
        except RuntimeError as err:
            raise AssertionError(f"{where}: the converted keys do not load into LlamaForCausalLM: {err}") from None
        with torch.no_grad():
            got, expected = ours(ids), meta_model(ids)
        assert torch.allclose(got, expected, atol=1e-5), (
            f"{where}: the logits differ from the interleaved model's: permute wq with num_attention_heads and "
            "wk with num_key_value_heads (permute_for_rotate_half), leave wv and wo alone")


def _check_config(config: LlamaConfig) -> None:
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "max_position_embeddings"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    E, H, Hkv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    if E % H or (E // H) % 2:
        raise ValueError(f"num_attention_heads must split hidden_size={E} into heads of even width "
                         f"(RoPE turns channels in pairs), got {H}")
    if H % Hkv:
        raise ValueError(f"num_key_value_heads must divide num_attention_heads={H}, got {Hkv}")
    for name in ("rms_norm_eps", "rope_theta"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise ValueError(f"{name} must be a finite number above 0, got {value!r}")
    if not isinstance(config.tie_word_embeddings, bool):
        raise TypeError(f"tie_word_embeddings must be a bool, got {config.tie_word_embeddings!r}")


def _check_forward(input_ids: object, attention_mask: object, position_ids: object, vocab_size: int) -> None:
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point() or input_ids.is_complex() \
            or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor of token ids, got {getattr(input_ids, 'dtype', input_ids)!r}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab_size):
        raise ValueError(f"input_ids must lie in [0, vocab_size={vocab_size}), got values from "
                         f"{input_ids.min().item()} to {input_ids.max().item()}")
    for name, t in (("attention_mask", attention_mask), ("position_ids", position_ids)):
        if t is None:
            continue
        if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex():
            raise TypeError(f"{name} must be an integer or bool tensor, got {getattr(t, 'dtype', t)!r}")
    if position_ids is not None and position_ids.dtype == torch.bool:
        raise TypeError("position_ids must be an integer tensor, got torch.bool")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have input_ids' shape {tuple(input_ids.shape)} (1 = real token, "
                         f"0 = padding), got {tuple(attention_mask.shape)}")
    if position_ids is not None:
        B, T = input_ids.shape
        if position_ids.shape not in ((T,), (1, T), (B, T)):
            raise ValueError(f"position_ids must have shape (B, T) = {(B, T)}, (1, T) or (T,), "
                             f"got {tuple(position_ids.shape)}")
