r"""
# Dr. Hammer's Leak: Ninety-Nine Percent of Nothing

!!! torchenstein "The Professor speaks"
    Close the door, apprentices, and lower your voices. You know that Rudolf Hammer and I defended our
    theses in the same season, he the favourite pupil of a famous professor, I the weirdo who explained the
    chain rule to a rubber duck named Backprop. You know that his paper announced 99% accuracy on CIFAR-10, when the rest
    of the world would have wept with joy at far less. You do not know what I found in his training loop
    the week before, at three in the morning, with cold coffee and a hot GPU: his monster had seen the
    exam before it sat it. I told his supervisor. They thanked me, buried the bug, and published. The
    paper won a prize; I won my freedom, and left to build this laboratory.

    Tonight we dig it up. We commit every one of his sins on purpose, on data we make ourselves, and print
    his score beside the honest one. Then we build the small checks that would have caught him, so that
    no apprentice of mine ever publishes a number that is not true.

**You will learn to**

- say what the training, validation and test sets are for, and split them reproducibly with
  `split_indices`, proved equal to `torch.utils.data.random_split`;
- fit every statistic (normalisation, feature selection) on the training rows alone, with a `Standardizer`
  proved equal to scikit-learn's `StandardScaler`, and check it with `was_fit_on`;
- find copies of test rows in the training rows: exact ones with `overlap_by_hash`, augmented twins with
  `near_duplicates`;
- unmask a feature that encodes the answer with `single_feature_scores`;
- measure how much choosing on the test set flatters a score, and choose on a validation set instead;
- reproduce four forms of Hammer's leak, with his score and the honest one side by side.

## Three piles of data, and what a leak is

Every honest experiment cuts its labelled examples into three piles before anything else happens (the
[training loop](../loop/index.md) already kept a validation set apart; here is why it needs a sibling).

- The **training set** is what the model learns from: the optimizer sees these rows and nothing else.
- The **validation set** is for choices: which model, which epoch, which learning rate. It is scored many
  times, so it becomes a little optimistic about whatever was chosen on it.
- The **test set** is the exam. It stands for the future, for specimens nobody has collected yet. It is
  scored **once**, at the very end, and the number goes in the paper.

A **leak** is any path by which the test rows reach the model, or the choices made about it, before that
single final look: a statistic computed with them, a copy of them in the training set, a column that
spells out their labels, or a decision taken by looking at their score. The model then answers questions
it has already half-seen, and its test score says nothing about the future.

[`split_indices`][torchenstein.training.leak.split_indices] cuts `range(n)` into piles of the given
fractions from one seeded permutation, exactly as PyTorch's `random_split` does, which the doctest proves:

```pycon
>>> import torch
>>> from torchenstein.training.leak import split_indices
>>> train, val, test = split_indices(10, (0.6, 0.2, 0.2), torch.Generator().manual_seed(0))
>>> print(f"train: {train.tolist()}, validation: {val.tolist()}, test: {test.tolist()}")
train: [4, 1, 7, 5, 3, 9], validation: [0, 8], test: [6, 2]
>>> theirs = torch.utils.data.random_split(range(10), (0.6, 0.2, 0.2), generator=torch.Generator().manual_seed(0))
>>> print("same as random_split:", [ours.tolist() for ours in (train, val, test)] == [list(part.indices) for part in theirs])
same as random_split: True
>>> split_indices(10, (0.8, 0.3))
Traceback (most recent call last):
...
ValueError: fractions must sum to 1, got (0.8, 0.3) (sum 1.1)

```

!!! note "Where it differs from PyTorch"
    `random_split` reads its list as fractions only if their floating-point sum is at most 1, so a few
    innocent tuples, whose sum rounds to a hair above 1, are taken for lengths and refused. `split_indices`
    accepts any fractions whose sum is close to 1 (and, unlike `random_split`, does not warn about an
    empty part); wherever both accept, the parts are identical.

    ```pycon
    >>> fractions = (0.56, 0.34, 0.1)
    >>> print(f"sum above 1: {sum(fractions) > 1}, part sizes: {[len(part) for part in split_indices(10, fractions)]}")
    sum above 1: True, part sizes: [6, 3, 1]
    >>> torch.utils.data.random_split(range(10), fractions)
    Traceback (most recent call last):
    ...
    ValueError: Sum of input lengths does not equal the length of the input dataset!

    ```

## Hammer's specimens

We need data whose honest accuracy is known to be well below 100%, or a leak could hide behind a
genuinely easy problem. [`make_specimens`][torchenstein.training.leak.make_specimens] draws a seeded
table: four classes, eight measurements that depend on the class (each class has its own centre, and
the classes overlap), eight that are pure noise, and one label in ten (`label_noise=0.1`) redrawn at
random, as a tired lab assistant would write them down. Guessing gives 25%. An honest pipeline (split,
fit a [`Standardizer`][torchenstein.training.leak.Standardizer] on the training rows, train a small
softmax classifier with Adam, score the test rows once) gets this far:

```pycon
>>> from torchenstein.training.leak import Standardizer, accuracy, make_specimens, train_classifier
>>> x, y = make_specimens(600, seed=0)
>>> print(f"features: {tuple(x.shape)}, specimens per class: {torch.bincount(y).tolist()}")
features: (600, 16), specimens per class: [157, 146, 131, 166]
>>> train, test = split_indices(len(x), (0.8, 0.2), torch.Generator().manual_seed(0))
>>> scaler = Standardizer().fit(x[train])
>>> model = train_classifier(scaler.transform(x[train]), y[train])
>>> print(f"honest test accuracy: {accuracy(model, scaler.transform(x[test]), y[test]):.1%}")
honest test accuracy: 71.7%

```

Keep 71.7% in mind. Every number Dr. Hammer reports below comes from specimens like these.

## Leak 1: statistics fit before the split

Normalisation subtracts each feature's mean and divides by its standard deviation (see
[Normalisation](../../nn/normalization/index.md) for the layers that do it inside a network). Those
means and deviations are **statistics fit on data**, as much as any weight is. Hammer computed them on
all 60,000 images, test images included, then split. Our `Standardizer` is scikit-learn's
`StandardScaler` rebuilt (population variance, a scale of 1 for a constant feature; the tests prove it
equal on many tables), and [`was_fit_on`][torchenstein.training.leak.was_fit_on] tells which rows its
statistics came from:

```pycon
>>> from torchenstein.training.leak import leak_normalisation, was_fit_on
>>> hammers_scaler = Standardizer().fit(x)                 # all 600 rows, test rows included
>>> print(f"fit on the training rows: {was_fit_on(hammers_scaler, x[train])}, on all rows: {was_fit_on(hammers_scaler, x)}")
fit on the training rows: False, on all rows: True
>>> scores = leak_normalisation(seed=0)
>>> print(f"Hammer {scores['hammer']:.1%}, honest {scores['honest']:.1%}, identical: {scores['hammer'] == scores['honest']}")
Hammer 71.7%, honest 71.7%, identical: True

```

The same score! On rows drawn from one distribution the mean of 600 rows and the mean of 480 of them
barely differ, and here the leak costs nothing. Hammer, reading over my shoulder, would call it
harmless. It is not harmless, it is *lucky*: the habit of fitting on everything before splitting is the
same habit that fits the next statistic, and the next statistic may look at the labels.

It did. With thousands of measurements per image, Hammer kept only the ones that best separated the
classes, using [`class_separation_scores`][torchenstein.training.leak.class_separation_scores]-style
statistics (how far apart the class means of a standardised feature lie) computed on all rows.
[`leak_preprocessing`][torchenstein.training.leak.leak_preprocessing] repeats it on 200 specimens with
2000 measurements of **pure noise**: no feature carries any information about the class, so no honest
pipeline can beat 25%. Hammer standardises and keeps the 20 best features on all 200 rows, then splits
150/50; the honest pipeline splits first and fits both the standardisation and the selection on the 150
training rows:

```pycon
>>> from torchenstein.training.leak import leak_preprocessing
>>> {name: round(score, 3) for name, score in leak_preprocessing(seed=0).items()}
{'hammer': 0.62, 'honest': 0.24}

```

Sixty-two percent on noise. Among 2000 noise features some happen to line up with the labels of those
200 rows, the test rows among them; selected with the test rows' help, they line up with the test labels
too, and with no one else's. The fix is a rule without exceptions: **split first, then fit every
statistic, of every kind, on the training rows alone**, and apply it unchanged to validation and test.

## Leak 2: twins across the split

Hammer's real bug, the one in his training loop, was this. He augmented his images (flips, shifts, small
crops: each a new image of the same object) to enlarge the data set, and he did it **before** the split.
An object's original landed in the test set while its flipped twin sat in the training set, with the
same label. A big network memorises what it sees (trained long enough, it memorises CIFAR-10 even with
random labels, as Zhang and colleagues showed in 2017); on a test image it simply recalls the twin.

[`augment`][torchenstein.training.leak.augment] gives every specimen two twins with a little noise, and
[`leak_duplicates`][torchenstein.training.leak.leak_duplicates] uses the purest memoriser there is,
[`nearest_neighbour_predict`][torchenstein.training.leak.nearest_neighbour_predict]: answer with the label
of the closest training row. These specimens have one label in five redrawn at random
(`label_noise=0.2`), so a model that generalises scores far below 100%; a model that recalls twins copies
even the wrong labels, and scores near 100% anyway:

```pycon
>>> from torchenstein.training.leak import augment, leak_duplicates, near_duplicates, overlap_by_hash
>>> {name: round(score, 3) for name, score in leak_duplicates(seed=0).items()}
{'hammer': 0.975, 'honest': 0.725}

```

The honest version splits the specimens first and augments only the training part. To catch the leak in
your own data, compare the piles. [`overlap_by_hash`][torchenstein.training.leak.overlap_by_hash] hashes
every row's bytes and finds exact copies in a blink, for tables and images alike; it is blind to a twin
that differs in a single bit. [`near_duplicates`][torchenstein.training.leak.near_duplicates] measures
distances and finds those:

```pycon
>>> x, y = make_specimens(400, label_noise=0.2, seed=0)
>>> xa, ya = augment(x, y, seed=0)                      # (1200, 16): originals, then twins
>>> train, test = split_indices(len(xa), (0.8, 0.2), torch.Generator().manual_seed(0))
>>> print(f"exact copies of test rows in train: {len(overlap_by_hash(xa[train], xa[test]))}")
exact copies of test rows in train: 0
>>> twins = near_duplicates(xa[train], xa[test], atol=0.5)
>>> print(f"test rows with a twin in train: {len(twins)} of {len(test)}")
test rows with a twin in train: 228 of 240
>>> specimen = torch.arange(len(xa)) % len(x)            # which specimen each row shows
>>> alone = set(specimen[test].tolist()) - set(specimen[train].tolist())
>>> print(f"test rows whose specimen has no row in train: {sum(s in alone for s in specimen[test].tolist())}")
test rows whose specimen has no row in train: 12
>>> nearest = torch.cdist(xa[test], xa[train]).min(dim=1).values
>>> different = torch.cdist(x, x).fill_diagonal_(torch.inf).min()
>>> print(f"twins at most {nearest[twins].max():.2f} apart, different specimens at least {different:.2f} apart")
twins at most 0.41 apart, different specimens at least 2.08 apart
>>> twice = torch.cat([x[300:], x[:50]])                 # 50 training rows downloaded twice
>>> print(f"rows downloaded twice, found by hash: {len(overlap_by_hash(x[:300], twice))}")
rows downloaded twice, found by hash: 50

```

Every test row has a twin in the training rows except those whose whole family of three fell into the
test set together. The distance threshold is yours to choose, between the spread of the twins and the
distance between different specimens. Run both checks between every pair of piles before you train. The same leak appears wherever one object yields several rows: frames of one
video, scans of one patient, sentences of one document. Split by the object, never by the row.

## Leak 3: a feature that knows the answer

Hammer's lab stored its specimens class by class: first all the frogs, then all the ships. Each row
carried its running number, and Hammer fed that number to the model as one more feature "for
completeness". A random split interleaves the numbers, so every test row's number falls inside the range
of its own class, and the model learns to read the class off the row number.
[`with_collection_ids`][torchenstein.training.leak.with_collection_ids] builds such a table (the id is
column 0) and [`leak_id_feature`][torchenstein.training.leak.leak_id_feature] trains the same small MLP
with and without it, on specimens less separable than before. It also does what Hammer never did: it asks
his model about 400 specimens collected *after* the paper, whose numbers continue where the table stopped:

```pycon
>>> from torchenstein.training.leak import leak_id_feature, single_feature_scores, with_collection_ids
>>> {name: round(score, 3) for name, score in leak_id_feature(seed=0).items()}
{'hammer': 0.9, 'honest': 0.458, 'hammer on new specimens': 0.248}

```

Ninety percent on his test set, chance on the future. To find such a feature, score every feature
*alone*. [`single_feature_scores`][torchenstein.training.leak.single_feature_scores] cuts each feature
into bins on half the rows, lets each bin vote for its most common class, and scores the vote on the
other half. A real measurement predicts a little; a leaking one predicts almost everything:

```pycon
>>> xi, yi = with_collection_ids(*make_specimens(600, separation=0.6, seed=0))
>>> scores = single_feature_scores(xi, yi)
>>> print(f"column 0 (the id): {scores[0]:.2f}, best real measurement: {scores[1:].max():.2f}")
column 0 (the id): 0.89, best real measurement: 0.43

```

Any feature that beats all the real measurements by a mile deserves an interrogation: ids, file names,
timestamps, the hospital a scan came from, the position of a row in its file.

## Leak 4: choosing on the test set

The subtlest sin, and the commonest. Hammer evaluated on the test set after every epoch (one pass over
the training set) and reported the best epoch. Each of those scores is a noisy estimate of the model's true accuracy, with a few points of
error on a test set of a few hundred rows; the *maximum* of many noisy estimates is too high on average,
because it picks the checkpoint whose noise happened to be kindest. Choosing a learning rate, an
architecture or a random seed by the test score is the same sin.
[`leak_test_selection`][torchenstein.training.leak.leak_test_selection] trains an MLP and scores 40
checkpoints (the weights as they stand at one moment of training) on a validation set and on a test set; Hammer reports the best test score, the honest
experimenter reports the test score of the checkpoint with the best *validation* score:

```pycon
>>> from torchenstein.training.leak import best_of_n_optimism, leak_test_selection
>>> {name: round(score, 3) for name, score in leak_test_selection(seed=0).items()}
{'hammer': 0.71, 'honest': 0.655}

```

Checkpoints of one run are strongly alike, so one run flatters only a little: here 5.5 points, on the
other seeds the tests try between 0 and 10, and never less than nothing (the checkpoint Hammer reports
scores at least as well on the test set as any other, the honest one included). But the flattery grows
with every try.
[`best_of_n_optimism`][torchenstein.training.leak.best_of_n_optimism] simulates it: $N$ models with the
same true accuracy of 70%, each scored on its own draw of 200 test rows, and the best score reported,
averaged over thousands of imaginary projects:

```pycon
>>> for n in (1, 5, 20, 100):
...     print(f"best of {n:3} tries: {best_of_n_optimism(n, 200):.1%} reported")
best of   1 tries: 70.0% reported
best of   5 tries: 73.8% reported
best of  20 tries: 75.9% reported
best of 100 tries: 77.9% reported

```

Almost eight points of accuracy from nothing but persistence. The fix costs one more pile: make every
choice on the validation set, look at the test set once, and report that number even if you do not like
it. (The validation score of the winner is itself optimistic, for the same reason; that is why it is not
the number you report.)

## The scoreboard

All four experiments with one seed, by [`hammer_vs_honest`][torchenstein.training.leak.hammer_vs_honest],
and the cost of persistence beside them:

![Left: pairs of bars, Hammer's test accuracy against the honest one, for statistics fit before the split (62 against 24 percent), twins across the split (97.5 against 72.5), a feature that knows the answer (90 against 45.8) and choosing on the test set (71 against 65.5), with chance at 25 percent dashed. Right: the best test score reported rises from 70 to about 78 percent as the number of equally good models tried on a 200-row test set grows from 1 to 100.](plot_hammer_vs_honest.svg)

```pycon
>>> from torchenstein.training.leak import hammer_vs_honest
>>> for leak, scores in hammer_vs_honest(seed=0).items():
...     print(f"{leak:32} Hammer {scores['hammer']:.1%}, honest {scores['honest']:.1%}")
statistics fit before the split  Hammer 62.0%, honest 24.0%
twins across the split           Hammer 97.5%, honest 72.5%
a feature that knows the answer  Hammer 90.0%, honest 45.8%
choosing on the test set         Hammer 71.0%, honest 65.5%

```

Stack them, on real images, with a network big enough to memorise, and ninety-nine percent stops being
a mystery. `tests/test_leak.py` repeats every experiment with several seeds and checks that each gap
holds, so none of these numbers is a lucky draw.

## A recipe without leaks

1. Split first, before any statistic, augmentation or selection; split by object (specimen, patient,
   video) when one object gives several rows; use a seeded generator so the split can be repeated.
2. Fit every statistic on the training rows only (normalisation, feature selection, vocabularies,
   imputation), then apply it unchanged to the other piles. Check with `was_fit_on`.
3. Augment and oversample after the split, and only the training set.
4. Compare the piles: `overlap_by_hash` for exact copies, `near_duplicates` for twins.
5. Drop ids, file positions and anything that only the collection process knows; score features alone
   with `single_feature_scores` and interrogate any that is too good.
6. Choose everything on the validation set. Look at the test set once. Publish that number.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the test loader that loads the training set"
    A copied line, `test_set = Specimens(train_rows)`, and a test score to celebrate. The model is scored
    on the very rows it learnt from. One hash comparison would have shown it: every test row has a copy
    in the training set.

    ```pycon
    >>> x, y = make_specimens(100, seed=0)
    >>> train, test = split_indices(100, (0.8, 0.2), torch.Generator().manual_seed(0))
    >>> hammer_test = x[train][:20]                          # the copy-paste bug
    >>> print(f"test rows found in train: {len(overlap_by_hash(x[train], hammer_test))} of 20")
    test rows found in train: 20 of 20
    >>> print(f"after the fix: {len(overlap_by_hash(x[train], x[test]))} of {len(test)}")
    after the fix: 0 of 20

    ```

!!! hammer "Dr. Hammer's trap: oversampling before the split"
    One class is rare, so Hammer copies its rows five times to balance the classes, then splits. The
    rare class is now recognised perfectly on the test set, by recall. Oversample the training rows only,
    after the split.

    ```pycon
    >>> x, y = make_specimens(200, seed=0)
    >>> rare = y == 3
    >>> xo = torch.cat([x, x[rare].repeat(4, 1)])               # four more copies of every rare row
    >>> train, test = split_indices(len(xo), (0.8, 0.2), torch.Generator().manual_seed(0))
    >>> print(f"test rows with an exact copy in train: {len(overlap_by_hash(xo[train], xo[test]))} of {len(test)}")
    test rows with an exact copy in train: 53 of 85

    ```

!!! hammer "Dr. Hammer's trap: `fit_transform` on every pile"
    "Standardise each split", says Hammer, and fits a fresh scaler on the test rows. The test set is now
    centred with its own mean: each test row's features depend on all the other test rows, and a single new
    specimen, which comes with no test set around it, cannot be treated the same way. Fit once, on the
    training rows; `transform` the rest.

    ```pycon
    >>> x, y = make_specimens(100, seed=0)
    >>> train, test = split_indices(100, (0.8, 0.2), torch.Generator().manual_seed(0))
    >>> test_scaler = Standardizer().fit(x[test])               # Hammer: a scaler per pile
    >>> print("Hammer's test scaler fit on the test rows:", was_fit_on(test_scaler, x[test]))
    Hammer's test scaler fit on the test rows: True
    >>> scaler = Standardizer().fit(x[train])                   # the fix: one scaler, fit on train
    >>> z_test = scaler.transform(x[test])
    >>> print(f"fit on the training rows: {was_fit_on(scaler, x[train])}, on the test rows: {was_fit_on(scaler, x[test])}")
    fit on the training rows: True, on the test rows: False
    >>> Standardizer().transform(x[test])
    Traceback (most recent call last):
    ...
    RuntimeError: this Standardizer is not fitted yet: call fit(x_train) first

    ```

## Challenges

**1. A pipeline without leaks.** Write `leak_free_split(x, y, fractions=(0.6, 0.2, 0.2), generator=None)`:
split the rows with `split_indices(len(x), fractions, generator)` into training, validation and test
piles (in that order), standardise all three with statistics fit on the training features alone, and
return `{"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}`.

**2. Find the leaking feature.** Write `find_leaking_feature(x, y)`: given a table with one column that
encodes the label (an id sorted by class, a code for the class in any order, with or without noise),
return that column's index. The checker hides the column among honest measurements, some of them
informative, some with enormous variance, and in one table the classes sit along the leaking column in
an order that makes its linear correlation with the label zero.

Check an attempt with `check_leak_free_split(my_function)` or `check_find_leaking_feature(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's
answers pass:

```pycon
>>> from torchenstein.training.leak import (
...     check_find_leaking_feature, check_leak_free_split, find_leaking_feature, leak_free_split)
>>> check_leak_free_split(leak_free_split)                 # silence: every case passed
>>> check_find_leaking_feature(find_leaking_feature)

```
"""

from __future__ import annotations

import functools
import hashlib
import math
import textwrap
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure, progress

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def make_specimens(
    n_samples: int = 600,
    *,
    n_informative: int = 8,
    n_noise: int = 8,
    n_classes: int = 4,
    separation: float = 1.0,
    label_noise: float = 0.1,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    r"""Hammer's specimens: a seeded classification table whose honest accuracy is well below 100%.

    Each specimen belongs to one of ``n_classes`` classes. Its ``n_informative`` measurements are the
    class's centre (drawn once, scaled by ``separation``) plus standard normal noise, so the classes
    overlap; its ``n_noise`` further measurements are pure noise. Finally a fraction ``label_noise`` of the
    labels is replaced by a random class, as a tired lab assistant would write them down.

    Args:
        n_samples: how many specimens (rows).
        n_informative: measurements that depend on the class.
        n_noise: measurements that do not.
        n_classes: how many classes, at least 2.
        separation: how far apart the class centres are, in units of the noise.
        label_noise: the fraction of labels replaced by a random class, in ``[0, 1]``.
        seed: seeds a private generator; the same seed gives the same table.

    Returns:
        ``(features, labels)``: float32 of shape ``(n_samples, n_informative + n_noise)`` and int64 of
        shape ``(n_samples,)``.

    Raises:
        TypeError: if a size is not an int, or ``separation`` or ``label_noise`` not a number.
        ValueError: if a size is below 1 (``n_noise`` or ``n_informative`` may be 0, not both), ``n_classes``
            below 2, ``separation`` negative or ``label_noise`` outside ``[0, 1]``.

    Examples:
        >>> x, y = make_specimens(5, n_informative=2, n_noise=1)
        >>> x.shape, y.dtype
        (torch.Size([5, 3]), torch.int64)
    """
    _check_specimen_args(n_samples, n_informative, n_noise, n_classes, separation, label_noise)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n_samples,), generator=generator)
    centres = separation * torch.randn(n_classes, n_informative, generator=generator)
    informative = centres[labels] + torch.randn(n_samples, n_informative, generator=generator)
    noise = torch.randn(n_samples, n_noise, generator=generator)
    flipped = torch.rand(n_samples, generator=generator) < label_noise
    labels = torch.where(flipped, torch.randint(0, n_classes, (n_samples,), generator=generator), labels)
    return torch.cat([informative, noise], dim=1), labels


def split_indices(
    n: int, fractions: Sequence[float], generator: torch.Generator | None = None
) -> list[Tensor]:
    r"""Shuffle ``range(n)`` and cut it into parts of the given fractions, as ``random_split`` does.

    Each part gets $\lfloor n f_i \rfloor$ indices; the few left over go one each to the first parts,
    round-robin. The permutation is ``torch.randperm(n, generator=generator)``, so with the same generator
    the parts are exactly the ``indices`` of ``torch.utils.data.random_split(range(n), fractions, generator)``.

    Args:
        n: how many rows to split.
        fractions: one fraction per part, each in ``[0, 1]``, summing to 1 (say ``(0.6, 0.2, 0.2)`` for
            train, validation and test).
        generator: a seeded ``torch.Generator`` for a reproducible split (``None``: the global one).

    Returns:
        One int64 tensor of row indices per part; together they hold every index once.

    Raises:
        TypeError: if ``n`` is not an int or a fraction not a number.
        ValueError: if ``n`` is negative or the fractions are out of range or do not sum to 1.

    Examples:
        >>> parts = split_indices(10, (0.6, 0.2, 0.2), torch.Generator().manual_seed(0))
        >>> [len(part) for part in parts]
        [6, 2, 2]
        >>> split_indices(10, (0.5, 0.6))
        Traceback (most recent call last):
        ...
        ValueError: fractions must sum to 1, got (0.5, 0.6) (sum 1.1)
    """
    lengths = _split_lengths(n, fractions)
    permutation = torch.randperm(n, generator=generator)
    # Consecutive slices of one permutation: disjoint by construction, and together the whole range.
    return list(permutation.split(lengths))


def _split_lengths(n: int, fractions: Sequence[float]) -> list[int]:
    _check_int("n", n, 0)
    fractions = tuple(fractions)
    if any(isinstance(f, bool) or not isinstance(f, Real) for f in fractions):
        raise TypeError(f"fractions must be numbers in [0, 1], got {fractions!r}")
    if not fractions or not all(0 <= f <= 1 for f in fractions):
        raise ValueError(f"fractions must be numbers in [0, 1], got {fractions!r}")
    if not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fractions):.3g})")
    lengths = [math.floor(n * f) for f in fractions]
    # The remainder (less than one row per part) goes round-robin from the first part, as in random_split.
    for i in range(n - sum(lengths)):
        lengths[i % len(lengths)] += 1
    return lengths


class Standardizer:
    r"""Per-feature standardisation, $z = (x - \mu) / \sigma$, with statistics fit on the rows you choose.

    A from-scratch twin of scikit-learn's ``StandardScaler``: the same attribute names (``mean_``, ``var_``,
    ``scale_``, ``n_samples_seen_``), the population variance (divided by $n$, not $n - 1$), and a
    scale of 1 for a constant feature, so it is left centred instead of divided by zero. The statistics are
    computed in float64 and stored in the input's dtype.

    The whole point: call `fit` on the **training rows only**, then `transform` every split with those
    statistics.

    Attributes:
        mean_: the per-feature mean of the rows it was fit on, shape ``(features,)``.
        var_: the per-feature population variance.
        scale_: the per-feature standard deviation, 1 where the feature is constant.
        n_samples_seen_: how many rows the statistics come from.

    Examples:
        >>> scaler = Standardizer().fit(torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
        >>> scaler.mean_, scaler.scale_
        (tensor([2., 5.]), tensor([1., 1.]))
        >>> scaler.transform(torch.tensor([[4.0, 7.0]]))
        tensor([[2., 2.]])
    """

    def __init__(self) -> None:
        self.mean_: Tensor | None = None
        self.var_: Tensor | None = None
        self.scale_: Tensor | None = None
        self.n_samples_seen_: int = 0

    def fit(self, x: Tensor) -> Standardizer:
        """Compute the per-feature mean and standard deviation of the rows of ``x``; return ``self``.

        Raises:
            TypeError: if ``x`` is not a floating-point tensor.
            ValueError: if ``x`` is not 2-D with at least one row.
        """
        _check_table("x", x)
        wide = x.double()
        n = wide.shape[0]
        mean = wide.mean(dim=0)  # (features,)
        var = (wide - mean).pow(2).mean(dim=0)  # population variance, (features,)
        # A feature is constant when its variance is at the level of float64 round-off of its mean:
        # scikit-learn's rule, so a column of 0.1s is "constant" even though its computed variance is not 0.
        eps = torch.finfo(torch.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        scale = torch.where(constant, torch.ones_like(var), var.sqrt())
        self.mean_, self.var_, self.scale_ = mean.to(x.dtype), var.to(x.dtype), scale.to(x.dtype)
        self.n_samples_seen_ = n
        return self

    def transform(self, x: Tensor) -> Tensor:
        """Standardise ``x`` with the fitted statistics (never with its own).

        Raises:
            RuntimeError: if called before `fit`.
            ValueError: if ``x`` has a different number of features.
        """
        if self.mean_ is None:
            raise RuntimeError("this Standardizer is not fitted yet: call fit(x_train) first")
        _check_table("x", x)
        if x.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"x must have {self.mean_.shape[0]} features, as the rows it was fit on, got {x.shape[1]}")
        return (x - self.mean_) / self.scale_

    def fit_transform(self, x: Tensor) -> Tensor:
        """`fit` on ``x``, then `transform` it: for the training rows only."""
        return self.fit(x).transform(x)

    def __repr__(self) -> str:
        fitted = f"fitted on {self.n_samples_seen_} rows" if self.mean_ is not None else "not fitted"
        return f"Standardizer({fitted})"


def was_fit_on(standardizer: Standardizer, rows: Tensor) -> bool:
    """Say whether a fitted `Standardizer`'s statistics are exactly those of ``rows``.

    Run it on your own pipeline: ``was_fit_on(scaler, x_train)`` must be ``True``; if
    ``was_fit_on(scaler, x_all)`` is, the test rows helped compute the statistics.

    Raises:
        RuntimeError: if the standardizer is not fitted.

    Examples:
        >>> x = torch.randn(10, 3)
        >>> scaler = Standardizer().fit(x[:8])
        >>> was_fit_on(scaler, x[:8]), was_fit_on(scaler, x)
        (True, False)
    """
    if standardizer.mean_ is None:
        raise RuntimeError("this Standardizer is not fitted yet: call fit(x_train) first")
    fresh = Standardizer().fit(rows)
    return (
        fresh.n_samples_seen_ == standardizer.n_samples_seen_
        and torch.allclose(fresh.mean_, standardizer.mean_)
        and torch.allclose(fresh.scale_, standardizer.scale_)
    )


def train_classifier(
    x: Tensor, y: Tensor, *, hidden: int = 0, steps: int = 200, lr: float = 0.05, seed: int = 0
) -> nn.Module:
    """Fit a softmax classifier (``hidden=0``) or a one-hidden-layer MLP with full-batch Adam.

    The same few lines serve every experiment of the lesson, so no leak can hide in a different loop.

    Args:
        x: standardised features, ``(N, features)``.
        y: class indices, ``(N,)``; the number of classes is ``y.max() + 1``.
        hidden: hidden units, or 0 for a linear model.
        steps: optimizer steps, each on the whole of ``x``.
        lr: Adam's learning rate.
        seed: seeds the initial weights.

    Returns:
        The trained model, in eval mode.

    Examples:
        >>> x, y = make_specimens(50, n_informative=2, n_noise=0)
        >>> train_classifier(x, y, steps=5)
        Linear(in_features=2, out_features=4, bias=True)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n_features, n_classes = x.shape[1], int(y.max()) + 1
        if hidden == 0:
            model = nn.Linear(n_features, n_classes)
        else:
            model = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in progress(range(steps), desc="training", leave=False):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> float:
    """The fraction of rows whose highest logit is the true class.

    Examples:
        >>> accuracy(lambda t: t, torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        0.5
    """
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def class_separation_scores(x: Tensor, y: Tensor) -> Tensor:
    r"""How strongly each feature separates the classes: the between-class variance of its standardised values.

    For feature $j$, standardised over the given rows, the score is $\sum_c n_c \bar z_{c,j}^2 / n$, where
    $\bar z_{c,j}$ is the mean over the $n_c$ rows of class $c$. A feature unrelated to the label scores
    about $(C - 1)/n$; the informative ones score far more. (It is the numerator of the ANOVA $F$ statistic.)

    Examples:
        >>> x = torch.tensor([[0.0, 1.0], [0.1, -1.0], [5.0, 1.0], [5.1, -1.0]])
        >>> class_separation_scores(x, torch.tensor([0, 0, 1, 1])).round(decimals=3)
        tensor([1., 0.])
    """
    z = Standardizer().fit_transform(x.double())
    one_hot = F.one_hot(y).double()  # (N, C)
    counts = one_hot.sum(dim=0)  # (C,)
    class_means = (one_hot.T @ z) / counts.clamp(min=1)[:, None]  # (C, features)
    return ((counts[:, None] * class_means.pow(2)).sum(dim=0) / len(y)).to(x.dtype)


def _remembered(experiment: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    """Remember an experiment's result per set of arguments: it is deterministic, and the page's examples,
    the scoreboard and the figure can share one run. Each caller gets its own copy of the dict."""
    cache: dict[tuple, dict[str, float]] = {}

    @functools.wraps(experiment)
    def run(*args: object, **kwargs: object) -> dict[str, float]:
        key = (args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = experiment(*args, **kwargs)
        return dict(cache[key])

    return run


def _split_rows(n: int, fractions: Sequence[float], seed: int) -> list[Tensor]:
    return split_indices(n, fractions, torch.Generator().manual_seed(seed))


@_remembered
def leak_preprocessing(seed: int = 0, *, k: int = 20) -> dict[str, float]:
    """Leak 1: keep the ``k`` features that best separate the classes, chosen with or without the test rows.

    The table is 200 specimens with 2000 measurements of pure noise: no feature says anything about the
    class, so the honest accuracy is chance, 25%. Hammer standardises and selects on all 200 rows, then
    splits 150/50; the honest pipeline splits first and fits both statistics on the 150 training rows.

    Returns:
        ``{"hammer": ..., "honest": ...}``: the test accuracies of the two pipelines.

    Examples:
        >>> scores = leak_preprocessing(seed=0)
        >>> scores["hammer"] > scores["honest"]
        True
    """
    x, y = make_specimens(200, n_informative=0, n_noise=2000, seed=seed)
    train, test = _split_rows(len(x), (0.75, 0.25), seed)
    # Hammer: every statistic sees every row, test rows included; then he splits.
    z = Standardizer().fit_transform(x)
    keep = class_separation_scores(z, y).topk(k).indices
    hammer = accuracy(train_classifier(z[train][:, keep], y[train], seed=seed), z[test][:, keep], y[test])
    # Honest: split first; every statistic is a property of the training rows alone.
    scaler = Standardizer().fit(x[train])
    keep = class_separation_scores(scaler.transform(x[train]), y[train]).topk(k).indices
    model = train_classifier(scaler.transform(x[train])[:, keep], y[train], seed=seed)
    honest = accuracy(model, scaler.transform(x[test])[:, keep], y[test])
    return {"hammer": hammer, "honest": honest}


@_remembered
def leak_normalisation(seed: int = 0) -> dict[str, float]:
    """Normalisation statistics of all rows against those of the training rows, on informative specimens.

    Returns:
        ``{"hammer": ..., "honest": ...}``: test accuracies with the two standardisations, same model.

    Examples:
        >>> sorted(leak_normalisation(seed=0))
        ['hammer', 'honest']
    """
    x, y = make_specimens(600, seed=seed)
    train, test = _split_rows(len(x), (0.8, 0.2), seed)
    scores = {}
    for name, rows in (("hammer", torch.arange(len(x))), ("honest", train)):
        scaler = Standardizer().fit(x[rows])
        model = train_classifier(scaler.transform(x[train]), y[train], seed=seed)
        scores[name] = accuracy(model, scaler.transform(x[test]), y[test])
    return scores


def augment(x: Tensor, y: Tensor, *, copies: int = 3, jitter: float = 0.05, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Data augmentation for a table: each row, plus ``copies - 1`` twins with a little noise added.

    The twins stand for the flipped and shifted copies of an image: the same specimen, slightly moved.

    Returns:
        ``(features, labels)`` with ``copies`` times as many rows; the originals come first.

    Examples:
        >>> xa, ya = augment(torch.zeros(2, 3), torch.tensor([0, 1]), copies=3)
        >>> xa.shape, ya.tolist()
        (torch.Size([6, 3]), [0, 1, 0, 1, 0, 1])
    """
    _check_int("copies", copies, 1)
    generator = torch.Generator().manual_seed(seed)
    twins = [x + jitter * torch.randn(x.shape, generator=generator) for _ in range(copies - 1)]
    return torch.cat([x, *twins]), y.repeat(copies)


def nearest_neighbour_predict(train_x: Tensor, train_y: Tensor, test_x: Tensor) -> Tensor:
    """The perfect memoriser: answer each test row with the label of the closest training row.

    Examples:
        >>> nearest_neighbour_predict(torch.tensor([[0.0], [10.0]]), torch.tensor([3, 7]), torch.tensor([[9.0]]))
        tensor([7])
    """
    return train_y[torch.cdist(test_x, train_x).argmin(dim=1)]


def _flat_rows(t: Tensor) -> Tensor:
    """Rows as flat vectors, (N, ...) -> (N, D), even when N is 0."""
    return t.reshape(len(t), math.prod(t.shape[1:]))


def _row_hashes(t: Tensor) -> list[str]:
    # Adding 0.0 turns -0.0 into 0.0 (equal values, different bytes); a contiguous CPU copy gives each row
    # the same bytes wherever it came from.
    rows = _flat_rows(t + 0 if t.is_floating_point() else t).detach().cpu().contiguous()
    # Bytes, whatever the dtype (NumPy has no bfloat16): each row as its raw uint8 view.
    raw = rows.view(torch.uint8)  # (N, row bytes)
    return [hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in raw]


def overlap_by_hash(train: Tensor, test: Tensor) -> list[int]:
    """The test rows that also appear, exactly, in the training rows, found by a content hash of each row.

    Each row (dimension 0 indexes rows; any trailing shape, so images work too) is hashed with SHA-256 of
    its bytes; a test row whose hash is among the training hashes is an exact duplicate. Fast on any size,
    blind to a copy that differs by a single bit: see `near_duplicates` for those.

    Args:
        train: the training rows.
        test: the test (or validation) rows, of the same dtype and trailing shape.

    Returns:
        The sorted indices of the test rows that have an exact copy in ``train``.

    Raises:
        TypeError: if the two are not tensors of the same dtype.
        ValueError: if their trailing shapes differ.

    Examples:
        >>> train = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> overlap_by_hash(train, torch.tensor([[3.0, 4.0], [5.0, 6.0], [-0.0, 0.0], [1.0, 2.0]]))
        [0, 3]
    """
    _check_pair(train, test)
    seen = set(_row_hashes(train))
    return [i for i, digest in enumerate(_row_hashes(test)) if digest in seen]


def near_duplicates(train: Tensor, test: Tensor, *, atol: float) -> list[int]:
    """The test rows with a training row within Euclidean distance ``atol``: copies that are almost exact.

    Args:
        train: the training rows (flattened after dimension 0).
        test: the test rows, same trailing shape.
        atol: the largest distance that still counts as a copy.

    Returns:
        The sorted indices of such test rows.

    Raises:
        TypeError: if the two are not tensors of the same dtype, or ``atol`` is not a number.
        ValueError: if their trailing shapes differ or ``atol`` is negative.

    Examples:
        >>> near_duplicates(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.01, 0.0], [1.0, 1.0]]), atol=0.1)
        [0]
    """
    _check_pair(train, test)
    _check_real("atol", atol, 0.0, math.inf, "a non-negative number")
    if len(train) == 0 or len(test) == 0:
        return []
    distances = torch.cdist(_flat_rows(test).double(), _flat_rows(train).double())  # (test rows, train rows)
    return (distances.min(dim=1).values <= atol).nonzero().flatten().tolist()


@_remembered
def leak_duplicates(seed: int = 0) -> dict[str, float]:
    """Leak 2: augment, then split (Hammer), against split, then augment the training part (honest).

    400 specimens with 20% label noise; every specimen gets two jittered twins. The model is the
    nearest-neighbour memoriser.

    Returns:
        ``{"hammer": ..., "honest": ...}``: the two test accuracies.

    Examples:
        >>> scores = leak_duplicates(seed=0)
        >>> scores["hammer"] > scores["honest"]
        True
    """
    x, y = make_specimens(400, label_noise=0.2, seed=seed)
    # Hammer: twins first, then a random split of all 1200 rows.
    xa, ya = augment(x, y, seed=seed)
    train, test = _split_rows(len(xa), (0.8, 0.2), seed)
    hammer = (nearest_neighbour_predict(xa[train], ya[train], xa[test]) == ya[test]).float().mean().item()
    # Honest: split the specimens, then give twins to the training specimens only.
    train, test = _split_rows(len(x), (0.8, 0.2), seed)
    xt, yt = augment(x[train], y[train], seed=seed)
    honest = (nearest_neighbour_predict(xt, yt, x[test]) == y[test]).float().mean().item()
    return {"hammer": hammer, "honest": honest}


def with_collection_ids(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Hammer's table as his lab stored it: sorted class by class, with the row number as column 0.

    Returns:
        ``(features, labels)``, features with one more column (the id, 0, 1, 2, ...), rows in class order.

    Examples:
        >>> xi, yi = with_collection_ids(torch.zeros(4, 1), torch.tensor([1, 0, 1, 0]))
        >>> xi[:, 0].tolist(), yi.tolist()
        ([0.0, 1.0, 2.0, 3.0], [0, 0, 1, 1])
    """
    order = torch.argsort(y, stable=True)
    ids = torch.arange(len(y), dtype=x.dtype)[:, None]
    return torch.cat([ids, x[order]], dim=1), y[order]


def single_feature_scores(x: Tensor, y: Tensor, *, bins: int = 10, seed: int = 0) -> Tensor:
    """How well each feature alone predicts the label, measured honestly on rows it was not fit on.

    The rows are split in half. On the first half, each feature's values are cut into ``bins`` bins of
    equal counts (quantiles) and each bin predicts its most common class; the score is that predictor's
    accuracy on the second half. An ordinary feature scores near chance; a feature that encodes the label
    scores near 1, in whatever order the classes sit along it.

    Args:
        x: features, ``(N, features)``, at least 4 rows.
        y: class indices, ``(N,)``.
        bins: bins per feature, at least 1.
        seed: seeds the half-half split.

    Returns:
        One accuracy per feature, float32, shape ``(features,)``.

    Examples:
        >>> x = torch.stack([torch.arange(8.0), torch.zeros(8)], dim=1)
        >>> single_feature_scores(x, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), bins=2)
        tensor([1.0000, 0.5000])
    """
    _check_table("x", x)
    if len(x) < 4 or y.shape != (len(x),):
        raise ValueError(f"x needs at least 4 rows and y one label per row, got x {tuple(x.shape)}, y {tuple(y.shape)}")
    fit, score = split_indices(len(x), (0.5, 0.5), torch.Generator().manual_seed(seed))
    n_classes = int(y.max()) + 1
    majority = torch.bincount(y[fit], minlength=n_classes).argmax()
    quantiles = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    scores = []
    for column in x.double().T.contiguous():  # one feature at a time: (N,)
        edges = torch.quantile(column[fit], quantiles)  # (bins - 1,)
        bin_of = torch.bucketize(column, edges)  # (N,), values 0 .. bins - 1
        counts = torch.zeros(bins, n_classes, dtype=torch.long)
        counts.index_put_((bin_of[fit], y[fit]), torch.ones(len(fit), dtype=torch.long), accumulate=True)
        # A bin no fitting row fell into predicts the most common class overall.
        vote = torch.where(counts.sum(dim=1) > 0, counts.argmax(dim=1), majority)  # (bins,)
        scores.append((vote[bin_of[score]] == y[score]).float().mean())
    return torch.stack(scores)


@_remembered
def leak_id_feature(seed: int = 0) -> dict[str, float]:
    """Leak 3: train with the collection id as a feature (Hammer) or without it (honest).

    Returns:
        ``{"hammer": ..., "honest": ..., "hammer on new specimens": ...}``: the two test accuracies, and
        Hammer's model on 400 new specimens whose ids continue where his table stopped.

    Examples:
        >>> scores = leak_id_feature(seed=0)
        >>> scores["hammer"] > scores["honest"] > scores["hammer on new specimens"]
        True
    """
    # One draw of 1000 specimens: 600 in Hammer's table, 400 that arrive after the paper.
    all_x, all_y = make_specimens(1000, separation=0.6, seed=seed)
    x, y = with_collection_ids(all_x[:600], all_y[:600])
    new_x, new_y = all_x[600:], all_y[600:]
    train, test = _split_rows(len(x), (0.8, 0.2), seed)
    scores = {}
    for name, columns in (("hammer", slice(None)), ("honest", slice(1, None))):
        scaler = Standardizer().fit(x[train][:, columns])
        model = train_classifier(scaler.transform(x[train][:, columns]), y[train], hidden=16, lr=0.02, seed=seed)
        scores[name] = accuracy(model, scaler.transform(x[test][:, columns]), y[test])
        if name == "hammer":
            # New specimens get the next ids, as the lab's counter keeps counting.
            new_ids = torch.arange(len(x), len(x) + len(new_x), dtype=x.dtype)[:, None]
            new_scores = accuracy(model, scaler.transform(torch.cat([new_ids, new_x], dim=1)), new_y)
    scores["hammer on new specimens"] = new_scores
    return scores


@_remembered
def leak_test_selection(seed: int = 0, *, steps: int = 200, every: int = 5) -> dict[str, float]:
    """Leak 4: pick the checkpoint with the best test accuracy (Hammer) or the best validation accuracy (honest).

    A small MLP trains on 60% of 1000 specimens (20% label noise); every ``every`` steps the checkpoint is
    scored on the validation set (20%) and the test set (20%).

    Returns:
        ``{"hammer": ..., "honest": ...}``: Hammer's reported number (the highest test accuracy of any
        checkpoint) and the honest report (the test accuracy of the checkpoint with the best validation
        accuracy).

    Examples:
        >>> scores = leak_test_selection(seed=0, steps=20)
        >>> scores["hammer"] >= scores["honest"]
        True
    """
    x, y = make_specimens(1000, label_noise=0.2, seed=seed)
    train, val, test = _split_rows(len(x), (0.6, 0.2, 0.2), seed)
    z = Standardizer().fit(x[train]).transform(x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    val_scores, test_scores = [], []
    for step in progress(range(steps), desc="training", leave=False):
        optimizer.zero_grad()
        F.cross_entropy(model(z[train]), y[train]).backward()
        optimizer.step()
        if (step + 1) % every == 0:
            # Hammer looks at both columns; the honest experimenter chooses by the first alone.
            val_scores.append(accuracy(model, z[val], y[val]))
            test_scores.append(accuracy(model, z[test], y[test]))
    honest_pick = max(range(len(val_scores)), key=val_scores.__getitem__)
    return {"hammer": max(test_scores), "honest": test_scores[honest_pick]}


def best_of_n_optimism(
    n_candidates: int, n_test: int, *, accuracy: float = 0.7, repeats: int = 4000, seed: int = 0
) -> float:
    r"""The average test accuracy reported when the best of ``n_candidates`` equally good models is chosen on the test set.

    Every candidate's true accuracy is ``accuracy``; its test score is the fraction of ``n_test`` test
    rows it gets right, a binomial draw. Reporting the maximum of the ``n_candidates`` scores, over
    ``repeats`` simulated projects, averages to more than ``accuracy``: the difference is the optimism of
    selecting on the test set. (Real candidates make correlated mistakes, which shrinks the optimism but
    never removes it.)

    Returns:
        The mean reported accuracy.

    Examples:
        >>> round(best_of_n_optimism(1, 200), 2)
        0.7
    """
    generator = torch.Generator().manual_seed(seed)
    counts = torch.full((repeats, n_candidates), float(n_test))
    correct = torch.binomial(counts, torch.full_like(counts, accuracy), generator=generator)  # (repeats, n)
    return (correct.max(dim=1).values / n_test).mean().item()


LEAKS = {
    "statistics fit before the split": leak_preprocessing,
    "twins across the split": leak_duplicates,
    "a feature that knows the answer": leak_id_feature,
    "choosing on the test set": leak_test_selection,
}
"""The four leaks of the lesson, each an experiment returning Hammer's and the honest test accuracy."""


def hammer_vs_honest(seed: int = 0) -> dict[str, dict[str, float]]:
    """Run all four experiments of the lesson with one seed.

    Returns:
        For each leak (the keys of `LEAKS`), ``{"hammer": ..., "honest": ...}``.

    Examples:
        >>> list(LEAKS)[0]
        'statistics fit before the split'
    """
    return {name: {k: v for k, v in experiment(seed=seed).items() if k in ("hammer", "honest")}
            for name, experiment in LEAKS.items()}


def plot_hammer_vs_honest(*, seed: int = 0) -> Figure:
    """Draw Hammer's test accuracy beside the honest one for each leak, and the optimism of many tries.

    Left: the four experiments of `hammer_vs_honest`, a pair of bars each, with chance (25%) dashed.
    Right: `best_of_n_optimism` for 1 to 100 equally good candidates on a 200-row test set.

    Returns:
        A figure with two axes.

    Examples:
        >>> fig = plot_hammer_vs_honest()
        >>> len(fig.axes), len(fig.axes[0].patches)
        (2, 8)
    """
    scores = hammer_vs_honest(seed)
    fig, (ax, ax_tries) = new_figure(1, 2, width=10.0, height=3.8)
    positions = torch.arange(len(scores), dtype=torch.float64)
    width = 0.38
    for offset, key, colour, label in ((-width / 2, "hammer", PALETTE[2], "Dr. Hammer's score"),
                                       (width / 2, "honest", PALETTE[1], "honest score")):
        values = [100 * s[key] for s in scores.values()]
        bars = ax.bar((positions + offset).tolist(), values, width=width, color=colour, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.axhline(25, color="#555555", linestyle=(0, (4, 3)), linewidth=1.0, label="chance")
    # Two lines per label: the names are short sentences.
    ax.set_xticks(positions.tolist(), [textwrap.fill(name, 16) for name in scores], fontsize=8)
    ax.set(ylabel="test accuracy (%)", ylim=(0, 115), title="Same data, same model: his number and the truth")
    ax.legend(loc="upper right", fontsize=8, ncols=3)
    tries = [1, 2, 3, 5, 10, 20, 50, 100]
    reported = [100 * best_of_n_optimism(n, 200, repeats=2000) for n in tries]
    ax_tries.plot(tries, reported, marker="o", color=PALETTE[2], label="best test score reported")
    ax_tries.axhline(70, color=PALETTE[1], linestyle=(0, (4, 3)), label="true accuracy of every try")
    ax_tries.set_xscale("log")
    ax_tries.set(xlabel="models tried on the test set", ylabel="accuracy (%)",
                 title="Choosing on a 200-row test set")
    ax_tries.legend(loc="lower right", fontsize=8)
    return fig


def leak_free_split(
    x: Tensor, y: Tensor, fractions: Sequence[float] = (0.6, 0.2, 0.2), generator: torch.Generator | None = None
) -> dict[str, tuple[Tensor, Tensor]]:
    """Challenge solution: split into training, validation and test piles, standardised with training statistics.

    Args:
        x: features, ``(N, features)``, floating point.
        y: labels, ``(N,)``.
        fractions: the training, validation and test fractions, summing to 1.
        generator: seeds the split.

    Returns:
        ``{"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}``.

    Raises:
        ValueError: if ``fractions`` does not hold three fractions summing to 1.

    Examples:
        >>> x, y = make_specimens(20, seed=1)
        >>> piles = leak_free_split(x, y, generator=torch.Generator().manual_seed(0))
        >>> {name: len(labels) for name, (_, labels) in piles.items()}
        {'train': 12, 'val': 4, 'test': 4}
    """
    if len(tuple(fractions)) != 3:
        raise ValueError(f"fractions must hold three fractions (train, val, test), got {tuple(fractions)!r}")
    parts = split_indices(len(x), fractions, generator)
    # The split comes first; the one statistic of the pipeline is fit on the training rows alone.
    scaler = Standardizer().fit(x[parts[0]])
    return {name: (scaler.transform(x[rows]), y[rows]) for name, rows in zip(("train", "val", "test"), parts, strict=True)}


def _challenge_table(seed: int, n: int = 300) -> tuple[Tensor, Tensor]:
    """Specimens whose later rows drift away: statistics of all rows differ clearly from the first rows'."""
    x, y = make_specimens(n, n_informative=3, n_noise=2, seed=seed)
    drift = torch.linspace(0.0, 4.0, n)[:, None] * torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0])
    return (x + drift) * torch.tensor([1.0, 10.0, 0.1, 1.0, 5.0]), y


def check_leak_free_split(candidate: Callable[..., dict[str, tuple[Tensor, Tensor]]]) -> None:
    """Check an attempt at `leak_free_split` against the Professor's pipeline, pile by pile.

    Raises:
        AssertionError: if a pile holds the wrong rows or was standardised with the wrong statistics.
    """
    for seed, fractions in ((0, (0.6, 0.2, 0.2)), (1, (0.5, 0.25, 0.25)), (2, (0.8, 0.1, 0.1))):
        x, y = _challenge_table(seed)
        case = f"table {seed}, fractions {fractions}"
        expected = leak_free_split(x, y, fractions, torch.Generator().manual_seed(seed))
        try:
            got = candidate(x, y, fractions, torch.Generator().manual_seed(seed))
        except Exception as error:  # a crash is a wrong answer, reported with its case
            raise AssertionError(f"{case}: the candidate raised {error!r}") from error
        assert isinstance(got, dict) and set(got) == {"train", "val", "test"}, (
            f"{case}: return a dict with the keys 'train', 'val' and 'test', got {got!r:.80}"
        )
        for name in ("train", "val", "test"):
            want_x, want_y = expected[name]
            got_x, got_y = got[name]
            assert torch.equal(got_y, want_y), (
                f"{case}: the {name} pile holds the wrong rows; split with split_indices(len(x), fractions, "
                "generator) and take the parts in the order train, val, test"
            )
            if not torch.allclose(got_x, want_x, atol=1e-5):
                # The drift makes every pile's mean differ: a pile centred exactly on 0 used its own mean.
                own_mean = name != "train" and torch.allclose(got_x.mean(dim=0), torch.zeros(x.shape[1]), atol=1e-4)
                hint = ("it is centred on its own mean, so its statistics came from itself" if own_mean
                        else "were the statistics fit on all rows, before the split?")
                raise AssertionError(f"{case}: the {name} features are not standardised with the training statistics: {hint}")


def find_leaking_feature(x: Tensor, y: Tensor) -> int:
    """Challenge solution: the column that predicts the label far better than any other, scored feature by feature.

    Args:
        x: features, ``(N, features)``.
        y: labels, ``(N,)``.

    Returns:
        The index of the column with the highest `single_feature_scores`.

    Examples:
        >>> x, y = make_specimens(200, seed=0)
        >>> find_leaking_feature(torch.cat([x, y[:, None].float()], dim=1), y)
        16
    """
    return int(single_feature_scores(x, y).argmax())


def check_find_leaking_feature(candidate: Callable[[Tensor, Tensor], int]) -> None:
    """Check an attempt at `find_leaking_feature` on tables that hide a leaking column among decoys.

    Raises:
        AssertionError: if the candidate names the wrong column; the message says which table.
    """
    generator = torch.Generator().manual_seed(0)
    for seed in range(6):
        x, y = make_specimens(400, n_informative=4, n_noise=6, separation=1.5, seed=seed)
        n = len(y)
        noise = torch.randn(n, generator=generator)
        kinds = {
            0: ("an id sorted by class", torch.argsort(torch.argsort(y * n + torch.randperm(n, generator=generator))).float()),
            1: ("the class codes 2, 0, 3, 1 plus a little noise (zero linear correlation)",
                torch.tensor([2.0, 0.0, 3.0, 1.0])[y] + 0.1 * noise),
            2: ("the label plus noise", y.float() + 0.3 * noise),
            3: ("a file position that jumps at each class", 1000.0 * y.float() + torch.rand(n, generator=generator)),
            4: ("the class codes 1, 3, 0, 2 in a tiny range", 1e-3 * torch.tensor([1.0, 3.0, 0.0, 2.0])[y]),
            5: ("an id sorted by class", torch.argsort(torch.argsort(y * n + torch.randperm(n, generator=generator))).float()),
        }
        what, leak = kinds[seed]
        # A decoy with an enormous variance and no information, and the leak at a random position.
        x = torch.cat([x, 1e4 * torch.randn(n, 1, generator=generator)], dim=1)
        position = int(torch.randint(0, x.shape[1] + 1, (1,), generator=generator))
        x = torch.cat([x[:, :position], leak[:, None], x[:, position:]], dim=1)
        try:
            got = candidate(x, y)
        except Exception as error:  # a crash is a wrong answer, reported with its case
            raise AssertionError(f"table {seed} ({what}): the candidate raised {error!r}") from error
        assert isinstance(got, (int, Integral)) or (isinstance(got, Tensor) and got.numel() == 1), (
            f"table {seed}: return the column index as an int, got {got!r}"
        )
        assert int(got) == position, f"table {seed}: the leaking column is {position} ({what}), got {int(got)}"


# Argument checks, kept at the foot of the module so the ideas above read first.


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def _check_real(name: str, value: object, low: float, high: float, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _check_specimen_args(n_samples, n_informative, n_noise, n_classes, separation, label_noise) -> None:
    for name, value, low in (("n_samples", n_samples, 1), ("n_informative", n_informative, 0),
                             ("n_noise", n_noise, 0), ("n_classes", n_classes, 2)):
        _check_int(name, value, low)
    if n_informative + n_noise == 0:
        raise ValueError("n_informative and n_noise cannot both be 0: a specimen needs a measurement")
    _check_real("separation", separation, 0.0, math.inf, "a non-negative number")
    _check_real("label_noise", label_noise, 0.0, 1.0, "a number in [0, 1]")


def _check_table(name: str, x: object) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() != 2 or len(x) == 0:
        raise ValueError(f"{name} must be a 2-D (rows, features) tensor with at least one row, got shape {tuple(x.shape)}")


def _check_pair(train: object, test: object) -> None:
    if not isinstance(train, Tensor) or not isinstance(test, Tensor):
        raise TypeError(f"train and test must be tensors, got {type(train).__name__} and {type(test).__name__}")
    if train.dtype != test.dtype:
        raise TypeError(f"train and test must share a dtype, got {train.dtype} and {test.dtype}")
    if train.dim() == 0 or test.dim() == 0 or train.shape[1:] != test.shape[1:]:
        raise ValueError(
            f"train and test must be rows of the same shape, got shapes {tuple(train.shape)} and {tuple(test.shape)}"
        )
