r"""
# Broadcasting: Stretching Tensors Without Spending a Byte

!!! torchenstein "The Professor speaks"
    Add a row of biases to a whole batch of rows and PyTorch neither complains nor copies: it
    *broadcasts*, stretching the small tensor to meet the big one through memory it never allocates.
    Today we learn the rules that decide which shapes may meet, rebuild the machinery from scratch and
    prove it equals PyTorch's own. Then we hunt the quietest bug in deep learning, the one that gives
    perfect predictions a positive loss without a single error message.

**You will learn to**

- predict the shape of any broadcast with four rules, and say exactly why two shapes refuse to meet;
- see that broadcasting is free: the small tensor becomes a stride-0 view, never a copy;
- build `broadcast_shapes` and `broadcast_tensors` from scratch and prove them equal to PyTorch's;
- know when an in-place operation may broadcast and when it must refuse;
- catch the `(n,)` against `(n, 1)` bug before it eats your loss.

## When shapes disagree politely

An *element-wise* operation, such as `+`, `*` or `>`, combines the numbers that sit at the same position
in its inputs (the [next lesson](../elementwise/index.md) is all about them), so it wants two tensors of
the same shape. Broadcasting relaxes that: a tensor with fewer dimensions, or with size 1 where the
other has more, is treated as if it were repeated until the shapes match. A *bias*, one number per
column added to every row, of shape `(3,)` joins a batch of shape `(4, 3)` row by row. When no
repetition can make the shapes match, PyTorch refuses and names the dimension:

```pycon
>>> import torch
>>> batch, bias = torch.zeros(4, 3), torch.tensor([1., 2., 3.])
>>> (batch + bias).shape
torch.Size([4, 3])
>>> (batch + bias)[3]
tensor([1., 2., 3.])
>>> torch.zeros(2, 3) + torch.zeros(4, 3)
Traceback (most recent call last):
...
RuntimeError: The size of tensor a (2) must match the size of tensor b (4) at non-singleton dimension 0

```

## The rules, step by step

To broadcast shapes together:

1. **Align them on the right**: the last dimensions face each other, then the ones before them.
2. **Pad the shorter shapes with 1s on the left** until all have the same length.
3. **Check each column**: the sizes must be equal, or 1.
4. **The result takes the size that is not 1** in each column (the maximum, except that a size-1
   dimension stretches to 0 as readily as to 4, so a 0 beats a 1).

A size-1 dimension stretches; any other size is fixed. For shapes $s^{(1)}, \dots, s^{(k)}$ padded to
length $n$, the result is, column by column,

$$
r_d = \begin{cases} 1 & \text{if } s^{(i)}_d = 1 \text{ for every } i,\\
m & \text{if every } s^{(i)}_d \in \{1, m\} \text{ for one size } m \neq 1,\\
\text{error} & \text{otherwise.} \end{cases}
$$

Here are the four steps by hand for a `(3, 1)` column and a `(4,)` row, then PyTorch's verdict on a few
more pairs (NumPy follows the same rules):

```pycon
>>> a_shape, b_shape = (3, 1), (4,)
>>> b_padded = (1,) * (len(a_shape) - len(b_shape)) + b_shape
>>> b_padded
(1, 4)
>>> tuple(m if n == 1 else n for m, n in zip(a_shape, b_padded))
(3, 4)
>>> torch.broadcast_shapes(a_shape, b_shape)
torch.Size([3, 4])
>>> torch.broadcast_shapes((8, 1, 6, 1), (7, 1, 5)), torch.broadcast_shapes((5,), ())
(torch.Size([8, 7, 6, 5]), torch.Size([5]))
>>> torch.broadcast_shapes((0,), (1,)), torch.broadcast_shapes((2, 1), (3, 1, 1), (4,))
(torch.Size([0]), torch.Size([3, 2, 4]))

```

The column and the row each stretch along the dimension where they have size 1, and meet in a
`(3, 4)` grid. The faded cells below are not in memory; they are the same elements read again:

![A (3, 1) column a and a (4,) row b, each drawn with its real cells solid and its stretched copies as faded dashed ghost cells filling a 3 by 4 grid, and their sum a + b as a solid 3 by 4 grid](plot_broadcasting.svg)

## Broadcasting is free: stride-0 views

How does PyTorch repeat a tensor without copying it? With the trick from
[`expand`][torchenstein.tensors.metamorphosis.expand]: a stretched dimension gets **stride 0**, so every
step along it lands on the same element. `torch.broadcast_tensors` hands back exactly these views, and
their storages are the original ones, not one byte larger:

```pycon
>>> a = torch.tensor([[0.], [10.], [20.]])  # (3, 1)
>>> b = torch.tensor([0., 1., 2., 3.])  # (4,)
>>> a_wide, b_wide = torch.broadcast_tensors(a, b)
>>> a_wide.shape, a_wide.stride(), b_wide.shape, b_wide.stride()
(torch.Size([3, 4]), (1, 0), torch.Size([3, 4]), (0, 1))
>>> a_wide.untyped_storage().nbytes(), b_wide.untyped_storage().nbytes()
(12, 16)
>>> a_wide.untyped_storage().data_ptr() == a.untyped_storage().data_ptr()
True
>>> {"same sum": torch.equal(a + b, a_wide + b_wide), "stride of the sum": (a + b).stride()}
{'same sum': True, 'stride of the sum': (4, 1)}

```

The inputs stay as small as they were; only the *result* of `a + b` is a real `(3, 4)` tensor, because it
holds a different number in every cell. The kernels never even build the stride-0 views as Python objects:
they walk the inputs with stride 0 along the stretched dimensions, the same address arithmetic.

The backward pass of a stretch (the gradient, see the
[primer](../creation/index.md#a-one-minute-primer-on-gradients)) is a **sum**: the bias that was read once
per row receives the gradient of every row. That is why a bias's gradient is the batch's gradients summed
over the batch dimension:

```pycon
>>> bias = torch.zeros(3, requires_grad=True)
>>> (torch.ones(4, 3) + bias).sum().backward()
>>> bias.grad
tensor([4., 4., 4.])
>>> torch.ones(4, 3).sum_to_size(3)  # the reduction that undoes a broadcast
tensor([4., 4., 4.])

```

## `broadcast_shapes` from scratch

Our [`broadcast_shapes`][torchenstein.tensors.broadcasting.broadcast_shapes] is the four rules in code.
Where PyTorch raises a `RuntimeError` (whose wording has changed between releases), ours raises a
`ValueError` that names every shape, the dimension counted from the right, and the two sizes that clash:

```pycon
>>> from torchenstein.tensors.broadcasting import broadcast_shapes
>>> broadcast_shapes((3, 1), (4,)), broadcast_shapes((8, 1, 6, 1), (7, 1, 5))
(torch.Size([3, 4]), torch.Size([8, 7, 6, 5]))
>>> broadcast_shapes((0,), (1,)) == torch.broadcast_shapes((0,), (1,))
True
>>> broadcast_shapes((2, 1), (8, 4, 3))
Traceback (most recent call last):
...
ValueError: shapes (2, 1) and (8, 4, 3) cannot be broadcast: at dimension -2 (counting from the right) shape 0 has size 2 and shape 1 has size 4; sizes must be equal or 1
>>> torch.broadcast_shapes((2, 1), (8, 4, 3))
Traceback (most recent call last):
...
RuntimeError: Attempting to broadcast a dimension of length 4 at -2! Mismatching argument at index 1 had (8, 4, 3); but expected shape should be broadcastable to [1, 2, 3]

```

The tests hold it to PyTorch on hundreds of random pairs and triples of shapes, errors included.

## `broadcast_tensors` from scratch

Once the shape is known, each tensor is stretched to it with `expand`, the stride-0 view from the
metamorphosis lesson. Our [`broadcast_tensors`][torchenstein.tensors.broadcasting.broadcast_tensors]
returns views with the same values, shapes and strides as PyTorch's, over the same storages:

```pycon
>>> from torchenstein.tensors.broadcasting import broadcast_tensors
>>> ours = broadcast_tensors(a, b)
>>> [t.stride() for t in ours], [t.stride() for t in torch.broadcast_tensors(a, b)]
([(1, 0), (0, 1)], [(1, 0), (0, 1)])
>>> all(torch.equal(o, t) for o, t in zip(ours, torch.broadcast_tensors(a, b)))
True
>>> ours[1].untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
True

```

One detail: a 0-D tensor has no strides at all, so PyTorch gives *every* dimension of its stretched view
stride 0, even a dimension of size 1 (where the stride is never used). The from-scratch `expand` of
[Tensor metamorphosis](../metamorphosis/index.md) copies that quirk, so the strides agree everywhere.

## In-place operations stretch only the right-hand side

`x += y` is an *in-place* operation: it writes the result into `x`'s own memory instead of making a new
tensor, and that memory cannot grow. So `y` may broadcast up to `x`'s shape, but the broadcast shape must
be exactly `x`'s shape: the left-hand side never stretches.

```pycon
>>> x = torch.zeros(2, 3)
>>> x += torch.tensor([1., 2., 3.])  # (3,) stretches to (2, 3): fine
>>> x
tensor([[1., 2., 3.],
        [1., 2., 3.]])
>>> row = torch.zeros(3)
>>> row += x  # (3,) and (2, 3) broadcast to (2, 3), which does not fit in row
Traceback (most recent call last):
...
RuntimeError: output with shape [3] doesn't match the broadcast shape [2, 3]
>>> (row + x).shape  # out of place, a new (2, 3) tensor is allowed
torch.Size([2, 3])

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the (n,) against (n, 1) loss"
    The model returns predictions of shape `(n, 1)` (one output unit), the targets are `(n,)`.
    Dr. Hammer writes the mean squared error, the mean of the squared differences, by hand. The
    difference broadcasts to `(n, n)`: every prediction is compared with *every* target, and the mean of
    that grid is a perfectly plausible, perfectly wrong number. Here the predictions are exact, so the
    loss must be zero:

    ```pycon
    >>> pred = torch.tensor([[1.], [2.], [3.]])  # (3, 1)
    >>> target = torch.tensor([1., 2., 3.])  # (3,)
    >>> (pred - target).shape
    torch.Size([3, 3])
    >>> round(((pred - target) ** 2).mean().item(), 4)
    1.3333
    >>> ((pred.squeeze(-1) - target) ** 2).mean().item()
    0.0

    ```

    `torch.nn.functional.mse_loss` at least warns about it (a warning is easy to miss in a log). The cure
    is to make the shapes equal on purpose, `squeeze(-1)` or `unsqueeze(-1)`, and to assert them:

    ```pycon
    >>> import warnings
    >>> import torch.nn.functional as F
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     loss = F.mse_loss(pred, target)
    >>> {"loss": round(loss.item(), 4), "warned": "different to the input size" in str(caught[0].message)}
    {'loss': 1.3333, 'warned': True}
    >>> assert pred.squeeze(-1).shape == target.shape

    ```

!!! hammer "Dr. Hammer's trap: broadcasting over the batch by accident"
    Each sample in a batch gets a weight, a vector of shape `(B,)`. The batch is `(B, D)`. Broadcasting
    aligns on the *right*, so the weights face the features, not the samples. With `B != D` this fails
    loudly; with a batch that happens to be square it scales the features, silently:

    ```pycon
    >>> samples = torch.ones(3, 3)  # (B=3, D=3)
    >>> weights = torch.tensor([1., 2., 3.])  # one weight per sample, (B,)
    >>> samples * weights  # row i should be all weights[i]
    tensor([[1., 2., 3.],
            [1., 2., 3.],
            [1., 2., 3.]])
    >>> samples * weights[:, None]  # (B, 1): one weight per row
    tensor([[1., 1., 1.],
            [2., 2., 2.],
            [3., 3., 3.]])

    ```

!!! hammer "Dr. Hammer's trap: the in-place accumulator"
    Dr. Hammer keeps a running total per feature, shape `(D,)`, and adds a whole `(B, D)` batch into it in
    place. The broadcast shape is the batch's, which does not fit in the total. Reduce first:
    `sum(dim=0)` adds the rows up and removes dimension 0 (reductions are the next lesson's subject).

    ```pycon
    >>> total = torch.zeros(3)
    >>> new_batch = torch.ones(4, 3)
    >>> total += new_batch
    Traceback (most recent call last):
    ...
    RuntimeError: output with shape [3] doesn't match the broadcast shape [4, 3]
    >>> total += new_batch.sum(dim=0)
    >>> total
    tensor([4., 4., 4.])

    ```

!!! hammer "Dr. Hammer's trap: the accidental outer product"
    Squared distances between `N` points and `M` other points, each a vector of `D` numbers, by
    broadcasting `(N, 1, D) - (1, M, D)`: a tidy one-liner that builds an `(N, M, D)` tensor of
    differences. Our `broadcast_shapes` reads the bill without paying it (4 bytes per float32), and it
    is not small. `torch.cdist` computes the same distances without ever building that tensor (the
    [matmul lesson](../matmul/index.md)'s second challenge rebuilds its trick):

    ```pycon
    >>> N, M, D = 20_000, 20_000, 512
    >>> diff_shape = broadcast_shapes((N, 1, D), (1, M, D))
    >>> diff_shape, round(diff_shape.numel() * 4 / 2**30, 1)  # GiB
    (torch.Size([20000, 20000, 512]), 762.9)
    >>> x1, x2 = torch.randn(5, 3), torch.randn(4, 3)
    >>> outer = ((x1[:, None, :] - x2[None, :, :]) ** 2).sum(-1)  # fine for 5 and 4 points
    >>> torch.allclose(torch.cdist(x1, x2) ** 2, outer, atol=1e-5)
    True

    ```

## Challenges

1. **Pairwise squared distances.** Write `pairwise_squared_distances(x1, x2)`: for `x1` of shape
   `(..., N, D)` and `x2` of shape `(..., M, D)`, return the `(..., N, M)` tensor of squared Euclidean
   distances between every row of `x1` and every row of `x2`, with broadcasting and no Python loops. It
   must equal `torch.cdist(x1, x2) ** 2`. (Your points are few; the outer product is fine here. The one
   tool from beyond this lesson: `t.sum(dim=-1)` adds up along the last dimension, removing it.)
2. **Rows of unit length.** Write `l2_normalize_rows(input, eps=1e-12)`: divide every row (the last
   dimension) by its L2 norm, or by `eps` when the norm is smaller, like
   `torch.nn.functional.normalize(input, dim=-1)`. A row of zeros stays zeros. (The L2 norm of a vector
   is $\sqrt{\sum_i x_i^2}$, its length; compute it with
   `torch.linalg.vector_norm(input, dim=-1, keepdim=True)`. `keepdim=True` keeps the reduced dimension
   with size 1, so the norms of shape `(..., 1)` stretch across their rows; without it they have shape
   `(...)` and face the *columns*, which on square inputs, tested here, raises no error. The older
   `Tensor.norm` and `torch.norm` are deprecated, and this course uses `torch.linalg.vector_norm`
   throughout.)

Check yours with `check_pairwise_squared_distances(my_function)` and `check_l2_normalize_rows(my_function)`,
or put them in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass:

```pycon
>>> from torchenstein.tensors import broadcasting as lesson
>>> lesson.check_pairwise_squared_distances(lesson.pairwise_squared_distances)
>>> lesson.check_l2_normalize_rows(lesson.l2_normalize_rows)

```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.metamorphosis import expand

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _as_shape(shape: object, position: int) -> tuple[int, ...]:
    # Like PyTorch, a single int n stands for the shape (n,); a bool is an int to Python but never a size.
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, torch.Tensor) or not isinstance(shape, Sequence):
        raise TypeError(f"shape {position} must be an int or a sequence of ints, got {type(shape).__name__}")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        raise TypeError(f"shape {position} must hold only ints, got {list(shape)!r}")
    if any(n < 0 for n in shape):
        raise ValueError(f"shape {position} must hold non-negative sizes, got {tuple(shape)}")
    return tuple(shape)


def _name_shapes(shapes: Sequence[tuple[int, ...]]) -> str:
    # "(2, 1) and (4,)" or "(2, 1), (3,) and (4,)": the shapes as the reader wrote them.
    names = [str(s) for s in shapes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def broadcast_shapes(*shapes: int | Sequence[int]) -> torch.Size:
    """`torch.broadcast_shapes` from scratch: the shape that all ``shapes`` broadcast to.

    Args:
        *shapes: shapes as tuples, lists or ``torch.Size``; a single int ``n`` means ``(n,)``.

    Returns:
        The broadcast shape, ``torch.Size([])`` when no shapes are given.

    Raises:
        TypeError: if a shape is not an int or a sequence of ints.
        ValueError: if a size is negative, or if two shapes have different sizes, neither of them 1,
            in the same dimension counted from the right (PyTorch raises ``RuntimeError`` there).

    Examples:
        >>> broadcast_shapes((3, 1), (4,)), broadcast_shapes((2, 1), (3, 1, 1), 4)
        (torch.Size([3, 4]), torch.Size([3, 2, 4]))
        >>> broadcast_shapes((3,), (4,))
        Traceback (most recent call last):
        ...
        ValueError: shapes (3,) and (4,) cannot be broadcast: at dimension -1 (counting from the right) shape 0 has size 3 and shape 1 has size 4; sizes must be equal or 1
    """
    shapes = tuple(_as_shape(shape, i) for i, shape in enumerate(shapes))
    ndim = max((len(shape) for shape in shapes), default=0)
    # Rules 1 and 2: align on the right by padding every shape with 1s on the left.
    padded = [(1,) * (ndim - len(shape)) + shape for shape in shapes]
    result = [1] * ndim
    # Rules 3 and 4, column by column from the right, where the mismatches usually are.
    for d in range(ndim - 1, -1, -1):
        # The first shape with a size other than 1 in this column sets the size; all others must agree.
        owner = None
        for i, shape in enumerate(padded):
            if shape[d] == 1:
                continue
            if owner is None:
                owner, result[d] = i, shape[d]
            elif shape[d] != result[d]:
                raise ValueError(
                    f"shapes {_name_shapes(shapes)} cannot be broadcast: at dimension {d - ndim} (counting from "
                    f"the right) shape {owner} has size {result[d]} and shape {i} has size {shape[d]}; "
                    "sizes must be equal or 1"
                )
    return torch.Size(result)


def broadcast_tensors(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`torch.broadcast_tensors` from scratch: every tensor stretched to the broadcast shape, without copies.

    Args:
        *tensors: the tensors to broadcast against each other.

    Returns:
        One view per input, all of the broadcast shape; stretched dimensions have stride 0 and every view
        reads its input's storage.

    Raises:
        TypeError: if an argument is not a tensor.
        ValueError: if the shapes cannot be broadcast (see `broadcast_shapes`).

    Examples:
        >>> a, b = broadcast_tensors(torch.zeros(3, 1), torch.ones(4))
        >>> a.shape, a.stride(), b.stride()
        (torch.Size([3, 4]), (1, 0), (0, 1))
    """
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor {i} must be a torch.Tensor, got {type(t).__name__}")
    shape = broadcast_shapes(*(t.shape for t in tensors))
    # New leading dimensions and size-1 dimensions that grow get stride 0; the rest keep theirs.
    return tuple(expand(t, shape) for t in tensors)


def pairwise_squared_distances(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Challenge solution: squared Euclidean distance between every row of ``x1`` and every row of ``x2``.

    Args:
        x1: points of shape ``(..., N, D)``.
        x2: points of shape ``(..., M, D)``; the leading dimensions broadcast with ``x1``'s.

    Returns:
        Shape ``(..., N, M)``: entry ``[..., i, j]`` is ``((x1[..., i, :] - x2[..., j, :]) ** 2).sum()``,
        equal to ``torch.cdist(x1, x2) ** 2``.

    Raises:
        TypeError: if an argument is not a tensor.
        ValueError: if either is below 2-D or their last dimensions differ.

    Examples:
        >>> x1, x2 = torch.tensor([[0., 0.], [1., 1.]]), torch.tensor([[0., 1.], [3., 0.], [1., 1.]])
        >>> pairwise_squared_distances(x1, x2)
        tensor([[1., 9., 2.],
                [1., 5., 0.]])
    """
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2:
            raise ValueError(f"{name} must have shape (..., points, D), got shape {tuple(x.shape)}")
    if x1.size(-1) != x2.size(-1):
        raise ValueError(f"x1 and x2 must have the same last dimension D, got shapes {tuple(x1.shape)} and {tuple(x2.shape)}")
    # Each x1 point gets its own row and each x2 point its own column; broadcasting pairs them all up.
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)  # (..., N, 1, D) - (..., 1, M, D) -> (..., N, M, D)
    return (diff**2).sum(dim=-1)  # (..., N, M)


def _call(candidate: Callable, where: str, *args: torch.Tensor) -> torch.Tensor:
    # A shape mistake usually raises inside the attempt; turn it into a checker's verdict with the inputs.
    try:
        got = candidate(*args)
    except Exception as err:  # any failure of a learner's attempt is reported, not crashed on
        raise AssertionError(f"{where}: the attempt raised {type(err).__name__}: {err}") from err
    assert isinstance(got, torch.Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
    return got


def check_pairwise_squared_distances(candidate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``pairwise_squared_distances``; raise ``AssertionError`` with a hint if wrong.

    Examples:
        >>> check_pairwise_squared_distances(pairwise_squared_distances)
    """
    generator = torch.Generator().manual_seed(3)
    # Square cases (N == M == D) catch attempts whose shapes only line up by accident.
    cases = [((5, 3), (4, 3)), ((4, 4), (4, 4)), ((1, 2), (6, 2)), ((3, 1), (2, 1)), ((2, 5, 3), (2, 4, 3)),
             ((2, 3, 2), (1, 5, 2)), ((0, 3), (4, 3))]
    for shape1, shape2 in cases:
        x1 = torch.randn(shape1, generator=generator, dtype=torch.float64)
        x2 = torch.randn(shape2, generator=generator, dtype=torch.float64)
        before = (x1.clone(), x2.clone())
        where = f"x1 of shape {shape1}, x2 of shape {shape2}"
        got = _call(candidate, where, x1, x2)
        expected = torch.cdist(x1, x2) ** 2
        assert got.shape == expected.shape, (
            f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}; give x1 a new dimension for "
            "the columns and x2 one for the rows"
        )
        torch.testing.assert_close(got, expected, msg=lambda m, where=where: f"{where}: wrong distances. {m}")
        assert torch.equal(x1, before[0]) and torch.equal(x2, before[1]), "the attempt modified its input in place"
    # A point's distance to itself is zero.
    points = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    self_distances = _call(candidate, "x1 and x2 the same (6, 3) points", points, points).diagonal()
    torch.testing.assert_close(self_distances, torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0,
                               msg="the distance from a point to itself must be zero")


def l2_normalize_rows(input: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Challenge solution: divide every row (the last dimension) by its L2 norm, at least ``eps``.

    Args:
        input: a tensor with at least one dimension.
        eps: the smallest norm divided by, so a row of zeros stays zeros.

    Returns:
        A tensor of ``input``'s shape whose rows have L2 norm 1 (or are zero), equal to
        ``torch.nn.functional.normalize(input, dim=-1, eps=eps)``.

    Raises:
        TypeError: if ``input`` is not a tensor.
        ValueError: if ``input`` is 0-D or ``eps`` is not positive.

    Examples:
        >>> l2_normalize_rows(torch.tensor([[3., 4.], [0., 0.]]))
        tensor([[0.6000, 0.8000],
                [0.0000, 0.0000]])
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.ndim == 0:
        raise ValueError("input must have at least one dimension (the rows' entries), got a 0-D tensor")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    # keepdim leaves the norms as a column, (..., 1), which broadcasts across each row.
    norms = torch.linalg.vector_norm(input, dim=-1, keepdim=True).clamp_min(eps)  # (..., 1)
    return input / norms


def check_l2_normalize_rows(candidate: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check an attempt at ``l2_normalize_rows``; raise ``AssertionError`` with a hint if wrong.

    Examples:
        >>> check_l2_normalize_rows(l2_normalize_rows)
    """
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(4)
    # The square (3, 3) comes first: without keepdim its shapes agree by accident and columns get divided.
    for shape in [(3, 3), (2, 5), (1, 4), (4, 1), (7,), (2, 3, 3), (0, 3)]:
        x = torch.randn(shape, generator=generator)
        before = x.clone()
        where = f"input of shape {shape}"
        got = _call(candidate, where, x)
        assert got.shape == x.shape, f"{where}: expected shape {shape}, got {tuple(got.shape)}"
        torch.testing.assert_close(got, F.normalize(x, dim=-1), msg=lambda m, where=where: (
            f"{where}: wrong values; did you divide by the norms with keepdim=True? {m}"))
        assert torch.equal(x, before), "the attempt modified its input in place"
    zeros = torch.tensor([[0., 0., 0.], [1., 2., 2.]])
    got = _call(candidate, "a row of zeros", zeros)
    assert not got.isnan().any(), "a row of zeros gave NaN: divide by the norm clamped to at least eps"
    torch.testing.assert_close(got, F.normalize(zeros, dim=-1), msg="a row of zeros must stay zeros")


def plot_broadcasting(*, rows: int = 3, cols: int = 4) -> Figure:
    """Draw a ``(rows, 1)`` column and a ``(cols,)`` row stretched into ``(rows, cols)``, and their sum.

    Solid cells hold an element in memory; faded dashed cells are ghosts that re-read an element through
    a stride-0 dimension. Which cells are ghosts is read off the strides of `broadcast_tensors`.

    Args:
        rows: length of the column, 1 to 6.
        cols: length of the row, 2 to 8.

    Returns:
        A figure with one panel.

    Raises:
        ValueError: if ``rows`` or ``cols`` is out of range.

    Examples:
        >>> fig = plot_broadcasting(rows=2, cols=3)
        >>> len(fig.axes)
        1
    """
    if not 1 <= rows <= 6 or not 2 <= cols <= 8:
        raise ValueError(f"rows must be in [1, 6] and cols in [2, 8], got rows={rows}, cols={cols}")
    from matplotlib.patches import Rectangle

    a = 10 * torch.arange(rows).view(rows, 1)  # (rows, 1)
    b = torch.arange(cols)  # (cols,)
    a_wide, b_wide = broadcast_tensors(a, b)  # both (rows, cols)
    total = a + b  # a real (rows, cols) tensor
    gap = 1.8
    # Equal aspect: the height follows from the drawing's extent, within sensible bounds.
    extent_x, extent_y = 3 * cols + 2 * gap + 0.6, rows + 2.8
    fig, (ax,) = new_figure(width=9.0, height=min(max(9.0 * extent_y / extent_x + 0.3, 2.0), 6.0))

    def draw(tensor: torch.Tensor, left: float, colour: str, title: str) -> None:
        # A cell is a ghost when it sits past index 0 along a stride-0 dimension: it re-reads index 0's memory.
        stretched = [d for d in range(tensor.ndim) if tensor.stride(d) == 0]
        for r in range(rows):
            for c in range(cols):
                ghost = any((r, c)[d] > 0 for d in stretched)
                ax.add_patch(Rectangle(
                    (left + c, r), 1, 1, facecolor=colour, alpha=0.12 if ghost else 0.55,
                    edgecolor=colour if ghost else "white", linestyle="--" if ghost else "-",
                    linewidth=1.2 if ghost else 2))
                ax.text(left + c + 0.5, r + 0.5, str(int(tensor[r, c])), ha="center", va="center", fontsize=11,
                        color="#999999" if ghost else "black")
        ax.text(left + cols / 2, -0.35, title, ha="center", va="bottom", fontsize=10)

    lefts = [0.0, cols + gap, 2 * (cols + gap)]
    draw(a_wide, lefts[0], PALETTE[0], f"a: shape {tuple(a.shape)}\nstretched: stride {a_wide.stride()}")
    draw(b_wide, lefts[1], PALETTE[1],
         f"b: shape {tuple(b.shape)}, padded to {(1, cols)}\nstretched: stride {b_wide.stride()}")
    draw(total, lefts[2], PALETTE[3], f"a + b: shape {tuple(total.shape)}\na fresh tensor, stride {total.stride()}")
    for symbol, left in (("+", lefts[1]), ("=", lefts[2])):
        ax.text(left - gap / 2, rows / 2, symbol, ha="center", va="center", fontsize=20)
    ax.text((lefts[2] + cols) / 2, rows + 0.5, "solid: an element in memory;  faded, dashed: a ghost read through stride 0",
            ha="center", va="top", fontsize=9, color=PALETTE[6])
    ax.set_xlim(-0.3, lefts[2] + cols + 0.3)
    ax.set_ylim(rows + 1.3, -1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
