"""Experiment configuration: frozen dataclasses per component, loaded from YAML with dotted `key=value` overrides.

    config = load_config("wikiqa", ["train.lr=3e-4", "model_config.conv_channels=[8,16]"])

A config is a path to a YAML file or the bare name of one shipped inside the package (`neurank/configs/`:
``wikiqa``, ``nfcorpus``, ``benchmark``), so that an installed wheel finds them from any directory. A key that
does not exist is an error naming the key and listing the valid ones, never silently ignored.
"""

from __future__ import annotations

import dataclasses
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
    """

    collection: str = "wikiqa"
    data_dir: str | None = None
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str = "test"
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


@dataclass(frozen=True)
class EmbeddingConfig:
    """Where the word vectors come from.

    Attributes:
        source: ``"random"``; ``"word2vec"`` (trained with gensim on the collection's texts, plus the Brown corpus
            when `brown` is set); or a path to a GloVe / word2vec / fastText file.
        freeze: keep the embeddings fixed during training (None: the model's default; DRMM freezes them).
        sparse: sparse embedding gradients (optimised with SparseAdam).
    """

    source: str = "random"
    dim: int = 100
    window: int = 5
    epochs: int = 10
    min_count: int = 1
    brown: bool = False
    freeze: bool | None = None
    sparse: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation.

    Attributes:
        loss: ``"bce"`` (pointwise), ``"hinge"`` or ``"ranknet"`` (pairwise), ``"softmax"`` (listwise, one
            positive and `negatives` negatives).
        batch_size: groups per optimisation step over all processes: under torchrun each of N processes takes
            batch_size / N of every batch (`neurank.runtime.distributed`), so N does not change what is optimised.
        metric: the dev measure for model selection (None: the collection's primary measure).
        patience: epochs without dev improvement before stopping early.
        fusion: after training, choose on dev a weight to interpolate the model's scores with the first stage's
            (see `neurank.inference.fusion`); re-ranking then uses it.
        ema: decay of an exponential moving average of the weights, updated after every optimisation step
            (0: off). When on, dev evaluation, model selection and the checkpoints' weights are the average's
            (`torch.optim.swa_utils.AveragedModel`); training itself is unchanged. Between 0.9 and 0.999 is
            typical: the average spans about 1 / (1 - ema) steps.
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

    def __post_init__(self):
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
    """Build an `ExperimentConfig` from nested dicts, rejecting unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections (model, data, train, ...), found {type(values).__name__}"
        )
    values = dict(values)
    sections = {}
    for name, cls in _SECTIONS.items():
        section = values.pop(name, {}) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: section {name!r} must be a mapping")
        sections[name] = build_section(cls, section, f"{source}: {name}")
    model_config = values.pop("model_config", {}) or {}
    top = build_section(ExperimentConfig, values, source) if values else ExperimentConfig()
    return dataclasses.replace(top, model_config=dict(model_config), **sections)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Apply dotted ``key=value`` overrides (values parsed as YAML: numbers, lists, null) to nested dicts."""
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected key=value, e.g. train.lr=3e-4")
        parts = key.strip().split(".")
        target = values
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {override!r}: {part!r} is not a section")
        target[parts[-1]] = yaml.safe_load(raw)
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (or start from the defaults when `path` is None) and apply overrides.

    Args:
        path: a YAML file, or the bare name of a shipped config (``"wikiqa"``; see `resolve_config`).
        overrides: dotted ``key=value`` strings, applied in order after the file.
    """
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = resolve_config(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{line}: not valid YAML ({getattr(error, 'problem', error)})") from None
        source = str(path)
    return config_from_dict(apply_overrides(values, overrides or []), source)
