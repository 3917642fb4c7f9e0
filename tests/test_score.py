"""The score lesson: autograd scores against closed forms and torch.distributions, Langevin against the truth,
denoising score matching against the noised density, and where gradients flow."""

import math

import pytest
import torch
from torch import nn

from torchenstein.diffusion.forward import q_sample
from torchenstein.diffusion.schedules import noise_schedule
from torchenstein.diffusion.score import (
    GaussianMixture,
    annealed_langevin,
    annealing_levels,
    autograd_score,
    check_noisy_classifier_log_prob,
    check_tweedie_x0,
    classifier_log_prob,
    demo_mixture,
    dsm_monte_carlo,
    guided_score,
    langevin,
    mixture_score,
    noisy_classifier_log_prob,
    optimal_eps,
    plot_annealed_langevin,
    posterior_mean_x0,
    sampler_saved_bytes,
    sampler_saved_bytes_formula,
    tweedie_x0,
)


def _mixture(K, D, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=g, dtype=torch.float64) + 0.1
    means = 2 * torch.randn(K, D, generator=g, dtype=torch.float64)
    stds = 0.2 + torch.rand(K, generator=g, dtype=torch.float64)
    return GaussianMixture(means.to(dtype), stds.to(dtype), (weights / weights.sum()).to(dtype))


def _points(B, D, dtype=torch.float64, seed=1, scale=3.0):
    return (scale * torch.randn(B, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).to(dtype)


CASES = [(1, 1), (3, 2), (6, 2), (4, 5), (2, 16)]


@pytest.mark.parametrize(("K", "D"), CASES)
def test_log_prob_equals_torch_distributions(K, D):
    mixture = _mixture(K, D)
    x = torch.cat([_points(500, D), torch.full((2, D), 50.0), torch.full((1, D), -80.0)])  # far points too
    torch.testing.assert_close(mixture.log_prob(x), mixture.to_torch().log_prob(x), rtol=1e-12, atol=1e-10)
    assert torch.isfinite(mixture.log_prob(x)).all()
    m32 = GaussianMixture(*(t.float() for t in (mixture.means, mixture.stds, mixture.weights)))
    torch.testing.assert_close(m32.log_prob(x[:500].float()), m32.to_torch().log_prob(x[:500].float()))
    assert mixture.log_prob(torch.zeros(0, D, dtype=torch.float64)).shape == (0,)


@pytest.mark.parametrize(("K", "D"), CASES)
def test_autograd_score_equals_closed_form_and_torch(K, D):
    mixture = _mixture(K, D)
    x = torch.cat([_points(2000, D), torch.full((2, D), 40.0)])
    score = autograd_score(mixture.log_prob, x)
    torch.testing.assert_close(score, mixture_score(mixture, x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(score, autograd_score(mixture.to_torch().log_prob, x), rtol=1e-10, atol=1e-10)
    assert score.dtype == torch.float64 and score.grad_fn is None and not score.requires_grad
    # float32: the same arrows to float32's tolerance.
    x32 = x[:2000].float()
    m32 = GaussianMixture(*(t.float() for t in (mixture.means, mixture.stds, mixture.weights)))
    got = autograd_score(m32.log_prob, x32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), mixture_score(mixture, x32.double()), rtol=1e-4, atol=1e-4)


def test_sum_trick_equals_per_sample_gradients_and_mean_is_divided_by_batch():
    mixture = demo_mixture()
    x = _points(300, 2, scale=1.5)
    per_sample = torch.func.vmap(torch.func.grad(lambda p: mixture.log_prob(p[None])[0]))(x)
    score = autograd_score(mixture.log_prob, x)
    torch.testing.assert_close(score, per_sample, rtol=1e-12, atol=1e-12)
    # One sample at a time, in a Python loop: the same again.
    for i in (0, 17, 299):
        torch.testing.assert_close(score[i : i + 1], autograd_score(mixture.log_prob, x[i : i + 1]))
    # Hammer's mean: every gradient divided by B.
    leaf = x.clone().requires_grad_(True)
    (of_mean,) = torch.autograd.grad(mixture.log_prob(leaf).mean(), leaf)
    torch.testing.assert_close(of_mean * 300, score, rtol=1e-12, atol=1e-12)
    # A function that mixes the batch breaks the trick.
    mixes = lambda p: mixture.log_prob(p - p.mean(0))  # noqa: E731
    assert not torch.allclose(autograd_score(mixes, x[:5]),
                              torch.func.vmap(torch.func.grad(lambda p: mixes(p[None])[0]))(x[:5]))


def test_autograd_score_graph_handling():
    mixture = demo_mixture()
    x = _points(8, 2)
    plain = autograd_score(mixture.log_prob, x)
    assert plain.grad_fn is None
    # x with a history of its own: the score still carries no graph, and x's graph is untouched.
    w = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    scaled = x * w
    out = autograd_score(mixture.log_prob, scaled)
    assert out.grad_fn is None and w.grad is None
    # create_graph=True: differentiable, and the Hessian of one Gaussian is -I / s^2.
    gauss = GaussianMixture(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
                            torch.ones(1, dtype=torch.float64))
    p = _points(4, 3).requires_grad_(True)
    s = autograd_score(gauss.log_prob, p, create_graph=True)
    assert s.grad_fn is not None
    (diag,) = torch.autograd.grad(s.sum(), p)
    torch.testing.assert_close(diag, torch.full_like(p, -4.0))
    # Differentiating through to a parameter of the input, with create_graph=True: d/dw of the score of w * x.
    x3 = p.detach()[:1]
    s_w = autograd_score(gauss.log_prob, w * x3, create_graph=True)  # -w x / 0.25
    (dw,) = torch.autograd.grad(s_w.sum(), w)
    torch.testing.assert_close(dw, -(x3.sum() / 0.25))
    # Empty batch.
    assert autograd_score(mixture.log_prob, torch.zeros(0, 2, dtype=torch.float64)).shape == (0, 2)


def test_autograd_score_under_no_grad_and_inference_mode():
    mixture = demo_mixture()
    x = _points(5, 2)
    with torch.no_grad():
        got = autograd_score(mixture.log_prob, x)
    torch.testing.assert_close(got, mixture_score(mixture, x))
    with torch.inference_mode(), pytest.raises(RuntimeError, match="does not require grad"):
        autograd_score(mixture.log_prob, x)


def test_forward_score_is_minus_eps_over_sigma():
    alphas_cumprod = noise_schedule().alphas_cumprod.double()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(64, 3, generator=g, dtype=torch.float64), torch.randn(64, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 1000, (64,), generator=g)
    x_t = q_sample(x0, t, alphas_cumprod, eps)
    a, sigma = alphas_cumprod[t].sqrt()[:, None], (1 - alphas_cumprod[t]).sqrt()[:, None]
    score = autograd_score(lambda p: -(p - a * x0).pow(2).sum(-1) / (2 * sigma[:, 0] ** 2), x_t)
    torch.testing.assert_close(score, -eps / sigma, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("alpha_bar", [0.0, 0.2, 0.7, 1.0])
def test_noised_mixture_is_the_law_of_q_sample(alpha_bar):
    mixture = demo_mixture()
    noised = mixture.noised(alpha_bar)
    if alpha_bar == 1.0:
        for a, b in zip((noised.weights, noised.means, noised.stds), (mixture.weights, mixture.means, mixture.stds),
                        strict=True):
            torch.testing.assert_close(a, b)
    if alpha_bar == 0.0:
        torch.testing.assert_close(noised.stds, torch.ones(3, dtype=torch.float64))
        torch.testing.assert_close(noised.means, torch.zeros(3, 2, dtype=torch.float64))
    N = 40_000
    g = torch.Generator().manual_seed(3)
    x0 = mixture.sample(N, generator=g)
    schedule = torch.tensor([alpha_bar], dtype=torch.float64)
    x_t = q_sample(x0, 0, schedule, torch.randn(N, 2, generator=g, dtype=torch.float64))
    reference = noised.sample(N, generator=torch.Generator().manual_seed(4))
    # The two samples' means and second moments agree within 5 standard errors of their difference.
    for stat in (lambda s: s, lambda s: s**2, lambda s: s[:, :1] * s[:, 1:]):
        a, b = stat(x_t), stat(reference)
        se = (a.var(0) / N + b.var(0) / N).sqrt()
        assert ((a.mean(0) - b.mean(0)).abs() < 5 * se).all()


def test_mean_and_covariance_equal_torch_distributions():
    for K, D in CASES:
        mixture = _mixture(K, D)
        torch.testing.assert_close(mixture.mean, mixture.to_torch().mean)
        torch.testing.assert_close(mixture.covariance.diagonal(), mixture.to_torch().variance)
        samples = mixture.sample(50_000, generator=torch.Generator().manual_seed(K))
        torch.testing.assert_close(torch.cov(samples.T).reshape(D, D), mixture.covariance, rtol=0.05, atol=0.1)


def test_sample_has_the_mixture_weights():
    mixture = demo_mixture()
    N = 20_000
    bump = mixture.responsibilities(mixture.sample(N, generator=torch.Generator().manual_seed(0))).argmax(-1)
    fractions = torch.bincount(bump, minlength=3).double() / N
    # The bumps barely overlap: the most probable bump is the true one for almost every sample.
    assert ((fractions - mixture.weights).abs() < 5 * (0.25 / N) ** 0.5 + 0.005).all()


def test_langevin_on_a_gaussian_reaches_its_moments():
    g = torch.Generator().manual_seed(0)
    mean, std = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.5
    out = langevin(lambda p: -(p - mean) / std**2, torch.zeros(4000, 2, dtype=torch.float64), step_size=0.01,
                   num_steps=300, generator=g)
    assert out.grad_fn is None
    N = len(out)
    assert ((out.mean(0) - mean).abs() < 5 * std / N**0.5).all()
    # Unadjusted Langevin's stationary variance is s^2 / (1 - eta / (4 s^2)) for a Gaussian: 4 % above here.
    biased = std**2 / (1 - 0.01 / (4 * std**2))
    assert ((out.var(0) - biased).abs() < 5 * biased * (2 / (N - 1)) ** 0.5).all()
    assert langevin(lambda p: -p, torch.ones(3, 2), step_size=0.1, num_steps=0).eq(1).all()


def test_plain_langevin_gets_bumps_right_and_weights_wrong():
    mixture = demo_mixture()
    g = torch.Generator().manual_seed(0)
    out = langevin(lambda p: autograd_score(mixture.log_prob, p), torch.randn(1000, 2, generator=g, dtype=torch.float64),
                   step_size=0.01, num_steps=200, generator=g)
    bump = mixture.responsibilities(out).argmax(-1)
    for k in range(3):
        inside = out[bump == k]
        assert ((inside.mean(0) - mixture.means[k]).abs() < 0.1).all()
        assert abs(inside.std(0).mean().item() - mixture.stds[k].item()) < 0.05
    fractions = torch.bincount(bump, minlength=3).double() / len(bump)
    assert (fractions - mixture.weights).abs().max() > 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_annealed_langevin_gets_weights_and_moments(seed):
    mixture = demo_mixture()
    g = torch.Generator().manual_seed(seed)
    out = annealed_langevin(mixture, torch.randn(1000, 2, generator=g, dtype=torch.float64), annealing_levels(),
                            generator=g)
    fractions = torch.bincount(mixture.responsibilities(out).argmax(-1), minlength=3).double() / len(out)
    assert (fractions - mixture.weights).abs().max() < 0.06
    # Mean within 5 standard errors (true variance 1.86 and 0.79 per axis) plus the Langevin bias.
    assert ((out.mean(0) - mixture.mean).abs() < 5 * (1.9 / 1000) ** 0.5 + 0.03).all()


def test_annealing_levels():
    levels = annealing_levels(10)
    assert levels.shape == (11,) and levels[-1] == 1.0 and bool((levels.diff() > 0).all())
    snr = levels[:-1] / (1 - levels[:-1])
    torch.testing.assert_close(snr[[0, -1]], torch.tensor([0.03, 100.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="num_levels must be an int of at least 1, got 0"):
        annealing_levels(0)
    with pytest.raises(ValueError, match="snr_min and snr_max"):
        annealing_levels(3, snr_min=2.0, snr_max=1.0)


@pytest.mark.parametrize("alpha_bar", [0.1, 0.5, 0.9])
def test_dsm_target_averages_to_the_noised_score(alpha_bar):
    mixture = demo_mixture()
    points = torch.tensor([[-1.0, 0.0], [0.5, 0.5], [1.5, -1.0], [0.0, 2.0], [-2.5, 1.0]], dtype=torch.float64)
    points = points * math.sqrt(alpha_bar) + 0.3
    true = autograd_score(mixture.noised(alpha_bar).log_prob, points)
    estimate, se = dsm_monte_carlo(mixture, points, alpha_bar, num_samples=40_000,
                                   generator=torch.Generator().manual_seed(0))
    assert ((estimate - true).abs() < 5 * se).all()
    # A hundred times fewer samples: a standard error about ten times larger.
    _, se_small = dsm_monte_carlo(mixture, points, alpha_bar, num_samples=400,
                                  generator=torch.Generator().manual_seed(1))
    ratio = (se_small / se).median().item()
    assert 5 < ratio < 20


@pytest.mark.parametrize("alpha_bar", [0.0, 0.01, 0.3, 0.8, 0.999])
def test_optimal_eps_is_minus_sigma_times_the_score(alpha_bar):
    mixture = _mixture(4, 3, seed=2)
    x_t = _points(500, 3, scale=2.0)
    sigma = math.sqrt(1 - alpha_bar)
    expected = -sigma * mixture_score(mixture.noised(alpha_bar), x_t)
    torch.testing.assert_close(optimal_eps(mixture, x_t, alpha_bar), expected, rtol=1e-9, atol=1e-9)
    # Tweedie: the same identity written for x0.
    torch.testing.assert_close(tweedie_x0(mixture.noised(alpha_bar).log_prob, x_t, alpha_bar) if alpha_bar > 0
                               else posterior_mean_x0(mixture, x_t, alpha_bar),
                               posterior_mean_x0(mixture, x_t, alpha_bar), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="alpha_bar must be below 1"):
        optimal_eps(mixture, x_t, 1.0)


def test_posterior_mean_by_brute_force_weighting():
    # E[x0 | x_t] by self-normalised weighting of data samples, against the closed form.
    mixture = demo_mixture()
    x_t = torch.tensor([[0.3, -0.2], [1.0, 1.0]], dtype=torch.float64)
    alpha_bar = 0.6
    x0 = mixture.sample(100_000, generator=torch.Generator().manual_seed(5))
    log_w = -(x_t[:, None, :] - math.sqrt(alpha_bar) * x0).pow(2).sum(-1) / (2 * (1 - alpha_bar))
    w = torch.softmax(log_w, dim=1)[:, :, None]
    estimate = (w * x0).sum(1)
    se = (w.pow(2) * (x0 - estimate[:, None, :]).pow(2)).sum(1).sqrt()
    assert ((estimate - posterior_mean_x0(mixture, x_t, alpha_bar)).abs() < 5 * se).all()


def test_training_gradients_flow_only_through_the_network():
    torch.manual_seed(0)
    alphas_cumprod = noise_schedule().alphas_cumprod
    model = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2))
    x0 = demo_mixture(torch.float32).sample(32, generator=torch.Generator().manual_seed(0))
    t = torch.randint(0, 1000, (32,))
    noise = torch.randn_like(x0)
    x_t = q_sample(x0, t, alphas_cumprod, noise)
    assert not x_t.requires_grad and x_t.grad_fn is None
    loss = (model(torch.cat([x_t, t[:, None] / 1000], 1)) - noise).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert noise.grad is None and x_t.grad is None and x0.grad is None
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype can require gradients"):
        t.requires_grad_(True)


@pytest.mark.parametrize(("B", "D", "H", "dtype"), [(128, 2, 64, torch.float32), (7, 3, 5, torch.float64),
                                                    (1, 1, 1, torch.float32)])
def test_saved_bytes_grow_linearly_and_match_the_formula(B, D, H, dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, H), nn.SiLU(), nn.Linear(H, D)).to(dtype)
    x = torch.randn(B, D, dtype=dtype)
    size = torch.finfo(dtype).bits // 8
    measured = [sampler_saved_bytes(model, x, n) for n in (1, 2, 4, 8)]
    assert measured == [sampler_saved_bytes_formula(B, D, H, n, element_size=size) for n in (1, 2, 4, 8)]
    assert measured[3] == 8 * measured[0]
    with torch.no_grad():
        assert sampler_saved_bytes(model, x, 8) == 0
    assert sampler_saved_bytes(model, x, 0) == 0


def test_classifier_guidance():
    mixture = demo_mixture()
    x = _points(400, 2, scale=2.0)
    base = mixture_score(mixture, x)
    for k in range(3):
        bump = -(x - mixture.means[k]) / mixture.stds[k] ** 2
        torch.testing.assert_close(guided_score(mixture, x, y=k, guidance_scale=1.0), bump, rtol=1e-9, atol=1e-9)
        # grad log p(y | x) = bump's score - mixture's score, so a scale w adds w times that difference.
        torch.testing.assert_close(guided_score(mixture, x, y=k, guidance_scale=3.0), base + 3 * (bump - base),
                                   rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(guided_score(mixture, x, y=1, guidance_scale=0.0), base)
    labels = torch.arange(400) % 3
    per_point = guided_score(mixture, x, y=labels)
    torch.testing.assert_close(per_point, -(x - mixture.means[labels]) / mixture.stds[labels, None] ** 2)
    assert torch.allclose(classifier_log_prob(mixture, x, labels).exp(),
                          mixture.responsibilities(x)[torch.arange(400), labels])
    with pytest.raises(ValueError, match=r"y must hold labels from 0 to 2, got \[3\]"):
        classifier_log_prob(mixture, x[:1], torch.tensor([3]))
    with pytest.raises(ValueError, match=r"y must be one label or one per point"):
        classifier_log_prob(mixture, x[:4], torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="y must be an int or an integer tensor"):
        classifier_log_prob(mixture, x[:4], 1.5)


def test_validation_messages():
    w, mu, s = torch.tensor([0.5, 0.5]), torch.zeros(2, 1), torch.ones(2)
    with pytest.raises(ValueError, match=r"weights must be positive and sum to 1, got \[0.5, 0.6\]"):
        GaussianMixture(mu, s, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="stds must be positive"):
        GaussianMixture(mu, torch.tensor([1.0, 0.0]), w)
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\), one per component, got \(2,\)"):
        GaussianMixture(torch.zeros(3, 1), torch.ones(3), w)
    with pytest.raises(ValueError, match=r"stds must have shape \(2,\), one per component, got \(3,\)"):
        GaussianMixture(mu, torch.ones(3), w)
    with pytest.raises(TypeError, match="weights must be a floating-point tensor"):
        GaussianMixture(mu, s, [0.5, 0.5])
    m = GaussianMixture(mu, s, w)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1\), got \(4, 2\)"):
        m.log_prob(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        autograd_score(m.log_prob, torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"log_prob must return one value per point, shape \(4,\), got \(\)"):
        autograd_score(lambda p: m.log_prob(p).sum(), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="step_size must be a positive number, got -0.1"):
        langevin(lambda p: -p, torch.zeros(2, 1), step_size=-0.1, num_steps=3)
    with pytest.raises(ValueError, match="num_steps must be an int of at least 0, got 2.5"):
        langevin(lambda p: -p, torch.zeros(2, 1), step_size=0.1, num_steps=2.5)
    with pytest.raises(ValueError, match=r"alpha_bar must be a single number in \[0, 1\], got 1.5"):
        m.noised(1.5)
    with pytest.raises(ValueError, match="alpha_bar must lie strictly between 0 and 1"):
        dsm_monte_carlo(m, torch.zeros(1, 1), 1.0, num_samples=10)


def test_plot_annealed_langevin():
    fig = plot_annealed_langevin(num_particles=40)
    assert len(fig.axes) == 5
    with pytest.raises(ValueError, match="num_particles must be an int of at least 1, got 0"):
        plot_annealed_langevin(num_particles=0)


def test_tweedie_challenge_accepts_the_solution_and_rejects_wrong_attempts():
    assert check_tweedie_x0(tweedie_x0) is None

    def mean_not_sum(log_prob_t, x_t, alpha_bar):
        p = x_t.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob_t(p).mean(), p)
        return (x_t.detach() + (1 - alpha_bar) * g) / math.sqrt(alpha_bar)

    def wrong_sign(log_prob_t, x_t, alpha_bar):
        return (x_t.detach() - (1 - alpha_bar) * autograd_score(log_prob_t, x_t)) / math.sqrt(alpha_bar)

    def keeps_the_graph(log_prob_t, x_t, alpha_bar):
        return (x_t + (1 - alpha_bar) * autograd_score(log_prob_t, x_t)) / math.sqrt(alpha_bar)

    def no_enable_grad(log_prob_t, x_t, alpha_bar):
        p = x_t.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(log_prob_t(p).sum(), p)
        return (p.detach() + (1 - alpha_bar) * g) / math.sqrt(alpha_bar)

    for wrong, message in ((mean_not_sum, "SUM"), (wrong_sign, "wrong E"), (keeps_the_graph, "no graph"),
                           (no_enable_grad, "enable_grad")):
        with pytest.raises(AssertionError, match=message):
            check_tweedie_x0(wrong)


def test_noisy_classifier_challenge_accepts_the_solution_and_rejects_wrong_attempts():
    assert check_noisy_classifier_log_prob(noisy_classifier_log_prob) is None

    def clean_classifier(mixture, x_t, y, alpha_bar):
        return classifier_log_prob(mixture, x_t, y)

    def unnormalised(mixture, x_t, y, alpha_bar):
        logits = mixture.noised(alpha_bar).component_log_probs(x_t)
        return logits[torch.arange(len(x_t)), torch.as_tensor(y).expand(len(x_t))]

    def ignores_labels(mixture, x_t, y, alpha_bar):
        return classifier_log_prob(mixture.noised(alpha_bar), x_t, 0)

    for wrong in (clean_classifier, unnormalised, ignores_labels):
        with pytest.raises(AssertionError):
            check_noisy_classifier_log_prob(wrong)
