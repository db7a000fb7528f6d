"""What the token-vector cache of the frozen CEDR models pays: training steps over WikiQA pairs, cold and warm.

    make minilm
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cedr_cache.py --hf-model models/all-minilm-l6-v2 \
        --data-dir ../shared/data [--pairs 512] [--models cedr_knrm cedr_cnn cedr_pacrr]

For each model: `--pairs` (query, candidate) pairs of WikiQA train (the first questions' candidates, as the loop
sees them), batches of 16 word-piece pairs, one epoch of forward + backward + Adam step with an empty cache (every
text encoded), then a second epoch (every text from the cache), and the same epoch with `cache: false`. Prints
pairs per second of each, and the cache's size, as JSON. The trainable part is the reader, so the cached epoch is
what training costs after its first epoch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from neurank.collections import load_collection
from neurank.inference.scorer import pad_ids
from neurank.models import build_model, model_config_to_dict
from neurank.text import WordPieceEncoder


def epoch(model, batches) -> float:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    start = time.perf_counter()
    for query_ids, query_mask, doc_ids, doc_mask, labels in batches:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(query_ids, doc_ids, query_mask, doc_mask), labels)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf-model", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", nargs="+", default=["cedr_knrm", "cedr_cnn", "cedr_pacrr"])
    args = parser.parse_args(argv)

    split = load_collection("wikiqa", data_dir=args.data_dir).split("train")
    assert split.candidates is not None  # answer selection: each question has its candidate sentences
    judged = split.qrels_by_query()
    pairs = []
    for query_id, docs in split.candidates.items():
        for doc in docs:
            pairs.append((split.queries[query_id].text, doc.text, float(judged[query_id].get(doc.doc_id, 0) > 0)))
    pairs = pairs[: args.pairs]
    encoder = WordPieceEncoder.from_folder(args.hf_model, max_query_len=32, max_doc_len=96)
    batches = []
    for start in range(0, len(pairs), args.batch_size):
        chunk = pairs[start : start + args.batch_size]
        query_ids, query_mask = pad_ids(encoder.encode_queries([q for q, _, _ in chunk]))
        doc_ids, doc_mask = pad_ids(encoder.encode_docs([d for _, d, _ in chunk]))
        batches.append((query_ids, query_mask, doc_ids, doc_mask, torch.tensor([y for _, _, y in chunk])))
    report = {"pairs": len(pairs), "batch_size": args.batch_size, "threads": torch.get_num_threads(), "models": {}}
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, encoder.vocab_size, {"hf_model": str(args.hf_model)})
        cold = epoch(model, batches)
        warm = epoch(model, batches)
        uncached = build_model(name, encoder.vocab_size, {**model_config_to_dict(model.config), "cache": False})
        uncached.load_state_dict(model.state_dict())
        off = epoch(uncached, batches)
        report["models"][name] = {
            "pairs_per_second_cold": round(len(pairs) / cold, 1),
            "pairs_per_second_cached": round(len(pairs) / warm, 1),
            "pairs_per_second_no_cache": round(len(pairs) / off, 1),
            "cached_texts": model.cache_size,
            "cache_mb": round(model._cache_bytes / 2**20, 1),
        }
        print(json.dumps({name: report["models"][name]}), flush=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
