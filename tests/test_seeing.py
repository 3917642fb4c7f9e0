"""The proof for the lesson on seeing attention: the twin models agree, the hooks clean up, the scores are
what they claim, training finds a previous-token head and induction heads, and ablation is exact."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchenstein.transformers.seeing import (
    AttentionOnlyTransformer,
    ablate_head,
    attention_maps,
    check_token_induction_score,
    check_zero_value_head,
    evaluate_induction,
    head_ablation_losses,
    head_scores,
    induction_batch,
    induction_score,
    previous_token_score,
    second_half_loss,
    token_induction_score,
    train_induction_model,
    zero_value_head,
)

V, MAX_HALF = 16, 12


@pytest.fixture(scope="module")
def trained():
    """The lesson's model at its defaults, the same untrained model, and held-out sequences."""
    model = train_induction_model()
    baseline = train_induction_model(steps=0)  # the very initialisation the training started from
    held_out = induction_batch(64, 8, V, generator=torch.Generator().manual_seed(1))
    return model, baseline, held_out


def _twins(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    ours = AttentionOnlyTransformer(V, 2 * MAX_HALF, embed_dim=16, num_heads=4).to(dtype)
    with torch.no_grad():  # biases away from zero, so they are compared too
        for layer in ours.layers:
            layer.in_proj_bias.normal_()
            layer.out_proj.bias.normal_()
    theirs = AttentionOnlyTransformer(V, 2 * MAX_HALF, embed_dim=16, num_heads=4,
                                      attention_class=nn.MultiheadAttention).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


# The twins: the course's layers and PyTorch's, one state_dict.


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("half_len", [2, 5, 12])
def test_twins_give_the_same_logits_gradients_and_maps(dtype, half_len):
    ours, theirs = _twins(dtype)
    tokens = induction_batch(3, half_len, V, generator=torch.Generator().manual_seed(half_len))
    # Training mode: PyTorch's weight-computing path, so the logits agree to the last bit.
    ours_logits, theirs_logits = ours(tokens), theirs(tokens)
    assert torch.equal(ours_logits, theirs_logits)
    second_half_loss(ours_logits, tokens).backward()
    second_half_loss(theirs_logits, tokens).backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, name=name: f"{name}: {m}")
    # attention_maps reads in evaluation without gradients, where PyTorch takes its fused fast path.
    ours_maps, theirs_maps = attention_maps(ours, tokens), attention_maps(theirs, tokens)
    assert list(ours_maps) == list(theirs_maps) == ["layers.0", "layers.1"]
    torch.testing.assert_close(ours_maps, theirs_maps)
    assert all(w.shape == (3, 4, 2 * half_len, 2 * half_len) and w.dtype == dtype for w in ours_maps.values())


def test_state_dict_moves_both_ways_and_keys_match_pytorch():
    ours, theirs = _twins()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.load_state_dict(theirs.state_dict()).missing_keys == []


def test_the_maps_are_the_layers_own_weights():
    ours, _ = _twins(torch.float64)
    tokens = induction_batch(2, 6, V, generator=torch.Generator().manual_seed(2))
    maps = attention_maps(ours, tokens)
    x = ours.positions(ours.embed(tokens))
    hide = torch.ones(12, 12, dtype=torch.bool).triu(1)
    for i, layer in enumerate(ours.layers):
        out, weights = layer(x, x, x, attn_mask=hide, average_attn_weights=False)
        assert torch.equal(maps[f"layers.{i}"], weights.detach())
        x = x + out


# attention_maps: hooks removed, modes restored, clear errors.


@pytest.mark.parametrize("training", [True, False])
def test_attention_maps_restores_mode_and_grad_mode_and_removes_hooks(training):
    model = AttentionOnlyTransformer(V, 8, embed_dim=8, num_heads=2, dropout=0.5).train(training)
    tokens = induction_batch(2, 4, V)
    maps = attention_maps(model, tokens)
    assert model.training is training and torch.is_grad_enabled()
    assert all(len(layer._forward_hooks) == 0 for layer in model.layers)
    assert all(not w.requires_grad for w in maps.values())
    # Evaluation mode inside: no dropout, every row sums to one, and the same maps every time.
    torch.testing.assert_close(maps["layers.0"].sum(-1), torch.ones(2, 2, 8))
    assert all(torch.equal(a, b) for a, b in zip(maps.values(), attention_maps(model, tokens).values(), strict=True))


def test_attention_maps_removes_hooks_when_the_forward_fails():
    model = AttentionOnlyTransformer(V, 8, embed_dim=8, num_heads=2).train()
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, vocab_size=16\), got 0 to 99"):
        attention_maps(model, torch.tensor([[0, 99]]))
    assert all(len(layer._forward_hooks) == 0 for layer in model.layers)
    assert model.training


class _Calls(nn.Module):
    """A model that calls PyTorch's attention the way it pleases."""

    def __init__(self, **call):
        super().__init__()
        self.attention, self.unused, self.call = nn.MultiheadAttention(8, 2, batch_first=True), None, call

    def forward(self, x):
        return self.attention(x, x, x, **self.call)[0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"need_weights": False}, "attention returned no weights: call it with need_weights=True"),
        ({}, r"attention returned weights of shape \(2, 3, 3\), averaged over its heads"),
    ],
)
def test_attention_maps_refuses_missing_or_averaged_weights(call, message):
    model = _Calls(**call)
    with pytest.raises(ValueError, match=message):
        attention_maps(model, torch.randn(2, 3, 8))
    assert len(model.attention._forward_hooks) == 0
    assert attention_maps(_Calls(average_attn_weights=False), torch.randn(2, 3, 8))["attention"].shape == (2, 2, 3, 3)


def test_attention_maps_names_layers_that_never_ran():
    model = _Calls(average_attn_weights=False)
    model.unused = nn.MultiheadAttention(8, 2, batch_first=True)
    with pytest.raises(ValueError, match=r"the attention layers \['unused'\] never ran"):
        attention_maps(model, torch.randn(2, 3, 8))
    # PyTorch's encoder layer skips its attention in fused inference, or asks it for no weights.
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True)
    with pytest.raises(ValueError, match="never ran|returned no weights"):
        attention_maps(layer, torch.randn(2, 3, 8))


# The task, the model and the training.


def test_induction_batch_writes_distinct_tokens_twice_and_is_reproducible():
    tokens = induction_batch(50, 7, 9, generator=torch.Generator().manual_seed(3))
    assert tokens.shape == (50, 14) and tokens.dtype == torch.int64
    assert torch.equal(tokens[:, :7], tokens[:, 7:])
    assert all(len(set(row)) == 7 for row in tokens[:, :7].tolist())
    assert 0 <= tokens.min() and tokens.max() < 9
    assert torch.equal(tokens, induction_batch(50, 7, 9, generator=torch.Generator().manual_seed(3)))
    for args, message in (((0, 3, 5), "batch_size must be a positive int, got 0"),
                          ((2, 3.0, 5), "half_len must be a positive int, got 3.0"),
                          ((2, 6, 5), "half_len=6 distinct tokens need vocab_size >= 6, got vocab_size=5")):
        with pytest.raises(ValueError, match=message):
            induction_batch(*args)


def test_model_refuses_bad_tokens():
    model = AttentionOnlyTransformer(V, 4, embed_dim=8, num_heads=2)
    with pytest.raises(TypeError, match="tokens must be an int64 or int32 tensor of token ids, got dtype torch.float32"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, T\) with 1 <= T <= max_len=4, got \(1, 5\)"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="num_layers must be a positive int, got 0"):
        AttentionOnlyTransformer(V, 4, num_layers=0)


def test_second_half_loss_and_evaluation_against_pytorch():
    torch.manual_seed(0)
    tokens, logits = induction_batch(4, 5, V), torch.randn(4, 10, V)
    expected = F.cross_entropy(logits[:, 5:9].reshape(-1, V), tokens[:, 6:].reshape(-1))
    torch.testing.assert_close(second_half_loss(logits, tokens), expected)
    with pytest.raises(ValueError, match=r"tokens must be \(B, 2n\) with n >= 2 and logits \(B, 2n, V\), got tokens \(4, 2\)"):
        second_half_loss(logits[:, :2], tokens[:, :2])
    model = AttentionOnlyTransformer(V, 10, embed_dim=8, num_heads=2).train()
    result = evaluate_induction(model, tokens)
    assert model.training and set(result) == {"loss", "accuracy"}
    with torch.no_grad():
        logits = model.eval()(tokens)
    assert result["accuracy"] == (logits[:, 5:9].argmax(-1) == tokens[:, 6:]).float().mean().item()


def test_training_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    model = train_induction_model(steps=2, embed_dim=8, batch_size=4)
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    with pytest.raises(ValueError, match="steps must be a non-negative int, got -1"):
        train_induction_model(steps=-1)
    with pytest.raises(ValueError, match="min_half must not exceed max_half, got min_half=5, max_half=4"):
        train_induction_model(min_half=5, max_half=4)


def test_training_learns_a_previous_token_head_then_induction_heads(trained):
    model, baseline, held_out = trained
    assert evaluate_induction(model, held_out)["accuracy"] > 0.9
    assert evaluate_induction(baseline, held_out)["accuracy"] < 0.2
    learned, untrained = head_scores(model, held_out), head_scores(baseline, held_out)
    assert learned["previous-token"][0].max() > untrained["previous-token"][0].max() + 0.3
    assert learned["induction"][1].max() > untrained["induction"][1].max() + 0.5
    # The sharp head of the first layer is diluted in the average of its layer's heads.
    assert learned["previous-token"][0].mean() < learned["previous-token"][0].max() - 0.1


def test_ablation_tells_what_the_maps_cannot(trained):
    model, _, held_out = trained
    scores, rises = head_scores(model, held_out), head_ablation_losses(model, held_out)
    assert rises.shape == (2, 2)
    previous = int(scores["previous-token"][0].argmax())
    # The previous-token head is needed; each induction head alone is not (the other covers for it);
    # the first layer's other head can go almost for free. The lesson's prose claims exactly this.
    assert rises[0, previous] > 1.0
    assert rises[0, previous] > 3 * rises[1].max()
    assert rises[0, 1 - previous] < 0.3
    assert scores["induction"][1].min() > 0.8


@pytest.mark.parametrize(("layer", "head"), [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_ablation_keeps_the_maps_up_to_its_layer_and_leaves_the_original(trained, layer, head):
    model, _, held_out = trained
    before = copy.deepcopy(model.state_dict())
    ablated = ablate_head(model, layer, head)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    d = ablated.layers[layer].head_dim
    assert ablated.layers[layer].out_proj.weight[:, head * d:(head + 1) * d].abs().sum() == 0
    maps, ablated_maps = attention_maps(model, held_out), attention_maps(ablated, held_out)
    for i in range(layer + 1):
        assert torch.equal(maps[f"layers.{i}"], ablated_maps[f"layers.{i}"])
    # Removing a head is the same as silencing its values.
    torch.testing.assert_close(ablated.eval()(held_out), zero_value_head(model, layer, head).eval()(held_out))


def test_ablation_refuses_heads_that_do_not_exist():
    model = AttentionOnlyTransformer(V, 4, embed_dim=8, num_heads=2)
    with pytest.raises(ValueError, match=r"layer must be an int in \[0, 2\), got 2"):
        ablate_head(model, 2, 0)
    with pytest.raises(ValueError, match=r"head must be an int in \[0, 2\), got -1"):
        ablate_head(model, 0, -1)


# The scores, against loops.


def _random_maps(B, h, T, seed):
    weights = torch.rand(B, h, T, T, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).tril()
    return weights / weights.sum(-1, keepdim=True)


@pytest.mark.parametrize(("B", "h", "n"), [(1, 1, 1), (2, 3, 4), (3, 2, 7)])
def test_scores_equal_loops(B, h, n):
    weights = _random_maps(B, h, 2 * n, seed=n)
    T = 2 * n
    previous = sum(weights[b, :, i, i - 1] for b in range(B) for i in range(1, T)) / (B * (T - 1))
    induction = sum(weights[b, :, i, i - n + 1] for b in range(B) for i in range(n, T)) / (B * n)
    torch.testing.assert_close(previous_token_score(weights), previous)
    torch.testing.assert_close(induction_score(weights, n), induction)
    tokens = induction_batch(B, n, 2 * n, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(token_induction_score(weights, tokens), induction)


def test_scores_refuse_what_they_cannot_read():
    with pytest.raises(ValueError, match=r"got \(2, 4, 4\): averaged over the heads\? Ask for average_attn_weights=False"):
        previous_token_score(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match=r"at least 2 queries and keys, got \(1, 1, 1, 1\)"):
        previous_token_score(torch.ones(1, 1, 1, 1))
    with pytest.raises(TypeError, match="weights must be a floating-point tensor, got torch.int64"):
        previous_token_score(torch.ones(1, 1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2 \* half_len, 2 \* half_len\) = \(6, 6\), got \(8, 8\)"):
        induction_score(torch.rand(1, 1, 8, 8), half_len=3)
    with pytest.raises(ValueError, match=r"tokens must have shape \(B, T\) = \(1, 4\), got \(1, 3\)"):
        token_induction_score(torch.rand(1, 1, 4, 4), torch.zeros(1, 3, dtype=torch.long))


# The challenges.


def test_checkers_pass_the_professors_answers():
    check_token_induction_score(token_induction_score)
    check_zero_value_head(zero_value_head)


def test_token_induction_checker_rejects_a_mean_over_every_query():
    def over_all_queries(weights, tokens):
        T = tokens.size(1)
        earlier = (tokens[:, :, None] == tokens[:, None, :]) & torch.ones(T, T, dtype=torch.bool).tril(-1)
        targets = torch.zeros_like(earlier)
        targets[..., 1:] = earlier[..., :-1]
        return (weights * targets[:, None]).sum(-1).mean(dim=(0, 2))

    with pytest.raises(AssertionError, match="average over the queries that have one"):
        check_token_induction_score(over_all_queries)


def test_zero_value_checker_rejects_a_forgotten_bias_the_wrong_rows_and_in_place_edits():
    def without_bias(model, layer, head):
        silenced = copy.deepcopy(model)
        attention = silenced.layers[layer]
        E, d = attention.embed_dim, attention.head_dim
        with torch.no_grad():
            attention.in_proj_weight[2 * E + head * d:2 * E + (head + 1) * d] = 0.0
        return silenced

    def key_rows(model, layer, head):
        silenced = copy.deepcopy(model)
        attention = silenced.layers[layer]
        E, d = attention.embed_dim, attention.head_dim
        with torch.no_grad():
            attention.in_proj_weight[E + head * d:E + (head + 1) * d] = 0.0
            attention.in_proj_bias[E + head * d:E + (head + 1) * d] = 0.0
        return silenced

    def in_place(model, layer, head):
        copy_ = zero_value_head(model, layer, head)
        model.load_state_dict(copy_.state_dict())
        return copy_

    with pytest.raises(AssertionError, match="AND of in_proj_bias"):
        check_zero_value_head(without_bias)
    with pytest.raises(AssertionError, match="not the query or key rows"):
        check_zero_value_head(key_rows)
    with pytest.raises(AssertionError, match="the original model was changed"):
        check_zero_value_head(in_place)
    with pytest.raises(AssertionError, match="return a copy"):
        check_zero_value_head(lambda model, layer, head: model)
