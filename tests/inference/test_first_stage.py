"""No silent mismatch between a run's scores and the first stage a ranker was trained with.

The ranker under test is the committed format-1 checkpoint (tests/fixtures): a tiny MatchPyramid that reads the BM25
score as a feature and is fused with it, so every path that feeds it a first-stage score is exercised without
training anything.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import pytest

from neurank.collections import Collection, Doc, Qrel, Query, ScoredDoc, load_collection
from neurank.collections.collection import Split
from neurank.inference import Reranker, load_reranker
from neurank.inference.checkpoint import CheckpointWarning
from neurank.inference.first_stage import (
    FirstStage,
    FirstStageError,
    FirstStageWarning,
    bm25_first_stage,
    cut_depth,
    disagreements,
    inspect_run,
)
from neurank.models import build_model
from neurank.retrieval import BM25Config, bm25_run, score_candidates

FORMAT_1 = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint-format-1.pt"


@pytest.fixture()
def reranker():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        return load_reranker(FORMAT_1, device="cpu")


@pytest.fixture()
def wikiqa(tiny_data_dir):
    return load_collection("wikiqa", tiny_data_dir)


def adhoc_collection() -> Collection:
    docs = {
        "d1": Doc("d1", "hamlet is a tragedy by shakespeare"),
        "d2": Doc("d2", "shakespeare wrote many plays and hamlet"),
        "d3": Doc("d3", "paris is the capital of france"),
        "d4": Doc("d4", "the thames flows through london"),
        "d5": Doc("d5", "a tragedy in paris"),
    }
    queries = {"q1": Query("q1", "hamlet tragedy"), "q2": Query("q2", "paris capital")}
    split = Split(queries, [Qrel("q1", "d1", 1), Qrel("q2", "d3", 1)])
    return Collection("tiny-adhoc", "adhoc", docs, {"test": split})


def by_pair(run):
    return {(r.query_id, r.doc_id): r.score for r in run}


@contextlib.contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FirstStageWarning)
        yield


# What a run's scores look like.


def test_inspect_run_counts_constant_zero_and_negative_queries():
    run = [ScoredDoc("a", "1", 2.0), ScoredDoc("a", "2", 2.0)]  # constant, not 0
    run += [ScoredDoc("b", "1", 0.0), ScoredDoc("b", "2", 0.0)]  # BM25's "no term in common"
    run += [ScoredDoc("c", "1", 3.0), ScoredDoc("c", "2", -1.0)]
    run += [ScoredDoc("d", "1", 5.0)]  # one candidate says nothing
    shape = inspect_run(run)
    assert (shape.queries, shape.ranked, shape.constant, shape.zero, shape.negative) == (4, 3, ["a"], ["b"], 1)
    assert not shape.all_constant
    assert inspect_run(run[:4]).all_constant  # every query's candidates share one score
    # One query whose candidates all score 0 may be BM25's; every query at 0 is not.
    assert not inspect_run(run[2:4]).all_constant


def test_cut_depth_keeps_each_querys_best_in_a_stable_order():
    run = [ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", 3.0), ScoredDoc("q", "c", 1.0), ScoredDoc("r", "x", 0.0)]
    assert [(r.query_id, r.doc_id) for r in cut_depth(run, 2)] == [("q", "b"), ("q", "a"), ("r", "x")]
    assert len(cut_depth(run, None)) == 4


def test_runs_agree_after_normalisation_and_disagreements_name_the_worst_pair():
    bm25 = [ScoredDoc("q", "a", 4.0), ScoredDoc("q", "b", 2.0), ScoredDoc("r", "x", 1.0), ScoredDoc("r", "y", 1.0)]
    scaled = [ScoredDoc(r.query_id, r.doc_id, r.score * 10) for r in bm25]  # another scale, the same feature
    assert disagreements(scaled, bm25) == []
    other = [ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", 2.0), *bm25[2:]]
    # q normalised: run (0.5, 1.0) against BM25's (1.0, 0.5): both pairs differ by 0.5, the first one is named.
    assert disagreements(other, bm25) == [("q", "a", 0.5, 1.0)]


# Re-ranking a split: rerank_collection / rerank_split (what `neurank rerank` calls).


def test_without_a_run_the_checkpoints_first_stage_is_computed(reranker, wikiqa):
    outcome = reranker.rerank_split(wikiqa, "test")
    assert outcome.first_stage.source == "computed" and "BM25 (k1 0.9, b 0.4" in outcome.first_stage.message
    assert "as a feature and in fusion (alpha 0.45)" in outcome.first_stage.message
    assert len(outcome.run) == 9


def test_a_bm25_run_is_used_as_it_is_and_scores_as_without_a_run(reranker, wikiqa):
    bm25 = bm25_run(wikiqa, "test")
    with no_warnings():
        outcome = reranker.rerank_split(wikiqa, "test", bm25, run_name="bm25.run")
        scaled = [ScoredDoc(r.query_id, r.doc_id, 3 * r.score) for r in bm25]
        again = reranker.rerank_collection(wikiqa, "test", scaled)
    assert outcome.first_stage.source == "run" and outcome.first_stage.differing_queries == 0
    assert "bm25.run: its scores are the ranker's first stage" in outcome.first_stage.message
    assert by_pair(outcome.run) == by_pair(reranker.rerank_collection(wikiqa, "test")) == by_pair(again)


def test_a_constant_run_is_recomputed_with_a_warning_and_scores_as_bm25(reranker, wikiqa):
    constant = [ScoredDoc(r.query_id, r.doc_id, 1.0) for r in bm25_run(wikiqa, "test")]
    with pytest.warns(FirstStageWarning, match=r"given\.run: its scores are not the first stage .* constant within"):
        outcome = reranker.rerank_split(wikiqa, "test", constant, run_name="given.run")
    assert outcome.first_stage.source == "recomputed" and outcome.first_stage.constant_queries == 3
    assert by_pair(outcome.run) == by_pair(reranker.rerank_collection(wikiqa, "test"))


def test_a_run_of_another_kind_is_recomputed_with_a_warning(reranker, wikiqa):
    bm25 = bm25_run(wikiqa, "test")
    reversed_kind = [ScoredDoc(r.query_id, r.doc_id, 1.0 / (1.0 + r.score)) for r in bm25]
    with pytest.warns(FirstStageWarning, match=r"they differ from it in \d of 3 queries, e\.g\. query"):
        outcome = reranker.rerank_split(wikiqa, "test", reversed_kind)
    assert outcome.first_stage.source == "recomputed" and outcome.first_stage.differing_queries >= 1
    assert by_pair(outcome.run) == by_pair(reranker.rerank_collection(wikiqa, "test"))


def test_first_stage_from_run_feeds_the_runs_scores_and_refuses_constant_ones(reranker, wikiqa):
    bm25 = bm25_run(wikiqa, "test")
    other = [ScoredDoc(r.query_id, r.doc_id, 1.0 / (1.0 + r.score)) for r in bm25]
    with no_warnings():
        outcome = reranker.rerank_split(wikiqa, "test", other, first_stage="run", run_name="dense.run")
    assert outcome.first_stage.source == "run" and "--first-stage-from-run" in outcome.first_stage.message
    assert by_pair(outcome.run) != by_pair(reranker.rerank_collection(wikiqa, "test"))
    constant = [ScoredDoc(r.query_id, r.doc_id, 1.0) for r in bm25]
    with pytest.raises(FirstStageError, match=r"given\.run: its scores are constant within every query \(3 with"):
        reranker.rerank_split(wikiqa, "test", constant, first_stage="run", run_name="given.run")
    partly = [ScoredDoc(r.query_id, r.doc_id, 1.0 if r.query_id == "1" else r.score) for r in bm25]
    with pytest.warns(FirstStageWarning, match=r"constant within 1 of 3 queries \(1\)"):
        reranker.rerank_split(wikiqa, "test", partly, first_stage="run")
    negative = [ScoredDoc(r.query_id, r.doc_id, r.score - 100.0) for r in bm25]
    with pytest.warns(FirstStageWarning, match="9 negative scores, which BM25 never gives"):
        reranker.rerank_split(wikiqa, "test", negative, first_stage="run")
    with pytest.raises(ValueError, match="no run was given"):
        reranker.rerank_split(wikiqa, "test", None, first_stage="run")


def test_a_ranker_that_reads_no_score_takes_any_run_silently(reranker, wikiqa):
    config = {**reranker.model.config.__dict__, "use_first_stage_score": False}
    plain = Reranker(build_model("match_pyramid", reranker.encoder.vocab_size, config), reranker.encoder, device="cpu")
    constant = [ScoredDoc(r.query_id, r.doc_id, 1.0) for r in bm25_run(wikiqa, "test")]
    with no_warnings():
        outcome = plain.rerank_split(wikiqa, "test", constant)
    assert outcome.first_stage.source == "unread" and "chose the candidates only" in outcome.first_stage.message
    assert by_pair(outcome.run) == by_pair(plain.rerank_collection(wikiqa, "test"))
    # Ad hoc, constant scores leave the cut to the file's order: said, since the ranker would not know.
    adhoc = adhoc_collection()
    flat = [ScoredDoc(q, d, 1.0) for q in ("q1", "q2") for d in ("d4", "d1", "d2")]
    with pytest.warns(FirstStageWarning, match="so each query's top 2 are its first in the file"):
        cut = plain.rerank_collection(adhoc, "test", flat, depth=2)
    assert {r.doc_id for r in cut} == {"d4", "d1"}


def test_a_first_stage_this_neurank_cannot_compute_needs_the_runs_scores(reranker, wikiqa):
    reranker.first_stage = FirstStage("dense", {"model": "some-encoder"})
    bm25 = bm25_run(wikiqa, "test")
    with pytest.raises(FirstStageError, match="dense .*cannot compute.*--first-stage-from-run"):
        reranker.rerank_collection(wikiqa, "test", bm25)
    with pytest.raises(FirstStageError, match="cannot compute"):
        reranker.rerank_collection(wikiqa, "test")
    assert len(reranker.rerank_collection(wikiqa, "test", bm25, first_stage="run")) == 9
    reranker.first_stage = None
    with pytest.raises(FirstStageError, match="not recorded in the checkpoint"):
        reranker.rerank_collection(wikiqa, "test", bm25)


def test_ad_hoc_runs_are_cut_by_their_own_order_then_scored_with_the_collections_statistics(reranker):
    collection = adhoc_collection()
    bm25 = bm25_run(collection, "test", k=5)
    # Another first stage's run: every document, in the reverse of BM25's order.
    reverse = [ScoredDoc(r.query_id, r.doc_id, 1.0 / (1.0 + r.score)) for r in bm25]
    with pytest.warns(FirstStageWarning, match="recomputed it over the run's candidates"):
        outcome = reranker.rerank_split(collection, "test", reverse, depth=2)
    # The run chose the candidates (its own top 2 per query, not BM25's), BM25 scored them.
    chosen = {(r.query_id, r.doc_id) for r in cut_depth(reverse, 2)}
    assert (
        {(r.query_id, r.doc_id) for r in outcome.run} == chosen != {(r.query_id, r.doc_id) for r in cut_depth(bm25, 2)}
    )
    rescored = bm25_first_stage().rescore(collection, "test", bm25)
    assert by_pair(rescored) == by_pair(bm25)  # the same numbers as retrieval gives
    # A BM25 run agrees with the recomputation and keeps its exact scores.
    with no_warnings():
        assert reranker.rerank_split(collection, "test", bm25, depth=2).first_stage.source == "run"
    with pytest.raises(KeyError, match="unknown document 'nope'"):
        reranker.rerank_collection(collection, "test", [ScoredDoc("q1", "nope", 1.0)])


# The texts API: rank and rerank.


def test_rank_computes_the_checkpoints_own_bm25(reranker):
    query, docs = "who wrote hamlet", ["hamlet by shakespeare", "paris is big", "hamlet hamlet hamlet tragedy"]
    strong = bm25_first_stage(config=BM25Config(k1=5.0, b=1.0))
    reranker.first_stage = strong
    expected = score_candidates(
        {"q": Query("q", query)},
        {"q": [Doc(str(i), d) for i, d in enumerate(docs)]},
        strong.tokenizer(),
        BM25Config(5.0, 1.0),
    )
    ranked = {r.doc_id: r.score for r in reranker.rank(query, docs)}
    triples = [(query, doc, r.score) for doc, r in zip(docs, expected, strict=True)]
    assert [ranked[str(i)] for i in range(3)] == pytest.approx(reranker.predict(triples).tolist(), abs=1e-6)


def test_rerank_takes_the_runs_scores_checked_or_recomputes_them_over_the_texts(reranker):
    queries = {"q": "who wrote hamlet"}
    docs = {"a": "hamlet by shakespeare", "b": "paris is big", "c": "hamlet tragedy"}
    constant = [ScoredDoc("q", d, 1.0) for d in docs] + [ScoredDoc("r", "a", 2.0), ScoredDoc("r", "b", 2.0)]
    queries["r"] = "paris"
    with pytest.raises(FirstStageError, match="constant within every query"):
        reranker.rerank(constant, queries, docs)
    with pytest.warns(FirstStageWarning, match="recomputed"):
        recomputed = reranker.rerank(constant, queries, docs, first_stage="auto")
    pool = score_candidates(
        {q: Query(q, t) for q, t in queries.items()},
        {q: [Doc(r.doc_id, docs[r.doc_id]) for r in constant if r.query_id == q] for q in queries},
    )
    assert by_pair(recomputed) == by_pair(reranker.rerank(pool, queries, docs))
