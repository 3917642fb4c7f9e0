"""The proof that the lesson's SGD is torch.optim.SGD: every option, groups, None gradients, state_dict both ways."""

from __future__ import annotations

import copy
import io
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from torchenstein.training.loop import make_spiral
from torchenstein.training.sgd import (
    SGD,
    SutskeverSGD,
    check_max_stable_lr,
    check_SutskeverSGD,
    elongated_valley,
    max_stable_lr,
    plot_sgd_trajectories,
    rosenbrock,
    sgd_trajectory,
)


def _valid_configs():
    """Every valid combination of the options, with a couple of values each."""
    for momentum, dampening, weight_decay, nesterov, maximize in itertools.product(
        (0.0, 0.9), (0.0, 0.3), (0.0, 1e-2), (False, True), (False, True)
    ):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        yield {"momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
               "nesterov": nesterov, "maximize": maximize}


CONFIGS = list(_valid_configs())


DATA = make_spiral(20, seed=0)  # 60 points, 3 classes


def _twin_nets(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    a = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)
    b = copy.deepcopy(a)
    return a, b


def _batch(step, dtype=torch.float32, size=20):
    x, y = DATA
    start = (step * size) % len(y)
    return x[start:start + size].to(dtype), y[start:start + size]


def _loss(net, step, dtype=torch.float32):
    x, y = _batch(step, dtype)
    return F.cross_entropy(net(x), y)


def _step_both(nets, optimizers, step, dtype=torch.float32):
    for net, opt in zip(nets, optimizers, strict=True):
        opt.zero_grad()
        _loss(net, step, dtype).backward()
        opt.step()


def _assert_same(net_a, opt_a, net_b, opt_b):
    for p, q in zip(net_a.parameters(), net_b.parameters(), strict=True):
        assert torch.equal(p, q)
        state_a, state_b = opt_a.state.get(p, {}), opt_b.state.get(q, {})
        assert list(state_a) == list(state_b)
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key])


# Step for step against torch.optim.SGD


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_torch_sgd_bitwise_for_50_steps(config, dtype):
    ours_net, theirs_net = _twin_nets(dtype)
    ours, theirs = SGD(ours_net.parameters(), lr=0.05, **config), torch.optim.SGD(theirs_net.parameters(), lr=0.05, **config)
    for step in range(50):
        _step_both((ours_net, theirs_net), (ours, theirs), step, dtype)
        _assert_same(ours_net, ours, theirs_net, theirs)
    assert all(p.isfinite().all() for p in ours_net.parameters())


def _layouts(dtype, generator):
    # A matrix, a 0-d parameter and a non-contiguous (transposed) one.
    wide = torch.complex128 if dtype.is_complex else torch.float64
    starts = [torch.randn(s, generator=generator, dtype=wide).to(dtype) for s in ((4, 5), ())]
    starts.append(torch.randn(5, 3, generator=generator, dtype=wide).to(dtype).t())
    return starts


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.complex64])
@pytest.mark.parametrize("config", CONFIGS[::3], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_torch_sgd_bitwise_in_other_dtypes_and_layouts(config, dtype):
    g = torch.Generator().manual_seed(0)
    starts = _layouts(dtype, g)
    ours_params = [nn.Parameter(s.clone()) for s in starts]  # clone keeps the transposed strides
    theirs_params = [nn.Parameter(s.clone()) for s in starts]
    ours, theirs = SGD(ours_params, lr=0.1, **config), torch.optim.SGD(theirs_params, lr=0.1, **config)
    for _ in range(20):
        for p, q in zip(ours_params, theirs_params, strict=True):
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
        assert all(torch.equal(p, q) for p, q in zip(ours_params, theirs_params, strict=True))
    assert not ours_params[-1].is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torchs_foreach_path_agrees_to_a_tolerance(dtype):
    # PyTorch's foreach path (its GPU default) runs the same operations over lists of tensors; nothing
    # promises the same rounding (in half precision with momentum it differs here by a few units in the
    # last place, which 20 steps of momentum carry forward), so: a tolerance.
    tolerance = {torch.float32: 1e-6, torch.float64: 1e-14, torch.bfloat16: 0.1}[dtype]
    for config in CONFIGS[::2]:
        g = torch.Generator().manual_seed(1)
        starts = _layouts(dtype, g)
        ours_params, theirs_params = [nn.Parameter(s.clone()) for s in starts], [nn.Parameter(s.clone()) for s in starts]
        ours = SGD(ours_params, lr=0.1, **config)
        theirs = torch.optim.SGD(theirs_params, lr=0.1, foreach=True, **config)
        for _ in range(20):
            for p, q in zip(ours_params, theirs_params, strict=True):
                p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
                q.grad = p.grad.clone()
            ours.step()
            theirs.step()
        for p, q in zip(ours_params, theirs_params, strict=True):
            torch.testing.assert_close(p, q, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("config", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "maximize": True}])
def test_sparse_gradients_take_the_same_path(config):
    # An embedding with sparse=True hands out sparse gradients; ours runs PyTorch's very operations on them.
    torch.manual_seed(0)
    ours_net = nn.Embedding(10, 3, sparse=True)
    theirs_net = copy.deepcopy(ours_net)
    ours, theirs = SGD(ours_net.parameters(), lr=0.1, **config), torch.optim.SGD(theirs_net.parameters(), lr=0.1, **config)
    for step in range(5):
        ids = torch.tensor([step, 3, 7, 3])
        for net, opt in ((ours_net, ours), (theirs_net, theirs)):
            opt.zero_grad()
            net(ids).pow(2).sum().backward()
            assert net.weight.grad.is_sparse
            opt.step()
        assert torch.equal(ours_net.weight, theirs_net.weight)
    # With weight decay both fail alike: PyTorch's own error, raised by the same operation.
    for cls in (SGD, torch.optim.SGD):
        opt = cls(ours_net.parameters(), lr=0.1, weight_decay=0.1)
        ours_net(torch.tensor([1])).sum().backward()
        with pytest.raises(RuntimeError, match=r"add\(sparse, dense\) is not supported"):
            opt.step()
        opt.zero_grad()


def test_several_param_groups_with_their_own_options():
    ours_net, theirs_net = _twin_nets(torch.float64)

    def groups(net):
        return [
            {"params": net[0].parameters(), "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
            {"params": [net[2].weight], "lr": 0.2, "weight_decay": 1e-2, "dampening": 0.5, "momentum": 0.5},
            {"params": [net[2].bias], "lr": 0.01, "maximize": True},
        ]

    ours = SGD(groups(ours_net), lr=0.05, momentum=0.1)
    theirs = torch.optim.SGD(groups(theirs_net), lr=0.05, momentum=0.1)
    assert [{k: v for k, v in g.items() if k != "params"} for g in ours.param_groups] == [
        {k: v for k, v in g.items() if k not in ("params", "foreach", "differentiable", "fused")} for g in theirs.param_groups
    ]
    for step in range(50):
        _step_both((ours_net, theirs_net), (ours, theirs), step, torch.float64)
        _assert_same(ours_net, ours, theirs_net, theirs)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.left, self.right = nn.Linear(2, 6), nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x, side):
        return (self.left if side == "left" else self.right)(torch.tanh(self.body(x)))


@pytest.mark.parametrize("config", [c for c in CONFIGS if c["weight_decay"] and c["momentum"]],
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_parameters_without_a_gradient_are_skipped(config):
    torch.manual_seed(0)
    ours_net = _TwoHeads()
    theirs_net = copy.deepcopy(ours_net)
    ours, theirs = SGD(ours_net.parameters(), lr=0.1, **config), torch.optim.SGD(theirs_net.parameters(), lr=0.1, **config)
    for step in range(30):
        side = "left" if step % 3 else "right"
        idle = ours_net.right if side == "left" else ours_net.left
        before = [p.detach().clone() for p in idle.parameters()]
        buffers = [ours.state[p]["momentum_buffer"].clone() if p in ours.state else None for p in idle.parameters()]
        for net, opt in ((ours_net, ours), (theirs_net, theirs)):
            opt.zero_grad()
            x, y = _batch(step)
            F.cross_entropy(net(x, side), y).backward()
            opt.step()
        _assert_same(ours_net, ours, theirs_net, theirs)
        # The idle head's .grad is None: no weight decay, no momentum, no new state.
        for p, b, buf in zip(idle.parameters(), before, buffers, strict=True):
            assert p.grad is None and torch.equal(p, b)
            assert (p not in ours.state) if buf is None else torch.equal(ours.state[p]["momentum_buffer"], buf)


def test_zero_gradients_are_not_skipped():
    # zero_grad(set_to_none=False) leaves zeros: weight decay and momentum still move the parameter, in both.
    ours_net, theirs_net = _twin_nets()
    ours = SGD(ours_net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    theirs = torch.optim.SGD(theirs_net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    _step_both((ours_net, theirs_net), (ours, theirs), 0)
    before = ours_net[0].weight.detach().clone()
    for opt in (ours, theirs):
        opt.zero_grad(set_to_none=False)
        opt.step()
    assert not torch.equal(ours_net[0].weight, before)
    _assert_same(ours_net, ours, theirs_net, theirs)


@pytest.mark.parametrize("direction", ["ours to torch", "torch to ours"])
@pytest.mark.parametrize("config", [CONFIGS[0], {"momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-2,
                                                 "nesterov": False, "maximize": True},
                                    {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": True,
                                     "maximize": False}], ids=["plain", "momentum", "nesterov"])
def test_state_dict_moves_both_ways_mid_run(direction, config):
    first_cls, second_cls = (SGD, torch.optim.SGD) if direction == "ours to torch" else (torch.optim.SGD, SGD)
    net, reference_net = _twin_nets()
    first = first_cls(net.parameters(), lr=0.05, **config)
    reference = torch.optim.SGD(reference_net.parameters(), lr=0.05, **config)
    for step in range(20):
        _step_both((net, reference_net), (first, reference), step)
    # Through bytes, as a real checkpoint would travel, and loaded with weights_only=True.
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    second_net = copy.deepcopy(net)
    second = second_cls(second_net.parameters(), lr=123.0)  # the loaded groups bring their own options
    second.load_state_dict(saved)
    for step in range(20, 50):
        _step_both((second_net, reference_net), (second, reference), step)
        _assert_same(second_net, second, reference_net, reference)


def test_state_dicts_have_the_same_structure():
    ours_net, theirs_net = _twin_nets()
    ours = SGD(ours_net.parameters(), lr=0.05, momentum=0.9)
    theirs = torch.optim.SGD(theirs_net.parameters(), lr=0.05, momentum=0.9)
    for step in range(3):
        _step_both((ours_net, theirs_net), (ours, theirs), step)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b) == ["state", "param_groups"]
    assert a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][i]["momentum_buffer"], b["state"][i]["momentum_buffer"]) for i in a["state"])
    shared = set(a["param_groups"][0])
    assert shared <= set(b["param_groups"][0])
    assert all(a["param_groups"][0][k] == b["param_groups"][0][k] for k in shared)
    assert set(b["param_groups"][0]) - shared <= {"foreach", "differentiable", "fused"}


def test_closure_is_run_with_autograd_and_its_loss_returned():
    ours_net, theirs_net = _twin_nets()
    ours, theirs = SGD(ours_net.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(theirs_net.parameters(), lr=0.1, momentum=0.9)
    for step in range(5):
        results = []
        for net, opt in ((ours_net, ours), (theirs_net, theirs)):
            def closure(net=net, opt=opt, step=step):
                assert torch.is_grad_enabled()
                opt.zero_grad()
                loss = _loss(net, step)
                loss.backward()
                return loss

            results.append(opt.step(closure))
        assert torch.equal(results[0], results[1])
        _assert_same(ours_net, ours, theirs_net, theirs)
    assert SGD(ours_net.parameters(), lr=0.1).step() is None


# The update equations, checked on their own


def test_first_step_copies_the_gradient_undampened():
    theta = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = SGD([theta], lr=0.1, momentum=0.9, dampening=0.5)
    buffers = []
    for g in (2.0, 4.0, -1.0):
        theta.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        buffers.append(opt.state[theta]["momentum_buffer"].item())
    assert buffers == pytest.approx([2.0, 0.9 * 2 + 0.5 * 4, 0.9 * 3.8 + 0.5 * -1.0])
    assert theta.item() == pytest.approx(1.0 - 0.1 * sum(buffers))
    assert opt.state[theta]["momentum_buffer"] is not theta.grad  # a copy, not the gradient itself


@pytest.mark.parametrize(("momentum", "dampening"), [(0.9, 0.0), (0.5, 0.0), (0.9, 0.9), (0.8, 0.3)])
def test_constant_gradient_buffer_tends_to_one_minus_tau_over_one_minus_mu(momentum, dampening):
    w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = SGD([w], lr=1.0, momentum=momentum, dampening=dampening)
    for _ in range(500):
        w.grad = torch.full((1,), 2.0, dtype=torch.float64)
        opt.step()
    assert opt.state[w]["momentum_buffer"].item() == pytest.approx(2.0 * (1 - dampening) / (1 - momentum))


@pytest.mark.parametrize("momentum", [0.5, 0.9, 0.99])
def test_nesterov_is_the_look_ahead_method_in_shifted_variables(momentum):
    # Sutskever's Nesterov: gradient at the look-ahead point theta + mu v. PyTorch's form tracks that point.
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    theta0 = torch.randn(4, generator=g, dtype=torch.float64)
    lr = 0.05

    def grad(p):
        return a * p - torch.sin(p)  # a nonlinear gradient, so the look-ahead point matters

    theta, v = theta0.clone(), torch.zeros(4, dtype=torch.float64)
    p = nn.Parameter(theta0.clone())
    opt = SGD([p], lr=lr, momentum=momentum, nesterov=True)
    for _ in range(100):
        v = momentum * v - lr * grad(theta + momentum * v)
        theta = theta + v
        p.grad = grad(p.detach())
        opt.step()
        torch.testing.assert_close(p.detach(), theta + momentum * v, rtol=1e-10, atol=1e-12)


def test_velocity_form_equals_pytorchs_at_constant_lr():
    torch.testing.assert_close(*(_path(cls, [0.1] * 40) for cls in (SutskeverSGD, torch.optim.SGD)), rtol=1e-10, atol=1e-12)
    dropped = [0.5] * 20 + [0.05] * 20
    a, b = _path(SutskeverSGD, dropped), _path(torch.optim.SGD, dropped)
    torch.testing.assert_close(a[:20], b[:20], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(a[20:], b[20:])


def _path(cls, lrs, momentum=0.9):
    w = nn.Parameter(torch.tensor([3.0, -1.0], dtype=torch.float64))
    opt = cls([w], lr=lrs[0], momentum=momentum)
    path = []
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        w.grad = torch.tensor([0.5, 2.0], dtype=torch.float64) * w.detach()
        opt.step()
        path.append(w.detach().clone())
    return torch.stack(path)


# Errors, and where ours differs from PyTorch on purpose


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": -0.1}, ValueError, r"^lr must be a finite number >= 0, got -0.1$"),
        ({"lr": float("nan")}, ValueError, "lr must be a finite number >= 0, got nan"),
        ({"lr": "0.1"}, TypeError, "lr must be a real number, got '0.1'"),
        ({"lr": torch.tensor(0.1)}, TypeError, "lr must be a real number, got a Tensor"),
        ({"momentum": -0.5}, ValueError, "momentum must be a finite number >= 0, got -0.5"),
        ({"momentum": True}, TypeError, "momentum must be a real number, got True"),
        ({"weight_decay": -1e-4}, ValueError, "weight_decay must be a finite number >= 0, got -0.0001"),
        ({"dampening": float("inf")}, ValueError, "dampening must be a finite number, got inf"),
        ({"nesterov": True}, ValueError, "nesterov=True needs momentum > 0 and dampening == 0, got momentum=0.0"),
        ({"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "got momentum=0.9 and dampening=0.1"),
        ({"nesterov": 1, "momentum": 0.9}, TypeError, "nesterov must be a bool, got 1"),
        ({"maximize": "yes"}, TypeError, "maximize must be a bool, got 'yes'"),
    ],
)
def test_bad_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        SGD([nn.Parameter(torch.ones(1))], **kwargs)


@pytest.mark.parametrize("kwargs", [{"lr": -0.1}, {"momentum": -0.5}, {"weight_decay": -1.0}, {"nesterov": True},
                                    {"nesterov": True, "momentum": 0.9, "dampening": 0.1}])
def test_what_torch_refuses_ours_refuses_too(kwargs):
    for cls in (SGD, torch.optim.SGD):
        with pytest.raises(ValueError):
            cls([nn.Parameter(torch.ones(1))], **kwargs)


def test_torch_is_more_lenient_and_ours_is_not():
    p = [nn.Parameter(torch.ones(1))]
    torch.optim.SGD(p, lr=float("nan"))  # accepted by PyTorch
    torch.optim.SGD([{"params": p, "lr": -1.0}], lr=0.1)  # a group's options are not checked
    torch.optim.SGD([{"params": p, "nesterov": True}], lr=0.1)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        SGD(p, lr=float("nan"))
    with pytest.raises(TypeError, match="Tensor"):
        SGD(p, lr=torch.tensor(0.1))
    with pytest.raises(ValueError, match="param group 0: lr must be a finite number >= 0, got -1.0"):
        SGD([{"params": p, "lr": -1.0}], lr=0.1)
    with pytest.raises(ValueError, match="param group 0: nesterov=True needs momentum > 0"):
        SGD([{"params": p, "nesterov": True}], lr=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'foreach'"):
        SGD(p, lr=0.1, foreach=False)
    # A parameter listed twice: PyTorch warns, then updates it twice per step (its momentum buffers
    # even part ways with two plain steps); ours refuses it.
    with pytest.warns(UserWarning, match="duplicate parameters"):
        torch.optim.SGD([p[0], p[0]], lr=0.1)
    with pytest.raises(ValueError, match=r"param group 0: params must list each parameter once, got one of shape \(1,\) twice"):
        SGD([p[0], p[0]], lr=0.1)
    with pytest.raises(ValueError, match="param group 1: params must list each parameter once"):
        SGD([{"params": [nn.Parameter(torch.ones(2))]}, {"params": [p[0], p[0]]}], lr=0.1)
    opt = SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="param group 1: momentum must be a finite number >= 0, got -1"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(1))], "momentum": -1})
    assert len(opt.param_groups) == 1  # the refused group was not added


# What the base class gives us


def test_inherited_machinery_works():
    net, _ = _twin_nets()
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    calls = []
    opt.register_step_pre_hook(lambda optimizer, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda optimizer, args, kwargs: calls.append("post"))
    _loss(net, 0).backward()
    opt.step()
    assert calls == ["pre", "post"]
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert repr(opt).startswith("SGD (") and "momentum: 0.9" in repr(opt)
    clone = copy.deepcopy(opt)
    assert clone.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    extra = nn.Parameter(torch.ones(2))
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.5


def test_a_learning_rate_scheduler_drives_ours_as_it_drives_torchs():
    ours_net, theirs_net = _twin_nets()
    ours, theirs = SGD(ours_net.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(theirs_net.parameters(), lr=0.1, momentum=0.9)
    schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5) for opt in (ours, theirs)]
    for step in range(20):
        _step_both((ours_net, theirs_net), (ours, theirs), step)
        for scheduler in schedulers:
            scheduler.step()
        assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"]
        _assert_same(ours_net, ours, theirs_net, theirs)


# The traps


def test_maximize_equals_the_negated_loss_and_a_negative_lr_does_not():
    def run(mode, steps=50):
        w = nn.Parameter(torch.zeros(3))
        opt = SGD([w], lr=0.1, momentum=0.5, weight_decay=2.0, maximize=mode == "maximize")
        if mode == "negative lr":
            opt.param_groups[0]["lr"] = -0.1
        target = torch.tensor([1.0, -2.0, 0.5])
        for _ in range(steps):
            opt.zero_grad()
            reward = -(w - target).pow(2).sum()
            (reward if mode == "maximize" else -reward).backward()
            opt.step()
        return w.detach()

    assert torch.equal(run("maximize"), run("negated loss"))
    torch.testing.assert_close(run("maximize", 300), torch.tensor([0.5, -1.0, 0.25]))  # target / 2
    assert run("negative lr").abs().max() > 1e6


def test_rebuilding_the_optimiser_loses_the_momentum():
    def run(rebuild):
        net, _ = _twin_nets()
        opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
        for step in range(10):
            if step == 5:
                if rebuild:
                    opt = SGD(net.parameters(), lr=0.05, momentum=0.9)
                else:
                    opt.param_groups[0]["lr"] = 0.05
            buffers = {id(p): s["momentum_buffer"].clone() for p, s in opt.state.items()}
            opt.zero_grad()
            _loss(net, step).backward()
            opt.step()
            if step == 5:
                first = next(net.parameters())
                fresh = id(first) not in buffers
        return net, fresh

    (hammer, hammer_fresh), (honest, honest_fresh) = run(True), run(False)
    assert hammer_fresh and not honest_fresh
    assert not torch.equal(hammer[0].weight, honest[0].weight)


def test_momentum_at_plain_sgds_rate_can_kill_the_network_but_not_on_a_quadratic():
    # On a quadratic, heavy ball tolerates a larger rate than plain SGD; Nesterov a smaller one.
    curvature = 4.0
    assert max_stable_lr(curvature, 0.9, nesterov=True) < max_stable_lr(curvature) < max_stable_lr(curvature, 0.9)
    path = sgd_trajectory(rosenbrock, (-1.5, 2.0), 300, lr=1.5e-3, momentum=0.9, nesterov=True)
    assert len(path) < 301 and not path[-1].isfinite().all()
    for options in ({}, {"momentum": 0.9}):
        assert sgd_trajectory(rosenbrock, (-1.5, 2.0), 300, lr=1.5e-3, **options)[-1].isfinite().all()


# The trajectories and the figure


def test_sgd_trajectory_records_every_point():
    path = sgd_trajectory(elongated_valley, (-10.0, 1.0), 7, lr=1.2)
    assert path.shape == (8, 2) and path.dtype == torch.float64
    assert path[0].tolist() == [-10.0, 1.0]
    torch.testing.assert_close(path[1], torch.tensor([-10.0 * (1 - 1.2 * 0.01), 1.0 - 1.2], dtype=torch.float64))
    assert rosenbrock(torch.tensor([1.0, 1.0])) == 0


def test_the_figures_description():
    # Rosenbrock, 1000 steps at lr=1e-3: plain SGD stops far short of (1, 1); momentum and Nesterov reach it.
    ends = {name: sgd_trajectory(rosenbrock, (-1.5, 2.0), 1000, lr=1e-3, **options)[-1]
            for name, options in (("plain", {}), ("momentum", {"momentum": 0.9}),
                                  ("nesterov", {"momentum": 0.9, "nesterov": True}))}
    assert (ends["plain"] - 1).abs().max() > 0.5
    for name in ("momentum", "nesterov"):
        torch.testing.assert_close(ends[name], torch.ones(2, dtype=torch.float64), atol=0.05, rtol=0)
    # The valley, 100 steps at lr=1.2 from x=-10: plain SGD never passes the minimum at x=0, momentum
    # overshoots it, Nesterov less.
    furthest = {name: sgd_trajectory(elongated_valley, (-10.0, 1.0), 100, lr=1.2, **options)[:, 0].max().item()
                for name, options in (("plain", {}), ("momentum", {"momentum": 0.9}),
                                      ("nesterov", {"momentum": 0.9, "nesterov": True}))}
    assert furthest["plain"] < 0 < furthest["nesterov"] < furthest["momentum"]


def test_plot_sgd_trajectories():
    fig = plot_sgd_trajectories(steps=30)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


# Challenges


def test_challenge_solutions_pass_their_checkers():
    check_max_stable_lr(max_stable_lr)
    check_SutskeverSGD(SutskeverSGD)


@pytest.mark.parametrize(("curvature", "momentum", "nesterov"), [(10.0, 0.9, False), (10.0, 0.9, True), (3.0, 0.0, False)])
def test_max_stable_lr_against_torch_optim_sgd(curvature, momentum, nesterov):
    limit = max_stable_lr(curvature, momentum, nesterov=nesterov)
    for factor, diverges in ((0.97, False), (1.03, True)):
        w = nn.Parameter(torch.ones(1, dtype=torch.float64))
        opt = torch.optim.SGD([w], lr=factor * limit, momentum=momentum, nesterov=nesterov)
        for _ in range(300):
            opt.zero_grad()
            (0.5 * curvature * w**2).sum().backward()
            opt.step()
        assert (w.abs().item() > 1e6) == diverges


def _plain_limit(curvature, momentum=0.0, dampening=0.0, nesterov=False):
    return 2.0 / curvature


def _no_checks(curvature, momentum=0.0, dampening=0.0, nesterov=False):
    if nesterov and momentum > 0:
        return 2 * (1 + momentum) / ((1 + 2 * momentum) * curvature)
    return 2 * (1 + momentum) / ((1 - dampening) * curvature)


@pytest.mark.parametrize(("attempt", "match"), [(_plain_limit, "still converges|already diverges"),
                                                (_no_checks, "must raise ValueError")])
def test_max_stable_lr_checker_rejects_wrong_attempts(attempt, match):
    with pytest.raises(AssertionError, match=match):
        check_max_stable_lr(attempt)


class _BufferForm(torch.optim.SGD):
    """PyTorch's own form: right at a constant rate, wrong once the rate changes."""


class _NotAnOptimizer:
    def __init__(self, params, lr=1e-3, momentum=0.0):
        self.params, self.param_groups = list(params), [{"lr": lr}]

    def zero_grad(self):
        pass

    def step(self):
        pass


@pytest.mark.parametrize(("attempt", "match"), [(_BufferForm, "velocity keeps the old learning rate"),
                                                (_NotAnOptimizer, "must subclass torch.optim.Optimizer")])
def test_SutskeverSGD_checker_rejects_wrong_attempts(attempt, match):
    with pytest.raises(AssertionError, match=match):
        check_SutskeverSGD(attempt)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("config", CONFIGS[::2], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_torch_sgd_on_cuda(config):
    nets = [net.cuda() for net in (*_twin_nets(), _twin_nets()[0])]
    ours = SGD(nets[0].parameters(), lr=0.05, **config)
    single = torch.optim.SGD(nets[1].parameters(), lr=0.05, foreach=False, **config)
    default = torch.optim.SGD(nets[2].parameters(), lr=0.05, **config)  # foreach on CUDA
    for step in range(50):
        x, y = (t.cuda() for t in _batch(step))
        for net, opt in zip(nets, (ours, single, default), strict=True):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        _assert_same(nets[0], ours, nets[1], single)
    for p, q in zip(nets[0].parameters(), nets[2].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert math.isfinite(sum(p.sum().item() for p in nets[0].parameters()))
