"""The proof that the lesson's noise schedules are diffusers': ``betas``, ``alphas`` and ``alphas_cumprod``
against ``DDPMScheduler`` over many settings, the zero-terminal-SNR rescaling against diffusers' function
and scheduler, the cosine's construction, errors, the figure and the challenges."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.diffusion.forward import q_sample, snr
from torchenstein.diffusion.schedules import (
    BETA_SCHEDULES,
    NoiseSchedule,
    check_linear_log_snr_betas,
    check_sigmoid_betas,
    cosine_betas,
    linear_betas,
    linear_log_snr_betas,
    make_betas,
    noise_schedule,
    plot_schedules,
    rescale_zero_terminal_snr,
    scaled_linear_betas,
    sigmoid_betas,
)

LENGTHS = [1, 2, 10, 50, 1000, 4000]
ENDPOINTS = [(0.0001, 0.02), (0.00085, 0.012), (0.001, 0.2), (0.02, 0.0001), (0.0, 1.0)]
COSINE_LENGTHS = [1, 2, 10, 50, 100, 1000, 1337, 4000]


@pytest.fixture(scope="module")
def diffusers_ddpm():
    """diffusers' scheduling_ddpm module, imported once (diffusers is a test-only reference)."""
    pytest.importorskip("diffusers")
    from diffusers.schedulers import scheduling_ddpm

    return scheduling_ddpm


def _assert_arrays_equal(ours: NoiseSchedule, scheduler) -> None:
    for name in NoiseSchedule._fields:
        theirs = getattr(scheduler, name)
        assert getattr(ours, name).dtype == theirs.dtype == torch.float32, name
        torch.testing.assert_close(getattr(ours, name), theirs, rtol=0, atol=0, msg=lambda m, name=name: f"{name}: {m}")


def _ulps_apart(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """How many float32 steps separate a and b, element by element (for values of one sign)."""
    return (a.view(torch.int32).long() - b.view(torch.int32).long()).abs()


# --- the three shapes against DDPMScheduler ---------------------------------------------------------------


@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear"])
@pytest.mark.parametrize(("beta_start", "beta_end"), ENDPOINTS)
@pytest.mark.parametrize("num_train_timesteps", LENGTHS)
def test_linear_shapes_equal_ddpm_scheduler_bit_for_bit(diffusers_ddpm, num_train_timesteps, beta_start, beta_end, beta_schedule):
    kwargs = {"num_train_timesteps": num_train_timesteps, "beta_start": beta_start, "beta_end": beta_end,
              "beta_schedule": beta_schedule}
    _assert_arrays_equal(noise_schedule(**kwargs), diffusers_ddpm.DDPMScheduler(**kwargs))
    function = linear_betas if beta_schedule == "linear" else scaled_linear_betas
    torch.testing.assert_close(function(num_train_timesteps, beta_start, beta_end), make_betas(**kwargs), rtol=0, atol=0)


@settings(max_examples=25)
@given(
    num_train_timesteps=st.integers(1, 3000),
    beta_start=st.floats(0.0, 1.0),
    beta_end=st.floats(0.0, 1.0),
    beta_schedule=st.sampled_from(["linear", "scaled_linear"]),
)
def test_linear_shapes_equal_ddpm_scheduler_for_random_settings(num_train_timesteps, beta_start, beta_end, beta_schedule):
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    kwargs = {"num_train_timesteps": num_train_timesteps, "beta_start": beta_start, "beta_end": beta_end,
              "beta_schedule": beta_schedule}
    _assert_arrays_equal(noise_schedule(**kwargs), DDPMScheduler(**kwargs))


@pytest.mark.parametrize("num_train_timesteps", COSINE_LENGTHS)
def test_cosine_equals_ddpm_scheduler_to_one_float32_rounding(diffusers_ddpm, num_train_timesteps):
    """diffusers computes each beta with Python's math.cos, we with torch.cos, both in float64, then round
    once to float32: two float64 cosines a few float64 units apart can round to neighbouring float32s."""
    scheduler = diffusers_ddpm.DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2")
    ours = noise_schedule(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2")
    assert ours.betas.dtype == torch.float32
    assert int(_ulps_apart(ours.betas, scheduler.betas).max()) <= 1
    torch.testing.assert_close(ours.betas, diffusers_ddpm.betas_for_alpha_bar(num_train_timesteps), rtol=2**-23, atol=0)
    # One rounding of a beta moves alpha_bar by far less than float32's own accumulated error.
    torch.testing.assert_close(ours.alphas, scheduler.alphas, rtol=0, atol=2**-24)
    torch.testing.assert_close(ours.alphas_cumprod, scheduler.alphas_cumprod, rtol=1e-6, atol=1e-12)
    # The cosine ignores beta_start and beta_end, in diffusers and here.
    odd = {"num_train_timesteps": num_train_timesteps, "beta_start": 0.3, "beta_end": 0.4, "beta_schedule": "squaredcos_cap_v2"}
    torch.testing.assert_close(make_betas(**odd), ours.betas, rtol=0, atol=0)


def test_cosine_is_the_squared_cosine_curve_of_the_paper():
    T = 1000
    u = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    alpha_bar = torch.cumprod(1 - cosine_betas(T).double(), dim=0)
    torch.testing.assert_close(alpha_bar[:-1], f[1:-1] / f[0], rtol=0, atol=1e-6)
    # Clipped at 0.999: only the last beta, which would otherwise be 1 to within rounding.
    assert torch.nonzero(cosine_betas(T) == 0.999).flatten().tolist() == [T - 1]
    assert 1 - (f[-1] / f[-2]).item() > 0.999999
    # A looser clip changes only the clipped beta; a tighter one catches the steep end too.
    torch.testing.assert_close(cosine_betas(T, max_beta=1.0)[:-1], cosine_betas(T)[:-1], rtol=0, atol=0)
    assert (cosine_betas(T, max_beta=0.5) <= 0.5).all()
    # The offset s sets the first beta; s = 0 makes it (pi / 2T)^2 to first order.
    assert cosine_betas(T, s=0.0)[0].item() == pytest.approx((math.pi / (2 * T)) ** 2, rel=1e-3)


# --- zero terminal SNR -----------------------------------------------------------------------------------


RESCALE_SETTINGS = [
    {"beta_schedule": "linear"},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "linear", "num_train_timesteps": 2},
    {"beta_schedule": "linear", "num_train_timesteps": 10},
    {"beta_schedule": "scaled_linear", "num_train_timesteps": 4000},
    {"beta_schedule": "linear", "beta_start": 0.001, "beta_end": 0.2, "num_train_timesteps": 100},
]


@pytest.mark.parametrize("kwargs", RESCALE_SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_rescaled_schedule_equals_ddpm_scheduler_bit_for_bit(diffusers_ddpm, kwargs):
    scheduler = diffusers_ddpm.DDPMScheduler(rescale_betas_zero_snr=True, **kwargs)
    ours = noise_schedule(rescale_betas_zero_snr=True, **kwargs)
    _assert_arrays_equal(ours, scheduler)
    assert ours.alphas_cumprod[-1].item() == 0.0 and ours.betas[-1].item() == 1.0


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
@pytest.mark.parametrize("num_train_timesteps", [2, 3, 50, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rescale_equals_diffusers_functions_bit_for_bit(diffusers_ddpm, beta_schedule, num_train_timesteps, dtype):
    from diffusers.schedulers import scheduling_ddim

    betas = make_betas(num_train_timesteps, beta_schedule=beta_schedule).to(dtype)
    ours = rescale_zero_terminal_snr(betas)
    assert ours.dtype == dtype and ours.shape == betas.shape
    # diffusers keeps the function in scheduling_ddim and copies it into scheduling_ddpm (and others).
    for module in (diffusers_ddpm, scheduling_ddim):
        torch.testing.assert_close(ours, module.rescale_zero_terminal_snr(betas.clone()), rtol=0, atol=0)
    assert torch.equal(betas, make_betas(num_train_timesteps, beta_schedule=beta_schedule).to(dtype))  # not edited


@pytest.mark.parametrize("beta_schedule", BETA_SCHEDULES)
def test_rescale_is_an_affine_map_of_sqrt_alpha_bar_to_zero(beta_schedule):
    betas = make_betas(1000, beta_schedule=beta_schedule).double()
    old = torch.cumprod(1 - betas, dim=0).sqrt()
    rescaled = rescale_zero_terminal_snr(betas)
    new = torch.cumprod(1 - rescaled, dim=0).sqrt()
    expected = (old - old[-1]) * old[0] / (old[0] - old[-1])
    torch.testing.assert_close(new, expected, rtol=1e-9, atol=1e-12)
    assert new[-1].item() == 0.0 and rescaled[-1].item() == 1.0
    torch.testing.assert_close(new[0], old[0], rtol=1e-12, atol=0)
    assert ((rescaled >= 0) & (rescaled <= 1)).all() and (new.diff() < 0).all()
    assert snr(new**2)[-1].item() == 0.0
    # The last sample is the noise itself, bit for bit.
    noise = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(q_sample(torch.randn(3, 1, 8, 8, dtype=torch.float64), 999, new**2, noise), noise)


def test_common_schedules_end_with_signal_left():
    ends = {kwargs.get("beta_schedule"): noise_schedule(**kwargs).alphas_cumprod[-1].item() for kwargs in
            ({"beta_schedule": "linear"}, {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
             {"beta_schedule": "squaredcos_cap_v2"})}
    assert ends["linear"] == pytest.approx(4.0358e-05, rel=1e-4)
    assert ends["scaled_linear"] == pytest.approx(0.00466, rel=1e-3)
    assert 0 < ends["squaredcos_cap_v2"] < 1e-8


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_rescale_in_half_precision_is_float32_rounded_once_where_diffusers_makes_nan(diffusers_ddpm, dtype):
    """Where it differs: half-precision betas are rescaled in float32; diffusers' float16 makes NaN."""
    betas = make_betas(1000).to(dtype)
    ours = rescale_zero_terminal_snr(betas)
    assert ours.dtype == dtype and ours[-1].item() == 1.0 and ours.isfinite().all()
    torch.testing.assert_close(ours, rescale_zero_terminal_snr(betas.float()).to(dtype), rtol=0, atol=0)
    theirs = diffusers_ddpm.rescale_zero_terminal_snr(betas.clone())
    if dtype == torch.float16:
        assert int(theirs.isnan().sum()) == 2


def test_rescale_refuses_what_diffusers_turns_into_nan(diffusers_ddpm):
    """Where it differs: one beta (or a constant alpha_bar) makes diffusers divide zero by zero."""
    one = torch.tensor([0.02])
    assert diffusers_ddpm.rescale_zero_terminal_snr(one.clone()).isnan().all()
    with pytest.raises(ValueError, match="betas must hold at least two betas to rescale, got 1"):
        rescale_zero_terminal_snr(one)
    zeros = torch.zeros(5)
    assert diffusers_ddpm.rescale_zero_terminal_snr(zeros.clone()).isnan().all()
    with pytest.raises(ValueError, match="betas must change alpha_bar between the first and last timestep"):
        rescale_zero_terminal_snr(zeros)


# --- errors, figure, challenges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: make_betas(beta_schedule="laplace"), ValueError,
         r"beta_schedule must be one of \('linear', 'scaled_linear', 'squaredcos_cap_v2'\), got 'laplace'"),
        (lambda: linear_betas(0), ValueError, "num_train_timesteps must be at least 1, got 0"),
        (lambda: linear_betas(10.0), TypeError, "num_train_timesteps must be an int, got 10.0"),
        (lambda: linear_betas(True), TypeError, "num_train_timesteps must be an int, got True"),
        (lambda: scaled_linear_betas(10, -0.1, 0.02), ValueError, r"beta_start must lie in \[0, 1\], got -0.1"),
        (lambda: linear_betas(10, 0.0001, 1.5), ValueError, r"beta_end must lie in \[0, 1\], got 1.5"),
        (lambda: linear_betas(10, "0.1", 0.2), TypeError, "beta_start must be a real number, got '0.1'"),
        (lambda: cosine_betas(10, s=-0.1), ValueError, "s must be at least 0, got -0.1"),
        (lambda: cosine_betas(10, max_beta=0.0), ValueError, r"max_beta must lie in \(0, 1\], got 0.0"),
        (lambda: cosine_betas(10, max_beta=None), TypeError, "max_beta must be a real number, got None"),
        (lambda: noise_schedule(rescale_betas_zero_snr=1), TypeError, "rescale_betas_zero_snr must be a bool, got 1"),
        (lambda: rescale_zero_terminal_snr(torch.ones(2, 3)), TypeError,
         r"betas must be a 1-D floating-point tensor, got dtype torch.float32 and shape \(2, 3\)"),
        (lambda: rescale_zero_terminal_snr([0.1, 0.2]), TypeError, r"betas must be a 1-D floating-point tensor, got \[0.1, 0.2\]"),
        (lambda: plot_schedules(num_train_timesteps=1), ValueError, "num_train_timesteps must be an int of at least 2, got 1"),
        (lambda: linear_log_snr_betas(10, -1.0, 1.0), ValueError, "must be finite and falling, got -1.0 and 1.0"),
        (lambda: linear_log_snr_betas(10, 1.0, -math.inf), ValueError, "must be finite and falling"),
    ],
)
def test_bad_settings_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_plot_schedules_draws_two_panels():
    fig = plot_schedules()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert all(len(ax.lines) >= 4 for ax in fig.axes)


def test_sigmoid_betas_is_ddpm_schedulers_sigmoid_and_passes_its_checker(diffusers_ddpm):
    for T, start, end in ((1000, 0.0001, 0.02), (10, 0.001, 0.5), (1, 0.0001, 0.02)):
        scheduler = diffusers_ddpm.DDPMScheduler(num_train_timesteps=T, beta_start=start, beta_end=end, beta_schedule="sigmoid")
        torch.testing.assert_close(sigmoid_betas(T, start, end), scheduler.betas, rtol=0, atol=0)
    check_sigmoid_betas(sigmoid_betas)


def test_sigmoid_checker_rejects_wrong_attempts():
    def wrong_range(T=1000, beta_start=0.0001, beta_end=0.02):  # -1..1 instead of -6..6
        return torch.sigmoid(torch.linspace(-1, 1, T)) * (beta_end - beta_start) + beta_start

    def float64(T=1000, beta_start=0.0001, beta_end=0.02):
        return sigmoid_betas(T, beta_start, beta_end).double()

    def unmapped(T=1000, beta_start=0.0001, beta_end=0.02):
        return torch.sigmoid(torch.linspace(-6, 6, T)) * beta_end

    for wrong in (wrong_range, float64, unmapped):
        with pytest.raises(AssertionError):
            check_sigmoid_betas(wrong)


def test_linear_log_snr_betas_passes_its_checker_and_is_linear_in_log_snr():
    check_linear_log_snr_betas(linear_log_snr_betas)
    betas = linear_log_snr_betas(500, 8.0, -8.0)
    log_snr = snr(torch.cumprod(1 - betas.double(), dim=0)).log()
    torch.testing.assert_close(log_snr, torch.linspace(8.0, -8.0, 500, dtype=torch.float64), rtol=0, atol=1e-4)


def test_linear_log_snr_checker_rejects_wrong_attempts():
    def alpha_bar_linear(T, start, end):  # linear in alpha_bar, not in log-SNR
        alpha_bar = torch.linspace(torch.sigmoid(torch.tensor(start)).item(), torch.sigmoid(torch.tensor(end)).item(), T,
                                   dtype=torch.float64)
        return (1 - torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])).float()

    def snr_as_alpha_bar(T, start, end):  # forgets the sigmoid: alpha_bar = exp(log_snr), clipped
        alpha_bar = torch.linspace(start, end, T, dtype=torch.float64).exp().clamp(max=1.0)
        return (1 - torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])).float()

    def no_first_step(T, start, end):  # alpha_0 taken as 1: the first timestep adds no noise
        alpha_bar = torch.sigmoid(torch.linspace(start, end, T, dtype=torch.float64))
        return (1 - torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[1:] / alpha_bar[:-1]])).float()

    for wrong in (alpha_bar_linear, snr_as_alpha_bar, no_first_step):
        with pytest.raises(AssertionError):
            check_linear_log_snr_betas(wrong)
