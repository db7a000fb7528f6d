"""Which reader reads a file: documents and queries as JSONL, TSV or TREC SGML; qrels as TREC or BEIR TSV.

A format is named (`"jsonl"`, `"tsv"`, `"trec"`, `"beir"`) or told from the file: documents and queries by their
extension (`EXTENSIONS`), qrels by their first line (BEIR qrels open with the header
`query-id<TAB>corpus-id<TAB>score`; TREC qrels have four columns and no header). The readers themselves live in
`beir`, `tsv` and `trec`; this module only chooses among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from neurank.collections.beir import QRELS_HEADER, read_beir_corpus, read_beir_qrels, read_beir_queries
from neurank.collections.errors import FormatError
from neurank.collections.records import Doc, Qrel, Query
from neurank.collections.textio import read_lines
from neurank.collections.trec import read_qrels, read_topics, read_trec_docs
from neurank.collections.tsv import read_docs_tsv, read_queries_tsv

TEXT_FORMATS = ("jsonl", "tsv", "trec")
QRELS_FORMATS = ("trec", "beir")
EXTENSIONS = {".jsonl": "jsonl", ".tsv": "tsv", ".trec": "trec", ".sgml": "trec"}
QRELS_EXPECTED = (
    "TREC qrels ('query_id iteration doc_id relevance', 4 columns, no header) or BEIR qrels (a TSV file that starts "
    "with the header 'query-id<TAB>corpus-id<TAB>score')"
)


def format_from_extension(path: str | Path) -> str | None:
    """The text format `EXTENSIONS` gives the file's extension, or None when it gives none."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def read_documents(path: str | Path, format: str) -> list[Doc]:
    """Read a document file: `jsonl` (BEIR corpus.jsonl), `tsv` (`doc_id<TAB>text`) or `trec` (SGML `<DOC>`s)."""
    readers = {"jsonl": read_beir_corpus, "tsv": read_docs_tsv, "trec": read_trec_docs}
    return readers[_known(format, TEXT_FORMATS)](path)


def read_queries(path: str | Path, format: str, fields: Sequence[str] = ("title",)) -> list[Query]:
    """Read a query file: `jsonl` (BEIR queries.jsonl), `tsv` (`query_id<TAB>text`) or `trec` (SGML topics).

    Args:
        fields: for TREC topics, the fields whose text makes the query (title, desc, narr).
    """
    format = _known(format, TEXT_FORMATS)
    if format == "trec":
        return read_topics(path, tuple(fields))
    return read_beir_queries(path) if format == "jsonl" else read_queries_tsv(path)


def qrels_format(path: str | Path) -> str:
    """`"beir"` or `"trec"`, told from the first non-blank line of a qrels file.

    Raises:
        FormatError: the line fits neither format (the message names both), or the file is empty.
    """
    for number, line in read_lines(path, "qrels file"):
        if not line.strip():
            continue
        if tuple(line.split()) == QRELS_HEADER:
            return "beir"
        if len(line.split()) == 4:
            return "trec"
        raise FormatError(path, number, QRELS_EXPECTED, line)
    raise FormatError(path, None, QRELS_EXPECTED, "an empty file")


def read_qrels_any(path: str | Path, format: str | None = None) -> list[Qrel]:
    """Read TREC or BEIR qrels; `format` None tells them apart by the first line (`qrels_format`)."""
    format = qrels_format(path) if format is None else _known(format, QRELS_FORMATS)
    return read_beir_qrels(path) if format == "beir" else read_qrels(path)


def _known(format: str, formats: tuple[str, ...]) -> str:
    if format not in formats:
        raise ValueError(f"unknown format {format!r}; known formats: {', '.join(formats)}")
    return format
