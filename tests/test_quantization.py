"""The proof that the lesson's quantisation is PyTorch's: observers' scales and zero points, quantised integers,
dequantised values, int8 Linear layers against quantize_dynamic, the byte formula, and the challenges."""

from __future__ import annotations

import math
import platform
import warnings

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from torchenstein.advanced.quantization import (
    QuantizedLinear,
    calculate_qparams,
    check_pack_int4,
    check_percentile_qparams,
    corpus_batch,
    dequantize,
    gpt_state_bytes,
    loss_change,
    min_max,
    outlier_weight,
    pack_int4,
    percentile_qparams,
    plot_quantization_error,
    quant_range,
    quantization_mse,
    quantize_linear_layers,
    quantize_per_channel,
    quantize_per_tensor,
    state_bytes,
    unpack_int4,
)
from torchenstein.transformers.gpt import GPT, GPTConfig

observer = pytest.importorskip("torch.ao.quantization.observer")
MinMaxObserver, PerChannelMinMaxObserver = observer.MinMaxObserver, observer.PerChannelMinMaxObserver

# PyTorch deprecates its quantised tensors (a UserWarning since 2.11 or so) and torch.ao.quantization (a
# DeprecationWarning in newer releases); they are the references here, so their warnings are expected.
pytestmark = [
    pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning"),
    pytest.mark.filterwarnings("ignore:must run observer:UserWarning"),
    pytest.mark.filterwarnings("ignore:Please use quant_min and quant_max:UserWarning"),
    pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated:DeprecationWarning"),
    pytest.mark.skipif(not hasattr(torch, "quantize_per_tensor"), reason="this PyTorch has no quantised tensors"),
]

DTYPES = [torch.qint8, torch.quint8]
RANGES = {torch.qint8: (-128, 127), torch.quint8: (0, 255)}
# FBGEMM's kernels round x * (1/s) + z once (per tensor, a fused multiply-add) or twice (per channel); the
# difference shows only within a float32 rounding of a tie. Pinned where those kernels run.
X86 = platform.machine().lower() in ("x86_64", "amd64")


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "mixed": torch.randn(6, 7, generator=g) + 0.3,
        "positive": torch.rand(6, 7, generator=g) + 0.5,
        "negative": -torch.rand(6, 7, generator=g) - 0.1,
        "zeros": torch.zeros(6, 7),
        "constant": torch.full((6, 7), 2.5),
        "huge": 1e6 * torch.randn(6, 7, generator=g),
        "tiny": 1e-9 * torch.randn(6, 7, generator=g),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce_range", [False, True])
def test_quant_range_matches_the_observers(dtype, reduce_range):
    obs = MinMaxObserver(dtype=dtype, reduce_range=reduce_range)
    assert quant_range(dtype, reduce_range) == (obs.quant_min, obs.quant_max)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("qscheme", [torch.per_tensor_affine, torch.per_tensor_symmetric])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_per_tensor_qparams_equal_minmax_observer(dtype, qscheme, reduce_range):
    if dtype == torch.quint8 and qscheme == torch.per_tensor_symmetric and reduce_range:
        with pytest.raises(NotImplementedError):
            MinMaxObserver(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range)
        with pytest.raises(ValueError, match="reduce_range=True cannot be used"):
            calculate_qparams(torch.tensor(-1.0), torch.tensor(1.0), dtype, qscheme, reduce_range)
        return
    for name, x in _inputs().items():
        obs = MinMaxObserver(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range)
        obs(x)
        scale, zero_point = obs.calculate_qparams()
        ours = calculate_qparams(*min_max(x), dtype, qscheme, reduce_range)
        assert ours[0].dtype == torch.float32 and ours[1].dtype == torch.int64
        assert torch.equal(ours[0], scale), name
        assert torch.equal(ours[1], zero_point.long()), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("qscheme", [torch.per_channel_affine, torch.per_channel_symmetric])
@pytest.mark.parametrize("ch_axis", [0, 1, 2, -1])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_per_channel_qparams_equal_per_channel_observer(dtype, qscheme, ch_axis, reduce_range):
    if dtype == torch.quint8 and qscheme == torch.per_channel_symmetric and reduce_range:
        pytest.skip("PyTorch's observers and ours refuse reduce_range for symmetric quint8")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 6, generator=g) * torch.logspace(-3, 2, 6)
    x.select(ch_axis, 1).zero_()  # an all-zero channel: the eps floor
    x.select(ch_axis, 2).abs_()  # an all-positive channel
    obs = PerChannelMinMaxObserver(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme, reduce_range=reduce_range)
    obs(x)
    scale, zero_point = obs.calculate_qparams()
    ours = calculate_qparams(*min_max(x, ch_axis), dtype, qscheme, reduce_range)
    assert torch.equal(ours[0], scale)
    assert torch.equal(ours[1], zero_point.long())


def test_empty_and_all_zero_tensors_as_the_observers():
    for qscheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        obs = MinMaxObserver(qscheme=qscheme)
        obs(torch.zeros(0, 3))
        theirs = obs.calculate_qparams()
        ours = calculate_qparams(*min_max(torch.zeros(0, 3)), torch.quint8, qscheme)
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1].long())
    for shape in ((0, 3), (3, 0)):
        obs = PerChannelMinMaxObserver()
        obs(torch.zeros(shape))
        theirs = obs.calculate_qparams()
        ours = calculate_qparams(*min_max(torch.zeros(shape), 0), torch.quint8, torch.per_channel_affine)
        assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1].long())
    scale, zero_point = calculate_qparams(*min_max(torch.zeros(4)), torch.qint8, torch.per_tensor_symmetric)
    assert scale.item() == torch.finfo(torch.float32).eps and zero_point.item() == 0


def _torch_int_repr(x, scale, zero_point, dtype):
    return torch.quantize_per_tensor(x, scale, zero_point, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_quantize_per_tensor_equals_torch_on_random_scales_and_zero_points(dtype):
    g = torch.Generator().manual_seed(2)
    quant_min, quant_max = RANGES[dtype]
    for _ in range(40):
        magnitude = 10 ** float(torch.empty(()).uniform_(-3, 3, generator=g))
        x = magnitude * torch.randn(97, generator=g)  # 97: vectorised body and scalar tail
        scale = magnitude * float(torch.empty(()).uniform_(0.001, 0.1, generator=g))
        zero_point = int(torch.randint(quant_min, quant_max + 1, (), generator=g))
        theirs = _torch_int_repr(x, scale, zero_point, dtype)
        ours = quantize_per_tensor(x, scale, zero_point, dtype)
        assert ours.dtype == theirs.int_repr().dtype
        assert torch.equal(ours, theirs.int_repr())
        assert torch.equal(dequantize(ours, scale, zero_point), theirs.dequantize())


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_ties_go_to_even_after_adding_the_zero_point(dtype):
    quant_min, quant_max = RANGES[dtype]
    halves = torch.arange(-150, 150).float() + 0.5
    for scale in (1.0, 0.25, 2.0**-7, 8.0):  # powers of two: x / s is exactly k + 1/2
        for zero_point in (0, 1, 3, quant_min, quant_max, (quant_min + quant_max) // 2 + 1):
            x = halves * scale
            theirs = _torch_int_repr(x, scale, zero_point, dtype).int_repr()
            assert torch.equal(quantize_per_tensor(x, scale, zero_point, dtype), theirs)
            axis_theirs = torch.quantize_per_channel(x[None], torch.tensor([scale]), torch.tensor([zero_point]), 0,
                                                     dtype).int_repr()[0]
            assert torch.equal(quantize_per_channel(x[None], torch.tensor([scale]), torch.tensor([zero_point]), 0,
                                                    dtype)[0], axis_theirs)
            # Half to even of x / s + z: the textbook round(x / s) + z differs for every odd zero point.
            expected = torch.round(halves + zero_point).clamp(quant_min, quant_max)
            assert torch.equal(theirs.long(), expected.long())


@pytest.mark.skipif(not X86, reason="FBGEMM's fused and unfused rounding are pinned on x86 only")
@pytest.mark.parametrize("dtype", DTYPES)
def test_near_ties_fused_per_tensor_and_unfused_per_channel(dtype):
    g = torch.Generator().manual_seed(3)
    quant_min, quant_max = RANGES[dtype]
    differ = 0
    for _ in range(30):
        scale = float(torch.empty(()).uniform_(0.003, 2.0, generator=g))
        zero_point = int(torch.randint(quant_min, quant_max + 1, (), generator=g))
        # Ties rebuilt in float32 with an arbitrary scale: x / s lands a rounding away from k + 1/2.
        x = (torch.arange(-200, 200).float() + 0.5) * torch.tensor(scale)
        per_tensor = quantize_per_tensor(x, scale, zero_point, dtype)
        per_channel = quantize_per_channel(x[None], torch.tensor([scale]), torch.tensor([zero_point]), 0, dtype)[0]
        assert torch.equal(per_tensor, _torch_int_repr(x, scale, zero_point, dtype).int_repr())
        theirs = torch.quantize_per_channel(x[None], torch.tensor([scale], dtype=torch.float64),
                                            torch.tensor([zero_point]), 0, dtype)
        assert torch.equal(per_channel, theirs.int_repr()[0])
        differ += int((per_tensor != per_channel).sum())
    assert differ > 0  # the two kernels really do round differently, and we follow each


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_of_range_infinite_non_contiguous_empty_and_zero_d(dtype):
    quant_min, quant_max = RANGES[dtype]
    x = torch.tensor([-1e30, -1e3, 1e3, 1e30, math.inf, -math.inf, 0.0, -0.0])
    assert torch.equal(quantize_per_tensor(x, 0.1, 5, dtype), _torch_int_repr(x, 0.1, 5, dtype).int_repr())
    assert quantize_per_tensor(x, 0.1, 5, dtype)[[0, 3, 4, 5]].tolist() == [quant_min, quant_max, quant_max, quant_min]
    g = torch.Generator().manual_seed(4)
    base = torch.randn(8, 6, generator=g)
    for t in (base.t(), base[:, ::2], base.expand(2, 8, 6), torch.zeros(0, 4), torch.tensor(0.37)):
        theirs = _torch_int_repr(t.contiguous(), 0.02, 1, dtype)
        ours = quantize_per_tensor(t, 0.02, 1, dtype)
        assert ours.shape == t.shape and torch.equal(ours, theirs.int_repr())
        assert torch.equal(dequantize(ours, 0.02, 1), theirs.dequantize())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_quantize_per_channel_and_dequantize_equal_torch(dtype, axis):
    g = torch.Generator().manual_seed(5)
    quant_min, quant_max = RANGES[dtype]
    x = torch.randn(3, 4, 5, generator=g) * 4
    channels = x.size(axis)
    scales = torch.rand(channels, generator=g, dtype=torch.float64) * 0.1 + 1e-3
    zero_points = torch.randint(quant_min, quant_max + 1, (channels,), generator=g)
    theirs = torch.quantize_per_channel(x, scales, zero_points, axis % 3, dtype)
    ours = quantize_per_channel(x, scales, zero_points, axis, dtype)
    assert torch.equal(ours, theirs.int_repr())
    assert torch.equal(dequantize(ours, scales, zero_points, axis), theirs.dequantize())
    # The same values in a non-contiguous layout.
    strided = x.transpose(0, 2).contiguous().transpose(0, 2)
    assert not strided.is_contiguous()
    assert torch.equal(quantize_per_channel(strided, scales, zero_points, axis, dtype), ours)
    empty = torch.zeros(0, channels)
    assert quantize_per_channel(empty, scales, zero_points, 1, dtype).shape == (0, channels)


def test_where_it_differs_other_float_dtypes_are_read_as_float32():
    x = torch.randn(50, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        torch.quantize_per_tensor(x, 0.05, 3, torch.quint8)
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        t = x.to(dtype)
        theirs = _torch_int_repr(t.float(), 0.05, 3, torch.quint8).int_repr()
        assert torch.equal(quantize_per_tensor(t, 0.05, 3, torch.quint8), theirs)
    # Zero points: int32 for affine observers, int64 for symmetric ones; ours are always int64.
    obs = MinMaxObserver()
    obs(x.float())
    assert obs.calculate_qparams()[1].dtype == torch.int32
    assert calculate_qparams(*min_max(x))[1].dtype == torch.int64


def test_bad_arguments_raise_clear_errors():
    x = torch.randn(4, 3)
    cases = [
        (lambda: quantize_per_tensor(x, 0.1, 0, torch.int8), TypeError, "dtype must be torch.qint8"),
        (lambda: quantize_per_tensor(x, 0.0, 0, torch.qint8), ValueError, "scale must be a positive"),
        (lambda: quantize_per_tensor(x, math.nan, 0, torch.qint8), ValueError, "scale must be a positive"),
        (lambda: quantize_per_tensor(x, 0.1, 2.5, torch.qint8), TypeError, "zero_point must be an int"),
        (lambda: quantize_per_tensor(x, 0.1, -1, torch.quint8), ValueError, r"zero_point must lie in \[0, 255\]"),
        (lambda: quantize_per_tensor(x.long(), 0.1, 0, torch.qint8), TypeError, "input must be a floating-point"),
        (lambda: quantize_per_channel(x, torch.ones(4), torch.zeros(4, dtype=torch.long), 2, torch.qint8),
         ValueError, "axis must be an int in"),
        (lambda: quantize_per_channel(x, torch.ones(3), torch.zeros(3, dtype=torch.long), 0, torch.qint8),
         ValueError, r"input.size\(axis\)=4"),
        (lambda: quantize_per_channel(x, -torch.ones(4), torch.zeros(4, dtype=torch.long), 0, torch.qint8),
         ValueError, "scales must be positive"),
        (lambda: quantize_per_channel(x, torch.ones(4), torch.zeros(4), 0, torch.qint8), TypeError,
         "zero_points must be a 1-D integer"),
        (lambda: calculate_qparams(torch.tensor(0.0), torch.tensor(1.0), torch.qint8, "affine"), TypeError,
         "qscheme must be one of"),
        (lambda: dequantize(x, 0.1, 0), TypeError, "int_repr must be an integer tensor"),
        (lambda: quantize_linear_layers("model"), TypeError, "model must be an nn.Module"),
        (lambda: QuantizedLinear.from_float(nn.Conv1d(2, 2, 1)), TypeError, "linear must be an nn.Linear"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_quantized_linear_is_linear_with_the_dequantized_weight():
    g = torch.Generator().manual_seed(6)
    for bias in (True, False):
        linear = nn.Linear(16, 12, bias=bias)
        with torch.no_grad():
            linear.weight.copy_(torch.randn(12, 16, generator=g) * torch.logspace(-3, 1, 12)[:, None])
        layer = QuantizedLinear.from_float(linear)
        obs = PerChannelMinMaxObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
        obs(linear.weight.detach())
        scale, zero_point = obs.calculate_qparams()
        theirs = torch.quantize_per_channel(linear.weight.detach(), scale.double(), zero_point, 0, torch.qint8)
        assert torch.equal(layer.weight, theirs.int_repr()) and torch.equal(layer.weight_scale, scale)
        reference = nn.Linear(16, 12, bias=bias)
        with torch.no_grad():
            reference.weight.copy_(theirs.dequantize())
            if bias:
                reference.bias.copy_(linear.bias)
        for shape in ((5, 16), (2, 3, 16), (0, 16)):
            x = torch.randn(shape, generator=g)
            torch.testing.assert_close(layer(x), reference(x), rtol=0, atol=0)
        x64 = torch.randn(4, 16, generator=g, dtype=torch.float64)
        assert layer(x64).dtype == torch.float64
        fresh = QuantizedLinear(16, 12, bias=bias)
        fresh.load_state_dict(layer.state_dict())
        assert torch.equal(fresh(x), layer(x))


def test_quantize_linear_layers_keeps_the_tie_and_the_original():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_embd=32, n_head=2, block_size=16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = quantize_linear_layers(model)
    kinds = {name: type(m).__name__ for name, m in qmodel.named_modules() if isinstance(m, (nn.Linear, QuantizedLinear))}
    assert kinds.pop("lm_head") == "Linear"
    assert set(kinds.values()) == {"QuantizedLinear"} and len(kinds) == 2 * 4
    assert qmodel.lm_head.weight is qmodel.transformer.wte.weight
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
    same = quantize_linear_layers(model, inplace=True)
    assert same is model and isinstance(model.transformer.h[0].mlp.c_fc, QuantizedLinear)


@pytest.mark.parametrize("fields", [{}, {"bias": False}, {"n_layer": 2, "n_embd": 48, "vocab_size": 300}])
def test_state_bytes_equal_the_formula(fields):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{"n_layer": 1, "n_embd": 64, "block_size": 32, **fields}))
    assert state_bytes(model) == gpt_state_bytes(model.config) == 4 * model.num_parameters()
    assert state_bytes(quantize_linear_layers(model)) == gpt_state_bytes(model.config, quantized=True)


def test_ours_has_the_int8_weights_of_quantize_dynamic():
    quantization = pytest.importorskip("torch.ao.quantization")
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)).eval()
    ours = quantize_linear_layers(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = quantization.quantize_dynamic(model, {nn.Linear: quantization.per_channel_dynamic_qconfig},
                                               dtype=torch.qint8)
    for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        mine, dynamic = ours.transformer.h[0].get_submodule(name), theirs.transformer.h[0].get_submodule(name)
        weight = dynamic.weight()
        assert torch.equal(mine.weight, weight.int_repr()), name
        assert torch.equal(mine.weight_scale.double(), weight.q_per_channel_scales()), name
        x = torch.randn(4, mine.in_features)
        # Close, not equal: quantize_dynamic rounds the activations to 8 bits as well.
        torch.testing.assert_close(dynamic(x), mine(x), rtol=0.05, atol=0.02)


def test_loss_barely_moves_and_the_error_formula_holds():
    idx, targets = corpus_batch(4, 16, seed=0)
    torch.manual_seed(0)
    change = loss_change(GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)), idx, targets)
    assert abs(change["relative"]) < 1e-3 and change["float"] > 5.0
    measured, predicted = quantization_mse(torch.randn(8, 8192), per_channel=True)
    torch.testing.assert_close(measured, predicted, rtol=0.05, atol=0)
    tensor_mse, _ = quantization_mse(outlier_weight(), per_channel=False)
    channel_mse, _ = quantization_mse(outlier_weight(), per_channel=True)
    assert (tensor_mse[2:] / channel_mse[2:]).min() > 1000
    assert isinstance(plot_quantization_error(), Figure)


def test_challenges_accept_the_solutions_and_reject_wrong_attempts():
    check_pack_int4(pack_int4)
    check_percentile_qparams(percentile_qparams)
    values = torch.randint(-8, 8, (4, 10), dtype=torch.int8)
    assert torch.equal(unpack_int4(pack_int4(values)), values)

    def swapped_nibbles(v):
        return pack_int4(v.view(*v.shape[:-1], -1, 2).flip(-1).flatten(-2))

    with pytest.raises(AssertionError, match="low nibble"):
        check_pack_int4(swapped_nibbles)

    def min_max_instead(x, percentile=99.9, dtype=torch.quint8):
        return calculate_qparams(*min_max(x), dtype)

    with pytest.raises(AssertionError, match="percentile"):
        check_percentile_qparams(min_max_instead)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quantized_linear_on_cuda_matches_the_cpu():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    layer = QuantizedLinear.from_float(linear)
    layer_cuda = QuantizedLinear.from_float(linear.cuda())
    assert torch.equal(layer_cuda.weight.cpu(), layer.weight)
    x = torch.randn(8, 64)
    torch.testing.assert_close(layer_cuda(x.cuda()).cpu(), layer(x), rtol=1e-5, atol=1e-5)
