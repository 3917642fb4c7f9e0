"""The proof that the DDPM lesson trains what it says: the loss against a hand computation from the forward
lesson's draws, for every prediction type, on the MLP and the U-Net; the v target bit for bit against
diffusers' ``get_velocity``; exact round trips between the three predictions; the SNR weighting; the EMA
bit for bit against ``AveragedModel``; training that lowers the error (and Hammer's shared noise that lowers
it less); errors, figures and challenges."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from torchenstein.diffusion.ddpm import (
    PREDICTION_TYPES,
    check_ema_warmup_decay,
    check_min_snr_loss_weights,
    convert_prediction,
    ddpm_loss,
    denormalize,
    ema_copy,
    ema_update,
    ema_warmup_decay,
    min_snr_loss_weights,
    mse_by_timestep,
    normalize,
    plot_loss_by_timestep,
    plot_training_curve,
    predicted_x0_and_epsilon,
    snr_weighting,
    spiral_data,
    train_ddpm,
    training_target,
    velocity,
)
from torchenstein.diffusion.denoiser import MLPDenoiser, UNet
from torchenstein.diffusion.forward import _bundled_digits, load_digit_images, noisy_training_batch, q_sample
from torchenstein.diffusion.schedules import noise_schedule
from torchenstein.training.adam import AdamW

SCHEDULE = noise_schedule()
ALPHAS_CUMPROD = SCHEDULE.alphas_cumprod
SCHEDULER_SETTINGS = [
    {},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2"},
    {"num_train_timesteps": 10},
]


@pytest.fixture(scope="module")
def ddpm_scheduler():
    """diffusers' DDPMScheduler class, imported once (diffusers is a test-only reference)."""
    pytest.importorskip("diffusers")
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    return DDPMScheduler


def _randn(shape, seed, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _timesteps(batch, T, seed):
    """One timestep per sample, with both ends of the schedule in it."""
    t = torch.randint(0, T, (batch,), generator=torch.Generator().manual_seed(seed))
    t[0], t[-1] = 0, T - 1
    return t


class _Recorder(nn.Module):
    """A denoiser that answers a fixed function of its input and remembers what it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.calls = []

    def forward(self, x_t, t, class_labels=None):
        self.calls.append((x_t.detach().clone(), t.clone()))
        return self.scale * x_t


# ---- the loss ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("shape", [(64, 2), (3, 1, 8, 8)])
def test_loss_equals_the_hand_computation_from_the_forward_lessons_draws(prediction_type, shape):
    x0 = _randn(shape, 0, torch.float32)
    model = _Recorder()
    loss = ddpm_loss(model, x0, SCHEDULE, torch.Generator().manual_seed(3), prediction_type)
    x_t, t, noise = noisy_training_batch(x0, ALPHAS_CUMPROD, torch.Generator().manual_seed(3))
    seen_x_t, seen_t = model.calls[0]
    assert torch.equal(seen_t, t) and torch.equal(seen_x_t, x_t)
    target = {"epsilon": noise, "sample": x0, "v_prediction": velocity(x0, t, ALPHAS_CUMPROD, noise)}[prediction_type]
    expected = ((0.5 * x_t - target) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.scale.grad is not None and model.scale.grad != 0


def test_loss_on_the_unet_and_the_mlp_backpropagates():
    torch.manual_seed(0)
    for model, x0 in ((UNet(block_out_channels=(8, 16), norm_num_groups=4), torch.randn(2, 1, 8, 8)),
                      (MLPDenoiser(hidden_dim=16), torch.randn(5, 2))):
        loss = ddpm_loss(model, x0, ALPHAS_CUMPROD, torch.Generator().manual_seed(0))
        assert loss.dim() == 0 and loss.dtype == torch.float32
        # A zero-initialised output layer predicts 0: the loss is the mean square of the noise drawn.
        _, _, noise = noisy_training_batch(x0, ALPHAS_CUMPROD, torch.Generator().manual_seed(0))
        torch.testing.assert_close(loss, (noise**2).mean())
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_loss_timesteps_are_uniform_over_zero_to_T_minus_one():
    model = _Recorder()
    T = 3
    ddpm_loss(model, torch.zeros(3000, 1), noise_schedule(T).alphas_cumprod, torch.Generator().manual_seed(0))
    t = model.calls[0][1]
    counts = torch.bincount(t, minlength=T)
    assert t.dtype == torch.int64 and int(t.min()) == 0 and int(t.max()) == T - 1 and len(counts) == T
    assert ((counts - 1000).abs() <= 6 * (1000 * 2 / 3) ** 0.5).all()


def test_loss_noise_is_fresh_for_every_sample():
    model = _Recorder()
    x0 = torch.zeros(4000, 2)
    ddpm_loss(model, x0, noise_schedule(1, 0.5, 0.5).alphas_cumprod, torch.Generator().manual_seed(0))
    x_t = model.calls[0][0] / 0.5**0.5  # with one timestep of beta 1/2 and x0 = 0, x_t / sqrt(1/2) is the noise
    assert (x_t.std(dim=0) - 1).abs().max() < 0.06
    assert abs(torch.corrcoef(x_t.T)[0, 1].item()) < 0.06


def test_loss_is_reproducible_and_uses_the_global_generator_without_one():
    x0 = torch.randn(16, 2)
    model = MLPDenoiser(hidden_dim=8)
    with torch.no_grad():
        model.output.weight.normal_()
    a = ddpm_loss(model, x0, SCHEDULE, torch.Generator().manual_seed(1))
    b = ddpm_loss(model, x0, SCHEDULE, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    torch.manual_seed(5)
    c = ddpm_loss(model, x0, SCHEDULE)
    torch.manual_seed(5)
    assert torch.equal(c, ddpm_loss(model, x0, SCHEDULE))


def test_loss_dtypes():
    model = MLPDenoiser(hidden_dim=8).double()
    assert ddpm_loss(model, torch.randn(4, 2, dtype=torch.float64), SCHEDULE).dtype == torch.float64
    half = MLPDenoiser(hidden_dim=8).to(torch.bfloat16)
    assert ddpm_loss(half, torch.randn(4, 2, dtype=torch.bfloat16), SCHEDULE).dtype == torch.float32


def test_loss_errors():
    model = MLPDenoiser(hidden_dim=8)
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        ddpm_loss(model, torch.randn(4, 2), SCHEDULE, prediction_type="noise")
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        ddpm_loss(model, torch.ones(4, 2, dtype=torch.int64), SCHEDULE)
    with pytest.raises(ValueError, match="x0 must hold at least one sample"):
        ddpm_loss(model, torch.randn(0, 2), SCHEDULE)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        ddpm_loss(model, torch.randn(4, 2), [0.5, 0.4])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        ddpm_loss(model, torch.randn(4, 2), SCHEDULE, generator=0)
    with pytest.raises(ValueError, match=r"model\(x_t, t\) must return a tensor of x0's shape \(4, 2\), got \(4, 1\)"):
        ddpm_loss(lambda x_t, t: x_t[:, :1], torch.randn(4, 2), SCHEDULE)


# ---- the three targets ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("settings", SCHEDULER_SETTINGS)
def test_velocity_equals_diffusers_bit_for_bit(ddpm_scheduler, dtype, settings):
    scheduler = ddpm_scheduler(**settings)
    T = scheduler.config.num_train_timesteps
    for seed, shape in enumerate([(6, 1, 8, 8), (5, 2), (1, 3, 4, 4)]):
        x0, noise = _randn(shape, seed, dtype), _randn(shape, seed + 10, dtype)
        for t in (_timesteps(shape[0], T, seed), _timesteps(shape[0], T, seed).to(torch.int32), torch.tensor(T - 1)):
            theirs = scheduler.get_velocity(x0, noise, t)
            ours = velocity(x0, t, scheduler.alphas_cumprod, noise)
            assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), (settings, dtype, shape)


@pytest.mark.parametrize("schedule", [SCHEDULE, noise_schedule(beta_schedule="squaredcos_cap_v2"),
                                      noise_schedule(rescale_betas_zero_snr=True)])
def test_round_trips_between_all_three_predictions_in_float64(schedule):
    alpha_bar = schedule.alphas_cumprod.double()
    T = len(alpha_bar)
    # Stop one short of a zero terminal alpha_bar, where eps -> x0 divides by zero (tested below).
    t = _timesteps(64, T - 1 if alpha_bar[-1] == 0 else T, 0)
    x0, eps = _randn((64, 3), 1), _randn((64, 3), 2)
    x_t = q_sample(x0, t, alpha_bar, eps)
    truth = {"epsilon": eps, "sample": x0, "v_prediction": velocity(x0, t, alpha_bar, eps)}
    for a in PREDICTION_TYPES:
        x0_hat, eps_hat = predicted_x0_and_epsilon(truth[a], x_t, t, alpha_bar, a)
        torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-10)
        torch.testing.assert_close(eps_hat, eps, rtol=0, atol=1e-10)
        for b in PREDICTION_TYPES:
            there = convert_prediction(truth[a], x_t, t, alpha_bar, a, b)
            back = convert_prediction(there, x_t, t, alpha_bar, b, a)
            torch.testing.assert_close(there, truth[b], rtol=0, atol=1e-10)
            torch.testing.assert_close(back, truth[a], rtol=0, atol=1e-10)


def test_v_conversions_never_divide_but_epsilon_ones_do():
    alpha_bar = noise_schedule(rescale_betas_zero_snr=True).alphas_cumprod.double()
    last = torch.tensor([len(alpha_bar) - 1, len(alpha_bar) - 1])
    x_t, v = _randn((2, 2), 0), _randn((2, 2), 1)
    x0_hat, eps_hat = predicted_x0_and_epsilon(v, x_t, last, alpha_bar, "v_prediction")
    # At alpha_bar = 0: x0 = -v and eps = x_t, exactly.
    assert torch.equal(x0_hat, -v) and torch.equal(eps_hat, x_t)
    assert not convert_prediction(v, x_t, last, alpha_bar, "epsilon", "sample").isfinite().all()


def test_training_targets_and_float16_conversion():
    x0, noise, t = _randn((4, 2), 0, torch.float32), _randn((4, 2), 1, torch.float32), torch.tensor([0, 5, 500, 999])
    assert training_target(x0, noise, t, ALPHAS_CUMPROD, "epsilon") is noise
    assert training_target(x0, noise, t, ALPHAS_CUMPROD, "sample") is x0
    assert torch.equal(training_target(x0, noise, t, ALPHAS_CUMPROD, "v_prediction"),
                       velocity(x0, t, ALPHAS_CUMPROD, noise))
    # Half precision is computed in float32 and rounded once.
    half = velocity(x0.half(), t, ALPHAS_CUMPROD, noise.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(half, velocity(x0.half().float(), t, ALPHAS_CUMPROD, noise.half().float()).half())


def test_conversion_errors():
    x_t = torch.randn(2, 2)
    with pytest.raises(ValueError, match="to_type must be one of"):
        convert_prediction(x_t, x_t, 0, ALPHAS_CUMPROD, "epsilon", "x0")
    with pytest.raises(ValueError, match=r"prediction must have x_t's shape \(2, 2\), got \(2, 1\)"):
        predicted_x0_and_epsilon(x_t[:, :1], x_t, 0, ALPHAS_CUMPROD)
    with pytest.raises(TypeError, match="prediction must be a floating-point tensor"):
        predicted_x0_and_epsilon(x_t.long(), x_t, 0, ALPHAS_CUMPROD)
    with pytest.raises(ValueError, match="t must hold timesteps from 0 to 999"):
        velocity(x_t, torch.tensor([0, 1000]), ALPHAS_CUMPROD, x_t)


def test_snr_weighting_makes_the_three_losses_one():
    alpha_bar = ALPHAS_CUMPROD.double()
    t = _timesteps(256, 1000, 3)
    x0, eps = _randn((256, 2), 4), _randn((256, 2), 5)
    x_t = q_sample(x0, t, alpha_bar, eps)
    eps_hat = eps + 0.3 * _randn((256, 2), 6)
    truth = {"epsilon": eps, "sample": x0, "v_prediction": velocity(x0, t, alpha_bar, eps)}
    x0_error = ((convert_prediction(eps_hat, x_t, t, alpha_bar, "epsilon", "sample") - x0) ** 2).sum(1)
    for kind in PREDICTION_TYPES:
        error = ((convert_prediction(eps_hat, x_t, t, alpha_bar, "epsilon", kind) - truth[kind]) ** 2).sum(1)
        torch.testing.assert_close(error, snr_weighting(t, alpha_bar, kind) * x0_error, rtol=1e-9, atol=0)
    assert snr_weighting(7, alpha_bar, "sample").shape == ()


# ---- the EMA -------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(torch.optim.swa_utils, "get_ema_multi_avg_fn"),
                    reason="get_ema_multi_avg_fn arrived in PyTorch 2.1")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decay", [0.9, 0.999, 0.0, 1.0])
def test_ema_equals_averaged_model_bit_for_bit(dtype, decay):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    net = MLPDenoiser(hidden_dim=16).to(dtype)
    ours = ema_copy(net)
    theirs = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))
    theirs.update_parameters(net)
    formula = [p.detach().clone() for p in net.parameters()]
    optimizer = AdamW(net.parameters(), lr=1e-2)
    data = torch.randn(64, 2, dtype=dtype)
    for step in range(20):
        loss = ddpm_loss(net, data, SCHEDULE, torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(ours, net, decay)
        theirs.update_parameters(net)
        formula = [decay * f + (1 - decay) * p.detach() for f, p in zip(formula, net.parameters(), strict=True)]
    for a, b, f in zip(ours.parameters(), theirs.module.parameters(), formula, strict=True):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, f)
    assert not ours.training and not any(p.requires_grad for p in ours.parameters())


def test_ema_copies_buffers_and_leaves_the_model_alone():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ema = ema_copy(net)
    net(torch.randn(8, 3) * 5 + 2)  # training mode: the running statistics move
    before = [p.detach().clone() for p in net.parameters()]
    ema_update(ema, net, 0.5)
    assert torch.equal(ema[1].running_mean, net[1].running_mean)
    assert int(ema[1].num_batches_tracked) == 1
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_ema_errors():
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\], got -0.1"):
        ema_update(ema_copy(net), net, -0.1)
    with pytest.raises(TypeError, match="decay must be a real number"):
        ema_update(ema_copy(net), net, "0.9")
    with pytest.raises(ValueError, match="ema_model and model must have the same parameters"):
        ema_update(nn.Linear(2, 3), net, 0.9)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        ema_update(net, "net", 0.9)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        ema_copy("net")


# ---- training ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spiral_runs():
    """The spiral denoiser trained for 150 steps twice: as the lesson does, and with Hammer's shared noise."""
    points = spiral_data()
    torch.manual_seed(0)
    start = MLPDenoiser(hidden_dim=64)
    untrained = ema_copy(start)
    run = train_ddpm(ema_copy(start).train().requires_grad_(True), points, SCHEDULE, steps=150, seed=0,
                     progress_bar=False)

    # Hammer's run: the same model, data, steps and seed, one noise per batch.
    torch.manual_seed(0)
    hammer = MLPDenoiser(hidden_dim=64)
    optimizer = AdamW(hammer.parameters(), lr=1e-2, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        x0 = points[torch.randint(0, len(points), (128,), generator=g)]
        t = torch.randint(0, 1000, (128,), generator=g)
        noise = torch.randn(1, 2, generator=g).expand_as(x0)
        loss = ((hammer(q_sample(x0, t, ALPHAS_CUMPROD, noise), t) - noise) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return points, untrained, run, hammer


def test_training_lowers_the_error_well_below_the_untrained_model(spiral_runs):
    points, untrained, run, _ = spiral_runs
    timesteps = [250, 400, 500, 750, 999]
    before = mse_by_timestep(untrained, points, SCHEDULE, timesteps, torch.Generator().manual_seed(1))
    for model in (run.model, run.ema_model):
        after = mse_by_timestep(model, points, SCHEDULE, timesteps, torch.Generator().manual_seed(1))
        assert (after < 0.6 * before).all(), (timesteps, before.tolist(), after.tolist())
    assert sum(run.losses[-20:]) / 20 < 0.6 * sum(run.losses[:5]) / 5 + 0.4
    assert sum(run.losses[-20:]) / 20 < 0.4
    assert run.model.training and not run.ema_model.training


def test_recovered_x0_beats_the_untrained_guess(spiral_runs):
    points, _, run, _ = spiral_runs
    for t, margin in ((50, 1.05), (250, 0.8)):
        noise = torch.randn(points.shape, generator=torch.Generator().manual_seed(2))
        x_t = q_sample(points, t, ALPHAS_CUMPROD, noise)
        with torch.no_grad():
            x0_hat, _ = predicted_x0_and_epsilon(run.ema_model(x_t, t), x_t, t, ALPHAS_CUMPROD)
        ours = (x0_hat - points).norm(dim=1).mean()
        naive = (x_t / ALPHAS_CUMPROD[t].sqrt() - points).norm(dim=1).mean()
        assert ours < margin * naive, (t, ours.item(), naive.item())
    assert ours < 0.3 * points.norm(dim=1).mean() + naive  # sanity: finite and on the data's scale


def test_hammers_shared_noise_learns_less(spiral_runs):
    points, _, run, hammer = spiral_runs
    g = torch.Generator().manual_seed(7)
    x0 = points[torch.randint(0, len(points), (8000,), generator=g)]
    t = torch.randint(0, 1000, (8000,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = q_sample(x0, t, ALPHAS_CUMPROD, noise)
    with torch.no_grad():
        ours = ((run.model(x_t, t) - noise) ** 2).mean()
        hammers = ((hammer(x_t, t) - noise) ** 2).mean()
    assert hammers > 1.1 * ours, (ours.item(), hammers.item())


def test_train_is_reproducible_and_v_prediction_trains():
    points = spiral_data(50)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(train_ddpm(MLPDenoiser(hidden_dim=16), points, SCHEDULE, steps=5, seed=4, progress_bar=False))
    assert runs[0].losses == runs[1].losses
    torch.manual_seed(3)
    v_run = train_ddpm(MLPDenoiser(hidden_dim=16), points, SCHEDULE, steps=30, prediction_type="v_prediction",
                       progress_bar=False)
    assert sum(v_run.losses[-5:]) < sum(v_run.losses[:5])


def test_mse_by_timestep_restores_modes_and_takes_plain_functions():
    model = MLPDenoiser(hidden_dim=8).train()
    mse_by_timestep(model, torch.randn(4, 2), SCHEDULE, [0, 999])
    assert model.training
    model.eval()
    mse_by_timestep(model, torch.randn(4, 2), SCHEDULE, [0])
    assert not model.training
    zero = mse_by_timestep(lambda x_t, t: torch.zeros_like(x_t), torch.zeros(4000, 1), SCHEDULE, [10, 900],
                           torch.Generator().manual_seed(0))
    assert ((zero - 1).abs() < 0.1).all()


def test_train_errors():
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        train_ddpm(MLPDenoiser(hidden_dim=8), torch.randn(4, 2), SCHEDULE, steps=0)
    with pytest.raises(TypeError, match="data must be a floating-point tensor"):
        train_ddpm(MLPDenoiser(hidden_dim=8), torch.ones(4, 2, dtype=torch.int64), SCHEDULE)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        train_ddpm(lambda x, t: x, torch.randn(4, 2), SCHEDULE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda():
    model = MLPDenoiser(hidden_dim=16).cuda()
    data = torch.randn(64, 2, device="cuda")
    loss = ddpm_loss(model, data, SCHEDULE, torch.Generator().manual_seed(0))
    assert loss.device.type == "cuda"
    run = train_ddpm(model, data, SCHEDULE, steps=3, progress_bar=False)
    assert next(run.ema_model.parameters()).device.type == "cuda"
    assert mse_by_timestep(run.ema_model, data, SCHEDULE, [0, 500]).device.type == "cuda"


# ---- data scale, figures, challenges -------------------------------------------------------------


def test_normalize_is_load_digit_images_bit_for_bit_and_denormalize_inverts_it():
    pixels, _ = _bundled_digits()
    images, _ = load_digit_images()
    assert torch.equal(normalize(pixels).reshape(-1, 1, 8, 8), images)
    assert torch.equal(denormalize(images).reshape(-1, 64), pixels)
    assert torch.equal(denormalize(torch.tensor([-3.0, 3.0]), 2.0, 4.0), torch.tensor([2.0, 4.0]))
    with pytest.raises(ValueError, match="high must be above low, got low=1.0, high=1.0"):
        normalize(pixels, 1.0, 1.0)
    with pytest.raises(TypeError, match="expected a floating-point tensor"):
        denormalize(torch.ones(2, dtype=torch.int64))


def test_figures():
    assert isinstance(plot_loss_by_timestep(steps=10, num_timesteps=4), Figure)
    assert isinstance(plot_training_curve(steps=10, window=3), Figure)


# diffusers keeps its reference formulas in diffusers.training_utils, whose import costs more than a second;
# the two below are copied from it (compute_snr with the min-SNR lines of its training scripts, and
# EMAModel.get_decay with its defaults: update_after_step=0, use_ema_warmup=False, min_decay=0).


def _diffusers_min_snr_weights(alphas_cumprod, timesteps, snr_gamma, prediction_type):
    sqrt_alphas_cumprod = alphas_cumprod**0.5
    sqrt_one_minus_alphas_cumprod = (1.0 - alphas_cumprod) ** 0.5
    alpha = sqrt_alphas_cumprod[timesteps].float()
    sigma = sqrt_one_minus_alphas_cumprod[timesteps].float()
    snr = (alpha / sigma) ** 2
    weights = torch.stack([snr, snr_gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
    if prediction_type == "epsilon":
        weights = weights / snr
    elif prediction_type == "v_prediction":
        weights = weights / (snr + 1)
    return weights


def _diffusers_get_decay(optimization_step, decay):
    step = max(0, optimization_step - 0 - 1)
    if step <= 0:
        return 0.0
    return max(min((1 + step) / (10 + step), decay), 0.0)


def test_min_snr_challenge():
    check_min_snr_loss_weights(min_snr_loss_weights)
    with pytest.raises(AssertionError, match="v_prediction"):
        check_min_snr_loss_weights(lambda t, ac, snr_gamma=5.0, prediction_type="epsilon": min_snr_loss_weights(
            t, ac, snr_gamma, "epsilon"))
    with pytest.raises(AssertionError, match="raised"):
        check_min_snr_loss_weights(lambda *args, **kwargs: 1 / 0)
    t = _timesteps(32, 1000, 0)
    for kind in PREDICTION_TYPES:
        torch.testing.assert_close(min_snr_loss_weights(t, ALPHAS_CUMPROD, 5.0, kind),
                                   _diffusers_min_snr_weights(ALPHAS_CUMPROD, t, 5.0, kind))


def test_ema_warmup_challenge():
    check_ema_warmup_decay(ema_warmup_decay)
    with pytest.raises(AssertionError, match="optimization_step=0"):
        check_ema_warmup_decay(lambda step, decay=0.9999: min(decay, (1 + step) / (10 + step)))
    for decay in (0.9999, 0.99):
        for step in (0, 1, 2, 5, 100, 10_000, 10**6):
            assert ema_warmup_decay(step, decay) == _diffusers_get_decay(step, decay)
