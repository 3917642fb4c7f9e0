"""Proofs for the guidance lesson: exact conditional denoisers, CFG equal to diffusers', label dropout."""

import pytest
import torch

from torchenstein.diffusion.denoiser import MLPDenoiser
from torchenstein.diffusion.guidance import (
    LabelledMixture,
    cfg_sample,
    check_negative_label_guidance,
    check_rescale_noise_cfg,
    classifier_free_guidance,
    drop_labels,
    guidance_stats,
    guidance_sweep,
    guided_epsilon,
    lesson_labelled_mixture,
    negative_label_guidance,
    plot_guidance_sweep,
    rescale_noise_cfg,
    train_guided_denoiser,
)
from torchenstein.diffusion.sampling import GaussianMixture

ALPHAS_CUMPROD = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)


def _uneven_mixture() -> LabelledMixture:
    # Unequal weights and stds, a class of three components, in 3-D.
    g = torch.Generator().manual_seed(3)
    means = torch.randn(6, 3, generator=g, dtype=torch.float64)
    return LabelledMixture(means, torch.tensor([0.1, 0.3, 0.2, 0.5, 0.15, 0.25], dtype=torch.float64),
                           torch.tensor([0.1, 0.2, 0.3, 0.1, 0.2, 0.1], dtype=torch.float64),
                           classes=torch.tensor([1, 0, 1, 2, 1, 0]))


@pytest.mark.parametrize("data", [lesson_labelled_mixture(), _uneven_mixture()], ids=["lesson", "uneven"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conditional_denoiser_equals_ddim_denoiser_of_each_class(data, dtype):
    model = data.conditional_denoiser(ALPHAS_CUMPROD)
    x_t = torch.randn(7, data.means.size(1), generator=torch.Generator().manual_seed(0), dtype=dtype)
    # float32: the two compute the log-densities in a different order (ours keeps the 2 pi); rounding only.
    tol = {"rtol": 1e-3, "atol": 1e-3} if dtype == torch.float32 else {}
    for t in (0, 1, 250, 999, torch.tensor([0, 3, 100, 500, 700, 998, 999])):
        for y in range(data.num_classes):
            expected = data.class_mixture(y).denoiser(ALPHAS_CUMPROD)(x_t, t)
            torch.testing.assert_close(model(x_t, t, torch.full((7,), y)), expected, **tol)
        torch.testing.assert_close(model(x_t, t, torch.full((7,), data.null_class)), data.denoiser(ALPHAS_CUMPROD)(x_t, t), **tol)
        # Mixed labels in one batch: each row its own class.
        labels = torch.arange(7) % (data.num_classes + 1)
        rows = torch.stack([model(x_t[i:i + 1], t if not isinstance(t, torch.Tensor) else t[i:i + 1], labels[i:i + 1])[0]
                            for i in range(7)])
        torch.testing.assert_close(model(x_t, t, labels), rows)
    assert model(x_t, 5, torch.zeros(7, dtype=torch.long)).dtype == dtype


@pytest.mark.parametrize("data", [lesson_labelled_mixture(), _uneven_mixture()], ids=["lesson", "uneven"])
def test_tweedie_and_tilted_score_by_autograd(data):
    model = data.conditional_denoiser(ALPHAS_CUMPROD)
    D = data.means.size(1)
    x_t = torch.randn(9, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.arange(9) % data.num_classes
    for t in (10, 300, 800):
        a = ALPHAS_CUMPROD[t]
        x = x_t.clone().requires_grad_()
        for w in (0.0, 1.0, 2.5, 7.5, -1.0):
            log_tilted = data.log_density(x, a) + w * data.class_log_posterior(x, a)[torch.arange(9), labels]
            (grad,) = torch.autograd.grad(log_tilted.sum(), x)
            guided = classifier_free_guidance(model, x_t, t, labels, w, data.null_class)
            torch.testing.assert_close(-(1 - a).sqrt() * grad, guided, rtol=1e-9, atol=1e-9)
        (cond,) = torch.autograd.grad(data.log_density(x, a, labels).sum(), x)
        torch.testing.assert_close(-(1 - a).sqrt() * cond, model(x_t, t, labels), rtol=1e-9, atol=1e-9)


def test_log_density_and_posterior_are_normalised():
    data = lesson_labelled_mixture()
    # Integrate p(x) and p(x | y) on a grid: each is 1; the posterior sums to 1 over the classes.
    grid = torch.linspace(-3, 3, 301, dtype=torch.float64)
    xy = torch.cartesian_prod(grid, grid)
    cell = (grid[1] - grid[0]) ** 2
    assert abs(data.log_density(xy, 1.0).exp().sum().item() * cell - 1) < 1e-6
    for y in range(3):
        total = data.log_density(xy, 1.0, torch.full((len(xy),), y)).exp().sum().item() * cell
        assert abs(total - 1) < 1e-6
    torch.testing.assert_close(data.class_log_posterior(xy[:50], 0.3).exp().sum(1), torch.ones(50, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_guided_epsilon_equals_diffusers_guider(dtype):
    guiders = pytest.importorskip("diffusers.guiders", reason="diffusers' guiders are new in 0.35")
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 4, 3, 8, 8, generator=g, dtype=dtype).unbind(0)
    for w in (0.0, 1.0, 2.5, 7.5):
        ours = guided_epsilon(cond, uncond, w)
        # diffusers' pipelines' line, written out.
        assert torch.equal(ours, uncond + w * (cond - uncond))
        theirs = guiders.ClassifierFreeGuidance(guidance_scale=w).forward(cond, uncond).pred
        if w == 1.0:
            # The guider switches itself off at w = 1 and returns eps_cond itself; ours rounds once.
            assert torch.equal(theirs, cond)
            torch.testing.assert_close(ours, theirs)
        else:
            assert torch.equal(ours, theirs)
        # The paper's convention: its w is ours minus one (equal up to rounding, the operations differ).
        original = guiders.ClassifierFreeGuidance(guidance_scale=w - 1, use_original_formulation=True).forward(cond, uncond).pred
        torch.testing.assert_close(ours, original)


def test_rescale_equals_diffusers_and_checkers():
    guider_utils = pytest.importorskip("diffusers.guiders.guider_utils", reason="diffusers' guiders are new in 0.35")
    g = torch.Generator().manual_seed(0)
    for shape in ((4, 2), (2, 4, 8, 8)):
        cfg, cond = torch.randn(2, *shape, generator=g).unbind(0)
        for phi in (0.0, 0.7, 1.0):
            assert torch.equal(rescale_noise_cfg(cfg, cond, phi), guider_utils.rescale_noise_cfg(cfg, cond, phi))
    check_rescale_noise_cfg(rescale_noise_cfg)
    with pytest.raises(AssertionError, match="guidance_rescale=0.7"):
        check_rescale_noise_cfg(lambda cfg, cond, phi: phi * cfg * cond.std() / cfg.std() + (1 - phi) * cfg)
    check_negative_label_guidance(negative_label_guidance)

    def two_calls(model, x_t, t, labels, negative_labels, w):
        e_n, e_c = model(x_t, t, negative_labels), model(x_t, t, labels)
        return e_n + w * (e_c - e_n)

    with pytest.raises(AssertionError, match="one call of the model"):
        check_negative_label_guidance(two_calls)
    with pytest.raises(AssertionError, match="expected eps"):
        check_negative_label_guidance(lambda m, x, t, y, n, w: negative_label_guidance(m, x, t, n, y, w))


def test_doubled_batch_equals_two_calls_with_a_real_model():
    torch.manual_seed(0)
    net = MLPDenoiser(2, 32, 2, num_classes=4).eval()
    torch.nn.init.normal_(net.output.weight)  # a zero output layer would make every branch equal
    x_t = torch.randn(6, 2)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for t in (0, 500, torch.tensor([1, 2, 3, 400, 500, 999])):
        for w in (0.0, 1.0, 3.0):
            with torch.no_grad():
                one = classifier_free_guidance(net, x_t, t, labels, w, net.null_class)
                two = guided_epsilon(net(x_t, t, labels), net(x_t, t, torch.full_like(labels, 4)), w)
            torch.testing.assert_close(one, two)
    with torch.no_grad():
        torch.testing.assert_close(classifier_free_guidance(net, x_t, 7, labels, 1.0, 4), net(x_t, 7, labels))


def test_guidance_works_on_images_shape():
    calls = []

    def model(x, t, class_labels):
        calls.append((tuple(x.shape), class_labels.tolist()))
        return x * (class_labels.float() + 1).reshape(-1, 1, 1, 1)

    x = torch.randn(2, 1, 4, 4)
    out = classifier_free_guidance(model, x, 3, torch.tensor([0, 1]), 2.0, 5)
    assert calls == [((4, 1, 4, 4), [5, 5, 0, 1])]
    torch.testing.assert_close(out, 6 * x + 2.0 * (x * torch.tensor([1.0, 2.0]).reshape(-1, 1, 1, 1) - 6 * x))


def test_argument_errors():
    model = lesson_labelled_mixture().conditional_denoiser(ALPHAS_CUMPROD)
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="null label 3"):
        classifier_free_guidance(model, x, 1, torch.tensor([0, 3]), 2.0, 3)
    with pytest.raises(TypeError, match="labels must be an integer tensor of shape \\(2,\\)"):
        classifier_free_guidance(model, x, 1, torch.tensor([0.0, 1.0]), 2.0, 3)
    with pytest.raises(TypeError, match="guidance_scale must be a number"):
        classifier_free_guidance(model, x, 1, torch.tensor([0, 1]), "7.5", 3)
    with pytest.raises(ValueError, match="class_labels must lie in 0..3"):
        model(x, 1, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="every label from 0 to C - 1"):
        LabelledMixture(torch.zeros(2, 2), torch.ones(2), classes=torch.tensor([0, 2]))
    with pytest.raises(TypeError, match="classes must be an integer tensor"):
        LabelledMixture(torch.zeros(2, 2), torch.ones(2), classes=torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        drop_labels(torch.tensor([0.5]), 0.1, 3)
    for p in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="p must be a probability"):
            drop_labels(torch.tensor([0, 1]), p, 3)


def test_drop_labels_rate_null_and_no_inplace():
    labels = torch.arange(20_000) % 5
    before = labels.clone()
    for p in (0.0, 0.1, 0.2, 1.0):
        out = drop_labels(labels, p, 5, torch.Generator().manual_seed(0))
        assert torch.equal(labels, before) and out.dtype == labels.dtype and out.shape == labels.shape
        dropped = out != labels
        assert torch.equal(out[dropped], torch.full_like(out[dropped], 5))  # only ever the null index
        rate = dropped.double().mean().item()
        # 5 standard errors of a binomial proportion over 20,000 draws.
        assert abs(rate - p) <= 5 * (p * (1 - p) / 20_000) ** 0.5 + 1e-12
    # Any shape, and the same generator seed gives the same draw.
    grid = torch.zeros(3, 4, dtype=torch.int32)
    a = drop_labels(grid, 0.5, 9, torch.Generator().manual_seed(1))
    assert a.shape == (3, 4) and a.dtype == torch.int32
    assert torch.equal(a, drop_labels(grid, 0.5, 9, torch.Generator().manual_seed(1)))
    assert drop_labels(torch.zeros(0, dtype=torch.long), 0.5, 3).shape == (0,)


def test_sweep_fidelity_rises_and_spread_falls():
    stats = [s for s, _, _ in guidance_sweep((0.0, 1.0, 2.0, 4.0, 8.0), num_samples=300)]
    fidelity = [s.fidelity for s in stats]
    assert fidelity[0] < 0.5 and fidelity[1] > 0.85 and min(fidelity[2:]) > 0.97
    spread = [s.spread for s in stats[1:]]
    assert all(b < a for a, b in zip(spread, spread[1:], strict=False))
    assert stats[-1].off_data > 0.2 > stats[1].off_data


def test_trained_guidance_beats_unguided_and_dropout_matters():
    data = lesson_labelled_mixture()
    net = train_guided_denoiser(p_uncond=0.2, steps=150)
    labels = torch.arange(300) % 3
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fidelity = {w: guidance_stats(data, cfg_sample(net, x_T, ALPHAS_CUMPROD.float(), labels, w, 3), labels, w).fidelity
                    for w in (0.0, 1.0, 3.0)}
    assert fidelity[3.0] > fidelity[0.0] + 0.4
    assert fidelity[3.0] >= fidelity[1.0]
    assert not net.training


def test_plot_is_quick_and_labelled():
    fig = plot_guidance_sweep(guidance_scales=(0.0, 4.0), num_samples=60)
    assert len(fig.axes) == 2 and "w = 4" in fig.axes[1].get_title()


def test_mixture_base_class_reused():
    data = lesson_labelled_mixture()
    assert isinstance(data, GaussianMixture) and isinstance(data.class_mixture(2), GaussianMixture)
    x, y = data.sample_labelled(1000, torch.Generator().manual_seed(0))
    assert x.shape == (1000, 2) and set(y.tolist()) == {0, 1, 2}
