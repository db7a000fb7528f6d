"""The reuse of finished seeds ignores configuration keys that hold their default value, so adding a setting never
silently retrains the whole results table; any other difference trains the seed again, and the table says why."""

import copy
import dataclasses
import json

import pytest
import yaml

from neurank.models import model_classes
from neurank.workflows.experiment import SEED_RESULT, load_seed_run
from neurank.workflows.results_table import load_plan, run_benchmark
from neurank.workflows.reuse import config_differences, why_retrained

MEASURES = ["AP", "RR"]


def write_seed(run_dir, config_dict, measures=MEASURES):
    run_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "seed": 7,
        "metrics": {"AP": 0.5, "RR": 0.5},
        "per_query": {"AP": {"1": 0.5}, "RR": {"1": 0.5}},
        "train_seconds": 1.0,
        "best_epoch": 1,
        "pairs_per_second": 10.0,
        "finished_at": 1_700_000_000.0,
    }
    saved = {"config": config_dict, "measures": measures, "result": result}
    (run_dir / SEED_RESULT).write_text(json.dumps(saved), encoding="utf-8")


def saved_without(config, *keys):
    """`config` as a seed.json written before the settings `keys` ("section.key") existed holds it."""
    values = json.loads(json.dumps(config.to_dict()))
    for key in keys:
        section, name = key.split(".")
        del values[section][name]
    return values


def test_a_seed_saved_before_a_default_valued_setting_existed_is_reused(tiny_config, tmp_path):
    assert tiny_config.train.ema == 0.0 and "dropout" in tiny_config.model_config
    # Written before train.ema and the model's dropout (here at MatchPyramid's default) were settings.
    default_dropout = model_classes("match_pyramid")[1]().dropout
    config = dataclasses.replace(tiny_config, model_config={**tiny_config.model_config, "dropout": default_dropout})
    write_seed(tmp_path / "seed", saved_without(config, "train.ema", "model_config.dropout"))
    assert config_differences(saved_without(config, "train.ema", "model_config.dropout"), config) == []
    reused = load_seed_run(tmp_path / "seed", config, MEASURES)
    assert reused is not None and reused.metrics == {"AP": 0.5, "RR": 0.5}
    assert why_retrained(tmp_path / "seed" / SEED_RESULT, config, MEASURES) is None


def test_a_changed_or_non_default_value_trains_the_seed_again_and_says_why(tiny_config, tmp_path):
    write_seed(tmp_path / "seed", saved_without(tiny_config, "train.ema"))
    for config, why in (
        (
            dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, ema=0.9)),
            "train.ema: 0.0 -> 0.9",
        ),
        (
            dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, lr=0.02)),
            "train.lr: 0.01 -> 0.02",
        ),
        (
            dataclasses.replace(tiny_config, model_config={**tiny_config.model_config, "dropout": 0.5}),
            "model_config.dropout: 0.2 -> 0.5",
        ),
    ):
        assert load_seed_run(tmp_path / "seed", config, MEASURES) is None
        assert why_retrained(tmp_path / "seed" / SEED_RESULT, config, MEASURES) == why
    assert load_seed_run(tmp_path / "seed", tiny_config, ["AP"]) is None
    assert why_retrained(tmp_path / "seed" / SEED_RESULT, tiny_config, ["AP"]) == 'measures: ["AP", "RR"] -> ["AP"]'


def test_keys_nobody_knows_and_embedding_sizes_are_compared_as_written(tiny_config):
    saved = json.loads(json.dumps(tiny_config.to_dict()))
    odd = copy.deepcopy(saved)
    odd["train"]["retired_setting"] = 1  # a setting this neurank no longer has: its default is unknown
    assert config_differences(odd, tiny_config) == ["train.retired_setting: 1 -> absent"]
    # Left out of model_config, the embedding size follows embeddings.dim (8 here), not the model's default (100):
    # an explicit 100 is another experiment.
    bigger = dataclasses.replace(tiny_config, model_config={**tiny_config.model_config, "embedding_dim": 100})
    assert config_differences(saved, bigger) == ["model_config.embedding_dim: absent -> 100"]


@pytest.mark.slow
def test_the_results_table_reuses_old_seeds_and_logs_why_it_retrains_others(tiny_config, tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_config.to_dict()))
    plan = {
        "collections": {"wikiqa": {"config": "base.yaml", "measures": MEASURES}},
        "models": {"knrm": {}},
        "seeds": [1],
        "quick": {"seeds": [1], "overrides": ["train.epochs=1"]},
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(plan))
    plan = load_plan(tmp_path / "bench.yaml", quick=True)
    run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    seed_file = tmp_path / "runs" / "wikiqa" / "knrm" / "seed-1" / SEED_RESULT
    saved = json.loads(seed_file.read_text())
    del saved["config"]["train"]["ema"]  # as a seed trained before train.ema existed
    seed_file.write_text(json.dumps(saved))
    lines = []
    run_benchmark(plan, tmp_path / "runs", log=lines.append)
    assert len(lines) == 1 and "earlier run" in lines[0]
    base = plan.collections["wikiqa"]
    plan.collections["wikiqa"] = dataclasses.replace(base, train=dataclasses.replace(base.train, lr=0.5))
    lines = []
    run_benchmark(plan, tmp_path / "runs", log=lines.append)
    assert lines[0] == "wikiqa knrm seed 1: trained again; its earlier result had train.lr: 0.01 -> 0.5"
    assert "earlier run" not in lines[1]
