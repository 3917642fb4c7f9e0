"""The hooks lesson, proved: recorders against autograd, hook clipping against clip_grad_value_, saved bytes by hand."""

import copy
import gc
import warnings
from collections import namedtuple

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.nn.modules.module import register_module_forward_hook

from torchenstein.advanced.hooks import (
    ActivationRecorder,
    CompressSavedTensors,
    GradientRecorder,
    SavedTensorLedger,
    check_count_forward_calls,
    check_gradient_reversal,
    count_forward_calls,
    gradient_reversal,
    linear_relu_saved_bytes,
    plot_activation_statistics,
    register_grad_value_clipping,
    saved_bytes,
    temporary_hooks,
)
from torchenstein.nn.linear import Linear
from torchenstein.training.loop import spiral_classifier
from torchenstein.transformers.multihead import MultiheadAttention


def _mlp(sizes, *, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out, dtype=dtype), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


_GLOBAL_HOOK_DICTS = (
    "_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks", "_global_backward_hooks",
)


@pytest.fixture(autouse=True)
def no_global_hook_left_behind():
    """A global module hook outlives its test, and would fire in every later test of the session: fail
    the test that leaves one, and take it out so that no other test pays for it."""
    import torch.nn.modules.module as module_module

    dicts = [getattr(module_module, name) for name in _GLOBAL_HOOK_DICTS if hasattr(module_module, name)]
    before = [dict(d) for d in dicts]
    yield
    leaked = [key for d, old in zip(dicts, before, strict=True) for key in d if key not in old]
    for d, old in zip(dicts, before, strict=True):
        for key in [key for key in d if key not in old]:
            del d[key]
    assert not leaked, f"global module hooks left behind: {leaked}"


# Tensor and module hooks: the facts the lesson states


def test_tensor_hooks_on_leaves_and_non_leaves():
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    calls = []
    with w.register_hook(lambda g: calls.append(g.clone())):
        (w * 3 + w.sin()).sum().backward()
    # One call for a leaf used twice, with the paths summed, and .grad holds what the hook saw.
    assert len(calls) == 1
    torch.testing.assert_close(calls[0], 3 + w.detach().cos())
    torch.testing.assert_close(w.grad, calls[0])
    # A returned tensor replaces what a leaf stores...
    w.grad = None
    with w.register_hook(lambda g: -g):
        (w * 3).sum().backward()
    assert torch.equal(w.grad, torch.full((3,), -3.0))
    # ... and what a non-leaf passes on, while the non-leaf's own retained gradient is the edited one too.
    w.grad = None
    h = w * 2
    h.register_hook(lambda g: g * 10)
    h.sum().backward()
    assert torch.equal(w.grad, torch.full((3,), 20.0))
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        torch.ones(2).register_hook(print)


def test_sgd_in_backward_by_post_accumulate_hooks_equals_torch_optim_sgd():
    torch.manual_seed(1)
    fused, plain = spiral_classifier(8), spiral_classifier(8)
    plain.load_state_dict(fused.state_dict())

    def step(p):
        with torch.no_grad():
            p -= 0.05 * p.grad
        p.grad = None

    handles = [p.register_post_accumulate_grad_hook(step) for p in fused.parameters()]
    sgd = torch.optim.SGD(plain.parameters(), lr=0.05)
    for _ in range(3):
        x, y = torch.randn(16, 2), torch.randint(0, 3, (16,))
        nn.functional.cross_entropy(fused(x), y).backward()
        sgd.zero_grad()
        nn.functional.cross_entropy(plain(x), y).backward()
        sgd.step()
        assert all(p.grad is None for p in fused.parameters())
        for a, b in zip(fused.parameters(), plain.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    for handle in handles:
        handle.remove()


def test_module_hooks_order_contents_and_replacements():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    log = []
    x = torch.randn(4, 3, requires_grad=True)
    with temporary_hooks() as handles:
        handles += [
            layer.register_forward_pre_hook(lambda m, a: log.append("pre")),
            layer.register_forward_hook(lambda m, a, o: log.append("fwd")),
            layer.register_full_backward_pre_hook(lambda m, go: log.append("bwd pre")),
            layer.register_full_backward_hook(lambda m, gi, go: log.append(("bwd", gi, go))),
        ]
        layer(x).sum().backward()
    assert log[:3] == ["pre", "fwd", "bwd pre"]
    _, grad_input, grad_output = log[3]
    assert len(grad_input) == 1 and len(grad_output) == 1
    torch.testing.assert_close(grad_input[0], grad_output[0] @ layer.weight)
    torch.testing.assert_close(grad_input[0], x.grad)
    # A backward pre-hook that scales grad_output scales every gradient of the module by the same factor.
    reference = [g.clone() for g in (x.grad, layer.weight.grad)]
    x.grad, layer.weight.grad = None, None
    with layer.register_full_backward_pre_hook(lambda m, go: (go[0] * 3,)):
        layer(x).sum().backward()
    torch.testing.assert_close(x.grad, 3 * reference[0])
    torch.testing.assert_close(layer.weight.grad, 3 * reference[1])
    # A pre-hook's single return value is wrapped into args; a forward hook's replaces the output.
    with layer.register_forward_pre_hook(lambda m, a: a[0] + 1), layer.register_forward_hook(lambda m, a, o: o * 2):
        torch.testing.assert_close(layer(x), 2 * nn.functional.linear(x + 1, layer.weight, layer.bias))
    assert _hook_count(layer) == 0


def test_with_kwargs_captures_attention_maps_as_need_weights_would():
    torch.manual_seed(0)
    attention = MultiheadAttention(8, 2, batch_first=True)
    tokens = torch.randn(2, 5, 8)
    maps = []
    pre = attention.register_forward_pre_hook(lambda m, a, kw: (a, {**kw, "need_weights": True}), with_kwargs=True)
    post = attention.register_forward_hook(lambda m, a, kw, out: (maps.append(out[1]), (out[0], None))[1],
                                           with_kwargs=True)
    out, weights = attention(tokens, tokens, tokens, need_weights=False)
    pre.remove()
    post.remove()
    expected_out, expected_weights = attention(tokens, tokens, tokens, need_weights=True)
    assert weights is None
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(maps[0], expected_weights)


def test_always_call_runs_on_error_with_no_output_and_plain_hooks_do_not():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    seen = []
    module = Boom()
    module.register_forward_hook(lambda m, a, o: seen.append(("always", o)), always_call=True)
    module.register_forward_hook(lambda m, a, o: seen.append(("plain", o)))
    with pytest.raises(ValueError, match="boom"):
        module(torch.ones(1))
    assert seen == [("always", None)]


def test_global_hooks_hear_every_module_and_go_when_removed():
    calls = []
    with register_module_forward_hook(lambda m, a, o: calls.append(type(m).__name__)):
        nn.Sequential(nn.Linear(2, 2), nn.ReLU())(torch.ones(1, 2))
        nn.GELU()(torch.ones(1))
    assert calls == ["Linear", "ReLU", "Sequential", "GELU"]
    nn.Linear(2, 2)(torch.ones(1, 2))
    assert len(calls) == 4
    # A global hook runs before the module's own.
    order, layer = [], nn.Linear(2, 2)
    with layer.register_forward_hook(lambda m, a, o: order.append("own")), register_module_forward_hook(
        lambda m, a, o: order.append("global")
    ):
        layer(torch.ones(1, 2))
    assert order == ["global", "own"]


def test_temporary_hooks_remove_everything_on_error_tensor_hooks_too():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError), temporary_hooks() as handles:
        handles += [m.register_forward_hook(lambda *a: None) for m in net]
        handles.append(w.register_hook(lambda g: g * 100))
        net(torch.ones(1, 3))
    assert _hook_count(net) == 0
    (w * 2).sum().backward()
    assert torch.equal(w.grad, torch.full((2,), 2.0))


# ActivationRecorder


@pytest.mark.parametrize(("seed", "batch"), [(0, 5), (1, 1), (2, 64), (3, 0)])
def test_activation_recorder_equals_running_the_layers_by_hand(seed, batch):
    torch.manual_seed(seed)
    model = spiral_classifier(16, dropout=0.0)
    x = torch.randn(batch, 2)
    with ActivationRecorder(model) as recorder:
        logits = model(x)
    assert list(recorder.activations) == [name for name, _ in model.named_children()]
    h = x
    for name, layer in model.named_children():
        h = layer(h)
        assert len(recorder.activations[name]) == 1
        torch.testing.assert_close(recorder[name], h, rtol=0, atol=0)
        assert not recorder[name].requires_grad
    # detach() is an alias, not a copy: the recording shares the output's memory.
    assert recorder["4"].data_ptr() == logits.data_ptr() or batch == 0
    assert _hook_count(model) == 0


def test_activation_recorder_on_attention_named_modules_calls_and_cpu():
    torch.manual_seed(0)
    attention = MultiheadAttention(8, 2, batch_first=True)
    tokens = torch.randn(2, 4, 8)
    with ActivationRecorder(attention, ["", "out_proj"], to_cpu=True) as recorder:
        out, weights = attention(tokens, tokens, tokens)
        attention(tokens, tokens, tokens, need_weights=False)
    assert list(recorder.activations) == ["", "out_proj"]
    first, second = recorder.activations[""]
    assert isinstance(first, tuple) and second[1] is None
    torch.testing.assert_close(first[0], out)
    torch.testing.assert_close(first[1], weights)
    assert len(recorder.activations["out_proj"]) == 2
    assert all(t.device.type == "cpu" for t in recorder.activations["out_proj"])
    torch.testing.assert_close(recorder.activations["out_proj"][0], out)


def test_activation_recorder_keeps_nested_structures_and_non_tensors():
    Pair = namedtuple("Pair", "a b")

    class Nested(nn.Module):
        def forward(self, x):
            return {"pair": Pair(x * 2, [x + 1, "label"]), "n": 3}

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Nested()

        def forward(self, x):
            return self.inner(x)

    x, model = torch.ones(2, requires_grad=True), Wrapper()
    with ActivationRecorder(model) as recorder:
        model(x)
    got = recorder["inner"]
    assert isinstance(got["pair"], Pair) and got["n"] == 3 and got["pair"].b[1] == "label"
    assert torch.equal(got["pair"].a, x.detach() * 2) and not got["pair"].a.requires_grad
    assert not got["pair"].b[0].requires_grad


def test_recorders_take_their_hooks_back_even_on_error():
    model = spiral_classifier(4)
    for recorder_class in (ActivationRecorder, GradientRecorder):
        with pytest.raises(ValueError, match="in_features"), recorder_class(model):
            model(torch.ones(1, 5))
        assert _hook_count(model) == 0


def test_recorder_errors():
    model = spiral_classifier(4)
    for recorder_class in (ActivationRecorder, GradientRecorder):
        with pytest.raises(TypeError, match="model must be an nn.Module, got list"):
            recorder_class([model])
        with pytest.raises(ValueError, match=r"names must name submodules of model, got \['9'\]"):
            recorder_class(model, ["9"])
        with pytest.raises(TypeError, match="names must be an iterable of module names, got the string '0'"):
            recorder_class(model, "0")
        with pytest.raises(TypeError, match="to_cpu must be a bool, got 1"):
            recorder_class(model, to_cpu=1)
        with pytest.raises(KeyError, match="module '0' did not run while recording"), recorder_class(model) as rec:
            rec["0"]


# GradientRecorder


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_recorder_equals_autograd_grad_and_full_backward_hooks(seed, dtype):
    torch.manual_seed(seed)
    model = spiral_classifier(16).to(dtype)
    x, y = torch.randn(12, 2, dtype=dtype), torch.randint(0, 3, (12,))
    outputs, hook_grads = {}, {}
    with temporary_hooks() as handles, GradientRecorder(model) as recorder:
        for name, layer in model.named_children():
            handles.append(layer.register_forward_hook(lambda m, a, o, n=name: outputs.__setitem__(n, o)))
            handles.append(layer.register_full_backward_hook(
                lambda m, gi, go, n=name: hook_grads.__setitem__(n, go[0])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the first layer's input needs no gradient: see the trap
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward(retain_graph=True)
            expected = torch.autograd.grad(loss, list(outputs.values()))
    for name, grad in zip(outputs, expected, strict=True):
        assert recorder[name].dtype == dtype
        torch.testing.assert_close(recorder[name], grad, rtol=0, atol=0)
        torch.testing.assert_close(hook_grads[name], grad)


def test_gradient_recorder_per_call_unused_outputs_and_no_grad():
    torch.manual_seed(0)
    block = nn.Linear(3, 3)
    x = torch.randn(2, 3)
    with GradientRecorder(nn.Sequential(block)) as recorder:
        first = block(x)
        second = block(first)
        unused = block(x)
        with torch.no_grad():
            block(x)
        loss = second.pow(2).sum()
        g_first, g_second = torch.autograd.grad(loss, [first, second], retain_graph=True)
        loss.backward()
    calls = recorder.grads["0"]
    assert len(calls) == 4 and calls[2] is None and calls[3] is None
    torch.testing.assert_close(calls[0], g_first)
    torch.testing.assert_close(calls[1], g_second)
    del unused


def test_gradient_recorder_tolerates_in_place_relu_where_full_backward_hooks_refuse():
    torch.manual_seed(0)
    inplace = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 1))
    plain = copy.deepcopy(inplace)
    plain[1] = nn.ReLU()
    x = torch.randn(3, 4)
    with GradientRecorder(inplace) as got, GradientRecorder(plain) as want:
        inplace(x).pow(2).sum().backward()
        plain(x).pow(2).sum().backward()
    for name in want.grads:
        torch.testing.assert_close(got[name], want[name])
    with inplace[0].register_full_backward_hook(lambda *a: None):
        with pytest.raises(RuntimeError, match="BackwardHookFunction"):
            inplace(x)
        # Under no_grad nothing is wrapped: the in-place ReLU runs, and forward hooks still fire.
        fired = []
        with torch.no_grad(), inplace[0].register_forward_hook(lambda m, a, o: fired.append(o.shape)):
            torch.testing.assert_close(inplace(x), plain(x))
        assert fired == [(3, 8)]


def test_gradient_recorder_on_attention_and_after_exit():
    torch.manual_seed(0)
    attention = MultiheadAttention(8, 2, batch_first=True)
    tokens = torch.randn(2, 4, 8, requires_grad=True)
    with GradientRecorder(attention, [""], to_cpu=True) as recorder:
        out, _ = attention(tokens, tokens, tokens)
        (out * 2).sum().backward()
    torch.testing.assert_close(recorder[""], torch.full_like(out, 2.0))
    # Leaving the block removes the tensor hooks as well: a later backward records nothing.
    with GradientRecorder(attention, [""]) as late:
        out, _ = attention(tokens, tokens, tokens)
    out.sum().backward()
    assert late.grads[""] == [None]


# Editing gradients: clipping during backward


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("seed", "clip_value"), [(0, 0.01), (1, 0.1), (2, 1e-4), (3, 100.0)])
def test_hook_clipping_equals_clip_grad_value(seed, clip_value, dtype):
    torch.manual_seed(seed)
    hooked = spiral_classifier(16).to(dtype)
    by_hand = copy.deepcopy(hooked)
    x, y = torch.randn(32, 2, dtype=dtype), torch.randint(0, 3, (32,))
    handles = register_grad_value_clipping(hooked.parameters(), clip_value)
    loss_hooked = nn.functional.cross_entropy(hooked(x), y)
    loss_hooked.backward()
    loss_by_hand = nn.functional.cross_entropy(by_hand(x), y)
    loss_by_hand.backward()
    torch.nn.utils.clip_grad_value_(by_hand.parameters(), clip_value)
    torch.testing.assert_close(loss_hooked, loss_by_hand, rtol=0, atol=0)
    for a, b in zip(hooked.parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
    for handle in handles:
        handle.remove()
    hooked.zero_grad()
    nn.functional.cross_entropy(hooked(x), y).backward()
    assert max(p.grad.abs().max().item() for p in hooked.parameters()) > min(clip_value, 0.05)


def test_hook_clipping_with_tied_weights_and_nan():
    torch.manual_seed(0)
    w = torch.randn(4, 4, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()
    x = torch.randn(3, 4)
    register_grad_value_clipping(w, 0.05)
    (x @ w @ w).sum().backward()  # one parameter used twice: one hook call, on the sum
    (x @ w_ref @ w_ref).sum().backward()
    torch.nn.utils.clip_grad_value_([w_ref], 0.05)
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=0, atol=0)
    v = torch.tensor([1.0, 2.0], requires_grad=True)
    register_grad_value_clipping([v], 0.5)
    (v * torch.tensor([float("nan"), 3.0])).sum().backward()
    assert v.grad[0].isnan() and v.grad[1] == 0.5  # NaN stays NaN, as torch.clamp (and clip_grad_value_) keep it


def test_hook_clipping_differs_under_accumulation():
    # Where it differs from PyTorch: the hook clamps each backward's contribution, clip_grad_value_ their sum.
    w = torch.zeros(1, requires_grad=True)
    w_ref = torch.zeros(1, requires_grad=True)
    register_grad_value_clipping([w], 1.0)
    for scale in (0.8, 0.8):
        (scale * w).sum().backward()
        (scale * w_ref).sum().backward()
    torch.nn.utils.clip_grad_value_([w_ref], 1.0)
    assert w.grad.item() == pytest.approx(1.6) and w_ref.grad.item() == 1.0
    # And a gradient already in .grad is never clamped by the hook.
    w.grad = torch.tensor([5.0])
    (0.1 * w).sum().backward()
    assert w.grad.item() == pytest.approx(5.1)


def test_hook_clipping_errors_and_skips_frozen_tensors():
    frozen = torch.zeros(2)
    assert register_grad_value_clipping([frozen, torch.zeros(2, requires_grad=True)], 1.0).__len__() == 1
    with pytest.raises(ValueError, match="clip_value must be positive and finite, got 0.0"):
        register_grad_value_clipping([frozen], 0.0)
    with pytest.raises(ValueError, match="got inf"):
        register_grad_value_clipping([frozen], float("inf"))
    with pytest.raises(TypeError, match="clip_value must be a number, got '1'"):
        register_grad_value_clipping([frozen], "1")
    with pytest.raises(TypeError, match="parameters must be a tensor or an iterable of tensors, got an element of type list"):
        register_grad_value_clipping([[1.0]], 1.0)


# What autograd saves


@pytest.mark.parametrize(
    ("sizes", "batch", "input_requires_grad", "dtype"),
    [([16, 32, 32, 4], 8, False, torch.float32), ([3, 5], 2, False, torch.float32), ([3, 5], 2, True, torch.float32),
     ([7, 1, 9, 2, 3], 5, True, torch.float64), ([2, 64, 64, 64, 3], 1, False, torch.float64),
     ([4, 6, 2], 33, False, torch.float32)],
)
def test_saved_bytes_equal_the_hand_count_and_the_graphs_saved_attributes(sizes, batch, input_requires_grad, dtype):
    model = _mlp(sizes, dtype=dtype)
    x = torch.randn(batch, sizes[0], dtype=dtype, requires_grad=input_requires_grad)
    element_size = torch.finfo(dtype).bits // 8
    expected = linear_relu_saved_bytes(sizes, batch, input_requires_grad=input_requires_grad,
                                       element_size=element_size)
    assert saved_bytes(model, x) == expected
    with SavedTensorLedger() as ledger:
        out = model(x)
    # What the ledger saw is exactly what the graph's nodes hold in their _saved_ tensor attributes.
    attributes, stack, seen = [], [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for attr in dir(node):
            value = getattr(node, attr) if attr.startswith("_saved_") else None
            if isinstance(value, torch.Tensor):
                attributes.append(tuple(value.shape))
        stack += [next_node for next_node, _ in node.next_functions]
    assert sorted(attributes) == sorted(r.shape for r in ledger.records)
    hidden = sum(batch * size for size in sizes[1:-1])
    assert ledger.distinct_bytes(exclude=model.parameters()) == element_size * (batch * sizes[0] + hidden)
    weights = sum(m.weight.numel() for m in model if isinstance(m, nn.Linear))
    weights -= 0 if input_requires_grad else sizes[0] * sizes[1]  # the first weight is saved only if x needs a grad
    assert ledger.distinct_bytes() == element_size * (batch * sizes[0] + hidden + weights)


def test_course_linear_saves_the_same_and_course_relu_saves_a_mask():
    torch.manual_seed(0)
    ours = nn.Sequential(Linear(6, 10), nn.ReLU(), Linear(10, 3))
    x = torch.randn(4, 6)
    assert saved_bytes(ours, x) == linear_relu_saved_bytes([6, 10, 3], 4)
    with SavedTensorLedger() as ledger:
        spiral_classifier(10, in_features=6)(x)
    assert [r.dtype for r in ledger.records].count(torch.bool) == 2  # torch.where's condition, one byte each
    assert saved_bytes(spiral_classifier(10, in_features=6), x) < linear_relu_saved_bytes([6, 10, 10, 3], 4)


def test_ledger_live_bytes_free_with_the_graph_without_the_garbage_collector():
    model = _mlp([5, 7, 7, 2])
    x = torch.randn(3, 5)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with SavedTensorLedger() as ledger:
            out = model(x)
        assert ledger.live_bytes() == ledger.total_bytes == saved_bytes(model, x) > 0
        out.sum().backward()  # backward frees what it used
        assert ledger.live_bytes() == 0
        with SavedTensorLedger() as ledger:
            out = model(x)
        del out  # no reference cycle: the reference count alone frees the graph
        assert ledger.live_bytes() == 0
    finally:
        if was_enabled:
            gc.enable()
    with torch.no_grad():
        assert saved_bytes(model, x) == 0
    with pytest.raises(TypeError, match="model must be an nn.Module, got function"):
        saved_bytes(lambda t: t, x)


def test_hoarding_hooks_keep_every_graph_and_detached_ones_keep_none():
    model = _mlp([16, 32, 32, 4])
    per_batch = saved_bytes(model, torch.randn(8, 16))
    for store, expected in ((lambda out: out, 5 * per_batch), (lambda out: out.detach(), 0)):
        kept = []
        with temporary_hooks() as handles, SavedTensorLedger() as ledger:
            handles += [m.register_forward_hook(lambda m, a, o, s=store, k=kept: k.append(s(o))) for m in model]
            for _ in range(5):
                model(torch.randn(8, 16))
        assert ledger.live_bytes() == expected
    with ActivationRecorder(model), SavedTensorLedger() as ledger:
        model(torch.randn(8, 16))
    assert ledger.live_bytes() == 0


def _grads(model, x, y, hooks):
    model.zero_grad()
    with hooks:
        out = model(x)
    nn.functional.mse_loss(out, y).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("seed", range(6))
def test_bfloat16_packing_halves_the_bytes_and_keeps_gradients_within_one_percent(seed):
    model = _mlp([16, 64, 64, 64, 4], seed=seed)
    x, y = torch.randn(32, 16), torch.randn(32, 4)
    with SavedTensorLedger() as ledger:
        model(x)
    full = ledger.distinct_bytes(exclude=model.parameters())
    exact = _grads(model, x, y, SavedTensorLedger())
    packer = CompressSavedTensors(torch.bfloat16, keep=model.parameters())
    approx = _grads(model, x, y, packer)
    naive = CompressSavedTensors(torch.bfloat16, keep=model.parameters(), deduplicate=False)
    naive_grads = _grads(model, x, y, naive)
    assert packer.held_bytes == full // 2
    assert naive.held_bytes == full // 2 + (full // 2 - 32 * 16 * 2)  # every hidden activation copied twice
    for a, n, e in zip(approx, naive_grads, exact, strict=True):
        assert ((a - e).norm() / e.norm()).item() < 0.01
        assert torch.equal(a, n)  # the same rounding, only stored twice
    # Compressing the weights too costs memory: copies of what exists anyway.
    greedy = CompressSavedTensors(torch.bfloat16)
    _grads(model, x, y, greedy)
    assert greedy.held_bytes > packer.held_bytes


def test_packing_float64_into_float32_and_leaving_masks_alone():
    model = _mlp([8, 16, 2], seed=0, dtype=torch.float64)
    x, y = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    exact = _grads(model, x, y, SavedTensorLedger())
    approx = _grads(model, x, y, CompressSavedTensors(torch.float32, keep=model.parameters()))
    for a, e in zip(approx, exact, strict=True):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-7)
    torch.manual_seed(0)
    spiral = spiral_classifier(10)
    with CompressSavedTensors(torch.bfloat16, keep=spiral.parameters()) as packer:
        spiral(torch.randn(4, 2))
    # Two boolean masks (4 * 10 bytes each) stay as they are; the input and two float activations halve.
    assert packer.held_bytes == 2 * 40 + 2 * (4 * 2 + 2 * 4 * 10)


def test_packing_sees_a_tensor_changed_in_place_between_two_saves():
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    t = torch.tensor([1.0, 2.0, 3.0])
    with CompressSavedTensors(torch.bfloat16):
        y1 = t * a  # saves t = [1, 2, 3]
        t.add_(1)
        y2 = t * b  # saves t = [2, 3, 4]: a new copy, not the first one
    (y1 + y2).sum().backward()
    assert a.grad.tolist() == [1.0, 2.0, 3.0] and b.grad.tolist() == [2.0, 3.0, 4.0]


def test_offloading_without_a_dtype_is_exact_and_matches_save_on_cpu():
    model = _mlp([8, 16, 16, 2], seed=3)
    x, y = torch.randn(5, 8), torch.randn(5, 2)
    exact = _grads(model, x, y, SavedTensorLedger())
    for hooks in (CompressSavedTensors(None, device="cpu"), torch.autograd.graph.save_on_cpu()):
        for a, e in zip(_grads(model, x, y, hooks), exact, strict=True):
            assert torch.equal(a, e)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_offloading_a_cuda_model_to_the_cpu_matches_save_on_cpu():
    model = _mlp([8, 32, 32, 2], seed=4).cuda()
    x, y = torch.randn(16, 8, device="cuda"), torch.randn(16, 2, device="cuda")
    exact = _grads(model, x, y, SavedTensorLedger())
    packer = CompressSavedTensors(None, device="cpu", keep=model.parameters())
    ours = _grads(model, x, y, packer)
    theirs = _grads(model, x, y, torch.autograd.graph.save_on_cpu())
    for a, b, e in zip(ours, theirs, exact, strict=True):
        assert a.device.type == "cuda"
        assert torch.equal(a, b) and torch.equal(a, e)
    assert packer.held_bytes == 4 * (16 * 8 + 2 * 16 * 32)


def test_packing_errors():
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype or None, got torch.int8"):
        CompressSavedTensors(torch.int8)
    with pytest.raises(TypeError, match="device must be a torch.device, a string or None, got 0"):
        CompressSavedTensors(device=0)
    with pytest.raises(TypeError, match="deduplicate must be a bool"):
        CompressSavedTensors(deduplicate="yes")
    with pytest.raises(TypeError, match="keep must be a tensor or an iterable of tensors, got an element of type str"):
        CompressSavedTensors(keep=["weight"])
    with pytest.raises(TypeError, match="exclude must be a tensor or an iterable of tensors"):
        SavedTensorLedger().distinct_bytes(exclude=[3])
    with pytest.raises(ValueError, match=r"sizes must be at least two positive ints, got \[3\]"):
        linear_relu_saved_bytes([3], 2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        linear_relu_saved_bytes([3, 2], 0)


# Dr. Hammer's traps


def test_trap_full_backward_hook_gets_none_for_an_input_without_grad():
    layer = nn.Linear(3, 2)
    seen = []
    with layer.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go))):
        with pytest.warns(UserWarning, match="no inputs require gradients"):
            layer(torch.randn(4, 3)).sum().backward()
    (grad_input, grad_output), = seen
    assert grad_input == (None,) and grad_output[0].shape == (4, 2)


def test_trap_forgotten_hooks_pile_up_and_forward_skips_hooks():
    layer, fired = nn.Linear(2, 2), []
    for epoch in range(1, 4):
        layer.register_forward_hook(lambda m, a, o: fired.append(1))
        fired.clear()
        layer(torch.ones(1, 2))
        assert len(fired) == epoch
    fired.clear()
    layer.forward(torch.ones(1, 2))
    assert fired == []
    assert count_forward_calls(layer, torch.ones(1, 2)) == {"": 1}


def test_trap_in_place_edit_of_a_saved_output():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    with net[1].register_forward_hook(lambda m, a, o: o.mul_(2)):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            net(torch.randn(3, 2)).sum().backward()
    x = torch.randn(3, 2)
    with net[1].register_forward_hook(lambda m, a, o: o * 2):
        doubled = net(x)
    torch.testing.assert_close(doubled, net[2](2 * net[1](net[0](x))))


# The figure


def test_plot_activation_statistics():
    fig = plot_activation_statistics(depth=4, width=16, batch_size=32)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(ax.lines) for ax in fig.axes] == [4, 2]
    assert all(len(line.get_xdata()) == 4 for ax in fig.axes for line in ax.lines)
    default, kaiming = (line.get_ydata() for line in fig.axes[1].lines)
    assert default[-1] / default[0] > 10 * kaiming[-1] / kaiming[0]  # default init: the gradient vanishes backwards
    with pytest.raises(ValueError, match="depth must be a positive int, got 0"):
        plot_activation_statistics(depth=0)


# Challenges


def test_count_forward_calls_solution_and_wrong_attempts():
    assert check_count_forward_calls(count_forward_calls) is None

    def children_only(model, *inputs, **kwargs):
        counts = {name: 0 for name, _ in model.named_children()}
        handles = [m.register_forward_pre_hook(lambda m, a, n=n: counts.__setitem__(n, counts[n] + 1))
                   for n, m in model.named_children()]
        model(*inputs, **kwargs)
        for handle in handles:
            handle.remove()
        return counts

    def leaves_hooks_on_error(model, *inputs, **kwargs):
        counts = {name: 0 for name, _ in model.named_modules()}
        handles = [m.register_forward_pre_hook(lambda m, a, n=n: counts.__setitem__(n, counts[n] + 1))
                   for n, m in model.named_modules()]
        model(*inputs, **kwargs)
        for handle in handles:
            handle.remove()
        return counts

    def never_removes(model, *inputs, **kwargs):
        counts = {name: 0 for name, _ in model.named_modules()}
        for n, m in model.named_modules():
            m.register_forward_pre_hook(lambda m, a, n=n: counts.__setitem__(n, counts[n] + 1))
        model(*inputs, **kwargs)
        return counts

    for wrong in (children_only, leaves_hooks_on_error, never_removes):
        with pytest.raises(AssertionError):
            check_count_forward_calls(wrong)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        count_forward_calls("model")


def test_gradient_reversal_solution_and_wrong_attempts():
    assert check_gradient_reversal(gradient_reversal) is None

    def hook_on_x(x, lambda_=1.0):
        if x.requires_grad:
            x.register_hook(lambda g: -lambda_ * g)
        return x

    def no_reversal(x, lambda_=1.0):
        return x.view_as(x)

    def negates_values(x, lambda_=1.0):
        return -lambda_ * x

    def crashes_without_grad(x, lambda_=1.0):
        y = x.view_as(x)
        y.register_hook(lambda g: -lambda_ * g)
        return y

    for wrong in (hook_on_x, no_reversal, negates_values, crashes_without_grad):
        with pytest.raises(AssertionError):
            check_gradient_reversal(wrong)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        gradient_reversal([1.0])
    with pytest.raises(TypeError, match="lambda_ must be a real number, got True"):
        gradient_reversal(torch.ones(1), True)
    with pytest.raises(ValueError, match="lambda_ must be finite, got nan"):
        gradient_reversal(torch.ones(1), float("nan"))
