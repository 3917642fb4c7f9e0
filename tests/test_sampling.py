"""The proof that the lesson's DDPM sampler is diffusers' ``DDPMScheduler``: one step and whole trajectories
bit for bit in float32 and to 1e-12 in float64 (schedules, variance and prediction types, clipping, fewer
steps with every spacing), the timesteps of ``set_timesteps``, the pinned last-step difference, the exact
denoiser, the exact law of the output against sampling, errors, the figure and the challenges."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

from torchenstein.diffusion.forward import recover_x0
from torchenstein.diffusion.sampling import (
    PREDICTION_TYPES,
    GaussianMixtureDenoiser,
    Posterior,
    check_posterior_arrays,
    check_predict_epsilon,
    ddpm_output_law,
    ddpm_sample,
    ddpm_step,
    inference_timesteps,
    plot_reverse_process,
    posterior,
    posterior_arrays,
    predict_epsilon,
    predict_x0,
    ring_of_gaussians,
)
from torchenstein.diffusion.schedules import noise_schedule

ALPHAS_CUMPROD = noise_schedule().alphas_cumprod


@pytest.fixture(scope="module")
def ddpm():
    """diffusers' DDPMScheduler class, imported once (diffusers is a test-only reference)."""
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return DDPMScheduler


def _scheduler(ddpm, dtype=torch.float32, **config):
    scheduler = ddpm(**config)
    if dtype == torch.float64:
        # Handed over in float64, diffusers computes every coefficient in float64 too.
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
        scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    return scheduler


def _ours(config):
    """The keyword arguments of ddpm_step/ddpm_sample that a scheduler config sets."""
    keys = ("variance_type", "prediction_type", "clip_sample", "clip_sample_range", "timestep_spacing", "steps_offset")
    return {k: v for k, v in config.items() if k in keys}


STEP_CONFIGS = [
    {},
    {"variance_type": "fixed_large"},
    {"prediction_type": "sample", "clip_sample": False},
    {"prediction_type": "v_prediction", "beta_schedule": "squaredcos_cap_v2"},
    {"beta_schedule": "squaredcos_cap_v2", "variance_type": "fixed_large", "clip_sample_range": 0.5},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False},
]


@pytest.mark.parametrize("config", STEP_CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_step_matches_diffusers(ddpm, config, dtype):
    scheduler = _scheduler(ddpm, dtype, **config)
    ac = scheduler.alphas_cumprod
    kw = {k: v for k, v in _ours(config).items() if k not in ("timestep_spacing", "steps_offset")}
    g = torch.Generator().manual_seed(0)
    for t in (999, 998, 500, 37, 1, 0):
        sample = 2 * torch.randn(3, 1, 4, 4, generator=g, dtype=dtype)
        output = torch.randn(3, 1, 4, 4, generator=g, dtype=dtype)
        theirs = scheduler.step(output, t, sample, generator=torch.Generator().manual_seed(t))
        ours = ddpm_step(output, t, sample, ac, generator=torch.Generator().manual_seed(t), **kw)
        if dtype == torch.float32:  # the same operations in the same order: the same bits
            assert torch.equal(ours.prev_sample, theirs.prev_sample), (config, t)
            assert torch.equal(ours.pred_original_sample, theirs.pred_original_sample), (config, t)
        else:
            torch.testing.assert_close(ours.prev_sample, theirs.prev_sample, rtol=0, atol=1e-12)
            torch.testing.assert_close(ours.pred_original_sample, theirs.pred_original_sample, rtol=0, atol=1e-12)
        # The noise passed in, instead of drawn: diffusers' draw from the same seed.
        noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(t), dtype=dtype)
        passed = ddpm_step(output, t, sample, ac, noise=noise, **kw)
        assert torch.equal(passed.prev_sample, ours.prev_sample)


# (scheduler config, num_inference_steps): schedules, variance and prediction types, spacings, offsets.
TRAJECTORIES = [
    ({}, None),
    ({"beta_schedule": "squaredcos_cap_v2", "variance_type": "fixed_large", "prediction_type": "v_prediction"}, None),
    ({"variance_type": "fixed_large", "prediction_type": "sample"}, 50),
    ({"beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "linspace"}, 20),
    ({"timestep_spacing": "leading", "steps_offset": 1, "prediction_type": "v_prediction"}, 30),
    ({"timestep_spacing": "trailing", "clip_sample": False}, 25),
    ({"num_train_timesteps": 100, "variance_type": "fixed_large", "timestep_spacing": "linspace"}, 7),
]


def _diffusers_trajectory(scheduler, model, shape, num_inference_steps, generator, dtype):
    """DDPMPipeline's loop: the starting noise, then a step per timestep, every draw from one generator."""
    if num_inference_steps is not None:
        scheduler.set_timesteps(num_inference_steps)
    x = torch.randn(shape, generator=generator, dtype=dtype)
    trajectory = [x]
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t), t, x, generator=generator).prev_sample
        trajectory.append(x)
    return torch.stack(trajectory)


@pytest.mark.parametrize(("config", "steps"), TRAJECTORIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_trajectory_matches_diffusers(ddpm, config, steps, dtype):
    if steps is None and dtype == torch.float64:
        pytest.skip("1000 steps are proved in float32; float64 runs the shorter trajectories")
    scheduler = _scheduler(ddpm, dtype, **config)
    ac = scheduler.alphas_cumprod
    model = GaussianMixtureDenoiser(ring_of_gaussians(), 0.08, ac,
                                    prediction_type=config.get("prediction_type", "epsilon"))
    theirs = _diffusers_trajectory(scheduler, model, (64, 2), steps, torch.Generator().manual_seed(1), dtype)
    _, ours = ddpm_sample(model, (64, 2), ac, num_inference_steps=steps, generator=torch.Generator().manual_seed(1),
                          dtype=dtype, return_trajectory=True, **_ours(config))
    assert ours.shape == theirs.shape
    last_above_zero = steps is not None and int(scheduler.timesteps[-1]) > 0
    if last_above_zero:
        # Where the timesteps end above 0, diffusers' last step adds sqrt(1e-20) = 1e-10 times noise.
        torch.testing.assert_close(ours[:-1], theirs[:-1], rtol=0, atol=0 if dtype == torch.float32 else 1e-12)
        torch.testing.assert_close(ours[-1], theirs[-1], rtol=0, atol=1e-9 if dtype == torch.float64 else 1e-6)
    elif dtype == torch.float32:
        assert torch.equal(ours, theirs)
    else:
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_diffusers_adds_noise_on_a_last_step_above_zero_and_we_do_not(ddpm):
    """Pinned difference: trailing steps end at 99, and diffusers' fixed_large last step adds sqrt(beta) z."""
    config = {"timestep_spacing": "trailing", "variance_type": "fixed_large"}
    scheduler = _scheduler(ddpm, torch.float64, **config)
    ac = scheduler.alphas_cumprod
    model = GaussianMixtureDenoiser(ring_of_gaussians(), 0.08, ac)
    theirs = _diffusers_trajectory(scheduler, model, (256, 2), 10, torch.Generator().manual_seed(2), torch.float64)
    generator = torch.Generator().manual_seed(2)
    ours = ddpm_sample(model, (256, 2), ac, num_inference_steps=10, generator=generator, dtype=torch.float64, **config)
    # Ours drew nothing on the last step, so the generator's next draw is the noise diffusers added there.
    last_noise = torch.randn(256, 2, generator=generator, dtype=torch.float64)
    assert int(scheduler.timesteps[-1]) == 99
    torch.testing.assert_close(theirs[-1], ours + (1 - ac[99]).sqrt() * last_noise, rtol=0, atol=1e-12)
    assert (theirs[-1] - ours).std().item() > 0.3


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_inference_timesteps_match_set_timesteps(ddpm, spacing):
    for T in (1000, 100, 37, 7, 1):
        counts = sorted(n for n in {1, 2, 3, T // 3, T // 2, T - 1, T} | set(range(1, min(T, 60) + 1)) if 1 <= n <= T)
        for n in counts:
            for offset in ((0, 1) if spacing == "leading" and (n - 1) * (T // n) + 1 < T else (0,)):
                scheduler = ddpm(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
                scheduler.set_timesteps(n)
                ours = inference_timesteps(n, T, spacing, offset)
                assert ours.dtype == torch.int64
                assert torch.equal(ours, scheduler.timesteps), (T, n, spacing, offset)


def test_posterior_is_gaussian_conditioning_for_every_jump():
    ac = noise_schedule(beta_schedule="squaredcos_cap_v2").alphas_cumprod.double()
    for t, prev_t in ((1, 0), (500, 499), (999, 998), (800, 600), (999, 0), (300, 17)):
        c = posterior(ac, t, prev_t)
        alpha = ac[t] / ac[prev_t]
        var_prev, var_t = 1 - ac[prev_t], 1 - ac[t]
        cov = alpha.sqrt() * var_prev
        torch.testing.assert_close(c.posterior_mean_coef2, cov / var_t)
        torch.testing.assert_close(c.posterior_mean_coef1, ac[prev_t].sqrt() - cov / var_t * ac[t].sqrt())
        torch.testing.assert_close(c.posterior_variance, var_prev - cov**2 / var_t)
        torch.testing.assert_close(c.beta, 1 - alpha)
    last = posterior(ac, 0)  # lands on the data: the mean is x0_hat, and no noise
    assert last.posterior_variance.item() == 0.0 and last.posterior_mean_coef1.item() == 1.0
    assert last.posterior_mean_coef2.item() == 0.0


def test_predict_x0_inverts_the_forward_process_for_every_prediction_type():
    ac = ALPHAS_CUMPROD.double()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    for t in (0, 10, 500, 999):
        a, b = ac[t].sqrt(), (1 - ac[t]).sqrt()
        x_t, v = a * x0 + b * eps, a * eps - b * x0
        for kind, output in (("epsilon", eps), ("sample", x0), ("v_prediction", v)):
            torch.testing.assert_close(predict_x0(output, t, x_t, ac, kind), x0, rtol=1e-8, atol=1e-8)
            torch.testing.assert_close(predict_epsilon(output, t, x_t, ac, kind), eps, rtol=1e-8, atol=1e-8)
        # For a noise prediction it is the forward lesson's challenge, recover_x0.
        torch.testing.assert_close(predict_x0(eps, t, x_t, ac), recover_x0(x_t, t, ac, eps))


def test_exact_denoiser_is_consistent_and_single_gaussian_is_linear():
    ac = ALPHAS_CUMPROD.double()
    models = {k: GaussianMixtureDenoiser(ring_of_gaussians(5, 0.7), 0.1, ac, prediction_type=k) for k in PREDICTION_TYPES}
    x_t = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.randint(0, 1000, (32,), generator=torch.Generator().manual_seed(1))
    eps, x0, v = (models[k](x_t, t) for k in PREDICTION_TYPES)
    a, b = ac[t].sqrt()[:, None], (1 - ac[t]).sqrt()[:, None]
    torch.testing.assert_close(a * x0 + b * eps, x_t)  # the guesses add up to x_t
    torch.testing.assert_close(v, a * eps - b * x0)
    # One component: E[eps | x_t] = sqrt(1 - alpha_bar) (x_t - sqrt(alpha_bar) mu) / s^2.
    mu = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    one = GaussianMixtureDenoiser(mu, 0.5, ac)
    s2 = ac[t][:, None] * 0.25 + 1 - ac[t][:, None]
    torch.testing.assert_close(one(x_t, t), b * (x_t - a * mu) / s2)
    assert one(x_t.float(), 500).dtype == torch.float32  # one timestep for all, dtype kept


def test_exact_denoiser_beats_any_shifted_or_scaled_version():
    """A conditional expectation minimises the squared error: nudging it only makes it worse."""
    ac = ALPHAS_CUMPROD
    model = GaussianMixtureDenoiser(ring_of_gaussians(), 0.08, ac)
    g = torch.Generator().manual_seed(0)
    x0 = model.sample_data(20000, g).double()
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    for t in (50, 300, 700):
        x_t = ac[t].double().sqrt() * x0 + (1 - ac[t].double()).sqrt() * eps
        best = (model(x_t, t) - eps).pow(2).mean()
        for nudged in (1.05 * model(x_t, t), 0.95 * model(x_t, t), model(x_t, t) + 0.03):
            assert best < (nudged - eps).pow(2).mean()


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_exact_law_matches_sampling_a_gaussian(variance_type):
    ac = ALPHAS_CUMPROD
    model = GaussianMixtureDenoiser(torch.tensor([[0.5]]), 0.3, ac)
    N, steps = 40000, 20
    x = ddpm_sample(model, (N, 1), ac, num_inference_steps=steps, variance_type=variance_type, clip_sample=False,
                    generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, std = ddpm_output_law(0.5, 0.3, ac, inference_timesteps(steps), variance_type=variance_type)
    assert abs(x.mean().item() - mean) < 5 * std / math.sqrt(N)
    assert abs(x.std().item() - std) < 5 * std / math.sqrt(2 * N)
    assert abs(std - 0.3) > 10 * std / math.sqrt(2 * N)  # 20 steps: visibly not the data's 0.3


def test_sampling_with_the_exact_denoiser_reproduces_the_data():
    ac = ALPHAS_CUMPROD
    means = ring_of_gaussians()
    model = GaussianMixtureDenoiser(means, 0.08, ac)
    N = 600
    x = ddpm_sample(model, (N, 2), ac, variance_type="fixed_large", generator=torch.Generator().manual_seed(5)).double()
    variance = 0.6**2 / 2 + 0.08**2
    assert (x.mean(0).abs() < 5 * math.sqrt(variance / N)).all()
    assert (x.var(0) - variance).abs().max() < 5 * variance * math.sqrt(2 / (N - 1))
    nearest = torch.cdist(x, means).argmin(1)
    assert ((torch.bincount(nearest, minlength=8) - N / 8).abs() < 5 * math.sqrt(N / 8 * 7 / 8)).all()
    spread = (x - means[nearest]).std().item()
    assert abs(spread - 0.08) < 5 * 0.08 / math.sqrt(4 * N)


def test_same_seed_same_samples_and_the_model_sees_int64_batches():
    seen = []

    def model(x_t, t):
        seen.append((t.dtype, tuple(t.shape), t.device))
        return torch.zeros_like(x_t)

    a = ddpm_sample(model, (3, 2), ALPHAS_CUMPROD, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    b = ddpm_sample(model, (3, 2), ALPHAS_CUMPROD, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert set(seen) == {(torch.int64, (3,), torch.device("cpu"))} and len(seen) == 10


def test_errors_name_the_argument():
    ac, x = ALPHAS_CUMPROD, torch.zeros(2, 2)
    cases = [
        (lambda: ddpm_step(x, 1000, x, ac), ValueError, "timestep must lie in 0..999"),
        (lambda: ddpm_step(x, 5, x, ac, prev_timestep=5), ValueError, "prev_timestep must lie in -1..4"),
        (lambda: ddpm_step(x, 5.0, x, ac), TypeError, "timestep must be an int"),
        (lambda: ddpm_step(x, torch.tensor([1, 2]), x, ac), TypeError, "timestep must be an int"),
        (lambda: ddpm_step(x, 5, x, ac, variance_type="learned"), ValueError, "variance_type must be one of"),
        (lambda: ddpm_step(x, 5, x, ac, prediction_type="x0"), ValueError, "prediction_type must be one of"),
        (lambda: ddpm_step(x, 5, x, ac, clip_sample=1), TypeError, "clip_sample must be a bool"),
        (lambda: ddpm_step(x, 5, x, ac, clip_sample_range=0), ValueError, "clip_sample_range must be a positive"),
        (lambda: ddpm_step(torch.zeros(2, 3), 5, x, ac), ValueError, "model_output must have sample's shape"),
        (lambda: ddpm_step(x.long(), 5, x, ac), TypeError, "model_output must be a floating-point"),
        (lambda: ddpm_step(x, 5, x, ac, noise=torch.zeros(3)), ValueError, "noise must be a tensor of sample's shape"),
        (lambda: posterior(ac.long(), 5), TypeError, "alphas_cumprod must be a 1-D floating-point"),
        (lambda: inference_timesteps(0), ValueError, "num_inference_steps must lie in 1..num_train_timesteps=1000"),
        (lambda: inference_timesteps(10, 1000, "uniform"), ValueError, "timestep_spacing must be one of"),
        (lambda: inference_timesteps(10, 1000, "leading", 100), ValueError, "steps_offset must be at least 0"),
        (lambda: inference_timesteps(2.5), TypeError, "num_inference_steps must be an int"),
        (lambda: ddpm_sample(lambda x_t, t: x_t[:, :1], (2, 2), ac, num_inference_steps=2), ValueError,
         "model must return a tensor of x_t's shape"),
        (lambda: GaussianMixtureDenoiser(torch.zeros(3), 0.1, ac), ValueError, r"means must have shape \(K, D\)"),
        (lambda: GaussianMixtureDenoiser(torch.zeros(3, 2, dtype=torch.long), 0.1, ac), TypeError,
         "means must be a floating-point"),
        (lambda: GaussianMixtureDenoiser(torch.zeros(3, 2), 0.0, ac), ValueError, "std must be a positive"),
        (lambda: GaussianMixtureDenoiser(torch.zeros(3, 2), 0.1, ac, weights=torch.ones(2)), ValueError, "weights"),
        (lambda: plot_reverse_process(shown=(1000,)), ValueError, "shown must hold timesteps"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_challenges_accept_the_solutions_and_reject_wrong_attempts():
    check_posterior_arrays(posterior_arrays)
    check_predict_epsilon(predict_epsilon)

    def off_by_one(alphas_cumprod):  # Hammer's: alphas_cumprod[t - 1] wraps round at t = 0
        prev = alphas_cumprod.roll(1)
        beta = 1 - alphas_cumprod / prev
        return Posterior(prev.sqrt() * beta / (1 - alphas_cumprod),
                         (1 - beta).sqrt() * (1 - prev) / (1 - alphas_cumprod),
                         beta * (1 - prev) / (1 - alphas_cumprod), beta)

    with pytest.raises(AssertionError, match="at timestep 0"):
        check_posterior_arrays(off_by_one)

    def v_forgotten(model_output, timestep, sample, alphas_cumprod, prediction_type="epsilon"):
        if prediction_type == "v_prediction":
            return model_output
        return predict_epsilon(model_output, timestep, sample, alphas_cumprod, prediction_type)

    with pytest.raises(AssertionError, match="v_prediction"):
        check_predict_epsilon(v_forgotten)


def test_plot_reverse_process_draws_every_panel():
    fig = plot_reverse_process(num_samples=30, shown=(999, 10))
    assert isinstance(fig, Figure) and len(fig.axes) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_step_and_sampler_on_cuda_match_diffusers(ddpm):
    scheduler = ddpm(variance_type="fixed_large")
    ac = scheduler.alphas_cumprod
    sample = torch.randn(4, 1, 8, 8, device="cuda")
    output = torch.randn(4, 1, 8, 8, device="cuda")
    for t in (999, 500, 0):
        theirs = scheduler.step(output, t, sample, generator=torch.Generator().manual_seed(t))
        ours = ddpm_step(output, t, sample, ac, variance_type="fixed_large", generator=torch.Generator().manual_seed(t))
        assert ours.prev_sample.device.type == "cuda"
        torch.testing.assert_close(ours.prev_sample, theirs.prev_sample, rtol=1e-6, atol=1e-6)
    model = GaussianMixtureDenoiser(ring_of_gaussians(), 0.08, ac).to("cuda")
    x = ddpm_sample(model, (16, 2), ac, num_inference_steps=10, generator=torch.Generator().manual_seed(0),
                    device="cuda")
    y = ddpm_sample(model.cpu(), (16, 2), ac, num_inference_steps=10, generator=torch.Generator().manual_seed(0))
    assert x.device.type == "cuda"
    torch.testing.assert_close(x.cpu(), y, rtol=1e-4, atol=1e-4)
