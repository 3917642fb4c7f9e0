r"""
# Preserving Your Monster's Memories: Checkpoints That Rise Again

!!! torchenstein "The Professor speaks"
    A monster that forgets everything at every power cut is no monster; it is a very expensive space
    heater. Today we bottle its memories (`state_dict`), write them to disk without inviting strangers'
    code into the lab (`weights_only=True`), and resurrect a training run so faithfully that the next
    step comes out identical to the last bit.

**You will learn to**

- read a `state_dict`: which tensors it holds, in what order, and why they share memory with the model;
- load it back strictly or leniently, and read `missing_keys`, `unexpected_keys` and size mismatches;
- save and load with `torch.save` and `torch.load`, always with an explicit `weights_only`, and move
  tensors on load with `map_location`;
- explain why loading a pickle can run code, and watch `weights_only=True` refuse to;
- write a full training checkpoint (model, optimizer, learning-rate scheduler, gradient scaler, step and
  every random generator) atomically;
- resume training to bitwise-identical parameters, prove which pieces that takes, and say what a GPU
  needs on top.

## The specimen

Our patient is [`Specimen`][torchenstein.training.checkpoints.Specimen]: a linear layer, a `BatchNorm1d` (so it
has buffers as well as parameters), a ReLU, a dropout (so it consumes random numbers) and a linear head.
It learns a small regression task whose batches come from
[`regression_batch`][torchenstein.training.checkpoints.regression_batch], a pure function of the step number,
and [`train_steps`][torchenstein.training.checkpoints.train_steps] runs Adam on it:

```pycon
>>> import copy, os, tempfile
>>> import torch
>>> from torchenstein.training.checkpoints import Specimen, train_steps
>>> _ = torch.manual_seed(0)
>>> model = Specimen()
>>> optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
>>> losses = train_steps(model, optimizer, start=0, stop=20)
>>> losses[-1] < losses[0]
True

```

## What a `state_dict` holds

`model.state_dict()` is an `OrderedDict` from dotted names to tensors: every parameter and every
*persistent* buffer, walked through the module tree in registration order (a buffer registered with
`persistent=False` stays out, as [Building brains with nn.Module](../../nn/modules/index.md) showed). Nothing
else: no class, no code, no optimizer, no hyperparameters.

```pycon
>>> state = model.state_dict()
>>> for name, tensor in state.items():
...     print(f"{name:28} {str(tuple(tensor.shape)):8} {tensor.dtype}")
body.0.weight                (16, 4)  torch.float32
body.0.bias                  (16,)    torch.float32
body.1.weight                (16,)    torch.float32
body.1.bias                  (16,)    torch.float32
body.1.running_mean          (16,)    torch.float32
body.1.running_var           (16,)    torch.float32
body.1.num_batches_tracked   ()       torch.int64
head.weight                  (1, 16)  torch.float32
head.bias                    (1,)     torch.float32
>>> names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
>>> {"type": type(state).__name__, "parameters and buffers, nothing else": names == set(state)}
{'type': 'OrderedDict', 'parameters and buffers, nothing else': True}

```

The tensors are **detached** (no gradient history) but they are not copies: each one shares its storage
with the live parameter. Write into the dictionary and you write into the model; for a snapshot that
stays put, copy it with `copy.deepcopy` (or clone every tensor):

```pycon
>>> {"in the state_dict": state["head.bias"].requires_grad, "in the model": model.head.bias.requires_grad}
{'in the state_dict': False, 'in the model': True}
>>> state["head.bias"].data_ptr() == model.head.bias.data_ptr()
True
>>> _ = state["head.bias"].fill_(42.0)
>>> model.head.bias
Parameter containing:
tensor([42.], requires_grad=True)
>>> snapshot = copy.deepcopy(model.state_dict())
>>> _ = state["head.bias"].zero_()
>>> {"snapshot": snapshot["head.bias"], "model": model.head.bias.detach()}
{'snapshot': tensor([42.]), 'model': tensor([0.])}

```

(`model.state_dict(keep_vars=True)` hands out the `Parameter` objects themselves instead.)

## Loading: strict, missing and unexpected

`load_state_dict` copies values *into* the tensors the model already has, so the model keeps its own
memory, dtype and device. By default it is `strict`: every key must match.

```pycon
>>> twin = Specimen()
>>> twin.load_state_dict(model.state_dict())
<All keys matched successfully>
>>> _ = model.eval(), twin.eval()
>>> x = torch.randn(5, 4)
>>> {"same outputs": torch.equal(model(x), twin(x)), "same memory": twin.head.bias.data_ptr() == model.head.bias.data_ptr()}
{'same outputs': True, 'same memory': False}

```

Suppose last month's code called the head `output`. Strict loading refuses, naming every key it missed
and every key it did not expect. With `strict=False` it loads what matches and *returns* the two lists
instead of raising:

```pycon
>>> old = {name.replace("head.", "output."): t for name, t in model.state_dict().items()}
>>> twin.load_state_dict(old)
Traceback (most recent call last):
...
RuntimeError: Error(s) in loading state_dict for Specimen:
    Missing key(s) in state_dict: "head.weight", "head.bias".
    Unexpected key(s) in state_dict: "output.weight", "output.bias".
>>> twin.load_state_dict(old, strict=False)
_IncompatibleKeys(missing_keys=['head.weight', 'head.bias'], unexpected_keys=['output.weight', 'output.bias'])

```

A strict load that raises has **already copied every key that did match**: the error is reported at the
end, not checked first. A model that survived a failed load is a chimera of old and new tensors:

```pycon
>>> chimera = Specimen()
>>> try:
...     chimera.load_state_dict(old)
... except RuntimeError:
...     print("refused...")
refused...
>>> torch.equal(chimera.body[0].weight, model.body[0].weight)   # ...yet the body was overwritten
True

```

A **shape** mismatch is an error even with `strict=False`. To reuse a body under a new head (fine-tuning
for three outputs instead of one), drop the keys that do not fit, load leniently, and check that what is
missing is exactly what you meant to leave fresh:

```pycon
>>> wide = Specimen(hidden_features=32)
>>> wide.load_state_dict(model.state_dict(), strict=False)
Traceback (most recent call last):
...
RuntimeError: Error(s) in loading state_dict for Specimen:
    size mismatch for body.0.weight: copying a param with shape torch.Size([16, 4]) from checkpoint, the shape in current model is torch.Size([32, 4]).
    ...
>>> three = Specimen(out_features=3)
>>> wanted = three.state_dict()
>>> fits = {name: t for name, t in model.state_dict().items() if t.shape == wanted[name].shape}
>>> three.load_state_dict(fits, strict=False)
_IncompatibleKeys(missing_keys=['head.weight', 'head.bias'], unexpected_keys=[])

```

## To disk and back: `torch.save` and `torch.load`

`torch.save` writes any picklable object, and a `state_dict` is the thing to write. `torch.load` reads
it back as fresh tensors. Always pass `weights_only` yourself: PyTorch 2.6 changed its default from
`False` to `True`, and a course that runs on 2.4 to 2.13 must not depend on a default that moved (the
next section shows why `True` is the one you want). `map_location` says where the loaded tensors go:
a checkpoint written on `cuda:0` loads on a machine without a GPU only with one, such as `"cpu"`.
Every file here lives in a `tempfile.TemporaryDirectory`, which deletes itself on leaving the block:

```pycon
>>> from torchenstein.lab import pick_device
>>> with tempfile.TemporaryDirectory() as lab:
...     path = os.path.join(lab, "specimen.pt")
...     torch.save(model.state_dict(), path)
...     loaded = torch.load(path, map_location="cpu", weights_only=True)
...     on_device = torch.load(path, map_location=pick_device(), weights_only=True)
>>> os.path.exists(path)
False
>>> {"same keys": list(loaded) == list(model.state_dict()),
...  "same values": all(torch.equal(loaded[k], t) for k, t in model.state_dict().items())}
{'same keys': True, 'same values': True}
>>> loaded["head.bias"].data_ptr() == model.head.bias.data_ptr()   # a copy, not the model's memory
False
>>> {t.device.type for t in on_device.values()} == {pick_device().type}
True

```

The file is a zip archive: a pickle `data.pkl` that describes the structure, and one raw file per
*storage* under `data/` (so a small view of a big tensor drags the whole storage along: clone it first):

```pycon
>>> import zipfile
>>> with tempfile.TemporaryDirectory() as lab:
...     torch.save(model.state_dict(), os.path.join(lab, "specimen.pt"))
...     with zipfile.ZipFile(os.path.join(lab, "specimen.pt")) as archive:
...         inside = [name.split("/", 1)[1] for name in archive.namelist()]
>>> {"has data.pkl": "data.pkl" in inside, "storage files": sum(name.startswith("data/") for name in inside)}
{'has data.pkl': True, 'storage files': 9}

```

## A pickle is a program: why `weights_only=True`

Pickle does not store objects; it stores *instructions to rebuild them*. An object may say how it wants
to be rebuilt with `__reduce__`, returning a function and its arguments, and the unpickler **calls that
function**. Whoever wrote the file chooses the function: `os.system` would do. Our harmless stand-in is
[`TrojanSpecimen`][torchenstein.training.checkpoints.TrojanSpecimen], whose rebuild calls
[`ring_alarm`][torchenstein.training.checkpoints.ring_alarm], which only appends a line to
[`ALARM_LOG`][torchenstein.training.checkpoints.ALARM_LOG].

`weights_only=True` swaps in a restricted unpickler that rebuilds only tensors, dtypes, devices and plain
Python containers, numbers and strings, and refuses every other function or class by name before
calling anything:

```pycon
>>> import pickle
>>> from torchenstein.training.checkpoints import ALARM_LOG, TrojanSpecimen
>>> ALARM_LOG.clear()
>>> b"ring_alarm" in pickle.dumps(TrojanSpecimen("the lab is mine"))   # the file names the function
True
>>> with tempfile.TemporaryDirectory() as lab:
...     path = os.path.join(lab, "free_weights.pt")
...     torch.save({"head.weight": torch.ones(1, 16), "gift": TrojanSpecimen("the lab is mine")}, path)
...     torch.load(path, weights_only=True)
Traceback (most recent call last):
...
_pickle.UnpicklingError: Weights only load failed...Unsupported global: GLOBAL torchenstein.training.checkpoints.ring_alarm...
>>> ALARM_LOG   # the alarm never rang
[]

```

With `weights_only=False` the same file rings the alarm as it loads (the tests of this lesson check
that). Use `False` only for files you wrote yourself; for a trusted class that the restricted unpickler
does not know, `torch.serialization.add_safe_globals([TheClass])` (PyTorch 2.4 and later) allows that
one name and nothing else. Even `torch.__version__` is a `TorchVersion` object, not a `str`, so a
checkpoint that stores it must store `str(torch.__version__)`.

## A full training checkpoint

Weights alone resume nothing. To take the *same* next step, a run must also bring back:

- the **optimizer's state**: Adam keeps a step count and two running averages per parameter;
- the **learning-rate scheduler's state**, if the run has a scheduler (an object from
  `torch.optim.lr_scheduler` that changes the optimizer's learning rate step by step): its own step
  count, without which a fresh scheduler restarts the schedule, warm-up and all;
- the **gradient scaler's state** in mixed-precision training: `torch.amp.GradScaler` multiplies the
  loss by a scale it has been adjusting for thousands of steps, and a fresh one starts again from its
  initial scale;
- the **step**, which drives the data, the schedules and the logs;
- every **random generator** the next step draws from: PyTorch's CPU generator (dropout here), each CUDA
  device's generator, Python's `random` and NumPy's global generator.

[`capture_rng_state`][torchenstein.training.checkpoints.capture_rng_state] collects them in a form that loads
under `weights_only=True`. PyTorch's states are byte tensors already, and `random.getstate()` holds only
tuples, numbers and `None`. NumPy's state holds an `ndarray`, which the restricted unpickler refuses,
so its integers travel as a tensor:

```pycon
>>> import numpy as np
>>> from torchenstein.training.checkpoints import capture_rng_state
>>> state = capture_rng_state()
>>> sorted(state)
['cuda', 'numpy', 'python', 'torch']
>>> {"torch": state["torch"].dtype, "numpy keys": state["numpy"]["keys"].dtype}
{'torch': torch.uint8, 'numpy keys': torch.int64}
>>> with tempfile.TemporaryDirectory() as lab:
...     torch.save(np.random.get_state(), os.path.join(lab, "raw_numpy.pt"))
...     torch.load(os.path.join(lab, "raw_numpy.pt"), weights_only=True)
Traceback (most recent call last):
...
_pickle.UnpicklingError: Weights only load failed...Unsupported global: GLOBAL numpy...

```

The write itself must be **atomic**: a crash halfway through must leave the previous checkpoint
untouched. [`atomic_save`][torchenstein.training.checkpoints.atomic_save] writes to a temporary file in the
same folder, flushes it and asks the operating system to put it on disk (`os.fsync`), and only then
renames it over the old file with `os.replace`, which either happens completely or not at all.
[`save_checkpoint`][torchenstein.training.checkpoints.save_checkpoint] and
[`load_checkpoint`][torchenstein.training.checkpoints.load_checkpoint] put it all together. A scheduler and a
scaler are optional (our specimen trains with neither), and loading insists on getting back exactly what
was saved, so that none is forgotten:

```pycon
>>> from torchenstein.training.checkpoints import load_checkpoint, save_checkpoint
>>> with tempfile.TemporaryDirectory() as lab:
...     path = os.path.join(lab, "step20.pt")
...     save_checkpoint(path, model=model, optimizer=optimizer, step=20, extra={"lr": 0.05})
...     print(os.listdir(lab))   # no temporary file left behind
...     checkpoint = torch.load(path, map_location="cpu", weights_only=True)
['step20.pt']
>>> sorted(checkpoint)
['extra', 'model', 'optimizer', 'rng', 'scaler', 'scheduler', 'step', 'torch_version']
>>> {key: checkpoint[key] for key in ("step", "extra", "scheduler", "scaler")}
{'step': 20, 'extra': {'lr': 0.05}, 'scheduler': None, 'scaler': None}
>>> {"Adam's state": sorted(checkpoint["optimizer"]["state"][0]), "its step": checkpoint["optimizer"]["state"][0]["step"]}
{"Adam's state": ['exp_avg', 'exp_avg_sq', 'step'], 'its step': tensor(20.)}
>>> load_checkpoint(os.path.join("no", "such", "step.pt"), model=model, optimizer=optimizer)
Traceback (most recent call last):
...
FileNotFoundError: no checkpoint at 'no...such...step.pt'
>>> with tempfile.TemporaryDirectory() as lab:
...     torch.save(model.state_dict(), os.path.join(lab, "just_weights.pt"))
...     load_checkpoint(os.path.join(lab, "just_weights.pt"), model=model, optimizer=optimizer)
Traceback (most recent call last):
...
ValueError: ...just_weights.pt' is not a training checkpoint: it lacks the keys ['model', 'optimizer', 'rng', 'step']...

```

## Resurrection to the last bit

The proof. Train five steps, checkpoint, and let the original run take one more step. Then, as a new
process would, start with other random numbers and a fresh model and optimizer, load the checkpoint and
take the same step. The parameters agree **bitwise**. Load only the model and optimizer states, without
the random generators, and the dropout draws a different mask, so the step differs:

```pycon
>>> def fresh_pair():
...     fresh = Specimen()
...     return fresh, torch.optim.Adam(fresh.parameters(), lr=0.05)
>>> _ = torch.manual_seed(0)
>>> model, optimizer = fresh_pair()
>>> _ = train_steps(model, optimizer, start=0, stop=5)
>>> with tempfile.TemporaryDirectory() as lab:
...     path = os.path.join(lab, "step5.pt")
...     save_checkpoint(path, model=model, optimizer=optimizer, step=5)
...     _ = train_steps(model, optimizer, start=5, stop=6)           # the uninterrupted run
...     _ = torch.manual_seed(1234)                                  # a new process, other numbers
...     risen, risen_optimizer = fresh_pair()
...     step = load_checkpoint(path, model=risen, optimizer=risen_optimizer)
...     _ = train_steps(risen, risen_optimizer, start=step, stop=step + 1)
...     _ = torch.manual_seed(1234)                                  # yet another process...
...     amnesiac, amnesiac_optimizer = fresh_pair()                  # ...that restores no generators
...     checkpoint = torch.load(path, map_location="cpu", weights_only=True)
...     _ = amnesiac.load_state_dict(checkpoint["model"])
...     amnesiac_optimizer.load_state_dict(checkpoint["optimizer"])
...     _ = train_steps(amnesiac, amnesiac_optimizer, start=5, stop=6)
>>> {"resumed at step": step,
...  "bitwise identical": all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), risen.state_dict().values()))}
{'resumed at step': 5, 'bitwise identical': True}
>>> torch.equal(amnesiac.head.weight, model.head.weight)
False

```

![Loss per step of an uninterrupted run, of a run stopped and resumed from a full checkpoint (the two coincide exactly), and of a run resumed from the weights alone (it departs at once)](plot_resume.svg)

The data came from the step number, so it resumed for free. A shuffling `DataLoader` draws each epoch's
order when its iterator starts, from the global generator or from the `generator=` you hand it, and a
run stopped mid-epoch must also skip the batches it already saw. The simplest cure is the one used
here: make the order a function of a seed, the epoch and the step.

On a GPU, "bitwise" asks for more than the checkpoint. Some CUDA kernels (`index_add_` and scatters,
the backward of an embedding, cuBLAS matrix products with their default workspace) add partial results
in an order that depends on how the threads happen to be scheduled, so even the *same* step from the
*same* state can differ in its last bits from one run to the next. Three switches make a CUDA run
repeatable: `torch.use_deterministic_algorithms(True)`, which picks deterministic kernels (and raises
an error for an operation that has none); the environment variable `CUBLAS_WORKSPACE_CONFIG=:4096:8`
(or `:16:8`), which cuBLAS needs for deterministic products and reads when the process first uses CUDA,
so set it before that (in the shell, or at the very top of the script); and
`torch.backends.cudnn.benchmark = False`, so that cuDNN does not choose its algorithms by timing them.
Even then the resumed run must use the same hardware and the same versions of PyTorch, CUDA and cuDNN.
The CPU run above needed none of this: its kernels for this model add in a fixed order.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: pickling the whole monster"
    `torch.save(model)` pickles the *object*: the pickle records the import path of the class and
    rebuilds it by importing that path. It cannot load under `weights_only=True`, and it breaks the day
    the class is renamed or moved to another file. Save `model.state_dict()` and rebuild the model
    in code.

    ```pycon
    >>> import io
    >>> import torchenstein.training.checkpoints as lesson
    >>> buffer = io.BytesIO()
    >>> torch.save(Specimen(), buffer)
    >>> {"module path in the file": b"torchenstein.training.checkpoints" in buffer.getvalue(),
    ...  "class name in the file": b"Specimen" in buffer.getvalue()}
    {'module path in the file': True, 'class name in the file': True}
    >>> _ = buffer.seek(0)
    >>> torch.load(buffer, weights_only=True)
    Traceback (most recent call last):
    ...
    _pickle.UnpicklingError: Weights only load failed...Unsupported global: GLOBAL torchenstein.training.checkpoints.Specimen...
    >>> _ = buffer.seek(0)
    >>> del lesson.Specimen                  # next month's refactor moves the class to another file
    >>> try:
    ...     torch.load(buffer, weights_only=False)
    ... finally:
    ...     lesson.Specimen = Specimen       # (the Professor puts it back)
    Traceback (most recent call last):
    ...
    AttributeError: Can't get attribute 'Specimen' on <module 'torchenstein.training.checkpoints' from '...checkpoints.py'>

    ```

!!! hammer "Dr. Hammer's trap: `strict=False` and the silent amnesia"
    "It loaded without errors!" It did, and it left the head at its random initialisation, because the
    head was called `output` when the checkpoint was written. `strict=False` is a promise to read the
    returned keys, not permission to ignore them. Check them, or rename and load strictly.

    ```pycon
    >>> old = {name.replace("head.", "output."): t for name, t in model.state_dict().items()}
    >>> patient = Specimen().eval()
    >>> _ = model.eval()
    >>> result = patient.load_state_dict(old, strict=False)
    >>> {"missing": result.missing_keys, "same outputs": torch.equal(patient(x), model(x))}
    {'missing': ['head.weight', 'head.bias'], 'same outputs': False}
    >>> renamed = {name.replace("output.", "head.", 1): t for name, t in old.items()}
    >>> patient.load_state_dict(renamed)
    <All keys matched successfully>
    >>> torch.equal(patient(x), model(x))
    True

    ```

!!! hammer "Dr. Hammer's trap: saving the weights but not the optimizer"
    Adam's first step from an empty state moves every parameter by about the learning rate, whatever
    the gradient's size. Resuming with a fresh optimizer throws away its step count and running
    averages: the run jolts, even with every random generator restored.

    ```pycon
    >>> from torchenstein.training.checkpoints import restore_rng_state
    >>> _ = torch.manual_seed(0)
    >>> model, optimizer = fresh_pair()
    >>> _ = train_steps(model, optimizer, start=0, stop=5)
    >>> weights, rng = copy.deepcopy(model.state_dict()), capture_rng_state()
    >>> _ = train_steps(model, optimizer, start=5, stop=6)
    >>> forgetful, forgetful_optimizer = fresh_pair()
    >>> _ = forgetful.load_state_dict(weights)
    >>> restore_rng_state(rng)
    >>> _ = train_steps(forgetful, forgetful_optimizer, start=5, stop=6)
    >>> torch.equal(forgetful.head.weight, model.head.weight)
    False
    >>> {"Adam's step count": optimizer.state[model.head.weight]["step"],
    ...  "after a fresh start": forgetful_optimizer.state[forgetful.head.weight]["step"]}
    {"Adam's step count": tensor(6.), 'after a fresh start': tensor(1.)}

    ```

!!! hammer "Dr. Hammer's trap: writing over the only copy"
    `torch.save(obj, path)` opens `path` for writing at once, which empties the old file. If the save dies
    halfway (a full disk, a killed job, an object that cannot be pickled), the old checkpoint is already
    gone and the new one is garbage. `atomic_save` writes beside it and swaps only a finished file in.

    ```pycon
    >>> from torchenstein.training.checkpoints import atomic_save
    >>> class PowerCut:
    ...     def __reduce__(self):
    ...         raise OSError("the lab lost power mid-save")
    >>> with tempfile.TemporaryDirectory() as lab:
    ...     path = os.path.join(lab, "latest.pt")
    ...     torch.save({"w": torch.ones(3)}, path)
    ...     try:
    ...         torch.save({"w": torch.zeros(3), "oops": PowerCut()}, path)   # Dr. Hammer, in place
    ...     except OSError:
    ...         pass
    ...     try:
    ...         torch.load(path, weights_only=True)
    ...     except Exception:
    ...         print("the old checkpoint is lost")
    ...     atomic_save({"w": torch.ones(3)}, path)
    ...     try:
    ...         atomic_save({"w": torch.zeros(3), "oops": PowerCut()}, path)   # the Professor, atomically
    ...     except OSError as err:
    ...         print(err)
    ...     print(torch.load(path, weights_only=True)["w"], os.listdir(lab))
    the old checkpoint is lost
    the lab lost power mid-save
    tensor([1., 1., 1.]) ['latest.pt']

    ```

!!! hammer "Dr. Hammer's trap: the snapshot that keeps training"
    Keeping the best model so far as `best = model.state_dict()` keeps *references*: the optimizer updates
    the parameters in place, so "best" follows the model. Copy it.

    ```pycon
    >>> best = model.state_dict()
    >>> best_copy = copy.deepcopy(model.state_dict())
    >>> _ = train_steps(model, optimizer, start=6, stop=8)
    >>> {"best follows the model": torch.equal(best["head.weight"], model.head.weight),
    ...  "the copy follows the model": torch.equal(best_copy["head.weight"], model.head.weight)}
    {'best follows the model': True, 'the copy follows the model': False}

    ```

## Challenges

**Survive a refactor.** Checkpoints outlive code: layers get renamed, models get wrapped
(`DistributedDataParallel` prefixes every key with `module.`, `torch.compile` with `_orig_mod.`). Write
`rename_state_dict_keys(state_dict, old_prefix, new_prefix)`, returning a new ordered dict in which every
key under the submodule path `old_prefix` (that is, starting with `old_prefix + "."`) moves under
`new_prefix`, while the other keys, the order and the tensors stay as they were. The empty prefix is
the root: `("module", "")` strips a wrapper's prefix, `("", "backbone")` nests everything one level
down, and `("head", "output")` must leave `header.weight` alone. Raise `ValueError` if two keys would
end up with the same name, and do not modify the input.

Check an attempt with `check_rename_state_dict_keys(my_function)`, or put it in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's own answer passes:

```pycon
>>> from torchenstein.training.checkpoints import check_rename_state_dict_keys, rename_state_dict_keys
>>> check_rename_state_dict_keys(rename_state_dict_keys)
>>> list(rename_state_dict_keys(Specimen().state_dict(), "body", "trunk"))[:2]
['trunk.0.weight', 'trunk.0.bias']

```
"""

from __future__ import annotations

import os
import random
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Specimen(nn.Module):
    """The lesson's patient: a tiny regression network with parameters, buffers and dropout.

    ``Linear -> BatchNorm1d -> ReLU -> Dropout`` in a ``body``, then a linear ``head``. The batch norm
    brings buffers into the ``state_dict``; the dropout makes every training step draw random numbers,
    which is what makes restoring the random generators matter.

    Args:
        in_features: width of each input row.
        hidden_features: width of the hidden layer.
        out_features: width of each output row.
        p: the dropout probability.

    Examples:
        >>> Specimen()(torch.randn(3, 4)).shape   # (batch, out_features)
        torch.Size([3, 1])
    """

    def __init__(self, in_features: int = 4, hidden_features: int = 16, out_features: int = 1, p: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            nn.BatchNorm1d(hidden_features),
            nn.ReLU(),
            nn.Dropout(p),
        )
        self.head = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # (B, in) -> (B, hidden) -> (B, out)


def regression_batch(step: int, *, batch_size: int = 32, in_features: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch for a given step: a pure function of ``step``, so resuming needs no data state.

    Args:
        step: the step number, at least 0.
        batch_size: rows in the batch.
        in_features: width of each input row.

    Returns:
        ``(x, y)`` of shapes ``(batch_size, in_features)`` and ``(batch_size, 1)``, ``y = x @ w``.

    Raises:
        ValueError: if ``step`` is not a non-negative int.

    Examples:
        >>> x, y = regression_batch(3)
        >>> x.shape, y.shape
        (torch.Size([32, 4]), torch.Size([32, 1]))
        >>> torch.equal(x, regression_batch(3)[0])   # the same step, the same batch
        True
    """
    _check_step(step)
    # A private generator seeded by the step leaves the global generators alone: dropout is then the
    # only thing in training that draws from them.
    generator = torch.Generator().manual_seed(10_000 + step)
    x = torch.randn(batch_size, in_features, generator=generator)
    w = torch.linspace(-2.0, 2.0, in_features)
    return x, (x @ w).unsqueeze(-1)  # (B, in_features), (B, 1)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, *, start: int, stop: int) -> list[float]:
    """Train ``model`` on the batches of steps ``start, ..., stop - 1`` and return their losses.

    Args:
        model: a ``Specimen`` (or any module with the same ``body[0]`` and output shape).
        optimizer: the optimizer of ``model``'s parameters.
        start: the first step to take.
        stop: one past the last step.

    Returns:
        The mean squared error of each step, measured before its update.

    Raises:
        ValueError: if the steps are not ``0 <= start <= stop``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = Specimen()
        >>> len(train_steps(model, torch.optim.Adam(model.parameters()), start=0, stop=3))
        3
    """
    _check_step(start, "start")
    if not isinstance(stop, int) or stop < start:
        raise ValueError(f"stop must be an int no smaller than start={start}, got {stop!r}")
    device = next(model.parameters()).device
    model.train()
    losses = []
    for step in range(start, stop):
        x, y = (t.to(device) for t in regression_batch(step, in_features=model.body[0].in_features))
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


ALARM_LOG: list[str] = []
"""Every message [`ring_alarm`][torchenstein.training.checkpoints.ring_alarm] was called with, oldest first."""


def ring_alarm(message: str) -> str:
    """The harmless function a booby-trapped pickle calls: it only records that it was called.

    A real attack would name ``os.system`` or ``builtins.exec`` here instead.

    Returns:
        ``message``, which is therefore what unpickling a ``TrojanSpecimen`` produces.

    Examples:
        >>> ring_alarm("intruder"), ALARM_LOG.pop()
        ('intruder', 'intruder')
    """
    ALARM_LOG.append(message)
    return message


class TrojanSpecimen:
    """An object whose unpickling calls ``ring_alarm`` with ``message``: a safe model of a malicious file.

    Examples:
        >>> TrojanSpecimen("boo").__reduce__()[0] is ring_alarm
        True
    """

    def __init__(self, message: str):
        self.message = message

    def __reduce__(self):
        # Pickle stores "call this function with these arguments" and the unpickler obeys. Any function
        # importable by name could stand here.
        return ring_alarm, (self.message,)


def capture_rng_state() -> dict[str, Any]:
    """Every global random generator's state, in a form that loads under ``weights_only=True``.

    Returns:
        A dict with ``"torch"`` (the CPU generator, a byte tensor), ``"cuda"`` (one byte tensor per
        CUDA device, empty without CUDA), ``"python"`` (``random``'s state as a list) and ``"numpy"``
        (NumPy's legacy global state, its key as an int64 tensor).

    Examples:
        >>> state = capture_rng_state()
        >>> a = torch.rand(2)
        >>> restore_rng_state(state)
        >>> torch.equal(a, torch.rand(2))
        True
    """
    import numpy as np

    version, internal, gauss_next = random.getstate()
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # Python's state is plain integers already; lists and tensors are what the restricted
        # unpickler is happiest with, so the 625 numbers become one tensor.
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss_next],
        # NumPy's key is a uint32 ndarray, which weights_only refuses; an int64 tensor holds it exactly.
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put every global random generator back to ``state``, from ``capture_rng_state`` or a file.

    CUDA states are restored on the devices that exist here, so a GPU machine's checkpoint still loads on
    a CPU-only one.

    Raises:
        ValueError: if ``state`` lacks one of the four generators.

    Examples:
        >>> restore_rng_state({"torch": torch.get_rng_state()})
        Traceback (most recent call last):
        ...
        ValueError: state must hold the keys ['cuda', 'numpy', 'python', 'torch'], got ['torch']
    """
    import numpy as np

    _check_rng_state(state)
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss_next))
    saved = state["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["algorithm"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"]))


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``: either the old file or the new one.

    Args:
        obj: what to save.
        path: the file to write; its folder must exist.

    Raises:
        FileNotFoundError: if the folder of ``path`` does not exist. Whatever ``torch.save`` raises is
            raised again, after the temporary file is removed.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as lab:
        ...     atomic_save({"x": torch.arange(3)}, os.path.join(lab, "x.pt"))
        ...     torch.load(os.path.join(lab, "x.pt"), weights_only=True)
        {'x': tensor([0, 1, 2])}
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path!r}: the folder {folder!r} does not exist")
    # The temporary file sits in the same folder, because os.replace is atomic only within one file
    # system. Its random name cannot clash with a neighbour's, and mode "xb" refuses to overwrite anything.
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:
            torch.save(obj, file)
            # flush moves Python's buffer to the operating system; fsync makes the system put it on the
            # disk. Without both, a power cut after the rename could leave a renamed but empty file.
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    # On POSIX systems the rename itself lives in the folder's entry list: sync that too.
    if os.name == "posix":
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    extra: dict | None = None,
) -> None:
    """Atomically save everything needed to resume training at ``step``.

    Args:
        path: the file to write (its folder must exist).
        model: the model; its ``state_dict`` is saved.
        optimizer: its optimizer; its ``state_dict`` is saved.
        step: the number of the next step to take, a non-negative int.
        scheduler: the learning-rate scheduler, if the run has one (anything with ``state_dict``);
            ``None`` is saved when there is none.
        scaler: the mixed-precision ``GradScaler``, if the run has one; ``None`` likewise.
        extra: anything else worth keeping (a config, the best score), made of tensors and plain Python
            containers, numbers and strings so that it loads under ``weights_only=True``.

    Raises:
        TypeError: if ``model``, ``optimizer``, ``scheduler``, ``scaler`` or ``extra`` has the wrong type.
        ValueError: if ``step`` is not a non-negative int.

    Examples:
        >>> import tempfile
        >>> model = Specimen()
        >>> optimizer = torch.optim.Adam(model.parameters())
        >>> with tempfile.TemporaryDirectory() as lab:
        ...     save_checkpoint(os.path.join(lab, "c.pt"), model=model, optimizer=optimizer, step=0)
        ...     load_checkpoint(os.path.join(lab, "c.pt"), model=model, optimizer=optimizer)
        0
    """
    _check_model_and_optimizer(model, optimizer, scheduler, scaler)
    _check_step(step)
    _check_extra(extra)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        # The scheduler's step count and the scaler's loss scale: without them a resumed run restarts
        # its schedule (warm-up and all) and its loss scale from the beginning.
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "step": step,
        "rng": capture_rng_state(),
        "extra": {} if extra is None else extra,
        # torch.__version__ is a TorchVersion object, which weights_only refuses; its text is not.
        "torch_version": str(torch.__version__),
    }
    atomic_save(checkpoint, path)


def load_checkpoint(path: str | os.PathLike, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any | None = None, scaler: Any | None = None) -> int:
    """Restore a model, its optimizer, scheduler, scaler and every random generator from ``save_checkpoint``'s file.

    Everything is checked before anything is changed: a checkpoint that does not fit leaves the model
    and the optimizer as they were. Tensors are loaded to the CPU first; ``load_state_dict`` then copies
    them to wherever the model and the optimizer's state live.

    Args:
        path: the checkpoint file.
        model: a model of the same architecture.
        optimizer: an optimizer of the same kind over ``model``'s parameters.
        scheduler: the run's learning-rate scheduler; required exactly when the checkpoint holds one.
        scaler: the run's ``GradScaler``; required exactly when the checkpoint holds one.

    Returns:
        The step saved in the checkpoint: the next step to take.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        TypeError: if ``model``, ``optimizer``, ``scheduler`` or ``scaler`` has the wrong type.
        ValueError: if the file is not a training checkpoint, does not fit ``model`` and ``optimizer``,
            or holds a scheduler or scaler state that was not asked for (or lacks one that was).

    Examples:
        >>> load_checkpoint("missing.pt", model=Specimen(), optimizer=None)
        Traceback (most recent call last):
        ...
        TypeError: optimizer must be a torch.optim.Optimizer, got NoneType
    """
    _check_model_and_optimizer(model, optimizer, scheduler, scaler)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    _check_checkpoint_fits(checkpoint, path, model, optimizer, scheduler=scheduler, scaler=scaler)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    # Last of all, the random generators: nothing after this line may draw a random number.
    restore_rng_state(checkpoint["rng"])
    return checkpoint["step"]


def plot_resume(*, steps: int = 40, stop_at: int = 20) -> Figure:
    """Draw the loss of an uninterrupted run, a run resumed from a full checkpoint, and one resumed from weights.

    The caller's random generators are left exactly as they were.

    Args:
        steps: the length of each run.
        stop_at: the step at which the interrupted runs stop and resume.

    Returns:
        A figure with one axes and three curves.

    Raises:
        ValueError: if not ``0 < stop_at < steps``.

    Examples:
        >>> fig = plot_resume(steps=4, stop_at=2)
        >>> [len(ax.lines) for ax in fig.axes]   # one axes: three curves and the stop line
        [4]
    """
    import tempfile

    _check_plot_steps(steps, stop_at)

    def fresh_pair() -> tuple[Specimen, torch.optim.Adam]:
        model = Specimen()
        return model, torch.optim.Adam(model.parameters(), lr=0.05)

    callers_state = capture_rng_state()
    try:
        torch.manual_seed(0)
        model, optimizer = fresh_pair()
        first = train_steps(model, optimizer, start=0, stop=stop_at)
        with tempfile.TemporaryDirectory() as lab:
            path = os.path.join(lab, "checkpoint.pt")
            save_checkpoint(path, model=model, optimizer=optimizer, step=stop_at)
            uninterrupted = first + train_steps(model, optimizer, start=stop_at, stop=steps)
            # Each resumed run is a "new process": other random numbers, fresh objects, then the file.
            torch.manual_seed(1234)
            model, optimizer = fresh_pair()
            load_checkpoint(path, model=model, optimizer=optimizer)
            resumed = train_steps(model, optimizer, start=stop_at, stop=steps)
            torch.manual_seed(1234)
            model, optimizer = fresh_pair()
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
            weights_only_run = train_steps(model, optimizer, start=stop_at, stop=steps)
    finally:
        restore_rng_state(callers_state)
    fig, (ax,) = new_figure(1, 1, width=7.0, height=3.6)
    later = range(stop_at, steps)
    ax.plot(range(steps), uninterrupted, color=PALETTE[0], linewidth=2.5, label="uninterrupted run")
    ax.plot(later, resumed, "o", color=PALETTE[1], markersize=4, label="resumed from a full checkpoint")
    ax.plot(later, weights_only_run, "--", color=PALETTE[2], label="resumed from the weights alone")
    ax.axvline(stop_at - 0.5, color=PALETTE[6], linestyle=":", linewidth=1)
    ax.set(xlabel="step", ylabel="training loss (MSE)", yscale="log", title="Stopped and resumed at the dotted line")
    ax.legend(loc="lower left")
    return fig


def rename_state_dict_keys(state_dict: Mapping[str, torch.Tensor], old_prefix: str, new_prefix: str) -> OrderedDict:
    """Challenge solution: move every key under the submodule path ``old_prefix`` to ``new_prefix``.

    Args:
        state_dict: a ``state_dict`` (left unchanged).
        old_prefix: a dotted submodule path such as ``"head"`` or ``"module"``; ``""`` is the root.
        new_prefix: where those keys go; ``""`` is the root.

    Returns:
        A new ``OrderedDict`` with the same tensors in the same order, keys renamed. PyTorch's version
        metadata (``state_dict._metadata``) is renamed along, so modules with versioned state still load.

    Raises:
        TypeError: if ``state_dict`` is not a mapping or a prefix is not a string.
        ValueError: if a prefix ends with ``"."`` or two keys would collide.

    Examples:
        >>> state = {"module.head.weight": torch.ones(1), "module.head.bias": torch.zeros(1)}
        >>> list(rename_state_dict_keys(state, "module", ""))
        ['head.weight', 'head.bias']
    """
    _check_rename_arguments(state_dict, old_prefix, new_prefix)

    def move(key: str, *, module_path: bool = False) -> str | None:
        # A key is under a prefix only at a dot boundary: "head" owns "head.weight", not "header.weight".
        # Only a module path (a metadata key) may be the prefix itself.
        if not old_prefix:
            rest = key
        elif module_path and key == old_prefix:
            rest = ""
        elif key.startswith(old_prefix + "."):
            rest = key[len(old_prefix) + 1 :]
        else:
            return None
        return ".".join(part for part in (new_prefix, rest) if part)

    renamed: OrderedDict = OrderedDict()
    for key, tensor in state_dict.items():
        new_key = move(key) or key  # keys outside old_prefix keep their name
        if new_key in renamed:
            raise ValueError(f"renaming {old_prefix!r} to {new_prefix!r} makes two keys called {new_key!r}")
        renamed[new_key] = tensor
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        # Metadata keys are module paths (the root is ""); a moved entry overwrites a stale one.
        paths = {key: move(key, module_path=True) for key in metadata}
        kept = {key: value for key, value in metadata.items() if paths[key] is None}
        moved = {paths[key]: value for key, value in metadata.items() if paths[key] is not None}
        renamed._metadata = OrderedDict({**kept, **moved})
    return renamed


def _wrapped_state(prefix: str) -> OrderedDict:
    """A Specimen's state_dict as a wrapper holding it at ``prefix`` would produce it."""
    wrapper = nn.Module()
    wrapper.add_module(prefix, Specimen())
    return wrapper.state_dict()


def check_rename_state_dict_keys(candidate) -> None:
    """Check an attempt at `rename_state_dict_keys` on refactors, wrappers and near-miss names.

    Raises:
        AssertionError: if the candidate gets a case wrong; the message names the case.
    """
    state = Specimen().state_dict()
    near_miss = OrderedDict([("head.weight", torch.ones(2)), ("header.weight", torch.zeros(2)), ("head", torch.ones(1))])
    cases = [
        ("strip 'module.'", _wrapped_state("module"), "module", "", list(state)),
        ("nest under 'backbone'", state, "", "backbone", [f"backbone.{k}" for k in state]),
        ("rename head to output", state, "head", "output", [k.replace("head.", "output.") for k in state]),
        ("move a nested module", state, "body.1", "norm", [k.replace("body.1.", "norm.") for k in state]),
        ("'head' must not touch 'header' or a key named 'head'", near_miss, "head", "out", ["out.weight", "header.weight", "head"]),
    ]
    for label, source, old, new, expected in cases:
        before = list(source)
        got = candidate(source, old, new)
        assert isinstance(got, Mapping), f"{label}: return a mapping, got {type(got).__name__}"
        assert list(got) == expected, f"{label}: expected keys {expected}, got {list(got)}"
        assert list(source) == before, f"{label}: the input state_dict was modified"
        for (_, tensor), new_tensor in zip(source.items(), got.values(), strict=True):
            assert torch.equal(tensor, new_tensor), f"{label}: the tensors must stay the same, in the same order"
    # The stripped state must load into a bare Specimen: the refactor it exists for.
    Specimen().load_state_dict(candidate(_wrapped_state("module"), "module", ""))
    clash = OrderedDict([("a.w", torch.ones(1)), ("b.w", torch.zeros(1))])
    try:
        candidate(clash, "a", "b")
    except ValueError:
        pass
    else:
        raise AssertionError("renaming 'a' to 'b' when 'b.w' exists must raise ValueError (two keys 'b.w')")


# Argument checks, kept at the foot so that the rituals of saving and loading read first.


def _check_step(step: object, name: str = "step") -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{name} must be a non-negative int, got {step!r}")


def _check_model_and_optimizer(model: object, optimizer: object, scheduler: object = None, scaler: object = None) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for name, value in (("scheduler", scheduler), ("scaler", scaler)):
        if value is not None and not (callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None))):
            raise TypeError(f"{name} must have state_dict() and load_state_dict(), got {type(value).__name__}")


def _check_extra(extra: object) -> None:
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict or None, got {type(extra).__name__}")


def _check_checkpoint_fits(checkpoint: object, path: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                           **companions: object) -> None:
    keys = sorted(checkpoint) if isinstance(checkpoint, dict) else []
    lacking = [key for key in ("model", "optimizer", "rng", "step") if key not in keys]
    if lacking:
        raise ValueError(f"{path!r} is not a training checkpoint: it lacks the keys {lacking} (it has {keys})")
    _check_state_fits(checkpoint["model"], model.state_dict(), path)
    saved_groups = [len(group["params"]) for group in checkpoint["optimizer"]["param_groups"]]
    groups = [len(group["params"]) for group in optimizer.param_groups]
    if saved_groups != groups:
        raise ValueError(f"{path!r} holds an optimizer with parameter groups of sizes {saved_groups}, "
                         f"this optimizer has {groups}")  # fmt: skip
    # A scheduler or scaler state must be restored when it was saved, and can only be when it was: a
    # fresh scheduler would silently restart the schedule, a fresh scaler the loss scale.
    for name, companion in companions.items():
        saved = checkpoint.get(name)
        if saved is not None and companion is None:
            raise ValueError(f"{path!r} holds a {name} state: pass {name}= to restore it, or the run restarts it")
        if saved is None and companion is not None:
            raise ValueError(f"{path!r} holds no {name} state to restore into the {name} given")


def _check_state_fits(saved: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: str) -> None:
    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    sizes = [f"{key}: {tuple(saved[key].shape)} vs {tuple(t.shape)}" for key, t in expected.items()
             if key in saved and saved[key].shape != t.shape]  # fmt: skip
    if missing or unexpected or sizes:
        raise ValueError(f"the model in {path!r} does not fit this model (nothing was loaded): "
                         f"missing {missing}, unexpected {unexpected}, size mismatches {sizes}")  # fmt: skip


def _check_rng_state(state: object) -> None:
    expected = ["cuda", "numpy", "python", "torch"]
    if not isinstance(state, Mapping) or sorted(state) != expected:
        got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ValueError(f"state must hold the keys {expected}, got {got}")


def _check_plot_steps(steps: object, stop_at: object) -> None:
    if not (isinstance(steps, int) and isinstance(stop_at, int) and 0 < stop_at < steps):
        raise ValueError(f"need 0 < stop_at < steps, got stop_at={stop_at!r}, steps={steps!r}")


def _check_rename_arguments(state_dict: object, old_prefix: object, new_prefix: object) -> None:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    for name, prefix in (("old_prefix", old_prefix), ("new_prefix", new_prefix)):
        if not isinstance(prefix, str):
            raise TypeError(f"{name} must be a str, got {type(prefix).__name__}")
        if prefix.endswith("."):
            raise ValueError(f"{name} must be a module path without a trailing '.', got {prefix!r}")
