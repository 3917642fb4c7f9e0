"""The proof behind "Summoning tensors": our from-scratch factories against PyTorch's own."""

from __future__ import annotations

import math
import random

import pytest
import torch

from torchenstein.challenges import challenges_in
from torchenstein.tensors import creation
from torchenstein.tensors.creation import (
    anti_identity,
    arange,
    birth_certificate,
    check_anti_identity,
    check_checkerboard_tensor,
    checkerboard_tensor,
    eye,
    linspace,
    plot_random_distributions,
)


def _outcome(fn, *args, **kwargs):
    """Either ("ok", tensor) or ("error", None): what a learner sees when calling a factory."""
    try:
        return "ok", fn(*args, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return "error", None


def _assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype
    if ours.dtype.is_floating_point:
        torch.testing.assert_close(ours, theirs)
    else:
        assert torch.equal(ours, theirs)


# arange


def _random_arange_args(rng: random.Random, kind: str) -> tuple:
    if kind == "int":
        start, span, step = rng.randint(-50, 50), rng.randint(0, 60), rng.choice([1, 2, 3, 7, 100])
    else:
        start, span = rng.uniform(-20, 20), rng.uniform(0, 30)
        step = rng.choice([0.1, 0.25, 0.3, 1.0, 1.7, 0.01, 5.5])
    # Half the time count down: the step turns negative and the end lies below the start.
    sign = rng.choice([1, -1])
    return start, start + sign * span, sign * step


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["int", "float"])
def test_arange_matches_torch_on_random_arguments(seed, kind):
    rng = random.Random(seed)
    for _ in range(60):
        start, end, step = _random_arange_args(rng, kind)
        _assert_same(arange(start, end, step), torch.arange(start, end, step))


INT_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8]


@pytest.mark.parametrize("dtype", [*INT_DTYPES, torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_arange_matches_torch_for_every_dtype(dtype, seed):
    rng = random.Random(100 + seed)
    for _ in range(40):
        start, end, step = _random_arange_args(rng, "int" if not dtype.is_floating_point else "float")
        _assert_same(arange(start, end, step, dtype=dtype), torch.arange(start, end, step, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_arange_in_half_precision_rounds_once(dtype):
    rng = random.Random(7)
    for _ in range(40):
        start, end, step = _random_arange_args(rng, "float")
        ours, theirs = arange(start, end, step, dtype=dtype), torch.arange(start, end, step, dtype=dtype)
        # Ours is the float64 range rounded once; PyTorch's kernel rounds along the way in low precision,
        # so the two agree only to a few steps of the dtype's resolution at the size of the range.
        assert torch.equal(ours, arange(start, end, step, dtype=torch.float64).to(dtype))
        atol = 2 * torch.finfo(dtype).eps * max(1.0, abs(start), abs(end))
        torch.testing.assert_close(ours.double(), theirs.double(), rtol=0, atol=atol)


@pytest.mark.parametrize(
    "args",
    [(5,), (0,), (3, 3), (2.5, 2.5), (0, 1, 5), (1, 1.3, 0.1), (-1, 2, 0.3), (10, 0, -3), (0, 1, float("inf"))],
)
def test_arange_edge_cases(args):
    _assert_same(arange(*args), torch.arange(*args))


def test_arange_includes_the_end_exactly_when_torch_does():
    # The overshoot of Dr. Hammer's trap is faithful: the same length, computed the same way.
    assert len(arange(1, 1.3, 0.1)) == len(torch.arange(1, 1.3, 0.1)) == math.ceil((1.3 - 1) / 0.1)


def test_arange_truncates_arguments_for_integer_dtypes_like_torch():
    for args in [(0, 5.9), (0.5, 5.9, 2.7), (-3.7, 4.2, 1.5), (9.9, -2.2, -2.5)]:
        _assert_same(arange(*args, dtype=torch.int64), torch.arange(*args, dtype=torch.int64))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_arange_with_float_bounds_has_torchs_length_in_every_integer_dtype(dtype):
    # int64 counts the length from the truncated bounds, the narrower integer dtypes from the bounds as
    # given (in double precision): arange(0, 5.5) has 5 elements in int64 and 6 in int32, int16 and uint8.
    assert len(arange(0, 5.5, dtype=dtype)) == len(torch.arange(0, 5.5, dtype=dtype)) == (5 if dtype == torch.int64 else 6)
    rng = random.Random(dtype.itemsize)
    for _ in range(150):
        start, span = rng.uniform(-40, 40), rng.uniform(0, 60)
        step = rng.choice([1.0, 1.5, 2.9, 3.0, 7.25])
        sign = rng.choice([1, -1])
        args = (start, start + sign * span, sign * step)
        _assert_same(arange(*args, dtype=dtype), torch.arange(*args, dtype=dtype))
        # An int start with a float end: the two raise together (a start past the end) or agree.
        mixed = (round(start), args[1], sign * round(step))
        ours, theirs = _outcome(arange, *mixed, dtype=dtype), _outcome(torch.arange, *mixed, dtype=dtype)
        assert ours[0] == theirs[0], mixed
        if ours[0] == "ok":
            _assert_same(ours[1], theirs[1])


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_a_step_that_truncates_to_zero_is_refused_where_torch_differs(dtype):
    # Where it differs from PyTorch: ours refuses step=0.5 for every integer dtype. PyTorch refuses it for
    # int64; for the narrower integer dtypes torch 2.13 returns ceil(5 / 0.5) copies of the start instead.
    with pytest.raises(ValueError, match="step must be nonzero, got step=0.5, which truncates to 0"):
        arange(0, 5, 0.5, dtype=dtype)
    outcome = _outcome(torch.arange, 0, 5, 0.5, dtype=dtype)
    if dtype == torch.int64:
        assert outcome[0] == "error"
    else:
        assert outcome[0] == "error" or outcome[1].unique().tolist() == [0]


def test_arange_infers_dtype_like_torch():
    assert arange(3).dtype == torch.arange(3).dtype == torch.int64
    assert arange(0, 3, 1.0).dtype == torch.arange(0, 3, 1.0).dtype == torch.float32
    torch.set_default_dtype(torch.float64)  # the conftest fixture restores float32 afterwards
    assert arange(0.0, 3).dtype == torch.arange(0.0, 3).dtype == torch.float64


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((0, 5, 0), {}, "step must be nonzero, got step=0"),
        ((0, 5, float("nan")), {}, "step must be nonzero"),
        ((0, 1, 0.5), {"dtype": torch.int64}, "step must be nonzero"),
        ((5, 0), {}, "step=1 points away from end"),
        ((0, 5, -1), {}, "step=-1 points away from end"),
        ((0.0, float("inf")), {}, "start and end must be finite"),
        ((float("nan"), 1.0), {}, "start and end must be finite"),
    ],
)
def test_arange_refuses_what_torch_refuses(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        arange(*args, **kwargs)
    with pytest.raises((RuntimeError, ValueError)):
        torch.arange(*args, **kwargs)


@pytest.mark.parametrize("seed", range(4))
def test_arange_raises_exactly_when_torch_raises(seed):
    rng = random.Random(seed)
    for _ in range(200):
        start, end = rng.randint(-5, 5), rng.randint(-5, 5)
        step = rng.choice([-2, -1, 0, 1, 2, 0.5, -0.5])
        ours, theirs = _outcome(arange, start, end, step), _outcome(torch.arange, start, end, step)
        assert ours[0] == theirs[0], (start, end, step)
        if ours[0] == "ok":
            _assert_same(ours[1], theirs[1])


def test_arange_type_errors_name_the_argument():
    with pytest.raises(TypeError, match="end must be an int or a float, got str '5'"):
        arange(0, "5")
    with pytest.raises(TypeError, match="start must be an int or a float, got bool"):
        arange(True, 5)
    with pytest.raises(TypeError, match="dtype must be a real floating point or integer dtype"):
        arange(3, dtype=torch.bool)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        arange(3, dtype="float32")


# linspace


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(6))
def test_linspace_matches_torch_for_floats(dtype, seed):
    rng = random.Random(seed)
    for _ in range(50):
        start, end, steps = rng.uniform(-100, 100), rng.uniform(-100, 100), rng.randint(0, 300)
        ours, theirs = linspace(start, end, steps, dtype=dtype), torch.linspace(start, end, steps, dtype=dtype)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        # Both endpoints are hit exactly by both versions.
        assert torch.equal(ours[:1], theirs[:1]) and torch.equal(ours[-1:], theirs[-1:])
        # Inside, PyTorch rounds in the output dtype and we round once from float64: a few ulps of the range apart.
        atol = 8 * torch.finfo(dtype).eps * max(1.0, abs(start), abs(end))
        torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("seed", range(4))
def test_linspace_integers_agree_to_within_one(seed):
    rng = random.Random(seed)
    for _ in range(100):
        start, end, steps = rng.randint(-60, 60), rng.randint(-60, 60), rng.randint(1, 40)
        ours, theirs = linspace(start, end, steps, dtype=torch.int64), torch.linspace(start, end, steps, dtype=torch.int64)
        assert ours.dtype == torch.int64 and ours.shape == theirs.shape
        assert ours[0] == theirs[0] == start and ours[-1] == theirs[-1]
        # Where the exact value is (nearly) a whole number the two truncations may land one apart.
        assert (ours - theirs).abs().max() <= 1


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_linspace_in_every_integer_dtype_agrees_to_within_one(dtype):
    info = torch.iinfo(dtype)
    rng = random.Random(dtype.itemsize)
    for _ in range(60):
        # Ints and floats inside the dtype's range, and for uint8 negative ints too, which wrap.
        low = -info.max if dtype == torch.uint8 else info.min
        start = rng.randint(max(low, -300), min(info.max, 300))
        end = rng.uniform(max(info.min, -300), min(info.max, 300))
        steps = rng.randint(1, 30)
        ours, theirs = linspace(start, end, steps, dtype=dtype), torch.linspace(start, end, steps, dtype=dtype)
        assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape
        assert ours[0] == theirs[0]
        assert (ours.long() - theirs.long()).abs().max() <= 1, (start, end, steps)


def test_linspace_wraps_a_negative_int_into_uint8_like_torch():
    ours = linspace(-1, 47, 13, dtype=torch.uint8)
    theirs = torch.linspace(-1, 47, 13, dtype=torch.uint8)
    assert ours[0].item() == theirs[0].item() == 255 and ours[-1].item() == 47
    assert (ours.long() - theirs.long()).abs().max() <= 1


@pytest.mark.parametrize(
    ("start", "end", "dtype"),
    [(-0.5, 3, torch.uint8), (-1.0, 47, torch.uint8), (-256, 3, torch.uint8), (255.5, 3, torch.uint8),
     (0, 300, torch.int8), (-128.9, 0, torch.int8), (0, 70000, torch.int16), (0, 2**40, torch.int32),
     (0, 1e19, torch.int64), (0, float("nan"), torch.int32), (0, float("inf"), torch.int64),
     (0, 70000, torch.float16), (0, 1e39, torch.float32), (0, 1e39, torch.bfloat16), (0, 10**400, torch.float64)],
)
def test_linspace_refuses_endpoints_that_do_not_fit_the_dtype_like_torch(start, end, dtype):
    with pytest.raises(ValueError, match="does not fit"):
        linspace(start, end, 3, dtype=dtype)
    if end != 10**400:  # PyTorch cannot even read an int that large
        with pytest.raises(RuntimeError, match="without overflow"):
            torch.linspace(start, end, 3, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_linspace_in_half_precision_rounds_once(dtype):
    rng = random.Random(3)
    for _ in range(40):
        start, end, steps = rng.uniform(-100, 100), rng.uniform(-100, 100), rng.randint(0, 100)
        ours, theirs = linspace(start, end, steps, dtype=dtype), torch.linspace(start, end, steps, dtype=dtype)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert torch.equal(ours, linspace(start, end, steps, dtype=torch.float64).to(dtype))
        atol = 4 * torch.finfo(dtype).eps * max(1.0, abs(start), abs(end))
        torch.testing.assert_close(ours.double(), theirs.double(), rtol=0, atol=atol)


def test_linspace_keeps_infinities_and_nan_for_float_dtypes_like_torch():
    for end in (float("inf"), float("nan")):
        assert linspace(0, end, 3).isnan().all() and torch.linspace(0, end, 3).isnan().all()


def test_linspace_integer_example_truncates():
    assert linspace(0, 10, 4, dtype=torch.int64).tolist() == torch.linspace(0, 10, 4, dtype=torch.int64).tolist()
    assert linspace(2.7, 9.9, 3, dtype=torch.int64).tolist() == torch.linspace(2.7, 9.9, 3, dtype=torch.int64).tolist()


@pytest.mark.parametrize("start, end, steps", [(0, 1, 0), (3, 7, 1), (-2.5, 4, 2), (5, 5, 4), (1, -1, 3)])
def test_linspace_edge_cases(start, end, steps):
    _assert_same(linspace(start, end, steps), torch.linspace(start, end, steps))


def test_linspace_default_dtype_is_float_even_for_ints():
    assert linspace(0, 10, 3).dtype == torch.linspace(0, 10, 3).dtype == torch.float32


def test_linspace_errors():
    with pytest.raises(ValueError, match="steps must be a non-negative int, got steps=-1"):
        linspace(0, 1, -1)
    with pytest.raises(RuntimeError):
        torch.linspace(0, 1, -1)
    with pytest.raises(TypeError, match="steps must be an int, got float 1.5"):
        linspace(0, 1, 1.5)
    with pytest.raises(TypeError):
        torch.linspace(0, 1, 1.5)
    with pytest.raises(TypeError, match="start must be an int or a float"):
        linspace(None, 1, 3)


# eye


@pytest.mark.parametrize("dtype", [None, torch.float32, torch.float64, torch.int64, torch.bool, torch.uint8])
def test_eye_matches_torch(dtype):
    for n in range(6):
        for m in [None, 0, 1, 3, 7]:
            kwargs = {} if dtype is None else {"dtype": dtype}
            args = (n,) if m is None else (n, m)
            ours, theirs = eye(*args, **kwargs), torch.eye(*args, **kwargs)
            assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), (args, dtype)


def test_eye_errors():
    with pytest.raises(ValueError, match="n must be a non-negative int, got n=-1"):
        eye(-1)
    with pytest.raises(ValueError, match="m must be a non-negative int, got m=-2"):
        eye(2, -2)
    with pytest.raises(TypeError, match="n must be an int, got float 2.0"):
        eye(2.0)
    with pytest.raises(RuntimeError):
        torch.eye(-1)


# devices


def test_factories_place_their_result_on_the_requested_device():
    for tensor in (arange(3, device="cpu"), linspace(0, 1, 3, device="cpu"), eye(2, device="cpu")):
        assert tensor.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_factories_agree_with_torch_on_cuda():
    _assert_same(arange(-3, 5, 0.5, device="cuda").cpu(), torch.arange(-3, 5, 0.5, device="cuda").cpu())
    torch.testing.assert_close(linspace(-2, 7, 50, device="cuda"), torch.linspace(-2, 7, 50, device="cuda"))
    assert torch.equal(eye(3, 4, device="cuda"), torch.eye(3, 4, device="cuda"))


# birth certificate


def test_birth_certificate_reports_the_four_attributes():
    text = birth_certificate(torch.zeros(2, 0, 3, dtype=torch.float16, requires_grad=True))
    assert text == "shape=(2, 0, 3) dtype=torch.float16 device=cpu requires_grad=True"
    assert "shape=() " in birth_certificate(torch.tensor(1))
    with pytest.raises(TypeError, match="tensor must be a torch.Tensor, got list"):
        birth_certificate([1, 2])


# figure


def test_random_distributions_figure_is_reproducible():
    heights = [
        [patch.get_height() for ax in plot_random_distributions(n_samples=300, seed=3).axes for patch in ax.patches]
        for _ in range(2)
    ]
    assert len(heights[0]) > 0 and heights[0] == heights[1]
    # Every sample is counted once in each of the three histograms.
    fig = plot_random_distributions(n_samples=300)
    assert [sum(p.get_height() for p in ax.patches) for ax in fig.axes] == [300, 300, 300]


def test_random_distributions_figure_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    plot_random_distributions(n_samples=10)
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ValueError, match="n_samples must be at least 1, got 0"):
        plot_random_distributions(n_samples=0)


# challenges


def test_challenges_are_found_and_solutions_pass():
    assert set(challenges_in(creation)) == {"checkerboard_tensor", "anti_identity"}
    check_checkerboard_tensor(checkerboard_tensor)
    check_anti_identity(anti_identity)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda r, c: (torch.arange(r)[:, None] + torch.arange(c)) % 2 == 1, "expected dtype torch.int64"),
        (lambda r, c: (torch.arange(r)[:, None] + torch.arange(c) + 1) % 2, "expected"),
        (lambda r, c: ((torch.arange(max(r, 0))[:, None] + torch.arange(max(c, 0))) % 2), "should raise ValueError"),
    ],
)
def test_checkerboard_checker_rejects_wrong_attempts(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_checkerboard_tensor(wrong)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda n, dtype=None: torch.eye(n, dtype=dtype), "expected"),
        (lambda n, dtype=None: torch.eye(n).flip(1), "expected dtype torch.int64"),
        (lambda n, dtype=None: torch.eye(max(n, 0), dtype=dtype).flip(1), "should raise ValueError"),
    ],
)
def test_anti_identity_checker_rejects_wrong_attempts(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_anti_identity(wrong)


def test_challenge_solutions_refuse_negative_sizes():
    with pytest.raises(ValueError, match="n_cols must be a non-negative int, got n_cols=-3"):
        checkerboard_tensor(2, -3)
    with pytest.raises(ValueError, match="n must be a non-negative int, got n=-1"):
        anti_identity(-1)


# What the lesson says of PyTorch's own factories


@pytest.mark.parametrize("like", [torch.zeros_like, torch.ones_like, torch.empty_like, torch.rand_like, torch.randn_like,
                                  lambda t: torch.full_like(t, 2.0)])
def test_the_like_family_keeps_the_memory_layout_of_a_dense_input(like):
    transposed = torch.ones(2, 3).t()
    assert like(transposed).stride() == transposed.stride() == (1, 3)
    images = torch.ones(2, 3, 4, 5).to(memory_format=torch.channels_last)
    assert like(images).stride() == images.stride() and like(images).is_contiguous(memory_format=torch.channels_last)
    assert torch.zeros_like(transposed, memory_format=torch.contiguous_format).stride() == (2, 1)
    w = torch.ones(2, dtype=torch.float64, requires_grad=True)
    assert like(w).dtype == torch.float64 and not like(w).requires_grad


def test_an_integer_tensor_refuses_to_average_until_asked_for_a_float():
    scores = torch.tensor([1, 2, 4])
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype"):
        scores.mean()
    assert scores.mean(dtype=torch.float64).dtype == torch.float64
    torch.testing.assert_close(scores.float().mean(), torch.tensor(7 / 3))


def test_the_checkers_say_why_an_empty_board_fails():
    def from_lists(n_rows, n_cols):  # right everywhere but on empty sizes, where torch.tensor([]) is float32 (0,)
        if n_rows < 0 or n_cols < 0:
            raise ValueError("negative")
        return torch.tensor([[(i + j) % 2 for j in range(n_cols)] for i in range(n_rows)])

    with pytest.raises(AssertionError, match=r"checkerboard_tensor\(0, 0\): expected shape \(0, 0\).*an empty board"):
        check_checkerboard_tensor(from_lists)

    def crashes(n_rows, n_cols):
        return torch.zeros(n_rows, n_cols, dtype=torch.int64)[1:] + 1 / n_rows

    with pytest.raises(AssertionError, match=r"checkerboard_tensor\(0, 0\) raised ZeroDivisionError"):
        check_checkerboard_tensor(crashes)
