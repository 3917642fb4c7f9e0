r"""
# The CUDA Caching Allocator: My Old Nemesis, Dissected

!!! torchenstein "The Professor speaks"
    You have heard the legend: in my basement years I fought titanic battles with the CUDA memory
    allocator. It swallowed gigabytes my tensors had long released, it died of "out of memory" with half
    the card free, and Dr. Hammer laughed. Tonight the battle ends. We take the monster apart rule by
    rule, rebuild it in plain Python so that it runs on the humblest CPU, and then (where a GPU hums) we
    set my replica beside the real thing and watch them agree to the byte. Mwahaha!

**You will learn to**

- explain why PyTorch keeps freed GPU memory, and tell `memory_allocated` from `memory_reserved`;
- apply the allocator's rules by hand: rounding to 512 bytes, a small and a large pool, segment sizes,
  best fit, splitting and merging, and what `empty_cache` may release;
- replay an allocation trace in a from-scratch `CachingAllocatorSimulator` and read its segment maps;
- recognise fragmentation, and know what `max_split_size_mb`, `expandable_segments` and
  `garbage_collection_threshold` change;
- compare the simulator with `torch.cuda.memory_stats` on a GPU, and read a memory snapshot in PyTorch's
  memory_viz page;
- dodge three of Dr. Hammer's memory traps.

## Why a GPU needs a cache

A GPU's own memory (its **device memory**) is handed out by the CUDA driver through `cudaMalloc` and taken
back through `cudaFree`. Both are expensive, and `cudaFree` is worse: it waits until the GPU has finished
all the work already queued, so calling it stalls the pipeline that makes GPUs fast. A training step
creates and destroys thousands of tensors, so PyTorch never calls the driver per tensor. Its **caching
allocator** (`c10/cuda/CUDACachingAllocator.cpp`) asks the driver for large **segments**, one `cudaMalloc`
each, and carves them into **blocks**, one per tensor storage (the memory a tensor and all its views
share, as in the [surgery lesson](../../tensors/surgery/index.md)). When the last tensor using a storage
dies, its block goes back to the allocator's **cache**, not to the driver, ready for the next tensor.

Two numbers follow. `torch.cuda.memory_allocated()` counts the bytes of blocks that tensors hold;
`torch.cuda.memory_reserved()` counts the bytes of all segments, held blocks and cached ones. My
[`CachingAllocatorSimulator`][torchenstein.advanced.allocator.CachingAllocatorSimulator] keeps both. Its
`malloc(size)` is what `torch.empty` does on a GPU, and it returns a **handle**, the simulator's stand-in
for the storage; `free(handle)` is what happens when that storage dies:

```pycon
>>> import torch
>>> from torchenstein.advanced.allocator import MIB, CachingAllocatorSimulator
>>> sim = CachingAllocatorSimulator()
>>> x = sim.malloc(4000 * 4)                      # torch.empty(4000) in float32: 16,000 bytes
>>> sim.memory_allocated(), sim.memory_reserved()
(16384, 2097152)
>>> sim.free(x)                                   # the tensor dies; its block stays in the cache
>>> sim.memory_allocated(), sim.memory_reserved()
(0, 2097152)
>>> y = sim.malloc(4000 * 4)                      # the next tensor reuses the cached block
>>> print("cudaMalloc calls:", sim.stats()["num_device_alloc"])
cudaMalloc calls: 1

```

Sixteen thousand bytes asked, 16,384 allocated, two mebibytes (MiB, $2^{20}$ bytes) reserved. Every one of
those numbers follows from six rules.

## The rules of the allocator

**Rule 1: round up to 512 bytes.** Every request becomes a block whose size is a multiple of 512 bytes
(`kMinBlockSize`), and at least 512:
[`round_size`][torchenstein.advanced.allocator.round_size].

**Rule 2: two pools.** A rounded request of at most 1 MiB (`kSmallSize`) is *small* and is served from the
small pool; anything larger from the large pool. The pools never share blocks.

**Rule 3: segment sizes.** When nothing cached fits, the allocator calls `cudaMalloc` for a new segment:
2 MiB for a small request (`kSmallBuffer`, so hundreds of small tensors share one segment), 20 MiB for a
large request under 10 MiB (`kLargeBuffer` and `kMinLargeAlloc`), and for 10 MiB or more the request
rounded up to a multiple of 2 MiB (`kRoundLarge`):
[`get_allocation_size`][torchenstein.advanced.allocator.get_allocation_size].

```pycon
>>> from torchenstein.advanced.allocator import get_allocation_size, pool_for, round_size
>>> for nbytes in (1, 1000, 1024 * 1024, 1024 * 1024 + 1, 3 * MIB, 10 * MIB, 11 * MIB + 1):
...     size = round_size(nbytes)
...     segment = get_allocation_size(size)
...     print(f"{nbytes:>8} bytes: block {size:>8}, {pool_for(size)} pool, new segment {segment // MIB} MiB")
       1 bytes: block      512, small pool, new segment 2 MiB
    1000 bytes: block     1024, small pool, new segment 2 MiB
 1048576 bytes: block  1048576, small pool, new segment 2 MiB
 1048577 bytes: block  1049088, large pool, new segment 20 MiB
 3145728 bytes: block  3145728, large pool, new segment 20 MiB
10485760 bytes: block 10485760, large pool, new segment 10 MiB
11534337 bytes: block 11534848, large pool, new segment 12 MiB

```

**Rule 4: best fit.** Before it calls the driver, the allocator searches its pool for the *smallest* free
block that holds the request, and among blocks of equal size the one at the lowest address. (PyTorch keeps
each pool's free blocks in a `std::set` ordered by stream, size and address, and finds that block with one
`lower_bound`; the simulator scans a list and finds the same one.) Four tensors in a 20 MiB segment; free
two of them, and ask for 2.5 MiB. Three free blocks fit, of 3, 5 and 8 MiB; the 3 MiB hole wins:

```pycon
>>> sim = CachingAllocatorSimulator()
>>> h = {name: sim.malloc(size * MIB, name=name) for name, size in (("a", 3), ("b", 2), ("c", 5), ("d", 2))}
>>> sim.free(h["a"]); sim.free(h["c"])
>>> print(sim.describe())
large segment of 20.00 MiB: free 3.00 MiB | b 2.00 MiB | free 5.00 MiB | d 2.00 MiB | free 8.00 MiB
>>> h["e"] = sim.malloc(5 * MIB // 2, name="e")
>>> print(sim.describe())
large segment of 20.00 MiB: e 3.00 MiB | b 2.00 MiB | free 5.00 MiB | d 2.00 MiB | free 8.00 MiB

```

**Rule 5: split, or hand over the whole block.** A block bigger than the request is cut in two only when
the rest is worth keeping. In the small pool, any rest of 512 bytes or more is split off. In the large
pool the rest must be *larger than 1 MiB*: a rest of 1 MiB or less could serve no request of the large
pool (they are all larger), and small requests never look there. So `e` above received the whole 3 MiB block for its 2.5 MiB, and
`memory_allocated` counts all of it; the `requested_bytes` statistic keeps what was asked. A 6 MiB
request, by contrast, splits the 8 MiB tail and leaves a 2 MiB free block behind. By the same rule an 11 MiB
tensor, alone in the fresh 12 MiB segment of Rule 3's table, owns all 12 MiB.

```pycon
>>> s = sim.stats()
>>> print("allocated:", s["allocated_bytes.all.current"] // MIB, "MiB, requested:",
...       s["requested_bytes.all.current"] / MIB, "MiB")
allocated: 7 MiB, requested: 6.5 MiB
>>> h["f"] = sim.malloc(6 * MIB, name="f")
>>> print(sim.describe())
large segment of 20.00 MiB: e 3.00 MiB | b 2.00 MiB | free 5.00 MiB | d 2.00 MiB | f 6.00 MiB | free 2.00 MiB
>>> fresh = CachingAllocatorSimulator()
>>> _ = fresh.malloc(11 * MIB)
>>> print("11 MiB tensor owns", fresh.memory_allocated() // MIB, "MiB")
11 MiB tensor owns 12 MiB

```

**Rule 6: merge on free.** A freed block swallows its free neighbours in the same segment, so holes grow
back together and a segment whose blocks are all free is one free block again:

```pycon
>>> sim.free(h["b"])
>>> print(sim.describe())
large segment of 20.00 MiB: e 3.00 MiB | free 7.00 MiB | d 2.00 MiB | f 6.00 MiB | free 2.00 MiB
>>> for name in ("e", "d", "f"):
...     sim.free(h[name])
>>> print(sim.describe())
large segment of 20.00 MiB: free 20.00 MiB

```

## The cache, and what `empty_cache` can release

Every tensor is gone, yet the segment stays reserved: the next 20 MiB of tensors will not need the
driver at all. `torch.cuda.empty_cache()` hands the driver every segment that is *wholly* free, and nothing
else: a segment in which one block is still allocated cannot be returned, because `cudaFree` frees whole
`cudaMalloc`s only.

```pycon
>>> sim.memory_allocated(), sim.memory_reserved() // MIB
(0, 20)
>>> sim.empty_cache()
>>> sim.memory_reserved()
0
>>> pin, big = sim.malloc(512, name="pin"), sim.malloc(30 * MIB)
>>> sim.free(big)
>>> sim.empty_cache()                             # the 30 MiB segment goes; the small one holds `pin`
>>> print(sim.describe())
small segment of 2.00 MiB: pin 512 bytes | free 2.00 MiB

```

Freed blocks return to the pool they came from, *and to the stream they were allocated on*: each CUDA
stream (a queue of GPU work) has its own free blocks, and a block is reused only by requests on the same
stream, because another stream might still be reading it. A tensor used on a second stream is marked with
`tensor.record_stream(stream)`, and its block is cached only once that stream's work is done. The simulator
models a single stream, the one nearly every training loop uses.

## Fragmentation

**Fragmentation** is memory that is reserved and free, but in pieces too small, or in the wrong pool, for
the request at hand. Dr. Hammer's forward pass allocates a 3 MiB activation and a 2 MiB output, layer
after layer, keeps the outputs and frees the activations. Each 20 MiB segment ends up striped: four 3 MiB
holes between four outputs. His next 6 MiB tensor fits none of the holes, so a new segment is reserved,
and `empty_cache` can release nothing, since every segment holds a live block. `HAMMER_TRACE` is that
program, as a list of `("malloc", id, size)`, `("free", id)` and `("empty_cache",)` steps, and
[`replay`][torchenstein.advanced.allocator.CachingAllocatorSimulator.replay] runs it:

```pycon
>>> from torchenstein.advanced.allocator import HAMMER_TRACE
>>> HAMMER_TRACE[:3]
[('malloc', 'act0', 3145728), ('malloc', 'out0', 2097152), ('malloc', 'act1', 3145728)]
>>> sim = CachingAllocatorSimulator()
>>> allocated, reserved = sim.replay(HAMMER_TRACE)[-1]
>>> print(f"allocated {allocated / MIB} MiB, reserved {reserved / MIB} MiB")
allocated 22.0 MiB, reserved 60.0 MiB
>>> s = sim.stats()
>>> print("free blocks stuck in split segments:", s["inactive_split.all.current"],
...       f"({s['inactive_split_bytes.all.current'] / MIB} MiB)")
free blocks stuck in split segments: 9 (38.0 MiB)

```

`inactive_split` is PyTorch's own name for this waste: free blocks inside segments that are split, which
`empty_cache` cannot release. [`plot_segments`][torchenstein.advanced.allocator.plot_segments] draws the
segments as the memory_viz page would, and
[`plot_memory_timeline`][torchenstein.advanced.allocator.plot_memory_timeline] the two numbers step by step:

![Three horizontal bars, one per segment. The first two are striped: purple 2 MiB outputs between pale 3 MiB free holes. The third holds the 6 MiB tensor and a long pale free tail.](plot_segments.svg)

![Two step lines over the trace: memory_reserved climbs in 20 MiB stairs and never comes down, while memory_allocated climbs through the forward pass and drops when the activations are freed.](plot_memory_timeline.svg)

## When `cudaMalloc` fails

The allocator does not give up at the first refusal. When the driver has no room for a new segment, it
(1) frees cached *oversize* segments, just enough for the request (only with `max_split_size_mb` set, see
below); (2) frees every wholly free cached segment, as `empty_cache` would, counts one
`num_alloc_retries` and tries again; and only then (3) raises `torch.cuda.OutOfMemoryError`, a
`RuntimeError`. The simulator's `capacity` is the memory its imaginary driver has. With 40 MiB, a cached
20 MiB segment is sacrificed for a 30 MiB tensor:

```pycon
>>> sim = CachingAllocatorSimulator(capacity=40 * MIB)
>>> sim.free(sim.malloc(5 * MIB))                 # leaves a wholly free 20 MiB segment cached
>>> big = sim.malloc(30 * MIB)                    # 20 + 30 > 40: release the cache, then retry
>>> s = sim.stats()
>>> {key: s[key] for key in ("num_alloc_retries", "num_device_free", "segment.all.current")}
{'num_alloc_retries': 1, 'num_device_free': 1, 'segment.all.current': 1}

```

A climbing `num_alloc_retries` in a real run means the cache is being flushed again and again, each flush
a device-wide synchronisation: a sign that you are living at the edge of the card.

## The knobs: `PYTORCH_CUDA_ALLOC_CONF`

The allocator reads its options from the environment variable `PYTORCH_CUDA_ALLOC_CONF` (recent releases
also read `PYTORCH_ALLOC_CONF`), once, before the first CUDA allocation, as comma-separated `name:value`
pairs, e.g. `PYTORCH_CUDA_ALLOC_CONF=max_split_size_mb:128,garbage_collection_threshold:0.8`.

- **`max_split_size_mb`**: blocks of this size or more are *oversize*. They are never split, never serve a
  smaller request, and serve a request of at least that size only if they exceed it by less than 20 MiB
  (recent releases let `max_non_split_rounding_mb` change those 20 MiB).
  Big cached segments then stop being carved into slivers, at the price of more segments. PyTorch insists
  on at least 20 MiB (older releases on more than 20). The simulator takes it in bytes,
  as `max_split_size`:

```pycon
>>> for limit in (None, 32 * MIB):
...     sim = CachingAllocatorSimulator(max_split_size=limit)
...     sim.free(sim.malloc(40 * MIB))            # a cached 40 MiB segment
...     _ = sim.malloc(25 * MIB, name="x")
...     label = "none" if limit is None else f"{limit // MIB} MiB"
...     print(f"max_split_size {label}: reserved {sim.memory_reserved() // MIB} MiB")
...     print(sim.describe())
max_split_size none: reserved 40 MiB
large segment of 40.00 MiB: x 25.00 MiB | free 15.00 MiB
max_split_size 32 MiB: reserved 66 MiB
large segment of 40.00 MiB: free 40.00 MiB
large segment of 26.00 MiB: x 26.00 MiB

```

- **`expandable_segments:True`**: instead of one `cudaMalloc` per segment, the allocator reserves a huge
  range of *virtual* addresses per stream and maps physical memory into it as it grows (in 2 MiB pages for
  the small pool, 20 MiB for the large one), through CUDA's low-level `cuMemCreate`/`cuMemMap` calls. A
  segment then grows at its end instead of a new one starting elsewhere, so batches whose sizes change a
  little from step to step stop leaving slivers in many segments, and free pages can be unmapped even
  from the middle of a segment. In this mode the large pool splits any rest of 512 bytes or more. PyTorch's
  own out-of-memory message suggests it when reserved-but-unallocated memory is large. The simulator does
  not model it.
- **`garbage_collection_threshold:0.8`** (a fraction between 0 and 1): a gentler `empty_cache`. It acts only
  when a memory limit has been set with `torch.cuda.set_per_process_memory_fraction`. Then, whenever a new
  segment is needed while reserved memory exceeds the threshold times that limit, the allocator releases
  wholly free large-pool segments, those that have sat unused longest first, until it is back under the
  threshold, without the full synchronisation of `empty_cache`.
- `roundup_power2_divisions` rounds sizes up to one of a few evenly spaced steps between consecutive powers
  of two, so that more requests reuse the same blocks, and `backend:cudaMallocAsync` replaces this
  whole allocator with CUDA's own. The simulator models the default: the native allocator, none of these.

## Against the real thing, on a GPU

`torch.cuda.memory_stats()` returns the allocator's statistics under keys such as
`"allocated_bytes.all.current"`, `"reserved_bytes.all.peak"`, `"segment.large_pool.current"` and
`"num_alloc_retries"`; [`stats`][torchenstein.advanced.allocator.CachingAllocatorSimulator.stats] uses
the same keys. [`compare_with_cuda`][torchenstein.advanced.allocator.compare_with_cuda] replays a trace
with `torch.empty` on a GPU, on a fresh stream so no block cached by earlier work is reused, after
`torch.cuda.empty_cache()` and `torch.cuda.reset_peak_memory_stats()`, and returns the changes it saw in
`memory_stats` beside the simulator's numbers (it refuses to run with `expandable_segments` set).
`COMPARISON_TRACE` exercises both pools, best fit, both splitting rules, merging and `empty_cache`. Here is
the simulator's side; on a GPU the same doctest checks the other side too:

```pycon
>>> from torchenstein.advanced.allocator import COMPARISON_TRACE, compare_with_cuda
>>> sim = CachingAllocatorSimulator()
>>> _ = sim.replay(COMPARISON_TRACE)
>>> s = sim.stats()
>>> {key: s[key] for key in ("allocated_bytes.all.current", "reserved_bytes.all.current",
...                          "reserved_bytes.all.peak", "segment.all.current")}
{'allocated_bytes.all.current': 3846144, 'reserved_bytes.all.current': 44040192,
 'reserved_bytes.all.peak': 85983232, 'segment.all.current': 3}
>>> if torch.cuda.is_available():
...     numbers = compare_with_cuda()
...     assert numbers["simulator"] == numbers["cuda"], numbers

```

**Where it differs from PyTorch.** The simulator makes up its addresses (each segment starts where the
last one ended); `cudaMalloc` picks real ones. Addresses only matter to break ties between free blocks of
equal size in *different* segments, so a trace with such ties may be laid out differently on a GPU,
which is why `COMPARISON_TRACE` avoids them. It models one stream, no cross-stream events, no CUDA-graph
pools, and none of the options of the previous section except `max_split_size`; its peaks are taken
after each call, not inside one.

**Snapshots.** To see the real allocator at work, record its history and take a snapshot (these are
underscore-prefixed, semi-private APIs, present from PyTorch 2.1 on):

```python
torch.cuda.memory._record_memory_history(max_entries=100_000)   # start recording every alloc and free
train_a_few_steps()
snapshot = torch.cuda.memory._snapshot()                         # a dict: "segments", "device_traces"
torch.cuda.memory._dump_snapshot("snapshot.pickle")              # the same dict, pickled
torch.cuda.memory._record_memory_history(enabled=None)           # stop recording
```

`snapshot["segments"]` lists every segment with its `total_size`, `segment_type` (`"small"` or `"large"`)
and `blocks`, each with a `size`, a `requested_size` and a `state` (`"active_allocated"`, or `"inactive"`
when cached), the shape of the simulator's
[`snapshot`][torchenstein.advanced.allocator.CachingAllocatorSimulator.snapshot].
`snapshot["device_traces"]` holds the recorded events, with actions such as `"alloc"`, `"free_completed"`,
`"segment_alloc"`, `"segment_free"` and `"oom"`, each with the Python stack that caused it. Drag
`snapshot.pickle` onto the page [pytorch.org/memory_viz](https://pytorch.org/memory_viz) (the page reads the
file in your browser). Its *Active Memory Timeline* stacks every live tensor as a coloured band
over time, a training step's activations rising through the forward pass and melting away in the backward
pass, with the allocating stack trace under your mouse; *Active Cached Memory Timeline* adds the cached
blocks; *Allocator State History* draws the segments and their blocks event by event, the picture
`plot_segments` draws for the simulator.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `del` that frees nothing"
    Hammer runs out of memory, writes `del activations`, and is astonished that `memory_allocated` does
    not move. `del` removes a *name*; the block returns to the cache only when the *last* reference to the
    storage dies. His debugging list still holds the tensor, and a view of it (even one row) keeps the
    whole storage alive. The same happens on the CPU, where we can watch it:

    ```pycon
    >>> import weakref
    >>> x = torch.empty(1024, 1024)                  # 4 MiB of float32
    >>> history = [x]                                # "for debugging"
    >>> alive = weakref.ref(x)
    >>> del x
    >>> print("still alive after del:", alive() is not None)
    still alive after del: True
    >>> first_row = history.pop()[0]                 # the list is emptied, but a view is kept
    >>> print("view holds", first_row.untyped_storage().nbytes(), "bytes")
    view holds 4194304 bytes
    >>> kept = first_row.clone()                     # a copy owns only its own 4 KiB
    >>> del first_row
    >>> print("copy holds", kept.untyped_storage().nbytes(), "bytes")
    copy holds 4096 bytes

    ```

    Keep numbers, not tensors (`loss.item()`, not `loss`, in a running total, or the whole autograd graph
    stays too), and `clone()` the small piece you mean to keep.

!!! hammer "Dr. Hammer's trap: reading `nvidia-smi` as the model's memory"
    "My model needs 60 MiB," says Hammer, reading `nvidia-smi`. But `nvidia-smi` shows what the driver has
    given the whole *process*: every segment PyTorch reserved, holding tensors or not, plus the CUDA
    context (the runtime and every kernel it has loaded, which alone can outweigh a small model) and
    anything other libraries allocated outside PyTorch. After his training step the tensors are long gone:

    ```pycon
    >>> sim = CachingAllocatorSimulator()
    >>> _ = sim.replay(HAMMER_TRACE + [("free", name) for name in ("big", "out0", "out1", "out2", "out3",
    ...                                                             "out4", "out5", "out6", "out7")])
    >>> print(f"allocated {sim.memory_allocated() // MIB} MiB, reserved {sim.memory_reserved() // MIB} MiB")
    allocated 0 MiB, reserved 60 MiB

    ```

    Ask the allocator instead: `torch.cuda.memory_allocated()` and `torch.cuda.max_memory_allocated()` for
    the tensors, `torch.cuda.memory_reserved()` for the cache, `torch.cuda.memory_summary()` for the
    whole table. And do not sprinkle `empty_cache()` in the loop to make `nvidia-smi` look thin: it
    gives PyTorch no extra memory, and the next step pays `cudaMalloc` again.

!!! hammer "Dr. Hammer's trap: out of memory with memory to spare"
    On a small card Hammer runs his striped forward pass and asks for a 4 MiB tensor. The card has 12 MiB
    free and the cache 12 MiB more, yet the request fails: no hole is 4 MiB long, and a new segment would
    be 20 MiB. The message says *Tried to allocate 20.00 MiB* for his 4 MiB tensor: it reports the segment.

    ```pycon
    >>> forward = [step for i in range(4) for step in (("malloc", f"act{i}", 3 * MIB),
    ...                                                ("malloc", f"out{i}", 2 * MIB))]
    >>> forward += [("free", f"act{i}") for i in range(4)]
    >>> sim = CachingAllocatorSimulator(capacity=32 * MIB)
    >>> _ = sim.replay(forward)
    >>> print(sim.describe())
    large segment of 20.00 MiB: free 3.00 MiB | out0 2.00 MiB | free 3.00 MiB | out1 2.00 MiB | free 3.00 MiB | out2 2.00 MiB | free 3.00 MiB | out3 2.00 MiB
    >>> sim.malloc(4 * MIB)
    Traceback (most recent call last):
    ...
    torchenstein.advanced.allocator.SimulatedOutOfMemoryError: Simulated CUDA out of memory. Tried to
    allocate 20.00 MiB. The simulated GPU has a total capacity of 32.00 MiB of which 12.00 MiB is free. Of
    the allocated memory 8.00 MiB is allocated by PyTorch, and 12.00 MiB is reserved by PyTorch but
    unallocated.
    >>> s = sim.stats()
    >>> s["num_alloc_retries"], s["num_ooms"]
    (1, 1)

    ```

    The cure is to stop striping: allocate the tensors that live long together (here, the outputs
    first, or into one preallocated buffer), so the short-lived ones free one contiguous hole.

    ```pycon
    >>> tidy = [("malloc", f"out{i}", 2 * MIB) for i in range(4)]
    >>> tidy += [("malloc", f"act{i}", 3 * MIB) for i in range(4)] + [("free", f"act{i}") for i in range(4)]
    >>> sim = CachingAllocatorSimulator(capacity=32 * MIB)
    >>> _ = sim.replay(tidy + [("malloc", "new", 4 * MIB)])
    >>> print(sim.describe())
    large segment of 20.00 MiB: out0 2.00 MiB | out1 2.00 MiB | out2 2.00 MiB | out3 2.00 MiB | new 4.00 MiB | free 8.00 MiB

    ```

## Challenges

**1. Predict a fresh allocation.** Write `predict_fresh_allocation(shape, dtype)`: the bytes that
`memory_allocated` and `memory_reserved` grow by when `torch.empty(shape, dtype=dtype, device="cuda")`
runs on an allocator with nothing cached. Return `{"allocated_bytes": ..., "reserved_bytes": ...}`, both 0
for an empty tensor. Mind Rule 5 in the large pool.

**2. Fragment on purpose.** Write `fragmenting_trace()`: a trace (a list of steps as above) that ends with
`("empty_cache",)` and leaves at most 16 MiB allocated but at least 8 times as much reserved.

Check an attempt with `check_predict_fresh_allocation(my_function)` (or `check_fragmenting_trace`), or put
your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's
answers pass:

```pycon
>>> from torchenstein.advanced.allocator import (
...     check_fragmenting_trace, check_predict_fresh_allocation, fragmenting_trace, predict_fresh_allocation)
>>> check_predict_fresh_allocation(predict_fresh_allocation)
>>> check_fragmenting_trace(fragmenting_trace)

```
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

__all__ = [
    "LARGE_BUFFER",
    "MIN_BLOCK_SIZE",
    "MIN_LARGE_ALLOC",
    "ROUND_LARGE",
    "SMALL_BUFFER",
    "SMALL_SIZE",
    "COMPARISON_TRACE",
    "HAMMER_TRACE",
    "MIB",
    "CachingAllocatorSimulator",
    "SimulatedOutOfMemoryError",
    "check_fragmenting_trace",
    "check_predict_fresh_allocation",
    "compare_with_cuda",
    "format_size",
    "fragmenting_trace",
    "get_allocation_size",
    "plot_memory_timeline",
    "plot_segments",
    "pool_for",
    "predict_fresh_allocation",
    "round_size",
]

MIB = 1024 * 1024
"""One mebibyte, $2^{20}$ bytes: the allocator's constants are all multiples of it or of 512 bytes."""

# The six constants at the top of c10/cuda/CUDACachingAllocator.cpp, under Python names (the C++ names in
# the docstrings). Every rule of the allocator is built from them.
MIN_BLOCK_SIZE = 512
"""``kMinBlockSize``: every request is rounded up to a multiple of 512 bytes (and to at least 512)."""
SMALL_SIZE = 1 * MIB
"""``kSmallSize``: a rounded request of at most 1 MiB goes to the small pool, anything larger to the large pool."""
SMALL_BUFFER = 2 * MIB
"""``kSmallBuffer``: the small pool asks the driver for 2 MiB segments and packs small blocks into them."""
MIN_LARGE_ALLOC = 10 * MIB
"""``kMinLargeAlloc``: large requests under 10 MiB share a 20 MiB segment."""
LARGE_BUFFER = 20 * MIB
"""``kLargeBuffer``: the segment size for large requests under 10 MiB."""
ROUND_LARGE = 2 * MIB
"""``kRoundLarge``: requests of 10 MiB or more get a segment of their size rounded up to a multiple of 2 MiB."""


def round_size(size: int) -> int:
    """Round a request to the size of the block that serves it: a multiple of 512 bytes, at least 512.

    This is ``round_size`` in ``CUDACachingAllocator.cpp`` with its default configuration (no
    ``roundup_power2_divisions``).

    Args:
        size: the bytes asked for, a non-negative int.

    Returns:
        The block size in bytes.

    Raises:
        TypeError: if ``size`` is not an int.
        ValueError: if ``size`` is negative.

    Examples:
        >>> [round_size(n) for n in (1, 512, 513, 4000)]
        [512, 512, 1024, 4096]
        >>> round_size(-1)
        Traceback (most recent call last):
        ...
        ValueError: size must be a non-negative int (bytes), got -1
    """
    _check_size("size", size)
    if size < MIN_BLOCK_SIZE:
        return MIN_BLOCK_SIZE
    # Ceiling division: the smallest multiple of 512 that holds `size`.
    return MIN_BLOCK_SIZE * ((size + MIN_BLOCK_SIZE - 1) // MIN_BLOCK_SIZE)


def pool_for(size: int) -> str:
    """Name the pool a *rounded* request is served from: ``"small"`` up to 1 MiB, ``"large"`` above.

    Examples:
        >>> pool_for(round_size(1024 * 1024)), pool_for(round_size(1024 * 1024 + 1))
        ('small', 'large')
    """
    _check_size("size", size)
    return "small" if size <= SMALL_SIZE else "large"


def get_allocation_size(size: int) -> int:
    """The size of the segment ``cudaMalloc`` is asked for when no cached block fits a rounded request.

    Mirrors ``get_allocation_size`` in ``CUDACachingAllocator.cpp``: 2 MiB for the small pool, 20 MiB for
    large requests under 10 MiB, otherwise the request rounded up to a multiple of 2 MiB.

    Args:
        size: a request already rounded by [`round_size`][torchenstein.advanced.allocator.round_size].

    Examples:
        >>> [get_allocation_size(s) // MIB for s in (512, 2 * MIB, 10 * MIB, 10 * MIB + 512)]
        [2, 20, 10, 12]
    """
    _check_size("size", size)
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return ROUND_LARGE * ((size + ROUND_LARGE - 1) // ROUND_LARGE)


def format_size(size: int) -> str:
    """Write a byte count the way PyTorch's allocator does in its messages (``format_size`` in the C++).

    Examples:
        >>> format_size(512), format_size(1536), format_size(20 * MIB), format_size(3 * 1024 * MIB)
        ('512 bytes', '1.50 KiB', '20.00 MiB', '3.00 GiB')
    """
    if size <= 1024:
        return f"{size} bytes"
    if size <= MIB:
        return f"{size / 1024:.2f} KiB"
    if size <= 1024 * MIB:
        return f"{size / MIB:.2f} MiB"
    return f"{size / (1024 * MIB):.2f} GiB"


class SimulatedOutOfMemoryError(RuntimeError):
    """Raised by the simulator when a segment cannot be had even after the cache was emptied."""


@dataclass(eq=False)
class Block:
    """A piece of a segment: allocated to one request, or free and cached for the next."""

    address: int
    size: int
    segment: Segment
    allocated: bool = False
    requested_size: int = 0
    name: Hashable | None = None


@dataclass(eq=False)
class Segment:
    """One ``cudaMalloc``: a contiguous range of device memory, tiled by its blocks in address order."""

    address: int
    size: int
    pool: str
    blocks: list[Block] = field(default_factory=list)


# The statistics we keep, named as in torch.cuda.memory_stats(); each exists for the pools "all",
# "small_pool" and "large_pool", with a current value and a peak.
_POOL_STATS = (
    "allocation",
    "allocated_bytes",
    "active",
    "active_bytes",
    "inactive_split",
    "inactive_split_bytes",
    "requested_bytes",
    "reserved_bytes",
    "segment",
)
_COUNTERS = ("num_alloc_retries", "num_ooms", "num_device_alloc", "num_device_free")


class CachingAllocatorSimulator:
    r"""PyTorch's CUDA caching allocator, from scratch, for one device and one stream, with no GPU.

    It keeps the real allocator's rules: requests rounded by
    [`round_size`][torchenstein.advanced.allocator.round_size], a small and a large pool, segments sized by
    [`get_allocation_size`][torchenstein.advanced.allocator.get_allocation_size], best fit by (size,
    address), the splitting thresholds, merging of free neighbours, ``max_split_size``, the
    free-the-cache-and-retry path when ``cudaMalloc`` fails, and ``empty_cache`` releasing only wholly
    free segments. Addresses are made up: each new segment starts where the last one ended.

    Args:
        max_split_size: ``max_split_size_mb`` in bytes (at least 20 MiB, as PyTorch insists), or ``None``
            for PyTorch's default, no limit.
        capacity: the bytes ``cudaMalloc`` can hand out in all, or ``None`` for a device without end.

    Raises:
        TypeError: if an argument is not an int or ``None``.
        ValueError: if ``max_split_size`` is under 20 MiB or ``capacity`` is not positive.

    Examples:
        >>> sim = CachingAllocatorSimulator()
        >>> a = sim.malloc(1000)
        >>> sim.memory_allocated(), sim.memory_reserved()
        (1024, 2097152)
        >>> sim.free(a)
        >>> sim.memory_allocated(), sim.memory_reserved()
        (0, 2097152)
        >>> sim.empty_cache()
        >>> sim.memory_reserved()
        0
    """

    def __init__(self, *, max_split_size: int | None = None, capacity: int | None = None) -> None:
        self.max_split_size, self.capacity = _check_options(max_split_size, capacity)
        self.segments: list[Segment] = []
        self._handles: dict[int, Block | None] = {}
        self._next_handle = 0
        self._next_address = 0
        self._peaks: dict[str, int] = {}
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._live_ids: dict[Hashable, int] = {}

    # The public calls: what torch.empty and a tensor's death do, and empty_cache.

    def malloc(self, size: int, *, name: Hashable | None = None) -> int:
        """Allocate ``size`` bytes and return a handle for [`free`][torchenstein.advanced.allocator.CachingAllocatorSimulator.free].

        A request of 0 bytes gets a handle and no block: PyTorch's allocator does not call ``malloc`` for an
        empty tensor either.

        Args:
            size: bytes, a non-negative int.
            name: a label for the block in [`describe`][torchenstein.advanced.allocator.CachingAllocatorSimulator.describe]
                and the figures.

        Raises:
            SimulatedOutOfMemoryError: if no cached block fits and no segment can be had, even after the
                cache was emptied.

        Examples:
            >>> sim = CachingAllocatorSimulator()
            >>> _ = sim.malloc(3 * MIB, name="weights")
            >>> print(sim.describe())
            large segment of 20.00 MiB: weights 3.00 MiB | free 17.00 MiB
        """
        _check_size("size", size)
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        if size == 0:
            self._handles[handle] = None
            return handle
        rounded = round_size(size)
        pool = pool_for(rounded)
        # First the cache; only when nothing cached fits does the allocator go to the driver.
        block = self._get_free_block(rounded, pool)
        if block is None:
            block = self._alloc_new_segment(rounded, pool)
        # A block bigger than the request is cut in two when the rest is worth keeping.
        if self._should_split(block, rounded):
            self._split(block, rounded)
        block.allocated, block.requested_size, block.name = True, size, name
        self._handles[handle] = block
        self._update_peaks()
        return handle

    def free(self, handle: int) -> None:
        """Give a block back to the cache (not to the driver), merging it with free neighbours.

        Raises:
            ValueError: if ``handle`` is unknown or already freed.

        Examples:
            >>> sim = CachingAllocatorSimulator()
            >>> sim.free(7)
            Traceback (most recent call last):
            ...
            ValueError: handle must be a live handle returned by malloc, got 7
        """
        if isinstance(handle, bool) or not isinstance(handle, int) or handle not in self._handles:
            raise ValueError(f"handle must be a live handle returned by malloc, got {handle!r}")
        block = self._handles.pop(handle)
        if block is None:  # a 0-byte request owned nothing
            return
        block.allocated, block.requested_size, block.name = False, 0, None
        # Merge with the free neighbours in the same segment: the free block grows to swallow them, so a
        # segment whose blocks are all free becomes one free block again.
        blocks = block.segment.blocks
        i = blocks.index(block)
        if i + 1 < len(blocks) and not blocks[i + 1].allocated:
            block.size += blocks.pop(i + 1).size
        if i > 0 and not blocks[i - 1].allocated:
            before = blocks.pop(i - 1)
            block.address, block.size = before.address, before.size + block.size
        self._update_peaks()

    def empty_cache(self) -> None:
        """Return every wholly free segment to the driver, as ``torch.cuda.empty_cache()`` does.

        A segment that still holds one allocated block stays, however little of it is in use.

        Examples:
            >>> sim = CachingAllocatorSimulator()
            >>> keep, drop = sim.malloc(512), sim.malloc(5 * MIB)
            >>> sim.free(drop)
            >>> sim.empty_cache()
            >>> print(sim.describe())
            small segment of 2.00 MiB: #0 512 bytes | free 2.00 MiB
        """
        for segment in [s for s in self.segments if len(s.blocks) == 1 and not s.blocks[0].allocated]:
            self._release_segment(segment)

    def memory_allocated(self) -> int:
        """Bytes in blocks handed to tensors, like ``torch.cuda.memory_allocated()`` (rounded sizes)."""
        return sum(b.size for s in self.segments for b in s.blocks if b.allocated)

    def memory_reserved(self) -> int:
        """Bytes of all segments, like ``torch.cuda.memory_reserved()``: allocated plus cached."""
        return sum(s.size for s in self.segments)

    def stats(self) -> dict[str, int]:
        """The statistics, under the keys ``torch.cuda.memory_stats()`` uses for them.

        ``<stat>.<pool>.current`` and ``.peak`` for ``allocation``, ``allocated_bytes``, ``active``,
        ``active_bytes``, ``inactive_split``, ``inactive_split_bytes``, ``requested_bytes``,
        ``reserved_bytes`` and ``segment`` (pools ``all``, ``small_pool``, ``large_pool``);
        ``oversize_allocations`` and ``oversize_segments`` (``.current``, ``.peak``); and the counters
        ``num_alloc_retries``, ``num_ooms``, ``num_device_alloc`` (``cudaMalloc`` calls) and
        ``num_device_free`` (``cudaFree`` calls). With one stream and no events, ``active`` equals
        ``allocation``.

        Examples:
            >>> sim = CachingAllocatorSimulator()
            >>> _ = sim.malloc(300), sim.malloc(2 * MIB)
            >>> s = sim.stats()
            >>> s["segment.all.current"], s["segment.small_pool.current"], s["allocated_bytes.large_pool.current"]
            (2, 1, 2097152)
        """
        result = {}
        for key, value in self._current().items():
            result[f"{key}.current"] = value
            result[f"{key}.peak"] = self._peaks.get(key, 0)
        return {**dict(sorted(result.items())), **self._counters}

    def replay(self, trace: Iterable[Sequence[Any]]) -> list[tuple[int, int]]:
        """Run a trace of ``("malloc", id, size)``, ``("free", id)`` and ``("empty_cache",)`` steps.

        Args:
            trace: the steps; an ``id`` is any hashable label, unique among the live allocations.

        Returns:
            ``(memory_allocated, memory_reserved)`` after each step.

        Raises:
            ValueError: if a step is malformed, frees an id that is not live, or reuses a live id.

        Examples:
            >>> sim = CachingAllocatorSimulator()
            >>> sim.replay([("malloc", "x", 100), ("free", "x"), ("empty_cache",)])
            [(512, 2097152), (0, 2097152), (0, 0)]
            >>> sim.replay([("free", "ghost")])
            Traceback (most recent call last):
            ...
            ValueError: trace step 0 frees 'ghost', which is not a live allocation
        """
        live = self._live_ids
        timeline = []
        for i, step in enumerate(trace):
            kind, args = _check_step(i, step)
            if kind == "malloc":
                ident, size = args
                if ident in live:
                    raise ValueError(f"trace step {i} allocates {ident!r} again while it is still live")
                live[ident] = self.malloc(size, name=ident)
            elif kind == "free":
                if args[0] not in live:
                    raise ValueError(f"trace step {i} frees {args[0]!r}, which is not a live allocation")
                self.free(live.pop(args[0]))
            else:
                self.empty_cache()
            timeline.append((self.memory_allocated(), self.memory_reserved()))
        return timeline

    def snapshot(self) -> list[dict[str, Any]]:
        """The segments in the shape of ``torch.cuda.memory._snapshot()["segments"]`` (its main keys).

        Examples:
            >>> sim = CachingAllocatorSimulator()
            >>> _ = sim.malloc(1000)
            >>> segment = sim.snapshot()[0]
            >>> segment["segment_type"], segment["total_size"], [b["state"] for b in segment["blocks"]]
            ('small', 2097152, ['active_allocated', 'inactive'])
        """
        return [
            {
                "address": s.address,
                "total_size": s.size,
                "allocated_size": sum(b.size for b in s.blocks if b.allocated),
                "segment_type": s.pool,
                "blocks": [
                    {
                        "address": b.address,
                        "size": b.size,
                        "requested_size": b.requested_size,
                        "state": "active_allocated" if b.allocated else "inactive",
                    }
                    for b in s.blocks
                ],
            }
            for s in self.segments
        ]

    def describe(self) -> str:
        """One line per segment, its blocks in address order: a label and a size, or ``free`` and a size.

        A block without a name is labelled by its handle, ``#<handle>``. Sizes are written by
        [`format_size`][torchenstein.advanced.allocator.format_size], to two decimals as PyTorch writes
        them: 2 MiB less 512 bytes prints as ``2.00 MiB``.
        """
        labels = {id(b): (f"#{h}" if b.name is None else str(b.name)) for h, b in self._handles.items() if b}
        lines = []
        for s in self.segments:
            parts = [f"{labels[id(b)] if b.allocated else 'free'} {format_size(b.size)}" for b in s.blocks]
            lines.append(f"{s.pool} segment of {format_size(s.size)}: " + " | ".join(parts))
        return "\n".join(lines)

    # The machinery, in the order malloc uses it.

    def _get_free_block(self, size: int, pool: str) -> Block | None:
        # Best fit: the smallest free block of this pool that holds the request, the lowest address among
        # equals. PyTorch keeps free blocks in a std::set ordered by (stream, size, address) and finds this
        # one with lower_bound; a scan finds the same block.
        fits = [b for s in self.segments if s.pool == pool for b in s.blocks if not b.allocated and b.size >= size]
        if not fits:
            return None
        block = min(fits, key=lambda b: (b.size, b.address))
        limit = self.max_split_size
        if limit is not None:
            # Oversize blocks (max_split_size or more) never serve a smaller request, and serve a big one
            # only if they waste less than 20 MiB on it.
            if size < limit and block.size >= limit:
                return None
            if size >= limit and block.size >= size + LARGE_BUFFER:
                return None
        return block

    def _alloc_new_segment(self, size: int, pool: str) -> Block:
        alloc_size = get_allocation_size(size)
        # cudaMalloc, then on failure the two rescue attempts of the real allocator: release cached
        # oversize segments (only with max_split_size set), then every wholly free segment, and retry.
        block = self._cuda_malloc(alloc_size, pool)
        if block is None and self._release_available_cached_blocks(size, pool):
            block = self._cuda_malloc(alloc_size, pool)
        if block is None:
            self.empty_cache()
            self._counters["num_alloc_retries"] += 1
            block = self._cuda_malloc(alloc_size, pool)
        if block is None:
            self._counters["num_ooms"] += 1
            raise SimulatedOutOfMemoryError(self._oom_message(alloc_size))
        return block

    def _cuda_malloc(self, alloc_size: int, pool: str) -> Block | None:
        if self.capacity is not None and self.memory_reserved() + alloc_size > self.capacity:
            return None
        segment = Segment(self._next_address, alloc_size, pool)
        segment.blocks.append(Block(segment.address, alloc_size, segment))
        self._next_address += alloc_size
        self.segments.append(segment)
        self._counters["num_device_alloc"] += 1
        return segment.blocks[0]

    def _release_available_cached_blocks(self, size: int, pool: str) -> bool:
        # Free oversize cached segments, just enough of them for the request: the one smallest segment that
        # is big enough, or else the largest ones until their total is.
        if self.max_split_size is None:
            return False
        target = max(size, self.max_split_size)
        free = sorted(
            (b for s in self.segments if s.pool == pool for b in s.blocks if not b.allocated),
            key=lambda b: (b.size, b.address),
        )
        big_enough = [b for b in free if b.size >= target]
        if big_enough:
            self._release_segment(big_enough[0].segment)
            return True
        released = 0
        for block in reversed(free):
            if released >= target or block.size < self.max_split_size:
                break
            released += block.size
            self._release_segment(block.segment)
        return released >= target

    def _release_segment(self, segment: Segment) -> None:
        # cudaFree works on whole segments only: a segment goes back when its one block is free.
        assert len(segment.blocks) == 1 and not segment.blocks[0].allocated, "only whole free segments go back"
        self.segments.remove(segment)
        self._counters["num_device_free"] += 1

    def _should_split(self, block: Block, size: int) -> bool:
        remaining = block.size - size
        if block.segment.pool == "small":
            return remaining >= MIN_BLOCK_SIZE
        # The large pool keeps a remainder only if it is itself a large block (over 1 MiB), and never cuts
        # an oversize request.
        limit = self.max_split_size
        return (limit is None or size < limit) and remaining > SMALL_SIZE

    def _split(self, block: Block, size: int) -> None:
        # The request takes the front of the block; the rest becomes a free block right after it.
        rest = Block(block.address + size, block.size - size, block.segment)
        block.size = size
        blocks = block.segment.blocks
        blocks.insert(blocks.index(block) + 1, rest)

    # Statistics.

    def _current(self) -> dict[str, int]:
        current = {f"{name}.{pool}": 0 for name in _POOL_STATS for pool in ("all", "small_pool", "large_pool")}
        current["oversize_allocations"] = current["oversize_segments"] = 0
        limit = self.max_split_size

        def add(name: str, pool: str, amount: int) -> None:
            current[f"{name}.all"] += amount
            current[f"{name}.{pool}_pool"] += amount

        for s in self.segments:
            add("segment", s.pool, 1)
            add("reserved_bytes", s.pool, s.size)
            current["oversize_segments"] += limit is not None and s.size >= limit
            for b in s.blocks:
                if b.allocated:
                    for name, amount in (("allocation", 1), ("active", 1), ("allocated_bytes", b.size),
                                         ("active_bytes", b.size), ("requested_bytes", b.requested_size)):
                        add(name, s.pool, amount)
                    current["oversize_allocations"] += limit is not None and b.size >= limit
                elif len(s.blocks) > 1:
                    # A free block inside a split segment: cached, but empty_cache cannot release it.
                    add("inactive_split", s.pool, 1)
                    add("inactive_split_bytes", s.pool, b.size)
        return current

    def _update_peaks(self) -> None:
        for key, value in self._current().items():
            self._peaks[key] = max(self._peaks.get(key, 0), value)

    def _oom_message(self, alloc_size: int) -> str:
        allocated, reserved = self.memory_allocated(), self.memory_reserved()
        assert self.capacity is not None
        return (
            f"Simulated CUDA out of memory. Tried to allocate {format_size(alloc_size)}. The simulated GPU has "
            f"a total capacity of {format_size(self.capacity)} of which {format_size(self.capacity - reserved)} "
            f"is free. Of the allocated memory {format_size(allocated)} is allocated by PyTorch, and "
            f"{format_size(reserved - allocated)} is reserved by PyTorch but unallocated."
        )


# Pictures.

# Dr. Hammer's forward pass, the trace the figures draw by default: eight layers, each allocating a 3 MiB
# activation and a 2 MiB output; the activations are freed, the outputs kept, and a 6 MiB tensor follows.
HAMMER_TRACE: list[tuple[Any, ...]] = (
    [step for i in range(8) for step in (("malloc", f"act{i}", 3 * MIB), ("malloc", f"out{i}", 2 * MIB))]
    + [("free", f"act{i}") for i in range(8)]
    + [("malloc", "big", 6 * MIB), ("empty_cache",)]
)


def plot_segments(allocator: CachingAllocatorSimulator | None = None) -> Figure:
    """Draw each segment as a bar, its allocated blocks coloured and labelled, its free blocks pale.

    Args:
        allocator: the simulator to draw; by default one that has replayed Dr. Hammer's forward pass
            (``HAMMER_TRACE``: 3 MiB activations freed between kept 2 MiB outputs, then a 6 MiB tensor).

    Returns:
        A figure with one axis: one horizontal bar per segment, its length in MiB.

    Raises:
        TypeError: if ``allocator`` is not a ``CachingAllocatorSimulator``.

    Examples:
        >>> fig = plot_segments()
        >>> len(fig.axes)
        1
    """
    if allocator is None:
        allocator = CachingAllocatorSimulator()
        allocator.replay(HAMMER_TRACE)
    if not isinstance(allocator, CachingAllocatorSimulator):
        raise TypeError(f"allocator must be a CachingAllocatorSimulator or None, got {type(allocator).__name__}")
    labels = {id(b): b.name for b in allocator._handles.values() if b is not None}
    n = max(len(allocator.segments), 1)
    fig, (ax,) = new_figure(width=8.0, height=1.2 + 0.45 * n)
    for row, segment in enumerate(allocator.segments):
        for block in segment.blocks:
            start, width = (block.address - segment.address) / MIB, block.size / MIB
            colour = PALETTE[0] if block.allocated else "#e6e6e6"
            ax.barh(row, width, left=start, height=0.6, color=colour, edgecolor="#444444", linewidth=0.6)
            name = labels.get(id(block))
            if block.allocated and name is not None and width >= 1.0:
                ax.text(start + width / 2, row, str(name), ha="center", va="center", fontsize=7, color="white")
    ax.set_yticks(range(len(allocator.segments)),
                  [f"{s.pool} #{i}" for i, s in enumerate(allocator.segments)])
    ax.invert_yaxis()
    ax.set_xlabel("offset in the segment (MiB)")
    allocated, reserved = allocator.memory_allocated() / MIB, allocator.memory_reserved() / MIB
    ax.set_title(f"Segments: {allocated:.1f} MiB allocated (purple) of {reserved:.1f} MiB reserved")
    return fig


def plot_memory_timeline(trace: Sequence[Sequence[Any]] | None = None, *, max_split_size: int | None = None) -> Figure:
    """Replay a trace and draw ``memory_allocated`` and ``memory_reserved`` after every step.

    Args:
        trace: the steps to replay; by default Dr. Hammer's trace (see ``plot_segments``).
        max_split_size: passed to the simulator.

    Returns:
        A figure with one axis and two step lines, allocated and reserved, in MiB.

    Examples:
        >>> fig = plot_memory_timeline([("malloc", "a", 3 * MIB), ("free", "a")])
        >>> [line.get_label() for line in fig.axes[0].lines]
        ['memory_allocated', 'memory_reserved']
    """
    trace = HAMMER_TRACE if trace is None else trace
    timeline = CachingAllocatorSimulator(max_split_size=max_split_size).replay(trace)
    steps = range(1, len(timeline) + 1)
    fig, (ax,) = new_figure(width=7.0, height=3.2)
    ax.step(steps, [a / MIB for a, _ in timeline], where="post", label="memory_allocated")
    ax.step(steps, [r / MIB for _, r in timeline], where="post", label="memory_reserved")
    ax.set(xlabel="step of the trace", ylabel="MiB", title="Allocated by tensors vs reserved by the allocator")
    ax.legend(fontsize=8)
    return fig


# On a real GPU.

# A trace that exercises both pools, splitting, best fit, merging and empty_cache, with no two free blocks
# of equal size in different segments (where addresses break the tie, and ours are made up).
COMPARISON_TRACE: list[tuple[Any, ...]] = [
    ("malloc", "a", 1000),             # small pool: a 1 KiB block in a new 2 MiB segment
    ("malloc", "b", 300_000),          # small pool: the same segment, split again
    ("malloc", "c", 3 * MIB),          # large pool: a new 20 MiB segment, split 3 | 17
    ("malloc", "d", 5 * MIB),          # from the 17 MiB rest: 3 | 5 | 12
    ("malloc", "e", 11 * MIB),         # best fit, the 12 MiB rest; the 1 MiB left is not split off
    ("malloc", "f", 1_500_000),        # no free large block: a second 20 MiB segment
    ("free", "c"),                     # a 3 MiB hole at the front of the first
    ("malloc", "g", 2 * MIB + 4096),   # best fit, the 3 MiB hole, taken whole (the rest is under 1 MiB)
    ("free", "e"),                     # a 12 MiB free block inside a split segment
    ("malloc", "h", 700_000),          # small pool again
    ("free", "a"),
    ("free", "b"),                     # merges with a's block
    ("malloc", "i", 40 * MIB),         # a 40 MiB segment of its own
    ("free", "i"),
    ("empty_cache",),                  # releases the 40 MiB segment only; the others hold blocks
    ("free", "d"),
    ("free", "f"),                     # the second 20 MiB segment is wholly free again, and cached
]

_COMPARED_KEYS = (
    "allocation.all.current",
    "allocated_bytes.all.current",
    "allocated_bytes.all.peak",
    "reserved_bytes.all.current",
    "reserved_bytes.all.peak",
    "segment.all.current",
    "segment.small_pool.current",
    "segment.large_pool.current",
    "inactive_split.all.current",
    "num_alloc_retries",
)


def compare_with_cuda(
    trace: Sequence[Sequence[Any]] | None = None, device: torch.device | str | int | None = None
) -> dict[str, dict[str, int]]:
    """Replay a trace with ``torch.empty`` on a GPU and in the simulator, and return both sets of numbers.

    The GPU run allocates ``torch.uint8`` tensors of the trace's sizes on a fresh stream (so blocks cached
    by earlier work, which belong to other streams, are never reused), after ``torch.cuda.empty_cache()``
    and ``torch.cuda.reset_peak_memory_stats()``; its numbers are the changes in ``torch.cuda.memory_stats``
    over the run. The simulator uses the GPU's ``max_split_size``.

    Args:
        trace: ``("malloc", id, size)``, ``("free", id)`` and ``("empty_cache",)`` steps; by default
            ``COMPARISON_TRACE``.
        device: the CUDA device (default: the current one).

    Returns:
        ``{"simulator": {...}, "cuda": {...}}``, each with the same ``memory_stats`` keys: current
        allocations, allocated and reserved bytes (current and peak), segments (all, small and large pool),
        inactive split blocks and ``num_alloc_retries``.

    Raises:
        RuntimeError: without a CUDA device, or when the allocator is not PyTorch's native one with its
            default rounding and without expandable segments (the simulator models only that one).
    """
    if not torch.cuda.is_available():
        raise RuntimeError("compare_with_cuda needs a CUDA device, and torch.cuda.is_available() is False")
    trace = list(COMPARISON_TRACE if trace is None else trace)
    config = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "") + "," + os.environ.get("PYTORCH_ALLOC_CONF", "")
    flat = config.replace(" ", "").lower()
    unmodelled = ("expandable_segments:true", "roundup_power2_divisions", "max_non_split_rounding", "large_segment")
    if any(option in flat for option in unmodelled):
        raise RuntimeError(f"the simulator models the default allocator; unset these options first: {config!r}")
    device = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    torch.cuda.init()
    if torch.cuda.get_allocator_backend() != "native":
        raise RuntimeError(f"the simulator models the native allocator, not {torch.cuda.get_allocator_backend()!r}")
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_stats(device)
    # memory_stats reports max_split_size as -1 (or not at all) when it is unset.
    limit = before.get("max_split_size", -1)
    simulator = CachingAllocatorSimulator(max_split_size=limit if 0 < limit < 2**62 else None)
    simulator.replay(trace)
    stream = torch.cuda.Stream(device)
    tensors: dict[Hashable, torch.Tensor] = {}
    with torch.cuda.stream(stream):
        for i, step in enumerate(trace):
            kind, args = _check_step(i, step)
            if kind == "malloc":
                tensors[args[0]] = torch.empty(args[1], dtype=torch.uint8, device=device)
            elif kind == "free":
                # The last reference goes, the storage dies, and its block returns to the cache.
                del tensors[args[0]]
            else:
                torch.cuda.empty_cache()
    after = torch.cuda.memory_stats(device)
    # Expandable segments can also be switched on at run time, which no environment variable shows; the
    # snapshot marks such segments.
    ours_on_gpu = [s for s in torch.cuda.memory._snapshot()["segments"] if s.get("stream") == stream.cuda_stream]
    if any(s.get("is_expandable", False) for s in ours_on_gpu):
        raise RuntimeError("expandable segments are on; the simulator models the allocator without them")
    tensors.clear()
    torch.cuda.empty_cache()
    ours = simulator.stats()
    cuda = {}
    for key in _COMPARED_KEYS:
        # A peak is measured from the current value at the reset, so it too is a change.
        base = before.get(key.replace(".peak", ".current"), 0)
        cuda[key] = after.get(key, 0) - base
    return {"simulator": {key: ours[key] for key in _COMPARED_KEYS}, "cuda": cuda}


# Challenges.


def predict_fresh_allocation(shape: Sequence[int], dtype: torch.dtype) -> dict[str, int]:
    """Challenge solution: what ``torch.empty(shape, dtype=dtype, device="cuda")`` adds on a fresh allocator.

    Fresh means nothing is cached: the tensor gets a new segment. ``allocated_bytes`` is the block the
    tensor owns (rounded, and for the large pool the whole segment when the rest is 1 MiB or less);
    ``reserved_bytes`` is the segment.

    Args:
        shape: the tensor's shape.
        dtype: its dtype.

    Returns:
        ``{"allocated_bytes": ..., "reserved_bytes": ...}``; both 0 for an empty tensor.

    Examples:
        >>> predict_fresh_allocation((1000, 1000), torch.float32)
        {'allocated_bytes': 4000256, 'reserved_bytes': 20971520}
    """
    nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    if nbytes == 0:
        return {"allocated_bytes": 0, "reserved_bytes": 0}
    size = round_size(nbytes)
    segment = get_allocation_size(size)
    rest = segment - size
    # The small pool splits off any rest of 512 bytes or more (always, in a 2 MiB segment); the large
    # pool only a rest over 1 MiB, otherwise the tensor's block is the whole segment.
    split = rest >= MIN_BLOCK_SIZE if size <= SMALL_SIZE else rest > SMALL_SIZE
    return {"allocated_bytes": size if split else segment, "reserved_bytes": segment}


def check_predict_fresh_allocation(candidate: Callable[[Sequence[int], torch.dtype], dict[str, int]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``predict_fresh_allocation``.

    Every case is compared with a fresh ``CachingAllocatorSimulator``.

    Examples:
        >>> check_predict_fresh_allocation(predict_fresh_allocation)
    """
    cases = [((0,), torch.float32), ((1,), torch.bool), ((3,), torch.float16), ((128,), torch.float32),
             ((256, 1024), torch.float32), ((512, 512), torch.float32), ((262_145,), torch.float32),
             ((1000, 1000), torch.float32), ((5, 1024, 1024), torch.float16), ((11, 1024, 1024), torch.uint8),
             ((10, 1024, 1024), torch.uint8), ((3, 1024, 1024), torch.float64), ((7, 1000, 1001), torch.int8)]
    for shape, dtype in cases:
        nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        sim = CachingAllocatorSimulator()
        sim.malloc(nbytes)
        expected = {"allocated_bytes": sim.memory_allocated(), "reserved_bytes": sim.memory_reserved()}
        got = candidate(shape, dtype)
        assert got == expected, (
            f"predict_fresh_allocation({shape}, {dtype}) = {got}, expected {expected} ({nbytes} bytes requested): "
            "round to 512 bytes, pick the pool (1 MiB or less is small), size the segment (2 MiB, 20 MiB, or a "
            "multiple of 2 MiB from 10 MiB up), and split only a rest the pool keeps (large pool: over 1 MiB)"
        )


def fragmenting_trace() -> list[tuple[Any, ...]]:
    """Challenge solution: a trace whose live tensors hold at most 16 MiB but keep 8 times as much reserved.

    Ten 2 MiB tensors fill each 20 MiB segment; freeing all but one of each ten leaves every segment pinned
    by a single tensor, and ``empty_cache`` can release none of them.

    Examples:
        >>> sim = CachingAllocatorSimulator()
        >>> allocated, reserved = sim.replay(fragmenting_trace())[-1]
        >>> allocated // MIB, reserved // MIB
        (16, 160)
    """
    trace: list[tuple[Any, ...]] = [("malloc", i, 2 * MIB) for i in range(80)]
    trace += [("free", i) for i in range(80) if i % 10 != 0]
    return [*trace, ("empty_cache",)]


def check_fragmenting_trace(candidate: Callable[[], Sequence[Sequence[Any]]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate()`` is not a valid fragmenting trace.

    The trace must be well formed, end with ``("empty_cache",)``, leave at most 16 MiB allocated, and leave
    at least 8 times as much reserved as allocated (and something allocated).

    Examples:
        >>> check_fragmenting_trace(fragmenting_trace)
    """
    trace = list(candidate())
    assert trace and tuple(trace[-1]) == ("empty_cache",), "the trace must end with ('empty_cache',)"
    try:
        allocated, reserved = CachingAllocatorSimulator().replay(trace)[-1]
    except (ValueError, TypeError) as error:
        raise AssertionError(f"the trace is not well formed: {error}") from error
    assert 0 < allocated <= 16 * MIB, (
        f"at the end {format_size(allocated)} is allocated; it must be more than 0 and at most 16 MiB"
    )
    assert reserved >= 8 * allocated, (
        f"at the end {format_size(reserved)} is reserved for {format_size(allocated)} allocated: only "
        f"{reserved / allocated:.1f} times as much, not 8; pin each segment with one small live block"
    )


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (bytes), got {value!r} of type {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int (bytes), got {value}")


def _check_options(max_split_size: object, capacity: object) -> tuple[int | None, int | None]:
    for name, value in (("max_split_size", max_split_size), ("capacity", capacity)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int (bytes) or None, got {value!r} of type {type(value).__name__}")
    if max_split_size is not None and max_split_size < LARGE_BUFFER:
        raise ValueError(f"max_split_size must be at least 20 MiB ({LARGE_BUFFER} bytes) or None, got {max_split_size}")
    if capacity is not None and capacity < 1:
        raise ValueError(f"capacity must be a positive int (bytes) or None, got {capacity}")
    return max_split_size, capacity  # type: ignore[return-value]


def _check_step(i: int, step: object) -> tuple[str, tuple[Any, ...]]:
    expected = "('malloc', id, size), ('free', id) or ('empty_cache',)"
    if not isinstance(step, (tuple, list)) or not step:
        raise ValueError(f"trace step {i} must be {expected}, got {step!r}")
    kind, *args = step
    arity = {"malloc": 2, "free": 1, "empty_cache": 0}.get(kind) if isinstance(kind, str) else None
    if arity is None or len(args) != arity:
        raise ValueError(f"trace step {i} must be {expected}, got {tuple(step)!r}")
    if kind == "malloc":
        _check_size(f"the size in trace step {i}", args[1])
    if args and not isinstance(args[0], Hashable):
        raise ValueError(f"trace step {i} has an unhashable id {args[0]!r}")
    return kind, tuple(args)
