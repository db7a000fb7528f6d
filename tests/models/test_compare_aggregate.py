"""Compare-Aggregate: the score is the paper's four layers written out by hand, the attention with its null position
sums to one per document word, the comparisons are what their names say, and the word vectors stay fixed unless
asked otherwise."""

from __future__ import annotations

import pytest
import torch

from neurank.models import CompareAggregate, CompareAggregateConfig, build_model
from neurank.text import UNK_ID

VOCAB_SIZE = 30


def by_hand(model: CompareAggregate, query: list[int], doc: list[int]) -> torch.Tensor:
    """One unpadded pair's score, one word and one window at a time, from the model's parameters."""
    p = {name: value.detach() for name, value in model.named_parameters()}
    emb = model.embedding.weight.detach()

    def gated(ids):
        return [
            torch.sigmoid(p["gate.weight"] @ emb[i] + p["gate.bias"])
            * torch.tanh(p["update.weight"] @ emb[i] + p["update.bias"])
            for i in ids
        ]

    q, a = gated(query), gated(doc)
    compared = []
    for a_j, w_j in zip(a, doc, strict=True):
        # The query words this document word may attend to: all, or (unknown_match=False) none of an unknown word.
        unknown = not model.config.unknown_match and w_j == UNK_ID
        attended = [q_i for q_i, w_i in zip(q, query, strict=True) if model.config.unknown_match or w_i != UNK_ID]
        attended = [] if unknown else attended
        scores = [q_i @ a_j for q_i in attended] + ([torch.tensor(0.0)] if model.config.null_attention else [])
        weights = torch.softmax(torch.stack(scores), dim=0) if scores else []
        # strict=False: with null attention `weights` has one more entry, the null position's, whose vector is 0
        h_j = sum((w * q_i for w, q_i in zip(weights, attended, strict=False)), torch.zeros_like(a_j))
        features = torch.cat([(a_j - h_j) ** 2, a_j * h_j])
        compared.append(torch.relu(p["compare.weight"] @ features + p["compare.bias"]))
    if model.config.exact_match:  # one more channel: does the document word occur in the query (UNK never does)
        compared = [
            torch.cat([t, torch.tensor([float(w in query and w != UNK_ID)])])
            for t, w in zip(compared, doc, strict=True)
        ]
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


@pytest.mark.parametrize("unknown_match", [False, True])
@pytest.mark.parametrize("null_attention, exact_match", [(True, False), (False, False), (True, True)])
def test_the_score_is_the_four_layers_computed_by_hand(null_attention, exact_match, unknown_match):
    torch.manual_seed(0)
    options = {
        "hidden_size": 6,
        "embedding_dim": 5,
        "windows": [1, 3],
        "null_attention": null_attention,
        "exact_match": exact_match,
        "unknown_match": unknown_match,
    }
    model = build_model("compare_aggregate", VOCAB_SIZE, options).eval()
    query, doc = [3, 7, 9, UNK_ID], [7, 4, UNK_ID, 12, 3, 20]
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
    model = build_model(
        "compare_aggregate", VOCAB_SIZE, {"hidden_size": 8, "comparison": "sub", "null_attention": False}
    ).eval()
    with torch.no_grad():
        stages = model.explain(torch.tensor([[6]]), torch.tensor([[6, 6]])).stages
    torch.testing.assert_close(stages["attention"].values, torch.ones(1, 1, 2))
    assert stages["null_attention"].values.abs().max() == 0
    assert stages["comparison"].values.abs().max() < 1e-6  # a matrix product's rounding away from 0


def test_mult_compares_a_word_with_what_it_attends_to_elementwise():
    model = build_model(
        "compare_aggregate", VOCAB_SIZE, {"hidden_size": 8, "comparison": "mult", "null_attention": False}
    ).eval()
    with torch.no_grad():
        gated = model._preprocess(torch.tensor([[6]]), torch.tensor([[True]]))[0, 0]
        stages = model.explain(torch.tensor([[6]]), torch.tensor([[6]])).stages
    torch.testing.assert_close(stages["comparison"].values[0, 0], (gated * gated).norm())


def test_exact_match_flags_the_document_words_found_in_the_query_and_changes_the_score():
    torch.manual_seed(2)
    model = build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 8, "exact_match": True}).eval()
    query_ids = torch.tensor([[3, 7, UNK_ID, 0]])
    doc_ids = torch.tensor([[7, 4, UNK_ID, 3, 7, 0]])
    with torch.no_grad():
        explanation = model.explain(query_ids, doc_ids)
        flag_weights = [conv.weight[:, -1].clone() for conv in model.convs]
        for conv in model.convs:  # the flag channel's weights off: the flags no longer reach the score
            conv.weight[:, -1] = 0
        without_flags = model(query_ids, doc_ids)
        for conv, weights in zip(model.convs, flag_weights, strict=True):
            conv.weight[:, -1] = weights
    torch.testing.assert_close(explanation.stages["exact_match"].values, torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]]))
    assert not torch.allclose(explanation.score, without_flags)
    assert (
        "exact_match"
        not in build_model("compare_aggregate", VOCAB_SIZE, {"hidden_size": 8}).explain(query_ids, doc_ids).stages
    )


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
