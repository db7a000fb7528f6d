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

from neurank.collections import ANSWER_SELECTION
from neurank.collections.textio import atomic_write
from neurank.collections.trec import write_run
from neurank.config import ExperimentConfig
from neurank.evaluation import compare_values, evaluate, evaluate_per_query
from neurank.reranker import Reranker
from neurank.retrieval import bm25_run
from neurank.training import prepare_data, train


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
        lines.append(f"| {self.model} ({len(self.seeds)} seeds) | " + " | ".join(cells) + " |")
        cells = [f"{self.p_ttest[m]:.3g} / {self.p_randomisation[m]:.3g}" for m in self.measures]
        lines.append("| p vs BM25 (t-test / randomisation) | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


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

    per_seed, per_seed_values, seconds, best_epochs = [], [], [], []
    for seed in seeds:
        seed_config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
        seed_dir = output_dir / f"seed-{seed}"
        started = time.perf_counter()
        result = train(seed_config, seed_dir, progress=progress, data=data)
        seconds.append(time.perf_counter() - started)
        best_epochs.append(result["best_epoch"])
        reranker = Reranker.from_checkpoint(seed_dir / "best.pt", device=config.train.device)
        run = reranker.rerank_collection(collection, split_name, bm25, depth=None if collection.task == ANSWER_SELECTION else depth)
        write_run(run, seed_dir / f"{split_name}.run", tag=f"{config.model}-seed{seed}")
        per_seed.append(evaluate(run, split.qrels, measures))
        per_seed_values.append(evaluate_per_query(run, split.qrels, measures))

    mean, std, p_t, p_r = {}, {}, {}, {}
    for measure in measures:
        values = [r[measure] for r in per_seed]
        mean[measure] = statistics.mean(values)
        std[measure] = statistics.stdev(values) if len(values) > 1 else 0.0
        # Per-query values averaged over seeds, tested against BM25's per-query values.
        query_ids = set().union(*(v[measure] for v in per_seed_values))
        averaged = {q: statistics.mean(v[measure].get(q, 0.0) for v in per_seed_values) for q in query_ids}
        comparison = compare_values(measure, bm25_values[measure], averaged)
        p_t[measure], p_r[measure] = comparison.p_ttest, comparison.p_randomisation

    result = ExperimentResult(
        collection=collection.name,
        split=split_name,
        model=config.model,
        measures=measures,
        seeds=list(seeds),
        bm25=evaluate(bm25, split.qrels, measures),
        per_seed=per_seed,
        mean=mean,
        std=std,
        p_ttest=p_t,
        p_randomisation=p_r,
        train_seconds=seconds,
        best_epochs=best_epochs,
        queries=len(bm25_values[measures[0]]),
        notes=list(collection.notes),
    )
    with atomic_write(output_dir / "results.json") as handle:
        json.dump({**dataclasses.asdict(result), "config": config.to_dict()}, handle, indent=2)
    with atomic_write(output_dir / "results.md") as handle:
        handle.write(result.markdown())
    return result
