"""The thorough proof of the dropout lesson: the from-scratch dropout, channel dropout and DropPath have the
statistics of PyTorch's, the gradient of the same mask, and the edge cases right.

PyTorch's masks cannot be reproduced (nor should a test try: the stream may change across devices and
versions), so every comparison with `nn.Dropout` is statistical. Each tolerance is derived from the
binomial (or the sample-mean) standard deviation, at 5 sigma, and the seeds are fixed, so the tests are
deterministic and would still catch an implementation that is off by a fraction of a percent.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.lab import device_available
from torchenstein.nn.dropout import (
    Dropout,
    channel_dropout,
    check_drop_path,
    check_mc_dropout_predict,
    drop_path,
    dropout,
    mc_dropout_predict,
    plot_dropout_masks,
    plot_fraction_zeroed,
)
from torchenstein.transformers.attention import attention_with_weights

SIGMAS = 5.0


def binomial_tolerance(p: float, n: int) -> float:
    """5 standard deviations of the fraction of successes in n Bernoulli(p) draws."""
    return SIGMAS * math.sqrt(p * (1 - p) / n)


def generator(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def ours(x, p, seed):
    return dropout(x, p=p, generator=generator(seed))


def theirs(x, p, seed):
    torch.manual_seed(seed)
    return nn.Dropout(p)(x)


def assert_dropout_statistics(x: torch.Tensor, y: torch.Tensor, p: float) -> None:
    """What any inverted dropout promises, for an input with no zeros in it."""
    assert y.shape == x.shape and y.dtype == x.dtype
    kept = y != 0
    n = x.numel()
    fraction = 1 - kept.double().mean().item()
    assert abs(fraction - p) <= binomial_tolerance(p, n), f"zeroed {fraction:.5f}, expected {p} ± 5 sigma"
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    # The mean of y is the mean of x plus noise with variance p / (1 - p) * sum(x^2) / n^2.
    x64, y64 = x.double(), y.double()
    sd_of_mean = math.sqrt(p / (1 - p) * x64.pow(2).sum().item()) / n
    assert abs(y64.mean().item() - x64.mean().item()) <= SIGMAS * sd_of_mean + 1e-3 * (x.dtype == torch.bfloat16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("implementation", [ours, theirs], ids=["ours", "nn.Dropout"])
def test_statistics_match_the_promise_in_both(implementation, p, seed, dtype):
    x = (torch.rand(200_000, generator=generator(100 + seed)) + 0.5).to(dtype)  # never zero
    assert_dropout_statistics(x, implementation(x, p, seed), p)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x, p, seed: ours(x, p + 0.01, seed),  # drops one percent too many
        lambda x, p, seed: ours(x, p, seed) * (1 - p) / (1 - p - 0.01),  # scales a little too much
        lambda x, p, seed: ours(x, p, seed) * (1 - p),  # not inverted at all
    ],
    ids=["p-off-by-1%", "scale-off", "not-inverted"],
)
def test_the_statistical_tolerance_is_honest(wrong):
    # The 5-sigma tolerance is tight enough to catch implementations that are only slightly wrong.
    x, p = torch.rand(200_000, generator=generator(9)) + 0.5, 0.3
    assert_dropout_statistics(x, ours(x, p, 0), p)
    with pytest.raises(AssertionError):
        assert_dropout_statistics(x, wrong(x, p, 0), p)


@pytest.mark.parametrize("p", [0.5, 0.75])
@pytest.mark.parametrize("implementation", [ours, theirs], ids=["ours", "nn.Dropout"])
def test_survivors_are_x_over_keep_probability_to_the_bit(implementation, p):
    # 1 - p is a power of two here, so x / (1 - p) and x * (1 / (1 - p)) are the same float.
    x = torch.randn(10_000) + 10.0
    y = implementation(x, p, 0)
    kept = y != 0
    assert torch.equal(y[kept], x[kept] / (1 - p))


def test_the_masks_are_not_required_to_match_only_their_laws():
    # Same seed, two implementations: the masks need not agree, but their zero counts obey one binomial law.
    x, p = torch.ones(500_000), 0.3
    count_ours = (ours(x, p, 7) == 0).sum().item()
    count_theirs = (theirs(x, p, 7) == 0).sum().item()
    # The difference of two independent Binomial(n, p) counts has variance 2 n p (1 - p).
    assert abs(count_ours - count_theirs) <= SIGMAS * math.sqrt(2 * x.numel() * p * (1 - p))


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (2, 3, 4), (1, 1, 1, 1, 5)])
@pytest.mark.parametrize("p", [0.0, 0.2, 1.0])
def test_eval_mode_is_the_identity_in_both(shape, p):
    x = torch.randn(shape)
    assert dropout(x, p=p, training=False) is x
    assert torch.equal(F.dropout(x, p=p, training=False), x)
    assert torch.equal(Dropout(p).eval()(x), x)
    assert torch.equal(nn.Dropout(p).eval()(x), x)


def test_p_zero_is_the_identity_and_draws_nothing():
    x = torch.randn(100)
    g = generator(0)
    state, global_state = g.get_state(), torch.get_rng_state()
    assert dropout(x, p=0.0, generator=g) is x
    assert dropout(x, p=0, training=True) is x
    assert dropout(torch.empty(0, 3), p=0.5, generator=g).shape == (0, 3)
    assert torch.equal(Dropout(0.0)(x), x)
    assert torch.equal(g.get_state(), state)
    assert torch.equal(torch.get_rng_state(), global_state)
    # PyTorch's CPU path returns early for p = 0 as well.
    assert torch.equal(F.dropout(x, p=0.0), x)
    assert torch.equal(torch.get_rng_state(), global_state)


def test_a_real_draw_advances_the_generator():
    g = generator(0)
    state = g.get_state()
    dropout(torch.ones(10), p=0.5, generator=g)
    assert not torch.equal(g.get_state(), state)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_p_one_gives_zeros_without_dividing_by_zero(dtype):
    x = torch.randn(5, 4, dtype=dtype, requires_grad=True)
    g = generator(0)
    state = g.get_state()
    y = dropout(x, p=1.0, generator=g)
    assert torch.equal(y, torch.zeros_like(y)) and not y.isnan().any()
    assert torch.equal(y, F.dropout(x, p=1.0))
    assert torch.equal(g.get_state(), state)
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_dropout_multiplies_so_a_dropped_infinity_is_nan_in_both():
    x = torch.tensor([float("inf"), 1.0, -2.0])
    torch.testing.assert_close(dropout(x, p=1.0), F.dropout(x, p=1.0), equal_nan=True)


def test_one_seed_gives_one_mask_whatever_the_dtype():
    masks = [dropout(torch.ones(1000, dtype=dtype), p=0.4, generator=generator(3)) != 0
             for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16)]
    assert all(torch.equal(masks[0], mask) for mask in masks[1:])


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_bad_p_is_refused_by_name(p):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got"):
        dropout(torch.ones(3), p=p)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got"):
        Dropout(p)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got"):
        channel_dropout(torch.ones(2, 3, 4), p=p)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got"):
        drop_path(torch.ones(2, 3), p=p)


def test_bad_input_is_refused_by_name():
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        dropout([1.0, 2.0])
    with pytest.raises(TypeError, match="input must be a floating-point tensor, got dtype torch.int64"):
        dropout(torch.arange(3))
    with pytest.raises(RuntimeError):  # PyTorch refuses integers too, less politely
        F.dropout(torch.arange(3), p=0.5)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("implementation", [ours, theirs], ids=["ours", "nn.Dropout"])
def test_the_gradient_is_the_same_scaled_mask(implementation, p):
    x = (torch.rand(50_000) + 0.5).requires_grad_()
    y = implementation(x, p, 0)
    upstream = torch.randn(x.shape)
    y.backward(upstream)
    mask = (y != 0).float() / (1 - p)
    torch.testing.assert_close(x.grad, upstream * mask)


def test_gradcheck_in_float64():
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    # A freshly seeded generator on every call: every evaluation of the function sees the same mask.
    assert torch.autograd.gradcheck(lambda t: dropout(t, p=0.3, generator=generator(0)), (x,))
    assert torch.autograd.gradcheck(lambda t: channel_dropout(t[None], p=0.3, generator=generator(0)), (x[None],))
    assert torch.autograd.gradgradcheck(lambda t: dropout(t, p=0.3, generator=generator(0)), (x,))


def test_inplace_writes_into_the_input_like_pytorch():
    x = torch.rand(10_000) + 0.5
    original = x.clone()
    y = dropout(x, p=0.5, inplace=True, generator=generator(0))
    assert y is x
    kept = x != 0
    assert torch.equal(x[kept], original[kept] * 2)
    module_input = original.clone()
    assert Dropout(0.5, inplace=True)(module_input) is module_input
    theirs_input = original.clone()
    torch.manual_seed(0)
    nn.Dropout(0.5, inplace=True)(theirs_input)
    assert set(torch.unique(theirs_input / original).tolist()) == {0.0, 2.0}


@pytest.mark.parametrize(("p", "inplace"), [(0.5, False), (0.1, True), (0.0, False), (1.0, False)])
def test_module_looks_like_nn_dropout(p, inplace):
    mine, reference = Dropout(p, inplace), nn.Dropout(p, inplace)
    assert repr(mine) == repr(reference)
    assert mine.state_dict() == reference.state_dict() == {}
    assert list(mine.parameters()) == [] and list(mine.buffers()) == []
    mine.load_state_dict(reference.state_dict())


def test_module_follows_its_training_flag_inside_a_model():
    model = nn.Sequential(nn.Identity(), Dropout(0.5))
    x = torch.ones(10_000)
    assert (model(x) == 0).any()
    model.eval()
    assert not model[1].training and torch.equal(model(x), x)
    model.train()
    assert (model(x) == 0).any()


@settings(max_examples=40)
@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_every_output_is_zero_or_a_scaled_input(shape, p, seed, dtype):
    x = torch.randn(shape, dtype=dtype, generator=generator(seed)) + 3.0  # positive, so never zero
    y = dropout(x, p=p, generator=generator(seed))
    assert y.shape == x.shape and y.dtype == x.dtype
    kept = y != 0
    if p == 1.0:
        assert not kept.any()
    else:
        torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    if p == 0.0:
        assert torch.equal(y, x)


def test_the_expectation_is_the_input():
    # Average many draws of the same x: E[dropout(x)] = x, within 5 sigma of the sample mean per element.
    x = torch.tensor([1.0, -2.0, 3.0, 0.5, 0.0], dtype=torch.float64)
    draws, p = 100_000, 0.4
    mean = dropout(x.expand(draws, -1), p=p, generator=generator(0)).mean(dim=0)
    sd = x.abs() * math.sqrt(p / (1 - p) / draws)
    assert torch.all((mean - x).abs() <= SIGMAS * sd)
    torch.manual_seed(0)
    mean_torch = F.dropout(x.expand(draws, -1), p=p).mean(dim=0)
    assert torch.all((mean_torch - x).abs() <= SIGMAS * sd)


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 1.0), (2.0, 0.5)])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_the_variance_grows_as_the_algebra_says(p, mu, sigma):
    x = mu + sigma * torch.randn(1_000_000, dtype=torch.float64, generator=generator(0))
    y = dropout(x, p=p, generator=generator(1))
    predicted = sigma**2 / (1 - p) + mu**2 * p / (1 - p)
    torch.testing.assert_close(y.var().item(), predicted, rtol=0.02, atol=0.0)
    torch.testing.assert_close(y.mean().item(), mu, rtol=0.0, atol=0.02)


@pytest.mark.parametrize(
    ("module", "shape"),
    [(nn.Dropout1d, (256, 64, 5)), (nn.Dropout2d, (128, 64, 3, 3)), (nn.Dropout3d, (64, 64, 2, 2, 2))],
    ids=["1d", "2d", "3d"],
)
@pytest.mark.parametrize("p", [0.2, 0.6])
def test_channel_dropout_has_the_statistics_of_pytorchs(module, shape, p):
    x = torch.rand(shape, generator=generator(5)) + 0.5
    torch.manual_seed(0)
    for y in (channel_dropout(x, p=p, generator=generator(0)), module(p)(x)):
        assert y.shape == x.shape
        per_channel = (y != 0).flatten(2)  # (N, C, positions)
        dead, alive = (~per_channel).all(dim=2), per_channel.all(dim=2)  # (N, C)
        assert bool((dead | alive).all()), "every channel must be all zero or all kept"
        torch.testing.assert_close(y[y != 0], x[y != 0] / (1 - p))
        channels = dead.numel()
        assert abs(dead.double().mean().item() - p) <= binomial_tolerance(p, channels)


def test_channel_dropout_edges():
    x = torch.randn(2, 3, 4)
    assert channel_dropout(x, p=0.5, training=False) is x
    assert channel_dropout(x, p=0.0) is x
    assert torch.equal(channel_dropout(x, p=1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"input must have shape \(N, C, \*positions\) with at least 3 dims, got shape \(2, 3\)"):
        channel_dropout(torch.ones(2, 3))
    with pytest.raises(TypeError, match="floating-point"):
        channel_dropout(torch.ones(2, 3, 4, dtype=torch.int32))


def test_attention_dropout_scales_the_surviving_weights():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 8, 64, 16).unbind(0)
    _, clean = attention_with_weights(q, k, v)
    p = 0.3
    out, dropped = attention_with_weights(q, k, v, dropout_p=p)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], clean[kept] / (1 - p))
    torch.testing.assert_close(out, dropped @ v)
    assert abs(1 - kept.double().mean().item() - p) <= binomial_tolerance(p, kept.numel())
    # No training flag: PyTorch's attention drops whenever dropout_p > 0, even in no_grad evaluation code.
    with torch.no_grad():
        assert not torch.equal(F.scaled_dot_product_attention(q, k, v, dropout_p=p),
                               F.scaled_dot_product_attention(q, k, v, dropout_p=p))


def test_trap_non_inverted_dropout_is_too_large_at_test_time():
    p, x = 0.4, torch.ones(1_000_000)
    g = generator(0)
    hammer_train_mean = (x * (torch.rand(x.shape, generator=g) < 1 - p)).mean().item()
    assert abs(hammer_train_mean - (1 - p)) <= binomial_tolerance(p, x.numel())
    assert abs(x.mean().item() / hammer_train_mean - 1 / (1 - p)) < 0.01
    assert abs(dropout(x, p=p, generator=g).mean().item() - 1.0) < 0.01


def test_trap_functional_dropout_ignores_eval_mode():
    class HammerNet(nn.Module):
        def forward(self, x):
            return F.dropout(x, p=0.5)

    class FixedNet(nn.Module):
        def forward(self, x):
            return dropout(x, p=0.5, training=self.training)

    x = torch.ones(1000)
    assert (HammerNet().eval()(x) == 0).any()
    assert torch.equal(FixedNet().eval()(x), x)
    assert (FixedNet().train()(x) == 0).any()


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_trap_batchnorm_after_dropout_learns_the_inflated_variance(p):
    torch.manual_seed(0)
    hammer_net = nn.Sequential(Dropout(p), nn.BatchNorm1d(8, momentum=None))
    with torch.no_grad():
        for _ in range(100):
            hammer_net(3 * torch.randn(512, 8))
    torch.testing.assert_close(hammer_net[1].running_var.mean().item(), 9 / (1 - p), rtol=0.03, atol=0.0)
    hammer_net.eval()
    with torch.no_grad():
        variance = hammer_net(3 * torch.randn(8192, 8)).var().item()
    torch.testing.assert_close(variance, 1 - p, rtol=0.05, atol=0.0)


def test_the_variance_shift_reaches_every_batchnorm_downstream_and_no_layernorm():
    # "Normalise first, drop after" only moves the shift to the next BatchNorm; LayerNorm keeps no running
    # statistics and is not shifted; re-estimating the statistics with dropout off cures a BatchNorm.
    torch.manual_seed(0)
    p = 0.5
    swapped = nn.Sequential(nn.BatchNorm1d(8, momentum=None), Dropout(p), nn.BatchNorm1d(8, momentum=None))
    layer = nn.Sequential(Dropout(p), nn.LayerNorm(8, elementwise_affine=False))
    hammer = nn.Sequential(Dropout(p), nn.BatchNorm1d(8, momentum=None))
    with torch.no_grad():
        for _ in range(30):
            batch = 3 * torch.randn(512, 8)
            for net in (swapped, layer, hammer):
                net(batch)
        x = 3 * torch.randn(8192, 8)
        variances = {name: net.eval()(x).var().item() for name, net in (("swapped", swapped), ("layer", layer))}
        torch.testing.assert_close(variances["swapped"], 1 - p, rtol=0.05, atol=0.0)
        torch.testing.assert_close(variances["layer"], 1.0, rtol=0.01, atol=0.0)
        hammer.eval()[1].reset_running_stats()
        hammer[1].train()  # the BatchNorm re-estimates; the dropout stays in eval mode
        for _ in range(30):
            hammer(3 * torch.randn(512, 8))
        torch.testing.assert_close(hammer.eval()(x).var().item(), 1.0, rtol=0.03, atol=0.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dropout_on_every_dtype_and_on_strided_zero_dim_and_empty_inputs(dtype):
    # The statistical promise in float16 too, and the edges: a 0-D input, a transposed and an expanded
    # (stride 0) one, an empty one; each output is 0 or the input over 1 - p, as with nn.Dropout.
    p = 0.3
    x = (torch.rand(200, 250, generator=generator(3)) + 0.5).to(dtype)
    for name, t in (("contiguous", x), ("transposed", x.T), ("expanded", x[:1].expand(200, 250))):
        for y in (ours(t, p, 0), theirs(t, p, 0)):
            assert y.shape == t.shape and y.dtype == dtype, name
            kept = y != 0
            assert abs((1 - kept.double().mean().item()) - p) <= binomial_tolerance(p, t.numel()), name
            # 1 / (1 - p) is rounded to the dtype before it multiplies: equal to a rounding, not to the bit.
            torch.testing.assert_close(y[kept], t[kept] / (1 - p), msg=name)
    scalar = torch.tensor(2.0, dtype=dtype)
    for y in (ours(scalar, p, 0), theirs(scalar, p, 0)):
        assert y.shape == () and y.item() in (0.0, (scalar / (1 - p)).item())
    for y in (ours(x[:0], p, 0), theirs(x[:0], p, 0)):
        assert y.shape == (0, 250)


def test_figures_are_drawn():
    fig = plot_dropout_masks(ps=(0.2, 0.7), size=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    fig = plot_fraction_zeroed(p=0.5, numel=50, draws=100)
    assert isinstance(fig, Figure) and len(fig.axes) == 1


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_drop_path_drops_whole_samples(p):
    x = torch.rand(40_000, 2, 3, generator=generator(2)) + 0.5
    y = drop_path(x, p, generator=generator(0))
    per_sample = (y != 0).flatten(1)
    dead, alive = (~per_sample).all(dim=1), per_sample.all(dim=1)
    assert bool((dead | alive).all())
    torch.testing.assert_close(y[alive], x[alive] / (1 - p))
    assert abs(dead.double().mean().item() - p) <= binomial_tolerance(p, len(x))


def test_drop_path_edges():
    x = torch.randn(5, 3)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0) is x
    assert torch.equal(drop_path(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="input must have a batch dim 0"):
        drop_path(torch.tensor(1.0), 0.5)


def test_drop_path_in_a_residual_block_keeps_the_shortcut():
    x = torch.randn(10_000, 4)
    branch = torch.ones(10_000, 4)
    out = x + drop_path(branch, 0.25, generator=generator(0))
    skipped = (out == x).all(dim=1)
    assert skipped.any() and (~skipped).any()
    torch.testing.assert_close(out[~skipped], x[~skipped] + 1 / 0.75)


def test_the_professors_solutions_pass_their_checkers():
    assert check_drop_path(drop_path) is None
    assert check_mc_dropout_predict(mc_dropout_predict) is None


def _elementwise_drop_path(x, p, training=True, *, generator=None):
    return dropout(x, p, training, generator=generator)


def _unscaled_drop_path(x, p, training=True, *, generator=None):
    return drop_path(x, p, training, generator=generator) * (1 - p)


def _always_dropping_drop_path(x, p, training=True, *, generator=None):
    return drop_path(x, p, True, generator=generator)


def _unchecked_drop_path(x, p, training=True, *, generator=None):
    return drop_path(x, min(max(p, 0.0), 1.0), training, generator=generator)


def _detached_drop_path(x, p, training=True, *, generator=None):
    return drop_path(x, p, training, generator=generator).detach().requires_grad_()


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (_elementwise_drop_path, "dropped whole or kept whole"),
        (_unscaled_drop_path, "scaled by 1/\\(1-p\\)"),
        (_always_dropping_drop_path, "identity when training=False"),
        (_unchecked_drop_path, "should raise ValueError"),
        (_detached_drop_path, "gradient"),
    ],
)
def test_the_drop_path_checker_rejects_plausible_mistakes(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_drop_path(attempt)


def _all_train_mc(model, input, num_samples=32):
    modes = [m.training for m in model.modules()]
    model.train()
    with torch.no_grad():
        std, mean = torch.std_mean(torch.stack([model(input) for _ in range(num_samples)]), dim=0)
    for m, mode in zip(model.modules(), modes, strict=True):
        m.training = mode
    return mean, std


def _eval_only_mc(model, input, num_samples=32):
    model.eval()
    with torch.no_grad():
        std, mean = torch.std_mean(torch.stack([model(input) for _ in range(num_samples)]), dim=0)
    return mean, std


def _forgetful_mc(model, input, num_samples=32):
    model.eval()
    for m in model.modules():
        if isinstance(m, (nn.Dropout, Dropout)):
            m.train()
    with torch.no_grad():
        std, mean = torch.std_mean(torch.stack([model(input) for _ in range(num_samples)]), dim=0)
    return mean, std  # leaves the dropout modules in training mode


def _graph_keeping_mc(model, input, num_samples=32):
    mean, std = mc_dropout_predict(model, input, num_samples)
    return mean.requires_grad_(), std


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (_all_train_mc, "BatchNorm"),
        (_eval_only_mc, "the std should be about"),
        (_forgetful_mc, "back in eval mode"),
        (_graph_keeping_mc, "no_grad"),
    ],
)
def test_the_mc_dropout_checker_rejects_plausible_mistakes(attempt, message):
    with pytest.raises(AssertionError, match=message):
        check_mc_dropout_predict(attempt)


def test_mc_dropout_restores_modes_even_when_the_model_fails():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            raise RuntimeError("the monster refuses")

    model = Broken().eval()
    with pytest.raises(RuntimeError, match="refuses"):
        mc_dropout_predict(model, torch.ones(2), 4)
    assert not model.training and not model.drop.training


@pytest.mark.parametrize("num_samples", [1, 0, 2.5, True])
def test_mc_dropout_refuses_too_few_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples must be an int of at least 2"):
        mc_dropout_predict(nn.Dropout(), torch.ones(3), num_samples)


@pytest.mark.skipif(not device_available("cuda"), reason="needs a CUDA device")
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_on_cuda_the_statistics_match_the_fused_kernel(p):
    x = torch.rand(1_000_000, device="cuda") + 0.5
    y = dropout(x, p=p, generator=generator(0, "cuda"))
    assert y.device.type == "cuda"
    assert_dropout_statistics(x, y, p)
    torch.manual_seed(0)
    assert_dropout_statistics(x, nn.Dropout(p)(x), p)
    z = torch.rand(64, 128, 4, 4, device="cuda") + 0.5
    for out in (channel_dropout(z, p=p, generator=generator(1, "cuda")), nn.Dropout2d(p)(z)):
        per_channel = (out != 0).flatten(2)
        assert bool(((~per_channel).all(dim=2) | per_channel.all(dim=2)).all())
