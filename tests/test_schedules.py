"""The thorough proof of the schedules lesson: every schedule against PyTorch's schedulers, over whole runs."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

import torchenstein.training.schedules as lesson
from torchenstein.challenges import challenges_in
from torchenstein.training.schedules import (
    as_multiplier,
    check_cosine_warm_restarts,
    check_inverse_sqrt,
    cosine_decay,
    cosine_warm_restarts,
    inverse_sqrt,
    linear_decay,
    linear_warmup,
    one_cycle,
    one_cycle_momentum,
    plot_schedules,
    set_lr,
    step_decay,
    warmup_cosine,
)


def _optimizer(lr: float = 0.5, groups: int = 1, kind: str = "sgd") -> torch.optim.Optimizer:
    params = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _run(optimizer, scheduler, steps: int) -> list[list[float]]:
    # The rates each optimizer step uses, per group: read before the step, scheduler stepped after it.
    used = []
    for _ in range(steps):
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return used


def _gap(theirs: list[float], ours: list[float]) -> float:
    return max(abs(a - b) / abs(b) if b else abs(a) for a, b in zip(theirs, ours, strict=True))


@contextlib.contextmanager
def _quiet():
    # Older releases warn from inside SequentialLR at its milestone; the values are what we test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


# The pure functions


def test_pure_functions_by_hand():
    assert [linear_warmup(t, warmup_steps=3, base_lr=2.0) for t in range(5)] == [0.5, 1.0, 1.5, 2.0, 2.0]
    assert linear_warmup(0, warmup_steps=0, base_lr=2.0) == 2.0
    assert cosine_decay(0, total_steps=10, base_lr=1.0, min_lr=0.2) == 1.0
    assert cosine_decay(10, total_steps=10, base_lr=1.0, min_lr=0.2) == 0.2
    assert math.isclose(cosine_decay(5, total_steps=10, base_lr=1.0, min_lr=0.2), 0.6)
    assert cosine_decay(11, total_steps=10, base_lr=1.0, min_lr=0.2) == 0.2  # held at the floor
    assert math.isclose(linear_decay(5, total_steps=10, base_lr=1.0, min_lr=0.2), 0.6)
    assert linear_decay(50, total_steps=10, base_lr=1.0, min_lr=0.2) == 0.2
    assert step_decay(29, step_size=10, base_lr=1.0, gamma=0.5) == 0.25
    assert warmup_cosine(0, warmup_steps=0, total_steps=10, base_lr=1.0) == 1.0  # no warm-up: a plain cosine
    assert warmup_cosine(4, warmup_steps=4, total_steps=10, base_lr=1.0) == 1.0  # the peak, once
    assert warmup_cosine(3, warmup_steps=4, total_steps=10, base_lr=1.0) == 0.8


@settings(max_examples=12)
@given(
    warmup=st.integers(0, 50),
    extra=st.integers(1, 200),
    base=st.floats(1e-6, 1.0),
    ratio=st.floats(0.0, 1.0),
)
def test_warmup_cosine_rises_then_falls_within_bounds(warmup, extra, base, ratio):
    total, min_lr = warmup + extra, base * ratio
    lrs = [warmup_cosine(t, warmup_steps=warmup, total_steps=total, base_lr=base, min_lr=min_lr) for t in range(total + 3)]
    assert math.isclose(lrs[warmup], base, rel_tol=1e-15) and lrs[-1] == min_lr
    assert all(0 < a < b for a, b in zip(lrs[:warmup], lrs[1 : warmup + 1], strict=True))  # a ramp that never starts at 0
    assert all(a >= b - 1e-15 * base for a, b in zip(lrs[warmup:], lrs[warmup + 1 :], strict=False))
    assert all(min_lr - 1e-15 * base <= lr <= base * (1 + 1e-15) for lr in lrs[warmup:])


def test_bad_arguments_raise_naming_them():
    value_errors = [
        (lambda: linear_warmup(-1, warmup_steps=3, base_lr=1.0), "step must be at least 0, got -1"),
        (lambda: linear_warmup(0, warmup_steps=-1, base_lr=1.0), "warmup_steps must be at least 0, got -1"),
        (lambda: cosine_decay(0, total_steps=0, base_lr=1.0), "total_steps must be at least 1, got 0"),
        (lambda: cosine_decay(0, total_steps=5, base_lr=-1.0), "base_lr must be a finite number >= 0, got -1.0"),
        (lambda: cosine_decay(0, total_steps=5, base_lr=float("inf")), "base_lr must be a finite number >= 0, got inf"),
        (lambda: linear_decay(0, total_steps=5, base_lr=1.0, min_lr=float("nan")), "min_lr must be a finite number >= 0, got nan"),
        (lambda: step_decay(0, step_size=0, base_lr=1.0), "step_size must be at least 1, got 0"),
        (lambda: step_decay(0, step_size=2, base_lr=1.0, gamma=-0.5), "gamma must be a finite number >= 0, got -0.5"),
        (lambda: warmup_cosine(0, warmup_steps=5, total_steps=5, base_lr=1.0), "total_steps must be larger than warmup_steps=5, got 5"),
        (lambda: as_multiplier(lambda t: 1.0, base_lr=0.0), "base_lr must be a finite number > 0 to divide by it, got 0.0"),
        (lambda: one_cycle(11, total_steps=10, max_lr=1.0), "step must be at most total_steps=10, got 11"),
        (lambda: one_cycle(0, total_steps=10, max_lr=1.0, pct_start=1.5), r"pct_start must be a float in \[0, 1\], got 1.5"),
        (lambda: one_cycle(0, total_steps=10, max_lr=1.0, anneal_strategy="cosine"), "anneal_strategy must be 'cos' or 'linear', got 'cosine'"),
        (lambda: one_cycle(0, total_steps=10, max_lr=1.0, div_factor=0), "div_factor must be a finite number > 0, got 0"),
        (lambda: one_cycle_momentum(0, total_steps=10, max_momentum=1.5), r"max_momentum must be a number in \[0, 1\], got 1.5"),
        (lambda: plot_schedules(total_steps=5), "total_steps must be at least 20, got 5"),
        (lambda: set_lr(_optimizer(), -1.0), "lr must be a finite number >= 0, got -1.0"),
    ]
    type_errors = [
        (lambda: linear_warmup(1.0, warmup_steps=3, base_lr=1.0), "step must be an int, got 1.0"),
        (lambda: linear_warmup(True, warmup_steps=3, base_lr=1.0), "step must be an int, got True"),
        (lambda: cosine_decay(0, total_steps=5, base_lr="1e-3"), "base_lr must be a real number, got '1e-3'"),
        (lambda: one_cycle(0, total_steps=10, max_lr=1.0, pct_start=1), "pct_start must be a float, got 1"),
        (lambda: one_cycle(0, total_steps=10, max_lr=1.0, three_phase=1), "three_phase must be a bool, got 1"),
        (lambda: set_lr(_optimizer(), torch.tensor(0.1)), r"lr must be a real number, got tensor\(0.1000\)"),
    ]
    for errors, error in ((value_errors, ValueError), (type_errors, TypeError)):
        for call, message in errors:
            with pytest.raises(error, match=message):
                call()
    # OneCycleLR, too, insists on a float pct_start.
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(_optimizer(), max_lr=1.0, total_steps=10, pct_start=1)


# Against PyTorch's schedulers, over whole runs


@pytest.mark.parametrize("T, base, eta_min", [(1, 0.5, 0.0), (7, 0.5, 0.01), (100, 3e-4, 3e-5), (1000, 1.0, 0.0)])
def test_cosine_equals_the_closed_form_bitwise_and_the_chain_to_1e13(T, base, eta_min):
    optimizer = _optimizer(base)
    scheduler = CosineAnnealingLR(optimizer, T_max=T, eta_min=eta_min)
    chain = [lrs[0] for lrs in _run(optimizer, scheduler, T)] + [scheduler.get_last_lr()[0]]
    ours = [cosine_decay(t, total_steps=T, base_lr=base, min_lr=eta_min) for t in range(T + 1)]
    closed = []
    for t in range(T + 1):
        scheduler.last_epoch = t
        closed.append(scheduler._get_closed_form_lr()[0])
    assert closed == ours
    # The chain multiplies T rounded ratios together: a relative drift of a few hundred ulps at most here.
    assert _gap(chain, ours) < 1e-13


def test_the_chain_drifts_more_over_longer_runs():
    gaps = []
    for T in (100, 3000):
        optimizer = _optimizer()
        chain = [lrs[0] for lrs in _run(optimizer, CosineAnnealingLR(optimizer, T_max=T, eta_min=1e-4), T)]
        gaps.append(_gap(chain, [cosine_decay(t, total_steps=T, base_lr=0.5, min_lr=1e-4) for t in range(T)]))
    assert 0 < gaps[0] < gaps[1] < 1e-13


def test_where_it_differs_past_total_steps_ours_holds_the_floor_pytorch_climbs_back():
    optimizer = _optimizer()
    scheduler = CosineAnnealingLR(optimizer, T_max=10, eta_min=0.0)
    chain = [lrs[0] for lrs in _run(optimizer, scheduler, 21)]
    assert math.isclose(chain[20], 0.5, rel_tol=1e-12)  # a full period: back at the top
    assert cosine_decay(20, total_steps=10, base_lr=0.5) == 0.0


def test_step_decay_equals_steplr_closed_form_bitwise_and_chain_to_1e15():
    for step_size, gamma in ((1, 0.9), (7, 0.3), (10, 0.1)):
        optimizer = _optimizer()
        scheduler = StepLR(optimizer, step_size=step_size, gamma=gamma)
        chain = [lrs[0] for lrs in _run(optimizer, scheduler, 80)]
        ours = [step_decay(t, step_size=step_size, base_lr=0.5, gamma=gamma) for t in range(80)]
        closed = []
        for t in range(80):
            scheduler.last_epoch = t
            closed.append(scheduler._get_closed_form_lr()[0])
        assert closed == ours
        assert _gap(chain, ours) < 1e-14


def test_linear_schedules_equal_linearlr_to_1e15():
    optimizer = _optimizer(0.5)
    chain = [lrs[0] for lrs in _run(optimizer, LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=50), 60)]
    assert _gap(chain, [linear_decay(t, total_steps=50, base_lr=0.5, min_lr=0.05) for t in range(60)]) < 1e-15
    for W in (1, 5, 40):
        optimizer = _optimizer(0.5)
        chain = [lrs[0] for lrs in _run(optimizer, LinearLR(optimizer, start_factor=1 / (W + 1), total_iters=W), W + 5)]
        assert _gap(chain, [linear_warmup(t, warmup_steps=W, base_lr=0.5) for t in range(W + 5)]) < 1e-15


@pytest.mark.parametrize(
    "name, schedule",
    [
        ("warmup_cosine", partial(warmup_cosine, warmup_steps=10, total_steps=100, base_lr=3e-4, min_lr=3e-5)),
        ("linear_decay", partial(linear_decay, total_steps=80, base_lr=3e-4)),
        ("step_decay", partial(step_decay, step_size=9, base_lr=3e-4, gamma=0.7)),
        ("one_cycle", partial(one_cycle, total_steps=120, max_lr=3e-4)),
    ],
)
def test_lambdalr_with_as_multiplier_follows_every_schedule(name, schedule):
    optimizer = _optimizer(3e-4)
    used = [lrs[0] for lrs in _run(optimizer, LambdaLR(optimizer, as_multiplier(schedule, 3e-4)), 120)]
    ours = [schedule(t) for t in range(120)]
    # base_lr * (lr / base_lr) rounds at most twice: within 1e-15, not always bitwise.
    assert _gap(used, ours) < 1e-15, name


def test_lambdalr_scales_each_group_by_its_own_lr():
    optimizer = torch.optim.SGD(
        [{"params": [torch.zeros(1, requires_grad=True)], "lr": 1e-3}, {"params": [torch.zeros(1, requires_grad=True)]}],
        lr=1e-2,
    )
    schedule = partial(warmup_cosine, warmup_steps=3, total_steps=20, base_lr=1.0)
    used = _run(optimizer, LambdaLR(optimizer, as_multiplier(schedule, 1.0)), 20)
    for t, (first, second) in enumerate(used):
        assert math.isclose(first, 1e-3 * schedule(t), rel_tol=1e-15)
        assert math.isclose(second, 1e-2 * schedule(t), rel_tol=1e-15)


def test_set_lr_drives_every_group():
    optimizer = _optimizer(groups=3)
    set_lr(optimizer, 0.125)
    assert [group["lr"] for group in optimizer.param_groups] == [0.125] * 3


@pytest.mark.parametrize("W, T, eta_min", [(1, 10, 0.0), (10, 100, 3e-5), (25, 60, 1e-4), (100, 1000, 0.0)])
def test_sequentiallr_warmup_cosine_recipe_over_a_whole_run(W, T, eta_min):
    with _quiet():
        optimizer = _optimizer(3e-4, groups=2)
        warmup = LinearLR(optimizer, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W)
        cosine = CosineAnnealingLR(optimizer, T_max=T - W, eta_min=eta_min)
        used = _run(optimizer, SequentialLR(optimizer, [warmup, cosine], milestones=[W]), T)
    ours = [warmup_cosine(t, warmup_steps=W, total_steps=T, base_lr=3e-4, min_lr=eta_min) for t in range(T)]
    for group in range(2):
        assert _gap([lrs[group] for lrs in used], ours) < 1e-13
    assert used[W][0] == 3e-4  # the cosine restarts from its closed form at the milestone: exactly the peak


def test_sequentiallr_milestone_findings():
    W, T = 10, 100

    def run(total_iters, cosine_steps):
        with _quiet():
            optimizer = _optimizer(1.0)
            warmup = LinearLR(optimizer, start_factor=1 / (W + 1), end_factor=1.0, total_iters=total_iters)
            cosine = CosineAnnealingLR(optimizer, T_max=cosine_steps)
            return [lrs[0] for lrs in _run(optimizer, SequentialLR(optimizer, [warmup, cosine], milestones=[W]), T)]

    right = run(W, T - W)
    assert max(right[: W + 1]) == right[W] == 1.0 and right.count(1.0) == 1  # a smooth seam, the peak once
    assert right[T - 1] < 1e-3 < 0.02 < run(W, T)[T - 1]  # T_max=T: far from its floor when training ends
    cut_short = run(W + 5, T - W)  # the warm-up is interrupted: a jump at the milestone
    assert right[W - 1] - cut_short[W - 1] > 0.05 and cut_short[W] == 1.0
    finished_early = run(W - 5, T - W)  # the warm-up ends early: a plateau at the peak before the milestone
    assert all(math.isclose(lr, 1.0, rel_tol=1e-15) for lr in finished_early[W - 5 : W + 1])


def test_sequentiallr_resumes_exactly_from_its_state_dict_and_not_without_it():
    W, T = 10, 60

    def fresh():
        optimizer = _optimizer(3e-4, kind="adam")
        warmup = LinearLR(optimizer, start_factor=1 / (W + 1), total_iters=W)
        return optimizer, SequentialLR(optimizer, [warmup, CosineAnnealingLR(optimizer, T_max=T - W)], milestones=[W])

    with _quiet():
        optimizer, scheduler = fresh()
        first = _run(optimizer, scheduler, 30)
        buffer = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
        rest = _run(optimizer, scheduler, T - 30)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        resumed_optimizer, resumed_scheduler = fresh()  # the scheduler first, then the states
        resumed_optimizer.load_state_dict(saved["optimizer"])
        resumed_scheduler.load_state_dict(saved["scheduler"])
        assert _run(resumed_optimizer, resumed_scheduler, T - 30) == rest
        forgetful_optimizer, forgetful_scheduler = fresh()
        forgetful_optimizer.load_state_dict(saved["optimizer"])
        forgetful = _run(forgetful_optimizer, forgetful_scheduler, T - 30)
    assert max(lrs[0] for lrs in forgetful) > 3e-4  # warmed up again on top of the restored rate
    ours = [warmup_cosine(t, warmup_steps=W, total_steps=T, base_lr=3e-4) for t in range(T)]
    assert _gap([lrs[0] for lrs in first + rest], ours) < 1e-13


ONE_CYCLE_OPTIONS = [
    {},
    {"anneal_strategy": "linear"},
    {"three_phase": True},
    {"three_phase": True, "anneal_strategy": "linear"},
    {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
    {"pct_start": 0.45, "three_phase": True, "div_factor": 3.0, "final_div_factor": 1e3},
    {"pct_start": 0.0},
    {"pct_start": 0.9, "anneal_strategy": "linear"},
]


@pytest.mark.parametrize("options", ONE_CYCLE_OPTIONS)
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_one_cycle_equals_onecyclelr_bitwise_lr_and_momentum(options, kind):
    total = 97
    momentum_options = {k: v for k, v in options.items() if k in ("pct_start", "anneal_strategy", "three_phase")}
    optimizer = _optimizer(kind=kind, groups=2)
    scheduler = OneCycleLR(optimizer, max_lr=[0.3, 0.05], total_steps=total, base_momentum=0.8, max_momentum=0.97, **options)
    for step in range(total + 1):  # the last one is where the scheduler stands after the final step
        for group, max_lr in zip(optimizer.param_groups, (0.3, 0.05), strict=True):
            assert group["lr"] == one_cycle(step, total_steps=total, max_lr=max_lr, **options), (step, options)
            momentum = group["betas"][0] if kind == "adam" else group["momentum"]
            expected = one_cycle_momentum(step, total_steps=total, base_momentum=0.8, max_momentum=0.97, **momentum_options)
            assert momentum == expected, (step, options)
        if step < total:
            optimizer.step()
            scheduler.step()
    with pytest.raises(ValueError, match="Tried to step"):
        scheduler.step()


def test_one_cycle_after_the_last_step_runs_past_its_last_phase():
    # Where OneCycleLR stands after total_steps steps: the cosine back at step T - 2's rate, the line below 0.
    T = 40
    for strategy in ("cos", "linear"):
        optimizer = _optimizer(kind="adam")
        scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=T, anneal_strategy=strategy)
        _run(optimizer, scheduler, T)
        after = optimizer.param_groups[0]["lr"]
        assert after == one_cycle(T, total_steps=T, max_lr=0.1, anneal_strategy=strategy)
        floor = one_cycle(T - 1, total_steps=T, max_lr=0.1, anneal_strategy=strategy)
        assert math.isclose(floor, 0.1 / 25 / 1e4, rel_tol=1e-9)
        if strategy == "cos":
            assert math.isclose(after, one_cycle(T - 2, total_steps=T, max_lr=0.1), rel_tol=1e-12) and after > floor
        else:
            assert after < 0


def test_one_cycle_refuses_a_phase_of_no_length_where_pytorch_divides_by_zero():
    with pytest.raises(ValueError, match="leaves a one-cycle phase with no length"):
        one_cycle(0, total_steps=10, max_lr=1.0, pct_start=0.1)
    optimizer = _optimizer()
    with pytest.raises(ZeroDivisionError):
        OneCycleLR(optimizer, max_lr=1.0, total_steps=10, pct_start=0.1)


# Dr. Hammer's traps


def test_scheduler_before_optimizer_warns_and_skips_the_first_value():
    optimizer = _optimizer(1.0)
    scheduler = LambdaLR(optimizer, lambda t: 1 / (t + 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler.step()
        used = optimizer.param_groups[0]["lr"]
        optimizer.step()
    assert any("before `optimizer.step()`" in str(w.message) for w in caught)
    assert used == 0.5


def test_last_epoch_counts_steps_and_is_no_resume_button():
    optimizer = _optimizer(1.0)
    scheduler = CosineAnnealingLR(optimizer, T_max=10)
    _run(optimizer, scheduler, 5)
    assert scheduler.last_epoch == 5 and optimizer.param_groups[0]["lr"] == cosine_decay(5, total_steps=10, base_lr=1.0)
    # Built with last_epoch on a fresh optimiser: a KeyError without initial_lr, and with it, the chain
    # trusts the rate it finds (1.0 here), not the schedule's rate at that step.
    with pytest.raises(KeyError, match="initial_lr"):
        CosineAnnealingLR(_optimizer(1.0), T_max=10, last_epoch=4)
    optimizer = _optimizer(1.0)
    optimizer.param_groups[0]["initial_lr"] = 1.0
    scheduler = CosineAnnealingLR(optimizer, T_max=10, last_epoch=4)
    assert scheduler.last_epoch == 5
    assert not math.isclose(optimizer.param_groups[0]["lr"], cosine_decay(5, total_steps=10, base_lr=1.0))


def test_sequentiallr_warns_at_its_milestone_only_in_older_releases():
    # Older releases (2.4 among them) called the cosine's step(0), which warned; 2.13 restarts it quietly.
    optimizer = _optimizer(1.0)
    warmup = LinearLR(optimizer, start_factor=0.5, total_iters=2)
    scheduler = SequentialLR(optimizer, [warmup, CosineAnnealingLR(optimizer, T_max=5)], milestones=[2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(optimizer, scheduler, 4)
    if tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 13):
        assert not caught


def test_no_warning_in_the_right_order():
    optimizer = _optimizer(1.0)
    scheduler = LambdaLR(optimizer, lambda t: 1 / (t + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run(optimizer, scheduler, 3)


def test_a_warmup_from_zero_moves_nothing_on_step_zero_and_linearlr_refuses_it():
    p = torch.ones(3, requires_grad=True)
    optimizer = torch.optim.AdamW([p], lr=1e-2)
    LambdaLR(optimizer, lambda t: t / 10)
    p.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(p, torch.ones(3)) and optimizer.state[p]["step"].item() == 1
    assert linear_warmup(0, warmup_steps=10, base_lr=1e-2) > 0
    with pytest.raises(ValueError, match="Starting multiplicative factor expected to be greater than 0"):
        LinearLR(_optimizer(), start_factor=0.0)


def test_plot_schedules():
    fig = plot_schedules(total_steps=40)
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # two panels and the momentum axis
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 3 and len(fig.axes[2].lines) == 3


# Challenges


def test_challenges_are_found():
    assert set(challenges_in(lesson)) == {"inverse_sqrt", "cosine_warm_restarts"}


def test_inverse_sqrt_solution_passes_and_wrong_attempts_fail():
    assert check_inverse_sqrt(inverse_sqrt) is None

    def counts_from_zero(step, *, warmup_steps, base_lr):
        s = max(step, 1)
        return base_lr * min(s / warmup_steps, math.sqrt(warmup_steps / s))

    def unscaled(step, *, warmup_steps, base_lr):
        s = step + 1
        return base_lr * min(s * warmup_steps**-1.5, s**-0.5)

    def returns_a_tensor(step, *, warmup_steps, base_lr):
        return torch.tensor(inverse_sqrt(step, warmup_steps=warmup_steps, base_lr=base_lr))

    for wrong in (counts_from_zero, unscaled, returns_a_tensor):
        with pytest.raises(AssertionError):
            check_inverse_sqrt(wrong)


def test_cosine_warm_restarts_solution_passes_and_wrong_attempts_fail():
    assert check_cosine_warm_restarts(cosine_warm_restarts) is None

    def ignores_t_mult(step, *, T_0, T_mult=1, base_lr, eta_min=0.0):
        return cosine_warm_restarts(step, T_0=T_0, T_mult=1, base_lr=base_lr, eta_min=eta_min)

    def no_restart(step, *, T_0, T_mult=1, base_lr, eta_min=0.0):
        return cosine_decay(step, total_steps=T_0, base_lr=base_lr, min_lr=eta_min)

    def restarts_one_late(step, *, T_0, T_mult=1, base_lr, eta_min=0.0):
        return cosine_warm_restarts(max(step - 1, 0), T_0=T_0, T_mult=T_mult, base_lr=base_lr, eta_min=eta_min)

    for wrong in (ignores_t_mult, no_restart, restarts_one_late):
        with pytest.raises(AssertionError):
            check_cosine_warm_restarts(wrong)
    with pytest.raises(ValueError, match="T_mult must be at least 1, got 0"):
        cosine_warm_restarts(3, T_0=2, T_mult=0, base_lr=1.0)
    with pytest.raises(ValueError, match="warmup_steps must be at least 1, got 0"):
        inverse_sqrt(3, warmup_steps=0, base_lr=1.0)
