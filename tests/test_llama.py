"""The LLaMA lesson proved against Hugging Face's ``transformers.LlamaForCausalLM`` (no download, random configs)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from torchenstein.nn.positional import positions_from_padding_mask
from torchenstein.transformers import llama as lesson
from torchenstein.transformers.llama import (
    LlamaConfig,
    LlamaForCausalLM,
    causal_lm_loss,
    gpt_style_parameter_budget,
    parameter_budget,
    parameter_count,
    plot_parameter_budget,
)
from torchenstein.transformers.multihead import kv_cache_bytes
from torchenstein.transformers.rope import permute_for_rotate_half

# Found, not imported: importing transformers takes seconds in every process that collects this file.
_HF = importlib.metadata.version("transformers") if importlib.util.find_spec("transformers") else None
pytestmark = pytest.mark.skipif(
    _HF is None or tuple(int(part) for part in _HF.split(".")[:2]) < (4, 45), reason="needs transformers 4.45 or newer"
)


def modeling_llama():
    """Hugging Face's LLaMA modules, imported when a test first needs them: the import takes seconds,
    and every test process collects this file whether or not it runs its tests."""
    from transformers.models.llama import modeling_llama as module

    return module


V, T = 48, 7


def _config(num_key_value_heads: int = 2, tie: bool = False, layers: int = 2) -> LlamaConfig:
    return LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=56, num_hidden_layers=layers,
                       num_attention_heads=4, num_key_value_heads=num_key_value_heads, rms_norm_eps=1e-5,
                       rope_theta=300.0, max_position_embeddings=64, tie_word_embeddings=tie)


def _hf_rope_theta(hf_config) -> float:
    # transformers 5 keeps the base in rope_parameters, 4.x in rope_theta: both accept rope_theta=.
    parameters = getattr(hf_config, "rope_parameters", None) or {}
    return parameters.get("rope_theta", getattr(hf_config, "rope_theta", None))


def _pair(config: LlamaConfig, impl: str = "eager", dtype: torch.dtype = torch.float32, seed: int = 0):
    """Our model with weights large enough that attention and RoPE matter, and Hugging Face's with them loaded."""
    torch.manual_seed(seed)
    ours = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.25)
    import transformers

    hf_config = transformers.LlamaConfig(**dataclasses.asdict(config), attn_implementation=impl)
    assert _hf_rope_theta(hf_config) == config.rope_theta
    theirs = transformers.LlamaForCausalLM(hf_config)
    result = theirs.load_state_dict(ours.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert (theirs.lm_head.weight is theirs.model.embed_tokens.weight) == config.tie_word_embeddings
    return ours.to(dtype), theirs.to(dtype)


def _ids(B: int = 2, length: int = T, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, length), generator=torch.Generator().manual_seed(seed))


def _float64_norms(model) -> None:
    """Make Hugging Face's RMSNorms compute in their input's dtype (they upcast float64 *down* to float32)."""
    def forward(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    for module in model.modules():
        if isinstance(module, modeling_llama().LlamaRMSNorm):
            module.forward = forward.__get__(module)


# Logits, loss and gradients


# Every K/V head count (MHA 4, GQA 2, MQA 1) with tied and untied embeddings, and with both of HF's
# attention implementations.
@pytest.mark.parametrize(("num_key_value_heads", "tie", "impl"), [
    (4, False, "eager"), (2, True, "eager"), (1, False, "eager"), (4, True, "sdpa"), (2, False, "sdpa"), (1, True, "sdpa")])
def test_logits_equal_hugging_face(num_key_value_heads, tie, impl):
    ours, theirs = _pair(_config(num_key_value_heads, tie), impl)
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), theirs(ids).logits)
        # Length 1, and explicit positions deep into a sequence (HF wants (B, T); ours takes (T,) too).
        torch.testing.assert_close(ours(ids[:, :1]), theirs(ids[:, :1]).logits)
        offset = torch.arange(T) + 50
        torch.testing.assert_close(ours(ids, position_ids=offset), theirs(ids, position_ids=offset[None]).logits)
        per_row = torch.stack([torch.arange(T) + 3, torch.arange(T) * 2])
        torch.testing.assert_close(ours(ids, position_ids=per_row), theirs(ids, position_ids=per_row).logits)


@pytest.mark.parametrize(("num_key_value_heads", "tie"), [(4, True), (2, False), (1, True)])
def test_loss_and_gradients_equal_hugging_face(num_key_value_heads, tie):
    ours, theirs = _pair(_config(num_key_value_heads, tie))
    ids = _ids()
    labels = ids.clone()
    labels[0, 4] = -100  # an ignored label counts in neither
    loss = causal_lm_loss(ours(ids), labels)
    their_loss = theirs(ids, labels=labels).loss
    torch.testing.assert_close(loss, their_loss)
    loss.backward()
    their_loss.backward()
    theirs_by_name = dict(theirs.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names == list(theirs_by_name)  # the tied matrix appears once, under the embedding's name, in both
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_by_name[name].grad, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize(("num_key_value_heads", "impl"), [(2, "eager"), (1, "sdpa")])
def test_left_padding_with_attention_mask(num_key_value_heads, impl):
    ours, theirs = _pair(_config(num_key_value_heads), impl)
    ids = _ids(3)
    mask = torch.ones(3, T, dtype=torch.long)
    mask[0, :3] = 0  # three pads on the left
    mask[2, :1] = 0
    positions = positions_from_padding_mask(mask)
    real = mask.bool()
    labels = ids.masked_fill(~real, -100)
    # A pad's logits predict the next label: the first real token's label must be ignored too, or the
    # loss reads a position that sees nothing (ours: zero attention, HF: something else).
    labels[:, 1:] = labels[:, 1:].masked_fill(~real[:, :-1], -100)
    for position_ids in (None, positions):
        logits = ours(ids, mask, position_ids)
        their_out = theirs(ids, attention_mask=mask, position_ids=position_ids, labels=labels)
        # Pads before every real token see no key: ours answers 0 there, HF something else; compare real tokens.
        torch.testing.assert_close(logits[real], their_out.logits[real])
        loss = causal_lm_loss(logits, labels)
        torch.testing.assert_close(loss, their_out.loss)
    loss.backward()
    their_out.loss.backward()
    theirs_by_name = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_by_name[name].grad, msg=lambda m, n=name: f"{n}: {m}")
    # The padded row's real tokens read exactly what the unpadded sentence reads.
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask, positions)[0, 3:], ours(ids[:1, 3:])[0])
        assert torch.equal(ours(ids, torch.ones_like(mask)), ours(ids))  # an all-ones mask is no mask


def test_float64_tight_once_hugging_face_norms_keep_float64():
    ours, theirs = _pair(_config(2, tie=True), "sdpa", torch.float64)
    ids = _ids()
    with torch.no_grad():
        ours_logits, their_logits = ours(ids), theirs(ids).logits
        # Where it differs: HF's LlamaRMSNorm computes float64 inputs in float32.
        gap = (ours_logits - their_logits).abs().max().item()
        assert 1e-10 < gap < 1e-5
        _float64_norms(theirs)
        torch.testing.assert_close(ours(ids), theirs(ids).logits, rtol=1e-13, atol=1e-13)
    labels = ids.clone()
    logits, their_logits = ours(ids), theirs(ids).logits
    loss = causal_lm_loss(logits, labels)
    assert loss.dtype == torch.float64
    # Where it differs: HF's loss upcasts the logits with .float(), so for float64 it computes in float32.
    assert theirs(ids, labels=labels).loss.dtype == torch.float32
    torch.testing.assert_close(loss.float(), theirs(ids, labels=labels).loss)
    their_loss = F.cross_entropy(their_logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, their_loss, rtol=1e-13, atol=1e-13)
    loss.backward()
    their_loss.backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-13, atol=1e-13, msg=lambda m, n=name: f"{n}: {m}")


def test_float64_eager_agrees_to_float32_precision():
    ours, theirs = _pair(_config(4), "eager", torch.float64)
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), theirs(ids).logits, rtol=1e-5, atol=1e-5)


def test_bfloat16_agrees_to_bfloat16_tolerance():
    ours, theirs = _pair(_config(2), "eager")
    ids = _ids()
    with torch.no_grad():
        exact = ours.double()(ids)
        ours, theirs = ours.bfloat16(), theirs.bfloat16()
        ours.model.rotary_emb.reset_parameters()  # float32 inv_freq again (the rope lesson's trap)
        theirs.model.rotary_emb.inv_freq = ours.model.rotary_emb.inv_freq.clone()
        ours_logits, their_logits = ours(ids), theirs(ids).logits
    assert ours_logits.dtype == torch.bfloat16
    scale = exact.abs().max().item()
    for logits in (ours_logits, their_logits):
        assert (logits.double() - exact).abs().max().item() < 0.05 * scale
    torch.testing.assert_close(ours_logits.float(), their_logits.float(), rtol=0.05, atol=0.05 * scale)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matches_hugging_face_on_cuda(dtype):
    ours, theirs = _pair(_config(2), "eager")
    ours, theirs = ours.to("cuda", dtype), theirs.to("cuda", dtype)
    ours.model.rotary_emb.reset_parameters()
    theirs.model.rotary_emb.inv_freq = ours.model.rotary_emb.inv_freq.clone()
    ids, mask = _ids().cuda(), torch.ones(2, T, dtype=torch.long, device="cuda")
    mask[0, :2] = 0
    with torch.no_grad():
        got, expected = ours(ids, mask), theirs(ids, attention_mask=mask).logits
    real = mask.bool()
    tolerance = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {"rtol": 0.05, "atol": 0.05 * expected.abs().max().item()}
    torch.testing.assert_close(got[real].float(), expected[real].float(), **tolerance)


def test_state_dict_loads_both_ways():
    config = _config(2)
    ours, theirs = _pair(config)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.1)
    fresh = LlamaForCausalLM(config)
    assert str(fresh.load_state_dict(theirs.state_dict())) == "<All keys matched successfully>"
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids), theirs(ids).logits)
    assert list(fresh.state_dict()) == list(theirs.state_dict())


def test_rms_norm_in_half_precision_upcasts_like_hugging_face():
    h = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    h[:, 5] = 300.0  # squares past float16's range
    h16 = h.half()
    theirs = modeling_llama().LlamaRMSNorm(32, eps=1e-5).half()
    ours = lesson.RMSNorm(32, eps=1e-5, dtype=torch.float16)
    with torch.no_grad():
        assert torch.equal(ours(h16), theirs(h16))
        assert ours(h16).isfinite().all() and (ours(h16) != 0).all()
    naive = h16 * torch.rsqrt(h16.pow(2).mean(-1, keepdim=True) + 1e-5)
    assert (naive == 0).all()


# Counting


@pytest.mark.parametrize("num_key_value_heads", [4, 2, 1])
@pytest.mark.parametrize("tie", [False, True])
def test_parameter_count_by_formula(num_key_value_heads, tie):
    config = _config(num_key_value_heads, tie, layers=3)
    ours = LlamaForCausalLM(config)
    counted = sum(p.numel() for p in ours.parameters())
    assert parameter_count(config) == counted
    if num_key_value_heads == 2:
        _, theirs = _pair(config)
        assert counted == sum(p.numel() for p in theirs.parameters())
    budget = parameter_budget(config)
    attention = sum(p.numel() for n, p in ours.named_parameters() if "self_attn" in n)
    mlp = sum(p.numel() for n, p in ours.named_parameters() if ".mlp." in n)
    assert (budget["attention"], budget["mlp"]) == (attention, mlp)
    assert (budget["lm_head"] == 0) == tie


def test_known_sizes_and_kv_cache_saving():
    assert parameter_count(LlamaConfig()) == 6_738_415_616  # Llama 2 7B
    assert sum(gpt_style_parameter_budget(768, 12, 50257, 1024).values()) == 124_439_808  # GPT-2 small
    llama3 = LlamaConfig(vocab_size=128256, intermediate_size=14336, num_key_value_heads=8, rope_theta=500000.0)
    assert parameter_count(llama3) == 8_030_261_248
    mha = dataclasses.replace(llama3, num_key_value_heads=32)
    saved = kv_cache_bytes(32, 32, 128, 4096) - kv_cache_bytes(32, 8, 128, 4096)
    assert kv_cache_bytes(32, 32, 128, 4096) == 4 * kv_cache_bytes(32, 8, 128, 4096) == 4 * saved // 3
    assert parameter_count(mha) - parameter_count(llama3) == 32 * 2 * 4096 * 24 * 128


def test_plot_parameter_budget():
    fig = plot_parameter_budget()
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].patches) == 3 * 4


# Traps


def test_meta_device_inv_freq_must_be_recomputed():
    config = _config(2)
    ours, _ = _pair(config)
    ids = _ids()
    with torch.device("meta"):
        lazy = LlamaForCausalLM(config)
    assert lazy.model.rotary_emb.inv_freq.is_meta
    lazy.load_state_dict(ours.state_dict(), assign=True)
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        lazy(ids)
    lazy.model.rotary_emb.to_empty(device="cpu")
    with torch.no_grad():
        lazy.model.rotary_emb.inv_freq.fill_(0.0)  # what fresh memory may well hold: no rotation at all
        assert not torch.allclose(lazy(ids), ours(ids), atol=1e-3)
        lazy.model.rotary_emb.reset_parameters()
        torch.testing.assert_close(lazy(ids), ours(ids))
    assert "model.rotary_emb.inv_freq" not in ours.state_dict()


@pytest.mark.parametrize("num_key_value_heads", [4, 2])
def test_interleaved_checkpoint_needs_the_permutation(num_key_value_heads):
    config = _config(num_key_value_heads)
    torch.manual_seed(0)
    meta_style = LlamaForCausalLM(config, rope_interleaved=True)
    with torch.no_grad():
        for p in meta_style.parameters():
            p.normal_(0.0, 0.5)
    ids = _ids()
    state = meta_style.state_dict()
    as_is = LlamaForCausalLM(config)
    as_is.load_state_dict(state)
    converted = LlamaForCausalLM(config)
    converted.load_state_dict(lesson.from_meta_state_dict(lesson.to_meta_state_dict(meta_style), config))
    with torch.no_grad():
        expected = meta_style(ids)
        assert not torch.allclose(as_is(ids), expected, atol=1e-3)
        torch.testing.assert_close(converted(ids), expected)
    # Hugging Face's model computes the same from the converted weights.
    import transformers

    theirs = transformers.LlamaForCausalLM(transformers.LlamaConfig(**dataclasses.asdict(config), attn_implementation="eager"))
    theirs.load_state_dict(converted.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, expected)


# Errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_size": 0}, "hidden_size must be a positive int, got 0"),
        ({"vocab_size": 2.0}, "vocab_size must be a positive int, got 2.0"),
        ({"hidden_size": 32, "num_attention_heads": 3}, "heads of even width"),
        ({"hidden_size": 32, "num_attention_heads": 32}, "heads of even width"),
        ({"hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 3}, "must divide num_attention_heads=4, got 3"),
        ({"rms_norm_eps": -1e-6}, "rms_norm_eps must be a finite number above 0"),
        ({"rope_theta": math.inf}, "rope_theta must be a finite number above 0"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LlamaConfig(**kwargs)


def test_config_and_forward_errors():
    with pytest.raises(TypeError, match="tie_word_embeddings must be a bool, got 1"):
        LlamaConfig(tie_word_embeddings=1)
    with pytest.raises(TypeError, match="config must be a torchenstein LlamaConfig, got dict"):
        LlamaForCausalLM({"vocab_size": 4})
    model = LlamaForCausalLM(_config(2, layers=1))
    ids = _ids()
    cases = [
        ((ids.float(),), {}, TypeError, "input_ids must be an integer tensor"),
        ((ids[0],), {}, ValueError, r"input_ids must have shape \(B, T\), got \(7,\)"),
        ((ids + V,), {}, ValueError, r"input_ids must lie in \[0, vocab_size=48\)"),
        ((ids,), {"attention_mask": torch.ones(2, 3)}, TypeError, "attention_mask must be an integer or bool tensor"),
        ((ids,), {"attention_mask": torch.ones(2, 3, dtype=torch.long)}, ValueError, r"attention_mask must have input_ids' shape \(2, 7\)"),
        ((ids,), {"position_ids": torch.arange(3)}, ValueError, r"position_ids must have shape \(B, T\) = \(2, 7\)"),
        ((ids,), {"position_ids": torch.ones(7, dtype=torch.bool)}, TypeError, "position_ids must be an integer tensor"),
    ]
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            model(*args, **kwargs)
    with pytest.raises(ValueError, match=r"logits must be \(B, T, V\) and labels \(B, T\)"):
        causal_lm_loss(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))


def test_causal_lm_loss_is_shifted_cross_entropy():
    logits = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 6, (2, 5), generator=torch.Generator().manual_seed(1))
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 6), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(causal_lm_loss(logits, labels), expected)
    assert causal_lm_loss(logits.half(), labels).dtype == torch.float32


# Challenges


def test_from_meta_state_dict_solution_passes_and_wrong_attempts_fail():
    assert lesson.check_from_meta_state_dict(lesson.from_meta_state_dict) is None

    def renamed_only(state_dict, config):
        rest = {k: v for k, v in state_dict.items()}
        out = {}
        for key, value in rest.items():
            if key in lesson.META_KEYS:
                out[lesson.META_KEYS[key]] = value
            else:
                _, i, tail = key.split(".", 2)
                out[f"model.layers.{i}.{lesson.META_LAYER_KEYS[tail]}"] = value
        if config.tie_word_embeddings:
            out["lm_head.weight"] = out["model.embed_tokens.weight"]
        return out

    def keys_as_query_heads(state_dict, config):
        out = renamed_only(state_dict, config)
        for key in out:
            if key.endswith(("q_proj.weight", "k_proj.weight")):
                out[key] = permute_for_rotate_half(out[key], config.num_attention_heads)
        return out

    for wrong in (renamed_only, keys_as_query_heads):
        with pytest.raises(AssertionError):
            lesson.check_from_meta_state_dict(wrong)
    with pytest.raises(KeyError, match="not a key of a Meta LLaMA checkpoint: 'layers.0.attention.wz.weight'"):
        lesson.from_meta_state_dict({"layers.0.attention.wz.weight": torch.ones(1)}, LlamaConfig())


def test_mha_to_gqa_solution_passes_and_wrong_attempts_fail():
    assert lesson.check_mha_to_gqa(lesson.mha_to_gqa) is None

    def first_head_of_each_group(model, num_key_value_heads):
        new = lesson.mha_to_gqa(model, num_key_value_heads)
        g = model.config.num_key_value_heads // num_key_value_heads
        d = model.config.head_dim
        with torch.no_grad():
            for old, layer in zip(model.model.layers, new.model.layers, strict=True):
                for name in ("k_proj", "v_proj"):
                    w = getattr(old.self_attn, name).weight.view(-1, d, model.config.hidden_size)
                    getattr(layer.self_attn, name).weight.copy_(w[::g].reshape(-1, model.config.hidden_size))
        return new

    def no_check(model, num_key_value_heads):
        if num_key_value_heads == 4:
            return lesson.mha_to_gqa(model, 2)
        return lesson.mha_to_gqa(model, num_key_value_heads)

    for wrong in (first_head_of_each_group, no_check):
        with pytest.raises(AssertionError):
            lesson.check_mha_to_gqa(wrong)
    model = LlamaForCausalLM(_config(4, layers=1))
    with pytest.raises(ValueError, match="must be a positive int dividing the model's 4 K/V heads, got 3"):
        lesson.mha_to_gqa(model, 3)
