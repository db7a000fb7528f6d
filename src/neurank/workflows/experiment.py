"""An experiment: train a configuration with several seeds, re-rank the test split with each best-on-dev model, and
report mean ± standard deviation next to BM25, with paired significance tests; or, given several candidate models,
choose one on dev first and test only that one.

    result = run_experiment(load_config("wikiqa"), "exp", seeds=[1, 2, 3])
    choice = select_and_test(load_configs("answer_selection", [], ["knrm", "mvlstm"]), "exp", seeds=[1, 2, 3])

Model selection only ever reads the dev split; test is scored once per seed of the chosen model, after every
candidate has been trained and the choice written down (`--dev-only` stops there). Everything that can be wrong with
a configuration is found first, by `validate`, before tokenising, word2vec or indexing. `neurank experiment` and
`make demo` call these; the table goes into the README.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neurank.collections import ANSWER_SELECTION, Collection, ScoredDoc
from neurank.collections.textio import atomic_write
from neurank.collections.trec import write_run
from neurank.config import ConfigError, ExperimentConfig
from neurank.data.prepare import PreparedData, check_data, check_files, prepare_data, word_piece_folder
from neurank.evaluation import compare_values, evaluate, evaluate_per_query
from neurank.inference.reranker import Reranker
from neurank.retrieval import bm25_run
from neurank.training import train
from neurank.training.checks import check_model, check_settings


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


def validate(config: ExperimentConfig, splits: Sequence[str] | None = None) -> Collection:
    """Check the whole configuration before anything expensive (tokenising, word2vec, BM25 indexing, training).

    In order: the training settings (`check_settings`), the model's options (`check_model`), every file the config
    names (`neurank.data.prepare.check_files`), then the collection, loaded (its splits are known only then), and
    the splits the work needs (`neurank.data.prepare.check_splits`).

    Args:
        splits: the splits needed (default: train and dev, as training needs; add the test split to re-rank it).
    Returns:
        the loaded collection, to hand to `prepare_data(config, collection=...)`.
    """
    check_settings(config)
    check_model(config)
    return check_data(config, splits)


def load_seed_run(run_dir: Path, config: ExperimentConfig, measures: list[str]) -> SeedRun | None:
    """The finished result `train_and_test` left in `run_dir` for this config and these measures, or None.

    Lets a long benchmark resume after an interruption (or be split over processes) without retraining what is
    done. The saved config matches when it differs only in keys that hold their default value (absent on one side:
    a setting added since the seed was trained); any other difference in the config, the seed or the measures means
    the seed is trained again (`neurank.workflows.reuse.seed_differences` says why)."""
    from neurank.workflows.reuse import read_seed_file, seed_differences

    path = Path(run_dir) / SEED_RESULT
    saved = read_seed_file(path)
    if saved is None or seed_differences(saved, config, measures):
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
    outcome = train(config, run_dir, progress=progress, data=data, overwrite=True)  # its own seed folder
    train_seconds = time.perf_counter() - started
    result = score_test_seed(config, data, run_dir, first_stage, measures, depth, train_seconds, outcome["best_epoch"])
    with atomic_write(run_dir / SEED_RESULT) as handle:
        json.dump(
            {"config": config.to_dict(), "measures": list(measures), "result": dataclasses.asdict(result)}, handle
        )
    return result


def score_test_seed(
    config: ExperimentConfig,
    data: PreparedData,
    run_dir: Path,
    first_stage: list[ScoredDoc],
    measures: list[str],
    depth: int | None,
    train_seconds: float,
    best_epoch: int,
) -> SeedRun:
    """Re-rank the test split's `first_stage` run with `run_dir/best.pt` (trained from `config`, whose seed is
    the run's), write it as `run_dir/<test split>.run` and evaluate it."""
    reranker = Reranker.from_checkpoint(run_dir / "best.pt", device=config.train.device)
    split_name = config.data.test_split
    started = time.perf_counter()
    # `first_stage` is bm25_run's, computed here with the settings training used: no need to check it again.
    run = reranker.rerank_collection(data.collection, split_name, first_stage, depth=depth, first_stage="run")
    rerank_seconds = time.perf_counter() - started
    write_run(run, run_dir / f"{split_name}.run", tag=f"{config.model}-seed{config.train.seed}")
    qrels = data.collection.split(split_name).qrels
    return SeedRun(
        config.train.seed,
        evaluate(run, qrels, measures),
        evaluate_per_query(run, qrels, measures),
        train_seconds,
        best_epoch,
        len(run) / rerank_seconds,
        torch.get_num_threads(),
        rerank_seconds,
        time.time(),
    )


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

    The configuration is checked first (`validate`, with the test split). The data (vocabulary, BM25 candidates,
    embeddings) is prepared once, with the first seed; each seed then initialises, samples and orders batches on
    its own.
    """
    output_dir = Path(output_dir)
    collection = validate(config, [config.data.train_split, config.data.dev_split, config.data.test_split])
    data = prepare_data(with_seed(config, seeds[0]), collection=collection)
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
    result = _test_result(config, collection, seeds, measures, bm25, bm25_values, runs)
    with atomic_write(output_dir / "results.json") as handle:
        json.dump({**dataclasses.asdict(result), "config": config.to_dict()}, handle, indent=2)
    with atomic_write(output_dir / "results.md") as handle:
        handle.write(result.markdown())
    return result


def _test_result(
    config: ExperimentConfig,
    collection: Collection,
    seeds: list[int],
    measures: list[str],
    bm25: list[ScoredDoc],
    bm25_values: dict[str, dict[str, float]],
    runs: list[SeedRun],
) -> ExperimentResult:
    split = collection.split(config.data.test_split)
    mean, std, p_t, p_r = summarise(runs, bm25_values, measures)
    return ExperimentResult(
        collection=collection.name,
        split=config.data.test_split,
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


@dataclass
class DevSeed:
    """One seed of a candidate model, trained and scored on dev only.

    Attributes:
        value: the dev value of what its best.pt ranks with: the fused scores when training chose a fusion weight
            (`train.fusion`), else the model's own.
        unfused: the dev value of the model's own scores at its best epoch.
        ranks_with: "fused" or "model".
    """

    seed: int
    value: float
    unfused: float
    ranks_with: str
    best_epoch: int
    train_seconds: float


@dataclass
class Candidate:
    """A candidate model's seeds on dev, and their mean and standard deviation."""

    model: str
    metric: str
    seeds: list[DevSeed]
    mean: float = 0.0
    std: float = 0.0
    best_seed: int = 0  # the seed with the best dev value (the first of equals)

    def __post_init__(self):
        values = [s.value for s in self.seeds]
        self.mean = statistics.mean(values)
        self.std = statistics.stdev(values) if len(values) > 1 else 0.0
        self.best_seed = max(self.seeds, key=lambda s: s.value).seed


@dataclass
class Selection:
    """Candidates compared on dev, the one chosen, and (unless stopped before test) its test result.

    Attributes:
        chosen: the model with the best mean dev value over its seeds (the first listed of equals).
        test: the chosen model's seeds on test against BM25; None with `dev_only`.
        best_run: the test run of the chosen model's best-dev seed (`best.<test split>.run`); None with `dev_only`.
    """

    collection: str
    dev_split: str
    test_split: str
    metric: str
    seeds: list[int]
    candidates: list[Candidate]
    chosen: str
    test: ExperimentResult | None = None
    best_run: str | None = None
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The dev table of every candidate, then the chosen model's test table (or why there is none)."""
        fused = any(s.ranks_with == "fused" for c in self.candidates for s in c.seeds)
        lines = [
            f"## Dev: {self.collection} {self.dev_split}, {self.metric}, seeds {self.seeds}",
            "",
            f"| model | dev {self.metric} | per seed | best seed |" + (" model alone |" if fused else ""),
            "|---|---:|---|---:|" + ("---:|" if fused else ""),
        ]
        for candidate in sorted(self.candidates, key=lambda c: -c.mean):
            name = f"**{candidate.model}** (chosen)" if candidate.model == self.chosen else candidate.model
            per_seed = ", ".join(f"{s.value:.4f}" for s in candidate.seeds)
            row = f"| {name} | {candidate.mean:.4f} ± {candidate.std:.4f} | {per_seed} | {candidate.best_seed} |"
            if fused:
                row += f" {statistics.mean(s.unfused for s in candidate.seeds):.4f} |"
            lines.append(row)
        lines.append("")
        if fused:
            lines += [
                f"Dev {self.metric} is that of what each checkpoint ranks with: the model's scores fused with the "
                "first stage (weight chosen on dev), where training chose a weight; 'model alone' is the mean without.",
                "",
            ]
        lines += [f"## Test: {self.chosen} on {self.collection} {self.test_split}", ""]
        if self.test is None:
            lines.append("Not scored: the experiment stopped after choosing on dev (--dev-only).")
        else:
            lines.append(self.test.markdown())
            lines.append(f"Run of the best-dev seed: {self.best_run}")
        return "\n".join(lines) + "\n"


def select_and_test(
    configs: Mapping[str, ExperimentConfig],
    output_dir: str | Path,
    seeds: list[int],
    measures: list[str] | None = None,
    progress: bool = True,
    dev_only: bool = False,
    log: Callable[[str], None] | None = None,
) -> Selection:
    """Train every candidate with every seed, choose the model with the best mean dev value, and only then score
    test with the chosen model's seeds.

    Every config is checked before anything is prepared (`validate`; the test split too, unless `dev_only`). The
    candidates share one collection and data settings, so they are compared on the same dev queries and
    candidates; data is prepared once (per word-vector settings) with the first seed, as `run_experiment` does.
    Writes `output_dir/MODEL/seed-N/` (checkpoints; `<test split>.run` for the chosen model's seeds), and
    `results.json` and `results.md` with the dev table, as soon as the choice is made and again with the test
    result. The test part writes `bm25.<test split>.run` and `best.<test split>.run`, the chosen model's run of
    its best-dev seed. With `dev_only`, the test split is never scored.

    Args:
        configs: ``{model name: its config}`` (`neurank.config.load_configs`).
        measures: test measures (default: the collection's); dev uses `train.metric` (default: the collection's
            primary measure).
        log: called with a line per trained seed (None: quiet).
    Returns:
        the `Selection`.
    """
    if not configs:
        raise ConfigError("no candidate models given")
    output_dir = Path(output_dir)
    first = next(iter(configs.values()))
    differing = [name for name, config in configs.items() if config.data != first.data]
    if differing:
        raise ConfigError(
            f"candidate {differing[0]!r}: its data settings differ from {next(iter(configs))!r}'s; candidates are "
            "compared on the same dev queries and candidates, so they must share the data section"
        )
    metrics = {config.train.metric for config in configs.values()}
    if len(metrics) > 1:
        raise ConfigError(
            f"train.metric: the candidates are chosen on one dev measure, found {sorted(map(str, metrics))}"
        )
    # `validate`'s order over all the candidates: settings and models, files, then the collection and its splits.
    for config in configs.values():
        check_settings(config)
        check_model(config)
    for config in {c.embeddings: c for c in configs.values() if c.embeddings != first.embeddings}.values():
        if word_piece_folder(config) is None:  # a transformer reads no word vectors
            check_files(config)
    splits = [first.data.train_split, first.data.dev_split] + ([] if dev_only else [first.data.test_split])
    collection = check_data(first, splits)

    prepared: dict = {}

    def data_for(config: ExperimentConfig) -> PreparedData:
        # Candidates share prepared data when they read the same ids: a transformer's word pieces are not the word
        # vocabulary, so its folder is part of the key.
        key = (config.embeddings, word_piece_folder(config))
        if key not in prepared:
            prepared[key] = prepare_data(with_seed(config, seeds[0]), collection=collection)
        return prepared[key]

    candidates = []
    for name, config in configs.items():
        trained = []
        for seed in seeds:
            started = time.perf_counter()
            outcome = train(  # the experiment's own seed folder: a rerun replaces it
                with_seed(config, seed),
                output_dir / name / f"seed-{seed}",
                progress=progress,
                data=data_for(config),
                overwrite=True,
            )
            trained.append(_dev_seed(seed, outcome, time.perf_counter() - started))
            if log is not None:
                last = trained[-1]
                log(
                    f"{name} seed {seed}: dev {outcome['metric']} {last.value:.4f} ({last.ranks_with}), "
                    f"best epoch {last.best_epoch}, {last.train_seconds:.0f} s"
                )
        candidates.append(Candidate(name, outcome["metric"], trained))
    chosen = max(candidates, key=lambda c: c.mean)  # the first listed of equals
    selection = Selection(
        collection=collection.name,
        dev_split=first.data.dev_split,
        test_split=first.data.test_split,
        metric=chosen.metric,
        seeds=list(seeds),
        candidates=candidates,
        chosen=chosen.model,
        notes=list(collection.notes),
    )
    _write_selection(selection, configs, output_dir)
    if dev_only:
        return selection

    # Only now, with the choice written down, is the test split read.
    config = configs[chosen.model]
    data = data_for(config)
    split_name = config.data.test_split
    measures = measures or list(collection.measures)
    depth = config.data.candidates
    bm25 = bm25_run(collection, split_name, k=depth)
    write_run(bm25, output_dir / f"bm25.{split_name}.run", tag="bm25")
    bm25_values = evaluate_per_query(bm25, collection.split(split_name).qrels, measures)
    rerank_depth = None if collection.task == ANSWER_SELECTION else depth
    runs = [
        score_test_seed(
            with_seed(config, dev.seed),
            data,
            output_dir / chosen.model / f"seed-{dev.seed}",
            bm25,
            measures,
            rerank_depth,
            dev.train_seconds,
            dev.best_epoch,
        )
        for dev in chosen.seeds
    ]
    selection.test = _test_result(config, collection, list(seeds), measures, bm25, bm25_values, runs)
    best_run = output_dir / f"best.{split_name}.run"
    source = output_dir / chosen.model / f"seed-{chosen.best_seed}" / f"{split_name}.run"
    with atomic_write(best_run) as handle:
        handle.write(source.read_text(encoding="utf-8"))
    selection.best_run = str(best_run)
    _write_selection(selection, configs, output_dir)
    return selection


def _dev_seed(seed: int, outcome: dict, seconds: float) -> DevSeed:
    """A seed's dev values from what `train` returned: what best.pt ranks with, and the model alone."""
    fusion = outcome.get("fusion")
    unfused = float(outcome["best_metric"])
    if fusion is not None:
        return DevSeed(seed, float(fusion["value"]), unfused, "fused", outcome["best_epoch"], seconds)
    return DevSeed(seed, unfused, unfused, "model", outcome["best_epoch"], seconds)


def _write_selection(selection: Selection, configs: Mapping[str, ExperimentConfig], output_dir: Path) -> None:
    with atomic_write(output_dir / "results.json") as handle:
        json.dump(
            {**dataclasses.asdict(selection), "configs": {name: c.to_dict() for name, c in configs.items()}},
            handle,
            indent=2,
        )
    with atomic_write(output_dir / "results.md") as handle:
        handle.write(selection.markdown())
