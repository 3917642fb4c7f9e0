"""The thorough proof of the resumable-training lesson: a run interrupted anywhere and resumed follows the
uninterrupted run bit for bit, and forgetting any one piece of its state breaks that."""

from __future__ import annotations

import io
import itertools
import os
import random
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler, TensorDataset

import torchenstein.training.resume as lesson
from torchenstein.challenges import challenges_in
from torchenstein.training.adam import AdamW
from torchenstein.training.checkpoints import ALARM_LOG, atomic_save, capture_rng_state, restore_rng_state
from torchenstein.training.resume import (
    FORGETTABLE,
    EpochBatchSampler,
    Position,
    check_latest_checkpoint,
    check_position_from_step,
    compare_runs,
    deterministic_algorithms,
    latest_checkpoint,
    load_training_state,
    make_run,
    plot_resumed_run,
    position_from_step,
    resume_run,
    save_run,
    save_training_state,
    states_equal,
    train_until,
    what_if_you_forget,
)

STOP = 13  # the lesson's interruption: the fourth batch of the second epoch


def _everything_equal(a, b) -> None:
    """Assert two runs agree on every piece of state, bit for bit."""
    assert compare_runs(a, b) == {"parameters": True, "optimizer state": True, "scaler": True, "loss history": True}
    assert a.position == b.position
    assert states_equal(a.scheduler.state_dict(), b.scheduler.state_dict())
    assert torch.equal(a.augment.get_state(), b.augment.get_state())


@pytest.fixture(scope="module")
def full_run():
    """The run that never stopped, trained once for the whole module, with the global RNG state it ends in."""
    callers = capture_rng_state()
    run = make_run()
    train_until(run, run.total_steps)
    end_state = torch.get_rng_state()
    restore_rng_state(callers)
    return run, end_state


@pytest.fixture(scope="module")
def checkpoint_at_stop(tmp_path_factory):
    callers = capture_rng_state()
    run = make_run()
    train_until(run, STOP)
    path = tmp_path_factory.mktemp("resume") / "latest.pt"
    save_run(path, run)
    restore_rng_state(callers)
    return path


# The sampler


@settings(max_examples=20)
@given(n=st.integers(1, 200), seed=st.integers(0, 2**20), epoch=st.integers(0, 50))
def test_order_equals_distributed_sampler(n, seed, epoch):
    theirs = DistributedSampler(range(n), num_replicas=1, rank=0, shuffle=True, seed=seed)
    theirs.set_epoch(epoch)
    assert EpochBatchSampler(n, 7, seed=seed).order(epoch) == list(theirs)


@pytest.mark.parametrize(("n", "batch_size"), [(300, 32), (10, 5), (7, 10), (1, 1), (33, 4)])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_equal_batch_sampler_over_the_order(n, batch_size, drop_last, shuffle):
    if drop_last and n < batch_size:
        with pytest.raises(ValueError, match="leaves no batch"):
            EpochBatchSampler(n, batch_size, drop_last=drop_last)
        return
    ours = EpochBatchSampler(n, batch_size, shuffle=shuffle, seed=3, drop_last=drop_last)
    for epoch in range(3):
        order = ours.order(epoch) if shuffle else list(SequentialSampler(range(n)))
        expected = list(BatchSampler(order, batch_size, drop_last))
        assert ours.batches(epoch) == expected
        assert ours.num_batches == len(expected)
        for start in range(ours.num_batches):
            ours.set_epoch(epoch, start_batch=start)
            assert list(ours) == expected[start:] and len(ours) == len(expected) - start


def test_epochs_differ_and_nothing_is_remembered():
    sampler = EpochBatchSampler(50, 8, seed=1)
    assert sampler.order(0) != sampler.order(1)
    # Asking for any epoch in any order gives the same answer: there is no state to disturb.
    later = sampler.order(7)
    assert sampler.order(0) == EpochBatchSampler(50, 8, seed=1).order(0)
    assert sampler.order(7) == later
    before = torch.get_rng_state()
    list(sampler)
    assert torch.equal(torch.get_rng_state(), before), "the sampler must not touch the global generator"


def test_seeds_and_epochs_add_as_in_distributed_sampler():
    # The quirk the lesson's note states: seed 0's second epoch is seed 1's first.
    assert EpochBatchSampler(64, 8, seed=0).order(1) == EpochBatchSampler(64, 8, seed=1).order(0)
    theirs = DistributedSampler(range(64), num_replicas=1, rank=0, seed=0)
    theirs.set_epoch(1)
    assert list(theirs) == EpochBatchSampler(64, 8, seed=1).order(0)


def test_as_a_dataloader_batch_sampler():
    x, y = torch.arange(40.0).unsqueeze(1), torch.arange(40)
    sampler = EpochBatchSampler(40, 6, seed=2)
    sampler.set_epoch(2, start_batch=4)
    expected = sampler.batches(2)[4:]
    loader = DataLoader(TensorDataset(x, y), batch_sampler=sampler, generator=torch.Generator())
    assert len(loader) == len(expected)
    assert [batch[1].tolist() for batch in loader] == expected


def test_a_loader_without_its_own_generator_draws_from_the_global_one():
    # The lesson's claim: every iter(loader) draws a seed, from the global generator unless given one.
    sampler = EpochBatchSampler(20, 5)
    dataset = TensorDataset(torch.arange(20))
    before = torch.get_rng_state()
    next(iter(DataLoader(dataset, batch_sampler=sampler, generator=torch.Generator())))
    assert torch.equal(torch.get_rng_state(), before)
    next(iter(DataLoader(dataset, batch_sampler=sampler)))
    assert not torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("crash_after", [0, 1, 2])
def test_replaying_a_dataloaders_generator_from_the_epochs_start(crash_after):
    def loader(generator):
        return DataLoader(range(11), batch_size=4, shuffle=True, generator=generator)

    original = loader(torch.Generator().manual_seed(5))
    list(original)  # a first epoch, so the second starts from a used generator
    at_start = original.generator.get_state()
    epoch = iter(original)
    consumed = [next(epoch).tolist() for _ in range(crash_after)]
    at_crash = original.generator.get_state()
    rest = [b.tolist() for b in epoch]
    for state, should_match in ((at_start, True), (at_crash, False)):  # even iter() alone draws
        fresh = loader(torch.Generator())
        fresh.generator.set_state(state)
        assert ([b.tolist() for b in itertools.islice(fresh, len(consumed), None)] == rest) is should_match


def test_position_advances_across_epochs():
    position = Position(0, 0, 0)
    for _ in range(25):
        position = position.advanced(10)
    assert position == Position(25, 2, 5)
    assert Position(9, 0, 9).advanced(10) == Position(10, 1, 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 4), {}, ValueError, "num_samples must be at least 1, got 0"),
        ((10, 0), {}, ValueError, "batch_size must be at least 1, got 0"),
        ((10.0, 4), {}, TypeError, "num_samples must be an int, got 10.0"),
        ((10, 4), {"seed": -1}, ValueError, "seed must be at least 0, got -1"),
        ((10, 4), {"shuffle": 1}, TypeError, "shuffle must be a bool, got 1"),
        ((3, 4), {"drop_last": True}, ValueError, "num_samples=3 < batch_size=4 leaves no batch"),
    ],
)
def test_sampler_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        EpochBatchSampler(*args, **kwargs)


def test_set_epoch_errors():
    sampler = EpochBatchSampler(10, 4)
    with pytest.raises(ValueError, match="start_batch must be below the 3 batches of an epoch, got 3"):
        sampler.set_epoch(0, start_batch=3)
    with pytest.raises(ValueError, match="epoch must be at least 0, got -1"):
        sampler.set_epoch(-1)
    with pytest.raises(TypeError, match="epoch must be an int"):
        sampler.order(True)


# The key proof: interrupted anywhere, resumed bit for bit


@pytest.mark.parametrize("stop_at", [0, 1, 3, 9, 10, 13, 20, 29, 30])
def test_resumed_run_is_bitwise_the_uninterrupted_one(stop_at, full_run, tmp_path):
    full, full_end_rng = full_run
    crashed = make_run()
    train_until(crashed, stop_at)
    path = tmp_path / "latest.pt"
    save_run(path, crashed)
    del crashed
    torch.manual_seed(1234)  # a new process: whatever the generators hold, the file decides
    random.seed(1234)
    np.random.seed(1234)
    risen = resume_run(path)
    assert risen.position == position_from_step(stop_at, num_samples=300, batch_size=32)
    assert risen.model.training
    train_until(risen, risen.total_steps)
    _everything_equal(risen, full)
    # Even the global generator ends in the same state: the resumed run drew exactly the same numbers.
    assert torch.equal(torch.get_rng_state(), full_end_rng)


def test_interrupted_three_times(full_run, tmp_path):
    full, _ = full_run
    run = make_run()
    for stop in (4, 13, 22):
        train_until(run, stop)
        save_run(tmp_path / "latest.pt", run)
        torch.manual_seed(stop)
        run = resume_run(tmp_path / "latest.pt")
    train_until(run, run.total_steps)
    _everything_equal(run, full)


def test_the_run_is_not_trivially_reproducible():
    # The proof would be empty if every step were the same: dropout, shuffling, augmentation, the schedule
    # and the scaler all have to be at work.
    run = make_run()
    lrs, scales, skipped = [], [], 0
    taken = []
    run.optimizer.register_step_post_hook(lambda *_: taken.append(True))
    for step in range(run.total_steps):
        lrs.append(run.optimizer.param_groups[0]["lr"])
        train_until(run, step + 1)
        scales.append(run.scaler.get_scale())
    skipped = run.total_steps - len(taken)
    assert len(set(lrs)) > 20 and lrs[0] < lrs[3] > lrs[-1], "warm-up then decay"
    assert skipped >= 1, "the scaler must skip at least one overflowing step"
    assert len(set(scales)) >= 3, "the scale must grow and back off"
    assert run.sampler.order(0) != run.sampler.order(1)
    batch = run.x[:8]
    outputs = [run.model(batch) for _ in range(2)]
    assert not torch.equal(*outputs), "dropout must be active in training mode"


@pytest.mark.parametrize("piece", FORGETTABLE)
def test_forgetting_any_piece_breaks_the_equality(piece, full_run, checkpoint_at_stop):
    full, _ = full_run
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the lesson says: no error, no warning
        risen = resume_run(checkpoint_at_stop, forget=piece)
        train_until(risen, risen.total_steps)
    result = compare_runs(risen, full)
    assert not result["parameters"] and not result["loss history"], f"forgetting the {piece} changed nothing"
    assert risen.losses[:STOP] == full.losses[:STOP], "the history before the crash is restored in every case"


def _skipped_steps(run) -> list[int]:
    """Train ``run`` to its end one step at a time, and list the steps whose update the scaler skipped."""
    taken = []
    run.optimizer.register_step_post_hook(lambda *_: taken.append(True))
    skipped = []
    while run.position.step < run.total_steps:
        step, before = run.position.step, len(taken)
        train_until(run, step + 1)
        if len(taken) == before:
            skipped.append(step)
    return skipped


def test_a_forgotten_loss_scale_takes_updates_the_full_run_skipped(checkpoint_at_stop):
    full = make_run()
    skipped = [step for step in _skipped_steps(full) if step >= STOP]
    amnesiac = resume_run(checkpoint_at_stop, forget="loss scaler")
    assert amnesiac.scaler.get_scale() == 2.0**14 < torch.load(checkpoint_at_stop, weights_only=True)["scaler"]["scale"]
    forgetful_skips = _skipped_steps(amnesiac)
    assert set(skipped) - set(forgetful_skips), "the restarted scale must take updates the full run skipped"
    assert amnesiac.scaler.get_scale() == full.scaler.get_scale(), "...and still end at the same scale"


def test_nothing_forgotten_is_equal(full_run, checkpoint_at_stop):
    risen = resume_run(checkpoint_at_stop, forget=None)
    train_until(risen, risen.total_steps)
    _everything_equal(risen, full_run[0])


def test_the_table_and_its_scaler_column():
    callers = capture_rng_state()
    table = what_if_you_forget(stop_at=STOP)
    after = capture_rng_state()
    assert states_equal(callers, after), "what_if_you_forget must leave the caller's generators alone"
    assert list(table) == ["nothing", *FORGETTABLE]
    assert all(table["nothing"].values())
    assert all(not row["parameters"] and not row["loss history"] for piece, row in table.items() if piece != "nothing")
    # The lesson's remark: the forgotten loss scale wanders back to the same final scale.
    assert table["loss scaler"]["scaler"]
    with pytest.raises(ValueError, match="stop_step must lie between the run's step 0 and its total_steps 30, got 31"):
        what_if_you_forget(stop_at=31)


def test_forget_must_name_a_piece(checkpoint_at_stop):
    with pytest.raises(ValueError, match="forget must be None or one of"):
        resume_run(checkpoint_at_stop, forget="model")


def test_grad_scaler_resumes_too_and_shares_the_state_format(full_run, tmp_path):
    try:
        make_scaler = lambda: torch.amp.GradScaler("cpu", init_scale=2.0**14, growth_interval=3)  # noqa: E731
        make_scaler()
    except (AttributeError, RuntimeError, TypeError):  # pragma: no cover - torch.amp.GradScaler("cpu") is 2.3+
        pytest.skip("this PyTorch has no CPU GradScaler")

    def grad_scaler_run():
        run = make_run()
        run.scaler = make_scaler()
        return run

    full = grad_scaler_run()
    train_until(full, full.total_steps)
    # PyTorch's scaler and ours make the same decisions: the whole runs agree bit for bit.
    assert compare_runs(full, full_run[0]) == dict.fromkeys(["parameters", "optimizer state", "scaler", "loss history"], True)
    crashed = grad_scaler_run()
    train_until(crashed, STOP)
    save_run(tmp_path / "latest.pt", crashed)
    risen = grad_scaler_run()
    position, extra = load_training_state(tmp_path / "latest.pt", model=risen.model, optimizer=risen.optimizer,
                                          scheduler=risen.scheduler, scaler=risen.scaler,
                                          generators={"augment": risen.augment})  # fmt: skip
    risen.position, risen.losses = position, extra["losses"].tolist()
    train_until(risen, risen.total_steps)
    _everything_equal(risen, full)
    # Our scaler's state loads into PyTorch's, and the other way round.
    ours = make_run().scaler
    load_training_state(tmp_path / "latest.pt", model=risen.model, optimizer=risen.optimizer, scheduler=risen.scheduler,
                        scaler=ours, generators={"augment": risen.augment})  # fmt: skip
    assert ours.get_scale() == torch.load(tmp_path / "latest.pt", weights_only=True)["scaler"]["scale"]


# The file


def test_the_file_loads_under_weights_only_and_holds_plain_values(checkpoint_at_stop):
    checkpoint = torch.load(checkpoint_at_stop, map_location="cpu", weights_only=True)
    assert sorted(checkpoint) == ["extra", "generators", "model", "optimizer", "position", "rng", "scaler",
                                  "scheduler", "torch_version"]  # fmt: skip
    assert checkpoint["position"] == {"step": 13, "epoch": 1, "batch_in_epoch": 3}
    assert all(type(v) is int for v in checkpoint["position"].values())
    assert checkpoint["generators"]["augment"].dtype == torch.uint8
    assert checkpoint["extra"]["losses"].dtype == torch.float64 and checkpoint["extra"]["losses"].shape == (STOP,)
    assert checkpoint["scheduler"]["last_epoch"] == STOP and checkpoint["scheduler"]["lr_lambdas"] == [None]
    assert isinstance(checkpoint["torch_version"], str)


def test_every_generator_is_restored_exactly(tmp_path):
    run = make_run()
    train_until(run, 5)
    extra_generator = torch.Generator().manual_seed(99)
    torch.rand(3, generator=extra_generator)
    save_training_state(tmp_path / "s.pt", model=run.model, optimizer=run.optimizer, step=5, epoch=0, batch_in_epoch=5,
                        generators={"augment": run.augment, "extra": extra_generator})  # fmt: skip
    expected = {"torch": torch.rand(4), "numpy": np.random.rand(4), "python": random.random(),
                "augment": torch.rand(4, generator=run.augment), "extra": torch.rand(4, generator=extra_generator)}  # fmt: skip
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    fresh = make_run()
    other = torch.Generator().manual_seed(0)
    load_training_state(tmp_path / "s.pt", model=fresh.model, optimizer=fresh.optimizer,
                        generators={"augment": fresh.augment, "extra": other})  # fmt: skip
    assert torch.equal(torch.rand(4), expected["torch"])
    assert np.array_equal(np.random.rand(4), expected["numpy"])
    assert random.random() == expected["python"]
    assert torch.equal(torch.rand(4, generator=fresh.augment), expected["augment"])
    assert torch.equal(torch.rand(4, generator=other), expected["extra"])


def test_position_objects_need_an_allowlist(tmp_path):
    buffer = io.BytesIO()
    torch.save({"position": Position(1, 2, 3)}, buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match="Unsupported global: GLOBAL torchenstein.training.resume.Position"):
        torch.load(buffer, weights_only=True)


def test_load_errors_change_nothing(checkpoint_at_stop, tmp_path):
    run = make_run()
    before = {k: t.clone() for k, t in run.model.state_dict().items()}
    pieces = {"model": run.model, "optimizer": run.optimizer, "scheduler": run.scheduler, "scaler": run.scaler,
              "generators": {"augment": run.augment}}  # fmt: skip
    with pytest.raises(FileNotFoundError, match="no training state at"):
        load_training_state(tmp_path / "missing.pt", **pieces)
    torch.save(run.model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"is not a training state: it lacks the keys \['model', 'optimizer', 'position'"):
        load_training_state(tmp_path / "weights.pt", **pieces)
    wide = nn.Sequential(nn.Linear(2, 8))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_training_state(checkpoint_at_stop, **{**pieces, "model": wide, "optimizer": AdamW(wide.parameters())})
    split = AdamW([{"params": list(run.model.parameters())[:2]}, {"params": list(run.model.parameters())[2:]}])
    with pytest.raises(ValueError, match=r"optimizer with parameter groups of sizes \[6\], this optimizer has \[2, 4\]"):
        load_training_state(checkpoint_at_stop, **{**pieces, "optimizer": split})
    with pytest.raises(ValueError, match="disagree about a scheduler state: none was passed"):
        load_training_state(checkpoint_at_stop, **{**pieces, "scheduler": None})
    with pytest.raises(ValueError, match="disagree about a scaler state: none was passed"):
        load_training_state(checkpoint_at_stop, **{**pieces, "scaler": None})
    with pytest.raises(ValueError, match=r"holds the generators \['augment'\], got \['augment', 'other'\]"):
        load_training_state(checkpoint_at_stop, **{**pieces, "generators": {"augment": run.augment, "other": torch.Generator()}})
    save_training_state(tmp_path / "bare.pt", model=run.model, optimizer=run.optimizer, step=0, epoch=0, batch_in_epoch=0)
    with pytest.raises(ValueError, match="disagree about a scheduler state: the file holds none"):
        load_training_state(tmp_path / "bare.pt", **{**pieces, "generators": {}})
    assert all(torch.equal(before[k], t) for k, t in run.model.state_dict().items()), "a failed load changed the model"
    with pytest.raises(TypeError, match="generators must map names"):
        load_training_state(checkpoint_at_stop, **{**pieces, "generators": [run.augment]})
    with pytest.raises(TypeError, match="scheduler must have state_dict"):
        load_training_state(checkpoint_at_stop, **{**pieces, "scheduler": object()})
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        load_training_state(checkpoint_at_stop, **{**pieces, "model": "model"})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"step": -1}, ValueError, "step must be a non-negative int, got -1"),
        ({"epoch": 1.0}, ValueError, "epoch must be a non-negative int, got 1.0"),
        ({"batch_in_epoch": True}, ValueError, "batch_in_epoch must be a non-negative int, got True"),
        ({"extra": [1]}, TypeError, "extra must be a dict or None, got list"),
        ({"generators": {"g": 3}}, TypeError, "generators must map names"),
        ({"scaler": 2.0}, TypeError, "scaler must have state_dict"),
    ],
)
def test_save_errors(kwargs, error, match, tmp_path):
    model = nn.Linear(1, 1)
    arguments = {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "step": 0, "epoch": 0,
                 "batch_in_epoch": 0, **kwargs}  # fmt: skip
    with pytest.raises(error, match=match):
        save_training_state(tmp_path / "x.pt", **arguments)
    assert not os.listdir(tmp_path), "a refused save must write nothing"


def test_an_interrupted_save_leaves_the_last_good_file(checkpoint_at_stop, tmp_path, monkeypatch):
    good = tmp_path / "latest.pt"
    good.write_bytes(checkpoint_at_stop.read_bytes())
    run = make_run()
    train_until(run, 20)
    real_save = torch.save

    def power_cut(obj, file, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # half the file reaches the disk...
        raise KeyboardInterrupt("the lab lost power mid-save")  # ...then everything stops

    monkeypatch.setattr(torch, "save", power_cut)
    with pytest.raises(KeyboardInterrupt):
        save_run(good, run)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["latest.pt"], "the temporary file must be cleaned up"
    risen = make_run()
    position, _ = load_training_state(good, model=risen.model, optimizer=risen.optimizer, scheduler=risen.scheduler,
                                      scaler=risen.scaler, generators={"augment": risen.augment})  # fmt: skip
    assert position == Position(STOP, 1, 3), "the last good checkpoint must survive the failed save intact"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_killed_process_mid_save_leaves_the_last_good_file(checkpoint_at_stop, tmp_path):
    # A real death: a forked child is killed (os._exit: no cleanup at all) halfway through writing the file.
    good = tmp_path / "latest.pt"
    good.write_bytes(checkpoint_at_stop.read_bytes())
    real_save = torch.save

    def dies(obj, file, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[:1000])
        file.flush()
        os._exit(9)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Python 3.12+ warns about fork() in a process with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process, which never returns
        try:
            torch.save = dies
            atomic_save({"w": torch.zeros(10_000)}, good)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 9, "the child must die inside torch.save"
    leftovers = sorted(os.listdir(tmp_path))
    assert len(leftovers) == 2 and leftovers[0].startswith(".latest.pt.") and leftovers[0].endswith(".tmp")
    assert latest_checkpoint(tmp_path) == str(good)
    assert torch.load(good, weights_only=True)["position"]["step"] == STOP


# Dr. Hammer's traps


def test_trap_pickling_the_scheduler_fails_and_its_state_dict_does_not(tmp_path):
    run = make_run()
    with pytest.raises(Exception, match=r"Can't pickle local object .*as_multiplier\.<locals>\.<lambda>"):
        torch.save({"scheduler": run.scheduler}, io.BytesIO())
    buffer = io.BytesIO()
    torch.save({"model": run.model}, buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match="Unsupported global"):
        torch.load(buffer, weights_only=True)
    atomic_save({"scheduler": run.scheduler.state_dict()}, tmp_path / "s.pt")
    assert torch.load(tmp_path / "s.pt", weights_only=True)["scheduler"]["lr_lambdas"] == [None]


def _rates_after(make_scheduler, how, stop=40, more=10):
    p = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.AdamW([p], lr=1.0)
    scheduler = make_scheduler(optimizer)

    def train(optimizer, scheduler, steps, p):
        for _ in range(steps):
            p.grad = torch.ones(2)
            optimizer.step()
            scheduler.step()

    train(optimizer, scheduler, stop, p)
    saved = optimizer.state_dict(), scheduler.state_dict()
    train(optimizer, scheduler, more, p)
    truth = optimizer.param_groups[0]["lr"]
    q = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.AdamW([q], lr=1.0)
    scheduler = make_scheduler(optimizer)
    optimizer.load_state_dict(saved[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if how == "fast-forward":
            for _ in range(stop):
                scheduler.step()
        else:
            scheduler.load_state_dict(saved[1])
    train(optimizer, scheduler, more, q)
    return truth, optimizer.param_groups[0]["lr"], caught


@pytest.mark.parametrize("stop", [10, 40, 60])
def test_trap_fast_forwarding_a_chainable_scheduler(stop):
    def cosine(o):
        return CosineAnnealingLR(o, T_max=100)

    truth, fast_forwarded, caught = _rates_after(cosine, "fast-forward", stop=stop)
    assert fast_forwarded < truth * 0.99
    assert any("lr_scheduler.step()` before `optimizer.step()`" in str(w.message) for w in caught)
    truth, loaded, caught = _rates_after(cosine, "load", stop=stop)
    assert loaded == truth and not caught


def test_trap_fast_forwarding_a_closed_form_scheduler_is_right_by_luck():
    def closed_form(o):
        return LambdaLR(o, lambda t: 0.5 * (1 + np.cos(np.pi * min(t, 100) / 100)))

    truth, fast_forwarded, caught = _rates_after(closed_form, "fast-forward")
    assert fast_forwarded == truth
    assert any("before `optimizer.step()`" in str(w.message) for w in caught)


def test_trap_optimizer_state_loaded_before_the_model_moves():
    model = nn.Linear(3, 2)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    for optimizer_class in (AdamW, torch.optim.AdamW):
        late = nn.Linear(3, 2)
        late_optimizer = optimizer_class(late.parameters(), lr=1e-2)
        late_optimizer.load_state_dict(saved)
        late.to(torch.float64)
        late(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
        with pytest.raises(RuntimeError, match="expected dtype float for `end` but got dtype double"):
            late_optimizer.step()
        early = nn.Linear(3, 2).to(torch.float64)
        early_optimizer = optimizer_class(early.parameters(), lr=1e-2)
        early_optimizer.load_state_dict(saved)
        early(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
        early_optimizer.step()
        assert early_optimizer.state[early.weight]["exp_avg"].dtype == torch.float64


def test_trap_a_resumed_model_left_in_eval_mode(full_run, checkpoint_at_stop):
    sleepy = resume_run(checkpoint_at_stop)
    sleepy.model.eval()
    train_until(sleepy, sleepy.total_steps)
    assert not compare_runs(sleepy, full_run[0])["loss history"]
    assert not any("training" in key for key in sleepy.model.state_dict())


def test_trap_restarting_the_epoch_reads_samples_twice_and_skips_others():
    run = make_run()
    sampler = run.sampler

    def read(epoch, start=0, stop=None):
        return [i for batch in sampler.batches(epoch)[start:stop] for i in batch]

    hammer = read(0) + read(1, stop=3) + read(1) + read(2, stop=7)
    counts = torch.bincount(torch.tensor(hammer), minlength=300)
    assert counts.min() == 2 and counts.max() == 4
    honest = read(0) + read(1) + read(2)
    assert torch.equal(torch.bincount(torch.tensor(honest), minlength=300), torch.full((300,), 3))


# Training and the loop


def test_train_until_errors():
    run = make_run()
    train_until(run, 5)
    with pytest.raises(ValueError, match="stop_step must lie between the run's step 5 and its total_steps 30, got 4"):
        train_until(run, 4)
    with pytest.raises(TypeError, match="stop_step must be an int"):
        train_until(run, 6.0)
    train_until(run, 5)  # a no-op
    assert run.position.step == 5 and len(run.losses) == 5


def test_make_run_builds_identical_runs_and_checks_epochs():
    a, b = make_run(seed=3), make_run(seed=3)
    assert states_equal(a.model.state_dict(), b.model.state_dict())
    assert torch.equal(a.augment.get_state(), b.augment.get_state())
    assert not states_equal(make_run(seed=4).model.state_dict(), a.model.state_dict())
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        make_run(epochs=0)


def test_states_equal_is_strict():
    assert states_equal([torch.zeros(1), {"a": (1, 2)}], [torch.zeros(1), {"a": (1, 2)}])
    assert not states_equal((1, 2), [1, 2])
    assert not states_equal({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert not states_equal(torch.zeros(2), [0.0, 0.0])
    # Stricter than torch.equal: the bits decide.
    assert torch.equal(torch.tensor([0.0]), torch.tensor([-0.0])) and not states_equal(torch.tensor([0.0]), torch.tensor([-0.0]))
    nan = torch.tensor([float("nan"), 1.0])
    assert not torch.equal(nan, nan.clone()) and states_equal(nan, nan.clone())
    assert states_equal(torch.tensor(3, dtype=torch.int64), torch.tensor(3)) and not states_equal(torch.ones(2, 1), torch.ones(2))
    assert states_equal(torch.ones(3, 2).T, torch.ones(2, 3)), "non-contiguous tensors compare by value layout"


# On a GPU


def test_deterministic_algorithms_puts_everything_back(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required on a CUDA machine, ignored elsewhere
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark)
    with pytest.raises(KeyError), deterministic_algorithms(warn_only=True):
        assert torch.is_deterministic_algorithms_warn_only_enabled() and cudnn.deterministic and not cudnn.benchmark
        raise KeyError("an error inside the block")
    assert (torch.are_deterministic_algorithms_enabled(), cudnn.deterministic, cudnn.benchmark) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_deterministic_algorithms_needs_the_cublas_setting(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(RuntimeError, match="CUBLAS_WORKSPACE_CONFIG must be ':4096:8' or ':16:8'"), deterministic_algorithms():
        pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resumed_run_is_bitwise_on_cuda(tmp_path, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    with deterministic_algorithms():
        full = make_run(device="cuda")
        train_until(full, full.total_steps)
        for stop in (7, STOP):
            crashed = make_run(device="cuda")
            train_until(crashed, stop)
            save_run(tmp_path / "latest.pt", crashed)
            assert len(torch.load(tmp_path / "latest.pt", weights_only=True)["rng"]["cuda"]) == torch.cuda.device_count()
            torch.cuda.manual_seed_all(1234)
            risen = resume_run(tmp_path / "latest.pt", device="cuda")
            assert risen.model[0].weight.device.type == "cuda"
            train_until(risen, risen.total_steps)
            _everything_equal(risen, full)
        amnesiac = resume_run(tmp_path / "latest.pt", device="cuda", forget="global RNG")
        train_until(amnesiac, amnesiac.total_steps)
        assert not compare_runs(amnesiac, full)["parameters"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trap_optimizer_state_left_on_the_cpu():
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    saved = optimizer.state_dict()
    late = nn.Linear(3, 2)
    late_optimizer = torch.optim.AdamW(late.parameters(), lr=1e-2)
    late_optimizer.load_state_dict(saved)
    late.cuda()
    late(torch.randn(4, 3, device="cuda")).sum().backward()
    with pytest.raises(RuntimeError, match="device"):
        late_optimizer.step()
    early = nn.Linear(3, 2).cuda()
    early_optimizer = torch.optim.AdamW(early.parameters(), lr=1e-2)
    early_optimizer.load_state_dict(saved)
    assert early_optimizer.state[early.weight]["exp_avg"].device.type == "cuda"


# The figure


def test_plot_resumed_run():
    callers = capture_rng_state()
    fig = plot_resumed_run(epochs=2, stop_at=7)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 4
    full, resumed, amnesiac = (line.get_ydata() for line in ax.lines[:3])
    assert list(resumed) == list(full[7:]) and list(amnesiac) != list(full[7:])
    assert "bitwise equal: True" in ax.get_title()
    assert states_equal(callers, capture_rng_state())
    with pytest.raises(ValueError, match="stop_step must lie between"):
        plot_resumed_run(epochs=1, stop_at=11)


# Challenges


def test_challenges_are_registered():
    assert set(challenges_in(lesson)) == {"position_from_step", "latest_checkpoint"}


def test_position_from_step_solution_and_wrong_attempts():
    assert check_position_from_step(position_from_step) is None

    def floor_batches(step, *, num_samples, batch_size, drop_last=False):
        epoch, batch = divmod(step, num_samples // batch_size)
        return Position(step, epoch, batch)

    def ignores_drop_last(step, *, num_samples, batch_size, drop_last=False):
        return position_from_step(step, num_samples=num_samples, batch_size=batch_size)

    def never_raises(step, *, num_samples, batch_size, drop_last=False):
        batches = max(1, -(-num_samples // batch_size) if not drop_last else num_samples // batch_size)
        return Position(step, *divmod(step, batches))

    for wrong in (floor_batches, ignores_drop_last, never_raises):
        with pytest.raises((AssertionError, ZeroDivisionError)):
            check_position_from_step(wrong)


def test_latest_checkpoint_solution_and_wrong_attempts(tmp_path):
    assert check_latest_checkpoint(latest_checkpoint) is None
    with pytest.raises(FileNotFoundError, match="no folder at"):
        latest_checkpoint(tmp_path / "missing")

    def by_name(folder):
        names = sorted(n for n in os.listdir(folder) if n.endswith(".pt"))
        return os.path.join(folder, names[-1]) if names else None

    def newest(folder):
        paths = [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".pt")]
        return max(paths, key=os.path.getmtime) if paths else None

    def trusting(folder):
        best = None
        for name in os.listdir(folder):
            try:
                step = torch.load(os.path.join(folder, name), weights_only=False)["position"]["step"]
            except Exception:
                continue
            if best is None or step > best[0]:
                best = (step, os.path.join(folder, name))
        return None if best is None else best[1]

    for wrong in (by_name, newest, trusting):
        with pytest.raises(AssertionError):
            check_latest_checkpoint(wrong)
    ALARM_LOG.clear()
