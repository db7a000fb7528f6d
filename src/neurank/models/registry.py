"""The registry of rankers: a name maps to (Model class, Config class), and configs convert to and from plain dicts.

A model class is built as `Model(vocab_size, config, embeddings=None)` and its config is a frozen dataclass. Each
model module registers its classes with `@register("name", MyConfig)`; the first lookup imports every module of
`neurank.models`, so a new model joins the registry (and the contract test) by adding its file, and nothing here.

A model may also answer to other names, its aliases (`@register("match_pyramid", ..., aliases=("cnn",))`): building,
configs and checkpoints accept them, while `model_names()` lists each model once, under its own name, so code that
walks the registry (the contract test) meets every model once without excluding anything by hand.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from neurank.config import ConfigError

_MODELS: dict[str, tuple[type[nn.Module], type]] = {}
_ALIASES: dict[str, str] = {}  # alias -> the name it stands for, a key of _MODELS
_NOT_MODELS = {"layers", "registry"}
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("neurank.models")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_MODELS:
            importlib.import_module(f"neurank.models.{module.name}")


class UnknownModelError(KeyError, ValueError):
    """No model of that name is registered."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


def register(name: str, config_cls: type, aliases: Sequence[str] = ()) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a model under `name` with its config dataclass.

    Args:
        name: the model's name, listed by `model_names()`.
        config_cls: its config dataclass.
        aliases: other names that resolve to `name` wherever a model name is read (`build_model`, configs,
            checkpoints); `model_names()` leaves them out.
    Raises:
        ValueError: `name` or an alias is already taken, or `config_cls` is not a dataclass.
    """
    aliases = (aliases,) if isinstance(aliases, str) else tuple(aliases)
    for taken in (name, *aliases):
        if taken in _MODELS or taken in _ALIASES:
            owner = _MODELS[_ALIASES.get(taken, taken)][0].__name__
            raise ValueError(f"model name {taken!r} is already registered (to {owner})")
    if len(set(aliases)) != len(aliases) or name in aliases:
        raise ValueError(f"aliases of {name!r} repeat a name: {list(aliases)}")
    if not dataclasses.is_dataclass(config_cls):
        raise ValueError(f"config class of {name!r} must be a dataclass, got {config_cls!r}")

    def decorator(model_cls: type[nn.Module]) -> type[nn.Module]:
        _MODELS[name] = (model_cls, config_cls)
        _ALIASES.update(dict.fromkeys(aliases, name))
        return model_cls

    return decorator


def model_names() -> list[str]:
    """The registered model names, sorted; aliases are left out (see `model_aliases`)."""
    _discover()
    return sorted(_MODELS)


def model_aliases() -> dict[str, str]:
    """Every alias with the model name it stands for, sorted by alias."""
    _discover()
    return dict(sorted(_ALIASES.items()))


def resolve_model_name(name: str) -> str:
    """The registered name that `name` stands for: `name` itself, or the model an alias points to.

    Raises:
        UnknownModelError: `name` is neither a model name nor an alias.
    """
    _discover()
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    message = f"unknown model {name!r}; registered models: {', '.join(model_names())}"
    if _ALIASES:
        message += "; aliases: " + ", ".join(f"{alias} ({target})" for alias, target in model_aliases().items())
    raise UnknownModelError(message)


def model_classes(name: str) -> tuple[type[nn.Module], type]:
    """(Model class, Config class) registered under `name`, a model name or an alias."""
    return _MODELS[resolve_model_name(name)]


def _tuplify(value: Any) -> Any:
    # JSON and YAML have no tuples: lists come back where the config holds tuples.
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


def _listify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_listify(v) for v in value]
    return value


def config_from_dict(config_cls: type, values: Mapping[str, Any]) -> Any:
    """Build a config dataclass from a plain dict (lists become tuples); options left out keep their defaults.

    Raises:
        ConfigError: a key is not an option of `config_cls`; the message names it and lists the valid ones.
    """
    valid = [field.name for field in dataclasses.fields(config_cls)]
    for key in values:
        if key not in valid:
            raise ConfigError(f"unknown option {key!r} for {config_cls.__name__}; valid options: {', '.join(valid)}")
    return config_cls(**{key: _tuplify(value) for key, value in values.items()})


def model_config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict of JSON/YAML-safe values (tuples become lists)."""
    return {field.name: _listify(getattr(config, field.name)) for field in dataclasses.fields(config)}


def build_model(
    name: str, vocab_size: int, config: Mapping[str, Any] | Any | None = None, embeddings: Tensor | None = None
) -> nn.Module:
    """Build the model registered under `name`.

    Args:
        name: a name from `model_names()`, or an alias of one (`model_aliases()`).
        vocab_size: number of ids, PAD and UNK included.
        config: the model's config dataclass, a dict of its options (see `config_from_dict`), or None for defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the word embeddings from.
    Raises:
        UnknownModelError: no such model. ConfigError: an unknown option. TypeError: a config of another class.
    """
    model_cls, config_cls = model_classes(name)
    if config is None:
        config = config_cls()
    elif isinstance(config, Mapping):
        config = config_from_dict(config_cls, config)
    elif not isinstance(config, config_cls):
        raise TypeError(f"model {name!r} takes a {config_cls.__name__} or a dict, got {type(config).__name__}")
    return model_cls(vocab_size, config, embeddings=embeddings)
