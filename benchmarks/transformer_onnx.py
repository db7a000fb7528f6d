"""ONNX export of the transformer rankers against PyTorch: pairs per second of each, measured interleaved in one run
on the same word-piece pairs, and the largest score difference between the two.

    make minilm
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transformer_onnx.py --hf-model models/all-minilm-l6-v2 \
        [--batch 32] [--query-len 20] [--doc-len 128] [--models cross_encoder,pooled_cosine,cedr_cnn_joint] \
        [--output benchmarks/results/transformer_onnx.json]

Each model is built over the folder's transformer (all-MiniLM-L6-v2: its real weights; speed does not depend on
what the scoring layers learned), exported with `neurank.inference.export.export_model_onnx` as `neurank export`
does, and scored by `neurank.inference.onnx_reranker.OnnxScorer` (onnxruntime, CPU, as many threads as PyTorch)
and by `neurank.inference.scorer.Scorer` (PyTorch, `inference_mode`), alternating, on `--batch` synthetic pairs
of exactly `--query-len` x `--doc-len` word pieces (`benchmarks/inference.py`'s `onnx_option`). The pooled cosine
runs with `cache: false`: the same pairs are scored again and again here, and an export never caches, so both sides
encode every text; its cache is what pays when texts repeat (docs/pretrained.md). Every model reads the first-stage
score as an input here (one number per pair, as `onnx_option` feeds it). Without `--hf-model` (or when the
folder is missing) every model is the tiny random BERT, a smoke test of the script, not a measurement.
Prints a Markdown table and writes JSON with the machine's description and load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speedlib  # noqa: E402
from inference import onnx_option  # noqa: E402
from neurank.text import WordPieceEncoder  # noqa: E402

MODELS = ["cross_encoder", "pooled_cosine", "cedr_cnn_joint"]
COLUMNS = ["model", "torch pairs/s", "onnx pairs/s", "onnx / torch", "max abs diff", "export s"]


def model_options(name: str, folder: Path | None) -> dict:
    """The options a model is measured with: the folder (when there is one), as the results table trains it."""
    # The first-stage score as an input (one number per pair; `onnx_option` feeds it to every model).
    options: dict = {"use_first_stage_score": True}
    if folder is not None:
        options["hf_model"] = str(folder)
    if name == "pooled_cosine":
        options["cache"] = False
    if name == "cross_encoder":
        options["pooler"] = False
    return options


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf-model", default=None, help="a local Hugging Face folder (make minilm)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--query-len", type=int, default=20)
    parser.add_argument("--doc-len", type=int, default=128)
    parser.add_argument("--min-seconds", type=float, default=3.0, help="least time per side and repetition")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--output", default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    folder = Path(args.hf_model) if args.hf_model else None
    if folder is not None and not (folder / "config.json").is_file():
        print(f"{folder}: no model folder there (make minilm); measuring the tiny random BERT instead", file=sys.stderr)
        folder = None
    vocab_size = WordPieceEncoder.from_folder(folder).vocab_size if folder is not None else 100
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    configs = {name: model_options(name, folder) for name in models}
    shape = (args.batch, args.query_len, args.doc_len)
    print(f"# ONNX against PyTorch: batch {args.batch}, query {args.query_len} x document {args.doc_len} word pieces")
    print(f"encoder: {folder.name if folder else 'tiny random BERT'}; {torch.get_num_threads()} torch thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = onnx_option(configs, vocab_size, shape, args.min_seconds, print, Path(tmp))
    table = [
        {
            "model": row["model"],
            "torch pairs/s": f"{row['torch_pairs_per_s']:,.1f}",
            "onnx pairs/s": f"{row['onnx_pairs_per_s']:,.1f}",
            "onnx / torch": f"{row['onnx_speedup']:.2f}",
            "max abs diff": f"{row['max_score_difference']:.1e}",
            "export s": f"{row['export_seconds']:.1f}",
        }
        for row in rows
    ]
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * (len(COLUMNS) - 1))
    for row in table:
        print("| " + " | ".join(row[c] for c in COLUMNS) + " |")
    result = {
        "command": " ".join(sys.argv),
        "machine": speedlib.machine(),
        "encoder": folder.name if folder else "tiny random BERT",
        "shape": {"batch": args.batch, "query_len": args.query_len, "doc_len": args.doc_len},
        "options": configs,
        "rows": rows,
    }
    if args.output:
        speedlib.write_json(args.output, result)
    return result


if __name__ == "__main__":
    main()
