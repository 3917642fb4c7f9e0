"""The thorough proof of the autograd lesson: the scalar engine against torch.autograd on random
expressions, and every tool of the lesson against PyTorch's own."""

from __future__ import annotations

import io
import math
import operator
import random
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import torchenstein.tensors.autograd as lesson
from torchenstein.challenges import challenges_in
from torchenstein.lab import device_available
from torchenstein.tensors.autograd import (
    StableSoftplus,
    Value,
    check_hessian_vector_product,
    check_value_sin,
    grad_fn_tree,
    hessian_vector_product,
    jacobian_by_vjps,
    plot_graph,
    softplus,
    topological_order,
    value_sin,
)

# Random expression trees. A tree is a nested tuple: ("var", i), ("const", c), (unary, child),
# ("pow", child, k) or (binary, left, right). Logarithms, divisions and fractional powers only receive
# u**2 + c with c > 0, so no tree leaves its domain; leaves are always variables, so every unary method is
# called on a Value or a tensor, never on a bare float.
UNARY = ("neg", "exp", "log", "tanh", "relu", "sigmoid", "pow")
BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def grow(rng: random.Random, depth: int, num_variables: int) -> tuple:
    def constant(low: float, high: float) -> tuple:
        return ("const", rng.uniform(low, high))

    def positive(tree: tuple) -> tuple:
        return ("add", ("pow", tree, 2), constant(0.5, 1.5))

    if depth == 0 or rng.random() < 0.15:
        return ("var", rng.randrange(num_variables))
    if rng.random() < 0.5:
        op, child = rng.choice(UNARY), grow(rng, depth - 1, num_variables)
        if op == "pow":
            k = rng.choice((2, 3, -1, 0.5, -1.5))
            return ("pow", child if k in (2, 3) else positive(child), k)
        return ("log", positive(child)) if op == "log" else (op, child)
    op = rng.choice(tuple(BINARY))
    left, right = grow(rng, depth - 1, num_variables), grow(rng, depth - 1, num_variables)
    if rng.random() < 0.25:  # a constant on either side exercises the reflected operators too
        left, right = (constant(-1.5, 1.5), right) if rng.random() < 0.5 else (left, constant(-1.5, 1.5))
    return (op, left, positive(right) if op == "div" else right)


def evaluate(tree: tuple, variables: list):
    """Evaluate a tree on Values or on 0-d tensors alike: they share operators and method names."""
    op, *args = tree
    if op == "var":
        return variables[args[0]]
    if op == "const":
        return args[0]
    if op in BINARY:
        return BINARY[op](evaluate(args[0], variables), evaluate(args[1], variables))
    child = evaluate(args[0], variables)
    if op == "pow":
        return child ** args[1]
    return -child if op == "neg" else getattr(child, op)()


def by_engine(tree: tuple, inputs: list[float]) -> torch.Tensor:
    xs = [Value(v) for v in inputs]
    out = evaluate(tree, xs)
    out.backward()
    return torch.tensor([out.data, *(x.grad for x in xs)], dtype=torch.float64)


def by_torch(tree: tuple, inputs: list[float]) -> torch.Tensor:
    leaf = torch.tensor(inputs, dtype=torch.float64, requires_grad=True)
    out = evaluate(tree, list(leaf.unbind()))
    (grad,) = torch.autograd.grad(out, leaf)
    return torch.cat([out.detach().reshape(1), grad])


def random_case(seed: int, depth: int = 4, num_variables: int = 3) -> tuple[tuple, list[float]]:
    """A random tree and inputs whose value and gradients stay finite and below 1e6 (else draw again)."""
    rng = random.Random(seed)
    while True:
        tree = grow(rng, depth, num_variables)
        inputs = [rng.uniform(-2.0, 2.0) for _ in range(num_variables)]
        try:
            result = by_engine(tree, inputs)
        except OverflowError:  # math.exp refuses where torch.exp would return inf
            continue
        if result.isfinite().all() and result.abs().max() < 1e6:
            return tree, inputs


def operations(tree: tuple) -> list[str]:
    return [tree[0], *(op for arg in tree[1:] if isinstance(arg, tuple) for op in operations(arg))]


@pytest.mark.parametrize("seed", range(200))
def test_engine_equals_torch_autograd_on_random_expressions(seed):
    tree, inputs = random_case(seed)
    torch.testing.assert_close(by_engine(tree, inputs), by_torch(tree, inputs), msg=lambda m: f"{tree}\n{m}")


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), depth=st.integers(0, 6), num_variables=st.integers(1, 5))
def test_engine_equals_torch_autograd_property(seed, depth, num_variables):
    tree, inputs = random_case(seed, depth, num_variables)
    torch.testing.assert_close(by_engine(tree, inputs), by_torch(tree, inputs))


def test_random_expressions_exercise_every_operation():
    seen = Counter(op for seed in range(200) for op in operations(random_case(seed)[0]))
    assert set(seen) == {"var", "const", *UNARY, *BINARY}
    # Constants appear on the left of some binary operations, so the reflected operators run too.
    trees = [random_case(seed)[0] for seed in range(200)]
    assert any(t[0] in BINARY and t[1][0] == "const" for tree in trees for t in _subtrees(tree))


def _subtrees(tree: tuple):
    yield tree
    for arg in tree[1:]:
        if isinstance(arg, tuple):
            yield from _subtrees(arg)


UNARY_CASES = [
    ("neg", operator.neg, [-1.3, 0.0, 2.0]),
    ("exp", lambda t: t.exp(), [-3.0, 0.0, 1.7]),
    ("log", lambda t: t.log(), [0.01, 1.0, 12.5]),
    ("tanh", lambda t: t.tanh(), [-4.0, 0.0, 0.3]),
    ("relu", lambda t: t.relu(), [-2.0, 0.0, 1.5]),
    ("sigmoid", lambda t: t.sigmoid(), [-800.0, -3.0, 0.0, 2.0, 800.0]),
    ("square", lambda t: t**2, [-1.5, 0.0, 3.0]),
    ("cube", lambda t: t**3, [-1.5, 2.0]),
    ("inverse", lambda t: t**-1, [-0.5, 4.0]),
    ("sqrt", lambda t: t**0.5, [0.25, 9.0]),
    ("power -1.5", lambda t: t**-1.5, [0.3, 2.0]),
]


@pytest.mark.parametrize(("name", "fn", "points"), UNARY_CASES, ids=[c[0] for c in UNARY_CASES])
def test_each_unary_operation_matches_torch(name, fn, points):
    for point in points:
        x = Value(point)
        out = fn(x)
        out.backward()
        t = torch.tensor(point, dtype=torch.float64, requires_grad=True)
        reference = fn(t)
        (grad,) = torch.autograd.grad(reference, t)
        ours = torch.tensor([out.data, x.grad], dtype=torch.float64)
        torch.testing.assert_close(ours, torch.stack([reference.detach(), grad]), msg=lambda m, p=point: f"x={p}: {m}")


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize(("a", "b"), [(1.5, -0.7), (-2.0, 3.0), (0.25, 0.5)])
def test_each_binary_operation_matches_torch_with_values_and_numbers_on_either_side(op, a, b):
    fn = BINARY[op]
    ta = torch.tensor([a, b], dtype=torch.float64, requires_grad=True)
    expected = fn(ta[0], ta[1])
    expected_grad = torch.autograd.grad(expected, ta)[0]
    x, y = Value(a), Value(b)
    out = fn(x, y)
    out.backward()
    assert math.isclose(out.data, expected.item(), rel_tol=1e-12)
    torch.testing.assert_close(torch.tensor([x.grad, y.grad], dtype=torch.float64), expected_grad)
    # A plain number on the right, then on the left: the same value, the gradient for the Value only.
    left, right = Value(a), Value(b)
    with_number_right, with_number_left = fn(left, b), fn(a, right)
    with_number_right.backward()
    with_number_left.backward()
    assert math.isclose(with_number_right.data, expected.item())
    assert math.isclose(with_number_left.data, expected.item())
    torch.testing.assert_close(torch.tensor([left.grad, right.grad], dtype=torch.float64), expected_grad)


def test_a_value_used_twice_collects_both_terms():
    x = Value(3.0)
    y = x * x + x  # dy/dx = 2x + 1
    y.backward()
    assert x.grad == 7.0
    assert [n.op for n in topological_order(y)] == ["", "*", "+"]


def test_backward_accumulates_into_leaves_but_restarts_intermediates_like_torch():
    x, t = Value(2.0), torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    mid, tmid = x.tanh(), t.tanh()
    tmid.retain_grad()
    out, tout = mid * x, tmid * t
    for _ in range(3):
        out.backward()
        tout.backward(retain_graph=True)
    assert math.isclose(x.grad, t.grad.item(), rel_tol=1e-12)
    # torch's retained non-leaf gradient accumulates too; ours is recomputed from zero on each pass,
    # so it holds the one-pass value: exactly a third of torch's after three passes.
    assert math.isclose(mid.grad * 3, tmid.grad.item(), rel_tol=1e-12)


def test_backward_with_an_outer_gradient_scales_every_gradient():
    x = Value(0.4)
    y = x.exp()
    y.backward(gradient=2.5)
    assert math.isclose(x.grad, 2.5 * math.exp(0.4)) and y.grad == 2.5


def test_a_long_chain_needs_no_recursion():
    x = Value(0.0)
    y = x
    for _ in range(5_000):
        y = y + 1.0
    y.backward()
    assert y.data == 5_000.0 and x.grad == 1.0


def test_topological_order_puts_every_node_after_its_parents():
    tree, inputs = random_case(5, depth=6)
    xs = [Value(v) for v in inputs]
    root = evaluate(tree, xs)
    order = topological_order(root)
    assert order[-1] is root and len(set(order)) == len(order)
    position = {node: i for i, node in enumerate(order)}
    assert all(position[p] < position[node] for node in order for p in node.parents)
    # Every value reachable from the root is listed.
    reachable, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node not in reachable:
            reachable.add(node)
            stack.extend(node.parents)
    assert reachable == set(order)


def test_value_repr_and_constant_labels():
    y = Value(2.0) * 3
    assert repr(y) == "Value(data=6, grad=0, op='*')"
    assert y.parents[1].label == "3" and y.parents[1].parents == ()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Value("1.5"), TypeError, "data must be a real number .*got str"),
        (lambda: Value(True), TypeError, "data must be a real number .*got bool"),
        (lambda: Value(1.0, parents=[1.0]), TypeError, "parents must all be Values"),
        (lambda: Value(1.0) + "2", TypeError, "other must be a Value, int or float, got str"),
        (lambda: Value(1.0) * torch.tensor(2.0), TypeError, "other must be a Value, int or float, got Tensor"),
        (lambda: Value(2.0) ** Value(2.0), TypeError, "exponent must be an int or float constant, got Value"),
        (lambda: Value(-8.0) ** (1 / 3), ValueError, "a negative base needs an integer exponent"),
        (lambda: Value(0.0).log(), ValueError, r"log needs a positive value, got data=0.0"),
        (lambda: Value(-1.0).log(), ValueError, r"log needs a positive value, got data=-1.0"),
        (lambda: topological_order(3.0), TypeError, "root must be a Value, got float"),
    ],
)
def test_engine_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_grad_fn_tree_reads_the_graph():
    a = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(-3.0, requires_grad=True)
    lines = grad_fn_tree((a * b + a.exp()).tanh(), names={"a": a, "b": b})
    assert [line.strip() for line in lines] == [
        "TanhBackward0", "AddBackward0", "MulBackward0", "AccumulateGrad (a)", "AccumulateGrad (b)",
        "ExpBackward0", "AccumulateGrad (a)",
    ]  # fmt: skip
    assert [len(line) - len(line.lstrip()) for line in lines] == [0, 4, 8, 12, 12, 8, 12]
    # Unnamed leaves and inputs that do not require grad.
    assert grad_fn_tree(a * torch.tensor(5.0)) == ["MulBackward0", "    AccumulateGrad"]


def test_grad_fn_tree_survives_a_deep_graph():
    x = torch.ones(1, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    lines = grad_fn_tree(y)
    assert len(lines) == 3001 and lines[-1].strip() == "AccumulateGrad"


@pytest.mark.parametrize("output", [torch.ones(2), torch.ones(2, requires_grad=True), 3.0])
def test_grad_fn_tree_refuses_a_tensor_without_history(output):
    with pytest.raises(ValueError, match="output must be a tensor with a grad_fn"):
        grad_fn_tree(output)


GENERATOR = torch.Generator().manual_seed(0)
MATRIX = torch.randn(4, 3, generator=GENERATOR, dtype=torch.float64)
JACOBIAN_CASES = [
    ("sin", lambda t: t.sin(), (3,)),
    ("sin 2-d", lambda t: t.sin(), (2, 3)),
    ("matmul", lambda t: (MATRIX.to(t.dtype) @ t.unsqueeze(-1)).squeeze(-1), (3,)),
    ("softmax", lambda t: torch.softmax(t, dim=-1) * t.sum(), (2, 3)),
    ("cumsum", lambda t: t.cumsum(0), (4,)),
    ("scalar output", lambda t: (t**2).sum(), (2, 2)),
    ("0-d input", lambda t: torch.stack([t, t**2, t.exp()]), ()),
    ("some outputs ignore x", lambda t: torch.cat([t[:2] * 2, torch.ones(2, dtype=t.dtype)]), (4,)),
    ("constant function", lambda t: torch.ones(3, dtype=t.dtype), (2,)),
]


@pytest.mark.parametrize(("name", "fn", "shape"), JACOBIAN_CASES, ids=[c[0] for c in JACOBIAN_CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_jacobian_by_vjps_matches_torch(name, fn, shape, dtype):
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    got = jacobian_by_vjps(fn, x)
    expected = torch.autograd.functional.jacobian(fn, x)
    assert got.shape == expected.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected)
    assert torch.equal(x, before) and not x.requires_grad and x.grad is None


def test_jacobian_by_vjps_with_an_empty_output_and_bad_inputs():
    assert jacobian_by_vjps(lambda t: t[:0], torch.ones(3)).shape == (0, 3)
    with pytest.raises(TypeError, match="inputs must be a floating-point torch.Tensor, got torch.int64"):
        jacobian_by_vjps(lambda t: t, torch.arange(3))
    with pytest.raises(TypeError, match="got list"):
        jacobian_by_vjps(lambda t: t, [1.0])


def test_vector_jacobian_products_agree_with_the_full_jacobian():
    x = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    v = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def fn(t):
        return t.cumsum(0) * t.tanh()

    leaf = x.clone().requires_grad_()
    fn(leaf).backward(gradient=v)
    torch.testing.assert_close(leaf.grad, v @ jacobian_by_vjps(fn, x))


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()])
def test_softplus_passes_gradcheck_and_gradgradcheck(shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_()
    assert torch.autograd.gradcheck(softplus, (x,))
    assert torch.autograd.gradgradcheck(softplus, (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_equals_torch_and_stays_finite(dtype):
    extremes = torch.tensor([-1e4, -100.0, 100.0, 1e4], dtype=dtype)
    x = torch.cat([torch.linspace(-60, 60, 241, dtype=dtype), extremes])
    x.requires_grad_()
    ours = softplus(x)
    (grad,) = torch.autograd.grad(ours.sum(), x)
    torch.testing.assert_close(ours, torch.nn.functional.softplus(x))
    torch.testing.assert_close(grad, torch.sigmoid(x.detach()))
    assert ours.dtype == dtype and ours.isfinite().all() and grad.isfinite().all()
    assert (grad >= 0).all() and (grad <= 1).all()
    assert type(ours.grad_fn).__name__ == "StableSoftplusBackward"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_softplus_equals_torch_in_every_float_dtype_and_layout(dtype):
    base = torch.linspace(-30, 30, 24, dtype=torch.float64).reshape(4, 6).to(dtype)
    for name, x in {"transposed": base.t(), "every other column": base[:, ::2], "expanded": base[:1].expand(3, 6),
                    "0-d": base[0, 0], "0-size": base[:0]}.items():
        ours, theirs = softplus(x), torch.nn.functional.softplus(x)
        assert ours.dtype == dtype and ours.shape == x.shape, name
        torch.testing.assert_close(ours, theirs, msg=name)


def test_the_function_works_under_torch_func_grad_vmap_and_jacrev():
    x = torch.tensor([-200.0, -1.0, 0.0, 2.0, 200.0], dtype=torch.float64)
    torch.testing.assert_close(torch.func.grad(lambda t: softplus(t).sum())(x), torch.sigmoid(x))
    # Second derivative, through our hand-written backward: sigmoid'(x) = s (1 - s).
    second = torch.func.grad(lambda t: torch.func.grad(lambda u: softplus(u).sum())(t).sum())(x)
    torch.testing.assert_close(second, torch.sigmoid(x) * (1 - torch.sigmoid(x)))
    batch = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(torch.vmap(softplus)(batch), torch.nn.functional.softplus(batch))
    torch.testing.assert_close(torch.vmap(torch.func.grad(softplus))(x), torch.sigmoid(x))
    torch.testing.assert_close(torch.func.jacrev(softplus)(x), torch.diag(torch.sigmoid(x)))


def test_the_old_combined_forward_is_refused_by_the_func_transforms():
    class OldStyle(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return StableSoftplus.forward(input)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            return grad_output * torch.sigmoid(input)

    x = torch.tensor([0.0, 1.0], requires_grad=True)
    OldStyle.apply(x).sum().backward()  # plain autograd still takes it
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach()))
    with pytest.raises(RuntimeError, match="it must override the setup_context staticmethod"):
        torch.func.grad(lambda t: OldStyle.apply(t).sum())(x.detach())
    with pytest.raises(RuntimeError, match="it must override the setup_context staticmethod"):
        torch.vmap(OldStyle.apply)(torch.ones(2, 3))


def test_the_naive_softplus_really_fails_where_ours_does_not():
    x = torch.tensor([200.0], requires_grad=True)
    torch.log(1 + torch.exp(x)).backward()
    assert x.grad.isnan().all()
    x.grad = None
    StableSoftplus.apply(x).backward()
    assert x.grad.item() == 1.0


@pytest.mark.parametrize("bad", [torch.arange(3), [1.0, 2.0]])
def test_softplus_refuses_what_is_not_a_float_tensor(bad):
    with pytest.raises(TypeError, match="input must be a floating-point torch.Tensor"):
        softplus(bad)


@pytest.mark.skipif(not device_available("cuda"), reason="needs a CUDA device")
def test_softplus_and_jacobian_on_cuda():
    x = torch.randn(64, device="cuda", dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(softplus, (x,))
    y = torch.tensor([-300.0, 0.0, 300.0], device="cuda", requires_grad=True)
    softplus(y).sum().backward()
    assert y.grad.isfinite().all() and y.grad.device.type == "cuda"
    jac = jacobian_by_vjps(lambda t: t.cumsum(0), torch.ones(3, device="cuda"))
    assert torch.equal(jac.cpu(), torch.ones(3, 3).tril())


def test_no_grad_and_inference_mode_as_the_lesson_says():
    w = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        quiet = w * 2
        w.add_(1)  # allowed here, forbidden outside
    with torch.inference_mode():
        frozen = w * 2
    assert not quiet.requires_grad and not torch.is_inference(quiet) and torch.is_inference(frozen)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        (w * frozen).sum().backward()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place"):
        w.add_(1)
    (w * frozen.clone()).sum().backward()
    torch.testing.assert_close(w.grad, frozen)


# In-place operations under autograd: the leaf rule and the saved-tensor rule.


def test_the_leaf_rule_keeps_a_parameter_a_leaf_that_accumulates():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        w[:1].add_(1)
    with torch.no_grad():
        w.add_(1)
    assert w.is_leaf and w.grad_fn is None
    (3 * w).sum().backward()
    (3 * w).sum().backward()
    assert w.grad.tolist() == [6.0, 6.0]  # still a leaf, so gradients land in .grad and add up
    # A non-leaf may be changed in place: it records the operation and passes gradients on to w.
    h = w * 1
    h.add_(1)
    assert not h.is_leaf and h.grad_fn.name() == "AddBackward0"


def test_an_in_place_op_under_autograd_keeps_a_copy_of_what_it_overwrites():
    y = torch.tensor([3.0, 4.0], requires_grad=True)
    h = torch.tensor([1.0, 2.0], requires_grad=True) * 1
    h.mul_(y)
    saved = h.grad_fn._saved_self
    assert saved.tolist() == [1.0, 2.0] and saved.data_ptr() != h.data_ptr()


def test_autograd_refuses_in_place_changes_to_saved_tensors():
    w = torch.tensor([0.5, 2.0], requires_grad=True)
    y = w.exp()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        w.add_(1)


def test_the_plot_draws_every_node_and_edge():
    fig = plot_graph()
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    # The neuron: x, w, wx, b, z, y, the constant 1, error, loss (9 boxes) and 8 arrows.
    assert len(fig.axes[0].texts) == 17
    x = Value(1.0)
    y = x * x  # one arrow, not two
    assert len(plot_graph(root=y).axes[0].texts) == 3
    fig.savefig(io.BytesIO(), format="svg")  # the arrows are clipped at draw time: make sure it draws


def test_the_plot_refuses_what_is_not_a_value():
    with pytest.raises(TypeError, match="root must be a Value or None, got float"):
        plot_graph(root=3.0)


def test_the_lesson_sets_two_challenges():
    assert set(challenges_in(lesson)) == {"value_sin", "hessian_vector_product"}


def test_check_value_sin_passes_the_solution_and_rejects_wrong_attempts():
    assert check_value_sin(value_sin) is None

    def assigns_instead_of_adding(v):
        out = Value(math.sin(v.data), parents=(v,), op="sin")

        def local_backward():
            v.grad = math.cos(v.data) * out.grad

        out.local_backward = local_backward
        return out

    def wrong_sign(v):
        out = Value(math.sin(v.data), parents=(v,), op="sin")

        def local_backward():
            v.grad += -math.cos(v.data) * out.grad

        out.local_backward = local_backward
        return out

    def forgets_the_backward(v):
        return Value(math.sin(v.data), parents=(v,), op="sin")

    with pytest.raises(AssertionError, match=r"sin\(x\) \* x .*add into x.grad"):
        check_value_sin(assigns_instead_of_adding)
    with pytest.raises(AssertionError, match="expected d/dx"):
        check_value_sin(wrong_sign)
    with pytest.raises(AssertionError, match="expected d/dx"):
        check_value_sin(forgets_the_backward)
    with pytest.raises(AssertionError, match="must return a Value"):
        check_value_sin(lambda v: math.sin(v.data))
    with pytest.raises(TypeError, match="v must be a Value, got float"):
        value_sin(1.0)


def test_hessian_vector_product_matches_the_full_hessian():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(4, 4, dtype=torch.float64, generator=g)
    x, v = torch.randn(4, dtype=torch.float64, generator=g), torch.randn(4, dtype=torch.float64, generator=g)

    def func(t):
        return (t @ a @ t) * t.sin().sum()

    hessian = torch.autograd.functional.hessian(func, x)
    torch.testing.assert_close(hessian_vector_product(func, x, v), hessian @ v)
    assert not hessian_vector_product(func, x, v).requires_grad
    # Zero curvature: linear and constant functions.
    zeros = torch.zeros(4, dtype=torch.float64)
    assert torch.equal(hessian_vector_product(lambda t: (a[0] * t).sum(), x, v), zeros)
    assert torch.equal(hessian_vector_product(lambda t: torch.tensor(1.0), x, v), zeros)


def test_hessian_vector_product_errors():
    x = torch.ones(3)
    with pytest.raises(ValueError, match=r"v must have the shape of inputs \(3,\), got \(2,\)"):
        hessian_vector_product(lambda t: t.sum(), x, torch.ones(2))
    with pytest.raises(ValueError, match=r"func must return a single element, got shape \(3,\)"):
        hessian_vector_product(lambda t: t**2, x, x)
    with pytest.raises(TypeError, match="inputs must be a floating-point torch.Tensor, got torch.int64"):
        hessian_vector_product(lambda t: t.sum(), torch.arange(3), x)
    with pytest.raises(TypeError, match="v must be a floating-point torch.Tensor, got list"):
        hessian_vector_product(lambda t: t.sum(), x, [1.0, 1.0, 1.0])


def test_check_hessian_vector_product_passes_the_solution_and_rejects_wrong_attempts():
    assert check_hessian_vector_product(hessian_vector_product) is None

    def returns_the_gradient(func, inputs, v):
        x = inputs.detach().requires_grad_()
        return torch.autograd.grad(func(x), x)[0]

    def forgets_create_graph(func, inputs, v):
        x = inputs.detach().requires_grad_()
        (g,) = torch.autograd.grad(func(x), x)
        return torch.autograd.grad((g * v).sum(), x)[0]

    def ignores_linear_functions(func, inputs, v):
        x = inputs.detach().requires_grad_()
        (g,) = torch.autograd.grad(func(x), x, create_graph=True)
        return torch.autograd.grad((g * v).sum(), x)[0]

    def normalises_v_in_place(func, inputs, v):
        v /= torch.linalg.vector_norm(v)
        return hessian_vector_product(func, inputs, v) * torch.linalg.vector_norm(v)

    with pytest.raises(AssertionError, match="wrong H v"):
        check_hessian_vector_product(returns_the_gradient)
    with pytest.raises(RuntimeError, match="does not require grad"):
        check_hessian_vector_product(forgets_create_graph)
    with pytest.raises(RuntimeError):
        check_hessian_vector_product(ignores_linear_functions)
    with pytest.raises(AssertionError, match="must not be modified"):
        check_hessian_vector_product(normalises_v_in_place)


@pytest.mark.parametrize("exponent", [0, 0.5, 1, 2])
def test_powers_at_zero_have_pytorchs_slope(exponent):
    v = Value(0.0)
    (v**exponent).backward()
    x = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (x**exponent).backward()
    assert v.grad == x.grad.item()


def test_zero_has_no_negative_power():
    with pytest.raises(ValueError, match="zero has no negative power"):
        Value(0.0) ** -1
