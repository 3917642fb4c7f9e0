"""The proof that the lesson's multi-head attention equals PyTorch's: init, state, outputs, weights, gradients, masks."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from torchenstein.tensors.metamorphosis import split_heads
from torchenstein.transformers.attention import (
    causal_mask,
    einsum_multi_head_attention,
    scaled_dot_product_attention,
)
from torchenstein.transformers.multihead import (
    KV_CACHE_EXAMPLE,
    KV_HEADS,
    MultiheadAttention,
    allocate_kv_cache,
    causal_padding_mask,
    check_causal_padding_mask,
    check_mean_pool_kv_heads,
    fast_path_taken,
    grouped_query_attention,
    heads_cost,
    kv_cache_bytes,
    mean_pool_kv_heads,
    plot_heads,
    plot_kv_cache_memory,
    sdpa_supports_gqa,
    tensor_bytes,
)

E, H, B, L, S = 8, 2, 3, 4, 6
KINDS = ("self", "shared_kv", "cross")
# Every mask PyTorch takes, alone and in pairs of the same type (PyTorch deprecates mixing bool and float).
MASKS = (
    (None, None),
    ("bool2", None),
    ("float2", None),
    ("bool3", None),
    ("float3", None),
    (None, "bool"),
    (None, "float"),
    ("bool2", "bool"),
    ("float3", "float"),
)


def _pair(bias=True, batch_first=True, dtype=torch.float32, dropout=0.0, num_heads=H, embed_dim=E, seed=0):
    """Our module and PyTorch's, with the same random parameters (biases away from zero)."""
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype)
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=dtype))
    ours = MultiheadAttention(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _inputs(kind, batch_first, dtype, Lq=L, Sk=S, batch=B, seed=1):
    """(query, key, value) with the identities that `kind` names: one tensor, a shared memory, or three."""
    g = torch.Generator().manual_seed(seed)

    def make(T):
        shape = (batch, T, E) if batch_first else (T, batch, E)
        return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)

    x = make(Lq)
    if kind == "self":
        return x, x, x
    memory = make(Sk)
    return (x, memory, memory) if kind == "shared_kv" else (x, memory, make(Sk))


def _masks(attn, padding, Lq, Sk, dtype, batch=B, num_heads=H, seed=2):
    g = torch.Generator().manual_seed(seed)
    masks = {}
    if attn is not None:
        shape = (Lq, Sk) if attn.endswith("2") else (batch * num_heads, Lq, Sk)
        if attn.startswith("bool"):
            mask = torch.rand(shape, generator=g) > 0.6
            mask[..., 0] = False  # every query keeps key 0, so no row is fully hidden
        else:
            mask = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        masks["attn_mask"] = mask
    if padding == "bool":
        mask = torch.rand(batch, Sk, generator=g) > 0.5
        mask[:, 0] = False
        masks["key_padding_mask"] = mask
    elif padding == "float":
        masks["key_padding_mask"] = torch.randn(batch, Sk, generator=g, dtype=torch.float64).to(dtype)
    return masks


def _with_grads(module, inputs, dtype, **kwargs):
    """Run forward and backward on fresh leaves that keep the inputs' identities; return everything."""
    leaves = {}
    fresh = [leaves.setdefault(id(t), t.detach().clone().requires_grad_()) for t in inputs]
    module.zero_grad()
    out, weights = module(*fresh, **kwargs)
    g = torch.Generator().manual_seed(7)
    out.backward(torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype))
    return out, weights, [t.grad for t in leaves.values()], [p.grad for p in module.parameters()]


# ------------------------------------------------------------------------------------------------ init, state


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("embed_dim, num_heads", [(8, 2), (12, 3), (16, 1), (6, 6)])
def test_init_is_bitwise_pytorchs_and_state_dict_moves_both_ways(embed_dim, num_heads, bias, dtype):
    torch.manual_seed(3)
    ours = MultiheadAttention(embed_dim, num_heads, bias=bias, dtype=dtype)
    after_ours = torch.rand(1)
    torch.manual_seed(3)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, dtype=dtype)
    assert torch.equal(after_ours, torch.rand(1)), "both must draw the same count of random numbers"
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert a.dtype == b.dtype == dtype and torch.equal(a, b), name
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    fresh = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, dtype=dtype)
    fresh.load_state_dict(ours.state_dict(), strict=True)
    for a, b in zip(fresh.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert ours.head_dim == theirs.head_dim and ours.dropout == theirs.dropout
    assert ours.batch_first == theirs.batch_first and ours._qkv_same_embed_dim


def test_meta_device_and_dtype_arguments():
    mha = MultiheadAttention(16, 4, device="meta", dtype=torch.float64)
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in mha.parameters())


# ------------------------------------------------------------------------------------------------ the core proof


@pytest.mark.parametrize("attn, padding", MASKS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_bitwise_equal_in_training_mode(kind, attn, padding):
    """The weight-computing path: outputs and weights bit for bit, every layout, bias, dtype and weight mode."""
    for batch_first, bias, dtype in itertools.product((True, False), (True, False), (torch.float32, torch.float64)):
        ours, theirs = _pair(bias=bias, batch_first=batch_first, dtype=dtype)
        inputs = _inputs(kind, batch_first, dtype)
        Sk = L if kind == "self" else S
        masks = _masks(attn, padding, L, Sk, dtype)
        for need_weights, average in ((True, True), (True, False), (False, True)):
            with torch.no_grad():
                got = ours(*inputs, need_weights=need_weights, average_attn_weights=average, **masks)
                want = theirs(*inputs, need_weights=need_weights, average_attn_weights=average, **masks)
            where = f"batch_first={batch_first}, bias={bias}, {dtype}, need_weights={need_weights}, avg={average}"
            assert got[0].shape == want[0].shape and got[0].dtype == dtype, where
            if need_weights:
                assert got[1].shape == want[1].shape, where
                assert torch.equal(got[0], want[0]), where
                assert torch.equal(got[1], want[1]), where
            else:
                # PyTorch then calls its fused scaled_dot_product_attention: equal to float tolerance.
                assert got[1] is None and want[1] is None
                torch.testing.assert_close(got[0], want[0], msg=where)


@pytest.mark.parametrize("attn, padding", [(None, None), ("bool2", "bool"), ("float3", "float"), ("bool3", None)])
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_inputs_bitwise_parameters_to_tolerance(kind, attn, padding):
    for batch_first, bias, dtype in itertools.product((True, False), (True, False), (torch.float32, torch.float64)):
        ours, theirs = _pair(bias=bias, batch_first=batch_first, dtype=dtype, seed=4)
        inputs = _inputs(kind, batch_first, dtype, seed=5)
        masks = _masks(attn, padding, L, L if kind == "self" else S, dtype, seed=6)
        for need_weights in (True, False):
            got = _with_grads(ours, inputs, dtype, need_weights=need_weights, **masks)
            want = _with_grads(theirs, inputs, dtype, need_weights=need_weights, **masks)
            where = f"batch_first={batch_first}, bias={bias}, {dtype}, need_weights={need_weights}"
            for a, b in zip(got[2], want[2], strict=True):  # input gradients
                if need_weights:
                    assert torch.equal(a, b), where
                torch.testing.assert_close(a, b, msg=where)
            # Parameter gradients sum over tokens in (b, t) order here and (t, b) order in PyTorch.
            for a, b in zip(got[3], want[3], strict=True):
                torch.testing.assert_close(a, b, msg=where)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_eval_mode_with_grad_and_dropout_zero_in_train_mode(kind, batch_first):
    """Eval mode outside the fast path (gradients on) is the same computation; dropout=0 drops nothing."""
    for dtype in (torch.float32, torch.float64):
        ours, theirs = _pair(batch_first=batch_first, dtype=dtype, dropout=0.0)
        inputs = _inputs(kind, batch_first, dtype)
        masks = _masks("bool2", "bool", L, L if kind == "self" else S, dtype)
        ours.eval(), theirs.eval()
        got = _with_grads(ours, inputs, dtype, **masks)
        want = _with_grads(theirs, inputs, dtype, **masks)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        ours.train(), theirs.train()
        assert torch.equal(ours(*inputs, **masks)[0], got[0])


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_attention_dropout_draws_the_same_numbers_as_pytorch(kind, batch_first):
    ours, theirs = _pair(batch_first=batch_first, dropout=0.4)
    inputs = _inputs(kind, batch_first, torch.float32)
    torch.manual_seed(11)
    got = ours(*inputs, average_attn_weights=False)
    torch.manual_seed(11)
    want = theirs(*inputs, average_attn_weights=False)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert (got[1] == 0).any(), "with p=0.4 some weights must be dropped"
    ours.eval()
    assert not (ours(*inputs, average_attn_weights=False)[1] == 0).any(), "no dropout in eval mode"
    # need_weights=False: PyTorch's fused kernel draws its own random numbers; only the statistics agree.
    torch.manual_seed(12)
    assert ours.train()(*inputs, need_weights=False)[0].shape == got[0].shape


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("attn, padding", [(None, None), ("bool2", None), ("bool3", "bool"), ("float3", "float"),
                                           (None, "float")])
def test_unbatched_inputs(attn, padding, batch_first):
    for kind, dtype, average in itertools.product(KINDS, (torch.float32, torch.float64), (True, False)):
        ours, theirs = _pair(batch_first=batch_first, dtype=dtype)
        inputs = [t[0] if batch_first else t[:, 0] for t in _inputs(kind, batch_first, dtype)]
        if kind == "self":
            inputs = [inputs[0]] * 3
        elif kind == "shared_kv":
            inputs[2] = inputs[1]
        Sk = inputs[1].size(0)
        masks = _masks(attn, padding, L, Sk, dtype, batch=1)
        masks = {name: m[0] if name == "key_padding_mask" else m for name, m in masks.items()}
        got = _with_grads(ours, inputs, dtype, average_attn_weights=average, **masks)
        want = _with_grads(theirs, inputs, dtype, average_attn_weights=average, **masks)
        assert got[0].shape == want[0].shape == (L, E)
        assert got[1].shape == want[1].shape == ((L, Sk) if average else (H, L, Sk))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        for a, b in zip(got[2] + got[3], want[2] + want[3], strict=True):
            torch.testing.assert_close(a, b)


def test_batch_first_is_a_transpose():
    ours, _ = _pair(batch_first=True)
    seq_first = MultiheadAttention(E, H)
    seq_first.load_state_dict(ours.state_dict())
    x = torch.randn(B, L, E)
    memory = torch.randn(B, S, E)
    a = ours(x, memory, memory, average_attn_weights=False)
    b = seq_first(x.transpose(0, 1), memory.transpose(0, 1), memory.transpose(0, 1), average_attn_weights=False)
    assert torch.equal(a[0], b[0].transpose(0, 1)) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("bias", [True, False])
def test_module_equals_the_attention_lessons_einsum_multi_head_attention(bias):
    """The lesson's claim: the module computes what the previous lesson's einsums compute."""
    for embed_dim, num_heads, Lq, Sk, batch in ((12, 3, 5, 7, 2), (8, 8, 1, 1, 1), (6, 1, 4, 4, 3), (8, 2, 3, 5, 0)):
        ours, _ = _pair(bias=bias, embed_dim=embed_dim, num_heads=num_heads, dtype=torch.float64)
        x = torch.randn(batch, Lq, embed_dim, dtype=torch.float64)
        memory = torch.randn(batch, Sk, embed_dim, dtype=torch.float64)
        params = (ours.in_proj_weight, ours.in_proj_bias, ours.out_proj.weight, ours.out_proj.bias)
        with torch.no_grad():
            torch.testing.assert_close(ours(x, memory, memory, need_weights=False)[0],
                                       einsum_multi_head_attention(x, memory, memory, num_heads, *params))
            torch.testing.assert_close(ours(x, x, x, attn_mask=~causal_mask(Lq))[0],
                                       einsum_multi_head_attention(x, x, x, num_heads, *params, is_causal=True))


def test_longer_sequences_more_heads_and_empty_batch():
    for embed_dim, num_heads, Lq, Sk, batch in ((32, 4, 9, 13, 2), (16, 16, 1, 1, 1), (12, 3, 1, 7, 3), (8, 2, 3, 5, 0)):
        ours, theirs = _pair(embed_dim=embed_dim, num_heads=num_heads, dtype=torch.float64)
        x, memory = torch.randn(batch, Lq, embed_dim, dtype=torch.float64), torch.randn(batch, Sk, embed_dim, dtype=torch.float64)
        got, want = ours(x, memory, memory), theirs(x, memory, memory)
        assert got[0].shape == want[0].shape and got[1].shape == want[1].shape
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_agrees_to_half_precision_tolerance(dtype):
    """Not bitwise: PyTorch's baddbmm adds the mask before rounding, and other roundings differ."""
    for batch_first, kind in itertools.product((True, False), KINDS):
        ours, theirs = _pair(batch_first=batch_first, dtype=dtype)
        inputs = _inputs(kind, batch_first, dtype)
        masks = _masks("bool2", "bool", L, L if kind == "self" else S, dtype)
        for need_weights in (True, False):
            got = _with_grads(ours, inputs, dtype, need_weights=need_weights, **masks)
            want = _with_grads(theirs, inputs, dtype, need_weights=need_weights, **masks)
            assert got[0].dtype == dtype
            torch.testing.assert_close(got[0], want[0], atol=2e-2, rtol=2e-2)
            if need_weights:
                torch.testing.assert_close(got[1], want[1], atol=1e-2, rtol=2e-2)
            # Gradients: within 5% of each tensor's largest entry.
            for a, b in zip(got[2] + got[3], want[2] + want[3], strict=True):
                assert (a.float() - b.float()).abs().max() <= 0.05 * b.float().abs().max()


# ------------------------------------------------------------------------------------------------ the fast path


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("masks", ["none", "padding", "causal", "both", "per_head"])
def test_fast_path_is_taken_and_agrees(masks, dtype):
    ours, theirs = _pair(dtype=dtype)
    ours.eval(), theirs.eval()
    x = torch.randn(B, L, E, dtype=dtype)
    kwargs = {}
    if masks in ("padding", "both"):
        kwargs["key_padding_mask"] = torch.tensor([[False] * L, [False, False, True, True], [False, True, True, True]])
    if masks in ("causal", "both"):
        kwargs["attn_mask"] = ~causal_mask(L)
    if masks == "per_head":
        kwargs["attn_mask"] = _masks("bool3", None, L, L, dtype)["attn_mask"]
    for need_weights, average in ((True, True), (True, False), (False, True)):
        with torch.no_grad():
            assert fast_path_taken(theirs, x, x, x, need_weights=need_weights, **kwargs)
            got = ours(x, x, x, need_weights=need_weights, average_attn_weights=average, **kwargs)
            want = theirs(x, x, x, need_weights=need_weights, average_attn_weights=average, **kwargs)
        if masks == "none":
            assert torch.equal(got[0], want[0])
        torch.testing.assert_close(got[0], want[0])
        if need_weights:
            assert got[1].shape == want[1].shape
            torch.testing.assert_close(got[1], want[1])


def test_fast_path_conditions():
    ours, theirs = _pair()
    theirs.eval()
    x, memory = torch.randn(B, L, E), torch.randn(B, S, E)
    with torch.no_grad():
        assert fast_path_taken(theirs, x, x, x)
        assert not fast_path_taken(theirs, x, memory, memory), "cross-attention"
        assert not fast_path_taken(theirs, x, x.clone(), x.clone()), "the same values are not the same tensor"
        assert not fast_path_taken(theirs, x[0], x[0], x[0]), "unbatched"
        assert not fast_path_taken(theirs, x, x, x, attn_mask=torch.zeros(L, L)), "float mask"
        assert not fast_path_taken(theirs.train(), x, x, x), "training mode"
        theirs.eval()
        for module in (_pair(bias=False)[1], _pair(num_heads=1)[1], _pair(batch_first=False)[1]):
            assert not fast_path_taken(module.eval(), x, x, x)
    assert not fast_path_taken(theirs, x.requires_grad_(), x, x), "gradients needed"


def test_fully_masked_rows_ours_give_the_output_bias_pytorch_gives_nan():
    """Where it differs: an all-padding sequence. Ours: zero weights, output = out_proj.bias, finite grads."""
    ours, theirs = _pair(dtype=torch.float64)
    x = torch.randn(B, L, E, dtype=torch.float64)
    empty = torch.tensor([[False] * L, [True] * L, [False, True, True, True]])
    bias_row = ours.out_proj.bias.detach().expand(L, E)
    got = _with_grads(ours, (x, x, x), torch.float64, key_padding_mask=empty)
    assert torch.equal(got[0][1], bias_row) and torch.equal(got[1][1], torch.zeros(L, L, dtype=torch.float64))
    assert all(torch.isfinite(g).all() for g in got[2] + got[3])
    with torch.no_grad():
        slow, slow_weights = theirs(x, x, x, key_padding_mask=empty)  # training mode: the weight path
        sdpa, _ = theirs(x, x, x, key_padding_mask=empty, need_weights=False)
        theirs.eval()
        assert fast_path_taken(theirs, x, x, x, key_padding_mask=empty)
        fast, _ = theirs(x, x, x, key_padding_mask=empty)
    assert slow[1].isnan().all() and slow_weights[1].isnan().all()
    assert not fast.is_nested
    if fast.device.type == "cpu":
        assert fast[1].isnan().all()
    if torch.isfinite(sdpa[1]).all():  # recent releases; older ones gave NaN here too
        torch.testing.assert_close(sdpa[1], bias_row)
    for other in (slow, sdpa, fast):  # the other sequences agree
        torch.testing.assert_close(got[0][[0, 2]].detach(), other[[0, 2]])


def test_is_causal_is_a_hint_that_needs_the_mask():
    ours, theirs = _pair()
    x = torch.randn(B, L, E)
    with pytest.raises(ValueError, match="is_causal=True is only a hint"):
        ours(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        theirs(x, x, x, is_causal=True)
    causal = ~causal_mask(L)
    for need_weights in (True, False):
        torch.testing.assert_close(ours(x, x, x, attn_mask=causal, is_causal=True, need_weights=need_weights)[0],
                                   theirs(x, x, x, attn_mask=causal, is_causal=True, need_weights=need_weights)[0])
    # Where it differs: with need_weights=False and no padding mask PyTorch trusts the hint over the mask.
    not_causal = torch.zeros(L, L, dtype=torch.bool)
    not_causal[:, 1] = True
    hinted = theirs(x, x, x, attn_mask=not_causal, is_causal=True, need_weights=False)[0]
    torch.testing.assert_close(hinted, theirs(x, x, x, attn_mask=causal, need_weights=False)[0])
    torch.testing.assert_close(ours(x, x, x, attn_mask=not_causal, is_causal=True)[0],
                               theirs(x, x, x, attn_mask=not_causal)[0])


def test_fast_path_accepts_is_causal_alone_and_masks_nothing():
    """Where it differs: PyTorch's fast path takes the hint without a mask and applies none; ours refuses."""
    ours, theirs = _pair()
    theirs.eval()
    x = torch.randn(B, L, E)
    with torch.no_grad():
        assert fast_path_taken(theirs, x, x, x, is_causal=True)
        hinted, plain = theirs(x, x, x, is_causal=True)[0], theirs(x, x, x)[0]
        causal = theirs(x, x, x, attn_mask=~causal_mask(L))[0]
    torch.testing.assert_close(hinted, plain)
    assert not torch.allclose(hinted, causal)
    with pytest.raises(ValueError, match="is_causal=True is only a hint"):
        ours.eval()(x, x, x, is_causal=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_contiguous_inputs_are_bitwise_equal(dtype):
    ours, theirs = _pair(dtype=dtype)
    g = torch.Generator().manual_seed(3)
    strided = torch.randn(B, L, 2 * E, generator=g, dtype=torch.float64).to(dtype)[..., ::2]  # a strided view
    swapped = torch.randn(L, B, E, generator=g, dtype=torch.float64).to(dtype).transpose(0, 1)
    memory = torch.randn(S, B, E, generator=g, dtype=torch.float64).to(dtype).transpose(0, 1)
    for q, k, v in ((strided, strided, strided), (swapped, swapped, swapped), (swapped, memory, memory)):
        assert not q.is_contiguous()
        mask = ~causal_mask(L, k.size(1))
        for got, want in zip(ours(q, k, v, attn_mask=mask), theirs(q, k, v, attn_mask=mask), strict=True):
            assert torch.equal(got, want)


def test_works_inside_a_pytorch_transformer_layer():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.0, batch_first=True)
    x = torch.randn(B, L, E)
    want = layer(x, src_mask=~causal_mask(L))
    ours = MultiheadAttention(E, H, batch_first=True)
    ours.load_state_dict(layer.self_attn.state_dict())
    layer.self_attn = ours
    torch.testing.assert_close(layer(x, src_mask=~causal_mask(L)), want)


# ------------------------------------------------------------------------------------------------ cost


def test_heads_cost_does_not_depend_on_the_number_of_heads():
    costs = [heads_cost(48, h, seq_len=10, batch_size=2) for h in (1, 4, 48)]
    assert all(c == costs[0] for c in costs)
    assert costs[0]["params"] == 4 * 48 * 48 + 4 * 48
    assert costs[0]["flops"] == 2 * (4 * 2 * 10 * 48 * 48 + 2 * 2 * 10 * 10 * 48)
    from torch.utils.flop_counter import FlopCounterMode

    theirs = nn.MultiheadAttention(48, 4, batch_first=True)
    x = torch.randn(2, 10, 48)
    with FlopCounterMode(display=False) as counter:
        theirs(x, x, x)
    assert counter.get_total_flops() == costs[0]["flops"]


# ------------------------------------------------------------------------------------------------ GQA


GQA_SHAPES = [((2,), 8, 2, 5, 5, 16, 16), ((2,), 6, 3, 3, 7, 4, 8), ((1,), 4, 1, 4, 4, 8, 8), ((2,), 4, 4, 3, 3, 4, 4),
              ((), 6, 2, 2, 5, 4, 3), ((2, 3), 4, 2, 3, 3, 4, 4)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch, Hq, Hkv, Lq, Sk, d, d_v", GQA_SHAPES)
def test_grouped_query_attention_equals_sdpa(batch, Hq, Hkv, Lq, Sk, d, d_v, dtype):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(*batch, Hq, Lq, d, generator=g, dtype=dtype)
    k = torch.randn(*batch, Hkv, Sk, d, generator=g, dtype=dtype)
    v = torch.randn(*batch, Hkv, Sk, d_v, generator=g, dtype=dtype)
    group = Hq // Hkv
    k_rep, v_rep = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
    bool_mask = torch.rand(Lq, Sk, generator=g) > 0.5
    bool_mask[:, 0] = True
    for kwargs in ({}, {"is_causal": True}, {"scale": 0.3}, {"attn_mask": bool_mask},
                   {"attn_mask": torch.randn(Hq, Lq, Sk, generator=g, dtype=dtype)}):
        ours = grouped_query_attention(q, k, v, **kwargs)
        torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k_rep, v_rep, **kwargs))
        if sdpa_supports_gqa() and len(batch) == 1:  # PyTorch's enable_gqa wants (B, H, T, d)
            torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **kwargs))
    if Hkv == Hq:
        torch.testing.assert_close(grouped_query_attention(q, k, v), scaled_dot_product_attention(q, k, v))


@pytest.mark.skipif(not sdpa_supports_gqa(), reason="enable_gqa needs torch >= 2.5")
def test_grouped_query_attention_gradients_match_enable_gqa():
    g = torch.Generator().manual_seed(1)
    tensors = [torch.randn(1, h, 3, 4, generator=g, dtype=torch.float64) for h in (4, 2, 2)]
    grads = []
    for fn in (grouped_query_attention, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)):
        leaves = [t.clone().requires_grad_() for t in tensors]
        fn(*leaves).sum().backward()
        grads.append([t.grad for t in leaves])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    q, k, v = (t.clone().requires_grad_() for t in tensors)
    assert torch.autograd.gradcheck(grouped_query_attention, (q, k, v))


def test_sdpa_supports_gqa_matches_the_version():
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    assert sdpa_supports_gqa() == ((major, minor) >= (2, 5))


def test_grouped_query_attention_errors():
    q, k = torch.randn(1, 6, 2, 4), torch.randn(1, 4, 2, 4)
    with pytest.raises(ValueError, match="dividing query's Hq=6"):
        grouped_query_attention(q, k, k)
    with pytest.raises(ValueError, match="at least 3 dims"):
        grouped_query_attention(q[0, 0], k[0, 0], k[0, 0])
    with pytest.raises(TypeError, match="key must be a torch.Tensor"):
        grouped_query_attention(q, [1.0], k)


# ------------------------------------------------------------------------------------------------ KV cache


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8])
def test_kv_cache_formula_equals_measured_bytes(dtype):
    for layers, heads, d, T, batch in ((1, 1, 1, 1, 1), (2, 4, 8, 16, 3), (3, 2, 16, 7, 2)):
        formula = kv_cache_bytes(layers, heads, d, T, batch, dtype=dtype)
        cache = allocate_kv_cache(layers, heads, d, T, batch, dtype=dtype)
        assert len(cache) == layers and all(t.shape == (batch, heads, T, d) and t.dtype == dtype for kv in cache for t in kv)
        assert tensor_bytes(cache) == formula == 2 * layers * heads * d * T * batch * torch.empty(0, dtype=dtype).element_size()
        assert tensor_bytes(allocate_kv_cache(layers, heads, d, T, batch, dtype=dtype, device="meta")) == formula


def test_kv_cache_of_the_example_shrinks_by_the_group_size():
    mha = kv_cache_bytes(num_kv_heads=KV_HEADS["MHA"], **KV_CACHE_EXAMPLE)
    assert mha == 2 * 2**30
    for name, heads in KV_HEADS.items():
        assert kv_cache_bytes(num_kv_heads=heads, **KV_CACHE_EXAMPLE) * (KV_HEADS["MHA"] // heads) == mha, name


def test_kv_cache_errors():
    with pytest.raises(ValueError, match="num_kv_heads must be a positive int, got 0"):
        kv_cache_bytes(2, 0, 8, 16)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        kv_cache_bytes(2, 1, 8, 16, dtype="bf16")
    with pytest.raises(ValueError, match="seq_len"):
        allocate_kv_cache(2, 1, 8, 1.5)


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"kdim": 4}, ValueError, "kdim must be None or embed_dim=8"),
        ({"vdim": 3}, ValueError, "vdim must be None or embed_dim=8"),
        ({"add_bias_kv": True}, ValueError, "add_bias_kv=True is not built here"),
        ({"add_zero_attn": True}, ValueError, "add_zero_attn=True is not built here"),
        ({"num_heads": 3}, ValueError, "num_heads must divide embed_dim=8, got num_heads=3"),
        ({"num_heads": 0}, ValueError, "num_heads must be a positive int, got 0"),
        ({"dropout": 1.5}, ValueError, r"dropout must be a number in \[0, 1\], got 1.5"),
        ({"bias": 1}, TypeError, "bias must be a bool, got 1"),
        ({"batch_first": "yes"}, TypeError, "batch_first must be a bool"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    arguments = {"embed_dim": 8, "num_heads": 2, **kwargs}
    with pytest.raises(error, match=message):
        MultiheadAttention(**arguments)
    assert MultiheadAttention(8, 2, kdim=8, vdim=8).kdim == 8


def test_forward_errors():
    mha = MultiheadAttention(E, H, batch_first=True)
    x, memory = torch.randn(B, L, E), torch.randn(B, S, E)
    cases = [
        ((x.double(), x, x), {}, TypeError, "query must have the parameters' dtype torch.float32"),
        ((x, [1.0], x), {}, TypeError, "key must be a torch.Tensor"),
        ((x[None], x, x), {}, ValueError, "query must be 3-D .batched. or 2-D"),
        ((x, x[..., :4], x[..., :4]), {}, ValueError, "key must be 3-D like query with embed_dim=8 features"),
        ((x, memory, x), {}, ValueError, "key and value must have the same shape"),
        ((x, memory[:2], memory[:2]), {}, ValueError, "the same batch size in dim 0"),
        ((x, x, x), {"key_padding_mask": torch.zeros(B, L + 1, dtype=torch.bool)}, ValueError,
         r"key_padding_mask must have shape \(B, S\) = \(3, 4\)"),
        ((x, x, x), {"attn_mask": torch.zeros(B, L, L, dtype=torch.bool)}, ValueError,
         r"attn_mask must have shape \(L, S\) = \(4, 4\) or \(B \* num_heads, L, S\) = \(6, 4, 4\)"),
        ((x, x, x), {"attn_mask": torch.zeros(L, L, dtype=torch.int64)}, TypeError,
         "attn_mask must be a bool or floating-point tensor, got dtype torch.int64"),
        ((x, x, x), {"key_padding_mask": [0, 1]}, TypeError, "key_padding_mask must be a torch.Tensor or None"),
        ((x, x, x), {"is_causal": 1}, TypeError, "is_causal must be a bool"),
        ((x[0], x[0], x[0]), {"key_padding_mask": torch.zeros(1, L, dtype=torch.bool)}, ValueError,
         r"key_padding_mask must have shape \(S,\) = \(4,\)"),
    ]
    for args, kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            mha(*args, **kwargs)


# ------------------------------------------------------------------------------------------------ figures, challenges


def test_figures():
    fig = plot_heads()
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert len(plot_heads(num_heads=2, embed_dim=8).axes) == 3
    state = torch.random.get_rng_state()
    plot_heads(sentence="a b")
    assert torch.equal(state, torch.random.get_rng_state()), "plot_heads must leave the global generator alone"
    fig = plot_kv_cache_memory()
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == len(KV_HEADS)


def test_challenge_solutions_pass_their_checkers():
    check_causal_padding_mask(causal_padding_mask)
    check_mean_pool_kv_heads(mean_pool_kv_heads)


def test_causal_padding_mask_checker_rejects_wrong_attempts():
    def wrong_polarity(key_padding_mask, num_heads, dtype=torch.float32):
        return causal_padding_mask(~key_padding_mask, num_heads, dtype)

    def wrong_head_order(key_padding_mask, num_heads, dtype=torch.float32):
        # repeat puts the sequences, not the heads, next to each other: row b + B * i.
        hidden = ~causal_mask(key_padding_mask.size(1)) | key_padding_mask[:, None, :]
        hidden = hidden.repeat(num_heads, 1, 1)
        return torch.zeros(hidden.shape, dtype=dtype).masked_fill(hidden, float("-inf"))

    def ignores_dtype(key_padding_mask, num_heads, dtype=torch.float32):
        return causal_padding_mask(key_padding_mask, num_heads)

    for attempt, hint in ((wrong_polarity, "True in the padding mask means hidden"), (wrong_head_order, "head"),
                          (ignores_dtype, "dtype argument is ignored")):
        with pytest.raises(AssertionError, match=hint):
            check_causal_padding_mask(attempt)


def test_causal_padding_mask_equals_both_masks_in_our_module_too():
    ours, theirs = _pair()
    x = torch.randn(B, L, E)
    padding = torch.tensor([[False] * L, [False, False, True, True], [False, True, True, True]])
    merged = causal_padding_mask(padding, H)
    both = {"attn_mask": ~causal_mask(L), "key_padding_mask": padding}
    torch.testing.assert_close(ours(x, x, x, attn_mask=merged), theirs(x, x, x, **both))
    with pytest.raises(TypeError, match="must be a bool tensor"):
        causal_padding_mask(padding.float(), H)


def test_mean_pool_kv_heads_checker_rejects_wrong_attempts():
    def strided_groups(weight, num_heads, num_kv_heads):
        # Heads i, i + Hkv, ... pooled together: the `repeat` convention, not `repeat_interleave`.
        d = weight.size(0) // num_heads
        grouped = weight.reshape(num_heads // num_kv_heads, num_kv_heads, d, *weight.shape[1:])
        return grouped.mean(dim=0).reshape(num_kv_heads * d, *weight.shape[1:])

    def no_check(weight, num_heads, num_kv_heads):
        return weight[: weight.size(0) * num_kv_heads // num_heads]

    for attempt in (strided_groups, no_check):
        with pytest.raises(AssertionError):
            check_mean_pool_kv_heads(attempt)


def test_mean_pooled_gqa_equals_mha_when_group_heads_agree():
    """Pooling K/V heads that are equal within each group turns MHA into GQA without changing a thing."""
    torch.manual_seed(0)
    Ex, Hq, Hkv, d = 16, 4, 2, 4
    w_k_shared = torch.randn(Hkv, d, Ex).repeat_interleave(Hq // Hkv, dim=0).reshape(Hq * d, Ex)
    w_v_shared = torch.randn(Hkv, d, Ex).repeat_interleave(Hq // Hkv, dim=0).reshape(Hq * d, Ex)
    w_q, x = torch.randn(Hq * d, Ex), torch.randn(2, 5, Ex)
    q = split_heads(F.linear(x, w_q), Hq)
    full = scaled_dot_product_attention(q, split_heads(F.linear(x, w_k_shared), Hq),
                                        split_heads(F.linear(x, w_v_shared), Hq), is_causal=True)
    k = split_heads(F.linear(x, mean_pool_kv_heads(w_k_shared, Hq, Hkv)), Hkv)
    v = split_heads(F.linear(x, mean_pool_kv_heads(w_v_shared, Hq, Hkv)), Hkv)
    torch.testing.assert_close(grouped_query_attention(q, k, v, is_causal=True), full)
    with pytest.raises(ValueError, match="must divide"):
        mean_pool_kv_heads(w_k_shared, 4, 3)


# ------------------------------------------------------------------------------------------------ CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_matches_torch_on_cuda():
    for batch_first, kind in itertools.product((True, False), KINDS):
        ours, theirs = _pair(batch_first=batch_first)
        ours, theirs = ours.cuda(), theirs.cuda()
        inputs = [t.cuda() for t in _inputs(kind, batch_first, torch.float32)]
        if kind == "self":
            inputs = [inputs[0]] * 3
        elif kind == "shared_kv":
            inputs[2] = inputs[1]
        masks = {n: m.cuda() for n, m in _masks("bool2", "bool", L, L if kind == "self" else S, torch.float32).items()}
        for need_weights in (True, False):
            got = ours(*inputs, need_weights=need_weights, **masks)
            want = theirs(*inputs, need_weights=need_weights, **masks)
            torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)
        ours.eval(), theirs.eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(*inputs, **masks)[0], theirs(*inputs, **masks)[0], atol=1e-4, rtol=1e-4)
    assert math.isfinite(1.0)
