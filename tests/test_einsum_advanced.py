"""Advanced einsum: projections with the head split folded in equal linear-then-split, contraction orders
are counted right, and the small rearrange equals permute and reshape."""

from __future__ import annotations

import math

import pytest
import torch
import torch.backends.opt_einsum  # not imported with torch before 2.5
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.tensors.einsum_advanced import (
    _all_orders,
    _multiply_chain,
    best_chain_order,
    chain_flops,
    chain_intermediates,
    check_patchify_images,
    einsum_merge_heads,
    einsum_project_heads,
    patchify_images,
    plot_contraction_order,
    rearrange,
    time_chain_orders,
)
from torchenstein.tensors.metamorphosis import merge_heads, split_heads

FLOATS = [torch.float32, torch.float64]


def same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# Projections with the head split folded in.


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize(("B", "T", "C_in", "C_out", "h"), [(2, 5, 12, 12, 3), (1, 1, 4, 8, 8), (3, 4, 6, 10, 2),
                                                             (0, 3, 4, 4, 2), (2, 0, 4, 6, 3)])
def test_project_heads_is_linear_then_split(B, T, C_in, C_out, h, with_bias, dtype):
    g = torch.Generator().manual_seed(C_out)
    x = torch.randn(B, T, C_in, generator=g, dtype=dtype)
    w = torch.randn(C_out, C_in, generator=g, dtype=dtype)
    b = torch.randn(C_out, generator=g, dtype=dtype) if with_bias else None
    heads = einsum_project_heads(x, w, b, num_heads=h)
    torch.testing.assert_close(heads, split_heads(F.linear(x, w, b), num_heads=h))
    # A weight that is not contiguous (here the transpose of a transpose's copy) works as well.
    torch.testing.assert_close(einsum_project_heads(x, w.t().contiguous().t(), b, h), heads)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize(("B", "h", "T", "d", "C_out"), [(2, 3, 5, 4, 12), (1, 1, 1, 3, 5), (2, 4, 3, 2, 7)])
def test_merge_heads_projection_is_merge_then_linear(B, h, T, d, C_out, with_bias, dtype):
    g = torch.Generator().manual_seed(h * d)
    heads = torch.randn(B, h, T, d, generator=g, dtype=dtype)
    w = torch.randn(C_out, h * d, generator=g, dtype=dtype)
    b = torch.randn(C_out, generator=g, dtype=dtype) if with_bias else None
    torch.testing.assert_close(einsum_merge_heads(heads, w, b), F.linear(merge_heads(heads), w, b))


def test_projections_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: einsum_project_heads(x, w, b, 3), (x, w, b))
    heads = torch.randn(2, 3, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    w_out = torch.randn(5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    b_out = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(einsum_merge_heads, (heads, w_out, b_out))


def test_projections_refuse_bad_shapes():
    x = torch.randn(2, 5, 12)
    with pytest.raises(ValueError, match="num_heads must divide the output channels C_out=12, got num_heads=5"):
        einsum_project_heads(x, torch.randn(12, 12), None, num_heads=5)
    with pytest.raises(ValueError, match=r"weight must have shape \(C_out, 12\)"):
        einsum_project_heads(x, torch.randn(12, 8), None, num_heads=3)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\), got \(3,\)"):
        einsum_project_heads(x, torch.randn(12, 12), torch.randn(3), num_heads=3)
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        einsum_project_heads(x, torch.randn(12, 12), None, num_heads=0)
    with pytest.raises(ValueError, match=r"weight must have shape \(C_out, h \* d\) = \(C_out, 12\)"):
        einsum_merge_heads(torch.randn(2, 3, 5, 4), torch.randn(12, 10))
    with pytest.raises(ValueError, match=r"bias must have shape \(7,\)"):
        einsum_merge_heads(torch.randn(2, 3, 5, 4), torch.randn(7, 12), torch.randn(12))


# Contraction order and its cost.

CLRS = [(30, 35), (35, 15), (15, 5), (5, 10), (10, 20), (20, 25)]


def test_best_chain_order_on_the_textbook_chain():
    # The classic example: 15125 scalar multiplications, each a multiply and an add.
    assert best_chain_order(CLRS) == ("((A(BC))((DE)F))", 2 * 15125)
    assert chain_flops(CLRS, "((A(BC))((DE)F))") == 2 * 15125


def test_all_orders_are_the_catalan_numbers():
    assert [len(_all_orders(0, n - 1)) for n in range(1, 7)] == [1, 1, 2, 5, 14, 42]


chains = st.lists(st.integers(1, 9), min_size=2, max_size=6).map(lambda d: [(d[i], d[i + 1]) for i in range(len(d) - 1)])


@given(chains)
def test_best_chain_order_is_the_cheapest_of_all(shapes):
    order, flops = best_chain_order(shapes)
    every = {o: chain_flops(shapes, o) for o in _all_orders(0, len(shapes) - 1)}
    assert flops == min(every.values()) == every[order]


@given(chains)
def test_flops_and_intermediates_follow_the_shapes(shapes):
    for order in _all_orders(0, len(shapes) - 1):
        intermediates = chain_intermediates(shapes, order)
        assert len(intermediates) == max(len(shapes) - 2, 0)
        assert all(r in {s[0] for s in shapes} and c in {s[1] for s in shapes} for r, c in intermediates)
    left = "".join("(" for _ in shapes[1:]) + "A" + "".join(f"{chr(ord('A') + i)})" for i in range(1, len(shapes)))
    assert chain_flops(shapes, left) == sum(2 * shapes[0][0] * s[0] * s[1] for s in shapes[1:])


@pytest.mark.parametrize("n", [1, 3, 4])
def test_every_order_gives_the_same_product(n):
    g = torch.Generator().manual_seed(n)
    dims = [3, 5, 2, 4, 6][: n + 1]
    matrices = [torch.randn(dims[i], dims[i + 1], generator=g, dtype=torch.float64) for i in range(n)]
    expected = torch.linalg.multi_dot(matrices) if n > 1 else matrices[0]
    for order in _all_orders(0, n - 1):
        torch.testing.assert_close(_multiply_chain(matrices, order), expected)


def test_outer_parentheses_are_optional_and_spaces_ignored():
    shapes = [(2, 3), (3, 4), (4, 5)]
    assert chain_flops(shapes, "(AB)C") == chain_flops(shapes, "((A B) C)") == chain_flops(shapes, "((AB)C)")
    assert chain_flops([(4, 4)], "A") == 0
    assert chain_intermediates(shapes, "A(BC)") == [(3, 5)]


@pytest.mark.parametrize("order", ["(AB", "ABC", "(A(BC)", "((AB)C))", "(AA)C", "(AB)(C)", "(AB)D", "(CB)A", "", "()"])
def test_bad_orders_are_refused(order):
    with pytest.raises(ValueError, match="order must be one bracketing of ABC"):
        chain_flops([(2, 3), (3, 4), (4, 5)], order)


def test_bad_chains_are_refused():
    with pytest.raises(ValueError, match=r"shapes do not chain: shapes\[0\] = \(2, 3\) has 3 columns"):
        chain_flops([(2, 3), (4, 5)], "AB")
    with pytest.raises(ValueError, match=r"shapes\[1\] must be a pair of non-negative ints"):
        best_chain_order([(2, 3), (3, 4, 5)])
    with pytest.raises(ValueError, match="shapes must be a non-empty sequence"):
        best_chain_order([])
    with pytest.raises(TypeError, match="order must be a string"):
        chain_flops([(2, 3), (3, 4)], ((0, 1),))


def test_time_chain_orders_times_every_order():
    timings = time_chain_orders([(4, 5), (5, 6), (6, 2), (2, 3)], repeat=1)
    assert sorted(timings) == sorted(_all_orders(0, 3))
    assert all(isinstance(t, float) and t > 0 for t in timings.values())
    assert list(time_chain_orders([(4, 5), (5, 6)], orders=["AB"], repeat=1)) == ["AB"]
    with pytest.raises(ValueError, match="order must be one bracketing"):
        time_chain_orders([(4, 5), (5, 6)], orders=["BA"])


@pytest.mark.skipif(not torch.backends.opt_einsum.is_available(), reason="opt_einsum is not installed")
def test_opt_einsum_changes_the_order_not_the_answer():
    g = torch.Generator().manual_seed(0)
    u, vt, x = torch.randn(50, 1, generator=g), torch.randn(1, 50, generator=g), torch.randn(50, 1, generator=g)
    optimised = torch.einsum("ij,jk,kl->il", u, vt, x)
    with torch.backends.opt_einsum.flags(enabled=False):
        left_to_right = torch.einsum("ij,jk,kl->il", u, vt, x)
    torch.testing.assert_close(optimised, left_to_right)


def test_plot_contraction_order():
    fig = plot_contraction_order(sizes=(2, 4, 8))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [3, 3]
    with pytest.raises(ValueError, match="sizes must be a non-empty sequence of positive ints"):
        plot_contraction_order(sizes=(4, 0))


# Rearrange.

PAIRS = [
    ("b t (h d) -> b h t d", {"h": 3}, lambda x: x.view(2, 4, 3, 2).permute(0, 2, 1, 3), (2, 4, 6)),
    ("b h t d -> b t (h d)", {}, lambda x: x.permute(0, 2, 1, 3).reshape(2, 4, 6), (2, 3, 4, 2)),
    ("b c h w -> b (h w) c", {}, lambda x: x.flatten(2).transpose(1, 2), (2, 3, 4, 5)),
    ("a b c -> c a b", {}, lambda x: x.permute(2, 0, 1), (2, 3, 4)),
    ("a b -> (a b)", {}, lambda x: x.reshape(-1), (3, 4)),
    ("a b -> (b a)", {}, lambda x: x.t().reshape(-1), (3, 4)),
    ("(a b) -> b a", {"a": 2}, lambda x: x.view(2, -1).t(), (6,)),
    ("t c -> () t c", {}, lambda x: x.unsqueeze(0), (5, 6)),
    ("() t c -> t c", {}, lambda x: x.squeeze(0), (1, 5, 6)),
    ("b (h p1) (w p2) -> b (h w) (p1 p2)", {"p1": 2, "p2": 3},
     lambda x: x.view(2, 2, 2, 2, 3).permute(0, 1, 3, 2, 4).reshape(2, 4, 6), (2, 4, 6)),
    ("x -> x", {}, lambda x: x, (0,)),
    ("b (h d) -> h b d", {"h": 2}, lambda x: x.view(3, 2, 0).transpose(0, 1), (3, 0)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.bool])
@pytest.mark.parametrize(("pattern", "lengths", "reference", "shape"), PAIRS, ids=[p[0] for p in PAIRS])
def test_rearrange_equals_permute_and_reshape(pattern, lengths, reference, shape, dtype):
    x = (torch.arange(math.prod(shape)) % 7).to(dtype).view(shape)
    got = rearrange(x, pattern, **lengths)
    expected = reference(x)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


def test_rearrange_returns_views_when_it_can():
    x = torch.randn(2, 5, 12)
    heads = rearrange(x, "b t (h d) -> b h t d", h=3)
    assert same_storage(heads, x) and heads.stride() == split_heads(x, 3).stride()
    assert same_storage(rearrange(heads, "b h t d -> b t (h d)"), x)
    fresh = heads.contiguous()
    assert not same_storage(rearrange(fresh, "b h t d -> b t (h d)"), fresh)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_rearrange_and_its_inverse_give_back_the_input(sizes, rng):
    names = [f"a{i}" for i in range(len(sizes))]
    x = torch.arange(math.prod(sizes)).view(sizes)
    order = rng.sample(names, len(names))
    # Merge a random run of neighbours on the right into one group.
    start = rng.randrange(len(order))
    stop = rng.randrange(start, len(order)) + 1
    right = order[:start] + ["(" + " ".join(order[start:stop]) + ")"] + order[stop:]
    forward = f"{' '.join(names)} -> {' '.join(right)}"
    backward = f"{' '.join(right)} -> {' '.join(names)}"
    lengths = dict(zip(names, sizes, strict=True))
    y = rearrange(x, forward)
    assert y.numel() == x.numel() and y.ndim == len(right)
    assert torch.equal(rearrange(y, backward, **{n: lengths[n] for n in order[start:stop - 1]}), x)
    # Without grouping it is exactly permute.
    assert torch.equal(rearrange(x, f"{' '.join(names)} -> {' '.join(order)}"), x.permute([names.index(n) for n in order]))


def test_rearrange_gradcheck():
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: rearrange(t, "b (h d) c -> (c b) d h", h=2), (x,))


@pytest.mark.parametrize(
    ("pattern", "lengths", "error", "match"),
    [
        ("b t c", {}, ValueError, "pattern must hold exactly one '->'"),
        ("b t -> c -> d", {}, ValueError, "pattern must hold exactly one '->'"),
        ("b t c -> b c", {}, ValueError, r"both sides must name the same axes.*left has \['t'\]"),
        ("b t c -> b t c x", {}, ValueError, r"right has \['x'\]"),
        ("b b c -> b c", {}, ValueError, r"each axis may appear once per side, \['b'\] repeat"),
        ("b t (c -> b t c", {}, ValueError, r"'\(' is never closed"),
        ("b t c) -> b t c", {}, ValueError, r"'\)' without '\('"),
        ("b ((t c)) -> b t c", {}, ValueError, "parentheses cannot be nested"),
        ("b ... -> ... b", {}, ValueError, r"'\.' is not supported by this small rearrange \(name every axis\)"),
        ("b t 1 -> b t", {}, ValueError, r"'1' is not supported.*use \(\) for a dimension of size one"),
        ("b t c -> b t c", {"x": 2}, ValueError, r"axes_lengths: \['x'\] are not axes of the pattern"),
        ("b t c -> b t c", {"t": 0}, ValueError, r"axes_lengths\['t'\] must be a positive int, got 0"),
        ("b t -> b t", {}, ValueError, r"the left side has 2 dimensions but the tensor has shape \(2, 3, 4\)"),
        ("b t (h d) -> b h t d", {}, ValueError, r"give all but one of \['h', 'd'\]"),
        ("b t (h d) -> b h t d", {"h": 3}, ValueError, "h=3 does not divide the dimension of size 4"),
        ("b t (h d) -> b h t d", {"h": 2, "d": 3}, ValueError, "the lengths multiply to 6, not 4"),
        ("b t c -> b t c", {"c": 5}, ValueError, "the lengths multiply to 5, not 4"),
        ("b () c -> b c", {}, ValueError, r"the lengths multiply to 1, not 3, for the dimension of size 3 matched by group \(\)"),
    ],
)
def test_rearrange_explains_bad_patterns(pattern, lengths, error, match):
    with pytest.raises(error, match=match):
        rearrange(torch.zeros(2, 3, 4), pattern, **lengths)


def test_rearrange_refuses_bad_types():
    with pytest.raises(TypeError, match="tensor must be a torch.Tensor, got list"):
        rearrange([1, 2], "a -> a")
    with pytest.raises(TypeError, match="pattern must be a string"):
        rearrange(torch.zeros(2), ["a", "a"])


# Dr. Hammer's traps.


def test_group_order_d_h_scrambles_the_heads():
    x = torch.arange(2 * 3 * 12).view(2, 3, 12)
    scrambled = rearrange(x, "b t (d h) -> b h t d", h=4)
    assert scrambled.shape == split_heads(x, 4).shape
    assert not torch.equal(scrambled, split_heads(x, 4))
    # Each of Hammer's "heads" takes every 4th channel: a comb across all the real heads.
    assert torch.equal(scrambled[0, 1, 0], x[0, 0, 1::4])


def test_a_bad_order_makes_a_quadratic_intermediate():
    for n in (10, 100, 1000):
        low_rank = [(n, 1), (1, n), (n, 1)]
        assert chain_intermediates(low_rank, "((AB)C)") == [(n, n)]
        assert chain_flops(low_rank, "((AB)C)") == n * chain_flops(low_rank, "(A(BC))")
        assert best_chain_order(low_rank)[0] == "(A(BC))"


# Challenges.


def test_patchify_checker_passes_the_solution_and_rejects_wrong_attempts():
    assert check_patchify_images(patchify_images) is None

    def channels_first(images, patch_size):
        return rearrange(images, "b c (h p1) (w p2) -> b (h w) (c p1 p2)", p1=patch_size, p2=patch_size)

    def plain_reshape(images, patch_size):
        B, C, H, W = images.shape
        return images.reshape(B, (H // patch_size) * (W // patch_size), -1)

    for attempt in (channels_first, plain_reshape):
        with pytest.raises(AssertionError, match="wrong values"):
            check_patchify_images(attempt)
    with pytest.raises(ValueError, match=r"patch_size must divide the image's height and width \(6, 8\), got 4"):
        patchify_images(torch.zeros(1, 3, 6, 8), 4)
