"""The thorough proof of the activations lesson: every elixir, its module and its derivative against PyTorch's."""

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

import torchenstein.nn.activations as lesson
from torchenstein.challenges import challenges_in
from torchenstein.nn.activations import (
    GELU,
    LeakyReLU,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    SwiGLU,
    Tanh,
    check_mish,
    gelu,
    gelu_grad,
    leaky_relu,
    leaky_relu_grad,
    mish,
    plot_activations,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    silu,
    silu_grad,
    softmax_jacobian,
    swiglu,
    tanh,
    tanh_grad,
)

inf, nan = math.inf, math.nan

# (name, ours, PyTorch's, our analytic derivative): every element-wise activation of the lesson.
ACTIVATIONS = [
    ("relu", relu, F.relu, relu_grad),
    ("leaky_relu", leaky_relu, F.leaky_relu, leaky_relu_grad),
    ("leaky_relu(0.2)", lambda t: leaky_relu(t, 0.2), lambda t: F.leaky_relu(t, 0.2), lambda t: leaky_relu_grad(t, 0.2)),
    ("gelu", gelu, F.gelu, gelu_grad),
    ("gelu(tanh)", lambda t: gelu(t, "tanh"), lambda t: F.gelu(t, approximate="tanh"), lambda t: gelu_grad(t, "tanh")),
    ("silu", silu, F.silu, silu_grad),
    ("tanh", tanh, torch.tanh, tanh_grad),
    ("sigmoid", sigmoid, torch.sigmoid, sigmoid_grad),
]
IDS = [name for name, *_ in ACTIVATIONS]

# Tolerances: float32 and float64 use assert_close's defaults (rtol 1.3e-6 / 1e-7, atol 1e-5 / 1e-7).
# bfloat16 and float16 results are rounded once from a float32 computation, ours and PyTorch's alike,
# but the two float32 computations may differ in the last bits and then round to neighbouring values:
# we allow one unit in the last place (rtol = eps of the dtype) plus a small atol.
TOLERANCES = {
    torch.float32: {},
    torch.float64: {},
    torch.bfloat16: {"rtol": 2 * 2**-8, "atol": 1e-5},
    torch.float16: {"rtol": 2 * 2**-11, "atol": 1e-5},
}
FLOATS = list(TOLERANCES)
HALF = (torch.float16, torch.bfloat16)
EXTREMES = [-inf, -1e4, -100.0, -20.0, -1.0, -1e-30, -0.0, 0.0, 1e-30, 1.0, 20.0, 100.0, 1e4, inf, nan]


def random(shape, dtype, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def grads(fn, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


@pytest.mark.parametrize(("name", "ours", "theirs", "_"), ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_values_and_gradients_match_pytorch(name, ours, theirs, _, dtype):
    for seed, shape in enumerate([(7,), (3, 5), (2, 3, 4), (0, 4), ()]):
        x = random(shape, dtype, seed)
        y = ours(x)
        assert y.dtype == dtype and y.shape == x.shape, shape
        torch.testing.assert_close(y, theirs(x), **TOLERANCES[dtype], msg=lambda m, shape=shape: f"shape {shape}: {m}")
        assert_grads_close(grads(ours, x), theirs, x)


def assert_grads_close(got, theirs, x, **kwargs):
    """Our gradient equals PyTorch's; in float16 and bfloat16, it is the float64 truth rounded once.

    In half precision PyTorch's backward of tanh and sigmoid starts from the *rounded* output y
    ($1 - y^2$, $y(1 - y)$), so it can be off by about one eps in absolute terms (and tanh'(3) comes out
    0.0078 instead of 0.0099 in bfloat16). Ours differentiates the float32 computation and rounds once.
    """
    dtype = x.dtype
    if dtype not in HALF:
        torch.testing.assert_close(got, grads(theirs, x), **TOLERANCES[dtype], **kwargs)
        return
    truth = grads(theirs, x.double()).to(dtype)
    torch.testing.assert_close(got, truth, **TOLERANCES[dtype], **kwargs)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(got, grads(theirs, x), rtol=2 * eps, atol=2 * eps, **kwargs)


@pytest.mark.parametrize(("name", "ours", "theirs", "_"), ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_extreme_inputs_match_pytorch_nan_included(name, ours, theirs, _, dtype):
    x = torch.tensor(EXTREMES, dtype=dtype)
    expected = theirs(x)
    if name == "gelu":
        # PyTorch's vectorised CPU kernel returns NaN for the exact GELU of +inf in reduced precision and
        # float32 (its one-element path returns inf); ours returns the limit, inf, in every dtype.
        assert ours(x)[x == inf].item() == inf
        keep = x != inf
        x, expected = x[keep], expected[keep]
    torch.testing.assert_close(ours(x), expected, equal_nan=True, **TOLERANCES[dtype])
    # NaN goes in, NaN comes out; and the gradient propagates NaN exactly where PyTorch's does.
    assert ours(torch.tensor([nan], dtype=dtype)).isnan().all()
    assert_grads_close(grads(ours, x), theirs, x, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exact_gelu_of_plus_infinity_is_infinity_like_pytorch_in_float64(dtype):
    assert F.gelu(torch.tensor([inf] * 32, dtype=torch.float64)).eq(inf).all()
    assert gelu(torch.tensor([inf] * 32, dtype=dtype)).eq(inf).all()


@pytest.mark.parametrize(("name", "ours", "theirs", "_"), ACTIVATIONS, ids=IDS)
def test_gradcheck_in_float64(name, ours, theirs, _):
    x = random((6,), torch.float64, seed=5)
    x = (x + 0.1 * x.sign()).requires_grad_(True)  # away from the kink of ReLU and LeakyReLU at 0
    assert torch.autograd.gradcheck(ours, (x,))
    assert torch.autograd.gradgradcheck(ours, (x,))


@pytest.mark.parametrize(("name", "ours", "theirs", "derivative"), ACTIVATIONS, ids=IDS)
def test_analytic_derivatives_equal_autograd(name, ours, theirs, derivative):
    for dtype in FLOATS:
        x = torch.cat([random((50,), dtype, seed=6), torch.tensor([-1e4, -30.0, -0.0, 0.0, 30.0, 1e4], dtype=dtype)])
        got = derivative(x)
        assert got.dtype == dtype and got.shape == x.shape
        assert_grads_close(got, theirs, x)
        torch.testing.assert_close(got, grads(ours, x), **TOLERANCES[dtype], msg=lambda m, dtype=dtype: f"{dtype}: {m}")


def test_derivative_conventions_at_zero():
    zero = torch.zeros(1)
    assert relu_grad(zero).item() == grads(F.relu, zero).item() == 0.0
    assert leaky_relu_grad(zero, 0.3).item() == pytest.approx(grads(lambda t: F.leaky_relu(t, 0.3), zero).item())
    assert sigmoid_grad(zero).item() == 0.25 and tanh_grad(zero).item() == 1.0
    assert gelu_grad(zero).item() == silu_grad(zero).item() == 0.5


def test_sigmoid_derivative_never_exceeds_a_quarter():
    x = torch.linspace(-50, 50, 10_001, dtype=torch.float64)
    assert sigmoid_grad(x).max().item() == pytest.approx(0.25) and (sigmoid_grad(x) <= 0.25).all()
    assert (tanh_grad(x) <= 1.0).all()


@settings(max_examples=20)
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_sigmoid_and_tanh_identities(value):
    x = torch.tensor([value], dtype=torch.float64)
    torch.testing.assert_close(sigmoid(x) + sigmoid(-x), torch.ones_like(x))
    torch.testing.assert_close(tanh(-x), -tanh(x))
    torch.testing.assert_close(tanh(x), 2 * sigmoid(2 * x) - 1, atol=1e-12, rtol=0)


def test_tiny_inputs_keep_their_relative_precision():
    x = torch.tensor([1e-8, -1e-20, 1e-30])
    torch.testing.assert_close(tanh(x), x, rtol=1e-6, atol=0)
    # The exact GELU's far-left tail, where 1 + erf cancels to noise (even in float64 at -8) or to 0
    # (float32 at -6): ours, with erfc, keeps float32's relative precision against math.erfc's truth.
    values = [-5.0, -6.0, -8.0, -10.0]
    truth = torch.tensor([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in values], dtype=torch.float64)
    torch.testing.assert_close(gelu(torch.tensor(values)), truth.float(), rtol=1e-5, atol=0)
    torch.testing.assert_close(gelu(truth.new_tensor(values)), truth, rtol=1e-12, atol=0)
    naive = torch.tensor(-6.0) * 0.5 * (1 + torch.erf(torch.tensor(-6.0) / math.sqrt(2)))
    assert naive.item() == 0.0


def test_naive_sigmoid_overflows_where_the_stable_one_does_not():
    x = torch.tensor([88.0, 89.0, 1000.0])
    naive = x.exp() / (1 + x.exp())
    assert naive[1:].isnan().all() and not naive[0].isnan()
    assert sigmoid(x).eq(1.0).all()
    assert not grads(sigmoid, torch.tensor([-1000.0, 1000.0])).isnan().any()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda t: relu(t, inplace=True), lambda t: F.relu(t, inplace=True)),
        (lambda t: leaky_relu(t, 0.1, inplace=True), lambda t: F.leaky_relu(t, 0.1, inplace=True)),
        (lambda t: silu(t, inplace=True), lambda t: F.silu(t, inplace=True)),
    ],
    ids=["relu", "leaky_relu", "silu"],
)
def test_inplace_writes_into_the_input_and_stays_differentiable_after_a_linear(ours, theirs):
    torch.manual_seed(0)
    layer, x = nn.Linear(4, 6).double(), torch.randn(5, 4, dtype=torch.float64)
    h = x.clone()
    assert ours(h) is h
    torch.testing.assert_close(h, theirs(x.clone()))
    results = []
    for fn in (ours, theirs):
        layer.zero_grad()
        fn(layer(x)).square().sum().backward()
        results.append(layer.weight.grad.clone())
    torch.testing.assert_close(*results)


@pytest.mark.parametrize("inplace_relu", [lambda t: ReLU(inplace=True)(t), lambda t: nn.ReLU(inplace=True)(t)])
def test_inplace_on_a_saved_output_fails_like_pytorch(inplace_relu):
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    out = inplace_relu(torch.tanh(x))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        inplace_relu(x)


def test_modules_print_and_compute_like_pytorchs():
    pairs = [
        (ReLU(), nn.ReLU()),
        (ReLU(inplace=True), nn.ReLU(inplace=True)),
        (LeakyReLU(), nn.LeakyReLU()),
        (LeakyReLU(0.2, inplace=True), nn.LeakyReLU(0.2, inplace=True)),
        (GELU(), nn.GELU()),
        (GELU(approximate="tanh"), nn.GELU(approximate="tanh")),
        (SiLU(), nn.SiLU()),
        (SiLU(inplace=True), nn.SiLU(inplace=True)),
        (Tanh(), nn.Tanh()),
        (Sigmoid(), nn.Sigmoid()),
        (Softmax(dim=1), nn.Softmax(dim=1)),
        (Softmax(dim=-1), nn.Softmax(dim=-1)),
    ]
    x = random((3, 4, 5), torch.float32, seed=7)
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == [] and ours.load_state_dict(theirs.state_dict()) is not None
        torch.testing.assert_close(ours(x.clone()), theirs(x.clone()))


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_module_over_every_dim(dim, dtype):
    x = random((2, 3, 4), dtype, seed=8, scale=50.0)
    x[0, 0, 0] = 1e4
    torch.testing.assert_close(Softmax(dim)(x), F.softmax(x, dim=dim), **TOLERANCES[dtype])
    assert_grads_close(grads(Softmax(dim), x), lambda t: F.softmax(t, dim), x)


def test_pytorch_softmax_without_dim_guesses_the_batch_for_3d_input():
    x = random((2, 3, 4), torch.float32, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guessed = nn.Softmax()(x)
    torch.testing.assert_close(guessed, F.softmax(x, dim=0))
    with pytest.raises(TypeError, match="dim must be an int, got None"):
        Softmax(None)
    with pytest.raises(TypeError, match="dim must be an int, got True"):
        Softmax(True)


def test_softmax_over_the_wrong_dim_does_not_normalise_examples():
    logits = random((4, 4), torch.float32, seed=10)
    assert not torch.allclose(Softmax(0)(logits).sum(dim=1), torch.ones(4))
    torch.testing.assert_close(Softmax(-1)(logits).sum(dim=1), torch.ones(4))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_softmax_jacobian_equals_autograds(n):
    x = random((n,), torch.float64, seed=n)
    expected = torch.autograd.functional.jacobian(lambda t: F.softmax(t, dim=0), x)
    jacobian = softmax_jacobian(x)
    torch.testing.assert_close(jacobian, expected)
    torch.testing.assert_close(jacobian.sum(dim=1), torch.zeros(n, dtype=torch.float64))
    # The backward pass uses only the vector-Jacobian product s * (g - <g, s>).
    g, s = random((n,), torch.float64, seed=11), F.softmax(x, dim=0)
    torch.testing.assert_close(g @ jacobian, s * (g - (g * s).sum()))


def test_softmax_jacobian_refuses_a_matrix():
    with pytest.raises(ValueError, match=r"one-dimensional, got shape \(2, 3\)"):
        softmax_jacobian(torch.zeros(2, 3))


def test_a_stack_of_linear_layers_is_one_linear_layer():
    torch.manual_seed(0)
    layers = [nn.Linear(5, 7).double(), nn.Linear(7, 6).double(), nn.Linear(6, 3).double()]
    x = torch.randn(10, 5, dtype=torch.float64)
    W, b = torch.eye(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for layer in layers:
        W, b = layer.weight @ W, layer.weight @ b + layer.bias
    torch.testing.assert_close(nn.Sequential(*layers)(x), x @ W.T + b)
    with_relu = nn.Sequential(layers[0], ReLU(), *layers[1:])
    assert not torch.allclose(with_relu(x), x @ W.T + b)


class _LlamaFeedForward(nn.Module):
    """A reference written the way LLaMA's reference code writes its feed-forward block."""

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("shape", "hidden", "out"), [((4, 6), 16, None), ((2, 3, 6), 10, 4), ((6,), 3, 1), ((0, 6), 8, None)])
def test_swiglu_equals_a_composition_of_builtins(dtype, shape, hidden, out):
    torch.manual_seed(0)
    block = SwiGLU(6, hidden, out_features=out).to(dtype)
    reference = _LlamaFeedForward(6, hidden).to(dtype)
    if out is None:
        reference.load_state_dict(block.state_dict())
        torch.testing.assert_close(reference(random(shape, dtype)), block(random(shape, dtype)), **TOLERANCES[dtype])
    x = random(shape, dtype, seed=12)
    w1, w2, w3 = block.w1.weight, block.w2.weight, block.w3.weight
    expected = F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)
    assert block(x).shape == (*shape[:-1], out or 6)
    torch.testing.assert_close(block(x), expected, **TOLERANCES[dtype])
    torch.testing.assert_close(swiglu(x, w1, w2, w3), expected, **TOLERANCES[dtype])


def test_swiglu_with_biases_and_its_gradients():
    torch.manual_seed(1)
    block = SwiGLU(5, 7, out_features=3, bias=True).double()
    assert list(block.state_dict()) == ["w1.weight", "w1.bias", "w2.weight", "w2.bias", "w3.weight", "w3.bias"]
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    expected = F.linear(F.silu(block.w1(x)) * block.w3(x), block.w2.weight, block.w2.bias)
    torch.testing.assert_close(block(x), expected)
    w1, w2, w3 = (torch.randn(s, dtype=torch.float64, requires_grad=True) for s in ((7, 5), (3, 7), (7, 5)))
    assert torch.autograd.gradcheck(swiglu, (x, w1, w2, w3))


def test_swiglu_refuses_bad_shapes_and_widths():
    x, w = torch.ones(3, 2), torch.ones(4, 2)
    with pytest.raises(ValueError, match=r"w1 must have shape \(hidden_features, 5\), got \(4, 2\)"):
        swiglu(torch.ones(3, 5), w, torch.ones(2, 4), w)
    with pytest.raises(ValueError, match=r"w3 must have the shape of w1, \(4, 2\), got \(3, 2\)"):
        swiglu(x, w, torch.ones(2, 4), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"w2 must have shape \(out_features, 4\)"):
        swiglu(x, w, torch.ones(2, 3), w)
    with pytest.raises(TypeError, match="w2 must be a floating-point tensor, got torch.int64"):
        swiglu(x, w, torch.ones(2, 4, dtype=torch.int64), w)
    with pytest.raises(ValueError, match="hidden_features must be a positive int, got 0"):
        SwiGLU(4, 0)
    with pytest.raises(ValueError, match="out_features must be a positive int, got 2.0"):
        SwiGLU(4, 8, out_features=2.0)


def test_swiglu_with_two_thirds_width_costs_what_a_four_times_mlp_costs():
    d = 12
    block = SwiGLU(d, 2 * 4 * d // 3)
    mlp = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.GELU(), nn.Linear(4 * d, d, bias=False))
    assert sum(p.numel() for p in block.parameters()) == sum(p.numel() for p in mlp.parameters())


def test_a_unit_never_active_gets_no_gradient_and_leaky_relu_revives_it():
    torch.manual_seed(0)
    layer, x = nn.Linear(16, 64), torch.randn(1000, 16)
    assert (layer(x) > 0).any(dim=0).all()
    with torch.no_grad():
        layer.bias[:16] = -10.0
    never = ~(layer(x) > 0).any(dim=0)
    assert never[:16].all() and not never[16:].any()
    relu(layer(x)).sum().backward()
    assert layer.weight.grad[:16].eq(0).all() and layer.bias.grad[:16].eq(0).all()
    assert layer.weight.grad[16:].ne(0).any(dim=1).all()
    layer.zero_grad()
    leaky_relu(layer(x)).sum().backward()
    assert layer.weight.grad[:16].ne(0).any(dim=1).all()


def test_gelu_tanh_and_exact_differ_by_under_half_a_thousandth():
    x = torch.linspace(-10, 10, 20_001, dtype=torch.float64)
    gap = (gelu(x) - gelu(x, approximate="tanh")).abs()
    assert 4.5e-4 < gap.max().item() < 5e-4
    assert abs(x[gap.argmax()].item() + 2.7) < 0.05


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: relu(torch.tensor([1, 2])), TypeError, "input must be a floating-point tensor, got torch.int64"),
        (lambda: relu([1.0]), TypeError, "input must be a torch.Tensor, got list"),
        (lambda: relu(torch.ones(2), inplace=1), TypeError, "inplace must be a bool, got 1"),
        (lambda: leaky_relu(torch.ones(2), "0.1"), TypeError, "negative_slope must be a real number, got '0.1'"),
        (lambda: leaky_relu(torch.ones(2), True), TypeError, "negative_slope must be a real number, got True"),
        (lambda: gelu(torch.ones(2), approximate="erf"), ValueError, "approximate must be 'none' or 'tanh', got 'erf'"),
        (lambda: gelu_grad(torch.ones(2), approximate=None), ValueError, "got None"),
        (lambda: GELU("fast"), ValueError, "approximate must be 'none' or 'tanh', got 'fast'"),
        (lambda: LeakyReLU(inplace="yes"), TypeError, "inplace must be a bool, got 'yes'"),
        (lambda: sigmoid(torch.ones(2, dtype=torch.int32)), TypeError, "got torch.int32"),
        (lambda: tanh_grad(torch.ones(2, dtype=torch.bool)), TypeError, "got torch.bool"),
        (lambda: mish(torch.ones(2, dtype=torch.int64)), TypeError, "got torch.int64"),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_plot_activations_draws_every_curve_and_its_derivative():
    fig = plot_activations(points=21, reach=2.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == len(fig.axes[1].lines) == 7
    with pytest.raises(ValueError, match="points must be at least 2"):
        plot_activations(points=1)
    with pytest.raises(ValueError, match="reach positive"):
        plot_activations(reach=0.0)


def test_challenges_are_registered():
    assert set(challenges_in(lesson)) == {"mish"}


def test_the_checker_passes_the_solution_and_rejects_nothing_returned():
    check_mish(mish)
    with pytest.raises(AssertionError, match="got None"):
        check_mish(lambda x: None)


def test_mish_checker_rejects_the_printed_softplus():
    def naive_mish(x):
        # Right values everywhere (computed in float64), but the printed softplus overflows at x = 1000:
        # its gradient e^x / (1 + e^x) is inf / inf there.
        y = x.double()
        return (y * torch.tanh(torch.log(1 + torch.exp(y)))).to(x.dtype)

    with pytest.raises(AssertionError, match="gradient of mish"):
        check_mish(naive_mish)


def test_mish_checker_rejects_a_wrong_dtype_and_the_wrong_function():
    with pytest.raises(AssertionError, match="return a torch.float32 tensor"):
        check_mish(lambda x: F.mish(x.double()))
    with pytest.raises(AssertionError, match="mish at input"):
        check_mish(lambda x: x * torch.tanh(x))


def test_mish_matches_pytorch_with_gradients_at_extremes():
    x = torch.tensor(EXTREMES)
    torch.testing.assert_close(mish(x), F.mish(x), equal_nan=True)
    torch.testing.assert_close(grads(mish, x), grads(F.mish, x), equal_nan=True)
    assert torch.autograd.gradcheck(mish, (random((6,), torch.float64).requires_grad_(True),))


def _layouts(dtype):
    """The same values laid out four ways: contiguous, transposed, strided and expanded (a broadcast view)."""
    base = random((4, 6), dtype, seed=21)
    return {
        "contiguous": base,
        "transposed": base.T,
        "strided": base[:, ::2],
        "expanded": base[:1].expand(3, 6),
    }


@pytest.mark.parametrize(("name", "ours", "theirs", "_"), ACTIVATIONS, ids=IDS)
def test_non_contiguous_and_expanded_inputs_match_pytorch(name, ours, theirs, _):
    for dtype in FLOATS:
        for layout, x in _layouts(dtype).items():
            got = ours(x)
            assert got.shape == x.shape and got.dtype == dtype, layout
            torch.testing.assert_close(got, theirs(x), **TOLERANCES[dtype], msg=lambda m, layout=layout: f"{layout}: {m}")


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_module_on_0d_empty_and_negative_dims(dtype):
    for shape, dim in [((), 0), ((), -1), ((0, 3), 1), ((3, 0), -1), ((2, 3, 4), -2)]:
        x = random(shape, dtype, seed=22)
        torch.testing.assert_close(Softmax(dim)(x), F.softmax(x, dim=dim), **TOLERANCES[dtype])
        y = x.mT if x.dim() >= 2 else x  # a transposed layout
        torch.testing.assert_close(Softmax(dim)(y), F.softmax(y, dim=dim), **TOLERANCES[dtype])


def test_in_place_relu_of_a_tensor_read_elsewhere_is_silently_wrong_in_both():
    torch.manual_seed(0)
    layer, x = nn.Linear(3, 3), torch.randn(4, 3)
    assert (layer(x) < 0).any()
    intended = layer(x) + F.relu(layer(x))
    for inplace_relu in (lambda t: ReLU(inplace=True)(t), lambda t: F.relu(t, inplace=True)):
        h = layer(x)
        hammer = h + inplace_relu(h)
        hammer.sum().backward()  # no error from autograd
        torch.testing.assert_close(hammer, 2 * F.relu(layer(x)))
        assert not torch.allclose(hammer, intended)
        layer.zero_grad()


def test_mish_matches_pytorch_in_half_precision_too():
    x = torch.tensor(EXTREMES)
    for dtype in HALF:
        try:
            expected = F.mish(x.to(dtype))
        except RuntimeError as err:  # an older PyTorch without this CPU kernel
            pytest.skip(str(err))
        torch.testing.assert_close(mish(x.to(dtype)), expected, equal_nan=True, **TOLERANCES[dtype])
