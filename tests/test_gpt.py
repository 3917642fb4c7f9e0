"""The proof that the lesson's GPT is Hugging Face's GPT-2: logits, loss, gradients, training steps, counts."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from torchenstein.transformers.gpt import (
    CONV1D_WEIGHTS,
    GPT,
    GPTConfig,
    check_crop_block_size,
    check_from_hf_state_dict,
    crop_block_size,
    from_hf_state_dict,
    parameter_budget,
    piece_speeds,
    plot_parameter_budget,
    to_hf,
    to_hf_state_dict,
)

# Found, not imported: importing transformers takes seconds in every process that collects this file.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers is missing")

SMALL = {"n_layer": 2, "n_embd": 32, "n_head": 4, "block_size": 16, "vocab_size": 50}
# Lengths: one token, a length in between, and the full context.
LENGTHS = [1, 7, 16]


def _model(dtype=torch.float32, seed=0, **fields) -> GPT:
    torch.manual_seed(seed)
    return GPT.from_config(**{**SMALL, **fields}).to(dtype)


def _ids(B, T, vocab_size=50, seed=1) -> torch.Tensor:
    return torch.randint(0, vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))


def _shifted(idx: torch.Tensor) -> torch.Tensor:
    # Our targets for Hugging Face's labels=idx: the next token at each position, the last one ignored.
    return torch.cat([idx[:, 1:], torch.full_like(idx[:, :1], -100)], dim=1)


def _grads_as_hf(model: GPT) -> dict[str, torch.Tensor]:
    # Our gradients under Hugging Face's layout: the Conv1D weights' gradients are transposed too.
    return {name: p.grad.t() if name.endswith(CONV1D_WEIGHTS) else p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("T", LENGTHS)
def test_logits_loss_and_gradients_equal_hugging_face_float32(bias, attn_implementation, T):
    model = _model(bias=bias)
    hf = to_hf(model, attn_implementation)
    idx = _ids(3, T)
    logits, loss = model(idx, _shifted(idx))
    out = hf(input_ids=idx, labels=idx, use_cache=False)
    torch.testing.assert_close(logits, out.logits)
    if T == 1:  # nothing to predict: both losses are the mean over no targets, NaN
        assert loss.isnan() and out.loss.isnan()
        return
    torch.testing.assert_close(loss, out.loss)
    loss.backward()
    out.loss.backward()
    theirs = dict(hf.named_parameters())
    ours = _grads_as_hf(model)
    for name, grad in ours.items():
        torch.testing.assert_close(grad, theirs[name].grad, msg=f"gradient of {name}")
    if not bias:
        # GPT-2 still has biases: ours are absent, theirs stay zero and get gradients we do not train.
        assert all(name.endswith(".bias") for name in set(theirs) - set(ours))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("B, T", [(1, 1), (2, 9), (3, 16)])
def test_float64_logits_and_gradients_agree_tightly(bias, B, T):
    model = _model(torch.float64, bias=bias)
    hf = to_hf(model, "eager")
    idx = _ids(B, T)
    targets = _ids(B, T, seed=2)
    logits, loss = model(idx, targets)
    hf_logits = hf(input_ids=idx, use_cache=False).logits
    tight = {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(logits, hf_logits, **tight)
    # Hugging Face's own loss is computed in float32 (see the next test), so the float64 loss on their
    # side is the same cross-entropy written out on their logits.
    hf_loss = F.cross_entropy(hf_logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(loss, hf_loss, **tight)
    loss.backward()
    hf_loss.backward()
    theirs = dict(hf.named_parameters())
    for name, grad in _grads_as_hf(model).items():
        torch.testing.assert_close(grad, theirs[name].grad, **tight, msg=f"gradient of {name}")


def test_where_it_differs_hugging_faces_loss_is_float32_even_for_float64_models():
    model = _model(torch.float64)
    idx = _ids(2, 16)
    out = to_hf(model)(input_ids=idx, labels=idx, use_cache=False)
    loss = model(idx, _shifted(idx))[1]
    assert out.logits.dtype == torch.float64 and loss.dtype == torch.float64
    if out.loss.dtype == torch.float64:  # pragma: no cover - older transformers (4.4x) kept the logits' dtype
        pytest.skip("this transformers computes its loss in the logits' dtype")
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(loss.float(), out.loss)


def test_three_adamw_steps_stay_equal_to_hugging_face():
    model = _model()
    hf = to_hf(model, "sdpa")
    lr = 1e-3
    opts = [torch.optim.AdamW(m.parameters(), lr=lr) for m in (model, hf)]
    for step in range(3):
        idx = _ids(4, 16, seed=10 + step)
        losses = [model(idx, _shifted(idx))[1], hf(input_ids=idx, labels=idx, use_cache=False).loss]
        torch.testing.assert_close(losses[0], losses[1], msg=f"loss at step {step}")
        for opt, loss in zip(opts, losses, strict=True):
            opt.zero_grad()
            loss.backward()
            opt.step()
    C = SMALL["n_embd"]
    theirs = hf.state_dict()
    for name, value in to_hf_state_dict(model).items():
        if name.endswith("attn.c_attn.bias"):
            # The key bias adds the same number to every score of a row, which the softmax ignores: its
            # true gradient is exactly zero, so both models' gradients there are rounding noise, which
            # Adam divides by its own size and turns into steps of up to lr. Only those entries get lr's
            # tolerance (3 steps); the query and value biases are held to float32's.
            keys = slice(C, 2 * C)
            torch.testing.assert_close(value[keys], theirs[name][keys], rtol=0, atol=3 * lr)
            value, theirs[name] = value[[*range(C), *range(2 * C, 3 * C)]], theirs[name][
                [*range(C), *range(2 * C, 3 * C)]]
        torch.testing.assert_close(value, theirs[name], rtol=1e-5, atol=1e-6, msg=name)
    assert model.lm_head.weight is model.transformer.wte.weight


def test_dropout_matches_in_eval_mode_and_acts_in_training():
    model = _model(dropout=0.3).eval()
    hf = to_hf(model)
    idx = _ids(2, 16)
    torch.testing.assert_close(model(idx)[0], hf(input_ids=idx, use_cache=False).logits)
    model.train()
    first, second = model(idx)[0], model(idx)[0]
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_from_scratch_parts_give_the_same_model(dtype, bias):
    fused = _model(dtype, bias=bias)
    scratch = GPT(fused.config, from_scratch=True).to(dtype)
    scratch.load_state_dict(fused.state_dict())
    assert scratch.lm_head.weight is scratch.transformer.wte.weight
    idx, targets = _ids(2, 16), _ids(2, 16, seed=3)
    (a, loss_a), (b, loss_b) = fused(idx, targets), scratch(idx, targets)
    torch.testing.assert_close(a, b)
    loss_a.backward()
    loss_b.backward()
    grads = dict(scratch.named_parameters())
    for name, p in fused.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, msg=name)


def test_parameter_count_by_formula_equals_the_modules_and_hugging_faces():
    for fields in ({}, {"bias": False}, {"n_layer": 3, "n_embd": 48, "n_head": 6, "block_size": 5}):
        model = _model(**fields)
        assert sum(parameter_budget(model.config).values()) == model.num_parameters()
    hf = to_hf(_model())
    assert _model().num_parameters() == sum(p.numel() for p in hf.parameters())
    # GPT-2 small: the count of Hugging Face's `gpt2` checkpoint, 124,439,808 (not built here: too big).
    assert sum(parameter_budget(GPTConfig.gpt2()).values()) == 124_439_808


def test_initialisation_is_gpt2s_and_the_loss_at_birth_is_ln_v():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=4, n_embd=256, n_head=4, vocab_size=256))
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert abs(p.std().item() - 0.02 / math.sqrt(8)) < 5e-4, name
        elif p.ndim == 2:
            assert abs(p.std().item() - 0.02) < 1e-3, name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            assert torch.equal(p, torch.ones_like(p)), name
    # Logits of spread sigma = 0.02 * sqrt(C) cost sigma^2 / 2 above ln V on average (the lesson derives it).
    idx, targets = _ids(16, 64, 256), _ids(16, 64, 256, seed=5)
    expected = math.log(256) + 0.02**2 * 256 / 2
    assert abs(model(idx, targets)[1].item() - expected) < 0.02


def test_tying_survives_training_and_loading():
    model = _model()
    opt = model.configure_optimizers(learning_rate=1e-2)
    idx = _ids(2, 16)
    model(idx, idx)[1].backward()
    opt.step()
    assert model.lm_head.weight is model.transformer.wte.weight
    fresh = _model(seed=1)
    fresh.load_state_dict(model.state_dict())
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    torch.testing.assert_close(fresh(idx)[0], model(idx)[0])
    # configure_optimizers: every parameter in exactly one group, matrices and tables decayed.
    decay, no_decay = (group["params"] for group in opt.param_groups)
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
    assert all(p.ndim == 2 for p in decay) and all(p.ndim == 1 for p in no_decay)


def test_conv1d_stores_the_transpose_of_linear():
    from transformers.pytorch_utils import Conv1D

    model = _model()
    linear = model.transformer.h[0].attn.c_attn
    conv = Conv1D(3 * 32, 32)
    conv.load_state_dict({"weight": linear.weight.t(), "bias": linear.bias})
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(conv(x), linear(x))
    assert tuple(conv.weight.shape) == (32, 96) and tuple(linear.weight.shape) == (96, 32)


def test_from_hf_state_dict_round_trips():
    for bias in (True, False):
        model = _model(bias=bias)
        back = from_hf_state_dict(to_hf_state_dict(model), model.config)
        assert back.keys() == model.state_dict().keys()
        assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())


def test_bad_input_raises_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"idx has length T=17, but block_size is 16"):
        model(_ids(1, 17))
    with pytest.raises(TypeError, match="idx must be a tensor of token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must have idx's shape"):
        model(_ids(2, 4), _ids(2, 3))
    with pytest.raises(TypeError, match="targets must be a tensor of token ids"):
        model(_ids(2, 4), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="config must be a GPTConfig"):
        GPT({"n_layer": 2})
    for fields, error, message in (({"n_layer": 0}, ValueError, "n_layer must be at least 1, got 0"),
                                   ({"n_embd": 2.0}, TypeError, "n_embd must be an int, got 2.0"),
                                   ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
                                   ({"dropout": "0.1"}, TypeError, "dropout must be a number"),
                                   ({"bias": 1}, TypeError, "bias must be a bool, got 1")):
        with pytest.raises(error, match=message):
            GPTConfig(**fields)
    with pytest.raises(TypeError, match="model must be a GPT"):
        to_hf_state_dict(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"block_size must be in \[1, 16\], got 17"):
        crop_block_size(model, 17)


def test_challenge_checkers_pass_the_solutions_and_reject_wrong_attempts():
    check_from_hf_state_dict(from_hf_state_dict)
    check_crop_block_size(crop_block_size)

    def keeps_buffers(state_dict, config):
        return {k: v.t() if k.endswith(CONV1D_WEIGHTS) else v for k, v in state_dict.items()}

    def forgets_to_transpose(state_dict, config):
        # attn.c_proj is square, (C, C): loading it untransposed raises nothing.
        square = "attn.c_proj.weight"
        ours = from_hf_state_dict(state_dict, config)
        return {k: state_dict[k] if k.endswith(square) else v for k, v in ours.items()}

    with pytest.raises(AssertionError, match="refused the result"):
        check_from_hf_state_dict(keeps_buffers)
    with pytest.raises(AssertionError, match="other logits than the original"):
        check_from_hf_state_dict(forgets_to_transpose)

    def forgets_the_config(model, block_size):
        model.transformer.wpe.weight = torch.nn.Parameter(model.transformer.wpe.weight.detach()[:block_size])
        return model

    with pytest.raises(AssertionError, match="config.block_size is"):
        check_crop_block_size(forgets_the_config)


def test_figure_and_piece_speeds():
    assert isinstance(plot_parameter_budget(), Figure)
    speeds = piece_speeds(GPTConfig(**{**SMALL, "n_layer": 1}), batch_size=2, repeat=1)
    assert list(speeds) == ["Linear", "LayerNorm", "Embedding", "gelu", "attention"]
    assert all(set(v) == {"ours", "fused"} and min(v.values()) > 0 for v in speeds.values())
