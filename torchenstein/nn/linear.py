r"""
# The Linear Layer: Every Neuron Wired to Every Other

!!! torchenstein "The Professor speaks"
    Behold the humblest organ of every monster I have ever stitched together: one matrix product and one
    addition. Most of a Transformer's parameters live in linear layers, so today we build one from
    scratch, down to the very random numbers PyTorch draws for it, and then we wire three of them into
    the queries, keys and values of attention. Dr. Hammer calls this layer "trivial"; his weights are
    transposed.

**You will learn to**

- compute $y = xW^\top + b$ by hand on inputs with any number of leading dimensions, and prove it equal
  to `torch.nn.functional.linear`, bit for bit, in bfloat16 too (one rounding, not two);
- explain why PyTorch stores the weight as `(out_features, in_features)`;
- write `Linear` as a real `nn.Module` whose `weight`, `bias`, `repr` and `state_dict` are those of
  `nn.Linear`, and whose initialisation gives, seed for seed, *bitwise* the same weights;
- explain PyTorch's default initialisation ($a = \sqrt 5$, a bound of $1/\sqrt{\text{fan\_in}}$) and measure
  what it, a naive `randn`, Xavier and Kaiming do to activations through a deep stack;
- fuse the Q, K and V projections of attention into one layer and split its output into heads;
- count the parameters and the FLOPs of a linear layer.

## What a linear layer computes

A linear layer (an *affine* one, strictly, because of the bias) maps every input vector $x$ of length
`in_features` to an output vector $y$ of length `out_features`:

$$
y = x W^\top + b, \qquad y_j = \sum_{i=1}^{\text{in}} x_i W_{ji} + b_j ,
$$

with the weight $W$ of shape `(out_features, in_features)` and the bias $b$ of shape `(out_features,)`.
Output $j$ is a dot product of the input with **row $j$** of $W$, plus $b_j$: row $j$ is neuron $j$.
The input may carry any number of leading dimensions, batch, time, heads, and they simply ride along:
`(B, T, in)` becomes `(B, T, out)`, each token transformed on its own by the same $W$ and $b$. PyTorch's
functional form is `torch.nn.functional.linear(input, weight, bias)`. On paper our
[`linear`][torchenstein.nn.linear.linear] is one line, `input @ weight.T + bias`; in floating point it
is one *call*, `torch.addmm(bias, input, weight.T)`, which adds the bias inside the matrix product. The
products of a row and a column are summed in float32, for half-precision inputs too; `input @ weight.T +
bias` rounds that sum to the input's dtype and then rounds again after adding the bias, while `addmm`
adds the bias first and rounds once. In float32 the sum already is in the output's dtype and the two
agree; in bfloat16, whose roundings are coarse, they part. PyTorch calls `addmm` for 2-D inputs and for
contiguous inputs with a 1-D bias (their leading dims flatten for free), and so do we:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torchenstein.nn.linear import linear
>>> _ = torch.manual_seed(0)
>>> x = torch.randn(2, 5, 4)       # (B, T, in_features)
>>> weight = torch.randn(3, 4)     # (out_features, in_features)
>>> bias = torch.randn(3)          # (out_features,)
>>> y = linear(x, weight, bias)
>>> y.shape
torch.Size([2, 5, 3])
>>> print("equal to F.linear:", torch.equal(y, F.linear(x, weight, bias)))
equal to F.linear: True
>>> print("token (1, 2), neuron 0:", torch.allclose(y[1, 2, 0], x[1, 2] @ weight[0] + bias[0]))
token (1, 2), neuron 0: True
>>> xb, wb, bb = x.bfloat16(), weight.bfloat16(), bias.bfloat16()
>>> {"ours (addmm)": torch.equal(linear(xb, wb, bb), F.linear(xb, wb, bb)),
...  "x @ W.T + b": torch.equal(xb @ wb.T + bb, F.linear(xb, wb, bb))}
{'ours (addmm)': True, 'x @ W.T + b': False}

```

`F.linear` also documents a 1-D weight `(in_features,)`, one output neuron whose output has no feature
dimension, with a 0-D bias; and a 0-D or `(1,)` bias broadcasts one value to every output. Ours takes
the same shapes.

!!! note "Where it differs from PyTorch"
    - Where PyTorch does *not* fuse (an input of other than 2 dims that is not contiguous, such as a
      transposed `(T, B, C)` view, or that comes with a 0-D bias), it computes `matmul`, then
      adds, rounding twice; ours still rounds once. In float16 and bfloat16 the two can then differ by
      one rounding; in float32 and float64 they agree to the usual tolerance (PyTorch's `matmul` may
      also add up a non-contiguous input's products in another order).
    - PyTorch refuses a 2-D input with a 1-D weight *and* a bias (`mat2 must be a matrix`), a shape it
      documents; ours computes it. PyTorch broadcasts any bias that fits the output, `(N, out)` included;
      ours takes only the documented shapes.

Leading dimensions are a convenience, not a different computation: flattening all tokens into one
`(B * T, in)` matrix, multiplying and unflattening gives the same answer (it is what the kernel does
underneath). A single vector works too, but the last dimension must hold the features:

```pycon
>>> flat = linear(x.reshape(-1, 4), weight, bias)    # (B * T, out_features)
>>> torch.allclose(flat.reshape(2, 5, 3), y)
True
>>> linear(x[0, 0], weight, bias).shape              # one lonely vector
torch.Size([3])
>>> linear(x, weight[0], bias[0]).shape               # a 1-D weight: one neuron, no feature dim
torch.Size([2, 5])
>>> linear(x, weight.T, bias)
Traceback (most recent call last):
...
ValueError: input's last dim must equal in_features = weight.size(-1) = 3, got input shape (2, 5, 4)

```

## Why the weight is stored as `(out_features, in_features)`

Storing $W$ "backwards" and transposing it on every call looks wasteful, and it is not, for three reasons:

- **A row is a neuron.** `weight[j]` is everything neuron $j$ listens to, a contiguous row in memory.
  Dropping neurons is slicing rows, adding neurons is concatenating along `dim=0` (the fused Q/K/V
  projection below is exactly that), and `weight.size(1)` is the *fan-in*, which `torch.nn.init` reads
  to scale its initialisations.
- **The transpose is free.** `weight.T` is a view with swapped strides (see
  [Tensor Metamorphosis](../../tensors/metamorphosis/index.md)), and matrix-multiply kernels accept a
  transposed operand without copying it.
- **It is the textbook's $y = Wx$**, written for column vectors, which Lua Torch used and PyTorch kept.
  With row vectors stacked into a batch, $y = Wx$ turns into $Y = XW^\top$.

```pycon
>>> {"shape": weight.T.shape, "contiguous": weight.T.is_contiguous(), "same memory": weight.T.data_ptr() == weight.data_ptr()}
{'shape': torch.Size([4, 3]), 'contiguous': False, 'same memory': True}
>>> torch.allclose(linear(x, weight[1:], bias[1:]), y[..., 1:])    # keep neurons 1 and 2 only
True

```

## A `Linear` module from scratch

A layer is a function plus state. [`Linear`][torchenstein.nn.linear.Linear] takes the very arguments of
`nn.Linear`, `(in_features, out_features, bias=True, device=None, dtype=None)`, and registers two
`nn.Parameter`s named `weight` and `bias` (or `bias = None`); how assigning a parameter files it in the
module is the subject of [Building brains with nn.Module](../modules/index.md). Because the names,
shapes and `extra_repr` are PyTorch's, our layer prints like `nn.Linear`, and its `state_dict` loads into
`nn.Linear` and back with `strict=True` (checkpoints get their own lesson,
[Preserving your monster's memories](../../training/checkpoints/index.md)). Seeded the same, the two layers even
start from the same bits:

```pycon
>>> from torch import nn
>>> from torchenstein.nn.linear import Linear
>>> _ = torch.manual_seed(0)
>>> ours = Linear(4, 3)
>>> _ = torch.manual_seed(0)
>>> theirs = nn.Linear(4, 3)
>>> print(ours)
Linear(in_features=4, out_features=3, bias=True)
>>> [name for name, _ in ours.named_parameters()]
['weight', 'bias']
>>> {"same weight": torch.equal(ours.weight, theirs.weight), "same bias": torch.equal(ours.bias, theirs.bias)}
{'same weight': True, 'same bias': True}
>>> torch.testing.assert_close(ours(x), theirs(x))
>>> ours.load_state_dict(theirs.state_dict())
<All keys matched successfully>
>>> theirs.load_state_dict(ours.state_dict())
<All keys matched successfully>

```

`device` and `dtype` are handed to `torch.empty` when the parameters are made, so a layer can be born
in float64, or on the `meta` device, where tensors have a shape but no memory: handy to count the
parameters of a big layer, $\text{in} \cdot \text{out} + \text{out}$, without allocating them.

```pycon
>>> {"bias=False": Linear(4, 3, bias=False).bias, "dtype=torch.float64": Linear(4, 3, dtype=torch.float64).weight.dtype}
{'bias=False': None, 'dtype=torch.float64': torch.float64}
>>> big = Linear(768, 3072, device="meta")           # a GPT-2 MLP's first layer
>>> big.weight.device.type, sum(p.numel() for p in big.parameters()), 768 * 3072 + 3072
('meta', 2362368, 2362368)

```

The tests (`tests/test_linear.py`) prove the twin for many seeds and shapes, with and without bias: the
same weights and random-number count; outputs bitwise equal to `F.linear` in float16, bfloat16, float32
and float64 on 1-D to 4-D inputs, transposed, expanded and empty ones, 1-D weights and 0-D biases, at
small and large magnitudes (and, where PyTorch rounds twice, within one rounding); gradients; `gradcheck`
in float64; and `state_dict` both ways with `strict=True`.

## PyTorch's initialisation, bit for bit

`nn.Linear.reset_parameters` calls `torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))` and then fills
the bias from $\mathcal U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})$. Kaiming's uniform
initialisation draws from $\mathcal U(-\text{bound}, \text{bound})$ with

$$
\text{gain} = \sqrt{\frac{2}{1 + a^2}} = \sqrt{\frac{2}{1 + 5}} = \frac{1}{\sqrt 3}, \qquad
\text{bound} = \text{gain} \cdot \sqrt{\frac{3}{\text{fan\_in}}} = \frac{1}{\sqrt{\text{fan\_in}}} .
$$

So the odd-looking $a = \sqrt 5$ is a roundabout way of writing the old Lua Torch rule
$\mathcal U(\pm 1/\sqrt{\text{fan\_in}})$ (PyTorch's source says so in a comment and points to
[issue 57109](https://github.com/pytorch/pytorch/issues/57109)). On paper both bounds are equal. In
floating point the roundabout road often lands a hair short (for a fan-in of 4, by one bit), and in
float64 that bit reaches the weights, so [`kaiming_uniform_bound`][torchenstein.nn.linear.kaiming_uniform_bound]
walks PyTorch's road step by step:

```pycon
>>> import math
>>> from torchenstein.nn.linear import kaiming_uniform_bound
>>> kaiming_uniform_bound(4), 1 / math.sqrt(4)
(0.49999999999999994, 0.5)
>>> _ = torch.manual_seed(0)
>>> theirs64 = nn.Linear(4, 3, dtype=torch.float64)
>>> _ = torch.manual_seed(0)
>>> shortcut = torch.empty(3, 4, dtype=torch.float64).uniform_(-0.5, 0.5)
>>> {"bitwise": torch.equal(shortcut, theirs64.weight), "close": torch.allclose(shortcut, theirs64.weight)}
{'bitwise': False, 'close': True}
>>> _ = torch.manual_seed(0)
>>> torch.equal(Linear(4, 3, dtype=torch.float64).weight, theirs64.weight)
True

```

The other half of "bitwise" is the **order** of the draws: the weight's `out * in` numbers come first,
then the bias's `out`, all from the global generator, in place with `Tensor.uniform_`. Draw the bias
first and every number shifts. Every weight lies inside its bound, and the spread of a uniform
distribution is $\text{bound}/\sqrt 3$:

```pycon
>>> layer = Linear(1024, 256)
>>> bound = kaiming_uniform_bound(1024)
>>> {"inside the bound": bool(layer.weight.abs().max() <= bound),
...  "std / (bound / sqrt 3)": round(layer.weight.std().item() / (bound / math.sqrt(3)), 2)}
{'inside the bound': True, 'std / (bound / sqrt 3)': 1.0}

```

## Why that initialisation: one third of the variance per layer

Take inputs with mean 0 and variance $\sigma^2$, independent of weights with mean 0. Output $y_j$ is a
sum of $\text{fan\_in}$ products $x_i W_{ji}$, so its variance is
$\text{fan\_in} \cdot \operatorname{Var}(W) \cdot \sigma^2$. A uniform weight on $\pm 1/\sqrt{\text{fan\_in}}$
has $\operatorname{Var}(W) = \frac{1}{3\,\text{fan\_in}}$, hence

$$
\operatorname{Var}(y) = \tfrac13\, \sigma^2 \quad (\text{plus } \tfrac{1}{3\,\text{fan\_in}} \text{ from the bias}).
$$

```pycon
>>> _ = torch.manual_seed(0)
>>> layer = Linear(512, 512, bias=False)
>>> x = torch.randn(1024, 512)
>>> round((layer(x).var() / x.var()).item(), 2)
0.33

```

Whatever the width, the signal keeps a third of its variance: nothing explodes. A naive
`torch.randn(out, in)` has $\operatorname{Var}(W) = 1$, so each layer *multiplies* the variance by
$\text{fan\_in}$. Stack layers with a ReLU between them (which halves the mean square) and the standard
deviation changes by a factor $\sqrt{\text{fan\_in} \cdot \operatorname{Var}(W) / 2}$ per layer.
[`activation_stds`][torchenstein.nn.linear.activation_stds] measures it through a stack of bias-free
layers for each of the [`INITS`][torchenstein.nn.linear.INITS]: PyTorch's default, `randn`, Xavier
(Glorot) uniform, $\operatorname{Var}(W) = \frac{2}{\text{fan\_in} + \text{fan\_out}}$, and Kaiming (He)
normal for ReLU, $\operatorname{Var}(W) = \frac{2}{\text{fan\_in}}$:

```pycon
>>> from torchenstein.nn.linear import activation_stds
>>> width = 256
>>> theory = {"pytorch": (1 / 6) ** 0.5, "randn": (width / 2) ** 0.5, "xavier": 0.5 ** 0.5, "kaiming": 1.0}
>>> for init, factor in theory.items():
...     stds = activation_stds(init, depth=8, width=width)
...     measured = (stds[-1] / stds[1]) ** (1 / 7)       # geometric mean over layers 2 to 8
...     print(f"{init:8} per layer x{measured:.1f} (theory x{factor:.1f})  after 8 layers: {stds[-1]:.0e}")
pytorch  per layer x0.4 (theory x0.4)  after 8 layers: 9e-04
randn    per layer x11.0 (theory x11.3)  after 8 layers: 3e+08
xavier   per layer x0.7 (theory x0.7)  after 8 layers: 8e-02
kaiming  per layer x1.0 (theory x1.0)  after 8 layers: 1e+00

```

![Left: standard deviation of the activations through twelve linear layers with ReLU, on a log scale: naive randn explodes, PyTorch's default shrinks, Xavier shrinks more slowly and Kaiming stays near one. Right: histogram of a default-initialised weight, flat between minus and plus one over the square root of fan-in.](plot_init_variance.svg)

The honest verdict: `randn` overflows float32 after a few dozen layers; PyTorch's default never explodes
but, under ReLU, shrinks the signal by about $\sqrt 6$ per layer; Kaiming keeps it steady, which is why
deep ReLU networks are initialised with it (`nn.init.kaiming_normal_(weight, nonlinearity="relu")`). A
Transformer cares less, because its residual connections and normalisation layers rescale the signal
anyway, and its authors pick their own initialisation (GPT-2 draws from $\mathcal N(0, 0.02^2)$).

## Queries, keys and values: three projections or one

Attention starts with three linear layers reading the same tokens: $Q = xW_Q^\top + b_Q$, and likewise
$K$ and $V$, each `Linear(C, C)`. Three layers with one input are one layer with the outputs stacked:
concatenate the three weights along `dim=0` (rows are neurons!) into a `(3C, C)` weight and the biases
into one of length $3C$. The fused layer reads the input once and runs one matrix product instead of
three, which is why `nn.MultiheadAttention` keeps a single `in_proj_weight` of shape `(3C, C)`. Its output
is cut back into Q, K and V along the **last** dimension, in blocks of $C$:

```pycon
>>> C, h = 8, 2
>>> _ = torch.manual_seed(0)
>>> q_proj, k_proj, v_proj = Linear(C, C), Linear(C, C), Linear(C, C)
>>> qkv_proj = Linear(C, 3 * C)
>>> with torch.no_grad():
...     _ = qkv_proj.weight.copy_(torch.cat([q_proj.weight, k_proj.weight, v_proj.weight], dim=0))
...     _ = qkv_proj.bias.copy_(torch.cat([q_proj.bias, k_proj.bias, v_proj.bias]))
>>> x = torch.randn(2, 5, C)                       # (B, T, C)
>>> q, k, v = qkv_proj(x).split(C, dim=-1)         # each (B, T, C)
>>> torch.testing.assert_close(q, q_proj(x))
>>> torch.testing.assert_close(k, k_proj(x))
>>> torch.testing.assert_close(v, v_proj(x))
>>> nn.MultiheadAttention(C, num_heads=h).in_proj_weight.shape
torch.Size([24, 8])

```

Multi-head attention then cuts each of them into heads with `split_heads` from
[Tensor Metamorphosis](../../tensors/metamorphosis/index.md): `(B, T, C)` to `(B, h, T, C / h)`.
[`split_qkv`][torchenstein.nn.linear.split_qkv] does both cuts in one call, and the heads go straight into
the course's own [scaled dot-product attention](../../transformers/attention/index.md):

```pycon
>>> from torchenstein.nn.linear import split_qkv
>>> from torchenstein.tensors.metamorphosis import merge_heads
>>> from torchenstein.transformers.attention import scaled_dot_product_attention
>>> q, k, v = split_qkv(qkv_proj(x), num_heads=h)   # each (B, h, T, C / h)
>>> q.shape
torch.Size([2, 2, 5, 4])
>>> merge_heads(scaled_dot_product_attention(q, k, v, is_causal=True)).shape
torch.Size([2, 5, 8])

```

## Parameters and FLOPs

A linear layer owns $\text{in} \cdot \text{out} + \text{out}$ parameters. Its cost is counted in FLOPs
(floating-point operations): each of the $\text{out}$ outputs of each of the $N$ input vectors
($N$ = the product of the leading dimensions) takes $\text{in}$ multiplications and $\text{in}$ additions,

$$
\text{FLOPs} = 2 \cdot N \cdot \text{in} \cdot \text{out} ,
$$

and the bias adds $N \cdot \text{out}$ more, which FLOP counters leave out as small change. PyTorch's own
counter, `torch.utils.flop_counter.FlopCounterMode`, agrees. The backward pass needs two products of the
same size, one for the input's gradient (needed by every layer but the first) and one for the weight's,
so a training step costs about three times the forward pass:

```pycon
>>> from torch.utils.flop_counter import FlopCounterMode
>>> layer = nn.Linear(64, 32)
>>> x = torch.randn(8, 10, 64, requires_grad=True)   # N = 8 * 10 vectors
>>> with FlopCounterMode(display=False) as counter:
...     out = layer(x)
>>> counter.get_total_flops(), 2 * (8 * 10) * 64 * 32
(327680, 327680)
>>> with FlopCounterMode(display=False) as counter:
...     out.sum().backward()
>>> counter.get_total_flops() // (2 * (8 * 10) * 64 * 32)
2

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the weight read the wrong way round"
    Hammer multiplies by the weight as it is stored, `x @ layer.weight`. On a square layer the shapes fit,
    nothing complains, and every output is wrong: he computes $xW$, not $xW^\top$. Only a non-square layer
    would have told him. The fix is the transpose (or simply calling the layer, or `F.linear`).

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> square = nn.Linear(4, 4)
    >>> x = torch.randn(2, 4)
    >>> torch.allclose(x @ square.weight + square.bias, square(x))       # Hammer: no error, wrong
    False
    >>> torch.allclose(x @ square.weight.T + square.bias, square(x))
    True
    >>> x @ nn.Linear(4, 3).weight
    Traceback (most recent call last):
    ...
    RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x4 and 3x4)

    ```

!!! hammer "Dr. Hammer's trap: weights from `randn`"
    Hammer's from-scratch layer draws its weight with `torch.randn(out_features, in_features)`. Each layer
    multiplies the spread of the activations by about $\sqrt{\text{fan\_in}/2}$ under ReLU; forty layers
    of width 256 overflow float32 into `inf`, and `inf - inf` into `nan`. The fix is a real
    `reset_parameters`, PyTorch's or Kaiming's.

    ```pycon
    >>> class HammerLinear(Linear):
    ...     def reset_parameters(self):
    ...         with torch.no_grad():
    ...             self.weight.copy_(torch.randn(self.out_features, self.in_features))
    ...             self.bias.zero_()
    >>> def stack(layer_class, depth=40, width=256):
    ...     return nn.Sequential(*[m for _ in range(depth) for m in (layer_class(width, width), nn.ReLU())])
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(16, 256)
    >>> torch.isfinite(stack(HammerLinear)(x)).all().item()
    False
    >>> torch.isfinite(stack(Linear)(x)).all().item()
    True

    ```

!!! hammer "Dr. Hammer's trap: the forgotten bias"
    Hammer's layer has a weight and no bias. Loading a real `nn.Linear` checkpoint fails with an
    unexpected key, so he passes `strict=False`: the load "works", the bias is silently thrown away and
    every output is off by it. The fix is a layer whose parameters match the checkpoint's (ours, with
    `bias=True`), and `strict=True`, the default, always.

    ```pycon
    >>> class BiaslessLinear(nn.Module):
    ...     def __init__(self, in_features, out_features):
    ...         super().__init__()
    ...         self.weight = nn.Parameter(torch.empty(out_features, in_features))
    ...     def forward(self, input):
    ...         return input @ self.weight.T
    >>> checkpoint = nn.Linear(4, 3).state_dict()
    >>> BiaslessLinear(4, 3).load_state_dict(checkpoint)
    Traceback (most recent call last):
    ...
    RuntimeError: Error(s) in loading state_dict for BiaslessLinear: Unexpected key(s) in state_dict: "bias".
    >>> hammer = BiaslessLinear(4, 3)
    >>> hammer.load_state_dict(checkpoint, strict=False)
    _IncompatibleKeys(missing_keys=[], unexpected_keys=['bias'])
    >>> ours = Linear(4, 3)
    >>> ours.load_state_dict(checkpoint)
    <All keys matched successfully>
    >>> x = torch.randn(2, 4)
    >>> {"Hammer's output right": torch.allclose(hammer(x), F.linear(x, **checkpoint)),
    ...  "ours right": torch.allclose(ours(x), F.linear(x, **checkpoint))}
    {"Hammer's output right": False, 'ours right': True}

    ```

!!! hammer "Dr. Hammer's trap: the fused output cut along the wrong axis"
    Hammer splits the `(B, T, 3C)` output of a fused projection into heads with
    `reshape(B, T, h, 3, d)`. Every shape is right, but the fused weight holds Q, K and V as three
    *blocks* of $C$ rows, so the axis of size 3 must come first: `reshape(B, T, 3, h, d)`. Mark the
    blocks, Q = 1, K = 2 and V = 3 (zero weight, bias 1, 2, 3), and watch his "queries" fill with keys.

    ```pycon
    >>> B, T, C, h = 1, 2, 4, 2
    >>> marked = Linear(C, 3 * C)
    >>> with torch.no_grad():
    ...     _ = marked.weight.zero_()
    ...     _ = marked.bias.copy_(torch.arange(1.0, 4.0).repeat_interleave(C))
    >>> qkv = marked(torch.randn(B, T, C)).detach()     # (B, T, 3C)
    >>> qkv[0, 0]
    tensor([1., 1., 1., 1., 2., 2., 2., 2., 3., 3., 3., 3.])
    >>> q_hammer = qkv.reshape(B, T, h, 3, C // h)[:, :, :, 0]     # (B, T, h, d)
    >>> q_hammer[0, 0]
    tensor([[1., 1.],
            [2., 2.]])
    >>> q = qkv.reshape(B, T, 3, h, C // h)[:, :, 0]               # (B, T, h, d)
    >>> q[0, 0]
    tensor([[1., 1.],
            [1., 1.]])
    >>> torch.equal(q.transpose(1, 2), split_qkv(qkv, num_heads=h)[0])
    True

    ```

## Challenges

**1. Fuse any number of linear layers.** Write `fuse_linears(*layers)`: given linear layers (ours or
`nn.Linear`) that read the same `in_features`, return one `Linear` whose output is the outputs of all of
them concatenated along the last dimension, `torch.cat([layer(x) for layer in layers], dim=-1)`. The
layers may differ in `out_features`; the fused layer has a bias exactly when at least one of them has one
(a layer without a bias contributes zeros); dtype and device are kept. Raise `ValueError` when no layer
is given or the `in_features` differ. Three `Linear(C, C)` become a `Linear(C, 3C)`, and the two halves of
a SwiGLU's up-projection, for another lesson, become one.

**2. Count the FLOPs.** Write `linear_flops(input_shape, in_features, out_features)`: the FLOPs of
applying a `Linear(in_features, out_features)` to an input of shape `input_shape`, counted the way
`FlopCounterMode` counts them ($2 \cdot N \cdot \text{in} \cdot \text{out}$, bias left out), as an `int`.
Raise `ValueError` if `input_shape` is empty or its last entry is not `in_features`.

Check an attempt with `check_fuse_linears(my_function)` or `check_linear_flops(my_function)`, or put your
functions in a file and run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers
pass:

```pycon
>>> from torchenstein.nn.linear import check_fuse_linears, check_linear_flops, fuse_linears, linear_flops
>>> check_fuse_linears(fuse_linears)
>>> check_linear_flops(linear_flops)

```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.tensors.metamorphosis import split_heads

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""The affine map $y = xW^\top + b$ from scratch, a twin of `torch.nn.functional.linear`.

    The bias is added inside the matrix product (`torch.addmm`), so the result is rounded once, as in
    PyTorch's fused path.

    Args:
        input: shape ``(*, in_features)``, any number of leading dimensions (at least one dimension).
        weight: shape ``(out_features, in_features)``: row ``j`` holds the weights of output ``j``; or
            ``(in_features,)`` for a single output, which then has no feature dimension.
        bias: shape ``(out_features,)``, or ``()`` and ``(1,)`` to share one value, or ``None`` for no
            bias; ``()`` with a 1-D weight.

    Returns:
        Shape ``(*, out_features)``, or ``(*)`` for a 1-D weight.

    Raises:
        TypeError: if an argument is not a tensor or the dtypes differ.
        ValueError: if ``input`` is 0-D, ``weight`` is not 1-D or 2-D, or the shapes do not fit.

    Examples:
        >>> import torch.nn.functional as F
        >>> x, weight, bias = torch.randn(5, 4), torch.randn(3, 4), torch.randn(3)
        >>> torch.equal(linear(x, weight, bias), F.linear(x, weight, bias))
        True
        >>> linear(x, weight, bias[:2])
        Traceback (most recent call last):
        ...
        ValueError: bias must have shape (out_features,) = (3,), or () or (1,), got (2,)
    """
    _check_linear_args(input, weight, bias)
    if bias is None:
        # Every input vector is multiplied by the transposed weight: a free view, no copy. Leading
        # dimensions broadcast through `@`, so (B, T, in) @ (in, out) gives (B, T, out).
        return input @ weight.t()  # (*, out_features), or (*) for a 1-D weight
    if weight.ndim == 1:
        # One output neuron: a dot product per input vector, then the one bias value, as PyTorch does.
        return input @ weight + bias  # (*)
    # The leading dims are flattened into one batch of N vectors (a view when the input is contiguous), so
    # one `addmm` computes bias + x W^T with the bias inside the product: one rounding, where
    # `input @ weight.T + bias` rounds the product to the dtype first and the sum again.
    in_features, out_features = weight.shape[1], weight.shape[0]
    flat = input.reshape(math.prod(input.shape[:-1]), in_features)  # (N, in_features)
    output = torch.addmm(bias, flat, weight.t())  # (N, out_features)
    return output.reshape(*input.shape[:-1], out_features)  # (*, out_features)


def kaiming_uniform_bound(fan_in: int, a: float = math.sqrt(5)) -> float:
    r"""The bound of ``nn.init.kaiming_uniform_(weight, a=a)``, rounded step by step as PyTorch rounds it.

    On paper $\sqrt{2 / (1 + a^2)} \cdot \sqrt{3 / \text{fan\_in}}$, which is $1/\sqrt{\text{fan\_in}}$ for
    the default $a = \sqrt 5$.

    Args:
        fan_in: the number of inputs of each neuron, ``weight.size(1)``; at least 1.
        a: the negative slope of the leaky ReLU the gain is computed for.

    Returns:
        The bound $b$ of the uniform distribution $\mathcal U(-b, b)$.

    Raises:
        ValueError: if ``fan_in`` is below 1.
        TypeError: if ``fan_in`` is not an int.

    Examples:
        >>> kaiming_uniform_bound(16)
        0.24999999999999997
        >>> math.isclose(kaiming_uniform_bound(16, a=0.0), math.sqrt(6 / 16))
        True
    """
    _require_count(fan_in, "fan_in", minimum=1)
    # The same three steps as torch.nn.init: the leaky-ReLU gain, the standard deviation it asks for,
    # and the bound of the uniform distribution with that standard deviation (std = bound / sqrt(3)).
    gain = math.sqrt(2.0 / (1 + a**2))
    std = gain / math.sqrt(fan_in)
    return math.sqrt(3.0) * std


class Linear(nn.Module):
    r"""A linear layer from scratch, $y = xW^\top + b$, a drop-in twin of ``nn.Linear``.

    The parameters are named, shaped and initialised as ``nn.Linear``'s, drawing the same random numbers
    in the same order, so with the same seed both layers start from bitwise equal weights, and the
    state dict of either loads into the other.

    Args:
        in_features: the length of each input vector.
        out_features: the length of each output vector.
        bias: learn an additive bias (``True``) or not (``False``, and ``bias`` is ``None``).
        device: where to create the parameters (``None``: the default device).
        dtype: the parameters' dtype (``None``: the default dtype).

    Raises:
        TypeError: if a feature count is not an int or ``bias`` is not a bool.
        ValueError: if a feature count is negative.

    Examples:
        >>> _ = torch.manual_seed(3)
        >>> ours = Linear(5, 2)
        >>> _ = torch.manual_seed(3)
        >>> torch.equal(ours.weight, nn.Linear(5, 2).weight)
        True
        >>> Linear(5, -2)
        Traceback (most recent call last):
        ...
        ValueError: out_features must be at least 0, got -2
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _require_count(in_features, "in_features")
        self.out_features = _require_count(out_features, "out_features")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        # `torch.empty` only reserves memory: the values are written by reset_parameters below. Assigning
        # an nn.Parameter to an attribute registers it under that name, which becomes its state_dict key.
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))  # (out, in)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))  # (out,)
        else:
            # Registering None keeps `self.bias` an attribute and out of the state_dict, as nn.Linear does.
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Refill the parameters exactly as ``nn.Linear.reset_parameters`` does, from the global generator.

        Examples:
            >>> layer = Linear(4, 3)
            >>> _ = torch.manual_seed(0)
            >>> layer.reset_parameters()
            >>> _ = torch.manual_seed(0)
            >>> torch.equal(layer.weight, nn.Linear(4, 3).weight)
            True
        """
        fan_in = self.weight.size(1)
        # With no inputs there is nothing to scale; PyTorch uses a bound of 0 there (and draws no weights).
        weight_bound = kaiming_uniform_bound(fan_in) if fan_in > 0 else 0.0
        bias_bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        # Filling the parameters is not a step to differentiate through, hence no_grad. The weight's
        # numbers are drawn first and the bias's second: the same order gives the same bits.
        with torch.no_grad():
            self.weight.uniform_(-weight_bound, weight_bound)
            if self.bias is not None:
                self.bias.uniform_(-bias_bound, bias_bound)

    def forward(self, input: Tensor) -> Tensor:
        """Apply the layer: shape ``(*, in_features)`` to ``(*, out_features)``."""
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        """The text inside ``Linear(...)`` when the layer is printed, the same as ``nn.Linear``'s."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


INITS = ("pytorch", "randn", "xavier", "kaiming")
"""The initialisations `activation_stds` compares: ``nn.Linear``'s default, ``torch.randn``, Xavier uniform
and Kaiming normal (for ReLU)."""


def _init_weight(init: str, fan_out: int, fan_in: int, generator: torch.Generator) -> Tensor:
    # Each branch draws from the distribution of one initialisation, from a private generator.
    if init == "pytorch":
        bound = kaiming_uniform_bound(fan_in)
        return torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=generator)
    if init == "randn":
        return torch.randn(fan_out, fan_in, generator=generator)
    if init == "xavier":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=generator)
    return torch.randn(fan_out, fan_in, generator=generator) * math.sqrt(2.0 / fan_in)


def activation_stds(
    init: str = "pytorch", *, depth: int = 8, width: int = 256, batch: int = 512, relu: bool = True, seed: int = 0
) -> list[float]:
    r"""Push standard normal inputs through a stack of bias-free linear layers and record the spread.

    Args:
        init: one of `INITS`: ``"pytorch"`` ($\mathcal U(\pm 1/\sqrt{n})$), ``"randn"`` ($\mathcal N(0, 1)$),
            ``"xavier"`` ($\mathcal U(\pm\sqrt{6 / (2n)})$) or ``"kaiming"`` ($\mathcal N(0, 2/n)$), with
            $n$ = ``width``.
        depth: how many ``Linear(width, width)`` layers.
        width: the features of every layer.
        batch: how many input vectors.
        relu: put a ReLU after every layer but the last.
        seed: seed of a private generator; the global one is left alone.

    Returns:
        ``depth + 1`` standard deviations: of the input, then of each layer's output (before its ReLU).

    Raises:
        ValueError: if ``init`` is unknown, ``depth`` or ``width`` is below 1 or ``batch`` below 2.

    Examples:
        >>> stds = activation_stds("kaiming", depth=3, width=64, batch=32)
        >>> len(stds)
        4
        >>> activation_stds("zeros")
        Traceback (most recent call last):
        ...
        ValueError: init must be one of ('pytorch', 'randn', 'xavier', 'kaiming'), got 'zeros'
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    _require_count(depth, "depth", minimum=1)
    _require_count(width, "width", minimum=1)
    _require_count(batch, "batch", minimum=2)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, width, generator=generator)  # (batch, width)
    stds = [x.std().item()]
    for layer in range(depth):
        # A linear layer with the chosen weight; the spread is measured before the nonlinearity.
        x = x @ _init_weight(init, width, width, generator).T  # (batch, width)
        stds.append(x.std().item())
        if relu and layer < depth - 1:
            x = torch.relu(x)
    return stds


def split_qkv(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Cut the output of a fused Q/K/V projection into queries, keys and values, each split into heads.

    Args:
        qkv: shape ``(B, T, 3 * C)``: the output of a ``Linear(C, 3 * C)`` whose weight stacks the Q, K
            and V weights in that order along ``dim=0``.
        num_heads: how many heads; it must divide ``C``.

    Returns:
        ``(q, k, v)``, each of shape ``(B, num_heads, T, C // num_heads)`` (views of ``qkv``).

    Raises:
        ValueError: if ``qkv`` is not 3-D, its last dim is not a multiple of 3, or ``num_heads`` does
            not divide ``C``.

    Examples:
        >>> q, k, v = split_qkv(torch.zeros(2, 5, 24), num_heads=4)
        >>> q.shape
        torch.Size([2, 4, 5, 2])
    """
    _require_tensor(qkv, "qkv")
    if qkv.ndim != 3:
        raise ValueError(f"qkv must have shape (B, T, 3 * C), got shape {tuple(qkv.shape)}")
    if qkv.size(-1) % 3:
        raise ValueError(f"qkv's last dim must be 3 * C, a multiple of 3, got shape {tuple(qkv.shape)}")
    C = qkv.size(-1) // 3
    # The fused weight holds three blocks of C rows, so the output holds three blocks of C channels.
    q, k, v = qkv.split(C, dim=-1)  # each (B, T, C)
    return split_heads(q, num_heads), split_heads(k, num_heads), split_heads(v, num_heads)  # (B, h, T, d)


def plot_init_variance(*, depth: int = 12, width: int = 256, batch: int = 256) -> Figure:
    """Draw the activations' spread through a ReLU stack for each of `INITS`, and a default weight's histogram.

    Args:
        depth: layers in the stack.
        width: features of every layer (and fan-in of the histogram's weight).
        batch: input vectors.

    Returns:
        A figure with two axes.

    Examples:
        >>> fig = plot_init_variance(depth=2, width=8, batch=4)
        >>> len(fig.axes)
        2
    """
    fig, (ax_std, ax_hist) = new_figure(1, 2, width=9.0, height=3.6)
    labels = ("PyTorch default $U(\\pm 1/\\sqrt{n})$", "naive randn $N(0, 1)$", "Xavier uniform", "Kaiming normal")
    for init, label, colour in zip(INITS, labels, (PALETTE[0], PALETTE[2], PALETTE[3], PALETTE[1]), strict=True):
        stds = activation_stds(init, depth=depth, width=width, batch=batch)
        ax_std.plot(range(depth + 1), stds, "o-", markersize=3, color=colour, label=label)
    ax_std.set(yscale="log", xlabel="layer", ylabel="std of activations", title=f"{depth} layers of width {width}, ReLU between")
    ax_std.legend(fontsize=8)
    # The weight of a default-initialised layer, drawn from a fixed seed without touching the global one.
    generator = torch.Generator().manual_seed(0)
    weight = _init_weight("pytorch", width, width, generator)
    bound = kaiming_uniform_bound(width)
    ax_hist.hist(weight.flatten().numpy(), bins=40, color=PALETTE[0], alpha=0.8)
    for edge in (-bound, bound):
        ax_hist.axvline(edge, color=PALETTE[2], linestyle="--", linewidth=1.2)
    ax_hist.set(xlabel="weight value", ylabel="count", title=f"Default weights, fan-in {width}: flat on $\\pm 1/\\sqrt{{{width}}}$")
    return fig


def fuse_linears(*layers: nn.Module) -> Linear:
    """Challenge solution: one `Linear` that computes several linear layers reading the same input.

    Args:
        *layers: ``Linear`` or ``nn.Linear`` layers with the same ``in_features``, dtype and device.

    Returns:
        A new `Linear` whose output is ``torch.cat([layer(x) for layer in layers], dim=-1)``; it has a
        bias when at least one layer has one.

    Raises:
        ValueError: if no layer is given, one is not a linear layer, or their ``in_features`` differ.

    Examples:
        >>> a, b = Linear(4, 2), Linear(4, 3, bias=False)
        >>> fused, x = fuse_linears(a, b), torch.randn(6, 4)
        >>> fused
        Linear(in_features=4, out_features=5, bias=True)
        >>> torch.testing.assert_close(fused(x), torch.cat([a(x), b(x)], dim=-1))
    """
    if not layers:
        raise ValueError("fuse_linears needs at least one layer, got none")
    for i, layer in enumerate(layers):
        if not isinstance(getattr(layer, "weight", None), Tensor) or layer.weight.ndim != 2:
            raise ValueError(f"layers[{i}] must be a linear layer with a 2-D weight, got {type(layer).__name__}")
    if len({layer.weight.size(1) for layer in layers}) != 1:
        raise ValueError(f"layers must share in_features, got {[layer.weight.size(1) for layer in layers]}")
    # Rows are neurons: stacking the layers' neurons is concatenating their weights along dim 0.
    weight = torch.cat([layer.weight.detach() for layer in layers], dim=0)  # (sum of out_features, in)
    # One bias for all, if any layer has one; a layer without a bias adds zeros to its own outputs.
    has_bias = any(layer.bias is not None for layer in layers)
    # skip_init builds the module on the meta device and then allocates it, so no random numbers are
    # drawn (and the global generator is left as it was) for values we overwrite at once.
    fused = nn.utils.skip_init(Linear, weight.size(1), weight.size(0), bias=has_bias, device=weight.device,
                               dtype=weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(weight)
        if has_bias:
            biases = [layer.weight.new_zeros(layer.weight.size(0)) if layer.bias is None else layer.bias
                      for layer in layers]
            fused.bias.copy_(torch.cat(biases))
    return fused


def check_fuse_linears(candidate: Callable[..., nn.Module]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``fuse_linears``.

    Examples:
        >>> check_fuse_linears(fuse_linears)
    """
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(11)
        cases = [
            ("three Linear(8, 8), as Q, K and V", [nn.Linear(8, 8) for _ in range(3)]),
            ("out_features 3, 5 and 1", [nn.Linear(6, 3), nn.Linear(6, 5), nn.Linear(6, 1)]),
            ("a layer without a bias between two with", [nn.Linear(5, 2), nn.Linear(5, 3, bias=False), Linear(5, 4)]),
            ("no bias anywhere", [nn.Linear(4, 2, bias=False), Linear(4, 3, bias=False)]),
            ("a single layer", [Linear(7, 3)]),
            ("float64 layers", [nn.Linear(3, 2, dtype=torch.float64), nn.Linear(3, 4, dtype=torch.float64)]),
        ]
        for description, layers in cases:
            x = torch.randn(2, 3, layers[0].weight.size(1), dtype=layers[0].weight.dtype)
            expected = torch.cat([layer(x) for layer in layers], dim=-1)
            got, where = candidate(*layers), f"fuse_linears of {description}"
            weight, bias = getattr(got, "weight", None), getattr(got, "bias", None)
            assert isinstance(got, nn.Module) and isinstance(weight, nn.Parameter), (
                f"{where}: expected a module with an nn.Parameter named weight, got {type(got).__name__}"
            )
            assert weight.shape == (expected.size(-1), x.size(-1)), (
                f"{where}: weight shape {tuple(weight.shape)}, expected {(expected.size(-1), x.size(-1))}; "
                "rows are output neurons, so the weights stack along dim 0"
            )
            wants_bias = any(layer.bias is not None for layer in layers)
            assert (bias is not None) == wants_bias, (
                f"{where}: the fused layer should {'have a bias' if wants_bias else 'have bias=None'}"
            )
            torch.testing.assert_close(got(x), expected, msg=lambda m, w=where: f"{w}: wrong outputs. {m}")
            torch.testing.assert_close(torch.cat([layer(x) for layer in layers], dim=-1), expected,
                                       msg=f"{where}: the original layers must not be changed")
        for bad, description in (((), "no layers"), ((nn.Linear(4, 2), nn.Linear(5, 2)), "different in_features")):
            try:
                candidate(*bad)
            except ValueError:
                continue
            raise AssertionError(f"fuse_linears with {description} should raise ValueError")
    finally:
        torch.random.set_rng_state(generator_state)


def linear_flops(input_shape: Sequence[int], in_features: int, out_features: int) -> int:
    """Challenge solution: the FLOPs of a ``Linear(in_features, out_features)`` on an input of ``input_shape``.

    Args:
        input_shape: the input's shape, ``(*, in_features)``.
        in_features: the layer's input features.
        out_features: the layer's output features.

    Returns:
        The number of floating-point operations, an int.

    Raises:
        ValueError: if ``input_shape`` is empty or does not end in ``in_features``.

    Examples:
        >>> linear_flops((8, 1024, 768), 768, 3072)
        38654705664
    """
    shape = tuple(input_shape)
    if not shape or shape[-1] != in_features:
        raise ValueError(f"input_shape must end in in_features={in_features}, got {shape}")
    # Every leading position is one input vector; each of its outputs costs in_features multiply-adds.
    n_vectors = math.prod(shape[:-1])
    return 2 * n_vectors * in_features * out_features


def check_linear_flops(candidate: Callable[[Sequence[int], int, int], int]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``linear_flops``.

    Examples:
        >>> check_linear_flops(linear_flops)
    """
    cases = [((16,), 16, 4, 128), ((3, 16), 16, 4, 384), ((2, 5, 8), 8, 8, 1280), ((2, 3, 4, 6), 6, 10, 2880),
             ((0, 7), 7, 5, 0), ((1, 1), 1, 1, 2), ((8, 1024, 768), 768, 3072, 38654705664)]
    for input_shape, in_features, out_features, expected in cases:
        got = candidate(input_shape, in_features, out_features)
        where = f"linear_flops({input_shape}, {in_features}, {out_features})"
        assert isinstance(got, int) and not isinstance(got, bool), f"{where}: expected an int, got {got!r}"
        assert got == expected, (
            f"{where} = {got}, expected {expected}: 2 FLOPs (a multiply and an add) per input feature, per "
            "output feature, per input vector; the leading dims all count as vectors, and the bias is left out"
        )
    for input_shape in ((), (3, 5)):
        try:
            candidate(input_shape, 4, 2)
        except ValueError:
            continue
        raise AssertionError(f"linear_flops({input_shape}, 4, 2) should raise ValueError: it does not end in 4")


# Argument checks, kept apart so that each function above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _require_tensor(value: object, name: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _require_count(value: object, name: str, minimum: int = 0) -> int:
    # A bool is an int to Python, but `Linear(True, 3)` is surely a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_linear_args(input: object, weight: object, bias: object) -> None:
    _require_tensor(input, "input")
    _require_tensor(weight, "weight")
    if weight.ndim not in (1, 2):
        got = tuple(weight.shape)
        raise ValueError(f"weight must be 2-D (out_features, in_features) or 1-D (in_features,), got shape {got}")
    if input.ndim == 0:
        raise ValueError("input must have at least 1 dimension (its last one holds the features), got a 0-D tensor")
    if input.size(-1) != weight.size(-1):
        raise ValueError(
            f"input's last dim must equal in_features = weight.size(-1) = {weight.size(-1)}, "
            f"got input shape {tuple(input.shape)}"
        )
    # Under autocast the dtypes may differ on purpose: addmm casts its arguments itself, as F.linear's does.
    casting = _autocast_enabled(input.device.type)
    if input.dtype != weight.dtype and not casting:
        raise TypeError(f"input and weight must share a dtype, got {input.dtype} and {weight.dtype}")
    if bias is None:
        return
    _require_tensor(bias, "bias")
    # The shapes F.linear documents: (out_features,) or (), and (1,), which broadcasts the same way.
    if weight.ndim == 2 and tuple(bias.shape) not in {(weight.size(0),), (), (1,)}:
        raise ValueError(f"bias must have shape (out_features,) = ({weight.size(0)},), or () or (1,), got {tuple(bias.shape)}")
    if weight.ndim == 1 and bias.ndim != 0:
        raise ValueError(f"bias must be 0-D, one value, with a 1-D weight, got shape {tuple(bias.shape)}")
    if bias.dtype != weight.dtype and not casting:
        raise TypeError(f"bias and weight must share a dtype, got {bias.dtype} and {weight.dtype}")


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for this kind of device (torch before 2.4 asks per device in other words)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device autocast does not know, such as meta
        return False
    except TypeError:  # pragma: no cover - torch < 2.4
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
