"""Our einsum agrees with torch.einsum on random equations, gradients included, and names every malformed one."""

from __future__ import annotations

import math
import random
import string

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.tensors.einsum import (
    EinsumSpec,
    align_operand,
    batched_bilinear_form,
    batched_trace,
    check_batched_bilinear_form,
    check_batched_trace,
    check_explicit_einsum_equation,
    einsum,
    explicit_einsum_equation,
    parse_equation,
    plot_einsum_alignment,
    plot_einsum_matmul,
)


def random_case(rng: random.Random) -> tuple[str, list[tuple[int, ...]]]:
    """A random valid equation of one or two operands and shapes that fit it.

    It mixes repeated indices within an operand, indices shared between operands, sizes of 1 that broadcast,
    empty axes, upper- and lowercase letters, ellipses of different ranks, implicit and explicit outputs
    (with or without the ellipsis) and spaces between tokens.
    """
    pool = rng.sample(string.ascii_letters, rng.randint(1, 5))
    sizes = {label: (0 if rng.random() < 0.04 else rng.randint(1, 4)) for label in pool}
    ellipsis_shape = [rng.randint(1, 3) for _ in range(rng.randint(0, 2))] if rng.random() < 0.3 else None
    terms, shapes = [], []
    for _ in range(rng.choice([1, 2])):
        labels = [rng.choice(pool) for _ in range(rng.randint(0, 4))]
        # An index that appears once in this operand may have size 1 here: it broadcasts.
        shape = [1 if labels.count(label) == 1 and rng.random() < 0.1 else sizes[label] for label in labels]
        term = "".join(labels)
        if ellipsis_shape is not None and rng.random() < 0.8:
            # Ellipses align from the right, so an operand may cover only the last few axes, or stretch 1s.
            covered = ellipsis_shape[len(ellipsis_shape) - rng.randint(0, len(ellipsis_shape)) :]
            covered = [1 if rng.random() < 0.2 else n for n in covered]
            at = rng.randint(0, len(labels))
            term, shape = term[:at] + "..." + term[at:], shape[:at] + covered + shape[at:]
        terms.append(term)
        shapes.append(tuple(shape))
    comma = rng.choice([",", ",", " , "])
    equation = comma.join(terms)
    if rng.random() < 0.7:
        used = sorted(set("".join(terms)) - {"."})
        output = "".join(rng.sample(used, rng.randint(0, len(used))))
        if any("..." in term for term in terms) and rng.random() < 0.7:
            at = rng.randint(0, len(output))
            output = output[:at] + "..." + output[at:]
        equation += rng.choice(["->", "->", " -> "]) + output
    return equation, shapes


def make_operands(shapes, dtype, generator, rng):
    """Random tensors of the given shapes, some of them non-contiguous (a permuted layout)."""
    operands = []
    for shape in shapes:
        transposed = rng.random() < 0.4
        stored = shape[::-1] if transposed else shape
        if dtype.is_floating_point:
            t = torch.randn(stored, dtype=dtype, generator=generator)
        else:
            t = torch.randint(-5, 6, stored, dtype=dtype, generator=generator)
        operands.append(t.permute(tuple(reversed(range(len(shape))))) if transposed else t)
    return operands


# Agreement with torch.einsum.


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_random_equations_agree_with_torch_einsum(seed, dtype):
    rng, generator = random.Random(seed), torch.Generator().manual_seed(seed)
    for _ in range(60):
        equation, shapes = random_case(rng)
        operands = make_operands(shapes, dtype, generator, rng)
        expected = torch.einsum(equation, *operands)
        got = einsum(equation, *operands)
        assert got.dtype == expected.dtype, equation
        torch.testing.assert_close(got, expected, msg=lambda m, eq=equation, s=shapes: f"{eq} {s}: {m}")


def test_integer_einsum_is_exact_and_keeps_its_dtype():
    rng, generator = random.Random(11), torch.Generator().manual_seed(11)
    for _ in range(80):
        equation, shapes = random_case(rng)
        operands = make_operands(shapes, torch.int64, generator, rng)
        got, expected = einsum(equation, *operands), torch.einsum(equation, *operands)
        assert got.dtype == torch.int64 and torch.equal(got, expected), (equation, shapes)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool])
def test_narrow_integers_and_bool_promote_exactly_where_torch_einsum_does(dtype):
    rng, generator = random.Random(12), torch.Generator().manual_seed(12)
    compared = 0
    for _ in range(300):
        equation, shapes = random_case(rng)
        operands = [t.abs().to(dtype) for t in make_operands(shapes, torch.int64, generator, rng)]
        got = einsum(equation, *operands)
        try:
            expected = torch.einsum(equation, *operands)
        except RuntimeError:  # bool has no batched product, and torch refuses mixed int64/narrow operands
            assert got.dtype in (dtype, torch.int64)
            continue
        compared += 1
        if got.dtype != expected.dtype:
            # The one corner where torch.einsum does not refuse the mixed operands: it has nothing to multiply.
            assert any(t.numel() == 0 for t in operands) and got.dtype == torch.int64, (equation, shapes)
        assert torch.equal(got, expected.to(got.dtype)), (equation, shapes)
    assert compared > 100


@pytest.mark.parametrize(
    ("equation", "shapes", "dtype"),
    [("ij->", [(2, 3)], torch.int64), ("ij->i", [(2, 3)], torch.int64), ("ii->", [(3, 3)], torch.int64),
     ("ii->i", [(3, 3)], torch.int32), ("ij->ji", [(2, 3)], torch.int32), ("ij,jk->ik", [(2, 3), (3, 4)], torch.int32),
     ("ij,j->j", [(2, 3), (3,)], torch.int64), ("i,j->", [(2,), (3,)], torch.int64), ("ij,ij->", [(2, 3), (2, 3)], torch.int32),
     ("ij->i", [(3, 1)], torch.int64), ("i,i->", [(1,), (1,)], torch.int32)],
)
def test_int32_reductions_come_back_as_int64_like_torch(equation, shapes, dtype):
    operands = [torch.arange(math.prod(shape), dtype=torch.int32).reshape(shape) for shape in shapes]
    got, expected = einsum(equation, *operands), torch.einsum(equation, *operands)
    assert got.dtype == expected.dtype == dtype and torch.equal(got, expected)


def test_where_torch_refuses_mixed_integer_operands_ours_returns_int64():
    # Where it differs from PyTorch: i is summed in the first operand alone (int64), j is then shared.
    a, v = torch.ones(2, 3, dtype=torch.int32), torch.ones(3, dtype=torch.int32)
    with pytest.raises(RuntimeError):
        torch.einsum("ij,j->", a, v)
    got = einsum("ij,j->", a, v)
    assert got.dtype == torch.int64 and got.item() == 6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_the_exact_answer_rounded_once(dtype):
    # Where it differs from PyTorch: ours computes in float32 and rounds once; torch.einsum rounds on the way.
    rng, generator = random.Random(13), torch.Generator().manual_seed(13)
    eps, tiny = torch.finfo(dtype).eps, torch.finfo(dtype).tiny
    for _ in range(120):
        equation, shapes = random_case(rng)
        operands = make_operands(shapes, dtype, generator, rng)
        got, theirs = einsum(equation, *operands), torch.einsum(equation, *operands)
        assert got.dtype == theirs.dtype == dtype and got.shape == theirs.shape
        exact = torch.einsum(equation, *(t.double() for t in operands))
        torch.testing.assert_close(got.double(), exact.to(dtype).double(), rtol=eps, atol=tiny)
        # And torch's own answer is within a few roundings of the sum of the magnitudes of the terms.
        scale = torch.einsum(equation, *(t.double().abs() for t in operands))
        assert ((got.double() - theirs.double()).abs() <= 4 * eps * scale + tiny).all(), equation


@settings(max_examples=40)
@given(st.randoms(use_true_random=False))
def test_property_our_einsum_is_torch_einsum(rng):
    equation, shapes = random_case(rng)
    operands = make_operands(shapes, torch.float64, torch.Generator().manual_seed(0), rng)
    torch.testing.assert_close(einsum(equation, *operands), torch.einsum(equation, *operands))


def test_the_generator_covers_the_interesting_cases():
    rng = random.Random(0)
    cases = [random_case(rng) for _ in range(300)]
    equations = [equation for equation, _ in cases]
    assert any("->" not in e for e in equations) and any("->" in e for e in equations)
    assert any("..." in e.partition("->")[0] and "..." not in e.partition("->")[2] for e in equations if "->" in e)
    assert any(0 in shape for _, shapes in cases for shape in shapes)
    assert any(len(shapes) == 2 for _, shapes in cases) and any(len(shapes) == 1 for _, shapes in cases)
    assert any(any(term.count(c) > 1 for c in set(term) - {"."}) for e in equations for term in e.split("->")[0].split(","))


GALLERY = [
    ("i,i->", [(4,), (4,)], lambda x, y: torch.dot(x, y)),
    ("i,j->ij", [(3,), (4,)], lambda x, y: torch.outer(x, y)),
    ("ij,j->i", [(3, 4), (4,)], lambda A, v: A @ v),
    ("ij,jk->ik", [(3, 4), (4, 5)], lambda A, B: A @ B),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], lambda P, Q: torch.bmm(P, Q)),
    ("ij->ji", [(3, 4)], lambda A: A.T),
    ("abc->cab", [(2, 3, 4)], lambda T: T.permute(2, 0, 1)),
    ("ii->", [(4, 4)], lambda S: torch.trace(S)),
    ("ii->i", [(4, 4)], lambda S: torch.diagonal(S)),
    ("ij->", [(3, 4)], lambda A: A.sum()),
    ("ij->i", [(3, 4)], lambda A: A.sum(dim=1)),
    ("ij,ij->ij", [(3, 4), (3, 4)], lambda A, B: A * B),
    ("...ij->...ji", [(2, 5, 3, 4)], lambda T: T.mT),
    ("...ij,...jk", [(5, 2, 3), (3, 4)], lambda P, Q: P @ Q),
]


@pytest.mark.parametrize(("equation", "shapes", "plain"), GALLERY, ids=[g[0] for g in GALLERY])
def test_the_gallery_equals_plain_pytorch(equation, shapes, plain):
    operands = [torch.randn(shape, dtype=torch.float64) for shape in shapes]
    torch.testing.assert_close(einsum(equation, *operands), plain(*operands))
    torch.testing.assert_close(torch.einsum(equation, *operands), plain(*operands))


def test_operands_may_come_as_one_list_as_in_pytorch():
    A, B = torch.randn(2, 3), torch.randn(3, 4)
    torch.testing.assert_close(einsum("ij,jk->ik", [A, B]), torch.einsum("ij,jk->ik", [A, B]))
    torch.testing.assert_close(einsum("ij->ji", (A,)), A.T)


def test_empty_axes_give_empty_or_zero_results():
    A, B = torch.randn(2, 0), torch.randn(0, 3)
    assert torch.equal(einsum("ij,jk->ik", A, B), torch.zeros(2, 3))
    assert einsum("ij,jk->ki", torch.randn(0, 4), torch.randn(4, 3)).shape == (3, 0)
    assert einsum("ii", torch.randn(0, 0)).item() == 0


def test_scalars_and_the_empty_equation():
    s, t = torch.tensor(3.0), torch.tensor(4.0)
    assert einsum("", s).item() == 3.0 and einsum(",->", s, t).item() == 12.0
    torch.testing.assert_close(einsum("i,->i", torch.ones(3), s), torch.full((3,), 3.0))


# Gradients.


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
        ("ii->i", [(3, 3)]),
        ("iij,jk->ki", [(2, 2, 3), (3, 2)]),
        ("i,j", [(3,), (2,)]),
        ("ij,j->ij", [(2, 1), (4,)]),
        ("...ii->...", [(2, 3, 3)]),
        ("ba", [(2, 3)]),
    ],
)
def test_gradients_pass_gradcheck(equation, shapes):
    operands = [torch.randn(shape, dtype=torch.float64, requires_grad=True) for shape in shapes]
    assert torch.autograd.gradcheck(lambda *ops: einsum(equation, *ops), operands)


def test_gradients_equal_torch_einsums():
    rng, generator = random.Random(3), torch.Generator().manual_seed(3)
    for _ in range(30):
        equation, shapes = random_case(rng)
        ours = [t.detach().requires_grad_() for t in make_operands(shapes, torch.float64, generator, rng)]
        theirs = [t.detach().clone().requires_grad_() for t in ours]
        out = einsum(equation, *ours)
        weight = torch.randn(out.shape, dtype=torch.float64, generator=generator)
        (out * weight).sum().backward()
        (torch.einsum(equation, *theirs) * weight).sum().backward()
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a.grad, b.grad, msg=lambda m, eq=equation: f"{eq}: {m}")


# Parsing and aligning.


def test_parse_equation_returns_the_spec():
    spec = parse_equation("ij,jk->ik", [(2, 3), (3, 4)])
    assert spec == EinsumSpec((("i", "j"), ("j", "k")), ("i", "k"), {"i": 2, "j": 3, "k": 4})
    assert spec.contracted == ("j",)


@pytest.mark.parametrize(
    ("equation", "shapes", "output"),
    [
        ("ba", [(2, 3)], ("a", "b")),
        ("bA", [(2, 3)], ("A", "b")),
        ("Ba", [(2, 3)], ("B", "a")),
        ("iij", [(2, 2, 3)], ("j",)),
        ("ij,ij", [(2, 3), (2, 3)], ()),
        ("j...i", [(2, 4, 5, 3)], ("...0", "...1", "i", "j")),
        ("...i,...i", [(4, 1, 3), (5, 3)], ("...0", "...1")),
    ],
)
def test_implicit_output_is_the_ellipsis_then_single_letters_sorted(equation, shapes, output):
    assert parse_equation(equation, shapes).output == output
    assert torch.einsum(equation, *[torch.zeros(s) for s in shapes]).shape == tuple(
        parse_equation(equation, shapes).sizes[index] for index in output
    )


def test_sizes_of_one_broadcast_across_operands():
    assert parse_equation("i,i->i", [(1,), (3,)]).sizes == {"i": 3}
    assert parse_equation("i,i->i", [(3,), (1,)]).sizes == {"i": 3}
    assert parse_equation("i,i->i", [(0,), (1,)]).sizes == {"i": 0}
    torch.testing.assert_close(einsum("ij,ij->ij", torch.ones(2, 1), torch.ones(1, 3)), torch.ones(2, 3))


def test_align_operand_is_a_view_along_the_shared_order():
    x = torch.arange(24).reshape(2, 3, 4)
    aligned = align_operand(x, ("a", "b", "c"), ("c", "z", "a", "b"))
    assert aligned.shape == (4, 1, 2, 3)
    assert aligned.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    assert torch.equal(aligned[:, 0], x.permute(2, 0, 1))
    cube = torch.arange(27).reshape(3, 3, 3)
    assert torch.equal(align_operand(cube, ("i", "i", "i"), ("i",)), torch.tensor([0, 13, 26]))
    assert torch.equal(align_operand(cube, ("i", "j", "i"), ("i", "j")), cube.diagonal(0, 0, 2).T)


@pytest.mark.parametrize(
    ("labels", "order", "shape", "match"),
    [
        (("i",), ("i",), (2, 3), "must name each of the 2 axes"),
        (("i", "j"), ("i",), (2, 3), "must hold every index"),
        (("i", "j"), ("i", "j", "i"), (2, 3), "must hold every index"),
        (("i", "i"), ("i",), (2, 3), "sizes 2 and 3"),
    ],
)
def test_align_operand_refuses_bad_labels(labels, order, shape, match):
    with pytest.raises(ValueError, match=match):
        align_operand(torch.zeros(shape), labels, order)
    with pytest.raises(TypeError, match="operand must be a torch.Tensor"):
        align_operand([1, 2], ("i",), ("i",))


# Malformed equations: each one is refused by PyTorch too, and ours names the equation and the problem.

MALFORMED = [
    ("i1->i", [(3, 3)], "invalid character '1' at position 1"),
    ("i\t->i", [(3,)], r"invalid character '\\t' at position 1"),
    ("i->->i", [(3,)], "more than one arrow"),
    ("i-i", [(3,)], "may only appear together"),
    ("i>i", [(3,)], "may only appear together"),
    ("i->i,i", [(3,)], "cannot contain ','"),
    ("i..->i", [(3,)], "not part of an ellipsis"),
    (". . .i->i", [(3,)], "not part of an ellipsis"),
    ("...i...->i", [(2, 3)], "more than one ellipsis"),
    ("i->...i..", [(3,)], "not part of an ellipsis"),
    ("i,j->ij", [(3,)], r"2 input term\(s\) but 1 operand"),
    ("i->i", [(3,), (3,)], r"1 input term\(s\) but 2 operand"),
    ("ij->i", [(3,)], r"the term 'ij' has 2 subscript\(s\) but operand 0 has shape \(3,\)"),
    ("i,ij->i", [(3,), (3,)], "operand 1 has shape"),
    ("ij...->i", [(3,)], "besides '...'"),
    ("i->j", [(3,)], "output subscript 'j' appears in no input term"),
    ("ii->ii", [(3, 3)], "output subscript 'i' appears more than once"),
    ("ij,jk->iki", [(2, 3), (3, 4)], "output subscript 'i' appears more than once"),
    ("ii->i", [(2, 3)], "subscript 'i' repeats in operand 0 over axes of sizes 2 and 3"),
    ("ii->i", [(1, 3)], "must be equal"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "subscript 'j' has size 3 in an earlier operand but 4 in operand 1"),
    ("...i,...i->...", [(4, 2, 3), (5, 3)], "subscript '...1' has size 2 in an earlier operand but 5"),
]


@pytest.mark.parametrize(("equation", "shapes", "match"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_equations_are_named_and_refused(equation, shapes, match):
    operands = [torch.zeros(shape) for shape in shapes]
    with pytest.raises(ValueError, match=match) as error:
        einsum(equation, *operands)
    assert str(error.value).startswith(f"einsum equation {equation!r}: ")
    with pytest.raises((RuntimeError, ValueError)):
        torch.einsum(equation, *operands)


def test_wrong_types_and_too_many_operands_are_refused():
    x = torch.zeros(3)
    with pytest.raises(TypeError, match="equation must be a str"):
        einsum(["i"], x)
    with pytest.raises(TypeError, match=r"operands\[1\] must be a torch.Tensor, got list"):
        einsum("i,i->", x, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="operands must share one dtype"):
        einsum("i,i->", x, x.double())
    with pytest.raises(NotImplementedError, match="one or two operands, got 3"):
        einsum("i,i,i->", x, x, x)
    with pytest.raises(ValueError, match=r"1 input term\(s\) but 0 operand"):
        einsum("i")


# Figures.


def test_plots_draw_figures():
    for fig in (plot_einsum_matmul(), plot_einsum_matmul(rows=1, inner=6, cols=1), plot_einsum_alignment(),
                plot_einsum_alignment(equation="...ii,j->j...", shapes=((2, 3, 3), (4,)))):
        assert isinstance(fig, Figure) and len(fig.axes) == 1


def test_plots_refuse_bad_arguments():
    with pytest.raises(ValueError, match="rows, inner and cols must be ints in"):
        plot_einsum_matmul(rows=0)
    with pytest.raises(ValueError, match="einsum equation 'ij,jk->ik'"):
        plot_einsum_alignment(shapes=((2, 3), (4, 5)))
    with pytest.raises(ValueError, match="one or two operands, got 3"):
        plot_einsum_alignment(equation="i,i,i", shapes=((2,), (2,), (2,)))


# Challenges.


def test_challenge_solutions_pass_their_checkers():
    assert check_batched_bilinear_form(batched_bilinear_form) is None
    assert check_batched_trace(batched_trace) is None
    assert check_explicit_einsum_equation(explicit_einsum_equation) is None


def test_bilinear_checker_rejects_the_implicit_mode_slip():
    # Implicit mode sees b twice and sums the whole batch into one number.
    with pytest.raises(AssertionError, match="is b in the output"):
        check_batched_bilinear_form(lambda x, A, y: torch.einsum("bi,ij,bj", x, A, y))
    with pytest.raises(AssertionError, match="wrong values"):
        check_batched_bilinear_form(lambda x, A, y: torch.einsum("bi,ij,bj->b", x, A, y).abs())


def test_batched_trace_checker_wants_the_last_two_axes_and_a_value_error():
    with pytest.raises(AssertionError, match="expected ValueError, got RuntimeError"):
        check_batched_trace(lambda t: torch.einsum("...ii->...", t))
    with pytest.raises(AssertionError, match="expected shape"):
        check_batched_trace(lambda t: t.diagonal().sum(-1))


def test_explicit_equation_checker_wants_sorted_letters():
    def in_order_of_appearance(equation):
        if "->" in equation:
            return equation
        letters = equation.replace(",", "").replace(".", "")
        return equation + "->" + "".join(c for c in dict.fromkeys(letters) if letters.count(c) == 1)

    with pytest.raises(AssertionError, match="'ba': expected 'ba->ab', got 'ba->ba'"):
        check_explicit_einsum_equation(in_order_of_appearance)


@settings(max_examples=40)
@given(st.randoms(use_true_random=False))
def test_property_the_explicit_equation_computes_the_same(rng):
    equation, shapes = random_case(rng)
    operands = [torch.randn(shape, dtype=torch.float64) for shape in shapes]
    explicit = explicit_einsum_equation(equation.partition("->")[0])
    torch.testing.assert_close(torch.einsum(explicit, *operands), torch.einsum(equation.partition("->")[0], *operands))


def test_challenge_solutions_validate_their_input():
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        batched_trace(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="expected x"):
        batched_bilinear_form(torch.zeros(2, 3), torch.zeros(4, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="more than one arrow"):
        explicit_einsum_equation("i->i->i")
