from __future__ import annotations

from pathlib import Path

import pytest

from neurank.collections import FormatError, Qrel, Query, ScoredDoc
from neurank.collections.trec import (
    qrels_to_dict,
    read_qrels,
    read_run,
    read_topics,
    run_to_dict,
    write_qrels,
    write_run,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- qrels -------------------------------------------------------------------------------------------------------


def test_qrels_round_trip(tmp_path: Path) -> None:
    qrels = [Qrel("301", "FBIS3-10082", 1), Qrel("301", "FBIS3-10169", 0), Qrel("302", "LA010189-0001", 2)]
    write_qrels(qrels, tmp_path / "qrels.txt")
    assert (tmp_path / "qrels.txt").read_text().splitlines()[0] == "301 0 FBIS3-10082 1"
    assert read_qrels(tmp_path / "qrels.txt") == qrels


def test_qrels_accept_tabs_crlf_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "qrels.txt"
    path.write_bytes(b"\xef\xbb\xbfq1\t0\td1\t1\r\n\r\nq1 Q0  d2   -1\r\n")
    assert read_qrels(path) == [Qrel("q1", "d1", 1), Qrel("q1", "d2", -1)]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("q1 0 d1 1\nq1 0 d2\n", 2, "4 whitespace-separated columns"),
        ("q1 0 d1 1 extra\n", 1, "4 whitespace-separated columns"),
        ("q1 0 d1 1\n\nq1 0 d2 0.5\n", 3, "an integer relevance"),
    ],
)
def test_malformed_qrels_name_file_and_line(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path / "bad.qrels", text)
    with pytest.raises(FormatError, match=expected) as info:
        read_qrels(path)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert f"bad.qrels:{line}:" in str(info.value)


def test_duplicate_qrel_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.qrels", "q1 0 d1 1\nq2 0 d1 0\nq1 0 d1 0\n")
    with pytest.raises(FormatError, match=r"dup.qrels:3: .*already on line 1") as info:
        read_qrels(path)
    assert info.value.line == 3


def test_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="qrels file not found"):
        read_qrels(tmp_path / "nope.qrels")


# --- runs --------------------------------------------------------------------------------------------------------


def test_run_round_trip_sorts_ranks_and_keeps_scores(tmp_path: Path) -> None:
    run = [
        ScoredDoc("q2", "d1", 0.1),
        ScoredDoc("q1", "a", 0.5),
        ScoredDoc("q1", "c", 2.0),
        ScoredDoc("q1", "b", 0.5),  # ties with "a": trec_eval puts the larger doc_id first
        ScoredDoc("q1", "d", 0.1 + 0.2),  # a score without a short decimal form survives the round trip
    ]
    path = tmp_path / "run.txt"
    write_run(run, path, tag="bm25")
    assert path.read_text().splitlines() == [
        "q2 Q0 d1 1 0.1 bm25",
        "q1 Q0 c 1 2.0 bm25",
        "q1 Q0 b 2 0.5 bm25",
        "q1 Q0 a 3 0.5 bm25",
        "q1 Q0 d 4 0.30000000000000004 bm25",
    ]
    assert sorted(read_run(path)) == sorted(run)


def test_write_run_rejects_whitespace_in_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="doc_id"):
        write_run([ScoredDoc("q1", "two words", 1.0)], tmp_path / "run.txt")
    with pytest.raises(ValueError, match="tag"):
        write_run([], tmp_path / "run.txt", tag="my run")
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = write(tmp_path / "qrels.txt", "old contents\n")
    with pytest.raises(ValueError):
        write_qrels([Qrel("q1", "d1", 1), Qrel("q1", "bad id", 0)], path)
    assert path.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["qrels.txt"]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("q1 Q0 d1 1 0.5 run\nq1 Q0 d2 2 0.4\n", 2, "6 whitespace-separated columns"),
        ("q1 Q0 d1 1 high run\n", 1, "a number as the score"),
        ("q1 Q0 d1 1 nan run\n", 1, "a number as the score"),
    ],
)
def test_malformed_run_names_file_and_line(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path / "bad.run", text)
    with pytest.raises(FormatError, match=expected) as info:
        read_run(path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_duplicate_run_entry_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.run", "q1 Q0 d1 1 0.5 r\nq1 Q0 d2 2 0.4 r\nq1 Q0 d1 3 0.3 r\n")
    with pytest.raises(FormatError, match=r"dup.run:3: .*already on line 1"):
        read_run(path)


def test_dict_helpers() -> None:
    assert run_to_dict([ScoredDoc("q1", "a", 1), ScoredDoc("q1", "b", 0.5)]) == {"q1": {"a": 1.0, "b": 0.5}}
    assert qrels_to_dict([Qrel("q1", "a", 1), Qrel("q2", "b", 0)]) == {"q1": {"a": 1}, "q2": {"b": 0}}


# --- topics ------------------------------------------------------------------------------------------------------

TOPICS = """<top>
<num> Number: 301
<title> International Organized
Crime

<desc> Description:
Identify organizations that participate in international criminal activity.

<narr> Narrative:
A relevant document must name the organization.
</top>

<top> <num> 302 </num> <title> Topic: Poliomyelitis and Post-Polio </title>
<desc> Description: Is the disease under control? </desc> <narr> Narrative: Anything. </narr> </top>
"""


def test_topics_default_to_title(tmp_path: Path) -> None:
    assert read_topics(write(tmp_path / "topics", TOPICS)) == [
        Query("301", "International Organized Crime"),
        Query("302", "Poliomyelitis and Post-Polio"),
    ]


def test_topics_join_chosen_fields(tmp_path: Path) -> None:
    topics = read_topics(write(tmp_path / "topics", TOPICS), fields=["title", "desc"])
    assert topics[0].text == (
        "International Organized Crime Identify organizations that participate in international criminal activity."
    )
    assert read_topics(tmp_path / "topics", fields="narr")[1] == Query("302", "Anything.")
    with pytest.raises(ValueError, match="fields must be chosen"):
        read_topics(tmp_path / "topics", fields="body")


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("<top>\n<num> 1\n<title> a\n", 1, "</top> closing this topic"),
        ("<top>\n<num> 1\n<title> a\n<top>\n", 4, "</top> closing the topic of line 1"),
        ("<top>\n<title> a\n</top>\n", 1, "a <num> field"),
        ("<top>\n<num> 1\n<desc> a\n</top>\n", 1, r"non-empty <title> in topic 1"),
        ("<top><num> 1 <title> a </top>\n<top>\n<num> 1\n<title> b\n</top>\n", 2, "1 was already used on line 1"),
        ("<top><num> 1 <title> a </top>\nstray text\n", 2, "<top>"),
        ("<num> 1\n", 1, "<top>"),
    ],
)
def test_malformed_topics_name_file_and_line(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path / "topics", text)
    with pytest.raises(FormatError, match=expected) as info:
        read_topics(path)
    assert (info.value.path, info.value.line) == (str(path), line)


# --- values no evaluation can use: refused with the file and line (issue 22) ---------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("q1 0 d1 1\nq1 0 d2 99999999999999999999\n", 2, "an integer relevance from -2147483648 to 2147483647"),
        ("q1 0 d1 2147483648\n", 1, "an integer relevance from"),
        ("q1 0 d1 -2147483649\n", 1, "an integer relevance from"),
    ],
)
def test_a_relevance_too_large_for_trec_eval_is_refused(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = write(tmp_path / "big.qrels", text)
    with pytest.raises(FormatError, match=expected) as info:
        read_qrels(path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_the_largest_relevance_trec_eval_takes_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "edge.qrels", "q1 0 d1 2147483647\nq1 0 d2 -2147483648\n")
    assert [q.relevance for q in read_qrels(path)] == [2147483647, -2147483648]


@pytest.mark.parametrize(
    ("score", "line"),
    [("inf", 2), ("-inf", 2), ("Infinity", 2), ("1e999", 2), ("-1e999", 2), ("NaN", 2)],
)
def test_a_score_that_is_not_finite_is_refused(tmp_path: Path, score: str, line: int) -> None:
    path = write(tmp_path / "inf.run", f"q1 Q0 d1 1 0.5 r\nq1 Q0 d2 2 {score} r\n")
    with pytest.raises(
        FormatError, match=r"a number as the score in column 5 \(finite: not NaN, inf or 1e999\)"
    ) as info:
        read_run(path)
    assert (info.value.path, info.value.line, info.value.found) == (str(path), line, score)


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n\r\n", "\ufeff\n"], ids=["empty", "newline", "blank", "bom"])
def test_a_run_without_results_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "empty.run", text)
    with pytest.raises(FormatError, match=r"empty.run: expected results .*found no results"):
        read_run(path)


@pytest.mark.parametrize(
    ("run", "qrels", "message"),
    [
        ("q1 Q0 d1 1 inf r\n", "q1 0 d1 1\n", "run.txt:1: expected a number as the score in column 5 (finite"),
        ("q1 Q0 d1 1 1e999 r\n", "q1 0 d1 1\n", "run.txt:1: expected a number as the score in column 5 (finite"),
        ("  \n", "q1 0 d1 1\n", "run.txt: expected results"),
        ("q1 Q0 d1 1 0.5 r\n", "q1 0 d1 99999999999999999999\n", "qrels.txt:1: expected an integer relevance from"),
    ],
    ids=["inf", "1e999", "empty-run", "huge-relevance"],
)
def test_evaluate_prints_one_line_and_exits_2(tmp_path: Path, capsys, run: str, qrels: str, message: str) -> None:
    from neurank.cli import main

    run_path, qrels_path = write(tmp_path / "run.txt", run), write(tmp_path / "qrels.txt", qrels)
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(run_path), str(qrels_path)])
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert err.startswith("error: ") and message in err


def test_an_empty_baseline_is_refused_not_compared(tmp_path: Path, capsys) -> None:
    from neurank.cli import main

    run, qrels = write(tmp_path / "run.txt", "q1 Q0 d1 1 0.5 r\n"), write(tmp_path / "qrels.txt", "q1 0 d1 1\n")
    baseline = write(tmp_path / "baseline.txt", "\n \n")
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(run), str(qrels), "--baseline", str(baseline)])
    assert info.value.code == 2
    assert "baseline.txt: expected results" in " ".join(capsys.readouterr().err.split())


# ------------------------------------------------------------------- recognising neurank's runs (issue 22)


@pytest.mark.parametrize("tag", ["neurank", "neurank-bm25-wikiqa", "neurank-best"])
def test_a_run_neurank_wrote_is_recognised(tmp_path, tag):
    from neurank.collections.trec import is_neurank_run

    path = tmp_path / "x.run"
    write_run([ScoredDoc("q1", "d1", 1.0), ScoredDoc("q1", "d2", 0.5)], path, tag=tag)
    assert is_neurank_run(path)


@pytest.mark.parametrize(
    "content",
    [
        "q1 Q0 d1 1 1.0 myrun\n",  # a user's run
        "q1 Q0 d1 1 1.0 neurank\nq1 Q0 d2 2 0.5 other\n",  # one line with another tag
        "q1 0 d1 1\n",  # qrels
        "",  # nothing to tell by
        "q1 Q0 d1 1 1.0 neurankish\n",  # the tag must be neurank or neurank-...
    ],
    ids=["user-tag", "mixed-tags", "qrels", "empty", "prefix-only"],
)
def test_other_files_are_not_recognised_as_neurank_runs(tmp_path, content):
    from neurank.collections.trec import is_neurank_run

    path = tmp_path / "x.run"
    path.write_text(content)
    assert not is_neurank_run(path)


def test_a_user_line_at_the_end_of_a_long_run_is_seen(tmp_path):
    from neurank.collections.trec import is_neurank_run

    path = tmp_path / "x.run"
    write_run([ScoredDoc(f"q{i // 100}", f"d{i}", float(-i)) for i in range(5000)], path)
    assert is_neurank_run(path)
    with open(path, "a") as handle:
        handle.write("q9 Q0 mine 1 1.0 myrun\n")
    assert not is_neurank_run(path)
