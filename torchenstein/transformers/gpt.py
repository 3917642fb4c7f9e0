r"""
# GPT: The Monster Assembled

!!! torchenstein "The Professor speaks"
    For weeks my apprentices have built organs in jars: an attention here, a LayerNorm there, an
    embedding table humming on the shelf. Tonight we sew them together, in the very order and under the
    very names OpenAI gave GPT-2, and we throw the switch. Then we do what Dr. Hammer never does: we put
    our creature next to Hugging Face's GPT-2, give both the same weights, and prove that they think
    the same thoughts, to the last logit and the last gradient. And because a monster that thinks slowly
    is a monster that loses, we race them too.

**You will learn to**

- write GPT-2 as one small config and four small modules, named so that the `state_dict` maps onto
  Hugging Face's `GPT2LMHeadModel`;
- tie the output head to the token embedding, and count the parameters by formula, exactly;
- initialise the model as GPT-2 does and predict its loss before training: $\ln V$, plus a hair you
  can compute;
- move the weights into Hugging Face's model (its `Conv1D` stores them transposed) and prove logits,
  loss and gradients equal;
- decide between the course's from-scratch parts and PyTorch's fused kernels by measuring.

## The blueprint

A **token** is one symbol of the text; here, as in the [Tokenisation](../tokenization/index.md) lesson,
one byte, so the **vocabulary** has $V = 256$ token ids. A GPT reads a sequence of at most `block_size`
tokens (its **context length**) and, at every position $t$, outputs $V$ **logits**: unnormalised scores,
one per possible next token, which a softmax turns into probabilities (the
[Loss potions](../../nn/losses/index.md) lesson). Sequences come in **batches** of $B$ at once, so ids
have shape $(B, T)$ and logits $(B, T, V)$.

Everything else about the architecture fits in seven numbers, [`GPTConfig`][torchenstein.transformers.gpt.GPTConfig].
Its defaults are the course's capstone recipe; `GPTConfig.gpt2()` is OpenAI's smallest GPT-2:

```pycon
>>> import math
>>> import torch
>>> from torch import nn
>>> from torchenstein.transformers.gpt import GPT, GPTConfig, parameter_budget
>>> GPTConfig()
GPTConfig(vocab_size=256, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True)
>>> GPTConfig.gpt2()
GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0, bias=True)

```

## The parts, named after GPT-2

With $C$ = `n_embd` and $L$ = `n_layer`, the model is, for ids $i_1, \dots, i_T$:

$$
x^{(0)}_t = W_{te}[i_t] + W_{pe}[t], \qquad
h = x + \operatorname{attn}(\operatorname{LN}_1(x)), \quad x' = h + \operatorname{mlp}(\operatorname{LN}_2(h)),
\qquad \text{logits} = \operatorname{LN}_f(x^{(L)})\, W_{te}^\top .
$$

The token table `wte` $(V, C)$ and the position table `wpe` $(T_{\max}, C)$ come from the
[Embeddings](../../nn/embeddings/index.md) lesson. Each of the $L$ **blocks** is a pre-norm residual
block (the [RMSNorm](../../nn/rmsnorm/index.md) lesson explains why the norm goes *before* each
sub-layer): the **residual stream** $x$, a $(B, T, C)$ tensor, is only ever added to. The attention is
the causal multi-head attention of the [Multi-head attention](../multihead/index.md) lesson, with one
fused projection `c_attn` of shape $(C, 3C)$ that computes queries, keys and values in one matrix
product, and `c_proj` to mix the heads. The MLP widens to $4C$, applies GELU in its tanh form (the
one GPT-2 was trained with, from the [Activations](../../nn/activations/index.md) lesson) and narrows
back. A last LayerNorm `ln_f`, and the head `lm_head` turns each vector into $V$ logits.

The names are GPT-2's, so our `state_dict` keys are Hugging Face's, letter for letter:

```pycon
>>> _ = torch.manual_seed(0)
>>> model = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16))
>>> list(model.state_dict())
['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias',
 'transformer.h.0.attn.c_attn.weight', 'transformer.h.0.attn.c_attn.bias', 'transformer.h.0.attn.c_proj.weight',
 'transformer.h.0.attn.c_proj.bias', 'transformer.h.0.ln_2.weight', 'transformer.h.0.ln_2.bias',
 'transformer.h.0.mlp.c_fc.weight', 'transformer.h.0.mlp.c_fc.bias', 'transformer.h.0.mlp.c_proj.weight',
 'transformer.h.0.mlp.c_proj.bias', 'transformer.ln_f.weight', 'transformer.ln_f.bias', 'lm_head.weight']
>>> idx = torch.randint(0, 256, (2, 16))                 # (B, T)
>>> logits, loss = model(idx, targets=idx)
>>> {"logits": tuple(logits.shape), "loss": loss.shape}
{'logits': (2, 16, 256), 'loss': torch.Size([])}
>>> model(torch.randint(0, 256, (2, 17)))
Traceback (most recent call last):
...
ValueError: idx has length T=17, but block_size is 16: the model has no position embedding beyond it; crop the sequence to its last 16 tokens

```

`forward(idx, targets=None)` returns `(logits, loss)`. The `targets` are the ids each position should
predict, already shifted: for a text $i_1 \dots i_{T+1}$, `idx` holds $i_1 \dots i_T$ and `targets`
holds $i_2 \dots i_{T+1}$. The loss is the mean cross-entropy over every position of the batch;
a target of `-100` is skipped, as in `F.cross_entropy`.

## Fused twins: why the model calls PyTorch's kernels

Every part above was written from scratch in an earlier lesson and proved equal there to PyTorch's own:
[`Linear`][torchenstein.nn.linear.Linear], [`LayerNorm`][torchenstein.nn.normalization.LayerNorm],
[`Embedding`][torchenstein.nn.embeddings.Embedding], [`gelu`][torchenstein.nn.activations.gelu] and
[`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention].
`GPT(config, from_scratch=True)` assembles the model from exactly those, and it is the same model,
parameter names, initialisation and numbers:

```pycon
>>> ours = GPT(model.config, from_scratch=True)
>>> _ = ours.load_state_dict(model.state_dict())
>>> type(ours.transformer.ln_f).__module__, type(model.transformer.ln_f).__module__
('torchenstein.nn.normalization', 'torch.nn.modules.normalization')
>>> torch.testing.assert_close(ours(idx)[0], model(idx)[0])

```

Yet by default the model uses the fused twins, `nn.Linear`, `nn.LayerNorm`, `nn.Embedding`,
`F.gelu(approximate="tanh")` and `F.scaled_dot_product_attention`, because this is the model the rest
of the course trains, compiles, exports and quantises, and it must be at least as fast as Hugging
Face's. Our versions were written to be read, and that has a price:

- our `gelu` computes in float64 for accuracy, and our LayerNorm spells out mean and variance in
  several elementwise passes, where PyTorch runs one fused kernel;
- our attention builds the whole $T \times T$ score matrix and its mask, where
  `F.scaled_dot_product_attention` picks a fused kernel (flash or memory-efficient attention on a GPU)
  that never stores it;
- our `Embedding` reads the smallest and largest id back to the CPU to give a clean error, a device
  synchronisation per step on a GPU and a graph break under `torch.compile`;
- our `Linear` runs the very `addmm` that `nn.Linear` runs, as fast, but Part 6's quantisation and
  export find layers by their type, `nn.Linear`.

Do not take my word for it: [`piece_speeds`][torchenstein.transformers.gpt.piece_speeds] times the
forward and backward of each part at the capstone's sizes, ours against the fused twin. Print it on your
machine with `for name, s in piece_speeds().items(): print(f"{name:10} {s['ours'] / s['fused']:.1f}x")`:

```pycon
>>> from torchenstein.transformers.gpt import piece_speeds
>>> speeds = piece_speeds(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16), batch_size=2, repeat=1)
>>> list(speeds)
['Linear', 'LayerNorm', 'Embedding', 'gelu', 'attention']

```

The whole-model race lives in a script: `python -m torchenstein.bench gpt` builds our GPT and Hugging
Face's `GPT2LMHeadModel` from the capstone recipe (batch 12), gives both the same weights, trains each
with the same AdamW on the same random batches, and prints training tokens per second for each, their
ratio, the from-scratch model's speed, and greedy decoding speed with and without Hugging Face's KV
cache. Add `--threads 1` on a shared machine and `--compile` to race compiled models.

## Weight tying and the parameter budget

The head maps a vector to $V$ scores with a $(V, C)$ matrix; the token table maps an id to a vector with
a $(V, C)$ matrix. GPT-2 makes them **one** parameter (Press and Wolf, 2017): a token's input vector is
also the direction its output score measures. That saves $VC$ parameters: a sliver of the capstone
model, whose vocabulary is tiny, but almost a third of GPT-2 small, whose vocabulary is not (the figure
below shows both). `parameters()` yields a shared parameter once, so it is counted once:

```pycon
>>> model.lm_head.weight is model.transformer.wte.weight
True
>>> capstone = GPT(GPTConfig())
>>> budget = parameter_budget(capstone.config)
>>> budget
{'token embedding (= head)': 32768, 'position embedding': 8192, 'attention': 264192, 'MLP': 526848, 'LayerNorms': 2304}
>>> {"by formula": sum(budget.values()), "counted in the module": capstone.num_parameters()}
{'by formula': 834304, 'counted in the module': 834304}

```

The formula, with $T_{\max}$ = `block_size`: the two tables, then per block $4C^2$ attention and $8C^2$
MLP weights with $4C + 5C$ biases, and $2C$ per LayerNorm (gain and shift), two per block plus `ln_f`:

$$
N = VC + T_{\max} C + L\,(12C^2 + 13C) + 2C \quad\text{(with biases)}, \qquad
N = VC + T_{\max} C + L\,(12C^2 + 2C) + C \quad\text{(without)}.
$$

For GPT-2 small it gives the famous "124M", to the last parameter the count Hugging Face's
`gpt2` checkpoint reports:

```pycon
>>> sum(parameter_budget(GPTConfig.gpt2()).values())
124439808

```

![Two horizontal bars split by component: in the capstone GPT the MLP holds nearly two thirds of the parameters and attention about a third, the token embedding a sliver; in GPT-2 small the token embedding holds almost a third and the MLP under half.](plot_parameter_budget.svg)

## GPT-2's initialisation and the loss at birth

GPT-2 draws every matrix and table from $\mathcal N(0, 0.02^2)$ and starts biases at zero and
LayerNorm gains at one. The two projections in each block that write into the residual stream
(`attn.c_proj` and `mlp.c_proj`) are drawn with standard deviation $0.02/\sqrt{2L}$: the stream is a
sum of $2L$ such outputs, and shrinking each by $1/\sqrt{2L}$ keeps the variance of the sum at birth
about the same however deep the model.

```pycon
>>> c_proj = capstone.transformer.h[0].mlp.c_proj.weight
>>> {"std": round(c_proj.std().item(), 3), "0.02 / sqrt(2L)": round(0.02 / math.sqrt(2 * 4), 3)}
{'std': 0.007, '0.02 / sqrt(2L)': 0.007}

```

What loss should an untrained model have? If it knew nothing it would give every token probability
$1/V$, a cross-entropy of $\ln V$. Ours is close to that, and we can say how close. After `ln_f` each
coordinate of a vector has variance about one, so each logit is a sum of $C$ products with weights of
variance $0.02^2$: the logits spread with variance $s^2 = 0.02^2\,C$. For $V$ logits of small spread
$s$, $\mathbb E[\operatorname{logsumexp}] \approx \ln V + s^2/2$, while the target's own logit averages
zero, so the loss at birth is about $\ln V + 0.02^2 C / 2$:

```pycon
>>> g = torch.Generator().manual_seed(1)
>>> ids, next_ids = torch.randint(0, 256, (2, 8, 64), generator=g)     # random text, (B, T) each
>>> loss = capstone(ids, next_ids)[1]
>>> {"ln V": round(math.log(256), 2), "predicted": round(math.log(256) + 0.02**2 * 128 / 2, 2),
...  "measured": round(loss.item(), 2)}
{'ln V': 5.55, 'predicted': 5.57, 'measured': 5.57}

```

A first loss far above $\ln V$ means the model is confidently wrong before it has seen a byte: an
initialisation bug (Dr. Hammer shows one below). It is the cheapest check in deep learning; run it
before every long training.

## Equal to Hugging Face's GPT-2

Hugging Face's `GPT2LMHeadModel` has our keys, but its four projections are `Conv1D` modules, a name
from OpenAI's original TensorFlow code, which compute $y = xW + b$ with $W$ of shape $(C_{in}, C_{out})$:
the *transpose* of `nn.Linear`'s $(C_{out}, C_{in})$ weight.
[`to_hf_state_dict`][torchenstein.transformers.gpt.to_hf_state_dict] transposes exactly the keys in
[`CONV1D_WEIGHTS`][torchenstein.transformers.gpt.CONV1D_WEIGHTS] (and, for `bias=False`, fills GPT-2's
biases with zeros); [`to_hf`][torchenstein.transformers.gpt.to_hf] builds the `GPT2LMHeadModel` of a
matching `GPT2Config` (`gelu_new` is GPT-2's tanh GELU; attention `"eager"` or `"sdpa"`) and loads them.

```pycon
>>> from torchenstein.transformers.gpt import CONV1D_WEIGHTS, to_hf_state_dict
>>> hf_state = to_hf_state_dict(model)
>>> {key: tuple(hf_state["transformer.h.0." + key].shape) for key in CONV1D_WEIGHTS}
{'attn.c_attn.weight': (32, 96), 'attn.c_proj.weight': (32, 32), 'mlp.c_fc.weight': (32, 128),
 'mlp.c_proj.weight': (128, 32)}

```

One more convention differs: Hugging Face's `labels` are *not* shifted; the model shifts them inside,
predicting `labels[:, 1:]` from the positions before. So `hf(input_ids=idx, labels=idx)` and our
`model(idx, targets)` with `targets` = `idx` moved left by one and `-100` at the end are the same loss.
The comparison, in code (importing `transformers` takes seconds, so it is not run on this page):

```python
from torchenstein.transformers.gpt import to_hf
hf = to_hf(model, attn_implementation="sdpa")
targets = torch.cat([idx[:, 1:], torch.full_like(idx[:, :1], -100)], dim=1)
logits, loss = model(idx, targets)
out = hf(input_ids=idx, labels=idx, use_cache=False)
torch.testing.assert_close(logits, out.logits)
torch.testing.assert_close(loss, out.loss)
```

The tests (`tests/test_gpt.py`) prove logits, loss and every parameter's gradient equal, in float32
with `assert_close`'s default tolerances, with and without biases, with eager and sdpa attention, for
length-1 sequences, a length in between and the full `block_size`; in float64 to $10^{-12}$ for several
batch sizes and lengths; after three AdamW steps taken side by side; with dropout (equal in eval mode);
the from-scratch model equal to the fused one; and the parameter count equal to the formula and to
Hugging Face's. **Where it differs from Hugging Face:** its loss is computed in float32 even for a
float64 model, ours in the logits' dtype (at least float32); a test pins that. And without biases
Hugging Face still has them, at zero: they get gradients that our model has no parameter for.

## Training it, briefly

[`GPT.configure_optimizers`][torchenstein.transformers.gpt.GPT.configure_optimizers] builds AdamW
(proved equal to our own in the [Adam](../../training/adam/index.md) lesson) over the two groups of
[`param_groups_for_weight_decay`][torchenstein.training.adam.param_groups_for_weight_decay]: matrices
and tables decayed, biases and gains not. Twenty steps on one sentence, to see the loss fall:

```pycon
>>> _ = torch.manual_seed(0)
>>> tiny = GPT.from_config(n_layer=1, n_embd=32, n_head=2, block_size=16)
>>> text = torch.tensor(list(b"the monster ate the bolt and the monster slept. "))
>>> x, y = text[:32].view(2, 16), text[1:33].view(2, 16)       # y is x shifted by one
>>> optimizer = tiny.configure_optimizers(learning_rate=3e-3, weight_decay=0.0)
>>> losses = []
>>> for step in range(20):
...     _, loss = tiny(x, y)
...     optimizer.zero_grad()
...     loss.backward()
...     optimizer.step()
...     losses.append(loss.item())
>>> {"first": round(losses[0], 1), "last below half of first": losses[-1] < losses[0] / 2}
{'first': 5.6, 'last below half of first': True}

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: a copy is not a tie"
    Hammer "ties" his head to the embedding by copying the table into a new parameter. The shapes are
    right, the first forward pass is identical, and his model has $VC$ parameters too many. After one
    optimiser step the two matrices drift apart, and his checkpoint no longer loads into GPT-2.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> hammer = GPT.from_config(n_layer=1, n_embd=32, n_head=2, block_size=16)
    >>> hammer.lm_head.weight = nn.Parameter(hammer.transformer.wte.weight.detach().clone())
    >>> {"extra parameters": hammer.num_parameters() - model.num_parameters(), "V * C": 256 * 32}
    {'extra parameters': 8192, 'V * C': 8192}
    >>> opt = torch.optim.AdamW(hammer.parameters(), lr=1e-2)
    >>> hammer(x, y)[1].backward()
    >>> opt.step()
    >>> torch.equal(hammer.lm_head.weight, hammer.transformer.wte.weight)
    False
    >>> hammer.lm_head.weight = hammer.transformer.wte.weight      # the fix: one Parameter, two names
    >>> hammer.num_parameters() == model.num_parameters()
    True

    ```

!!! hammer "Dr. Hammer's trap: Conv1D weights loaded as they are"
    Hammer moves GPT-2's weights into his model without transposing. The non-square projections refuse
    to load, so he transposes "whatever does not fit". `attn.c_proj` is square, $(C, C)$: it loads
    untransposed without a word, and his model's logits are wrong.

    ```pycon
    >>> fresh = GPT.from_config(n_layer=1, n_embd=32, n_head=2, block_size=16)
    >>> fresh.load_state_dict(hf_state)
    Traceback (most recent call last):
    ...
    RuntimeError: Error(s) in loading state_dict for GPT:...size mismatch for transformer.h.0.attn.c_attn.weight...
    >>> shapes = {k: v.shape for k, v in fresh.state_dict().items()}
    >>> by_shape = {k: v if v.shape == shapes[k] else v.t() for k, v in hf_state.items()}
    >>> _ = fresh.load_state_dict(by_shape)                      # loads without a complaint...
    >>> torch.allclose(fresh(idx)[0], model(idx)[0])       # ...and thinks other thoughts
    False
    >>> by_name = {k: v.t() if k.endswith(CONV1D_WEIGHTS) else v for k, v in hf_state.items()}
    >>> _ = fresh.load_state_dict(by_name)                       # the fix: transpose by name
    >>> torch.equal(fresh(idx)[0], model(idx)[0])
    True

    ```

!!! hammer "Dr. Hammer's trap: tying to a table that skipped the initialisation"
    Hammer initialises his model the GPT-2 way and then, as a last line, ties the head to a fresh
    `nn.Embedding`. That table was drawn from `nn.Embedding`'s default, $\mathcal N(0, 1)$, fifty
    times GPT-2's spread, so the logits spread like $\sqrt{C}$ and the untrained model is absurdly sure
    of random tokens: its first loss is many times $\ln V$. Tie first, then initialise, and check the
    first loss.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> hammer = GPT(GPTConfig())
    >>> hammer.transformer.wte = nn.Embedding(256, 128)
    >>> hammer.lm_head.weight = hammer.transformer.wte.weight
    >>> bad = hammer(ids, next_ids)[1].item()
    >>> {"first loss above 10 x ln V": bad > 10 * math.log(256),
    ...  "GPT-2 init within 0.1 of ln V": abs(capstone(ids, next_ids)[1].item() - math.log(256)) < 0.1}
    {'first loss above 10 x ln V': True, 'GPT-2 init within 0.1 of ln V': True}

    ```

## Challenges

**1. Loading Hugging Face's weights.** Write `from_hf_state_dict(state_dict, config)`: take a
`GPT2LMHeadModel` state dict and return one that `GPT(config).load_state_dict(..., strict=True)`
accepts and that gives the same logits. Transpose the Conv1D weights, drop the causal-mask buffers
that GPT-2 checkpoints carry (keys ending in `attn.bias` and `attn.masked_bias`), and for
`config.bias=False` drop the biases.

**2. A shorter context.** Write `crop_block_size(model, block_size)`: shrink a model's context in place
to `block_size` positions (no more than it has), keeping the first rows of the position table as a
new parameter, updating `model.config`, and returning the model. Its logits on short sequences must
not change, and a sequence longer than the new `block_size` must raise `ValueError`.

Check an attempt with `check_from_hf_state_dict(my_function)` (or `check_crop_block_size`). The
Professor's answers pass:

```pycon
>>> from torchenstein.transformers.gpt import (
...     check_crop_block_size, check_from_hf_state_dict, crop_block_size, from_hf_state_dict)
>>> check_from_hf_state_dict(from_hf_state_dict)
>>> check_crop_block_size(crop_block_size)

```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure, time_it
from torchenstein.training.adam import param_groups_for_weight_decay

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


@dataclass
class GPTConfig:
    r"""The hyper-parameters of a GPT; the defaults are the course's capstone recipe.

    Attributes:
        vocab_size: how many token ids there are, $V$ (256: one per byte).
        block_size: the context length, the most positions one sequence may have, $T_{\max}$.
        n_layer: how many Transformer blocks are stacked, $L$.
        n_head: attention heads per block; must divide ``n_embd``.
        n_embd: the width of the residual stream, $C$.
        dropout: the probability of every dropout in the model (0.0: none).
        bias: whether the linear layers and LayerNorms have biases (GPT-2 has them).

    Raises:
        TypeError: if a size is not an int, ``dropout`` not a number or ``bias`` not a bool.
        ValueError: if a size is below 1, ``n_head`` does not divide ``n_embd`` or ``dropout`` is outside $[0, 1)$.

    Examples:
        >>> GPTConfig(n_layer=2)
        GPTConfig(vocab_size=256, block_size=64, n_layer=2, n_head=4, n_embd=128, dropout=0.0, bias=True)
        >>> GPTConfig(n_head=3)
        Traceback (most recent call last):
        ...
        ValueError: n_head must divide n_embd=128 (each head gets n_embd // n_head channels), got n_head=3
    """

    vocab_size: int = 256
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self) -> None:
        _check_config(self)

    @classmethod
    def gpt2(cls) -> GPTConfig:
        """The configuration of OpenAI's smallest GPT-2 (124M parameters), for counting, not for training here.

        Examples:
            >>> GPTConfig.gpt2().n_embd
            768
        """
        return cls(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


class Parts(NamedTuple):
    """The five building blocks a GPT is assembled from: PyTorch's (`FUSED`) or the course's own."""

    Linear: Callable[..., nn.Module]
    LayerNorm: Callable[..., nn.Module]
    Embedding: Callable[..., nn.Module]
    gelu: Callable[[Tensor], Tensor]
    attention: Callable[..., Tensor]


def _from_scratch_parts() -> Parts:
    # Imported when asked for: the fused model, the one everybody trains, needs none of them.
    from torchenstein.nn.activations import gelu
    from torchenstein.nn.embeddings import Embedding
    from torchenstein.nn.linear import Linear
    from torchenstein.nn.normalization import LayerNorm
    from torchenstein.transformers.attention import scaled_dot_product_attention

    return Parts(Linear, LayerNorm, Embedding, partial(gelu, approximate="tanh"), scaled_dot_product_attention)


FUSED = Parts(nn.Linear, nn.LayerNorm, nn.Embedding, partial(F.gelu, approximate="tanh"),
              F.scaled_dot_product_attention)
"""PyTorch's own modules and fused kernels: the parts `GPT` uses unless asked for ``from_scratch=True``."""


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused query-key-value projection, named as in GPT-2.

    Args:
        config: the model's `GPTConfig`.
        parts: the building blocks (`FUSED` or the course's own).
    """

    def __init__(self, config: GPTConfig, parts: Parts = FUSED) -> None:
        super().__init__()
        C = config.n_embd
        # One (C, 3C) projection computes queries, keys and values in one matrix product instead of three.
        self.c_attn = parts.Linear(C, 3 * C, bias=config.bias)
        self.c_proj = parts.Linear(C, C, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout, self.attention = config.n_head, config.dropout, parts.attention

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # three (B, T, C)
        # Each head reads its own slice of C // n_head channels: (B, T, C) -> (B, n_head, T, d_head).
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # is_causal hides the future: position t attends to positions 0..t only. Dropout on the attention
        # weights happens in training mode only, as nn.Dropout would.
        p = self.dropout if self.training else 0.0
        y = self.attention(q, k, v, dropout_p=p, is_causal=True)  # (B, n_head, T, d_head)
        # The heads are put side by side again, then mixed by the output projection.
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """The position-wise feed-forward network: widen four times, GELU (tanh form), narrow again."""

    def __init__(self, config: GPTConfig, parts: Parts = FUSED) -> None:
        super().__init__()
        C = config.n_embd
        self.c_fc = parts.Linear(C, 4 * C, bias=config.bias)
        self.c_proj = parts.Linear(4 * C, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.gelu = parts.gelu

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, 4C) inside, (B, T, C) out


class Block(nn.Module):
    """One pre-norm Transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig, parts: Parts = FUSED) -> None:
        super().__init__()
        self.ln_1 = parts.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, parts)
        self.ln_2 = parts.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config, parts)

    def forward(self, x: Tensor) -> Tensor:
        # The residual stream x is only ever added to; each sub-layer reads a normalised copy of it.
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    r"""A GPT-2 style language model whose ``state_dict`` maps onto Hugging Face's ``GPT2LMHeadModel``.

    Submodules are named as in GPT-2: ``transformer.wte`` (token embedding), ``transformer.wpe``
    (position embedding), ``transformer.h[i]`` (blocks, each ``ln_1``, ``attn.c_attn``, ``attn.c_proj``,
    ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), ``transformer.ln_f`` and ``lm_head``, whose weight *is*
    the token embedding's (tied). Weights start as in GPT-2: $\mathcal N(0, 0.02^2)$, residual
    projections with standard deviation $0.02/\sqrt{2L}$, zero biases, LayerNorm gains of one.

    Args:
        config: the hyper-parameters.
        from_scratch: build it from the course's own Linear, LayerNorm, Embedding, gelu and attention
            instead of PyTorch's fused twins (the same numbers, several times slower).

    Raises:
        TypeError: if ``config`` is not a `GPTConfig`.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=8))
        >>> logits, loss = model(torch.randint(0, 256, (2, 8)))
        >>> logits.shape, loss
        (torch.Size([2, 8, 256]), None)
    """

    def __init__(self, config: GPTConfig, *, from_scratch: bool = False) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        parts = _from_scratch_parts() if from_scratch else FUSED
        C = config.n_embd
        # A ModuleDict named `transformer` gives the keys Hugging Face uses: transformer.wte.weight, ...
        self.transformer = nn.ModuleDict({
            "wte": parts.Embedding(config.vocab_size, C),
            "wpe": parts.Embedding(config.block_size, C),
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList(Block(config, parts) for _ in range(config.n_layer)),
            "ln_f": parts.LayerNorm(C, bias=config.bias),
        })
        self.lm_head = parts.Linear(C, config.vocab_size, bias=False)
        # Weight tying: the head that turns a vector into V scores and the table that turns an id into a
        # vector are ONE (V, C) parameter. Tied before the initialisation below, so it is drawn once.
        self.lm_head.weight = self.transformer.wte.weight
        # GPT-2's initialisation. Every matrix and table (the 2-D parameters) is drawn from N(0, 0.02^2) and
        # every bias starts at zero; LayerNorm gains (1-D weights) keep their ones. Each block adds two
        # outputs (attention's and the MLP's) to the residual stream, 2L in all; shrinking the projections
        # that write into it by 1/sqrt(2L) keeps the stream's variance at birth roughly independent of depth.
        # named_parameters() yields the tied table once, so it is drawn once.
        for name, param in self.named_parameters():
            if param.ndim == 2:
                std = 0.02 / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(param, mean=0.0, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(param)

    @classmethod
    def from_config(cls, config: GPTConfig | None = None, *, from_scratch: bool = False, **fields) -> GPT:
        """Build a GPT from a config, or from the capstone defaults with some fields changed.

        Examples:
            >>> GPT.from_config(n_layer=1, n_embd=32, n_head=2).config.n_layer
            1
        """
        config = GPTConfig(**fields) if config is None else dataclasses.replace(config, **fields)
        return cls(config, from_scratch=from_scratch)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Score every possible next token at every position.

        Args:
            idx: token ids, shape ``(B, T)`` with ``T <= block_size``.
            targets: the ids each position should predict, shape ``(B, T)`` (``-100`` = ignore), or ``None``.

        Returns:
            ``(logits, loss)``: logits of shape ``(B, T, vocab_size)``, and the mean cross-entropy over
            the targets (``None`` without targets).

        Raises:
            TypeError: if ``idx`` or ``targets`` is not an integer tensor.
            ValueError: if ``idx`` is not 2-D, is longer than ``block_size``, or ``targets`` has another shape.
        """
        B, T = _check_idx(idx, targets, self.config.block_size)
        pos = torch.arange(T, device=idx.device)  # (T,)
        # The token's vector plus its position's vector, broadcast over the batch.
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)  # (B, T, C)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        # Cross-entropy over all B*T positions at once, in at least float32 (as Hugging Face computes it).
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
        loss = F.cross_entropy(wide.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    def num_parameters(self) -> int:
        """The number of learnable numbers, each tied parameter counted once.

        Examples:
            >>> GPT.from_config(n_layer=1, n_embd=32, n_head=2, block_size=8).num_parameters()
            21216
        """
        # parameters() yields a shared Parameter once, so the tied (V, C) table is counted once.
        return sum(p.numel() for p in self.parameters())

    def configure_optimizers(self, weight_decay: float = 0.1, learning_rate: float = 6e-4,
                             betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8) -> torch.optim.AdamW:
        """AdamW with weight decay on the matrices and embeddings only, as GPT-2 recipes train it.

        Args:
            weight_decay: the decay of the parameters with two or more dims.
            learning_rate: AdamW's ``lr``.
            betas: AdamW's ``betas`` (0.95, not 0.999: the recipe of GPT-3 and nanoGPT).
            eps: AdamW's ``eps``.

        Returns:
            ``torch.optim.AdamW`` over the two groups of `param_groups_for_weight_decay`.

        Examples:
            >>> opt = GPT.from_config(n_layer=1, n_embd=16, n_head=2, block_size=8).configure_optimizers()
            >>> [group["weight_decay"] for group in opt.param_groups]
            [0.1, 0.0]
        """
        groups = param_groups_for_weight_decay(self, weight_decay)
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps)



def parameter_budget(config: GPTConfig) -> dict[str, int]:
    r"""Count a GPT's parameters by formula, component by component, the tied head counted once.

    With $V$ = ``vocab_size``, $T$ = ``block_size``, $L$ = ``n_layer`` and $C$ = ``n_embd``: the token
    table $VC$ (which is also the head), the position table $TC$, per block attention $4C^2$ and MLP
    $8C^2$ weights, and with ``bias`` their $4C + 5C$ biases; LayerNorms $2C$ each (gain and shift), or
    $C$ without bias, two per block plus the final one.

    Args:
        config: the hyper-parameters.

    Returns:
        ``{"token embedding (= head)", "position embedding", "attention", "MLP", "LayerNorms"}`` to counts.

    Examples:
        >>> parameter_budget(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=8))
        {'token embedding (= head)': 8192, 'position embedding': 256, 'attention': 4224, 'MLP': 8352, 'LayerNorms': 192}
    """
    _check_config(config)
    V, T, L, C, b = config.vocab_size, config.block_size, config.n_layer, config.n_embd, int(config.bias)
    return {
        "token embedding (= head)": V * C,
        "position embedding": T * C,
        # c_attn (C, 3C) and c_proj (C, C), with biases 3C and C.
        "attention": L * (4 * C * C + b * 4 * C),
        # c_fc (C, 4C) and c_proj (4C, C), with biases 4C and C.
        "MLP": L * (8 * C * C + b * 5 * C),
        # ln_1 and ln_2 in every block, and ln_f.
        "LayerNorms": (2 * L + 1) * (1 + b) * C,
    }


# Hugging Face's GPT-2 keeps its four projections in `Conv1D` modules: y = x @ W + b with W of shape
# (in, out), the transpose of nn.Linear's (out, in). These are the state_dict keys to transpose.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
"""The key endings whose tensors are stored transposed in Hugging Face's GPT-2."""


def to_hf_state_dict(model: GPT) -> dict[str, Tensor]:
    """Our GPT's weights under Hugging Face's ``GPT2LMHeadModel`` names and layouts.

    The keys are already the same; the four projections per block are transposed (Conv1D), and a model
    without biases gets zero biases, since GPT-2 always has them (a zero bias adds nothing).

    Args:
        model: our `GPT`.

    Returns:
        A state dict that ``GPT2LMHeadModel.load_state_dict`` accepts with ``strict=True``.

    Raises:
        TypeError: if ``model`` is not a `GPT`.

    Examples:
        >>> model = GPT.from_config(n_layer=1, n_embd=32, n_head=2)
        >>> hf = to_hf_state_dict(model)
        >>> model.transformer.h[0].attn.c_attn.weight.shape, hf["transformer.h.0.attn.c_attn.weight"].shape
        (torch.Size([96, 32]), torch.Size([32, 96]))
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    # .t() is a view; contiguous() gives the Conv1D weight its own row-major memory, as HF's would have.
    state = {name: t.t().contiguous() if name.endswith(CONV1D_WEIGHTS) else t
             for name, t in model.state_dict().items()}
    if not model.config.bias:
        for name, t in list(state.items()):
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                state[name.replace(".weight", ".bias")] = torch.zeros_like(t)
            elif name.endswith(CONV1D_WEIGHTS):
                state[name.replace(".weight", ".bias")] = t.new_zeros(t.shape[1])
    return state


def hf_config(config: GPTConfig, attn_implementation: str = "eager"):
    """The ``transformers.GPT2Config`` of the same architecture (imports ``transformers``, which is slow).

    Args:
        config: our hyper-parameters.
        attn_implementation: Hugging Face's attention: ``"eager"`` (its own matmul-softmax) or ``"sdpa"``.

    Returns:
        A ``GPT2Config`` with GELU's tanh form (``gelu_new``), LayerNorm eps 1e-5, tied embeddings and
        every dropout set to ``config.dropout``.
    """
    from transformers import GPT2Config

    p = config.dropout
    return GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
                      n_layer=config.n_layer, n_head=config.n_head, activation_function="gelu_new",
                      resid_pdrop=p, embd_pdrop=p, attn_pdrop=p, layer_norm_epsilon=1e-5,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
                      attn_implementation=attn_implementation)


def to_hf(model: GPT, attn_implementation: str = "eager"):
    """A Hugging Face ``GPT2LMHeadModel`` holding a copy of our model's weights (same device and dtype).

    Args:
        model: our `GPT`.
        attn_implementation: ``"eager"`` or ``"sdpa"``, passed to `hf_config`.

    Returns:
        The ``GPT2LMHeadModel``, in the same train/eval mode as ``model``.
    """
    from transformers import GPT2LMHeadModel

    weight = model.transformer.wte.weight
    hf = GPT2LMHeadModel(hf_config(model.config, attn_implementation)).to(weight.device, weight.dtype)
    hf.load_state_dict(to_hf_state_dict(model), strict=True)
    return hf.train(model.training)


PIECES = ("Linear", "LayerNorm", "Embedding", "gelu", "attention")
"""The building blocks `piece_speeds` times."""


def piece_speeds(config: GPTConfig | None = None, batch_size: int = 12, repeat: int = 5) -> dict[str, dict[str, float]]:
    """Time forward and backward of each building block, the course's own against PyTorch's fused twin.

    Each piece runs at the size it has inside the model (the MLP's ``(B, T, 4C)`` activations for GELU,
    ``(B, n_head, T, d_head)`` heads for causal attention), on the CPU, with `torchenstein.lab.time_it`.

    Args:
        config: the model size (default: the capstone recipe).
        batch_size: sequences per batch.
        repeat: timed runs per piece; the median is kept.

    Returns:
        ``{piece: {"ours": seconds, "fused": seconds}}`` for every name in `PIECES`.

    Examples:
        >>> speeds = piece_speeds(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=8), batch_size=2, repeat=1)
        >>> list(speeds), list(speeds["gelu"])
        (['Linear', 'LayerNorm', 'Embedding', 'gelu', 'attention'], ['ours', 'fused'])
    """
    config = GPTConfig() if config is None else config
    B, T, C, H = batch_size, config.block_size, config.n_embd, config.n_head
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, C, generator=g, requires_grad=True)
    wide = torch.randn(B, T, 4 * C, generator=g, requires_grad=True)
    q, k, v = (torch.randn(B, H, T, C // H, generator=g, requires_grad=True) for _ in range(3))
    idx = torch.randint(0, config.vocab_size, (B, T), generator=g)
    speeds = {}
    for name, (ours, fused) in zip(PIECES, zip(_from_scratch_parts(), FUSED, strict=True), strict=True):
        if name == "Linear":
            calls = [partial(m, x) for m in (ours(C, 4 * C), fused(C, 4 * C))]
        elif name == "LayerNorm":
            calls = [partial(m, x) for m in (ours(C), fused(C))]
        elif name == "Embedding":
            calls = [partial(m, idx) for m in (ours(config.vocab_size, C), fused(config.vocab_size, C))]
        elif name == "gelu":
            calls = [partial(f, wide) for f in (ours, fused)]
        else:
            calls = [partial(f, q, k, v, is_causal=True) for f in (ours, fused)]
        # Forward and backward: training pays for both.
        speeds[name] = {label: time_it(lambda c=call: c().sum().backward(), repeat=repeat)
                        for label, call in zip(("ours", "fused"), calls, strict=True)}
    return speeds


def plot_parameter_budget(configs: dict[str, GPTConfig] | None = None) -> Figure:
    """Draw where a GPT's parameters go, component by component, for the capstone model and GPT-2 small.

    Args:
        configs: ``{label: config}`` to compare (default: the capstone recipe and `GPTConfig.gpt2`).

    Returns:
        A figure with one horizontal bar per config, split into the shares of `parameter_budget`.

    Examples:
        >>> len(plot_parameter_budget().axes)
        1
    """
    if configs is None:
        configs = {"capstone GPT": GPTConfig(), "GPT-2 small": GPTConfig.gpt2()}
    fig, (ax,) = new_figure(width=9.0, height=1.4 + 0.7 * len(configs))
    labels = list(configs)
    for row, label in enumerate(labels):
        budget = parameter_budget(configs[label])
        total, left = sum(budget.values()), 0.0
        for colour, (part, count) in zip(PALETTE, budget.items(), strict=False):
            share = count / total
            # Only the first bar gets legend entries, so each component is listed once.
            ax.barh(row, share, left=left, color=colour, label=part if row == 0 else None)
            if share > 0.06:
                ax.text(left + share / 2, row, f"{share:.0%}", ha="center", va="center", color="white", fontsize=9)
            left += share
        labels[row] = f"{label}\n{total / 1e6:.2f}M"
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()  # the first config on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the parameters")
    ax.set_title("Where a GPT's parameters live")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    return fig


# Challenges.


def from_hf_state_dict(state_dict: dict[str, Tensor], config: GPTConfig) -> dict[str, Tensor]:
    """Challenge solution: a Hugging Face ``GPT2LMHeadModel`` state dict, turned into one our `GPT` loads.

    Args:
        state_dict: Hugging Face's keys and layouts; it may hold the causal-mask buffers
            (``attn.bias``, ``attn.masked_bias``) that GPT-2 checkpoints carry.
        config: the configuration of the `GPT` that will load the result.

    Returns:
        A state dict for ``GPT(config).load_state_dict(..., strict=True)``.

    Examples:
        >>> model = GPT.from_config(n_layer=1, n_embd=32, n_head=2)
        >>> _ = model.load_state_dict(from_hf_state_dict(to_hf_state_dict(model), model.config))
    """
    ours = {}
    for name, t in state_dict.items():
        # The causal-mask buffers are not weights: our attention builds its mask itself (is_causal).
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        # Without biases our model has none to load; GPT-2's are dropped (they must be zero to agree).
        if not config.bias and name.endswith(".bias"):
            continue
        ours[name] = t.t().contiguous() if name.endswith(CONV1D_WEIGHTS) else t
    return ours


def check_from_hf_state_dict(candidate: Callable[[dict[str, Tensor], GPTConfig], dict[str, Tensor]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``from_hf_state_dict``."""
    for config in (GPTConfig(n_layer=2, n_embd=16, n_head=2, block_size=8, vocab_size=11),
                   GPTConfig(n_layer=1, n_embd=8, n_head=1, block_size=8, vocab_size=11, bias=False)):
        _ = torch.manual_seed(0)
        model = GPT(config).eval()
        hf = to_hf_state_dict(model)
        # What a GPT-2 checkpoint carries besides the weights: the old causal-mask buffers.
        T = config.block_size
        for i in range(config.n_layer):
            hf[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, T, T, dtype=torch.bool).tril()
            hf[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        _ = torch.manual_seed(1)
        fresh = GPT(config).eval()
        try:
            fresh.load_state_dict(candidate(hf, config), strict=True)
        except RuntimeError as err:
            raise AssertionError(f"GPT({config}).load_state_dict(strict=True) refused the result: {err}") from err
        idx = torch.arange(T).remainder(config.vocab_size)[None]
        assert torch.equal(fresh(idx)[0], model(idx)[0]), (
            f"for {config} the loaded model gives other logits than the original: did you transpose the "
            f"Conv1D weights {CONV1D_WEIGHTS}, all four of them, and only those?"
        )
        assert fresh.lm_head.weight is fresh.transformer.wte.weight, "loading must keep lm_head tied to wte"


def crop_block_size(model: GPT, block_size: int) -> GPT:
    """Challenge solution: shorten a model's context to ``block_size`` positions, in place.

    Args:
        model: our `GPT`.
        block_size: the new context length, at most the old one.

    Returns:
        The same ``model``, with ``config.block_size`` and its position table cut down.

    Examples:
        >>> model = crop_block_size(GPT.from_config(n_layer=1, n_embd=32, n_head=2), 16)
        >>> model.config.block_size, tuple(model.transformer.wpe.weight.shape)
        (16, (16, 32))
    """
    if not 1 <= block_size <= model.config.block_size:
        raise ValueError(f"block_size must be in [1, {model.config.block_size}], got {block_size}")
    # The first rows of the position table are the positions that remain; a new Parameter (not a view of
    # the old one) so the optimiser and the state_dict see a table of the new shape.
    wpe = model.transformer.wpe
    wpe.weight = nn.Parameter(wpe.weight.detach()[:block_size].clone())
    if hasattr(wpe, "num_embeddings"):
        wpe.num_embeddings = block_size
    model.config = dataclasses.replace(model.config, block_size=block_size)
    return model


def check_crop_block_size(candidate: Callable[[GPT, int], GPT]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``crop_block_size``."""
    for old, new in ((16, 8), (8, 8), (8, 1)):
        _ = torch.manual_seed(0)
        model = GPT.from_config(n_layer=1, n_embd=16, n_head=2, vocab_size=13, block_size=old).eval()
        idx = torch.randint(0, 13, (2, new))
        before = model(idx)[0]
        wpe_before = model.transformer.wpe.weight.detach().clone()
        cropped = candidate(model, new)
        assert isinstance(cropped, GPT), f"return the model, got {type(cropped).__name__}"
        assert cropped.config.block_size == new, (
            f"cropping {old} -> {new}: config.block_size is {cropped.config.block_size}, expected {new}")
        weight = cropped.transformer.wpe.weight
        assert isinstance(weight, nn.Parameter) and tuple(weight.shape) == (new, 16), (
            f"cropping {old} -> {new}: wpe.weight must be a Parameter of shape ({new}, 16), got "
            f"{type(weight).__name__} of shape {tuple(weight.shape)}")
        assert torch.equal(weight.detach(), wpe_before[:new]), "keep the first block_size rows of wpe, unchanged"
        assert torch.allclose(cropped(idx)[0], before), f"cropping {old} -> {new} changed the logits"
        try:
            cropped(torch.zeros(1, new + 1, dtype=torch.long))
        except ValueError:
            pass
        else:
            raise AssertionError(f"after cropping to {new}, a sequence of {new + 1} tokens must raise ValueError")


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_config(config: GPTConfig) -> None:
    for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if config.n_embd % config.n_head:
        raise ValueError(f"n_head must divide n_embd={config.n_embd} (each head gets n_embd // n_head "
                         f"channels), got n_head={config.n_head}")
    if isinstance(config.dropout, bool) or not isinstance(config.dropout, (int, float)):
        raise TypeError(f"dropout must be a number, got {config.dropout!r}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    if not isinstance(config.bias, bool):
        raise TypeError(f"bias must be a bool, got {config.bias!r}")


def _check_idx(idx: object, targets: object, block_size: int) -> tuple[int, int]:
    if not isinstance(idx, Tensor) or idx.dtype not in (torch.int64, torch.int32):
        got = f"dtype {idx.dtype}" if isinstance(idx, Tensor) else type(idx).__name__
        raise TypeError(f"idx must be a tensor of token ids (torch.int64 or torch.int32), got {got}")
    if idx.dim() != 2:
        raise ValueError(f"idx must have shape (B, T), got shape {tuple(idx.shape)}")
    B, T = idx.shape
    if T > block_size:
        raise ValueError(f"idx has length T={T}, but block_size is {block_size}: the model has no position "
                         f"embedding beyond it; crop the sequence to its last {block_size} tokens")
    if targets is not None:
        if not isinstance(targets, Tensor) or targets.dtype not in (torch.int64, torch.int32):
            got = f"dtype {targets.dtype}" if isinstance(targets, Tensor) else type(targets).__name__
            raise TypeError(f"targets must be a tensor of token ids (torch.int64 or torch.int32), got {got}")
        if targets.shape != idx.shape:
            raise ValueError(f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}")
    return B, T
