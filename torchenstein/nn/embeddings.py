r"""
# Embeddings: The Lookup Table That Was a Matmul All Along

!!! torchenstein "The Professor speaks"
    A network cannot eat words, my apprentice; it eats numbers. So we give every token a number, and
    every number a row in a great learned table, and the monster reads by looking rows up. Today we
    build that table by hand, unmask it as a matrix multiplication in disguise, and then, in a feat of
    thrift that would make my landlord weep, make the same table serve as the model's mouth.

**You will learn to**

- turn tokens into integer ids and ids into vectors with `weight[ids]`;
- prove that the lookup is exactly `one_hot(ids) @ weight`, and count why nobody computes it that way;
- write `embedding` and `Embedding` from scratch, `padding_idx` and `from_pretrained` included, and prove
  them equal to `F.embedding` and `nn.Embedding`: same seed, same weights, same gradients;
- tie the embedding to a language model's output layer, count its parameters once, and watch the two
  gradients add up;
- check a fresh model's first loss against $\ln V$, and start a tied table small enough to pass;
- dodge float ids, off-by-one vocabularies, copied "ties" and weight decay on a padding row.

## Tokens are integers

A tokenizer cuts text into tokens and a vocabulary gives each token an id: an integer in
$[0, V)$, where $V$ is the vocabulary size. A batch of sentences becomes an integer tensor of shape
`(B, T)`, and sentences shorter than `T` are filled up with a padding token (here id 0):

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torch import nn
>>> vocab = {"<pad>": 0, "the": 1, "monster": 2, "wakes": 3, "sleeps": 4}
>>> sentences = [["the", "monster", "wakes"], ["monster", "sleeps"]]
>>> ids = torch.tensor([[vocab[w] for w in s] + [vocab["<pad>"]] * (3 - len(s)) for s in sentences])
>>> ids, ids.dtype, ids.shape
(tensor([[1, 2, 3],
        [2, 4, 0]]), torch.int64, torch.Size([2, 3]))

```

An id is a *name*, not a quantity: token 4 is not twice token 2. Feeding ids to a `Linear` layer as if
they were measurements would teach the monster nonsense. We need a vector per token instead.

## An embedding is a table

The embedding is a matrix `weight` of shape `(num_embeddings, embedding_dim)`, written $(V, D)$: row $v$
is the vector of token $v$. Embedding a batch is plain integer indexing, which picks one row per id and
so turns any shape of ids `(*)` into vectors `(*, D)`:

```pycon
>>> _ = torch.manual_seed(0)
>>> weight = torch.randn(len(vocab), 4)  # (V, D) = (5, 4)
>>> vectors = weight[ids]  # (B, T) -> (B, T, D)
>>> vectors.shape, weight[torch.tensor(3)].shape, weight[torch.zeros(2, 5, 7, dtype=torch.long)].shape
(torch.Size([2, 3, 4]), torch.Size([4]), torch.Size([2, 5, 7, 4]))
>>> {"row of 'monster'": torch.equal(vectors[0, 1], weight[vocab["monster"]]),
...  "same in both sentences": torch.equal(vectors[0, 1], vectors[1, 0])}
{"row of 'monster'": True, 'same in both sentences': True}

```

The same token gets the same vector wherever it stands, so "monster" at position 1 and at position 0
look alike: telling them apart is the job of the next lesson, positional encoding. The rows start
random and are learned like any other weight.

## The secret: a one-hot matmul

Write token $x_t$ as a one-hot row $e_{x_t}$ (a 1 at position $x_t$, zeros elsewhere). Multiplying it by
$W$ sums every row of $W$ times a 0, except row $x_t$ times a 1:

$$
\bigl(\operatorname{onehot}(x)\, W\bigr)_{t,:} = \sum_{v=0}^{V-1} [x_t = v]\, W_{v,:} = W_{x_t,:}.
$$

So an embedding is a bias-free linear layer applied to one-hot vectors, and the lookup is that layer
with every multiplication by zero skipped. The backward pass tells the same story. With $G$ the
gradient of the loss with respect to the output,

$$
\frac{\partial L}{\partial W} = \operatorname{onehot}(x)^\top G, \qquad
\frac{\partial L}{\partial W_{v,:}} = \sum_{t\,:\,x_t = v} G_{t,:},
$$

so each row of the gradient is the sum of the output gradients of every position that used that
token, and rows of unused tokens get exactly zero. Adding rows into the places they came from is what
`index_add_` does, and it is the backward of our own [`embedding`][torchenstein.nn.embeddings.embedding].
[`one_hot_embedding`][torchenstein.nn.embeddings.one_hot_embedding] builds the one-hot tensor with the
`one_hot_by_scatter` of the surgery lesson and multiplies; it agrees with the lookup forwards and
backwards (multiplying by 0 and 1 and adding zeros is exact, so even `torch.equal` holds):

```pycon
>>> from torchenstein.nn.embeddings import one_hot_embedding
>>> w_matmul, w_lookup = weight.clone().requires_grad_(), weight.clone().requires_grad_()
>>> torch.equal(one_hot_embedding(ids, w_matmul), w_lookup[ids])
True
>>> g = torch.randn(2, 3, 4)  # a gradient arriving from above, (B, T, D)
>>> (one_hot_embedding(ids, w_matmul) * g).sum().backward()
>>> (w_lookup[ids] * g).sum().backward()
>>> torch.allclose(w_matmul.grad, w_lookup.grad)
True
>>> torch.allclose(w_lookup.grad[vocab["monster"]], g[0, 1] + g[1, 0])  # used twice: two gradients add
True

```

![Three grids: the one-hot matrix of four token ids, the embedding table with the used rows outlined, and the output, whose rows are copies of those rows](plot_one_hot_lookup.svg)

## Why we look up instead of multiplying

[`embedding_costs`][torchenstein.nn.embeddings.embedding_costs] counts both ways for a GPT-2-sized
vocabulary ($V = 50257$, $D = 768$) and one batch of $8 \times 1024$ tokens, in float32. The one-hot
version pays $2NVD$ floating-point operations (counted by `matmul_flops` from the matmul lesson),
a temporary $(N, V)$ matrix, and a read of the whole table; the lookup does no arithmetic at all and
reads only the $N$ rows it copies:

```pycon
>>> from torchenstein.nn.embeddings import embedding_costs
>>> costs = embedding_costs(num_tokens=8 * 1024, num_embeddings=50257, embedding_dim=768)
>>> for method, cost in costs.items():
...     print(f"{method:15} {cost['flops'] / 1e9:6.1f} GFLOP {cost['temporary_bytes'] / 2**30:5.2f} GiB temporary"
...           f" {cost['bytes_read'] / 2**20:7.1f} MiB read")
one-hot matmul   632.4 GFLOP  1.53 GiB temporary  1717.8 MiB read
lookup             0.0 GFLOP  0.00 GiB temporary    24.0 MiB read

```

The backward is just as lopsided: a second matmul of the same size against an `index_add_` of $N$
rows. The two even fail differently: $0 \times \text{NaN}$ is NaN, so one corrupt row of the table
poisons *every* token of a one-hot matmul, while the lookup keeps the damage to the tokens that use it.

## `embedding` from scratch

[`embedding`][torchenstein.nn.embeddings.embedding] checks its arguments, flattens the ids, picks the
rows with a small custom autograd function whose backward is the `index_add_` above, and restores the
shape. It takes the ids as `torch.int64` or `torch.int32`, the two dtypes `F.embedding` accepts, and
refuses anything else. It matches `F.embedding` on any shape:

```pycon
>>> from torchenstein.nn.embeddings import embedding
>>> print("equal to F.embedding:", torch.equal(embedding(ids, weight), F.embedding(ids, weight)))
equal to F.embedding: True
>>> print("int32 ids too:", torch.equal(embedding(ids.int(), weight), F.embedding(ids.int(), weight)))
int32 ids too: True
>>> embedding(ids[0, 0], weight).shape                         # a 0-D id gives one vector
torch.Size([4])

```

The forward pass copies rows, so it is bitwise PyTorch's in every dtype. The backward pass *adds*, and
there one dtype choice shows: a float16 or bfloat16 table's gradient is summed in float32 and rounded
once, at the end.

!!! note "Where it differs from PyTorch"
    The gradient of a float16 or bfloat16 table with repeated ids. PyTorch's CPU kernel adds the
    gradients of a repeated id one at a time in the table's own dtype, rounding after every addition;
    ours adds them in float32 and rounds once. With few repeats the two agree to the table's precision;
    with many, PyTorch's sum drifts. Here one id is used a thousand times in a bfloat16 table, and the
    check is whether each entry of its gradient lies within one rounding ($2^{-8}$ relative) of the
    exact sum. In float32 and float64 the two agree to the usual tolerance.

    ```pycon
    >>> many = torch.zeros(1000, dtype=torch.long)                 # the same id, 1000 times
    >>> upstream = torch.randn(1000, 4, generator=torch.Generator().manual_seed(0)).bfloat16()
    >>> def row_gradient(lookup):
    ...     table = torch.zeros(2, 4, dtype=torch.bfloat16, requires_grad=True)
    ...     (lookup(many, table) * upstream).sum().backward()
    ...     return table.grad[0].double()
    >>> exact = upstream.double().sum(dim=0)
    >>> {name: bool(((row_gradient(lookup) - exact).abs() <= 2**-8 * exact.abs()).all())
    ...  for name, lookup in (("ours", embedding), ("F.embedding", F.embedding))}
    {'ours': True, 'F.embedding': False}

    ```

## `padding_idx`: the row that never learns

Padding positions carry no meaning, so their row should not learn from them. With `padding_idx=p`,
PyTorch gives row $p$ **no gradient**: the sum above simply skips it. Ours zeroes that row of the
gradient after adding everything up, and agrees. The rows that did learn received one gradient per use:

```pycon
>>> w_ours, w_torch = weight.clone().requires_grad_(), weight.clone().requires_grad_()
>>> embedding(ids, w_ours, padding_idx=0).sum().backward()
>>> F.embedding(ids, w_torch, padding_idx=0).sum().backward()
>>> w_ours.grad[:, 0]                                  # uses of each row; the padding row gets nothing
tensor([0., 1., 2., 1., 1.])
>>> print("equal to PyTorch's gradient:", torch.equal(w_ours.grad, w_torch.grad))
equal to PyTorch's gradient: True

```

Note what `padding_idx` does **not** do: the forward pass still returns whatever the padding row holds.
The padding vector is zero only because `nn.Embedding` zeroes that row when it initialises the table.
A negative `padding_idx` counts from the end, as list indices do, and is stored normalised:

```pycon
>>> torch.equal(embedding(ids, weight, padding_idx=0)[1, 2], weight[0])
True
>>> nn.Embedding(5, 4, padding_idx=-1).padding_idx
4
>>> embedding(ids, weight, padding_idx=5)
Traceback (most recent call last):
...
ValueError: padding_idx must be in [-5, 5) for num_embeddings=5, got 5

```

## The `Embedding` module from scratch

[`Embedding`][torchenstein.nn.embeddings.Embedding] keeps PyTorch's names (`num_embeddings`,
`embedding_dim`, `padding_idx`, `weight`) and PyTorch's order of random draws: an empty table, then
`normal_` with mean 0 and standard deviation 1 over all of it, then the padding row zeroed. Seeded
alike, the two modules hold the very same bits, and their `state_dict`s move both ways:

```pycon
>>> from torchenstein.nn.embeddings import Embedding
>>> _ = torch.manual_seed(0)
>>> ours = Embedding(5, 4, padding_idx=0)
>>> _ = torch.manual_seed(0)
>>> theirs = nn.Embedding(5, 4, padding_idx=0)
>>> ours, ours.weight[0].tolist()
(Embedding(5, 4, padding_idx=0), [0.0, 0.0, 0.0, 0.0])
>>> {"same bits": torch.equal(ours.weight, theirs.weight), "same output": torch.equal(ours(ids), theirs(ids)),
...  "state_dict": list(ours.state_dict())}
{'same bits': True, 'same output': True, 'state_dict': ['weight']}
>>> theirs.load_state_dict(ours.state_dict()), ours.load_state_dict(theirs.state_dict())
(<All keys matched successfully>, <All keys matched successfully>)

```

PyTorch's module has extras we leave out: `max_norm` (renormalise the looked-up rows in place),
`scale_grad_by_freq`, and `sparse=True`, which makes the gradient a sparse tensor holding only the rows
the batch touched instead of a dense table of mostly zeros. Few optimisers accept that (`torch.optim.SGD`,
`SparseAdam`, `Adagrad`), so it serves giant recommendation tables more than language models.

PyTorch draws every entry with variance 1 (GPT-style models initialise again with a much smaller
standard deviation, 0.02; weight tying below shows why). In $D$ dimensions two independent random rows
are nearly orthogonal, their cosine similarity shrinking like $1/\sqrt{D}$, so a fresh table starts
with every token a stranger to every other. The mean size of the cosine similarity between distinct rows shows it:

```pycon
>>> def typical_overlap(dim):
...     unit = F.normalize(Embedding(64, dim).weight.detach(), dim=1)  # rows of length 1
...     return (unit @ unit.T)[~torch.eye(64, dtype=torch.bool)].abs().mean()
>>> bool(typical_overlap(512) < typical_overlap(4) / 4)
True

```

![Two heatmaps of the cosine similarity between the rows of a fresh embedding table: with 4 dimensions many pairs are strongly similar or opposite, with 256 dimensions every pair is close to zero](plot_embedding_similarity.svg)

## Borrowed vectors: `from_pretrained`

The class method `from_pretrained` of [`Embedding`][torchenstein.nn.embeddings.Embedding]
wraps a table trained elsewhere, frozen by default (`requires_grad=False`). Two details surprise people:
it wraps your tensor **without copying** (`shares_memory` from the surgery lesson says so), and it keeps
the padding row exactly as given instead of zeroing it. Ours does the same as PyTorch's:

```pycon
>>> from torchenstein.tensors.surgery import shares_memory
>>> table = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
>>> frozen = Embedding.from_pretrained(table, padding_idx=0)
>>> {"requires_grad": frozen.weight.requires_grad, "rows 2 and 0": frozen(torch.tensor([2, 0])).tolist()}
{'requires_grad': False, 'rows 2 and 0': [[0.0, 1.0], [0.5, 0.5]]}
>>> {"ours shares": shares_memory(frozen.weight, table),
...  "PyTorch's shares": shares_memory(nn.Embedding.from_pretrained(table).weight, table)}
{'ours shares': True, "PyTorch's shares": True}

```

## Weight tying: one table, two jobs

A language model begins by embedding ids, `(B, T) -> (B, T, D)`, and ends by scoring every token of the
vocabulary, `(B, T, D) -> (B, T, V)`, with a `Linear(D, V, bias=False)`. That layer stores its weight
as `(out_features, in_features) = (V, D)`, exactly the embedding's shape, so both jobs can use **one**
`Parameter`: the score of token $v$ becomes the dot product of the hidden state with token $v$'s own
embedding. GPT-2 and many of its descendants do this and save $V \times D$ parameters (printed below
for GPT-2's table). [`TinyLanguageModel`][torchenstein.nn.embeddings.TinyLanguageModel] ties with one
assignment, `self.head.weight = self.embed.weight`. Tying is *sharing*, not copying: the two names
point at the same object, `parameters()` yields it once, and only the `state_dict` lists it under both
names (loading writes the same tensor twice, harmlessly):

```pycon
>>> from torchenstein.nn.embeddings import TinyLanguageModel
>>> _ = torch.manual_seed(0)
>>> tied = TinyLanguageModel(vocab_size=10, embedding_dim=4)
>>> tied.head.weight is tied.embed.weight
True
>>> untied = TinyLanguageModel(vocab_size=10, embedding_dim=4, tied=False)
>>> {"tied": sum(p.numel() for p in tied.parameters()), "untied": sum(p.numel() for p in untied.parameters())}
{'tied': 60, 'untied': 100}
>>> list(tied.state_dict())
['embed.weight', 'mix.weight', 'mix.bias', 'head.weight']
>>> 50257 * 768  # the parameters tying saves GPT-2
38597376

```

The shared parameter is used twice in the forward pass, so its gradient is the **sum** of the gradient
through the embedding and the gradient through the head. To prove it, load the tied weights into the
untied model (the same numbers, now in two separate parameters) and compare:

```pycon
>>> _ = untied.load_state_dict(tied.state_dict())
>>> tokens = torch.randint(0, 10, (2, 6))
>>> def next_token_loss(model):
...     logits = model(tokens[:, :-1])  # (B, T-1, V)
...     return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
>>> next_token_loss(tied).backward()
>>> next_token_loss(untied).backward()
>>> torch.allclose(tied.embed.weight.grad, untied.embed.weight.grad + untied.head.weight.grad)
True

```

## Tying and the scale of the table

A tied table has two jobs, and they want different sizes. As a lookup, rows from $\mathcal{N}(0, 1)$ are
harmless. As the output layer they are not: a row of length about $\sqrt{D}$ makes logits (the raw
scores a softmax turns into probabilities) of size $\sqrt{D}$ times the hidden state, and the untrained
model is confidently wrong about every token. A model that knows nothing should say so, giving each of
the $V$ tokens probability $1/V$; its cross-entropy, the average of $-\ln$ (the probability it gave the
right token), is then exactly $\ln V$. That is the first check of any fresh classifier: **the initial
loss should be about $\ln C$ for $C$ classes**; far above it, the initialisation is shouting. GPT-2
draws its tied table from $\mathcal{N}(0, 0.02^2)$; the original Transformer from $\mathcal{N}(0, 1/D)$,
multiplying the embeddings by $\sqrt{D}$ on the way in (the next lesson, on positions, weighs that
choice). `TinyLanguageModel` follows GPT-2 with `init_std=0.02`; `init_std=None` keeps
`nn.Embedding`'s $\mathcal{N}(0, 1)$:

```pycon
>>> import math
>>> _ = torch.manual_seed(0)
>>> tokens = torch.randint(0, 1000, (8, 65))                      # V = 1000, B = 8, T = 64
>>> def first_loss(model):
...     logits = model(tokens[:, :-1])                            # (B, T, V)
...     return round(F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).item(), 1)
>>> round(math.log(1000), 1)                                      # ln V: the loss of an honest guess
6.9
>>> {"tied, N(0, 1)": first_loss(TinyLanguageModel(1000, 256, init_std=None)),
...  "tied, N(0, 0.02²)": first_loss(TinyLanguageModel(1000, 256)),
...  "untied, N(0, 1)": first_loss(TinyLanguageModel(1000, 256, tied=False, init_std=None))}
{'tied, N(0, 1)': 23.9, 'tied, N(0, 0.02²)': 6.9, 'untied, N(0, 1)': 7.0}

```

Untied, the $\mathcal{N}(0, 1)$ table is only a lookup, and the head, an `nn.Linear` with its own small
initialisation, keeps the first logits near zero. Tied, the same table scores every token: the first
loss is more than three times $\ln V$, and the first steps of training go to undoing the initialisation.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: float ids"
    Dr. Hammer builds his ids with NumPy arithmetic and they come out as floats. An id is an address,
    not a measurement: PyTorch refuses it, and so does ours, more politely. Convert with `.long()`.

    ```pycon
    >>> float_ids = torch.tensor([[1.0, 2.0, 3.0]])
    >>> nn.Embedding(5, 4)(float_ids)
    Traceback (most recent call last):
    ...
    RuntimeError: Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got torch.FloatTensor instead (while checking arguments for embedding)
    >>> embedding(float_ids, weight)
    Traceback (most recent call last):
    ...
    TypeError: input must hold integer token ids (torch.int64 or torch.int32), got dtype torch.float32
    >>> embedding(float_ids.long(), weight).shape
    torch.Size([1, 3, 4])

    ```

!!! hammer "Dr. Hammer's trap: the off-by-one vocabulary"
    His tokenizer numbers its tokens 0 to 5 and he sizes the table with the largest id, 5. The
    table has rows 0 to 4, and the first sentence with the last token crashes (on a GPU, as an
    unhelpful device-side assert, reported later than the line that caused it). A table needs
    `num_embeddings = max_id + 1` rows; ours names the culprit before anything runs.

    ```pycon
    >>> max_id = 5
    >>> nn.Embedding(max_id, 4)(torch.tensor([2, 5]))
    Traceback (most recent call last):
    ...
    IndexError: index out of range in self
    >>> Embedding(max_id, 4)(torch.tensor([2, 5]))
    Traceback (most recent call last):
    ...
    IndexError: input holds token id 5, but num_embeddings is 5: ids must lie in [0, 5)
    >>> Embedding(max_id + 1, 4)(torch.tensor([2, 5])).shape
    torch.Size([2, 4])

    ```

!!! hammer "Dr. Hammer's trap: tying by copying"
    Dr. Hammer "ties" his head to his embedding by copying the values into a new parameter. They are
    equal for exactly one forward pass: the first optimiser step updates each with its own gradient,
    and they drift apart forever.

    ```pycon
    >>> def one_sgd_step(embed, head):
    ...     optimizer = torch.optim.SGD(nn.ModuleList([embed, head]).parameters(), lr=0.1)  # each Parameter once
    ...     F.cross_entropy(head(embed(torch.tensor([1, 2]))), torch.tensor([2, 3])).backward()
    ...     optimizer.step()
    ...     return torch.equal(embed.weight, head.weight)
    >>> embed, head = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
    >>> head.weight = nn.Parameter(embed.weight.detach().clone())  # a copy, not a tie
    >>> {"equal before": torch.equal(embed.weight, head.weight), "equal after a step": one_sgd_step(embed, head)}
    {'equal before': True, 'equal after a step': False}
    >>> head.weight = embed.weight  # the same Parameter: a tie
    >>> {"equal after a step": one_sgd_step(embed, head), "one object": head.weight is embed.weight}
    {'equal after a step': True, 'one object': True}

    ```

!!! hammer "Dr. Hammer's trap: weight decay on the padding row"
    `padding_idx` promises no *gradient*, not no *update*. Weight decay shrinks every parameter it is
    given, gradient or not. A zero padding row survives (decay pulls towards zero), but a pretrained one
    does not, and Dr. Hammer's "fixed" pad vector melts a little with every step. Give embeddings
    their own parameter group with `weight_decay=0.0`, as minGPT does.

    ```pycon
    >>> def pad_row_after_one_step(param_groups_of):
    ...     emb = nn.Embedding.from_pretrained(torch.tensor([[0.5, -0.5], [1.0, 2.0]]), freeze=False, padding_idx=0)
    ...     optimizer = torch.optim.AdamW(param_groups_of(emb), lr=0.1, weight_decay=0.1)
    ...     emb(torch.tensor([0, 1, 0])).sum().backward()
    ...     assert emb.weight.grad[0].eq(0).all()  # no gradient reached the pad row...
    ...     optimizer.step()
    ...     return emb.weight.detach()[0]
    >>> pad_row_after_one_step(lambda emb: emb.parameters())  # ...and yet it moved
    tensor([ 0.4950, -0.4950])
    >>> pad_row_after_one_step(lambda emb: [{"params": emb.parameters(), "weight_decay": 0.0}])
    tensor([ 0.5000, -0.5000])

    ```

## Challenges

1. **A bag of embeddings.** Write `embedding_bag_mean(input, offsets, weight)`: `input` is a 1-D tensor
   of ids holding several bags one after another, `offsets` a 1-D tensor of where each bag starts
   (`offsets[0] == 0`, non-decreasing), and the result of shape `(len(offsets), D)` holds the mean of
   each bag's embeddings, zeros for an empty bag. It must equal `F.embedding_bag(input, weight, offsets,
   mode="mean")`, gradients included. (Hint: `torch.repeat_interleave` and `index_add`.)
2. **Tie the knot.** Write `tie_embedding_to_head(embedding, head)` that makes the `nn.Linear` `head`
   share the embedding's weight `Parameter` (keeping the embedding's values and the head's bias) and
   returns `head`. Raise `ValueError` if `head.weight` does not have the embedding's shape, `TypeError`
   if `head` is not an `nn.Linear`.

Check an attempt with `check_embedding_bag_mean(my_function)` and `check_tie_embedding_to_head(my_function)`,
or put both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's own
answers pass:

```pycon
>>> from torchenstein.nn.embeddings import check_embedding_bag_mean, check_tie_embedding_to_head
>>> from torchenstein.nn.embeddings import embedding_bag_mean, tie_embedding_to_head
>>> check_embedding_bag_mean(embedding_bag_mean)
>>> check_tie_embedding_to_head(tie_embedding_to_head)

```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.matmul import matmul_flops
from torchenstein.tensors.surgery import one_hot_by_scatter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ID_DTYPES = (torch.int64, torch.int32)


def _check_ids(input: object, name: str = "input") -> torch.Tensor:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(input).__name__}")
    if input.dtype not in _ID_DTYPES:
        raise TypeError(f"{name} must hold integer token ids (torch.int64 or torch.int32), got dtype {input.dtype}")
    return input


def _check_table(weight: object, name: str = "weight") -> torch.Tensor:
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(weight).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}")
    return weight


def _check_id_range(input: torch.Tensor, num_embeddings: int) -> None:
    # Checked before the lookup: on a GPU a bad id is a device-side assert that breaks the CUDA context.
    # The price is one synchronisation to read `min` and `max` back.
    low, high = (input.min().item(), input.max().item()) if input.numel() else (0, 0)
    if low < 0 or high >= num_embeddings:
        bad, v = (high if high >= num_embeddings else low), num_embeddings
        raise IndexError(f"input holds token id {bad}, but num_embeddings is {v}: ids must lie in [0, {v})")


def _normalize_padding_idx(padding_idx: object, num_embeddings: int) -> int | None:
    # As in PyTorch, -1 means the last row; the stored value is always in [0, num_embeddings).
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, int):
        raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        v = num_embeddings
        raise ValueError(f"padding_idx must be in [-{v}, {v}) for num_embeddings={v}, got {padding_idx}")
    return padding_idx % num_embeddings


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def one_hot_embedding(input: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Embed ``input`` the expensive way, $\operatorname{onehot}(\text{input})\,W$: a proof, not a tool.

    Args:
        input: token ids (``torch.int64`` or ``torch.int32``) of any shape ``(*)``.
        weight: the table, shape ``(num_embeddings, embedding_dim)``, floating point.

    Returns:
        The embeddings, shape ``(*, embedding_dim)``, equal to ``weight[input]``.

    Raises:
        TypeError: if ``input`` does not hold integer ids.
        ValueError: if ``weight`` is not 2-D or an id is out of range.

    Examples:
        >>> weight = torch.arange(6.0).reshape(3, 2)
        >>> one_hot_embedding(torch.tensor([2, 0]), weight)
        tensor([[4., 5.],
                [0., 1.]])
    """
    _check_ids(input)
    _check_table(weight)
    # (*, V): a 1 in the column of each id. The float copy is where all the memory goes.
    one_hot = one_hot_by_scatter(input, weight.shape[0]).to(weight.dtype)
    return one_hot @ weight  # (*, V) @ (V, D) -> (*, D)


def embedding_costs(num_tokens: int, num_embeddings: int, embedding_dim: int, *, element_size: int = 4) -> dict:
    """Count the forward cost of embedding ``num_tokens`` tokens by one-hot matmul and by lookup.

    Args:
        num_tokens: how many ids are embedded at once, ``N`` (batch times sequence length).
        num_embeddings: the vocabulary size ``V``.
        embedding_dim: the vector size ``D``.
        element_size: bytes per number (4 for float32, 2 for bfloat16).

    Returns:
        ``{"one-hot matmul": {...}, "lookup": {...}}``, each with the floating-point operations
        (``"flops"``), the bytes of temporary tensors (``"temporary_bytes"``: the ``(N, V)`` one-hot
        matrix) and the bytes read from the inputs (``"bytes_read"``), ids not counted.

    Raises:
        TypeError: if a size is not an int.
        ValueError: if a size is below 1.

    Examples:
        >>> costs = embedding_costs(2, 3, 4)
        >>> costs["one-hot matmul"]["flops"], costs["lookup"]["flops"]
        (48, 0)
    """
    n = _positive_int("num_tokens", num_tokens)
    v = _positive_int("num_embeddings", num_embeddings)
    d = _positive_int("embedding_dim", embedding_dim)
    _positive_int("element_size", element_size)
    return {
        "one-hot matmul": {
            "flops": matmul_flops((n, v), (v, d)),
            "temporary_bytes": n * v * element_size,
            # The one-hot matrix and the whole table stream through the matmul.
            "bytes_read": (n * v + v * d) * element_size,
        },
        "lookup": {"flops": 0, "temporary_bytes": 0, "bytes_read": n * d * element_size},
    }


class _LookupRows(torch.autograd.Function):
    # Forward: copy out one row per id. Backward: add each output row's gradient into the row it was
    # copied from (repeated ids accumulate), then give the padding row no gradient at all.

    @staticmethod
    def forward(ctx, weight: torch.Tensor, flat_ids: torch.Tensor, padding_idx: int | None) -> torch.Tensor:
        ctx.save_for_backward(flat_ids)
        ctx.num_embeddings = weight.shape[0]
        ctx.padding_idx = padding_idx
        return weight.index_select(0, flat_ids)  # (N, D)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (flat_ids,) = ctx.saved_tensors
        # The sums of a float16 or bfloat16 table's gradient are kept in float32 and rounded once at the
        # end: a row used a thousand times adds a thousand gradients, and half precision would round
        # after every one of them.
        sum_dtype = torch.promote_types(grad_output.dtype, torch.float32)
        # (V, D): onehot^T @ grad_output, computed as a scatter-add instead of a matmul.
        grad_weight = grad_output.new_zeros(ctx.num_embeddings, grad_output.shape[-1], dtype=sum_dtype)
        grad_weight.index_add_(0, flat_ids, grad_output.to(sum_dtype))
        if ctx.padding_idx is not None:
            # Only positions holding the padding id added into this row: zeroing it drops exactly those.
            grad_weight[ctx.padding_idx] = 0
        return grad_weight.to(grad_output.dtype), None, None


def embedding(input: torch.Tensor, weight: torch.Tensor, padding_idx: int | None = None) -> torch.Tensor:
    """Look up one row of ``weight`` per id, like `torch.nn.functional.embedding`.

    The backward adds the gradient of each output row into the row it came from and gives the row
    ``padding_idx`` no gradient, exactly as PyTorch does.

    Args:
        input: token ids of any shape ``(*)``, ``torch.int64`` or ``torch.int32``, in ``[0, num_embeddings)``.
        weight: the table, shape ``(num_embeddings, embedding_dim)``.
        padding_idx: a row that receives no gradient; negative values count from the end.

    Returns:
        A new tensor of shape ``(*, embedding_dim)``.

    Raises:
        TypeError: if ``input`` does not hold integer ids, or ``padding_idx`` is not an int.
        ValueError: if ``weight`` is not 2-D, or ``padding_idx`` is out of range.
        IndexError: if an id is negative or not below ``num_embeddings``.

    Examples:
        >>> embedding(torch.tensor([[2, 2, 0]]), torch.arange(6.0).reshape(3, 2)).tolist()
        [[[4.0, 5.0], [4.0, 5.0], [0.0, 1.0]]]
    """
    _check_ids(input)
    num_embeddings, embedding_dim = _check_table(weight).shape
    padding_idx = _normalize_padding_idx(padding_idx, num_embeddings)
    _check_id_range(input, num_embeddings)
    # (*) -> (N,): the lookup works on a flat list of ids; the shape comes back at the end.
    rows = _LookupRows.apply(weight, input.reshape(-1).long(), padding_idx)  # (N, D)
    return rows.reshape(*input.shape, embedding_dim)  # (*, D)


class Embedding(nn.Module):
    r"""A learned table of ``num_embeddings`` vectors of size ``embedding_dim``, like `torch.nn.Embedding`.

    Args:
        num_embeddings: the vocabulary size, the number of rows.
        embedding_dim: the size of each vector.
        padding_idx: a row that starts at zero and receives no gradient; negative values count from
            the end and are stored normalised.
        device: where to create the table.
        dtype: the table's floating-point dtype.
        _weight: an existing ``(num_embeddings, embedding_dim)`` tensor to wrap instead of a random
            one (used by ``from_pretrained``; not copied, not zeroed).
        _freeze: create the parameter with ``requires_grad=False``.

    Attributes:
        weight: the table, a ``Parameter`` of shape ``(num_embeddings, embedding_dim)``, drawn from
            $\mathcal{N}(0, 1)$ with the padding row zeroed.

    Raises:
        TypeError: if a size or ``padding_idx`` is not an int.
        ValueError: if a size is below 1, ``padding_idx`` is out of range, or ``_weight`` has the wrong shape.

    Examples:
        >>> emb = Embedding(10, 3, padding_idx=-1)
        >>> emb, emb.padding_idx, emb(torch.tensor([[1, 9]])).shape
        (Embedding(10, 3, padding_idx=9), 9, torch.Size([1, 2, 3]))
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 _weight: torch.Tensor | None = None, _freeze: bool = False) -> None:
        super().__init__()
        self.num_embeddings = _positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = _positive_int("embedding_dim", embedding_dim)
        self.padding_idx = _normalize_padding_idx(padding_idx, num_embeddings)
        shape = (num_embeddings, embedding_dim)
        if _weight is None:
            # Allocate, then draw in place: the same calls in the same order as PyTorch, hence the same bits.
            self.weight = nn.Parameter(torch.empty(shape, device=device, dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        elif tuple(_check_table(_weight, "_weight").shape) != shape:
            raise ValueError(f"_weight must have shape {shape}, got {tuple(_weight.shape)}")
        else:
            # nn.Parameter wraps the tensor's storage rather than copying it, as in PyTorch.
            self.weight = nn.Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        r"""Redraw the table from $\mathcal{N}(0, 1)$ and zero the padding row."""
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0)
            if self.padding_idx is not None:
                self.weight[self.padding_idx].fill_(0.0)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return embedding(input, self.weight, self.padding_idx)  # (*, embedding_dim)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"

    @classmethod
    def from_pretrained(cls, embeddings: torch.Tensor, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        """Wrap a trained ``(num_embeddings, embedding_dim)`` table, like ``nn.Embedding.from_pretrained``.

        Args:
            embeddings: the table; it is wrapped, not copied, and its padding row is kept as it is.
            freeze: whether the weight gets ``requires_grad=False``.
            padding_idx: a row that receives no gradient.

        Returns:
            A new ``Embedding`` whose ``weight`` shares memory with ``embeddings``.

        Raises:
            TypeError: if ``embeddings`` is not a tensor.
            ValueError: if ``embeddings`` is not 2-D.

        Examples:
            >>> Embedding.from_pretrained(torch.ones(4, 2), padding_idx=0)
            Embedding(4, 2, padding_idx=0)
        """
        rows, cols = _check_table(embeddings, "embeddings").shape
        return cls(rows, cols, padding_idx, _weight=embeddings, _freeze=freeze)


class TinyLanguageModel(nn.Module):
    r"""The smallest language model with a tied head: embed, mix, score every token of the vocabulary.

    Args:
        vocab_size: the number of tokens ``V``.
        embedding_dim: the hidden size ``D``.
        tied: share one ``Parameter`` between the embedding and the output layer.
        init_std: redraw the embedding table from $\mathcal{N}(0, \text{init\_std}^2)$, GPT-2's 0.02 by
            default, so that a tied head starts with small logits; ``None`` keeps the $\mathcal{N}(0, 1)$
            of ``nn.Embedding``.

    Attributes:
        embed: an [`Embedding`][torchenstein.nn.embeddings.Embedding] ``(V, D)``.
        mix: a ``Linear(D, D)`` with a tanh, standing in for the layers of a real model.
        head: a ``Linear(D, V, bias=False)`` that turns hidden states into logits.

    Examples:
        >>> model = TinyLanguageModel(vocab_size=7, embedding_dim=3)
        >>> model(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 7])
        >>> model.head.weight is model.embed.weight
        True
    """

    def __init__(self, vocab_size: int, embedding_dim: int, tied: bool = True, init_std: float | None = 0.02) -> None:
        super().__init__()
        self.embed = Embedding(vocab_size, embedding_dim)
        if init_std is not None:
            # The table is also the output layer when tied: its scale is the scale of the first logits.
            nn.init.normal_(self.embed.weight, std=init_std)
        self.mix = nn.Linear(embedding_dim, embedding_dim)
        self.head = nn.Linear(embedding_dim, vocab_size, bias=False)
        if tied:
            # Linear stores its weight as (out_features, in_features) = (V, D): the embedding's own shape.
            # Assigning the Parameter registers the same object under a second name; the head's own
            # random weight is dropped.
            self.head.weight = self.embed.weight

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.mix(self.embed(input)))  # (B, T, D)
        return self.head(hidden)  # (B, T, V)


def plot_one_hot_lookup(*, ids: tuple[int, ...] = (3, 0, 3, 5), num_embeddings: int = 6, embedding_dim: int = 4) -> Figure:
    """Draw ``one_hot(ids) @ weight = weight[ids]`` as three grids, the used rows outlined.

    Args:
        ids: the token ids to embed.
        num_embeddings: rows of the table.
        embedding_dim: columns of the table.

    Returns:
        A figure with three panels: the one-hot matrix, the table and the output.

    Raises:
        ValueError: if ``ids`` is empty or holds an id outside ``[0, num_embeddings)``.

    Examples:
        >>> fig = plot_one_hot_lookup(ids=(1, 0), num_embeddings=2, embedding_dim=2)
        >>> len(fig.axes)
        3
    """
    if not ids or any(not 0 <= i < num_embeddings for i in ids):
        raise ValueError(f"ids must be a non-empty tuple of ids in [0, {num_embeddings}), got {ids!r}")
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Rectangle

    weight = torch.randn(num_embeddings, embedding_dim, generator=torch.Generator().manual_seed(0)).round(decimals=1)
    token_ids = torch.tensor(ids)
    one_hot = one_hot_by_scatter(token_ids, num_embeddings).float()  # (T, V)
    # Negative numbers blue, positive ones orange-red, zero white: one scale for the table and the output.
    diverging = LinearSegmentedColormap.from_list("embedding", [PALETTE[3], "white", PALETTE[2]])
    ones = LinearSegmentedColormap.from_list("one_hot", ["white", PALETTE[0]])
    limit = float(weight.abs().max())
    rows, picked = [f"row {v}" for v in range(num_embeddings)], [f"row {i}" for i in ids]
    panels = [
        (f"one_hot(ids)  ({len(ids)}, {num_embeddings})", one_hot, ones, 0.0, 1.0, "{:.0f}", [f"id {i}" for i in ids]),
        (f"@ weight  ({num_embeddings}, {embedding_dim})", weight, diverging, -limit, limit, "{:.1f}", rows),
        (f"= weight[ids]  ({len(ids)}, {embedding_dim})", weight[token_ids], diverging, -limit, limit, "{:.1f}", picked),
    ]
    fig, axes = new_figure(1, 3, width=8.5, height=3.2)
    for ax, (title, values, cmap, low, high, fmt, labels) in zip(axes, panels, strict=True):
        ax.grid(False)
        ax.set_yticks(range(len(labels)), labels)
        ax.imshow(values.numpy(), cmap=cmap, vmin=low, vmax=high)
        for r, row in enumerate(values.tolist()):
            for c, value in enumerate(row):
                ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.spines[["left", "bottom"]].set_visible(False)
    # Outline every row of the table that some id picks: the only rows the lookup ever reads.
    for row in sorted(set(ids)):
        axes[1].add_patch(Rectangle((-0.5, row - 0.5), embedding_dim, 1, fill=False, edgecolor=PALETTE[0], linewidth=2.5))
    return fig


def plot_embedding_similarity(*, num_embeddings: int = 12, dims: tuple[int, ...] = (4, 256), seed: int = 0) -> Figure:
    """Draw the cosine similarities between the rows of fresh embedding tables of different widths.

    Args:
        num_embeddings: rows of each table.
        dims: one ``embedding_dim`` per panel.
        seed: seed for the tables.

    Returns:
        A figure with one heatmap per entry of ``dims`` and a colour bar.

    Raises:
        ValueError: if ``dims`` is empty.

    Examples:
        >>> fig = plot_embedding_similarity(num_embeddings=3, dims=(2, 8))
        >>> len(fig.axes)
        3
    """
    if not dims:
        raise ValueError("dims must name at least one embedding_dim, got an empty tuple")
    from matplotlib.colors import LinearSegmentedColormap

    diverging = LinearSegmentedColormap.from_list("similarity", [PALETTE[3], "white", PALETTE[2]])
    fig, axes = new_figure(1, len(dims), width=3.6 * len(dims) + 1.0, height=3.6)
    for ax, dim in zip(axes, dims, strict=True):
        # A private copy of the random state: drawing the figure leaves the caller's generator untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unit = F.normalize(Embedding(num_embeddings, dim).weight.detach(), dim=1)  # (V, D), rows of length 1
        sims = unit @ unit.T  # (V, V): the cosine similarity of every pair of rows
        off_diagonal = sims[~torch.eye(num_embeddings, dtype=torch.bool)].abs().mean().item()
        ax.grid(False)
        image = ax.imshow(sims.numpy(), cmap=diverging, vmin=-1.0, vmax=1.0)
        ax.set(title=f"embedding_dim = {dim}\nmean |cos| off the diagonal = {off_diagonal:.2f}", xlabel="token id")
        ax.title.set_fontsize(10)
    axes[0].set_ylabel("token id")
    fig.colorbar(image, ax=axes, label="cosine similarity")
    return fig


def embedding_bag_mean(input: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Challenge solution: the mean embedding of each bag, like ``F.embedding_bag(..., mode="mean")``.

    Args:
        input: 1-D token ids, the bags one after another.
        offsets: 1-D start position of each bag in ``input``, beginning with 0, non-decreasing.
        weight: the ``(num_embeddings, embedding_dim)`` table.

    Returns:
        A ``(len(offsets), embedding_dim)`` tensor; an empty bag gives zeros.

    Raises:
        TypeError: if ``input`` or ``offsets`` does not hold integers.
        ValueError: if a tensor is not 1-D, or ``offsets`` is not a valid list of starts.

    Examples:
        >>> weight = torch.arange(6.0).reshape(3, 2)
        >>> embedding_bag_mean(torch.tensor([0, 2, 1]), torch.tensor([0, 2, 3]), weight)
        tensor([[2., 3.],
                [2., 3.],
                [0., 0.]])
    """
    _check_ids(input)
    _check_ids(offsets, "offsets")
    if input.ndim != 1 or offsets.ndim != 1 or offsets.numel() == 0:
        shapes = f"{tuple(input.shape)} and {tuple(offsets.shape)}"
        raise ValueError(f"input and offsets must be 1-D, offsets with at least one bag, got shapes {shapes}")
    ends = torch.cat([offsets[1:], offsets.new_tensor([input.numel()])])
    lengths = ends - offsets  # (num_bags,)
    if offsets[0] != 0 or (lengths < 0).any():
        raise ValueError(f"offsets must start at 0 and never decrease or pass len(input), got {offsets.tolist()}")
    # (N,): the bag each id belongs to, so that the rows of one bag can be added up together.
    bag_of_id = torch.repeat_interleave(torch.arange(offsets.numel(), device=input.device), lengths.long())
    rows = embedding(input, weight)  # (N, D)
    sums = rows.new_zeros(offsets.numel(), weight.shape[1]).index_add(0, bag_of_id, rows)  # (num_bags, D)
    # An empty bag has a sum of zero; dividing by 1 instead of 0 keeps it zero rather than NaN.
    return sums / lengths.clamp(min=1).unsqueeze(1).to(sums.dtype)


def check_embedding_bag_mean(candidate: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``embedding_bag_mean``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_embedding_bag_mean(embedding_bag_mean)
    """
    generator = torch.Generator().manual_seed(3)
    # Empty bags in the middle and at the end, one id three times, no ids at all.
    cases = [([1, 2, 4, 4, 3], [0, 2]), ([1, 2, 4, 4, 3], [0, 2, 2, 5]), ([0, 0, 0], [0]), ([5], [0, 1]), ([], [0, 0])]
    for values, starts in cases:
        input, offsets = torch.tensor(values, dtype=torch.long), torch.tensor(starts, dtype=torch.long)
        weight = torch.randn(6, 3, generator=generator, dtype=torch.float64)
        where = f"input={values}, offsets={starts}"
        mine, theirs = weight.clone().requires_grad_(), weight.clone().requires_grad_()
        got = candidate(input, offsets, mine)
        expected = F.embedding_bag(input, theirs, offsets, mode="mean")
        assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert not got.isnan().any(), f"{where}: NaN in the result (an empty bag must give zeros, not 0/0)"
        torch.testing.assert_close(got, expected, msg=lambda m, where=where: f"{where}: wrong means. {m}")
        assert got.requires_grad, f"{where}: the result does not depend on weight through autograd"
        upstream = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
        (got * upstream).sum().backward()
        (expected * upstream).sum().backward()
        torch.testing.assert_close(mine.grad, theirs.grad, msg=lambda m, where=where: f"{where}: wrong gradient. {m}")


def tie_embedding_to_head(embedding: nn.Module, head: nn.Linear) -> nn.Linear:
    """Challenge solution: make ``head`` share the embedding's weight ``Parameter``, and return ``head``.

    Args:
        embedding: a module with a ``weight`` parameter of shape ``(V, D)`` (``nn.Embedding`` or ours).
        head: an ``nn.Linear(D, V)``; its bias, if any, is kept.

    Returns:
        ``head``, now with ``head.weight is embedding.weight``.

    Raises:
        TypeError: if ``head`` is not an ``nn.Linear`` or ``embedding`` has no weight parameter.
        ValueError: if the shapes do not match.

    Examples:
        >>> emb, head = nn.Embedding(5, 2), nn.Linear(2, 5)
        >>> tie_embedding_to_head(emb, head).weight is emb.weight
        True
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    weight = getattr(embedding, "weight", None)
    if not isinstance(weight, nn.Parameter):
        raise TypeError(f"embedding must have a weight Parameter, got {type(weight).__name__}")
    if head.weight.shape != weight.shape:
        raise ValueError(
            f"head.weight must have the embedding's shape {tuple(weight.shape)} (Linear(D, V) for an (V, D) "
            f"table), got {tuple(head.weight.shape)}"
        )
    # Assign the Parameter itself: one object, two names. Copying values would make two parameters.
    head.weight = weight
    return head


def check_tie_embedding_to_head(candidate: Callable[[nn.Module, nn.Linear], nn.Linear]) -> None:
    """Check an attempt at ``tie_embedding_to_head``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_tie_embedding_to_head(tie_embedding_to_head)
    """
    for make_embedding, label, bias in [(nn.Embedding, "nn.Embedding", False), (Embedding, "our Embedding", True)]:
        emb, head = make_embedding(7, 3), nn.Linear(3, 7, bias=bias)
        where = f"{label}(7, 3) with nn.Linear(3, 7, bias={bias})"
        table, old_bias = emb.weight.detach().clone(), head.bias
        returned = candidate(emb, head)
        assert returned is head, f"{where}: return the head itself, got {type(returned).__name__}"
        assert head.weight is emb.weight, f"{where}: head.weight must BE the embedding's Parameter, not a copy"
        assert torch.equal(emb.weight, table), f"{where}: the embedding's values changed; the head takes them"
        assert head.bias is old_bias, f"{where}: the head's bias must be left alone"
        count = sum(p.numel() for p in nn.ModuleList([emb, head]).parameters())
        assert count == 21 + (7 if bias else 0), f"{where}: {count} parameters; a tied table counts once"
    try:
        candidate(nn.Embedding(7, 3), nn.Linear(3, 8))
    except ValueError:
        pass
    else:
        raise AssertionError("an nn.Linear(3, 8) cannot be tied to a (7, 3) table: expected a ValueError")
