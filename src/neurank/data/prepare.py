"""Data preparation for a configured experiment, done once per collection: the collection (with its fold), the
tokenizer and vocabulary, BM25 candidates turned into examples, the initial word vectors and IDF.

    data = prepare_data(load_config("wikiqa"))

A model that reads a pretrained transformer (`WORD_PIECE_MODELS`, with `model_config.hf_model` naming a local
Hugging Face folder) gets the folder's word pieces (`neurank.text.WordPieceEncoder`) instead of the word tokenizer
and vocabulary, and no word vectors or IDF: the transformer brings its own. Candidates and examples are made as for
every model (BM25 keeps its own word tokenizer).

Training, the results table and `neurank embeddings train` (through `train_collection_word2vec`) all start here.

Everything that can be wrong with the configuration is found before the expensive part (tokenising, word2vec,
BM25 indexing): `check_data` checks every file the config names (word vectors, the Brown corpus, extra text),
then loads the collection and checks that it has the splits the work needs; `prepare_data` starts with it. The
model's options are checked above this layer (`neurank.workflows.experiment.validate`), since models sit above data.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurank.collections import ANSWER_SELECTION, Collection, load_collection
from neurank.collections.registry import resolve_data_dir
from neurank.collections.textio import read_lines
from neurank.config import ConfigError, ExperimentConfig
from neurank.data import embeddings as embeddings_io
from neurank.data.examples import QueryExample, build_examples
from neurank.retrieval import bm25_run
from neurank.text import Tokenizer, TokenizerConfig, Vocab, WordEncoder, WordPieceEncoder, check_hf_tokenizer_files
from neurank.text.vocab import SPECIALS

# The models that read a pretrained transformer from `model_config.hf_model`, and so take its word pieces.
WORD_PIECE_MODELS = ("cross_encoder", "cedr_cnn_joint", "cedr_cnn", "cedr_knrm", "cedr_pacrr", "pooled_cosine")
# The weights files a Hugging Face folder may hold, one of them at least (transformers' SAFE_WEIGHTS_NAME,
# WEIGHTS_NAME and their sharded indexes); `neurank.models.cross_encoder` checks the same before loading.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


@dataclass
class PreparedData:
    """Everything the loop needs that comes from the collection, built once.

    Attributes:
        tokenizer: the word tokenizer the model's ids come from; None with word pieces (`encoder` tokenizes).
        vocab: the ids' tokens, ``len(vocab)`` the model's vocabulary size. With word pieces, the word pieces in
            id order (`word_piece_vocab`), for inspection and fingerprints; `encoder` is what encodes.
        encoder: turns texts into the model's ids (`neurank.text.TextEncoder`); checkpoints store it.
        embeddings, embedding_report, idf: the initial word vectors, their coverage and the IDF of the vocabulary;
            None with word pieces.
    """

    collection: Collection
    tokenizer: Tokenizer | None
    vocab: Vocab
    encoder: WordEncoder | WordPieceEncoder
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
    """The config's collection, with its fold for the collections that are split by folds (Cranfield, CISI), and
    `data.dev_fraction` passed on when it is set (a collection with train but no dev carves dev from train)."""
    data = config.data
    return load_collection(
        data.collection, data.data_dir, fold=data.fold, folds=data.folds, dev_fraction=data.dev_fraction
    )


def brown_path(config: ExperimentConfig) -> Path | None:
    """Where `embeddings.brown` says the Brown corpus is: ``DATA_DIR/brown_corpus/brown.zip`` for ``true``, the
    path given, or None when it is off."""
    brown = config.embeddings.brown
    if brown is False:
        return None
    if brown is True:
        return resolve_data_dir(config.data.data_dir, must_exist=False) / "brown_corpus" / "brown.zip"
    if not str(brown).strip():
        raise ConfigError("embeddings.brown: expected true, false or the path of NLTK's brown.zip, found ''")
    return Path(brown)


def check_brown(config: ExperimentConfig) -> Path | None:
    """The Brown corpus's place (`brown_path`), checked: None when `embeddings.brown` is off.

    Raises:
        FileNotFoundError: it is not there; the message says where it looked, how to point elsewhere and how to
            switch it off.
    """
    brown = brown_path(config)
    if brown is not None and not brown.is_file():
        where = (
            f"{brown} (embeddings.brown=true reads DATA_DIR/brown_corpus/brown.zip; DATA_DIR is data.data_dir, "
            "else $NEURANK_DATA, else ./data)"
            if config.embeddings.brown is True
            else str(brown)
        )
        raise FileNotFoundError(
            f"embeddings.brown: the Brown corpus (NLTK's brown.zip) is not at {where}; give its place with "
            "embeddings.brown=PATH/brown.zip (`python -m nltk.downloader brown` puts it in "
            "~/nltk_data/corpora/brown.zip), or train word2vec without it: embeddings.brown=false"
        )
    return brown


def check_files(config: ExperimentConfig, word2vec: bool | None = None) -> None:
    """Check that every file the embeddings settings name exists, and that gensim is there to train word2vec,
    before anything is read.

    Args:
        word2vec: whether word2vec will be trained (None: when `embeddings.source` is ``word2vec``); the Brown
            corpus and the extra text are only read then.
    Raises:
        FileNotFoundError: a file is missing; the message says which setting named it, where it was looked for,
            and how to point it elsewhere or switch it off.
        ConfigError: `embeddings.dim` disagrees with the dimension of a named source.
        ImportError: word2vec needs gensim, or a named source its package, and it is not installed.
    """
    source = config.embeddings
    if word2vec is None:
        word2vec = source.source == "word2vec"
    named = named_source(config)
    if named is not None:
        problem = named.missing()
        if problem is not None:
            raise ImportError(problem)
    elif source.source not in ("random", "word2vec") and not Path(source.source).is_file():
        raise FileNotFoundError(
            f"embeddings.source: {source.source} not found; expected random, word2vec, a named source "
            f"({', '.join(sorted(embeddings_io.NAMED_SOURCES))}), or the path of a GloVe / word2vec / fastText file"
        )
    if not word2vec:
        return
    check_brown(config)
    if source.extra_text is not None and not Path(source.extra_text).is_file():
        raise FileNotFoundError(
            f"embeddings.extra_text: {source.extra_text} not found; expected a text file (one sentence or paragraph "
            "a line) for word2vec to read, or embeddings.extra_text=null"
        )
    if importlib.util.find_spec("gensim") is None:
        raise ImportError(
            "embeddings.source=word2vec trains word2vec with gensim, which is not installed: "
            "pip install neurank[embeddings], or embeddings.source=random"
        )


def named_source(config: ExperimentConfig) -> embeddings_io.NamedSource | None:
    """The named source `embeddings.source` names (`embeddings_io.NAMED_SOURCES`), checked against
    `embeddings.dim`; None when it names something else (a file, random, word2vec).

    The name wins over a file of that name in the working directory (write ``./glove-6b-50d`` for the file).

    Raises:
        ConfigError: `embeddings.dim` is not the source's dimension.
    """
    source = config.embeddings
    named = embeddings_io.NAMED_SOURCES.get(source.source)
    if named is None:
        return None
    if source.dim != named.dim:
        raise ConfigError(
            f"embeddings.dim: {named.name} has {named.dim}-dimensional vectors, found {source.dim}; "
            f"set embeddings.dim={named.dim}"
        )
    return named


def check_splits(config: ExperimentConfig, collection: Collection, splits: Sequence[str]) -> None:
    """Check that `collection` has each of `splits` with something in it to train on or evaluate against.

    Raises:
        ConfigError: a split is missing or has no judged query (a training split: no query with a relevant
            document at `data.min_relevance`); the message says what the collection has and what to do.
    """
    data = config.data
    have = ", ".join(collection.splits) or "none"
    for name in splits:
        if name not in collection.splits:
            if name == data.train_split:
                raise ConfigError(
                    f"data.train_split: collection {data.collection!r} has no {name!r} split (it has: {have}), so "
                    "there is nothing to train on; `neurank search`, `rerank` and `evaluate` work on it as it is, "
                    "or name another split with data.train_split=NAME"
                )
            if name == data.dev_split:
                if data.dev_fraction is None or data.dev_fraction == 0.0:
                    carve = "set data.dev_fraction=0.1 to carve a dev split from train, deterministically"
                else:
                    carve = f"data.dev_fraction={data.dev_fraction:g} carved none (it needs two training queries)"
                raise ConfigError(
                    f"data.dev_split: collection {data.collection!r} has no {name!r} split (it has: {have}) to "
                    f"choose the model on; {carve}, or name another split with data.dev_split=NAME"
                )
            raise ConfigError(
                f"data.test_split: collection {data.collection!r} has no {name!r} split (it has: {have}); name "
                "another with data.test_split=NAME"
            )
        split = collection.splits[name]
        if name == data.train_split:
            if not any(qrel.relevance >= data.min_relevance for qrel in split.qrels):
                raise ConfigError(
                    f"data.train_split: split {name!r} of {data.collection!r} has no judgement with relevance "
                    f"{data.min_relevance} or more (data.min_relevance), so no training example has a positive"
                )
        elif not split.qrels:
            raise ConfigError(f"split {name!r} of {data.collection!r} has no judgements to evaluate against")


def check_data(config: ExperimentConfig, splits: Sequence[str] | None = None) -> Collection:
    """Everything about the data that can fail, before the expensive part: the files (`check_files`), then the
    collection (loaded: its splits are known only then), then its splits (`check_splits`).

    Args:
        splits: the splits the work needs (default: the train and dev splits, as training does).
    Returns:
        the loaded collection, for `prepare_data(config, collection=...)`.
    """
    if word_piece_folder(config) is None:  # word pieces read no word vectors, so no embeddings files
        check_files(config)
    collection = load_configured_collection(config)
    check_splits(config, collection, [config.data.train_split, config.data.dev_split] if splits is None else splits)
    return collection


def prepare_data(
    config: ExperimentConfig, progress: bool = False, collection: Collection | None = None
) -> PreparedData:
    """Load the collection, build tokenizer and vocabulary, BM25 candidates, examples and embeddings; for a model
    with `model_config.hf_model`, the folder's word pieces instead of tokenizer, vocabulary, embeddings and IDF.

    Args:
        collection: the config's collection, already loaded and checked (`check_data`); None: `check_data` here.
    Raises:
        ConfigError: `model_config.hf_model` with a model that reads no transformer, or not a model folder.
    """
    data = config.data
    folder = word_piece_folder(config)
    pieces = word_piece_encoder(config, folder) if folder is not None else None  # its errors before the collection
    collection = collection if collection is not None else check_data(config)
    encoder: WordEncoder | WordPieceEncoder

    def examples(split: str) -> list[QueryExample]:
        run = bm25_run(collection, split, k=data.candidates)
        depth = None if collection.task == ANSWER_SELECTION else data.candidates
        return build_examples(collection, split, encoder, run, depth=depth, min_relevance=data.min_relevance)

    if pieces is not None:
        encoder = pieces
        train_examples = examples(data.train_split)[: data.max_train_queries]
        dev_examples = examples(data.dev_split)
        return PreparedData(
            collection, None, word_piece_vocab(pieces), pieces, train_examples, dev_examples, None, None, None
        )

    tokenizer = data_tokenizer(config)
    texts = collection_texts(collection)
    token_lists = tokenizer.tokenize_batch(texts)
    vocab = Vocab.build(token_lists, min_freq=data.min_freq, max_size=data.max_vocab)
    encoder = WordEncoder(tokenizer, vocab, data.max_query_len, data.max_doc_len)
    if config.model in WORD_PIECE_MODELS:  # a transformer without a folder: a random one over the word ids, no vectors
        embeddings, report = None, None
    else:
        embeddings, report = make_embeddings(config, vocab, token_lists, collection)
    idf = inverse_document_frequencies(vocab, tokenizer.tokenize_batch(document_texts(collection)))
    train_examples = examples(data.train_split)[: data.max_train_queries]
    dev_examples = examples(data.dev_split)
    return PreparedData(collection, tokenizer, vocab, encoder, train_examples, dev_examples, embeddings, report, idf)


def word_piece_folder(config: ExperimentConfig) -> Path | None:
    """The local Hugging Face folder `model_config.hf_model` names, checked; None when it names none.

    Raises:
        ConfigError: the model reads no transformer (not one of `WORD_PIECE_MODELS`), or the value is not a folder
            with a config.json, a weights file (`HF_WEIGHT_FILES`) and a tokenizer file; the message names
            `model_config.hf_model`. Only which files are there is checked: nothing is read.
    """
    hf_model = config.model_config.get("hf_model")
    if hf_model is None:
        return None
    if config.model not in WORD_PIECE_MODELS:
        raise ConfigError(
            f"model_config.hf_model: model {config.model!r} reads no pretrained transformer (those that do: "
            f"{', '.join(WORD_PIECE_MODELS)}); choose one of them with model=NAME, or remove model_config.hf_model"
        )
    if not isinstance(hf_model, str) or not hf_model.strip():
        raise ConfigError(
            f"model_config.hf_model: expected the path of a local Hugging Face folder, found {hf_model!r}"
        )
    folder = Path(hf_model)
    if not folder.is_dir():
        raise ConfigError(
            f"model_config.hf_model: {folder} is not a folder; expected a local Hugging Face model folder "
            "(config.json, the weights, tokenizer.json); nothing is downloaded"
        )
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model_config.hf_model: {folder} has no config.json; expected a Hugging Face model folder")
    if not any((folder / name).is_file() for name in HF_WEIGHT_FILES):
        raise ConfigError(
            f"model_config.hf_model: {folder} has no weights; expected model.safetensors or pytorch_model.bin (or "
            "a sharded model's index, such as model.safetensors.index.json, beside its shards) in the folder"
        )
    try:
        check_hf_tokenizer_files(folder)
    except FileNotFoundError as error:
        raise ConfigError(f"model_config.hf_model: {error}") from None
    return folder


def word_piece_encoder(config: ExperimentConfig, folder: Path) -> WordPieceEncoder:
    """The folder's word pieces, cut at `data.max_query_len` / `data.max_doc_len`.

    Raises:
        ConfigError: no tokenizer in the folder, or one neurank cannot pad (its message, naming the key).
        ImportError: `tokenizers` (the `neurank[transformers]` extra) is not installed, or `transformers` for a
            folder without tokenizer.json.
    """
    if importlib.util.find_spec("tokenizers") is None:
        raise ImportError(
            "model_config.hf_model: reading a Hugging Face tokenizer needs tokenizers: "
            'pip install "neurank[transformers]"'
        )
    try:
        return WordPieceEncoder.from_folder(folder, config.data.max_query_len, config.data.max_doc_len)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"model_config.hf_model: {error}") from None
    except ImportError as error:  # a folder without tokenizer.json is read through transformers
        raise ImportError(f"model_config.hf_model: {error}") from None


def word_piece_vocab(encoder: WordPieceEncoder) -> Vocab:
    """The encoder's word pieces in id order, as a `Vocab` of `encoder.vocab_size` ids.

    `Vocab` names ids 0 and 1 PAD and UNK: id 0 is the tokenizer's pad token (`WordPieceEncoder` requires it), id 1
    whatever the tokenizer puts there (BERT: `[unused0]`); an id without a token, or whose token is spelt as one of
    those two, is shown as ``<piece ID>``. For fingerprints and inspection only: the encoder encodes.
    """
    pieces = []
    for piece_id in range(len(SPECIALS), encoder.vocab_size):
        piece = encoder.tokenizer.id_to_token(piece_id)
        pieces.append(f"<piece {piece_id}>" if piece is None or piece in SPECIALS else piece)
    return Vocab(pieces)


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
    named = named_source(config)
    if named is not None:
        matrix, report = embeddings_io.load_named_embeddings(named.name, vocab, seed=config.train.seed)
        return matrix, dataclasses.asdict(report)
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
    `embeddings.brown` is set, then the lines of `embeddings.extra_text` (all tokenised as the collection is)."""

    sentences = [tokens for tokens in token_lists if tokens]
    tokenizer = data_tokenizer(config)
    brown = check_brown(config)
    if brown is not None:
        sentences += embeddings_io.brown_corpus_sentences(brown, tokenizer)
    if config.embeddings.extra_text is not None:
        lines = [line for _, line in read_lines(config.embeddings.extra_text, "embeddings.extra_text")]
        sentences += [tokens for tokens in tokenizer.tokenize_batch(lines) if tokens]
    return sentences


def train_collection_word2vec(config: ExperimentConfig, output_path: str | Path) -> dict:
    """Train word2vec on the config's collection and write it in word2vec text format (`embeddings.source` reads it).

    The training text is what training itself gives word2vec: every query and document text of the collection,
    tokenised with the config's data settings, plus the Brown corpus when `embeddings.brown` is set and the lines of
    `embeddings.extra_text`. Those files are checked before the collection is read. The
    `embeddings` settings (dim, window, min_count, epochs) and `train.seed` choose the training. The file is
    written under a temporary name and renamed into place.

    Returns:
        {"collection", "sentences", "words", "dim", "output"}: the texts trained on, the words with a vector.
    """
    check_files(config, word2vec=True)
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
