"""The proof that the lesson's Transformer blocks, stacks and whole model equal PyTorch's: init, state, outputs, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from torchenstein.transformers.block import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    check_masked_mean_pool,
    check_transformer_parameter_count,
    masked_mean_pool,
    plot_gradient_norms,
    stream_gradient_norms,
    transformer_parameter_count,
)

E, H, FF, B, T, S = 8, 2, 16, 3, 5, 6
# PyTorch warns about nested tensors (construction with batch_first=False, the prototype API in eval).
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _perturb(module, dtype, seed=1):
    """Move every parameter away from its initial value, so biases and LayerNorm gains are tested too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype))


def _layer_pair(kind, dtype=torch.float64, dropout=0.0, seed=0, **kw):
    ours_cls, theirs_cls = {"encoder": (TransformerEncoderLayer, nn.TransformerEncoderLayer),
                            "decoder": (TransformerDecoderLayer, nn.TransformerDecoderLayer)}[kind]
    torch.manual_seed(seed)
    theirs = theirs_cls(E, H, FF, dropout=dropout, dtype=dtype, **kw)
    _perturb(theirs, dtype)
    ours = ours_cls(E, H, FF, dropout=dropout, dtype=dtype, **kw)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _seq(length, batch_first, dtype, seed, batch=B):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, length, E) if batch_first else (length, batch, E)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def _masks(kind, L, K, dtype):
    """An (attn_mask, key_padding_mask) pair of one kind, in PyTorch's polarity."""
    future = torch.ones(L, K, dtype=torch.bool).triu(1)  # True = hidden
    pad = torch.arange(K) >= torch.tensor([K, K - 2, 1])[:, None]  # (B, K): sequence 2 keeps one key
    as_float = {"dtype": dtype}
    return {
        "none": (None, None),
        "causal bool": (future, None),
        "causal float": (torch.zeros(L, K, **as_float).masked_fill(future, float("-inf")), None),
        "padding bool": (None, pad),
        "padding float": (None, torch.zeros(B, K, **as_float).masked_fill(pad, float("-inf"))),
        "per head bool": (torch.rand(B * H, L, K, generator=torch.Generator().manual_seed(3)) > 0.6, None),
        "causal and padding": (future, pad),
        "additive bias": (torch.randn(L, K, generator=torch.Generator().manual_seed(4)).to(dtype), None),
    }[kind]


MASK_KINDS = ("none", "causal bool", "causal float", "padding bool", "padding float", "per head bool",
              "causal and padding", "additive bias")


def _per_head_safe(mask):
    # A per-head random mask may hide a whole row; keep key 0 for every query so no row is all hidden.
    if mask is not None and mask.dim() == 3:
        mask = mask.clone()
        mask[..., 0] = False
    return mask


def _grads(module, inputs, out):
    # A fixed random weighting of the outputs: every output element gets its own gradient.
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads = torch.autograd.grad((out * weights.to(out.dtype)).sum(), [*inputs, *module.parameters()])
    return grads[: len(inputs)], dict(zip([n for n, _ in module.named_parameters()], grads[len(inputs):],
                                          strict=True))


def _assert_same_forward_backward(ours, theirs, inputs, kwargs, **tol):
    inputs_ours = [t.detach().clone().requires_grad_(True) for t in inputs]
    inputs_theirs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out_ours, out_theirs = ours(*inputs_ours, **kwargs), theirs(*inputs_theirs, **kwargs)
    torch.testing.assert_close(out_ours, out_theirs, **tol)
    (gi_ours, gp_ours), (gi_theirs, gp_theirs) = _grads(ours, inputs_ours, out_ours), _grads(theirs, inputs_theirs,
                                                                                             out_theirs)
    torch.testing.assert_close(gi_ours, gi_theirs, **tol)
    assert gp_ours.keys() == gp_theirs.keys()
    torch.testing.assert_close(gp_ours, gp_theirs, **tol)


TIGHT = {"rtol": 1e-10, "atol": 1e-10}


# ---------------------------------------------------------------------------------------------- init, state


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_same_seed_same_weights_and_state_dict_both_ways(kind):
    ours_cls, theirs_cls = {"encoder": (TransformerEncoderLayer, nn.TransformerEncoderLayer),
                            "decoder": (TransformerDecoderLayer, nn.TransformerDecoderLayer)}[kind]
    for bias in (True, False):
        torch.manual_seed(5)
        ours = ours_cls(E, H, FF, bias=bias)
        torch.manual_seed(5)
        theirs = theirs_cls(E, H, FF, bias=bias)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
        _perturb(theirs, torch.float32)
        assert ours.load_state_dict(theirs.state_dict()) is not None
        _perturb(ours, torch.float32, seed=2)
        theirs.load_state_dict(ours.state_dict())
        for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    names = [n for n, _ in TransformerEncoderLayer(E, H).named_children()]
    assert names == ["self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"]


def test_whole_transformer_same_seed_same_weights():
    for norm_first, bias in itertools.product((False, True), (True, False)):
        torch.manual_seed(1)
        ours = Transformer(E, H, 2, 3, FF, norm_first=norm_first, bias=bias)
        torch.manual_seed(1)
        theirs = nn.Transformer(E, H, 2, 3, FF, norm_first=norm_first, bias=bias)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(),
                                                         strict=True))
        # The re-initialisation gives each layer its own matrices; the vectors stay shared.
        a, b = ours.encoder.layers
        assert not torch.equal(a.linear1.weight, b.linear1.weight)
        if bias:
            assert torch.equal(a.linear1.bias, b.linear1.bias)


def test_stacks_deep_copy_the_layer():
    layer = TransformerEncoderLayer(E, H, FF)
    encoder = TransformerEncoder(layer, 3)
    assert all(m is not layer for m in encoder.layers)
    assert all(torch.equal(m.linear1.weight, layer.linear1.weight) for m in encoder.layers)
    with torch.no_grad():
        layer.linear1.weight.zero_()
    assert not torch.equal(encoder.layers[0].linear1.weight, layer.linear1.weight)
    theirs = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, FF), 3, enable_nested_tensor=False)
    assert list(encoder.state_dict()) == list(theirs.state_dict())


# ---------------------------------------------------------------------------------------------- equality


@pytest.mark.parametrize("norm_first, activation, batch_first",
                         list(itertools.product((False, True), ("relu", "gelu"), (True, False))))
def test_encoder_layer_equals_pytorch_float64(norm_first, activation, batch_first):
    ours, theirs = _layer_pair("encoder", norm_first=norm_first, activation=activation, batch_first=batch_first)
    src = _seq(T, batch_first, torch.float64, seed=2)
    for kind in MASK_KINDS:
        attn_mask, kpm = _masks(kind, T, T, torch.float64)
        kwargs = {"src_mask": _per_head_safe(attn_mask), "src_key_padding_mask": kpm}
        _assert_same_forward_backward(ours, theirs, [src], kwargs, **TIGHT)


@pytest.mark.parametrize("norm_first, activation, batch_first",
                         list(itertools.product((False, True), ("relu", "gelu"), (True, False))))
def test_decoder_layer_equals_pytorch_float64(norm_first, activation, batch_first):
    ours, theirs = _layer_pair("decoder", norm_first=norm_first, activation=activation, batch_first=batch_first)
    tgt, memory = _seq(T, batch_first, torch.float64, seed=2), _seq(S, batch_first, torch.float64, seed=3)
    for self_kind, cross_kind in zip(MASK_KINDS, MASK_KINDS[3:] + MASK_KINDS[:3], strict=True):
        tgt_mask, tgt_kpm = _masks(self_kind, T, T, torch.float64)
        memory_mask, memory_kpm = _masks(cross_kind, T, S, torch.float64)
        if memory_mask is not None and memory_mask.dtype == torch.bool and memory_mask.dim() == 2:
            memory_mask = memory_mask.clone()
            memory_mask[:, 0] = False  # a (T, S) "causal" triangle must leave each query a key
        kwargs = {"tgt_mask": _per_head_safe(tgt_mask), "tgt_key_padding_mask": tgt_kpm,
                  "memory_mask": _per_head_safe(memory_mask), "memory_key_padding_mask": memory_kpm}
        _assert_same_forward_backward(ours, theirs, [tgt, memory], kwargs, **TIGHT)


@pytest.mark.parametrize("norm_first, batch_first", [(False, False), (True, True), (False, True)])
def test_whole_transformer_equals_pytorch_float32(norm_first, batch_first):
    torch.manual_seed(0)
    theirs = nn.Transformer(E, H, 2, 2, FF, dropout=0.0, norm_first=norm_first, batch_first=batch_first,
                            activation="gelu")
    _perturb(theirs, torch.float32)
    ours = Transformer(E, H, 2, 2, FF, dropout=0.0, norm_first=norm_first, batch_first=batch_first,
                       activation="gelu")
    ours.load_state_dict(theirs.state_dict())
    src, tgt = _seq(S, batch_first, torch.float32, 4), _seq(T, batch_first, torch.float32, 5)
    pad = torch.arange(S) >= torch.tensor([S, 4, 2])[:, None]
    causal = nn.Transformer.generate_square_subsequent_mask(T)
    for kwargs in ({}, {"tgt_mask": causal},
                   {"tgt_mask": causal, "tgt_is_causal": True, "src_key_padding_mask": pad,
                    "memory_key_padding_mask": pad},
                   {"src_mask": torch.ones(S, S, dtype=torch.bool).triu(1), "tgt_mask": causal.isinf(),
                    "memory_mask": torch.zeros(T, S)}):
        # Outputs to float32's default tolerance; gradients through four layers of float32 sums, to 1e-4.
        _assert_same_forward_backward(ours, theirs, [src, tgt], kwargs, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ours(src, tgt, **kwargs), theirs(src, tgt, **kwargs))
        ours.eval(), theirs.eval()
        with torch.no_grad():
            torch.testing.assert_close(ours(src, tgt, **kwargs), theirs(src, tgt, **kwargs))
        ours.train(), theirs.train()


def test_stacks_alone_equal_pytorch_with_and_without_final_norm():
    for norm in (None, "layer norm"):
        torch.manual_seed(2)
        t_enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, FF, 0.0, batch_first=True), 3,
                                      norm=nn.LayerNorm(E) if norm else None, enable_nested_tensor=False)
        t_dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H, FF, 0.0, batch_first=True), 2,
                                      norm=nn.LayerNorm(E) if norm else None)
        _perturb(t_enc, torch.float32), _perturb(t_dec, torch.float32)
        o_enc = TransformerEncoder(TransformerEncoderLayer(E, H, FF, 0.0, batch_first=True), 3,
                                   norm=nn.LayerNorm(E) if norm else None)
        o_dec = TransformerDecoder(TransformerDecoderLayer(E, H, FF, 0.0, batch_first=True), 2,
                                   norm=nn.LayerNorm(E) if norm else None)
        o_enc.load_state_dict(t_enc.state_dict()), o_dec.load_state_dict(t_dec.state_dict())
        src, tgt = _seq(S, True, torch.float32, 1), _seq(T, True, torch.float32, 2)
        causal = nn.Transformer.generate_square_subsequent_mask(T)
        _assert_same_forward_backward(o_enc, t_enc, [src], {"mask": None, "is_causal": None})
        _assert_same_forward_backward(o_dec, t_dec, [tgt, src], {"tgt_mask": causal})


def test_eval_mode_with_dropout_equals_pytorch_including_its_layer_fast_path():
    # In eval mode dropout is off in both; PyTorch's layer then takes its fused fast path (batch_first, no grad).
    for norm_first in (False, True):
        ours, theirs = _layer_pair("encoder", torch.float32, dropout=0.3, batch_first=True, norm_first=norm_first)
        ours.eval(), theirs.eval()
        src = _seq(T, True, torch.float32, 2)
        pad = torch.arange(T) >= torch.tensor([T, 3, 1])[:, None]
        with torch.no_grad():
            for kwargs in ({}, {"src_key_padding_mask": pad}, {"src_mask": torch.ones(T, T, dtype=torch.bool).triu(1)}):
                torch.testing.assert_close(ours(src, **kwargs), theirs(src, **kwargs))
        ours_d, theirs_d = _layer_pair("decoder", torch.float32, dropout=0.3, batch_first=False)
        ours_d.eval(), theirs_d.eval()
        tgt, memory = _seq(T, False, torch.float32, 3), _seq(S, False, torch.float32, 4)
        torch.testing.assert_close(ours_d(tgt, memory), theirs_d(tgt, memory))


def test_dropout_trains_in_training_mode_and_not_in_eval():
    ours, _ = _layer_pair("encoder", torch.float32, dropout=0.5, batch_first=True)
    src = _seq(T, True, torch.float32, 2)
    assert not torch.equal(ours(src), ours(src))  # two different masks
    ours.eval()
    assert torch.equal(ours(src), ours(src))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_cpu_equal_to_tolerance(dtype):
    # Both keep LayerNorm statistics in float32 but round elsewhere at different places: half-precision
    # outputs agree within atol=rtol=2e-2 (float16) / 5e-2 (bfloat16), gradients within 5% of their largest entry.
    tol = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.float16 else {"atol": 5e-2, "rtol": 5e-2}
    for kind in ("encoder", "decoder"):
        ours, theirs = _layer_pair(kind, dtype, batch_first=True, norm_first=kind == "decoder", activation="gelu")
        inputs = [_seq(T, True, dtype, 2)] + ([_seq(S, True, dtype, 3)] if kind == "decoder" else [])
        kwargs = {"src_mask" if kind == "encoder" else "tgt_mask": torch.ones(T, T, dtype=torch.bool).triu(1)}
        xs_o = [x.clone().requires_grad_(True) for x in inputs]
        xs_t = [x.clone().requires_grad_(True) for x in inputs]
        out_o, out_t = ours(*xs_o, **kwargs), theirs(*xs_t, **kwargs)
        assert out_o.dtype == out_t.dtype == dtype
        torch.testing.assert_close(out_o.float(), out_t.float(), **tol)
        g_o, g_t = _grads(ours, xs_o, out_o.float()), _grads(theirs, xs_t, out_t.float())
        for a, b in zip([*g_o[0], *g_o[1].values()], [*g_t[0], *g_t[1].values()], strict=True):
            scale = b.float().abs().max().clamp_min(1e-3)
            assert ((a.float() - b.float()).abs().max() / scale).item() < 0.05
        ours.eval(), theirs.eval()
        with torch.no_grad():  # PyTorch's fused encoder fast path takes half inputs on the CPU too
            torch.testing.assert_close(ours(*inputs).float(), theirs(*inputs).float(), **tol)


def test_without_biases_equal_pytorch_float64():
    for kind in ("encoder", "decoder"):
        ours, theirs = _layer_pair(kind, bias=False, norm_first=kind == "encoder", batch_first=True)
        assert ours.linear1.bias is None and ours.norm1.bias is None and ours.self_attn.in_proj_bias is None
        inputs = [_seq(T, True, torch.float64, 2)] + ([_seq(S, True, torch.float64, 3)] if kind == "decoder" else [])
        _assert_same_forward_backward(ours, theirs, inputs, {}, **TIGHT)


def test_length_one_unbatched_and_callable_activation():
    for activation in (F.silu, nn.GELU(approximate="tanh")):
        ours, theirs = _layer_pair("encoder", batch_first=True, activation=activation)
        _assert_same_forward_backward(ours, theirs, [_seq(1, True, torch.float64, 2)], {}, **TIGHT)
        _assert_same_forward_backward(ours, theirs, [_seq(T, True, torch.float64, 2)[0]], {}, **TIGHT)  # (T, E)
    ours, theirs = _layer_pair("decoder", batch_first=False)
    _assert_same_forward_backward(ours, theirs, [_seq(1, False, torch.float64, 2), _seq(1, False, torch.float64, 3)],
                                  {"tgt_mask": torch.zeros(1, 1, dtype=torch.float64)}, **TIGHT)


def test_generate_square_subsequent_mask_and_is_causal_hints():
    for sz, dtype in ((0, None), (1, None), (4, torch.float64), (5, torch.bfloat16)):
        ours = Transformer.generate_square_subsequent_mask(sz, dtype=dtype)
        assert torch.equal(ours, nn.Transformer.generate_square_subsequent_mask(sz, dtype=dtype))
        assert ours.dtype == (dtype or torch.float32)
    ours, theirs = _layer_pair("encoder", batch_first=True)
    src = _seq(T, True, torch.float64, 2)
    causal = Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    _assert_same_forward_backward(ours, theirs, [src], {"src_mask": causal, "is_causal": True}, **TIGHT)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        theirs(src, is_causal=True)
    with pytest.raises(ValueError, match="is_causal=True is only a hint"):
        ours(src, is_causal=True)


# ---------------------------------------------------------------------------------------------- fast path


def _encoders(norm=None):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True)
    fast = nn.TransformerEncoder(layer, 2, norm=norm)
    slow = nn.TransformerEncoder(layer, 2, norm=norm, enable_nested_tensor=False)
    slow.load_state_dict(fast.state_dict())
    ours = TransformerEncoder(TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True), 2, norm=norm)
    ours.load_state_dict(fast.state_dict())
    return fast, slow, ours


def test_pytorch_eval_fast_path_zeros_padded_positions_and_ours_does_not():
    fast, slow, ours = _encoders()
    src = _seq(T, True, torch.float32, 2)
    pad = torch.arange(T) >= torch.tensor([T, 3, 1])[:, None]
    for m in (fast, slow, ours):
        m.eval()
    with torch.no_grad():
        y_fast, y_slow, y_ours = (m(src, src_key_padding_mask=pad) for m in (fast, slow, ours))
    assert torch.equal(y_fast[pad], torch.zeros_like(y_fast[pad]))  # nested tensors, padded back with 0
    assert (y_ours[pad].abs() > 0).any() and (y_slow[pad].abs() > 0).any()
    torch.testing.assert_close(y_ours[~pad], y_fast[~pad])
    torch.testing.assert_close(y_ours, y_slow)
    # In training mode, or with gradients, PyTorch computes the padded positions too.
    fast.train()
    torch.testing.assert_close(fast(src, src_key_padding_mask=pad).detach(), y_ours)
    with pytest.raises(ValueError, match="enable_nested_tensor must be False"):
        TransformerEncoder(TransformerEncoderLayer(E, H), 2, enable_nested_tensor=True)


def test_fast_path_zeros_reach_the_decoder_without_a_memory_padding_mask():
    torch.manual_seed(0)
    theirs = nn.Transformer(E, H, 2, 2, FF, dropout=0.0, batch_first=True)
    ours = Transformer(E, H, 2, 2, FF, dropout=0.0, batch_first=True)
    ours.load_state_dict(theirs.state_dict())
    src, tgt = _seq(S, True, torch.float32, 1), _seq(T, True, torch.float32, 2)
    pad = torch.arange(S) >= torch.tensor([S, 4, 2])[:, None]
    train_out = theirs(src, tgt, src_key_padding_mask=pad).detach()
    theirs.eval(), ours.eval()
    with torch.no_grad():
        eval_out = theirs(src, tgt, src_key_padding_mask=pad)
        torch.testing.assert_close(ours(src, tgt, src_key_padding_mask=pad), train_out)
        with_memory_mask = theirs(src, tgt, src_key_padding_mask=pad, memory_key_padding_mask=pad)
        torch.testing.assert_close(ours(src, tgt, src_key_padding_mask=pad, memory_key_padding_mask=pad),
                                   with_memory_mask)
    assert not torch.allclose(eval_out[1:], train_out[1:], atol=1e-3)  # padded sequences read the zeros
    torch.testing.assert_close(eval_out[0], train_out[0])  # the unpadded one does not


def test_fully_padded_sequence_nan_on_pytorch_fast_path_finite_in_ours():
    ours, theirs = _layer_pair("encoder", torch.float32, batch_first=True)
    src = _seq(T, True, torch.float32, 2)
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[1] = True
    ours_train, theirs_train = ours(src, src_key_padding_mask=pad), theirs(src, src_key_padding_mask=pad)
    assert ours_train.isfinite().all()
    if not theirs_train.isnan().any():  # recent releases (2.13 here); older ones gave NaN in sequence 1
        torch.testing.assert_close(ours_train, theirs_train)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        fast = theirs(src, src_key_padding_mask=pad)
        mine = ours(src, src_key_padding_mask=pad)
    assert fast[1].isnan().all() and mine.isfinite().all()
    torch.testing.assert_close(mine[[0, 2]], fast[[0, 2]])


# ---------------------------------------------------------------------------------------------- errors


def test_clear_errors_name_the_argument():
    cases = [
        (lambda: TransformerEncoderLayer(8, 3), ValueError, "nhead must divide d_model=8, got nhead=3"),
        (lambda: TransformerEncoderLayer(0, 1), ValueError, "d_model must be an int of at least 1, got 0"),
        (lambda: TransformerDecoderLayer(8, 2, activation="swish"), ValueError,
         "activation must be 'relu', 'gelu' or a callable, got 'swish'"),
        (lambda: TransformerEncoderLayer(8, 2, activation=3), TypeError, "activation must be"),
        (lambda: TransformerEncoderLayer(8, 2, dropout=1.5), ValueError, "dropout must be a number in"),
        (lambda: TransformerEncoderLayer(8, 2, dim_feedforward=0), ValueError, "dim_feedforward must be"),
        (lambda: TransformerEncoderLayer(8, 2, layer_norm_eps=-1.0), ValueError, "layer_norm_eps must be"),
        (lambda: TransformerEncoderLayer(8, 2, batch_first=1), TypeError, "batch_first must be a bool, got 1"),
        (lambda: TransformerEncoderLayer(8, 2, norm_first="yes"), TypeError, "norm_first must be a bool"),
        (lambda: TransformerEncoder(TransformerEncoderLayer(8, 2), 0), ValueError, "num_layers must be"),
        (lambda: Transformer(8, 2, 1, 1, 16)(torch.randn(5, 2, 8), torch.randn(4, 3, 8)), ValueError,
         r"src and tgt must have the same batch size in dim 1 \(batch_first=False\)"),
        (lambda: TransformerEncoderLayer(8, 2)(torch.randn(5, 2, 6)), ValueError,
         r"src must be \(T, E\), \(T, B, E\) or \(B, T, E\) with E = d_model = 8, got shape \(5, 2, 6\)"),
        (lambda: Transformer.generate_square_subsequent_mask(-1), ValueError, "sz must be an int of at least 0"),
    ]
    for make, error, message in cases:
        with pytest.raises(error, match=message):
            make()


# ---------------------------------------------------------------------------------------------- lab, figure, challenges


def test_pre_norm_gradients_reach_every_layer_undiminished_post_norm_ones_do_not():
    for seed in (1,):  # seed 0 is the lesson's doctest
        post = stream_gradient_norms(False, seed=seed)
        pre = stream_gradient_norms(True, seed=seed)
        assert min(post) < 0.7 * post[-1]
        assert all(n >= pre[-1] for n in pre)
        assert pre[0] > 2 * pre[-1]


def test_plot_gradient_norms_draws_two_lines():
    fig = plot_gradient_norms(num_layers=6)
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].get_lines()) == 3  # two stacks and the reference line at 1


def test_parameter_count_solution_passes_and_wrong_attempts_fail():
    assert check_transformer_parameter_count(transformer_parameter_count) is None

    def no_final_norms(d_model, n_enc, n_dec, dim_ff, bias=True):
        return transformer_parameter_count(d_model, n_enc, n_dec, dim_ff, bias) - 2 * d_model * (1 + bias)

    def no_cross_attention(d_model, n_enc, n_dec, dim_ff, bias=True):
        return transformer_parameter_count(d_model, n_enc + n_dec, 0, dim_ff, bias)

    def norms_keep_bias(d_model, n_enc, n_dec, dim_ff, bias=True):
        extra = 0 if bias else d_model * (2 * n_enc + 3 * n_dec + 2)
        return transformer_parameter_count(d_model, n_enc, n_dec, dim_ff, bias) + extra

    for wrong in (no_final_norms, no_cross_attention, norms_keep_bias):
        with pytest.raises(AssertionError):
            check_transformer_parameter_count(wrong)


def test_masked_mean_pool_solution_passes_and_wrong_attempts_fail():
    assert check_masked_mean_pool(masked_mean_pool) is None

    def plain_mean(output, mask, batch_first=True):
        return (output if batch_first else output.transpose(0, 1)).mean(dim=1)

    def divides_by_T(output, mask, batch_first=True):
        x = output if batch_first else output.transpose(0, 1)
        return torch.where(~mask[..., None], x, 0.0).sum(dim=1) / x.size(1)

    def multiplies_by_mask(output, mask, batch_first=True):
        x = output if batch_first else output.transpose(0, 1)
        keep = (~mask)[..., None].to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1)  # 0 * inf = NaN at padding

    def polarity_flipped(output, mask, batch_first=True):
        x = output if batch_first else output.transpose(0, 1)
        return torch.where(mask[..., None], x, 0.0).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)

    for wrong in (plain_mean, divides_by_T, multiplies_by_mask, polarity_flipped):
        with pytest.raises(AssertionError):
            check_masked_mean_pool(wrong)
    with pytest.raises(ValueError, match="all-True row"):
        masked_mean_pool(torch.randn(1, 2, 3), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="src_key_padding_mask must be a bool tensor"):
        masked_mean_pool(torch.randn(1, 2, 3), torch.ones(1, 2))
