"""Scaling out: training steps/s and re-ranking pairs/s of the CNN ranker (MatchPyramid, neurank/configs/wikiqa.yaml) on
WikiQA with 1 process and with several (torchrun, DDP), on CPUs (gloo) or GPUs (nccl).

    python benchmarks/scaling.py --data-dir ../shared/data [--layouts 1x1,1x2,2x1] [--repeats 3] [--output scaling.json]
    python benchmarks/scaling.py --data-dir ../shared/data --device cuda --layouts 1x1      # one GPU

A layout PxT is P processes (torchrun --nproc-per-node=P) of T threads each; every layout starts its own torchrun,
so each is measured in fresh processes. In each, every rank prepares the data, then:
- training: the loop's step (forward, the global-batch mean of the loss, backward with DDP's all-reduce, gradient
  clipping, AdamW), on the config's global batch of 32 groups (each of P ranks takes 32/P), timed over --steps
  steps after --warmup steps, between barriers; evaluation and checkpoints are left out;
- scoring: `score_examples` over every candidate of the WikiQA train split (20,360 pairs, 256 per batch), dealt
  over the ranks and gathered on every rank;
- re-ranking end to end: `Reranker.rerank_collection` on the same split, which also tokenises the split and
  scores it with BM25 (in every rank), then scores and gathers;
and the re-ranked run's digest, so the table can say whether P processes wrote exactly the 1-process run.

Scoring and re-ranking use the model as initialised from the config's seed (throughput does not depend on the
weights, and every layout then scores with the same ones). With --repeats R the layouts are launched R times,
interleaved, and each rate is the best of its R launches: on a machine busy with other work, the best is the
least disturbed measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# -- one rank (under torchrun) ---------------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    import torch
    from torch.utils.data import DataLoader

    from neurank.config import load_config
    from neurank.data.collate import collate
    from neurank.data.examples import build_examples
    from neurank.data.prepare import prepare_data
    from neurank.data.sampler import BucketBatchSampler
    from neurank.inference.reranker import Reranker
    from neurank.runtime.device import select_device
    from neurank.runtime.distributed import init_distributed
    from neurank.runtime.precision import autocast, grad_scaler
    from neurank.training.loop import make_model, score_examples, training_dataset
    from neurank.training.losses import ranking_loss

    torch.set_num_threads(args.threads)
    overrides = [
        f"data.data_dir={args.data_dir}",
        "embeddings.source=random",
        "train.fusion=false",
        f"train.device={args.device}",
    ]
    config = load_config("wikiqa", overrides)
    with init_distributed(args.device) as context:
        device = context.place(select_device(args.device))
        started = time.perf_counter()
        data = prepare_data(config)
        prepare_seconds = time.perf_counter() - started

        torch.manual_seed(config.train.seed)
        model = context.wrap(make_model(config, len(data.vocab), None).to(device))
        dataset = training_dataset(config, data.train_examples)
        sampler = context.shard_batches(
            BucketBatchSampler(dataset.lengths, config.train.batch_size, seed=config.train.seed)
        )
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.train.lr, weight_decay=config.train.weight_decay)
        scaler = grad_scaler(device, args.precision)

        def step(batch) -> None:
            batch = batch.to(device)
            with autocast(device, args.precision):
                logits = model(
                    batch.query_ids, batch.doc_ids, batch.query_mask, batch.doc_mask, batch.first_stage_score
                )
            loss = ranking_loss(config.train.loss, logits.float(), batch.labels, batch.group_size)
            loss = context.global_batch_mean(loss, len(batch) // batch.group_size)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, config.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()

        def batches():
            epoch = 0
            while True:
                dataset.set_epoch(epoch)
                sampler.set_epoch(epoch)
                yield from loader
                epoch += 1

        stream = batches()
        model.train()
        for _ in range(args.warmup):
            step(next(stream))
        rows = 0
        synchronize(device)
        context.barrier()
        started = time.perf_counter()
        for _ in range(args.steps):
            batch = next(stream)  # collated in the timed loop, as in `train()` (no DataLoader workers)
            rows += len(batch)
            step(batch)
        synchronize(device)
        context.barrier()
        train_seconds = time.perf_counter() - started

        # Scoring uses the initial weights again: the trained ones differ between layouts by float noise (the ranks
        # sum gradients in another order), and the runs of every layout must come from the same model to compare.
        torch.manual_seed(config.train.seed)
        plain = make_model(config, len(data.vocab), None).to(device).eval()
        examples = build_examples(data.collection, args.split, data.encoder, None, depth=None)
        pairs = sum(len(example) for example in examples)
        score_examples(plain, examples[:20], 256, device, precision=args.precision, distributed=context)  # warm-up
        context.barrier()
        started = time.perf_counter()
        score_examples(plain, examples, 256, device, precision=args.precision, distributed=context)
        synchronize(device)
        context.barrier()
        score_seconds = time.perf_counter() - started

        reranker = Reranker(
            plain,
            data.tokenizer,
            data.vocab,
            data.encoder.max_query_len,
            data.encoder.max_doc_len,
            device=device,
            batch_size=256,
            precision=args.precision,
            distributed=context,
        )
        context.barrier()
        started = time.perf_counter()
        run = reranker.rerank_collection(data.collection, args.split)
        context.barrier()
        rerank_seconds = time.perf_counter() - started

        rows_total = context.mean(rows) * context.world_size
        if context.is_main:
            digest = hashlib.sha256("".join(f"{r.query_id} {r.doc_id} {r.score!r}\n" for r in run).encode()).hexdigest()
            result = {
                "processes": context.world_size,
                "threads": torch.get_num_threads(),
                "backend": context.backend,
                "device": str(device),
                "precision": args.precision,
                "prepare_seconds": prepare_seconds,
                "train_steps": args.steps,
                "train_seconds": train_seconds,
                "train_steps_per_second": args.steps / train_seconds,
                "train_pairs_per_second": rows_total / train_seconds,
                "score_pairs": pairs,
                "score_seconds": score_seconds,
                "score_pairs_per_second": pairs / score_seconds,
                "rerank_seconds": rerank_seconds,
                "rerank_pairs_per_second": len(run) / rerank_seconds,
                "run_digest": digest,
            }
            Path(args.result).write_text(json.dumps(result), encoding="utf-8")


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the driver ------------------------------------------------------------------------------------------------


def launch(args: argparse.Namespace, processes: int, threads: int) -> dict:
    """One torchrun of this script as its worker; returns rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=1",
            f"--nproc-per-node={processes}",
            "--rdzv-backend=c10d",
            "--rdzv-endpoint=127.0.0.1:0",
            f"--rdzv-id={uuid.uuid4()}",
            __file__,
            "--worker",
            "--result",
            str(result),
            "--threads",
            str(threads),
            "--data-dir",
            str(args.data_dir),
            "--device",
            args.device,
            "--precision",
            args.precision,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--split",
            args.split,
        ]
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        if completed.returncode != 0 or not result.is_file():
            sys.exit(f"layout {processes}x{threads} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
        return json.loads(result.read_text(encoding="utf-8"))


def best(runs: list[dict]) -> dict:
    """The first run, with each rate replaced by its best over `runs` (the least disturbed by other load)."""
    out = dict(runs[0])
    for key in (
        "train_steps_per_second",
        "train_pairs_per_second",
        "score_pairs_per_second",
        "rerank_pairs_per_second",
    ):
        out[key] = max(run[key] for run in runs)
    out["repeats"] = len(runs)
    out["same_run_every_repeat"] = len({run["run_digest"] for run in runs}) == 1
    return out


def table(results: list[dict]) -> str:
    base = results[0]
    lines = [
        "| processes x threads | train steps/s | train pairs/s | speed-up | scoring pairs/s | speed-up "
        "| re-rank end to end pairs/s | speed-up | run identical to first row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['processes']} x {r['threads']} ({r['device']}, {r['precision']}) | "
            f"{r['train_steps_per_second']:.2f} | {r['train_pairs_per_second']:,.0f} | "
            f"{r['train_steps_per_second'] / base['train_steps_per_second']:.2f} | "
            f"{r['score_pairs_per_second']:,.0f} | "
            f"{r['score_pairs_per_second'] / base['score_pairs_per_second']:.2f} | "
            f"{r['rerank_pairs_per_second']:,.0f} | "
            f"{r['rerank_pairs_per_second'] / base['rerank_pairs_per_second']:.2f} | "
            f"{'yes' if r['run_digest'] == base['run_digest'] else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    default_data = os.environ.get("NEURANK_DATA", str(ROOT.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(default_data), help="holds wikiqa/")
    parser.add_argument(
        "--layouts", default="1x1,1x2,2x1", help="comma-separated PROCESSESxTHREADS, the first is the reference"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one process per GPU)")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (CUDA)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--split", default="train", help="WikiQA split scored and re-ranked (train: 20,360 pairs)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="launches per layout, interleaved; each rate is the best"
    )
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    load_before = os.getloadavg()
    started = time.perf_counter()
    layouts = args.layouts.split(",")
    measured: dict[str, list[dict]] = {layout: [] for layout in layouts}
    for repeat in range(args.repeats):  # interleaved, so a change in the machine's load hits every layout alike
        for layout in layouts:
            processes, _, threads = layout.partition("x")
            measured[layout].append(launch(args, int(processes), int(threads or 1)))
            print(f"{layout}: run {repeat + 1} of {args.repeats} done", file=sys.stderr)
    load_after = os.getloadavg()
    results = [best(measured[layout]) for layout in layouts]
    print(table(results))
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    if args.output:
        import torch

        payload = {
            "command": "python " + " ".join(sys.argv),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "torch": torch.__version__,
                "load_average_before": load_before,
                "load_average_after": load_after,
            },
            "results": results,
            "all_runs": measured,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(payload, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
