"""The thorough proof of the train-vs-eval lesson: the flag, the modules that read it, the experiment that
finds them, the context manager that restores it, and the challenges' checkers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

import torchenstein.nn.modes as lesson
from torchenstein.challenges import challenges_in
from torchenstein.lab import device_available
from torchenstein.nn.dropout import Dropout
from torchenstein.nn.modes import (
    NoiseInjection,
    check_freeze_batchnorm,
    check_honest_validation_loss,
    evaluating,
    fit_dropout_regressor,
    freeze_batchnorm,
    honest_validation_loss,
    mode_flags,
    mode_sensitive,
    noisy_regression,
    plot_mode_bugs,
)
from torchenstein.nn.modules import Brain


def nested_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Sequential(nn.Dropout(0.5), nn.Sequential(nn.Linear(8, 8), NoiseInjection(0.1))),
        nn.Linear(8, 2),
    )


def two_faced_net() -> nn.Module:
    return nn.Sequential(
        nn.Embedding(10, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.RReLU(), Dropout(0.25),
        NoiseInjection(0.1), nn.BatchNorm1d(8), nn.RMSNorm(8), nn.Linear(8, 10),
    )


def buffers_of(model: nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    return [(name, buffer, buffer.clone()) for name, buffer in model.named_buffers()]


def assert_buffers_unchanged(model: nn.Module, before: list[tuple[str, torch.Tensor, torch.Tensor]]) -> None:
    after = dict(model.named_buffers())
    assert list(after) == [name for name, _, _ in before]
    for name, obj, value in before:
        assert after[name] is obj, f"buffer {name} was replaced"
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)


class TestTheFlag:
    def test_train_and_eval_set_every_submodule_and_return_the_model(self):
        model = nested_model()
        assert all(mode_flags(model).values())
        assert model.eval() is model
        assert not any(mode_flags(model).values())
        assert model.train() is model
        assert all(mode_flags(model).values())
        assert mode_flags(model.train(False)) == mode_flags(model.eval())

    def test_mode_flags_names_every_module_in_order(self):
        model = nested_model()
        assert list(mode_flags(model)) == [name for name, _ in model.named_modules()]
        assert list(mode_flags(model))[0] == ""

    def test_eval_on_a_child_changes_only_its_subtree_and_train_on_the_parent_undoes_it(self):
        model = nested_model()
        model[3].eval()
        flags = mode_flags(model)
        assert [name for name, flag in flags.items() if not flag] == ["3", "3.0", "3.1", "3.1.0", "3.1.1"]
        model.train()
        assert all(mode_flags(model).values())

    def test_the_flag_touches_no_tensor(self):
        model = nested_model()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        model.eval()
        assert all(p.requires_grad for p in model.parameters())
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key])

    def test_mode_flags_refuses_what_is_not_a_module(self):
        with pytest.raises(TypeError, match="model must be an nn.Module, got Tensor"):
            mode_flags(torch.ones(2))


class TestEvalIsNotNoGrad:
    def test_eval_mode_still_records_a_graph_and_gradients_flow(self):
        model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)).eval()
        x = torch.randn(4, 3)
        y = model(x)
        assert y.requires_grad and y.grad_fn is not None
        y.sum().backward()
        assert model[0].weight.grad is not None

    def test_no_grad_alone_leaves_dropout_on(self):
        model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
        x = torch.randn(64, 3)
        with torch.no_grad():
            a, b = model(x), model(x)
        assert not a.requires_grad
        assert not torch.equal(a, b)

    def test_both_give_a_repeatable_output_without_graph(self):
        model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
        x = torch.randn(64, 3)
        with evaluating(model), torch.no_grad():
            a, b = model(x), model(x)
        assert torch.equal(a, b) and not a.requires_grad
        with evaluating(model), torch.inference_mode():
            c = model(x)
        assert torch.is_inference(c) and torch.equal(a, c)


class TestNoiseInjection:
    def test_eval_and_zero_noise_return_the_input_itself(self):
        x = torch.randn(3, 4)
        assert NoiseInjection(0.0)(x) is x
        assert NoiseInjection(0.5).eval()(x) is x

    @pytest.mark.parametrize("std", [0.1, 1.0, 3.0])
    def test_training_adds_zero_mean_noise_of_the_given_std(self, std):
        x = torch.full((200_000,), 2.0)
        noise = NoiseInjection(std)(x) - x
        n = noise.numel()
        assert abs(noise.mean().item()) < 5 * std / math.sqrt(n)
        # The sample std of n normals has a standard error of about std / sqrt(2 n).
        assert abs(noise.std().item() - std) < 5 * std / math.sqrt(2 * n)

    def test_keeps_shape_dtype_and_device_and_gradient_is_the_identity(self):
        x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
        y = NoiseInjection(0.3)(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        y.sum().backward()
        torch.testing.assert_close(x.grad, torch.ones_like(x))

    def test_has_no_state_and_a_readable_repr(self):
        layer = NoiseInjection(0.25)
        assert len(layer.state_dict()) == 0 and list(layer.parameters()) == []
        assert repr(layer) == "NoiseInjection(std=0.25)"

    @pytest.mark.parametrize(
        ("std", "error", "message"),
        [
            (-0.1, ValueError, "std must be a finite number >= 0, got -0.1"),
            (math.nan, ValueError, "got nan"),
            (math.inf, ValueError, "got inf"),
            ("0.1", TypeError, "std must be a real number, got str"),
            (True, TypeError, "got bool"),
        ],
    )
    def test_refuses_bad_std(self, std, error, message):
        with pytest.raises(error, match=message):
            NoiseInjection(std)


def module_case(module: nn.Module, input, sensitive: bool, id: str):
    return pytest.param(module, input, sensitive, id=id)


MODULE_CASES = [
    module_case(nn.Dropout(0.5), torch.randn(4, 6), True, "Dropout"),
    module_case(Dropout(0.5), torch.randn(4, 6), True, "course Dropout"),
    module_case(nn.Dropout2d(0.5), torch.randn(4, 6, 3, 3), True, "Dropout2d"),
    module_case(nn.AlphaDropout(0.5), torch.randn(4, 6), True, "AlphaDropout"),
    module_case(nn.RReLU(), torch.randn(4, 6), True, "RReLU"),
    module_case(NoiseInjection(0.1), torch.randn(4, 6), True, "NoiseInjection"),
    module_case(nn.BatchNorm1d(6), torch.randn(4, 6), True, "BatchNorm1d"),
    module_case(nn.BatchNorm2d(3), torch.randn(4, 3, 2, 2), True, "BatchNorm2d"),
    module_case(nn.InstanceNorm1d(3, track_running_stats=True), torch.randn(2, 3, 5), True, "InstanceNorm tracking"),
    module_case(nn.MultiheadAttention(8, 2, dropout=0.5, batch_first=True), (torch.randn(2, 5, 8),) * 3, True, "MHA"),
    module_case(nn.Linear(6, 3), torch.randn(4, 6), False, "Linear"),
    module_case(nn.LayerNorm(6), torch.randn(4, 6), False, "LayerNorm"),
    module_case(nn.RMSNorm(6), torch.randn(4, 6), False, "RMSNorm"),
    module_case(nn.Embedding(10, 4), torch.randint(0, 10, (3, 5)), False, "Embedding"),
    module_case(nn.Conv1d(3, 2, 3), torch.randn(2, 3, 7), False, "Conv1d"),
    module_case(nn.GELU(), torch.randn(4, 6), False, "GELU"),
    module_case(nn.Dropout(0.0), torch.randn(4, 6), False, "Dropout p=0"),
    module_case(nn.BatchNorm1d(6, track_running_stats=False), torch.randn(4, 6), False, "BatchNorm no stats"),
    module_case(nn.InstanceNorm1d(3), torch.randn(2, 3, 5), False, "InstanceNorm"),
    module_case(nn.MultiheadAttention(8, 2, dropout=0.0, batch_first=True), (torch.randn(2, 5, 8),) * 3, False, "MHA p=0"),
    module_case(nn.LSTM(4, 4, num_layers=2, dropout=0.5), torch.randn(3, 2, 4), True, "LSTM 2 layers dropout"),
    module_case(nn.GRU(4, 4, num_layers=3, dropout=0.3, batch_first=True), torch.randn(2, 3, 4), True, "GRU dropout"),
    module_case(nn.LSTM(4, 4, num_layers=2), torch.randn(3, 2, 4), False, "LSTM no dropout"),
    module_case(nn.InstanceNorm2d(2, track_running_stats=True), torch.randn(2, 2, 3, 3), True, "InstanceNorm2d tracking"),
]


def _fast_path_hides_submodules() -> bool:
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).eval()
    seen = []
    handle = layer.self_attn.register_forward_hook(lambda *args: seen.append(args))
    with torch.no_grad():
        layer(torch.randn(1, 3, 8))
    handle.remove()
    return not seen


class TestModeSensitive:
    @pytest.mark.parametrize(("module", "input", "sensitive"), MODULE_CASES)
    def test_single_modules(self, module, input, sensitive):
        assert mode_sensitive(module, input) == ([""] if sensitive else [])

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_a_model_mixing_both_kinds(self, seed):
        torch.manual_seed(seed)
        net = two_faced_net()
        ids = torch.randint(0, 10, (7,))
        assert mode_sensitive(net, ids, seed=seed) == ["3", "4", "5", "6"]

    @pytest.mark.skipif(
        _fast_path_hides_submodules(),
        reason="this PyTorch's eval fast path for TransformerEncoderLayer calls no submodule, so no hook sees one",
    )
    def test_a_transformer_layer_is_sensitive_through_its_dropouts_not_its_fast_path(self):
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        assert mode_sensitive(layer, torch.randn(2, 5, 8)) == ["self_attn", "dropout", "dropout1", "dropout2"]

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_leaves_the_model_and_the_random_state_exactly_as_found(self, seed):
        torch.manual_seed(seed)
        model = nested_model()
        model[1].eval()  # a mixed-mode model
        model[3][0].eval()
        flags, params = mode_flags(model), [p.detach().clone() for p in model.parameters()]
        before = buffers_of(model)
        x = torch.randn(5, 4)
        rng = torch.get_rng_state()
        assert mode_sensitive(model, x, seed=seed) == ["1", "3.0", "3.1.1"]
        assert mode_flags(model) == flags
        assert_buffers_unchanged(model, before)
        assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True))
        assert torch.equal(torch.get_rng_state(), rng)

    def test_a_module_that_reads_the_flag_itself_and_replaces_a_buffer(self):
        brain = Brain()
        before = buffers_of(brain)
        assert mode_sensitive(brain, torch.randn(6, 3)) == [""]
        assert_buffers_unchanged(brain, before)

    def test_in_place_modules_are_replayed_on_their_true_input(self):
        model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5, inplace=True), nn.ReLU(inplace=True))
        x = torch.randn(6, 4)
        x_copy = x.clone()
        assert mode_sensitive(model, x) == ["1"]
        assert torch.equal(x, x_copy)

    def test_randomness_that_ignores_the_flag_cancels_out(self):
        class AlwaysNoisy(nn.Module):
            def forward(self, x):
                return x + torch.randn_like(x)

        assert mode_sensitive(nn.Sequential(AlwaysNoisy(), nn.Linear(3, 3)), torch.randn(2, 3)) == []

    def test_keyword_arguments_tuple_inputs_and_tuple_outputs(self):
        class Scaled(nn.Module):
            def forward(self, x, *, scale=1.0):
                return (x * (scale if self.training else 1.0), x.sum())

        class Caller(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = Scaled()

            def forward(self, a, b):
                return self.inner(a + b, scale=2.0)

        assert mode_sensitive(Caller(), (torch.ones(2), torch.ones(2))) == ["inner"]

    def test_an_error_in_one_mode_only_is_a_difference(self):
        assert mode_sensitive(nn.BatchNorm1d(3), torch.ones(1, 3)) == [""]

    def test_modules_the_forward_never_calls_are_not_tested(self):
        class Unused(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear, self.spare_dropout = nn.Linear(2, 2), nn.Dropout(0.5)

            def forward(self, x):
                return self.linear(x)

        assert mode_sensitive(Unused(), torch.randn(3, 2)) == []

    def test_a_shared_module_is_reported_once(self):
        drop = nn.Dropout(0.5)
        model = nn.Sequential(drop, nn.Linear(4, 4), drop)
        assert mode_sensitive(model, torch.randn(3, 4)) == ["0"]

    def test_an_exception_in_the_model_restores_everything(self):
        model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(5, 5))  # the Linear refuses 3 features
        before, flags = buffers_of(model), mode_flags(model)
        with pytest.raises(RuntimeError):
            mode_sensitive(model, torch.randn(4, 3))
        assert mode_flags(model) == flags
        assert_buffers_unchanged(model, before)
        assert all(not m._forward_pre_hooks for m in model.modules()), "the recording hooks must be removed"

    def test_refuses_bad_arguments(self):
        with pytest.raises(TypeError, match="model must be an nn.Module, got function"):
            mode_sensitive(lambda x: x, torch.ones(2))
        with pytest.raises(TypeError, match="input must be a tensor or a tuple of positional arguments, got list"):
            mode_sensitive(nn.Linear(2, 2), [torch.ones(2)])

    @pytest.mark.skipif(not device_available("cuda"), reason="needs a CUDA device")
    def test_on_cuda_with_the_cuda_random_state_untouched(self):
        net = two_faced_net().cuda()
        ids = torch.randint(0, 10, (7,), device="cuda")
        rng = torch.cuda.get_rng_state()
        assert mode_sensitive(net, ids) == ["3", "4", "5", "6"]
        assert torch.equal(torch.cuda.get_rng_state(), rng)


# A random module tree: each node is a list of children, and every module gets a random flag.
trees = st.recursive(st.just([]), lambda children: st.lists(children, max_size=3), max_leaves=12)


def build_tree(spec) -> nn.Module:
    module = nn.Sequential(*[build_tree(child) for child in spec]) if spec else nn.Identity()
    return module


class TestEvaluating:
    @settings(max_examples=40)
    @given(spec=trees, data=st.data())
    def test_restores_every_flag_of_any_tree(self, spec, data):
        model = build_tree(spec)
        modules = list(model.modules())
        flags = data.draw(st.lists(st.booleans(), min_size=len(modules), max_size=len(modules)))
        for module, flag in zip(modules, flags, strict=True):
            module.training = flag
        with evaluating(model) as inside:
            assert inside is model
            assert not any(module.training for module in modules)
        assert [module.training for module in modules] == flags

    def test_restores_after_an_exception_and_lets_it_through(self):
        model = nested_model()
        model[1].eval()
        flags = mode_flags(model)
        with pytest.raises(ZeroDivisionError), evaluating(model):
            assert not any(mode_flags(model).values())
            1 / 0  # noqa: B018 - the point is the exception
        assert mode_flags(model) == flags

    def test_a_frozen_batchnorm_stays_frozen_unlike_train_was_training(self):
        model = nested_model()
        model[1].eval()
        with evaluating(model):
            pass
        assert model.training and not model[1].training
        was_training = model.training
        model.eval()
        model.train(was_training)
        assert model[1].training, "the usual idiom wakes the frozen layer: this is why evaluating exists"

    def test_nesting_and_reuse(self):
        model = nested_model()
        model[3].eval()
        flags = mode_flags(model)
        outer = evaluating(model)
        with outer:
            with evaluating(model):
                assert not any(mode_flags(model).values())
            assert not any(mode_flags(model).values()), "the inner block must restore the outer block's eval mode"
            with pytest.raises(RuntimeError, match="already active"):
                outer.__enter__()
        assert mode_flags(model) == flags
        with outer:
            assert not model.training
        assert mode_flags(model) == flags

    def test_shared_modules_and_modules_added_inside(self):
        shared = nn.Linear(2, 2)
        model = nn.Sequential(shared, nn.ReLU(), shared)
        shared.eval()
        with evaluating(model):
            model.append(nn.Dropout(0.5))  # added inside: not in the snapshot, keeps its own flag
        assert model.training and not shared.training and model[3].training

    def test_changes_no_tensor_and_no_requires_grad(self):
        model = nested_model()
        state = {k: v.clone() for k, v in model.state_dict().items()}
        with evaluating(model):
            assert all(p.requires_grad for p in model.parameters())
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())

    def test_refuses_what_is_not_a_module(self):
        with pytest.raises(TypeError, match="model must be an nn.Module, got str"):
            evaluating("model")


class TestTheSpecimens:
    def test_noisy_regression_splits_share_one_target(self):
        x, y = noisy_regression(512, seed=3)
        assert x.shape == (512, 8) and y.shape == (512, 1)
        residual = y - torch.sin(x @ torch.linspace(-1, 1, 8))[:, None]
        assert abs(residual.std().item() - 0.1) < 0.02
        x2, _ = noisy_regression(512, seed=4)
        assert not torch.equal(x, x2)
        assert torch.equal(noisy_regression(512, seed=3)[1], y)

    def test_fit_is_deterministic_and_leaves_the_global_random_state(self):
        rng = torch.get_rng_state()
        _, a = fit_dropout_regressor(steps=10)
        _, b = fit_dropout_regressor(steps=10)
        assert a == b
        assert torch.equal(torch.get_rng_state(), rng)

    def test_fit_learns(self):
        model, losses = fit_dropout_regressor(steps=100)
        x_val, y_val = noisy_regression(128, seed=1)
        with evaluating(model), torch.no_grad():
            val = F.mse_loss(model(x_val), y_val).item()
        assert losses[-1] < losses[0] / 3 and val < y_val.var().item() / 3

    @pytest.mark.parametrize("switch_back", [True, False])
    def test_switch_back_decides_the_final_mode(self, switch_back):
        model, losses = fit_dropout_regressor(steps=4, validate_every=2, switch_back=switch_back)
        assert len(losses) == 4
        assert all(flag is switch_back for flag in mode_flags(model).values())

    def test_forgetting_train_changes_only_what_comes_after_the_validation(self):
        _, honest = fit_dropout_regressor(steps=20, validate_every=10, switch_back=True)
        _, hammer = fit_dropout_regressor(steps=20, validate_every=10, switch_back=False)
        assert honest[:10] == hammer[:10] and honest[10:] != hammer[10:]

    @pytest.mark.parametrize(("kwargs", "message"), [({"steps": 0}, "steps must be at least 1, got 0"),
                                                      ({"validate_every": 0}, "validate_every must be None or at least 1")])
    def test_fit_refuses_bad_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            fit_dropout_regressor(**kwargs)


def test_the_figure_draws_both_traps():
    fig = plot_mode_bugs(evaluations=4, steps=3, validate_every=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    noisy, _mean, honest = (line.get_ydata() for line in fig.axes[0].lines[:3])
    assert len(set(honest)) == 1 and len(set(noisy)) == 4
    honest_run, hammer_run = (line.get_ydata() for line in fig.axes[1].lines[:2])
    assert list(honest_run[:3]) == list(hammer_run[:3]) and len(honest_run) == 6


def eval_only(model):
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            module.eval()
            names.append(name)
    return names


def grads_only(model):
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            module.requires_grad_(False)
            names.append(name)
    return names


def whole_model_eval(model):
    names = grads_only(model)
    model.eval()
    return names


def only_1d(model):
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm1d):
            module.eval().requires_grad_(False)
            names.append(name)
    return names


def train_at_the_end(model, batches, loss_fn):
    model.eval()
    with torch.no_grad():
        losses = [(loss_fn(model(x), y).item(), len(y)) for x, y in batches]
    model.train()
    if not losses:
        raise ValueError("no batches")
    return sum(loss * n for loss, n in losses) / sum(n for _, n in losses)


def unweighted(model, batches, loss_fn):
    with evaluating(model), torch.no_grad():
        losses = [loss_fn(model(x), y).item() for x, y in batches]
    if not losses:
        raise ValueError("no batches")
    return sum(losses) / len(losses)


def without_eval(model, batches, loss_fn):
    with torch.no_grad():
        pairs = [(loss_fn(model(x), y).item(), len(y)) for x, y in batches]
    if not pairs:
        raise ValueError("no batches")
    return sum(loss * n for loss, n in pairs) / sum(n for _, n in pairs)


def without_no_grad(model, batches, loss_fn):
    with evaluating(model):
        pairs = [(loss_fn(model(x), y).item(), len(y)) for x, y in batches]
    if not pairs:
        raise ValueError("no batches")
    return sum(loss * n for loss, n in pairs) / sum(n for _, n in pairs)


def no_finally(model, batches, loss_fn):
    flags = {m: m.training for m in model.modules()}
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            total += loss_fn(model(x), y).item() * len(y)
            count += len(y)
    for module, flag in flags.items():
        module.training = flag
    if count == 0:
        raise ValueError("no batches")
    return total / count


def zero_for_nothing(model, batches, loss_fn):
    total, count = 0.0, 0
    with evaluating(model), torch.no_grad():
        for x, y in batches:
            total += loss_fn(model(x), y).item() * len(y)
            count += len(y)
    return total / max(count, 1)


class TestChallenges:
    def test_the_lesson_registers_both_challenges(self):
        assert set(challenges_in(lesson)) == {"freeze_batchnorm", "honest_validation_loss"}

    def test_the_solutions_pass(self):
        assert check_freeze_batchnorm(freeze_batchnorm) is None
        assert check_honest_validation_loss(honest_validation_loss) is None

    @pytest.mark.parametrize(
        ("attempt", "message"),
        [
            (eval_only, "should be frozen"),
            (grads_only, "should be in eval mode"),
            (whole_model_eval, "should be in train mode"),
            (only_1d, "BatchNorm2d and BatchNorm3d"),
        ],
    )
    def test_freeze_checker_rejects_wrong_attempts(self, attempt, message):
        with pytest.raises(AssertionError, match=message):
            check_freeze_batchnorm(attempt)

    @pytest.mark.parametrize(
        ("attempt", "message"),
        [
            (train_at_the_end, "its own mode"),
            (unweighted, "weighted by their size"),
            (without_eval, "eval-mode loss"),
            (without_no_grad, "torch.no_grad"),
            (no_finally, "after an exception"),
            (zero_for_nothing, "should raise ValueError"),
        ],
    )
    def test_validation_checker_rejects_wrong_attempts(self, attempt, message):
        with pytest.raises(AssertionError, match=message):
            check_honest_validation_loss(attempt)

    def test_freeze_batchnorm_is_undone_by_the_next_train(self):
        model = nested_model()
        assert freeze_batchnorm(model) == ["1"]
        model.train()
        assert model[1].training and not model[1].weight.requires_grad

    def test_honest_validation_loss_matches_one_big_batch(self):
        model = nested_model()
        x, y = torch.randn(10, 4), torch.randn(10, 2)
        batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 10, 4)]  # sizes 4, 4, 2
        with evaluating(model), torch.no_grad():
            expected = F.mse_loss(model(x), y).item()
        assert honest_validation_loss(model, batches, F.mse_loss) == pytest.approx(expected, rel=1e-6)
        assert honest_validation_loss(model, iter(batches), F.mse_loss) == pytest.approx(expected, rel=1e-6)
        with pytest.raises(ValueError, match="at least one sample"):
            honest_validation_loss(model, [], F.mse_loss)
        with pytest.raises(TypeError, match="model must be an nn.Module"):
            honest_validation_loss(None, batches, F.mse_loss)


def _padded_encoder():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=1)
    src = torch.randn(3, 5, 8)
    lengths = torch.tensor([5, 3, 1])
    padding = torch.arange(5) >= lengths[:, None]  # (batch, positions), True at padding
    return encoder, src, padding


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
class TestTheTransformerEncodersFastPath:
    def test_eval_under_no_grad_zeroes_the_padded_positions_and_keeps_the_rest(self):
        encoder, src, padding = _padded_encoder()
        with torch.no_grad():
            trained = encoder.train()(src, src_key_padding_mask=padding)
            evaluated = encoder.eval()(src, src_key_padding_mask=padding)
        assert torch.equal(evaluated[padding], torch.zeros_like(evaluated[padding]))
        assert (trained[padding].abs().sum(dim=-1) > 0).all()
        torch.testing.assert_close(evaluated[~padding], trained[~padding], rtol=1e-4, atol=1e-5)

    def test_with_autograd_on_eval_mode_takes_the_ordinary_path(self):
        encoder, src, padding = _padded_encoder()
        evaluated = encoder.eval()(src, src_key_padding_mask=padding)  # grad enabled: no fast path
        assert (evaluated[padding].abs().sum(dim=-1) > 0).all()

    def test_it_decides_by_its_first_layer_s_flag(self):
        encoder, src, padding = _padded_encoder()
        encoder.eval()
        encoder.layers[0].train()
        with torch.no_grad():
            out = encoder(src, src_key_padding_mask=padding)
        assert (out[padding].abs().sum(dim=-1) > 0).all()  # the root is in eval mode, yet no fast path

    def test_mode_sensitive_misses_it_one_flag_at_a_time(self):
        encoder, src, padding = _padded_encoder()
        flags = mode_flags(encoder)
        assert mode_sensitive(encoder, (src, None, padding)) == []
        assert mode_flags(encoder) == flags

    def test_nested_outputs_compare_row_by_row(self):
        a = torch.nested.nested_tensor([torch.ones(2, 3), torch.zeros(1, 3)])
        b = torch.nested.nested_tensor([torch.ones(2, 3), torch.zeros(1, 3)])
        c = torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(1, 3)])
        assert lesson._same(a, b) and not lesson._same(a, c) and not lesson._same(a, torch.ones(2, 3))
