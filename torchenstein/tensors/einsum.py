r"""
# Einstein Summation: One Incantation to Multiply Them All

!!! torchenstein "The Professor speaks"
    Dot products, outer products, matrix products, traces, transposes: lesser scientists keep a drawer
    of separate tools. I keep one string. Write down which index lives on which axis, say which indices
    survive, and `torch.einsum` does the rest. Today we learn to speak that tongue, and then we build the
    interpreter ourselves, because a spell you cannot take apart is a spell that can be cast on *you*.

**You will learn to**

- read and write einsum notation: subscripts per operand, `->` and the output, repeated and missing indices;
- predict the output of implicit mode (no arrow), including when it quietly transposes;
- translate the everyday operations (dot, outer, matrix and batched products, trace, diagonal, sums) into
  einsum and back into plain PyTorch;
- write `einsum` from scratch for one and two operands (parse, validate, align, multiply, sum) and prove
  it equal to `torch.einsum`, gradients included;
- dodge the traps: the output index you forgot, the one you wrote twice, and einsum where a reshape was needed.

## The notation

An einsum equation gives every axis of every operand a one-letter name (a **subscript**, or index),
separates the operands with commas, and after an arrow `->` names the axes of the output. Two rules do
all the work:

1. an index shared by several inputs is **one** axis: the operands are multiplied element by element
   along it;
2. an index missing from the output is **summed over** (contracted).

So `"ij,jk->ik"` says: $A$ has axes $i, j$, $B$ has axes $j, k$; multiply along the shared $j$ and sum it
away, because the output keeps only $i$ and $k$. That is the matrix product, written as the formula it is:

$$
C_{ik} = \sum_j A_{ij} \, B_{jk}
$$

In general, with the output indices on the left and the contracted ones under the sum,

$$
\text{out}[\text{output indices}] = \sum_{\text{contracted indices}} \; \prod_{\text{operands } o} \text{operand}_o[\text{its indices}]
$$

```pycon
>>> import torch
>>> A = torch.tensor([[1, 2], [3, 4]])
>>> B = torch.tensor([[5, 6], [7, 8]])
>>> torch.einsum("ij,jk->ik", A, B)
tensor([[19, 22],
        [43, 50]])
>>> torch.equal(torch.einsum("ij,jk->ik", A, B), A @ B)
True

```

The letters are arbitrary (`"ab,bc->ac"` is the same spell), but an index repeated **within one operand**
means something new: `"ii->i"` walks the diagonal, where both axes have the same index, and `"ii->"` sums
that diagonal, the trace.

![Three grids: A with axes i and k, B with axes k and j, and C with axes i and j. Row i of A and column j of B are highlighted and meet in cell (i, j) of C; the shared index k, missing from the output, is marked as summed away.](plot_einsum_matmul.svg)

## Implicit mode: no arrow

Leave out `->` and PyTorch chooses the output itself: every index that appears **exactly once** in the
whole equation, in **alphabetical** order (character order, so uppercase `A`-`Z` come before lowercase).
Indices that appear twice or more are summed. Handy, and dangerous: `"ij"` returns the matrix, but `"ji"`
returns its *transpose*, because the output is `"ij"` again and $i$ now names the columns.

```pycon
>>> M = torch.arange(6).reshape(2, 3)
>>> torch.einsum("ij", M).shape, torch.einsum("ji", M).shape
(torch.Size([2, 3]), torch.Size([3, 2]))
>>> torch.equal(torch.einsum("ji", M), M.T)
True
>>> torch.equal(torch.einsum("ij,jk", A, B), A @ B)
True
>>> torch.einsum("ii", A)  # the trace
tensor(5)
>>> torch.einsum("ij,ij", A, B)  # every index twice: a full sum, not the element-wise product
tensor(70)

```

## A gallery of spells

Each line of the table is one einsum and the plain PyTorch it replaces:

| einsum | what it computes | plain PyTorch |
| --- | --- | --- |
| `"i,i->"` | dot product | `torch.dot(x, y)` |
| `"i,j->ij"` | outer product | `torch.outer(x, y)` |
| `"ij,j->i"` | matrix times vector | `A @ v` |
| `"ij,jk->ik"` | matrix product | `A @ B` |
| `"bij,bjk->bik"` | batched matrix product | `torch.bmm(P, Q)` |
| `"ij->ji"` | transpose | `A.T` |
| `"abc->cab"` | permute | `T.permute(2, 0, 1)` |
| `"ii->"` | trace | `torch.trace(S)` |
| `"ii->i"` | diagonal | `torch.diagonal(S)` |
| `"ij->"` | sum of everything | `A.sum()` |
| `"ij->i"` | row sums | `A.sum(dim=1)` |
| `"ij,ij->ij"` | element-wise (Hadamard) product | `A * B` |

Integer tensors make every equality exact, so `torch.equal` can vouch for each line:

```pycon
>>> x, y, v = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]), torch.tensor([1, 0, 2])
>>> A, B = torch.arange(6).reshape(2, 3), torch.arange(6, 12).reshape(2, 3)
>>> C, S = torch.arange(12).reshape(3, 4), torch.arange(9).reshape(3, 3)
>>> P, Q = torch.arange(24).reshape(2, 3, 4), torch.arange(40).reshape(2, 4, 5)
>>> T = torch.arange(24).reshape(2, 3, 4)
>>> torch.equal(torch.einsum("i,i->", x, y), torch.dot(x, y))
True
>>> torch.equal(torch.einsum("i,j->ij", x, y), torch.outer(x, y))
True
>>> torch.equal(torch.einsum("ij,j->i", A, v), A @ v)
True
>>> torch.equal(torch.einsum("ij,jk->ik", A, C), A @ C)
True
>>> torch.equal(torch.einsum("bij,bjk->bik", P, Q), torch.bmm(P, Q))
True
>>> torch.equal(torch.einsum("ij->ji", A), A.T)
True
>>> torch.equal(torch.einsum("abc->cab", T), T.permute(2, 0, 1))
True
>>> torch.equal(torch.einsum("ii->", S), torch.trace(S))
True
>>> torch.equal(torch.einsum("ii->i", S), torch.diagonal(S))
True
>>> torch.equal(torch.einsum("ij->", A), A.sum())
True
>>> torch.equal(torch.einsum("ij->i", A), A.sum(dim=1))
True
>>> torch.equal(torch.einsum("ij,ij->ij", A, B), A * B)
True

```

## Einsum from scratch

Our [`einsum`][torchenstein.tensors.einsum.einsum] takes PyTorch's arguments, `einsum(equation, *operands)`,
for one or two operands, and works in three steps.

**Step 1: parse and validate.** [`parse_equation`][torchenstein.tensors.einsum.parse_equation] reads the
equation against the operands' shapes and returns an
[`EinsumSpec`][torchenstein.tensors.einsum.EinsumSpec]: the indices of each input, those of the output
(chosen by the implicit rule when there is no arrow) and the size of every index. It refuses anything but
letters, spaces, commas, one `->` and `...`; a term whose index count differs from its operand's number of
dimensions; an output index that no input has, or that appears twice; and sizes that disagree. Like
PyTorch, an index shared by two operands may have size 1 in one of them, which broadcasts; an index
repeated within **one** operand takes a diagonal, so there the sizes must be equal.

```pycon
>>> from torchenstein.tensors.einsum import einsum, parse_equation
>>> spec = parse_equation("ij,jk->ik", [(2, 3), (3, 4)])
>>> spec
EinsumSpec(inputs=(('i', 'j'), ('j', 'k')), output=('i', 'k'), sizes={'i': 2, 'j': 3, 'k': 4})
>>> spec.contracted
('j',)
>>> parse_equation("ba", [(2, 3)]).output
('a', 'b')
>>> parse_equation("ij,jk->ik", [(2, 3), (4, 5)])
Traceback (most recent call last):
...
ValueError: einsum equation 'ij,jk->ik': subscript 'j' has size 3 in an earlier operand but 4 in operand 1; sizes must match (or be 1, which broadcasts)

```

**Step 2: align.** Put every index on one shared axis order: the output indices first, then the contracted
ones. [`align_operand`][torchenstein.tensors.einsum.align_operand] brings each operand into that order:
a repeated index first becomes one axis through `torch.diagonal`, then `permute` sorts the axes, and an
index the operand lacks becomes an axis of size 1. All three are views, so nothing is copied yet.

```pycon
>>> from torchenstein.tensors.einsum import align_operand
>>> order = spec.output + spec.contracted
>>> order
('i', 'k', 'j')
>>> align_operand(torch.zeros(2, 3), ("i", "j"), order).shape
torch.Size([2, 1, 3])
>>> align_operand(torch.zeros(3, 4), ("j", "k"), order).shape
torch.Size([1, 4, 3])
>>> align_operand(torch.arange(9).reshape(3, 3), ("i", "i"), ("i",))
tensor([0, 4, 8])

```

**Step 3: multiply and sum.** Now the aligned operands broadcast against each other: their product has
one axis per index, and summing the trailing contracted axes leaves the output, already in order. The
whole evaluation is the formula above, read literally; [`einsum`][torchenstein.tensors.einsum.einsum]
does exactly this:

![A table with one column per index in the shared order i, k, j. Operand A aligned to (2, 1, 3) and operand B aligned to (1, 4, 3) broadcast to a product of shape (2, 4, 3); summing the contracted column j leaves the output (2, 4).](plot_einsum_alignment.svg)

```pycon
>>> _ = torch.manual_seed(0)
>>> A, B = torch.randn(2, 3), torch.randn(3, 4)
>>> product = align_operand(A, ("i", "j"), order) * align_operand(B, ("j", "k"), order)
>>> product.shape, product.sum(dim=-1).shape
(torch.Size([2, 4, 3]), torch.Size([2, 4]))
>>> torch.allclose(product.sum(dim=-1), A @ B)
True
>>> torch.allclose(einsum("ij,jk->ik", A, B), torch.einsum("ij,jk->ik", A, B))
True
>>> S = torch.randn(3, 3)
>>> torch.allclose(einsum("ii", S), torch.einsum("ii", S))
True
>>> einsum("ji", A).shape  # implicit mode transposes, as PyTorch's does
torch.Size([3, 2])
>>> einsum("ij,jk->ii", A, B)
Traceback (most recent call last):
...
ValueError: einsum equation 'ij,jk->ii': output subscript 'i' appears more than once; an output axis holds one index

```

The tests in `tests/test_einsum.py` hold it against `torch.einsum` on random equations of one and two
operands (repeated indices, broadcasting, implicit mode, ellipses, empty axes, non-contiguous operands,
every float and integer dtype) and check its gradients with `torch.autograd.gradcheck`.

The result's dtype is the operands', with one rule borrowed from PyTorch's implementation. Before it
multiplies, `torch.einsum` sums away, in each operand on its own, the contracted indices that only this
operand has (for one operand: all of them), and `sum` turns integers and bools into `int64`. So a
reduction of an `int32` tensor comes back as `int64`, and a pure rearrangement keeps `int32`; ours
follows the same rule:

```pycon
>>> M32 = torch.arange(6, dtype=torch.int32).reshape(2, 3)
>>> for equation in ("ij->", "ij->i", "ij->ji"):
...     print(f"{equation:7} ours: {einsum(equation, M32).dtype}  torch: {torch.einsum(equation, M32).dtype}")
ij->    ours: torch.int64  torch: torch.int64
ij->i   ours: torch.int64  torch: torch.int64
ij->ji  ours: torch.int32  torch: torch.int32

```

**Where it differs from PyTorch.** In `float16` and `bfloat16` ours multiplies and sums in `float32` and
rounds once at the end; `torch.einsum` rounds its intermediate results (each operand's own sums, the
products) to the 16-bit type on the way, so the two can differ by a few units in the last place, and
ours is the closer to the exact answer. And where one integer operand was summed on its own while the
other still shares a contracted index with it (`"ij,j->"` on `int32`), `torch.einsum` refuses to
multiply the mixed `int64` and `int32` operands; ours returns `int64`.

## The ellipsis

`...` stands for "whatever axes are left", so one equation serves any number of batch dimensions:
`"...ij,...jk->...ik"` is a matrix product batched over anything. Each operand may hold one ellipsis;
the axes it covers line up **from the right** between operands and broadcast like ordinary shapes. In
implicit mode they come first in the output. One rule differs from NumPy: when an explicit output leaves
`...` out, PyTorch does not complain, it sums those axes away. Our `einsum` supports all of it, by giving
each axis under an ellipsis a name of its own (`'...0'`, `'...1'`, counted from the left of the broadcast
ellipsis shape) and then treating it like any index:

```pycon
>>> P, Q = torch.randn(5, 2, 3), torch.randn(3, 4)
>>> parse_equation("...ij,...jk", [(5, 2, 3), (3, 4)]).output
('...0', 'i', 'k')
>>> torch.allclose(einsum("...ij,...jk", P, Q), P @ Q)
True
>>> einsum("...ij->ij", P).shape
torch.Size([2, 3])
>>> torch.allclose(einsum("...ij->ij", P), P.sum(0))  # the batch axes were summed away
True

```

## The price of doing it literally

For two operands PyTorch never builds our big product tensor: it permutes and reshapes them so that the
contraction becomes one batched matrix product (`bmm`), which sums as it goes. Ours materialises one
element per combination of **all** indices before summing: for a square matrix product that is every
$(i, k, j)$, as many times more numbers than the output holds as the contracted $j$ is long.

```pycon
>>> import math
>>> spec = parse_equation("ij,jk->ik", [(64, 64), (64, 64)])
>>> product_numel = math.prod(spec.sizes.values())
>>> output_numel = math.prod(spec.sizes[index] for index in spec.output)
>>> product_numel, output_numel, product_numel // output_numel
(262144, 4096, 64)

```

Time the two on your own machine with [`time_it`][torchenstein.lab.time_it] (the numbers belong to it,
so this page does not print them); the gap grows with the contracted length:

```python
from torchenstein.lab import time_it

A, B = torch.randn(64, 64), torch.randn(64, 64)
ours, theirs = time_it(lambda: einsum("ij,jk->ik", A, B)), time_it(lambda: torch.einsum("ij,jk->ik", A, B))
print(f"ours {ours * 1e6:.0f} us, torch.einsum {theirs * 1e6:.0f} us")
```

That is also why ours stops at two operands: with three or more, the full product grows with every index
of every operand, and the order in which pairs are contracted decides the cost. That is the
subject of the next lesson, *Advanced einsum*.

```pycon
>>> einsum("ij,jk,kl->il", A, B, A)
Traceback (most recent call last):
...
NotImplementedError: einsum equation 'ij,jk,kl->il': this einsum takes one or two operands, got 3; contract them two at a time (see the lesson Advanced einsum)

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the implicit transpose"
    Dr. Hammer labels his `(tokens, features)` matrix `"tf"` and leaves out the arrow, "because the output
    is obviously the input". Implicit mode sorts the output alphabetically into `"ft"`, so he gets the
    transpose. Always write the arrow.

    ```pycon
    >>> X = torch.randn(5, 8)  # (tokens, features)
    >>> torch.einsum("tf", X).shape
    torch.Size([8, 5])
    >>> torch.einsum("tf->tf", X).shape
    torch.Size([5, 8])

    ```

!!! hammer "Dr. Hammer's trap: the forgotten index"
    A batched matrix product: Dr. Hammer writes `"bij,bjk->ik"`. The batch index `b` is missing from the
    output, so it is summed: the shape looks like one matrix and nothing complains. Every index you want
    to keep must be written after the arrow.

    ```pycon
    >>> P, Q = torch.randn(4, 2, 3), torch.randn(4, 3, 5)
    >>> torch.einsum("bij,bjk->ik", P, Q).shape
    torch.Size([2, 5])
    >>> torch.allclose(torch.einsum("bij,bjk->ik", P, Q), (P @ Q).sum(0), atol=1e-6)
    True
    >>> torch.einsum("bij,bjk->bik", P, Q).shape
    torch.Size([4, 2, 5])

    ```

!!! hammer "Dr. Hammer's trap: an index twice in the output"
    Dr. Hammer wants the diagonal of `S` as a diagonal *matrix* and writes `"ii->ii"`. An output axis holds
    one index, and one index cannot be two axes: einsum refuses. Take the diagonal with einsum, then build
    the matrix with `torch.diag_embed`.

    ```pycon
    >>> S = torch.arange(9.).reshape(3, 3)
    >>> einsum("ii->ii", S)
    Traceback (most recent call last):
    ...
    ValueError: einsum equation 'ii->ii': output subscript 'i' appears more than once; an output axis holds one index
    >>> torch.diag_embed(torch.einsum("ii->i", S))
    tensor([[0., 0., 0.],
            [0., 4., 0.],
            [0., 0., 8.]])

    ```

!!! hammer "Dr. Hammer's trap: einsum where a reshape is needed"
    Merging attention heads, `(B, h, T, d) -> (B, T, h * d)`, Dr. Hammer writes `"bhtd->btd"`, hoping einsum
    will "fold" `h` into `d`. Einsum can permute axes, take diagonals and sum, but it never merges or splits
    an axis: `h` is missing from the output, so the heads are **added together**. Permute with einsum (or
    `transpose`), then `reshape`.

    ```pycon
    >>> heads = torch.randn(2, 3, 5, 4)  # (B, h, T, d)
    >>> torch.einsum("bhtd->btd", heads).shape
    torch.Size([2, 5, 4])
    >>> merged = torch.einsum("bhtd->bthd", heads).reshape(2, 5, 3 * 4)
    >>> merged.shape
    torch.Size([2, 5, 12])
    >>> torch.equal(merged[:, :, 4:8], heads[:, 1])  # channels 4:8 are head 1
    True

    ```

## Challenges

1. **A batch of bilinear forms.** Write `batched_bilinear_form(x, A, y)`: for `x` of shape `(B, n)`, `A` of
   shape `(n, m)` and `y` of shape `(B, m)`, return the `(B,)` tensor of $x_b^\top A \, y_b$, with a single
   `torch.einsum` call (three operands are fine for PyTorch's).
2. **A batch of traces.** Write `batched_trace(input)`: the trace of every matrix in a `(..., n, n)` tensor,
   returning shape `(...)`. Raise `ValueError` if `input` has fewer than two dimensions or its last two
   differ (`torch.einsum` would raise a `RuntimeError`; we name the problem ourselves).
3. **Say the output out loud.** Write `explicit_einsum_equation(equation)`: return the equation with the
   arrow and the output PyTorch would choose, `"ba"` becoming `"ba->ab"`, `"ij,jk"` becoming
   `"ij,jk->ik"`, and `"...ij"` becoming `"...ij->...ij"`. An equation that already has an arrow comes back
   unchanged.

Check yours with `check_batched_bilinear_form(my_function)` (and likewise for the others), or put them in
a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.tensors import einsum as lesson
>>> lesson.check_batched_bilinear_form(lesson.batched_bilinear_form)
>>> lesson.check_batched_trace(lesson.batched_trace)
>>> lesson.check_explicit_einsum_equation(lesson.explicit_einsum_equation)

```
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ELLIPSIS = "..."
"""The token that stands for every axis an operand's letters do not name."""


def _error(equation: str, problem: str) -> ValueError:
    # Every complaint about an equation names the equation first, so the reader sees what was parsed.
    return ValueError(f"einsum equation {equation!r}: {problem}")


def _term_tokens(term: str, equation: str) -> list[str]:
    # A term is a run of letters with at most one "..." among them; spaces between tokens are ignored,
    # but the three dots of an ellipsis must touch, as in PyTorch.
    tokens, position = [], 0
    while position < len(term):
        char = term[position]
        if char == " ":
            position += 1
        elif char == ".":
            if term[position : position + 3] != _ELLIPSIS:
                raise _error(equation, f"a '.' in the term {term.strip()!r} is not part of an ellipsis '...'")
            if _ELLIPSIS in tokens:
                raise _error(equation, f"the term {term.strip()!r} has more than one ellipsis '...'")
            tokens.append(_ELLIPSIS)
            position += 3
        else:
            tokens.append(char)
            position += 1
    return tokens


def _tokenize(equation: object) -> tuple[list[list[str]], list[str] | None]:
    # Split an equation into the token lists of its input terms and of its output (None without an arrow).
    if not isinstance(equation, str):
        raise TypeError(f"equation must be a str such as 'ij,jk->ik', got {type(equation).__name__}")
    for position, char in enumerate(equation):
        if char not in string.ascii_letters and char not in " .,->":
            raise _error(
                equation, f"invalid character {char!r} at position {position}; subscripts must be letters a-z or A-Z"
            )
    if equation.count("->") > 1:
        raise _error(equation, "more than one arrow '->'")
    inputs, arrow, output = equation.partition("->")
    if any(char in "->" for char in inputs + output):
        raise _error(equation, "'-' and '>' may only appear together, as the arrow '->'")
    if "," in output:
        raise _error(equation, "the output (after '->') cannot contain ','")
    terms = [_term_tokens(term, equation) for term in inputs.split(",")]
    return terms, (_term_tokens(output, equation) if arrow else None)


def _implicit_output(terms: list[list[str]]) -> list[str]:
    # Implicit mode: the ellipsis first if any term has one, then every letter that appears exactly once
    # in the whole equation, sorted by character code (so uppercase comes before lowercase).
    counts = Counter(token for tokens in terms for token in tokens if token != _ELLIPSIS)
    ellipsis = [_ELLIPSIS] if any(_ELLIPSIS in tokens for tokens in terms) else []
    return ellipsis + sorted(letter for letter, count in counts.items() if count == 1)


@dataclass(frozen=True)
class EinsumSpec:
    """A parsed einsum equation: which index sits on which axis, and how long each index is.

    The axes covered by an ellipsis get indices of their own, ``'...0'``, ``'...1'``, and so on, numbered
    from the left of the broadcast ellipsis shape, so that they can be treated like letters.

    Attributes:
        inputs: per operand, the index of each of its axes, in axis order (repeats allowed).
        output: the index of each output axis, in order (no repeats).
        sizes: the length of every index, after broadcasting sizes of 1.
    """

    inputs: tuple[tuple[str, ...], ...]
    output: tuple[str, ...]
    sizes: dict[str, int]

    @property
    def contracted(self) -> tuple[str, ...]:
        """The indices that are summed over: in some input but not in the output, by first appearance."""
        seen = dict.fromkeys(index for labels in self.inputs for index in labels)
        return tuple(index for index in seen if index not in self.output)


def parse_equation(equation: str, shapes: Sequence[Sequence[int]]) -> EinsumSpec:
    """Parse and validate an einsum equation against the shapes of its operands.

    Args:
        equation: subscripts such as ``"ij,jk->ik"``: ASCII letters, one term per operand separated by
            ``,``, at most one ``...`` per term, and optionally ``->`` followed by the output. Spaces
            between tokens are ignored.
        shapes: one shape per operand.

    Returns:
        The [`EinsumSpec`][torchenstein.tensors.einsum.EinsumSpec] of the equation; without an arrow, the
        output follows the implicit rule (ellipsis first, then the letters that appear once, sorted).

    Raises:
        TypeError: if ``equation`` is not a string.
        ValueError: naming the equation and the problem, if a character is not allowed, an arrow or an
            ellipsis is malformed, the number of terms is not the number of operands, a term's index count
            does not fit its operand's dimensions, an output index is in no input or appears twice, a
            repeated index spans axes of different sizes, or sizes of one index (or of the ellipsis axes)
            neither match nor broadcast.

    Examples:
        >>> parse_equation("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]).contracted
        ('j',)
        >>> parse_equation("i...->...", [(2, 3, 4)]).output
        ('...0', '...1')
        >>> parse_equation("i,j->ij", [(2, 3), (4,)])
        Traceback (most recent call last):
        ...
        ValueError: einsum equation 'i,j->ij': the term 'i' has 1 subscript(s) but operand 0 has shape (2, 3) (ndim 2)
    """
    terms, output_tokens = _tokenize(equation)
    shapes = [tuple(int(n) for n in shape) for shape in shapes]
    if len(terms) != len(shapes):
        raise _error(equation, f"it has {len(terms)} input term(s) but {len(shapes)} operand(s) were given")
    # How many axes each operand's ellipsis covers: whatever its letters leave over.
    covered = []
    for n, (tokens, shape) in enumerate(zip(terms, shapes, strict=True)):
        term, letters = "".join(tokens), sum(token != _ELLIPSIS for token in tokens)
        if _ELLIPSIS in tokens and letters > len(shape):
            raise _error(equation, f"the term {term!r} has {letters} subscript(s) besides '...' but operand {n} "
                         f"has shape {shape} (ndim {len(shape)})")
        if _ELLIPSIS not in tokens and letters != len(shape):
            raise _error(equation, f"the term {term!r} has {letters} subscript(s) but operand {n} has shape {shape} "
                         f"(ndim {len(shape)})")
        covered.append(len(shape) - letters)
    # Ellipsis axes line up from the right, like broadcast shapes: the last one is '...{rank - 1}'.
    rank = max(covered, default=0)
    ellipsis_labels = tuple(f"...{d}" for d in range(rank))
    inputs = []
    for tokens, k in zip(terms, covered, strict=True):
        labels: list[str] = []
        for token in tokens:
            labels.extend(ellipsis_labels[rank - k :] if token == _ELLIPSIS else [token])
        inputs.append(tuple(labels))
    sizes: dict[str, int] = {}
    for n, (labels, shape) in enumerate(zip(inputs, shapes, strict=True)):
        own: dict[str, int] = {}
        for label, size in zip(labels, shape, strict=True):
            # An index repeated within one operand selects a diagonal, which only exists on equal sizes.
            if own.get(label, size) != size:
                raise _error(equation, f"subscript {label!r} repeats in operand {n} over axes of sizes "
                             f"{own[label]} and {size}; a repeated subscript takes a diagonal, so they must be equal")
            own[label] = size
        for label, size in own.items():
            # Across operands, a size of 1 broadcasts to the other size, as in element-wise arithmetic.
            if label not in sizes or sizes[label] == 1:
                sizes[label] = size
            elif size not in (1, sizes[label]):
                raise _error(equation, f"subscript {label!r} has size {sizes[label]} in an earlier operand but "
                             f"{size} in operand {n}; sizes must match (or be 1, which broadcasts)")
    output: list[str] = []
    for token in _implicit_output(terms) if output_tokens is None else output_tokens:
        if token == _ELLIPSIS:
            output.extend(ellipsis_labels)
        elif token not in sizes:
            raise _error(equation, f"output subscript {token!r} appears in no input term")
        elif token in output:
            raise _error(equation, f"output subscript {token!r} appears more than once; an output axis holds one index")
        else:
            output.append(token)
    return EinsumSpec(tuple(inputs), tuple(output), sizes)


def align_operand(operand: torch.Tensor, labels: Sequence[str], order: Sequence[str]) -> torch.Tensor:
    """Lay an operand's axes along a shared order of indices, ready to broadcast against the others.

    Args:
        operand: the tensor, one axis per entry of ``labels``.
        labels: the index of each axis of ``operand``; an index may repeat (its diagonal is taken).
        order: every index of the equation, each once, in the order the aligned axes should follow.

    Returns:
        A view of ``operand`` with ``len(order)`` axes: axis ``a`` holds index ``order[a]``, with size 1
        where ``operand`` lacks that index.

    Raises:
        TypeError: if ``operand`` is not a tensor.
        ValueError: if ``labels`` does not name each axis, an index is missing from ``order`` or ``order``
            repeats one, or a repeated index spans axes of different sizes.

    Examples:
        >>> align_operand(torch.zeros(4, 3), ("k", "i"), ("i", "j", "k")).shape
        torch.Size([3, 1, 4])
        >>> align_operand(torch.zeros(2, 5, 2), ("i", "j", "i"), ("j", "i")).shape
        torch.Size([5, 2])
    """
    if not isinstance(operand, torch.Tensor):
        raise TypeError(f"operand must be a torch.Tensor, got {type(operand).__name__}")
    labels, order = list(labels), list(order)
    if len(labels) != operand.ndim:
        raise ValueError(f"labels must name each of the {operand.ndim} axes of operand, got {labels}")
    if len(set(order)) != len(order) or not set(labels) <= set(order):
        raise ValueError(f"order must hold every index of labels {labels} exactly once, got {order}")
    # A repeated index means "the same position on both axes": keep only the diagonal. `diagonal` drops
    # both axes and appends the diagonal as the last one, so the labels follow it there.
    for label in dict.fromkeys(labels):
        while labels.count(label) > 1:
            first = labels.index(label)
            second = labels.index(label, first + 1)
            if operand.size(first) != operand.size(second):
                raise ValueError(f"index {label!r} repeats over axes of sizes {operand.size(first)} and "
                                 f"{operand.size(second)}; a diagonal needs equal sizes")
            operand = operand.diagonal(0, first, second)
            labels = [index for d, index in enumerate(labels) if d not in (first, second)] + [label]
    # Now every index is on one axis: sort the axes into the shared order (a permutation is a view).
    position = {index: a for a, index in enumerate(order)}
    perm = sorted(range(len(labels)), key=lambda d: position[labels[d]])
    operand = operand.permute(perm)
    # Indices this operand lacks become axes of size 1, where broadcasting will stretch it for free.
    size = dict(zip((labels[d] for d in perm), operand.shape, strict=True))
    return operand.reshape([size.get(index, 1) for index in order])  # (len(order) axes)


def einsum(equation: str, *operands: torch.Tensor) -> torch.Tensor:
    """`torch.einsum` from scratch, for one or two operands: align, multiply, sum.

    Args:
        equation: the einsum equation, such as ``"ij,jk->ik"`` (see
            [`parse_equation`][torchenstein.tensors.einsum.parse_equation] for the grammar).
        *operands: one or two tensors of one dtype (or a single list or tuple of them, as PyTorch allows).

    Returns:
        The sum, over the contracted indices, of the product of the operands, with the axes of the output.
        Its dtype is the operands', except that an integer or bool result is ``int64`` wherever
        ``torch.einsum`` sums an operand on its own (as ``sum`` does, PyTorch promotes there).

    Raises:
        TypeError: if an operand is not a tensor, or the operands' dtypes differ.
        ValueError: if the equation is malformed or does not fit the operands (the message names both).
        NotImplementedError: for three or more operands.

    Examples:
        >>> x = torch.tensor([1, 2, 3])
        >>> einsum("i,i->", x, x), einsum("i,j->ij", x, x[:2])
        (tensor(14), tensor([[1, 2],
                [2, 4],
                [3, 6]]))
        >>> einsum("ij->", x)
        Traceback (most recent call last):
        ...
        ValueError: einsum equation 'ij->': the term 'ij' has 2 subscript(s) but operand 0 has shape (3,) (ndim 1)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for n, operand in enumerate(operands):
        if not isinstance(operand, torch.Tensor):
            raise TypeError(f"operands[{n}] must be a torch.Tensor, got {type(operand).__name__}")
    if len(operands) > 2:
        raise NotImplementedError(f"einsum equation {equation!r}: this einsum takes one or two operands, got "
                                  f"{len(operands)}; contract them two at a time (see the lesson Advanced einsum)")
    if len({operand.dtype for operand in operands}) > 1:
        raise TypeError(f"einsum equation {equation!r}: operands must share one dtype, got "
                        f"{[operand.dtype for operand in operands]}")
    spec = parse_equation(equation, [operand.shape for operand in operands])
    # One shared axis order: the output's indices first, so that after the sum they are already in place.
    order = spec.output + spec.contracted
    aligned = [align_operand(operand, labels, order) for operand, labels in zip(operands, spec.inputs, strict=True)]
    # The dtype to compute in, and to return: see `_einsum_dtype` at the foot of the module.
    compute, result = _einsum_dtype(aligned, len(spec.output))
    aligned = [operand.to(compute) for operand in aligned]
    # Broadcasting multiplies along shared indices and pairs up the others: one axis per index.
    product = aligned[0] if len(aligned) == 1 else aligned[0] * aligned[1]  # (*output sizes, *contracted sizes)
    if spec.contracted:
        # Summing the trailing axes contracts them; `dtype=` keeps `sum` from widening on its own.
        product = product.sum(dim=tuple(range(len(spec.output), len(order))), dtype=compute)  # (*output sizes)
    return product.to(result)


def batched_bilinear_form(x: torch.Tensor, A: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Challenge solution: ``x[b] @ A @ y[b]`` for every ``b``, in one einsum.

    Args:
        x: shape ``(B, n)``.
        A: shape ``(n, m)``.
        y: shape ``(B, m)``.

    Returns:
        Shape ``(B,)``: $\sum_{i, j} x_{bi} A_{ij} y_{bj}$ for each ``b``.

    Raises:
        ValueError: if the shapes do not fit together.

    Examples:
        >>> batched_bilinear_form(torch.tensor([[1, 2]]), torch.eye(2, dtype=torch.long), torch.tensor([[3, 4]]))
        tensor([11])
    """
    if x.ndim != 2 or A.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or (x.shape[1], y.shape[1]) != A.shape:
        raise ValueError(f"expected x (B, n), A (n, m), y (B, m), got shapes {tuple(x.shape)}, {tuple(A.shape)}, {tuple(y.shape)}")
    # b is in the output, so each batch element keeps its own number; i and j are summed.
    return torch.einsum("bi,ij,bj->b", x, A, y)


def check_batched_bilinear_form(candidate: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``batched_bilinear_form``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_batched_bilinear_form(batched_bilinear_form)
    """
    generator = torch.Generator().manual_seed(5)
    for B, n, m in [(4, 3, 5), (1, 1, 1), (3, 2, 2), (2, 6, 1), (0, 3, 4)]:
        x, A, y = (torch.randn(*s, generator=generator, dtype=torch.float64) for s in [(B, n), (n, m), (B, m)])
        got = candidate(x, A, y)
        where = f"x {(B, n)}, A {(n, m)}, y {(B, m)}"
        assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == (B,), f"{where}: expected shape {(B,)}, got {tuple(got.shape)}; is b in the output?"
        expected = ((x @ A) * y).sum(-1)
        assert torch.allclose(got, expected), f"{where}: wrong values; does A's first index pair with x and its second with y?"


def batched_trace(input: torch.Tensor) -> torch.Tensor:
    """Challenge solution: the trace of every matrix in a ``(..., n, n)`` batch.

    Args:
        input: shape ``(..., n, n)``.

    Returns:
        Shape ``(...)``: the sum of each matrix's diagonal.

    Raises:
        ValueError: if ``input`` has fewer than two dimensions or its last two differ.

    Examples:
        >>> batched_trace(torch.arange(8).reshape(2, 2, 2))
        tensor([ 3, 11])
    """
    if input.ndim < 2 or input.shape[-1] != input.shape[-2]:
        raise ValueError(f"input must have shape (..., n, n), got shape {tuple(input.shape)}")
    # The repeated i walks the diagonal, its absence from the output sums it; '...' keeps every batch axis.
    return torch.einsum("...ii->...", input)


def check_batched_trace(candidate: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``batched_trace``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_batched_trace(batched_trace)
    """
    generator = torch.Generator().manual_seed(7)
    for shape in [(3, 3), (2, 4, 4), (2, 3, 1, 1), (5, 2, 2), (0, 3, 3), (1, 0, 0)]:
        input = torch.randint(-9, 10, shape, generator=generator)
        got = candidate(input)
        expected = input.diagonal(dim1=-2, dim2=-1).sum(-1)
        assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, f"input {shape}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert torch.equal(got, expected), f"input {shape}: wrong traces; sum the diagonal of the LAST two axes"
    for shape in [(3,), (2, 3), (4, 2, 3)]:
        try:
            candidate(torch.zeros(shape))
        except ValueError:
            continue
        except Exception as err:
            raise AssertionError(f"input {shape}: expected ValueError, got {type(err).__name__}: {err}") from err
        raise AssertionError(f"input {shape} is not a batch of square matrices: expected ValueError, got a result")


def explicit_einsum_equation(equation: str) -> str:
    """Challenge solution: write out the output that implicit mode chooses.

    Args:
        equation: an einsum equation, with or without ``->``.

    Returns:
        ``equation`` itself if it has an arrow, otherwise ``equation + "->" + output`` with the output of
        implicit mode: ``...`` first if any term has it, then the letters that appear exactly once, sorted.

    Raises:
        TypeError: if ``equation`` is not a string.
        ValueError: if ``equation`` is malformed.

    Examples:
        >>> explicit_einsum_equation("ba"), explicit_einsum_equation("ij,jk")
        ('ba->ab', 'ij,jk->ik')
    """
    terms, output = _tokenize(equation)
    if output is not None:
        return equation
    return f"{equation}->{''.join(_implicit_output(terms))}"


def check_explicit_einsum_equation(candidate: Callable[[str], str]) -> None:
    """Check an attempt at ``explicit_einsum_equation``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_explicit_einsum_equation(explicit_einsum_equation)
    """
    cases = {
        "ba": "ba->ab", "ij": "ij->ij", "zyx": "zyx->xyz", "ij,jk": "ij,jk->ik", "ii": "ii->",
        "iij": "iij->j", "ij,ij": "ij,ij->", "i,j": "i,j->ij", "bA": "bA->Ab", "": "->",
        "...ij,...jk": "...ij,...jk->...ik", "j...": "j...->...j", "ij->ji": "ij->ji", "ii->i": "ii->i",
    }
    for equation, expected in cases.items():
        got = candidate(equation)
        assert got == expected, f"{equation!r}: expected {expected!r}, got {got!r}"


def plot_einsum_matmul(*, rows: int = 3, inner: int = 4, cols: int = 2) -> Figure:
    """Draw ``"ik,kj->ij"`` as three grids: which index is shared, which survives and which is summed.

    Args:
        rows: the length of ``i``, 1 to 6.
        inner: the length of ``k``, the contracted index, 1 to 6.
        cols: the length of ``j``, 1 to 6.

    Returns:
        A figure with one panel.

    Raises:
        ValueError: if a size is out of range.

    Examples:
        >>> len(plot_einsum_matmul(rows=2, inner=2, cols=2).axes)
        1
    """
    if not all(isinstance(n, int) and 1 <= n <= 6 for n in (rows, inner, cols)):
        raise ValueError(f"rows, inner and cols must be ints in [1, 6], got {rows}, {inner}, {cols}")
    from matplotlib.patches import Rectangle

    gap = 2.4
    left_b, left_c = inner + gap, inner + cols + 2 * gap
    right, bottom = left_c + cols + 0.5, max(rows, inner) + 1.6
    fig, (ax,) = new_figure(width=max(7.0, 0.55 * (right + 1.5)), height=0.55 * (bottom + 4.2))
    colour = {"i": PALETTE[0], "j": PALETTE[1], "k": PALETTE[2]}
    row, col = rows // 2, cols // 2  # the output cell we follow
    grids = [("A", "i", "k", rows, inner, 0.0), ("B", "k", "j", inner, cols, left_b), ("C", "i", "j", rows, cols, left_c)]
    for name, down, across, height, width, left in grids:
        for r in range(height):
            for c in range(width):
                # Highlight what feeds C[row, col]: row `row` of A, column `col` of B, and the cell itself.
                lit = {"A": r == row, "B": c == col, "C": (r, c) == (row, col)}[name]
                face = colour["k"] if lit and name != "C" else (PALETTE[3] if lit else "#eeeeee")
                ax.add_patch(Rectangle((left + c, r), 1, 1, facecolor=face, alpha=0.55 if lit else 1.0,
                                       edgecolor="white", linewidth=2))
        ax.text(left + width / 2, -0.7, f"{name} ({down}, {across})", ha="center", fontsize=12, weight="bold")
        ax.annotate("", (left - 0.3, height), (left - 0.3, 0), arrowprops={"arrowstyle": "->", "color": colour[down]})
        ax.text(left - 0.5, height / 2, down, color=colour[down], fontsize=13, ha="right", va="center", weight="bold")
        ax.annotate("", (left + width, height + 0.3), (left, height + 0.3),
                    arrowprops={"arrowstyle": "->", "color": colour[across]})
        ax.text(left + width / 2, height + 0.5, across, color=colour[across], fontsize=13, ha="center", va="top",
                weight="bold")
    ax.text(inner + gap / 2 - 0.3, rows / 2, "\u00d7", fontsize=18, ha="center", va="center")
    ax.text(left_b + cols + gap / 2 - 0.3, rows / 2, "=", fontsize=18, ha="center", va="center")
    ax.text(-1.2, bottom, 'torch.einsum("ik,kj->ij", A, B)\nC[i, j] = sum over k of A[i, k] * B[k, j]',
            fontsize=11, va="top", family="monospace")
    ax.text(-1.2, bottom + 1.4, "i, j: in the output, kept", fontsize=10, va="top", color=PALETTE[3])
    ax.text(-1.2, bottom + 2.1, "k: shared by A and B, missing from the output: summed away", fontsize=10, va="top",
            color=colour["k"])
    ax.set_xlim(-1.4, right)
    ax.set_ylim(bottom + 2.9, -1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def plot_einsum_alignment(
    *, equation: str = "ij,jk->ik", shapes: Sequence[Sequence[int]] = ((2, 3), (3, 4))
) -> Figure:
    """Draw how our `einsum` lays the operands along one shared order of indices before multiplying.

    One column per index (output indices first, contracted ones shaded), one row per aligned operand, then
    the broadcast product and the output after the sum; each cell is that axis's size.

    Args:
        equation: an equation of one or two operands.
        shapes: the operands' shapes.

    Returns:
        A figure with one panel.

    Raises:
        ValueError: if the equation does not fit the shapes, or has more than two operands.

    Examples:
        >>> len(plot_einsum_alignment(equation="ii->i", shapes=((2, 2),)).axes)
        1
    """
    spec = parse_equation(equation, shapes)
    if len(spec.inputs) > 2:
        raise ValueError(f"equation must have one or two operands, got {len(spec.inputs)}")
    from matplotlib.patches import Rectangle

    order = spec.output + spec.contracted
    # The shapes in the figure are the real ones: align empty tensors of the given shapes.
    aligned = [align_operand(torch.empty(shape), labels, order) for shape, labels in zip(shapes, spec.inputs, strict=True)]
    product = torch.broadcast_shapes(*(a.shape for a in aligned))
    rows = [(f"operand {n}: '{''.join(labels)}'", tuple(a.shape)) for n, (labels, a) in enumerate(zip(spec.inputs, aligned, strict=True))]
    rows += [("broadcast product", tuple(product)), ("sum of shaded axes", tuple(product[: len(spec.output)]))]
    fig, (ax,) = new_figure(width=1.6 + 0.9 * len(order) + 2.2, height=0.9 + 0.6 * len(rows))
    for a, index in enumerate(order):
        summed = index in spec.contracted
        ax.text(a + 0.5, -0.35, index, ha="center", fontsize=12, weight="bold", color=PALETTE[2] if summed else PALETTE[0])
        if summed:
            ax.add_patch(Rectangle((a, 0), 1, len(rows) - 1, facecolor=PALETTE[2], alpha=0.12, linewidth=0))
    for r, (name, shape) in enumerate(rows):
        ax.text(-0.2, r + 0.5, name, ha="right", va="center", fontsize=10)
        ax.text(len(order) + 0.2, r + 0.5, str(shape), ha="left", va="center", fontsize=10, family="monospace")
        for a, size in enumerate(shape):
            stretched = size == 1 and spec.sizes[order[a]] != 1
            ax.add_patch(Rectangle((a + 0.06, r + 0.08), 0.88, 0.84, fill=False, edgecolor=PALETTE[6], linewidth=1))
            ax.text(a + 0.5, r + 0.5, str(size), ha="center", va="center", fontsize=11,
                    color="#aaaaaa" if stretched else "black", style="italic" if stretched else "normal")
    ax.set_title(f"einsum({equation!r}): grey 1s broadcast, shaded axes are summed", fontsize=10)
    ax.set_xlim(-3.6, len(order) + 2.4)
    ax.set_ylim(len(rows) + 0.1, -0.8)
    ax.axis("off")
    return fig


def _einsum_dtype(aligned: list[torch.Tensor], n_output: int) -> tuple[torch.dtype, torch.dtype]:
    # (compute dtype, result dtype) for aligned operands whose first `n_output` axes are the output's.
    dtype = aligned[0].dtype
    # float16 and bfloat16 are multiplied and summed in float32 and rounded once at the end.
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32, dtype
    if dtype.is_floating_point or dtype.is_complex:
        return dtype, dtype
    # Integers and bool follow PyTorch's promotion. torch.einsum first sums away, in each operand on its
    # own, every contracted axis that the other operand lacks (size 1 there, size > 1 here), and `sum`
    # turns an integer or bool tensor into int64. One operand: any contracted axis at all is summed so.
    contracted = range(n_output, aligned[0].ndim)
    if len(aligned) == 1:
        alone = len(contracted) > 0
    else:
        a, b = aligned
        alone = any((a.size(d) != 1) != (b.size(d) != 1) for d in contracted)
    # Where it differs from PyTorch: when one operand was summed alone (now int64) and the two still share
    # a contracted axis, torch.einsum's batched product refuses the mixed dtypes; ours returns int64.
    return (torch.int64, torch.int64) if alone else (dtype, dtype)
