"""`Ranker.explain` on every registered ranker (and the contract's variants): the score it reports is the score
`forward` gives, its first stage is the model's own interaction matrix, and every stage is shaped as its axes say."""

from __future__ import annotations

import pytest
import torch

from neurank.models import Explanation, Stage, build_model
from neurank.text import PAD_ID

from .test_contract import CASES, VOCAB_SIZE, build, case_id, make_batch

INTERACTION_CASES = [case for case in CASES if build(case).has_interaction_matrix]


@pytest.fixture(params=INTERACTION_CASES, ids=[case_id(case) for case in INTERACTION_CASES])
def case(request):
    return request.param


def test_explain_score_is_the_forward_score(case):
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        explanation = model.explain(query_ids, doc_ids, first_stage_score=first_stage_score)
        scores = model(query_ids, doc_ids, first_stage_score=first_stage_score)
    assert isinstance(explanation, Explanation)
    assert torch.equal(explanation.score, scores)


def test_explain_scores_one_pair_as_it_scores_it_in_a_padded_batch(case):
    # The explain command runs one unpadded pair; its score must be the one re-ranking gives in a batch.
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        scores = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        for i in (1, 5):
            query, doc = query_ids[i : i + 1], doc_ids[i : i + 1]
            query, doc = query[:, query[0] != PAD_ID], doc[:, doc[0] != PAD_ID]
            one = model.explain(query, doc, first_stage_score=first_stage_score[i : i + 1]).score
            torch.testing.assert_close(one, scores[i : i + 1], atol=1e-5, rtol=0)


def test_first_stage_is_the_interaction_matrix_the_model_computes(case):
    name, config = case
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        stages = model.explain(query_ids, doc_ids, first_stage_score=first_stage_score).stages
        # PACRR and DUET cut the texts to their fixed frame before anything else; the stage shows what they read.
        lq = getattr(model.config, "max_query_len", query_ids.shape[1])
        ld = getattr(model.config, "max_doc_len", doc_ids.shape[1]) if name == "duet" else doc_ids.shape[1]
        expected = model.interaction_matrix(query_ids[:, :lq], doc_ids[:, :ld])
    assert list(stages)[0] == "interactions"
    interactions = stages["interactions"]
    assert interactions.axes == ("channel", "query", "doc")
    assert torch.equal(interactions.values, expected)
    assert len(interactions.labels["channel"]) == expected.shape[1]


def test_every_stage_is_shaped_as_its_axes_and_labels_say(case):
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        explanation = model.explain(query_ids, doc_ids, first_stage_score=first_stage_score)
    assert len(explanation.stages) >= 2
    for name, stage in explanation.stages.items():
        assert isinstance(stage, Stage) and stage.description
        assert stage.values.shape[0] == query_ids.shape[0], name
        assert torch.isfinite(stage.values).all(), name
        for axis, size in zip(stage.axes, stage.values.shape[1:], strict=True):
            if axis == "query":
                assert size <= query_ids.shape[1], name
            elif axis == "doc":
                assert size <= doc_ids.shape[1], name
            elif axis in stage.labels:
                assert len(stage.labels[axis]) == size, (name, axis)


def test_stages_are_zero_past_each_pairs_true_lengths(case):
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        stages = model.explain(query_ids, doc_ids, first_stage_score=first_stage_score).stages
    query_lengths, doc_lengths = (query_ids != PAD_ID).sum(1), (doc_ids != PAD_ID).sum(1)
    for name, stage in stages.items():
        for b in range(query_ids.shape[0]):
            values = stage.values[b]
            for dim, axis in enumerate(stage.axes):
                length = {"query": query_lengths[b], "doc": doc_lengths[b]}.get(axis)
                if length is not None and length < values.shape[dim]:
                    assert values.narrow(dim, int(length), values.shape[dim] - int(length)).abs().max() == 0, name


def test_arci_has_no_interaction_matrix_to_explain():
    model = build_model("arci", VOCAB_SIZE).eval()
    query_ids, doc_ids, _, _ = make_batch()
    assert model.has_interaction_matrix is False
    with pytest.raises(NotImplementedError):
        model.explain(query_ids, doc_ids)


def test_match_pyramid_contributions_add_up_to_the_score():
    model = build(("match_pyramid", {})).eval()
    query_ids, doc_ids, _, _ = make_batch()
    with torch.no_grad():
        explanation = model.explain(query_ids, doc_ids)
    total = explanation.stages["contributions"].values.sum(1) + model.score.bias
    torch.testing.assert_close(total, explanation.score, atol=1e-5, rtol=0)
    # The pooled grid is the last feature maps' max over each pair's true region, bin by bin.
    pooled, last = explanation.stages["pooled"].values, explanation.stages["conv2"].values
    torch.testing.assert_close(pooled.flatten(2).amax(2), last.flatten(2).amax(2))


def test_duet_components_add_up_to_the_score():
    model = build(("duet", {"use_first_stage_score": True})).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        explanation = model.explain(query_ids, doc_ids, first_stage_score=first_stage_score)
    components = explanation.stages["components"]
    assert components.labels["component"] == ["local", "distributed", "first stage"]
    torch.testing.assert_close(components.values.sum(1), explanation.score, atol=1e-5, rtol=0)


def test_kernel_soft_counts_sum_to_the_document_length_per_query_token():
    # Every doc token falls mostly in one kernel; with the exact kernel excluded the soft kernels tile [-1, 1]
    # closely enough that a token's counts over all kernels are near 1 (never 0, never many).
    model = build(("knrm", {})).eval()
    query_ids, doc_ids, _, _ = make_batch()
    with torch.no_grad():
        counts = model.explain(query_ids, doc_ids).stages["soft_counts"].values  # (B, Lq, K)
    doc_lengths = (doc_ids != PAD_ID).sum(1).float()
    real = query_ids != PAD_ID
    per_token = counts.sum(2)[real] / doc_lengths[:, None].expand_as(real)[real]
    assert per_token.min() > 0.5 and per_token.max() < 2.0
