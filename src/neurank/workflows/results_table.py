"""The results table: every registered model trained by the same loop on the same data, compared with BM25.

    neurank benchmark benchmark --output docs/results.md [--quick]

For each collection of the benchmark config, every model is trained with each seed (selected on dev), the test
split is re-ranked with each seed's best model, and the table reports mean ± standard deviation over seeds,
paired significance against BM25 on the per-query values averaged over seeds, the encoder (a pretrained
transformer's folder, or a word model's word vectors) and parameter count, the training time per seed and the
re-ranking throughput. A table with both word models and pretrained-transformer models (`WORD_PIECE_MODELS`) also
gives every row's p-value against the best word model. Every number in the written file comes out of this run.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from neurank.collections import ANSWER_SELECTION
from neurank.collections.textio import atomic_write, marked_by
from neurank.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    apply_overrides,
    build_section,
    config_from_dict,
    model_entries,
    resolve_config,
    select_model,
    shipped_config,
)
from neurank.data.prepare import (
    WORD_PIECE_MODELS,
    PreparedData,
    load_configured_collection,
    prepare_data,
    word_piece_folder,
)
from neurank.evaluation import evaluate, evaluate_per_query
from neurank.inference.checkpoint import load_ranker
from neurank.models import model_aliases, model_names, resolve_model_name
from neurank.retrieval import bm25_run
from neurank.workflows.experiment import (
    SEED_RESULT,
    SeedRun,
    check_model,
    check_settings,
    load_seed_run,
    summarise,
    train_and_test,
    with_seed,
)
from neurank.workflows.reuse import add_to_seed_result, read_seed_file, why_retrained

# The data options one row of a table may set for itself (`data:` under a collection): limits and text processing,
# never what the rows are compared on (the collection, its splits, BM25's candidates).
ROW_DATA_KEYS = (
    "max_query_len",
    "max_doc_len",
    "max_train_queries",
    "min_relevance",
    "min_freq",
    "max_vocab",
    "stopwords",
    "stemmer",
)

# What the encoder column says for a transformer model built without `hf_model` (`neurank.models.cross_encoder`).
TINY_ENCODER = "tiny random BERT"


@dataclass
class ModelResult:
    model: str
    per_seed: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    p_ttest: dict[str, float]
    p_randomisation: dict[str, float]
    train_seconds: float
    pairs_per_second: float
    best_epochs: list[int]
    threads: list[int] = field(default_factory=list)
    compute_seconds: float = 0.0
    started_at: float | None = None  # Unix times: the first seed's start and the last seed's finish
    finished_at: float | None = None
    seeds: list[int] = field(default_factory=list)
    encoder: str = ""  # the transformer's folder name, TINY_ENCODER, or a word model's embeddings.source
    params: int | None = None  # parameters in all and those trained; None: seeds saved before they were counted
    trainable_params: int | None = None
    # The randomisation test's p on the first measure against the collection's best word model (None: not compared).
    p_best_classic: float | None = None
    # The same against each row the benchmark config names in `compare_with`, by that row's name.
    p_vs: dict[str, float] = field(default_factory=dict)


@dataclass
class CollectionResult:
    collection: str
    split: str
    queries: int
    measures: list[str]
    bm25: dict[str, float]
    models: list[ModelResult] = field(default_factory=list)
    # The best word model (not in WORD_PIECE_MODELS) on the first measure, when the table also has a transformer.
    best_classic: str | None = None
    # The rows of `compare_with` that this table has, each the baseline of a p-value column.
    compared: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BenchmarkPlan:
    """What to run: a base experiment config per collection, per-model options, seeds and measures."""

    collections: dict[str, ExperimentConfig]
    measures: dict[str, list[str]]
    models: dict[str, dict]
    seeds: list[int]
    # Per collection, options that replace a model's own there (chosen on that collection's dev split).
    collection_models: dict[str, dict[str, dict]] = field(default_factory=dict)
    # Per collection, training options (the `train` section) that replace the collection's for one model there.
    collection_train: dict[str, dict[str, dict]] = field(default_factory=dict)
    # Training options that win over a model's own (--quick's: a smoke test stays short whatever a model sets).
    final_train: dict = field(default_factory=dict)
    # Per collection, the options every model gets on top of its own: the task config's `model_config` when it has
    # a `models:` section; else (a single-model task config) only its `use_first_stage_score`.
    shared_options: dict[str, dict] = field(default_factory=dict)
    # Per collection whose task config has a `models:` section, that config's file name (said under its table).
    task_configs: dict[str, str] = field(default_factory=dict)
    # Seeds of some models in place of `seeds` (the benchmark's `model_seeds`: fewer for a slow model).
    model_seeds: dict[str, list[int]] = field(default_factory=dict)
    # Rows every other row is tested against, each in a column of its own (the benchmark's `compare_with`).
    compare_with: list[str] = field(default_factory=list)
    # Per collection that trains only some of the benchmark's rows (its `rows:`), those rows.
    collection_rows: dict[str, list[str]] = field(default_factory=dict)
    # Per collection, data options (the `data` section) that replace the collection's for one row there.
    collection_data: dict[str, dict[str, dict]] = field(default_factory=dict)
    # Data options that win over a row's own (--quick's and --data-dir's), as `final_train` for training.
    final_data: dict = field(default_factory=dict)
    # Per collection, seeds of some rows in place of `model_seeds` (a collection's own `model_seeds:`).
    collection_model_seeds: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def rows(self, collection: str) -> list[str]:
        """The rows a collection's table trains, in the benchmark's order: its `rows:` (all when it has none)."""
        only = self.collection_rows.get(collection)
        return [m for m in self.models if only is None or m in only]

    def data_options(self, collection: str, model: str) -> dict:
        """The data options a collection gives one row in place of its own (empty: the collection's)."""
        return dict(self.collection_data.get(collection, {}).get(model, {}))

    def seeds_for(self, model: str, collection: str | None = None) -> list[int]:
        """The seeds `model` is trained with (on `collection`): the collection's own `model_seeds` for it, else the
        benchmark's, else `seeds`."""
        own = self.collection_model_seeds.get(collection, {}) if collection is not None else {}
        return list(own.get(model, self.model_seeds.get(model, self.seeds)))

    def model_options(self, collection: str, model: str) -> dict:
        """A model's options on a collection: its own, with the collection's replacements (a row of another name
        than its model's keeps ``model: REGISTERED`` among them)."""
        return {**self.models[model], **self.collection_models.get(collection, {}).get(model, {})}

    def registered_model(self, collection: str, model: str) -> str:
        """The registered model (or alias) a row of the table trains on a collection: `model` itself, or the
        ``model:`` of the row's entry under the collection's ``models:`` (``zero_shot: {model: pooled_cosine}``)."""
        return self.model_options(collection, model).get("model", model)

    def train_options(self, collection: str, model: str) -> dict:
        """The training options a collection gives one model in place of its own (empty: the collection's)."""
        return dict(self.collection_train.get(collection, {}).get(model, {}))

    def experiment_config(self, collection: str, model: str) -> ExperimentConfig:
        """The config one model (a row of the table) is trained with on one collection: the collection's config
        with ``model`` the row's registered model (`registered_model`), the options every model gets there
        (`shared_options`) under the row's own options (a choice for one model is more specific than a default for
        all, as `neurank train` merges a task config's entry), and the collection's training options for that row."""
        base = self.collections[collection]
        train = base.train
        replaced = self.train_options(collection, model)
        if replaced:
            train = build_section(
                TrainConfig,
                {**dataclasses.asdict(base.train), **replaced, **self.final_train},
                f"{collection}: train: {model}",
            )
        shared = self.shared_options.get(collection)
        if shared is None:
            shared = {"use_first_stage_score": base.model_config.get("use_first_stage_score", False)}
        data = base.data
        own_data = self.data_options(collection, model)
        if own_data:
            data = build_section(
                DataConfig,
                {**dataclasses.asdict(base.data), **own_data, **self.final_data},
                f"{collection}: data: {model}",
            )
        options = self.model_options(collection, model)
        registered = options.pop("model", model)
        return dataclasses.replace(base, model=registered, data=data, train=train, model_config={**shared, **options})


def load_plan(
    path: str | Path,
    quick: bool = False,
    data_dir: str | None = None,
    models: list[str] | None = None,
    collections: list[str] | None = None,
    seeds: list[int] | None = None,
) -> BenchmarkPlan:
    """Read a benchmark YAML: ``collections: {name: {config, measures}}``, ``models`` (a list of names, or
    ``{name: options}``), ``seeds``, ``model_seeds: {name: [seeds]}`` (some models' seeds in place of ``seeds``),
    and ``quick: {seeds, overrides}`` applied with `quick`. A collection entry may carry its own ``overrides``
    (dotted ``key=value``, applied before the quick ones) to size that collection's training for the table, its own
    ``models: {name: options}``, ``train: {name: training options}`` and ``data: {name: data options}`` (one row's
    data limits in place of the collection's: a transformer's word pieces beside a word model's words), and
    ``rows: [name, ...]``: the benchmark's models that this collection's table trains (all when absent), and
    ``model_seeds: {name: [seeds]}``, which wins over the benchmark's ``model_seeds`` on that collection.

    Seeds given here (`seeds`: ``--seeds``), or by the quick section, are every model's: ``model_seeds`` then does
    not apply. With `quick`, no model reads a pretrained transformer: ``hf_model`` is dropped from every model's
    options, so each transformer model is a tiny random BERT and the smoke test needs no model folder.

    A collection's task config with a ``models:`` section (answer_selection.yaml, adhoc.yaml) gives every model its
    options and training options from its entry there, as ``model=NAME`` would (`neurank.config.select_model`);
    the collection's ``models`` here replace a model's whole entry, and the benchmark's own ``models`` only name
    the models. A single-model task config (no ``models:`` section) keeps the older rule: a model's options are
    the benchmark's, replaced per collection, with the task config's ``use_first_stage_score``. Either way a
    model's own options win over those every model gets (`BenchmarkPlan.experiment_config`).

    A row of the table may be a registered model under another name, so that one model appears twice with different
    options: ``models: [zero_shot, pooled_cosine]`` with, under every collection's ``models:``, ``zero_shot: {model:
    pooled_cosine, freeze: true}``. The row name is the run directory's, the table's, and what ``model_seeds``,
    `models` (``--models``) and the reuse of finished seeds go by; the row trains its registered model (``model``
    of its config), which is also what says whether it reads a pretrained transformer.

    `path` may be the bare name of a shipped config (``"benchmark"``); a collection's ``config`` is read from beside
    the benchmark file, else as a shipped config's name (``wikiqa.yaml`` or ``wikiqa``)."""
    path = resolve_config(path, "benchmark config")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(raw) - {"collections", "models", "seeds", "model_seeds", "compare_with", "quick"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {sorted(unknown)[0]!r}; valid keys: collections, model_seeds, models, quick, seeds"
        )
    quick_part = raw.get("quick", {}) if quick else {}
    overrides = list(quick_part.get("overrides", [])) + ([f"data.data_dir={data_dir}"] if data_dir else [])
    every_model_seeds = bool(seeds) or "seeds" in quick_part  # --seeds, or quick's: the same for every model
    seeds = list(seeds or quick_part.get("seeds", raw.get("seeds", [1, 2, 3, 4, 5])))
    registered = set(model_names()) | set(model_aliases())  # `cnn` names MatchPyramid, as in a task config
    listed = raw.get("models") or {}
    if isinstance(listed, list):
        listed = dict.fromkeys(listed)
    if not isinstance(listed, dict):
        raise ConfigError(f"{path}: models: expected a list of model names, or a mapping of name to options")
    all_models = {str(m): dict(o or {}) for m, o in listed.items()}
    _check_rows(path, raw.get("collections") or {}, all_models, registered)
    chosen = dict(all_models)
    if models:
        missing = [m for m in models if m not in chosen]
        if missing:
            raise ConfigError(f"{path}: model {missing[0]!r} is not in the benchmark config")
        chosen = {m: chosen[m] for m in models}
    model_seeds = _model_seeds(raw.get("model_seeds"), all_models, path)
    compare_with = raw.get("compare_with") or []
    if not isinstance(compare_with, list) or any(name not in all_models for name in compare_with):
        raise ConfigError(
            f"{path}: compare_with: expected a list of the benchmark's models ({', '.join(all_models)}), "
            f"found {compare_with!r}"
        )
    model_seeds = {} if every_model_seeds else {m: s for m, s in model_seeds.items() if m in chosen}
    entries = dict(raw.get("collections", {}))
    if collections:
        missing = [c for c in collections if c not in entries]
        if missing:
            raise ConfigError(
                f"{path}: collection {missing[0]!r} is not in the benchmark config; it has {', '.join(entries)}"
            )
        entries = {c: entries[c] for c in collections}
    configs: dict[str, ExperimentConfig] = {}
    collection_rows: dict[str, list[str]] = {}
    collection_model_seeds: dict[str, dict[str, list[int]]] = {}
    collection_data: dict[str, dict[str, dict]] = {}
    measures: dict[str, list[str]] = {}
    collection_models: dict[str, dict[str, dict]] = {}
    collection_train: dict[str, dict[str, dict]] = {}
    shared_options: dict[str, dict] = {}
    task_configs: dict[str, str] = {}
    for name, entry in entries.items():
        unknown = set(entry) - {"config", "measures", "overrides", "models", "train", "data", "rows", "model_seeds"}
        if unknown:
            raise ConfigError(
                f"{path}: collection {name!r}: unknown key {sorted(unknown)[0]!r}; "
                "valid keys: config, data, measures, model_seeds, models, overrides, rows, train"
            )
        if not every_model_seeds:
            own_seeds = _model_seeds(entry.get("model_seeds"), all_models, Path(f"{path}: collection {name!r}"))
            collection_model_seeds[name] = {m: seeds_ for m, seeds_ in own_seeds.items() if m in chosen}
        own_models = dict(entry.get("models") or {})
        own_train = dict(entry.get("train") or {})
        own_data = dict(entry.get("data") or {})
        rows = _collection_rows(path, name, entry, all_models)
        here = {m: o for m, o in chosen.items() if rows is None or m in rows}  # this collection's rows to train
        if rows is not None:
            collection_rows[name] = rows
        for part, given in (("options", own_models), ("training options", own_train), ("data options", own_data)):
            if rows is not None:
                idle = [m for m in given if m in all_models and m not in rows]
                if idle:
                    raise ConfigError(
                        f"{path}: collection {name!r} sets {part} of {idle[0]!r}, which its rows: "
                        f"({', '.join(rows)}) does not train; add it there or remove its entry"
                    )
            strangers = [m for m in given if m not in all_models]
            if strangers:
                raise ConfigError(
                    f"{path}: collection {name!r} sets {part} of {strangers[0]!r}, "
                    "which is not in the benchmark's models"
                )
            odd = [m for m, o in given.items() if o is not None and not isinstance(o, dict)]
            if odd:
                raise ConfigError(
                    f"{path}: collection {name!r}: the {part} of {odd[0]!r} must be a mapping of key: value"
                )
        base: dict = {}
        task_source = f"{path}: {name}"
        if "config" in entry:
            task_path = _task_config(path, name, entry["config"])
            base = yaml.safe_load(task_path.read_text(encoding="utf-8")) or {}
            task_source = f"{path}: {name}: {task_path.name}"
        own = list(entry.get("overrides", []))
        values = apply_overrides(base, own + overrides)
        task_entries = model_entries(values, task_source)
        if task_entries:
            with_options = [m for m, options in all_models.items() if options]
            if with_options:
                raise ConfigError(
                    f"{path}: models: {with_options[0]!r} has options here, but the task config of {name!r} has a "
                    "models: section, which holds them; set them there, or under the collection's own `models:`"
                )
            for model in here:
                if model not in task_entries and model not in own_models:
                    raise ConfigError(
                        f"{task_source}: models: no entry for model {model!r}; the config has options for "
                        f"{', '.join(task_entries)}"
                    )
            options = {m: dict(own_models[m] or {}) if m in own_models else task_entries[m] for m in here}
            collection_models[name] = {m: {k: v for k, v in o.items() if k != "train"} for m, o in options.items()}
            collection_train[name] = {
                m: {**dict(o.get("train") or {}), **dict(own_train.get(m) or {})} for m, o in options.items()
            }
            collection_train[name] = {m: t for m, t in collection_train[name].items() if t}
            shared_options[name] = dict(values.get("model_config") or {})
            task_configs[name] = Path(entry["config"]).name
            configs[name] = config_from_dict(
                select_model(values, task_source, apply_overrides({}, own + overrides)), task_source
            )
        else:
            collection_models[name] = {m: dict(o or {}) for m, o in own_models.items() if m in here}
            collection_train[name] = {m: dict(o or {}) for m, o in own_train.items() if m in here}
            configs[name] = config_from_dict(values, task_source)
        for model, given in own_data.items():
            odd = sorted(set(given or {}) - set(ROW_DATA_KEYS))
            if odd:
                raise ConfigError(
                    f"{path}: collection {name!r}: data: {model}: {odd[0]!r} cannot differ between the rows of one "
                    f"table (the collection, its splits and BM25's candidates are the table's); a row may set "
                    f"{', '.join(ROW_DATA_KEYS)}"
                )
        collection_data[name] = {m: dict(o) for m, o in own_data.items() if m in here and o}
        measures[name] = list(entry.get("measures", []))
    quick_train = apply_overrides({}, list(quick_part.get("overrides", []))).get("train", {})
    final_data = apply_overrides({}, overrides).get("data", {})  # quick's data limits and --data-dir
    if quick:  # a smoke test in CI time, without the model folders: every transformer is the tiny random one
        chosen = {m: _without_hf_model(o) for m, o in chosen.items()}
        collection_models = {c: {m: _without_hf_model(o) for m, o in g.items()} for c, g in collection_models.items()}
        shared_options = {c: _without_hf_model(o) for c, o in shared_options.items()}
        configs = {
            c: dataclasses.replace(config, model_config=_without_hf_model(config.model_config))
            for c, config in configs.items()
        }
    plan = BenchmarkPlan(
        configs,
        measures,
        chosen,
        seeds,
        collection_models,
        collection_train,
        quick_train,
        shared_options,
        task_configs,
        model_seeds,
        [str(name) for name in compare_with],
        collection_rows,
        collection_data,
        final_data,
        collection_model_seeds,
    )
    for name, own_train in collection_train.items():
        for model in own_train:
            try:
                built = plan.experiment_config(name, model)  # a misspelt or mistyped option fails here, not hours in
            except ConfigError as error:
                raise ConfigError(f"{path}: {error}") from None
            own_train[model] = {key: getattr(built.train, key) for key in own_train[model]}  # "3e-4" read as 0.0003
    for name, own_data in collection_data.items():
        for model in own_data:
            try:
                built = plan.experiment_config(name, model)
            except ConfigError as error:
                raise ConfigError(f"{path}: {error}") from None
            own_data[model] = {key: getattr(built.data, key) for key in own_data[model]}
    return plan


def _trains_row(entry, name: str) -> bool:
    """Whether a collection entry's table trains the row `name`: its ``rows:`` names it, or it has none (a bad
    ``rows:`` is refused later, by `_collection_rows`)."""
    rows = entry.get("rows") if isinstance(entry, dict) else None
    return not isinstance(rows, list) or name in rows


def _collection_rows(path: Path, name: str, entry: dict, models: dict[str, dict]) -> list[str] | None:
    """A collection's ``rows:``, checked: a list of the benchmark's models; None when it has none (all of them)."""
    if "rows" not in entry:
        return None
    rows = entry["rows"]
    if not isinstance(rows, list) or not rows or any(not isinstance(r, str) or r not in models for r in rows):
        raise ConfigError(
            f"{path}: collection {name!r}: rows: expected a list of the benchmark's models ({', '.join(models)}), "
            f"found {rows!r}"
        )
    return list(rows)


def _check_rows(path: Path, collections: dict, models: dict[str, dict], registered: set[str]) -> None:
    """Check the benchmark's rows (`models`): each a registered model or alias, or a row name that every collection
    of the benchmark defines under its ``models:`` with ``model: REGISTERED`` (the same model in each), as
    ``zero_shot: {model: pooled_cosine, freeze: true}``; and every such ``model:`` a registered model's, under a key
    that is not one."""
    defined: dict[str, dict[str, str]] = {}  # row name -> {collection: its registered model there}
    for collection, entry in collections.items():
        own = entry.get("models") if isinstance(entry, dict) else None
        for key, options in (own or {}).items() if isinstance(own, dict) else ():
            if not isinstance(options, dict) or "model" not in options:
                continue
            where = f"{path}: collection {collection!r}: models: {key}: model"
            if key in registered:
                raise ConfigError(
                    f"{where}: {key!r} is itself a registered model; `model:` gives a row of another name its "
                    f"model (e.g. zero_shot: {{model: pooled_cosine}})"
                )
            given = options["model"]
            if not isinstance(given, str) or given not in registered:
                raise ConfigError(
                    f"{where}: expected a registered model, found {given!r}; "
                    f"registered: {', '.join(sorted(registered))}"
                )
            defined.setdefault(str(key), {})[collection] = resolve_model_name(given)
    for name, options in models.items():
        if "model" in options:
            raise ConfigError(
                f"{path}: models: {name}: `model:` goes under a collection's `models:`, in the entry of the row "
                f"(collections: NAME: models: {name}: {{model: REGISTERED, ...}})"
            )
        if name in registered:
            continue
        rows_in = defined.get(name)
        if not rows_in:
            raise ConfigError(
                f"{path}: unknown model {name!r}; registered: {', '.join(sorted(registered))} (a row of another "
                f"name needs `{name}: {{model: REGISTERED, ...}}` under every collection's `models:`)"
            )
        lacking = [c for c, entry in collections.items() if c not in rows_in and _trains_row(entry, name)]
        if lacking:
            raise ConfigError(
                f"{path}: collection {lacking[0]!r}: models: no entry {name!r} with `model: REGISTERED`; the row "
                f"{name!r} (defined so under {', '.join(map(repr, rows_in))}) runs on every collection whose "
                "rows: name it (all, when a collection has no rows:)"
            )
        kinds = sorted(set(rows_in.values()))
        if len(kinds) > 1:
            first, other = (next(c for c, m in rows_in.items() if m == kind) for kind in kinds[:2])
            raise ConfigError(
                f"{path}: models: {name}: the row is {kinds[0]!r} under collection {first!r} but {kinds[1]!r} under "
                f"{other!r}; a row is one model on every collection (give the other model a row of its own)"
            )


def _without_hf_model(options: dict) -> dict:
    return {key: value for key, value in options.items() if key != "hf_model"}


def _model_seeds(given, models: dict[str, dict], path: Path) -> dict[str, list[int]]:
    """The benchmark's ``model_seeds``, checked: models of the benchmark, each with a list of integer seeds."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: model_seeds: expected a mapping of model name to a list of seeds, found {given!r}")
    out = {}
    for model, seeds in given.items():
        if model not in models:
            raise ConfigError(f"{path}: model_seeds: {model!r} is not in the benchmark's models ({', '.join(models)})")
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        ):
            raise ConfigError(f"{path}: model_seeds: {model}: expected a list of integer seeds, found {seeds!r}")
        out[str(model)] = list(seeds)
    return out


def _task_config(plan_path: Path, collection: str, config: str) -> Path:
    """A benchmark entry's task config: beside the benchmark file (as the shipped benchmark.yaml has it), else the
    shipped config of that name, with or without ``.yaml`` (so a user's benchmark file anywhere can say ``wikiqa``)."""
    beside = plan_path.parent / config
    if beside.is_file():
        return beside
    stem = config[: -len(".yaml")] if config.endswith(".yaml") else config
    shipped = shipped_config(stem)
    if shipped is None:
        raise FileNotFoundError(
            f"{plan_path}: collection {collection!r}: config {config!r} not found beside it, nor shipped"
        )
    return shipped


def run_benchmark(
    plan: BenchmarkPlan, output_dir: str | Path, progress: bool = False, log=print, reuse: bool = True
) -> list[CollectionResult]:
    """Train and evaluate every model of `plan` on every collection; checkpoints and runs go to `output_dir`.

    With `reuse`, a seed whose run directory already holds its finished result for the same config (`seed.json`)
    is read back instead of trained again, so an interrupted run resumes where it stopped and the work can be
    split over processes (``--models``) and then gathered into one table by a last run over every model.

    Every model's settings and options are checked on every collection before the first one is trained; files and
    splits are checked when a collection's data is prepared (`neurank.data.prepare.check_data`).

    A trained seed's parameter count goes into its `seed.json` beside its result (a seed saved before neurank
    counted them is still reused, its count left unknown). When a collection's table has both word models and
    transformer models, every model is compared with the best word model on the first measure
    (`CollectionResult.best_classic`, `ModelResult.p_best_classic`)."""
    output_dir = Path(output_dir)
    for name in plan.collections:
        for model_name in plan.rows(name):
            config = plan.experiment_config(name, model_name)
            try:
                check_settings(config)
                check_model(config)
            except ConfigError as error:
                if config.model == model_name:
                    raise
                # A row of another name: its message names the registered model alone.
                raise ConfigError(f"collection {name!r}: row {model_name!r} ({config.model}): {error}") from None
    results = []
    for name, base in plan.collections.items():
        # Prepared only when a seed has to be trained: the word vocabulary, examples and vectors (from `base`, as
        # every word model shares them), and each transformer folder's word pieces (`None`: the word data).
        prepared: dict[tuple[Path | None, DataConfig], PreparedData] = {}
        collection = load_configured_collection(base)
        split = collection.split(base.data.test_split)
        measures = plan.measures[name] or list(collection.measures)
        depth = None if collection.task == ANSWER_SELECTION else base.data.candidates
        bm25 = bm25_run(collection, base.data.test_split, k=base.data.candidates)
        bm25_values = evaluate_per_query(bm25, split.qrels, measures)
        result = CollectionResult(
            name, base.data.test_split, len(bm25_values[measures[0]]), measures, evaluate(bm25, split.qrels, measures)
        )
        runs_of: dict[str, list[SeedRun]] = {}
        registered: dict[str, str] = {}  # row name -> the registered model it trains (`config.model`)
        for model_name in plan.rows(name):
            config = plan.experiment_config(name, model_name)
            registered[model_name] = config.model
            runs = runs_of[model_name] = []
            counts = []
            for seed in plan.seeds_for(model_name, name):
                run_dir = output_dir / name / model_name / f"seed-{seed}"
                done = load_seed_run(run_dir, with_seed(config, seed), measures) if reuse else None
                if done is not None:
                    runs.append(done)
                    counts.append(_saved_parameters(run_dir / SEED_RESULT))
                else:
                    why = why_retrained(run_dir / SEED_RESULT, with_seed(config, seed), measures) if reuse else None
                    if why:
                        log(f"{name} {model_name} seed {seed}: trained again; its earlier result had {why}")
                    data = _data_for(config, base, prepared)
                    runs.append(train_and_test(config, data, seed, run_dir, bm25, measures, progress, depth))
                    counts.append(_count_parameters(run_dir))
                log(
                    f"{name} {model_name} seed {seed}: "
                    + ", ".join(f"{m} {runs[-1].metrics[m]:.4f}" for m in measures)
                    + f" ({runs[-1].train_seconds:.0f} s{', earlier run' if done else ''})"
                )
            mean, std, p_t, p_r = summarise(runs, bm25_values, measures)
            total, trainable = next((c for c in counts if c is not None), (None, None))
            result.models.append(
                ModelResult(
                    model_name,
                    [r.metrics for r in runs],
                    mean,
                    std,
                    p_t,
                    p_r,
                    statistics.mean(r.train_seconds for r in runs),
                    statistics.mean(r.pairs_per_second for r in runs),
                    [r.best_epoch for r in runs],
                    [r.threads for r in runs],
                    sum(r.train_seconds + r.rerank_seconds for r in runs),
                    _earliest(r.started_at for r in runs),
                    _latest(r.finished_at for r in runs),
                    [r.seed for r in runs],
                    encoder_name(config),
                    total,
                    trainable,
                )
            )
        _compare_with_best_classic(result, runs_of, registered)
        _compare_with_rows(result, runs_of, plan.compare_with)
        results.append(result)
    return results


def _data_for(config: ExperimentConfig, base: ExperimentConfig, prepared: dict) -> PreparedData:
    """The prepared data `config` trains on, prepared once per collection, kind and data section (see
    `run_benchmark`)."""
    folder = word_piece_folder(config)
    key = (folder, config.data)
    if key not in prepared:
        # The word data from `base` (with the row's data section) without a folder, whichever model the
        # collection's task config starts with.
        words = dataclasses.replace(base, data=config.data, model_config=_without_hf_model(base.model_config))
        prepared[key] = prepare_data(words if folder is None else config)
    data = prepared[key]
    if config.model in WORD_PIECE_MODELS and data.embeddings is not None:
        # A transformer built without a folder (a tiny random BERT over the word vocabulary) reads no word vectors.
        data = dataclasses.replace(data, embeddings=None, embedding_report=None)
    return data


def _count_parameters(run_dir: Path) -> tuple[int, int]:
    """The trained model's parameters (in all, and those trained), from its best.pt; kept in its seed.json."""
    model, _, _ = load_ranker(run_dir / "best.pt")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    add_to_seed_result(run_dir / SEED_RESULT, {"params": total, "trainable_params": trainable})
    return total, trainable


def _saved_parameters(seed_file: Path) -> tuple[int, int] | None:
    result = (read_seed_file(seed_file) or {}).get("result") or {}
    if not isinstance(result.get("params"), int):
        return None  # saved before neurank counted them: left unknown, not a reason to train again
    trainable = result.get("trainable_params")
    return result["params"], trainable if isinstance(trainable, int) else result["params"]


def encoder_name(config: ExperimentConfig) -> str:
    """What a model reads its text with, for the table: a transformer's folder name (`TINY_ENCODER` without one),
    else the word vectors it starts from (`embeddings.source`, a file's name for a path)."""
    if config.model in WORD_PIECE_MODELS:
        hf_model = config.model_config.get("hf_model")
        return Path(hf_model).name if hf_model else TINY_ENCODER
    return Path(config.embeddings.source).name


def _averaged(runs: list[SeedRun], measure: str) -> dict[str, float]:
    """Per-query values averaged over seeds, a query missing from a seed's run counting 0 (as `summarise`)."""
    query_ids = set().union(*(r.per_query[measure] for r in runs))
    return {q: statistics.mean(r.per_query[measure].get(q, 0.0) for r in runs) for q in query_ids}


def _compare_with_best_classic(
    result: CollectionResult, runs_of: dict[str, list[SeedRun]], registered: dict[str, str]
) -> None:
    """Set `best_classic` and every other model's `p_best_classic` when the table has word and transformer models
    (told apart by each row's registered model): the paired randomisation test of `summarise` on the first measure,
    the best word model as the baseline."""
    measure = result.measures[0]
    classic = [m for m in result.models if registered[m.model] not in WORD_PIECE_MODELS]
    if not classic or len(classic) == len(result.models):
        return
    best = max(classic, key=lambda m: m.mean[measure])
    result.best_classic = best.model
    baseline = {measure: _averaged(runs_of[best.model], measure)}
    for model in result.models:
        if model is not best:
            model.p_best_classic = summarise(runs_of[model.model], baseline, [measure])[3][measure]


def _compare_with_rows(result: CollectionResult, runs_of: dict[str, list[SeedRun]], baselines: list[str]) -> None:
    """Every row's p against each row of `baselines` this table trained (`ModelResult.p_vs`), as for the best word
    model: the paired randomisation test of `summarise` on the first measure, per-query values averaged over seeds."""
    measure = result.measures[0]
    for name in baselines:
        if name not in runs_of:
            continue  # not among this run's models (--models)
        result.compared.append(name)
        baseline = {measure: _averaged(runs_of[name], measure)}
        for model in result.models:
            if model.model != name:
                model.p_vs[name] = summarise(runs_of[model.model], baseline, [measure])[3][measure]


def _earliest(times) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if len(known) else None


def _latest(times) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if len(known) else None


def training_span(results: list[CollectionResult]) -> str:
    """When the table's seeds were trained: first start to last finish, in UTC, read from the seeds' results."""
    start = _earliest(m.started_at for r in results for m in r.models)
    end = _latest(m.finished_at for r in results for m in r.models)
    if start is None or end is None:
        return ""
    first, last = (datetime.fromtimestamp(t, timezone.utc) for t in (start, end))
    return (
        f" The seeds were trained and scored between {first:%Y-%m-%d %H:%M} and {last:%Y-%m-%d %H:%M} UTC: "
        f"{(end - start) / 60:.0f} min of wall-clock time from the first seed's start to the last seed's end."
    )


def results_markdown(
    results: list[CollectionResult], plan: BenchmarkPlan, command: str, wall_seconds: float, note: str | None = None
) -> str:
    """`docs/results.md`: one table per collection, with how it was made."""
    compute = sum(m.compute_seconds for r in results for m in r.models)
    threads = sorted({t for r in results for m in r.models for t in m.threads if t}) or [torch.get_num_threads()]
    lines = [
        "# Results",
        "",
        f"Made by `{command}` on {platform.machine()} (torch {torch.__version__}, {'/'.join(map(str, threads))} torch "
        f"thread(s) per training process): {compute / 60:.0f} min of training and re-ranking in all, this command's "
        f"wall time {wall_seconds / 60:.0f} min (seeds found finished in the runs directory are read back, not "
        f"retrained).{training_span(results)} Seeds {plan.seeds}; each seed's model is the best on dev.",
        "Mean ± standard deviation over seeds; † / ‡: different from BM25 at p < 0.05 (paired t-test / randomisation",
        "test over queries, on per-query values averaged over seeds). Encoder: the pretrained transformer's folder",
        f"({TINY_ENCODER} without one), or the word vectors a word model starts from; params: the model's parameters,",
        "with those trained in brackets where some are frozen (empty: seeds saved before neurank counted them).",
        "Training time is per seed, until early stopping; throughput is re-ranking pairs per second on the test split",
        "(batch 256, this machine).",
        *([note] if note else []),
        "",
    ]
    for result in results:
        first = result.measures[0]
        best = result.best_classic
        lines += [f"## {result.collection} ({result.split}, {result.queries} queries)", ""]
        versus = ([best] if best else []) + [name for name in result.compared if name != best]
        head = ["model", *result.measures, "encoder", "params", *(f"p vs {name}" for name in versus)]
        lines.append("| " + " | ".join([*head, "train s/seed", "pairs/s"]) + " |")
        lines.append("|---|" + "---:|" * len(result.measures) + "---|---:|" + "---:|" * (len(versus) + 2))
        bm25 = [f"{result.bm25[m]:.4f}" for m in result.measures]
        lines.append("| " + " | ".join(["BM25", *bm25, *[""] * (len(head) - len(bm25) + 1)]) + " |")
        for model in sorted(result.models, key=lambda r: -r.mean[first]):
            cells = [model.model]
            for m in result.measures:
                marks = ("†" if model.p_ttest[m] < 0.05 else "") + ("‡" if model.p_randomisation[m] < 0.05 else "")
                cells.append(f"{model.mean[m]:.4f} ± {model.std[m]:.4f}{marks}")
            cells += [model.encoder, _parameters_cell(model)]
            if best:
                cells.append("" if model.p_best_classic is None else _p_cell(model.p_best_classic))
            cells += ["" if name not in model.p_vs else _p_cell(model.p_vs[name]) for name in versus if name != best]
            cells += [f"{model.train_seconds:.0f}", f"{model.pairs_per_second:,.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if best:
            lines += [
                f"p vs {best}: the p-value of the paired randomisation test on {first} against {best}, the best "
                "model here on word vectors (per-query values averaged over seeds, as for BM25).",
                "",
            ]
        others = [name for name in versus if name != best]
        if others:
            lines += [
                "; ".join(f"p vs {name}" for name in others)
                + f": the same test on {first} against {', '.join(others)} (the benchmark config's compare_with).",
                "",
            ]
        fewer = [m for m in result.models if m.seeds and m.seeds != plan.seeds]
        if fewer:
            said = "; ".join(
                f"{m.model}: seeds {m.seeds} ({_duration(m.train_seconds)} of training per seed here)" for m in fewer
            )
            lines += [
                f"Seeds set per model by the benchmark config (model_seeds), in place of {plan.seeds}: {said}.",
                "",
            ]
        chosen = _collection_choices(plan, result.collection, [m.model for m in result.models])
        if chosen:
            task = plan.task_configs.get(result.collection)
            where = f"by {task} and the benchmark config" if task else "in the benchmark config"
            lines += [f"Set for {result.collection} {where}, in place of the defaults: {chosen}.", ""]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _count(number: int) -> str:
    if number >= 1_000_000:
        return f"{number / 1_000_000:.1f}M"
    if number >= 1_000:
        return f"{number / 1_000:.1f}k"
    return str(number)


def _parameters_cell(model: ModelResult) -> str:
    """``22.7M``, or ``22.7M (96 trained)`` when part of the model is frozen; empty when not counted."""
    if model.params is None:
        return ""
    trainable = model.params if model.trainable_params is None else model.trainable_params
    return _count(model.params) + ("" if trainable == model.params else f" ({_count(trainable)} trained)")


def _p_cell(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _collection_choices(plan: BenchmarkPlan, collection: str, models: list[str]) -> str:
    """The model options and training options a collection sets for some of its models, as one sentence part."""

    def text(values: dict) -> str:
        return ", ".join(f"{key} {json.dumps(value)}" for key, value in values.items())

    parts = []
    for model in models:
        options = plan.collection_models.get(collection, {}).get(model, {})
        train = plan.collection_train.get(collection, {}).get(model, {})
        data = plan.data_options(collection, model)
        said = ([f"options {text(options)}"] if options else []) + ([f"training {text(train)}"] if train else [])
        said += [f"data {text(data)}"] if data else []
        if said:
            parts.append(f"{model} with " + "; ".join(said))
    return "; ".join(parts)


def write_results(
    results: list[CollectionResult],
    plan: BenchmarkPlan,
    output: str | Path,
    command: str,
    wall_seconds: float,
    note: str | None = None,
) -> None:
    """Write the Markdown table and, beside it, the same results as JSON; `note` (e.g. how the machine was
    shared while the timings were taken) goes under the table's explanation."""
    output = Path(output)
    with atomic_write(output) as handle:
        handle.write(results_markdown(results, plan, command, wall_seconds, note))
    with atomic_write(output.with_suffix(".json")) as handle:
        json.dump(
            {"seeds": plan.seeds, "wall_seconds": wall_seconds, "results": [dataclasses.asdict(r) for r in results]},
            handle,
            indent=2,
        )


def is_results_table(path: str | Path) -> bool:
    """Whether `path` is a Markdown table `neurank benchmark` wrote (its "Made by `neurank benchmark ...`" line),
    so that a rerun may replace it."""
    return marked_by("Made by `neurank benchmark ")(Path(path))


def is_results_json(path: str | Path) -> bool:
    """Whether `path` is the JSON `neurank benchmark` writes beside its table (exactly its three keys)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and set(data) == {"seeds", "wall_seconds", "results"}


# A page carries one pair of markers or both; `update_results_page` rewrites what lies between each pair.
RESULTS_START = "<!-- results:start (written by neurank benchmark; do not edit by hand) -->"
RESULTS_END = "<!-- results:end -->"
HEADLINE_START = "<!-- headline:start (written by neurank benchmark; do not edit by hand) -->"
HEADLINE_END = "<!-- headline:end -->"


def update_results_page(page: str | Path, markdown: str) -> None:
    """Write the results tables into a Markdown page between its markers, replacing what was there.

    Between `RESULTS_START` and `RESULTS_END` go the full tables of `markdown` (the page title dropped, collection
    headings one level down): docs/models.md carries these. Between `HEADLINE_START` and `HEADLINE_END` goes one
    compact table, every model's mean on each collection's first measure (`headline_markdown`): the README carries
    that. Either way the page's numbers are the command's output, never typed in by hand.

    Args:
        page: a Markdown file with at least one pair of markers.
        markdown: what `results_markdown` wrote (docs/results.md).

    Raises:
        ConfigError: the page has neither pair of markers, or a start marker without its end; the page is unchanged.
    """
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    found = 0
    for start_marker, end_marker, body in (
        (RESULTS_START, RESULTS_END, _full_tables),
        (HEADLINE_START, HEADLINE_END, headline_markdown),
    ):
        start, end = text.find(start_marker), text.find(end_marker)
        if start < 0 and end < 0:
            continue
        if start < 0 or end < start:
            raise ConfigError(f"{page}: expected the marker {start_marker!r} and then {end_marker!r}")
        text = text[: start + len(start_marker)] + "\n" + body(markdown).strip() + "\n" + text[end:]
        found += 1
    if not found:
        raise ConfigError(
            f"{page}: expected the markers {RESULTS_START!r} and then {RESULTS_END!r} around the results tables, "
            f"or {HEADLINE_START!r} and then {HEADLINE_END!r} around the headline table"
        )
    with atomic_write(page) as handle:
        handle.write(text)


def _full_tables(markdown: str) -> str:
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]  # the page title stays in docs/results.md
    return "\n".join("###" + line[2:] if line.startswith("## ") else line for line in lines)


@dataclass
class _Table:
    collection: str
    where: str  # what the heading says after the name: "test, 237 queries"
    measure: str = ""  # the first measure, from the header row
    cells: dict[str, str] = field(default_factory=dict)  # run -> its first-measure cell, as written


def _collection_tables(markdown: str) -> list[_Table]:
    """The first-measure column of each collection table that `results_markdown` wrote."""
    tables: list[_Table] = []
    for line in markdown.splitlines():
        if line.startswith("## "):
            name, _, rest = line[3:].partition(" ")
            tables.append(_Table(name, rest.strip("()")))
        elif tables and line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not tables[-1].measure:  # the header row: | model | first measure | ...
                tables[-1].measure = cells[1]
            else:
                tables[-1].cells[cells[0]] = cells[1]
    return [table for table in tables if table.measure]


def headline_markdown(markdown: str) -> str:
    """The README's compact table from the full results: BM25 and every model, one column per collection holding
    the collection's first measure, rows in the first collection's order (best first). Cells are copied as written
    in `markdown`, marks and all."""
    tables = _collection_tables(markdown)
    if not tables:
        return ""
    runs = list(dict.fromkeys(run for table in tables for run in table.cells))
    lines = [
        "| model | " + " | ".join(f"{table.collection} {table.measure}" for table in tables) + " |",
        "|---|" + "---:|" * len(tables),
    ]
    lines += ["| " + " | ".join([run] + [table.cells.get(run, "") for table in tables]) + " |" for run in runs]
    where = "; ".join(f"{table.collection}: {table.where}" for table in tables)
    lines += [
        "",
        f"Mean ± standard deviation over seeds ({where}); † / ‡: different from BM25 at p < 0.05 (paired t-test / "
        "randomisation test over queries).",
    ]
    return "\n".join(lines)
