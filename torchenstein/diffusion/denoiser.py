r"""
# The Denoiser: A Network That Knows What Time It Is

!!! torchenstein "The Professor speaks"
    We can dissolve a digit into noise; now we need the creature that looks at the wreckage and says
    *which* noise was added. It must work at every timestep, from a faint speckle to pure static, so the
    first thing it needs is a clock. Tonight I give it one (sines and cosines, as for word positions),
    build two bodies around it, a small MLP for points in the plane and a small U-Net for 8×8 digits,
    trace every tensor shape through them, and prove each block equal to the one inside Hugging Face's
    `diffusers`. Training it is the next lesson's business.

**You will learn to**

- say what a **denoiser** is and why it takes the timestep as an input;
- build sinusoidal **timestep embeddings** equal, bit for bit, to diffusers' `get_timestep_embedding`,
  and relate them to the transformer's position table;
- turn them into a **conditioning vector** with a small MLP, and add a class label to it, with a spare
  "null" class for classifier-free guidance later;
- build an MLP denoiser for 2-D points and a U-Net for 8×8 and 16×16 images (residual blocks with
  GroupNorm and SiLU, stride-2 downsampling, nearest upsampling, skip connections, self-attention at the
  lowest resolution), and trace its shapes level by level;
- count their parameters by formula, zero-initialise the output layer and say why;
- dodge three of Dr. Hammer's traps: a clock left unplugged, groups that do not divide, sizes that do not halve.

## What the denoiser must do

[The forward process](../forward/index.md) made a noisy sample from clean data $x_0$ and standard
normal noise $\varepsilon$ in one jump, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,
\varepsilon$. A **denoiser** is the neural network $\varepsilon_\theta(x_t, t)$ that is given $x_t$ and
the timestep $t$ and predicts the noise $\varepsilon$ that was added; $\theta$ stands for its weights.
Predicting the noise (rather than $x_0$) is the choice of the DDPM paper (Ho et al., 2020), and with it
the output always has the input's shape. Every denoiser of this course has one signature, which the
training and sampling lessons rely on:

```
model(x_t, t, class_labels=None) -> Tensor of x_t's shape
```

where `t` is one timestep (an int) or one per sample, shape $(B,)$, and `class_labels` is optional. Here
it is for both of tonight's models, untrained:

```pycon
>>> import torch
>>> from torchenstein.diffusion.denoiser import MLPDenoiser, UNet
>>> _ = torch.manual_seed(0)
>>> points, images = torch.randn(5, 2), torch.randn(4, 1, 8, 8)
>>> t = torch.tensor([0, 10, 500, 999])                              # (B,): one timestep per image
>>> {"MLP": tuple(MLPDenoiser()(points, 250).shape), "U-Net": tuple(UNet()(images, t).shape)}
{'MLP': (5, 2), 'U-Net': (4, 1, 8, 8)}

```

## A clock for the network: sinusoidal timestep embeddings

The timestep is one integer from 0 to 999, and a network is bad at reading one raw integer: a single
input neuron that is 3 at $t = 3$ and 999 at $t = 999$ gives the network a number a thousand times too
large at one end, and nothing that varies on the scale of a few steps. The cure is the one
[Positional encoding](../../nn/positional/index.md) used for word positions: stamp $t$ with sines and
cosines of many frequencies, fast ones that tell neighbouring steps apart and slow ones that tell the
beginning from the end. With $d$ columns, $h = \lfloor d/2 \rfloor$ frequencies and a shift $s$,

$$
\omega_i = \text{max\_period}^{-i/(h - s)}, \quad i = 0, \dots, h - 1, \qquad
\operatorname{emb}(t) = \big[\sin(t\,\omega_0), \dots, \sin(t\,\omega_{h-1}),\; \cos(t\,\omega_0), \dots,
\cos(t\,\omega_{h-1})\big].
$$

[`timestep_embedding`][torchenstein.diffusion.denoiser.timestep_embedding] takes diffusers' arguments:
`flip_sin_to_cos` (cosines first), `downscale_freq_shift` ($s$: 1, the default, makes the slowest
frequency exactly $1/\text{max\_period}$; 0 gives the transformer's frequencies), `scale` (a factor on
every angle) and `max_period` (10000). An odd width gets a last column of zeros. The sines all come first,
then the cosines: the "concatenated" layout of the positional lesson. With $s = 0$ it *is* that
lesson's table, up to float32 rounding:

```pycon
>>> from torchenstein.diffusion.denoiser import timestep_embedding
>>> from torchenstein.nn.positional import interleaved_to_concatenated, sinusoidal_positions
>>> emb = timestep_embedding(torch.arange(1000), 32, downscale_freq_shift=0)
>>> table = interleaved_to_concatenated(sinusoidal_positions(1000, 32))
>>> {"shape": tuple(emb.shape), "dtype": emb.dtype,
...  "within 1e-4 of the position table": torch.allclose(emb, table, rtol=0, atol=1e-4),
...  "bit for bit": torch.equal(emb, table)}
{'shape': (1000, 32), 'dtype': torch.float32, 'within 1e-4 of the position table': True, 'bit for bit': False}
>>> thousand = torch.tensor(1000.0)
>>> (torch.nextafter(thousand, 2 * thousand) - thousand).item() == 2**-14    # float32's spacing there
True

```

The gap is not a bug in either: the positional table computes its angles $t\,\omega_i$ in float64
and rounds at the end, while diffusers (and so we) compute the frequencies and the angles in float32,
where an angle near 1000 is rounded to a multiple of $2^{-14}$ before its sine is taken. The tests (`tests/test_denoiser.py`)
prove ours equal to diffusers' **bit for bit**: for `flip_sin_to_cos` on and off,
`downscale_freq_shift` 0, 1 and 0.5, `scale` 1 and 1000, `max_period` 10000 and 100, odd and even widths
from 1 to 129, and int64, int32, float32 (fractional) and float64 timesteps. The one place ours refuses
what diffusers accepts is a shift equal to $h$, where the exponent divides by zero and diffusers returns
NaN (not a number); a test pins that too.

![A heatmap of the timestep embedding: 1000 timesteps down the side, 64 columns across; the first columns stripe quickly, the later ones change slowly over the whole range.](plot_timestep_embedding.svg)

## From sinusoids to a conditioning vector

The sinusoids are fixed; the network learns what to make of them.
[`TimestepEmbedding`][torchenstein.diffusion.denoiser.TimestepEmbedding] is a two-layer MLP (linear, SiLU,
linear) that turns them into the **conditioning vector**: one learned vector per sample, of width
`time_embed_dim`, which every block of the denoiser reads. **SiLU** is $x \cdot \sigma(x)$, the smooth
ReLU the diffusion models use. The submodules carry diffusers' names (`linear_1`, `linear_2`), so a
`state_dict` moves between ours and diffusers' `TimestepEmbedding`, and the tests prove the outputs equal.

[`Conditioning`][torchenstein.diffusion.denoiser.Conditioning] does the whole job for a model: `t` (an
int or shape $(B,)$) to sinusoids with diffusers' U-Net settings (`flip_sin_to_cos=True`,
`downscale_freq_shift=0`), through the MLP, plus a class vector when the model is class-conditional:

```pycon
>>> from torchenstein.diffusion.denoiser import Conditioning
>>> cond = Conditioning(sinusoid_dim=16, embed_dim=64)
>>> cond(torch.tensor([3, 999]), batch_size=2).shape                # (B, embed_dim)
torch.Size([2, 64])

```

## An MLP denoiser for points in the plane

For 2-D data, such as the spiral of [The training loop](../../training/loop/index.md),
[`MLPDenoiser`][torchenstein.diffusion.denoiser.MLPDenoiser] is enough: lift $x_t$ to `hidden_dim`
features, then `num_layers` **residual** layers (each adds its output to its input, $h \leftarrow h +
f(h)$, so an untrained layer starts close to doing nothing) that each read the conditioning vector
$c$ anew, $h \leftarrow h + W\,\operatorname{SiLU}(h + c)$, and project back to 2 numbers. Adding $c$ in
every layer, not only at the input, keeps the clock within reach of the deepest layer.

Its parameters by formula (a linear layer from $a$ to $b$ features has $ab + b$): the time MLP $2(h^2 +
h)$ with its sinusoids `hidden_dim` wide, the input layer $(d + 1)h$, the residual layers $L(h^2 + h)$,
the output $(h + 1)d$, and $(K + 1)h$ for a table of $K$ classes plus the null one:

```pycon
>>> from torchenstein.diffusion.denoiser import mlp_denoiser_parameter_count
>>> mlp = MLPDenoiser(data_dim=2, hidden_dim=128, num_layers=3)
>>> {"formula": mlp_denoiser_parameter_count(2, 128, 3), "counted": sum(p.numel() for p in mlp.parameters())}
{'formula': 83202, 'counted': 83202}

```

## A U-Net for images

An image denoiser must see both the fine grain (a pixel's noise) and the whole (is this a 3 or an 8?).
A **U-Net** (Ronneberger et al., 2015; in diffusion since DDPM) does both: a *down path* halves the
resolution level by level while widening the channels, a *middle* works on the coarsest grid, and an
*up path* doubles the resolution back, each level concatenating the features the down path kept at the
same resolution, its **skip connection**, so the fine detail never has to squeeze through the bottom.
Drawn with its levels as rows, it is a U. [`UNet`][torchenstein.diffusion.denoiser.UNet] is built from
four blocks, each named and wired as diffusers' own:

- [`ResBlock`][torchenstein.diffusion.denoiser.ResBlock]: GroupNorm, SiLU, 3×3 convolution, **plus the
  conditioning vector** (through its own linear projection `time_emb_proj`, one number per channel,
  added at every pixel), GroupNorm, SiLU, 3×3 convolution, and the input added back (through a 1×1
  convolution where the channel count changes). **GroupNorm** normalises each sample over groups of
  channels, so unlike BatchNorm it does not care how large the batch is.
- [`Downsample`][torchenstein.diffusion.denoiser.Downsample]: a 3×3 convolution with **stride** 2 (it
  visits every second pixel), which halves height and width.
- [`Upsample`][torchenstein.diffusion.denoiser.Upsample]: **nearest** upsampling (each pixel copied into a
  2×2 square), then a 3×3 convolution to smooth the blocks.
- [`AttentionBlock`][torchenstein.diffusion.denoiser.AttentionBlock]: at the lowest resolution, every
  pixel a token, multi-head self-attention through the course's
  [`scaled_dot_product_attention`][torchenstein.transformers.attention.scaled_dot_product_attention], so
  the two far corners of a digit can talk; added back to its input like a residual.

The model uses PyTorch's `nn.GroupNorm`. The [Normalisation](../../nn/normalization/index.md) lesson wrote
[`group_norm`][torchenstein.nn.normalization.group_norm] from scratch and its checker proves it equal
to `F.group_norm`. Ours is a chain of separate operations (a mean, a variance, a division), each with
its own backward pass, where the built-in is one fused kernel, so ours is the slower (time both with
`time_it`); a denoiser normalises in every block of every training step, so the built-in does the work:

```pycon
>>> from torch import nn
>>> from torchenstein.nn.normalization import group_norm
>>> x, gn = torch.randn(4, 16, 8, 8), nn.GroupNorm(8, 16)
>>> torch.allclose(group_norm(x, 8, gn.weight, gn.bias, gn.eps), gn(x), atol=1e-6)
True

```

A ResBlock's parameters: two GroupNorms ($2a + 2b$: a scale and a shift per channel), two convolutions
($9ab + b$ and $9b^2 + b$), the projection of the $E$-wide conditioning vector ($Eb + b$) and, when
$a \ne b$, the 1×1 shortcut ($ab + b$):

```pycon
>>> from torchenstein.diffusion.denoiser import ResBlock, resblock_parameter_count
>>> {(a, b): (resblock_parameter_count(a, b, 64), sum(p.numel() for p in ResBlock(a, b, 64).parameters()))
...  for a, b in [(16, 16), (16, 32), (64, 32)]}
{(16, 16): (5744, 5744), (16, 32): (16608, 16608), (64, 32): (32064, 32064)}

```

Now the whole model, traced. [`shape_trace`][torchenstein.diffusion.denoiser.shape_trace] runs a U-Net
and returns the shape of every stage, in order; the default has `block_out_channels=(16, 32, 32)`,
three levels, 8×8, 4×4 and 2×2:

```pycon
>>> from torchenstein.diffusion.denoiser import shape_trace
>>> unet = UNet()
>>> for stage, shape in shape_trace(unet, torch.randn(2, 1, 8, 8), 500):
...     print(f"{stage:15} {shape}")
conditioning    (2, 64)
conv_in         (2, 16, 8, 8)
down 0          (2, 16, 8, 8)
downsample 0    (2, 16, 4, 4)
down 1          (2, 32, 4, 4)
downsample 1    (2, 32, 2, 2)
down 2          (2, 32, 2, 2)
mid block 1     (2, 32, 2, 2)
mid attention   (2, 32, 2, 2)
mid block 2     (2, 32, 2, 2)
concat skip 2   (2, 64, 2, 2)
up 2            (2, 32, 2, 2)
upsample 2      (2, 32, 4, 4)
concat skip 1   (2, 64, 4, 4)
up 1            (2, 32, 4, 4)
upsample 1      (2, 32, 8, 8)
concat skip 0   (2, 48, 8, 8)
up 0            (2, 16, 8, 8)
conv_out        (2, 1, 8, 8)

```

Read it as the U: down the left (the channels double as the grid halves), four tokens of attention
at the bottom, and up the right, where every "concat skip" stacks the down path's features onto the
channels. The same model takes 16×16 images unchanged (it is made of convolutions, which do not care
about the grid size), with 16 tokens at the bottom:

```pycon
>>> dict(shape_trace(unet, torch.randn(2, 1, 16, 16), 500))["mid attention"]
(2, 32, 4, 4)

```

![A U-shaped diagram of the default U-Net: each stage a dot at the height of its grid (8×8, 4×4, 2×2), numbered with its channel count, from 16 channels at 8×8 down to 32 at 2×2 and back up, with dashed arrows for the skip connections and the stage names along the bottom.](plot_unet_shapes.svg)

The challenge below asks you for the parameter count of the whole U-Net by formula; the default has
about two hundred thousand, small enough to train on the 8×8 digits on two CPU cores in minutes:

```pycon
>>> sum(p.numel() for p in unet.parameters())
199729

```

[`time_unet_step`][torchenstein.diffusion.denoiser.time_unet_step] times one forward and backward pass
of a batch with the lab's `time_it`; try `time_unet_step(batch_size=128)` on your machine.

## Class conditioning, and the null class

To ask for a particular digit, give the model its class. With `num_classes=K`, the
[`Conditioning`][torchenstein.diffusion.denoiser.Conditioning] holds a learned table of $K + 1$ vectors (an
[`Embedding`][torchenstein.nn.embeddings.Embedding]) and adds the label's vector to the time vector, so
every block sees both. Row $K$, the index `model.null_class`, is the **null class**: "no label". Training
with a share of labels replaced by it teaches one network to be both conditional and unconditional,
which **classifier-free guidance** (a later lesson) combines at sampling time. Passing no labels to a
class-conditional model means the null class for every sample:

```pycon
>>> digits = UNet(num_classes=10)
>>> x, steps = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 500])
>>> labels = torch.tensor([3, 7, digits.null_class])
>>> {"null_class": digits.null_class, "output": tuple(digits(x, steps, labels).shape),
...  "table rows": digits.conditioning.class_embedding.num_embeddings}
{'null_class': 10, 'output': (3, 1, 8, 8), 'table rows': 11}
>>> unet(x, steps, labels)                                            # a model built without classes
Traceback (most recent call last):
...
ValueError: class_labels were given, but the model was built with num_classes=None

```

## Zero at the start

Both models zero their last layer's weights and bias (`conv_out` in the U-Net, `output` in the MLP), so
before training they predict exactly $\hat\varepsilon = 0$ for every input: the mean of the noise, the
best guess that knows nothing, with a loss of $\operatorname{E}[\varepsilon^2] = 1$ from the first step.
A randomly initialised last layer would start from confident random predictions instead, with a loss
above 1, and the first hundreds of steps would be spent unlearning them. Zero does not stop learning:
the last layer's own gradient is its input times the error, which is not zero, so the first step moves
it, and from the second step on the gradient reaches every weight behind it (a test checks that each
parameter gets one). The output keeps the input's dtype and device:

```pycon
>>> out = unet(images, t)
>>> {"all zero": bool((out == 0).all()), "dtype": out.dtype, "device": out.device.type}
{'all zero': True, 'dtype': torch.float32, 'device': 'cpu'}
>>> unet.double()(images.double(), t).dtype
torch.float64

```

## Against the real thing: diffusers' blocks

diffusers' `UNet2DModel` is built from the same parts, and ours carry their parameter names, so each
block's `state_dict` loads into diffusers' block. The tests prove, with copied weights:
`timestep_embedding` equal to `get_timestep_embedding` bit for bit (the settings above);
`TimestepEmbedding` equal to diffusers' `TimestepEmbedding`; `ResBlock` equal to `ResnetBlock2D` (equal
and different channel counts, several `groups` and `eps`, in float32 and float64, outputs and the
gradients of the input, the conditioning vector and every weight); `AttentionBlock` equal to diffusers'
`Attention` as its `UNetMidBlock2D` builds it (1, 2 and 4 heads, 2×2 and 4×4 grids, keys renamed
`to_out` → `to_out.0`); `Downsample` and `Upsample` equal to `Downsample2D` and `Upsample2D` with
`use_conv=True`. The whole U-Net is not compared: `UNet2DModel` wires the same parts differently (it also keeps a
skip after `conv_in` and after every downsampling, so its up levels hold one ResBlock more than its down
levels): a choice of wiring, not a different part.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the clock left unplugged"
    Hammer's denoiser takes `t` and never uses it ("the noise is right there in the picture!"). But the
    same noisy point means different noise at different timesteps. Take data made of one point $x_0$: then
    $x_t$ and $t$ fix the noise exactly, $\varepsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0) / \sqrt{1 -
    \bar\alpha_t}$, and one $x_t$ seen at two timesteps asks for two different answers. A model blind to
    $t$ gives one, so it is wrong at one of them at least, however long it trains.

    ```pycon
    >>> from torchenstein.diffusion.schedules import noise_schedule
    >>> alpha_bar = noise_schedule().alphas_cumprod
    >>> x0, x_t = torch.tensor([1.0, -0.5]), torch.tensor([0.3, 0.2])
    >>> def true_noise(t):
    ...     return (x_t - alpha_bar[t].sqrt() * x0) / (1 - alpha_bar[t]).sqrt()
    >>> {t: [round(v, 2) for v in true_noise(t).tolist()] for t in (50, 900)}
    {50: [-3.95, 3.99], 900: [0.28, 0.21]}

    ```

    The cure is in the signature: every denoiser here reads `t` through its conditioning vector in
    every block. A quick test that the clock is plugged in: give the model a non-zero last layer and
    check that its output moves with `t` alone.

    ```pycon
    >>> probe = MLPDenoiser()
    >>> _ = nn.init.normal_(probe.output.weight)
    >>> same_x = torch.randn(1, 2)
    >>> torch.allclose(probe(same_x, 50), probe(same_x, 900))
    False

    ```

!!! hammer "Dr. Hammer's trap: groups that do not divide"
    GroupNorm splits the channels into `num_groups` groups of equal size, so the count must divide every
    channel width in the model. Hammer widens his U-Net to `(16, 20, 32)` channels with 8 groups, and
    PyTorch's error names a `num_channels` he never typed. Ours is raised when the model is built and
    names the setting and the width that fails; pick widths that are multiples of `norm_num_groups`.

    ```pycon
    >>> nn.GroupNorm(8, 20)
    Traceback (most recent call last):
    ...
    ValueError: num_channels (20) must be divisible by num_groups (8)
    >>> UNet(block_out_channels=(16, 20, 32), norm_num_groups=8)
    Traceback (most recent call last):
    ...
    ValueError: norm_num_groups=8 must divide every entry of block_out_channels=(16, 20, 32), but not 20
    >>> UNet(block_out_channels=(16, 24, 32), norm_num_groups=8).conditioning.embed_dim
    64

    ```

!!! hammer "Dr. Hammer's trap: a size that does not halve"
    The default U-Net halves the grid twice, so height and width must be divisible by $2^2 = 4$. Hammer
    feeds it 10×10 crops: the stride-2 convolutions round up, 10 → 5 → 3, the upsampling doubles
    3 → 6, and the skip from the 5×5 level no longer fits. PyTorch's error speaks of a tensor "number 1 in
    the list" deep inside a concatenation. Ours checks the size at the door:

    ```pycon
    >>> crops = torch.randn(2, 1, 10, 10)
    >>> torch.cat([torch.randn(2, 32, 6, 6), torch.randn(2, 32, 5, 5)], dim=1)   # what happens inside
    Traceback (most recent call last):
    ...
    RuntimeError: Sizes of tensors must match except in dimension 1. Expected size 6 but got size 5 for tensor number 1 in the list.
    >>> UNet()(crops, 10)
    Traceback (most recent call last):
    ...
    ValueError: x_t's height and width must be divisible by 4 (the U-Net halves them 2 times), got 10x10
    >>> UNet()(crops[..., 1:9, 1:9], 10).shape                       # crop to 8x8, or pad to 12x12
    torch.Size([2, 1, 8, 8])

    ```

## Challenges

**1. Count the whole U-Net.** Write `unet_parameter_count(in_channels=1, out_channels=None,
block_out_channels=(16, 32, 32), num_classes=None)` returning the number of parameters of
`UNet(in_channels, out_channels, block_out_channels, num_classes=num_classes)` by formula, without
building it. `check_unet_parameter_count(candidate)` compares it with `sum(p.numel() ...)` on several
configurations. Hint: `resblock_parameter_count` does a third of the work.

**2. Scale and shift.** diffusers' `ResnetBlock2D(time_embedding_norm="scale_shift")` conditions more
strongly than by adding: the projection gives two numbers per channel, a scale $\gamma$ and a shift
$\beta$, and the block computes $\operatorname{GroupNorm}(h) \cdot (1 + \gamma) + \beta$. Write
`scale_shift_conditioning(h, temb, norm, time_emb_proj)`: `h` of shape $(B, C, H, W)$, `temb` of shape
$(B, E)$, `norm` a GroupNorm over $C$ channels, `time_emb_proj` a linear layer from $E$ to $2C$; apply
SiLU to `temb`, project, split into $\gamma$ (the first $C$) and $\beta$, and return the result.
`check_scale_shift_conditioning(candidate)` checks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure, time_it
from torchenstein.nn.embeddings import Embedding
from torchenstein.transformers.attention import scaled_dot_product_attention

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure


def timestep_embedding(
    timesteps: Tensor, embedding_dim: int, flip_sin_to_cos: bool = False, downscale_freq_shift: float = 1.0,
    scale: float = 1.0, max_period: float = 10000.0,
) -> Tensor:
    r"""Sinusoidal timestep embeddings, a twin of diffusers' ``get_timestep_embedding``.

    Args:
        timesteps: a 1-D tensor of ``B`` timesteps, integer or fractional.
        embedding_dim: the width ``D`` of each embedding; an odd width gets a last column of zeros.
        flip_sin_to_cos: ``True`` puts the cosines first (``cos, sin``), ``False`` the sines.
        downscale_freq_shift: $s$ in $\omega_i = \text{max\_period}^{-i/(D/2 - s)}$: 1 makes the
            slowest frequency exactly ``1 / max_period``, 0 gives the transformer's frequencies.
        scale: a factor on every angle.
        max_period: the base of the frequencies.

    Returns:
        A float32 tensor of shape ``(B, embedding_dim)``, on ``timesteps``' device.

    Raises:
        TypeError: if ``timesteps`` is not a real tensor.
        ValueError: if ``timesteps`` is not 1-D, ``embedding_dim`` is not a positive int, or a setting
            cannot give finite frequencies.

    Examples:
        >>> timestep_embedding(torch.tensor([0, 999]), 6).shape
        torch.Size([2, 6])
        >>> timestep_embedding(torch.tensor(7), 6)
        Traceback (most recent call last):
        ...
        ValueError: timesteps must be a 1-D tensor of shape (B,), got shape ()
    """
    _check_embedding_args(timesteps, embedding_dim, downscale_freq_shift, scale, max_period)
    half = embedding_dim // 2
    # The same float32 operations in the same order as diffusers, so that the two agree bit for bit.
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    omega = torch.exp(exponent / (half - downscale_freq_shift))  # (D/2,): from 1 down to ~1/max_period
    angles = scale * (timesteps[:, None].float() * omega[None, :])  # (B, D/2)
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (B, D): all the sines, then all the cosines
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if embedding_dim % 2:
        emb = F.pad(emb, (0, 1))  # (B, D): an odd width ends in a column of zeros
    return emb


class TimestepEmbedding(nn.Module):
    """The MLP that turns sinusoids into a conditioning vector: linear, SiLU, linear, with diffusers' names.

    Args:
        in_channels: the width of the sinusoidal embedding.
        time_embed_dim: the width of the conditioning vector.

    Examples:
        >>> TimestepEmbedding(32, 128)(torch.randn(4, 32)).shape
        torch.Size([4, 128])
    """

    def __init__(self, in_channels: int, time_embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample: Tensor) -> Tensor:
        # The sinusoids are float32; the MLP may be float64 or bfloat16, so they take its dtype first.
        sample = sample.to(self.linear_1.weight.dtype)
        return self.linear_2(self.act(self.linear_1(sample)))  # (B, time_embed_dim)


class Conditioning(nn.Module):
    r"""The timestep, and optionally a class label, made into one conditioning vector per sample.

    The timestep goes through sinusoids with diffusers' U-Net settings (``flip_sin_to_cos=True``,
    ``downscale_freq_shift=0``) and a [`TimestepEmbedding`][torchenstein.diffusion.denoiser.TimestepEmbedding];
    a class label, through a learned table of ``num_classes + 1`` rows whose last row, index
    ``null_class = num_classes``, stands for "no label" (classifier-free guidance drops labels to it).

    Args:
        sinusoid_dim: the width of the sinusoidal embedding.
        embed_dim: the width of the conditioning vector.
        num_classes: the number of classes, or ``None`` for a model without labels.

    Attributes:
        null_class: the label index meaning "no label" (``num_classes``), or ``None``.

    Examples:
        >>> Conditioning(8, 16, num_classes=3)(5, batch_size=2, class_labels=torch.tensor([0, 3])).shape
        torch.Size([2, 16])
    """

    def __init__(self, sinusoid_dim: int, embed_dim: int, num_classes: int | None = None) -> None:
        super().__init__()
        _check_positive_int("sinusoid_dim", sinusoid_dim)
        _check_positive_int("embed_dim", embed_dim)
        if num_classes is not None:
            _check_positive_int("num_classes", num_classes)
        self.sinusoid_dim, self.embed_dim, self.num_classes = sinusoid_dim, embed_dim, num_classes
        self.null_class = num_classes
        self.time_embedding = TimestepEmbedding(sinusoid_dim, embed_dim)
        # One row per class and one more, the null class, at index num_classes.
        self.class_embedding = None if num_classes is None else Embedding(num_classes + 1, embed_dim)

    def forward(self, t: int | float | Tensor, batch_size: int, class_labels: Tensor | None = None) -> Tensor:
        device = self.time_embedding.linear_1.weight.device
        t = _timesteps_for(t, batch_size, device)  # (B,)
        sinusoids = timestep_embedding(t, self.sinusoid_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        emb = self.time_embedding(sinusoids)  # (B, E)
        if self.class_embedding is None:
            if class_labels is not None:
                raise ValueError("class_labels were given, but the model was built with num_classes=None")
            return emb
        if class_labels is None:  # no labels: every sample gets the null class, the unconditional model
            class_labels = torch.full((batch_size,), self.null_class, device=device)
        _check_labels(class_labels, batch_size, self.num_classes)
        return emb + self.class_embedding(class_labels.to(device)).to(emb.dtype)  # (B, E)


class MLPDenoiser(nn.Module):
    r"""A noise predictor for points, ``(B, data_dim) -> (B, data_dim)``, conditioned on the timestep.

    Args:
        data_dim: the width of a data point (2 for points in the plane).
        hidden_dim: the width of the hidden layers, of the sinusoids and of the conditioning vector.
        num_layers: the number of residual layers, each reading the conditioning vector.
        num_classes: the number of classes for class conditioning, or ``None``.

    Examples:
        >>> MLPDenoiser()(torch.randn(3, 2), torch.tensor([0, 1, 2])).shape
        torch.Size([3, 2])
        >>> MLPDenoiser()(torch.randn(3, 1, 2), 0)
        Traceback (most recent call last):
        ...
        ValueError: x_t must have shape (B, 2), got (3, 1, 2)
    """

    def __init__(self, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3,
                 num_classes: int | None = None) -> None:
        super().__init__()
        for name, value in (("data_dim", data_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers)):
            _check_positive_int(name, value)
        self.data_dim = data_dim
        self.conditioning = Conditioning(hidden_dim, hidden_dim, num_classes)
        self.input = nn.Linear(data_dim, hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
        self.output = nn.Linear(hidden_dim, data_dim)
        # Zero: the untrained model predicts epsilon = 0, the mean of the noise (see "Zero at the start").
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    @property
    def null_class(self) -> int | None:
        """The label index meaning "no label", or ``None`` without classes."""
        return self.conditioning.null_class

    def forward(self, x_t: Tensor, t: int | float | Tensor, class_labels: Tensor | None = None) -> Tensor:
        _check_sample(x_t, 2, self.data_dim, "(B, {c})")
        c = self.conditioning(t, x_t.size(0), class_labels)  # (B, H)
        h = self.input(x_t)  # (B, H)
        for layer in self.layers:
            # The conditioning vector is added before every layer, so the clock reaches the deepest one.
            h = h + layer(F.silu(h + c))  # (B, H)
        return self.output(F.silu(h))  # (B, data_dim)


def mlp_denoiser_parameter_count(data_dim: int, hidden_dim: int, num_layers: int,
                                 num_classes: int | None = None) -> int:
    """The parameters of ``MLPDenoiser(data_dim, hidden_dim, num_layers, num_classes)``, by formula.

    Examples:
        >>> mlp_denoiser_parameter_count(2, 128, 3, num_classes=2)
        83586
    """
    h = hidden_dim
    time_mlp = 2 * (h * h + h)  # linear_1 (sinusoids h wide) and linear_2
    classes = 0 if num_classes is None else (num_classes + 1) * h  # the null class has a row too
    return time_mlp + classes + (data_dim + 1) * h + num_layers * (h * h + h) + (h + 1) * data_dim


class ResBlock(nn.Module):
    """A residual block with time conditioning, named and computed as diffusers' ``ResnetBlock2D``.

    Args:
        in_channels: channels in.
        out_channels: channels out.
        temb_channels: the width of the conditioning vector.
        groups: GroupNorm's ``num_groups`` for both norms; it must divide both channel counts.
        eps: GroupNorm's ``eps``.

    Examples:
        >>> ResBlock(16, 32, 64)(torch.randn(2, 16, 4, 4), torch.randn(2, 64)).shape
        torch.Size([2, 32, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int = 8,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        # A 1x1 convolution matches the channels of the input to those of the output, where they differ.
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, input_tensor: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(input_tensor)))  # (B, C_out, H, W)
        # One number per channel from the conditioning vector, the same at every pixel.
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]  # (B, C_out, 1, 1) broadcast
        h = self.conv2(F.silu(self.norm2(h)))  # (B, C_out, H, W)
        skip = input_tensor if self.conv_shortcut is None else self.conv_shortcut(input_tensor)
        return skip + h


def resblock_parameter_count(in_channels: int, out_channels: int, temb_channels: int) -> int:
    """The parameters of ``ResBlock(in_channels, out_channels, temb_channels)``, by formula.

    Examples:
        >>> resblock_parameter_count(16, 16, 64)
        5744
    """
    a, b, e = in_channels, out_channels, temb_channels
    norms = 2 * a + 2 * b  # a weight and a bias per channel, in each GroupNorm
    convs = (9 * a * b + b) + (9 * b * b + b)
    shortcut = a * b + b if a != b else 0
    return norms + convs + (e * b + b) + shortcut


class Downsample(nn.Module):
    """Halve height and width with a stride-2 3x3 convolution (diffusers' ``Downsample2D(use_conv=True)``).

    Examples:
        >>> Downsample(8)(torch.randn(1, 8, 8, 8)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.conv(hidden_states)  # (B, C, ceil(H/2), ceil(W/2))


class Upsample(nn.Module):
    """Double height and width: nearest upsampling, then a 3x3 convolution (diffusers' ``Upsample2D``).

    Examples:
        >>> Upsample(8)(torch.randn(1, 8, 2, 2)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, hidden_states: Tensor) -> Tensor:
        # Each pixel becomes a 2x2 square of copies; the convolution then smooths the blocks.
        return self.conv(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual connection.

    GroupNorm first, then every pixel is a token of ``channels`` features; computed as diffusers'
    ``Attention`` in a ``UNetMidBlock2D`` (its ``to_out.0`` is our ``to_out``).

    Args:
        channels: the channels of the feature map, the tokens' width.
        heads: the number of attention heads; it must divide ``channels``.
        groups: GroupNorm's ``num_groups``.
        eps: GroupNorm's ``eps``.

    Examples:
        >>> AttentionBlock(32, heads=4)(torch.randn(2, 32, 2, 2)).shape
        torch.Size([2, 32, 2, 2])
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8, eps: float = 1e-5) -> None:
        super().__init__()
        if isinstance(heads, bool) or not isinstance(heads, Integral) or heads < 1 or channels % heads:
            raise ValueError(f"heads must be a positive int that divides channels={channels}, got {heads!r}")
        self.heads = heads
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, hidden_states: Tensor) -> Tensor:
        B, C, H, W = hidden_states.shape
        tokens = self.group_norm(hidden_states).flatten(2).transpose(1, 2)  # (B, HW, C)

        def split_heads(x: Tensor) -> Tensor:
            return x.view(B, H * W, self.heads, C // self.heads).transpose(1, 2)  # (B, heads, HW, C/heads)

        q, k, v = (split_heads(proj(tokens)) for proj in (self.to_q, self.to_k, self.to_v))
        out = scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        out = self.to_out(out.transpose(1, 2).reshape(B, H * W, C))  # (B, HW, C)
        return hidden_states + out.transpose(1, 2).reshape(B, C, H, W)  # (B, C, H, W)


class UNet(nn.Module):
    r"""A small U-Net noise predictor for single-channel images, ``(B, C, H, W) -> (B, C, H, W)``.

    One ResBlock per level on the way down (a stride-2 Downsample between levels), a middle of
    ResBlock, self-attention and ResBlock at the lowest resolution, and one ResBlock per level on the way
    up, each reading the same level's down features concatenated onto its input (an Upsample between
    levels). Height and width must be divisible by ``2 ** (len(block_out_channels) - 1)``.

    Args:
        in_channels: the image's channels.
        out_channels: the prediction's channels, ``None`` for ``in_channels``.
        block_out_channels: the channels of each level, from the finest to the coarsest.
        num_classes: the number of classes for class conditioning (label ``num_classes`` is the null
            class), or ``None``.
        norm_num_groups: GroupNorm's ``num_groups``; it must divide every entry of ``block_out_channels``.
        attention_heads: heads of the middle self-attention; they must divide the last channel count.
        norm_eps: GroupNorm's ``eps``.

    Raises:
        ValueError: if a setting cannot build a model, or (when called) ``x_t`` has the wrong shape.

    Examples:
        >>> UNet(block_out_channels=(8, 16), norm_num_groups=4)(torch.randn(2, 1, 16, 16), 3).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int | None = None,
        block_out_channels: Sequence[int] = (16, 32, 32), num_classes: int | None = None,
        norm_num_groups: int = 8, attention_heads: int = 4, norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        ch = _check_unet_args(in_channels, out_channels, block_out_channels, norm_num_groups, attention_heads)
        self.in_channels = in_channels
        out_channels = in_channels if out_channels is None else out_channels
        # diffusers' sizes: sinusoids as wide as the first level, a conditioning vector four times that.
        temb = 4 * ch[0]
        self.conditioning = Conditioning(ch[0], temb, num_classes)
        block = {"temb_channels": temb, "groups": norm_num_groups, "eps": norm_eps}
        self.conv_in = nn.Conv2d(in_channels, ch[0], kernel_size=3, padding=1)
        # Level i takes the previous level's channels (conv_in's at level 0) to its own.
        self.down_blocks = nn.ModuleList(ResBlock(c_in, c, **block) for c_in, c in zip((ch[0], *ch[:-1]), ch, strict=True))
        self.downsamplers = nn.ModuleList(Downsample(c) for c in ch[:-1])
        self.mid_block1 = ResBlock(ch[-1], ch[-1], **block)
        self.mid_attention = AttentionBlock(ch[-1], attention_heads, norm_num_groups, norm_eps)
        self.mid_block2 = ResBlock(ch[-1], ch[-1], **block)
        # Up level i reads the level below's output (the middle's at the last level) and its skip.
        self.up_blocks = nn.ModuleList(ResBlock(c_below + c, c, **block) for c_below, c in zip((*ch[1:], ch[-1]), ch, strict=True))
        self.upsamplers = nn.ModuleList(Upsample(c) for c in ch[1:])  # upsamplers[i - 1] leaves level i
        self.norm_out = nn.GroupNorm(norm_num_groups, ch[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(ch[0], out_channels, kernel_size=3, padding=1)
        # Zero: the untrained model predicts epsilon = 0, the mean of the noise (see "Zero at the start").
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def null_class(self) -> int | None:
        """The label index meaning "no label" (``num_classes``), or ``None`` without classes."""
        return self.conditioning.null_class

    def forward(self, x_t: Tensor, t: int | float | Tensor, class_labels: Tensor | None = None) -> Tensor:
        return self._run(x_t, t, class_labels, trace=None)

    def _run(self, x_t: Tensor, t: int | float | Tensor, class_labels: Tensor | None,
             trace: list[tuple[str, tuple[int, ...]]] | None) -> Tensor:
        """The forward pass; with a list as ``trace``, each stage's name and output shape is appended to it."""
        _check_sample(x_t, 4, self.in_channels, "(B, {c}, H, W)")
        _check_image_size(x_t, len(self.down_blocks) - 1)

        def stage(name: str, x: Tensor) -> Tensor:
            if trace is not None:
                trace.append((name, tuple(x.shape)))
            return x

        emb = stage("conditioning", self.conditioning(t, x_t.size(0), class_labels))  # (B, E)
        h = stage("conv_in", self.conv_in(x_t))  # (B, C_0, H, W)
        skips = []
        last = len(self.down_blocks) - 1
        for i, block in enumerate(self.down_blocks):
            h = stage(f"down {i}", block(h, emb))  # (B, C_i, H / 2^i, W / 2^i)
            skips.append(h)
            if i < last:
                h = stage(f"downsample {i}", self.downsamplers[i](h))
        h = stage("mid block 1", self.mid_block1(h, emb))
        h = stage("mid attention", self.mid_attention(h))
        h = stage("mid block 2", self.mid_block2(h, emb))
        for i in reversed(range(last + 1)):
            # The skip of level i has the same grid as h here: stack them along the channels.
            h = stage(f"concat skip {i}", torch.cat([h, skips.pop()], dim=1))
            h = stage(f"up {i}", self.up_blocks[i](h, emb))  # (B, C_i, H / 2^i, W / 2^i)
            if i > 0:
                h = stage(f"upsample {i}", self.upsamplers[i - 1](h))
        return stage("conv_out", self.conv_out(F.silu(self.norm_out(h))))  # (B, out_channels, H, W)


def shape_trace(model: UNet, x_t: Tensor, t: int | float | Tensor,
                class_labels: Tensor | None = None) -> list[tuple[str, tuple[int, ...]]]:
    """Run a U-Net without recording gradients and list the output shape of every stage, in order.

    Args:
        model: a [`UNet`][torchenstein.diffusion.denoiser.UNet].
        x_t: the noisy images, ``(B, C, H, W)``.
        t: the timestep, one for all or one per image.
        class_labels: the labels of a class-conditional U-Net (``None``: the null class).

    Returns:
        ``(stage name, shape)`` pairs, from the conditioning vector to ``conv_out``.

    Raises:
        TypeError: if ``model`` is not a ``UNet``.

    Examples:
        >>> shape_trace(UNet(), torch.randn(1, 1, 8, 8), 0)[-1]
        ('conv_out', (1, 1, 8, 8))
    """
    if not isinstance(model, UNet):
        raise TypeError(f"model must be a UNet, got {type(model).__name__}")
    trace: list[tuple[str, tuple[int, ...]]] = []
    with torch.no_grad():
        model._run(x_t, t, class_labels, trace)
    return trace


def time_unet_step(*, batch_size: int = 128, image_size: int = 8, num_classes: int | None = 10,
                   repeat: int = 5) -> float:
    """Time one forward and backward pass of the default U-Net on a batch of images, in seconds (median).

    Examples:
        >>> time_unet_step(batch_size=2, repeat=1) > 0
        True
    """
    generator = torch.Generator().manual_seed(0)
    model = UNet(num_classes=num_classes)
    x = torch.randn(batch_size, 1, image_size, image_size, generator=generator)
    t = torch.randint(0, 1000, (batch_size,), generator=generator)
    labels = None if num_classes is None else torch.randint(0, num_classes, (batch_size,), generator=generator)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x, t, labels).square().mean().backward()

    return time_it(step, repeat=repeat, warmup=1)


def plot_timestep_embedding(*, num_timesteps: int = 1000, embedding_dim: int = 64) -> Figure:
    """Draw the U-Net's timestep embedding (cosines first, transformer frequencies) as a heatmap.

    Examples:
        >>> len(plot_timestep_embedding(num_timesteps=10, embedding_dim=8).axes)
        2
    """
    emb = timestep_embedding(torch.arange(num_timesteps), embedding_dim, flip_sin_to_cos=True,
                             downscale_freq_shift=0)  # (T, D)
    fig, (ax,) = new_figure(width=6.0, height=3.6)
    image = ax.imshow(emb.numpy(), aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.grid(False)
    half = embedding_dim // 2
    ax.set_xticks([0, half], ["cos (fast → slow)", "sin (fast → slow)"], ha="left", fontsize=8)
    ax.set(ylabel="timestep $t$", title=f"timestep_embedding(t, {embedding_dim}), flip_sin_to_cos=True")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def plot_unet_shapes(*, block_out_channels: Sequence[int] = (16, 32, 32), image_size: int = 8) -> Figure:
    """Draw the U-Net's stages as a U: one dot per stage at the height of its grid, numbered with its channels.

    Examples:
        >>> len(plot_unet_shapes().axes)
        1
    """
    model = UNet(block_out_channels=tuple(block_out_channels))
    trace = shape_trace(model, torch.zeros(1, 1, image_size, image_size), 0)[1:]  # the image stages
    fig, (ax,) = new_figure(width=8.0, height=3.6)
    levels = [int(round(math.log2(image_size / shape[2]))) for _, shape in trace]
    ax.plot(range(len(trace)), [-level for level in levels], color=PALETTE[6], linewidth=1, zorder=1)
    for x, ((name, shape), level) in enumerate(zip(trace, levels, strict=True)):
        colour = PALETTE[0] if name.startswith(("down", "conv_in")) else PALETTE[1] if name.startswith("mid") else PALETTE[2]
        ax.scatter([x], [-level], s=20 + shape[1] * 4, color=colour, zorder=2)
        ax.annotate(str(shape[1]), (x, -level), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
    # Dashed arcs from each level's down block to the concatenation that reads it.
    names = [name for name, _ in trace]
    for i in range(len(block_out_channels)):
        start, end = names.index(f"down {i}"), names.index(f"concat skip {i}")
        ax.annotate("", xy=(end, -i - 0.08), xytext=(start, -i - 0.08),
                    arrowprops={"arrowstyle": "->", "linestyle": "--", "color": PALETTE[3],
                                "connectionstyle": "arc3,rad=0.15"})
    ax.set_yticks([-level for level in range(len(block_out_channels))],
                  [f"{image_size >> level}×{image_size >> level}" for level in range(len(block_out_channels))])
    ax.set_xticks(range(len(trace)), names, rotation=90, fontsize=7)
    ax.set(ylim=(-len(block_out_channels) + 0.5, 0.5), ylabel="grid",
           title="The U-Net, stage by stage: each dot's number is its channel count")
    return fig


def unet_parameter_count(in_channels: int = 1, out_channels: int | None = None,
                         block_out_channels: Sequence[int] = (16, 32, 32), num_classes: int | None = None) -> int:
    """Challenge solution: the parameters of a ``UNet`` by formula, without building it.

    Examples:
        >>> unet_parameter_count()
        199729
    """
    ch = tuple(block_out_channels)
    out_channels = in_channels if out_channels is None else out_channels
    e = 4 * ch[0]

    def conv(a: int, b: int, k: int = 3) -> int:
        return a * b * k * k + b

    conditioning = (ch[0] * e + e) + (e * e + e) + (0 if num_classes is None else (num_classes + 1) * e)
    down = sum(resblock_parameter_count(a, b, e) for a, b in zip((ch[0], *ch[:-1]), ch, strict=True))
    down += sum(conv(c, c) for c in ch[:-1])
    c = ch[-1]
    mid = 2 * resblock_parameter_count(c, c, e) + 2 * c + 4 * (c * c + c)  # attention: a norm, 4 linears
    up = sum(resblock_parameter_count(below + c, c, e) for below, c in zip((*ch[1:], ch[-1]), ch, strict=True))
    up += sum(conv(c, c) for c in ch[1:])
    ends = conv(in_channels, ch[0]) + 2 * ch[0] + conv(ch[0], out_channels)
    return conditioning + down + mid + up + ends


def check_unet_parameter_count(candidate: Callable[..., int]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``unet_parameter_count``."""
    configs = [
        {},
        {"num_classes": 10},
        {"block_out_channels": (8, 16), "num_classes": 2},
        {"in_channels": 3, "block_out_channels": (16, 16, 32, 32)},
        {"in_channels": 2, "out_channels": 4, "block_out_channels": (32,)},
    ]
    for config in configs:
        groups = math.gcd(*config.get("block_out_channels", (16, 32, 32)))
        model = UNet(**config, norm_num_groups=min(groups, 8), attention_heads=1)
        expected = sum(p.numel() for p in model.parameters())
        try:
            got = candidate(**config)
        except Exception as err:
            raise AssertionError(f"unet_parameter_count(**{config}) raised {type(err).__name__}: {err}") from err
        assert got == expected, (
            f"unet_parameter_count(**{config}) returned {got!r}, but the model has {expected} parameters"
        )


def scale_shift_conditioning(h: Tensor, temb: Tensor, norm: nn.Module, time_emb_proj: nn.Module) -> Tensor:
    r"""Challenge solution: $\operatorname{norm}(h)(1 + \gamma) + \beta$, with $\gamma, \beta$ from the conditioning vector.

    Args:
        h: feature maps, ``(B, C, H, W)``.
        temb: the conditioning vectors, ``(B, E)``.
        norm: a GroupNorm over ``C`` channels.
        time_emb_proj: a linear layer from ``E`` to ``2 * C``.

    Returns:
        A tensor of ``h``'s shape.

    Examples:
        >>> h, temb = torch.randn(2, 4, 3, 3), torch.randn(2, 6)
        >>> scale_shift_conditioning(h, temb, nn.GroupNorm(2, 4), nn.Linear(6, 8)).shape
        torch.Size([2, 4, 3, 3])
    """
    gamma_beta = time_emb_proj(F.silu(temb))[:, :, None, None]  # (B, 2C, 1, 1)
    gamma, beta = gamma_beta.chunk(2, dim=1)  # (B, C, 1, 1) each: the first C are the scale
    # 1 + gamma: a projection that outputs zero leaves the normalised features as they are.
    return norm(h) * (1 + gamma) + beta


def check_scale_shift_conditioning(candidate: Callable[..., Tensor]) -> None:
    """Raise AssertionError if ``candidate`` is not a correct ``scale_shift_conditioning``."""
    generator = torch.Generator().manual_seed(0)
    for B, C, H, E in ((2, 4, 3, 6), (1, 8, 2, 16), (3, 2, 5, 1)):
        h = torch.randn(B, C, H, H, generator=generator, dtype=torch.float64)
        temb = torch.randn(B, E, generator=generator, dtype=torch.float64)
        norm = nn.GroupNorm(2 if C % 2 == 0 else 1, C).double()
        proj = nn.Linear(E, 2 * C).double()
        with torch.no_grad():
            for p in (*norm.parameters(), *proj.parameters()):
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
        where = f"h of shape {(B, C, H, H)}, temb of shape {(B, E)}"
        try:
            got = candidate(h, temb, norm, proj)
        except Exception as err:
            raise AssertionError(f"scale_shift_conditioning raised {type(err).__name__}: {err} for {where}") from err
        assert isinstance(got, Tensor) and got.shape == h.shape, f"for {where} expected shape {tuple(h.shape)}"
        out = proj(F.silu(temb))
        gamma, beta = out[:, :C, None, None], out[:, C:, None, None]
        assert torch.allclose(got, norm(h) * (1 + gamma) + beta), (
            f"for {where}: expected norm(h) * (1 + gamma) + beta, with gamma the first C outputs of "
            "time_emb_proj(silu(temb)) and beta the last C, each reshaped to (B, C, 1, 1)"
        )
        if torch.allclose(got, norm(h) * gamma + beta):
            raise AssertionError(f"for {where}: the scale must be 1 + gamma, not gamma")


# Argument checks, kept apart so that the code above reads as its idea. Every message names the
# argument, the value it got and what was expected.


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_embedding_args(timesteps: object, embedding_dim: object, downscale_freq_shift: object,
                          scale: object, max_period: object) -> None:
    if not isinstance(timesteps, Tensor) or timesteps.dtype == torch.bool or timesteps.is_complex():
        raise TypeError(f"timesteps must be a real tensor, got {timesteps!r}")
    if timesteps.dim() != 1:
        raise ValueError(f"timesteps must be a 1-D tensor of shape (B,), got shape {tuple(timesteps.shape)}")
    _check_positive_int("embedding_dim", embedding_dim)
    for name, value in (("downscale_freq_shift", downscale_freq_shift), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if isinstance(max_period, bool) or not isinstance(max_period, Real) or not 0 < max_period < math.inf:
        raise ValueError(f"max_period must be a positive finite number, got {max_period!r}")
    half = embedding_dim // 2
    if half > 0 and half == downscale_freq_shift:
        raise ValueError(
            f"downscale_freq_shift={downscale_freq_shift!r} equals embedding_dim // 2 = {half}, which divides "
            "the exponent by zero (diffusers returns NaN there)"
        )


def _timesteps_for(t: object, batch_size: int, device: torch.device) -> Tensor:
    """``t`` as a (B,) tensor on ``device``: one number is repeated for every sample."""
    if isinstance(t, Real) and not isinstance(t, bool):
        t = torch.tensor(t, device=device)
    if not isinstance(t, Tensor) or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"t must be a number or a real tensor of timesteps, got {t!r}")
    if t.dim() == 0:
        t = t.expand(batch_size)
    if tuple(t.shape) != (batch_size,):
        raise ValueError(f"t must be one timestep or one per sample, shape () or ({batch_size},), got {tuple(t.shape)}")
    return t.to(device)


def _check_labels(class_labels: object, batch_size: int, num_classes: int) -> None:
    if not isinstance(class_labels, Tensor) or class_labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"class_labels must be an int64 or int32 tensor, got {class_labels!r}")
    if tuple(class_labels.shape) != (batch_size,):
        raise ValueError(f"class_labels must have shape ({batch_size},), one per sample, got {tuple(class_labels.shape)}")
    if class_labels.numel() and (class_labels.min() < 0 or class_labels.max() > num_classes):
        raise ValueError(
            f"class_labels must lie in 0..{num_classes} ({num_classes} is the null class), "
            f"got values from {int(class_labels.min())} to {int(class_labels.max())}"
        )


def _check_sample(x_t: object, dim: int, channels: int, layout: str) -> None:
    if not isinstance(x_t, Tensor) or not x_t.is_floating_point():
        raise TypeError(f"x_t must be a floating-point tensor, got {x_t!r}")
    if x_t.dim() != dim or x_t.size(1) != channels:
        raise ValueError(f"x_t must have shape {layout.format(c=channels)}, got {tuple(x_t.shape)}")


def _check_image_size(x_t: Tensor, halvings: int) -> None:
    factor = 2**halvings
    H, W = x_t.shape[-2:]
    if H % factor or W % factor:
        raise ValueError(
            f"x_t's height and width must be divisible by {factor} (the U-Net halves them {halvings} times), "
            f"got {H}x{W}"
        )


def _check_unet_args(in_channels: object, out_channels: object, block_out_channels: object,
                     norm_num_groups: object, attention_heads: object) -> tuple[int, ...]:
    _check_positive_int("in_channels", in_channels)
    if out_channels is not None:
        _check_positive_int("out_channels", out_channels)
    _check_positive_int("norm_num_groups", norm_num_groups)
    _check_positive_int("attention_heads", attention_heads)
    if isinstance(block_out_channels, (str, bytes)) or not isinstance(block_out_channels, Sequence) or not all(
        isinstance(c, Integral) and not isinstance(c, bool) and c > 0 for c in block_out_channels
    ) or not block_out_channels:
        raise ValueError(f"block_out_channels must be a non-empty sequence of positive ints, got {block_out_channels!r}")
    ch = tuple(int(c) for c in block_out_channels)
    bad = [c for c in ch if c % norm_num_groups]
    if bad:
        raise ValueError(
            f"norm_num_groups={norm_num_groups} must divide every entry of block_out_channels={ch}, "
            f"but not {', '.join(map(str, bad))}"
        )
    if ch[-1] % attention_heads:
        raise ValueError(f"attention_heads={attention_heads} must divide the last channel count {ch[-1]}")
    return ch
