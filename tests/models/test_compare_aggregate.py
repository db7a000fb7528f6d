"""Compare-Aggregate: the score is the paper's four layers written out by hand, the attention with its null position
sums to one per document word, the comparisons are what their names say, and the word vectors stay fixed unless
asked otherwise."""

from __future__ import annotations

import pytest
import torch

from neurank.models import CompareAggregate, CompareAggregateConfig, build_model

VOCAB_SIZE = 30


def by_hand(model: CompareAggregate, query: list[int], doc: list[int]) -> torch.Tensor:
    """One unpadded pair's score, one word and one window at a time, from the model's parameters."""
    p = {name: value.detach() for name, value in model.named_parameters()}
    emb = model.embedding.weight.detach()

    def gated(ids):
        return [torch.sigmoid(p["gate.weight"] @ emb[i] + p["gate.bias"]) * torch.tanh(p["update.weight"] @ emb[i] + p["update.bias"]) for i in ids]

    q, a = gated(query), gated(doc)
    compared = []
    for a_j in a:
        scores = torch.stack([q_i @ a_j for q_i in q] + ([torch.tensor(0.0)] if model.config.null_attention else []))
        weights = torch.softmax(scores, dim=0)
        h_j = sum(w * q_i for w, q_i in zip(weights, q))  # the null position's vector is 0
        features = torch.cat([(a_j - h_j) ** 2, a_j * h_j])
        compared.append(torch.relu(p["compare.weight"] @ features + p["compare.bias"]))
    hidden = model.config.hidden_size
    pooled = []
    for c, window in enumerate(model.config.windows):
        weight, bias = p[f"convs.{c}.weight"], p[f"convs.{c}.bias"]  # (H, H, window), (H,)
        outputs = []
        for start in range(len(doc)):  # one window per document position, zeros past the end
            window_sum = bias.clone()
            for k in range(window):
                if start + k < len(doc):
                    window_sum += weight[:, :, k] @ compared[start + k]
            outputs.append(torch.relu(window_sum))
        pooled.append(torch.stack(outputs).amax(dim=0))
    features = torch.tanh(p["aggregate.weight"] @ torch.cat(pooled) + p["aggregate.bias"])
    assert features.shape == (hidden,)
    return p["score.weight"][0] @ features + p["score.bias"][0]


@pytest.mark.parametrize("null_attention", [True, False])
def test_the_score_is_the_four_layers_computed_by_hand(null_attention):
    torch.manual_seed(0)
    model = build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 6, "embedding_dim": 5, "windows": [1, 3], "null_attention": null_attention}).eval()
    query, doc = [3, 7, 9], [7, 4, 12, 3, 20]
    with torch.no_grad():
        score = model(torch.tensor([query]), torch.tensor([doc]))
        expected = by_hand(model, query, doc)
    torch.testing.assert_close(score[0], expected, atol=1e-5, rtol=1e-5)


def test_attention_with_the_null_position_sums_to_one_for_each_real_document_word():
    torch.manual_seed(1)
    model = build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 8, "embedding_dim": 6}).eval()
    query_ids = torch.tensor([[3, 5, 0, 0], [4, 6, 8, 2]])
    doc_ids = torch.tensor([[5, 9, 11, 0, 0], [2, 2, 7, 9, 13]])
    with torch.no_grad():
        stages = model.explain(query_ids, doc_ids).stages
    total = stages["attention"].values.sum(dim=1) + stages["null_attention"].values  # (B, Ld)
    real_doc = doc_ids != 0
    torch.testing.assert_close(total[real_doc], torch.ones(int(real_doc.sum())))
    assert total[~real_doc].abs().max() == 0
    assert stages["attention"].values[0, 2:].abs().max() == 0  # padded query words get no attention
    assert (stages["null_attention"].values[real_doc] > 0).all()


def test_without_the_null_position_a_one_word_query_takes_all_the_attention_and_sub_compares_to_zero():
    # Query and document are the same word: h_j is a'_j itself, so SUB ((a - h)^2) is the zero vector.
    model = build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 8, "comparison": "sub", "null_attention": False}).eval()
    with torch.no_grad():
        stages = model.explain(torch.tensor([[6]]), torch.tensor([[6, 6]])).stages
    torch.testing.assert_close(stages["attention"].values, torch.ones(1, 1, 2))
    assert stages["null_attention"].values.abs().max() == 0
    assert stages["comparison"].values.abs().max() < 1e-6  # a matrix product's rounding away from 0


def test_mult_compares_a_word_with_what_it_attends_to_elementwise():
    model = build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 8, "comparison": "mult", "null_attention": False}).eval()
    with torch.no_grad():
        gated = model._preprocess(torch.tensor([[6]]), torch.tensor([[True]]))[0, 0]
        stages = model.explain(torch.tensor([[6]]), torch.tensor([[6]])).stages
    torch.testing.assert_close(stages["comparison"].values[0, 0], (gated * gated).norm())


def test_word_vectors_stay_fixed_by_default_and_train_when_asked():
    vectors = torch.randn(VOCAB_SIZE, 8)
    vectors[0] = 0
    query_ids, doc_ids = torch.tensor([[3, 4]]), torch.tensor([[4, 5, 6]])
    for freeze in (True, False):
        model = CompareAggregate(VOCAB_SIZE, CompareAggregateConfig(freeze_embeddings=freeze, hidden_size=8), vectors)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
        model(query_ids, doc_ids).sum().backward()
        optimizer.step()
        changed = not torch.equal(model.embedding.weight.detach(), vectors)
        assert changed is not freeze
        assert model.gate.weight.grad is not None  # the layers above the word vectors train either way


@pytest.mark.parametrize(
    "options, message",
    [
        ({"comparison": "cosine"}, "unknown comparison"),
        ({"windows": []}, "windows"),
        ({"windows": [0, 2]}, "windows"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_size": 0}, "hidden_size"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(ValueError, match=message):
        CompareAggregateConfig(**options)


def test_a_document_shorter_than_the_widest_window_is_scored():
    model = build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 6, "windows": [5]}).eval()
    with torch.no_grad():
        one = model(torch.tensor([[3, 4]]), torch.tensor([[9]]))
        padded = model(torch.tensor([[3, 4]]), torch.tensor([[9, 0, 0, 0, 0, 0, 0]]))
    assert torch.isfinite(one).all()
    assert torch.equal(one, padded)
