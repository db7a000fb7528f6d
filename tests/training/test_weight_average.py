"""train.ema: an exponential moving average of the weights, evaluated, selected and saved in place of the weights
being trained, without changing the training itself. Exact resume with it: tests/training/test_loop.py."""

import dataclasses
import json

import pytest
import torch

import neurank.training.loop as loop
from neurank.collections import load_collection
from neurank.config import ConfigError, config_from_dict
from neurank.evaluation import evaluate
from neurank.inference.checkpoint import load_checkpoint
from neurank.inference.reranker import Reranker
from neurank.training import train


def with_train(config, **options):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **options))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_the_average_leaves_training_alone_and_is_what_is_saved(tiny_config, tmp_path):
    train(tiny_config, tmp_path / "plain", progress=False)
    result = train(with_train(tiny_config, ema=0.9), tmp_path / "ema", progress=False)
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")
    averaged = load_checkpoint(tmp_path / "ema" / "last.pt")
    # Same seed, same batches: the weights trained are the plain run's, bit for bit.
    assert_same(averaged["training_state_dict"], plain["state_dict"])
    assert averaged["ema_updates"] == result["steps"] > 0
    assert not torch.equal(averaged["state_dict"]["score.weight"], plain["state_dict"]["score.weight"])
    assert "training_state_dict" not in plain and "ema_updates" not in plain
    # best.pt, the ranker, holds the average alone: the trained weights beside it are for resuming from last.pt.
    best = load_checkpoint(tmp_path / "ema" / "best.pt")
    assert "training_state_dict" not in best and "optimizers" not in best and best["ema_updates"] > 0


def test_the_average_is_taken_after_every_step_by_hand(tiny_config, tmp_path, monkeypatch):
    """Record the weights each update sees, and average them by hand: the first step's weights, then
    average = decay * average + (1 - decay) * weights after every later step."""
    seen = []

    class Recording(loop.AveragedModel):
        def update_parameters(self, model):
            seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            super().update_parameters(model)

    monkeypatch.setattr(loop, "AveragedModel", Recording)
    decay = 0.7
    train(with_train(tiny_config, ema=decay), tmp_path / "ema", progress=False)
    saved = load_checkpoint(tmp_path / "ema" / "last.pt")
    expected = dict(seen[0])
    for weights in seen[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    assert len(seen) == saved["ema_updates"]
    for name, tensor in saved["state_dict"].items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-6, msg=name)
    assert_same(saved["training_state_dict"], seen[-1])


def test_dev_selection_and_the_ranker_use_the_average(tiny_config, tmp_path):
    config = with_train(tiny_config, ema=0.8)
    result = train(config, tmp_path / "ema", progress=False)
    records = [json.loads(line) for line in (tmp_path / "ema" / "metrics.jsonl").read_text().splitlines()]
    assert result["best_metric"] == max(r["dev_AP"] for r in records)
    # The ranker rebuilt from best.pt scores dev exactly as the loop did when it selected that epoch.
    reranker = Reranker.from_checkpoint(tmp_path / "ema" / "best.pt", device="cpu")
    data = loop.prepare_data(config)
    run = loop.score_examples(reranker.model, data.dev_examples)
    qrels = load_collection("wikiqa", config.data.data_dir).split("dev").qrels
    assert evaluate(run, qrels, ["AP"])["AP"] == pytest.approx(result["best_metric"], abs=1e-12)


def test_resuming_with_the_other_setting_is_refused(tiny_config, tmp_path):
    one_epoch = with_train(tiny_config, epochs=1)
    train(one_epoch, tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match=r"last.pt: written without a weight average \(train.ema\)"):
        train(with_train(tiny_config, ema=0.9), tmp_path / "plain", progress=False, resume=True)
    train(with_train(one_epoch, ema=0.9), tmp_path / "ema", progress=False)
    with pytest.raises(ValueError, match="written with a weight average"):
        train(tiny_config, tmp_path / "ema", progress=False, resume=True)


@pytest.mark.parametrize("decay", [1.0, -0.1, 2])
def test_a_decay_outside_zero_to_one_is_a_config_error(decay):
    with pytest.raises(ConfigError, match=r"^run\.yaml: train\.ema: expected a decay in \[0, 1\) \(0: off\), found"):
        config_from_dict({"train": {"ema": decay}}, source="run.yaml")
