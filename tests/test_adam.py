"""The thorough proof of the Adam lesson: Adam and AdamW against PyTorch's, step by step, state and all."""

from __future__ import annotations

import copy
import inspect
import io
import itertools

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import torchenstein.training.adam as lesson
from torchenstein.challenges import challenges_in
from torchenstein.nn.embeddings import Embedding, TinyLanguageModel
from torchenstein.nn.linear import Linear
from torchenstein.nn.normalization import LayerNorm
from torchenstein.nn.rmsnorm import RMSNorm
from torchenstein.training.adam import (
    Adam,
    AdamW,
    adamax_step,
    check_adamax_step,
    check_param_groups_by_module_type,
    elongated_bowl,
    optimizer_trajectory,
    param_groups_by_module_type,
    param_groups_for_weight_decay,
    plot_bias_correction,
    plot_optimizer_trajectories,
    relative_step_sizes,
)

PAIRS = {"Adam": (Adam, torch.optim.Adam), "AdamW": (AdamW, torch.optim.AdamW)}
SHAPES = [(3, 4), (5,), (2, 1, 3), ()]  # a matrix, a vector, a 3-D tensor and a 0-d scalar
STATE_KEYS = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _twins(dtype: torch.dtype, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    start = [torch.randn(shape, generator=generator, dtype=dtype) for shape in SHAPES]
    return [s.clone().requires_grad_() for s in start], [s.clone().requires_grad_() for s in start]


def _gradients(dtype: torch.dtype, steps: int, seed: int = 1) -> list[list[torch.Tensor | None]]:
    # Gradients of very different sizes per parameter; the vector has none on every third step, so its
    # step count falls behind the others' (PyTorch skips a parameter whose grad is None).
    generator = torch.Generator().manual_seed(seed)
    scales = (1.0, 1e-3, 30.0, 0.1)
    grads = []
    for t in range(steps):
        row = [scale * torch.randn(shape, generator=generator, dtype=dtype) for shape, scale in zip(SHAPES, scales, strict=True)]
        if t % 3 == 2:
            row[1] = None
        grads.append(row)
    return grads


def _step_both(ours, theirs, ours_params, theirs_params, row) -> None:
    for p, q, g in zip(ours_params, theirs_params, row, strict=True):
        p.grad = None if g is None else g.clone()
        q.grad = None if g is None else g.clone()
    ours.step()
    theirs.step()


def _assert_same(ours, theirs, ours_params, theirs_params) -> None:
    # Bitwise: the same values in every parameter and every state tensor.
    compare = torch.equal
    for i, (p, q) in enumerate(zip(ours_params, theirs_params, strict=True)):
        assert compare(p.detach(), q.detach()), f"parameter {i} differs by {(p - q).abs().max().item():.3g}"
        ours_state, theirs_state = ours.state[p], theirs.state[q]
        assert set(ours_state) == set(theirs_state), f"parameter {i}: state keys {set(ours_state)} vs {set(theirs_state)}"
        for key in ours_state:
            a, b = ours_state[key], theirs_state[key]
            if key == "step":
                # Same value, dtype and device: a step is a 0-d float tensor on the CPU in both.
                assert torch.equal(a, b) and a.dtype == b.dtype and a.device == b.device, f"parameter {i}: step {a} vs {b}"
            else:
                assert compare(a, b), f"parameter {i}: state {key} differs"


OPTIONS = [
    dict(amsgrad=amsgrad, weight_decay=wd, maximize=maximize, betas=betas)
    for amsgrad, wd, maximize, betas in itertools.product(
        (False, True), (0.0, 0.1), (False, True), ((0.9, 0.999), (0.5, 0.8))
    )
]


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bitwise_equal_to_torch_over_50_steps_for_a_grid_of_options(name, dtype):
    # 50 steps: far enough that the step counts part ways and beta2's bias correction is still changing.
    ours_cls, torch_cls = PAIRS[name]
    grads = _gradients(dtype, 50)
    for options in OPTIONS:
        ours_params, theirs_params = _twins(dtype)
        ours = ours_cls(ours_params, lr=0.02, eps=1e-6, **options)
        theirs = torch_cls(theirs_params, lr=0.02, eps=1e-6, foreach=False, **options)
        for row in grads:
            _step_both(ours, theirs, ours_params, theirs_params, row)
        _assert_same(ours, theirs, ours_params, theirs_params)
        assert ours.state[ours_params[0]]["step"].item() == 50
        assert ours.state[ours_params[1]]["step"].item() == 34  # skipped whenever its grad was None


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bitwise_equal_in_half_precision_and_odd_layouts(name, dtype):
    # Half precision, a 0-d parameter and a non-contiguous (transposed) one, whose state keeps its strides.
    ours_cls, torch_cls = PAIRS[name]
    for options in OPTIONS[::3]:
        g = torch.Generator().manual_seed(2)
        starts = [torch.randn(s, generator=g).to(dtype) for s in ((3, 4), ())]
        starts.append(torch.randn(4, 3, generator=g).to(dtype).t())
        ours_params = [s.clone().requires_grad_() for s in starts]
        theirs_params = [s.clone().requires_grad_() for s in starts]
        ours = ours_cls(ours_params, lr=0.02, eps=1e-4, **options)
        theirs = torch_cls(theirs_params, lr=0.02, eps=1e-4, foreach=False, **options)
        for _ in range(20):
            _step_both(ours, theirs, ours_params, theirs_params,
                       [torch.randn(p.shape, generator=g).to(dtype) for p in ours_params])
        _assert_same(ours, theirs, ours_params, theirs_params)
        assert ours.state[ours_params[-1]]["exp_avg"].stride() == ours_params[-1].stride() == (1, 3)


@pytest.mark.parametrize("name", PAIRS)
def test_several_param_groups_with_their_own_options(name):
    ours_cls, torch_cls = PAIRS[name]
    ours_params, theirs_params = _twins(torch.float32, seed=3)

    def groups(params):
        return [
            {"params": params[:2], "lr": 0.05, "betas": (0.8, 0.99), "amsgrad": True},
            {"params": [params[2]], "weight_decay": 0.3, "maximize": True},
            {"params": [params[3]], "eps": 1e-3},
        ]

    ours = ours_cls(groups(ours_params), lr=0.01, weight_decay=0.01)
    theirs = torch_cls(groups(theirs_params), lr=0.01, weight_decay=0.01, foreach=False)
    for row in _gradients(torch.float32, 100, seed=4):
        _step_both(ours, theirs, ours_params, theirs_params, row)
    _assert_same(ours, theirs, ours_params, theirs_params)
    assert "max_exp_avg_sq" in ours.state[ours_params[0]] and "max_exp_avg_sq" not in ours.state[ours_params[2]]


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("direction", ["ours to torch", "torch to ours"])
def test_state_dict_loads_both_ways_mid_run(name, direction):
    ours_cls, torch_cls = PAIRS[name]
    grads = _gradients(torch.float32, 100, seed=5)
    options = dict(lr=0.01, weight_decay=0.05, amsgrad=True, betas=(0.85, 0.95))
    ours_params, theirs_params = _twins(torch.float32, seed=5)
    ours, theirs = ours_cls(ours_params, **options), torch_cls(theirs_params, foreach=False, **options)
    for row in grads[:50]:
        _step_both(ours, theirs, ours_params, theirs_params, row)

    # Hand over mid-run, through torch.save and a weights_only load, to a fresh optimiser of the other kind.
    source = ours if direction == "ours to torch" else theirs
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    if direction == "ours to torch":
        theirs = torch_cls(theirs_params, foreach=False, lr=0.5)  # wrong hyperparameters, overwritten by the load
        theirs.load_state_dict(saved)
    else:
        ours = ours_cls(ours_params, lr=0.5)
        ours.load_state_dict(saved)
    for row in grads[50:]:
        _step_both(ours, theirs, ours_params, theirs_params, row)
    _assert_same(ours, theirs, ours_params, theirs_params)
    assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"] == 0.01


def test_state_dict_keys_and_layout_match_torch():
    ours_params, theirs_params = _twins(torch.float32)
    ours, theirs = Adam(ours_params, amsgrad=True), torch.optim.Adam(theirs_params, amsgrad=True, foreach=False)
    _step_both(ours, theirs, ours_params, theirs_params, _gradients(torch.float32, 1)[0])
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert ours_sd["state"].keys() == theirs_sd["state"].keys()
    for key in ("params", "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert ours_sd["param_groups"][0][key] == theirs_sd["param_groups"][0][key], key
    for i in ours_sd["state"]:
        assert sorted(ours_sd["state"][i]) == sorted(theirs_sd["state"][i]) == sorted(STATE_KEYS)


def test_a_state_saved_with_an_int_step_or_without_the_newer_flags_still_loads():
    p = torch.ones(3, requires_grad=True)
    ours = Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    ours.step()
    old = copy.deepcopy(ours.state_dict())
    for flag in ("amsgrad", "maximize", "decoupled_weight_decay"):
        del old["param_groups"][0][flag]
    old["state"][0]["step"] = 1  # checkpoints from before PyTorch 1.12 stored the step as an int
    fresh = Adam([p], lr=0.1)
    fresh.load_state_dict(old)
    assert fresh.param_groups[0]["amsgrad"] is False and fresh.param_groups[0]["decoupled_weight_decay"] is False
    assert torch.equal(fresh.state[p]["step"], torch.tensor(1.0))
    fresh.step()
    assert fresh.state[p]["step"].item() == 2


def test_adamw_stays_decoupled_whatever_it_loads():
    p = torch.ones(2, requires_grad=True)
    adam_state = torch.optim.Adam([p], weight_decay=0.1).state_dict()
    ours = AdamW([p])
    ours.load_state_dict(adam_state)
    assert ours.param_groups[0]["decoupled_weight_decay"] is True
    assert ours.param_groups[0]["weight_decay"] == 0.1


def test_decoupled_flag_on_adam_is_adamw():
    a, b = _twins(torch.float64)
    ours = Adam(a, lr=0.01, weight_decay=0.2, decoupled_weight_decay=True)
    theirs = torch.optim.AdamW(b, lr=0.01, weight_decay=0.2, foreach=False)
    for row in _gradients(torch.float64, 30):
        _step_both(ours, theirs, a, b, row)
    _assert_same(ours, theirs, a, b)
    # The lesson: recent releases accept the flag on torch.optim.Adam too, and make AdamW a subclass of Adam.
    if "decoupled_weight_decay" in inspect.signature(torch.optim.Adam).parameters:
        assert issubclass(torch.optim.AdamW, torch.optim.Adam)
        c, d = _twins(torch.float64)
        ours = Adam(c, lr=0.01, weight_decay=0.2, decoupled_weight_decay=True)
        theirs = torch.optim.Adam(d, lr=0.01, weight_decay=0.2, decoupled_weight_decay=True, foreach=False)
        for row in _gradients(torch.float64, 30):
            _step_both(ours, theirs, c, d, row)
        _assert_same(ours, theirs, c, d)


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("kernel", ["foreach", "fused"])
def test_torch_foreach_and_fused_kernels_agree_to_a_tolerance(name, kernel):
    # foreach is bitwise equal to our loop on the CPU in torch 2.13, but nothing promises it; the fused
    # kernel computes the same formula in one pass and lands a few units in the last place away.
    ours_cls, torch_cls = PAIRS[name]
    for dtype in (torch.float32, torch.float64):
        a, b = _twins(dtype, seed=7)
        ours = ours_cls(a, lr=0.01, weight_decay=0.1, amsgrad=True)
        try:
            theirs = torch_cls(b, lr=0.01, weight_decay=0.1, amsgrad=True, **{kernel: True})
        except RuntimeError as err:  # pragma: no cover - older CPU builds without a fused Adam
            pytest.skip(f"torch.optim.{name}({kernel}=True) is not available here: {err}")
        # PyTorch's fused CPU kernel is slow in float64 (milliseconds a step): a shorter run there.
        steps = 15 if (kernel, dtype) == ("fused", torch.float64) else 100
        for row in _gradients(dtype, steps, seed=8):
            row = [torch.zeros(s, dtype=dtype) if g is None else g for g, s in zip(row, SHAPES, strict=True)]
            _step_both(ours, theirs, a, b, row)
        tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
        for p, q in zip(a, b, strict=True):
            torch.testing.assert_close(p.detach(), q.detach(), **tolerance)
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                torch.testing.assert_close(ours.state[p][key], theirs.state[q][key], **tolerance)


def test_training_a_model_with_a_closure_matches_torch():
    torch.manual_seed(0)
    ours_model = nn.Sequential(Linear(4, 8), nn.Tanh(), Linear(8, 1))
    theirs_model = copy.deepcopy(ours_model)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    ours = AdamW(param_groups_for_weight_decay(ours_model, 0.1), lr=0.01)
    theirs = torch.optim.AdamW(param_groups_for_weight_decay(theirs_model, 0.1), lr=0.01, foreach=False)
    for _ in range(50):
        losses = []
        for model, optimizer in ((ours_model, ours), (theirs_model, theirs)):

            def closure(model=model, optimizer=optimizer):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            losses.append(optimizer.step(closure))
        assert torch.equal(losses[0], losses[1])
    for p, q in zip(ours_model.parameters(), theirs_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_edge_cases_empty_noncontiguous_and_default_float64():
    # A 0-size parameter and a non-contiguous (transposed) one: state keeps the parameter's layout.
    empty_a, empty_b = torch.zeros(0, 3, requires_grad=True), torch.zeros(0, 3, requires_grad=True)
    base = torch.randn(4, 3)
    t_a, t_b = nn.Parameter(base.clone().t()), nn.Parameter(base.clone().t())
    ours, theirs = Adam([empty_a, t_a], lr=0.1), torch.optim.Adam([empty_b, t_b], lr=0.1, foreach=False)
    for _ in range(5):
        g = torch.randn(3, 4)
        empty_a.grad, empty_b.grad = torch.zeros(0, 3), torch.zeros(0, 3)
        t_a.grad, t_b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    assert torch.equal(t_a, t_b) and ours.state[t_a]["exp_avg"].stride() == t_a.stride()
    assert ours.state[empty_a]["exp_avg"].shape == (0, 3)
    # Under a float64 default dtype PyTorch counts steps in float64; so do we.
    torch.set_default_dtype(torch.float64)
    p, q = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    ours, theirs = Adam([p]), torch.optim.Adam([q], foreach=False)
    p.grad, q.grad = torch.ones(2), torch.ones(2)
    ours.step()
    theirs.step()
    assert ours.state[p]["step"].dtype == theirs.state[q]["step"].dtype == torch.float64


@pytest.mark.parametrize("name", PAIRS)
def test_zero_gradients_are_a_step_like_any_other(name):
    # zero_grad(set_to_none=False) leaves zeros: the step count grows, the moments decay, the decay applies.
    ours_cls, torch_cls = PAIRS[name]
    a, b = _twins(torch.float32, seed=9)
    ours, theirs = ours_cls(a, lr=0.01, weight_decay=0.1), torch_cls(b, lr=0.01, weight_decay=0.1, foreach=False)
    _step_both(ours, theirs, a, b, _gradients(torch.float32, 1, seed=9)[0])
    before = a[0].detach().clone()
    for optimizer in (ours, theirs):
        optimizer.zero_grad(set_to_none=False)
        optimizer.step()
    _assert_same(ours, theirs, a, b)
    assert not torch.equal(a[0], before) and ours.state[a[0]]["step"].item() == 2


def test_grad_is_left_untouched_and_step_returns_none_without_closure():
    p = torch.ones(3, requires_grad=True)
    optimizer = Adam([p], weight_decay=0.5, maximize=True)
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    assert optimizer.step() is None
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (dict(lr=-1.0), ValueError, r"^lr must be a finite number >= 0, got -1.0$"),
        (dict(lr=float("nan")), ValueError, "lr must be a finite number >= 0, got nan"),
        (dict(lr=float("inf")), ValueError, "lr must be a finite number >= 0, got inf"),
        (dict(eps=-1e-8), ValueError, "eps must be a finite number >= 0, got -1e-08"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay must be a finite number >= 0, got -0.1"),
        (dict(betas=(0.9, 1.0)), ValueError, r"betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
        (dict(lr=True), TypeError, "lr must be a real number, got True"),
        (dict(lr="0.1"), TypeError, "lr must be a real number, got '0.1'"),
        (dict(lr=torch.tensor(0.01)), TypeError, "lr must be a real number, got a Tensor"),
        (dict(betas=(0.9,)), TypeError, r"betas must be a pair of numbers, got \(0.9,\)"),
        (dict(betas=0.9), TypeError, "betas must be a pair of numbers, got 0.9"),
        (dict(betas=(torch.tensor(0.9), torch.tensor(0.999))), TypeError, "betas must be a pair of numbers"),
        (dict(amsgrad=1), TypeError, "amsgrad must be a bool, got 1"),
        (dict(maximize="no"), TypeError, "maximize must be a bool, got 'no'"),
    ],
)
def test_bad_hyperparameters_raise_naming_the_argument(options, error, match):
    with pytest.raises(error, match=match):
        Adam([torch.ones(2, requires_grad=True)], **options)


def test_where_it_differs_every_group_is_checked_and_a_parameter_listed_twice_is_refused():
    p, q = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    # PyTorch checks only the defaults, accepts a tensor lr, and only warns about a duplicate.
    torch.optim.Adam([{"params": [p], "lr": -1.0}])
    torch.optim.Adam([p], lr=torch.tensor(0.01), foreach=False)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        torch.optim.Adam([p, p])
    with pytest.raises(ValueError, match="Invalid learning rate"):  # it does refuse a negative default
        torch.optim.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="param group 1: lr must be a finite number >= 0, got -1.0"):
        AdamW([{"params": [q]}, {"params": [p], "lr": -1.0}])
    with pytest.raises(ValueError, match=r"param group 0: betas must be two numbers in \[0, 1\)"):
        Adam([{"params": [p], "betas": (0.9, 1.5)}])
    with pytest.raises(ValueError, match=r"param group 0: params must list each parameter once, got one of shape \(2,\) twice"):
        Adam([p, p])
    optimizer = Adam([q])
    with pytest.raises(TypeError, match="param group 1: amsgrad must be a bool"):
        optimizer.add_param_group({"params": [p], "amsgrad": "yes"})
    assert len(optimizer.param_groups) == 1
    for cls in (Adam, AdamW, torch.optim.Adam):  # inherited from the base class, in both
        with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
            cls([])


def test_where_it_differs_complex_parameters_and_sparse_gradients():
    # PyTorch handles complex parameters as pairs of reals; ours refuses them.
    z = torch.ones(2, dtype=torch.complex64, requires_grad=True)
    z.grad = torch.ones(2, dtype=torch.complex64)
    torch.optim.Adam([z.detach().clone().requires_grad_()], lr=0.1)  # accepted at construction
    with pytest.raises(TypeError, match="real floating-point parameters only, got dtype torch.complex64"):
        Adam([z], lr=0.1).step()
    # Both refuse a sparse gradient; PyTorch with RuntimeError, ours with TypeError.
    for make, error in ((lambda ps: Adam(ps), TypeError), (lambda ps: torch.optim.Adam(ps, foreach=False), RuntimeError)):
        p = torch.zeros(3, requires_grad=True)
        p.grad = torch.zeros(3).to_sparse()
        with pytest.raises(error, match="sparse"):
            make([p]).step()


def test_lesson_claims_scale_invariance_and_first_step():
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    optimizer = Adam([p], lr=0.01)
    p.grad = torch.tensor([1e3, -1.0, 1e-3, -1e-5], dtype=torch.float64)
    optimizer.step()
    # The first step is lr * g / (|g| + eps): the learning rate, with the gradient's sign.
    torch.testing.assert_close(p.detach(), -0.01 * p.grad / (p.grad.abs() + 1e-8))


def test_l2_and_decoupled_decay_coincide_for_sgd_but_not_for_adam():
    torch.manual_seed(0)
    w, grads = torch.randn(5, dtype=torch.float64), torch.randn(20, 5, dtype=torch.float64)
    l2, decoupled = w.clone().requires_grad_(), w.clone()
    sgd = torch.optim.SGD([l2], lr=0.1, weight_decay=0.01)
    for g in grads:
        l2.grad = g.clone()
        sgd.step()
        decoupled = decoupled * (1 - 0.1 * 0.01) - 0.1 * g
    torch.testing.assert_close(l2.detach(), decoupled)
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    adam, adamw = Adam([a], lr=0.1, weight_decay=0.01), AdamW([b], lr=0.1, weight_decay=0.01)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        adam.step()
        adamw.step()
    assert not torch.allclose(a, b)


def test_param_groups_for_weight_decay():
    model = nn.Sequential(Embedding(10, 4), LayerNorm(4), Linear(4, 3), RMSNorm(3), nn.Conv1d(3, 2, 3))
    decay, no_decay = param_groups_for_weight_decay(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in decay["params"]] == ["0.weight", "2.weight", "4.weight"]
    assert [names[id(p)] for p in no_decay["params"]] == ["1.weight", "1.bias", "2.bias", "3.weight", "4.bias"]
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    # A tied parameter appears once; the groups make a valid optimiser.
    tied = TinyLanguageModel(7, 3)
    groups = param_groups_for_weight_decay(tied, 0.1)
    assert sum(len(g["params"]) for g in groups) == len(list(tied.parameters())) == 3
    AdamW(groups)
    torch.optim.AdamW(groups)
    with pytest.raises(TypeError, match="model must be an nn.Module, got list"):
        param_groups_for_weight_decay([nn.Parameter(torch.ones(2))], 0.1)
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0, got -1"):
        param_groups_for_weight_decay(model, -1)
    with pytest.raises(TypeError, match="weight_decay must be a real number, got '0.1'"):
        param_groups_for_weight_decay(model, "0.1")


def test_undecayed_gain_stays_at_one_and_decayed_gain_shrinks():
    norm = LayerNorm(4)
    optimizer = AdamW(norm.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(500):
        norm.weight.grad, norm.bias.grad = torch.zeros(4), torch.zeros(4)
        optimizer.step()
    torch.testing.assert_close(norm.weight.detach(), torch.full((4,), (1 - 1e-3) ** 500))


def test_relative_step_sizes_match_real_adam_runs():
    sizes = relative_step_sizes(50, betas=(0.9, 0.99))
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = Adam([p], lr=1.0, betas=(0.9, 0.99), eps=0.0)
    m = v = 0.0
    for t in range(1, 51):
        before = p.detach().clone()
        p.grad = torch.tensor([0.7], dtype=torch.float64)
        optimizer.step()
        assert abs((before - p.detach()).item() - sizes["both corrected"][t - 1].item()) < 1e-12
        m, v = 0.9 * m + 0.1 * 0.7, 0.99 * v + 0.01 * 0.49
        assert abs(m / v**0.5 - sizes["neither"][t - 1].item()) < 1e-12
        assert abs(m / (1 - 0.9**t) / v**0.5 - sizes["m only"][t - 1].item()) < 1e-12
        assert abs(m / (v / (1 - 0.99**t)) ** 0.5 - sizes["v only"][t - 1].item()) < 1e-12
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        relative_step_sizes(0)
    with pytest.raises(TypeError, match="steps must be an int, got 3.0"):
        relative_step_sizes(3.0)
    with pytest.raises(ValueError, match="betas must be two numbers"):
        relative_step_sizes(3, betas=(1.0, 0.9))


def test_trajectory_and_figures():
    path = optimizer_trajectory(lambda ps: Adam(ps, lr=0.3), steps=5)
    assert path.shape == (6, 2) and path[0].tolist() == [-4.0, 1.5]
    assert elongated_bowl(path[-1]) < elongated_bowl(path[0])
    with pytest.raises(ValueError, match="steps must be at least 0, got -1"):
        optimizer_trajectory(lambda ps: Adam(ps), steps=-1)
    with pytest.raises(ValueError, match=r"start must hold two numbers \(x, y\), got \(1.0,\)"):
        optimizer_trajectory(lambda ps: Adam(ps), start=(1.0,))
    fig = plot_optimizer_trajectories(steps=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 3
    fig = plot_bias_correction(steps=100)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4


def test_the_figures_descriptions():
    # plot_bias_correction: none starts near 3 and rises above 6; m only starts at 31; v only starts at
    # 0.1 and reaches 1 within a few dozen steps; all end near 1 after 5000 steps.
    sizes = relative_step_sizes(5000)
    assert round(sizes["neither"][0].item()) == 3 and sizes["neither"].max() > 6
    assert round(sizes["m only"][0].item()) == 32 and round(sizes["v only"][0].item(), 1) == 0.1
    assert sizes["v only"][50].item() > 0.99
    assert all(abs(s[-1].item() - 1) < 0.01 for s in sizes.values())
    # plot_optimizer_trajectories: after 40 steps momentum is down to about a millionth, Adam swings
    # around a hundredth, plain SGD is still falling.
    runs = {"SGD": lambda ps: torch.optim.SGD(ps, lr=0.4), "momentum": lambda ps: torch.optim.SGD(ps, lr=0.4, momentum=0.7),
            "Adam": lambda ps: Adam(ps, lr=0.3)}
    losses = {name: elongated_bowl(optimizer_trajectory(make, steps=40)) for name, make in runs.items()}
    assert losses["momentum"][-1] < 1e-5 and 1e-3 < losses["Adam"][-10:].min() < losses["Adam"][-10:].max() < 0.05
    assert losses["SGD"][-1] < losses["SGD"][-11] and losses["SGD"][-1] > losses["momentum"][-1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_matches_torch_default_kernel_on_cuda():  # pragma: no cover - GPU machines only
    for ours_cls, torch_cls in PAIRS.values():
        start = torch.randn(64, 32, device="cuda")
        a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
        ours, theirs = ours_cls([a], lr=0.01, weight_decay=0.1, amsgrad=True), torch_cls([b], lr=0.01, weight_decay=0.1, amsgrad=True)
        for _ in range(100):
            g = torch.randn(64, 32, device="cuda")
            a.grad, b.grad = g.clone(), g.clone()
            ours.step()
            theirs.step()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert ours.state[a]["step"].device.type == "cpu"


# Challenges


def test_challenges_are_found():
    assert set(challenges_in(lesson)) == {"param_groups_by_module_type", "adamax_step"}


def test_param_groups_by_module_type_solution_passes_and_wrong_attempts_fail():
    assert check_param_groups_by_module_type(param_groups_by_module_type) is None

    def shape_rule(model, weight_decay):
        return param_groups_for_weight_decay(model, weight_decay)

    def tied_twice(model, weight_decay):
        decay = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, Linear))]
        no_decay = [p for p in model.parameters() if not any(p is d for d in decay)]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def reversed_order(model, weight_decay):
        decay, no_decay = param_groups_by_module_type(model, weight_decay)
        return [decay, {"params": no_decay["params"][::-1], "weight_decay": 0.0}]

    def forgets_our_linear(model, weight_decay):
        decayed = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))}
        decayed -= {id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, Embedding))}
        decay = [p for p in model.parameters() if id(p) in decayed]
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": [p for p in model.parameters() if id(p) not in decayed], "weight_decay": 0.0}]

    for wrong in (shape_rule, tied_twice, reversed_order, forgets_our_linear):
        with pytest.raises(AssertionError):
            check_param_groups_by_module_type(wrong)


def test_adamax_solution_passes_and_wrong_attempts_fail():
    assert check_adamax_step(adamax_step) is None

    def without_correction(param, grad, exp_avg, exp_inf, step, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8):
        exp_avg.lerp_(grad, 1 - betas[0])
        torch.maximum(exp_inf.mul_(betas[1]), grad.abs().add_(eps), out=exp_inf)
        param.addcdiv_(exp_avg, exp_inf, value=-lr)

    def eps_after_the_max(param, grad, exp_avg, exp_inf, step, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8):
        exp_avg.lerp_(grad, 1 - betas[0])
        torch.maximum(exp_inf.mul_(betas[1]), grad.abs(), out=exp_inf)
        param.addcdiv_(exp_avg, exp_inf + eps, value=-lr / (1 - betas[0] ** step))

    def not_in_place(param, grad, exp_avg, exp_inf, step, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8):
        param = param.clone()
        adamax_step(param, grad, exp_avg, exp_inf, step, lr=lr, betas=betas, eps=eps)
        return param

    for wrong in (without_correction, eps_after_the_max, not_in_place):
        with pytest.raises(AssertionError):
            check_adamax_step(wrong)
