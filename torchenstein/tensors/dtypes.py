r"""
# Dtypes and Devices: Sixteen Bits of Terror

!!! torchenstein "The Professor speaks"
    Every number in my laboratory is a little box of bits, and every box has walls. Today we pry the
    lid off `float32`, `float16` and `bfloat16`, count their bits one by one, and learn exactly where
    a number overflows, vanishes or quietly loses its last digits. Then we decide where the boxes live:
    on the CPU, or on a glowing accelerator.

**You will learn to**

- choose a dtype for the job: weights, activations, indices, masks, images;
- read a float's layout (sign, exponent, mantissa) and see why `bfloat16` keeps `float32`'s range while
  `float16` keeps more digits;
- read `torch.finfo` (max, tiny, eps) and predict where a number overflows, vanishes or loses digits;
- predict integer wraparound, casting and type promotion, and write `promote_types` yourself;
- pick a device, move tensors and modules onto it, and recognise the error when devices are mixed;
- in two deep dives, rebuild a float from its bits and round `float32` to `bfloat16` by hand, exactly as
  PyTorch does.

## Which dtype, when

A tensor's *dtype* says what kind of number each element is and how many bytes it takes. A handful
cover nearly all of deep learning:

- `float32`, the default: a network's *weights* (the numbers it learns), its *activations* (what its
  layers compute), its loss, and anything you are not sure about;
- `bfloat16` and `float16`: half the memory and much faster matrix products on modern accelerators, used
  for *mixed precision* training (Part 3); `bfloat16` is the safer of the two, as this lesson shows;
- `float64`: careful numerical checks, such as comparing a from-scratch function with PyTorch's; slow on
  most GPUs;
- `int64`, also called `torch.long`: indices, counts, class labels, token ids; the default for Python ints;
- `uint8`: images as they come from disk, one byte per pixel value from 0 to 255;
- `bool`: masks, the results of comparisons.

```pycon
>>> import torch
>>> for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int64, torch.uint8, torch.bool):
...     print(f"{str(dtype):15} {torch.empty(0, dtype=dtype).element_size()} byte(s) per element")
torch.float32   4 byte(s) per element
torch.bfloat16  2 byte(s) per element
torch.float16   2 byte(s) per element
torch.float64   8 byte(s) per element
torch.int64     8 byte(s) per element
torch.uint8     1 byte(s) per element
torch.bool      1 byte(s) per element

```

## A float is three numbers in a trench coat

A floating-point number is stored as a **sign** bit, an **exponent** (a power of two, which buys
*range*: how large and how small a number can get) and a **mantissa** (the significant digits, which
buys *precision*). The formats of modern deep learning differ only in how many bits each part gets:

```pycon
>>> from torchenstein.tensors.dtypes import FLOAT_LAYOUTS
>>> for dtype, (e, m) in FLOAT_LAYOUTS.items():
...     print(f"{str(dtype):15} sign 1 + exponent {e:2} + mantissa {m:2} = {torch.finfo(dtype).bits} bits")
torch.float16   sign 1 + exponent  5 + mantissa 10 = 16 bits
torch.bfloat16  sign 1 + exponent  8 + mantissa  7 = 16 bits
torch.float32   sign 1 + exponent  8 + mantissa 23 = 32 bits
torch.float64   sign 1 + exponent 11 + mantissa 52 = 64 bits

```

![The bits of pi in float32, bfloat16 and float16: sign, exponent and mantissa fields as coloured cells](plot_float_formats.svg)

`bfloat16` is simply the top half of a `float32`: same sign, same 8 exponent bits, only 7 of the 23
mantissa bits.

## Range and precision

`torch.finfo` reports a format's limits: `max` (the largest finite number), `tiny` (the smallest
*normal* positive number; below it, precision fades away) and `eps` (the gap between 1 and the next
number up, the format's relative precision):

```pycon
>>> for dtype in FLOAT_LAYOUTS:
...     f = torch.finfo(dtype)
...     print(f"{str(dtype):15} max={f.max:.5g} tiny={f.tiny:.4g} eps={f.eps:.4g}")
torch.float16   max=65504 tiny=6.104e-05 eps=0.0009766
torch.bfloat16  max=3.3895e+38 tiny=1.175e-38 eps=0.007812
torch.float32   max=3.4028e+38 tiny=1.175e-38 eps=1.192e-07
torch.float64   max=1.7977e+308 tiny=2.225e-308 eps=2.22e-16

```

Look hard at the two 16-bit rows. The exponent buys *range*, the mantissa buys *digits*. `bfloat16`
spends 8 bits on the exponent, so it reaches as far as `float32` and almost never overflows; with only
7 mantissa bits it cannot even count past 256. `float16` spends 10 bits on digits and pays with a
ceiling that a single `exp` can smash through:

```pycon
>>> torch.tensor(257.0).to(torch.bfloat16).item(), torch.tensor(257.0).to(torch.float16).item()
(256.0, 257.0)
>>> torch.tensor(12.0, dtype=torch.float16).exp()  # e**12 is about 162755, past float16's max
tensor(inf, dtype=torch.float16)

```

That last line is why a softmax, which exponentiates, needs care; the
[elementwise lesson](../elementwise/index.md) builds one that cannot overflow.

![Gap between neighbouring representable numbers against magnitude for float32, bfloat16 and float16](plot_precision.svg)

On the left, the gap between neighbours grows with the number itself, except among the tiniest
numbers (the *subnormals*, below `tiny`), where it stays flat. On the right, the close-up: the gap
doubles at every power of two, so the *relative* gap saws between $\text{eps}/2$ and $\text{eps}$. A
float carries a fixed number of significant bits, never a fixed number of decimal places.

??? note "Deep dive: a float's bits, read, rebuilt, and its limits derived"
    With a sign bit $s$, an exponent field $E$ of $e$ bits, a mantissa field $M$ of $m$ bits and the
    bias $b = 2^{e-1} - 1$, a normal number ($0 < E < 2^e - 1$) means

    $$
    x = (-1)^{s} \cdot 2^{E - b} \cdot \left(1 + \frac{M}{2^{m}}\right).
    $$

    $E = 0$ holds zero and the *subnormals*, $(-1)^s \cdot 2^{1-b} \cdot M / 2^m$, which trade digits for
    reach towards zero; $E = 2^e - 1$ holds $\pm\infty$ ($M = 0$) and NaN ($M \neq 0$).
    [`float_fields`][torchenstein.tensors.dtypes.float_fields] reads the fields with `.view` (same bytes,
    integer dtype) and bit operations;
    [`value_from_fields`][torchenstein.tensors.dtypes.value_from_fields] evaluates the formula above and
    [`compose_float`][torchenstein.tensors.dtypes.compose_float] puts the bits back together:

    ```pycon
    >>> from torchenstein.tensors.dtypes import compose_float, float_fields, value_from_fields
    >>> x = torch.tensor([-6.5, 1.0, 0.1], dtype=torch.float16)
    >>> sign, exponent, mantissa = float_fields(x)
    >>> sign.tolist(), exponent.tolist(), mantissa.tolist()
    ([1, 0, 0], [17, 15, 11], [640, 0, 614])
    >>> value_from_fields(sign, exponent, mantissa, torch.float16).tolist()  # 0.1 was never stored exactly
    [-6.5, 1.0, 0.0999755859375]
    >>> torch.equal(compose_float(sign, exponent, mantissa, torch.float16).view(torch.int16), x.view(torch.int16))
    True
    >>> float_fields(torch.arange(3))
    Traceback (most recent call last):
    ...
    TypeError: x must be a float16, bfloat16, float32 or float64 tensor, got torch.int64

    ```

    All three limits of `torch.finfo` follow from $e$ and $m$ alone: $\max = (2 - 2^{-m})\,2^{b}$,
    $\text{tiny} = 2^{1-b}$, $\text{eps} = 2^{-m}$.
    [`finfo_from_bits`][torchenstein.tensors.dtypes.finfo_from_bits] computes them and agrees with PyTorch:

    ```pycon
    >>> from torchenstein.tensors.dtypes import finfo_from_bits
    >>> for dtype, (e, m) in FLOAT_LAYOUTS.items():
    ...     f, mine = torch.finfo(dtype), finfo_from_bits(e, m)
    ...     print(f"{str(dtype):15} same={(f.max, f.tiny, f.eps, f.bits) == (mine.max, mine.tiny, mine.eps, mine.bits)}")
    torch.float16   same=True
    torch.bfloat16  same=True
    torch.float32   same=True
    torch.float64   same=True

    ```

## The edges of float16

From half a gap past `max`, rounding goes to infinity; below half the smallest subnormal, to zero; and
any change smaller than half a gap is rounded away (ties go to the neighbour with an even last bit):

```pycon
>>> torch.tensor([65519.0, 65520.0]).to(torch.float16)  # round first, then overflow
tensor([65504.,    inf], dtype=torch.float16)
>>> big = torch.tensor([65504.0], dtype=torch.float16)
>>> big * 2, big * 2 - big * 2
(tensor([inf], dtype=torch.float16), tensor([nan], dtype=torch.float16))
>>> torch.tensor([2.0**-16, 2.0**-24, 2.0**-26]).to(torch.float16).tolist()  # subnormal, smallest, gone
[1.52587890625e-05, 5.960464477539063e-08, 0.0]
>>> one, eps = torch.tensor(1.0, dtype=torch.float16), torch.finfo(torch.float16).eps
>>> (one + eps).item(), (one + eps / 2).item(), (one + 0.75 * eps).item()
(1.0009765625, 1.0, 1.0009765625)

```

??? note "Deep dive: rounding float32 to bfloat16 by hand"
    Since `bfloat16` is the top 16 bits of a `float32`, converting means dropping the low 16 bits,
    rounding to nearest with ties to even.
    [`round_to_bfloat16`][torchenstein.tensors.dtypes.round_to_bfloat16] does exactly that on the bits
    and matches `x.to(torch.bfloat16)` bit for bit on every number, infinities, subnormals and signed
    zeros included:

    ```pycon
    >>> from torchenstein.tensors.dtypes import round_to_bfloat16
    >>> x = torch.tensor([3.14159265, 1.00390625, 1.01171875, -1e-40, 3.4e38, -0.0, float("inf")])
    >>> torch.equal(round_to_bfloat16(x).view(torch.int16), x.to(torch.bfloat16).view(torch.int16))
    True
    >>> round_to_bfloat16(x)[:3].tolist()  # 1 + 2**-8 ties down to even, 1 + 3 * 2**-8 ties up
    [3.140625, 1.0, 1.015625]
    >>> nan = torch.tensor([float("nan")] * 3)
    >>> {"ours is NaN": round_to_bfloat16(nan).isnan().all().item(), "PyTorch's is NaN": nan.bfloat16().isnan().all().item()}
    {'ours is NaN': True, "PyTorch's is NaN": True}

    ```

    **Where it differs from PyTorch: the bits of NaN.** A NaN maps to a NaN, but which of the many NaN
    bit patterns (the *payload*) comes out is the platform's business: PyTorch's scalar code writes
    `0x7FC0`, its vectorised CPU kernels may write `0xFFFF`, depending on the machine and even on the
    tensor's length. Ours always writes the quiet NaN `0x7FC0`, so compare NaN-ness, never NaN bits.

## Integers and booleans

Integers are exact but bounded, and `torch.iinfo` tells you the bounds. Step past them and the value
wraps around modulo $2^{\text{bits}}$, silently:

```pycon
>>> for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
...     info = torch.iinfo(dtype)
...     print(f"{str(dtype):12} bits={info.bits:2} min={info.min} max={info.max}")
torch.uint8  bits= 8 min=0 max=255
torch.int8   bits= 8 min=-128 max=127
torch.int16  bits=16 min=-32768 max=32767
torch.int32  bits=32 min=-2147483648 max=2147483647
torch.int64  bits=64 min=-9223372036854775808 max=9223372036854775807
>>> torch.tensor([127], dtype=torch.int8) + 1, torch.tensor([0], dtype=torch.uint8) - 1
(tensor([-128], dtype=torch.int8), tensor([255], dtype=torch.uint8))
>>> torch.tensor([True, True, False]).sum()  # bool counts as 0 and 1
tensor(2)

```

## Casting

`.to(dtype)` converts, and `.float()`, `.double()`, `.half()`, `.bfloat16()`, `.int()`, `.long()`,
`.bool()` are shorthands. Float to integer *truncates toward zero*, unlike `round` and `floor`. Any
nonzero number (NaN included) becomes `True`. A float that does not fit the integer type, such as a
negative number cast to `uint8`, is undefined behaviour in C++, and different machines really give
different answers, so this page will not print one. Above $2^{24}$, integers start to lose their last
digits in `float32`:

```pycon
>>> x = torch.tensor([-2.7, -0.5, 0.5, 2.7])
>>> x.long(), x.round().long(), x.floor().long()
(tensor([-2,  0,  0,  2]), tensor([-3,  0,  0,  3]), tensor([-3, -1,  0,  2]))
>>> torch.tensor([0.0, -0.0, 0.1, float("nan")]).bool()
tensor([False, False,  True,  True])
>>> torch.tensor([True, False]).float(), x.half().dtype, x.to(torch.bfloat16).dtype
(tensor([1., 0.]), torch.float16, torch.bfloat16)
>>> big = torch.tensor(2**24 + 1)
>>> big.item(), big.float().long().item()
(16777217, 16777216)

```

## Type promotion

When an operation mixes dtypes, PyTorch picks one result dtype, which `torch.result_type` predicts.
Operands fall in categories, bool < integer < floating point, and in three priorities: tensors with
dimensions, then zero-dimensional tensors, then Python scalars. A lower-priority operand changes the
result only when it belongs to a *higher category*. So a Python scalar never widens a tensor of its own
category, an integer tensor meeting a Python float gets the default float dtype, and `/` between
integer tensors is true division, so it returns a float:

```pycon
>>> u8, half = torch.tensor([200], dtype=torch.uint8), torch.ones(2, dtype=torch.float16)
>>> torch.result_type(u8, 100), u8 + 100  # same category: stays uint8, and wraps
(torch.uint8, tensor([44], dtype=torch.uint8))
>>> torch.result_type(half, 1e5), half + 1e5  # same category: stays float16, and overflows
(torch.float16, tensor([inf, inf], dtype=torch.float16))
>>> torch.result_type(u8, 2.5), torch.result_type(half, torch.tensor(1.0)), torch.result_type(half, torch.ones(2))
(torch.float32, torch.float16, torch.float32)
>>> (torch.tensor([7, 8]) / torch.tensor([2, 2])).dtype
torch.float32
>>> torch.set_default_dtype(torch.float64)
>>> (torch.tensor([1, 2]) + 0.5).dtype  # "the default float dtype", whatever it is now
torch.float64
>>> torch.set_default_dtype(torch.float32)

```

Between two tensors of the same priority, `torch.promote_types` decides. Our own
[`promote_types`][torchenstein.tensors.dtypes.promote_types] covers bool, the five integer types and
the four float types of this lesson (no complex, no unsigned types wider than 8 bits, no float8)
and agrees with PyTorch on every pair of them:

```pycon
>>> from torchenstein.tensors.dtypes import PROMOTABLE_DTYPES, promote_types
>>> promote_types(torch.uint8, torch.int8), promote_types(torch.float16, torch.bfloat16)
(torch.int16, torch.float32)
>>> all(promote_types(a, b) == torch.promote_types(a, b) for a in PROMOTABLE_DTYPES for b in PROMOTABLE_DTYPES)
True

```

## Devices

A tensor lives on one device. The course picks it in one place,
[`pick_device`][torchenstein.lab.pick_device]: CUDA, then Apple's MPS, then the CPU, unless the environment
variable `TORCHENSTEIN_DEVICE` names one. `tensor.to(device)`
returns a copy there (or the very same tensor if it is already there). A *module* is PyTorch's building
block for networks, an object that holds its learnable tensors (its *parameters*) and computes with them;
Part 2 builds them from scratch, and `torch.nn.Linear(3, 2)` below is one. `module.to(device)` moves the
module's parameters *in place*. On a CPU-only machine everything below runs on `cpu`:

```pycon
>>> from torchenstein.lab import device_available, pick_device
>>> device = pick_device()
>>> device_available(device.type)
True
>>> x = torch.ones(4, 3).to(device)
>>> x.to(x.device) is x  # already there: no copy
True
>>> layer = torch.nn.Linear(3, 2).to(device)
>>> {"parameters moved": {p.device.type for p in layer.parameters()} == {device.type}, "output": layer(x).shape}
{'parameters moved': True, 'output': torch.Size([4, 2])}

```

Mixing devices in one operation is an error. On a machine with a GPU, `cuda_tensor + cpu_tensor` raises

    RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!

This page must run on every machine, so it mixes in the `meta` device instead (shapes and dtypes, no
data), which exists everywhere. Meta enforces the same rule in its own words, and less thoroughly: an
element-wise operation refuses, but a matmul of a meta tensor with a CPU tensor goes through, shapes
only. So meta is a dress rehearsal, not the GPU's error. A zero-dimensional CPU tensor is the exception
on every device: like a Python scalar, it may join a tensor anywhere.

```pycon
>>> ghost = torch.ones(2, device="meta")
>>> ghost + torch.ones(2)
Traceback (most recent call last):
...
RuntimeError: Tensor on device cpu is not on the expected device meta!
>>> (ghost @ torch.ones(2, 2)).device  # no error on meta
device(type='meta')
>>> (ghost + torch.tensor(1.0)).device
device(type='meta')

```

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: the stalled sum"
    Dr. Hammer keeps a running total in float16, adding numbers one at a time. Above 2048, float16 holds only even
    numbers, so 2048 + 1 lands on a tie and rounds back to 2048, forever. Keep running totals in float32;
    PyTorch's own `sum` already accumulates in a wider type:

    ```pycon
    >>> ones = torch.ones(3000, dtype=torch.float16)
    >>> total = torch.tensor(0.0, dtype=torch.float16)
    >>> for one in ones:
    ...     total = total + one
    >>> total.item(), torch.tensor([2048.0, 2049.0, 2050.0, 2051.0], dtype=torch.float16)
    (2048.0, tensor([2048., 2048., 2050., 2052.], dtype=torch.float16))
    >>> total32 = torch.tensor(0.0)
    >>> for one in ones:
    ...     total32 = total32 + one  # float32 meets float16: promoted to float32
    >>> total32.item(), ones.sum().item()  # a float16 result, accumulated wider
    (3000.0, 3000.0)

    ```

!!! hammer "Dr. Hammer's trap: comparing floats with `==`"
    Whether `0.1 + 0.2 == 0.3` depends on the dtype's luck. Compare with a tolerance instead:

    ```pycon
    >>> a64, a32 = torch.tensor(0.1, dtype=torch.float64) + 0.2, torch.tensor(0.1) + 0.2
    >>> print(f"float64 == 0.3: {(a64 == 0.3).item()}")
    float64 == 0.3: False
    >>> print(f"float32 == 0.3: {(a32 == 0.3).item()}")
    float32 == 0.3: True
    >>> print(f"float64 isclose 0.3: {torch.isclose(a64, torch.tensor(0.3, dtype=torch.float64)).item()}")
    float64 isclose 0.3: True

    ```

!!! hammer "Dr. Hammer's trap: division and casting surprises"
    `/` on integers gives floats (which cannot index), `//` floors toward minus infinity, and casting
    truncates toward zero, so the last two disagree on negative numbers:

    ```pycon
    >>> n = torch.tensor([7, -7])
    >>> n / 2, n // 2, (n / 2).long()
    (tensor([ 3.5000, -3.5000]), tensor([ 3, -4]), tensor([ 3, -3]))
    >>> torch.arange(10)[n[:1] / 2]
    Traceback (most recent call last):
    ...
    IndexError: tensors used as indices must be long, int, byte or bool tensors
    >>> torch.arange(10)[n[:1] // 2]
    tensor([3])

    ```

!!! hammer "Dr. Hammer's trap: the wrapping image"
    Images arrive as `uint8`. Brighten one naively and the brightest pixels wrap round to black; widen, clamp,
    then narrow:

    ```pycon
    >>> pixels = torch.tensor([100, 200, 250], dtype=torch.uint8)
    >>> pixels + 60
    tensor([160,   4,  54], dtype=torch.uint8)
    >>> (pixels.to(torch.int16) + 60).clamp(0, 255).to(torch.uint8)
    tensor([160, 255, 255], dtype=torch.uint8)

    ```

## Challenges

1. **The next float up.** Write `next_representable_float(x)`, returning for each element of a
   float16, bfloat16, float32 or float64 tensor the next representable number towards $+\infty$ in the
   same dtype, using its bits (no `torch.nextafter`, which is the reference). The first deep dive shows
   how `.view` reads a float's bits as an integer of the same width. Mind zeros, negatives, `max`,
   infinities and NaN.
2. **Does it survive?** Write `survives_round_trip(x, dtype)`, returning a bool tensor that is `True`
   where the value of `x` is stored exactly by the floating dtype `dtype` (NaN counts as surviving;
   a finite value that becomes infinite does not).

Check an attempt with `check_next_representable_float(my_function)` and
`check_survives_round_trip(my_function)`, or put both in a file and run
`python -m torchenstein.challenges my_attempts.py`. The Professor's own answers pass:

```pycon
>>> from torchenstein.tensors.dtypes import check_next_representable_float, check_survives_round_trip
>>> from torchenstein.tensors.dtypes import next_representable_float, survives_round_trip
>>> check_next_representable_float(next_representable_float)
>>> check_survives_round_trip(survives_round_trip)

```
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, NamedTuple

import torch

from torchenstein.lab import PALETTE, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FLOAT_LAYOUTS: dict[torch.dtype, tuple[int, int]] = {
    torch.float16: (5, 10),
    torch.bfloat16: (8, 7),
    torch.float32: (8, 23),
    torch.float64: (11, 52),
}
"""Exponent bits and mantissa bits of each float format this lesson takes apart (plus one sign bit)."""

# Each float format is read through the signed integer type of the same width, so `.view` can
# reinterpret its bytes without changing a single bit.
_SAME_WIDTH_INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}


def _float_format(name: str, dtype: object) -> tuple[int, int]:
    if dtype not in FLOAT_LAYOUTS:
        raise TypeError(f"{name} must be a float16, bfloat16, float32 or float64 tensor, got {dtype}")
    return FLOAT_LAYOUTS[dtype]  # type: ignore[index]


def _dtype_of(name: str, x: object) -> torch.dtype:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x.dtype


def float_fields(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split each element of a float tensor into its sign, exponent and mantissa fields.

    Args:
        x: a float16, bfloat16, float32 or float64 tensor of any shape.

    Returns:
        ``(sign, exponent, mantissa)``: int64 tensors of ``x``'s shape with the raw fields (the
        exponent still biased).

    Raises:
        TypeError: if ``x`` is not a tensor of one of those four dtypes.

    Examples:
        >>> sign, exponent, mantissa = float_fields(torch.tensor([-2.0, 0.75]))
        >>> sign.tolist(), exponent.tolist(), mantissa.tolist()
        ([1, 0], [128, 126], [0, 4194304])
    """
    dtype = _dtype_of("x", x)
    e, m = _float_format("x", dtype)
    # Reinterpret the bytes as a signed integer and widen to int64 so no shift overflows. For the
    # narrower formats, mask back to the unsigned pattern: a negative int16 would drag a tail of ones.
    bits = x.view(_SAME_WIDTH_INT[dtype]).to(torch.int64)
    if 1 + e + m < 64:
        bits = bits & ((1 << (1 + e + m)) - 1)
    # Reading from the right: m mantissa bits, then e exponent bits, then the sign.
    return (bits >> (e + m)) & 1, (bits >> m) & ((1 << e) - 1), bits & ((1 << m) - 1)


def compose_float(sign: torch.Tensor, exponent: torch.Tensor, mantissa: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Assemble a float tensor from raw fields: the exact inverse of `float_fields`, NaN payloads included.

    Args:
        sign: integer tensor of 0s and 1s.
        exponent: integer tensor of biased exponent fields, from 0 to ``2**e - 1``.
        mantissa: integer tensor of mantissa fields, from 0 to ``2**m - 1``.
        dtype: float16, bfloat16, float32 or float64.

    Returns:
        A tensor of ``dtype`` whose bits are exactly these fields.

    Raises:
        TypeError: if ``dtype`` is not one of the four float formats.
        ValueError: if a field does not fit its width.

    Examples:
        >>> compose_float(torch.tensor([1, 0]), torch.tensor([128, 255]), torch.tensor([0, 0]), torch.float32)
        tensor([-2., inf])
    """
    e, m = _float_format("dtype", dtype)
    sign, exponent, mantissa = (torch.as_tensor(t).to(torch.int64) for t in (sign, exponent, mantissa))
    for name, field, width in (("sign", sign, 1), ("exponent", exponent, e), ("mantissa", mantissa, m)):
        if field.numel() and (field.min() < 0 or field.max() >= 2**width):
            raise ValueError(f"{name} must lie in [0, {2**width - 1}] for {dtype}, got values up to {field.max().item()} "
                             f"and down to {field.min().item()}")
    int_dtype = _SAME_WIDTH_INT[dtype]
    # The sign bit is the top bit of a signed integer of the same width, i.e. its most negative value;
    # OR-ing it in keeps the result inside that integer type, so the final cast is exact.
    bits = (exponent << m) | mantissa | (sign * torch.iinfo(int_dtype).min)
    return bits.to(int_dtype).view(dtype)


@functools.cache
def _powers_of_two(low: int, high: int) -> torch.Tensor:
    # Exact powers of two 2**low ... 2**high, from Python's math.ldexp: no transcendental function,
    # whose last bit may differ between CPUs, is involved.
    return torch.tensor([math.ldexp(1.0, k) for k in range(low, high + 1)], dtype=torch.float64)


def value_from_fields(sign: torch.Tensor, exponent: torch.Tensor, mantissa: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    r"""Evaluate the floating-point formula on raw fields, in float64 (exact for all four formats).

    Normal numbers are $(-1)^s \cdot 2^{E-b} (1 + M / 2^m)$, subnormals $(-1)^s \cdot 2^{1-b} M / 2^m$,
    and an all-ones exponent means infinity ($M = 0$) or NaN.

    Args:
        sign: integer tensor of 0s and 1s.
        exponent: integer tensor of biased exponent fields.
        mantissa: integer tensor of mantissa fields.
        dtype: the float format the fields belong to.

    Returns:
        A float64 tensor of the values the fields stand for.

    Raises:
        TypeError: if ``dtype`` is not one of the four float formats.

    Examples:
        >>> value_from_fields(torch.tensor([0, 1]), torch.tensor([0, 31]), torch.tensor([1, 0]), torch.float16).tolist()
        [5.960464477539063e-08, -inf]
    """
    e, m = _float_format("dtype", dtype)
    bias = 2 ** (e - 1) - 1
    sign, exponent, mantissa = (torch.as_tensor(t).to(torch.int64) for t in (sign, exponent, mantissa))
    # Write the value as an integer significand times a power of two. Normal numbers get the hidden
    # leading 1 (worth 2**m); subnormals do not, and share the exponent of E = 1.
    significand = mantissa + (exponent > 0).to(torch.int64) * 2**m
    power = exponent.clamp(min=1) - bias - m
    low, high = 1 - bias - m, 2**e - 1 - bias - m
    magnitude = significand.to(torch.float64) * _powers_of_two(low, high)[power - low]
    special = torch.full_like(magnitude, math.nan).masked_fill(mantissa == 0, math.inf)
    magnitude = torch.where(exponent == 2**e - 1, special, magnitude)
    # Negating, rather than multiplying by -1.0, is what keeps -0.0 negative.
    return torch.where(sign == 1, -magnitude, magnitude)


class FloatInfo(NamedTuple):
    """A float format's limits, named like the attributes of `torch.finfo`.

    Attributes:
        bits: total width (sign, exponent and mantissa).
        max: largest finite number; ``min`` is its negative.
        tiny: smallest positive normal number.
        eps: gap between 1 and the next representable number.
        smallest_subnormal: smallest positive number of all.
    """

    bits: int
    max: float
    min: float
    tiny: float
    eps: float
    smallest_subnormal: float


def finfo_from_bits(exponent_bits: int, mantissa_bits: int) -> FloatInfo:
    """Work out a float format's limits from its bit layout alone.

    Args:
        exponent_bits: width ``e`` of the exponent field, from 2 to 11.
        mantissa_bits: width ``m`` of the mantissa field, from 1 to 52 (so every limit is exact in float64).

    Returns:
        The format's `FloatInfo`.

    Raises:
        ValueError: if either width is not an int in its range.

    Examples:
        >>> finfo_from_bits(5, 10).max, finfo_from_bits(8, 7).eps
        (65504.0, 0.0078125)
        >>> finfo_from_bits(12, 10)
        Traceback (most recent call last):
        ...
        ValueError: exponent_bits must be an int from 2 to 11, got 12
    """
    for name, value, low, high in (("exponent_bits", exponent_bits, 2, 11), ("mantissa_bits", mantissa_bits, 1, 52)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an int from {low} to {high}, got {value!r}")
    bias = 2 ** (exponent_bits - 1) - 1
    # The largest finite number has the largest ordinary exponent (2**e - 2, which leaves `bias` once
    # the bias is subtracted) and a mantissa of all ones: 1.11...1 in binary, that is 2 - 2**-m.
    largest = math.ldexp(2.0 - math.ldexp(1.0, -mantissa_bits), bias)
    tiny = math.ldexp(1.0, 1 - bias)
    return FloatInfo(1 + exponent_bits + mantissa_bits, largest, -largest, tiny, math.ldexp(1.0, -mantissa_bits),
                     math.ldexp(tiny, -mantissa_bits))


def round_to_bfloat16(x: torch.Tensor) -> torch.Tensor:
    """Round a float32 tensor to bfloat16 by hand: keep the top 16 bits, round to nearest, ties to even.

    Args:
        x: a float32 tensor.

    Returns:
        A bfloat16 tensor equal to ``x.to(torch.bfloat16)``, bit for bit, on every number. Every NaN becomes
        the quiet NaN ``0x7FC0``; PyTorch also returns a NaN, but its bits depend on the platform.

    Raises:
        TypeError: if ``x`` is not a float32 tensor.

    Examples:
        >>> round_to_bfloat16(torch.tensor([1.0, 1.00390625, 1.01171875])).tolist()
        [1.0, 1.0, 1.015625]
    """
    if _dtype_of("x", x) != torch.float32:
        raise TypeError(f"x must be a float32 tensor, got {x.dtype}")
    # The 32 bits as an unsigned number (in int64, so nothing overflows), split into the 16 we keep
    # (sign, 8 exponent bits, 7 mantissa bits) and the 16 we drop.
    bits = x.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    upper, lower = bits >> 16, bits & 0xFFFF
    # More than half a step (0x8000) rounds up; exactly half rounds to whichever neighbour is even.
    # A carry out of the mantissa walks into the exponent, which is exactly right: 1.11...1 * 2**k
    # becomes 2**(k+1), and the largest float32 numbers become infinity.
    round_up = (lower > 0x8000) | ((lower == 0x8000) & ((upper & 1) == 1))
    upper = torch.where(torch.isnan(x), 0x7FC0, upper + round_up.to(torch.int64))
    # Back to a signed 16-bit pattern, then reinterpreted as bfloat16.
    return torch.where(upper >= 0x8000, upper - 0x10000, upper).to(torch.int16).view(torch.bfloat16)


PROMOTABLE_DTYPES: tuple[torch.dtype, ...] = (
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
)  # fmt: skip
"""The dtypes `promote_types` understands: bool, five integer types and four float types."""


def _category(dtype: torch.dtype) -> int:
    return 0 if dtype == torch.bool else 2 if dtype.is_floating_point else 1


def promote_types(type1: torch.dtype, type2: torch.dtype) -> torch.dtype:
    """The dtype ``type1`` and ``type2`` promote to, like `torch.promote_types` on `PROMOTABLE_DTYPES`.

    Args:
        type1: a dtype from `PROMOTABLE_DTYPES`.
        type2: a dtype from `PROMOTABLE_DTYPES`.

    Returns:
        The promoted dtype.

    Raises:
        ValueError: if either dtype is outside that subset (complex, wider unsigned types, float8).

    Examples:
        >>> promote_types(torch.bool, torch.int32), promote_types(torch.int64, torch.float16)
        (torch.int32, torch.float16)
    """
    for name, dtype in (("type1", type1), ("type2", type2)):
        if dtype not in PROMOTABLE_DTYPES:
            raise ValueError(f"{name} must be one of {[str(d) for d in PROMOTABLE_DTYPES]}, got {dtype}")
    # A higher category wins outright and keeps its own dtype: int64 with float16 gives float16.
    if _category(type1) != _category(type2):
        return max(type1, type2, key=_category)
    if type1 == type2:
        return type1
    # float16 and bfloat16 each hold numbers the other cannot; only float32 holds both.
    if {type1, type2} == {torch.float16, torch.bfloat16}:
        return torch.float32
    # uint8 meeting a signed type needs a signed type that also holds 0..255, which int8 does not.
    if type1.is_signed != type2.is_signed and torch.int8 in (type1, type2):
        return torch.int16
    return max(type1, type2, key=lambda dtype: dtype.itemsize)


def plot_float_formats(*, value: float = math.pi) -> Figure:
    """Draw the bits of one number stored in float32, bfloat16 and float16, coloured by field.

    Args:
        value: the number to store in each format.

    Returns:
        A matplotlib figure with one axes.

    Examples:
        >>> fig = plot_float_formats(value=-6.5)
        >>> len(fig.axes)
        1
    """
    from matplotlib.patches import Patch, Rectangle

    fig, (ax,) = new_figure(width=9.0, height=2.6)
    colours = {"sign": PALETTE[2], "exponent": PALETTE[0], "mantissa": PALETTE[1]}
    for y, dtype in enumerate((torch.float16, torch.bfloat16, torch.float32)):
        e, m = FLOAT_LAYOUTS[dtype]
        stored = torch.tensor(value, dtype=torch.float64).to(dtype)
        sign, exponent, mantissa = (int(field) for field in float_fields(stored))
        # The bits, most significant first, beside the field each one belongs to.
        bit_string = f"{sign:01b}{exponent:0{e}b}{mantissa:0{m}b}"
        fields = ["sign"] + ["exponent"] * e + ["mantissa"] * m
        for i, (bit, field) in enumerate(zip(bit_string, fields, strict=True)):
            ax.add_patch(Rectangle((i, y + 0.1), 1, 0.8, facecolor=colours[field], edgecolor="white"))
            ax.text(i + 0.5, y + 0.5, bit, ha="center", va="center", color="white", fontsize=8)
        ax.text(-0.5, y + 0.5, f"{str(dtype).removeprefix('torch.')} (1+{e}+{m})", ha="right", va="center")
        ax.text(len(bit_string) + 0.5, y + 0.5, f"= {stored.item():.9g}", ha="left", va="center")
    ax.set(xlim=(-9, 41), ylim=(0, 3), title=f"The bits of {value:.9g}, stored in three formats")
    ax.axis("off")
    ax.legend(handles=[Patch(color=c, label=f) for f, c in colours.items()], loc="upper center", ncol=3,
              bbox_to_anchor=(0.5, 0.0), frameon=False)
    return fig


def plot_precision(*, points: int = 600) -> Figure:
    """Plot the gap to the next representable number against magnitude, for float32, bfloat16, float16.

    Args:
        points: how many log-spaced magnitudes to sample.

    Returns:
        A matplotlib figure with two axes: the absolute gap and the gap relative to the number.

    Raises:
        ValueError: if ``points`` is below 2.

    Examples:
        >>> fig = plot_precision(points=16)
        >>> len(fig.axes)
        2
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    fig, (ax_abs, ax_rel) = new_figure(1, 2, width=10.0, height=3.8)
    # Left: magnitudes from 2**-150 (below float32's smallest subnormal) to 2**128 (beyond its max).
    # Right: a close-up of 1/8 to 32, sampled densely enough to resolve every power of two.
    wide = torch.exp2(torch.linspace(-150.0, 128.0, points, dtype=torch.float64))
    close = torch.exp2(torch.linspace(-3.0, 5.0, points, dtype=torch.float64))
    for colour, dtype in zip(PALETTE, (torch.float32, torch.bfloat16, torch.float16), strict=False):
        label = str(dtype).removeprefix("torch.")
        for ax, magnitudes in ((ax_abs, wide), (ax_rel, close)):
            x = magnitudes.to(dtype)
            x = x[(x > 0) & (x < torch.finfo(dtype).max)]
            # Neighbours differ by at most a factor of 2, so this subtraction is exact in the format itself.
            gap = (next_representable_float(x) - x).double()
            ax.loglog(x.double(), gap if ax is ax_abs else gap / x.double(), color=colour, label=label)
        ax_rel.axhline(torch.finfo(dtype).eps, color=colour, linestyle=":", linewidth=1)
    ax_abs.set(xlabel="magnitude |x|", ylabel="gap to the next number", title="Absolute gap (flat: subnormals)")
    ax_rel.set(xlabel="magnitude |x|", ylabel="gap / |x|", title="Relative gap near 1 (dotted: eps)")
    ax_abs.legend()
    return fig


def next_representable_float(x: torch.Tensor) -> torch.Tensor:
    """Challenge solution: the next representable number above each element, in the same dtype.

    Args:
        x: a float16, bfloat16, float32 or float64 tensor.

    Returns:
        A tensor equal to ``torch.nextafter(x, inf)``.

    Raises:
        TypeError: if ``x`` is not a tensor of one of those four dtypes.

    Examples:
        >>> next_representable_float(torch.tensor([1.0, -1.0, 0.0], dtype=torch.float16)).tolist()
        [1.0009765625, -0.99951171875, 5.960464477539063e-08]
    """
    dtype = _dtype_of("x", x)
    _float_format("x", dtype)
    # Read as signed integers, positive floats are ordered like their bit patterns, so +1 moves up.
    # A negative float's pattern is (most negative int) + magnitude: moving up shrinks it, so -1.
    bits = x.view(_SAME_WIDTH_INT[dtype]).to(torch.int64)
    stepped = torch.where(x > 0, bits + 1, bits - 1)
    # Both zeros step to the smallest positive subnormal, whose pattern is 1.
    stepped = torch.where(x == 0, 1, stepped)
    result = stepped.to(_SAME_WIDTH_INT[dtype]).view(dtype)
    # +inf has nowhere to go and NaN stays NaN.
    return torch.where(torch.isnan(x) | (x == math.inf), x, result)


def _edge_values(dtype: torch.dtype) -> torch.Tensor:
    info = torch.finfo(dtype)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, -3.75, info.max, -info.max, info.tiny, -info.tiny, math.inf, -math.inf, math.nan]
    # Plus the two smallest subnormals of either sign and a spread of ordinary numbers.
    subnormals = compose_float(torch.tensor([0, 1, 0, 1]), torch.zeros(4, dtype=torch.int64), torch.tensor([1, 1, 3, 3]), dtype)
    noise = torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1e3
    return torch.cat([torch.tensor(values, dtype=torch.float64).to(dtype), subnormals, noise.to(dtype)])


def _attempt(candidate, where: str, *args, **kwargs):
    # Run a learner's attempt; a crash is a failed case that says which inputs caused it.
    try:
        return candidate(*args, **kwargs)
    except Exception as err:  # any failure of the attempt is reported, not crashed on
        raise AssertionError(f"{where}: the attempt raised {type(err).__name__}: {err}") from err


def check_next_representable_float(candidate) -> None:
    """Check an attempt at `next_representable_float` against `torch.nextafter` in all four dtypes.

    Raises:
        AssertionError: if the candidate disagrees anywhere; the message names the dtype and the input.
    """
    for dtype in FLOAT_LAYOUTS:
        x = _edge_values(dtype)
        expected = torch.nextafter(x, torch.tensor(math.inf, dtype=dtype))
        got = _attempt(candidate, f"{dtype} edge values", x.clone())
        assert isinstance(got, torch.Tensor) and got.dtype == dtype, f"for a {dtype} input return a {dtype} tensor, got {got!r}"
        assert got.shape == x.shape, f"the result must have the input's shape {tuple(x.shape)}, got {tuple(got.shape)}"
        wrong = ~((got == expected) | (got.isnan() & expected.isnan()))
        if wrong.any():
            i = int(wrong.nonzero()[0])
            raise AssertionError(f"{dtype}: after {x[i].item()!r} comes {expected[i].item()!r}, got {got[i].item()!r}")


def survives_round_trip(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Challenge solution: where does the floating dtype ``dtype`` hold the value of ``x`` exactly?

    Args:
        x: a floating-point tensor.
        dtype: a floating-point dtype.

    Returns:
        A bool tensor of ``x``'s shape, ``True`` where converting to ``dtype`` keeps the value (NaN
        counts as kept; overflow to infinity does not).

    Raises:
        TypeError: if ``x`` or ``dtype`` is not floating point.

    Examples:
        >>> survives_round_trip(torch.tensor([0.5, 0.1, 70000.0, float("nan")]), torch.float16)
        tensor([ True, False, False,  True])
    """
    if not _dtype_of("x", x).is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    # There and back is exact whenever the value fits, and changes it whenever it does not.
    back = x.to(dtype).to(x.dtype)
    return (back == x) | (torch.isnan(back) & torch.isnan(x))


_ROUND_TRIP_CASES = (
    (torch.float32, torch.float16, [0.5, 0.1, 65504.0, 65520.0, 2.0**-24, 2.0**-26, 2049.0, -0.0, math.inf, math.nan],
     [True, False, True, False, True, False, False, True, True, True]),
    (torch.float32, torch.bfloat16, [256.0, 257.0, 1e38, 3.4e38, 1.0 + 2.0**-7, 1.0 + 2.0**-8],
     [True, False, False, False, True, False]),
    (torch.float64, torch.float32, [0.1, 0.5, 2.0**-149, 2.0**-150, 16777217.0, 1e300], [False, True, True, False, False, False]),
    (torch.bfloat16, torch.float16, [1.0, 1e-10, 1e30, -2.5], [True, False, False, True]),
)  # fmt: skip


def check_survives_round_trip(candidate) -> None:
    """Check an attempt at `survives_round_trip` on hand-picked edge cases and random values.

    Raises:
        AssertionError: if the candidate disagrees anywhere; the message names the input and the dtypes.
    """
    for source, target, values, expected in _ROUND_TRIP_CASES:
        x = torch.tensor(values, dtype=source)
        got = _attempt(candidate, f"{values} as {source} -> {target}", x.clone(), target)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bool, f"return a bool tensor, got {got!r}"
        for value, want, have in zip(x.tolist(), expected, got.tolist(), strict=True):
            assert have == want, f"{value!r} as {source} -> {target}: expected {want}, got {have}"
    # Random float64 values, a quarter of them exact in float16 by construction. The truth comes from
    # the fields of the converted value: a different road from converting back.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, dtype=torch.float64, generator=generator)
    x = torch.cat([x, torch.randint(-2048, 2048, (50,), generator=generator).double() / 8])
    truth = value_from_fields(*float_fields(x.to(torch.float16)), torch.float16) == x
    got = _attempt(candidate, "random float64 values -> float16", x.clone(), torch.float16)
    assert torch.equal(got, truth), f"float64 -> float16 on random values: wrong at {x[got != truth][:3].tolist()}"
