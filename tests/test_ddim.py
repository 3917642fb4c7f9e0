"""The proof that the lesson's DDIM is diffusers': timesteps against ``DDIMScheduler.set_timesteps`` for every
step count, one step and whole trajectories against ``DDIMScheduler.step`` (prediction types, eta, clipping,
final alpha, schedules, float32 and float64), inversion against ``DDIMInverseScheduler``, the exact
denoiser against the score by autograd, sampling quality, the pinned differences, errors, the figure and
the challenges."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from torchenstein.diffusion.ddim import (
    PREDICTION_TYPES,
    TIMESTEP_SPACINGS,
    GaussianMixture,
    check_ddim_sample_visited,
    check_get_velocity,
    ddim_inverse_step,
    ddim_invert,
    ddim_sample,
    ddim_sample_visited,
    ddim_step,
    ddim_timesteps,
    get_velocity,
    lesson_mixture,
    moment_distance,
    plot_quality_vs_steps,
    predicted_x0_and_epsilon,
)
from torchenstein.diffusion.schedules import noise_schedule

SCHEDULES = {
    "linear": {},
    "scaled_linear": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    "cosine": {"beta_schedule": "squaredcos_cap_v2"},
    "zero_snr": {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
                 "rescale_betas_zero_snr": True},
}


@pytest.fixture(scope="module")
def diffusers():
    """diffusers, imported once (a test-only reference)."""
    return pytest.importorskip("diffusers")


def _scheduler(diffusers, schedule="linear", **config):
    return diffusers.DDIMScheduler(**SCHEDULES[schedule], **config)


def _points(n=64, dtype=torch.float32, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# --- timesteps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1000, 999, 50, 7])
@pytest.mark.parametrize(("spacing", "offset"), [("leading", 0), ("leading", 1), ("trailing", 0), ("linspace", 0)])
def test_timesteps_equal_set_timesteps_for_every_step_count(diffusers, T, spacing, offset):
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
    for n in range(1, T + 1):
        if spacing == "leading" and (n - 1) * (T // n) + offset > T - 1:
            continue  # diffusers would build a timestep past T - 1; ours refuses it (tested below)
        scheduler.set_timesteps(n)
        ours = ddim_timesteps(n, T, spacing, offset)
        assert ours.dtype == torch.int64 and ours.shape == (n,)
        assert torch.equal(ours, scheduler.timesteps[:n]), (T, spacing, n)
        # The one difference: diffusers' trailing sometimes appends a timestep -1 (pinned below).
        assert scheduler.timesteps[n:].tolist() in ([], [-1]), (T, spacing, n)


def test_diffusers_trailing_spacing_appends_minus_one_and_ours_does_not(diffusers):
    scheduler = diffusers.DDIMScheduler(timestep_spacing="trailing")
    scheduler.set_timesteps(61)
    assert len(scheduler.timesteps) == 62 and scheduler.timesteps[-1].item() == -1
    assert len(ddim_timesteps(61, 1000, "trailing")) == 61
    # And diffusers' step at -1 reads the noisiest alpha_bar, where ours refuses the timestep.
    with pytest.raises(ValueError, match="timestep must lie in 0..999"):
        ddim_step(torch.zeros(2, 2), -1, torch.zeros(2, 2), scheduler.alphas_cumprod, 61)


def test_timesteps_errors():
    with pytest.raises(ValueError, match="timestep_spacing must be one of"):
        ddim_timesteps(10, 1000, "uniform")
    with pytest.raises(ValueError, match="num_inference_steps must be at most num_train_timesteps=1000, got 1001"):
        ddim_timesteps(1001)
    with pytest.raises(ValueError, match="steps_offset=1 pushes the first timestep to 1000"):
        ddim_timesteps(1000, 1000, "leading", 1)
    with pytest.raises(TypeError, match="num_inference_steps must be an int, got 2.5"):
        ddim_timesteps(2.5)
    with pytest.raises(ValueError, match="num_inference_steps must be at least 1, got 0"):
        ddim_timesteps(0)


# --- one step -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_equals_diffusers_bit_for_bit(diffusers, schedule, prediction_type, dtype):
    g = torch.Generator().manual_seed(0)
    for clip_sample, set_alpha_to_one in ((True, True), (False, False)):
        scheduler = _scheduler(diffusers, schedule, prediction_type=prediction_type, clip_sample=clip_sample,
                               set_alpha_to_one=set_alpha_to_one, clip_sample_range=1.5)
        scheduler.set_timesteps(10)
        for t in (900, 500, 100, 0):
            for eta in (0.0, 0.5, 1.0):
                # Inputs of scale 1, as in sampling; a zero-SNR eps step at 999 would be 0/0 on both sides.
                sample, output = (torch.randn(3, 1, 4, 4, generator=g, dtype=dtype) for _ in range(2))
                noise = torch.randn(3, 1, 4, 4, generator=g, dtype=dtype)
                kwargs = {"eta": eta, "variance_noise": noise}
                theirs = scheduler.step(output, t, sample, **kwargs)
                ours = ddim_step(output, t, sample, scheduler.alphas_cumprod, 10, prediction_type=prediction_type,
                                 clip_sample=clip_sample, clip_sample_range=1.5, set_alpha_to_one=set_alpha_to_one,
                                 **kwargs)
                assert torch.equal(ours.prev_sample, theirs.prev_sample), (t, eta, clip_sample)
                assert torch.equal(ours.pred_original_sample, theirs.pred_original_sample), (t, eta)
                assert ours.prev_sample.dtype == dtype


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_step_noise_from_a_generator_is_drawn_as_diffusers_draws_it(diffusers, eta):
    scheduler = _scheduler(diffusers, clip_sample=False)
    scheduler.set_timesteps(20)
    sample, output = _points(), _points(seed=1)
    theirs = scheduler.step(output, 450, sample, eta=eta, generator=torch.Generator().manual_seed(7))
    ours = ddim_step(output, 450, sample, scheduler.alphas_cumprod, 20, eta=eta, clip_sample=False,
                     generator=torch.Generator().manual_seed(7))
    assert torch.equal(ours.prev_sample, theirs.prev_sample)


def test_step_with_a_0d_tensor_timestep_and_float16(diffusers):
    scheduler = _scheduler(diffusers)
    scheduler.set_timesteps(10)
    sample, output = _points(dtype=torch.float16), _points(dtype=torch.float16, seed=1)
    t = scheduler.timesteps[3]
    theirs = scheduler.step(output, t, sample, eta=1.0, variance_noise=_points(dtype=torch.float16, seed=2))
    ours = ddim_step(output, t, sample, scheduler.alphas_cumprod, 10, eta=1.0,
                     variance_noise=_points(dtype=torch.float16, seed=2))
    assert ours.prev_sample.dtype == torch.float16
    assert torch.equal(ours.prev_sample, theirs.prev_sample)


# --- whole trajectories -------------------------------------------------------------------------------

TRAJECTORIES = [
    ("linear", {}, "epsilon", 10),
    ("linear", {"timestep_spacing": "leading", "steps_offset": 1, "clip_sample": False}, "epsilon", 50),
    ("scaled_linear", {"timestep_spacing": "trailing", "clip_sample": False}, "epsilon", 7),
    ("cosine", {"timestep_spacing": "linspace", "set_alpha_to_one": False}, "sample", 10),
    ("zero_snr", {"timestep_spacing": "trailing", "clip_sample": False}, "v_prediction", 25),
    ("linear", {"timestep_spacing": "linspace", "clip_sample": False}, "v_prediction", 1),
]


def _trajectories(diffusers, schedule, config, prediction_type, n, eta, dtype):
    scheduler = _scheduler(diffusers, schedule, prediction_type=prediction_type, **config)
    scheduler.set_timesteps(n)
    alphas_cumprod = scheduler.alphas_cumprod
    model = lesson_mixture().denoiser(alphas_cumprod, prediction_type)
    x_T = _points(dtype=dtype)
    theirs, generator = x_T.clone(), torch.Generator().manual_seed(1)
    for t in scheduler.timesteps:
        theirs = scheduler.step(model(theirs, int(t)), t, theirs, eta=eta, generator=generator).prev_sample
    ours = ddim_sample(model, x_T, alphas_cumprod, n, eta=eta, generator=torch.Generator().manual_seed(1),
                       prediction_type=prediction_type, progress_bar=False, **config)
    return ours, theirs


@pytest.mark.parametrize(("schedule", "config", "prediction_type", "n"), TRAJECTORIES)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_trajectory_equals_a_diffusers_loop(diffusers, schedule, config, prediction_type, n, eta, dtype):
    ours, theirs = _trajectories(diffusers, schedule, config, prediction_type, n, eta, dtype)
    assert ours.dtype == dtype and bool(ours.isfinite().all())
    if schedule == "zero_snr" and eta == 1.0:
        # diffusers' NaN from the first step at alpha_bar = 0 (pinned in the next-but-one test); ours is finite.
        assert bool(theirs.isnan().all())
        return
    # Bit for bit: the same operations in the same order, the same model, the same generator draws.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_trajectory_with_a_float64_schedule_matches_diffusers_given_the_same(diffusers):
    scheduler = _scheduler(diffusers, "cosine", clip_sample=False)
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
    scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.double()
    scheduler.set_timesteps(20)
    model = lesson_mixture().denoiser(scheduler.alphas_cumprod)
    theirs = _points(dtype=torch.float64)
    ours = ddim_sample(model, theirs, scheduler.alphas_cumprod, 20, eta=0.0, clip_sample=False, progress_bar=False)
    for t in scheduler.timesteps:
        theirs = scheduler.step(model(theirs, int(t)), t, theirs).prev_sample
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_zero_snr_eta_one_where_diffusers_takes_the_square_root_of_a_negative(diffusers):
    # From alpha_bar = 0 at eta = 1, 1 - alpha_bar' - sigma^2 is 0 exactly and -3e-8 after float32 rounding.
    ours, theirs = _trajectories(diffusers, "zero_snr", {"timestep_spacing": "trailing", "clip_sample": False},
                                 "v_prediction", 10, 1.0, torch.float32)
    assert bool(theirs.isnan().all()) and bool(ours.isfinite().all())
    scheduler = _scheduler(diffusers, "zero_snr")
    a_prev = scheduler.alphas_cumprod[899]
    variance = (1 - a_prev) / (1 - scheduler.alphas_cumprod[999]) * (1 - scheduler.alphas_cumprod[999] / a_prev)
    std_dev_t = 1.0 * variance ** (0.5)
    assert (1 - a_prev - std_dev_t**2) < 0


# --- inversion ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inverse_scheduler(diffusers):
    if not hasattr(diffusers, "DDIMInverseScheduler"):
        pytest.skip("this diffusers has no DDIMInverseScheduler")
    return diffusers.DDIMInverseScheduler


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("spacing", "set_alpha_to_one", "clip_sample"),
                         [("leading", True, False), ("trailing", False, True)])
def test_inverse_step_and_inversion_equal_diffusers(inverse_scheduler, prediction_type, dtype, spacing,
                                                    set_alpha_to_one, clip_sample):
    config = {"timestep_spacing": spacing, "set_alpha_to_one": set_alpha_to_one, "clip_sample": clip_sample}
    scheduler = inverse_scheduler(prediction_type=prediction_type, **config)
    scheduler.set_timesteps(10)
    assert torch.equal(scheduler.timesteps, ddim_timesteps(10, 1000, spacing).flip(0))
    model = lesson_mixture().denoiser(scheduler.alphas_cumprod, prediction_type)
    x0 = lesson_mixture().sample(64, torch.Generator().manual_seed(0)).to(dtype)
    theirs = x0.clone()
    for t in scheduler.timesteps:
        output = model(theirs, int(t))
        ours_step = ddim_inverse_step(output, t, theirs, scheduler.alphas_cumprod, 10,
                                      prediction_type=prediction_type, clip_sample=clip_sample,
                                      set_alpha_to_one=set_alpha_to_one)
        theirs_step = scheduler.step(output, t, theirs)
        if prediction_type == "sample" and t == scheduler.timesteps[0] and set_alpha_to_one:
            # From alpha_bar = 1 a sample-predicting model's noise is 0/0 on both sides: NaN alike.
            torch.testing.assert_close(ours_step.prev_sample, theirs_step.prev_sample, equal_nan=True)
            return
        assert torch.equal(ours_step.prev_sample, theirs_step.prev_sample), int(t)
        assert torch.equal(ours_step.pred_original_sample, theirs_step.pred_original_sample)
        theirs = theirs_step.prev_sample
    ours = ddim_invert(model, x0, scheduler.alphas_cumprod, 10, prediction_type=prediction_type,
                       progress_bar=False, **config)
    assert torch.equal(ours, theirs)


def test_inversion_reconstructs_better_with_more_steps_and_only_at_eta_zero():
    alphas_cumprod = noise_schedule().alphas_cumprod.double()
    data = lesson_mixture()
    model = data.denoiser(alphas_cumprod)
    x0 = data.sample(200, torch.Generator().manual_seed(3))
    errors = {}
    for n in (10, 50, 200):
        latent = ddim_invert(model, x0, alphas_cumprod, n, clip_sample=False, progress_bar=False)
        back = ddim_sample(model, latent, alphas_cumprod, n, clip_sample=False, progress_bar=False)
        errors[n] = (back - x0).pow(2).mean().sqrt().item()
    assert errors[10] > errors[50] > errors[200] and errors[200] < 0.03, errors
    back = ddim_sample(model, latent, alphas_cumprod, 200, eta=1.0, generator=torch.Generator().manual_seed(0),
                       clip_sample=False, progress_bar=False)
    assert (back - x0).pow(2).mean().sqrt().item() > 10 * errors[200]
    with pytest.raises(ValueError, match="timestep_spacing must be 'leading' or 'trailing' to invert"):
        ddim_invert(model, x0, alphas_cumprod, 10, timestep_spacing="linspace")


# --- the exact denoiser and sampling quality -----------------------------------------------------------


def test_exact_denoiser_is_the_score_by_autograd():
    """Tweedie: E[eps | x_t] = -sqrt(1 - alpha_bar) * grad log p_t(x_t), with p_t the noised mixture."""
    alphas_cumprod = noise_schedule(beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
    data = lesson_mixture()
    for t in (0, 50, 300, 700, 999):
        a = alphas_cumprod[t]
        components = torch.distributions.Independent(torch.distributions.Normal(
            a.sqrt() * data.means, (a * data.stds[:, None] ** 2 + 1 - a).sqrt().expand(3, 2)), 1)
        p_t = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(data.weights), components)
        x = _points(32, torch.float64, seed=t).requires_grad_(True)
        (score,) = torch.autograd.grad(p_t.log_prob(x).sum(), x)
        eps = data.denoiser(alphas_cumprod)(x.detach(), t)
        torch.testing.assert_close(eps, -(1 - a).sqrt() * score, rtol=1e-9, atol=1e-10)
        # The three prediction types are one answer: each gives back the same x0-hat and eps-hat.
        for kind in PREDICTION_TYPES:
            output = data.denoiser(alphas_cumprod, kind)(x.detach(), t)
            x0_hat, eps_hat = predicted_x0_and_epsilon(output, x.detach(), a, kind)
            if t > 0:
                torch.testing.assert_close(eps_hat, eps, rtol=1e-7, atol=1e-7)
        # Per-sample timesteps are accepted too.
        ts = torch.full((32,), t)
        torch.testing.assert_close(data.denoiser(alphas_cumprod)(x.detach(), ts), eps)


def test_ddim_with_the_exact_denoiser_reproduces_the_data():
    data = lesson_mixture()
    x_T = _points(3000, torch.float64, seed=5)
    alphas_cumprod = noise_schedule().alphas_cumprod.double()
    samples = {n: ddim_sample(data.denoiser(alphas_cumprod), x_T, alphas_cumprod, n, clip_sample=False,
                              progress_bar=False) for n in (10, 30, 200)}
    distances = [moment_distance(x, data.mean, data.covariance) for x in samples.values()]
    assert distances[0] > distances[1] > distances[2], distances
    # 3000 true samples miss the true moments by about 0.02 to 0.03 by chance; 200 steps add little to that.
    assert distances[2] < 0.05, distances

    def shares(x):  # the share of samples nearest each cluster's centre
        nearest = ((x[:, None] - data.means) ** 2).sum(-1).argmin(1)
        return torch.bincount(nearest, minlength=3).double() / len(x)

    # Each share has a standard error of at most sqrt(0.25 / 3000) ~ 0.009: 0.04 is over four of them.
    assert (shares(samples[200]) - data.weights).abs().max() < 0.04, shares(samples[200])
    # Zero terminal SNR, trailing and v-prediction: the recipe of Lin et al. works as well.
    zero_snr = noise_schedule(rescale_betas_zero_snr=True).alphas_cumprod.double()
    x0 = ddim_sample(data.denoiser(zero_snr, "v_prediction"), x_T, zero_snr, 200, timestep_spacing="trailing",
                     prediction_type="v_prediction", clip_sample=False, progress_bar=False)
    assert moment_distance(x0, data.mean, data.covariance) < 0.05
    assert (shares(x0) - data.weights).abs().max() < 0.04


def test_mixture_moments_and_samples():
    data = lesson_mixture()
    x = data.sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 2) and x.dtype == torch.float64
    assert moment_distance(x, data.mean, data.covariance) < 0.02
    single = GaussianMixture(torch.tensor([[0.5]]), torch.tensor([0.2]))
    torch.testing.assert_close(single.covariance, torch.tensor([[0.04]]))  # in the dtype it was given


# --- pinned differences, errors -----------------------------------------------------------------------


def test_validation_stricter_than_diffusers(diffusers):
    scheduler = _scheduler(diffusers)
    scheduler.set_timesteps(10)
    x, g = _points(), torch.Generator()
    # diffusers accepts both noise sources when eta = 0 (it draws nothing) and any eta; we refuse both.
    scheduler.step(x, 500, x, eta=0.0, generator=g, variance_noise=x)
    scheduler.step(x, 500, x, eta=1.5, variance_noise=x)
    with pytest.raises(ValueError, match="pass generator or variance_noise, not both"):
        ddim_step(x, 500, x, scheduler.alphas_cumprod, 10, generator=g, variance_noise=x)
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
        ddim_step(x, 500, x, scheduler.alphas_cumprod, 10, eta=1.5)


def test_errors_name_the_argument():
    alphas_cumprod = noise_schedule().alphas_cumprod
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        ddim_step(x, 5, x, alphas_cumprod, 10, prediction_type="noise")
    with pytest.raises(ValueError, match=r"model_output must have sample's shape \(2, 2\), got \(2, 3\)"):
        ddim_step(torch.zeros(2, 3), 5, x, alphas_cumprod, 10)
    with pytest.raises(TypeError, match="sample must be a floating-point tensor"):
        ddim_step(x, 5, torch.zeros(2, 2, dtype=torch.int64), alphas_cumprod, 10)
    with pytest.raises(TypeError, match="timestep must be an int"):
        ddim_step(x, 5.0, x, alphas_cumprod, 10)
    with pytest.raises(TypeError, match="alphas_cumprod must be a 1-D floating-point tensor"):
        ddim_step(x, 5, x, alphas_cumprod[None], 10)
    with pytest.raises(ValueError, match="variance_noise must be a tensor of sample's shape"):
        ddim_step(x, 5, x, alphas_cumprod, 10, eta=1.0, variance_noise=torch.zeros(3))
    with pytest.raises(TypeError, match="model must be a callable"):
        ddim_sample(None, x, alphas_cumprod, 10)
    with pytest.raises(ValueError, match="stds must be positive"):
        GaussianMixture(torch.zeros(2, 2), torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="weights must be positive and sum to 1"):
        GaussianMixture(torch.zeros(2, 2), torch.tensor([0.1, 0.1]), torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match=r"means must have shape \(K, D\)"):
        GaussianMixture(torch.zeros(2), torch.tensor([0.1, 0.1]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampling_on_cuda_matches_the_cpu():
    alphas_cumprod = noise_schedule().alphas_cumprod.double()
    model = lesson_mixture().denoiser(alphas_cumprod)
    x_T = _points(256, torch.float64)
    cpu = ddim_sample(model, x_T, alphas_cumprod, 20, clip_sample=False, progress_bar=False)
    cuda = ddim_sample(model, x_T.cuda(), alphas_cumprod.cuda(), 20, clip_sample=False, progress_bar=False)
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-9, atol=1e-9)


# --- figure and challenges ----------------------------------------------------------------------------


def test_figure():
    fig = plot_quality_vs_steps(steps=(5, 20), etas=(0.0, 1.0), num_samples=100)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="steps and etas must not be empty"):
        plot_quality_vs_steps(steps=())


def test_get_velocity_challenge(diffusers):
    check_get_velocity(get_velocity)
    scheduler = _scheduler(diffusers)
    x0, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(get_velocity(x0, eps, t, scheduler.alphas_cumprod), scheduler.get_velocity(x0, eps, t))

    def wrong_sign(sample, noise, timesteps, alphas_cumprod):
        return -get_velocity(sample, noise, timesteps, alphas_cumprod)

    def flat_alpha(sample, noise, timesteps, alphas_cumprod):  # (B,) against (B, C, H, W): no reshape
        a = alphas_cumprod.to(sample.dtype)[timesteps]
        return a.sqrt() * noise - (1 - a).sqrt() * sample

    for wrong in (wrong_sign, flat_alpha):
        with pytest.raises(AssertionError, match="get_velocity|v does not turn back"):
            check_get_velocity(wrong)


def test_ddim_sample_visited_challenge():
    check_ddim_sample_visited(ddim_sample_visited)

    def diffusers_rule(model, sample, alphas_cumprod, num_inference_steps, *, timestep_spacing="leading"):
        return ddim_sample(model, sample, alphas_cumprod, num_inference_steps, timestep_spacing=timestep_spacing,
                           clip_sample=False, progress_bar=False)

    with pytest.raises(AssertionError, match="linspace spacing, 10 steps"):
        check_ddim_sample_visited(diffusers_rule)


def test_spacings_constant_matches_the_functions():
    assert TIMESTEP_SPACINGS == ("leading", "trailing", "linspace")
