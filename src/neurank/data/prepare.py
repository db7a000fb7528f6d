"""Data preparation for a configured experiment, done once per collection: the collection (with its fold), the
tokenizer and vocabulary, BM25 candidates turned into examples, the initial word vectors and IDF.

    data = prepare_data(load_config("wikiqa"))

Training, the results table and `neurank embeddings train` (through `train_collection_word2vec`) all start here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurank.collections import ANSWER_SELECTION, Collection, load_collection
from neurank.collections.registry import resolve_data_dir
from neurank.config import ExperimentConfig
from neurank.data import embeddings as embeddings_io
from neurank.data.examples import QueryExample, build_examples
from neurank.retrieval import bm25_run
from neurank.text import Tokenizer, TokenizerConfig, Vocab, WordEncoder


@dataclass
class PreparedData:
    """Everything the loop needs that comes from the collection, built once."""

    collection: Collection
    tokenizer: Tokenizer
    vocab: Vocab
    encoder: WordEncoder
    train_examples: list[QueryExample]
    dev_examples: list[QueryExample]
    embeddings: torch.Tensor | None
    embedding_report: dict | None
    idf: torch.Tensor | None = None


def collection_texts(collection: Collection) -> list[str]:
    """Every query and document text of the collection (all splits), for the vocabulary and word2vec.

    Using dev and test *texts* is transductive but label-free, and it is what lets an interaction model match a
    rare word it never saw in training (its embedding is random but equal to itself).
    """
    texts = [doc.text for doc in collection.docs.values()]
    for split in collection.splits.values():
        texts += [query.text for query in split.queries.values()]
        for docs in (split.candidates or {}).values():
            texts += [doc.text for doc in docs]
    return list(dict.fromkeys(texts))


def data_tokenizer(config: ExperimentConfig) -> Tokenizer:
    """The word tokenizer the config's data settings describe (stop words, stemmer)."""
    return Tokenizer(TokenizerConfig(stopwords=config.data.stopwords, stemmer=config.data.stemmer))


def load_configured_collection(config: ExperimentConfig) -> Collection:
    """The config's collection, with its fold for the collections that are split by folds (Cranfield, CISI)."""
    data = config.data
    return load_collection(data.collection, data.data_dir, fold=data.fold, folds=data.folds)


def prepare_data(config: ExperimentConfig, progress: bool = False) -> PreparedData:
    """Load the collection, build tokenizer and vocabulary, BM25 candidates, examples and embeddings."""
    data = config.data
    collection = load_configured_collection(config)
    tokenizer = data_tokenizer(config)
    texts = collection_texts(collection)
    token_lists = tokenizer.tokenize_batch(texts)
    vocab = Vocab.build(token_lists, min_freq=data.min_freq, max_size=data.max_vocab)
    encoder = WordEncoder(tokenizer, vocab, data.max_query_len, data.max_doc_len)

    def examples(split: str) -> list[QueryExample]:
        run = bm25_run(collection, split, k=data.candidates)
        depth = None if collection.task == ANSWER_SELECTION else data.candidates
        return build_examples(collection, split, encoder, run, depth=depth, min_relevance=data.min_relevance)

    embeddings, report = make_embeddings(config, vocab, token_lists, collection)
    idf = inverse_document_frequencies(vocab, tokenizer.tokenize_batch(document_texts(collection)))
    train_examples = examples(data.train_split)[: data.max_train_queries]
    dev_examples = examples(data.dev_split)
    return PreparedData(collection, tokenizer, vocab, encoder, train_examples, dev_examples, embeddings, report, idf)


def document_texts(collection: Collection) -> list[str]:
    """The distinct document texts: the pool (ad-hoc) or every candidate of every split (answer selection)."""
    texts = [doc.text for doc in collection.docs.values()]
    for split in collection.splits.values():
        for docs in (split.candidates or {}).values():
            texts += [doc.text for doc in docs]
    return list(dict.fromkeys(texts))


def inverse_document_frequencies(vocab: Vocab, documents: Sequence[Sequence[str]]) -> torch.Tensor:
    """BM25-style IDF, log(1 + (N - df + 0.5) / (df + 0.5)), of every vocabulary id (PAD gets 0).

    Models whose term gating reads IDF (DRMM, PACRR) receive it through `model.set_idf`.
    """
    df = np.zeros(len(vocab), dtype=np.float64)
    for tokens in documents:
        ids = np.unique(vocab.encode(list(tokens))) if tokens else np.zeros(0, dtype=np.int64)
        df[ids] += 1
    n = len(documents)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    idf[0] = 0.0
    return torch.tensor(idf, dtype=torch.float)


def make_embeddings(config: ExperimentConfig, vocab: Vocab, token_lists: list[list[str]], collection: Collection):
    """The initial embedding matrix (None: the model initialises randomly) and its coverage report."""

    source = config.embeddings
    if source.source == "random":
        return None, None
    if source.source == "word2vec":
        return word2vec_embeddings(config, vocab, word2vec_sentences(config, token_lists))
    matrix, report = embeddings_io.load_embeddings(source.source, vocab, seed=config.train.seed)
    return matrix, dataclasses.asdict(report)


def word2vec_embeddings(config: ExperimentConfig, vocab: Vocab, sentences: list[list[str]]):
    """word2vec trained on `sentences` with the config's settings and seed: the vocabulary's matrix and coverage."""

    vectors = _train_word2vec(config, sentences)
    matrix, report = embeddings_io.embeddings_from_keyed_vectors(vectors, vocab, seed=config.train.seed)
    return matrix, dataclasses.asdict(report)


def _train_word2vec(config: ExperimentConfig, sentences: list[list[str]]):
    source = config.embeddings
    return embeddings_io.train_word2vec(
        sentences,
        dim=source.dim,
        window=source.window,
        min_count=source.min_count,
        epochs=source.epochs,
        seed=config.train.seed,
    )


def word2vec_sentences(config: ExperimentConfig, token_lists: list[list[str]]) -> list[list[str]]:
    """What word2vec reads: the collection's non-empty token lists, then the Brown corpus's sentences when
    `embeddings.brown` is set (tokenised as the collection is)."""

    sentences = [tokens for tokens in token_lists if tokens]
    if config.embeddings.brown:
        brown_zip = resolve_data_dir(config.data.data_dir) / "brown_corpus" / "brown.zip"
        tokenizer = data_tokenizer(config)
        sentences += embeddings_io.brown_corpus_sentences(brown_zip, tokenizer)
    return sentences


def train_collection_word2vec(config: ExperimentConfig, output_path: str | Path) -> dict:
    """Train word2vec on the config's collection and write it in word2vec text format (`embeddings.source` reads it).

    The training text is what training itself gives word2vec: every query and document text of the collection,
    tokenised with the config's data settings, plus the Brown corpus when `embeddings.brown` is set. The
    `embeddings` settings (dim, window, min_count, epochs) and `train.seed` choose the training. The file is
    written under a temporary name and renamed into place.

    Returns:
        {"collection", "sentences", "words", "dim", "output"}: the texts trained on, the words with a vector.
    """
    collection = load_configured_collection(config)
    tokenizer = data_tokenizer(config)
    sentences = word2vec_sentences(config, tokenizer.tokenize_batch(collection_texts(collection)))
    vectors = _train_word2vec(config, sentences)
    output = Path(output_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    vectors.save_word2vec_format(str(tmp), binary=False)
    tmp.replace(output)
    return {
        "collection": config.data.collection,
        "sentences": len(sentences),
        "words": len(vectors.index_to_key),
        "dim": config.embeddings.dim,
        "output": str(output),
    }
