"""The from-scratch metamorphoses agree with PyTorch's: values, strides, shared storage and gradients."""

from __future__ import annotations

import itertools
import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from torchenstein.tensors.metamorphosis import (
    check_merge_heads,
    check_sliding_windows,
    contiguous_strides,
    element_offset,
    expand,
    is_contiguous_layout,
    merge_heads,
    permute,
    plot_memory_layout,
    reshape,
    sliding_windows,
    split_heads,
    storage_values,
    transpose,
    view,
    view_strides,
)

DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool]


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def assert_same_view(ours: torch.Tensor, theirs: torch.Tensor, source: torch.Tensor) -> None:
    """Same values, same header, and both read the storage of ``source``."""
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert ours.shape == theirs.shape
    assert ours.stride() == theirs.stride()
    assert ours.storage_offset() == theirs.storage_offset()
    assert same_storage(ours, source) and same_storage(theirs, source)


def random_layout(rng: random.Random, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tensor of 0 to 4 dimensions, possibly permuted, sliced with steps, or expanded."""
    shape = [rng.choice([0, 1, 1, 2, 3, 4]) if rng.random() < 0.1 else rng.randint(1, 4) for _ in range(rng.randint(0, 4))]
    t = torch.arange(torch.Size(shape).numel()).to(dtype).view(shape)
    if t.ndim and rng.random() < 0.6:
        t = t.permute(rng.sample(range(t.ndim), t.ndim))
    if t.ndim and rng.random() < 0.5:
        d = rng.randrange(t.ndim)
        start, step = rng.randint(0, 1), rng.randint(1, 2)
        t = t[(slice(None),) * d + (slice(start, None, step),)]
    if t.ndim and rng.random() < 0.3:
        ones = [d for d in range(t.ndim) if t.size(d) == 1]
        if ones:
            size = list(t.shape)
            size[rng.choice(ones)] = rng.randint(2, 3)
            t = t.expand(size)
    return t


def random_factoring(rng: random.Random, numel: int) -> tuple[int, ...]:
    """A random shape holding ``numel`` elements, with a few dimensions of size one sprinkled in."""
    if numel == 0:
        shape = [rng.randint(1, 3) for _ in range(rng.randint(0, 2))]
        shape.insert(rng.randint(0, len(shape)), 0)
        return tuple(shape)
    shape, rest = [], numel
    while rest > 1 and len(shape) < 3:
        factor = rng.choice([d for d in range(1, rest + 1) if rest % d == 0])
        shape.append(factor)
        rest //= factor
    shape.append(rest)
    for _ in range(rng.randint(0, 1)):
        shape.insert(rng.randint(0, len(shape)), 1)
    return tuple(shape)


# Strides and addresses.


@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (2, 0, 3), (1, 1), (2, 3, 4, 5), (4, 1, 3)])
def test_contiguous_strides_are_the_strides_of_a_fresh_tensor(shape):
    assert contiguous_strides(shape) == torch.empty(shape).stride()
    assert is_contiguous_layout(shape, contiguous_strides(shape))


@pytest.mark.parametrize("seed", range(4))
def test_is_contiguous_layout_agrees_with_torch(seed):
    rng = random.Random(seed)
    verdicts = set()
    for _ in range(150):
        t = random_layout(rng)
        verdicts.add(t.is_contiguous())
        assert is_contiguous_layout(t.shape, t.stride()) == t.is_contiguous(), (t.shape, t.stride())
    assert verdicts == {True, False}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_every_element_lives_at_its_element_offset(seed, dtype):
    rng = random.Random(seed)
    for _ in range(40):
        t = random_layout(rng, dtype)
        storage = storage_values(t)
        assert same_storage(storage, t)
        for index in itertools.product(*(range(n) for n in t.shape)):
            assert storage[element_offset(index, t.stride(), t.storage_offset())] == t[index]


def test_storage_values_is_the_whole_storage():
    x = torch.arange(10.)
    assert torch.equal(storage_values(x[3:7:2]), x)


def test_element_offset_refuses_bad_indices():
    with pytest.raises(ValueError, match=r"index must have one entry per stride \(2\), got 1"):
        element_offset((1,), (4, 1))
    with pytest.raises(ValueError, match="index must be non-negative"):
        element_offset((0, -1), (4, 1))
    with pytest.raises(TypeError, match="stride must be a sequence of ints"):
        element_offset((0,), 4)
    with pytest.raises(ValueError, match="size and stride must have the same length"):
        is_contiguous_layout((2, 3), (1,))
    with pytest.raises(ValueError, match=r"size must hold non-negative ints, got \[2, -1\]"):
        contiguous_strides((2, -1))


# View and reshape.


@pytest.mark.parametrize("seed", range(6))
def test_view_succeeds_and_fails_exactly_when_torch_does(seed):
    rng = random.Random(seed)
    outcomes = set()
    for _ in range(200):
        t = random_layout(rng)
        new_size = random_factoring(rng, t.numel())
        try:
            expected = t.view(new_size)
        except RuntimeError:
            expected = None
        outcomes.add(expected is not None)
        assert (view_strides(t.shape, t.stride(), new_size) is None) == (expected is None), (t.shape, t.stride(), new_size)
        if expected is None:
            with pytest.raises(RuntimeError, match="without a copy"):
                view(t, new_size)
        else:
            assert_same_view(view(t, new_size), expected, t)
    assert outcomes == {True, False}


@pytest.mark.parametrize("seed", range(4))
def test_reshape_copies_exactly_when_torch_does(seed):
    rng = random.Random(seed)
    copied = set()
    for _ in range(150):
        t = random_layout(rng)
        new_size = random_factoring(rng, t.numel())
        ours, theirs = reshape(t, new_size), t.reshape(new_size)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        assert ours.stride() == theirs.stride()
        if t.numel():
            assert same_storage(ours, t) == same_storage(theirs, t)
            copied.add(same_storage(ours, t))
    assert copied == {True, False}


def test_view_infers_one_minus_one_and_names_bad_sizes():
    x = torch.arange(12)
    assert_same_view(view(x, (-1, 4)), x.view(-1, 4), x)
    assert_same_view(view(x[:0], (3, -1)), x[:0].view(3, -1), x)
    with pytest.raises(ValueError, match=r"shape \[5, -1\] is invalid for an input of 12 elements"):
        view(x, (5, -1))
    with pytest.raises(ValueError, match="at most one -1"):
        view(x, (-1, -1))
    with pytest.raises(ValueError, match=r"shape \[0, -1\] is invalid"):
        reshape(x, (0, -1))
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        view([1, 2], (2,))


def test_viewing_a_transposed_tensor_fails_like_torch():
    t = torch.arange(12).view(3, 4).t()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        t.view(12)
    with pytest.raises(RuntimeError, match=r"cannot view input of size \[4, 3\] and stride \[1, 4\]"):
        view(t, (12,))


# Transpose, permute and expand.


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_permute_and_transpose_match_torch(seed, dtype):
    rng = random.Random(seed)
    for _ in range(60):
        t = random_layout(rng, dtype)
        dims = rng.sample(range(t.ndim), t.ndim)
        dims = [d - t.ndim if rng.random() < 0.3 else d for d in dims]
        assert_same_view(permute(t, dims), t.permute(dims), t)
        if t.ndim:
            a, b = rng.randrange(-t.ndim, t.ndim), rng.randrange(-t.ndim, t.ndim)
            assert_same_view(transpose(t, a, b), t.transpose(a, b), t)


def test_permute_and_transpose_refuse_bad_dims():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"dims must be a permutation of range\(3\), got \[0, 1\]"):
        permute(x, (0, 1))
    with pytest.raises(ValueError, match=r"got \[0, 1, 3\]"):
        permute(x, (0, 1, 3))
    with pytest.raises(ValueError, match=r"dim1 must be in \[-3, 3\) for a 3-D input, got 3"):
        transpose(x, 0, 3)


EXPAND_CASES = [
    ((3,), (2, 3)), ((3,), (1, 3)), ((1, 3), (1, 2, 3)), ((3, 1), (2, 3, 5)), ((1,), (0,)),
    ((2, 1, 4), (-1, 6, -1)), ((), (2, 2)), ((), (3, 1)), ((), (1,)), ((1, 1), (4, 1)), ((2, 3), (2, 3)),
]


@pytest.mark.parametrize(("shape", "size"), EXPAND_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_expand_matches_torch(shape, size, dtype):
    t = torch.arange(torch.Size(shape).numel()).to(dtype).view(shape)
    assert_same_view(expand(t, size), t.expand(size), t)
    # Also from a non-contiguous starting point.
    wide = torch.arange(2 * torch.Size(shape).numel()).to(dtype).view(*shape, 2)[..., 1]
    assert_same_view(expand(wide, size), wide.expand(size), wide)


@pytest.mark.parametrize(("shape", "size"), [((3,), (4,)), ((2, 3), (3,)), ((3,), (-1, 3)), ((1,), (-2,))])
def test_expand_refuses_what_torch_refuses(shape, size):
    with pytest.raises(RuntimeError):
        torch.zeros(shape).expand(size)
    with pytest.raises(ValueError, match="sizes"):
        expand(torch.zeros(shape), size)


@pytest.mark.parametrize(("shape", "warns"), [((), True), ((3,), True), ((2, 3), False), ((2, 3, 4), True)])
def test_dot_T_is_deprecated_on_every_rank_but_two(shape, warns):
    # PyTorch warns once per process; set_warn_always makes every use warn, so each case sees its own.
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            flipped = torch.zeros(shape).T
    finally:
        torch.set_warn_always(False)
    assert any("deprecated" in str(w.message) for w in caught) == warns, shape
    assert flipped.shape == tuple(reversed(shape))  # 0-D and 1-D: unchanged


def test_expand_uses_no_memory_and_repeat_does():
    bias = torch.arange(3.)
    wide = expand(bias, (1000, 3))
    assert wide.stride() == (0, 1) and same_storage(wide, bias)
    assert bias.repeat(1000, 1).untyped_storage().nbytes() == 1000 * bias.untyped_storage().nbytes()


# Gradients flow through every from-scratch view.


def _leaf(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize(
    ("name", "fn", "shape"),
    [
        ("view", lambda x: view(x.t(), (2, 2, 3)), (3, 4)),
        ("reshape copy", lambda x: reshape(x.t(), (12,)), (3, 4)),
        ("transpose", lambda x: transpose(x, 0, 2), (2, 3, 4)),
        ("permute", lambda x: permute(x, (2, 0, 1)), (2, 3, 4)),
        ("expand", lambda x: expand(x, (4, 3, 2)), (3, 1)),
        ("split_heads", lambda x: split_heads(x, 2), (2, 3, 4)),
        ("merge_heads", lambda x: merge_heads(x), (2, 2, 3, 2)),
        ("sliding_windows", lambda x: sliding_windows(x, 1, 3, 2), (2, 7)),
    ],
)
def test_gradients_flow(name, fn, shape):
    torch.manual_seed(0)
    assert torch.autograd.gradcheck(fn, (_leaf(*shape),))


# Heads.


@pytest.mark.parametrize(("B", "T", "C", "h"), [(2, 5, 12, 3), (1, 1, 8, 8), (3, 4, 6, 1), (0, 3, 4, 2), (2, 0, 4, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64])
def test_head_k_holds_channel_group_k_of_every_token(B, T, C, h, dtype):
    x = torch.arange(B * T * C).to(dtype).view(B, T, C)
    heads = split_heads(x, h)
    d = C // h
    assert heads.shape == (B, h, T, d) and same_storage(heads, x)
    for k in range(h):
        assert torch.equal(heads[:, k], x[:, :, k * d : (k + 1) * d])
    assert torch.equal(merge_heads(heads), x)
    assert torch.equal(merge_heads(heads.contiguous()), x)


def test_merge_heads_copies_only_heads_that_are_not_row_major_once_transposed():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    fresh = heads.contiguous()
    assert same_storage(merge_heads(heads), x)
    assert not same_storage(merge_heads(fresh), fresh)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        fresh.transpose(1, 2).view(2, 5, 12)


def test_split_heads_works_on_a_slice_of_a_fused_projection():
    qkv = torch.randn(2, 5, 3 * 8)
    q, k, v = qkv.split(8, dim=-1)
    for part in (q, k, v):
        heads = split_heads(part, 4)
        assert same_storage(heads, qkv)
        assert torch.equal(merge_heads(heads), part)


def test_our_heads_are_pytorch_multihead_attention_heads():
    torch.manual_seed(0)
    B, T, C, h = 2, 5, 12, 3
    mha = torch.nn.MultiheadAttention(C, h, batch_first=True).eval()
    x = torch.randn(B, T, C)
    q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    heads = F.scaled_dot_product_attention(split_heads(q, h), split_heads(k, h), split_heads(v, h))
    ours = mha.out_proj(merge_heads(heads))
    theirs, _ = mha(x, x, x, need_weights=False)
    torch.testing.assert_close(ours, theirs)


def test_hammers_reshape_heads_mix_tokens_and_channels():
    x = torch.randn(2, 5, 12)
    hammer = x.reshape(2, 3, 5, 4)
    assert hammer.shape == split_heads(x, 3).shape
    assert not torch.equal(hammer, split_heads(x, 3))
    # His head 0, row 1 is token 0's channels 4..7, not token 1's channels 0..3.
    assert torch.equal(hammer[:, 0, 1], x[:, 0, 4:8])


def test_heads_refuse_bad_input():
    with pytest.raises(ValueError, match="num_heads must divide the channel count C=12, got num_heads=5"):
        split_heads(torch.zeros(2, 5, 12), 5)
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        split_heads(torch.zeros(2, 5, 12), 0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, C\), got shape \(5, 12\)"):
        split_heads(torch.zeros(5, 12), 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, h, T, d\), got shape \(2, 5, 12\)"):
        merge_heads(torch.zeros(2, 5, 12))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        split_heads([[1.0]], 1)


# Challenges.


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
@pytest.mark.parametrize("seed", range(3))
def test_sliding_windows_match_unfold(seed, dtype):
    rng = random.Random(seed)
    for _ in range(60):
        t = random_layout(rng, dtype)
        if t.ndim == 0 or 0 in t.shape:
            continue
        dim = rng.randrange(-t.ndim, t.ndim)
        size, step = rng.randint(1, t.size(dim)), rng.randint(1, 4)
        assert_same_view(sliding_windows(t, dim, size, step), t.unfold(dim, size, step), t)


def test_sliding_windows_refuse_bad_windows():
    x = torch.arange(5)
    with pytest.raises(ValueError, match=r"size must be an int in \[1, 5\] for dimension 0 of size 5, got 6"):
        sliding_windows(x, 0, 6, 1)
    with pytest.raises(ValueError, match="step must be a positive int, got 0"):
        sliding_windows(x, 0, 2, 0)
    with pytest.raises(ValueError, match="dimension must be in"):
        sliding_windows(x, 1, 2, 1)


def test_checkers_pass_the_professors_solutions():
    assert check_merge_heads(merge_heads) is None
    assert check_sliding_windows(sliding_windows) is None


def _merge_without_transpose(x):
    B, h, T, d = x.shape
    return x.reshape(B, T, h * d)


def _merge_in_place(x):
    out = x.transpose(1, 2).reshape(x.size(0), x.size(2), -1)
    x.zero_()
    return out


@pytest.mark.parametrize(
    ("attempt", "message"),
    [(_merge_without_transpose, "without moving the heads"), (_merge_in_place, "modified its input")],
)
def test_check_merge_heads_rejects_wrong_attempts(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_merge_heads(attempt)


def _windows_by_copy(input, dimension, size, step):
    return input.unfold(dimension, size, step).clone()


def _windows_off_by_one(input, dimension, size, step):
    n = input.size(dimension)
    starts = range(0, n - size, step)  # forgets the last window
    return torch.stack([input.narrow(dimension, s, size) for s in starts], dim=dimension).movedim(dimension + 1, -1)


@pytest.mark.parametrize(
    ("attempt", "message"), [(_windows_by_copy, "must be a view"), (_windows_off_by_one, "expected shape")]
)
def test_check_sliding_windows_rejects_wrong_attempts(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_sliding_windows(attempt)


# The figure.


def test_plot_memory_layout_draws_and_refuses_bad_sizes():
    assert isinstance(plot_memory_layout(), Figure)
    with pytest.raises(ValueError, match="rows must be in"):
        plot_memory_layout(rows=0)
    with pytest.raises(ValueError, match="cols in"):
        plot_memory_layout(cols=1)
