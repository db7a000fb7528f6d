"""build_examples: candidates, labels, normalised scores and ids from a tiny collection built by hand."""

from __future__ import annotations

import warnings

import pytest

from neurank.collections import DataWarning, ScoredDoc
from neurank.data import build_examples, normalise_scores
from neurank.text import UNK_ID

AS_RUN = [
    ScoredDoc("1", "0", 2.0),
    ScoredDoc("1", "1", 4.0),
    ScoredDoc("1", "2", 0.0),
    ScoredDoc("2", "0", 3.0),
    ScoredDoc("2", "1", 1.5),
    ScoredDoc("3", "0", 0.0),
    ScoredDoc("3", "1", 0.0),
]
ADHOC_RUN = [
    ScoredDoc("q1", "d8", 5.0),
    ScoredDoc("q1", "d1", 4.0),
    ScoredDoc("q1", "d5", 2.0),
    ScoredDoc("q1", "d7", 1.0),
    ScoredDoc("q1", "d4", 0.5),
    ScoredDoc("q2", "d6", 1.0),
    ScoredDoc("q2", "d5", 3.0),
    ScoredDoc("q3", "d2", 1.0),
]


def test_answer_selection_candidates_labels_and_scores(answer_selection, encoder_for, tokenizer):
    encoder = encoder_for(answer_selection)
    examples = build_examples(answer_selection, "train", encoder, AS_RUN)
    assert [ex.query_id for ex in examples] == ["1", "2", "3"]
    first, second, third = examples
    assert first.doc_ids == ["1", "0", "2"]  # best first stage score first
    assert first.scores == [1.0, 0.5, 0.0]  # divided by the query's largest score (4.0)
    assert first.labels == [1.0, 0.0, 0.0] and first.relevance == [1, 0, 0]
    assert second.doc_ids == ["0", "1"] and second.scores == [1.0, 0.5] and second.labels == [1.0, 0.0]
    assert third.scores == [0.0, 0.0] and third.labels == [0.0, 0.0]  # all-zero scores stay 0
    # Ids decode to the candidate's own text: doc "0" of query 1 is not doc "0" of query 2.
    assert encoder.vocab.decode(first.query) == tokenizer.tokenize("how do glacier caves form")
    assert encoder.vocab.decode(first.docs[0]) == tokenizer.tokenize("caves form where ice melts")
    assert encoder.vocab.decode(second.docs[0]) == tokenizer.tokenize("hamlet is a play by shakespeare")
    # The same sentence under two questions is tokenised once and shares one id list.
    assert first.docs[1] is second.docs[1]


def test_answer_selection_defaults_to_the_bm25_run_over_all_candidates(answer_selection, encoder_for):
    examples = build_examples(answer_selection, "train", encoder_for(answer_selection))
    assert [sorted(ex.doc_ids) for ex in examples] == [["0", "1", "2"], ["0", "1"], ["0", "1"]]
    for ex in examples:
        assert all(0.0 <= s <= 1.0 for s in ex.scores) and ex.scores == sorted(ex.scores, reverse=True)
    assert examples[0].scores[0] == 1.0 and examples[1].doc_ids[0] == "0"  # "hamlet" matches doc 0 only


def test_truncation(answer_selection, encoder_for, tokenizer):
    encoder = encoder_for(answer_selection, max_query_len=2, max_doc_len=3)
    first = build_examples(answer_selection, "train", encoder, AS_RUN)[0]
    assert encoder.vocab.decode(first.query) == ["how", "do"]
    assert encoder.vocab.decode(first.docs[0]) == ["caves", "form", "where"]
    assert max(len(doc) for doc in first.docs) == 3


def test_adhoc_labels_depth_and_empty_texts(adhoc, encoder_for):
    encoder = encoder_for(adhoc)
    with pytest.warns(DataWarning) as caught:
        examples = build_examples(adhoc, "train", encoder, ADHOC_RUN)
    messages = [str(w.message) for w in caught]
    assert any("1 of 7 distinct document texts have no tokens" in m for m in messages)  # d7 "?!"
    assert any("1 of 3 distinct query texts have no tokens" in m for m in messages)  # q3 "..."
    q1, q2, q3 = examples
    assert q1.doc_ids == ["d8", "d1", "d5", "d7", "d4"]
    assert q1.relevance == [0, 2, 0, 0, 1]  # d8 is unjudged: a negative
    assert q1.labels == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert q1.scores == [1.0, 0.8, 0.4, 0.2, 0.1]
    assert q1.docs[3] == [UNK_ID] and q3.query == [UNK_ID]  # never an empty (all-PAD) row
    assert q2.doc_ids == ["d5", "d6"] and q2.labels == [0.0, 0.0]  # its relevant d3 was not retrieved: not added

    strict = build_examples(adhoc, "train", encoder, ADHOC_RUN, depth=3, min_relevance=2)
    assert strict[0].doc_ids == ["d8", "d1", "d5"] and strict[0].labels == [0.0, 1.0, 0.0]


def test_adhoc_defaults_to_bm25_and_drops_queries_without_candidates(adhoc, encoder_for):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # q3 has no tokens for BM25, d7 none for anyone
        examples = build_examples(adhoc, "train", encoder_for(adhoc), depth=2)
    assert [ex.query_id for ex in examples] == ["q1", "q2"]
    assert examples[1].doc_ids == ["d5", "d6"] and examples[1].scores[0] == 1.0
    assert all(len(ex) <= 2 for ex in examples)


def test_foreign_queries_warn_and_unknown_docs_raise(adhoc, answer_selection, encoder_for):
    with pytest.warns(DataWarning, match="ignored 1 run entries for queries not in the split"):
        examples = build_examples(
            adhoc, "train", encoder_for(adhoc), [ScoredDoc("q1", "d1", 1.0), ScoredDoc("x", "d1", 1.0)]
        )
    assert [ex.query_id for ex in examples] == ["q1"]
    with pytest.raises(KeyError, match="unknown document 'nope'"):
        build_examples(adhoc, "train", encoder_for(adhoc), [ScoredDoc("q1", "nope", 1.0)])
    with pytest.raises(KeyError, match="not one of its candidates"):
        build_examples(answer_selection, "train", encoder_for(answer_selection), [ScoredDoc("2", "2", 1.0)])


def test_each_distinct_text_is_tokenised_once(answer_selection, encoder_for):
    encoder = encoder_for(answer_selection)
    seen: list[str] = []
    tokenize_batch = encoder.tokenizer.tokenize_batch
    encoder.tokenizer.tokenize_batch = lambda texts: (seen.extend(texts), tokenize_batch(texts))[1]
    build_examples(answer_selection, "train", encoder, AS_RUN)
    assert len(seen) == len(set(seen)) == 3 + 6  # 3 questions, 6 distinct sentences (one repeated)
    build_examples(answer_selection, "train", encoder, AS_RUN)
    assert len(seen) == 9  # the second pass only reads the cache


def test_normalise_scores():
    assert normalise_scores([2.0, 1.0, 0.0]) == [1.0, 0.5, 0.0]
    assert normalise_scores([0.0, 0.0]) == [0.0, 0.0]
    assert normalise_scores([-1.0, 1.0, 0.0]) == [0.0, 1.0, 0.5]  # negative scores: min-max
    assert normalise_scores([]) == []
