r"""
# Profiling: The Monster on the Stopwatch and the Abacus

!!! torchenstein "The Professor speaks"
    "It is fast," says Dr. Hammer, and shows one number from one run. Pah! In MY laboratory a speed is a
    *measurement*: warmed up, repeated, with its spread. Tonight we time the monster properly with PyTorch's
    own `Timer`, open its skull with the profiler to see which operations it runs, and count every
    floating-point operation it performs with an abacus that cannot lie. Then we divide the two, and learn
    what fraction of the machine we are really using.

**You will learn to**

- time code with `torch.utils.benchmark.Timer` instead of a bare `time.perf_counter()`, and read the
  median and interquartile range it reports;
- label a region with `record_function` and find it, with every operation it ran, in `torch.profiler`'s table;
- count FLOPs with `FlopCounterMode`, and derive by hand what it counts for a `Linear` layer (forward and
  backward) and for the course's `MultiheadAttention`;
- turn FLOPs and seconds into model FLOPs utilisation, and measure your own CPU's matmul speed;
- avoid four of Dr. Hammer's measuring mistakes.

## A better stopwatch: `torch.utils.benchmark.Timer`

[Getting started](../../laboratory/getting_started/index.md) timed a matrix product with
[`time_it`][torchenstein.lab.time_it]: warm-up runs first, the device synchronised around each run, the
median kept. PyTorch ships the same care, and more, in `torch.utils.benchmark.Timer`. It takes the code as a
string (`stmt`) and the names it uses (`globals`), and:

- it **warms up**: `blocked_autorange` first runs the statement untimed, to find how many runs make a block
  long enough to time (a **block** is many runs timed together, so the clock's own resolution stops mattering);
- it **synchronises** an accelerator before each reading of the clock;
- it fixes the **number of threads** PyTorch may use (`num_threads`, one by default), so two measurements
  on one machine compare like with like: PyTorch otherwise uses every core it finds;
- it returns a `Measurement`, which keeps every block's time per run and summarises them robustly.

The `Measurement`'s fields: `median` (seconds per run, the middle block), `iqr` (the **interquartile
range**, the spread of the middle half of the blocks: a small IQR next to the median means a steady
measurement), `mean`, `times` (one time per block, already divided by the runs in it) and `number_per_run`
(the runs in each block). The median, not the mean, because one block interrupted by the operating system
drags a mean but not a median. The numbers are your machine's, so the page prints only their kinds:

```pycon
>>> import torch
>>> from torch.utils.benchmark import Timer
>>> a, b = torch.randn(64, 64), torch.randn(64, 64)
>>> timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=1, label="matmul 64")
>>> m = timer.blocked_autorange(min_run_time=0.01)      # at least 0.01 s of timed blocks
>>> type(m).__name__
'Measurement'
>>> {field: isinstance(getattr(m, field), float) for field in ("median", "iqr", "mean")}
{'median': True, 'iqr': True, 'mean': True}
>>> {"blocks": len(m.times) >= 1, "runs per block": m.number_per_run >= 1}
{'blocks': True, 'runs per block': True}

```

Print `m` in your own session to read it (`Median: ... us`, `IQR: ...`), and compare two variants with
`torch.utils.benchmark.Compare([m1, m2]).print()`, which sets their medians out as a table.

## The profiler: which operations ran

A timer says *how long*; a **profiler** says *what*. `torch.profiler.profile` records every PyTorch
operation (an **op**, such as `aten::addmm`, the fused matrix product plus bias inside a `Linear`) run in
its block, with its time, and `record_function("name")` adds a labelled region of your own, so your own
steps (a forward, a data step) appear in the table next to PyTorch's ops. `prof.key_averages()` groups the
events by name; each group's `key` is the name:

```pycon
>>> from torch import nn
>>> from torch.profiler import ProfilerActivity, profile, record_function
>>> _ = torch.manual_seed(0)
>>> model, x = nn.Sequential(nn.Linear(4, 3), nn.ReLU()), torch.randn(2, 4)
>>> with profile(activities=[ProfilerActivity.CPU]) as prof:
...     with record_function("monster_forward"):
...         y = model(x)
>>> names = {event.key for event in prof.key_averages()}
>>> print("label present:", "monster_forward" in names)
label present: True
>>> sorted(name for name in names if name in {"aten::linear", "aten::addmm", "aten::relu", "aten::clamp_min"})
['aten::addmm', 'aten::clamp_min', 'aten::linear', 'aten::relu']

```

`Linear` calls `aten::linear`, which calls `aten::addmm`; `ReLU` calls `aten::relu`, which calls
`aten::clamp_min`. The full table, `prof.key_averages().table(sort_by="cpu_time_total")`, lists them with
their times, and `prof.export_chrome_trace("trace.json")` writes a timeline to open in
[Perfetto](https://ui.perfetto.dev). Add `ProfilerActivity.CUDA` on a GPU to see its kernels too.

## Counting FLOPs: the abacus

A **FLOP** is one floating-point operation: one multiplication or one addition. The
[Linear layer](../../nn/linear/index.md) lesson counted a layer's forward pass: each of the $\text{out}$
outputs of each of $N$ input vectors takes $\text{in}$ multiplications and $\text{in}$ additions, so
$2 N \cdot \text{in} \cdot \text{out}$ FLOPs, bias left out. `torch.utils.flop_counter.FlopCounterMode`
counts matrix products (and convolutions and fused attention) by formula, from shapes alone.

What does it count for the backward pass? Two products of the same size: $\partial L / \partial W =
(\partial L / \partial y)^\top x$ for the weight (an `aten::mm`) and $\partial L / \partial x =
(\partial L / \partial y) W$ for the input, which autograd computes only when the input needs a gradient.
So a training step costs three forwards for a hidden layer, two for a first layer fed plain data:

$$
\text{forward} = 2 N\, \text{in}\, \text{out}, \qquad
\text{forward + backward} = 3 \times \text{forward} \;(\text{or } 2 \times \text{ when } x \text{ needs no gradient}).
$$

[`linear_flops`][torchenstein.advanced.profiling.linear_flops] writes this down, and agrees with the counter:

```pycon
>>> from torch.utils.flop_counter import FlopCounterMode
>>> from torchenstein.advanced.profiling import linear_flops
>>> layer, x = nn.Linear(64, 32), torch.randn(8, 64, requires_grad=True)
>>> with FlopCounterMode(display=False) as counter:
...     layer(x).sum().backward()
>>> per_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
>>> per_op
{'aten.addmm': 32768, 'aten.mm': 65536}
>>> print("formula:", linear_flops(8, 64, 32), linear_flops(8, 64, 32, backward=True), counter.get_total_flops())
formula: 32768 98304 98304

```

The counter ignores the bias add, the ReLU, the softmax and every other elementwise op: they cost $O(N)$ next
to a product's $O(N \cdot \text{in} \cdot \text{out})$.

### The attention layer, by hand

Now the course's own [`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention], with
$B$ sequences of $L$ queries attending to $S$ keys, width $E$, $h$ heads of width $d = E / h$:

| step | product | FLOPs |
| --- | --- | --- |
| input projections | queries $(BL, E) \cdot (E, E)$; keys and values $(BS, E) \cdot (E, E)$ each | $2BLE^2 + 4BSE^2$ |
| scores $QK^\top$ | per head $(L, d) \cdot (d, S)$ | $2BhLSd = 2BLSE$ |
| weighted values | per head $(L, S) \cdot (S, d)$ | $2BLSE$ |
| output projection | $(BL, E) \cdot (E, E)$ | $2BLE^2$ |

In all, $4BE^2(L + S) + 4BLSE$, and the number of heads drops out: $h$ heads of width $E/h$ cost what one
head of width $E$ does. [`attention_flops`][torchenstein.advanced.profiling.attention_flops] is that sum.
The counter agrees, the projections counted as `aten.addmm` and the two per-head products as `aten.bmm`:

```pycon
>>> from torchenstein.advanced.profiling import attention_flops
>>> from torchenstein.transformers.multihead import MultiheadAttention
>>> mha, x = MultiheadAttention(8, 2, batch_first=True), torch.randn(3, 5, 8)
>>> with FlopCounterMode(display=False) as counter:
...     _ = mha(x, x, x, need_weights=False)
>>> {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
{'aten.addmm': 7680, 'aten.bmm': 2400}
>>> print("formula:", attention_flops(3, 5, 5, 8), "counted:", counter.get_total_flops())
formula: 10080 counted: 10080

```

A word on PyTorch's fused `F.scaled_dot_product_attention` (**SDPA**): the counter knows its CUDA kernels
(flash and memory-efficient; cuDNN too in recent releases) and counts them as the same $4BhLSd$. It does not know every kernel: on the
CPU, torch 2.13 sends SDPA to a fused CPU kernel that is not in the counter's table, and the count is 0.
Check before you trust it on your device:

```pycon
>>> import torch.nn.functional as F
>>> q = torch.randn(3, 2, 5, 4)                             # (B, h, L, d)
>>> with FlopCounterMode(display=False) as counter:
...     _ = F.scaled_dot_product_attention(q, q, q)
>>> print("counted either 4BhLSd or nothing:", counter.get_total_flops() in (0, 4 * 3 * 2 * 5 * 5 * 4))
counted either 4BhLSd or nothing: True

```

Where the FLOPs of attention go, by op type, forward and backward, for a larger layer:

![Bar chart of the FLOPs of one MultiheadAttention layer by op type: the addmm projections, the bmm score and weighted-value products, and the mm products of the backward pass, for the forward and the backward pass](plot_flop_breakdown.svg)

## Model FLOPs utilisation

A chip's **peak** is the FLOP/s its maker promises (an H100 about $10^{15}$ in bfloat16, a laptop core some
$10^{11}$). **Model FLOPs utilisation** (MFU) is the fraction of it a run achieves: the FLOPs the model needs
(counted as above) divided by the seconds the run took, divided by the peak,

$$
\text{MFU} = \frac{\text{FLOPs} / \text{seconds}}{\text{peak FLOP/s}} .
$$

[`mfu`][torchenstein.advanced.profiling.mfu] computes it. Large language-model training runs report 30–60%;
a value above 1 means the peak, or the FLOP count, is wrong.

```pycon
>>> from torchenstein.advanced.profiling import mfu
>>> mfu(flops=3e14, seconds=1.0, peak_flops=1e15)
0.3
>>> mfu(flops=3e14, seconds=0.0, peak_flops=1e15)
Traceback (most recent call last):
...
ValueError: seconds must be a positive finite number, got 0.0

```

What is *your* CPU's peak? Nobody prints it on the box, but a large matrix product comes close to it.
[`matmul_flops_per_second`][torchenstein.advanced.profiling.matmul_flops_per_second] times one with
`Timer` and returns the achieved FLOP/s, a number to use as the peak of your own MFU:

```pycon
>>> from torchenstein.advanced.profiling import matmul_flops_per_second
>>> achieved = matmul_flops_per_second(64, min_run_time=0.01)
>>> print("a positive float:", isinstance(achieved, float) and achieved > 0)
a positive float: True

```

Now a measured run: a `Linear(64, 64)` forward on 32 vectors, timed with `Timer`, its FLOPs counted by
formula, its utilisation measured against that achieved peak (the number is yours, so the page prints its kind):

```pycon
>>> layer, x = nn.Linear(64, 64), torch.randn(32, 64)
>>> step = Timer("layer(x)", globals={"layer": layer, "x": x}).blocked_autorange(min_run_time=0.01)
>>> utilisation = mfu(linear_flops(32, 64, 64), step.median, peak_flops=achieved)
>>> print("utilisation, a positive float:", isinstance(utilisation, float) and utilisation > 0)
utilisation, a positive float: True

```

Run it at `n=1024` and with `num_threads=None` (all cores) on your machine, and put
`2 * 1024**3 / achieved` seconds next to `time_it`'s number for the same product.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: timing the first call"
    Dr. Hammer times one call, the first. It pays for everything done once: a lazily built table, a
    library loaded, a kernel chosen, memory allocated. Every later call skips that work. Here a tiny "model"
    that builds a lookup table on first use; the first call does the work the others never do:

    ```pycon
    >>> import functools
    >>> built = []
    >>> @functools.cache
    ... def table(n):
    ...     built.append(n)                                  # the one-off work
    ...     return torch.arange(n) ** 2
    >>> def forward(i):
    ...     return table(1000)[i]
    >>> _ = forward(3)
    >>> first = len(built)
    >>> _ = forward(4)
    >>> {"first call built the table": first == 1, "second call built it": len(built) > first}
    {'first call built the table': True, 'second call built it': False}

    ```

    Time with warm-up. `blocked_autorange` runs the statement untimed before the blocks it keeps, so it
    ran more often than it timed:

    ```pycon
    >>> calls = []
    >>> m = Timer("calls.append(1)", globals={"calls": calls}).blocked_autorange(min_run_time=0.01)
    >>> print("untimed runs came first:", len(calls) > m.number_per_run * len(m.times))
    untimed runs came first: True

    ```

!!! hammer "Dr. Hammer's trap: timing CUDA without synchronising"
    On a GPU, `a @ b` returns as soon as the product is *queued*; the GPU computes it later. Dr. Hammer's
    `perf_counter()` around it measures the queueing, a few microseconds, whatever the size of the
    matrices, and his next line that reads a result (`.item()`, `print`) silently pays the wait instead.
    Synchronise before each reading of the clock (`Timer` and `time_it` do), or let the GPU time itself with
    CUDA events. Shown only where a GPU exists:

    ```pycon
    >>> if torch.cuda.is_available():
    ...     a = torch.randn(2048, 2048, device="cuda")
    ...     start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ...     _ = a @ a                                        # warm-up
    ...     start.record()
    ...     _ = a @ a
    ...     end.record()
    ...     torch.cuda.synchronize()                         # wait until `end` has happened
    ...     milliseconds = start.elapsed_time(end)           # measured on the GPU's own clock

    ```

!!! hammer "Dr. Hammer's trap: reading the profiler's times as real"
    The profiler records an event at the start and the end of every op, and that bookkeeping costs
    microseconds per op: for a tiny op, more than the op itself. Dr. Hammer profiles a small model, reads
    `aten::relu` at several microseconds and concludes that ReLU is his bottleneck. The profiler tells you
    *which* ops ran, in *what order*, and roughly how the time *splits* on large work; it does not time them
    without disturbing them. Even the tiny forward above recorded more ops than the two layers it has:

    ```pycon
    >>> ops = [event.name for event in prof.events() if event.name.startswith("aten::")]
    >>> print("ops recorded for a two-layer forward, more than 2:", len(ops) > 2)
    ops recorded for a two-layer forward, more than 2: True

    ```

    Find the suspect with the profiler; time it, alone and warmed up, with `Timer`.

!!! hammer "Dr. Hammer's trap: multiply-adds counted as FLOPs"
    Many papers and tools count **MACs** (multiply-accumulates: one multiplication and one addition) for a
    product; Dr. Hammer writes them down as FLOPs. That halves every FLOP count, and so halves his MFU: a
    run at 40% of the peak he reports as 20%, and his FLOP counts never match `FlopCounterMode`'s. A
    `Linear(64, 32)` over 8 vectors does $8 \cdot 64 \cdot 32$ MACs:

    ```pycon
    >>> macs = 8 * 64 * 32
    >>> with FlopCounterMode(display=False) as counter:
    ...     _ = nn.Linear(64, 32)(torch.randn(8, 64))
    >>> {"counted": counter.get_total_flops(), "MACs": macs, "FLOPs = 2 x MACs": counter.get_total_flops() == 2 * macs}
    {'counted': 32768, 'MACs': 16384, 'FLOPs = 2 x MACs': True}

    ```

## Challenges

**1. The FLOPs of a training step of an MLP.** Write `mlp_flops(batch, sizes, backward=False)`: the FLOPs
`FlopCounterMode` counts for an `nn.Sequential` of `Linear(sizes[i], sizes[i + 1])` layers with a ReLU
between them (all with bias), run on a `(batch, sizes[0])` input that needs no gradient; with
`backward=True`, the forward *and* the backward of `output.sum()`. Mind the first layer: nothing asks for
its input's gradient. Raise `ValueError` for fewer than two sizes or a size below 1.

Check an attempt with `check_mlp_flops(my_function)`, or put your own function in its place:

```pycon
>>> from torchenstein.advanced.profiling import check_mlp_flops, mlp_flops
>>> check_mlp_flops(mlp_flops)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

__all__ = [
    "attention_flops",
    "check_mlp_flops",
    "linear_flops",
    "matmul_flops_per_second",
    "mfu",
    "mlp_flops",
    "plot_flop_breakdown",
]


def linear_flops(batch: int, in_features: int, out_features: int, backward: bool = False) -> int:
    r"""The FLOPs ``FlopCounterMode`` counts for a ``Linear(in_features, out_features)`` on ``batch`` vectors.

    The forward is one product, $2 \cdot \text{batch} \cdot \text{in} \cdot \text{out}$; the backward two
    more of the same size (the weight's gradient and the input's), so 3 forwards in all. The bias is left
    out, as the counter leaves it. (The [Linear layer](../../nn/linear/index.md) lesson's
    `torchenstein.nn.linear.linear_flops` counts the forward from an input *shape*; here it is a batch size,
    with the backward.)

    Args:
        batch: $N$, the number of input vectors (the product of the leading dimensions).
        in_features: the layer's input features.
        out_features: the layer's output features.
        backward: also count the backward pass, with the input's gradient.

    Returns:
        The number of FLOPs, an int.

    Raises:
        TypeError: if a size is not an int, or ``backward`` not a bool.
        ValueError: if ``batch`` is negative or a feature count below 1.

    Examples:
        >>> linear_flops(8, 64, 32), linear_flops(8, 64, 32, backward=True)
        (32768, 98304)
        >>> linear_flops(8, 0, 32)
        Traceback (most recent call last):
        ...
        ValueError: in_features must be an int of at least 1, got 0
    """
    _check_int("batch", batch, minimum=0)
    _check_int("in_features", in_features)
    _check_int("out_features", out_features)
    _check_bool("backward", backward)
    # One multiplication and one addition per input feature, per output feature, per vector.
    forward = 2 * batch * in_features * out_features
    # Backward: dL/dW = dL/dy^T x and dL/dx = dL/dy W, each a product of the forward's size.
    return 3 * forward if backward else forward


def attention_flops(batch: int, tgt_len: int, src_len: int, embed_dim: int) -> int:
    r"""The forward FLOPs of a `MultiheadAttention` layer: projections, scores, weighted values, output.

    $4BE^2(L + S) + 4BLSE$ for $B$ sequences of $L$ queries over $S$ keys of width $E$, whatever the number of
    heads. Equal to what ``FlopCounterMode`` counts for the course's
    [`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention] (biases, scaling and
    softmax left out, as the counter leaves them).

    Args:
        batch: $B$.
        tgt_len: $L$, the number of queries per sequence.
        src_len: $S$, the number of keys (and values) per sequence.
        embed_dim: $E$.

    Returns:
        The number of FLOPs, an int.

    Raises:
        TypeError: if a size is not an int.
        ValueError: if ``batch`` is negative or another size below 1.

    Examples:
        >>> attention_flops(3, 5, 5, 8)
        10080
    """
    _check_int("batch", batch, minimum=0)
    for name, value in (("tgt_len", tgt_len), ("src_len", src_len), ("embed_dim", embed_dim)):
        _check_int(name, value)
    B, L, S, E = batch, tgt_len, src_len, embed_dim
    # Q from the L queries; K and V from the S keys: three (E, E) products.
    projections = linear_flops(B * L, E, E) + 2 * linear_flops(B * S, E, E)
    # Per head (L, d) @ (d, S), then (L, S) @ (S, d); summed over h heads of width d, h * d = E.
    scores = 2 * B * L * S * E
    weighted_values = 2 * B * L * S * E
    output = linear_flops(B * L, E, E)
    return projections + scores + weighted_values + output


def mfu(flops: float, seconds: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: the fraction of a chip's peak FLOP/s that a run achieved.

    Args:
        flops: the FLOPs the run needed (counted, not measured).
        seconds: how long the run took.
        peak_flops: the chip's peak, in FLOP/s.

    Returns:
        ``flops / seconds / peak_flops``; above 1 means the peak or the count is wrong.

    Raises:
        TypeError: if an argument is not a real number.
        ValueError: if ``flops`` is negative, or ``seconds`` or ``peak_flops`` not positive, or any is not finite.

    Examples:
        >>> mfu(flops=6e12, seconds=2.0, peak_flops=1e13)
        0.3
    """
    _check_number("flops", flops, positive=False)
    _check_number("seconds", seconds)
    _check_number("peak_flops", peak_flops)
    return flops / seconds / peak_flops


def matmul_flops_per_second(
    n: int = 256,
    *,
    dtype: torch.dtype = torch.float32,
    num_threads: int | None = 1,
    min_run_time: float = 0.2,
) -> float:
    """Measure the FLOP/s an ``(n, n) @ (n, n)`` product achieves on this CPU, with ``Timer``.

    Args:
        n: the matrices' size; the product is $2n^3$ FLOPs.
        dtype: their dtype.
        num_threads: the threads PyTorch may use; ``None`` for all of them (``torch.get_num_threads()``).
        min_run_time: the least number of seconds of timed blocks.

    Returns:
        The achieved FLOP/s, ``2 * n**3`` over the median time of one product.

    Raises:
        TypeError: if ``n`` or ``num_threads`` is not an int.
        ValueError: if ``n`` or ``num_threads`` is below 1, or ``min_run_time`` is not positive.

    Examples:
        >>> matmul_flops_per_second(32, min_run_time=0.01) > 0
        True
    """
    from torch.utils.benchmark import Timer

    _check_int("n", n)
    if num_threads is None:
        num_threads = torch.get_num_threads()
    _check_int("num_threads", num_threads)
    _check_number("min_run_time", min_run_time)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    # blocked_autorange warms up while it sizes the blocks, and keeps the median block's time per run.
    timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=num_threads)
    seconds = timer.blocked_autorange(min_run_time=min_run_time).median
    return float(2 * n**3 / seconds)


def _flops_by_op(model: torch.nn.Module, x: torch.Tensor, backward: bool) -> dict[str, int]:
    """Run ``model(x, x, x)`` (and its backward) under ``FlopCounterMode``; return FLOPs per op name."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out, _ = model(x, x, x, need_weights=False)
        if backward:
            out.sum().backward()
    return {str(op).removeprefix("aten."): int(n) for op, n in counter.get_flop_counts()["Global"].items()}


def plot_flop_breakdown(
    *, batch: int = 2, seq_len: int = 64, embed_dim: int = 64, num_heads: int = 4
) -> Figure:
    """Draw the FLOPs of one `MultiheadAttention` self-attention layer by op type, forward and backward.

    Args:
        batch: $B$.
        seq_len: $L = S$.
        embed_dim: $E$.
        num_heads: $h$.

    Returns:
        A matplotlib ``Figure``.

    Examples:
        >>> fig = plot_flop_breakdown(seq_len=8, embed_dim=16)
        >>> fig.axes[0].get_ylabel()
        'MFLOPs'
    """
    from torchenstein.transformers.multihead import MultiheadAttention

    _ = torch.manual_seed(0)
    model = MultiheadAttention(embed_dim, num_heads, batch_first=True)
    x = torch.randn(batch, seq_len, embed_dim, requires_grad=True)
    forward = _flops_by_op(model, x, backward=False)
    total = _flops_by_op(model, x, backward=True)
    # The backward's share of each op is the whole step's count less the forward's.
    backward = {op: total[op] - forward.get(op, 0) for op in total}
    ops = sorted(total)
    fig, (ax,) = new_figure(width=6.5, height=3.4)
    positions = range(len(ops))
    ax.bar([p - 0.2 for p in positions], [forward.get(op, 0) / 1e6 for op in ops], width=0.4, label="forward")
    ax.bar([p + 0.2 for p in positions], [backward[op] / 1e6 for op in ops], width=0.4, label="backward")
    ax.set_xticks(list(positions), ops)
    ax.set_ylabel("MFLOPs")
    ax.set_title(f"MultiheadAttention FLOPs by op (B={batch}, L=S={seq_len}, E={embed_dim}, h={num_heads})")
    ax.legend(frameon=False)
    return fig


def mlp_flops(batch: int, sizes: Sequence[int], backward: bool = False) -> int:
    """Challenge solution: the FLOPs ``FlopCounterMode`` counts for a Linear/ReLU stack on plain data.

    Args:
        batch: the number of input vectors.
        sizes: the widths, ``sizes[0]`` in, ``sizes[-1]`` out; one ``Linear`` per consecutive pair.
        backward: also count the backward of ``output.sum()``.

    Returns:
        The number of FLOPs, an int.

    Raises:
        ValueError: if there are fewer than two sizes, or a size below 1.

    Examples:
        >>> mlp_flops(8, [4, 16, 2]), mlp_flops(8, [4, 16, 2], backward=True)
        (1536, 3584)
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least two widths, got {sizes}")
    for size in sizes:
        _check_int("sizes", size)
    total = 0
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        forward = linear_flops(batch, fan_in, fan_out)
        # The first layer's input is the data: only its weight's gradient is computed, one product.
        total += forward + (0 if not backward else forward if i == 0 else 2 * forward)
    return total


def check_mlp_flops(candidate: Callable[..., int]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``mlp_flops``.

    Every case is compared with what ``FlopCounterMode`` counts for the real network.

    Examples:
        >>> check_mlp_flops(mlp_flops)
    """
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    for batch, sizes in ((8, [4, 16, 2]), (3, [5, 7]), (1, [2, 3, 4, 5]), (6, [1, 1, 1])):
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        net = nn.Sequential(*layers[:-1])
        for backward in (False, True):
            with FlopCounterMode(display=False) as counter:
                out = net(torch.randn(batch, sizes[0]))
                if backward:
                    out.sum().backward()
            expected, got = counter.get_total_flops(), candidate(batch, sizes, backward=backward)
            where = f"mlp_flops({batch}, {sizes}, backward={backward})"
            assert isinstance(got, int) and not isinstance(got, bool), f"{where}: expected an int, got {got!r}"
            assert got == expected, (
                f"{where} = {got}, expected {expected} (FlopCounterMode): 2 FLOPs per multiply-add; the backward "
                "adds two products per layer, except the first, whose input needs no gradient"
            )
    for sizes in ([4], [4, 0]):
        try:
            candidate(2, sizes)
        except ValueError:
            continue
        raise AssertionError(f"mlp_flops(2, {sizes}) should raise ValueError")


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value}")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")


def _check_number(name: str, value: object, positive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind} finite number, got {value!r}")
