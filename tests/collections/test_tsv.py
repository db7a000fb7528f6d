"""`id<TAB>text` readers and writers."""

from __future__ import annotations

import re

import pytest

from neurank.collections import DataWarning, Doc, FormatError, Query
from neurank.collections.tsv import read_docs_tsv, read_queries_tsv, write_docs_tsv, write_queries_tsv


def raises_at(path, line: int, match: str = ""):
    return pytest.raises(FormatError, match=rf"{re.escape(str(path))}:{line}: expected .*{match}")


def test_read_docs_and_queries(tmp_path):
    path = tmp_path / "docs.tsv"
    path.write_bytes(b"d1\tfirst doc\nd2\tsecond doc, with  spaces \n")
    assert read_docs_tsv(path) == [Doc("d1", "first doc"), Doc("d2", "second doc, with  spaces")]
    assert read_queries_tsv(path) == [Query("d1", "first doc"), Query("d2", "second doc, with  spaces")]


def test_read_crlf_bom_and_no_final_newline(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes(b"\xef\xbb\xbf1\tone\r\n2\ttwo")
    assert read_queries_tsv(path) == [Query("1", "one"), Query("2", "two")]


def test_read_non_utf8_decoded_with_one_warning(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes(b"1\tcaf\xe9\n2\tna\xefve\n3\tplain\n")
    with pytest.warns(DataWarning, match=r"2 line\(s\) were not valid UTF-8 \(first at line 1\)"):
        queries = read_queries_tsv(path)
    assert [q.text for q in queries] == ["café", "naïve", "plain"]


def test_empty_text_is_kept_with_one_warning(tmp_path):
    path = tmp_path / "docs.tsv"
    path.write_text("a\t\nb\t   \nc\tsome text\n")
    with pytest.warns(DataWarning, match=r"2 document\(s\) have empty text") as record:
        docs = read_docs_tsv(path)
    assert len(record) == 1
    assert docs == [Doc("a", ""), Doc("b", ""), Doc("c", "some text")]


@pytest.mark.parametrize(
    "content,line,match",
    [
        ("1\tok\n2 no tab\n", 2, "exactly 2 tab-separated fields"),
        ("1\tok\n2\ttoo\tmany\n", 2, "exactly 2"),
        ("1\tok\n\n2\tok\n", 2, "exactly 2"),
        ("\ttext without id\n", 1, "non-empty id"),
        ("1\tone\n2\ttwo\n1\tagain\n", 3, r"a new query id.*already at line 1"),
    ],
    ids=["one-field", "three-fields", "blank-line", "empty-id", "duplicate-id"],
)
def test_malformed_lines(tmp_path, content, line, match):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with raises_at(path, line, match):
        read_queries_tsv(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_docs_tsv(tmp_path / "missing.tsv")


def test_write_round_trip(tmp_path):
    docs = [Doc("d1", "first"), Doc("d2", "naïve café"), Doc("d3", "")]
    path = tmp_path / "out" / "docs.tsv"
    write_docs_tsv(path, docs)
    assert path.read_bytes() == "d1\tfirst\nd2\tnaïve café\nd3\t\n".encode()
    with pytest.warns(DataWarning):
        assert read_docs_tsv(path) == docs
    queries = [Query("q1", "what?"), Query("q2", "why?")]
    write_queries_tsv(tmp_path / "q.tsv", iter(queries))
    assert read_queries_tsv(tmp_path / "q.tsv") == queries


@pytest.mark.parametrize("bad", [Query("q\t2", "x"), Query("q2", "line\nbreak"), Query("q2", "cr\r"), Query("", "x")])
def test_write_refuses_what_the_format_cannot_hold_and_keeps_the_old_file(tmp_path, bad):
    path = tmp_path / "q.tsv"
    path.write_text("old\tcontent\n")
    with pytest.raises(ValueError, match="q.tsv"):
        write_queries_tsv(path, [Query("q1", "fine"), bad])
    assert path.read_text() == "old\tcontent\n"
    assert [p.name for p in tmp_path.iterdir()] == ["q.tsv"]  # no temporary file left behind
