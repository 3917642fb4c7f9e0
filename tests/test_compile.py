"""The proof of the torch.compile lesson: captured graphs, breaks, guards and recompilations counted, and
Inductor's GPT block and training step equal to eager within stated tolerances, gradients included.

Compilation is slow (seconds per graph with Inductor), so the Inductor-compiled objects are built once per
module in fixtures and shared; the Dynamo-only tests use the fast ``"eager"`` and ``"aot_eager"`` backends.
"""

from __future__ import annotations

import contextlib
import copy
import io

import pytest
import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from torchenstein.advanced.compile import (
    MODES,
    CompileCounter,
    break_report,
    check_compile_counter,
    check_normalise_without_breaks,
    compile_speedup,
    hammer_forward,
    hammer_normalise,
    has_cpp_compiler,
    inspect_backend,
    normalise_without_breaks,
    recompile_limit_name,
    strip_compile_prefix,
)
from torchenstein.transformers.gpt import GPT, GPTConfig

TINY = GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)
B, T, C = 2, TINY.block_size, TINY.n_embd
# Inductor fuses and reorders float32 reductions, so outputs agree to a few units in the last place.
FORWARD_TOL = {"rtol": 1e-5, "atol": 1e-5}
# Gradients go through more reordered sums (the backward of LayerNorm and attention): a little wider.
GRAD_TOL = {"rtol": 1e-4, "atol": 1e-5}

needs_compiler = pytest.mark.skipif(
    not has_cpp_compiler(), reason="Inductor needs a C++ compiler (g++, c++ or clang++) on the CPU, none found"
)
TORCH_VERSION = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])


def _counters():
    """Dynamo's counters. TorchDynamo is imported by the first test that uses it (``torch._dynamo`` is
    loaded on first use), not by every test process as it collects this file: that takes a second."""
    from torch._dynamo.utils import counters

    return counters


@pytest.fixture(autouse=True)
def _fresh_dynamo(request):
    """Every test starts from empty Dynamo caches and counters, so counts do not leak between tests.

    The Inductor tests share one compiled GPT (`gpt_pair`) and count nothing: a reset would throw its
    compiled code away, and each of them would compile it again.
    """
    if "gpt_pair" in request.fixturenames:
        yield
        return
    torch._dynamo.reset()
    _counters().clear()
    yield
    torch._dynamo.reset()


def _graphs() -> int:
    return _counters()["stats"]["unique_graphs"]


# -- What Dynamo captures ---------------------------------------------------------------------------------


def test_inspect_backend_prints_every_node_and_computes_the_same():
    def monster(x, y):
        return torch.sin(x) * y + 1

    x, y = torch.randn(3), torch.randn(3)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        got = torch.compile(monster, backend=inspect_backend)(x, y)
    lines = [line.split() for line in out.getvalue().splitlines()]
    assert [line[0] for line in lines] == ["placeholder"] * 2 + ["call_function"] * 3 + ["output"]
    assert [line[1] for line in lines[2:5]] == ["sin", "mul", "add"]
    torch.testing.assert_close(got, monster(x, y), rtol=0, atol=0)
    # It runs the graph as captured, as PyTorch's own "eager" backend does.
    torch._dynamo.reset()
    assert torch.equal(got, torch.compile(monster, backend="eager")(x, y))


def test_inspect_backend_is_called_once_per_graph():
    compiled = torch.compile(lambda x: x.relu() * 2, backend=inspect_backend)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for _ in range(3):
            compiled(torch.randn(4))
    assert out.getvalue().count("placeholder") == 1


# -- Graph breaks -----------------------------------------------------------------------------------------


def _only_print(x):
    y = x * 2
    print("hello")
    return y + 1


def _only_item(x):
    y = x * 2
    return y + y.sum().item()


def _only_branch(x):
    y = x * 2
    if y.sum() > 0:
        return y + 1
    return y - 1


@pytest.mark.parametrize(
    ("fn", "reason"),
    [(_only_print, "print"), (_only_item, ".item()"), (_only_branch, "data-dependent branch")],
)
def test_each_cause_is_one_break_named_in_a_word(fn, reason):
    with contextlib.redirect_stdout(io.StringIO()):
        report = break_report(fn, torch.randn(4))
    assert report["breaks"] == 1
    assert report["reasons"] == [reason]


def test_hammer_forward_has_three_breaks_and_the_calm_one_none():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        report = break_report(hammer_forward, torch.randn(4))
    assert out.getvalue() == "checking the monster\n"  # explain ran the function once
    assert report["breaks"] == 3
    assert report["reasons"] == ["print", ".item()", "data-dependent branch"]
    assert report["graphs"] >= 2

    def calm(x):
        y = torch.relu(x)
        return y * y.max() / 2

    assert break_report(calm, torch.randn(4)) == {"graphs": 1, "breaks": 0, "reasons": []}


def test_break_report_finds_graphs_of_a_function_compiled_before():
    def f(x):
        return x.cos() + 1

    torch.compile(f, backend="eager")(torch.randn(2))
    # A cached compilation must not hide the graph from the report.
    assert break_report(f, torch.randn(2))["graphs"] == 1


def test_break_report_refuses_a_non_callable():
    with pytest.raises(TypeError, match="fn must be callable, got 3"):
        break_report(3)


def test_fullgraph_turns_a_break_into_an_error():
    compiled = torch.compile(_only_print, fullgraph=True, backend="eager")
    with pytest.raises(torch._dynamo.exc.Unsupported, match="print"):
        compiled(torch.randn(2))


# -- Guards and recompilations ----------------------------------------------------------------------------


def _double(x):
    return x * 2


def test_a_second_shape_recompiles_once_then_the_shape_is_dynamic():
    compiled = torch.compile(_double, backend="eager")
    seen = []
    for n in (2, 3, 4, 5, 17, 1):
        torch.testing.assert_close(compiled(torch.ones(n)), torch.full((n,), 2.0))
        seen.append(_graphs())
    # Length 1 stays special even for a dynamic dimension (a size-1 dimension broadcasts): its own graph.
    assert seen == [1, 2, 2, 2, 2, 3]


def test_dynamic_true_and_mark_dynamic_compile_once():
    compiled = torch.compile(_double, backend="eager", dynamic=True)
    for n in (2, 3, 4, 9):
        compiled(torch.randn(n))
    assert _graphs() == 1
    torch._dynamo.reset()
    _counters().clear()
    compiled = torch.compile(_double, backend="eager")
    first = torch.randn(2, 3)
    torch._dynamo.mark_dynamic(first, 0)
    for x in (first, torch.randn(5, 3), torch.randn(7, 3)):
        compiled(x)
    assert _graphs() == 1
    # Only dimension 0 was marked: a new size of dimension 1 is a new guard failure.
    compiled(torch.randn(7, 4))
    assert _graphs() == 2


def test_the_training_flag_and_a_read_attribute_are_guarded():
    torch.manual_seed(0)
    net = torch.compile(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), backend="eager")
    x = torch.randn(2, 4)
    seen = []
    for mode in ("train", "eval", "train", "eval"):
        getattr(net, mode)()
        net(x)
        seen.append(_graphs())
    assert seen == [1, 2, 2, 2]
    # In eval mode the compiled network is the eager one, dropout off.
    torch.testing.assert_close(net(x), net._orig_mod(x), rtol=0, atol=0)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 2.0

        def forward(self, x):
            return x * self.scale

    torch._dynamo.reset()
    _counters().clear()
    scaled = Scaled()
    compiled = torch.compile(scaled, backend="eager")
    assert torch.equal(compiled(x), x * 2.0)
    scaled.scale = 3.0
    assert torch.equal(compiled(x), x * 3.0)  # the guard caught the change: no stale constant
    assert _graphs() == 2


def _sgd_update(w, grad, lr):
    return w - lr * grad


def _graphs_for(learning_rates, **options):
    torch._dynamo.reset()
    _counters().clear()
    step = torch.compile(_sgd_update, backend="eager", **options)
    w, grad = torch.randn(3), torch.randn(3)
    for lr in learning_rates:
        torch.testing.assert_close(step(w, grad, lr), w - lr * grad)
    return _graphs()


def test_a_python_float_per_step_recompiles_and_a_tensor_does_not():
    floats = [0.1, 0.09, 0.08, 0.07, 0.06]
    assert _graphs_for(floats, dynamic=False) == len(floats)
    default = _graphs_for(floats)
    # Since torch 2.6 (specialize_float=False) the second float becomes a symbol; before, every value recompiles.
    if getattr(torch._dynamo.config, "specialize_float", True):
        assert default == len(floats)
    else:
        assert default == 2
    assert _graphs_for([torch.tensor(lr) for lr in floats]) == 1
    assert _graphs_for([torch.tensor(lr) for lr in floats], dynamic=False) == 1


def test_the_recompile_limit_falls_back_to_eager_and_stays_correct():
    name = recompile_limit_name()
    if TORCH_VERSION >= (2, 7):
        assert name == "recompile_limit"
    assert isinstance(getattr(torch._dynamo.config, name), int)
    scale = torch.compile(lambda x, s: x * s, backend="eager", dynamic=False)
    x = torch.randn(3)
    with torch._dynamo.config.patch(**{name: 2}):
        outs = [scale(x, s) for s in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert _graphs() == 2
    for s, out in zip((1.0, 2.0, 3.0, 4.0, 5.0), outs, strict=True):
        assert torch.equal(out, x * s)


def test_reset_forgets_every_compilation():
    counter = CompileCounter()
    compiled = torch.compile(_double, backend=counter)
    compiled(torch.randn(2))
    compiled(torch.randn(2))
    assert counter.frame_count == 1
    torch._dynamo.reset()
    compiled(torch.randn(2))
    assert counter.frame_count == 2


@pytest.mark.skipif(not hasattr(torch.compiler, "set_stance"), reason="torch.compiler.set_stance is new in torch 2.6")
def test_fail_on_recompile_stance_catches_a_recompilation():
    compiled = torch.compile(_double, backend="eager")
    compiled(torch.randn(2))
    with torch.compiler.set_stance("fail_on_recompile"):
        compiled(torch.randn(2))  # a cache hit is fine
        with pytest.raises(RuntimeError, match="recompile"):
            compiled(torch.randn(3))


# -- Inductor: a GPT's outputs, gradients and training steps --------------------------------------------
#
# One tiny GPT is compiled once, for every Inductor test below: compiling is the slow part, seconds per
# graph. Dynamo is not reset between these tests, so each one reuses the same compiled forward and backward.


@pytest.fixture(scope="module")
def gpt_pair():
    """An eager tiny GPT and an Inductor-compiled copy with the same weights, compiled once for the module."""
    if not has_cpp_compiler():
        pytest.skip("Inductor needs a C++ compiler on the CPU, none found")
    torch.manual_seed(0)
    model = GPT(TINY)
    return model, torch.compile(copy.deepcopy(model))


def _outputs_and_grads(model, idx, targets):
    model.zero_grad(set_to_none=True)
    logits, loss = model(idx, targets)
    # A non-uniform upstream gradient on the logits as well as the loss's, so every element's gradient is tested.
    ((logits * torch.linspace(-1, 1, logits.numel()).view_as(logits)).sum() + loss).backward()
    # A compiled module's parameter names carry the wrapper's "_orig_mod." prefix.
    grads = {name.removeprefix("_orig_mod."): p.grad for name, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads


@needs_compiler
def test_inductor_gpt_equals_eager_outputs_loss_and_gradients(gpt_pair):
    eager, compiled = gpt_pair
    for seed in (0, 1):
        idx, targets = torch.randint(0, TINY.vocab_size, (2, B, T), generator=torch.Generator().manual_seed(seed))
        logits, loss, grads = _outputs_and_grads(eager, idx, targets)
        logits_c, loss_c, grads_c = _outputs_and_grads(compiled, idx, targets)
        torch.testing.assert_close(logits_c, logits, **FORWARD_TOL)
        torch.testing.assert_close(loss_c, loss, **FORWARD_TOL)
        # Every parameter of the block, the embeddings and the final norm has a gradient, and each agrees.
        assert set(grads_c) == set(grads) and all(g is not None for g in grads.values())
        assert sum(name.startswith("transformer.h.0.") for name in grads) == 12
        for name in grads:
            torch.testing.assert_close(grads_c[name], grads[name], **GRAD_TOL, msg=f"gradient of {name}")


def _block_outputs_and_grads(block, x):
    x = x.detach().clone().requires_grad_(True)
    block.zero_grad(set_to_none=True)
    y = block(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return y.detach(), x.grad, {name.removeprefix("_orig_mod."): p.grad for name, p in block.named_parameters()}


def test_aot_eager_block_is_bitwise_equal_outputs_and_gradients():
    torch.manual_seed(0)
    block = GPT(TINY).transformer.h[0]
    compiled = torch.compile(copy.deepcopy(block), backend="aot_eager")
    x = torch.randn(B, T, C)
    y, gx, gp = _block_outputs_and_grads(block, x)
    y_c, gx_c, gp_c = _block_outputs_and_grads(compiled, x)
    assert torch.equal(y_c, y)
    assert torch.equal(gx_c, gx)
    assert set(gp_c) == set(gp) and len(gp) == 12
    for name in gp:
        assert torch.equal(gp_c[name], gp[name]), name


def _train(model, optimizer_name, batches):
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.zero_grad(set_to_none=True)  # no gradient left over from an earlier test
    losses, key_bias_grads = [], []
    for idx, targets in batches:
        _, loss = model(idx, targets)
        loss.backward()
        key_bias_grads.append(model.transformer.h[0].attn.c_attn.bias.grad[C : 2 * C].abs().max())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    return torch.stack(losses), strip_compile_prefix(model.state_dict()), torch.stack(key_bias_grads)


@needs_compiler
@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_inductor_training_steps_equal_eager(gpt_pair, optimizer_name):
    eager, compiled = gpt_pair
    start = copy.deepcopy(eager.state_dict())
    # Both start from the same weights; load_state_dict copies in place, so the compiled graph is reused.
    eager.load_state_dict(start)
    compiled.load_state_dict({"_orig_mod." + k: v for k, v in start.items()})
    g = torch.Generator().manual_seed(3)
    batches = [torch.randint(0, TINY.vocab_size, (2, B, T), generator=g) for _ in range(3)]
    loss_e, final_e, key_grad_e = _train(eager, optimizer_name, batches)
    loss_c, final_c, key_grad_c = _train(compiled, optimizer_name, batches)
    torch.testing.assert_close(loss_c, loss_e, **GRAD_TOL)
    assert list(final_c) == list(final_e)
    key_bias = "transformer.h.0.attn.c_attn.bias"
    for key, value in final_e.items():
        if optimizer_name == "adamw" and key == key_bias:
            # The key bias's true gradient is zero (it adds the same q.b to every score of a query, which
            # softmax ignores); both sides hold rounding noise there, and Adam divides a gradient by its own
            # running size, so it turns noise into steps of up to lr. The rest of the bias still agrees.
            assert key_grad_e.max() < 1e-8 and key_grad_c.max() < 1e-8
            keep = torch.ones_like(value, dtype=torch.bool)
            keep[C : 2 * C] = False
            torch.testing.assert_close(final_c[key][keep], value[keep], **GRAD_TOL)
            torch.testing.assert_close(final_c[key][~keep], value[~keep], rtol=0, atol=3 * 1e-2)
        else:
            torch.testing.assert_close(final_c[key], value, **GRAD_TOL, msg=f"{key} after 3 {optimizer_name} steps")


@needs_compiler
def test_compile_speedup_reports_both_sides_and_the_first_call():
    for what in ("block", "train_step"):
        report = compile_speedup(what, config=TINY, batch_size=B, repeat=1, warmup=1)
        assert set(report) == {"eager", "compiled", "speedup", "first call"}
        assert all(isinstance(v, float) and v > 0 for v in report.values())
        assert report["speedup"] == pytest.approx(report["eager"] / report["compiled"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"what": "everything"}, "what must be 'block' or 'train_step', got 'everything'"),
        ({"mode": "fastest"}, "mode must be one of"),
        ({"batch_size": 0}, "batch_size must be an int of at least 1, got 0"),
        ({"repeat": 0}, "repeat must be an int of at least 1, got 0"),
        ({"warmup": -1}, "warmup must be an int of at least 0, got -1"),
    ],
)
def test_compile_speedup_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compile_speedup(**kwargs)
    assert "max-autotune-no-cudagraphs" in MODES  # the CPU's autotuning mode is a valid choice


# -- What compilation does not change ---------------------------------------------------------------------


def test_the_compiled_module_wraps_the_same_parameters():
    torch.manual_seed(0)
    model = GPT(TINY)
    compiled = torch.compile(model, backend="eager")
    assert compiled._orig_mod is model
    assert all(p is q for p, q in zip(compiled.parameters(), model.parameters(), strict=True))
    # Training through the wrapper trains the model itself.
    idx = torch.randint(0, TINY.vocab_size, (B, T))
    before = model.lm_head.weight.detach().clone()
    optimizer = torch.optim.SGD(compiled.parameters(), lr=0.1)
    compiled(idx, idx)[1].backward()
    optimizer.step()
    assert not torch.equal(model.lm_head.weight, before)


def test_strip_compile_prefix_equals_consume_prefix_and_loads():
    torch.manual_seed(0)
    model = GPT(TINY)
    state = torch.compile(model, backend="eager").state_dict()
    assert all(key.startswith("_orig_mod.") for key in state)
    ours = strip_compile_prefix(state)
    theirs = copy.copy(state)
    consume_prefix_in_state_dict_if_present(theirs, "_orig_mod.")
    assert list(ours) == list(theirs) == list(model.state_dict())
    assert all(ours[k] is theirs[k] for k in ours)
    fresh = GPT(TINY)
    with pytest.raises(RuntimeError, match="Missing key"):
        fresh.load_state_dict(state)
    fresh.load_state_dict(ours)
    idx = torch.randint(0, TINY.vocab_size, (B, T))
    assert torch.equal(fresh(idx)[0], model(idx)[0])
    # A dict that never saw torch.compile comes back equal.
    plain = model.state_dict()
    assert list(strip_compile_prefix(plain)) == list(plain)


def test_strip_compile_prefix_finds_a_compiled_submodule():
    torch.manual_seed(0)
    model = GPT(TINY)
    model.transformer.h[0] = torch.compile(model.transformer.h[0], backend="eager")
    state = model.state_dict()
    assert "transformer.h.0._orig_mod.ln_1.weight" in state
    # PyTorch's helper strips a leading prefix only: this one it leaves, and ours finds.
    theirs = copy.copy(state)
    consume_prefix_in_state_dict_if_present(theirs, "_orig_mod.")
    assert "transformer.h.0._orig_mod.ln_1.weight" in theirs
    GPT(TINY).load_state_dict(strip_compile_prefix(state))


def test_strip_compile_prefix_errors():
    with pytest.raises(TypeError, match="state_dict must be a mapping of keys to tensors, got list"):
        strip_compile_prefix([1])
    with pytest.raises(TypeError, match="state_dict keys must be strings, got 1"):
        strip_compile_prefix({1: 0})
    with pytest.raises(ValueError, match="both become 'a.weight'"):
        strip_compile_prefix({"a.weight": 0, "_orig_mod.a.weight": 1})


# -- Challenges -------------------------------------------------------------------------------------------


def test_compile_counter_solution_passes_and_equals_pytorch():
    check_compile_counter(CompileCounter)
    from torch._dynamo.testing import CompileCounter as Reference

    counts = []
    for counter in (Reference(), CompileCounter()):
        torch._dynamo.reset()
        f = torch.compile(hammer_forward, backend=counter)
        with contextlib.redirect_stdout(io.StringIO()):
            f(torch.randn(4))
        counts.append((counter.frame_count, counter.op_count))
    assert counts[0] == counts[1]
    counter = CompileCounter()
    counter.frame_count = 3
    counter.clear()
    assert (counter.frame_count, counter.op_count) == (0, 0)


class _CountsEveryNode(CompileCounter):
    def __call__(self, gm, example_inputs):
        self.frame_count += 1
        self.op_count += len(gm.graph.nodes)
        return gm.forward


class _CountsCalls(CompileCounter):
    """Counts every call, not every compilation: a counter kept in the compiled function's Python."""

    def __call__(self, gm, example_inputs):
        self.op_count += sum(n.op == "call_function" or n.op == "call_method" for n in gm.graph.nodes)

        def run(*args):
            self.frame_count += 1
            return gm.forward(*args)

        return run


def test_compile_counter_checker_rejects_wrong_counters():
    with pytest.raises(AssertionError, match="op_count is"):
        check_compile_counter(_CountsEveryNode)
    with pytest.raises(AssertionError, match="frame_count is"):
        check_compile_counter(_CountsCalls)


def test_normalise_solution_passes_and_matches_hammer_bit_for_bit():
    check_normalise_without_breaks(normalise_without_breaks)
    for x in (torch.tensor([0.5, -0.25]), torch.tensor([3.0, 1.5, -6.0]), torch.tensor([[1.0]])):
        with contextlib.redirect_stdout(io.StringIO()):
            expected = hammer_normalise(x)
        assert torch.equal(normalise_without_breaks(x), expected)


def _always_divides(x):
    return x / x.abs().max()


def _still_uses_item(x):
    return x / max(x.abs().max().item(), 1.0)


def _still_prints(x):
    print("normalising")
    return x / x.abs().max().clamp(min=1.0)


@pytest.mark.parametrize(
    ("candidate", "message"),
    [(_always_divides, "values differ"), (_still_uses_item, "graph break"), (_still_prints, "graph break")],
)
def test_normalise_checker_rejects_wrong_attempts(candidate, message):
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(AssertionError, match=message):
        check_normalise_without_breaks(candidate)
