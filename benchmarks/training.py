"""Training speed, side by side, measured in one run.

    python benchmarks/training.py --data-dir ../shared/data [--quick] [--output benchmarks/results/training.json]

Sections (each prints a Markdown table; everything also goes to the JSON file):
1. steps: training steps per second at batch 64 (64 groups of a positive and 4 negatives, 320 pairs, the WikiQA
   config's listwise softmax loss) on real WikiQA training batches, for every model, exactly as `neurank train` steps
   (forward, loss, backward, gradient clipping, AdamW, scheduler); peak resident memory of each model's steps.
   A row "straightforward MatchPyramid" steps the tutorial-style model of benchmarks/inference.py on the same
   batches, every text padded to the fixed maximum lengths (20 / 60), interleaved with neurank's CNN.
2. options: the CNN's training step with sparse embedding gradients (SparseAdam), with frozen embeddings, and
   under `torch.compile` (static shapes), interleaved with the default step. These change what is trained.
3. process settings: the CNN's training step in two worker processes, interleaved: glibc's default malloc
   thresholds against raised ones, then OpenMP's default (spinning) wait policy against OMP_WAIT_POLICY=PASSIVE.
4. full run: `neurank train wikiqa` as a user runs it (word2vec on WikiQA and the Brown corpus, BM25,
   10 epochs with early stopping on dev AP, fusion), in a worker process with default and with tuned allocator
   settings: wall time in all, data preparation, the training loop, and the time at which the best dev AP was
   reached; peak resident memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speedlib  # noqa: E402
from neurank.config import load_config, resolve_config  # noqa: E402
from neurank.data.collate import collate  # noqa: E402
from neurank.data.prepare import prepare_data  # noqa: E402
from neurank.data.sampler import BucketBatchSampler  # noqa: E402
from neurank.runtime.allocator import tune_malloc  # noqa: E402
from neurank.runtime.device import seed_everything  # noqa: E402
from neurank.training import train  # noqa: E402
from neurank.training.loop import _lr_lambda, make_model, training_dataset  # noqa: E402
from neurank.training.losses import ranking_loss  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CNN = "match_pyramid"
BATCH_SIZE = 64


def base_config(data_dir: str, extra: list[str] | None = None):
    return load_config("wikiqa", [f"data.data_dir={data_dir}", f"train.batch_size={BATCH_SIZE}", *(extra or [])])


def model_options() -> dict[str, dict]:
    plan = yaml.safe_load(resolve_config("benchmark").read_text(encoding="utf-8"))
    wikiqa = yaml.safe_load(resolve_config("wikiqa").read_text(encoding="utf-8"))
    options = {name: {**(o or {}), "use_first_stage_score": True} for name, o in plan["models"].items()}
    options[CNN] = dict(wikiqa["model_config"])
    return options


class Trainer:
    """One model's training step as `neurank.training.train` takes it, on a fixed list of batches."""

    def __init__(self, config, data, n_batches: int, model=None):
        self.config = config
        seed_everything(config.train.seed)
        self.model = model if model is not None else make_model(config, len(data.vocab), data.embeddings)
        if hasattr(self.model, "set_idf") and data.idf is not None:
            self.model.set_idf(data.idf)
        dataset = training_dataset(config, data.train_examples)
        sampler = BucketBatchSampler(dataset.lengths, config.train.batch_size, shuffle=True, seed=config.train.seed)
        self.batches = list(itertools.islice(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate), n_batches))
        embedding = getattr(self.model, "embedding", None)
        sparse = (
            [p for p in embedding.parameters() if p.requires_grad] if embedding is not None and embedding.sparse else []
        )
        self.dense = [p for p in self.model.parameters() if p.requires_grad and all(p is not s for s in sparse)]
        self.optimizers = [torch.optim.AdamW(self.dense, lr=config.train.lr, weight_decay=config.train.weight_decay)]
        if sparse:
            self.optimizers.append(torch.optim.SparseAdam(sparse, lr=config.train.lr))
        factor = _lr_lambda(config.train.schedule, config.train.warmup_steps, 10_000)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in self.optimizers]
        self.position = 0
        self.forward = self.model

    def step(self) -> float:
        batch = self.batches[self.position % len(self.batches)]
        self.position += 1
        self.model.train()
        logits = self.forward(batch.query_ids, batch.doc_ids, batch.query_mask, batch.doc_mask, batch.first_stage_score)
        loss = ranking_loss(self.config.train.loss, logits, batch.labels, batch.group_size)
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.train.grad_clip and self.dense:
            torch.nn.utils.clip_grad_norm_(self.dense, self.config.train.grad_clip)
        for optimizer, scheduler in zip(self.optimizers, self.schedulers, strict=True):
            optimizer.step()
            scheduler.step()
        return loss.item()


def fixed_length_forward(model, max_query_len: int, max_doc_len: int):
    """The tutorial model's forward on batches padded to the fixed maximum lengths (ids only: it derives masks)."""

    def forward(query_ids, doc_ids, query_mask, doc_mask, first_stage_score):
        query_ids = F.pad(query_ids, (0, max_query_len - query_ids.shape[1]))
        doc_ids = F.pad(doc_ids, (0, max_doc_len - doc_ids.shape[1]))
        return model(query_ids, doc_ids, first_stage_score)

    return forward


def steps_section(config, data, n_steps, budget, log) -> list[dict]:
    from inference import TutorialMatchPyramid

    rows = []
    options = model_options()
    for name, model_config in options.items():
        cfg = dataclasses.replace(config, model=name, model_config=model_config)
        trainer = Trainer(cfg, data, n_steps)
        pairs = sum(len(b) for b in trainer.batches) / len(trainer.batches)
        gc.collect()
        speedlib.reset_peak_memory()
        if name != CNN:
            times = speedlib.timed(trainer.step, budget=budget, min_repetitions=3, max_repetitions=n_steps)
            rows.append(
                {
                    "model": name,
                    "steps_per_s": 1 / speedlib.median(times),
                    "pairs_per_step": pairs,
                    "steps": len(times),
                    "peak_mib": speedlib.peak_memory_mb(),
                }
            )
            log(f"  {name}: {rows[-1]['steps_per_s']:.2f} steps/s ({pairs:.0f} pairs per step)")
            continue
        # The CNN, interleaved with the straightforward reference on the same batches.
        reference = Trainer(cfg, data, n_steps, model=TutorialMatchPyramid(len(data.vocab), trainer.model.config))
        reference.model.load_state_dict(trainer.model.state_dict())
        reference.forward = fixed_length_forward(reference.model, cfg.data.max_query_len, cfg.data.max_doc_len)
        times = speedlib.interleave(
            {"neurank": trainer.step, "reference": reference.step}, repetitions=min(n_steps, 6), min_seconds=budget
        )
        rows.append(
            {
                "model": name,
                "steps_per_s": 1 / speedlib.median(times["neurank"]),
                "pairs_per_step": pairs,
                "steps": len(times["neurank"]),
                "peak_mib": speedlib.peak_memory_mb(),
            }
        )
        rows.append(
            {
                "model": "straightforward MatchPyramid",
                "steps_per_s": 1 / speedlib.median(times["reference"]),
                "pairs_per_step": pairs,
                "steps": len(times["reference"]),
            }
        )
        ratio = speedlib.median(times["reference"]) / speedlib.median(times["neurank"])
        rows[-2]["vs_reference"] = ratio
        log(
            f"  {name}: {rows[-2]['steps_per_s']:.2f} steps/s; "
            f"straightforward {rows[-1]['steps_per_s']:.2f} steps/s ({ratio:.1f}x)"
        )
    return rows


def options_section(config, data, n_steps, budget, log) -> list[dict]:
    cfg = dataclasses.replace(config, model=CNN, model_config=model_options()[CNN])
    variants = {
        "default": Trainer(cfg, data, n_steps),
        "sparse embedding gradients (SparseAdam)": Trainer(
            dataclasses.replace(cfg, embeddings=dataclasses.replace(cfg.embeddings, sparse=True)), data, n_steps
        ),
        "frozen embeddings": Trainer(
            dataclasses.replace(cfg, embeddings=dataclasses.replace(cfg.embeddings, freeze=True)), data, n_steps
        ),
    }
    times = speedlib.interleave(
        {k: t.step for k, t in variants.items()}, repetitions=min(n_steps, 6), min_seconds=budget
    )
    base = speedlib.median(times["default"])
    rows = [
        {"variant": k, "steps_per_s": 1 / speedlib.median(v), "speedup": base / speedlib.median(v)}
        for k, v in times.items()
    ]

    # torch.compile needs static shapes: one batch, padded to lengths that are multiples of 8, repeated.
    compiled = Trainer(cfg, data, 1)
    eager = Trainer(cfg, data, 1)
    for trainer in (compiled, eager):
        batch = trainer.batches[0]
        q, d = -(-batch.query_ids.shape[1] // 8) * 8, -(-batch.doc_ids.shape[1] // 8) * 8
        trainer.batches = [
            dataclasses.replace(
                batch,
                query_ids=F.pad(batch.query_ids, (0, q - batch.query_ids.shape[1])),
                query_mask=F.pad(batch.query_mask, (0, q - batch.query_mask.shape[1])),
                doc_ids=F.pad(batch.doc_ids, (0, d - batch.doc_ids.shape[1])),
                doc_mask=F.pad(batch.doc_mask, (0, d - batch.doc_mask.shape[1])),
            )
        ]
    compiled.forward = torch.compile(compiled.model, dynamic=False)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled.step()
            compile_seconds = time.perf_counter() - start
            times = speedlib.interleave(
                {"eager": eager.step, "compiled": compiled.step}, repetitions=5, min_seconds=budget / 2
            )
        rows.append(
            {
                "variant": f"torch.compile, one static shape {tuple(compiled.batches[0].doc_ids.shape)} "
                f"(compile {compile_seconds:.0f} s)",
                "steps_per_s": 1 / speedlib.median(times["compiled"]),
                "speedup": speedlib.median(times["eager"]) / speedlib.median(times["compiled"]),
            }
        )
    except Exception as error:  # inductor needs a C++ compiler; report instead of failing the whole benchmark
        rows.append({"variant": f"torch.compile failed: {type(error).__name__}: {str(error).splitlines()[0][:150]}"})
    for row in rows:
        log(
            f"  {row['variant']}: "
            + (f"{row['steps_per_s']:.2f} steps/s ({row['speedup']:.2f}x)" if "speedup" in row else "")
        )
    return rows


def allocator_section(data_dir, rounds, log, env=None) -> dict:
    """The CNN's training step in two worker processes, interleaved: default settings against `env` (default: the
    tuned glibc malloc thresholds)."""
    drop = speedlib.ALLOCATOR_VARS
    workers = {
        "default": speedlib.Worker(__file__, drop=drop),
        "tuned": speedlib.Worker(__file__, env=env or speedlib.TUNED_MALLOC, drop=drop),
    }
    try:
        for worker in workers.values():
            worker.ask(task="setup_steps", data_dir=data_dir)
        seconds = {name: [] for name in workers}
        for _ in range(rounds):
            for name, worker in workers.items():
                seconds[name].append(worker.ask(task="step")["seconds"])
        faults = {name: worker.ask(task="faults")["minor_faults_per_step"] for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.close()
    default, tuned = speedlib.median(seconds["default"]), speedlib.median(seconds["tuned"])
    result = {
        "default_steps_per_s": 1 / default,
        "tuned_steps_per_s": 1 / tuned,
        "speedup": default / tuned,
        "default_faults_per_step": faults["default"],
        "tuned_faults_per_step": faults["tuned"],
        "rounds": rounds,
    }
    log(
        f"  CNN step: default {result['default_steps_per_s']:.2f}, tuned {result['tuned_steps_per_s']:.2f} steps/s "
        f"({result['speedup']:.2f}x); page faults per step {faults['default']:,.0f} vs {faults['tuned']:,.0f}"
    )
    return result


def full_run_section(data_dir, settings, epochs, log) -> list[dict]:
    rows = []
    for setting in settings:
        env = speedlib.TUNED_MALLOC if setting == "tuned" else {}
        worker = speedlib.Worker(__file__, env=env, drop=speedlib.ALLOCATOR_VARS)
        try:
            row = worker.ask(task="full_run", data_dir=data_dir, epochs=epochs)
        finally:
            worker.close()
        row["allocator"] = setting
        rows.append(row)
        log(
            f"  {setting} allocator: {row['wall_seconds']:.0f} s in all "
            f"({row['prepare_seconds']:.0f} s data and word2vec, {row['loop_seconds']:.0f} s training, "
            f"best dev AP {row['best_dev_ap']:.4f} at epoch {row['best_epoch']} after "
            f"{row['seconds_to_best']:.0f} s of training), peak {row['peak_mib']:,.0f} MiB"
        )
    return rows


def worker_main() -> None:
    import resource

    state = {}

    def setup_steps(data_dir):
        config = base_config(data_dir, ["embeddings.source=random"])
        data = prepare_data(config)
        state["trainer"] = Trainer(dataclasses.replace(config, model=CNN, model_config=model_options()[CNN]), data, 8)
        for _ in range(2):
            state["trainer"].step()
        state["steps"], state["faults"] = 0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        return {}

    def step():
        start = time.perf_counter()
        state["trainer"].step()
        state["steps"] += 1
        return {"seconds": time.perf_counter() - start}

    def faults():
        return {
            "minor_faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - state["faults"])
            / max(1, state["steps"])
        }

    def full_run(data_dir, epochs):
        speedlib.reset_peak_memory()
        start = time.perf_counter()
        config = load_config("wikiqa", [f"data.data_dir={data_dir}", f"train.epochs={epochs}"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = prepare_data(config)
            prepared = time.perf_counter()
            with tempfile.TemporaryDirectory() as output:
                result = train(config, output, progress=False, data=data)
                records = [json.loads(line) for line in (Path(output) / "metrics.jsonl").read_text().splitlines()]
        best = next(r for r in records if r["epoch"] == result["best_epoch"])
        return {
            "wall_seconds": time.perf_counter() - start,
            "prepare_seconds": prepared - start,
            "loop_seconds": result["seconds"],
            "seconds_to_best": best["seconds"],
            "best_epoch": result["best_epoch"],
            "epochs": result["epochs"],
            "best_dev_ap": result["best_metric"],
            "fusion_dev_ap": (result.get("fusion") or {}).get("value"),
            "peak_mib": speedlib.peak_memory_mb(),
            "threads": torch.get_num_threads(),
        }

    speedlib.serve({"setup_steps": setup_steps, "step": step, "faults": faults, "full_run": full_run})


def main() -> None:
    if "--worker" in sys.argv:
        worker_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "training.json"))
    parser.add_argument("--quick", action="store_true", help="fewer steps, a 2-epoch full run (a smoke test)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's; workers inherit it)"
    )
    parser.add_argument("--sections", default="steps,options,allocator,waitpolicy,full")
    parser.add_argument("--full-runs", default="default,tuned", help="allocator settings of the full WikiQA runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        import os

        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the workers start with it
    sections = set(args.sections.split(","))
    log = lambda line: print(line, flush=True)  # noqa: E731
    started = time.perf_counter()
    tune_malloc()  # as `neurank` runs (a Reranker, train); the allocator sections compare it with glibc's defaults
    result = {"command": " ".join(["python", *sys.argv]), "machine": speedlib.machine(), "quick": args.quick}
    n_steps, budget = (4, 2.0) if args.quick else (12, 8.0)
    tables = []
    if sections & {"steps", "options"}:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = base_config(args.data_dir, ["embeddings.source=random"])
            data = prepare_data(config)
    if "steps" in sections:
        log(f"\n## Training steps per second, batch {BATCH_SIZE} (WikiQA batches)")
        result["steps"] = steps_section(config, data, n_steps, budget, log)
        tables.append(
            (
                "Training throughput",
                speedlib.markdown_table(
                    result["steps"],
                    ["model", "steps_per_s", "pairs_per_step", "vs_reference", "peak_mib"],
                    {"steps_per_s": ".2f", "pairs_per_step": ".0f", "vs_reference": ".1f", "peak_mib": ",.0f"},
                ),
            )
        )
    if "options" in sections:
        log("\n## CNN training options (interleaved)")
        result["options"] = options_section(config, data, n_steps, budget, log)
        tables.append(
            (
                "CNN training options",
                speedlib.markdown_table(
                    result["options"], ["variant", "steps_per_s", "speedup"], {"steps_per_s": ".2f", "speedup": ".2f"}
                ),
            )
        )
    if "allocator" in sections:
        log("\n## Allocator (CNN training step, worker processes, interleaved)")
        result["allocator"] = allocator_section(args.data_dir, 4 if args.quick else 12, log)
    if "waitpolicy" in sections:
        log(
            "\n## OpenMP waiting: spinning (default) against OMP_WAIT_POLICY=PASSIVE "
            "(CNN training step; 'tuned' = passive)"
        )
        result["wait_policy"] = allocator_section(
            args.data_dir, 4 if args.quick else 12, log, env=speedlib.PASSIVE_WAIT
        )
    if "full" in sections:
        log("\n## Full WikiQA training of the CNN (neurank/configs/wikiqa.yaml)")
        result["full_run"] = full_run_section(args.data_dir, args.full_runs.split(","), 2 if args.quick else 10, log)
        tables.append(
            (
                "Full WikiQA training run",
                speedlib.markdown_table(
                    result["full_run"],
                    [
                        "allocator",
                        "wall_seconds",
                        "prepare_seconds",
                        "loop_seconds",
                        "seconds_to_best",
                        "best_epoch",
                        "best_dev_ap",
                        "peak_mib",
                    ],
                    {
                        "wall_seconds": ".0f",
                        "prepare_seconds": ".0f",
                        "loop_seconds": ".0f",
                        "seconds_to_best": ".0f",
                        "best_epoch": "d",
                        "best_dev_ap": ".4f",
                        "peak_mib": ",.0f",
                    },
                ),
            )
        )
    result["seconds"] = time.perf_counter() - started
    result["machine"]["load_average_end"] = speedlib.machine()["load_average"]
    speedlib.write_json(args.output, result)
    print()
    for title, table in tables:
        print(f"### {title}\n\n{table}\n")
    log(f"{result['seconds']:.0f} s in all; JSON in {args.output}")


if __name__ == "__main__":
    main()
