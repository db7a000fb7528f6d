"""Do the results table's WikiQA models, combined, reach what none reaches alone? Chosen on dev, test read once.

    python experiments/ensemble.py --runs runs/benchmark --data-dir ../shared/data [--output ensemble.json]

It reads the checkpoints that `neurank benchmark` leaves in `<runs>/wikiqa/<model>/seed-<s>/`
(`best.pt`) and scores WikiQA's dev and test candidates with each. An ensemble averages its members' scores, each
min-max normalised per query, and is then interpolated with BM25 exactly as one model is (`neurank.inference.fusion`:
the weight is chosen on dev, per seed). Seed s of an ensemble combines seed s of each member, so an ensemble has as
many seeds as the table and its mean over seeds compares with a model's.

Printed, and written as JSON with --output:
- each model alone with the weight chosen on dev (this must reproduce the table's test AP; the script checks it
  against the seed's own `seed.json` and stops if it does not);
- greedy forward selection of members on the mean dev AP over seeds, each step with its test AP;
- every model together;
- each model's seeds together, and all checkpoints together (one number each, not a mean over seeds).
Only dev decides anything; test is evaluated for what dev chose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path

import numpy as np
import torch

from neurank.collections import load_collection
from neurank.collections.records import ScoredDoc
from neurank.data.examples import build_examples
from neurank.evaluation import evaluate
from neurank.inference.fusion import ALPHAS
from neurank.inference.reranker import Reranker

SPLITS = ("dev", "test")


class Scores:
    """One checkpoint's raw scores on a split, min-max normalised per query, with the split's BM25 prior."""

    def __init__(self, reranker: Reranker, collection, split: str):
        examples = build_examples(collection, split, reranker.encoder, None, depth=None)
        run = reranker.scorer.score_examples(examples)
        self.pairs = [(r.query_id, r.doc_id) for r in run]
        self.prior = np.array([score for ex in examples for score in ex.scores])
        raw = np.array([r.score for r in run], dtype=np.float64)
        self.queries = {}
        for index, (query_id, _) in enumerate(self.pairs):
            self.queries.setdefault(query_id, []).append(index)
        self.normalised = minmax_per_query(raw, self.queries)


def minmax_per_query(values: np.ndarray, queries: dict[str, list[int]]) -> np.ndarray:
    out = np.zeros_like(values)
    for rows in queries.values():
        part = values[rows]
        span = part.max() - part.min()
        if span > 0:
            out[rows] = (part - part.min()) / span
    return out


def average_precision(qrels, scores: Scores, values: np.ndarray) -> float:
    run = [ScoredDoc(q, d, float(v)) for (q, d), v in zip(scores.pairs, values, strict=True)]
    return evaluate(run, qrels, ["AP"])["AP"]


def fused(members: list[Scores], alpha: float) -> tuple[Scores, np.ndarray]:
    first = members[0]
    if any(m.pairs != first.pairs for m in members[1:]):
        raise ValueError("checkpoints scored different candidates: were they trained on the same data?")
    mean = minmax_per_query(np.mean([m.normalised for m in members], axis=0), first.queries)
    return first, alpha * mean + (1 - alpha) * first.prior


def chosen_on_dev(members: dict[str, list[Scores]], qrels) -> tuple[float, float, float]:
    """(alpha, dev AP, test AP) of one ensemble seed: alpha chosen on dev, ties to the larger (as `tune_alpha`)."""
    dev = {alpha: average_precision(qrels["dev"], *fused(members["dev"], alpha)) for alpha in ALPHAS}
    alpha = max(dev, key=lambda a: (dev[a], a))
    return alpha, dev[alpha], average_precision(qrels["test"], *fused(members["test"], alpha))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs/benchmark", help="the benchmark's output directory")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default=None, help="write everything printed as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    collection = load_collection("wikiqa", args.data_dir)
    qrels = {split: collection.split(split).qrels for split in SPLITS}
    root = Path(args.runs) / "wikiqa"
    models = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("seed-*/best.pt")))
    seeds = sorted({int(p.parent.name.split("-")[1]) for p in root.glob("*/seed-*/best.pt")})
    missing = [f"{m}/seed-{s}" for m in models for s in seeds if not (root / m / f"seed-{s}" / "best.pt").is_file()]
    if not models or missing:
        raise SystemExit(
            f"{root}: checkpoints missing ({', '.join(missing) or 'none found'}); run neurank benchmark first"
        )
    scores: dict[tuple[str, int], dict[str, Scores]] = {}
    for model in models:
        for seed in seeds:
            reranker = Reranker.from_checkpoint(root / model / f"seed-{seed}" / "best.pt", device="cpu")
            scores[(model, seed)] = {split: Scores(reranker, collection, split) for split in SPLITS}
        print(f"scored {model} ({len(seeds)} seeds)", flush=True)

    def ensemble(members: list[str]) -> dict:
        per_seed = [
            chosen_on_dev({split: [scores[(m, s)][split] for m in members] for split in SPLITS}, qrels) for s in seeds
        ]
        test = [t for _, _, t in per_seed]
        return {
            "members": members,
            "dev_ap": statistics.mean(d for _, d, _ in per_seed),
            "test_ap": statistics.mean(test),
            "test_ap_sd": statistics.stdev(test) if len(test) > 1 else 0.0,
            "test_ap_per_seed": test,
            "alphas": [a for a, _, _ in per_seed],
        }

    def show(label: str, row: dict) -> None:
        print(
            f"{label}: dev AP {row['dev_ap']:.4f}, test AP {row['test_ap']:.4f} ± {row['test_ap_sd']:.4f}", flush=True
        )

    result = {"runs": str(root), "seeds": seeds, "single": {}, "greedy": [], "pooled_seeds": {}}
    for model in models:
        row = ensemble([model])
        table = [
            json.loads((root / model / f"seed-{s}" / "seed.json").read_text())["result"]["metrics"]["AP"] for s in seeds
        ]
        if not np.allclose(row["test_ap_per_seed"], table, atol=1e-9):
            raise SystemExit(f"{model}: test AP {row['test_ap_per_seed']} does not reproduce the table's {table}")
        result["single"][model] = row
        show(f"{model} alone", row)
    chosen, best = [], -1.0
    while len(chosen) < len(models):
        candidates = {m: ensemble(chosen + [m]) for m in models if m not in chosen}
        model = max(candidates, key=lambda m: candidates[m]["dev_ap"])
        if candidates[model]["dev_ap"] <= best:
            break
        chosen.append(model)
        best = candidates[model]["dev_ap"]
        result["greedy"].append(candidates[model])
        show(f"greedy step {len(chosen)} {'+'.join(chosen)}", candidates[model])
    result["all_models"] = ensemble(models)
    show("all models", result["all_models"])
    for label, keys in [*((m, [(m, s) for s in seeds]) for m in models), ("every checkpoint", list(scores))]:
        per_split = {split: [scores[key][split] for key in keys] for split in SPLITS}
        alpha, dev, test = chosen_on_dev(per_split, qrels)
        result["pooled_seeds"][label] = {"alpha": alpha, "dev_ap": dev, "test_ap": test, "checkpoints": len(keys)}
        print(f"{label}, {len(keys)} checkpoints pooled: dev AP {dev:.4f}, test AP {test:.4f}", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
