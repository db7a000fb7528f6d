"""Experiment configuration: frozen dataclasses per component, loaded from YAML with dotted `key=value` overrides.

    config = load_config("wikiqa", ["train.lr=3e-4", "model_config.conv_channels=[8,16]"])
    config = load_config("answer_selection", ["model=knrm", "data.collection=/data/my-qa"])

A config is a path to a YAML file or the bare name of one shipped inside the package (`neurank/configs/`:
``answer_selection``, ``adhoc``, ``wikiqa``, ``nfcorpus``, ``benchmark``), so that an installed wheel finds them
from any directory. A key that does not exist is an error naming the key and listing the valid ones, never silently
ignored.

A task config may hold the options of several models in a ``models:`` section, so that ``model=NAME`` switches the
model without tripping over another model's options::

    model: match_pyramid
    model_config: {use_first_stage_score: true}      # every model's, unless its entry below says otherwise
    models:
      match_pyramid: {interactions: [cosine, exact], dropout: 0.3}
      knrm: {tanh_output: false}
      compare_aggregate: {exact_match: true, train: {epochs: 20, patience: 20}}
      drmm: {}                                        # its own defaults

Only the chosen model's entry is read. Precedence, lowest first: the model's own defaults, the file's
``model_config`` (what every model of the file gets), its entry in ``models:`` (what this model gets), then the
command line (``model_config.KEY=``, or ``models.NAME.KEY=`` for the entry). An entry's ``train:`` holds training
options for that model; they replace the file's ``train`` section and give way to ``train.KEY=`` on the command
line. The resolved `ExperimentConfig` keeps only the chosen model's options (`model_config`), so it, and the
checkpoints written from it, look as a single-model config would.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


# The shipped configs are package data beside this module. A wheel is installed unpacked, so a plain path works
# (and keeps the relative `config:` entries of benchmark.yaml resolvable next to it).
SHIPPED_CONFIGS = Path(__file__).with_name("configs")


def shipped_configs() -> list[str]:
    """The names of the configs shipped inside the package (``wikiqa``, ``nfcorpus``, ``benchmark``, ...)."""
    return sorted(path.stem for path in SHIPPED_CONFIGS.glob("*.yaml"))


def shipped_config(name: str | Path) -> Path | None:
    """The shipped config called `name` (a bare name: no directory, no suffix), or None when there is none."""
    text = str(name)
    bare = Path(text).name == text and not Path(text).suffix and text not in ("", ".", "..")
    path = SHIPPED_CONFIGS / f"{text}.yaml"
    return path if bare and path.is_file() else None


def resolve_config(path: str | Path, what: str = "config file") -> Path:
    """Where the config `path` lives: the file itself when it exists, else, for a bare name such as ``wikiqa``
    (no suffix, no directory), the config of that name shipped inside the package.

    A file in the working directory wins over a shipped config of the same name. Raises FileNotFoundError naming
    the path (as `what`) and listing the shipped names when neither exists.
    """
    given = Path(path)
    if given.is_file():
        return given
    shipped = shipped_config(path)
    if shipped is not None:
        return shipped
    raise FileNotFoundError(f"{given}: {what} not found (shipped configs, by name: {', '.join(shipped_configs())})")


def _at_least(section: Any, lows: dict[str, int], optional: bool = False) -> None:
    """Refuse an integer field of `section` below its least value in `lows` (None passes when `optional`)."""
    for key, low in lows.items():
        value = getattr(section, key)
        if optional and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            also = " or null" if optional else ""
            raise ConfigError(f"{key}: expected an integer {low} or more{also}, found {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """Which collection, which splits, how candidates are made and how long texts may be.

    Attributes:
        candidates: BM25 depth per query for ad-hoc collections (training negatives and the re-ranked list).
        max_train_queries: train on the first this many training queries only (quick runs); None: all.
        min_relevance: the least relevance grade that makes a training positive (evaluation keeps the qrels' own).
        min_freq / max_vocab: vocabulary built from the training texts.
        stopwords: None, or "en": a stop word list `neurank.text.TokenizerConfig` knows (its type names the same
            choices; config sits below text, so it cannot import them).
        stemmer: None, or a Snowball algorithm name for PyStemmer ("english", "porter", ...).
        dev_fraction: for a collection with train and test but no dev split, the fraction of the training queries
            set aside, deterministically, as dev (passed to the collection loader; 0: none; None: the collection's
            own setting, else the loader's default).
    """

    collection: str = "wikiqa"
    data_dir: str | None = None
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str = "test"
    dev_fraction: float | None = None
    folds: int = 5
    fold: int = 0
    candidates: int = 100
    max_train_queries: int | None = None
    min_relevance: int = 1
    max_query_len: int = 20
    max_doc_len: int = 200
    min_freq: int = 1
    max_vocab: int | None = None
    stopwords: Literal["en"] | None = None
    stemmer: str | None = None

    def __post_init__(self):
        _at_least(self, {"candidates": 1, "max_query_len": 1, "max_doc_len": 1, "min_freq": 1, "folds": 2})
        _at_least(self, {"max_train_queries": 1, "max_vocab": 3}, optional=True)  # max_vocab counts PAD and UNK
        if not 0 <= self.fold < self.folds:
            raise ConfigError(
                f"fold: expected a fold from 0 to {self.folds - 1} (folds is {self.folds}), found {self.fold!r}"
            )
        if self.dev_fraction is not None and not 0.0 <= self.dev_fraction < 1.0:
            raise ConfigError(
                "dev_fraction: expected a fraction from 0 (carve no dev split) to below 1, or null, "
                f"found {self.dev_fraction!r}"
            )
        if len({self.train_split, self.dev_split, self.test_split}) < 3:
            raise ConfigError(
                "train_split, dev_split, test_split: expected three different splits (choosing on the split that "
                f"is trained on or tested on reports what was fitted), found {self.train_split!r}, "
                f"{self.dev_split!r}, {self.test_split!r}"
            )


@dataclass(frozen=True)
class EmbeddingConfig:
    """Where the word vectors come from.

    Attributes:
        source: ``"random"``; ``"word2vec"`` (trained with gensim on the collection's texts, plus the Brown corpus
            and `extra_text` when set); a named source installed as a package, ``"glove-6b-50d"`` (Stanford's GloVe
            6B 50d, the `neurank[glove]` extra; see `neurank.data.embeddings.NAMED_SOURCES`); or a path to a
            GloVe / word2vec / fastText file (text, gzipped or word2vec binary, of any size: read as a stream).
        dim: the vectors' dimension: what word2vec trains; a named source's must match it (``50`` for
            ``glove-6b-50d``), checked with the files before anything is read; a file's own dimension wins.
        brown: add the Brown corpus to word2vec's text: ``false``; ``true`` for ``DATA_DIR/brown_corpus/brown.zip``
            (DATA_DIR: `data.data_dir`, else ``$NEURANK_DATA``, else ``./data``); or the path of NLTK's
            ``brown.zip`` anywhere. Independent of where the collection lives.
        extra_text: a UTF-8 text file whose lines (one sentence or paragraph each) word2vec also reads, tokenised
            as the collection is; None: none.
        freeze: keep the embeddings fixed during training (None: the model's default; DRMM freezes them).
        sparse: sparse embedding gradients (optimised with SparseAdam).
    """

    source: str = "random"
    dim: int = 100
    window: int = 5
    epochs: int = 10
    min_count: int = 1
    brown: bool | str = False
    extra_text: str | None = None
    freeze: bool | None = None
    sparse: bool = False

    def __post_init__(self):
        _at_least(self, {"dim": 1, "window": 1, "epochs": 1, "min_count": 1})


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation.

    Attributes:
        loss: ``"bce"`` (pointwise), ``"hinge"`` or ``"ranknet"`` (pairwise), ``"softmax"`` (listwise, one
            positive and `negatives` negatives).
        batch_size: groups per optimisation step over all processes: under torchrun each of N processes takes
            batch_size / N of every batch (`neurank.runtime.distributed`), so N does not change what is optimised.
        metric: the dev measure for model selection (None: the collection's primary measure).
        epochs: the most epochs to train (1 or more).
        patience: stop after this many epochs in a row without dev improvement (1 or more; 0 would stop before
            the first epoch, so it is refused: to never stop early, set it to `epochs`).
        Every count must be 1 or more (`warmup_steps` 0 or more), `lr` above 0, and `weight_decay` and
        `grad_clip` 0 or more (`grad_clip` 0: no clipping); a `ConfigError` names the key and the range.
        fusion: after training, choose on dev a weight to interpolate the model's scores with the first stage's
            (see `neurank.inference.fusion`); re-ranking then uses it.
        ema: decay of an exponential moving average of the weights, updated after every optimisation step
            (0: off). When on, dev evaluation, model selection and the checkpoints' weights are the average's
            (`torch.optim.swa_utils.AveragedModel`); training itself is unchanged. Between 0.9 and 0.999 is
            typical: the average spans about 1 / (1 - ema) steps.
        head_lr: the learning rate of the layers a pretrained transformer model adds to its transformer (a scoring
            layer, CEDR's readers: every parameter outside `Ranker.pretrained_part`), while the transformer takes
            `lr`; None: `lr` for every parameter. New layers need larger steps than pretrained ones (CEDR trains
            its readers at 1e-3 beside BERT's 2e-5). A model without pretrained weights trains all at `lr`.
    """

    loss: str = "softmax"
    negatives: int = 4
    batch_size: int = 32
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule: str = "linear"
    grad_clip: float = 5.0
    patience: int = 3
    metric: str | None = None
    seed: int = 42
    device: str = "auto"
    eval_batch_size: int = 256
    fusion: bool = False
    ema: float = 0.0
    head_lr: float | None = None

    def __post_init__(self):
        if self.head_lr is not None and (not math.isfinite(self.head_lr) or self.head_lr <= 0):
            raise ConfigError(f"head_lr: expected a finite number above 0, or null for lr, found {self.head_lr!r}")
        _at_least(self, {"negatives": 1, "batch_size": 1, "epochs": 1, "patience": 1, "eval_batch_size": 1})
        _at_least(self, {"warmup_steps": 0})
        for key in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, key)
            low = "above 0" if key == "lr" else "0 or more"
            if not math.isfinite(value) or (value <= 0 if key == "lr" else value < 0):
                raise ConfigError(f"{key}: expected a finite number {low}, found {value!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema: expected a decay in [0, 1) (0: off), found {self.ema!r}")


@dataclass(frozen=True)
class ExperimentConfig:
    model: str = "match_pyramid"
    model_config: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    embeddings: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "embeddings": EmbeddingConfig, "train": TrainConfig}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    # YAML 1.1 reads `3e-4` as a string and `1` where a float is meant as an int: accept what a user means,
    # and name the key when a value cannot be what the field needs.
    allowed = set(typing.get_args(hint)) or {hint}
    if value is None and type(None) in allowed:
        return None
    choices = _literal_choices(hint)
    if choices:
        if any(type(value) is type(choice) and value == choice for choice in choices):
            return value
        names = " or ".join([repr(choice) for choice in choices] + (["null"] if type(None) in allowed else []))
        raise ConfigError(f"{where}: expected {names}, found {value!r}")
    for kind in (bool, int, float, str):
        if kind not in allowed:
            continue
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
        if kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
    if allowed & {bool, int, float, str, type(None)}:
        names = " or ".join(sorted(getattr(k, "__name__", str(k)).replace("NoneType", "null") for k in allowed))
        raise ConfigError(f"{where}: expected {names}, found {value!r}")
    return value


def _literal_choices(hint: Any) -> tuple:
    """The values a `Literal[...]` field (or `Literal[...] | None`) allows; () for any other hint."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    members = typing.get_args(hint) if union else (hint,)
    return tuple(v for m in members if typing.get_origin(m) is typing.Literal for v in typing.get_args(m))


def build_section(cls, values: dict, where: str):
    """One config section (`DataConfig`, `TrainConfig`, ...) from a dict, naming `where` for an unknown key or a
    value of the wrong type."""
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}")
    hints = typing.get_type_hints(cls)
    coerced = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in values.items()}
    try:
        return cls(**coerced)
    except ConfigError as error:  # a section's own check of a value ("ema: ..."), placed in the file and section
        raise ConfigError(f"{where}.{error}") from None


def config_from_dict(values: dict, source: str = "config") -> ExperimentConfig:
    """Build an `ExperimentConfig` from nested dicts, rejecting unknown keys; a ``models:`` section is resolved for
    the chosen model (see the module docstring)."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections (model, data, train, ...), found {type(values).__name__}"
        )
    valid = {f.name for f in fields(ExperimentConfig)} | {"models"}
    unknown = sorted(set(values) - valid, key=str)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}")
    values = select_model(values, source)
    sections = {}
    for name, cls in _SECTIONS.items():
        section = values.pop(name, {}) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: {name}: expected a mapping of {name} keys, found {_shown(section)}")
        sections[name] = build_section(cls, section, f"{source}: {name}")
    model_config = values.pop("model_config", {}) or {}
    if not isinstance(model_config, dict):
        raise ConfigError(f"{source}: model_config: expected a mapping of the model's options, found {model_config!r}")
    top = build_section(ExperimentConfig, values, source) if values else ExperimentConfig()
    return dataclasses.replace(top, model_config=dict(model_config), **sections)


# The sections a `models:` entry may carry beside the model's options (what it trains with, not what data it sees:
# the data and word vectors are prepared once for all the models of a task).
_MODEL_ENTRY_SECTIONS = ("train",)


def model_entries(values: dict, source: str = "config") -> dict[str, dict]:
    """The ``models:`` section of raw config values, checked: ``{name: {option: value, "train": {...}}}``.

    Every entry must be a mapping (null: the model's defaults), and its ``train`` a mapping of valid training keys,
    whichever model is chosen, so a mistake in one entry is found before any model trains. Empty when the config
    has no ``models:`` section.
    """
    section = values.get("models")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: models: expected a mapping of model name to its options, found {section!r}")
    entries: dict[str, dict] = {}
    for name, entry in section.items():
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: models.{name}: expected a mapping of the model's options, found {entry!r}")
        for part in _MODEL_ENTRY_SECTIONS:
            given = entry.get(part)
            if given is not None and not isinstance(given, dict):
                raise ConfigError(f"{source}: models.{name}.{part}: expected a mapping of {part} keys, found {given!r}")
        build_section(TrainConfig, dict(entry.get("train") or {}), f"{source}: models.{name}.train")
        entries[str(name)] = dict(entry)
    return entries


def select_model(values: dict, source: str = "config", command_line: dict | None = None) -> dict:
    """Raw config values with their ``models:`` section resolved for the chosen model: its options under
    ``model_config`` (over the file's ``model_config``: an entry is more specific), its ``train`` entry over the
    ``train`` section, and the section itself dropped. Values without a ``models:`` section come back as they are.

    Args:
        command_line: the values the command line set (``apply_overrides({}, overrides)``): its ``train`` and
            ``model_config`` keys win over the entry's, as a command line wins over a file.
    Raises:
        ConfigError: the section or an entry is malformed, or the chosen model has no entry (the message lists
            the entries).
    """
    entries = model_entries(values, source)
    values = {key: value for key, value in values.items() if key != "models"}
    if not entries:
        return values
    model = values.get("model", ExperimentConfig.model)
    if model not in entries:
        raise ConfigError(
            f"{source}: models: no entry for model {model!r}; the config has options for {', '.join(entries)} "
            f"(add `models: {{{model}: {{}}}}` to train {model!r} with its own defaults)"
        )
    options = dict(entries[model])
    for part in _MODEL_ENTRY_SECTIONS:
        own = dict(options.pop(part, None) or {})
        if own:
            section = values.get(part) or {}
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: section {part!r} must be a mapping")
            pinned = dict((command_line or {}).get(part) or {})
            values[part] = {**section, **own, **pinned}
    shared = values.get("model_config") or {}
    if not isinstance(shared, dict):
        raise ConfigError(f"{source}: model_config: expected a mapping of the model's options, found {shared!r}")
    pinned = dict((command_line or {}).get("model_config") or {})
    values["model_config"] = {**shared, **options, **pinned}
    return values


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply dotted ``key=value`` overrides (values parsed as YAML: numbers, lists, null) to nested dicts."""
    values = copy.deepcopy(values)  # the caller's dicts, nested ones included, stay as they were
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected key=value, e.g. train.lr=3e-4")
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {override!r}: expected a dotted key such as train.lr, found {key!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"override {override!r}: expected a YAML value after '=' (a number, a string, a list such as "
                f"[8,16], null), found invalid YAML ({_yaml_problem(error)})"
            ) from None
        target = values
        for part in parts[:-1]:
            if target.get(part) is None:  # a section left empty in the file (`train:`) is an empty section
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                raise ConfigError(f"override {override!r}: {part!r} is not a section")
        target[parts[-1]] = value
    return values


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line saying what PyYAML found wrong and where (its own message spans several lines)."""
    if isinstance(error, yaml.reader.ReaderError):
        character = error.character if isinstance(error.character, int) else ord(error.character)
        return f"character #x{character:04x} at offset {error.position} is not allowed in YAML"
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or "the text is not valid YAML"
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (or start from the defaults when `path` is None) and apply overrides.

    Args:
        path: a YAML file, or the bare name of a shipped config (``"wikiqa"``; see `resolve_config`).
        overrides: dotted ``key=value`` strings, applied in order after the file (``model=NAME`` picks a model
            from the file's ``models:`` section).
    """
    values, source = read_config(path)
    overrides = list(overrides or [])
    values = apply_overrides(values, overrides)
    return config_from_dict(select_model(values, source, apply_overrides({}, overrides)), source)


def load_configs(path: str | Path, overrides: list[str] | None, models: list[str]) -> dict[str, ExperimentConfig]:
    """One config per model of `models`, each as ``load_config(path, overrides + ["model=NAME"])`` loads it: the
    candidates of an experiment that chooses among models on dev.

    Raises:
        ConfigError: `models` is empty or names a model twice, `overrides` choose a model themselves, or a
            config is invalid (one without an entry for a model in its ``models:`` section, for example).
    """
    overrides = list(overrides or [])
    if not models:
        raise ConfigError("models: expected at least one model name")
    twice = sorted({name for name in models if models.count(name) > 1})
    if twice:
        raise ConfigError(f"models: {twice[0]!r} is named twice")
    if any(override.partition("=")[0].strip() == "model" for override in overrides):
        raise ConfigError("model=...: choose the models with the list of candidates, not with an override as well")
    return {name: load_config(path, [*overrides, f"model={name}"]) for name in models}


def read_config(path: str | Path | None) -> tuple[dict[str, Any], str]:
    """The raw values of a YAML config file (see `resolve_config`) and its name for messages; ({}, "defaults")
    when `path` is None."""
    if path is None:
        return {}, "defaults"
    path = resolve_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: expected UTF-8 text, found byte 0x{error.object[error.start]:02x} at offset {error.start} "
            "(save the config as UTF-8)"
        ) from None
    except OSError as error:  # a folder, or a file without read permission
        raise ConfigError(f"{path}: cannot read the config ({error.strerror or error})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({_yaml_problem(error)})") from None
    if values is None:  # an empty file (or only comments) is a mistake, not a request for every default
        raise ConfigError(
            f"{path}: the config is empty; expected a mapping of sections (model, data, train, ...), "
            "e.g. `model: knrm` (write `{}` for all the defaults)"
        )
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections (model, data, train, ...) at the top level, "
            f"found a {type(values).__name__}: {_shown(values)}"
        )
    return values, str(path)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
