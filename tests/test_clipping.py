"""Gradient clipping from scratch, proved equal to torch.nn.utils on every case the lesson claims."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.training.clipping import (
    activation_stats,
    adaptive_clip_grad_,
    check_adaptive_clip_grad_,
    check_clip_grads_with_norm_,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
    gradient_report,
    plot_gradient_norms,
    repeated_weight_run,
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
NORM_TYPES = [2.0, 1.0, 3.0, 0.5, 0.0, -1.0, math.inf, -math.inf, "inf", 2]
SHAPES = [(3, 4), (), (5,), (2, 3, 4), (0,), (1, 1), (7, 0, 2), (17,)]
INF = math.inf


def _params(shapes, dtypes, *, seed=0, scale=1.0, none_every=3, device="cpu"):
    """Parameters with gradients of mixed magnitudes; every `none_every`-th one has .grad None."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(shapes):
        dtype = dtypes[i % len(dtypes)]
        p = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
        if none_every and i % none_every == none_every - 1:
            params.append(p)
            continue
        magnitude = scale * 10.0 ** ((i % 5) - 2)
        p.grad = (magnitude * torch.randn(shape, generator=generator, dtype=torch.float64)).to(dtype).to(device)
        params.append(p)
    return params


def _twin(params):
    twin = []
    for p in params:
        q = p.detach().clone().requires_grad_(True)
        q.grad = None if p.grad is None else p.grad.clone()
        twin.append(q)
    return twin


def _assert_same_grads(ours, theirs, *, exact=True):
    for a, b in zip(ours, theirs, strict=True):
        if b.grad is None:
            assert a.grad is None
            continue
        assert a.grad.dtype == b.grad.dtype
        if exact:
            torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0, equal_nan=True)
        else:
            torch.testing.assert_close(a.grad, b.grad, equal_nan=True)


def _has_empty_inf_norm(params, norm_type):
    return abs(float(norm_type)) == INF and any(p.grad is not None and p.grad.numel() == 0 for p in params)


# clip_grad_norm_ against PyTorch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_clip_grad_norm_is_bitwise_pytorchs_for_one_dtype(dtype, norm_type):
    # Norms of order inf and below 0 have no value on an empty tensor (both raise; tested below).
    shapes = [s for s in SHAPES if not (float(norm_type) < 0 or float(norm_type) == INF) or 0 not in s]
    for max_norm in (0.0, 1e-3, 1.0, 1e6, INF):
        params = _params(shapes, [dtype], seed=len(shapes))
        twin = _twin(params)
        ours = clip_grad_norm_(params, max_norm, norm_type)
        theirs = torch.nn.utils.clip_grad_norm_(twin, max_norm, norm_type)
        assert ours.dtype == theirs.dtype == dtype
        assert not ours.requires_grad
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
        _assert_same_grads(params, twin)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 0.5, INF, -INF])
def test_clip_grad_norm_matches_pytorch_for_mixed_dtypes(seed, norm_type):
    generator = torch.Generator().manual_seed(seed)
    dtypes = [DTYPES[int(i)] for i in torch.randint(0, 4, (5,), generator=generator)]
    params = _params([(4, 3), (6,), (2, 2), (5,), ()], dtypes, seed=seed, scale=seed + 1.0)
    twin = _twin(params)
    ours = clip_grad_norm_(params, 0.5, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(twin, 0.5, norm_type)
    # The total's dtype is what the gradients' dtypes promote to, in both.
    assert ours.dtype == theirs.dtype
    # PyTorch stacks the per-dtype groups in its own order: the final sum may round differently.
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    _assert_same_grads(params, twin, exact=False)


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ((torch.float16, torch.bfloat16), torch.float32),
        ((torch.float16, torch.float32), torch.float32),
        ((torch.bfloat16, torch.float64), torch.float64),
        ((torch.float32, torch.float64, torch.float16), torch.float64),
        ((torch.bfloat16,), torch.bfloat16),
    ],
)
def test_the_total_norm_takes_the_promoted_dtype(dtypes, expected):
    params = _params([(3,)] * len(dtypes), list(dtypes), none_every=0)
    twin = _twin(params)
    assert clip_grad_norm_(params, 1.0).dtype == expected
    assert torch.nn.utils.clip_grad_norm_(twin, 1.0).dtype == expected


def test_single_tensor_generator_and_none_grads():
    params = _params(SHAPES, [torch.float32], seed=3)
    twin = _twin(params)
    ours = clip_grad_norm_(params[0], 0.1)
    theirs = torch.nn.utils.clip_grad_norm_(twin[0], 0.1)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    _assert_same_grads(params, twin)
    reads = []

    def generator(ps):
        for p in ps:
            reads.append(1)
            yield p

    ours = clip_grad_norm_(generator(params), 0.2)
    assert len(reads) == len(params)  # read once, all the way
    theirs = torch.nn.utils.clip_grad_norm_(generator(twin), 0.2)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    _assert_same_grads(params, twin)
    assert params[2].grad is None and twin[2].grad is None


def test_a_module_parameters_generator_is_clipped():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))
    twin = copy.deepcopy(model)
    x = torch.randn(9, 5)
    for net in (model, twin):
        (50 * net(x).pow(2).sum()).backward()
    ours = clip_grad_norm_(model.parameters(), 1.0)
    theirs = torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    _assert_same_grads(list(model.parameters()), list(twin.parameters()))
    torch.testing.assert_close(get_total_norm([p.grad for p in model.parameters()]), torch.tensor(1.0))


@pytest.mark.parametrize("empty", ["list", "tuple", "all-none", "generator"])
def test_no_gradients_at_all(empty):
    frozen = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    make = {
        "list": lambda: [],
        "tuple": lambda: (),
        "all-none": lambda: frozen,
        "generator": lambda: (p for p in []),
    }[empty]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = clip_grad_norm_(make(), 1.0)
    with warnings.catch_warnings(record=True) as theirs_caught:
        warnings.simplefilter("always")
        theirs = torch.nn.utils.clip_grad_norm_(make(), 1.0)
    assert torch.equal(ours, theirs) and ours.dtype == theirs.dtype == torch.float32
    assert all(p.grad is None for p in frozen)
    messages = [str(w.message) for w in caught]
    if empty == "generator":
        assert messages == ["`parameters` is an empty generator, no gradient clipping will occur."]
        # Older PyTorch releases said nothing; recent ones say exactly this.
        assert [str(w.message) for w in theirs_caught] in ([], messages)
    else:
        assert messages == []


def test_zero_gradients_stay_zero():
    params = _params([(3, 3), (4,)], [torch.float32], none_every=0)
    for p in params:
        p.grad.zero_()
    twin = _twin(params)
    ours, theirs = clip_grad_norm_(params, 1.0), torch.nn.utils.clip_grad_norm_(twin, 1.0)
    assert ours.item() == theirs.item() == 0.0
    _assert_same_grads(params, twin)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in params)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, INF, 0.5])
def test_nonfinite_gradients_with_and_without_error(bad, norm_type):
    params = _params([(3, 4), (5,), (2,)], [torch.float32], seed=1, none_every=0)
    params[1].grad[2] = bad
    twin = _twin(params)
    before = [p.grad.clone() for p in params]
    with pytest.raises(RuntimeError) as ours_error:
        clip_grad_norm_(params, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as theirs_error:
        torch.nn.utils.clip_grad_norm_(twin, 1.0, norm_type, error_if_nonfinite=True)
    assert str(ours_error.value) == str(theirs_error.value)
    assert f"order {float(norm_type)}" in str(ours_error.value)
    for p, b in zip(params, before, strict=True):  # nothing clipped before the error
        torch.testing.assert_close(p.grad, b, rtol=0, atol=0, equal_nan=True)
    ours = clip_grad_norm_(params, 1.0, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(twin, 1.0, norm_type)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
    assert not torch.isfinite(ours)
    _assert_same_grads(params, twin)


def test_a_finite_norm_passes_error_if_nonfinite():
    params = _params([(3,)], [torch.float64], none_every=0)
    twin = _twin(params)
    ours = clip_grad_norm_(params, 0.1, error_if_nonfinite=True)
    theirs = torch.nn.utils.clip_grad_norm_(twin, 0.1, error_if_nonfinite=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("norm_type", [INF, -INF])
def test_an_empty_gradient_has_no_infinity_norm_in_either(norm_type):
    ours = [torch.zeros(0, requires_grad=True)]
    ours[0].grad = torch.zeros(0)
    twin = _twin(ours)
    with pytest.raises(RuntimeError, match="empty tensor"):
        clip_grad_norm_(ours, 1.0, norm_type)
    with pytest.raises(RuntimeError, match="empty tensor"):
        torch.nn.utils.clip_grad_norm_(twin, 1.0, norm_type)


@pytest.mark.parametrize("foreach", [None, False, True])
def test_every_foreach_setting_gives_the_same_numbers(foreach):
    params = _params(SHAPES[:4], [torch.float32, torch.float32], seed=5)
    reference = _twin(params)
    twin = _twin(params)
    ours = clip_grad_norm_(params, 0.3, foreach=foreach)
    theirs = torch.nn.utils.clip_grad_norm_(reference, 0.3, foreach=None)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    _assert_same_grads(params, reference)
    torch.nn.utils.clip_grad_norm_(twin, 0.3, foreach=False)
    _assert_same_grads(params, twin)


def test_gradients_that_require_grad_are_clipped_without_a_graph():
    w = torch.randn(4, requires_grad=True)
    (grad,) = torch.autograd.grad(w.pow(3).sum(), w, create_graph=True)
    w.grad = grad
    twin = w.detach().clone().requires_grad_(True)
    twin.grad = grad.detach().clone().requires_grad_(True)
    ours, theirs = clip_grad_norm_(w, 0.5), torch.nn.utils.clip_grad_norm_(twin, 0.5)
    assert not ours.requires_grad and not theirs.requires_grad
    torch.testing.assert_close(w.grad.detach(), twin.grad.detach())


def test_pytorch_flips_gradients_for_a_negative_max_norm_and_we_refuse():
    w = torch.zeros(2, requires_grad=True)
    w.grad = torch.tensor([3.0, 4.0])
    torch.nn.utils.clip_grad_norm_(w, -1.0)
    assert (w.grad < 0).all()  # PyTorch: every gradient now points the other way
    with pytest.raises(ValueError, match="max_norm must be at least 0, got -1.0"):
        clip_grad_norm_(w, -1.0)
    with pytest.raises(ValueError, match="max_norm must be at least 0, got nan"):
        clip_grad_norm_(w, math.nan)
    torch.nn.utils.clip_grad_value_(w, -0.5)
    assert torch.equal(w.grad, torch.tensor([-0.5, -0.5]))  # PyTorch: everything set to the bound
    with pytest.raises(ValueError, match="clip_value must be at least 0, got -0.5"):
        clip_grad_value_(w, -0.5)


def test_max_norm_may_be_a_tensor_or_an_int():
    params = _params([(5,)], [torch.float32], none_every=0, scale=100.0)
    twin = _twin(params)
    clip_grad_norm_(params, torch.tensor(2.0))
    torch.nn.utils.clip_grad_norm_(twin, 2)
    _assert_same_grads(params, twin)


# get_total_norm


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, -1.0, INF, -INF])
def test_total_norm_is_the_norm_of_the_concatenation(norm_type):
    tensors = [g.grad for g in _params([(3, 4), (5,), (2, 2, 2), ()], [torch.float64], none_every=0)]
    flat = torch.cat([t.flatten() for t in tensors])
    torch.testing.assert_close(get_total_norm(tensors, norm_type), torch.linalg.vector_norm(flat, norm_type))


def test_the_zero_norm_counts_tensors_not_entries():
    tensors = [torch.tensor([1.0, 0.0, 2.0]), torch.zeros(4), torch.tensor([0.0, 5.0])]
    assert get_total_norm(tensors, 0).item() == 2.0
    assert torch.linalg.vector_norm(torch.cat(tensors), 0).item() == 3.0


@pytest.mark.skipif(not hasattr(torch.nn.utils, "get_total_norm"), reason="torch.nn.utils.get_total_norm arrived in 2.6")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, INF, 0.0])
def test_get_total_norm_matches_pytorchs(dtype, norm_type):
    tensors = [p.grad for p in _params([(3, 4), (5,), ()], [dtype], none_every=0)]
    ours = get_total_norm(tensors, norm_type)
    theirs = torch.nn.utils.get_total_norm(tensors, norm_type)
    assert ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert torch.equal(get_total_norm(tensors[0], norm_type), torch.nn.utils.get_total_norm(tensors[0], norm_type))
    assert torch.equal(get_total_norm([]), torch.nn.utils.get_total_norm([]))


@settings(max_examples=20)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    p=st.sampled_from([1.0, 2.0, 3.0, 0.5, INF]),
    seed=st.integers(0, 2**16),
)
def test_norm_of_norms_property(sizes, p, seed):
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(n, generator=generator, dtype=torch.float64) for n in sizes]
    flat = torch.cat(tensors)
    torch.testing.assert_close(get_total_norm(tensors, p), torch.linalg.vector_norm(flat, p))


# clip_grad_value_


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip_value", [0.0, 0.01, 1.0, 1e5, INF])
def test_clip_grad_value_is_pytorchs(dtype, clip_value):
    params = _params(SHAPES, [dtype], seed=2)
    params[0].grad[0, 0] = math.nan
    params[0].grad[1, 1] = math.inf
    params[0].grad[2, 2] = -math.inf
    twin = _twin(params)
    if dtype == torch.float16 and clip_value == 1e5:
        # A finite bound beyond float16's range: both refuse it, with the same message.
        for clip in (clip_grad_value_, torch.nn.utils.clip_grad_value_):
            with pytest.raises(RuntimeError, match="cannot be converted to type c10::Half without overflow"):
                clip(params, clip_value)
        return
    assert clip_grad_value_(params, clip_value) is None
    torch.nn.utils.clip_grad_value_(twin, clip_value)
    _assert_same_grads(params, twin)
    for p in params:
        if p.grad is not None:
            finite = p.grad[~p.grad.isnan()]
            assert (finite.abs() <= clip_value).all()


def test_clip_grad_value_takes_a_tensor_a_generator_and_an_int():
    params = _params([(4,), (3,), (2,)], [torch.float32], scale=100.0)
    twin = _twin(params)
    clip_grad_value_(params[0], 1)
    torch.nn.utils.clip_grad_value_(twin[0], 1)
    clip_grad_value_((p for p in params), 0.5, foreach=True)
    torch.nn.utils.clip_grad_value_((p for p in twin), 0.5)
    _assert_same_grads(params, twin)
    clip_grad_value_([], 1.0)  # nothing to do, no error


def test_clipping_by_value_changes_the_direction_and_by_norm_does_not():
    original = torch.tensor([10.0, 1.0, -0.1, 0.0, 3.0])
    a, b = torch.zeros(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    a.grad, b.grad = original.clone(), original.clone()
    clip_grad_value_(a, 1.0)
    clip_grad_norm_(b, 1.0)
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(a.grad, original, dim=0) < 0.99
    torch.testing.assert_close(cosine(b.grad, original, dim=0), torch.tensor(1.0))


# Errors


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: clip_grad_norm_(3, 1.0), TypeError, "parameters must be a tensor or an iterable of tensors, got int"),
        (lambda: clip_grad_norm_([torch.zeros(1), "w"], 1.0), TypeError, "parameters must hold only tensors, got an item of type str"),
        (lambda: clip_grad_norm_([], "1"), TypeError, "max_norm must be a real number, got '1'"),
        (lambda: clip_grad_norm_([], True), TypeError, "max_norm must be a real number, got True"),
        (lambda: clip_grad_norm_([], 1.0, "two"), ValueError, "norm_type must be a number or 'inf', got 'two'"),
        (lambda: clip_grad_norm_([], 1.0, None), TypeError, "norm_type must be a number or 'inf', got None"),
        (lambda: clip_grad_norm_([], 1.0, math.nan), ValueError, "norm_type must be a number or 'inf', got nan"),
        (lambda: clip_grad_norm_([], 1.0, error_if_nonfinite=1), TypeError, "error_if_nonfinite must be a bool, got 1"),
        (lambda: clip_grad_norm_([], 1.0, foreach="yes"), TypeError, "foreach must be None or a bool, got 'yes'"),
        (lambda: clip_grad_value_(None, 1.0), TypeError, "parameters must be a tensor or an iterable of tensors, got NoneType"),
        (lambda: clip_grad_value_([], math.nan), ValueError, "clip_value must be at least 0, got nan"),
        (lambda: get_total_norm([1.0]), TypeError, "tensors must hold only tensors, got an item of type float"),
        (lambda: gradient_report("model"), TypeError, "model must be a torch.nn.Module, got str"),
        (lambda: activation_stats(len, torch.zeros(1)), TypeError, "model must be a torch.nn.Module, got builtin_function_or_method"),
        (lambda: clip_grads_with_norm_([], 1.0, 2.0), TypeError, "total_norm must be a torch.Tensor, got float"),
        (lambda: adaptive_clip_grad_([], clip_factor=0.0), ValueError, "clip_factor must be positive, got 0.0"),
        (lambda: adaptive_clip_grad_([], eps=-1.0), ValueError, "eps must be positive, got -1.0"),
        (lambda: repeated_weight_run(0.0), ValueError, "lr must be a positive number, got 0.0"),
        (lambda: repeated_weight_run(0.1, -1.0), ValueError, "max_norm must be at least 0, got -1.0"),
        (lambda: repeated_weight_run(0.1, steps=0), ValueError, "steps must be at least 1, got 0"),
        (lambda: repeated_weight_run(0.1, seed=-1), ValueError, "seed must be at least 0, got -1"),
        (lambda: repeated_weight_run(0.1, depth=2.0), TypeError, "depth must be an int, got 2.0"),
        (lambda: repeated_weight_run("0.1"), TypeError, "lr must be a real number, got '0.1'"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# The stethoscope


def test_gradient_report_names_every_parameter_and_squares_add_up():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2), nn.Linear(2, 1)))
    model[2][1].requires_grad_(False)
    model(torch.randn(6, 3)).sum().backward()
    report = gradient_report(model)
    assert list(report) == [name for name, _ in model.named_parameters()]
    assert report["2.1.weight"] is None and report["2.1.bias"] is None
    assert report["0.weight"] == pytest.approx(model[0].weight.grad.norm().item())
    total = clip_grad_norm_(model.parameters(), INF)
    assert math.sqrt(sum(v * v for v in report.values() if v is not None)) == pytest.approx(total.item(), rel=1e-6)


def test_activation_stats_records_leaves_and_removes_its_hooks():
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), shared, nn.Tanh(), shared, nn.Dropout(0.0))
    x = torch.randn(10, 3)
    stats = activation_stats(model, x)
    # Leaves only, in the order they last ran; the shared layer appears once, with its last call.
    assert list(stats) == ["0", "1", "3", "2", "5"]
    h = model[3](shared(model[1](model[0](x))))
    last = shared(h).detach()
    assert stats["2"]["mean"] == pytest.approx(last.mean().item(), abs=1e-6)
    assert stats["2"]["std"] == pytest.approx(last.std().item(), abs=1e-6)
    relu = model[1](model[0](x))
    assert stats["1"]["zero_fraction"] == pytest.approx((relu == 0).float().mean().item())
    assert all(not m._forward_hooks for m in model.modules())


def test_activation_stats_removes_hooks_even_when_the_forward_fails():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 1))
    with pytest.raises(RuntimeError):
        activation_stats(model, torch.randn(2, 3))
    assert all(not m._forward_hooks for m in model.modules())


def test_activation_stats_skips_outputs_that_are_not_float_tensors():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x.argmax(dim=-1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()
            self.index = nn.Identity()
            self.one = nn.Linear(3, 1)

        def forward(self, x):
            a, i = self.pair(x)
            self.index(i)
            return self.one(a)

    stats = activation_stats(Net(), torch.randn(1, 3))
    assert list(stats) == ["one"]
    assert stats["one"]["std"] == 0.0  # a single number has no spread
    assert list(activation_stats(nn.Linear(2, 2), torch.randn(3, 2))) == [""]  # a leaf model is its own leaf


# The exploding run and its figure


def test_repeated_weight_run_explodes_unless_clipped_and_leaves_the_seed_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    calm, wild, tamed = repeated_weight_run(0.01), repeated_weight_run(0.04), repeated_weight_run(0.04, 1.0)
    assert torch.equal(torch.rand(1), expected_next)
    assert all(math.isfinite(v) for v in calm["grad_norm"] + calm["loss"])
    assert not math.isfinite(wild["grad_norm"][-1]) and not math.isfinite(wild["loss"][-1])
    assert wild["grad_norm"][1] > 100 * wild["grad_norm"][0] / 2
    assert all(math.isfinite(v) for v in tamed["grad_norm"] + tamed["loss"])
    assert tamed["loss"][-1] < calm["loss"][-1] < calm["loss"][0]
    assert tamed["grad_norm"][0] == wild["grad_norm"][0] == calm["grad_norm"][0]
    assert repeated_weight_run(0.01, seed=1)["loss"][0] != calm["loss"][0]


def test_plot_gradient_norms_draws_two_panels_with_three_runs():
    fig = plot_gradient_norms(steps=6, depth=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        labelled = [line for line in ax.lines if line.get_marker() == "o"]
        assert len(labelled) == 3
        crosses = [line for line in ax.lines if line.get_marker() == "x"]
        assert len(crosses) == 1  # the exploding run's last finite point


# Dr. Hammer's traps


def test_clipping_each_parameter_alone_changes_the_direction():
    params = _params([(2,), (2,), (3,)], [torch.float64], none_every=0, seed=4)
    params[0].grad.mul_(1000)
    original = torch.cat([p.grad.flatten() for p in params])
    alone = _twin(params)
    for p in alone:
        clip_grad_norm_(p, 1.0)
    clip_grad_norm_(params, 1.0)
    cosine = torch.nn.functional.cosine_similarity
    together = torch.cat([p.grad.flatten() for p in params])
    hammer = torch.cat([p.grad.flatten() for p in alone])
    torch.testing.assert_close(cosine(together, original, dim=0), torch.tensor(1.0, dtype=torch.float64))
    assert cosine(hammer, original, dim=0) < 0.99


# Challenges


def test_clip_grads_with_norm_solution_passes_and_matches_pytorch():
    assert check_clip_grads_with_norm_(clip_grads_with_norm_) is None
    if hasattr(torch.nn.utils, "clip_grads_with_norm_"):
        assert check_clip_grads_with_norm_(torch.nn.utils.clip_grads_with_norm_) is None

    def recomputes_the_norm(parameters, max_norm, total_norm, foreach=None):
        clip_grad_norm_(parameters, max_norm)

    def amplifies(parameters, max_norm, total_norm, foreach=None):
        for p in parameters if not isinstance(parameters, torch.Tensor) else [parameters]:
            if p.grad is not None:
                p.grad.mul_(max_norm / (total_norm + 1e-6))

    def forgets_generators(parameters, max_norm, total_norm, foreach=None):
        params = parameters if isinstance(parameters, list) else []
        clip_grads_with_norm_(params, max_norm, total_norm)

    def fills_none(parameters, max_norm, total_norm, foreach=None):
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        clip_grads_with_norm_(params, max_norm, total_norm)

    for wrong in (recomputes_the_norm, amplifies, forgets_generators, fills_none, lambda *a, **k: None):
        with pytest.raises(AssertionError):
            check_clip_grads_with_norm_(wrong)


def test_adaptive_clip_grad_solution_passes_and_wrong_attempts_fail():
    assert check_adaptive_clip_grad_(adaptive_clip_grad_) is None

    def whole_tensor_norms(parameters, clip_factor=0.01, eps=1e-3):
        for p in parameters if not isinstance(parameters, torch.Tensor) else [parameters]:
            if p.grad is not None:
                limit = clip_factor * p.detach().norm().clamp(min=eps)
                g = p.grad.norm()
                if g > limit:
                    p.grad.mul_(limit / g)

    def no_eps_floor(parameters, clip_factor=0.01, eps=1e-3):
        adaptive_clip_grad_(parameters, clip_factor, eps=1e-12)

    def clips_the_weights(parameters, clip_factor=0.01, eps=1e-3):
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        adaptive_clip_grad_(params, clip_factor, eps)
        with torch.no_grad():
            for p in params:
                p.mul_(0.5)

    for wrong in (whole_tensor_norms, no_eps_floor, clips_the_weights, lambda *a, **k: None):
        with pytest.raises(AssertionError):
            check_adaptive_clip_grad_(wrong)


def test_adaptive_clip_grad_leaves_small_gradients_alone():
    w = torch.ones(3, 4, requires_grad=True)
    w.grad = torch.full((3, 4), 1e-4)
    adaptive_clip_grad_(w)
    assert torch.equal(w.grad, torch.full((3, 4), 1e-4))


# On a GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, INF])
def test_matches_pytorch_on_cuda(dtype, norm_type):
    params = _params([(64, 33), (17,), (3, 5, 7), ()], [dtype], device="cuda", seed=9)
    twin = _twin(params)
    ours = clip_grad_norm_(params, 0.7, norm_type)
    theirs = torch.nn.utils.clip_grad_norm_(twin, 0.7, norm_type)
    assert ours.device.type == "cuda" and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs)
    _assert_same_grads(params, twin, exact=False)
    clip_grad_value_(params, 0.01)
    torch.nn.utils.clip_grad_value_(twin, 0.01)
    _assert_same_grads(params, twin, exact=False)
