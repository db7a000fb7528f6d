"""What training records as it runs: metrics.jsonl (always), TensorBoard scalars (when tensorboard is installed),
and the gradient norm both carry."""

from __future__ import annotations

import builtins
import dataclasses
import json

import pytest
import torch

from neurank.training import train
from neurank.training.tracking import TensorBoardLog, gradient_norm


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_gradient_norm_is_the_total_norm_and_clips_only_when_asked():
    first, second = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    first.grad, second.grad = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 4.0])
    unused = torch.nn.Parameter(torch.zeros(1))  # no gradient: left out
    assert gradient_norm([first, second, unused]) == pytest.approx(5.0)
    assert first.grad.tolist() == [3.0, 0.0, 0.0]  # measured, not clipped
    assert gradient_norm([first, second], max_norm=1.0) == pytest.approx(5.0)  # the norm before clipping
    assert torch.linalg.vector_norm(torch.cat([first.grad, second.grad])).item() == pytest.approx(1.0, abs=1e-5)
    assert gradient_norm([unused]) is None


def test_metrics_jsonl_records_loss_dev_metric_lr_and_grad_norm_without_clipping(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, grad_clip=0.0, epochs=2))
    train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert record["train_loss"] > 0 and 0.0 <= record["dev_AP"] <= 1.0
        assert record["grad_norm"] is not None and record["grad_norm"] > 0
    # The rate after each epoch's last step: the linear schedule reaches 0 at the end of training.
    assert records[0]["lr"] > records[1]["lr"] >= 0.0


def test_tensorboard_gets_every_step_and_every_epoch(tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    result = train(tiny_config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scalars = read_scalars(tmp_path / "run" / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, result["steps"] + 1))
    assert len(scalars["train/lr"]) == len(scalars["train/grad_norm"]) == result["steps"]
    # The linear schedule decays from the configured rate: the first step uses lr itself.
    assert scalars["train/lr"][0][1] == pytest.approx(tiny_config.train.lr)
    assert scalars["train/lr"][-1][1] < scalars["train/lr"][0][1]
    dev = scalars["dev/AP"]
    assert [step for step, _ in dev] == [r["step"] for r in records]
    assert [value for _, value in dev] == pytest.approx([r["dev_AP"] for r in records])
    assert [v for _, v in scalars["train/epoch_loss"]] == pytest.approx([r["train_loss"] for r in records])


def test_a_fresh_run_in_the_same_folder_replaces_the_old_curves(tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    short = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=1))
    train(tiny_config, tmp_path / "run", progress=False)
    result = train(short, tmp_path / "run", progress=False, overwrite=True)
    scalars = read_scalars(tmp_path / "run" / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, result["steps"] + 1))
    assert len(scalars["dev/AP"]) == 1


def test_without_tensorboard_training_still_writes_metrics(tiny_config, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith(("torch.utils.tensorboard", "tensorboard")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert not TensorBoardLog(tmp_path / "tb").active
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=1))
    train(config, tmp_path / "run", progress=False)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (tmp_path / "run" / "tensorboard").exists()
