"""Per-query differences between two runs, by hand."""

from __future__ import annotations

import pytest

from neurank.collections import Qrel, ScoredDoc
from neurank.explain import QueryDelta, per_query_deltas, summarise_deltas

QRELS = [Qrel("q1", "a", 1), Qrel("q2", "b", 1), Qrel("q3", "c", 1), Qrel("q4", "d", 0)]
# q1: A ranks the relevant doc 2nd (AP 0.5), B 1st (1.0). q2: both 1st. q3: A 1st, B misses it (0).
RUN_A = [ScoredDoc("q1", "x", 2.0), ScoredDoc("q1", "a", 1.0), ScoredDoc("q2", "b", 1.0), ScoredDoc("q3", "c", 1.0)]
RUN_B = [ScoredDoc("q1", "a", 2.0), ScoredDoc("q1", "x", 1.0), ScoredDoc("q2", "b", 1.0), ScoredDoc("q3", "y", 1.0)]


def test_per_query_deltas_by_hand():
    deltas = per_query_deltas(RUN_A, RUN_B, QRELS, "AP")
    # q4 has no relevant document, so it is not evaluated (as in `evaluate`); largest gain first.
    assert deltas == [QueryDelta("q1", 0.5, 1.0), QueryDelta("q2", 1.0, 1.0), QueryDelta("q3", 1.0, 0.0)]
    assert [d.delta for d in deltas] == [0.5, 0.0, -1.0]


def test_summary_counts_and_lists():
    summary = summarise_deltas(per_query_deltas(RUN_A, RUN_B, QRELS, "RR"), top=1)
    assert (summary["wins"], summary["losses"], summary["ties"], summary["queries"]) == (1, 1, 1, 3)
    assert summary["mean_a"] == pytest.approx(2.5 / 3) and summary["mean_b"] == pytest.approx(2 / 3)
    assert summary["gained"] == [{"query_id": "q1", "a": 0.5, "b": 1.0, "delta": 0.5}]
    assert summary["lost"] == [{"query_id": "q3", "a": 1.0, "b": 0.0, "delta": -1.0}]


def test_unknown_measure_is_refused():
    with pytest.raises(ValueError, match="unknown measure"):
        per_query_deltas(RUN_A, RUN_B, QRELS, "NotAMeasure")
