"""How alike two runs over the same (query, doc) pairs rank: the check that a faster or lower-precision path
(bf16, a batched fast path) keeps a model's rankings."""

from __future__ import annotations

import math
from collections.abc import Iterable

from neurank.collections.records import ScoredDoc


def ranking_agreement(run_a: Iterable[ScoredDoc], run_b: Iterable[ScoredDoc]) -> dict[str, float]:
    """How alike two runs over the same (query, doc) pairs rank, e.g. the same model at fp32 and at bf16.

    Returns:
        ``kendall_tau``: Kendall's tau-b between the two score lists, averaged over queries with 2+ documents;
        ``same_ranking``: the share of queries whose documents come in the same order (ties broken as `write_run`
        and trec_eval do, by doc_id); ``same_top``: the share whose first document is the same; ``queries``.
    Raises:
        ValueError: the runs do not hold the same (query, doc) pairs.
    """
    from scipy.stats import kendalltau

    a, b = _by_query(run_a), _by_query(run_b)
    if a.keys() != b.keys() or any(a[q].keys() != b[q].keys() for q in a):
        raise ValueError("the runs must score the same (query, doc) pairs")
    taus, same, top = [], 0, 0
    for query_id, scores in a.items():
        docs = sorted(scores, reverse=True)  # then a stable sort by score: ties stay in doc_id descending order
        order_a = sorted(docs, key=lambda d: -scores[d])
        order_b = sorted(docs, key=lambda d: -b[query_id][d])
        same += order_a == order_b
        top += order_a[0] == order_b[0]
        if len(docs) > 1:
            tau = kendalltau([scores[d] for d in docs], [b[query_id][d] for d in docs]).statistic
            taus.append(1.0 if math.isnan(tau) else float(tau))  # NaN: both lists constant, so the same order
    n = len(a)
    return {
        "kendall_tau": float(sum(taus) / len(taus)) if taus else 1.0,
        "same_ranking": same / n if n else 1.0,
        "same_top": top / n if n else 1.0,
        "queries": n,
    }


def _by_query(run: Iterable[ScoredDoc]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for entry in run:
        out.setdefault(entry.query_id, {})[entry.doc_id] = float(entry.score)
    return out
