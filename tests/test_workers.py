"""DataLoader workers: seeding, scheduling, sharding and a multi-process loader from scratch, with real workers.

Every loader here runs real worker processes, kept tiny and bounded by `timeout=`. Data sets and
functions defined in this file reach the workers only under `fork` (spawn would have to import this
file by name), so the tests that use them are Linux-only; the rest use the lesson's own data sets and run
with the platform's start method. No test starts a spawned worker: each one imports torch afresh, seconds
on a small machine (the seeding code is the same worker loop whatever the start method).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from torchenstein.training.data import RangeStream, SimpleDataLoader, draw_seed
from torchenstein.training.workers import (
    MultiWorkerLoader,
    NoisyDataset,
    ShardedRangeStream,
    SlowDataset,
    TorchNoisyDataset,
    WhoLoads,
    WorkerSeeds,
    check_reseed_dataset_rng,
    check_shard_range,
    first_draws,
    measure_worker_speedup,
    numpy_worker_seed,
    plot_worker_timeline,
    reseed_dataset_rng,
    shard_range,
    start_method,
    worker_seeds,
)

CONTEXT = start_method()
needs_fork = pytest.mark.skipif(CONTEXT != "fork", reason="objects defined in this test file reach workers only by fork")
TIMEOUT = 30


def loader(dataset, **options):
    options.setdefault("num_workers", 2)
    if options["num_workers"] > 0:
        options.setdefault("multiprocessing_context", CONTEXT)
        options.setdefault("timeout", TIMEOUT)
    return DataLoader(dataset, **options)


def reports(batches):
    """Batches of WorkerSeeds (batch_size=1) as plain dicts of Python numbers."""
    return [{key: value.item() for key, value in batch.items()} for batch in batches]


# Seeds, from the formula


@settings(max_examples=25)
@given(base_seed=st.integers(0, 2**63 - 1), worker_id=st.integers(0, 64))
def test_numpy_seed_is_torchs_generate_state(base_seed, worker_id):
    generate_state = pytest.importorskip("torch.utils.data._utils.worker")._generate_state
    assert numpy_worker_seed(base_seed, worker_id) == generate_state(base_seed, worker_id)


@pytest.mark.parametrize("base_seed", [0, 1, 2**32 - 1, 2**32, 2**63 - 1])
def test_numpy_seed_at_the_word_boundaries(base_seed):
    from torch.utils.data._utils.worker import _generate_state

    for worker_id in (0, 1, 7):
        words = numpy_worker_seed(base_seed, worker_id)
        assert words == _generate_state(base_seed, worker_id)
        assert len(words) == 4 and all(0 <= w < 2**32 for w in words)


def test_worker_seeds_and_first_draws():
    seeds = worker_seeds(2**40 + 5, 3)
    assert seeds["torch"] == seeds["random"] == 2**40 + 8
    assert seeds["numpy"] == numpy_worker_seed(2**40 + 5, 3)
    draws = first_draws(10, 1)
    random.seed(11)
    np.random.seed(numpy_worker_seed(10, 1))
    torch.manual_seed(11)
    assert draws == {"random": random.random(), "numpy": float(np.random.random()), "torch": torch.rand(()).item()}
    with pytest.raises(ValueError, match="base_seed must be at least 0, got -1"):
        worker_seeds(-1, 0)
    with pytest.raises(ValueError, match="base_seed must be below 2\\*\\*64"):
        worker_seeds(2**64, 0)
    with pytest.raises(TypeError, match="worker_id must be an int, got 1.5"):
        numpy_worker_seed(3, 1.5)


# Seeds, in real workers


def predicted_stream(base_seed, worker_id, count):
    """The first `count` reports a worker's WorkerSeeds samples would give, computed in this process."""
    seeds = worker_seeds(base_seed, worker_id)
    py, npy = random.Random(seeds["random"]), np.random.RandomState(seeds["numpy"])
    tg = torch.Generator().manual_seed(seeds["torch"])
    return [
        {"worker": worker_id, "torch_seed": seeds["torch"], "info_seed": seeds["torch"], "random": py.random(),
         "numpy": float(npy.random_sample()), "torch": torch.rand((), generator=tg).item()}
        for _ in range(count)
    ]


def test_every_worker_is_seeded_as_the_formula_says_epoch_after_epoch():
    num_workers = 2
    generator = torch.Generator().manual_seed(123)
    replay = torch.Generator().manual_seed(123)
    seeds_loader = loader(WorkerSeeds(6), batch_size=1, num_workers=num_workers, generator=generator)
    for _ in range(2):
        base_seed = draw_seed(replay)  # each epoch draws a fresh base seed, and nothing else, unshuffled
        got = reports(seeds_loader)
        for w in range(num_workers):
            mine = [r for r in got if r["worker"] == w]
            assert mine == predicted_stream(base_seed, w, len(mine)), f"worker {w}"
        # Round-robin: sample k was loaded by worker k mod N.
        assert [r["worker"] for r in got] == [k % num_workers for k in range(6)]
        assert torch.equal(generator.get_state(), replay.get_state())


def test_without_a_generator_the_base_seed_comes_from_the_global_generator():
    torch.manual_seed(7)
    got = reports(loader(WorkerSeeds(2), batch_size=1))
    torch.manual_seed(7)
    base_seed = draw_seed()
    assert [r["torch_seed"] - base_seed for r in got] == [0, 1]
    assert got[0] == predicted_stream(base_seed, 0, 1)[0]


def test_get_worker_info_is_none_in_the_main_process():
    assert get_worker_info() is None
    assert WhoLoads(2)[1] == -1 and WorkerSeeds(1)[0]["worker"] == -1
    assert list(ShardedRangeStream(0, 3)) == [0, 1, 2]
    with pytest.raises(IndexError, match=r"index must be in \[0, 2\), got 2"):
        WhoLoads(2)[2]


# What the loader does with workers


def test_workers_do_not_change_the_order_or_the_generator():
    def run(workers):
        g = torch.Generator().manual_seed(9)
        batches = [b.tolist() for b in loader(range(13), batch_size=3, shuffle=True, drop_last=True,
                                               num_workers=workers, generator=g)]
        return batches, g.get_state()

    (a, state_a), (b, state_b) = run(0), run(2)
    assert a == b and torch.equal(state_a, state_b)


class CountingDataset(Dataset):
    """Counts, in memory shared with the main process, how many samples the workers have loaded."""

    def __init__(self, n):
        self.n, self.loaded = n, multiprocessing.get_context("fork").Value("i", 0)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.loaded.get_lock():
            self.loaded.value += 1
        return i


@needs_fork
@pytest.mark.parametrize("prefetch_factor", [1, 3])
def test_prefetch_factor_bounds_the_batches_in_flight(prefetch_factor):
    dataset = CountingDataset(100)
    it = iter(loader(dataset, batch_size=2, num_workers=2, prefetch_factor=prefetch_factor))
    next(it)
    # prefetch_factor * num_workers tasks were sent at the start, and one more when we took a batch.
    expected = (prefetch_factor * 2 + 1) * 2
    deadline = time.monotonic() + 10
    while dataset.loaded.value < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert dataset.loaded.value == expected
    del it


@needs_fork
def test_persistent_workers_keep_their_processes_and_seeds_and_draw_one_base_seed():
    def epochs(persistent):
        g = torch.Generator().manual_seed(0)
        seeds_loader = loader(PidSeeds(2), batch_size=1, generator=g, persistent_workers=persistent)
        runs = [reports(seeds_loader) for _ in range(2)]
        return runs, g.get_state()

    (fresh, fresh_state), (kept, kept_state) = epochs(False), epochs(True)
    assert {r["pid"] for r in fresh[0]}.isdisjoint({r["pid"] for r in fresh[1]})
    assert [r["pid"] for r in kept[0]] == [r["pid"] for r in kept[1]]
    assert [r["torch_seed"] for r in kept[0]] == [r["torch_seed"] for r in kept[1]]
    assert [r["torch_seed"] for r in fresh[0]] != [r["torch_seed"] for r in fresh[1]]
    # The random streams continue: the second epoch's draws are the workers' second draws.
    base_seed = draw_seed(torch.Generator().manual_seed(0))
    assert [r["random"] for r in kept[1]] == [predicted_stream(base_seed, w, 2)[1]["random"] for w in (0, 1)]
    once, twice = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    draw_seed(once)
    draw_seed(twice), draw_seed(twice)
    assert torch.equal(kept_state, once.get_state()) and torch.equal(fresh_state, twice.get_state())


class PidSeeds(WorkerSeeds):
    def __getitem__(self, index):
        return {**super().__getitem__(index), "pid": os.getpid()}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without an accelerator")
def test_pin_memory_without_an_accelerator_is_ignored():
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        batch = next(iter(DataLoader(torch.arange(4.0), batch_size=2, pin_memory=True)))
    assert not batch.is_pinned()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pin_memory_pins_batches_for_an_asynchronous_copy():
    batches = list(loader(torch.arange(8.0).reshape(4, 2), batch_size=2, pin_memory=True))
    assert all(b.is_pinned() for b in batches)
    on_gpu = [b.to("cuda", non_blocking=True) for b in batches]
    torch.cuda.synchronize()
    assert all(torch.equal(g.cpu(), b) for g, b in zip(on_gpu, batches, strict=True))


# Streams and sharding


def test_every_worker_streams_everything_and_the_sharded_stream_does_not():
    naive = [b.tolist() for b in loader(RangeStream(0, 6), batch_size=2)]
    assert naive == [[0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]
    sharded = [b.tolist() for b in loader(ShardedRangeStream(0, 10), batch_size=2)]
    assert sharded == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]


class BlockStream(IterableDataset):
    """A stream sharded with the challenge's contiguous blocks."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(shard_range(self.start, self.end, get_worker_info()))


def shrink_to_my_shard(worker_id):
    """A worker_init_fn that shards by changing the worker's copy of the dataset."""
    info = get_worker_info()
    block = shard_range(info.dataset.start, info.dataset.end, info)
    info.dataset.start, info.dataset.end = block.start, block.stop


@needs_fork
def test_contiguous_shards_in_real_workers_in_iter_and_in_worker_init_fn():
    by_iter = [b.tolist() for b in loader(BlockStream(0, 7), batch_size=2)]
    assert by_iter == [[0, 1], [4, 5], [2, 3], [6]]
    by_init = [b.tolist() for b in loader(RangeStream(0, 7), batch_size=2, worker_init_fn=shrink_to_my_shard)]
    assert by_init == by_iter


# Augmentations


def test_a_private_generator_repeats_in_every_worker_and_the_fixes_do_not():
    def noise(dataset, seed=0, **options):
        batches = loader(dataset, batch_size=1, generator=torch.Generator().manual_seed(seed), **options)
        return [int(b) for b in batches]

    hammer = noise(NoisyDataset(6))
    assert hammer[0::2] == hammer[1::2] and len(set(hammer)) == 3
    torch_noise = noise(TorchNoisyDataset(6))
    assert torch_noise[0::2] != torch_noise[1::2] and torch_noise == noise(TorchNoisyDataset(6))
    # The reseeding fix is the second challenge, checked with real workers below.


def test_spawn_refuses_a_lambda_before_any_worker_starts():
    spawning = DataLoader(NoisyDataset(2), num_workers=1, multiprocessing_context="spawn",
                          worker_init_fn=lambda worker_id: None, timeout=TIMEOUT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception, match="pickle") as caught:
            next(iter(spawning))
    assert "PicklingError" in type(caught.value).__name__ or isinstance(caught.value, AttributeError)


# The loader from scratch


@pytest.mark.parametrize(
    ("num_workers", "options"),
    [
        (2, {"batch_size": 3, "shuffle": True, "drop_last": True}),
        (2, {"batch_size": 4, "shuffle": True, "prefetch_factor": 1}),
        (2, {"batch_size": None, "shuffle": True}),
        (1, {"batch_size": 2}),
    ],
    ids=["shuffle-drop_last", "prefetch-1", "unbatched", "one-worker"],
)
def test_our_loader_matches_torch_batch_for_batch_and_worker_for_worker(num_workers, options):
    def run(cls, **kwargs):
        g = torch.Generator().manual_seed(11)
        # SlowDataset without a delay reports each sample's index and the worker that loaded it.
        made = cls(SlowDataset(9, delay=0.0), generator=g, **kwargs)
        batches = [(torch.as_tensor(b["index"]).tolist(), torch.as_tensor(b["worker"]).tolist()) for b in made]
        return batches, len(made), g.get_state()

    workers = {"num_workers": num_workers, "timeout": TIMEOUT, "multiprocessing_context": CONTEXT, **options}
    ours, theirs = run(MultiWorkerLoader, **workers), run(DataLoader, **workers)
    assert ours[0] == theirs[0] and ours[1] == theirs[1] and torch.equal(ours[2], theirs[2])
    # Round-robin: task k went to worker k mod N.
    assert [sorted(set(torch.as_tensor(w).flatten().tolist())) for _, w in ours[0]] == [
        [k % num_workers] for k in range(len(ours[0]))
    ]
    # The order is the single-process loader's, random numbers included.
    alone, _, _ = run(SimpleDataLoader, **{k: v for k, v in options.items() if k != "prefetch_factor"})
    assert [indices for indices, _ in ours[0]] == [indices for indices, _ in alone]


def test_our_workers_are_seeded_like_torchs_and_run_worker_init_fn():
    def run(cls, dataset, epochs=2, **options):
        made = cls(dataset, batch_size=1, num_workers=2, timeout=TIMEOUT, multiprocessing_context=CONTEXT,
                   generator=torch.Generator().manual_seed(3), **options)
        return [list(made) for _ in range(epochs)]

    ours, theirs = run(MultiWorkerLoader, WorkerSeeds(4)), run(DataLoader, WorkerSeeds(4))
    assert [reports(epoch) for epoch in ours] == [reports(epoch) for epoch in theirs]
    ours = run(MultiWorkerLoader, NoisyDataset(4), 1, worker_init_fn=reseed_dataset_rng)[0]
    theirs = run(DataLoader, NoisyDataset(4), 1, worker_init_fn=reseed_dataset_rng)[0]
    assert [int(b) for b in ours] == [int(b) for b in theirs]


class Faulty(Dataset):
    def __init__(self, mode):
        self.mode = mode

    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i == 3:
            if self.mode == "raise":
                raise KeyError(f"no sample {i}")
            if self.mode == "sleep":
                time.sleep(0.4)
            if self.mode == "die":
                os._exit(1)
        return i


def failing_init(worker_id):
    raise ValueError(f"worker {worker_id} cannot start")


@needs_fork
def test_our_loader_reraises_errors_and_honours_timeout():
    for cls in (MultiWorkerLoader, DataLoader):
        batches = iter(cls(Faulty("raise"), batch_size=2, num_workers=2, multiprocessing_context="fork", timeout=TIMEOUT))
        with pytest.raises(KeyError, match="no sample 3"):
            list(batches)
    # PyTorch stops the workers of a failed iterator only when it is garbage collected, which takes
    # seconds inside gc.collect(); stop them now, before the next fork copies them.
    batches._shutdown_workers()
    with pytest.raises(RuntimeError, match="timed out after 0.2 seconds"):
        list(MultiWorkerLoader(Faulty("sleep"), batch_size=1, num_workers=2, multiprocessing_context="fork", timeout=0.2))
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        list(MultiWorkerLoader(Faulty("die"), batch_size=1, num_workers=2, multiprocessing_context="fork"))
    with pytest.raises(RuntimeError, match="cannot start"):
        list(MultiWorkerLoader(range(4), num_workers=2, multiprocessing_context="fork", worker_init_fn=failing_init,
                               timeout=TIMEOUT))


def test_an_early_break_leaves_no_worker_behind():
    before = set(multiprocessing.active_children())
    made = MultiWorkerLoader(range(50), batch_size=2, num_workers=2, multiprocessing_context=CONTEXT, timeout=TIMEOUT)
    for batch in made:
        assert batch.tolist() == [0, 1]
        assert len(set(multiprocessing.active_children()) - before) == 2
        break
    # No gc.collect(): leaving the loop drops the last reference, and that alone stops the workers.
    deadline = time.monotonic() + 10
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(multiprocessing.active_children()) - before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dataset": RangeStream(0, 3)}, TypeError, "map-style datasets only"),
        ({"num_workers": 0}, ValueError, "num_workers must be at least 1 .use SimpleDataLoader for 0., got 0"),
        ({"num_workers": 2.0}, TypeError, "num_workers must be an int, got 2.0"),
        ({"prefetch_factor": 0}, ValueError, "prefetch_factor must be at least 1, got 0"),
        ({"timeout": -1}, ValueError, "timeout must be a non-negative number of seconds, got -1"),
        ({"timeout": None}, TypeError, "timeout must be a number of seconds, got None"),
        ({"prefetch_factor": 2.0}, TypeError, "prefetch_factor must be an int, got 2.0"),
        ({"worker_init_fn": 3}, TypeError, "worker_init_fn must be callable or None, got 3"),
        ({"multiprocessing_context": "teleport"}, ValueError, "multiprocessing_context must be None or one of"),
        ({"shuffle": True, "sampler": [0]}, ValueError, "mutually exclusive"),
    ],
)
def test_our_loader_argument_errors(kwargs, error, match):
    kwargs = {"dataset": range(4), **kwargs}
    with pytest.raises(error, match=match):
        MultiWorkerLoader(**kwargs)


# Timing and the figure


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"worker_counts": (0, -1)}, ValueError, "worker_counts.1. must be at least 0, got -1"),
        ({"worker_counts": (1.5,)}, TypeError, "worker_counts.0. must be an int, got 1.5"),
        ({"delay": -0.1}, ValueError, "delay must be a non-negative number of seconds, got -0.1"),
        ({"delay": "1"}, TypeError, "delay must be a number of seconds, got '1'"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        ({"num_samples": 2.0}, TypeError, "num_samples must be an int, got 2.0"),
    ],
)
def test_measure_worker_speedup_argument_errors(kwargs, error, match):
    # Its timings are shown by the lesson's doctests; here only the checks, which start no worker.
    with pytest.raises(error, match=match):
        measure_worker_speedup(**kwargs)


def test_slow_dataset_reports_who_and_when():
    sample = SlowDataset(3, delay=0.0)[1]
    assert sample["index"] == 1 and sample["worker"] == -1 and sample["end"] >= sample["start"]


def test_plot_worker_timeline_draws_every_sample_in_each_epoch():
    fig = plot_worker_timeline(num_samples=6, delay=0.0, batch_size=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(ax.patches) for ax in fig.axes] == [6, 12]  # one epoch, then two with persistent workers
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["worker 0", "worker 1"]
    with pytest.raises(ValueError, match="num_workers must be at least 1 for the second panel, got 0"):
        plot_worker_timeline(num_workers=0)


def test_start_method_is_fork_only_on_linux():
    assert start_method() == ("fork" if sys.platform.startswith("linux") else None)


# Challenges


def test_shard_range_solution_passes_and_wrong_attempts_fail():
    assert check_shard_range(shard_range) is None

    def strided(start, end, info):
        return range(start, end) if info is None else range(start + info.id, end, info.num_workers)

    def ceil_blocks(start, end, info):
        if info is None:
            return range(start, end)
        per = -(-(end - start) // info.num_workers)
        first = start + info.id * per
        return range(first, min(first + per, end))

    def ignores_none(start, end, info):
        return shard_range(start, end, info or SimpleNamespace(id=0, num_workers=2))

    for wrong in (strided, ceil_blocks, ignores_none):
        with pytest.raises(AssertionError):
            check_shard_range(wrong)


def reseed_global_numpy(worker_id):
    np.random.seed(worker_id)


def reseed_from_worker_id(worker_id):
    get_worker_info().dataset.rng = np.random.default_rng(worker_id)


def reseed_from_os_entropy(worker_id):
    get_worker_info().dataset.rng = np.random.default_rng()


@needs_fork
def test_reseed_checker_rejects_wrong_attempts():
    # The Professor's answer passes in the lesson's Challenges doctest; every run here starts real workers.
    for wrong, match in ((reseed_global_numpy, "both workers drew the same noise"),
                         (reseed_from_worker_id, "every epoch drew the same noise"),
                         (reseed_from_os_entropy, "the same loader seed must give the same noise")):
        with pytest.raises(AssertionError, match=match):
            check_reseed_dataset_rng(wrong)
