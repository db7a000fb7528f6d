"""Experiment configs: YAML, dotted overrides, and clear errors for keys that do not exist."""

from pathlib import Path

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
    from neurank.config import SHIPPED_CONFIGS, shipped_configs
    from neurank.workflows.results_table import load_plan

    assert shipped_configs() == ["benchmark", "nfcorpus", "wikiqa"]
    for name in shipped_configs():
        if name != "benchmark":
            assert load_config(name) == load_config(SHIPPED_CONFIGS / f"{name}.yaml")
    plan = load_plan("benchmark")
    assert set(plan.collections) == {"wikiqa", "nfcorpus"} and len(plan.seeds) == 5
    assert plan.collections["wikiqa"] == load_config("wikiqa")  # the task config beside benchmark.yaml, unchanged
    assert load_plan("benchmark", quick=True).seeds == [1]


def test_a_bare_name_finds_the_shipped_config_from_any_directory(tmp_path, monkeypatch):
    from neurank.config import SHIPPED_CONFIGS, resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("wikiqa") == SHIPPED_CONFIGS / "wikiqa.yaml"
    assert load_config(Path("wikiqa"), ["train.lr=3e-4"]).train.lr == pytest.approx(3e-4)  # the CLI passes a Path
    # A file of that name in the working directory wins; a path (suffix or directory) is never looked up by name.
    Path("wikiqa").write_text("data:\n  collection: nfcorpus\n")
    assert load_config("wikiqa").data.collection == "nfcorpus"
    for missing in ("wikiqa.yaml", "configs/wikiqa.yaml", "msmarco"):
        with pytest.raises(
            FileNotFoundError, match=r"config file not found \(shipped configs, by name: benchmark, nfcorpus, wikiqa\)"
        ):
            load_config(missing)


def test_a_benchmark_file_anywhere_names_shipped_task_configs(tmp_path, monkeypatch):
    from neurank.workflows.results_table import load_plan

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(
        "collections:\n  wikiqa: {config: wikiqa, measures: [AP]}\n  nfcorpus: {config: nfcorpus.yaml}\n"
        "models:\n  knrm: {}\nseeds: [3]\n"
    )
    plan = load_plan(tmp_path / "mine.yaml")
    assert plan.collections == {"wikiqa": load_config("wikiqa"), "nfcorpus": load_config("nfcorpus")}
    (tmp_path / "odd.yaml").write_text("collections:\n  wikiqa: {config: elsewhere.yaml}\nmodels: {}\n")
    with pytest.raises(FileNotFoundError, match=r"odd.yaml: collection 'wikiqa': config 'elsewhere.yaml' not found"):
        load_plan("odd.yaml")
    with pytest.raises(FileNotFoundError, match=r"^nothing: benchmark config not found"):
        load_plan("nothing")
