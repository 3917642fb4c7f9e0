r"""
# Tensor Surgery: Cutting, Stitching and the Secret Life of Views

!!! torchenstein "The Professor speaks"
    A monster is assembled from parts, my apprentice, and parts are cut from tensors! Today we take up
    the scalpel (indexing), the needle (`cat` and `stack`) and the grafting clamp (`gather` and `scatter`).
    And we learn the darkest secret of the operating theatre: some cuts bleed into the original.

**You will learn to**

- slice tensors with integers, negative indices, steps, `...` and `None`;
- pick elements with boolean masks and integer ("fancy") indices;
- stitch tensors with `torch.cat` and `torch.stack`, and cut them with `split`, `chunk` and `unbind`;
- pick and place elements along a dimension with `index_select`, `gather` and `scatter`;
- tell a view (shares memory with the original) from a copy, and prove it;
- write `gather`, `scatter`, `index_select`, `cat`, `stack`, `split` and `chunk` from scratch.

## The scalpel: basic indexing and slicing

An integer picks one position and removes that dimension; a slice `start:stop:step` keeps the
dimension. Negative indices count from the end. `...` stands for "every dimension I did not mention",
and `None` inserts a new dimension of size one.

```pycon
>>> import torch
>>> x = torch.arange(12).reshape(3, 4)
>>> x
tensor([[ 0,  1,  2,  3],
        [ 4,  5,  6,  7],
        [ 8,  9, 10, 11]])
>>> x[1], x[1, 2], x[-1, -1]
(tensor([4, 5, 6, 7]), tensor(6), tensor(11))
>>> x[:, 1]
tensor([1, 5, 9])
>>> x[0, ::2], x[-2:, 1:3].shape
(tensor([0, 2]), torch.Size([2, 2]))
>>> x[..., -1], x[None].shape, x[:, None].shape, x[..., None].shape
(tensor([ 3,  7, 11]), torch.Size([1, 3, 4]), torch.Size([3, 1, 4]), torch.Size([3, 4, 1]))

```

Unlike NumPy, PyTorch refuses negative steps; `torch.flip` reverses instead (and copies).

```pycon
>>> x[0, ::-1]
Traceback (most recent call last):
...
ValueError: step must be greater than zero
>>> x[0].flip(0)
tensor([3, 2, 1, 0])

```

## Who shares memory? Views and copies

A *view* is a new tensor header over the **same storage** as the original; a *copy* owns fresh memory.
Basic indexing (integers, slices, `...`, `None`) always returns a view. Our witness is
[`shares_memory`][torchenstein.tensors.surgery.shares_memory], which compares where the storages begin:

```pycon
>>> from torchenstein.tensors.surgery import shares_memory
>>> x = torch.arange(12).reshape(3, 4)
>>> corner = x[1:, ::2]
>>> {"corner": shares_memory(x, corner), "corner.clone()": shares_memory(x, corner.clone())}
{'corner': True, 'corner.clone()': False}
>>> corner[0, 0] = 100
>>> x[1]
tensor([100,   5,   6,   7])

```

## Boolean masks and fancy indexing

A boolean mask of the same shape picks every `True` element and returns them **flattened** into one
dimension. A tensor (or list) of integers picks whole rows; two of them pick `(row, column)` pairs.
They may pick from scattered places that no strides can describe, so PyTorch always returns a copy.

```pycon
>>> x = torch.arange(12).reshape(3, 4)
>>> x[x % 5 == 0]
tensor([ 0,  5, 10])
>>> x[[0, 2]]
tensor([[ 0,  1,  2,  3],
        [ 8,  9, 10, 11]])
>>> x[[0, 2], [1, 3]]
tensor([ 1, 11])
>>> x[torch.tensor([[0, 1], [1, 2]])].shape
torch.Size([2, 2, 4])
>>> {"x[[0, 2]]": shares_memory(x, x[[0, 2]]), "x[x > 3]": shares_memory(x, x[x > 3])}
{'x[[0, 2]]': False, 'x[x > 3]': False}

```

Writing *directly* through a mask or an index tensor does change the original, because `x[mask] = v`
is one in-place operation (`index_put_`), not "read a copy, then write into it":

```pycon
>>> x[x > 8] = 0
>>> x[2]
tensor([8, 0, 0, 0])

```

## Stitching: `cat` and `stack`

`torch.cat` glues tensors along an **existing** dimension: that dimension grows, the others must match.
`torch.stack` first adds a **new** dimension, so all tensors must have exactly the same shape. Both allocate
a fresh output and copy the pieces in, as our [`cat`][torchenstein.tensors.surgery.cat] and
[`stack`][torchenstein.tensors.surgery.stack] do:

```pycon
>>> from torchenstein.tensors.surgery import cat, stack
>>> a, b = torch.zeros(2, 3), torch.ones(2, 3)
>>> torch.cat([a, b]).shape, torch.cat([a, b], dim=1).shape
(torch.Size([4, 3]), torch.Size([2, 6]))
>>> torch.stack([a, b]).shape, torch.stack([a, b], dim=-1).shape
(torch.Size([2, 2, 3]), torch.Size([2, 3, 2]))
>>> torch.equal(cat([a, b], dim=1), torch.cat([a, b], dim=1))
True
>>> torch.equal(stack([a, b], dim=2), torch.stack([a, b], dim=2))
True
>>> {"cat": shares_memory(a, torch.cat([a, b])), "stack": shares_memory(a, torch.stack([a, b]))}
{'cat': False, 'stack': False}

```

## Cutting apart: `split`, `chunk` and `unbind`

`split(size)` cuts pieces of `size` (the last one may be smaller); `split([sizes])` cuts exactly those
sizes; `unbind` removes a dimension and returns every slice along it. `chunk(chunks)` is the surprising
one: it does **not** promise `chunks` pieces. It computes one piece size
$\lceil n / \text{chunks} \rceil$ and splits by it, so fewer pieces may come out. All of them are views.

```pycon
>>> from torchenstein.tensors.surgery import chunk, split
>>> v = torch.arange(6)
>>> torch.split(v, 4), torch.split(v, [1, 5])
((tensor([0, 1, 2, 3]), tensor([4, 5])), (tensor([0]), tensor([1, 2, 3, 4, 5])))
>>> [piece.tolist() for piece in torch.chunk(v, 4)]
[[0, 1], [2, 3], [4, 5]]
>>> all(torch.equal(p, q) for p, q in zip(chunk(v, 4), torch.chunk(v, 4)))
True
>>> [piece.shape for piece in split(torch.zeros(5, 2), 2)]
[torch.Size([2, 2]), torch.Size([2, 2]), torch.Size([1, 2])]
>>> rows = torch.arange(6).reshape(2, 3).unbind(0)
>>> rows
(tensor([0, 1, 2]), tensor([3, 4, 5]))
>>> {"chunk": all(shares_memory(v, p) for p in torch.chunk(v, 4)), "split": shares_memory(v, torch.split(v, 4)[1])}
{'chunk': True, 'split': True}

```

## Picking along a dimension: `index_select` and `gather`

`index_select(input, dim, index)` takes whole slices along `dim`, in the order a 1-D `index` names them.
`gather(input, dim, index)` is finer: `index` has as many dimensions as `input`, the output has the shape
of `index`, and each output element takes its coordinate along `dim` from `index` and all other
coordinates from its own position. For a matrix and `dim=1`:

$$
\text{out}[i][j] = \text{input}[i][\,\text{index}[i][j]\,]
$$

![Gather along dim 1: each output cell takes the input column that the index names, shown by colour](plot_gather.svg)

Our [`gather`][torchenstein.tensors.surgery.gather] builds a full grid of coordinates (arange along every
dimension, `index` along `dim`) and lets advanced indexing do the picking; both results are copies.

```pycon
>>> from torchenstein.tensors.surgery import gather, index_select
>>> x = torch.tensor([[10, 11, 12], [20, 21, 22]])
>>> torch.index_select(x, 1, torch.tensor([2, 0]))
tensor([[12, 10],
        [22, 20]])
>>> index = torch.tensor([[2, 2, 0], [1, 0, 0]])
>>> torch.gather(x, 1, index)
tensor([[12, 12, 10],
        [21, 20, 20]])
>>> torch.equal(gather(x, 1, index), torch.gather(x, 1, index))
True
>>> torch.equal(index_select(x, 0, torch.tensor([1, 1])), torch.index_select(x, 0, torch.tensor([1, 1])))
True
>>> {"gather": shares_memory(x, torch.gather(x, 1, index)),
...  "index_select": shares_memory(x, torch.index_select(x, 1, index[0]))}
{'gather': False, 'index_select': False}

```

## Writing along a dimension: `scatter`, `scatter_add`, `scatter_reduce`

`scatter` is gather's mirror: it writes `src` into a copy of `input`, at the positions that `index` names.
For a matrix and `dim=1`: $\text{out}[i][\,\text{index}[i][j]\,] = \text{src}[i][j]$. When two elements
aim at the same spot, plain `scatter` does not say who wins; `scatter_add` sums them and
`scatter_reduce` combines them with `"sum"`, `"prod"`, `"mean"`, `"amax"` or `"amin"`.

`torch.long` below is PyTorch's other name for `torch.int64` (and `.long()` converts to it).

```pycon
>>> from torchenstein.tensors.surgery import scatter
>>> base = torch.zeros(2, 4, dtype=torch.long)
>>> index = torch.tensor([[3, 0], [1, 2]])
>>> src = torch.tensor([[7, 8], [5, 6]])
>>> torch.scatter(base, 1, index, src)
tensor([[8, 0, 0, 7],
        [0, 5, 6, 0]])
>>> torch.equal(scatter(base, 1, index, src), torch.scatter(base, 1, index, src))
True
>>> bins = torch.tensor([0, 2, 0, 0])
>>> torch.zeros(3, dtype=torch.long).scatter_add(0, bins, torch.tensor([1, 2, 3, 4]))
tensor([8, 0, 2])
>>> torch.zeros(3).scatter_reduce(0, bins, torch.tensor([1., 2., 3., 4.]), reduce="amax", include_self=False)
tensor([4., 0., 2.])

```

## The verdict: view or copy?

[`view_or_copy_table`][torchenstein.tensors.surgery.view_or_copy_table] runs every operation of this
lesson on one tensor and asks `shares_memory` for the verdict:

```pycon
>>> from torchenstein.tensors.surgery import view_or_copy_table
>>> for expression, shared in view_or_copy_table().items():
...     print(f"{expression:24} {'view' if shared else 'copy'}")
x[1]                     view
x[:, 1:3]                view
x[..., None]             view
x[[0, 2]]                copy
x[x > 5]                 copy
torch.cat([x, x])        copy
torch.stack([x, x])      copy
x.split(1)               view
x.chunk(2)               view
x.unbind(1)              view
x.index_select(0, i)     copy
x.gather(1, j)           copy

```

**Where it differs from PyTorch.** The equalities above hold on what both accept, in float, integer and bool
dtypes, on non-contiguous, expanded and empty inputs, with negative dims (the tests prove it). Two corners
differ on purpose: our `gather`, `scatter` and `index_select` want an input with at least one dimension, where
PyTorch also takes a 0-D tensor and treats it as a vector of one element; and our `cat` does not skip the
legacy empty tensor of shape `(0,)` that `torch.cat` quietly ignores. Our from-scratch versions refuse bad
input with a message that names the argument:

```pycon
>>> gather(torch.zeros(2, 3), 1, torch.tensor([[0, 3]]))
Traceback (most recent call last):
...
ValueError: index must hold values in [0, 3) along dim 1, got values in [0, 3]

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the view that bites back"
    Dr. Hammer "saves" a row before normalising it in place, and the original data changes under his feet.
    `.clone()` makes a real copy.

    ```pycon
    >>> data = torch.tensor([[1., 2.], [3., 4.]])
    >>> first = data[0]
    >>> first -= first.mean()
    >>> data[0]
    tensor([-0.5000,  0.5000])
    >>> data = torch.tensor([[1., 2.], [3., 4.]])
    >>> first = data[0].clone()
    >>> first -= first.mean()
    >>> data[0]
    tensor([1., 2.])

    ```

!!! hammer "Dr. Hammer's trap: the write that vanishes"
    The reverse surprise: `x[idx][0] = 1` writes into the *copy* that fancy indexing made, and the original
    never hears of it. Index once, then assign.

    ```pycon
    >>> x = torch.zeros(4, dtype=torch.long)
    >>> idx = torch.tensor([2, 3])
    >>> x[idx][0] = 1
    >>> x
    tensor([0, 0, 0, 0])
    >>> x[idx[0]] = 1
    >>> x
    tensor([0, 0, 1, 0])

    ```

!!! hammer "Dr. Hammer's trap: `stack` when he meant `cat`"
    A *batch* is a stack of samples processed together; with `B` samples of `D` numbers each it has shape
    `(B, D)`. Two batches stacked give `(2, B, D)`, not one batch of `(2B, D)`; the next layer then
    "works" on the wrong axis.

    ```pycon
    >>> batch = torch.zeros(8, 5)
    >>> torch.stack([batch, batch]).shape, torch.cat([batch, batch]).shape
    (torch.Size([2, 8, 5]), torch.Size([16, 5]))

    ```

!!! hammer "Dr. Hammer's trap: `chunk` returns fewer chunks than asked"
    Splitting 6 samples over 4 workers hands out three pieces and leaves a worker idle (and a `zip` silently
    shorter). `torch.tensor_split` always returns exactly the number asked for.

    ```pycon
    >>> samples = torch.arange(6)
    >>> len(torch.chunk(samples, 4)), len(torch.tensor_split(samples, 4))
    (3, 4)
    >>> [len(p) for p in torch.tensor_split(samples, 4)]
    [2, 2, 1, 1]

    ```

!!! hammer "Dr. Hammer's trap: the mask that flattens"
    Masking a `(2, 3)` tensor returns a 1-D tensor, and the rows are gone. To zero out elements while keeping
    the shape, use `torch.where`.

    ```pycon
    >>> scores = torch.tensor([[1, -2, 3], [-4, 5, -6]])
    >>> scores[scores > 0].shape
    torch.Size([3])
    >>> torch.where(scores > 0, scores, 0)
    tensor([[1, 0, 3],
            [0, 5, 0]])

    ```

## Challenges

1. **Pick the logit of the true class.** A classifier scores each of `C` classes for each of `N` samples;
   its raw, unnormalised scores are called **logits** (the larger, the more likely). Write
   `pick_target_logits(logits, targets)`: `logits` has shape `(N, C)`, `targets` holds `N` class
   numbers, and the result of shape `(N,)` holds `logits[i, targets[i]]` for each row (the heart of the
   cross-entropy loss of Part 2; use `gather`).
2. **One-hot by scatter.** Write `one_hot_by_scatter(labels, num_classes)`: for integer `labels` of any
   shape, return an `int64` tensor of shape `(*labels.shape, num_classes)` with a 1 at each label's
   class and 0 elsewhere, using `scatter`.

Check yours with `check_pick_target_logits(my_function)` and `check_one_hot_by_scatter(my_function)`, or put
them in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.tensors.surgery import check_one_hot_by_scatter, check_pick_target_logits
>>> from torchenstein.tensors.surgery import one_hot_by_scatter, pick_target_logits
>>> check_pick_target_logits(pick_target_logits)
>>> check_one_hot_by_scatter(one_hot_by_scatter)

```
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _require_tensor(value: object, name: str, *, min_ndim: int = 0) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(value.shape)}")
    return value


def _normalize_dim(dim: object, ndim: int) -> int:
    # Like PyTorch, a negative `dim` counts from the end; anything outside [-ndim, ndim) is an error.
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"dim must be in [{-ndim}, {ndim - 1}] for a tensor of {ndim} dimension(s), got {dim}")
    return dim % ndim


def _check_index_values(index: torch.Tensor, size: int, dim: int, name: str = "index") -> None:
    if index.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name} must be an int64 or int32 tensor, got dtype {index.dtype}")
    if index.numel() and (index.min() < 0 or index.max() >= size):
        raise ValueError(
            f"{name} must hold values in [0, {size}) along dim {dim}, "
            f"got values in [{index.min().item()}, {index.max().item()}]"
        )


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Say whether two tensors live in the same block of memory (one is a view of the other, or both of one).

    Every tensor is a header (shape, strides, offset) over a storage; views share the storage, so their
    storages start at the same address. Sharing is not overlapping: `x[0]` and `x[1]` share memory but
    touch different numbers.

    Args:
        a: a tensor.
        b: another tensor.

    Returns:
        ``True`` when both tensors use the same, non-empty storage.

    Raises:
        TypeError: if ``a`` or ``b`` is not a tensor.

    Examples:
        >>> x = torch.arange(6)
        >>> {"x[2:]": shares_memory(x, x[2:]), "x[2:].clone()": shares_memory(x, x[2:].clone())}
        {'x[2:]': True, 'x[2:].clone()': False}
    """
    _require_tensor(a, "a")
    _require_tensor(b, "b")
    start = a.untyped_storage().data_ptr()
    # A storage of no bytes sits at address 0, and two empty tensors share nothing.
    return start != 0 and start == b.untyped_storage().data_ptr()


def _check_along_dim(input: object, dim: object, index: object) -> int:
    # The shape contract shared by gather and scatter; returns `dim` made non-negative.
    _require_tensor(input, "input", min_ndim=1)
    _require_tensor(index, "index")
    dim = _normalize_dim(dim, input.ndim)
    if index.ndim != input.ndim:
        raise ValueError(f"index must have {input.ndim} dimension(s) like input, got shape {tuple(index.shape)}")
    for d in range(input.ndim):
        if d != dim and index.size(d) > input.size(d):
            raise ValueError(
                f"index.size({d}) must be at most input.size({d}) = {input.size(d)} "
                f"outside dim {dim}, got index shape {tuple(index.shape)}"
            )
    _check_index_values(index, input.size(dim), dim)
    return dim


def _index_grid(index: torch.Tensor, dim: int) -> tuple[torch.Tensor, ...]:
    # One coordinate tensor per dimension: an `arange` shaped to lie along its own dimension, except
    # along `dim`, where the coordinate is `index` itself. Advanced indexing broadcasts them all to
    # `index.shape`, so element `p` of the result reads position `(p_0, ..., index[p], ..., p_last)`.
    coords = []
    for d, n in enumerate(index.shape):
        if d == dim:
            coords.append(index.long())
        else:
            shape = [1] * index.ndim
            shape[d] = n
            coords.append(torch.arange(n, device=index.device).view(shape))  # (1, .., n, .., 1)
    return tuple(coords)


def gather(input: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """Pick elements of ``input`` along ``dim`` at the positions ``index`` names, like `torch.gather`.

    For a 3-D input and ``dim=1``: ``out[i][j][k] = input[i][index[i][j][k]][k]``.

    Args:
        input: the tensor to pick from, with at least one dimension.
        dim: the dimension along which ``index`` chooses.
        index: an integer tensor with as many dimensions as ``input``, no larger than ``input`` outside
            ``dim``, with values in ``[0, input.size(dim))``.

    Returns:
        A new tensor (a copy) of the shape of ``index``.

    Raises:
        TypeError: if an argument is not a tensor or ``index`` is not an integer tensor.
        ValueError: if ``dim`` is out of range, the shapes do not fit, or an index is out of range.

    Examples:
        >>> gather(torch.tensor([[1, 2], [3, 4]]), 1, torch.tensor([[1, 1], [0, 1]]))
        tensor([[2, 2],
                [3, 4]])
    """
    dim = _check_along_dim(input, dim, index)
    return input[_index_grid(index, dim)]


def scatter(input: torch.Tensor, dim: int, index: torch.Tensor, src: torch.Tensor | float) -> torch.Tensor:
    """Write ``src`` into a copy of ``input`` at the positions ``index`` names, like `torch.scatter`.

    For a 3-D input and ``dim=1``: ``out[i][index[i][j][k]][k] = src[i][j][k]``. When ``index`` names one
    position twice, which value lands there is unspecified, as in PyTorch.

    Args:
        input: the tensor to copy and write into, with at least one dimension.
        dim: the dimension along which ``index`` chooses.
        index: as for [`gather`][torchenstein.tensors.surgery.gather], and no larger than ``src``.
        src: a tensor of ``input``'s dtype (only its leading ``index.shape`` block is used), or a number.

    Returns:
        A new tensor of ``input``'s shape; ``input`` is unchanged.

    Raises:
        TypeError: if an argument has the wrong type, or ``src`` another dtype than ``input``.
        ValueError: if ``dim`` is out of range, the shapes do not fit, or an index is out of range.

    Examples:
        >>> scatter(torch.zeros(2, 3), 1, torch.tensor([[2], [0]]), 1.0)
        tensor([[0., 0., 1.],
                [1., 0., 0.]])
    """
    dim = _check_along_dim(input, dim, index)
    if isinstance(src, torch.Tensor):
        if src.dtype != input.dtype:
            raise TypeError(f"src must have input's dtype {input.dtype}, got {src.dtype}")
        if src.ndim != index.ndim or any(i > s for i, s in zip(index.shape, src.shape, strict=True)):
            raise ValueError(f"src must cover index's shape {tuple(index.shape)}, got shape {tuple(src.shape)}")
        # Only the corner of `src` that `index` covers is written, element for element.
        src = src[tuple(slice(0, n) for n in index.shape)]
    elif isinstance(src, bool) or not isinstance(src, (int, float)):
        raise TypeError(f"src must be a torch.Tensor or a number, got {type(src).__name__}")
    # Writing into a clone keeps the operation out of place, and autograd sees both input and src.
    out = input.clone()
    out[_index_grid(index, dim)] = src
    return out


def index_select(input: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """Take whole slices of ``input`` along ``dim``, in the order ``index`` lists them, like `torch.index_select`.

    Args:
        input: the tensor to pick from, with at least one dimension.
        dim: the dimension whose slices are picked.
        index: a 1-D (or 0-D) integer tensor with values in ``[0, input.size(dim))``.

    Returns:
        A new tensor (a copy), shaped like ``input`` except ``index.numel()`` along ``dim``.

    Raises:
        TypeError: if an argument is not a tensor or ``index`` is not an integer tensor.
        ValueError: if ``dim`` is out of range, ``index`` is not 1-D, or an index is out of range.

    Examples:
        >>> index_select(torch.arange(6).reshape(2, 3), 1, torch.tensor([2, 2]))
        tensor([[2, 2],
                [5, 5]])
    """
    _require_tensor(input, "input", min_ndim=1)
    _require_tensor(index, "index")
    dim = _normalize_dim(dim, input.ndim)
    if index.ndim > 1:
        raise ValueError(f"index must be a 1-D tensor, got shape {tuple(index.shape)}")
    _check_index_values(index, input.size(dim), dim)
    # `dim` full slices, then one index tensor: advanced indexing keeps the picked axis in its place.
    return input[(slice(None),) * dim + (index.reshape(-1).long(),)]


def _check_pieces(tensors: object) -> list[torch.Tensor]:
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"tensors must be a list or tuple of tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError("tensors must hold at least one tensor, got an empty sequence")
    for i, t in enumerate(tensors):
        _require_tensor(t, f"tensors[{i}]")
        if t.device != tensors[0].device:
            raise ValueError(f"tensors[{i}] is on {t.device}, but tensors[0] is on {tensors[0].device}")
    return list(tensors)


def cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """Join tensors along an existing dimension, like `torch.cat`.

    One deliberate difference: `torch.cat` quietly skips legacy empty tensors of shape ``(0,)``; this does not.

    Args:
        tensors: a non-empty list or tuple of tensors with the same number of dimensions (at least one)
            and equal sizes except along ``dim``.
        dim: the dimension that grows.

    Returns:
        A new tensor whose ``dim`` is the sum of the pieces' sizes, in the pieces' promoted dtype.

    Raises:
        TypeError: if ``tensors`` is not a list or tuple of tensors.
        ValueError: if it is empty, the shapes do not fit, ``dim`` is out of range or devices differ.

    Examples:
        >>> cat([torch.tensor([1, 2]), torch.tensor([3])])
        tensor([1, 2, 3])
    """
    tensors = _check_pieces(tensors)
    first = _require_tensor(tensors[0], "tensors[0]", min_ndim=1)
    dim = _normalize_dim(dim, first.ndim)
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or any(t.size(d) != first.size(d) for d in range(t.ndim) if d != dim):
            raise ValueError(
                f"tensors[{i}] has shape {tuple(t.shape)}, but every tensor must match "
                f"tensors[0]'s shape {tuple(first.shape)} except along dim {dim}"
            )
    shape = list(first.shape)
    shape[dim] = sum(t.size(dim) for t in tensors)
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    # Allocate once, then copy each piece into its own band. `narrow` is a view, so `copy_` writes
    # straight into `out`; autograd records every copy, so gradients flow back to the pieces.
    out = first.new_empty(shape, dtype=dtype)
    offset = 0
    for t in tensors:
        out.narrow(dim, offset, t.size(dim)).copy_(t)
        offset += t.size(dim)
    return out


def stack(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """Join tensors of one shape along a new dimension, like `torch.stack`.

    Args:
        tensors: a non-empty list or tuple of tensors, all of exactly the same shape.
        dim: where the new dimension goes, in ``[-(ndim + 1), ndim]``.

    Returns:
        A new tensor with one more dimension, of size ``len(tensors)``, at ``dim``.

    Raises:
        TypeError: if ``tensors`` is not a list or tuple of tensors.
        ValueError: if it is empty, the shapes differ, ``dim`` is out of range or devices differ.

    Examples:
        >>> stack([torch.tensor([1, 2]), torch.tensor([3, 4])], dim=1)
        tensor([[1, 3],
                [2, 4]])
    """
    tensors = _check_pieces(tensors)
    dim = _normalize_dim(dim, tensors[0].ndim + 1)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"tensors[{i}] has shape {tuple(t.shape)}, but stack needs tensors[0]'s {tuple(tensors[0].shape)}")
    # Stacking is concatenating along a new axis of size one: (..., 1, ...) each, (..., n, ...) joined.
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def split(tensor: torch.Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0) -> tuple[torch.Tensor, ...]:
    """Cut a tensor into views along ``dim``, like `torch.split`.

    Args:
        tensor: the tensor to cut, with at least one dimension.
        split_size_or_sections: an int, the size of every piece but the last (which may be smaller), or
            a list of sizes that add up to ``tensor.size(dim)``.
        dim: the dimension to cut.

    Returns:
        A tuple of views of ``tensor``.

    Raises:
        TypeError: if ``split_size_or_sections`` is neither an int nor a list of ints.
        ValueError: if a size is negative, zero for a non-empty ``dim``, or the sections do not add up.

    Examples:
        >>> split(torch.arange(5), [2, 3])
        (tensor([0, 1]), tensor([2, 3, 4]))
    """
    _require_tensor(tensor, "tensor", min_ndim=1)
    dim = _normalize_dim(dim, tensor.ndim)
    n, size = tensor.size(dim), split_size_or_sections
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 0 or (size == 0 and n > 0):
            raise ValueError(f"split_size_or_sections must be positive for a dim of size {n}, got {size}")
        # Full pieces, then the remainder; an empty dim still gives one empty piece, as in PyTorch.
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if n else [0]
    elif isinstance(size, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        sizes = list(size)
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split_size_or_sections must be sizes >= 0 adding up to {n} along dim {dim}, got {sizes}")
    else:
        raise TypeError(f"split_size_or_sections must be an int or a list of ints, got {size!r}")
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    return tuple(tensor.narrow(dim, start, s) for start, s in zip(starts, sizes, strict=True))


def chunk(input: torch.Tensor, chunks: int, dim: int = 0) -> tuple[torch.Tensor, ...]:
    """Cut a tensor into at most ``chunks`` views along ``dim``, like `torch.chunk`.

    The rule: every piece but the last has ``ceil(n / chunks)`` elements, so fewer than ``chunks``
    pieces come out when that size covers ``n`` early. An empty ``dim`` gives ``chunks`` empty pieces.

    Args:
        input: the tensor to cut, with at least one dimension.
        chunks: the number of pieces asked for, at least 1.
        dim: the dimension to cut.

    Returns:
        A tuple of views of ``input``.

    Raises:
        ValueError: if ``chunks`` is not a positive int or ``dim`` is out of range.

    Examples:
        >>> [len(piece) for piece in chunk(torch.arange(10), 4)]
        [3, 3, 3, 1]
    """
    _require_tensor(input, "input", min_ndim=1)
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"chunks must be a positive int, got {chunks!r}")
    dim = _normalize_dim(dim, input.ndim)
    n = input.size(dim)
    if n == 0:
        return split(input, [0] * chunks, dim)
    return split(input, -(-n // chunks), dim)  # ceil(n / chunks) per piece


def view_or_copy_table() -> dict[str, bool]:
    """Run the lesson's operations on one tensor ``x`` of shape ``(3, 4)`` and ask which results share its memory.

    Returns:
        A dict from each expression to ``True`` (a view; for several pieces, every piece is) or ``False`` (a copy).

    Examples:
        >>> view_or_copy_table()["x[1]"]
        True
    """
    x = torch.arange(12.0).reshape(3, 4)
    i, j = torch.tensor([2, 0]), torch.tensor([[0], [1], [3]])
    operations = {
        "x[1]": lambda: x[1],
        "x[:, 1:3]": lambda: x[:, 1:3],
        "x[..., None]": lambda: x[..., None],
        "x[[0, 2]]": lambda: x[[0, 2]],
        "x[x > 5]": lambda: x[x > 5],
        "torch.cat([x, x])": lambda: torch.cat([x, x]),
        "torch.stack([x, x])": lambda: torch.stack([x, x]),
        "x.split(1)": lambda: x.split(1),
        "x.chunk(2)": lambda: x.chunk(2),
        "x.unbind(1)": lambda: x.unbind(1),
        "x.index_select(0, i)": lambda: x.index_select(0, i),
        "x.gather(1, j)": lambda: x.gather(1, j),
    }
    table = {}
    for expression, op in operations.items():
        result = op()
        pieces = result if isinstance(result, tuple) else (result,)
        table[expression] = all(shares_memory(x, piece) for piece in pieces)
    return table


def plot_gather(*, rows: int = 3, cols: int = 4, dim: int = 1, seed: int = 4) -> Figure:
    """Draw how `torch.gather` picks: input, index and output grids, coloured by the coordinate along ``dim``.

    Each input cell is coloured by its coordinate along ``dim``; each index and output cell takes the
    colour of the coordinate it picks, so the eye can follow every element.

    Args:
        rows: rows of the input (and of the index).
        cols: columns of the input (and of the index).
        dim: 0 (pick rows) or 1 (pick columns).
        seed: seed for the random index.

    Returns:
        A figure with three panels: input, index, output.

    Raises:
        ValueError: if ``rows`` or ``cols`` is below 1, or ``dim`` is not 0 or 1.

    Examples:
        >>> fig = plot_gather(rows=2, cols=2)
        >>> len(fig.axes)
        3
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be at least 1, got rows={rows}, cols={cols}")
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 or 1, got {dim!r}")
    from matplotlib.patches import Rectangle

    x = torch.arange(rows * cols).reshape(rows, cols)
    index = torch.randint(0, x.size(dim), (rows, cols), generator=torch.Generator().manual_seed(seed))
    # The coordinate along `dim` of every input cell (its column for dim=1, its row for dim=0) picks its colour.
    along = torch.arange(x.size(dim)).view((1, -1) if dim == 1 else (-1, 1)).expand(rows, cols)
    panels = [
        (f"input (colour = {'column' if dim == 1 else 'row'})", x, along),
        (f"index (dim={dim})", index, index),
        ("gather(input, dim, index)", x.gather(dim, index), index),
    ]
    fig, axes = new_figure(1, 3, width=8.0, height=2.6)
    for ax, (title, values, colour_of) in zip(axes, panels, strict=True):
        for r in range(rows):
            for c in range(cols):
                colour = PALETTE[int(colour_of[r, c]) % len(PALETTE)]
                ax.add_patch(Rectangle((c, r), 1, 1, facecolor=colour, alpha=0.35, edgecolor="white", linewidth=2))
                ax.text(c + 0.5, r + 0.5, str(int(values[r, c])), ha="center", va="center", fontsize=11)
        ax.set(xlim=(0, cols), ylim=(rows, 0), aspect="equal")
        ax.axis("off")
        ax.set_title(title, fontsize=10)
    return fig


def _attempt(candidate: Callable, where: str, *args: object) -> torch.Tensor:
    # Run a learner's attempt; a crash or a non-tensor is a failed case that names its inputs.
    try:
        got = candidate(*args)
    except Exception as err:  # any failure of the attempt is reported, not crashed on
        raise AssertionError(f"{where}: the attempt raised {type(err).__name__}: {err}") from err
    assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
    return got


def pick_target_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Challenge solution: ``logits[i, targets[i]]`` for every row ``i``, with `torch.gather`.

    Args:
        logits: shape ``(N, C)``.
        targets: ``N`` integer class numbers in ``[0, C)``.

    Returns:
        Shape ``(N,)``.

    Raises:
        ValueError: if the shapes do not fit.

    Examples:
        >>> pick_target_logits(torch.tensor([[0.1, 0.9], [0.7, 0.3]]), torch.tensor([1, 0]))
        tensor([0.9000, 0.7000])
    """
    if logits.ndim != 2 or targets.shape != (logits.size(0),):
        raise ValueError(f"need logits (N, C) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}")
    # (N,) -> (N, 1), so that gather picks one column per row, then back to (N,).
    return logits.gather(1, targets.long().unsqueeze(1)).squeeze(1)


def check_pick_target_logits(candidate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``pick_target_logits``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_pick_target_logits(pick_target_logits)
    """
    generator = torch.Generator().manual_seed(1)
    for n, c in [(4, 5), (3, 3), (1, 1), (6, 2), (0, 4)]:
        logits = torch.randn(n, c, generator=generator)
        targets = torch.randint(0, c, (n,), generator=generator)
        before = logits.clone()
        got = _attempt(candidate, f"logits of shape {(n, c)}", logits, targets)
        expected = torch.tensor([logits[i, targets[i]].item() for i in range(n)])
        assert got.shape == (n,), f"for logits of shape {(n, c)} expected shape ({n},), got {tuple(got.shape)}"
        assert torch.equal(got, expected), f"for logits of shape {(n, c)} and targets {targets.tolist()}: wrong values"
        assert torch.equal(logits, before), "the attempt changed logits in place"


def one_hot_by_scatter(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Challenge solution: one-hot encode ``labels`` by scattering ones into zeros.

    Args:
        labels: an integer tensor of any shape, values in ``[0, num_classes)``.
        num_classes: the number of classes, at least 1.

    Returns:
        An ``int64`` tensor of shape ``(*labels.shape, num_classes)``.

    Raises:
        ValueError: if ``num_classes`` is below 1 or a label is out of range.

    Examples:
        >>> one_hot_by_scatter(torch.tensor([2, 0]), 3)
        tensor([[0, 0, 1],
                [1, 0, 0]])
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    _check_index_values(labels, num_classes, -1, name="labels")
    out = torch.zeros(*labels.shape, num_classes, dtype=torch.long, device=labels.device)
    # (..., 1): each label names the one position along the new last dimension that becomes 1.
    return out.scatter_(-1, labels.long().unsqueeze(-1), 1)


def check_one_hot_by_scatter(candidate: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check an attempt at ``one_hot_by_scatter``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_one_hot_by_scatter(one_hot_by_scatter)
    """
    cases = [([0, 2, 1], 3), ([0, 0], 4), ([[1, 4, 0], [3, 3, 2]], 5), ([0], 1), ([], 3)]
    for values, num_classes in cases:
        labels = torch.tensor(values, dtype=torch.long)
        where = f"labels {values}, num_classes={num_classes}"
        got = _attempt(candidate, where, labels, num_classes)
        shape = (*labels.shape, num_classes)
        assert got.shape == shape, f"{where}: expected shape {shape}, got {tuple(got.shape)}"
        assert got.dtype == torch.int64, f"{where}: expected dtype torch.int64, got {got.dtype}"
        expected = (labels.unsqueeze(-1) == torch.arange(num_classes)).long()
        assert torch.equal(got, expected), f"{where}: the ones are in the wrong places"
