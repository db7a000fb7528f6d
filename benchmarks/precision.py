r"""Mixed precision at re-ranking: does bf16 (or fp16 on CUDA) keep the CNN ranker's fp32 rankings, and how fast
is it? WikiQA, the MatchPyramid of neurank/configs/wikiqa.yaml.

    python benchmarks/precision.py --data-dir ../shared/data [--checkpoint runs/wikiqa/best.pt] [--threads 1] \
        [--output precision.json]
    python benchmarks/precision.py --data-dir ../shared/data --device cuda --precisions fp32,bf16,fp16

Without --checkpoint it first trains neurank/configs/wikiqa.yaml (one seed, as `neurank train` does) into --train-dir.
Then for each precision:
- the test split is re-ranked as `neurank rerank` does (with the checkpoint's BM25 fusion): AP, RR, nDCG@10;
- the model's own scores (before fusion, the stricter comparison) are compared with fp32's: Kendall's tau per
  question, the share of questions whose candidates come in the same order, and whose top candidate is the same;
- every candidate of the train split (20,360 pairs) is scored, best of --repeats, for pairs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from neurank.collections import load_collection
from neurank.config import load_config
from neurank.data.examples import build_examples
from neurank.evaluation import evaluate
from neurank.evaluation.agreement import ranking_agreement
from neurank.inference.reranker import Reranker
from neurank.training import train
from neurank.training.loop import score_examples

ROOT = Path(__file__).resolve().parents[1]
MEASURES = ["AP", "RR", "nDCG@10"]


def main() -> None:
    default_data = os.environ.get("NEURANK_DATA", str(ROOT.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(default_data), help="holds wikiqa/")
    parser.add_argument("--checkpoint", type=Path, help="a trained best.pt (default: train the wikiqa config first)")
    parser.add_argument(
        "--train-dir", type=Path, default=ROOT / "runs" / "precision-bench", help="where to train without --checkpoint"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated; fp32 first (the reference)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--repeats", type=int, default=3, help="timed scoring passes per precision; the best is kept")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    if precisions[0] != "fp32":
        sys.exit("--precisions must start with fp32, the reference")

    checkpoint = args.checkpoint
    if checkpoint is None:
        config = load_config("wikiqa", [f"data.data_dir={args.data_dir}", f"train.device={args.device}"])
        started = time.perf_counter()
        train(config, args.train_dir, progress=False)
        print(
            f"trained the wikiqa config in {time.perf_counter() - started:.0f} s into {args.train_dir}", file=sys.stderr
        )
        checkpoint = args.train_dir / "best.pt"

    collection = load_collection("wikiqa", args.data_dir)
    qrels = collection.split("test").qrels
    results, model_runs = [], {}
    for precision in precisions:
        reranker = Reranker.from_checkpoint(checkpoint, device=args.device, precision=precision)
        metrics = evaluate(reranker.rerank_collection(collection, "test"), qrels, MEASURES)
        alpha, reranker.fusion_alpha = reranker.fusion_alpha, None
        model_runs[precision] = reranker.rerank_collection(collection, "test")
        reranker.fusion_alpha = alpha

        examples = build_examples(collection, "train", reranker.encoder, None, depth=None)
        pairs = sum(len(example) for example in examples)
        score_examples(reranker.model, examples[:20], 256, reranker.device, precision=precision)  # warm-up
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            score_examples(reranker.model, examples, 256, reranker.device, precision=precision)
            if reranker.device.type == "cuda":
                torch.cuda.synchronize(reranker.device)
            seconds.append(time.perf_counter() - started)
        agreement = ranking_agreement(model_runs["fp32"], model_runs[precision])
        results.append(
            {
                "precision": precision,
                "device": str(reranker.device),
                **metrics,
                **agreement,
                "pairs": pairs,
                "seconds": seconds,
                "pairs_per_second": pairs / min(seconds),
            }
        )

    lines = [
        "| precision | test AP | RR | nDCG@10 | Kendall tau vs fp32 | same ranking | same top | scoring pairs/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['precision']} ({r['device']}) | {r['AP']:.4f} | {r['RR']:.4f} | {r['nDCG@10']:.4f} | "
            f"{r['kendall_tau']:.4f} | {r['same_ranking']:.1%} | {r['same_top']:.1%} | {r['pairs_per_second']:,.0f} |"
        )
    print("\n".join(lines))
    print(
        f"\n{results[0]['queries']} test questions; {torch.get_num_threads()} threads; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if args.output:
        payload = {
            "command": "python " + " ".join(sys.argv),
            "checkpoint": str(checkpoint),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
            "results": results,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(payload, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
