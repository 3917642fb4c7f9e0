"""The thorough proof of the losses lesson: every potion against PyTorch's, values, gradients and edge cases."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import torchenstein.nn.losses as lesson
from torchenstein.challenges import challenges_in
from torchenstein.nn.losses import (
    binary_cross_entropy_with_logits,
    check_sigmoid_focal_loss,
    check_soft_target_cross_entropy,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    plot_regression_losses,
    sigmoid_focal_loss,
    smooth_l1_loss,
    soft_target_cross_entropy,
)

inf, nan = math.inf, math.nan
REDUCTIONS = ("mean", "sum", "none")

# float32 and float64 use assert_close's defaults. In bfloat16 ours and PyTorch's both compute each
# element in bfloat16 arithmetic (or float32 rounded once) and sum in float32, but may round
# intermediate results differently: we allow a few units in the last place.
TOLERANCES = {
    torch.float32: {},
    torch.float64: {},
    torch.bfloat16: {"rtol": 4 * 2**-8, "atol": 1e-2},
}

# (name, ours, PyTorch's): the element-wise regression losses, each with its own option.
REGRESSION = [
    ("mse", mse_loss, F.mse_loss),
    ("l1", l1_loss, F.l1_loss),
    ("huber", huber_loss, F.huber_loss),
    ("huber(delta=0.3)", lambda x, y, **kw: huber_loss(x, y, delta=0.3, **kw),
     lambda x, y, **kw: F.huber_loss(x, y, delta=0.3, **kw)),
    ("smooth_l1", smooth_l1_loss, F.smooth_l1_loss),
    ("smooth_l1(beta=2.5)", lambda x, y, **kw: smooth_l1_loss(x, y, beta=2.5, **kw),
     lambda x, y, **kw: F.smooth_l1_loss(x, y, beta=2.5, **kw)),
    ("smooth_l1(beta=0)", lambda x, y, **kw: smooth_l1_loss(x, y, beta=0.0, **kw),
     lambda x, y, **kw: F.smooth_l1_loss(x, y, beta=0.0, **kw)),
]
REGRESSION_IDS = [name for name, *_ in REGRESSION]


def randn(shape, dtype=torch.float32, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)


def grad_of(fn, *tensors):
    """The gradient of fn(*tensors).sum() with respect to the first tensor."""
    x = tensors[0].detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x, *tensors[1:]).sum(), x)
    return g


@pytest.mark.parametrize(("name", "ours", "theirs"), REGRESSION, ids=REGRESSION_IDS)
@pytest.mark.parametrize("dtype", list(TOLERANCES))
def test_regression_losses_match_pytorch_values_and_gradients(name, ours, theirs, dtype):
    for seed, shape in enumerate([(), (7,), (3, 4, 5), (0, 3)]):
        x, y = randn(shape, dtype, seed), randn(shape, dtype, seed + 100)
        for reduction in REDUCTIONS:
            try:
                expected = theirs(x, y, reduction=reduction)
            except RuntimeError as err:  # torch 2.4 has no bfloat16 mse on the CPU
                if "not implemented for 'BFloat16'" not in str(err):
                    raise
                pytest.skip(f"this PyTorch has no bfloat16 {name} on the CPU")
            got = ours(x, y, reduction=reduction)
            assert got.dtype == dtype and got.shape == expected.shape
            # The mean of an empty batch is NaN in both.
            torch.testing.assert_close(got, expected, equal_nan=True, **TOLERANCES[dtype])
            if dtype == torch.bfloat16 or not x.numel():
                continue
            # Gradients with respect to the prediction, then to the target.
            torch.testing.assert_close(grad_of(lambda a, b, r=reduction: ours(a, b, reduction=r), x, y),
                                       grad_of(lambda a, b, r=reduction: theirs(a, b, reduction=r), x, y))
            torch.testing.assert_close(grad_of(lambda b, a, r=reduction: ours(a, b, reduction=r), y, x),
                                       grad_of(lambda b, a, r=reduction: theirs(a, b, reduction=r), y, x))


@pytest.mark.parametrize(("name", "ours", "theirs"), REGRESSION, ids=REGRESSION_IDS)
def test_regression_gradcheck_in_float64(name, ours, theirs):
    x = randn((4, 3), torch.float64, seed=7).requires_grad_(True)
    y = randn((4, 3), torch.float64, seed=8).requires_grad_(True)
    for reduction in REDUCTIONS:
        assert torch.autograd.gradcheck(lambda a, b, r=reduction: ours(a, b, reduction=r), (x, y))


@pytest.mark.parametrize(("name", "ours", "theirs"), REGRESSION, ids=REGRESSION_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_regression_extremes_match_pytorch(name, ours, theirs, dtype):
    x = torch.tensor([0.0, 1e-30, -1e30, 3e38 if dtype == torch.float32 else 1e300, inf, -inf, nan, 5.0], dtype=dtype)
    y = torch.tensor([0.0, 0.0, 1e30, -3e38 if dtype == torch.float32 else -1e300, 0.0, inf, 0.0, 5.0], dtype=dtype)
    torch.testing.assert_close(ours(x, y, reduction="none"), theirs(x, y, reduction="none"), equal_nan=True)
    # Gradients at the finite, non-overflowing points (including an error of exactly 0, where L1's is 0).
    keep = [0, 1, 7]
    torch.testing.assert_close(grad_of(lambda a, b: ours(a, b, reduction="sum"), x[keep], y[keep]),
                               grad_of(lambda a, b: theirs(a, b, reduction="sum"), x[keep], y[keep]))


def test_regression_gradients_follow_the_lesson_table():
    error = torch.tensor([-10.0, -2.0, -0.7, -0.1, 0.0, 0.3, 1.5, 8.0], dtype=torch.float64)
    zero = torch.zeros_like(error)
    n = error.numel()
    cases = [
        (mse_loss, {}, 2 * error),
        (l1_loss, {}, error.sign()),
        (huber_loss, {"delta": 1.0}, error.clamp(-1.0, 1.0)),
        (huber_loss, {"delta": 2.5}, error.clamp(-2.5, 2.5)),
        (smooth_l1_loss, {"beta": 2.0}, (error / 2.0).clamp(-1.0, 1.0)),
    ]
    for loss, options, derivative in cases:
        torch.testing.assert_close(grad_of(lambda e, z, f=loss, o=options: f(e, z, reduction="sum", **o), error, zero), derivative)
        # The mean divides every gradient by the number of elements.
        torch.testing.assert_close(grad_of(lambda e, z, f=loss, o=options: f(e, z, **o), error, zero), derivative / n)


@settings(max_examples=40)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=12),
    st.floats(1e-3, 1e2),
)
def test_huber_is_beta_times_smooth_l1(errors, b):
    e = torch.tensor(errors, dtype=torch.float64)
    zero = torch.zeros_like(e)
    for reduction in REDUCTIONS:
        torch.testing.assert_close(huber_loss(e, zero, reduction=reduction, delta=b),
                                   b * smooth_l1_loss(e, zero, reduction=reduction, beta=b))


def test_smooth_l1_with_beta_zero_is_l1_with_a_finite_gradient():
    x = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    torch.testing.assert_close(smooth_l1_loss(x, torch.zeros(4), beta=0.0), l1_loss(x, torch.zeros(4)))
    g = grad_of(lambda a, b: smooth_l1_loss(a, b, beta=0.0), x, torch.zeros(4))
    assert g.isfinite().all()
    torch.testing.assert_close(g, x.sign() / 4)


def test_mixed_float_dtypes_promote_like_pytorch():
    x, y = torch.ones(3), torch.zeros(3, dtype=torch.float64)
    assert mse_loss(x, y).dtype == F.mse_loss(x, y).dtype == torch.float64


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: mse_loss([1.0], torch.ones(1)), TypeError, "input must be a torch.Tensor, got list"),
        (lambda: l1_loss(torch.ones(2), torch.ones(2, dtype=torch.int64)), TypeError,
         "target must be a floating-point tensor, got torch.int64"),
        (lambda: l1_loss(torch.ones(4, 1), torch.ones(4)), ValueError,
         r"target must have the shape of input \(4, 1\), got \(4,\)"),
        (lambda: mse_loss(torch.ones(2), torch.ones(2), reduction="avg"), ValueError,
         r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
        (lambda: mse_loss(torch.ones(2), torch.ones(2), reduction=None), ValueError, "got None"),
        (lambda: huber_loss(torch.ones(2), torch.ones(2), delta=-1.0), ValueError,
         "delta must be a positive finite number, got -1.0"),
        (lambda: huber_loss(torch.ones(2), torch.ones(2), delta=inf), ValueError, "got inf"),
        (lambda: huber_loss(torch.ones(2), torch.ones(2), delta=True), ValueError, "got True"),
        (lambda: smooth_l1_loss(torch.ones(2), torch.ones(2), beta="1"), ValueError,
         "beta must be a non-negative finite number, got '1'"),
        (lambda: binary_cross_entropy_with_logits(torch.rand(2, 3), torch.rand(2, 3), torch.ones(3, 3)), ValueError,
         r"weight must broadcast to the input's shape \(2, 3\), got \(3, 3\)"),
        (lambda: binary_cross_entropy_with_logits(torch.rand(3), torch.rand(3), torch.ones(2, 3)), ValueError,
         r"weight must broadcast to the input's shape \(3,\), got \(2, 3\)"),
        (lambda: binary_cross_entropy_with_logits(torch.ones(2, 3), torch.ones(2, 3), pos_weight=torch.ones(2)),
         ValueError, r"pos_weight must broadcast to the input's shape \(2, 3\), got \(2,\)"),
        (lambda: binary_cross_entropy_with_logits(torch.ones(3, 1), torch.ones(3)), ValueError,
         "target must have the shape of input"),
        (lambda: binary_cross_entropy_with_logits(torch.ones(3), torch.ones(3), weight=torch.ones(3, dtype=torch.int64)),
         TypeError, "weight must be a floating-point tensor"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0.0, 1.0])), TypeError,
         "target must be an int64 tensor of class indices, got torch.float32"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1], dtype=torch.int32)), TypeError, "got torch.int32"),
        (lambda: cross_entropy(torch.ones(2, 3), [0, 1]), TypeError, "got list"),
        (lambda: cross_entropy(torch.ones(2, 3, dtype=torch.int64), torch.tensor([0, 1])), TypeError,
         "input must be a floating-point tensor"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1, 2])), ValueError,
         r"target must have shape \(2,\) for input of shape \(2, 3\), got \(3,\)"),
        (lambda: cross_entropy(torch.ones(2, 3, 4), torch.tensor([0, 1])), ValueError, r"target must have shape \(2, 4\)"),
        (lambda: cross_entropy(torch.ones(3), torch.tensor([1])), ValueError, r"target must have shape \(\)"),
        (lambda: cross_entropy(torch.tensor(1.0), torch.tensor(0)), ValueError, "0-dimensional"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, -1])), ValueError,
         r"class indices in \[0, 3\) or ignore_index=-100, got -1"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), torch.ones(4)), ValueError,
         r"weight must be a torch.float32 tensor of shape \(3,\)"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), torch.ones(3, dtype=torch.float64)), ValueError,
         "got torch.float64 of shape"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), ignore_index=True), TypeError,
         "ignore_index must be an int, got True"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), label_smoothing=-0.1), ValueError,
         r"label_smoothing must be a number in \[0, 1\], got -0.1"),
        (lambda: cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), reduction="batchmean"), ValueError,
         "got 'batchmean'"),
        (lambda: nll_loss(torch.ones(2, 3), torch.tensor([0, 5])), ValueError, "got 5"),
        (lambda: sigmoid_focal_loss(torch.ones(2), torch.ones(2), alpha=1.5), ValueError, "alpha must be a number"),
        (lambda: sigmoid_focal_loss(torch.ones(2), torch.ones(2), gamma=-1.0), ValueError,
         "gamma must be a non-negative finite number"),
        (lambda: soft_target_cross_entropy(torch.ones(2, 3, 4), torch.ones(2, 3, 4)), ValueError,
         r"input must have shape \(N, C\)"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_keyword_only_options_cannot_slip_into_the_wrong_position():
    with pytest.raises(TypeError):
        mse_loss(torch.ones(2), torch.ones(2), "sum")
    with pytest.raises(TypeError):
        cross_entropy(torch.ones(2, 3), torch.tensor([0, 1]), None, -100)


def random_probs(shape, seed, low=1e-3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64).clamp(low, 1 - low)


def test_pytorch_bce_on_probabilities_clamps_each_log_at_minus_100():
    p = torch.tensor([0.0, 0.0, 1.0, 1.0, 1e-45, 0.5, 0.3])
    y = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.3, 1.0])
    by_hand = -(y * p.log().clamp(min=-100) + (1 - y) * torch.log1p(-p).clamp(min=-100))
    expected = F.binary_cross_entropy(p, y, reduction="none")
    torch.testing.assert_close(by_hand, expected)
    assert expected[[1, 2, 4]].tolist() == [100.0, 100.0, 100.0]


def test_float32_sigmoid_saturates_and_costs_100_while_logits_cost_x():
    x = torch.tensor([20.0, 30.0, 50.0, 100.0, 200.0])
    assert (torch.sigmoid(x) == 1.0).all()
    assert F.binary_cross_entropy(torch.sigmoid(x), torch.zeros(5), reduction="none").tolist() == [100.0] * 5
    assert binary_cross_entropy_with_logits(x, torch.zeros(5), reduction="none").tolist() == x.tolist()
    assert binary_cross_entropy_with_logits(-x, torch.ones(5), reduction="none").tolist() == x.tolist()


@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize(
    ("weight_shape", "pos_weight_shape"),
    [(None, None), ((5,), None), (None, (5,)), ((4, 1), (5,)), ((), ()), ((4, 5), (1, 5))],
)
def test_bce_with_logits_matches_pytorch(dtype, weight_shape, pos_weight_shape):
    x = randn((4, 5), dtype, seed=3, scale=5.0)
    y = random_probs((4, 5), 4).round().to(dtype)
    w = None if weight_shape is None else random_probs(weight_shape, 5).to(dtype)
    pw = None if pos_weight_shape is None else (3 * random_probs(pos_weight_shape, 6)).to(dtype)
    for reduction in REDUCTIONS:
        options = {"weight": w, "reduction": reduction, "pos_weight": pw}
        got = binary_cross_entropy_with_logits(x, y, **options)
        assert got.dtype == dtype
        torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(x, y, **options), **TOLERANCES[dtype])
        if dtype == torch.bfloat16:
            continue
        # Gradients with respect to the logits, then to the targets.
        torch.testing.assert_close(grad_of(lambda a, b, o=options: binary_cross_entropy_with_logits(a, b, **o), x, y),
                                   grad_of(lambda a, b, o=options: F.binary_cross_entropy_with_logits(a, b, **o), x, y))
        torch.testing.assert_close(grad_of(lambda b, a, o=options: binary_cross_entropy_with_logits(a, b, **o), y, x),
                                   grad_of(lambda b, a, o=options: F.binary_cross_entropy_with_logits(a, b, **o), y, x))


def test_bce_with_logits_extremes_and_the_gradient_at_zero():
    x = torch.tensor([-1e4, -100.0, -20.0, -0.0, 0.0, 20.0, 100.0, 1e4], dtype=torch.float64)
    for target in (0.0, 1.0, 0.3):
        y = torch.full_like(x, target)
        torch.testing.assert_close(binary_cross_entropy_with_logits(x, y, reduction="none"),
                                   F.binary_cross_entropy_with_logits(x, y, reduction="none"))
        # The gradient is sigma(x) - y everywhere, including exactly at x = 0, the kink of max(x, 0).
        g = grad_of(lambda a, b: binary_cross_entropy_with_logits(a, b, reduction="sum"), x, y)
        torch.testing.assert_close(g, torch.sigmoid(x) - y)


def test_bce_with_logits_gradcheck_in_float64():
    x = torch.cat([torch.zeros(1, dtype=torch.float64), randn((7,), torch.float64, seed=9, scale=4.0)])
    x = x.requires_grad_(True)
    y = random_probs((8,), 10).requires_grad_(True)
    w, pw = random_probs((8,), 11), 3 * random_probs((8,), 12)
    assert torch.autograd.gradcheck(lambda a, b: binary_cross_entropy_with_logits(a, b, w, pos_weight=pw), (x, y))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_stable_form_of_the_lesson_equals_ours(dtype):
    x, y = randn((50,), dtype, seed=13, scale=30.0), random_probs((50,), 14).to(dtype)
    stable = x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))
    torch.testing.assert_close(binary_cross_entropy_with_logits(x, y, reduction="none"), stable)


def class_case(shape, seed, dtype=torch.float32, scale=3.0, ignore=None):
    """Random logits of ``shape`` (class dimension second, or first for 1-D) and matching int64 targets."""
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    target = torch.randint(0, n_classes, target_shape, generator=g)
    if ignore is not None and target.dim():
        target = target.masked_fill(torch.rand(target_shape, generator=g) < 0.3, ignore)
    weight = (torch.rand(n_classes, generator=g, dtype=torch.float64) * 2 + 0.1).to(dtype)
    return logits, target, weight


SHAPES = [(5,), (6, 4), (3, 5, 7), (2, 3, 4, 5), (1, 1), (0, 3)]


def assert_class_loss_matches(ours, theirs, logits, target, weight, **options):
    got, expected = ours(logits, target, weight, **options), theirs(logits, target, weight, **options)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, equal_nan=True)
    if logits.numel():  # PyTorch's loss of an empty batch is not attached to the graph
        torch.testing.assert_close(grad_of(lambda a, t: ours(a, t, weight, **options), logits, target),
                                   grad_of(lambda a, t: theirs(a, t, weight, **options), logits, target))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_nll_loss_matches_pytorch(shape, ignore_index):
    logits, target, weight = class_case(shape, seed=sum(shape), ignore=ignore_index)
    log_p = F.log_softmax(logits, dim=0 if len(shape) == 1 else 1)
    for w in (None, weight):
        for reduction in REDUCTIONS:
            assert_class_loss_matches(nll_loss, F.nll_loss, log_p, target, w, ignore_index=ignore_index,
                                      reduction=reduction)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_matches_pytorch_with_weights_and_label_smoothing(shape, label_smoothing):
    for ignore_index in (-100, 2):
        logits, target, weight = class_case(shape, seed=len(shape) + ignore_index, ignore=ignore_index)
        for w in (None, weight):
            for reduction in REDUCTIONS:
                assert_class_loss_matches(cross_entropy, F.cross_entropy, logits, target, w, ignore_index=ignore_index,
                                          reduction=reduction, label_smoothing=label_smoothing)


@settings(max_examples=15)
@given(
    n=st.integers(1, 6),
    c=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    label_smoothing=st.floats(0.0, 1.0),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
)
def test_weighted_smoothed_cross_entropy_on_random_cases(n, c, seed, label_smoothing, scale):
    logits, target, weight = class_case((n, c), seed, torch.float64, scale)
    for reduction in REDUCTIONS:
        options = {"reduction": reduction, "label_smoothing": label_smoothing}
        torch.testing.assert_close(cross_entropy(logits, target, weight, **options),
                                   F.cross_entropy(logits, target, weight, **options))
    # The weighted mean: the sum of the per-example losses over the sum of the target classes' weights.
    none = cross_entropy(logits, target, weight, reduction="none", label_smoothing=label_smoothing)
    torch.testing.assert_close(cross_entropy(logits, target, weight, label_smoothing=label_smoothing),
                               none.sum() / weight[target].sum())
    # ... and each per-example loss is -sum_c w_c q_c log p_c with the smoothed distribution q.
    q = (1 - label_smoothing) * F.one_hot(target, c).double() + label_smoothing / c
    torch.testing.assert_close(none, -(weight * q * F.log_softmax(logits, dim=1)).sum(dim=1))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_gradcheck_in_float64(label_smoothing):
    logits, target, weight = class_case((4, 3, 2), seed=3, dtype=torch.float64, ignore=-100)
    logits.requires_grad_(True)
    for reduction in REDUCTIONS:
        assert torch.autograd.gradcheck(
            lambda a, r=reduction: cross_entropy(a, target, weight, reduction=r, label_smoothing=label_smoothing),
            (logits,),
        )


@pytest.mark.parametrize("dtype", list(TOLERANCES))
def test_cross_entropy_dtypes(dtype):
    logits, target, weight = class_case((8, 5), seed=4, dtype=dtype)
    for options in ({}, {"label_smoothing": 0.1}):
        got = cross_entropy(logits, target, weight, **options)
        assert got.dtype == dtype
        torch.testing.assert_close(got, F.cross_entropy(logits, target, weight, **options), **TOLERANCES[dtype])


def test_cross_entropy_survives_huge_logits():
    logits = torch.tensor([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0], [1e30, 0.0, -1e30]])
    target = torch.tensor([0, 2, 1])
    for options in ({}, {"label_smoothing": 0.1}, {"reduction": "none"}):
        got = cross_entropy(logits, target, **options)
        assert got.isfinite().all()
        torch.testing.assert_close(got, F.cross_entropy(logits, target, **options))


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    logits, target, _ = class_case((6, 4), seed=5, dtype=torch.float64)
    g = grad_of(lambda a, t: cross_entropy(a, t, reduction="sum"), logits, target)
    torch.testing.assert_close(g, logits.softmax(dim=1) - F.one_hot(target, 4))


def test_all_ignored_or_empty_batches_give_nan_means_and_zero_sums_like_pytorch():
    logits = torch.randn(3, 4)
    ignored = torch.full((3,), -100)
    for options in ({}, {"label_smoothing": 0.1}):
        assert cross_entropy(logits, ignored, **options).isnan() and F.cross_entropy(logits, ignored, **options).isnan()
        assert cross_entropy(logits, ignored, reduction="sum", **options).item() == 0.0
        assert cross_entropy(torch.empty(0, 4), torch.empty(0, dtype=torch.int64), **options).isnan()
    assert cross_entropy(logits, ignored, reduction="none").tolist() == [0.0, 0.0, 0.0]


def test_pos_weight_balances_rare_positives():
    y = torch.tensor([1.0, 0.0, 0.0, 0.0])
    x = torch.zeros(4, requires_grad=True)
    (g,) = torch.autograd.grad(binary_cross_entropy_with_logits(x, y, reduction="sum", pos_weight=torch.tensor(3.0)), x)
    # At x = 0 the single positive pulls up exactly as hard as the three negatives push down.
    assert g.sum().abs().item() < 1e-7


def test_double_softmax_cannot_reach_zero_and_shrinks_the_gradient():
    for n_classes in (2, 10, 1000):
        perfect = torch.full((1, n_classes), -1e4, dtype=torch.float64)
        perfect[0, 0] = 1e4
        floor = math.log(math.e + n_classes - 1) - 1
        assert F.cross_entropy(perfect, torch.tensor([0])).item() == 0.0
        assert math.isclose(F.cross_entropy(perfect.softmax(dim=1), torch.tensor([0])).item(), floor, rel_tol=1e-9)
    wrong = torch.tensor([[0.0, 8.0, 0.0, 0.0]])
    right = grad_of(lambda a, t: F.cross_entropy(a, t), wrong, torch.tensor([0])).norm()
    hammer = grad_of(lambda a, t: F.cross_entropy(a.softmax(dim=1), t), wrong, torch.tensor([0])).norm()
    assert hammer < right / 100


def test_sigmoid_then_bce_has_zero_gradient_where_logits_version_has_one():
    x, y = torch.tensor([20.0, 50.0]), torch.zeros(2)
    hammer = grad_of(lambda a, t: F.binary_cross_entropy(torch.sigmoid(a), t, reduction="sum"), x, y)
    ours = grad_of(lambda a, t: binary_cross_entropy_with_logits(a, t, reduction="sum"), x, y)
    assert hammer.tolist() == [0.0, 0.0] and ours.tolist() == [1.0, 1.0]


def test_mse_on_probabilities_learns_least_where_it_is_most_wrong():
    # Every true label is 1: the more negative the logit, the more wrong. (MSE's gradient peaks at
    # sigma = 1/3, x = -log 2, and falls on both sides; we look at the wrong side.)
    x = torch.linspace(-12, -1, 23, dtype=torch.float64)
    y = torch.ones_like(x)
    mse = grad_of(lambda a, t: mse_loss(torch.sigmoid(a), t, reduction="sum"), x, y).abs()
    bce = grad_of(lambda a, t: binary_cross_entropy_with_logits(a, t, reduction="sum"), x, y).abs()
    assert (mse.diff() > 0).all() and (bce.diff() < 0).all()  # MSE's grows towards the target, BCE's shrinks
    assert mse[0] < 1e-4 < 0.99 < bce[0]


def test_l1_loss_with_a_column_against_a_vector_broadcasts_in_pytorch_and_fails_in_ours():
    prediction, target = torch.arange(5.0).unsqueeze(1), torch.arange(5.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hammer = F.l1_loss(prediction, target)
    assert any("different to the input size" in str(w.message) for w in caught)
    torch.testing.assert_close(hammer, (prediction - target).abs().mean())  # the (N, N) table of differences
    assert hammer.item() > 0 and F.l1_loss(prediction.squeeze(1), target).item() == 0.0
    with pytest.raises(ValueError, match="PyTorch would broadcast them"):
        l1_loss(prediction, target)


def test_kl_div_needs_log_probabilities_and_batchmean():
    p = torch.rand(4, 6, dtype=torch.float64).softmax(dim=1)
    z = torch.randn(4, 6, dtype=torch.float64)
    log_q = z.log_softmax(dim=1)
    kl = (p * (p.log() - log_q)).sum(dim=1).mean()
    torch.testing.assert_close(F.kl_div(log_q, p, reduction="batchmean"), kl)
    assert F.kl_div(z.softmax(dim=1), p, reduction="batchmean") < 0
    torch.testing.assert_close(soft_target_cross_entropy(z, p), kl - (p * p.log()).sum(dim=1).mean())


def test_plot_regression_losses_draws_four_curves_and_their_gradients():
    fig = plot_regression_losses(points=21, reach=2.0, delta=0.5, beta=1.5)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == len(fig.axes[1].lines) == 4
    # The derivative panel is the lesson's table: L1's line is the sign of the error.
    errors, slopes = fig.axes[1].lines[1].get_data()
    assert list(slopes) == [float(torch.tensor(e).sign()) for e in errors]
    with pytest.raises(ValueError, match="points must be at least 2"):
        plot_regression_losses(points=1)
    with pytest.raises(ValueError, match="reach positive"):
        plot_regression_losses(reach=0.0)


def test_challenges_are_registered():
    assert set(challenges_in(lesson)) == {"sigmoid_focal_loss", "soft_target_cross_entropy"}


def test_checkers_pass_the_solutions():
    check_sigmoid_focal_loss(sigmoid_focal_loss)
    check_soft_target_cross_entropy(soft_target_cross_entropy)


def test_focal_loss_with_gamma_zero_is_weighted_bce_and_matches_the_formula():
    x, y = randn((10,), torch.float64, seed=15), random_probs((10,), 16).round()
    torch.testing.assert_close(sigmoid_focal_loss(x, y, alpha=-1.0, gamma=0.0),
                               binary_cross_entropy_with_logits(x, y, reduction="none"))
    p = torch.sigmoid(x)
    p_t = p * y + (1 - p) * (1 - y)
    expected = -(0.25 * y + 0.75 * (1 - y)) * (1 - p_t) ** 2 * p_t.log()
    torch.testing.assert_close(sigmoid_focal_loss(x, y), expected)


def _naive_focal(input, target, alpha=0.25, gamma=2.0, reduction="none"):
    # Right for moderate logits, but 1 - sigmoid(100) is 0 and its log is -inf.
    p = torch.sigmoid(input)
    p_t = p * target + (1 - p) * (1 - target)
    loss = -(1 - p_t) ** gamma * p_t.log()
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def _swapped_alpha_focal(input, target, alpha=0.25, gamma=2.0, reduction="none"):
    return sigmoid_focal_loss(input, target, alpha=1 - alpha if alpha >= 0 else alpha, gamma=gamma, reduction=reduction)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_naive_focal, "logits of \\+-100"),
        (_swapped_alpha_focal, "alpha=0.25, gamma=2.0"),
        (lambda x, y, alpha=0.25, gamma=2.0, reduction="none": sigmoid_focal_loss(x, y, alpha, gamma, "mean"),
         "expected shape"),
        (lambda x, y, alpha=0.25, gamma=2.0, reduction="none": sigmoid_focal_loss(x, y, alpha, gamma, reduction).tolist(),
         "return a tensor"),
    ],
)
def test_focal_checker_rejects_plausible_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_sigmoid_focal_loss(wrong)


def _naive_soft_ce(input, target, reduction="mean"):
    loss = -(target * input.softmax(dim=1).log()).sum(dim=1)
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def _mean_over_every_element(input, target, reduction="mean"):
    loss = -(target * input.log_softmax(dim=1))
    return {"none": loss.sum(dim=1), "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (_naive_soft_ce, "logits of \\+-1000"),
        (_mean_over_every_element, "reduction='mean'"),
        (lambda x, t, reduction="mean": soft_target_cross_entropy(x, t), "reduction='sum'"),
    ],
)
def test_soft_target_checker_rejects_plausible_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_soft_target_cross_entropy(wrong)


def test_soft_targets_that_are_one_hot_give_the_index_cross_entropy():
    logits, target, _ = class_case((7, 5), seed=17)
    torch.testing.assert_close(soft_target_cross_entropy(logits, F.one_hot(target, 5).float()),
                               cross_entropy(logits, target))


# The scope of the equality claims: every dtype the built-ins take on the CPU, odd layouts, empty and
# 0-d inputs, extreme magnitudes.

HALF_TOLERANCES = {
    torch.float16: {"rtol": 4 * 2**-11, "atol": 1e-3},
    torch.bfloat16: {"rtol": 4 * 2**-8, "atol": 1e-2},
}
ALL_TOLERANCES = {**TOLERANCES, **HALF_TOLERANCES}
FLOATS = list(ALL_TOLERANCES)


def torch_or_skip(fn, *args, **kwargs):
    """PyTorch's result, or a skip where this PyTorch has no CPU kernel for the dtype (torch 2.4 has gaps)."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as err:
        if "not implemented for" in str(err):
            pytest.skip(str(err))
        raise


def layouts(shape, dtype, seed):
    """The same kind of values, laid out four ways: contiguous, transposed, strided and expanded."""
    rows, cols = shape
    base = randn((cols, rows * 2), dtype, seed)
    return {
        "contiguous": base[:, :rows].T.contiguous(),
        "transposed": base[:, :rows].T,
        "strided": base[:, ::2].T,
        "expanded": base[:1, :rows].T.expand(rows, cols),
    }


@pytest.mark.parametrize(("name", "ours", "theirs"), REGRESSION, ids=REGRESSION_IDS)
def test_regression_losses_on_every_dtype_and_layout(name, ours, theirs):
    for dtype in FLOATS:
        targets = layouts((5, 3), dtype, seed=31)
        for (layout, x), y in zip(layouts((5, 3), dtype, seed=30).items(), reversed(list(targets.values())), strict=True):
            for reduction in REDUCTIONS:
                expected = torch_or_skip(theirs, x, y, reduction=reduction)
                got = ours(x, y, reduction=reduction)
                assert got.dtype == dtype and got.shape == expected.shape, (dtype, layout)
                torch.testing.assert_close(got, expected, **ALL_TOLERANCES[dtype])
            if dtype in HALF_TOLERANCES:
                torch.testing.assert_close(grad_of(lambda a, b: ours(a, b), x, y), grad_of(lambda a, b: theirs(a, b), x, y),
                                           **ALL_TOLERANCES[dtype])


@pytest.mark.parametrize(("name", "ours", "theirs"), REGRESSION, ids=REGRESSION_IDS)
def test_regression_losses_at_the_edges_of_every_dtype(name, ours, theirs):
    for dtype in FLOATS:
        info = torch.finfo(dtype)
        x = torch.tensor([info.max, -info.max, info.tiny, info.tiny, 0.0, inf, nan, 3.0], dtype=dtype)
        y = torch.tensor([info.max, info.max, 0.0, -info.tiny, -0.0, 1.0, 0.0, 3.0], dtype=dtype)
        expected = torch_or_skip(theirs, x, y, reduction="none")
        torch.testing.assert_close(ours(x, y, reduction="none"), expected, equal_nan=True, **ALL_TOLERANCES[dtype])
        for shape in [(), (0,), (0, 4)]:  # 0-d and empty
            a, b = randn(shape, dtype, seed=32), randn(shape, dtype, seed=33)
            for reduction in REDUCTIONS:
                torch.testing.assert_close(ours(a, b, reduction=reduction), theirs(a, b, reduction=reduction), equal_nan=True)


@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_with_logits_on_every_dtype_0d_and_empty_inputs(dtype):
    for shape in [(), (0,), (0, 4), (3, 4)]:
        x, y = randn(shape, dtype, seed=34, scale=8.0), random_probs(shape, 35).round().to(dtype)
        w = random_probs(shape[-1:], 36).to(dtype)
        pw = (3 * random_probs(shape[-1:], 37)).to(dtype)
        for options in ({}, {"weight": w, "pos_weight": pw}):
            for reduction in REDUCTIONS:
                expected = torch_or_skip(F.binary_cross_entropy_with_logits, x, y, reduction=reduction, **options)
                got = binary_cross_entropy_with_logits(x, y, reduction=reduction, **options)
                assert got.dtype == dtype and got.shape == expected.shape
                torch.testing.assert_close(got, expected, equal_nan=True, **ALL_TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
def test_bce_with_logits_on_odd_layouts_and_extreme_logits(dtype):
    targets = list(layouts((6, 4), dtype, seed=38).values())
    for (layout, x), y in zip(layouts((6, 4), dtype, seed=39).items(), targets, strict=True):
        y = (y > 0).to(dtype)
        torch.testing.assert_close(binary_cross_entropy_with_logits(x, y, pos_weight=torch.ones(4, dtype=dtype)),
                                   F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.ones(4, dtype=dtype)),
                                   **ALL_TOLERANCES[dtype], msg=lambda m, layout=layout: f"{layout}: {m}")
    info = torch.finfo(dtype)
    x = torch.tensor([-info.max, -100.0, -info.tiny, 0.0, info.tiny, 100.0, info.max], dtype=dtype)
    for target in (0.0, 1.0, 0.5):
        y = torch.full_like(x, target)
        torch.testing.assert_close(binary_cross_entropy_with_logits(x, y, reduction="none"),
                                   F.binary_cross_entropy_with_logits(x, y, reduction="none"), **ALL_TOLERANCES[dtype])


CLASS_SHAPES = [(5,), (6, 4), (3, 5, 7), (0, 3), (2, 3, 0)]


@pytest.mark.parametrize("dtype", list(HALF_TOLERANCES))
def test_nll_and_cross_entropy_in_half_precision(dtype):
    # float32 and float64 are covered, gradients included, by the tests above. Here: half-precision
    # logits, weights of the same dtype (PyTorch insists), ignored targets, smoothing, every reduction.
    for shape in CLASS_SHAPES:
        _half_precision_class_losses(dtype, shape)


def _half_precision_class_losses(dtype, shape):
    logits, target, weight = class_case(shape, seed=40 + len(shape), dtype=dtype, ignore=-100)
    log_p = F.log_softmax(logits.float(), dim=0 if len(shape) == 1 else 1).to(dtype)
    for w in (None, weight):
        for reduction in REDUCTIONS:
            options = {"reduction": reduction}
            expected = torch_or_skip(F.nll_loss, log_p, target, w, **options)
            got = nll_loss(log_p, target, w, **options)
            assert got.dtype == dtype and got.shape == expected.shape
            torch.testing.assert_close(got, expected, equal_nan=True, **ALL_TOLERANCES[dtype])
            for label_smoothing in (0.0, 0.2):
                options = {"reduction": reduction, "label_smoothing": label_smoothing}
                expected = torch_or_skip(F.cross_entropy, logits, target, w, **options)
                got = cross_entropy(logits, target, w, **options)
                assert got.dtype == dtype and got.shape == expected.shape
                torch.testing.assert_close(got, expected, equal_nan=True, **ALL_TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_on_odd_layouts_and_huge_logits(dtype):
    target = torch.tensor([0, 3, 1, 2, 2, 0])
    for layout, logits in layouts((6, 4), dtype, seed=41).items():
        for label_smoothing in (0.0, 0.1):
            options = {"label_smoothing": label_smoothing, "ignore_index": 2}
            torch.testing.assert_close(cross_entropy(logits, target, **options), F.cross_entropy(logits, target, **options),
                                       **ALL_TOLERANCES[dtype], msg=lambda m, layout=layout: f"{layout}: {m}")
    # (N, C, L) logits whose class dim is not contiguous: a language model's transposed output.
    nlc = randn((2, 5, 4), dtype, seed=42, scale=4.0)
    target = torch.randint(0, 4, (2, 5), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cross_entropy(nlc.transpose(1, 2), target), F.cross_entropy(nlc.transpose(1, 2), target),
                               **ALL_TOLERANCES[dtype])
    info = torch.finfo(dtype)
    huge = torch.tensor([[info.max, 0.0, -info.max], [-info.max, info.max, 0.0], [info.tiny, 0.0, -info.tiny]], dtype=dtype)
    for options in ({}, {"label_smoothing": 0.1}, {"reduction": "none"}):
        expected = torch_or_skip(F.cross_entropy, huge, torch.tensor([0, 2, 1]), **options)
        torch.testing.assert_close(cross_entropy(huge, torch.tensor([0, 2, 1]), **options), expected, equal_nan=True,
                                   **ALL_TOLERANCES[dtype])


def test_a_zero_class_weight_on_a_minus_inf_log_probability_is_nan_like_pytorch():
    # 0 * -inf is NaN: PyTorch does not special-case a zero weight, and neither do we. Only ignore_index
    # truly removes a position.
    log_p = torch.tensor([[-inf, 0.0], [0.0, -1.0]])
    target, weight = torch.tensor([0, 1]), torch.tensor([0.0, 1.0])
    for reduction in REDUCTIONS:
        expected = F.nll_loss(log_p, target, weight, reduction=reduction)
        assert expected.isnan().any()
        torch.testing.assert_close(nll_loss(log_p, target, weight, reduction=reduction), expected, equal_nan=True)
        logits = torch.tensor([[-inf, 0.0], [0.0, -1.0]])
        for label_smoothing in (0.0, 0.1):
            options = {"reduction": reduction, "label_smoothing": label_smoothing}
            torch.testing.assert_close(cross_entropy(logits, target, weight, **options),
                                       F.cross_entropy(logits, target, weight, **options), equal_nan=True)
    ignored = torch.tensor([-100, 1])
    torch.testing.assert_close(nll_loss(log_p, ignored), F.nll_loss(log_p, ignored))
    assert nll_loss(log_p, ignored).isfinite()


KL_SHAPES = [(), (4,), (3, 5), (2, 5, 7), (0, 5)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_pytorch(dtype, log_target):
    for shape in KL_SHAPES:
        _kl_case(dtype, shape, log_target)


def _kl_case(dtype, shape, log_target):
    dim = 0 if len(shape) < 2 else 1
    log_q = randn(shape, torch.float64, seed=43).log_softmax(dim=dim) if shape else torch.tensor(-0.5, dtype=torch.float64)
    p = randn(shape, torch.float64, seed=44).softmax(dim=dim) if shape else torch.tensor(0.3, dtype=torch.float64)
    if p.numel() > 2:
        p.view(-1)[:2] = 0.0  # exact zeros in the target: 0 log 0 = 0
    target = p.log() if log_target else p
    log_q, target = log_q.to(dtype), target.to(dtype)
    for reduction in (*REDUCTIONS, "batchmean"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch warns about "mean"
            expected = torch_or_skip(F.kl_div, log_q, target, reduction=reduction, log_target=log_target)
        got = kl_div(log_q, target, reduction=reduction, log_target=log_target)
        assert got.dtype == dtype and got.shape == expected.shape
        torch.testing.assert_close(got, expected, equal_nan=True, **ALL_TOLERANCES[dtype])
    if dtype == torch.float64 and log_q.numel() and not log_target:
        torch.testing.assert_close(grad_of(lambda a, t: kl_div(a, t, reduction="batchmean"), log_q, target),
                                   grad_of(lambda a, t: F.kl_div(a, t, reduction="batchmean"), log_q, target))


def test_kl_div_batchmean_divides_by_the_batch_alone_and_gradcheck():
    p = torch.rand(2, 5, 7, dtype=torch.float64).softmax(dim=1)
    log_q = torch.randn(2, 5, 7, dtype=torch.float64).log_softmax(dim=1)
    per_position = (p * (p.log() - log_q)).sum(dim=1)
    torch.testing.assert_close(kl_div(log_q, p, reduction="batchmean"), per_position.sum() / 2)
    torch.testing.assert_close(kl_div(log_q, p, reduction="mean"), per_position.sum() / p.numel())
    for layout in (log_q.transpose(1, 2), log_q[:, :, ::2]):
        target = p.transpose(1, 2) if layout.shape[1] == 7 else p[:, :, ::2]
        torch.testing.assert_close(kl_div(layout, target, reduction="sum"), F.kl_div(layout, target, reduction="sum"))
    x = log_q.clone().requires_grad_(True)
    t = p.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: kl_div(a, b, reduction="batchmean"), (x, t))
    assert torch.autograd.gradcheck(lambda a, b: kl_div(a, b, reduction="sum", log_target=True), (x, t.log().detach().requires_grad_(True)))


def test_distillation_gradient_shrinks_like_one_over_t_squared():
    torch.manual_seed(0)
    teacher, student = torch.randn(8, 10, dtype=torch.float64), torch.randn(8, 10, dtype=torch.float64, requires_grad=True)
    scaled = []
    for T in (4.0, 8.0, 16.0, 32.0):
        log_p, log_q = (teacher / T).log_softmax(dim=1), (student / T).log_softmax(dim=1)
        (grad,) = torch.autograd.grad(kl_div(log_q, log_p, reduction="batchmean", log_target=True), student)
        scaled.append(T**2 * grad.norm().item())
    assert max(scaled) / min(scaled) < 1.1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: kl_div(torch.zeros(2, 3), torch.zeros(2, 3), reduction="batch"), ValueError,
         r"reduction must be one of \('mean', 'sum', 'none', 'batchmean'\), got 'batch'"),
        (lambda: kl_div(torch.zeros(2, 3), torch.zeros(3)), ValueError, r"target must have the shape of input \(2, 3\)"),
        (lambda: kl_div(torch.zeros(2, 3), torch.zeros(2, 3), log_target=1), TypeError, "log_target must be a bool, got 1"),
        (lambda: kl_div(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)), TypeError, "target must be a floating-point"),
    ],
)
def test_kl_div_refuses_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("dtype", FLOATS)
def test_soft_target_cross_entropy_on_every_dtype(dtype):
    for shape in [(5, 3), (0, 3), (1, 1)]:
        _soft_target_case(dtype, shape)


def _soft_target_case(dtype, shape):
    x = randn(shape, dtype, seed=45, scale=5.0)
    t = randn(shape, torch.float64, seed=46).softmax(dim=1).to(dtype)
    for reduction in REDUCTIONS:
        expected = torch_or_skip(F.cross_entropy, x, t, reduction=reduction)
        got = soft_target_cross_entropy(x, t, reduction=reduction)
        assert got.dtype == dtype and got.shape == expected.shape
        torch.testing.assert_close(got, expected, equal_nan=True, **ALL_TOLERANCES[dtype])
    x = x.T.contiguous().T  # a transposed layout of the same values
    torch.testing.assert_close(soft_target_cross_entropy(x, t), F.cross_entropy(x, t), equal_nan=True, **ALL_TOLERANCES[dtype])
