"""TREC SGML documents, and telling TREC qrels from BEIR qrels by their first line."""

from __future__ import annotations

import re

import pytest

from neurank.collections import Doc, FormatError, Qrel
from neurank.collections.formats import qrels_format, read_documents, read_qrels_any
from neurank.collections.trec import read_trec_docs


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def raises_at(path, line, match: str = ""):
    where = re.escape(str(path)) + (f":{line}" if line is not None else "")
    return pytest.raises(FormatError, match=rf"^{where}: expected .*{match}")


def test_trec_documents_take_their_content_elements(tmp_path):
    path = write(
        tmp_path / "docs.sgml",
        "<DOC>\n<DOCNO> FT911-1 </DOCNO>\n<PROFILE>_AN-BEOA7AAIFT</PROFILE>\n<HEADLINE>Wings</HEADLINE>\n"
        "<TEXT>\nThe lift of a <P>wing</P>\nis large.\n</TEXT>\n</DOC>\n\n"
        "<DOC><DOCNO>d2</DOCNO><TEXT type='x'>one line</TEXT></DOC>\n"
        "<doc>\n<docno>d3</docno>\nno content tags here\n</doc>\n",
    )
    assert read_trec_docs(path) == [
        Doc("FT911-1", "Wings The lift of a wing is large."),
        Doc("d2", "one line"),
        Doc("d3", "no content tags here"),
    ]
    assert read_documents(path, "trec") == read_trec_docs(path)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("stray\n<DOC><DOCNO>a</DOCNO></DOC>\n", 1, "<DOC> before any text"),
        ("<DOC><DOCNO>a</DOCNO>\n<DOC><DOCNO>b</DOCNO></DOC>\n", 2, "</DOC> closing the document of line 1"),
        ("<DOC>\n<TEXT>x</TEXT>\n</DOC>\n", 1, "one <DOCNO>id</DOCNO>"),
        ("<DOC><DOCNO>a b</DOCNO></DOC>\n", 1, "an id without spaces"),
        ("<DOC><DOCNO>a</DOCNO></DOC>\n<DOC><DOCNO>a</DOCNO></DOC>\n", 2, "a was already used on line 1"),
        ("<DOC><DOCNO>a</DOCNO>\n<TEXT>x</TEXT>\n", 1, "</DOC> closing this document before the end"),
        ("</DOC>\n", 1, "<DOC> before </DOC>"),
    ],
)
def test_malformed_trec_documents_name_the_line(tmp_path, text, line, match):
    path = write(tmp_path / "docs.sgml", text)
    with raises_at(path, line, re.escape(match)):
        read_trec_docs(path)


def test_qrels_are_told_apart_by_their_first_line(tmp_path):
    beir = write(tmp_path / "test.tsv", "\nquery-id\tcorpus-id\tscore\nq1\td1\t1\n")
    trec = write(tmp_path / "test.qrels", "q1 0 d1 1\nq1 0 d2 0\n")
    assert qrels_format(beir) == "beir" and qrels_format(trec) == "trec"
    assert read_qrels_any(beir) == [Qrel("q1", "d1", 1)]
    assert read_qrels_any(trec) == [Qrel("q1", "d1", 1), Qrel("q1", "d2", 0)]
    assert read_qrels_any(trec, "trec") == read_qrels_any(trec)


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [("q1\td1\t1\n", 1, "q1\td1\t1"), ("", None, "an empty file"), ("\n  \n", None, "an empty file")],
)
def test_qrels_of_neither_format_say_which_formats_were_expected(tmp_path, text, line, found):
    path = write(tmp_path / "q.tsv", text)
    with raises_at(path, line, "TREC qrels .* or BEIR qrels .*query-id<TAB>corpus-id<TAB>score"):
        read_qrels_any(path)


def test_an_error_deeper_in_the_file_names_its_line(tmp_path):
    path = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    with raises_at(path, 2, "integer score"):
        read_qrels_any(path)
