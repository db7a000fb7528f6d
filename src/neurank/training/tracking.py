"""What a training run reports while it runs, beside `metrics.jsonl`: TensorBoard scalars, when the `tensorboard`
package is installed (the `tensorboard` extra), and the gradient norm that both record.

    tensorboard --logdir runs/          # every run's OUTPUT_DIR/tensorboard

Per step: `train/loss`, `train/lr` (the rate the step used) and `train/grad_norm` (the total norm of the dense
gradients before clipping). Per epoch: `train/epoch_loss`, `dev/<metric>`, `train/epoch_grad_norm`, with the step as
x axis so the curves line up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn


def read_metrics_lines(path: str | Path) -> list[tuple[str, dict]]:
    """The records of a `metrics.jsonl`, each with its line as written, in file order; [] when there is no file.

    Raises:
        ValueError: the file is not UTF-8, a line is not a JSON object, or a record has no integer ``epoch``,
            naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        number = error.object[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{number}: expected UTF-8 text (one JSON record per line), found byte "
            f"0x{error.object[error.start]:02x}"
        ) from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: expected one JSON record per line ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise ValueError(f'{path}:{number}: expected a JSON object with an integer "epoch", found {line[:60]!r}')
        records.append((line, record))
    return records


def gradient_norm(parameters: Iterable[nn.Parameter], max_norm: float = 0.0) -> float | None:
    """The total L2 norm of the gradients of `parameters` (before clipping); clips them to `max_norm` when it is > 0.

    The norm is what `clip_grad_norm_` computes anyway, so with clipping it costs nothing extra; without, it is one
    fused norm over the gradients. Returns None when no parameter has a gradient.
    """
    parameters = [p for p in parameters if p.grad is not None]
    if not parameters:
        return None
    if max_norm:
        return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    grads = [p.grad for p in parameters if p.grad is not None]  # all of them; the test types them as tensors
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return float(torch.nn.utils.get_total_norm(grads))
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


class TensorBoardLog:
    """TensorBoard scalars in `log_dir`, or nothing at all when tensorboard is not installed (`active` says which).

    Args:
        log_dir: the event files' folder (training uses OUTPUT_DIR/tensorboard).
        purge_step: the first step this run logs: TensorBoard drops events an earlier run logged in `log_dir` at or
            after it, so a resumed run's curves join without a doubled stretch and a fresh run replaces an old one.
        enabled: False writes nothing (the ranks other than 0 of a distributed run).
    """

    def __init__(self, log_dir: str | Path, purge_step: int | None = None, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except ImportError:
            return
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def step(self, step: int, loss: float, lr: float | torch.Tensor, grad_norm: float | None) -> None:
        """One optimisation step's loss, learning rate (a tensor where the optimizer was given one) and gradient
        norm."""
        if self.writer is None:
            return
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        if grad_norm is not None and math.isfinite(grad_norm):
            self.writer.add_scalar("train/grad_norm", grad_norm, step)

    def epoch(self, record: dict) -> None:
        """An epoch's `metrics.jsonl` record: its mean loss, dev metric(s) and mean gradient norm, at its last step."""
        if self.writer is None:
            return
        step = record["step"]
        self.writer.add_scalar("train/epoch_loss", record["train_loss"], step)
        for key, value in record.items():
            if key.startswith("dev_") and value is not None:
                self.writer.add_scalar(f"dev/{key[4:]}", value, step)
        if record.get("grad_norm") is not None:
            self.writer.add_scalar("train/epoch_grad_norm", record["grad_norm"], step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
