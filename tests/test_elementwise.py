"""The thorough proof of the element-wise lesson: var, std, softmax, log_softmax and logsumexp against PyTorch."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import torchenstein.tensors.elementwise as lesson
from torchenstein.challenges import challenges_in
from torchenstein.tensors.elementwise import (
    check_mean_without_padding,
    check_stable_log_sigmoid,
    log_softmax,
    logsumexp,
    mean_without_padding,
    naive_logsumexp,
    naive_softmax,
    plot_reductions,
    plot_softmax_overflow,
    softmax,
    stable_log_sigmoid,
    std,
    var,
)

inf, nan = math.inf, math.nan
FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SHAPES_AND_DIMS = [
    ((7,), 0),
    ((3, 5), 1),
    ((3, 5), -2),
    ((2, 3, 4), 1),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (-1, 0, 1)),
    ((1, 1, 6), 2),
    ((4, 1), 1),
]


def random(shape, dtype, seed=0, scale=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset).to(dtype)


HALF = (torch.float16, torch.bfloat16)


def assert_log_softmax_close(got, x, dim):
    """Our log_softmax equals PyTorch's; in float16 and bfloat16 it is the float64 answer rounded once.

    PyTorch's reduced-precision CPU kernel rounds an intermediate at the scale of the largest logit,
    so there the two may differ by a few units in the last place of that scale; ours stays within one
    rounding of the truth, everywhere.
    """
    expected = torch.log_softmax(x, dim=dim)
    if x.dtype not in HALF:
        torch.testing.assert_close(got, expected, equal_nan=True)
        return
    eps = torch.finfo(x.dtype).eps
    truth = torch.log_softmax(x.double(), dim=dim).to(x.dtype).double()  # the truth, rounded once
    torch.testing.assert_close(got.double(), truth, rtol=eps, atol=1e-6, equal_nan=True)
    scale = x.double().abs().nan_to_num(posinf=0.0).amax(dim=dim, keepdim=True).clamp(min=1.0)
    both_nan = got.isnan() & expected.isnan()
    assert (((got.double() - expected.double()).abs() <= 4 * eps * scale) | both_nan | (got == expected)).all()


def quietly(fn, *args, **kwargs):
    """Call a PyTorch reduction that warns about zero degrees of freedom, without the warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


EXTREME_ROWS = torch.tensor(
    [
        [1000.0, 999.0, 0.0, -1000.0],
        [-1000.0, -1001.0, -2000.0, -1500.0],
        [0.0, -inf, 5.0, -inf],
        [-inf, -inf, -inf, -inf],
        [3e38, -3e38, 0.0, 1.0],
        [inf, 0.0, 1.0, -inf],
        [-inf, -inf, 2.0, -inf],
        [0.0, 0.0, 0.0, 0.0],
    ],
    dtype=torch.float64,
)


# var and std


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("shape", "dim"), SHAPES_AND_DIMS)
@pytest.mark.parametrize("correction", [0, 1, 2, 0.5])
@pytest.mark.parametrize("keepdim", [False, True])
def test_var_and_std_match_pytorch(dtype, shape, dim, correction, keepdim):
    x = random(shape, dtype, seed=len(shape), scale=3.0, offset=1.0)
    for mine, theirs in ((var, torch.var), (std, torch.std)):
        got = mine(x, dim, correction=correction, keepdim=keepdim)
        expected = quietly(theirs, x, dim, correction=correction, keepdim=keepdim)
        assert got.dtype == dtype and got.shape == expected.shape
        torch.testing.assert_close(got, expected, equal_nan=True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_var_over_everything_and_the_unbiased_keyword(dtype):
    x = random((4, 5), dtype, scale=10.0)
    torch.testing.assert_close(var(x), torch.var(x))
    torch.testing.assert_close(var(x, correction=1), torch.var(x, unbiased=True))
    torch.testing.assert_close(std(x, dim=0, correction=0), torch.std(x, dim=0, unbiased=False))
    torch.testing.assert_close(var(x, keepdim=True), torch.var(x, dim=(0, 1), keepdim=True))


def test_var_is_bessel_corrected_on_average():
    samples = random((40_000, 3), torch.float64, seed=1)
    assert abs(var(samples, dim=1).mean().item() - 1.0) < 0.03
    assert abs(var(samples, dim=1, correction=0).mean().item() - 2 / 3) < 0.03


def test_var_and_std_of_a_constant_are_zero():
    x = torch.full((3, 4), 7.25)
    assert torch.equal(var(x, dim=1), torch.zeros(3))
    assert torch.equal(std(x, dim=0, correction=0), torch.zeros(4))


@pytest.mark.parametrize(
    ("x", "dim", "correction"),
    [
        (torch.tensor([1.5]), 0, 1),  # 0 / 0
        (torch.tensor([1.0, 2.0]), 0, 2),  # spread / 0
        (torch.tensor([1.0, 2.0]), 0, 3),  # a negative denominator is clamped to 0
        (torch.tensor(4.0), None, 1),  # zero-dimensional
        (torch.tensor(4.0), 0, 0),
        (torch.empty(0), None, 1),
        (torch.empty(3, 0), 1, 1),
        (torch.empty(0, 3), 1, 0),
    ],
)
def test_var_without_degrees_of_freedom_matches_pytorch(x, dim, correction):
    got = var(x, dim, correction=correction)
    expected = quietly(torch.var, x, dim, correction=correction)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, equal_nan=True)
    torch.testing.assert_close(std(x, dim, correction=correction), quietly(torch.std, x, dim, correction=correction),
                               equal_nan=True)


@pytest.mark.parametrize(("shape", "dim"), SHAPES_AND_DIMS[:5])
@pytest.mark.parametrize("correction", [0, 1])
def test_var_and_std_gradients(shape, dim, correction):
    x = random(shape, torch.float64, seed=3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: var(t, dim, correction=correction), (x,))
    assert torch.autograd.gradcheck(lambda t: std(t, dim, correction=correction, keepdim=True), (x,))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input": torch.arange(4)}, TypeError, "input must be a floating-point tensor, got torch.int64"),
        ({"input": [1.0, 2.0]}, TypeError, "input must be a torch.Tensor, got list"),
        ({"dim": 2}, ValueError, r"dim must lie in \[-2, 1\] for a 2-dimensional input, got 2"),
        ({"dim": (0, -2)}, ValueError, "must not name a dimension twice"),
        ({"dim": ()}, TypeError, "non-empty tuple of ints, got ()"),
        ({"dim": 1.0}, TypeError, "dim must be None, an int or a non-empty tuple of ints, got 1.0"),
        ({"dim": True}, TypeError, "got True"),
        ({"correction": -1}, ValueError, "correction must be a real number >= 0, got -1"),
        ({"correction": True}, ValueError, "got True"),
    ],
)
def test_var_and_std_refuse_bad_arguments(kwargs, error, match):
    arguments = {"input": torch.ones(2, 3), **kwargs}
    for fn in (var, std):
        with pytest.raises(error, match=match):
            fn(**arguments)


# softmax, log_softmax, logsumexp


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("shape", "dim"), [(s, d) for s, d in SHAPES_AND_DIMS if isinstance(d, int)])
@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (30.0, 0.0), (1.0, 1000.0), (1.0, -1000.0), (500.0, 0.0)])
def test_stable_softmax_family_matches_pytorch(dtype, shape, dim, scale, offset):
    x = random(shape, dtype, seed=sum(shape), scale=scale, offset=offset)
    got = softmax(x, dim=dim)
    assert got.dtype == dtype and got.shape == x.shape and not got.isnan().any()
    torch.testing.assert_close(got, torch.softmax(x, dim=dim))
    got = log_softmax(x, dim=dim)
    assert got.dtype == dtype and got.shape == x.shape and got.isfinite().all()
    assert_log_softmax_close(got, x, dim)
    for keepdim in (False, True):
        got = logsumexp(x, dim, keepdim=keepdim)
        torch.testing.assert_close(got, torch.logsumexp(x, dim, keepdim=keepdim))
    torch.testing.assert_close(softmax(x, dim).sum(dim).float(), torch.ones(()).expand(softmax(x, dim).sum(dim).shape),
                               atol=1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-5, rtol=0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_extreme_rows_match_pytorch_nan_for_nan(dtype):
    x = EXTREME_ROWS.to(dtype)
    if dtype == torch.float16:  # 3e38 and 1000 are already infinite in float16, which is a fine extreme too
        assert x.isinf().sum() > EXTREME_ROWS.isinf().sum()
    for dim in (1, 0):
        torch.testing.assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim), equal_nan=True)
        assert_log_softmax_close(log_softmax(x, dim=dim), x, dim)
        torch.testing.assert_close(logsumexp(x, dim), torch.logsumexp(x, dim), equal_nan=True)


def test_the_special_rows_give_what_the_lesson_promises():
    x = EXTREME_ROWS
    assert softmax(x, dim=1)[3].isnan().all()  # a row of -inf: 0/0
    assert logsumexp(x, 1)[3].item() == -inf
    assert logsumexp(x, 1)[5].item() == inf  # a +inf entry
    assert softmax(x, dim=1)[5].isnan().all()
    assert torch.equal(softmax(x, dim=1)[6], torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64))
    assert logsumexp(x, 1)[6].item() == 2.0
    assert logsumexp(torch.tensor([nan, 1.0]), 0).isnan()
    assert softmax(torch.tensor([[nan, 1.0]]), dim=1).isnan().all()


def test_naive_versions_fail_exactly_where_the_lesson_says():
    x = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, -1001.0, -2000.0], [1.0, 2.0, 3.0]])
    assert naive_softmax(x, dim=1)[0, :2].isnan().all() and naive_softmax(x, dim=1)[1].isnan().all()
    assert naive_logsumexp(x, 1)[:2].tolist() == [inf, -inf]
    # On moderate logits the naive versions are right.
    torch.testing.assert_close(naive_softmax(x[2:], dim=1), torch.softmax(x[2:], dim=1))
    torch.testing.assert_close(naive_logsumexp(x[2:], (0, 1), keepdim=True), torch.logsumexp(x[2:], (0, 1), keepdim=True))
    # The cliffs are where log(max) puts them, dtype by dtype.
    for dtype in (torch.float16, torch.float32, torch.float64):
        cliff = math.log(torch.finfo(dtype).max)
        assert naive_softmax(torch.tensor([cliff * 0.99, 0.0], dtype=dtype), dim=0).isfinite().all()
        assert naive_softmax(torch.tensor([cliff * 1.01, 0.0], dtype=dtype), dim=0).isnan().any()
        assert softmax(torch.tensor([cliff * 1.01, 0.0], dtype=dtype), dim=0).isfinite().all()


@pytest.mark.parametrize(("shape", "dim"), [((5,), (0,)), ((2, 3, 4), (0, 2)), ((2, 3, 4), (-1, -2, -3)), ((3, 4), (1,))])
@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp_over_several_dims(shape, dim, keepdim):
    x = random(shape, torch.float32, scale=100.0)
    torch.testing.assert_close(logsumexp(x, dim, keepdim), torch.logsumexp(x, dim, keepdim))


@pytest.mark.parametrize("x", [torch.empty(0, 3), torch.empty(3, 0), torch.tensor(2.5), torch.tensor(1000.0), torch.tensor([-inf])])
def test_empty_and_tiny_inputs(x):
    for dim in (0, -1):
        torch.testing.assert_close(softmax(x, dim), torch.softmax(x, dim), equal_nan=True)
        torch.testing.assert_close(log_softmax(x, dim), torch.log_softmax(x, dim), equal_nan=True)
        torch.testing.assert_close(logsumexp(x, dim), torch.logsumexp(x, dim), equal_nan=True)


def strided_views(dtype):
    """The same kinds of (3, 4) inputs in memory layouts other than row-major: the claim covers them too."""
    base = random((4, 8), dtype, seed=9, scale=30.0)
    return {
        "transposed": base[:3, :4].t().contiguous().t(),  # column-major memory
        "sliced with a step": base[:3, ::2],  # stride 2 along the last dim
        "expanded rows": base[:1, :4].expand(3, 4),  # stride 0 along dim 0
        "expanded columns": base[:3, :1].expand(3, 4),  # stride 0 along the reduced dim 1
    }


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1, -2])
def test_softmax_family_on_non_contiguous_and_expanded_inputs(dtype, dim):
    for name, x in strided_views(dtype).items():
        assert x.shape == (3, 4) and not x.is_contiguous(), name
        torch.testing.assert_close(softmax(x, dim), torch.softmax(x, dim), msg=name)
        assert_log_softmax_close(log_softmax(x, dim), x, dim)
        torch.testing.assert_close(logsumexp(x, dim), torch.logsumexp(x, dim), msg=name)
        torch.testing.assert_close(var(x, dim), torch.var(x, dim), msg=name)
        torch.testing.assert_close(std(x, dim, correction=0), torch.std(x, dim, correction=0), msg=name)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1e4, 1e30])
def test_var_std_and_softmax_at_large_and_tiny_magnitudes(dtype, scale):
    info = torch.finfo(dtype)
    # Scaled into what the dtype can hold: tiny values stay normal numbers, big ones leave room to square.
    scale = min(max(scale, info.tiny * 1e4), info.max ** 0.5 / 100)
    x = random((3, 5), torch.float64, seed=4).mul(scale).to(dtype)
    for dim in (1, -2):
        torch.testing.assert_close(var(x, dim), torch.var(x, dim), equal_nan=True)
        torch.testing.assert_close(std(x, dim), torch.std(x, dim), equal_nan=True)
        torch.testing.assert_close(softmax(x, dim), torch.softmax(x, dim))
        torch.testing.assert_close(logsumexp(x, dim), torch.logsumexp(x, dim))


@pytest.mark.parametrize(("shape", "dim"), [((6,), 0), ((3, 4), 1), ((2, 3, 4), 0), ((2, 3, 4), -1)])
@pytest.mark.parametrize("offset", [0.0, 1000.0, -1000.0])
def test_gradients_of_the_stable_versions(shape, dim, offset):
    x = random(shape, torch.float64, seed=5, scale=2.0, offset=offset).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: softmax(t, dim), (x,))
    assert torch.autograd.gradcheck(lambda t: log_softmax(t, dim), (x,))
    assert torch.autograd.gradcheck(lambda t: logsumexp(t, dim, keepdim=True), (x,))


def test_gradients_match_pytorch_on_extreme_logits_and_ties():
    x = torch.tensor([[1000.0, 1000.0, -1000.0], [-1000.0, -1001.0, -inf]], dtype=torch.float64)
    weights = torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.25, 1.0]], dtype=torch.float64)
    for mine, theirs in ((softmax, torch.softmax), (log_softmax, torch.log_softmax)):
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        (mine(a, 1) * weights).sum().backward()
        (theirs(b, 1) * weights).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)
        assert a.grad.isfinite().all()
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    logsumexp(a, 1).sum().backward()
    torch.logsumexp(b, 1).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    # The gradient of log-sum-exp is the softmax, ties split evenly.
    torch.testing.assert_close(a.grad[0], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))


@settings(max_examples=25)
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 6),
    shift=st.floats(-1e4, 1e4, allow_nan=False),
    seed=st.integers(0, 2**16),
)
def test_shifting_the_logits(rows, cols, shift, seed):
    x = random((rows, cols), torch.float64, seed=seed, scale=5.0)
    torch.testing.assert_close(softmax(x + shift, dim=1), softmax(x, dim=1))
    torch.testing.assert_close(logsumexp(x + shift, 1), logsumexp(x, 1) + shift)
    torch.testing.assert_close(log_softmax(x + shift, dim=1), log_softmax(x, dim=1))
    torch.testing.assert_close(log_softmax(x, dim=1).exp(), softmax(x, dim=1))


@pytest.mark.parametrize("fn", [softmax, log_softmax, naive_softmax])
def test_softmaxes_refuse_bad_arguments(fn):
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got torch.int64"):
        fn(torch.arange(3), dim=0)
    with pytest.raises(ValueError, match=r"dim must lie in \[-2, 1\] for a 2-dimensional input, got 2"):
        fn(torch.ones(2, 3), dim=2)
    with pytest.raises(TypeError, match="dim must be"):
        fn(torch.ones(2, 3), dim=(0, 1))
    with pytest.raises(TypeError, match="dim must be"):
        fn(torch.ones(2, 3), dim=None)


@pytest.mark.parametrize("fn", [logsumexp, naive_logsumexp])
def test_logsumexps_refuse_bad_arguments(fn):
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got torch.int32"):
        fn(torch.arange(3, dtype=torch.int32), 0)
    with pytest.raises(TypeError, match="dim must be an int or a non-empty tuple of ints, got None"):
        fn(torch.ones(2, 3), None)
    with pytest.raises(ValueError, match="must not name a dimension twice"):
        fn(torch.ones(2, 3), (1, -1))


# What the lesson text relies on from PyTorch itself


def test_ties_give_the_first_index():
    x = torch.tensor([[3.0, 9.0, 9.0, 1.0, 9.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.max(dim=1).indices.tolist() == [1, 0]
    assert x.argmin(dim=1).tolist() == [3, 0]


# Figures


def test_figures_draw():
    fig = plot_softmax_overflow(points=30, reach=20.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig = plot_reductions(rows=1, cols=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


@pytest.mark.parametrize(
    ("plot", "kwargs", "match"),
    [
        (plot_softmax_overflow, {"points": 1}, "points must be at least 2"),
        (plot_softmax_overflow, {"reach": 0.0}, "reach positive"),
        (plot_reductions, {"rows": 0}, "rows and cols must be between 1 and 8, got rows=0"),
        (plot_reductions, {"cols": 9}, "got rows=3, cols=9"),
    ],
)
def test_figures_refuse_bad_arguments(plot, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot(**kwargs)


# Challenges


def test_the_lesson_defines_both_challenges():
    assert set(challenges_in(lesson)) == {"stable_log_sigmoid", "mean_without_padding"}


def test_stable_log_sigmoid_passes_and_is_right_everywhere():
    check_stable_log_sigmoid(stable_log_sigmoid)
    x = torch.cat([torch.linspace(-800, 800, 401, dtype=torch.float64), torch.tensor([0.0, inf, -inf], dtype=torch.float64)])
    torch.testing.assert_close(stable_log_sigmoid(x), F.logsigmoid(x))
    # Smooth at 0 too, where a kinked formula (min(x, 0) - log1p(exp(-|x|))) has the wrong slope.
    point = torch.tensor([0.0, 1e-3, -30.0, 700.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(stable_log_sigmoid, (point,))
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got torch.int64"):
        stable_log_sigmoid(torch.arange(3))


@pytest.mark.parametrize("dtype", FLOATS)
def test_stable_log_sigmoid_equals_logsigmoid_in_every_float_dtype_and_layout(dtype):
    x = torch.linspace(-100, 100, 41, dtype=torch.float64).to(dtype)
    for name, t in {"plain": x, "expanded and transposed": x[:, None].expand(41, 3).t(), "strided": x[::3],
                    "0-d": x[0], "0-size": x[:0]}.items():
        got = stable_log_sigmoid(t)
        assert got.dtype == dtype and got.shape == t.shape, name
        torch.testing.assert_close(got, F.logsigmoid(t), msg=name)


@pytest.mark.parametrize(
    "attempt",
    [
        lambda x: torch.log(torch.sigmoid(x)),  # -inf where sigmoid underflows
        lambda x: -torch.log(1 + torch.exp(-x)),  # overflows for very negative x
        lambda x: -torch.log1p(torch.exp(-x)),  # same overflow, a more accurate log
        lambda x: torch.where(x < 0, x - torch.log1p(x.exp()), -torch.log1p((-x).exp())),  # NaN gradients
        lambda x: torch.log(torch.sigmoid(x.double())).to(x.dtype),  # float64 does not save it either
        lambda x: F.logsigmoid(x).float(),  # the wrong dtype for float64 inputs
    ],
)
def test_the_log_sigmoid_checker_rejects_plausible_mistakes(attempt):
    with pytest.raises(AssertionError):
        check_stable_log_sigmoid(attempt)


def test_mean_without_padding_passes_and_validates():
    check_mean_without_padding(mean_without_padding)
    x = torch.tensor([[1.0, 2.0], [3.0, inf]])
    mask = torch.tensor([[True, False], [False, False]])
    result = mean_without_padding(x, mask, dim=1)
    assert result[0].item() == 1.0 and result[1].isnan()
    with pytest.raises(TypeError, match="mask must be a bool tensor, got torch.int64"):
        mean_without_padding(x, mask.long(), dim=1)
    with pytest.raises(ValueError, match=r"mask must broadcast to input's shape \(2, 2\), got \(3,\)"):
        mean_without_padding(x, torch.ones(3, dtype=torch.bool), dim=1)
    with pytest.raises(ValueError, match=r"mask must broadcast to input's shape \(2, 2\), got \(2, 2, 2\)"):
        mean_without_padding(x, torch.ones(2, 2, 2, dtype=torch.bool), dim=1)
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        mean_without_padding(torch.ones(2, 2, dtype=torch.int64), mask, dim=1)


def _times_mask(input, mask, dim, keepdim=False):
    mask = mask.expand(input.shape)
    return (input * mask).sum(dim, keepdim=keepdim) / mask.sum(dim, keepdim=keepdim)


def _padding_included(input, mask, dim, keepdim=False):
    return input.mean(dim=dim, keepdim=keepdim)


def _zero_for_empty(input, mask, dim, keepdim=False):
    mask = mask.expand(input.shape)
    total = torch.where(mask, input, 0.0).sum(dim, keepdim=keepdim)
    return total / mask.sum(dim, keepdim=keepdim).clamp(min=1)


def _unbroadcast_count(input, mask, dim, keepdim=False):
    return torch.where(mask, input, 0.0).sum(dim, keepdim=keepdim) / mask.sum(dim, keepdim=keepdim)


@pytest.mark.parametrize("attempt", [_times_mask, _padding_included, _zero_for_empty, _unbroadcast_count])
def test_the_masked_mean_checker_rejects_plausible_mistakes(attempt):
    with pytest.raises(AssertionError):
        check_mean_without_padding(attempt)
