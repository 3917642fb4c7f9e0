"""The proof that the lesson's RMSNorm is PyTorch's: outputs, gradients, dtypes, eps, state_dict and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.nn.rmsnorm import (
    RMSNorm,
    check_qk_norm,
    check_rms_norm_with_offset_weight,
    compare_norm_speed,
    plot_rmsnorm_vs_layernorm,
    qk_norm,
    rms_norm,
    rms_norm_with_offset_weight,
)

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
# (input shape, normalized_shape): one to three normalised dims, with 0 to 3 leading dims, size-1 dims,
# and an empty batch.
CASES = [
    ((8,), (8,)),
    ((3, 8), 8),
    ((2, 5, 16), (16,)),
    ((2, 5, 16), (5, 16)),
    ((2, 3, 4, 6), (3, 4, 6)),
    ((4, 1), (1,)),
    ((3, 1, 7), (1, 7)),
    ((0, 4), (4,)),
    ((2, 3, 33), (33,)),
]
EPS = [None, 1e-5, 0.1]
HALF = (torch.float16, torch.bfloat16)


def _torch_rms_norm_computes_halves_in_float32() -> bool:
    """Whether this PyTorch's F.rms_norm works in float32 for half inputs, as the lesson's does.

    Older releases (2.4 among them) differ for half inputs: the mean of squares of large float16 values
    overflows there, the default eps is the half type's own, and mixed weights promote the result.
    """
    h = torch.tensor([[300.0, -200.0, 1.0, 2.0]], dtype=torch.float16)  # 300**2 overflows float16
    return torch.allclose(F.rms_norm(h, (4,)).float(), F.rms_norm(h.float(), (4,)), rtol=1e-3, atol=1e-3)


TORCH_IN_FLOAT32 = _torch_rms_norm_computes_halves_in_float32()
needs_float32_torch = pytest.mark.skipif(
    not TORCH_IN_FLOAT32, reason="this PyTorch computes F.rms_norm of half inputs in half precision"
)
# Against a PyTorch that computes in bfloat16 itself, two roundings apart from ours instead of one.
OLD_TORCH_BFLOAT16 = {"rtol": 4e-2, "atol": 1e-2}


def _input(shape, dtype=torch.float32, seed=0, scale=1.0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
    return x.requires_grad_(requires_grad)


def _as_tuple(normalized_shape):
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def _weight(normalized_shape, dtype=torch.float32, seed=1, requires_grad=False):
    return _input(_as_tuple(normalized_shape), dtype, seed).requires_grad_(requires_grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize(("shape", "normalized_shape"), CASES)
@pytest.mark.parametrize("use_weight", [True, False])
def test_rms_norm_matches_torch_outputs_and_gradients(shape, normalized_shape, eps, dtype, use_weight):
    if dtype in HALF and eps is None and not TORCH_IN_FLOAT32:
        pytest.skip("this PyTorch's default eps for half inputs is the half type's own, not float32's")
    x = _input(shape, dtype, requires_grad=True)
    weight = _weight(normalized_shape, dtype, requires_grad=True) if use_weight else None
    ours = rms_norm(x, normalized_shape, weight, eps)
    theirs = F.rms_norm(x, _as_tuple(normalized_shape), weight, eps)
    assert ours.shape == theirs.shape == x.shape and ours.dtype == theirs.dtype == dtype
    tolerance = OLD_TORCH_BFLOAT16 if dtype in HALF and not TORCH_IN_FLOAT32 else {}
    torch.testing.assert_close(ours, theirs, **tolerance)
    if x.numel() == 0:
        return
    grad_output = _input(shape, dtype, seed=2)
    inputs = (x, weight) if use_weight else (x,)
    grads_ours = torch.autograd.grad(ours, inputs, grad_output)
    grads_theirs = torch.autograd.grad(theirs, inputs, grad_output)
    for ours_grad, theirs_grad in zip(grads_ours, grads_theirs, strict=True):
        assert ours_grad.dtype == theirs_grad.dtype
        torch.testing.assert_close(ours_grad, theirs_grad, **tolerance)


@pytest.mark.parametrize(("shape", "normalized_shape"), [c for c in CASES if 0 not in c[0]])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_gradcheck_in_float64(shape, normalized_shape, eps):
    x = _input(shape, torch.float64, requires_grad=True)
    weight = _weight(normalized_shape, torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: rms_norm(x, normalized_shape, w, eps), (x, weight))
    # The second derivative through a random projection (fast_mode): the full Jacobian of the gradient is
    # (numel)^2 entries, and the projection catches the same mistakes at a fraction of the cost.
    assert torch.autograd.gradgradcheck(lambda x, w: rms_norm(x, normalized_shape, w, eps), (x, weight), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_default_eps_is_the_computation_dtypes_epsilon_as_in_torch(dtype):
    # Mean square 1e-14: any eps of float32's size or larger changes the output, so the default shows.
    x = _input((4, 8), dtype, scale=1e-7)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    by_hand = rms_norm(x, 8, eps=torch.finfo(compute).eps)
    torch.testing.assert_close(rms_norm(x, 8), by_hand, rtol=0, atol=0)
    if dtype not in HALF or TORCH_IN_FLOAT32:
        torch.testing.assert_close(rms_norm(x, 8), F.rms_norm(x, (8,)))
    if dtype != torch.float64:
        assert not torch.allclose(rms_norm(x.double(), 8), rms_norm(x.double(), 8, eps=torch.finfo(compute).eps))


def test_bfloat16_statistics_are_float32_and_rounded_once():
    x, weight = _input((6, 256), torch.bfloat16, scale=3.0), _weight(256, torch.bfloat16)
    ours = rms_norm(x, 256, weight)
    assert torch.equal(ours, rms_norm(x.float(), 256, weight.float()).bfloat16())
    # One rounding of a float64-exact answer: within half a bfloat16 spacing, 2**-9 relative.
    exact = rms_norm(x.double(), 256, weight.double(), eps=torch.finfo(torch.float32).eps)
    assert torch.allclose(ours.double(), exact, rtol=2**-8, atol=0)
    if TORCH_IN_FLOAT32:
        torch.testing.assert_close(ours, F.rms_norm(x, (256,), weight))


@needs_float32_torch
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
@pytest.mark.parametrize(("x_dtype", "w_dtype"), [(torch.bfloat16, torch.float32), (torch.float32, torch.float64),
                                                  (torch.float64, torch.float32), (torch.float16, torch.float32)])
def test_mixed_dtypes_keep_the_inputs_dtype_like_torch(x_dtype, w_dtype):
    x, weight = _input((3, 16), x_dtype), _weight(16, w_dtype)
    ours, theirs = rms_norm(x, 16, weight), F.rms_norm(x, (16,), weight)
    assert ours.dtype == theirs.dtype == x_dtype
    torch.testing.assert_close(ours, theirs)


def test_float16_large_values_do_not_overflow():
    h = torch.tensor([[300.0, -200.0, 1.0, 2.0], [1e4, 1e4, -1e4, 0.0]], dtype=torch.float16)
    assert h.pow(2).isinf().any()
    out = rms_norm(h, 4)
    assert out.isfinite().all()
    if TORCH_IN_FLOAT32:
        torch.testing.assert_close(out, F.rms_norm(h, (4,)))


@needs_float32_torch
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_every_dtype_on_strided_expanded_and_extreme_inputs(dtype):
    # Transposed (non-contiguous) and expanded (stride 0) inputs, magnitudes from tiny to large (inside
    # float16's range), float32 weights for the half dtypes as under autocast. Half outputs: one rounding.
    tolerance = {"rtol": torch.finfo(dtype).eps, "atol": torch.finfo(dtype).eps} if dtype in HALF else {}
    big = 3e3 if dtype == torch.float16 else 1e6
    for scale in (1e-3, 1.0, big):
        x = _input((16, 6), dtype, seed=3, scale=scale)
        for name, t in (("transposed", x.T.contiguous().T), ("expanded", x[:1].expand(16, 6)), ("contiguous", x)):
            for weight in (None, _weight(6, torch.float32 if dtype in HALF else dtype)):
                ours, theirs = rms_norm(t, 6, weight, 1e-6), F.rms_norm(t, (6,), weight, 1e-6)
                assert ours.dtype == theirs.dtype == dtype
                torch.testing.assert_close(ours, theirs, **tolerance, msg=lambda m, n=name, s=scale: f"{n}, {s:g}: {m}")


def test_edge_values():
    # A zero vector gives zeros, not NaN; one feature gives its sign; an empty normalised dim stays empty.
    assert torch.equal(rms_norm(torch.zeros(2, 5), 5), torch.zeros(2, 5))
    single = torch.tensor([[3.0], [-0.5], [0.0]])
    torch.testing.assert_close(rms_norm(single, 1, eps=0.0)[:2], torch.tensor([[1.0], [-1.0]]))
    assert rms_norm(torch.randn(2, 0), 0).shape == F.rms_norm(torch.randn(2, 0), (0,)).shape == (2, 0)
    x = _input((4, 8))
    torch.testing.assert_close(rms_norm(x, torch.Size([8])), rms_norm(x, [8]))


# The module


@pytest.mark.parametrize("normalized_shape", [4, (4,), (3, 4), [2, 3, 4]])
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("elementwise_affine", [True, False])
def test_module_matches_nn_rmsnorm(normalized_shape, eps, elementwise_affine):
    ours = RMSNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine)
    theirs = nn.RMSNorm(normalized_shape, eps=eps, elementwise_affine=elementwise_affine)
    assert repr(ours) == repr(theirs)
    assert ours.normalized_shape == theirs.normalized_shape and ours.eps == theirs.eps
    assert list(ours.state_dict()) == list(theirs.state_dict())
    shape = (2, 5, *_as_tuple(normalized_shape))
    x = _input(shape, requires_grad=True)
    if elementwise_affine:
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.weight, torch.ones_like(ours.weight))
        with torch.no_grad():
            theirs.weight.copy_(_weight(normalized_shape))
        ours.load_state_dict(theirs.state_dict())
    else:
        assert ours.weight is None and theirs.weight is None
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs)
    grad_output = _input(shape, seed=3)
    params_ours = [x, *ours.parameters()]
    params_theirs = [x, *theirs.parameters()]
    for a, b in zip(torch.autograd.grad(y_ours, params_ours, grad_output),
                    torch.autograd.grad(y_theirs, params_theirs, grad_output), strict=True):
        torch.testing.assert_close(a, b)


def test_state_dict_loads_both_ways():
    ours, theirs = RMSNorm((3, 8), eps=1e-5), nn.RMSNorm((3, 8), eps=1e-5)
    with torch.no_grad():
        ours.weight.copy_(_weight((3, 8)))
    assert theirs.load_state_dict(ours.state_dict()) is not None
    assert torch.equal(theirs.weight, ours.weight)
    with torch.no_grad():
        theirs.weight.mul_(2.0)
    ours.load_state_dict(theirs.state_dict())
    assert torch.equal(theirs.weight, ours.weight)
    x = _input((4, 3, 8))
    torch.testing.assert_close(ours(x), theirs(x))


def test_missing_weight_is_reported_when_loading():
    checkpoint = nn.RMSNorm(8).state_dict()
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "weight"'):
        RMSNorm(8, elementwise_affine=False).load_state_dict(checkpoint)
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "weight"'):
        RMSNorm(8).load_state_dict({})


def test_module_device_dtype_and_reset():
    norm = RMSNorm(6, dtype=torch.float64, device="cpu")
    assert norm.weight.dtype == torch.float64 and norm.weight.device.type == "cpu"
    assert nn.RMSNorm(6, dtype=torch.float64).weight.dtype == torch.float64
    with torch.no_grad():
        norm.weight.fill_(3.0)
    norm.reset_parameters()
    assert torch.equal(norm.weight, torch.ones(6, dtype=torch.float64))
    RMSNorm(6, elementwise_affine=False).reset_parameters()  # nothing to reset, and no error
    assert [name for name, _ in norm.named_parameters()] == ["weight"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch_on_cuda(dtype):
    x = _input((4, 7, 64), dtype).cuda()
    weight = _weight(64, dtype).cuda()
    torch.testing.assert_close(rms_norm(x, 64, weight), F.rms_norm(x, (64,), weight))
    module = RMSNorm(64, device="cuda", dtype=dtype)
    assert module.weight.device.type == "cuda"
    torch.testing.assert_close(module(x), nn.RMSNorm(64, device="cuda", dtype=dtype)(x))


# Errors


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.randn(2, 4), (8,)), {}, ValueError, r"trailing dims must equal normalized_shape=\(8,\), got input shape \(2, 4\)"),
        ((torch.randn(4), (2, 4)), {}, ValueError, r"normalized_shape=\(2, 4\), got input shape \(4,\)"),
        ((torch.randn(2, 4), ()), {}, ValueError, r"normalized_shape must name at least one dimension"),
        ((torch.randn(2, 4), (-4,)), {}, ValueError, r"non-negative ints, got \(-4,\)"),
        ((torch.randn(2, 4), 4.0), {}, TypeError, r"normalized_shape must be an int or a sequence of ints, got 4.0"),
        ((torch.randn(2, 4), "4"), {}, TypeError, r"normalized_shape must be an int or a sequence"),
        ((torch.randn(2, 4), (True,)), {}, ValueError, r"non-negative ints"),
        ((torch.arange(4), 4), {}, TypeError, r"input must be a floating-point tensor, got dtype torch.int64"),
        (([1.0, 2.0], 2), {}, TypeError, r"input must be a torch.Tensor, got list"),
        ((torch.randn(2, 4), 4), {"weight": torch.ones(3)}, ValueError, r"weight must have shape normalized_shape=\(4,\), got \(3,\)"),
        ((torch.randn(2, 4), 4), {"weight": torch.ones(4, dtype=torch.long)}, TypeError, r"weight must be a floating-point"),
        ((torch.randn(2, 4), 4), {"eps": -1e-6}, ValueError, r"eps must be non-negative, got -1e-06"),
        ((torch.randn(2, 4), 4), {"eps": "1e-6"}, TypeError, r"eps must be a number or None, got '1e-6'"),
        ((torch.randn(2, 4), 4), {"eps": float("nan")}, ValueError, r"eps must be non-negative, got nan"),
    ],
)
def test_rms_norm_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        rms_norm(*args, **kwargs)


def test_module_errors():
    with pytest.raises(TypeError, match="elementwise_affine must be a bool, got 1"):
        RMSNorm(4, elementwise_affine=1)
    with pytest.raises(ValueError, match="eps must be non-negative"):
        RMSNorm(4, eps=-0.1)
    with pytest.raises(ValueError, match=r"got input shape \(3, 5\)"):
        RMSNorm(4)(torch.randn(3, 5))


# What the lesson claims


@settings(max_examples=25)
@given(c=st.floats(0.05, 1e3), seed=st.integers(0, 2**16))
def test_scale_invariance_and_sign(c, seed):
    x = _input((3, 16), torch.float64, seed=seed)
    y = rms_norm(x, 16)
    torch.testing.assert_close(rms_norm(c * x, 16), y)
    torch.testing.assert_close(rms_norm(-c * x, 16), -y)


@settings(max_examples=25)
@given(shift=st.floats(0.5, 20.0), seed=st.integers(0, 2**16))
def test_layer_norm_also_removes_a_shift_and_rms_norm_does_not(shift, seed):
    x = _input((3, 16), torch.float64, seed=seed)
    torch.testing.assert_close(F.layer_norm(x + shift, (16,)), F.layer_norm(x, (16,)))
    assert not torch.allclose(rms_norm(x + shift, 16), rms_norm(x, 16), atol=1e-3)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), eps=st.sampled_from([1e-6, 1e-5, 0.1]))
def test_rms_norm_is_layer_norm_without_bias_on_centred_inputs(seed, eps):
    x = _input((4, 3, 8), torch.float64, seed=seed)
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    weight = _weight((3, 8), torch.float64, seed=seed + 1)
    torch.testing.assert_close(rms_norm(centred, (3, 8), weight, eps), F.layer_norm(centred, (3, 8), weight, None, eps))
    assert not torch.allclose(rms_norm(x + 1.0, (3, 8), weight, eps), F.layer_norm(x + 1.0, (3, 8), weight, None, eps))


def test_trap_eps_outside_the_root_and_tokens_normalised_apart():
    eps = 1e-6
    small = torch.full((1, 8), 1e-3)
    hammer = small / (small.pow(2).mean(-1, keepdim=True).sqrt() + eps)
    assert not torch.allclose(hammer, F.rms_norm(small, (8,), eps=eps))
    torch.testing.assert_close(rms_norm(small, 8, eps=eps), F.rms_norm(small, (8,), eps=eps))
    tokens = _input((2, 6, 8))
    changed = tokens.clone()
    changed[:, -1] += 5.0
    assert torch.equal(rms_norm(tokens, 8)[:, :-1], rms_norm(changed, 8)[:, :-1])


def test_compare_norm_speed_returns_positive_timings():
    for backward in (True, False):
        timings = compare_norm_speed(shape=(3, 32), backward=backward, repeat=1)
        assert list(timings) == ["RMSNorm (torch)", "LayerNorm (torch)", "RMSNorm (ours)", "LayerNorm (ours)"]
        assert all(isinstance(t, float) and t > 0 for t in timings.values())
    with pytest.raises(ValueError, match=r"shape must be a non-empty sequence of positive ints, got \(\)"):
        compare_norm_speed(shape=())
    with pytest.raises(ValueError, match="repeat must be a positive int, got 0"):
        compare_norm_speed(shape=(2, 4), repeat=0)


def test_plot_draws_three_panels():
    fig = plot_rmsnorm_vs_layernorm()
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert [len(ax.lines) for ax in fig.axes] == [3, 3, 3]
    with pytest.raises(ValueError, match="num_features must be an int of at least 2, got 1"):
        plot_rmsnorm_vs_layernorm(num_features=1)
    with pytest.raises(ValueError, match="shifts must hold at least one constant"):
        plot_rmsnorm_vs_layernorm(shifts=())


# Challenges


def test_offset_weight_solution_passes_and_wrong_attempts_fail():
    assert check_rms_norm_with_offset_weight(rms_norm_with_offset_weight) is None
    x = _input((2, 6))
    torch.testing.assert_close(rms_norm_with_offset_weight(x, torch.zeros(6), 1e-6), F.rms_norm(x, (6,), eps=1e-6))

    def scales_by_weight(x, weight, eps=1e-6):
        return rms_norm(x, x.size(-1), weight, eps)

    def eps_outside(x, weight, eps=1e-6):
        xf = x.float()
        return (xf / (xf.pow(2).mean(-1, keepdim=True).sqrt() + eps) * (1 + weight)).to(x.dtype)

    def returns_float32(x, weight, eps=1e-6):
        return rms_norm(x.float(), x.size(-1), 1 + weight.float(), eps)

    for wrong in (scales_by_weight, eps_outside, returns_float32):
        with pytest.raises(AssertionError):
            check_rms_norm_with_offset_weight(wrong)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        rms_norm_with_offset_weight(x, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"weight must have shape normalized_shape=\(6,\)"):
        rms_norm_with_offset_weight(x, torch.zeros(5))


def test_qk_norm_solution_passes_and_wrong_attempts_fail():
    assert check_qk_norm(qk_norm) is None

    def over_heads_and_features(q, k, weight_q, weight_k, eps=1e-6):
        def norm(t, w):
            flat = t.transpose(1, 2)  # (B, T, h, d): normalise each position over all its heads at once
            out = flat * torch.rsqrt(flat.pow(2).mean(dim=(-2, -1), keepdim=True) + eps) * w
            return out.transpose(1, 2)

        return norm(q, weight_q), norm(k, weight_k)

    def swapped_weights(q, k, weight_q, weight_k, eps=1e-6):
        return qk_norm(q, k, weight_k, weight_q, eps)

    def over_the_sequence(q, k, weight_q, weight_k, eps=1e-6):
        def norm(t, w):
            return t * torch.rsqrt(t.pow(2).mean(dim=-2, keepdim=True) + eps) * w

        return norm(q, weight_q), norm(k, weight_k)

    for wrong in (over_heads_and_features, swapped_weights, over_the_sequence):
        with pytest.raises(AssertionError):
            check_qk_norm(wrong)
    with pytest.raises(ValueError, match=r"q must be a 4-D tensor \(B, heads, length, d_head\), got shape \(2, 8\)"):
        qk_norm(torch.randn(2, 8), torch.randn(1, 1, 2, 8), torch.ones(8), torch.ones(8))
    with pytest.raises(ValueError, match="q and k must share d_head, got 8 and 4"):
        qk_norm(torch.randn(1, 1, 2, 8), torch.randn(1, 1, 2, 4), torch.ones(8), torch.ones(4))


def test_only_a_one_pass_layernorm_cancels():
    # The lesson's correction: RMSNorm's numerical edge is over a one-pass LayerNorm (mean(x^2) - mean(x)^2),
    # not over a two-pass one or PyTorch's (Welford) kernel; both of those keep the variance of a row whose
    # mean is large against its spread.
    x = _input((8, 512), torch.float32, seed=4) + 1000.0
    exact = x.double().var(dim=-1, correction=0)
    one_pass = x.pow(2).mean(dim=-1) - x.mean(dim=-1).pow(2)
    two_pass = (x - x.mean(dim=-1, keepdim=True)).pow(2).mean(dim=-1)
    assert ((one_pass.double() - exact) / exact).abs().max() > 1e-2
    torch.testing.assert_close(two_pass.double(), exact, rtol=1e-5, atol=0.0)
    normalised = (x.double() - x.double().mean(dim=-1, keepdim=True)) / (exact[:, None] + 1e-5).sqrt()
    torch.testing.assert_close(F.layer_norm(x, (512,)).double(), normalised, rtol=1e-4, atol=1e-4)
