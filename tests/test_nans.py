"""Hunting NaNs: normalize equals F.normalize, the tracer names the right module, the guard protects the weights."""

from __future__ import annotations

import copy
import math
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.training.nans import (
    check_cosine_similarity,
    check_drop_nonfinite_samples,
    cosine_similarity,
    drop_nonfinite_samples,
    find_first_nonfinite,
    nan_outbreak_run,
    normalize,
    plot_nan_outbreak,
    step_if_finite,
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
NAN, INF = math.nan, math.inf


def _input(shape, dtype=torch.float32, seed=0, zero_rows=True):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    if zero_rows and x.dim() >= 2 and x.size(0) > 1:
        x[1] = 0.0  # a slice that is all zeros: the 0/0 case
    return x.to(dtype)


def _no_hooks(model):
    return all(not m._forward_hooks for m in model.modules())


# normalize against F.normalize


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, INF, 0.5])
@pytest.mark.parametrize(("shape", "dim"), [((4, 5), 1), ((4, 5), 0), ((3, 4, 6), -1), ((3, 4, 6), (1, 2)), ((6,), 0)])
def test_normalize_is_f_normalize(dtype, p, shape, dim):
    x = _input(shape, dtype)
    ours, theirs = normalize(x, p=p, dim=dim), F.normalize(x, p=p, dim=dim)
    assert ours.dtype == theirs.dtype == dtype
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
    # The default eps of 1e-12 is 0 in float16, so a zero slice is 0/0 there, in both (see the next test).
    assert torch.isfinite(ours).all() or dtype == torch.float16


def test_float16_flushes_the_default_eps_to_zero():
    x = torch.zeros(2, 3, dtype=torch.float16)
    x[0] = 1.0
    assert torch.tensor(1e-12, dtype=torch.float16).item() == 0.0
    for function in (normalize, F.normalize):
        assert function(x, dim=1)[1].isnan().all()
        assert torch.equal(function(x, dim=1, eps=1e-6)[1], torch.zeros(3, dtype=torch.float16))
    assert normalize(x.bfloat16(), dim=1).isfinite().all()  # bfloat16 holds 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0])
@pytest.mark.parametrize("eps", [1e-12, 1e-3, 10.0])
def test_normalize_gradients_match_zero_slices_included(dtype, p, eps):
    x = _input((5, 4), dtype, seed=1).requires_grad_(True)
    grad_output = _input((5, 4), dtype, seed=2, zero_rows=False)
    (ours,) = torch.autograd.grad(normalize(x, p=p, dim=1, eps=eps), x, grad_output)
    (theirs,) = torch.autograd.grad(F.normalize(x, p=p, dim=1, eps=eps), x, grad_output)
    torch.testing.assert_close(ours, theirs)
    assert torch.isfinite(ours).all()


def test_normalize_passes_gradcheck_away_from_zero():
    x = _input((3, 4), torch.float64, zero_rows=False).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: normalize(t, dim=1), (x,))
    assert torch.autograd.gradcheck(lambda t: normalize(t, p=3.0, dim=0), (x,))


def test_normalize_edge_cases():
    for x, dim in ((torch.zeros(0, 3), 1), (torch.tensor(3.0), 0), (torch.zeros(2, 3).t(), 0), (torch.zeros(4, 0), 1)):
        torch.testing.assert_close(normalize(x, dim=dim), F.normalize(x, dim=dim))
    huge = torch.tensor([[3e38, 3e38], [1e-30, 0.0]])
    torch.testing.assert_close(normalize(huge, dim=1, eps=0.0), F.normalize(huge, dim=1, eps=0.0), equal_nan=True)
    # With eps=0 a zero vector is 0/0 again, in both.
    assert normalize(torch.zeros(1, 3), dim=1, eps=0.0).isnan().all()
    assert F.normalize(torch.zeros(1, 3), dim=1, eps=0.0).isnan().all()


@settings(max_examples=15)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([1e-8, 1.0, 1e6]))
def test_normalized_slices_have_norm_one_or_are_zero(seed, scale):
    x = scale * _input((4, 6), torch.float64, seed=seed)
    norms = torch.linalg.vector_norm(normalize(x, dim=1), dim=1)
    torch.testing.assert_close(norms[[0, 2, 3]], torch.ones(3, dtype=torch.float64))
    assert norms[1].item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input": torch.arange(3)}, TypeError, "input must be a floating-point tensor, got dtype torch.int64"),
        ({"input": [1.0, 2.0]}, TypeError, "input must be a floating-point tensor, got list"),
        ({"p": "2"}, TypeError, "p must be a real number, got '2'"),
        ({"dim": 1.0}, TypeError, r"dim must be an int or a non-empty tuple of ints, got 1.0"),
        ({"dim": ()}, TypeError, r"dim must be an int or a non-empty tuple of ints, got \(\)"),
        ({"eps": -1e-12}, ValueError, "eps must be at least 0, got -1e-12"),
        ({"eps": NAN}, ValueError, "eps must be at least 0, got nan"),
        ({"eps": None}, TypeError, "eps must be a real number, got None"),
    ],
)
def test_normalize_errors(kwargs, error, match):
    arguments = {"input": torch.ones(2, 3), "p": 2.0, "dim": 1, "eps": 1e-12} | kwargs
    with pytest.raises(error, match=match):
        normalize(**arguments)


# find_first_nonfinite


class _Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


class _Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def _tracer_net():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        encoder=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8)),
        log=_Log(),
        counter=_Counter(),
        head=nn.Linear(8, 1),
    ))


def test_tracer_names_the_first_module_and_stops_there():
    net = _tracer_net()
    x = torch.randn(5, 4)
    assert find_first_nonfinite(net, x) == "log"
    assert net.counter.calls == 0  # the forward pass stopped at the culprit
    assert _no_hooks(net)
    x[0, 0] = INF
    assert find_first_nonfinite(net, x) == "encoder.0"
    assert find_first_nonfinite(net.encoder, torch.randn(5, 4)) is None
    assert find_first_nonfinite(net.encoder, torch.randn(5, 4)) is None
    assert _no_hooks(net)


def test_tracer_sees_inf_and_outputs_inside_tuples_and_dicts():
    class Pair(nn.Module):
        def forward(self, x):
            return {"ok": x, "bad": (x.argmax(dim=-1), x.exp())}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Identity()
            self.pair = Pair()
            self.last = nn.Identity()

        def forward(self, x):
            return self.last(self.pair(self.first(x))["ok"])

    net = Net()
    assert find_first_nonfinite(net, torch.zeros(2, 3)) is None
    assert find_first_nonfinite(net, torch.full((2, 3), 100.0)) == "pair"  # exp(100) = inf in float32
    assert _no_hooks(net)


def test_tracer_blames_the_next_child_or_the_model_for_a_parents_own_code():
    class Parent(nn.Module):
        def __init__(self, child_after):
            super().__init__()
            self.before = nn.Linear(3, 3)
            self.after = nn.Identity() if child_after else None

        def forward(self, x):
            h = torch.log(self.before(x) - 100.0)  # NaN made here, by the parent itself
            return self.after(h) if self.after is not None else h

    assert find_first_nonfinite(Parent(True), torch.zeros(2, 3)) == "after"
    assert find_first_nonfinite(Parent(False), torch.zeros(2, 3)) == ""


def test_tracer_removes_its_hooks_on_error_and_keeps_the_users():
    net = _tracer_net()
    seen = []
    handle = net.head.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    with pytest.raises(RuntimeError):
        find_first_nonfinite(net, torch.randn(5, 3))  # wrong width: the model itself fails
    assert [len(m._forward_hooks) for m in net.modules()] == [1 if m is net.head else 0 for m in net.modules()]
    net.log = nn.Identity()
    assert find_first_nonfinite(net, torch.randn(2, 4)) is None
    assert seen == [torch.Size([2, 1])]
    handle.remove()
    assert _no_hooks(net)


def test_tracer_ignores_integer_outputs_and_names_shared_modules_once():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = nn.Identity()
            self.other = self.shared
            self.log = _Log()

        def forward(self, x):
            return self.log(self.other(self.shared(x)))

    assert find_first_nonfinite(Net(), torch.tensor([-1.0])) == "log"
    assert find_first_nonfinite(nn.Identity(), torch.tensor([1, 2])) is None
    assert find_first_nonfinite(nn.Identity(), torch.tensor([NAN])) == ""
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        find_first_nonfinite(lambda x: x, torch.zeros(1))


# step_if_finite


def _twins(optimizer_class, **options):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    twin = copy.deepcopy(model)
    return (model, optimizer_class(model.parameters(), **options)), (twin, optimizer_class(twin.parameters(), **options))


def _state(optimizer):
    return copy.deepcopy(optimizer.state_dict())


def _assert_same_state(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        for name, value in a["state"][key].items():
            other = b["state"][key][name]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, other), name
            else:
                assert value == other, name


OPTIMIZERS = [
    (torch.optim.SGD, {"lr": 0.1}),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    (torch.optim.Adam, {"lr": 0.01}),
    (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(("optimizer_class", "options"), OPTIMIZERS)
def test_a_finite_step_is_exactly_a_plain_step(optimizer_class, options):
    (model, optimizer), (twin, reference) = _twins(optimizer_class, **options)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    for _ in range(3):
        for net, opt in ((model, optimizer), (twin, reference)):
            opt.zero_grad()
            loss = F.mse_loss(net(x), y)
            loss.backward()
            if opt is optimizer:
                assert step_if_finite(opt, loss) is True
            else:
                opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
    _assert_same_state(_state(optimizer), _state(reference))


@pytest.mark.parametrize(("optimizer_class", "options"), OPTIMIZERS)
@pytest.mark.parametrize("poison", ["nan-input", "inf-grad", "nan-loss-only", "neg-inf-grad"])
def test_a_skipped_step_leaves_weights_and_state_untouched(optimizer_class, options, poison):
    (model, optimizer), _ = _twins(optimizer_class, **options)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    optimizer.zero_grad()
    F.mse_loss(model(x), y).backward()
    assert step_if_finite(optimizer)  # one good step first, so the state is not empty
    weights = [p.detach().clone() for p in model.parameters()]
    state = _state(optimizer)
    optimizer.zero_grad()
    bad_x = x.clone()
    if poison == "nan-input":
        bad_x[2, 1] = NAN
    loss = F.mse_loss(model(bad_x), y)
    loss.backward()
    if poison == "inf-grad":
        model[0].weight.grad[0, 0] = INF
    elif poison == "neg-inf-grad":
        model[2].bias.grad[1] = -INF
    elif poison == "nan-loss-only":
        loss = loss.detach() * NAN  # gradients stay finite; the loss alone says no
    assert step_if_finite(optimizer, loss) is False
    for p, w in zip(model.parameters(), weights, strict=True):
        assert torch.equal(p.detach(), w)
        assert p.grad is None
    _assert_same_state(_state(optimizer), state)


def test_the_guard_checks_every_group_and_skips_none_gradients():
    a, b, c = (nn.Parameter(torch.ones(2)) for _ in range(3))
    sgd = torch.optim.SGD([{"params": [a]}, {"params": [b, c], "lr": 0.5}], lr=0.1)
    a.grad = torch.ones(2)
    c.grad = torch.tensor([1.0, NAN])  # b has no gradient at all
    assert step_if_finite(sgd) is False
    assert a.tolist() == [1.0, 1.0] and c.tolist() == [1.0, 1.0]
    assert step_if_finite(sgd) is True  # nothing left to check, nothing to do
    c.grad = torch.ones(2)
    assert step_if_finite(sgd, torch.tensor(0.3)) is True
    assert a.tolist() == [1.0, 1.0] and c.tolist() == [0.5, 0.5]
    assert step_if_finite(torch.optim.SGD([a], lr=0.1), torch.tensor([1.0, INF])) is False


def test_a_nan_step_poisons_forever_without_the_guard():
    (model, optimizer), (twin, guarded) = _twins(torch.optim.SGD, lr=0.1, momentum=0.9)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    bad = x.clone()
    bad[0, 0] = NAN
    for batch in (x, bad, x, x, x):
        for net, opt in ((model, optimizer), (twin, guarded)):
            opt.zero_grad()
            loss = F.mse_loss(net(batch), y)
            loss.backward()
            if opt is guarded:
                step_if_finite(opt, loss)
            else:
                opt.step()
    assert all(p.isnan().all() for p in model.parameters())
    assert all(s["momentum_buffer"].isnan().all() for s in optimizer.state.values())
    assert all(p.isfinite().all() for p in twin.parameters())


def test_step_if_finite_errors():
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got list"):
        step_if_finite([])
    with pytest.raises(TypeError, match="loss must be a tensor or None, got float"):
        step_if_finite(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_guard_and_tracer_on_cuda():
    model = nn.Sequential(nn.Linear(3, 3), _Log()).cuda()
    assert find_first_nonfinite(model, torch.randn(4, 3, device="cuda")) == "1"
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(4, 3, device="cuda")).sum().backward()
    assert step_if_finite(sgd) is False
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    x = torch.randn(4, 3, device="cuda")
    torch.testing.assert_close(normalize(x, dim=1), F.normalize(x, dim=1))


# The outbreak run and its figure


def test_nan_outbreak_run_guarded_and_not():
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    wild, guarded = nan_outbreak_run(False), nan_outbreak_run(True)
    assert torch.equal(torch.rand(1), expected_next)  # the global generator is left alone
    assert wild["nan_fraction"] == [0.0] * 10 + [1.0] * 20
    assert guarded["nan_fraction"] == [0.0] * 30
    assert wild["loss"][:10] == guarded["loss"][:10]
    assert math.isnan(wild["loss"][10]) and math.isnan(guarded["loss"][10])
    assert all(math.isnan(v) for v in wild["loss"][11:])
    assert guarded["loss"][-1] < guarded["loss"][9] < guarded["loss"][0]
    never = nan_outbreak_run(False, steps=5, bad_step=7)
    assert never == nan_outbreak_run(True, steps=5, bad_step=7)
    for kwargs, error, match in (({"steps": 0}, ValueError, "steps must be at least 1, got 0"),
                                 ({"bad_step": -1}, ValueError, "bad_step must be at least 0, got -1"),
                                 ({"seed": 1.5}, TypeError, "seed must be an int, got 1.5")):
        with pytest.raises(error, match=match):
            nan_outbreak_run(True, **kwargs)


def test_plot_nan_outbreak_draws_two_panels():
    fig = plot_nan_outbreak(steps=6, bad_step=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax in fig.axes:
        assert len([line for line in ax.lines if line.get_label() in ("optimizer.step() regardless", "step_if_finite")]) == 2


# The lesson's claims


def test_the_classic_causes():
    zero = torch.tensor(0.0)
    assert (zero / zero).isnan() and (torch.tensor(INF) - INF).isnan() and (zero * INF).isnan()
    assert torch.exp(torch.tensor(88.7)).isfinite() and torch.exp(torch.tensor(88.8)).isinf()
    h = torch.full((3,), 300.0, dtype=torch.float16)
    assert ((h * h).mean() - h.mean() ** 2).isnan()
    p = torch.tensor([1.0, 0.0], requires_grad=True)
    torch.xlogy(torch.tensor([1.0, 0.0]), p).sum().backward()
    assert p.grad[1].isnan()


def test_double_where_and_eps_inside_fix_the_sqrt_gradient():
    u = torch.tensor([0.0, 0.0, 4.0, 9.0], requires_grad=True)
    torch.where(u > 0, u.sqrt(), 0.0).sum().backward()
    assert u.grad[:2].isnan().all()
    u.grad = None
    torch.where(u > 0, torch.where(u > 0, u, 1.0).sqrt(), 0.0).sum().backward()
    torch.testing.assert_close(u.grad, torch.tensor([0.0, 0.0, 0.25, 1 / 6]))
    a, b = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0])
    ((a - b).pow(2).sum().sqrt() + 1e-8).backward()
    assert a.grad.isnan().all()
    a.grad = None
    ((a - b).pow(2).sum() + 1e-8).sqrt().backward()
    assert torch.equal(a.grad, torch.zeros(2))


def test_nan_to_num_paints_over_the_loss_but_not_the_gradient():
    p = torch.tensor([0.5, 0.0], requires_grad=True)
    loss = torch.nan_to_num(-torch.log(p).sum(), posinf=0.0)
    assert loss.item() == 0.0
    loss.backward()
    assert p.grad[1].isnan()


def test_anomaly_mode_names_the_pow_not_the_sqrt():
    a, b = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="Function 'PowBackward0' returned nan values in its 0th output"):
            with torch.autograd.detect_anomaly():
                (a - b).pow(2).sum().sqrt().backward()
    assert any(str(w.message).startswith("Error detected in PowBackward0") for w in caught)


# Challenges


def test_cosine_similarity_solution_passes_and_wrong_attempts_fail():
    assert check_cosine_similarity(cosine_similarity) is None
    assert check_cosine_similarity(F.cosine_similarity) is None

    def naive(x1, x2, dim=1, eps=1e-8):
        return (x1 * x2).sum(dim) / (x1.norm(dim=dim) * x2.norm(dim=dim))

    def eps_on_the_product(x1, x2, dim=1, eps=1e-8):
        return (x1 * x2).sum(dim) / (x1.norm(dim=dim) * x2.norm(dim=dim)).clamp_min(eps)

    def last_dim_always(x1, x2, dim=1, eps=1e-8):
        return cosine_similarity(x1, x2, dim=-1, eps=eps)

    def clamped_sqrt_norm(x1, x2, dim=1, eps=1e-8):
        n1 = x1.pow(2).sum(dim, keepdim=True).sqrt().clamp_min(eps)
        n2 = x2.pow(2).sum(dim, keepdim=True).sqrt().clamp_min(eps)
        return ((x1 / n1) * (x2 / n2)).sum(dim)

    for wrong in (naive, eps_on_the_product, last_dim_always, clamped_sqrt_norm, lambda *a, **k: None):
        with pytest.raises(AssertionError):
            check_cosine_similarity(wrong)
    with pytest.raises(TypeError, match="x2 must be a floating-point tensor, got dtype torch.int64"):
        cosine_similarity(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.long))


def test_drop_nonfinite_samples_solution_passes_and_wrong_attempts_fail():
    assert check_drop_nonfinite_samples(drop_nonfinite_samples) is None

    def only_nan(inputs, targets):
        keep = ~inputs.isnan().flatten(1).any(dim=1) & ~targets.reshape(len(targets), -1).isnan().any(dim=1)
        return inputs[keep], targets[keep], (~keep).nonzero().flatten()

    def ignores_targets(inputs, targets):
        keep = torch.isfinite(inputs).flatten(1).all(dim=1)
        return inputs[keep], targets[keep], (~keep).nonzero().flatten()

    def dropped_as_list(inputs, targets):
        x, y, dropped = drop_nonfinite_samples(inputs, targets)
        return x, y, dropped.tolist()

    def zeroes_instead(inputs, targets):
        return inputs.nan_to_num(0.0, 0.0, 0.0), targets, torch.zeros(0, dtype=torch.long)

    for wrong in (only_nan, ignores_targets, dropped_as_list, zeroes_instead, lambda *a, **k: None):
        with pytest.raises(AssertionError):
            check_drop_nonfinite_samples(wrong)
    with pytest.raises(ValueError, match=r"same number of samples along dimension 0, got shapes \(3, 2\) and \(2,\)"):
        drop_nonfinite_samples(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(TypeError, match="targets must be a torch.Tensor, got list"):
        drop_nonfinite_samples(torch.zeros(3, 2), [0, 1, 2])
    x, y, dropped = drop_nonfinite_samples(torch.tensor([1.0, NAN, 3.0]), torch.tensor([0, 1, 2]))
    assert x.tolist() == [1.0, 3.0] and y.tolist() == [0, 2] and dropped.tolist() == [1]
