"""The from-scratch broadcasting agrees with PyTorch's: shapes, errors, values, strides and shared storage."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.tensors.broadcasting import (
    broadcast_shapes,
    broadcast_tensors,
    check_l2_normalize_rows,
    check_pairwise_squared_distances,
    l2_normalize_rows,
    pairwise_squared_distances,
    plot_broadcasting,
)

SIZES = st.sampled_from([0, 1, 1, 1, 2, 3, 4])
# Freely drawn shapes have fewer 1s, so that they often clash.
FREE_SIZES = st.sampled_from([0, 1, 2, 3])


@st.composite
def shape_groups(draw, count: int):
    """``count`` shapes that usually broadcast (cut from one target) and sometimes clash (drawn freely)."""
    if draw(st.booleans()):
        return [tuple(draw(st.lists(FREE_SIZES, max_size=4))) for _ in range(count)]
    target = draw(st.lists(SIZES, max_size=4))
    shapes = []
    for _ in range(count):
        # Drop some leading dimensions, then shrink some of the rest to 1: always broadcastable to target.
        kept = target[draw(st.integers(0, len(target))):]
        shapes.append(tuple(1 if draw(st.booleans()) else n for n in kept))
    return shapes


def torch_shape_or_error(shapes):
    try:
        return torch.broadcast_shapes(*shapes)
    except RuntimeError:
        return None


def assert_names_a_real_conflict(message: str, shapes) -> None:
    """The dimension our error names holds two different sizes, neither of them 1, and every shape is named."""
    for shape in shapes:
        assert str(tuple(shape)) in message
    d = int(re.search(r"at dimension (-\d+)", message).group(1))
    sizes = {shape[d] for shape in shapes if len(shape) >= -d and shape[d] != 1}
    assert len(sizes) >= 2, (message, shapes)


def check_against_torch(shapes) -> None:
    expected = torch_shape_or_error(shapes)
    if expected is None:
        with pytest.raises(ValueError, match="cannot be broadcast") as info:
            broadcast_shapes(*shapes)
        assert_names_a_real_conflict(str(info.value), shapes)
    else:
        got = broadcast_shapes(*shapes)
        assert isinstance(got, torch.Size)
        assert got == expected


# broadcast_shapes


@settings(max_examples=200)
@given(shape_groups(2))
def test_broadcast_shapes_of_pairs_agree_with_torch(shapes):
    check_against_torch(shapes)


@settings(max_examples=200)
@given(shape_groups(3))
def test_broadcast_shapes_of_triples_agree_with_torch(shapes):
    check_against_torch(shapes)


@settings(max_examples=200)
@given(st.integers(1, 5).flatmap(shape_groups))
def test_broadcast_shapes_of_any_number_agree_with_torch(shapes):
    check_against_torch(shapes)


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ((), ()),
        (((),), ()),
        (((5,), ()), (5,)),
        (((3, 1), (4,)), (3, 4)),
        (((8, 1, 6, 1), (7, 1, 5)), (8, 7, 6, 5)),
        (((0,), (1,)), (0,)),
        (((1, 0), (3, 1)), (3, 0)),
        ((4, (2, 1)), (2, 4)),
        ((torch.Size([2, 1]), [1, 3]), (2, 3)),
    ],
)
def test_broadcast_shapes_known_cases(shapes, expected):
    assert broadcast_shapes(*shapes) == torch.Size(expected) == torch.broadcast_shapes(*shapes)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((3,), (4,)), r"shapes \(3,\) and \(4,\) cannot be broadcast: at dimension -1 .* size 3 and shape 1 has size 4"),
        (((2, 1), (8, 4, 3)), r"at dimension -2 \(counting from the right\) shape 0 has size 2 and shape 1 has size 4"),
        (((0,), (3,)), r"shape 0 has size 0 and shape 1 has size 3"),
        (((1, 3), (2, 1), (5, 3)), r"shapes \(1, 3\), \(2, 1\) and \(5, 3\) .* dimension -2 .* shape 1 has size 2 and shape 2 has size 5"),
    ],
)
def test_broadcast_shapes_names_the_conflict(shapes, message):
    with pytest.raises(ValueError, match=message):
        broadcast_shapes(*shapes)
    with pytest.raises(RuntimeError):
        torch.broadcast_shapes(*shapes)


def test_broadcast_shapes_refuses_what_is_not_a_shape():
    with pytest.raises(ValueError, match=r"shape 1 must hold non-negative sizes, got \(2, -1\)"):
        broadcast_shapes((3,), (2, -1))
    with pytest.raises(TypeError, match="shape 0 must be an int or a sequence of ints, got float"):
        broadcast_shapes(2.0)
    with pytest.raises(TypeError, match=r"shape 1 must hold only ints, got \[2, True\]"):
        broadcast_shapes((2,), [2, True])
    with pytest.raises(TypeError, match="got Tensor"):
        broadcast_shapes(torch.tensor([2, 3]))


@pytest.mark.parametrize("n", [2, 3, 7])
def test_n_against_n_by_one_is_n_by_n(n):
    # The shape behind Dr. Hammer's loss bug, for any n above 1.
    assert broadcast_shapes((n,), (n, 1)) == (n, n)


# broadcast_tensors


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool]


@st.composite
def tensor_groups(draw):
    """Tensors of broadcastable (or clashing) shapes, some transposed, sliced with steps or already expanded."""
    shapes = draw(st.integers(1, 3).flatmap(shape_groups))
    dtype = draw(st.sampled_from(DTYPES))
    tensors = []
    for i, shape in enumerate(shapes):
        t = (torch.arange(torch.Size(shape).numel()).view(shape) + 10 * i).to(dtype)
        layout = draw(st.sampled_from(["plain", "transposed", "strided", "expanded"]))
        if layout == "transposed" and t.ndim >= 2:
            t = t.transpose(0, -1).contiguous().transpose(0, -1)  # same shape, column-major memory
        elif layout == "strided" and t.ndim >= 1:
            t = torch.cat([t, t], dim=-1)[..., ::2]  # same shape, stride 2 along the last dimension
        elif layout == "expanded" and t.ndim >= 1 and t.shape[0] != 1:
            t = t[:1].expand(t.shape)  # already stride 0 along the first dimension
        tensors.append(t)
    return tensors


@settings(max_examples=150)
@given(tensor_groups())
def test_broadcast_tensors_agrees_with_torch(tensors):
    try:
        expected = torch.broadcast_tensors(*tensors)
    except RuntimeError:
        with pytest.raises(ValueError, match="cannot be broadcast"):
            broadcast_tensors(*tensors)
        return
    got = broadcast_tensors(*tensors)
    assert isinstance(got, tuple) and len(got) == len(tensors)
    for ours, theirs, source in zip(got, expected, tensors, strict=True):
        assert ours.shape == theirs.shape
        assert ours.dtype == theirs.dtype
        assert torch.equal(ours, theirs)
        assert ours.stride() == theirs.stride(), (source.shape, source.stride())
        assert ours.storage_offset() == theirs.storage_offset()
        assert same_storage(ours, source)


@pytest.mark.parametrize("shapes", [[(), (3, 1)], [(), ()], [(), (1,)], [(2, 3), ()], [(1, 1), (), (4,)]])
def test_zero_dim_tensors_get_stride_zero_everywhere(shapes):
    tensors = [torch.randn(shape) for shape in shapes]
    for ours, theirs in zip(broadcast_tensors(*tensors), torch.broadcast_tensors(*tensors), strict=True):
        assert ours.shape == theirs.shape and ours.stride() == theirs.stride()
        assert torch.equal(ours, theirs)


def test_broadcast_tensors_copies_nothing():
    a, b = torch.randn(1000, 1), torch.randn(1, 1000)
    wide_a, wide_b = broadcast_tensors(a, b)
    assert wide_a.shape == wide_b.shape == (1000, 1000)
    assert wide_a.stride() == (1, 0) and wide_b.stride() == (0, 1)
    assert wide_a.untyped_storage().nbytes() == a.untyped_storage().nbytes()
    # A write into the original shows up in every ghost copy: they are one element.
    a[3, 0] = 42.0
    assert (wide_a[3] == 42.0).all()


def test_broadcast_tensors_edge_cases():
    assert broadcast_tensors() == () == torch.broadcast_tensors()
    x = torch.randn(2, 3)
    (only,) = broadcast_tensors(x)
    assert torch.equal(only, x) and only.stride() == x.stride() and same_storage(only, x)
    a, b = broadcast_tensors(torch.zeros(0, 1), torch.zeros(3))
    assert a.shape == b.shape == (0, 3)


def test_broadcast_tensors_refuses_bad_input():
    with pytest.raises(TypeError, match="tensor 1 must be a torch.Tensor, got list"):
        broadcast_tensors(torch.zeros(2), [1, 2])
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(4, 3\) cannot be broadcast"):
        broadcast_tensors(torch.zeros(2, 3), torch.zeros(4, 3))


def test_broadcast_tensors_gradients_sum_over_the_stretched_dimensions():
    a = torch.randn(3, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    c = torch.randn((), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: broadcast_tensors(a, b, c), (a, b, c))
    upstream = [torch.randn(3, 4, dtype=torch.float64) for _ in range(3)]
    ours = torch.autograd.grad(broadcast_tensors(a, b, c), (a, b, c), upstream)
    theirs = torch.autograd.grad(torch.broadcast_tensors(a, b, c), (a, b, c), upstream)
    for g_ours, g_theirs in zip(ours, theirs, strict=True):
        torch.testing.assert_close(g_ours, g_theirs)
    torch.testing.assert_close(ours[1], upstream[1].sum(0))


# The lesson's claims.


def test_the_loss_bug_gives_the_grid_mean_and_the_fix_gives_zero():
    pred = torch.arange(5.0).unsqueeze(-1)  # (5, 1), exact predictions
    target = torch.arange(5.0)  # (5,)
    wrong = ((pred - target) ** 2).mean()
    grid = (torch.arange(5.0)[:, None] - torch.arange(5.0)[None, :]) ** 2
    torch.testing.assert_close(wrong, grid.mean())
    assert wrong > 0
    assert ((pred.squeeze(-1) - target) ** 2).mean() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(F.mse_loss(pred, target), wrong)


def test_in_place_broadcast_needs_the_left_hand_shape():
    x, row = torch.zeros(2, 3), torch.ones(3)
    x += row
    assert torch.equal(x, torch.ones(2, 3))
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        row += x


# Challenges.


@pytest.mark.parametrize(
    ("shape1", "shape2"),
    [((5, 3), (4, 3)), ((1, 1), (1, 1)), ((2, 7, 4), (2, 6, 4)), ((3, 1, 5, 2), (4, 6, 2)), ((0, 2), (3, 2))],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_squared_distances_match_cdist(shape1, shape2, dtype):
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(shape1, generator=g, dtype=dtype), torch.randn(shape2, generator=g, dtype=dtype)
    torch.testing.assert_close(pairwise_squared_distances(x1, x2), torch.cdist(x1, x2) ** 2)


def test_pairwise_squared_distances_gradients():
    x1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(pairwise_squared_distances, (x1, x2))


def test_pairwise_squared_distances_refuses_bad_input():
    with pytest.raises(ValueError, match=r"same last dimension D, got shapes \(4, 3\) and \(5, 2\)"):
        pairwise_squared_distances(torch.zeros(4, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"x2 must have shape \(\.\.\., points, D\), got shape \(3,\)"):
        pairwise_squared_distances(torch.zeros(4, 3), torch.zeros(3))
    with pytest.raises(TypeError, match="x1 must be a torch.Tensor"):
        pairwise_squared_distances([[0.0]], torch.zeros(1, 1))


@pytest.mark.parametrize("shape", [(3, 4), (4, 4), (2, 3, 5), (6,), (1, 1), (0, 4)])
def test_l2_normalize_rows_matches_f_normalize(shape):
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(l2_normalize_rows(x), F.normalize(x, dim=-1))
    torch.testing.assert_close(l2_normalize_rows(x, eps=10.0), F.normalize(x, dim=-1, eps=10.0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_l2_normalize_rows_matches_f_normalize_in_every_float_dtype_and_layout(dtype, scale):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 4, generator=g, dtype=torch.float64) * scale).to(dtype)
    for name, t in {"plain": x, "transposed": x.t(), "every other row": x[::2], "expanded": x[:1].expand(3, 4),
                    "0-size": x[:0], "one row": x[0]}.items():
        torch.testing.assert_close(l2_normalize_rows(t), F.normalize(t, dim=-1), msg=name)


def test_l2_normalize_rows_gradients_and_errors():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(l2_normalize_rows, (x,))
    with pytest.raises(ValueError, match="eps must be positive, got 0"):
        l2_normalize_rows(torch.ones(2, 2), eps=0)
    with pytest.raises(ValueError, match="got a 0-D tensor"):
        l2_normalize_rows(torch.tensor(1.0))


def test_checkers_pass_the_professors_solutions():
    assert check_pairwise_squared_distances(pairwise_squared_distances) is None
    assert check_l2_normalize_rows(l2_normalize_rows) is None


@pytest.mark.parametrize(
    ("attempt", "hint"),
    [
        (lambda x1, x2: ((x1 - x2) ** 2).sum(-1), "the attempt raised RuntimeError"),
        (lambda x1, x2: torch.cdist(x1, x2), "wrong distances"),
        (lambda x1, x2: ((x1[..., :, None, :] - x2[..., None, :, :]) ** 2).sum(-2), "expected shape"),
        (lambda x1, x2: (x1**2).sum(-1, keepdim=True) + (x2**2).sum(-1) - 2 * x1 @ x2.T, "raised"),
    ],
)
def test_pairwise_checker_rejects_wrong_attempts(attempt, hint):
    with pytest.raises(AssertionError, match=hint):
        check_pairwise_squared_distances(attempt)


@pytest.mark.parametrize(
    ("attempt", "hint"),
    [
        (lambda x: x / torch.linalg.vector_norm(x, dim=-1), r"input of shape \(3, 3\): wrong values; did you divide by the norms with keepdim"),
        (lambda x: x / torch.linalg.vector_norm(x, dim=-1, keepdim=True), "a row of zeros gave NaN"),
        (lambda x: x / torch.linalg.vector_norm(x, dim=0, keepdim=True).clamp_min(1e-12), "wrong values"),
        (lambda x: x.div_(torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)), "modified its input in place"),
    ],
)
def test_normalize_checker_rejects_wrong_attempts(attempt, hint):
    with pytest.raises(AssertionError, match=hint):
        check_l2_normalize_rows(attempt)


# The figure.


def test_plot_broadcasting_draws_one_panel_and_checks_its_arguments():
    fig = plot_broadcasting(rows=2, cols=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    # Every cell of the three grids is drawn: ghosts included.
    assert len(fig.axes[0].patches) == 3 * 2 * 5
    with pytest.raises(ValueError, match="rows must be in"):
        plot_broadcasting(rows=0)
    with pytest.raises(ValueError, match="cols in"):
        plot_broadcasting(cols=9)
