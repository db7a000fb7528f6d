"""When a finished seed's result stands for a config: the reuse of `seed.json` by the results table and experiments.

A seed's `seed.json` keeps the config it was trained with. neurank gains settings over time, and a seed written
before a setting existed does not have its key; the setting's default is the behaviour it was trained with (a new
setting must default to the old behaviour, or bump what it changes). So two configs are the same experiment when
every key holds the same value, where a key absent from one side holds its default. A key whose default changed is
written with its old value in the saved seed, so it differs, and the seed is trained again.

Defaults come from the config's dataclasses (`neurank.config.ExperimentConfig`: every section) and, for
`model_config`, from the model's own config dataclass, except the embedding options that training fills from the
`embeddings` section when `model_config` leaves them out (`neurank.training.model.EMBEDDING_OPTIONS`): absent, those
follow that section, so only an equal value on both sides matches.

A seed's result may gain fields (the results table adds the model's parameter count with `add_to_seed_result`); a
result without one is still reused, the field unknown: only the config and the measures decide.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurank.collections.textio import atomic_write
from neurank.config import ExperimentConfig
from neurank.models import model_classes, model_config_to_dict
from neurank.models.registry import UnknownModelError
from neurank.training.model import EMBEDDING_OPTIONS

_ABSENT = object()


def _plain(value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists), as `seed.json` holds it."""
    return json.loads(json.dumps(value))


def config_defaults(model: str) -> dict[str, Any]:
    """Every config key's default as JSON values, `model_config` holding `model`'s options (see the module)."""
    defaults = _plain(ExperimentConfig().to_dict())
    try:
        _, config_cls = model_classes(model)
        model_defaults = _plain(model_config_to_dict(config_cls()))
    except (UnknownModelError, TypeError):  # not registered here, or no default config: compare as written
        model_defaults = {}
    defaults["model_config"] = {k: v for k, v in model_defaults.items() if k not in EMBEDDING_OPTIONS}
    return defaults


def config_differences(saved: Any, config: ExperimentConfig) -> list[str]:
    """What differs between a saved config (a `seed.json`'s ``config``) and `config`, ignoring keys that hold their
    default value on one side and are absent on the other; [] when they are the same experiment.

    Each difference reads ``"train.lr: 0.001 -> 0.0003"`` (saved -> now; "absent" for a key one side lacks that has
    no known default).
    """
    current = _plain(config.to_dict())
    if not isinstance(saved, Mapping):
        return [f"config: {saved!r} -> a config"]
    return _differences(saved, current, config_defaults(config.model), "")


def _differences(saved: Mapping, current: Mapping, defaults: Any, where: str) -> list[str]:
    out: list[str] = []
    defaults = defaults if isinstance(defaults, Mapping) else {}
    for key in list(current) + [k for k in saved if k not in current]:
        path = f"{where}.{key}" if where else str(key)
        default = defaults.get(key, _ABSENT)
        old, new = saved.get(key, default), current.get(key, default)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            out += _differences(old, new, default, path)
        elif old != new:
            out.append(f"{path}: {_shown(old)} -> {_shown(new)}")
    return out


def _shown(value: Any) -> str:
    return "absent" if value is _ABSENT else json.dumps(value)


def seed_differences(saved: Any, config: ExperimentConfig, measures: list[str]) -> list[str]:
    """Why a seed's saved result (`seed.json`'s content) does not stand for `config` and `measures`; [] when it does."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("result"), Mapping):
        return ["not a finished seed's result"]
    out = config_differences(saved.get("config"), config)
    if saved.get("measures") != list(measures):
        out.append(f"measures: {_shown(saved.get('measures'))} -> {_shown(list(measures))}")
    return out


def read_seed_file(path: str | Path) -> Any:
    """A `seed.json`'s content; None when it is missing or unreadable (the seed is then trained again)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def why_retrained(seed_file: str | Path, config: ExperimentConfig, measures: list[str]) -> str | None:
    """Why an existing `seed.json` is not reused for `config` (its first differences), None when there is no
    readable file or it is reused: what the results table logs, so that no table is retrained in silence."""
    saved = read_seed_file(seed_file)
    if saved is None:
        return None
    differences = seed_differences(saved, config, measures)
    if not differences:
        return None
    return "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")


def add_to_seed_result(seed_file: str | Path, values: Mapping[str, Any]) -> None:
    """Add `values` to the ``result`` of a finished seed's `seed.json` (replaced atomically); what it holds stays."""
    seed_file = Path(seed_file)
    saved = json.loads(seed_file.read_text(encoding="utf-8"))
    saved["result"] = {**saved["result"], **_plain(dict(values))}
    with atomic_write(seed_file) as handle:
        json.dump(saved, handle)
