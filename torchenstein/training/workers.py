r"""
# The Jungle of Workers: DataLoader Multiprocessing

!!! torchenstein "The Professor speaks"
    Of all my expeditions, none left more scars than the treacherous jungles of multiprocessing for data
    loading. I went in with `num_workers=8` and a machete. I came out with duplicated data, identical
    "random" augmentations in every process, pickling errors that only struck on my colleagues' laptops,
    and a beard. Today I lead you through safely: what a worker really is, how it is born, how it is
    seeded (down to the last bit, proved), and how to tame it so your monster eats faster and never
    twice from the same plate.

**You will learn to**

- say what `num_workers` starts, and watch which worker builds which batch;
- build a small multi-process loader from scratch that serves the same batches, from the same worker
  seeds, as `DataLoader(num_workers=2)`;
- choose between the `fork` and `spawn` start methods, and use `prefetch_factor`, `persistent_workers`
  and `pin_memory` knowingly;
- predict the seeds of `torch`, `random` and NumPy in every worker from the loader's generator;
- shard an `IterableDataset` across workers with `get_worker_info`, and reseed with `worker_init_fn`;
- measure the speed-up workers give a slow data set.

## Why workers

In the [previous lesson](../data/index.md) every sample was read, decoded and collated in the **main
process**, the one running your training loop. While it loads, the model waits; while the model trains,
nothing loads. A **worker** is a separate Python process with its own copy of the data set (and its own
Python interpreter, so several of them truly run at once, which threads inside one Python process
cannot). With `num_workers=N`, the `DataLoader` starts $N$ workers at every `iter(loader)`, and while
your training step runs, they prepare the next batches.

The plumbing, read from `torch/utils/data/dataloader.py`, is simple. The main process keeps the sampler,
so the order of the data is decided in one place. It puts lists of indices (**tasks**) on one queue per
worker, **round-robin** (in turn, cycling through the workers): task $k$ goes to worker $k \bmod N$.
Each worker fetches its samples, collates them, and puts the batch on one shared result queue. The main process reorders results by task number,
so batches come out in the sampler's order whatever the workers' speed. Batch 0 is built by worker 0,
batch 1 by worker 1, and so on:

```pycon
>>> import torch
>>> from torch.utils.data import DataLoader
>>> from torchenstein.training.workers import WhoLoads, start_method
>>> loader = DataLoader(WhoLoads(8), batch_size=2, num_workers=2,
...                     multiprocessing_context=start_method(), timeout=60)
>>> [batch.tolist() for batch in loader]        # each sample reports the id of the worker that loaded it
[[0, 0], [1, 1], [0, 0], [1, 1]]

```

([`WhoLoads`][torchenstein.training.workers.WhoLoads] returns `get_worker_info().id`; `timeout` makes a
stuck worker an error rather than a silent hang, and `start_method()` is explained below.)

## A multi-process loader from scratch

[`MultiWorkerLoader`][torchenstein.training.workers.MultiWorkerLoader] is that plumbing in a page of
code, for map-style data sets. It reuses the previous lesson's
[`SimpleDataLoader`][torchenstein.training.data.SimpleDataLoader] for the sampler and the collate
function, draws the base seed the same way, starts workers that seed themselves as PyTorch's do, keeps
`prefetch_factor` $\times$ `num_workers` tasks in flight, and puts batches back in order:

```pycon
>>> from torchenstein.training.workers import MultiWorkerLoader
>>> def run(cls):
...     loader = cls(WhoLoads(10), batch_size=3, shuffle=True, num_workers=2, timeout=60,
...                  multiprocessing_context=start_method(), generator=torch.Generator().manual_seed(0))
...     return [batch.tolist() for batch in loader]
>>> ours = run(MultiWorkerLoader)
>>> print(f"who loaded each sample: {ours}, same as DataLoader's: {ours == run(DataLoader)}")
who loaded each sample: [[0, 0, 0], [1, 1, 1], [0, 0, 0], [1]], same as DataLoader's: True

```

The tests (`tests/test_workers.py`) go further: the same batches and the same worker for every batch as
`DataLoader` with 1 and 2 workers, shuffled or not, with `drop_last` and `batch_size=None`; the same
seeds in every worker; `worker_init_fn` and `get_worker_info` working inside our workers; the same
generator state afterwards; errors in a worker re-raised in the main process; `timeout` honoured; and
no process left behind after an early `break`.

**Where it differs from PyTorch.** Ours handles map-style data sets only, has no `pin_memory`,
`persistent_workers` or `in_order=False`, notices a dead worker by polling rather than by a signal
handler, gives its workers a shorter grace period to stop, and sets what `get_worker_info()` returns
through a private attribute of `torch.utils.data._utils.worker` (as PyTorch's own worker loop does).

## Fork, spawn and forkserver

How is a worker born? `multiprocessing_context` chooses the **start method**:

- **fork** (Linux's default up to Python 3.13): the child is a copy of the parent process, memory and
  all, made in milliseconds. The data set is not pickled; it is simply there. A forked child cannot use
  CUDA once the parent has initialised it, so keep GPU work out of the workers (send the batch to the GPU
  in the training loop).
- **spawn** (the default on macOS and Windows): a fresh Python interpreter starts, imports your main
  module again, and receives the data set, the collate function and `worker_init_fn` **pickled**. Each
  worker pays for `import torch`, and everything it receives must be picklable (**pickling** is Python's
  way of turning an object into bytes and back; a function or class is pickled by its name, so it must
  be defined at the top level of a module the worker can import).
- **forkserver** (Linux's default from Python 3.14): a clean server process forks the workers; the
  arguments are pickled as with spawn.

`spawn` exists everywhere, so code that works with it works on every machine:

```pycon
>>> import torch.multiprocessing as mp
>>> "spawn" in mp.get_all_start_methods()
True

```

[`start_method`][torchenstein.training.workers.start_method] returns `"fork"` on Linux and `None` (the
platform's default) elsewhere; the lesson uses it so its examples start in milliseconds here and still
run on a Mac. The data sets it sends to workers live at the top of this module, picklable for `spawn`.

## prefetch_factor, persistent_workers and pin_memory

- **`prefetch_factor`** (default 2 with workers) is how many tasks each worker has queued: the loader
  keeps `prefetch_factor * num_workers` batches in flight and sends a new task each time you take a
  batch. More hides slower, burstier loading and costs memory.
- **`persistent_workers=True`** keeps the workers alive between epochs. Starting workers is paid once,
  not every epoch, and each worker's copy of the data set keeps its state. The base seed is drawn once,
  too: the workers are seeded once and their random streams simply continue into the next epoch.
- **`pin_memory=True`** copies each batch into **page-locked** (pinned) host memory, which the operating
  system may not swap out, so a CUDA device can copy it by direct memory access, asynchronously with
  `batch.to("cuda", non_blocking=True)`. With workers, a thread of the main process does the pinning. It
  only means something with an accelerator; without one, PyTorch ignores it (recent releases warn).

```pycon
>>> print(f"prefetch_factor with workers: {DataLoader(range(4), num_workers=2).prefetch_factor}, "
...       f"without: {DataLoader(range(4)).prefetch_factor}")
prefetch_factor with workers: 2, without: None
>>> from torchenstein.training.workers import WorkerSeeds
>>> def seeds_per_epoch(**options):
...     loader = DataLoader(WorkerSeeds(2), batch_size=1, num_workers=2, timeout=60,
...                         multiprocessing_context=start_method(), **options)
...     return [sorted(int(report["torch_seed"]) for report in loader) for epoch in range(2)]
>>> fresh, kept = seeds_per_epoch(), seeds_per_epoch(persistent_workers=True)
>>> print(f"new workers every epoch, same seeds: {fresh[0] == fresh[1]}")
new workers every epoch, same seeds: False
>>> print(f"persistent workers, same seeds: {kept[0] == kept[1]}")
persistent workers, same seeds: True

```

## How every worker is seeded

At each `iter(loader)` (even with `num_workers=0`, as the previous lesson showed) the loader draws a
64-bit **base seed** from its `generator`, or from the global generator if it has none. Reading
`torch/utils/data/_utils/worker.py`, worker $w$ then seeds three random number generators before it
loads anything:

- PyTorch's global generator: `torch.manual_seed(base_seed + w)`, so `torch.initial_seed()` in the
  worker is `base_seed + w`, and so is `get_worker_info().seed`;
- Python's `random`: `random.seed(base_seed + w)`;
- NumPy's global `np.random` (since torch 1.9): with four 32-bit words from NumPy's own `SeedSequence`,
  fed the entropy `[w, base_seed mod 2^32, base_seed >> 32, 0]`. PyTorch's code is a hand-written copy of
  SeedSequence's hashing; [`numpy_worker_seed`][torchenstein.training.workers.numpy_worker_seed] simply
  calls NumPy's, and the tests prove the two agree.

So every worker draws different numbers, and the same numbers in every run with the same generator.
[`first_draws`][torchenstein.training.workers.first_draws] predicts, in the main process, the first
number each worker will draw from each library, and [`WorkerSeeds`][torchenstein.training.workers.WorkerSeeds]
reports what the workers really drew:

```pycon
>>> from torchenstein.training.data import draw_seed
>>> from torchenstein.training.workers import first_draws
>>> loader = DataLoader(WorkerSeeds(2), batch_size=1, num_workers=2, timeout=60,
...                     multiprocessing_context=start_method(), generator=torch.Generator().manual_seed(0))
>>> reports = list(loader)
>>> base_seed = draw_seed(torch.Generator().manual_seed(0))     # the first draw of that generator
>>> for report in reports:
...     w = int(report["worker"])
...     predicted = first_draws(base_seed, w)
...     same = {name: report[name].item() == value for name, value in predicted.items()}
...     print(f"worker {w}: seed = base_seed + {int(report['torch_seed']) - base_seed}, draws as predicted: {same}")
worker 0: seed = base_seed + 0, draws as predicted: {'random': True, 'numpy': True, 'torch': True}
worker 1: seed = base_seed + 1, draws as predicted: {'random': True, 'numpy': True, 'torch': True}

```

What is **not** reseeded: anything with its own state that the data set carried into the worker, such
as a `np.random.default_rng(...)` or a `torch.Generator` created in `__init__`. Every worker receives an
identical copy of it. Dr. Hammer will demonstrate.

## worker_init_fn and get_worker_info

Inside a worker, `torch.utils.data.get_worker_info()` returns the worker's `id`, `num_workers`, its
`seed` (`base_seed + id`) and `dataset`, this worker's own copy of the data set; in the main process it
returns `None`. **`worker_init_fn(worker_id)`**, if you pass one, runs in each worker right after the
seeding and before any loading: the place to configure the worker's copy of the data set, open a file
or reseed a generator of your own. For an `IterableDataset` this matters most: there is no sampler to
share the work out, so each worker iterates its copy of the stream, and unless `__iter__` looks at
`get_worker_info()` and takes only its **shard**, every worker yields everything.
[`ShardedRangeStream`][torchenstein.training.workers.ShardedRangeStream] takes every $N$-th item,
starting at its worker id.

## Measuring the speed-up

Workers pay off when loading is slow compared with the training step: decoding JPEGs, reading from a
network disk, tokenising. [`SlowDataset`][torchenstein.training.workers.SlowDataset] sleeps a few
milliseconds per sample, the way a slow disk would, and
[`measure_worker_speedup`][torchenstein.training.workers.measure_worker_speedup] times one epoch with 0,
1 and 2 workers, starting and stopping them included. One worker is no faster than none (and it pays to
start); two overlap their sleeps, once they are running. Measure on your own machine; the doctest does
not pin the numbers:

```pycon
>>> from torchenstein.training.workers import measure_worker_speedup
>>> timings = measure_worker_speedup(num_samples=8, delay=0.002)
>>> for workers, seconds in timings.items():
...     print(f"num_workers={workers}: {seconds * 1e3:.0f} ms")
num_workers=0: ... ms
num_workers=1: ... ms
num_workers=2: ... ms

```

[`plot_worker_timeline`][torchenstein.training.workers.plot_worker_timeline] draws when each sample was
loaded, and by which process: one epoch without workers, then two epochs with two persistent workers.
The first of those waits for the workers to start (with `fork`; `spawn` waits much longer, for
`import torch` in every worker); the second has no start-up left to pay.

![Two timelines of twelve slow samples, coloured by batch, with a tick each time a batch reaches the training loop. Without workers, the main process loads them one after another. With two persistent workers, the first epoch begins with a gap while the workers start; then worker 0 and worker 1 load alternate batches side by side, and the second epoch, after a dashed line, has no gap. The titles give each epoch's duration.](plot_worker_timeline.svg)

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: every worker streams the whole IterableDataset"
    Hammer's data set is a stream. He sets `num_workers=2` to go twice as fast, and his model now sees
    every sample twice per epoch: each worker iterates its own full copy. His epoch counts are wrong, his
    learning-rate schedule runs at double speed, and his validation stream counts duplicates too.

    ```pycon
    >>> from torchenstein.training.data import RangeStream
    >>> from torchenstein.training.workers import ShardedRangeStream
    >>> def stream(dataset):
    ...     loader = DataLoader(dataset, batch_size=2, num_workers=2, timeout=60,
    ...                         multiprocessing_context=start_method())
    ...     return [batch.tolist() for batch in loader]
    >>> stream(RangeStream(0, 6))
    [[0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]
    >>> stream(ShardedRangeStream(0, 6))                 # worker 0 takes 0, 2, 4; worker 1 takes 1, 3, 5
    [[0, 2], [1, 3], [4], [5]]

    ```

    Shard inside `__iter__` with `get_worker_info()` (or in `worker_init_fn`, by changing the worker's
    copy of the data set). Note the two short batches: each worker batches its own shard.

!!! hammer "Dr. Hammer's trap: the same random augmentation in every worker"
    Hammer's data set makes its own NumPy generator in `__init__`, as NumPy's documentation recommends
    for new code, and draws a random augmentation per sample (here just a number in `[0, 1000)`). Every
    worker gets a copy of that generator in the same state, forked or pickled alike, so worker 0 and
    worker 1 apply the very same "random" augmentations, in step: half his augmentations are duplicates.

    ```pycon
    >>> from torchenstein.training.workers import NoisyDataset, TorchNoisyDataset
    >>> def noise(dataset, **options):
    ...     loader = DataLoader(dataset, batch_size=1, num_workers=2, timeout=60,
    ...                         multiprocessing_context=start_method(), **options)
    ...     return [batch.item() for batch in loader]
    >>> noise(NoisyDataset(6))
    [850, 850, 636, 636, 511, 511]
    >>> fixed = noise(TorchNoisyDataset(6), generator=torch.Generator().manual_seed(0))
    >>> fixed
    [906, 724, 10, 2, 804, 724]
    >>> print(f"workers agree: {fixed[0::2] == fixed[1::2]}, "
    ...       f"same seed, same noise: {fixed == noise(TorchNoisyDataset(6), generator=torch.Generator().manual_seed(0))}")
    workers agree: False, same seed, same noise: True

    ```

    The fix shown draws from PyTorch's generator, which every worker reseeds (Python's `random` and
    NumPy's global `np.random` would do as well): different in every worker, and reproducible from the
    loader's generator. To keep a generator of your own, reseed it in `worker_init_fn` from
    `get_worker_info().seed`; that is the second challenge.

!!! hammer "Dr. Hammer's trap: it works on my Linux box"
    Hammer's loader uses a `lambda` as `worker_init_fn` and a data set class defined in his notebook.
    On Linux, `fork` copies them into the workers and all is well. On his reviewer's Mac, `spawn` must
    pickle them, and a lambda cannot be pickled (nor can a class the worker cannot import). His script
    also lacks `if __name__ == "__main__":` around its training code, so under `spawn` every worker,
    importing the main module, would start a training run of its own, and Python stops it with "An
    attempt has been made to start a new process before the current process has finished its
    bootstrapping phase".

    ```pycon
    >>> import warnings
    >>> loader = DataLoader(NoisyDataset(4), num_workers=1, multiprocessing_context="spawn",
    ...                     worker_init_fn=lambda worker_id: None, timeout=60)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")              # recent PyTorch adds a hint; the error says it all
    ...     try:
    ...         next(iter(loader))
    ...     except Exception as error:
    ...         print(f"{type(error).__name__}: {error}")
    PicklingError: Can't pickle <function <lambda> at 0x...>...

    ```

    Define data sets, collate functions and `worker_init_fn` at the top level of an importable module
    (as this lesson does), guard the entry point with `if __name__ == "__main__":`, and test once with
    `multiprocessing_context="spawn"` before you trust a loader everywhere.

## Challenges

**1. Contiguous shards.** Some streams read fastest front to back (one file, one cursor), so each worker
should read one contiguous block. Write `shard_range(start, end, worker_info)` that returns the range of
integers worker `worker_info.id` of `worker_info.num_workers` should stream: all of `range(start, end)`
when `worker_info` is `None`; otherwise contiguous blocks, in worker order, that together cover the range
exactly once and differ in size by at most one.

**2. Reseed a private generator.** Write `reseed_dataset_rng(worker_id)`, a `worker_init_fn` for
[`NoisyDataset`][torchenstein.training.workers.NoisyDataset] that gives the worker's copy of the data set
a new `rng`, so that the two workers draw different noise, the same noise again for the same loader
generator seed, and new noise every epoch.

Check an attempt with `check_shard_range(my_function)` (or `check_reseed_dataset_rng`, which starts real
workers), or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.training.workers import (
...     check_reseed_dataset_rng, check_shard_range, reseed_dataset_rng, shard_range)
>>> check_shard_range(shard_range)                  # silence: every case passed
>>> check_reseed_dataset_rng(reseed_dataset_rng)

```
"""

from __future__ import annotations

import itertools
import queue
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from torchenstein.lab import PALETTE, new_figure
from torchenstein.training.data import RangeStream, SimpleDataLoader, draw_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def start_method() -> str | None:
    """The start method the lesson's examples use: ``"fork"`` on Linux, ``None`` (the platform's default) elsewhere.

    Fork starts a worker in milliseconds; spawn, the default on macOS and Windows, pays for a fresh
    interpreter and ``import torch`` in every worker, but is the only safe choice there.

    Examples:
        >>> start_method() in ("fork", None)
        True
    """
    return "fork" if sys.platform.startswith("linux") else None


# Data sets sent to workers. They live at the top level of this module, so spawn can pickle them.


class WhoLoads(Dataset):
    """Sample ``i`` is the id of the worker process that loads it, or ``-1`` in the main process.

    Examples:
        >>> WhoLoads(3)[0]
        -1
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index must be in [0, {self.num_samples}), got {index}")
        info = get_worker_info()
        return -1 if info is None else info.id


class WorkerSeeds(Dataset):
    """Each sample reports the loading worker's seeds and one fresh draw from each random number generator.

    Keys: ``worker`` (``-1`` in the main process), ``torch_seed`` (``torch.initial_seed()``), ``info_seed``
    (``get_worker_info().seed``, ``-1`` in the main process), and ``random``, ``numpy`` and ``torch``: the
    next number from ``random.random()``, ``np.random.random()`` and ``torch.rand(())``.

    Examples:
        >>> sorted(WorkerSeeds(1)[0])
        ['info_seed', 'numpy', 'random', 'torch', 'torch_seed', 'worker']
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, float | int]:
        info = get_worker_info()
        return {
            "worker": -1 if info is None else info.id,
            "torch_seed": torch.initial_seed(),
            "info_seed": -1 if info is None else info.seed,
            "random": random.random(),
            "numpy": float(np.random.random()),
            "torch": torch.rand(()).item(),
        }


class NoisyDataset(Dataset):
    """Sample ``i`` is a random "augmentation" in ``[0, 1000)`` from a NumPy generator made in ``__init__``.

    The generator travels to every worker in the same state: the trap of this lesson.

    Args:
        num_samples: the length of the data set.
        seed: the seed of the data set's own generator.

    Examples:
        >>> NoisyDataset(2)[0] == NoisyDataset(2)[0]
        True
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> int:
        return int(self.rng.integers(1000))


class TorchNoisyDataset(Dataset):
    """Sample ``i`` is a random number in ``[0, 1000)`` drawn from PyTorch's global generator, reseeded per worker.

    Examples:
        >>> 0 <= TorchNoisyDataset(2)[0] < 1000
        True
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> int:
        return int(torch.randint(1000, ()))


class ShardedRangeStream(RangeStream):
    """A ``RangeStream`` whose ``__iter__`` yields only this worker's shard: every ``num_workers``-th item.

    Examples:
        >>> list(ShardedRangeStream(0, 5))      # in the main process: everything
        [0, 1, 2, 3, 4]
    """

    def __iter__(self) -> Iterator[int]:
        items = super().__iter__()
        info = get_worker_info()
        if info is None:
            return items
        # Worker w takes items w, w + N, w + 2N, ...: islice skips without materialising the stream.
        return itertools.islice(items, info.id, None, info.num_workers)


class SlowDataset(Dataset):
    """A data set that sleeps ``delay`` seconds per sample, like a slow disk, and reports who loaded it when.

    Each sample is a dict: ``index``, ``worker`` (``-1`` in the main process) and ``start`` and ``end``,
    wall-clock times from ``time.time()`` (comparable across processes).

    Examples:
        >>> sample = SlowDataset(4, delay=0.0)[2]
        >>> sample["index"], sample["worker"]
        (2, -1)
    """

    def __init__(self, num_samples: int, delay: float = 0.01) -> None:
        self.num_samples, self.delay = num_samples, delay

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, float | int]:
        info = get_worker_info()
        start = time.time()
        time.sleep(self.delay)
        return {"index": index, "worker": -1 if info is None else info.id, "start": start, "end": time.time()}


# Seeds


def numpy_worker_seed(base_seed: int, worker_id: int) -> list[int]:
    """The four 32-bit words a ``DataLoader`` worker passes to ``np.random.seed``.

    PyTorch's ``_generate_state`` hashes the entropy ``[worker_id, low 32 bits, high 32 bits, 0]`` exactly
    as NumPy's ``SeedSequence`` does (it is an adapted copy), so NumPy's own class gives the same words.

    Args:
        base_seed: the loader's base seed for this epoch, in ``[0, 2**63)``.
        worker_id: the worker's id.

    Examples:
        >>> len(numpy_worker_seed(12345, 0)), numpy_worker_seed(12345, 0) != numpy_worker_seed(12345, 1)
        (4, True)
    """
    _check_seed(base_seed, worker_id)
    entropy = [worker_id, base_seed & 0xFFFFFFFF, base_seed >> 32, 0]
    return np.random.SeedSequence(entropy).generate_state(4).tolist()


def worker_seeds(base_seed: int, worker_id: int) -> dict[str, Any]:
    """The seeds a ``DataLoader`` worker gives ``torch``, ``random`` and NumPy before it loads anything.

    Examples:
        >>> seeds = worker_seeds(100, 3)
        >>> seeds["torch"], seeds["random"], len(seeds["numpy"])
        (103, 103, 4)
    """
    _check_seed(base_seed, worker_id)
    return {
        "torch": base_seed + worker_id,
        "random": base_seed + worker_id,
        "numpy": numpy_worker_seed(base_seed, worker_id),
    }


def first_draws(base_seed: int, worker_id: int) -> dict[str, float]:
    """Predict, in the main process, the first ``random.random()``, ``np.random.random()`` and ``torch.rand(())``
    of a worker, from private generators seeded as the worker's global ones are.

    Examples:
        >>> draws = first_draws(7, 0)
        >>> list(draws), draws == first_draws(7, 0), draws == first_draws(7, 1)
        (['random', 'numpy', 'torch'], True, False)
    """
    seeds = worker_seeds(base_seed, worker_id)
    # np.random.seed(words) and RandomState(words) both fill the legacy Mersenne Twister from the words.
    return {
        "random": random.Random(seeds["random"]).random(),
        "numpy": float(np.random.RandomState(seeds["numpy"]).random_sample()),
        "torch": torch.rand((), generator=torch.Generator().manual_seed(seeds["torch"])).item(),
    }


# The loader


def _set_worker_info(worker_id: int, num_workers: int, seed: int, dataset: Any) -> None:
    # get_worker_info() reads this module attribute; PyTorch's worker loop sets it the same way.
    from torch.utils.data._utils import worker as torch_worker

    torch_worker._worker_info = torch_worker.WorkerInfo(id=worker_id, num_workers=num_workers, seed=seed, dataset=dataset)


def _worker_loop(dataset, collate_fn, batching, index_queue, result_queue, base_seed, worker_id, num_workers,
                 worker_init_fn) -> None:
    """The body of one worker process: seed, initialise, then turn tasks into batches until told to stop."""
    # The same three seeds as PyTorch's workers, before anything else can draw a random number.
    seed = base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(numpy_worker_seed(base_seed, worker_id))
    # N workers each running a full thread pool would fight over the cores: PyTorch gives each one thread.
    torch.set_num_threads(1)
    _set_worker_info(worker_id, num_workers, seed, dataset)
    init_error = None
    try:
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
    except Exception:
        init_error = traceback.format_exc()
    while True:
        task = index_queue.get()
        if task is None:  # the main process says: no more work
            return
        task_id, index = task
        if init_error is not None:
            result_queue.put((task_id, _Failure(RuntimeError, f"in worker_init_fn of worker {worker_id}:\n{init_error}")))
            continue
        try:
            if not batching:
                batch = collate_fn(dataset[index])
            elif getattr(dataset, "__getitems__", None):
                batch = collate_fn(dataset.__getitems__(index))
            else:
                batch = collate_fn([dataset[i] for i in index])
        except Exception as error:
            # The exception's traceback cannot cross processes: send its type and text instead.
            batch = _Failure(type(error), f"in worker {worker_id}:\n{traceback.format_exc()}")
        result_queue.put((task_id, batch))


class _Failure:
    """An exception raised in a worker, sent to the main process to be raised there again."""

    def __init__(self, kind: type[BaseException], message: str) -> None:
        self.kind, self.message = kind, message

    def reraise(self) -> None:
        try:
            error = self.kind(self.message)
        except Exception:  # an exception type that does not take one message
            error = RuntimeError(self.message)
        raise error


class MultiWorkerLoader:
    """A multi-process loader from scratch for map-style data sets, serving ``DataLoader``'s batches in order.

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``).
        batch_size: samples per batch; ``None`` yields single samples.
        shuffle: draw a new random order every epoch.
        sampler: an iterable of indices that decides the order (instead of ``shuffle``).
        num_workers: how many worker processes, at least 1.
        collate_fn: turns a list of samples into a batch; ``None`` means the default collation.
        drop_last: drop a last batch shorter than ``batch_size``.
        timeout: seconds to wait for a batch before raising ``RuntimeError``; ``0`` waits forever.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker after seeding.
        multiprocessing_context: a start method name (``"fork"``, ``"spawn"``, ``"forkserver"``) or
            ``None`` for the platform's default.
        generator: the generator for the shuffle and the base seed; ``None`` uses the global one.
        prefetch_factor: tasks queued per worker.

    Raises:
        TypeError: if ``dataset`` is an ``IterableDataset`` or an argument has the wrong type.
        ValueError: if ``num_workers`` or ``prefetch_factor`` is below 1, ``timeout`` is negative, or the
            arguments conflict.

    Examples:
        >>> loader = MultiWorkerLoader(range(5), batch_size=2, num_workers=2, multiprocessing_context=start_method())
        >>> [batch.tolist() for batch in loader], len(loader)
        ([[0, 1], [2, 3], [4]], 3)
        >>> MultiWorkerLoader(range(5), num_workers=0)
        Traceback (most recent call last):
        ...
        ValueError: num_workers must be at least 1 (use SimpleDataLoader for 0), got 0
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable | None = None,
        num_workers: int = 2,
        collate_fn: Callable[[Any], Any] | None = None,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: str | None = None,
        generator: torch.Generator | None = None,
        *,
        prefetch_factor: int = 2,
    ) -> None:
        _check_workers(dataset, num_workers, timeout, prefetch_factor, worker_init_fn, multiprocessing_context)
        # Everything about order and collation is the single-process loader's: only the fetching moves.
        self.plan = SimpleDataLoader(dataset, batch_size, shuffle, sampler, None, collate_fn, drop_last, generator)
        self.dataset, self.num_workers, self.timeout = dataset, num_workers, timeout
        self.worker_init_fn, self.prefetch_factor = worker_init_fn, prefetch_factor
        self.multiprocessing_context = multiprocessing_context

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator:
        plan = self.plan
        tasks = iter(plan.batch_sampler if plan.batching else plan.sampler)
        base_seed = draw_seed(plan.generator)
        context = mp.get_context(self.multiprocessing_context)
        result_queue = context.Queue()
        index_queues, workers = [], []
        for worker_id in range(self.num_workers):
            index_queue = context.Queue()
            # The main process may exit with tasks still queued; it must not wait to flush them.
            index_queue.cancel_join_thread()
            worker = context.Process(
                target=_worker_loop,
                args=(self.dataset, plan.collate_fn, plan.batching, index_queue, result_queue, base_seed,
                      worker_id, self.num_workers, self.worker_init_fn),
                daemon=True,  # a worker dies with the main process, never outlives it
            )
            index_queues.append(index_queue)
            workers.append(worker)
            worker.start()
        return self._serve(tasks, workers, index_queues, result_queue)

    def _serve(self, tasks: Iterator, workers: list, index_queues: list, result_queue: Any) -> Iterator:
        sent = received = 0
        arrived: dict[int, Any] = {}

        def send_next_task() -> None:
            nonlocal sent
            index = next(tasks, None)
            if index is None:
                return
            # Round-robin: task k goes to worker k mod N.
            index_queues[sent % len(workers)].put((sent, index))
            sent += 1

        try:
            # Fill the pipeline: prefetch_factor tasks for every worker.
            for _ in range(self.prefetch_factor * len(workers)):
                send_next_task()
            while received < sent:
                # Results arrive in any order; keep early ones until their turn comes.
                while received not in arrived:
                    task_id, batch = self._next_result(result_queue, workers)
                    arrived[task_id] = batch
                batch = arrived.pop(received)
                received += 1
                send_next_task()  # one batch taken, one task sent: the pipeline stays full
                if isinstance(batch, _Failure):
                    batch.reraise()
                yield batch
        finally:
            # Ask every worker to stop after its queued tasks, give it a moment, then stop it by force (a
            # worker that died mid-write can leave the result queue locked for the others).
            for index_queue in index_queues:
                index_queue.put(None)
            for worker in workers:
                worker.join(timeout=1)
                if worker.is_alive():
                    worker.terminate()
                    worker.join()

    def _next_result(self, result_queue: Any, workers: list) -> tuple[int, Any]:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while True:
            try:
                return result_queue.get(timeout=0.1)
            except queue.Empty:
                dead = [w.pid for w in workers if not w.is_alive()]
                if dead:
                    raise RuntimeError(f"worker process(es) {dead} exited unexpectedly") from None
                if deadline is not None and time.monotonic() > deadline:
                    raise RuntimeError(f"MultiWorkerLoader timed out after {self.timeout} seconds") from None


# Timing and the figure


def _run_epochs(dataset: Dataset, num_workers: int, batch_size: int, epochs: int = 1) -> list[tuple]:
    """Run a DataLoader for some epochs (persistent workers when more than one) and record, for each epoch,
    ``(begin, end, samples, arrivals)``: seconds since the first ``iter(loader)``, every sample's report with
    its ``start`` and ``end`` on the same clock (``time.time()``, which every process shares), and when each
    batch reached the loop."""
    options: dict[str, Any] = {"num_workers": num_workers}
    if num_workers > 0:
        options.update(multiprocessing_context=start_method(), timeout=60, persistent_workers=epochs > 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, **options)
    origin = time.time()
    runs = []
    for _ in range(epochs):
        begin, samples, arrivals = time.time() - origin, [], []
        for batch in loader:
            arrivals.append(time.time() - origin)
            for i in range(len(batch["index"])):
                sample = {key: batch[key][i].item() for key in batch}
                sample["start"], sample["end"] = sample["start"] - origin, sample["end"] - origin
                samples.append(sample)
        runs.append((begin, time.time() - origin, samples, arrivals))
    return runs


def measure_worker_speedup(
    worker_counts: Sequence[int] = (0, 1, 2), *, num_samples: int = 32, delay: float = 0.01, batch_size: int = 4
) -> dict[int, float]:
    """Time one epoch of a ``DataLoader`` over a ``SlowDataset``, for each number of workers.

    The time includes starting (and stopping) the workers, which every epoch pays unless
    ``persistent_workers=True``.

    Args:
        worker_counts: the values of ``num_workers`` to try.
        num_samples: the data set's length.
        delay: seconds each sample sleeps.
        batch_size: samples per batch.

    Returns:
        Seconds per epoch, keyed by ``num_workers``.

    Raises:
        TypeError: if a worker count or a size is not an int, or ``delay`` not a number.
        ValueError: if a worker count is negative, a size below 1 or ``delay`` negative.

    Examples:
        >>> timings = measure_worker_speedup((0, 2), num_samples=4, delay=0.0)
        >>> {workers: seconds > 0 for workers, seconds in timings.items()}
        {0: True, 2: True}
        >>> measure_worker_speedup((0, -1))
        Traceback (most recent call last):
        ...
        ValueError: worker_counts[1] must be at least 0, got -1
    """
    _check_timing(worker_counts, num_samples, delay, batch_size)
    dataset = SlowDataset(num_samples, delay)
    timings = {}
    for workers in worker_counts:
        begin, end, _, _ = _run_epochs(dataset, workers, batch_size)[0]
        timings[workers] = end - begin
    return timings


def plot_worker_timeline(
    *, num_samples: int = 12, delay: float = 0.01, batch_size: int = 2, num_workers: int = 2
) -> Figure:
    """Draw when each sample of a ``SlowDataset`` was loaded, and by which process: one epoch without
    workers, then two epochs with persistent workers (the first pays for starting them).

    Args:
        num_samples: the data set's length.
        delay: seconds each sample sleeps.
        batch_size: samples per batch.
        num_workers: the workers of the second panel.

    Returns:
        A figure with two axes on the same time axis: ``num_workers=0``, and ``num_workers`` persistent workers.

    Examples:
        >>> len(plot_worker_timeline(num_samples=4, delay=0.0).axes)
        2
    """
    _check_timing((0, num_workers), num_samples, delay, batch_size)
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1 for the second panel, got {num_workers!r}")
    dataset = SlowDataset(num_samples, delay)
    panels = [(0, _run_epochs(dataset, 0, batch_size)), (num_workers, _run_epochs(dataset, num_workers, batch_size, 2))]
    longest = max(runs[-1][1] for _, runs in panels)
    fig, axes = new_figure(2, 1, width=7.0, height=4.2)
    for ax, (workers, runs) in zip(axes, panels, strict=True):
        lanes = ["main"] if workers == 0 else [f"worker {w}" for w in range(workers)]
        top = len(lanes) - 0.5
        for epoch, (begin, _, samples, arrivals) in enumerate(runs):
            # One bar per sample, in the lane of the process that loaded it, coloured by its batch (one
            # call for all the bars of an epoch: matplotlib is much faster that way).
            ax.barh([max(int(s["worker"]), 0) for s in samples], [s["end"] - s["start"] for s in samples],
                    left=[s["start"] for s in samples], height=0.6, edgecolor="white",
                    color=[PALETTE[(int(s["index"]) // batch_size) % len(PALETTE)] for s in samples])
            # A tick above the lanes each time the training loop receives a batch.
            ax.vlines(arrivals, top - 0.1, top + 0.15, color="#333333", linewidth=1.2)
            if epoch > 0:
                ax.axvline(begin, color="#999999", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(lanes)), lanes)
        ax.set_ylim(-0.6, top + 0.3)
        ax.set_xlim(0, longest * 1.03)
        times = ", ".join(f"epoch {e + 1} in {(end - begin) * 1e3:.0f} ms" for e, (begin, end, _, _) in enumerate(runs))
        name = "num_workers=0" if workers == 0 else f"num_workers={workers}, persistent_workers=True"
        ax.set_title(f"{name}: {times}", loc="left", fontsize=9)
    axes[-1].set_xlabel("seconds since iter(loader) (ticks: a batch reaches the training loop)")
    return fig


# Challenges


def shard_range(start: int, end: int, worker_info: Any) -> range:
    """Challenge solution: this worker's contiguous, balanced block of ``range(start, end)``.

    Examples:
        >>> from types import SimpleNamespace
        >>> [list(shard_range(0, 7, SimpleNamespace(id=i, num_workers=3))) for i in range(3)]
        [[0, 1, 2], [3, 4], [5, 6]]
    """
    if worker_info is None:
        return range(start, end)
    size, extra = divmod(end - start, worker_info.num_workers)
    # The first `extra` workers take one item more; worker i starts after all the blocks before it.
    first = start + worker_info.id * size + min(worker_info.id, extra)
    return range(first, first + size + (1 if worker_info.id < extra else 0))


def check_shard_range(candidate: Callable[[int, int, Any], Iterable[int]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``shard_range``."""
    from types import SimpleNamespace

    for start, end, num_workers in ((0, 10, 1), (0, 10, 3), (5, 12, 2), (0, 7, 4), (3, 5, 4), (2, 2, 3), (0, 100, 7)):
        full = list(range(start, end))
        whole = candidate(start, end, None)
        assert list(whole) == full, f"without a worker (worker_info=None) expected all of {full}, got {list(whole)}"
        shards = [list(candidate(start, end, SimpleNamespace(id=w, num_workers=num_workers, seed=0, dataset=None)))
                  for w in range(num_workers)]
        case = f"range({start}, {end}) over {num_workers} workers"
        assert [i for shard in shards for i in shard] == full, (
            f"for {case} the shards in worker order must cover the range exactly once, got {shards}"
        )
        for shard in shards:
            assert shard == list(range(shard[0], shard[0] + len(shard))) if shard else True, (
                f"for {case} each shard must be contiguous, got {shard}"
            )
        sizes = [len(shard) for shard in shards]
        assert max(sizes) - min(sizes) <= 1, f"for {case} shard sizes must differ by at most one, got {sizes}"


def reseed_dataset_rng(worker_id: int) -> None:
    """Challenge solution: a ``worker_init_fn`` that gives this worker's copy of the data set its own generator.

    ``get_worker_info().seed`` is ``base_seed + worker_id``: different in every worker, new every epoch,
    and reproducible from the loader's generator.

    Examples:
        >>> reseed_dataset_rng(0)       # in the main process there is no worker: nothing to do
    """
    info = get_worker_info()
    if info is None:
        return
    info.dataset.rng = np.random.default_rng(info.seed)


def check_reseed_dataset_rng(candidate: Callable[[int], None]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``reseed_dataset_rng`` (starts real workers)."""

    def run(seed: int, epochs: int) -> list[list[int]]:
        loader = torch.utils.data.DataLoader(
            NoisyDataset(4), batch_size=1, num_workers=2, worker_init_fn=candidate, timeout=120,
            multiprocessing_context=start_method(), generator=torch.Generator().manual_seed(seed),
        )
        return [[int(batch) for batch in loader] for _ in range(epochs)]

    first = run(0, epochs=2)
    for epoch, noise in enumerate(first):
        # Worker 0 loads samples 0 and 2, worker 1 loads samples 1 and 3.
        assert noise[0::2] != noise[1::2], (
            f"epoch {epoch}: both workers drew the same noise {noise[0::2]}: the copies of the generator "
            "were not reseeded differently"
        )
    assert first[0] != first[1], f"every epoch drew the same noise {first[0]}: seed from the worker's seed"
    assert run(0, epochs=1) == first[:1], (
        "the same loader seed must give the same noise: seed from get_worker_info().seed"
    )
    assert run(1, epochs=1) != first[:1], "a different loader seed must give different noise"


# Argument checks, kept here so the ideas above read first


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")


def _check_seed(base_seed: object, worker_id: object) -> None:
    _check_int("base_seed", base_seed, 0)
    _check_int("worker_id", worker_id, 0)
    if base_seed >= 2**64:
        raise ValueError(f"base_seed must be below 2**64, got {base_seed}")


def _check_workers(dataset, num_workers, timeout, prefetch_factor, worker_init_fn, multiprocessing_context) -> None:
    if isinstance(dataset, IterableDataset):
        raise TypeError("MultiWorkerLoader handles map-style datasets only, got an IterableDataset")
    _check_int("num_workers", num_workers, -(2**63))  # the type; the range, with its hint, next
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1 (use SimpleDataLoader for 0), got {num_workers}")
    _check_int("prefetch_factor", prefetch_factor, 1)
    _check_seconds("timeout", timeout)
    if worker_init_fn is not None and not callable(worker_init_fn):
        raise TypeError(f"worker_init_fn must be callable or None, got {worker_init_fn!r}")
    methods = mp.get_all_start_methods()
    if multiprocessing_context is not None and multiprocessing_context not in methods:
        raise ValueError(f"multiprocessing_context must be None or one of {methods}, got {multiprocessing_context!r}")


def _check_timing(worker_counts, num_samples, delay, batch_size) -> None:
    for i, count in enumerate(worker_counts):
        _check_int(f"worker_counts[{i}]", count, 0)
    _check_int("num_samples", num_samples, 1)
    _check_int("batch_size", batch_size, 1)
    _check_seconds("delay", delay)
