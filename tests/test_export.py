"""Proofs for the export lesson: the exported GPT equals the eager one, round-trips a file, and refuses
what it must.

Exporting costs a second or so, so each program is made once per module and shared by the tests.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchenstein.advanced.export import (
    CondGate,
    HammerGate,
    check_export_any_batch,
    check_export_with_loss,
    export_gpt,
    op_counts,
    plot_op_counts,
)
from torchenstein.transformers.gpt import GPT, GPTConfig

CONFIG = GPTConfig(n_layer=2, n_embd=32, n_head=4, block_size=16, vocab_size=37)


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    return model, export_gpt(model, seq_len=5)


@pytest.fixture(scope="module")
def decomposed(exported):
    return exported[1].run_decompositions()


def test_program_is_bitwise_equal_to_eager_at_every_length(exported):
    # The exported graph calls the same ATen ops, in the same order, on the same kernels as eager
    # PyTorch: float32 logits agree with tolerance zero at every length of the range, not only the sample's.
    model, program = exported
    run = program.module()
    g = torch.Generator().manual_seed(1)
    for T in range(2, CONFIG.block_size + 1):
        idx = torch.randint(0, CONFIG.vocab_size, (2, T), generator=g)
        logits, loss = run(idx)
        assert loss is None
        torch.testing.assert_close(logits, model(idx)[0], rtol=0, atol=0)


def test_signature_and_range_constraints(exported):
    model, program = exported
    signature = program.graph_signature
    assert len(signature.user_inputs) == 1
    assert set(signature.parameters) == set(model.state_dict())
    assert list(signature.buffers) == []
    assert [(int(r.lower), int(r.upper)) for r in program.range_constraints.values()] == [(2, CONFIG.block_size)]
    # The program's weights are the model's, value for value.
    for name, value in model.state_dict().items():
        assert torch.equal(program.state_dict[name], value), name


def test_graph_holds_the_models_ops(exported):
    counts = op_counts(exported[1])
    # aten.embedding is core ATen, never decomposed, in every release.
    assert counts["aten.embedding"] == 2
    if torch.__version__ >= "2.6":  # training IR: the ops as written (2.4-2.5 returned decomposed ATen)
        assert counts["aten.linear"] == 4 * CONFIG.n_layer + 1
        assert counts["aten.layer_norm"] == 2 * CONFIG.n_layer + 1
        assert counts["aten.scaled_dot_product_attention"] == CONFIG.n_layer


def test_save_and_load_round_trip(exported, tmp_path):
    model, program = exported
    path = tmp_path / "gpt.pt2"
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    for T in (2, 9, CONFIG.block_size):
        idx = torch.randint(0, CONFIG.vocab_size, (2, T))
        torch.testing.assert_close(loaded(idx)[0], model(idx)[0], rtol=0, atol=0)


def test_out_of_range_and_other_batch_are_refused(exported):
    run = exported[1].module()
    # torch 2.13 raises AssertionError ("Guard failed"), older releases RuntimeError.
    with pytest.raises((AssertionError, RuntimeError), match=str(CONFIG.block_size)):
        run(torch.zeros(2, CONFIG.block_size + 1, dtype=torch.long))
    with pytest.raises((AssertionError, RuntimeError)):
        run(torch.zeros(3, 4, dtype=torch.long))  # the batch was not declared dynamic


def test_core_aten_program_equals_eager_within_float32_tolerance(exported, decomposed):
    # After run_decompositions linear is view + addmm + view and attention is bmm + softmax: other kernels,
    # other rounding. Equal within assert_close's float32 defaults (rtol 1.3e-6, atol 1e-5), not bitwise.
    model, _ = exported
    run = decomposed.module()
    for T in (2, 7, CONFIG.block_size):
        idx = torch.randint(0, CONFIG.vocab_size, (2, T))
        torch.testing.assert_close(run(idx)[0], model(idx)[0])
    assert "aten.linear" not in op_counts(decomposed)
    assert sum(op_counts(decomposed).values()) > sum(op_counts(exported[1]).values())


def test_plot_draws_both_graphs(exported, decomposed):
    fig = plot_op_counts(exported[1], decomposed)
    assert len(fig.axes) == 2
    assert all(ax.patches for ax in fig.axes)


def test_export_gpt_refuses_bad_arguments():
    model = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8))
    with pytest.raises(ValueError, match="training mode"):
        export_gpt(model)
    model.eval()
    with pytest.raises(ValueError, match=r"seq_len must be in \[2, 8\].*got 9"):
        export_gpt(model, seq_len=9)
    with pytest.raises(TypeError, match="seq_len must be an int, got 4.0"):
        export_gpt(model, seq_len=4.0)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        export_gpt(model, batch_size=0)
    with pytest.raises(TypeError, match="model must be the course's GPT, got Linear"):
        export_gpt(nn.Linear(2, 2))


def test_data_dependent_branch_fails_and_cond_exports():
    x = torch.randn(3)
    with pytest.raises(Exception, match="data-dependent"):
        torch.export.export(HammerGate(), (x,), strict=False)
    program = torch.export.export(CondGate(), (x,), strict=False)
    assert op_counts(program)["higher_order.cond"] == 1
    run = program.module()
    # The program is specialised to the sample's shape (3,); both branches are taken below, and a zero sum
    # takes the else branch, as Python's `if` does.
    for sample in (torch.tensor([1.0, -0.5, 2.0]), torch.tensor([-1.0, 0.5, -2.0]), torch.zeros(3), torch.randn(3)):
        torch.testing.assert_close(run(sample), HammerGate()(sample), rtol=0, atol=0)


def test_training_mode_bakes_dropout_in():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, dropout=0.5))
    idx = torch.randint(0, 256, (2, 4))
    run = torch.export.export(model, (idx,), strict=False).module()
    assert not torch.equal(run(idx)[0], run(idx)[0])


# The solutions passing their checkers is proved once, with every other challenge, in test_challenges.py.


def test_checkers_reject_wrong_attempts():
    # export_gpt fixes the batch at 2: the any-batch checker must refuse it, naming the shape.
    with pytest.raises(AssertionError, match=r"refused idx of shape \(1, 8\)"):
        check_export_any_batch(export_gpt)
    with pytest.raises(AssertionError, match="return the ExportedProgram"):
        check_export_with_loss(lambda model: model)
