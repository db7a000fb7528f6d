"""Choose a model's options for one collection of the results table, on that collection's DEV split only.

    python experiments/model_options.py --model tk --collection wikiqa --seeds 1 2 3 \
        --variant '{"dropout": 0.0}' --variant '{"dropout": 0.1}' --variant '{"dropout": 0.2}'

Each variant's options replace the model's options from neurank/configs/benchmark.yaml (the collection's own included);
a variant's "train" key holds training options that replace the collection's for this model, as a collection's
`train: {model: {...}}` entry in the benchmark config does (e.g. '{"train": {"patience": 10}}'). The model is
trained as `neurank benchmark` trains it, with each seed, and the script prints, per variant, the best
dev value of the collection's selection metric and the dev value after the BM25 fusion weight is chosen, per seed
and on average. Test is never read here: the table's command re-ranks test once, with the options chosen.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from neurank.collections import DataWarning
from neurank.data.prepare import prepare_data
from neurank.training import train
from neurank.workflows.experiment import with_seed
from neurank.workflows.results_table import load_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="benchmark", help="a benchmark config: a path, or a shipped name")
    parser.add_argument("--model", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variant", action="append", required=True, help="JSON object of model options")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    variants = [json.loads(v) for v in args.variant]
    for variant in variants:
        if not isinstance(variant, dict) or not isinstance(variant.get("train", {}), dict):
            parser.error(f'variant {json.dumps(variant)}: expected an object of model options, its "train" an object')
    plan = load_plan(args.config, data_dir=args.data_dir, models=[args.model], collections=[args.collection])
    base = plan.collections[args.collection]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = prepare_data(base)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for number, variant in enumerate(variants):
            options = dict(variant)
            train_options = options.pop("train", {})
            varied = dataclasses.replace(
                plan,
                models={**plan.models, args.model: {**plan.model_options(args.collection, args.model), **options}},
                collection_models={},
                collection_train={
                    args.collection: {args.model: {**plan.train_options(args.collection, args.model), **train_options}}
                },
            )
            config = varied.experiment_config(args.collection, args.model)
            seeds = []
            for seed in args.seeds:
                started = time.perf_counter()
                outcome = train(with_seed(config, seed), Path(tmp) / f"{number}-{seed}", data=data)
                fused = outcome["fusion"]["value"] if outcome["fusion"] else None
                seeds.append(
                    {
                        "seed": seed,
                        "dev": outcome["best_metric"],
                        "dev_fused": fused,
                        "best_epoch": outcome["best_epoch"],
                        "epochs": outcome["epochs"],
                        "seconds": time.perf_counter() - started,
                    }
                )
            row = {
                "options": variant,
                "metric": outcome["metric"],
                "seeds": seeds,
                "mean_dev": statistics.mean(s["dev"] for s in seeds),
                "mean_dev_fused": statistics.mean(s["dev_fused"] for s in seeds)
                if all(s["dev_fused"] is not None for s in seeds)
                else None,
            }
            rows.append(row)
            fused_text = f", fused {row['mean_dev_fused']:.4f}" if row["mean_dev_fused"] is not None else ""
            print(
                f"{json.dumps(variant)}: mean dev {row['metric']} {row['mean_dev']:.4f}{fused_text} ("
                + ", ".join(f"seed {s['seed']} {s['dev']:.4f} at epoch {s['best_epoch']}" for s in seeds)
                + ")",
                flush=True,
            )
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
