"""Collections in the BEIR layout: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` in one folder.

`corpus.jsonl` holds one JSON object per line with `_id`, `text` and an optional `title`; `queries.jsonl` holds
`_id` and `text` (other keys, such as `metadata`, are ignored). Each `qrels/<split>.tsv` starts with the header
`query-id<TAB>corpus-id<TAB>score` and gives one judgement per line. Blank lines are skipped in all three.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from neurank.collections.collection import ADHOC, Collection, Split, drop_unknown_qrels
from neurank.collections.errors import FormatError, warn_data
from neurank.collections.records import Doc, Qrel, Query
from neurank.collections.textio import read_lines
from neurank.collections.trec import RELEVANCE_RANGE

BEIR_MEASURES = ("nDCG@10", "R@100", "AP")
QRELS_HEADER = ("query-id", "corpus-id", "score")
_SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}
_INT = re.compile(r"-?[0-9]+")
_R = TypeVar("_R", Doc, Query)


def iter_beir_corpus(path: str | Path) -> Iterator[Doc]:
    """Yield the documents of `corpus.jsonl` one at a time, as `read_beir_corpus` reads them (same rules, same errors).

    Only the ids seen so far are kept (to name both lines of a repeated id), never the lines or the texts, so a corpus
    of any size streams through in constant memory besides its ids.
    """

    def make_doc(obj: dict, number: int) -> Doc:
        title = _field(obj, "title", path, number, required=False).strip()
        text = _field(obj, "text", path, number).strip()
        return Doc(_field(obj, "_id", path, number).strip(), " ".join(part for part in (title, text) if part))

    return _iter_records(path, "document", make_doc)


def read_beir_corpus(path: str | Path) -> list[Doc]:
    """Read `corpus.jsonl` as `Doc`s whose text is the title (when there is one), a space, then the text.

    Raises:
        FormatError: a line that is not a JSON object, a missing `_id` or `text` key (named in the message),
            a value of the wrong type, or a repeated `_id` (both lines named).
    """
    return list(iter_beir_corpus(path))


def read_beir_queries(path: str | Path) -> list[Query]:
    """Read `queries.jsonl` as `Query`s; errors as for `read_beir_corpus`."""

    def make_query(obj: dict, number: int) -> Query:
        return Query(_field(obj, "_id", path, number).strip(), _field(obj, "text", path, number).strip())

    return list(_iter_records(path, "query", make_query))


def read_beir_qrels(path: str | Path) -> list[Qrel]:
    """Read a `qrels/<split>.tsv` file.

    A (query, document) pair given twice keeps its last score, as BEIR's own loader does, and the repeats are
    reported in one `DataWarning`.

    Raises:
        FormatError: a missing or wrong header, a line without three tab-separated fields, an empty id, or a
            score that is not an integer.
    """
    qrels: dict[tuple[str, str], Qrel] = {}
    header_seen = False
    repeated = 0
    for number, line in read_lines(path, "qrels file"):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if not header_seen:
            if tuple(line.split()) != QRELS_HEADER:
                raise FormatError(path, number, "the header 'query-id<TAB>corpus-id<TAB>score'", line)
            header_seen = True
            continue
        if len(fields) != 3 or not (fields[0] and fields[1]) or not _INT.fullmatch(fields[2]):
            raise FormatError(path, number, "'query-id<TAB>corpus-id<TAB>score' with an integer score", line)
        low, high = RELEVANCE_RANGE  # what trec_eval's C long holds: larger values crash the evaluation later
        if not low <= int(fields[2]) <= high:
            raise FormatError(path, number, f"an integer score from {low} to {high}", fields[2])
        repeated += (fields[0], fields[1]) in qrels
        qrels[fields[0], fields[1]] = Qrel(fields[0], fields[1], int(fields[2]))
    if not header_seen:
        raise FormatError(path, None, "the header 'query-id<TAB>corpus-id<TAB>score'", "an empty file")
    if repeated:
        warn_data(f"{path}: {repeated} (query, document) pair(s) given more than once; kept the last score")
    return list(qrels.values())


def load_beir(root: str | Path, name: str | None = None) -> Collection:
    """A BEIR-layout collection; one split per `qrels/<split>.tsv` file present (train, dev, test, ...).

    Each split holds the queries judged in its qrels file. Qrels naming unknown queries or documents are dropped
    with one warning per file.

    Args:
        name: the collection name; defaults to the folder's name.
    """
    root = Path(root)
    docs = {doc.doc_id: doc for doc in read_beir_corpus(root / "corpus.jsonl")}
    queries = {query.query_id: query for query in read_beir_queries(root / "queries.jsonl")}
    qrel_paths = sorted((root / "qrels").glob("*.tsv"), key=lambda p: (_SPLIT_ORDER.get(p.stem, 3), p.stem))
    if not qrel_paths:
        raise FileNotFoundError(f"{root / 'qrels'}: no <split>.tsv qrels files found")
    splits = {}
    for path in qrel_paths:
        qrels = drop_unknown_qrels(read_beir_qrels(path), queries, docs, str(path))
        judged = {qrel.query_id for qrel in qrels}
        splits[path.stem] = Split({qid: q for qid, q in queries.items() if qid in judged}, qrels)
    notes = [
        "document text = title + ' ' + text",
        f"splits from {root / 'qrels'}: {', '.join(splits)}; each holds the queries judged in its file",
    ]
    return Collection(name or root.name, ADHOC, docs, splits, BEIR_MEASURES, notes)


def _iter_records(path: str | Path, what: str, make: Callable[[dict, int], _R]) -> Iterator[_R]:
    first_line: dict[str, int] = {}
    empty = 0
    for number, line in read_lines(path, f"{what} file"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            expected = f"a JSON object (invalid JSON: {error.msg} at column {error.colno})"
            raise FormatError(path, number, expected, line) from None
        if not isinstance(obj, dict):
            raise FormatError(path, number, "a JSON object", line)
        record = make(obj, number)
        if not record[0]:
            raise FormatError(path, number, "a non-empty '_id'", line)
        if record[0] in first_line:
            repeat = f"{record[0]} (already at line {first_line[record[0]]})"
            raise FormatError(path, number, f"a new {what} id", repeat)
        first_line[record[0]] = number
        empty += not record.text
        yield record
    if empty:
        warn_data(f"{path}: {empty} {what}(s) have empty text; kept with empty text")


def _field(obj: dict, key: str, path: str | Path, number: int, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and required:
        raise FormatError(path, number, f"a JSON object with key {key!r}", json.dumps(obj))
    if value is None:
        return ""
    if key == "_id" and type(value) is int:  # some converted corpora write numeric ids as JSON numbers
        value = str(value)
    if not isinstance(value, str):
        raise FormatError(path, number, f"a string for key {key!r}", repr(value))
    return value
