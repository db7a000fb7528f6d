"""The first stage: BM25 through bm25s. Returns runs, never tensors."""

from neurank.retrieval.bm25 import (
    BM25Config,
    BM25Retriever,
    CollectionFingerprint,
    IndexMismatchError,
    bm25_run,
    build_index,
    score_candidates,
)
from neurank.retrieval.corpus import file_fingerprint, index_corpus_file
from neurank.retrieval.store import DocumentStore, DocumentStoreWriter

__all__ = [
    "BM25Config",
    "BM25Retriever",
    "CollectionFingerprint",
    "DocumentStore",
    "DocumentStoreWriter",
    "IndexMismatchError",
    "bm25_run",
    "build_index",
    "file_fingerprint",
    "index_corpus_file",
    "score_candidates",
]
