"""Proofs for the mixed-precision lesson: autocast's dtypes, and LossScaler against torch.amp.GradScaler."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.training.mixed_precision import (
    LossScaler,
    autocast_dtypes,
    check_scale_history,
    check_scaled_accumulation_step,
    plot_loss_scale,
    run_with_scaler,
    scale_history,
    scaled_accumulation_step,
    small_loss_gradient,
)

needs_grad_scaler = pytest.mark.skipif(
    not hasattr(torch.amp, "GradScaler"), reason="torch.amp.GradScaler(device) arrived in torch 2.3"
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torch_scaler(**kwargs):
    return torch.amp.GradScaler("cpu", **kwargs)


# Autocast: what the lesson prints, checked wider


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpu_autocast_groups(dtype):
    from_float32 = autocast_dtypes("cpu", dtype)
    from_low = autocast_dtypes("cpu", dtype, input_dtype=dtype)
    for op in ("linear", "matmul", "conv1d"):
        assert from_float32[op] == from_low[op] == dtype, op
    for op in ("mse_loss", "cross_entropy"):
        assert from_float32[op] == from_low[op] == torch.float32, op
    for op in ("relu", "exp", "sum", "softmax", "log_softmax", "layer_norm"):
        assert (from_float32[op], from_low[op]) == (torch.float32, dtype), op


def test_autocast_dtypes_defaults_and_errors():
    assert autocast_dtypes()["linear"] == torch.bfloat16
    with pytest.raises(ValueError, match="device_type must be 'cpu' or 'cuda', got 'mps'"):
        autocast_dtypes("mps")
    with pytest.raises(ValueError, match="dtype must be a floating-point torch.dtype, got torch.int64"):
        autocast_dtypes("cpu", torch.int64)
    with pytest.raises(TypeError, match="input_dtype must be a floating-point torch.dtype, got 'float'"):
        autocast_dtypes("cpu", input_dtype="float")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_autocast_dtypes_refuses_missing_cuda():
    with pytest.raises(RuntimeError, match="device_type='cuda' needs a CUDA device"):
        autocast_dtypes("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_autocast_float32_list_is_longer():
    on_cuda = autocast_dtypes("cuda", torch.float16, input_dtype=torch.float16)
    assert on_cuda["linear"] == on_cuda["matmul"] == on_cuda["conv1d"] == torch.float16
    for op in ("softmax", "log_softmax", "layer_norm", "sum", "exp", "mse_loss", "cross_entropy"):
        assert on_cuda[op] == torch.float32, op
    assert on_cuda["relu"] == torch.float16
    assert autocast_dtypes("cuda")["linear"] == torch.float16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_parameters_and_gradients_stay_float32(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 4))
    with torch.autocast("cpu", dtype=dtype):
        logits = model(torch.randn(32, 8))
        loss = F.cross_entropy(logits, torch.randint(0, 4, (32,)))
    loss.backward()
    assert logits.dtype == dtype and loss.dtype == torch.float32
    for name, p in model.named_parameters():
        assert p.dtype == p.grad.dtype == torch.float32, name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_hand_written_loss_is_on_no_autocast_list(dtype):
    # The course's own cross_entropy (Loss potions) follows its input's dtype under autocast; F's is cast up.
    from torchenstein.nn.losses import cross_entropy

    torch.manual_seed(0)
    model = nn.Linear(8, 10)
    x, y = torch.randn(64, 8), torch.randint(0, 10, (64,))
    with torch.autocast("cpu", dtype=dtype):
        logits = model(x)
        ours, fixed, builtin = cross_entropy(logits, y), cross_entropy(logits.float(), y), F.cross_entropy(logits, y)
    assert logits.dtype == ours.dtype == dtype
    assert fixed.dtype == builtin.dtype == torch.float32
    torch.testing.assert_close(fixed, builtin)
    torch.testing.assert_close(ours, builtin.to(dtype))  # the same loss, rounded to the low dtype


def test_small_loss_gradient_underflows_in_float16_only():
    reference = small_loss_gradient(None)
    assert reference.dtype == torch.float32 and (reference != 0).all()
    assert (small_loss_gradient(torch.float16) == 0).all()
    for dtype, scale in ((torch.bfloat16, 1.0), (torch.float16, 2.0**16), (torch.float16, 2.0**10)):
        grad = small_loss_gradient(dtype, scale=scale)
        assert (grad != 0).all() and ((grad - reference).norm() / reference.norm()) < 0.01, (dtype, scale)
    with pytest.raises(ValueError, match="dtype must be torch.float16, torch.bfloat16 or None, got torch.float64"):
        small_loss_gradient(torch.float64)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="scale must be a positive finite number"):
            small_loss_gradient(torch.float16, scale=bad)
    for bad in (True, "2"):
        with pytest.raises(TypeError, match="scale must be a real number"):
            small_loss_gradient(torch.float16, scale=bad)


def test_bfloat16_range_is_float32_range():
    bf16, f32, f16 = (torch.finfo(d) for d in (torch.bfloat16, torch.float32, torch.float16))
    assert bf16.tiny == f32.tiny and bf16.max / f32.max > 0.99
    assert f16.max == 65504.0 and torch.tensor(1e-8).half().item() == 0.0
    assert torch.tensor(1e-8).bfloat16().item() > 0


# LossScaler against GradScaler: whole training runs


FAULTS = [
    {"overflow_steps": [], "nan_steps": []},
    {"overflow_steps": [0, 1, 2, 3, 50, 51, 120, 199], "nan_steps": [77, 78]},
    {"overflow_steps": list(range(5, 200, 13)), "nan_steps": [100]},
]
SETTINGS = [
    {"init_scale": 2.0**16, "growth_interval": 7},
    {"init_scale": 1000.0, "growth_factor": 1.5, "backoff_factor": 0.3, "growth_interval": 4},
    {"init_scale": 3.0, "growth_factor": 3.7, "backoff_factor": 0.9, "growth_interval": 1},
]


def _assert_same_run(ours, theirs):
    assert ours["scale"] == theirs["scale"]
    assert ours["stepped"] == theirs["stepped"]
    assert ours["loss"] == theirs["loss"]
    for a, b in zip(ours["params"], theirs["params"], strict=True):
        assert torch.equal(a, b)


@needs_grad_scaler
@pytest.mark.parametrize(("options", "faults"), list(zip(SETTINGS, FAULTS, strict=True)))
def test_float32_runs_match_grad_scaler(options, faults):
    # Each scaler setting meets a different pattern of faults: every setting, and every pattern, once.
    ours = run_with_scaler(LossScaler(**options), steps=200, **faults)
    theirs = run_with_scaler(torch_scaler(**options), steps=200, **faults)
    _assert_same_run(ours, theirs)
    assert ours["stepped"].count(False) == len(set(faults["overflow_steps"]) | set(faults["nan_steps"]))


@needs_grad_scaler
@pytest.mark.parametrize(("dtype", "max_norm"), [(torch.float16, None), (torch.float16, 0.05), (torch.bfloat16, 0.5)])
def test_autocast_runs_match_grad_scaler(dtype, max_norm):
    options = {"init_scale": 2.0**16, "growth_interval": 10}
    faults = {"overflow_steps": [30, 31], "nan_steps": [90]}
    ours = run_with_scaler(LossScaler(**options), steps=100, dtype=dtype, max_norm=max_norm, **faults)
    theirs = run_with_scaler(torch_scaler(**options), steps=100, dtype=dtype, max_norm=max_norm, **faults)
    _assert_same_run(ours, theirs)
    if dtype == torch.float16:  # overflows happen by themselves too
        assert ours["stepped"].count(False) > 3


@needs_grad_scaler
def test_scale_stops_below_float32_infinity():
    options = {"init_scale": 2.0**120, "growth_factor": 4.0, "growth_interval": 1}
    ours = run_with_scaler(LossScaler(**options), steps=8)
    theirs = run_with_scaler(torch_scaler(**options), steps=8)
    _assert_same_run(ours, theirs)
    assert ours["scale"][-1] == 2.0**126 and all(math.isfinite(s) for s in ours["scale"])


def _lockstep(make_ours, make_theirs, overflows, *, seed=0, swap_at=None):
    """Drive both scalers on identical models and gradients, comparing state_dicts after every update."""
    torch.manual_seed(seed)
    model_a = nn.Linear(3, 2)
    model_b = copy.deepcopy(model_a)
    opt_a = torch.optim.Adam(model_a.parameters(), lr=0.01)
    opt_b = torch.optim.Adam(model_b.parameters(), lr=0.01)
    ours, theirs = make_ours(), make_theirs()
    x = torch.randn(5, 3)
    for step, overflow in enumerate(overflows):
        for model, opt, scaler in ((model_a, opt_a, ours), (model_b, opt_b, theirs)):
            opt.zero_grad()
            scaler.scale(model(x).pow(2).mean()).backward()
            if overflow:
                model.bias.grad[1] = -math.inf
            scaler.step(opt)
            scaler.update()
        assert ours.state_dict() == theirs.state_dict(), step
        if step == swap_at:
            # Checkpoints move across: each scaler continues from the other's state.
            state_ours, state_theirs = ours.state_dict(), theirs.state_dict()
            ours, theirs = make_ours(), make_theirs()
            ours.load_state_dict(state_theirs)
            theirs.load_state_dict(state_ours)
    assert torch.equal(model_a.weight, model_b.weight) and torch.equal(model_a.bias, model_b.bias)
    assert opt_a.state_dict()["state"][0]["step"] == opt_b.state_dict()["state"][0]["step"]


@needs_grad_scaler
@pytest.mark.parametrize("swap_at", [None, 0, 17, 40])
def test_state_dict_every_step_and_across_checkpoints(swap_at):
    overflows = [i in (2, 3, 20, 21, 22, 35) for i in range(60)]
    _lockstep(lambda: LossScaler(init_scale=512.0, growth_interval=3),
              lambda: torch_scaler(init_scale=512.0, growth_interval=3), overflows, swap_at=swap_at)


@needs_grad_scaler
@settings(max_examples=15)
@given(
    overflows=st.lists(st.booleans(), max_size=40),
    growth_factor=st.sampled_from([2.0, 1.5, 1.01, 10.0]),
    backoff_factor=st.sampled_from([0.5, 0.25, 0.9, 0.1]),
    growth_interval=st.integers(1, 6),
    init_scale=st.sampled_from([2.0**16, 1.0, 0.1, 3e37]),
)
def test_scale_history_matches_grad_scaler(overflows, growth_factor, backoff_factor, growth_interval, init_scale):
    options = {"init_scale": init_scale, "growth_factor": growth_factor, "backoff_factor": backoff_factor,
               "growth_interval": growth_interval}
    theirs = torch_scaler(**options)
    weight = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([weight], lr=0.0)
    expected = []
    for overflow in overflows:
        theirs.scale(weight.sum())  # GradScaler creates its scale tensor at the first scale()
        weight.grad = torch.tensor([1.0, math.nan if overflow else 2.0])
        theirs.step(optimizer)
        theirs.update()
        expected.append(theirs.get_scale())
    assert scale_history(overflows, **options) == expected


@needs_grad_scaler
def test_two_optimizers_share_one_scaler():
    def run(scaler):
        torch.manual_seed(0)
        a, b = nn.Linear(3, 3), nn.Linear(3, 1)
        opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
        x = torch.randn(4, 3)
        history = []
        for step in range(12):
            opt_a.zero_grad()
            opt_b.zero_grad()
            scaler.scale(b(a(x)).pow(2).mean()).backward()
            if step in (3, 7):
                a.weight.grad[0, 0] = math.inf  # only the first optimizer's gradients overflow
            before_b = b.weight.detach().clone()
            scaler.unscale_(opt_a)
            scaler.step(opt_a)
            scaler.step(opt_b)
            scaler.update()
            history.append((scaler.get_scale(), not torch.equal(before_b, b.weight)))
        return history, [p.detach().clone() for p in (*a.parameters(), *b.parameters())]

    ours, ours_params = run(LossScaler(init_scale=64.0, growth_interval=2))
    theirs, their_params = run(torch_scaler(init_scale=64.0, growth_interval=2))
    assert ours == theirs
    # The clean optimizer steps even when the other overflowed; the shared scale still backs off.
    assert ours[3] == (ours[2][0] / 2, True)
    assert all(torch.equal(p, q) for p, q in zip(ours_params, their_params, strict=True))


@needs_grad_scaler
def test_bfloat16_parameters_unscale_like_grad_scaler():
    for scaler in (LossScaler(init_scale=3.0), torch_scaler(init_scale=3.0)):
        torch.manual_seed(0)
        model = nn.Linear(6, 2).bfloat16()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler.scale(model(torch.randn(5, 6).bfloat16()).float().pow(2).mean()).backward()
        scaler.unscale_(optimizer)
        grads = [p.grad.clone() for p in model.parameters()]
        if isinstance(scaler, LossScaler):
            ours = grads
    for a, b in zip(ours, grads, strict=True):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b)


@needs_grad_scaler
def test_disabled_scaler_is_a_pass_through():
    loss = torch.tensor(2.0)
    for scaler in (LossScaler(enabled=False), torch_scaler(enabled=False)):
        assert not scaler.is_enabled()
        assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
        weight = nn.Parameter(torch.ones(2))
        optimizer = torch.optim.SGD([weight], lr=1.0)
        weight.grad = torch.tensor([math.inf, 1.0])
        scaler.unscale_(optimizer)
        scaler.step(optimizer)  # even an inf gradient is applied: nothing checks it
        scaler.update()
        scaler.load_state_dict({})
        assert torch.isinf(weight[0]) and weight[1].item() == 0.0


@needs_grad_scaler
def test_scale_outputs_like_grad_scaler():
    for scaler in (LossScaler(init_scale=4.0), torch_scaler(init_scale=4.0)):
        half = scaler.scale(torch.tensor(1.5, dtype=torch.float16))
        assert half.dtype == torch.float32 and half.item() == 6.0  # a 0-d float32 scale promotes 0-d half
        assert scaler.scale(torch.ones(3, dtype=torch.float16)).dtype == torch.float16
        pair = scaler.scale((torch.tensor(1.0), torch.tensor(2.0)))
        assert isinstance(pair, tuple) and [t.item() for t in pair] == [4.0, 8.0]
        assert [t.item() for t in scaler.scale(t for t in [torch.tensor(0.5)])] == [2.0]
        with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
            scaler.scale([1.0])


@needs_grad_scaler
def test_step_returns_what_the_optimizer_returns_unless_skipped():
    class Counting(torch.optim.SGD):
        def step(self, closure=None):
            super().step(closure)
            return 42

    for scaler in (LossScaler(), torch_scaler()):
        weight = nn.Parameter(torch.ones(2))
        optimizer = Counting([weight], lr=0.1)
        scaler.scale(weight.sum()).backward()
        assert scaler.step(optimizer) == 42
        scaler.update()
        weight.grad = torch.tensor([math.nan, 0.0])
        assert scaler.step(optimizer) is None
        scaler.update()


@needs_grad_scaler
def test_update_with_new_scale():
    for new_scale in (0.1, 300.0, torch.tensor(5.5)):
        results = []
        for scaler in (LossScaler(), torch_scaler()):
            scaler.scale(torch.tensor(1.0))
            scaler.update(new_scale)
            results.append(scaler.get_scale())
        assert results[0] == results[1]


@needs_grad_scaler
def test_get_scale_before_the_first_scale_differs():
    # GradScaler returns init_scale as given until scale() creates its float32 tensor; ours rounds at once.
    theirs, ours = torch_scaler(init_scale=0.1), LossScaler(init_scale=0.1)
    assert theirs.get_scale() == 0.1
    assert ours.get_scale() == torch.tensor(0.1).item() != 0.1
    theirs.scale(torch.tensor(1.0))
    assert theirs.get_scale() == ours.get_scale()


@needs_grad_scaler
@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("unscale twice", r"unscale_\(\) has already been called on this optimizer since the last update\(\)."),
        ("unscale after step", r"unscale_\(\) is being called after step\(\)."),
        ("step twice", r"step\(\) has already been called since the last update\(\)."),
        ("closure", "Closure use is not currently supported if GradScaler is enabled."),
    ],
)
def test_misuse_raises_the_same_runtime_errors(action, message):
    for scaler in (LossScaler(), torch_scaler()):
        weight = nn.Parameter(torch.ones(2))
        optimizer = torch.optim.SGD([weight], lr=0.1)
        scaler.scale(weight.sum()).backward()
        with pytest.raises(RuntimeError, match=message):
            if action == "unscale twice":
                scaler.unscale_(optimizer)
                scaler.unscale_(optimizer)
            elif action == "unscale after step":
                scaler.step(optimizer)
                scaler.unscale_(optimizer)
            elif action == "step twice":
                scaler.step(optimizer)
                scaler.step(optimizer)
            else:
                scaler.step(optimizer, closure=lambda w=weight: w.sum())


@needs_grad_scaler
def test_float16_gradients_are_refused():
    for scaler in (LossScaler(), torch_scaler()):
        model = nn.Linear(4, 2).half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler.scale(model(torch.randn(3, 4).half()).float().sum()).backward()
        with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients."):
            scaler.step(optimizer)


def test_nothing_checked_is_an_error():
    scaler = LossScaler()
    with pytest.raises(RuntimeError, match="No inf checks were recorded prior to update."):
        scaler.update()
    if hasattr(torch.amp, "GradScaler"):
        with pytest.raises(AssertionError):
            torch_scaler().update()  # GradScaler asserts instead
    weight = nn.Parameter(torch.ones(2))  # no gradient at all
    with pytest.raises(RuntimeError, match="No inf checks were recorded for this optimizer."):
        scaler.step(torch.optim.SGD([weight], lr=0.1))
    with pytest.raises(RuntimeError, match="The source state dict is empty"):
        scaler.load_state_dict({})
    with pytest.raises(KeyError):
        scaler.load_state_dict({"scale": 2.0})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"init_scale": 0.0}, ValueError, "init_scale must be a positive finite number, got 0.0"),
        ({"init_scale": math.inf}, ValueError, "init_scale must be a positive finite number, got inf"),
        ({"init_scale": "big"}, TypeError, "init_scale must be a real number, got 'big'"),
        ({"growth_factor": "2"}, TypeError, "growth_factor must be a real number, got '2'"),
        ({"backoff_factor": None}, TypeError, "backoff_factor must be a real number, got None"),
        ({"growth_factor": 1.0}, ValueError, "growth_factor must be a number above 1.0, got 1.0"),
        ({"growth_factor": math.nan}, ValueError, "growth_factor must be a number above 1.0, got nan"),
        ({"backoff_factor": 0.0}, ValueError, r"backoff_factor must be a number between 0 and 1 \(exclusive\), got 0.0"),
        ({"backoff_factor": 1.0}, ValueError, "backoff_factor must be a number between 0 and 1"),
        ({"growth_interval": 0}, ValueError, "growth_interval must be at least 1, got 0"),
        ({"growth_interval": 2.5}, TypeError, "growth_interval must be an int, got 2.5"),
        ({"growth_interval": True}, TypeError, "growth_interval must be an int, got True"),
        ({"enabled": 1}, TypeError, "enabled must be a bool, got 1"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LossScaler(**kwargs)


@needs_grad_scaler
def test_grad_scaler_asserts_where_we_raise_value_error():
    with pytest.raises(AssertionError, match="The growth factor must be > 1.0."):
        torch_scaler(growth_factor=1.0)
    with pytest.raises(AssertionError, match="The backoff factor must be < 1.0."):
        torch_scaler(backoff_factor=1.0)
    torch_scaler(growth_interval=0, init_scale=-1.0)  # not checked at all there


def test_repr_and_state_dict_keys():
    scaler = LossScaler(init_scale=8.0, growth_interval=5)
    assert repr(scaler) == "LossScaler(scale=8, growth_factor=2, backoff_factor=0.5, growth_interval=5, enabled=True)"
    assert list(scaler.state_dict()) == ["scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"]


# Clipping, the traps, the run helper and the figure


def test_clipping_before_unscaling_shrinks_the_update_by_the_scale():
    def used_norm(unscale_first):
        torch.manual_seed(0)
        model = nn.Linear(8, 4)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = LossScaler()
        scaler.scale(F.cross_entropy(model(torch.randn(16, 8)), torch.randint(0, 4, (16,)))).backward()
        if unscale_first:
            scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        scaler.step(optimizer)
        scaler.update()
        return torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()

    assert math.isclose(used_norm(True), 0.5, rel_tol=1e-5)
    assert math.isclose(used_norm(False), 0.5 / 2.0**16, rel_tol=1e-5)


def test_overflow_is_caught_even_after_clipping():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = LossScaler(init_scale=16.0)
    before = model.weight.detach().clone()
    scaler.scale(model(torch.randn(2, 3)).sum()).backward()
    model.weight.grad[0, 0] = math.inf
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # turns the inf gradient into NaNs and zeros
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(model.weight, before) and scaler.get_scale() == 8.0


def test_run_with_scaler_records_and_validates():
    run = run_with_scaler(LossScaler(init_scale=4.0, growth_interval=2), steps=6, overflow_steps=[2], nan_steps=[4])
    assert run["stepped"] == [True, True, False, True, False, True]
    assert run["scale"] == [4.0, 8.0, 4.0, 4.0, 2.0, 2.0]
    assert len(run["loss"]) == 6 and run["loss"][-1] < run["loss"][0]
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        run_with_scaler(LossScaler(), steps=0)
    for bad in (2.0, True):
        with pytest.raises(TypeError, match="steps must be an int, got"):
            run_with_scaler(LossScaler(), steps=bad)


def test_one_loop_serves_every_precision():
    def train(dtype):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        scaler = LossScaler(enabled=dtype == torch.float16)
        x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))
        for _ in range(30):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss.item()

    losses = [train(dtype) for dtype in (None, torch.bfloat16, torch.float16)]
    assert all(loss < 1.0 for loss in losses) and max(losses) - min(losses) < 0.05


def test_plot_loss_scale():
    fig = plot_loss_scale(steps=60)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 1
    assert ax.lines[0].get_ydata()[0] == 16.0


# Challenges


def test_scale_history_solution_and_wrong_attempts():
    assert check_scale_history(scale_history) is None
    assert scale_history([]) == []
    with pytest.raises(ValueError, match="growth_interval must be at least 1"):
        scale_history([True], growth_interval=0)

    def never_resets(overflows, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        scale, good, out = init_scale, 0, []
        for overflow in overflows:
            good += 1
            if overflow:
                scale *= backoff_factor
            elif good % growth_interval == 0:
                scale *= growth_factor
            out.append(scale)
        return out

    def grows_to_infinity(overflows, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        scale, good, out = init_scale, 0, []
        for overflow in overflows:
            if overflow:
                scale, good = scale * backoff_factor, 0
            else:
                good += 1
                if good == growth_interval:
                    scale, good = float(torch.tensor(scale * growth_factor, dtype=torch.float32)), 0
            out.append(scale)
        return out

    def off_by_one(overflows, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        scale, good, out = init_scale, 0, []
        for overflow in overflows:
            if overflow:
                scale, good = scale * backoff_factor, 0
            elif good == growth_interval:
                scale, good = scale * growth_factor, 0
            else:
                good += 1
            out.append(scale)
        return out

    def crashes(overflows, **kwargs):
        raise NotImplementedError

    for wrong in (never_resets, grows_to_infinity, off_by_one, crashes):
        with pytest.raises(AssertionError):
            check_scale_history(wrong)


def test_scaled_accumulation_solution_and_wrong_attempts():
    assert check_scaled_accumulation_step(scaled_accumulation_step) is None
    with pytest.raises(ValueError, match=r"equal-sized batches, got sizes \[2, 3\]"):
        scaled_accumulation_step(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), LossScaler(),
                                 [(torch.randn(2, 2), torch.zeros(2, dtype=torch.long)),
                                  (torch.randn(3, 2), torch.zeros(3, dtype=torch.long))], F.cross_entropy)
    with pytest.raises(ValueError, match=r"got sizes \[\]"):
        scaled_accumulation_step(nn.Linear(2, 2), None, LossScaler(), [], F.cross_entropy)

    def no_division(model, optimizer, scaler, micro_batches, loss_fn):
        optimizer.zero_grad()
        total = 0.0
        for x, y in micro_batches:
            loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            total += loss.item() / len(micro_batches)
        scaler.step(optimizer)
        scaler.update()
        return total

    def update_per_micro_batch(model, optimizer, scaler, micro_batches, loss_fn):
        optimizer.zero_grad()
        total = 0.0
        for x, y in micro_batches:
            loss = loss_fn(model(x), y) / len(micro_batches)
            scaler.scale(loss).backward()
            total += loss.item()
            scaler.update()
        scaler.step(optimizer)
        return total

    def stale_gradients(model, optimizer, scaler, micro_batches, loss_fn):
        total = 0.0
        for x, y in micro_batches:
            loss = loss_fn(model(x), y) / len(micro_batches)
            scaler.scale(loss).backward()
            total += loss.item()
        scaler.step(optimizer)
        scaler.update()
        return total

    def unscaled_backward(model, optimizer, scaler, micro_batches, loss_fn):
        optimizer.zero_grad()
        total = 0.0
        for x, y in micro_batches:
            loss = loss_fn(model(x), y) / len(micro_batches)
            loss.backward()  # forgot scaler.scale: step divides by S anyway
            total += loss.item()
        scaler.step(optimizer)
        scaler.update()
        return total

    for wrong in (no_division, update_per_micro_batch, stale_gradients, unscaled_backward):
        with pytest.raises(AssertionError):
            check_scaled_accumulation_step(wrong)
