"""The results table trains from the task configs' `models:` sections: the same configs as before for the shipped
table, and the rules for a benchmark file of one's own."""

import json
from pathlib import Path

import pytest
import yaml

from neurank.config import ConfigError, load_config
from neurank.workflows.results_table import load_plan, results_markdown

BEFORE = Path(__file__).with_name("benchmark_configs_f02b5ab.json")


def test_the_results_table_trains_every_model_as_before():
    """benchmark.yaml takes each model's options from the task configs now; every (collection, model) config the
    table trains, full and --quick, is the one it trained before (commit f02b5ab), so no number changes."""
    before = json.loads(BEFORE.read_text())["configs"]
    new_keys = {"data": {"dev_fraction": None}, "embeddings": {"extra_text": None}, "train": {"head_lr": None}}

    def as_before(config) -> dict:
        values = json.loads(json.dumps(config.to_dict()))
        for section, defaults in new_keys.items():
            for key, default in defaults.items():
                assert values[section].pop(key) == default
        return values

    seen = set()
    for mode in ("full", "quick"):
        plan = load_plan("benchmark", quick=mode == "quick")
        for collection, base in plan.collections.items():
            key = f"{mode}/{collection}/base"
            assert {s: as_before(base)[s] for s in ("data", "embeddings", "train")} == before[key]
            seen.add(key)
            for model in plan.models:
                key = f"{mode}/{collection}/{model}"
                assert as_before(plan.experiment_config(collection, model)) == before[key], key
                seen.add(key)
    assert seen == set(before)


def write_plan(tmp_path, tiny_config, collection: dict | None = None, models=None) -> Path:
    """A task config with a `models:` section (from the tiny config) and a benchmark file naming its models."""
    task = tiny_config.to_dict()
    task["models"] = {
        "match_pyramid": task.pop("model_config"),
        "knrm": {"n_kernels": 5},
        "drmm": None,
        "tk": {"dropout": 0.1, "train": {"epochs": 7, "patience": 7}},
    }
    task["model_config"] = {"use_first_stage_score": True}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task))
    plan = {
        "collections": {"wikiqa": {"config": "task.yaml", "measures": ["AP"], **(collection or {})}},
        "models": models or ["match_pyramid", "knrm", "drmm", "tk"],
        "seeds": [1, 2],
        "quick": {"seeds": [1], "overrides": ["train.epochs=1"]},
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(plan))
    return tmp_path / "bench.yaml"


def test_each_model_is_trained_as_model_name_would_train_it(tmp_path, tiny_config):
    plan = load_plan(write_plan(tmp_path, tiny_config))
    for model in plan.models:
        assert plan.experiment_config("wikiqa", model) == load_config(tmp_path / "task.yaml", [f"model={model}"])
    # --quick's training options win over a model's own, as train.KEY= on the command line does.
    quick = load_plan(tmp_path / "bench.yaml", quick=True).experiment_config("wikiqa", "tk")
    assert (quick.train.epochs, quick.train.patience) == (1, 7)
    assert quick == load_config(tmp_path / "task.yaml", ["model=tk", "train.epochs=1"])


def test_a_collection_can_replace_a_models_whole_entry(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"models": {"tk": {"dropout": 0.3}}, "train": {"knrm": {"lr": 0.5}}})
    plan = load_plan(path)
    tk, knrm = plan.experiment_config("wikiqa", "tk"), plan.experiment_config("wikiqa", "knrm")
    assert tk.model_config == {"dropout": 0.3, "use_first_stage_score": True}
    assert tk.train.epochs == tiny_config.train.epochs  # the entry's training went with it
    assert knrm.model_config == {"n_kernels": 5, "use_first_stage_score": True} and knrm.train.lr == 0.5


def test_a_benchmark_over_a_task_config_names_its_models_only(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, models={"knrm": {"n_kernels": 3}, "drmm": {}})
    with pytest.raises(ConfigError, match=r"models: 'knrm' has options here, but the task config of 'wikiqa' has"):
        load_plan(path)
    path = write_plan(tmp_path, tiny_config, models=["knrm", "pacrr"])
    with pytest.raises(ConfigError, match=r"wikiqa: task\.yaml: models: no entry for model 'pacrr'"):
        load_plan(path)
    path = write_plan(tmp_path, tiny_config, models=["knrm", "bert"])
    with pytest.raises(ConfigError, match="unknown model 'bert'"):
        load_plan(path)


@pytest.mark.slow  # one seed of KNRM, one epoch (about 2 s)
def test_the_table_says_which_task_config_set_the_options(tmp_path, tiny_config):
    from neurank.workflows.results_table import run_benchmark

    plan = load_plan(write_plan(tmp_path, tiny_config, models=["knrm"]), quick=True)
    results = run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    text = results_markdown(results, plan, "neurank benchmark bench.yaml --quick", 1.0)
    assert "Set for wikiqa by task.yaml and the benchmark config, in place of the defaults: knrm with options " in text
    saved = json.loads((tmp_path / "runs" / "wikiqa" / "knrm" / "seed-1" / "seed.json").read_text())
    assert saved["config"]["model_config"] == {"n_kernels": 5, "use_first_stage_score": True}
