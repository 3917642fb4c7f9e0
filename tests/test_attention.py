"""The proof that the lesson's attention equals PyTorch's: values, gradients, masks, shapes, dtypes, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from torchenstein.transformers.attention import (
    alibi_bias,
    attention_with_weights,
    causal_mask,
    check_alibi_bias,
    check_grouped_query_attention_scores,
    check_sliding_window_mask,
    einsum_attention,
    einsum_multi_head_attention,
    grouped_query_attention_scores,
    matmul_multi_head_attention,
    padding_mask,
    plot_attention_map,
    plot_softmax_saturation,
    scaled_dot_product_attention,
    sliding_window_mask,
    softmax_saturation,
    token_lookup_qkv,
)

# (leading dims, L, S, d_k, d_v): square and rectangular, length 1 on either side, 0 to 3 leading dims.
SHAPES = [
    ((), 1, 1, 4, 4),
    ((), 5, 5, 8, 8),
    ((2,), 5, 7, 8, 3),
    ((2,), 7, 3, 4, 4),
    ((3,), 1, 6, 8, 5),
    ((2,), 6, 1, 4, 2),
    ((2, 3), 4, 6, 16, 8),
    ((2, 1, 3), 3, 5, 4, 4),
]
TOLERANCES = {torch.float32: {}, torch.float64: {}, torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2}}


def _qkv(batch, L, S, d_k, d_v, dtype=torch.float32, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(*batch, n, d, generator=g, dtype=torch.float64).to(dtype) for n, d in ((L, d_k), (S, d_k), (S, d_v))
    ]
    return [t.requires_grad_(requires_grad) for t in tensors]


def _random_bool_mask(shape, seed=0):
    """A random boolean mask whose every row keeps at least one key (column 0), so no row is all hidden."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) > 0.4
    mask[..., 0] = True
    return mask


def _both(q, k, v, **kwargs):
    return scaled_dot_product_attention(q, k, v, **kwargs), F.scaled_dot_product_attention(q, k, v, **kwargs)


@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_without_mask_and_causal(shape, dtype):
    q, k, v = _qkv(*shape, dtype=dtype)
    for kwargs in ({}, {"is_causal": True}, {"scale": 0.3}, {"is_causal": True, "scale": 2.0}):
        ours, theirs = _both(q, k, v, **kwargs)
        assert ours.shape == theirs.shape and ours.dtype == dtype
        torch.testing.assert_close(ours, theirs, **TOLERANCES[dtype])


@pytest.mark.parametrize("dtype", list(TOLERANCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_with_bool_and_float_masks(shape, dtype):
    batch, L, S = shape[0], shape[1], shape[2]
    q, k, v = _qkv(*shape, dtype=dtype, seed=1)
    mask = _random_bool_mask((*batch, L, S), seed=2)
    bias = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, float("-inf"))
    g = torch.Generator().manual_seed(3)
    soft_bias = torch.randn((*batch, L, S), generator=g).to(dtype)  # finite values: a nudge, no hiding
    for attn_mask in (mask, bias, soft_bias, bias + soft_bias):
        ours, theirs = _both(q, k, v, attn_mask=attn_mask)
        torch.testing.assert_close(ours, theirs, **TOLERANCES[dtype])
    # A boolean mask and its float twin give the same answer in our implementation too.
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, attn_mask=mask),
        scaled_dot_product_attention(q, k, v, attn_mask=bias),
    )


@pytest.mark.parametrize("L, S", [(4, 4), (2, 6), (6, 2), (1, 5), (5, 1)])
def test_is_causal_is_the_top_left_tril_mask(L, S):
    q, k, v = _qkv((2,), L, S, 8, 8)
    mask = causal_mask(L, S)
    torch.testing.assert_close(mask, torch.ones(L, S, dtype=torch.bool).tril())
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, is_causal=True), F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    )


def test_broadcast_masks_over_batch_and_heads():
    B, h, L, S = 2, 3, 4, 6
    q, k, v = _qkv((B, h), L, S, 8, 8)
    lengths = torch.tensor([6, 3])
    key_mask = padding_mask(lengths[:, None], S)  # (B, 1, 1, S)
    assert key_mask.shape == (B, 1, 1, S)
    masks = [
        causal_mask(L, S),  # (L, S)
        causal_mask(L, S)[None],  # (1, L, S)
        key_mask,  # (B, 1, 1, S)
        key_mask & causal_mask(L, S),  # (B, 1, L, S)
        _random_bool_mask((h, L, S)),  # one mask per head
        _random_bool_mask((B, h, L, S)),
        torch.randn(1, h, 1, S),  # a float bias per head and key
    ]
    for mask in masks:
        ours, theirs = _both(q, k, v, attn_mask=mask)
        torch.testing.assert_close(ours, theirs)


def test_batch_dims_of_query_key_value_broadcast():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 5, 4, generator=g)
    k = torch.randn(1, 3, 6, 4, generator=g)
    v = torch.randn(1, 3, 6, 7, generator=g)
    ours, theirs = _both(q, k, v)
    assert ours.shape == (2, 3, 5, 7)
    torch.testing.assert_close(ours, theirs)


def test_padding_mask_values_and_shapes():
    mask = padding_mask(torch.tensor([3, 0, 5]), 5)
    assert mask.shape == (3, 1, 5) and mask.dtype == torch.bool
    expected = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask[:, 0], expected)
    assert padding_mask([[1, 2], [2, 0]], 2).shape == (2, 2, 1, 2)
    assert padding_mask(torch.tensor([], dtype=torch.long), 4).shape == (0, 1, 4)
    assert padding_mask(torch.tensor(2), 3).shape == (1, 3)


def test_padded_keys_do_not_change_the_output():
    q, k, v = _qkv((2,), 4, 6, 8, 8)
    out = scaled_dot_product_attention(q, k, v, attn_mask=padding_mask([3, 6], 6))
    k2, v2 = k.clone(), v.clone()
    k2[0, 3:] = 100.0
    v2[0, 3:] = -100.0
    out2 = scaled_dot_product_attention(q, k2, v2, attn_mask=padding_mask([3, 6], 6))
    torch.testing.assert_close(out, out2)
    torch.testing.assert_close(out[0], scaled_dot_product_attention(q[0], k[0, :3], v[0, :3]))


@pytest.mark.parametrize(
    "shape, mask_kind",
    [
        (((), 3, 4, 5, 2), None),
        (((2,), 3, 3, 4, 3), "causal"),
        (((2,), 2, 5, 3, 3), "bool"),
        (((2, 2), 3, 2, 4, 2), "float"),
    ],
)
def test_gradcheck_float64(shape, mask_kind):
    batch, L, S = shape[0], shape[1], shape[2]
    q, k, v = _qkv(*shape, dtype=torch.float64, requires_grad=True)
    kwargs = {}
    if mask_kind == "causal":
        kwargs["is_causal"] = True
    elif mask_kind == "bool":
        kwargs["attn_mask"] = _random_bool_mask((*batch, L, S))
    elif mask_kind == "float":
        kwargs["attn_mask"] = torch.randn(L, S, dtype=torch.float64).masked_fill(~_random_bool_mask((L, S)), -math.inf)
    assert torch.autograd.gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, **kwargs), (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mask_kind", [None, "causal", "bool", "float", "padding"])
def test_gradients_match_torch(dtype, mask_kind):
    shape = ((2, 3), 5, 6, 8, 4)
    batch, L, S = shape[0], shape[1], shape[2]
    kwargs = {"scale": 0.2}
    if mask_kind == "causal":
        kwargs["is_causal"] = True
    elif mask_kind == "bool":
        kwargs["attn_mask"] = _random_bool_mask((*batch, L, S))
    elif mask_kind == "float":
        kwargs["attn_mask"] = torch.randn(1, 3, L, S, dtype=dtype)
    elif mask_kind == "padding":
        kwargs["attn_mask"] = padding_mask(torch.tensor([[6], [2]]), S)
    grads = []
    for fn in (scaled_dot_product_attention, F.scaled_dot_product_attention):
        q, k, v = _qkv(*shape, dtype=dtype, seed=5, requires_grad=True)
        out = fn(q, k, v, **kwargs)
        g = torch.Generator().manual_seed(6)
        out.backward(torch.randn(out.shape, generator=g, dtype=dtype))
        grads.append((out.detach(), q.grad, k.grad, v.grad))
    for ours, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(ours, theirs)


def test_fully_masked_rows_give_zeros_not_nan():
    q, k, v = _qkv((2,), 3, 4, 8, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    mask[0, 1] = False  # query 1 of batch 0 sees nothing
    out, weights = attention_with_weights(q, k, v, attn_mask=mask)
    assert not out.isnan().any() and not weights.isnan().any()
    assert torch.equal(out[0, 1], torch.zeros(5, dtype=torch.float64))
    assert torch.equal(weights[0, 1], torch.zeros(4, dtype=torch.float64))
    out.sum().backward()
    assert all(t.grad.isfinite().all() for t in (q, k, v))
    assert torch.equal(q.grad[0, 1], torch.zeros(8, dtype=torch.float64))
    # The same with a float mask of -inf, and with a length-0 sequence.
    bias = torch.zeros(mask.shape, dtype=torch.float64).masked_fill(~mask, -math.inf)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_mask=bias), out)
    empty = scaled_dot_product_attention(q, k, v, attn_mask=padding_mask([0, 4], 4))
    assert torch.equal(empty[0], torch.zeros(3, 5, dtype=torch.float64))
    # Gradcheck through the guard, including the hidden row.
    assert torch.autograd.gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=mask), (q, k, v))
    # PyTorch's answer for such rows depends on its version (recent: zeros, older: NaN). Compare where it is finite.
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).detach()
    finite = theirs.isfinite()
    torch.testing.assert_close(out.detach()[finite], theirs[finite])


def test_zero_length_and_empty_batch():
    q, k, v = _qkv((2,), 3, 0, 4, 5)
    out, weights = attention_with_weights(q, k, v)
    assert out.shape == (2, 3, 5) and weights.shape == (2, 3, 0)
    assert torch.equal(out, torch.zeros(2, 3, 5))
    q, k, v = _qkv((0,), 3, 4, 4, 5)
    ours, theirs = _both(q, k, v)
    assert ours.shape == theirs.shape == (0, 3, 5)


def test_weights_are_returned_and_rows_sum_to_one():
    q, k, v = _qkv((2, 2), 5, 7, 8, 3)
    out, weights = attention_with_weights(q, k, v, attn_mask=_random_bool_mask((5, 7)))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))
    torch.testing.assert_close(out, weights @ v)
    _, causal = attention_with_weights(q, k, v, is_causal=True)
    assert torch.equal(causal[..., ~causal_mask(5, 7)], torch.zeros_like(causal[..., ~causal_mask(5, 7)]))


def test_dropout_statistics():
    # PyTorch's random draws cannot be reproduced, so dropout is checked by its statistics only.
    torch.manual_seed(0)
    q, k, v = _qkv((8,), 64, 64, 16, 16)
    p = 0.3
    out, weights = attention_with_weights(q, k, v, dropout_p=p)
    _, clean = attention_with_weights(q, k, v)
    dropped = weights == 0
    assert abs(dropped.float().mean().item() - p) < 0.01
    # Survivors are the clean weights scaled by 1 / (1 - p); the output is still weights @ value.
    torch.testing.assert_close(weights[~dropped], clean[~dropped] / (1 - p))
    torch.testing.assert_close(out, weights @ v)
    assert abs(weights.sum(-1).mean().item() - 1.0) < 0.02
    # Same statistics from PyTorch: the mean output over many draws matches the clean output.
    ones = torch.ones(8, 64, 1)
    ours = scaled_dot_product_attention(q, k, ones, dropout_p=p).mean()
    theirs = F.scaled_dot_product_attention(q, k, ones, dropout_p=p).mean()
    assert abs(ours.item() - 1.0) < 0.02 and abs(theirs.item() - 1.0) < 0.02
    assert torch.equal(scaled_dot_product_attention(q, k, v, dropout_p=1.0), torch.zeros(8, 64, 16))


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (((2, 3, 4), (2, 5, 3), (2, 5, 4)), {}, ValueError, "key's last dim must equal query's d_k=4"),
        (((2, 3, 4), (2, 5, 4), (2, 6, 4)), {}, ValueError, "value must have key's length S=5"),
        (((2, 3, 4), (3, 5, 4), (3, 5, 4)), {}, ValueError, "leading .batch. dims"),
        (((4,), (5, 4), (5, 4)), {}, ValueError, "query must have at least 2 dims"),
        (((3, 4), (5, 4), (5, 4)), {"attn_mask": torch.ones(3, 5, dtype=torch.int64)}, TypeError, "bool or floating"),
        (((3, 4), (5, 4), (5, 4)), {"attn_mask": torch.ones(3, 4, dtype=torch.bool)}, ValueError, "broadcast to the scores' shape"),
        (((3, 4), (5, 4), (5, 4)), {"attn_mask": torch.ones(2, 3, 5, dtype=torch.bool)}, ValueError, r"shape \(3, 5\)"),
        (((3, 4), (5, 4), (5, 4)), {"attn_mask": [[True] * 5] * 3}, TypeError, "attn_mask must be a torch.Tensor"),
        (((3, 4), (5, 4), (5, 4)), {"attn_mask": causal_mask(3, 5), "is_causal": True}, ValueError, "not both"),
        (((3, 4), (5, 4), (5, 4)), {"dropout_p": 1.5}, ValueError, "dropout_p must be a number in"),
        (((3, 4), (5, 4), (5, 4)), {"scale": "big"}, TypeError, "scale must be a number"),
        (((3, 4), (5, 4), (5, 4)), {"is_causal": 1}, TypeError, "is_causal must be a bool"),
        (((3, 0), (5, 0), (5, 4)), {}, ValueError, "d_k=0"),
    ],
)
def test_bad_arguments_raise_clear_errors(args, kwargs, error, match):
    q, k, v = (torch.randn(*shape) for shape in args)
    with pytest.raises(error, match=match):
        scaled_dot_product_attention(q, k, v, **kwargs)


def test_bad_tensor_types_and_dtypes():
    q = torch.randn(3, 4)
    with pytest.raises(TypeError, match="share a dtype"):
        scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="query must be a floating-point tensor"):
        scaled_dot_product_attention(q.long(), q.long(), q.long())
    with pytest.raises(TypeError, match="key must be a torch.Tensor"):
        scaled_dot_product_attention(q, q.tolist(), q)


def test_float32_mask_is_accepted_for_other_dtypes_like_torch():
    q, k, v = _qkv((2,), 3, 4, 8, 8, dtype=torch.float64)
    bias = torch.randn(3, 4)
    ours, theirs = _both(q, k, v, attn_mask=bias)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs)


def test_mask_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="S must be a non-negative int, got -2"):
        causal_mask(3, -2)
    with pytest.raises(ValueError, match="L must be a non-negative int"):
        causal_mask(2.5)
    with pytest.raises(TypeError, match="lengths must hold integers"):
        padding_mask(torch.tensor([1.0, 2.0]), 3)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, S=3\]"):
        padding_mask([-1, 2], 3)
    assert causal_mask(0).shape == (0, 0)
    assert causal_mask(2, device="cpu").device.type == "cpu"


def test_softmax_saturation_shows_why_we_scale():
    tops_raw = [softmax_saturation(d, scaled=False)[1] for d in (4, 64, 1024)]
    tops_scaled = [softmax_saturation(d, scaled=True)[1] for d in (4, 64, 1024)]
    assert tops_raw[0] < tops_raw[1] < tops_raw[2] and tops_raw[2] > 0.9
    assert max(tops_scaled) - min(tops_scaled) < 0.05
    for d in (4, 256):
        assert abs(softmax_saturation(d, scaled=False)[0] / math.sqrt(d) - 1) < 0.1
        assert abs(softmax_saturation(d, scaled=True)[0] - 1) < 0.1
    with pytest.raises(ValueError, match="d must be a positive int, got 0"):
        softmax_saturation(0)


def test_token_lookup_finds_earlier_copies():
    tokens = "a b a c b a".split()
    q, k, v = token_lookup_qkv(tokens)
    _, weights = attention_with_weights(q, k, v, is_causal=True)
    for i, token in enumerate(tokens):
        best = weights[i].max()
        winners = torch.isclose(weights[i], best).nonzero().flatten().tolist()
        assert winners == [j for j in range(i + 1) if tokens[j] == token]
    with pytest.raises(ValueError, match="at least one token"):
        token_lookup_qkv([])


def test_figures():
    fig = plot_softmax_saturation(dims=(1, 8), num_queries=16)
    assert len(fig.axes) == 2 and all(len(ax.lines) == 2 for ax in fig.axes)
    fig = plot_attention_map(sentence="to be or not to be")
    assert len(fig.axes) == 2  # the map and its colour bar
    assert fig.axes[0].get_images()[0].get_array().shape == (6, 6)


def test_sliding_window_challenge():
    assert check_sliding_window_mask(sliding_window_mask) is None
    assert torch.equal(sliding_window_mask(5, 5), causal_mask(5))
    assert torch.equal(sliding_window_mask(4, 1), torch.eye(4, dtype=torch.bool))
    with pytest.raises(AssertionError):
        check_sliding_window_mask(lambda L, window: sliding_window_mask(L, window).T)  # triu: the future
    with pytest.raises(AssertionError):
        check_sliding_window_mask(lambda L, window: sliding_window_mask(L, window + 1))  # off by one
    with pytest.raises(AssertionError, match="should raise ValueError"):
        check_sliding_window_mask(lambda L, window: sliding_window_mask(L, max(window, 1)))


def test_alibi_challenge():
    assert check_alibi_bias(alibi_bias) is None
    slopes = torch.tensor([0.5, 0.125])
    q, k, v = _qkv((2,), 5, 5, 8, 8)
    ours, theirs = _both(q, k, v, attn_mask=alibi_bias(5, slopes))
    torch.testing.assert_close(ours, theirs)
    with pytest.raises(AssertionError):
        check_alibi_bias(lambda L, s: -alibi_bias(L, s).nan_to_num(neginf=0.0))  # wrong sign, no causal part
    with pytest.raises(AssertionError):
        check_alibi_bias(lambda L, s: alibi_bias(L, s).float())  # loses the slopes' dtype
    with pytest.raises(ValueError, match="slopes must be 1-D"):
        alibi_bias(3, torch.ones(2, 2))


# Attention as einsum (moved here with the code from Advanced einsum).

FLOATS = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize(("B", "h", "L", "S", "d_k", "d_v"), [(2, 3, 5, 7, 8, 4), (1, 1, 1, 1, 2, 3), (3, 2, 6, 6, 4, 4),
                                                              (2, 4, 7, 3, 5, 6)])
def test_einsum_attention_matches_ours_and_torch(B, h, L, S, d_k, d_v, is_causal, dtype):
    g = torch.Generator().manual_seed(L * S + d_k)
    q = torch.randn(B, h, L, d_k, generator=g, dtype=dtype)
    k = torch.randn(B, h, S, d_k, generator=g, dtype=dtype)
    v = torch.randn(B, h, S, d_v, generator=g, dtype=dtype)
    ours = einsum_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(ours, scaled_dot_product_attention(q, k, v, is_causal=is_causal))
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=is_causal))
    torch.testing.assert_close(einsum_attention(q, k, v, scale=0.3), F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_einsum_attention_gradients():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda q, k, v: einsum_attention(q, k, v, is_causal=True), (q, k, v))
    einsum_attention(q, k, v).square().sum().backward()
    ours = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v).square().sum().backward()
    for mine, theirs in zip(ours, (q.grad, k.grad, v.grad), strict=True):
        torch.testing.assert_close(mine, theirs)


def test_einsum_attention_refuses_bad_inputs():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match=r"query must be 4-D, got shape \(2, 4, 8\)"):
        einsum_attention(q[0], q, q)
    with pytest.raises(ValueError, match="key must have shape"):
        einsum_attention(q, torch.randn(1, 3, 4, 8), q)
    with pytest.raises(ValueError, match="value must have shape"):
        einsum_attention(q, q, torch.randn(1, 2, 5, 8))
    with pytest.raises(TypeError, match="value must be a torch.Tensor, got list"):
        einsum_attention(q, q, [1.0])


# A whole multi-head attention in einsums.


def _mha(C, h, bias, dtype, seed):
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(C, h, bias=bias, batch_first=True, dtype=dtype)
    # Biases start at zero in PyTorch; give them values so a forgotten bias cannot pass unnoticed.
    if bias:
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    weights = (mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias)
    return mha, weights


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize(("B", "L", "S", "C", "h"), [(2, 5, 5, 12, 3), (1, 1, 1, 4, 1), (3, 4, 6, 8, 4), (2, 6, 2, 6, 2)])
def test_multi_head_attention_matches_matmul_and_torch(B, L, S, C, h, is_causal, bias, dtype):
    mha, weights = _mha(C, h, bias, dtype, seed=L + S)
    g = torch.Generator().manual_seed(C)
    query = torch.randn(B, L, C, generator=g, dtype=dtype)
    key, value = (torch.randn(B, S, C, generator=g, dtype=dtype) for _ in range(2))
    mask = ~causal_mask(L, S) if is_causal else None  # nn.MultiheadAttention: True = hidden
    with torch.no_grad():
        theirs, _ = mha(query, key, value, attn_mask=mask, need_weights=False)
        ours = einsum_multi_head_attention(query, key, value, h, *weights, is_causal=is_causal)
        matmul = matmul_multi_head_attention(query, key, value, h, *weights, is_causal=is_causal)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours, matmul)


def test_multi_head_attention_gradients_match_torch():
    mha, weights = _mha(8, 2, True, torch.float64, seed=0)
    x = torch.randn(2, 4, 8, dtype=torch.float64, requires_grad=True)
    theirs, _ = mha(x, x, x, attn_mask=~causal_mask(4), need_weights=False)
    expected = torch.autograd.grad(theirs.square().sum(), (x, *weights))
    ours = einsum_multi_head_attention(x, x, x, 2, *weights, is_causal=True)
    got = torch.autograd.grad(ours.square().sum(), (x, *weights))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_multi_head_attention_refuses_bad_arguments():
    x, w_in, w_out = torch.randn(2, 3, 8), torch.randn(24, 8), torch.randn(8, 8)
    with pytest.raises(ValueError, match="num_heads must divide the embedding size C=8, got num_heads=3"):
        einsum_multi_head_attention(x, x, x, 3, w_in, None, w_out, None)
    with pytest.raises(ValueError, match=r"in_proj_weight must have shape \(24, 8\), got \(8, 8\)"):
        einsum_multi_head_attention(x, x, x, 2, w_out, None, w_out, None)
    with pytest.raises(ValueError, match=r"in_proj_bias must have shape \(24,\), got \(8,\)"):
        matmul_multi_head_attention(x, x, x, 2, w_in, torch.zeros(8), w_out, None)
    with pytest.raises(TypeError, match="out_proj_weight must be a torch.Tensor, got NoneType"):
        einsum_multi_head_attention(x, x, x, 2, w_in, None, None, None)
    with pytest.raises(ValueError, match="query, key and value must be"):
        einsum_multi_head_attention(x, x, torch.randn(2, 4, 8), 2, w_in, None, w_out, None)


def test_swapped_score_letters_are_the_transpose_and_break_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 4, 8, generator=g) for _ in range(3))
    right = torch.einsum("bhqd,bhkd->bhqk", q, k)
    wrong = torch.einsum("bhqd,bhkd->bhkq", q, k)
    assert torch.equal(wrong, right.transpose(-2, -1))
    out = torch.einsum("bhqk,bhkd->bhqd", torch.softmax(wrong / 8**0.5, dim=-1), v)
    assert not torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-3)


def test_gqa_checker_passes_the_solution_and_rejects_wrong_attempts():
    assert check_grouped_query_attention_scores(grouped_query_attention_scores) is None

    def tiled(query, key):  # repeat tiles the key heads: query head i meets key head i % Hkv
        return query @ key.repeat(1, query.size(1) // key.size(1), 1, 1).transpose(-2, -1)

    def scaled(query, key):
        return grouped_query_attention_scores(query, key) / query.size(-1) ** 0.5

    def silent(query, key):  # right values, but never refuses a head count that does not divide
        return query @ key.repeat_interleave(max(query.size(1) // key.size(1), 1), dim=1).transpose(-2, -1)

    for attempt, match in ((tiled, "repeat_interleave, not repeat"), (scaled, "no scaling"), (silent, "raise ValueError")):
        with pytest.raises(AssertionError, match=match):
            check_grouped_query_attention_scores(attempt)


def test_gqa_solution_agrees_with_torch_enable_gqa():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 6, 3, 4, generator=g), torch.randn(2, 2, 5, 4, generator=g), torch.randn(2, 2, 5, 4, generator=g)
    weights = torch.softmax(grouped_query_attention_scores(q, k) / 2, dim=-1)
    expected = F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1))
    torch.testing.assert_close(weights @ v.repeat_interleave(3, 1), expected)
    with pytest.raises(ValueError, match="with Hkv dividing Hq=6"):
        grouped_query_attention_scores(q, torch.randn(2, 4, 5, 4))
