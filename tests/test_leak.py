"""Proofs for Dr. Hammer's leak: the splits, the checks, and every leak's gap across seeds."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.training.leak import (
    LEAKS,
    Standardizer,
    accuracy,
    augment,
    best_of_n_optimism,
    check_find_leaking_feature,
    check_leak_free_split,
    class_separation_scores,
    find_leaking_feature,
    hammer_vs_honest,
    leak_duplicates,
    leak_free_split,
    leak_id_feature,
    leak_normalisation,
    leak_preprocessing,
    leak_test_selection,
    make_specimens,
    near_duplicates,
    nearest_neighbour_predict,
    overlap_by_hash,
    plot_hammer_vs_honest,
    single_feature_scores,
    split_indices,
    train_classifier,
    was_fit_on,
    with_collection_ids,
)

# Seed 0 is the page's own (its doctests print those scores); the tests add three more.
SEEDS = range(1, 4)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# split_indices against random_split


def _random_split_indices(n, fractions, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random_split warns about empty parts; we only compare indices
        parts = torch.utils.data.random_split(range(n), fractions, generator=torch.Generator().manual_seed(seed))
    return [list(part.indices) for part in parts]


@settings(max_examples=30)
@given(
    n=st.integers(0, 300),
    weights=st.lists(st.integers(0, 20), min_size=1, max_size=5).filter(lambda w: sum(w) > 0),
    seed=st.integers(0, 2**16),
)
def test_split_indices_equals_random_split(n, weights, seed):
    fractions = [w / sum(weights) for w in weights]
    ours = split_indices(n, fractions, torch.Generator().manual_seed(seed))
    assert [len(p) for p in ours] == [math.floor(n * f) for f in fractions] or sum(len(p) for p in ours) == n
    assert sorted(torch.cat(ours).tolist()) == list(range(n))
    assert all(p.dtype == torch.int64 for p in ours)
    if sum(fractions) <= 1:
        assert [p.tolist() for p in ours] == _random_split_indices(n, fractions, seed)
    else:  # random_split would read them as lengths and refuse: the documented difference
        with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
            _random_split_indices(n, fractions, seed)


@pytest.mark.parametrize(("fractions", "lengths"), [((0.56, 0.34, 0.1), [56, 34, 10]), ((0.33, 0.56, 0.11), [33, 56, 11])])
def test_fractions_summing_a_hair_above_one(fractions, lengths):
    assert sum(fractions) > 1
    assert [len(p) for p in split_indices(100, fractions)] == lengths
    with pytest.raises(ValueError, match="Sum of input lengths"):
        torch.utils.data.random_split(range(100), fractions)


def test_split_indices_uses_the_global_generator_by_default():
    torch.manual_seed(3)
    a = split_indices(20, (0.5, 0.5))
    torch.manual_seed(3)
    b = torch.utils.data.random_split(range(20), (0.5, 0.5))
    assert [p.tolist() for p in a] == [list(s.indices) for s in b]


@pytest.mark.parametrize(
    ("n", "fractions", "error", "match"),
    [
        (-1, (1.0,), ValueError, "n must be at least 0, got -1"),
        (2.5, (1.0,), TypeError, "n must be an int, got 2.5"),
        (10, (), ValueError, r"fractions must be numbers in \[0, 1\], got \(\)"),
        (10, (1.5, -0.5), ValueError, r"fractions must be numbers in \[0, 1\]"),
        (10, ("0.5", 0.5), TypeError, r"fractions must be numbers in \[0, 1\]"),
        (10, (0.5, 0.4), ValueError, r"fractions must sum to 1, got \(0.5, 0.4\) \(sum 0.9\)"),
    ],
)
def test_split_indices_errors(n, fractions, error, match):
    with pytest.raises(error, match=match):
        split_indices(n, fractions)


# Standardizer against scikit-learn's StandardScaler


def _tables():
    g = torch.Generator().manual_seed(0)
    yield torch.randn(50, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 100.0, 1e-3, 7.0], dtype=torch.float64)
    yield torch.randn(7, 3, generator=g, dtype=torch.float64) + 1e8  # a large offset
    yield torch.randn(1, 5, generator=g, dtype=torch.float64)  # a single row: every feature is constant
    constant = torch.randn(30, 4, generator=g, dtype=torch.float64)
    constant[:, 1] = 0.1  # "constant" even though its float variance is not exactly 0
    constant[:, 2] = 0.0
    constant[:, 3] = -3.7
    yield constant
    yield torch.randn(40, 6, generator=g)  # float32
    yield torch.randn(200, 2, generator=g, dtype=torch.float64) * 1e-8


@pytest.mark.parametrize("table", list(_tables()), ids=lambda t: f"{tuple(t.shape)}-{t.dtype}")
def test_standardizer_equals_sklearn(table):
    from sklearn.preprocessing import StandardScaler

    theirs = StandardScaler().fit(table.numpy())
    ours = Standardizer().fit(table)
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if table.dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    assert ours.n_samples_seen_ == theirs.n_samples_seen_
    for name in ("mean_", "var_", "scale_"):
        got = getattr(ours, name)
        assert got.dtype == table.dtype, name
        np.testing.assert_allclose(got.numpy(), getattr(theirs, name), **tolerance, err_msg=name)
    new_rows = table[:3] * 2 + 1
    np.testing.assert_allclose(ours.transform(new_rows).numpy(), theirs.transform(new_rows.numpy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Standardizer().fit_transform(table).numpy(), theirs.transform(table.numpy()), rtol=1e-5, atol=1e-6)


def test_standardizer_errors_and_repr():
    scaler = Standardizer()
    assert repr(scaler) == "Standardizer(not fitted)"
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(x_train\) first"):
        scaler.transform(torch.zeros(2, 2))
    with pytest.raises(RuntimeError, match="not fitted yet"):
        was_fit_on(scaler, torch.zeros(2, 2))
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got torch.int64"):
        scaler.fit(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got list"):
        scaler.fit([[1.0]])
    with pytest.raises(ValueError, match=r"2-D \(rows, features\) tensor with at least one row, got shape \(3,\)"):
        scaler.fit(torch.zeros(3))
    with pytest.raises(ValueError, match=r"got shape \(0, 2\)"):
        scaler.fit(torch.zeros(0, 2))
    scaler.fit(torch.randn(5, 3))
    assert repr(scaler) == "Standardizer(fitted on 5 rows)"
    with pytest.raises(ValueError, match="x must have 3 features, as the rows it was fit on, got 2"):
        scaler.transform(torch.zeros(1, 2))


def test_was_fit_on_tells_the_rows_apart():
    x = torch.randn(30, 4)
    scaler = Standardizer().fit(x[:20])
    assert was_fit_on(scaler, x[:20]) and was_fit_on(scaler, x[:20].flip(0))  # the order does not matter
    assert not was_fit_on(scaler, x) and not was_fit_on(scaler, x[:19]) and not was_fit_on(scaler, x[10:])


# Duplicate checks against brute force


def _brute_force_overlap(train, test):
    return [i for i, row in enumerate(test) if any(torch.equal(row, other) for other in train)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.bool])
def test_overlap_by_hash_equals_brute_force(dtype):
    g = torch.Generator().manual_seed(0)
    train = (torch.randn(40, 2, 3, generator=g) * 3).to(dtype)
    test = (torch.randn(25, 2, 3, generator=g) * 3).to(dtype)
    test[[2, 7, 11]] = train[[5, 0, 39]]
    test[20] = train[5]
    expected = _brute_force_overlap(train, test)
    assert overlap_by_hash(train, test) == expected
    if dtype.is_floating_point:
        assert expected == [2, 7, 11, 20]
    assert overlap_by_hash(train, test[:0]) == [] and overlap_by_hash(train[:0], test) == []


def test_overlap_by_hash_sees_signed_zeros_as_equal_and_views_as_copies():
    train = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    test = torch.tensor([[-0.0, 1.0], [3.0, 2.0]])
    assert overlap_by_hash(train, test) == [0]
    strided = torch.tensor([[2.0, 9.0, 3.0]])[:, ::2]  # a non-contiguous view of [2, 3]
    assert overlap_by_hash(train, strided) == [0]


def test_overlap_and_near_duplicate_errors():
    with pytest.raises(TypeError, match="train and test must share a dtype, got torch.float32 and torch.float64"):
        overlap_by_hash(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="train and test must be tensors, got list and Tensor"):
        overlap_by_hash([[0.0]], torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"rows of the same shape, got shapes \(2, 2\) and \(2, 3\)"):
        near_duplicates(torch.zeros(2, 2), torch.zeros(2, 3), atol=0.1)
    with pytest.raises(ValueError, match="atol must be a non-negative number, got -1"):
        near_duplicates(torch.zeros(2, 2), torch.zeros(2, 2), atol=-1)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), atol=st.floats(0.0, 3.0))
def test_near_duplicates_equals_brute_force(seed, atol):
    g = torch.Generator().manual_seed(seed)
    train, test = torch.randn(15, 3, generator=g), torch.randn(12, 3, generator=g)
    test[:4] = train[:4] + 0.01 * torch.randn(4, 3, generator=g)
    expected = [i for i, row in enumerate(test.double()) if (train.double() - row).norm(dim=1).min() <= atol]
    assert near_duplicates(train, test, atol=atol) == expected
    assert near_duplicates(train[:0], test, atol=atol) == []


def test_nearest_neighbour_and_augment():
    g = torch.Generator().manual_seed(0)
    train_x, train_y, test_x = torch.randn(20, 3, generator=g), torch.randint(0, 4, (20,), generator=g), torch.randn(9, 3, generator=g)
    brute = torch.stack([train_y[((train_x - row) ** 2).sum(dim=1).argmin()] for row in test_x])
    assert torch.equal(nearest_neighbour_predict(train_x, train_y, test_x), brute)
    xa, ya = augment(train_x, train_y, copies=3, jitter=0.05, seed=1)
    assert torch.equal(xa[:20], train_x) and torch.equal(ya, train_y.repeat(3))
    assert 0 < (xa[20:40] - train_x).abs().max() < 0.5
    assert torch.equal(augment(train_x, train_y, seed=1)[0], xa)  # seeded
    with pytest.raises(ValueError, match="copies must be at least 1, got 0"):
        augment(train_x, train_y, copies=0)


# The specimens and the single-feature scores


def test_make_specimens_is_seeded_and_validated():
    a, b = make_specimens(100, seed=5), make_specimens(100, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(make_specimens(100, seed=6)[0], a[0])
    x, y = make_specimens(30, n_informative=0, n_noise=3, n_classes=2, label_noise=0.0)
    assert x.shape == (30, 3) and x.dtype == torch.float32 and set(y.tolist()) <= {0, 1}
    for kwargs, error, match in [
        ({"n_samples": 0}, ValueError, "n_samples must be at least 1, got 0"),
        ({"n_samples": 10.0}, TypeError, "n_samples must be an int, got 10.0"),
        ({"n_classes": 1}, ValueError, "n_classes must be at least 2, got 1"),
        ({"n_informative": 0, "n_noise": 0}, ValueError, "cannot both be 0"),
        ({"n_noise": -1}, ValueError, "n_noise must be at least 0, got -1"),
        ({"label_noise": 1.5}, ValueError, r"label_noise must be a number in \[0, 1\], got 1.5"),
        ({"label_noise": "0.1"}, TypeError, "label_noise must be a real number, got '0.1'"),
        ({"separation": -1.0}, ValueError, "separation must be a non-negative number, got -1.0"),
    ]:
        with pytest.raises(error, match=match):
            make_specimens(**kwargs)


def test_single_feature_scores_unmask_the_id():
    x, y = with_collection_ids(*make_specimens(600, separation=0.6, seed=1))
    assert torch.equal(x[:, 0], torch.arange(600.0)) and torch.equal(y, y.sort().values)
    scores = single_feature_scores(x, y)
    assert scores.shape == (17,) and scores.dtype == torch.float32
    assert scores[0] > 0.8 and scores[1:].max() < 0.55 and int(scores.argmax()) == 0
    majority_only = single_feature_scores(x, y, bins=1)
    assert torch.allclose(majority_only, majority_only[0].expand(17))  # one bin: every feature votes the majority
    with pytest.raises(ValueError, match="x needs at least 4 rows and y one label per row"):
        single_feature_scores(x[:3], y[:3])


def test_class_separation_scores():
    x, y = make_specimens(400, n_informative=3, n_noise=5, separation=2.0, seed=0)
    scores = class_separation_scores(x, y)
    assert scores.dtype == torch.float32 and scores[:3].min() > 5 * scores[3:].max()


def test_train_classifier_and_accuracy():
    x, y = make_specimens(200, separation=3.0, label_noise=0.0, seed=0)
    for hidden in (0, 8):
        model = train_classifier(x, y, hidden=hidden, steps=100)
        assert not model.training and accuracy(model, x, y) > 0.95


# Every leak, across seeds


@pytest.mark.parametrize("seed", SEEDS)
def test_statistics_before_the_split(seed):
    selection, normalisation = leak_preprocessing(seed=seed), leak_normalisation(seed=seed)
    assert selection["honest"] < 0.4 < selection["hammer"]  # noise: chance is 0.25
    assert selection["hammer"] - selection["honest"] > 0.15
    assert abs(normalisation["hammer"] - normalisation["honest"]) <= 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_twins_across_the_split(seed):
    scores = leak_duplicates(seed=seed)
    assert scores["hammer"] > 0.9 and scores["hammer"] - scores["honest"] > 0.15


@pytest.mark.parametrize("seed", SEEDS)
def test_a_feature_that_knows_the_answer(seed):
    scores = leak_id_feature(seed=seed)
    assert scores["hammer"] - scores["honest"] > 0.2
    assert scores["hammer on new specimens"] < 0.35


def test_choosing_on_the_test_set():
    gaps = []
    for seed in SEEDS:
        scores = leak_test_selection(seed=seed)
        gaps.append(scores["hammer"] - scores["honest"])
    assert all(0.0 <= gap <= 0.1 for gap in gaps) and sum(gaps) > 0


def test_best_of_n_optimism_grows_with_the_tries():
    reported = [best_of_n_optimism(n, 200, repeats=3000) for n in (1, 5, 20, 100)]
    assert abs(reported[0] - 0.7) < 0.005
    assert reported == sorted(reported) and reported[2] > 0.74 and reported[3] - 0.7 > 0.07
    assert best_of_n_optimism(20, 2000, repeats=500) < reported[2]  # a larger test set flatters less


def test_experiments_are_remembered_but_not_shared():
    first = leak_duplicates(seed=0)
    first["hammer"] = -1.0
    assert leak_duplicates(seed=0)["hammer"] > 0.9
    scores = hammer_vs_honest(seed=0)
    assert list(scores) == list(LEAKS) and all(set(s) == {"hammer", "honest"} for s in scores.values())


def test_plot_hammer_vs_honest():
    fig = plot_hammer_vs_honest()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    bars, tries = fig.axes
    assert len(bars.patches) == 8 and [t.get_text().replace("\n", " ") for t in bars.get_xticklabels()] == list(LEAKS)
    assert len(tries.lines) == 2 and tries.lines[0].get_xdata()[-1] == 100


# Challenges


def test_leak_free_split_solution_and_wrong_attempts():
    assert check_leak_free_split(leak_free_split) is None
    with pytest.raises(ValueError, match="fractions must hold three fractions"):
        leak_free_split(torch.randn(10, 2), torch.zeros(10), (0.5, 0.5))

    def fit_on_everything(x, y, fractions=(0.6, 0.2, 0.2), generator=None):
        z = Standardizer().fit_transform(x)
        return {name: (z[rows], y[rows]) for name, rows in zip(("train", "val", "test"), split_indices(len(x), fractions, generator), strict=True)}

    def scaler_per_pile(x, y, fractions=(0.6, 0.2, 0.2), generator=None):
        parts = split_indices(len(x), fractions, generator)
        return {name: (Standardizer().fit_transform(x[rows]), y[rows]) for name, rows in zip(("train", "val", "test"), parts, strict=True)}

    def piles_reversed(x, y, fractions=(0.6, 0.2, 0.2), generator=None):
        piles = leak_free_split(x, y, fractions, generator)
        return {"train": piles["train"], "val": piles["test"], "test": piles["val"]}

    def own_shuffle(x, y, fractions=(0.6, 0.2, 0.2), generator=None):
        return leak_free_split(x, y, fractions, torch.Generator().manual_seed(12345))

    def crashes(x, y, fractions=(0.6, 0.2, 0.2), generator=None):
        raise NotImplementedError

    for wrong in (fit_on_everything, scaler_per_pile, piles_reversed, own_shuffle, crashes):
        with pytest.raises(AssertionError):
            check_leak_free_split(wrong)
    with pytest.raises(AssertionError, match="centred on its own mean"):
        check_leak_free_split(scaler_per_pile)
    with pytest.raises(AssertionError, match="fit on all rows"):
        check_leak_free_split(fit_on_everything)


def test_find_leaking_feature_solution_and_wrong_attempts():
    assert check_find_leaking_feature(find_leaking_feature) is None

    def largest_variance(x, y):
        return int(x.var(dim=0).argmax())

    def most_correlated(x, y):
        z = (x - x.mean(dim=0)) / x.std(dim=0)
        t = (y.float() - y.float().mean()) / y.float().std()
        return int((z * t[:, None]).mean(dim=0).abs().argmax())

    def last_column(x, y):
        return x.shape[1] - 1

    for wrong in (largest_variance, most_correlated, last_column):
        with pytest.raises(AssertionError):
            check_find_leaking_feature(wrong)
    # A class-separation statistic is a fair detective too: it does not care about the order of the classes.
    assert check_find_leaking_feature(lambda x, y: int(class_separation_scores(x, y).argmax())) is None
