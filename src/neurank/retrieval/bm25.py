"""The BM25 first stage, through bm25s.

Documents and queries are tokenised with neurank's own `Tokenizer`, so BM25 and the neural models see the same
tokens. Results are runs (lists of `ScoredDoc`), never tensors.

Two ways to use it:
- ad-hoc collections: `BM25Retriever(tokenizer).index(docs)`, then `.search(queries, k)`; the index saves to and
  loads from a directory. `build_index(docs, directory)` does both in one pass and keeps the documents' texts
  beside the index (`neurank.retrieval.store.DocumentStore`), so a re-ranker can read the texts it needs by id.
- answer selection (WikiQA): `score_candidates(queries, candidates, tokenizer)` indexes the pool of every candidate
  of the split (so IDF and average length come from that pool) and scores each query's own candidates.

Indexing streams: documents are tokenised a batch at a time and each batch is reduced at once to its
(document, term, frequency) postings, in three compact arrays, so no list of every text or of every token list is
ever held (a million documents of 60 words, 40 million postings, index with a peak of 1.2 GiB). The BM25 weights
are then computed with bm25s's own scoring functions, one document length at a time, exactly as
`bm25s.BM25.index` computes them document by document: the index is the same, bit for bit (tests/retrieval
compares them). A saved index loads memory-mapped with `BM25Retriever.load(directory, mmap=True)`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

# bm25s's own scoring functions (private, present since at least bm25s 0.2.6), so that the streamed index is exactly
# the one `bm25s.BM25.index` builds; tests/retrieval compares the two on every BM25 variant.
from bm25s.scoring import _build_idf_array, _build_nonoccurrence_array, _select_idf_scorer, _select_tfc_scorer

from neurank.collections.collection import ANSWER_SELECTION, Collection
from neurank.collections.errors import warn_data
from neurank.collections.records import Doc, Query, ScoredDoc
from neurank.retrieval.folders import atomic_dir
from neurank.retrieval.store import DocumentStore, DocumentStoreWriter
from neurank.text import Tokenizer, TokenizerConfig

INDEX_FORMAT = 1  # the fingerprint (issue 22) is an optional entry of format 1: older indexes lack it
STORE_DIR = "docs"  # the document store inside an index folder written by `build_index`
INDEX_BATCH = 8192  # documents tokenised at a time while indexing

# BM25's own tokenisation: English stop words removed and Snowball-stemmed, as in Anserini's default analyser.
# On the dev splits this beats unstemmed tokens on all four collections (README, "Baseline").
BM25_TOKENIZER = TokenizerConfig(stopwords="en", stemmer="english")


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters.

    The defaults are Anserini's (k1=0.9, b=0.4) with Lucene's IDF, the setting behind the published BM25 figures
    on BEIR that we compare against.
    """

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"


class IndexMismatchError(ValueError):
    """A saved index does not match its own files, or the collection it is used with."""


class EmptyIndexError(ValueError):
    """There were no documents to index."""


class CollectionFingerprint:
    """What an index records of the documents it was built from, accumulated as they stream past.

    ``documents``: how many; ``doc_ids``: SHA-256 of the ids in index order (each followed by a NUL byte), which
    ties the index's list of ids to its postings; ``contents``: the sum, modulo 2^256, of the SHA-256 of every
    ``id NUL text``, which is the same for the same documents in any order (so a collection read in another order
    still matches, and one changed text, id or document does not). Costs one hash of every text (NFCorpus: see
    benchmarks; a small part of tokenising it).
    """

    def __init__(self) -> None:
        self.documents = 0
        self._ids = hashlib.sha256()
        self._contents = 0

    def add(self, docs: Iterable[Doc]) -> None:
        sha256, total, ids = hashlib.sha256, self._contents, self._ids
        for doc in docs:
            key = doc.doc_id.encode("utf-8", "surrogatepass") + b"\0"
            ids.update(key)
            total += int.from_bytes(sha256(key + doc.text.encode("utf-8", "surrogatepass")).digest(), "big")
            self.documents += 1
        self._contents = total % (1 << 256)

    def to_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "doc_ids": self._ids.hexdigest(), "contents": f"{self._contents:064x}"}

    @classmethod
    def of(cls, docs: Iterable[Doc]) -> dict[str, Any]:
        """The fingerprint of `docs` as a dict (the form an index saves)."""
        fingerprint = cls()
        fingerprint.add(docs)
        return fingerprint.to_dict()


def doc_ids_digest(doc_ids: Iterable[str]) -> str:
    """The ``doc_ids`` entry of a `CollectionFingerprint` for these ids, in this order."""
    digest = hashlib.sha256()
    for doc_id in doc_ids:
        digest.update(doc_id.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


class BM25Retriever:
    """A BM25 index over a fixed document pool."""

    def __init__(self, tokenizer: Tokenizer | None = None, config: BM25Config | None = None):
        self.tokenizer = tokenizer or Tokenizer(BM25_TOKENIZER)
        self.config = config or BM25Config()
        self.doc_ids: list[str] = []
        self._bm25: bm25s.BM25 | None = None
        self.store: DocumentStore | None = None
        """The indexed documents' texts, when the index was built by `build_index` (or loaded from its folder)."""
        self.source: dict[str, Any] | None = None
        """What the documents were read from, as given to `build_index` (e.g. `corpus.file_fingerprint`)."""
        self.fingerprint: dict[str, Any] | None = None
        """The `CollectionFingerprint` of the indexed documents; None for an index saved before it was recorded."""

    def index(self, docs: Iterable[Doc], show_progress: bool = False, batch_size: int = INDEX_BATCH) -> BM25Retriever:
        """Index `docs`, replacing any previous index. Returns self.

        `docs` may be any iterable, a generator reading a file included: it is read once, `batch_size` documents
        at a time, and only the document ids and the postings are kept.
        """
        from tqdm.auto import tqdm

        postings = _Postings()
        doc_ids: list[str] = []
        fingerprint = CollectionFingerprint()
        with tqdm(desc="BM25 index", unit=" docs", unit_scale=True, disable=not show_progress) as progress:
            for batch in _batched(docs, batch_size):
                doc_ids.extend(doc.doc_id for doc in batch)
                fingerprint.add(batch)
                postings.add(self.tokenizer.tokenize_batch([doc.text for doc in batch]))
                progress.update(len(batch))
        if not doc_ids:
            raise EmptyIndexError("cannot build a BM25 index over zero documents")
        if postings.empty_docs:
            warn_data(
                f"{postings.empty_docs} of {len(doc_ids)} documents have no tokens after tokenisation; "
                "BM25 scores them 0"
            )
        self.doc_ids = doc_ids
        self._bm25 = postings.build(bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method))
        self.store = self.source = None  # they described the previous documents
        self.fingerprint = fingerprint.to_dict()
        return self

    @property
    def bm25(self) -> bm25s.BM25:
        if self._bm25 is None:
            raise RuntimeError("the BM25 index is empty: call index() or BM25Retriever.load() first")
        return self._bm25

    def scores(self, query_text: str) -> np.ndarray:
        """BM25 score of every indexed document for one query, in index order (all 0 for a query without tokens:
        stop words or punctuation only)."""
        tokens = self.tokenizer.tokenize(query_text)
        if not tokens:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return self.bm25.get_scores(tokens)

    def search(self, queries: Iterable[Query], k: int = 1000) -> list[ScoredDoc]:
        """Top-`k` documents per query.

        Documents that share no term with the query (score 0) are not returned, as in an inverted-index engine;
        a query with no tokens gets no results and is reported once in a warning.
        """
        queries = list(queries)
        tokens = self.tokenizer.tokenize_batch([q.text for q in queries])
        kept = [(q, t) for q, t in zip(queries, tokens, strict=True) if t]
        if len(kept) < len(queries):
            empty = [q.query_id for q, t in zip(queries, tokens, strict=True) if not t]
            warn_data(f"{len(empty)} queries have no tokens after tokenisation and get no results: {empty[:5]}")
        if not kept:
            return []
        k = min(k, len(self.doc_ids))
        indices, scores = self.bm25.retrieve(
            [t for _, t in kept], k=k, show_progress=False, n_threads=0, return_as="tuple"
        )
        run: list[ScoredDoc] = []
        for (query, _), row_indices, row_scores in zip(kept, indices, scores, strict=True):
            for index, score in zip(row_indices.tolist(), row_scores.tolist(), strict=True):
                if score > 0:
                    run.append(ScoredDoc(query.query_id, self.doc_ids[index], float(score)))
        return run

    def save(self, directory: str | Path) -> None:
        """Save the index, its document ids and the tokenizer and BM25 settings to `directory`, atomically.

        An index saved there before is replaced; any other non-empty folder is refused. The document store, if the
        retriever has one, is copied along.
        """
        directory = Path(directory)
        _check_replaceable(directory)
        with atomic_dir(directory) as tmp:
            if self.store is not None:
                shutil.copytree(self.store.directory, tmp / STORE_DIR)
            self._write(tmp)
        if self.store is not None:
            self.store = DocumentStore(directory / STORE_DIR)

    def _write(self, directory: Path) -> None:
        self.bm25.save(str(directory / "bm25s"), show_progress=False)
        meta = {
            "format": INDEX_FORMAT,
            "config": asdict(self.config),
            "tokenizer": self.tokenizer.to_dict(),
            "doc_ids": self.doc_ids,
        }
        if self.source is not None:
            meta["source"] = self.source
        if self.fingerprint is not None:
            meta["fingerprint"] = self.fingerprint
        (directory / "neurank.json").write_text(json.dumps(meta), encoding="utf-8")

    def check_collection(self, docs: Mapping[str, Doc], index: str | Path, collection: str) -> None:
        """Refuse to search `docs` (the collection called `collection`) with this index (saved at `index`) unless it
        was built from the same documents: the same ids and texts, in any order.

        An index saved before fingerprints were recorded gets the checks it had then (the same number of documents,
        every id in the collection) and a warning that its texts cannot be checked.

        Raises:
            IndexMismatchError: one line naming the index, the collection and what differs.
        """
        rebuild = f"rebuild it with `neurank index {collection}`, or pass the --index built from {collection}"
        where = f"{index}: this index was built from other documents than {collection}'s"
        if len(self.doc_ids) != len(docs):
            raise IndexMismatchError(
                f"{where}: it holds {len(self.doc_ids)} documents, {collection} has {len(docs)}; {rebuild}"
            )
        missing = [doc_id for doc_id in self.doc_ids if doc_id not in docs]
        if missing:
            raise IndexMismatchError(
                f"{where}: {len(missing)} of its {len(self.doc_ids)} document ids are not in {collection} "
                f"(e.g. {missing[0]!r}); {rebuild}"
            )
        if self.fingerprint is None:
            warn_data(
                f"{index}: an index without a fingerprint of its documents (written before neurank recorded one): "
                f"only its number of documents and their ids were checked against {collection}, not their texts; "
                f"rebuild it with `neurank index {collection}` to have them checked"
            )
            return
        if CollectionFingerprint.of(docs.values())["contents"] != self.fingerprint.get("contents"):
            raise IndexMismatchError(
                f"{where}: the same {len(docs)} document ids, but the texts of some differ from the ones indexed "
                f"(the collection's files changed since); {rebuild}"
            )

    @staticmethod
    def saved_in(directory: str | Path) -> bool:
        """Whether `directory` holds an index written by `save`."""
        return (Path(directory) / "neurank.json").is_file()

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = False) -> BM25Retriever:
        """Load an index written by `save` or `build_index`.

        Args:
            mmap: memory-map the index arrays instead of reading them: loading is instant and only the postings of
                the query terms are ever read, which keeps a large index out of memory. Results are the same.
        """
        directory = Path(directory)
        meta_path = directory / "neurank.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{directory}: not a neurank BM25 index (no neurank.json); build one with `neurank index`"
            )
        meta = _read_meta(meta_path)
        try:
            retriever = cls(Tokenizer.from_dict(meta["tokenizer"]), BM25Config(**meta["config"]))
        except (KeyError, TypeError, ValueError) as error:
            raise IndexMismatchError(
                f"{meta_path}: expected the tokenizer and BM25 settings `neurank index` writes, found "
                f"{type(error).__name__}: {error}; rebuild the index"
            ) from None
        retriever.doc_ids = meta["doc_ids"]
        retriever.source = meta.get("source")
        retriever.fingerprint = meta.get("fingerprint")
        _check_doc_ids(meta_path, retriever.doc_ids, retriever.fingerprint)
        try:
            retriever._bm25 = bm25s.BM25.load(str(directory / "bm25s"), mmap=mmap, show_progress=False, verbosity=0)
        except (OSError, ValueError, KeyError) as error:
            raise IndexMismatchError(
                f"{directory / 'bm25s'}: the index arrays cannot be read ({type(error).__name__}: {error}); rebuild "
                "the index with `neurank index`"
            ) from None
        indexed = int(retriever._bm25.scores.get("num_docs", len(retriever.doc_ids)))
        if indexed != len(retriever.doc_ids):
            raise IndexMismatchError(
                f"{meta_path}: expected {indexed} document ids (the documents in the index arrays), found "
                f"{len(retriever.doc_ids)}; the index's files do not belong together: rebuild it with `neurank index`"
            )
        if DocumentStore.saved_in(directory / STORE_DIR):
            retriever.store = DocumentStore(directory / STORE_DIR)
        return retriever


def _read_meta(path: Path) -> dict[str, Any]:
    """An index's neurank.json, checked for the entries every index has; errors name the file and what was expected."""
    expected = "a JSON object with format, config, tokenizer and doc_ids, as `neurank index` writes it"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise IndexMismatchError(
            f"{path}: expected UTF-8 JSON ({expected}), found byte 0x{error.object[error.start]:02x} at offset "
            f"{error.start}; rebuild the index"
        ) from None
    except json.JSONDecodeError as error:
        raise IndexMismatchError(
            f"{path}:{error.lineno}: expected {expected}, found invalid JSON ({error.msg} at column {error.colno}); "
            "rebuild the index"
        ) from None
    if not isinstance(meta, dict):
        raise IndexMismatchError(f"{path}: expected {expected}, found a JSON {type(meta).__name__}; rebuild the index")
    if meta.get("format") != INDEX_FORMAT:
        raise IndexMismatchError(
            f"{path}: index format {meta.get('format')!r}, expected {INDEX_FORMAT}; rebuild it with `neurank index`"
        )
    missing = [key for key in ("config", "tokenizer", "doc_ids") if key not in meta]
    if missing:
        raise IndexMismatchError(f"{path}: expected {expected}; {', '.join(missing)} missing; rebuild the index")
    doc_ids = meta["doc_ids"]
    if not isinstance(doc_ids, list) or not all(isinstance(doc_id, str) for doc_id in doc_ids):
        raise IndexMismatchError(f"{path}: expected doc_ids to be a list of strings; rebuild the index")
    fingerprint = meta.get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, dict):
        raise IndexMismatchError(f"{path}: expected the fingerprint to be a JSON object; rebuild the index")
    return meta


def _check_doc_ids(path: Path, doc_ids: list[str], fingerprint: Mapping[str, Any] | None) -> None:
    # The ids say which document each row of the index arrays is: a list edited, reordered or cut short after
    # indexing would name the wrong documents in every result.
    if fingerprint is None:  # an index written before fingerprints: `check_collection` warns where it is used
        return
    if fingerprint.get("documents") != len(doc_ids) or fingerprint.get("doc_ids") != doc_ids_digest(doc_ids):
        raise IndexMismatchError(
            f"{path}: the document ids ({len(doc_ids)}) do not match the fingerprint written when the "
            f"{fingerprint.get('documents')} documents were indexed (edited or reordered since), so results would "
            "name the wrong documents; rebuild the index with `neurank index`"
        )


def build_index(
    docs: Iterable[Doc],
    directory: str | Path,
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
    store: bool = True,
    show_progress: bool = False,
    source: Mapping[str, Any] | None = None,
) -> BM25Retriever:
    """Index `docs` and save the index to `directory` in one pass, keeping their texts in a document store.

    `docs` is read once, so a generator over a file works and the texts are never all in memory. An index already
    at `directory` is replaced (atomically); any other non-empty folder is refused.

    Args:
        store: also write the documents' texts to `directory/docs` (`DocumentStore`), available as
            `retriever.store` now and after `BM25Retriever.load(directory)`.
        source: JSON-ready facts about where `docs` came from, saved with the index and read back as
            `retriever.source`, so a caller can tell whether the index still matches its files
            (`neurank.retrieval.corpus.file_fingerprint`).

    Returns:
        The retriever, its index in memory (load it again with `mmap=True` to search with little memory).

    Raises:
        EmptyIndexError: `docs` held no document (naming `source["path"]` when given); nothing is written.
    """
    directory = Path(directory)
    _check_replaceable(directory)
    retriever = BM25Retriever(tokenizer, config)
    try:
        with atomic_dir(directory) as tmp:
            if store:
                with DocumentStoreWriter(tmp / STORE_DIR) as writer:
                    retriever.index(writer.passing(docs), show_progress=show_progress)
            else:
                retriever.index(docs, show_progress=show_progress)
            retriever.source = None if source is None else dict(source)
            retriever._write(tmp)
    except EmptyIndexError as error:
        if source is None or "path" not in source:
            raise
        raise EmptyIndexError(f"{source['path']}: holds no documents; {error}") from None
    if store:
        retriever.store = DocumentStore(directory / STORE_DIR)
    return retriever


def _check_replaceable(directory: Path) -> None:
    if directory.exists() and not BM25Retriever.saved_in(directory):
        if not directory.is_dir() or any(directory.iterdir()):
            raise FileExistsError(
                f"{directory}: exists and is not a neurank BM25 index; choose another folder for the index"
            )


def _batched(items: Iterable[Doc], size: int) -> Iterator[list[Doc]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


class _Postings:
    """The (document, term, frequency) triples of a stream of token lists, in compact arrays grown batch by batch."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.rows = _Blocks(np.int32)  # document index
        self.cols = _Blocks(np.int32)  # term id
        self.tfs = _Blocks(np.float32)  # term frequency in the document, float32 as in bm25s
        self.lengths = _Blocks(np.int64)  # tokens per document
        self.n_docs = 0
        self.empty_docs = 0

    def add(self, token_lists: list[list[str]]) -> None:
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        total = int(lengths.sum())
        self.lengths.extend(lengths)
        self.empty_docs += int((lengths == 0).sum())
        if total:
            vocab = self.vocab
            setdefault = vocab.setdefault  # a new token gets the next id
            ids = np.fromiter(
                (setdefault(token, len(vocab)) for tokens in token_lists for token in tokens), np.int64, count=total
            )
            width = len(vocab)
            doc_of_token = np.repeat(np.arange(len(token_lists), dtype=np.int64), lengths)
            keys, counts = np.unique(doc_of_token * width + ids, return_counts=True)
            self.rows.extend(keys // width + self.n_docs)
            self.cols.extend(keys % width)
            self.tfs.extend(counts)
        self.n_docs += len(token_lists)

    def build(self, bm25: bm25s.BM25) -> bm25s.BM25:
        """Fill `bm25` with the index of the postings, as `bm25.index(token_lists)` would, and return it."""
        lengths = self.lengths.take()
        n_docs, n_vocab = len(lengths), len(self.vocab)
        if n_vocab == 0:
            raise ValueError(f"none of the {n_docs} documents has a token after tokenisation: nothing to index")
        avg_doc_len = lengths.mean()
        cols = self.cols.take()
        doc_frequencies = dict(enumerate(np.bincount(cols, minlength=n_vocab).tolist()))
        idf_array = _build_idf_array(doc_frequencies, n_docs, _select_idf_scorer(bm25.idf_method), bm25.dtype)
        nonoccurrence = None
        if bm25.method in bm25.methods_requiring_nonoccurrence:
            nonoccurrence = _build_nonoccurrence_array(
                doc_frequencies=doc_frequencies,
                n_docs=n_docs,
                compute_idf_fn=_select_idf_scorer(bm25.idf_method),
                calculate_tfc_fn=_select_tfc_scorer(bm25.method),
                l_d=avg_doc_len,
                l_avg=avg_doc_len,
                k1=bm25.k1,
                b=bm25.b,
                delta=bm25.delta,
                dtype=bm25.dtype,
            )
        rows = self.rows.take()
        tfs = self.tfs.take()
        scores = _posting_scores(bm25, rows, cols, tfs, lengths, avg_doc_len, idf_array, nonoccurrence)
        del tfs
        # bm25s's CSC layout: postings by term, and by document within a term. Rows are already ascending, so a
        # stable sort on the term gives bm25s's (term, document) order.
        sorter = np.argsort(cols, kind="stable")
        data = scores[sorter]
        del scores
        indices = rows[sorter]
        del rows, sorter
        indptr = np.zeros(n_vocab + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=n_vocab), out=indptr[1:])
        bm25.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
        bm25.nonoccurrence_array = nonoccurrence
        bm25.vocab_dict = dict(self.vocab)
        bm25.vocab_dict[""] = n_vocab  # bm25s's empty token, for queries with no known term
        bm25.unique_token_ids_set = set(bm25.vocab_dict.values())
        return bm25


class _Blocks:
    """A one-dimensional array that grows a block at a time, then is `take`n whole.

    Blocks are large (64 MiB and more), above glibc's mmap threshold even where `neurank.runtime.allocator` raises it,
    so each is its own mapping and goes back to the kernel when freed: a batch's small arrays would stay in the heap
    after being joined, and at a million documents that kept 480 MiB of freed postings resident. Untouched pages of
    the last block cost nothing.
    """

    def __init__(self, dtype: type[np.generic], block: int = 1 << 24):
        self.dtype = np.dtype(dtype)
        self.block = block
        self.blocks: list[np.ndarray] = []
        self.length = 0

    def extend(self, values: np.ndarray) -> None:
        done = 0
        while done < len(values):
            used = self.length % self.block
            if used == 0:
                self.blocks.append(np.empty(self.block, dtype=self.dtype))
            count = min(self.block - used, len(values) - done)
            self.blocks[-1][used : used + count] = values[done : done + count]
            done += count
            self.length += count

    def take(self) -> np.ndarray:
        """The whole array; the blocks are freed as they are copied."""
        whole = np.empty(self.length, dtype=self.dtype)
        for start in range(0, self.length, self.block):
            block = self.blocks.pop(0)
            whole[start : start + self.block] = block[: min(self.block, self.length - start)]
            del block
        self.length = 0
        return whole


def _posting_scores(
    bm25: bm25s.BM25,
    rows: np.ndarray,
    cols: np.ndarray,
    tfs: np.ndarray,
    lengths: np.ndarray,
    avg_doc_len: np.floating,
    idf_array: np.ndarray,
    nonoccurrence: np.ndarray | None,
    chunk: int = 1 << 22,
) -> np.ndarray:
    # bm25s scores one document at a time, with its length as a Python int; calling the same function once per
    # distinct length (a few hundred) over all postings of documents of that length gives the same numbers, with
    # the same dtypes under any numpy casting rules, at numpy speed.
    term_frequency_component = _select_tfc_scorer(bm25.method)
    scores = np.empty(len(rows), dtype=bm25.dtype)
    for start in range(0, len(rows), chunk):
        part = slice(start, start + chunk)
        doc_len = lengths[rows[part]]
        by_length = np.argsort(doc_len, kind="stable")
        bounds = np.flatnonzero(np.diff(doc_len[by_length])) + 1
        for group in np.split(by_length, bounds):
            voc = cols[part][group]
            tfc = term_frequency_component(
                tf_array=tfs[part][group],
                l_d=int(doc_len[group[0]]),
                l_avg=avg_doc_len,
                k1=bm25.k1,
                b=bm25.b,
                delta=bm25.delta,
            )
            weights = idf_array[voc] * tfc
            if nonoccurrence is not None:
                weights -= nonoccurrence[voc]
            scores[start + group] = weights
    return scores


def score_candidates(
    queries: Mapping[str, Query],
    candidates: Mapping[str, Sequence[Doc]],
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
) -> list[ScoredDoc]:
    """BM25 scores of each query's given candidates, with statistics from the pool of all candidates.

    Candidate texts are pooled by text, so a sentence that is a candidate for several questions counts once in the
    document frequencies. Every candidate gets a score (0 when it shares no term with the query, when the query has
    no token, and when no candidate has one), since the candidate list is the ranking being evaluated.
    """
    pool_index: dict[str, int] = {}
    for query_id in queries:
        for doc in candidates.get(query_id, ()):
            pool_index.setdefault(doc.text, len(pool_index))
    builder = BM25Retriever(tokenizer, config)
    # A pool of stop words and punctuation only has no term to index: nothing matches, every score is 0.
    has_terms = any(builder.tokenizer.tokenize_batch(list(pool_index)))
    retriever = builder.index(Doc(str(i), text) for text, i in pool_index.items()) if has_terms else None
    run: list[ScoredDoc] = []
    for query_id, query in queries.items():
        scores = retriever.scores(query.text) if retriever is not None else np.zeros(len(pool_index))
        for doc in candidates.get(query_id, ()):
            run.append(ScoredDoc(query_id, doc.doc_id, float(scores[pool_index[doc.text]])))
    return run


def bm25_run(
    collection: Collection,
    split: str,
    k: int = 1000,
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
    retriever: BM25Retriever | None = None,
) -> list[ScoredDoc]:
    """The BM25 run of one split: candidates scored (answer selection) or top-`k` retrieved (ad-hoc).

    Args:
        retriever: an already built or loaded index over `collection.docs` (ad-hoc only); built here if None.
    """
    part = collection.split(split)
    if collection.task == ANSWER_SELECTION:
        return score_candidates(part.queries, part.candidates or {}, tokenizer, config)
    if retriever is None:
        retriever = BM25Retriever(tokenizer, config).index(collection.docs.values())
    return retriever.search(part.queries.values(), k=k)
