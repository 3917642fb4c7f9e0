r"""
# Feeding the Monster: Datasets and the DataLoader

!!! torchenstein "The Professor speaks"
    A monster is only as clever as what it eats. For years I watched apprentices shovel their data into
    `DataLoader` like coal into a furnace, never asking which lump went in when, or why their
    "reproducible" run changed the day a colleague added one innocent `torch.randn`. Today we take the
    furnace apart: the dataset, the sampler, the collate function and the loader that ties them together.
    Then we rebuild it and feed ours and PyTorch's side by side, until they serve the very same batches in
    the very same order, random number for random number.

**You will learn to**

- write map-style and iterable datasets, and say which kind a `DataLoader` sees;
- build `SequentialSampler`, `RandomSampler` and `BatchSampler` from scratch and prove them equal to
  PyTorch's;
- collate samples into a batch the way `default_collate` does, and pad variable-length sequences into a
  batch with their lengths and a mask;
- rebuild a single-process `DataLoader` that yields PyTorch's batches in PyTorch's order from the same seed;
- shuffle reproducibly with a `torch.Generator`, knowing exactly which random numbers every epoch uses;
- dodge four of Dr. Hammer's feeding accidents.

## Samples, batches and epochs

A **sample** is one training example: an image and its label, a sentence and its next word. A **batch**
is a stack of samples that the model processes in one forward pass, so every tensor in it has one extra
leading dimension, the batch dimension $B$. An **epoch** is one pass over the whole data set. A training
loop never walks the data itself; it asks a `DataLoader` for batches, and the loader asks three helpers:

1. the **dataset** for a sample, given its index;
2. the **sampler** for the order: which index comes next;
3. the **collate function**, which turns a list of samples into one batch.

Each has a from-scratch twin in this lesson, with PyTorch's name and arguments.

## Datasets: a length and a lookup

A **map-style dataset** is anything with `__len__` and `__getitem__(index)`: a plain Python list will do.
`torch.utils.data.Dataset` is a base class of almost nothing; it only lets `a + b` concatenate two data
sets. Our [`TensorDataset`][torchenstein.training.data.TensorDataset] wraps tensors that share their first
dimension and returns, for index $i$, the tuple of their $i$-th rows, exactly as PyTorch's does:

```pycon
>>> import torch
>>> from torch.utils import data
>>> from torchenstein.training.data import TensorDataset
>>> x, y = torch.arange(12.0).reshape(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
>>> ours, theirs = TensorDataset(x, y), data.TensorDataset(x, y)
>>> print(f"length: {len(ours)}, sample 4: {ours[4]}")
length: 6, sample 4: (tensor([8., 9.]), tensor(1))
>>> print("same as PyTorch's:", all(torch.equal(a, b) for a, b in zip(ours[4], theirs[4])))
same as PyTorch's: True
>>> TensorDataset(x, y[:5])
Traceback (most recent call last):
...
ValueError: tensors must share their first dimension (one row per sample), got sizes [6, 5]

```

An **iterable-style dataset** subclasses `torch.utils.data.IterableDataset` and defines `__iter__`
instead: a stream, read front to back, for data that cannot be looked up by index (a database cursor, a
pile of compressed shards, an endless generator of synthetic samples). Nobody can shuffle a stream or ask
for item 17; the loader simply takes the next items. The `DataLoader` tells the two kinds apart with one
`isinstance` check, so the subclassing is not optional.
[`RangeStream`][torchenstein.training.data.RangeStream] streams the integers of a range:

```pycon
>>> from torchenstein.training.data import RangeStream
>>> stream = RangeStream(3, 8)
>>> print(f"items: {list(stream)}, length: {len(stream)}, an IterableDataset: {isinstance(stream, data.IterableDataset)}")
items: [3, 4, 5, 6, 7], length: 5, an IterableDataset: True

```

## Samplers: the order of service

A **sampler** is an iterable of indices. PyTorch has three you meet every day, and each is a few lines:

- [`SequentialSampler`][torchenstein.training.data.SequentialSampler] yields `0, 1, ..., n - 1`;
- [`RandomSampler`][torchenstein.training.data.RandomSampler] yields a random permutation of them, a new
  one every epoch (or, with `replacement=True`, `num_samples` independent draws);
- [`BatchSampler`][torchenstein.training.data.BatchSampler] wraps a sampler and groups its indices into
  lists of `batch_size`; with `drop_last=True` it throws away a last, incomplete batch.

```pycon
>>> from torchenstein.training.data import BatchSampler, RandomSampler, SequentialSampler
>>> list(SequentialSampler(range(5)))
[0, 1, 2, 3, 4]
>>> list(BatchSampler(range(10), batch_size=4, drop_last=False))
[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
>>> list(BatchSampler(range(10), batch_size=4, drop_last=True))
[[0, 1, 2, 3], [4, 5, 6, 7]]
>>> ours = RandomSampler(range(10), generator=torch.Generator().manual_seed(0))
>>> theirs = data.RandomSampler(range(10), generator=torch.Generator().manual_seed(0))
>>> for epoch in (1, 2):
...     mine = list(ours)
...     print(f"epoch {epoch}: {mine}, same as PyTorch's: {mine == list(theirs)}")
epoch 1: [4, 1, 7, 5, 3, 9, 0, 8, 6, 2], same as PyTorch's: True
epoch 2: [4, 0, 8, 5, 9, 1, 6, 3, 7, 2], same as PyTorch's: True

```

Look closely at how `RandomSampler` uses randomness, because every reproducibility question ends here.
Given a `generator` (a `torch.Generator`, a random number stream of its own), it calls
`torch.randperm(n, generator=generator)` on it, so the generator's state moves on and the next epoch gets
a new permutation. Given none, it first draws one 64-bit seed from PyTorch's **global** generator (the
one `torch.manual_seed` seeds) and builds a private generator from it. And it is written as "whole
permutations for `num_samples // n` rounds, then one more permutation cut to the remaining
`num_samples % n`", so when an epoch runs to the end, **one extra permutation is drawn and thrown away**.
That wasted draw is invisible until you try to predict the second epoch; the first challenge below asks
you to.

## Collation: from a list of samples to one batch

The **collate function** receives the list of samples for one batch and returns the batch.
[`default_collate`][torchenstein.training.data.default_collate], PyTorch's default rebuilt, follows the
structure of the first sample:

- tensors are stacked along a new first dimension, NumPy arrays become tensors first;
- Python `int`s become an `int64` tensor, Python `float`s a **`float64`** tensor, strings stay a list;
- a tuple or list of fields becomes a **list** of collated fields, a dict becomes a dict of collated
  values, a named tuple stays a named tuple.

```pycon
>>> from torchenstein.training.data import default_collate
>>> default_collate([(torch.tensor([1.0, 2.0]), 0), (torch.tensor([3.0, 4.0]), 1)])
[tensor([[1., 2.],
        [3., 4.]]), tensor([0, 1])]
>>> default_collate([{"x": 1.5, "name": "a"}, {"x": 2.5, "name": "b"}])
{'x': tensor([1.5000, 2.5000], dtype=torch.float64), 'name': ['a', 'b']}

```

Stacking needs equal shapes, so sequences of different lengths (sentences, audio clips, time series)
need a collate function of their own. [`pad_collate`][torchenstein.training.data.pad_collate] pads each
sequence of shape $(T_i, \ldots)$ to the longest $T$ in the batch, giving $(B, T, \ldots)$, and returns the
true **lengths** and a boolean **mask** (`True` on real positions) so that later layers can ignore the
padding. The padded tensor equals `torch.nn.utils.rnn.pad_sequence(..., batch_first=True)`.
[`ToySequences`][torchenstein.training.data.ToySequences] holds sequences whose tokens all equal their
index plus one, and whose target is their length:

```pycon
>>> from torch.nn.utils.rnn import pad_sequence
>>> from torchenstein.training.data import ToySequences, pad_collate
>>> sequences = ToySequences(lengths=(2, 4, 1))
>>> sequences[1]
(tensor([2, 2, 2, 2]), 4)
>>> padded, lengths, mask, targets = pad_collate([sequences[i] for i in range(3)])
>>> padded
tensor([[1, 1, 0, 0],
        [2, 2, 2, 2],
        [3, 0, 0, 0]])
>>> print(f"lengths: {lengths}, targets: {targets}")
lengths: tensor([2, 4, 1]), targets: tensor([2, 4, 1])
>>> mask.int()
tensor([[1, 1, 0, 0],
        [1, 1, 1, 1],
        [1, 0, 0, 0]], dtype=torch.int32)
>>> print("same as pad_sequence:", torch.equal(padded, pad_sequence([sequences[i][0] for i in range(3)], batch_first=True)))
same as pad_sequence: True

```

## The DataLoader from scratch

Now the loader itself. [`SimpleDataLoader`][torchenstein.training.data.SimpleDataLoader] takes
`DataLoader`'s arguments (`dataset`, `batch_size`, `shuffle`, `sampler`, `batch_sampler`, `collate_fn`,
`drop_last`, `generator`) and does what `DataLoader(num_workers=0)` does:

1. At construction it picks a sampler (`RandomSampler(dataset, generator=generator)` if `shuffle`, else
   `SequentialSampler(dataset)`) unless you gave one, and wraps it in a `BatchSampler(sampler,
   batch_size, drop_last)` unless you gave a `batch_sampler`.
2. Each `iter(loader)` starts an epoch: it draws one 64-bit **base seed** from `generator` (or from the
   global generator when `generator` is `None`). The base seed is meant for worker processes (the
   subject of the next lesson), yet PyTorch draws it even with `num_workers=0`; we draw it too, or our
   shuffles would fall out of step with PyTorch's.
3. For each list of indices, it fetches the samples and hands the list to `collate_fn`.

An `IterableDataset` skips the samplers: the loader takes `batch_size` items at a time from the stream.
`len(loader)` is the number of batches: $\lceil n / B \rceil$, or $\lfloor n / B \rfloor$ with `drop_last`.

```pycon
>>> from torchenstein.training.data import SimpleDataLoader
>>> def batches(loader):
...     return [batch.tolist() for batch in loader]
>>> ours = SimpleDataLoader(range(10), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
>>> theirs = data.DataLoader(range(10), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
>>> for epoch in (1, 2):
...     mine = batches(ours)
...     print(f"epoch {epoch}: {mine}, same as PyTorch's: {mine == batches(theirs)}")
epoch 1: [[3, 7, 5, 2], [0, 8, 1, 6], [9, 4]], same as PyTorch's: True
epoch 2: [[1, 3, 2, 7], [5, 9, 0, 6], [4, 8]], same as PyTorch's: True
>>> print(f"batches: {len(ours)}, with drop_last: {len(SimpleDataLoader(range(10), batch_size=4, drop_last=True))}")
batches: 3, with drop_last: 2
>>> batches(SimpleDataLoader(RangeStream(0, 7), batch_size=3))
[[0, 1, 2], [3, 4, 5], [6]]
>>> SimpleDataLoader(range(10), shuffle=True, sampler=SequentialSampler(range(10)))
Traceback (most recent call last):
...
ValueError: sampler and shuffle=True are mutually exclusive (the sampler already decides the order), got both

```

Compare with the `RandomSampler` example above, same seed: the loader's orders are not the bare
sampler's, because each epoch of the loader spends a draw on the base seed before it shuffles. The tests
(`tests/test_data.py`) prove the two loaders yield identical batches, epoch after epoch, with and without
shuffling, with `drop_last` both ways, for batch sizes that do and do not divide the length, with
`batch_size=None`, for a stream, a custom sampler and a custom batch sampler, dict and tuple samples and an
empty data set, and that both leave the global generator in the same state.

**Where it differs from PyTorch.** Ours runs in the main process only: no `num_workers`, `pin_memory`,
`timeout`, `worker_init_fn`, `prefetch_factor` or `persistent_workers`. It does not warn when a stream
yields more samples than its `len()` promised, and its error messages are its own (where PyTorch raises
`ValueError` for an argument of the wrong type, such as `batch_size=2.0`, ours raises `TypeError`, and
PyTorch's `TensorDataset` reports mismatched sizes with an `AssertionError`). Our `default_collate` has no
registry for custom types and never allocates the batch in shared memory, which PyTorch does inside
worker processes.

## Reproducible shuffling: every random number accounted for

Here is the complete bill for one epoch of a shuffled loader with a generator: one 64-bit draw for the
base seed, one permutation, and (if the epoch runs to its end) one wasted permutation. Replayed by hand:

```pycon
>>> from torchenstein.training.data import draw_seed
>>> replay = torch.Generator().manual_seed(0)
>>> for epoch in (1, 2):
...     base_seed = draw_seed(replay)                             # for workers, even if there are none
...     order = torch.randperm(10, generator=replay).tolist()     # the epoch's order
...     _ = torch.randperm(10, generator=replay)                  # the wasted permutation
...     print(f"epoch {epoch}: {order}")
epoch 1: [3, 7, 5, 2, 0, 8, 1, 6, 9, 4]
epoch 2: [1, 3, 2, 7, 5, 9, 0, 6, 4, 8]

```

Without a generator, the same epoch costs the **global** generator two 64-bit draws: the base seed and
the sampler's private seed. A loader with its own generator leaves the global one untouched, so nothing
else in your program (weight initialisation, dropout, augmentation) can shift the order of your data, and
your data loading cannot shift them:

```pycon
>>> _ = torch.manual_seed(0)
>>> state = torch.get_rng_state()
>>> _ = batches(SimpleDataLoader(range(10), batch_size=4, shuffle=True, generator=torch.Generator()))
>>> print("own generator, global state untouched:", torch.equal(torch.get_rng_state(), state))
own generator, global state untouched: True
>>> _ = batches(SimpleDataLoader(range(10), batch_size=4, shuffle=True))
>>> print("no generator, global state untouched:", torch.equal(torch.get_rng_state(), state))
no generator, global state untouched: False

```

To resume a run in the middle of training, store `generator.get_state()` at the start of an epoch and
restore it with `generator.set_state(...)`: the rest of the run then sees the same batches.
[`plot_batches`][torchenstein.training.data.plot_batches] draws where each sample lands over two epochs:

![Two rows of numbered boxes, one row per epoch: the ten sample indices in their shuffled order, grouped and coloured by batch, four, four and two per batch, in a different order in each epoch.](plot_batches.svg)

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: drop_last on the validation set"
    Hammer copies his training loader to evaluate, `drop_last=True` and all. Shuffling the validation set
    is harmless (a sum does not care about order), but `drop_last` silently leaves samples out of the
    metric, and with shuffling it leaves out *different* ones each time: the score of an unchanged model
    wobbles. Here `correct` says which of ten validation samples the model gets right:

    ```pycon
    >>> correct = torch.tensor([1, 1, 1, 0, 1, 1, 0, 1, 1, 0])
    >>> def accuracy(loader):
    ...     hits, seen = 0, 0
    ...     for batch in loader:
    ...         hits, seen = hits + int(batch.sum()), seen + len(batch)
    ...     return f"{hits}/{seen}"
    >>> hammer = data.DataLoader(correct, batch_size=4, shuffle=True, drop_last=True,
    ...                          generator=torch.Generator().manual_seed(0))
    >>> [accuracy(hammer) for evaluation in range(3)]
    ['6/8', '5/8', '7/8']
    >>> honest = data.DataLoader(correct, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    >>> [accuracy(honest) for evaluation in range(3)]
    ['7/10', '7/10', '7/10']

    ```

    Evaluate with `drop_last=False` (the default). Shuffle the validation set or not, as you please.

!!! hammer "Dr. Hammer's trap: the default collate meets sentences"
    Hammer's data set returns sentences of different lengths. Training crashes at the first batch, inside
    `torch.stack`, with a message that never mentions his data set. The cure is a collate function that
    pads, and a mask that tells the model which positions are padding.

    ```pycon
    >>> sentences = ToySequences(lengths=(3, 5))
    >>> next(iter(data.DataLoader(sentences, batch_size=2)))
    Traceback (most recent call last):
    ...
    RuntimeError: stack expects each tensor to be equal size, but got [3] at entry 0 and [5] at entry 1
    >>> padded, lengths, mask, targets = next(iter(data.DataLoader(sentences, batch_size=2, collate_fn=pad_collate)))
    >>> print(f"padded: {tuple(padded.shape)}, lengths: {lengths.tolist()}, real positions: {mask.sum().item()}")
    padded: (2, 5), lengths: [3, 5], real positions: 8

    ```

!!! hammer "Dr. Hammer's trap: shuffling with the global generator"
    Hammer seeds once with `torch.manual_seed(0)` and calls his runs reproducible. Then a colleague adds
    a layer, whose initialisation draws from the global generator, and every batch of every epoch changes:
    the "same" experiment sees its data in another order. The coupling runs both ways: every
    `iter(loader)` draws a base seed from the global generator even without shuffling, so merely adding an
    evaluation pass changes every dropout mask that follows.

    ```pycon
    >>> def first_batch(**options):
    ...     return next(iter(data.DataLoader(range(10), batch_size=5, shuffle=True, **options))).tolist()
    >>> _ = torch.manual_seed(0)
    >>> before = first_batch()
    >>> _ = torch.manual_seed(0)
    >>> _ = torch.randn(3)                               # the colleague's new layer
    >>> print("same first batch after the new layer:", before == first_batch())
    same first batch after the new layer: False
    >>> _ = torch.manual_seed(0)
    >>> expected = torch.rand(1)
    >>> _ = torch.manual_seed(0)
    >>> _ = list(data.DataLoader(range(4)))             # an evaluation pass: no shuffle at all
    >>> print("same random numbers after an evaluation pass:", torch.equal(torch.rand(1), expected))
    same random numbers after an evaluation pass: False
    >>> def seeded():
    ...     return first_batch(generator=torch.Generator().manual_seed(0))
    >>> before = seeded()
    >>> _ = torch.randn(3)
    >>> print("own generator, same first batch after the new layer:", before == seeded())
    own generator, same first batch after the new layer: True

    ```

    Give every loader its own `torch.Generator`, seeded from your experiment's seed.

!!! hammer "Dr. Hammer's trap: NumPy's float64 sneaks in"
    Hammer's data set builds features with NumPy, whose default dtype is `float64`. `default_collate`
    keeps the dtype, so the batches are `float64`, and the model's `float32` weights refuse them (a Python
    `float` target becomes `float64` the same way). Our [`Linear`][torchenstein.nn.linear.Linear] says so
    clearly; PyTorch's says `mat1 and mat2 must have the same dtype`. The cure is to choose the dtype in
    the data set (see [Dtypes and devices](../../tensors/dtypes/index.md)).

    ```pycon
    >>> import numpy as np
    >>> from torchenstein.nn.linear import Linear
    >>> features = np.random.default_rng(0).normal(size=(6, 3))
    >>> print(f"NumPy's features: {features.dtype}, the batch: {default_collate([row for row in features]).dtype}")
    NumPy's features: float64, the batch: torch.float64
    >>> layer = Linear(3, 2)
    >>> layer(next(iter(data.DataLoader(features, batch_size=2))))
    Traceback (most recent call last):
    ...
    TypeError: input and weight must share a dtype, got torch.float64 and torch.float32
    >>> layer(next(iter(data.DataLoader(features.astype(np.float32), batch_size=2)))).dtype
    torch.float32

    ```

## Challenges

**1. Predict the shuffle.** Write `epoch_batches(num_samples, batch_size, seed, epoch, drop_last=False)`
that returns, as a list of lists of ints and *without* building a `DataLoader`, the batches of indices
that `DataLoader(range(num_samples), batch_size=batch_size, shuffle=True, drop_last=drop_last,
generator=torch.Generator().manual_seed(seed))` yields in epoch `epoch` (counting from 0), when every
earlier epoch ran to its end. Every random number of the section above counts.

**2. Buckets of similar length.** Padding wastes compute: a batch pays for its longest sequence. Write
`bucket_batches(lengths, batch_size, generator)` that returns a list of batches of indices, each index
exactly once, every batch full except at most one, grouping sequences of similar length (at most half
the padding of batching in the given order), in a random batch order drawn from `generator` only (so
that the model does not see short sequences first every epoch), and the same batches for the same seed.

Check an attempt with `check_epoch_batches(my_function)` (or `check_bucket_batches`), or put your
functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.training.data import (
...     bucket_batches, check_bucket_batches, check_epoch_batches, epoch_batches)
>>> check_epoch_batches(epoch_batches)                  # silence: every case passed
>>> check_bucket_batches(bucket_batches)

```
"""

from __future__ import annotations

import collections.abc
import copy
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# Datasets


class TensorDataset(Dataset):
    """A map-style dataset of tensors that share their first dimension, twin of ``torch.utils.data.TensorDataset``.

    Args:
        *tensors: tensors with the same ``size(0)``, one row per sample.

    Raises:
        TypeError: if an argument is not a tensor.
        ValueError: if no tensor is given or the first dimensions differ.

    Examples:
        >>> ds = TensorDataset(torch.zeros(3, 2), torch.arange(3))
        >>> len(ds), ds[2][1]
        (3, tensor(2))
    """

    def __init__(self, *tensors: Tensor) -> None:
        _check_tensors(tensors)
        self.tensors = tensors

    def __getitem__(self, index):
        # One sample is the index-th row of every tensor, as a tuple: (features, target).
        return tuple(tensor[index] for tensor in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].size(0)


class ToySequences(Dataset):
    """Variable-length token sequences: sample ``i`` is ``(torch.full((lengths[i],), i + 1), lengths[i])``.

    Args:
        lengths: the length of each sequence (0 or more).

    Examples:
        >>> ToySequences(lengths=(2, 0))[0]
        (tensor([1, 1]), 2)
    """

    def __init__(self, lengths: Sequence[int] = (3, 1, 4, 2)) -> None:
        self.lengths = [_check_count("lengths[i]", n, minimum=0) for n in lengths]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        length = self.lengths[index]
        return torch.full((length,), index + 1), length

    def __len__(self) -> int:
        return len(self.lengths)


class RangeStream(IterableDataset):
    """An iterable-style dataset that streams the integers ``start, ..., end - 1``.

    It also reports its length, which lets a ``DataLoader`` estimate how many batches it will give.

    Args:
        start: the first integer.
        end: one past the last integer.

    Examples:
        >>> list(RangeStream(2, 5))
        [2, 3, 4]
    """

    def __init__(self, start: int, end: int) -> None:
        _check_count("start", start, minimum=None)
        _check_count("end", end, minimum=None)
        if end < start:
            raise ValueError(f"end must be at least start={start}, got end={end}")
        self.start, self.end = start, end

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end))

    def __len__(self) -> int:
        return self.end - self.start


# Samplers


def draw_seed(generator: torch.Generator | None = None) -> int:
    """Draw one 64-bit seed the way ``DataLoader`` and ``RandomSampler`` do: ``random_()`` on an int64 scalar.

    Args:
        generator: the generator to draw from; ``None`` draws from PyTorch's global generator.

    Returns:
        A non-negative int below $2^{63}$.

    Examples:
        >>> draw_seed(torch.Generator().manual_seed(0)) == draw_seed(torch.Generator().manual_seed(0))
        True
    """
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())


class SequentialSampler:
    """Yield ``0, 1, ..., len(data_source) - 1``, twin of ``torch.utils.data.SequentialSampler``.

    Examples:
        >>> list(SequentialSampler("abc")), len(SequentialSampler("abc"))
        ([0, 1, 2], 3)
    """

    def __init__(self, data_source: collections.abc.Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler:
    """Yield indices in a random order, twin of ``torch.utils.data.RandomSampler``, random numbers included.

    Args:
        data_source: anything with a length.
        replacement: draw ``num_samples`` indices independently (``True``), or permute (``False``).
        num_samples: how many indices per epoch; ``None`` means ``len(data_source)``.
        generator: the generator to draw from; ``None`` draws one seed per epoch from the global generator.

    Raises:
        TypeError: if ``replacement`` is not a bool, or ``num_samples`` not an int.
        ValueError: if ``num_samples`` (or the length, when it is ``None``) is not positive.

    Examples:
        >>> sampler = RandomSampler(range(4), generator=torch.Generator().manual_seed(0))
        >>> sorted(sampler)
        [0, 1, 2, 3]
        >>> RandomSampler([])
        Traceback (most recent call last):
        ...
        ValueError: num_samples must be a positive int, got 0 (an empty data_source has nothing to sample)
    """

    def __init__(
        self,
        data_source: collections.abc.Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        _check_random_sampler(self)

    @property
    def num_samples(self) -> int:
        """Indices per epoch: ``num_samples`` if given, else the data set's length at this moment."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        if n == 0:
            raise ValueError("data_source is empty: there is nothing to sample from")
        generator = self.generator
        if generator is None:
            # One 64-bit draw from the global generator seeds a private one for this epoch: the global
            # stream moves on by one number, however many indices the epoch needs.
            generator = torch.Generator()
            generator.manual_seed(draw_seed(None))
        if self.replacement:
            # Independent draws, 32 at a time (then the remainder), exactly as PyTorch draws them.
            for _ in range(self.num_samples // 32):
                yield from torch.randint(high=n, size=(32,), dtype=torch.int64, generator=generator).tolist()
            yield from torch.randint(
                high=n, size=(self.num_samples % 32,), dtype=torch.int64, generator=generator
            ).tolist()
        else:
            for _ in range(self.num_samples // n):
                yield from torch.randperm(n, generator=generator).tolist()
            # The remainder is cut from one more permutation. When num_samples is a multiple of n it is
            # cut to nothing, yet the permutation is drawn: a full epoch costs one permutation extra.
            yield from torch.randperm(n, generator=generator).tolist()[: self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler:
    """Group a sampler's indices into lists of ``batch_size``, twin of ``torch.utils.data.BatchSampler``.

    Args:
        sampler: any iterable of indices.
        batch_size: indices per batch, at least 1.
        drop_last: drop a last batch shorter than ``batch_size``.

    Raises:
        TypeError: if ``batch_size`` is not an int or ``drop_last`` not a bool.
        ValueError: if ``batch_size`` is below 1.

    Examples:
        >>> list(BatchSampler(range(5), batch_size=2, drop_last=False))
        [[0, 1], [2, 3], [4]]
        >>> len(BatchSampler(range(5), batch_size=2, drop_last=True))
        2
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _check_count("batch_size", batch_size, minimum=1)
        self.drop_last = _check_bool("drop_last", drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        indices = iter(self.sampler)
        while True:
            # islice takes up to batch_size indices; an empty list means the sampler ran dry.
            batch = list(itertools.islice(indices, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


# Collation


# NumPy dtypes of text and Python objects: arrays of these cannot become tensors.
_NUMPY_TEXT = re.compile(r"[SaUO]")
_COLLATE_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def default_collate(batch: list) -> Any:
    """Turn a list of samples into one batch, twin of ``torch.utils.data.default_collate``.

    Args:
        batch: a non-empty list (or tuple) of samples, all with the structure of the first.

    Returns:
        The batch: tensors stacked on a new first dimension, numbers as tensors, strings as a list, and
        tuples, lists, named tuples and dicts collated field by field (tuples and lists become lists).

    Raises:
        RuntimeError: if tensors cannot be stacked, or sequence samples have different lengths.
        TypeError: if a sample holds something that cannot be collated.

    Examples:
        >>> default_collate([1, 2, 3])
        tensor([1, 2, 3])
        >>> default_collate([object()])
        Traceback (most recent call last):
        ...
        TypeError: default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found <class 'object'>
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        # (B, *elem.shape): torch.stack checks that every sample has the same shape.
        return torch.stack(batch, 0)
    if isinstance(elem, np.ndarray):
        if _NUMPY_TEXT.search(elem.dtype.str) is not None:
            raise TypeError(_COLLATE_ERROR.format(elem.dtype))
        # as_tensor keeps NumPy's dtype: float64 arrays give a float64 batch.
        return default_collate([torch.as_tensor(b) for b in batch])
    if isinstance(elem, (np.bool_, np.number, np.object_)):
        return torch.as_tensor(batch)
    if isinstance(elem, float):
        # Python floats are double precision, and the batch says so.
        return torch.tensor(batch, dtype=torch.float64)
    if isinstance(elem, int):
        return torch.tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        fields = {key: default_collate([sample[key] for sample in batch]) for key in elem}
        if isinstance(elem, collections.abc.MutableMapping):
            # A copy of the first sample keeps its type (an OrderedDict stays one), with new values.
            clone = copy.copy(elem)
            clone.update(fields)
            return clone
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(field) for field in zip(*batch, strict=False)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        # Transpose: a list of B samples of k fields becomes k tuples of B values each (so strings inside
        # a tuple sample come back as a tuple of strings, exactly as in PyTorch).
        fields = [default_collate(field) for field in zip(*batch, strict=False)]
        if isinstance(elem, tuple):
            return fields
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, field in enumerate(fields):
                clone[i] = field
            return clone
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_COLLATE_ERROR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """Turn NumPy arrays and scalars inside one sample into tensors, twin of ``torch.utils.data.default_convert``.

    The loader uses it instead of ``default_collate`` when it does not batch (``batch_size=None``).

    Examples:
        >>> default_convert((np.arange(2), "name"))
        [tensor([0, 1]), 'name']
    """
    if isinstance(data, Tensor):
        return data
    kind = type(data)
    if kind.__module__ == "numpy" and kind.__name__ not in ("str_", "string_"):
        if isinstance(data, np.ndarray) and _NUMPY_TEXT.search(data.dtype.str) is not None:
            return data
        return torch.as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        fields = {key: default_convert(data[key]) for key in data}
        if isinstance(data, collections.abc.MutableMapping):
            clone = copy.copy(data)
            clone.update(fields)
            return clone
        try:
            return kind(fields)
        except TypeError:
            return fields
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return kind(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        converted = [default_convert(d) for d in data]
        if isinstance(data, collections.abc.MutableSequence):
            clone = copy.copy(data)
            for i, d in enumerate(converted):
                clone[i] = d
            return clone
        try:
            return kind(converted)
        except TypeError:
            return converted
    return data


def pad_collate(batch: list, padding_value: float = 0) -> tuple:
    """Collate variable-length sequences: pad to the longest, and return the lengths and a mask too.

    Args:
        batch: a non-empty list of samples, each a tensor of shape ``(T_i, *)`` or a tuple whose first
            field is one (the other fields are collated by ``default_collate``).
        padding_value: the value written after the end of each sequence.

    Returns:
        ``(padded, lengths, mask)``, followed by the other collated fields if the samples are tuples:
        ``padded`` of shape ``(B, T, *)`` with ``T`` the longest length, ``lengths`` of shape ``(B,)``
        (int64), ``mask`` of shape ``(B, T)``, ``True`` on real positions.

    Raises:
        ValueError: if the batch is empty or the sequences differ in their trailing shape or dtype.
        TypeError: if the batch is not a list, or a sequence not a tensor of at least one dimension.

    Examples:
        >>> padded, lengths, mask = pad_collate([torch.ones(2, 3), torch.ones(1, 3)])
        >>> padded.shape, lengths.tolist(), mask.tolist()
        (torch.Size([2, 2, 3]), [2, 1], [[True, True], [True, False]])
        >>> pad_collate([torch.ones(2, 3), torch.ones(2, 4)])
        Traceback (most recent call last):
        ...
        ValueError: every sequence must have the trailing shape (3,) of the first, got (4,) at entry 1
    """
    if not isinstance(batch, list):
        raise TypeError(f"batch must be a non-empty list of samples, got {type(batch).__name__}")
    if not batch:
        raise ValueError(f"batch must be a non-empty list of samples, got {batch!r}")
    has_fields = not isinstance(batch[0], Tensor)
    sequences = [sample[0] for sample in batch] if has_fields else batch
    _check_sequences(sequences)
    first = sequences[0]
    lengths = torch.tensor([s.size(0) for s in sequences], dtype=torch.int64)  # (B,)
    longest = int(lengths.max())
    # One allocation filled with the padding value, then each sequence copied into its row.
    padded = first.new_full((len(sequences), longest, *first.shape[1:]), padding_value)  # (B, T, *)
    for row, sequence in enumerate(sequences):
        padded[row, : sequence.size(0)] = sequence
    # Position t of row b is real when t < length[b]: a (1, T) row of positions against a (B, 1) column.
    mask = torch.arange(longest)[None, :] < lengths[:, None]  # (B, T)
    if not has_fields:
        return padded, lengths, mask
    rest = default_collate([tuple(sample[1:]) for sample in batch])
    return (padded, lengths, mask, *rest)


# The loader


class SimpleDataLoader:
    """A single-process ``DataLoader`` from scratch: same arguments, same batches, same random numbers.

    Args:
        dataset: a map-style dataset (``__len__`` and ``__getitem__``) or an ``IterableDataset``.
        batch_size: samples per batch; ``None`` yields single samples, unbatched.
        shuffle: draw a new random order every epoch (map-style datasets only).
        sampler: an iterable of indices that decides the order (instead of ``shuffle``).
        batch_sampler: an iterable of lists of indices (instead of ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``).
        collate_fn: turns a list of samples into a batch; ``None`` means ``default_collate`` (or
            ``default_convert`` when not batching).
        drop_last: drop a last batch shorter than ``batch_size``.
        generator: the generator for the shuffle and the per-epoch base seed; ``None`` uses the global one.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if arguments conflict, as they do for ``DataLoader``.

    Examples:
        >>> [b.tolist() for b in SimpleDataLoader(range(5), batch_size=2)]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Iterable | None = None,
        batch_sampler: Iterable[list] | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        _check_loader(dataset, batch_size, shuffle, sampler, batch_sampler, collate_fn, drop_last, generator)
        self.dataset = dataset
        self.is_stream = isinstance(dataset, IterableDataset)
        if batch_sampler is not None:
            # A batch sampler makes all the batching decisions itself.
            batch_size, drop_last = None, False
        if sampler is None and not self.is_stream:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not self.is_stream:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size, self.drop_last, self.generator = batch_size, drop_last, generator
        self.sampler, self.batch_sampler = sampler, batch_sampler
        # Batching happens when a batch sampler exists (or, for a stream, a batch size): then the samples
        # of a batch are collated, otherwise each sample is only converted.
        self.batching = batch_sampler is not None or (self.is_stream and batch_size is not None)
        if collate_fn is None:
            collate_fn = default_collate if self.batching else default_convert
        self.collate_fn = collate_fn

    def __iter__(self) -> Iterator:
        # The order of these three steps is PyTorch's: the index iterator is created, then the base seed
        # drawn, then (for a stream) the dataset's iterator created. With generator functions the first
        # and last run no code yet; with an eager custom sampler, the order decides the random numbers.
        indices = None if self.is_stream else iter(self.batch_sampler if self.batching else self.sampler)
        self.base_seed = draw_seed(self.generator)
        if self.is_stream:
            return self._from_stream(iter(self.dataset))
        return self._from_indices(indices)

    def _from_indices(self, indices: Iterator) -> Iterator:
        for index in indices:
            if not self.batching:
                yield self.collate_fn(self.dataset[index])
                continue
            # A dataset may fetch a whole batch in one call (PyTorch's Subset does); otherwise one by one.
            if getattr(self.dataset, "__getitems__", None):
                samples = self.dataset.__getitems__(index)
            else:
                samples = [self.dataset[i] for i in index]
            yield self.collate_fn(samples)

    def _from_stream(self, stream: Iterator) -> Iterator:
        if not self.batching:
            for sample in stream:
                yield self.collate_fn(sample)
            return
        while True:
            samples = list(itertools.islice(stream, self.batch_size))
            if not samples or (self.drop_last and len(samples) < self.batch_size):
                return
            yield self.collate_fn(samples)
            if len(samples) < self.batch_size:
                return  # the stream ran dry inside this batch; PyTorch asks it for nothing more

    def __len__(self) -> int:
        if self.is_stream:
            # Only an estimate, trusted from the stream's own __len__ (a TypeError if it has none).
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batching else self.sampler)


# The figure


def plot_batches(
    *, num_samples: int = 10, batch_size: int = 4, epochs: int = 2, seed: int = 0, drop_last: bool = False
) -> Figure:
    """Draw which sample lands in which batch, epoch by epoch, for a shuffled loader.

    Args:
        num_samples: the size of the data set.
        batch_size: samples per batch.
        epochs: how many epochs to draw, one row each.
        seed: the seed of the loader's generator.
        drop_last: drop the last incomplete batch (its samples are drawn in grey).

    Returns:
        A figure with one axes per epoch.

    Examples:
        >>> len(plot_batches(num_samples=5, batch_size=2, epochs=3).axes)
        3
    """
    from matplotlib.patches import Rectangle

    _check_count("num_samples", num_samples, minimum=1)
    _check_count("epochs", epochs, minimum=1)
    loader = SimpleDataLoader(
        range(num_samples), batch_size=batch_size, shuffle=True, drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
    )
    fig, axes = new_figure(epochs, 1, width=7.0, height=0.95 * epochs + 0.4)
    for epoch, ax in enumerate(axes):
        x, seen = 0.0, set()
        for number, batch in enumerate(loader):
            colour = PALETTE[number % len(PALETTE)]
            ax.text(x + len(batch) / 2 - 0.05, 1.02, f"batch {number}", ha="center", va="bottom", fontsize=8)
            for index in batch.tolist():
                ax.add_patch(Rectangle((x, 0), 0.9, 0.9, color=colour))
                ax.text(x + 0.45, 0.45, str(index), ha="center", va="center", color="white", fontsize=10)
                seen.add(index)
                x += 1
            x += 0.5  # a gap between batches
        dropped = [i for i in range(num_samples) if i not in seen]
        if dropped:
            ax.text(x + len(dropped) / 2 - 0.05, 1.02, "dropped", ha="center", va="bottom", fontsize=8)
        for index in dropped:
            ax.add_patch(Rectangle((x, 0), 0.9, 0.9, color="#cccccc"))
            ax.text(x + 0.45, 0.45, str(index), ha="center", va="center", color="#555555", fontsize=10)
            x += 1
        ax.set_xlim(-0.2, max(x, 1.0))
        ax.set_ylim(-0.1, 1.45)
        ax.set_axis_off()
        ax.set_title(f"epoch {epoch + 1}", loc="left", fontsize=10)
    return fig


# Challenges


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int, drop_last: bool = False) -> list[list[int]]:
    """Challenge solution: the index batches of epoch ``epoch`` of a seeded, shuffled ``DataLoader``.

    Examples:
        >>> epoch_batches(10, 4, seed=0, epoch=1)
        [[1, 3, 2, 7], [5, 9, 0, 6], [4, 8]]
    """
    _check_count("epoch", epoch, minimum=0)
    generator = torch.Generator().manual_seed(seed)
    sampler = BatchSampler(RandomSampler(range(num_samples), generator=generator), batch_size, drop_last)
    for _ in range(epoch):
        # A finished epoch: the base seed, then the sampler run to its end (wasted permutation included).
        draw_seed(generator)
        for _ in sampler:
            pass
    draw_seed(generator)
    return list(sampler)


def check_epoch_batches(candidate: Callable[..., list[list[int]]]) -> None:
    """Raise AssertionError if ``candidate`` does not predict ``DataLoader``'s shuffled batches."""
    from torch.utils.data import DataLoader

    for num_samples, batch_size, seed, epoch, drop_last in (
        (10, 4, 0, 0, False), (10, 4, 0, 1, False), (10, 4, 3, 2, True), (8, 4, 1, 1, True),
        (7, 3, 5, 3, False), (1, 1, 0, 1, False), (5, 8, 2, 1, False), (5, 8, 2, 1, True), (33, 5, 7, 4, False),
    ):
        loader = DataLoader(range(num_samples), batch_size=batch_size, shuffle=True, drop_last=drop_last,
                            generator=torch.Generator().manual_seed(seed))
        for _ in range(epoch):
            for _ in loader:
                pass
        expected = [batch.tolist() for batch in loader]
        got = candidate(num_samples, batch_size, seed, epoch, drop_last)
        case = f"num_samples={num_samples}, batch_size={batch_size}, seed={seed}, epoch={epoch}, drop_last={drop_last}"
        assert isinstance(got, list) and all(isinstance(b, list) for b in got), (
            f"for {case} expected a list of lists of ints, got {got!r}"
        )
        assert got == expected, (
            f"for {case} expected {expected}, got {got}: did you count the base seed of every epoch, and the "
            "permutation a finished epoch throws away?"
        )


def _padding(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Padded positions when each batch is padded to its longest sequence."""
    return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)


def bucket_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Challenge solution: batches of sequences of similar length, in a random order.

    Examples:
        >>> bucket_batches([5, 1, 4, 2, 1, 5], 2, torch.Generator().manual_seed(0))
        [[1, 4], [5, 0], [3, 2]]
    """
    _check_count("batch_size", batch_size, minimum=1)
    n = len(lengths)
    if n == 0:
        return []
    # Shuffle first, then sort by length (a stable sort): equal lengths end up in a random order.
    shuffled = torch.randperm(n, generator=generator).tolist()
    by_length = sorted(shuffled, key=lambda i: lengths[i])
    batches = [by_length[i : i + batch_size] for i in range(0, n, batch_size)]
    # Serve the buckets in random order, or every epoch would start with the short sequences.
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def check_bucket_batches(candidate: Callable[..., list[list[int]]]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``bucket_batches``."""
    g = torch.Generator().manual_seed(0)
    for n, batch_size in ((103, 8), (64, 16), (9, 4), (3, 5), (1, 1), (0, 4)):
        lengths = torch.randint(1, 51, (n,), generator=g).tolist()
        state = torch.get_rng_state()
        got = candidate(lengths, batch_size, torch.Generator().manual_seed(1))
        case = f"{n} sequences, batch_size={batch_size}"
        assert torch.equal(torch.get_rng_state(), state), f"for {case}: use the generator, not the global one"
        assert isinstance(got, list) and all(isinstance(b, list) for b in got), f"for {case}: return a list of lists"
        assert sorted(i for b in got for i in b) == list(range(n)), (
            f"for {case}: every index 0..{n - 1} must appear exactly once"
        )
        assert all(len(b) > 0 for b in got) and sum(len(b) < batch_size for b in got) <= 1, (
            f"for {case}: every batch must hold batch_size indices, except at most one shorter one"
        )
        assert all(len(b) <= batch_size for b in got), f"for {case}: no batch may exceed batch_size"
        assert got == candidate(lengths, batch_size, torch.Generator().manual_seed(1)), (
            f"for {case}: the same seed must give the same batches"
        )
        if n >= 64:
            in_order = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
            assert _padding(lengths, got) <= 0.5 * _padding(lengths, in_order), (
                f"for {case}: group similar lengths: padding {_padding(lengths, got)} is more than half of "
                f"{_padding(lengths, in_order)}, the padding of batching in the given order"
            )
            runs = [candidate(lengths, batch_size, torch.Generator().manual_seed(s)) for s in range(4)]
            longest = [[max(lengths[i] for i in b) for b in run] for run in runs]
            assert any(order != sorted(order) for order in longest), (
                f"for {case}: the batches must come in a random order, not shortest first"
            )
            assert len({tuple(map(tuple, run)) for run in runs}) > 1, (
                f"for {case}: different seeds must give different batch orders"
            )


# Argument checks, kept here so the ideas above read first


def _check_count(name: str, value: object, *, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def _check_tensors(tensors: tuple) -> None:
    if not tensors:
        raise ValueError("TensorDataset needs at least one tensor, got none")
    for i, tensor in enumerate(tensors):
        if not isinstance(tensor, Tensor) or tensor.dim() == 0:
            raise TypeError(f"tensors[{i}] must be a tensor with at least one dimension, got {tensor!r}")
    sizes = [tensor.size(0) for tensor in tensors]
    if len(set(sizes)) > 1:
        raise ValueError(f"tensors must share their first dimension (one row per sample), got sizes {sizes}")


def _check_random_sampler(sampler: RandomSampler) -> None:
    _check_bool("replacement", sampler.replacement)
    num_samples = sampler.num_samples
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise TypeError(f"num_samples must be a positive int, got {num_samples!r}")
    if num_samples <= 0:
        empty = " (an empty data_source has nothing to sample)" if num_samples == 0 and sampler._num_samples is None else ""
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}{empty}")
    if sampler.generator is not None and not isinstance(sampler.generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {sampler.generator!r}")


def _check_sequences(sequences: list) -> None:
    first = sequences[0]
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor) or s.dim() == 0:
            raise TypeError(f"each sequence must be a tensor of shape (T, ...), got {s!r} at entry {i}")
        if s.shape[1:] != first.shape[1:]:
            raise ValueError(
                f"every sequence must have the trailing shape {tuple(first.shape[1:])} of the first, "
                f"got {tuple(s.shape[1:])} at entry {i}"
            )
        if s.dtype != first.dtype:
            raise ValueError(f"every sequence must have the dtype {first.dtype} of the first, got {s.dtype} at entry {i}")


def _check_loader(dataset, batch_size, shuffle, sampler, batch_sampler, collate_fn, drop_last, generator) -> None:
    if batch_size is not None:
        _check_count("batch_size", batch_size, minimum=1)
    if shuffle is not None:
        _check_bool("shuffle", shuffle)
    _check_bool("drop_last", drop_last)
    if collate_fn is not None and not callable(collate_fn):
        raise TypeError(f"collate_fn must be callable or None, got {collate_fn!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if isinstance(dataset, IterableDataset):
        for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value is not None and value is not False:
                raise ValueError(f"an IterableDataset decides its own order: {name} must be left unset, got {value!r}")
    elif not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(
            f"dataset must be map-style (__getitem__ and __len__) or an IterableDataset, got {type(dataset).__name__}"
        )
    if sampler is not None and shuffle:
        raise ValueError(
            "sampler and shuffle=True are mutually exclusive (the sampler already decides the order), got both"
        )
    if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
        raise ValueError(
            "batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last, got "
            f"batch_size={batch_size}, shuffle={shuffle}, sampler={sampler!r}, drop_last={drop_last}"
        )
    if batch_size is None and drop_last:
        raise ValueError("batch_size=None turns batching off, so drop_last=True has nothing to drop")
