"""The proof that the lesson's forward process is DDPM's: one jump against the chain of steps (in law and
sample by sample), against diffusers' ``DDPMScheduler.add_noise`` (bit for bit in float32 and float64),
in half precision, gradients, broadcasting, errors, data, figures and challenges."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.diffusion.forward import (
    check_noisy_training_batch,
    check_recover_x0,
    load_digit_images,
    noisy_training_batch,
    per_sample,
    plot_digit_dissolving,
    plot_spiral_dissolving,
    q_sample,
    q_step,
    recover_x0,
    snr,
)

BETAS = torch.linspace(1e-4, 0.02, 1000)
ALPHAS_CUMPROD = torch.cumprod(1 - BETAS, dim=0)
BETAS64 = BETAS.double()
ALPHAS_CUMPROD64 = torch.cumprod(1 - BETAS64, dim=0)
# Scheduler settings the add_noise comparison runs over: the default, Stable Diffusion's, the cosine, a
# short schedule, and one rescaled to zero terminal SNR (its last alpha_bar is exactly 0).
SCHEDULER_SETTINGS = [
    {},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2"},
    {"num_train_timesteps": 10},
    {"rescale_betas_zero_snr": True},
]
SHAPES = [(4, 1, 8, 8), (3, 2), (5,), (2, 3, 4, 5), (8, 1, 8, 8), (1, 1, 1, 1)]


@pytest.fixture(scope="module")
def ddpm():
    """diffusers' DDPMScheduler class, imported once (diffusers is a test-only reference)."""
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return DDPMScheduler


def _randn(shape, seed, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _timesteps(batch, T, seed):
    """One timestep per sample, both ends of the schedule included whenever the batch allows."""
    t = torch.randint(0, T, (batch,), generator=torch.Generator().manual_seed(seed))
    t[0] = 0
    if batch > 1:
        t[-1] = T - 1
    return t


# --- one jump against diffusers' add_noise --------------------------------------------------------------


@pytest.mark.parametrize("settings_", SCHEDULER_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_q_sample_is_add_noise_bit_for_bit(ddpm, settings_, dtype, shape):
    scheduler = ddpm(**settings_)
    T = scheduler.config.num_train_timesteps
    x0, noise = _randn(shape, 0, dtype), _randn(shape, 1, dtype)
    alphas_cumprod = scheduler.alphas_cumprod.clone()
    for t in (_timesteps(shape[0], T, 2), torch.tensor(0), torch.tensor(T - 1), torch.tensor(T // 2)):
        theirs = scheduler.add_noise(x0, noise, t)
        assert theirs.dtype == dtype
        # The schedule as diffusers keeps it (float32), and the same values in float64: one result.
        for schedule in (alphas_cumprod, alphas_cumprod.double()):
            ours = q_sample(x0, t, schedule, noise)
            assert ours.dtype == dtype and ours.shape == x0.shape
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        if t.dim() == 0:  # a Python int is the same timestep
            torch.testing.assert_close(q_sample(x0, int(t), alphas_cumprod, noise), theirs, rtol=0, atol=0)


@settings(max_examples=25)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    T=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_q_sample_is_add_noise_for_random_shapes_and_schedules(shape, T, seed):
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    betas = torch.rand(T, generator=torch.Generator().manual_seed(seed)) * 0.5 + 1e-4
    scheduler = DDPMScheduler(num_train_timesteps=T, trained_betas=betas.tolist())
    x0, noise = _randn(shape, seed, torch.float32), _randn(shape, seed + 1, torch.float32)
    t = torch.randint(0, T, (shape[0],), generator=torch.Generator().manual_seed(seed + 2))
    torch.testing.assert_close(
        q_sample(x0, t, scheduler.alphas_cumprod, noise), scheduler.add_noise(x0, noise, t), rtol=0, atol=0
    )


def test_integer_timesteps_of_every_width_are_timesteps(ddpm):
    """int32 timesteps are add_noise's bit for bit; uint8/int8/int16, which add_noise refuses or reads as a
    boolean mask, are read as timesteps too (and a uint8 255 is not mistaken for out of range)."""
    scheduler = ddpm()
    x0, noise = _randn((4, 3), 0, torch.float32), _randn((4, 3), 1, torch.float32)
    t = torch.tensor([0, 5, 100, 127])
    expected = q_sample(x0, t, scheduler.alphas_cumprod, noise)
    torch.testing.assert_close(scheduler.add_noise(x0, noise, t.int()), expected, rtol=0, atol=0)
    for dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        torch.testing.assert_close(q_sample(x0, t.to(dtype), scheduler.alphas_cumprod, noise), expected, rtol=0, atol=0)
    top = torch.tensor([255, 0, 1, 2])
    torch.testing.assert_close(
        q_sample(x0, top.to(torch.uint8), scheduler.alphas_cumprod, noise),
        q_sample(x0, top, scheduler.alphas_cumprod, noise), rtol=0, atol=0,
    )
    with pytest.raises(ValueError, match=r"from 0 to 99 .* got \[255\]"):
        q_sample(x0, top.to(torch.uint8), scheduler.alphas_cumprod[:100], noise)
    with warnings.catch_warnings(), pytest.raises((IndexError, RuntimeError)):  # diffusers: uint8 is a mask
        warnings.simplefilter("ignore")  # "indexing with dtype torch.uint8 is now deprecated"
        scheduler.add_noise(x0, noise, t.to(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_rounds_once_where_add_noise_loses_the_first_timesteps(ddpm, dtype):
    """Where it differs: ours computes in float32 and rounds once; add_noise computes in the half type."""
    scheduler = ddpm()
    shape = (1000, 1, 8, 8)
    x0, noise = _randn(shape, 0, dtype), _randn(shape, 1, dtype)
    t = torch.arange(1000)
    ours = q_sample(x0, t, scheduler.alphas_cumprod, noise)
    theirs = scheduler.add_noise(x0, noise, t)
    assert ours.dtype == theirs.dtype == dtype
    exact = q_sample(x0.double(), t, scheduler.alphas_cumprod.double(), noise.double())
    # Ours: one rounding of the float32 result, so within half a unit in the last place of the exact one
    # (relative 2**-11 for float16, 2**-8 for bfloat16), give or take float32's own error and the absolute
    # spacing of float16's subnormal numbers.
    unit = torch.finfo(dtype).eps
    assert ((ours.double() - exact).abs() <= 0.5001 * unit * exact.abs() + 1e-7).all()
    # diffusers' first timesteps round alpha_bar to exactly 1: no noise at all, the clean image back.
    lost = int(((1 - scheduler.alphas_cumprod.to(dtype)) == 0).sum())
    assert lost == {torch.float16: 2, torch.bfloat16: 10}[dtype]
    assert torch.equal(theirs[:lost], x0[:lost])
    assert not torch.equal(ours[:lost], x0[:lost])
    # Its error is that of rounding alpha_bar to the half type first: it is the formula with the rounded
    # schedule, to the half type's tolerance, ...
    rounded_schedule = scheduler.alphas_cumprod.to(dtype).double()
    with_rounded_schedule = q_sample(x0.double(), t, rounded_schedule, noise.double())
    torch.testing.assert_close(theirs.double(), with_rounded_schedule, rtol=4 * unit, atol=4 * unit)
    # ... which matters while the SNR is large (1 - alpha_bar is small), and not once noise dominates.
    noisy = snr(scheduler.alphas_cumprod) < 1
    torch.testing.assert_close(ours[noisy].float(), theirs[noisy].float(), rtol=4 * unit, atol=4 * unit)
    assert not torch.allclose(ours[:100].float(), theirs[:100].float(), rtol=4 * unit, atol=4 * unit)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_q_sample_on_cuda_matches_add_noise(ddpm):
    scheduler = ddpm()
    x0, noise = _randn((16, 3, 8, 8), 0, torch.float32).cuda(), _randn((16, 3, 8, 8), 1, torch.float32).cuda()
    t = _timesteps(16, 1000, 2).cuda()
    ours = q_sample(x0, t, scheduler.alphas_cumprod, noise)
    assert ours.device == x0.device
    torch.testing.assert_close(ours, scheduler.add_noise(x0, noise, t))
    # Timesteps and schedule left on the CPU (int32, float64) are moved to the samples' device, as add_noise does.
    for t_cpu, schedule in ((t.cpu(), scheduler.alphas_cumprod), (t.cpu().int(), scheduler.alphas_cumprod.double())):
        torch.testing.assert_close(q_sample(x0, t_cpu, schedule, noise), ours, rtol=0, atol=0)
    torch.testing.assert_close(q_sample(x0, int(t[0]), scheduler.alphas_cumprod, noise)[0], ours[0], rtol=0, atol=0)


# --- the chain of steps against the jump ----------------------------------------------------------------


def test_one_step_from_the_data_is_the_jump_to_timestep_zero():
    x0, noise = _randn((4, 1, 8, 8), 0), _randn((4, 1, 8, 8), 1)
    step = q_step(x0, 0, BETAS64, noise)
    torch.testing.assert_close(step, q_sample(x0, 0, ALPHAS_CUMPROD64, noise), rtol=0, atol=1e-15)
    # In float32, 1 - alpha_bar_0 cancels: sqrt(1 - alpha_bar_0) is sqrt(beta_0) to about 1e-4 relative only.
    gap = ((1 - ALPHAS_CUMPROD[0]).sqrt() / BETAS[0].sqrt() - 1).abs().item()
    assert 1e-5 < gap < 2e-4
    torch.testing.assert_close(q_step(x0.float(), 0, BETAS, noise.float()),
                               q_sample(x0.float(), 0, ALPHAS_CUMPROD, noise.float()), rtol=0, atol=1e-5)


@pytest.mark.parametrize("t", [0, 1, 9, 99, 500, 999])
def test_the_chain_is_the_jump_given_the_noise_it_added(t):
    """The chain is linear: from x0 it is sqrt(alpha_bar) x0 plus the chain from zero with the same noises."""
    x0 = _randn((3, 2), 0)
    noises = _randn((t + 1, 3, 2), 1)
    x, noise_part = x0, torch.zeros_like(x0)
    for s in range(t + 1):
        x = q_step(x, s, BETAS64, noises[s])
        noise_part = q_step(noise_part, s, BETAS64, noises[s])
    eps_bar = noise_part / (1 - ALPHAS_CUMPROD64[t]).sqrt()
    torch.testing.assert_close(q_sample(x0, t, ALPHAS_CUMPROD64, eps_bar), x, rtol=0, atol=1e-12)
    # And the chain's combined noise has the closed form sum_s sqrt(beta_s) prod_{r > s} sqrt(alpha_r) eps_s.
    alphas = 1 - BETAS64[: t + 1]
    tail = torch.cat([torch.flip(torch.cumprod(torch.flip(alphas[1:], [0]), 0), [0]), torch.ones(1, dtype=torch.float64)])
    weights = (BETAS64[: t + 1] * tail).sqrt()  # (t + 1,)
    torch.testing.assert_close(noise_part, torch.einsum("s,sbd->bd", weights, noises), rtol=0, atol=1e-12)
    torch.testing.assert_close(weights.pow(2).sum(), 1 - ALPHAS_CUMPROD64[t], rtol=1e-12, atol=1e-15)


N_LAW = 10_000


def _within_standard_errors(samples, mean, var, k=5.0):
    """Sample mean, variance and cross-covariance within k standard errors of a N(mean, var I) law.

    For N draws: the mean's standard error is sqrt(var / N); the sample variance's, for a Gaussian,
    var * sqrt(2 / (N - 1)); the covariance of two independent coordinates', var / sqrt(N).
    """
    n = samples.size(0)
    centred = samples - samples.mean(0)
    cov = centred.T @ centred / (n - 1)  # (D, D)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return {
        "mean": bool(((samples.mean(0) - mean).abs() < k * (var / n) ** 0.5).all()),
        "variance": bool(((torch.diagonal(cov) - var).abs() < k * var * (2 / (n - 1)) ** 0.5).all()),
        "independent": bool((off_diagonal.abs() < k * var / n**0.5).all()),
    }


@pytest.mark.parametrize("t", [0, 9, 299, 999])
def test_chain_and_jump_are_the_same_law(t):
    point = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(t)
    chain = point.expand(N_LAW, 3)
    for s in range(t + 1):
        chain = q_step(chain, s, BETAS64, torch.randn(N_LAW, 3, generator=g, dtype=torch.float64))
    jump = q_sample(point.expand(N_LAW, 3), t, ALPHAS_CUMPROD64, torch.randn(N_LAW, 3, generator=g, dtype=torch.float64))
    mean, var = ALPHAS_CUMPROD64[t].sqrt() * point, (1 - ALPHAS_CUMPROD64[t]).item()
    everything = {"mean": True, "variance": True, "independent": True}
    assert _within_standard_errors(chain, mean, var) == everything
    assert _within_standard_errors(jump, mean, var) == everything
    assert not torch.allclose(chain, jump)  # the same law, not the same samples


@pytest.mark.parametrize("t", [99, 499])
def test_the_law_check_has_the_power_to_catch_hammers_formulas(t):
    point = torch.tensor([1.5, -0.5, 0.0], dtype=torch.float64)
    noise = torch.randn(N_LAW, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = point.expand(N_LAW, 3)
    mean, var = ALPHAS_CUMPROD64[t].sqrt() * point, (1 - ALPHAS_CUMPROD64[t]).item()
    beta = BETAS64[t]
    with_beta = (1 - beta).sqrt() * x0 + beta.sqrt() * noise
    wrong_scale = ALPHAS_CUMPROD64[t].sqrt() * x0 + (1 - ALPHAS_CUMPROD64[t].sqrt()) * noise
    assert _within_standard_errors(with_beta, mean, var)["mean"] is False
    assert _within_standard_errors(wrong_scale, mean, var)["variance"] is False


def test_a_chain_over_real_digits_follows_the_law_around_each_image():
    images, _ = load_digit_images()
    x0 = images[:128].double()  # (128, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    x = x0
    for s in range(1000):
        x = q_step(x, s, BETAS64, torch.randn(x.shape, generator=g, dtype=torch.float64))
        if s in (0, 99, 999):
            # Standardised around its own image, every pixel must be a standard normal draw.
            alpha_bar = ALPHAS_CUMPROD64[s]
            z = ((x - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()).flatten()
            assert _within_standard_errors(z[:, None], torch.zeros(1, dtype=torch.float64), 1.0) == {
                "mean": True, "variance": True, "independent": True
            }


# --- broadcasting, dtypes, devices, gradients ----------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_per_sample_timesteps_act_on_their_own_sample(shape):
    x0, noise = _randn(shape, 0, torch.float32), _randn(shape, 1, torch.float32)
    t = _timesteps(shape[0], 1000, 2)
    batch = q_sample(x0, t, ALPHAS_CUMPROD, noise)
    one_by_one = torch.cat([q_sample(x0[i : i + 1], int(t[i]), ALPHAS_CUMPROD, noise[i : i + 1]) for i in range(shape[0])])
    torch.testing.assert_close(batch, one_by_one, rtol=0, atol=0)
    step = q_step(x0, t, BETAS, noise)
    step_one_by_one = torch.cat([q_step(x0[i : i + 1], int(t[i]), BETAS, noise[i : i + 1]) for i in range(shape[0])])
    torch.testing.assert_close(step, step_one_by_one, rtol=0, atol=0)


def test_per_sample_reshapes_to_trailing_ones_and_leaves_a_scalar_alone():
    assert per_sample(torch.ones(4), torch.ones(4, 1, 8, 8)).shape == (4, 1, 1, 1)
    assert per_sample(torch.ones(4), torch.ones(4)).shape == (4,)
    assert per_sample(torch.tensor(2.0), torch.ones(4, 3)).shape == ()
    with pytest.raises(ValueError, match=r"values has 4 entries, one per sample, but sample has a batch of 8"):
        per_sample(torch.ones(4), torch.ones(8, 4))
    with pytest.raises(ValueError, match=r"values has \(2, 2\) entries"):
        per_sample(torch.ones(2, 2), torch.ones(2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtype_is_kept_and_the_schedule_may_be_of_another_dtype(dtype):
    x0, noise = _randn((4, 2), 0, dtype), _randn((4, 2), 1, dtype)
    for schedule in (ALPHAS_CUMPROD, ALPHAS_CUMPROD64):
        assert q_sample(x0, 5, schedule, noise).dtype == dtype
        assert q_step(x0, 5, schedule, noise).dtype == dtype
        assert recover_x0(x0, 5, schedule, noise).dtype == dtype


def test_empty_batch_and_non_contiguous_inputs():
    empty = torch.zeros(0, 1, 8, 8)
    assert q_sample(empty, torch.zeros(0, dtype=torch.long), ALPHAS_CUMPROD, empty).shape == (0, 1, 8, 8)
    x0 = _randn((8, 4), 0, torch.float32).T  # (4, 8), not contiguous
    noise = _randn((8, 4), 1, torch.float32).T
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(q_sample(x0, t, ALPHAS_CUMPROD, noise),
                               q_sample(x0.contiguous(), t, ALPHAS_CUMPROD, noise.contiguous()), rtol=0, atol=0)


def test_gradients_flow_to_the_sample_the_noise_and_the_schedule():
    x0 = _randn((3, 4), 0).requires_grad_()
    noise = _randn((3, 4), 1).requires_grad_()
    alphas_cumprod = ALPHAS_CUMPROD64[:50].clone().requires_grad_()
    betas = BETAS64[:50].clone().requires_grad_()
    t = torch.tensor([0, 7, 49])
    assert torch.autograd.gradcheck(lambda a, b, c: q_sample(a, t, c, b), (x0, noise, alphas_cumprod))
    assert torch.autograd.gradcheck(lambda a, b, c: q_step(a, t, c, b), (x0, noise, betas))


def test_snr_is_alpha_bar_over_one_minus_alpha_bar_and_falls():
    ratio = snr(ALPHAS_CUMPROD64)
    torch.testing.assert_close(ratio, ALPHAS_CUMPROD64 / (1 - ALPHAS_CUMPROD64), rtol=0, atol=0)
    torch.testing.assert_close(ratio / (1 + ratio), ALPHAS_CUMPROD64, rtol=1e-12, atol=0)
    assert (ratio[1:] < ratio[:-1]).all()
    # (sqrt(alpha_bar) / sqrt(1 - alpha_bar))**2, the way diffusers' training_utils.compute_snr writes it.
    torch.testing.assert_close(snr(ALPHAS_CUMPROD), (ALPHAS_CUMPROD**0.5 / (1 - ALPHAS_CUMPROD) ** 0.5) ** 2)
    assert snr(torch.tensor([1.0, 0.0])).tolist() == [float("inf"), 0.0]
    assert int((snr(ALPHAS_CUMPROD) < 1).nonzero()[0]) == 259
    with pytest.raises(TypeError, match="alphas_cumprod must be a floating-point tensor, got a tensor of dtype torch.int64"):
        snr(torch.tensor([1, 2]))


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: q_sample(torch.ones(2, 3), 1000, ALPHAS_CUMPROD, torch.ones(2, 3)), ValueError,
         r"t must hold timesteps from 0 to 999 \(counted from 0, as in diffusers\), got 1000"),
        (lambda: q_sample(torch.ones(2, 3), torch.tensor([-1, 3]), ALPHAS_CUMPROD, torch.ones(2, 3)), ValueError,
         r"from 0 to 999 .* got \[-1\]"),
        (lambda: q_step(torch.ones(2, 3), torch.tensor([5, 1000]), BETAS, torch.ones(2, 3)), ValueError,
         r"got \[1000\]"),
        (lambda: q_sample(torch.ones(2, 3), torch.tensor([1, 2, 3]), ALPHAS_CUMPROD, torch.ones(2, 3)), ValueError,
         r"t has 3 timesteps, one per sample, but x0 has shape \(2, 3\)"),
        (lambda: q_sample(torch.ones(2, 3), torch.zeros(2, 1, dtype=torch.long), ALPHAS_CUMPROD, torch.ones(2, 3)),
         ValueError, r"t must be one timestep or one per sample, shape \(\) or \(B,\), got shape \(2, 1\)"),
        (lambda: q_sample(torch.ones(2, 3), 2.0, ALPHAS_CUMPROD, torch.ones(2, 3)), TypeError,
         r"t must be an int or an integer tensor, got 2.0"),
        (lambda: q_sample(torch.ones(2, 3), True, ALPHAS_CUMPROD, torch.ones(2, 3)), TypeError,
         r"t must be an int or an integer tensor, got True"),
        (lambda: q_sample(torch.ones(2, 3), torch.tensor([True, False]), ALPHAS_CUMPROD, torch.ones(2, 3)),
         TypeError, r"got a tensor of dtype torch.bool"),
        (lambda: q_sample(torch.ones(2, 3), 0, ALPHAS_CUMPROD, torch.ones(3, 2)), ValueError,
         r"noise must have x0's shape \(2, 3\), got \(3, 2\)"),
        (lambda: q_sample(torch.ones(2, 3, dtype=torch.long), 0, ALPHAS_CUMPROD, torch.ones(2, 3)), TypeError,
         r"x0 must be a floating-point tensor, got a tensor of dtype torch.int64 and shape \(2, 3\)"),
        (lambda: q_sample(torch.ones(2, 3), 0, ALPHAS_CUMPROD[None], torch.ones(2, 3)), TypeError,
         r"alphas_cumprod must be a 1-D floating-point tensor, got a tensor of dtype torch.float32 and shape \(1, 1000\)"),
        (lambda: q_step([1.0, 2.0], 0, BETAS, torch.ones(2)), TypeError,
         r"x_prev must be a floating-point tensor, got list \[1.0, 2.0\]"),
        (lambda: q_step(torch.ones(2), 0, BETAS.tolist(), torch.ones(2)), TypeError, r"betas must be a 1-D"),
        (lambda: q_step(torch.ones(2), 0, BETAS, torch.ones(2, dtype=torch.long)), TypeError,
         r"noise must be a floating-point tensor"),
        (lambda: recover_x0(torch.ones(2), torch.tensor([0, 1, 2]), ALPHAS_CUMPROD, torch.ones(2)), ValueError,
         r"t has 3 timesteps, one per sample, but x_t has shape \(2,\)"),
        (lambda: noisy_training_batch(torch.ones(3, dtype=torch.long), ALPHAS_CUMPROD, torch.Generator()), TypeError,
         r"x0 must be a floating-point tensor with a batch dimension"),
    ],
)
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_numpy_integer_timestep_is_accepted():
    np = pytest.importorskip("numpy")
    x0 = torch.ones(2, 3)
    torch.testing.assert_close(q_sample(x0, np.int64(7), ALPHAS_CUMPROD, x0), q_sample(x0, 7, ALPHAS_CUMPROD, x0))


# --- data, figures, challenges -------------------------------------------------------------------------


def test_digits_are_scikit_learns_bundled_digits_scaled_to_minus_one_one():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    digits = sklearn_datasets.load_digits()
    images, labels = load_digit_images()
    expected = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    torch.testing.assert_close(images, expected, rtol=0, atol=0)
    assert labels.tolist() == digits.target.tolist()
    images[0] = 5.0  # the copy returned is the caller's to edit; the cache is untouched
    torch.testing.assert_close(load_digit_images()[0], expected, rtol=0, atol=0)


def test_figures_are_figures():
    for plot in (plot_digit_dissolving, plot_spiral_dissolving):
        fig = plot()
        assert isinstance(fig, Figure) and len(fig.axes) >= 5
    with pytest.raises(ValueError, match="timesteps must hold at least one timestep"):
        plot_digit_dissolving(timesteps=())
    with pytest.raises(ValueError, match="index must be an int from 0 to 1796, got 1797"):
        plot_digit_dissolving(index=1797)
    with pytest.raises(ValueError, match="timesteps must hold at least one timestep"):
        plot_spiral_dissolving(timesteps=[])


def test_recover_x0_checker_passes_the_solution_and_rejects_wrong_attempts():
    check_recover_x0(recover_x0)

    def with_beta(x_t, t, alphas_cumprod, noise):  # Hammer's one-step inverse
        betas = 1 - torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
        return (x_t - per_sample(betas[t].sqrt(), x_t) * noise) / per_sample((1 - betas[t]).sqrt(), x_t)

    def unbroadcast(x_t, t, alphas_cumprod, noise):  # (B,) against (B, C, H, W), aligned on the right
        alpha_bar = alphas_cumprod[torch.as_tensor(t)]
        return (x_t - (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt()

    def off_by_one(x_t, t, alphas_cumprod, noise):
        return recover_x0(x_t, torch.as_tensor(t).clamp(min=1) - 1, alphas_cumprod, noise)

    for wrong in (with_beta, unbroadcast, off_by_one):
        with pytest.raises(AssertionError):
            check_recover_x0(wrong)


def test_noisy_training_batch_checker_passes_the_solution_and_rejects_wrong_attempts():
    check_noisy_training_batch(noisy_training_batch)

    def paper_timesteps(x0, alphas_cumprod, generator):  # t from 1..T, clamped so it does not crash
        t = torch.randint(1, len(alphas_cumprod) + 1, (x0.size(0),), generator=generator).clamp(max=len(alphas_cumprod) - 1)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        return q_sample(x0, t, alphas_cumprod, noise), t, noise

    def global_rng(x0, alphas_cumprod, generator):  # ignores the generator: not reproducible
        t = torch.randint(0, len(alphas_cumprod), (x0.size(0),))
        noise = torch.randn(x0.shape, dtype=x0.dtype)
        return q_sample(x0, t, alphas_cumprod, noise), t, noise

    def one_timestep_for_all(x0, alphas_cumprod, generator):
        t = torch.randint(0, len(alphas_cumprod), (1,), generator=generator).expand(x0.size(0)).clone()
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        return q_sample(x0, t, alphas_cumprod, noise), t, noise

    def uniform_noise(x0, alphas_cumprod, generator):
        t = torch.randint(0, len(alphas_cumprod), (x0.size(0),), generator=generator)
        noise = torch.rand(x0.shape, generator=generator, dtype=x0.dtype) * 2 - 1
        return q_sample(x0, t, alphas_cumprod, noise), t, noise

    for wrong in (paper_timesteps, global_rng, one_timestep_for_all, uniform_noise):
        with pytest.raises(AssertionError):
            check_noisy_training_batch(wrong)
