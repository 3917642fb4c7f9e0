"""The proof that the lesson's Linear is nn.Linear: same bits at birth, same outputs, gradients and state."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchenstein.nn.linear import (
    INITS,
    Linear,
    activation_stds,
    check_fuse_linears,
    check_linear_flops,
    fuse_linears,
    kaiming_uniform_bound,
    linear,
    linear_flops,
    plot_init_variance,
    split_qkv,
)
from torchenstein.tensors.metamorphosis import split_heads

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
TOLERANCES = {torch.float32: {}, torch.float64: {}, torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2}}
# Leading dims of the input: a single vector, a batch, (B, T), (B, h, T), and an empty batch.
LEADING = [(), (5,), (2, 7), (2, 3, 4), (0,), (3, 0, 2)]
FEATURES = [(1, 1), (4, 3), (3, 4), (16, 16), (33, 7)]


def _pair(in_features, out_features, seed=0, **kwargs):
    """Our layer and PyTorch's, each built right after seeding the global generator with ``seed``."""
    torch.manual_seed(seed)
    ours = Linear(in_features, out_features, **kwargs)
    torch.manual_seed(seed)
    theirs = nn.Linear(in_features, out_features, **kwargs)
    return ours, theirs


def _input(leading, in_features, dtype=torch.float32, seed=1, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*leading, in_features, generator=g, dtype=torch.float64).to(dtype)
    return x.requires_grad_(requires_grad)


# The functional form


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("leading", LEADING)
@pytest.mark.parametrize("use_bias", [True, False])
def test_linear_matches_torch_functional(leading, dtype, use_bias):
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(6, 5, generator=g).to(dtype)
    bias = torch.randn(6, generator=g).to(dtype) if use_bias else None
    x = _input(leading, 5, dtype)
    ours, theirs = linear(x, weight, bias), F.linear(x, weight, bias)
    assert ours.shape == (*leading, 6) and ours.dtype == dtype
    torch.testing.assert_close(ours, theirs, **TOLERANCES[dtype])


@settings(max_examples=25)
@given(
    leading=st.lists(st.integers(0, 4), max_size=3),
    in_features=st.integers(1, 9),
    out_features=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_linear_matches_torch_on_random_shapes(leading, in_features, out_features, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*leading, in_features, generator=g)
    weight, bias = torch.randn(out_features, in_features, generator=g), torch.randn(out_features, generator=g)
    torch.testing.assert_close(linear(x, weight, bias), F.linear(x, weight, bias))


ALL_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
# Magnitudes that stay inside float16's range after a 16-term dot product, from tiny to large.
SCALES = [1e-3, 1.0, 1e2]


def _strided(x, how):
    """The same values as a contiguous, a transposed (non-contiguous) or an expanded (stride 0) tensor."""
    if how == "transposed":
        return x.transpose(0, -2).contiguous().transpose(0, -2)
    if how == "expanded":
        return x[:1].expand_as(x)
    return x


def _operands(leading, dtype, scale, bias_shape=(6,), weight_shape=(6, 16), seed=5):
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(*leading, 16, generator=g, dtype=torch.float64)).to(dtype)
    weight = torch.randn(weight_shape, generator=g, dtype=torch.float64).to(dtype)
    bias = None if bias_shape is None else (10 * torch.randn(bias_shape, generator=g, dtype=torch.float64)).to(dtype)
    return x, weight, bias


# Where PyTorch fuses the bias into the product too (addmm, one rounding): any 2-D input, contiguous inputs
# with a 1-D bias, and every input without a bias (the same matmul). There ours is F.linear bit for bit.
FUSED = [((5,), "contiguous", (6,)), ((5,), "transposed", (6,)), ((5,), "expanded", (1,)), ((5,), "contiguous", ()),
         ((), "contiguous", (6,)), ((2, 7), "contiguous", (6,)), ((2, 3, 4), "contiguous", (6,)),
         ((0,), "contiguous", (6,)), ((3, 0, 2), "contiguous", (6,)), ((2, 7), "transposed", None),
         ((2, 3, 4), "expanded", None)]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize(("leading", "how", "bias_shape"), FUSED, ids=[f"{lead}-{how}-bias{b}" for lead, how, b in FUSED])
def test_linear_is_bitwise_f_linear_where_pytorch_fuses_too(leading, how, bias_shape, dtype):
    for scale in SCALES:
        x, weight, bias = _operands(leading, dtype, scale, bias_shape)
        x = _strided(x, how) if x.dim() > 1 and x.shape[0] else x
        ours, theirs = linear(x, weight, bias), F.linear(x, weight, bias)
        assert ours.shape == theirs.shape == (*leading, 6) and ours.dtype == dtype
        assert torch.equal(ours, theirs), f"scale {scale}"


# Where PyTorch does not fuse (a non-contiguous input of 3+ dims, or a 0-D bias on an input of other
# than 2 dims; a (1,) bias there too in some releases) it rounds the product and then the sum; ours rounds
# once, as the fused path does.
UNFUSED = [((2, 7), "transposed", (6,)), ((2, 7), "expanded", (6,)), ((2, 7), "contiguous", ()),
           ((2, 3, 4), "transposed", (1,)), ((2, 3, 4), "contiguous", (1,)), ((), "contiguous", ())]


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize(("leading", "how", "bias_shape"), UNFUSED, ids=[f"{lead}-{how}-bias{b}" for lead, how, b in UNFUSED])
def test_where_pytorch_rounds_twice_ours_is_one_rounding_away(leading, how, bias_shape, dtype):
    x, weight, bias = _operands(leading, dtype, 1.0, bias_shape, seed=6)
    x = _strided(x, how)
    ours, theirs = linear(x, weight, bias), F.linear(x, weight, bias)
    # Ours is the fused path's answer: that of a contiguous copy with a full (out_features,) bias.
    assert torch.equal(ours, F.linear(x.contiguous(), weight, bias.expand(6).contiguous()))
    if dtype in (torch.float32, torch.float64):
        # The extra rounding is lost in the noise here, but matmul may also sum in another order (a batched
        # product for a non-contiguous 4-D input): equal to the usual tolerance, not always to the bit.
        torch.testing.assert_close(ours, theirs)
        return
    # Two roundings against one: at most a rounding of the product and one of the output apart.
    product = x.double() @ weight.double().T
    eps = torch.finfo(dtype).eps
    assert bool(((ours.double() - theirs.double()).abs() <= eps * (product.abs() + ours.double().abs())).all())


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_linear_accepts_the_weight_and_bias_shapes_f_linear_documents(dtype):
    for leading in ((), (5,), (2, 3)):
        x, weight, bias = _operands(leading, dtype, 1.0, (), weight_shape=(16,))
        # A 1-D weight: one output neuron, no feature dim in the output.
        for b in (None, bias):
            ours = linear(x, weight, b)
            assert ours.shape == leading
            # PyTorch refuses a 2-D input with a 1-D weight and a bias (pinned below).
            if len(leading) != 1 or b is None:
                assert torch.equal(ours, F.linear(x, weight, b))
    x, weight, _ = _operands((4, 3), torch.float64, 1.0, None)
    for bias_shape in ((), (1,), (6,)):
        bias = torch.randn(bias_shape, dtype=torch.float64)
        tensors = [t.clone().requires_grad_() for t in (x, weight, bias)]
        theirs_tensors = [t.clone().requires_grad_() for t in (x, weight, bias)]
        upstream = torch.randn(4, 3, 6, dtype=torch.float64)
        (linear(*tensors) * upstream).sum().backward()
        (F.linear(*theirs_tensors) * upstream).sum().backward()
        for a, b in zip(tensors, theirs_tensors, strict=True):
            torch.testing.assert_close(a.grad, b.grad)


def test_the_shapes_where_ours_differs_from_pytorch():
    # PyTorch documents a 1-D weight with a 0-D bias, but refuses it for a 2-D input; ours computes it.
    x, weight, bias = torch.randn(5, 4), torch.randn(4), torch.tensor(0.5)
    with pytest.raises(RuntimeError, match="mat2 must be a matrix"):
        F.linear(x, weight, bias)
    torch.testing.assert_close(linear(x, weight, bias), x @ weight + bias)
    # PyTorch broadcasts an undocumented (N, out) bias on a 2-D input; ours takes only the documented shapes.
    assert F.linear(x, torch.randn(3, 4), torch.zeros(5, 3)).shape == (5, 3)
    with pytest.raises(ValueError, match=r"got \(5, 3\)"):
        linear(x, torch.randn(3, 4), torch.zeros(5, 3))


def test_zero_in_features_gives_the_bias():
    x, weight, bias = torch.randn(3, 0), torch.randn(4, 0), torch.randn(4)
    assert torch.equal(linear(x, weight, bias), F.linear(x, weight, bias))
    assert torch.equal(linear(x, weight, bias), bias.expand(3, 4))


def test_output_j_is_the_dot_product_with_row_j_plus_bias_j():
    g = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(2, 3, 4, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, generator=g)
    y = linear(x, weight, bias)
    for j in range(5):
        torch.testing.assert_close(y[..., j], (x * weight[j]).sum(-1) + bias[j])


def test_leading_dims_are_the_same_as_flattening_them():
    g = torch.Generator().manual_seed(0)
    x, weight, bias = torch.randn(2, 3, 4, 6, generator=g), torch.randn(5, 6, generator=g), torch.randn(5, generator=g)
    flat = linear(x.reshape(-1, 6), weight, bias).reshape(2, 3, 4, 5)
    torch.testing.assert_close(linear(x, weight, bias), flat)


def test_linear_gradients_match_torch_functional():
    g = torch.Generator().manual_seed(3)
    tensors = [torch.randn(*s, generator=g) for s in ((2, 3, 4), (5, 4), (5,))]
    ours = [t.clone().requires_grad_() for t in tensors]
    theirs = [t.clone().requires_grad_() for t in tensors]
    upstream = torch.randn(2, 3, 5, generator=g)
    (linear(*ours) * upstream).sum().backward()
    (F.linear(*theirs) * upstream).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("use_bias", [True, False])
def test_linear_passes_gradcheck(use_bias):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True) if use_bias else None
    inputs = (x, weight, bias) if use_bias else (x, weight)
    assert torch.autograd.gradcheck(linear, inputs)


def test_linear_refuses_bad_input():
    x, weight, bias = torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(3)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        linear(torch.tensor(1.0), weight, bias)
    with pytest.raises(ValueError, match=r"in_features = weight.size\(-1\) = 4, got input shape \(2, 5\)"):
        linear(torch.zeros(2, 5), weight, bias)
    with pytest.raises(ValueError, match=r"weight must be 2-D .* or 1-D .* got shape \(1, 3, 4\)"):
        linear(x, torch.zeros(1, 3, 4), bias)
    with pytest.raises(ValueError, match=r"bias must have shape \(out_features,\) = \(3,\), or \(\) or \(1,\), got \(1, 3\)"):
        linear(x, weight, bias[None])
    with pytest.raises(ValueError, match=r"bias must be 0-D, one value, with a 1-D weight, got shape \(3,\)"):
        linear(x, weight[0], bias)
    with pytest.raises(TypeError, match="input and weight must share a dtype"):
        linear(x.double(), weight, bias)
    with pytest.raises(TypeError, match="bias and weight must share a dtype"):
        linear(x, weight, bias.double())
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        linear([1.0, 2.0, 3.0, 4.0], weight, bias)
    with pytest.raises(TypeError, match="bias must be a torch.Tensor, got float"):
        linear(x, weight, 0.5)


# The module: born bitwise equal


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("features", FEATURES)
@pytest.mark.parametrize("seed", [0, 1, 1234])
def test_same_seed_gives_bitwise_the_same_parameters(features, use_bias, dtype, seed):
    ours, theirs = _pair(*features, seed=seed, bias=use_bias, dtype=dtype)
    assert torch.equal(ours.weight, theirs.weight)
    assert ours.weight.dtype == theirs.weight.dtype == dtype
    if use_bias:
        assert torch.equal(ours.bias, theirs.bias)
    else:
        assert ours.bias is None and theirs.bias is None


@pytest.mark.parametrize("features", [*FEATURES, (0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_construction_draws_exactly_as_many_random_numbers_as_torch(features, use_bias):
    """After building either layer, the global generator is in the same state: same draws, same count."""
    torch.manual_seed(5)
    ours = Linear(*features, bias=use_bias)
    after_ours = torch.rand(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.init warns about zero-element tensors; we do not
        torch.manual_seed(5)
        theirs = nn.Linear(*features, bias=use_bias)
    after_theirs = torch.rand(8)
    assert torch.equal(after_ours, after_theirs)
    assert torch.equal(ours.weight, theirs.weight)
    if use_bias:
        assert torch.equal(ours.bias, theirs.bias)


def test_reset_parameters_redraws_like_torch():
    ours, theirs = _pair(6, 4)
    torch.manual_seed(9)
    ours.reset_parameters()
    torch.manual_seed(9)
    theirs.reset_parameters()
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def test_the_order_of_the_draws_matters():
    """Drawing the bias before the weight, with the right bounds, no longer gives PyTorch's weights."""
    torch.manual_seed(0)
    bias = torch.empty(3).uniform_(-0.5, 0.5)
    bound = kaiming_uniform_bound(4)
    weight = torch.empty(3, 4).uniform_(-bound, bound)
    torch.manual_seed(0)
    theirs = nn.Linear(4, 3)
    assert not torch.equal(weight, theirs.weight) and not torch.equal(bias, theirs.bias)


@pytest.mark.parametrize("fan_in", [1, 2, 3, 4, 5, 10, 64, 100, 768, 1000])
@pytest.mark.parametrize("a", [math.sqrt(5), 0.0, 0.01, 1.0])
def test_kaiming_uniform_bound_is_the_bound_torch_uses(fan_in, a):
    torch.manual_seed(0)
    theirs = nn.init.kaiming_uniform_(torch.empty(7, fan_in, dtype=torch.float64), a=a)
    bound = kaiming_uniform_bound(fan_in, a)
    torch.manual_seed(0)
    ours = torch.empty(7, fan_in, dtype=torch.float64).uniform_(-bound, bound)
    assert torch.equal(ours, theirs)
    assert math.isclose(bound, math.sqrt(2 / (1 + a**2)) * math.sqrt(3 / fan_in), rel_tol=1e-12)


def test_the_default_bound_is_one_over_sqrt_fan_in_but_not_bitwise():
    assert all(math.isclose(kaiming_uniform_bound(n), 1 / math.sqrt(n), rel_tol=1e-15) for n in range(1, 500))
    # The shortcut 1/sqrt(fan_in) differs in the last bit for most sizes, and float64 weights show it.
    assert sum(kaiming_uniform_bound(n) != 1 / math.sqrt(n) for n in range(1, 500)) > 100
    torch.manual_seed(0)
    theirs = nn.Linear(4, 3, dtype=torch.float64)
    torch.manual_seed(0)
    shortcut = torch.empty(3, 4, dtype=torch.float64).uniform_(-0.5, 0.5)
    assert not torch.equal(shortcut, theirs.weight)
    torch.testing.assert_close(shortcut, theirs.weight)


def test_kaiming_uniform_bound_refuses_bad_fan_in():
    with pytest.raises(ValueError, match="fan_in must be at least 1, got 0"):
        kaiming_uniform_bound(0)
    with pytest.raises(TypeError, match="fan_in must be an int, got 2.0"):
        kaiming_uniform_bound(2.0)


def test_weights_fill_their_bounds_uniformly():
    torch.manual_seed(0)
    layer = Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (layer.weight, layer.bias):
        assert p.abs().max() <= bound
    w = layer.weight.detach()
    # Uniform on [-b, b]: mean 0, variance b^2 / 3, and a tenth of the values in each tenth of the range.
    assert abs(w.mean().item()) < 0.01 * bound
    assert math.isclose(w.var().item(), bound**2 / 3, rel_tol=0.02)
    counts = torch.histc(w, bins=10, min=-bound, max=bound)
    assert ((counts / w.numel() - 0.1).abs() < 0.01).all()


# The module: same outputs, gradients, state and repr


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("leading", LEADING)
@pytest.mark.parametrize("use_bias", [True, False])
def test_forward_and_gradients_match_nn_linear(leading, dtype, use_bias):
    ours, theirs = _pair(5, 3, seed=7, bias=use_bias, dtype=dtype)
    x_ours = _input(leading, 5, dtype, requires_grad=True)
    x_theirs = x_ours.detach().clone().requires_grad_()
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert y_ours.shape == y_theirs.shape == (*leading, 3)
    torch.testing.assert_close(y_ours, y_theirs, **TOLERANCES[dtype])
    upstream = _input((*leading,), 3, dtype, seed=8)
    (y_ours * upstream).sum().backward()
    (y_theirs * upstream).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, **TOLERANCES[dtype])
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, **TOLERANCES[dtype])
    if use_bias:
        torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, **TOLERANCES[dtype])


def test_module_passes_gradcheck_in_float64():
    torch.manual_seed(0)
    layer = Linear(4, 3, dtype=torch.float64)
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    weight, bias = layer.weight.detach().requires_grad_(), layer.bias.detach().requires_grad_()

    def call(x, weight, bias):
        # The module run with the parameters swapped for the tensors gradcheck perturbs.
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(call, (x, weight, bias))


@pytest.mark.parametrize("use_bias", [True, False])
def test_state_dict_loads_both_ways_with_strict(use_bias):
    ours, theirs = _pair(6, 4, bias=use_bias)
    fresh_ours, fresh_theirs = Linear(6, 4, bias=use_bias), nn.Linear(6, 4, bias=use_bias)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == (["weight", "bias"] if use_bias else ["weight"])
    result = fresh_ours.load_state_dict(theirs.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    fresh_theirs.load_state_dict(ours.state_dict(), strict=True)
    for a, b in zip(fresh_ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = _input((3,), 6)
    torch.testing.assert_close(fresh_ours(x), theirs(x))
    torch.testing.assert_close(fresh_theirs(x), ours(x))


def test_a_bias_mismatch_is_refused_in_both_directions():
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "bias"'):
        Linear(4, 3, bias=False).load_state_dict(nn.Linear(4, 3).state_dict())
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "bias"'):
        Linear(4, 3).load_state_dict(nn.Linear(4, 3, bias=False).state_dict())
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        Linear(3, 4).load_state_dict(nn.Linear(4, 3).state_dict())


@pytest.mark.parametrize("use_bias", [True, False])
def test_repr_parameters_and_count_are_nn_linears(use_bias):
    ours, theirs = _pair(7, 5, bias=use_bias)
    assert repr(ours) == repr(theirs) == f"Linear(in_features=7, out_features=5, bias={use_bias})"
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    assert sum(p.numel() for p in ours.parameters()) == 7 * 5 + (5 if use_bias else 0)
    assert (ours.in_features, ours.out_features) == (7, 5)


def test_device_and_dtype_reach_the_parameters():
    meta = Linear(768, 3072, device="meta")
    assert meta.weight.device.type == "meta" and meta.bias.device.type == "meta"
    assert sum(p.numel() for p in meta.parameters()) == 768 * 3072 + 3072
    bf16 = Linear(4, 3, dtype=torch.bfloat16)
    assert bf16.weight.dtype == bf16.bias.dtype == torch.bfloat16
    assert Linear(4, 3).to(torch.float64).weight.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_seed_gives_the_same_weights_on_cuda():
    ours, theirs = _pair(64, 48, seed=3, device="cuda")
    assert ours.weight.device.type == "cuda"
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    x = _input((2, 5), 64).cuda()
    torch.testing.assert_close(ours(x), theirs(x))


def test_module_refuses_bad_arguments():
    with pytest.raises(ValueError, match="in_features must be at least 0, got -1"):
        Linear(-1, 3)
    with pytest.raises(TypeError, match="out_features must be an int, got 3.0"):
        Linear(4, 3.0)
    with pytest.raises(TypeError, match="in_features must be an int, got True"):
        Linear(True, 3)
    with pytest.raises(TypeError, match="bias must be a bool, got 1"):
        Linear(4, 3, bias=1)
    with pytest.raises(ValueError, match="in_features = weight.size\\(-1\\) = 4, got input shape \\(2, 3\\)"):
        Linear(4, 3)(torch.zeros(2, 3))


# Why the initialisation: the spread of activations


def test_one_default_layer_keeps_a_third_of_the_variance():
    torch.manual_seed(0)
    layer = Linear(512, 512, bias=False)
    x = torch.randn(2048, 512)
    with torch.no_grad():
        assert math.isclose((layer(x).var() / x.var()).item(), 1 / 3, rel_tol=0.03)


def test_activation_stds_follow_the_theory():
    width = 256
    theory = {"pytorch": (1 / 6) ** 0.5, "randn": (width / 2) ** 0.5, "xavier": 0.5**0.5, "kaiming": 1.0}
    for init, factor in theory.items():
        stds = activation_stds(init, depth=8, width=width)
        assert len(stds) == 9
        measured = (stds[-1] / stds[1]) ** (1 / 7)
        assert math.isclose(measured, factor, rel_tol=0.1), (init, measured, factor)
    assert activation_stds("randn", depth=8)[-1] > 1e6
    assert 0.3 < activation_stds("kaiming", depth=20)[-1] < 3
    # Without ReLU, Xavier keeps the spread and the default loses a factor sqrt(3) per layer.
    assert 0.7 < activation_stds("xavier", depth=10, relu=False)[-1] < 1.4
    default = activation_stds("pytorch", depth=6, relu=False)
    assert math.isclose((default[-1] / default[0]) ** (1 / 6), 3**-0.5, rel_tol=0.05)


def test_activation_stds_are_reproducible_and_leave_the_global_generator_alone():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    assert activation_stds("xavier", depth=3, seed=4) == activation_stds("xavier", depth=3, seed=4)
    assert activation_stds("xavier", depth=3, seed=4) != activation_stds("xavier", depth=3, seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_activation_stds_refuse_bad_arguments():
    assert INITS == ("pytorch", "randn", "xavier", "kaiming")
    with pytest.raises(ValueError, match="init must be one of"):
        activation_stds("orthogonal")
    with pytest.raises(ValueError, match="depth must be at least 1, got 0"):
        activation_stds(depth=0)
    with pytest.raises(ValueError, match="batch must be at least 2, got 1"):
        activation_stds(batch=1)


def test_plot_init_variance_draws_two_panels():
    fig = plot_init_variance(depth=3, width=16, batch=8)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == len(INITS)


# Queries, keys and values


def test_one_fused_layer_equals_three_projections_values_and_gradients():
    C = 12
    torch.manual_seed(0)
    projections = [Linear(C, C) for _ in range(3)]
    fused = Linear(C, 3 * C)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in projections], dim=0))
        fused.bias.copy_(torch.cat([p.bias for p in projections]))
    x = _input((2, 5), C)
    separate = [p(x) for p in projections]
    for a, b in zip(fused(x).split(C, dim=-1), separate, strict=True):
        torch.testing.assert_close(a, b)
    # The gradient of the fused weight is the three gradients stacked the same way.
    fused(x).square().sum().backward()
    sum(s.square().sum() for s in separate).backward()
    torch.testing.assert_close(fused.weight.grad, torch.cat([p.weight.grad for p in projections], dim=0))
    torch.testing.assert_close(fused.bias.grad, torch.cat([p.bias.grad for p in projections]))


@pytest.mark.parametrize("B, T, C, h", [(2, 5, 8, 2), (1, 1, 6, 3), (3, 4, 4, 1), (2, 3, 8, 8)])
def test_split_qkv_is_split_then_split_heads(B, T, C, h):
    qkv = _input((B, T), 3 * C)
    q, k, v = split_qkv(qkv, num_heads=h)
    for got, block in zip((q, k, v), qkv.split(C, dim=-1), strict=True):
        assert got.shape == (B, h, T, C // h)
        assert torch.equal(got, split_heads(block, h))
        assert got.untyped_storage().data_ptr() == qkv.untyped_storage().data_ptr()  # views, no copies
    # The reshape road with the axis of size 3 in front agrees; Hammer's, with it after the heads, does not.
    right = qkv.reshape(B, T, 3, h, C // h).permute(2, 0, 3, 1, 4)
    assert torch.equal(right[0], q) and torch.equal(right[2], v)
    if h > 1:
        hammer = qkv.reshape(B, T, h, 3, C // h)[:, :, :, 0].transpose(1, 2)
        assert not torch.equal(hammer, q)


def test_split_qkv_refuses_bad_input():
    with pytest.raises(ValueError, match="multiple of 3, got shape \\(2, 5, 23\\)"):
        split_qkv(torch.zeros(2, 5, 23), num_heads=1)
    with pytest.raises(ValueError, match="qkv must have shape \\(B, T, 3 \\* C\\), got shape \\(5, 24\\)"):
        split_qkv(torch.zeros(5, 24), num_heads=2)
    with pytest.raises(ValueError, match="num_heads must divide the channel count C=8, got num_heads=3"):
        split_qkv(torch.zeros(2, 5, 24), num_heads=3)


# FLOPs


@pytest.mark.parametrize("shape", [(64,), (3, 64), (2, 5, 64), (2, 3, 4, 64), (0, 64)])
def test_linear_flops_is_what_flop_counter_mode_counts(shape):
    layer = nn.Linear(64, 32)
    with FlopCounterMode(display=False) as counter:
        layer(torch.randn(shape))
    assert linear_flops(shape, 64, 32) == counter.get_total_flops()


def test_backward_costs_twice_the_forward():
    layer, x = nn.Linear(64, 32), torch.randn(8, 10, 64, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out = layer(x)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        out.sum().backward()
    assert counter.get_total_flops() == 2 * forward == 2 * linear_flops(x.shape, 64, 32)


def test_linear_flops_refuses_a_shape_that_does_not_fit():
    with pytest.raises(ValueError, match="input_shape must end in in_features=4, got \\(3, 5\\)"):
        linear_flops((3, 5), 4, 2)
    with pytest.raises(ValueError, match="got \\(\\)"):
        linear_flops((), 4, 2)


# Dr. Hammer's traps


def test_trap_x_at_w_runs_on_a_square_layer_and_is_wrong():
    torch.manual_seed(0)
    square, x = nn.Linear(4, 4), torch.randn(2, 4)
    hammer = x @ square.weight + square.bias
    assert hammer.shape == square(x).shape and not torch.allclose(hammer, square(x))
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        x @ nn.Linear(4, 3).weight


def test_trap_randn_weights_overflow_a_deep_stack():
    class HammerLinear(Linear):
        def reset_parameters(self):
            with torch.no_grad():
                self.weight.copy_(torch.randn(self.out_features, self.in_features))
                self.bias.zero_()

    torch.manual_seed(0)
    x = torch.randn(16, 256)
    with torch.no_grad():
        for layer_class, finite in ((HammerLinear, False), (Linear, True)):
            h = x
            for _ in range(40):
                h = torch.relu(layer_class(256, 256)(h))
            assert torch.isfinite(h).all().item() is finite


def test_trap_a_biasless_layer_drops_the_bias_when_not_strict():
    class BiaslessLinear(nn.Module):
        def __init__(self, in_features, out_features):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(out_features, in_features))

        def forward(self, input):
            return input @ self.weight.T

    checkpoint = nn.Linear(4, 3).state_dict()
    with pytest.raises(RuntimeError, match="Unexpected key"):
        BiaslessLinear(4, 3).load_state_dict(checkpoint)
    hammer = BiaslessLinear(4, 3)
    assert hammer.load_state_dict(checkpoint, strict=False).unexpected_keys == ["bias"]
    x = torch.randn(5, 4)
    torch.testing.assert_close(hammer(x) + checkpoint["bias"], F.linear(x, **checkpoint))


# Challenges


def test_fuse_linears_equals_the_layers_and_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    layers = [nn.Linear(6, 2), Linear(6, 5, bias=False), nn.Linear(6, 1)]
    before = torch.random.get_rng_state()
    fused = fuse_linears(*layers)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert isinstance(fused, Linear) and repr(fused) == "Linear(in_features=6, out_features=8, bias=True)"
    assert torch.equal(fused.bias[2:7], torch.zeros(5))
    x = _input((4, 3), 6)
    torch.testing.assert_close(fused(x), torch.cat([layer(x) for layer in layers], dim=-1))
    # The fused parameters are fresh leaves: training the fused layer leaves the originals alone.
    assert fused.weight.data_ptr() != layers[0].weight.data_ptr()
    fused(x).sum().backward()
    assert fused.weight.grad is not None and layers[0].weight.grad is None


def test_fuse_linears_refuses_bad_layers():
    with pytest.raises(ValueError, match="at least one layer"):
        fuse_linears()
    with pytest.raises(ValueError, match="share in_features, got \\[4, 5\\]"):
        fuse_linears(nn.Linear(4, 2), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="layers\\[1\\] must be a linear layer"):
        fuse_linears(nn.Linear(4, 2), nn.ReLU())


def test_checkers_pass_the_professors_solutions():
    assert check_fuse_linears(fuse_linears) is None
    assert check_linear_flops(linear_flops) is None


def _fuse_along_the_wrong_dim(*layers):
    fused = nn.Linear(sum(layer.weight.size(1) for layer in layers), layers[0].weight.size(0))
    with torch.no_grad():
        fused.weight.copy_(torch.cat([layer.weight for layer in layers], dim=1))
    return fused


def _fuse_ignoring_biases(*layers):
    weight = torch.cat([layer.weight.detach() for layer in layers])
    fused = nn.Linear(weight.size(1), weight.size(0), bias=False, dtype=weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(weight)
    return fused


def _fuse_dropping_bias_less_layers_from_the_bias(*layers):
    fused = _fuse_ignoring_biases(*layers)
    biases = [layer.bias for layer in layers if layer.bias is not None]
    if biases:
        fused.bias = nn.Parameter(torch.cat(biases).detach())
    return fused


def _fuse_always_with_a_bias(*layers):
    if len({layer.weight.size(1) for layer in layers}) != 1:
        raise ValueError("different in_features")
    fused = _fuse_ignoring_biases(*layers)
    biases = [torch.zeros(layer.weight.size(0)) if layer.bias is None else layer.bias.detach() for layer in layers]
    fused.bias = nn.Parameter(torch.cat(biases).to(fused.weight.dtype))
    return fused


@pytest.mark.parametrize(
    "attempt, message",
    [
        (_fuse_along_the_wrong_dim, "weight shape"),
        (_fuse_ignoring_biases, "should have a bias"),
        (_fuse_dropping_bias_less_layers_from_the_bias, "."),
        (_fuse_always_with_a_bias, "should have bias=None"),
        (lambda *layers: layers[0], "."),
    ],
)
def test_check_fuse_linears_rejects_wrong_attempts(attempt, message):
    with pytest.raises((AssertionError, RuntimeError), match=message):
        check_fuse_linears(attempt)


@pytest.mark.parametrize(
    "attempt, message",
    [
        (lambda shape, i, o: math.prod(shape[:-1]) * i * o, "expected 128"),  # forgot the 2
        (lambda shape, i, o: 2 * shape[0] * i * o, "expected 128"),  # only the first dim
        (lambda shape, i, o: 2 * math.prod(shape[:-1]) * i * o + math.prod(shape[:-1]) * o, "bias is left out"),
        (lambda shape, i, o: float(2 * math.prod(shape[:-1]) * i * o), "expected an int"),
        (lambda shape, i, o: 2 * math.prod(shape[:-1]) * i * o, "should raise ValueError"),  # no validation
    ],
)
def test_check_linear_flops_rejects_wrong_attempts(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_linear_flops(attempt)


@pytest.mark.parametrize("shape", [(4, 8), (2, 3, 8)])
def test_under_cpu_autocast_linear_is_bitwise_f_linear(shape):
    """Inside autocast the input arrives in bfloat16 while the weights stay float32, as PyTorch intends."""
    torch.manual_seed(0)
    x = torch.randn(shape)
    weight, bias = torch.randn(5, 8), torch.randn(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = x.bfloat16()  # what an earlier layer hands over under autocast
        ours, theirs = linear(h, weight, bias), F.linear(h, weight, bias)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    assert torch.equal(ours, theirs)


def test_linear_runs_on_the_meta_device_where_autocast_has_no_say():
    x, weight = torch.empty(2, 8, device="meta"), torch.empty(5, 8, device="meta")
    assert linear(x, weight).shape == (2, 5) and linear(x, weight).device.type == "meta"
