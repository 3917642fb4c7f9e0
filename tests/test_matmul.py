"""The thorough proof of the matmul lesson: every rank rule, dtype and error against PyTorch's own."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import torchenstein.tensors.matmul as lesson
from torchenstein.challenges import challenges_in
from torchenstein.tensors.matmul import (
    batched_quadratic_form,
    check_batched_quadratic_form,
    check_squared_distances_by_matmul,
    compare_matmuls,
    matmul,
    matmul_broadcast,
    matmul_flops,
    mm_loops,
    plot_matmul_shapes,
    plot_matmul_timings,
    squared_distances_by_matmul,
)

RANKS = [1, 2, 3, 4]
RANK_PAIRS = list(itertools.product(RANKS, RANKS))


def random_pair(rng: random.Random, rank_a: int, rank_b: int, *, k: int | None = None) -> tuple[tuple, tuple]:
    """Shapes of ranks ``rank_a`` and ``rank_b`` that matmul accepts, with batch dimensions that broadcast.

    Both batches are cut from the right end of one target batch shape, and some of their sizes are
    replaced by 1, so every broadcasting case (missing dimensions, ones on either side) turns up.
    """
    m, n = rng.randint(1, 4), rng.randint(1, 4)
    k = rng.randint(1, 5) if k is None else k
    batch_a, batch_b = max(rank_a - 2, 0), max(rank_b - 2, 0)
    target = [rng.randint(2, 3) for _ in range(max(batch_a, batch_b))]

    def cut(count: int) -> list[int]:
        sizes = target[len(target) - count :]
        return [1 if rng.random() < 0.3 else s for s in sizes]

    a = (k,) if rank_a == 1 else (*cut(batch_a), m, k)
    b = (k,) if rank_b == 1 else (*cut(batch_b), k, n)
    return a, b


def operands(a_shape, b_shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point or dtype.is_complex:
        return (torch.randn(a_shape, generator=g).to(dtype), torch.randn(b_shape, generator=g).to(dtype))
    # Small integers: no product or sum can overflow even int8, so the comparison is exact.
    return (torch.randint(-3, 4, a_shape, generator=g).to(dtype), torch.randint(-3, 4, b_shape, generator=g).to(dtype))


def assert_same_product(ours: torch.Tensor, theirs: torch.Tensor, **tolerances) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    torch.testing.assert_close(ours, theirs, **tolerances)


@pytest.mark.parametrize(("rank_a", "rank_b"), RANK_PAIRS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matmul_equals_torch_for_every_rank_pair(rank_a, rank_b, seed):
    a_shape, b_shape = random_pair(random.Random(seed * 100 + rank_a * 10 + rank_b), rank_a, rank_b)
    a, b = operands(a_shape, b_shape, seed=seed)
    assert_same_product(matmul(a, b), torch.matmul(a, b))
    assert_same_product(matmul(a, b), a @ b)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "out_shape"),
    [
        ((4,), (4,), ()),
        ((3, 4), (4,), (3,)),
        ((4,), (4, 5), (5,)),
        ((2, 3, 4), (4,), (2, 3)),
        ((4,), (2, 4, 5), (2, 5)),
        ((4,), (6, 1, 4, 5), (6, 1, 5)),
        ((6, 1, 3, 4), (4,), (6, 1, 3)),
        ((8, 10, 16), (16, 32), (8, 10, 32)),
        ((2, 1, 3, 4), (5, 4, 6), (2, 5, 3, 6)),
        ((1, 3, 4), (7, 1, 4, 2), (7, 1, 3, 2)),
        ((2, 1, 1, 3, 4), (3, 1, 4, 2), (2, 3, 1, 3, 2)),
    ],
)
def test_the_rank_rules_give_the_documented_shapes(a_shape, b_shape, out_shape):
    a, b = operands(a_shape, b_shape)
    assert torch.matmul(a, b).shape == out_shape
    assert_same_product(matmul(a, b), torch.matmul(a, b))


@settings(max_examples=40)
@given(
    rank_a=st.integers(1, 5),
    rank_b=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_matmul_equals_torch_on_drawn_shapes(rank_a, rank_b, seed):
    rng = random.Random(seed)
    a_shape, b_shape = random_pair(rng, rank_a, rank_b, k=rng.randint(0, 4))
    a, b = operands(a_shape, b_shape, seed=seed)
    assert_same_product(matmul(a, b), torch.matmul(a, b))
    assert matmul_flops(a_shape, b_shape) == 2 * torch.matmul(a, b).numel() * a_shape[-1]


TOLERANCES = {torch.float16: {"rtol": 2e-3, "atol": 2e-3}, torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2}}


@pytest.mark.parametrize(
    "dtype",
    [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64,
     torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8],  # fmt: skip
)
@pytest.mark.parametrize(("rank_a", "rank_b"), [(1, 1), (2, 1), (1, 3), (2, 2), (3, 2), (4, 3)])
def test_matmul_keeps_the_dtype_and_values(dtype, rank_a, rank_b):
    a_shape, b_shape = random_pair(random.Random(rank_a * 10 + rank_b), rank_a, rank_b)
    a, b = operands(a_shape, b_shape, dtype)
    if dtype == torch.uint8:
        a, b = a.abs(), b.abs()
    ours, theirs = matmul(a, b), torch.matmul(a, b)
    assert_same_product(ours, theirs, **TOLERANCES.get(dtype, {}))
    if not (dtype.is_floating_point or dtype.is_complex):
        assert torch.equal(ours, theirs), "integer matmul is exact"


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((0,), (0,)), ((3, 0), (0, 4)), ((0, 3), (3, 4)), ((3, 4), (4, 0)), ((0, 2, 3), (3, 4)),
     ((1, 2, 3), (0, 3, 4)), ((0,), (2, 0, 3)), ((2, 3, 0), (0,))],  # fmt: skip
)
def test_empty_operands(a_shape, b_shape):
    a, b = operands(a_shape, b_shape)
    assert_same_product(matmul(a, b), torch.matmul(a, b))
    assert matmul_flops(a_shape, b_shape) == 2 * torch.matmul(a, b).numel() * a_shape[-1]


def test_non_contiguous_and_expanded_operands():
    a = torch.randn(4, 3, 5, dtype=torch.float64).transpose(-2, -1)  # (4, 5, 3), not contiguous
    b = torch.randn(3, 1, dtype=torch.float64).expand(3, 6)  # stride 0 along n
    c = torch.randn(6, 2, dtype=torch.float64)[::2]  # (3, 2), every other row
    assert not a.is_contiguous() and not b.is_contiguous()
    assert_same_product(matmul(a, b), torch.matmul(a, b))
    assert_same_product(matmul(a, c), torch.matmul(a, c))
    assert_same_product(matmul(a[0, 0], b), torch.matmul(a[0, 0], b))


@pytest.mark.parametrize(("rank_a", "rank_b"), [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (1, 3), (3, 4), (4, 2)])
def test_matmul_gradients(rank_a, rank_b):
    a_shape, b_shape = random_pair(random.Random(rank_a + 7 * rank_b), rank_a, rank_b)
    a, b = operands(a_shape, b_shape)
    a.requires_grad_(True)
    b.requires_grad_(True)
    assert torch.autograd.gradcheck(matmul, (a, b))
    # The same gradients as PyTorch's, including the sum over broadcast batch dimensions.
    weight = torch.randn(torch.matmul(a, b).shape, dtype=torch.float64)
    ours = torch.autograd.grad((matmul(a, b) * weight).sum(), (a, b))
    theirs = torch.autograd.grad((torch.matmul(a, b) * weight).sum(), (a, b))
    for g_ours, g_theirs in zip(ours, theirs, strict=True):
        torch.testing.assert_close(g_ours, g_theirs)


def test_broadcast_gradients_are_summed_over_the_batch():
    a = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    matmul(a, w).sum().backward()
    expected = a.detach().sum(dim=(0, 1))[:, None].expand(3, 4)
    torch.testing.assert_close(w.grad, expected)


@pytest.mark.parametrize(("rank_a", "rank_b"), RANK_PAIRS)
def test_mismatched_inner_dimensions_are_refused_by_both(rank_a, rank_b):
    a_shape, b_shape = random_pair(random.Random(rank_a * 10 + rank_b), rank_a, rank_b, k=3)
    b_shape = (4,) if rank_b == 1 else (*b_shape[:-2], 4, b_shape[-1])
    a, b = operands(a_shape, b_shape)
    with pytest.raises(RuntimeError):
        torch.matmul(a, b)
    where = "only" if rank_b == 1 else "second-to-last"
    message = rf"input's last dimension \(3\) must equal other's {where} dimension \(4\), got shapes"
    with pytest.raises(ValueError, match=message):
        matmul(a, b)
    with pytest.raises(ValueError, match=message):
        matmul_flops(a_shape, b_shape)


@pytest.mark.parametrize("rank", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("zero_d_on_the_left", [True, False])
def test_zero_d_operands_are_refused_by_both(rank, zero_d_on_the_left):
    scalar, tensor = torch.tensor(2.0), torch.ones((3,) * rank)
    a, b = (scalar, tensor) if zero_d_on_the_left else (tensor, scalar)
    with pytest.raises(RuntimeError, match="at least 1D"):
        torch.matmul(a, b)
    with pytest.raises(ValueError, match=r"at least 1 dimension each, got shapes .*; scale by a 0-D tensor with \*"):
        matmul(a, b)
    with pytest.raises(ValueError, match="at least 1 dimension each"):
        matmul_flops(tuple(a.shape), tuple(b.shape))


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((2, 3, 4), (3, 4, 5)), ((2, 2, 3, 4), (3, 4, 5)), ((2, 3, 4), (5, 3, 4, 5)), ((4, 2, 3, 4), (3, 1, 4, 5))],
)
def test_batches_that_do_not_broadcast_are_refused_by_both(a_shape, b_shape):
    a, b = operands(a_shape, b_shape)
    with pytest.raises(RuntimeError):
        torch.matmul(a, b)
    with pytest.raises(ValueError, match=r"the batch dimensions of input \(.*\) and other \(.*\) do not broadcast"):
        matmul(a, b)
    with pytest.raises(ValueError, match="do not broadcast"):
        matmul_broadcast(a, b)


def test_dtype_device_and_type_errors():
    ints, floats = torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2)
    with pytest.raises(RuntimeError):
        torch.matmul(ints, floats)  # PyTorch does not promote either
    with pytest.raises(TypeError, match=r"same dtype \(matmul never promotes\), got torch.int64 and torch.float32"):
        matmul(ints, floats)
    edges = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.matmul(edges, edges)
    with pytest.raises(TypeError, match="does not support torch.bool"):
        matmul(edges, edges)
    with pytest.raises(TypeError, match="other must be a torch.Tensor, got list"):
        matmul(floats, [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="must be on one device, got meta and cpu"):
        matmul(torch.ones(2, 2, device="meta"), floats)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"), [((2, 3), (3, 4)), ((1, 1), (1, 1)), ((0, 3), (3, 2)), ((3, 0), (0, 2)), ((2, 3), (3, 0))]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32, torch.complex64])
def test_mm_loops_equals_torch_mm(a_shape, b_shape, dtype):
    a, b = operands(a_shape, b_shape, dtype)
    ours = mm_loops(a, b)
    assert_same_product(ours, torch.mm(a, b))


def test_mm_loops_refuses_what_mm_refuses():
    with pytest.raises(ValueError, match=r"input must be a 2-D matrix, got shape \(3,\)"):
        mm_loops(torch.ones(3), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"mat2 must be a 2-D matrix, got shape \(2, 3, 2\)"):
        mm_loops(torch.ones(2, 3), torch.ones(2, 3, 2))
    with pytest.raises(ValueError, match=r"input's columns \(3\) must equal mat2's rows \(4\)"):
        mm_loops(torch.ones(2, 3), torch.ones(4, 2))
    with pytest.raises(TypeError, match="input and mat2 must have the same dtype"):
        mm_loops(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.float64))


@pytest.mark.parametrize(("rank_a", "rank_b"), [(a, b) for a, b in RANK_PAIRS if min(a, b) >= 2])
def test_matmul_broadcast_equals_torch_from_two_dimensions_up(rank_a, rank_b):
    a_shape, b_shape = random_pair(random.Random(rank_a * 3 + rank_b), rank_a, rank_b)
    a, b = operands(a_shape, b_shape, torch.float32)
    assert_same_product(matmul_broadcast(a, b), torch.matmul(a, b))


def test_matmul_broadcast_sends_vectors_to_matmul():
    with pytest.raises(ValueError, match=r"other must have at least 2 dimensions \(use matmul for vectors\)"):
        matmul_broadcast(torch.ones(2, 3), torch.ones(3))


def test_half_precision_is_accumulated_wide_like_pytorch():
    a, b = operands((8, 64), (64, 8), torch.float16)
    wide = (a.float() @ b.float()).half()
    # One rounding at the end, so ours is the float32 product rounded once.
    torch.testing.assert_close(matmul(a, b), wide, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "flops"),
    [((2, 3), (3, 4), 48), ((5,), (5,), 10), ((4, 2, 3), (3, 5), 240), ((3,), (3, 7), 42),
     ((7, 1, 2, 3), (6, 3, 4), 2016), ((8, 1024, 768), (768, 3072), 38654705664), (torch.Size([2, 2]), [2, 2], 16)],  # fmt: skip
)
def test_matmul_flops_values(a_shape, b_shape, flops):
    assert matmul_flops(a_shape, b_shape) == flops
    assert isinstance(matmul_flops(a_shape, b_shape), int)


@pytest.mark.parametrize(("rank_a", "rank_b"), RANK_PAIRS)
def test_matmul_flops_is_two_k_per_output_for_every_rank_pair(rank_a, rank_b):
    a_shape, b_shape = random_pair(random.Random(rank_a * 5 + rank_b), rank_a, rank_b)
    out = torch.matmul(*operands(a_shape, b_shape))
    assert matmul_flops(a_shape, b_shape) == 2 * out.numel() * a_shape[-1]


@pytest.mark.parametrize("bad", [(2, -1), (2.0, 3), "23", None, (True, 3)])
def test_matmul_flops_refuses_bad_shapes(bad):
    with pytest.raises(TypeError, match="a_shape must be a tuple of non-negative ints"):
        matmul_flops(bad, (3, 4))


HALF_AND_FULL = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# Magnitudes each dtype can multiply and sum over k <= 5 without overflow or underflow.
SCALES = {torch.float32: (1e-15, 1e15), torch.float64: (1e-100, 1e100), torch.float16: (1e-2, 50.0),
          torch.bfloat16: (1e-15, 1e15)}


@pytest.mark.parametrize("dtype", HALF_AND_FULL)
@pytest.mark.parametrize("which", [0, 1])
def test_matmul_in_every_float_dtype_on_strided_and_extreme_inputs(dtype, which):
    scale = SCALES[dtype][which]
    g = torch.Generator().manual_seed(which)
    a = (torch.randn(2, 5, 4, generator=g, dtype=torch.float64) * scale).to(dtype).transpose(-2, -1)  # (2, 4, 5)
    b = (torch.randn(5, 1, generator=g, dtype=torch.float64) * scale).to(dtype).expand(5, 3)  # stride 0
    c = (torch.randn(10, 3, generator=g, dtype=torch.float64) * scale).to(dtype)[::2]  # (5, 3), every other row
    for other in (b, c, c[:, 0]):
        assert_same_product(matmul(a, other), torch.matmul(a, other), **TOLERANCES.get(dtype, {}))
        # In half precision ours is the float32 product rounded once: PyTorch's CPU kernels sum wide too.
        if dtype in (torch.float16, torch.bfloat16):
            wide = torch.matmul(a.float(), other.float()).to(dtype)
            torch.testing.assert_close(matmul(a, other), wide, rtol=0, atol=0)
    zero_d_batch = torch.randn(0, 4, 5).to(dtype)
    assert_same_product(matmul(zero_d_batch, c), torch.matmul(zero_d_batch, c))


def test_cuda_may_reduce_half_precision_sums_by_default():
    # The lesson's "summed in float32" is a CPU fact: on CUDA these flags let cuBLAS round partial sums.
    assert torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction is True
    assert torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction is True


def test_pytorch_facts_the_lesson_relies_on():
    x, w = torch.randn(4, 3, 5), torch.randn(5, 2)
    with pytest.raises(RuntimeError):
        torch.bmm(x, w)  # no broadcasting
    with pytest.raises(RuntimeError):
        torch.bmm(x, torch.randn(1, 5, 2))  # not even a batch of one
    with pytest.raises(RuntimeError):
        torch.mm(x, w)  # 2-D only
    with pytest.raises(RuntimeError):
        torch.dot(torch.ones(2, 2), torch.ones(2, 2))  # 1-D only
    torch.testing.assert_close(torch.bmm(x, w.expand(4, 5, 2)), x @ w)
    m, v = torch.tensor([[1, 2], [3, 4]]), torch.tensor([1, 1])
    assert (m @ v).tolist() == [3, 7] and (v @ m).tolist() == [4, 6]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_integer_matmul_is_refused_on_cuda():
    a = torch.ones(2, 2, dtype=torch.long, device="cuda")
    with pytest.raises((RuntimeError, NotImplementedError)):
        a @ a
    torch.testing.assert_close((a.double() @ a.double()).long().cpu(), a.cpu() @ a.cpu())


def test_compare_matmuls_returns_positive_timings_in_order():
    timings = compare_matmuls(n=5, repeat=1)
    assert list(timings) == ["loops", "broadcast", "torch.matmul"]
    assert all(isinstance(t, float) and t > 0 for t in timings.values())


def test_compare_matmuls_restores_the_thread_count():
    before = torch.get_num_threads()
    compare_matmuls(n=3, repeat=1, threads=1)
    assert torch.get_num_threads() == before
    assert list(compare_matmuls(n=3, repeat=1, threads=None)) == ["loops", "broadcast", "torch.matmul"]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("kwargs", "message"), [({"n": 0}, "n must be a positive int, got 0"),
                                                 ({"repeat": 0}, "repeat must be a positive int"),
                                                 ({"threads": 0}, "threads must be a positive int, got 0"),
                                                 ({"n": True}, "n must be a positive int, got True")])  # fmt: skip
def test_compare_matmuls_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare_matmuls(**kwargs)


def test_figures_and_their_errors():
    assert isinstance(plot_matmul_timings(sizes=(2, 3), repeat=1), Figure)
    assert isinstance(plot_matmul_shapes(), Figure)
    assert len(plot_matmul_shapes(m=1, k=1, n=1, batch=3, i=0, j=0).axes) == 1
    with pytest.raises(ValueError, match="sizes must be a non-empty sequence of positive ints"):
        plot_matmul_timings(sizes=())
    with pytest.raises(ValueError, match="must be at least 1"):
        plot_matmul_shapes(k=0)
    with pytest.raises(ValueError, match=r"i must lie in \[0, 3\)"):
        plot_matmul_shapes(i=3)


def test_the_lesson_sets_two_challenges():
    assert set(challenges_in(lesson)) == {"batched_quadratic_form", "squared_distances_by_matmul"}


def test_batched_quadratic_form_passes_and_rejects():
    assert check_batched_quadratic_form(batched_quadratic_form) is None
    # `x @ A @ x` reads a batch of vectors as one matrix; `(x @ A * x).sum(-1)` misreads a batch with a 1.
    with pytest.raises(AssertionError, match=r"x of shape \(5, 3\), A of shape \(3, 3\): the attempt raised"):
        check_batched_quadratic_form(lambda x, A: x @ A @ x)
    with pytest.raises(AssertionError, match=r"x of shape \(2, 1, 3\)"):
        check_batched_quadratic_form(lambda x, A: (x @ A * x).sum(-1))
    with pytest.raises(AssertionError, match="expected shape"):
        check_batched_quadratic_form(lambda x, A: x.unsqueeze(-2) @ A @ x.unsqueeze(-1))
    with pytest.raises(AssertionError, match="wrong values"):
        check_batched_quadratic_form(lambda x, A: batched_quadratic_form(x, A.mT) + 1e-3)


def test_batched_quadratic_form_matches_the_formula_and_refuses_bad_shapes():
    x, A = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(batched_quadratic_form(x, A), torch.einsum("...i,...ij,...j->...", x, A, x))
    with pytest.raises(ValueError, match=r"x must be \(..., n\) and A \(..., n, n\)"):
        batched_quadratic_form(torch.ones(3), torch.ones(3, 4))
    with pytest.raises(ValueError, match="do not broadcast"):
        batched_quadratic_form(torch.ones(2, 3), torch.ones(4, 3, 3))


def test_squared_distances_by_matmul_passes_and_rejects():
    assert check_squared_distances_by_matmul(squared_distances_by_matmul) is None

    def unclamped(x, y):
        return (x * x).sum(-1, keepdim=True) - 2 * x @ y.mT + (y * y).sum(-1).unsqueeze(-2)

    with pytest.raises(AssertionError, match="came out negative; clamp at zero"):
        check_squared_distances_by_matmul(unclamped)
    with pytest.raises(AssertionError, match="wrong values"):
        check_squared_distances_by_matmul(lambda x, y: (unclamped(x, y) / 2).clamp_min(0))
    with pytest.raises(AssertionError, match="expected dtype torch.float32"):
        check_squared_distances_by_matmul(lambda x, y: squared_distances_by_matmul(x.double(), y.double()))


def test_squared_distances_by_matmul_matches_cdist_and_refuses_bad_input():
    x, y = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    torch.testing.assert_close(squared_distances_by_matmul(x, y), torch.cdist(x, y) ** 2)
    with pytest.raises(TypeError, match="must be floating-point tensors, got torch.int64"):
        squared_distances_by_matmul(torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must be \(..., N, D\) and y \(..., M, D\)"):
        squared_distances_by_matmul(torch.ones(2, 3), torch.ones(2, 4))
