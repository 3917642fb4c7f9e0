"""The proof for torchenstein.nn.embeddings: the from-scratch lookup, module and tied head equal PyTorch's."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from torch import nn

from torchenstein.lab import device_available
from torchenstein.nn.embeddings import (
    Embedding,
    TinyLanguageModel,
    check_embedding_bag_mean,
    check_tie_embedding_to_head,
    embedding,
    embedding_bag_mean,
    embedding_costs,
    one_hot_embedding,
    plot_embedding_similarity,
    plot_one_hot_lookup,
    tie_embedding_to_head,
)
from torchenstein.tensors.surgery import shares_memory

ID_SHAPES = [(), (0,), (1,), (7,), (2, 3), (4, 1), (2, 0, 3), (2, 3, 4)]
WEIGHT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _ids(shape, num_embeddings, seed, dtype=torch.int64):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_embeddings, shape, generator=generator).to(dtype)


def _table(num_embeddings, embedding_dim, seed, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed + 100)
    return torch.randn(num_embeddings, embedding_dim, generator=generator).to(dtype)


def _grads(fn, weight, ids, upstream_seed, **kwargs):
    w = weight.clone().requires_grad_()
    out = fn(ids, w, **kwargs)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(upstream_seed)).to(out.dtype)
    (out * upstream).sum().backward()
    return out, w.grad


# The functional lookup


@pytest.mark.parametrize("shape", ID_SHAPES)
@pytest.mark.parametrize("id_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1, -6])
def test_embedding_equals_torch_forward_and_backward(shape, id_dtype, padding_idx):
    ids = _ids(shape, 6, seed=len(shape), dtype=id_dtype)
    weight = _table(6, 5, seed=1)
    ours, our_grad = _grads(embedding, weight, ids, 7, padding_idx=padding_idx)
    theirs, their_grad = _grads(F.embedding, weight, ids, 7, padding_idx=padding_idx)
    assert ours.shape == (*shape, 5)
    assert torch.equal(ours, theirs)
    torch.testing.assert_close(our_grad, their_grad)
    if padding_idx is not None:
        assert our_grad[padding_idx % 6].eq(0).all()


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
def test_embedding_keeps_the_table_dtype_and_matches_torch(dtype):
    ids = _ids((3, 4), 9, seed=2)
    weight = _table(9, 3, seed=2, dtype=dtype)
    ours, our_grad = _grads(embedding, weight, ids, 3, padding_idx=1)
    theirs, their_grad = _grads(F.embedding, weight, ids, 3, padding_idx=1)
    assert ours.dtype == dtype and our_grad.dtype == dtype
    assert torch.equal(ours, theirs)
    torch.testing.assert_close(our_grad, their_grad)


@settings(max_examples=25)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple),
    num_embeddings=st.integers(1, 8),
    embedding_dim=st.integers(1, 4),
    seed=st.integers(0, 1000),
    use_padding=st.booleans(),
)
def test_embedding_equals_torch_on_random_shapes(shape, num_embeddings, embedding_dim, seed, use_padding):
    ids = _ids(shape, num_embeddings, seed)
    weight = _table(num_embeddings, embedding_dim, seed, dtype=torch.float64)
    padding_idx = seed % num_embeddings if use_padding else None
    ours, our_grad = _grads(embedding, weight, ids, seed, padding_idx=padding_idx)
    theirs, their_grad = _grads(F.embedding, weight, ids, seed, padding_idx=padding_idx)
    assert torch.equal(ours, theirs)
    torch.testing.assert_close(our_grad, their_grad)


HALF_TABLES = {torch.float16: 2**-11, torch.bfloat16: 2**-8}  # one rounding: half a spacing, relative


@pytest.mark.parametrize("dtype", list(HALF_TABLES))
def test_half_table_gradients_of_repeated_ids_are_summed_in_float32_unlike_pytorchs_cpu(dtype):
    # The pinned difference: PyTorch's CPU kernel adds a repeated id's gradients one by one in the table's
    # dtype; ours sums in float32 and rounds once, so it stays within one rounding of the exact sum.
    ids = torch.arange(1500) % 3  # ids 0, 1 and 2, each 500 times
    upstream = torch.randn(1500, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    grads = {}
    for name, lookup in (("ours", embedding), ("torch", F.embedding)):
        table = torch.zeros(3, 4, dtype=dtype, requires_grad=True)
        (lookup(ids, table) * upstream).sum().backward()
        grads[name] = table.grad
    exact = torch.zeros(3, 4, dtype=torch.float64).index_add_(0, ids, upstream.double())
    assert grads["ours"].dtype == dtype
    assert torch.equal(grads["ours"], torch.zeros(3, 4).index_add_(0, ids, upstream.float()).to(dtype))
    within_one_rounding = (grads["ours"].double() - exact).abs() <= HALF_TABLES[dtype] * exact.abs()
    assert bool(within_one_rounding.all())
    torch_error, our_error = ((grads[k].double() - exact).abs().max().item() for k in ("torch", "ours"))
    assert torch_error > 4 * our_error


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_precision_gradients_of_repeated_ids_match_torch(dtype):
    ids = torch.arange(1500) % 3
    weight = _table(3, 4, seed=0, dtype=dtype)
    _, ours = _grads(embedding, weight, ids, 1)
    _, theirs = _grads(F.embedding, weight, ids, 1)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("dtype", WEIGHT_DTYPES)
def test_strided_and_expanded_ids_and_tables_match_torch(dtype):
    # Non-contiguous ids (a transpose), stride-0 ids (an expand), and a table that is a non-contiguous view.
    ids = _ids((4, 3), 7, seed=5)
    table = _table(7, 5, seed=5, dtype=dtype).T.contiguous().T
    assert not table.is_contiguous()
    for name, t in (("transposed", ids.T), ("expanded", ids[:1].expand(4, 3)), ("contiguous", ids)):
        ours, our_grad = _grads(embedding, table, t, 2, padding_idx=-1)
        theirs, their_grad = _grads(F.embedding, table, t, 2, padding_idx=6)
        assert torch.equal(ours, theirs), name
        if dtype in HALF_TABLES:
            # Repeated ids: the documented difference. Ours is the exact gradient rounded once.
            upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(2)).to(dtype).double()
            exact = torch.zeros(7, 5, dtype=torch.float64).index_add_(0, t.reshape(-1), upstream.reshape(-1, 5))
            exact[6] = 0.0  # the padding row
            assert bool(((our_grad.double() - exact).abs() <= HALF_TABLES[dtype] * exact.abs() + 1e-6).all()), name
        else:
            torch.testing.assert_close(our_grad, their_grad, msg=lambda m, name=name: f"{name}: {m}")


def test_embedding_gradcheck_and_gradgradcheck():
    ids = torch.tensor([[0, 3, 3], [1, 4, 0]])
    weight = _table(5, 3, seed=4, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda w: embedding(ids, w), (weight,))
    assert torch.autograd.gradgradcheck(lambda w: embedding(ids, w) ** 2, (weight,))
    # With a padding row the gradient is wrong on purpose where the padding id is used, so gradcheck
    # only holds for ids that avoid it.
    assert torch.autograd.gradcheck(lambda w: embedding(ids.clamp(min=1), w, padding_idx=0), (weight,))


def test_repeated_ids_accumulate_and_unused_rows_get_zero():
    weight = _table(5, 2, seed=0).requires_grad_()
    embedding(torch.tensor([[1, 1], [1, 3]]), weight).sum().backward()
    assert weight.grad[:, 0].tolist() == [0.0, 3.0, 0.0, 1.0, 0.0]


def test_padding_only_silences_the_gradient_not_the_forward():
    weight = _table(4, 3, seed=5)
    assert torch.equal(embedding(torch.tensor([2]), weight, padding_idx=2)[0], weight[2])


def test_embedding_on_a_frozen_table_and_without_grad():
    weight = _table(4, 3, seed=6)
    with torch.no_grad():
        out = embedding(torch.tensor([3, 0]), weight.requires_grad_())
    assert not out.requires_grad
    assert not embedding(torch.tensor([3]), _table(4, 3, seed=6)).requires_grad


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        (torch.tensor([1.0]), TypeError, r"integer token ids \(torch.int64 or torch.int32\), got dtype torch.float32"),
        (torch.tensor([True]), TypeError, "got dtype torch.bool"),
        (torch.tensor([1], dtype=torch.int16), TypeError, "got dtype torch.int16"),
        ([1, 2], TypeError, "must be a torch.Tensor of token ids, got list"),
        (torch.tensor([0, 5]), IndexError, r"token id 5, but num_embeddings is 5: ids must lie in \[0, 5\)"),
        (torch.tensor([[-1, 2]]), IndexError, "token id -1, but num_embeddings is 5"),
    ],
)
def test_embedding_refuses_bad_ids(ids, error, message):
    with pytest.raises(error, match=message):
        embedding(ids, torch.zeros(5, 2))


def test_embedding_refuses_bad_tables_and_padding():
    with pytest.raises(ValueError, match=r"weight must be a 2-D tensor \(num_embeddings, embedding_dim\), got shape \(5,\)"):
        embedding(torch.tensor([0]), torch.zeros(5))
    with pytest.raises(ValueError, match=r"padding_idx must be in \[-5, 5\) for num_embeddings=5, got -6"):
        embedding(torch.tensor([0]), torch.zeros(5, 2), padding_idx=-6)
    with pytest.raises(TypeError, match="padding_idx must be an int or None, got float"):
        embedding(torch.tensor([0]), torch.zeros(5, 2), padding_idx=1.0)


def test_torch_accepts_exactly_the_id_dtypes_ours_accepts():
    weight = torch.randn(4, 2)
    for dtype in (torch.int64, torch.int32):
        assert torch.equal(F.embedding(torch.tensor([3, 1], dtype=dtype), weight), embedding(torch.tensor([3, 1]), weight))
    for dtype in (torch.float32, torch.int16, torch.uint8):
        with pytest.raises(RuntimeError, match="Long, Int"):
            F.embedding(torch.tensor([3, 1], dtype=dtype), weight)
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding(torch.tensor([4]), weight)


# The one-hot matmul and its cost


@pytest.mark.parametrize("shape", [(0,), (3,), (2, 5), (2, 2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_hot_matmul_is_the_lookup_forwards_and_backwards(shape, dtype):
    ids = _ids(shape, 7, seed=3)
    weight = _table(7, 4, seed=3, dtype=dtype)
    matmul, matmul_grad = _grads(one_hot_embedding, weight, ids, 9)
    lookup, lookup_grad = _grads(embedding, weight, ids, 9)
    assert torch.equal(matmul, lookup)
    torch.testing.assert_close(matmul_grad, lookup_grad)


def test_a_nan_row_poisons_every_token_of_the_one_hot_matmul_but_only_its_own_in_the_lookup():
    weight = _table(5, 3, seed=2)
    weight[4] = float("nan")
    ids = torch.tensor([[1, 2, 3], [2, 4, 0]])
    assert embedding(ids, weight).isnan().any(-1).tolist() == [[False, False, False], [False, True, False]]
    assert one_hot_embedding(ids, weight).isnan().all()


def test_one_hot_matmul_refuses_bad_input():
    with pytest.raises(TypeError, match="got dtype torch.float32"):
        one_hot_embedding(torch.tensor([1.0]), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="2-D"):
        one_hot_embedding(torch.tensor([1]), torch.zeros(3))


def test_embedding_costs_follow_the_formulas():
    n, v, d = 10, 100, 8
    costs = embedding_costs(n, v, d, element_size=2)
    assert costs["one-hot matmul"] == {"flops": 2 * n * v * d, "temporary_bytes": n * v * 2, "bytes_read": (n * v + v * d) * 2}
    assert costs["lookup"] == {"flops": 0, "temporary_bytes": 0, "bytes_read": n * d * 2}
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"num_tokens must be at least 1, got {bad}"):
            embedding_costs(bad, v, d)
    for bad in (1.5, True):
        with pytest.raises(TypeError, match="element_size must be an int"):
            embedding_costs(n, v, d, element_size=bad)


# The module


@pytest.mark.parametrize(
    ("num_embeddings", "embedding_dim", "padding_idx"),
    [(1, 1, None), (5, 4, None), (5, 4, 0), (5, 4, 4), (5, 4, -1), (5, 4, -5), (33, 7, 10), (300, 17, None)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_seed_same_weights_as_nn_embedding(num_embeddings, embedding_dim, padding_idx, seed):
    torch.manual_seed(seed)
    ours = Embedding(num_embeddings, embedding_dim, padding_idx)
    torch.manual_seed(seed)
    theirs = nn.Embedding(num_embeddings, embedding_dim, padding_idx)
    assert torch.equal(ours.weight, theirs.weight)
    assert ours.padding_idx == theirs.padding_idx
    assert (ours.num_embeddings, ours.embedding_dim) == (theirs.num_embeddings, theirs.embedding_dim)
    assert ours.extra_repr() == theirs.extra_repr()
    assert isinstance(ours.weight, nn.Parameter) and ours.weight.requires_grad
    ids = _ids((2, 6), num_embeddings, seed)
    assert torch.equal(ours(ids), theirs(ids))
    ours(ids).square().sum().backward()
    theirs(ids).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)


def test_the_generator_is_left_where_pytorch_leaves_it():
    torch.manual_seed(3)
    Embedding(6, 2, padding_idx=1)
    after_ours = torch.rand(4)
    torch.manual_seed(3)
    nn.Embedding(6, 2, padding_idx=1)
    assert torch.equal(after_ours, torch.rand(4))


def test_dtype_and_device_arguments():
    torch.manual_seed(0)
    ours = Embedding(8, 3, dtype=torch.float64)
    torch.manual_seed(0)
    theirs = nn.Embedding(8, 3, dtype=torch.float64)
    assert ours.weight.dtype == torch.float64 and torch.equal(ours.weight, theirs.weight)
    ghost = Embedding(8, 3, padding_idx=0, device="meta")
    assert ghost.weight.device.type == "meta" and ghost.weight.shape == (8, 3)


def test_state_dicts_move_both_ways():
    ours, theirs = Embedding(6, 3, padding_idx=2), nn.Embedding(6, 3, padding_idx=2)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    ours.load_state_dict(theirs.state_dict())
    assert torch.equal(ours.weight, theirs.weight)
    fresh = nn.Embedding(6, 3)
    fresh.load_state_dict(Embedding(6, 3).state_dict())
    ids = torch.tensor([[5, 2, 0]])
    assert torch.equal(ours(ids), theirs(ids))


def test_reset_parameters_redraws_and_rezeroes_the_padding_row():
    emb = Embedding(4, 3, padding_idx=3)
    with torch.no_grad():
        emb.weight.fill_(7.0)
    torch.manual_seed(1)
    emb.reset_parameters()
    torch.manual_seed(1)
    expected = torch.randn(4, 3)
    expected[3] = 0
    assert torch.equal(emb.weight, expected)


def test_the_module_trains_only_the_non_padding_rows():
    emb = Embedding(5, 2, padding_idx=0)
    optimizer = torch.optim.SGD(emb.parameters(), lr=1.0)
    before = emb.weight.detach().clone()
    emb(torch.tensor([[0, 1], [0, 0]])).sum().backward()
    optimizer.step()
    changed = (emb.weight != before).any(1)
    assert changed.tolist() == [False, True, False, False, False]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0, 3), {}, ValueError, "num_embeddings must be at least 1, got 0"),
        ((4, -2), {}, ValueError, "embedding_dim must be at least 1, got -2"),
        ((4.0, 3), {}, TypeError, "num_embeddings must be an int, got float"),
        ((4, 3, 4), {}, ValueError, r"padding_idx must be in \[-4, 4\)"),
        ((4, 3), {"_weight": torch.zeros(3, 4)}, ValueError, r"_weight must have shape \(4, 3\), got \(3, 4\)"),
    ],
)
def test_the_module_refuses_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        Embedding(*args, **kwargs)


def test_the_module_names_the_bad_id():
    with pytest.raises(IndexError, match="token id 9, but num_embeddings is 9"):
        Embedding(9, 2)(torch.tensor([[0, 9]]))


@pytest.mark.parametrize("freeze", [True, False])
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_from_pretrained_matches_pytorch(freeze, padding_idx):
    table = _table(4, 3, seed=11)
    ours = Embedding.from_pretrained(table, freeze=freeze, padding_idx=padding_idx)
    theirs = nn.Embedding.from_pretrained(table.clone(), freeze=freeze, padding_idx=padding_idx)
    assert torch.equal(ours.weight, theirs.weight)
    assert torch.equal(ours.weight, table), "the padding row is kept as given"
    assert ours.weight.requires_grad == theirs.weight.requires_grad == (not freeze)
    assert ours.padding_idx == theirs.padding_idx
    assert shares_memory(ours.weight, table), "from_pretrained wraps the tensor, it does not copy"


def test_from_pretrained_refuses_a_vector():
    with pytest.raises(ValueError, match=r"embeddings must be a 2-D tensor .* got shape \(4,\)"):
        Embedding.from_pretrained(torch.ones(4))
    with pytest.raises(TypeError, match="embeddings must be a torch.Tensor, got list"):
        Embedding.from_pretrained([[1.0, 2.0]])


# Weight tying


def test_the_tied_model_shares_one_parameter_and_counts_it_once():
    tied, untied = TinyLanguageModel(11, 5), TinyLanguageModel(11, 5, tied=False)
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight is not untied.embed.weight
    v, d = 11, 5
    assert sum(p.numel() for p in tied.parameters()) == v * d + d * d + d
    assert sum(p.numel() for p in untied.parameters()) == 2 * v * d + d * d + d
    assert [name for name, _ in tied.named_parameters()] == ["embed.weight", "mix.weight", "mix.bias"]
    assert list(tied.state_dict()) == ["embed.weight", "mix.weight", "mix.bias", "head.weight"]
    assert tied(torch.zeros(3, 4, dtype=torch.long)).shape == (3, 4, v)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tied_gradients_are_the_sum_of_both_uses(seed):
    torch.manual_seed(seed)
    tied = TinyLanguageModel(9, 4).double()
    untied = TinyLanguageModel(9, 4, tied=False).double()
    untied.load_state_dict(tied.state_dict())
    tokens = _ids((3, 7), 9, seed)
    for model in (tied, untied):
        logits = model(tokens[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
    assert torch.allclose(tied.mix.weight.grad, untied.mix.weight.grad)
    torch.testing.assert_close(tied.embed.weight.grad, untied.embed.weight.grad + untied.head.weight.grad)


def test_the_first_loss_is_about_ln_v_unless_a_tied_table_is_drawn_from_n01():
    torch.manual_seed(0)
    tokens = torch.randint(0, 500, (4, 33))
    losses = {}
    for name, kwargs in (("gpt2", {}), ("n01 tied", {"init_std": None}), ("n01 untied", {"tied": False, "init_std": None})):
        model = TinyLanguageModel(500, 128, **kwargs)
        logits = model(tokens[:, :-1])
        losses[name] = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).item()
    ln_v = math.log(500)
    assert abs(losses["gpt2"] - ln_v) < 0.1 and abs(losses["n01 untied"] - ln_v) < 0.3
    assert losses["n01 tied"] > 2 * ln_v
    std = TinyLanguageModel(500, 128).embed.weight.std().item()
    assert 0.019 < std < 0.021


def test_a_tie_survives_training_and_casting_a_copy_does_not():
    tied = TinyLanguageModel(6, 3)
    copied = TinyLanguageModel(6, 3, tied=False)
    with torch.no_grad():
        copied.head.weight.copy_(copied.embed.weight)
    tokens = torch.tensor([[1, 2, 3, 4]])
    for model in (tied, copied):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model(tokens).logsumexp(-1).sum().backward()
        optimizer.step()
    assert torch.equal(tied.head.weight, tied.embed.weight)
    assert not torch.equal(copied.head.weight, copied.embed.weight)
    tied.to(torch.float64)
    assert tied.head.weight is tied.embed.weight


def test_weight_decay_moves_a_non_zero_padding_row_but_not_a_zero_one():
    for optimizer_class in (torch.optim.SGD, torch.optim.AdamW):
        pretrained = nn.Embedding.from_pretrained(torch.tensor([[2.0, -2.0], [1.0, 1.0]]), freeze=False, padding_idx=0)
        fresh = Embedding(2, 2, padding_idx=0)
        for emb in (pretrained, fresh):
            optimizer = optimizer_class(emb.parameters(), lr=0.1, weight_decay=0.5)
            emb(torch.tensor([0, 1])).sum().backward()
            assert emb.weight.grad[0].eq(0).all()
            optimizer.step()
        assert not torch.equal(pretrained.weight[0], torch.tensor([2.0, -2.0])), optimizer_class.__name__
        assert fresh.weight[0].eq(0).all(), optimizer_class.__name__


# Challenges


def test_embedding_bag_mean_solution_passes_and_refuses_bad_offsets():
    assert check_embedding_bag_mean(embedding_bag_mean) is None
    weight = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"offsets must start at 0 .* got \[1, 2\]"):
        embedding_bag_mean(torch.tensor([0, 1, 2]), torch.tensor([1, 2]), weight)
    with pytest.raises(ValueError, match=r"got \[0, 5\]"):
        embedding_bag_mean(torch.tensor([0, 1, 2]), torch.tensor([0, 5]), weight)
    with pytest.raises(ValueError, match="at least one bag"):
        embedding_bag_mean(torch.tensor([0, 1, 2]), torch.tensor([], dtype=torch.long), weight)
    with pytest.raises(TypeError, match="offsets must hold integer token ids"):
        embedding_bag_mean(torch.tensor([0]), torch.tensor([0.0]), weight)


def test_embedding_bag_mean_checker_rejects_plausible_mistakes():
    def divides_by_zero(input, offsets, weight):
        ends = torch.cat([offsets[1:], offsets.new_tensor([input.numel()])])
        bags = torch.repeat_interleave(torch.arange(len(offsets)), ends - offsets)
        sums = weight.new_zeros(len(offsets), weight.shape[1]).index_add(0, bags, weight[input])
        return sums / (ends - offsets).unsqueeze(1)

    def sums_instead(input, offsets, weight):
        return F.embedding_bag(input, weight, offsets, mode="sum")

    def detached(input, offsets, weight):
        return F.embedding_bag(input, weight.detach(), offsets, mode="mean")

    for attempt, hint in [(divides_by_zero, "NaN"), (sums_instead, "wrong means"), (detached, "autograd")]:
        with pytest.raises(AssertionError, match=hint):
            check_embedding_bag_mean(attempt)


def test_tie_solution_passes_and_refuses_mismatches():
    assert check_tie_embedding_to_head(tie_embedding_to_head) is None
    with pytest.raises(ValueError, match=r"embedding's shape \(7, 3\) .* got \(8, 3\)"):
        tie_embedding_to_head(nn.Embedding(7, 3), nn.Linear(3, 8))
    with pytest.raises(TypeError, match="head must be an nn.Linear, got Embedding"):
        tie_embedding_to_head(nn.Embedding(7, 3), nn.Embedding(7, 3))
    with pytest.raises(TypeError, match="embedding must have a weight Parameter, got NoneType"):
        tie_embedding_to_head(nn.ReLU(), nn.Linear(3, 7))


def test_tie_checker_rejects_plausible_mistakes():
    def copies(embedding, head):
        head.weight = nn.Parameter(embedding.weight.detach().clone())
        return head

    def ties_backwards(embedding, head):
        embedding.weight = head.weight
        return head

    def forgets_the_shape_check(embedding, head):
        head.weight = embedding.weight
        return head

    for attempt, hint in [(copies, "not a copy"), (ties_backwards, "values changed"), (forgets_the_shape_check, "ValueError")]:
        with pytest.raises(AssertionError, match=hint):
            check_tie_embedding_to_head(attempt)


# Figures


def test_figures_draw_and_refuse_bad_arguments():
    assert isinstance(plot_one_hot_lookup(), Figure)
    assert len(plot_embedding_similarity(num_embeddings=4, dims=(2, 3, 5)).axes) == 4
    with pytest.raises(ValueError, match=r"ids must be a non-empty tuple of ids in \[0, 6\)"):
        plot_one_hot_lookup(ids=(6,))
    with pytest.raises(ValueError, match="dims must name at least one"):
        plot_embedding_similarity(dims=())


def test_the_similarity_figure_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    plot_embedding_similarity(num_embeddings=3, dims=(2,))
    assert torch.equal(torch.rand(3), expected)


# On an accelerator


@pytest.mark.skipif(not device_available("cuda"), reason="needs a CUDA device")
def test_on_cuda_the_module_matches_nn_embedding():
    torch.manual_seed(0)
    ours = Embedding(50, 8, padding_idx=3, device="cuda")
    torch.manual_seed(0)
    theirs = nn.Embedding(50, 8, padding_idx=3, device="cuda")
    assert torch.equal(ours.weight, theirs.weight)
    ids = torch.randint(0, 50, (4, 16), device="cuda")
    assert torch.equal(ours(ids), theirs(ids))
    ours(ids).square().sum().backward()
    theirs(ids).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
    assert ours.weight.grad[3].eq(0).all()
    with pytest.raises(IndexError, match="token id 50, but num_embeddings is 50"):
        ours(torch.tensor([50], device="cuda"))
