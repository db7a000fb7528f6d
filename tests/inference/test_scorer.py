"""The fast scoring path: batch planning, padding, exact scores for every model, and the options that change
numerics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from neurank.data.collate import pad as collate_pad
from neurank.data.examples import QueryExample
from neurank.inference.scorer import CPU_MAX_CELLS, InferenceOptions, Scorer, pad_ids, plan_batches
from neurank.models import build_model, model_classes, model_names

VOCAB_SIZE = 50


def random_pairs(n, seed=0, max_query=8, max_doc=40):
    rng = np.random.default_rng(seed)
    queries = [rng.integers(2, VOCAB_SIZE, rng.integers(1, max_query + 1)).tolist() for _ in range(n)]
    docs = []
    for query in queries:
        doc = rng.integers(2, VOCAB_SIZE, rng.integers(1, max_doc + 1)).tolist()
        doc[: min(2, len(doc), len(query))] = query[: min(2, len(doc), len(query))]  # some matches
        docs.append(doc)
    return queries, docs, rng.random(n).astype(np.float32)


@pytest.mark.parametrize("max_cells", [None, 1, 50, 400, 10_000])
def test_plan_batches_covers_every_pair_once_within_the_limits(max_cells):
    rng = np.random.default_rng(1)
    query_lengths, doc_lengths = rng.integers(1, 12, 300), rng.integers(1, 90, 300)
    batches = plan_batches(query_lengths, doc_lengths, batch_size=32, max_cells=max_cells)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    for batch in batches:
        assert 1 <= len(batch) <= 32
        cells = len(batch) * query_lengths[batch].max() * doc_lengths[batch].max()
        if max_cells is not None and len(batch) > 1:
            assert cells <= max_cells
    # Longest documents first, so a batch pads its documents to its own first (longest) one.
    firsts = [doc_lengths[batch[0]] for batch in batches]
    assert firsts == sorted(firsts, reverse=True)
    assert all(doc_lengths[batch[0]] == doc_lengths[batch].max() for batch in batches)


def test_a_budget_fills_batches_up_to_it():
    batches = plan_batches(np.full(10, 2), np.full(10, 5), batch_size=100, max_cells=40)
    assert [len(b) for b in batches] == [4, 4, 2]


def test_pad_ids_matches_the_collate_padding():
    sequences = [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    ids, mask = pad_ids(sequences)
    expected_ids, expected_mask = collate_pad(sequences)
    assert torch.equal(ids, expected_ids) and torch.equal(mask, expected_mask)
    ids, mask = pad_ids([np.array(s) for s in sequences])  # cached arrays pad as lists do
    assert torch.equal(ids, expected_ids) and torch.equal(mask, expected_mask)
    with pytest.raises(ValueError, match="empty"):
        pad_ids([[1], []])


def test_auto_cuts_batches_under_the_models_own_cpu_budget():
    torch.manual_seed(0)
    model = build_model("knrm", VOCAB_SIZE).eval()
    model.cpu_max_cells = 40  # 2 x 5 = 10 cells per pair: 4 pairs per batch
    batches = []
    model.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    queries, docs = [[3, 4]] * 10, [[5, 6, 7, 8, 9]] * 10
    Scorer(model, InferenceOptions(batch_size=100)).score(queries, docs)
    assert batches == [4, 4, 2]
    batches.clear()
    Scorer(model, InferenceOptions(batch_size=100, max_cells=60)).score(queries, docs)  # a given budget wins
    assert batches == [6, 4]
    # No budget off the CPU, the model's own on it, the default for a model that names none.
    assert InferenceOptions().cell_budget(torch.device("cuda"), 40) is None
    assert InferenceOptions().cell_budget(torch.device("cpu"), 40) == 40
    for name in model_names():
        assert Scorer(build_model(name, VOCAB_SIZE)).cpu_max_cells == (
            model_classes(name)[0].cpu_max_cells or CPU_MAX_CELLS
        )


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("max_cells", ["auto", 64, None])
def test_scores_equal_the_model_on_one_padded_batch(name, max_cells):
    """However the pairs are batched, each score is the model's score of that pair (padding never changes one)."""
    torch.manual_seed(0)
    model = build_model(name, VOCAB_SIZE, {"use_first_stage_score": True}).eval()
    queries, docs, first_stage = random_pairs(37)
    scores = Scorer(model, InferenceOptions(batch_size=8, max_cells=max_cells)).score(queries, docs, first_stage)
    query_ids, query_mask = pad_ids(queries)
    doc_ids, doc_mask = pad_ids(docs)
    with torch.no_grad():
        expected = model(query_ids, doc_ids, query_mask, doc_mask, torch.from_numpy(first_stage)).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name, options",
    [(n, {}) for n in model_names()] + [("match_pyramid", {"interactions": ["cosine", "dot", "exact"]})],
)
def test_one_querys_candidates_score_as_each_pair_alone(name, options):
    """Batches of one query's candidates (where models compare each distinct token with the query once) give each
    pair the score it gets scored on its own."""
    torch.manual_seed(0)
    model = build_model(name, VOCAB_SIZE, {"use_first_stage_score": True, **options}).eval()
    _, docs, first_stage = random_pairs(30, seed=3)
    query = [7, 3, 11, 1]  # UNK in the query too
    docs[0][:3] = [7, 1, 1]
    scores = Scorer(model, InferenceOptions(batch_size=16)).score([query] * 30, docs, first_stage)
    with torch.no_grad():
        alone = [
            model(torch.tensor([query]), torch.tensor([doc]), first_stage_score=torch.tensor([score])).item()
            for doc, score in zip(docs, first_stage, strict=True)
        ]
    np.testing.assert_allclose(scores, alone, atol=1e-5, rtol=0)


def test_score_examples_keeps_the_examples_order():
    torch.manual_seed(0)
    model = build_model("knrm", VOCAB_SIZE)
    queries, docs, first_stage = random_pairs(9)
    examples = [
        QueryExample("q1", queries[0], ["a", "b", "c", "d"], docs[:4], [0] * 4, [0.0] * 4, first_stage[:4].tolist()),
        QueryExample(
            "q2", queries[1], ["e", "f", "g", "h", "i"], docs[4:], [0] * 5, [0.0] * 5, first_stage[4:].tolist()
        ),
    ]
    scorer = Scorer(model, InferenceOptions(batch_size=3))
    run = scorer.score_examples(examples)
    assert [(r.query_id, r.doc_id) for r in run] == [("q1", d) for d in "abcd"] + [("q2", d) for d in "efghi"]
    direct = scorer.score([queries[0]] * 4 + [queries[1]] * 5, docs, first_stage)
    np.testing.assert_allclose([r.score for r in run], direct, atol=1e-6)
    assert Scorer(model).score([], []).shape == (0,)


def test_the_default_options_are_exact_and_others_are_not():
    assert InferenceOptions().exact
    assert not InferenceOptions(precision="bf16").exact
    for bad in ({"precision": "fp16"}, {"max_cells": 0}, {"max_cells": "many"}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            InferenceOptions(**bad)


def test_bf16_keeps_match_pyramid_rankings_close():
    options = InferenceOptions(precision="bf16")
    torch.manual_seed(0)
    model = build_model(
        "match_pyramid", VOCAB_SIZE, {"interactions": ["cosine", "exact"], "use_first_stage_score": True}
    )
    queries, docs, first_stage = random_pairs(60, seed=3)
    exact = Scorer(model).score(queries, docs, first_stage)
    approximate = Scorer(model, options).score(queries, docs, first_stage)
    assert approximate.dtype == np.float32 and np.isfinite(approximate).all()
    assert not np.array_equal(approximate, exact)  # the option did change numerics
    assert spearmanr(approximate, exact).statistic > 0.95
    # The model itself is untouched: exact scores afterwards are as before.
    np.testing.assert_array_equal(Scorer(model).score(queries, docs, first_stage), exact)
