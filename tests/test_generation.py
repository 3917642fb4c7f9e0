"""The proof that the lesson's decoding equals Hugging Face's: processors, sampling, the KV cache, generate."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure
from torch.utils.flop_counter import FlopCounterMode

from torchenstein.transformers.generation import (
    KVCache,
    check_min_p_filter,
    check_repetition_penalty,
    decode_step_flops,
    decoding_speed,
    forward_with_cache,
    generate,
    gpt_cache_bytes,
    greedy,
    min_p_filter,
    plot_decoding_cost,
    process_logits,
    repetition_penalty,
    sample,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)
from torchenstein.transformers.gpt import GPT, GPTConfig, to_hf


def hf():
    """Hugging Face's ``transformers``, imported by the first test that compares with it: importing it
    takes seconds, which every test process would pay while it merely collects this file."""
    return pytest.importorskip("transformers")


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TINY = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32)


def _logits(kind: str, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """(5, 40) logits: spread out, full of ties, or with some entries already removed."""
    g = torch.Generator().manual_seed(seed)
    if kind == "ties":
        x = torch.randint(-3, 3, (5, 40), generator=g).float()
    else:
        x = 3 * torch.randn(5, 40, generator=g)
        if kind == "with -inf":
            x[torch.rand(5, 40, generator=g) < 0.3] = -math.inf
    return x.to(dtype)


def _equal(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["randn", "ties", "with -inf"])
def test_processors_equal_hugging_faces_warpers_bitwise(dtype, kind):
    x = _logits(kind, dtype)
    for temperature in (0.3, 1.0, 2.5):
        _equal(temperature_scale(x, temperature), hf().TemperatureLogitsWarper(temperature)(None, x))
    for top_k in (1, 5, 40, 60):
        for keep in (1, 7):
            for value in (-math.inf, -50.0):
                _equal(top_k_filter(x, top_k, value, keep), hf().TopKLogitsWarper(top_k, value, keep)(None, x))
    for top_p in (0.0, 1e-8, 0.3, 0.9, 0.999, 1.0):
        for keep in (1, 3, 45):
            for value in (-math.inf, -50.0):
                _equal(top_p_filter(x, top_p, value, keep), hf().TopPLogitsWarper(top_p, value, keep)(None, x))


def test_top_p_edges_tiny_keeps_the_best_and_one_removes_only_underflow():
    x = _logits("randn", torch.float32)
    kept = top_p_filter(x, 1e-8).isfinite()
    assert kept.sum(-1).tolist() == [1] * 5 and torch.equal(kept.float().argmax(-1), x.argmax(-1))
    assert top_p_filter(x, 1.0).isfinite().all()
    far = torch.tensor([[0.0, -200.0, 1.0]])
    assert top_p_filter(far, 1.0)[0, 1] == -math.inf and torch.equal(process_logits(far, top_p=1.0), far)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_process_logits_is_hugging_faces_chain_in_its_order(dtype):
    x = _logits("randn", dtype, seed=3)
    for temperature, top_k, top_p in ((0.7, 10, 0.9), (1.5, None, 0.5), (1.0, 3, 1.0), (2.0, 0, 0.95)):
        chain = [hf().TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
        chain += [hf().TopKLogitsWarper(top_k)] if top_k else []
        chain += [hf().TopPLogitsWarper(top_p)] if top_p < 1.0 else []
        theirs = hf().LogitsProcessorList(chain)(torch.zeros(5, 1, dtype=torch.long), x.clone())
        _equal(process_logits(x, temperature=temperature, top_k=top_k, top_p=top_p), theirs)
    # The order is part of the definition: top-p before the temperature keeps another set.
    hammer = temperature_scale(top_p_filter(x, 0.9), 2.0)
    assert not torch.equal(hammer.isfinite(), process_logits(x, temperature=2.0, top_p=0.9).isfinite())


def test_where_it_differs_an_int_temperature():
    x = _logits("randn", torch.float32)
    _equal(temperature_scale(x, 2), x / 2)
    with pytest.raises(ValueError, match="temperature"):
        hf().TemperatureLogitsWarper(2)


def test_greedy_and_sampling_with_a_generator():
    x = _logits("ties", torch.float32)
    assert torch.equal(greedy(x), x.argmax(-1))
    x = _logits("with -inf", torch.float32).repeat(400, 1)  # (2000, 40)
    draws = [sample(x, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert draws[0].dtype == torch.int64 and draws[0].shape == (2000,)
    assert x.gather(1, draws[0][:, None]).isfinite().all()  # never a removed token
    probs = torch.tensor([0.5, 0.3, 0.2])
    counts = torch.bincount(sample(probs.log().expand(20_000, 3), torch.Generator().manual_seed(0)), minlength=3)
    torch.testing.assert_close(counts / 20_000, probs, atol=0.015, rtol=0)


def test_a_row_with_nothing_left_is_nan_and_multinomial_refuses_it():
    row = torch.full((1, 4), -math.inf)
    assert row.softmax(-1).isnan().all()
    with pytest.raises(RuntimeError, match="probability tensor contains"):
        sample(row)


def _model(config=TINY, dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    model = GPT(config, **kw).eval().to(dtype)
    # A wider initialisation than GPT-2's, so the logits are spread and arg-max ties are not near.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, {}), (torch.float64, {"rtol": 1e-12, "atol": 1e-12})])
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("chunks", [(16,), (1,), (5,), (5, 3), (2, 7, 4), (15,)])
@pytest.mark.parametrize("bias", [True, False])
def test_cached_logits_equal_full_recomputation_at_every_step(dtype, tol, batch_size, chunks, bias):
    config = GPTConfig(**{**vars(TINY), "bias": bias})
    model = _model(config, dtype)
    ids = torch.randint(0, 50, (batch_size, 16))
    full = model(ids)[0]
    cache = KVCache.for_model(model, batch_size)
    start = 0
    with torch.no_grad():
        # The prompt's chunks, then one token at a time to the end of the context.
        for size in chunks + (1,) * (16 - sum(chunks)):
            logits = forward_with_cache(model, ids[:, start:start + size], cache)
            torch.testing.assert_close(logits, full[:, start:start + size], **tol)
            start += size
    assert cache.length == 16


def test_the_cache_works_with_the_from_scratch_model_too():
    model = _model(from_scratch=True)
    ids = torch.randint(0, 50, (2, 10))
    cache = KVCache.for_model(model, 2)
    steps = [forward_with_cache(model, ids[:, :4], cache), forward_with_cache(model, ids[:, 4:7], cache)]
    steps += [forward_with_cache(model, ids[:, t:t + 1], cache) for t in range(7, 10)]
    torch.testing.assert_close(torch.cat(steps, 1), model(ids)[0])


def test_positions_that_restart_at_zero_give_other_logits():
    model = _model()
    ids = torch.randint(0, 50, (1, 6))
    cache = KVCache.for_model(model)
    forward_with_cache(model, ids[:, :5], cache)
    wrong = forward_with_cache(model, ids[:, 5:], cache, position_ids=torch.arange(1))
    assert not torch.allclose(wrong[:, -1], model(ids)[0][:, -1], atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("batch_size", "prompt"), [(1, 1), (3, 4), (2, 15)])
def test_greedy_generation_equals_hugging_face_token_for_token(dtype, batch_size, prompt):
    model = _model(dtype=dtype)
    hf = to_hf(model)
    idx = torch.randint(0, 50, (batch_size, prompt))
    new = 17 - prompt  # the last new token is never fed back: block_size + 1 tokens in all
    theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new, min_new_tokens=new,
                         do_sample=False, pad_token_id=0)
    assert torch.equal(generate(model, idx, new), theirs)
    assert torch.equal(generate(model, idx, new, use_cache=False), theirs)


@pytest.mark.parametrize("options", [dict(temperature=0.7, top_k=10, top_p=0.9), dict(temperature=1.3, top_k=0),
                                     dict(top_k=5, top_p=0.5, min_tokens_to_keep=2)])
def test_sampling_equals_hugging_face_with_the_same_seed(options):
    model = _model(GPTConfig(**{**vars(TINY), "n_embd": 16, "n_head": 2}))
    hf = to_hf(model)
    idx = torch.randint(0, 50, (3, 4))
    torch.manual_seed(5)
    ours = generate(model, idx, 12, do_sample=True, **options)
    torch.manual_seed(5)
    hf_options = {k: v for k, v in options.items() if k != "min_tokens_to_keep"}
    theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=12, min_new_tokens=12,
                         do_sample=True, pad_token_id=0, **{"top_k": 0, **hf_options})
    if "min_tokens_to_keep" in options:  # generate keeps 1; the warpers themselves take the argument
        return
    assert torch.equal(ours, theirs)
    g1, g2 = (torch.Generator().manual_seed(9) for _ in range(2))
    assert torch.equal(generate(model, idx, 12, do_sample=True, generator=g1, **options),
                       generate(model, idx, 12, do_sample=True, generator=g2, use_cache=False, **options))


def test_generation_past_block_size_names_the_argument():
    model = _model()
    with pytest.raises(ValueError, match=r"max_new_tokens=14 after a prompt of T=4 tokens needs 17 positions "
                                         r".*, but block_size is 16: ask for at most 13 new tokens"):
        generate(model, torch.zeros(1, 4, dtype=torch.long), 14)
    assert generate(model, torch.zeros(1, 16, dtype=torch.long), 1).shape == (1, 17)
    with pytest.raises(ValueError, match="idx has T=17 tokens, but block_size is 16"):
        generate(model, torch.zeros(1, 17, dtype=torch.long), 1)
    cache = KVCache.for_model(model, 1, max_length=4)
    forward_with_cache(model, torch.zeros(1, 3, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="idx adds T=2 tokens to a cache holding 3, but its max_length is 4"):
        forward_with_cache(model, torch.zeros(1, 2, dtype=torch.long), cache)


def test_where_it_differs_hugging_face_only_warns_then_fails_inside():
    model = _model()
    idx = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(IndexError, match="index out of range"):
        to_hf(model).generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=14, do_sample=False,
                              pad_token_id=0)


def test_bad_arguments_raise_naming_them():
    x = torch.randn(2, 5)
    cases = [
        (lambda: top_k_filter(x, 0), ValueError, "top_k must be at least 1, got 0"),
        (lambda: top_k_filter(x, 2.0), TypeError, "top_k must be an int"),
        (lambda: top_p_filter(x, 1.5), ValueError, r"top_p must be in \[0, 1\], got 1.5"),
        (lambda: top_p_filter(x, 0.5, min_tokens_to_keep=0), ValueError, "min_tokens_to_keep must be at least 1"),
        (lambda: temperature_scale(x, 0.0), ValueError, "temperature must be positive, got 0.0"),
        (lambda: temperature_scale(x, "hot"), TypeError, "temperature must be a number"),
        (lambda: greedy(torch.randn(5)), ValueError, r"logits must have shape \(B, V\)"),
        (lambda: greedy(torch.ones(2, 3, dtype=torch.long)), TypeError, "logits must be a floating-point tensor"),
        (lambda: KVCache(TINY, max_length=17), ValueError, "max_length must be at most block_size=16, got 17"),
        (lambda: KVCache(vars(TINY)), TypeError, "config must be a GPTConfig"),
        (lambda: generate(_model(), torch.zeros(1, 2), 3), TypeError, "idx must be a tensor of token ids"),
        (lambda: generate(_model(), torch.zeros(1, 2, dtype=torch.long), 0), ValueError, "max_new_tokens must be"),
        (lambda: forward_with_cache(_model(), torch.zeros(2, 1, dtype=torch.long), KVCache(TINY)), ValueError,
         "idx has batch size 2, but the cache was made for batch_size=1"),
        (lambda: forward_with_cache(_model(), torch.zeros(1, 2, dtype=torch.long), KVCache(TINY),
                                    position_ids=torch.arange(3)), ValueError,
         r"position_ids must be a tensor of shape \(2,\), one position per new token, got \(3,\)"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize(("config", "batch_size", "max_length"), [(TINY, 1, None), (TINY, 3, 7), (GPTConfig(), 12, None)])
def test_cache_memory_by_formula_equals_the_tensors(dtype, config, batch_size, max_length):
    cache = KVCache(config, batch_size, max_length=max_length, dtype=dtype)
    assert cache.nbytes() == gpt_cache_bytes(config, batch_size, max_length, dtype)
    assert all(k.dtype == v.dtype == dtype for k, v in cache.layers)
    model = _model(dtype=torch.float64)
    assert KVCache.for_model(model).layers[0][0].dtype == torch.float64


@pytest.mark.parametrize("use_cache", [False, True])
@pytest.mark.parametrize("context_len", [1, 6, 16])
def test_decode_step_flops_equal_pytorchs_flop_counter(use_cache, context_len):
    # The from-scratch model's attention is plain matrix products, which FlopCounterMode counts.
    model = _model(from_scratch=True)
    ids = torch.randint(0, 50, (2, context_len))
    cache = KVCache.for_model(model, 2)
    with torch.no_grad():
        if use_cache and context_len > 1:
            forward_with_cache(model, ids[:, :-1], cache)
        step = (lambda: forward_with_cache(model, ids[:, -1:], cache)) if use_cache else (lambda: model(ids))
        with FlopCounterMode(display=False) as counter:
            step()
    assert counter.get_total_flops() == decode_step_flops(TINY, context_len, use_cache, batch_size=2)


def test_decoding_speed_reports_both_decoders():
    speed = decoding_speed(_model(), prompt_tokens=4, max_new_tokens=3, batch_size=2, repeat=1)
    assert list(speed) == ["no cache", "KV cache", "speed-up"] and all(v > 0 for v in speed.values())
    assert speed["speed-up"] == speed["KV cache"] / speed["no cache"]


def test_plot_decoding_cost():
    fig = plot_decoding_cost(TINY)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].lines[0].get_xdata()) == 16


def test_challenge_solutions_equal_hugging_face():
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        logits = (3 * torch.randn(4, 30, generator=g)).to(dtype)
        ids = torch.randint(0, 30, (4, 9), generator=g)
        for penalty in (1.3, 0.7):
            _equal(repetition_penalty(ids, logits, penalty), hf().RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone()))
        for min_p in (0.0, 0.05, 0.5, 1.0):
            for keep in (1, 4):
                _equal(min_p_filter(logits, min_p, -math.inf, keep), hf().MinPLogitsWarper(min_p, -math.inf, keep)(None, logits))


def test_checkers_pass_the_solutions_and_reject_wrong_attempts():
    check_repetition_penalty(repetition_penalty)
    check_min_p_filter(min_p_filter)

    def per_occurrence(input_ids, logits, penalty):  # penalises a token once for every time it occurs
        out = logits.clone()
        for b, row in enumerate(input_ids.tolist()):
            for i in row:
                out[b, i] = out[b, i] * penalty if out[b, i] < 0 else out[b, i] / penalty
        return out

    with pytest.raises(AssertionError, match="once per distinct token"):
        check_repetition_penalty(per_occurrence)

    def absolute_min_p(logits, min_p, filter_value=-math.inf, min_tokens_to_keep=1):  # forgets the scaling
        return logits.masked_fill(logits.softmax(-1) < min_p, filter_value)

    with pytest.raises(AssertionError, match="min_p="):
        check_min_p_filter(absolute_min_p)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cache_on_cuda_equals_full_recomputation_and_the_cpu():
    model = _model().cuda()
    ids = torch.randint(0, 50, (2, 16), device="cuda")
    cache = KVCache.for_model(model, 2)
    with torch.no_grad():
        steps = [forward_with_cache(model, ids[:, :5], cache), forward_with_cache(model, ids[:, 5:8], cache)]
        steps += [forward_with_cache(model, ids[:, t:t + 1], cache) for t in range(8, 16)]
        torch.testing.assert_close(torch.cat(steps, 1), model(ids)[0], rtol=1e-4, atol=1e-4)
    assert cache.layers[0][0].device.type == "cuda"
    assert torch.equal(generate(model, ids[:, :4], 12).cpu(), generate(model, ids[:, :4], 12, use_cache=False).cpu())
