"""The thorough proof of the reduction lesson: the from-scratch cross-entropies equal `F.cross_entropy` with
`ignore_index`, class weights and label smoothing, for every reduction and shape, gradients included; and
the lesson's claims about denominators, micro-batches and all-ignored batches hold."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import torchenstein.nn.reduction as lesson
from torchenstein.challenges import challenges_in
from torchenstein.lab import device_available
from torchenstein.nn.reduction import (
    check_nan_safe_token_mean,
    check_per_sequence_mean_loss,
    cross_entropy_with_ignore,
    masked_cross_entropy,
    nan_safe_token_mean,
    per_sequence_mean_loss,
    plot_mean_denominators,
)
from torchenstein.tensors.accumulation import accumulated_token_loss_weights

REDUCTIONS = ("mean", "sum", "none")
# (input shape, target shape): unbatched, (N, C), (N, C, L) and (N, C, H, W).
SHAPES = [((5,), ()), ((6, 4), (6,)), ((3, 5, 7), (3, 7)), ((2, 3, 4, 5), (2, 4, 5))]


def make_batch(input_shape, target_shape, *, ignored: float, dtype=torch.float64, ignore_index=-100, seed=0):
    """Random logits and targets in which a fraction ``ignored`` of the targets is ``ignore_index``."""
    generator = torch.Generator().manual_seed(seed)
    num_classes = input_shape[1] if len(input_shape) >= 2 else input_shape[0]
    logits = (torch.randn(input_shape, generator=generator, dtype=torch.float64) * 2).to(dtype)
    target = torch.randint(num_classes, target_shape, generator=generator)
    hide = torch.rand(target_shape, generator=generator) < ignored
    if ignored >= 1.0:
        hide = torch.ones(target_shape, dtype=torch.bool)
    weight = (torch.rand(num_classes, generator=generator, dtype=torch.float64) + 0.1).to(dtype)
    return logits, target.masked_fill(hide, ignore_index), weight


def assert_same_values_and_gradients(ours_fn, torch_fn, logits):
    """Same value (nan where torch gives nan) and, where the value is a graph, the same gradient."""
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours, theirs = ours_fn(a), torch_fn(b)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, equal_nan=True)
    if logits.numel() > 0:
        ours.sum().backward()
        theirs.sum().backward()
        torch.testing.assert_close(a.grad, b.grad, equal_nan=True)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("use_weight", [False, True], ids=["no-weight", "weight"])
@pytest.mark.parametrize("ignored", [0.0, 0.5, 1.0], ids=["none-ignored", "half-ignored", "all-ignored"])
@pytest.mark.parametrize(("input_shape", "target_shape"), SHAPES, ids=["C", "NC", "NCL", "NCHW"])
def test_cross_entropy_with_ignore_equals_torch(input_shape, target_shape, ignored, use_weight, label_smoothing):
    for dtype in (torch.float32, torch.float64):
        logits, target, weight = make_batch(input_shape, target_shape, ignored=ignored, dtype=dtype)
        for reduction in REDUCTIONS:
            kwargs = {"weight": weight if use_weight else None, "reduction": reduction, "label_smoothing": label_smoothing}
            assert_same_values_and_gradients(
                lambda x, kwargs=kwargs, target=target: cross_entropy_with_ignore(x, target, **kwargs),
                lambda x, kwargs=kwargs, target=target: F.cross_entropy(x, target, **kwargs),
                logits,
            )


@pytest.mark.parametrize("use_weight", [False, True], ids=["no-weight", "weight"])
@pytest.mark.parametrize(("input_shape", "target_shape"), SHAPES[1:], ids=["NC", "NCL", "NCHW"])
def test_masked_cross_entropy_equals_torch_whatever_hides_under_the_mask(input_shape, target_shape, use_weight):
    logits, target, weight = make_batch(input_shape, target_shape, ignored=0.4, seed=3)
    mask = target != -100
    junk = target.masked_fill(~mask, 10_000)  # not a class: must never be read
    junk[..., 0] = torch.where(mask[..., 0], junk[..., 0], -7)
    w = weight if use_weight else None
    for reduction in REDUCTIONS:
        assert_same_values_and_gradients(
            lambda x, r=reduction: masked_cross_entropy(x, junk, mask, weight=w, reduction=r),
            lambda x, r=reduction: F.cross_entropy(x, target, weight=w, reduction=r),
            logits,
        )


@pytest.mark.parametrize("ignore_index", [0, 2, -1, 99])
def test_any_ignore_index_works_even_a_real_class(ignore_index):
    logits, target, weight = make_batch((8, 3, 5), (8, 5), ignored=0.3, ignore_index=ignore_index, seed=1)
    for reduction in REDUCTIONS:
        torch.testing.assert_close(
            cross_entropy_with_ignore(logits, target, ignore_index=ignore_index, weight=weight, reduction=reduction),
            F.cross_entropy(logits, target, ignore_index=ignore_index, weight=weight, reduction=reduction),
        )


@settings(max_examples=25)
@given(
    n=st.integers(1, 6), c=st.integers(1, 5), length=st.integers(1, 4), seed=st.integers(0, 2**16),
    ignored=st.floats(0.0, 1.0), reduction=st.sampled_from(REDUCTIONS), use_weight=st.booleans(),
    label_smoothing=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_property_equal_to_torch(n, c, length, seed, ignored, reduction, use_weight, label_smoothing):
    logits, target, weight = make_batch((n, c, length), (n, length), ignored=ignored, seed=seed)
    kwargs = {"weight": weight if use_weight else None, "reduction": reduction, "label_smoothing": label_smoothing}
    torch.testing.assert_close(cross_entropy_with_ignore(logits, target, **kwargs), F.cross_entropy(logits, target, **kwargs),
                               equal_nan=True)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("use_weight", [False, True], ids=["no-weight", "weight"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_in_float64(reduction, use_weight, label_smoothing):
    logits, target, weight = make_batch((4, 3, 3), (4, 3), ignored=0.4, seed=2)
    w = weight if use_weight else None
    assert torch.autograd.gradcheck(
        lambda x: cross_entropy_with_ignore(x, target, weight=w, reduction=reduction, label_smoothing=label_smoothing),
        (logits.requires_grad_(True),),
    )
    assert torch.autograd.gradcheck(
        lambda x: masked_cross_entropy(x, target.clamp_min(0), target != -100, weight=w, reduction=reduction),
        (logits,),
    )


def test_ignored_positions_get_zero_loss_and_exactly_zero_gradient():
    logits, target, weight = make_batch((5, 4, 6), (5, 6), ignored=0.5, seed=4)
    ignored = target == -100
    for label_smoothing in (0.0, 0.25):
        x = logits.clone().requires_grad_(True)
        losses = cross_entropy_with_ignore(x, target, weight=weight, reduction="none", label_smoothing=label_smoothing)
        assert torch.equal(losses[ignored], torch.zeros_like(losses[ignored]))
        cross_entropy_with_ignore(x, target, weight=weight, label_smoothing=label_smoothing).backward()
        # (N, C, L): the gradient of an ignored position is zero for every class.
        assert torch.equal(x.grad.movedim(1, -1)[ignored], torch.zeros_like(x.grad.movedim(1, -1)[ignored]))


def test_junk_logits_at_ignored_positions_change_nothing():
    logits, target, _ = make_batch((4, 3, 5), (4, 5), ignored=0.5, seed=5)
    ignored = target == -100
    junk = logits.clone().movedim(1, -1)
    junk[ignored] = math.inf  # a diverged model at a padded position
    junk = junk.movedim(-1, 1)
    for reduction in REDUCTIONS:
        torch.testing.assert_close(cross_entropy_with_ignore(junk, target, reduction=reduction),
                                   cross_entropy_with_ignore(logits, target, reduction=reduction))


def test_the_mean_denominators_the_lesson_states():
    logits, target, weight = make_batch((10, 4), (10,), ignored=0.3, seed=6)
    counts = target != -100
    total = F.cross_entropy(logits, target, weight=weight, reduction="sum")
    torch.testing.assert_close(cross_entropy_with_ignore(logits, target, weight=weight), total / weight[target[counts]].sum())
    torch.testing.assert_close(cross_entropy_with_ignore(logits, target, weight=3 * weight), cross_entropy_with_ignore(logits, target, weight=weight))
    per_token = cross_entropy_with_ignore(logits, target, reduction="none")
    wrong, right = per_token.mean(), cross_entropy_with_ignore(logits, target)
    torch.testing.assert_close(wrong, right * counts.sum() / counts.numel())


def test_all_ignored_gives_nan_mean_zero_sum_and_zero_gradient_like_torch():
    logits, target, weight = make_batch((4, 3), (4,), ignored=1.0)
    for w in (None, weight):
        x = logits.clone().requires_grad_(True)
        mean = cross_entropy_with_ignore(x, target, weight=w)
        assert mean.isnan() and F.cross_entropy(logits, target, weight=w).isnan()
        assert cross_entropy_with_ignore(x, target, weight=w, reduction="sum").item() == 0.0
        mean.backward()
        assert torch.equal(x.grad, torch.zeros_like(x))


def test_an_empty_batch_matches_torch():
    for logits, target in ((torch.randn(0, 3), torch.zeros(0, dtype=torch.long)),
                           (torch.randn(2, 3, 0, dtype=torch.float64), torch.zeros(2, 0, dtype=torch.long))):
        for reduction in REDUCTIONS:
            for label_smoothing in (0.0, 0.2):
                kwargs = {"reduction": reduction, "label_smoothing": label_smoothing, "weight": torch.ones(3, dtype=logits.dtype)}
                torch.testing.assert_close(cross_entropy_with_ignore(logits, target, **kwargs),
                                           F.cross_entropy(logits, target, **kwargs), equal_nan=True)


def test_label_smoothing_with_probability_targets_ignores_nothing():
    # The lesson's warning: smoothing by hand into probabilities loses ignore_index.
    logits, target, _ = make_batch((6, 4), (6,), ignored=0.5, seed=7)
    eps, counts = 0.1, target != -100
    soft = torch.full((6, 4), eps / 4, dtype=torch.float64)
    soft[counts, target[counts]] += 1 - eps
    soft[~counts] = 1 / 4  # whatever a padded row gets, it is not ignored
    by_hand = F.cross_entropy(logits, soft, reduction="none")
    assert (by_hand[~counts] > 0).all()
    torch.testing.assert_close(by_hand[counts], cross_entropy_with_ignore(logits, target, label_smoothing=eps, reduction="none")[counts])


def test_per_token_and_per_sequence_means_differ_when_lengths_differ():
    losses = torch.tensor([[4.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    ragged = torch.tensor([[True, False, False], [True, True, True]])
    assert nan_safe_token_mean(losses, ragged).item() == pytest.approx(7 / 4)
    assert per_sequence_mean_loss(losses, ragged).item() == pytest.approx(2.5)
    full = torch.ones_like(ragged)
    assert nan_safe_token_mean(losses, full).item() == pytest.approx(per_sequence_mean_loss(losses, full).item())


@pytest.mark.parametrize("micro_batch", [1, 2, 3])
def test_micro_batch_sums_over_the_steps_token_count_equal_the_full_batch(micro_batch):
    logits, target, _ = make_batch((6, 5, 4), (6, 4), ignored=0.5, seed=8)
    target[0] = -100  # one sequence with nothing to learn
    full_logits = logits.clone().requires_grad_(True)
    cross_entropy_with_ignore(full_logits, target).backward()
    stitched = logits.clone().requires_grad_(True)
    parts = [slice(i, i + micro_batch) for i in range(0, 6, micro_batch)]
    total = int((target != -100).sum())
    for part in parts:
        (cross_entropy_with_ignore(stitched[part], target[part], reduction="sum") / total).backward()
    torch.testing.assert_close(stitched.grad, full_logits.grad)
    # And the accumulation lesson's weights on the micro-batch means give the same loss.
    counts = [int((target[part] != -100).sum()) for part in parts]
    weights = accumulated_token_loss_weights(counts)
    weighted = sum(w * cross_entropy_with_ignore(logits[p], target[p]) for w, p, n in zip(weights, parts, counts, strict=True) if n > 0)
    torch.testing.assert_close(weighted, cross_entropy_with_ignore(logits, target))


@pytest.mark.skipif(not device_available("cuda"), reason="needs a CUDA device")
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_equal_to_torch_on_cuda(reduction):
    logits, target, weight = make_batch((4, 6, 9), (4, 9), ignored=0.4, dtype=torch.float32, seed=9)
    logits, target, weight = logits.cuda(), target.cuda(), weight.cuda()
    kwargs = {"weight": weight, "reduction": reduction, "label_smoothing": 0.1}
    assert_same_values_and_gradients(lambda x: cross_entropy_with_ignore(x, target, **kwargs),
                                     lambda x: F.cross_entropy(x, target, **kwargs), logits)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input": torch.randn(3, 2).long()}, TypeError, "input must be a floating-point tensor"),
        ({"target": torch.tensor([0.0, 1.0, 1.0])}, TypeError, "target must be an integer tensor"),
        ({"target": torch.tensor([True, False, True])}, TypeError, "target must be an integer tensor"),
        ({"target": torch.tensor([[0, 1, 1]])}, ValueError, r"target must have shape \(3,\)"),
        ({"input": torch.tensor(1.0)}, ValueError, "input must have a class dimension"),
        ({"target": torch.tensor([0, 2, 1])}, ValueError, r"in \[0, 2\) or ignore_index=-100, got 2"),
        ({"target": torch.tensor([0, -1, 1])}, ValueError, "got -1"),
        ({"reduction": "batchmean"}, ValueError, "reduction must be one of"),
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing must be a number in"),
        ({"weight": torch.ones(3)}, ValueError, "weight must be a 1-D floating-point tensor of 2 class weights"),
        ({"weight": torch.ones(2, dtype=torch.long)}, ValueError, "weight must be"),
        ({"ignore_index": -100.0}, TypeError, "ignore_index must be an int"),
    ],
)
def test_cross_entropy_with_ignore_refuses_bad_arguments(kwargs, error, match):
    arguments = {"input": torch.randn(3, 2), "target": torch.tensor([0, 1, -100])} | kwargs
    with pytest.raises(error, match=match):
        cross_entropy_with_ignore(**arguments)


def test_masked_cross_entropy_refuses_bad_masks_and_bad_counted_targets():
    logits, target = torch.randn(3, 2), torch.tensor([0, 1, 5])
    with pytest.raises(TypeError, match="mask must be a bool tensor, got torch.int64"):
        masked_cross_entropy(logits, target, torch.tensor([1, 1, 0]))
    with pytest.raises(ValueError, match=r"mask must have target's shape \(3,\), got \(1, 3\)"):
        masked_cross_entropy(logits, target, torch.tensor([[True, True, False]]))
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\), got 5"):
        masked_cross_entropy(logits, target, torch.tensor([True, True, True]))


def test_the_figure_draws_and_refuses_bad_sizes():
    fig = plot_mean_denominators(batch_size=2, length=5, points=3, curve_batch_size=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    right = fig.axes[1].lines
    assert len(right) == 2
    # The wrong mean falls with the padding, the right one does not.
    assert right[1].get_ydata()[-1] < right[0].get_ydata()[-1]
    with pytest.raises(ValueError, match="points must be an int of at least 2, got 1"):
        plot_mean_denominators(points=1)
    with pytest.raises(ValueError, match="batch_size must be at most curve_batch_size"):
        plot_mean_denominators(batch_size=9, curve_batch_size=8)


def test_the_lesson_defines_both_challenges():
    assert set(challenges_in(lesson)) == {"per_sequence_mean_loss", "nan_safe_token_mean"}


def test_per_sequence_mean_loss_passes_and_validates():
    check_per_sequence_mean_loss(per_sequence_mean_loss)
    with pytest.raises(ValueError, match="must be 2-D"):
        per_sequence_mean_loss(torch.ones(3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must have token_losses' shape"):
        per_sequence_mean_loss(torch.ones(2, 3), torch.ones(2, 2, dtype=torch.bool))


def _token_mean(losses, mask):  # per token, not per sequence
    return torch.where(mask, losses, 0.0).sum() / mask.sum()


def _means_with_nan_rows(losses, mask):  # forgets the empty sequence
    return (torch.where(mask, losses, 0.0).sum(dim=1) / mask.sum(dim=1)).mean()


def _multiplied_mask(losses, mask):  # inf * 0 = nan in the padding
    sums = (losses * mask).sum(dim=1)
    lengths = mask.sum(dim=1)
    keep = lengths > 0
    if not keep.any():
        raise ValueError("nothing counts")
    return (sums[keep] / lengths[keep]).mean()


@pytest.mark.parametrize("attempt", [_token_mean, _means_with_nan_rows, _multiplied_mask])
def test_the_per_sequence_checker_rejects_plausible_mistakes(attempt):
    with pytest.raises(AssertionError):
        check_per_sequence_mean_loss(attempt)


def test_nan_safe_token_mean_passes_and_validates():
    check_nan_safe_token_mean(nan_safe_token_mean)
    with pytest.raises(TypeError, match="token_losses must be a floating-point tensor"):
        nan_safe_token_mean(torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.bool))


def _plain_masked_mean(losses, mask):  # 0 / 0 = nan when nothing counts
    return torch.where(mask, losses, 0.0).sum() / mask.sum()


def _where_guard_with_multiplied_mask(losses, mask):  # the value is guarded, the gradient is nan
    count = mask.sum()
    mean = (losses * mask).sum() / count
    return torch.where(count > 0, mean, torch.zeros_like(mean))


def _detached_zero(losses, mask):  # a Python branch that returns a constant: backward() fails
    if not mask.any():
        return torch.zeros((), dtype=losses.dtype)
    return torch.where(mask, losses, 0.0).sum() / mask.sum()


@pytest.mark.parametrize("attempt", [_plain_masked_mean, _where_guard_with_multiplied_mask, _detached_zero])
def test_the_nan_safe_checker_rejects_plausible_mistakes(attempt):
    with pytest.raises(AssertionError):
        check_nan_safe_token_mean(attempt)


# The scope of the equality claim: every float dtype, odd layouts, empty batches, extreme logits.

HALF_TOLERANCES = {torch.float16: {"rtol": 4 * 2**-11, "atol": 1e-3}, torch.bfloat16: {"rtol": 4 * 2**-8, "atol": 1e-2}}
ALL_TOLERANCES = {torch.float32: {}, torch.float64: {}, **HALF_TOLERANCES}


def torch_or_skip(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RuntimeError as err:  # torch 2.4 lacks some half-precision CPU kernels
        if "not implemented for" in str(err):
            pytest.skip(str(err))
        raise


@pytest.mark.parametrize("dtype", list(HALF_TOLERANCES))
def test_cross_entropy_with_ignore_in_half_precision(dtype):
    # float32 and float64 are covered, gradients included, by test_cross_entropy_with_ignore_equals_torch.
    for input_shape, target_shape in [*SHAPES, ((0, 3), (0,)), ((2, 3, 0), (2, 0))]:
        _half_precision_case(dtype, input_shape, target_shape)


def _half_precision_case(dtype, input_shape, target_shape):
    logits, target, weight = make_batch(input_shape, target_shape, ignored=0.3, dtype=dtype, seed=11)
    for w in (None, weight):
        for reduction in REDUCTIONS:
            for label_smoothing in (0.0, 0.2):
                kwargs = {"weight": w, "reduction": reduction, "label_smoothing": label_smoothing}
                expected = torch_or_skip(F.cross_entropy, logits, target, **kwargs)
                got = cross_entropy_with_ignore(logits, target, **kwargs)
                assert got.dtype == dtype and got.shape == expected.shape
                torch.testing.assert_close(got, expected, equal_nan=True, **ALL_TOLERANCES[dtype])
            mask = target != -100
            torch.testing.assert_close(masked_cross_entropy(logits, target, mask, weight=w, reduction=reduction),
                                       F.cross_entropy(logits, target, weight=w, reduction=reduction),
                                       equal_nan=True, **ALL_TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", list(ALL_TOLERANCES))
def test_cross_entropy_with_ignore_on_odd_layouts_and_extreme_logits(dtype):
    logits, target, _ = make_batch((3, 5, 4), (3, 4), ignored=0.3, dtype=dtype, seed=12)
    nlc = logits.transpose(1, 2).contiguous()  # (N, L, C) in memory, viewed as (N, C, L) below
    for name, view in (("transposed", nlc.transpose(1, 2)), ("strided", torch.cat([logits, logits], 1)[:, ::2]),
                       ("expanded", logits[:1].expand(3, 5, 4))):
        torch.testing.assert_close(cross_entropy_with_ignore(view, target), F.cross_entropy(view, target),
                                   **ALL_TOLERANCES[dtype], msg=lambda m, name=name: f"{name}: {m}")
    info = torch.finfo(dtype)
    huge = torch.tensor([[info.max, 0.0, -info.max], [-info.max, info.max, 0.0], [info.tiny, 0.0, -info.tiny]], dtype=dtype)
    for label_smoothing in (0.0, 0.1):
        for reduction in REDUCTIONS:
            kwargs = {"reduction": reduction, "label_smoothing": label_smoothing}
            expected = torch_or_skip(F.cross_entropy, huge, torch.tensor([0, 2, -100]), **kwargs)
            torch.testing.assert_close(cross_entropy_with_ignore(huge, torch.tensor([0, 2, -100]), **kwargs), expected,
                                       equal_nan=True, **ALL_TOLERANCES[dtype])


def test_class_weights_of_another_dtype_are_accepted_where_pytorch_refuses_them():
    logits, target, weight = make_batch((6, 4), (6,), ignored=0.3, dtype=torch.float32, seed=13)
    with pytest.raises(RuntimeError):
        F.cross_entropy(logits, target, weight=weight.double())
    torch.testing.assert_close(cross_entropy_with_ignore(logits, target, weight=weight.double()),
                               F.cross_entropy(logits, target, weight=weight))


def test_a_zero_class_weight_on_a_minus_inf_logit_is_nan_like_pytorch():
    logits = torch.tensor([[-math.inf, 0.0], [0.0, -1.0]])
    target, weight = torch.tensor([0, 1]), torch.tensor([0.0, 1.0])
    for reduction in REDUCTIONS:
        torch.testing.assert_close(cross_entropy_with_ignore(logits, target, weight=weight, reduction=reduction),
                                   F.cross_entropy(logits, target, weight=weight, reduction=reduction), equal_nan=True)
