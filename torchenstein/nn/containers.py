r"""
# Franken-stacking: Bolting Modules into Monsters

!!! torchenstein "The Professor speaks"
    One layer is a curiosity; a stack of them is a monster! But a monster is only as good as its
    stitches. Today we bolt modules together with `nn.Sequential`, `nn.ModuleList` and `nn.ModuleDict`,
    watch a plain Python list quietly lose a whole brain's worth of weights, and then forge all three
    containers again with our own hands.

**You will learn to**

- chain modules with `nn.Sequential`, by position or by name, and index, slice and grow the chain;
- keep layers in an `nn.ModuleList` when the forward pass needs its own logic (skips, residuals);
- keep named branches, such as several output heads, in an `nn.ModuleDict`;
- recognise the plain list or dict whose modules are never registered, and fix it;
- read the dotted names that nested containers give every parameter (`blocks.1.mlp.0.weight`);
- rebuild all three containers from scratch and prove they file modules exactly as PyTorch does.

The containers stand on the filing trick of [Building brains with nn.Module](../modules/index.md):
a module assigned as an attribute lands in the dict `_modules`, and everything recursive (parameters,
`state_dict`, `to()`, `train()`) walks that dict. A container is simply a module whose `_modules` is
filled by a list or dict interface instead of by attribute assignment.

## `nn.Sequential`: the conveyor belt

`nn.Sequential(a, b, c)` files its modules under the names `"0"`, `"1"`, `"2"` and its forward pass
feeds each module's output to the next: $y = c(b(a(x)))$. The names become the first part of every
`state_dict` key; a `ReLU` has no parameters, so index 1 simply never appears there:

```pycon
>>> import torch
>>> from collections import OrderedDict
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> mlp = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
>>> mlp(torch.randn(5, 3)).shape  # (batch, 3) -> (batch, 8) -> (batch, 2)
torch.Size([5, 2])
>>> list(mlp._modules)
['0', '1', '2']
>>> list(mlp.state_dict())
['0.weight', '0.bias', '2.weight', '2.bias']

```

Pass a single `OrderedDict` instead and you choose the names. Each one also becomes an attribute:

```pycon
>>> named = nn.Sequential(OrderedDict([("hidden", nn.Linear(3, 8)), ("act", nn.ReLU()), ("out", nn.Linear(8, 2))]))
>>> list(named.state_dict())
['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
>>> named.hidden is named[0]
True

```

A `Sequential` behaves like a list of its modules: integer indices (negative ones too), `len`,
iteration, `append`, `extend`, `insert`, item assignment, `del` and `pop`. A slice is a *new*
`Sequential` holding the *same* module objects, so it shares their weights; it keeps the original names
(remember that: it is the root of a trap below):

```pycon
>>> mlp[0], mlp[-1]
(Linear(in_features=3, out_features=8, bias=True), Linear(in_features=8, out_features=2, bias=True))
>>> trunk = mlp[:2]  # the hidden features, before the last layer
>>> {"type": type(trunk).__name__, "length": len(trunk), "shares layer 0": trunk[0] is mlp[0]}
{'type': 'Sequential', 'length': 2, 'shares layer 0': True}
>>> trunk(torch.randn(5, 3)).shape
torch.Size([5, 8])
>>> list(mlp[1:].state_dict())
['2.weight', '2.bias']
>>> [type(layer).__name__ for layer in mlp]
['Linear', 'ReLU', 'Linear']
>>> mlp[-1] = nn.Linear(8, 4)  # a new last layer: the classic transfer-learning transplant
>>> _ = mlp.append(nn.Softmax(dim=-1))
>>> probabilities = mlp(torch.randn(5, 3))
>>> {"length": len(mlp), "output": tuple(probabilities.shape), "rows sum to 1": torch.allclose(probabilities.sum(-1), torch.ones(5))}
{'length': 4, 'output': (5, 4), 'rows sum to 1': True}

```

Deleting renumbers what is left from 0, *even in a named `Sequential`* (the names are lost), and `pop`
is a lookup followed by a deletion. `+` chains two `Sequential`s into a new one, numbered afresh, and
`* k` repeats the *same* modules `k` times (shared weights, not copies):

```pycon
>>> last = mlp.pop(-1)  # the Softmax again
>>> del named[1]
>>> list(named._modules)
['0', '1']
>>> longer = mlp + nn.Sequential(nn.ReLU())
>>> {"names": list(longer._modules), "shares layer 0": longer[0] is mlp[0]}
{'names': ['0', '1', '2', '3'], 'shares layer 0': True}
>>> tripled = nn.Sequential(nn.Linear(4, 4)) * 3
>>> {"length": len(tripled), "one layer three times": tripled[0] is tripled[2]}
{'length': 3, 'one layer three times': True}

```

## `nn.ModuleList`: a shelf of layers, and you write the forward

A `Sequential` can only say "then the next one". As soon as the forward pass needs memory (a residual
$x + f(x)$, a skip connection from an early layer to a late one, a loop that runs a layer twice),
keep the layers in an `nn.ModuleList` and write the forward yourself. The list registers its members
under `"0"`, `"1"`, ... exactly like a `Sequential`, but it has no forward of its own. Here a
ladder goes down three rungs and back up, each up-rung adding back what entered its partner on the
way down, so the last one adds the input itself:

```pycon
>>> class Ladder(nn.Module):
...     def __init__(self, width, rungs):
...         super().__init__()
...         self.down = nn.ModuleList([nn.Linear(width, width) for _ in range(rungs)])
...         self.up = nn.ModuleList([nn.Linear(width, width) for _ in range(rungs)])
...     def forward(self, x):
...         skips = []
...         for layer in self.down:
...             skips.append(x)
...             x = torch.relu(layer(x))
...         for layer in self.up:
...             x = torch.relu(layer(x)) + skips.pop()  # rejoin the input of the partner rung
...         return x
>>> ladder = Ladder(width=4, rungs=3)
>>> ladder(torch.randn(2, 4)).shape
torch.Size([2, 4])
>>> {"rungs down": len(ladder.down), "parameter tensors": len(list(ladder.parameters()))}
{'rungs down': 3, 'parameter tensors': 12}
>>> {"first keys": list(ladder.state_dict())[:3], "last key": list(ladder.state_dict())[-1]}
{'first keys': ['down.0.weight', 'down.0.bias', 'down.1.weight'], 'last key': 'up.2.bias'}

```

A `ModuleList` grows like a Python list. Its slices are numbered afresh from 0, unlike a
`Sequential`'s, and calling it is an error, because there is no forward to run:

```pycon
>>> layers = nn.ModuleList([nn.Linear(2, 2)])
>>> _ = layers.append(nn.ReLU())
>>> _ = layers.extend([nn.Linear(2, 2), nn.Tanh()])
>>> layers.insert(1, nn.Dropout(0.1))
>>> [type(m).__name__ for m in layers]
['Linear', 'Dropout', 'ReLU', 'Linear', 'Tanh']
>>> layers[-2] is layers[3]
True
>>> {"type": type(layers[1:]).__name__, "keys": list(layers[1:].state_dict())}  # the Linear at 3 is "2" in the slice
{'type': 'ModuleList', 'keys': ['2.weight', '2.bias']}
>>> layers(torch.randn(2, 2))
Traceback (most recent call last):
...
NotImplementedError: Module [ModuleList] is missing the required "forward" function

```

## `nn.ModuleDict`: named branches

When the parts have *roles* rather than positions (one head per task, one encoder per modality, one
adapter per language), give them names with an `nn.ModuleDict`. It keeps insertion order and offers
`keys()`, `items()`, `values()`, `in`, `len` and item assignment:

```pycon
>>> heads = nn.ModuleDict({"species": nn.Linear(4, 3), "age": nn.Linear(4, 1)})
>>> features = torch.randn(2, 4)
>>> {name: tuple(head(features).shape) for name, head in heads.items()}
{'species': (2, 3), 'age': (2, 1)}
>>> {"item is attribute": heads["age"] is heads.age, "'species' in heads": "species" in heads, "keys": list(heads.keys())}
{'item is attribute': True, "'species' in heads": True, 'keys': ['species', 'age']}
>>> heads["mood"] = nn.Linear(4, 5)
>>> list(heads.state_dict())
['species.weight', 'species.bias', 'age.weight', 'age.bias', 'mood.weight', 'mood.bias']

```

Keys become attribute names and pieces of dotted paths, so they must be non-empty strings without
dots, and must not shadow something a module already has (`type`, `train`, `forward`, ...):

```pycon
>>> nn.ModuleDict({0: nn.ReLU()})
Traceback (most recent call last):
...
TypeError: module name should be a string. Got int
>>> nn.ModuleDict({"type": nn.ReLU()})  # Module.type() is a method
Traceback (most recent call last):
...
KeyError: "attribute 'type' already exists"

```

## Nesting, and the dotted names

Containers nest inside modules and inside each other, and every level adds one piece to the name.
Our specimen [`Tower`][torchenstein.nn.containers.Tower] uses all three: its residual blocks sit in a
`ModuleList` called `blocks`, each block is a `ModuleDict` holding a `norm` and an `mlp`, each MLP is
a `Sequential`, and the output heads sit in another `ModuleDict`. So the weight of the first linear
layer of the second block's MLP is `blocks.1.mlp.0.weight`: exactly the path of attribute and index
lookups that reaches it.

```pycon
>>> from torchenstein.nn.containers import Tower
>>> tower = Tower(width=4, num_blocks=2, num_classes=3)
>>> [name for name, _ in tower.named_parameters() if name.startswith("blocks.1")]
['blocks.1.norm.weight', 'blocks.1.norm.bias', 'blocks.1.mlp.0.weight', 'blocks.1.mlp.0.bias', 'blocks.1.mlp.2.weight', 'blocks.1.mlp.2.bias']
>>> tower.blocks[1].mlp[0].weight is tower.get_parameter("blocks.1.mlp.0.weight")
True
>>> tower.get_submodule("blocks.1.mlp.0")
Linear(in_features=4, out_features=8, bias=True)
>>> tower.state_dict()["heads.label.weight"].shape
torch.Size([3, 4])
>>> {name: out.shape for name, out in tower(torch.randn(5, 4)).items()}
{'label': torch.Size([5, 3]), 'score': torch.Size([5, 1])}
>>> [name for name, _ in tower.named_modules()][:6]
['', 'blocks', 'blocks.0', 'blocks.0.norm', 'blocks.0.mlp', 'blocks.0.mlp.0']

```

## From scratch: three containers, forged by hand

Each container is an `nn.Module` whose `__init__` and list or dict methods file modules into
`self._modules` with `register_module` (the newer name of `add_module`). Nothing else is needed:
`parameters()`, `state_dict()`, `to()` and the printout all come from `nn.Module`, which walks
`_modules`. Our [`Sequential`][torchenstein.nn.containers.Sequential],
[`ModuleList`][torchenstein.nn.containers.ModuleList] and
[`ModuleDict`][torchenstein.nn.containers.ModuleDict] take the same arguments as PyTorch's, produce the
same names, and load each other's `state_dict`:

```pycon
>>> from torchenstein.nn.containers import ModuleDict, ModuleList, Sequential
>>> _ = torch.manual_seed(0)
>>> ours = Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> theirs = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
>>> list(ours.state_dict()) == list(theirs.state_dict())
True
>>> theirs.load_state_dict(ours.state_dict())
<All keys matched successfully>
>>> x = torch.randn(5, 3)
>>> {"same output": torch.equal(ours(x), theirs(x)), "slice after layer 0": torch.equal(ours[1:](ours[0](x)), ours(x))}
{'same output': True, 'slice after layer 0': True}
>>> def nested(seq, lst, dct):
...     return dct({"stem": seq(nn.Linear(2, 2)), "blocks": lst([seq(nn.Linear(2, 2), nn.GELU()) for _ in range(2)])})
>>> mine, torchs = nested(Sequential, ModuleList, ModuleDict), nested(nn.Sequential, nn.ModuleList, nn.ModuleDict)
>>> [n for n, _ in mine.named_modules()] == [n for n, _ in torchs.named_modules()]
True
>>> list(mine.state_dict())[-2:]
['blocks.1.0.weight', 'blocks.1.0.bias']
>>> mine.load_state_dict(torchs.state_dict())
<All keys matched successfully>

```

PyTorch's own error for a non-module names only its type (`int is not a Module subclass`); ours also
names the position, and catches the commonest slip of all, a class passed where an instance belongs:

```pycon
>>> Sequential(nn.Linear(3, 4), nn.ReLU)
Traceback (most recent call last):
...
TypeError: Sequential: the module at index 1 must be an nn.Module instance, got the class ReLU; create one first: ReLU()
>>> ours[3]
Traceback (most recent call last):
...
IndexError: index 3 is out of range for a Sequential of length 3
>>> ModuleDict({"head": "Linear(4, 2)"})
Traceback (most recent call last):
...
TypeError: ModuleDict: the module at key 'head' must be an nn.Module instance, got str

```

Ours has every public method of PyTorch's three containers (as of torch 2.13): `Sequential`'s
indexing, slicing, item assignment, `del`, `pop`, `len`, iteration, `append`, `extend`, `insert`, `+`,
`+=`, `*`, `*=` and a `dir()` that hides the numeric names; `ModuleList`'s indexing, slicing, item
assignment, `del`, `pop`, `len`, iteration, `append`, `extend`, `insert`, `+`, `+=` and `dir()`; and
`ModuleDict`'s item get, set and delete, `in`, `len`, iteration, `keys`, `items`, `values`, `update`,
`pop` and `clear`. The tests hold each one against PyTorch's.

!!! note "Where it differs from PyTorch"
    - `None` as a module: PyTorch files it as an empty slot; ours refuses it with a `TypeError`.
    - `Sequential.insert` of something that is not a module: PyTorch raises `AssertionError` (an
      `assert`, which `python -O` strips); ours raises `TypeError`.
    - `ModuleList.insert`: PyTorch handles only `0 <= index <= len` (a negative index raises `KeyError`
      after moving some modules, an index past the end leaves a gap in the numbering); ours takes
      negative positions as `list.insert` does and refuses positions beyond either end with `IndexError`.
    - `Sequential.insert` and `*=` on a `Sequential` whose names are not `"0"`, `"1"`, ... (a named one,
      or a slice): both raise `KeyError`, ours with a message that says why.
    - `+` accepts PyTorch's `nn.Sequential` as well as ours (PyTorch's `+` accepts only its own class).
    - The printout: PyTorch's `ModuleList` compresses a run of identical layers into one line with a
      count; ours prints every member, as any module does.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the plain list"
    Dr. Hammer keeps his hidden layers in a Python list. `nn.Module.__setattr__` files *modules*, and a
    list is not one, so the list goes into the ordinary instance dictionary and its layers are never
    registered. The model still runs, and gradients even reach those weights, but `parameters()` does
    not list them, so the optimiser never steps them; `state_dict()` does not save them and `to()`
    does not move them.

    ```pycon
    >>> class HammerStack(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.layers = [nn.Linear(4, 4) for _ in range(3)]  # a plain list: invisible to the module
    ...         self.head = nn.Linear(4, 1)
    ...     def forward(self, x):
    ...         for layer in self.layers:
    ...             x = torch.relu(layer(x))
    ...         return self.head(x)
    >>> _ = torch.manual_seed(0)
    >>> hammer = HammerStack()
    >>> list(hammer.state_dict())
    ['head.weight', 'head.bias']
    >>> def hidden_weights_move(model):  # one SGD step: did each hidden layer's weight change?
    ...     before = [layer.weight.clone() for layer in model.layers]
    ...     optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    ...     model(torch.randn(8, 4)).pow(2).mean().backward()
    ...     optimiser.step()
    ...     return [not torch.equal(layer.weight, old) for layer, old in zip(model.layers, before)]
    >>> {"hidden weights moved": hidden_weights_move(hammer), "they got a gradient": hammer.layers[0].weight.grad is not None}
    {'hidden weights moved': [False, False, False], 'they got a gradient': True}
    >>> _ = hammer.to(torch.float64)
    >>> {"hidden": hammer.layers[0].weight.dtype, "head": hammer.head.weight.dtype}
    {'hidden': torch.float32, 'head': torch.float64}
    >>> class FixedStack(HammerStack):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.layers = nn.ModuleList(self.layers)  # the same layers, now registered
    >>> fixed = FixedStack()
    >>> {"hidden weights moved": hidden_weights_move(fixed), "state_dict keys": len(fixed.state_dict())}
    {'hidden weights moved': [True, True, True], 'state_dict keys': 8}

    ```

Gradients computed, then thrown away: the most expensive way to train a head alone. The figure counts
the scalar parameters each way of holding the same three hidden layers actually *uses* in its forward
pass (found by walking the autograd graph back to its leaves) against those `parameters()` registers:

![Bar chart: for a plain list, a plain dict and layers built inside forward, only the head's parameters are registered; ModuleList, ModuleDict and Sequential register everything the forward uses](plot_registration.svg)

!!! hammer "Dr. Hammer's trap: a dict of modules"
    A plain dict is no better than a plain list. His multi-task heads vanish from `state_dict()`, and
    a model that is *nothing but* those heads has no parameters at all, which at least makes the
    optimiser complain.

    ```pycon
    >>> class HammerHeads(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.heads = {"label": nn.Linear(4, 3), "score": nn.Linear(4, 1)}
    >>> list(HammerHeads().state_dict())
    []
    >>> torch.optim.SGD(HammerHeads().parameters(), lr=0.1)
    Traceback (most recent call last):
    ...
    ValueError: optimizer got an empty parameter list
    >>> class FixedHeads(HammerHeads):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.heads = nn.ModuleDict(self.heads)
    >>> list(FixedHeads().state_dict())
    ['heads.label.weight', 'heads.label.bias', 'heads.score.weight', 'heads.score.bias']

    ```

!!! hammer "Dr. Hammer's trap: one layer, three times"
    `[nn.Linear(4, 4)] * 3` is a list holding the *same* layer three times, not three layers. The
    container registers it under three names, so `state_dict()` has six keys, but `parameters()`
    yields each tensor once: the "deep" network has one layer's worth of weights. Sharing on purpose
    (tied embeddings) is fine; sharing by accident is not. Build each layer in a comprehension.

    ```pycon
    >>> clones = nn.Sequential(*[nn.Linear(4, 4)] * 3)
    >>> def census(seq):
    ...     return {"0 is 2": seq[0] is seq[2], "keys": len(seq.state_dict()), "parameters": len(list(seq.parameters()))}
    >>> census(clones)
    {'0 is 2': True, 'keys': 6, 'parameters': 2}
    >>> census(nn.Sequential(*[nn.Linear(4, 4) for _ in range(3)]))
    {'0 is 2': False, 'keys': 6, 'parameters': 6}

    ```

!!! hammer "Dr. Hammer's trap: growing a slice"
    Dr. Hammer wants his network without its input layer, and a softmax on top:
    `mlp[1:].append(nn.Softmax(dim=-1))`. The slice keeps its names, `"1"` and `"2"`, and `append`
    files the new module under `str(len(self))`, which is `"2"`: the name of the last `Linear`. The
    softmax silently *replaces* it, and the chain is as long as before. `+=` on the slice does the
    same. (Ours behaves exactly like PyTorch's here; the tests hold both to it.) Build a fresh
    `Sequential` from the slice's modules instead: `nn.Sequential(*mlp[1:], ...)` numbers from 0.

    ```pycon
    >>> mlp = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> tail = mlp[1:]
    >>> list(tail._modules)
    ['1', '2']
    >>> _ = tail.append(nn.Softmax(dim=-1))
    >>> [type(m).__name__ for m in tail]  # the Linear is gone
    ['ReLU', 'Softmax']
    >>> fixed = nn.Sequential(*mlp[1:], nn.Softmax(dim=-1))
    >>> {name: type(m).__name__ for name, m in fixed.named_children()}
    {'0': 'ReLU', '1': 'Linear', '2': 'Softmax'}

    ```

!!! hammer "Dr. Hammer's trap: building layers in `forward`"
    A layer created inside `forward` is born with fresh random weights on every call and dies after
    it. It is never registered, never trained, and the same input gives a different answer each time.
    Create layers in `__init__`; only *use* them in `forward`.

    ```pycon
    >>> class HammerHead(nn.Module):
    ...     def forward(self, x):
    ...         return nn.Linear(4, 2)(x)  # a new layer per call
    >>> head, x = HammerHead(), torch.randn(3, 4)
    >>> {"repeatable": torch.equal(head(x), head(x)), "parameters": len(list(head.parameters()))}
    {'repeatable': False, 'parameters': 0}
    >>> class FixedHead(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.proj = nn.Linear(4, 2)
    ...     def forward(self, x):
    ...         return self.proj(x)
    >>> head = FixedHead()
    >>> {"repeatable": torch.equal(head(x), head(x)), "parameters": len(list(head.parameters()))}
    {'repeatable': True, 'parameters': 2}

    ```

!!! hammer "Dr. Hammer's trap: a two-input module in a `Sequential`"
    `nn.Sequential` passes exactly one object from each module to the next. A module that needs two
    inputs cannot sit in it, and one that returns a tuple (an `nn.LSTM`: output and state) passes the
    whole tuple on. Write the forward yourself.

    ```pycon
    >>> class Gate(nn.Module):
    ...     def forward(self, x, context):
    ...         return x * torch.sigmoid(context)
    >>> gated = nn.Sequential(nn.Linear(4, 4), Gate())
    >>> gated(torch.randn(2, 4))
    Traceback (most recent call last):
    ...
    TypeError: Gate.forward() missing 1 required positional argument: 'context'
    >>> class GatedProjection(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.proj, self.gate = nn.Linear(4, 4), Gate()
    ...     def forward(self, x, context):
    ...         return self.gate(self.proj(x), context)
    >>> GatedProjection()(torch.randn(2, 4), torch.randn(2, 4)).shape
    torch.Size([2, 4])

    ```

## Challenges

1. **A Sequential from a list of sizes.** Write `sequential_mlp(sizes, activation=nn.ReLU)` returning
   an `nn.Sequential` of `nn.Linear(sizes[i], sizes[i + 1])` layers with a fresh `activation()`
   between consecutive layers and none after the last, so that `[3, 5, 2]` gives the `state_dict`
   keys `0.weight, 0.bias, 2.weight, 2.bias`. Raise `ValueError` when `sizes` has fewer than two
   entries or one below 1.
2. **A residual stack.** Write an `nn.Module` `ResidualStack(num_blocks, width)` whose attribute
   `blocks` is an `nn.ModuleList` of `num_blocks` distinct `nn.Linear(width, width)` layers and whose
   forward applies $x \leftarrow x + \operatorname{ReLU}(\text{block}(x))$ for each block in turn
   (`num_blocks=0` is the identity). Its keys are `blocks.0.weight, blocks.0.bias, ...`. Raise
   `ValueError` for a negative `num_blocks` or a `width` below 1.

Check an attempt with `check_sequential_mlp(my_function)` and `check_ResidualStack(MyClass)`, or put
both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.nn.containers import ResidualStack, check_ResidualStack, check_sequential_mlp, sequential_mlp
>>> check_sequential_mlp(sequential_mlp)
>>> check_ResidualStack(ResidualStack)
>>> list(sequential_mlp([3, 5, 2]).state_dict())
['0.weight', '0.bias', '2.weight', '2.bias']

```
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import TYPE_CHECKING

import torch
from torch import nn

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _renumber(container: nn.Module, modules: Iterable[nn.Module]) -> None:
    # Empty the filing cabinet and file the modules again under "0", "1", ...: what PyTorch's list-like
    # containers do after a deletion (a Sequential loses its custom names there, as PyTorch's does).
    modules = list(modules)
    container._modules.clear()
    for i, module in enumerate(modules):
        container.register_module(str(i), module)


class Sequential(nn.Module):
    """A chain of modules, each fed the previous one's output: `nn.Sequential` rebuilt.

    Construct it from modules by position (named ``"0"``, ``"1"``, ...) or from one ``OrderedDict``
    of names to modules. It supports integer indexing (negative too), slicing (a new ``Sequential``
    sharing the modules and keeping their names), item assignment, ``del`` and ``pop`` (which number
    the rest afresh), ``len``, iteration, ``append``, ``extend``, ``insert``, ``+``, ``+=``, ``*`` and ``*=``.

    Args:
        *args: modules, or a single ``OrderedDict`` mapping names to modules.

    Raises:
        TypeError: if an element is not an ``nn.Module`` instance; the message names its position.

    Examples:
        >>> seq = Sequential(nn.Linear(3, 4), nn.ReLU()).append(nn.Linear(4, 2))
        >>> seq(torch.ones(5, 3)).shape
        torch.Size([5, 2])
        >>> list(seq.state_dict())
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *args: nn.Module) -> None:
        super().__init__()
        # A single OrderedDict means "here are the names"; anything else is modules by position.
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            named = [(name, module, f"key {name!r}") for name, module in args[0].items()]
        else:
            named = [(str(i), module, f"index {i}") for i, module in enumerate(args)]
        for name, module, where in named:
            _require_module("Sequential", where, module)
            # `register_module` files the module in `self._modules`, after checking that the name is
            # a non-empty string without dots that does not shadow an attribute of the module.
            self.register_module(name, module)

    def forward(self, input):
        # One object in, one object out, module after module: the whole of Sequential's logic.
        for module in self:
            input = module(input)
        return input

    def __getitem__(self, idx: int | slice) -> nn.Module:
        # A slice keeps the original names, so `seq[1:]` still calls its Linear "2", as PyTorch's does.
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_absolute_index("Sequential", idx, len(self))]

    def __setitem__(self, idx: int, module: nn.Module) -> None:
        name = list(self._modules)[_absolute_index("Sequential", idx, len(self))]
        _require_module("Sequential", f"index {idx}", module)
        self.register_module(name, module)

    def __delitem__(self, idx: int | slice) -> None:
        doomed = set(range(len(self))[idx] if isinstance(idx, slice) else [_absolute_index("Sequential", idx, len(self))])
        _renumber(self, (m for i, m in enumerate(self._modules.values()) if i not in doomed))

    def pop(self, key: int | slice) -> nn.Module:
        # A lookup, then a deletion: a slice pops a Sequential, keeping the names it had.
        module = self[key]
        del self[key]
        return module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())

    def __dir__(self) -> list[str]:
        # "0", "1", ... are attributes too, but not ones a reader wants to see in `dir()`.
        return [key for key in super().__dir__() if not key.isdigit()]

    def append(self, module: nn.Module) -> Sequential:
        # The new name is the current length, as in PyTorch. Right for a chain numbered 0 .. len - 1,
        # and an overwrite for a slice that kept its names (see Dr. Hammer's trap "growing a slice").
        _require_module("Sequential", f"index {len(self)}", module)
        self.register_module(str(len(self)), module)
        return self

    def extend(self, sequential: Iterable[nn.Module]) -> Sequential:
        _require_iterable("Sequential.extend", sequential)
        for module in sequential:
            self.append(module)
        return self

    def insert(self, index: int, module: nn.Module) -> Sequential:
        n = len(self)
        position = _absolute_index("Sequential", index, n, insert=True)
        _require_module("Sequential", f"index {index}", module)
        # PyTorch's own algorithm: shift the modules named str(n - 1) ... str(position) up by one name.
        # It needs those names to exist, so a named Sequential is refused before anything moves.
        _require_numbered("insert into", self, range(position, n))
        for i in range(n, position, -1):
            self._modules[str(i)] = self._modules[str(i - 1)]
        self._modules[str(position)] = module
        return self

    def __add__(self, other: Sequential | nn.Sequential) -> Sequential:
        # A new chain, numbered from 0: the layers of `self`, then those of `other`.
        _require_sequential(other)
        return Sequential(*self, *other)

    def __iadd__(self, other: Sequential | nn.Sequential) -> Sequential:
        # In place: each new module is filed under its position, like `append` (and with its trap).
        _require_sequential(other)
        offset = len(self)
        for i, module in enumerate(list(other)):
            self.register_module(str(offset + i), module)
        return self

    def __mul__(self, other: int) -> Sequential:
        # The *same* modules, `other` times over: shared weights, not copies.
        _require_factor(self, other)
        return Sequential(*(list(self) * other))

    def __rmul__(self, other: int) -> Sequential:
        return self.__mul__(other)

    def __imul__(self, other: int) -> Sequential:
        _require_factor(self, other)
        n = len(self)
        _require_numbered("*=", self, range(n))
        for i in range(n, n * other):
            self.register_module(str(i), self._modules[str(i % n)])
        return self


class ModuleList(nn.Module):
    """A list of registered modules with no forward of its own: `nn.ModuleList` rebuilt.

    It supports integer indexing (negative too), slicing (a new ``ModuleList`` numbered from 0),
    item assignment, ``del``, ``pop``, ``len``, iteration, ``append``, ``extend``, ``insert``, ``+`` and
    ``+=``. Unlike PyTorch's, ``insert`` accepts negative positions like ``list.insert`` does (and
    refuses positions beyond either end), and the printout lists every member instead of compressing
    repeats.

    Args:
        modules: an iterable of modules to start with, or ``None`` for an empty list.

    Raises:
        TypeError: if ``modules`` is not iterable or holds something that is not an ``nn.Module``.

    Examples:
        >>> blocks = ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
        >>> blocks.insert(0, nn.Identity())
        >>> [type(m).__name__ for m in blocks]
        ['Identity', 'Linear', 'Linear']
        >>> list(blocks[1:].state_dict())
        ['0.weight', '0.bias', '1.weight', '1.bias']
    """

    def __init__(self, modules: Iterable[nn.Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> nn.Module:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_absolute_index("ModuleList", idx, len(self)))]

    def __setitem__(self, idx: int, module: nn.Module) -> None:
        i = _absolute_index("ModuleList", idx, len(self))
        _require_module("ModuleList", f"index {i}", module)
        self.register_module(str(i), module)

    def __delitem__(self, idx: int | slice) -> None:
        doomed = set(range(len(self))[idx] if isinstance(idx, slice) else [_absolute_index("ModuleList", idx, len(self))])
        _renumber(self, (m for i, m in enumerate(self._modules.values()) if i not in doomed))

    def pop(self, key: int | slice) -> nn.Module:
        module = self[key]
        del self[key]
        return module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())

    def __dir__(self) -> list[str]:
        return [key for key in super().__dir__() if not key.isdigit()]

    def append(self, module: nn.Module) -> ModuleList:
        # The next free number is the current length, because the names are always 0 .. len - 1.
        _require_module("ModuleList", f"index {len(self)}", module)
        self.register_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[nn.Module]) -> ModuleList:
        _require_iterable("ModuleList.extend", modules)
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: nn.Module) -> None:
        position = _absolute_index("ModuleList", index, len(self), insert=True)
        _require_module("ModuleList", f"index {index}", module)
        modules = list(self._modules.values())
        modules.insert(position, module)
        _renumber(self, modules)

    def __add__(self, other: Iterable[nn.Module]) -> ModuleList:
        # A new list of the modules of both, numbered from 0; any iterable of modules will do.
        return ModuleList(chain(self, other))

    def __iadd__(self, modules: Iterable[nn.Module]) -> ModuleList:
        return self.extend(modules)


class ModuleDict(nn.Module):
    """An ordered dict of registered modules with string keys: `nn.ModuleDict` rebuilt.

    It supports ``d[key]`` (get, set, delete), ``in``, ``len``, iteration over the keys, ``keys()``,
    ``items()``, ``values()``, ``update()``, ``pop()`` and ``clear()``, keeping insertion order.

    Args:
        modules: a mapping (a ``dict``, ``OrderedDict`` or module dict) from names to modules, an
            iterable of ``(name, module)`` pairs, or ``None`` for an empty dict.

    Raises:
        TypeError: if a key is not a string or a value is not an ``nn.Module``.
        KeyError: if a key contains a dot, is empty or shadows an attribute (such as ``"type"``).
        ValueError: if an element of an iterable of pairs does not have two items.

    Examples:
        >>> heads = ModuleDict([("label", nn.Linear(4, 3)), ("score", nn.Linear(4, 1))])
        >>> {"keys": list(heads), "score outputs": heads["score"].out_features, "'label' in heads": "label" in heads}
        {'keys': ['label', 'score'], 'score outputs': 1, "'label' in heads": True}
    """

    def __init__(self, modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> nn.Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict has no key {key!r}; its keys are {list(self._modules)}") from None

    def __setitem__(self, key: str, module: nn.Module) -> None:
        _require_key(key)
        _require_module("ModuleDict", f"key {key!r}", module)
        self.register_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def pop(self, key: str) -> nn.Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, nn.Module]]:
        return self._modules.items()

    def values(self) -> Iterable[nn.Module]:
        return self._modules.values()

    def update(self, modules: Mapping[str, nn.Module] | Iterable[tuple[str, nn.Module]]) -> None:
        for key, module in _key_module_pairs(modules):
            self[key] = module


class Tower(nn.Module):
    r"""Residual blocks, $x + \operatorname{MLP}(\operatorname{LayerNorm}(x))$, under two heads: containers all the way down.

    Args:
        width: the feature size throughout the tower.
        num_blocks: how many blocks to stack.
        num_classes: the output size of the ``"label"`` head (the ``"score"`` head has size 1).

    Raises:
        ValueError: if ``width`` or ``num_classes`` is below 1 or ``num_blocks`` is negative.

    Examples:
        >>> tower = Tower(width=4, num_blocks=3)
        >>> {"blocks": len(tower.blocks), "heads": list(tower.heads.keys())}
        {'blocks': 3, 'heads': ['label', 'score']}
        >>> tower(torch.ones(2, 4))["label"].shape
        torch.Size([2, 3])
    """

    def __init__(self, width: int = 4, num_blocks: int = 2, num_classes: int = 3) -> None:
        super().__init__()
        _check_counts(width=(width, 1), num_blocks=(num_blocks, 0), num_classes=(num_classes, 1))
        # Each block is a ModuleDict of a LayerNorm and an MLP (widen, bend, narrow back: the MLP of
        # every Transformer block, in miniature), so its parameters are named `blocks.<i>.mlp.<j>.*`.
        self.blocks = nn.ModuleList(
            nn.ModuleDict({
                "norm": nn.LayerNorm(width),
                "mlp": nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)),
            })
            for _ in range(num_blocks)
        )
        self.heads = nn.ModuleDict({"label": nn.Linear(width, num_classes), "score": nn.Linear(width, 1)})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for block in self.blocks:
            x = x + block["mlp"](block["norm"](x))  # (..., width)
        # Every head reads the same features; a dict of outputs keeps them apart by name.
        return {name: head(x) for name, head in self.heads.items()}


class _HiddenStack(nn.Module):
    # One network, held in many ways: `depth` hidden layers in whatever `holder` makes of a list of
    # them (a list, a dict, a ModuleList, ...), then a head that is always registered properly.
    # With no holder at all, Dr. Hammer's way: fresh hidden layers made inside every forward call.
    def __init__(self, depth: int, width: int, holder: Callable | None) -> None:
        super().__init__()
        self.depth, self.width = depth, width
        self.layers = None if holder is None else holder([nn.Linear(width, width) for _ in range(depth)])
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layers is None:
            layers = [nn.Linear(self.width, self.width) for _ in range(self.depth)]
        else:
            layers = self.layers.values() if hasattr(self.layers, "values") else self.layers
        for layer in layers:
            x = torch.relu(layer(x))
        return self.head(x)


def _registration_variants(depth: int, width: int) -> dict[str, nn.Module]:
    def as_dict(layers):
        return {str(i): layer for i, layer in enumerate(layers)}

    return {
        "plain list": _HiddenStack(depth, width, list),
        "nn.ModuleList": _HiddenStack(depth, width, nn.ModuleList),
        "plain dict": _HiddenStack(depth, width, as_dict),
        "nn.ModuleDict": _HiddenStack(depth, width, lambda layers: nn.ModuleDict(as_dict(layers))),
        "nn.Sequential": _HiddenStack(depth, width, lambda layers: nn.Sequential(*layers)),
        "built in forward": _HiddenStack(depth, width, None),
    }


def _leaf_tensors(output: torch.Tensor) -> list[torch.Tensor]:
    # Autograd remembers every leaf tensor that helped compute `output`: each one hides behind an
    # `AccumulateGrad` node (the node that will write its `.grad`) as that node's `variable`.
    # Walking the graph back from `output` finds exactly the tensors the forward pass used.
    found: dict[int, torch.Tensor] = {}
    stack = [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        leaf = getattr(node, "variable", None)
        if leaf is not None:
            found[id(leaf)] = leaf
        stack.extend(parent for parent, _ in node.next_functions)
    return list(found.values())


def plot_registration(*, depth: int = 3, width: int = 8) -> Figure:
    """Compare the parameters a forward pass uses with those ``parameters()`` registers, per container.

    Args:
        depth: how many hidden ``Linear(width, width)`` layers each variant holds.
        width: the feature size of the hidden layers.

    Returns:
        A matplotlib figure with one axes of grouped bars.

    Raises:
        ValueError: if ``depth`` or ``width`` is below 1.

    Examples:
        >>> fig = plot_registration(depth=1, width=2)
        >>> len(fig.axes)
        1
    """
    _check_counts(depth=(depth, 1), width=(width, 1))
    variants = _registration_variants(depth, width)
    x = torch.randn(2, width, generator=torch.Generator().manual_seed(0))
    used = [sum(t.numel() for t in _leaf_tensors(model(x))) for model in variants.values()]
    registered = [sum(p.numel() for p in model.parameters()) for model in variants.values()]
    fig, (ax,) = new_figure(width=8.5, height=3.8)
    positions = list(range(len(variants)))
    ax.bar([p - 0.2 for p in positions], used, width=0.4, color=PALETTE[6], label="used by forward()")
    ax.bar([p + 0.2 for p in positions], registered, width=0.4, color=PALETTE[0], label="registered by parameters()")
    for p, u, r in zip(positions, used, registered, strict=True):
        ax.text(p + 0.2, r, f"{r / u:.0%}", ha="center", va="bottom", fontsize=9, color=PALETTE[0])
    ax.set_xticks(positions, list(variants))
    ax.set_ylim(0, 1.15 * max(used))
    ax.set(ylabel="scalar parameters", title=f"{depth} hidden layers of width {width} and a head, held six ways")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    return fig


def sequential_mlp(sizes: Iterable[int], activation: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """Challenge solution: an MLP as an ``nn.Sequential`` of linear layers and activations.

    Args:
        sizes: the feature sizes, input first: ``[3, 5, 2]`` means ``Linear(3, 5)`` then ``Linear(5, 2)``.
        activation: a module class (or any factory) called once per gap between linear layers.

    Returns:
        ``Sequential(Linear, activation, Linear, ..., Linear)``, with no activation after the last layer.

    Raises:
        ValueError: if ``sizes`` has fewer than two entries or one that is not a positive integer.

    Examples:
        >>> [type(m).__name__ for m in sequential_mlp([3, 5, 5, 2], activation=nn.Tanh)]
        ['Linear', 'Tanh', 'Linear', 'Tanh', 'Linear']
        >>> sequential_mlp([3])
        Traceback (most recent call last):
        ...
        ValueError: sizes must be at least two positive integers, got [3]
    """
    sizes = _check_sizes(sizes)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        # A fresh activation each time: one with parameters (nn.PReLU) must not be shared by accident.
        layers += [nn.Linear(fan_in, fan_out), activation()]
    return nn.Sequential(*layers[:-1])


def _must_refuse(candidate: Callable, *args: object) -> None:
    try:
        candidate(*args)
    except ValueError:
        return
    raise AssertionError(f"{getattr(candidate, '__name__', 'the candidate')}{args} should raise ValueError")


def check_sequential_mlp(candidate: Callable) -> None:
    """Check an attempt at `sequential_mlp`: layer types, key layout, distinct layers, errors.

    Raises:
        AssertionError: if the candidate is wrong; the message names the sizes and what differs.
    """
    for sizes, activation in (([3, 5, 2], None), ((3, 2), None), ([2, 4, 4, 4, 1], nn.Tanh), ([3, 5, 5, 2], nn.PReLU)):
        model = candidate(sizes) if activation is None else candidate(sizes, activation=activation)
        activation = activation or nn.ReLU
        assert isinstance(model, nn.Sequential), f"sizes={sizes}: return an nn.Sequential, got {type(model).__name__}"
        expected = [cls for i in range(len(sizes) - 1) for cls in (nn.Linear, activation)][:-1]
        got = [type(m) for m in model]
        assert got == expected, f"sizes={sizes}: expected layers {[c.__name__ for c in expected]}, got {[c.__name__ for c in got]}"
        shapes = [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)]
        assert shapes == list(zip(sizes[:-1], sizes[1:], strict=True)), f"sizes={sizes}: linear (in, out) sizes {shapes} are wrong"
        keys = [f"{i}.{name}" for i, m in enumerate(model) for name, _ in m.named_parameters()]
        assert list(model.state_dict()) == keys, f"sizes={sizes}: unexpected state_dict keys {list(model.state_dict())}"
        assert len(list(model.parameters())) == len(keys), f"sizes={sizes}: some layers are the same object; create each one"
        assert model(torch.zeros(4, sizes[0])).shape == (4, sizes[-1]), f"sizes={sizes}: wrong output shape"
    for bad in ([], [3], [3, 0], [4, -1, 2]):
        _must_refuse(candidate, bad)


class ResidualStack(nn.Module):
    r"""Challenge solution: $x \leftarrow x + \operatorname{ReLU}(\text{block}(x))$ for each block of a `ModuleList`.

    Args:
        num_blocks: how many ``Linear(width, width)`` blocks; 0 makes the identity.
        width: the size of the last dimension of the input.

    Raises:
        ValueError: if ``num_blocks`` is negative or ``width`` is below 1.

    Examples:
        >>> stack = ResidualStack(num_blocks=2, width=3)
        >>> stack(torch.zeros(4, 3)).shape
        torch.Size([4, 3])
        >>> list(stack.state_dict())[:2]
        ['blocks.0.weight', 'blocks.0.bias']
    """

    def __init__(self, num_blocks: int, width: int) -> None:
        super().__init__()
        _check_counts(num_blocks=(num_blocks, 0), width=(width, 1))
        self.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(num_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + torch.relu(block(x))  # (..., width): the skip keeps the shape fixed
        return x


def check_ResidualStack(candidate: Callable) -> None:
    """Check an attempt at `ResidualStack`: registration, distinct blocks, the residual formula, errors.

    Raises:
        AssertionError: if the candidate is wrong; the message names the case and what differs.
    """
    generator = torch.Generator().manual_seed(0)
    for num_blocks, width in ((3, 4), (1, 2), (0, 5)):
        model = candidate(num_blocks, width)
        case = f"ResidualStack({num_blocks}, {width})"
        assert isinstance(model, nn.Module), f"{case} must be an nn.Module, got {type(model).__name__}"
        assert isinstance(getattr(model, "blocks", None), nn.ModuleList), f"{case}.blocks must be an nn.ModuleList"
        keys = [f"blocks.{i}.{name}" for i in range(num_blocks) for name in ("weight", "bias")]
        assert list(model.state_dict()) == keys, f"{case}: expected state_dict keys {keys}, got {list(model.state_dict())}"
        assert len(list(model.parameters())) == len(keys), f"{case}: the blocks must be distinct layers, not one shared"
        x = torch.randn(2, 3, width, generator=generator)
        expected = x
        for block in model.blocks:
            expected = expected + torch.relu(nn.functional.linear(expected, block.weight, block.bias))
        got = model(x)
        assert isinstance(got, torch.Tensor) and got.shape == x.shape, f"{case}: output shape must be {tuple(x.shape)}"
        torch.testing.assert_close(got, expected, msg=f"{case}: output is not x + relu(block(x)) block after block")
        if num_blocks:
            got.sum().backward()
            assert all(p.grad is not None for p in model.parameters()), f"{case}: every block must take part"
    for args in ((-1, 4), (2, 0)):
        _must_refuse(candidate, *args)


# Argument checks. They live down here so that the containers above read as what they are: a few
# lines of filing each.


def _require_module(owner: str, where: str, module: object) -> None:
    # The commonest slip is `nn.ReLU` without its parentheses: a class, not a module. It deserves its
    # own sentence, and a plain dict given to `Sequential` deserves a hint about `OrderedDict`.
    if isinstance(module, nn.Module):
        return
    if isinstance(module, type) and issubclass(module, nn.Module):
        got = f"the class {module.__name__}; create one first: {module.__name__}()"
    else:
        got = type(module).__name__
    hint = " (to name the modules of a Sequential, pass an OrderedDict)" if isinstance(module, dict) else ""
    raise TypeError(f"{owner}: the module at {where} must be an nn.Module instance, got {got}{hint}")


def _absolute_index(owner: str, idx: object, length: int, *, insert: bool = False) -> int:
    # `operator.index` accepts anything that *is* an integer (a bool, a NumPy integer, a 0-d integer
    # tensor) and refuses floats and strings, as Python lists do. Inserting may also happen *at* the
    # end, so there `length` itself is a valid position.
    try:
        i = operator.index(idx)
    except TypeError:
        raise TypeError(f"{owner} indices must be integers or slices, got {type(idx).__name__}") from None
    if not -length <= i < length + insert:
        raise IndexError(f"{'insert ' * insert}index {i} is out of range for a {owner} of length {length}")
    return i + length if i < 0 else i


def _require_iterable(where: str, modules: object) -> None:
    if not isinstance(modules, Iterable):
        raise TypeError(f"{where} expects an iterable of modules, got {type(modules).__name__}")


def _require_numbered(operation: str, container: nn.Module, positions: range) -> None:
    # PyTorch's `insert` and `*=` address modules by the names "0", "1", ...; a named Sequential (or a
    # slice, which keeps its names) has no such names, and PyTorch fails with a bare KeyError.
    missing = [str(i) for i in positions if str(i) not in container._modules]
    if missing:
        raise KeyError(f"Sequential {operation} needs modules named by position ({missing[0]!r} is missing), "
                       f"but its names are {list(container._modules)}: build Sequential(*seq) first")


def _require_sequential(other: object) -> None:
    # PyTorch raises ValueError here (not TypeError), and so do we.
    if not isinstance(other, (Sequential, nn.Sequential)):
        raise ValueError(f"+ and += join a Sequential only with another Sequential, got {type(other).__name__}")


def _require_factor(container: Sequential, other: object) -> None:
    if not isinstance(other, int):
        raise TypeError(f"unsupported operand type(s) for *: 'Sequential' and '{type(other).__name__}'")
    if other <= 0:
        raise ValueError(f"a Sequential can be repeated only a positive number of times, got {other}")


def _require_key(key: object) -> None:
    # PyTorch would say "module name should be a string"; we name the offending key as well.
    if not isinstance(key, str):
        raise TypeError(f"ModuleDict keys must be strings, got {key!r} of type {type(key).__name__}")


def _key_module_pairs(modules: object) -> list[tuple[str, nn.Module]]:
    # Module dicts are not `Mapping`s in the `collections.abc` sense, so they are named explicitly.
    if isinstance(modules, (Mapping, ModuleDict, nn.ModuleDict)):
        return list(modules.items())
    if not isinstance(modules, Iterable):
        raise TypeError(f"ModuleDict.update expects a mapping or (key, module) pairs, got {type(modules).__name__}")
    pairs = []
    for j, pair in enumerate(modules):
        if not isinstance(pair, Iterable):
            raise TypeError(f"ModuleDict.update: element #{j} must be a (key, module) pair, got {type(pair).__name__}")
        pair = tuple(pair)
        if len(pair) != 2:
            raise ValueError(f"ModuleDict.update: element #{j} must be a (key, module) pair, got {len(pair)} items")
        pairs.append(pair)
    return pairs


def _check_counts(**minimums: tuple[object, int]) -> None:
    # Sizes of the lesson's specimens and figure: each `name=(value, lowest allowed)`.
    for name, (value, low) in minimums.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int of at least {low}, got {value!r}")


def _check_sizes(sizes: object) -> list[int]:
    sizes = list(sizes) if isinstance(sizes, Iterable) else sizes
    if not isinstance(sizes, list) or len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive integers, got {sizes!r}")
    return sizes
