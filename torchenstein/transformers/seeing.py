r"""
# Seeing Attention: Reading the Monster's Mind

!!! torchenstein "The Professor speaks"
    It was a pre-dawn Tuesday when I first *saw* it: a picture of attention weights, and in it, plain as
    a staircase, an algorithm. Not a heap of numbers, a *recipe*! Tonight you will have that Tuesday too.
    We train a tiny transformer made of nothing but attention, catch its attention maps with hooks, watch
    one head learn to look back one step and another learn to *copy*, score them, and then, because
    Dr. Hammer would frame any pretty picture and call it an explanation, we cut a head out and learn
    what a map can never tell you.

**You will learn to**

- build a task whose algorithm shows in the attention maps: a random sequence repeated twice;
- build a two-layer, attention-only transformer from the course's own embedding, positions and
  [`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention], and train it on a CPU;
- catch every head's map from any model with `register_forward_hook`, and take the hooks off again;
- score heads: the previous-token score and the induction score, and compare them with a random model;
- ablate a head and measure what it does, because a map shows where a head looks, not what it does;
- avoid reading averaged heads, dropout-blurred maps, and the weights PyTorch never computed.

## A task whose algorithm you can see

Take a sequence of random tokens, say `7 2 9 4`, and write it twice: `7 2 9 4 7 2 9 4`. The first half
cannot be predicted: each token is a fresh draw. The second half can be predicted *perfectly*, by one
rule: **find the earlier copy of the current token, and say the token that came after it.** Having seen
`... 9 4 7`, look back for the earlier `7`, see that `2` followed it, and predict `2`. This is
*induction*: `[A][B] ... [A]` → `[B]`. Language models do it on real text all the time (a name seen
once is copied the second time), and the heads that do it are called **induction heads** (Olsson et
al., 2022, "In-context learning and induction heads").

[`induction_batch`][torchenstein.transformers.seeing.induction_batch] draws a **batch** (a stack of
sequences trained on together) of such sequences. Each half holds `half_len` *distinct* tokens, so every
token of the second half has exactly one earlier copy and the answer is never ambiguous:

```pycon
>>> import torch
>>> from torch import nn
>>> from torchenstein.transformers.seeing import induction_batch
>>> generator = torch.Generator().manual_seed(0)
>>> tokens = induction_batch(batch_size=2, half_len=5, vocab_size=16, generator=generator)
>>> tokens
tensor([[12,  2,  3, 13, 14, 12,  2,  3, 13, 14],
        [11,  2, 12,  3, 14, 11,  2, 12,  3, 14]])
>>> torch.equal(tokens[:, :5], tokens[:, 5:])
True
>>> induction_batch(batch_size=2, half_len=20, vocab_size=16)
Traceback (most recent call last):
...
ValueError: half_len=20 distinct tokens need vocab_size >= 20, got vocab_size=16

```

The model predicts the next token at every position, but only the predictions with an answer count:
position $i$ of the second half predicts token $i + 1$, for $i = n, \dots, 2n - 2$ with $n$ = `half_len`
(the last position of the first half would have to guess a fresh token). Training draws a new
`half_len` for every step: with a fixed one, a head could learn "copy from $n - 1$ positions back" by
position alone and never look at the tokens. With the length changing, only the rule works.

## A transformer made only of attention

[`AttentionOnlyTransformer`][torchenstein.transformers.seeing.AttentionOnlyTransformer] is the smallest
model that can learn the rule, and every organ of it comes from an earlier lesson:

1. an [`Embedding`][torchenstein.nn.embeddings.Embedding] turns each token into a vector of `embed_dim`
   numbers, and a [`LearnedPositionalEmbedding`][torchenstein.nn.positional.LearnedPositionalEmbedding]
   adds a learned vector for each position ([Positional encodings](../../nn/positional/index.md));
2. two layers of the course's [`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention]
   with a causal mask ([Multi-head attention](../multihead/index.md)), each *adding* its output to its
   input: $x \leftarrow x + \operatorname{MHA}(x)$. That running sum is the **residual stream**: every
   layer reads all of it and writes into it, and nothing is ever overwritten;
3. an **unembedding**, a [`Linear`][torchenstein.nn.linear.Linear] layer, turns each final vector into
   one **logit** per token of the vocabulary (an unnormalised score that softmax turns into a
   probability).

No MLPs and no normalisation: every path from input to output goes through attention, so the maps are
most of the story (the setting of Elhage et al., 2021, "A Mathematical Framework for Transformer
Circuits").

Why *two* layers? A key at position $j$ first knows only its own token and position. The induction rule
needs the key of `2` to say "the token *before* me was `7`", so that the second `7` can find it. A
first layer can move that fact: a **previous-token head** attends from each position to the one before
and copies its token into the residual stream. The second layer's **induction head** then matches the
query "I am `7`" with the keys that say "I follow a `7`", and copies *their* token, `2`, into the output.

```pycon
>>> from torchenstein.transformers.seeing import AttentionOnlyTransformer
>>> _ = torch.manual_seed(0)
>>> model = AttentionOnlyTransformer(vocab_size=16, max_len=24, embed_dim=32, num_heads=2)
>>> [name for name, _ in model.named_children()]
['embed', 'positions', 'layers', 'unembed']
>>> {"logits": model(tokens).shape, "parameters": sum(p.numel() for p in model.parameters())}
{'logits': torch.Size([2, 10, 16]), 'parameters': 10256}

```

Every layer is a drop-in twin of `nn.MultiheadAttention` (proved in the previous lesson), so the same
model can be built with PyTorch's layers instead, `attention_class=nn.MultiheadAttention`, and one
`state_dict` fits both. The tests prove it in float32 and float64 for several lengths: in training mode
the logits are bitwise equal and the gradients of every parameter equal to float tolerance; the maps,
read in evaluation mode where PyTorch takes its fused fast path, are equal to float tolerance.

```pycon
>>> twin = AttentionOnlyTransformer(16, 24, embed_dim=32, num_heads=2, attention_class=nn.MultiheadAttention)
>>> twin.load_state_dict(model.state_dict())
<All keys matched successfully>
>>> torch.testing.assert_close(twin(tokens), model(tokens))

```

## Catching the maps with forward hooks

The maps live inside the layers, and we want them without changing the model. Every `nn.Module` keeps a
list of functions to call right after its `forward`: `module.register_forward_hook(fn)` adds
`fn(module, args, output)` to it and returns a *handle* whose `remove()` takes it off again. (Hooks get a
whole lesson in Part 6; this one call is all we need here.)

An attention layer's `output` is the pair `(output, weights)`, so the hook keeps `output[1]`.
[`attention_maps`][torchenstein.transformers.seeing.attention_maps] hooks every attention layer of any
model, ours or PyTorch's, runs it once in evaluation mode without recording gradients (both restored
after), and removes every handle, even when the forward pass fails (`_forward_hooks`, the module's
private list, is empty again). It wants the maps per head: our model
asks its layers for `need_weights=True, average_attn_weights=False` (ours computes them anyway), and a
layer that hands back `None` or averaged weights gets a clear error instead of a wrong picture.

```pycon
>>> from torchenstein.transformers.seeing import attention_maps
>>> maps = attention_maps(model, tokens)
>>> {name: tuple(weights.shape) for name, weights in maps.items()}           # (B, h, L, S)
{'layers.0': (2, 2, 10, 10), 'layers.1': (2, 2, 10, 10)}
>>> {"rows sum to one": torch.allclose(maps["layers.0"].sum(-1), torch.ones(2, 2, 10)),
...  "nothing above the diagonal": torch.equal(maps["layers.1"].triu(1), torch.zeros(2, 2, 10, 10)),
...  "hooks left behind": len(model.layers[0]._forward_hooks)}
{'rows sum to one': True, 'nothing above the diagonal': True, 'hooks left behind': 0}
>>> torch.testing.assert_close(attention_maps(twin, tokens), maps)      # PyTorch's layers: the same maps

```

## Training the creature

[`train_induction_model`][torchenstein.transformers.seeing.train_induction_model] is the training loop
of [Part 3](../../training/loop/index.md): for each **step** it draws a fresh batch with a random
`half_len` between `min_half` and `max_half`, computes the [`cross_entropy`][torchenstein.nn.losses.cross_entropy]
of the second-half predictions, and lets the course's [`AdamW`][torchenstein.training.adam.AdamW] update
the parameters. Its defaults (200 steps of 32 sequences) are more than an example on this page should
run, so the tests train it and check what it learned, and the figures below are drawn from a model
trained by the same function.
[`evaluate_induction`][torchenstein.transformers.seeing.evaluate_induction] measures the loss and the
accuracy of the second-half predictions. An untrained model guesses:

```pycon
>>> from torchenstein.transformers.seeing import evaluate_induction
>>> held_out = induction_batch(64, 8, 16, generator=torch.Generator().manual_seed(1))
>>> untrained = evaluate_induction(model, held_out)
>>> {"untrained accuracy below 0.2": untrained["accuracy"] < 0.2}
{'untrained accuracy below 0.2': True}

```

After training, the second half is predicted almost perfectly: the tests require an accuracy above 0.9
on held-out sequences.

## Scoring the heads

A picture convinces; a number can be tested. Two scores, each a mean of attention weights over a batch
of repeated sequences, so each lies between 0 and 1:

- the **previous-token score** of a head: the mean weight on the diagonal just below the main one,
  `weights[..., i, i - 1]`, over every query $i \ge 1$ ([`previous_token_score`][torchenstein.transformers.seeing.previous_token_score]);
- the **induction score**: over the second-half queries $i = n, \dots, 2n - 1$, the mean weight on
  key $i - n + 1$, the token right after the earlier copy of token $i$. In a repeated sequence of
  period $n$ that key sits on the diagonal $n - 1$ below the main one
  ([`induction_score`][torchenstein.transformers.seeing.induction_score]).

A head that attends evenly to its visible keys already scores something (the first query has a single
key to look at), so a score means little without a **baseline**: the same model, untrained.

```pycon
>>> from torchenstein.transformers.seeing import induction_score, previous_token_score
>>> maps = attention_maps(model, held_out)
>>> {"previous-token, layers.0": previous_token_score(maps["layers.0"]).round(decimals=2),
...  "induction, layers.1": induction_score(maps["layers.1"], half_len=8).round(decimals=2)}
{'previous-token, layers.0': tensor([0.1500, 0.1300]), 'induction, layers.1': tensor([0.0800, 0.0900])}

```

Here are the maps of the trained model on one held-out sequence, one row per layer (`layers.0`, then
`layers.1`) and one column per head, the average of the heads in the last column; each title gives the
head's two scores:

![A grid of causal attention maps of the trained two-layer model on one sequence of eight tokens written twice. In the first layer, one head's map is a bright line just below the diagonal: each token looks at the one before it. In the second layer, both heads light up a line seven cells below the diagonal in the second half: each token looks at the token after its earlier copy. The last column, the average of the heads, shows the first layer's previous-token line at about half its brightness.](plot_induction_heads.svg)

The algorithm is there to be read: a previous-token head in the first layer, induction heads in the
second. The tests check it with margins a fixed seed cannot flake: the first layer's best
previous-token score beats the untrained model's best by more than 0.3, and the second layer's best
induction score beats its baseline by more than 0.5.

## What a map can and cannot tell

A map is a **softmax over scores** that come from queries and keys only. It says *where* a head looks.
What the head *carries back* from there is decided by the values and the output projection, which the
map never sees. A head whose value vectors are all zero draws exactly the same striking map, and adds
nothing to the residual stream. Attention is not explanation.

The honest test is an **ablation**: remove the head, run the model again, and measure the change in the
loss. [`ablate_head`][torchenstein.transformers.seeing.ablate_head] returns a copy of the model in which
one head's slice of the output projection is zero: `out_proj.weight[:, head * d:(head + 1) * d]`, the
$d$ columns that read that head's output. The copy draws the *same* maps, bit for bit, and computes
something else:

```pycon
>>> from torchenstein.transformers.seeing import ablate_head
>>> ablated = ablate_head(model, layer=1, head=0)
>>> ablated_maps = attention_maps(ablated, held_out)
>>> {"the same maps": all(torch.equal(ablated_maps[name], maps[name]) for name in maps),
...  "the same logits": torch.equal(ablated(held_out), model(held_out)),
...  "the original untouched": bool(model.layers[1].out_proj.weight.abs().min() > 0)}
{'the same maps': True, 'the same logits': False, 'the original untouched': True}

```

[`head_ablation_losses`][torchenstein.transformers.seeing.head_ablation_losses] ablates every head in
turn and reports how much the loss rises. Look at the trained model. The two induction heads of the
second layer draw the sharpest maps of all, yet removing either one alone raises the loss far less than
removing the first layer's previous-token head: they do the same job, and each covers for the other.
The first layer's other head, whose map looks busy, can go almost for free. No map could have told you
either fact (the tests check both on this model).

![Left: the previous-token and induction scores of the four heads of the trained model, labelled layer and head. Right: how much the loss on the second half rises when each head alone is removed: a tall bar for the previous-token head of the first layer, small bars for each of the two induction heads of the second layer, almost nothing for the first layer's other head.](plot_head_ablation.svg)

Maps are a place to *start* a hypothesis ("this head copies the previous token"); an ablation, or a
change of the input that should change the answer, is how you test it.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: averaging the heads away"
    `nn.MultiheadAttention` returns the heads' *average* unless told `average_attn_weights=False` (the
    [multi-head lesson](../multihead/index.md) showed `weights[0]` is then a sentence, not a head). Hammer
    scores the average and declares his model has no previous-token head. The score of an average is the
    average of the scores: one sharp head among $h$ is divided by $h$. `attention_maps` refuses averaged
    weights.

    ```pycon
    >>> layer = model.layers[0]
    >>> x = model.positions(model.embed(tokens))
    >>> hide_future = torch.ones(10, 10, dtype=torch.bool).triu(1)
    >>> _, averaged = layer(x, x, x, attn_mask=hide_future)                 # Hammer: (B, L, S)
    >>> _, per_head = layer(x, x, x, attn_mask=hide_future, average_attn_weights=False)   # (B, h, L, S)
    >>> torch.testing.assert_close(previous_token_score(averaged[:, None]),
    ...                            previous_token_score(per_head).mean(0, keepdim=True))
    >>> previous_token_score(averaged)
    Traceback (most recent call last):
    ...
    ValueError: weights must have shape (B, h, L, S), one map per head, got (2, 10, 10): averaged over the heads? Ask for average_attn_weights=False

    ```

!!! hammer "Dr. Hammer's trap: reading the maps in training mode"
    Hammer hooks a model built with attention dropout and reads its maps straight after a training step,
    still in training mode. Dropout zeroes random weights and scales the rest by $1/(1 - p)$
    ([Dropout](../../nn/dropout/index.md)): the rows no longer sum to one and two reads of the same
    input disagree. Read maps in evaluation mode, as `attention_maps` does (and restores the mode after).

    ```pycon
    >>> noisy = AttentionOnlyTransformer(16, 24, embed_dim=32, num_heads=2, dropout=0.5)   # training mode
    >>> seen = []
    >>> handle = noisy.layers[0].register_forward_hook(lambda module, args, output: seen.append(output[1]))
    >>> with torch.no_grad():
    ...     _, _ = noisy(tokens), noisy(tokens)
    >>> handle.remove()
    >>> {"two reads agree": torch.equal(seen[0], seen[1]),
    ...  "rows sum to one": torch.allclose(seen[0].sum(-1), torch.ones(2, 2, 10))}
    {'two reads agree': False, 'rows sum to one': False}
    >>> clean = attention_maps(noisy, tokens)["layers.0"]
    >>> {"rows sum to one": torch.allclose(clean.sum(-1), torch.ones(2, 2, 10)), "still training": noisy.training}
    {'rows sum to one': True, 'still training': True}

    ```

!!! hammer "Dr. Hammer's trap: hooking weights that were never computed"
    Hammer copies the attention call of `nn.TransformerEncoderLayer`, which passes `need_weights=False`
    for speed, and hooks it. With `need_weights=False`, `nn.MultiheadAttention` returns `None` for the
    weights, and in evaluation without gradients it takes its fused fast path, which never forms them at
    all. His hook collects `None`s. Asking for the weights per head keeps the fast path and returns them:

    ```pycon
    >>> from torchenstein.transformers.multihead import fast_path_taken
    >>> mha = nn.MultiheadAttention(32, 2, batch_first=True).eval()
    >>> seen = []
    >>> handle = mha.register_forward_hook(lambda module, args, output: seen.append(output[1]))
    >>> with torch.no_grad():
    ...     hammer = fast_path_taken(mha, x, x, x, attn_mask=hide_future, need_weights=False)
    ...     fixed = fast_path_taken(mha, x, x, x, attn_mask=hide_future, average_attn_weights=False)
    >>> handle.remove()
    >>> {"fast path": (hammer, fixed), "weights seen": [None if w is None else tuple(w.shape) for w in seen]}
    {'fast path': (True, True), 'weights seen': [None, (2, 2, 10, 10)]}

    ```

## Challenges

**1. Induction on any text.** `induction_score` knows the period of the repetition. Real text has no
period. Write `token_induction_score(weights, tokens)`: for weights $(B, h, T, T)$ and tokens $(B, T)$,
for every query $i$ whose token occurred before (at some $k < i$), add up the weight it puts on the keys
$k + 1$ right after those earlier copies; return the mean over all such queries and the batch, one
number per head, shape $(h,)$ (all `NaN` if no token occurs twice, the mean of nothing). On a repeated
sequence of distinct tokens it must equal `induction_score`.

**2. Silence a head through its values.** `ablate_head` zeroes a head's columns of the output
projection. Write `zero_value_head(model, layer, head)` that returns a copy of an
`AttentionOnlyTransformer` whose head `head` of layer `layer` has value vectors that are all zero: the
head's rows of the value projection (the last third of `in_proj_weight`, and of `in_proj_bias`). The
copy must draw the same maps and compute what `ablate_head` computes; the original must not change.

Check an attempt with `check_token_induction_score(my_function)` or `check_zero_value_head(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.transformers import seeing as lesson
>>> lesson.check_token_induction_score(lesson.token_induction_score)
>>> lesson.check_zero_value_head(lesson.zero_value_head)

```
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure, progress
from torchenstein.nn.embeddings import Embedding
from torchenstein.nn.linear import Linear
from torchenstein.nn.losses import cross_entropy
from torchenstein.nn.positional import LearnedPositionalEmbedding
from torchenstein.training.adam import AdamW
from torchenstein.transformers.attention import causal_mask
from torchenstein.transformers.multihead import MultiheadAttention

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ATTENTION_CLASSES = (MultiheadAttention, nn.MultiheadAttention)
"""The attention layers `attention_maps` hooks: the course's and PyTorch's."""


def induction_batch(
    batch_size: int, half_len: int, vocab_size: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Draw sequences of ``half_len`` distinct random tokens, each written twice.

    Args:
        batch_size: $B$, how many sequences.
        half_len: $n$, the length of each half; the sequences are $2n$ long.
        vocab_size: tokens are drawn from ``0 .. vocab_size - 1``, at least ``half_len`` of them.
        generator: the random generator to draw from (the global one if ``None``).

    Returns:
        A ``(B, 2n)`` int64 tensor whose second half equals its first.

    Raises:
        ValueError: if a size is not a positive int or ``vocab_size < half_len``.

    Examples:
        >>> induction_batch(1, 3, 3, generator=torch.Generator().manual_seed(0))
        tensor([[2, 0, 1, 2, 0, 1]])
    """
    for name, value in (("batch_size", batch_size), ("half_len", half_len), ("vocab_size", vocab_size)):
        _check_positive(value, name)
    if vocab_size < half_len:
        raise ValueError(f"half_len={half_len} distinct tokens need vocab_size >= {half_len}, got vocab_size={vocab_size}")
    # Sorting random keys gives a random permutation of the vocabulary per row; its start has no repeats.
    half = torch.rand(batch_size, vocab_size, generator=generator).argsort(dim=-1)[:, :half_len]  # (B, n)
    return torch.cat([half, half], dim=1)  # (B, 2n)


class AttentionOnlyTransformer(nn.Module):
    """Token embedding, learned positions, causal attention layers on a residual stream, unembedding.

    Args:
        vocab_size: $V$, the number of tokens.
        max_len: the longest sequence the learned positions cover.
        embed_dim: $E$, the width of the residual stream.
        num_heads: heads per attention layer; it must divide ``embed_dim``.
        num_layers: how many attention layers.
        dropout: attention dropout of every layer (training mode only).
        attention_class: the attention layer, the course's `MultiheadAttention` or ``nn.MultiheadAttention``.

    Attributes:
        embed: the token [`Embedding`][torchenstein.nn.embeddings.Embedding], ``(V, E)``.
        positions: a [`LearnedPositionalEmbedding`][torchenstein.nn.positional.LearnedPositionalEmbedding].
        layers: an ``nn.ModuleList`` of ``num_layers`` attention layers, ``batch_first=True``.
        unembed: a [`Linear`][torchenstein.nn.linear.Linear] ``(E -> V)`` that gives the logits.

    Raises:
        ValueError: if a size is not a positive int (the layers check the rest).

    Examples:
        >>> model = AttentionOnlyTransformer(vocab_size=8, max_len=6, embed_dim=8, num_heads=2)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 8])
    """

    def __init__(self, vocab_size: int, max_len: int, embed_dim: int = 32, num_heads: int = 2, num_layers: int = 2,
                 dropout: float = 0.0, attention_class: type[nn.Module] = MultiheadAttention) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("max_len", max_len), ("num_layers", num_layers)):
            _check_positive(value, name)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = Embedding(vocab_size, embed_dim)
        self.positions = LearnedPositionalEmbedding(max_len, embed_dim)
        self.layers = nn.ModuleList(
            attention_class(embed_dim, num_heads, dropout=dropout, batch_first=True) for _ in range(num_layers)
        )
        self.unembed = Linear(embed_dim, vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        """Return the logits ``(B, T, V)`` of the next token at every position of ``tokens`` ``(B, T)``."""
        _check_tokens(tokens, self.vocab_size, self.max_len)
        x = self.positions(self.embed(tokens))  # (B, T, E): the residual stream starts here
        hide_future = ~causal_mask(tokens.size(1), device=tokens.device)  # PyTorch's polarity: True = hidden
        for layer in self.layers:
            # Every layer reads the whole stream and adds what it found. It is asked for its weights per
            # head, so that hooks can see them; ours builds them anyway, so this costs nothing.
            out, _ = layer(x, x, x, attn_mask=hide_future, need_weights=True, average_attn_weights=False)
            x = x + out  # (B, T, E)
        return self.unembed(x)  # (B, T, V)


def second_half_loss(logits: Tensor, tokens: Tensor) -> Tensor:
    """The cross-entropy of the predictions that have an answer: positions ``n .. 2n - 2`` predict ``n + 1 ..``.

    Args:
        logits: ``(B, 2n, V)``, the model's output.
        tokens: ``(B, 2n)``, sequences written twice.

    Returns:
        The mean loss, a 0-d tensor.

    Raises:
        ValueError: if the shapes do not fit, or the sequences are too short to hold an answer.

    Examples:
        >>> second_half_loss(torch.zeros(1, 4, 5), torch.tensor([[1, 2, 1, 2]])).item() == torch.log(torch.tensor(5.0)).item()
        True
    """
    if tokens.dim() != 2 or logits.shape[:2] != tokens.shape or tokens.size(1) < 4:
        raise ValueError(f"tokens must be (B, 2n) with n >= 2 and logits (B, 2n, V), got tokens "
                         f"{tuple(tokens.shape)} and logits {tuple(logits.shape)}")
    n = tokens.size(1) // 2
    # Position i predicts token i + 1; the answers are known from position n on, up to the last token.
    predictions = logits[:, n:-1]  # (B, n - 1, V)
    return cross_entropy(predictions.reshape(-1, logits.size(-1)), tokens[:, n + 1:].reshape(-1))


def evaluate_induction(model: nn.Module, tokens: Tensor) -> dict[str, float]:
    """Loss and accuracy of the second-half predictions, in evaluation mode, without gradients.

    The model's mode is restored afterwards.

    Args:
        model: maps tokens ``(B, 2n)`` to logits ``(B, 2n, V)``.
        tokens: sequences written twice, e.g. from `induction_batch`.

    Returns:
        ``{"loss": ..., "accuracy": ...}`` as Python floats.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(tokens)
    finally:
        model.train(was_training)
    n = tokens.size(1) // 2
    correct = logits[:, n:-1].argmax(dim=-1) == tokens[:, n + 1:]  # (B, n - 1)
    return {"loss": second_half_loss(logits, tokens).item(), "accuracy": correct.float().mean().item()}


def train_induction_model(
    *, steps: int = 200, vocab_size: int = 16, min_half: int = 4, max_half: int = 12, embed_dim: int = 32,
    num_heads: int = 2, batch_size: int = 32, lr: float = 1e-2, seed: int = 0,
) -> AttentionOnlyTransformer:
    """Train a two-layer `AttentionOnlyTransformer` on `induction_batch` sequences of random half lengths.

    The global random state is left as it was: the model and the data use ``seed`` only.

    Args:
        steps: optimiser steps, one fresh batch each; 0 returns the untrained model.
        vocab_size: the number of tokens.
        min_half: the shortest half length drawn.
        max_half: the longest half length drawn; the model's ``max_len`` is ``2 * max_half``.
        embed_dim: the width of the residual stream.
        num_heads: heads per layer.
        batch_size: sequences per step.
        lr: AdamW's learning rate (no weight decay).
        seed: seeds the initialisation and the data.

    Returns:
        The trained model, in evaluation mode.

    Raises:
        ValueError: if a size is not a positive int (``steps`` may be 0) or ``min_half > max_half``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    for name, value in (("min_half", min_half), ("max_half", max_half)):
        _check_positive(value, name)
    if min_half > max_half:
        raise ValueError(f"min_half must not exceed max_half, got min_half={min_half}, max_half={max_half}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttentionOnlyTransformer(vocab_size, 2 * max_half, embed_dim, num_heads)
    if steps == 0:
        return model.eval()
    generator = torch.Generator().manual_seed(seed)
    optimizer = AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in progress(range(steps), desc="training induction heads", leave=False):
        # A new length every step, so that no head can solve the task by counting positions.
        half_len = int(torch.randint(min_half, max_half + 1, (), generator=generator))
        tokens = induction_batch(batch_size, half_len, vocab_size, generator=generator)  # (B, 2n)
        loss = second_half_loss(model(tokens), tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def attention_maps(model: nn.Module, *args, **kwargs) -> dict[str, Tensor]:
    """Run ``model(*args, **kwargs)`` once and catch every attention layer's per-head weights with hooks.

    Every ``MultiheadAttention`` (the course's or PyTorch's) inside ``model`` gets a forward hook; the
    model runs in evaluation mode without gradients; then every hook is removed and the mode restored,
    whatever happened.

    Args:
        model: any module holding attention layers that are called with ``need_weights=True,
            average_attn_weights=False``.
        *args: the model's inputs.
        **kwargs: the model's keyword inputs.

    Returns:
        ``{name: weights}`` in the order the layers ran, each weight ``(B, h, L, S)``, detached.

    Raises:
        ValueError: if the model holds no attention layer, a layer returned no weights or averaged ones,
            or a hooked layer never ran.

    Examples:
        >>> model = AttentionOnlyTransformer(8, 6, embed_dim=8, num_heads=2, num_layers=1)
        >>> {name: w.shape for name, w in attention_maps(model, torch.tensor([[1, 2, 3]])).items()}
        {'layers.0': torch.Size([1, 2, 3, 3])}
        >>> attention_maps(nn.Linear(2, 2), torch.zeros(2))
        Traceback (most recent call last):
        ...
        ValueError: model holds no attention layer (MultiheadAttention or nn.MultiheadAttention) to hook
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, ATTENTION_CLASSES)}
    if not layers:
        raise ValueError("model holds no attention layer (MultiheadAttention or nn.MultiheadAttention) to hook")
    maps: dict[str, Tensor] = {}

    def keeper(name: str) -> Callable:
        # An attention layer returns (output, weights); the hook keeps the weights under the layer's name.
        def hook(module: nn.Module, args: tuple, output: tuple[Tensor, Tensor | None]) -> None:
            maps[name] = _check_caught(name, output[1])

        return hook

    handles = [layer.register_forward_hook(keeper(name)) for name, layer in layers.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        # Hooks left behind would fire on every later call, and keep every map alive in memory.
        for handle in handles:
            handle.remove()
        model.train(was_training)
    silent = [name for name in layers if name not in maps]
    if silent:
        raise ValueError(f"the attention layers {silent} never ran: a fused path (nn.TransformerEncoderLayer's "
                         "in evaluation, say) may skip them")
    return maps


def previous_token_score(weights: Tensor) -> Tensor:
    """Each head's mean weight on the previous token: ``weights[..., i, i - 1]`` over queries ``i >= 1``.

    Args:
        weights: per-head maps ``(B, h, L, S)`` with ``L, S >= 2``.

    Returns:
        ``(h,)``, the mean over the batch and the queries.

    Raises:
        ValueError: if ``weights`` is not 4-D (averaged maps are 3-D) or a sequence is shorter than 2.

    Examples:
        >>> weights = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
        >>> previous_token_score(weights[None, None])       # (0.5 + 1.0) / 2
        tensor([0.7500])
    """
    _check_weights(weights, min_len=2)
    # The diagonal one below the main one holds w[i, i - 1] for i = 1 .. L - 1.
    return torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))  # (h,)


def induction_score(weights: Tensor, half_len: int) -> Tensor:
    """Each head's mean weight, over the second half, on the token after the earlier copy of the query's token.

    For sequences of period ``half_len`` (`induction_batch`), query ``i >= n`` finds its token's earlier
    copy at ``i - n``, so the induction target is key ``i - n + 1``: the diagonal ``n - 1`` below the main one.

    Args:
        weights: per-head maps ``(B, h, 2n, 2n)``.
        half_len: $n$.

    Returns:
        ``(h,)``, the mean over the batch and the queries ``n .. 2n - 1``.

    Raises:
        ValueError: if ``weights`` is not 4-D or its maps are not ``(2n, 2n)``.

    Examples:
        >>> perfect = torch.zeros(1, 1, 4, 4)
        >>> perfect[0, 0, 2, 1] = perfect[0, 0, 3, 2] = 1.0     # tokens a b a b: queries 2, 3 look at 1, 2
        >>> induction_score(perfect, half_len=2)
        tensor([1.])
    """
    _check_weights(weights, min_len=1)
    _check_positive(half_len, "half_len")
    if weights.shape[-2:] != (2 * half_len, 2 * half_len):
        raise ValueError(f"weights must have maps of shape (2 * half_len, 2 * half_len) = "
                         f"{(2 * half_len, 2 * half_len)}, got {tuple(weights.shape[-2:])}")
    # The diagonal starts at query n - 1 (key 0); the second half's queries are the ones after it.
    stripe = torch.diagonal(weights, offset=-(half_len - 1), dim1=-2, dim2=-1)[..., 1:]  # (B, h, n)
    return stripe.mean(dim=(0, -1))  # (h,)


def head_scores(model: nn.Module, tokens: Tensor) -> dict[str, Tensor]:
    """Both scores of every head of ``model`` on sequences written twice.

    Args:
        model: an `AttentionOnlyTransformer` (or any model `attention_maps` can read).
        tokens: ``(B, 2n)`` from `induction_batch`.

    Returns:
        ``{"previous-token": (layers, h), "induction": (layers, h)}``.
    """
    maps = list(attention_maps(model, tokens).values())
    return {
        "previous-token": torch.stack([previous_token_score(w) for w in maps]),
        "induction": torch.stack([induction_score(w, tokens.size(1) // 2) for w in maps]),
    }


def ablate_head(model: AttentionOnlyTransformer, layer: int, head: int) -> AttentionOnlyTransformer:
    """A copy of ``model`` in which one head's output never reaches the residual stream.

    The head's $d$ columns of the layer's ``out_proj.weight`` are set to zero, so whatever the head
    gathers is multiplied by zero; its queries, keys and map are untouched.

    Args:
        model: an `AttentionOnlyTransformer`.
        layer: the layer's index in ``model.layers``.
        head: the head's index in that layer.

    Returns:
        A deep copy; ``model`` itself is not changed.

    Raises:
        ValueError: if ``layer`` or ``head`` is out of range.
    """
    _check_head(model, layer, head)
    ablated = copy.deepcopy(model)
    attention = ablated.layers[layer]
    d = attention.head_dim
    with torch.no_grad():
        # out_proj computes merged @ W.T: column c of W reads channel c of the merged heads, (B, T, h * d).
        attention.out_proj.weight[:, head * d:(head + 1) * d] = 0.0
    return ablated


def head_ablation_losses(model: AttentionOnlyTransformer, tokens: Tensor) -> Tensor:
    """How much the second-half loss rises when each head is ablated in turn.

    Args:
        model: an `AttentionOnlyTransformer`.
        tokens: ``(B, 2n)`` from `induction_batch`.

    Returns:
        ``(layers, h)``: ablated loss minus the model's own loss.
    """
    base = evaluate_induction(model, tokens)["loss"]
    rises = [[evaluate_induction(ablate_head(model, i, j), tokens)["loss"] - base
              for j in range(layer.num_heads)] for i, layer in enumerate(model.layers)]
    return torch.tensor(rises)


@functools.lru_cache(maxsize=2)
def _trained_for_figures(steps: int, seed: int) -> AttentionOnlyTransformer:
    """One trained model for both figures (they only read it), trained once per process."""
    return train_induction_model(steps=steps, seed=seed)


def plot_induction_heads(*, steps: int = 200, half_len: int = 8, seed: int = 0) -> Figure:
    """Train the model with `train_induction_model` and draw every head's map of one held-out sequence.

    Args:
        steps: training steps.
        half_len: the length of each half of the sequence drawn.
        seed: seeds the training and the sequence.

    Returns:
        A figure with one row per layer and one column per head, plus the heads' average.

    Examples:
        >>> len(plot_induction_heads(steps=0, half_len=3).axes)      # steps=0: the untrained model
        6
    """
    model = _trained_for_figures(steps, seed)
    tokens = induction_batch(64, half_len, model.vocab_size, generator=torch.Generator().manual_seed(seed + 1))
    maps = list(attention_maps(model, tokens).values())
    h = maps[0].size(1)
    fig, axes = new_figure(len(maps), h + 1, width=2.5 * (h + 1), height=2.7 * len(maps))
    labels = [str(t) for t in tokens[0].tolist()]
    for i, weights in enumerate(maps):
        prev, ind = previous_token_score(weights), induction_score(weights, half_len)
        panels = [(weights[0, j], f"layers.{i}, head {j}\nprev {prev[j]:.2f} · ind {ind[j]:.2f}") for j in range(h)]
        panels.append((weights[0].mean(dim=0), f"layers.{i}, average\nprev {prev.mean():.2f} · ind {ind.mean():.2f}"))
        for j, (picture, title) in enumerate(panels):
            ax = axes[i * (h + 1) + j]
            ax.grid(False)
            ax.imshow(picture.numpy(), cmap="Purples", vmin=0.0, vmax=1.0)
            ax.set_title(title, fontsize=8)
            ax.set_xticks(range(len(labels)), labels, fontsize=6)
            ax.set_yticks(range(len(labels)), labels if j == 0 else [], fontsize=6)
    fig.supxlabel("key (the sequence, written twice)", fontsize=9)
    fig.supylabel("query", fontsize=9)
    return fig


def plot_head_ablation(*, steps: int = 200, seed: int = 0) -> Figure:
    """Train the model and draw, per head, its two scores beside the loss rise when it is ablated.

    Args:
        steps: training steps.
        seed: seeds the training and the held-out sequences.

    Returns:
        A figure with two axes.

    Examples:
        >>> len(plot_head_ablation(steps=0).axes)
        2
    """
    model = _trained_for_figures(steps, seed)
    tokens = induction_batch(64, 8, model.vocab_size, generator=torch.Generator().manual_seed(seed + 1))
    scores = head_scores(model, tokens)
    rises = head_ablation_losses(model, tokens).flatten()
    names = [f"layer {i}\nhead {j}" for i in range(len(model.layers)) for j in range(model.layers[i].num_heads)]
    positions = torch.arange(len(names)).float()
    fig, (left, right) = new_figure(1, 2, width=8.0, height=3.4)
    for offset, (label, values), colour in zip((-0.2, 0.2), scores.items(), PALETTE, strict=False):
        left.bar(positions + offset, values.flatten().numpy(), width=0.4, label=f"{label} score", color=colour)
    left.set(xticks=positions.tolist(), ylim=(0, 1), ylabel="score", title="What the maps say")
    left.set_xticklabels(names)
    left.legend(fontsize=8)
    right.bar(positions.numpy(), rises.numpy(), color=PALETTE[2])
    right.set(xticks=positions.tolist(), ylabel="loss rise when ablated", title="What removing the head does")
    right.set_xticklabels(names)
    return fig


def token_induction_score(weights: Tensor, tokens: Tensor) -> Tensor:
    """Challenge solution: the induction score of each head on any tokens, without knowing a period.

    Args:
        weights: per-head maps ``(B, h, T, T)``.
        tokens: ``(B, T)``, the tokens the maps were computed on.

    Returns:
        ``(h,)``: over every query whose token occurred before, the weight on the keys right after its
        earlier copies, averaged over those queries and the batch; ``NaN`` if no token occurs twice.

    Raises:
        ValueError: if the shapes do not fit.

    Examples:
        >>> weights = torch.zeros(1, 1, 4, 4)
        >>> weights[0, 0, 2, 1] = 1.0
        >>> token_induction_score(weights, torch.tensor([[5, 6, 5, 7]]))   # one query (2) repeats a token
        tensor([1.])
    """
    _check_weights(weights, min_len=1)
    if not isinstance(tokens, Tensor) or tokens.shape != (weights.size(0), weights.size(-1)):
        raise ValueError(f"tokens must have shape (B, T) = {(weights.size(0), weights.size(-1))}, "
                         f"got {tuple(getattr(tokens, 'shape', ()))}")
    T = tokens.size(1)
    # earlier[b, i, k]: token k is a copy of token i that came before it (k < i).
    before = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril(-1)
    earlier = (tokens[:, :, None] == tokens[:, None, :]) & before  # (B, T, T)
    # The induction target of copy k is key k + 1: shift the keys one step right.
    targets = torch.zeros_like(earlier)
    targets[..., 1:] = earlier[..., :-1]  # (B, T, T)
    per_query = (weights * targets[:, None]).sum(dim=-1)  # (B, h, T)
    repeats = earlier.any(dim=-1)  # (B, T): queries that have an earlier copy
    return (per_query * repeats[:, None]).sum(dim=(0, 2)) / repeats.sum()  # (h,)


def check_token_induction_score(candidate: Callable[[Tensor, Tensor], Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``token_induction_score``."""
    generator = torch.Generator().manual_seed(6)
    # Random maps on random tokens with repeats, checked against a loop over every query and key.
    for B, h, T, V in ((2, 3, 7, 3), (1, 2, 5, 10), (3, 1, 6, 2)):
        weights = torch.rand(B, h, T, T, generator=generator, dtype=torch.float64).tril()
        weights = weights / weights.sum(-1, keepdim=True)
        tokens = torch.randint(0, V, (B, T), generator=generator)
        total, count = torch.zeros(h, dtype=torch.float64), 0
        for b in range(B):
            for i in range(T):
                copies = [k for k in range(i) if tokens[b, k] == tokens[b, i]]
                if copies:
                    count += 1
                    total += sum(weights[b, :, i, k + 1] for k in copies)
        expected = total / count
        got = candidate(weights, tokens)
        where = f"tokens {tokens.tolist()}"
        assert isinstance(got, Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.shape == (h,), f"{where}: expected one score per head, shape {(h,)}, got {tuple(got.shape)}"
        assert torch.allclose(got, expected), (
            f"{where}: expected {expected.tolist()}, got {got.tolist()}; sum the weight on keys k + 1 after every "
            "earlier copy k < i, then average over the queries that have one (not over all queries)"
        )
    # On sequences written twice it is the lesson's induction_score.
    tokens = induction_batch(4, 5, 9, generator=generator)
    weights = torch.rand(4, 2, 10, 10, generator=generator).tril()
    weights = weights / weights.sum(-1, keepdim=True)
    assert torch.allclose(candidate(weights, tokens), induction_score(weights, 5)), (
        "on a repeated sequence of distinct tokens the score must equal induction_score(weights, half_len)"
    )
    got = candidate(torch.eye(3)[None, None], torch.tensor([[0, 1, 2]]))
    assert got.shape == (1,) and got.isnan().all(), f"no token repeats: expected tensor([nan]), got {got}"


def zero_value_head(model: AttentionOnlyTransformer, layer: int, head: int) -> AttentionOnlyTransformer:
    """Challenge solution: a copy of ``model`` whose head ``head`` of layer ``layer`` has all-zero values.

    Args:
        model: an `AttentionOnlyTransformer`.
        layer: the layer's index.
        head: the head's index.

    Returns:
        A deep copy with that head's value rows of ``in_proj_weight`` and ``in_proj_bias`` set to zero.

    Raises:
        ValueError: if ``layer`` or ``head`` is out of range.
    """
    _check_head(model, layer, head)
    silenced = copy.deepcopy(model)
    attention = silenced.layers[layer]
    E, d = attention.embed_dim, attention.head_dim
    # in_proj stacks queries, keys, values: the values are rows 2E .. 3E, head by head, d rows each.
    rows = slice(2 * E + head * d, 2 * E + (head + 1) * d)
    with torch.no_grad():
        attention.in_proj_weight[rows] = 0.0
        if attention.in_proj_bias is not None:
            # Without this, every value is the bias: the head hands back a constant, not nothing.
            attention.in_proj_bias[rows] = 0.0
    return silenced


def check_zero_value_head(candidate: Callable[[AttentionOnlyTransformer, int, int], AttentionOnlyTransformer]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``zero_value_head``."""
    tokens = induction_batch(3, 4, 10, generator=torch.Generator().manual_seed(7))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        model = AttentionOnlyTransformer(10, 8, embed_dim=12, num_heads=3).eval()
        with torch.no_grad():  # biases away from zero, so forgetting one shows
            for layer in model.layers:
                layer.in_proj_bias.normal_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    maps = attention_maps(model, tokens)
    for layer, head in ((0, 0), (1, 2), (0, 1)):
        where = f"layer={layer}, head={head}"
        got = candidate(model, layer, head)
        assert got is not model, f"{where}: return a copy (copy.deepcopy), not the model itself"
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), (
            f"{where}: the original model was changed; change the copy only"
        )
        got_maps = attention_maps(got, tokens)
        name = f"layers.{layer}"
        assert torch.equal(got_maps[name], maps[name]), (
            f"{where}: the map of the silenced layer changed; zero the value rows (the last third of "
            "in_proj_weight), not the query or key rows"
        )
        with torch.no_grad():
            expected, output = ablate_head(model, layer, head)(tokens), got.eval()(tokens)
        assert torch.allclose(output, expected, atol=1e-5), (
            f"{where}: the copy does not compute what ablate_head computes; zero rows 2E + head * d to "
            "2E + (head + 1) * d of in_proj_weight AND of in_proj_bias (a bias alone is a constant value)"
        )


def _check_positive(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_tokens(tokens: object, vocab_size: int, max_len: int) -> None:
    if not isinstance(tokens, Tensor) or tokens.dtype not in (torch.int64, torch.int32):
        got = f"dtype {tokens.dtype}" if isinstance(tokens, Tensor) else type(tokens).__name__
        raise TypeError(f"tokens must be an int64 or int32 tensor of token ids, got {got}")
    if tokens.dim() != 2 or not 1 <= tokens.size(1) <= max_len:
        raise ValueError(f"tokens must have shape (B, T) with 1 <= T <= max_len={max_len}, got {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, vocab_size={vocab_size}), "
                         f"got {tokens.min().item()} to {tokens.max().item()}")


def _check_caught(name: str, weights: Tensor | None) -> Tensor:
    if weights is None:
        raise ValueError(f"{name} returned no weights: call it with need_weights=True")
    if weights.dim() != 4:
        raise ValueError(f"{name} returned weights of shape {tuple(weights.shape)}, averaged over its heads: "
                         "call it with average_attn_weights=False")
    return weights.detach()


def _check_weights(weights: object, min_len: int) -> None:
    if not isinstance(weights, Tensor) or not weights.is_floating_point():
        raise TypeError(f"weights must be a floating-point tensor, got {getattr(weights, 'dtype', type(weights).__name__)}")
    if weights.dim() != 4:
        hint = ": averaged over the heads? Ask for average_attn_weights=False" if weights.dim() == 3 else ""
        raise ValueError(f"weights must have shape (B, h, L, S), one map per head, got {tuple(weights.shape)}{hint}")
    if min(weights.shape[-2:]) < min_len:
        raise ValueError(f"weights must have maps of at least {min_len} queries and keys, got {tuple(weights.shape)}")


def _check_head(model: object, layer: object, head: object) -> None:
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"model must be an AttentionOnlyTransformer with .layers, got {type(model).__name__}")
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise ValueError(f"layer must be an int in [0, {len(layers)}), got {layer!r}")
    h = layers[layer].num_heads
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < h:
        raise ValueError(f"head must be an int in [0, {h}), got {head!r}")
