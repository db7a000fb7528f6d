"""A tiny ad-hoc collection and a tiny answer-selection collection, built by hand."""

from __future__ import annotations

import pytest

from neurank.collections import ADHOC, ANSWER_SELECTION, Collection, Doc, Qrel, Query, Split
from neurank.data import QueryExample
from neurank.text import Tokenizer, Vocab, WordEncoder

DOCS = [
    Doc("d1", "neural ranking models for search"),
    Doc("d2", "bm25 is a strong ranking baseline"),
    Doc("d3", "convolutional networks over interaction matrices"),
    Doc("d4", "kernel pooling for soft matching in search"),
    Doc("d5", "cooking pasta with tomato sauce"),
    Doc("d6", "the tomato is a fruit"),
    Doc("d7", "?!"),  # no tokens
    Doc("d8", "neural search"),
]


@pytest.fixture
def adhoc() -> Collection:
    queries = {q.query_id: q for q in [Query("q1", "neural search"), Query("q2", "tomato sauce"), Query("q3", "...")]}
    qrels = [Qrel("q1", "d1", 2), Qrel("q1", "d4", 1), Qrel("q1", "d5", 0), Qrel("q2", "d3", 1)]
    return Collection("tiny-adhoc", ADHOC, {d.doc_id: d for d in DOCS}, {"train": Split(queries, qrels)})


@pytest.fixture
def answer_selection() -> Collection:
    # Doc ids restart per query, as in WikiQA; "0" means a different sentence for each question.
    candidates = {
        "1": [Doc("0", "glaciers are rivers of ice"), Doc("1", "caves form where ice melts"), Doc("2", "pasta")],
        "2": [Doc("0", "hamlet is a play by shakespeare"), Doc("1", "glaciers are rivers of ice")],
        "3": [Doc("0", "nothing relevant here"), Doc("1", "still nothing")],
    }
    queries = {
        "1": Query("1", "how do glacier caves form"),
        "2": Query("2", "who wrote hamlet"),
        "3": Query("3", "what is la bamba"),
    }
    qrels = [
        Qrel(q, d.doc_id, int((q, d.doc_id) in {("1", "1"), ("2", "0")}))
        for q, docs in candidates.items()
        for d in docs
    ]
    split = Split(queries, qrels, candidates=candidates)
    return Collection("tiny-as", ANSWER_SELECTION, {}, {"train": split})


@pytest.fixture
def tokenizer() -> Tokenizer:
    return Tokenizer()


def vocab_of(collection: Collection, tokenizer: Tokenizer) -> Vocab:
    texts = [d.text for d in collection.docs.values()]
    for split in collection.splits.values():
        texts += [q.text for q in split.queries.values()]
        texts += [d.text for docs in (split.candidates or {}).values() for d in docs]
    return Vocab.build(tokenizer.tokenize_batch(texts))


@pytest.fixture
def encoder_for(tokenizer):
    def make(collection: Collection, **options) -> WordEncoder:
        return WordEncoder(tokenizer, vocab_of(collection, tokenizer), **options)

    return make


@pytest.fixture
def make_example():
    return _example


def _example(query_id: str, labels: list[float], lengths: list[int] | None = None) -> QueryExample:
    """A hand-made QueryExample: candidate i has doc id f"{query_id}-d{i}" and ids [10 + i] * lengths[i]."""
    lengths = lengths or [1 + i for i in range(len(labels))]
    return QueryExample(
        query_id=query_id,
        query=[2, 3],
        doc_ids=[f"{query_id}-d{i}" for i in range(len(labels))],
        docs=[[10 + i] * n for i, n in enumerate(lengths)],
        relevance=[int(label) for label in labels],
        labels=list(labels),
        scores=[1.0 - 0.1 * i for i in range(len(labels))],
    )
