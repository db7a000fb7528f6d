"""Experiment configs: YAML, dotted overrides, and clear errors for keys that do not exist."""

import pytest

from neurank.config import ConfigError, load_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: cnn\ndata:\n  collection: nfcorpus\ntrain:\n  lr: 0.01\n")
    config = load_config(path, ["train.lr=3e-4", "model_config.conv_channels=[8, 16]", "data.max_vocab=null"])
    assert config.model == "cnn" and config.data.collection == "nfcorpus"
    assert config.train.lr == pytest.approx(3e-4)
    assert config.model_config == {"conv_channels": [8, 16]}
    assert config.data.max_vocab is None


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'.*valid keys: .*lr"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown key 'colection'"):
        load_config(None, ["data.colection=wikiqa"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match=r"train.epochs: expected int, found 'many'"):
        load_config(None, ["train.epochs=many"])


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(path)


def test_shipped_configs_load():
    from pathlib import Path

    from neurank.benchmark import load_plan

    configs = Path(__file__).parents[1] / "configs"
    for path in sorted(configs.glob("*.yaml")):
        if path.name != "benchmark.yaml":
            load_config(path)
    plan = load_plan(configs / "benchmark.yaml")
    assert set(plan.collections) == {"wikiqa", "nfcorpus"} and len(plan.seeds) == 5
    assert load_plan(configs / "benchmark.yaml", quick=True).seeds == [1]
