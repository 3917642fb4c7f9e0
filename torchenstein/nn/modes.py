r"""
# Train vs Eval: The Monster's Two Personalities

!!! torchenstein "The Professor speaks"
    Every creature in my laboratory has two faces. In training it is wild: it forgets at random, it
    measures every batch it meets, it jitters with noise. In evaluation it must be calm, repeatable and
    honest. One little boolean decides which face you meet, and Dr. Hammer has confused it with three other
    switches at least once a week. Today we learn exactly what it does, and what it does *not* do.

**You will learn to**

- see `train()` and `eval()` set the `training` flag on every submodule, and nothing else;
- say which modules read the flag (dropout, batch normalisation, `RReLU`, ...) and why, write your own,
  and find them all *by experiment* in any model;
- tell `eval()` from `torch.no_grad()`, and evaluate with both;
- write a context manager `evaluating(model)` that restores every submodule's own flag, come what may;
- recognise two classic bugs: a forgotten `train()`, and "freezing" with `eval()`.

## One flag, set on the whole tree

Every `nn.Module` carries a plain Python boolean, `module.training`, which starts as `True` (we met it
in [Building brains](../modules/index.md)). Calling
`model.train(mode)` sets it to `mode` on the module and, recursively, on every descendant; `model.eval()`
is simply `model.train(False)`. Both return the model itself, so they chain. Nothing else happens: no
tensor is touched, no parameter frozen, no graph switched off. The flag only matters to modules whose
`forward` reads it. [`mode_flags`][torchenstein.nn.modes.mode_flags] lists it for every submodule of a
nested model (the root is named `""`):

```pycon
>>> import torch
>>> from torch import nn
>>> from torchenstein.nn.modes import mode_flags
>>> model = nn.Sequential(
...     nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(),
...     nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 2)),
... )
>>> mode_flags(model)
{'': True, '0': True, '1': True, '2': True, '3': True, '3.0': True, '3.1': True}
>>> mode_flags(model.eval())
{'': False, '0': False, '1': False, '2': False, '3': False, '3.0': False, '3.1': False}
>>> {"train() returns the model": model.train() is model, "all training again": all(mode_flags(model).values())}
{'train() returns the model': True, 'all training again': True}

```

Calling `eval()` on one submodule changes that subtree only, and the next `train()` on the parent
overwrites it without asking: the flags are not "sticky". Remember this; it is the root of a bug below.

```pycon
>>> _ = model[3].eval()
>>> mode_flags(model)
{'': True, '0': True, '1': True, '2': True, '3': False, '3.0': False, '3.1': False}
>>> mode_flags(model.train())["3.0"]
True

```

## Who reads the flag, and why

A module reads `self.training` when it must behave differently while learning than while being used.
PyTorch's own list is short, and worth knowing by heart:

- **every dropout** (`Dropout`, `Dropout1d`/`2d`/`3d`, `AlphaDropout`, `FeatureAlphaDropout`) zeroes
  random activations in training and is the identity in evaluation (the [Dropout](../dropout/index.md)
  lesson derives why no rescaling is needed then);
- **modules with a dropout inside**: `MultiheadAttention(dropout=p)`, the Transformer layers, and the
  recurrent `RNN`, `LSTM` and `GRU` built with `num_layers > 1` and `dropout=p`, which drop between
  their layers in training only;
- **`RReLU`** draws a random negative slope in training and uses the fixed average slope in evaluation;
- **the normalisations with running statistics**: every `BatchNorm`, and `InstanceNorm1d`/`2d`/`3d`
  built with `track_running_stats=True` (by default they are built without, and then ignore the flag):
  in training they normalise with the batch's statistics and update their running estimates, in
  evaluation they use those estimates and update nothing, as
  [Normalisation](../normalization/index.md) built them;
- **`nn.TransformerEncoder`**, whose *fast path* changes what comes out at padded positions, as the
  example below shows.

The Transformer encoder is the sly one. In eval mode, with autograd off (`no_grad`, or no parameter
requiring a gradient), `batch_first=True` and a `src_key_padding_mask` (True at the padding tokens that
fill short sequences up to the batch's length), `nn.TransformerEncoder` takes a faster path: it packs the
real tokens into a *nested tensor*, whose rows may have different lengths, runs its layers on that, and
unpacks the result with zeros where the padding was. In training mode the padded positions get the
ordinary layer's numbers instead. The real positions agree; the padded ones do not, so any code that
reads them (a mean over all positions that forgets the mask, say) computes something different in the
two modes. It decides by the flag of its *first layer*, not its own:

```pycon
>>> import warnings
>>> _ = torch.manual_seed(0)
>>> layer = nn.TransformerEncoderLayer(d_model=4, nhead=2, dim_feedforward=8, dropout=0.0, batch_first=True)
>>> encoder = nn.TransformerEncoder(layer, num_layers=1)
>>> src = torch.randn(2, 3, 4)                               # (batch, positions, features)
>>> padding = torch.tensor([[False, False, True], [False, False, False]])   # sequence 0 has 2 tokens
>>> with torch.no_grad(), warnings.catch_warnings():
...     warnings.simplefilter("ignore")                        # nested tensors are a "prototype"
...     trained = encoder.train()(src, src_key_padding_mask=padding)
...     evaluated = encoder.eval()(src, src_key_padding_mask=padding)
>>> {"padded position, train": trained[0, 2].abs().sum().item() > 0,
...  "padded position, eval": evaluated[0, 2].tolist(),
...  "real positions agree": torch.allclose(trained[~padding], evaluated[~padding], atol=1e-5)}
{'padded position, train': True, 'padded position, eval': [0.0, 0.0, 0.0, 0.0], 'real positions agree': True}

```

## Your own module can read it too

Any module can have two personalities. [`NoiseInjection`][torchenstein.nn.modes.NoiseInjection] adds
Gaussian noise of standard deviation `std` while training (a cheap regulariser, and the heart of many
data-augmentation tricks) and steps aside in evaluation:

```pycon
>>> from torchenstein.nn.modes import NoiseInjection
>>> noise = NoiseInjection(std=0.5)
>>> x = torch.zeros(2, 3)
>>> {"training": noise.training, "output equals input": torch.equal(noise(x), x)}
{'training': True, 'output equals input': False}
>>> noise.eval()
NoiseInjection(std=0.5)
>>> noise(x) is x
True
>>> NoiseInjection(std=-1.0)
Traceback (most recent call last):
...
ValueError: std must be a finite number >= 0, got -1.0

```

A custom module that calls the *functional* form must pass the flag on by hand:
`torch.nn.functional.dropout(x, p)` has `training=True` as its default and will drop in evaluation too.
Write `F.dropout(x, p, training=self.training)`, always.

## Finding the two-faced modules by experiment

Rather than trust a list, ask the model. [`mode_sensitive`][torchenstein.nn.modes.mode_sensitive]
runs the model once in eval mode, recording the input each submodule receives. Then it replays each
submodule on its own input twice, with its own flag off and then on (its children stay in eval mode),
with the random generator reseeded identically before each run. A module is *mode-sensitive* on that
input when the two outputs differ, its buffers end up different, or only one of the runs raises. The
model comes back exactly as it was: flags, buffers and the global random state. A little token model
that mixes both kinds of module (the `Dropout` is the course's own, from the dropout lesson):

```pycon
>>> from torchenstein.nn.dropout import Dropout
>>> from torchenstein.nn.modes import mode_sensitive
>>> _ = torch.manual_seed(0)
>>> net = nn.Sequential(
...     nn.Embedding(10, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.RReLU(), Dropout(0.25),
...     NoiseInjection(0.1), nn.BatchNorm1d(8), nn.RMSNorm(8), nn.Linear(8, 10),
... )
>>> ids = torch.randint(0, 10, (6,))                     # (batch,): one token each
>>> net(ids).shape                                        # (batch, vocabulary)
torch.Size([6, 10])
>>> sensitive = mode_sensitive(net, ids)
>>> [(name, type(net.get_submodule(name)).__name__) for name in sensitive]
[('3', 'RReLU'), ('4', 'Dropout'), ('5', 'NoiseInjection'), ('6', 'BatchNorm1d')]
>>> [type(m).__name__ for name, m in net.named_modules() if name not in sensitive]
['Sequential', 'Embedding', 'LayerNorm', 'Linear', 'RMSNorm', 'Linear']

```

`Linear`, `Embedding`, `LayerNorm` and `RMSNorm` compute the same function in both modes: the two
normalisations use the statistics of each sample alone, never of the batch, so they have nothing to
estimate and nothing to remember. Containers such as `Sequential` never read the flag; they only pass
their children along. The answer depends on the input and on the configuration too: a dropout with
`p=0` is the identity in both modes, and a `BatchNorm` built with `track_running_stats=False` uses the
batch statistics in both.

```pycon
>>> calm = nn.Sequential(nn.Dropout(0.0), nn.BatchNorm1d(3, track_running_stats=False))
>>> mode_sensitive(calm, torch.randn(5, 3))
[]
>>> mode_sensitive(nn.BatchNorm1d(3), torch.ones(1, 3))     # a batch of one is refused only in training
['']
>>> mode_sensitive(nn.LSTM(4, 4, num_layers=2, dropout=0.5), torch.randn(3, 2, 4))
['']

```

The experiment has a blind spot, and the Transformer encoder sits in it. It flips one module's *own*
flag at a time, so a module that reads another module's flag escapes it: the encoder looks at its first
layer's flag, and flipping either one alone changes nothing. The whole model in `train()` against the
whole model in `eval()` shows the difference, as the example above did; `mode_sensitive` does not:

```pycon
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     mode_sensitive(encoder, (src, None, padding))           # (src, mask, src_key_padding_mask)
[]

```

## `eval()` is not `no_grad()`

Two switches, two jobs. `model.eval()` changes **what** the modules compute. `torch.no_grad()` changes
whether autograd **records** the computation. Neither does the other's job, which the four combinations
below show: the output still has a `grad_fn` in eval mode, and dropout still drops under `no_grad`.

```pycon
>>> model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
>>> x = torch.ones(4, 3)
>>> for mode in (True, False):
...     for grad in (True, False):
...         _ = model.train(mode)
...         with torch.set_grad_enabled(grad):
...             a, b = model(x), model(x)
...         print(f"training={mode!s:5}  grad={grad!s:5}  requires_grad={a.requires_grad!s:5}  "
...               f"repeatable={torch.equal(a, b)}")
training=True   grad=True   requires_grad=True   repeatable=False
training=True   grad=False  requires_grad=False  repeatable=False
training=False  grad=True   requires_grad=True   repeatable=True
training=False  grad=False  requires_grad=False  repeatable=True
>>> _ = model.eval()
>>> type(model(x).grad_fn).__name__                       # eval mode still records the graph
'AddmmBackward0'

```

Only the last line of the table is an evaluation: deterministic, and with no graph holding every
activation in memory. `eval()` also freezes nothing: every parameter keeps `requires_grad=True`, and an
optimiser step will move it (the last trap below).

## The right evaluation recipe

Switch the modes, switch off autograd, evaluate, switch back. `torch.inference_mode()` may stand in
for `no_grad`: it is stricter and a little faster (its tensors skip even autograd's version counters),
and in exchange autograd refuses to save its tensors for a backward pass later.

```pycon
>>> _ = model.eval()
>>> with torch.no_grad():
...     prediction = model(x)
>>> with torch.inference_mode():
...     frozen = model(x)
>>> _ = model.train()
>>> {"requires_grad": prediction.requires_grad, "inference tensor": torch.is_inference(frozen), "training again": model.training}
{'requires_grad': False, 'inference tensor': True, 'training again': True}

```

A common habit in real code remembers the root's flag, `was_training = model.training`, and ends with
`model.train(was_training)`. It is wrong whenever the model mixes modes on purpose. Fine-tuning a
network often *freezes* its `BatchNorm` layers in eval mode (small batches would make their statistics
useless); the `train(was_training)` at the end quietly wakes them up again:

```pycon
>>> net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.2))
>>> _ = net[1].eval()                                    # frozen on purpose
>>> was_training = net.training
>>> _ = net.eval()
>>> _ = net.train(was_training)
>>> net[1].training                                       # the frozen BatchNorm is awake again
True

```

## `evaluating`: restore every flag, whatever happens

[`evaluating`][torchenstein.nn.modes.evaluating] is the context manager PyTorch does not ship. On entry
it writes down each submodule's own flag and calls `eval()`; on exit it puts every flag back as it was,
module by module (never with `train()`, which would overwrite the whole subtree), and it does so in
`__exit__`, which Python runs even when the block raises. Combine it with `no_grad` in one `with`
([`mode_sensitive`][torchenstein.nn.modes.mode_sensitive] does, for its bookkeeping):

```pycon
>>> from torchenstein.nn.modes import evaluating
>>> _ = net[1].eval()                                    # freeze the BatchNorm again
>>> before = mode_flags(net)
>>> with evaluating(net) as same_net, torch.no_grad():
...     inside = mode_flags(net)
...     _ = same_net(x)
>>> {"any training inside": any(inside.values()), "flags restored": mode_flags(net) == before, "BatchNorm still frozen": not net[1].training}
{'any training inside': False, 'flags restored': True, 'BatchNorm still frozen': True}
>>> with evaluating(net):
...     raise KeyError("the validation set caught fire")
Traceback (most recent call last):
...
KeyError: 'the validation set caught fire'
>>> mode_flags(net) == before
True
>>> evaluating("net")
Traceback (most recent call last):
...
TypeError: model must be an nn.Module, got str

```

## Dr. Hammer's traps

Validating without `eval()` was the [Dropout](../dropout/index.md) lesson's trap (a noisy, pessimistic
metric) and, for `BatchNorm`, the [Normalisation](../normalization/index.md) lesson's (a test set that
leaks into the running statistics); `no_grad` cures neither, as the table above showed.

!!! hammer "Dr. Hammer's trap: forgetting to switch back"
    Dr. Hammer validates correctly, with `model.eval()`, halfway through training, and never calls
    `model.train()` again. Nothing crashes. Dropout is simply off for the rest of training, so his
    training loss falls faster (he is pleased) and his model regularises less (he will not be).
    [`fit_dropout_regressor`][torchenstein.nn.modes.fit_dropout_regressor] trains the same model twice
    with a validation pass after step 20, once switching back and once not: the two loss curves are
    identical up to the validation, and part ways after it.

    ```pycon
    >>> honest_model, honest = fit_dropout_regressor(steps=40, validate_every=20, switch_back=True)
    >>> hammer_model, hammer = fit_dropout_regressor(steps=40, validate_every=20, switch_back=False)
    >>> {"same before the validation": honest[:20] == hammer[:20], "same after": honest[20:] == hammer[20:]}
    {'same before the validation': True, 'same after': False}
    >>> {"honest dropout training": honest_model[2].training, "Hammer's dropout training": hammer_model[2].training}
    {'honest dropout training': True, "Hammer's dropout training": False}
    >>> all(h < o for h, o in zip(hammer[20:], honest[20:]))          # "look how well it trains!"
    True

    ```

[`plot_mode_bugs`][torchenstein.nn.modes.plot_mode_bugs] draws it, beside repeated validations of one
trained model with dropout left on (the noisy metric of the dropout trap):

![Left: the validation loss of one trained model over repeated evaluations, a jagged line with dropout left on well above the flat line of eval mode. Right: the training loss of two runs that validate midway, identical before it, and after it the run that forgot model.train() falls lower with dropout silently off](plot_mode_bugs.svg)

!!! hammer "Dr. Hammer's trap: freezing with `eval()`"
    To fine-tune only a head, Dr. Hammer "freezes" the backbone with `backbone.eval()`, and to be extra
    sure he does it inside `torch.no_grad()`. Neither freezes anything: the flag changes only what the
    modules compute, `no_grad` only affects the code inside its own block, and the weights still
    require gradients. The optimiser moves them at the first step. Freezing is `requires_grad_(False)`
    (plus `eval()` if the backbone has `BatchNorm` statistics to keep).

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> backbone, head = nn.Linear(4, 4), nn.Linear(4, 1)
    >>> model = nn.Sequential(backbone, nn.ReLU(), head)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x = torch.randn(8, 4)
    >>> def one_step():
    ...     before = backbone.weight.detach().clone()
    ...     optimizer.zero_grad()
    ...     model(x).pow(2).mean().backward()
    ...     optimizer.step()
    ...     return torch.equal(before, backbone.weight)
    >>> with torch.no_grad():
    ...     _ = backbone.eval()                                 # Hammer: "frozen!"
    >>> {"requires_grad": backbone.weight.requires_grad, "unchanged by a step": one_step()}
    {'requires_grad': True, 'unchanged by a step': False}
    >>> _ = backbone.requires_grad_(False)                     # the fix
    >>> {"unchanged by a step": one_step(), "no gradient": backbone.weight.grad is None}
    {'unchanged by a step': True, 'no gradient': True}

    ```

## Challenges

**1. Freeze the BatchNorms.** Write `freeze_batchnorm(model)` that puts every batch-normalisation layer
(`nn.BatchNorm1d`, `nn.BatchNorm2d`, `nn.BatchNorm3d`, `nn.SyncBatchNorm`) in eval mode and stops
gradients to its parameters (if it has any), leaving every other module's flag and every other
parameter alone, and returns the names of the frozen layers in `named_modules()` order. Raise
`TypeError` if `model` is not an `nn.Module`. Afterwards a training step must leave the running
statistics alone while dropout keeps dropping. (And mind the lesson of the first section: the next
`model.train()` wakes them up, so call it again after every `train()`.)

**2. An honest validation loss.** Write `honest_validation_loss(model, batches, loss_fn)` that returns,
as a Python float, the mean of `loss_fn(model(input), target)` over an iterable of `(input, target)`
batches, weighted by batch size (`len(target)`, assuming `loss_fn` averages over its batch). The model
must run in eval mode with autograd off, and every submodule must end in its own original mode, even when
`loss_fn` raises. Raise `ValueError` if there are no batches.

Check an attempt with `check_freeze_batchnorm(my_function)` or `check_honest_validation_loss(my_function)`,
or put your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The
Professor's answers pass:

```pycon
>>> from torchenstein.nn.modes import (
...     check_freeze_batchnorm, check_honest_validation_loss, freeze_batchnorm, honest_validation_loss)
>>> check_freeze_batchnorm(freeze_batchnorm)
>>> check_honest_validation_loss(honest_validation_loss)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Real
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def mode_flags(model: nn.Module) -> dict[str, bool]:
    """The ``training`` flag of every submodule, by its dotted name; the root is named ``""``.

    Args:
        model: any ``nn.Module``.

    Returns:
        A dict from name to flag, in ``named_modules()`` order.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.

    Examples:
        >>> mode_flags(nn.Sequential(nn.Linear(2, 2)).eval())
        {'': False, '0': False}
    """
    _require_module(model)
    return {name: module.training for name, module in model.named_modules()}


class NoiseInjection(nn.Module):
    """Add Gaussian noise of standard deviation ``std`` in training mode; the identity in eval mode.

    Args:
        std: the standard deviation of the noise, a finite number of at least 0.

    Raises:
        TypeError: if ``std`` is not a real number.
        ValueError: if ``std`` is negative or not finite.

    Examples:
        >>> layer = NoiseInjection(std=0.1)
        >>> x = torch.ones(3)
        >>> layer(x).shape
        torch.Size([3])
        >>> layer.eval()(x) is x
        True
    """

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        self.std = _check_std(std)

    def forward(self, input: Tensor) -> Tensor:
        # The whole personality switch is this one test of the flag that `train()` and `eval()` set.
        # In eval mode (or with no noise to add) the input itself comes back: no copy, no random draw.
        if not self.training or self.std == 0.0:
            return input
        return input + self.std * torch.randn_like(input)

    def extra_repr(self) -> str:
        return f"std={self.std}"


def _clone_tree(obj: Any) -> Any:
    """A copy of ``obj`` in which every tensor, also inside tuples, lists and dicts, is cloned."""
    if isinstance(obj, Tensor):
        return obj.clone()
    if isinstance(obj, (tuple, list)):
        return type(obj)(_clone_tree(item) for item in obj)
    if isinstance(obj, dict):
        return {key: _clone_tree(value) for key, value in obj.items()}
    return obj


def _same(a: Any, b: Any) -> bool:
    """Whether two outputs agree: floating tensors up to rounding, other tensors exactly, containers item by item."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or a.is_nested != b.is_nested:
            return False
        if a.is_nested:
            # A nested tensor (rows of different lengths, as the Transformer's fast path makes) has no
            # single shape: compare it row by row.
            return _same(list(a.unbind()), list(b.unbind()))
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        exact = not (a.is_floating_point() or a.is_complex())
        return torch.equal(a, b) if exact else torch.allclose(a, b, equal_nan=True)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return a == b


def _buffer_slots(module: nn.Module) -> list[tuple[nn.Module, str, Tensor]]:
    """Every buffer below ``module``: its owner, its name and the tensor in that slot now."""
    return [(owner, name, buffer) for owner in module.modules() for name, buffer in owner.named_buffers(recurse=False)]


def _restore_buffers(slots: list[tuple[nn.Module, str, Tensor]], values: list[Tensor]) -> None:
    # Put back the very tensor objects (a forward may have replaced one) and then their old values.
    with torch.no_grad():
        for (owner, name, buffer), value in zip(slots, values, strict=True):
            setattr(owner, name, buffer)
            buffer.copy_(value)


def _cuda_devices(model: nn.Module, tensors: Iterable[Any]) -> list[int]:
    found = [t for t in (*model.parameters(), *model.buffers(), *tensors) if isinstance(t, Tensor) and t.is_cuda]
    return sorted({t.device.index if t.device.index is not None else torch.cuda.current_device() for t in found})


def _outcome(module: nn.Module, args: tuple, kwargs: dict, seed: int) -> tuple[str, Any]:
    """Run ``module`` on fresh copies of its recorded input, from a fixed seed; an exception is an outcome too."""
    torch.manual_seed(seed)
    try:
        return "output", _clone_tree(module(*_clone_tree(args), **_clone_tree(kwargs)))
    except Exception as err:  # a module may refuse an input in one mode only; that is a difference
        return "error", type(err).__name__


def mode_sensitive(model: nn.Module, input: Tensor | tuple, *, seed: int = 0) -> list[str]:
    """Find the submodules whose own ``training`` flag changes what they do on the input ``model`` gives them.

    Args:
        model: any ``nn.Module``; it is left exactly as found (flags, buffers, the global random state).
        input: the model's input: a tensor, or a tuple of positional arguments.
        seed: the seed set before each replay, so randomness that ignores the flag cancels out.

    Returns:
        The dotted names (the root is ``""``), in ``named_modules()`` order, of the submodules that give a
        different output, leave different buffers, or raise in one mode only, when replayed on the input
        they received in an eval-mode forward with only their own flag switched. Submodules the forward
        never calls are not tested.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or ``input`` is neither a tensor nor a tuple.

    Examples:
        >>> mode_sensitive(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)), torch.ones(2, 3))
        ['1']
        >>> mode_sensitive(nn.Linear(3, 3), [1.0, 2.0, 3.0])
        Traceback (most recent call last):
        ...
        TypeError: input must be a tensor or a tuple of positional arguments, got list
    """
    _require_module(model)
    _require_input(input)
    args = (input,) if isinstance(input, Tensor) else input
    slots = _buffer_slots(model)
    saved = [buffer.detach().clone() for _, _, buffer in slots]
    recorded: dict[nn.Module, tuple[tuple, dict]] = {}

    def record(module: nn.Module, module_args: tuple, module_kwargs: dict) -> None:
        # A pre-hook sees the input before the module can change it in place. A module called several
        # times (a shared layer) is tested on its first input.
        recorded.setdefault(module, (_clone_tree(module_args), _clone_tree(module_kwargs)))

    named = list(model.named_modules())
    handles = [module.register_forward_pre_hook(record, with_kwargs=True) for _, module in named]
    devices = _cuda_devices(model, args)
    found = []
    # Everything happens on a forked random state, in eval mode, without a graph, and is undone after.
    with torch.random.fork_rng(devices=devices), evaluating(model), torch.no_grad():
        try:
            torch.manual_seed(seed)
            model(*_clone_tree(args))
        finally:
            for handle in handles:
                handle.remove()
        _restore_buffers(slots, saved)
        for name, module in named:
            if module not in recorded:
                continue
            module_args, module_kwargs = recorded[module]
            # The module's own flag off, then on; its children stay in eval mode throughout.
            eval_run = _outcome(module, module_args, module_kwargs, seed)
            eval_buffers = [buffer.clone() for _, _, buffer in _buffer_slots(module)]
            _restore_buffers(slots, saved)
            module.training = True
            train_run = _outcome(module, module_args, module_kwargs, seed)
            train_buffers = [buffer.clone() for _, _, buffer in _buffer_slots(module)]
            module.training = False
            _restore_buffers(slots, saved)
            if not (_same(eval_run, train_run) and _same(eval_buffers, train_buffers)):
                found.append(name)
    return found


class evaluating:
    """A context manager that puts ``model`` in eval mode and restores each submodule's own flag on exit.

    The flags are restored module by module, so a submodule that was deliberately in eval mode (a frozen
    ``BatchNorm``) stays so, and they are restored even when the block raises. Modules added to the
    model inside the block keep whatever flag they have.

    Args:
        model: any ``nn.Module``.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        RuntimeError: if the same ``evaluating`` object is entered again before it has exited.

    Examples:
        >>> model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(2))
        >>> _ = model[1].eval()
        >>> with evaluating(model) as m:
        ...     print({"same model": m is model, "root training": model.training, "dropout training": model[0].training})
        {'same model': True, 'root training': False, 'dropout training': False}
        >>> mode_flags(model)
        {'': True, '0': True, '1': False}
    """

    def __init__(self, model: nn.Module) -> None:
        _require_module(model)
        self.model = model
        self._saved: list[tuple[nn.Module, bool]] | None = None

    def __enter__(self) -> nn.Module:
        if self._saved is not None:
            raise RuntimeError("this evaluating(...) is already active; nest a new evaluating(model) instead")
        # Each module's own flag, written down before `eval()` overwrites the whole tree.
        self._saved = [(module, module.training) for module in self.model.modules()]
        self.model.eval()
        return self.model

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> bool:
        saved, self._saved = self._saved or [], None
        # Assign the flags one by one: `module.train(flag)` would recurse and overwrite the children.
        for module, training in saved:
            module.training = training
        # Returning False lets an exception raised inside the block continue on its way.
        return False


def noisy_regression(n: int = 256, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""A toy regression set: $y = \sin(x \cdot w) + 0.1\,\varepsilon$, with one fixed $w$ for every seed.

    Args:
        n: the number of samples.
        seed: seed of a private generator; the global one is left alone.

    Returns:
        ``(x, y)`` of shapes ``(n, 8)`` and ``(n, 1)``.

    Examples:
        >>> x, y = noisy_regression(5)
        >>> x.shape, y.shape
        (torch.Size([5, 8]), torch.Size([5, 1]))
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=generator)
    w = torch.linspace(-1.0, 1.0, 8)
    y = torch.sin(x @ w)[:, None] + 0.1 * torch.randn(n, 1, generator=generator)  # (n, 1)
    return x, y


def fit_dropout_regressor(
    *, steps: int = 100, p: float = 0.3, seed: int = 0, validate_every: int | None = None, switch_back: bool = True
) -> tuple[nn.Sequential, list[float]]:
    """Train a small MLP with two dropout layers on 256 samples of [`noisy_regression`][torchenstein.nn.modes.noisy_regression].

    Args:
        steps: the number of full-batch Adam steps.
        p: the drop probability of both dropout layers.
        seed: seeds the data, the weights and the masks; the global random state is left as it was.
        validate_every: validate (eval mode, ``no_grad``) after every this many steps; ``None``: never.
        switch_back: whether to call ``model.train()`` after each validation.

    Returns:
        The trained model, in whatever mode training left it, and the training loss of every step.

    Raises:
        ValueError: if ``steps`` is below 1 or ``validate_every`` is below 1.

    Examples:
        >>> model, losses = fit_dropout_regressor(steps=3)
        >>> {"steps": len(losses), "training": model.training}
        {'steps': 3, 'training': True}
        >>> model[2]
        Dropout(p=0.3, inplace=False)
    """
    _check_schedule(steps, validate_every)
    x, y = noisy_regression(256, seed=seed)
    x_val, y_val = noisy_regression(128, seed=seed + 1)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 32), nn.ReLU(), nn.Dropout(p),
                              nn.Linear(32, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for step in range(steps):
            loss = F.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if validate_every is not None and (step + 1) % validate_every == 0:
                # The textbook validation pass; the only question is whether training resumes in
                # training mode afterwards.
                model.eval()
                with torch.no_grad():
                    F.mse_loss(model(x_val), y_val)
                if switch_back:
                    model.train()
    return model, losses


def plot_mode_bugs(*, evaluations: int = 40, steps: int = 100, validate_every: int = 20, seed: int = 0) -> Figure:
    """Draw two of Dr. Hammer's traps: validation with dropout on, and training after a forgotten ``train()``.

    Args:
        evaluations: how many times (left) the same validation set is evaluated.
        steps: training steps of the [`fit_dropout_regressor`][torchenstein.nn.modes.fit_dropout_regressor]
            evaluated on the left; the runs on the right train for ``2 * validate_every`` steps.
        validate_every: the step (right) after which both runs validate.
        seed: seeds the training runs and the dropout masks of the evaluations.

    Returns:
        A figure with two axes.

    Examples:
        >>> fig = plot_mode_bugs(evaluations=3, steps=2, validate_every=2)
        >>> len(fig.axes)
        2
    """
    model, _ = fit_dropout_regressor(steps=steps, seed=seed)
    x_val, y_val = noisy_regression(128, seed=seed + 1)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        noisy = [F.mse_loss(model(x_val), y_val).item() for _ in range(evaluations)]  # still training mode
        with evaluating(model):
            honest = [F.mse_loss(model(x_val), y_val).item() for _ in range(evaluations)]
    fig, (left, right) = new_figure(1, 2, width=11.0, height=3.8)
    runs = range(1, evaluations + 1)
    left.plot(runs, noisy, marker="o", markersize=3, color=PALETTE[2], label="dropout on (Hammer: no eval())")
    left.axhline(sum(noisy) / evaluations, color=PALETTE[2], linestyle="--", linewidth=1, label="its mean")
    left.plot(runs, honest, marker="o", markersize=3, color=PALETTE[1], label="model.eval() + no_grad()")
    left.set(xlabel="evaluation of one model on one validation set", ylabel="validation MSE", ylim=(0, None))
    left.set_title("Validating with dropout on: noisy and pessimistic")
    left.legend(fontsize=8)
    # The same run twice, validating once midway; only the switch back to training mode differs.
    runs = {back: fit_dropout_regressor(steps=2 * validate_every, seed=seed, validate_every=validate_every,
                                        switch_back=back)[1] for back in (True, False)}
    step_numbers = range(1, 2 * validate_every + 1)
    right.plot(step_numbers, runs[True], color=PALETTE[1], label="eval(), validate, train()")
    right.plot(step_numbers, runs[False], color=PALETTE[2], linestyle="--", label="eval(), validate, ... (Hammer)")
    right.axvline(validate_every, color=PALETTE[6], linewidth=1, linestyle=":")
    right.set(xlabel="training step (dotted: validation)", ylabel="training MSE", ylim=(0, None))
    right.set_title("Forgetting train(): dropout silently off afterwards")
    right.legend(fontsize=8)
    return fig


# The four batch-normalisation classes the challenge names.
_BATCHNORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze_batchnorm(model: nn.Module) -> list[str]:
    """Challenge solution: put every BatchNorm layer in eval mode and stop the gradients to its parameters.

    Args:
        model: any ``nn.Module``; every other module's flag and parameter is left alone.

    Returns:
        The dotted names of the frozen layers, in ``named_modules()`` order.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.1))
        >>> freeze_batchnorm(model)
        ['1']
        >>> {"BatchNorm training": model[1].training, "its weight learns": model[1].weight.requires_grad,
        ...  "Dropout training": model[2].training}
        {'BatchNorm training': False, 'its weight learns': False, 'Dropout training': True}
    """
    _require_module(model)
    frozen = []
    for name, module in model.named_modules():
        if isinstance(module, _BATCHNORM_TYPES):
            # `eval()` on the layer alone keeps its running statistics still; its affine weight and bias
            # (absent when affine=False) stop learning separately: the flag does not touch them.
            module.eval()
            module.requires_grad_(False)
            frozen.append(name)
    return frozen


def check_freeze_batchnorm(candidate: Callable) -> None:
    """Check an attempt at `freeze_batchnorm` on nested, affine-free and convolutional BatchNorms.

    Raises:
        AssertionError: if the candidate freezes the wrong modules or parameters, or too few.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5),
                              nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6, affine=False)), nn.Linear(6, 2))
        model[5].requires_grad_(False)  # frozen beforehand: must stay frozen
        names = candidate(model)
        assert names == ["1", "4.1"], f"expected the names ['1', '4.1'], got {names!r}"
        for name, flag in mode_flags(model).items():
            expected = name not in ("1", "4.1")
            assert flag == expected, f"module {name!r} should be in {'train' if expected else 'eval'} mode"
        for name, param in model.named_parameters():
            expected = not name.startswith(("1.", "5."))
            assert param.requires_grad == expected, f"{name} should {'still train' if expected else 'be frozen'}"
        stats = [t.clone() for t in (model[1].running_mean, model[1].running_var, model[4][1].running_mean)]
        x = torch.randn(16, 4) * 3 + 2
        first, second = model(x), model(x)
        after = (model[1].running_mean, model[1].running_var, model[4][1].running_mean)
        assert all(torch.equal(a, b) for a, b in zip(stats, after, strict=True)), "the running statistics moved"
        assert not torch.equal(first, second), "dropout must keep dropping: leave the other modules in train mode"
        conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sequential(nn.BatchNorm3d(1)))
        assert candidate(conv) == ["1", "2.0"], "BatchNorm2d and BatchNorm3d are batch norms too"
        assert conv[0].training and conv[0].weight.requires_grad, "a convolution is not a batch norm"
        plain = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
        assert candidate(plain) == [], "LayerNorm has no batch statistics: there is nothing to freeze"
        assert all(mode_flags(plain).values()), "a model without BatchNorm must stay in train mode"
    try:
        candidate("model")
    except TypeError:
        return
    raise AssertionError("a model that is not an nn.Module should raise TypeError")


def honest_validation_loss(
    model: nn.Module, batches: Iterable[tuple[Any, Tensor]], loss_fn: Callable[[Any, Tensor], Tensor]
) -> float:
    """Challenge solution: the batch-size-weighted mean validation loss, in eval mode and without a graph.

    Args:
        model: any ``nn.Module``; every submodule ends in its original mode, even if something raises.
        batches: an iterable of ``(input, target)`` pairs.
        loss_fn: returns the mean loss of one batch, e.g. ``torch.nn.functional.mse_loss``.

    Returns:
        The mean loss per sample over all batches, as a float.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        ValueError: if ``batches`` holds no samples.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 1), nn.Dropout(0.5))
        >>> batches = [(torch.ones(3, 2), torch.zeros(3, 1)), (torch.ones(1, 2), torch.zeros(1, 1))]
        >>> a = honest_validation_loss(model, batches, F.mse_loss)
        >>> {"repeatable": a == honest_validation_loss(model, batches, F.mse_loss), "training again": model.training}
        {'repeatable': True, 'training again': True}
    """
    _require_module(model)
    total, count = 0.0, 0
    with evaluating(model), torch.no_grad():
        for input, target in batches:
            # `loss_fn` averages over its batch; weighting by the batch size makes a short last batch
            # count as much per sample as the others.
            total += loss_fn(model(input), target).item() * len(target)
            count += len(target)
    if count == 0:
        raise ValueError("batches must hold at least one sample, got none")
    return total / count


class _GradProbe(nn.Module):
    """Remembers whether autograd was recording during its last forward."""

    def __init__(self) -> None:
        super().__init__()
        self.recording: bool | None = None

    def forward(self, input: Tensor) -> Tensor:
        self.recording = torch.is_grad_enabled()
        return input


def check_honest_validation_loss(candidate: Callable) -> None:
    """Check an attempt at `honest_validation_loss` on dropout, BatchNorm, mixed modes and uneven batches.

    Raises:
        AssertionError: if the candidate's loss, the model's modes or its statistics come out wrong.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = _GradProbe()
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), probe, nn.Linear(4, 1))
        model[1].running_mean.fill_(0.5)
        model[1].running_var.fill_(2.0)
        model[1].eval()  # a frozen BatchNorm: its flag must come back False
        flags = mode_flags(model)
        x, y = torch.randn(7, 3), torch.randn(7, 1)
        batches = [(x[:3], y[:3]), (x[3:6], y[3:6]), (x[6:], y[6:])]
        with evaluating(model), torch.no_grad():
            expected = F.mse_loss(model(x), y).item()
        stats = (model[1].running_mean.clone(), model[1].num_batches_tracked.clone())
        got = candidate(model, batches, F.mse_loss)
        assert isinstance(got, float), f"return a Python float, got {type(got).__name__}"
        assert math.isclose(got, expected, rel_tol=1e-5), (
            f"expected the eval-mode loss over all 7 samples, {expected:.6f}, got {got:.6f} "
            "(eval mode? batches weighted by their size?)"
        )
        assert probe.recording is False, "autograd was recording: evaluate under torch.no_grad()"
        assert mode_flags(model) == flags, f"every module must end in its own mode {flags}, got {mode_flags(model)}"
        assert torch.equal(stats[0], model[1].running_mean), "BatchNorm's running mean changed: evaluate in eval mode"
        assert torch.equal(stats[1], model[1].num_batches_tracked), "BatchNorm counted batches: evaluate in eval mode"
        model.train()

        try:
            candidate(model, batches, lambda output, target: 1 / 0)
        except ZeroDivisionError:
            pass
        else:
            raise AssertionError("an exception raised by loss_fn must reach the caller")
        assert all(mode_flags(model).values()), "after an exception every module must be back in train mode"
    try:
        candidate(model, [], F.mse_loss)
    except ValueError:
        return
    raise AssertionError("an empty iterable of batches should raise ValueError")


# Argument checks, kept at the foot so that the two personalities above read first.


def _require_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def _require_input(input: object) -> None:
    if not isinstance(input, (Tensor, tuple)):
        raise TypeError(f"input must be a tensor or a tuple of positional arguments, got {type(input).__name__}")


def _check_std(std: object) -> float:
    if isinstance(std, bool) or not isinstance(std, Real):
        raise TypeError(f"std must be a real number, got {type(std).__name__}")
    if not math.isfinite(std) or std < 0:
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    return float(std)


def _check_schedule(steps: object, validate_every: object) -> None:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if validate_every is not None and validate_every < 1:
        raise ValueError(f"validate_every must be None or at least 1, got {validate_every}")
