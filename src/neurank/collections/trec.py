"""TREC file formats: qrels, runs, SGML topic and document files, read into records and written back.

Qrels are `query_id iteration doc_id relevance`, runs are `query_id Q0 doc_id rank score tag` (any whitespace between
columns). Readers name the file and line of every problem; writers are atomic.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from neurank.collections.errors import FormatError
from neurank.collections.records import Doc, Qrel, Query, ScoredDoc
from neurank.collections.textio import atomic_write, head_lines, read_lines

TOPIC_FIELDS = ("title", "desc", "narr")
_TAG = re.compile(r"<(/?)([A-Za-z]+)>")
# Labels TREC puts at the start of a field's text ("<num> Number: 301", "<desc> Description:").
_LABEL = re.compile(r"^\s*(number|topic|description|narrative)\s*:", re.IGNORECASE)
# trec_eval and pytrec_eval keep relevance in a C long, 32 bits on some platforms: a grade outside fails there.
RELEVANCE_RANGE = (-(2**31), 2**31 - 1)
# The run tags neurank's commands write (`search`: neurank-bm25-NAME, `rerank`: neurank-CHECKPOINT; `write_run`'s
# default is neurank): how a rerun recognises a run file it may replace (`is_neurank_run`).
RUN_TAG = "neurank"
# How much of a run `is_neurank_run` reads: its first lines and the lines in its last bytes, not all of a large run.
_RECOGNISE_LINES, _RECOGNISE_TAIL_BYTES = 1000, 1 << 16


def _columns(path: Path, what: str, count: int, layout: str):
    """Yield `(line_number, fields)` for each non-blank line, checking the column count."""
    for number, line in read_lines(path, what):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != count:
            raise FormatError(path, number, f"{count} whitespace-separated columns ({layout})", line)
        yield number, fields


def _check_unique(seen: dict[tuple[str, str], int], key: tuple[str, str], path: Path, number: int, line: str) -> None:
    if key in seen:
        raise FormatError(
            path, number, f"each (query_id, doc_id) pair once, but {key} was already on line {seen[key]}", line
        )
    seen[key] = number


def read_qrels(path: str | Path) -> list[Qrel]:
    """Read a TREC qrels file.

    Args:
        path: file of lines `query_id iteration doc_id relevance`; the iteration column is ignored.

    Returns:
        The judgements in file order.

    Raises:
        FormatError: a line without 4 columns, a non-integer relevance or one outside `RELEVANCE_RANGE`, or a
            (query_id, doc_id) pair judged twice (the message names both lines).
    """
    path = Path(path)
    qrels: list[Qrel] = []
    seen: dict[tuple[str, str], int] = {}
    rows = _columns(path, "qrels file", 4, "query_id iteration doc_id relevance")
    for number, (query_id, _, doc_id, relevance) in rows:
        try:
            value = int(relevance)
        except ValueError:
            raise FormatError(path, number, "an integer relevance in column 4", relevance) from None
        low, high = RELEVANCE_RANGE
        if not low <= value <= high:
            raise FormatError(path, number, f"an integer relevance from {low} to {high} in column 4", relevance)
        _check_unique(seen, (query_id, doc_id), path, number, relevance)
        qrels.append(Qrel(query_id, doc_id, value))
    return qrels


def read_run(path: str | Path) -> list[ScoredDoc]:
    """Read a TREC run file.

    Args:
        path: file of lines `query_id Q0 doc_id rank score tag`. Only the score orders documents (as in trec_eval);
            the Q0, rank and tag columns are not checked.

    Returns:
        The scored documents in file order.

    Raises:
        FormatError: a line without 6 columns, a score that is not a finite number (NaN, inf, 1e999), a document
            listed twice for a query, or no results at all (an empty run would evaluate to zeros, not fail).
    """
    path = Path(path)
    run: list[ScoredDoc] = []
    seen: dict[tuple[str, str], int] = {}
    rows = _columns(path, "run file", 6, "query_id Q0 doc_id rank score tag")
    for number, (query_id, _, doc_id, _, score, _) in rows:
        try:
            value = float(score)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # inf ties with inf and NaN orders with nothing: their ranks would be arbitrary
            raise FormatError(path, number, "a number as the score in column 5 (finite: not NaN, inf or 1e999)", score)
        _check_unique(seen, (query_id, doc_id), path, number, doc_id)
        run.append(ScoredDoc(query_id, doc_id, value))
    if not run:
        raise FormatError(path, None, "results (lines `query_id Q0 doc_id rank score tag`), found no results")
    return run


def _check_token(value: str, what: str) -> str:
    if not value or len(value.split()) != 1 or value != value.strip():
        raise ValueError(f"{what} must be a non-empty string without whitespace to fit a TREC column, got {value!r}")
    return value


def write_qrels(qrels: Iterable[Qrel], path: str | Path) -> None:
    """Write qrels as `query_id 0 doc_id relevance` lines, in the order given, atomically.

    Args:
        qrels: records with `query_id`, `doc_id` and an integer `relevance`.
        path: destination; replaced only once the whole file is written.
    """
    with atomic_write(path) as handle:
        for qrel in qrels:
            query_id, doc_id = _check_token(qrel.query_id, "query_id"), _check_token(qrel.doc_id, "doc_id")
            handle.write(f"{query_id} 0 {doc_id} {int(qrel.relevance)}\n")


def write_run(run: Iterable[ScoredDoc], path: str | Path, tag: str = "neurank") -> None:
    """Write a run in TREC format, atomically.

    Queries keep the order of their first appearance. Within a query documents are sorted by score, highest first,
    and ties are broken by doc_id in reverse order: that is how trec_eval orders them, so the ranks written are the
    ranks it evaluates. Ranks start at 1.

    Args:
        run: records with `query_id`, `doc_id` and `score`.
        path: destination; replaced only once the whole file is written.
        tag: the run name in the last column.
    """
    tag = _check_token(tag, "tag")
    by_query: dict[str, list[tuple[float, str]]] = {}
    for doc in run:
        by_query.setdefault(_check_token(doc.query_id, "query_id"), []).append(
            (float(doc.score), _check_token(doc.doc_id, "doc_id"))
        )
    with atomic_write(path) as handle:
        for query_id, docs in by_query.items():
            docs.sort(reverse=True)
            for rank, (score, doc_id) in enumerate(docs, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {score!r} {tag}\n")


def read_topics(path: str | Path, fields: str | Sequence[str] = "title") -> list[Query]:
    """Read a TREC SGML topic file (`<top> <num> Number: 301 <title> ... <desc> Description: ... <narr> ... </top>`).

    Tags may sit on their own lines or share a line with text; closing field tags (`</title>`) are optional. The
    labels "Number:", "Topic:", "Description:" and "Narrative:" are dropped and whitespace is collapsed. The topic
    number is kept as written (TREC-1/2 files say `051` where the qrels say `51`).

    Args:
        path: the topic file.
        fields: the field, or fields in order, whose text is joined (with a space) into the query text; any of
            "title", "desc", "narr".

    Returns:
        One Query per topic, in file order.

    Raises:
        FormatError: unbalanced `<top>`/`</top>`, text outside a topic, a topic without a number, a number used
            twice, or a topic whose requested fields are missing or empty.
    """
    path = Path(path)
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    if not fields or any(field not in TOPIC_FIELDS for field in fields):
        raise ValueError(f"fields must be chosen from {TOPIC_FIELDS}, got {fields!r}")
    lines = [line for _, line in read_lines(path, "topic file")]
    text = "\n".join(lines)
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        return bisect.bisect_right(line_starts, offset)

    topics: list[Query] = []
    seen: dict[str, int] = {}
    top_line: int | None = None
    current: str | None = None
    parts: dict[str, str] = {}
    position = 0
    for match in [*_TAG.finditer(text), None]:
        chunk = text[position : match.start() if match else len(text)]
        if current is not None:
            parts[current] = parts.get(current, "") + " " + chunk
        elif chunk.strip():
            where = line_of(position + len(chunk) - len(chunk.lstrip()))
            raise FormatError(path, where, "a field tag such as <num>" if top_line else "<top>", chunk.strip())
        if match is None:
            break
        position = match.end()
        closing, name = match.group(1) == "/", match.group(2).lower()
        if name == "top" and not closing:
            if top_line is not None:
                raise FormatError(path, line_of(match.start()), f"</top> closing the topic of line {top_line}", "<top>")
            top_line, current, parts = line_of(match.start()), None, {}
        elif top_line is None:
            raise FormatError(path, line_of(match.start()), "<top>", match.group(0))
        elif name == "top":
            topics.append(_topic(path, top_line, parts, fields, seen))
            top_line, current = None, None
        else:
            current = None if closing else name
    if top_line is not None:
        raise FormatError(path, top_line, "</top> closing this topic before the end of the file")
    return topics


def _topic(path: Path, line: int, parts: dict[str, str], fields: tuple[str, ...], seen: dict[str, int]) -> Query:
    values = {name: " ".join(_LABEL.sub("", value, count=1).split()) for name, value in parts.items()}
    query_id = values.get("num", "")
    if not query_id:
        raise FormatError(path, line, "a <num> field in this topic")
    if query_id in seen:
        raise FormatError(path, line, f"a new topic number, but {query_id} was already used on line {seen[query_id]}")
    missing = [field for field in fields if not values.get(field)]
    if missing:
        raise FormatError(path, line, f"non-empty <{'>, <'.join(missing)}> in topic {query_id}")
    seen[query_id] = line
    return Query(query_id, " ".join(values[field] for field in fields))


def run_to_dict(run: Iterable[ScoredDoc]) -> dict[str, dict[str, float]]:
    """Group a run as `{query_id: {doc_id: score}}` (the dict-of-dicts that pytrec_eval and ir_measures take)."""
    result: dict[str, dict[str, float]] = {}
    for doc in run:
        result.setdefault(doc.query_id, {})[doc.doc_id] = float(doc.score)
    return result


def qrels_to_dict(qrels: Iterable[Qrel]) -> dict[str, dict[str, int]]:
    """Group qrels as `{query_id: {doc_id: relevance}}`."""
    result: dict[str, dict[str, int]] = {}
    for qrel in qrels:
        result.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    return result


# The elements whose text makes a document's text, as in ir_datasets' TrecDocs; a document with none of them
# (a home-made file with only <DOCNO> and free text) keeps all its text but the <DOCNO>.
DOC_CONTENT_TAGS = ("TEXT", "HEADLINE", "TITLE", "HL", "HEAD", "TTL", "DD", "DATE", "LP", "LEADPARA")
_DOC_TAG = re.compile(r"<(/?)DOC>", re.IGNORECASE)
_DOCNO = re.compile(r"<DOCNO>(.*?)</DOCNO>", re.IGNORECASE | re.DOTALL)
_CONTENT = re.compile(rf"<({'|'.join(DOC_CONTENT_TAGS)})(?:\s[^>]*)?>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_ANY_TAG = re.compile(r"<[^>]*>")


def read_trec_docs(path: str | Path) -> list[Doc]:
    """Read a TREC SGML document file: `<DOC> <DOCNO> id </DOCNO> <TEXT> ... </TEXT> </DOC>`, repeated.

    A document's text is the text of its content elements (`DOC_CONTENT_TAGS`: TEXT, HEADLINE, TITLE, ...) in file
    order, inner tags removed and whitespace collapsed; a document with none of them keeps all its text but the
    DOCNO. Tags may share lines with text. Compressed files are not read: unpack them first.

    Raises:
        FormatError: text outside a `<DOC>`, a `<DOC>` not closed before the next one or the end of the file, a
            document without `<DOCNO>`, or a DOCNO used twice (both lines named).
    """
    path = Path(path)
    docs: list[Doc] = []
    seen: dict[str, int] = {}
    start: int | None = None
    parts: list[str] = []
    for number, line in read_lines(path, "TREC document file"):
        position = 0
        for match in [*_DOC_TAG.finditer(line), None]:
            chunk = line[position : match.start() if match else len(line)]
            if start is not None:
                parts.append(chunk)
            elif chunk.strip():
                raise FormatError(path, number, "<DOC> before any text", chunk.strip())
            if match is None:
                break
            position = match.end()
            if match.group(1):  # </DOC>
                if start is None:
                    raise FormatError(path, number, "<DOC> before </DOC>", match.group(0))
                docs.append(_trec_doc(path, start, "".join(parts), seen))
                start, parts = None, []
            elif start is not None:
                raise FormatError(path, number, f"</DOC> closing the document of line {start}", match.group(0))
            else:
                start, parts = number, []
        if start is not None:
            parts.append("\n")
    if start is not None:
        raise FormatError(path, start, "</DOC> closing this document before the end of the file")
    return docs


def _trec_doc(path: Path, line: int, body: str, seen: dict[str, int]) -> Doc:
    docno = _DOCNO.search(body)
    doc_id = " ".join(docno.group(1).split()) if docno else ""
    if not doc_id or len(doc_id.split()) != 1:
        raise FormatError(path, line, "one <DOCNO>id</DOCNO> (an id without spaces) in this document")
    if doc_id in seen:
        raise FormatError(path, line, f"a new DOCNO, but {doc_id} was already used on line {seen[doc_id]}")
    seen[doc_id] = line
    contents = [match.group(2) for match in _CONTENT.finditer(body)]
    if not contents:
        contents = [body[: docno.start()] + body[docno.end() :]] if docno else [body]
    return Doc(doc_id, " ".join(_ANY_TAG.sub(" ", " ".join(contents)).split()))


def is_neurank_run(path: str | Path) -> bool:
    """Whether `path` looks like a run that a neurank command wrote, so that a rerun may replace it.

    The rule: at least one result, and every non-blank line among the file's first 1000 and those in its last 64 KiB
    is a TREC run line (6 columns, `Q0` in the second) whose tag is `neurank` or starts with `neurank-` (as
    `neurank search` and `neurank rerank` write them). Only the two ends are read, so a large run costs
    milliseconds; a user's run with another tag, or any other file, is not recognised.
    """
    lines = [line.split() for line in head_lines(path, _RECOGNISE_LINES, _RECOGNISE_TAIL_BYTES)]
    rows = [fields for fields in lines if fields]
    return bool(rows) and all(
        len(fields) == 6 and fields[1] == "Q0" and (fields[5] == RUN_TAG or fields[5].startswith(RUN_TAG + "-"))
        for fields in rows
    )
