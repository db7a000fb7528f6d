"""The BM25 baseline table: BM25 on every registered collection, next to published figures.

`neurank baseline` (and `make demo`, until the neural model lands) prints this table; the README shows its output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from neurank.collections.registry import is_folded, load_collection
from neurank.evaluation import evaluate
from neurank.retrieval import BM25Config, bm25_run
from neurank.text import Tokenizer


def _evaluated(qrels) -> int:
    # evaluate() averages over the queries with at least one relevant judgement.
    return len({q.query_id for q in qrels if q.relevance > 0})


# Published figures to read ours against, with their source. Only numbers printed in the cited papers.
PUBLISHED: dict[str, list[tuple[str, dict[str, float]]]] = {
    "wikiqa": [
        ("Word Cnt (Yang et al. 2015, Table 3)", {"AP": 0.4891, "RR": 0.4924}),
        ("Wgt Word Cnt (Yang et al. 2015, Table 3)", {"AP": 0.5099, "RR": 0.5132}),
    ],
    "nfcorpus": [("BM25, BEIR version (Thakur et al. 2021, Table 2)", {"nDCG@10": 0.325})],
}

# What each collection is reported with, and on which split.
PLAN: dict[str, tuple[str, tuple[str, ...]]] = {
    "wikiqa": ("test", ("AP", "RR", "nDCG@10")),
    "nfcorpus": ("test", ("nDCG@10", "AP", "P@10")),
    "cranfield": ("test", ("AP", "nDCG@10", "P@10")),
    "cisi": ("test", ("AP", "nDCG@10", "P@10")),
}


@dataclass
class BaselineRow:
    collection: str
    split: str
    queries: int
    metrics: dict[str, float]
    per_fold: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bm25_baseline(
    data_dir: str | Path | None = None,
    collections: tuple[str, ...] = tuple(PLAN),
    folds: int = 5,
    k: int = 1000,
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
) -> list[BaselineRow]:
    """Run BM25 on each collection's test split and evaluate it.

    Cranfield and CISI have no official split: their figures are the mean over the test folds of a `folds`-fold
    split over queries (BM25 has nothing to train, so this is the protocol a trained model will be compared on).
    """
    rows = []
    for name in collections:
        split, measures = PLAN[name]
        if is_folded(name):
            per_fold, queries, notes = [], 0, []
            for fold in range(folds):
                collection = load_collection(name, data_dir, folds=folds, fold=fold)
                part = collection.split(split)
                run = bm25_run(collection, split, k=k, tokenizer=tokenizer, config=config)
                per_fold.append(evaluate(run, part.qrels, measures))
                queries += _evaluated(part.qrels)
                notes = collection.notes
            metrics = {m: mean(f[m] for f in per_fold) for m in measures}
            rows.append(BaselineRow(name, f"{split} ({folds} folds)", queries, metrics, per_fold, notes))
        else:
            collection = load_collection(name, data_dir)
            part = collection.split(split)
            run = bm25_run(collection, split, k=k, tokenizer=tokenizer, config=config)
            rows.append(
                BaselineRow(
                    name, split, _evaluated(part.qrels), evaluate(run, part.qrels, measures), notes=collection.notes
                )
            )
    return rows


# The first line of the table file `neurank baseline --output` writes (an HTML comment: Markdown does not show it),
# by which a rerun recognises the file as its own and replaces it.
BASELINE_MARK = "<!-- written by neurank baseline; rerunning it replaces this file -->"


def baseline_markdown(rows: list[BaselineRow]) -> str:
    """The baseline table as Markdown, with the published figures under each of our rows."""
    measures: list[str] = []
    for row in rows:
        measures += [m for m in row.metrics if m not in measures]
    lines = [
        "| collection | split | queries | run | " + " | ".join(measures) + " |",
        "|---|---|---:|---|" + "---:|" * len(measures),
    ]
    for row in rows:
        cells = [f"{row.metrics[m]:.4f}" if m in row.metrics else "" for m in measures]
        lines.append(f"| {row.collection} | {row.split} | {row.queries} | BM25 (neurank) | " + " | ".join(cells) + " |")
        for label, published in PUBLISHED.get(row.collection, []):
            cells = [f"{published[m]:.4f}" if m in published else "" for m in measures]
            lines.append(f"| | | | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
