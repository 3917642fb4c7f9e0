r"""
# The Transformer Block: Stitching the Monster Together

!!! torchenstein "The Professor speaks"
    Years ago I stared at `torch.nn.Transformer` and asked the question that cost me my academic career:
    *why does it work the way it does?* Tonight we answer it with our own hands. We have the organs
    already: multi-head attention, LayerNorm, the linear layer. We stitch them into an encoder block, a
    decoder block, two stacks and the whole encoder-decoder machine, load PyTorch's very weights into
    ours, and prove that every output and every gradient agrees. Then we open the one door PyTorch keeps
    locked: the evaluation fast path, where padded tokens come back as zeros.

**You will learn to**

- write `TransformerEncoderLayer` and `TransformerDecoderLayer` with PyTorch's arguments and submodule
  names, so a `state_dict` moves both ways and one seed gives both the same weights;
- place the LayerNorm after the residual addition (post-norm) or before the sub-layer (pre-norm), and
  measure why pre-norm stacks train deeper;
- stack layers into `TransformerEncoder`, `TransformerDecoder` and the whole `Transformer`, deep copies,
  final norms, masks and all;
- predict what PyTorch's evaluation fast path does with a padding mask, and where ours differs;
- dodge Dr. Hammer's favourite mistakes: the forgotten `batch_first`, a float mask of 1s, the fast path's
  zeros and the layer that was copied away.

## The block: two sub-layers on a residual stream

A **Transformer block** (Vaswani et al., 2017) turns a sequence of $T$ token vectors of width $E$
(`d_model`) into another sequence of the same shape. It has two **sub-layers**: multi-head
self-attention (the [previous lesson's](../multihead/index.md)
[`MultiheadAttention`][torchenstein.transformers.multihead.MultiheadAttention]), where tokens read each
other, and a **feed-forward network**, two [`Linear`][torchenstein.nn.linear.Linear] layers with an
activation between them, applied to each token on its own: $\operatorname{FFN}(x) = W_2\,
\phi(W_1 x + b_1) + b_2$, widening $E$ to `dim_feedforward` and back. Each sub-layer is wrapped in a
**residual connection**: its output is *added* to its input, so the sequence flows down a **residual
stream** and each sub-layer only writes a correction into it. A
[`LayerNorm`][torchenstein.nn.normalization.LayerNorm] (from [Normalisation](../../nn/normalization/index.md))
keeps the numbers in check, in one of two places:

$$
\text{post-norm:}\quad x \leftarrow \operatorname{LN}\big(x + \operatorname{Sublayer}(x)\big),
\qquad\qquad
\text{pre-norm:}\quad x \leftarrow x + \operatorname{Sublayer}\big(\operatorname{LN}(x)\big).
$$

The original paper normalised after the addition; PyTorch's `norm_first=False` (the default) does the
same, `norm_first=True` gives pre-norm. Dropout ([Dropout](../../nn/dropout/index.md)) sits on every
sub-layer's output, on the feed-forward hidden units and on the attention weights, all with the same
probability `dropout`, and only in training mode.

## `TransformerEncoderLayer` from scratch

[`TransformerEncoderLayer`][torchenstein.transformers.block.TransformerEncoderLayer] takes PyTorch's
constructor, `(d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
batch_first=False, norm_first=False, bias=True, device=None, dtype=None)`, where `activation` is
`"relu"`, `"gelu"` (the course's own [`relu`][torchenstein.nn.activations.relu] and
[`gelu`][torchenstein.nn.activations.gelu]) or any callable. It registers the same submodules in the
same order: `self_attn`, `linear1`, `dropout`, `linear2`, `norm1`, `norm2`, `dropout1`, `dropout2`.
That order is the order of the random draws, so under one seed both layers are born bitwise equal:

```pycon
>>> import torch
>>> import torch.nn.functional as F
>>> from torch import nn
>>> from torchenstein.transformers.block import TransformerEncoderLayer
>>> _ = torch.manual_seed(0)
>>> ours = TransformerEncoderLayer(8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True)
>>> _ = torch.manual_seed(0)
>>> theirs = nn.TransformerEncoderLayer(8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True)
>>> list(ours.state_dict()) == list(theirs.state_dict())
True
>>> all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
True
>>> list(ours.state_dict())[:6]
['self_attn.in_proj_weight', 'self_attn.in_proj_bias', 'self_attn.out_proj.weight', 'self_attn.out_proj.bias', 'linear1.weight', 'linear1.bias']

```

The forward pass is the formula above, twice. With a padding mask and a causal mask, in PyTorch's
polarity (a boolean `True` means *hidden*; see [Multi-Head Attention](../multihead/index.md#two-masks-in-pytorchs-polarity)),
outputs and input gradients agree:

```pycon
>>> with torch.no_grad():                        # move the weights off their initial values
...     for p in theirs.parameters():
...         _ = p.add_(0.3 * torch.randn(p.shape))
>>> _ = ours.load_state_dict(theirs.state_dict())
>>> x = torch.randn(3, 5, 8, requires_grad=True)                 # (B, T, E)
>>> pad = torch.arange(5) >= torch.tensor([5, 3, 2])[:, None]    # (B, T): True = padding
>>> future = torch.ones(5, 5, dtype=torch.bool).triu(1)          # (T, T): True = the future, hidden
>>> y_ours = ours(x, src_mask=future, src_key_padding_mask=pad)
>>> y_theirs = theirs(x, src_mask=future, src_key_padding_mask=pad)
>>> torch.testing.assert_close(y_ours, y_theirs)
>>> g_ours, = torch.autograd.grad(y_ours.sum(), x)
>>> g_theirs, = torch.autograd.grad(y_theirs.sum(), x)
>>> torch.testing.assert_close(g_ours, g_theirs)
>>> TransformerEncoderLayer(8, nhead=3)
Traceback (most recent call last):
...
ValueError: nhead must divide d_model=8, got nhead=3

```

The tests (`tests/test_block.py`) prove much more: outputs, input gradients and every parameter's
gradient in float64 to $10^{-10}$, for both `norm_first` values, `"relu"` and `"gelu"`, `batch_first`
`True` and `False`, and eight mask settings (none; causal as bool and as float; padding as bool and as
float; one boolean mask per sequence and head; causal with padding; an arbitrary additive float bias);
the decoder layer the same way with all four of its masks; the whole model in float32 (outputs to the
default tolerance, gradients through four layers to $10^{-4}$); evaluation mode with `dropout=0.3`;
float16 and bfloat16 on the CPU (outputs within `atol=rtol=2e-2` and `5e-2`, gradients within 5% of
their largest entry); length-1 sequences, unbatched `(T, E)` inputs, callables such as `F.silu` as the
activation, `bias=False`, and `state_dict` round trips. In training mode, equality needs `dropout=0`:
PyTorch's attention then runs its fused kernel, which draws its own random numbers.

## Post-norm or pre-norm

Where the norm sits decides what the gradient meets on its way down. In a pre-norm stack the stream
$x_{l+1} = x_l + f_l(\operatorname{LN}(x_l))$ has an untouched identity path: whatever gradient reaches
the top reaches every layer, plus what the sub-layers add. In a post-norm stack every gradient passes
through all $2N$ LayerNorms on the stream, and each rescales it. Xiong et al. (2020) showed that this
makes post-norm's gradients badly balanced at initialisation, which is why the original Transformer
needed a learning-rate warm-up and why deep stacks (GPT-2 and almost every model since) moved the
norm first. Our own measurement:
[`stream_gradient_norms`][torchenstein.transformers.block.stream_gradient_norms] builds a 24-layer
encoder the way `nn.Transformer` does, sends a random batch through, and measures the gradient of a
loss with respect to each layer's input:

```pycon
>>> from torchenstein.transformers.block import stream_gradient_norms
>>> post, pre = stream_gradient_norms(norm_first=False), stream_gradient_norms(norm_first=True)
>>> {"post-norm: some layer gets under 70% of the top layer": min(post) < 0.7 * post[-1],
...  "pre-norm: every layer gets at least the top layer": all(g >= pre[-1] for g in pre)}
{'post-norm: some layer gets under 70% of the top layer': True, 'pre-norm: every layer gets at least the top layer': True}

```

![Gradient norm at each of 24 layers, relative to the top layer's, on a log scale: the post-norm curve dips well below 1 in the middle of the stack, the pre-norm curve stays above 1 and rises towards the input.](plot_gradient_norms.svg)

This is one seed at initialisation, not a training run: it shows the mechanism, not a law (the tests
check a second seed). The same open path has a price in the forward direction: a pre-norm stream is
never normalised, each layer adds to it, so a pre-norm stack needs a **final LayerNorm** after its last
layer, as we shall see.

## The decoder layer: cross-attention

[`TransformerDecoderLayer`][torchenstein.transformers.block.TransformerDecoderLayer] has three
sub-layers: masked self-attention over the target (each position may see only earlier ones), then
**cross-attention**, where the target's tokens are the queries and the encoder's output, the
**memory**, gives the keys and values, then the feed-forward network; three norms, `norm1` to `norm3`,
and `multihead_attn` for the cross-attention, as in PyTorch. Its masks: `tgt_mask` $(T, T)$ and
`tgt_key_padding_mask` $(B, T)$ for the self-attention, `memory_mask` $(T, S)$ and
`memory_key_padding_mask` $(B, S)$ for the cross-attention.

```pycon
>>> from torchenstein.transformers.block import TransformerDecoderLayer
>>> _ = torch.manual_seed(0)
>>> ours = TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True)      # (T, B, E) inputs
>>> theirs = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True)
>>> _ = ours.load_state_dict(theirs.state_dict())
>>> tgt, memory = torch.randn(4, 3, 8), torch.randn(6, 3, 8)                  # T=4, S=6, B=3
>>> memory_pad = torch.arange(6) >= torch.tensor([6, 4, 1])[:, None]          # (B, S)
>>> causal = nn.Transformer.generate_square_subsequent_mask(4)                # float: -inf above the diagonal
>>> out = ours(tgt, memory, tgt_mask=causal, memory_key_padding_mask=memory_pad)
>>> out.shape
torch.Size([4, 3, 8])
>>> torch.testing.assert_close(out, theirs(tgt, memory, tgt_mask=causal, memory_key_padding_mask=memory_pad))

```

## Stacks, deep copies and the final norms

[`TransformerEncoder`][torchenstein.transformers.block.TransformerEncoder] and
[`TransformerDecoder`][torchenstein.transformers.block.TransformerDecoder] take a layer, a count and an
optional `norm`, and run the layers in turn with the same masks; every decoder layer reads the same
memory. PyTorch builds the stack from `copy.deepcopy(layer)`, `num_layers` times, and so do we. Two
consequences follow: the layer you passed is *not* in the stack, and every copy starts with the *same*
weights. `nn.Transformer` fixes the second by redrawing every matrix with Xavier's uniform
initialisation once the stacks exist (the biases and norm gains stay equal across layers). It also
gives each stack a **final LayerNorm**, `encoder.norm` and `decoder.norm`, whatever `norm_first` says.
A pre-norm stack needs it (its stream is never normalised); a post-norm stack gets a second norm in a
row:

```pycon
>>> from torchenstein.transformers.block import Transformer, TransformerEncoder
>>> layer = TransformerEncoderLayer(8, 2, 16)
>>> stack = TransformerEncoder(layer, num_layers=3)
>>> {"layer 0 is the one passed in": stack.layers[0] is layer,
...  "layers 0 and 2 start equal": torch.equal(stack.layers[0].linear1.weight, stack.layers[2].linear1.weight)}
{'layer 0 is the one passed in': False, 'layers 0 and 2 start equal': True}
>>> model = Transformer(d_model=8, nhead=2, num_encoder_layers=3, num_decoder_layers=2, dim_feedforward=16)
>>> {"encoder.norm": model.encoder.norm, "layers 0 and 2 after the redraw": torch.equal(
...      model.encoder.layers[0].linear1.weight, model.encoder.layers[2].linear1.weight)}
{'encoder.norm': LayerNorm((8,), eps=1e-05, elementwise_affine=True), 'layers 0 and 2 after the redraw': False}

```

## The whole `nn.Transformer`

[`Transformer`][torchenstein.transformers.block.Transformer] is the encoder stack, the decoder stack
and the re-initialisation, with PyTorch's constructor and `forward(src, tgt, src_mask, tgt_mask,
memory_mask, src_key_padding_mask, tgt_key_padding_mask, memory_key_padding_mask, ...)`. The source's
padding must be given twice: to the encoder as `src_key_padding_mask`, and to the decoder's
cross-attention as `memory_key_padding_mask` (the memory has the source's positions). The static
method `generate_square_subsequent_mask(sz)` makes the decoder's causal mask, a *float* mask: 0 where
attention is allowed, $-\infty$ above the diagonal. The parameters are drawn in PyTorch's order, so one
seed gives the same model:

```pycon
>>> _ = torch.manual_seed(0)
>>> ours = Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
...                    batch_first=True)
>>> _ = torch.manual_seed(0)
>>> theirs = nn.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
...                         batch_first=True)
>>> {"parameters": sum(p.numel() for p in ours.parameters()),
...  "bitwise equal": all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
...                                                         theirs.state_dict().values()))}
{'parameters': 3040, 'bitwise equal': True}
>>> Transformer.generate_square_subsequent_mask(3)
tensor([[0., -inf, -inf],
        [0., 0., -inf],
        [0., 0., 0.]])
>>> src, tgt = torch.randn(2, 6, 8), torch.randn(2, 4, 8)                   # (B, S, E), (B, T, E)
>>> src_pad = torch.tensor([[False] * 6, [False] * 3 + [True] * 3])        # (B, S)
>>> masks = {"tgt_mask": Transformer.generate_square_subsequent_mask(4),
...          "src_key_padding_mask": src_pad, "memory_key_padding_mask": src_pad}
>>> torch.testing.assert_close(ours(src, tgt, **masks), theirs(src, tgt, **masks))

```

## The eval fast path

In evaluation mode with gradients off, PyTorch's encoder may skip everything above. Its layers call one
fused kernel, `torch._transformer_encoder_layer_fwd`, and `nn.TransformerEncoder` goes further: given a
`src_key_padding_mask`, it packs the batch into a **nested tensor** (a tensor whose sequences have
different lengths, so the padding is simply not stored), runs the layers on the real tokens only, and
unpacks the result with **zeros** at the padded positions. It does this only when every condition
holds: `enable_nested_tensor=True` (the default), `torch.backends.mha.get_fastpath_enabled()`, eval mode,
no gradient needed, no autocast, batched input with `batch_first=True`, post-norm layers with biases,
an even number of heads and a ReLU or GELU activation, a padding mask aligned to the left (the real
tokens first) and no `mask`. Ours never does:

```pycon
>>> torch.backends.mha.get_fastpath_enabled()
True
>>> _ = torch.manual_seed(0)
>>> theirs = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), num_layers=2)
>>> ours = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, batch_first=True), num_layers=2)
>>> _ = ours.load_state_dict(theirs.state_dict())
>>> _ = theirs.eval(), ours.eval()
>>> pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])            # sequence 1: 3 real tokens
>>> x = torch.randn(2, 5, 8)
>>> with torch.no_grad():
...     fast, slow = theirs(x, src_key_padding_mask=pad), ours(x, src_key_padding_mask=pad)
>>> {"PyTorch, padded positions all zero": bool((fast[pad] == 0).all()),
...  "ours, padded positions all zero": bool((slow[pad] == 0).all()),
...  "real positions agree": torch.allclose(fast[~pad], slow[~pad], atol=1e-5)}
{'PyTorch, padded positions all zero': True, 'ours, padded positions all zero': False, 'real positions agree': True}
>>> _ = torch.manual_seed(0)
>>> no_nesting = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), num_layers=2,
...                                    enable_nested_tensor=False).eval()
>>> with torch.no_grad():
...     torch.testing.assert_close(no_nesting(x, src_key_padding_mask=pad), slow)

```

The zeros are harmless when every later step ignores the padded positions, and harmful when one does
not (Dr. Hammer will show you). With a final norm the zeros become `norm(0)`, the norm's bias.

!!! note "Where it differs from PyTorch"
    - **No nested tensors.** Ours computes padded positions like any other (they attend to the real
      tokens), in every mode; PyTorch's eval fast path returns zeros there. Ours accepts
      `enable_nested_tensor=False` only, and raises a `ValueError` for `True`. Compare with
      `nn.TransformerEncoder(..., enable_nested_tensor=False)`, or at the real positions only; the tests
      pin both facts.
    - **No fused kernels.** PyTorch's attention inside these layers runs with `need_weights=False`, so it
      calls its fused `scaled_dot_product_attention`; ours builds the weights, so the two agree to
      float tolerance, not bitwise. In training mode with `dropout > 0` the two draw different random
      numbers.
    - **Hints.** `is_causal`, `src_is_causal` and `tgt_is_causal` are hints to PyTorch, which may use them
      instead of the mask (and detects a causal float mask by itself); ours always applies the mask given,
      the same thing whenever the hint is true.
    - **A sequence that is all padding** gives `NaN` on PyTorch's fast path (and on its slow path in older
      releases); ours gives finite numbers, from the guard of the
      [attention lesson](../attention/index.md). Bad shapes raise `ValueError` where PyTorch raises
      `RuntimeError` or `AssertionError`.

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: forgetting `batch_first`"
    Every module of this lesson, PyTorch's and ours, expects `(T, B, E)` unless told `batch_first=True`.
    Hammer feeds `(B, T, E)` batches with a causal mask. When $B \ne T$ the mask gives him away; when his
    batch happens to be square, the layer reads the batch as time, and the "causal" mask lets each
    *sentence* peek at the sentences before it (the same trap for bare attention is in
    [Multi-Head Attention](../multihead/index.md)):

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> hammer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)          # batch_first=False
    >>> fixed = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    >>> _ = fixed.load_state_dict(hammer.state_dict())
    >>> causal = nn.Transformer.generate_square_subsequent_mask(4)
    >>> batch = torch.randn(4, 4, 8)                                        # (B, T, E), B == T
    >>> other = batch.clone()
    >>> other[0] += 1.0                                                     # change sentence 0 only
    >>> {"Hammer: sentence 1 moved": not torch.allclose(hammer(batch, causal)[1], hammer(other, causal)[1]),
    ...  "fixed: sentence 1 moved": not torch.allclose(fixed(batch, causal)[1], fixed(other, causal)[1])}
    {'Hammer: sentence 1 moved': True, 'fixed: sentence 1 moved': False}
    >>> hammer(torch.randn(3, 4, 8), causal)                                # B != T
    Traceback (most recent call last):
    ...
    RuntimeError: The shape of the 2D attn_mask is torch.Size([4, 4]), but should be (3, 3).

    ```

!!! hammer "Dr. Hammer's trap: a float mask of ones"
    Hammer builds his causal mask as floats, 1.0 for "hide". But a float mask is *added* to the scores:
    his future tokens get a bonus of 1, not a wall of $-\infty$. Position 0 now reads the last token.
    A boolean `True` hides, a float hides only with $-\infty$:

    ```pycon
    >>> layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    >>> seq = torch.randn(1, 4, 8)
    >>> changed = seq.clone()
    >>> changed[0, 3] += 1.0                                               # change the last token
    >>> def first_moved(mask):
    ...     return not torch.allclose(layer(seq, mask)[0, 0], layer(changed, mask)[0, 0])
    >>> hammer_mask = torch.ones(4, 4).triu(1)                               # 1.0 = "hide"
    >>> {"Hammer's float 1s": first_moved(hammer_mask),
    ...  "bool True = hide": first_moved(hammer_mask.bool()),
    ...  "float -inf": first_moved(nn.Transformer.generate_square_subsequent_mask(4))}
    {"Hammer's float 1s": True, 'bool True = hide': False, 'float -inf': False}

    ```

!!! hammer "Dr. Hammer's trap: the fast path's zeros in the memory"
    Hammer trains an `nn.Transformer` with `batch_first=True` and passes the source's padding to the
    encoder only. In training the padded memory positions hold computed values; in evaluation, on the
    fast path, they hold `norm(0)`. His decoder was never told to ignore them, so it reads different
    memory in the two modes, and his padded sentences translate differently at inference than they did
    in his validation loop. The sentence without padding is untouched, so his spot check passes. Give
    the decoder `memory_key_padding_mask`:

    ```pycon
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Transformer(8, 2, 2, 2, 16, dropout=0.0, batch_first=True)
    >>> train_out = model(src, tgt, src_key_padding_mask=src_pad).detach()
    >>> with torch.no_grad():
    ...     eval_out = model.eval()(src, tgt, src_key_padding_mask=src_pad)
    ...     eval_fixed = model(src, tgt, src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad)
    >>> train_fixed = model.train()(src, tgt, src_key_padding_mask=src_pad,
    ...                             memory_key_padding_mask=src_pad).detach()
    >>> {"Hammer, padded sentence: eval == train": torch.allclose(eval_out[1], train_out[1], atol=1e-4),
    ...  "Hammer, unpadded sentence: eval == train": torch.allclose(eval_out[0], train_out[0], atol=1e-4),
    ...  "fixed, padded sentence: eval == train": torch.allclose(eval_fixed[1], train_fixed[1], atol=1e-4)}
    {'Hammer, padded sentence: eval == train': False, 'Hammer, unpadded sentence: eval == train': True, 'fixed, padded sentence: eval == train': True}

    ```

!!! hammer "Dr. Hammer's trap: loading weights into the layer that was copied away"
    Hammer builds `layer`, wraps it in `nn.TransformerEncoder(layer, 6)`, and *then* loads his
    pretrained weights into `layer`. The stack holds six deep copies made before the loading, so his
    encoder keeps its random weights and nothing complains. Load into the stack (or build the stack last):

    ```pycon
    >>> layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    >>> encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    >>> pretrained = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0).state_dict()
    >>> _ = layer.load_state_dict(pretrained)                               # Hammer
    >>> torch.equal(encoder.layers[0].linear1.weight, pretrained["linear1.weight"])
    False
    >>> _ = encoder.layers[0].load_state_dict(pretrained)                   # into the stack itself
    >>> torch.equal(encoder.layers[0].linear1.weight, pretrained["linear1.weight"])
    True

    ```

## Challenges

**1. Count the monster's parameters.** Write `transformer_parameter_count(d_model, num_encoder_layers,
num_decoder_layers, dim_feedforward, bias=True)` returning the number of scalars in
`nn.Transformer(d_model, nhead, ...)` for any `nhead` (why does `nhead` not matter?). Remember the
cross-attention, the third norm of every decoder layer, the two final norms, and what `bias=False`
removes.

**2. Pool what is real.** A sentence embedding is often the mean of the encoder's output over the
tokens. Write `masked_mean_pool(output, src_key_padding_mask, batch_first=True)` returning $(B, E)$: for
each sequence, the mean over its real positions only (mask `False`), whatever sits at the padded ones:
computed values, the fast path's zeros, even `inf`.

Check an attempt with `check_transformer_parameter_count(my_function)` or
`check_masked_mean_pool(my_function)`, or put your functions in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.transformers import block as lesson
>>> lesson.check_transformer_parameter_count(lesson.transformer_parameter_count)
>>> lesson.check_masked_mean_pool(lesson.masked_mean_pool)

```
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from numbers import Real
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from torchenstein.lab import PALETTE, new_figure
from torchenstein.nn.activations import gelu, relu
from torchenstein.nn.dropout import Dropout
from torchenstein.nn.linear import Linear
from torchenstein.nn.normalization import LayerNorm
from torchenstein.transformers.multihead import MultiheadAttention

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": relu, "gelu": gelu}
"""The activations a layer accepts by name, the course's own `relu` and `gelu`, as PyTorch accepts ``"relu"``
and ``"gelu"``."""


class TransformerEncoderLayer(nn.Module):
    r"""One encoder block from scratch, a drop-in twin of ``torch.nn.TransformerEncoderLayer``.

    Self-attention and a two-layer feed-forward network, each wrapped in a residual connection and a
    LayerNorm: after the addition (post-norm, ``norm_first=False``, the original Transformer's) or before
    the sub-layer (pre-norm, ``norm_first=True``). The submodules and their names are PyTorch's, so the
    ``state_dict`` keys are the same and one seed gives both layers the same weights.

    Args:
        d_model: $E$, the width of every token.
        nhead: the number of attention heads; it must divide ``d_model``.
        dim_feedforward: the hidden width of the feed-forward network.
        dropout: the probability used by every dropout in the layer (attention weights included), in
            training mode only.
        activation: ``"relu"``, ``"gelu"`` or any callable from a tensor to a tensor.
        layer_norm_eps: ``eps`` of both LayerNorms.
        batch_first: inputs are ``(B, T, E)`` when ``True``, ``(T, B, E)`` when ``False`` (PyTorch's default).
        norm_first: pre-norm when ``True``, post-norm when ``False`` (PyTorch's default).
        bias: give every Linear and LayerNorm a bias.
        device: where to create the parameters.
        dtype: the parameters' dtype.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if a size is not positive, ``nhead`` does not divide ``d_model``, ``dropout`` is outside
            $[0, 1]$ or ``activation`` names an activation that does not exist.

    Examples:
        >>> layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        >>> layer(torch.randn(3, 5, 8)).shape
        torch.Size([3, 5, 8])
        >>> TransformerEncoderLayer(8, 2, activation="swish")
        Traceback (most recent call last):
        ...
        ValueError: activation must be 'relu', 'gelu' or a callable, got 'swish'
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_layer_args(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                          norm_first, bias)
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        # The registration order is PyTorch's: it fixes the order of the random draws (so one seed gives
        # both layers the same weights) and the order of the state_dict keys.
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **factory)
        # The feed-forward network: E -> dim_feedforward -> E, applied to every token on its own.
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation

    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        r"""Run the block on ``src``, as ``nn.TransformerEncoderLayer.forward`` does (on its slow path).

        Args:
            src: $(T, B, E)$, or $(B, T, E)$ with ``batch_first``, or $(T, E)$ unbatched.
            src_mask: $(T, T)$ or $(B \cdot h, T, T)$; bool with ``True`` = *not allowed*, or float, added to
                the attention scores.
            src_key_padding_mask: $(B, T)$ (or $(T,)$ unbatched); bool with ``True`` = *padding, ignore*, or
                float, added.
            is_causal: a hint that ``src_mask`` is the causal mask; the mask must be given, and it is the
                mask that is applied.

        Returns:
            A tensor shaped like ``src``.
        """
        _check_input(src, "src", self.self_attn.embed_dim)
        x = src
        if self.norm_first:
            # Pre-norm: the stream x is never normalised; each sub-layer reads a normalised copy and adds.
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            # Post-norm: add first, then normalise the sum; the stream itself passes through every norm.
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        # Every token attends to every (allowed) token of the same sequence; the weights are not needed.
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        # (..., E) -> (..., dim_feedforward) -> (..., E), with dropout on the hidden units and the output.
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerDecoderLayer(nn.Module):
    r"""One decoder block from scratch, a drop-in twin of ``torch.nn.TransformerDecoderLayer``.

    Masked self-attention over the target, cross-attention from the target to the encoder's output (the
    *memory*), and the feed-forward network: three residual sub-layers with ``norm1``, ``norm2`` and
    ``norm3``. The arguments are those of
    [`TransformerEncoderLayer`][torchenstein.transformers.block.TransformerEncoderLayer].

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: as for `TransformerEncoderLayer`.

    Examples:
        >>> layer = TransformerDecoderLayer(8, 2, dim_feedforward=16, batch_first=True)
        >>> layer(torch.randn(3, 5, 8), torch.randn(3, 7, 8)).shape
        torch.Size([3, 5, 8])
        >>> TransformerDecoderLayer(8, 3)
        Traceback (most recent call last):
        ...
        ValueError: nhead must divide d_model=8, got nhead=3
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_layer_args(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                          norm_first, bias)
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        attention = {"dropout": dropout, "bias": bias, "batch_first": batch_first, **factory}
        self.self_attn = MultiheadAttention(d_model, nhead, **attention)
        # The second attention reads its keys and values from the encoder's memory.
        self.multihead_attn = MultiheadAttention(d_model, nhead, **attention)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        r"""Run the block on ``tgt``, reading ``memory``, as ``nn.TransformerDecoderLayer.forward`` does.

        Args:
            tgt: $(T, B, E)$, or $(B, T, E)$ with ``batch_first``, or $(T, E)$ unbatched.
            memory: $(S, B, E)$, $(B, S, E)$ or $(S, E)$: the encoder's output.
            tgt_mask: $(T, T)$ or $(B \cdot h, T, T)$, for the self-attention (usually causal).
            memory_mask: $(T, S)$ or $(B \cdot h, T, S)$, for the cross-attention.
            tgt_key_padding_mask: $(B, T)$: ``True`` marks padded target tokens.
            memory_key_padding_mask: $(B, S)$: ``True`` marks padded memory tokens (the source's padding).
            tgt_is_causal: a hint that ``tgt_mask`` is causal (the mask is what is applied).
            memory_is_causal: a hint that ``memory_mask`` is causal (likewise).

        Returns:
            A tensor shaped like ``tgt``.
        """
        _check_input(tgt, "tgt", self.self_attn.embed_dim)
        _check_input(memory, "memory", self.self_attn.embed_dim)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                  is_causal: bool) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def _mha_block(self, x: Tensor, memory: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                   is_causal: bool) -> Tensor:
        # Queries from the target, keys and values from the memory: (B, T, E) attends over (B, S, E).
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout2(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)


class TransformerEncoder(nn.Module):
    r"""A stack of ``num_layers`` encoder layers and an optional final norm, a twin of ``nn.TransformerEncoder``.

    Like PyTorch's, it stores ``num_layers`` *deep copies* of ``encoder_layer``: every layer starts with
    the same weights, and the layer passed in is not one of them.

    Args:
        encoder_layer: the layer to copy (ours, PyTorch's or any module with the same ``forward``).
        num_layers: how many copies to stack.
        norm: a module applied to the last layer's output, or ``None``.
        enable_nested_tensor: must be ``False``: PyTorch's nested-tensor fast path is not built here (its
            default there is ``True``; see "The eval fast path").

    Raises:
        ValueError: if ``num_layers`` is not a positive int or ``enable_nested_tensor`` is ``True``.

    Examples:
        >>> layer = TransformerEncoderLayer(8, 2, dim_feedforward=16)
        >>> encoder = TransformerEncoder(layer, num_layers=3)
        >>> len(encoder.layers), encoder.layers[0] is layer
        (3, False)
    """

    def __init__(self, encoder_layer: nn.Module, num_layers: int, norm: nn.Module | None = None,
                 enable_nested_tensor: bool = False) -> None:
        _check_positive(num_layers, "num_layers")
        if enable_nested_tensor is not False:
            raise ValueError("enable_nested_tensor must be False: nested tensors (PyTorch's eval fast path) "
                             f"are not built here, got {enable_nested_tensor!r}")
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src: Tensor, mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        """Run every layer in turn with the same masks, then the final norm (if any); arguments as in PyTorch."""
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=bool(is_causal))
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(nn.Module):
    r"""A stack of ``num_layers`` decoder layers and an optional final norm, a twin of ``nn.TransformerDecoder``.

    Every layer reads the *same* memory (the encoder's last output), and the layers are deep copies of
    ``decoder_layer``, as in PyTorch.

    Raises:
        ValueError: if ``num_layers`` is not a positive int.

    Examples:
        >>> decoder = TransformerDecoder(TransformerDecoderLayer(8, 2, dim_feedforward=16), num_layers=2)
        >>> decoder(torch.randn(5, 3, 8), torch.randn(7, 3, 8)).shape
        torch.Size([5, 3, 8])
    """

    def __init__(self, decoder_layer: nn.Module, num_layers: int, norm: nn.Module | None = None) -> None:
        _check_positive(num_layers, "num_layers")
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(decoder_layer) for _ in range(num_layers))
        self.num_layers, self.norm = num_layers, norm

    def forward(
        self, tgt: Tensor, memory: Tensor, tgt_mask: Tensor | None = None, memory_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
        tgt_is_causal: bool | None = None, memory_is_causal: bool = False,
    ) -> Tensor:
        """Run every layer in turn on the target, each reading the same memory, then the final norm."""
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(nn.Module):
    r"""The whole encoder-decoder Transformer from scratch, a drop-in twin of ``torch.nn.Transformer``.

    An encoder stack with a final LayerNorm, a decoder stack with a final LayerNorm, and PyTorch's
    initialisation: every parameter with two or more dims is redrawn with Xavier's uniform initialisation
    after the stacks are built. Drawn in the same order, one seed gives it PyTorch's very weights.

    Args:
        d_model: $E$.
        nhead: the heads of every attention.
        num_encoder_layers: the depth of the encoder.
        num_decoder_layers: the depth of the decoder.
        dim_feedforward: the hidden width of every feed-forward network.
        dropout: every dropout's probability.
        activation: ``"relu"``, ``"gelu"`` or a callable.
        custom_encoder: a module to use instead of the encoder stack, or ``None``.
        custom_decoder: a module to use instead of the decoder stack, or ``None``.
        layer_norm_eps: every LayerNorm's ``eps``.
        batch_first: ``(B, T, E)`` inputs when ``True``, ``(T, B, E)`` when ``False`` (PyTorch's default).
        norm_first: pre-norm layers when ``True``.
        bias: biases in every Linear and LayerNorm.
        device: where to create the parameters.
        dtype: the parameters' dtype.

    Raises:
        TypeError, ValueError: as for the layers.

    Examples:
        >>> model = Transformer(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
        ...                     dim_feedforward=16, batch_first=True)
        >>> model(torch.randn(3, 7, 8), torch.randn(3, 5, 8)).shape
        torch.Size([3, 5, 8])
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        custom_encoder: nn.Module | None = None,
        custom_decoder: nn.Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                      norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            # The final norm exists whether the layers are pre-norm or post-norm, as in PyTorch.
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer_args, **factory), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer_args, **factory), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        self._reset_parameters()
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def _reset_parameters(self) -> None:
        # The deep copies made every layer equal; this redraws each matrix on its own, in parameter order.
        # Vectors (biases, LayerNorm gains) keep their values, equal in every layer.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, src: Tensor, tgt: Tensor, src_mask: Tensor | None = None, tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None, src_key_padding_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None, memory_key_padding_mask: Tensor | None = None,
        src_is_causal: bool | None = None, tgt_is_causal: bool | None = None, memory_is_causal: bool = False,
    ) -> Tensor:
        r"""Encode ``src`` into a memory, then decode ``tgt`` while reading it; arguments as in PyTorch.

        Args:
            src: $(S, B, E)$, $(B, S, E)$ with ``batch_first``, or $(S, E)$.
            tgt: $(T, B, E)$, $(B, T, E)$ or $(T, E)$, with the same batch size.
            src_mask: $(S, S)$ or $(B \cdot h, S, S)$, for the encoder's self-attention.
            tgt_mask: $(T, T)$ or $(B \cdot h, T, T)$, for the decoder's self-attention; usually
                ``generate_square_subsequent_mask(T)``.
            memory_mask: $(T, S)$ or $(B \cdot h, T, S)$, for the cross-attention.
            src_key_padding_mask: $(B, S)$, the source's padding, hidden from the encoder.
            tgt_key_padding_mask: $(B, T)$, the target's padding.
            memory_key_padding_mask: $(B, S)$, the source's padding again, hidden from the cross-attention.
            src_is_causal: a hint about ``src_mask``.
            tgt_is_causal: a hint about ``tgt_mask``.
            memory_is_causal: a hint about ``memory_mask``.

        Returns:
            The decoder's output, shaped like ``tgt``.

        Raises:
            ValueError: if ``src`` and ``tgt`` differ in batch size or do not have ``d_model`` features.
        """
        _check_pair(self, src, tgt)
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device: torch.device | str | None = None,
                                        dtype: torch.dtype | None = None) -> Tensor:
        r"""The float causal mask of ``nn.Transformer.generate_square_subsequent_mask``: $-\infty$ above the diagonal.

        Examples:
            >>> Transformer.generate_square_subsequent_mask(3)
            tensor([[0., -inf, -inf],
                    [0., 0., -inf],
                    [0., 0., 0.]])
        """
        _check_positive(sz, "sz", minimum=0)
        # Row i may see columns j <= i (0 is added to their scores); j > i gets -inf, a weight of 0.
        return torch.full((sz, sz), float("-inf"), device=device, dtype=dtype).triu(diagonal=1)


def stream_gradient_norms(
    norm_first: bool, *, num_layers: int = 24, d_model: int = 32, nhead: int = 2, seq_len: int = 8,
    batch_size: int = 4, seed: int = 0,
) -> list[float]:
    r"""Measure the gradient that reaches each layer's input in a freshly initialised encoder stack.

    The stack is built as ``nn.Transformer`` builds its encoder (deep copies, Xavier-initialised matrices,
    a final LayerNorm), without dropout; the loss is the mean squared error to a random target.

    Args:
        norm_first: pre-norm (``True``) or post-norm (``False``) layers.
        num_layers: the depth.
        d_model: the width; ``dim_feedforward`` is ``4 * d_model``.
        nhead: the heads.
        seq_len: tokens per sequence.
        batch_size: sequences.
        seed: seeds the weights, the input and the target; the global generator is left as it was.

    Returns:
        ``num_layers`` numbers: the norm of $\partial \text{loss} / \partial x_l$ for the input $x_l$ of
        layer $l$, from the first layer to the last.

    Examples:
        >>> len(stream_gradient_norms(norm_first=True, num_layers=3))
        3
    """
    _check_positive(num_layers, "num_layers")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = TransformerEncoderLayer(d_model, nhead, 4 * d_model, dropout=0.0, batch_first=True,
                                        norm_first=norm_first)
        encoder = TransformerEncoder(layer, num_layers, norm=LayerNorm(d_model))
        for p in encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        x = torch.randn(batch_size, seq_len, d_model)  # (B, T, E)
        target = torch.randn(batch_size, seq_len, d_model)
    inputs = []
    for block in encoder.layers:
        # Keep each layer's input and ask autograd to keep its gradient too (it normally frees it).
        x.requires_grad_(True) if x.is_leaf else x.retain_grad()
        inputs.append(x)
        x = block(x)
    loss = (encoder.norm(x) - target).pow(2).mean()
    loss.backward()
    return [t.grad.norm().item() for t in inputs]


def plot_gradient_norms(*, num_layers: int = 24) -> Figure:
    """Draw the gradient reaching each layer of a post-norm and a pre-norm stack, relative to the top layer's.

    Args:
        num_layers: the depth of both stacks.

    Returns:
        A figure with one axis.

    Examples:
        >>> len(plot_gradient_norms(num_layers=4).axes)
        1
    """
    fig, (ax,) = new_figure(1, 1, width=6.4, height=3.6)
    for norm_first, colour in ((False, PALETTE[2]), (True, PALETTE[0])):
        norms = stream_gradient_norms(norm_first, num_layers=num_layers)
        relative = [n / norms[-1] for n in norms]
        label = "pre-norm (norm_first=True)" if norm_first else "post-norm (norm_first=False)"
        ax.plot(range(1, num_layers + 1), relative, "o-", color=colour, markersize=3, label=label)
    ax.axhline(1.0, color="#888888", linewidth=0.8, linestyle="--")
    from matplotlib.ticker import FormatStrFormatter

    ax.set(yscale="log", xlabel="layer (1 = nearest the input)", ylabel="gradient norm / top layer's")
    # Plain numbers on the log axis (0.5, 1, 2) read better than powers of ten for a range this small.
    for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_formatter(FormatStrFormatter("%g"))
    ax.set_title(f"Gradient reaching each layer's input at initialisation, {num_layers} layers")
    ax.legend()
    return fig


def transformer_parameter_count(d_model: int, num_encoder_layers: int, num_decoder_layers: int,
                                dim_feedforward: int, bias: bool = True) -> int:
    """Challenge solution: count the parameters of ``nn.Transformer`` by hand.

    Args:
        d_model: $E$.
        num_encoder_layers: encoder depth.
        num_decoder_layers: decoder depth.
        dim_feedforward: $F$, the feed-forward network's hidden width.
        bias: whether every Linear and LayerNorm has a bias.

    Returns:
        The number of scalars in ``nn.Transformer(d_model, nhead, ..., bias=bias).parameters()``, for any
        ``nhead`` dividing ``d_model``.

    Examples:
        >>> transformer_parameter_count(512, 6, 6, 2048)
        44140544
    """
    E, F, b = d_model, dim_feedforward, int(bias)
    attention = 4 * E * E + b * 4 * E  # in_proj (3E, E) and out_proj (E, E); the heads cost nothing extra
    feed_forward = 2 * E * F + b * (F + E)  # linear1 (F, E) and linear2 (E, F)
    norm = E + b * E  # weight and bias
    encoder_layer = attention + feed_forward + 2 * norm
    decoder_layer = 2 * attention + feed_forward + 3 * norm  # self- and cross-attention, three norms
    return num_encoder_layers * encoder_layer + num_decoder_layers * decoder_layer + 2 * norm  # + final norms


def check_transformer_parameter_count(candidate: Callable[..., int]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``transformer_parameter_count``."""
    import warnings

    for E, h, n_enc, n_dec, F, bias in ((8, 2, 1, 1, 16, True), (8, 2, 2, 3, 4, False), (12, 3, 0, 2, 5, True),
                                        (6, 1, 3, 0, 7, True), (16, 4, 2, 2, 32, False)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nn.TransformerEncoder's remark about nested tensors
            model = nn.Transformer(E, h, max(n_enc, 1), max(n_dec, 1), F, bias=bias, device="meta")
        # A depth of 0 is counted by removing the one layer PyTorch insists on.
        layers = [("encoder", n_enc), ("decoder", n_dec)]
        expected = sum(p.numel() for p in model.parameters())
        for part, n in layers:
            if n == 0:
                expected -= sum(p.numel() for p in getattr(model, part).layers[0].parameters())
        got = candidate(E, n_enc, n_dec, F, bias)
        where = (f"d_model={E}, num_encoder_layers={n_enc}, num_decoder_layers={n_dec}, dim_feedforward={F}, "
                 f"bias={bias}")
        assert isinstance(got, int) and not isinstance(got, bool), f"{where}: expected an int, got {got!r}"
        assert got == expected, (
            f"{where}: expected {expected} parameters, got {got}; remember the decoder's cross-attention and "
            "third norm, the two final LayerNorms, and that bias=False removes the LayerNorms' biases too"
        )


def masked_mean_pool(output: Tensor, src_key_padding_mask: Tensor, batch_first: bool = True) -> Tensor:
    """Challenge solution: one vector per sequence, the mean of the encoder's output over the real tokens only.

    Args:
        output: the encoder's output, $(B, T, E)$ or, when ``batch_first`` is ``False``, $(T, B, E)$.
        src_key_padding_mask: $(B, T)$ bool, ``True`` at padding (PyTorch's polarity).
        batch_first: the layout of ``output``.

    Returns:
        $(B, E)$: for each sequence the mean over its positions where the mask is ``False``; whatever sits
        at padded positions (computed values, or the fast path's zeros) does not matter.

    Raises:
        TypeError: if the mask is not a bool tensor.
        ValueError: if the shapes do not fit or a sequence has no real token.

    Examples:
        >>> out = torch.tensor([[[1.0], [3.0], [100.0]]])                # (B=1, T=3, E=1)
        >>> masked_mean_pool(out, torch.tensor([[False, False, True]]))  # the 100 is padding
        tensor([[2.]])
    """
    if not isinstance(src_key_padding_mask, Tensor) or src_key_padding_mask.dtype != torch.bool:
        raise TypeError(f"src_key_padding_mask must be a bool tensor, got {src_key_padding_mask!r}")
    x = output if batch_first else output.transpose(0, 1)  # (B, T, E)
    if x.dim() != 3 or src_key_padding_mask.shape != x.shape[:2]:
        raise ValueError(f"src_key_padding_mask must have shape (B, T) = {tuple(x.shape[:2])} for output of "
                         f"shape {tuple(output.shape)} (batch_first={batch_first}), got "
                         f"{tuple(src_key_padding_mask.shape)}")
    keep = (~src_key_padding_mask).unsqueeze(-1)  # (B, T, 1): 1 for a real token, 0 for padding
    counts = keep.sum(dim=1)  # (B, 1)
    if (counts == 0).any():
        raise ValueError("every sequence needs at least one real token; src_key_padding_mask has an all-True row")
    # where(), not a product: a NaN or inf at a padded position must not leak in as 0 * inf = NaN.
    return torch.where(keep, x, 0.0).sum(dim=1) / counts.to(x.dtype)  # (B, E)


def check_masked_mean_pool(candidate: Callable[..., Tensor]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``masked_mean_pool``."""
    generator = torch.Generator().manual_seed(7)
    lengths_cases = ([3, 1, 4], [4, 4], [1], [2, 5, 3, 1])
    for lengths, batch_first in zip(lengths_cases, (True, False, True, False), strict=True):
        B, T, E = len(lengths), max(lengths), 3
        mask = torch.arange(T) >= torch.tensor(lengths)[:, None]  # (B, T)
        x = torch.randn(B, T, E, generator=generator)
        expected = torch.stack([x[b, :n].mean(dim=0) for b, n in enumerate(lengths)])
        where = f"lengths {lengths}, batch_first={batch_first}"
        for name, padded in (("random", x), ("zeros, like the fast path", x.masked_fill(mask[..., None], 0.0)),
                             ("inf", x.masked_fill(mask[..., None], float("inf")))):
            given = padded if batch_first else padded.transpose(0, 1)
            got = candidate(given, mask, batch_first)
            assert isinstance(got, Tensor), f"{where}: expected a tensor, got {type(got).__name__}"
            assert got.shape == (B, E), f"{where}: expected shape {(B, E)}, got {tuple(got.shape)}"
            assert torch.allclose(got, expected, atol=1e-6), (
                f"{where}, padding filled with {name}: the pooled vectors are wrong; average only the positions "
                "where the mask is False (True = padding), dividing by each sequence's own length"
            )


def _check_positive(value: object, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value!r}")


def _check_layer_args(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first,
                      norm_first, bias) -> None:
    """Raise a clear error, naming the argument, for every constructor argument of a layer that cannot work."""
    _check_positive(d_model, "d_model")
    _check_positive(nhead, "nhead")
    if d_model % nhead:
        raise ValueError(f"nhead must divide d_model={d_model}, got nhead={nhead}")
    _check_positive(dim_feedforward, "dim_feedforward")
    if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0.0 <= dropout <= 1.0:
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'relu', 'gelu' or a callable, got {activation!r}")
    elif not callable(activation):
        raise TypeError(f"activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    if isinstance(layer_norm_eps, bool) or not isinstance(layer_norm_eps, Real) or not layer_norm_eps >= 0:
        raise ValueError(f"layer_norm_eps must be a non-negative number, got {layer_norm_eps!r}")
    for name, flag in (("batch_first", batch_first), ("norm_first", norm_first), ("bias", bias)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")


def _check_input(x: object, name: str, d_model: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.size(-1) != d_model:
        raise ValueError(f"{name} must be (T, E), (T, B, E) or (B, T, E) with E = d_model = {d_model}, "
                         f"got shape {tuple(x.shape)}")


def _check_pair(model: Transformer, src: object, tgt: object) -> None:
    _check_input(src, "src", model.d_model)
    _check_input(tgt, "tgt", model.d_model)
    if src.dim() != tgt.dim():
        raise ValueError(f"src and tgt must both be batched or both unbatched, got shapes {tuple(src.shape)} "
                         f"and {tuple(tgt.shape)}")
    batch_dim = 0 if model.batch_first else 1
    if src.dim() == 3 and src.size(batch_dim) != tgt.size(batch_dim):
        raise ValueError(f"src and tgt must have the same batch size in dim {batch_dim} (batch_first="
                         f"{model.batch_first}), got shapes {tuple(src.shape)} and {tuple(tgt.shape)}")
