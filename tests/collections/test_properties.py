"""Property-based tests (hypothesis) of the readers and writers: writing records and reading them back gives the same
records, and any bytes fed to a reader end in records, a `FormatError` (a `ManifestError` is one) or a `DataWarning`,
never another exception.

What the generated ids and texts leave out, and why (each is a limit of the file format, not of the reader):

- TREC runs and qrels: ids hold no whitespace (the columns are whitespace-separated, `str.split()`: Unicode spaces,
  U+001C..U+001F, U+0085 and U+2028 included); the writers refuse such ids.
- TSV (`id<TAB>text`), WikiQA TSV, BEIR qrels TSV: no tab, CR or LF in any field (the writers refuse them); the
  readers strip ids and texts, so generated ones carry no leading or trailing whitespace.
- BEIR JSONL: any text JSON can hold except lone surrogates (not encodable as UTF-8); ids and texts are stripped on
  reading, as above.
- Everywhere: no U+FEFF at the very start of a file (a UTF-8 byte-order mark is dropped there, as editors expect)
  and no NUL-free guarantee needed: NUL is an ordinary character to every reader.
- SMART: a line of text never starts with a field marker (`.T`, `.W`, `.I`, ...), which is how the format ends a
  field; record ids are numbers without leading zeros (the reader drops them, as the qrels files number records).

Example counts are modest (`max_examples`) so the module runs in seconds; `derandomize=True` keeps CI repeatable.
"""

from __future__ import annotations

import string
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurank.collections import ADHOC, Collection, DataWarning, FormatError, Split, load_collection
from neurank.collections.beir import read_beir_corpus, read_beir_qrels, read_beir_queries
from neurank.collections.export import export_beir
from neurank.collections.formats import read_qrels_any
from neurank.collections.manifest import read_manifest
from neurank.collections.records import Doc, Qrel, Query, ScoredDoc
from neurank.collections.smart import read_smart
from neurank.collections.trec import (
    RELEVANCE_RANGE,
    read_qrels,
    read_run,
    read_topics,
    read_trec_docs,
    write_qrels,
    write_run,
)
from neurank.collections.tsv import read_docs_tsv, read_queries_tsv, write_docs_tsv, write_queries_tsv
from neurank.collections.wikiqa import HEADER, WikiQARow, read_wikiqa_tsv

FEW = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any character UTF-8 can encode (no lone surrogates), never a BOM at the start of a file (see the docstring).
_ANY = st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff")


def _token(text: str) -> bool:
    return len(text.split()) == 1 and text == text.strip()


# An id as TREC columns hold it: one whitespace-free token.
trec_ids = st.text(_ANY, min_size=1, max_size=12).filter(_token)
# A field of a tab-separated line: no tab or line break, no surrounding whitespace (the readers strip it).
tsv_fields = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff\t\r\n"), max_size=30).map(
    str.strip
)
tsv_ids = tsv_fields.filter(bool)
relevances = st.integers(*RELEVANCE_RANGE)
finite_scores = st.floats(allow_nan=False, allow_infinity=False)


def _read(reader, *args):
    """The reader's result, with the DataWarnings it gave (other warnings fail the test)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = reader(*args)
    assert all(issubclass(w.category, DataWarning) for w in caught), [str(w.message) for w in caught]
    return result


# ---------------------------------------------------------------------------------------------------------- TREC


@FEW
@given(st.dictionaries(st.tuples(trec_ids, trec_ids), finite_scores, min_size=1, max_size=20))
def test_run_round_trip(tmp_path_factory, scores):
    path = tmp_path_factory.mktemp("run") / "run.txt"
    write_run([ScoredDoc(q, d, s) for (q, d), s in scores.items()], path)
    # write_run sorts each query's documents by score (as trec_eval ranks them): the records, not their order, survive.
    assert {(r.query_id, r.doc_id): r.score for r in _read(read_run, path)} == scores


@FEW
@given(st.dictionaries(st.tuples(trec_ids, trec_ids), relevances, max_size=20))
def test_qrels_round_trip(tmp_path_factory, grades):
    path = tmp_path_factory.mktemp("qrels") / "qrels.txt"
    qrels = [Qrel(q, d, r) for (q, d), r in grades.items()]
    write_qrels(qrels, path)
    assert _read(read_qrels, path) == qrels
    if qrels:  # an empty file is told from neither format
        assert _read(read_qrels_any, path) == qrels


@FEW
@given(st.text(_ANY, max_size=8).filter(lambda t: not _token(t)))
def test_trec_writers_refuse_ids_that_do_not_fit_a_column(tmp_path_factory, bad_id):
    folder = tmp_path_factory.mktemp("refuse")
    (folder / "run.txt").write_text("kept\n")
    with pytest.raises(ValueError):
        write_run([ScoredDoc(bad_id, "d", 1.0)], folder / "run.txt")
    with pytest.raises(ValueError):
        write_qrels([Qrel("q", bad_id, 1)], folder / "run.txt")
    assert (folder / "run.txt").read_text() == "kept\n"  # nothing replaced, no temporary file left
    assert [p.name for p in folder.iterdir()] == ["run.txt"]


# ----------------------------------------------------------------------------------------------------------- TSV


@FEW
@given(st.dictionaries(tsv_ids, tsv_fields, max_size=15))
def test_tsv_round_trip(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("tsv")
    docs = [Doc(i, t) for i, t in records.items()]
    queries = [Query(i, t) for i, t in records.items()]
    write_docs_tsv(folder / "docs.tsv", docs)
    write_queries_tsv(folder / "queries.tsv", queries)
    assert _read(read_docs_tsv, folder / "docs.tsv") == docs
    assert _read(read_queries_tsv, folder / "queries.tsv") == queries


# -------------------------------------------------------------------------------------------------------- WikiQA

wikiqa_rows = st.lists(
    st.tuples(tsv_ids, tsv_fields, tsv_ids, tsv_fields, tsv_ids, tsv_fields, st.sampled_from([0, 1])),
    max_size=12,
    unique_by=lambda row: (row[0], row[4]),  # a repeated (QuestionID, SentenceID) is refused (see the reader)
)


@FEW
@given(wikiqa_rows, st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_wikiqa_tsv_reads_what_was_written(tmp_path_factory, rows, newline, bom):
    path = tmp_path_factory.mktemp("wikiqa") / "WikiQA-train.tsv"
    lines = ["\t".join(HEADER)] + ["\t".join(map(str, row)) for row in rows]
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + newline.join(lines).encode("utf-8") + newline.encode())
    assert _read(read_wikiqa_tsv, path) == [WikiQARow(*row) for row in rows]


@FEW
@given(wikiqa_rows.filter(bool), st.data())
def test_a_repeated_wikiqa_row_is_refused_naming_both_lines(tmp_path_factory, rows, data):
    path = tmp_path_factory.mktemp("wikiqa") / "WikiQA-train.tsv"
    repeated = data.draw(st.integers(0, len(rows) - 1))
    at = data.draw(st.integers(repeated + 1, len(rows)))
    with_repeat = rows[:at] + [rows[repeated]] + rows[at:]
    lines = ["\t".join(HEADER)] + ["\t".join(map(str, row)) for row in with_repeat]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(FormatError) as error:
        _read(read_wikiqa_tsv, path)
    assert (error.value.line, f"line {repeated + 2}") == (at + 2, f"line {repeated + 2}")
    assert f"already on line {repeated + 2}" in str(error.value)


# --------------------------------------------------------------------------------------------------------- SMART

smart_lines = st.text(string.ascii_letters + string.digits + " ,;:-()'", min_size=1, max_size=30).filter(
    lambda line: line.strip() and not line.lstrip().startswith(".")
)


@FEW
@given(
    st.dictionaries(
        st.integers(0, 10**6),
        st.tuples(st.lists(smart_lines, min_size=1, max_size=2), st.lists(smart_lines, min_size=1, max_size=3)),
        max_size=8,
    )
)
def test_smart_reads_what_was_written(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("smart") / "cran.qry"
    text = "".join(
        f".I {record_id}\n.T\n" + "\n".join(title) + "\n.W\n" + "\n".join(body) + "\n"
        for record_id, (title, body) in records.items()
    )
    path.write_text(text, encoding="utf-8")
    read = _read(read_smart, path)
    assert [(r.record_id, r.fields) for r in read] == [
        (str(record_id), {"title": "\n".join(title).strip(), "text": "\n".join(body).strip()})
        for record_id, (title, body) in records.items()
    ]


# ------------------------------------------------------------------------------------- BEIR folder (export_beir)

beir_ids = tsv_ids.filter(lambda i: i == i.strip())
beir_texts = st.text(_ANY, max_size=30).map(str.strip)


@st.composite
def adhoc_collections(draw):
    doc_ids = draw(st.lists(beir_ids, min_size=1, max_size=10, unique=True))
    query_ids = draw(st.lists(beir_ids, min_size=1, max_size=6, unique=True))
    docs = {d: Doc(d, draw(beir_texts)) for d in doc_ids}
    queries = {q: Query(q, draw(beir_texts)) for q in query_ids}
    splits = {}
    for name in draw(st.lists(st.sampled_from(["train", "dev", "test"]), min_size=1, unique=True)):
        pairs = draw(st.lists(st.tuples(st.sampled_from(query_ids), st.sampled_from(doc_ids)), min_size=1,
                              unique=True))  # fmt: skip
        qrels = [Qrel(q, d, draw(relevances)) for q, d in pairs]
        judged = {q.query_id for q in qrels}
        splits[name] = Split({q: query for q, query in queries.items() if q in judged}, qrels)
    return Collection("generated", ADHOC, docs, splits, ("nDCG@10",), [])


@settings(FEW, max_examples=20)
@given(adhoc_collections())
def test_export_beir_then_load_gives_the_same_collection(tmp_path_factory, collection):
    folder = tmp_path_factory.mktemp("export") / "out"
    export_beir(collection, folder)
    loaded = _read(load_collection, str(folder))
    assert loaded.docs == collection.docs
    assert set(loaded.splits) == set(collection.splits)
    for name, split in collection.splits.items():
        assert loaded.splits[name].queries == split.queries
        assert sorted(loaded.splits[name].qrels) == sorted(split.qrels)
    # The files themselves, read by the BEIR readers.
    assert {d.doc_id: d for d in _read(read_beir_corpus, folder / "corpus.jsonl")} == collection.docs
    assert {q.query_id for q in _read(read_beir_queries, folder / "queries.jsonl")} >= {
        q for split in collection.splits.values() for q in split.queries
    }


def test_export_beir_never_replaces_a_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("mine\n")
    docs = {"d": Doc("d", "text")}
    split = Split({"q": Query("q", "query")}, [Qrel("q", "d", 1)])
    with pytest.raises(FileExistsError, match="already exists"):
        export_beir(Collection("c", ADHOC, docs, {"test": split}, ("AP",), []), tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


# ------------------------------------------------------------------------------------------------ random input

# Bytes that mean something to one format or another, mixed with arbitrary ones, so that the generated files reach
# past the first check of each reader (a random byte string is rarely more than one malformed line).
FRAGMENTS = [
    b"\n", b"\r\n", b"\r", b"\t", b" ", b"\xef\xbb\xbf", b"\xff", b"\xe9", b"\x00", b"q1", b"d1", b"Q0", b"0", b"1",
    b"-1", b"2.5", b"inf", b"nan", b"1e999", str(2**70).encode(), b"query-id\tcorpus-id\tscore", b"{", b"}",
    b'{"_id": "d1", "text": "t"}', b'"_id"', b'"text"', b'"title"', b":", b",", b"null", b"[]", b"<DOC>", b"</DOC>",
    b"<DOCNO>", b"</DOCNO>", b"<TEXT>", b"</TEXT>", b"<top>", b"</top>", b"<num>", b"<title>", b"<desc>", b".I 1",
    b".I", b".T", b".W", b".A", b".X", b".Z", "\u00e9\u4e2d".encode(), b"\t".join(h.encode() for h in HEADER),
    b"name: x", b"documents: corpus.jsonl", b"qrels:", b"  test: q.tsv", b"folds: 0", b"- a", b": :", b"&a", b"*a",
]  # fmt: skip
file_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=3)), max_size=40).map(b"".join),
)

READERS = {
    "run": read_run,
    "qrels": read_qrels,
    "qrels-any": read_qrels_any,
    "topics": read_topics,
    "trec-docs": read_trec_docs,
    "tsv-docs": read_docs_tsv,
    "tsv-queries": read_queries_tsv,
    "beir-corpus": read_beir_corpus,
    "beir-queries": read_beir_queries,
    "beir-qrels": read_beir_qrels,
    "wikiqa": read_wikiqa_tsv,
    "smart": read_smart,
    "manifest": read_manifest,
}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@settings(FEW, max_examples=60)
@given(content=file_bytes)
def test_any_bytes_give_records_or_a_format_error(tmp_path_factory, reader, content):
    name = "collection.yaml" if reader is read_manifest else "input.txt"
    path: Path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(content)
    try:
        _read(reader, path)
    except FormatError as error:
        assert str(path) in str(error)  # the message names the file (and the line, where there is one)
