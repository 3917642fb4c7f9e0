r"""
# Advanced Einsum: The Many-Armed Contraction Engine

!!! torchenstein "The Professor speaks"
    One einsum string can multiply a whole chain of tensors, my apprentice, and cut and glue their axes
    on the way. But a contraction with many arms is also a contraction with many *orders*, and the wrong
    order turns a vector into a matrix the size of a small moon. Today we fold a projection and a head
    split into one contraction, count the cost of every bracket, and build our own `rearrange` while
    Dr. Hammer scrambles his heads.

**You will learn to**

- read and write einsums with three or more operands: chains, outer products and bilinear forms;
- fold a projection and a head split (or a head merge and a projection) into one einsum, by reading a
  weight matrix with more axes;
- count the FLOPs of each contraction order, find the cheapest one, and measure the difference;
- know what `torch.einsum` does with many operands, with and without opt_einsum;
- build an einops-style `rearrange` from scratch and prove it equal to `permute` and `reshape`.

## Three operands and more

The previous lesson, [Einstein summation](../einsum/index.md), gave us the rules: every letter is an
axis, a letter shared by inputs is multiplied along, a letter missing from the output is summed away.
Nothing in those rules says "two operands". A chain of matrix products is one einsum,
$D_{il} = \sum_{j,k} A_{ij} B_{jk} C_{kl}$, and so is an outer product of three vectors per batch row,
$T_{bijk} = a_{bi}\, b_{bj}\, c_{bk}$:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> _ = torch.manual_seed(0)
>>> A, B, C = torch.randn(2, 3), torch.randn(3, 4), torch.randn(4, 5)
>>> torch.allclose(torch.einsum("ij,jk,kl->il", A, B, C), A @ B @ C, atol=1e-6)
True
>>> a, b, c = torch.randn(6, 2), torch.randn(6, 3), torch.randn(6, 4)
>>> outer = torch.einsum("bi,bj,bk->bijk", a, b, c)
>>> outer.shape
torch.Size([6, 2, 3, 4])
>>> torch.allclose(outer, a[:, :, None, None] * b[:, None, :, None] * c[:, None, None, :])
True

```

A **bilinear form** $x^\top W y$ scores a pair of vectors through a matrix: one number per batch row,
"bi,ij,bj->b". Give $W$ an extra output axis and you have `torch.nn.functional.bilinear`, whose weight
has shape `(out_features, in1_features, in2_features)`: it is the einsum "bi,oij,bj->bo", plus a bias.

```pycon
>>> x, y, W = torch.randn(5, 3), torch.randn(5, 4), torch.randn(3, 4)
>>> form = torch.einsum("bi,ij,bj->b", x, W, y)
>>> form.shape
torch.Size([5])
>>> torch.allclose(form, ((x @ W) * y).sum(-1), atol=1e-5)
True
>>> weight, bias = torch.randn(2, 3, 4), torch.randn(2)
>>> ours = torch.einsum("bi,oij,bj->bo", x, weight, y) + bias
>>> torch.testing.assert_close(ours, F.bilinear(x, y, weight, bias))

```

## Projections with the head split folded in

A *projection* multiplies every token's vector by one weight matrix: `F.linear(x, weight, bias)`
computes `x @ weight.T + bias`, so a weight of shape `(C_out, C)` turns `(B, T, C)` into
`(B, T, C_out)` (the letters and the heads are those of
[Tensor metamorphosis](../metamorphosis/index.md#the-motivating-monster-splitting-heads)). The usual road
to heads is a projection, then a split: `split_heads` views the channels as `(h, d)` and moves the heads
forward. But a weight of shape `(C, C)` is just as well a weight of shape `(h, d, C)`: its row
`head * d + j` is row `j` of head `head`. With the weight viewed that way, projection and split are one
contraction, "btc,hdc->bhtd", and the output comes out with the heads already in front. Going back, a
weight `(C, C)` viewed as `(C, h, d)` merges the heads while it projects: "bhtd,chd->btc".

```pycon
>>> from torchenstein.tensors.einsum_advanced import einsum_merge_heads, einsum_project_heads
>>> from torchenstein.tensors.metamorphosis import merge_heads, split_heads
>>> B, T, C, h = 2, 5, 12, 3
>>> x, w, bias = torch.randn(B, T, C), torch.randn(C, C), torch.randn(C)
>>> heads = einsum_project_heads(x, w, bias, num_heads=h)
>>> heads.shape
torch.Size([2, 3, 5, 4])
>>> torch.testing.assert_close(heads, split_heads(F.linear(x, w, bias), num_heads=h))
>>> torch.testing.assert_close(einsum_merge_heads(heads, w, bias), F.linear(merge_heads(heads), w, bias))

```

## The order of contraction and its cost

Matrix multiplication is associative, so $(AB)C = A(BC)$, exactly in mathematics and up to rounding in
floating point. The *cost* is not associative at all. Multiplying an $(m, k)$ matrix by a $(k, n)$ one
takes $mkn$ multiply-adds, which we count as $2mkn$ FLOPs; for a chain the total depends on the
brackets. [`chain_flops`][torchenstein.tensors.einsum_advanced.chain_flops] counts it for an order
written with one capital letter per operand, such as `"((AB)C)"`, and
[`chain_intermediates`][torchenstein.tensors.einsum_advanced.chain_intermediates] lists the shapes of
the temporary results the order creates. Take two square matrices and a vector, the shape of
"apply two layers to one input":

```pycon
>>> from torchenstein.tensors.einsum_advanced import chain_flops, chain_intermediates
>>> shapes = [(512, 512), (512, 512), (512, 1)]
>>> chain_flops(shapes, "((AB)C)"), chain_flops(shapes, "(A(BC))")
(268959744, 1048576)
>>> chain_intermediates(shapes, "((AB)C)"), chain_intermediates(shapes, "(A(BC))")
([(512, 512)], [(512, 1)])

```

The left order builds a whole matrix to multiply a vector at the end; the right order never holds
anything bigger than a vector. The gap grows like $n$: cubic against quadratic.

![Left: FLOPs of ((AB)C) and (A(BC)) for a chain of two n-by-n matrices and an n-vector, on log-log axes; the left order grows cubically and the right one quadratically. Right: the largest intermediate result of each order, n squared elements against n.](plot_contraction_order.svg)

The number of orders grows like the Catalan numbers, but the cheapest is a classic dynamic programme:
the best order of operands $i..j$ is the best split $s$ with the best orders of $i..s$ and $s+1..j$.
[`best_chain_order`][torchenstein.tensors.einsum_advanced.best_chain_order] finds it, and
[`time_chain_orders`][torchenstein.tensors.einsum_advanced.time_chain_orders] measures every order with
`torchenstein.lab.time_it`. The timings belong to your machine, so this page prints only which orders
were timed; print the numbers yourself, and watch the cheap order win by about the ratio of the FLOPs:

```pycon
>>> from torchenstein.tensors.einsum_advanced import best_chain_order, time_chain_orders
>>> best_chain_order(shapes)
('(A(BC))', 1048576)
>>> best_chain_order([(10, 100), (100, 5), (5, 50), (50, 1)])
('(A(B(CD)))', 3500)
>>> timings = time_chain_orders(shapes, repeat=3)  # seconds per order: try print(timings)
>>> sorted(timings)
['((AB)C)', '(A(BC))']

```

## What `torch.einsum` does with many operands

`torch.einsum` contracts two operands at a time. If the package opt_einsum is installed, PyTorch asks it
for a cheap order (the switches in `torch.backends.opt_einsum` are on by default when it is there);
without it, einsum goes **from left to right**, whatever the cost, as it does on every machine inside
`torch.backends.opt_einsum.flags(enabled=False)`. To choose the order yourself anywhere, nest
two-operand einsums, or hand a matrix chain to `torch.linalg.multi_dot`, which finds the cheapest
brackets itself. The course depends on neither opt_einsum nor einops: we write what we need.

```pycon
>>> import torch.backends.opt_einsum as opt_einsum
>>> opt_einsum.enabled == opt_einsum.is_available()
True
>>> A, B, v = (torch.randn(s, dtype=torch.float64) for s in [(64, 64), (64, 64), (64, 1)])
>>> with opt_einsum.flags(enabled=False):
...     left_to_right = torch.einsum("ij,jk,kl->il", A, B, v)
>>> nested = torch.einsum("ij,jl->il", A, torch.einsum("jk,kl->jl", B, v))
>>> torch.allclose(left_to_right, nested)  # same answer, whatever the order
True
>>> torch.allclose(nested, torch.linalg.multi_dot([A, B, v]))
True

```

## Rearrange: einops patterns from scratch

The einops library made one idea famous: reshuffle axes by *naming* them. "b t (h d) -> b h t d" says
the last axis is really two, `h` outer and `d` inner: split it, then put `h` before `t`. That is a `view`
and a `permute`, written so a reader sees the shapes. Rather than add einops to the course, we write our
own [`rearrange`][torchenstein.tensors.einsum_advanced.rearrange] for the core of it: axis names, each
once per side and the same on both sides; parentheses for a group of axes sharing one dimension (split
on the left, merged on the right, first name outermost as in row-major memory); `()` for a dimension of
size one; lengths as keywords such as `h=4`, one unknown per group inferred. No `...`, numbers, repeats
or reductions: those raise a `ValueError` that says so. It runs as `reshape`, `permute`, `reshape`, so
it returns a view whenever those would.

```pycon
>>> from torchenstein.tensors.einsum_advanced import rearrange
>>> x = torch.randn(2, 5, 12)
>>> torch.equal(rearrange(x, "b t (h d) -> b h t d", h=3), split_heads(x, num_heads=3))
True
>>> torch.equal(rearrange(x, "b t (h d) -> b h t d", h=3), x.view(2, 5, 3, 4).permute(0, 2, 1, 3))
True
>>> heads = split_heads(x, num_heads=3)
>>> torch.equal(rearrange(heads, "b h t d -> b t (h d)"), merge_heads(heads))
True
>>> images = torch.randn(2, 3, 4, 4)
>>> torch.equal(rearrange(images, "b c h w -> b (h w) c"), images.flatten(2).transpose(1, 2))
True
>>> rearrange(torch.zeros(5, 6), "t c -> () t c").shape
torch.Size([1, 5, 6])
>>> rearrange(x, "b t (h d) -> b h t d", h=5)
Traceback (most recent call last):
...
ValueError: axes_lengths: h=5 does not divide the dimension of size 12 matched by group (h d) in pattern 'b t (h d) -> b h t d'

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the outer product in the middle of a chain"
    Dr. Hammer projects a vector through a low-rank weight $u v^\top$, and writes it as one einsum,
    "ij,jk,kl->il" with shapes $(n, 1)$, $(1, n)$ and $(n, 1)$. Left to right, einsum first builds the
    $n \times n$ matrix $u v^\top$: memory quadratic in $n$, for a result that is a vector. The other
    order contracts $v^\top x$ to a single number first.

    ```pycon
    >>> n = 2000
    >>> low_rank = [(n, 1), (1, n), (n, 1)]
    >>> chain_intermediates(low_rank, "((AB)C)"), chain_intermediates(low_rank, "(A(BC))")
    ([(2000, 2000)], [(1, 1)])
    >>> chain_flops(low_rank, "((AB)C)"), chain_flops(low_rank, "(A(BC))")
    (16000000, 8000)
    >>> u, vt, x = torch.randn(n, 1), torch.randn(1, n), torch.randn(n, 1)
    >>> with opt_einsum.flags(enabled=False):
    ...     hammer = torch.einsum("ij,jk,kl->il", u, vt, x)
    >>> fixed = u * (vt @ x)
    >>> fixed.shape
    torch.Size([2000, 1])
    >>> torch.allclose(hammer, fixed, rtol=1e-4, atol=1e-3)
    True

    ```

    Same answer, $n$ times the FLOPs, and an $n \times n$ matrix nobody asked for. Count before you contract,
    or let `torch.linalg.multi_dot` (or opt_einsum) choose.

!!! hammer "Dr. Hammer's trap: `(d h)` instead of `(h d)`"
    The projection lays each token's channels out head by head: channels $0..d-1$ are head 0. Dr.
    Hammer writes the group as `(d h)`. Same shapes, no error, and each "head" is a comb that takes every
    $h$-th channel across all the real heads. Mark each element with `10 * token + channel` and look:

    ```pycon
    >>> tokens = (10 * torch.arange(2)[:, None] + torch.arange(6)).unsqueeze(0)   # (B=1, T=2, C=6)
    >>> rearrange(tokens, "b t (h d) -> b h t d", h=2)[0, 0]
    tensor([[ 0,  1,  2],
            [10, 11, 12]])
    >>> rearrange(tokens, "b t (d h) -> b h t d", h=2)[0, 0]
    tensor([[ 0,  2,  4],
            [10, 12, 14]])
    >>> torch.equal(rearrange(tokens, "b t (d h) -> b h t d", h=2), split_heads(tokens, num_heads=2))
    False

    ```

    The group must read the axes in the order the weight wrote them: `(h d)`, as in the `(h, d, C)` view of
    the weight above.

## Challenges

**1. Image patches as tokens.** A Vision Transformer, a network for images, cuts each image into
`p x p` patches and treats every patch as one token (a vector of numbers, like a word's). Write
`patchify_images(images, patch_size)` taking a batch of images of shape `(B, C, H, W)` (`C` colour
channels, height `H`, width `W`) and returning `(B, (H/p)(W/p), p * p * C)`, which is
"b c (h p1) (w p2) -> b (h w) (p1 p2 c)": patches in row-major order, each flattened row by row with the
channels innermost. Raise `ValueError` when `patch_size` does not divide `H` and `W`. This lesson's
`rearrange` does it in one line; `reshape` and `permute` do it in three. The checker compares it with
`torch.nn.functional.unfold` and a `permute`.

Check an attempt with `check_patchify_images(my_function)`, or put your function in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answer passes:

```pycon
>>> from torchenstein.tensors import einsum_advanced as lesson
>>> lesson.check_patchify_images(lesson.patchify_images)

```
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from torchenstein.lab import PALETTE, new_figure, time_it

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _require_tensor(value: object, name: str, ndim: int | None = None) -> Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(value.shape)}")
    return value


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def einsum_project_heads(input: Tensor, weight: Tensor, bias: Tensor | None, num_heads: int) -> Tensor:
    """A linear projection and the head split in one einsum: ``"btc,hdc->bhtd"``.

    Args:
        input: shape ``(B, T, C_in)``.
        weight: shape ``(C_out, C_in)``, as for `torch.nn.functional.linear`.
        bias: shape ``(C_out,)``, or ``None``.
        num_heads: how many heads; it must divide ``C_out``.

    Returns:
        ``split_heads(F.linear(input, weight, bias), num_heads)``, shape ``(B, num_heads, T, C_out // num_heads)``.

    Raises:
        TypeError: if ``input`` or ``weight`` is not a tensor.
        ValueError: if the shapes do not fit or ``num_heads`` does not divide ``C_out``.

    Examples:
        >>> einsum_project_heads(torch.randn(2, 5, 6), torch.randn(8, 6), None, num_heads=4).shape
        torch.Size([2, 4, 5, 2])
    """
    _require_tensor(input, "input", ndim=3)
    _require_tensor(weight, "weight", ndim=2)
    C_out, C_in = weight.shape
    if input.size(-1) != C_in:
        raise ValueError(f"weight must have shape (C_out, {input.size(-1)}) for input's channels, got {tuple(weight.shape)}")
    if C_out % _positive_int(num_heads, "num_heads"):
        raise ValueError(f"num_heads must divide the output channels C_out={C_out}, got num_heads={num_heads}")
    d = C_out // num_heads
    # Row `head * d + j` of the weight is row `j` of head `head`: the same memory, read as (h, d, C_in).
    heads = torch.einsum("btc,hdc->bhtd", input, weight.reshape(num_heads, d, C_in))  # (B, h, T, d)
    if bias is None:
        return heads
    if bias.shape != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},), got {tuple(bias.shape)}")
    # The bias splits the same way and is broadcast over the tokens.
    return heads + bias.view(num_heads, 1, d)


def einsum_merge_heads(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The head merge and the output projection in one einsum: ``"bhtd,chd->btc"``.

    Args:
        input: shape ``(B, h, T, d)``.
        weight: shape ``(C_out, h * d)``, as for `torch.nn.functional.linear`.
        bias: shape ``(C_out,)``, or ``None``.

    Returns:
        ``F.linear(merge_heads(input), weight, bias)``, shape ``(B, T, C_out)``.

    Raises:
        TypeError: if ``input`` or ``weight`` is not a tensor.
        ValueError: if the shapes do not fit.

    Examples:
        >>> einsum_merge_heads(torch.randn(2, 4, 5, 2), torch.randn(6, 8)).shape
        torch.Size([2, 5, 6])
    """
    _require_tensor(input, "input", ndim=4)
    _require_tensor(weight, "weight", ndim=2)
    B, h, T, d = input.shape
    if weight.size(1) != h * d:
        raise ValueError(f"weight must have shape (C_out, h * d) = (C_out, {h * d}), got {tuple(weight.shape)}")
    # Column `head * d + j` of the weight reads channel j of head `head`; summing over h and d merges.
    out = torch.einsum("bhtd,chd->btc", input, weight.reshape(-1, h, d))  # (B, T, C_out)
    if bias is None:
        return out
    if bias.shape != (weight.size(0),):
        raise ValueError(f"bias must have shape ({weight.size(0)},), got {tuple(bias.shape)}")
    return out + bias


# A contraction order is a tree: a leaf is an operand's index, a node a pair of subtrees.
_Tree = int | tuple


def _leaves(tree: _Tree) -> list[int]:
    return [tree] if isinstance(tree, int) else _leaves(tree[0]) + _leaves(tree[1])


def _parse_order(order: object, count: int) -> _Tree:
    if not isinstance(order, str):
        raise TypeError(f"order must be a string such as '((AB)C)', got {type(order).__name__}")
    letters = "".join(chr(ord("A") + i) for i in range(count))
    error = ValueError(f"order must be one bracketing of {letters}, each pair of parentheses around exactly "
                       f"two parts, got {order!r}")
    # A stack parser: a letter pushes a leaf, and ")" folds the two parts since its "(" into one node.
    stack: list = []
    for char in order.replace(" ", ""):
        if char == "(":
            stack.append(char)
        elif char == ")":
            if len(stack) < 3 or not isinstance(stack[-3], str) or "(" in stack[-2:]:
                raise error
            right, left = stack.pop(), stack.pop()
            stack[-1] = (left, right)
        elif char in letters:
            stack.append(letters.index(char))
        else:
            raise error
    # The outermost parentheses may be left out: "(AB)C" means "((AB)C)".
    if len(stack) == 2 and "(" not in stack:
        stack = [tuple(stack)]
    if len(stack) != 1 or stack[0] == "(" or _leaves(stack[0]) != list(range(count)):
        raise error
    return stack[0]


def _check_chain(shapes: object) -> list[tuple[int, int]]:
    if not isinstance(shapes, Sequence) or not shapes:
        raise ValueError(f"shapes must be a non-empty sequence of (rows, cols) pairs, got {shapes!r}")
    shapes = [tuple(s) for s in shapes]
    for i, s in enumerate(shapes):
        if len(s) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in s):
            raise ValueError(f"shapes[{i}] must be a pair of non-negative ints (rows, cols), got {s!r}")
    for i in range(len(shapes) - 1):
        if shapes[i][1] != shapes[i + 1][0]:
            raise ValueError(f"shapes do not chain: shapes[{i}] = {shapes[i]} has {shapes[i][1]} columns "
                             f"but shapes[{i + 1}] = {shapes[i + 1]} has {shapes[i + 1][0]} rows")
    return shapes


def _products(shapes: object, order: object) -> list[tuple[tuple[int, int], int]]:
    # Evaluate the order on shapes only, children first, and record (shape, FLOPs) of every product.
    shapes = _check_chain(shapes)
    products = []

    def walk(node: _Tree) -> tuple[int, int]:
        if isinstance(node, int):
            return shapes[node]
        (m, k), (_, n) = walk(node[0]), walk(node[1])
        products.append(((m, n), 2 * m * k * n))
        return m, n

    walk(_parse_order(order, len(shapes)))
    return products


def chain_flops(shapes: Sequence[tuple[int, int]], order: str) -> int:
    """The FLOPs of a matrix chain multiplied in ``order``, counting ``2 * m * k * n`` per product.

    Args:
        shapes: the matrices' shapes, ``(rows, cols)``, in chain order.
        order: a full bracketing of the operands named ``A``, ``B``, ``C``, ... in order, e.g.
            ``"((AB)C)"`` (the outermost parentheses may be left out).

    Returns:
        The total FLOPs of every product in that order.

    Raises:
        TypeError: if ``order`` is not a string.
        ValueError: if the shapes do not chain or ``order`` is not a bracketing of them.

    Examples:
        >>> chain_flops([(2, 3), (3, 4), (4, 5)], "(AB)C"), chain_flops([(2, 3), (3, 4), (4, 5)], "A(BC)")
        (128, 180)
        >>> chain_flops([(2, 3), (3, 4), (4, 5)], "(ABC)")
        Traceback (most recent call last):
        ...
        ValueError: order must be one bracketing of ABC, each pair of parentheses around exactly two parts, got '(ABC)'
    """
    return sum(flops for _, flops in _products(shapes, order))


def chain_intermediates(shapes: Sequence[tuple[int, int]], order: str) -> list[tuple[int, int]]:
    """The shapes of the temporary results a matrix chain creates in ``order`` (the final result excluded).

    Args:
        shapes: the matrices' shapes, in chain order.
        order: a bracketing, as for `chain_flops`.

    Returns:
        One shape per intermediate product, in the order they are computed.

    Raises:
        TypeError: if ``order`` is not a string.
        ValueError: if the shapes do not chain or ``order`` is not a bracketing of them.

    Examples:
        >>> chain_intermediates([(2, 3), (3, 4), (4, 5), (5, 6)], "(AB)(CD)")
        [(2, 4), (4, 6)]
    """
    return [shape for shape, _ in _products(shapes, order)[:-1]]


def best_chain_order(shapes: Sequence[tuple[int, int]]) -> tuple[str, int]:
    """The cheapest bracketing of a matrix chain, by dynamic programming, and its FLOPs.

    Args:
        shapes: the matrices' shapes, in chain order.

    Returns:
        ``(order, flops)``; among equally cheap orders, the one with the leftmost top-level split.

    Raises:
        ValueError: if the shapes do not chain.

    Examples:
        >>> best_chain_order([(2, 3), (3, 4), (4, 5)])
        ('((AB)C)', 128)
        >>> best_chain_order([(7, 7)])
        ('A', 0)
    """
    shapes = _check_chain(shapes)
    n = len(shapes)
    dims = [shapes[0][0]] + [cols for _, cols in shapes]
    # cost[i][j] is the cheapest way to multiply operands i..j; best[i][j] is its bracketing.
    cost = [[0] * n for _ in range(n)]
    best = [[chr(ord("A") + i)] * n for i in range(n)]
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            # Split after operand s: (i..s) times (s+1..j) costs both halves plus one product.
            options = [(cost[i][s] + cost[s + 1][j] + 2 * dims[i] * dims[s + 1] * dims[j + 1], s) for s in range(i, j)]
            cost[i][j], s = min(options, key=lambda option: option[0])
            best[i][j] = f"({best[i][s]}{best[s + 1][j]})"
    return best[0][n - 1], cost[0][n - 1]


def _all_orders(first: int, last: int) -> list[str]:
    # Every full bracketing of operands first..last (a Catalan number of them).
    if first == last:
        return [chr(ord("A") + first)]
    return [f"({left}{right})" for s in range(first, last)
            for left in _all_orders(first, s) for right in _all_orders(s + 1, last)]


def _multiply_chain(matrices: Sequence[Tensor], order: str) -> Tensor:
    tree = _parse_order(order, len(matrices))

    def run(node: _Tree) -> Tensor:
        return matrices[node] if isinstance(node, int) else run(node[0]) @ run(node[1])

    return run(tree)


def time_chain_orders(
    shapes: Sequence[tuple[int, int]], *, orders: Sequence[str] | None = None, repeat: int = 3, seed: int = 0
) -> dict[str, float]:
    """Time a matrix chain of random float32 matrices on the CPU in each order, with `time_it`.

    Args:
        shapes: the matrices' shapes, in chain order.
        orders: the bracketings to time; ``None`` times every one of them.
        repeat: timed runs per order (the median is kept).
        seed: seed of a private generator for the matrices.

    Returns:
        The median seconds of one run, by order.

    Raises:
        ValueError: if the shapes do not chain or an order is not a bracketing of them.

    Examples:
        >>> timings = time_chain_orders([(4, 5), (5, 6), (6, 1)], repeat=1)
        >>> {order: seconds > 0 for order, seconds in sorted(timings.items())}
        {'((AB)C)': True, '(A(BC))': True}
    """
    shapes = _check_chain(shapes)
    orders = _all_orders(0, len(shapes) - 1) if orders is None else list(orders)
    for order in orders:
        _parse_order(order, len(shapes))
    generator = torch.Generator().manual_seed(seed)
    matrices = [torch.randn(s, generator=generator) for s in shapes]
    return {order: time_it(lambda order=order: _multiply_chain(matrices, order), repeat=repeat) for order in orders}


def plot_contraction_order(*, sizes: Sequence[int] = (8, 16, 32, 64, 128, 256, 512, 1024)) -> Figure:
    """FLOPs and largest intermediate of ``((AB)C)`` and ``(A(BC))`` for two ``n x n`` matrices and an ``n``-vector.

    Args:
        sizes: the values of ``n``, positive ints.

    Returns:
        A figure with two panels: FLOPs, and elements of the largest intermediate.

    Raises:
        ValueError: if ``sizes`` is empty or holds a size below 1.

    Examples:
        >>> fig = plot_contraction_order(sizes=(2, 4))
        >>> len(fig.axes)
        2
    """
    sizes = list(sizes)
    if not sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes!r}")
    fig, (flops_ax, memory_ax) = new_figure(1, 2, width=8.5, height=3.4)
    for colour, order in zip(PALETTE, ("((AB)C)", "(A(BC))"), strict=False):
        chains = [[(n, n), (n, n), (n, 1)] for n in sizes]
        flops = [chain_flops(shapes, order) for shapes in chains]
        largest = [max(r * c for r, c in chain_intermediates(shapes, order)) for shapes in chains]
        flops_ax.plot(sizes, flops, "o-", color=colour, label=order)
        memory_ax.plot(sizes, largest, "o-", color=colour, label=order)
    for ax, ylabel in ((flops_ax, "FLOPs"), (memory_ax, "elements of the intermediate")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n  (A, B: n x n,  C: n x 1)")
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False)
    flops_ax.set_title("Cost of each order")
    memory_ax.set_title("Largest temporary result")
    return fig


_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z_]\w*)|(\S))")


def _parse_side(side: str, pattern: str) -> list[list[str]]:
    # One side of a pattern becomes a list of groups, one per dimension, each a list of axis names.
    groups: list[list[str]] = []
    group: list[str] | None = None
    for match in _TOKEN.finditer(side):
        opening, closing, name, other = match.groups()
        if other is not None:
            hint = "name every axis" if other == "." else "use () for a dimension of size one" if other.isdigit() else ""
            raise ValueError(f"pattern: {other!r} is not supported by this small rearrange ({hint or 'names, ( ) and -> only'}), "
                             f"got {pattern!r}")
        if opening:
            if group is not None:
                raise ValueError(f"pattern: parentheses cannot be nested, got {pattern!r}")
            group = []
        elif closing:
            if group is None:
                raise ValueError(f"pattern: ')' without '(', got {pattern!r}")
            groups.append(group)
            group = None
        elif group is not None:
            group.append(name)
        else:
            groups.append([name])
    if group is not None:
        raise ValueError(f"pattern: '(' is never closed, got {pattern!r}")
    names = [n for g in groups for n in g]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"pattern: each axis may appear once per side, {repeated} repeat in {pattern!r}")
    return groups


def rearrange(tensor: Tensor, pattern: str, **axes_lengths: int) -> Tensor:
    """Reorder, split and merge axes by naming them, like einops' ``rearrange`` (a documented subset).

    The pattern is ``"left -> right"``; each side lists one entry per dimension: an axis name, a
    parenthesised group of names (one dimension made of several axes, the first name outermost), or
    ``()`` for a dimension of size one. Both sides use the same names, each once.

    Args:
        tensor: the input, with one dimension per entry of the left side.
        pattern: e.g. ``"b t (h d) -> b h t d"``.
        **axes_lengths: lengths of axes the input's shape does not fix, e.g. ``h=4``.

    Returns:
        The rearranged tensor: a view when `permute` and `reshape` allow one, otherwise a copy.

    Raises:
        TypeError: if ``tensor`` is not a tensor or ``pattern`` not a string.
        ValueError: if the pattern is malformed or uses what this subset does not support, or the
            lengths do not fit the input's shape.

    Examples:
        >>> rearrange(torch.arange(6).view(2, 3), "a b -> b a")
        tensor([[0, 3],
                [1, 4],
                [2, 5]])
        >>> rearrange(torch.zeros(2, 3), "a ... -> ... a")
        Traceback (most recent call last):
        ...
        ValueError: pattern: '.' is not supported by this small rearrange (name every axis), got 'a ... -> ... a'
    """
    _require_tensor(tensor, "tensor")
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string such as 'b t (h d) -> b h t d', got {type(pattern).__name__}")
    if pattern.count("->") != 1:
        raise ValueError(f"pattern must hold exactly one '->', got {pattern!r}")
    left, right = (_parse_side(side, pattern) for side in pattern.split("->"))
    left_names, right_names = [n for g in left for n in g], [n for g in right for n in g]
    if set(left_names) != set(right_names):
        raise ValueError(f"pattern: both sides must name the same axes (no repeats or reductions here), "
                         f"left has {sorted(set(left_names) - set(right_names))} and right has "
                         f"{sorted(set(right_names) - set(left_names))} on their own in {pattern!r}")
    unused = sorted(set(axes_lengths) - set(left_names))
    if unused:
        raise ValueError(f"axes_lengths: {unused} are not axes of the pattern {pattern!r}")
    for name, n in axes_lengths.items():
        _positive_int(n, f"axes_lengths[{name!r}]")
    if len(left) != tensor.ndim:
        raise ValueError(f"pattern: the left side has {len(left)} dimensions but the tensor has shape "
                         f"{tuple(tensor.shape)}, in {pattern!r}")
    # Every axis gets its length: from axes_lengths, or from the input's dimension that holds it.
    lengths = dict(axes_lengths)
    for group, size in zip(left, tensor.shape, strict=True):
        unknown = [n for n in group if n not in lengths]
        known = math.prod(lengths[n] for n in group if n in lengths)
        where = f"the dimension of size {size} matched by group ({' '.join(group)}) in pattern {pattern!r}"
        if len(unknown) > 1:
            raise ValueError(f"axes_lengths: give all but one of {unknown} for {where}")
        if unknown and size % known == 0:
            lengths[unknown[0]] = size // known
        elif unknown:
            given = " * ".join(f"{n}={lengths[n]}" for n in group if n in lengths)
            raise ValueError(f"axes_lengths: {given} does not divide {where}")
        elif known != size:
            raise ValueError(f"axes_lengths: the lengths multiply to {known}, not {size}, for {where}")
    # Split every group into its axes, put the axes in the right side's order, then merge the new groups.
    split = tensor.reshape([lengths[n] for n in left_names])  # one dimension per axis name
    moved = split.permute([left_names.index(n) for n in right_names])
    return moved.reshape([math.prod(lengths[n] for n in group) for group in right])


def patchify_images(images: Tensor, patch_size: int) -> Tensor:
    """Challenge solution: cut images into ``p x p`` patches, one token per patch.

    Args:
        images: shape ``(B, C, H, W)``.
        patch_size: the patch side ``p``; it must divide ``H`` and ``W``.

    Returns:
        Shape ``(B, (H // p) * (W // p), p * p * C)``: ``"b c (h p1) (w p2) -> b (h w) (p1 p2 c)"``.

    Raises:
        ValueError: if ``images`` is not 4-D or ``patch_size`` does not divide its height and width.

    Examples:
        >>> patchify_images(torch.zeros(2, 3, 8, 12), patch_size=4).shape
        torch.Size([2, 6, 48])
    """
    _require_tensor(images, "images", ndim=4)
    p = _positive_int(patch_size, "patch_size")
    H, W = images.shape[-2:]
    if H % p or W % p:
        raise ValueError(f"patch_size must divide the image's height and width ({H}, {W}), got {patch_size}")
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p)


def check_patchify_images(candidate: Callable[[Tensor, int], Tensor]) -> None:
    """Check an attempt at ``patchify_images``; raise ``AssertionError`` with a hint if wrong.

    Examples:
        >>> check_patchify_images(patchify_images)
    """
    generator = torch.Generator().manual_seed(4)
    for B, C, H, W, p in [(2, 3, 8, 8, 4), (1, 1, 6, 4, 2), (2, 2, 4, 6, 1), (1, 3, 5, 5, 5), (3, 4, 6, 9, 3)]:
        images = torch.randn(B, C, H, W, generator=generator)
        got = candidate(images, p)
        # unfold lists each patch as (c, p1, p2) with the patches in row-major order; move c innermost.
        columns = F.unfold(images, kernel_size=p, stride=p)  # (B, C * p * p, patches)
        expected = columns.view(B, C, p, p, -1).permute(0, 4, 2, 3, 1).reshape(B, -1, p * p * C)
        where = f"images {(B, C, H, W)}, patch_size={p}"
        assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert torch.equal(got, expected), (
            f"{where}: wrong values; patches go row by row, and each is flattened as (p1 p2 c), channels innermost"
        )
    message = "patch_size=4 does not divide a 6 x 6 image: raise ValueError"
    try:
        candidate(torch.zeros(1, 1, 6, 6), 4)
    except ValueError:
        return
    except Exception as err:  # any other failure is a learner's bug to report, not to crash on
        raise AssertionError(f"{message}, not {type(err).__name__}: {err}") from err
    raise AssertionError(message)
