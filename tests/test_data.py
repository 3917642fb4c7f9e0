"""Datasets, samplers, collation and the loader from scratch, proved equal to torch.utils.data."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch.nn.utils.rnn import pad_sequence
from torch.utils import data

from torchenstein.training.data import (
    BatchSampler,
    RandomSampler,
    RangeStream,
    SequentialSampler,
    SimpleDataLoader,
    TensorDataset,
    ToySequences,
    bucket_batches,
    check_bucket_batches,
    check_epoch_batches,
    default_collate,
    default_convert,
    draw_seed,
    epoch_batches,
    pad_collate,
    plot_batches,
)

Point = collections.namedtuple("Point", ["x", "y"])


def assert_same(ours, theirs, where="batch"):
    """Same structure, same types, same tensors (values and dtypes) all the way down."""
    assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(ours, torch.Tensor):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, f"{where}: {ours!r} != {theirs!r}"
        assert torch.equal(ours, theirs), f"{where}: {ours!r} != {theirs!r}"
    elif isinstance(ours, np.ndarray):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), where
    elif isinstance(ours, dict):
        assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
        for key in ours:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), f"{where}: lengths {len(ours)} != {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def run_epochs(make_ours, make_theirs, epochs=3, global_seed=1234):
    """Run both loaders for several epochs from the same global seed; compare batches and RNG states."""
    torch.manual_seed(global_seed)
    ours = make_ours()
    ours_batches, ours_states = [], []
    for _ in range(epochs):
        ours_batches.append(list(ours))
        ours_states.append(torch.get_rng_state())
    torch.manual_seed(global_seed)
    theirs = make_theirs()
    for epoch in range(epochs):
        assert_same(ours_batches[epoch], list(theirs), f"epoch {epoch}")
        assert torch.equal(ours_states[epoch], torch.get_rng_state()), f"global generator differs after epoch {epoch}"
    return ours_batches


# Datasets


def test_tensor_dataset_matches_torch():
    x, y = torch.randn(7, 3), torch.arange(7)
    ours, theirs = TensorDataset(x, y), data.TensorDataset(x, y)
    assert len(ours) == len(theirs) == 7
    for index in (0, 6, -1, slice(1, 4), [0, 2], torch.tensor([5, 1])):
        assert_same(ours[index], theirs[index], f"index {index!r}")
    assert_same(TensorDataset(x)[3], data.TensorDataset(x)[3])


def test_tensor_dataset_errors_and_the_pinned_difference():
    with pytest.raises(ValueError, match=r"got sizes \[3, 2\]"):
        TensorDataset(torch.zeros(3), torch.zeros(2))
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        data.TensorDataset(torch.zeros(3), torch.zeros(2))  # PyTorch's type of error: an assert
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(TypeError, match=r"tensors\[1\] must be a tensor with at least one dimension"):
        TensorDataset(torch.zeros(3), torch.tensor(1.0))


def test_toy_sequences_and_range_stream():
    seqs = ToySequences(lengths=(2, 0, 3))
    assert len(seqs) == 3 and seqs[1][0].shape == (0,) and seqs[2][1] == 3
    assert seqs[2][0].tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match=r"lengths\[i\] must be at least 0, got -1"):
        ToySequences(lengths=(1, -1))
    stream = RangeStream(-2, 2)
    assert list(stream) == list(stream) == [-2, -1, 0, 1] and len(stream) == 4
    assert list(RangeStream(3, 3)) == []
    with pytest.raises(ValueError, match="end must be at least start=5, got end=4"):
        RangeStream(5, 4)
    with pytest.raises(TypeError, match="start must be an int, got 1.5"):
        RangeStream(1.5, 4)


# Samplers


@pytest.mark.parametrize("n", [1, 2, 5, 10, 33])
def test_sequential_sampler_matches_torch(n):
    assert list(SequentialSampler(range(n))) == list(data.SequentialSampler(range(n))) == list(range(n))
    assert len(SequentialSampler(range(n))) == n


@pytest.mark.parametrize("n", [1, 5, 33])
@pytest.mark.parametrize("replacement", [False, True])
@pytest.mark.parametrize("num_samples", [None, 7, 65])
@pytest.mark.parametrize("seeded", [True, False])
def test_random_sampler_matches_torch_epoch_after_epoch(n, replacement, num_samples, seeded):
    def make(cls):
        generator = torch.Generator().manual_seed(n) if seeded else None
        return cls(range(n), replacement=replacement, num_samples=num_samples, generator=generator)

    torch.manual_seed(5)
    ours = make(RandomSampler)
    ours_epochs, states = [], []
    for _ in range(3):
        ours_epochs.append(list(ours))
        states.append((torch.get_rng_state(), ours.generator.get_state() if seeded else None))
    torch.manual_seed(5)
    theirs = make(data.RandomSampler)
    for epoch in range(3):
        assert ours_epochs[epoch] == list(theirs)
        assert torch.equal(states[epoch][0], torch.get_rng_state())
        if seeded:
            assert torch.equal(states[epoch][1], theirs.generator.get_state())
    assert len(ours) == len(theirs) == (n if num_samples is None else num_samples)
    expected_length = n if num_samples is None else num_samples
    assert all(len(epoch) == expected_length for epoch in ours_epochs)
    if not replacement and num_samples is None:
        assert all(sorted(epoch) == list(range(n)) for epoch in ours_epochs)


def test_random_sampler_wastes_one_permutation_per_finished_epoch():
    generator = torch.Generator().manual_seed(0)
    sampler = RandomSampler(range(6), generator=generator)
    first = list(sampler)
    replay = torch.Generator().manual_seed(0)
    assert first == torch.randperm(6, generator=replay).tolist()
    torch.randperm(6, generator=replay)  # the wasted one
    assert torch.equal(generator.get_state(), replay.get_state())
    # Stopping early skips the wasted permutation: the next epoch is different from a finished run.
    early = RandomSampler(range(6), generator=torch.Generator().manual_seed(0))
    assert list(itertools.islice(early, 6)) == first
    assert list(early) != list(sampler)


def test_random_sampler_without_generator_draws_one_global_seed_per_epoch():
    torch.manual_seed(3)
    order = list(RandomSampler(range(8)))
    torch.manual_seed(3)
    private = torch.Generator().manual_seed(draw_seed())
    assert order == torch.randperm(8, generator=private).tolist()
    state = torch.get_rng_state()
    torch.manual_seed(3)
    list(RandomSampler(range(8)))
    assert torch.equal(torch.get_rng_state(), state)


def test_sampler_errors_and_their_types():
    for cls in (RandomSampler, data.RandomSampler):
        with pytest.raises(ValueError, match="num_samples"):
            cls([])
        with pytest.raises(ValueError, match="num_samples"):
            cls(range(3), num_samples=0)
        with pytest.raises(TypeError, match="replacement"):
            cls(range(3), replacement=1)
    with pytest.raises(ValueError, match=r"an empty data_source has nothing to sample"):
        RandomSampler([])
    # A wrong type is a TypeError here, a ValueError in PyTorch (the documented difference).
    with pytest.raises(TypeError, match="num_samples must be a positive int, got 2.0"):
        RandomSampler(range(3), num_samples=2.0)
    with pytest.raises(ValueError, match="num_samples"):
        data.RandomSampler(range(3), num_samples=2.0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got 0"):
        RandomSampler(range(3), generator=0)
    data_source = [1, 2]
    sampler = RandomSampler(data_source, num_samples=3)
    data_source.clear()
    with pytest.raises(ValueError, match="data_source is empty"):
        list(sampler)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9])
@pytest.mark.parametrize("batch_size", [1, 3, 8, 10])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_matches_torch(n, batch_size, drop_last):
    ours = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
    theirs = data.BatchSampler(data.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs) == len(list(ours))
    assert list(BatchSampler(iter(range(n)), batch_size, drop_last)) == list(theirs)  # any iterable


def test_batch_sampler_errors_and_the_pinned_difference():
    for cls in (BatchSampler, data.BatchSampler):
        with pytest.raises(ValueError, match="batch_size"):
            cls(range(3), 0, False)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        BatchSampler(range(3), 0, False)
    # A wrong type: ours says TypeError, PyTorch says ValueError.
    with pytest.raises(TypeError, match="batch_size must be an int, got 2.0"):
        BatchSampler(range(3), 2.0, False)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        data.BatchSampler(range(3), 2.0, False)
    with pytest.raises(TypeError, match="drop_last must be a bool, got 1"):
        BatchSampler(range(3), 2, 1)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        data.BatchSampler(range(3), 2, 1)


# Collation

COLLATE_CASES = {
    "tensors": [torch.randn(2, 3) for _ in range(4)],
    "0-d tensors": [torch.tensor(i) for i in range(3)],
    "bf16 tensors": [torch.ones(2, dtype=torch.bfloat16) * i for i in range(3)],
    "ints": [1, 2, 3],
    "bools": [True, False],
    "floats": [0.5, 1.5],
    "strings": ["a", "b"],
    "bytes": [b"a", b"b"],
    "numpy float64": [np.arange(3.0), np.ones(3)],
    "numpy int32": [np.arange(3, dtype=np.int32)] * 2,
    "numpy bool": [np.array([True, False])] * 2,
    "numpy scalars": [np.float32(1.5), np.float32(2.5)],
    "numpy int64 scalars": [np.int64(3), np.int64(4)],
    "numpy float64 scalars": [np.float64(0.5), np.float64(1.0)],
    "tuples": [(torch.zeros(2), 0), (torch.ones(2), 1)],
    "lists": [[1, 2.0, "x"], [3, 4.0, "y"]],
    "dicts": [{"x": torch.zeros(2), "y": 1, "name": "a"}, {"x": torch.ones(2), "y": 2, "name": "b"}],
    "ordered dicts": [collections.OrderedDict(b=1, a=2.0), collections.OrderedDict(b=3, a=4.0)],
    "named tuples": [Point(1, torch.zeros(2)), Point(2, torch.ones(2))],
    "nested": [{"pair": (1, [2.0, np.int64(3)]), "p": Point(0.5, "s")}, {"pair": (4, [5.0, np.int64(6)]), "p": Point(1.5, "t")}],
    "one sample": [(torch.arange(3), {"k": 1})],
}


@pytest.mark.parametrize("name", list(COLLATE_CASES))
def test_default_collate_matches_torch(name):
    batch = COLLATE_CASES[name]
    assert_same(default_collate(batch), data.default_collate(batch), name)


@pytest.mark.parametrize("name", list(COLLATE_CASES))
def test_default_convert_matches_torch(name):
    for sample in COLLATE_CASES[name]:
        assert_same(default_convert(sample), data.default_convert(sample), name)


def test_default_convert_leaves_text_arrays_alone():
    for sample in (np.array(["a", "b"]), np.str_("x"), "plain", 3, None):
        assert_same(default_convert(sample), data.default_convert(sample))


def test_collate_errors_are_torchs():
    for collate in (default_collate, data.default_collate):
        with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[3\] at entry 0 and \[5\]"):
            collate([torch.zeros(3), torch.zeros(5)])
        with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
            collate([[1, 2], [3]])
        with pytest.raises(TypeError, match="found <U1"):
            collate([np.array(["a"]), np.array(["b"])])
        with pytest.raises(TypeError, match="found <class 'NoneType'>"):
            collate([None, None])


@pytest.mark.parametrize("trailing", [(), (3,), (2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.float16, torch.bool])
@pytest.mark.parametrize("padding_value", [0, 1])
def test_pad_collate_matches_pad_sequence(trailing, dtype, padding_value):
    g = torch.Generator().manual_seed(0)
    lengths = [3, 1, 0, 5, 5]
    sequences = [torch.randint(0, 2, (n, *trailing), generator=g).to(dtype) for n in lengths]
    padded, got_lengths, mask = pad_collate(list(sequences), padding_value=padding_value)
    assert_same(padded, pad_sequence(sequences, batch_first=True, padding_value=padding_value))
    assert got_lengths.tolist() == lengths and got_lengths.dtype == torch.int64
    assert mask.dtype == torch.bool and mask.shape == (5, 5)
    assert torch.equal(mask.sum(1), got_lengths)
    for row, n in enumerate(lengths):
        assert mask[row, :n].all() and not mask[row, n:].any()


def test_pad_collate_with_fields_and_in_a_loader():
    seqs = ToySequences(lengths=(2, 4, 1, 3, 0))
    padded, lengths, mask, targets = pad_collate([seqs[i] for i in range(5)])
    assert targets.tolist() == lengths.tolist() == [2, 4, 1, 3, 0]
    assert padded.shape == (5, 4) and torch.equal(padded != 0, mask)
    for loader_cls in (SimpleDataLoader, data.DataLoader):
        batches = list(loader_cls(seqs, batch_size=2, collate_fn=pad_collate))
        assert [b[0].shape[1] for b in batches] == [4, 3, 0]
    all_empty = pad_collate([torch.zeros(0, 2), torch.zeros(0, 2)])
    assert all_empty[0].shape == (2, 0, 2) and all_empty[2].shape == (2, 0)


def test_pad_collate_errors():
    with pytest.raises(ValueError, match=r"batch must be a non-empty list of samples, got \[\]"):
        pad_collate([])
    with pytest.raises(TypeError, match="batch must be a non-empty list of samples, got tuple"):
        pad_collate((torch.ones(2),))
    with pytest.raises(TypeError, match="each sequence must be a tensor of shape"):
        pad_collate([torch.tensor(1.0)])
    with pytest.raises(ValueError, match=r"trailing shape \(3,\) of the first, got \(4,\) at entry 1"):
        pad_collate([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="dtype torch.float32 of the first, got torch.int64 at entry 1"):
        pad_collate([torch.ones(2), torch.ones(2, dtype=torch.long)])


# The loader, map-style


@settings(max_examples=20)
@given(
    n=st.integers(1, 23),
    batch_size=st.one_of(st.none(), st.integers(1, 9)),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
    seed=st.one_of(st.none(), st.integers(0, 2**31)),
)
def test_loader_matches_torch_on_map_style_data(n, batch_size, shuffle, drop_last, seed):
    if batch_size is None:
        drop_last = False
    dataset = TensorDataset(torch.arange(n * 2).reshape(n, 2), torch.arange(n) % 3)

    def make(cls):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return cls(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)

    run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader))
    assert len(make(SimpleDataLoader)) == len(make(data.DataLoader))


@pytest.mark.parametrize("n", [10, 12])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 12, 13])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_matches_torch_grid(n, batch_size, shuffle, drop_last):
    def make(cls):
        return cls(range(n), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                   generator=torch.Generator().manual_seed(7))

    epochs = run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader))
    expected = n // batch_size if drop_last else -(-n // batch_size)
    assert len(make(SimpleDataLoader)) == len(make(data.DataLoader)) == expected
    assert all(len(batches) == expected for batches in epochs)
    seen = sorted(i for batch in epochs[0] for i in batch.tolist())
    assert len(seen) == (expected * batch_size if drop_last else n)


def test_generator_state_matches_after_each_epoch_and_iter_draws_eagerly():
    ours_g, theirs_g = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ours = SimpleDataLoader(range(9), batch_size=2, shuffle=True, generator=ours_g)
    theirs = data.DataLoader(range(9), batch_size=2, shuffle=True, generator=theirs_g)
    for _ in range(2):
        iter(ours), iter(theirs)  # the base seed is drawn by iter(), before the first batch
        assert torch.equal(ours_g.get_state(), theirs_g.get_state())
        assert_same(list(ours), list(theirs))
        assert torch.equal(ours_g.get_state(), theirs_g.get_state())


def test_a_partial_epoch_then_a_full_one_matches_torch():
    def make(cls):
        return cls(range(10), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(1))

    ours, theirs = make(SimpleDataLoader), make(data.DataLoader)
    assert_same(next(iter(ours)), next(iter(theirs)))  # break after one batch: no wasted permutation
    for _ in range(2):
        assert_same(list(ours), list(theirs))


def test_an_unshuffled_loader_still_draws_a_base_seed_from_the_global_generator():
    def make(cls):
        return cls(range(5), batch_size=2)

    run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader), epochs=2)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    list(SimpleDataLoader(range(5)))
    assert not torch.equal(torch.get_rng_state(), state)
    loader = SimpleDataLoader(range(5), generator=torch.Generator().manual_seed(0))
    list(loader)
    assert loader.base_seed == draw_seed(torch.Generator().manual_seed(0))


def test_an_epoch_without_a_generator_costs_the_global_generator_two_draws():
    torch.manual_seed(0)
    list(SimpleDataLoader(range(5), batch_size=2, shuffle=True))
    after = torch.get_rng_state()
    torch.manual_seed(0)
    draw_seed(), draw_seed()
    assert torch.equal(after, torch.get_rng_state())


def test_restoring_the_generator_state_replays_an_epoch():
    generator = torch.Generator().manual_seed(4)
    loader = SimpleDataLoader(range(11), batch_size=3, shuffle=True, generator=generator)
    list(loader)
    saved = generator.get_state()
    second = [b.tolist() for b in loader]
    resumed = torch.Generator()
    resumed.set_state(saved)
    theirs = data.DataLoader(range(11), batch_size=3, shuffle=True, generator=resumed)
    assert [b.tolist() for b in theirs] == second


class EagerShuffle:
    """A custom sampler that draws its order from the global generator as soon as iter() is called."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(torch.randperm(self.n).tolist())

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size", [None, 1, 2, 3])
def test_custom_samplers_match_torch(batch_size):
    dataset = TensorDataset(torch.arange(8.0))
    for sampler in ([5, 3, 3, 1, 7], EagerShuffle(8), RandomSampler(dataset, replacement=True, num_samples=11)):
        def make(cls, sampler=sampler):
            return cls(dataset, batch_size=batch_size, sampler=sampler, generator=None)

        run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader), epochs=2)
        assert len(make(SimpleDataLoader)) == len(make(data.DataLoader))


def test_a_numpy_array_of_indices_is_a_sampler_too():
    order = np.array([4, 0, 2])
    run_epochs(lambda: SimpleDataLoader(range(5), batch_size=2, sampler=order),
               lambda: data.DataLoader(range(5), batch_size=2, sampler=order))
    with pytest.raises(ValueError, match="sampler must be left unset"):
        SimpleDataLoader(RangeStream(0, 3), sampler=order)


def test_custom_batch_sampler_matches_torch():
    dataset = {"x": torch.arange(6.0)}["x"]
    batch_sampler = [[0, 5], [2], [1, 3, 4], [5, 5]]
    run_epochs(lambda: SimpleDataLoader(dataset, batch_sampler=batch_sampler),
               lambda: data.DataLoader(dataset, batch_sampler=batch_sampler))
    assert len(SimpleDataLoader(dataset, batch_sampler=batch_sampler)) == 4
    eager = BatchSampler(EagerShuffle(6), 4, drop_last=False)
    run_epochs(lambda: SimpleDataLoader(dataset, batch_sampler=eager),
               lambda: data.DataLoader(dataset, batch_sampler=eager))


class DictSamples(data.Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return {"features": torch.full((2,), float(i)), "label": i % 2, "weight": 0.5 * i, "id": f"s{i}",
                "raw": np.arange(i, i + 3)}


class BatchFetching(data.Dataset):
    """A dataset that fetches a whole batch in one call, as PyTorch's Subset does."""

    def __init__(self):
        self.calls = []

    def __len__(self):
        return 5

    def __getitem__(self, i):
        raise AssertionError("the loader must use __getitems__")

    def __getitems__(self, indices):
        self.calls.append(list(indices))
        return [i * 10 for i in indices]


def test_dict_numpy_and_subset_samples_match_torch():
    for dataset in (DictSamples(), data.Subset(DictSamples(), [6, 0, 3])):
        for shuffle in (False, True):
            def make(cls, dataset=dataset, shuffle=shuffle):
                return cls(dataset, batch_size=2, shuffle=shuffle, generator=torch.Generator().manual_seed(2))

            batches = run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader), epochs=2)
            assert batches[0][0]["weight"].dtype == torch.float64 and batches[0][0]["raw"].dtype == torch.int64
    ours, theirs = BatchFetching(), BatchFetching()
    assert_same(list(SimpleDataLoader(ours, batch_size=2)), list(data.DataLoader(theirs, batch_size=2)))
    assert ours.calls == theirs.calls == [[0, 1], [2, 3], [4]]


def test_custom_collate_fn_and_unbatched_loading_match_torch():
    dataset = DictSamples()

    def names(batch):
        return [sample["id"] for sample in batch]

    run_epochs(lambda: SimpleDataLoader(dataset, batch_size=3, collate_fn=names),
               lambda: data.DataLoader(dataset, batch_size=3, collate_fn=names))
    run_epochs(lambda: SimpleDataLoader(dataset, batch_size=None, shuffle=True),
               lambda: data.DataLoader(dataset, batch_size=None, shuffle=True))
    assert len(SimpleDataLoader(dataset, batch_size=None)) == len(data.DataLoader(dataset, batch_size=None)) == 7


def test_an_empty_dataset():
    for cls in (SimpleDataLoader, data.DataLoader):
        loader = cls([], batch_size=4)
        assert list(loader) == [] and len(loader) == 0
        assert list(cls(TensorDataset(torch.zeros(0, 3)), batch_size=2, drop_last=True)) == []
        with pytest.raises(ValueError, match="num_samples"):
            cls([], batch_size=4, shuffle=True)
    run_epochs(lambda: SimpleDataLoader([], batch_size=2), lambda: data.DataLoader([], batch_size=2))


# The loader, iterable-style


@pytest.mark.parametrize("length", [0, 1, 6, 7])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 7, 8])
@pytest.mark.parametrize("drop_last", [False, True])
def test_loader_matches_torch_on_a_stream(length, batch_size, drop_last):
    if batch_size is None and drop_last:
        return

    def make(cls):
        return cls(RangeStream(0, length), batch_size=batch_size, drop_last=drop_last)

    run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader))
    assert len(make(SimpleDataLoader)) == len(make(data.DataLoader))


class Resurrecting(data.IterableDataset):
    """A badly behaved stream whose iterator yields again after it has once stopped."""

    def __iter__(self):
        return self.Iterator()

    class Iterator:
        def __init__(self):
            self.i = 0

        def __iter__(self):
            return self

        def __next__(self):
            self.i += 1
            if self.i == 3:
                raise StopIteration
            return self.i


def test_a_stream_is_not_asked_again_after_it_ran_dry():
    assert_same(list(SimpleDataLoader(Resurrecting(), batch_size=4)), list(data.DataLoader(Resurrecting(), batch_size=4)))


def test_a_stream_with_dict_samples_and_a_generator():
    class Records(data.IterableDataset):
        def __iter__(self):
            return ({"i": i, "x": torch.ones(2) * i} for i in range(5))

    for cls in (SimpleDataLoader, data.DataLoader):
        with pytest.raises(TypeError):
            len(cls(Records(), batch_size=2))

    def make(cls):
        return cls(Records(), batch_size=2, generator=torch.Generator().manual_seed(0))

    run_epochs(lambda: make(SimpleDataLoader), lambda: make(data.DataLoader))


# Errors


@pytest.mark.parametrize(
    ("dataset", "kwargs", "match"),
    [
        (range(4), {"shuffle": True, "sampler": [0, 1]}, "mutually exclusive"),
        (range(4), {"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler is mutually exclusive"),
        (range(4), {"batch_sampler": [[0]], "shuffle": True}, "batch_sampler is mutually exclusive"),
        (range(4), {"batch_sampler": [[0]], "sampler": [0]}, "batch_sampler is mutually exclusive"),
        (range(4), {"batch_sampler": [[0]], "drop_last": True}, "batch_sampler is mutually exclusive"),
        (range(4), {"batch_size": None, "drop_last": True}, "drop_last=True has nothing to drop"),
        (RangeStream(0, 4), {"shuffle": True}, "shuffle must be left unset, got True"),
        (RangeStream(0, 4), {"sampler": [0]}, "sampler must be left unset"),
        (RangeStream(0, 4), {"batch_sampler": [[0]]}, "batch_sampler must be left unset"),
        (range(4), {"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ],
)
def test_loader_argument_conflicts_raise_value_error_like_torch(dataset, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleDataLoader(dataset, **kwargs)
    with pytest.raises(ValueError):
        data.DataLoader(dataset, **kwargs)


def test_loader_type_errors():
    with pytest.raises(TypeError, match="batch_size must be an int, got 2.0"):
        SimpleDataLoader(range(4), batch_size=2.0)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        data.DataLoader(range(4), batch_size=2.0)  # the pinned difference: PyTorch says ValueError
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got 0"):
        SimpleDataLoader(range(4), generator=0)
    with pytest.raises(TypeError, match="collate_fn must be callable or None, got 'stack'"):
        SimpleDataLoader(range(4), collate_fn="stack")
    with pytest.raises(TypeError, match="shuffle must be a bool, got 'yes'"):
        SimpleDataLoader(range(4), shuffle="yes")
    with pytest.raises(TypeError, match="dataset must be map-style"):
        SimpleDataLoader(x for x in range(3))


# What the lesson claims


def test_trap_drop_last_on_validation_wobbles_and_the_fix_does_not():
    correct = torch.tensor([1, 1, 1, 0, 1, 1, 0, 1, 1, 0])

    def score(loader):
        batches = list(loader)
        return sum(int(b.sum()) for b in batches), sum(len(b) for b in batches)

    hammer = SimpleDataLoader(correct, batch_size=4, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0))
    scores = [score(hammer) for _ in range(5)]
    assert all(seen == 8 for _, seen in scores) and len({hits for hits, _ in scores}) > 1
    honest = SimpleDataLoader(correct, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert [score(honest) for _ in range(5)] == [(7, 10)] * 5


def test_trap_float64_from_numpy_and_python_floats():
    features = np.random.default_rng(0).normal(size=(4, 3))
    assert next(iter(SimpleDataLoader(features, batch_size=2))).dtype == torch.float64
    assert next(iter(SimpleDataLoader(features.astype(np.float32), batch_size=2))).dtype == torch.float32
    assert default_collate([0.25, 1.0]).dtype == torch.float64
    with pytest.raises(RuntimeError, match="mat1 and mat2 must have the same dtype"):
        torch.nn.Linear(3, 2)(next(iter(data.DataLoader(features, batch_size=2))))


def test_trap_global_generator_coupling():
    def first(**options):
        return next(iter(SimpleDataLoader(range(20), batch_size=20, shuffle=True, **options))).tolist()

    torch.manual_seed(0)
    a = first()
    torch.manual_seed(0)
    torch.randn(3)
    assert a != first()
    assert first(generator=torch.Generator().manual_seed(0)) == first(generator=torch.Generator().manual_seed(0))


def test_plot_batches_draws_every_sample_once_per_epoch():
    fig = plot_batches()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(ax.patches) for ax in fig.axes] == [10, 10]
    labels = sorted(int(t.get_text()) for t in fig.axes[0].texts if t.get_text().isdigit())
    assert labels == list(range(10))
    dropped = plot_batches(num_samples=7, batch_size=3, epochs=1, drop_last=True)
    greys = [p for p in dropped.axes[0].patches if p.get_facecolor()[:3] == (0.8, 0.8, 0.8)]
    assert len(greys) == 1 and "dropped" in [t.get_text() for t in dropped.axes[0].texts]
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        plot_batches(epochs=0)


# Challenges


def test_epoch_batches_solution_passes_and_wrong_attempts_fail():
    assert check_epoch_batches(epoch_batches) is None

    def no_base_seed(num_samples, batch_size, seed, epoch, drop_last=False):
        sampler = BatchSampler(RandomSampler(range(num_samples), generator=torch.Generator().manual_seed(seed)),
                               batch_size, drop_last)
        for _ in range(epoch):
            list(sampler)
        return list(sampler)

    def no_wasted_permutation(num_samples, batch_size, seed, epoch, drop_last=False):
        g = torch.Generator().manual_seed(seed)
        for _ in range(epoch + 1):
            draw_seed(g)
            order = torch.randperm(num_samples, generator=g).tolist()
        return [b for b in BatchSampler(order, batch_size, drop_last)]

    def global_generator(num_samples, batch_size, seed, epoch, drop_last=False):
        torch.manual_seed(seed)
        loader = SimpleDataLoader(range(num_samples), batch_size=batch_size, shuffle=True, drop_last=drop_last)
        for _ in range(epoch):
            list(loader)
        return [b.tolist() for b in loader]

    for wrong in (no_base_seed, no_wasted_permutation, global_generator):
        with pytest.raises(AssertionError):
            check_epoch_batches(wrong)
    with pytest.raises(AssertionError, match="expected a list of lists"):
        check_epoch_batches(lambda *args: torch.zeros(2))


def test_bucket_batches_solution_passes_and_wrong_attempts_fail():
    assert check_bucket_batches(bucket_batches) is None
    assert bucket_batches([], 3, torch.Generator()) == []

    def in_order(lengths, batch_size, generator):
        return [list(range(i, min(i + batch_size, len(lengths)))) for i in range(0, len(lengths), batch_size)]

    def sorted_not_shuffled(lengths, batch_size, generator):
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def global_rng(lengths, batch_size, generator):
        batches = sorted_not_shuffled(lengths, batch_size, generator)
        return [batches[i] for i in torch.randperm(len(batches)).tolist()]

    def two_short_batches(lengths, batch_size, generator):
        batches = bucket_batches(lengths, batch_size, generator)
        if batches and len(batches[0]) > 1:
            batches = [batches[0][:1], batches[0][1:], *batches[1:]]
        return batches

    for wrong in (in_order, sorted_not_shuffled, global_rng, two_short_batches):
        with pytest.raises(AssertionError):
            check_bucket_batches(wrong)
