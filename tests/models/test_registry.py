"""The model registry: names, building from a dict or a config, unknown options, and config round trips."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from neurank.models import (
    ConfigError,
    MatchPyramid,
    MatchPyramidConfig,
    UnknownModelError,
    build_model,
    config_from_dict,
    model_aliases,
    model_classes,
    model_config_to_dict,
    model_names,
    register,
    registry,
    resolve_model_name,
)


def test_cnn_is_an_alias_of_match_pyramid():
    assert "match_pyramid" in model_names() and "cnn" not in model_names()
    assert model_aliases() == {"cnn": "match_pyramid"} and resolve_model_name("cnn") == "match_pyramid"
    assert model_classes("cnn") == model_classes("match_pyramid") == (MatchPyramid, MatchPyramidConfig)
    with pytest.raises(
        UnknownModelError,
        match="unknown model 'no_such_model'; registered models: .*match_pyramid.*; "
        r"aliases: cnn \(match_pyramid\)",
    ):
        build_model("no_such_model", 10)


def test_build_model_takes_a_dict_a_config_or_nothing():
    from_dict = build_model("match_pyramid", 10, {"embedding_dim": 8, "pool_size": [2, 5]})
    assert from_dict.config == MatchPyramidConfig(embedding_dim=8, pool_size=(2, 5))
    assert build_model("cnn", 10, MatchPyramidConfig(embedding_dim=8)).config.embedding_dim == 8
    assert build_model("cnn", 10).config == MatchPyramidConfig()
    assert build_model("cnn", 10, embeddings=torch.zeros(10, 4)).config.embedding_dim == 4
    with pytest.raises(TypeError, match="takes a MatchPyramidConfig or a dict"):
        build_model("cnn", 10, object())


def test_unknown_option_is_named_with_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'kernel_size' for MatchPyramidConfig; valid options: "
        r"embedding_dim, interactions, .*kernel_sizes",
    ):
        build_model("match_pyramid", 10, {"kernel_size": [3, 3]})


@pytest.mark.parametrize("dumps, loads", [(json.dumps, json.loads), (yaml.safe_dump, yaml.safe_load)])
def test_configs_survive_a_json_and_yaml_round_trip(dumps, loads):
    config = MatchPyramidConfig(interactions=("cosine", "exact"), kernel_sizes=((1, 3), (3, 5)), pool_size=(2, 8))
    as_dict = model_config_to_dict(config)
    assert as_dict["kernel_sizes"] == [[1, 3], [3, 5]]
    assert config_from_dict(MatchPyramidConfig, loads(dumps(as_dict))) == config


def test_register_adds_a_model_with_its_aliases(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))

    @register("tiny", MatchPyramidConfig, aliases=("small",))
    class Tiny(MatchPyramid):
        pass

    assert "tiny" in model_names() and "small" not in model_names() and model_aliases()["small"] == "tiny"
    assert isinstance(build_model("tiny", 10), Tiny) and isinstance(build_model("small", 10), Tiny)
    for taken in ("tiny", "small", "cnn"):
        with pytest.raises(ValueError, match=f"{taken!r} is already registered"):
            register(taken, MatchPyramidConfig)
        with pytest.raises(ValueError, match=f"{taken!r} is already registered"):
            register("other", MatchPyramidConfig, aliases=(taken,))
