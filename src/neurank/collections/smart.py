"""SMART-format tagged files and the two classic collections that use them: Cranfield 1400 and CISI.

A SMART file is a sequence of records. `.I <id>` starts a record; the field markers `.T` (title), `.A` (authors),
`.B` (source), `.W` (abstract or query text), `.X` (cross-references), `.K` (keywords) and `.C` (classification)
each sit alone on a line, and the field's text follows on the next lines. `read_smart` turns such a file into
`SmartRecord`s; `load_cranfield` and `load_cisi` build a `Collection` from the files as distributed.

The text of a document or query is its title followed by its abstract, whitespace collapsed to single spaces.
Cranfield abstracts open with a copy of the title; that copy is dropped, so the title appears once.

A marker that repeats within a record adds to the same field. CISI repeats `.A` once per author; in Cranfield,
document 240 has stray `.A` and `.B` lines inside its abstract, so two abstract lines land in its authors and
source fields, and documents 576 and 578 repeat `.W` (their abstracts are interleaved in the file).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from neurank.collections.collection import ADHOC, Collection, drop_unknown_qrels, kfold_splits
from neurank.collections.errors import FormatError, warn_data
from neurank.collections.records import Doc, Qrel, Query
from neurank.collections.textio import read_lines

FIELDS = {
    "T": "title",
    "A": "authors",
    "B": "source",
    "W": "text",
    "X": "references",
    "K": "keywords",
    "C": "classification",
}
CLASSIC_MEASURES = ("AP", "nDCG@10", "P@10")

# cranqrel.readme quotes Cleverdon: 1 = complete answer ... 4 = minimum interest. -1 (one per query) is judged
# not relevant. Relevance is 5 - grade, so that larger means more relevant, as ir_measures expects.
CRANFIELD_RELEVANCE = {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}

_MARKER = re.compile(r"\.([A-Z])\s*")
_ID_LINE = re.compile(r"\.I(?:\s+(.*?))?\s*")
_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"-?[0-9]+")
_KNOWN_MARKERS = "'.I <id>' or a field marker (" + " ".join("." + m for m in FIELDS) + ")"


class SmartRecord(NamedTuple):
    """One `.I` record: its id (leading zeros dropped), the line it starts on, and its fields by name.

    Field names are the values of `FIELDS` (``"title"``, ``"text"``, ...). A marker that repeats within a record
    (CISI repeats `.A` once per author) adds its lines to the same field.
    """

    record_id: str
    line: int
    fields: dict[str, str]


def read_smart(path: str | Path, what: str = "SMART file") -> list[SmartRecord]:
    """Parse a SMART-format file into records, in file order.

    Raises:
        FormatError: text before the first `.I`, text between `.I` and the first field marker, an unknown marker,
            a missing or non-numeric id, or an id that was already used (the message gives both lines).
    """
    starts: list[tuple[str, int]] = []
    bodies: list[dict[str, list[str]]] = []
    first_line: dict[str, int] = {}
    current: list[str] | None = None
    for number, line in read_lines(path, what):
        id_line = _ID_LINE.fullmatch(line)
        if id_line:
            raw_id = id_line[1] or ""
            if not _UINT.fullmatch(raw_id):
                raise FormatError(path, number, "'.I <numeric id>'", line)
            record_id = str(int(raw_id))
            if record_id in first_line:
                used = f"{line} (id already used at line {first_line[record_id]})"
                raise FormatError(path, number, "a new record id", used)
            first_line[record_id] = number
            starts.append((record_id, number))
            bodies.append({})
            current = None
            continue
        marker = _MARKER.fullmatch(line)
        if marker and marker[1] not in FIELDS:
            raise FormatError(path, number, _KNOWN_MARKERS, line)
        if marker and not bodies:
            raise FormatError(path, number, "'.I <id>' to start the first record", line)
        if marker:
            current = bodies[-1].setdefault(FIELDS[marker[1]], [])
        elif current is not None:
            current.append(line)
        elif line.strip():
            expected = "a field marker after '.I'" if bodies else "'.I <id>' to start the first record"
            raise FormatError(path, number, expected, line)
    return [
        SmartRecord(record_id, number, {name: "\n".join(lines).strip() for name, lines in body.items()})
        for (record_id, number), body in zip(starts, bodies, strict=True)
    ]


def load_cranfield(root: str | Path, *, folds: int = 5, fold: int = 0, seed: int = 0) -> Collection:
    """Cranfield 1400 from `cran.all.1400`, `cran.qry` and `cranqrel` under `root`.

    Document text is the title followed by the abstract (`.W`) without the copy of the title it opens with
    (an exact match after collapsing whitespace: documents 1000 and 1369 repeat their title with different
    spacing or a typo and keep that copy). Documents 471 and 995 have no text at all; they are kept, empty.
    Query ids are positions in `cran.qry` ("1".."225"), because that is how `cranqrel` numbers queries; the
    file's own `.I` ids (001, 002, 004, ... 365) are not used. Relevance is ``5 - grade`` on Cleverdon's scale
    from `cranqrel.readme` (grade 1, a complete answer, becomes 4) and grade -1 becomes 0 (judged not relevant).

    Args:
        folds / fold / seed: the splits are fold `fold` of a `folds`-fold cross-validation over the judged
            queries (see `kfold_splits`), plus ``"all"``.
    """
    root = Path(root)
    docs = _read_docs(root / "cran.all.1400")
    records = read_smart(root / "cran.qry", "query file")
    by_position = [SmartRecord(str(n), r.line, r.fields) for n, r in enumerate(records, start=1)]
    queries = _queries(by_position, root / "cran.qry")
    qrel_path = root / "cranqrel"
    qrels = _read_qrels(qrel_path, "'query_number doc_id grade' with grade 1, 2, 3, 4 or -1", _cranfield_qrel)
    qrels = drop_unknown_qrels(qrels, queries, docs, str(qrel_path))
    notes = [
        "query_id is the position of the query in cran.qry (1..225), as in cranqrel; "
        "the .I ids of cran.qry (001, 002, 004, ... 365) are not query ids",
        "relevance = 5 - Cleverdon grade from cranqrel.readme (1 = complete answer -> 4, 4 = minimum interest -> 1); "
        "grade -1 -> 0 (judged not relevant); ir_datasets reads the grade scale the other way round",
        *_common_notes(docs, folds, fold, seed),
    ]
    splits = kfold_splits(queries, qrels, folds, fold, seed)
    return Collection("cranfield", ADHOC, docs, splits, CLASSIC_MEASURES, notes)


def load_cisi(root: str | Path, *, folds: int = 5, fold: int = 0, seed: int = 0) -> Collection:
    """CISI from `CISI.ALL`, `CISI.QRY` and `CISI.REL` under `root`.

    Document and query text is the title followed by the abstract (`.W`); authors, source and cross-references
    are left out. Every pair listed in `CISI.REL` is relevant (relevance 1); unlisted pairs are not. Queries
    without judgements (36 of 112) are in no split.

    Args:
        folds / fold / seed: as for `load_cranfield`.
    """
    root = Path(root)
    docs = _read_docs(root / "CISI.ALL")
    queries = _queries(read_smart(root / "CISI.QRY", "query file"), root / "CISI.QRY")
    qrel_path = root / "CISI.REL"
    qrels = _read_qrels(qrel_path, "'query_id doc_id 0 0.000000'", _cisi_qrel)
    qrels = drop_unknown_qrels(qrels, queries, docs, str(qrel_path))
    judged = {q.query_id for q in qrels}
    notes = [
        "binary relevance: every pair in CISI.REL is relevant (1), unlisted pairs are not",
        f"{len(queries) - len(judged & set(queries))} of {len(queries)} queries have no judgements and are in no split",
        *_common_notes(docs, folds, fold, seed),
    ]
    splits = kfold_splits(queries, qrels, folds, fold, seed)
    return Collection("cisi", ADHOC, docs, splits, CLASSIC_MEASURES, notes)


def _record_text(fields: dict[str, str]) -> str:
    title = " ".join(fields.get("title", "").split())
    body = " ".join(fields.get("text", "").split())
    if title and (body == title or body.startswith(title + " ")):
        body = body[len(title) :].lstrip()
    return " ".join(part for part in (title, body) if part)


def _read_docs(path: Path) -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    no_abstract: list[str] = []
    for record in read_smart(path, "document file"):
        docs[record.record_id] = Doc(record.record_id, _record_text(record.fields))
        if not record.fields.get("text"):
            no_abstract.append(record.record_id)
    if no_abstract:
        warn_data(f"{path}: {len(no_abstract)} document(s) have an empty abstract (.W): {_show(no_abstract)}")
    no_text = [doc.doc_id for doc in docs.values() if not doc.text]
    if no_text:
        warn_data(f"{path}: {len(no_text)} document(s) have no text at all, kept with empty text: {_show(no_text)}")
    return docs


def _queries(records: list[SmartRecord], path: Path) -> dict[str, Query]:
    queries = {r.record_id: Query(r.record_id, _record_text(r.fields)) for r in records}
    empty = [q.query_id for q in queries.values() if not q.text]
    if empty:
        warn_data(f"{path}: {len(empty)} query(ies) have no text, kept with empty text: {_show(empty)}")
    return queries


def _read_qrels(path: Path, expected: str, parse: Callable[[list[str]], Qrel | None]) -> list[Qrel]:
    # A repeated (query, doc) pair is an error, not a warning: the distributed files have none, and the corrupted
    # copies in circulation are recognised by exactly such edits.
    qrels: list[Qrel] = []
    first_line: dict[tuple[str, str], int] = {}
    for number, line in read_lines(path, "qrels file"):
        if not line.strip():
            continue
        qrel = parse(line.split())
        if qrel is None:
            raise FormatError(path, number, expected, line)
        pair = (qrel.query_id, qrel.doc_id)
        if pair in first_line:
            repeat = f"{line} (pair already at line {first_line[pair]})"
            raise FormatError(path, number, "each (query, doc) pair once", repeat)
        first_line[pair] = number
        qrels.append(qrel)
    return qrels


def _cranfield_qrel(parts: list[str]) -> Qrel | None:
    if len(parts) != 3 or not all(_INT.fullmatch(p) for p in parts):
        return None
    relevance = CRANFIELD_RELEVANCE.get(int(parts[2]))
    return None if relevance is None else Qrel(str(int(parts[0])), str(int(parts[1])), relevance)


def _cisi_qrel(parts: list[str]) -> Qrel | None:
    if len(parts) != 4 or not (_UINT.fullmatch(parts[0]) and _UINT.fullmatch(parts[1])):
        return None
    return Qrel(str(int(parts[0])), str(int(parts[1])), 1)


def _common_notes(docs: dict[str, Doc], folds: int, fold: int, seed: int) -> list[str]:
    notes = ["text = title + abstract (.W), whitespace collapsed; an abstract's opening copy of the title is dropped"]
    empty = [doc.doc_id for doc in docs.values() if not doc.text]
    if empty:
        notes.append(f"{len(empty)} document(s) have no text: {_show(empty)}")
    notes.append(
        f"splits: fold {fold} of {folds}-fold cross-validation over judged queries (seed {seed}); "
        "test = that fold, dev = the next, train = the rest; 'all' = every judged query"
    )
    return notes


def _show(ids: list[str], limit: int = 10) -> str:
    return ", ".join(ids[:limit]) + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")
