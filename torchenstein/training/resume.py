r"""
# The Monster Rises Mid-Stride: Resumable Training, Bit for Bit

!!! torchenstein "The Professor speaks"
    Lightning strikes the laboratory at step 13 of a thirty-step run. Dr. Hammer restarts from his last
    checkpoint, the curve looks about right, and he calls it resumed. "About right" is how leaks hide!
    Today we save *everything* a run remembers: its weights, its optimiser, its schedule, its loss scale,
    every random generator, and the exact batch of the exact epoch it was about to read. Then we kill a
    run in the middle of an epoch, raise it again, and demand that it follow the run that never died to
    the last bit. And then we forget one piece at a time, and watch each one break the spell.

**You will learn to**

- list every piece of state a training run carries, and save it all, atomically, in one file that loads
  under `weights_only=True`;
- resume in the middle of an epoch: with a sampler whose order is a function of `(seed, epoch)`, proved
  equal to `DistributedSampler`'s, or by replaying a `DataLoader`'s generator and skipping;
- store what the restricted unpickler refuses (a `torch.Generator`, your own position class) as tensors and
  plain values, or allow it with `add_safe_globals`;
- prove a resumed run equal to an uninterrupted one bit for bit (parameters, optimiser state, loss history)
  at any interruption point, and print what each forgotten piece costs;
- say what a GPU needs on top;
- dodge five of Dr. Hammer's resurrection mishaps.

## Everything a run remembers

[Preserving your monster's memories](../checkpoints/index.md) wrote a training checkpoint (model,
optimiser, scheduler, scaler, step and the global random generators) and resumed a run to the same bits. Its
batches were a pure function of the step number, so the data resumed for free. Real runs are messier: they
shuffle every epoch, augment their data with random noise, warm up and decay their learning rate, and scale
their losses. Our patient does all of that, built by [`make_run`][torchenstein.training.resume.make_run]
from the course's own parts:

- the spiral of [The training loop](../loop/index.md) (300 points), and its
  [`spiral_classifier`][torchenstein.training.loop.spiral_classifier] with dropout, which draws a random mask
  from PyTorch's global generator at every step;
- our [`AdamW`][torchenstein.training.adam.AdamW] from [Optimisers from scratch, II](../adam/index.md);
- a `LambdaLR` on [`warmup_cosine`][torchenstein.training.schedules.warmup_cosine] from
  [Learning-rate schedules](../schedules/index.md): three steps of warm-up, then a cosine;
- our [`LossScaler`][torchenstein.training.mixed_precision.LossScaler] from
  [Mixed precision](../mixed_precision/index.md);
- an [`EpochBatchSampler`][torchenstein.training.resume.EpochBatchSampler] that shuffles every epoch (next
  section), and a `torch.Generator` owned by the data pipeline that draws the augmentation noise.

A **run** is all of that together with its **position**, a [`Position`][torchenstein.training.resume.Position]:
the next optimiser step to take, and the epoch and index of the next batch to read.

```pycon
>>> import os, tempfile
>>> import torch
>>> from torchenstein.training.resume import WARMUP_STEPS, make_run
>>> run = make_run()
>>> {"samples": len(run.x), "batches per epoch": run.sampler.num_batches, "total steps": run.total_steps,
...  "warm-up steps": WARMUP_STEPS}
{'samples': 300, 'batches per epoch': 10, 'total steps': 30, 'warm-up steps': 3}
>>> run.position
Position(step=0, epoch=0, batch_in_epoch=0)
>>> for name in ("model", "optimizer", "scheduler", "scaler", "sampler", "augment"):
...     print(f"{name:9} {type(getattr(run, name)).__name__}")
model     Sequential
optimizer AdamW
scheduler LambdaLR
scaler    LossScaler
sampler   EpochBatchSampler
augment   Generator

```

Every step changes something in each of these, and a resumed run must get all of it back:

| piece | changed by | saved as |
| --- | --- | --- |
| parameters and buffers | every update | `model.state_dict()` |
| optimiser state (AdamW's step count and two running averages per parameter) | every update | `optimizer.state_dict()` |
| the schedule's step count | every `scheduler.step()` | `scheduler.state_dict()` |
| the loss scale and its count of good steps | every `scaler.update()` | `scaler.state_dict()` |
| the global generators (CPU, CUDA, NumPy, Python) | dropout, and anything else that draws | the checkpoints lesson's `capture_rng_state()` |
| the data pipeline's own generators | the augmentation | `generator.get_state()`, a `uint8` tensor |
| the position | every step | three plain ints |
| the loss history | every step | a `float64` tensor, in `extra` |

One confession. A loss scaler earns its keep with float16, whose range ends at 65504; the CPU's autocast
works in bfloat16, whose range is float32's, so nothing would ever overflow here (the
[Mixed precision](../mixed_precision/index.md) lesson shows why). This run therefore computes in float32,
and, to give the scaler its real work, each step stores its scaled gradients as float16 would: rounded
to float16, `inf` beyond its largest number. The scaler then does
exactly what it does in a float16 run: it doubles its scale after three good steps in a row, and when a
gradient overflows it skips the step and halves the scale.

```pycon
>>> from torchenstein.training.resume import FLOAT16_MAX
>>> FLOAT16_MAX, run.scaler
(65504.0, LossScaler(scale=16384, growth_factor=2, backoff_factor=0.5, growth_interval=3, enabled=True))

```

## Where in the data: a sampler you can resume

A shuffled `DataLoader` draws each epoch's order from a generator when its iterator starts (the
[DataLoader lesson](../data/index.md) accounts for every draw). Its iterator cannot be saved, and a new one
starts the epoch from its first batch. The simplest cure is a sampler with no memory at all: epoch $e$
shuffles with a generator seeded with `seed + e`, the recipe of `torch.utils.data.DistributedSampler`, so any
batch of any epoch can be served again from three integers. Our
[`EpochBatchSampler`][torchenstein.training.resume.EpochBatchSampler] cuts that order into batches, and
`set_epoch(epoch, start_batch)` says where the next iteration starts; PyTorch's sampler, for one process,
gives the very same orders:

```pycon
>>> from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
>>> from torchenstein.training.resume import EpochBatchSampler
>>> ours = EpochBatchSampler(300, 32, seed=0)
>>> theirs = DistributedSampler(range(300), num_replicas=1, rank=0, shuffle=True, seed=0)
>>> for epoch in range(3):
...     theirs.set_epoch(epoch)
...     print(f"epoch {epoch}: same order as DistributedSampler's: {ours.order(epoch) == list(theirs)}")
epoch 0: same order as DistributedSampler's: True
epoch 1: same order as DistributedSampler's: True
epoch 2: same order as DistributedSampler's: True
>>> ours.set_epoch(1, start_batch=3)
>>> resumed = list(ours)
>>> {"batches left": len(resumed), "same as the epoch's tail": resumed == ours.batches(1)[3:]}
{'batches left': 7, "same as the epoch's tail": True}
>>> loader = DataLoader(TensorDataset(run.x, run.y), batch_sampler=ours, generator=torch.Generator())
>>> len(loader), next(iter(loader))[0].shape
(7, torch.Size([32, 2]))
>>> ours.set_epoch(1, start_batch=10)
Traceback (most recent call last):
...
ValueError: start_batch must be below the 10 batches of an epoch, got 10

```

!!! note "Where it differs from PyTorch"
    `DistributedSampler` splits each epoch's order among `num_replicas` processes, padding it so that each
    gets as many samples, and its `drop_last` drops samples so that they divide evenly; it yields indices,
    not batches. Ours serves one process, cuts the order into batches, and its `drop_last` drops a last,
    short batch, as `BatchSampler`'s does. The tests prove the orders equal for one replica, and the batches
    equal to `BatchSampler`'s over that order. One quirk we share: seed and epoch are *added*, so the run
    seeded 0 sees in its second epoch the order that the run seeded 1 sees in its first. Keep the seeds of
    runs you compare far apart.

Two details make this safe inside a real `DataLoader`. First, count the position in the training loop,
one step after each finished update, never in the sampler: a loader with workers fetches batches ahead of
the model, so the sampler has always served more batches than the model has eaten.
[`train_until`][torchenstein.training.resume.train_until] does exactly that. Second, give the loader a
generator of its own, as above: every `iter(loader)` draws a seed from it, and without one it draws from the
global generator, so a resumed run, which starts one extra iterator at the resume point, would shift every
dropout mask after it. (Randomness inside worker processes is seeded afresh by each new iterator; for
augmentation done in workers, derive the randomness from the seed, the epoch and the sample's index.)

### The other way: replay the generator and skip

With a plain shuffled `DataLoader` you can still resume mid-epoch: save its generator's state *as it was
when the epoch began*, and on resume restore it and skip the batches already used. The state at the moment
of the crash is no good, because the epoch's draws are already spent:

```pycon
>>> import itertools
>>> loader = DataLoader(range(10), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
>>> at_epoch_start = loader.generator.get_state()
>>> epoch = iter(loader)
>>> consumed = [next(epoch).tolist()]               # one batch trained on, then the crash
>>> at_crash = loader.generator.get_state()
>>> rest = [batch.tolist() for batch in epoch]      # what the run that never stopped reads next
>>> def resume_from(state):
...     fresh = DataLoader(range(10), batch_size=4, shuffle=True, generator=torch.Generator())
...     fresh.generator.set_state(state)
...     return [batch.tolist() for batch in itertools.islice(fresh, len(consumed), None)]
>>> {"state at the epoch's start": resume_from(at_epoch_start) == rest, "state at the crash": resume_from(at_crash) == rest}
{"state at the epoch's start": True, 'state at the crash': False}

```

It works, at a price: the skipped batches are still loaded (and augmented, and collated) only to be
thrown away, and the epoch-start state must be kept beside the checkpoint. The stateless sampler skips by
arithmetic.

## The training state, on disk

[`save_training_state`][torchenstein.training.resume.save_training_state] writes the checkpoints lesson's file plus
the two pieces a shuffling, augmenting run adds: the `position` and the pipeline's `generators`. It writes
through the checkpoints lesson's [`atomic_save`][torchenstein.training.checkpoints.atomic_save] (a temporary file, then
`os.replace`), so a crash in the middle of a save leaves the last good file as it was.
[`load_training_state`][torchenstein.training.resume.load_training_state] reads it with
`weights_only=True`, checks that it fits before changing anything, and restores in a fixed order: model,
optimiser, scheduler, scaler, the pipeline's generators, and the global generators last of all, since
nothing after them may draw a random number. [`save_run`][torchenstein.training.resume.save_run] and
[`resume_run`][torchenstein.training.resume.resume_run] call the two for our run, and
[`train_until`][torchenstein.training.resume.train_until] trains from wherever a run stands. We train a run
to step 13, the fourth batch of its second epoch, and save it:

```pycon
>>> from torchenstein.training.resume import load_training_state, save_run, train_until
>>> crashed = make_run()
>>> train_until(crashed, 13)
>>> crashed.position
Position(step=13, epoch=1, batch_in_epoch=3)
>>> lab = tempfile.TemporaryDirectory()                 # deletes itself when the lesson is done
>>> path = os.path.join(lab.name, "latest.pt")
>>> save_run(path, crashed)
>>> checkpoint = torch.load(path, map_location="cpu", weights_only=True)
>>> sorted(checkpoint)
['extra', 'generators', 'model', 'optimizer', 'position', 'rng', 'scaler', 'scheduler', 'torch_version']
>>> checkpoint["position"], checkpoint["scheduler"]["last_epoch"], checkpoint["generators"]["augment"].dtype
({'step': 13, 'epoch': 1, 'batch_in_epoch': 3}, 13, torch.uint8)
>>> load_training_state(path, model=crashed.model, optimizer=crashed.optimizer, scheduler=crashed.scheduler,
...                     scaler=crashed.scaler)
Traceback (most recent call last):
...
ValueError: ...latest.pt' holds the generators ['augment'], got []: pass every one, or its stream restarts

```

Why plain ints, and a generator's state rather than the generator? `weights_only=True` rebuilds tensors,
dtypes and Python's containers, numbers and strings, and refuses every other class by name (the checkpoints lesson showed
why). NumPy's state tuple was the checkpoints lesson's obstacle, solved by storing its key as a tensor. Ours is the
`Position` itself, a `NamedTuple` class of this module:

```pycon
>>> import io
>>> from torchenstein.training.resume import Position
>>> buffer = io.BytesIO()
>>> torch.save({"position": Position(13, 1, 3)}, buffer)
>>> _ = buffer.seek(0)
>>> torch.load(buffer, weights_only=True)
Traceback (most recent call last):
...
_pickle.UnpicklingError: Weights only load failed...Unsupported global: GLOBAL torchenstein.training.resume.Position...
>>> allowed = torch.serialization.get_safe_globals()
>>> torch.serialization.add_safe_globals([Position])   # trust this one class, in this process
>>> _ = buffer.seek(0)
>>> torch.load(buffer, weights_only=True)
{'position': Position(step=13, epoch=1, batch_in_epoch=3)}
>>> torch.serialization.clear_safe_globals()
>>> torch.serialization.add_safe_globals(allowed)      # (the Professor tidies up)

```

`add_safe_globals` (PyTorch 2.4 and later) lets one named class through, for the whole process, and every
program that reads the file must remember to call it. Plain values need no permission from anyone, so that
is what the file holds; `Position(**checkpoint["position"])` rebuilds the object.

## The proof: interrupted and resumed, bit for bit

The crashed run is gone. A new process does what every training script does first: it builds a fresh
run from the same seed. Then it restores the file into it, and trains on to the end. Beside it, the same
run trained without interruption. [`compare_runs`][torchenstein.training.resume.compare_runs] compares
with [`states_equal`][torchenstein.training.resume.states_equal], which compares the bits of every
tensor (stricter even than `torch.equal`, for which `0.0` equals `-0.0`): the parameters, every tensor of
AdamW's state, the scaler's state and the loss of every step.

```pycon
>>> from torchenstein.training.resume import compare_runs, resume_run
>>> del crashed                                         # the lightning strikes
>>> risen = resume_run(path)                            # a new process: build, then restore
>>> risen.position, len(risen.losses)
(Position(step=13, epoch=1, batch_in_epoch=3), 13)
>>> train_until(risen, risen.total_steps)
>>> full = make_run()
>>> train_until(full, full.total_steps)                 # the run that never stopped
>>> compare_runs(risen, full)
{'parameters': True, 'optimizer state': True, 'scaler': True, 'loss history': True}

```

One interruption point proves little; the tests interrupt at the first step, at the last, at both epoch
boundaries and in the middle of epochs, and interrupt one run three times over. Here are the losses of a
longer run of five epochs, stopped at step 23, in the middle of its third epoch: the resumed run lies on the
uninterrupted one, while the one resumed without the global generators' states draws other dropout masks
and wanders off at once.

![The training loss over 50 steps of three runs: the uninterrupted run as a thick line falling, noisily, from about 1.1 to about 0.4; the run interrupted before step 23 and resumed, drawn as dots from step 23 on, every dot exactly on the line; and a run resumed without its random generators' states, dashed, that leaves the line at step 23 and stays off it.](plot_resumed_run.svg)

One caution for experiments like these: the global generators belong to the whole process, not to a run.
Resume two runs side by side and the second restore overwrites the first's; resume one, train it, then the
next.

## What if you forget...

Now the experiment the Professor has been waiting for.
[`what_if_you_forget`][torchenstein.training.resume.what_if_you_forget] interrupts the run at step 13 and
resumes it seven times: once with everything, and once forgetting each piece, that is, with that piece as a
fresh process has it (for the sampler position: the epoch restarts from its first batch). Each resumed run
trains to the end and is compared with the uninterrupted one:

```pycon
>>> from torchenstein.training.resume import what_if_you_forget
>>> table = what_if_you_forget(stop_at=13)
>>> print(f"{'forgotten':17} {'parameters':11} {'optimizer state':16} {'scaler':7} loss history")
forgotten         parameters  optimizer state  scaler  loss history
>>> for piece, equal in table.items():
...     print(f"{piece:17} {equal['parameters']!s:11} {equal['optimizer state']!s:16} {equal['scaler']!s:7} "
...           f"{equal['loss history']}")
nothing           True        True             True    True
global RNG        False       False            True    False
data generator    False       False            True    False
scheduler         False       False            False   False
loss scaler       False       False            True    False
sampler position  False       False            False   False
optimizer state   False       False            True    False

```

Every piece matters, and none of them announces its absence: every run in the table trains to the end
without an error or a warning. The forgotten RNG redraws dropout masks the run has already used; the
forgotten data generator replays the augmentation noise of the first steps; the forgotten scheduler warms
up again in the middle of training; the forgotten optimiser state restarts AdamW's bias correction and
its running averages. The forgotten loss scale is the sneakiest: it restarts from $2^{14}$, far below the
scale the run had reached, so it takes updates that the uninterrupted run skipped as overflows; and yet by
the end it has climbed back to the very same scale, so a check of the scaler alone says all is well. The
forgotten sampler position changes the data itself, which Dr. Hammer's last trap counts sample by sample.

## On a GPU

On a CUDA device the same proof needs three more switches, listed in
[Preserving your monster's memories](../checkpoints/index.md): deterministic kernels, cuBLAS's
workspace setting, and cuDNN without benchmarking.
[`deterministic_algorithms`][torchenstein.training.resume.deterministic_algorithms] sets them for a block
and puts them back afterwards; on a CUDA machine it refuses to start unless `CUBLAS_WORKSPACE_CONFIG` is
`:4096:8` or `:16:8`, which cuBLAS reads when the process first uses it. The CUDA generators are already in
the file: the checkpoints lesson's `capture_rng_state` saves one state per device with `torch.cuda.get_rng_state_all()`.
The tests run the whole interrupted-and-resumed proof on a GPU, where there is one.

```pycon
>>> from torchenstein.training.resume import deterministic_algorithms
>>> with deterministic_algorithms():
...     inside = torch.are_deterministic_algorithms_enabled()
>>> {"inside the block": inside, "after it": torch.are_deterministic_algorithms_enabled()}
{'inside the block': True, 'after it': False}

```

Bit for bit also means same hardware, same PyTorch, same CUDA and cuDNN. Across them, expect equal to
within rounding, not to the bit.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: pickling the whole laboratory"
    "Why choose?" says Hammer, and saves the objects themselves: `torch.save({"model": model, "optimizer":
    optimizer, "scheduler": scheduler})`. [The checkpoints lesson](../checkpoints/index.md) showed what pickling a
    model costs (a file that only `weights_only=False` can open, and that breaks when the class moves). A
    scheduler is worse: `LambdaLR`
    holds its schedule, a function, and a function made inside another function cannot be pickled at all.
    Its `state_dict` keeps only numbers, and `None` where the function was; the function is rebuilt by
    the code, as a model is.

    ```pycon
    >>> try:
    ...     torch.save({"model": run.model, "optimizer": run.optimizer, "scheduler": run.scheduler}, io.BytesIO())
    ... except Exception as err:
    ...     print(err)
    Can't pickle local object ...as_multiplier.<locals>.<lambda>...
    >>> state = run.scheduler.state_dict()
    >>> {"last_epoch": state["last_epoch"], "lr_lambdas": state["lr_lambdas"]}
    {'last_epoch': 0, 'lr_lambdas': [None]}

    ```

!!! hammer "Dr. Hammer's trap: fast-forwarding the scheduler"
    Hammer forgot the scheduler in his checkpoint, so on resume he calls `scheduler.step()` once per
    step already taken, to "fast-forward" it. With a closed-form schedule such as `LambdaLR` this happens
    to give the right rate (after a warning that the scheduler stepped before the optimizer). With
    `CosineAnnealingLR` it does not: that scheduler computes each rate from the rate currently in the
    optimiser (it is *chainable*, see [Learning-rate schedules](../schedules/index.md)), and the optimiser
    already holds the restored rate of step 40, so the replay shrinks an already shrunk rate forty times
    over. Ten steps after the resume:

    ```pycon
    >>> import warnings
    >>> from torch.optim.lr_scheduler import CosineAnnealingLR
    >>> def cosine_pair():
    ...     p = torch.zeros(2, requires_grad=True)
    ...     optimizer = torch.optim.AdamW([p], lr=1.0)
    ...     return p, optimizer, CosineAnnealingLR(optimizer, T_max=100)
    >>> def train(p, optimizer, scheduler, steps):
    ...     for _ in range(steps):
    ...         p.grad = torch.ones(2)
    ...         optimizer.step()
    ...         scheduler.step()
    >>> p, optimizer, scheduler = cosine_pair()
    >>> train(p, optimizer, scheduler, 40)
    >>> saved = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    >>> train(p, optimizer, scheduler, 10)
    >>> rates = {"uninterrupted": round(optimizer.param_groups[0]["lr"], 4)}
    >>> for how in ("fast-forwarded", "state loaded"):
    ...     p, optimizer, scheduler = cosine_pair()
    ...     optimizer.load_state_dict(saved["optimizer"])
    ...     with warnings.catch_warnings():
    ...         warnings.simplefilter("ignore")          # "lr_scheduler.step() before optimizer.step()"
    ...         if how == "fast-forwarded":
    ...             for _ in range(40):
    ...                 scheduler.step()
    ...         else:
    ...             scheduler.load_state_dict(saved["scheduler"])
    ...     train(p, optimizer, scheduler, 10)
    ...     rates[how] = round(optimizer.param_groups[0]["lr"], 4)
    >>> rates
    {'uninterrupted': 0.5, 'fast-forwarded': 0.3273, 'state loaded': 0.5}

    ```

    Load the scheduler's `state_dict`: one line, right for every scheduler, and no replay of a hundred
    thousand steps.

!!! hammer "Dr. Hammer's trap: restoring the optimiser before moving the model"
    Hammer builds his model, its optimiser, loads the checkpoint, and only then moves the model to the
    GPU. `model.to(...)` moves the parameters but not the optimiser's state, which `load_state_dict` had
    put where the parameters were *at that moment*. The first step then fails with an error about tensors
    on two devices, the CPU and the GPU (the tests check it where there is a GPU). Converting the model's
    dtype after loading is the same mistake, and it fails on any machine:

    ```pycon
    >>> from torch import nn
    >>> from torchenstein.training.adam import AdamW
    >>> def fresh():
    ...     model = nn.Linear(3, 2)
    ...     return model, AdamW(model.parameters(), lr=1e-2)
    >>> model, optimizer = fresh()
    >>> model(torch.randn(4, 3)).sum().backward()
    >>> optimizer.step()
    >>> saved = optimizer.state_dict()
    >>> model, optimizer = fresh()
    >>> optimizer.load_state_dict(saved)                 # the state is float32, like the parameters now
    >>> _ = model.to(torch.float64)                      # then the model moves on
    >>> model(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
    >>> optimizer.step()
    Traceback (most recent call last):
    ...
    RuntimeError: expected dtype float for `end` but got dtype double
    >>> model, optimizer = fresh()
    >>> _ = model.to(torch.float64)                      # the model first...
    >>> optimizer.load_state_dict(saved)                 # ...then the state follows it
    >>> optimizer.state[model.weight]["exp_avg"].dtype
    torch.float64

    ```

    Move the model to its device and dtype first, then build the optimiser, then load.
    [`make_run`][torchenstein.training.resume.make_run] builds in that order, and `load_training_state`
    loads into a model that is already where it will train.

!!! hammer "Dr. Hammer's trap: the resumed monster is still asleep"
    After loading, Hammer checks the model on a few points in eval mode, nods, and trains on. No
    `state_dict` holds the train or eval mode, and nothing switches it back: his resumed run trains with
    dropout asleep, a different network from the one that crashed, and since a sleeping dropout draws no
    random numbers, the global generator falls out of step as well. Call `model.train()` after the check;
    [`resume_run`][torchenstein.training.resume.resume_run] ends with it.

    ```pycon
    >>> any("training" in key for key in risen.model.state_dict())
    False
    >>> sleepy = resume_run(path)
    >>> _ = sleepy.model.eval()                           # "let me just check it loaded"
    >>> before = torch.get_rng_state()
    >>> _ = sleepy.model(sleepy.x[:5])
    >>> torch.equal(torch.get_rng_state(), before)        # eval mode drew no dropout masks
    True
    >>> train_until(sleepy, sleepy.total_steps)
    >>> compare_runs(sleepy, full)["loss history"]
    False

    ```

!!! hammer "Dr. Hammer's trap: the epoch restarts from batch 0"
    Hammer's checkpoint keeps the epoch but not the batch, so after the crash at step 13 his loop starts
    epoch 1 from its first batch and trains until step 30 as planned. No error, a plausible curve, and
    a quiet duplicate: the three batches read before the crash are read again, and the last three batches
    of the run are never read. Count how many times the whole run sees each of the 300 samples:

    ```pycon
    >>> sampler = run.sampler
    >>> def read(epoch, start=0, stop=None):
    ...     return [i for batch in sampler.batches(epoch)[start:stop] for i in batch]
    >>> honest = read(0) + read(1) + read(2)
    >>> hammer = read(0) + read(1, stop=3) + read(1) + read(2, stop=7)
    >>> def seen(indices):
    ...     times = torch.bincount(torch.tensor(indices), minlength=300)
    ...     return {f"{k} times": n for k, n in enumerate(torch.bincount(times).tolist()) if n}
    >>> print(f"honest: {seen(honest)}\nHammer: {seen(hammer)}")
    honest: {'3 times': 300}
    Hammer: {'2 times': 59, '3 times': 162, '4 times': 79}
    >>> lab.cleanup()

    ```

    The table above shows what it does to the training. Save the batch within the epoch, and start the
    resumed epoch there.

## Challenges

**1. A checkpoint that kept only the step.** An old checkpoint saved `step` and nothing about the data.
Write `position_from_step(step, *, num_samples, batch_size, drop_last=False)`, returning the `Position` of
the batch that step `step` reads, for an `EpochBatchSampler` with those settings; raise `ValueError` when
`drop_last` leaves an epoch without a single batch.

**2. Which file to resume from.** After a few crashes, a checkpoint folder holds files of every kind.
Write `latest_checkpoint(folder)`, returning the path of the file named `*.pt` that loads under
`weights_only=True` and holds the highest `checkpoint["position"]["step"]`, or `None`. Truncated files,
leftover temporary files of an interrupted save, files that are not training states and booby-trapped
pickles must all be passed over; the newest file and the last name in alphabetical order are not the
answer.

Check an attempt with `check_position_from_step(my_function)` (or `check_latest_checkpoint`), or put your
functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.training.resume import (
...     check_latest_checkpoint, check_position_from_step, latest_checkpoint, position_from_step)
>>> check_position_from_step(position_from_step), check_latest_checkpoint(latest_checkpoint)
(None, None)

```
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from torchenstein.lab import PALETTE, new_figure, progress, seed_everything
from torchenstein.nn.losses import cross_entropy
from torchenstein.training.adam import AdamW
from torchenstein.training.checkpoints import atomic_save, capture_rng_state, restore_rng_state
from torchenstein.training.data import draw_seed
from torchenstein.training.loop import make_spiral, spiral_classifier
from torchenstein.training.mixed_precision import LossScaler
from torchenstein.training.schedules import as_multiplier, warmup_cosine

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


class Position(NamedTuple):
    """Where a run stands: the next step to take, and the next batch to read (its epoch and its index).

    Examples:
        >>> Position(step=9, epoch=0, batch_in_epoch=9).advanced(num_batches=10)
        Position(step=10, epoch=1, batch_in_epoch=0)
    """

    step: int
    epoch: int
    batch_in_epoch: int

    def advanced(self, num_batches: int) -> Position:
        """The position after one more step, in an epoch of ``num_batches`` batches."""
        batch = self.batch_in_epoch + 1
        # The last batch of an epoch leads to batch 0 of the next: a position always names a batch that exists.
        if batch == num_batches:
            return Position(self.step + 1, self.epoch + 1, 0)
        return Position(self.step + 1, self.epoch, batch)


class EpochBatchSampler:
    """Batches of indices whose order is a pure function of ``(seed, epoch)``, startable at any batch.

    Epoch ``e`` shuffles with ``torch.randperm`` on a generator seeded with ``seed + e``, exactly as
    ``torch.utils.data.DistributedSampler`` does (for one replica), and cuts the order into batches of
    ``batch_size``. Nothing is remembered between epochs, so any batch of any epoch can be served again
    from three integers. Usable as a ``DataLoader``'s ``batch_sampler``.

    Args:
        num_samples: the size of the data set, at least 1.
        batch_size: samples per batch, at least 1.
        shuffle: ``False`` serves ``0, 1, ..., num_samples - 1`` in order every epoch.
        seed: the experiment's seed.
        drop_last: drop a last batch smaller than ``batch_size``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or ``drop_last`` leaves no batch at all.

    Examples:
        >>> sampler = EpochBatchSampler(10, 4, seed=0)
        >>> sampler.set_epoch(1, start_batch=1)
        >>> list(sampler), len(sampler), sampler.num_batches
        ([[0, 8, 9, 3], [7, 4]], 2, 3)
    """

    def __init__(self, num_samples: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:  # fmt: skip
        _check_sampler_args(num_samples, batch_size, shuffle, seed, drop_last)
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch, self.start_batch = 0, 0

    @property
    def num_batches(self) -> int:
        """Batches in one whole epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int) -> list[int]:
        """Every index once, in epoch ``epoch``'s order."""
        _check_count("epoch", epoch, minimum=0)
        if not self.shuffle:
            return list(range(self.num_samples))
        # A fresh generator per epoch, seeded from (seed, epoch): no state carried from one epoch to the next.
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def batches(self, epoch: int) -> list[list[int]]:
        """All the batches of epoch ``epoch``, from its first."""
        order = self.order(epoch)
        return [order[i : i + self.batch_size] for i in range(0, self.num_batches * self.batch_size, self.batch_size)]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Choose what the next ``iter(sampler)`` serves: epoch ``epoch`` from its batch ``start_batch``."""
        _check_count("epoch", epoch, minimum=0)
        _check_count("start_batch", start_batch, minimum=0)
        if start_batch >= self.num_batches:
            raise ValueError(f"start_batch must be below the {self.num_batches} batches of an epoch, got {start_batch}")
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)[self.start_batch :]

    def __len__(self) -> int:
        # What this iteration will serve: a resumed epoch is shorter, and a DataLoader's len() says so.
        return self.num_batches - self.start_batch


# The experiment: sizes and settings of the run every section of the lesson trains.
LEARNING_RATE = 0.02
"""The peak learning rate of the warm-up-and-cosine schedule."""
WARMUP_STEPS = 3
"""The steps of the schedule's linear warm-up."""
MIN_LR = 0.002
"""The learning rate the cosine ends at."""
WEIGHT_DECAY = 0.01
"""AdamW's decoupled weight decay."""
JITTER = 0.02
"""The standard deviation of the augmentation noise added to every point."""
BATCH_SIZE = 32
"""Samples per batch: 300 samples make ten batches an epoch, the last of 12."""
FLOAT16_MAX = torch.finfo(torch.float16).max
"""The largest float16 number: a scaled gradient beyond it overflows to ``inf``."""


@dataclass
class SpiralRun:
    """Everything one training run owns: the model and its optimiser, scheduler and loss scaler, the data,
    the sampler, the data pipeline's own generator, where the run stands and the loss of every step so far.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: LossScaler
    sampler: EpochBatchSampler
    augment: torch.Generator
    x: Tensor
    y: Tensor
    total_steps: int
    position: Position = Position(0, 0, 0)
    losses: list[float] = field(default_factory=list)


def make_run(*, seed: int = 0, epochs: int = 3, device: torch.device | str | None = "cpu") -> SpiralRun:
    """Build a fresh run: what a training script does first, before it knows whether it will resume.

    It seeds every global generator with `seed_everything` (so two calls build identical runs, as two
    processes started with the same seed would), draws the spiral, and builds the course's
    `spiral_classifier` with dropout, our `AdamW`, a `LambdaLR` on `warmup_cosine`, our `LossScaler`, an
    `EpochBatchSampler` and a generator for the augmentation noise.

    Args:
        seed: the experiment's seed.
        epochs: how many epochs the run will train, at least 1.
        device: where the model and the data live.

    Returns:
        A `SpiralRun` at step 0.

    Raises:
        ValueError: if ``seed`` or ``epochs`` is out of range.

    Examples:
        >>> run = make_run(epochs=2)
        >>> run.total_steps, run.position
        (20, Position(step=0, epoch=0, batch_in_epoch=0))
    """
    _check_count("epochs", epochs, minimum=1)
    seed_everything(seed)
    device = torch.device(device) if device is not None else torch.device("cpu")
    x, y = make_spiral(seed=seed)
    # The model goes to its device before the optimiser sees its parameters (see the traps).
    model = spiral_classifier(dropout=0.2).to(device)
    optimizer = AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    sampler = EpochBatchSampler(len(x), BATCH_SIZE, seed=seed)
    total_steps = epochs * sampler.num_batches
    schedule = partial(warmup_cosine, warmup_steps=WARMUP_STEPS, total_steps=total_steps, base_lr=LEARNING_RATE,
                       min_lr=MIN_LR)  # fmt: skip
    scheduler = LambdaLR(optimizer, as_multiplier(schedule, base_lr=LEARNING_RATE))
    scaler = LossScaler(init_scale=2.0**14, growth_interval=3)
    # The augmentation's own generator, its seed drawn once from the freshly seeded global generator.
    augment = torch.Generator().manual_seed(draw_seed())
    return SpiralRun(model, optimizer, scheduler, scaler, sampler, augment, x.to(device), y.to(device), total_steps)


def train_step(run: SpiralRun, indices: list[int]) -> float:
    """One step on the samples ``indices``: augment, forward, scaled backward, scaler step, scheduler step.

    Trains in whatever mode the model is in, and does not move ``run.position`` (`train_until` does).

    Args:
        run: the run.
        indices: the batch's sample indices.

    Returns:
        The batch's loss, measured before the update.
    """
    index = torch.tensor(indices, device=run.x.device)
    # Augmentation: a little noise on every point, from the data pipeline's own generator (on the CPU,
    # so a GPU run draws the very same noise), then moved to the data's device.
    noise = torch.randn(len(indices), 2, generator=run.augment) * JITTER
    input, target = run.x[index] + noise.to(run.x.device), run.y[index]  # (B, 2), (B,)
    loss = cross_entropy(run.model(input), target)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    # Our run computes in float32 (the CPU's bfloat16 autocast never overflows), so we store the scaled
    # gradients as float16 would: rounded to float16, inf beyond its largest number, 65504. That gives
    # the scaler its real job: skip an overflowing step and halve the scale.
    with torch.no_grad():
        for param in run.model.parameters():
            if param.grad is not None:
                param.grad.copy_(param.grad.half())
    run.scaler.step(run.optimizer)
    run.scaler.update()
    # The scheduler counts iterations, skipped ones included, and sets the rate of the next step.
    run.scheduler.step()
    return loss.item()


def train_until(run: SpiralRun, stop_step: int, *, progress_bar: bool = False) -> None:
    """Train ``run`` from where it stands until its position reaches step ``stop_step``.

    The loop, not the sampler, moves the position, one step after each finished update: what counts is
    the batches *consumed*, not the batches a data loader has fetched ahead.

    Args:
        run: the run; its ``position`` and ``losses`` move on.
        stop_step: the step to stop before, from the run's current step up to ``run.total_steps``.
        progress_bar: show the course's progress bar.

    Raises:
        ValueError: if ``stop_step`` is behind the run or past its end.

    Examples:
        >>> run = make_run()
        >>> train_until(run, 13)
        >>> run.position, len(run.losses)
        (Position(step=13, epoch=1, batch_in_epoch=3), 13)
    """
    _check_stop(run, stop_step)
    bar = progress(total=stop_step - run.position.step, desc="steps", disable=not progress_bar)
    while run.position.step < stop_step:
        run.sampler.set_epoch(run.position.epoch, start_batch=run.position.batch_in_epoch)
        for indices in run.sampler:
            run.losses.append(train_step(run, indices))
            run.position = run.position.advanced(run.sampler.num_batches)
            bar.update()
            if run.position.step == stop_step:
                break
    bar.close()


def save_training_state(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    step: int,
    epoch: int,
    batch_in_epoch: int,
    generators: Mapping[str, torch.Generator] | None = None,
    extra: dict | None = None,
) -> None:
    """Atomically save everything a run needs to continue, bit for bit, from the batch it would read next.

    Args:
        path: the file to write (its folder must exist).
        model: the model; its ``state_dict`` is saved.
        optimizer: its optimiser; its ``state_dict`` is saved.
        scheduler: the learning-rate scheduler, if any (anything with ``state_dict``).
        scaler: the loss scaler (``torch.amp.GradScaler`` or our `LossScaler`), if any.
        step: the next step to take.
        epoch: the epoch of the next batch.
        batch_in_epoch: the index, within its epoch, of the next batch.
        generators: the data pipeline's own generators, by name; their states are saved.
        extra: anything else (a loss history, a config) made of tensors and plain Python containers,
            numbers and strings, so that it loads under ``weights_only=True``.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``step``, ``epoch`` or ``batch_in_epoch`` is not a non-negative int.

    Examples:
        >>> save_training_state("nowhere.pt", model=nn.Linear(1, 1), optimizer=None, step=0, epoch=0,
        ...                     batch_in_epoch=0)
        Traceback (most recent call last):
        ...
        TypeError: optimizer must be a torch.optim.Optimizer, got NoneType
    """
    generators = {} if generators is None else generators
    _check_save_args(model, optimizer, scheduler, scaler, step, epoch, batch_in_epoch, generators, extra)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        # Plain ints, not a Position: the restricted unpickler of weights_only=True refuses our class.
        "position": {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch},
        # The global generators (torch, CUDA, NumPy, Python), in the checkpoints lesson's weights_only-safe form.
        "rng": capture_rng_state(),
        # A torch.Generator object does not load under weights_only; its state, a uint8 tensor, does.
        "generators": {name: generator.get_state() for name, generator in generators.items()},
        "extra": {} if extra is None else extra,
        "torch_version": str(torch.__version__),
    }
    atomic_save(checkpoint, path)


def load_training_state(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> tuple[Position, dict]:
    """Restore everything `save_training_state` saved, safely, and say where the run stands.

    Everything is checked before anything changes. Then, in this order: the model, the optimiser (so
    the model must already be on its device: the optimiser's state is moved to its parameters' device
    now), the scheduler, the scaler, the pipeline's generators, and last the global generators, since
    nothing after them may draw a random number. A model's train or eval mode is not part of any
    ``state_dict``: the model keeps the mode it had.

    Args:
        path: the checkpoint file.
        model: a model of the same architecture, already on its device.
        optimizer: an optimiser of the same kind over ``model``'s parameters.
        scheduler: the run's scheduler; required exactly when the checkpoint holds one.
        scaler: the run's loss scaler; required exactly when the checkpoint holds one.
        generators: the pipeline's generators, by name; exactly the names that were saved.

    Returns:
        ``(position, extra)``: the `Position` of the next step and batch, and the saved ``extra``.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        TypeError: if an argument has the wrong type.
        ValueError: if the file is not a training state, or does not fit what is passed to restore.
    """
    generators = {} if generators is None else generators
    _check_load_args(model, optimizer, scheduler, scaler, generators)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no training state at {path!r}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    _check_checkpoint(checkpoint, path, model, optimizer, scheduler=scheduler, scaler=scaler, generators=generators)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    for name, generator in generators.items():
        generator.set_state(checkpoint["generators"][name])
    restore_rng_state(checkpoint["rng"])
    return Position(**checkpoint["position"]), checkpoint["extra"]


def save_run(path: str | os.PathLike, run: SpiralRun) -> None:
    """Save a `SpiralRun` with `save_training_state`, its loss history in ``extra``."""
    save_training_state(
        path, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler,
        step=run.position.step, epoch=run.position.epoch, batch_in_epoch=run.position.batch_in_epoch,
        generators={"augment": run.augment},
        extra={"losses": torch.tensor(run.losses, dtype=torch.float64)},  # float64 holds a Python float exactly
    )  # fmt: skip


FORGETTABLE = ("global RNG", "data generator", "scheduler", "loss scaler", "sampler position", "optimizer state")
"""The pieces of a training state that `resume_run` can be told to forget, for the experiment."""


def resume_run(path: str | os.PathLike, *, forget: str | None = None, seed: int = 0, epochs: int = 3,
               device: torch.device | str | None = "cpu") -> SpiralRun:  # fmt: skip
    """Do what a new process does after a crash: build a fresh run, then restore it from ``path``.

    Args:
        path: a file written by `save_run`.
        forget: for the experiment, one of `FORGETTABLE`: that piece is not restored but left as the
            fresh run has it (``"sampler position"``: the epoch restarts from its first batch).
        seed: the seed the run was started with.
        epochs: the epochs the run was started with.
        device: where the run lives.

    Returns:
        The resumed run, in training mode.

    Raises:
        ValueError: if ``forget`` is not ``None`` or one of `FORGETTABLE`.
    """
    if forget is not None and forget not in FORGETTABLE:
        raise ValueError(f"forget must be None or one of {FORGETTABLE}, got {forget!r}")
    run = make_run(seed=seed, epochs=epochs, device=device)
    pieces = {"model": run.model, "optimizer": run.optimizer, "scheduler": run.scheduler, "scaler": run.scaler,
              "generators": {"augment": run.augment}}  # fmt: skip
    if forget is None:
        position, extra = load_training_state(path, **pieces)
    else:
        # Forgetting a piece on save is the same as saving what a fresh process starts with: write that.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        _forget(checkpoint, forget, run)
        with tempfile.TemporaryDirectory() as folder:
            amnesiac = os.path.join(folder, "amnesiac.pt")
            atomic_save(checkpoint, amnesiac)
            position, extra = load_training_state(amnesiac, **pieces)
    run.position, run.losses = position, extra["losses"].tolist()
    # The mode is in no state_dict: say it.
    run.model.train()
    return run


def _forget(checkpoint: dict, piece: str, fresh: SpiralRun) -> None:
    if piece == "global RNG":
        checkpoint["rng"] = capture_rng_state()
    elif piece == "data generator":
        checkpoint["generators"]["augment"] = fresh.augment.get_state()
    elif piece == "sampler position":
        checkpoint["position"]["batch_in_epoch"] = 0
    else:
        owner = {"scheduler": fresh.scheduler, "loss scaler": fresh.scaler, "optimizer state": fresh.optimizer}[piece]
        checkpoint[{"loss scaler": "scaler", "optimizer state": "optimizer"}.get(piece, piece)] = owner.state_dict()


def states_equal(a: object, b: object) -> bool:
    """Bitwise equality of two states: nested dicts, lists and tuples of tensors and plain values.

    Tensors must agree in dtype, shape and every bit of every element, which is stricter than
    ``torch.equal``: ``0.0`` and ``-0.0`` differ, and a NaN equals a NaN with the same bits. Dicts must
    also agree in the order of their keys; anything else is compared with ``==``.

    Examples:
        >>> states_equal({"w": torch.ones(2), "step": 3}, {"w": torch.ones(2), "step": 3})
        True
        >>> states_equal({"w": torch.ones(2)}, {"w": torch.ones(2, dtype=torch.float64)})
        False
        >>> torch.equal(torch.tensor(0.0), torch.tensor(-0.0)), states_equal(torch.tensor(0.0), torch.tensor(-0.0))
        (True, False)
    """
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.dtype == b.dtype and a.shape == b.shape):
            return False
        # The raw bytes of each tensor, flattened (a 0-d tensor too) and on the CPU.
        return torch.equal(a.detach().reshape(-1).cpu().view(torch.uint8), b.detach().reshape(-1).cpu().view(torch.uint8))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return list(a) == list(b) and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def compare_runs(a: SpiralRun, b: SpiralRun) -> dict[str, bool]:
    """Which parts of two runs agree bit for bit.

    Returns:
        ``{"parameters": ..., "optimizer state": ..., "scaler": ..., "loss history": ...}``.
    """
    return {
        "parameters": states_equal(a.model.state_dict(), b.model.state_dict()),
        "optimizer state": states_equal(a.optimizer.state_dict(), b.optimizer.state_dict()),
        "scaler": states_equal(a.scaler.state_dict(), b.scaler.state_dict()),
        "loss history": states_equal(torch.tensor(a.losses, dtype=torch.float64),
                                     torch.tensor(b.losses, dtype=torch.float64)),
    }


def what_if_you_forget(*, stop_at: int = 13, seed: int = 0, epochs: int = 3) -> dict[str, dict[str, bool]]:
    """Interrupt a run at ``stop_at``, resume it forgetting each piece in turn, and compare with the full run.

    The caller's global random generators are left as they were.

    Args:
        stop_at: the step at which the run is interrupted, inside ``[0, total_steps]``.
        seed: the run's seed.
        epochs: the run's epochs.

    Returns:
        For ``"nothing"`` and every piece of `FORGETTABLE`, what `compare_runs` says of the resumed run
        against the uninterrupted one.
    """
    callers_rng = capture_rng_state()
    try:
        full = make_run(seed=seed, epochs=epochs)
        _check_stop(full, stop_at)
        train_until(full, full.total_steps)
        interrupted = make_run(seed=seed, epochs=epochs)
        train_until(interrupted, stop_at)
        table = {}
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "latest.pt")
            save_run(path, interrupted)
            for piece in (None, *FORGETTABLE):
                risen = resume_run(path, forget=piece, seed=seed, epochs=epochs)
                train_until(risen, risen.total_steps)
                table["nothing" if piece is None else piece] = compare_runs(risen, full)
    finally:
        restore_rng_state(callers_rng)
    return table


def plot_resumed_run(*, epochs: int = 5, stop_at: int = 23, seed: int = 0) -> Figure:
    """Draw the loss of an uninterrupted run, of the same run interrupted and resumed, and of one resumed without its RNG.

    The caller's global random generators are left as they were.

    Args:
        epochs: the length of the runs, in epochs.
        stop_at: the step at which the interrupted runs stop and resume.
        seed: the runs' seed.

    Returns:
        A figure with one axes: three loss curves and the interruption.

    Examples:
        >>> fig = plot_resumed_run(epochs=1, stop_at=4)
        >>> [len(ax.lines) for ax in fig.axes]   # three curves and the interruption line
        [4]
    """
    callers_rng = capture_rng_state()
    try:
        full = make_run(seed=seed, epochs=epochs)
        _check_stop(full, stop_at)
        train_until(full, full.total_steps)
        interrupted = make_run(seed=seed, epochs=epochs)
        train_until(interrupted, stop_at)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "latest.pt")
            save_run(path, interrupted)
            # Resume one run and train it to the end before the next: the global generators belong to the
            # whole process, so two runs resumed side by side would draw from one stream.
            resumed = resume_run(path, seed=seed, epochs=epochs)
            train_until(resumed, resumed.total_steps)
            amnesiac = resume_run(path, forget="global RNG", seed=seed, epochs=epochs)
            train_until(amnesiac, amnesiac.total_steps)
    finally:
        restore_rng_state(callers_rng)
    steps, later = range(full.total_steps), range(stop_at, full.total_steps)
    fig, (ax,) = new_figure(1, 1, width=7.5, height=3.8)
    ax.plot(steps, full.losses, color=PALETTE[0], linewidth=2.5, label="uninterrupted run")
    ax.plot(later, resumed.losses[stop_at:], "o", color=PALETTE[1], markersize=4,
            label="interrupted and resumed: every piece restored")  # fmt: skip
    ax.plot(later, amnesiac.losses[stop_at:], "--", color=PALETTE[2], label="resumed without the global RNG states")
    ax.axvline(stop_at - 0.5, color=PALETTE[6], linestyle=":", linewidth=1)
    equal = compare_runs(resumed, full)["loss history"]
    ax.set(xlabel="step", ylabel="training loss (cross-entropy)",
           title=f"Interrupted before step {stop_at} (dotted line); resumed losses bitwise equal: {equal}")  # fmt: skip
    ax.legend(loc="upper right", fontsize=8)
    return fig


@contextlib.contextmanager
def deterministic_algorithms(*, warn_only: bool = False) -> Iterator[None]:
    """Make CUDA kernels repeatable inside the block, and put every setting back afterwards.

    Turns on ``torch.use_deterministic_algorithms(True)``, ``torch.backends.cudnn.deterministic`` and turns
    off ``torch.backends.cudnn.benchmark``. On a machine with CUDA it insists on
    ``CUBLAS_WORKSPACE_CONFIG`` being ``:4096:8`` or ``:16:8``, which cuBLAS needs for repeatable matrix
    products and reads when the process first uses it (set it in the shell, or before the first CUDA call).

    Args:
        warn_only: warn instead of raising when an operation has no deterministic kernel.

    Raises:
        RuntimeError: on a CUDA machine, if ``CUBLAS_WORKSPACE_CONFIG`` is not set to one of its two values.

    Examples:
        >>> with deterministic_algorithms():
        ...     inside = torch.are_deterministic_algorithms_enabled()
        >>> {"inside": inside, "after": torch.are_deterministic_algorithms_enabled()}
        {'inside': True, 'after': False}
    """
    if torch.cuda.is_available() and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in (":4096:8", ":16:8"):
        raise RuntimeError("CUBLAS_WORKSPACE_CONFIG must be ':4096:8' or ':16:8' for deterministic cuBLAS, got "
                           f"{os.environ.get('CUBLAS_WORKSPACE_CONFIG')!r}: set it before the process first uses CUDA")  # fmt: skip
    cudnn = torch.backends.cudnn
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                cudnn.deterministic, cudnn.benchmark)  # fmt: skip
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        cudnn.deterministic, cudnn.benchmark = previous[2], previous[3]


# Challenges


def position_from_step(step: int, *, num_samples: int, batch_size: int, drop_last: bool = False) -> Position:
    """Challenge solution: the `Position` of step ``step``, for a checkpoint that kept only the step.

    Args:
        step: the next step to take, from 0.
        num_samples: the size of the data set.
        batch_size: samples per batch.
        drop_last: whether a last, smaller batch is dropped.

    Returns:
        ``Position(step, epoch, batch_in_epoch)`` of the batch that step ``step`` reads.

    Raises:
        ValueError: if an argument is out of range, or ``drop_last`` leaves no batch in an epoch.

    Examples:
        >>> position_from_step(13, num_samples=300, batch_size=32)
        Position(step=13, epoch=1, batch_in_epoch=3)
    """
    _check_count("step", step, minimum=0)
    batches = EpochBatchSampler(num_samples, batch_size, drop_last=drop_last).num_batches
    epoch, batch_in_epoch = divmod(step, batches)
    return Position(step, epoch, batch_in_epoch)


def _walk(steps: int, num_samples: int, batch_size: int, drop_last: bool) -> Position:
    """The reference: advance a position one step at a time."""
    full, rest = divmod(num_samples, batch_size)
    batches = full + (1 if rest and not drop_last else 0)
    position = Position(0, 0, 0)
    for _ in range(steps):
        position = position.advanced(batches)
    return position


def check_position_from_step(candidate: Callable[..., Position]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``position_from_step``."""
    cases = [(0, 300, 32, False), (9, 300, 32, False), (10, 300, 32, False), (13, 300, 32, False),
             (13, 300, 32, True), (9, 300, 32, True), (27, 300, 32, True), (7, 10, 5, False), (7, 10, 5, True),
             (5, 7, 10, False), (1000, 64, 8, False), (41, 100, 1, False)]  # fmt: skip
    for step, n, b, drop_last in cases:
        expected = _walk(step, n, b, drop_last)
        got = candidate(step, num_samples=n, batch_size=b, drop_last=drop_last)
        assert tuple(got) == tuple(expected), (
            f"step {step} of {n} samples in batches of {b}, drop_last={drop_last}: expected {expected}, got {got} "
            f"(an epoch has {'floor' if drop_last else 'ceil'}({n}/{b}) batches)"
        )
    try:
        candidate(3, num_samples=7, batch_size=10, drop_last=True)
    except ValueError:
        pass
    else:
        raise AssertionError("7 samples in batches of 10 with drop_last=True make no batch at all: raise ValueError")


def latest_checkpoint(folder: str | os.PathLike) -> str | None:
    """Challenge solution: the path of the training state in ``folder`` with the highest step that loads safely.

    Only files named ``*.pt`` are considered (a temporary file of an interrupted `atomic_save` ends in
    ``.tmp``); a file that does not load under ``weights_only=True``, or holds no training position, is
    skipped.

    Args:
        folder: a folder of checkpoints.

    Returns:
        The path (``folder`` joined with the file's name), or ``None`` if no file qualifies.

    Raises:
        FileNotFoundError: if ``folder`` is not a folder.

    Examples:
        >>> with tempfile.TemporaryDirectory() as lab:
        ...     latest_checkpoint(lab) is None
        True
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no folder at {folder!r}")
    best: tuple[int, str] | None = None
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.endswith(".pt") or name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a truncated file, a refused pickle, not a zip at all: not a usable checkpoint
            continue
        position = checkpoint.get("position") if isinstance(checkpoint, dict) else None
        step = position.get("step") if isinstance(position, dict) else None
        if isinstance(step, int) and (best is None or step > best[0]):
            best = (step, path)
    return None if best is None else best[1]


def check_latest_checkpoint(candidate: Callable[[str], str | None]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``latest_checkpoint``."""
    import time

    from torchenstein.training.checkpoints import ALARM_LOG, TrojanSpecimen

    def state(step: int) -> dict:
        return {"model": {"w": torch.full((2,), float(step))}, "position": {"step": step, "epoch": 0, "batch_in_epoch": step}}

    with tempfile.TemporaryDirectory() as folder:
        assert candidate(folder) is None, "an empty folder holds no checkpoint: return None"
        for step in (9, 10, 11):
            atomic_save(state(step), os.path.join(folder, f"step_{step}.pt"))
        # step_11.pt is cut in half, as by a crash of a writer that was not atomic.
        with open(os.path.join(folder, "step_11.pt"), "rb") as file:
            data = file.read()
        with open(os.path.join(folder, "step_11.pt"), "wb") as file:
            file.write(data[: len(data) // 2])
        # A complete step 12, left under a temporary name by a save killed before its rename.
        torch.save(state(12), os.path.join(folder, ".step_12.pt.0123abcd.tmp"))
        # A booby-trapped file and a bare state_dict: neither is a training state.
        torch.save({"position": {"step": 99}, "gift": TrojanSpecimen("latest_checkpoint loaded me unsafely")},
                   os.path.join(folder, "step_99.pt"))  # fmt: skip
        torch.save({"w": torch.ones(2)}, os.path.join(folder, "weights.pt"))
        with open(os.path.join(folder, "notes.txt"), "w") as file:
            file.write("step_500")
        # The oldest checkpoint was touched last: the newest file is not the latest step.
        later = time.time() + 60
        os.utime(os.path.join(folder, "step_9.pt"), (later, later))
        alarms = len(ALARM_LOG)
        got = candidate(folder)
        assert len(ALARM_LOG) == alarms, "a file ran code while loading: load with weights_only=True"
        expected = os.path.join(folder, "step_10.pt")
        assert got is not None and os.path.samefile(got, expected), (
            f"expected {expected!r} (step 10: step_11.pt is truncated, the .tmp file is an unfinished save, "
            f"step_99.pt is not a safe file, and steps compare as numbers, not names or times), got {got!r}"
        )



# Argument checks, kept at the foot of the module so that the ideas above read first.


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_sampler_args(num_samples: object, batch_size: object, shuffle: object, seed: object, drop_last: object) -> None:
    _check_count("num_samples", num_samples, minimum=1)
    _check_count("batch_size", batch_size, minimum=1)
    _check_count("seed", seed, minimum=0)
    for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if drop_last and num_samples < batch_size:
        raise ValueError(f"drop_last=True with num_samples={num_samples} < batch_size={batch_size} leaves no batch")


def _check_stop(run: SpiralRun, stop_step: object) -> None:
    _check_count("stop_step", stop_step, minimum=0)
    if not run.position.step <= stop_step <= run.total_steps:
        raise ValueError(f"stop_step must lie between the run's step {run.position.step} and its "
                         f"total_steps {run.total_steps}, got {stop_step}")  # fmt: skip


def _check_stateful(name: str, value: object) -> None:
    if value is not None and not (callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None))):
        raise TypeError(f"{name} must have state_dict() and load_state_dict(), got {type(value).__name__}")


def _check_load_args(model: object, optimizer: object, scheduler: object, scaler: object, generators: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    _check_stateful("scheduler", scheduler)
    _check_stateful("scaler", scaler)
    if not isinstance(generators, Mapping) or not all(
        isinstance(k, str) and isinstance(g, torch.Generator) for k, g in generators.items()
    ):
        raise TypeError(f"generators must map names (str) to torch.Generator objects, got {generators!r}")


def _check_save_args(model, optimizer, scheduler, scaler, step, epoch, batch_in_epoch, generators, extra) -> None:
    _check_load_args(model, optimizer, scheduler, scaler, generators)
    for name, value in (("step", step), ("epoch", epoch), ("batch_in_epoch", batch_in_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")


def _check_checkpoint(checkpoint: object, path: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                      **companions: Any) -> None:
    keys = sorted(checkpoint) if isinstance(checkpoint, dict) else []
    lacking = [key for key in ("model", "optimizer", "position", "rng", "generators") if key not in keys]
    if lacking:
        raise ValueError(f"{path!r} is not a training state: it lacks the keys {lacking} (it has {keys})")
    saved, expected = checkpoint["model"], model.state_dict()
    if list(saved) != list(expected) or any(saved[k].shape != t.shape for k, t in expected.items()):
        raise ValueError(f"the model in {path!r} does not fit this model (nothing was loaded)")
    saved_groups = [len(group["params"]) for group in checkpoint["optimizer"]["param_groups"]]
    groups = [len(group["params"]) for group in optimizer.param_groups]
    if saved_groups != groups:
        raise ValueError(f"{path!r} holds an optimizer with parameter groups of sizes {saved_groups}, this "
                         f"optimizer has {groups} (nothing was loaded)")  # fmt: skip
    # A scheduler or scaler state must be restored when it was saved, and can only be when it was.
    for name in ("scheduler", "scaler"):
        if (checkpoint.get(name) is None) != (companions[name] is None):
            given = "none was passed" if companions[name] is None else "the file holds none"
            raise ValueError(f"{path!r} and the call disagree about a {name} state: {given}")
    saved_names, names = sorted(checkpoint["generators"]), sorted(companions["generators"])
    if saved_names != names:
        raise ValueError(f"{path!r} holds the generators {saved_names}, got {names}: pass every one, "
                         "or its stream restarts")  # fmt: skip
