"""The thorough proof of the accumulation lesson: stitched micro-batches against the one big batch."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import torchenstein.tensors.accumulation as lesson
from torchenstein.challenges import challenges_in
from torchenstein.tensors.accumulation import (
    accumulated_gradients,
    accumulated_token_loss_weights,
    accumulation_step,
    check_accumulated_token_loss_weights,
    check_clipped_accumulation_step,
    clipped_accumulation_step,
    full_batch_gradients,
    micro_batch_slices,
    micro_batch_weights,
    plot_accumulation,
    relative_gradient_error,
)

F64 = torch.float64


def mlp(out: int = 1) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, out)).to(F64)


def layer_norm_net(out: int = 1) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.LayerNorm(6), torch.nn.GELU(), torch.nn.Linear(6, out)).to(F64)


def batch_norm_eval_net(out: int = 1) -> torch.nn.Module:
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, out)).to(F64)
    # Give the running statistics something other than their initial 0 and 1 before freezing them.
    with torch.no_grad():
        net(torch.randn(32, 4, dtype=F64))
    return net.eval()


def linear(out: int = 1) -> torch.nn.Module:
    return torch.nn.Linear(4, out).to(F64)


MODELS = {"linear": linear, "mlp": mlp, "layernorm": layer_norm_net, "batchnorm-eval": batch_norm_eval_net}
# (loss, does it classify?): regression losses get (N, out) float targets, cross-entropy class indices.
LOSSES = {
    "mse-mean": (lambda: torch.nn.MSELoss(), False),
    "mse-sum": (lambda: torch.nn.MSELoss(reduction="sum"), False),
    "l1-mean": (lambda: torch.nn.L1Loss(), False),
    "huber-mean": (lambda: torch.nn.HuberLoss(delta=0.5), False),
    "ce-mean": (lambda: torch.nn.CrossEntropyLoss(), True),
    "ce-sum": (lambda: torch.nn.CrossEntropyLoss(reduction="sum"), True),
}


def problem(model: str, loss: str, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    make_loss, classify = LOSSES[loss]
    out = 3 if classify else 2
    net = MODELS[model](out)
    x = torch.randn(batch, 4, dtype=F64)
    y = torch.randint(out, (batch,)) if classify else torch.randn(batch, out, dtype=F64)
    return net, make_loss(), x, y


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize(("batch", "micro"), [(1, 1), (7, 1), (7, 3), (12, 4), (13, 4), (13, 12), (6, 50)])
def test_accumulated_equals_full_batch(model, loss, batch, micro):
    net, loss_fn, x, y = problem(model, loss, batch)
    full = full_batch_gradients(net, loss_fn, x, y)
    stitched = accumulated_gradients(net, loss_fn, x, y, micro)
    assert list(stitched) == [name for name, _ in net.named_parameters()]
    torch.testing.assert_close(stitched, full)
    # The accumulated gradient is also left in .grad, where an optimizer will look for it.
    torch.testing.assert_close({name: p.grad for name, p in net.named_parameters()}, full)


@settings(max_examples=25)
@given(batch=st.integers(1, 20), micro=st.integers(1, 24), seed=st.integers(0, 2**16))
def test_accumulated_equals_full_batch_for_any_split(batch, micro, seed):
    net, loss_fn, x, y = problem("mlp", "mse-mean", batch, seed)
    torch.testing.assert_close(accumulated_gradients(net, loss_fn, x, y, micro), full_batch_gradients(net, loss_fn, x, y))


def test_a_plain_loss_function_is_taken_as_a_mean_unless_told_otherwise():
    net, _, x, y = problem("mlp", "mse-mean", 9)
    mean_fn = torch.nn.functional.mse_loss
    torch.testing.assert_close(accumulated_gradients(net, mean_fn, x, y, 4), full_batch_gradients(net, mean_fn, x, y))

    def sum_fn(output, target):
        return torch.nn.functional.mse_loss(output, target, reduction="sum")

    torch.testing.assert_close(
        accumulated_gradients(net, sum_fn, x, y, 4, reduction="sum"), full_batch_gradients(net, sum_fn, x, y)
    )
    # Without being told, a plain function's sum is weighted as a mean, which is wrong.
    wrong = accumulated_gradients(net, sum_fn, x, y, 4)
    assert relative_gradient_error(wrong, full_batch_gradients(net, sum_fn, x, y)) > 0.5


def test_float32_agrees_within_float32_tolerance():
    net, loss_fn, x, y = problem("layernorm", "ce-mean", 11)
    net, x = net.float(), x.float()
    stitched = accumulated_gradients(net, loss_fn, x, y, 3)
    assert all(g.dtype == torch.float32 for g in stitched.values())
    torch.testing.assert_close(stitched, full_batch_gradients(net, loss_fn, x, y))


def test_sum_gradients_divided_by_n_equal_the_mean_gradients():
    net, _, x, y = problem("mlp", "mse-mean", 10)
    summed = accumulated_gradients(net, torch.nn.MSELoss(reduction="sum"), x, y, 3)
    mean = full_batch_gradients(net, torch.nn.MSELoss(), x, y)
    # MSELoss's mean divides by every element: 10 samples times 2 outputs.
    torch.testing.assert_close({n: g / y.numel() for n, g in summed.items()}, mean)


def test_stale_gradients_are_cleared_first():
    net, loss_fn, x, y = problem("mlp", "mse-mean", 8)
    full = full_batch_gradients(net, loss_fn, x, y)
    for p in net.parameters():
        p.grad = torch.full_like(p, 100.0)
    torch.testing.assert_close(accumulated_gradients(net, loss_fn, x, y, 3), full)


def test_a_parameter_outside_the_loss_is_left_out_of_both():
    class WithSpare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Linear(4, 1).to(F64)
            self.spare = torch.nn.Linear(4, 1).to(F64)

        def forward(self, x):
            return self.used(x)

    net = WithSpare()
    x, y = torch.randn(5, 4, dtype=F64), torch.randn(5, 1, dtype=F64)
    stitched = accumulated_gradients(net, torch.nn.MSELoss(), x, y, 2)
    assert list(stitched) == ["used.weight", "used.bias"]
    torch.testing.assert_close(stitched, full_batch_gradients(net, torch.nn.MSELoss(), x, y))


def test_returned_gradients_are_copies():
    net, loss_fn, x, y = problem("linear", "mse-mean", 6)
    stitched = accumulated_gradients(net, loss_fn, x, y, 4)
    kept = {n: g.clone() for n, g in stitched.items()}
    net.zero_grad(set_to_none=False)
    torch.testing.assert_close(stitched, kept)


@pytest.mark.parametrize(("batch", "micro"), [(1, 1), (10, 4), (10, 5), (10, 10), (10, 11), (17, 3)])
def test_slices_cover_every_sample_once_in_order(batch, micro):
    slices = micro_batch_slices(batch, micro)
    covered = torch.cat([torch.arange(batch)[part] for part in slices])
    assert torch.equal(covered, torch.arange(batch))
    assert len(slices) == -(-batch // micro)
    sizes = [part.stop - part.start for part in slices]
    assert all(size == micro for size in sizes[:-1]) and 1 <= sizes[-1] <= micro


@settings(max_examples=40)
@given(batch=st.integers(1, 200), micro=st.integers(1, 64))
def test_mean_weights_are_the_shares_and_sum_to_one(batch, micro):
    weights = micro_batch_weights(batch, micro)
    sizes = [part.stop - part.start for part in micro_batch_slices(batch, micro)]
    assert weights == [size / batch for size in sizes]
    assert sum(weights) == pytest.approx(1.0)
    assert micro_batch_weights(batch, micro, reduction="sum") == [1.0] * len(sizes)


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, None, "4"])
def test_sizes_must_be_positive_ints(bad):
    with pytest.raises(ValueError, match=r"micro_batch_size must be a positive int, got"):
        micro_batch_slices(5, bad)
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got"):
        micro_batch_weights(bad, 2)


def test_bad_arguments_are_named():
    net, loss_fn, x, y = problem("linear", "mse-mean", 6)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        accumulated_gradients(lambda t: t, loss_fn, x, y, 2)
    with pytest.raises(TypeError, match="inputs must be a tensor with a batch dimension first"):
        accumulated_gradients(net, loss_fn, [[1.0]], y, 2)
    with pytest.raises(TypeError, match="targets must be a tensor with a batch dimension first"):
        full_batch_gradients(net, loss_fn, x, torch.tensor(1.0))
    with pytest.raises(ValueError, match="same number of samples, got 6 and 5"):
        accumulated_gradients(net, loss_fn, x, y[:5], 2)
    with pytest.raises(ValueError, match="at least one sample"):
        accumulated_gradients(net, loss_fn, x[:0], y[:0], 2)
    with pytest.raises(ValueError, match="micro_batch_size must be a positive int, got 0"):
        accumulated_gradients(net, loss_fn, x, y, 0)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'.*got 'none'"):
        accumulated_gradients(net, torch.nn.MSELoss(reduction="none"), x, y, 2)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'.*got 'max'"):
        accumulated_gradients(net, torch.nn.functional.mse_loss, x, y, 2, reduction="max")
    with pytest.raises(ValueError, match="reduction='sum' contradicts loss_fn.reduction='mean'"):
        accumulated_gradients(net, loss_fn, x, y, 2, reduction="sum")
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got list"):
        accumulation_step(net, [], loss_fn, x, y, 2)


def test_relative_error_checks_its_arguments():
    a = {"w": torch.ones(2)}
    assert relative_gradient_error(a, a) == 0.0
    with pytest.raises(ValueError, match="must name the same parameters"):
        relative_gradient_error({"v": torch.ones(2)}, a)
    with pytest.raises(ValueError, match="every reference gradient is zero"):
        relative_gradient_error(a, {"w": torch.zeros(2)})


OPTIMIZERS = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.1),
    "sgd-momentum-decay": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize(("model", "loss"), [("mlp", "mse-mean"), ("layernorm", "ce-mean"), ("linear", "mse-sum")])
def test_steps_with_accumulation_equal_full_batch_steps(optimizer, model, loss):
    net, loss_fn, x, y = problem(model, loss, 11)
    twin = copy.deepcopy(net)
    big, small = OPTIMIZERS[optimizer](net.parameters()), OPTIMIZERS[optimizer](twin.parameters())
    for step in range(3):
        # A fresh batch each step, so the optimizer state is built from several different gradients.
        xs, ys = x.roll(step, 0), y.roll(step, 0)
        big.zero_grad()
        full_loss = loss_fn(net(xs), ys)
        full_loss.backward()
        big.step()
        stitched_loss = accumulation_step(twin, small, loss_fn, xs, ys, 4)
        assert not stitched_loss.requires_grad
        torch.testing.assert_close(stitched_loss, full_loss.detach())
        torch.testing.assert_close(dict(twin.named_parameters()), dict(net.named_parameters()))


def test_forgetting_to_scale_multiplies_the_gradient_by_k():
    for k, batch in [(2, 10), (4, 12), (6, 6)]:
        net, loss_fn, x, y = problem("mlp", "mse-mean", batch)
        full = full_batch_gradients(net, loss_fn, x, y)
        net.zero_grad()
        for part in micro_batch_slices(batch, batch // k):
            loss_fn(net(x[part]), y[part]).backward()
        torch.testing.assert_close({n: p.grad for n, p in net.named_parameters()}, {n: k * g for n, g in full.items()})


@pytest.mark.parametrize(("batch", "micro", "equal"), [(12, 4, True), (12, 3, True), (10, 4, False), (13, 4, False)])
def test_one_over_k_is_right_only_for_equal_micro_batches(batch, micro, equal):
    net, loss_fn, x, y = problem("mlp", "mse-mean", batch)
    full = full_batch_gradients(net, loss_fn, x, y)
    parts = micro_batch_slices(batch, micro)
    net.zero_grad()
    for part in parts:
        (loss_fn(net(x[part]), y[part]) / len(parts)).backward()
    error = relative_gradient_error({n: p.grad for n, p in net.named_parameters()}, full)
    assert (error < 1e-12) == equal


def test_batchnorm_in_train_mode_breaks_equality_and_counts_micro_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Linear(6, 1)).to(F64)
    twin = copy.deepcopy(net)
    x, y = torch.randn(10, 4, dtype=F64), torch.randn(10, 1, dtype=F64)
    stitched = accumulated_gradients(net, torch.nn.MSELoss(), x, y, 4)
    full = full_batch_gradients(twin, torch.nn.MSELoss(), x, y)
    assert relative_gradient_error(stitched, full) > 0.01
    assert (net[1].num_batches_tracked.item(), twin[1].num_batches_tracked.item()) == (3, 1)
    assert not torch.allclose(net[1].running_mean, twin[1].running_mean)
    # Micro-batches that hold the whole batch at once are the full batch: equal again.
    torch.testing.assert_close(accumulated_gradients(copy.deepcopy(twin), torch.nn.MSELoss(), x, y, 10), full)
    # A ragged last micro-batch of a single sample: train-mode BatchNorm refuses it.
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        accumulated_gradients(net, torch.nn.MSELoss(), x[:9], y[:9], 4)


def test_dropout_breaks_equality_in_train_mode_only():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)).to(F64)
    x, y = torch.randn(10, 4, dtype=F64), torch.randn(10, 1, dtype=F64)
    mse = torch.nn.MSELoss()
    assert relative_gradient_error(accumulated_gradients(net, mse, x, y, 4), full_batch_gradients(net, mse, x, y)) > 0.01
    net.eval()
    torch.testing.assert_close(accumulated_gradients(net, mse, x, y, 4), full_batch_gradients(net, mse, x, y))


def test_zero_grad_sets_none_and_optimizers_skip_none():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    torch.testing.assert_close(dict(net.named_parameters()), before, rtol=0, atol=0)
    # Zeros are a gradient: weight decay moves the parameter all the same.
    net(torch.randn(4, 3)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in net.parameters())
    opt.step()
    assert not torch.equal(net.weight, before["weight"])


def test_plot_draws_two_panels_and_checks_its_arguments():
    fig = plot_accumulation(batch_size=7, seed=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert [len(ax.lines) for ax in fig.axes] == [3, 3]
    for bad in (2, 3.5, True):
        with pytest.raises(ValueError, match="batch_size must be an int of at least 3"):
            plot_accumulation(batch_size=bad)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        plot_accumulation(seed=-1)


def test_plot_leaves_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    plot_accumulation(batch_size=4)
    assert torch.equal(torch.rand(3), expected)


def test_the_lesson_defines_exactly_its_two_challenges():
    assert set(challenges_in(lesson)) == {"accumulated_token_loss_weights", "clipped_accumulation_step"}


def test_token_weights_solution_passes_and_validates():
    assert check_accumulated_token_loss_weights(accumulated_token_loss_weights) is None
    torch.testing.assert_close(accumulated_token_loss_weights(torch.tensor([[1, 3]])), torch.tensor([0.25, 0.75], dtype=F64))
    for bad, message in (([], "at least one micro-batch"), ([0, 0], "at least one token"), ([2, -1], "must not be negative")):
        with pytest.raises(ValueError, match=message):
            accumulated_token_loss_weights(bad)


def _weights_by_micro_batch_count(token_counts):
    return torch.full((len(token_counts),), 1.0 / len(token_counts), dtype=F64)


def _weights_without_validation(token_counts):
    counts = torch.as_tensor(token_counts, dtype=F64)
    return counts / counts.sum()


@pytest.mark.parametrize("wrong", [_weights_by_micro_batch_count, _weights_without_validation])
def test_token_weights_checker_rejects_plausible_mistakes(wrong):
    with pytest.raises(AssertionError):
        check_accumulated_token_loss_weights(wrong)


def test_clipped_step_solution_passes_and_validates():
    assert check_clipped_accumulation_step(clipped_accumulation_step) is None
    net, loss_fn, x, y = problem("linear", "mse-mean", 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="max_norm must be a positive number"):
            clipped_accumulation_step(net, opt, loss_fn, x, y, 2, bad)


def _clip_every_micro_batch(model, optimizer, loss_fn, inputs, targets, micro_batch_size, max_norm):
    optimizer.zero_grad()
    weights = micro_batch_weights(len(inputs), micro_batch_size)
    for part, weight in zip(micro_batch_slices(len(inputs), micro_batch_size), weights, strict=True):
        (loss_fn(model(inputs[part]), targets[part]) * weight).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return norm


def _never_zero(model, optimizer, loss_fn, inputs, targets, micro_batch_size, max_norm):
    weights = micro_batch_weights(len(inputs), micro_batch_size)
    for part, weight in zip(micro_batch_slices(len(inputs), micro_batch_size), weights, strict=True):
        (loss_fn(model(inputs[part]), targets[part]) * weight).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return norm


def _no_clipping(model, optimizer, loss_fn, inputs, targets, micro_batch_size, max_norm):
    accumulation_step(model, optimizer, loss_fn, inputs, targets, micro_batch_size)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))


@pytest.mark.parametrize("wrong", [_clip_every_micro_batch, _never_zero, _no_clipping])
def test_clipped_step_checker_rejects_plausible_mistakes(wrong):
    with pytest.raises(AssertionError):
        check_clipped_accumulation_step(wrong)
