"""Per-query differences between two runs: which queries a system gained on and which it lost, and by how much."""

from __future__ import annotations

from dataclasses import dataclass

from ir_measures.util import QrelsConverter

from neurank.evaluation import evaluate_per_query, parse_measures


@dataclass(frozen=True)
class QueryDelta:
    """One query's value of a measure under run A and run B; `delta` is B - A."""

    query_id: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a


def per_query_deltas(run_a, run_b, qrels, measure: str) -> list[QueryDelta]:
    """Each evaluated query's `measure` under both runs, largest gain of B over A first.

    Queries are those `evaluate` averages over (at least one relevant judgement); a query a run lacks scores the
    measure's empty-ranking value (0), as in `evaluate`. Ties keep query-id order.

    Args:
        run_a, run_b: runs (records or anything ir_measures accepts).
        qrels: judgements.
        measure: one measure in ir_measures syntax, e.g. "AP" or "nDCG@10".
    """
    (parsed,) = parse_measures([measure])
    qrels = QrelsConverter(qrels).as_dict_of_dict()
    values_a = evaluate_per_query(run_a, qrels, [parsed])[str(parsed)]
    values_b = evaluate_per_query(run_b, qrels, [parsed])[str(parsed)]
    deltas = [QueryDelta(query_id, values_a[query_id], values_b[query_id]) for query_id in values_a]
    return sorted(deltas, key=lambda d: (-d.delta, d.query_id))


def summarise_deltas(deltas: list[QueryDelta], top: int = 10) -> dict:
    """Counts of wins, losses and ties, the mean difference, and the `top` largest gains and losses."""
    wins = [d for d in deltas if d.delta > 0]
    losses = [d for d in deltas if d.delta < 0]
    return {
        "queries": len(deltas),
        "wins": len(wins),
        "losses": len(losses),
        "ties": len(deltas) - len(wins) - len(losses),
        "mean_a": sum(d.a for d in deltas) / len(deltas) if deltas else 0.0,
        "mean_b": sum(d.b for d in deltas) / len(deltas) if deltas else 0.0,
        "gained": [_row(d) for d in wins[:top]],
        "lost": [_row(d) for d in sorted(losses, key=lambda d: (d.delta, d.query_id))[:top]],
    }


def _row(delta: QueryDelta) -> dict:
    return {"query_id": delta.query_id, "a": delta.a, "b": delta.b, "delta": delta.delta}
