"""The data layer on the real collections under shared/data."""

from __future__ import annotations

import warnings

import pytest
from torch.utils.data import DataLoader

from neurank.collections import DataWarning, load_collection
from neurank.data import (
    BucketBatchSampler,
    InferenceDataset,
    ListwiseDataset,
    PointwiseDataset,
    brown_corpus_sentences,
    build_examples,
    collate,
)
from neurank.retrieval import bm25_run
from neurank.text import Tokenizer, Vocab, WordEncoder

pytestmark = pytest.mark.integration


def test_brown_corpus_counts(shared_data):
    sentences = brown_corpus_sentences(shared_data / "brown_corpus" / "brown.zip")
    # PROVENANCE.md: 1,161,192 word/tag tokens (NLTK's brown.words()) in 57,340 non-empty lines (brown.sents()).
    assert len(sentences) == 57_340
    assert sum(len(s) for s in sentences) == 1_161_192
    assert sentences[0][:4] == ["The", "Fulton", "County", "Grand"]


def test_wikiqa_training_examples(shared_data):
    collection = load_collection("wikiqa", shared_data)
    train = collection.split("train")
    tokenizer = Tokenizer()
    texts = [q.text for q in train.queries.values()] + [d.text for docs in train.candidates.values() for d in docs]
    encoder = WordEncoder(tokenizer, Vocab.build(tokenizer.tokenize_batch(texts), min_freq=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # a few sentences have no tokens; counted in the warnings
        run = bm25_run(collection, "train")
        examples = build_examples(collection, "train", encoder, run)

    assert len(examples) == len(train.queries) == 2118
    assert sum(len(ex) for ex in examples) == len(run) == 20360
    assert all(1 <= len(doc) <= 200 for ex in examples for doc in ex.docs)
    assert all(1 <= len(ex.query) <= 20 for ex in examples)
    assert all(0.0 <= s <= 1.0 for ex in examples for s in ex.scores)
    positives = sum(ex.num_positives for ex in examples)
    assert positives == sum(q.relevance for q in train.qrels)  # every judged sentence is a candidate

    pointwise = PointwiseDataset(examples)
    with_positive = [ex for ex in examples if ex.num_positives]
    assert len(pointwise) == sum(len(ex) for ex in with_positive)
    listwise = ListwiseDataset(examples, num_negatives=4, seed=0)
    assert len(listwise) == sum(ex.num_positives for ex in with_positive if ex.num_positives < len(ex))

    sampler = BucketBatchSampler(listwise.lengths, 32, seed=0)
    batch = next(iter(DataLoader(listwise, batch_sampler=sampler, collate_fn=collate)))
    assert batch.group_size == 5 and batch.labels.view(-1, 5)[:, 0].eq(1).all()  # positives first
    assert batch.query_mask.any(1).all() and batch.doc_mask.any(1).all()

    inference = InferenceDataset(examples)
    loader = DataLoader(
        inference, batch_sampler=BucketBatchSampler(inference.lengths, 256, shuffle=False), collate_fn=collate
    )
    pairs = {pair for batch in loader for pair in batch.pairs}
    assert pairs == {(r.query_id, r.doc_id) for r in run}
