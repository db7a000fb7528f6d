"""Paired significance tests between two runs over the same queries: Student's t-test and a randomisation test.

Both tests pair the per-query values of a measure (from `evaluate_per_query`), so they answer "does system B score
differently from system A on the same queries", the comparison IR papers report.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from ir_measures.util import QrelsConverter
from scipy import stats

from neurank.evaluation.measures import evaluate_per_query

TESTS = ("both", "ttest", "randomisation")


@dataclass(frozen=True)
class Comparison:
    """One measure compared between run A (the baseline) and run B.

    `delta` is mean_b - mean_a. A p-value is None when its test was not asked for; the t-test's is nan when it is
    undefined (a single query).
    """

    measure: str
    n_queries: int
    mean_a: float
    mean_b: float
    delta: float
    t_statistic: float | None
    p_ttest: float | None
    p_randomisation: float | None


def _mean_difference(b, a, axis):
    return np.mean(b - a, axis=axis)


def _randomisation_p(a: np.ndarray, b: np.ndarray, permutations: int, seed: int) -> float:
    # scipy >= 1.15 names the generator `rng`; older releases call it `random_state`.
    rng_name = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"
    result = stats.permutation_test(
        (b, a),
        _mean_difference,
        permutation_type="samples",  # swap A and B within a query: a sign flip of its difference
        vectorized=True,
        n_resamples=permutations,
        alternative="two-sided",
        **{rng_name: np.random.default_rng(seed)},
    )
    return float(result.pvalue)


def compare(
    run_a,
    run_b,
    qrels,
    measures: str | Iterable,
    *,
    test: str = "both",
    permutations: int = 10000,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Compare two runs measure by measure with paired tests over the union of their evaluated queries.

    Queries are chosen as in `evaluate` (at least one relevant judgement; missing from a run counts as 0). When
    the two runs agree on every query the p-values are 1 and the t statistic 0, rather than scipy's nan.

    Args:
        run_a: the baseline run (records or anything ir_measures accepts).
        run_b: the run compared with it.
        qrels: the judgements both runs are evaluated against.
        measures: names in ir_measures syntax, e.g. ["AP", "nDCG@10"].
        test: "ttest" (scipy.stats.ttest_rel), "randomisation" (paired sign-flip test through
            scipy.stats.permutation_test, exact when 2**n_queries <= permutations), or "both".
        permutations: resamples for the randomisation test.
        seed: seed of the randomisation test's generator, so the p-value is reproducible.

    Returns:
        `{measure: Comparison}` in the order the measures were given.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    qrels = QrelsConverter(qrels).as_dict_of_dict()  # read once: both runs are evaluated against it
    values_a = evaluate_per_query(run_a, qrels, measures)
    values_b = evaluate_per_query(run_b, qrels, measures)
    return {
        measure: compare_values(
            measure, per_query_a, values_b[measure], test=test, permutations=permutations, seed=seed
        )
        for measure, per_query_a in values_a.items()
    }


def compare_values(
    measure: str,
    per_query_a: dict[str, float],
    per_query_b: dict[str, float],
    *,
    test: str = "both",
    permutations: int = 10000,
    seed: int = 0,
) -> Comparison:
    """The paired tests of `compare` on per-query values that are already computed.

    Use it for values that are not one run's, e.g. a model's per-query AP averaged over several seeds. A query in
    only one of the two mappings counts as 0 in the other.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    query_ids = sorted(per_query_a.keys() | per_query_b.keys())
    a = np.array([per_query_a.get(query_id, 0.0) for query_id in query_ids])
    b = np.array([per_query_b.get(query_id, 0.0) for query_id in query_ids])
    t_statistic = p_ttest = p_randomisation = None
    identical = bool(np.all(a == b))
    if test in ("both", "ttest"):
        if identical:
            t_statistic, p_ttest = 0.0, 1.0
        elif len(query_ids) < 2:
            t_statistic, p_ttest = math.nan, math.nan
        else:
            result = stats.ttest_rel(b, a)
            t_statistic, p_ttest = float(result.statistic), float(result.pvalue)
    if test in ("both", "randomisation"):
        p_randomisation = 1.0 if identical else _randomisation_p(a, b, permutations, seed)
    return Comparison(
        measure=measure,
        n_queries=len(query_ids),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        delta=float(b.mean() - a.mean()),
        t_statistic=t_statistic,
        p_ttest=p_ttest,
        p_randomisation=p_randomisation,
    )
