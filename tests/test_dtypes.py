"""The thorough proof of the dtypes lesson: every from-scratch piece against PyTorch's own."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

import torchenstein.tensors.dtypes as lesson
from torchenstein.challenges import challenges_in
from torchenstein.lab import device_available, pick_device
from torchenstein.tensors.dtypes import (
    FLOAT_LAYOUTS,
    PROMOTABLE_DTYPES,
    check_next_representable_float,
    check_survives_round_trip,
    compose_float,
    finfo_from_bits,
    float_fields,
    next_representable_float,
    plot_float_formats,
    plot_precision,
    promote_types,
    round_to_bfloat16,
    survives_round_trip,
    value_from_fields,
)

INT_OF = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}
SPECIALS = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 0.1, -65504.0, 1e-40, 1e-45, 3.4e38]


def bit_patterns(dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Every 16-bit pattern of a 16-bit format, or many random patterns of a wider one, plus specials."""
    if dtype in (torch.float16, torch.bfloat16):
        patterns = torch.arange(-(2**15), 2**15).to(torch.int16).view(dtype)
    else:
        g = torch.Generator().manual_seed(seed)
        info = torch.iinfo(INT_OF[dtype])
        patterns = torch.randint(info.min, info.max, (200_000,), generator=g, dtype=INT_OF[dtype]).view(dtype)
    return torch.cat([patterns, torch.tensor(SPECIALS, dtype=torch.float64).to(dtype)])


def assert_same_values(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal values, NaN where NaN, and the same sign of zero."""
    assert got.dtype == expected.dtype and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(torch.signbit(got[got == 0]), torch.signbit(expected[expected == 0]))


@pytest.mark.parametrize("dtype", list(FLOAT_LAYOUTS))
@pytest.mark.parametrize("seed", [0, 1])
def test_fields_round_trip_bitwise(dtype, seed):
    x = bit_patterns(dtype, seed)
    rebuilt = compose_float(*float_fields(x), dtype)
    assert rebuilt.dtype == dtype
    assert torch.equal(rebuilt.view(INT_OF[dtype]), x.view(INT_OF[dtype]))


@pytest.mark.parametrize("dtype", list(FLOAT_LAYOUTS))
def test_value_from_fields_is_the_stored_value(dtype):
    x = bit_patterns(dtype)
    value = value_from_fields(*float_fields(x), dtype)
    assert value.dtype == torch.float64
    assert_same_values(value, x.to(torch.float64))


@pytest.mark.parametrize("dtype", list(FLOAT_LAYOUTS))
def test_fields_of_landmark_numbers(dtype):
    e, m = FLOAT_LAYOUTS[dtype]
    bias = 2 ** (e - 1) - 1
    x = torch.tensor([1.0, -0.0, math.inf, -2.0], dtype=dtype)
    sign, exponent, mantissa = float_fields(x)
    assert sign.tolist() == [0, 1, 0, 1]
    assert exponent.tolist() == [bias, 0, 2**e - 1, bias + 1]
    assert mantissa.tolist() == [0, 0, 0, 0]
    smallest = compose_float(torch.tensor(0), torch.tensor(0), torch.tensor(1), dtype)
    assert smallest.item() == finfo_from_bits(e, m).smallest_subnormal
    assert compose_float(torch.tensor(0), torch.tensor(2**e - 1), torch.tensor(1), dtype).isnan()


@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (2, 3, 4)])
def test_fields_keep_the_shape(shape):
    x = torch.randn(shape)
    fields = float_fields(x)
    assert all(f.shape == x.shape and f.dtype == torch.int64 for f in fields)
    assert torch.equal(compose_float(*fields, torch.float32), x)


def test_fields_of_a_non_contiguous_tensor():
    x = torch.randn(4, 6, dtype=torch.float16).t()
    assert not x.is_contiguous()
    assert torch.equal(compose_float(*float_fields(x), torch.float16), x)


def test_field_errors():
    with pytest.raises(TypeError, match="x must be a float16, bfloat16, float32 or float64 tensor, got torch.int64"):
        float_fields(torch.arange(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        float_fields([1.0])
    with pytest.raises(TypeError, match="dtype must be a float16.*got torch.complex64"):
        compose_float(torch.tensor(0), torch.tensor(0), torch.tensor(0), torch.complex64)
    with pytest.raises(ValueError, match=r"exponent must lie in \[0, 31\] for torch.float16, got values up to 32"):
        compose_float(torch.tensor(0), torch.tensor(32), torch.tensor(0), torch.float16)
    with pytest.raises(ValueError, match="sign must lie in"):
        compose_float(torch.tensor(2), torch.tensor(0), torch.tensor(0), torch.float32)
    with pytest.raises(ValueError, match="mantissa must lie in"):
        compose_float(torch.tensor(0), torch.tensor(0), torch.tensor(-1), torch.bfloat16)


FINFO_CASES = [(torch.float16, 5, 10), (torch.bfloat16, 8, 7), (torch.float32, 8, 23), (torch.float64, 11, 52)]
if hasattr(torch, "float8_e5m2"):  # an IEEE-style 8-bit format: the same formulas hold
    FINFO_CASES.append((torch.float8_e5m2, 5, 2))


@pytest.mark.parametrize(("dtype", "e", "m"), FINFO_CASES)
def test_finfo_from_bits_matches_torch(dtype, e, m):
    mine, theirs = finfo_from_bits(e, m), torch.finfo(dtype)
    for name in ("bits", "max", "min", "tiny", "eps"):
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.tiny == theirs.smallest_normal


@pytest.mark.parametrize(("e", "m"), [(0, 10), (12, 10), (5, 0), (5, 53), (True, 3), (5, 2.0)])
def test_finfo_from_bits_rejects_bad_widths(e, m):
    with pytest.raises(ValueError, match="must be an int from"):
        finfo_from_bits(e, m)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_to_bfloat16_matches_torch(seed):
    x = bit_patterns(torch.float32, seed)
    # Exact ties, both parities, and values whose rounding carries into the exponent or to infinity.
    ties = torch.tensor([0x3F808000, 0x3F818000, 0x3F7FFFFF, 0x7F7FFFFF, -0x00008000, 0x00008000], dtype=torch.int64)
    x = torch.cat([x, ties.to(torch.int32).view(torch.float32)])
    assert_same_values(round_to_bfloat16(x), x.to(torch.bfloat16))


@pytest.mark.parametrize("length", [1, 3, 8, 16, 17, 40])
def test_round_to_bfloat16_maps_nan_to_nan_but_the_payload_is_the_platforms(length):
    # Where it differs from PyTorch: ours always writes 0x7FC0; PyTorch's bits depend on the machine
    # and on the path (scalar or vectorised), so only NaN-ness is compared.
    x = torch.cat([torch.full((length,), math.nan), -torch.full((length,), math.nan), torch.randn(length)])
    ours, theirs = round_to_bfloat16(x), x.to(torch.bfloat16)
    assert torch.equal(ours.isnan(), theirs.isnan()) and ours[: 2 * length].isnan().all()
    assert set((ours[: 2 * length].view(torch.int16).to(torch.int64) & 0xFFFF).tolist()) == {0x7FC0}
    numbers = ~x.isnan()
    assert torch.equal(ours[numbers].view(torch.int16), theirs[numbers].view(torch.int16))


@pytest.mark.parametrize(
    "x",
    [torch.randn(5, 3).t(), torch.randn(4)[::2], torch.randn(1, 3).expand(4, 3), torch.tensor(2.5), torch.empty(0, 3),
     torch.tensor([1e-45, -1e-45, 1e-39, 3.3e38, 3.39e38, -3.4e38])],
)
def test_round_to_bfloat16_matches_torch_on_any_layout_and_magnitude(x):
    ours = round_to_bfloat16(x)
    assert ours.shape == x.shape and torch.equal(ours.view(torch.int16), x.to(torch.bfloat16).view(torch.int16))


def test_round_to_bfloat16_keeps_shape_and_rejects_other_dtypes():
    x = torch.randn(3, 4)
    assert round_to_bfloat16(x).shape == (3, 4)
    with pytest.raises(TypeError, match="x must be a float32 tensor, got torch.float64"):
        round_to_bfloat16(x.double())


def test_promote_types_matches_torch_on_every_pair():
    for a in PROMOTABLE_DTYPES:
        for b in PROMOTABLE_DTYPES:
            assert promote_types(a, b) == torch.promote_types(a, b), (a, b)


def test_promote_types_rejects_dtypes_outside_the_subset():
    with pytest.raises(ValueError, match="type2 must be one of .* got torch.complex64"):
        promote_types(torch.float32, torch.complex64)


def test_the_category_rule_of_type_promotion():
    u8, i32, half = torch.tensor([1], dtype=torch.uint8), torch.tensor([7, -7], dtype=torch.int32), torch.ones(1, dtype=torch.float16)
    # Python scalars never widen a tensor of their own category ...
    assert torch.result_type(u8, 1000) == torch.uint8
    assert torch.result_type(half, 1e300) == torch.float16
    assert torch.result_type(i32, True) == torch.int32
    # ... but a higher category takes over, with the default float dtype for a Python float.
    assert (i32 + 0.5).dtype == torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    assert (i32 + 0.5).dtype == torch.float64
    torch.set_default_dtype(torch.float32)
    # Integer tensor / integer tensor is true division.
    assert (i32 / torch.tensor([2, 2], dtype=torch.int32)).dtype == torch.float32
    # Dimensioned tensors of the same category promote normally; zero-dim ones behave like scalars.
    assert torch.result_type(half, torch.ones(1)) == torch.float32
    assert torch.result_type(half, torch.tensor(1.0, dtype=torch.float64)) == torch.float16


def test_casting_truncates_toward_zero_and_integers_wrap():
    x = torch.tensor([-2.9, -1.5, -0.2, 0.0, 0.7, 1.5, 2.9])
    assert torch.equal(x.long(), torch.trunc(x).long())
    assert torch.equal(torch.tensor([250], dtype=torch.uint8) + 10, torch.tensor([4], dtype=torch.uint8))
    assert (torch.tensor([127], dtype=torch.int8) + 1).item() == -128
    assert torch.tensor([0.0, -0.0, 1e-30, math.nan]).bool().tolist() == [False, False, True, True]


def test_float16_edges():
    assert torch.tensor([65519.0, 65520.0]).half().tolist() == [65504.0, math.inf]
    smallest = torch.finfo(torch.float16).tiny * torch.finfo(torch.float16).eps  # 2**-24
    assert torch.tensor([smallest, smallest / 2, smallest * 0.51]).half().tolist() == [smallest, 0.0, smallest]
    one = torch.tensor(1.0, dtype=torch.float16)
    assert (one + torch.finfo(torch.float16).eps / 2).item() == 1.0


@pytest.mark.parametrize("dtype", list(FLOAT_LAYOUTS))
def test_next_representable_float_matches_nextafter(dtype):
    x = bit_patterns(dtype)
    expected = torch.nextafter(x, torch.tensor(math.inf, dtype=dtype))
    assert_same_values(next_representable_float(x), expected)


def test_next_representable_float_rejects_integers():
    with pytest.raises(TypeError, match="x must be a float16"):
        next_representable_float(torch.arange(3))


def test_survives_round_trip_errors():
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got torch.int64"):
        survives_round_trip(torch.arange(3), torch.float16)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype"):
        survives_round_trip(torch.ones(3), torch.int32)


def test_the_checkers_pass_the_solutions():
    check_next_representable_float(next_representable_float)
    check_survives_round_trip(survives_round_trip)
    assert set(challenges_in(lesson)) == {"next_representable_float", "survives_round_trip"}


def _next_by_eps(x):
    return x + torch.finfo(x.dtype).eps


def _next_ignoring_the_sign(x):
    int_dtype = INT_OF[x.dtype]
    return (x.view(int_dtype).to(torch.int64) + 1).to(int_dtype).view(x.dtype)


def _next_forgetting_zero(x):
    int_dtype = INT_OF[x.dtype]
    bits = x.view(int_dtype).to(torch.int64)
    stepped = torch.where(x >= 0, bits + 1, bits - 1).clamp(torch.iinfo(int_dtype).min, torch.iinfo(int_dtype).max)
    return torch.where(x.isnan() | (x == math.inf), x, stepped.to(int_dtype).view(x.dtype))


@pytest.mark.parametrize("attempt", [_next_by_eps, _next_ignoring_the_sign, _next_forgetting_zero])
def test_next_float_checker_rejects_wrong_attempts(attempt):
    with pytest.raises(AssertionError):
        check_next_representable_float(attempt)


@pytest.mark.parametrize(
    "attempt",
    [
        lambda x, dtype: x.to(dtype).to(x.dtype) == x,  # forgets that NaN != NaN
        lambda x, dtype: torch.isclose(x.to(dtype).to(x.dtype), x, equal_nan=True),  # "close" is not "exact"
        lambda x, dtype: x.to(dtype).isfinite() | x.isnan(),  # only checks for overflow
    ],
)
def test_round_trip_checker_rejects_wrong_attempts(attempt):
    with pytest.raises(AssertionError):
        check_survives_round_trip(attempt)


def test_plots_return_figures():
    fig = plot_float_formats(value=0.1)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    fig = plot_precision(points=32)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="points must be at least 2, got 1"):
        plot_precision(points=1)


def test_tensors_and_modules_move_to_the_picked_device():
    device = pick_device()
    assert device_available(device.type)
    x = torch.ones(2, 3)
    moved = x.to(device)
    assert moved.device.type == device.type and (moved is x) == (device.type == "cpu")
    layer = torch.nn.Linear(3, 2)
    assert layer.to(device) is layer  # modules move in place and return themselves
    assert all(p.device.type == device.type for p in layer.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="shows what a machine without CUDA does")
def test_a_machine_without_cuda():
    with pytest.raises(RuntimeError, match="has none"):
        pick_device("cuda")
    assert pick_device().type in {"mps", "cpu"}


def test_the_meta_device_refuses_elementwise_mixing_in_its_own_words():
    ghost = torch.ones(2, device="meta")
    with pytest.raises(RuntimeError, match="Tensor on device cpu is not on the expected device meta!"):
        ghost + torch.ones(2)
    assert (ghost @ torch.ones(2, 2)).device.type == "meta"  # meta does not check every operation
    assert (ghost + torch.tensor(1.0)).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_gpu_error_for_mixed_devices_is_the_one_the_lesson_quotes():
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but found at least two devices"):
        torch.ones(2, device="cuda") + torch.ones(2)
    # A zero-dimensional CPU tensor is allowed to join, like a Python scalar.
    assert (torch.ones(2, device="cuda") + torch.tensor(1.0)).device.type == "cuda"
