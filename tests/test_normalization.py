"""The proof that the lesson's BatchNorm and LayerNorm equal PyTorch's: outputs, gradients, running
statistics, state_dicts, batches of one and of none, and every error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.nn.normalization import (
    BatchNorm1d,
    BatchNorm2d,
    LayerNorm,
    activation_stds,
    batch_norm,
    check_fold_batchnorm_into_linear,
    check_group_norm,
    fold_batchnorm_into_linear,
    group_norm,
    layer_norm,
    plot_activation_distributions,
)

# (ours, PyTorch's, input shape): one value per channel is avoided here and tested on its own below.
BN_CASES = [
    (BatchNorm1d, nn.BatchNorm1d, (8, 3)),
    (BatchNorm1d, nn.BatchNorm1d, (4, 3, 5)),
    (BatchNorm1d, nn.BatchNorm1d, (2, 3, 1)),
    (BatchNorm1d, nn.BatchNorm1d, (1, 3, 4)),
    (BatchNorm1d, nn.BatchNorm1d, (16, 1)),
    (BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 5)),
    (BatchNorm2d, nn.BatchNorm2d, (1, 3, 2, 2)),
    (BatchNorm2d, nn.BatchNorm2d, (2, 3, 1, 1)),
    (BatchNorm2d, nn.BatchNorm2d, (3, 2, 4, 1)),
]
GRAD_CASES = [0, 1, 3, 5, 7]  # (N, C), (N, C, L), N = 1 with L > 1, images, 1x1 images
BN_IDS = [f"{ours.__name__}-{'x'.join(map(str, shape))}" for ours, _, shape in BN_CASES]
BN_CONFIGS = [
    {},
    {"momentum": None},
    {"momentum": 0.5, "eps": 1e-3},
    {"affine": False},
    {"track_running_stats": False},
    {"affine": False, "track_running_stats": False, "momentum": None},
]
# Every setting in float32, and the main ones again in float64.
BN_CONFIG_DTYPES = [(c, torch.float32) for c in BN_CONFIGS] + [(c, torch.float64) for c in BN_CONFIGS[:3]]


def _config_ids(pairs):
    names = {torch.float32: "f32", torch.float64: "f64"}
    return [",".join(f"{k}={v}" for k, v in c.items()) + f"-{names[d]}" for c, d in pairs]


def _randn(shape, seed, dtype=torch.float64, scale=3.0, shift=1.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)


def _bn_pair(ours_cls, theirs_cls, num_features, dtype, **kwargs):
    """Our module and PyTorch's with the same (non-trivial) weight and bias."""
    ours = ours_cls(num_features, dtype=dtype, **kwargs)
    theirs = theirs_cls(num_features, dtype=dtype, **kwargs)
    if ours.weight is not None:
        with torch.no_grad():
            ours.weight.copy_(_randn(num_features, 100, dtype, scale=0.5, shift=1.0))
            ours.bias.copy_(_randn(num_features, 101, dtype, scale=0.5, shift=0.0))
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _assert_same_state(ours, theirs):
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert ours_state[key].dtype == value.dtype, key
        torch.testing.assert_close(ours_state[key], value, msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize(("config", "dtype"), BN_CONFIG_DTYPES, ids=_config_ids(BN_CONFIG_DTYPES))
@pytest.mark.parametrize(("ours_cls", "theirs_cls", "shape"), BN_CASES, ids=BN_IDS)
def test_batchnorm_matches_torch_through_training_and_eval(ours_cls, theirs_cls, shape, config, dtype):
    ours, theirs = _bn_pair(ours_cls, theirs_cls, shape[1], dtype, **config)
    for step in range(4):
        x = _randn(shape, seed=step, dtype=dtype, shift=step)
        got, expected = ours(x), theirs(x)
        assert got.shape == shape and got.dtype == dtype
        torch.testing.assert_close(got, expected)
        _assert_same_state(ours, theirs)
    if config.get("track_running_stats", True):
        assert ours.num_batches_tracked.dtype == torch.int64 and ours.num_batches_tracked.item() == 4
    ours.eval()
    theirs.eval()
    x = _randn(shape, seed=10, dtype=dtype)
    torch.testing.assert_close(ours(x), theirs(x))
    _assert_same_state(ours, theirs)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("config", [{}, {"affine": False}, {"track_running_stats": False}], ids=["default", "no-affine", "no-stats"])
@pytest.mark.parametrize(("ours_cls", "theirs_cls", "shape"), [BN_CASES[i] for i in GRAD_CASES], ids=[BN_IDS[i] for i in GRAD_CASES])
def test_batchnorm_gradients_match_torch(ours_cls, theirs_cls, shape, config, train):
    ours, theirs = _bn_pair(ours_cls, theirs_cls, shape[1], torch.float64, **config)
    # One training step first, so evaluation uses running statistics that are not the initial 0 and 1.
    ours(_randn(shape, seed=5))
    theirs(_randn(shape, seed=5))
    ours.train(train)
    theirs.train(train)
    upstream = _randn(shape, seed=6, shift=0.0)
    grads = []
    for module in (ours, theirs):
        x = _randn(shape, seed=7).requires_grad_()
        (module(x) * upstream).sum().backward()
        grads.append([x.grad] + [p.grad for p in module.parameters()])
    assert len(grads[0]) == len(grads[1]) == (3 if config.get("affine", True) else 1)
    for got, expected in zip(*grads, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 2, 3, 3)])
def test_batch_norm_gradcheck_in_float64(shape):
    C = shape[1]
    x = _randn(shape, seed=0).requires_grad_()
    weight = _randn(C, seed=1).requires_grad_()
    bias = _randn(C, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, None, None, w, b, training=True), (x, weight, bias))
    mean, var = _randn(C, seed=3), _randn(C, seed=4).abs() + 0.5
    assert torch.autograd.gradcheck(lambda x, w, b: batch_norm(x, mean, var, w, b, training=False), (x, weight, bias))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 4), (2, 3, 2, 2, 2)])
def test_functional_batch_norm_matches_torch_and_updates_running_stats(shape, training):
    C = shape[1]
    ours_mean, ours_var = _randn(C, seed=1), _randn(C, seed=2).abs()
    theirs_mean, theirs_var = ours_mean.clone(), ours_var.clone()
    weight, bias = _randn(C, seed=3), _randn(C, seed=4)
    x = _randn(shape, seed=5)
    got = batch_norm(x, ours_mean, ours_var, weight, bias, training=training, momentum=0.3, eps=1e-3)
    expected = F.batch_norm(x, theirs_mean, theirs_var, weight, bias, training=training, momentum=0.3, eps=1e-3)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(ours_mean, theirs_mean)
    torch.testing.assert_close(ours_var, theirs_var)


def test_running_var_is_unbiased_and_momentum_none_averages_every_batch():
    x1, x2, x3 = (_randn((5, 2), seed=s) for s in range(3))
    bn = BatchNorm1d(2, momentum=None, dtype=torch.float64)
    for x in (x1, x2, x3):
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in (x1, x2, x3)]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([x.var(0) for x in (x1, x2, x3)]).mean(0))
    assert bn.num_batches_tracked.item() == 3


@pytest.mark.parametrize(("ours_cls", "theirs_cls", "shape"), BN_CASES, ids=BN_IDS)
def test_state_dict_loads_both_ways_strictly(ours_cls, theirs_cls, shape):
    ours, theirs = ours_cls(shape[1]), theirs_cls(shape[1])
    for step in range(3):
        ours(_randn(shape, seed=step, dtype=torch.float32))
    theirs.load_state_dict(ours.state_dict(), strict=True)
    _assert_same_state(ours, theirs)
    for step in range(3, 6):
        theirs(_randn(shape, seed=step, dtype=torch.float32))
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _assert_same_state(ours, theirs)
    ours.eval()
    theirs.eval()
    x = _randn(shape, seed=9, dtype=torch.float32)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("config", [{"affine": False}, {"track_running_stats": False}])
def test_state_dict_keys_follow_the_options(config):
    ours, theirs = BatchNorm2d(4, **config), nn.BatchNorm2d(4, **config)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)


@pytest.mark.parametrize(
    ("module", "shape"),
    [(BatchNorm1d(3), (1, 3)), (BatchNorm1d(3), (1, 3, 1)), (BatchNorm2d(3), (1, 3, 1, 1))],
)
def test_one_value_per_channel_is_refused_in_training_only(module, shape):
    x = torch.randn(shape)
    with pytest.raises(ValueError, match=r"needs more than 1 value per channel when training.*call \.eval\(\)"):
        module(x)
    assert module.num_batches_tracked.item() == 0  # a refused batch is not counted
    module.eval()
    torch.testing.assert_close(module(x), x / (1 + module.eps) ** 0.5)


def test_one_value_per_channel_without_running_stats_is_refused_even_in_eval():
    ours, theirs = BatchNorm1d(3, track_running_stats=False).eval(), nn.BatchNorm1d(3, track_running_stats=False).eval()
    x = torch.randn(1, 3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        theirs(x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ours(x)


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4)])
def test_an_empty_batch_matches_torch(shape):
    ours, theirs = BatchNorm1d(3), nn.BatchNorm1d(3)
    x = torch.randn(shape)
    got, expected = ours(x), theirs(x)
    assert got.shape == expected.shape == shape
    _assert_same_state(ours, theirs)


def test_eval_output_of_a_sample_does_not_depend_on_its_batch_mates():
    bn = BatchNorm1d(4)
    for step in range(5):
        bn(_randn((16, 4), seed=step, dtype=torch.float32))
    sample = torch.randn(1, 4)
    mates = [torch.randn(5, 4) * s for s in (1.0, 10.0)]
    train_outputs = [bn(torch.cat([sample, m]))[0] for m in mates]
    assert not torch.allclose(*train_outputs)
    bn.eval()
    eval_outputs = [bn(torch.cat([sample, m]))[0] for m in mates]
    torch.testing.assert_close(*eval_outputs)


@pytest.mark.parametrize("make", [BatchNorm1d, nn.BatchNorm1d])
def test_no_grad_does_not_protect_the_running_statistics(make):
    # The first trap: evaluating under no_grad, still in training mode, moves the running statistics.
    bn = make(2)
    with torch.no_grad():
        for _ in range(10):
            bn(torch.tensor([[9.0, 11.0], [11.0, 9.0]]))
    torch.testing.assert_close(bn.running_mean, torch.full((2,), 10 * (1 - 0.9**10)))
    assert bn.num_batches_tracked.item() == 10


def test_batchnorm1d_on_flattened_images_equals_batchnorm2d():
    x = _randn((4, 3, 5, 6), seed=0, dtype=torch.float32)
    one_d, two_d = BatchNorm1d(3), BatchNorm2d(3)
    torch.testing.assert_close(one_d(x.flatten(2)).view_as(x), two_d(x))
    _assert_same_state(one_d, two_d)


def test_factory_arguments_and_reset():
    bn = BatchNorm1d(3, dtype=torch.float64, device="cpu")
    assert {t.dtype for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)} == {torch.float64}
    assert bn.num_batches_tracked.dtype == torch.int64
    assert torch.equal(bn.weight, torch.ones(3, dtype=torch.float64)) and torch.equal(bn.bias, torch.zeros(3, dtype=torch.float64))
    bn(torch.randn(4, 3, dtype=torch.float64))
    bn.reset_running_stats()
    assert torch.equal(bn.running_mean, torch.zeros(3, dtype=torch.float64))
    assert torch.equal(bn.running_var, torch.ones(3, dtype=torch.float64)) and bn.num_batches_tracked.item() == 0
    assert repr(bn) == "BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


@pytest.mark.parametrize(
    ("make", "x", "error", "match"),
    [
        (lambda: BatchNorm1d(3), torch.randn(2, 3, 4, 4), ValueError, r"\(N, C\) or \(N, C, L\), got a 4-D input"),
        (lambda: BatchNorm1d(3), torch.randn(3), ValueError, "got a 1-D input of shape"),
        (lambda: BatchNorm2d(3), torch.randn(2, 3, 4), ValueError, r"\(N, C, H, W\), got a 3-D input"),
        (lambda: BatchNorm2d(3), torch.randn(2, 4, 2, 2), ValueError, r"BatchNorm2d\(3\) expects 3 channels in dim 1"),
        (lambda: BatchNorm1d(3), torch.ones(2, 3, dtype=torch.long), TypeError, "floating-point tensor, got dtype torch.int64"),
        (lambda: LayerNorm(4), torch.randn(2, 3), ValueError, r"end with normalized_shape \(4,\), got input of shape \(2, 3\)"),
        (lambda: LayerNorm((2, 4)), torch.randn(4), ValueError, r"normalized_shape \(2, 4\), got input of shape \(4,\)"),
        (lambda: LayerNorm(3), torch.ones(3, dtype=torch.int32), TypeError, "floating-point tensor"),
    ],
)
def test_bad_inputs_are_refused_clearly(make, x, error, match):
    with pytest.raises(error, match=match):
        make()(x)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: BatchNorm1d(0), "num_features must be a positive int, got 0"),
        (lambda: BatchNorm2d(2.0), "num_features must be a positive int, got 2.0"),
        (lambda: BatchNorm1d(3, momentum=1.5), r"momentum must be None or a number in \[0, 1\], got 1.5"),
        (lambda: BatchNorm1d(3, eps=-1.0), "eps must be a real number >= 0, got -1.0"),
        (lambda: LayerNorm(()), r"normalized_shape must be a non-negative int .*got \(\)"),
        (lambda: LayerNorm("8"), "got '8'"),
        (lambda: LayerNorm((2.0, 3)), r"got \(2.0, 3\)"),
        (lambda: LayerNorm(4, eps=float("nan")), "eps must be a real number >= 0, got nan"),
    ],
)
def test_bad_arguments_are_refused_clearly(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_functional_errors_name_the_argument():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\), one value per channel, got shape \(2,\)"):
        batch_norm(x, None, None, torch.ones(2), training=True)
    with pytest.raises(ValueError, match="at least 2 dims"):
        batch_norm(torch.randn(3), None, None, training=True)
    with pytest.raises(ValueError, match=r"bias must have the shape normalized_shape \(3,\), got shape \(4,\)"):
        layer_norm(x, 3, torch.ones(3), torch.zeros(4))


LN_CASES = [
    ((4, 8), 8),
    ((2, 5, 8), 8),
    ((2, 5, 8), (5, 8)),
    ((3, 2, 4, 4), torch.Size([2, 4, 4])),
    ((1, 1, 6), [6]),
    ((7,), 7),
]
LN_CONFIGS = [{}, {"elementwise_affine": False}, {"bias": False}, {"eps": 1e-2}]
LN_CONFIG_DTYPES = [(c, torch.float32) for c in LN_CONFIGS] + [(c, torch.float64) for c in LN_CONFIGS[:2]]


def _ln_pair(normalized_shape, dtype, **kwargs):
    ours = LayerNorm(normalized_shape, dtype=dtype, **kwargs)
    theirs = nn.LayerNorm(normalized_shape, dtype=dtype, **kwargs)
    with torch.no_grad():
        for i, p in enumerate(ours.parameters()):
            p.copy_(_randn(p.shape, seed=200 + i, dtype=dtype, scale=0.5, shift=1.0 - i))
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


@pytest.mark.parametrize(("config", "dtype"), LN_CONFIG_DTYPES, ids=_config_ids(LN_CONFIG_DTYPES))
@pytest.mark.parametrize(("shape", "normalized_shape"), LN_CASES)
def test_layernorm_matches_torch_with_gradients(shape, normalized_shape, config, dtype):
    ours, theirs = _ln_pair(normalized_shape, dtype, **config)
    assert ours.normalized_shape == theirs.normalized_shape
    _assert_same_state(ours, theirs)
    upstream = _randn(shape, seed=1, dtype=dtype, shift=0.0)
    results = []
    for module in (ours, theirs):
        x = _randn(shape, seed=0, dtype=dtype).requires_grad_()
        out = module(x)
        (out * upstream).sum().backward()
        results.append([out, x.grad] + [p.grad for p in module.parameters()])
    assert len(results[0]) == len(results[1])
    for got, expected in zip(*results, strict=True):
        assert got.dtype == dtype
        torch.testing.assert_close(got, expected)


def test_layernorm_over_a_single_value_outputs_the_bias_and_no_gradient():
    # One value per sample: x - mean is exactly 0. PyTorch's float32 kernel returns rounding noise of about
    # 1e-4 as the input's gradient here; ours returns the exact zero.
    ours, theirs = _ln_pair(1, torch.float32)
    x = _randn((2, 3, 1), seed=0, dtype=torch.float32).requires_grad_()
    out = ours(x)
    torch.testing.assert_close(out, theirs(x))
    torch.testing.assert_close(out, ours.bias.expand_as(out))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize(("shape", "normalized_shape"), [((3, 4), 4), ((2, 3, 4), (3, 4))])
def test_layer_norm_gradcheck_in_float64(shape, normalized_shape):
    x = _randn(shape, seed=0).requires_grad_()
    trailing = shape[-1:] if isinstance(normalized_shape, int) else normalized_shape
    weight = _randn(trailing, seed=1).requires_grad_()
    bias = _randn(trailing, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: layer_norm(x, normalized_shape, w, b), (x, weight, bias))


@settings(max_examples=25)
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    trailing=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_layer_norm_matches_torch_on_random_shapes(lead, trailing, seed):
    x = _randn((*lead, *trailing), seed=seed)
    torch.testing.assert_close(layer_norm(x, trailing), F.layer_norm(x, trailing))


@pytest.mark.parametrize("shape", [(1, 8), (1, 1, 8), (8,)])
def test_layernorm_handles_a_batch_of_one_in_both_modes(shape):
    ours, theirs = _ln_pair(8, torch.float32)
    x = _randn(shape, seed=3, dtype=torch.float32)
    torch.testing.assert_close(ours(x), theirs(x))
    ours.eval()
    torch.testing.assert_close(ours(x), theirs(x))


def test_layernorm_state_dict_loads_both_ways_and_repr():
    ours, theirs = LayerNorm((3, 4)), nn.LayerNorm((3, 4))
    with torch.no_grad():
        theirs.weight.add_(1.0)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    _assert_same_state(ours, theirs)
    assert repr(ours) == "LayerNorm((3, 4), eps=1e-05, elementwise_affine=True)"
    assert LayerNorm(3, elementwise_affine=False).weight is None and LayerNorm(3, bias=False).bias is None


def test_layernorm_over_tokens_keeps_tokens_apart():
    x = _randn((2, 4, 8), seed=0, dtype=torch.float32)
    changed = x.clone()
    changed[:, 3] += 5.0
    right, wrong = LayerNorm(8), LayerNorm((4, 8))
    torch.testing.assert_close(right(x)[:, :3], right(changed)[:, :3])
    assert not torch.allclose(wrong(x)[:, :3], wrong(changed)[:, :3])


def test_normalisation_stops_the_drift_and_plain_networks_drift():
    torch.manual_seed(123)
    plain_small, plain_large = activation_stds(gain=0.7), activation_stds(gain=1.4)
    assert len(plain_small) == 20
    assert plain_small[-1] / plain_small[0] < 1e-2 and plain_large[-1] / plain_large[0] > 1e2
    for norm in ("batch", "layer"):
        for gain in (0.7, 1.4):
            stds = activation_stds(gain=gain, norm=norm)
            assert 0.5 < stds[-1] / stds[0] < 2.0, (norm, gain)
    torch.manual_seed(456)  # a private generator: the global seed makes no difference
    assert activation_stds(gain=0.7) == plain_small


def test_activation_stds_refuses_bad_arguments():
    with pytest.raises(ValueError, match="norm must be None, 'batch' or 'layer', got 'group'"):
        activation_stds(norm="group")
    with pytest.raises(ValueError, match="depth must be a positive int, got 0"):
        activation_stds(depth=0)
    with pytest.raises(ValueError, match="batch_size of at least 2"):
        activation_stds(batch_size=1, norm="batch")


def test_plot_activation_distributions_draws_two_panels():
    fig = plot_activation_distributions(depth=4, width=8, batch_size=16)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 6


def test_group_norm_solution_passes_and_extremes_match_layer_and_instance_norm():
    assert check_group_norm(group_norm) is None
    x = _randn((2, 6, 3, 3), seed=0)
    torch.testing.assert_close(group_norm(x, 1), F.layer_norm(x, x.shape[1:]))
    torch.testing.assert_close(group_norm(x, 6), F.instance_norm(x))


def _group_norm_unbiased(input, num_groups, weight=None, bias=None, eps=1e-5):
    grouped = input.reshape(input.shape[0], num_groups, -1)
    mean, var = grouped.mean(-1, keepdim=True), grouped.var(-1, keepdim=True)
    out = ((grouped - mean) / torch.sqrt(var + eps)).reshape(input.shape)
    shape = (1, -1) + (1,) * (input.dim() - 2)
    out = out * weight.view(shape) if weight is not None else out
    return out + bias.view(shape) if bias is not None else out


def _group_norm_interleaved(input, num_groups, weight=None, bias=None, eps=1e-5):
    # Channels c, c + G, c + 2G, ... in one group: the wrong grouping.
    N, C = input.shape[:2]
    swapped = input.reshape(N, C // num_groups, num_groups, *input.shape[2:]).transpose(1, 2).reshape(input.shape)
    out = F.group_norm(swapped, num_groups, eps=eps)
    out = out.reshape(N, num_groups, C // num_groups, *input.shape[2:]).transpose(1, 2).reshape(input.shape)
    shape = (1, -1) + (1,) * (input.dim() - 2)
    out = out * weight.view(shape) if weight is not None else out
    return out + bias.view(shape) if bias is not None else out


def _group_norm_without_check(input, num_groups, weight=None, bias=None, eps=1e-5):
    if input.shape[1] % num_groups:
        return input
    return F.group_norm(input, num_groups, weight, bias, eps)


@pytest.mark.parametrize("wrong", [_group_norm_unbiased, _group_norm_interleaved, _group_norm_without_check])
def test_check_group_norm_rejects_plausible_mistakes(wrong):
    with pytest.raises(AssertionError):
        check_group_norm(wrong)


def test_fold_solution_passes_and_works_with_our_batchnorm():
    assert check_fold_batchnorm_into_linear(fold_batchnorm_into_linear) is None
    linear, bn = nn.Linear(4, 3), BatchNorm1d(3, eps=0.1)
    for step in range(3):
        bn(linear(_randn((8, 4), seed=step, dtype=torch.float32)))
    bn.eval()
    x = torch.randn(5, 4)
    torch.testing.assert_close(fold_batchnorm_into_linear(linear, bn)(x), bn(linear(x)))


def _fold_without_eps(linear, bn):
    fused = nn.Linear(linear.in_features, linear.out_features)
    with torch.no_grad():
        s = bn.running_var.rsqrt() * (bn.weight if bn.weight is not None else 1.0)
        b = linear.bias if linear.bias is not None else 0.0
        fused.weight.copy_(linear.weight * s[:, None])
        fused.bias.copy_((b - bn.running_mean) * s + (bn.bias if bn.bias is not None else 0.0))
    if bn.num_features != linear.out_features:
        raise ValueError("mismatch")
    return fused


def _fold_in_place(linear, bn):
    if bn.running_mean is None or bn.num_features != linear.out_features:
        raise ValueError("cannot fold")
    fused = fold_batchnorm_into_linear(linear, bn)
    with torch.no_grad():
        linear.weight.copy_(fused.weight)
    return fused


def _fold_forgetting_the_mean(linear, bn):
    fused = fold_batchnorm_into_linear(linear, bn)
    with torch.no_grad():
        fused.bias.add_(bn.running_mean * bn.running_var.add(bn.eps).rsqrt() * (bn.weight if bn.weight is not None else 1.0))
    return fused


@pytest.mark.parametrize("wrong", [_fold_without_eps, _fold_in_place, _fold_forgetting_the_mean])
def test_check_fold_rejects_plausible_mistakes(wrong):
    with pytest.raises(AssertionError):
        check_fold_batchnorm_into_linear(wrong)


def test_check_fold_leaves_the_global_seed_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    check_fold_batchnorm_into_linear(fold_batchnorm_into_linear)
    assert torch.equal(torch.rand(3), expected)


# Half precision. PyTorch and ours compute float16 and bfloat16 in float32 and round once at the end, so
# the two may round a value to neighbouring numbers of the output's dtype and never further: the tolerance
# is one spacing, eps, relative to the value or to 1 near zero (|ours - theirs| <= eps * (1 + |theirs|)).
HALVES = [torch.float16, torch.bfloat16]
# From tiny to past float16's overflow of the variance (a spread above 256), and bfloat16's wide range.
HALF_SCALES = {torch.float16: [1e-4, 1.0, 300.0, 2000.0], torch.bfloat16: [1e-4, 1.0, 300.0, 1e18]}
HALF_CASES = [(dtype, scale) for dtype in HALVES for scale in HALF_SCALES[dtype]]
HALF_IDS = [f"{str(d)[6:]}-{s:g}" for d, s in HALF_CASES]


def _one_rounding(dtype, roundings=1):
    eps = torch.finfo(dtype).eps
    return {"rtol": roundings * eps, "atol": roundings * eps}


@pytest.mark.parametrize("param_dtype", ["same", torch.float32])
@pytest.mark.parametrize(("dtype", "scale"), HALF_CASES, ids=HALF_IDS)
def test_layer_norm_in_half_precision_is_one_rounding_from_torch(dtype, scale, param_dtype):
    param_dtype = dtype if param_dtype == "same" else param_dtype
    for shift in (0.0, 4.0 * scale):
        x = _randn((4, 6, 32), seed=1, scale=scale, shift=shift).to(dtype)
        weight, bias = _randn(32, seed=2, dtype=param_dtype, scale=0.5, shift=1.0), _randn(32, seed=3, dtype=param_dtype)
        got, expected = layer_norm(x, 32, weight, bias), F.layer_norm(x, (32,), weight, bias)
        assert got.dtype == expected.dtype == dtype
        torch.testing.assert_close(got, expected, **_one_rounding(dtype))
    ours, theirs = _ln_pair((6, 32), param_dtype)
    torch.testing.assert_close(ours(x), theirs(x), **_one_rounding(dtype))


@pytest.mark.parametrize(("ours_cls", "theirs_cls", "shape"), [BN_CASES[1], BN_CASES[5]], ids=[BN_IDS[1], BN_IDS[5]])
@pytest.mark.parametrize(("dtype", "scale"), HALF_CASES, ids=HALF_IDS)
def test_batchnorm_on_half_inputs_with_float32_parameters_is_one_rounding_from_torch(ours_cls, theirs_cls, shape, dtype, scale):
    # Autocast-style: float32 parameters and buffers, half activations. The running statistics are float32.
    ours, theirs = _bn_pair(ours_cls, theirs_cls, shape[1], torch.float32)
    for step in range(3):
        x = _randn(shape, seed=step, scale=scale, shift=step * scale).to(dtype)
        got, expected = ours(x), theirs(x)
        assert got.dtype == expected.dtype == dtype
        torch.testing.assert_close(got, expected, **_one_rounding(dtype))
        _assert_same_state(ours, theirs)
    assert torch.isfinite(ours.running_var).all()
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), **_one_rounding(dtype))


@pytest.mark.parametrize(("dtype", "scale"), HALF_CASES, ids=HALF_IDS)
def test_batchnorm_with_half_parameters_matches_torch_to_a_few_roundings(dtype, scale):
    # PyTorch's CPU kernel rounds the batch mean and 1/sigma to the parameters' half dtype; ours keeps them
    # in float32 (the lesson's "Where it differs"). On centred inputs that costs at most three roundings in
    # training; evaluation agrees to one, and the running statistics (inf where the variance overflows
    # float16) to two, at the data's scale.
    ours, theirs = _bn_pair(BatchNorm1d, nn.BatchNorm1d, 3, dtype)
    for step in range(3):
        x = _randn((16, 3, 8), seed=step, scale=scale, shift=0.0).to(dtype)
        got, expected = ours(x), theirs(x)
        assert got.dtype == expected.dtype == dtype
        torch.testing.assert_close(got, expected, **_one_rounding(dtype, roundings=3))
        for name in ("running_mean", "running_var"):
            eps = torch.finfo(dtype).eps
            torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), rtol=2 * eps, atol=eps * scale)
    assert bool(torch.isinf(ours.running_var).all()) == (dtype == torch.float16 and scale >= 2000)
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), **_one_rounding(dtype))


@pytest.mark.parametrize("dtype", HALVES)
def test_batchnorm_with_half_parameters_stays_one_rounding_from_exact_where_torch_drifts(dtype):
    # The pinned difference: a mean of 100 standard deviations. PyTorch's rounded batch mean moves every
    # output; ours is the float64 answer rounded once.
    x = _randn((16, 3, 32), seed=0, scale=1.0, shift=100.0).to(dtype)
    ours = batch_norm(x, None, None, training=True)
    theirs = F.batch_norm(x, None, None, training=True)
    exact = batch_norm(x.double(), None, None, training=True)
    torch.testing.assert_close(ours.double(), exact, **_one_rounding(dtype))
    ours_error, theirs_error = ((t.double() - exact).abs().max().item() for t in (ours, theirs))
    assert theirs_error > 2 * ours_error


@pytest.mark.parametrize("dtype", HALVES)
def test_a_float16_spread_above_256_is_not_zeroed(dtype):
    # The variance of a spread of 1000 is 1e6, past float16's 65504: in float16 it would be inf, and the
    # row would be divided into zeros. Statistics in float32 keep it.
    x = _randn((8, 64), seed=0, scale=1000.0, shift=0.0).to(dtype)
    y = layer_norm(x, 64)
    torch.testing.assert_close(y.float().std(dim=-1, correction=0), torch.ones(8), atol=1e-2, rtol=0)
    bn = BatchNorm1d(64, dtype=dtype)
    assert bn(x).float().std().item() > 0.9 and torch.isfinite(bn.running_mean).all()


def test_mixed_dtypes_pytorch_refuses_are_taken_and_keep_the_inputs_dtype():
    # The pinned difference: PyTorch's CPU kernels take float32 parameters only for a half input.
    x, weight = _randn((3, 8), seed=0), torch.ones(8)
    with pytest.raises(RuntimeError, match="mixed dtype"):
        F.layer_norm(x, (8,), weight)
    got = layer_norm(x, 8, weight)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, F.layer_norm(x, (8,), weight.double()))
    with pytest.raises(RuntimeError, match="mixed dtype"):
        F.batch_norm(x, torch.zeros(8), torch.ones(8), training=True)
    assert batch_norm(x, torch.zeros(8), torch.ones(8), training=True).dtype == torch.float64


def _strided_variants(x):
    """The same values as contiguous, transposed (non-contiguous) and expanded (stride 0) tensors."""
    transposed = x.transpose(0, 1).contiguous().transpose(0, 1)
    expanded = x[:1].expand_as(x) if x.shape[0] else x
    return {"contiguous": x, "transposed": transposed, "expanded": expanded}


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_norm_on_strided_expanded_empty_and_extreme_inputs(dtype, scale):
    x = _randn((5, 4, 8), seed=0, dtype=dtype, scale=scale, shift=scale)
    weight, bias = _randn(8, seed=1, dtype=dtype), _randn(8, seed=2, dtype=dtype)
    for name, t in _strided_variants(x).items():
        got, expected = layer_norm(t, 8, weight, bias), F.layer_norm(t, (8,), weight, bias)
        torch.testing.assert_close(got, expected, msg=lambda m, name=name: f"{name}: {m}")
    for empty, normalized_shape in (((0, 8), (8,)), ((3, 0), (0,)), ((2, 0, 4), (0, 4))):
        t = torch.randn(empty, dtype=dtype)
        assert layer_norm(t, normalized_shape).shape == F.layer_norm(t, normalized_shape).shape == empty
    ours, theirs = LayerNorm(0), nn.LayerNorm(0)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert ours(torch.randn(3, 0)).shape == theirs(torch.randn(3, 0)).shape == (3, 0)


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_batchnorm_on_strided_expanded_channels_last_and_empty_inputs(scale):
    x = _randn((6, 3, 4, 5), seed=0, scale=scale, shift=scale)
    variants = {**_strided_variants(x), "channels_last": x.to(memory_format=torch.channels_last)}
    for name, t in variants.items():
        ours, theirs = _bn_pair(BatchNorm2d, nn.BatchNorm2d, 3, torch.float64)
        for _ in range(2):
            torch.testing.assert_close(ours(t), theirs(t), msg=lambda m, name=name: f"{name}: {m}")
        _assert_same_state(ours, theirs)
    for empty in ((0, 3), (0, 3, 4), (2, 3, 0)):
        ours, theirs = BatchNorm1d(3), nn.BatchNorm1d(3)
        t = torch.randn(empty)
        assert ours(t).shape == theirs(t).shape == empty
        _assert_same_state(ours, theirs)


@pytest.mark.parametrize("dtype", HALVES + [torch.float32])
def test_group_norm_in_every_dtype(dtype):
    x = _randn((2, 6, 5), seed=0, scale=300.0).to(dtype)
    weight, bias = _randn(6, seed=1, dtype=dtype), _randn(6, seed=2, dtype=dtype)
    got, expected = group_norm(x, 3, weight, bias), F.group_norm(x, 3, weight, bias)
    assert got.dtype == expected.dtype == dtype
    tolerance = _one_rounding(dtype) if dtype in HALVES else {}
    torch.testing.assert_close(got, expected, **tolerance)
