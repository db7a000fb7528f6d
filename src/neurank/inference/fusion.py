"""Interpolating a re-ranker's scores with the first stage's, with the weight chosen on dev.

    score = alpha * minmax(model score) + (1 - alpha) * first-stage score / max first-stage score   (per query)

A neural re-ranker trained on few or noisy judgements can rank worse than the BM25 run it re-ranks; interpolation
keeps BM25's evidence and lets dev decide how much the model adds (alpha = 0 says: nothing). The weight is chosen
on the dev split after training and stored in the checkpoint, so test is never read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from neurank.collections.records import ScoredDoc
from neurank.data.examples import QueryExample
from neurank.evaluation import evaluate

ALPHAS = tuple(round(float(a), 2) for a in np.linspace(0.0, 1.0, 21))


def fuse(run: Iterable[ScoredDoc], examples: Sequence[QueryExample], alpha: float) -> list[ScoredDoc]:
    """Interpolate each query's model scores (min-max normalised) with its normalised first-stage scores."""
    first_stage = {
        (ex.query_id, doc_id): score for ex in examples for doc_id, score in zip(ex.doc_ids, ex.scores, strict=True)
    }
    by_query: dict[str, list[ScoredDoc]] = {}
    for entry in run:
        by_query.setdefault(entry.query_id, []).append(entry)
    fused = []
    for query_id, entries in by_query.items():
        scores = np.array([e.score for e in entries], dtype=np.float64)
        span = scores.max() - scores.min()
        model = (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
        for entry, value in zip(entries, model, strict=True):
            prior = first_stage[(query_id, entry.doc_id)]
            fused.append(ScoredDoc(query_id, entry.doc_id, float(alpha * value + (1 - alpha) * prior)))
    return fused


def tune_alpha(
    run: Sequence[ScoredDoc], examples: Sequence[QueryExample], qrels, metric: str, alphas: Sequence[float] = ALPHAS
) -> tuple[float, float, dict[float, float]]:
    """The alpha with the best `metric` on these (dev) examples: (alpha, its value, every alpha's value).

    Ties go to the larger alpha (more of the model), so a model that changes nothing is still used as trained.
    """
    values = {alpha: evaluate(fuse(run, examples, alpha), qrels, [metric])[metric] for alpha in alphas}
    best = max(values, key=lambda a: (values[a], a))
    return best, values[best], values
