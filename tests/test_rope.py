"""The proof behind the rotary lesson: the formula, the two layouts, the relative property, Hugging Face's Llama."""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.nn.positional import positions_from_padding_mask
from torchenstein.transformers.attention import scaled_dot_product_attention
from torchenstein.transformers.rope import (
    RotaryEmbedding,
    apply_rotary,
    apply_rotary_complex,
    apply_rotary_interleaved,
    check_rope_rotation_matrix,
    check_rope_scaling_linear,
    permute_for_rotate_half,
    plot_rope,
    rope_cos_sin,
    rope_cos_sin_from_frequencies,
    rope_freqs_cis,
    rope_frequencies,
    rope_rotation_matrix,
    rope_scaling_linear,
    rotary_score,
    rotate_every_two,
    rotate_half,
    rotate_half_permutation,
)

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
BASES = [10000.0, 500000.0, 1e6]


def _randn(*shape, dtype=torch.float32, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)


def _judge_cos_sin(positions, head_dim, base, interleaved):
    """The tables written as literally as code allows: Python's math on every position and pair, in float64."""
    cos, sin = [], []
    for m in positions:
        angles = [m * base ** (-2 * i / head_dim) for i in range(head_dim // 2)]
        order = [a for a in angles for _ in range(2)] if interleaved else angles + angles
        cos.append([math.cos(a) for a in order])
        sin.append([math.sin(a) for a in order])
    return torch.tensor(cos, dtype=torch.float64), torch.tensor(sin, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------
# The formula
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [10000.0, 500000.0, 100.0])
@pytest.mark.parametrize("head_dim", [2, 8, 64, 128])
def test_frequencies_are_the_formula(head_dim, base):
    judge = torch.tensor([base ** (-2 * i / head_dim) for i in range(head_dim // 2)], dtype=torch.float64)
    torch.testing.assert_close(rope_frequencies(head_dim, base, dtype=torch.float64), judge)
    ours = rope_frequencies(head_dim, base)
    assert ours.dtype == torch.float32 and ours.shape == (head_dim // 2,)
    torch.testing.assert_close(ours, judge.float())


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize(("head_dim", "base"), [(2, 10000.0), (8, 10000.0), (16, 500000.0), (6, 100.0)])
def test_cos_sin_are_the_formula(head_dim, base, interleaved):
    positions = [0, 1, 2, 7, 100, 4095, 100_000]
    judge_cos, judge_sin = _judge_cos_sin(positions, head_dim, base, interleaved)
    cos, sin = rope_cos_sin(torch.tensor(positions), head_dim, base, interleaved=interleaved, dtype=torch.float64)
    assert cos.dtype == sin.dtype == torch.float64 and cos.shape == (len(positions), head_dim)
    torch.testing.assert_close(cos, judge_cos, rtol=0, atol=1e-11)
    torch.testing.assert_close(sin, judge_sin, rtol=0, atol=1e-11)
    # float32 angles: exact up to the rounding of position times frequency, which grows with the position.
    cos32, sin32 = rope_cos_sin(torch.tensor(positions[:4]), head_dim, base, interleaved=interleaved)
    torch.testing.assert_close(cos32, judge_cos[:4].float())
    torch.testing.assert_close(sin32, judge_sin[:4].float())


def test_cos_sin_shapes_dtypes_and_positions():
    for positions in (torch.tensor(3), torch.arange(0), torch.arange(6).reshape(2, 3), torch.arange(24).reshape(2, 3, 4)):
        cos, sin = rope_cos_sin(positions, 8)
        assert cos.shape == sin.shape == (*positions.shape, 8)
    for dtype in DTYPES:
        assert rope_cos_sin(torch.arange(3), 8, dtype=dtype)[0].dtype == dtype
    # Half tables are the float32 tables rounded once, at the end.
    cos, _ = rope_cos_sin(torch.arange(5000), 64)
    assert torch.equal(rope_cos_sin(torch.arange(5000), 64, dtype=torch.bfloat16)[0], cos.to(torch.bfloat16))
    # Floating and fractional positions, and a plain list.
    torch.testing.assert_close(rope_cos_sin(torch.tensor([1.5]), 4)[0], _judge_cos_sin([1.5], 4, 10000.0, False)[0].float())
    assert torch.equal(rope_cos_sin([0, 1, 2], 8)[0], rope_cos_sin(torch.arange(3), 8)[0])


def test_rotate_half_and_every_two_are_quarter_turns():
    x = _randn(3, 8, dtype=torch.float64)
    for quarter in (rotate_half, rotate_every_two):
        assert torch.equal(quarter(quarter(x)), -x)  # two quarter turns: a half turn
        assert torch.equal((quarter(x) * x).sum(-1), torch.zeros(3, dtype=torch.float64))  # at right angles
    assert torch.equal(rotate_half(torch.arange(4)), torch.tensor([-2, -3, 0, 1]))
    assert torch.equal(rotate_every_two(torch.arange(4)), torch.tensor([-1, 0, -3, 2]))


# ---------------------------------------------------------------------------------------------------------
# The layouts: interleaved, complex, matrix and the permutation
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 7, 16), (1, 4, 1, 2)])
def test_interleaved_equals_complex_multiplication_and_the_rotation_matrix(shape, dtype):
    T, d = shape[-2], shape[-1]
    positions = torch.arange(T) * 37 + 3
    q, k = _randn(*shape, dtype=dtype), _randn(*shape, dtype=dtype, seed=1)
    cos, sin = rope_cos_sin(positions, d, interleaved=True, dtype=dtype)
    by_turns = apply_rotary_interleaved(q, k, cos, sin, unsqueeze_dim=None)
    by_complex = apply_rotary_complex(q, k, rope_freqs_cis(positions, d, dtype=dtype))
    for a, b in zip(by_turns, by_complex, strict=True):
        assert b.dtype == dtype
        torch.testing.assert_close(a, b)
    if dtype == torch.float64:
        R = torch.stack([rope_rotation_matrix(int(m), d) for m in positions])  # (T, d, d)
        by_matrix = (R @ q.unsqueeze(-1)).squeeze(-1)
        cos64, sin64 = rope_cos_sin(positions, d, interleaved=True, dtype=torch.float64)
        torch.testing.assert_close(apply_rotary_interleaved(q, k, cos64, sin64, unsqueeze_dim=None)[0], by_matrix)


def test_complex_form_in_half_precision_computes_in_float32():
    q = _randn(2, 5, 8, dtype=torch.bfloat16)
    out, _ = apply_rotary_complex(q, q, rope_freqs_cis(torch.arange(5), 8))
    expected, _ = apply_rotary_complex(q.float(), q.float(), rope_freqs_cis(torch.arange(5), 8))
    assert out.dtype == torch.bfloat16 and torch.equal(out, expected.to(torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("d", [2, 8, 64])
def test_permuted_channels_turn_alike_in_both_layouts(d, dtype):
    perm = rotate_half_permutation(d)
    assert sorted(perm.tolist()) == list(range(d))
    x = _randn(2, 3, 9, d, dtype=dtype)
    positions = torch.arange(9) + 1000
    cos_h, sin_h = rope_cos_sin(positions, d, dtype=dtype)
    cos_i, sin_i = rope_cos_sin(positions, d, interleaved=True, dtype=dtype)
    # The tables themselves are each other's permutation, and so are the rotated vectors, bit for bit.
    assert torch.equal(cos_i[..., perm], cos_h) and torch.equal(sin_i[..., perm], sin_h)
    half, _ = apply_rotary(x[..., perm], x[..., perm], cos_h, sin_h, unsqueeze_dim=None)
    interleaved, _ = apply_rotary_interleaved(x, x, cos_i, sin_i, unsqueeze_dim=None)
    assert torch.equal(half, interleaved[..., perm])


@pytest.mark.parametrize(("E", "H", "d", "H_kv"), [(16, 2, 8, 2), (24, 4, 6, 2), (64, 4, 16, 1)])
def test_permuted_weights_give_identical_scores(E, H, d, H_kv):
    T = 7
    x = _randn(2, T, E, dtype=torch.float64)
    W_q, b_q = _randn(H * d, E, dtype=torch.float64, seed=1), _randn(H * d, dtype=torch.float64, seed=2)
    W_k, b_k = _randn(H_kv * d, E, dtype=torch.float64, seed=3), _randn(H_kv * d, dtype=torch.float64, seed=4)

    def heads(w, b, n):  # (B, n, T, d)
        return (x @ w.T + b).unflatten(-1, (n, d)).transpose(1, 2)

    positions = torch.arange(T) + 5
    cos_i, sin_i = rope_cos_sin(positions, d, interleaved=True, dtype=torch.float64)
    cos_h, sin_h = rope_cos_sin(positions, d, dtype=torch.float64)
    q_i, k_i = apply_rotary_interleaved(heads(W_q, b_q, H), heads(W_k, b_k, H_kv), cos_i, sin_i, unsqueeze_dim=None)
    q_h, k_h = apply_rotary(heads(permute_for_rotate_half(W_q, H), permute_for_rotate_half(b_q, H), H),
                            heads(permute_for_rotate_half(W_k, H_kv), permute_for_rotate_half(b_k, H_kv), H_kv),
                            cos_h, sin_h, unsqueeze_dim=None)
    g = H // H_kv
    scores_i = q_i @ k_i.repeat_interleave(g, dim=1).transpose(-2, -1)
    scores_h = q_h @ k_h.repeat_interleave(g, dim=1).transpose(-2, -1)
    torch.testing.assert_close(scores_h, scores_i, rtol=0, atol=1e-12)
    # Without the permutation, only the diagonal survives (Hammer's trap).
    q_w, k_w = apply_rotary(heads(W_q, b_q, H), heads(W_k, b_k, H_kv), cos_h, sin_h, unsqueeze_dim=None)
    wrong = q_w @ k_w.repeat_interleave(g, dim=1).transpose(-2, -1)
    torch.testing.assert_close(wrong.diagonal(dim1=-2, dim2=-1), scores_i.diagonal(dim1=-2, dim2=-1))
    assert not torch.allclose(wrong, scores_i)


def test_permute_for_rotate_half_is_hugging_faces_conversion():
    # The `permute` of transformers' convert_llama_weights_to_hf.py, written out (the script is not shipped).
    def hf_permute(w, n_heads, dim1, dim2):
        return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)

    W = _randn(32, 12)
    assert torch.equal(permute_for_rotate_half(W, 4), hf_permute(W, 4, 32, 12))


# ---------------------------------------------------------------------------------------------------------
# The relative-position property
# ---------------------------------------------------------------------------------------------------------


@settings(max_examples=25)
@given(
    half_d=st.integers(1, 32),
    base=st.sampled_from([100.0, 10000.0, 500000.0]),
    m=st.integers(0, 50_000),
    n=st.integers(0, 50_000),
    shifts=st.lists(st.integers(-50_000, 50_000), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_scores_depend_only_on_the_relative_position(half_d, base, m, n, shifts, seed):
    d = 2 * half_d
    q, k = _randn(d, dtype=torch.float64, seed=seed), _randn(d, dtype=torch.float64, seed=seed + 1)
    shifted = torch.tensor(shifts)
    score = rotary_score(q, k, m, n, base)
    scale = (q.norm() * k.norm()).item()
    torch.testing.assert_close(rotary_score(q, k, m + shifted, n + shifted, base), score.expand(len(shifts)),
                               rtol=0, atol=1e-10 * scale)
    # R_m^T R_n = R_{n-m}: the same score as the query at 0 and the key at n - m (negative positions too).
    torch.testing.assert_close(rotary_score(q, k, 0, n - m, base), score, rtol=0, atol=1e-10 * scale)
    # The interleaved layout has the same property, and both keep every length.
    positions = torch.tensor([m, n, m + shifts[0]])
    for interleaved, apply in ((False, apply_rotary), (True, apply_rotary_interleaved)):
        cos, sin = rope_cos_sin(positions, d, base, interleaved=interleaved, dtype=torch.float64)
        rq, rk = apply(q.expand(3, d), k.expand(3, d), cos, sin, unsqueeze_dim=None)
        torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(3), rtol=0, atol=1e-12 * q.norm().item())
        torch.testing.assert_close(rk.norm(dim=-1), k.norm().expand(3), rtol=0, atol=1e-12 * k.norm().item())
        cos_s, sin_s = rope_cos_sin(positions[:2] + shifts[0], d, base, interleaved=interleaved, dtype=torch.float64)
        sq, sk = apply(q.expand(2, d), k.expand(2, d), cos_s, sin_s, unsqueeze_dim=None)
        torch.testing.assert_close(sq[0] @ sk[1], rq[0] @ rk[1], rtol=0, atol=1e-10 * scale)


def test_float32_angles_lose_the_property_far_away():
    """Why the lesson proves the property in float64: float32 angles drift at large positions."""
    q, k = _randn(64, dtype=torch.float64), _randn(64, dtype=torch.float64, seed=1)
    exact = rotary_score(q, k, 7, 3)
    far = rotary_score(q.float(), k.float(), 7 + 1_000_000, 3 + 1_000_000)
    assert abs(far.item() - exact.item()) > 1e-3
    assert abs(rotary_score(q.float(), k.float(), 7, 3).item() - exact.item()) < 1e-4


@pytest.mark.parametrize("apply", [apply_rotary, apply_rotary_interleaved])
def test_gradcheck_in_float64(apply):
    q, k = _randn(2, 3, 4, 6, dtype=torch.float64, requires_grad=True), _randn(2, 1, 4, 6, dtype=torch.float64, seed=1,
                                                                                 requires_grad=True)
    cos, sin = rope_cos_sin(torch.arange(4).expand(2, 4) + 9, 6, interleaved=apply is apply_rotary_interleaved,
                            dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q, k: apply(q, k, cos, sin), (q, k))
    freqs_cis = rope_freqs_cis(torch.arange(4) + 9, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q, k: apply_rotary_complex(q, k, freqs_cis), (q, k))


# ---------------------------------------------------------------------------------------------------------
# Hugging Face's Llama
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf():
    """Hugging Face's Llama rotary pieces, imported once (the import is slow); skip if transformers is absent."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    if "config" not in inspect.signature(llama.LlamaRotaryEmbedding.__init__).parameters:
        pytest.skip("this transformers' LlamaRotaryEmbedding predates construction from a config")
    new_style = hasattr(LlamaConfig(), "rope_parameters")  # transformers 5 keeps theta and scaling together

    def rotary(head_dim=16, base=10000.0, linear_factor=None):
        kwargs = {"hidden_size": 4 * head_dim, "num_attention_heads": 4, "num_key_value_heads": 4,
                  "max_position_embeddings": 2048}
        if linear_factor is None:
            kwargs["rope_theta"] = base
        elif new_style:
            kwargs["rope_parameters"] = {"rope_type": "linear", "rope_theta": base, "factor": linear_factor}
        else:
            kwargs.update(rope_theta=base, rope_scaling={"rope_type": "linear", "factor": linear_factor})
        return llama.LlamaRotaryEmbedding(config=LlamaConfig(**kwargs))  # a keyword: 4.x also took dim first

    return SimpleNamespace(rotary=rotary, apply=llama.apply_rotary_pos_emb)


def _position_ids():
    """Position ids as models meet them: from 0, deep into a KV cache, left-padded, and scattered."""
    g = torch.Generator().manual_seed(0)
    left_padded = positions_from_padding_mask(torch.tensor([[False, False, True, True, True, True],
                                                            [True, True, True, True, True, True]]))
    return {
        "0..T-1": torch.arange(6).expand(2, 6),
        "KV-cache offset": torch.arange(4090, 4096)[None],
        "one new token": torch.tensor([[37], [812]]),
        "left padded": left_padded,
        "scattered": torch.randint(0, 200_000, (3, 5), generator=g),
    }


@pytest.mark.parametrize("head_dim", [8, 16, 128])
@pytest.mark.parametrize("base", BASES)
def test_inv_freq_is_hugging_faces_bit_for_bit(hf, base, head_dim):
    theirs = hf.rotary(head_dim, base)
    ours = RotaryEmbedding(head_dim, base)
    assert theirs.inv_freq.dtype == ours.inv_freq.dtype == torch.float32
    assert torch.equal(ours.inv_freq, theirs.inv_freq)
    assert torch.equal(rope_frequencies(head_dim, base), theirs.inv_freq)


@pytest.mark.parametrize("base", [10000.0, 500000.0])
def test_cos_sin_are_hugging_faces_bit_for_bit(hf, base):
    theirs = hf.rotary(16, base)
    ours = RotaryEmbedding(16, base)
    for name, position_ids in _position_ids().items():
        for dtype in DTYPES:
            x = torch.zeros(1, dtype=dtype)
            hf_cos, hf_sin = theirs(x, position_ids)
            cos, sin = ours(x, position_ids)
            assert cos.dtype == hf_cos.dtype == dtype and cos.shape == (*position_ids.shape, 16)
            assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin), f"{name}, {dtype}"
            if dtype != torch.float64:  # the function computes float64 tables in float64: see the next test
                fn_cos, fn_sin = rope_cos_sin(position_ids, 16, base, dtype=dtype)
                assert torch.equal(fn_cos, hf_cos) and torch.equal(fn_sin, hf_sin), f"{name}, {dtype}"
    # After .double() both still compute in float32 from the same frequencies.
    x = torch.zeros(1, dtype=torch.float64)
    position_ids = _position_ids()["scattered"]
    assert all(torch.equal(a, b) for a, b in zip(ours.double()(x, position_ids), theirs.double()(x, position_ids),
                                                  strict=True))


def test_position_ids_of_any_integer_width_but_no_half_floats(hf):
    """int32 ids are int64's, bitwise, as in Hugging Face; half-precision ids are refused (Hugging Face: NaN)."""
    theirs, ours = hf.rotary(16), RotaryEmbedding(16)
    x = torch.zeros(1)
    for name, position_ids in _position_ids().items():
        for dtype in (torch.int32, torch.int64, torch.float32):
            got = ours(x, position_ids.to(dtype))
            assert all(torch.equal(a, b) for a, b in zip(got, ours(x, position_ids), strict=True)), f"{name}, {dtype}"
            assert all(torch.equal(a, b) for a, b in zip(got, theirs(x, position_ids.to(dtype)), strict=True))
    far = torch.tensor([[70_000.0]])
    assert theirs(x, far.half())[0].isnan().all()
    for dtype in (torch.float16, torch.bfloat16):
        half = far.to(dtype)
        for fn, args in ((ours, (x, half)), (rope_cos_sin, (half, 16)), (rope_freqs_cis, (half, 16))):
            with pytest.raises(TypeError, match=f"positions must be integers, float32 or float64, got dtype {dtype}"):
                fn(*args)


def test_float64_tables_are_more_exact_than_hugging_faces(hf):
    """The "Where it differs" note: rope_cos_sin(dtype=float64) computes in float64, Hugging Face in float32."""
    theirs = hf.rotary(16)
    x = torch.zeros(1, dtype=torch.float64)
    near = torch.arange(64)[None]
    torch.testing.assert_close(rope_cos_sin(near, 16, dtype=torch.float64)[0], theirs(x, near)[0],
                               rtol=1.3e-6, atol=1e-5)  # float32's default tolerance
    far = torch.tensor([[100_000]])
    judge_cos, _ = _judge_cos_sin([100_000], 16, 10000.0, False)
    ours_error = (rope_cos_sin(far, 16, dtype=torch.float64)[0][0] - judge_cos).abs().max().item()
    theirs_error = (theirs(x, far)[0][0] - judge_cos).abs().max().item()
    assert ours_error < 1e-12 < 1e-5 < theirs_error


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["BHTd", "BTHd", "grouped keys"])
def test_apply_rotary_is_hugging_faces_with_gradients(hf, layout, dtype):
    B, H, T, d = 2, 4, 5, 16
    H_kv = 1 if layout == "grouped keys" else H
    q_shape, k_shape = ((B, T, H, d), (B, T, H_kv, d)) if layout == "BTHd" else ((B, H, T, d), (B, H_kv, T, d))
    unsqueeze_dim = 2 if layout == "BTHd" else 1
    q, k = _randn(*q_shape, dtype=dtype, requires_grad=True), _randn(*k_shape, dtype=dtype, seed=1, requires_grad=True)
    cos, sin = RotaryEmbedding(d)(q, torch.arange(T).expand(B, T) + 100)
    ours = apply_rotary(q, k, cos, sin, unsqueeze_dim)
    theirs = hf.apply(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)
    grad_q, grad_k = _randn(*q_shape, dtype=dtype, seed=2), _randn(*k_shape, dtype=dtype, seed=3)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype == dtype and torch.equal(a, b)
    grads_ours = torch.autograd.grad(ours, (q, k), (grad_q, grad_k))
    grads_theirs = torch.autograd.grad(theirs, (q, k), (grad_q, grad_k))
    for a, b in zip(grads_ours, grads_theirs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("base", "factor"), [(10000.0, 4.0), (500000.0, 2.0), (10000.0, 0.5)])
def test_linear_scaling_challenge_is_hugging_faces_linear_rope(hf, base, factor):
    theirs = hf.rotary(16, base, linear_factor=factor)
    position_ids = torch.arange(8190, 8200)[None]
    hf_cos, hf_sin = theirs(torch.zeros(1), position_ids)
    cos, sin = rope_scaling_linear(position_ids, 16, base, factor)
    assert torch.equal(cos, hf_cos) and torch.equal(sin, hf_sin)


def test_hugging_faces_inv_freq_is_left_out_of_the_state_dict_too(hf):
    """The premise of the meta-device trap holds for the real module: no checkpoint restores inv_freq."""
    theirs = hf.rotary(16)
    assert "inv_freq" in dict(theirs.named_buffers()) and "inv_freq" not in theirs.state_dict()


# ---------------------------------------------------------------------------------------------------------
# The module and its traps
# ---------------------------------------------------------------------------------------------------------


def test_module_buffer_state_dict_and_device():
    rope = RotaryEmbedding(8, 500.0, interleaved=True)
    assert list(rope.state_dict()) == [] and list(rope.parameters()) == []
    assert torch.equal(rope.inv_freq, rope_frequencies(8, 500.0))
    cos, sin = rope(torch.zeros(1), torch.arange(4))
    assert torch.equal(cos, rope_cos_sin(torch.arange(4), 8, 500.0, interleaved=True)[0])
    assert repr(rope) == "RotaryEmbedding(head_dim=8, base=500.0, interleaved=True)"
    assert RotaryEmbedding(8, device="meta").inv_freq.device.type == "meta"
    assert RotaryEmbedding(8).load_state_dict(RotaryEmbedding(8, 99.0).state_dict()).missing_keys == []


def test_meta_device_to_empty_then_reset_parameters():
    with torch.device("meta"):
        rope = RotaryEmbedding(16)
    assert rope.inv_freq.is_meta
    torch.use_deterministic_algorithms(True)
    try:
        rope.to_empty(device="cpu")
    finally:
        torch.use_deterministic_algorithms(False)
    rope.load_state_dict({})
    assert rope.inv_freq.isnan().all()  # the garbage, made visible
    rope.reset_parameters()
    assert torch.equal(rope.inv_freq, rope_frequencies(16))


def test_bfloat16_cast_and_bfloat16_angles_lose_the_far_positions():
    position = torch.tensor([4096])
    cos32, _ = rope_cos_sin(position, 128)
    rope = RotaryEmbedding(128).to(torch.bfloat16)
    assert rope.inv_freq.dtype == torch.bfloat16
    assert (rope(torch.zeros(1), position)[0] - cos32).abs().max() > 1.0
    rope.reset_parameters()
    assert rope.inv_freq.dtype == torch.float32 and torch.equal(rope(torch.zeros(1), position)[0], cos32)
    angles = position.to(torch.bfloat16)[:, None] * rope_frequencies(128).to(torch.bfloat16)
    assert (torch.cat([angles, angles], -1).cos().float() - cos32).abs().max() > 1.0
    assert (rope_cos_sin(position, 128, dtype=torch.bfloat16)[0].float() - cos32).abs().max() <= 2**-8


def test_kv_cache_decoding_with_offsets_equals_the_full_sequence():
    B, H, T, d = 2, 3, 9, 8
    q, k, v = (_randn(B, H, T, d, seed=s) for s in range(3))
    rope = RotaryEmbedding(d)
    cos, sin = rope(q, torch.arange(T).expand(B, T))
    q_all, k_all = apply_rotary(q, k, cos, sin)
    full = scaled_dot_product_attention(q_all, k_all, v, is_causal=True)
    cache_k, cache_v = k_all[..., :4, :], v[..., :4, :]  # a prompt of 4 tokens, then one token at a time
    for t in range(4, T):
        cos, sin = rope(q, torch.full((B, 1), t))
        q_new, k_new = apply_rotary(q[..., t:t + 1, :], k[..., t:t + 1, :], cos, sin)
        cache_k, cache_v = torch.cat([cache_k, k_new], -2), torch.cat([cache_v, v[..., t:t + 1, :]], -2)
        torch.testing.assert_close(scaled_dot_product_attention(q_new, cache_k, cache_v), full[..., t:t + 1, :])


def test_rotating_values_breaks_shift_invariance():
    q, k, v = (_randn(2, 6, 8, dtype=torch.float64, seed=s) for s in range(3))

    def attend(start, rotate_v):
        cos, sin = rope_cos_sin(torch.arange(start, start + 6), 8, dtype=torch.float64)
        q_rot, k_rot = apply_rotary(q, k, cos, sin, unsqueeze_dim=None)
        v_used = apply_rotary(v, v, cos, sin, unsqueeze_dim=None)[0] if rotate_v else v
        return scaled_dot_product_attention(q_rot, k_rot, v_used, is_causal=True)

    for start in (1, 100, 12345):
        torch.testing.assert_close(attend(start, False), attend(0, False), rtol=0, atol=1e-10)
        assert not torch.allclose(attend(start, True), attend(0, True))


# ---------------------------------------------------------------------------------------------------------
# Errors, figure, challenges
# ---------------------------------------------------------------------------------------------------------


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="head_dim must be a positive even int"):
        rope_frequencies(7)
    with pytest.raises(ValueError, match="head_dim must be a positive even int"):
        RotaryEmbedding(True)
    with pytest.raises(ValueError, match="base must be a finite number above 1, got 1.0"):
        rope_cos_sin(torch.arange(3), 8, base=1.0)
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        rope_frequencies(8, dtype=torch.float16)
    with pytest.raises(TypeError, match="positions must hold integers or real numbers, got dtype torch.bool"):
        rope_cos_sin(torch.ones(3, dtype=torch.bool), 8)
    with pytest.raises(TypeError, match="inv_freq must be a 1-D float32 or float64 tensor"):
        rope_cos_sin_from_frequencies(torch.arange(3), torch.ones(4, dtype=torch.bfloat16))
    q, k = torch.zeros(2, 4, 5, 8), torch.zeros(2, 4, 5, 8)
    cos, sin = rope_cos_sin(torch.arange(5).expand(2, 5), 8)
    with pytest.raises(ValueError, match="must broadcast onto q"):
        apply_rotary(q, k, cos, sin, unsqueeze_dim=2)
    with pytest.raises(ValueError, match="share an even last dim"):
        apply_rotary(q, k[..., :6], cos, sin)
    with pytest.raises(ValueError, match="cos and sin must have the same shape"):
        apply_rotary(q, k, cos, sin[:1])
    with pytest.raises(TypeError, match="k must be a torch.Tensor, got list"):
        apply_rotary_interleaved(q, [1.0], cos, sin)
    with pytest.raises(ValueError, match="must split weight's 12 rows into heads of even width"):
        permute_for_rotate_half(torch.zeros(12, 4), num_heads=4)
    with pytest.raises(ValueError, match="factor must be a finite number above 0"):
        rope_scaling_linear(torch.arange(3), 8, factor=-2.0)


def test_plot_rope_returns_a_figure():
    fig = plot_rope(head_dim=16, max_distance=64)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_challenge_checkers_accept_the_solutions_and_reject_wrong_attempts():
    check_rope_scaling_linear(rope_scaling_linear)
    check_rope_rotation_matrix(rope_rotation_matrix)

    def multiplies(positions, head_dim, base=10000.0, factor=1.0):  # stretches the wrong way
        return rope_cos_sin(torch.as_tensor(positions) * factor, head_dim, base)

    def interleaved(positions, head_dim, base=10000.0, factor=1.0):  # the other layout
        return rope_cos_sin(torch.as_tensor(positions) / factor, head_dim, base, interleaved=True)

    def never_refuses(positions, head_dim, base=10000.0, factor=1.0):
        return rope_cos_sin(torch.as_tensor(positions) / factor if factor else positions, head_dim, base)

    for wrong, hint in ((multiplies, "positions / factor"), (interleaved, "rotate-half layout"),
                        (never_refuses, "raise ValueError")):
        with pytest.raises(AssertionError, match=hint):
            check_rope_scaling_linear(wrong)

    def turns_backwards(position, head_dim, base=10000.0):
        return rope_rotation_matrix(position, head_dim, base).T

    def in_float32(position, head_dim, base=10000.0):
        return rope_rotation_matrix(position, head_dim, base).float()

    def rotate_half_layout(position, head_dim, base=10000.0):
        perm = rotate_half_permutation(head_dim)
        return rope_rotation_matrix(position, head_dim, base)[perm][:, perm]

    for wrong, hint in ((turns_backwards, "apply_rotary_interleaved"), (in_float32, "float64"),
                        (rotate_half_layout, "pairs \\(2i, 2i\\+1\\)")):
        with pytest.raises(AssertionError, match=hint):
            check_rope_rotation_matrix(wrong)



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tables_and_rotation_on_cuda_match_the_cpu():
    rope = RotaryEmbedding(64, device="cuda")
    position_ids = torch.arange(4090, 4100, device="cuda")[None]
    q = _randn(1, 4, 10, 64).cuda()
    cos, sin = rope(q, position_ids)
    assert cos.device.type == "cuda"
    cpu_cos, cpu_sin = RotaryEmbedding(64)(q.cpu(), position_ids.cpu())
    torch.testing.assert_close(cos.cpu(), cpu_cos, rtol=0, atol=1e-5)  # GPU cosines may differ by an ulp or so
    rotated, _ = apply_rotary(q, q, cos, sin)
    torch.testing.assert_close(rotated.cpu(), apply_rotary(q.cpu(), q.cpu(), cpu_cos, cpu_sin)[0], rtol=0, atol=1e-5)
