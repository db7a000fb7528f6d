"""An experiment: train a configuration with several seeds, re-rank the test split with each best-on-dev model, and
report mean ± standard deviation next to BM25, with paired significance tests.

Model selection only ever reads the dev split; test is scored once per seed, after training. `neurank experiment`
and `make demo` call `run_experiment`; its table goes into the README.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neurank.collections import ANSWER_SELECTION, ScoredDoc
from neurank.collections.textio import atomic_write
from neurank.collections.trec import write_run
from neurank.config import ExperimentConfig
from neurank.data.prepare import PreparedData, prepare_data
from neurank.evaluation import compare_values, evaluate, evaluate_per_query
from neurank.inference.reranker import Reranker
from neurank.retrieval import bm25_run
from neurank.training import train


@dataclass
class ExperimentResult:
    collection: str
    split: str
    model: str
    measures: list[str]
    seeds: list[int]
    bm25: dict[str, float]
    per_seed: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    p_ttest: dict[str, float]
    p_randomisation: dict[str, float]
    train_seconds: list[float]
    best_epochs: list[int]
    queries: int
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """BM25 and the model (mean ± std over seeds), with p-values of the paired tests against BM25."""
        head = "| run | " + " | ".join(self.measures) + " |"
        lines = [head, "|---|" + "---:|" * len(self.measures)]
        lines.append("| BM25 | " + " | ".join(f"{self.bm25[m]:.4f}" for m in self.measures) + " |")
        cells = [f"{self.mean[m]:.4f} ± {self.std[m]:.4f}" for m in self.measures]
        seeds = f"{len(self.seeds)} seed" + ("s" if len(self.seeds) > 1 else "")
        lines.append(f"| {self.model} ({seeds}) | " + " | ".join(cells) + " |")
        cells = [f"{self.p_ttest[m]:.3g} / {self.p_randomisation[m]:.3g}" for m in self.measures]
        lines.append("| p vs BM25 (t-test / randomisation) | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


@dataclass
class SeedRun:
    """One seed's trained model, scored on the test split."""

    seed: int
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    train_seconds: float
    best_epoch: int
    pairs_per_second: float
    threads: int = 0
    rerank_seconds: float = 0.0
    finished_at: float | None = None  # Unix time when the result was written

    @property
    def started_at(self) -> float | None:
        """Unix time when training began (the finish less training and re-ranking), None if unknown."""
        return None if self.finished_at is None else self.finished_at - self.train_seconds - self.rerank_seconds


SEED_RESULT = "seed.json"


def load_seed_run(run_dir: Path, config: ExperimentConfig, measures: list[str]) -> SeedRun | None:
    """The finished result `train_and_test` left in `run_dir` for exactly this config and these measures, or None.

    Lets a long benchmark resume after an interruption (or be split over processes) without retraining what is
    done; any difference in the config, the seed or the measures means the seed is trained again."""
    path = Path(run_dir) / SEED_RESULT
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if saved.get("config") != json.loads(json.dumps(config.to_dict())) or saved.get("measures") != list(measures):
        return None
    fields = {f.name for f in dataclasses.fields(SeedRun)}
    result = SeedRun(**{k: v for k, v in saved["result"].items() if k in fields})
    if result.finished_at is None:  # written before the field existed: the file's own time says when
        result.finished_at = path.stat().st_mtime
    return result


def train_and_test(
    config: ExperimentConfig,
    data: PreparedData,
    seed: int,
    run_dir: Path,
    first_stage: list[ScoredDoc],
    measures: list[str],
    progress: bool = False,
    depth: int | None = None,
) -> SeedRun:
    """Train `config` with `seed` into `run_dir`, re-rank the test split's `first_stage` run with the best-on-dev
    checkpoint (top `depth` per query; None: all), write that run and evaluate it."""
    config = with_seed(config, seed)
    started = time.perf_counter()
    outcome = train(config, run_dir, progress=progress, data=data)
    train_seconds = time.perf_counter() - started
    reranker = Reranker.from_checkpoint(run_dir / "best.pt", device=config.train.device)
    split_name = config.data.test_split
    started = time.perf_counter()
    run = reranker.rerank_collection(data.collection, split_name, first_stage, depth=depth)
    rerank_seconds = time.perf_counter() - started
    write_run(run, run_dir / f"{split_name}.run", tag=f"{config.model}-seed{seed}")
    qrels = data.collection.split(split_name).qrels
    result = SeedRun(
        seed,
        evaluate(run, qrels, measures),
        evaluate_per_query(run, qrels, measures),
        train_seconds,
        outcome["best_epoch"],
        len(run) / rerank_seconds,
        torch.get_num_threads(),
        rerank_seconds,
        time.time(),
    )
    with atomic_write(run_dir / SEED_RESULT) as handle:
        json.dump(
            {"config": config.to_dict(), "measures": list(measures), "result": dataclasses.asdict(result)}, handle
        )
    return result


def with_seed(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))


def summarise(runs: list[SeedRun], baseline_per_query: dict[str, dict[str, float]], measures: list[str]):
    """Mean and standard deviation over seeds, and p-values against the baseline of the per-query values
    averaged over seeds. Returns (mean, std, p_ttest, p_randomisation), each a dict per measure."""
    mean, std, p_t, p_r = {}, {}, {}, {}
    for measure in measures:
        values = [r.metrics[measure] for r in runs]
        mean[measure] = statistics.mean(values)
        std[measure] = statistics.stdev(values) if len(values) > 1 else 0.0
        query_ids = set().union(*(r.per_query[measure] for r in runs))
        averaged = {q: statistics.mean(r.per_query[measure].get(q, 0.0) for r in runs) for q in query_ids}
        comparison = compare_values(measure, baseline_per_query[measure], averaged)
        p_t[measure], p_r[measure] = comparison.p_ttest, comparison.p_randomisation
    return mean, std, p_t, p_r


def run_experiment(
    config: ExperimentConfig,
    output_dir: str | Path,
    seeds: list[int],
    measures: list[str] | None = None,
    progress: bool = True,
) -> ExperimentResult:
    """Train `config` once per seed into `output_dir/seed-N`, re-rank the test split, evaluate against BM25.

    The data (vocabulary, BM25 candidates, embeddings) is prepared once, with the first seed; each seed then
    initialises, samples and orders batches on its own.
    """
    output_dir = Path(output_dir)
    data = prepare_data(dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seeds[0])))
    collection = data.collection
    split_name = config.data.test_split
    split = collection.split(split_name)
    measures = measures or list(collection.measures)
    depth = config.data.candidates

    bm25 = bm25_run(collection, split_name, k=depth)
    write_run(bm25, output_dir / f"bm25.{split_name}.run", tag="bm25")
    bm25_values = evaluate_per_query(bm25, split.qrels, measures)

    rerank_depth = None if collection.task == ANSWER_SELECTION else depth
    runs = [
        train_and_test(config, data, seed, output_dir / f"seed-{seed}", bm25, measures, progress, rerank_depth)
        for seed in seeds
    ]
    mean, std, p_t, p_r = summarise(runs, bm25_values, measures)

    result = ExperimentResult(
        collection=collection.name,
        split=split_name,
        model=config.model,
        measures=measures,
        seeds=list(seeds),
        bm25=evaluate(bm25, split.qrels, measures),
        per_seed=[r.metrics for r in runs],
        mean=mean,
        std=std,
        p_ttest=p_t,
        p_randomisation=p_r,
        train_seconds=[r.train_seconds for r in runs],
        best_epochs=[r.best_epoch for r in runs],
        queries=len(bm25_values[measures[0]]),
        notes=list(collection.notes),
    )
    with atomic_write(output_dir / "results.json") as handle:
        json.dump({**dataclasses.asdict(result), "config": config.to_dict()}, handle, indent=2)
    with atomic_write(output_dir / "results.md") as handle:
        handle.write(result.markdown())
    return result
