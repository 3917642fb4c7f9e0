"""The memory lesson, proved: activation formulas equal to the saved-tensor ledger, checkpointing equal to the
plain model, optimiser state equal to torch's own optimisers, and the challenges' checkers."""

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from torchenstein.advanced.hooks import SavedTensorLedger
from torchenstein.advanced.memory import (
    MIB,
    activation_bytes,
    block_activation_bytes,
    bytes_per_parameter,
    check_evaluate,
    check_max_batch_size,
    checkpointed,
    cuda_training_step_memory,
    evaluate,
    format_memory_table,
    matmul_flops,
    max_batch_size,
    plot_memory_by_batch_size,
    saved_activation_bytes,
    time_checkpointing,
    training_memory,
)
from torchenstein.transformers.gpt import GPT, GPTConfig, parameter_budget


def _model(seed=0, dtype=torch.float32, **fields):
    torch.manual_seed(seed)
    fields = {"n_layer": 2, "n_embd": 16, "n_head": 2, "block_size": 8, "vocab_size": 32, **fields}
    return GPT(GPTConfig(**fields)).to(dtype)


def _ids(config, B, T, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (2, B, T), generator=generator)


# The activation formula against the ledger, byte for byte

SHAPES = [  # (B, T, n_layer, n_embd, n_head, bias)
    (1, 1, 1, 8, 1, True),
    (3, 8, 2, 16, 2, True),
    (2, 5, 3, 16, 4, False),
    (5, 7, 1, 24, 3, True),
    (4, 8, 4, 8, 2, False),
]


@pytest.mark.parametrize("B, T, n_layer, n_embd, n_head, bias", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_targets", [True, False])
def test_activation_formula_equals_ledger(B, T, n_layer, n_embd, n_head, bias, dtype, with_targets):
    model = _model(dtype=dtype, n_layer=n_layer, n_embd=n_embd, n_head=n_head, bias=bias)
    idx, targets = _ids(model.config, B, T)
    targets = targets if with_targets else None
    formula = activation_bytes(model.config, B, T, dtype=dtype, targets=with_targets)
    assert saved_activation_bytes(model, idx, targets) == sum(formula.values())


@pytest.mark.parametrize("B, T, n_layer, n_embd, n_head, bias", SHAPES[1:4])
@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16])
def test_autocast_formula_equals_ledger(B, T, n_layer, n_embd, n_head, bias, autocast_dtype):
    model = _model(n_layer=n_layer, n_embd=n_embd, n_head=n_head, bias=bias)
    idx, targets = _ids(model.config, B, T)
    formula = activation_bytes(model.config, B, T, autocast_dtype=autocast_dtype)
    assert saved_activation_bytes(model, idx, targets, autocast_dtype=autocast_dtype) == sum(formula.values())


@pytest.mark.parametrize("B, T, n_layer, n_embd, n_head, bias", SHAPES)
@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_checkpointed_formula_equals_ledger(B, T, n_layer, n_embd, n_head, bias, autocast_dtype):
    model = _model(n_layer=n_layer, n_embd=n_embd, n_head=n_head, bias=bias)
    idx, targets = _ids(model.config, B, T)
    with checkpointed(model.transformer.h):
        measured = saved_activation_bytes(model, idx, targets, autocast_dtype=autocast_dtype)
    formula = activation_bytes(model.config, B, T, autocast_dtype=autocast_dtype, checkpointing=True)
    assert measured == sum(formula.values())
    # Only the block inputs are left of the blocks: (B, T, C) float32 each.
    assert formula["blocks"] == n_layer * B * T * n_embd * 4


def test_activation_formula_is_linear_in_batch_and_blocks():
    config = GPTConfig(n_layer=3, n_embd=16, n_head=2, block_size=8, vocab_size=32)
    one = block_activation_bytes(config, 1, 8)
    assert block_activation_bytes(config, 5, 8) == {k: 5 * v for k, v in one.items()}
    C, B, T, H = 16, 5, 8, 2
    assert sum(block_activation_bytes(config, B, T).values()) == 4 * (16 * B * T * C + 4 * B * T + B * H * T)
    assert activation_bytes(config, B, T)["blocks"] == 3 * sum(block_activation_bytes(config, B, T).values())


def test_ledger_sees_the_fused_attention_sharing_memory():
    """The two sharings the formula relies on: q, k, v in one block of memory, and c_proj's input being
    the attention's output (no copy from the transpose back)."""
    model = _model(n_layer=1)
    idx, targets = _ids(model.config, 3, 8)
    with SavedTensorLedger() as ledger:
        model(idx, targets)
    heads = [r for r in ledger.records if r.shape == (3, 2, 8, 8)]  # (B, H, T, d_head): q, k, v, out
    assert len(heads) == 4 and len({r.storage for r in heads}) == 2
    assert ledger.total_bytes > ledger.distinct_bytes()


# Checkpointing


@pytest.mark.parametrize("B, T, n_layer", [(1, 8, 1), (2, 5, 3), (3, 8, 2)])
def test_checkpointed_gradients_equal_plain_float64(B, T, n_layer):
    model = _model(dtype=torch.float64, n_layer=n_layer)
    idx, targets = _ids(model.config, B, T)

    def run(blocks):
        model.zero_grad(set_to_none=True)
        with checkpointed(blocks):
            logits, loss = model(idx, targets)
        loss.backward()
        return logits.detach(), loss.detach(), [p.grad.clone() for p in model.parameters()]

    plain, ckpt = run([]), run(model.transformer.h)
    torch.testing.assert_close(ckpt[0], plain[0], rtol=0, atol=0)
    torch.testing.assert_close(ckpt[1], plain[1], rtol=0, atol=0)
    for a, b in zip(ckpt[2], plain[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_checkpointed_restores_the_modules_and_keeps_names():
    model = _model()
    keys = list(model.state_dict())
    idx, targets = _ids(model.config, 2, 8)
    with pytest.raises(RuntimeError, match="boom"), checkpointed(model.transformer.h):
        assert all("forward" in block.__dict__ for block in model.transformer.h)
        assert list(model.state_dict()) == keys
        raise RuntimeError("boom")
    assert not any("forward" in block.__dict__ for block in model.transformer.h)
    # A backward pass after the block has ended still recomputes correctly.
    with checkpointed(model.transformer.h):
        loss = model(idx, targets)[1]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_checkpointed_counts_one_extra_forward_and_block_hooks_fire_once():
    model = _model(n_layer=3)
    idx, targets = _ids(model.config, 2, 8)
    calls = {"block": 0, "attn": 0}
    handles = []
    for block in model.transformer.h:
        handles.append(block.register_forward_pre_hook(lambda m, a: calls.__setitem__("block", calls["block"] + 1)))
        handles.append(block.attn.register_forward_pre_hook(lambda m, a: calls.__setitem__("attn", calls["attn"] + 1)))
    with checkpointed(model.transformer.h):
        loss = model(idx, targets)[1]
    assert calls == {"block": 3, "attn": 3}
    loss.backward()
    assert calls == {"block": 3, "attn": 6}
    for handle in handles:
        handle.remove()


@pytest.mark.parametrize("n_layer, n_embd", [(1, 8), (3, 16)])
def test_matmul_flops_plain_is_three_forwards_and_checkpointing_recomputes_all_but_the_last_product(n_layer, n_embd):
    model = _model(n_layer=n_layer, n_embd=n_embd)
    B, T, C, V = 2, 8, n_embd, model.config.vocab_size
    idx, targets = _ids(model.config, B, T)
    plain = matmul_flops(model, idx, targets)
    ckpt = matmul_flops(model, idx, targets, checkpointing=True)
    block = 2 * B * T * (3 * C * C + C * C + 4 * C * C + 4 * C * C)
    assert plain["forward"] == n_layer * block + 2 * B * T * C * V
    assert plain["forward + backward"] == 3 * plain["forward"]
    assert ckpt["forward"] == plain["forward"]
    # Early stopping: the recomputation ends once mlp.c_proj has saved its input, before its product runs.
    last_product = 2 * B * T * 4 * C * C
    assert ckpt["forward + backward"] - plain["forward + backward"] == n_layer * (block - last_product)


def test_checkpointed_validates_its_arguments():
    with pytest.raises(TypeError, match="single module"):
        with checkpointed(nn.Linear(2, 2)):
            pass
    with pytest.raises(TypeError, match="got an element of type int"):
        with checkpointed([1]):
            pass
    with pytest.raises(TypeError, match="preserve_rng_state must be a bool"):
        with checkpointed([], preserve_rng_state=1):
            pass
    layer = nn.Linear(2, 2)
    with checkpointed([layer]), pytest.raises(ValueError, match="checkpointed twice"):
        with checkpointed([layer]):
            pass
    assert "forward" not in layer.__dict__


def test_dropout_needs_the_rng_state_preserved():
    model = _model(dtype=torch.float64, dropout=0.3)
    idx, targets = _ids(model.config, 2, 8)

    def grads(blocks, **options):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        with checkpointed(blocks, **options):
            loss = model(idx, targets)[1]
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    plain = grads([])
    torch.testing.assert_close(grads(model.transformer.h), plain, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(grads(model.transformer.h, preserve_rng_state=False), plain)


# Parameters, gradients, optimiser state


def test_bytes_per_parameter_and_the_sixteen_bytes():
    assert bytes_per_parameter("adamw", "bfloat16-master") == {
        "parameters": 2, "gradients": 2, "master weights": 4, "optimizer state": 8}
    for precision in ("float32", "bfloat16-autocast", "bfloat16-master"):
        assert sum(bytes_per_parameter("adamw", precision).values()) == 16
        assert sum(bytes_per_parameter("sgd-momentum", precision).values()) == 12
        assert sum(bytes_per_parameter("sgd", precision).values()) == 8
    with pytest.raises(ValueError, match="precision must be one of"):
        bytes_per_parameter("adamw", "float16")


@pytest.mark.parametrize("optimizer, make, keys", [
    ("adamw", lambda m: m.configure_optimizers(), ("exp_avg", "exp_avg_sq")),
    ("sgd-momentum", lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), ("momentum_buffer",)),
    ("sgd", lambda m: torch.optim.SGD(m.parameters(), lr=0.1), ()),
])
def test_optimizer_state_equals_torch_optimizers(optimizer, make, keys):
    model = _model(n_layer=2)
    idx, targets = _ids(model.config, 2, 8)
    opt = make(model)
    model(idx, targets)[1].backward()
    opt.step()
    n = sum(parameter_budget(model.config).values())
    assert n == model.num_parameters()
    state = sum(s[k].numel() * s[k].element_size() for s in opt.state.values() for k in keys if k in s)
    memory = training_memory(model.config, 2, optimizer=optimizer)
    assert state == memory["optimizer state"]
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert (params, grads) == (memory["parameters"], memory["gradients"])


def test_training_memory_components():
    config = GPTConfig()
    plain = training_memory(config, 12)
    ckpt = training_memory(config, 12, checkpointing=True)
    amp = training_memory(config, 12, precision="bfloat16-autocast")
    assert plain["recomputed block"] == 0
    assert ckpt["recomputed block"] == sum(block_activation_bytes(config, 12).values())
    assert ckpt["activations"] < plain["activations"] / 8
    assert amp["activations"] == sum(activation_bytes(config, 12, autocast_dtype=torch.bfloat16).values())
    with pytest.raises(ValueError, match="'bfloat16-master'"):
        training_memory(config, 12, precision="bfloat16-master")
    table = format_memory_table({"a": plain, "b": ckpt})
    assert table.splitlines()[-1].split() == ["total", f"{sum(plain.values()) / MIB:.2f}",
                                              f"{sum(ckpt.values()) / MIB:.2f}"]


def test_max_batch_size_matches_a_brute_force_search():
    config = GPTConfig(n_layer=2, n_embd=32, n_head=2, block_size=16)
    for budget in (0, 10**6, 5 * 10**6, 37 * 10**6):
        for checkpointing in (False, True):
            b = 0
            while sum(training_memory(config, b + 1, checkpointing=checkpointing).values()) <= budget:
                b += 1
            assert max_batch_size(config, budget, checkpointing=checkpointing) == b


# Bad input


@pytest.mark.parametrize("call, error, message", [
    (lambda: activation_bytes(GPTConfig(dropout=0.1), 1), ValueError, "config.dropout=0.1"),
    (lambda: activation_bytes(GPTConfig(), 0), ValueError, "batch_size must be a positive int, got 0"),
    (lambda: activation_bytes(GPTConfig(), 2, 65), ValueError, "seq_len must be at most block_size=64, got 65"),
    (lambda: activation_bytes(GPTConfig(), 2, dtype=torch.float16), ValueError, "dtype must be torch.float32"),
    (lambda: activation_bytes(GPTConfig(), 2, dtype=torch.float64, autocast_dtype=torch.bfloat16), ValueError,
     "needs a float32 model"),
    (lambda: activation_bytes(GPTConfig(), 2, autocast_dtype=torch.float64), ValueError, "autocast_dtype must be"),
    (lambda: activation_bytes("gpt", 2), TypeError, "config must be a GPTConfig, got str"),
    (lambda: activation_bytes(GPTConfig(), 2, checkpointing="yes"), TypeError, "checkpointing must be a bool"),
    (lambda: training_memory(GPTConfig(), 2, optimizer="adam"), ValueError, "optimizer must be one of"),
    (lambda: saved_activation_bytes("model", torch.zeros(1, 1)), TypeError, "model must be an nn.Module, got str"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# Traps


def test_kept_losses_hold_their_graphs_and_floats_do_not():
    model = _model()
    idx, targets = _ids(model.config, 2, 8)

    def live(batches, keep):
        kept = []
        with SavedTensorLedger() as ledger:
            for _ in range(batches):
                kept.append(keep(model(idx, targets)[1]))
        return ledger.live_bytes()

    one = live(1, lambda loss: loss)
    assert one > 0
    assert [live(n, lambda loss: loss) for n in (2, 4)] == [2 * one, 4 * one]
    assert live(4, lambda loss: loss.item()) == 0
    with torch.no_grad():
        assert live(4, lambda loss: loss) == 0


def test_eval_mode_still_saves_everything():
    model = _model().eval()
    idx, targets = _ids(model.config, 3, 8)
    assert saved_activation_bytes(model, idx, targets) == sum(activation_bytes(model.config, 3, 8).values())


# Figure, benchmark, challenges


def test_plot_and_benchmark_run():
    fig = plot_memory_by_batch_size(batch_sizes=[1, 4, 16])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    times = time_checkpointing(GPTConfig(n_layer=1, n_embd=8, n_head=2, block_size=4), 1, repeat=1)
    assert set(times) == {"plain", "checkpointed"} and all(t > 0 for t in times.values())


def test_challenge_checkers_accept_the_solutions():
    check_max_batch_size(max_batch_size)
    check_evaluate(evaluate)


def test_check_max_batch_size_rejects_wrong_attempts():
    def off_by_one(config, budget, seq_len=None, **options):
        return max_batch_size(config, budget, seq_len, **options) + 1

    def ignores_checkpointing(config, budget, seq_len=None, *, checkpointing=False, **options):
        return max_batch_size(config, budget, seq_len, **options)

    for wrong in (off_by_one, ignores_checkpointing):
        with pytest.raises(AssertionError, match="expected batch size"):
            check_max_batch_size(wrong)


def test_check_evaluate_rejects_wrong_attempts():
    def keeps_graphs(model, batches):
        model.eval()
        losses = [model(idx, targets)[1].item() for idx, targets in batches]
        model.train()
        return sum(losses) / len(losses)

    def dropout_on(model, batches):
        with torch.no_grad():
            losses = [model(idx, targets)[1].item() for idx, targets in batches]
        return sum(losses) / len(losses)

    def tensor_result(model, batches):
        was = model.training
        model.eval()
        with torch.no_grad():
            losses = [model(idx, targets)[1] for idx, targets in batches]
        model.train(was)
        return torch.stack(losses).mean()

    def forgets_the_mode(model, batches):
        model.eval()
        with torch.no_grad():
            losses = [model(idx, targets)[1].item() for idx, targets in batches]
        return sum(losses) / len(losses)

    for wrong, message in ((keeps_graphs, "torch.no_grad"), (dropout_on, "model.eval"),
                           (tensor_result, "Python float"), (forgets_the_mode, "put back")):
        with pytest.raises(AssertionError, match=message):
            check_evaluate(wrong)


# On a GPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: compares torch.cuda.max_memory_allocated "
                                                          "with the formula")
@pytest.mark.parametrize("checkpointing", [False, True])
def test_cuda_step_memory_matches_the_formula(checkpointing):
    config = GPTConfig()
    B, T = 12, 64
    measured = cuda_training_step_memory(config, B, T, checkpointing=checkpointing)
    memory = training_memory(config, B, T, checkpointing=checkpointing)
    logits = B * T * config.vocab_size * 4
    after_forward = memory["activations"] + logits
    # The growth over the forward pass: what autograd keeps plus the logits, to within the allocator's
    # 512-byte rounding and the GPU attention kernel's extras (a padded log-sum-exp, random-number seeds).
    assert abs(measured["after forward"] - after_forward) <= 0.02 * after_forward, (measured, after_forward)
    # The peak holds at least the forward's growth and, at the end of backward, every gradient; it holds no
    # more than every pile at once (the optimiser state and the weights are already in "before", so they
    # count as slack), a few (B, T, V) tensors of the loss's backward, and cuBLAS's workspace.
    low = 0.98 * max(after_forward, memory["gradients"])
    high = sum(memory.values()) + 4 * logits + 32 * MIB
    assert low <= measured["peak"] <= high, (measured, low, high)


def test_cuda_measurement_refuses_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        cuda_training_step_memory()
