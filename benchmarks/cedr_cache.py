"""What the token-vector cache of the frozen CEDR models pays: training steps over WikiQA pairs, cold and warm, and a
second model of the same transformer (another seed) reading the first one's vectors from the shared store.

    make minilm
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cedr_cache.py --hf-model models/all-minilm-l6-v2 \
        --data-dir ../shared/data [--pairs 512] [--models cedr_knrm cedr_cnn cedr_pacrr] [--output FILE.json]

For each model, from empty shared stores (`neurank.models.cedr.clear_shared_caches`): `--pairs` (query, candidate)
pairs of WikiQA train (the first questions' candidates, as the loop sees them), batches of 16 word-piece pairs, one
epoch of forward + backward + Adam step with an empty cache (every text encoded), then a second epoch (every text
from the cache); then a second model built under another seed, as a results table builds one per seed, and its first
epoch (every text from the first model's store); then the same epoch with `cache: false`. Also the time a new model
takes to hash its transformer's weights (the store's key, once per model). Prints pairs per second of each and the
store's size as a Markdown table, and writes them as JSON with the machine's description and load (`--output`).
The trainable part is the reader, so the cached epoch is what training costs after its first epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speedlib  # noqa: E402
from neurank.collections import load_collection  # noqa: E402
from neurank.inference.scorer import pad_ids  # noqa: E402
from neurank.models import build_model, model_config_to_dict  # noqa: E402
from neurank.models.cedr import clear_shared_caches  # noqa: E402
from neurank.text import WordPieceEncoder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["model", "hash_ms", "first epoch", "later epochs", "second seed, first epoch", "cache: false", "texts", "MB"]


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
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "cedr_cache.json")
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
    rows = []
    for name in args.models:
        clear_shared_caches()  # the three readers share one store: each model starts from none
        torch.manual_seed(0)
        model = build_model(name, encoder.vocab_size, {"hf_model": str(args.hf_model)})
        start = time.perf_counter()
        model._weights_digest()  # what the first use of the cache does first: hash the transformer's weights
        hash_seconds = time.perf_counter() - start
        cold = epoch(model, batches)
        warm = epoch(model, batches)
        torch.manual_seed(1)
        second = build_model(name, encoder.vocab_size, {"hf_model": str(args.hf_model)})
        shared = epoch(second, batches)
        uncached = build_model(name, encoder.vocab_size, {**model_config_to_dict(model.config), "cache": False})
        uncached.load_state_dict(model.state_dict())
        off = epoch(uncached, batches)
        rows.append(
            {
                "model": name,
                "hash_ms": 1e3 * hash_seconds,
                "first epoch": len(pairs) / cold,
                "later epochs": len(pairs) / warm,
                "second seed, first epoch": len(pairs) / shared,
                "cache: false": len(pairs) / off,
                "texts": model.cache_size,
                "MB": model._cache_bytes / 2**20,
            }
        )
        print(rows[-1], flush=True)
    clear_shared_caches()
    formats = {column: ",.0f" for column in COLUMNS[1:-1]} | {"MB": ".0f"}
    print(f"pairs/s ({len(pairs)} pairs, batches of {args.batch_size}, {torch.get_num_threads()} thread(s)):")
    print(speedlib.markdown_table(rows, COLUMNS, formats))
    payload = {"pairs": len(pairs), "batch_size": args.batch_size, "machine": speedlib.machine(), "models": rows}
    speedlib.write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
