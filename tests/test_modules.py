"""The thorough proof of the nn.Module lesson: the from-scratch module system files, walks, moves and
saves everything exactly as nn.Module does."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.lab import device_available
from torchenstein.nn.modules import (
    Brain,
    Lobe,
    TinyBrain,
    TinyLobe,
    TinyModule,
    TinyParameter,
    TinyReLU,
    TinySequential,
    check_count_parameters,
    check_freeze_by_prefix,
    count_parameters,
    freeze_by_prefix,
    plot_module_tree,
)

# The two module systems, side by side: (base module class, parameter class).
REAL = (nn.Module, nn.Parameter)
TINY = (TinyModule, TinyParameter)

# A random architecture, written once and built in either system. Each node is a list of steps in
# assignment order; a step adds a parameter, a buffer, a plain tensor attribute or a child node, and
# the last two kinds of step reuse what was built: a child filed a second time (a shared module) and
# a child's first parameter filed again on the parent (a tied weight).
shapes = st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple)
leaf_steps = st.one_of(
    st.tuples(st.just("param"), shapes),
    st.tuples(st.just("buffer"), shapes, st.sampled_from([torch.float32, torch.int64, torch.bool]), st.booleans()),
    st.tuples(st.just("plain"), shapes),
)
specs = st.recursive(
    st.lists(leaf_steps, max_size=3),
    lambda children: st.lists(
        st.one_of(leaf_steps, st.tuples(st.just("child"), children), st.just(("share",)), st.just(("tie",))),
        max_size=4,
    ),
    max_leaves=10,
)


def build(spec, system):
    module_class, parameter_class = system
    module = module_class()
    children = []
    for index, step in enumerate(spec):
        kind, name = step[0], f"{step[0]}{index}"
        if kind == "param":
            setattr(module, name, parameter_class(torch.randn(step[1])))
        elif kind == "buffer":
            _, shape, dtype, persistent = step
            module.register_buffer(name, torch.randn(shape).to(dtype), persistent=persistent)
        elif kind == "plain":
            setattr(module, name, torch.randn(step[1], requires_grad=True))
        elif kind == "child":
            child = build(step[1], system)
            children.append(child)
            setattr(module, name, child)
        elif kind == "share" and children:
            setattr(module, name, children[0])
        elif kind == "tie" and children:
            first = next(children[0].parameters(), None)
            if first is not None:
                setattr(module, name, first)
    return module


def layout(named):
    return [(name, tuple(t.shape), t.dtype) for name, t in named]


def apply_order(module):
    names = {id(m): name for name, m in module.named_modules()}
    order = []
    module.apply(lambda m: order.append(names[id(m)]))
    return order


def twins(spec, seed=0):
    torch.manual_seed(seed)
    real = build(spec, REAL)
    torch.manual_seed(seed)
    tiny = build(spec, TINY)
    return real, tiny


@settings(max_examples=40)
@given(spec=specs)
def test_random_trees_are_filed_and_walked_identically(spec):
    real, tiny = twins(spec)
    assert layout(tiny.named_parameters()) == layout(real.named_parameters())
    assert layout(tiny.named_buffers()) == layout(real.named_buffers())
    assert [n for n, _ in tiny.named_modules()] == [n for n, _ in real.named_modules()]
    assert [n for n, _ in tiny.named_children()] == [n for n, _ in real.named_children()]
    assert apply_order(tiny) == apply_order(real)
    tiny_state, real_state = tiny.state_dict(), real.state_dict()
    assert list(tiny_state) == list(real_state)
    for name in real_state:
        assert torch.equal(tiny_state[name], real_state[name]), name
        assert not tiny_state[name].requires_grad
    # The non-recursive views list only the module's own members.
    assert layout(tiny.named_parameters(recurse=False)) == layout(real.named_parameters(recurse=False))
    assert layout(tiny.named_buffers(prefix="root")) == layout(real.named_buffers(prefix="root"))


@settings(max_examples=25)
@given(spec=specs, dtype=st.sampled_from([torch.float64, torch.float16, torch.bfloat16]))
def test_random_trees_are_cast_and_switched_identically(spec, dtype):
    real, tiny = twins(spec)
    real.to(dtype)
    tiny.to(dtype)
    assert layout(tiny.named_parameters()) == layout(real.named_parameters())
    assert layout(tiny.named_buffers()) == layout(real.named_buffers())
    real.eval()
    tiny.eval()
    assert [m.training for m in tiny.modules()] == [m.training for m in real.modules()]
    assert not any(m.training for m in tiny.modules())
    real.requires_grad_(False)
    tiny.requires_grad_(False)
    assert not any(p.requires_grad for p in tiny.parameters())


def test_a_plain_tensor_attribute_is_registered_in_neither_system():
    for system in (REAL, TINY):
        module = build([("param", (2,)), ("plain", (3,))], system)
        assert [name for name, _ in module.named_parameters()] == ["param0"]
        assert list(module.buffers()) == []
        assert "plain1" not in module.state_dict()
        assert "plain1" in vars(module) and "param0" not in vars(module)
        # Not registered, so not moved either.
        module.to(torch.float64)
        assert module.plain1.dtype == torch.float32 and module.param0.dtype == torch.float64


def test_the_root_parameter_comes_first_whatever_the_source_order():
    for brain in (Brain(), TinyBrain()):
        names = [name for name, _ in brain.named_parameters()]
        assert names[0] == "temperature" and names[1:3] == ["encoder.weight", "encoder.bias"]


def test_shared_modules_are_walked_once_but_saved_under_every_name():
    for module_class, sequential, lobe, relu in ((nn.Module, nn.Sequential, Lobe, nn.ReLU),
                                                 (TinyModule, TinySequential, TinyLobe, TinyReLU)):
        layer = lobe(2, 2)
        stack = sequential(layer, relu(), layer)
        assert [name for name, _ in stack.named_modules()] == ["", "0", "1"]
        assert [name for name, _ in stack.named_parameters()] == ["0.weight", "0.bias"]
        assert list(stack.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
        visited = []
        stack.apply(lambda m, visited=visited: visited.append(type(m).__name__))
        assert visited == ["Lobe" if module_class is nn.Module else "TinyLobe",
                           "ReLU" if module_class is nn.Module else "TinyReLU",
                           "Sequential" if module_class is nn.Module else "TinySequential"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(5, 3), (1, 3), (2, 4, 3)])
def test_brain_and_tiny_brain_compute_the_same_outputs_buffers_and_gradients(seed, shape):
    torch.manual_seed(seed)
    real = Brain()
    torch.manual_seed(seed)
    tiny = TinyBrain()
    for step in range(3):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed * 10 + step))
        if step == 2:
            real.eval()
            tiny.eval()
        torch.testing.assert_close(tiny(x), real(x), rtol=0, atol=0)
    for name, buffer in real.named_buffers():
        torch.testing.assert_close(dict(tiny.named_buffers())[name], buffer, rtol=0, atol=0)
    assert real.num_batches_tracked.item() == tiny.num_batches_tracked.item() == 2
    real(x).pow(2).sum().backward()
    tiny(x).pow(2).sum().backward()
    for (name, p), (tiny_name, q) in zip(real.named_parameters(), tiny.named_parameters(), strict=True):
        assert name == tiny_name
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)


def test_a_tiny_state_dict_loads_into_the_real_brain():
    torch.manual_seed(3)
    tiny = TinyBrain()
    tiny(torch.randn(4, 3))
    real = Brain()
    real.load_state_dict(tiny.state_dict())
    x = torch.randn(2, 3)
    torch.testing.assert_close(real.eval()(x), tiny.eval()(x))


def test_brain_in_float64_passes_gradcheck():
    torch.manual_seed(0)
    brain = Brain().to(torch.float64).eval()
    x = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(brain, (x,))


def test_tiny_parameter_is_a_leaf_sharing_its_data():
    data = torch.randn(3, requires_grad=True) * 2   # not a leaf
    p = TinyParameter(data)
    assert isinstance(p, torch.Tensor) and type(p) is TinyParameter
    assert p.is_leaf and p.requires_grad and p.data_ptr() == data.data_ptr()
    assert not TinyParameter(torch.ones(2), requires_grad=False).requires_grad
    assert TinyParameter().shape == (0,)
    for result in (p * 2, p[1:], p + p, torch.sin(p)):
        assert type(result) is torch.Tensor
    with pytest.raises(TypeError, match="data must be a torch.Tensor, got list"):
        TinyParameter([1.0])
    with pytest.raises(AttributeError):  # the difference the docstring states: PyTorch's error names no argument
        nn.Parameter([1.0])


def test_reassignment_rules_match_nn_module():
    for module_class, parameter_class, child_class, name in ((nn.Module, nn.Parameter, nn.ReLU, "Parameter"),
                                                            (TinyModule, TinyParameter, TinyReLU, "TinyParameter")):
        m = module_class()
        m.x = torch.ones(2)                       # an ordinary attribute ...
        m.x = parameter_class(torch.ones(2))      # ... becomes a parameter, and leaves the __dict__
        assert "x" not in vars(m) and [n for n, _ in m.named_parameters()] == ["x"]
        with pytest.raises(TypeError, match=rf"as parameter 'x' \(.*{name} or None expected\)"):
            m.x = torch.zeros(2)
        m.x = None                                # an empty slot: still declared, no longer listed
        assert m.x is None and list(m.parameters()) == []
        with pytest.raises(TypeError, match="as parameter 'x'"):
            m.x = child_class()                   # not even a module may take a parameter's slot
        m.y = torch.ones(1)
        m.y = child_class()                       # but it takes an ordinary attribute's name over
        assert [n for n, _ in m.named_children()] == ["y"] and "y" not in vars(m)
        with pytest.raises(TypeError, match="as child module 'y'"):
            m.y = 3
        m.register_buffer("b", torch.zeros(1))
        m.b = torch.ones(1)                       # a tensor for a buffer name replaces the buffer
        assert torch.equal(dict(m.named_buffers())["b"], torch.ones(1))
        with pytest.raises(TypeError, match="as buffer 'b'"):
            m.b = [1.0]
        with pytest.raises(AttributeError, match="object has no attribute 'nowhere'"):
            m.nowhere  # noqa: B018


def test_persistent_flag_is_remembered_when_a_buffer_is_replaced():
    for module_class in (nn.Module, TinyModule):
        m = module_class()
        m.register_buffer("scratch", torch.zeros(2), persistent=False)
        m.scratch = torch.ones(2)
        assert list(m.state_dict()) == [] and len(list(m.buffers())) == 1
        m.register_buffer("scratch", torch.ones(2), persistent=True)
        assert list(m.state_dict()) == ["scratch"]


class _TinyHeadless(TinyModule):
    def __init__(self, what):
        if what == "module":
            self.child = TinyReLU()
        elif what == "parameters":
            self.weight = TinyParameter(torch.ones(1))
        else:
            self.register_buffer("b", torch.ones(1))


class _RealHeadless(nn.Module):
    def __init__(self, what):
        if what == "module":
            self.child = nn.ReLU()
        else:
            self.weight = nn.Parameter(torch.ones(1))


@pytest.mark.parametrize("what", ["module", "parameters", "buffer"])
def test_forgetting_super_init_is_named_in_both_systems(what):
    with pytest.raises(AttributeError, match=f"cannot assign {what} before TinyModule.__init__\\(\\) call"):
        _TinyHeadless(what)
    if what != "buffer":
        with pytest.raises(AttributeError, match=f"cannot assign {what} before Module.__init__\\(\\) call"):
            _RealHeadless(what)


_BAD_BUFFERS = [
    pytest.param("a.b", torch.ones(1), KeyError, 'cannot contain "."', id="dotted"),
    pytest.param("", torch.ones(1), KeyError, "empty string", id="empty"),
    pytest.param("weight", torch.ones(1), KeyError, "'weight' is already an attribute of TinyModule", id="a parameter"),
    pytest.param("forward", torch.ones(1), KeyError, "'forward' is already an attribute", id="a method"),
    pytest.param(3, torch.ones(1), TypeError, "buffer name must be a str, got int", id="not a str"),
    pytest.param("b", 1.0, TypeError, "cannot assign 'float' object to buffer 'b'", id="not a tensor"),
]


@pytest.mark.parametrize(("name", "value", "error", "message"), _BAD_BUFFERS)
def test_bad_buffers_raise_pytorchs_exception_types(name, value, error, message):
    tiny, real = TinyModule(), nn.Module()
    tiny.weight = TinyParameter(torch.ones(1))
    real.weight = nn.Parameter(torch.ones(1))
    with pytest.raises(error) as theirs:
        real.register_buffer(name, value)
    with pytest.raises(error, match=message) as ours:
        tiny.register_buffer(name, value)
    assert type(ours.value) is type(theirs.value)


def test_bad_modes_and_a_missing_forward_are_refused_like_pytorch():
    tiny, real = TinyModule(), nn.Module()
    with pytest.raises(ValueError, match="mode must be a bool, got 1"):
        tiny.train(1)
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        real.train(1)
    with pytest.raises(NotImplementedError, match=r'Module \[TinyModule\] is missing the required "forward" function'):
        tiny(torch.ones(1))
    with pytest.raises(NotImplementedError):
        real(torch.ones(1))


def test_casting_under_a_live_adam_crashes_and_reloading_its_state_fixes_it():
    for system in ("real", "tiny"):
        torch.manual_seed(0)
        lobe = Lobe(3, 2) if system == "real" else TinyLobe(3, 2)
        optimiser = torch.optim.Adam(lobe.parameters(), lr=0.1)
        lobe(torch.randn(4, 3)).sum().backward()
        optimiser.step()
        lobe.to(torch.float64)
        assert optimiser.state[lobe.weight]["exp_avg"].dtype == torch.float32
        optimiser.zero_grad()
        lobe(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
        with pytest.raises(RuntimeError, match="expected dtype float for `end` but got dtype double"):
            optimiser.step()
        optimiser.load_state_dict(optimiser.state_dict())
        optimiser.step()
        assert {t.dtype for t in optimiser.state[lobe.weight].values() if t.dim()} == {torch.float64}
    # SGD with momentum does not crash: its momentum silently stays float32.
    lobe = Lobe(3, 2)
    sgd = torch.optim.SGD(lobe.parameters(), lr=0.1, momentum=0.9)
    for dtype in (torch.float32, torch.float64):
        lobe.to(dtype)
        sgd.zero_grad()
        lobe(torch.randn(4, 3, dtype=dtype)).sum().backward()
        sgd.step()
    assert lobe.weight.dtype == torch.float64 and sgd.state[lobe.weight]["momentum_buffer"].dtype == torch.float32


def test_call_runs_hooks_and_forward_skips_them():
    torch.manual_seed(0)
    brain = Brain()
    calls = []
    handle = brain.register_forward_hook(lambda module, args, output: calls.append(args[0].shape))
    x = torch.randn(4, 3)
    brain(x)
    brain.forward(x)
    assert calls == [torch.Size([4, 3])]
    # A hook that returns something replaces the output.
    doubler = brain.register_forward_hook(lambda module, args, output: output * 2)
    torch.testing.assert_close(brain.eval()(x), 2 * brain.forward(x))
    handle.remove()
    doubler.remove()
    torch.testing.assert_close(brain(x), brain.forward(x))
    assert len(calls) == 2


def test_a_tiny_call_is_its_forward():
    torch.manual_seed(0)
    tiny = TinyBrain().eval()
    x = torch.randn(4, 3)
    torch.testing.assert_close(tiny(x), tiny.forward(x), rtol=0, atol=0)


@pytest.mark.parametrize("system", ["real", "tiny"])
def test_to_keeps_parameter_objects_and_integer_buffers_and_moves_gradients(system):
    brain = Brain() if system == "real" else TinyBrain()
    brain(torch.randn(2, 3)).sum().backward()
    weight = brain.encoder.weight
    brain.to(torch.float64)
    assert brain.encoder.weight is weight and weight.dtype == torch.float64 and weight.grad.dtype == torch.float64
    assert brain.num_batches_tracked.dtype == torch.int64 and brain.last_activity.dtype == torch.float64
    brain.to(device="cpu", dtype=torch.float32)
    assert brain.encoder.weight.device.type == "cpu" and brain.encoder.weight.dtype == torch.float32
    assert brain.encoder.weight.requires_grad and brain.encoder.weight.is_leaf
    brain.to("meta")
    assert {t.device.type for t in [*brain.parameters(), *brain.buffers()]} == {"meta"}
    assert brain.encoder.weight.grad.device.type == "meta"
    # Across incompatible tensor types a new parameter object is filed; it is still a parameter.
    assert brain.encoder.weight is not weight and isinstance(brain.encoder.weight, (nn.Parameter, TinyParameter))
    with pytest.raises(TypeError, match="torch.int64"):
        brain.to(torch.int64)


@pytest.mark.skipif(not device_available("cuda"), reason="needs a CUDA device")
def test_tiny_brain_on_cuda_matches_brain_on_cuda():
    torch.manual_seed(0)
    real = Brain().cuda()
    torch.manual_seed(0)
    tiny = TinyBrain()
    weight = tiny.encoder.weight
    tiny.to("cuda")
    assert tiny.encoder.weight is weight and real.encoder.weight.device.type == "cuda"
    assert {t.device.type for t in [*tiny.parameters(), *tiny.buffers()]} == {"cuda"}
    x = torch.randn(8, 3, device="cuda")
    torch.testing.assert_close(tiny(x), real(x))


def test_counting_and_freezing_the_brain():
    brain = Brain()
    assert count_parameters(brain) == 47 == sum(p.numel() for p in TinyBrain().parameters())
    assert freeze_by_prefix(brain, "encoder") == ["encoder.weight", "encoder.bias"]
    assert count_parameters(brain, trainable_only=True) == 31
    with pytest.raises(TypeError, match="module must be an nn.Module, got TinyBrain"):
        count_parameters(TinyBrain())


def test_the_checkers_pass_the_solutions():
    assert check_count_parameters(count_parameters) is None
    assert check_freeze_by_prefix(freeze_by_prefix) is None


def test_the_checkers_reject_plausible_wrong_attempts():
    def counts_the_state_dict(module, trainable_only=False):
        return sum(t.numel() for t in module.state_dict().values())

    def ignores_trainable_only(module, trainable_only=False):
        return sum(p.numel() for p in module.parameters())

    def counts_tied_weights_twice(module, trainable_only=False):
        return sum(p.numel() for m in module.modules() for p in m.parameters(recurse=False)
                   if p.requires_grad or not trainable_only)

    for wrong in (counts_the_state_dict, ignores_trainable_only, counts_tied_weights_twice):
        with pytest.raises(AssertionError):
            check_count_parameters(wrong)

    def plain_startswith(module, prefix):
        frozen = [n for n, p in module.named_parameters() if n.startswith(prefix)]
        for n, p in module.named_parameters():
            if n in frozen:
                p.requires_grad_(False)
        return frozen

    def unfreezes_the_rest(module, prefix):
        frozen = freeze_by_prefix(module, prefix)
        for n, p in module.named_parameters():
            p.requires_grad_(n not in frozen)
        return frozen

    for wrong, message in ((plain_startswith, "encoder2"), (unfreezes_the_rest, "decoder.bias")):
        with pytest.raises(AssertionError, match=message):
            check_freeze_by_prefix(wrong)


def test_plot_module_tree_draws_any_kind_of_module():
    for model in (None, TinyBrain(), nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), nn.ReLU()):
        fig = plot_module_tree(model=model)
        assert isinstance(fig, Figure) and len(fig.axes) == 1
    layer = nn.Linear(2, 2)
    fig = plot_module_tree(model=nn.Sequential(layer, layer))   # a shared module is drawn once
    assert sum("Linear" in t.get_text() for t in fig.axes[0].texts) == 1
    with pytest.raises(TypeError, match="model must be an nn.Module or a TinyModule, got int"):
        plot_module_tree(model=3)
