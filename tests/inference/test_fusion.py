"""Interpolation with the first stage: values by hand, the dev-chosen weight, and its use at re-ranking."""

import dataclasses

import pytest

from neurank.collections import Qrel, ScoredDoc
from neurank.data.examples import QueryExample
from neurank.inference.checkpoint import load_checkpoint
from neurank.inference.fusion import fuse, tune_alpha
from neurank.inference.reranker import Reranker
from neurank.training import train


def example():
    # First-stage scores 4, 2, 1 normalised by the max: 1.0, 0.5, 0.25.
    return QueryExample("q", [2], ["a", "b", "c"], [[2], [3], [4]], [0, 1, 0], [0.0, 1.0, 0.0], [1.0, 0.5, 0.25])


def test_fuse_by_hand():
    run = [ScoredDoc("q", "a", -1.0), ScoredDoc("q", "b", 3.0), ScoredDoc("q", "c", 1.0)]  # min-max: 0, 1, 0.5
    fused = {r.doc_id: r.score for r in fuse(run, [example()], 0.4)}
    assert fused["a"] == pytest.approx(0.4 * 0 + 0.6 * 1.0)
    assert fused["b"] == pytest.approx(0.4 * 1 + 0.6 * 0.5)
    assert fused["c"] == pytest.approx(0.4 * 0.5 + 0.6 * 0.25)


def test_tune_alpha_prefers_the_model_when_it_ranks_the_relevant_doc_first():
    run = [ScoredDoc("q", "a", 0.0), ScoredDoc("q", "b", 5.0), ScoredDoc("q", "c", 1.0)]
    qrels = [Qrel("q", "b", 1)]
    alpha, value, values = tune_alpha(run, [example()], qrels, "RR")
    assert values[0.0] == pytest.approx(0.5)  # first stage alone ranks b second
    assert value == 1.0 and alpha == 1.0  # ties go to the larger weight


def test_training_with_fusion_stores_the_weight_and_reranking_uses_it(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, fusion=True, epochs=1))
    result = train(config, tmp_path / "run", progress=False)
    alpha = load_checkpoint(tmp_path / "run" / "best.pt")["fusion_alpha"]
    assert result["fusion"]["alpha"] == alpha and 0.0 <= alpha <= 1.0
    reranker = Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    assert reranker.fusion_alpha == alpha
    # With alpha 0 the re-ranked order is the first stage's.
    reranker.fusion_alpha = 0.0
    ranked = reranker.rank("who wrote hamlet", ["paris is in france", "hamlet was written by shakespeare"])
    assert ranked[0].doc_id == "1"


def test_fusion_reads_the_best_epochs_dev_scores_and_gets_what_scoring_dev_again_gives(tiny_config, tmp_path):
    from neurank.data.prepare import prepare_data
    from neurank.training.loop import _tune_fusion, make_model

    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, fusion=True))
    outcome = train(config, tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    data = prepare_data(config)
    model = make_model(config, len(data.vocab), None)  # untrained: _tune_fusion must load best.pt's weights itself
    again = _tune_fusion(model, data, config, outcome["metric"], tmp_path / "run" / "best.pt", "cpu", dev_run=None)
    assert again == outcome["fusion"] and checkpoint["fusion_alpha"] == again["alpha"]
