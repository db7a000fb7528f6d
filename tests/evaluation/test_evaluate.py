from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from neurank.collections import Qrel, ScoredDoc
from neurank.collections.trec import read_qrels, read_run
from neurank.evaluation import (
    compare,
    evaluate,
    evaluate_per_query,
    format_comparison,
    format_table,
    parse_measures,
)


def ranking(**lists: list[str]) -> list[ScoredDoc]:
    """A run from `query_id=[doc_id, ...]`, best first (scores 1, 1/2, 1/3, ... so no ties)."""
    return [
        ScoredDoc(query_id, doc_id, 1.0 / rank)
        for query_id, doc_ids in lists.items()
        for rank, doc_id in enumerate(doc_ids, start=1)
    ]


# q1: binary, one relevant document (d4) never retrieved.   q2: graded.
# q3: has a relevant document but is missing from the run.   q4: judged, but nothing relevant.
QRELS = [
    Qrel("q1", "d1", 1),
    Qrel("q1", "d2", 0),
    Qrel("q1", "d3", 1),
    Qrel("q1", "d4", 1),
    Qrel("q2", "a", 2),
    Qrel("q2", "b", 1),
    Qrel("q2", "c", 0),
    Qrel("q3", "x", 1),
    Qrel("q4", "y", 0),
]
# q5 is not in the qrels at all.
RUN = ranking(q1=["d2", "d1", "d3"], q2=["b", "a", "c"], q4=["y"], q5=["z"])

# q1: relevant at ranks 2 and 3, 3 relevant in all: AP = (1/2 + 2/3) / 3 = 7/18; RR = 1/2; P@2 = 1/2; P@10 = 2/10.
# q2 (trec_eval's gain is the grade itself): DCG@3 = 1/log2(2) + 2/log2(3) + 0; the ideal order a, b, c gives
#     2/log2(2) + 1/log2(3), so nDCG@3 = (1 + 2/log2(3)) / (2 + 1/log2(3)) = 0.8597...
#     AP = (1/1 + 2/2) / 2 = 1; RR = 1; P@2 = 1; P@10 = 2/10.
# q3: missing from the run, so 0 everywhere.   q4 and q5: not evaluated.
NDCG_Q2 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))


def test_per_query_values_by_hand() -> None:
    values = evaluate_per_query(RUN, QRELS, ["AP", "RR", "P@2", "P@10", "nDCG@3"])
    assert values["AP"] == pytest.approx({"q1": 7 / 18, "q2": 1.0, "q3": 0.0})
    assert values["RR"] == pytest.approx({"q1": 0.5, "q2": 1.0, "q3": 0.0})
    assert values["P@2"] == pytest.approx({"q1": 0.5, "q2": 1.0, "q3": 0.0})
    assert values["P@10"] == pytest.approx({"q1": 0.2, "q2": 0.2, "q3": 0.0})
    # q1: DCG@3 = 0 + 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3) + 1/log2(4).
    ndcg_q1 = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3) + 0.5)
    assert values["nDCG@3"] == pytest.approx({"q1": ndcg_q1, "q2": NDCG_Q2, "q3": 0.0})


def test_means_count_missing_queries_as_zero() -> None:
    # Three evaluated queries (q1, q2, q3); q3 contributes 0 to each mean.
    assert evaluate(RUN, QRELS, ["AP", "RR", "P@2"]) == pytest.approx(
        {"AP": (7 / 18 + 1 + 0) / 3, "RR": (0.5 + 1 + 0) / 3, "P@2": (0.5 + 1 + 0) / 3}
    )


def test_adding_the_missing_query_changes_only_its_value() -> None:
    run = RUN + ranking(q3=["w", "x"])
    assert evaluate_per_query(run, QRELS, "RR")["RR"] == pytest.approx({"q1": 0.5, "q2": 1.0, "q3": 0.5})


def test_ties_are_broken_as_trec_eval_does() -> None:
    # Equal scores: trec_eval ranks the larger doc_id first, so "b" (not relevant) comes before "a".
    run = [ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", 1.0)]
    assert evaluate(run, [Qrel("q", "a", 1)], ["RR"]) == {"RR": 0.5}


def test_accepts_dicts_and_generators() -> None:
    qrels = {"q1": {"d1": 1, "d2": 0}}
    run = {"q1": {"d1": 0.2, "d2": 0.9}}
    assert evaluate(run, qrels, "RR") == {"RR": 0.5}
    assert evaluate((doc for doc in ranking(q1=["d1"])), (q for q in [Qrel("q1", "d1", 1)]), "AP") == {"AP": 1.0}


def test_accepts_numpy_scores_and_grades() -> None:
    # Model outputs arrive as numpy scalars, which pytrec_eval itself would reject.
    run = [ScoredDoc("q1", "d1", np.float32(0.5)), ScoredDoc("q1", "d2", np.float64(0.7))]
    assert evaluate(run, [Qrel("q1", "d1", np.int64(1))], ["RR"]) == {"RR": 0.5}


def test_measure_names() -> None:
    assert [str(m) for m in parse_measures(["AP", " nDCG@10", "AP", "P(rel=2)@5"])] == ["AP", "nDCG@10", "P(rel=2)@5"]
    assert list(evaluate(RUN, QRELS, ["nDCG@10", "AP"])) == ["nDCG@10", "AP"]
    assert [str(m) for m in parse_measures("MAP")] == ["AP"]  # an ir_measures alias; results use the canonical name
    for bad in ["map", "ndcg_cut_10", "nDCG@ten", "P@", "nDCG(foo=1)@10"]:
        with pytest.raises(ValueError, match=r"unknown measure .*examples: AP, RR, nDCG@10"):
            parse_measures([bad])
    with pytest.raises(ValueError, match="no measures"):
        parse_measures([])


def test_qrels_without_relevant_documents_are_an_error() -> None:
    with pytest.raises(ValueError, match="no query with a relevant document"):
        evaluate(RUN, [Qrel("q4", "y", 0)], ["AP"])


# --- significance ------------------------------------------------------------------------------------------------

FOUR = [Qrel(q, "r", 1) for q in ("q1", "q2", "q3", "q4")] + [
    Qrel(q, n, 0) for q in ("q1", "q2", "q3", "q4") for n in ("n1", "n2", "n3")
]
# RR per query: A = 1/2, 1/4, 1/4, 1 and B = 1, 1/2, 1/2, 1, so the differences B - A are d = 1/2, 1/4, 1/4, 0.
RUN_A = ranking(q1=["n1", "r"], q2=["n1", "n2", "n3", "r"], q3=["n1", "n2", "n3", "r"], q4=["r"])
RUN_B = ranking(q1=["r"], q2=["n1", "r"], q3=["n1", "r"], q4=["r", "n1"])


def test_paired_tests_by_hand() -> None:
    result = compare(RUN_A, RUN_B, FOUR, ["RR"])["RR"]
    assert (result.n_queries, result.mean_a, result.mean_b, result.delta) == (4, 0.5, 0.75, 0.25)
    # mean(d) = 1/4; sample variance = ((1/4)^2 + 0 + 0 + (1/4)^2) / 3 = 1/24, so sd = 1/sqrt(24), and
    # t = mean / (sd / sqrt(4)) = (1/4) * 2 * sqrt(24) = sqrt(6).
    assert result.t_statistic == pytest.approx(math.sqrt(6))
    # Student's t with 3 degrees of freedom has F(t) = 1/2 + (u / (1 + u^2) + atan(u)) / pi with u = t / sqrt(3);
    # here u = sqrt(2), so the two-sided p = 1 - 2 (sqrt(2)/3 + atan(sqrt(2))) / pi = 0.0917...
    assert result.p_ttest == pytest.approx(1 - 2 * (math.sqrt(2) / 3 + math.atan(math.sqrt(2))) / math.pi)
    # 2^4 = 16 sign patterns (exact test). |mean| >= 1/4 only when the three non-zero differences share a sign:
    # 2 patterns (all +, all -) x 2 (sign of the zero) = 4, so p = 4/16.
    assert result.p_randomisation == pytest.approx(0.25)


def test_identical_runs_give_p_one() -> None:
    result = compare(RUN_A, list(RUN_A), FOUR, ["RR", "AP"])
    for comparison in result.values():
        assert (comparison.delta, comparison.t_statistic, comparison.p_ttest, comparison.p_randomisation) == (
            0.0,
            0.0,
            1.0,
            1.0,
        )


def test_clearly_different_runs_give_small_p() -> None:
    query_ids = [f"q{i}" for i in range(30)]
    qrels = [Qrel(q, "r", 1) for q in query_ids]
    # The relevant document at rank 2, 3 or 4 against always at rank 1: RR differences 1/2, 2/3, 3/4.
    worse = ranking(**{q: [f"n{j}" for j in range(1 + i % 3)] + ["r"] for i, q in enumerate(query_ids)})
    better = ranking(**{q: ["r"] for q in query_ids})
    result = compare(worse, better, qrels, ["RR"], permutations=2000)["RR"]
    assert result.delta > 0.5
    assert result.p_ttest < 1e-6
    assert result.p_randomisation < 0.01
    # Seeded: the same seed gives the same p-value.
    assert compare(worse, better, qrels, ["RR"], permutations=2000)["RR"].p_randomisation == result.p_randomisation


def test_choose_one_test() -> None:
    only_t = compare(RUN_A, RUN_B, FOUR, "RR", test="ttest")["RR"]
    assert only_t.p_randomisation is None and only_t.p_ttest is not None
    only_r = compare(RUN_A, RUN_B, FOUR, "RR", test="randomisation")["RR"]
    assert only_r.p_ttest is None and only_r.t_statistic is None and only_r.p_randomisation == pytest.approx(0.25)
    with pytest.raises(ValueError, match="test must be one of"):
        compare(RUN_A, RUN_B, FOUR, "RR", test="wilcoxon")


# --- tables ------------------------------------------------------------------------------------------------------


def test_format_table_marks_significant_cells() -> None:
    # RR: p = 0.0917 (t-test), 0.25 (randomisation). P@1: 1/4 -> 1/2, differences 1, 0, 0, 0, t = 1, p = 0.39.
    comparisons = compare(RUN_A, RUN_B, FOUR, ["RR", "P@1"])
    table = format_table(
        {"A": evaluate(RUN_A, FOUR, ["RR", "P@1"]), "B": evaluate(RUN_B, FOUR, ["RR", "P@1"])},
        {"B": comparisons},
        alpha=0.1,
    )
    lines = table.splitlines()
    assert lines[:3] == ["| system | RR | P@1 |", "|---|---:|---:|", "| A | 0.5000 | 0.2500 |"]
    assert lines[3] == "| B | 0.7500† | 0.5000 |"
    assert "p < 0.1" in lines[-1]


def test_format_comparison_rows() -> None:
    table = format_comparison(compare(RUN_A, RUN_B, FOUR, ["RR"]), "bm25", "knrm")
    assert table.splitlines()[0].startswith("| measure | bm25 | knrm | delta |")
    assert table.splitlines()[2] == "| RR | 0.5000 | 0.7500 | +0.2500 | 0.0917 | 0.2500 | 4 |"


# --- parity with the WikiQA paper's own runs ---------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(("system", "ap", "rr"), [("CNN", 0.6190, 0.6281), ("CNN-Cnt", 0.6591, 0.6738)])
def test_parity_with_official_wikiqa_runs(shared_data: Path, system: str, ap: float, rr: float) -> None:
    # The rank files cover all 633 test questions, the filtered qrels only the 237 with a correct and an incorrect
    # answer; as in trec_eval, the questions outside the qrels are not evaluated.
    official = shared_data / "wikiqa" / "official"
    qrels = read_qrels(official / "WikiQA-test-filtered.ref")
    run = read_run(official / f"WikiQA.{system}.test.rank")
    values = evaluate(run, qrels, ["AP", "RR"])
    assert round(values["AP"], 4) == ap
    assert round(values["RR"], 4) == rr
    assert len(evaluate_per_query(run, qrels, ["AP"])["AP"]) == 237
