"""BM25 first stage: scores checked by hand, runs, persistence, answer-selection scoring."""

import math
import warnings

import pytest

from neurank.collections import ANSWER_SELECTION, Collection, DataWarning, Doc, Query, Split
from neurank.retrieval import BM25Config, BM25Retriever, bm25_run, score_candidates
from neurank.text import Tokenizer

DOCS = [
    Doc("d1", "neural ranking models for search"),
    Doc("d2", "bm25 is a strong ranking baseline"),
    Doc("d3", "convolutional networks over interaction matrices"),
    Doc("d4", "kernel pooling for soft matching in search"),
    Doc("d5", "cooking pasta with tomato sauce"),
    Doc("d6", "the tomato is a fruit"),
]


def lucene_bm25(tf, df, n_docs, doc_len, avg_len, k1, b):
    # Lucene's BM25Similarity (8.0 on) drops the constant (k1 + 1) factor of the textbook formula.
    idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * doc_len / avg_len))


def test_scores_match_the_lucene_formula_by_hand():
    config = BM25Config(k1=1.2, b=0.75)
    # Plain tokens (no stop words, no stemming), so lengths can be counted by eye.
    retriever = BM25Retriever(Tokenizer(), config=config).index(DOCS)
    avg_len = sum(len(d.text.split()) for d in DOCS) / len(DOCS)  # 33 tokens / 6 docs
    scores = retriever.scores("tomato search")
    # "tomato" occurs in d5 (5 tokens) and d6 (5 tokens); "search" in d1 (5) and d4 (7): df = 2 each.
    expected_d5 = lucene_bm25(1, 2, 6, 5, avg_len, 1.2, 0.75)
    expected_d4 = lucene_bm25(1, 2, 6, 7, avg_len, 1.2, 0.75)
    assert scores[4] == pytest.approx(expected_d5, rel=1e-5)
    assert scores[3] == pytest.approx(expected_d4, rel=1e-5)
    assert scores[2] == 0.0


def test_search_returns_matching_documents_best_first_and_drops_non_matches():
    retriever = BM25Retriever().index(DOCS)
    run = retriever.search([Query("q1", "tomato sauce"), Query("q2", "ranking baseline")], k=10)
    by_query = {}
    for r in run:
        by_query.setdefault(r.query_id, []).append(r)
    assert [r.doc_id for r in by_query["q1"]] == ["d5", "d6"]
    assert by_query["q2"][0].doc_id == "d2"
    assert all(r.score > 0 for r in run)
    assert {r.doc_id for r in by_query["q2"]} == {"d1", "d2"}


def test_k_limits_results_per_query():
    run = BM25Retriever().index(DOCS).search([Query("q", "search ranking tomato")], k=2)
    assert len(run) == 2


def test_query_without_tokens_gets_no_results_and_a_warning():
    retriever = BM25Retriever().index(DOCS)
    with pytest.warns(DataWarning, match="no tokens"):
        run = retriever.search([Query("empty", "?!"), Query("q", "tomato")])
    assert {r.query_id for r in run} == {"q"}


def test_save_and_load_give_the_same_run(tmp_path):
    queries = [Query("q1", "tomato"), Query("q2", "neural search")]
    retriever = BM25Retriever(config=BM25Config(k1=1.1, b=0.5)).index(DOCS)
    retriever.save(tmp_path / "index")
    loaded = BM25Retriever.load(tmp_path / "index")
    assert loaded.config == BM25Config(k1=1.1, b=0.5)
    assert loaded.search(queries) == retriever.search(queries)
    # Saving again over an existing index replaces it whole.
    BM25Retriever().index(DOCS[:2]).save(tmp_path / "index")
    assert BM25Retriever.load(tmp_path / "index").doc_ids == ["d1", "d2"]
    assert [p.name for p in tmp_path.iterdir()] == ["index"]


def test_loading_something_that_is_not_an_index_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a neurank BM25 index"):
        BM25Retriever.load(tmp_path)


def test_answer_selection_scores_every_candidate_with_pool_statistics():
    queries = {"1": Query("1", "tomato fruit"), "2": Query("2", "ranking")}
    candidates = {
        "1": [Doc("0", "the tomato is a fruit"), Doc("1", "cooking pasta"), Doc("2", "bm25 ranking")],
        # A sentence shared by two questions is one document of the pool.
        "2": [Doc("0", "bm25 ranking"), Doc("1", "neural ranking models")],
    }
    run = score_candidates(queries, candidates)
    assert [(r.query_id, r.doc_id) for r in run] == [("1", "0"), ("1", "1"), ("1", "2"), ("2", "0"), ("2", "1")]
    scores = {(r.query_id, r.doc_id): r.score for r in run}
    assert scores[("1", "1")] == 0.0 and scores[("1", "2")] == 0.0
    assert scores[("1", "0")] > 0
    # Pool: 4 distinct texts, "ranking" in 2 of them; the shorter sentence scores higher.
    assert scores[("2", "0")] > scores[("2", "1")] > 0


def test_bm25_run_dispatches_on_the_collection_task():
    split = Split(
        queries={"1": Query("1", "tomato")},
        qrels=[],
        candidates={"1": [Doc("0", "tomato soup"), Doc("1", "bread")]},
    )
    collection = Collection("toy", ANSWER_SELECTION, docs={}, splits={"test": split})
    run = bm25_run(collection, "test")
    assert {r.doc_id for r in run} == {"0", "1"}


@pytest.mark.parametrize(
    ("query", "texts"),
    [
        ("the", ["a cat sat", "a dog ran"]),  # a query of stop words only: no term to look up
        ("???", ["a cat sat", "a dog ran"]),  # punctuation only
        ("cat", ["the", "!!!"]),  # no candidate has a term to index
    ],
)
def test_a_query_or_pool_without_terms_scores_every_candidate_0(query, texts):
    # These reached bm25s as an empty token list (IndexError) or an empty index (ValueError): a server answered 500
    # to a request for "the", and `Reranker.rank` raised.
    docs = [Doc(str(i), text) for i, text in enumerate(texts)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # "documents have no tokens": said where it applies
        run = score_candidates({"q": Query("q", query)}, {"q": docs})
    assert [(r.doc_id, r.score) for r in run] == [("0", 0.0), ("1", 0.0)]


def test_scores_of_a_query_without_terms_are_0_for_every_document():
    retriever = BM25Retriever().index([Doc("a", "cats purr"), Doc("b", "dogs bark")])
    assert retriever.scores("the of and").tolist() == [0.0, 0.0]
    assert retriever.scores("cats").tolist()[0] > 0
