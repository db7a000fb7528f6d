"""BEIR-layout readers and `load_beir`, on a tiny collection written by the tests."""

from __future__ import annotations

import json
import re

import pytest

from neurank.collections import ADHOC, DataWarning, Doc, FormatError, Qrel, Query
from neurank.collections.beir import load_beir, read_beir_corpus, read_beir_qrels, read_beir_queries


def raises_at(path, line: int | None, match: str = ""):
    where = re.escape(str(path)) + (f":{line}" if line is not None else "")
    return pytest.raises(FormatError, match=rf"{where}: expected .*{match}")


def jsonl(path, objects, newline="\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(json.dumps(o, ensure_ascii=False) for o in objects).encode() + newline.encode())


CORPUS = [
    {"_id": "d1", "title": "Wing flow", "text": "The lift of a wing."},
    {"_id": "d2", "title": "", "text": "No title here."},
    {"_id": "d3", "text": "Title key missing."},
    {"_id": 4, "title": "Numeric id", "text": "café", "metadata": {"x": 1}},
]
QUERIES = [
    {"_id": "q1", "text": "what lift?", "metadata": {}},
    {"_id": "q2", "text": "why titles?"},
    {"_id": "q3", "text": "unjudged"},
]


@pytest.fixture
def beir_root(tmp_path):
    root = tmp_path / "tinybeir"
    jsonl(root / "corpus.jsonl", CORPUS)
    jsonl(root / "queries.jsonl", QUERIES)
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\t4\t1\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td3\t1\n")
    return root


def test_read_corpus_joins_title_and_text(beir_root):
    assert read_beir_corpus(beir_root / "corpus.jsonl") == [
        Doc("d1", "Wing flow The lift of a wing."),
        Doc("d2", "No title here."),
        Doc("d3", "Title key missing."),
        Doc("4", "Numeric id café"),
    ]


def test_read_queries_crlf_bom_and_blank_lines(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"_id": "q1", "text": "one"}\r\n\r\n{"_id": "q2", "text": "two"}')
    assert read_beir_queries(path) == [Query("q1", "one"), Query("q2", "two")]


def test_read_qrels(beir_root):
    expected = [Qrel("q1", "d1", 2), Qrel("q1", "d2", 0), Qrel("q2", "4", 1)]
    assert read_beir_qrels(beir_root / "qrels" / "test.tsv") == expected


def test_repeated_qrel_pair_keeps_last_score_with_one_warning(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td1\t2\r\nq1\td1\t0\r\n")
    with pytest.warns(DataWarning, match=r"2 \(query, document\) pair") as record:
        assert read_beir_qrels(path) == [Qrel("q1", "d1", 0)]
    assert len(record) == 1


def test_empty_text_kept_with_one_warning(tmp_path):
    path = tmp_path / "corpus.jsonl"
    jsonl(path, [{"_id": "a", "title": "", "text": ""}, {"_id": "b", "text": " "}, {"_id": "c", "text": "x"}])
    with pytest.warns(DataWarning, match=r"2 document\(s\) have empty text") as record:
        assert [d.text for d in read_beir_corpus(path)] == ["", "", "x"]
    assert len(record) == 1


def test_non_utf8_line_decoded_with_warning(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_bytes(b'{"_id": "q1", "text": "caf\xe9"}\n')
    with pytest.warns(DataWarning, match="not valid UTF-8"):
        assert read_beir_queries(path) == [Query("q1", "café")]


@pytest.mark.parametrize(
    "lines,line,match",
    [
        (['{"_id": "d1", "text": "ok"}', '{"_id": "d2", "text": "no end"'], 2, r"a JSON object \(invalid JSON"),
        (['{"_id": "d1", "text": "ok"}', "", '["d2", "a list"]'], 3, "a JSON object"),
        (['{"_id": "d1", "title": "no text key"}'], 1, "with key 'text'"),
        (['{"title": "t", "text": "no id"}'], 1, "with key '_id'"),
        (['{"_id": "d1", "text": 5}'], 1, "a string for key 'text'"),
        (['{"_id": "d1", "title": ["x"], "text": "t"}'], 1, "a string for key 'title'"),
        (['{"_id": " ", "text": "t"}'], 1, "a non-empty '_id'"),
        (
            ['{"_id": "d1", "text": "a"}', '{"_id": "d2", "text": "b"}', '{"_id": "d1", "text": "c"}'],
            3,
            r"a new document id.*already at line 1",
        ),
    ],
    ids=[
        "bad-json",
        "not-object",
        "missing-text",
        "missing-id",
        "text-not-string",
        "title-not-string",
        "blank-id",
        "duplicate-id",
    ],
)
def test_corpus_format_errors_name_file_and_line(tmp_path, lines, line, match):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with raises_at(path, line, match):
        read_beir_corpus(path)


def test_queries_missing_key_names_the_key(tmp_path):
    path = tmp_path / "queries.jsonl"
    jsonl(path, [{"_id": "q1", "text": "fine"}, {"_id": "q2", "query": "wrong key"}])
    with raises_at(path, 2, "with key 'text'"):
        read_beir_queries(path)


@pytest.mark.parametrize(
    "content,line,match",
    [
        ("q1\td1\t1\n", 1, "the header"),
        ("query-id\tcorpus-id\tscore\nq1\td1\n", 2, "with an integer score"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t1.5\n", 2, "with an integer score"),
        ("query-id\tcorpus-id\tscore\nq1 d1 1\n", 2, "query-id<TAB>corpus-id<TAB>score"),
        ("query-id\tcorpus-id\tscore\n\td1\t1\n", 2, "query-id<TAB>corpus-id<TAB>score"),
        ("", None, "the header"),
    ],
    ids=["no-header", "two-fields", "float-score", "spaces", "empty-query-id", "empty-file"],
)
def test_qrels_format_errors(tmp_path, content, line, match):
    path = tmp_path / "test.tsv"
    path.write_text(content)
    with raises_at(path, line, match):
        read_beir_qrels(path)


def test_load_beir_splits_from_qrels_files(beir_root):
    collection = load_beir(beir_root)
    assert collection.name == "tinybeir" and collection.task == ADHOC
    assert list(collection.splits) == ["train", "test"]
    assert set(collection.docs) == {"d1", "d2", "d3", "4"}
    test = collection.split("test")
    assert list(test.queries) == ["q1", "q2"]  # q3 is judged nowhere
    assert test.qrels_by_query() == {"q1": {"d1": 2, "d2": 0}, "q2": {"4": 1}}
    assert list(collection.split("train").queries) == ["q2"]
    assert load_beir(beir_root, name="other").name == "other"


def test_load_beir_drops_unknown_ids_with_one_warning(beir_root):
    with open(beir_root / "qrels" / "test.tsv", "a") as handle:
        handle.write("q9\td1\t1\nq1\td9\t1\n")
    with pytest.warns(DataWarning, match=r"test.tsv: dropped 2 qrel\(s\)") as record:
        collection = load_beir(beir_root)
    assert len(record) == 1
    assert len(collection.split("test").qrels) == 3


def test_load_beir_without_qrels_or_corpus(beir_root):
    for path in (beir_root / "qrels").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match="qrels"):
        load_beir(beir_root)
    (beir_root / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        load_beir(beir_root)


@pytest.mark.parametrize("score", ["2147483648", "-2147483649", "99999999999999999999"])
def test_qrels_score_beyond_what_trec_eval_holds_names_file_and_line(tmp_path, score):
    path = tmp_path / "test.tsv"
    path.write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t{score}\n", encoding="utf-8")
    with pytest.raises(FormatError, match=re.escape(f"{path}:3: expected an integer score from -2147483648 to ")):
        read_beir_qrels(path)


def test_qrels_scores_at_the_limits_are_kept(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2147483647\nq1\td2\t-2147483648\n", encoding="utf-8")
    assert [q.relevance for q in read_beir_qrels(path)] == [2147483647, -2147483648]
