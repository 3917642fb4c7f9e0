r"""
# Autograd: The Ghost That Remembers Every Operation

!!! torchenstein "The Professor speaks"
    Every tensor that `requires_grad` is haunted. A ghost follows it through every multiplication, every
    `exp`, every sum, and writes down what happened, so that one call to `backward` can replay the story
    in reverse and hand each input its gradient. Today we interrogate that ghost, and then, MWAHAHA, we
    build one of our own from a page of plain Python and prove it tells exactly the same story.

**You will learn to**

- tell leaves from intermediate tensors, and read `.grad`, `grad_fn` and `next_functions`;
- predict when gradients accumulate, when a graph is freed and what `retain_graph` keeps alive;
- choose between `torch.no_grad`, `torch.inference_mode` and `detach`;
- know which in-place operations autograd refuses, and how the version counter catches them;
- get vector-Jacobian products and whole Jacobians out of a machine built for scalar losses;
- write a scalar reverse-mode engine from scratch, draw its graph, and prove it equals `torch.autograd`
  on randomly generated expressions;
- teach PyTorch a new derivative with a custom `torch.autograd.Function`, checked by `gradcheck`, in
  the torch 2 form that `torch.func.grad` and `torch.vmap` accept.

## The computational graph

The [primer in Summoning tensors](../creation/index.md#a-one-minute-primer-on-gradients) gave the four
words: `requires_grad`, `.backward()`, `.grad` and leaf. Now we open the machine behind them.
When an operation receives a tensor that requires grad, PyTorch runs it *and* records a node: which
function ran, on what, and what it must remember for later. Every result computed from a leaf is a
**non-leaf** whose `grad_fn` is the node that made it. `backward()` on a scalar computes
$\partial\,\text{out}/\partial\,\text{leaf}$ for every leaf that requires grad and adds it to its
`.grad`. Non-leaves keep no gradient unless you ask with `retain_grad()`: they are stepping stones, and
memory is precious. A tensor that does not require grad is a leaf too.

```pycon
>>> import torch
>>> a = torch.tensor(2.0, requires_grad=True)
>>> b = torch.tensor(-3.0, requires_grad=True)
>>> product = a * b
>>> product.retain_grad()
>>> out = product + a.exp()
>>> {"a": a.is_leaf, "product": product.is_leaf, "out": out.is_leaf, "torch.ones(3)": torch.ones(3).is_leaf}
{'a': True, 'product': False, 'out': False, 'torch.ones(3)': True}
>>> a.grad_fn, out.grad_fn.name()
(None, 'AddBackward0')
>>> out.backward()
>>> round(a.grad.item(), 4), b.grad.item(), product.grad.item()  # b + exp(a), a, 1
(4.3891, 2.0, 1.0)

```

## Gradients accumulate

`backward` does not *write* into `.grad`, it *adds* to it. Build the graph twice, call `backward` twice,
and the gradient doubles. That is a feature (the next lesson, gradient accumulation, lives on it), and it
is why every training loop clears gradients before each step, with `x.grad = None` (what
`optimizer.zero_grad()` does by default) or `x.grad.zero_()`:

```pycon
>>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (x ** 2).sum().backward()
>>> x.grad
tensor([2., 4., 6.])
>>> (x ** 2).sum().backward()  # a second, freshly built graph
>>> x.grad
tensor([ 4.,  8., 12.])
>>> x.grad = None  # clear before the next step...
>>> (x ** 2).sum().backward()
>>> x.grad  # ...and it holds one step's gradient again
tensor([2., 4., 6.])

```

Forget to clear, as Dr. Hammer does, and each step's `.grad` is the sum of *every* step so far: his
learning rate quietly grows with time.

## Walking the graph: `grad_fn` and `next_functions`

Every node lists the nodes that feed it in `next_functions`, as (node, output index) pairs. A leaf that
requires grad is represented by an `AccumulateGrad` node, the one that adds into its `.grad` (its
`.variable` is the leaf); an input that does not require grad appears as `None`.
[`grad_fn_tree`][torchenstein.tensors.autograd.grad_fn_tree] walks from the output down to the leaves:

```pycon
>>> from torchenstein.tensors.autograd import grad_fn_tree
>>> out = (a * b + a.exp()).tanh()
>>> print("\n".join(grad_fn_tree(out, names={"a": a, "b": b})))
TanhBackward0
    AddBackward0
        MulBackward0
            AccumulateGrad (a)
            AccumulateGrad (b)
        ExpBackward0
            AccumulateGrad (a)
>>> pairs = (a * torch.tensor(5.0)).grad_fn.next_functions  # the constant 5 needs no gradient
>>> [None if node is None else type(node).__name__ for node, _ in pairs]
['AccumulateGrad', None]

```

The `...Backward0` names are C++ classes generated from PyTorch's table of derivatives (the digit numbers
the overload). `a` appears twice: the graph is a DAG, and `backward` sums both paths into `a.grad`.

## Switching the ghost off: `no_grad`, `inference_mode` and `detach`

Inside `torch.no_grad()` nothing is recorded: results have no `grad_fn`, but they are ordinary tensors
that may later enter a recorded computation as constants. `no_grad` forbids nothing; it even *allows*
something otherwise forbidden: updating a leaf that requires grad in place (the optimiser's trick).
Outside it, recording `w.add_(1)` would give the leaf `w` a history, the in-place add, and make it a
non-leaf: its gradient would flow on into that history instead of landing in `w.grad`, and the parameter
would silently stop collecting gradients. So autograd refuses an in-place operation on a leaf that
requires grad (or on a view of one), and `out=` too while it records.
`torch.inference_mode()` also skips the bookkeeping autograd would need later (version counters, view
tracking), so it is a little faster, and what it creates are **inference tensors**: a computation
recorded afterwards may use them but never save them for backward, and outside the mode they refuse
in-place changes. A `clone()` made outside the mode is a normal tensor again.

```pycon
>>> w = torch.ones(2, requires_grad=True)
>>> with torch.no_grad():
...     quiet = w * 2
>>> with torch.inference_mode():
...     frozen = w * 2
>>> {"quiet requires grad": quiet.requires_grad, "quiet.grad_fn": quiet.grad_fn,
...  "quiet is inference": torch.is_inference(quiet), "frozen is inference": torch.is_inference(frozen)}
{'quiet requires grad': False, 'quiet.grad_fn': None, 'quiet is inference': False, 'frozen is inference': True}
>>> (w * quiet).sum().backward()  # a no_grad result is just a constant now
>>> (w * frozen).sum().backward()
Traceback (most recent call last):
...
RuntimeError: Inference tensors cannot be saved for backward. Please do not use Tensors created in inference mode in computation tracked by autograd. To work around this, you can make a clone to get a normal tensor and use it in autograd, or use `torch.no_grad()` instead of `torch.inference_mode()`.
>>> frozen.add_(1)
Traceback (most recent call last):
...
RuntimeError: Inplace update to inference tensor outside InferenceMode is not allowed.You can make a clone to get a normal tensor before doing inplace update.See https://github.com/pytorch/rfcs/pull/17 for more details.
>>> w.add_(1)
Traceback (most recent call last):
...
RuntimeError: a leaf Variable that requires grad is being used in an in-place operation.
>>> with torch.no_grad():
...     _ = w.sub_(0.25 * w.grad)  # a hand-made SGD step
>>> w
tensor([0.5000, 0.5000], requires_grad=True)

```

`detach()` cuts one tensor out of the graph: it shares the same memory but has no history, so the
gradient stops there. $\frac{d}{dx}\,x^2 = 2x$, but $x$ times a detached copy of itself differentiates as
$x$ times a constant, and its derivative is just that constant:

```pycon
>>> x = torch.tensor(3.0, requires_grad=True)
>>> (x * x.detach()).backward()
>>> {"x.grad": x.grad.item(), "detach shares memory": x.detach().data_ptr() == x.data_ptr()}  # 3, not 6
{'x.grad': 3.0, 'detach shares memory': True}

```

## In-place operations and saved tensors

Many operations save a tensor for the backward pass: `exp` saves its *output*, since
$\frac{d}{dx}e^x = e^x$, and `x * y` saves both inputs. Overwrite a saved tensor in place and autograd
notices, through the tensor's version counter (`_version`, which every in-place operation increments),
and `backward` refuses rather than compute a wrong gradient; Dr. Hammer shows the error below. Where the
backward pass needs a value that an in-place operation overwrites, autograd keeps a *copy* of it, so
under autograd an in-place operation often saves no memory at all. Below, `mul_` kept a clone of the old
`h` for the gradient of `y`:

```pycon
>>> y = torch.tensor([3.0, 4.0], requires_grad=True)
>>> h = torch.tensor([1.0, 2.0], requires_grad=True) * 1  # a non-leaf: in place is allowed
>>> _ = h.mul_(y)
>>> h.grad_fn._saved_self  # the old h, copied before it was overwritten
tensor([1., 2.], grad_fn=<CloneBackward0>)

```

PyTorch's own notes on autograd agree: in-place operations rarely lower memory use by much under
autograd. Keep them for `torch.no_grad()` code and for buffers you own.

## Keeping the graph: `retain_graph`

To save memory, `backward` frees the tensors each node saved for it (a `MulBackward0` keeps both factors)
as soon as it has used them, so a second `backward` through the same graph finds nothing to read. Pass
`retain_graph=True` to the first call when you really need two passes:

```pycon
>>> x = torch.tensor([1.0, 2.0], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> y.backward()
Traceback (most recent call last):
...
RuntimeError: Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.
>>> x.grad = None
>>> y = (x * x).sum()
>>> y.backward(retain_graph=True)
>>> y.backward()
>>> x.grad  # and yes, the two passes accumulated
tensor([4., 8.])

```

## Non-scalar outputs: vector-Jacobian products

For $y = f(x)$ with $x \in \mathbb{R}^n$, $y \in \mathbb{R}^m$ and Jacobian
$J_{ij} = \partial y_i / \partial x_j$, one reverse pass computes a **vector-Jacobian product** $v^\top J$
for one $v \in \mathbb{R}^m$, at a small multiple of the forward pass's cost. For a scalar loss $m = 1$
and $v = 1$, which is why `backward()` needs no argument there. Otherwise, say which $v$ you mean:
`y.backward(gradient=v)` adds $v^\top J$ into `x.grad`, and `torch.autograd.grad` returns it without
touching `.grad`. `cumsum` makes a good specimen, its Jacobian being a lower triangle of ones:

```pycon
>>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> y = x.cumsum(0)
>>> y.backward()
Traceback (most recent call last):
...
RuntimeError: grad can be implicitly created only for scalar outputs
>>> y.backward(gradient=torch.tensor([1.0, 1.0, 1.0]))
>>> x.grad  # how many outputs each input reaches
tensor([3., 2., 1.])
>>> (row,) = torch.autograd.grad(x.cumsum(0), x, grad_outputs=torch.tensor([0.0, 1.0, 0.0]))
>>> row, x.grad  # row 1 of J; .grad untouched
(tensor([1., 1., 0.]), tensor([3., 2., 1.]))

```

One-hot vectors $v = e_i$ pick out row $i$ of $J$, so $m$ passes give the whole Jacobian. That is all
[`jacobian_by_vjps`][torchenstein.tensors.autograd.jacobian_by_vjps] does, and it agrees with
`torch.autograd.functional.jacobian`, which by default runs the very same loop (`vectorize=True` lets
`vmap` batch it):

```pycon
>>> from torchenstein.tensors.autograd import jacobian_by_vjps
>>> jacobian_by_vjps(lambda t: t.cumsum(0), torch.tensor([1.0, 2.0, 3.0]))
tensor([[1., 0., 0.],
        [1., 1., 0.],
        [1., 1., 1.]])
>>> def f(t):
...     return torch.softmax(t, dim=-1) * t.sum()
>>> x0 = torch.randn(2, 3)
>>> J = jacobian_by_vjps(f, x0)
>>> J.shape
torch.Size([2, 3, 2, 3])
>>> torch.allclose(J, torch.autograd.functional.jacobian(f, x0))
True

```

## A reverse-mode engine from scratch

Now we build the ghost ourselves, one scalar at a time. A [`Value`][torchenstein.tensors.autograd.Value]
holds a number (`data`), its gradient (`grad`), the values it was made from (`parents`), the operation's
name (`op`) and a closure (`local_backward`) that knows the operation's local derivatives. The chain rule
says the gradient of the loss $L$ with respect to a node $u$ collects one term from every *child* $c$
that consumed it:

$$
\bar u = \frac{\partial L}{\partial u} = \sum_{c \,\in\, \text{children}(u)} \bar c \, \frac{\partial c}{\partial u}.
$$

Each `local_backward` *adds* its share $\bar c\,\partial c/\partial u$ into its parents' `grad` (a value
used twice collects both terms). `backward` calls them in reverse
[`topological_order`][torchenstein.tensors.autograd.topological_order], every node listed after all of
its parents, so $\bar c$ is complete before it is passed on. The local derivatives are the ones from
school:

| operation | result $c$ | $\partial c / \partial a$ | $\partial c / \partial b$ |
|---|---|---|---|
| `a + b`, `a - b` | $a \pm b$ | $1$ | $\pm 1$ |
| `a * b`, `a / b` | $ab$, $a / b$ | $b$, $1/b$ | $a$, $-a/b^2$ |
| `a ** k` ($k$ constant), `-a` | $a^k$, $-a$ | $k\,a^{k-1}$, $-1$ | |
| `a.exp()`, `a.log()` | $e^a$, $\ln a$ | $e^a$, $1/a$ | |
| `a.tanh()`, `a.sigmoid()` | $t$, $s$ | $1 - t^2$, $s(1 - s)$ | |
| `a.relu()` | $\max(a, 0)$ | $1$ if $a > 0$ else $0$ | |

A *neuron*, the smallest unit of a network, multiplies its input by a weight, adds a bias and squashes
the sum with a function such as $\tanh$. One neuron and its squared error, by our engine and by PyTorch:

```pycon
>>> from torchenstein.tensors.autograd import Value
>>> x, w, b = Value(1.5, label="x"), Value(-0.8, label="w"), Value(0.6, label="b")
>>> loss = ((w * x + b).tanh() - 1.0) ** 2
>>> loss.backward()
>>> round(loss.data, 4), round(w.grad, 4), round(x.grad, 4), round(b.grad, 4)
(2.3625, -3.2812, 1.75, -2.1875)
>>> t = torch.tensor([1.5, -0.8, 0.6], dtype=torch.float64, requires_grad=True)
>>> tx, tw, tb = t.unbind()
>>> (((tw * tx + tb).tanh() - 1.0) ** 2).backward()
>>> torch.allclose(t.grad, torch.tensor([x.grad, w.grad, b.grad], dtype=torch.float64))
True
>>> Value("1.5")
Traceback (most recent call last):
...
TypeError: data must be a real number (int or float), got str

```

Here is the neuron's graph after `backward`: data flows left to right, gradients right to left. Pass any
[`Value`][torchenstein.tensors.autograd.Value] as `root` to draw your own.

![The computation graph of one tanh neuron's squared error: leaves x, w, b and the constant 1 feed operations from left to right up to the loss; each box shows its data and its gradient](plot_graph.svg)

One neuron proves little. This lesson's tests grow hundreds of random expression trees from seeded
generators, using every operation in the table (logarithms, divisions and fractional powers only ever
receive $u^2 + c$ with $c > 0$, so nothing leaves its domain), and check values and gradients against
`torch.autograd` in `float64`. Our engine is slow, one Python object per number, but it is the same
algorithm: PyTorch's nodes hold tensors, run in C++, and free what they saved once they are done.

## Teaching PyTorch a new derivative: `torch.autograd.Function`

Sometimes autograd's derivative of your formula is right on paper and wrong in floating point. Take
$\operatorname{softplus}(x) = \ln(1 + e^x)$: at $x = 200$, `exp` overflows in `float32`, the value is
`inf` and the backward pass multiplies $0 \cdot \infty$ into NaN, although the true derivative
$\sigma(x) = 1/(1 + e^{-x})$ is simply 1. A custom `torch.autograd.Function` computes the forward pass in
the stable form $\max(x, 0) + \ln(1 + e^{-|x|})$ and states the derivative itself.
[`StableSoftplus`][torchenstein.tensors.autograd.StableSoftplus] is written in the form PyTorch 2
recommends, in three static methods:

- `forward(input)` only computes, from the inputs alone;
- `setup_context(ctx, inputs, output)` stores what the backward pass will need, here the input, with
  `ctx.save_for_backward`;
- `backward(ctx, grad_output)` returns the vector-Jacobian product, $\bar y\,\sigma(x)$.

[`softplus`][torchenstein.tensors.autograd.softplus] wraps it. `torch.autograd.gradcheck` compares our
derivative with finite differences in `float64`:

```pycon
>>> from torchenstein.tensors.autograd import softplus
>>> x = torch.tensor([-200.0, 0.0, 200.0], requires_grad=True)
>>> naive = torch.log(1 + torch.exp(x))
>>> naive.sum().backward()
>>> naive.detach(), x.grad
(tensor([0.0000, 0.6931,    inf]), tensor([0.0000, 0.5000,    nan]))
>>> x.grad = None
>>> stable = softplus(x)
>>> stable.sum().backward()
>>> stable.detach(), x.grad
(tensor([  0.0000,   0.6931, 200.0000]), tensor([0.0000, 0.5000, 1.0000]))
>>> z = torch.randn(6, dtype=torch.float64, requires_grad=True)
>>> torch.autograd.gradcheck(softplus, (z,))
True
>>> torch.allclose(softplus(z), torch.nn.functional.softplus(z))
True

```

Because the backward is written with differentiable torch operations on a saved *input*, it can itself
be differentiated: second derivatives work too (the tests run `gradgradcheck`).

??? note "Deep dive: why a separate `setup_context`, and `torch.func`"
    Why the separate `setup_context`? Older code, and many tutorials, write one `forward(ctx, input)` that
    computes and saves at once. `backward()` still accepts that, but the function transforms of `torch.func`
    (`grad`, `vmap`, `jacrev`, ...) do not: they must run `forward` without a context, and they refuse such
    a Function with "In order to use an autograd.Function with functorch transforms (vmap, grad, jvp,
    jacrev, ...), it must override the setup_context staticmethod". `torch.vmap` needs one thing more: a
    rule for batching. Ours sets `generate_vmap_rule = True`, which lets vmap simply run `forward` and
    `backward` on batched tensors, fine whenever both use only torch operations (the other way is a `vmap`
    static method that batches by hand). So our softplus works under both transforms, and under them nested:

    ```pycon
    >>> torch.func.grad(lambda t: softplus(t).sum())(torch.tensor([-200.0, 0.0, 200.0]))  # sigmoid(t)
    tensor([0.0000, 0.5000, 1.0000])
    >>> batch = torch.randn(4, 3)
    >>> torch.allclose(torch.vmap(softplus)(batch), torch.nn.functional.softplus(batch))
    True
    >>> torch.vmap(torch.func.grad(softplus))(torch.tensor([-200.0, 0.0, 200.0]))  # one gradient per element
    tensor([0.0000, 0.5000, 1.0000])

    ```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: `.item()` and `.numpy()` inside the graph"
    A Python number has no history. Dr. Hammer turns his loss into a float to "clean it up" and wraps it
    back into a tensor: the graph is gone. `.numpy()` refuses even to try. Keep the loss a tensor and
    call `.item()` only to *log* it.

    ```pycon
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> torch.tensor(w.sum().item() ** 2).backward()
    Traceback (most recent call last):
    ...
    RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn
    >>> w.numpy()
    Traceback (most recent call last):
    ...
    RuntimeError: Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.
    >>> loss = w.sum() ** 2
    >>> loss.backward()
    >>> w.grad, loss.item()
    (tensor([6., 6.]), 9.0)

    ```

!!! hammer "Dr. Hammer's trap: in-place surgery on a saved tensor, or behind autograd's back"
    Dr. Hammer adds 1 in place to the output of `exp`, which `exp` saved for backward: the version
    counter gives him away and `backward` refuses. His workaround, `.data`, is the old back door: the
    same memory, invisible to the version counter, so `backward` *silently* returns garbage. Make a new
    tensor instead: `y = y + 1`.

    ```pycon
    >>> x = torch.tensor([0.0, 1.0], requires_grad=True)
    >>> y = x.exp()
    >>> _ = y.add_(1)
    >>> y.sum().backward()
    Traceback (most recent call last):
    ...
    RuntimeError: one of the variables needed for gradient computation has been modified by an inplace operation: [torch.FloatTensor [2]], which is output 0 of Exp..., is at version 1; expected version 0 instead. Hint: enable anomaly detection to find the operation that failed to compute its gradient, with torch.autograd.set_detect_anomaly(True...).
    >>> y = x.exp()
    >>> _ = y.data.zero_()
    >>> y.sum().backward()
    >>> x.grad  # should be exp(x) = [1.0, 2.7183]
    tensor([0., 0.])
    >>> x.grad = None
    >>> y = x.exp()
    >>> y = y + 1
    >>> y.sum().backward()
    >>> torch.allclose(x.grad, x.exp())
    True

    ```

!!! hammer "Dr. Hammer's trap: `requires_grad` in the wrong place"
    Dr. Hammer scales his weights *after* asking for gradients, so his `w` is a non-leaf, the product of
    a leaf he no longer holds, and `w.grad` stays `None` (PyTorch even warns him). Setting
    `requires_grad` after the loss is computed is too late as well: nothing was recorded.

    ```pycon
    >>> import warnings
    >>> w = torch.ones(3, requires_grad=True) * 0.01
    >>> (w ** 2).sum().backward()
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     grad = w.grad
    >>> print(f"leaf: {w.is_leaf}, grad: {grad}, warned: {any('not a leaf' in str(c.message) for c in caught)}")
    leaf: False, grad: None, warned: True
    >>> v = torch.ones(3)
    >>> loss = (v ** 2).sum()
    >>> _ = v.requires_grad_()  # too late: the loss was computed without it
    >>> loss.backward()
    Traceback (most recent call last):
    ...
    RuntimeError: element 0 of tensors does not require grad and does not have a grad_fn
    >>> w = (torch.ones(3) * 0.01).requires_grad_()  # scale first, then make it a leaf
    >>> (w ** 2).sum().backward()
    >>> {"leaf": w.is_leaf, "grad": w.grad}
    {'leaf': True, 'grad': tensor([0.0200, 0.0200, 0.0200])}

    ```

## Challenges

1. **Sine for the engine.** Write `value_sin(v)` that takes a [`Value`][torchenstein.tensors.autograd.Value]
   and returns a new one holding $\sin v$, whose `local_backward` adds $\cos(v)\,\bar{\text{out}}$ into
   `v.grad`: build `out = Value(math.sin(v.data), parents=(v,), op="sin")` and give it a closure as
   `out.local_backward`. Add, do not assign: `v` may feed other nodes too.
2. **Curvature in one direction.** Write `hessian_vector_product(func, inputs, v)` returning $H v$, where
   $H$ is the Hessian of the scalar `func` at `inputs` and `v` has the shape of `inputs`, without ever
   building $H$: differentiate $\nabla f(x) \cdot v$ once more (double backward, `create_graph=True`).
   Mind linear functions, whose gradient does not depend on `inputs` at all. The reference is
   `torch.autograd.functional.hvp(func, inputs, v)[1]`.

Check an attempt with `check_value_sin(my_function)` and `check_hessian_vector_product(my_function)`, or
put both in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass:

```pycon
>>> from torchenstein.tensors.autograd import check_hessian_vector_product, check_value_sin
>>> from torchenstein.tensors.autograd import hessian_vector_product, value_sin
>>> check_value_sin(value_sin)
>>> check_hessian_vector_product(hessian_vector_product)

```
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _floating(name: str, tensor: object) -> None:
    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
        got = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got {got}")


def grad_fn_tree(output: torch.Tensor, *, names: Mapping[str, torch.Tensor] | None = None) -> list[str]:
    """List the nodes of the graph behind ``output``, one per line, indented by depth.

    Args:
        output: a tensor computed from tensors that require grad.
        names: optional labels for leaves, e.g. ``{"a": a}``, shown after their ``AccumulateGrad`` node.

    Returns:
        One line per node, from ``output.grad_fn`` down to the leaves; a node reached along two paths is
        listed under each consumer.

    Raises:
        ValueError: if ``output`` has no ``grad_fn``.

    Examples:
        >>> x = torch.ones(2, requires_grad=True)
        >>> grad_fn_tree((x * 3).sum(), names={"x": x})
        ['SumBackward0', '    MulBackward0', '        AccumulateGrad (x)']
    """
    if getattr(output, "grad_fn", None) is None:
        raise ValueError(f"output must be a tensor with a grad_fn, got {type(output).__name__} without one")
    label_of = {id(tensor): name for name, tensor in (names or {}).items()}
    lines: list[str] = []
    # An explicit stack rather than recursion, so deep graphs cannot exhaust Python's recursion limit.
    # Children go on in reverse, so they come off in the order `next_functions` lists them.
    stack = [(output.grad_fn, 0)]
    while stack:
        node, depth = stack.pop()
        # Only AccumulateGrad nodes carry a `.variable`: the leaf whose `.grad` they fill.
        label = label_of.get(id(getattr(node, "variable", None)))
        lines.append("    " * depth + type(node).__name__ + (f" ({label})" if label else ""))
        stack.extend((child, depth + 1) for child, _ in reversed(node.next_functions) if child is not None)
    return lines


def jacobian_by_vjps(func: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """Build the full Jacobian of ``func`` at ``inputs``, one vector-Jacobian product per output element.

    Args:
        func: a function of one floating-point tensor returning one tensor.
        inputs: the point at which to differentiate; it is not modified.

    Returns:
        A tensor of shape ``func(inputs).shape + inputs.shape``, like
        ``torch.autograd.functional.jacobian(func, inputs)``.

    Raises:
        TypeError: if ``inputs`` is not a floating-point tensor.

    Examples:
        >>> jacobian_by_vjps(lambda t: t ** 2, torch.tensor([1.0, 2.0]))
        tensor([[2., 0.],
                [0., 4.]])
    """
    _floating("inputs", inputs)
    # A fresh leaf sharing the caller's memory: we record a graph without touching their tensor.
    x = inputs.detach().requires_grad_(True)
    y = func(x)
    flat = y.reshape(-1)  # (m,)
    rows = []
    for i in range(flat.numel()):
        # The one-hot v = e_i picks row i of J, since v^T J = dy_i/dx. Keep the graph for the next row.
        one_hot = torch.zeros_like(flat)
        one_hot[i] = 1.0
        row = None
        if flat.requires_grad:
            (row,) = torch.autograd.grad(flat, x, grad_outputs=one_hot, retain_graph=True, allow_unused=True)
        # An output that does not depend on x at all has a row of zeros (autograd answers None).
        rows.append(torch.zeros_like(x) if row is None else row)
    if not rows:
        return x.new_zeros(*y.shape, *x.shape)
    return torch.stack(rows).reshape(*y.shape, *x.shape)  # (m, *x.shape) -> (*y.shape, *x.shape)


class Value:
    """A scalar that remembers how it was computed: a node of our from-scratch reverse-mode engine.

    Supports ``+``, ``-``, ``*``, ``/`` with values or plain numbers on either side, ``**`` with a constant
    exponent, unary ``-``, and the methods ``exp``, ``log``, ``tanh``, ``relu`` and ``sigmoid``. Besides
    its arguments it holds ``grad`` (``0.0`` at first) and ``local_backward``, a closure that adds this
    value's gradient, times the local derivatives, into its parents' gradients (a leaf's does nothing).

    Args:
        data: the number it holds.
        parents: the values it was computed from (empty for a leaf).
        op: the name of the operation that produced it (empty for a leaf).
        label: a name for printing and drawing.

    Raises:
        TypeError: if ``data`` is not a real number or a parent is not a ``Value``.

    Examples:
        >>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
        >>> c = a * b + a
        >>> c.backward()
        >>> c, a.grad, b.grad
        (Value(data=-4, grad=1, op='+'), -2.0, 2.0)
    """

    def __init__(self, data: float, parents: Sequence[Value] = (), op: str = "", label: str = ""):
        if isinstance(data, bool) or not isinstance(data, numbers.Real):
            raise TypeError(f"data must be a real number (int or float), got {type(data).__name__}")
        if not all(isinstance(parent, Value) for parent in parents):
            raise TypeError(f"parents must all be Values, got {[type(p).__name__ for p in parents]}")
        self.data, self.grad = float(data), 0.0
        self.parents, self.op, self.label = tuple(parents), op, label
        self.local_backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        op = f", op={self.op!r}" if self.op else ""
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g}{op})"

    @staticmethod
    def _lift(other: object) -> Value:
        # Plain numbers become constant leaves, labelled with their value so a drawing can show them.
        if isinstance(other, Value):
            return other
        if isinstance(other, bool) or not isinstance(other, numbers.Real):
            raise TypeError(f"other must be a Value, int or float, got {type(other).__name__}")
        return Value(other, label=f"{other:g}")

    @staticmethod
    def _result(data: float, parents: tuple[Value, ...], op: str, local_grads: tuple[float, ...]) -> Value:
        # The heart of the engine. The forward pass already knows each local derivative dc/du, so the
        # closure only applies the chain rule: every parent u receives grad_c * dc/du, *added* (never
        # assigned) because u may feed several children whose terms must all be summed.
        out = Value(data, parents, op)

        def local_backward() -> None:
            for parent, local_grad in zip(parents, local_grads, strict=True):
                parent.grad += local_grad * out.grad

        out.local_backward = local_backward
        return out

    def __add__(self, other: Value | float) -> Value:
        other = Value._lift(other)
        return Value._result(self.data + other.data, (self, other), "+", (1.0, 1.0))

    def __sub__(self, other: Value | float) -> Value:
        other = Value._lift(other)
        return Value._result(self.data - other.data, (self, other), "-", (1.0, -1.0))

    def __mul__(self, other: Value | float) -> Value:
        other = Value._lift(other)
        return Value._result(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __truediv__(self, other: Value | float) -> Value:
        other = Value._lift(other)
        a, b = self.data, other.data
        return Value._result(a / b, (self, other), "/", (1.0 / b, -a / (b * b)))

    # `2.0 - x` asks the float first; when it gives up, Python calls x.__rsub__(2.0).
    def __radd__(self, other: float) -> Value:
        return Value._lift(other) + self

    def __rsub__(self, other: float) -> Value:
        return Value._lift(other) - self

    def __rmul__(self, other: float) -> Value:
        return Value._lift(other) * self

    def __rtruediv__(self, other: float) -> Value:
        return Value._lift(other) / self

    def __pow__(self, exponent: float) -> Value:
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(f"exponent must be an int or float constant, got {type(exponent).__name__}")
        a, k = self.data, float(exponent)
        # Python would return a complex number here and PyTorch returns NaN; we refuse instead.
        if a < 0 and not k.is_integer():
            raise ValueError(f"a negative base needs an integer exponent, got data={a} ** exponent={k}")
        if a == 0 and k < 0:
            raise ValueError(f"zero has no negative power, got data={a} ** exponent={k}")
        # At zero the slope is 0 for a constant (k = 0) and infinite below k = 1, as PyTorch has it.
        slope = 0.0 if k == 0 else math.inf if a == 0 and k < 1 else k * a ** (k - 1)
        return Value._result(a**k, (self,), f"**{exponent:g}", (slope,))

    def __neg__(self) -> Value:
        return Value._result(-self.data, (self,), "neg", (-1.0,))

    def exp(self) -> Value:
        """The exponential $e^a$, whose derivative is itself."""
        e = math.exp(self.data)
        return Value._result(e, (self,), "exp", (e,))

    def log(self) -> Value:
        """The natural logarithm, whose derivative is $1/a$.

        Raises:
            ValueError: if the value is not positive.
        """
        if self.data <= 0:
            raise ValueError(f"log needs a positive value, got data={self.data}")
        return Value._result(math.log(self.data), (self,), "log", (1.0 / self.data,))

    def tanh(self) -> Value:
        """The hyperbolic tangent $t$, whose derivative $1 - t^2$ comes from the output."""
        t = math.tanh(self.data)
        return Value._result(t, (self,), "tanh", (1.0 - t * t,))

    def relu(self) -> Value:
        r"""$\max(a, 0)$, whose derivative is 1 where $a > 0$ and 0 elsewhere (at 0 too, as in PyTorch)."""
        return Value._result(max(self.data, 0.0), (self,), "relu", (1.0 if self.data > 0 else 0.0,))

    def sigmoid(self) -> Value:
        """The logistic sigmoid $s = 1/(1 + e^{-a})$, whose derivative is $s(1 - s)$."""
        # Exponentiate only non-positive numbers, so no |a| can overflow `math.exp`.
        e = math.exp(-abs(self.data))
        s = 1.0 / (1.0 + e) if self.data >= 0 else e / (1.0 + e)
        return Value._result(s, (self,), "sigmoid", (s * (1.0 - s),))

    def backward(self, gradient: float = 1.0) -> None:
        r"""Fill the ``grad`` of every value this one depends on with $\partial\,\text{self} / \partial u$.

        As in PyTorch, leaves *accumulate* across calls; intermediate values restart from zero on every
        call (PyTorch keeps no gradient for them at all).

        Args:
            gradient: the gradient of some outer loss with respect to this value, 1 by default.

        Examples:
            >>> x = Value(3.0)
            >>> (x * x).backward()
            >>> (x * x).backward()  # leaves accumulate, just like tensors
            >>> x.grad
            12.0
        """
        order = topological_order(self)
        for node in order:
            if node.parents:
                node.grad = 0.0
        self.grad += float(gradient)
        # Reverse topological order: every child passes its gradient on before its parents pass theirs.
        for node in reversed(order):
            node.local_backward()


def topological_order(root: Value) -> list[Value]:
    """Every value ``root`` depends on, once each and each after all of its parents, ending with ``root``.

    Args:
        root: the value to start from.

    Returns:
        The values in topological order (a depth-first post-order).

    Raises:
        TypeError: if ``root`` is not a ``Value``.

    Examples:
        >>> a = Value(1.0, label="a")
        >>> b = a * a; b.label = "b"
        >>> [v.label for v in topological_order(b + a)]
        ['a', 'b', '']
    """
    if not isinstance(root, Value):
        raise TypeError(f"root must be a Value, got {type(root).__name__}")
    order: list[Value] = []
    seen: set[Value] = set()
    # An iterative depth-first search, so a chain of ten thousand additions cannot overflow the stack.
    # Each node is pushed twice: once to expand its parents, then (done=True) to be emitted after them.
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((parent, False) for parent in reversed(node.parents) if parent not in seen)
    return order


def _neuron_loss() -> Value:
    x, w, b = Value(1.5, label="x"), Value(-0.8, label="w"), Value(0.6, label="b")
    wx = w * x
    z = wx + b
    y = z.tanh()
    error = y - 1.0
    loss = error**2
    for value, name in ((wx, "wx"), (z, "z"), (y, "y"), (error, "error"), (loss, "loss")):
        value.label = name
    loss.backward()
    return loss


def plot_graph(*, root: Value | None = None, width: float = 10.0, height: float = 4.2) -> Figure:
    """Draw the computation graph of a `Value`: each node with its data and gradient, arrows input to output.

    Args:
        root: the value whose graph to draw, after its ``backward`` if you want gradients. ``None`` draws
            one tanh neuron's squared error, backward done.
        width: figure width in inches.
        height: figure height in inches.

    Returns:
        A matplotlib figure with one axes.

    Raises:
        TypeError: if ``root`` is neither ``None`` nor a ``Value``.

    Examples:
        >>> fig = plot_graph(root=Value(2.0) * 3.0)
        >>> len(fig.axes), len(fig.axes[0].texts)  # three boxes and two arrows
        (1, 5)
    """
    if root is not None and not isinstance(root, Value):
        raise TypeError(f"root must be a Value or None, got {type(root).__name__}")
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    root = _neuron_loss() if root is None else root
    order = topological_order(root)
    # A simple layered layout. An operation sits one column right of its deepest parent; a leaf sits
    # just left of its first consumer, so constants appear where they are used, not all in column 0.
    column = {node: 0 for node in order}
    for node in order:
        if node.parents:
            column[node] = 1 + max(column[parent] for parent in node.parents)
    for node in order:
        consumers = [column[child] for child in order if node in child.parents]
        if not node.parents and consumers:
            column[node] = min(consumers) - 1
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(column[node] - min(column.values()), []).append(node)
    # Within a column, nodes keep their topological order from top to bottom, centred on y = 0.
    position = {
        node: (float(c), (len(nodes) - 1) / 2 - row)
        for c, nodes in columns.items()
        for row, node in enumerate(nodes)
    }

    fig, (ax,) = new_figure(width=width, height=height)
    kinds = {"leaf": PALETTE[1], "operation": PALETTE[0], "output": PALETTE[2]}
    boxes = {}
    for node in order:
        kind = "output" if node is root else "operation" if node.parents else "leaf"
        name = f"{node.label} = {node.op}" if node.label and node.op else node.label or node.op
        boxes[node] = ax.text(
            *position[node], f"{name}\ndata {node.data:.3g}\ngrad {node.grad:.3g}", ha="center", va="center",
            fontsize=8, family="monospace",
            bbox={"boxstyle": "round,pad=0.4", "facecolor": to_rgba(kinds[kind], 0.15),
                  "edgecolor": kinds[kind]},
        )  # fmt: skip
    # One arrow per (parent, child) pair, so `x * x` draws one. patchA and patchB clip each arrow at the
    # edges of the boxes, whatever size their text makes them.
    for node in order:
        for parent in dict.fromkeys(node.parents):
            ax.annotate(
                "", xy=position[node], xytext=position[parent],
                arrowprops={"arrowstyle": "-|>", "color": PALETTE[6], "shrinkA": 1, "shrinkB": 1,
                            "patchA": boxes[parent].get_bbox_patch(), "patchB": boxes[node].get_bbox_patch()},
            )  # fmt: skip
    tallest = max(len(nodes) for nodes in columns.values())
    ax.set(xlim=(-0.6, max(columns) + 0.6), ylim=(-tallest / 2 - 0.2, tallest / 2 + 0.2))
    ax.set_title("The computation graph: data flows right, gradients flow back left")
    ax.axis("off")
    ax.legend(handles=[Patch(facecolor=to_rgba(c, 0.15), edgecolor=c, label=k) for k, c in kinds.items()],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)  # fmt: skip
    return fig


class StableSoftplus(torch.autograd.Function):
    r"""Softplus $\ln(1 + e^x)$ with a stable forward pass and a hand-written derivative $\sigma(x)$.

    Call it through `softplus`, or as ``StableSoftplus.apply(input)``. Written in the torch 2 form
    (``forward`` without ``ctx``, plus ``setup_context``), so `torch.func.grad` and `torch.vmap` accept it.
    """

    # Both forward and backward use only torch operations, so vmap may batch the Function by running
    # them on batched tensors: no hand-written batching rule is needed.
    generate_vmap_rule = True

    @staticmethod
    def forward(input: torch.Tensor) -> torch.Tensor:
        r"""Compute $\max(x, 0) + \ln(1 + e^{-|x|})$.

        Args:
            input: a floating-point tensor.
        """
        # Autograd records nothing inside forward: the graph gets one node, ours. Since e^{-|x|} lies in
        # (0, 1], exp cannot overflow, and log1p keeps the digits of 1 + (something tiny).
        return input.clamp(min=0) + torch.log1p(torch.exp(-input.abs()))

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        """Save the input for `backward`: the derivative of softplus is the sigmoid of the input.

        Args:
            ctx: the context that carries saved tensors to `backward`.
            inputs: the arguments ``forward`` was called with.
            output: what ``forward`` returned.
        """
        (input,) = inputs
        ctx.save_for_backward(input)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        """Return the vector-Jacobian product ``grad_output * sigmoid(input)``.

        Args:
            ctx: the context holding the saved input.
            grad_output: the gradient of the loss with respect to the output.
        """
        # The Jacobian is diagonal, so v^T J is an element-wise product. Written with torch operations on
        # the saved input, the backward is itself differentiable: second derivatives come for free.
        (input,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(input)


def softplus(input: torch.Tensor) -> torch.Tensor:
    """Softplus through `StableSoftplus`: finite values and gradients for any finite input.

    Args:
        input: a floating-point tensor of any shape.

    Returns:
        ``log(1 + exp(input))`` element-wise, with the same shape and dtype.

    Raises:
        TypeError: if ``input`` is not a floating-point tensor.

    Examples:
        >>> [round(v, 4) for v in softplus(torch.tensor([0.0, 1000.0])).tolist()]
        [0.6931, 1000.0]
    """
    _floating("input", input)
    return StableSoftplus.apply(input)


def value_sin(v: Value) -> Value:
    r"""Challenge solution: $\sin v$ as a new `Value`, whose backward adds $\cos(v)\,\bar{\text{out}}$.

    Args:
        v: the input value.

    Returns:
        A `Value` whose only parent is ``v``.

    Raises:
        TypeError: if ``v`` is not a `Value`.

    Examples:
        >>> x = Value(0.0)
        >>> y = value_sin(x)
        >>> y.backward()
        >>> y.data, x.grad
        (0.0, 1.0)
    """
    if not isinstance(v, Value):
        raise TypeError(f"v must be a Value, got {type(v).__name__}")
    out = Value(math.sin(v.data), parents=(v,), op="sin")

    def local_backward() -> None:
        v.grad += math.cos(v.data) * out.grad

    out.local_backward = local_backward
    return out


def check_value_sin(candidate) -> None:
    """Check an attempt at `value_sin` on its own and inside bigger expressions, against ``torch.sin``.

    Raises:
        AssertionError: if the candidate is wrong; the message names the expression and the point.
    """
    builds = {
        "sin(x)": lambda x, sin: sin(x),
        "sin(x) * x (x feeds two nodes: add into x.grad, do not assign)": lambda x, sin: sin(x) * x,
        "sin(x * x) + x": lambda x, sin: sin(x * x) + x,
        "sin(sin(x))": lambda x, sin: sin(sin(x)),
    }
    for point in (-2.5, -0.3, 0.0, 1.0, 3.0):
        for name, build in builds.items():
            x = Value(point)
            out = build(x, candidate)
            assert isinstance(out, Value), f"value_sin must return a Value, got {type(out).__name__}"
            assert x.data == point, f"value_sin must not change its input, but x.data became {x.data}"
            out.backward()
            t = torch.tensor(point, dtype=torch.float64, requires_grad=True)
            reference = build(t, torch.sin)
            (grad,) = torch.autograd.grad(reference, t)
            assert math.isclose(out.data, reference.item(), rel_tol=1e-9, abs_tol=1e-12), (
                f"{name} at x={point}: expected value {reference.item()}, got {out.data}"
            )
            assert math.isclose(x.grad, grad.item(), rel_tol=1e-9, abs_tol=1e-12), (
                f"{name} at x={point}: expected d/dx = {grad.item()}, got {x.grad}"
            )


def hessian_vector_product(
    func: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Challenge solution: the Hessian of ``func`` at ``inputs`` times ``v``, by double backward.

    Args:
        func: a function of one floating-point tensor returning a one-element tensor.
        inputs: the point; it is not modified.
        v: the direction, with the shape of ``inputs``.

    Returns:
        $H v$ with the shape of ``inputs``, detached from any graph.

    Raises:
        TypeError: if ``inputs`` or ``v`` is not a floating-point tensor.
        ValueError: if ``v`` has another shape than ``inputs``, or ``func`` returns more than one element.

    Examples:
        >>> x, v = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0])
        >>> hessian_vector_product(lambda t: (t ** 3).sum(), x, v)  # H = diag(6 t)
        tensor([6., 0.])
    """
    _floating("inputs", inputs)
    _floating("v", v)
    if v.shape != inputs.shape:
        raise ValueError(f"v must have the shape of inputs {tuple(inputs.shape)}, got {tuple(v.shape)}")
    x = inputs.detach().requires_grad_(True)
    y = func(x)
    if y.numel() != 1:
        raise ValueError(f"func must return a single element, got shape {tuple(y.shape)}")
    # create_graph=True records the backward pass itself, so the gradient g(x) is a function we can
    # differentiate again: d/dx (g(x) . v) = H v, H being symmetric.
    g = torch.autograd.grad(y, x, create_graph=True, allow_unused=True)[0] if y.requires_grad else None
    directional = (g * v).sum() if g is not None else None
    # A linear func has a constant gradient with no graph behind it: zero curvature in every direction.
    if directional is None or not directional.requires_grad:
        return torch.zeros_like(x)
    (hv,) = torch.autograd.grad(directional, x, allow_unused=True)
    return torch.zeros_like(x) if hv is None else hv.detach()


def check_hessian_vector_product(candidate) -> None:
    """Check an attempt at `hessian_vector_product` against ``torch.autograd.functional.hvp``.

    Raises:
        AssertionError: if the candidate is wrong; the message names the function that failed.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, dtype=torch.float64, generator=generator)
    c = torch.randn(2, 3, dtype=torch.float64, generator=generator)
    cases = {
        "0.5 * x @ A @ x with A not symmetric": ((lambda t: 0.5 * t @ a @ t), (4,)),
        "sum of cubes of a (2, 3) tensor": ((lambda t: (t**3).sum()), (2, 3)),
        "logsumexp": ((lambda t: torch.logsumexp(t, dim=0)), (5,)),
        "coupled tanh": ((lambda t: (t.tanh() * t.roll(1)).sum()), (6,)),
        "linear (c * x).sum(), zero curvature": ((lambda t: (c * t).sum()), (2, 3)),
        "a single element": ((lambda t: t.exp().sum()), (1,)),
    }
    for name, (func, shape) in cases.items():
        x = torch.randn(shape, dtype=torch.float64, generator=generator)
        v = torch.randn(shape, dtype=torch.float64, generator=generator)
        x_before, v_before = x.clone(), v.clone()
        expected = torch.autograd.functional.hvp(func, x, v)[1]
        got = candidate(func, x, v)
        assert isinstance(got, torch.Tensor), f"{name}: return a tensor, got {type(got).__name__}"
        assert got.shape == x.shape, f"{name}: expected shape {tuple(x.shape)}, got {tuple(got.shape)}"
        unchanged = torch.equal(x, x_before) and torch.equal(v, v_before)
        assert unchanged, f"{name}: inputs and v must not be modified"
        torch.testing.assert_close(got.detach(), expected, msg=lambda m, name=name: f"{name}: wrong H v. {m}")
