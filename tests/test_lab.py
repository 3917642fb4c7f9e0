"""The shared laboratory helpers choose devices, seed, time and draw the way every lesson expects."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from torchenstein.lab import (
    DEVICE_PREFERENCE,
    device_available,
    new_figure,
    pick_device,
    seed_everything,
    time_it,
)


def test_pick_device_prefers_the_first_available(monkeypatch):
    monkeypatch.delenv("TORCHENSTEIN_DEVICE", raising=False)
    expected = next(kind for kind in DEVICE_PREFERENCE if device_available(kind))
    assert pick_device().type == expected


def test_pick_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv("TORCHENSTEIN_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("TORCHENSTEIN_DEVICE", "quantum")
    with pytest.raises(ValueError, match="'quantum'"):
        pick_device()


def test_pick_device_honours_an_explicit_choice():
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(("prefer", "error", "message"), [
    ("tpu", ValueError, "prefer must name a device"),
    ("meta", ValueError, "prefer must be one of"),
    (3.5, ValueError, "prefer must name a device"),
])
def test_pick_device_names_a_bad_choice(prefer, error, message):
    with pytest.raises(error, match=message):
        pick_device(prefer)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_pick_device_says_when_the_machine_lacks_the_device():
    with pytest.raises(RuntimeError, match="this machine has none"):
        pick_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_device_finds_cuda_when_present():
    assert pick_device().type == "cuda"


def test_seed_everything_seeds_python_numpy_and_torch():
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_seed_everything_rejects_what_is_not_a_seed(seed):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        seed_everything(seed)


def test_time_it_runs_warmup_and_repeats():
    calls = []
    assert time_it(lambda: calls.append(1), repeat=3, warmup=2) >= 0
    assert len(calls) == 5


@pytest.mark.parametrize(("kwargs", "message"), [({"repeat": 0}, "repeat must be at least 1"), ({"warmup": -1}, "warmup")])
def test_time_it_rejects_bad_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_it(lambda: None, **kwargs)


def test_new_figure_gives_a_flat_list_of_axes():
    fig, axes = new_figure(2, 3)
    assert len(axes) == 6 and fig.axes == axes


def test_new_figure_rejects_an_empty_grid():
    with pytest.raises(ValueError, match="nrows and ncols must be at least 1"):
        new_figure(0, 1)
