r"""
# Tensor Metamorphosis: Same Flesh, a Thousand Shapes

!!! torchenstein "The Professor speaks"
    A tensor's shape is a costume, my apprentice; underneath lies one long strip of numbers that never
    moves. Today we learn to change the costume without touching the flesh: view, transpose, expand and
    permute merely re-read the same memory. Master this and you will carve a batch of sentences into the
    pieces the great architectures demand, while Dr. Hammer's pieces quietly read someone else's numbers.

**You will learn to**

- read a tensor's storage, `stride()`, `storage_offset()` and `is_contiguous()`, and compute where any
  element lives in memory;
- tell `view` from `reshape`: when the first fails, when the second copies;
- add and remove dimensions of size one with `unsqueeze` and `squeeze`, and `flatten` / `unflatten` them;
- reorder axes with `permute`, `transpose`, `.T` and `.mT`;
- stretch a tensor for free with `expand`, and know why `repeat` is not free;
- build `transpose`, `permute` and `expand` from scratch, and prove them equal to PyTorch's (and, in a
  deep dive, `view` and `reshape` on `torch.as_strided`, following PyTorch's own rule);
- split a batch of token vectors, shape `(B, T, C)`, into heads and merge them back without scrambling
  anything.

## A tensor is a header over a strip of memory

Every tensor is two things: a **storage**, a flat one-dimensional block of bytes, and a small header that
says how to read it: the `size` (the shape), the `stride` (how many elements to jump in storage to move
one step along each dimension) and the `storage_offset` (where element zero sits). A tensor is
**contiguous** when it reads its storage in plain row-major order, with no gaps and no jumps back.

```pycon
>>> import torch
>>> x = torch.arange(12).reshape(3, 4)
>>> {"stride": x.stride(), "storage_offset": x.storage_offset(), "contiguous": x.is_contiguous()}
{'stride': (4, 1), 'storage_offset': 0, 'contiguous': True}
>>> x.untyped_storage().nbytes(), x.element_size()
(96, 8)
>>> row = x[1, 1:]
>>> row, row.stride(), row.storage_offset()
(tensor([5, 6, 7]), (1,), 5)
>>> column = x[:, 2]
>>> column, {"stride": column.stride(), "storage_offset": column.storage_offset(), "contiguous": column.is_contiguous()}
(tensor([ 2,  6, 10]), {'stride': (4,), 'storage_offset': 2, 'contiguous': False})

```

Views share the storage; a copy gets its own. Two tensors share storage when their storages start at
the same address, and we keep that test at hand for the rest of the lesson:

```pycon
>>> def same_storage(a, b):
...     return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
>>> {"row": same_storage(row, x), "x.t()": same_storage(x.t(), x), "x.t().clone()": same_storage(x.t().clone(), x)}
{'row': True, 'x.t()': True, 'x.t().clone()': False}

```

Row-major strides are a running product of the sizes to the right:
$\text{stride}_k = \prod_{j > k} \text{size}_j$. Our
[`contiguous_strides`][torchenstein.tensors.metamorphosis.contiguous_strides] computes them and
[`is_contiguous_layout`][torchenstein.tensors.metamorphosis.is_contiguous_layout] applies PyTorch's test
(dimensions of size one are ignored: there is nowhere to step to). Both agree with the real thing:

```pycon
>>> from torchenstein.tensors.metamorphosis import contiguous_strides
>>> from torchenstein.tensors.metamorphosis import is_contiguous_layout
>>> contiguous_strides((2, 3, 4)), torch.empty(2, 3, 4).stride()
((12, 4, 1), (12, 4, 1))
>>> is_contiguous_layout(column.shape, column.stride())
False
>>> odd = torch.empty(1, 3).t()  # shape (3, 1), strides (1, 3): the stride of the size-1 dim is never used
>>> {"ours": is_contiguous_layout(odd.shape, odd.stride()), "PyTorch": odd.is_contiguous()}
{'ours': True, 'PyTorch': True}

```

## From an index to an address

Element $(i_0, \dots, i_{n-1})$ lives at one place in storage, and the header computes it with one sum:

$$
\text{address}(i_0, \dots, i_{n-1}) = \text{storage\_offset} + \sum_{k=0}^{n-1} i_k \cdot \text{stride}_k
$$

[`element_offset`][torchenstein.tensors.metamorphosis.element_offset] is that sum, and
[`storage_values`][torchenstein.tensors.metamorphosis.storage_values] lays the whole storage out as a
one-dimensional tensor, so we can check that the address holds the element:

```pycon
>>> from torchenstein.tensors.metamorphosis import element_offset, storage_values
>>> storage_values(row)
tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11])
>>> element_offset((2,), row.stride(), row.storage_offset()), row[2].item()
(7, 7)
>>> t = x.t()
>>> t.stride(), element_offset((3, 1), t.stride()), t[3, 1].item()
((1, 4), 7, 7)

```

A transpose moves nothing: it swaps the strides, and the same storage is read in another order.

![A 3 by 4 tensor and its transpose drawn as grids whose cells are numbered and coloured by their position in the single one-dimensional storage below them, with arrows for a stride-1 row of x and a stride-4 row of x.T](plot_memory_layout.svg)

## View and reshape

`view` never copies: it computes new strides over the same storage, or fails. It can merge dimensions
$i$ and $i + 1$ only when one step along $i$ lands exactly where a full walk along $i + 1$ ends,
$\text{stride}_i = \text{size}_{i+1} \cdot \text{stride}_{i+1}$; a transposed tensor breaks that. Here
is the real error:

```pycon
>>> x.view(2, 6).stride()
(6, 1)
>>> x.t().view(12)
Traceback (most recent call last):
...
RuntimeError: view size is not compatible with input tensor's size and stride (at least one dimension spans across two contiguous subspaces). Use .reshape(...) instead.
>>> x.t().contiguous().view(12)
tensor([ 0,  4,  8,  1,  5,  9,  2,  6, 10,  3,  7, 11])

```

`reshape` is `view` when `view` is possible and `contiguous()` followed by `view` otherwise, so it
**copies only when it must**, and does not tell you which it did:

```pycon
>>> {"x.reshape shares x's storage": same_storage(x.reshape(12), x),
...  "t.reshape shares x's storage": same_storage(t.reshape(12), x)}
{"x.reshape shares x's storage": True, "t.reshape shares x's storage": False}

```

??? note "Deep dive: `as_strided`, and `view` rebuilt from PyTorch's `computeStride`"
    `torch.as_strided(input, size, stride, storage_offset)` is the raw tool under every view: it makes a
    new header, with exactly the size, strides and offset you give it, over `input`'s storage. Nothing is
    checked, so a wrong stride reads the wrong numbers (or memory past the end); the lesson's from-scratch
    `view`, `transpose`, `permute`, `expand` and the sliding-windows challenge all use it.

    The rule for "`view` is possible" is PyTorch's `computeStride`, which
    [`view_strides`][torchenstein.tensors.metamorphosis.view_strides] rewrites: cut the old dimensions into
    runs that are contiguous with each other, and accept the new shape only if it re-cuts each run on its
    own. On top of it sit our [`view`][torchenstein.tensors.metamorphosis.view] and
    [`reshape`][torchenstein.tensors.metamorphosis.reshape]:

    ```pycon
    >>> from torchenstein.tensors.metamorphosis import reshape, view, view_strides
    >>> torch.as_strided(x, (2, 2), (4, 1), 5)  # rows of 2 starting at storage position 5, 4 apart
    tensor([[ 5,  6],
            [ 9, 10]])
    >>> view_strides(t.shape, t.stride(), (2, 2, 3))
    (2, 1, 4)
    >>> view_strides(t.shape, t.stride(), (12,)) is None
    True
    >>> {"equal": torch.equal(view(t, (2, 2, 3)), t.view(2, 2, 3)), "stride": view(t, (2, 2, 3)).stride()}
    {'equal': True, 'stride': (2, 1, 4)}
    >>> copied = reshape(t, (12,))
    >>> {"equal": torch.equal(copied, t.reshape(12)), "shares x's storage": same_storage(copied, x)}
    {'equal': True, "shares x's storage": False}
    >>> same_storage(reshape(x, (12,)), x)  # x itself is contiguous: a view is enough
    True

    ```

## Squeeze, unsqueeze, flatten and unflatten

`unsqueeze(dim)` inserts a dimension of size one (a view); `squeeze(dim)` removes one. `flatten` merges
a range of dimensions with `reshape` semantics (so it may copy), and `unflatten` splits one dimension
into several (always a view).

```pycon
>>> v = torch.zeros(2, 1, 3)
>>> v.unsqueeze(0).shape, v.unsqueeze(-1).shape, v.squeeze(1).shape
(torch.Size([1, 2, 1, 3]), torch.Size([2, 1, 3, 1]), torch.Size([2, 3]))
>>> images = torch.zeros(8, 3, 4, 5)
>>> images.flatten(1).shape, images.flatten(2, 3).shape, images.flatten().shape
(torch.Size([8, 60]), torch.Size([8, 3, 20]), torch.Size([480]))
>>> images.flatten(1).unflatten(1, (3, 20)).shape
torch.Size([8, 3, 20])
>>> {"x.flatten() is a view": same_storage(x.flatten(), x), "t.flatten() is a view": same_storage(t.flatten(), x)}
{'x.flatten() is a view': True, 't.flatten() is a view': False}

```

## Reordering axes: permute, transpose, .T and .mT

`permute(dims)` reorders every dimension, `transpose(dim0, dim1)` swaps two. Both only reorder the size
and the stride, so they are free, and their result is usually non-contiguous. `.mT` transposes the last
two dimensions of a batch of matrices. `.T` is for 2-D tensors only: on any other number of dimensions,
0-D and 1-D included, PyTorch (2.13) warns that it is deprecated (on a 0-D or 1-D tensor it does
nothing at all; on more than two dimensions it reverses all of them). To flip a vector into a column,
`v[:, None]` or `v.unsqueeze(1)`; for a batch, `.mT`. Our
[`transpose`][torchenstein.tensors.metamorphosis.transpose] and
[`permute`][torchenstein.tensors.metamorphosis.permute] reorder the sizes and strides of the header by
hand and hand them to `as_strided` (see the deep dive above):

```pycon
>>> from torchenstein.tensors.metamorphosis import permute, transpose
>>> y = torch.zeros(2, 3, 4)
>>> y.permute(2, 0, 1).shape, y.permute(2, 0, 1).stride(), y.mT.shape
(torch.Size([4, 2, 3]), (1, 12, 4), torch.Size([2, 4, 3]))
>>> permute(y, (2, 0, 1)).stride()
(1, 12, 4)
>>> ours, theirs = transpose(y, 0, -1), y.transpose(0, -1)
>>> {"stride": ours.stride(), "equal": torch.equal(ours, theirs), "same strides": ours.stride() == theirs.stride()}
{'stride': (1, 4, 12), 'equal': True, 'same strides': True}

```

## Stretching for free: expand versus repeat

`expand` turns a dimension of size one into any size by giving it **stride 0**: every step along it
lands on the same element, so no memory is used. `repeat` really tiles the data into a new, bigger
storage. Our [`expand`][torchenstein.tensors.metamorphosis.expand] sets the zeros by hand:

```pycon
>>> from torchenstein.tensors.metamorphosis import expand
>>> bias = torch.tensor([1., 2., 3.])
>>> wide = bias.expand(1000, 3)
>>> wide.stride(), wide.untyped_storage().nbytes()
((0, 1), 12)
>>> bias.repeat(1000, 1).stride(), bias.repeat(1000, 1).untyped_storage().nbytes()
((3, 1), 12000)
>>> {"equal": torch.equal(expand(bias, (1000, 3)), wide), "stride": expand(bias, (1000, 3)).stride()}
{'equal': True, 'stride': (0, 1)}

```

## The motivating monster: splitting heads

A language model reads text as a sequence of **tokens** (words or pieces of words) and carries each token
as a vector of `C` numbers, its **channels**. A *batch* of `B` sequences of `T` tokens each is then one
tensor of shape `(B, T, C)`; these three letters mean the same throughout the course. *Attention*, the
mechanism of Part 4, lets every token gather information from the others, and *multi-head* attention
runs `h` of them side by side, each on its own **head**: a group of `d = C / h` of every token's
channels. So from `(B, T, C)` we want `(B, h, T, d)`: first `view` the channel axis as `(h, d)`, then
`transpose` the heads in front of the tokens. Both steps are views, so nothing is copied:

```pycon
>>> B, T, C, h = 2, 5, 12, 3
>>> x = torch.randn(B, T, C)
>>> step1 = x.view(B, T, h, C // h)
>>> step2 = step1.transpose(1, 2)
>>> step1.shape, step2.shape, f"contiguous: {step2.is_contiguous()}"
(torch.Size([2, 5, 3, 4]), torch.Size([2, 3, 5, 4]), 'contiguous: False')
>>> torch.equal(step2[:, 1], x[:, :, 4:8])
True

```

Head 1 is exactly the channels `4:8` of every token. Merging goes back the same road: transpose to
`(B, T, h, d)`, then `reshape` (or `contiguous().view`) to `(B, T, C)`. Straight after a split, the second
transpose undoes the first and `reshape` is a free view. But attention hands back a *fresh*, contiguous
`(B, h, T, d)` tensor; transposed, it no longer reads memory row by row, so `view` would fail and
`reshape` copies. [`split_heads`][torchenstein.tensors.metamorphosis.split_heads] and
[`merge_heads`][torchenstein.tensors.metamorphosis.merge_heads] wrap the two roads, refuse a channel count
that does not divide, and, being views, let gradients (see the
[primer](../creation/index.md#a-one-minute-primer-on-gradients)) flow back untouched:

```pycon
>>> from torchenstein.tensors.metamorphosis import merge_heads, split_heads
>>> heads = split_heads(x, num_heads=h)
>>> heads.shape, merge_heads(heads).shape
(torch.Size([2, 3, 5, 4]), torch.Size([2, 5, 12]))
>>> torch.equal(merge_heads(heads), x)
True
>>> fresh = heads.contiguous()  # row-major (B, h, T, d), like attention's output
>>> {"merged split is a view": same_storage(merge_heads(heads), x),
...  "merged fresh is a view": same_storage(merge_heads(fresh), fresh)}
{'merged split is a view': True, 'merged fresh is a view': False}
>>> leaf = torch.randn(2, 5, 12, requires_grad=True)
>>> (split_heads(leaf, num_heads=4) * 3).sum().backward()
>>> torch.equal(leaf.grad, torch.full((2, 5, 12), 3.))
True
>>> split_heads(x, num_heads=5)
Traceback (most recent call last):
...
ValueError: num_heads must divide the channel count C=12, got num_heads=5

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `view` on a transposed tensor"
    Dr. Hammer transposes a matrix of scores and flattens it with `view`. The layout no longer reads row by
    row, so `view` refuses. The fix is `reshape` (or `contiguous()` first), which copies into a fresh
    row-major layout.

    ```pycon
    >>> scores = torch.arange(6.).view(2, 3).t()
    >>> scores.view(-1)
    Traceback (most recent call last):
    ...
    RuntimeError: view size is not compatible with input tensor's size and stride (at least one dimension spans across two contiguous subspaces). Use .reshape(...) instead.
    >>> scores.reshape(-1)
    tensor([0., 3., 1., 4., 2., 5.])

    ```

!!! hammer "Dr. Hammer's trap: writing into an expanded tensor"
    Every row of an expanded tensor is the same memory. A single write lands in every row at once (and in the
    original); an in-place operation on the whole of it is refused. Want independent rows? `clone()` (or
    `repeat`) first.

    ```pycon
    >>> base = torch.zeros(3)
    >>> grid = base.expand(2, 3)
    >>> grid[0, 0] = 7.
    >>> grid, base
    (tensor([[7., 0., 0.],
            [7., 0., 0.]]), tensor([7., 0., 0.]))
    >>> grid += 1
    Traceback (most recent call last):
    ...
    RuntimeError: unsupported operation: more than one element of the written-to tensor refers to a single memory location. Please clone() the tensor before performing the operation.
    >>> grid = torch.zeros(3).expand(2, 3).clone()
    >>> grid[0, 0] = 7.
    >>> grid
    tensor([[7., 0., 0.],
            [0., 0., 0.]])

    ```

!!! hammer "Dr. Hammer's trap: `reshape` copied, and the write went nowhere"
    `reshape` returns a view when it can and a copy when it cannot, without telling you which. Dr. Hammer
    writes into the result of a reshape of a transposed tensor and expects the original to change: the first
    write below lands, the second vanishes into a copy. Use `view` when the write must reach the original: it
    fails loudly instead of copying quietly.

    ```pycon
    >>> weights = torch.zeros(2, 3)
    >>> weights.reshape(6)[0] = 1.
    >>> weights.t().reshape(6)[1] = 1.
    >>> weights
    tensor([[1., 0., 0.],
            [0., 0., 0.]])

    ```

!!! hammer "Dr. Hammer's trap: splitting heads with `reshape` alone"
    Dr. Hammer writes `x.reshape(B, h, T, d)`. The shape is right, so nothing complains, but the memory is
    read in the wrong order: his "head 0" is the first `T * d` numbers of the storage, so its rows are chunks
    of the *first tokens'* channels, not channel group 0 of every token. Mark each element with `10 * token +
    channel` and watch:

    ```pycon
    >>> tokens = 10 * torch.arange(4)[:, None] + torch.arange(4)
    >>> tokens = tokens.unsqueeze(0)  # (B=1, T=4, C=4)
    >>> hammer = tokens.reshape(1, 2, 4, 2)
    >>> hammer[0, 0]
    tensor([[ 0,  1],
            [ 2,  3],
            [10, 11],
            [12, 13]])
    >>> split_heads(tokens, num_heads=2)[0, 0]
    tensor([[ 0,  1],
            [10, 11],
            [20, 21],
            [30, 31]])
    >>> torch.equal(hammer, split_heads(tokens, num_heads=2))
    False

    ```

!!! hammer "Dr. Hammer's trap: `squeeze()` without a dimension"
    It removes *every* dimension of size one, so a batch of one loses its batch axis. Name the dimension.

    ```pycon
    >>> batch = torch.zeros(1, 7, 1)  # one sample of seven numbers, each in a size-1 dimension
    >>> batch.squeeze().shape, batch.squeeze(-1).shape
    (torch.Size([7]), torch.Size([1, 7]))

    ```

## Challenges

1. **Merge the heads.** You have watched `merge_heads` at work; now write it without peeking:
   `merge_heads(x)` takes `(B, h, T, d)` (as [`split_heads`][torchenstein.tensors.metamorphosis.split_heads]
   returns it, or as a fresh contiguous tensor) and returns the `(B, T, h * d)` tensor the heads came
   from. Beware Dr. Hammer's trap "splitting heads with `reshape` alone", in reverse.
2. **Sliding windows.** Write `sliding_windows(input, dimension, size, step)`: like `Tensor.unfold`, return
   every window of `size` consecutive elements along `dimension`, starting `step` apart, in a new last
   dimension. It must be a **view** (build it with `torch.as_strided`, from the deep dive: which stride
   does the window dimension get, and which the window-count dimension?).

Check yours with `check_merge_heads(my_function)` and `check_sliding_windows(my_function)`, or put them in a
file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.tensors import metamorphosis as lesson
>>> lesson.check_merge_heads(lesson.merge_heads)
>>> lesson.check_sliding_windows(lesson.sliding_windows)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _require_tensor(value: object, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _int_tuple(values: object, name: str) -> tuple[int, ...]:
    # Accept a torch.Size, tuple or list of plain ints; a bool is an int to Python but never a size.
    if isinstance(values, torch.Tensor) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(values).__name__}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must hold only ints, got {list(values)!r}")
    return tuple(values)


def _normalize_dim(dim: object, ndim: int, name: str) -> int:
    # Like PyTorch, a negative dimension counts from the end.
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{name} must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name} must be in [{-ndim}, {ndim}) for a {ndim}-D input, got {dim}")
    return dim % ndim


def contiguous_strides(size: Sequence[int]) -> tuple[int, ...]:
    """The row-major strides of a fresh tensor of shape ``size``, as `torch.empty(size).stride()`.

    Args:
        size: the shape, non-negative ints.

    Returns:
        Per dimension, the product of the sizes to its right (a size 0 counts as 1, as in PyTorch).

    Raises:
        ValueError: if a size is negative.

    Examples:
        >>> contiguous_strides((3, 4))
        (4, 1)
        >>> contiguous_strides((2, 0, 3)) == torch.empty(2, 0, 3).stride()
        True
    """
    size = _int_tuple(size, "size")
    if any(n < 0 for n in size):
        raise ValueError(f"size must hold non-negative ints, got {list(size)}")
    strides, running = [], 1
    # Walk from the last dimension, which moves fastest, to the first.
    for n in reversed(size):
        strides.append(running)
        running *= max(n, 1)
    return tuple(reversed(strides))


def is_contiguous_layout(size: Sequence[int], stride: Sequence[int]) -> bool:
    """Say whether ``size`` and ``stride`` read storage in row-major order, as `Tensor.is_contiguous`.

    Args:
        size: the shape.
        stride: one stride per dimension.

    Returns:
        ``True`` for no elements, or when each dimension of size above one has the row-major stride.

    Raises:
        ValueError: if ``size`` and ``stride`` differ in length.

    Examples:
        >>> is_contiguous_layout((3, 4), (4, 1))
        True
        >>> is_contiguous_layout((4, 3), (1, 4))  # a transposed layout
        False
    """
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise ValueError(f"size and stride must have the same length, got {len(size)} and {len(stride)}")
    if math.prod(size) == 0:
        return True
    expected = 1
    for n, s in zip(reversed(size), reversed(stride), strict=True):
        # A dimension of size one is never stepped along, so its stride does not matter.
        if n != 1:
            if s != expected:
                return False
            expected *= n
    return True


def storage_values(input: torch.Tensor) -> torch.Tensor:
    """The whole storage under ``input`` as a 1-D view from position 0 (no copy).

    Args:
        input: any tensor.

    Returns:
        A 1-D tensor of every element the storage holds.

    Raises:
        TypeError: if ``input`` is not a tensor.

    Examples:
        >>> storage_values(torch.arange(6).view(2, 3)[1, 1:])
        tensor([0, 1, 2, 3, 4, 5])
    """
    _require_tensor(input, "input")
    length = input.untyped_storage().nbytes() // input.element_size()
    return torch.as_strided(input, (length,), (1,), 0)


def element_offset(index: Sequence[int], stride: Sequence[int], storage_offset: int = 0) -> int:
    """The storage position of the element at ``index``: ``storage_offset + sum(index * stride)``.

    Args:
        index: one non-negative int per dimension.
        stride: the tensor's strides.
        storage_offset: where the tensor's element zero sits in storage.

    Returns:
        The position in storage.

    Raises:
        ValueError: if ``index`` and ``stride`` differ in length or an index is negative.

    Examples:
        >>> element_offset((2, 1), (4, 1)), element_offset((1,), (4,), storage_offset=2)
        (9, 6)
        >>> element_offset((1,), (4, 1))
        Traceback (most recent call last):
        ...
        ValueError: index must have one entry per stride (2), got 1: [1]
    """
    index, stride = _int_tuple(index, "index"), _int_tuple(stride, "stride")
    if len(index) != len(stride):
        raise ValueError(f"index must have one entry per stride ({len(stride)}), got {len(index)}: {list(index)}")
    if any(i < 0 for i in index):
        raise ValueError(f"index must be non-negative (storage does not wrap around), got {list(index)}")
    return storage_offset + sum(i * s for i, s in zip(index, stride, strict=True))


def view_strides(size: Sequence[int], stride: Sequence[int], new_size: Sequence[int]) -> tuple[int, ...] | None:
    """The strides that read a ``(size, stride)`` layout as ``new_size`` without a copy, or ``None``.

    A rewrite of PyTorch's ``computeStride``, the rule that decides whether `Tensor.view` succeeds.

    Args:
        size: the old shape.
        stride: the old strides.
        new_size: the wanted shape, with as many elements.

    Returns:
        The new strides, or ``None`` when only a copy can give ``new_size``.

    Raises:
        ValueError: if ``size`` and ``new_size`` hold different numbers of elements.

    Examples:
        >>> view_strides((3, 4), (4, 1), (2, 6)), view_strides((4, 3), (1, 4), (12,))
        ((6, 1), None)
    """
    size, stride, new_size = _int_tuple(size, "size"), _int_tuple(stride, "stride"), _int_tuple(new_size, "new_size")
    numel = math.prod(size)
    if numel != math.prod(new_size):
        raise ValueError(f"new_size {list(new_size)} must hold {numel} elements like size {list(size)}")
    # A 0-D tensor is one element: every new dimension has size 1, so any stride will do.
    if not size:
        return (1,) * len(new_size)
    # With no elements nothing can be read out of order: keep the strides, or take fresh ones.
    if numel == 0:
        return stride if size == new_size else contiguous_strides(new_size)
    new_stride = [0] * len(new_size)
    view_d = len(new_size) - 1
    # Walk the old dimensions from the innermost, growing a "run" of dimensions that are contiguous with
    # each other. `base` is the stride of the run's innermost dimension, `run_numel` its element count.
    base, run_numel, view_numel = stride[-1], 1, 1
    for d in range(len(size) - 1, -1, -1):
        run_numel *= size[d]
        # The run goes on while the next dimension out starts exactly where the run ends (or has size one).
        if d > 0 and (size[d - 1] == 1 or stride[d - 1] == run_numel * base):
            continue
        # The run is complete. New dimensions, from the right, must tile exactly its elements (plus any
        # size-one dimensions); inside a run memory is evenly spaced by `base`, so their strides are
        # row-major strides times `base`.
        while view_d >= 0 and (view_numel < run_numel or new_size[view_d] == 1):
            new_stride[view_d] = view_numel * base
            view_numel *= new_size[view_d]
            view_d -= 1
        if view_numel != run_numel:
            return None
        if d > 0:
            base, run_numel, view_numel = stride[d - 1], 1, 1
    # The element counts match, so once the last run is tiled every new dimension has its stride.
    return tuple(new_stride)


def _infer_size(size: object, numel: int, name: str) -> tuple[int, ...]:
    # Resolve at most one -1 the way PyTorch does: it takes whatever is left of the elements.
    size = _int_tuple(size, name)
    if size.count(-1) > 1 or any(n < -1 for n in size):
        raise ValueError(f"{name} may hold at most one -1 and otherwise non-negative ints, got {list(size)}")
    known = math.prod(n for n in size if n != -1)
    if -1 in size and known != 0 and numel % known == 0:
        size = tuple(numel // known if n == -1 else n for n in size)
    if -1 in size or math.prod(size) != numel:
        raise ValueError(f"{name} {list(size)} is invalid for an input of {numel} elements")
    return size


def view(input: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """`Tensor.view` from scratch: the same storage, read with the strides of `view_strides`.

    Args:
        input: the tensor to view.
        shape: the new shape; one entry may be ``-1``.

    Returns:
        A tensor of shape ``shape`` over ``input``'s storage.

    Raises:
        ValueError: if ``shape`` does not hold ``input.numel()`` elements.
        RuntimeError: if no strides give ``shape`` without a copy, like PyTorch's (use `reshape`).

    Examples:
        >>> torch.equal(view(torch.arange(6), (2, -1)), torch.arange(6).view(2, 3))
        True
    """
    _require_tensor(input, "input")
    shape = _infer_size(shape, input.numel(), "shape")
    stride = view_strides(input.shape, input.stride(), shape)
    if stride is None:
        raise RuntimeError(
            f"shape {list(shape)} cannot view input of size {list(input.shape)} and stride {list(input.stride())} "
            "without a copy; call .contiguous() first or use reshape"
        )
    return torch.as_strided(input, shape, stride, input.storage_offset())


def reshape(input: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """`torch.reshape` from scratch: a view when one exists, otherwise a row-major copy.

    Args:
        input: the tensor to reshape.
        shape: the new shape; one entry may be ``-1``.

    Returns:
        A tensor of shape ``shape`` that shares ``input``'s storage exactly when `view` could.

    Raises:
        ValueError: if ``shape`` does not hold ``input.numel()`` elements.

    Examples:
        >>> reshape(torch.arange(6).view(2, 3).t(), (6,))
        tensor([0, 3, 1, 4, 2, 5])
    """
    _require_tensor(input, "input")
    shape = _infer_size(shape, input.numel(), "shape")
    if view_strides(input.shape, input.stride(), shape) is None:
        # No strides fit, so pay for one copy into row-major order, where every shape is a view.
        input = input.contiguous()
    return view(input, shape)


def permute(input: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """`torch.permute` from scratch: dimension ``k`` of the result is dimension ``dims[k]`` of ``input``.

    Args:
        input: any tensor.
        dims: a permutation of ``range(input.ndim)``; negative entries count from the end.

    Returns:
        A view of ``input`` with its sizes and strides reordered.

    Raises:
        ValueError: if ``dims`` is not a permutation of the dimensions.

    Examples:
        >>> permute(torch.zeros(2, 3), (0, 0))
        Traceback (most recent call last):
        ...
        ValueError: dims must be a permutation of range(2), got [0, 0]
    """
    _require_tensor(input, "input")
    dims = _int_tuple(dims, "dims")
    order = [d % input.ndim if -input.ndim <= d < input.ndim else None for d in dims]
    if None in order or sorted(order) != list(range(input.ndim)):
        raise ValueError(f"dims must be a permutation of range({input.ndim}), got {list(dims)}")
    size = [input.size(d) for d in order]
    stride = [input.stride(d) for d in order]
    return torch.as_strided(input, size, stride, input.storage_offset())


def transpose(input: torch.Tensor, dim0: int, dim1: int) -> torch.Tensor:
    """`torch.transpose` from scratch: the permutation that swaps ``dim0`` and ``dim1``.

    Args:
        input: a tensor with at least one dimension.
        dim0: the first dimension to swap.
        dim1: the second dimension to swap.

    Returns:
        A view of ``input`` with two sizes and two strides swapped.

    Raises:
        ValueError: if a dimension is out of range.

    Examples:
        >>> transpose(torch.zeros(2, 3, 4), 0, 2).stride()
        (1, 4, 12)
    """
    _require_tensor(input, "input")
    dims = list(range(input.ndim))
    a, b = _normalize_dim(dim0, input.ndim, "dim0"), _normalize_dim(dim1, input.ndim, "dim1")
    dims[a], dims[b] = b, a
    return permute(input, dims)


def expand(input: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """`Tensor.expand` from scratch: dimensions of size one grow to any size with stride 0.

    Args:
        input: the tensor to expand.
        sizes: the new shape, aligned with ``input``'s from the right, with new leading dimensions allowed;
            ``-1`` keeps an existing size.

    Returns:
        A view of ``input`` that reads the same elements again along every stretched dimension.

    Raises:
        ValueError: if a size other than one would change, or ``-1`` stands for a new dimension.

    Examples:
        >>> expand(torch.zeros(3, 1), (2, 3, 5)).stride()
        (0, 1, 0)
    """
    _require_tensor(input, "input")
    sizes = _int_tuple(sizes, "sizes")
    new = len(sizes) - input.ndim
    if new < 0:
        raise ValueError(f"sizes must have at least {input.ndim} entries for a {input.ndim}-D input, got {list(sizes)}")
    out_size, out_stride = [0] * len(sizes), [0] * len(sizes)
    # Work from the right, where the old dimensions line up with the new ones.
    for k in range(len(sizes) - 1, -1, -1):
        old, target = k - new, sizes[k]
        if old >= 0:
            n, s = input.size(old), input.stride(old)
            target = n if target == -1 else target
        else:
            # A new leading dimension acts like an old one of size 1 just outside the next one. A 0-D
            # input has no next one at its innermost new dimension, and PyTorch gives that one stride 0.
            n, s = 1, out_size[k + 1] * out_stride[k + 1] if k + 1 < len(sizes) else 0
        if target < 0:
            raise ValueError(f"sizes must hold non-negative ints (-1 only for existing dimensions), got {list(sizes)}")
        if target != n:
            if n != 1:
                raise ValueError(f"sizes {list(sizes)} changes dimension {k} of size {n}; only size-1 dimensions expand")
            # Stride 0: every step along this dimension comes back to the same elements.
            n, s = target, 0
        out_size[k], out_stride[k] = n, s
    return torch.as_strided(input, out_size, out_stride, input.storage_offset())


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Cut every token's channels into heads: ``(B, T, C) -> (B, num_heads, T, C // num_heads)``.

    Args:
        x: shape ``(B, T, C)``.
        num_heads: how many heads; it must divide ``C``.

    Returns:
        A view of ``x`` in which head ``k`` holds channels ``k * d`` to ``(k + 1) * d - 1`` of every
        token, with ``d = C // num_heads``.

    Raises:
        ValueError: if ``x`` is not 3-D, or ``num_heads`` is not a positive int that divides ``C``.

    Examples:
        >>> split_heads(torch.zeros(2, 5, 12), num_heads=4).shape
        torch.Size([2, 4, 5, 3])
    """
    _require_tensor(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, C), got shape {tuple(x.shape)}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    B, T, C = x.shape
    if C % num_heads:
        raise ValueError(f"num_heads must divide the channel count C={C}, got num_heads={num_heads}")
    # Splitting one dimension in two is always a view: each token's channels become (h, d_head).
    x = x.view(B, T, num_heads, C // num_heads)  # (B, T, h, d_head)
    # Heads go in front of the tokens, so attention can treat (B, h) as one batch of sequences.
    return x.transpose(1, 2)  # (B, h, T, d_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Challenge solution: undo `split_heads`, ``(B, h, T, d) -> (B, T, h * d)``.

    Args:
        x: shape ``(B, h, T, d)``.

    Returns:
        Shape ``(B, T, h * d)``: each token's channels of all heads, head 0 first (a view of ``x`` when
        memory allows, as straight after `split_heads`, otherwise a copy).

    Raises:
        ValueError: if ``x`` is not 4-D.

    Examples:
        >>> x = torch.randn(2, 5, 12)
        >>> torch.equal(merge_heads(split_heads(x, 3)), x)
        True
    """
    _require_tensor(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, h, T, d), got shape {tuple(x.shape)}")
    B, h, T, d = x.shape
    # Tokens back in front of the heads, so the heads of one token are neighbours in the shape.
    x = x.transpose(1, 2)  # (B, T, h, d)
    # Merging (h, d) is a free view if `x` came straight from split_heads, but a fresh (B, h, T, d)
    # tensor, such as attention's output, is not row-major once transposed: then reshape copies.
    return x.reshape(B, T, h * d)  # (B, T, C)


def _attempt(candidate, where: str, *args, **kwargs):
    # Run a learner's attempt; a crash is a failed case that says which inputs caused it.
    try:
        return candidate(*args, **kwargs)
    except Exception as err:  # any failure of the attempt is reported, not crashed on
        raise AssertionError(f"{where}: the attempt raised {type(err).__name__}: {err}") from err


def check_merge_heads(candidate: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``merge_heads``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_merge_heads(merge_heads)
    """
    generator = torch.Generator().manual_seed(2)
    for B, h, T, d in [(2, 4, 5, 3), (1, 1, 3, 8), (3, 2, 1, 4), (1, 3, 4, 1), (0, 2, 3, 4)]:
        x = torch.randn(B, T, h * d, generator=generator)
        # Both the non-contiguous output of split_heads and a contiguous tensor of the same heads.
        for heads in (split_heads(x, h), split_heads(x, h).contiguous()):
            before = heads.clone()
            where = f"heads of shape {(B, h, T, d)}"
            got = _attempt(candidate, where, heads)
            assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
            assert got.shape == (B, T, h * d), f"{where}: expected shape {(B, T, h * d)}, got {tuple(got.shape)}"
            assert torch.equal(got, x), (
                f"{where}: merge_heads(split_heads(x)) is not x; did you reshape to (B, T, h * d) "
                "without moving the heads behind the tokens first?"
            )
            assert torch.equal(heads, before), "the attempt modified its input in place"


def sliding_windows(input: torch.Tensor, dimension: int, size: int, step: int) -> torch.Tensor:
    """Challenge solution: `Tensor.unfold` from scratch, every window of ``size`` elements ``step`` apart.

    Args:
        input: a tensor with at least one dimension.
        dimension: the dimension to slide along.
        size: the window length, from 1 to ``input.size(dimension)``.
        step: the distance between the starts of two windows, at least 1.

    Returns:
        A view in which ``dimension`` counts windows and a new last dimension of length ``size`` runs
        inside each window.

    Raises:
        ValueError: if ``input`` is 0-D or ``dimension``, ``size`` or ``step`` is out of range.

    Examples:
        >>> sliding_windows(torch.arange(6), 0, size=3, step=2)
        tensor([[0, 1, 2],
                [2, 3, 4]])
    """
    _require_tensor(input, "input")
    if input.ndim == 0:
        raise ValueError("input must have at least one dimension, got a 0-D tensor")
    dim = _normalize_dim(dimension, input.ndim, "dimension")
    n = input.size(dim)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= n:
        raise ValueError(f"size must be an int in [1, {n}] for dimension {dimension} of size {n}, got {size!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be a positive int, got {step!r}")
    out_size, out_stride = list(input.shape), list(input.stride())
    # The next window starts `step` elements further on; inside a window we step one element, as before.
    out_size[dim], out_stride[dim] = (n - size) // step + 1, input.stride(dim) * step
    return torch.as_strided(input, [*out_size, size], [*out_stride, input.stride(dim)], input.storage_offset())


def check_sliding_windows(candidate: Callable[[torch.Tensor, int, int, int], torch.Tensor]) -> None:
    """Check an attempt at ``sliding_windows``; raise ``AssertionError`` with a hint if it is wrong.

    Examples:
        >>> check_sliding_windows(sliding_windows)
    """
    line, matrix = torch.arange(10), torch.arange(30.).view(5, 6)
    cases = [
        (line, 0, 3, 1), (line, 0, 3, 3), (line, 0, 2, 4), (line[:7], 0, 7, 1), (line[:7], -1, 1, 10),
        (matrix, 1, 4, 2), (matrix, 0, 2, 1), (matrix.t(), -1, 3, 2), (matrix[1:, ::2], 0, 2, 2),
        (torch.arange(24).view(2, 3, 4), 1, 2, 1),
    ]
    for input, dimension, size, step in cases:
        before = input.clone()
        where = f"input of shape {tuple(input.shape)}, dimension={dimension}, size={size}, step={step}"
        got = _attempt(candidate, where, input, dimension, size, step)
        expected = input.unfold(dimension, size, step)
        assert isinstance(got, torch.Tensor), f"expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        assert torch.equal(got, expected), f"{where}: wrong values, expected {expected.tolist()}"
        assert got.untyped_storage().data_ptr() == input.untyped_storage().data_ptr(), (
            f"{where}: the windows must be a view of the input (torch.as_strided), not a copy"
        )
        assert torch.equal(input, before), "the attempt modified its input in place"


def plot_memory_layout(*, rows: int = 3, cols: int = 4) -> Figure:
    """Draw a ``rows x cols`` tensor, its transpose and the one storage both of them read.

    Each cell shows its position in storage and is coloured by it (one hue per row of the original,
    lighter to darker along the row), so the same colours appear in all three pictures.

    Args:
        rows: rows of the original tensor, 1 to 7.
        cols: columns of the original tensor, 2 to 8.

    Returns:
        A figure with one panel.

    Raises:
        ValueError: if ``rows`` or ``cols`` is out of range.

    Examples:
        >>> fig = plot_memory_layout(rows=2, cols=3)
        >>> len(fig.axes)
        1
    """
    if not 1 <= rows <= len(PALETTE) or not 2 <= cols <= 8:
        raise ValueError(f"rows must be in [1, {len(PALETTE)}] and cols in [2, 8], got rows={rows}, cols={cols}")
    from matplotlib.patches import FancyArrowPatch, Rectangle

    x = torch.arange(rows * cols).view(rows, cols)
    fig, (ax,) = new_figure(width=8.0, height=4.6)

    def cell(left: float, top: float, position: int) -> None:
        colour = PALETTE[position // cols]
        alpha = 0.25 + 0.5 * (position % cols) / (cols - 1)
        ax.add_patch(Rectangle((left, top), 1, 1, facecolor=colour, alpha=alpha, edgecolor="white", linewidth=2))
        ax.text(left + 0.5, top + 0.5, str(position), ha="center", va="center", fontsize=11)

    # The two grids side by side on top; each cell prints the storage position it reads.
    t_left = cols + 2
    for name, tensor, left in (("x", x, 0), ("x.T", x.t(), t_left)):
        for r in range(tensor.size(0)):
            for c in range(tensor.size(1)):
                cell(left + c, r, int(tensor[r, c]))
        shape, stride = tuple(tensor.shape), tensor.stride()
        ax.text(left + tensor.size(1) / 2, -0.4, f"{name}: shape {shape}, stride {stride}", ha="center", fontsize=10)
    # The storage strip below both, read by each of them.
    strip = max(rows, cols) + 1.8
    length = rows * cols
    offset = (t_left + rows - length) / 2
    for p in range(length):
        cell(offset + p, strip, p)
    ax.text(offset + length / 2, strip + 2.1, "storage: one strip of memory, shared by x and x.T", ha="center", fontsize=10)
    # Arrows on the strip: a row of x steps 1 position (below), a row of x.T jumps `cols` positions (above).
    step_colour, jump_colour = PALETTE[3], PALETTE[5]
    hops = [(p, p + 1, strip + 1, 0.5, step_colour) for p in range(cols - 1)]
    hops += [(p * cols, (p + 1) * cols, strip, -0.4, jump_colour) for p in range(rows - 1)]
    for start, end, y, bend, colour in hops:
        ax.add_patch(FancyArrowPatch((offset + start + 0.5, y), (offset + end + 0.5, y), color=colour,
                                     connectionstyle=f"arc3,rad={bend}", arrowstyle="-|>", mutation_scale=12, lw=1.5))
    ax.text(offset + length + 0.3, strip - 0.3, f"x.T[0, :] jumps {cols}", color=jump_colour, fontsize=10, va="center")
    ax.text(offset + length + 0.3, strip + 1.3, "x[0, :] steps 1", color=step_colour, fontsize=10, va="center")
    ax.set_xlim(min(offset, 0) - 0.5, max(offset + length + 4.5, t_left + rows + 0.5))
    ax.set_ylim(strip + 2.5, -1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
