"""Mixed precision: the option's validation, training under autocast (bf16, and fp16's loss scaling exercised on
the CPU), and bf16 re-ranking on WikiQA preserving the fp32 rankings."""

import dataclasses
import json

import pytest
import torch

from neurank.cli import main
from neurank.collections import ScoredDoc
from neurank.evaluation import evaluate
from neurank.evaluation.agreement import ranking_agreement
from neurank.inference.checkpoint import load_checkpoint
from neurank.inference.reranker import Reranker
from neurank.runtime.precision import check_precision
from neurank.training import train


def test_precision_choices_are_checked_against_the_device():
    check_precision("fp32", "cpu")
    check_precision("bf16", "cpu")
    with pytest.raises(ValueError, match="unknown precision 'half'; valid: fp32, bf16, fp16"):
        check_precision("half", "cpu")
    with pytest.raises(ValueError, match="fp16 runs on CUDA only .* use bf16"):
        check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="not supported on mps"):
        check_precision("bf16", "mps")


def test_command_line_names_a_bad_precision(capsys, tmp_path, tiny_config):
    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config.to_dict()))
    for args in (
        ["train", config, "--output-dir", tmp_path / "run", "--precision", "fp16"],
        ["train", config, "--output-dir", tmp_path / "run", "--precision", "fp8"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "precision" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_bf16_training_runs_and_records_its_precision(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=2))
    result = train(config, tmp_path / "bf16", progress=False, precision="bf16")
    checkpoint = load_checkpoint(tmp_path / "bf16" / "last.pt")
    assert result["steps"] > 0 and checkpoint["precision"] == "bf16"
    # weights stay fp32
    assert all(t.dtype == torch.float32 for t in checkpoint["state_dict"].values() if t.is_floating_point())


def test_fp16_loss_scaling_path_trains_and_resumes_exactly(tiny_config, tmp_path, monkeypatch):
    # fp16 is a CUDA option; CPU autocast also has float16, which lets this machine run the loop's GradScaler path
    # (scale, unscale before clipping, step, update, and the scaler's state in the checkpoint).
    import neurank.training.loop as loop

    monkeypatch.setattr(loop, "check_precision", lambda precision, device: None)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(epoch, record):
        if epoch == 0:
            raise Killed

    train(tiny_config, tmp_path / "straight", progress=False, precision="fp16")
    with pytest.raises(Killed):
        train(tiny_config, tmp_path / "killed", progress=False, precision="fp16", on_epoch_end=kill_after_first_epoch)
    train(tiny_config, tmp_path / "killed", progress=False, precision="fp16", resume=True)
    straight, resumed = (
        load_checkpoint(tmp_path / "straight" / "last.pt"),
        load_checkpoint(tmp_path / "killed" / "last.pt"),
    )
    assert straight["grad_scaler"]["scale"] > 0  # an enabled scaler, saved
    for name, tensor in straight["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_loss"] == r["train_loss"] for r in records)  # no NaN


def test_ranking_agreement_by_hand():
    a = [
        ScoredDoc("q", "d1", 3.0),
        ScoredDoc("q", "d2", 2.0),
        ScoredDoc("q", "d3", 1.0),
        ScoredDoc("p", "d1", 1.0),
        ScoredDoc("p", "d2", 0.0),
    ]
    b = [
        ScoredDoc("q", "d1", 2.0),
        ScoredDoc("q", "d2", 3.0),
        ScoredDoc("q", "d3", 1.0),
        ScoredDoc("p", "d1", 5.0),
        ScoredDoc("p", "d2", 4.0),
    ]
    agreement = ranking_agreement(a, b)
    # q: one of three pairs swapped, tau = (2 - 1) / 3; p: same order, tau = 1.
    assert agreement["kendall_tau"] == pytest.approx((1 / 3 + 1) / 2)
    assert agreement["same_ranking"] == 0.5 and agreement["same_top"] == 0.5 and agreement["queries"] == 2
    with pytest.raises(ValueError, match="same"):
        ranking_agreement(a, b[:-1])


@pytest.mark.integration
@pytest.mark.slow  # BM25 over WikiQA, one training epoch, two re-rankings of dev (5-12 s)
def test_bf16_reranking_preserves_the_fp32_rankings_on_wikiqa(shared_data, tmp_path):
    from neurank.config import load_config
    from neurank.data.prepare import prepare_data

    overrides = [
        f"data.data_dir={shared_data}",
        "embeddings.source=random",
        "train.fusion=false",
        "data.max_train_queries=300",
        "train.epochs=1",
        "train.device=cpu",
    ]
    config = load_config("wikiqa", overrides)
    data = prepare_data(config)
    train(config, tmp_path / "run", progress=False, data=data)
    qrels = data.collection.split("dev").qrels
    runs = {
        p: Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu", precision=p).rerank_collection(
            data.collection, "dev"
        )
        for p in ("fp32", "bf16")
    }
    agreement = ranking_agreement(runs["fp32"], runs["bf16"])
    ap = {p: evaluate(run, qrels, ["AP"])["AP"] for p, run in runs.items()}
    # bfloat16 keeps 8 significant bits (relative rounding ~0.4 %), so only candidates whose fp32 scores are that
    # close can swap. Measured here: tau 0.996, same top answer for all 122 questions, AP 0.6137 vs 0.6122.
    assert runs["fp32"] != runs["bf16"]  # bf16 did run: the scores differ
    assert agreement["kendall_tau"] >= 0.98 and agreement["same_top"] >= 0.95
    assert abs(ap["fp32"] - ap["bf16"]) <= 0.01
