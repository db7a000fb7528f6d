"""What moves a ranker's numbers: one change at a time against a config, judged on the DEV split only.

    python experiments/ablation.py --config wikiqa --data-dir ../shared/data --seeds 1 2
    python experiments/ablation.py --config nfcorpus --seeds 1 --variant "frozen:embeddings.freeze=true"

Prints one line per variant (mean best dev metric over the seeds, best epochs, time) and writes JSON with --output.
Test is never read here: this is the evidence behind the choices in the shipped configs (src/neurank/configs/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
import warnings

from neurank.collections import DataWarning
from neurank.config import load_config
from neurank.data.prepare import prepare_data
from neurank.training import train

VARIANTS: dict[str, list[str]] = {
    "the config as it is": [],
    "no BM25 feature": ["model_config.use_first_stage_score=false"],
    "cosine only (no exact-match channel)": ["model_config.interactions=[cosine]"],
    "cosine + dot + exact": ["model_config.interactions=[cosine, dot, exact]"],
    "random embeddings": ["embeddings.source=random"],
    "pointwise BCE loss": ["train.loss=bce"],
    "pairwise hinge loss": ["train.loss=hinge"],
    "dropout 0.3": ["model_config.dropout=0.3"],
    "wider convs (32, 64)": ["model_config.conv_channels=[32, 64]"],
    "word2vec on WikiQA + Brown corpus": ["embeddings.brown=true"],
    "8 negatives per positive": ["train.negatives=8"],
    "learning rate 5e-4": ["train.lr=5e-4"],
    "finer pooling grid (5, 20)": ["model_config.pool_size=[5, 20]"],
    "dropout 0.3 + Brown corpus": ["model_config.dropout=0.3", "embeddings.brown=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="wikiqa")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--variant", action="append", default=[], help='"name:key=value,key=value" (replaces the built-in list)'
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variants", nargs="*", default=None, help="Names from VARIANTS (default: all).")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DataWarning)

    prepared = {}  # data is prepared once per data and embedding setting

    def data_for(config):
        key = (config.data, config.embeddings)
        if key not in prepared:
            prepared[key] = prepare_data(config)
        return prepared[key]

    variants = VARIANTS
    if args.variant:
        variants = {"the config as it is": []}
        for spec in args.variant:
            name, _, overrides = spec.partition(":")
            variants[name] = [o for o in overrides.split(",") if o]
    rows = []
    for name, overrides in variants.items():
        if args.variants and name not in args.variants:
            continue
        config = load_config(args.config, ([f"data.data_dir={args.data_dir}"] if args.data_dir else []) + overrides)
        values, epochs, seconds = [], [], []
        for seed in args.seeds:
            seeded = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                result = train(seeded, out, progress=False, data=data_for(config))
            seconds.append(time.perf_counter() - started)
            # With fusion on, the figure is the dev metric after interpolating with the first stage.
            values.append(result["fusion"]["value"] if result.get("fusion") else result["best_metric"])
            epochs.append(result["best_epoch"])
        rows.append(
            {
                "variant": name,
                "overrides": overrides,
                "metric": result["metric"],
                "dev": values,
                "mean": statistics.mean(values),
                "best_epochs": epochs,
                "seconds": statistics.mean(seconds),
            }
        )
        print(
            f"{name:40s} dev {result['metric']} {statistics.mean(values):.4f}  "
            f"({', '.join(f'{v:.4f}' for v in values)})  best epochs {epochs}  {statistics.mean(seconds):.0f} s/seed",
            flush=True,
        )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
