"""MS MARCO-style `id<TAB>text` files of documents or queries: one record per line, no header.

Every line must hold exactly two tab-separated fields and a non-empty id; ids are unique within a file. An empty
text is allowed but reported: such records are kept (with empty text), so that qrels and runs naming them still
resolve, and one `DataWarning` per file gives their count.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from neurank.collections.errors import FormatError, warn_data
from neurank.collections.records import Doc, Query
from neurank.collections.textio import atomic_write, read_lines

_EXPECTED = "'id<TAB>text' (exactly 2 tab-separated fields, non-empty id)"


def read_docs_tsv(path: str | Path) -> list[Doc]:
    """Read `doc_id<TAB>text` lines as `Doc`s, in file order.

    Raises:
        FormatError: a line without exactly two fields, an empty id, or an id seen before (both lines named).
    """
    return [Doc(i, t) for i, t in _read_pairs(path, "document")]


def read_queries_tsv(path: str | Path) -> list[Query]:
    """Read `query_id<TAB>text` lines as `Query`s, in file order; errors as for `read_docs_tsv`."""
    return [Query(i, t) for i, t in _read_pairs(path, "query")]


def write_docs_tsv(path: str | Path, docs: Iterable[Doc]) -> None:
    """Write `doc_id<TAB>text` lines atomically.

    Raises:
        ValueError: an empty id, or an id or text holding a tab or line break (the file is left as it was).
    """
    _write_pairs(path, docs)


def write_queries_tsv(path: str | Path, queries: Iterable[Query]) -> None:
    """Write `query_id<TAB>text` lines atomically; errors as for `write_docs_tsv`."""
    _write_pairs(path, queries)


def _read_pairs(path: str | Path, what: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    empty = 0
    for number, line in read_lines(path, f"{what} file"):
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip():
            raise FormatError(path, number, _EXPECTED, line)
        record_id, text = fields[0].strip(), fields[1].strip()
        if record_id in first_line:
            repeat = f"{record_id} (already at line {first_line[record_id]})"
            raise FormatError(path, number, f"a new {what} id", repeat)
        first_line[record_id] = number
        empty += not text
        pairs.append((record_id, text))
    if empty:
        warn_data(f"{path}: {empty} {what}(s) have empty text; kept with empty text")
    return pairs


def _write_pairs(path: str | Path, records: Iterable[tuple[str, str]]) -> None:
    with atomic_write(path) as handle:
        for record_id, text in records:
            if not record_id.strip() or any(c in field for field in (record_id, text) for c in "\t\r\n"):
                raise ValueError(f"{path}: record {record_id!r}: an empty id, a tab or a line break cannot be written")
            handle.write(f"{record_id}\t{text}\n")
