"""`explain_pair` and `explain_candidate`: the tokens are those the model read, the stages are the model's own, and
the score is the one re-ranking gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from neurank.collections import DataWarning, load_collection
from neurank.data.examples import build_examples
from neurank.explain import NoInteractionMatrixError, explain_candidate, explain_pair
from neurank.inference.reranker import Reranker
from neurank.models import build_model
from neurank.retrieval import bm25_run
from neurank.text import Tokenizer, TokenizerConfig
from neurank.training import train

QUERY = "Who wrote the tragedy Hamlet?"
DOC = "Hamlet is a tragedy written by William Shakespeare around 1600, set in Denmark."


def test_tokens_are_those_the_model_read_after_stemming_stopwords_and_truncation(tiny_config, tmp_path):
    data = dataclasses.replace(tiny_config.data, stopwords="en", stemmer="english", max_query_len=3, max_doc_len=6)
    config = dataclasses.replace(tiny_config, data=data, train=dataclasses.replace(tiny_config.train, epochs=1))
    train(config, tmp_path / "run", progress=False)
    reranker = Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    pair = explain_pair(reranker, QUERY, DOC)
    tokenizer = Tokenizer(TokenizerConfig(stopwords="en", stemmer="english"))
    assert pair.query_tokens == tokenizer.tokenize(QUERY)[:3] == ["who", "wrote", "tragedi"]  # "the" is a stop word
    assert (
        pair.doc_tokens
        == tokenizer.tokenize(DOC)[:6]
        == ["hamlet", "tragedi", "written", "william", "shakespear", "around"]
    )
    # One row and one column of the interaction matrix per token.
    assert pair.interactions.shape[1:] == (3, 6)
    # "around" never occurs in the tiny collection, so the vocabulary lacks it: the model read UNK there.
    assert [t for t, unknown in zip(pair.doc_tokens, pair.doc_unknown, strict=True) if unknown] == ["around"]
    assert not any(pair.query_unknown)


def test_stages_and_score_are_the_models_own_for_the_encoded_pair(trained):
    reranker = Reranker.from_checkpoint(trained / "best.pt", device="cpu")
    pair = explain_pair(reranker, QUERY, DOC)
    query_ids = torch.tensor([reranker.encoder.encode_queries([QUERY])[0]])
    doc_ids = torch.tensor([reranker.encoder.encode_docs([DOC])[0]])
    with torch.no_grad():
        expected_matrix = reranker.model.interaction_matrix(query_ids, doc_ids)[0].numpy()
        forward = reranker.model(query_ids, doc_ids).item()
    np.testing.assert_array_equal(pair.interactions, expected_matrix)
    assert pair.score == pytest.approx(forward, abs=1e-6)
    # The same pair through the public re-ranking API.
    assert pair.score == pytest.approx(float(reranker.predict([(QUERY, DOC)])[0]), abs=1e-6)
    assert pair.first_stage_score is None  # this model reads no first-stage score and has no fusion
    assert pair.to_dict()["stages"]["interactions"]["values"] == expected_matrix.tolist()


def test_first_stage_score_is_computed_as_rank_computes_it_unless_given(tiny_config, tmp_path):
    model_config = {**tiny_config.model_config, "use_first_stage_score": True}
    config = dataclasses.replace(
        tiny_config, model_config=model_config, train=dataclasses.replace(tiny_config.train, epochs=1)
    )
    train(config, tmp_path / "run", progress=False)
    reranker = Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    shared, unrelated = explain_pair(reranker, QUERY, DOC), explain_pair(reranker, QUERY, "paris is in france")
    assert shared.first_stage_score == 1.0 and unrelated.first_stage_score == 0.0
    assert shared.score == pytest.approx(reranker.rank(QUERY, [DOC])[0].score, abs=1e-6)
    given = explain_pair(reranker, QUERY, DOC, first_stage_score=0.25)
    assert given.first_stage_score == 0.25
    assert given.score == pytest.approx(float(reranker.predict([(QUERY, DOC, 1.0), (QUERY, "x", 4.0)])[0]), abs=1e-6)


def test_candidate_of_a_collection_is_explained_as_reranking_scores_it(trained, tiny_data_dir):
    reranker = Reranker.from_checkpoint(trained / "best.pt", device="cpu")
    collection = load_collection("wikiqa", tiny_data_dir)
    reranked = sorted(
        (r for r in reranker.rerank_collection(collection, "test", bm25_run(collection, "test")) if r.query_id == "2"),
        key=lambda r: -r.score,
    )
    for rank, entry in enumerate(reranked, start=1):
        pair = explain_candidate(reranker, collection, "test", "2", entry.doc_id)
        assert pair.rank == rank and pair.candidates == len(reranked)
        assert pair.ranking_score == pytest.approx(entry.score, abs=1e-6)
        assert pair.score == pytest.approx(entry.score, abs=1e-6)  # no fusion: the model's score is the ranking's
    example = next(e for e in build_examples(collection, "test", reranker.encoder) if e.query_id == "2")
    pair = explain_candidate(reranker, collection, "test", "2", "0")
    assert pair.relevance == 1 and pair.query_tokens == reranker.tokenizer.tokenize(
        collection.split("test").queries["2"].text
    )
    assert pair.first_stage_rank == 1 + example.doc_ids.index("0")
    with pytest.raises(KeyError, match="no query"):
        explain_candidate(reranker, collection, "test", "999", "0")
    with pytest.raises(KeyError, match="no candidate"):
        explain_candidate(reranker, collection, "test", "2", "77")


def test_a_model_without_interaction_matrix_is_refused_by_name(trained):
    base = Reranker.from_checkpoint(trained / "best.pt", device="cpu")
    arci = Reranker(build_model("arci", len(base.vocab)), base.tokenizer, base.vocab, device="cpu")
    with pytest.raises(NoInteractionMatrixError, match="arci is representation-based"):
        explain_pair(arci, QUERY, DOC, model_name="arci")


def test_empty_text_reads_as_one_unknown_token(trained):
    reranker = Reranker.from_checkpoint(trained / "best.pt", device="cpu")
    with pytest.warns(DataWarning, match="no tokens"):
        pair = explain_pair(reranker, QUERY, "!!!")
    assert pair.doc_tokens == ["<empty>"] and pair.doc_unknown == [False]
    assert pair.interactions.shape[2] == 1
