"""The proof for torchenstein.tensors.surgery: every from-scratch cut and stitch equals PyTorch's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torchenstein.tensors import surgery
from torchenstein.tensors.surgery import (
    cat,
    check_one_hot_by_scatter,
    check_pick_target_logits,
    chunk,
    gather,
    index_select,
    one_hot_by_scatter,
    pick_target_logits,
    plot_gather,
    scatter,
    shares_memory,
    split,
    stack,
    view_or_copy_table,
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool]


def _random(shape, dtype, generator):
    values = torch.randn(shape, generator=generator) * 10
    if dtype == torch.bool:
        return values > 0
    return (values.abs() if dtype == torch.uint8 else values).to(dtype)


def _random_shape(generator, ndim, low=0, high=5):
    return tuple(torch.randint(low, high, (ndim,), generator=generator).tolist())


def _gather_case(seed):
    # An input with at least one element along `dim`, and an index no larger than it outside `dim`.
    g = torch.Generator().manual_seed(seed)
    ndim = int(torch.randint(1, 5, (1,), generator=g))
    shape = list(_random_shape(g, ndim, 1, 5))
    dim = int(torch.randint(-ndim, ndim, (1,), generator=g))
    low = 0 if seed % 4 == 0 else 1  # every fourth case may have empty dimensions
    index_shape = [int(torch.randint(low, s + 1, (1,), generator=g)) for s in shape]
    index_shape[dim] = int(torch.randint(low, 6, (1,), generator=g))
    index = torch.randint(0, shape[dim], index_shape, generator=g)
    return g, shape, dim, index


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_equals_torch(seed, dtype):
    g, shape, dim, index = _gather_case(seed)
    x = _random(shape, dtype, g)
    torch.testing.assert_close(gather(x, dim, index), torch.gather(x, dim, index), rtol=0, atol=0)


def test_gather_scatter_and_index_select_on_expanded_and_strided_inputs():
    x = torch.arange(4.0).expand(3, 4)  # stride 0 along dim 0
    y = torch.arange(24.0).reshape(4, 6)[:, ::2]  # (4, 3), stride 2 along dim 1
    index = torch.tensor([[3, 0, 1], [2, 2, 0]])
    for t in (x, y.t()):
        torch.testing.assert_close(gather(t, -1, index[:, : t.size(-1)].clamp(max=t.size(-1) - 1)),
                                   torch.gather(t, -1, index[:, : t.size(-1)].clamp(max=t.size(-1) - 1)))
        torch.testing.assert_close(index_select(t, -2, torch.tensor([1, 0, 1])), torch.index_select(t, -2, torch.tensor([1, 0, 1])))
    src = torch.full((2, 3), -1.0).expand(2, 3)
    torch.testing.assert_close(scatter(y, 0, index[:, :3], src), torch.scatter(y, 0, index[:, :3], src))


def test_zero_dimensional_inputs_are_refused_where_pytorch_takes_them():
    # Where it differs from PyTorch: a 0-D input is a vector of one element to PyTorch, an error to ours.
    x, i = torch.tensor(3.0), torch.tensor(0)
    assert torch.gather(x, 0, i).item() == 3.0 and torch.index_select(x, 0, i[None]).item() == 3.0
    assert torch.scatter(x, 0, i, torch.tensor(5.0)).item() == 5.0
    for call in (lambda: gather(x, 0, i), lambda: index_select(x, 0, i[None]), lambda: scatter(x, 0, i, 5.0)):
        with pytest.raises(ValueError, match=r"input must have at least 1 dimension\(s\), got shape \(\)"):
            call()


def test_cat_does_not_skip_the_legacy_empty_tensor_that_torch_cat_ignores():
    # Where it differs from PyTorch: torch.cat skips a 1-D empty piece among 2-D ones; ours names the shape.
    pieces = [torch.ones(2, 3), torch.empty(0)]
    assert torch.cat(pieces).shape == (2, 3)
    with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(0,\)"):
        cat(pieces)


def test_gather_on_a_non_contiguous_input_and_int32_index():
    x = torch.arange(12.0).reshape(3, 4).t()  # (4, 3), not contiguous
    index = torch.tensor([[2, 0, 1], [0, 0, 3]])
    torch.testing.assert_close(gather(x, 0, index.int()), torch.gather(x, 0, index))


@pytest.mark.parametrize("seed", range(3))
def test_gather_gradient(seed):
    _, shape, dim, index = _gather_case(seed)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gather(t, dim, index), (x,))
    # Repeated indices accumulate their gradients, exactly as torch.gather's backward does.
    index = torch.zeros_like(index)
    ours = torch.autograd.grad(gather(x, dim, index).sum(), x)[0]
    theirs = torch.autograd.grad(torch.gather(x, dim, index).sum(), x)[0]
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(2, 3), 1, torch.tensor([[0, 3]])), ValueError, r"index must hold values in \[0, 3\)"),
        ((torch.zeros(2, 3), 1, torch.tensor([[-1, 0]])), ValueError, "index must hold values"),
        ((torch.zeros(2, 3), 0, torch.tensor([0, 1])), ValueError, "index must have 2 dimension"),
        ((torch.zeros(2, 3), 0, torch.zeros(1, 4, dtype=torch.long)), ValueError, r"index.size\(1\) must be at most"),
        ((torch.zeros(2, 3), 2, torch.zeros(1, 1, dtype=torch.long)), ValueError, r"dim must be in \[-2, 1\]"),
        ((torch.zeros(2, 3), 1, torch.zeros(1, 1)), TypeError, "index must be an int64 or int32 tensor"),
        (([1, 2], 0, torch.tensor([0])), TypeError, "input must be a torch.Tensor"),
        ((torch.tensor(1.0), 0, torch.tensor(0)), ValueError, "input must have at least 1 dimension"),
        ((torch.zeros(2), 0.0, torch.tensor([0])), TypeError, "dim must be an int"),
    ],
)
def test_gather_errors(args, error, match):
    with pytest.raises(error, match=match):
        gather(*args)


def _scatter_case(seed):
    # Unique positions along `dim` (a random permutation, cut short), so scatter's result is defined.
    g = torch.Generator().manual_seed(seed)
    ndim = int(torch.randint(1, 4, (1,), generator=g))
    shape = list(_random_shape(g, ndim, 1, 5))
    dim = int(torch.randint(-ndim, ndim, (1,), generator=g))
    low = 0 if seed % 4 == 0 else 1  # every fourth case may have empty dimensions
    index_shape = [int(torch.randint(low, s + 1, (1,), generator=g)) for s in shape]
    index = torch.rand(index_shape[:dim % ndim] + [shape[dim]] + index_shape[dim % ndim + 1 :], generator=g).argsort(dim)
    index = index.narrow(dim, 0, int(torch.randint(low, shape[dim] + 1, (1,), generator=g)))
    src_shape = [n + int(torch.randint(0, 2, (1,), generator=g)) for n in index.shape]
    return g, shape, dim, index, src_shape


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_equals_torch(seed, dtype):
    g, shape, dim, index, src_shape = _scatter_case(seed)
    x, src = _random(shape, dtype, g), _random(src_shape, dtype, g)
    before = x.clone()
    torch.testing.assert_close(scatter(x, dim, index, src), torch.scatter(x, dim, index, src), rtol=0, atol=0)
    assert torch.equal(x, before), "scatter must not change its input"


@pytest.mark.parametrize("value", [7, -2.5])
def test_scatter_with_a_number(value):
    _, shape, dim, index, _ = _scatter_case(3)
    x = torch.zeros(shape)
    torch.testing.assert_close(scatter(x, dim, index, value), torch.scatter(x, dim, index, value))


@pytest.mark.parametrize("seed", range(3))
def test_scatter_gradient(seed):
    _, shape, dim, index, src_shape = _scatter_case(seed)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    src = torch.randn(src_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: scatter(a, dim, index, b), (x, src))


@pytest.mark.parametrize(
    ("src", "error", "match"),
    [
        (torch.zeros(2, 2, dtype=torch.long), TypeError, "src must have input's dtype"),
        (torch.zeros(2, 1), ValueError, "src must cover index's shape"),
        (torch.zeros(4), ValueError, "src must cover index's shape"),
        ("one", TypeError, "src must be a torch.Tensor or a number"),
    ],
)
def test_scatter_errors(src, error, match):
    with pytest.raises(error, match=match):
        scatter(torch.zeros(2, 3), 1, torch.tensor([[0, 1], [2, 0]]), src)
    with pytest.raises(ValueError, match="index must hold values"):
        scatter(torch.zeros(2, 3), 1, torch.tensor([[3]]), 1.0)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
def test_index_select_equals_torch(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    ndim = 1 + seed % 4
    shape = _random_shape(g, ndim, 1, 5)
    dim = int(torch.randint(-ndim, ndim, (1,), generator=g))
    index = torch.randint(0, shape[dim], (int(torch.randint(0, 6, (1,), generator=g)),), generator=g)
    x = _random(shape, dtype, g)
    torch.testing.assert_close(index_select(x, dim, index), torch.index_select(x, dim, index), rtol=0, atol=0)
    torch.testing.assert_close(index_select(x, dim, index.int()), torch.index_select(x, dim, index))


def test_index_select_with_a_zero_dimensional_index_keeps_the_dimension():
    x = torch.arange(6).reshape(2, 3)
    torch.testing.assert_close(index_select(x, 1, torch.tensor(2)), torch.index_select(x, 1, torch.tensor(2)))


def test_index_select_gradient():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([3, 0, 3])
    assert torch.autograd.gradcheck(lambda t: index_select(t, 1, index), (x,))


def test_index_select_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="index must be a 1-D tensor"):
        index_select(x, 1, torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"index must hold values in \[0, 2\) along dim 0, got values in \[-1, 0\]"):
        index_select(x, 0, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"dim must be in \[-2, 1\]"):
        index_select(x, -3, torch.tensor([0]))
    with pytest.raises(TypeError, match="index must be an int64 or int32 tensor"):
        index_select(x, 0, torch.tensor([True]))


def _cat_case(seed, ndim):
    g = torch.Generator().manual_seed(seed)
    shape = list(_random_shape(g, ndim, 1, 4))
    dim = int(torch.randint(-ndim, ndim, (1,), generator=g))
    pieces = []
    for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
        shape[dim] = int(torch.randint(0, 4, (1,), generator=g))
        pieces.append(torch.randn(shape, generator=g))
    return pieces, dim


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dtype", DTYPES)
def test_cat_equals_torch(seed, dtype):
    pieces, dim = _cat_case(seed, 1 + seed % 4)
    pieces = [p.to(dtype) for p in pieces]
    out = cat(pieces, dim)
    torch.testing.assert_close(out, torch.cat(pieces, dim), rtol=0, atol=0)
    assert not any(shares_memory(out, p) for p in pieces)


def test_cat_and_stack_promote_dtypes_like_torch():
    pieces = [torch.tensor([1, 2]), torch.tensor([0.5, 1.5]), torch.tensor([True, False])]
    torch.testing.assert_close(cat(pieces), torch.cat(pieces))
    torch.testing.assert_close(stack(pieces), torch.stack(pieces))


def test_cat_gradient():
    pieces, dim = _cat_case(4, 3)
    pieces = [p.double().requires_grad_() for p in pieces]
    assert torch.autograd.gradcheck(lambda *ps: cat(list(ps), dim), tuple(pieces))


@pytest.mark.parametrize(
    ("tensors", "dim", "error", "match"),
    [
        ([], 0, ValueError, "tensors must hold at least one tensor"),
        (torch.zeros(2, 3), 0, TypeError, "tensors must be a list or tuple"),
        ([torch.zeros(2, 3), "x"], 0, TypeError, r"tensors\[1\] must be a torch.Tensor"),
        ([torch.zeros(2, 3), torch.zeros(2, 4)], 0, ValueError, r"tensors\[1\] has shape \(2, 4\)"),
        ([torch.zeros(2, 3), torch.zeros(2, 3, 1)], 1, ValueError, r"tensors\[1\] has shape \(2, 3, 1\)"),
        ([torch.zeros(2, 3)], 2, ValueError, r"dim must be in \[-2, 1\]"),
        ([torch.tensor(1.0)], 0, ValueError, r"tensors\[0\] must have at least 1 dimension"),
    ],
)
def test_cat_errors(tensors, dim, error, match):
    with pytest.raises(error, match=match):
        cat(tensors, dim)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
def test_stack_equals_torch(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    ndim = seed % 4  # 0-D tensors stack too
    shape = _random_shape(g, ndim, 0, 4)
    pieces = [_random(shape, dtype, g) for _ in range(1 + seed % 3)]
    for dim in range(-(ndim + 1), ndim + 1):
        out = stack(pieces, dim)
        torch.testing.assert_close(out, torch.stack(pieces, dim), rtol=0, atol=0)
        assert not shares_memory(out, pieces[0])


def test_stack_gradient():
    pieces = tuple(torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda *ps: stack(list(ps), 1), pieces)


def test_stack_errors():
    with pytest.raises(ValueError, match=r"tensors\[1\] has shape \(3,\), but stack needs"):
        stack([torch.zeros(2), torch.zeros(3)])
    with pytest.raises(ValueError, match=r"dim must be in \[-2, 1\]"):
        stack([torch.zeros(2), torch.zeros(2)], dim=2)


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7])
@pytest.mark.parametrize("size", [1, 2, 3, 6, 8])
def test_split_by_size_equals_torch(n, size):
    x = torch.arange(2 * n).reshape(2, n)
    ours, theirs = split(x, size, dim=1), torch.split(x, size, dim=1)
    assert len(ours) == len(theirs)
    for p, q in zip(ours, theirs, strict=True):
        torch.testing.assert_close(p, q)
        assert n == 0 or shares_memory(p, x)


@pytest.mark.parametrize("sections", [[5], [0, 5], [2, 3], [1, 1, 0, 3]])
def test_split_by_sections_equals_torch(sections):
    x = torch.arange(10.0).reshape(5, 2)
    ours, theirs = split(x, sections), torch.split(x, sections)
    assert [p.shape for p in ours] == [q.shape for q in theirs]
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))


def test_split_errors():
    x = torch.arange(5)
    with pytest.raises(ValueError, match="split_size_or_sections must be positive for a dim of size 5, got 0"):
        split(x, 0)
    with pytest.raises(ValueError, match="adding up to 5 along dim 0, got"):
        split(x, [2, 2])
    with pytest.raises(ValueError, match="adding up to 5"):
        split(x, [6, -1])
    with pytest.raises(TypeError, match="split_size_or_sections must be an int or a list of ints"):
        split(x, 2.0)
    with pytest.raises(ValueError, match=r"dim must be in \[-1, 0\]"):
        split(x, 2, dim=1)


@pytest.mark.parametrize("n", range(13))
def test_chunk_rule_equals_torch(n):
    x = torch.arange(3 * n).reshape(3, n)
    for chunks in range(1, 8):
        ours, theirs = chunk(x, chunks, dim=-1), torch.chunk(x, chunks, dim=-1)
        assert [p.shape for p in ours] == [q.shape for q in theirs], (n, chunks)
        assert all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))
        assert len(ours) <= chunks


def test_chunk_can_return_fewer_pieces_and_they_are_views():
    x = torch.arange(6)
    pieces = chunk(x, 4)
    assert len(pieces) == 3 and all(shares_memory(p, x) for p in pieces)
    pieces[0][0] = 100
    assert x[0] == 100


@pytest.mark.parametrize("chunks", [0, -1, 2.0, True])
def test_chunk_errors(chunks):
    with pytest.raises(ValueError, match="chunks must be a positive int"):
        chunk(torch.arange(4), chunks)


def test_shares_memory_verdicts():
    x = torch.arange(12).reshape(3, 4)
    assert shares_memory(x, x[1:, ::2]) and shares_memory(x[0], x[1]) and shares_memory(x, x.t())
    assert not shares_memory(x, x.clone()) and not shares_memory(x, x[[0, 1]])
    assert not shares_memory(torch.empty(0), torch.empty(0))
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        shares_memory(x, [1])


def test_view_or_copy_table_matches_the_lesson():
    views = {"x[1]", "x[:, 1:3]", "x[..., None]", "x.split(1)", "x.chunk(2)", "x.unbind(1)"}
    table = view_or_copy_table()
    assert {name for name, shared in table.items() if shared} == views
    assert len(table) == 12


def test_writing_through_a_view_changes_the_original_but_fancy_indexing_copies():
    x = torch.zeros(4)
    x[1:3][0] = 1.0
    x[torch.tensor([3])][0] = 1.0
    assert x.tolist() == [0.0, 1.0, 0.0, 0.0]


def test_plot_gather():
    assert len(plot_gather(rows=2, cols=3, dim=0).axes) == 3
    with pytest.raises(ValueError, match="dim must be 0 or 1"):
        plot_gather(dim=2)
    with pytest.raises(ValueError, match="rows and cols must be at least 1"):
        plot_gather(rows=0)


def test_pick_target_logits_checker_accepts_solution_and_rejects_wrong_attempts():
    check_pick_target_logits(pick_target_logits)
    check_pick_target_logits(lambda logits, targets: logits[torch.arange(len(targets)), targets])
    with pytest.raises(AssertionError, match="expected shape"):
        check_pick_target_logits(lambda logits, targets: logits[:, targets])
    with pytest.raises(AssertionError, match="expected shape"):
        check_pick_target_logits(lambda logits, targets: logits.gather(1, targets.unsqueeze(1)))
    with pytest.raises(AssertionError, match="wrong values"):
        check_pick_target_logits(lambda logits, targets: logits.gather(0, targets.unsqueeze(1).expand_as(logits))[:, 0])


def test_one_hot_by_scatter_checker_accepts_solution_and_rejects_wrong_attempts():
    check_one_hot_by_scatter(one_hot_by_scatter)
    check_one_hot_by_scatter(lambda labels, num_classes: F.one_hot(labels, num_classes))
    with pytest.raises(AssertionError, match="expected shape"):
        check_one_hot_by_scatter(lambda labels, num_classes: F.one_hot(labels))
    with pytest.raises(AssertionError, match="expected dtype torch.int64"):
        check_one_hot_by_scatter(lambda labels, num_classes: F.one_hot(labels, num_classes).float())


def test_challenge_solutions_reject_bad_input():
    with pytest.raises(ValueError, match="need logits"):
        pick_target_logits(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        one_hot_by_scatter(torch.tensor([0]), 0)
    with pytest.raises(ValueError, match=r"labels must hold values in \[0, 2\)"):
        one_hot_by_scatter(torch.tensor([2]), 2)


def test_every_public_plot_is_shown_in_the_lesson():
    plots = [name for name in vars(surgery) if name.startswith("plot_")]
    assert plots and all(f"]({name}.svg)" in surgery.__doc__ for name in plots)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_from_scratch_versions_run_on_cuda():
    device = torch.device("cuda")
    _, shape, dim, index, src_shape = _scatter_case(5)
    x, src, index = torch.randn(shape, device=device), torch.randn(src_shape, device=device), index.to(device)
    torch.testing.assert_close(gather(x, dim, index), torch.gather(x, dim, index))
    torch.testing.assert_close(scatter(x, dim, index, src), torch.scatter(x, dim, index, src))
    picks = index.flatten()[:3]  # values along `dim`
    torch.testing.assert_close(index_select(x, dim, picks), torch.index_select(x, dim, picks))
    torch.testing.assert_close(cat([x, x], dim), torch.cat([x, x], dim))
    torch.testing.assert_close(stack([x, x], dim), torch.stack([x, x], dim))
    assert all(p.device.type == "cuda" for p in chunk(x, 3, dim))
    assert one_hot_by_scatter(torch.tensor([1, 0], device=device), 2).device.type == "cuda"
    with pytest.raises(ValueError, match=r"tensors\[1\] is on cpu"):
        cat([x, x.cpu()])
