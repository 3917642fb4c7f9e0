r"""
# Hooks: Wiretapping the Monster's Nervous System

!!! torchenstein "The Professor speaks"
    A trained network is a sealed box: tensors go in, a loss comes out, and everything in between is
    rumour. Not in MY laboratory! PyTorch lets us splice a wire into any nerve of the monster: a function
    that runs as a gradient passes, before and after any module's forward and backward, even at the very
    moment autograd tucks a tensor away for later. Tonight we learn every kind of hook, build recorders
    that eavesdrop on a whole network, rewrite gradients in flight, and weigh, to the byte, the memories
    autograd hoards. Then we learn to take the wires out again, because a hook left behind fires forever.

**You will learn to**

- put a hook on a tensor's gradient, read it and replace it, on leaves and on intermediate tensors;
- run code before and after any module's forward and backward pass, and edit its inputs, keyword
  arguments, outputs and gradients there;
- remove hooks reliably, even when the forward pass fails, and respect the global ones;
- build an `ActivationRecorder` and a `GradientRecorder`, proved against autograd's own answers;
- clip gradients *during* backward with hooks, proved equal to `clip_grad_value_`;
- count the bytes autograd saves for backward with saved-tensor hooks, match the count by hand, and halve
  it by packing in bfloat16 at a measured cost in gradient accuracy;
- recognise four of Dr. Hammer's hook disasters before they happen to you.

## Three places to hook

A **hook** is a function you hand to PyTorch for it to call at a certain moment, with what it has in hand
at that moment. There are three families:

| family | registered on | called with | may return |
| --- | --- | --- | --- |
| tensor hooks | a tensor: `t.register_hook(fn)` | the gradient arriving at `t` in `backward` | a replacement gradient |
| module hooks | a module: `register_forward_hook(fn)` and friends | the module, its inputs, its outputs or their gradients | replacements for them |
| saved-tensor hooks | a block: `with saved_tensors_hooks(pack, unpack)` | each tensor autograd saves for backward | anything (packed), and the tensor back (unpacked) |

Every registration returns a **handle**, a `torch.utils.hooks.RemovableHandle`, whose `remove()` takes
the hook back. Part 3 already lent forward hooks to two tools, the per-layer statistics of
[Gradient clipping](../../training/clipping/index.md) and the NaN tracer of
[Hunting NaNs](../../training/nans/index.md). Here we open the whole toolbox.

## Tensor hooks: a gradient on its way back

`t.register_hook(fn)` calls `fn(grad)` during `backward` with the gradient of the loss with respect to
`t`, the moment it is complete. If `fn` returns a tensor, that tensor *replaces* the gradient. What that
changes depends on what `t` is (leaves and non-leaves were met in
[Autograd](../../tensors/autograd/index.md)):

- on a **leaf**, the hook runs before the gradient is added to `.grad`, so it changes what is stored;
- on a **non-leaf**, it changes what flows further back, to everything `t` was computed from.

A hook must not modify the gradient it is handed in place; it returns a new one.

```pycon
>>> import torch
>>> from torch import nn
>>> w = torch.tensor([1.0, 2.0], requires_grad=True)
>>> seen = []
>>> handle = w.register_hook(lambda grad: seen.append(grad.clone()))   # returns None: just looks
>>> (w * 3 + w * 5).sum().backward()
>>> {"hook calls": seen, "w.grad": w.grad}         # one call, with the two paths already added up
{'hook calls': [tensor([8., 8.])], 'w.grad': tensor([8., 8.])}
>>> handle.remove()
>>> w.grad = None
>>> h = w * 2                                     # a non-leaf
>>> _ = h.register_hook(lambda grad: grad * 10)   # edits what flows on to w
>>> h.sum().backward()
>>> w.grad                                        # 2 * 10 instead of 2
tensor([20., 20.])
>>> torch.ones(2).register_hook(print)
Traceback (most recent call last):
...
RuntimeError: cannot register a hook on a tensor that doesn't require gradient

```

A leaf also takes a hook that runs *after* its `.grad` is written:
`register_post_accumulate_grad_hook(fn)` calls `fn(tensor)` (the tensor, not the gradient). It exists
since torch 2.1, so on every torch this course supports. Its classic use is stepping the optimizer
inside `backward`, one parameter at a time, so each gradient can be freed at once instead of all of them
living until `optimizer.step()`. Here a per-parameter SGD step, equal to the usual step taken after
`backward` (the tests prove it equal to `torch.optim.SGD` itself, over several steps):

```pycon
>>> _ = torch.manual_seed(0)
>>> fused, plain = nn.Linear(4, 3), nn.Linear(4, 3)
>>> plain.load_state_dict(fused.state_dict())
<All keys matched successfully>
>>> def sgd_in_backward(p):
...     with torch.no_grad():
...         p -= 0.1 * p.grad
...     p.grad = None                                 # freed at once
>>> handles = [p.register_post_accumulate_grad_hook(sgd_in_backward) for p in fused.parameters()]
>>> x = torch.randn(8, 4)
>>> fused(x).pow(2).mean().backward()                 # the step happens inside
>>> plain(x).pow(2).mean().backward()                 # the usual way: all gradients, then the step
>>> with torch.no_grad():
...     for p in plain.parameters():
...         p -= 0.1 * p.grad
>>> for a, b in zip(fused.parameters(), plain.parameters()):
...     torch.testing.assert_close(a, b)
>>> fused.weight.grad is None
True

```

## Module hooks: before and after, forward and backward

A module calls its hooks from `module(...)` (its `__call__`), in this order: **forward pre-hooks**
`fn(module, args)`, then `forward`, then **forward hooks** `fn(module, args, output)`; and in the backward
pass, **backward pre-hooks** `fn(module, grad_output)` before its gradients are computed and
**backward hooks** `fn(module, grad_input, grad_output)` after. Here `args` is the tuple of positional
inputs, `grad_output` the tuple of gradients with respect to the module's outputs and `grad_input` the
tuple of gradients with respect to its positional *tensor inputs*, not its parameters. A timeline:

```pycon
>>> layer = nn.Linear(3, 2)
>>> log = []
>>> handles = [
...     layer.register_forward_pre_hook(lambda m, args: log.append("forward pre-hook")),
...     layer.register_forward_hook(lambda m, args, out: log.append("forward hook")),
...     layer.register_full_backward_pre_hook(lambda m, g_out: log.append("backward pre-hook")),
...     layer.register_full_backward_hook(lambda m, g_in, g_out: log.append("backward hook")),
... ]
>>> layer(torch.randn(4, 3, requires_grad=True)).sum().backward()
>>> log
['forward pre-hook', 'forward hook', 'backward pre-hook', 'backward hook']
>>> for handle in handles:
...     handle.remove()

```

What the backward hook receives, for a `Linear`: one gradient out, $\partial L/\partial y$, and one
gradient in, $\partial L/\partial x = \frac{\partial L}{\partial y} W$. The weight's and bias's gradients are
not there; they go to `.grad` as usual. (A handle is a context manager too: `with handle:` removes the
hook at the end of the block, as here.)

```pycon
>>> x = torch.randn(4, 3, requires_grad=True)
>>> caught = {}
>>> with layer.register_full_backward_hook(lambda m, g_in, g_out: caught.update(g_in=g_in, g_out=g_out)):
...     layer(x).sum().backward()
>>> {name: [tuple(g.shape) for g in grads] for name, grads in caught.items()}
{'g_in': [(4, 3)], 'g_out': [(4, 2)]}
>>> torch.testing.assert_close(caught["g_in"][0], caught["g_out"][0] @ layer.weight)
>>> torch.testing.assert_close(caught["g_in"][0], x.grad)

```

Every hook may *replace* what it was given, by returning it:

- a forward pre-hook returns new `args` (a single value is wrapped into a tuple for you);
- a forward hook returns a new output;
- a backward pre-hook returns a new `grad_output`, a backward hook a new `grad_input`.

```pycon
>>> double_input = layer.register_forward_pre_hook(lambda m, args: args[0] * 2)
>>> zero_output = layer.register_forward_hook(lambda m, args, out: torch.zeros_like(out))
>>> x = torch.ones(1, 3)
>>> layer(x)
tensor([[0., 0.]])
>>> zero_output.remove()
>>> torch.testing.assert_close(layer(x), nn.functional.linear(2 * x, layer.weight, layer.bias))
>>> double_input.remove()

```

Two options widen the forward hooks. `with_kwargs=True` hands them the keyword arguments too:
`fn(module, args, kwargs)` for a pre-hook, which may return a new `(args, kwargs)` pair, and
`fn(module, args, kwargs, output)` for a forward hook. The classic use: a model calls Part 4's
[`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention] with `need_weights=False`
(which lets PyTorch's own module take a faster path), and you want the map anyway. A pre-hook flips the flag and a
forward hook keeps the map and returns only what the model expects:

```pycon
>>> from torchenstein.transformers.multihead import MultiheadAttention
>>> attention = MultiheadAttention(8, 2, batch_first=True)
>>> maps = []
>>> def want_weights(module, args, kwargs):
...     return args, {**kwargs, "need_weights": True}
>>> def keep_weights(module, args, kwargs, output):
...     maps.append(output[1].detach())
...     return output[0], None                            # what need_weights=False would have returned
>>> with (attention.register_forward_pre_hook(want_weights, with_kwargs=True),
...       attention.register_forward_hook(keep_weights, with_kwargs=True)):
...     tokens = torch.randn(2, 5, 8)
...     out, weights = attention(tokens, tokens, tokens, need_weights=False)
>>> {"out": tuple(out.shape), "weights": weights, "kept map": tuple(maps[0].shape)}   # (B, L, S), averaged over heads
{'out': (2, 5, 8), 'weights': None, 'kept map': (2, 5, 5)}

```

`always_call=True` makes a forward hook run even when `forward` raises (it then receives `None` as the
output), which is how a timer or a tracer closes its books on a crash. Both options exist in every torch this
course supports.

Full backward hooks have older siblings, `register_backward_hook`, deprecated because they hooked the
*last operation* of the module and so reported the gradients of that operation's inputs (for a `Linear`,
`addmm`'s bias, input and transposed weight); do not use them.

## Taking hooks back

A hook lives until its handle's `remove()` is called, and only the handle can do it. Hooks also cost
time: a module without any calls `forward` directly, one with even a single hook walks through the
machinery above on every call. So every hook you lend, you take back, and you take it back even when the
forward pass raises. [`temporary_hooks`][torchenstein.advanced.hooks.temporary_hooks] is a context
manager that hands you a list for the handles and removes every one in a `finally`:

```pycon
>>> from torchenstein.advanced.hooks import temporary_hooks
>>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
>>> try:
...     with temporary_hooks() as handles:
...         for module in net:
...             handles.append(module.register_forward_hook(lambda m, args, out: print(type(m).__name__)))
...         net(torch.ones(1, 3))                         # the wrong width: Linear raises
... except RuntimeError as error:
...     print("raised:", type(error).__name__)
raised: RuntimeError
>>> [len(module._forward_hooks) for module in net]         # every hook is gone anyway
[0, 0]

```

The NaN tracer of [Hunting NaNs](../../training/nans/index.md) uses the same `finally`, and one more
trick: its hook *raises* a private exception at the first non-finite output, which stops the forward
pass right there.

**Global hooks.** `torch.nn.modules.module.register_module_forward_hook(fn)` (and its `_pre_`,
`_backward_` siblings) registers a hook on *every module in the process*: yours, your library's, the
data augmentation's, the other model in the same notebook. It runs before each module's own hooks (a test checks the order).
It is a powerful debugging tool, and a dangerous one: a forgotten global hook slows every call of every
module and may change outputs anywhere. Scope it as tightly as a local one:

```pycon
>>> from torch.nn.modules.module import register_module_forward_hook
>>> calls = []
>>> with register_module_forward_hook(lambda m, args, out: calls.append(type(m).__name__)):
...     _ = net(torch.ones(1, 2))
...     _ = nn.GELU()(torch.ones(1))                      # an unrelated module: heard too
>>> calls
['Linear', 'ReLU', 'Sequential', 'GELU']

```

Children finish before their parent, so their forward hooks fire first.

## An activation recorder from scratch

Every inspection tool starts the same way: record what each layer outputs.
[`ActivationRecorder`][torchenstein.advanced.hooks.ActivationRecorder] lends a forward hook to every named
submodule (or to those you name) inside a `with` block and files each output under the module's
qualified name (its dotted path from the model, `"encoder.0"`, as `named_modules()` gives it), one entry
per call. Each output is **detached**, cut from the graph: the recording must
not keep autograd's memory alive (Dr. Hammer shows below what happens otherwise); `to_cpu=True` also
moves it off the GPU. Here it listens to Part 3's
[`spiral_classifier`][torchenstein.training.loop.spiral_classifier], and every recording equals the
output of running the layers by hand, one by one:

```pycon
>>> from torchenstein.advanced.hooks import ActivationRecorder
>>> from torchenstein.training.loop import spiral_classifier
>>> _ = torch.manual_seed(0)
>>> model = spiral_classifier(16)
>>> x = torch.randn(5, 2)
>>> with ActivationRecorder(model) as recorder:
...     logits = model(x)
>>> {name: tuple(recorder[name].shape) for name in recorder.activations}
{'0': (5, 16), '1': (5, 16), '2': (5, 16), '3': (5, 16), '4': (5, 3)}
>>> h = x
>>> for name, layer in model.named_children():
...     h = layer(h)
...     torch.testing.assert_close(recorder[name], h)
>>> {"recording requires grad": recorder["4"].requires_grad, "logits require grad": logits.requires_grad}
{'recording requires grad': False, 'logits require grad': True}
>>> ActivationRecorder(model, ["5"])
Traceback (most recent call last):
...
ValueError: names must name submodules of model, got ['5'] (known: ['0', '1', '2', '3', '4'])

```

Outputs that are tuples keep their shape: on the attention module above, the recording is an
`(output, weights)` pair. The tests prove the recorder on the multi-head attention, on modules called
several times, on the CPU copy and on its clean exit after an error.

## A gradient recorder

The backward twin, [`GradientRecorder`][torchenstein.advanced.hooks.GradientRecorder], records
$\partial L / \partial\,\text{output}$ for every module. It could use full backward hooks, but it uses a
lighter trick: a forward hook registers a *tensor hook* on each output as it is made, and the tensor hook
files the gradient when it passes. Full backward hooks wrap the module's inputs and outputs in an extra
autograd function, which forbids later in-place operations on them while gradients are being recorded
(an `nn.ReLU(inplace=True)` right after the module raises; under `torch.no_grad()` nothing is wrapped and
it runs) and warns when no input requires grad (see the traps); a tensor hook on the
output costs nothing of the kind. It agrees with autograd's own answer, `torch.autograd.grad` with
respect to the recorded outputs:

```pycon
>>> from torchenstein.advanced.hooks import GradientRecorder
>>> outputs = {}                                            # the live outputs, for the proof only
>>> def keep_output(name):
...     return lambda module, args, out: outputs.__setitem__(name, out)
>>> with temporary_hooks() as handles, GradientRecorder(model) as grads:
...     handles += [layer.register_forward_hook(keep_output(name)) for name, layer in model.named_children()]
...     loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1]))
...     loss.backward(retain_graph=True)
>>> expected = torch.autograd.grad(loss, list(outputs.values()))
>>> for name, grad in zip(outputs, expected):
...     torch.testing.assert_close(grads[name], grad)
>>> {name: tuple(grads[name].shape) for name in ("0", "4")}
{'0': (5, 16), '4': (5, 3)}

```

Together the two recorders draw a network's health chart. Here a ReLU MLP eight layers deep, once with
PyTorch's default initialisation and once with Kaiming's, recorded layer by layer
([Linear layers](../../nn/linear/index.md) explains the difference):

![Two panels over eight layers. Left: the mean and standard deviation of each ReLU's output; with PyTorch's default initialisation both shrink layer after layer towards zero, with Kaiming's they stay of the same size throughout. Right: the standard deviation of the gradient with respect to each ReLU's output on a log scale; with the default initialisation it is smallest at the first layer and grows by orders of magnitude towards the last, with Kaiming's it stays level.](plot_activation_statistics.svg)

## Editing gradients in flight

A hook that returns a tensor edits the gradient. The simplest useful edit clamps every element of
every parameter's gradient to $[-c, c]$, which is what `torch.nn.utils.clip_grad_value_` does after
`backward` (see [Gradient clipping](../../training/clipping/index.md)).
[`register_grad_value_clipping`][torchenstein.advanced.hooks.register_grad_value_clipping] does it
*during* `backward`, one tensor hook per parameter, so no unclipped gradient is ever stored. On one
backward pass the two are equal, values and gradients alike:

```pycon
>>> import copy
>>> from torchenstein.advanced.hooks import register_grad_value_clipping
>>> _ = torch.manual_seed(0)
>>> hooked = spiral_classifier(16)
>>> by_hand = copy.deepcopy(hooked)
>>> x, y = torch.randn(32, 2), torch.randint(0, 3, (32,))
>>> handles = register_grad_value_clipping(hooked.parameters(), clip_value=0.01)
>>> loss_hooked = nn.functional.cross_entropy(hooked(x), y)
>>> loss_hooked.backward()
>>> loss_by_hand = nn.functional.cross_entropy(by_hand(x), y)
>>> loss_by_hand.backward()
>>> torch.nn.utils.clip_grad_value_(by_hand.parameters(), clip_value=0.01)
>>> torch.testing.assert_close(loss_hooked, loss_by_hand)
>>> for a, b in zip(hooked.parameters(), by_hand.parameters()):
...     torch.testing.assert_close(a.grad, b.grad)
>>> round(max(p.grad.abs().max().item() for p in hooked.parameters()), 6)
0.01
>>> register_grad_value_clipping(hooked.parameters(), clip_value=0.0)
Traceback (most recent call last):
...
ValueError: clip_value must be positive and finite, got 0.0

```

**Where it differs from PyTorch.** A tensor hook sees the gradient of *one* backward pass, before it is
added to `.grad`. With gradient accumulation (several backward passes per step, see
[Gradient accumulation](../../tensors/accumulation/index.md)) the hook clamps each micro-batch's
contribution, `clip_grad_value_` clamps their sum: the results differ, and the tests pin that difference.
A parameter used twice in one pass is no problem: its hook fires once, on the sum, as shown above.

## What autograd saves: saved-tensor hooks

To compute gradients, many operations keep some of their tensors until `backward`: $\partial(xW^\top) /
\partial W$ needs $x$, the derivative of ReLU needs to know where its output was positive. These
**saved tensors**, met with their `_saved_*` attributes and the version counter that guards them in
[Autograd](../../tensors/autograd/index.md), are the main reason a forward pass for training needs more
memory than one for inference. Here is what each node of a small MLP saves:

```pycon
>>> _ = torch.manual_seed(0)
>>> mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
>>> x = torch.randn(8, 16)                                 # a batch that does not require grad
>>> out = mlp(x)
>>> last = out.grad_fn                                     # the last Linear: addmm(bias, input, weight.t())
>>> relu = last.next_functions[1][0]
>>> first = relu.next_functions[0][0].next_functions[1][0].next_functions[0][0]   # ReLU <- Linear <- ReLU <- Linear
>>> {"last": last.name(), "saves input": tuple(last._saved_mat1.shape),
...  "saves weight.t()": tuple(last._saved_mat2.shape), "ReLU saves": tuple(relu._saved_result.shape)}
{'last': 'AddmmBackward0', 'saves input': (8, 32), 'saves weight.t()': (32, 4), 'ReLU saves': (8, 32)}
>>> {"first saves input": tuple(first._saved_mat1.shape), "first saves weight.t()": first._saved_mat2}
{'first saves input': (8, 16), 'first saves weight.t()': None}

```

So a `Linear` saves its input (the weight's gradient needs it) and its transposed weight (the input's
gradient needs it, so not in a first layer whose input does not require grad); the bias saves nothing;
`ReLU` saves its output. `torch.autograd.graph.saved_tensors_hooks(pack_hook, unpack_hook)` lets us stand
at that door: inside the block, every tensor saved is first handed to `pack_hook(tensor)`, and autograd
keeps *whatever it returns*; in `backward`, `unpack_hook(packed)` must give the tensor back.
[`SavedTensorLedger`][torchenstein.advanced.hooks.SavedTensorLedger] is a pair of such hooks that writes
down every save, and [`saved_bytes`][torchenstein.advanced.hooks.saved_bytes] adds them up. The hand
count of [`linear_relu_saved_bytes`][torchenstein.advanced.hooks.linear_relu_saved_bytes], which only
knows the rules above, agrees:

```pycon
>>> from torchenstein.advanced.hooks import SavedTensorLedger, linear_relu_saved_bytes, saved_bytes
>>> {"measured": saved_bytes(mlp, x), "by hand": linear_relu_saved_bytes([16, 32, 32, 4], batch_size=8)}
{'measured': 9216, 'by hand': 9216}
>>> with SavedTensorLedger() as ledger:
...     out = mlp(x)
>>> [r.shape for r in ledger.records]
[(8, 16), (8, 32), (8, 32), (32, 32), (8, 32), (8, 32), (32, 4)]
>>> {"distinct": ledger.distinct_bytes(), "distinct, parameters aside": ledger.distinct_bytes(exclude=mlp.parameters())}
{'distinct': 7168, 'distinct, parameters aside': 2560}

```

The records tell the rest of the story. Each ReLU output is saved twice, by the ReLU and by the next
`Linear`, yet it is one block of memory; the transposed weights are views of the parameters, which exist
anyway. What backward really keeps alive beyond the weights is the input and the two hidden activations:
$4 \cdot (8 \cdot 16 + 2 \cdot 8 \cdot 32) = 2560$ bytes. What gets saved depends on how an operation is
written: our own `relu` from [Activation functions](../../nn/activations/index.md) is a `torch.where`,
which saves a one-byte boolean mask where `nn.ReLU` saves the four-byte output.

Autograd keeps whatever the pack hook returns, so the pack hook can store something *smaller*.
[`CompressSavedTensors`][torchenstein.advanced.hooks.CompressSavedTensors] stores each saved
floating-point tensor in bfloat16 and converts it back in `backward`. Two details decide whether it
saves anything: it leaves the parameters alone (`keep`: a bfloat16 copy of a weight would be *new*
memory), and it converts a tensor saved twice only once (`deduplicate`):

```pycon
>>> from torchenstein.advanced.hooks import CompressSavedTensors
>>> y = torch.randn(8, 4)
>>> def grads_of(hooks):
...     mlp.zero_grad()
...     with hooks:                                       # only the model's saves, not the loss's
...         out = mlp(x)
...     nn.functional.mse_loss(out, y).backward()
...     return [p.grad.clone() for p in mlp.parameters()]
>>> exact = grads_of(SavedTensorLedger())
>>> packer = CompressSavedTensors(torch.bfloat16, keep=mlp.parameters())
>>> approx = grads_of(packer)
>>> naive = CompressSavedTensors(torch.bfloat16, keep=mlp.parameters(), deduplicate=False)
>>> _ = grads_of(naive)
>>> {"float32": ledger.distinct_bytes(exclude=mlp.parameters()), "bfloat16": packer.held_bytes,
...  "bfloat16, each save apart": naive.held_bytes}
{'float32': 2560, 'bfloat16': 1280, 'bfloat16, each save apart': 2304}
>>> errors = [((a - e).norm() / e.norm()).item() for a, e in zip(approx, exact)]
>>> {"bitwise equal": all(torch.equal(a, e) for a, e in zip(approx, exact)), "within 1%": max(errors) < 0.01}
{'bitwise equal': False, 'within 1%': True}

```

Half the bytes, and every gradient off by a fraction of a percent in norm: bfloat16 keeps 8 significant
bits, so each stored value is rounded by at most $2^{-8}$ of itself, and the tests hold every gradient of
many seeds to a relative error below 1%. Whether that is acceptable is your experiment's decision, not
mine. Passing `device="cpu"` (with `dtype=None`) instead *offloads* the saved tensors to the CPU's memory
and brings them back for `backward`, bit for bit: PyTorch ships that one as
`torch.autograd.graph.save_on_cpu`.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the hook that hoards the graph"
    Hammer records every layer's output during validation with a hook that appends `output`, not
    `output.detach()`, and validates without `torch.no_grad()`. Each stored output still holds its
    `grad_fn`, which holds the tensors its graph saved, so nothing of any batch's graph is ever freed.
    The ledger counts what is still alive after five batches:

    ```pycon
    >>> def validate(store):
    ...     kept = []
    ...     with temporary_hooks() as handles, SavedTensorLedger() as ledger:
    ...         for module in mlp:
    ...             handles.append(module.register_forward_hook(lambda m, args, out: kept.append(store(out))))
    ...         for _ in range(5):
    ...             mlp(torch.randn(8, 16))               # the output is dropped at once
    ...     return ledger.live_bytes()
    >>> {"hoarded": validate(lambda out: out), "detached": validate(lambda out: out.detach())}
    {'hoarded': 46080, 'detached': 0}
    >>> with torch.no_grad():                             # the forward hooks still fire, nothing is saved
    ...     {"hoarded, under no_grad": validate(lambda out: out)}
    {'hoarded, under no_grad': 0}

    ```

    Five times the whole graph of the forward pass (9216 bytes each, as counted above) against nothing.
    `ActivationRecorder` detaches for you; `torch.no_grad()` around a validation loop saves nothing in the
    first place (forward hooks still run under it, tensor and backward hooks have no backward to run in).

!!! hammer "Dr. Hammer's trap: the first layer's missing grad_input"
    Hammer logs the norm of every layer's input gradient with a full backward hook. On the first layer,
    whose input is data that does not require grad, there is no input gradient: PyTorch calls the hook
    with `grad_input = (None,)` and warns. His logger dies on `None`:

    ```pycon
    >>> import warnings
    >>> norms = {}
    >>> def log_norm(module, grad_input, grad_output):
    ...     norms[module] = grad_input[0].norm()
    >>> first_layer = mlp[0]
    >>> with warnings.catch_warnings(record=True) as caught, first_layer.register_full_backward_hook(log_norm):
    ...     warnings.simplefilter("always")
    ...     mlp(x).sum().backward()
    Traceback (most recent call last):
    ...
    AttributeError: 'NoneType' object has no attribute 'norm'
    >>> "no inputs require gradients" in str(caught[0].message)
    True

    ```

    Check for `None`, or log what the layer always has, `grad_output` (the `GradientRecorder` way):

    ```pycon
    >>> def log_norm(module, grad_input, grad_output):
    ...     norms[module] = grad_output[0].norm()
    >>> with warnings.catch_warnings(), first_layer.register_full_backward_hook(log_norm):
    ...     warnings.simplefilter("ignore")
    ...     mlp(x).sum().backward()
    >>> list(norms) == [first_layer]
    True

    ```

!!! hammer "Dr. Hammer's trap: the hook that is never removed"
    Hammer wraps his logging in a function and calls it at the start of every epoch. Each call registers
    one more hook and throws the handle away, so after three epochs every forward pass logs three times,
    and no code anywhere can take the hooks back (only the handles could):

    ```pycon
    >>> logged = []
    >>> def attach_logger(model):
    ...     model.register_forward_hook(lambda m, args, out: logged.append(out.shape))
    >>> monster = nn.Linear(2, 2)
    >>> for epoch in range(3):
    ...     attach_logger(monster)
    ...     logged.clear()
    ...     _ = monster(torch.ones(1, 2))
    ...     print(f"epoch {epoch}: hook calls per forward pass = {len(logged)}")
    epoch 0: hook calls per forward pass = 1
    epoch 1: hook calls per forward pass = 2
    epoch 2: hook calls per forward pass = 3

    ```

    Keep the handle and remove it, or register inside `temporary_hooks` (or `with handle:`):

    ```pycon
    >>> monster = nn.Linear(2, 2)
    >>> for epoch in range(3):
    ...     logged.clear()
    ...     with monster.register_forward_hook(lambda m, args, out: logged.append(out.shape)):
    ...         _ = monster(torch.ones(1, 2))
    >>> {"hook calls per forward pass": len(logged), "hooks left": len(monster._forward_hooks)}
    {'hook calls per forward pass': 1, 'hooks left': 0}

    ```

!!! hammer "Dr. Hammer's trap: editing the output in place"
    Hammer doubles a ReLU's output in a forward hook with `output.mul_(2)`: no return value needed, he
    says, the tensor is changed anyway. The forward pass is fine. But `ReLU` saved that very tensor for its
    backward pass, and autograd's version counter (see [Autograd](../../tensors/autograd/index.md)) notices
    it was overwritten:

    ```pycon
    >>> net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> handle = net[1].register_forward_hook(lambda m, args, out: out.mul_(2))
    >>> net(torch.randn(3, 2)).sum().backward()
    Traceback (most recent call last):
    ...
    RuntimeError: one of the variables needed for gradient computation has been modified by an inplace operation: ...
    >>> handle.remove()

    ```

    Return a new tensor instead; the module's output is replaced, and the saved one stays intact:

    ```pycon
    >>> x = torch.randn(3, 2)
    >>> with net[1].register_forward_hook(lambda m, args, out: out * 2):
    ...     doubled = net(x)
    ...     doubled.sum().backward()
    >>> torch.testing.assert_close(doubled, net[2](2 * net[1](net[0](x))))

    ```

    And call modules as `module(x)`, never `module.forward(x)`: hooks live in `__call__`, so a direct call
    to `forward` skips every one of them, silently.

## Challenges

**1. Who ran, and how often?** Write `count_forward_calls(model, *inputs, **kwargs)`: call
`model(*inputs, **kwargs)` once and return `{name: calls}` for every module of `model.named_modules()`
(`""` for the model itself), in that order; a module called twice counts 2, one never called counts 0.
Every hook you add must be gone afterwards, also when the model raises (the error must reach the caller).

**2. The gradient reversal layer.** Domain-adversarial training (Ganin and Lempitsky, 2015) teaches a
feature extractor to *fool* a domain classifier by flipping the gradient between them. Write
`gradient_reversal(x, lambda_=1.0)`: return a tensor equal to `x` whose gradient, on its way back, is
multiplied by `-lambda_`. Only the gradient through the returned tensor may flip: `x` may feed other
paths too. Use a tensor hook.

Check an attempt with `check_count_forward_calls(my_function)` (or `check_gradient_reversal`), or put
your functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's
answers pass:

```pycon
>>> from torchenstein.advanced.hooks import (
...     check_count_forward_calls, check_gradient_reversal, count_forward_calls, gradient_reversal)
>>> check_count_forward_calls(count_forward_calls)
>>> check_gradient_reversal(gradient_reversal)

```
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from numbers import Real
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.hooks import RemovableHandle

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# Taking hooks back


@contextlib.contextmanager
def temporary_hooks() -> Iterator[list[RemovableHandle]]:
    """A list to put hook handles in; every handle in it is removed on leaving the block, error or not.

    Yields:
        An empty list. Append the handle of each hook you register inside the block.

    Examples:
        >>> layer = nn.Linear(2, 2)
        >>> with temporary_hooks() as handles:
        ...     handles.append(layer.register_forward_hook(lambda module, args, output: output * 0))
        ...     layer(torch.ones(1, 2)).abs().sum().item()
        0.0
        >>> len(layer._forward_hooks)
        0
    """
    handles: list[RemovableHandle] = []
    try:
        yield handles
    finally:
        # Last registered, first removed: the reverse of the order they went on, like bandages. `remove`
        # never raises, so every handle comes off even when the block itself raised.
        for handle in reversed(handles):
            handle.remove()


# The recorders


class ActivationRecorder:
    """Record the output of every named submodule of a model, each time it runs, while in a ``with`` block.

    Each output is detached from the graph (a recording must not keep autograd's saved tensors alive)
    and, with ``to_cpu=True``, copied to the CPU. Outputs that are tuples, lists or dicts are recorded
    with the same structure; anything that is not a tensor is kept as it is.

    Args:
        model: the network to listen to.
        names: the qualified names (as in ``model.named_modules()``) of the modules to record; ``None``
            records every submodule (``""``, the model itself, only when named).
        to_cpu: copy every recorded tensor to the CPU (the GPU's memory stays free).

    Attributes:
        activations: ``{name: [output of call 1, output of call 2, ...]}``, one list per module, in the
            order of ``names`` (or of ``named_modules()``).

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or ``to_cpu`` not a bool.
        ValueError: if a name is not the name of a submodule of ``model``.

    Examples:
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        >>> with ActivationRecorder(net) as recorder:
        ...     out = net(torch.randn(2, 3))
        >>> list(recorder.activations), torch.equal(recorder["1"], out), recorder["1"].requires_grad
        (['0', '1'], True, False)
    """

    def __init__(self, model: nn.Module, names: Iterable[str] | None = None, *, to_cpu: bool = False) -> None:
        self.modules = _select_modules(model, names)
        self.to_cpu = _check_bool("to_cpu", to_cpu)
        self.activations: dict[str, list[Any]] = {name: [] for name in self.modules}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> ActivationRecorder:
        self._handles = [module.register_forward_hook(self._recorder(name)) for name, module in self.modules.items()]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __getitem__(self, name: str) -> Any:
        """The output of the latest call of the module ``name``."""
        calls = self.activations[name]
        if not calls:
            raise KeyError(f"module {name!r} did not run while recording")
        return calls[-1]

    def _recorder(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            # Returning None leaves the output as it is: the recorder listens and never edits.
            self.activations[name].append(_map_tensors(output, self._keep))

        return hook

    def _keep(self, tensor: Tensor) -> Tensor:
        # detach() shares the memory and drops the graph; to("cpu") copies only when not already there.
        tensor = tensor.detach()
        return tensor.to("cpu") if self.to_cpu else tensor


class GradientRecorder:
    """Record the gradient of the loss with respect to every named submodule's output, while in a ``with`` block.

    A forward hook puts a tensor hook on each output as it is made; the tensor hook receives that output's
    gradient during ``backward`` and files it under the module's name and call number. ``backward`` must
    run inside the block: on leaving it every hook is removed, the tensor hooks too.

    Args:
        model: the network to listen to.
        names: the qualified names of the modules to record; ``None`` records every submodule.
        to_cpu: copy every recorded gradient to the CPU.

    Attributes:
        grads: ``{name: [gradient for call 1, gradient for call 2, ...]}``: the gradient with respect to
            the module's output (its first tensor, for a module that returns a tuple), ``None`` where no
            gradient reached that call.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module`` or ``to_cpu`` not a bool.
        ValueError: if a name is not the name of a submodule of ``model``.

    Examples:
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        >>> with GradientRecorder(net) as recorder:
        ...     net(torch.randn(2, 3)).sum().backward()
        >>> recorder.grads["1"][0]
        tensor([[1., 1., 1., 1.],
                [1., 1., 1., 1.]])
    """

    def __init__(self, model: nn.Module, names: Iterable[str] | None = None, *, to_cpu: bool = False) -> None:
        self.modules = _select_modules(model, names)
        self.to_cpu = _check_bool("to_cpu", to_cpu)
        self.grads: dict[str, list[Tensor | None]] = {name: [] for name in self.modules}
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> GradientRecorder:
        self._handles = [module.register_forward_hook(self._recorder(name)) for name, module in self.modules.items()]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __getitem__(self, name: str) -> Tensor | None:
        """The gradient for the latest call of the module ``name``."""
        calls = self.grads[name]
        if not calls:
            raise KeyError(f"module {name!r} did not run while recording")
        return calls[-1]

    def _recorder(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            calls = self.grads[name]
            calls.append(None)  # a slot for this call, filled if a gradient ever arrives
            tensor = _first_tensor(output)
            if tensor is not None and tensor.requires_grad:
                self._handles.append(tensor.register_hook(self._filer(name, len(calls) - 1)))

        return hook

    def _filer(self, name: str, call: int) -> Callable:
        def tensor_hook(grad: Tensor) -> None:
            # Returning None sends the gradient on unchanged.
            grad = grad.detach()
            self.grads[name][call] = grad.to("cpu") if self.to_cpu else grad

        return tensor_hook


# Editing a gradient on its way back


def register_grad_value_clipping(parameters: Tensor | Iterable[Tensor], clip_value: float) -> list[RemovableHandle]:
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` during ``backward``, by tensor hooks.

    The same clamp as ``torch.nn.utils.clip_grad_value_``, applied as each gradient arrives instead of
    after the whole backward pass.

    Args:
        parameters: a tensor or an iterable of tensors; those that do not require grad are skipped.
        clip_value: the largest magnitude a gradient element may keep, positive and finite.

    Returns:
        The hooks' handles: ``remove()`` them to stop clipping.

    Raises:
        TypeError: if ``parameters`` holds something that is not a tensor, or ``clip_value`` is not a number.
        ValueError: if ``clip_value`` is not positive and finite.

    Examples:
        >>> w = torch.tensor([1.0, -2.0], requires_grad=True)
        >>> handles = register_grad_value_clipping([w], clip_value=0.5)
        >>> (3.0 * w).sum().backward()
        >>> w.grad
        tensor([0.5000, 0.5000])
    """
    clip_value = _check_clip_value(clip_value)
    tensors = _check_tensors("parameters", parameters)

    def clip(grad: Tensor) -> Tensor:
        # A new tensor, never grad.clamp_(...): a hook must not change the gradient it was handed in place.
        return grad.clamp(-clip_value, clip_value)

    return [tensor.register_hook(clip) for tensor in tensors if tensor.requires_grad]


# What autograd saves


class SavedTensor(NamedTuple):
    """What a `SavedTensorLedger` writes down about one tensor autograd saved."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    nbytes: int
    """The tensor's own bytes: ``numel() * element_size()``."""
    storage: int
    """The address of the memory block it lives in: two saves with the same address share memory."""
    storage_nbytes: int
    """The size of that whole memory block, which stays alive as long as the save does."""


class _Box:
    """The object a pack hook hands to autograd: a tensor in a box we can hold a weak reference to."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor


class SavedTensorLedger(saved_tensors_hooks):
    """While active, write down every tensor autograd saves for the backward pass, and keep track of which live on.

    A pair of saved-tensor hooks: the pack hook records the tensor and hands autograd a box holding it,
    the unpack hook opens the box during ``backward``. When the graph that holds a box is freed, the box
    dies, so `live_bytes` can say how much is still held.

    Attributes:
        records: one `SavedTensor` per save, in the order the forward pass saved them.

    Examples:
        >>> layer = nn.Linear(3, 2)
        >>> with SavedTensorLedger() as ledger:
        ...     out = layer(torch.randn(4, 3))
        >>> [(r.shape, r.nbytes) for r in ledger.records]
        [((4, 3), 48)]
        >>> ledger.live_bytes()
        48
        >>> del out
        >>> ledger.live_bytes()
        0
    """

    def __init__(self) -> None:
        self.records: list[SavedTensor] = []
        self._boxes: list[weakref.ref] = []
        super().__init__(self._pack, self._unpack)

    def __enter__(self) -> SavedTensorLedger:
        super().__enter__()  # torch's returns None; a ledger is worth keeping
        return self

    def _pack(self, tensor: Tensor) -> _Box:
        storage = tensor.untyped_storage()
        self.records.append(SavedTensor(tuple(tensor.shape), tensor.dtype, tensor.numel() * tensor.element_size(),
                                        storage.data_ptr(), storage.nbytes()))
        # The box holds a detached alias (same memory, no grad_fn). Holding the tensor itself would close a
        # cycle when an operation saves its own output (output -> its grad_fn -> box -> output), and then
        # only Python's garbage collector, not the reference count, could ever free it.
        box = _Box(tensor.detach())
        self._boxes.append(weakref.ref(box))
        return box

    @staticmethod
    def _unpack(box: _Box) -> Tensor:
        return box.tensor

    @property
    def total_bytes(self) -> int:
        """The bytes of every save added up: a tensor saved twice counts twice."""
        return sum(record.nbytes for record in self.records)

    def distinct_bytes(self, exclude: Iterable[Tensor] = ()) -> int:
        """The memory the saves hold, each memory block counted once, leaving out the blocks of ``exclude``.

        Args:
            exclude: tensors whose memory does not count, typically ``model.parameters()``: the weights
                exist whether or not autograd saves them.
        """
        skip = {tensor.untyped_storage().data_ptr() for tensor in _check_tensors("exclude", exclude)}
        blocks = {r.storage: r.storage_nbytes for r in self.records if r.storage not in skip}
        return sum(blocks.values())

    def live_bytes(self) -> int:
        """The bytes of the saves that some graph still holds: a freed graph frees its saves."""
        return sum(record.nbytes for record, box in zip(self.records, self._boxes, strict=True) if box() is not None)


def saved_bytes(model: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """Run ``model(*inputs, **kwargs)`` once and count the bytes of every tensor autograd saves for backward.

    Each save counts: a tensor that two operations save is counted twice (see
    `SavedTensorLedger.distinct_bytes` for the memory they really hold).

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.

    Examples:
        >>> saved_bytes(nn.Linear(3, 2), torch.randn(4, 3))      # the input, 4 * 3 float32
        48
        >>> with torch.no_grad():
        ...     saved_bytes(nn.Linear(3, 2), torch.randn(4, 3))
        0
    """
    _check_module(model)
    with SavedTensorLedger() as ledger:
        model(*inputs, **kwargs)
    return ledger.total_bytes


def linear_relu_saved_bytes(sizes: Iterable[int], batch_size: int, *, input_requires_grad: bool = False,
                            element_size: int = 4) -> int:
    """The hand count: bytes autograd saves for ``nn.Sequential(Linear, ReLU, ..., Linear)`` on a 2-D batch.

    Args:
        sizes: the feature sizes, input first: ``[16, 32, 4]`` is ``Linear(16, 32), ReLU(), Linear(32, 4)``.
        batch_size: the rows of the input, shape ``(batch_size, sizes[0])``.
        input_requires_grad: whether the input itself requires grad.
        element_size: bytes per element, 4 for float32.

    Raises:
        ValueError: if ``sizes`` has fewer than two positive ints, or a count is not positive.

    Examples:
        >>> linear_relu_saved_bytes([3, 2], batch_size=4)
        48
    """
    sizes = _check_sizes(sizes, batch_size, element_size)
    elements = 0
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        # Linear is one addmm(bias, input, weight.t()). The weight's gradient is grad_output^T @ input, so
        # it saves the input, (B, fan_in); the bias's gradient is a sum and needs nothing.
        elements += batch_size * fan_in
        # The input's gradient is grad_output @ weight, so it saves the weight (as the view weight.t(),
        # (fan_in, fan_out)), but only when that gradient is wanted: not for the first layer of a model
        # whose input does not require grad.
        if layer > 0 or input_requires_grad:
            elements += fan_in * fan_out
        # ReLU saves its own output, (B, fan_out): its derivative is 1 exactly where the output is positive.
        if layer < len(sizes) - 2:
            elements += batch_size * fan_out
    return elements * element_size


class CompressSavedTensors(saved_tensors_hooks):
    """While active, store the tensors autograd saves in a smaller dtype (and/or on another device).

    The pack hook converts each floating-point tensor wider than ``dtype`` (and moves it to ``device``),
    the unpack hook converts it back during ``backward``: less memory between the passes, for gradients
    computed from rounded values.

    Args:
        dtype: the dtype to store floating-point tensors in (only those with wider elements), or ``None``
            to keep every dtype.
        device: where to store saved tensors (``"cpu"`` offloads a GPU's activations), or ``None`` to
            leave them where they are.
        keep: tensors whose memory is never converted, typically ``model.parameters()``: a weight is in
            memory anyway, and a converted copy of it would only add bytes.
        deduplicate: convert a tensor saved twice (ReLU's output is saved by the ReLU and by the next
            Linear) once, and hand both saves the same copy.

    Attributes:
        held_bytes: the memory the saves hold (each block once, ``keep`` left out), as
            `SavedTensorLedger.distinct_bytes` counts it.

    Raises:
        TypeError: if ``dtype`` is not a floating-point ``torch.dtype``, ``device`` not a device,
            ``keep`` not tensors or ``deduplicate`` not a bool.

    Examples:
        >>> layer = nn.Linear(3, 2)
        >>> with CompressSavedTensors(torch.bfloat16) as packer:
        ...     out = layer(torch.randn(4, 3))
        >>> packer.held_bytes                                      # 4 * 3 bfloat16
        24
    """

    def __init__(self, dtype: torch.dtype | None = torch.bfloat16, *, device: torch.device | str | None = None,
                 keep: Iterable[Tensor] = (), deduplicate: bool = True) -> None:
        self.dtype, self.device = _check_packing(dtype, device)
        self.deduplicate = _check_bool("deduplicate", deduplicate)
        self._keep = {tensor.untyped_storage().data_ptr() for tensor in _check_tensors("keep", keep)}
        self._held: dict[int, int] = {}  # memory block address -> its bytes
        self._copies: dict[int, tuple[weakref.ref, int, tuple]] = {}  # id(tensor) -> (tensor, version, packed)
        super().__init__(self._pack, self._unpack)

    @property
    def held_bytes(self) -> int:
        return sum(self._held.values())

    def __enter__(self) -> CompressSavedTensors:
        super().__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # The copies belong to the graph now; our cache must not keep them alive.
        self._copies.clear()
        super().__exit__(*exc_info)

    def _pack(self, tensor: Tensor) -> tuple[torch.dtype, torch.device, Tensor]:
        # The same tensor saved again, unchanged since (same version), gets the copy made the first time.
        cached = self._copies.get(id(tensor))
        if self.deduplicate and cached is not None and cached[0]() is tensor and cached[1] == tensor._version:
            return cached[2]
        stored = tensor.detach()  # no grad_fn inside the package: see SavedTensorLedger for the cycle
        if stored.untyped_storage().data_ptr() not in self._keep:
            shrink = (self.dtype is not None and stored.is_floating_point()
                      and stored.element_size() > torch.finfo(self.dtype).bits // 8)
            stored = stored.to(device=self.device or stored.device, dtype=self.dtype if shrink else stored.dtype)
            storage = stored.untyped_storage()
            self._held[storage.data_ptr()] = storage.nbytes()
        packed = (tensor.dtype, tensor.device, stored)
        self._copies[id(tensor)] = (weakref.ref(tensor), tensor._version, packed)
        return packed

    @staticmethod
    def _unpack(packed: tuple[torch.dtype, torch.device, Tensor]) -> Tensor:
        dtype, device, stored = packed
        return stored.to(device=device, dtype=dtype)


# The figure


def plot_activation_statistics(*, depth: int = 8, width: int = 64, batch_size: int = 256, seed: int = 0) -> Figure:
    """Record a deep ReLU MLP's activations and gradients layer by layer, with two initialisations, and draw them.

    The MLP is Part 2's `sequential_mlp` (``Linear`` and ``ReLU`` layers, one output); once with PyTorch's
    default initialisation, once with Kaiming's normal one for ReLU (zero biases). `ActivationRecorder`
    captures each ReLU's output, `GradientRecorder` the gradient of ``mean(output**2)`` with respect to it.

    Args:
        depth: the number of hidden layers (ReLUs).
        width: the features of every hidden layer.
        batch_size: rows of the random input batch.
        seed: seeds the weights and the input.

    Returns:
        A figure with two axes: activation mean and standard deviation per layer, and gradient standard
        deviation per layer (log scale).

    Raises:
        ValueError: if a size is not a positive int.

    Examples:
        >>> fig = plot_activation_statistics(depth=3, width=8, batch_size=16)
        >>> len(fig.axes), [len(ax.lines) for ax in fig.axes]
        (2, [4, 2])
    """
    from torchenstein.nn.containers import sequential_mlp

    for name, value in (("depth", depth), ("width", width), ("batch_size", batch_size)):
        _check_positive_int(name, value)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, width, generator=generator)
    fig, (ax_act, ax_grad) = new_figure(1, 2, width=9.0, height=3.4)
    layers = range(1, depth + 1)
    for colour, init in zip(PALETTE, ("PyTorch default", "Kaiming normal"), strict=False):
        # The same seed for both models, drawn from a forked generator: the caller's random state is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = sequential_mlp([width] * (depth + 1) + [1])
            if init == "Kaiming normal":
                for module in model:
                    if isinstance(module, nn.Linear):
                        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                        nn.init.zeros_(module.bias)
        relus = [name for name, module in model.named_children() if isinstance(module, nn.ReLU)]
        with ActivationRecorder(model, relus) as acts, GradientRecorder(model, relus) as grads:
            model(x).pow(2).mean().backward()
        ax_act.plot(layers, [acts[n].std().item() for n in relus], "o-", color=colour, label=f"{init}: std")
        ax_act.plot(layers, [acts[n].mean().item() for n in relus], "s--", color=colour, label=f"{init}: mean")
        ax_grad.plot(layers, [grads[n].std().item() for n in relus], "o-", color=colour, label=init)
    ax_act.set(title="Activations (each ReLU's output)", xlabel="layer", ylabel="value")
    ax_grad.set(title="Gradients w.r.t. each ReLU's output", xlabel="layer", ylabel="standard deviation",
                yscale="log")
    for ax in (ax_act, ax_grad):
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_act.legend(fontsize=7)
    ax_grad.legend(fontsize=8)
    return fig


# Challenges


def count_forward_calls(model: nn.Module, *inputs: Any, **kwargs: Any) -> dict[str, int]:
    """Challenge solution: run ``model(*inputs, **kwargs)`` once and count how often each module's forward ran.

    Returns:
        ``{name: calls}`` for every module in ``model.named_modules()`` (``""`` is the model itself), in
        that order; a module shared under two names is counted under the first.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``; whatever the model raises is raised too, and no
            hook outlives the call.

    Examples:
        >>> count_forward_calls(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), torch.ones(1, 2))
        {'': 1, '0': 1, '1': 1}
    """
    _check_module(model)
    counts = dict.fromkeys((name for name, _ in model.named_modules()), 0)

    def counter(name: str) -> Callable:
        # A pre-hook counts a call as it starts, so a call that raises midway still counts.
        def hook(module: nn.Module, args: tuple) -> None:
            counts[name] += 1

        return hook

    with temporary_hooks() as handles:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(counter(name)))
        model(*inputs, **kwargs)
    return counts


def check_count_forward_calls(candidate: Callable[..., dict[str, int]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``count_forward_calls``.

    Examples:
        >>> check_count_forward_calls(count_forward_calls)
    """

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(3, 3), nn.Tanh())
            self.unused = nn.Linear(3, 3)
            self.head = nn.Linear(3, 1)

        def forward(self, x: Tensor, *, repeat: int = 2) -> Tensor:
            for _ in range(repeat):
                x = self.block(x)
            return self.head(x)

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 2)

        def forward(self, x: Tensor) -> Tensor:
            self.layer(x)
            raise ValueError("the monster broke its chains")

    shared = nn.Linear(2, 2)
    cases = [
        ("a block called twice, a module never called", Twice(), (torch.randn(4, 3),), {},
         {"": 1, "block": 2, "block.0": 2, "block.1": 2, "unused": 0, "head": 1}),
        ("a keyword argument passed on (repeat=3)", Twice(), (torch.randn(4, 3),), {"repeat": 3},
         {"": 1, "block": 3, "block.0": 3, "block.1": 3, "unused": 0, "head": 1}),
        ("one Linear at positions 0 and 2 of a Sequential", nn.Sequential(shared, nn.ReLU(), shared), (torch.randn(1, 2),),
         {}, {"": 1, "0": 2, "1": 1}),
    ]
    for what, model, args, kwargs, expected in cases:
        got = candidate(model, *args, **kwargs)
        assert isinstance(got, dict), f"{what}: return a dict of counts, got {type(got).__name__}"
        assert dict(got) == expected, f"{what}: expected {expected}, got {dict(got)}"
        assert list(got) == list(expected), (
            f"{what}: the names must come in the order of named_modules(), {list(expected)}, got {list(got)}")
        _assert_no_hooks_left(model, what)
    broken = Broken()
    try:
        candidate(broken, torch.randn(1, 2))
    except ValueError:
        pass
    else:
        raise AssertionError("a model that raises ValueError: the error must reach the caller")
    _assert_no_hooks_left(broken, "a model that raises")


def gradient_reversal(x: Tensor, lambda_: float = 1.0) -> Tensor:
    """Challenge solution: ``x`` unchanged on the way forward; its gradient times ``-lambda_`` on the way back.

    The gradient reversal layer of domain-adversarial training (Ganin and Lempitsky, 2015), as a tensor hook.

    Args:
        x: any tensor.
        lambda_: the factor the gradient is multiplied by, besides the sign flip; finite.

    Returns:
        A new view of ``x`` with the same values; only gradients that pass through it are reversed.

    Raises:
        TypeError: if ``x`` is not a tensor or ``lambda_`` not a real number.
        ValueError: if ``lambda_`` is not finite.

    Examples:
        >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> (3.0 * gradient_reversal(x, 0.5)).sum().backward()
        >>> x.grad
        tensor([-1.5000, -1.5000])
    """
    lambda_ = _check_lambda(x, lambda_)
    # A fresh view, so the hook sits on this path only: a hook on x itself would reverse every use of x.
    y = x.view_as(x)
    if y.requires_grad:
        y.register_hook(lambda grad: grad * -lambda_)
    return y


def check_gradient_reversal(candidate: Callable[[Tensor, float], Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``gradient_reversal``.

    Examples:
        >>> check_gradient_reversal(gradient_reversal)
    """
    generator = torch.Generator().manual_seed(0)
    for lambda_ in (1.0, 0.5, 0.0, 2.0):
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(3, 4, generator=generator, dtype=dtype).requires_grad_()
            w, v = torch.randn(2, 3, 4, generator=generator, dtype=dtype).unbind(0)
            y = candidate(x, lambda_)
            assert isinstance(y, Tensor) and y.shape == x.shape and y.dtype == dtype, (
                f"lambda_={lambda_}, {dtype}: return a tensor shaped and typed like x, got {y!r}")
            assert torch.equal(y, x), f"lambda_={lambda_}: the forward values must be x's, unchanged"
            # x also feeds a second path that must keep its ordinary gradient.
            ((y * w).sum() + (x * v).sum()).backward()
            expected = -lambda_ * w + v
            torch.testing.assert_close(x.grad, expected, msg=lambda m, lam=lambda_: (
                f"lambda_={lam}: x is also used outside the reversal, and only the gradient through the "
                f"returned tensor may be flipped (a hook on x itself flips both paths): {m}"))
            # A second, fresh call must not stack another reversal on top of the first.
            x.grad = None
            (candidate(x, lambda_) * w).sum().backward()
            torch.testing.assert_close(x.grad, -lambda_ * w, msg=lambda m, lam=lambda_: (
                f"lambda_={lam}, calling the candidate a second time: the gradient must be reversed once, "
                f"not once per call so far: {m}"))
    a = torch.randn(5, generator=generator).requires_grad_()
    (candidate(2.0 * a, 1.0) * 3.0).sum().backward()
    torch.testing.assert_close(a.grad, torch.full((5,), -6.0),
                               msg=lambda m: f"a non-leaf input (2 * a): the reversed gradient must flow on to a: {m}")
    plain = torch.randn(4, generator=generator)
    try:
        out = candidate(plain, 1.0)
    except Exception as error:  # a crash is a wrong answer, reported with its case
        raise AssertionError(f"an input that does not require grad must pass through, got {error!r}") from error
    assert torch.equal(out, plain), "an input that does not require grad must come back with its values unchanged"


# Checks, kept out of the way of the ideas above


def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to every tensor in a nest of tuples, lists and dicts; leave everything else alone."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a named tuple keeps its type
        return type(obj)(*(_map_tensors(item, fn) for item in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(item, fn) for item in obj)
    if isinstance(obj, dict):
        return {key: _map_tensors(value, fn) for key, value in obj.items()}
    return obj


def _first_tensor(obj: Any) -> Tensor | None:
    """The first tensor in a nest of tuples, lists and dicts, or ``None``."""
    if isinstance(obj, Tensor):
        return obj
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (tuple, list)) else ()
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _assert_no_hooks_left(model: nn.Module, what: str) -> None:
    for name, module in model.named_modules():
        left = len(module._forward_hooks) + len(module._forward_pre_hooks)
        assert left == 0, f"{what}: {left} hook(s) left on module {name!r}; remove every hook, even on error"


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def _select_modules(model: object, names: Iterable[str] | None) -> dict[str, nn.Module]:
    _check_module(model)
    every = dict(model.named_modules())
    if names is None:
        return {name: module for name, module in every.items() if name}
    if isinstance(names, str):
        raise TypeError(f"names must be an iterable of module names, got the string {names!r}")
    names = list(names)
    unknown = [name for name in names if name not in every]
    if unknown:
        raise ValueError(f"names must name submodules of model, got {unknown} (known: {[n for n in every if n]})")
    return {name: every[name] for name in names}


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def _check_tensors(name: str, tensors: Tensor | Iterable[Tensor]) -> list[Tensor]:
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    for tensor in tensors:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a tensor or an iterable of tensors, got an element of type "
                            f"{type(tensor).__name__}")
    return tensors


def _check_clip_value(clip_value: object) -> float:
    if isinstance(clip_value, bool) or not isinstance(clip_value, Real):
        raise TypeError(f"clip_value must be a number, got {clip_value!r}")
    if not (math.isfinite(clip_value) and clip_value > 0):
        raise ValueError(f"clip_value must be positive and finite, got {clip_value}")
    return float(clip_value)


def _check_lambda(x: object, lambda_: object) -> float:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(lambda_, bool) or not isinstance(lambda_, Real):
        raise TypeError(f"lambda_ must be a real number, got {lambda_!r}")
    if not math.isfinite(lambda_):
        raise ValueError(f"lambda_ must be finite, got {lambda_}")
    return float(lambda_)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_sizes(sizes: Iterable[int], batch_size: object, element_size: object) -> list[int]:
    sizes = list(sizes)
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive ints, got {sizes}")
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("element_size", element_size)
    return sizes


def _check_packing(dtype: object, device: object) -> tuple[torch.dtype | None, torch.device | None]:
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype or None, got {dtype!r}")
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a torch.device, a string or None, got {device!r}")
    return dtype, None if device is None else torch.device(device)
