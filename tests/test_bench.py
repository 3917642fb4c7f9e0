"""The benchmark's report: its structure, the same batches for every model, and its command line (no timings)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from torchenstein import bench
from torchenstein.transformers.gpt import GPTConfig

# Found, not imported: importing transformers takes seconds in every process that collects this file.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="transformers is missing")

TINY = GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16)
MODELS = ("ours", "hf", "ours (from scratch)")


@pytest.fixture(scope="module")
def report():
    return bench.benchmark_gpt(TINY, batch_size=2, steps=2, warmup=1, device="cpu", decode_tokens=3,
                               prompt_tokens=2, decode_repeat=1)


def test_report_structure(report):
    assert set(report) == {"config", "device", "batch_size", "steps", "warmup", "compile", "attn_implementation",
                           "versions", "train", "decode"}
    assert report["config"]["n_embd"] == 16 and report["device"] == "cpu" and report["steps"] == 2
    assert set(report["train"]) == {*MODELS, "ratio"}
    for name in MODELS:
        run = report["train"][name]
        assert run["tokens_per_s"] > 0 and len(run["losses"]) == len(run["batches"]) == 3
    assert report["train"]["ratio"] == report["train"]["ours"]["tokens_per_s"] / report["train"]["hf"]["tokens_per_s"]
    decode = report["decode"]
    assert decode["new_tokens"] == 3 and decode["prompt_tokens"] == 2 and decode["same_tokens"] is True
    assert list(decode["tokens_per_s"]) == ["hf, use_cache=True", "hf, use_cache=False", "ours, no cache",
                                            "ours, KV cache"]
    # Our KV cache arrives with the generation lesson: until then the report says None, not a number.
    assert decode["tokens_per_s"]["ours, KV cache"] is None
    assert all(v > 0 for k, v in decode["tokens_per_s"].items() if k != "ours, KV cache")
    lines = bench.format_report(report).splitlines()
    assert lines[0].startswith("GPT benchmark on cpu") and any("ratio ours / hf" in line for line in lines)


def test_every_model_trained_on_the_same_batches_to_the_same_losses(report):
    train = report["train"]
    expected = [bench.checksum(b) for b in bench.random_batches(3, 2, TINY)]
    assert all(train[name]["batches"] == expected for name in MODELS)
    assert len(set(expected)) == 3  # three different batches, not one seen three times
    for name in ("hf", "ours (from scratch)"):
        assert train[name]["losses"] == pytest.approx(train["ours"]["losses"], abs=1e-4)


def test_the_kv_cache_hook_is_timed_when_given():
    decode = bench._benchmark_decoding(*_eval_pair(), bench.random_batches(1, 1, TINY)[0], TINY, 2, 2, 1,
                                       bench.greedy_decode, torch.device("cpu"))
    assert decode["tokens_per_s"]["ours, KV cache"] > 0 and decode["same_tokens"]


def test_the_generation_lessons_cache_decodes_the_same_tokens():
    from torchenstein.transformers.generation import generate

    decode = bench._benchmark_decoding(*_eval_pair(), bench.random_batches(1, 1, TINY)[0], TINY, 3, 2, 1,
                                       generate, torch.device("cpu"))
    assert decode["tokens_per_s"]["ours, KV cache"] > 0 and decode["same_tokens"] is True


def _eval_pair():
    from torchenstein.transformers.gpt import GPT, to_hf

    torch.manual_seed(0)
    model = GPT(TINY)
    return model, to_hf(model, "sdpa")


def test_shifted_targets_match_hugging_faces_label_shift():
    idx = torch.tensor([[5, 6, 7]])
    assert bench.shifted_targets(idx).tolist() == [[6, 7, -100]]


@pytest.mark.parametrize(("argv", "message"), [
    (["foo"], "argument benchmark: invalid choice: 'foo'"),
    (["gpt", "--steps", "0"], "argument --steps: must be a positive int, got '0'"),
    (["gpt", "--steps", "many"], "argument --steps: must be a positive int, got 'many'"),
    ([], "the following arguments are required: benchmark"),
])
def test_command_line_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m torchenstein.bench: error: ") and message in err


def test_command_line_runs_and_prints_the_report(monkeypatch, capsys):
    monkeypatch.setattr(bench, "CAPSTONE", TINY)
    monkeypatch.setattr(bench, "BATCH_SIZE", 2)
    assert bench.main(["gpt", "--steps", "1", "--warmup", "1", "--device", "cpu", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "ratio ours / hf" in out and "(same tokens from every decoder: True)" in out
    # The command passes the generation lesson's cached decoder, so its speed is measured, not "not measured".
    cached = next(line for line in out.splitlines() if "ours, KV cache" in line)
    assert "tokens/s" in cached and "not measured" not in cached


def test_bad_counts_raise():
    with pytest.raises(ValueError, match="steps must be an int of at least 1, got 0"):
        bench.benchmark_gpt(TINY, steps=0)
    with pytest.raises(ValueError, match=r"decode_tokens must be in \[1, 6\]"):
        bench.benchmark_gpt(TINY, batch_size=1, steps=1, warmup=0, device="cpu", decode_tokens=7, prompt_tokens=2)
