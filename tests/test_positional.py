"""The proof behind the positional-encoding lesson: the table against its formula, its properties, the modules."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from torchenstein.nn.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    check_relative_position_bias_indices,
    check_sinusoidal_positions_for,
    concatenated_to_interleaved,
    interleaved_to_concatenated,
    plot_sinusoidal_heatmap,
    positions_from_padding_mask,
    relative_position_bias_indices,
    sinusoidal_frequencies,
    sinusoidal_positions,
    sinusoidal_positions_by_loop,
    sinusoidal_positions_for,
    sinusoidal_shift_matrix,
)
from torchenstein.transformers.attention import scaled_dot_product_attention

SIZES = [(0, 2), (1, 2), (1, 8), (7, 4), (33, 16), (100, 64), (257, 6)]


@pytest.mark.parametrize("base", [10000.0, 100.0, 2.0])
@pytest.mark.parametrize(("num_positions", "embedding_dim"), SIZES)
def test_vectorised_table_equals_the_double_loop(num_positions, embedding_dim, base):
    judge = sinusoidal_positions_by_loop(range(num_positions), embedding_dim, base)
    ours = sinusoidal_positions(num_positions, embedding_dim, base, dtype=torch.float64)
    assert ours.shape == (num_positions, embedding_dim) and ours.dtype == torch.float64
    torch.testing.assert_close(ours, judge)
    torch.testing.assert_close(sinusoidal_positions(num_positions, embedding_dim, base), judge.float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_and_default_dtype(dtype):
    assert sinusoidal_positions(3, 4, dtype=dtype).dtype == dtype
    torch.set_default_dtype(torch.float64)  # the conftest fixture restores float32 afterwards
    assert sinusoidal_positions(3, 4).dtype == torch.float64


def test_known_values():
    table = sinusoidal_positions(10, 12, dtype=torch.float64)
    assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 6, dtype=torch.float64))
    p = torch.arange(10, dtype=torch.float64)
    torch.testing.assert_close(table[:, 0], p.sin())
    torch.testing.assert_close(table[:, 1], p.cos())
    last = p / 10000.0 ** (10 / 12)
    torch.testing.assert_close(table[:, 10], last.sin())
    torch.testing.assert_close(table[:, 11], last.cos())


def test_frequencies():
    omega = sinusoidal_frequencies(8)
    torch.testing.assert_close(omega, torch.tensor([1.0, 0.1, 0.01, 0.001], dtype=torch.float64))
    assert sinusoidal_frequencies(2).tolist() == [1.0]


def test_table_is_accurate_far_out_even_in_float32():
    p = torch.arange(10_000, 10_050, dtype=torch.float64)
    torch.testing.assert_close(sinusoidal_positions(10_050, 2)[10_000:, 0], p.sin().float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("num_positions", "embedding_dim"), SIZES)
def test_concatenated_layout_and_conversions(num_positions, embedding_dim):
    judge = sinusoidal_positions_by_loop(range(num_positions), embedding_dim)
    concat = sinusoidal_positions(num_positions, embedding_dim, layout="concatenated", dtype=torch.float64)
    torch.testing.assert_close(concat, torch.cat([judge[:, 0::2], judge[:, 1::2]], dim=-1))
    interleaved = sinusoidal_positions(num_positions, embedding_dim, dtype=torch.float64)
    assert torch.equal(interleaved_to_concatenated(interleaved), concat)
    assert torch.equal(concatenated_to_interleaved(concat), interleaved)


@given(
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=2),
    half=st.integers(1, 6),
)
@settings(max_examples=30)
def test_layout_conversions_are_inverse_permutations(shape, half):
    x = torch.arange(math.prod(shape) * 2 * half).reshape(*shape, 2 * half)
    assert torch.equal(concatenated_to_interleaved(interleaved_to_concatenated(x)), x)
    assert torch.equal(interleaved_to_concatenated(concatenated_to_interleaved(x)), x)
    assert torch.equal(interleaved_to_concatenated(x).sort(dim=-1).values, x)


def test_layout_conversion_errors():
    with pytest.raises(ValueError, match=r"last dim must be even .* got shape \(3, 5\)"):
        interleaved_to_concatenated(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="got shape"):
        concatenated_to_interleaved(torch.tensor(1.0))
    with pytest.raises(TypeError, match="table must be a torch.Tensor, got list"):
        concatenated_to_interleaved([1.0, 2.0])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_positions": 4, "embedding_dim": 7}, ValueError, "embedding_dim must be a positive even int.*got 7"),
        ({"num_positions": 4, "embedding_dim": 0}, ValueError, "embedding_dim .* got 0"),
        ({"num_positions": 4, "embedding_dim": True}, ValueError, "embedding_dim .* got True"),
        ({"num_positions": 4, "embedding_dim": 8.0}, ValueError, "embedding_dim .* got 8.0"),
        ({"num_positions": -1, "embedding_dim": 8}, ValueError, "num_positions must be an int of at least 0, got -1"),
        ({"num_positions": 4, "embedding_dim": 8, "base": 0.0}, ValueError, "base must be a positive finite number, got 0.0"),
        ({"num_positions": 4, "embedding_dim": 8, "base": math.inf}, ValueError, "base must be .* got inf"),
        ({"num_positions": 4, "embedding_dim": 8, "layout": "Interleaved"}, ValueError, "layout must be one of"),
        ({"num_positions": 4, "embedding_dim": 8, "dtype": torch.int64}, TypeError, "dtype must be a floating-point"),
    ],
)
def test_sinusoidal_positions_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        sinusoidal_positions(**kwargs)


def test_loop_takes_fractional_positions():
    got = sinusoidal_positions_by_loop([0.5, -2.0], 4, 100.0)
    expected = torch.tensor([[math.sin(0.5), math.cos(0.5), math.sin(0.05), math.cos(0.05)],
                             [math.sin(-2.0), math.cos(-2.0), math.sin(-0.2), math.cos(-0.2)]], dtype=torch.float64)
    torch.testing.assert_close(got, expected)


def test_loop_refuses_odd_width():
    with pytest.raises(ValueError, match="embedding_dim must be a positive even int"):
        sinusoidal_positions_by_loop(range(3), 5)


@given(num_positions=st.integers(1, 300), half=st.integers(1, 64), base=st.sampled_from([10.0, 10000.0, 1e6]))
@settings(max_examples=25)
def test_every_row_has_norm_sqrt_half_d(num_positions, half, base):
    table = sinusoidal_positions(num_positions, 2 * half, base, dtype=torch.float64)
    torch.testing.assert_close(table.norm(dim=-1), torch.full((num_positions,), math.sqrt(half), dtype=torch.float64))


@pytest.mark.parametrize("offset", [0, 1, 3, 17, -5, 0.5, 2.75])
@pytest.mark.parametrize("embedding_dim", [2, 8, 64])
def test_shift_matrix_maps_every_row(offset, embedding_dim):
    M = sinusoidal_shift_matrix(offset, embedding_dim, dtype=torch.float64)
    assert M.shape == (embedding_dim, embedding_dim)
    p = torch.arange(-20, 300, dtype=torch.float64)
    before = sinusoidal_positions_for(p, embedding_dim)
    after = sinusoidal_positions_for(p + offset, embedding_dim)
    torch.testing.assert_close(before @ M.T, after)
    torch.testing.assert_close(M @ M.T, torch.eye(embedding_dim, dtype=torch.float64))
    torch.testing.assert_close(M.T, sinusoidal_shift_matrix(-offset, embedding_dim, dtype=torch.float64))
    # It is block-diagonal: nothing outside the 2 x 2 blocks.
    block_mask = torch.block_diag(*[torch.ones(2, 2)] * (embedding_dim // 2)).bool()
    assert torch.equal(M[~block_mask], torch.zeros_like(M[~block_mask]))


def test_shift_matrices_compose_and_zero_is_identity():
    torch.testing.assert_close(sinusoidal_shift_matrix(0, 16), torch.eye(16))
    a, b = sinusoidal_shift_matrix(4, 16, 100.0, dtype=torch.float64), sinusoidal_shift_matrix(9, 16, 100.0, dtype=torch.float64)
    torch.testing.assert_close(a @ b, sinusoidal_shift_matrix(13, 16, 100.0, dtype=torch.float64))
    with pytest.raises(TypeError, match="offset must be a real number, got True"):
        sinusoidal_shift_matrix(True, 4)


def test_shift_matrix_integer_table_in_lesson_layout():
    table = sinusoidal_positions(120, 32, dtype=torch.float64)
    for k in (1, 2, 10, 50):
        torch.testing.assert_close(table[:-k] @ sinusoidal_shift_matrix(k, 32, dtype=torch.float64).T, table[k:])


@pytest.mark.parametrize(("embedding_dim", "base"), [(4, 10000.0), (64, 10000.0), (16, 50.0)])
def test_dot_product_depends_only_on_distance(embedding_dim, base):
    table = sinusoidal_positions(150, embedding_dim, base, dtype=torch.float64)
    gram = table @ table.T
    distance = (torch.arange(150)[:, None] - torch.arange(150)[None, :]).abs().double()
    expected = torch.cos(distance[..., None] * sinusoidal_frequencies(embedding_dim, base)).sum(-1)
    torch.testing.assert_close(gram, expected)
    for k in range(1, 150):
        diagonal = gram.diagonal(k)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))
    off_diagonal = gram.clone().fill_diagonal_(-math.inf)
    assert (gram.diagonal() > off_diagonal.amax(dim=-1)).all()  # no other position is as alike as itself


def _self_attention(x, weights):
    W_q, W_k, W_v = weights
    return scaled_dot_product_attention(x @ W_q, x @ W_k, x @ W_v)


@given(seed=st.integers(0, 1000), T=st.integers(2, 9))
@settings(max_examples=20)
def test_attention_without_positions_is_permutation_equivariant(seed, T):
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(3, 8, 8, generator=g, dtype=torch.float64).unbind(0)
    x = torch.randn(T, 8, generator=g, dtype=torch.float64)
    perm = torch.randperm(T, generator=g)
    torch.testing.assert_close(_self_attention(x[perm], weights), _self_attention(x, weights)[perm])


def test_positions_break_the_symmetry():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(3, 8, 8, generator=g, dtype=torch.float64).unbind(0)
    x = torch.randn(6, 8, generator=g, dtype=torch.float64)
    pe = sinusoidal_positions(6, 8, dtype=torch.float64)
    reverse = torch.arange(5, -1, -1)
    assert not torch.allclose(_self_attention(x[reverse] + pe, weights), _self_attention(x + pe, weights)[reverse])


def test_sinusoidal_module_buffer_is_non_persistent_and_moves():
    encode = SinusoidalPositionalEncoding(32, 8)
    assert list(encode.parameters()) == []
    assert [name for name, _ in encode.named_buffers()] == ["pe"]
    assert list(encode.state_dict()) == []
    assert not encode.pe.requires_grad
    torch.testing.assert_close(encode.pe, sinusoidal_positions(32, 8))
    assert encode.to(torch.float64).pe.dtype == torch.float64
    # A checkpoint saved with another max_len loads strictly, because the table is not in it.
    result = SinusoidalPositionalEncoding(4, 8).load_state_dict(encode.state_dict(), strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


@pytest.mark.parametrize("module_cls", ["sinusoidal", "learned"])
@pytest.mark.parametrize(("B", "T"), [(1, 1), (2, 5), (3, 16), (0, 4)])
def test_modules_add_the_rows_of_their_table(module_cls, B, T):
    module = SinusoidalPositionalEncoding(16, 6) if module_cls == "sinusoidal" else LearnedPositionalEmbedding(16, 6)
    table = module.pe if module_cls == "sinusoidal" else module.embedding.weight
    x = torch.randn(B, T, 6)
    out = module(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x + table[:T])
    positions = torch.randint(0, 16, (B, T))
    torch.testing.assert_close(module(x, positions=positions), x + table[positions])
    torch.testing.assert_close(module(x, positions=torch.arange(T).flip(0)), x + table[:T].flip(0))


@pytest.mark.parametrize("module", [SinusoidalPositionalEncoding(8, 4), LearnedPositionalEmbedding(8, 4)])
def test_modules_refuse_what_does_not_fit(module):
    with pytest.raises(ValueError, match="sequence length T=9 exceeds max_len=8"):
        module(torch.zeros(1, 9, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, embedding_dim=4\), got \(9, 4\)"):
        module(torch.zeros(9, 4))
    with pytest.raises(ValueError, match=r"embedding_dim=4\), got \(1, 3, 5\)"):
        module(torch.zeros(1, 3, 5))
    with pytest.raises(TypeError, match="x must be a floating-point tensor of token embeddings, got Tensor torch.int64"):
        module(torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be a floating-point tensor .* got list"):
        module([[0.0] * 4])
    with pytest.raises(ValueError, match=r"positions must lie in \[0, max_len=8\), got values from 0 to 8"):
        module(torch.zeros(1, 3, 4), positions=torch.tensor([0, 1, 8]))
    with pytest.raises(ValueError, match="positions must lie in .* from -1 to 1"):
        module(torch.zeros(1, 3, 4), positions=torch.tensor([-1, 0, 1]))
    with pytest.raises(TypeError, match="positions must be an integer tensor"):
        module(torch.zeros(1, 3, 4), positions=torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\) or \(B, T\) = \(1, 3\), got \(4,\)"):
        module(torch.zeros(1, 3, 4), positions=torch.arange(4))


def test_module_constructor_errors():
    with pytest.raises(ValueError, match="embedding_dim must be a positive even int"):
        SinusoidalPositionalEncoding(8, 5)
    with pytest.raises(ValueError, match="max_len must be an int of at least 1, got 0"):
        SinusoidalPositionalEncoding(0, 4)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        SinusoidalPositionalEncoding(8, 4, dropout=1.5)
    with pytest.raises(ValueError, match="base must be a positive finite number, got 0.0"):
        SinusoidalPositionalEncoding(8, 4, base=0.0)
    with pytest.raises(ValueError, match="max_len must be an int of at least 1, got -3"):
        LearnedPositionalEmbedding(-3, 4)
    with pytest.raises(ValueError, match="embedding_dim must be an int of at least 1"):
        LearnedPositionalEmbedding(4, 0)
    assert LearnedPositionalEmbedding(4, 3)(torch.zeros(1, 2, 3)).shape == (1, 2, 3)  # odd widths are fine here


@pytest.mark.parametrize("module_cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_dropout_only_in_training(module_cls):
    module = module_cls(64, 8, dropout=0.5)
    x = torch.randn(4, 64, 8)
    out = module(x)
    zeros = (out == 0).float().mean().item()
    assert 0.4 < zeros < 0.6
    module.eval()
    clean = module(x)
    assert not (clean == 0).any()
    kept = out != 0
    torch.testing.assert_close(out[kept], 2 * clean[kept])


def test_gradients():
    encode = SinusoidalPositionalEncoding(8, 4).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(encode, (x,))
    learned = LearnedPositionalEmbedding(8, 4).double()
    assert torch.autograd.gradcheck(learned, (x,))
    learned(x).sum().backward()
    grad = learned.embedding.weight.grad
    # Two sequences of five: rows 0..4 receive a gradient of 2 per entry, rows 5..7 nothing.
    torch.testing.assert_close(grad[:5], torch.full((5, 4), 2.0, dtype=torch.float64))
    assert torch.equal(grad[5:], torch.zeros(3, 4, dtype=torch.float64))


def test_module_output_keeps_the_input_dtype():
    encode = SinusoidalPositionalEncoding(8, 4)
    assert encode(torch.zeros(1, 3, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16
    assert LearnedPositionalEmbedding(8, 4)(torch.zeros(1, 3, 4, dtype=torch.float64)).dtype == torch.float64


def test_positions_from_padding_mask():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    expected = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    assert torch.equal(positions_from_padding_mask(mask), expected)
    assert torch.equal(positions_from_padding_mask(mask.bool()), expected)
    assert positions_from_padding_mask(torch.ones(0, 3, dtype=torch.bool)).shape == (0, 3)
    with pytest.raises(TypeError, match="mask must be a bool or integer tensor"):
        positions_from_padding_mask(mask.float())
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\), got \(5,\)"):
        positions_from_padding_mask(mask[0])
    with pytest.raises(ValueError, match="only 0 .* and 1"):
        positions_from_padding_mask(mask * 2)


@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4), left=st.booleans())
@settings(max_examples=25)
def test_padded_batches_encode_like_unpadded_sentences(lengths, left):
    T = max(lengths)
    g = torch.Generator().manual_seed(len(lengths))
    sentences = [torch.randn(1, n, 4, generator=g) for n in lengths]
    encode = SinusoidalPositionalEncoding(8, 4)
    learned = LearnedPositionalEmbedding(8, 4)
    batch, mask = torch.zeros(len(lengths), T, 4), torch.zeros(len(lengths), T, dtype=torch.bool)
    for b, (s, n) in enumerate(zip(sentences, lengths, strict=True)):
        columns = slice(T - n, T) if left else slice(0, n)
        batch[b, columns], mask[b, columns] = s[0], True
    positions = positions_from_padding_mask(mask)
    for module in (encode, learned):
        out = module(batch, positions=positions)
        for b, s in enumerate(sentences):
            torch.testing.assert_close(out[b][mask[b]], module(s)[0])


def test_left_padding_with_arange_shifts_positions():
    encode = SinusoidalPositionalEncoding(8, 4)
    sentence = torch.randn(1, 3, 4)
    padded = torch.cat([torch.zeros(1, 2, 4), sentence], dim=1)
    assert not torch.allclose(encode(padded)[:, 2:], encode(sentence))
    right_padded = torch.cat([sentence, torch.zeros(1, 2, 4)], dim=1)
    torch.testing.assert_close(encode(right_padded)[:, :3], encode(sentence))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sinusoidal_positions_for_matches_the_table(dtype):
    T, d = 40, 10
    torch.testing.assert_close(
        sinusoidal_positions_for(torch.arange(T, dtype=dtype), d), sinusoidal_positions(T, d, dtype=dtype)
    )
    assert sinusoidal_positions_for(torch.arange(T), d).dtype == torch.float32
    half = sinusoidal_positions_for(torch.tensor([[0.5, 1.5]], dtype=torch.float64), 4)
    assert half.shape == (1, 2, 4)
    with pytest.raises(TypeError, match="positions must be a real-valued tensor"):
        sinusoidal_positions_for(torch.tensor([True]), 4)


def test_relative_position_bias_indices_values():
    idx = relative_position_bias_indices(6, 2)
    assert idx.dtype == torch.int64 and idx.shape == (6, 6)
    assert idx.diagonal().eq(2).all() and idx.min() == 0 and idx.max() == 4
    assert torch.equal(idx[0], torch.tensor([2, 3, 4, 4, 4, 4]))
    with pytest.raises(ValueError, match="max_distance must be an int of at least 0, got -1"):
        relative_position_bias_indices(3, -1)


def test_challenge_solutions_pass_their_checkers():
    assert check_sinusoidal_positions_for(sinusoidal_positions_for) is None
    assert check_relative_position_bias_indices(relative_position_bias_indices) is None


def _concatenated_attempt(positions, embedding_dim, base=10000.0):
    return interleaved_to_concatenated(sinusoidal_positions_for(positions, embedding_dim, base))


def _rounding_attempt(positions, embedding_dim, base=10000.0):
    return sinusoidal_positions_for(positions.round(), embedding_dim, base)


def _fairseq_frequencies_attempt(positions, embedding_dim, base=10000.0):
    if embedding_dim % 2:
        raise ValueError("odd")
    half = embedding_dim // 2
    omega = torch.exp(-math.log(base) * torch.arange(half, dtype=torch.float64) / max(half - 1, 1))
    angles = positions.double()[..., None] * omega
    dtype = positions.dtype if positions.is_floating_point() else torch.float32
    return torch.stack([angles.sin(), angles.cos()], -1).flatten(-2).to(dtype)


def _float32_always_attempt(positions, embedding_dim, base=10000.0):
    return sinusoidal_positions_for(positions, embedding_dim, base).float()


def _no_validation_attempt(positions, embedding_dim, base=10000.0):
    if embedding_dim % 2:
        return torch.zeros(*positions.shape, embedding_dim)
    return sinusoidal_positions_for(positions, embedding_dim, base)


@pytest.mark.parametrize(
    ("attempt", "match"),
    [
        (_concatenated_attempt, "interleaved"),
        (_rounding_attempt, "is wrong"),
        (_fairseq_frequencies_attempt, "is wrong"),
        (_float32_always_attempt, "dtype"),
        (_no_validation_attempt, "should raise ValueError"),
    ],
)
def test_positions_checker_rejects_wrong_attempts(attempt, match):
    with pytest.raises(AssertionError, match=match):
        check_sinusoidal_positions_for(attempt)


def _reversed_offset_attempt(T, max_distance):
    return relative_position_bias_indices(T, max_distance).T.contiguous()


def _unclipped_attempt(T, max_distance):
    if T < 0 or max_distance < 0:
        raise ValueError("negative")
    return torch.arange(T)[None, :] - torch.arange(T)[:, None] + max_distance


def _unshifted_attempt(T, max_distance):
    return relative_position_bias_indices(T, max_distance) - max_distance


@pytest.mark.parametrize("attempt", [_reversed_offset_attempt, _unclipped_attempt, _unshifted_attempt])
def test_relative_checker_rejects_wrong_attempts(attempt):
    with pytest.raises(AssertionError, match="gave"):
        check_relative_position_bias_indices(attempt)


def test_plots_draw_figures():
    heatmap = plot_sinusoidal_heatmap(num_positions=10, embedding_dim=8)
    assert isinstance(heatmap, Figure) and len(heatmap.axes) == 4

def test_both_modules_take_max_len_then_embedding_dim():
    import inspect

    for cls in (SinusoidalPositionalEncoding, LearnedPositionalEmbedding):
        assert list(inspect.signature(cls).parameters)[:3] == ["max_len", "embedding_dim", "dropout"], cls
        module = cls(12, 6)
        assert (module.max_len, module.embedding_dim) == (12, 6)
    assert SinusoidalPositionalEncoding(12, 6).pe.shape == LearnedPositionalEmbedding(12, 6).embedding.weight.shape


def test_the_table_survives_meta_initialisation_only_through_reset_parameters():
    with torch.device("meta"):
        module = SinusoidalPositionalEncoding(16, 8)
    assert module.pe.is_meta
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # uninitialised memory is filled with NaN: garbage made visible
    try:
        module.to_empty(device="cpu")
    finally:
        torch.use_deterministic_algorithms(previous)
    result = module.load_state_dict({}, strict=True)  # reports success: the buffer is not in any checkpoint
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert module.pe.isnan().all()
    module.reset_parameters()
    assert torch.equal(module.pe, sinusoidal_positions(16, 8))
    # reset_parameters keeps the buffer's dtype, and recomputes rather than casts.
    module.double().pe.fill_(0.0)
    module.reset_parameters()
    assert torch.equal(module.pe, sinusoidal_positions(16, 8, dtype=torch.float64))
    # A learned table is a parameter: the checkpoint restores it.
    with torch.device("meta"):
        learned = LearnedPositionalEmbedding(16, 8)
    learned.to_empty(device="cpu")
    trained = LearnedPositionalEmbedding(16, 8)
    learned.load_state_dict(trained.state_dict())
    assert torch.equal(learned.embedding.weight, trained.embedding.weight)


def test_the_learned_table_starts_from_nn_embeddings_n01():
    torch.manual_seed(0)
    learned = LearnedPositionalEmbedding(1024, 256)
    assert 0.98 < learned.embedding.weight.std().item() < 1.02
