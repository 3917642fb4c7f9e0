"""The proof of the training-loop lesson: hand steps against torch.optim.SGD, honest evaluation, fit and its traps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from torchenstein.nn.losses import cross_entropy
from torchenstein.training.loop import (
    check_fit_keep_best,
    check_per_class_accuracy,
    evaluate,
    fit,
    fit_keep_best,
    graph_size,
    make_spiral,
    manual_sgd_step,
    minibatches,
    overfit_one_batch,
    per_class_accuracy,
    plot_loss_curves,
    spiral_classifier,
    train_step,
)


def _twins(dtype=torch.float32, seed=0, **options):
    torch.manual_seed(seed)
    a = spiral_classifier(16, **options).to(dtype)
    b = spiral_classifier(16, **options).to(dtype)
    b.load_state_dict(a.state_dict())
    return a, b


def _spiral_batches(batch_size=32, seed=0, dtype=torch.float32, **options):
    x, y = make_spiral(seed=seed, **options)
    return minibatches(x.to(dtype), y, batch_size)


def _same_parameters(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# Stepping by hand


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lr", [0.0, 1e-3, 0.1, 0.7])
def test_manual_sgd_step_is_bitwise_torch_sgd(dtype, lr):
    ours, theirs = _twins(dtype)
    # A parameter outside every forward: its .grad stays None, and both must leave it alone.
    extra_ours, extra_theirs = (nn.Parameter(torch.ones(3, dtype=dtype)) for _ in range(2))
    sgd = torch.optim.SGD([*theirs.parameters(), extra_theirs], lr=lr)
    for input, target in _spiral_batches(dtype=dtype)[:6]:
        for net in (ours, theirs):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(input), target).backward()
        manual_sgd_step([*ours.parameters(), extra_ours], lr=lr)
        sgd.step()
        assert _same_parameters(ours, theirs)
    assert extra_ours.grad is None and torch.equal(extra_ours, extra_theirs) and torch.equal(extra_ours, torch.ones(3))


def test_textbook_update_agrees_to_a_rounding():
    ours, theirs = _twins()
    sgd = torch.optim.SGD(theirs.parameters(), lr=0.1)
    input, target = _spiral_batches()[0]
    for net in (ours, theirs):
        F.cross_entropy(net(input), target).backward()
    with torch.no_grad():
        for p in ours.parameters():
            p -= 0.1 * p.grad
    sgd.step()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        # One rounding apart at most: a relative difference of the order of float32's epsilon.
        torch.testing.assert_close(p, q, rtol=2 * torch.finfo(torch.float32).eps, atol=1e-7)


def test_in_place_update_of_a_leaf_needs_no_grad():
    p = nn.Parameter(torch.ones(2))
    p.grad = torch.ones(2)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        p -= 0.1 * p.grad


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_manual_sgd_step_is_bitwise_torch_sgd_in_every_layout(dtype):
    # Half precision, a 0-d parameter and a non-contiguous (transposed) one: the same add_ call, the same bits.
    g = torch.Generator().manual_seed(0)
    shapes = [(), (5,), (3, 4)]
    ours = [nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in shapes]
    ours.append(nn.Parameter(torch.randn(4, 3, generator=g).to(dtype).t()))
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]  # clone keeps the strides
    sgd = torch.optim.SGD(theirs, lr=0.3)
    for _ in range(10):
        for p, q in zip(ours, theirs, strict=True):
            p.grad = torch.randn(p.shape, generator=g).to(dtype)
            q.grad = p.grad.clone()
        manual_sgd_step(ours, lr=0.3)
        sgd.step()
    assert all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))
    assert not ours[-1].is_contiguous() and not theirs[-1].is_contiguous()


@pytest.mark.parametrize(
    ("lr", "error", "match"),
    [
        (-0.1, ValueError, "lr must be a finite number >= 0, got -0.1"),
        (float("nan"), ValueError, "lr must be a finite number >= 0, got nan"),
        (float("inf"), ValueError, "lr must be a finite number >= 0, got inf"),
        (True, TypeError, "lr must be a real number, got True"),
        ("0.1", TypeError, "lr must be a real number, got '0.1'"),
        (torch.tensor(0.1), TypeError, r"lr must be a real number, got tensor\(0.1000\)"),
    ],
)
def test_manual_sgd_step_rejects_bad_lr(lr, error, match):
    with pytest.raises(error, match=match):
        manual_sgd_step([nn.Parameter(torch.ones(1))], lr=lr)


# One training step


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_train_step_is_the_five_lines(momentum):
    ours, theirs = _twins()
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=momentum)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum)
    for batch in _spiral_batches()[:5]:
        got = train_step(ours, batch, cross_entropy, opt_ours)
        loss = cross_entropy(theirs(batch[0]), batch[1])
        opt_theirs.zero_grad(set_to_none=True)
        loss.backward()
        opt_theirs.step()
        assert isinstance(got, float) and got == loss.item()
        assert _same_parameters(ours, theirs)


class _HalfUsed(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(2, 3), nn.Linear(2, 3)

    def forward(self, x):
        return self.used(x)  # the second layer never takes part


def test_train_step_clears_gradients_to_none_first():
    torch.manual_seed(0)
    model = _HalfUsed()
    used, unused = model.used, model.unused
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.5)
    unused.weight.grad = torch.ones_like(unused.weight)  # a stale gradient from long ago
    before = unused.weight.detach().clone()
    batch = (torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))
    train_step(model, batch, cross_entropy, optimizer)
    # None, so the optimiser skipped it, weight decay included.
    assert unused.weight.grad is None and torch.equal(unused.weight, before)
    expected = torch.autograd.grad(cross_entropy(used(batch[0]), batch[1]), used.weight)[0]
    train_step(model, batch, cross_entropy, optimizer)
    torch.testing.assert_close(used.weight.grad, expected)  # the fresh gradient, not a sum


def test_train_step_keeps_the_mode_it_is_given():
    model = spiral_classifier(8, dropout=0.5)
    model[2].eval()  # one dropout frozen on purpose
    modes = [m.training for m in model.modules()]
    train_step(model, _spiral_batches()[0], cross_entropy, torch.optim.SGD(model.parameters(), lr=0.1))
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("batch", [torch.ones(2, 2), (torch.ones(2, 2),), (torch.ones(2, 2), [0, 1]), "xy"])
def test_train_step_rejects_a_batch_that_is_not_a_pair(batch):
    model = spiral_classifier(4)
    with pytest.raises(TypeError, match=r"a batch must be an \(input, target\) pair of tensors"):
        train_step(model, batch, cross_entropy, torch.optim.SGD(model.parameters(), lr=0.1))


def test_zero_grad_after_backward_trains_nothing():
    # Hammer's order: backward, zero_grad, step. Every .grad is None at the step: nothing moves, no state.
    torch.manual_seed(0)
    net = spiral_classifier(8)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9, weight_decay=0.1)
    for x, y in _spiral_batches()[:5]:
        cross_entropy(net(x), y).backward()
        optimizer.zero_grad(set_to_none=True)
        optimizer.step()
    assert all(torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True)) and len(optimizer.state) == 0


def test_forgotten_zero_grad_piles_gradients_up():
    torch.manual_seed(0)
    net = spiral_classifier(8)
    batches = _spiral_batches()[:4]
    alone = [torch.autograd.grad(F.cross_entropy(net(x), y), net[0].weight)[0] for x, y in batches]
    for x, y in batches:
        F.cross_entropy(net(x), y).backward()
    torch.testing.assert_close(net[0].weight.grad, torch.stack(alone).sum(0))


# Evaluation


@pytest.mark.parametrize("batch_size", [1, 7, 64, 300, 1000])
def test_evaluate_is_the_whole_sets_loss_and_accuracy(batch_size):
    torch.manual_seed(0)
    model = spiral_classifier(16)
    x, y = make_spiral(seed=1)
    metrics = evaluate(model, minibatches(x, y, batch_size), cross_entropy)
    with torch.no_grad():
        logits = model(x)
    assert set(metrics) == {"loss", "accuracy"} and all(isinstance(v, float) for v in metrics.values())
    assert math.isclose(metrics["loss"], F.cross_entropy(logits, y).item(), rel_tol=1e-5)
    assert metrics["accuracy"] == (logits.argmax(1) == y).sum().item() / len(y)


def test_evaluate_restores_every_mode_builds_no_graph_and_touches_no_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    model[1].eval()  # frozen BatchNorm
    modes = [m.training for m in model.modules()]
    running_mean = model[1].running_mean.clone()
    seen = []

    def loss_fn(output, target):
        seen.append((output.requires_grad, model[2].training))
        return F.cross_entropy(output, target)

    batches = _spiral_batches(16)[:3]
    first, second = evaluate(model, batches, loss_fn), evaluate(model, batches, loss_fn)
    assert first == second  # dropout asleep: the same numbers twice
    assert all(not grad and not training for grad, training in seen)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(model[1].running_mean, running_mean)
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_restores_the_modes_when_the_loss_raises():
    model = spiral_classifier(8, dropout=0.2)

    def broken(output, target):
        raise KeyError("the validation set caught fire")

    with pytest.raises(KeyError):
        evaluate(model, _spiral_batches()[:1], broken)
    assert all(m.training for m in model.modules())


def test_evaluate_without_class_indices_reports_only_the_loss():
    model = nn.Linear(3, 1)
    x = torch.randn(10, 3)
    y = torch.randn(10, 1)
    metrics = evaluate(model, [(x[:4], y[:4]), (x[4:], y[4:]), (x[:0], y[:0])], F.mse_loss)
    assert list(metrics) == ["loss"]
    with torch.no_grad():
        assert math.isclose(metrics["loss"], F.mse_loss(model(x), y).item(), rel_tol=1e-5)


def test_evaluate_errors():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="batches must hold at least one sample, got none"):
        evaluate(model, [], cross_entropy)
    with pytest.raises(ValueError, match="at least one sample"):
        evaluate(model, [(torch.ones(0, 2), torch.ones(0, dtype=torch.long))], cross_entropy)
    with pytest.raises(TypeError, match=r"\(input, target\) pair"):
        evaluate(model, [torch.ones(2, 2)], cross_entropy)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        evaluate("model", [(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))], cross_entropy)


def test_no_grad_and_inference_mode_forbid_different_things():
    layer = nn.Linear(3, 3)
    with torch.no_grad():
        plain = layer(torch.ones(1, 3))
    with torch.inference_mode():
        frozen = layer(torch.ones(1, 3))
    assert not plain.requires_grad and not frozen.requires_grad
    assert not torch.is_inference(plain) and torch.is_inference(frozen)
    plain.add_(1.0)
    layer(plain).sum().backward()
    plain.requires_grad_(True)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        frozen.add_(1.0)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        layer(frozen).sum().backward()
    with pytest.raises(RuntimeError, match="Setting requires_grad=True on inference tensor outside InferenceMode"):
        frozen.requires_grad_(True)
    layer(frozen.clone()).sum().backward()
    # The lesson's reason for evaluating under no_grad: a cache built in inference mode poisons training.
    cache = {}

    def cached_forward(x):
        if "scale" not in cache:
            cache["scale"] = layer.weight.detach() * 2  # built on first use
        return (x * cache["scale"]).sum()

    with torch.inference_mode():
        cached_forward(torch.ones(3, 3))
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        cached_forward(torch.ones(3, 3, requires_grad=True)).backward()
    cache.clear()
    with torch.no_grad():
        cached_forward(torch.ones(3, 3))
    cached_forward(torch.ones(3, 3, requires_grad=True)).backward()
    # Both leave the outputs without a graph: no backward through them.
    for t in (layer(torch.ones(1, 3)).detach(), frozen):
        with pytest.raises(RuntimeError, match="does not require grad"):
            t.sum().backward()


# The sanity checks


@pytest.mark.parametrize("num_classes", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_initial_loss_is_about_log_num_classes(num_classes, seed):
    torch.manual_seed(seed)
    model = spiral_classifier(num_classes=num_classes)
    x, y = make_spiral(30, num_classes=num_classes, seed=seed)
    loss = evaluate(model, [(x, y)], cross_entropy)["loss"]
    assert abs(loss - math.log(num_classes)) < 0.1


def test_an_oversized_last_layer_fails_the_initial_loss_check():
    torch.manual_seed(0)
    model = spiral_classifier()
    batches = _spiral_batches(64, seed=1)
    assert abs(evaluate(model, batches, cross_entropy)["loss"] - math.log(3)) < 0.05
    with torch.no_grad():
        model[-1].weight.mul_(20.0)
    assert evaluate(model, batches, cross_entropy)["loss"] > 2 * math.log(3)


def test_overfit_one_batch_learns_it_by_heart_and_a_broken_model_cannot():
    torch.manual_seed(0)
    batch = _spiral_batches()[3]
    model = spiral_classifier()
    losses = overfit_one_batch(model, batch, cross_entropy, torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9),
                               steps=100)
    assert len(losses) == 100 and losses[-1] < 0.02 < losses[0]
    assert evaluate(model, [batch], cross_entropy)["accuracy"] == 1.0
    # A classic plumbing bug: the optimiser was given only the last layer. The loss stalls far above 0.
    torch.manual_seed(0)
    model = spiral_classifier()
    stalled = overfit_one_batch(model, batch, cross_entropy, torch.optim.SGD(model[-1].parameters(), lr=0.2), steps=100)
    assert stalled[-1] > 0.1
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):
        overfit_one_batch(model, batch, cross_entropy, torch.optim.SGD(model.parameters(), lr=0.1), steps=0)


# The whole loop


def _run(seed, epochs=2, batch_size=50, val=True):
    x, y = make_spiral(50, seed=seed)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = spiral_classifier(16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, optimizer, lambda epoch: minibatches(x, y, batch_size, shuffle=True, generator=g),
                  cross_entropy, epochs=epochs, val_batches=[make_spiral(20, seed=seed + 1)] if val else None,
                  progress_bar=False)
    return history, model


def test_fit_is_bitwise_reproducible_from_a_seed():
    (h1, m1), (h2, m2), (h3, m3) = _run(0), _run(0), _run(1)
    assert h1 == h2 and _same_parameters(m1, m2)
    assert h1 != h3 and not _same_parameters(m1, m3)
    assert list(h1) == ["train_loss", "val_loss", "val_accuracy"] and all(len(v) == 2 for v in h1.values())


def test_fit_is_train_step_in_a_loop_and_evaluate_after_each_epoch():
    ours, theirs = _twins()
    batches = _spiral_batches(64)
    val = _spiral_batches(100, seed=1)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1)
    history = fit(ours, opt_ours, batches, cross_entropy, epochs=2, val_batches=val, progress_bar=False)
    for epoch in range(2):
        losses = [(train_step(theirs, b, cross_entropy, opt_theirs), len(b[1])) for b in batches]
        assert history["train_loss"][epoch] == pytest.approx(sum(loss * n for loss, n in losses) / 300, rel=1e-12)
        assert history["val_loss"][epoch] == evaluate(theirs, val, cross_entropy)["loss"]
    assert _same_parameters(ours, theirs)


def test_fit_accepts_a_dataloader_and_shows_a_bar(capsys):
    x, y = make_spiral(20)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    model = spiral_classifier(8)
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), loader, cross_entropy, epochs=2)
    assert len(history["train_loss"]) == 2 and list(history) == ["train_loss"]
    assert "epochs" in capsys.readouterr().err  # tqdm's bar, on stderr


def test_fit_leaves_frozen_submodules_frozen():
    model = spiral_classifier(8, dropout=0.3)
    model[2].eval()
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), _spiral_batches()[:2], cross_entropy, epochs=1,
        val_batches=_spiral_batches(seed=1)[:1], progress_bar=False)
    assert model.training and not model[2].training and model[5].training


def test_fit_errors():
    model = spiral_classifier(4)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = _spiral_batches()[:1]
    with pytest.raises(ValueError, match=r"model is in eval mode \(model.training is False\): call model.train\(\)"):
        fit(model.eval(), sgd, batches, cross_entropy, epochs=1)
    model.train()
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        fit(model, sgd, batches, cross_entropy, epochs=0)
    with pytest.raises(TypeError, match="epochs must be an int, got 2.0"):
        fit(model, sgd, batches, cross_entropy, epochs=2.0)
    with pytest.raises(ValueError, match="train_batches must hold at least one sample, got none in epoch 0"):
        fit(model, sgd, [], cross_entropy, epochs=1, progress_bar=False)


def test_summing_the_loss_tensor_keeps_every_graph():
    torch.manual_seed(0)
    net = spiral_classifier(8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    hammer, sizes = 0.0, []
    for x, y in _spiral_batches()[:5]:
        loss = cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hammer = hammer + loss
        sizes.append(graph_size(hammer))
    steps = {b - a for a, b in zip(sizes[:-1], sizes[1:], strict=True)}
    assert len(steps) == 1 and steps.pop() > 0
    assert graph_size(hammer.detach()) == 0 and graph_size(torch.ones(2)) == 0
    with pytest.raises(TypeError, match="tensor must be a torch.Tensor, got float"):
        graph_size(1.0)


# The data and the model


def test_make_spiral_is_seeded_privately_and_balanced():
    state = torch.get_rng_state()
    x, y = make_spiral(7, num_classes=4, noise=0.0, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert x.shape == (28, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [7] * 4
    radius = x.norm(dim=1)
    torch.testing.assert_close(radius, torch.linspace(0, 1, 8)[1:].repeat(4))
    assert torch.equal(make_spiral(seed=5)[0], make_spiral(seed=5)[0])
    assert not torch.equal(make_spiral(seed=5)[0], make_spiral(seed=6)[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_per_class": 0}, ValueError, "n_per_class must be at least 1, got 0"),
        ({"num_classes": 1}, ValueError, "num_classes must be at least 2, got 1"),
        ({"num_classes": 2.0}, TypeError, "num_classes must be an int, got 2.0"),
        ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0, got -0.1"),
        ({"noise": float("nan")}, ValueError, "noise must be a finite number >= 0, got nan"),
        ({"noise": "big"}, TypeError, "noise must be a real number, got 'big'"),
        ({"seed": -1}, ValueError, "seed must be at least 0, got -1"),
    ],
)
def test_make_spiral_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_spiral(**kwargs)


def test_minibatches_cover_every_sample_once():
    x, y = make_spiral(10)
    g = torch.Generator().manual_seed(0)
    first = minibatches(x, y, 8, shuffle=True, generator=g)
    second = minibatches(x, y, 8, shuffle=True, generator=g)
    assert [len(t) for _, t in first] == [8, 8, 8, 6]
    for batches in (first, second):
        xs = torch.cat([b[0] for b in batches])
        order = torch.cat([b[1] for b in batches])
        assert sorted(map(tuple, xs.tolist())) == sorted(map(tuple, x.tolist()))
        assert torch.bincount(order).tolist() == [10, 10, 10]
    assert not torch.equal(first[0][0], second[0][0])  # a new order each epoch
    assert torch.equal(torch.cat([b[0] for b in minibatches(x, y, 7)]), x)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        minibatches(x, y, 0)
    with pytest.raises(TypeError, match="x must be a tensor with a samples dimension, got list"):
        minibatches([1, 2], y, 2)
    with pytest.raises(TypeError, match="y must be a tensor with a samples dimension, got a 0-d tensor"):
        minibatches(x, torch.tensor(1), 2)


def test_spiral_classifier_uses_the_course_layers_and_matches_nn_linear_init():
    from torchenstein.nn.activations import ReLU
    from torchenstein.nn.dropout import Dropout
    from torchenstein.nn.linear import Linear

    torch.manual_seed(0)
    model = spiral_classifier(8, num_classes=4, dropout=0.1)
    assert [type(m) for m in model] == [Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear]
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    weights = [m.weight for m in model if isinstance(m, Linear)]
    assert all(torch.equal(a, b.weight) for a, b in zip(weights, reference[::2], strict=True))


def test_plot_loss_curves_draws_two_panels():
    fig = plot_loss_curves(epochs=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 3  # training, validation and the ln C line


# Challenges


def test_challenge_solutions_pass_their_checkers():
    check_per_class_accuracy(per_class_accuracy)
    check_fit_keep_best(fit_keep_best)


def _accuracy_in_training_mode(model, batches, num_classes):
    with torch.no_grad():
        hits = [(model(x).argmax(1) == y, y) for x, y in batches]
    correct = torch.zeros(num_classes)
    seen = torch.zeros(num_classes)
    for hit, y in hits:
        seen += torch.bincount(y, minlength=num_classes)
        correct += torch.bincount(y, weights=hit.float(), minlength=num_classes)
    return correct / seen


def _accuracy_that_wakes_everything(model, batches, num_classes):
    model.eval()
    result = _accuracy_in_training_mode(model, batches, num_classes)
    model.train()
    return result


def _accuracy_with_zeros_for_missing(model, batches, num_classes):
    return torch.nan_to_num(per_class_accuracy(model, batches, num_classes), nan=0.0)


@pytest.mark.parametrize(
    ("attempt", "match"),
    [
        (_accuracy_in_training_mode, "wrong accuracies"),
        (_accuracy_that_wakes_everything, "restore each submodule's own mode"),
        (_accuracy_with_zeros_for_missing, "expected nan"),
    ],
)
def test_per_class_accuracy_checker_rejects_wrong_attempts(attempt, match):
    with pytest.raises(AssertionError, match=match):
        check_per_class_accuracy(attempt)


def _keep_best_without_copy(model, optimizer, train_batches, val_batches, loss_fn, epochs):
    best, losses = None, []
    for _ in range(epochs):
        for batch in train_batches:
            train_step(model, batch, loss_fn, optimizer)
        losses.append(evaluate(model, val_batches, loss_fn)["loss"])
        if losses[-1] <= min(losses):
            best = model.state_dict()  # Hammer: references, not a copy
    return best, losses


def _keep_last(model, optimizer, train_batches, val_batches, loss_fn, epochs):
    best, losses = fit_keep_best(model, optimizer, train_batches, val_batches, loss_fn, epochs)
    return {name: t.detach().clone() for name, t in model.state_dict().items()}, losses


def _keep_best_in_eval_mode(model, optimizer, train_batches, val_batches, loss_fn, epochs):
    result = fit_keep_best(model, optimizer, train_batches, val_batches, loss_fn, epochs)
    model.eval()
    return result


@pytest.mark.parametrize(
    ("attempt", "match"),
    [
        (_keep_best_without_copy, "clone them"),
        (_keep_last, "clone them"),
        (_keep_best_in_eval_mode, "back in training mode"),
    ],
)
def test_fit_keep_best_checker_rejects_wrong_attempts(attempt, match):
    with pytest.raises(AssertionError, match=match):
        check_fit_keep_best(attempt)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_loop_on_cuda():
    ours, theirs = _twins()
    ours, theirs = ours.cuda(), theirs.cuda()
    batches = [(x.cuda(), y.cuda()) for x, y in _spiral_batches()[:4]]
    opt = torch.optim.SGD(theirs.parameters(), lr=0.1, foreach=False)
    for x, y in batches:
        for net in (ours, theirs):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
        manual_sgd_step(ours.parameters(), lr=0.1)
        opt.step()
    assert _same_parameters(ours, theirs)
    history = fit(ours, torch.optim.SGD(ours.parameters(), lr=0.1), batches, cross_entropy, epochs=2,
                  val_batches=batches, progress_bar=False)
    assert len(history["val_accuracy"]) == 2
    assert per_class_accuracy(ours, batches, 3).shape == (3,)
