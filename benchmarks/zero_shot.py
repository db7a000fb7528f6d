"""Zero-shot re-ranking with a sentence encoder (`pooled_cosine`), no training: a baseline row for the results table.

    make minilm
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/zero_shot.py --hf-model models/all-minilm-l6-v2 \
        --collection wikiqa --split test --data-dir ../shared/data

Builds the `pooled_cosine` ranker over the folder (mean-pooled token vectors, cosine between query and document),
re-ranks the split's BM25 candidates through `neurank.inference.Reranker` (for answer selection, every candidate),
and evaluates with neurank's own `evaluate` against the collection's qrels (WikiQA's `test` is the official
test-filtered set). Prints the measures, the pairs scored, and the wall time as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from neurank.collections import load_collection
from neurank.evaluation import evaluate
from neurank.inference.reranker import Reranker
from neurank.models import build_model
from neurank.text import WordPieceEncoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf-model", type=Path, required=True, help="a local Hugging Face sentence-encoder folder")
    parser.add_argument("--collection", default="wikiqa")
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--depth", type=int, default=100, help="candidates per query (ad hoc collections)")
    parser.add_argument("--max-query-len", type=int, default=64, help="word pieces")
    parser.add_argument("--max-doc-len", type=int, default=254, help="word pieces (all-MiniLM-L6-v2 reads 256)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls"])
    args = parser.parse_args(argv)

    collection = load_collection(args.collection, data_dir=args.data_dir)
    encoder = WordPieceEncoder.from_folder(args.hf_model, args.max_query_len, args.max_doc_len)
    model = build_model(
        "pooled_cosine", encoder.vocab_size, {"hf_model": str(args.hf_model), "pooling": args.pooling, "freeze": True}
    )
    reranker = Reranker(model, encoder, device="cpu", batch_size=args.batch_size, first_stage=None)
    start = time.perf_counter()
    run = reranker.rerank_collection(collection, args.split, depth=args.depth)
    seconds = time.perf_counter() - start
    split = collection.split(args.split)
    measures = evaluate(run, split.qrels, list(collection.measures))
    report = {
        "model": "pooled_cosine",
        "hf_model": str(args.hf_model),
        "collection": args.collection,
        "split": args.split,
        "measures": {name: round(value, 4) for name, value in measures.items()},
        "pairs": len(run),
        "seconds": round(seconds, 1),
        "pairs_per_second": round(len(run) / seconds, 1),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
