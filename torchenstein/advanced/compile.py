r"""
# torch.compile: Sewing the Monster's Nerves into One Cable

!!! torchenstein "The Professor speaks"
    Every night my monster thinks the same thoughts in the same order, and every night Python walks it
    through them one operation at a time, like a butler carrying one spoon per trip. `torch.compile`
    watches the butler once, writes down the whole route, and hands it to a compiler that fuses the trips
    into a few big ones. Tonight we open that notebook: we read the graph it writes down, find where it
    tears, count how often it writes it again, race the result against the eager monster, and prove it
    still thinks the same thoughts, to a stated tolerance and not one hair wider.

**You will learn to**

- write a compiler backend of your own and read the `torch.fx` graph that Dynamo captures;
- find graph breaks with `torch._dynamo.explain`, name their causes (`print`, `.item()`, branching on a
  tensor) and make `fullgraph=True` refuse them;
- count recompilations and say which guard caused them: a new shape, the `training` flag, a Python number;
- compile a GPT block and a whole training step with Inductor on the CPU, prove outputs and gradients equal
  to eager within a stated tolerance, explain why not bit for bit, and measure the speed-up honestly;
- know what compilation does *not* change, and dodge four of Dr. Hammer's compiled traps.

## What `torch.compile` is made of

`torch.compile(fn)` returns a function (or, for a module, an `OptimizedModule` wrapping it) that does
nothing until it is called. At the first call three pieces go to work:

1. **Dynamo** reads the Python *bytecode* (the instructions the Python interpreter runs) of `fn` as it
   executes, and records every tensor operation into a **graph**, a `torch.fx.GraphModule`: a list of
   **nodes**, each one operation with its inputs. What Python does around the tensors (loops, `if`s on
   plain numbers, attribute look-ups) is run once at capture and leaves no node behind.
2. A **backend** receives that graph and the example inputs and returns something callable that computes
   the same thing. The default backend, **Inductor**, decomposes the graph into simple operations, fuses
   chains of them into **kernels** (one loop doing the work of several operations), and writes them out as
   C++ on the CPU (Triton on a GPU), which a compiler turns into machine code.
3. **Guards**: Dynamo also writes down the conditions under which the graph is valid (the inputs' shapes,
   dtypes and devices, `self.training`, the Python numbers it read). Every later call checks the guards
   first; if they hold, the compiled code runs; if not, Dynamo captures again, a **recompilation**.

A backend is just a function `backend(gm, example_inputs)` that returns a callable. The smallest useful
one prints the graph and returns the graph's own `forward`, so the code runs as captured.
[`inspect_backend`][torchenstein.advanced.compile.inspect_backend] is that:

```pycon
>>> import torch
>>> from torch import nn
>>> from torchenstein.advanced.compile import inspect_backend
>>> def monster(x, y):
...     return torch.sin(x) * y + 1
>>> torch._dynamo.reset()                         # forget earlier compilations, for a clean start
>>> compiled = torch.compile(monster, backend=inspect_backend)
>>> x, y = torch.randn(3), torch.randn(3)
>>> out = compiled(x, y)                          # the first call captures and prints
placeholder    l_x_
placeholder    l_y_
call_function  sin
call_function  mul
call_function  add
output         output
>>> print("same as eager:", torch.equal(out, monster(x, y)))
same as eager: True
>>> _ = compiled(x, y)                            # guards hold: nothing captured, nothing printed

```

Each `placeholder` node is an input, each **call_function** an operation, and **output** what the graph
returns. The second call printed nothing: the guards held, and the captured code ran again.

## Graph breaks

When Dynamo meets something it cannot put in a graph, it does not fail: it ends the graph there, lets
Python run the troublesome line, and starts a new graph after it. That is a **graph break**. Each break
costs a return to Python and, worse, splits the work so that the compiler cannot fuse across it. Three
classic causes:

- a side effect the graph cannot hold, such as `print`;
- `.item()`, which turns a tensor into a Python number: a graph holds tensors, and by default Dynamo does
  not trace Python numbers that come out of one;
- **data-dependent control flow**: an `if` on a tensor's *value*, whose branch is unknown until the tensor
  has been computed.

`torch._dynamo.explain(fn)(*args)` runs `fn` once under Dynamo and reports the graphs and the reasons.
Their wording changes from release to release, so
[`break_report`][torchenstein.advanced.compile.break_report] names each reason in a word:

```pycon
>>> from torchenstein.advanced.compile import break_report, hammer_forward
>>> report = break_report(hammer_forward, torch.randn(4))
checking the monster
>>> report
{'graphs': 4, 'breaks': 3, 'reasons': ['print', '.item()', 'data-dependent branch']}

```

`hammer_forward` is Dr. Hammer's forward pass: a `print`, an `.item()` and an `if` on a tensor, three
breaks, four graphs. Where a break would be a bug, say so: `fullgraph=True` turns the first break into an
error instead of a silent split.

```pycon
>>> def shout(x):
...     print("ALIVE!")
...     return x * 2
>>> torch.compile(shout, fullgraph=True, backend="eager")(torch.randn(2))
Traceback (most recent call last):
...
torch._dynamo.exc.Unsupported: ...print...

```

The `"eager"` backend runs the captured graph as it is, with no compiler: the fastest way to study Dynamo.
Graph breaks are not always worth removing: a break outside the hot loop costs little. Find them with
`explain`, or run with the environment variable `TORCH_LOGS="graph_breaks"` to have each one logged.

## Guards and recompilations

`torch._dynamo.utils.counters` counts what Dynamo did; `counters["stats"]["unique_graphs"]` is the number
of graphs it has compiled. Call a compiled function on four lengths:

```pycon
>>> from torch._dynamo.utils import counters
>>> def double(x):
...     return x * 2
>>> torch._dynamo.reset(); counters.clear()
>>> compiled = torch.compile(double, backend="eager")
>>> graphs = []
>>> for n in (2, 3, 4, 5):
...     _ = compiled(torch.randn(n))
...     graphs.append(counters["stats"]["unique_graphs"])
>>> print("graphs compiled after each call:", graphs)
graphs compiled after each call: [1, 2, 2, 2]

```

The first graph is **static**: specialised to length 2, with a guard `x.size(0) == 2`. The second length
fails that guard, and Dynamo recompiles with the length as a **symbol** (a **dynamic shape**), valid for
any length; this is *automatic dynamic shapes*. Lengths 0 and 1 are special even then: they stay static
(a size-1 dimension broadcasts). If you know a dimension varies, say so at once, with
`torch.compile(fn, dynamic=True)` for every dimension or `torch._dynamo.mark_dynamic(x, dim)` for one:

```pycon
>>> torch._dynamo.reset(); counters.clear()
>>> compiled = torch.compile(double, backend="eager", dynamic=True)
>>> for n in (2, 3, 4, 5):
...     _ = compiled(torch.randn(n))
>>> print("graphs with dynamic=True:", counters["stats"]["unique_graphs"])
graphs with dynamic=True: 1
>>> torch._dynamo.reset(); counters.clear()
>>> compiled = torch.compile(double, backend="eager")
>>> first = torch.randn(2)
>>> torch._dynamo.mark_dynamic(first, 0)
>>> for x in (first, torch.randn(3), torch.randn(4)):
...     _ = compiled(x)
>>> print("graphs with mark_dynamic:", counters["stats"]["unique_graphs"])
graphs with mark_dynamic: 1

```

Shapes are not the only guard. A module's `training` flag is one, because dropout (and BatchNorm) do
different things in the two modes, and so is any attribute the forward reads, a `self.scale = 2.0` for
example. Switching to `eval()` compiles a second graph; switching back finds the first one in the cache:

```pycon
>>> torch._dynamo.reset(); counters.clear()
>>> _ = torch.manual_seed(0)
>>> net = torch.compile(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), backend="eager")
>>> x = torch.randn(2, 4)
>>> graphs = []
>>> for mode in ("train", "eval", "train", "eval"):
...     _ = getattr(net, mode)()
...     _ = net(x)
...     graphs.append(counters["stats"]["unique_graphs"])
>>> print("graphs after train, eval, train, eval:", graphs)
graphs after train, eval, train, eval: [1, 2, 2, 2]

```

Every recompilation adds an entry to the function's cache, and the cache has a limit. Past it, Dynamo
logs a warning and runs the function **eagerly** (uncompiled) from then on, silently slow. The limit is
`torch._dynamo.config.recompile_limit` from torch 2.7 on and `cache_size_limit` before;
[`recompile_limit_name`][torchenstein.advanced.compile.recompile_limit_name] says which this torch has.
Here a function compiled with `dynamic=False` (no symbols at all: every new value is a new graph) meets four
scales under a limit of 2:

```pycon
>>> from torchenstein.advanced.compile import recompile_limit_name
>>> print("default limit:", getattr(torch._dynamo.config, recompile_limit_name()))
default limit: 8
>>> torch._dynamo.reset(); counters.clear()
>>> scale = torch.compile(lambda x, s: x * s, backend="eager", dynamic=False)
>>> with torch._dynamo.config.patch(**{recompile_limit_name(): 2}):
...     outs = [scale(x, s) for s in (1.0, 2.0, 3.0, 4.0)]
>>> print("graphs:", counters["stats"]["unique_graphs"], "| still correct:", torch.equal(outs[3], x * 4.0))
graphs: 2 | still correct: True

```

Correct, but the last two calls ran in plain Python. `torch._dynamo.reset()` (also `torch.compiler.reset()`)
empties every cache; run with `TORCH_LOGS="recompiles"` to have each recompilation logged with the guard
that failed.

## Inductor on the CPU: a GPT block, compiled

Now the real compiler, on the GPT of the [GPT lesson](../../transformers/gpt/index.md). Inductor
needs a C++ compiler on the CPU; [`has_cpp_compiler`][torchenstein.advanced.compile.has_cpp_compiler]
looks for one. Compilation is slow, seconds per graph (tens of seconds the very first time, while
Inductor fills its on-disk cache), so this page shows the code and leaves the compiling to you and to
the lesson's tests, which run exactly this comparison, gradients included:

```python
import torch
from torchenstein.advanced.compile import has_cpp_compiler
from torchenstein.transformers.gpt import GPT, GPTConfig

torch.manual_seed(0)
gpt = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16))
block, h = gpt.transformer.h[0], torch.randn(2, 16, 32)  # h: (B, T, C)
assert has_cpp_compiler(), "Inductor needs a C++ compiler on the CPU"
fast_block = torch.compile(block)  # backend="inductor", mode="default"
with torch.no_grad():
    difference = (fast_block(h) - block(h)).abs().max().item()
print("max |compiled - eager| below 1e-5:", difference < 1e-5)  # True
```

Why a tolerance and not `torch.equal`? Floating-point addition is not associative: the order of a sum
changes its rounding. Inductor fuses a LayerNorm's mean and variance into one loop, splits reductions
across vector lanes and reorders them, so its sums add the same numbers in another order:

```pycon
>>> a, b, c = torch.tensor([1e8, -1e8, 1.0])                          # float32
>>> {"(a + b) + c": (a + b + c).item(), "a + (b + c)": (a + (b + c)).item()}
{'(a + b) + c': 1.0, 'a + (b + c)': 0.0}

```

So the compiled block's outputs differ from eager's by rounding, below $10^{-5}$ as the tests check,
not by a changed computation. Without Inductor the order does not change: compiled with the `"aot_eager"`
backend (Dynamo's capture plus AOT autograd's capture of the backward, no code generation), the block is
bitwise equal to eager, outputs and gradients; the tests prove both.

The tests (`tests/test_compile.py`) prove, in float32: the Inductor block's output equal to eager with
`rtol=1e-5, atol=1e-5`, and the gradients of its input and of every parameter with `rtol=1e-4, atol=1e-5`;
a whole small GPT trained three steps compiled and eagerly, with SGD (momentum 0.9) and with AdamW, losses
and final weights equal to `rtol=1e-4, atol=1e-5`, with one exception that is worth a paragraph.

The *key* part of the attention's `c_attn.bias` adds the same number $q \cdot b_k$ to every score of a
query, and a softmax does not change when all its inputs move together: the true gradient of the key bias
is zero. Both sides compute a tiny number instead (the test checks it is below $10^{-8}$), rounding
noise, each its own. SGD multiplies that noise by the learning rate, and it vanishes. Adam divides each
gradient by a running estimate of its own size, so noise of any size becomes a step of up to the learning
rate, and the two sides' key biases drift apart by up to `lr` per step while every other weight agrees.
The test pins both facts. A compiled and an eager run are two runs of the same model, not one.

### How much faster?

[`compile_speedup`][torchenstein.advanced.compile.compile_speedup] measures it with the course's
[`time_it`][torchenstein.lab.time_it] (warm-up runs first, the median kept; see the
[Profiling](../profiling/index.md) lesson): `what="block"` times a block's forward, `what="train_step"` a
whole training step (forward, loss, backward, AdamW step) of a GPT, eager against compiled. It also reports
the first compiled call, which pays for the compilation. The sizes default to the capstone GPT; the numbers
are your machine's, so run it yourself, `compile_speedup("train_step")`, and read `"speedup"`:

```pycon
>>> from torchenstein.advanced.compile import compile_speedup
>>> compile_speedup("block", mode="fastest")
Traceback (most recent call last):
...
ValueError: mode must be one of ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'), got 'fastest'

```

Expect a ratio near 1 for the small models of this course on a CPU, and measure before you believe
more: at these sizes most of the time goes into matrix products, which Inductor's default mode hands to
the same library that eager mode calls. What fusion saves are the elementwise passes between them
(LayerNorm, GELU, the residual adds), a small share here; the optimizer's step, timed in the training
step, stays eager unless you compile it too. The gains grow where memory traffic dominates, as on a GPU.
Compare the `"first call"` with the per-step saving to see how many steps it takes to repay the
compilation.

`mode="max-autotune-no-cudagraphs"` lets Inductor time several implementations of each matrix product and
keep the fastest; it compiles for much longer. `"reduce-overhead"` adds CUDA graphs, a GPU feature.

## What compilation does not change

- **The model.** `torch.compile(model)` returns an `OptimizedModule` that *wraps* the model: the same
  parameters, the same objects, kept in `compiled._orig_mod`. Training the compiled model trains the model.
- **The numbers**, beyond the reordering above: same dtypes, same operations, same initialisation.
- **The state dict, almost.** The wrapper stores the model as a submodule named `_orig_mod`, so every key
  of `compiled.state_dict()` gains the prefix `_orig_mod.`. Dr. Hammer's first trap below.
- **The first call.** Capture and compilation happen on it; `compile_speedup` reports it separately.

```pycon
>>> from torchenstein.transformers.gpt import GPT, GPTConfig
>>> _ = torch.manual_seed(0)
>>> gpt = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16))
>>> compiled_gpt = torch.compile(gpt, backend="eager")          # wrapping compiles nothing yet
>>> {"wraps the model": compiled_gpt._orig_mod is gpt,
...  "same parameters": all(p is q for p, q in zip(compiled_gpt.parameters(), gpt.parameters())),
...  "first key": next(iter(compiled_gpt.state_dict()))}
{'wraps the model': True, 'same parameters': True, 'first key': '_orig_mod.transformer.wte.weight'}

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the `_orig_mod.` checkpoint"
    Dr. Hammer compiles his model, trains it for a week and saves `compiled.state_dict()`. The next
    morning his evaluation script builds a plain `GPT` and loads the checkpoint: every key is missing, and
    every key is unexpected. Save the model, not the wrapper (`compiled._orig_mod.state_dict()`, or keep a
    reference to the model), or strip the prefix with
    [`strip_compile_prefix`][torchenstein.advanced.compile.strip_compile_prefix], which also finds it
    inside keys, where a compiled *submodule* puts it:

    ```pycon
    >>> from torchenstein.advanced.compile import strip_compile_prefix
    >>> fresh = GPT(gpt.config)
    >>> fresh.load_state_dict(compiled_gpt.state_dict())
    Traceback (most recent call last):
    ...
    RuntimeError: Error(s) in loading state_dict for GPT:...Missing key(s) in state_dict: "transformer.wte.weight"...
    >>> fresh.load_state_dict(strip_compile_prefix(compiled_gpt.state_dict()))
    <All keys matched successfully>
    >>> strip_compile_prefix({"transformer.h.0._orig_mod.ln_1.weight": 1})
    {'transformer.h.0.ln_1.weight': 1}

    ```

!!! hammer "Dr. Hammer's trap: a new Python number every step"
    Dr. Hammer's learning-rate schedule hands his compiled update a new Python float every step. A Python
    number is read at capture time, so it is guarded: a new value can fail the guard and recompile. Before
    torch 2.6 every new float recompiled, until the recompile limit sent the function back to eager
    Python; since 2.6 the second value makes the float a symbol (one recompile, then none), unless
    something specialises it again, as `dynamic=False` does. Pass the value as a **0-d tensor** (a tensor
    with no dimensions, holding one number): a tensor's *value* is never guarded, only its shape, dtype
    and device.

    ```pycon
    >>> def sgd_update(w, grad, lr):
    ...     return w - lr * grad
    >>> w, grad = torch.randn(3), torch.randn(3)
    >>> def graphs_for(learning_rates, **options):
    ...     torch._dynamo.reset(); counters.clear()
    ...     step = torch.compile(sgd_update, backend="eager", **options)
    ...     for lr in learning_rates:
    ...         _ = step(w, grad, lr)
    ...     return counters["stats"]["unique_graphs"]
    >>> floats = [0.1, 0.09, 0.08, 0.07, 0.06]
    >>> {"floats, dynamic=False": graphs_for(floats, dynamic=False),
    ...  "floats, default: more than one": graphs_for(floats) > 1,
    ...  "0-d tensors": graphs_for([torch.tensor(lr) for lr in floats])}
    {'floats, dynamic=False': 5, 'floats, default: more than one': True, '0-d tensors': 1}

    ```

    PyTorch's own optimizers accept `lr=torch.tensor(...)` for exactly this reason when they are compiled.
    From torch 2.6, `torch.compiler.set_stance("fail_on_recompile")` turns any recompilation into an error,
    a fine tripwire for a training loop.

!!! hammer "Dr. Hammer's trap: `print` and `.item()` in the forward"
    Dr. Hammer logs the loss with `loss.item()` inside his model's forward and prints a shape "for
    debugging". Each is a graph break (his forward above had three): the compiled model runs as several
    small graphs with Python between them, and Inductor cannot fuse across the seams. Log outside the
    compiled function, keep values as tensors inside it (`torch.where` instead of an `if`, `clamp` instead of
    comparing a Python number), and check with `break_report` or `fullgraph=True`:

    ```pycon
    >>> def calm_forward(x):
    ...     y = torch.relu(x)
    ...     return y * y.max() / 2                    # no print, no .item(), no if
    >>> break_report(calm_forward, torch.randn(4))
    {'graphs': 1, 'breaks': 0, 'reasons': []}

    ```

!!! hammer "Dr. Hammer's trap: timing the first call"
    Dr. Hammer times one call of his freshly compiled model, finds it far slower than eager and declares
    `torch.compile` useless. The first call captured the graph, generated C++ and compiled it;
    it is a compilation, not a forward pass. As in the [Profiling](../profiling/index.md) lesson: warm up
    first, then time many calls. And warm up on *every* shape you will meet, or the first batch of a new
    length pays for a recompilation inside your timing. Which call compiled is a count, not a guess:

    ```pycon
    >>> from torchenstein.lab import time_it
    >>> torch._dynamo.reset(); counters.clear()
    >>> compiled = torch.compile(double, backend="eager")
    >>> x = torch.randn(8)
    >>> graphs = []
    >>> for call in range(3):
    ...     _ = compiled(x)
    ...     graphs.append(counters["stats"]["unique_graphs"])
    >>> print("graphs compiled after each call:", graphs)
    graphs compiled after each call: [1, 1, 1]
    >>> seconds = time_it(lambda: compiled(x), repeat=3, warmup=1)   # warm-up first, then the median

    ```

    `compile_speedup` times the first call apart, as `"first call"`, and warms up before the rest.

## Challenges

**1. A counting backend.** Write a class `CompileCounter` whose instances are backends: called as
`counter(gm, example_inputs)` it counts the graph in `frame_count` and its operations (nodes that are
`call_function`, `call_method` or `call_module`) in `op_count`, and returns `gm.forward`. It must agree
with PyTorch's own `torch._dynamo.testing.CompileCounter` on functions with breaks and recompilations.

**2. Remove the graph breaks.** Dr. Hammer's
[`hammer_normalise`][torchenstein.advanced.compile.hammer_normalise] divides a tensor by its largest
absolute value when that exceeds 1, with a `print` and an `.item()` on the way. Write
`normalise_without_breaks(x)` that returns exactly the same values (bit for bit, for any non-empty float
tensor) with no graph break: `break_report` must find none, and `fullgraph=True` must accept it.

Check an attempt with `check_compile_counter(MyCounter)` or `check_normalise_without_breaks(my_function)`.
The Professor's answers pass:

```pycon
>>> from torchenstein.advanced.compile import (
...     CompileCounter, check_compile_counter, check_normalise_without_breaks, normalise_without_breaks)
>>> check_compile_counter(CompileCounter)
>>> check_normalise_without_breaks(normalise_without_breaks)

```
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from torchenstein.lab import time_it

__all__ = [
    "MODES",
    "CompileCounter",
    "break_report",
    "check_compile_counter",
    "check_normalise_without_breaks",
    "compile_speedup",
    "hammer_forward",
    "hammer_normalise",
    "has_cpp_compiler",
    "inspect_backend",
    "normalise_without_breaks",
    "recompile_limit_name",
    "strip_compile_prefix",
]

COMPILE_PREFIX = "_orig_mod."
"""The prefix an ``OptimizedModule`` (what ``torch.compile(module)`` returns) puts on every state-dict key."""

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""The values ``torch.compile``'s ``mode`` accepts."""


def inspect_backend(gm: torch.fx.GraphModule, example_inputs: list[Tensor]) -> Callable[..., Any]:
    """A ``torch.compile`` backend that prints each node of the captured graph, then runs it unchanged.

    One line per node: its kind (``placeholder``, ``call_function``, ``call_method``, ``call_module``,
    ``get_attr``, ``output``) and, for an operation, the operation's name; for the others, the node's name.

    Args:
        gm: the graph Dynamo captured.
        example_inputs: the tensors it was captured with (unused: the shapes are in the graph).

    Returns:
        ``gm.forward``, so the compiled function computes exactly what was captured, as the ``"eager"``
        backend does.

    Examples:
        >>> torch._dynamo.reset()
        >>> _ = torch.compile(lambda x: x.relu(), backend=inspect_backend)(torch.randn(2))
        placeholder    l_x_
        call_method    relu
        output         output
    """
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method", "call_module"):
            # call_function targets are Python callables (torch.sin, operator.mul); the others are strings.
            label = getattr(node.target, "__name__", str(node.target))
        else:
            label = node.name
        print(f"{node.op:<14} {label}")
    return gm.forward


def hammer_forward(x: Tensor) -> Tensor:
    """Dr. Hammer's forward pass, with three graph breaks: a ``print``, an ``.item()`` and an ``if`` on a tensor.

    Examples:
        >>> hammer_forward(torch.ones(2))
        checking the monster
        tensor([0.5000, 0.5000])
    """
    y = torch.relu(x)
    print("checking the monster")
    # .item() leaves the graph: a Python float comes out of a tensor.
    scale = y.max().item()
    # The branch depends on the tensor's value, unknown while the graph is being captured.
    if y.sum() > 0:
        y = y / 2
    return y * scale


def break_report(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``torch._dynamo.explain(fn)(*args, **kwargs)`` and summarise it in a few stable words.

    Args:
        fn: the function to capture (it runs once, with its side effects).
        *args: its positional arguments.
        **kwargs: its keyword arguments.

    Returns:
        ``{"graphs": int, "breaks": int, "reasons": [str, ...]}``, one reason per break, each named ``"print"``,
        ``".item()"`` or ``"data-dependent branch"`` when it is one of those, otherwise the first line of
        Dynamo's own message (whose wording changes between releases).

    Raises:
        TypeError: if ``fn`` is not callable.

    Examples:
        >>> break_report(lambda x: x.cos() + 1, torch.randn(2))
        {'graphs': 1, 'breaks': 0, 'reasons': []}
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r} of type {type(fn).__name__}")
    import torch._dynamo

    # Empty Dynamo's caches first, so an earlier compilation of fn is not found and reported as no graph at
    # all (recent releases' explain resets before and after by itself; older ones may not).
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args, **kwargs)
    reasons = [_name_break(str(getattr(b, "reason", b))) for b in explanation.break_reasons]
    # One reason per break. (explain's own graph_break_count is graph_count - 1, which misses a break that
    # no graph follows, such as an `if` whose branches only return.)
    return {"graphs": explanation.graph_count, "breaks": len(reasons), "reasons": reasons}


def _name_break(reason: str) -> str:
    """Name a graph-break reason in a word; Dynamo's messages differ between releases, these words do not."""
    text = reason.lower()
    if "item" in text:
        return ".item()"
    if "print" in text:
        return "print"
    # A branch on a tensor: "generic_jump TensorVariable()" in every release from 2.4 to 2.13.
    if "jump" in text or "data-dependent" in text or "data dependent" in text:
        return "data-dependent branch"
    return reason.strip().splitlines()[0] if reason.strip() else reason


def recompile_limit_name() -> str:
    """The name of Dynamo's recompile limit in this torch: ``"recompile_limit"`` (2.7+) or ``"cache_size_limit"``.

    Use it to read or patch the limit on any supported release:
    ``torch._dynamo.config.patch(**{recompile_limit_name(): 4})``.

    Examples:
        >>> recompile_limit_name() in ("recompile_limit", "cache_size_limit")
        True
    """
    import torch._dynamo

    return "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"


def has_cpp_compiler() -> bool:
    """Say whether Inductor can build CPU kernels here: a C++ compiler is on the ``PATH`` (or named by ``CXX``).

    Examples:
        >>> isinstance(has_cpp_compiler(), bool)
        True
    """
    candidates = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    return any(name and shutil.which(name) for name in candidates)


def strip_compile_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove every ``_orig_mod.`` that ``torch.compile`` put into state-dict keys, at the start or inside.

    For a compiled model (the prefix at the start of every key) the result equals what
    ``torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(state_dict, "_orig_mod.")`` leaves.
    **Where it differs from PyTorch:** that function only strips a leading prefix, and works in place on
    an ``OrderedDict``; this one also strips the prefix a compiled *submodule* leaves in the middle of a
    key, and returns a new dict, in the same order, with the same values.

    Args:
        state_dict: keys to tensors (or anything), as ``module.state_dict()`` returns.

    Returns:
        A new dict with the prefix removed wherever it starts a key or a dotted part of one.

    Raises:
        TypeError: if ``state_dict`` is not a mapping, or a key is not a string.
        ValueError: if two keys become the same key.

    Examples:
        >>> strip_compile_prefix({"_orig_mod.lm_head.weight": 0, "_orig_mod.h.0._orig_mod.bias": 1})
        {'lm_head.weight': 0, 'h.0.bias': 1}
    """
    _check_state_dict(state_dict)
    stripped: dict[str, Any] = {}
    for key, value in state_dict.items():
        # Split into dotted parts and drop each part that is exactly the wrapper's attribute name.
        new_key = ".".join(part for part in key.split(".") if part != COMPILE_PREFIX[:-1])
        if new_key in stripped:
            raise ValueError(f"state_dict keys {key!r} and another key both become {new_key!r} without the prefix")
        stripped[new_key] = value
    return stripped


def compile_speedup(
    what: str = "train_step",
    *,
    config: Any = None,
    batch_size: int = 8,
    mode: str = "default",
    repeat: int = 5,
    warmup: int = 2,
) -> dict[str, float]:
    """Time eager against ``torch.compile`` (Inductor) on the CPU: a GPT block's forward or a training step.

    A benchmark, not a test: the numbers are this machine's. Both sides start from the same weights; the
    compiled side's first call (the compilation) is timed apart, then both are warmed up and timed with
    `time_it` (the median of ``repeat`` runs). It empties Dynamo's caches first (``torch._dynamo.reset()``),
    so every function compiled earlier in the process compiles again at its next call. Inductor's own
    on-disk cache of generated code survives, so a second run's first call is much shorter.

    Args:
        what: ``"block"`` (the forward of ``transformer.h[0]``, without gradients) or ``"train_step"``
            (forward, loss, backward, AdamW step and zeroing the gradients of a whole GPT).
        config: a ``GPTConfig``; ``None`` for the capstone's (4 layers, width 128, context 64).
        batch_size: sequences per batch, each ``config.block_size`` tokens long.
        mode: ``torch.compile``'s mode, one of `MODES`.
        repeat: timed runs per side.
        warmup: untimed runs per side before them.

    Returns:
        ``{"eager": s, "compiled": s, "speedup": eager / compiled, "first call": s}``, in seconds.

    Raises:
        ValueError: if ``what`` or ``mode`` is not one of the choices, or a count is below 1 (``warmup``
            below 0).
        RuntimeError: if no C++ compiler is found (Inductor needs one on the CPU).
    """
    _check_speedup_args(what, mode, batch_size, repeat, warmup)
    if not has_cpp_compiler():
        raise RuntimeError("Inductor needs a C++ compiler on the CPU (g++, c++ or clang++), and none was found")
    from torchenstein.transformers.gpt import GPT, GPTConfig

    config = GPTConfig() if config is None else config
    # Dynamo caches by code, not by module: without a reset, a block compiled earlier in this process
    # would serve this one, and the "first call" would time a cache hit, not a compilation.
    torch._dynamo.reset()
    _ = torch.manual_seed(0)
    eager_model = GPT(config)
    # A deep copy: the two sides train separately from the same starting weights.
    compiled_model = torch.compile(copy.deepcopy(eager_model), mode=mode)
    idx = torch.randint(0, config.vocab_size, (batch_size, config.block_size))
    targets = torch.randint(0, config.vocab_size, (batch_size, config.block_size))
    x = torch.randn(batch_size, config.block_size, config.n_embd)  # (B, T, C)

    def runner(model: torch.nn.Module, model_block: torch.nn.Module) -> Callable[[], object]:
        if what == "block":
            def forward() -> object:
                with torch.no_grad():
                    return model_block(x)

            return forward
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def train_step() -> object:
            _, loss = model(idx, targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        return train_step

    # For the block, the compiled side compiles only the block, the thing being measured.
    compiled_block = torch.compile(compiled_model._orig_mod.transformer.h[0], mode=mode)
    eager_run = runner(eager_model, eager_model.transformer.h[0])
    compiled_run = runner(compiled_model, compiled_block)
    # The first compiled call captures, generates code and compiles it: timed once, on its own.
    first = time_it(compiled_run, repeat=1, warmup=0)
    eager = time_it(eager_run, repeat=repeat, warmup=warmup)
    compiled = time_it(compiled_run, repeat=repeat, warmup=warmup)
    return {"eager": eager, "compiled": compiled, "speedup": eager / compiled, "first call": first}


# Challenge 1: a counting backend.


class CompileCounter:
    """Challenge solution: a backend that counts the graphs it is given and their operations.

    Equal, count for count, to ``torch._dynamo.testing.CompileCounter``.

    Attributes:
        frame_count: how many graphs were compiled.
        op_count: how many ``call_function``, ``call_method`` and ``call_module`` nodes they held in all.

    Examples:
        >>> torch._dynamo.reset()
        >>> counter = CompileCounter()
        >>> f = torch.compile(lambda x: torch.sin(x) + 1, backend=counter)
        >>> _ = f(torch.randn(2)); _ = f(torch.randn(2))
        >>> counter.frame_count, counter.op_count
        (1, 2)
    """

    def __init__(self) -> None:
        self.frame_count = 0
        self.op_count = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Tensor]) -> Callable[..., Any]:
        self.frame_count += 1
        self.op_count += sum(node.op in ("call_function", "call_method", "call_module") for node in gm.graph.nodes)
        return gm.forward

    def clear(self) -> None:
        """Start counting again from zero."""
        self.frame_count = 0
        self.op_count = 0


def check_compile_counter(candidate: type) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` does not count like ``torch._dynamo.testing.CompileCounter``.

    Examples:
        >>> check_compile_counter(CompileCounter)
    """
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter as Reference

    def two_graphs(x: Tensor) -> Tensor:
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos() + y

    def module_forward(x: Tensor) -> Tensor:
        return torch.nn.functional.relu(x @ x.T).sum(dim=0).mean()

    cases = {
        "one op": (lambda x: x + 1, [torch.randn(3)]),
        "a graph break": (two_graphs, [torch.randn(3)]),
        "three lengths (a recompilation)": (lambda x: (x * 2).exp(), [torch.randn(2), torch.randn(3), torch.randn(4)]),
        "several ops": (module_forward, [torch.randn(3, 3), torch.randn(3, 3)]),
    }
    made = candidate()
    assert callable(made) and hasattr(made, "frame_count") and hasattr(made, "op_count"), (
        f"CompileCounter() must make a callable backend with frame_count and op_count, got {made!r}"
    )
    for name, (fn, inputs) in cases.items():
        counts = []
        for counter in (Reference(), candidate()):
            torch._dynamo.reset()
            compiled = torch.compile(fn, backend=counter)
            for x in inputs:
                got = compiled(x)
                assert torch.allclose(got, fn(x)), (
                    f"case {name!r}: the compiled function's output is wrong; a backend must return a "
                    "callable that computes the graph, such as gm.forward"
                )
            counts.append((counter.frame_count, counter.op_count))
        torch._dynamo.reset()
        (ref_frames, ref_ops), (frames, ops) = counts
        assert frames == ref_frames, (
            f"case {name!r}: frame_count is {frames}, expected {ref_frames}: count one per call of the backend"
        )
        assert ops == ref_ops, (
            f"case {name!r}: op_count is {ops}, expected {ref_ops}: count the call_function, call_method and "
            "call_module nodes, not the graph's inputs or its output"
        )


# Challenge 2: remove the graph breaks.


def hammer_normalise(x: Tensor) -> Tensor:
    """Dr. Hammer's normaliser: divide by the largest absolute value when it exceeds 1, with two graph breaks.

    Examples:
        >>> hammer_normalise(torch.tensor([4.0, -2.0]))
        normalising
        tensor([ 1.0000, -0.5000])
    """
    print("normalising")
    biggest = x.abs().max().item()
    if biggest > 1.0:
        x = x / biggest
    return x


def normalise_without_breaks(x: Tensor) -> Tensor:
    """Challenge solution: `hammer_normalise`, bit for bit, in one graph.

    Dividing by ``max(biggest, 1)`` is dividing by ``biggest`` when it exceeds 1 and by exactly 1 (which
    changes no bit) otherwise; ``clamp`` keeps the comparison inside the graph, as a tensor.

    Examples:
        >>> normalise_without_breaks(torch.tensor([4.0, -2.0]))
        tensor([ 1.0000, -0.5000])
    """
    return x / x.abs().max().clamp(min=1.0)


def check_normalise_without_breaks(candidate: Callable[[Tensor], Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` differs from `hammer_normalise` or breaks the graph.

    Examples:
        >>> check_normalise_without_breaks(normalise_without_breaks)
    """
    import contextlib
    import io

    import torch._dynamo

    g = torch.Generator().manual_seed(0)
    cases = {
        "values above 1": 5 * torch.randn(3, 4, generator=g),
        "values below 1": 0.1 * torch.randn(6, generator=g),
        "largest exactly 1": torch.tensor([1.0, -0.5, 0.25]),
        "negative largest": torch.tensor([-8.0, 2.0]),
        "float64": 3 * torch.randn(5, dtype=torch.float64, generator=g),
    }
    for name, x in cases.items():
        with contextlib.redirect_stdout(io.StringIO()):
            expected = hammer_normalise(x.clone())
        got = candidate(x.clone())
        assert isinstance(got, Tensor), f"case {name!r}: expected a tensor, got {type(got).__name__}"
        assert got.dtype == expected.dtype and got.shape == expected.shape, (
            f"case {name!r}: expected {expected.dtype} of shape {tuple(expected.shape)}, got {got.dtype} of "
            f"shape {tuple(got.shape)}"
        )
        assert torch.equal(got, expected), (
            f"case {name!r}: the values differ from hammer_normalise's; divide by the largest absolute value "
            "only when it exceeds 1 (dividing by exactly 1 changes nothing)"
        )
    # explain, not fullgraph alone: recent releases let fullgraph=True capture an .item() as a symbol,
    # which still breaks the graph in an ordinary torch.compile.
    with contextlib.redirect_stdout(io.StringIO()):
        report = break_report(candidate, cases["values above 1"].clone())
    assert report["breaks"] == 0, (
        f"the candidate still has {report['breaks']} graph break(s), caused by {report['reasons']}: no print, "
        "no .item(), no if on a tensor (clamp or torch.where keep the decision inside the graph)"
    )
    torch._dynamo.reset()
    try:
        for x in cases.values():
            torch.compile(candidate, backend="eager", fullgraph=True)(x)
    except Exception as err:  # Dynamo's Unsupported, or an error inside the candidate
        raise AssertionError(
            f"the candidate has a graph break, so fullgraph=True refuses it: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    finally:
        torch._dynamo.reset()


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_state_dict(state_dict: object) -> None:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of keys to tensors, got {type(state_dict).__name__}")
    for key in state_dict:
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, got {key!r} of type {type(key).__name__}")


def _check_speedup_args(what: object, mode: object, batch_size: object, repeat: object, warmup: object) -> None:
    if what not in ("block", "train_step"):
        raise ValueError(f"what must be 'block' or 'train_step', got {what!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for name, value, minimum in (("batch_size", batch_size, 1), ("repeat", repeat, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")
