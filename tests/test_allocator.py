"""Proofs for the CUDA caching allocator lesson: the simulator against the rules of CUDACachingAllocator.cpp
(on the CPU), its invariants on random traces, and against the real allocator where a GPU is present."""

import inspect
import random
import re
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.advanced.allocator import (
    COMPARISON_TRACE,
    HAMMER_TRACE,
    LARGE_BUFFER,
    MIB,
    MIN_BLOCK_SIZE,
    MIN_LARGE_ALLOC,
    ROUND_LARGE,
    SMALL_BUFFER,
    SMALL_SIZE,
    CachingAllocatorSimulator,
    SimulatedOutOfMemoryError,
    check_fragmenting_trace,
    check_predict_fresh_allocation,
    compare_with_cuda,
    format_size,
    fragmenting_trace,
    get_allocation_size,
    plot_memory_timeline,
    plot_segments,
    pool_for,
    predict_fresh_allocation,
    round_size,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _layout(sim):
    """Each segment as (pool, size, [(block size, allocated), ...]), in address order."""
    return [(s.pool, s.size, [(b.size, b.allocated) for b in s.blocks]) for s in sim.segments]


def _check_invariants(sim, live_requests):
    """Everything the lesson says must always hold, checked on the simulator's whole state."""
    segments = sorted(sim.segments, key=lambda s: s.address)
    for before, after in zip(segments, segments[1:], strict=False):
        assert before.address + before.size <= after.address, "segments overlap"
    allocated_blocks = {}
    for s in segments:
        assert s.blocks, "a segment without blocks"
        # The blocks tile the segment exactly: contiguous, in address order, sizes summing to the segment.
        assert s.blocks[0].address == s.address
        for a, b in zip(s.blocks, s.blocks[1:], strict=False):
            assert a.address + a.size == b.address, "a gap or an overlap between blocks"
            assert a.allocated or b.allocated, "two free neighbours were not merged"
        assert sum(b.size for b in s.blocks) == s.size
        for b in s.blocks:
            assert b.segment is s and b.size >= MIN_BLOCK_SIZE and b.size % MIN_BLOCK_SIZE == 0
            if b.allocated:
                allocated_blocks[id(b)] = b
    # Every live request owns one block of its pool, at least its rounded size, and no more than the
    # splitting rules allow.
    assert len(allocated_blocks) == sum(1 for n in live_requests.values() if n > 0)
    for handle, requested in live_requests.items():
        block = sim._handles[handle]
        if requested == 0:
            assert block is None
            continue
        size = round_size(requested)
        assert block.requested_size == requested and block.segment.pool == pool_for(size) and block.size >= size
        limit = sim.max_split_size
        if pool_for(size) == "small":
            assert block.size == size
        elif limit is None or size < limit:
            assert block.size - size <= SMALL_SIZE
        else:
            assert block.size - size < LARGE_BUFFER
    allocated, reserved = sim.memory_allocated(), sim.memory_reserved()
    assert 0 <= allocated <= reserved
    stats = sim.stats()
    assert stats["allocated_bytes.all.current"] == allocated and stats["reserved_bytes.all.current"] == reserved
    assert stats["segment.all.current"] == len(segments)
    for name in ("allocation", "allocated_bytes", "reserved_bytes", "segment", "inactive_split"):
        assert stats[f"{name}.all.current"] == stats[f"{name}.small_pool.current"] + stats[f"{name}.large_pool.current"]
        assert stats[f"{name}.all.peak"] >= stats[f"{name}.all.current"]
    assert stats["num_device_alloc"] - stats["num_device_free"] == len(segments)


def _random_trace(rng, steps, big=False):
    """A random program: allocations of small, medium and large sizes, frees, now and then an empty_cache."""
    trace, live, next_id = [], [], 0
    for _ in range(steps):
        r = rng.random()
        if live and r < 0.4:
            trace.append(("free", live.pop(rng.randrange(len(live)))))
        elif r < 0.43:
            trace.append(("empty_cache",))
        else:
            kind = rng.random()
            if kind < 0.45:
                size = rng.randint(0, SMALL_SIZE)
            elif kind < 0.9 or not big:
                size = rng.randint(SMALL_SIZE + 1, 12 * MIB)
            else:
                size = rng.randint(12 * MIB, 70 * MIB)
            trace.append(("malloc", next_id, size))
            live.append(next_id)
            next_id += 1
    return trace, live


def _run_checked(sim, trace):
    live_requests, by_id = {}, {}
    for step in trace:
        if step[0] == "free" and step[1] not in by_id:  # its malloc ran out of memory
            continue
        try:
            sim.replay([step])
        except SimulatedOutOfMemoryError:
            continue
        if step[0] == "malloc":
            by_id[step[1]] = sim._live_ids[step[1]]
            live_requests[by_id[step[1]]] = step[2]
        elif step[0] == "free":
            live_requests.pop(by_id.pop(step[1]))
        _check_invariants(sim, live_requests)
    return by_id


# The constants and the three size rules.


def test_constants_are_the_cpp_ones():
    assert (MIN_BLOCK_SIZE, SMALL_SIZE, SMALL_BUFFER) == (512, 1048576, 2097152)
    assert (MIN_LARGE_ALLOC, LARGE_BUFFER, ROUND_LARGE) == (10485760, 20971520, 2097152)


@pytest.mark.parametrize(
    ("size", "expected"),
    [(0, 512), (1, 512), (511, 512), (512, 512), (513, 1024), (1024, 1024), (1025, 1536),
     (SMALL_SIZE, SMALL_SIZE), (SMALL_SIZE + 1, SMALL_SIZE + 512), (10**9 + 1, 10**9 + 512)],
)
def test_round_size(size, expected):
    assert round_size(size) == expected


def test_round_size_is_the_next_multiple_of_512():
    rng = random.Random(0)
    for size in [*range(0, 2049), *(rng.randrange(2**40) for _ in range(500))]:
        rounded = round_size(size)
        assert rounded % 512 == 0 and rounded >= max(size, 512)
        assert rounded - size < 512 or rounded == 512


@pytest.mark.parametrize(
    ("size", "pool", "segment"),
    [(512, "small", SMALL_BUFFER), (SMALL_SIZE, "small", SMALL_BUFFER), (SMALL_SIZE + 512, "large", LARGE_BUFFER),
     (MIN_LARGE_ALLOC - 512, "large", LARGE_BUFFER), (MIN_LARGE_ALLOC, "large", 10 * MIB),
     (MIN_LARGE_ALLOC + 512, "large", 12 * MIB), (12 * MIB, "large", 12 * MIB), (21 * MIB, "large", 22 * MIB),
     (100 * MIB + 512, "large", 102 * MIB)],
)
def test_pool_and_segment_size(size, pool, segment):
    assert pool_for(size) == pool
    assert get_allocation_size(size) == segment
    sim = CachingAllocatorSimulator()
    sim.malloc(size)
    assert sim.memory_reserved() == segment and sim.segments[0].pool == pool
    assert sim.stats()[f"segment.{pool}_pool.current"] == 1


def test_format_size_matches_the_cpp_boundaries():
    assert [format_size(n) for n in (0, 1024, 1025, MIB, MIB + 1, 1024 * MIB, 1024 * MIB + 1)] == [
        "0 bytes", "1024 bytes", "1.00 KiB", "1024.00 KiB", "1.00 MiB", "1024.00 MiB", "1.00 GiB"]


# Best fit, splitting, merging, the cache.


def test_best_fit_takes_the_smallest_block_then_the_lowest_address():
    sim = CachingAllocatorSimulator()
    h = [sim.malloc(n * MIB) for n in (4, 2, 3, 2, 4, 2)]  # one 20 MiB segment: 4 2 3 2 4 2 | free 3
    for i in (0, 2, 4):
        sim.free(h[i])  # holes of 4, 3 and 4 MiB, and a 3 MiB tail
    first_hole, second_hole = sim.segments[0].blocks[0], sim.segments[0].blocks[4]
    x = sim.malloc(3 * MIB + 512)  # fits only the 4 MiB holes: the lower address wins
    assert sim._handles[x] is first_hole and first_hole.address == 0
    y = sim.malloc(3 * MIB + 512)
    assert sim._handles[y] is second_hole
    z = sim.malloc(5 * MIB // 2)  # fits the two 3 MiB blocks: the middle hole comes before the tail
    assert sim._handles[z].address == 6 * MIB
    # Best fit also looks across segments: a second segment with a 2.5 MiB hole wins over a 3 MiB one.
    sim2 = CachingAllocatorSimulator()
    a, _ = sim2.malloc(3 * MIB), sim2.malloc(17 * MIB)
    b, _ = sim2.malloc(5 * MIB // 2), sim2.malloc(17 * MIB + MIB // 2)
    sim2.free(a)
    sim2.free(b)
    assert sim2._handles[sim2.malloc(2 * MIB)].segment is sim2.segments[1]


def test_small_pool_splits_any_rest_of_512_bytes():
    sim = CachingAllocatorSimulator()
    sim.malloc(SMALL_SIZE)
    sim.malloc(SMALL_SIZE - 1024)  # leaves exactly 1024 bytes
    sim.malloc(512)
    assert _layout(sim) == [("small", SMALL_BUFFER, [(SMALL_SIZE, True), (SMALL_SIZE - 1024, True), (512, True),
                                                      (512, False)])]
    sim.malloc(1)
    assert [b.size for b in sim.segments[0].blocks][-1] == 512 and sim.memory_allocated() == SMALL_BUFFER


def test_large_pool_splits_only_a_rest_over_1_mib():
    sim = CachingAllocatorSimulator()
    sim.malloc(19 * MIB)  # a 20 MiB segment, rest exactly 1 MiB: not split
    assert _layout(sim) == [("large", LARGE_BUFFER, [(LARGE_BUFFER, True)])]
    assert sim.memory_allocated() == LARGE_BUFFER and sim.stats()["requested_bytes.all.current"] == 19 * MIB
    sim = CachingAllocatorSimulator()
    sim.malloc(19 * MIB - 512)  # rest 1 MiB + 512: split
    assert _layout(sim) == [("large", LARGE_BUFFER, [(19 * MIB - 512, True), (MIB + 512, False)])]
    sim = CachingAllocatorSimulator()
    sim.malloc(11 * MIB)  # a fresh 12 MiB segment, rest 1 MiB: the tensor owns 12 MiB
    assert sim.memory_allocated() == sim.memory_reserved() == 12 * MIB


def test_merging_on_free_both_sides():
    sim = CachingAllocatorSimulator()
    h = [sim.malloc(2 * MIB) for _ in range(5)]
    sim.free(h[1])
    sim.free(h[3])
    assert [b.allocated for b in sim.segments[0].blocks] == [True, False, True, False, True, False]
    sim.free(h[2])  # merges with both neighbours
    assert [(b.size, b.allocated) for b in sim.segments[0].blocks] == [
        (2 * MIB, True), (6 * MIB, False), (2 * MIB, True), (10 * MIB, False)]
    sim.free(h[4])
    sim.free(h[0])
    assert _layout(sim) == [("large", LARGE_BUFFER, [(LARGE_BUFFER, False)])]
    assert sim.stats()["inactive_split.all.current"] == 0


def test_cache_keeps_freed_blocks_and_empty_cache_releases_only_whole_segments():
    sim = CachingAllocatorSimulator()
    small = [sim.malloc(1000) for _ in range(3)]
    large = [sim.malloc(3 * MIB), sim.malloc(18 * MIB), sim.malloc(40 * MIB)]  # 18 MiB: not in the 17 MiB rest
    assert sim.stats()["segment.all.current"] == 4
    for handle in large[1:] + small[:2]:
        sim.free(handle)
    assert sim.memory_reserved() == SMALL_BUFFER + LARGE_BUFFER + 18 * MIB + 40 * MIB
    again = sim.malloc(18 * MIB)  # reuses the cached 18 MiB segment: no new cudaMalloc
    assert sim.stats()["num_device_alloc"] == 4
    sim.free(again)
    sim.empty_cache()
    assert sim.memory_reserved() == SMALL_BUFFER + LARGE_BUFFER  # both still hold a live block
    assert sim.stats()["num_device_free"] == 2
    for handle in (small[2], large[0]):
        sim.free(handle)
    sim.empty_cache()
    assert sim.memory_reserved() == 0 and sim.segments == []


def test_zero_byte_requests_own_nothing():
    sim = CachingAllocatorSimulator()
    h = sim.malloc(0)
    assert sim.memory_reserved() == 0 and sim.stats()["allocation.all.current"] == 0
    sim.free(h)
    with pytest.raises(ValueError, match="handle must be a live handle returned by malloc, got 0"):
        sim.free(h)


def test_fragmentation_reserved_far_above_allocated():
    sim = CachingAllocatorSimulator()
    timeline = sim.replay(HAMMER_TRACE)
    allocated, reserved = timeline[-1]
    assert (allocated, reserved) == (22 * MIB, 60 * MIB)
    assert sim.stats()["inactive_split_bytes.all.current"] == 38 * MIB
    allocated, reserved = CachingAllocatorSimulator().replay(fragmenting_trace())[-1]
    assert reserved == 10 * allocated


def test_peaks_are_the_maxima_of_the_timeline():
    sim = CachingAllocatorSimulator()
    timeline = sim.replay(COMPARISON_TRACE)
    stats = sim.stats()
    assert stats["allocated_bytes.all.peak"] == max(a for a, _ in timeline)
    assert stats["reserved_bytes.all.peak"] == max(r for _, r in timeline)


# max_split_size and the out-of-memory path.


def test_max_split_size_oversize_blocks():
    limit = 32 * MIB
    sim = CachingAllocatorSimulator(max_split_size=limit)
    sim.free(sim.malloc(40 * MIB))
    small = sim.malloc(25 * MIB)  # an oversize cached block never serves a smaller request
    assert len(sim.segments) == 2 and sim._handles[small].segment.size == 26 * MIB
    big = sim.malloc(36 * MIB)  # serves a big one (40 < 36 + 20), unsplit
    assert sim._handles[big].size == 40 * MIB and len(sim.segments) == 2
    stats = sim.stats()
    assert stats["oversize_allocations.current"] == 1 and stats["oversize_segments.current"] == 1
    sim.free(big)
    sim.malloc(limit)  # 40 >= 32 + 20 is false: reused
    assert len(sim.segments) == 2
    sim = CachingAllocatorSimulator(max_split_size=limit)
    sim.free(sim.malloc(60 * MIB))
    sim.malloc(36 * MIB)  # 60 >= 36 + 20: not reused, a new 36 MiB segment
    assert [s.size for s in sim.segments] == [60 * MIB, 36 * MIB]
    # Without the option the same request splits the 60 MiB block.
    sim = CachingAllocatorSimulator()
    sim.free(sim.malloc(60 * MIB))
    sim.malloc(36 * MIB)
    assert _layout(sim) == [("large", 60 * MIB, [(36 * MIB, True), (24 * MIB, False)])]


def test_out_of_memory_releases_the_cache_and_retries():
    sim = CachingAllocatorSimulator(capacity=40 * MIB)
    sim.free(sim.malloc(5 * MIB))
    sim.malloc(30 * MIB)
    stats = sim.stats()
    assert (stats["num_alloc_retries"], stats["num_device_free"], stats["num_ooms"]) == (1, 1, 0)
    with pytest.raises(SimulatedOutOfMemoryError, match=r"Tried to allocate 20.00 MiB\. .* 10.00 MiB is free"):
        sim.malloc(3 * MIB)
    stats = sim.stats()
    assert (stats["num_alloc_retries"], stats["num_ooms"]) == (2, 1)
    assert sim.memory_reserved() == 30 * MIB  # the failed request left nothing behind


def test_out_of_memory_with_max_split_size_frees_oversize_blocks_first():
    limit = 32 * MIB
    sim = CachingAllocatorSimulator(max_split_size=limit, capacity=100 * MIB)
    for h in [sim.malloc(34 * MIB), sim.malloc(36 * MIB)]:
        sim.free(h)
    sim.malloc(19 * MIB)  # a whole 20 MiB segment: 90 MiB reserved in all, nothing free but oversize blocks
    sim.malloc(12 * MIB)  # a new 12 MiB segment: the smallest oversize segment of at least 32 MiB goes, no retry
    assert sorted(s.size for s in sim.segments) == [12 * MIB, LARGE_BUFFER, 36 * MIB]
    assert sim.stats()["num_alloc_retries"] == 0
    # No single oversize block is big enough: the largest are released until the total is.
    sim = CachingAllocatorSimulator(max_split_size=limit, capacity=120 * MIB)
    for h in [sim.malloc(34 * MIB), sim.malloc(36 * MIB), sim.malloc(38 * MIB)]:
        sim.free(h)
    sim.malloc(44 * MIB)
    assert sorted(s.size for s in sim.segments) == [34 * MIB, 44 * MIB]
    assert sim.stats()["num_alloc_retries"] == 0


# The invariants, on random traces.


@pytest.mark.parametrize(
    ("seed", "options"),
    [(0, {}), (1, {}), (2, {"max_split_size": 24 * MIB}), (3, {"capacity": 128 * MIB}),
     (4, {"max_split_size": 20 * MIB, "capacity": 160 * MIB})],
)
def test_random_traces_keep_the_invariants(seed, options):
    rng = random.Random(seed)
    trace, live = _random_trace(rng, 250, big=True)
    sim = CachingAllocatorSimulator(**options)
    by_id = _run_checked(sim, trace)
    # Free everything and empty the cache: back to nothing.
    for ident in live:
        if ident in by_id:
            sim.replay([("free", ident)])
    sim.empty_cache()
    stats = sim.stats()
    assert sim.memory_reserved() == sim.memory_allocated() == 0 and stats["segment.all.current"] == 0
    assert stats["num_device_alloc"] == stats["num_device_free"]


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 60))
def test_random_traces_hypothesis(seed, steps):
    trace, live = _random_trace(random.Random(seed), steps)
    sim = CachingAllocatorSimulator()
    _run_checked(sim, trace)
    sim.replay([("free", ident) for ident in live] + [("empty_cache",)])
    assert sim.memory_reserved() == 0 and sim.segments == []


# Replay, snapshots, statistics, errors.


def test_stats_keys_are_memory_stats_keys():
    stats = CachingAllocatorSimulator().stats()
    # memory_stats documents its keys, and memory_summary reads them (its docs call "allocation" "allocated").
    known = torch.cuda.memory_stats.__doc__ + inspect.getsource(torch.cuda.memory_summary)
    for key in stats:
        name = key.split(".")[0]
        assert f'"{name}' in known, f"{name} is not a torch.cuda.memory_stats statistic"
    assert {"allocated_bytes.all.current", "reserved_bytes.all.current", "segment.all.current",
            "num_alloc_retries"} <= set(stats)


def test_snapshot_has_the_torch_shape():
    sim = CachingAllocatorSimulator()
    sim.replay(COMPARISON_TRACE)
    snapshot = sim.snapshot()
    assert [s["segment_type"] for s in snapshot] == ["small", "large", "large"]
    for segment in snapshot:
        assert segment["total_size"] == sum(b["size"] for b in segment["blocks"])
        assert segment["allocated_size"] == sum(b["size"] for b in segment["blocks"] if b["state"] == "active_allocated")
        assert {b["state"] for b in segment["blocks"]} <= {"active_allocated", "inactive"}


@pytest.mark.parametrize(
    ("trace", "match"),
    [([("malloc", "a")], r"trace step 0 must be \('malloc', id, size\), \('free', id\) or \('empty_cache',\), got \('malloc', 'a'\)"),
     ([("alloc", "a", 3)], r"got \('alloc', 'a', 3\)"),
     (["free"], r"trace step 0 must be .*got 'free'"),
     ([()], r"trace step 0 must be .*got \(\)"),
     ([("malloc", "a", 1), ("malloc", "a", 2)], "trace step 1 allocates 'a' again while it is still live"),
     ([("free", "a")], "trace step 0 frees 'a', which is not a live allocation"),
     ([("malloc", "a", -1)], r"the size in trace step 0 must be a non-negative int \(bytes\), got -1"),
     ([("malloc", ["a"], 1)], r"trace step 0 has an unhashable id \['a'\]"),
     ([(["malloc"], "a", 1)], r"trace step 0 must be")],
)
def test_replay_rejects_bad_traces(trace, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CachingAllocatorSimulator().replay(trace)


def test_argument_errors():
    with pytest.raises(TypeError, match=r"size must be an int \(bytes\), got 1.5 of type float"):
        round_size(1.5)
    with pytest.raises(TypeError, match="size must be an int"):
        CachingAllocatorSimulator().malloc(True)
    with pytest.raises(ValueError, match=r"max_split_size must be at least 20 MiB \(20971520 bytes\) or None, got 1024"):
        CachingAllocatorSimulator(max_split_size=1024)
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        CachingAllocatorSimulator(capacity=0)
    with pytest.raises(TypeError, match="capacity must be an int"):
        CachingAllocatorSimulator(capacity=1e9)
    with pytest.raises(ValueError, match="handle must be a live handle returned by malloc, got 'x'"):
        CachingAllocatorSimulator().free("x")


# Figures.


def test_figures():
    sim = CachingAllocatorSimulator()
    sim.replay(HAMMER_TRACE)
    fig = plot_segments(sim)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].patches) == sum(len(s.blocks) for s in sim.segments)
    assert isinstance(plot_segments(), Figure)
    fig = plot_memory_timeline()
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["memory_allocated", "memory_reserved"]
    assert len(lines[0].get_xdata()) == len(HAMMER_TRACE)
    with pytest.raises(TypeError, match="allocator must be a CachingAllocatorSimulator or None, got dict"):
        plot_segments({})


# Dr. Hammer's traps.


def test_del_frees_nothing_while_a_reference_remains():
    x = torch.empty(256, 256)
    history = [x]
    alive = weakref.ref(x)
    del x
    assert alive() is not None
    row = history.pop()[0]
    assert row._base is alive()  # a view keeps its base tensor, and with it the whole storage, alive
    assert row.untyped_storage().nbytes() == 256 * 256 * 4 and row.clone().untyped_storage().nbytes() == 1024


@needs_cuda
def test_del_frees_nothing_on_cuda_while_a_reference_remains():
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    x = torch.empty(1024, 1024, device="cuda")
    history = [x]
    del x
    assert torch.cuda.memory_allocated() - before == 4 * MIB
    row = history.pop()[0]
    assert torch.cuda.memory_allocated() - before == 4 * MIB
    del row
    assert torch.cuda.memory_allocated() == before


def test_oom_trap_and_its_cure():
    forward = [step for i in range(4) for step in (("malloc", f"act{i}", 3 * MIB), ("malloc", f"out{i}", 2 * MIB))]
    forward += [("free", f"act{i}") for i in range(4)]
    sim = CachingAllocatorSimulator(capacity=32 * MIB)
    sim.replay(forward)
    with pytest.raises(SimulatedOutOfMemoryError, match="12.00 MiB is reserved by PyTorch but unallocated"):
        sim.malloc(4 * MIB)
    sim.malloc(3 * MIB)  # a hole of exactly 3 MiB still serves a 3 MiB tensor
    tidy = [("malloc", f"out{i}", 2 * MIB) for i in range(4)]
    tidy += [("malloc", f"act{i}", 3 * MIB) for i in range(4)] + [("free", f"act{i}") for i in range(4)]
    sim = CachingAllocatorSimulator(capacity=32 * MIB)
    sim.replay(tidy + [("malloc", "new", 12 * MIB)])
    assert len(sim.segments) == 1


# Challenges.


def test_predict_fresh_allocation_solution_passes_and_wrong_attempts_fail():
    assert check_predict_fresh_allocation(predict_fresh_allocation) is None
    assert predict_fresh_allocation((0, 5), torch.float32) == {"allocated_bytes": 0, "reserved_bytes": 0}

    def no_rounding(shape, dtype):
        got = predict_fresh_allocation(shape, dtype)
        nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        return {**got, "allocated_bytes": nbytes if got["allocated_bytes"] else 0}

    def always_split(shape, dtype):
        nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        if nbytes == 0:
            return {"allocated_bytes": 0, "reserved_bytes": 0}
        return {"allocated_bytes": round_size(nbytes), "reserved_bytes": get_allocation_size(round_size(nbytes))}

    def one_pool(shape, dtype):
        got = predict_fresh_allocation(shape, dtype)
        return {**got, "reserved_bytes": max(got["reserved_bytes"], LARGE_BUFFER) if got["reserved_bytes"] else 0}

    for wrong in (no_rounding, always_split, one_pool):
        with pytest.raises(AssertionError, match="predict_fresh_allocation"):
            check_predict_fresh_allocation(wrong)


def test_fragmenting_trace_solution_passes_and_wrong_attempts_fail():
    assert check_fragmenting_trace(fragmenting_trace) is None
    wrong_attempts = {
        "must end with": lambda: fragmenting_trace()[:-1],
        "must be more than 0": lambda: [("malloc", 0, 10), ("free", 0), ("empty_cache",)],
        "not 8": lambda: [("malloc", 0, 10 * MIB), ("empty_cache",)],
        "at most 16 MiB": lambda: [*(("malloc", i, 2 * MIB) for i in range(9)), ("empty_cache",)],
        "not well formed": lambda: [("free", "nobody"), ("empty_cache",)],
        "well formed: the size": lambda: [("malloc", 0, 2.5), ("empty_cache",)],
    }
    for message, wrong in wrong_attempts.items():
        with pytest.raises(AssertionError, match=message):
            check_fragmenting_trace(wrong)


# Against the real allocator.


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without a GPU")
def test_compare_with_cuda_needs_a_gpu():
    with pytest.raises(RuntimeError, match=re.escape("compare_with_cuda needs a CUDA device")):
        compare_with_cuda()


@needs_cuda
@pytest.mark.parametrize("trace", [None, HAMMER_TRACE, fragmenting_trace()], ids=["comparison", "hammer", "fragmenting"])
def test_simulator_matches_cuda_caching_allocator(trace):
    numbers = compare_with_cuda(trace)
    assert numbers["simulator"] == numbers["cuda"], numbers
