"""Compare the tokenizer backends ("regex", "hf") on real collections: speed and agreement.

For WikiQA (distinct questions and sentences of train+dev+test) and NFCorpus (distinct dev+test documents) this
measures tokens/second of `Tokenizer.tokenize_batch` (best of --repeats, all backends in the same run) and the
fraction of texts whose token lists are identical across backends, with the default config and with punctuation
kept. It prints a table and, with --output, writes the numbers as JSON.

    python benchmarks/tokenizers_bench.py --data-dir ../shared/data [--output tokenizers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import tokenizers

from neurank.text.tokenizer import BACKENDS, Tokenizer, TokenizerConfig


def load_wikiqa(data_dir: Path) -> list[str]:
    # The collection readers are written elsewhere; reading the TSV directly keeps this script independent of them.
    questions, sentences = {}, {}
    for split in ("train", "dev", "test"):
        path = data_dir / "wikiqa" / f"WikiQA-{split}.tsv"
        with open(path, encoding="utf-8", newline="") as handle:
            next(handle)  # header
            for number, line in enumerate(handle, start=2):
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) != 7:
                    sys.exit(f"{path}:{number}: expected 7 tab-separated fields, found {len(fields)}")
                questions[fields[0]] = fields[1]
                sentences[fields[4]] = fields[5]
    return [*questions.values(), *sentences.values()]


def load_nfcorpus(data_dir: Path) -> list[str]:
    docs = {}
    for split in ("dev", "test"):
        path = data_dir / "nfcorpus" / f"{split}.docs"
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                doc_id, sep, text = line.rstrip("\n").partition("\t")
                if not sep:
                    sys.exit(f"{path}:{number}: expected ID<TAB>TEXT")
                docs[doc_id] = text
    return list(docs.values())


def time_backend(config: TokenizerConfig, texts: list[str], repeats: int) -> tuple[list[list[str]], float]:
    tokenizer = Tokenizer(config)
    tokenizer.tokenize_batch(texts[:100])  # warm-up outside the timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        batch = tokenizer.tokenize_batch(texts)
        best = min(best, time.perf_counter() - start)
    return batch, best


def compare(texts: list[str], a: list[list[str]], b: list[list[str]], examples: int) -> dict:
    differing = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    shown = []
    for i in differing[:examples]:
        only_a, only_b = [t for t in a[i] if t not in b[i]], [t for t in b[i] if t not in a[i]]
        shown.append({"text": texts[i][:160], f"only_{BACKENDS[0]}": only_a[:8], f"only_{BACKENDS[1]}": only_b[:8]})
    return {"identical": 1 - len(differing) / len(texts), "differing_texts": len(differing), "examples": shown}


def run(data_dir: Path, repeats: int, examples: int) -> dict:
    results = {
        "environment": {
            "python": platform.python_version(),
            "tokenizers": tokenizers.__version__,
            "cpus": os.cpu_count(),
            "repeats": repeats,
        },
        "collections": {},
    }
    for name, loader in (("wikiqa", load_wikiqa), ("nfcorpus", load_nfcorpus)):
        texts = loader(data_dir)
        entry = {"texts": len(texts), "characters": sum(map(len, texts)), "backends": {}, "agreement": {}}
        for drop_punctuation in (True, False):
            outputs = {}
            for backend in BACKENDS:
                config = TokenizerConfig(backend=backend, drop_punctuation=drop_punctuation)
                outputs[backend], seconds = time_backend(config, texts, repeats if drop_punctuation else 1)
                if drop_punctuation:  # timings for the default config only
                    n_tokens = sum(map(len, outputs[backend]))
                    entry["backends"][backend] = {
                        "tokens": n_tokens,
                        "seconds": round(seconds, 4),
                        "tokens_per_second": round(n_tokens / seconds),
                    }
            setting = "drop_punctuation" if drop_punctuation else "keep_punctuation"
            entry["agreement"][setting] = compare(texts, *(outputs[b] for b in BACKENDS), examples)
        results["collections"][name] = entry
    return results


def print_table(results: dict) -> None:
    header = ["collection", "texts", "backend", "tokens", "best s", "tokens/s", "same (drop)", "same (keep)"]
    rows = []
    for name, entry in results["collections"].items():
        agree = entry["agreement"]
        for backend, timing in entry["backends"].items():
            rows.append(
                [
                    name,
                    f"{entry['texts']:,}",
                    backend,
                    f"{timing['tokens']:,}",
                    f"{timing['seconds']:.3f}",
                    f"{timing['tokens_per_second']:,}",
                    f"{agree['drop_punctuation']['identical']:.4f}",
                    f"{agree['keep_punctuation']['identical']:.4f}",
                ]
            )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    env = results["environment"]
    print(f"\nbest of {env['repeats']}; python {env['python']}, tokenizers {env['tokenizers']}, {env['cpus']} cpus")
    for name, entry in results["collections"].items():
        for setting, agree in entry["agreement"].items():
            for example in agree["examples"]:
                print(f"{name} ({setting}) differs: {example}")


def main(argv: list[str] | None = None) -> None:
    default_data = os.environ.get("NEURANK_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(default_data), help="holds wikiqa/ and nfcorpus/")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per backend; the best is kept")
    parser.add_argument("--examples", type=int, default=5, help="differing texts to show per collection and setting")
    args = parser.parse_args(argv)
    results = run(args.data_dir, args.repeats, args.examples)
    print_table(results)
    if args.output:
        from neurank.collections.textio import atomic_write

        with atomic_write(args.output) as handle:
            json.dump(results, handle, indent=2, ensure_ascii=False)
            handle.write("\n")


if __name__ == "__main__":
    main()
