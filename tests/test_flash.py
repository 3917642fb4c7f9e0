"""The proof that the lesson's tiled attention is PyTorch's: outputs, log-sum-exp, gradients, masks, dtypes,
skipped tiles, the memory it saves, and its errors."""

from __future__ import annotations

import importlib.util
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.transformers import flash
from torchenstein.transformers.attention import scaled_dot_product_attention as naive_attention
from torchenstein.transformers.flash import (
    FlashAttention,
    causal_tiles_skipped,
    check_causal_tiles_skipped,
    check_merge_attention_states,
    flash_attention,
    flash_attention_backward,
    flash_attention_forward,
    merge_attention_states,
    online_softmax,
    plot_attention_memory,
    saved_for_backward_bytes,
    sdpa_backend,
)

# Whether this PyTorch has torch.nn.attention.bias, found without importing it (that loads TorchDynamo).
HAS_CAUSAL_BIAS = importlib.util.find_spec("torch.nn.attention.bias") is not None
needs_causal_bias = pytest.mark.skipif(not HAS_CAUSAL_BIAS, reason="torch.nn.attention.bias is missing")
# PyTorch 2.5 introduced the softmax that returns zeros for a row whose keys are all hidden; before, NaN.
TORCH_ZERO_ROWS = tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5)

# (L, S, d_k, d_v, block_q, block_k): odd sizes the blocks do not divide, L > S and L < S, length 1,
# blocks larger than the sequence, and exact division.
SHAPES = [
    (7, 11, 8, 5, 4, 3),
    (11, 7, 8, 5, 3, 4),
    (1, 1, 4, 4, 2, 2),
    (1, 9, 4, 3, 64, 2),
    (9, 1, 4, 3, 2, 64),
    (16, 16, 8, 8, 4, 4),
    (13, 13, 6, 2, 5, 1),
]
MODES = ["plain", "causal", "lower_right", "upper_left", "bool_mask", "scale"]


def _qkv(L, S, d_k, d_v, batch=(2, 3), dtype=torch.float32, seed=0, requires_grad=False):
    generator = torch.Generator().manual_seed(seed)
    shapes = ((*batch, L, d_k), (*batch, S, d_k), (*batch, S, d_v))
    return [torch.randn(s, generator=generator, dtype=dtype).requires_grad_(requires_grad) for s in shapes]


def _causal_bias(L, S, lower_right):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch warns that lower-right with L > S hides whole rows
        from torch.nn.attention.bias import causal_lower_right, causal_upper_left

        return causal_lower_right(L, S) if lower_right else causal_upper_left(L, S)


def _kwargs(mode, L, S, seed=1):
    """The attention arguments of one mode, as both SDPA and ours take them."""
    if mode == "causal":
        return {"is_causal": True}
    if mode in ("lower_right", "upper_left"):
        if not HAS_CAUSAL_BIAS:
            pytest.skip("torch.nn.attention.bias is missing")
        return {"attn_mask": _causal_bias(L, S, mode == "lower_right")}
    if mode == "bool_mask":
        generator = torch.Generator().manual_seed(seed)
        return {"attn_mask": torch.rand(L, S, generator=generator) > 0.3}
    if mode == "scale":
        return {"scale": 0.37}
    return {}


def _sdpa(q, k, v, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.scaled_dot_product_attention(q, k, v, **kwargs)


def _finite_rows(out):
    """Rows where PyTorch's answer is finite (older releases give NaN for rows that see no key)."""
    return out.isfinite().all(dim=-1)


# ---------------------------------------------------------------------------------------------------------
# The online softmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 100])
def test_online_softmax_equals_softmax(dtype, block_size):
    x = torch.randn(4, 3, 10, dtype=dtype) * 5
    x[0, 0, :4] = float("-inf")  # a hidden first block
    x[1, 1] += 1000.0  # magnitudes that overflow exp
    torch.testing.assert_close(online_softmax(x, block_size), torch.softmax(x, dim=-1))


def test_online_softmax_edge_cases_match_softmax():
    # One entry, a 1-D vector, and a row of nothing but -inf: torch.softmax gives NaN there, and so do we.
    for x in (torch.tensor([3.0]), torch.tensor([2.0, -1.0, 0.5]), torch.full((2, 4), float("-inf"))):
        torch.testing.assert_close(online_softmax(x, 2), torch.softmax(x, dim=-1), equal_nan=True)
    assert online_softmax(torch.full((4,), float("-inf")), 2).isnan().all()


# ---------------------------------------------------------------------------------------------------------
# The forward pass against F.scaled_dot_product_attention


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_equals_sdpa_float64(shape, mode):
    L, S, d_k, d_v, block_q, block_k = shape
    q, k, v = _qkv(L, S, d_k, d_v, dtype=torch.float64)
    kwargs = _kwargs(mode, L, S)
    ours = flash_attention_forward(q, k, v, **kwargs, block_q=block_q, block_k=block_k)
    theirs = _sdpa(q, k, v, **kwargs)
    rows = _finite_rows(theirs)
    torch.testing.assert_close(ours.output[rows], theirs[rows])
    assert ours.output.dtype == torch.float64 and ours.logsumexp.dtype == torch.float64
    # The log-sum-exp is the one of the masked, scaled scores (-inf for a row that sees nothing).
    reference = _reference_scores(q, k, **kwargs)
    torch.testing.assert_close(ours.logsumexp, torch.logsumexp(reference, dim=-1))


def _reference_scores(q, k, attn_mask=None, is_causal=False, scale=None):
    L, S = q.size(-2), k.size(-2)
    scale = q.size(-1) ** -0.5 if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if is_causal:
        attn_mask = torch.ones(L, S, dtype=torch.bool).tril()
    elif (bias := sys.modules.get("torch.nn.attention.bias")) and isinstance(attn_mask, bias.CausalBias):
        lower_right = attn_mask.variant == bias.CausalVariant.LOWER_RIGHT
        attn_mask = torch.ones(L, S, dtype=torch.bool).tril(S - L if lower_right else 0)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores


@pytest.mark.parametrize("mode", ["plain", "causal", "lower_right", "bool_mask"])
def test_forward_float32_and_leading_dims(mode):
    # No leading dims, one, and two; float32 at assert_close's default tolerances.
    for batch in ((), (3,), (2, 4)):
        q, k, v = _qkv(10, 6, 8, 4, batch=batch)
        kwargs = _kwargs(mode, 10, 6)
        ours = flash_attention_forward(q, k, v, **kwargs, block_q=3, block_k=4).output
        theirs = _sdpa(q, k, v, **kwargs)
        rows = _finite_rows(theirs)
        torch.testing.assert_close(ours[rows], theirs[rows])


def test_forward_masks_broadcast_like_sdpa():
    q, k, v = _qkv(5, 7, 4, 3, batch=(2, 3))
    generator = torch.Generator().manual_seed(2)
    for shape in ((7,), (5, 7), (1, 5, 7), (3, 1, 7), (2, 1, 5, 7), (2, 3, 5, 7)):
        mask = torch.rand(shape, generator=generator) > 0.2
        mask[..., 0] = True  # every row sees a key, so even an old PyTorch gives no NaN
        # PyTorch's CPU kernel refuses a 1-D mask; the same mask as (1, S) broadcasts identically.
        theirs = _sdpa(q, k, v, attn_mask=mask if mask.dim() > 1 else mask[None])
        torch.testing.assert_close(flash_attention_forward(q, k, v, attn_mask=mask, block_q=2, block_k=3).output, theirs)


def test_forward_non_contiguous_inputs():
    q, k, v = _qkv(6, 8, 4, 4, batch=(2, 3))
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # (3, 2, T, d) views with odd strides
    assert not q.is_contiguous()
    torch.testing.assert_close(flash_attention_forward(q, k, v, is_causal=True, block_q=4, block_k=3).output,
                               _sdpa(q, k, v, is_causal=True))


@settings(max_examples=10)
@given(L=st.integers(1, 12), S=st.integers(1, 12), block_q=st.integers(1, 13), block_k=st.integers(1, 13),
       causal=st.booleans())
def test_forward_property(L, S, block_q, block_k, causal):
    q, k, v = _qkv(L, S, 4, 3, batch=(2,), dtype=torch.float64, seed=L * 13 + S)
    ours = flash_attention_forward(q, k, v, is_causal=causal, block_q=block_q, block_k=block_k)
    torch.testing.assert_close(ours.output, _sdpa(q, k, v, is_causal=causal))
    if causal:
        assert ours.tiles_skipped == causal_tiles_skipped(L, S, block_q, block_k)
    assert ours.tiles_computed + ours.tiles_skipped == -(-L // block_q) * -(-S // block_k)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("mode", ["plain", "causal", "lower_right", "bool_mask"])
def test_forward_half_precision(dtype, tol, mode):
    q, k, v = _qkv(33, 20, 16, 8, dtype=torch.float64, seed=3)
    kwargs = _kwargs(mode, 33, 20)
    half = [t.to(dtype) for t in (q, k, v)]
    ours = flash_attention_forward(*half, **kwargs, block_q=8, block_k=8)
    theirs = _sdpa(*half, **kwargs)
    rows = _finite_rows(theirs)
    assert ours.output.dtype == dtype and ours.logsumexp.dtype == torch.float32
    # The lesson's stated tolerance against PyTorch in the same dtype...
    torch.testing.assert_close(ours.output[rows], theirs[rows], atol=tol, rtol=tol)
    # ...and against the exact answer (computed in float64 from the same rounded inputs), accumulating in
    # float32 is no worse than PyTorch's kernel: within one rounding of the output.
    exact = _sdpa(*(t.double() for t in half), **kwargs).to(dtype).double()
    ours_error = (ours.output.double() - exact)[rows].abs().max()
    theirs_error = (theirs.double() - exact)[rows].abs().max()
    assert ours_error <= max(theirs_error, torch.finfo(dtype).eps)


def test_causal_tiles_skipped_match_the_mask():
    # A tile is skipped exactly when the materialised causal mask hides all of it.
    for L, S, bq, bk, lower_right in ((64, 64, 16, 16, False), (10, 23, 3, 4, True), (23, 10, 4, 3, True),
                                      (23, 10, 4, 3, False), (5, 5, 1, 1, False)):
        if lower_right and not HAS_CAUSAL_BIAS:
            continue
        keep = torch.ones(L, S, dtype=torch.bool).tril(S - L if lower_right else 0)
        hidden = sum(not keep[i:i + bq, j:j + bk].any() for i in range(0, L, bq) for j in range(0, S, bk))
        q, k = torch.zeros(L, 2), torch.zeros(S, 2)
        kwargs = {"attn_mask": _causal_bias(L, S, True)} if lower_right else {"is_causal": True}
        result = flash_attention_forward(q, k, k, **kwargs, block_q=bq, block_k=bk)
        assert result.tiles_skipped == hidden == causal_tiles_skipped(L, S, bq, bk, lower_right=lower_right)
    # Without a causal rule nothing is skipped, even with a bool mask that hides a whole tile.
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[:2, :2] = False
    assert flash_attention_forward(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4, 2), attn_mask=mask,
                                   block_q=2, block_k=2).tiles_skipped == 0


# ---------------------------------------------------------------------------------------------------------
# Rows that see no key, and empty sequences


def test_fully_hidden_rows_are_zero_with_zero_gradients():
    q, k, v = _qkv(4, 5, 3, 2, batch=(2,), dtype=torch.float64, requires_grad=True)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1] = False  # query 1 sees nothing
    mask[2, :3] = False  # query 2's first key tiles are hidden (a running max of -inf)
    out = flash_attention(q, k, v, attn_mask=mask, block_q=2, block_k=2)
    assert torch.equal(out[:, 1], torch.zeros(2, 2))
    forward = flash_attention_forward(q.detach(), k.detach(), v.detach(), attn_mask=mask, block_q=2, block_k=2)
    assert forward.logsumexp[:, 1].eq(float("-inf")).all() and forward.logsumexp[:, [0, 2, 3]].isfinite().all()
    grad_q, grad_k, grad_v = torch.autograd.grad(out.sum(), (q, k, v))
    assert torch.equal(grad_q[:, 1], torch.zeros(2, 3))
    assert all(g.isfinite().all() for g in (grad_q, grad_k, grad_v))
    if TORCH_ZERO_ROWS:  # pin what this PyTorch does: zeros, and the same gradients as ours
        theirs = _sdpa(q, k, v, attn_mask=mask)
        torch.testing.assert_close(out, theirs)
        for ours_grad, their_grad in zip((grad_q, grad_k, grad_v), torch.autograd.grad(theirs.sum(), (q, k, v)), strict=True):
            torch.testing.assert_close(ours_grad, their_grad)


@needs_causal_bias
def test_lower_right_with_more_queries_than_keys_hides_the_first_rows():
    # L > S bottom-right: the first L - S queries see nothing (PyTorch warns it may produce NaN).
    q, k, v = _qkv(6, 2, 4, 3, batch=(1,), dtype=torch.float64)
    mask = _causal_bias(6, 2, lower_right=True)
    ours = flash_attention_forward(q, k, v, attn_mask=mask, block_q=4, block_k=1)
    assert torch.equal(ours.output[:, :4], torch.zeros(1, 4, 3)) and ours.tiles_skipped == 2
    if TORCH_ZERO_ROWS:
        torch.testing.assert_close(ours.output, _sdpa(q, k, v, attn_mask=mask))


def test_empty_sequences():
    q, k, v = _qkv(3, 0, 4, 2, batch=(2,))
    assert torch.equal(flash_attention_forward(q, k, v).output, torch.zeros(2, 3, 2))
    torch.testing.assert_close(flash_attention_forward(q, k, v).output, _sdpa(q, k, v))  # zeros there too
    q, k, v = _qkv(0, 3, 4, 2, batch=(2,))
    assert flash_attention_forward(q, k, v, is_causal=True).output.shape == (2, 0, 2)


# ---------------------------------------------------------------------------------------------------------
# The backward pass


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES[:5])
def test_gradients_equal_sdpa_float64(shape, mode):
    L, S, d_k, d_v, block_q, block_k = shape
    q, k, v = _qkv(L, S, d_k, d_v, batch=(2,), dtype=torch.float64, requires_grad=True)
    kwargs = _kwargs(mode, L, S)
    grad_output = torch.randn(2, L, d_v, dtype=torch.float64)
    ours = flash_attention(q, k, v, **kwargs, block_q=block_q, block_k=block_k)
    theirs = _sdpa(q, k, v, **kwargs)
    if not theirs.isfinite().all():
        pytest.skip("this PyTorch gives NaN for rows that see no key")
    torch.testing.assert_close(ours, theirs)
    ours_grads = torch.autograd.grad(ours, (q, k, v), grad_output)
    for a, b in zip(ours_grads, torch.autograd.grad(theirs, (q, k, v), grad_output), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode):
    q, k, v = _qkv(3, 4, 2, 2, batch=(1,), dtype=torch.float64, requires_grad=True)
    kwargs = _kwargs(mode, 3, 4)
    assert torch.autograd.gradcheck(lambda *t: flash_attention(*t, **kwargs, block_q=2, block_k=3), (q, k, v))


def test_gradients_float32_and_half():
    for dtype, tol in ((torch.float32, None), (torch.float16, 5e-3), (torch.bfloat16, 5e-2)):
        q, k, v = _qkv(9, 12, 8, 4, batch=(2,), seed=4)
        q, k, v = (t.to(dtype).requires_grad_() for t in (q, k, v))
        grad_output = torch.randn(2, 9, 4).to(dtype)
        ours = torch.autograd.grad(flash_attention(q, k, v, is_causal=True, block_q=4, block_k=5), (q, k, v), grad_output)
        theirs = torch.autograd.grad(_sdpa(q, k, v, is_causal=True), (q, k, v), grad_output)
        for a, b in zip(ours, theirs, strict=True):
            assert a.dtype == dtype
            torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def test_backward_function_matches_autograd_function():
    q, k, v = _qkv(5, 6, 4, 3, batch=(2,), dtype=torch.float64)
    forward = flash_attention_forward(q, k, v, is_causal=True, block_q=2, block_k=4)
    grad_output = torch.randn(2, 5, 3, dtype=torch.float64)
    by_hand = flash_attention_backward(grad_output, q, k, v, forward.output, forward.logsumexp, is_causal=True,
                                       block_q=2, block_k=4)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = FlashAttention.apply(*leaves, None, True, None, 2, 4)
    for a, b in zip(by_hand, torch.autograd.grad(out, leaves, grad_output), strict=True):
        torch.testing.assert_close(a, b)
    # Once differentiable: a second derivative is refused rather than silently wrong.
    grad_output.requires_grad_()
    (grad_q,) = torch.autograd.grad(FlashAttention.apply(*leaves, None, True, None, 2, 4), leaves[0], grad_output,
                                    create_graph=True)
    with pytest.raises(RuntimeError, match="marked with @once_differentiable"):
        grad_q.sum().backward()


# ---------------------------------------------------------------------------------------------------------
# Memory: what autograd keeps


def test_saved_bytes_are_one_number_per_query():
    for L, S in ((64, 64), (128, 32), (17, 200)):
        q, k, v = _qkv(L, S, 8, 8, batch=(2, 2), requires_grad=True)
        assert saved_for_backward_bytes(flash_attention, q, k, v) == 2 * 2 * L * 4  # the float32 logsumexp
        # The naive recipe keeps (at least) two float32 L x S matrices per head.
        assert saved_for_backward_bytes(naive_attention, q, k, v) >= 2 * 2 * 2 * L * S * 4
    # Half inputs: the statistics stay float32.
    q, k, v = (t.detach().half().requires_grad_() for t in (q, k, v))
    assert saved_for_backward_bytes(flash_attention, q, k, v) == 2 * 2 * 17 * 4
    # Nothing is saved when no input needs a gradient.
    assert saved_for_backward_bytes(flash_attention, *(t.detach() for t in (q, k, v))) == 0


def test_pytorch_cpu_kernel_saves_the_same_as_ours():
    # On this PyTorch's CPU, the default SDPA kernel is flash-style too: it keeps a float32 logsumexp.
    q, k, v = _qkv(64, 64, 16, 16, batch=(1, 2), requires_grad=True)
    if sdpa_backend(q, k, v) != "FLASH_ATTENTION":
        pytest.skip("this PyTorch runs another backend on the CPU")
    assert saved_for_backward_bytes(F.scaled_dot_product_attention, q, k, v) == \
        saved_for_backward_bytes(flash_attention, q, k, v)


def test_plot_attention_memory():
    fig = plot_attention_memory(lengths=(16, 32, 64))
    assert isinstance(fig, Figure)
    naive, tiled, naive_formula, tiled_formula = (line.get_ydata() for line in fig.axes[0].lines)
    assert list(tiled) == list(tiled_formula) and all(n >= f for n, f in zip(naive, naive_formula, strict=True))


# ---------------------------------------------------------------------------------------------------------
# Which kernel PyTorch runs


@pytest.mark.skipif(flash.SDPBackend is None or not hasattr(torch, "_fused_sdp_choice"), reason="older PyTorch")
def test_sdpa_backend_on_cpu():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = _qkv(8, 8, 16, 16)
    assert sdpa_backend(q, k, v) == "FLASH_ATTENTION"
    assert sdpa_backend(q, k, v, dropout_p=0.1) == "MATH"
    with sdpa_kernel(SDPBackend.MATH):
        assert sdpa_backend(q, k, v) == "MATH"
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION), pytest.raises(RuntimeError, match="No viable backend"):
        F.scaled_dot_product_attention(q, k, v)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_sdpa():
    for dtype, tol in ((torch.float32, 1e-3), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)):
        q, k, v = (t.cuda().to(dtype).requires_grad_() for t in _qkv(70, 90, 64, 64, batch=(2, 4)))
        assert sdpa_backend(q, k, v, is_causal=True) not in ("ERROR", "unknown")
        ours = flash_attention(q, k, v, is_causal=True, block_q=32, block_k=32)
        theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(ours, theirs, atol=tol, rtol=tol)
        grads = torch.autograd.grad(ours.sum(), (q, k, v)), torch.autograd.grad(theirs.sum(), (q, k, v))
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b, atol=5 * tol, rtol=5 * tol)


# ---------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"query": [1.0]}, TypeError, "query must be a torch.Tensor"),
        ({"query": torch.ones(4)}, ValueError, "query must have at least 2 dims"),
        ({"key": torch.ones(5, 4, dtype=torch.long)}, TypeError, "key must be a floating-point tensor"),
        ({"value": torch.ones(5, 3, dtype=torch.float64)}, TypeError, "must share a dtype"),
        ({"key": torch.ones(1, 5, 4)}, ValueError, "must share their leading"),
        ({"key": torch.ones(5, 3)}, ValueError, r"\(..., L, d_k\), \(..., S, d_k\)"),
        ({"value": torch.ones(4, 3)}, ValueError, r"\(..., S, d_v\)"),
        ({"block_q": 0}, ValueError, "block_q must be at least 1, got 0"),
        ({"block_k": 2.0}, TypeError, "block_k must be an int"),
        ({"is_causal": 1}, TypeError, "is_causal must be a bool"),
        ({"scale": "big"}, TypeError, "scale must be a number"),
        ({"attn_mask": torch.ones(3, 5, dtype=torch.bool), "is_causal": True}, ValueError, "not both"),
        ({"attn_mask": torch.zeros(3, 5)}, TypeError, "bool tensor or a causal bias"),
        ({"attn_mask": torch.ones(4, 5, dtype=torch.bool)}, ValueError, r"broadcast to the scores' shape \(3, 5\)"),
        ({"query": torch.ones(3, 0), "key": torch.ones(5, 0)}, ValueError, "d_k=0"),
    ],
)
def test_errors(change, error, message):
    arguments = {"query": torch.ones(3, 4), "key": torch.ones(5, 4), "value": torch.ones(5, 3)} | change
    with pytest.raises(error, match=message):
        flash_attention_forward(**arguments)


@needs_causal_bias
def test_causal_bias_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match=r"causal bias for \(L, S\) = \(2, 5\)"):
        flash_attention(torch.ones(3, 4), torch.ones(5, 4), torch.ones(5, 3), attn_mask=_causal_bias(2, 5, True))


def test_online_softmax_errors():
    with pytest.raises(TypeError, match="floating-point"):
        online_softmax(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="0-d"):
        online_softmax(torch.tensor(1.0))
    with pytest.raises(ValueError, match="block_size must be an int of at least 1, got 0"):
        online_softmax(torch.ones(3), 0)


# ---------------------------------------------------------------------------------------------------------
# Challenges


def test_merge_challenge():
    assert check_merge_attention_states(merge_attention_states) is None

    def no_guard(out_a, lse_a, out_b, lse_b):  # exp(-inf - (-inf)) where both halves saw nothing
        lse = torch.logaddexp(lse_a, lse_b)
        return torch.exp(lse_a - lse)[..., None] * out_a + torch.exp(lse_b - lse)[..., None] * out_b, lse

    def average(out_a, lse_a, out_b, lse_b):
        return (out_a + out_b) / 2, torch.logaddexp(lse_a, lse_b)

    with pytest.raises(AssertionError, match="NaN"):
        check_merge_attention_states(no_guard)
    with pytest.raises(AssertionError, match="wrong output"):
        check_merge_attention_states(average)
    with pytest.raises(AssertionError, match="return \\(output, lse\\)"):
        check_merge_attention_states(lambda *a: merge_attention_states(*a)[0])


@needs_causal_bias
def test_causal_tiles_challenge():
    assert check_causal_tiles_skipped(causal_tiles_skipped) is None

    def ignores_alignment(L, S, block_q, block_k, lower_right=False):
        return causal_tiles_skipped(L, S, block_q, block_k)

    def no_check(L, S, block_q, block_k, lower_right=False):
        return causal_tiles_skipped(L, S, max(block_q, 1), block_k, lower_right)

    with pytest.raises(AssertionError, match="lower_right=True"):
        check_causal_tiles_skipped(ignores_alignment)
    with pytest.raises(AssertionError, match="should raise ValueError"):
        check_causal_tiles_skipped(no_check)
    with pytest.raises(ValueError, match="block_k must be an int of at least 1"):
        causal_tiles_skipped(4, 4, 2, 0)
