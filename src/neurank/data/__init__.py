"""Ids for the models: examples from collection runs, map-style datasets of unpadded id lists, the collate function
(the only place that pads and builds masks), a length-bucketing batch sampler, and pre-trained word vectors."""

from neurank.data.collate import Batch, collate, pad
from neurank.data.datasets import InferenceDataset, ListwiseDataset, PairwiseDataset, PointwiseDataset
from neurank.data.embeddings import (
    EmbeddingCoverage,
    brown_corpus_sentences,
    embeddings_from_keyed_vectors,
    load_embeddings,
    train_word2vec,
)
from neurank.data.examples import QueryExample, build_examples, normalise_scores
from neurank.data.sampler import BucketBatchSampler

__all__ = [
    "Batch",
    "BucketBatchSampler",
    "EmbeddingCoverage",
    "InferenceDataset",
    "ListwiseDataset",
    "PairwiseDataset",
    "PointwiseDataset",
    "QueryExample",
    "brown_corpus_sentences",
    "build_examples",
    "collate",
    "embeddings_from_keyed_vectors",
    "load_embeddings",
    "normalise_scores",
    "pad",
    "train_word2vec",
]
