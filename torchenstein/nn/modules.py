r"""
# Building Brains: The Anatomy of nn.Module

!!! torchenstein "The Professor speaks"
    A tensor is a thought; a module is a brain that keeps its thoughts in labelled jars. Every network
    you will ever build, from my humble two-layer specimens to the largest Transformers, is an
    `nn.Module` holding parameters, buffers and smaller modules. Today we open the skull, find the
    filing cabinet that makes it all work, and then build that cabinet again with our own hands.

**You will learn to**

- write a module: state in `__init__`, computation in `forward`, and call it as `model(x)`;
- tell a parameter (learned) from a buffer (kept, moved and saved, but never learned), and decide
  whether a buffer belongs in the `state_dict`;
- see how `Module.__setattr__` files every assignment into `_parameters`, `_buffers` or `_modules`;
- walk the tree with `named_parameters`, `named_buffers`, `children` and `named_modules`;
- initialise with `apply`, move and cast with `to`, switch modes with `train`/`eval`, freeze with
  `requires_grad_` and count what is left to train;
- rebuild the whole registration trick from scratch, and prove it files everything exactly as PyTorch does.

## A module is state plus a forward

Our specimen for the whole lesson is a small [`Brain`][torchenstein.nn.modules.Brain]. Its neurons are
[`Lobe`][torchenstein.nn.modules.Lobe]s, each an affine map $y = xW^\top + b$ with its own weight and
bias (the [linear layers](../linear/index.md) lesson studies this map properly; here it is simply the
smallest thing worth learning). The constructor creates the state; `forward` says what to compute.
You never call `forward` yourself: you call the module, and `nn.Module.__call__` runs any *hooks*
registered on it (little spies that the Advanced part studies) around your `forward`.

```pycon
>>> import torch
>>> from torch import nn
>>> from torchenstein.nn.modules import Brain, Lobe
>>> _ = torch.manual_seed(0)
>>> brain = Brain(in_features=3, hidden_features=4, out_features=2)
>>> brain
Brain(
  (encoder): Lobe(in_features=3, out_features=4)
  (block): Sequential(
    (0): Lobe(in_features=4, out_features=4)
    (1): ReLU()
  )
  (decoder): Lobe(in_features=4, out_features=2)
)
>>> x = torch.randn(5, 3)   # (batch, in_features)
>>> brain(x).shape          # (batch, out_features)
torch.Size([5, 2])

```

The printout lists the submodules and nothing else. The rest of the state is hidden in three places:
*parameters*, *buffers* and plain attributes.

## Parameters: tensors wearing a name tag

`nn.Parameter` is a subclass of `torch.Tensor` whose only real talents are that `requires_grad` is `True`
by default and that a module *recognises its type*. Assigning one as an attribute of a module is enough
to register it: no list to append to, no registry to call.

```pycon
>>> lobe = Lobe(3, 4)
>>> w = lobe.weight
>>> {"Tensor": isinstance(w, torch.Tensor), "Parameter": isinstance(w, nn.Parameter), "requires_grad": w.requires_grad, "leaf": w.is_leaf}
{'Tensor': True, 'Parameter': True, 'requires_grad': True, 'leaf': True}
>>> [name for name, _ in lobe.named_parameters()]
['weight', 'bias']
>>> type(w * 2).__name__   # arithmetic on a Parameter gives a plain tensor, not a new Parameter
'Tensor'

```

Once a name is a parameter, the module guards it: assigning a plain tensor to it is refused. To change
the *values*, write into the parameter under `torch.no_grad()`:

```pycon
>>> lobe.weight = torch.zeros(4, 3)
Traceback (most recent call last):
...
TypeError: cannot assign 'torch.FloatTensor' as parameter 'weight' (torch.nn.Parameter or None expected)
>>> with torch.no_grad():
...     _ = lobe.weight.zero_().fill_diagonal_(1.0)
>>> {"sum": lobe.weight.sum().item(), "same object": lobe.weight is w}
{'sum': 3.0, 'same object': True}

```

## Buffers: state that is not learned

Some state must travel with the model but must never feel a gradient: running statistics, counters,
masks, lookup tables. That is a **buffer**, made with `register_buffer(name, tensor, persistent=True)`.
A persistent buffer is saved in the `state_dict` (the module's memories on disk, studied in
[Preserving your monster's memories](../../training/checkpoints/index.md)); a non-persistent one moves with the
model but is left out of it, because it can be rebuilt or is not worth keeping. The `Brain` has three:
a running mean of its inputs, an integer counter of batches, and a scratch copy of its last hidden
activity that nobody needs to save:

```pycon
>>> [(name, tuple(b.shape), b.dtype) for name, b in brain.named_buffers()]
[('input_mean', (3,), torch.float32), ('num_batches_tracked', (), torch.int64), ('last_activity', (4,), torch.float32)]
>>> {"batches": brain.num_batches_tracked.item(), "requires_grad": brain.num_batches_tracked.requires_grad}
{'batches': 1, 'requires_grad': False}
>>> list(brain.state_dict())
['temperature', 'input_mean', 'num_batches_tracked', 'encoder.weight', 'encoder.bias', 'block.0.weight', 'block.0.bias', 'decoder.weight', 'decoder.bias']
>>> "last_activity" in brain.state_dict()
False

```

The counter says 1: the call in the first example ran `forward` once, in training mode, and it
updated the buffers as it went.

## Submodules, and the filing trick

How does `brain.encoder = Lobe(3, 4)` inside `__init__` make `encoder` appear in the printout, the
parameter list and the `state_dict`? `nn.Module` overrides `__setattr__`. Every assignment is inspected
and filed by the type of the value: a `Parameter` goes into the dict `_parameters`, a `Module` into
`_modules`, a tensor assigned to a name already registered as a buffer (or, in recent releases, an
`nn.Buffer`) into `_buffers`, and everything else (numbers, strings, plain tensors) into the ordinary
instance `__dict__`. `__getattr__`, which Python consults only when normal lookup fails, then finds the
filed objects again. Each module owns its own three dicts, holding only its *direct* members:

```pycon
>>> {"_parameters": list(brain._parameters), "_buffers": list(brain._buffers), "_modules": list(brain._modules)}
{'_parameters': ['temperature'], '_buffers': ['input_mean', 'num_batches_tracked', 'last_activity'], '_modules': ['encoder', 'block', 'decoder']}
>>> brain._non_persistent_buffers_set
{'last_activity'}
>>> {"encoder in __dict__": "encoder" in vars(brain), "momentum in __dict__": "momentum" in vars(brain)}
{'encoder in __dict__': False, 'momentum in __dict__': True}
>>> brain.encoder is brain._modules["encoder"]
True
>>> list(brain.block._modules)
['0', '1']

```

Note the `temperature` parameter: it is created *last* in `Brain.__init__`, yet it comes first in the
`state_dict`. Order follows the tree, not the source, as the next section shows.

## Walking the tree

The recursive views all walk the module tree in the same order: a module first, then its children
in the order they were assigned, each child's subtree before the next child. `named_parameters()`
lists each module's own parameters at the moment the walk reaches it, so names grow dotted paths such
as `block.0.weight` (the `0` is the first member of an `nn.Sequential`, met properly in
[Franken-stacking](../containers/index.md)). `children()` yields only the direct submodules;
`modules()` and `named_modules()` yield the whole tree, the module itself first under the name `""`.

```pycon
>>> [(name, tuple(p.shape)) for name, p in brain.named_parameters()]
[('temperature', ()), ('encoder.weight', (4, 3)), ('encoder.bias', (4,)), ('block.0.weight', (4, 4)), ('block.0.bias', (4,)), ('decoder.weight', (2, 4)), ('decoder.bias', (2,))]
>>> [name for name, _ in brain.named_children()]
['encoder', 'block', 'decoder']
>>> [name for name, _ in brain.named_modules()]
['', 'encoder', 'block', 'block.0', 'block.1', 'decoder']

```

[`plot_module_tree`][torchenstein.nn.modules.plot_module_tree] draws that tree, with each module's own
parameters and the total of its whole subtree:

![The module tree of the Brain: the root, its encoder, block and decoder, and the block's Lobe and ReLU, each labelled with its own and total parameter counts](plot_module_tree.svg)

## apply, to, train and eval

`apply(fn)` calls `fn` on every module of the tree, which is the classic way to initialise: test the
type, then write into the parameters. Unlike `named_modules`, it visits the children *before* their
parent (each child's whole subtree first, the module itself last):

```pycon
>>> visited = []
>>> _ = brain.apply(lambda module: visited.append(type(module).__name__))
>>> visited
['Lobe', 'Lobe', 'ReLU', 'Sequential', 'Lobe', 'Brain']
>>> def init_lobes(module):
...     if isinstance(module, Lobe):
...         nn.init.normal_(module.weight, std=0.02)
...         nn.init.zeros_(module.bias)
>>> _ = brain.apply(init_lobes)
>>> all(lobe.bias.eq(0).all() for lobe in brain.modules() if isinstance(lobe, Lobe))
True

```

`to()` moves parameters and buffers together. For a dtype cast the parameter objects stay the same
(only their data is replaced), so an optimiser built before the cast still holds the right objects,
but not the right *state*: its running averages keep the old dtype (see the trap "casting under a live
optimiser"). Move and cast the model first, then build the optimiser. A dtype cast touches only
*floating point* tensors: the integer counter keeps its `int64`, as it must. The `meta` device, which
stores shapes but no data, shows a move on any machine:

```pycon
>>> weight = brain.encoder.weight
>>> _ = brain.to(torch.float64)
>>> brain.encoder.weight is weight
True
>>> {"weight": weight.dtype, "input_mean": brain.input_mean.dtype, "num_batches_tracked": brain.num_batches_tracked.dtype}
{'weight': torch.float64, 'input_mean': torch.float64, 'num_batches_tracked': torch.int64}
>>> ghost = Brain().to("meta")
>>> {t.device.type for t in [*ghost.parameters(), *ghost.buffers()]}
{'meta'}
>>> brain.to(torch.int64)
Traceback (most recent call last):
...
TypeError: nn.Module.to only accepts floating point or complex dtypes, but got desired dtype=torch.int64

```

`train()` and `eval()` set the `training` flag on the module and every descendant. Modules such as
dropout and batch normalisation read it; so does our `Brain`, which updates its running mean only while
training. The [Train vs eval](../modes/index.md) lesson looks closer.

```pycon
>>> _ = brain.eval()
>>> {name: m.training for name, m in brain.named_modules()}
{'': False, 'encoder': False, 'block': False, 'block.0': False, 'block.1': False, 'decoder': False}
>>> before = brain.num_batches_tracked.item()
>>> _ = brain(torch.randn(2, 3, dtype=torch.float64))
>>> brain.num_batches_tracked.item() == before   # no update in eval mode
True
>>> {"train() returns the module": brain.train() is brain, "child training again": brain.block[1].training}
{'train() returns the module': True, 'child training again': True}

```

Freezing is per parameter: `requires_grad_(False)` on a module switches it off for every parameter
below it. Counting is a sum of `numel()`:

```pycon
>>> sum(p.numel() for p in brain.parameters())
47
>>> _ = brain.encoder.requires_grad_(False)
>>> sum(p.numel() for p in brain.parameters() if p.requires_grad)
31

```

## From scratch: the registration trick, rebuilt

[`TinyParameter`][torchenstein.nn.modules.TinyParameter] is a tensor subclass made the way
`nn.Parameter` is made, and [`TinyModule`][torchenstein.nn.modules.TinyModule] is the filing cabinet:
a `__setattr__` that sorts assignments into `_parameters`, `_buffers` and `_modules`, a `__getattr__`
that finds them, and the recursive walks, `apply`, `to`, `train`/`eval`, `requires_grad_` and
`state_dict` on top, with PyTorch's names and PyTorch's order (its `__call__` has no hooks: it simply
calls `forward`). [`TinyBrain`][torchenstein.nn.modules.TinyBrain] is the `Brain`'s code with
`nn.Module`, `nn.Parameter`, `nn.Sequential` and `nn.ReLU` swapped for their tiny twins. Seeded alike,
the two are built from the same random numbers, so they must agree on every name, shape and output:

```pycon
>>> from torchenstein.nn.modules import TinyBrain
>>> _ = torch.manual_seed(0)
>>> real = Brain()
>>> _ = torch.manual_seed(0)
>>> tiny = TinyBrain()
>>> def layout(named):
...     return [(name, tuple(t.shape), t.dtype) for name, t in named]
>>> layout(tiny.named_parameters()) == layout(real.named_parameters())
True
>>> {"buffers": layout(tiny.named_buffers()) == layout(real.named_buffers()),
...  "state_dict keys": list(tiny.state_dict()) == list(real.state_dict())}
{'buffers': True, 'state_dict keys': True}
>>> [name for name, _ in tiny.named_modules()] == [name for name, _ in real.named_modules()]
True
>>> x = torch.randn(6, 3)
>>> {"output": torch.equal(tiny(x), real(x)), "running mean": torch.equal(tiny.input_mean, real.input_mean)}
{'output': True, 'running mean': True}
>>> tiny.weight = torch.zeros(2)     # an unregistered name: an ordinary attribute, like nn.Module's
>>> "weight" in dict(tiny.named_parameters())
False
>>> tiny.temperature = torch.ones(())
Traceback (most recent call last):
...
TypeError: cannot assign 'Tensor' as parameter 'temperature' (TinyParameter or None expected)

```

The tests prove much more: random trees of modules with shared children and tied parameters, the order
of `apply`, casting with `to`, and the errors.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the plain tensor"
    Dr. Hammer gives his layer a weight with `torch.randn(..., requires_grad=True)`. It computes, it
    even gets gradients, but the module never filed it: the optimiser built from `parameters()` never
    updates it, the `state_dict` never saves it, and `to()` never moves it.

    ```pycon
    >>> class HammerLobe(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.weight = torch.randn(2, 3, requires_grad=True)   # a plain tensor: not registered
    ...         self.bias = nn.Parameter(torch.zeros(2))
    >>> hammer = HammerLobe()
    >>> {"parameters": [name for name, _ in hammer.named_parameters()], "state_dict": list(hammer.state_dict())}
    {'parameters': ['bias'], 'state_dict': ['bias']}
    >>> hammer.to(torch.float64).weight.dtype
    torch.float32
    >>> class FixedLobe(HammerLobe):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.weight = nn.Parameter(torch.randn(2, 3))
    >>> [name for name, _ in FixedLobe().named_parameters()]
    ['bias', 'weight']

    ```

!!! hammer "Dr. Hammer's trap: no `super().__init__()`"
    Skip the parent constructor and the filing cabinet is never built, so the very first submodule
    assignment fails.

    ```pycon
    >>> class Headless(nn.Module):
    ...     def __init__(self):
    ...         self.encoder = Lobe(3, 4)
    >>> Headless()
    Traceback (most recent call last):
    ...
    AttributeError: cannot assign module before Module.__init__() call

    ```

!!! hammer "Dr. Hammer's trap: calling `forward` directly"
    `model.forward(x)` computes the same numbers as `model(x)` but bypasses `__call__`, and with it every
    hook, including those that profilers, pruning and some parallel wrappers rely on.

    ```pycon
    >>> calls = []
    >>> handle = brain.register_forward_hook(lambda module, args, output: calls.append(output.shape))
    >>> x = torch.randn(4, 3, dtype=torch.float64)
    >>> _ = brain(x)
    >>> _ = brain.forward(x)
    >>> len(calls)
    1
    >>> handle.remove()

    ```

!!! hammer "Dr. Hammer's trap: a constant filed as a parameter"
    Dr. Hammer stores a fixed normalising mean as an `nn.Parameter`. It now sits in `parameters()`, the
    optimiser gets it, and the first step quietly "learns" his constant away. A buffer keeps it constant,
    and still saved and moved with the model.

    ```pycon
    >>> class HammerNormaliser(nn.Module):
    ...     def __init__(self, mean):
    ...         super().__init__()
    ...         self.mean = nn.Parameter(mean)
    ...     def forward(self, x):
    ...         return x - self.mean
    >>> hammer = HammerNormaliser(torch.zeros(2))
    >>> [name for name, _ in hammer.named_parameters()]
    ['mean']
    >>> optimiser = torch.optim.SGD(hammer.parameters(), lr=0.5)
    >>> hammer(torch.ones(2)).pow(2).sum().backward()
    >>> optimiser.step()
    >>> hammer.mean.tolist()   # the constant has moved
    [1.0, 1.0]
    >>> class FixedNormaliser(HammerNormaliser):
    ...     def __init__(self, mean):
    ...         nn.Module.__init__(self)   # skip the parent's __init__, keep its forward
    ...         self.register_buffer("mean", mean)
    >>> fixed = FixedNormaliser(torch.zeros(2))
    >>> {"parameters": list(fixed.parameters()), "state_dict": list(fixed.state_dict()), "cast": fixed.to(torch.float64).mean.dtype}
    {'parameters': [], 'state_dict': ['mean'], 'cast': torch.float64}

    ```

!!! hammer "Dr. Hammer's trap: casting under a live optimiser"
    Ten steps into training, Dr. Hammer decides he wants float64 and calls `model.to(torch.float64)`.
    The parameters are the same objects, so his Adam optimiser still holds them; but Adam's *state*,
    the two running averages it keeps per parameter, was made in float32 and `to()` never touches it.
    The next step mixes the two dtypes and crashes. (SGD with momentum does not crash: it silently keeps
    its momentum in float32.) Cast first and build the optimiser after; if the optimiser must survive,
    reload its own state: `load_state_dict` casts the saved averages to each parameter's dtype.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> lobe = Lobe(3, 2)
    >>> optimiser = torch.optim.Adam(lobe.parameters(), lr=0.1)
    >>> def step(dtype):
    ...     optimiser.zero_grad()
    ...     lobe(torch.randn(4, 3, dtype=dtype)).pow(2).sum().backward()
    ...     optimiser.step()
    >>> step(torch.float32)
    >>> _ = lobe.to(torch.float64)
    >>> {"weight": lobe.weight.dtype, "Adam's exp_avg": optimiser.state[lobe.weight]["exp_avg"].dtype}
    {'weight': torch.float64, "Adam's exp_avg": torch.float32}
    >>> step(torch.float64)
    Traceback (most recent call last):
    ...
    RuntimeError: expected dtype float for `end` but got dtype double
    >>> optimiser.load_state_dict(optimiser.state_dict())   # the fix: the state follows the parameters
    >>> step(torch.float64)
    >>> optimiser.state[lobe.weight]["exp_avg"].dtype
    torch.float64

    ```

## Challenges

1. **Count the neurons.** Write `count_parameters(module, trainable_only=False)` returning the number of
   scalar parameters in an `nn.Module` (only those with `requires_grad` when `trainable_only` is true).
   A parameter shared by two submodules counts once; buffers do not count at all. Raise `TypeError` if
   `module` is not an `nn.Module`.
2. **Freeze a lobe.** Write `freeze_by_prefix(module, prefix)` that sets `requires_grad` to `False` on
   every parameter whose dotted name is `prefix` or lies below it, and returns those names in
   `named_parameters()` order. A prefix matches whole names only: `"encoder"` freezes
   `encoder.weight` but not `encoder2.weight`; the empty prefix freezes everything. Leave the other
   parameters as they were. Raise `TypeError` if `prefix` is not a string.

Check an attempt with `check_count_parameters(my_function)` and `check_freeze_by_prefix(my_function)`,
or put both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's own
answers pass:

```pycon
>>> from torchenstein.nn.modules import check_count_parameters, check_freeze_by_prefix
>>> from torchenstein.nn.modules import count_parameters, freeze_by_prefix
>>> check_count_parameters(count_parameters)
>>> check_freeze_by_prefix(freeze_by_prefix)
>>> freeze_by_prefix(Brain(), "block")
['block.0.weight', 'block.0.bias']

```
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Lobe(nn.Module):
    r"""An affine map $y = xW^\top + b$: the smallest module worth learning.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.

    Examples:
        >>> lobe = Lobe(3, 2)
        >>> lobe(torch.ones(4, 3)).shape
        torch.Size([4, 2])
        >>> [name for name, _ in lobe.named_parameters()]
        ['weight', 'bias']
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        # Plain integers: `__setattr__` leaves them in the ordinary instance dictionary.
        self.in_features = in_features
        self.out_features = out_features
        # Parameters: assigning them is all it takes to register them. The weight is scaled by
        # 1/sqrt(in_features) so the outputs start at about the size of the inputs.
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * in_features**-0.5)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias  # (..., out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Brain(nn.Module):
    """The lesson's specimen: parameters at two depths, three kinds of buffer and a nested block.

    In training mode each call updates a running mean of the inputs (which it subtracts) and counts
    batches; the output logits are divided by a learned ``temperature``.

    Args:
        in_features: size of each input sample.
        hidden_features: width of the hidden layers.
        out_features: size of each output sample.
        momentum: weight of the newest batch in the running mean.

    Examples:
        >>> brain = Brain(in_features=3, hidden_features=5, out_features=2)
        >>> brain(torch.randn(7, 3)).shape
        torch.Size([7, 2])
        >>> brain.num_batches_tracked.item()
        1
    """

    def __init__(self, in_features: int = 3, hidden_features: int = 4, out_features: int = 2, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        # Each submodule is filed into `_modules` under the attribute's name, in assignment order.
        self.encoder = Lobe(in_features, hidden_features)
        self.block = nn.Sequential(Lobe(hidden_features, hidden_features), nn.ReLU())
        self.decoder = Lobe(hidden_features, out_features)
        # Buffers: moved and cast with the module, never trained. The last one is left out of the
        # state_dict, because it is only a scratch copy of the most recent activity.
        self.register_buffer("input_mean", torch.zeros(in_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0))
        self.register_buffer("last_activity", torch.zeros(hidden_features), persistent=False)
        self.temperature = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # Running statistics are bookkeeping, not learning: no graph is recorded for them.
            with torch.no_grad():
                self.input_mean.lerp_(x.reshape(-1, x.shape[-1]).mean(0), self.momentum)
                self.num_batches_tracked.add_(1)
        h = self.block(self.encoder(x - self.input_mean))  # (..., hidden_features)
        # Assigning a tensor to a name that is already a buffer replaces the buffer.
        self.last_activity = h.detach().reshape(-1, h.shape[-1]).mean(0)
        return self.decoder(h) / self.temperature  # (..., out_features)


def plot_module_tree(*, model: nn.Module | TinyModule | None = None) -> Figure:
    """Draw a model's module tree, each box with its own and its subtree's parameter counts.

    Args:
        model: an ``nn.Module`` or a [`TinyModule`][torchenstein.nn.modules.TinyModule]; by default a
            fresh [`Brain`][torchenstein.nn.modules.Brain].

    Returns:
        A matplotlib figure with one axes.

    Raises:
        TypeError: if ``model`` is neither kind of module.

    Examples:
        >>> fig = plot_module_tree(model=Lobe(2, 2))
        >>> len(fig.axes)
        1
        >>> plot_module_tree(model="brain")
        Traceback (most recent call last):
        ...
        TypeError: model must be an nn.Module or a TinyModule, got str
    """
    from matplotlib.patches import Patch

    if model is None:
        model = Brain()
    if not isinstance(model, (nn.Module, TinyModule)):
        raise TypeError(f"model must be an nn.Module or a TinyModule, got {type(model).__name__}")
    names = dict(model.named_modules())
    # Lay the tree out: leaves take consecutive x positions in walking order, a parent sits above the
    # middle of its children, and the depth is the number of dots in the name, plus one.
    x_of: dict[str, float] = {}
    next_leaf = [0.0]

    def place(name: str, module: Any) -> float:
        kids = [f"{name}.{child}" if name else child for child, _ in module.named_children()]
        # A module shared by two parents is walked only once, under its first name.
        positions = [place(kid, names[kid]) for kid in kids if kid in names]
        if positions:
            x_of[name] = sum(positions) / len(positions)
        else:
            x_of[name], next_leaf[0] = next_leaf[0], next_leaf[0] + 1
        return x_of[name]

    place("", model)
    depth = {name: name.count(".") + 1 if name else 0 for name in names}
    width, height = max(x_of.values()) + 1, max(depth.values()) + 1
    fig, (ax,) = new_figure(width=max(6.5, 2.0 * width + 1.0), height=1.3 * height + 0.6)
    for name, module in names.items():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        total = sum(p.numel() for p in module.parameters())
        buffers = len(list(module.buffers(recurse=False)))
        for kid in (f"{name}.{child}" if name else child for child, _ in module.named_children()):
            if kid in names:
                ax.plot([x_of[name], x_of[kid]], [-depth[name], -depth[kid]], color="#999999", zorder=1)
        # Purple: holds parameters of its own; blue: only its descendants do; grey: none at all.
        colour = PALETTE[0] if own else PALETTE[3] if total else PALETTE[6]
        label = f"{name or '(root)'}\n{type(module).__name__}\nown {own} / total {total}"
        if buffers:
            label += f"\n+ {buffers} buffer{'s' if buffers > 1 else ''}"
        ax.text(x_of[name], -depth[name], label, ha="center", va="center", fontsize=8, color="white", zorder=2,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": colour, "edgecolor": "white"})
    kinds = ("parameters of its own", "parameters below it only", "no parameters")
    ax.legend(handles=[Patch(color=c, label=k) for c, k in zip((PALETTE[0], PALETTE[3], PALETTE[6]), kinds, strict=True)],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, fontsize=8)
    total = sum(p.numel() for p in model.parameters())
    ax.set(xlim=(-0.7, width - 0.3), ylim=(-height + 0.4, 0.6),
           title=f"The module tree of {type(model).__name__}: {total} parameters")
    ax.axis("off")
    return fig


class TinyParameter(torch.Tensor):
    """A tensor that a [`TinyModule`][torchenstein.nn.modules.TinyModule] files as a parameter, made as
    `nn.Parameter` is made.

    It is called as ``TinyParameter(data=None, requires_grad=True)``, like ``nn.Parameter``: ``data`` is
    the tensor to wrap (it shares its storage and becomes a leaf; an empty tensor by default) and
    ``requires_grad`` says whether autograd records operations on it. Both arrive in ``__new__``, since
    a tensor is built before any ``__init__`` could run.

    Raises:
        TypeError: if ``data`` is not a tensor. Where it differs from PyTorch: ``nn.Parameter`` fails
            there with an ``AttributeError`` (a list has no ``detach``), which names no argument.

    Examples:
        >>> p = TinyParameter(torch.ones(2))
        >>> {"Tensor": isinstance(p, torch.Tensor), "requires_grad": p.requires_grad, "leaf": p.is_leaf, "p * 2": type(p * 2).__name__}
        {'Tensor': True, 'requires_grad': True, 'leaf': True, 'p * 2': 'Tensor'}
    """

    # Operations on a parameter return plain tensors. Without this line `x @ weight` would be a
    # TinyParameter as well, and assigning any result to a module would register a new parameter.
    __torch_function__ = torch._C._disabled_torch_function_impl

    def __new__(cls, data: torch.Tensor | None = None, requires_grad: bool = True) -> TinyParameter:
        if data is None:
            data = torch.empty(0)
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"data must be a torch.Tensor, got {type(data).__name__}")
        # A new tensor object of this class over the same storage, detached from any graph.
        return torch.Tensor._make_subclass(cls, data, requires_grad)


class TinyModule:
    """The registration trick of `nn.Module`, rebuilt: parameters, buffers and submodules filed on assignment.

    Subclass it as you would `nn.Module`: call ``super().__init__()``, assign parameters and modules,
    register buffers and define `forward`. Names, order and deduplication follow PyTorch.

    Examples:
        >>> cabinet = TinyModule()
        >>> cabinet.gain, cabinet.child, cabinet.note = TinyParameter(torch.ones(2)), TinyReLU(), torch.ones(2)
        >>> {"_parameters": list(cabinet._parameters), "_modules": list(cabinet._modules), "__dict__ has": [k for k in ("note", "gain") if k in vars(cabinet)]}
        {'_parameters': ['gain'], '_modules': ['child'], '__dict__ has': ['note']}
    """

    training: bool

    def __init__(self) -> None:
        # The filing cabinet. `object.__setattr__` puts these straight into the instance dictionary,
        # because our own `__setattr__` below expects them to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", {})

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        buffers = self.__dict__.get("_buffers")
        # A parameter is filed by its type, under whatever name it arrives with, and the name is taken
        # away from every other store, so that one name means one thing.
        if isinstance(value, TinyParameter):
            if params is None:
                raise AttributeError("cannot assign parameters before TinyModule.__init__() call")
            self._forget(name)
            params[name] = value
        # A name already filed as a parameter accepts only a parameter or None (an empty slot).
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__!r} as parameter {name!r} (TinyParameter or None expected)")
            params[name] = None
        # The same two rules for modules, then the rule for names already filed as buffers.
        elif isinstance(value, TinyModule):
            if modules is None:
                raise AttributeError("cannot assign module before TinyModule.__init__() call")
            self._forget(name)
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__!r} as child module {name!r} (TinyModule or None expected)")
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(f"cannot assign {type(value).__name__!r} as buffer {name!r} (torch.Tensor or None expected)")
            buffers[name] = value
        # Everything else, a plain tensor included, is an ordinary attribute, invisible to the walks.
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Python calls this only when ordinary lookup fails: that is, for the names filed away above.
        for store in ("_parameters", "_buffers", "_modules"):
            members = self.__dict__.get(store, {})
            if name in members:
                return members[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _forget(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def register_buffer(self, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        """File ``tensor`` as a buffer named ``name``, in the `state_dict` only if ``persistent``.

        Raises:
            AttributeError: if ``TinyModule.__init__`` has not run yet.
            TypeError: if ``name`` is not a string or ``tensor`` is neither a tensor nor None.
            KeyError: if ``name`` is empty, dotted or already another attribute (PyTorch's exception
                types, case by case).
        """
        _check_buffer(self, name, tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass defines its own."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # nn.Module runs its hooks around this line; ours has none, so a call is just `forward`.
        return self.forward(*args, **kwargs)

    def named_modules(self, memo: set[int] | None = None, prefix: str = "") -> Iterator[tuple[str, TinyModule]]:
        """Every module of the tree, this one first (named ``prefix``), each shared module once."""
        # Pre-order: a module, then each child's whole subtree in assignment order. The memo of ids
        # makes a module reached by two paths appear once, under the first path.
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[TinyModule]:
        """Every module of the tree, in the order of `named_modules`."""
        return (module for _, module in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, TinyModule]]:
        """The direct submodules only, each once."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[TinyModule]:
        """The direct submodules only, each once."""
        return (module for _, module in self.named_children())

    def _named_members(self, store: str, prefix: str, recurse: bool) -> Iterator[tuple[str, torch.Tensor]]:
        # Walk the modules in `named_modules` order and list each one's own members, skipping empty
        # slots and any tensor met before (a tied weight is one parameter, however many names it has).
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, TinyParameter]]:
        """Every parameter with its dotted name, each tensor once."""
        return self._named_members("_parameters", prefix, recurse)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[TinyParameter]:
        """Every parameter, in the order of `named_parameters`."""
        return (param for _, param in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
        """Every buffer, persistent or not, with its dotted name, each tensor once."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[torch.Tensor]:
        """Every buffer, in the order of `named_buffers`."""
        return (buffer for _, buffer in self.named_buffers(recurse=recurse))

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers by dotted name, detached, as `nn.Module.state_dict` orders them."""
        # Each module writes its own parameters, then its persistent buffers, then each child's state
        # in turn: so a parameter of the root comes before everything in its children. Unlike the
        # walks above, nothing is deduplicated: a shared module is saved under each of its names.
        state = {}
        for name, param in self._parameters.items():
            if param is not None:
                state[prefix + name] = param.detach()
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers_set:
                state[prefix + name] = buffer.detach()
        for name, module in self._modules.items():
            if module is not None:
                state.update(module.state_dict(prefix=f"{prefix}{name}."))
        return state

    def apply(self, fn: Callable[[TinyModule], Any]) -> TinyModule:
        """Call ``fn`` on every child's subtree first, then on this module; return this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, device: torch.device | str | torch.dtype | None = None, dtype: torch.dtype | None = None) -> TinyModule:
        """Move every parameter and buffer to ``device``, and cast the floating-point ones to ``dtype``.

        ``module.to(torch.float64)`` works too: a dtype given first is taken as the dtype.

        Raises:
            TypeError: if ``dtype`` is neither floating point nor complex.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        if dtype is not None and not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"dtype must be a floating point or complex dtype, got {dtype}")

        def convert(t: torch.Tensor) -> torch.Tensor:
            # Integer and boolean tensors (counters, masks, indices) keep their dtype.
            return t.to(device=device, dtype=dtype if t.is_floating_point() or t.is_complex() else None)

        with torch.no_grad():
            for module in self.modules():
                for name, param in module._parameters.items():
                    if param is None:
                        continue
                    moved = convert(param)
                    # Where the new data can live inside the old tensor object (a dtype cast, or CPU to
                    # CUDA), only the data is replaced: whoever holds the parameter, an optimiser say,
                    # still holds it. Otherwise (CPU to meta) PyTorch files a new Parameter, and so do we.
                    if torch._has_compatible_shallow_copy_type(param, moved):
                        param.data = moved
                    else:
                        module._parameters[name] = TinyParameter(moved, param.requires_grad)
                    # The gradient travels with its parameter.
                    if param.grad is not None:
                        module._parameters[name].grad = convert(param.grad)
                for name, buffer in module._buffers.items():
                    if buffer is not None:
                        module._buffers[name] = convert(buffer)
        return self

    def train(self, mode: bool = True) -> TinyModule:
        """Set the ``training`` flag on this module and every descendant; return this module.

        Raises:
            ValueError: if ``mode`` is not a bool.
        """
        if not isinstance(mode, bool):
            raise ValueError(f"mode must be a bool, got {mode!r}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> TinyModule:
        """``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> TinyModule:
        """Switch gradient tracking on or off for every parameter of the tree; return this module."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self


class TinyLobe(TinyModule):
    """[`Lobe`][torchenstein.nn.modules.Lobe] on the from-scratch module system: the same lines, other base.

    Examples:
        >>> [(name, tuple(p.shape)) for name, p in TinyLobe(3, 2).named_parameters()]
        [('weight', (2, 3)), ('bias', (2,))]
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = TinyParameter(torch.randn(out_features, in_features) * in_features**-0.5)
        self.bias = TinyParameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias  # (..., out_features)


class TinyReLU(TinyModule):
    """A module with no state at all: it returns ``x.relu()``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu()


class TinySequential(TinyModule):
    """Modules called one after another, filed under the names ``"0"``, ``"1"``, ... as `nn.Sequential` files them.

    Examples:
        >>> [name for name, _ in TinySequential(TinyLobe(2, 2), TinyReLU()).named_modules()]
        ['', '0', '1']
    """

    def __init__(self, *modules: TinyModule) -> None:
        super().__init__()
        # `setattr` takes any string as a name, even "0", which the dot syntax cannot spell.
        for index, module in enumerate(modules):
            setattr(self, str(index), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x


class TinyBrain(TinyModule):
    """[`Brain`][torchenstein.nn.modules.Brain] on the from-scratch module system: the same lines, other bases.

    Examples:
        >>> [name for name, _ in TinyBrain().named_modules()]
        ['', 'encoder', 'block', 'block.0', 'block.1', 'decoder']
    """

    def __init__(self, in_features: int = 3, hidden_features: int = 4, out_features: int = 2, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.encoder = TinyLobe(in_features, hidden_features)
        self.block = TinySequential(TinyLobe(hidden_features, hidden_features), TinyReLU())
        self.decoder = TinyLobe(hidden_features, out_features)
        self.register_buffer("input_mean", torch.zeros(in_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0))
        self.register_buffer("last_activity", torch.zeros(hidden_features), persistent=False)
        self.temperature = TinyParameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.input_mean.lerp_(x.reshape(-1, x.shape[-1]).mean(0), self.momentum)
                self.num_batches_tracked.add_(1)
        h = self.block(self.encoder(x - self.input_mean))  # (..., hidden_features)
        self.last_activity = h.detach().reshape(-1, h.shape[-1]).mean(0)
        return self.decoder(h) / self.temperature  # (..., out_features)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Challenge solution: the number of scalar parameters in a module's tree.

    Args:
        module: any ``nn.Module``.
        trainable_only: count only the parameters with ``requires_grad``.

    Returns:
        The total ``numel()`` of the distinct parameters; buffers do not count.

    Raises:
        TypeError: if ``module`` is not an ``nn.Module``.

    Examples:
        >>> count_parameters(Lobe(3, 4))
        16
        >>> count_parameters(Lobe(3, 4).requires_grad_(False), trainable_only=True)
        0
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    # parameters() already yields a tied parameter once, so a sum over it counts each weight once.
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _assert_type_error(call: Callable[[], object], message: str) -> None:
    try:
        call()
    except TypeError:
        return
    raise AssertionError(message)


def _tied_pair() -> nn.Module:
    # Two layers sharing one weight (the trick of tied embeddings): 6 + 3 + 3 parameters, not 18.
    pair = nn.Sequential(nn.Linear(2, 3), nn.Linear(2, 3))
    pair[1].weight = pair[0].weight
    return pair


def _half_frozen_brain() -> nn.Module:
    brain = Brain()
    brain.encoder.requires_grad_(False)
    return brain


def _shared_layer() -> nn.Module:
    layer = nn.Linear(3, 3)
    return nn.Sequential(layer, nn.ReLU(), layer)


# (description, model builder, trainable_only, expected count)
_COUNT_CASES = (
    ("Brain()", Brain, False, 47),
    ("Brain() with a frozen encoder", _half_frozen_brain, False, 47),
    ("Brain() with a frozen encoder", _half_frozen_brain, True, 31),
    ("two Linear(2, 3) with a tied weight", _tied_pair, False, 12),
    ("the same Linear(3, 3) used twice", _shared_layer, False, 12),
    ("BatchNorm1d(4), which also has three buffers", lambda: nn.BatchNorm1d(4), False, 8),
    ("BatchNorm1d(4, affine=False): buffers only", lambda: nn.BatchNorm1d(4, affine=False), False, 0),
    ("Identity()", nn.Identity, True, 0),
    ("a (3, 0) weight and a (3,) bias", lambda: nn.ParameterList([torch.empty(3, 0), torch.zeros(3)]), False, 3),
)


def check_count_parameters(candidate: Callable) -> None:
    """Check an attempt at `count_parameters` on frozen, tied, shared and buffer-only modules.

    Raises:
        AssertionError: if the candidate miscounts; the message names the module.
    """
    for description, build, trainable_only, expected in _COUNT_CASES:
        got = candidate(build(), trainable_only=trainable_only)
        assert isinstance(got, int) and not isinstance(got, bool), f"return a Python int, got {got!r} for {description}"
        assert got == expected, f"{description} (trainable_only={trainable_only}): expected {expected}, got {got}"
    assert candidate(Brain()) == 47, "trainable_only must default to False"
    _assert_type_error(lambda: candidate(torch.ones(3)), "a tensor is not an nn.Module: raise TypeError")


def freeze_by_prefix(module: nn.Module, prefix: str) -> list[str]:
    """Challenge solution: stop training every parameter whose dotted name is ``prefix`` or lies below it.

    Args:
        module: any ``nn.Module``.
        prefix: a dotted name such as ``"block"`` or ``"block.0.weight"``; ``""`` matches everything.

    Returns:
        The names frozen, in ``named_parameters()`` order.

    Raises:
        TypeError: if ``module`` is not an ``nn.Module`` or ``prefix`` is not a string.

    Examples:
        >>> brain = Brain()
        >>> freeze_by_prefix(brain, "decoder")
        ['decoder.weight', 'decoder.bias']
        >>> freeze_by_prefix(brain, 0)
        Traceback (most recent call last):
        ...
        TypeError: prefix must be a str, got int
    """
    _check_freeze_arguments(module, prefix)
    frozen = []
    for name, param in module.named_parameters():
        # Match whole components: "encoder" is above "encoder.weight" but not above "encoder2.weight".
        if prefix == "" or name == prefix or name.startswith(prefix + "."):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def _freeze_specimen() -> nn.Module:
    specimen = nn.Module()
    specimen.encoder = nn.Linear(2, 2)
    specimen.encoder2 = nn.Linear(2, 2)
    specimen.block = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    specimen.decoder = nn.Linear(2, 1)
    # Frozen beforehand: an attempt must leave it frozen, whatever the prefix.
    specimen.decoder.bias.requires_grad_(False)
    return specimen


_FREEZE_CASES = (
    ("encoder", ["encoder.weight", "encoder.bias"]),
    ("block.2", ["block.2.weight", "block.2.bias"]),
    ("block", ["block.0.weight", "block.0.bias", "block.2.weight", "block.2.bias"]),
    ("encoder.weight", ["encoder.weight"]),
    ("enc", []),
    ("", ["encoder.weight", "encoder.bias", "encoder2.weight", "encoder2.bias", "block.0.weight", "block.0.bias",
          "block.2.weight", "block.2.bias", "decoder.weight", "decoder.bias"]),
)


def check_freeze_by_prefix(candidate: Callable) -> None:
    """Check an attempt at `freeze_by_prefix` on whole-name matches, nested blocks and the empty prefix.

    Raises:
        AssertionError: if the candidate freezes the wrong parameters or returns the wrong names.
    """
    for prefix, expected in _FREEZE_CASES:
        specimen = _freeze_specimen()
        got = candidate(specimen, prefix)
        assert isinstance(got, list), f"return a list of names, got {got!r}"
        assert got == expected, f"prefix {prefix!r}: expected the names {expected}, got {got}"
        for name, param in specimen.named_parameters():
            should_train = name not in expected and name != "decoder.bias"
            assert param.requires_grad == should_train, (
                f"prefix {prefix!r}: {name} should {'still train' if should_train else 'be frozen'}")
    _assert_type_error(lambda: candidate(_freeze_specimen(), None), "a prefix that is not a string: raise TypeError")


# Argument checks, kept down here so that the module system above reads as the idea it is.


def _check_buffer(module: TinyModule, name: object, tensor: object) -> None:
    # The same checks, in the same order and with the same exception types, as nn.Module's own:
    # a KeyError for a name that cannot be an attribute key, a TypeError for a value of the wrong type.
    if "_buffers" not in module.__dict__:
        raise AttributeError("cannot assign buffer before TinyModule.__init__() call")
    if not isinstance(name, str):
        raise TypeError(f"buffer name must be a str, got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'buffer name cannot contain ".", got {name!r}')
    if name == "":
        raise KeyError('buffer name cannot be the empty string ""')
    # A name that already means something else (a parameter, a method) may not become a buffer.
    if hasattr(module, name) and name not in module._buffers:
        raise KeyError(f"buffer name {name!r} is already an attribute of {type(module).__name__}")
    if tensor is not None and not isinstance(tensor, torch.Tensor):
        raise TypeError(f"cannot assign {type(tensor).__name__!r} object to buffer {name!r} (torch.Tensor or None required)")


def _check_freeze_arguments(module: object, prefix: object) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
