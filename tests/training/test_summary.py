"""What training says it made: the dev value of what best.pt ranks with, fused and unfused, and its first stage."""

import dataclasses

import pytest

from neurank.collections import load_collection
from neurank.evaluation import evaluate
from neurank.inference import load_reranker
from neurank.inference.checkpoint import load_checkpoint
from neurank.inference.first_stage import bm25_first_stage
from neurank.training import train
from neurank.training.loop import dev_summary


def test_dev_summary_by_hand():
    fusion = {"alpha": 0.4, "value": 0.8, "values": {}}
    assert dev_summary("AP", 0.7, fusion) == {
        "metric": "AP",
        "unfused": 0.7,
        "fused": 0.8,
        "alpha": 0.4,
        "ranks_with": "fused",
    }
    assert dev_summary("AP", 0.7, None)["ranks_with"] == "model"
    assert dev_summary("AP", float("-inf"), None, saved=False) == {
        "metric": "AP",
        "unfused": None,
        "fused": None,
        "alpha": None,
        "ranks_with": None,
    }


@pytest.mark.parametrize("fusion", [True, False], ids=["fused", "model-alone"])
def test_the_dev_values_are_what_the_checkpoint_ranks_dev_with(tiny_config, tmp_path, fusion):
    config = dataclasses.replace(
        tiny_config,
        model_config={**tiny_config.model_config, "use_first_stage_score": True},
        train=dataclasses.replace(tiny_config.train, epochs=2, fusion=fusion),
    )
    result = train(config, tmp_path / "run", progress=False)
    dev, metric = result["dev"], result["metric"]
    assert result["first_stage"] == bm25_first_stage().to_dict()
    assert dev["metric"] == metric and dev["unfused"] == result["best_metric"]
    reranker = load_reranker(tmp_path / "run" / "best.pt", device="cpu")
    collection = load_collection("wikiqa", tiny_config.data.data_dir)
    qrels = collection.split("dev").qrels
    ranked = evaluate(reranker.rerank_collection(collection, "dev"), qrels, [metric])[metric]
    if fusion:
        assert dev["ranks_with"] == "fused" and dev["alpha"] == reranker.fusion_alpha == result["fusion"]["alpha"]
        assert ranked == pytest.approx(dev["fused"]) and dev["fused"] == result["fusion"]["value"]
        assert load_checkpoint(tmp_path / "run" / "best.pt")["fusion"]["fused"] == dev["fused"]
        reranker.fusion_alpha = None
        alone = evaluate(reranker.rerank_collection(collection, "dev"), qrels, [metric])[metric]
        assert alone == pytest.approx(dev["unfused"])
    else:
        assert dev["ranks_with"] == "model" and dev["fused"] is None and dev["alpha"] is None
        assert ranked == pytest.approx(dev["unfused"])


def test_no_epoch_is_refused_and_a_run_without_a_checkpoint_says_so(tiny_config, tmp_path):
    from neurank.cli.train import training_summary
    from neurank.config import ConfigError
    from neurank.training.loop import dev_summary

    # train.epochs=0 "finished" and named a best.pt that did not exist (issue 22): the config refuses it now.
    with pytest.raises(ConfigError, match=r"^epochs: expected an integer 1 or more, found 0$"):
        dataclasses.replace(tiny_config.train, epochs=0)
    # A run can still end without best.pt (a resumed run whose patience had already run out): the summary says so.
    result = {"dev": dev_summary("AP", float("-inf"), None, saved=False), "metric": "AP", "epochs": 3}
    assert (
        training_summary(result, tmp_path / "best.pt")
        == "no epoch was trained (3 epochs), so no checkpoint was written"
    )
