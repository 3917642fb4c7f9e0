r"""
# Export: Bottling the Monster

!!! torchenstein "The Professor speaks"
    Until tonight our creature has lived only inside a Python interpreter, twitching whenever Python pulls
    a string. A *real* monster must walk on its own: onto a phone, into a C++ server, into a factory where
    no Python has ever set foot. So we do not speed it up, as we did with compile: we *bottle* it. One trace,
    every operation written down, every weight labelled, every sequence length it may ever meet declared
    in advance, and the whole thing sealed in a file. Dr. Hammer bottles his monster while it still
    has dropout running through its veins. We shall not.

**You will learn to**

- export the course's GPT with `torch.export.export` and a dynamic sequence length, and read the
  `ExportedProgram` it returns: its graph, its signature and its range constraints;
- prove the exported program equal to the eager model, save it to a file and load it back;
- say why export is not compile: the whole graph or an error, no Python when it runs;
- recognise what cannot be exported (data-dependent branches, sizes read with `.item()`, Python side
  effects) and rewrite a branch with `torch.cond`;
- lower the program to core ATen with `run_decompositions` and know where it goes next;
- dodge three of Dr. Hammer's export blunders: dropout baked in, a dimension specialised by a sample of
  length 1, and a range longer than the position table.

## From a Python object to a program

A PyTorch model is a Python object: its `forward` is ordinary Python code, run line by line by the
interpreter every time. **Exporting** it means running that code once with stand-in tensors (a
**trace**) and recording every tensor operation it performs as a **graph**: a list of nodes, each one
operation with its inputs. The operations are **ATen ops**, PyTorch's own C++ operators (`aten.linear`,
`aten.layer_norm`, ...), the same ones eager PyTorch calls. The result, an `ExportedProgram`, holds the
graph, the weights and a description of the inputs, and it needs no Python code of ours to run.

During the trace the sizes that may vary are not numbers but **symbols**: `torch.export.Dim("seq",
min=2, max=16)` declares that dimension 1 of `idx` is a sequence length $T$ with $2 \le T \le 16$. Every
shape computed from it stays a formula in $T$. We export the [GPT](../../transformers/gpt/index.md) of
Part 4, shrunk to one block, in evaluation mode (the [train and eval modes](../../nn/modes/index.md)
lesson); `dynamic_shapes` is keyed by the name of `forward`'s argument, `idx`:

```pycon
>>> import torch
>>> from collections import Counter
>>> from torch import nn
>>> from torchenstein.transformers.gpt import GPT, GPTConfig
>>> from torchenstein.advanced.export import export_gpt, op_counts
>>> _ = torch.manual_seed(0)
>>> model = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)).eval()
>>> example = torch.randint(0, 256, (2, 8))                   # (B, T): only its shape and dtype matter
>>> seq = torch.export.Dim("seq", min=2, max=16)
>>> program = torch.export.export(model, (example,), dynamic_shapes={"idx": {1: seq}}, strict=False)
>>> type(program).__name__
'ExportedProgram'

```

Our GPT exported as it is: no wrapper needed. Its `forward` checks the input in Python
(`T > block_size` raises a `ValueError`), and under export that comparison is made on the symbol $T$;
since the declared range already says $T \le 16$, the check is settled during the trace and leaves
nothing in the graph. (Dr. Hammer will show below what happens when the range says otherwise.)

**The graph.** `print(program)` shows it in full; on your machine, do. Its nodes come in kinds:
`placeholder` (an input: every parameter and buffer is one, then the user's inputs), `call_function` (an
ATen op) and one `output`. [`op_counts`][torchenstein.advanced.export.op_counts] counts the
`call_function` nodes by op:

```pycon
>>> {kind: n for kind, n in Counter(node.op for node in program.graph.nodes).items() if kind != "call_function"}
{'placeholder': 18, 'output': 1}
>>> counts = op_counts(program)
>>> {op: counts[op] for op in ("aten.embedding", "aten.layer_norm", "aten.linear", "aten.scaled_dot_product_attention")}
{'aten.embedding': 2, 'aten.layer_norm': 3, 'aten.linear': 5, 'aten.scaled_dot_product_attention': 1}

```

Two embeddings (tokens and positions), three LayerNorms (two in the block, `ln_f`), five linear layers
(`c_attn`, `c_proj`, `c_fc`, the MLP's `c_proj`, `lm_head`) and one fused attention: the model of the
GPT lesson, op for op. The Python loop over blocks, the `if targets is None`, the tuple: gone, unrolled
into the graph.

**The signature** says which graph input is what. The parameters keep their `state_dict` names (the tied
`lm_head.weight` is listed under both names, like in the `state_dict`); there are no buffers; one user
input. The **range constraints** map each symbol to the range the program accepts:

```pycon
>>> signature = program.graph_signature
>>> {"user inputs": list(signature.user_inputs), "parameters": len(signature.parameters),
...  "buffers": len(signature.buffers)}
{'user inputs': ['idx'], 'parameters': 17, 'buffers': 0}
>>> set(signature.parameters) == set(model.state_dict())
True
>>> [(int(r.lower), int(r.upper)) for r in program.range_constraints.values()]
[(2, 16)]

```

[`export_gpt`][torchenstein.advanced.export.export_gpt] wraps these lines for the rest of the course: it
refuses a model in training mode or a sample shorter than 2 tokens (both are traps below), and declares
`seq` from 2 to the model's `block_size`.

## Equal to eager, to the bit, and back from a file

`program.module()` turns the program back into an `nn.Module` that runs the graph. It calls the very ATen
ops the eager model calls, in the same order, on the same kernels, so on the same device the float32
logits are not merely close: they are **bitwise equal** (tolerance zero), at every length in the range,
not just the sample's:

```pycon
>>> runnable = program.module()
>>> {T: torch.equal(runnable(idx)[0], model(idx)[0]) for T in (2, 5, 16) for idx in [torch.randint(0, 256, (2, T))]}
{2: True, 5: True, 16: True}

```

`torch.export.save` writes the whole program, graph and weights, to one file (by convention
`.pt2`), and `torch.export.load` reads it back, without the class `GPT` or any of our code. A
[checkpoint](../../training/checkpoints/index.md) holds only weights and needs the code; this file *is* the
model:

```pycon
>>> import os
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "gpt.pt2")
...     torch.export.save(program, path)
...     loaded = torch.export.load(path)
>>> idx = torch.randint(0, 256, (2, 11))
>>> torch.equal(loaded.module()(idx)[0], model(idx)[0])
True

```

Outside its range the program refuses to run. Each call checks the input against the constraints, so a
sequence of 17 tokens is refused before any op runs. The wording depends on the release (torch 2.13 raises
an `AssertionError` "Guard failed: ...", older ones a `RuntimeError` "Expected input ... to be <= ..."),
so the page prints the part they share:

```pycon
>>> try:
...     runnable(torch.randint(0, 256, (2, 17)))
... except (AssertionError, RuntimeError) as err:
...     print("refused:", err)
refused: ...<= 16...

```

Only `seq` was declared dynamic: every other size is **specialised**, frozen at the sample's value, so
this program takes batches of exactly 2 (the first challenge lifts that).

## Export is not compile

[Compile](../compile/index.md) also traces a model into graphs, so why a second tool? Because they promise
opposite things.

- **Compile keeps Python.** Where `torch.compile` meets code it cannot trace, it makes a *graph break*:
  it compiles the pieces before and after and lets Python run the bit in between. It guards its
  assumptions and recompiles when they fail. Your program always runs; it is merely faster.
- **Export keeps nothing but the graph.** There is no Python when an exported program runs, so there is
  nowhere to fall back to: it captures the **whole graph or raises an error**. What it promises in return
  is a self-contained artefact that runs where Python does not exist.

Export traces in one of two ways. **Strict** mode (`strict=True`) runs your `forward` through TorchDynamo,
compile's bytecode analyser, which checks every Python line it meets and refuses what it cannot prove
safe. **Non-strict** mode (`strict=False`) runs your `forward` as ordinary Python with fake tensors (tensors
that have shapes and dtypes but no data), recording the ATen ops they see; Python that does not touch
tensors simply runs, once. Non-strict is the default in recent releases (since about torch 2.7); earlier ones default to strict.
The course passes `strict=False` everywhere, so every release from 2.4 to 2.13 does the same thing.

Because Python runs only during the trace, a **Python side effect** (a counter, a print, appending to a
list) happens once, at export, and never again:

```pycon
>>> calls = []                                               # a list outside the model
>>> class Noisy(nn.Module):
...     def forward(self, x):
...         calls.append("forward")                          # a Python side effect
...         return x + 1
>>> noisy_program = torch.export.export(Noisy(), (torch.ones(2),), strict=False)
>>> at_export = len(calls)
>>> _ = [noisy_program.module()(torch.ones(2)) for _ in range(3)]
>>> {"ran during export": at_export >= 1, "calls added by 3 runs of the program": len(calls) - at_export}
{'ran during export': True, 'calls added by 3 runs of the program': 0}

```

## What will not export, and the way around

**Data-dependent control flow.** A branch on a tensor's *value*, `if x.sum() > 0:`, cannot be written
into a graph: during the trace the value does not exist (fake tensors have no data), and a graph has no
`if`. Export cannot guess, and it stops with the real error (Dr. Hammer's
[`HammerGate`][torchenstein.advanced.export.HammerGate]):

```pycon
>>> from torchenstein.advanced.export import CondGate, HammerGate
>>> torch.export.export(HammerGate(), (torch.randn(3),), strict=False)
Traceback (most recent call last):
...
torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode: Could not guard on data-dependent expression...

```

(Strict mode refuses the same line with its own message, "Data-dependent branching" in torch 2.13.) The fix
puts the branch *inside* the graph: `torch.cond(pred, true_fn, false_fn, operands)` traces **both**
branches into subgraphs, and the program picks one at run time.
[`CondGate`][torchenstein.advanced.export.CondGate] is Hammer's gate rewritten so:

```pycon
>>> gate_program = torch.export.export(CondGate(), (torch.randn(3),), strict=False)
>>> gate = gate_program.module()
>>> x = torch.tensor([1.0, 2.0, -0.5])
>>> {"positive sum": torch.equal(gate(x), HammerGate()(x)), "negative sum": torch.equal(gate(-x), HammerGate()(-x))}
{'positive sum': True, 'negative sum': True}
>>> op_counts(gate_program)["higher_order.cond"]
1

```

Both branches must return tensors of the same shapes and dtypes; a branch that only changes values can
often be written without `cond` at all, as `torch.where(x.sum() > 0, x * 2, x - 1)`, which computes both
and keeps one.

**Shapes read with `.item()`.** `n.item()` turns a tensor into a Python number; under export it becomes
an *unbacked* symbol (`u0`), a size nobody knew at trace time. Recent releases can carry it
(`torch.zeros(n.item())` exports in torch 2.13, older ones refuse), but every later decision about it,
`if n.item() > 3`, a `view` that must divide it, is the error above again. `torch._check(u >= 0)` tells
export a fact it cannot infer; better still, keep the number a tensor (a mask instead of a slice).

**Python side effects**, we saw, are replayed zero times. Anything that must happen at every call (a
counter, a cache update) must be a tensor op on a buffer, which export records.

## Lowering to core ATen, and where the program goes

The exported graph uses the ops you wrote (`linear`, `layer_norm`, `scaled_dot_product_attention`). A
backend that must implement every op prefers fewer, simpler ones: **core ATen**, a set of about 200 ops
into which all others decompose. `program.run_decompositions()` returns the lowered program (it takes a
second or so, so the page does not run it): `linear` becomes a `view`, an `addmm` and a `view`,
`layer_norm` becomes `native_layer_norm`, attention becomes matrix products and a softmax. The graph
grows, and the numbers change by rounding only (float32 within `assert_close`'s default tolerance: the
sums are now computed by other kernels). The figure counts the ops of both graphs:

![Two bar charts of op counts: the exported GPT graph has a few op types (linear, layer_norm, embedding, scaled_dot_product_attention, view, transpose), and after run_decompositions the core-ATen graph has many more nodes, mostly view, permute, addmm, bmm and elementwise ops.](plot_op_counts.svg)

From here the program travels on:

- **AOTInductor** (`torch._inductor.aoti_compile_and_package`, torch 2.6 and later) compiles it ahead of
  time into a shared library that C++ loads without Python;
- **ExecuTorch** lowers it for phones and microcontrollers;
- **ONNX**: `torch.onnx.export(model, args, dynamo=True)` goes through `torch.export` too (it needs the
  `onnx` package, which the course does not install).

## Versions

`torch.export.export`, `Dim`, `dynamic_shapes`, `save`/`load`, `module()` and `run_decompositions` exist in
every release from 2.4 to 2.13. What moved: the default of `strict` (we always pass it), the level of the
graph (since torch 2.6 export returns the ops you wrote, as printed above; 2.4 and 2.5 returned
already-decomposed ATen, where `linear` appears as `addmm`), the names of the graph inputs and the wording of
errors. The tests check only what every release shares.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: exporting in training mode"
    Hammer exports straight after training. The model is still in training mode, so export records dropout
    with `train=True`: the sealed program drops a random half of the activations on every call, forever.
    Calling `.eval()` on the program's module does not help (torch 2.13 raises `NotImplementedError`:
    the mode was decided at export). Switch to eval mode *before* exporting; `export_gpt` insists.

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> leaky = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16, dropout=0.5))   # training mode
    >>> baked = torch.export.export(leaky, (example,), strict=False).module()
    >>> {"two calls agree": torch.equal(baked(example)[0], baked(example)[0])}
    {'two calls agree': False}
    >>> export_gpt(leaky)
    Traceback (most recent call last):
    ...
    ValueError: model is in training mode: export would bake dropout into the program; call model.eval() first
    >>> fixed = torch.export.export(leaky.eval(), (example,), strict=False).module()
    >>> {"equal to eager in eval mode": torch.equal(fixed(example)[0], leaky(example)[0])}
    {'equal to eager in eval mode': True}

    ```

!!! hammer "Dr. Hammer's trap: a sample of length 1"
    Hammer traces with the shortest input he has, one token. PyTorch treats sizes 0 and 1 specially (a
    size-1 dimension broadcasts, so code takes other paths for it): it **specialises** them, fixing the
    dimension to the constant 1 instead of making it a symbol. Export then finds his "dynamic" `seq` is
    not dynamic at all. Trace with a sample of length 2 or more, as `program` above was (length 8).

    ```pycon
    >>> one_token = torch.randint(0, 256, (2, 1))                  # (B, T=1)
    >>> torch.export.export(model, (one_token,), dynamic_shapes={"idx": {1: torch.export.Dim("seq", max=16)}},
    ...                     strict=False)
    Traceback (most recent call last):
    ...
    torch._dynamo.exc.UserError: Constraints violated (seq)!...specialized it to be a constant (1)...
    >>> tuple(example.shape), [(int(r.lower), int(r.upper)) for r in program.range_constraints.values()]
    ((2, 8), [(2, 16)])

    ```

!!! hammer "Dr. Hammer's trap: a range longer than the position table"
    Hammer wants "any length", so he declares `max=17` for a model whose position table has 16 rows. The
    model's own check, `T > block_size`, is now a question the trace cannot settle, so export adds a
    **guard** $T \le 16$, finds it narrower than the range declared, and reports a constraint violation
    with the fix. (Without that Python check in `forward` the export would succeed, and length 17 would
    crash at run time on a missing row of the position table.)

    ```pycon
    >>> torch.export.export(model, (example,), dynamic_shapes={"idx": {1: torch.export.Dim("seq", min=2, max=17)}},
    ...                     strict=False)
    Traceback (most recent call last):
    ...
    torch._dynamo.exc.UserError: Constraints violated (seq)!...satisfy the generated guard...<= 16...

    ```

## Challenges

**1. Any batch size.** Write `export_any_batch(model, max_batch=64)`: export our `GPT` (in eval mode) so
that both the batch size (1 to `max_batch`) and the sequence length (up to `block_size`) are dynamic.
The program must equal the eager model at every batch size and length in range.

**2. Export the loss too.** Write `export_with_loss(model)`: export our `GPT` called as `model(idx,
targets)`, so the program returns logits *and* loss, with one dynamic sequence length shared by `idx` and
`targets` (the same `Dim` object for both). Hint: `dynamic_shapes={"idx": {1: seq}, "targets": {1: seq}}`.

Check an attempt with `check_export_any_batch(my_function)` (or `check_export_with_loss`); each check
exports once, so it takes a second or so. The Professor's answers, `export_any_batch` and
`export_with_loss`, pass (the tests run them, not this page, to keep it quick):

```python
from torchenstein.advanced.export import check_export_any_batch, check_export_with_loss
check_export_any_batch(export_any_batch)    # raises AssertionError naming the failing case, or returns None
check_export_with_loss(export_with_loss)
```
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.transformers.gpt import GPT, GPTConfig

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure
    from torch.export import ExportedProgram

SEQ_MIN = 2
"""The shortest sequence an exported GPT accepts: lengths 0 and 1 would be specialised, not symbolic."""


def export_gpt(model: GPT, *, seq_len: int = 8, batch_size: int = 2, strict: bool = False) -> ExportedProgram:
    """Export our `GPT` with a dynamic sequence length from `SEQ_MIN` to the model's ``block_size``.

    Args:
        model: our GPT, in evaluation mode.
        seq_len: the length of the sample traced; any length in range will run.
        batch_size: the batch size of the sample, fixed in the program.
        strict: trace with TorchDynamo (``True``) or as plain Python (``False``, the default here).

    Returns:
        The ``ExportedProgram``; ``program.module()(idx)`` returns ``(logits, None)`` as the model does.

    Raises:
        TypeError: if ``model`` is not a `GPT` or a size is not an int.
        ValueError: if ``model`` is in training mode, or a size is out of range.

    Examples:
        >>> model = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)).eval()
        >>> export_gpt(model, seq_len=1)
        Traceback (most recent call last):
        ...
        ValueError: seq_len must be in [2, 16] (lengths 0 and 1 are specialised, not symbolic), got 1
    """
    _check_export(model, seq_len, batch_size)
    # Token 0 serves as well as any: the trace looks only at the sample's shape and dtype, not its values.
    example = torch.zeros(batch_size, seq_len, dtype=torch.long, device=_device_of(model))  # (B, T)
    seq = torch.export.Dim("seq", min=SEQ_MIN, max=model.config.block_size)
    # Keyed by forward's argument name; dimension 1 of idx is T. targets is left out, so it stays None.
    return torch.export.export(model, (example,), dynamic_shapes={"idx": {1: seq}}, strict=strict)


def op_counts(program: ExportedProgram) -> Counter[str]:
    """Count the operations in an exported program's graph, by op, overloads merged.

    Args:
        program: an ``ExportedProgram``.

    Returns:
        A ``Counter`` of names like ``"aten.linear"`` (ATen ops), ``"higher_order.cond"`` (higher-order
        ops such as `torch.cond`) or ``"getitem"`` (Python's item access on an op's tuple of outputs).

    Examples:
        >>> program = torch.export.export(nn.Linear(3, 2), (torch.ones(4, 3),), strict=False)
        >>> op_counts(program)["aten.linear"]
        1
    """
    counts: Counter[str] = Counter()
    for node in program.graph.nodes:
        if node.op == "call_function":
            counts[_op_name(node.target)] += 1
    return counts


def _op_name(target: object) -> str:
    # An ATen op overload (aten.add.Tensor) belongs to a packet (aten.add): count by packet. Higher-order
    # ops (cond) print as their bare name; Python functions (operator.getitem) by their __name__.
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(packet)
    if type(target).__module__.startswith("torch._ops") or type(target).__module__.startswith("torch._higher"):
        return f"higher_order.{getattr(target, '__name__', str(target))}"
    return getattr(target, "__name__", str(target))


class HammerGate(nn.Module):
    """Dr. Hammer's gate: doubles ``x`` if its sum is positive, else subtracts one; a branch on a value.

    Examples:
        >>> HammerGate()(torch.tensor([1.0, 2.0]))
        tensor([2., 4.])
    """

    def forward(self, x: Tensor) -> Tensor:
        # Python's `if` asks for the tensor's value as a bool: fine in eager mode, impossible in a trace.
        if x.sum() > 0:
            return x * 2
        return x - 1


class CondGate(nn.Module):
    """`HammerGate` with its branch inside the graph: `torch.cond` traces both sides, runs one.

    Examples:
        >>> CondGate()(torch.tensor([-1.0, -2.0]))
        tensor([-2., -3.])
    """

    def forward(self, x: Tensor) -> Tensor:
        # The predicate stays a 0-d bool tensor; both branches take the same operands and return the same
        # shape and dtype, as torch.cond requires.
        return torch.cond(x.sum() > 0, _double, _minus_one, (x,))


def _double(x: Tensor) -> Tensor:
    return x * 2


def _minus_one(x: Tensor) -> Tensor:
    return x - 1


def plot_op_counts(program: ExportedProgram | None = None, decomposed: ExportedProgram | None = None) -> Figure:
    """Draw the op counts of an exported GPT's graph, before and after `run_decompositions` (core ATen).

    Args:
        program: an exported program (default: `export_gpt` of a one-block GPT, ``n_embd=32``, two heads,
            ``block_size=16``).
        decomposed: its lowered form (default: ``program.run_decompositions()``, a second or so).

    Returns:
        A figure with two panels of horizontal bars, one per op, commonest first.
    """
    if program is None:
        _ = torch.manual_seed(0)
        program = export_gpt(GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)).eval())
    if decomposed is None:
        decomposed = program.run_decompositions()
    graphs = {"exported (what you wrote)": op_counts(program),
              "after run_decompositions (core ATen)": op_counts(decomposed)}
    fig, axes = new_figure(1, 2, width=10.0, height=5.0)
    for ax, colour, (title, counts) in zip(axes, PALETTE, graphs.items(), strict=False):
        # The shapes-only helpers (sym_size, getitem) are not computation; they are left out of the picture.
        ops = [(n, c) for n, c in counts.most_common() if n not in {"getitem", "aten.sym_size"}][:14]
        names = [n.removeprefix("aten.") for n, _ in ops]
        ax.barh(range(len(ops)), [c for _, c in ops], color=colour)
        ax.set_yticks(range(len(ops)), names, fontsize=8)
        ax.invert_yaxis()  # the commonest op on top
        ax.set_xlabel("nodes in the graph")
        ax.set_title(f"{title}\n{sum(counts.values())} op nodes in all", fontsize=10)
    return fig


# Challenges.


def export_any_batch(model: GPT, max_batch: int = 64) -> ExportedProgram:
    """Challenge solution: export our `GPT` with a dynamic batch size and a dynamic sequence length.

    Args:
        model: our GPT, in evaluation mode.
        max_batch: the largest batch the program accepts.

    Returns:
        The ``ExportedProgram``, accepting ``(B, T)`` with ``1 <= B <= max_batch`` and ``2 <= T <= block_size``.
    """
    _check_export(model, SEQ_MIN, 2)
    # The sample has batch 2 and length 3: neither is 0 or 1, so neither gets specialised.
    example = torch.zeros(2, 3, dtype=torch.long, device=_device_of(model))  # (B, T)
    batch = torch.export.Dim("batch", max=max_batch)
    seq = torch.export.Dim("seq", min=SEQ_MIN, max=model.config.block_size)
    return torch.export.export(model, (example,), dynamic_shapes={"idx": {0: batch, 1: seq}}, strict=False)


def check_export_any_batch(candidate: Callable[[GPT], ExportedProgram]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``export_any_batch``."""
    _ = torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=11)).eval()
    program = candidate(model)
    assert isinstance(program, torch.export.ExportedProgram), (
        f"return the ExportedProgram of torch.export.export, got {type(program).__name__}")
    run = program.module()
    for B, T in ((2, 3), (1, 8), (5, 2), (3, 7)):
        idx = torch.randint(0, 11, (B, T))
        try:
            logits = run(idx)[0]
        except Exception as err:
            raise AssertionError(f"the program refused idx of shape {(B, T)}: {type(err).__name__}: {err}; "
                                 f"are both dimensions dynamic?") from err
        assert torch.equal(logits, model(idx)[0]), f"logits differ from the eager model's at shape {(B, T)}"


def export_with_loss(model: GPT) -> ExportedProgram:
    """Challenge solution: export our `GPT` called with targets, so the program returns logits and loss.

    Args:
        model: our GPT, in evaluation mode.

    Returns:
        The ``ExportedProgram``; ``program.module()(idx, targets)`` returns ``(logits, loss)``.
    """
    _check_export(model, SEQ_MIN, 2)
    # Two distinct tensors: passing one tensor as both arguments would tell export that the two inputs are
    # the same tensor, and the program would read idx where it should read targets.
    idx, targets = torch.zeros(2, 2, 4, dtype=torch.long, device=_device_of(model))  # (B, T) each
    # One Dim object for both inputs: export then knows idx and targets always have the same length.
    seq = torch.export.Dim("seq", min=SEQ_MIN, max=model.config.block_size)
    return torch.export.export(model, (idx, targets), dynamic_shapes={"idx": {1: seq}, "targets": {1: seq}},
                               strict=False)


def check_export_with_loss(candidate: Callable[[GPT], ExportedProgram]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``export_with_loss``."""
    _ = torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=11)).eval()
    program = candidate(model)
    assert isinstance(program, torch.export.ExportedProgram), (
        f"return the ExportedProgram of torch.export.export, got {type(program).__name__}")
    run = program.module()
    for T in (2, 5, 8):
        idx, targets = torch.randint(0, 11, (2, 2, T))
        targets[0, 0] = -100  # an ignored position, as F.cross_entropy allows
        try:
            logits, loss = run(idx, targets)
        except Exception as err:
            raise AssertionError(f"the program refused idx and targets of length {T}: {type(err).__name__}: "
                                 f"{err}; did you export with targets and a dynamic length?") from err
        want_logits, want_loss = model(idx, targets)
        assert loss is not None and loss.shape == (), f"length {T}: expected a 0-d loss, got {loss!r}"
        assert torch.equal(logits, want_logits), f"length {T}: logits differ from the eager model's"
        torch.testing.assert_close(loss, want_loss, rtol=0, atol=0,
                                   msg=lambda m, T=T: f"length {T}: loss differs from the eager model's: {m}")


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_export(model: object, seq_len: object, batch_size: object) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be the course's GPT, got {type(model).__name__}")
    if model.training:
        raise ValueError("model is in training mode: export would bake dropout into the program; "
                         "call model.eval() first")
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    block_size = model.config.block_size
    if not SEQ_MIN <= seq_len <= block_size:
        raise ValueError(f"seq_len must be in [{SEQ_MIN}, {block_size}] (lengths 0 and 1 are specialised, "
                         f"not symbolic), got {seq_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
