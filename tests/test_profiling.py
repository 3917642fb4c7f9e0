"""The profiling lesson, proved: FLOP formulas against FlopCounterMode, MFU, the profiler label, the Timer."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode

from torchenstein.advanced.profiling import (
    attention_flops,
    check_mlp_flops,
    linear_flops,
    matmul_flops_per_second,
    mfu,
    mlp_flops,
    plot_flop_breakdown,
)
from torchenstein.nn.linear import Linear
from torchenstein.nn.linear import linear_flops as forward_linear_flops
from torchenstein.transformers.multihead import MultiheadAttention


def _count(fn) -> tuple[int, dict[str, int]]:
    with FlopCounterMode(display=False) as counter:
        fn()
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return counter.get_total_flops(), per_op


LINEAR_SHAPES = [(1, 1, 1), (8, 64, 32), (3, 5, 7), (0, 4, 2), (17, 3, 129), (2, 128, 1)]


@pytest.mark.parametrize("batch, in_features, out_features", LINEAR_SHAPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("module", [nn.Linear, Linear])
def test_linear_flops_equal_flop_counter_forward_and_backward(batch, in_features, out_features, bias, module):
    torch.manual_seed(0)
    layer = module(in_features, out_features, bias=bias)
    x = torch.randn(batch, in_features, requires_grad=True)
    forward, _ = _count(lambda: layer(x))
    assert forward == linear_flops(batch, in_features, out_features)
    assert forward == forward_linear_flops((batch, in_features), in_features, out_features)
    step, per_op = _count(lambda: layer(x).sum().backward())
    assert step == linear_flops(batch, in_features, out_features, backward=True)
    # The backward is two products (the weight's and the input's gradients), each the forward's size.
    # (Without a bias the forward is an aten.mm too; with one it is an aten.addmm.)
    assert per_op.get("aten.mm", 0) - (0 if bias else forward) == 2 * forward


def test_linear_backward_without_input_gradient_is_one_product():
    # What the lesson states: with a plain-data input only the weight's gradient is computed.
    layer, x = nn.Linear(6, 4), torch.randn(5, 6)
    step, _ = _count(lambda: layer(x).sum().backward())
    assert step == 2 * linear_flops(5, 6, 4)


def test_linear_flops_with_leading_dims_counts_every_vector():
    layer, x = nn.Linear(8, 3), torch.randn(2, 5, 8, requires_grad=True)
    assert _count(lambda: layer(x).sum().backward())[0] == linear_flops(10, 8, 3, backward=True)


@pytest.mark.parametrize(
    "batch, tgt_len, src_len, embed_dim, num_heads",
    [(3, 5, 5, 8, 2), (1, 1, 1, 4, 1), (2, 7, 3, 12, 3), (4, 2, 9, 16, 8), (2, 6, 6, 16, 16)],
)
@pytest.mark.parametrize("bias", [True, False])
def test_attention_flops_equal_flop_counter(batch, tgt_len, src_len, embed_dim, num_heads, bias):
    torch.manual_seed(0)
    mha = MultiheadAttention(embed_dim, num_heads, batch_first=True, bias=bias)
    q = torch.randn(batch, tgt_len, embed_dim)
    kv = torch.randn(batch, src_len, embed_dim)
    expected = attention_flops(batch, tgt_len, src_len, embed_dim)
    # Cross-attention with one memory (fused K/V product), with three distinct inputs, and self-attention.
    assert _count(lambda: mha(q, kv, kv, need_weights=False))[0] == expected
    assert _count(lambda: mha(q, kv, kv.clone(), need_weights=False))[0] == expected
    if tgt_len == src_len:
        total, per_op = _count(lambda: mha(q, q, q, need_weights=False))
        assert total == expected
        # The two per-head products are the bmm's; the projections the addmm's (mm's without bias).
        assert per_op["aten.bmm"] == 4 * batch * tgt_len * src_len * embed_dim
    # Returning the weights costs no extra products.
    assert _count(lambda: mha(q, kv, kv))[0] == expected


def test_attention_flops_do_not_depend_on_heads_and_match_pytorch_module_projections():
    torch.manual_seed(0)
    counts = {h: _count(lambda h=h: MultiheadAttention(16, h, batch_first=True)(*[torch.randn(2, 4, 16)] * 3))[0]
              for h in (1, 2, 4, 16)}
    assert set(counts.values()) == {attention_flops(2, 4, 4, 16)}


def test_sdpa_is_counted_as_formula_or_not_at_all():
    q = torch.randn(2, 3, 4, 5)
    counted, _ = _count(lambda: F.scaled_dot_product_attention(q, q, q))
    assert counted in (0, 4 * 2 * 3 * 4 * 4 * 5)


def test_multiply_adds_are_half_the_flops():
    total, _ = _count(lambda: nn.Linear(64, 32)(torch.randn(8, 64)))
    assert total == 2 * (8 * 64 * 32)


def test_mfu_values_and_errors():
    assert mfu(3e14, 1.0, 1e15) == pytest.approx(0.3)
    assert mfu(0, 1.0, 1.0) == 0
    assert mfu(10, 2, 5) == 1.0
    with pytest.raises(ValueError, match=r"seconds must be a positive finite number, got 0"):
        mfu(1.0, 0, 1.0)
    with pytest.raises(ValueError, match=r"flops must be a non-negative finite number, got -1"):
        mfu(-1, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"peak_flops must be a positive finite number, got inf"):
        mfu(1.0, 1.0, float("inf"))
    with pytest.raises(ValueError, match=r"seconds must be a positive finite number, got nan"):
        mfu(1.0, float("nan"), 1.0)
    with pytest.raises(TypeError, match=r"flops must be a real number, got '1' of type str"):
        mfu("1", 1.0, 1.0)
    with pytest.raises(TypeError, match=r"peak_flops must be a real number, got True"):
        mfu(1.0, 1.0, True)


def test_flop_function_errors_name_argument_and_value():
    with pytest.raises(ValueError, match=r"in_features must be an int of at least 1, got 0"):
        linear_flops(2, 0, 3)
    with pytest.raises(ValueError, match=r"batch must be an int of at least 0, got -1"):
        linear_flops(-1, 2, 3)
    with pytest.raises(TypeError, match=r"out_features must be an int, got 2.0 of type float"):
        linear_flops(2, 3, 2.0)
    with pytest.raises(TypeError, match=r"backward must be a bool, got 1 of type int"):
        linear_flops(2, 3, 2, backward=1)
    with pytest.raises(ValueError, match=r"src_len must be an int of at least 1, got 0"):
        attention_flops(1, 2, 0, 4)
    with pytest.raises(TypeError, match=r"embed_dim must be an int, got True of type bool"):
        attention_flops(1, 2, 2, True)
    with pytest.raises(ValueError, match=r"n must be an int of at least 1, got 0"):
        matmul_flops_per_second(0)
    with pytest.raises(ValueError, match=r"min_run_time must be a positive finite number, got 0"):
        matmul_flops_per_second(8, min_run_time=0)


def test_matmul_flops_per_second_is_two_n_cubed_over_timer_median(monkeypatch):
    achieved = matmul_flops_per_second(16, min_run_time=0.005, num_threads=None)
    assert isinstance(achieved, float) and achieved > 0
    # With a stubbed Timer the arithmetic is exact: 2 n^3 over the median.
    import torch.utils.benchmark as benchmark

    class FakeMeasurement:
        median = 0.5

    class FakeTimer:
        def __init__(self, stmt, globals, num_threads):
            assert stmt == "a @ b" and globals["a"].shape == (10, 10) and num_threads == 3

        def blocked_autorange(self, min_run_time):
            return FakeMeasurement()

    monkeypatch.setattr(benchmark, "Timer", FakeTimer)
    assert matmul_flops_per_second(10, num_threads=3) == 2 * 10**3 / 0.5


def test_profiler_shows_label_and_ops():
    model, x = nn.Sequential(nn.Linear(4, 3), nn.ReLU()), torch.randn(2, 4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("monster_forward"):
            model(x)
    names = {event.key for event in prof.key_averages()}
    assert {"monster_forward", "aten::linear", "aten::addmm", "aten::relu"} <= names


def test_timer_measurement_fields_and_warm_up():
    calls: list[int] = []
    m = Timer("calls.append(1)", globals={"calls": calls}).blocked_autorange(min_run_time=0.005)
    assert len(calls) > m.number_per_run * len(m.times)
    assert m.median > 0 and m.iqr >= 0 and len(m.times) >= 1


def test_plot_flop_breakdown_is_fast_and_has_forward_and_backward_bars():
    start = time.perf_counter()
    fig = plot_flop_breakdown()
    assert time.perf_counter() - start < 1.0
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["addmm", "bmm", "mm"]
    forward, backward = ax.containers
    # The forward's total is the formula's; the backward adds twice as much again, in every op.
    assert sum(bar.get_height() for bar in forward) * 1e6 == pytest.approx(attention_flops(2, 64, 64, 64))
    assert sum(bar.get_height() for bar in backward) == pytest.approx(2 * sum(b.get_height() for b in forward))


def test_mlp_flops_challenge():
    check_mlp_flops(mlp_flops)
    assert mlp_flops(8, [4, 16, 2]) == 1536

    def no_first_layer_exception(batch, sizes, backward=False):
        return sum(linear_flops(batch, a, b, backward=backward) for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    with pytest.raises(AssertionError, match=r"except the first"):
        check_mlp_flops(no_first_layer_exception)

    def macs(batch, sizes, backward=False):
        return mlp_flops(batch, sizes, backward=backward) // 2

    with pytest.raises(AssertionError, match=r"2 FLOPs per multiply-add"):
        check_mlp_flops(macs)

    def never_raises(batch, sizes, backward=False):
        return mlp_flops(batch, sizes, backward=backward) if len(sizes) >= 2 and min(sizes) > 0 else 0

    with pytest.raises(AssertionError, match=r"should raise ValueError"):
        check_mlp_flops(never_raises)
