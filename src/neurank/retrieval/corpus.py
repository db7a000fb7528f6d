"""Indexing a corpus file as a stream (`neurank.collections.beir.iter_beir_corpus`): one line read, parsed,
tokenised and forgotten at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurank.collections.beir import iter_beir_corpus
from neurank.collections.textio import require_file
from neurank.retrieval.bm25 import BM25Config, BM25Retriever, build_index
from neurank.text import Tokenizer


def index_corpus_file(
    path: str | Path,
    directory: str | Path,
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
    show_progress: bool = False,
) -> BM25Retriever:
    """Build the BM25 index and the document store of a BEIR `corpus.jsonl` in `directory`, streaming the file.

    Memory holds the ids, the postings and one batch of texts, never the whole corpus (see `build_index`). The
    index records the file's `file_fingerprint` as `retriever.source`.
    """
    docs = iter_beir_corpus(path)
    source = file_fingerprint(path)
    return build_index(docs, directory, tokenizer, config, show_progress=show_progress, source=source)


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """The absolute path, size and modification time of a file: cheap to compare, and changed by any rewrite.

    Raises:
        FileNotFoundError: no file at `path`.
    """
    path = require_file(path, "document file").resolve()
    stat = path.stat()
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
