"""The thorough proof of the checkpoints lesson: state_dicts, safe loading, atomic writes, bitwise resumes."""

from __future__ import annotations

import copy
import io
import os
import pickle
import random
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

import torchenstein.training.checkpoints as lesson
from torchenstein.challenges import challenges_in
from torchenstein.training.checkpoints import (
    ALARM_LOG,
    Specimen,
    TrojanSpecimen,
    atomic_save,
    capture_rng_state,
    check_rename_state_dict_keys,
    load_checkpoint,
    plot_resume,
    regression_batch,
    rename_state_dict_keys,
    restore_rng_state,
    ring_alarm,
    save_checkpoint,
    train_steps,
)


@pytest.fixture(autouse=True)
def _silent_alarm():
    ALARM_LOG.clear()
    yield
    ALARM_LOG.clear()


def fresh_pair(device: str = "cpu", lr: float = 0.05):
    model = Specimen().to(device)
    return model, torch.optim.Adam(model.parameters(), lr=lr)


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def same_optimizer_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> bool:
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


# What a state_dict holds.


def test_state_dict_is_parameters_and_persistent_buffers_in_tree_order():
    model = Specimen()
    model.register_buffer("scratch", torch.zeros(3), persistent=False)
    state = model.state_dict()
    assert isinstance(state, OrderedDict)
    assert "scratch" not in state
    expected = [n for n, _ in model.body.named_parameters(prefix="body")]
    assert list(state)[:2] == expected[:2]
    assert set(state) == {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()} - {"scratch"}


def test_state_dict_tensors_are_detached_but_share_storage():
    model = Specimen()
    live = dict(model.named_parameters()) | dict(model.named_buffers())
    for name, tensor in model.state_dict().items():
        assert not tensor.requires_grad
        assert tensor.data_ptr() == live[name].data_ptr(), name
    model.state_dict()["body.0.weight"].mul_(0)
    assert torch.count_nonzero(model.body[0].weight) == 0


def test_deepcopy_and_clone_make_independent_snapshots():
    model, optimizer = fresh_pair()
    alias = model.state_dict()
    deep = copy.deepcopy(model.state_dict())
    cloned = {k: t.clone() for k, t in model.state_dict().items()}
    before = model.head.weight.detach().clone()
    train_steps(model, optimizer, start=0, stop=2)
    assert torch.equal(alias["head.weight"], model.head.weight)
    assert torch.equal(deep["head.weight"], before) and torch.equal(cloned["head.weight"], before)
    assert deep["body.1.num_batches_tracked"].item() == 0 and alias["body.1.num_batches_tracked"].item() == 2


def test_keep_vars_hands_out_the_parameters_themselves():
    model = Specimen()
    assert model.state_dict(keep_vars=True)["head.weight"] is model.head.weight


# Loading.


def test_load_state_dict_copies_values_into_existing_tensors():
    source, target = Specimen(), Specimen()
    pointer = target.head.weight.data_ptr()
    assert str(target.load_state_dict(source.state_dict())) == "<All keys matched successfully>"
    assert same_state(source, target)
    assert target.head.weight.data_ptr() == pointer


@pytest.mark.parametrize(("old", "new"), [("head.", "output."), ("body.", "trunk.")])
def test_strict_and_lenient_loading_of_renamed_keys(old, new):
    source = Specimen()
    renamed = {k.replace(old, new): t for k, t in source.state_dict().items()}
    moved = [k for k in source.state_dict() if k.startswith(old)]
    with pytest.raises(RuntimeError, match=r"(?s)Missing key\(s\) in state_dict: .*Unexpected key\(s\)"):
        Specimen().load_state_dict(renamed)
    result = Specimen().load_state_dict(renamed, strict=False)
    # BatchNorm quietly fills in a missing counter (old checkpoints predate it), so it is never "missing".
    assert result.missing_keys == [k for k in moved if not k.endswith("num_batches_tracked")]
    assert result.unexpected_keys == [k.replace(old, new) for k in moved]


def test_a_failed_strict_load_has_already_copied_what_matched():
    source, target = Specimen(), Specimen()
    renamed = {k.replace("head.", "output."): t for k, t in source.state_dict().items()}
    with pytest.raises(RuntimeError):
        target.load_state_dict(renamed)
    assert torch.equal(target.body[0].weight, source.body[0].weight)
    assert not torch.equal(target.head.weight, source.head.weight)


@pytest.mark.parametrize("strict", [True, False])
def test_shape_mismatch_raises_even_when_lenient(strict):
    with pytest.raises(RuntimeError, match=r"size mismatch for body\.0\.weight: copying a param with shape torch.Size\(\[16, 4\]\)"):
        Specimen(hidden_features=32).load_state_dict(Specimen().state_dict(), strict=strict)


def test_loading_only_the_keys_that_fit_for_a_new_head():
    source, target = Specimen(), Specimen(out_features=3)
    wanted = target.state_dict()
    result = target.load_state_dict({k: t for k, t in source.state_dict().items() if t.shape == wanted[k].shape}, strict=False)
    assert result.missing_keys == ["head.weight", "head.bias"] and result.unexpected_keys == []
    assert torch.equal(target.body[0].weight, source.body[0].weight)


# torch.save and torch.load.


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool])
def test_save_and_load_round_trip_under_weights_only(tmp_path, dtype):
    tensors = {"a": torch.arange(6).reshape(2, 3).to(dtype), "nested": [torch.ones(2, dtype=dtype), {"n": 3}]}
    path = tmp_path / "t.pt"
    torch.save(tensors, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert loaded["a"].dtype == dtype and torch.equal(loaded["a"], tensors["a"])
    assert torch.equal(loaded["nested"][0], tensors["nested"][0]) and loaded["nested"][1] == {"n": 3}


def test_loaded_state_dict_is_a_copy_and_loads_into_a_model(tmp_path):
    model = Specimen()
    torch.save(model.state_dict(), tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", map_location=torch.device("cpu"), weights_only=True)
    assert all(loaded[k].data_ptr() != t.data_ptr() for k, t in model.state_dict().items())
    twin = Specimen()
    twin.load_state_dict(loaded)
    assert same_state(model, twin)


def test_a_view_saves_its_whole_storage(tmp_path):
    big = torch.zeros(50_000)
    torch.save(big[:2], tmp_path / "view.pt")
    torch.save(big[:2].clone(), tmp_path / "clone.pt")
    assert os.path.getsize(tmp_path / "view.pt") > 50_000 * 4
    assert os.path.getsize(tmp_path / "clone.pt") < 5_000
    assert torch.load(tmp_path / "view.pt", weights_only=True).shape == (2,)


# Pickles that run code.


def test_weights_only_refuses_the_trojan_and_calls_nothing(tmp_path):
    path = tmp_path / "trojan.pt"
    torch.save({"w": torch.ones(2), "gift": TrojanSpecimen("boo")}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed") as caught:
        torch.load(path, weights_only=True)
    assert "torchenstein.training.checkpoints.ring_alarm" in str(caught.value)
    assert ALARM_LOG == []


def test_without_weights_only_the_trojan_rings_the_alarm(tmp_path):
    path = tmp_path / "trojan.pt"
    torch.save({"w": torch.ones(2), "gift": TrojanSpecimen("boo")}, path)
    loaded = torch.load(path, weights_only=False)
    assert ALARM_LOG == ["boo"]
    assert loaded["gift"] == "boo"  # what the unpickler built is whatever the function returned


def test_plain_pickle_calls_the_function_too():
    assert pickle.loads(pickle.dumps([TrojanSpecimen("x"), TrojanSpecimen("y")])) == ["x", "y"]
    assert ALARM_LOG == ["x", "y"]
    assert ring_alarm("z") == "z" and ALARM_LOG[-1] == "z"


def test_torch_version_object_is_refused_but_its_text_loads():
    buffer = io.BytesIO()
    torch.save({"v": torch.__version__}, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buffer, weights_only=True)
    buffer = io.BytesIO()
    torch.save({"v": str(torch.__version__)}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["v"] == str(torch.__version__)


def test_pickling_the_whole_model_records_the_class_path(monkeypatch):
    buffer = io.BytesIO()
    model = Specimen()
    torch.save(model, buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buffer, weights_only=True)
    buffer.seek(0)
    assert same_state(torch.load(buffer, weights_only=False), model)
    monkeypatch.delattr(lesson, "Specimen")
    buffer.seek(0)
    with pytest.raises(AttributeError, match="Specimen"):
        torch.load(buffer, weights_only=False)


# Random generator states.


def draw_everything() -> tuple:
    return torch.rand(3), random.random(), random.gauss(0.0, 1.0), np.random.rand(2), np.random.standard_normal()


def assert_same_draws(a: tuple, b: tuple) -> None:
    assert torch.equal(a[0], b[0])
    assert a[1:3] == b[1:3]
    assert np.array_equal(a[3], b[3]) and a[4] == b[4]


@pytest.mark.parametrize("seed", [0, 1, 2**31])
@pytest.mark.parametrize("odd_gaussians", [False, True])
def test_rng_state_round_trips_through_a_weights_only_file(tmp_path, seed, odd_gaussians):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if odd_gaussians:  # leaves a cached Gaussian in Python's and NumPy's state
        random.gauss(0.0, 1.0)
        np.random.standard_normal()
    state = capture_rng_state()
    expected = draw_everything()
    torch.save(state, tmp_path / "rng.pt")
    draw_everything()
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert_same_draws(draw_everything(), expected)


def test_raw_numpy_state_is_refused_under_weights_only():
    buffer = io.BytesIO()
    torch.save(np.random.get_state(), buffer)
    buffer.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("bad", [{}, {"torch": torch.get_rng_state()}, [1, 2], None])
def test_restore_rng_state_rejects_incomplete_states(bad):
    with pytest.raises(ValueError, match="state must hold the keys"):
        restore_rng_state(bad)


# Atomic writes.


class PowerCut:
    def __reduce__(self):
        raise OSError("power cut")


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_save_writes_and_replaces(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_save({"w": torch.ones(2)}, path)
    atomic_save({"w": torch.zeros(2)}, str(path))
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.zeros(2))
    assert files_in(tmp_path) == ["latest.pt"]


def test_in_place_save_that_crashes_destroys_the_old_checkpoint(tmp_path):
    path = tmp_path / "latest.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(OSError, match="power cut"):
        torch.save({"w": torch.zeros(2), "x": PowerCut()}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever the reader says, the old file is gone
        torch.load(path, weights_only=True)


def _fail(*args, **kwargs):
    raise OSError("disk on fire")


@pytest.mark.parametrize("failure", ["pickling", "fsync", "replace"])
def test_atomic_save_that_fails_keeps_the_old_checkpoint_and_no_debris(tmp_path, monkeypatch, failure):
    path = tmp_path / "latest.pt"
    atomic_save({"w": torch.ones(2)}, path)
    obj = {"w": torch.zeros(2)}
    if failure == "pickling":
        obj["x"] = PowerCut()
    else:
        monkeypatch.setattr(lesson.os, failure, _fail)
    with pytest.raises(OSError):
        atomic_save(obj, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
    assert files_in(tmp_path) == ["latest.pt"]


def test_atomic_save_into_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_save({"w": torch.ones(1)}, tmp_path / "nowhere" / "x.pt")


# Full checkpoints and resuming.


def test_checkpoint_contents_load_under_weights_only(tmp_path):
    model, optimizer = fresh_pair()
    train_steps(model, optimizer, start=0, stop=3)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=3, extra={"best": 0.5, "tags": ["a"]})
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    assert checkpoint["step"] == 3 and checkpoint["extra"] == {"best": 0.5, "tags": ["a"]}
    assert checkpoint["torch_version"] == str(torch.__version__)
    assert checkpoint["optimizer"]["state"][0]["step"].item() == 3
    assert files_in(tmp_path) == ["c.pt"]


@pytest.mark.parametrize(("seed", "stop_at"), [(0, 1), (1, 4), (2, 7)])
def test_resume_is_bitwise_identical(tmp_path, seed, stop_at):
    torch.manual_seed(seed)
    model, optimizer = fresh_pair()
    train_steps(model, optimizer, start=0, stop=stop_at)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=stop_at)
    expected_losses = train_steps(model, optimizer, start=stop_at, stop=stop_at + 3)
    torch.manual_seed(seed + 100)
    risen, risen_optimizer = fresh_pair(lr=1.0)  # the learning rate comes back from the checkpoint
    step = load_checkpoint(tmp_path / "c.pt", model=risen, optimizer=risen_optimizer)
    assert step == stop_at
    assert train_steps(risen, risen_optimizer, start=step, stop=step + 3) == expected_losses
    assert same_state(model, risen) and same_optimizer_state(optimizer, risen_optimizer)


@pytest.mark.parametrize("forget", ["rng", "optimizer"])
def test_resume_without_rng_or_optimizer_differs(tmp_path, forget):
    torch.manual_seed(0)
    model, optimizer = fresh_pair()
    train_steps(model, optimizer, start=0, stop=4)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=4)
    train_steps(model, optimizer, start=4, stop=5)
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    partial, partial_optimizer = fresh_pair()
    partial.load_state_dict(checkpoint["model"])
    if forget == "rng":
        partial_optimizer.load_state_dict(checkpoint["optimizer"])
    else:
        restore_rng_state(checkpoint["rng"])
    train_steps(partial, partial_optimizer, start=4, stop=5)
    assert not torch.equal(partial.head.weight, model.head.weight)


def test_resume_without_dropout_needs_no_rng(tmp_path):
    # The control experiment: with p=0 nothing draws random numbers, so the optimizer state suffices.
    torch.manual_seed(0)
    model = Specimen(p=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    train_steps(model, optimizer, start=0, stop=3)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=3)
    train_steps(model, optimizer, start=3, stop=4)
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    other = Specimen(p=0.0)
    other_optimizer = torch.optim.Adam(other.parameters(), lr=0.05)
    other.load_state_dict(checkpoint["model"])
    other_optimizer.load_state_dict(checkpoint["optimizer"])
    train_steps(other, other_optimizer, start=3, stop=4)
    assert same_state(model, other)


def test_load_checkpoint_errors(tmp_path):
    model, optimizer = fresh_pair()
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt", model=model, optimizer=optimizer)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"is not a training checkpoint: it lacks the keys \['model', 'optimizer', 'rng', 'step'\]"):
        load_checkpoint(tmp_path / "weights.pt", model=model, optimizer=optimizer)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        load_checkpoint(tmp_path / "list.pt", model=model, optimizer=optimizer)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got dict"):
        load_checkpoint(tmp_path / "weights.pt", model={}, optimizer=optimizer)


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path):
    model, optimizer = fresh_pair()
    train_steps(model, optimizer, start=0, stop=2)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=2)
    wide = Specimen(hidden_features=8)
    wide_optimizer = torch.optim.Adam(wide.parameters())
    before = copy.deepcopy(wide.state_dict())
    with pytest.raises(ValueError, match=r"does not fit this model \(nothing was loaded\).*size mismatches \['body.0.weight: \(16, 4\) vs \(8, 4\)'"):
        load_checkpoint(tmp_path / "c.pt", model=wide, optimizer=wide_optimizer)
    assert all(torch.equal(before[k], t) for k, t in wide.state_dict().items())
    other, _ = fresh_pair()
    before = copy.deepcopy(other.state_dict())
    split = torch.optim.Adam([{"params": other.body.parameters()}, {"params": other.head.parameters()}])
    with pytest.raises(ValueError, match=r"parameter groups of sizes \[6\], this optimizer has \[4, 2\]"):
        load_checkpoint(tmp_path / "c.pt", model=other, optimizer=split)
    assert all(torch.equal(before[k], t) for k, t in other.state_dict().items())


@pytest.mark.parametrize(("step", "error"), [(-1, ValueError), (1.0, ValueError), (True, ValueError)])
def test_save_checkpoint_validates_step(tmp_path, step, error):
    model, optimizer = fresh_pair()
    with pytest.raises(error, match="step must be a non-negative int"):
        save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=step)
    assert files_in(tmp_path) == []


def test_save_checkpoint_validates_types(tmp_path):
    model, optimizer = fresh_pair()
    with pytest.raises(TypeError, match="extra must be a dict or None, got list"):
        save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=0, extra=[1])
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got Specimen"):
        save_checkpoint(tmp_path / "c.pt", model=model, optimizer=model, step=0)


def test_regression_batch_and_train_steps_validate():
    x, y = regression_batch(0, batch_size=5, in_features=3)
    assert x.shape == (5, 3) and y.shape == (5, 1)
    with pytest.raises(ValueError, match="step must be a non-negative int, got -2"):
        regression_batch(-2)
    model, optimizer = fresh_pair()
    with pytest.raises(ValueError, match="stop must be an int no smaller than start=3, got 2"):
        train_steps(model, optimizer, start=3, stop=2)
    assert train_steps(model, optimizer, start=3, stop=3) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda_is_bitwise_identical_and_loads_on_cpu(tmp_path):
    torch.manual_seed(0)
    model, optimizer = fresh_pair("cuda")
    train_steps(model, optimizer, start=0, stop=3)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, step=3)
    assert len(torch.load(tmp_path / "c.pt", weights_only=True)["rng"]["cuda"]) == torch.cuda.device_count()
    train_steps(model, optimizer, start=3, stop=5)
    torch.manual_seed(7)
    torch.cuda.manual_seed_all(7)
    risen, risen_optimizer = fresh_pair("cuda")
    step = load_checkpoint(tmp_path / "c.pt", model=risen, optimizer=risen_optimizer)
    train_steps(risen, risen_optimizer, start=step, stop=5)
    assert same_state(model, risen)
    on_cpu = torch.load(tmp_path / "c.pt", map_location="cpu", weights_only=True)
    assert {t.device.type for t in on_cpu["model"].values()} == {"cpu"}


# The figure.


def test_plot_resume_curves_coincide_and_the_callers_rng_is_untouched():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    fig = plot_resume(steps=6, stop_at=3)
    assert torch.equal(torch.rand(3), expected)
    uninterrupted, resumed, weights_alone = (line.get_ydata() for line in fig.axes[0].lines[:3])
    assert list(uninterrupted[3:]) == list(resumed)
    assert list(uninterrupted[3:]) != list(weights_alone)


@pytest.mark.parametrize(("steps", "stop_at"), [(4, 0), (4, 4), (3, 5)])
def test_plot_resume_rejects_bad_arguments(steps, stop_at):
    with pytest.raises(ValueError, match="need 0 < stop_at < steps"):
        plot_resume(steps=steps, stop_at=stop_at)


# Challenges.


def test_the_challenges_are_found():
    assert set(challenges_in(lesson)) == {"rename_state_dict_keys"}


def test_the_solution_passes_its_checker():
    assert check_rename_state_dict_keys(rename_state_dict_keys) is None


def naive_rename(state_dict, old_prefix, new_prefix):
    return OrderedDict((k.replace(old_prefix, new_prefix, 1), t) for k, t in state_dict.items())


def rename_in_place(state_dict, old_prefix, new_prefix):
    renamed = rename_state_dict_keys(state_dict, old_prefix, new_prefix)
    state_dict.clear()
    state_dict.update(renamed)
    return state_dict


def rename_unordered(state_dict, old_prefix, new_prefix):
    return dict(sorted(rename_state_dict_keys(state_dict, old_prefix, new_prefix).items()))


@pytest.mark.parametrize("attempt", [naive_rename, rename_in_place, rename_unordered])
def test_rename_checker_rejects_plausible_mistakes(attempt):
    with pytest.raises(AssertionError):
        check_rename_state_dict_keys(attempt)


def test_rename_checker_rejects_silent_collisions():
    def overwriting(state_dict, old_prefix, new_prefix):
        out = OrderedDict()
        for k, t in state_dict.items():
            under = not old_prefix or k.startswith(old_prefix + ".")
            rest = k[len(old_prefix) :].lstrip(".") if old_prefix else k
            out[".".join(p for p in (new_prefix, rest) if p) if under else k] = t
        return out

    with pytest.raises(AssertionError, match="must raise ValueError"):
        check_rename_state_dict_keys(overwriting)


def test_rename_agrees_with_pytorchs_prefix_stripper():
    wrapper = nn.Module()
    wrapper.module = Specimen()
    state = wrapper.state_dict()
    theirs = copy.copy(state)
    theirs._metadata = copy.copy(state._metadata)
    consume_prefix_in_state_dict_if_present(theirs, "module.")
    ours = rename_state_dict_keys(state, "module", "")
    assert list(ours) == list(theirs)
    assert list(state)[0].startswith("module.")  # ours left the input alone
    assert ours._metadata == theirs._metadata


def test_rename_keeps_metadata_so_versioned_modules_load_strictly():
    state = Specimen().state_dict()
    renamed = rename_state_dict_keys(state, "body", "trunk")
    assert renamed._metadata["trunk.1"] == state._metadata["body.1"]
    assert "body.1" not in renamed._metadata
    renamed_back = rename_state_dict_keys(renamed, "trunk", "body")
    Specimen().load_state_dict(renamed_back)
    assert all(renamed[k] is t for k, t in zip(renamed, state.values(), strict=True))


@pytest.mark.parametrize(("prefix", "error", "match"), [(3, TypeError, "old_prefix must be a str, got int"),
                                                        ("head.", ValueError, "without a trailing '.'")])  # fmt: skip
def test_rename_rejects_bad_prefixes(prefix, error, match):
    with pytest.raises(error, match=match):
        rename_state_dict_keys(Specimen().state_dict(), prefix, "x")


@settings(max_examples=25)
@given(st.lists(st.sampled_from(["a", "b", "ab", "a.b", "c"]), min_size=1, max_size=3))
def test_rename_there_and_back_is_the_identity(path):
    prefix = ".".join(path)
    state = OrderedDict([(f"{prefix}.w", torch.ones(1)), ("other.w", torch.zeros(1)), (f"{prefix}x.w", torch.ones(2))])
    there = rename_state_dict_keys(state, prefix, "zz")
    assert list(there)[1:] == ["other.w", f"{prefix}x.w"]
    assert list(rename_state_dict_keys(there, "zz", prefix)) == list(state)


# The scheduler and the gradient scaler.


def _cpu_scaler():
    try:
        return torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    except (AttributeError, TypeError, RuntimeError) as err:  # older PyTorch: no CPU GradScaler
        pytest.skip(f"no CPU GradScaler here: {err}")


def _scaled_steps(model, optimizer, scheduler, scaler, *, start, stop):
    """Like train_steps, with a learning-rate schedule and a loss scale: losses and the lrs used."""
    model.train()
    record = []
    for step in range(start, stop):
        x, y = regression_batch(step)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        record.append((loss.item(), optimizer.param_groups[0]["lr"], scaler.get_scale()))
        scheduler.step()
    return record


def _scheduled_run(lr=0.05):
    model, optimizer = fresh_pair(lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler, _cpu_scaler()


def test_resume_with_scheduler_and_scaler_is_bitwise_identical(tmp_path):
    torch.manual_seed(0)
    model, optimizer, scheduler, scaler = _scheduled_run()
    _scaled_steps(model, optimizer, scheduler, scaler, start=0, stop=5)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=5)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert saved["scheduler"]["last_epoch"] == 5 and saved["scaler"]["scale"] == scaler.get_scale()
    expected = _scaled_steps(model, optimizer, scheduler, scaler, start=5, stop=9)
    torch.manual_seed(99)
    risen = _scheduled_run(lr=1.0)
    step = load_checkpoint(tmp_path / "c.pt", model=risen[0], optimizer=risen[1], scheduler=risen[2], scaler=risen[3])
    assert _scaled_steps(*risen, start=step, stop=9) == expected
    assert same_state(model, risen[0]) and same_optimizer_state(optimizer, risen[1])


@pytest.mark.parametrize("forget", ["scheduler", "scaler"])
def test_a_fresh_scheduler_or_scaler_restarts_its_schedule(tmp_path, forget):
    torch.manual_seed(0)
    model, optimizer, scheduler, scaler = _scheduled_run()
    _scaled_steps(model, optimizer, scheduler, scaler, start=0, stop=5)
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=5)
    expected = _scaled_steps(model, optimizer, scheduler, scaler, start=5, stop=7)
    partial = list(_scheduled_run())
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    partial[0].load_state_dict(checkpoint["model"])
    partial[1].load_state_dict(checkpoint["optimizer"])
    if forget == "scheduler":
        partial[3].load_state_dict(checkpoint["scaler"])
    else:
        partial[2].load_state_dict(checkpoint["scheduler"])
    restore_rng_state(checkpoint["rng"])
    got = _scaled_steps(*partial, start=5, stop=7)
    column = 1 if forget == "scheduler" else 2  # the learning rate, or the loss scale
    assert [r[column] for r in got] != [r[column] for r in expected]


def test_loading_insists_on_the_scheduler_and_scaler_that_were_saved(tmp_path):
    torch.manual_seed(0)
    model, optimizer, scheduler, scaler = _scheduled_run()
    save_checkpoint(tmp_path / "with.pt", model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=0)
    save_checkpoint(tmp_path / "without.pt", model=model, optimizer=optimizer, step=0)
    with pytest.raises(ValueError, match="holds a scheduler state: pass scheduler= to restore it"):
        load_checkpoint(tmp_path / "with.pt", model=model, optimizer=optimizer, scaler=scaler)
    with pytest.raises(ValueError, match="holds a scaler state"):
        load_checkpoint(tmp_path / "with.pt", model=model, optimizer=optimizer, scheduler=scheduler)
    with pytest.raises(ValueError, match="holds no scheduler state"):
        load_checkpoint(tmp_path / "without.pt", model=model, optimizer=optimizer, scheduler=scheduler)
    with pytest.raises(TypeError, match="scheduler must have state_dict"):
        save_checkpoint(tmp_path / "x.pt", model=model, optimizer=optimizer, scheduler=0.5, step=0)
    assert load_checkpoint(tmp_path / "without.pt", model=model, optimizer=optimizer) == 0
