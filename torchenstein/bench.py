"""Speed benchmarks: the course's models against the library models they are proved equal to.

``python -m torchenstein.bench gpt [--steps N] [--compile] [--device D]`` builds the lesson's
[`GPT`][torchenstein.transformers.gpt.GPT] and Hugging Face's ``GPT2LMHeadModel`` of the same
configuration (the capstone recipe: 4 layers, 4 heads, width 128, context 64, batch 12, 256 byte ids),
gives both the same initial weights, trains each with the same AdamW on the same random batches, and
prints the training tokens per second of each and their ratio. It then times greedy decoding of the same
model: Hugging Face's with and without its KV cache (``use_cache``), and ours without one and with the
KV cache of the generation lesson. `benchmark_gpt` takes that decoder as ``cached_decoder`` (the command
passes ``torchenstein.transformers.generation.generate``) and, when it is not given one,
reports ``None`` for it rather than a number it did not measure.

Timing is honest in the usual ways: warm-up steps first (they pay for lazy initialisation, allocator
growth and, with ``--compile``, compilation), the device synchronised around every timed step, the two
models' steps interleaved (so a machine that slows down for a while slows both), and the median step
kept. Numbers depend on the machine and its load: run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from torchenstein.lab import pick_device, synchronize, time_it
from torchenstein.training.adam import param_groups_for_weight_decay
from torchenstein.transformers.generation import generate
from torchenstein.transformers.gpt import GPT, GPTConfig, to_hf

CAPSTONE = GPTConfig(vocab_size=256, block_size=64, n_layer=4, n_head=4, n_embd=128)
"""The capstone recipe's model: 4 layers, 4 heads, width 128, context 64, one id per byte."""

BATCH_SIZE = 12
"""The capstone recipe's sequences per batch."""

IGNORE_INDEX = -100
"""The target that adds nothing to the loss, in our model and in Hugging Face's."""

Decoder = Callable[[nn.Module, Tensor, int], Tensor]


def random_batches(n: int, batch_size: int, config: GPTConfig, seed: int = 0) -> list[Tensor]:
    """``n`` batches of random token ids, each ``(batch_size, block_size)``, from a private generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, config.vocab_size, (batch_size, config.block_size), generator=g) for _ in range(n)]


def shifted_targets(idx: Tensor) -> Tensor:
    """The next-token targets of ``idx`` in our convention: ``idx`` moved left by one, the last ignored.

    Hugging Face's ``labels=idx`` shifts inside the model; these targets make our loss the same number.
    """
    ignore = torch.full_like(idx[:, :1], IGNORE_INDEX)
    return torch.cat([idx[:, 1:], ignore], dim=1)  # (B, T)


def checksum(idx: Tensor) -> int:
    """A fingerprint of a batch of ids (a weighted sum), to show two models saw the same batches."""
    weights = torch.arange(1, idx.numel() + 1, dtype=torch.int64, device=idx.device)
    return int((idx.reshape(-1).long() * weights).sum())


def greedy_decode(model: GPT, prompt: Tensor, max_new_tokens: int) -> Tensor:
    """Our GPT's greedy decoding without a cache: the whole context is run again for every new token."""
    idx = prompt
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits, _ = model(idx[:, -model.config.block_size :])  # (B, T, V)
            idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx


def hf_decoder(use_cache: bool) -> Decoder:
    """Greedy decoding with Hugging Face's ``generate``, with or without its KV cache."""

    def decode(model: nn.Module, prompt: Tensor, max_new_tokens: int) -> Tensor:
        with torch.no_grad():
            return model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=max_new_tokens,
                                  min_new_tokens=max_new_tokens, do_sample=False, use_cache=use_cache,
                                  pad_token_id=0)

    return decode


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_of: Callable[[], Tensor]) -> Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_of()
    loss.backward()
    optimizer.step()
    return loss.detach()


def benchmark_gpt(
    config: GPTConfig = CAPSTONE,
    *,
    batch_size: int = BATCH_SIZE,
    steps: int = 20,
    warmup: int = 3,
    compile: bool = False,
    device: torch.device | str | None = None,
    decode_tokens: int | None = None,
    prompt_tokens: int | None = None,
    decode_repeat: int = 3,
    cached_decoder: Decoder | None = None,
    attn_implementation: str = "sdpa",
    seed: int = 0,
) -> dict:
    """Train our GPT and Hugging Face's GPT-2 side by side, then time decoding; return the report.

    Args:
        config: the model (default: the capstone recipe).
        batch_size: sequences per training batch.
        steps: timed training steps per model, after ``warmup`` untimed ones.
        warmup: untimed steps first; every model trains on the same ``warmup + steps`` batches in order.
        compile: wrap each model in ``torch.compile`` for training.
        device: where to run (``None``: `torchenstein.lab.pick_device`).
        decode_tokens: new tokens per decoding run (``None``: fill the context after the prompt).
        prompt_tokens: the prompt's length for decoding (``None``: 8, or half the context if that is shorter).
        decode_repeat: timed decoding runs; the median is kept.
        cached_decoder: our own KV-cache decoder ``(model, prompt, max_new_tokens) -> ids``, once the
            generation lesson provides one; ``None`` reports ``None`` for it.
        attn_implementation: Hugging Face's attention (``"sdpa"``, its fastest on every device, or ``"eager"``).
        seed: seeds the weights and the batches.

    Returns:
        A dict: ``"config"``, ``"device"``, ``"batch_size"``, ``"steps"``, ``"warmup"``, ``"compile"``,
        ``"versions"``, ``"train"`` (per model ``tokens_per_s``, ``losses`` and ``batches``, the checksums
        of the batches it trained on, plus ``"ratio"`` = ours / Hugging Face's tokens per second) and
        ``"decode"`` (``tokens_per_s`` per decoder, ``None`` where not measured, and ``same_tokens``).

    Raises:
        ValueError: if a count is below its minimum or the prompt leaves no room to decode.
    """
    import transformers

    if prompt_tokens is None:
        prompt_tokens = max(1, min(8, config.block_size // 2))
    _check_counts(batch_size=(batch_size, 1), steps=(steps, 1), warmup=(warmup, 0),
                  prompt_tokens=(prompt_tokens, 1), decode_repeat=(decode_repeat, 1))
    device = pick_device(device)
    torch.manual_seed(seed)
    ours = GPT(config).to(device).train()
    scratch = GPT(config, from_scratch=True).to(device).train()
    scratch.load_state_dict(ours.state_dict())
    hf = to_hf(ours, attn_implementation).train()
    models = {"ours": ours, "hf": hf, "ours (from scratch)": scratch}

    # The same AdamW, over the same two weight-decay groups, for every model.
    optimizers = {name: torch.optim.AdamW(param_groups_for_weight_decay(m, 0.1), lr=6e-4, betas=(0.9, 0.95))
                  for name, m in models.items()}
    runners = {name: (torch.compile(m) if compile else m) for name, m in models.items()}
    losses_of: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "ours": lambda x, y: runners["ours"](x, y)[1],
        "ours (from scratch)": lambda x, y: runners["ours (from scratch)"](x, y)[1],
        # Hugging Face shifts its labels inside the model; labels=x is the same objective as our targets y.
        "hf": lambda x, y: runners["hf"](input_ids=x, labels=x, use_cache=False).loss,
    }
    batches = [b.to(device) for b in random_batches(warmup + steps, batch_size, config, seed)]
    targets = [shifted_targets(b) for b in batches]
    times: dict[str, list[float]] = {name: [] for name in models}
    losses: dict[str, list[Tensor]] = {name: [] for name in models}
    seen: dict[str, list[int]] = {name: [] for name in models}
    for i, (x, y) in enumerate(zip(batches, targets, strict=True)):
        # Alternate who goes first, so neither model always runs right after the other's allocations.
        order = list(models) if i % 2 == 0 else list(reversed(models))
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            loss = _train_step(models[name], optimizers[name], lambda name=name, x=x, y=y: losses_of[name](x, y))
            synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
            losses[name].append(loss)
            seen[name].append(checksum(x))
    tokens = batch_size * config.block_size
    train = {name: {"tokens_per_s": tokens / statistics.median(times[name]),
                    "losses": [round(float(v), 6) for v in losses[name]], "batches": seen[name]}
             for name in models}
    train["ratio"] = train["ours"]["tokens_per_s"] / train["hf"]["tokens_per_s"]

    decode = _benchmark_decoding(ours, hf, batches[0], config, decode_tokens, prompt_tokens, decode_repeat,
                                 cached_decoder, device)
    return {
        "config": vars(config).copy(),
        "device": str(device),
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "compile": compile,
        "attn_implementation": attn_implementation,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "train": train,
        "decode": decode,
    }


def _benchmark_decoding(ours: GPT, hf: nn.Module, batch: Tensor, config: GPTConfig, decode_tokens: int | None,
                        prompt_tokens: int, repeat: int, cached_decoder: Decoder | None,
                        device: torch.device) -> dict:
    if prompt_tokens >= config.block_size:
        raise ValueError(f"prompt_tokens must be below block_size={config.block_size}, got {prompt_tokens}")
    room = config.block_size - prompt_tokens
    new = room if decode_tokens is None else decode_tokens
    if not 1 <= new <= room:
        raise ValueError(f"decode_tokens must be in [1, {room}] (block_size - prompt_tokens), got {decode_tokens}")
    ours.eval()
    hf.eval()
    prompt = batch[:1, :prompt_tokens]  # (1, P)
    decoders: dict[str, tuple[nn.Module, Decoder | None]] = {
        "hf, use_cache=True": (hf, hf_decoder(True)),
        "hf, use_cache=False": (hf, hf_decoder(False)),
        "ours, no cache": (ours, greedy_decode),
        # The hook for the generation lesson's KV cache: measured when given, None (not faked) until then.
        "ours, KV cache": (ours, cached_decoder),
    }
    tokens_per_s: dict[str, float | None] = {}
    outputs = {}
    for name, (model, decoder) in decoders.items():
        if decoder is None:
            tokens_per_s[name] = None
            continue
        outputs[name] = decoder(model, prompt, new)
        seconds = time_it(lambda model=model, decoder=decoder: decoder(model, prompt, new), repeat=repeat,
                          warmup=0, device=device)
        tokens_per_s[name] = new / seconds
    reference = outputs["ours, no cache"]
    same = all(out.shape == reference.shape and torch.equal(out, reference) for out in outputs.values())
    return {"prompt_tokens": prompt_tokens, "new_tokens": new, "tokens_per_s": tokens_per_s, "same_tokens": same}


def format_report(report: dict) -> str:
    """The report as the lines the command prints."""
    c = report["config"]
    lines = [
        f"GPT benchmark on {report['device']} (torch {report['versions']['torch']}, transformers "
        f"{report['versions']['transformers']}, HF attention {report['attn_implementation']!r}"
        f"{', torch.compile' if report['compile'] else ''}): {c['n_layer']} layers, {c['n_head']} heads, "
        f"width {c['n_embd']}, context {c['block_size']}, vocab {c['vocab_size']}, batch {report['batch_size']}",
        f"training with AdamW, median of {report['steps']} steps after {report['warmup']} warm-up, "
        "every model on the same batches:",
    ]
    train = report["train"]
    for name in ("ours", "hf", "ours (from scratch)"):
        run = train[name]
        lines.append(f"  {name:22} {run['tokens_per_s']:12,.0f} tokens/s   loss {run['losses'][0]:.4f} -> "
                     f"{run['losses'][-1]:.4f}")
    lines.append(f"  ratio ours / hf: {train['ratio']:.2f}x")
    decode = report["decode"]
    lines.append(f"greedy decoding, batch 1, {decode['prompt_tokens']} prompt + {decode['new_tokens']} new "
                 f"tokens (same tokens from every decoder: {decode['same_tokens']}):")
    for name, value in decode["tokens_per_s"].items():
        shown = f"{value:12,.0f} tokens/s" if value is not None else "   not measured (the generation lesson builds it)"
        lines.append(f"  {name:22} {shown}")
    return "\n".join(lines)


BENCHMARKS = ("gpt",)
"""The benchmarks ``python -m torchenstein.bench`` knows."""


class _Parser(argparse.ArgumentParser):
    # One line on a usage error, and exit code 2, as argparse's own convention has it.
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run a benchmark from the command line; return the exit code (2 on a usage error)."""
    parser = _Parser(prog="python -m torchenstein.bench", description="Time the course's models against "
                     "the libraries they are proved equal to.")
    parser.add_argument("benchmark", choices=BENCHMARKS, help="what to benchmark")
    parser.add_argument("--steps", type=_positive_int, default=20, help="timed training steps (default 20)")
    parser.add_argument("--warmup", type=_positive_int, default=3, help="untimed warm-up steps (default 3)")
    parser.add_argument("--compile", action="store_true", help="train torch.compile'd models")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best there is)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="CPU threads for PyTorch (default: its own choice; 1 on a shared, loaded machine)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = benchmark_gpt(CAPSTONE, batch_size=BATCH_SIZE, steps=args.steps, warmup=args.warmup,
                           compile=args.compile, device=args.device, cached_decoder=generate)
    print(format_report(report))
    return 0


def _check_counts(**counts: tuple[int, int]) -> None:
    for name, (value, minimum) in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")


if __name__ == "__main__":
    sys.exit(main())
