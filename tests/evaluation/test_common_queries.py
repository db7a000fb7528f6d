"""`neurank evaluate` refuses a run that shares no query with the qrels (issue 22: every value was 0, with exit 0,
and such a run used as --baseline gave p = 9e-10), naming both files; `common_queries` tells it."""

from __future__ import annotations

import pytest

from neurank.collections import Qrel, ScoredDoc
from neurank.evaluation import common_queries

QRELS = "q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\nq3 0 d4 0\n"  # q3: judged, nothing relevant, so never evaluated
RUN = "q1 Q0 d1 1 2.5 mine\nq1 Q0 d2 2 1.5 mine\nq2 Q0 d3 1 0.5 mine\n"


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "qrels.txt").write_text(QRELS)
    (tmp_path / "run.txt").write_text(RUN)
    (tmp_path / "other.txt").write_text("x1 Q0 d1 1 2.5 other\nq3 Q0 d4 1 1.0 other\n")
    (tmp_path / "empty.txt").write_text("\n \n")
    return tmp_path


def test_common_queries_by_hand():
    run = [ScoredDoc("q1", "d1", 1.0), ScoredDoc("q3", "d4", 1.0), ScoredDoc("x", "d1", 1.0)]
    qrels = [Qrel("q1", "d1", 1), Qrel("q2", "d3", 2), Qrel("q3", "d4", 0)]
    assert common_queries(run, qrels) == ({"q1", "q3", "x"}, {"q1", "q2"}, {"q1"})


def test_a_run_with_no_query_in_common_is_refused_naming_both_files(files, cli):
    # other.txt ranks x1 (not judged) and q3 (judged, but nothing relevant): no query evaluate would average over.
    status, out, err = cli("evaluate", files / "other.txt", files / "qrels.txt")
    assert status == 2 and out == ""
    assert err == (
        f"error: {files / 'other.txt'} and {files / 'qrels.txt'}: no query in common (the run ranks 2 queries, "
        "e.g. 'q3'; the qrels give 2 queries, e.g. 'q1' a relevant document), so every value would be 0; are they "
        "for the same collection and split?"
    )


def test_a_baseline_with_no_query_in_common_is_refused(files, cli):
    status, out, err = cli("evaluate", files / "run.txt", files / "qrels.txt", "--baseline", files / "other.txt")
    assert status == 2 and out == "" and err.startswith(f"error: {files / 'other.txt'} and {files / 'qrels.txt'}: ")


def test_an_empty_baseline_is_refused_instead_of_a_p_value(files, cli):
    status, out, err = cli("evaluate", files / "run.txt", files / "qrels.txt", "--baseline", files / "empty.txt")
    assert status == 2 and out == ""
    assert err.startswith(f"error: {files / 'empty.txt'}: expected results") and "found no results" in err


def test_a_run_sharing_some_queries_still_evaluates(files, cli):
    status, out, err = cli("evaluate", files / "run.txt", files / "qrels.txt", "-m", "AP", "--json")
    assert status == 0 and err == ""
    assert '"AP": 1.0' in out  # q1: d1 first (AP 1); q2: d3 first (AP 1)
