r"""
# Matrix Multiplication: The Engine Room of Every Monster

!!! torchenstein "The Professor speaks"
    Strip any modern network to the bone, my apprentice, and what do you find? Matrix multiplications,
    thousands of them, humming away like the generators under my laboratory. Today we build one from
    raw scalars, learn every rank rule of `@` by heart, count what it costs, and race our creations
    against PyTorch's own engine. Bring goggles.

**You will learn to**

- tell `torch.mm`, `torch.bmm`, `torch.matmul` and `@` apart, and say what each one accepts;
- predict the shape of `@` for vectors, matrices and batches, broadcast batch dimensions included;
- write matmul three ways (three loops, broadcast-multiply-sum, every rank rule) and prove the last
  equal to `torch.matmul`;
- count a matmul's floating-point operations, and (in a deep dive) time three implementations against
  each other;
- know which dtypes matmul accepts, and why it refuses to mix them.

## One number: a row meets a column

For $A$ of shape $(m, k)$ and $B$ of shape $(k, n)$, the product $C = AB$ has shape $(m, n)$, and each
of its entries is the dot product of a row of $A$ with a column of $B$:

$$
C_{ij} = \sum_{p=1}^{k} A_{ip} \, B_{pj}.
$$

The shared size $k$ (the *inner* dimension) is summed away; the outer sizes $m$ and $n$ survive.

```pycon
>>> import torch
>>> A = torch.tensor([[1, 2, 3], [4, 5, 6]])  # (m, k) = (2, 3)
>>> B = torch.tensor([[1, 0], [0, 1], [2, -1]])  # (k, n) = (3, 2)
>>> A @ B
tensor([[ 7, -1],
        [16, -1]])
>>> (A[1] * B[:, 0]).sum()  # row 1 of A meets column 0 of B: entry (1, 0)
tensor(16)

```

![Three grids: a batch of (m, k) matrices, a (k, n) matrix and the (m, n) result; one highlighted row of the first and one column of the second meet in one highlighted cell of the result](plot_matmul_shapes.svg)

## Four doors into one room: `mm`, `bmm`, `matmul` and `@`

| call | accepts | batch dimensions |
|---|---|---|
| `torch.mm(input, mat2)` | `(m, k)` and `(k, n)`, nothing else | none |
| `torch.bmm(input, mat2)` | `(b, m, k)` and `(b, k, n)`, the same `b` | exactly one, never broadcast |
| `torch.matmul(input, other)` | any ranks from 1 up | any number, broadcast |
| `input @ other` | exactly `torch.matmul` | as `matmul` |

Two smaller doors exist for vectors: `torch.dot` (1-D with 1-D) and `torch.mv` (2-D with 1-D). `mm`
and `bmm` are strict on purpose: a wrong rank is an error, never a guess.

```pycon
>>> A, B = torch.randn(2, 3), torch.randn(3, 4)
>>> torch.mm(A, B).shape, torch.matmul(A, B).shape, (A @ B).shape
(torch.Size([2, 4]), torch.Size([2, 4]), torch.Size([2, 4]))
>>> X, Y = torch.randn(5, 2, 3), torch.randn(5, 3, 4)
>>> torch.bmm(X, Y).shape, (X @ Y).shape
(torch.Size([5, 2, 4]), torch.Size([5, 2, 4]))
>>> torch.mm(X, Y)
Traceback (most recent call last):
...
RuntimeError: self must be a matrix
>>> torch.bmm(A, B)
Traceback (most recent call last):
...
RuntimeError: batch1 must be a 3D tensor

```

## The 1-D rules of `matmul`

A 1-D tensor is neither a row nor a column, so `matmul` decides for you, temporarily:

- **1-D @ 1-D**: the dot product, a 0-D tensor.
- **1-D on the left**, shape `(k,)`: a 1 is *prepended*, making it a row `(1, k)`; after the product
  that dimension is removed again.
- **1-D on the right**, shape `(k,)`: a 1 is *appended*, making it a column `(k, 1)`; after the product
  that dimension is removed again.

| `input` | `other` | computed as | result |
|---|---|---|---|
| `(k,)` | `(k,)` | dot product | `()` |
| `(m, k)` | `(k,)` | `(m, k) @ (k, 1)` | `(m,)` |
| `(k,)` | `(k, n)` | `(1, k) @ (k, n)` | `(n,)` |
| `(*, m, k)` | `(k,)` | `(*, m, k) @ (k, 1)` | `(*, m)` |
| `(k,)` | `(*, k, n)` | `(1, k) @ (*, k, n)` | `(*, n)` |

```pycon
>>> v, M = torch.tensor([1, 2, 3]), torch.arange(6).reshape(3, 2)
>>> v @ v, torch.dot(v, v)
(tensor(14), tensor(14))
>>> v @ M, (v[None, :] @ M).squeeze(0)  # v on the left acts as a row
(tensor([16, 22]), tensor([16, 22]))
>>> M.T @ v, (M.T @ v[:, None]).squeeze(-1)  # v on the right acts as a column
(tensor([16, 22]), tensor([16, 22]))
>>> (v @ torch.ones(4, 3, 5, dtype=torch.long)).shape, (torch.ones(4, 2, 3, dtype=torch.long) @ v).shape
(torch.Size([4, 5]), torch.Size([4, 2]))

```

## Batch dimensions, and how they broadcast

For `matmul`, the **last two** dimensions of each operand are the matrix; everything before them is a
stack of matrices, the *batch*. The batch dimensions broadcast exactly as in
[Broadcasting](../broadcasting/index.md): align them from the right, treat missing ones as 1, and let a
1 stretch to match. So one weight matrix `(C, D)` serves a whole batch of token vectors `(B, T, C)` (the
letters of [Tensor metamorphosis](../metamorphosis/index.md#the-motivating-monster-splitting-heads)), and
batch shapes `(2, 1)` and `(5,)` meet as `(2, 5)`.
`mm` and `bmm` broadcast nothing: `bmm` wants the very same batch size on both sides.

```pycon
>>> x, W = torch.randn(8, 10, 16), torch.randn(16, 32)  # (B, T, C) @ (C, D)
>>> (x @ W).shape
torch.Size([8, 10, 32])
>>> (torch.randn(2, 1, 3, 4) @ torch.randn(5, 4, 6)).shape  # batch (2, 1) meets (5,)
torch.Size([2, 5, 3, 6])
>>> a, b = torch.randn(2, 3, 4), torch.randn(1, 4, 5)
>>> (a @ b).shape
torch.Size([2, 3, 5])
>>> torch.bmm(a, b)
Traceback (most recent call last):
...
RuntimeError: Expected size for first two dimensions of batch2 tensor to be: [2, 4] but got: [1, 4].
>>> torch.bmm(a, b.expand(2, 4, 5)).shape  # expand is free: a view, no copy
torch.Size([2, 3, 5])

```

## Matmul from scratch, three ways

**One: three loops.** [`mm_loops`][torchenstein.tensors.matmul.mm_loops] is the formula above in plain
Python: for every row $i$, for every column $j$, sum over $p$. Correct, readable, and slow beyond
belief, so keep the matrices tiny.

```pycon
>>> from torchenstein.tensors.matmul import matmul, matmul_broadcast, mm_loops
>>> A, B = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([[1, 0], [0, 1], [2, -1]])
>>> mm_loops(A, B)
tensor([[ 7, -1],
        [16, -1]])

```

**Two: broadcast, multiply, sum.** Give $A$ a trailing axis and $B$ a leading one, and broadcasting
lines up every $A_{ip}$ with every $B_{pj}$ in one `(m, k, n)` tensor of products; summing over the
middle axis ($p$) is the matmul. With `...` in front, any batch dimensions ride along and broadcast for
free:

```python
C = (A[..., :, :, None] * B[..., None, :, :]).sum(-2)  # (..., m, k, 1) * (..., 1, k, n) -> sum over k
```

```pycon
>>> A[:, :, None].shape, B[None, :, :].shape, (A[:, :, None] * B[None, :, :]).shape
(torch.Size([2, 3, 1]), torch.Size([1, 3, 2]), torch.Size([2, 3, 2]))
>>> (A[:, :, None] * B[None, :, :]).sum(-2)
tensor([[ 7, -1],
        [16, -1]])
>>> x, W = torch.randn(4, 5, 8), torch.randn(8, 3)
>>> torch.allclose(matmul_broadcast(x, W), x @ W, atol=1e-5)
True

```

The price is memory: the product tensor holds $k$ times more numbers than the result.
[`matmul_broadcast`][torchenstein.tensors.matmul.matmul_broadcast] also sums `float16` and `bfloat16`
products in `float32` and rounds once at the end, as PyTorch's CPU kernels do, instead of rounding every
partial sum.

??? note "Deep dive: half-precision sums on a GPU"
    On CUDA the wide sum is not promised: `torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction`
    and `allow_bf16_reduced_precision_reduction` are `True` by default, which lets cuBLAS round some
    partial sums to the 16-bit type, so a GPU product may differ from ours (and from the CPU's) by more
    than one rounding. Set them to `False` when you need the wide sum there too.

    ```pycon
    >>> torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction  # the default, even on a CPU build
    True

    ```

**Three: every rank rule.** [`matmul`][torchenstein.tensors.matmul.matmul] adds the 1-D rules: append or
prepend the 1, multiply and sum as above, then remove the 1 again. Here it meets `torch.matmul` on every
pair of ranks from 1-D to 4-D, with batch dimensions that broadcast (the tests check many more shapes,
dtypes and gradients):

```pycon
>>> import itertools
>>> left = {1: (4,), 2: (3, 4), 3: (2, 3, 4), 4: (5, 1, 3, 4)}
>>> right = {1: (4,), 2: (4, 6), 3: (1, 4, 6), 4: (1, 2, 4, 6)}
>>> for r, s in itertools.product(left, right):
...     a, b = torch.randn(left[r], dtype=torch.float64), torch.randn(right[s], dtype=torch.float64)
...     ours = matmul(a, b)
...     assert ours.shape == torch.matmul(a, b).shape and torch.allclose(ours, torch.matmul(a, b))
...     print(f"{r}-D @ {s}-D -> {str(tuple(ours.shape)):13}", end="\n" if s == 4 else "")
1-D @ 1-D -> ()           1-D @ 2-D -> (6,)         1-D @ 3-D -> (1, 6)       1-D @ 4-D -> (1, 2, 6)
2-D @ 1-D -> (3,)         2-D @ 2-D -> (3, 6)       2-D @ 3-D -> (1, 3, 6)    2-D @ 4-D -> (1, 2, 3, 6)
3-D @ 1-D -> (2, 3)       3-D @ 2-D -> (2, 3, 6)    3-D @ 3-D -> (2, 3, 6)    3-D @ 4-D -> (1, 2, 3, 6)
4-D @ 1-D -> (5, 1, 3)    4-D @ 2-D -> (5, 1, 3, 6) 4-D @ 3-D -> (5, 1, 3, 6) 4-D @ 4-D -> (5, 2, 3, 6)

```

Where `torch.matmul` answers bad shapes in the words of its kernels, ours names the culprit:

```pycon
>>> matmul(torch.ones(2, 3), torch.ones(4, 5))
Traceback (most recent call last):
...
ValueError: input's last dimension (3) must equal other's second-to-last dimension (4), got shapes (2, 3) and (4, 5)
>>> matmul(torch.tensor(2.0), torch.ones(3))
Traceback (most recent call last):
...
ValueError: input and other must have at least 1 dimension each, got shapes () and (3,); scale by a 0-D tensor with *
>>> matmul(torch.ones(2, 3, 4), torch.ones(3, 4, 5))
Traceback (most recent call last):
...
ValueError: the batch dimensions of input (2,) and other (3,) do not broadcast, got shapes (2, 3, 4) and (3, 4, 5)

```

## What it costs: $2mnk$ FLOPs

Each of the $mn$ entries takes $k$ multiplications and $k - 1$ additions, so by the usual convention
(one multiply-add counts as two floating-point operations) a product costs $2mnk$ FLOPs, times the
number of matrices in the broadcast batch. [`matmul_flops`][torchenstein.tensors.matmul.matmul_flops]
applies the same rank rules as `matmul`. The second line below is the size of one layer of GPT-2, a
well-known language model, applied to a batch of 8 sequences of 1024 tokens: each token's vector of 768
numbers is multiplied by a `(768, 3072)` weight matrix.

```pycon
>>> from torchenstein.tensors.matmul import matmul_flops
>>> matmul_flops((2, 3), (3, 4)), matmul_flops((5,), (5,)), matmul_flops((7, 1, 2, 3), (6, 3, 4))
(48, 10, 2016)
>>> flops = matmul_flops((8, 1024, 768), (768, 3072))  # 8 x 1024 token vectors of 768 numbers, to 3072
>>> flops, f"{flops / 1e9:.1f} GFLOP"
(38654705664, '38.7 GFLOP')
>>> [round(matmul_flops((n, n), (n, n)) / (3 * n * n), 1) for n in (16, 256, 4096)]  # FLOPs per number touched
[10.7, 170.7, 2730.7]

```

The last line is why accelerators love matmul: two $n \times n$ inputs and one output hold $3n^2$
numbers, but the product does $2n^3$ operations on them, so the work per number grows like $2n/3$.
Memory is slow and arithmetic is cheap; an operation that reuses every number it loads thousands of
times can keep the arithmetic units busy.

## A race: loops, broadcasting and BLAS

How do our two from-scratch matmuls compare with PyTorch's? The figure times all three on the same
square matrices, on one CPU thread, and is re-measured every time this site is built:

![Measured time and throughput against matrix size for the three matmuls: Python loops, broadcast-multiply-sum and torch.matmul](plot_matmul_timings.svg)

The loops pay the Python interpreter for every single multiply-add. Broadcasting moves the loops into
C++, but writes all $mkn$ products to memory before summing them. `torch.matmul` hands the work to a
BLAS library (Basic Linear Algebra Subprograms, the tuned maths library underneath PyTorch).

??? note "Deep dive: what BLAS does, and the race in your own hands"
    A BLAS library cuts the matrices into tiles that fit the CPU's caches and multiplies them with vector
    instructions (and, given more than the one thread this race allows, spreads the tiles over the
    cores); on a GPU, cuBLAS does the same across thousands of threads. Tiny matrices hide most of this
    behind fixed call overheads; the gap widens as $n$ grows.

    [`compare_matmuls`][torchenstein.tensors.matmul.compare_matmuls] times the three contenders on the
    same pair of random `(n, n)` matrices with [`time_it`][torchenstein.lab.time_it], after checking that
    they agree. It allows PyTorch one CPU thread, so that the race measures the algorithms and not how
    busy your other cores happen to be. It returns seconds per product, which belong to your machine, so
    this page checks only what every machine must give:

    ```pycon
    >>> from torchenstein.tensors.matmul import compare_matmuls
    >>> timings = compare_matmuls(n=16, repeat=3)
    >>> {name: "measured" if seconds > 0 else "broken" for name, seconds in timings.items()}
    {'loops': 'measured', 'broadcast': 'measured', 'torch.matmul': 'measured'}

    ```

    Run it yourself and print your own table, throughput included:

    ```python
    for name, seconds in compare_matmuls(n=64).items():
        gflops = matmul_flops((64, 64), (64, 64)) / seconds / 1e9
        print(f"{name:13} {seconds * 1e6:10.1f} us {gflops:8.3f} GFLOP/s")
    ```

## Integers, floats and booleans

Matmul works on `int64` (and the other integer types) on the CPU, exactly: no rounding, though a
sum too big for the dtype wraps around. On CUDA it does not: cuBLAS offers no general integer matrix
product, and PyTorch's CUDA matmul raises for integer tensors (the feature request is
pytorch/pytorch issue 44428); cast to a float type there. What matmul never does is **type
promotion**: where `+` would turn `int64` and `float32` into `float32`, `@` demands one dtype on both
sides. And `bool` has no matmul at all; cast to an integer type, then compare with 0 to get booleans
back.

```pycon
>>> counts = torch.tensor([[1, 2], [3, 4]])
>>> counts @ counts
tensor([[ 7, 10],
        [15, 22]])
>>> counts + torch.ones(2, 2)  # elementwise: promoted to float32
tensor([[2., 3.],
        [4., 5.]])
>>> counts @ torch.ones(2, 2)
Traceback (most recent call last):
...
RuntimeError: expected m1 and m2 to have the same dtype, but got: long int != float
>>> matmul(counts, torch.ones(2, 2))  # ours says why
Traceback (most recent call last):
...
TypeError: input and other must have the same dtype (matmul never promotes), got torch.int64 and torch.float32
>>> counts.float() @ torch.ones(2, 2)  # cast one side to the other's dtype
tensor([[3., 3.],
        [7., 7.]])
>>> edges = torch.tensor([[False, True, False], [False, False, True], [False, False, False]])
>>> try:
...     edges @ edges
... except (RuntimeError, NotImplementedError) as err:  # the error's type differs between releases
...     print("refused:", "not implemented for 'Bool'" in str(err))
refused: True
>>> (edges.long() @ edges.long()) > 0  # paths of two steps: only 0 -> 1 -> 2
tensor([[False, False,  True],
        [False, False, False],
        [False, False, False]])

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `*` for `@`"
    On square matrices `*` never complains: it multiplies entry by entry and returns the wrong answer
    with a straight face. Multiplying by the identity should change nothing; watch it change everything.

    ```pycon
    >>> W, eye = torch.tensor([[1, 2], [3, 4]]), torch.eye(2, dtype=torch.long)
    >>> W * eye
    tensor([[1, 0],
            [0, 4]])
    >>> W @ eye
    tensor([[1, 2],
            [3, 4]])

    ```

!!! hammer "Dr. Hammer's trap: the vector that picks its own orientation"
    A 1-D tensor is a column on the right of `@` and a row on the left, and the result is 1-D again.
    Dr. Hammer's notes say "column vector", so he adds a `(2, 1)` bias to `M @ v` and broadcasting
    quietly builds a 2 x 2 table. For an outer product he writes `v @ v` and gets a dot product. Make
    the orientation explicit.

    ```pycon
    >>> M, v = torch.tensor([[1, 2], [3, 4]]), torch.tensor([1, 1])
    >>> M @ v, v @ M  # both run: v is a column in one, a row in the other
    (tensor([3, 7]), tensor([4, 6]))
    >>> bias = torch.zeros(2, 1, dtype=torch.long)
    >>> (M @ v + bias).shape, (M @ v[:, None] + bias).shape
    (torch.Size([2, 2]), torch.Size([2, 1]))
    >>> v @ v, v[:, None] @ v[None, :]
    (tensor(2), tensor([[1, 1],
            [1, 1]]))

    ```

!!! hammer "Dr. Hammer's trap: one vector per batch element"
    `(B, T, C) @ (C, D)` broadcasts one matrix over the batch. But one *vector per batch
    element*, shape `(B, C)`, is read by `@` as one `(B, C)` matrix shared by the whole batch: an error
    when `B != C`, and worse, when `B == C`, no error and a `(B, T, B)` tensor of nonsense. Turn each
    vector into a `(C, 1)` column of its own.

    ```pycon
    >>> h, v = torch.randn(8, 10, 16), torch.randn(8, 16)  # (B, T, C) and (B, C)
    >>> (h @ torch.randn(16, 32)).shape
    torch.Size([8, 10, 32])
    >>> matmul(h, v)
    Traceback (most recent call last):
    ...
    ValueError: input's last dimension (16) must equal other's second-to-last dimension (8), got shapes (8, 10, 16) and (8, 16)
    >>> (h @ v[:, :, None]).squeeze(-1).shape  # (B, T, C) @ (B, C, 1) -> (B, T, 1) -> (B, T)
    torch.Size([8, 10])
    >>> h4, v4 = torch.randn(4, 10, 4), torch.randn(4, 4)  # B == C: no error at all
    >>> (h4 @ v4).shape, (h4 @ v4[:, :, None]).squeeze(-1).shape  # nonsense, then the real thing
    (torch.Size([4, 10, 4]), torch.Size([4, 10]))

    ```

## Challenges

1. **The batched quadratic form.** Write `batched_quadratic_form(x, A)` that returns
   $x^\top A x = \sum_{i,j} x_i A_{ij} x_j$ for `x` of shape `(..., n)` and `A` of shape `(..., n, n)`,
   whose batch dimensions broadcast; the result has the broadcast batch shape (0-D for a single pair).
   Use `@` and the rank rules, not loops.
2. **Squared distances by matmul.** Write `squared_distances_by_matmul(x, y)` for `x` of shape
   `(..., N, D)` and `y` of shape `(..., M, D)`: the `(..., N, M)` tensor of squared Euclidean
   distances $\lVert x_i - y_j \rVert^2$, computed as
   $\lVert x_i \rVert^2 - 2\, x_i \cdot y_j + \lVert y_j \rVert^2$ with one matmul for the middle term,
   in the dtype of the inputs and never negative (rounding can make it dip below zero). This is the trick
   behind `torch.cdist`, which the broadcasting lesson's trap "the accidental outer product" called for:
   nothing of size `N * M * D` is ever built.

Check yours with `check_batched_quadratic_form(my_function)` and
`check_squared_distances_by_matmul(my_function)`, or put them in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.tensors.matmul import batched_quadratic_form, check_batched_quadratic_form
>>> from torchenstein.tensors.matmul import check_squared_distances_by_matmul, squared_distances_by_matmul
>>> check_batched_quadratic_form(batched_quadratic_form)
>>> check_squared_distances_by_matmul(squared_distances_by_matmul)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure, time_it

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _require_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_operands(a: object, b: object, names: tuple[str, str] = ("input", "other")) -> None:
    # The dtype and device rules every matmul in this lesson shares with PyTorch's.
    _require_tensor(a, names[0])
    _require_tensor(b, names[1])
    if a.dtype != b.dtype:
        raise TypeError(
            f"{names[0]} and {names[1]} must have the same dtype (matmul never promotes), got {a.dtype} and {b.dtype}"
        )
    if a.dtype == torch.bool:
        raise TypeError(f"matmul does not support torch.bool; cast first, e.g. {names[0]}.long() @ {names[1]}.long()")
    if a.device != b.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on one device, got {a.device} and {b.device}")


def _broadcast_batch(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    # Align the two batch shapes from the right; a missing dimension counts as 1, and a 1 stretches
    # to match the other side. Any other disagreement means they do not broadcast: None.
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _plan(a_shape: Sequence[int], b_shape: Sequence[int]) -> tuple[tuple[int, ...], int, int, int, tuple[int, ...]]:
    # Apply every rank rule of matmul to two shapes: returns (batch, m, k, n, output shape), or raises
    # a ValueError that names the original shapes.
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if not a_shape or not b_shape:
        raise ValueError(
            f"input and other must have at least 1 dimension each, got shapes {a_shape} and {b_shape}; "
            "scale by a 0-D tensor with *"
        )
    # The 1-D rules: a vector on the left becomes a row (1, k), a vector on the right a column (k, 1).
    a = (1, *a_shape) if len(a_shape) == 1 else a_shape
    b = (*b_shape, 1) if len(b_shape) == 1 else b_shape
    (m, k), (k_other, n) = a[-2:], b[-2:]
    if k != k_other:
        where = "only" if len(b_shape) == 1 else "second-to-last"
        raise ValueError(
            f"input's last dimension ({k}) must equal other's {where} dimension ({k_other}), "
            f"got shapes {a_shape} and {b_shape}"
        )
    batch = _broadcast_batch(a[:-2], b[:-2])
    if batch is None:
        raise ValueError(
            f"the batch dimensions of input {a[:-2]} and other {b[:-2]} do not broadcast, "
            f"got shapes {a_shape} and {b_shape}"
        )
    # The dimensions the 1-D rules added are removed again: no m for a vector input, no n for a vector other.
    out = batch + ((m,) if len(a_shape) > 1 else ()) + ((n,) if len(b_shape) > 1 else ())
    return batch, m, k, n, out


def mm_loops(input: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    """Multiply two matrices with three nested Python loops, like `torch.mm` but far slower.

    The textbook formula, one scalar at a time: ``out[i][j] = sum(input[i][p] * mat2[p][j] for p)``. It
    works on Python numbers, so it keeps no autograd history; use it for tiny matrices only.

    Args:
        input: a 2-D tensor of shape ``(m, k)``.
        mat2: a 2-D tensor of shape ``(k, n)``, of ``input``'s dtype.

    Returns:
        The ``(m, n)`` product, in ``input``'s dtype and on its device.

    Raises:
        TypeError: if an argument is not a tensor, the dtypes differ, or they are ``torch.bool``.
        ValueError: if an argument is not 2-D or the inner sizes differ.

    Examples:
        >>> mm_loops(torch.tensor([[1, 2]]), torch.tensor([[3], [4]]))
        tensor([[11]])
    """
    _check_operands(input, mat2, ("input", "mat2"))
    for name, t in (("input", input), ("mat2", mat2)):
        if t.ndim != 2:
            raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(t.shape)}")
    (m, k), (k_other, n) = input.shape, mat2.shape
    if k != k_other:
        raise ValueError(
            f"input's columns ({k}) must equal mat2's rows ({k_other}), got shapes {tuple(input.shape)} and {tuple(mat2.shape)}"
        )
    a, b = input.tolist(), mat2.tolist()
    out = [[0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            total = 0
            for p in range(k):
                total += a[i][p] * b[p][j]
            out[i][j] = total
    # The sums were taken in Python numbers (ints that never overflow, 64-bit floats); one conversion at
    # the end rounds (or wraps) them into the input's dtype. `reshape` keeps the shape when m or n is 0.
    wide = torch.complex128 if input.is_complex() else torch.float64 if input.is_floating_point() else torch.int64
    result = torch.tensor(out, dtype=wide).reshape(m, n)
    return result.to(dtype=input.dtype, device=input.device)


def _multiply_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Half-precision products are summed in float32 and rounded once at the end, as PyTorch's CPU matmul
    # kernels do; rounding every partial sum to 11 (float16) or 8 (bfloat16) significant bits would drift.
    # (On CUDA, cuBLAS may round partial sums: torch.backends.cuda.matmul.allow_*_reduced_precision_reduction.)
    wide = torch.float32 if a.dtype in (torch.float16, torch.bfloat16) else a.dtype
    # (..., m, k, 1) * (..., 1, k, n) -> (..., m, k, n): every A[i, p] meets every B[p, j].
    products = a[..., :, :, None].to(wide) * b[..., None, :, :].to(wide)
    # Summing over p leaves (..., m, n). `dtype=` stops `sum` from widening small integers to int64.
    return products.sum(dim=-2, dtype=wide).to(a.dtype)


def matmul_broadcast(input: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Multiply stacks of matrices by broadcasting, multiplying and summing, with no loop in sight.

    Computes ``(input[..., :, :, None] * other[..., None, :, :]).sum(-2)``. The batch dimensions (all but
    the last two) broadcast as in `torch.matmul`. The intermediate tensor holds every product, ``k``
    times the size of the result.

    Args:
        input: a tensor of shape ``(*batch_a, m, k)``, at least 2-D.
        other: a tensor of shape ``(*batch_b, k, n)``, at least 2-D, of ``input``'s dtype.

    Returns:
        A tensor of shape ``(*broadcast(batch_a, batch_b), m, n)``.

    Raises:
        TypeError: if an argument is not a tensor, the dtypes differ, or they are ``torch.bool``.
        ValueError: if an argument is not at least 2-D, the inner sizes differ or the batches do not broadcast.

    Examples:
        >>> matmul_broadcast(torch.ones(2, 1, 3, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))
        tensor([[[3, 3, 3, 3]],
        <BLANKLINE>
                [[3, 3, 3, 3]]])
    """
    _check_operands(input, other)
    for name, t in (("input", input), ("other", other)):
        if t.ndim < 2:
            raise ValueError(f"{name} must have at least 2 dimensions (use matmul for vectors), got shape {tuple(t.shape)}")
    _plan(input.shape, other.shape)
    return _multiply_sum(input, other)


def matmul(input: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The matrix product with every rank rule of `torch.matmul`, written from scratch.

    1-D @ 1-D is a dot product; a 1-D ``input`` becomes a row ``(1, k)`` and a 1-D ``other`` a column
    ``(k, 1)`` for the product, and those added dimensions are removed from the result. All dimensions
    but the last two are batch dimensions, and they broadcast.

    Args:
        input: a tensor with at least one dimension.
        other: a tensor with at least one dimension, of ``input``'s dtype and on its device.

    Returns:
        The same shape and values as ``torch.matmul(input, other)`` (up to rounding), with gradients.

    Raises:
        TypeError: if an argument is not a tensor, the dtypes differ, or they are ``torch.bool``.
        ValueError: if an argument is 0-D, the inner sizes differ or the batch dimensions do not broadcast.

    Examples:
        >>> matmul(torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6]))
        tensor(32)
        >>> matmul(torch.ones(5, 1, 2, 3), torch.ones(4, 3, 7)).shape
        torch.Size([5, 4, 2, 7])
    """
    _check_operands(input, other)
    *_, out_shape = _plan(input.shape, other.shape)
    a = input.unsqueeze(0) if input.ndim == 1 else input  # (..., m, k)
    b = other.unsqueeze(-1) if other.ndim == 1 else other  # (..., k, n)
    # The sizes-one the 1-D rules added are dropped by reshaping straight to the planned shape (a view).
    return _multiply_sum(a, b).reshape(out_shape)


def _check_shape(shape: object, name: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise TypeError(f"{name} must be a tuple of non-negative ints, got {shape!r}")
    return tuple(shape)


def matmul_flops(a_shape: Sequence[int], b_shape: Sequence[int]) -> int:
    """Count the floating-point operations of ``torch.matmul`` on operands of these shapes.

    One multiply-add counts as two operations, so one ``(m, k) @ (k, n)`` product costs ``2 * m * n * k``,
    and a batch multiplies that by the number of matrices in the broadcast batch shape. The rank rules
    are those of `torch.matmul` (a vector dot product of length ``k`` costs ``2 * k``).

    Args:
        a_shape: the shape of ``input``.
        b_shape: the shape of ``other``.

    Returns:
        The operation count, a Python int.

    Raises:
        TypeError: if a shape is not a tuple of non-negative ints.
        ValueError: if the shapes cannot be multiplied.

    Examples:
        >>> matmul_flops((4, 2, 3), (3, 5))
        240
    """
    batch, m, k, n, _ = _plan(_check_shape(a_shape, "a_shape"), _check_shape(b_shape, "b_shape"))
    return 2 * math.prod(batch) * m * n * k


def compare_matmuls(*, n: int = 32, repeat: int = 3, seed: int = 0, threads: int | None = 1) -> dict[str, float]:
    """Time the three matmuls of this lesson on the same pair of random ``(n, n)`` float32 matrices.

    All three results are checked against each other first: only contestants that agree may race.

    Args:
        n: the size of the square matrices.
        repeat: timed runs per contestant; the median is kept (see `torchenstein.lab.time_it`).
        seed: seed for the random matrices.
        threads: CPU threads PyTorch may use while timing (restored afterwards); ``None`` keeps the
            current setting.

    Returns:
        Seconds per product, keyed ``"loops"`` (`mm_loops`), ``"broadcast"`` (`matmul_broadcast`) and
        ``"torch.matmul"``, in that order.

    Raises:
        ValueError: if ``n``, ``repeat`` or ``threads`` is not a positive int.

    Examples:
        >>> sorted(compare_matmuls(n=4, repeat=1))
        ['broadcast', 'loops', 'torch.matmul']
    """
    for name, value in (("n", n), ("repeat", repeat), ("threads", 1 if threads is None else threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    generator = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, n, n, generator=generator).unbind(0)
    contestants = {"loops": mm_loops, "broadcast": matmul_broadcast, "torch.matmul": torch.matmul}
    reference = torch.matmul(a, b)
    for fn in contestants.values():
        torch.testing.assert_close(fn(a, b), reference, rtol=1e-4, atol=1e-4)
    # On a busy machine a multi-threaded kernel stalls until every thread gets a core: one thread is honest.
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        return {name: time_it(lambda fn=fn: fn(a, b), repeat=repeat, device="cpu") for name, fn in contestants.items()}
    finally:
        torch.set_num_threads(before)


def plot_matmul_timings(*, sizes: Sequence[int] = (4, 8, 16, 32, 64), repeat: int = 3) -> Figure:
    """Measure and plot time and throughput against matrix size for the three matmuls, on one thread.

    Args:
        sizes: the square matrix sizes ``n`` to time.
        repeat: timed runs per point.

    Returns:
        A figure with two axes: seconds per product, and GFLOP/s (``2 n^3`` operations per product).

    Raises:
        ValueError: if ``sizes`` is empty or holds a size below 1, or ``repeat`` is below 1.

    Examples:
        >>> fig = plot_matmul_timings(sizes=(2, 4), repeat=1)
        >>> len(fig.axes)
        2
    """
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes!r}")
    runs = [compare_matmuls(n=n, repeat=repeat) for n in sizes]
    fig, (ax_time, ax_rate) = new_figure(1, 2, width=9.0, height=3.6)
    for colour, name in zip(PALETTE, runs[0], strict=False):
        seconds = [run[name] for run in runs]
        rates = [matmul_flops((n, n), (n, n)) / s / 1e9 for n, s in zip(sizes, seconds, strict=True)]
        ax_time.plot(sizes, seconds, "o-", color=colour, label=name)
        ax_rate.plot(sizes, rates, "o-", color=colour, label=name)
    for ax in (ax_time, ax_rate):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(sizes), [str(n) for n in sizes])
        ax.minorticks_off()
    ax_time.set(xlabel="matrix size n", ylabel="seconds per (n, n) @ (n, n)", title="Time (measured here, one thread)")
    ax_rate.set(xlabel="matrix size n", ylabel="GFLOP/s", title="Throughput: 2n³ operations / time")
    ax_time.legend()
    return fig


def plot_matmul_shapes(*, m: int = 3, k: int = 4, n: int = 2, batch: int = 2, i: int = 1, j: int = 0) -> Figure:
    """Draw a batch of ``(m, k) @ (k, n) -> (m, n)`` products, with one row, one column and their meeting cell.

    Args:
        m: rows of ``input`` and of the result.
        k: the inner size, summed away.
        n: columns of ``other`` and of the result.
        batch: how many matrices ``input`` stacks (``other`` is one matrix, broadcast over them).
        i: the highlighted row.
        j: the highlighted column.

    Returns:
        A figure with one axes.

    Raises:
        ValueError: if a size is below 1 or ``i``/``j`` lies outside the matrix.

    Examples:
        >>> fig = plot_matmul_shapes(m=2, k=2, n=2, batch=1, i=0, j=1)
        >>> len(fig.axes)
        1
    """
    if min(m, k, n, batch) < 1:
        raise ValueError(f"m, k, n and batch must be at least 1, got m={m}, k={k}, n={n}, batch={batch}")
    if not (0 <= i < m and 0 <= j < n):
        raise ValueError(f"i must lie in [0, {m}) and j in [0, {n}), got i={i}, j={j}")
    from matplotlib.patches import Rectangle

    fig, (ax,) = new_figure(1, 1, width=8.0, height=3.4)
    shift = 0.35  # each matrix of a batch is drawn up and to the right of the one before it

    def grid(x0: float, rows: int, cols: int, copies: int, lit: Callable[[int, int], bool], colour: str) -> None:
        # Cells are unit squares, row 0 at the top; the copies behind the front matrix are faint.
        for c in reversed(range(copies)):
            front = c == 0
            for r in range(rows):
                for q in range(cols):
                    face = colour if front and lit(r, q) else "#eeeeee" if front else "#f7f7f7"
                    ax.add_patch(Rectangle((x0 + q + c * shift, rows - 1 - r + c * shift), 1, 1, facecolor=face,
                                           edgecolor="#999999", linewidth=1))

    x_b = k + 1.5 + (batch - 1) * shift
    x_c = x_b + n + 1.5
    grid(0, m, k, batch, lambda r, q: r == i, PALETTE[0])
    grid(x_b, k, n, 1, lambda r, q: q == j, PALETTE[1])
    grid(x_c, m, n, batch, lambda r, q: (r, q) == (i, j), PALETTE[2])
    top = max(m, k) + (batch - 1) * shift
    ax.text(k + 0.75 + (batch - 1) * shift / 2, max(m, k) / 2, "@", ha="center", va="center", fontsize=18)
    ax.text(x_b + n + 0.75, max(m, k) / 2, "=", ha="center", va="center", fontsize=18)
    labels = [(k / 2, f"input ({batch}, m={m}, k={k})"), (x_b + n / 2, f"other (k={k}, n={n})"),
              (x_c + n / 2, f"result ({batch}, m={m}, n={n})")]  # fmt: skip
    for x, label in labels:
        ax.text(x, -0.6, label, ha="center", va="top", fontsize=9)
    ax.set(xlim=(-0.5, x_c + n + (batch - 1) * shift + 0.5), ylim=(-1.6, top + 0.5), aspect="equal")
    ax.set_title(f"row {i} of every input matrix meets column {j} of other: one cell per batch", fontsize=10)
    ax.axis("off")
    return fig


def batched_quadratic_form(x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Challenge solution: ``x^T A x`` for a broadcast batch of vectors and matrices.

    Args:
        x: vectors, shape ``(..., n)``.
        A: matrices, shape ``(..., n, n)``; the batch dimensions of ``x`` and ``A`` broadcast.

    Returns:
        Shape: the broadcast batch shape (0-D for one vector and one matrix).

    Raises:
        TypeError: if an argument is not a tensor or the dtypes differ.
        ValueError: if ``A`` is not square, its size is not ``x``'s, or the batches do not broadcast.

    Examples:
        >>> batched_quadratic_form(torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
        tensor(13.)
    """
    _check_operands(x, A, ("x", "A"))
    if x.ndim < 1 or A.ndim < 2 or A.shape[-1] != A.shape[-2] or A.shape[-1] != x.shape[-1]:
        raise ValueError(f"x must be (..., n) and A (..., n, n), got shapes {tuple(x.shape)} and {tuple(A.shape)}")
    if _broadcast_batch(tuple(x.shape[:-1]), tuple(A.shape[:-2])) is None:
        raise ValueError(f"the batch shapes of x {tuple(x.shape[:-1])} and A {tuple(A.shape[:-2])} do not broadcast")
    # Each vector is made a row (..., 1, n) and a column (..., n, 1) by hand. Leaning on the 1-D rules
    # instead would fail for batched x: `@` reads a 2-D x as one matrix, its batch as rows.
    # (..., 1, n) @ (..., n, n) @ (..., n, 1) -> (..., 1, 1)
    return (x.unsqueeze(-2) @ A @ x.unsqueeze(-1)).squeeze(-1).squeeze(-1)


def _attempt(candidate: Callable, where: str, *args: torch.Tensor) -> torch.Tensor:
    # Run a learner's attempt on copies, and turn any crash into a failed check that says where.
    try:
        got = candidate(*(a.clone() for a in args))
    except Exception as err:  # any failure of the attempt is a failed check
        raise AssertionError(f"{where}: the attempt raised {type(err).__name__}: {err}") from err
    assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
    return got


def check_batched_quadratic_form(candidate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``batched_quadratic_form``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_batched_quadratic_form(batched_quadratic_form)
    """
    generator = torch.Generator().manual_seed(0)
    cases = [((3,), (3, 3)), ((5, 3), (3, 3)), ((3,), (4, 3, 3)), ((2, 1, 3), (1, 4, 3, 3)),
             ((6, 1), (6, 1, 1)), ((0, 3), (3, 3)), ((2, 5, 4), (2, 1, 4, 4))]  # fmt: skip
    for x_shape, A_shape in cases:
        x = torch.randn(x_shape, dtype=torch.float64, generator=generator)
        A = torch.randn(A_shape, dtype=torch.float64, generator=generator)
        where = f"x of shape {x_shape}, A of shape {A_shape}"
        got = _attempt(candidate, where, x, A)
        # The sum over i and j, by broadcasting alone: an independent road to the same numbers.
        expected = (x[..., :, None] * A * x[..., None, :]).sum((-2, -1))
        assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        torch.testing.assert_close(got, expected, msg=lambda m, where=where: f"{where}: wrong values. {m}")


def squared_distances_by_matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Challenge solution: all squared Euclidean distances between two sets of points, via one matmul.

    Args:
        x: points, shape ``(..., N, D)``.
        y: points, shape ``(..., M, D)``; the batch dimensions broadcast.

    Returns:
        Shape ``(..., N, M)``: ``|x_i - y_j|^2``, clamped at zero, in the inputs' dtype.

    Raises:
        TypeError: if an argument is not a floating-point tensor or the dtypes differ.
        ValueError: if the shapes do not fit.

    Examples:
        >>> squared_distances_by_matmul(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[3.0, 4.0]]))
        tensor([[25.],
                [13.]])
    """
    _check_operands(x, y, ("x", "y"))
    if not x.dtype.is_floating_point:
        raise TypeError(f"x and y must be floating-point tensors, got {x.dtype}")
    if x.ndim < 2 or y.ndim < 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x must be (..., N, D) and y (..., M, D), got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    x_sq = (x * x).sum(-1, keepdim=True)  # (..., N, 1)
    y_sq = (y * y).sum(-1).unsqueeze(-2)  # (..., 1, M)
    # `.mT` transposes the last two dimensions of any batch; `.T` would reverse all of them.
    cross = x @ y.mT  # (..., N, M)
    # Subtracting nearly equal numbers can leave a tiny negative: a distance never is.
    return (x_sq - 2 * cross + y_sq).clamp_min(0)


def check_squared_distances_by_matmul(candidate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``squared_distances_by_matmul``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_squared_distances_by_matmul(squared_distances_by_matmul)
    """
    generator = torch.Generator().manual_seed(0)
    cases = [((4, 3), (5, 3)), ((2, 4, 3), (2, 5, 3)), ((2, 1, 4, 3), (3, 5, 3)), ((1, 1), (1, 1)), ((0, 3), (2, 3))]
    pairs = [(torch.randn(a, dtype=torch.float64, generator=generator),
              torch.randn(b, dtype=torch.float64, generator=generator)) for a, b in cases]  # fmt: skip
    # Far-away points measured against themselves and against near twins: the distances are (almost) 0,
    # and rounding in the three big terms pushes some of them below zero unless the attempt clamps.
    far = 1e3 + torch.randn(64, 8, dtype=torch.float64, generator=generator)
    near = far + 1e-9 * torch.randn(64, 8, dtype=torch.float64, generator=generator)
    pairs += [(far, far), (far, near), (pairs[0][0].float(), pairs[0][1].float())]
    for x, y in pairs:
        where = f"x of shape {tuple(x.shape)}, y of shape {tuple(y.shape)}, dtype {x.dtype}"
        got = _attempt(candidate, where, x, y)
        expected = ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)
        assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert got.dtype == x.dtype, f"{where}: expected dtype {x.dtype}, got {got.dtype}"
        assert not (got < 0).any(), f"{where}: a squared distance came out negative; clamp at zero"
        atol = 1e-6 if x.dtype == torch.float64 else 1e-4
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=atol, msg=lambda m, where=where: f"{where}: wrong values. {m}")
