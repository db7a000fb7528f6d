"""The training loop, readable top to bottom: take the prepared data (`neurank.data.prepare`), build the model,
train with AdamW, evaluate on dev every epoch under `torch.inference_mode`, keep the best checkpoint, stop early,
and resume exactly after a kill.

    result = train(load_config("wikiqa"), "runs/wikiqa")

Determinism: one seed drives everything (parameter init, dropout, negative sampling, batch order). Negatives and
batch order are functions of (seed, epoch) alone, and last.pt, written at the end of every epoch, holds the
optimizer, scheduler and torch/python random states, so `resume=True` after a kill ends with the same weights as an
uninterrupted run. best.pt, the ranker that is shipped, goes without them (`ranker_payload`).

`train.ema` keeps an exponential moving average of the weights beside the ones being trained (updated after every
step); dev evaluation, model selection and the checkpoints then use the average, and the training is unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from neurank.collections import ScoredDoc
from neurank.collections.textio import atomic_write
from neurank.config import ExperimentConfig, TrainConfig
from neurank.data.collate import collate
from neurank.data.datasets import ListwiseDataset, PairwiseDataset, PointwiseDataset
from neurank.data.examples import QueryExample
from neurank.data.prepare import PreparedData, prepare_data
from neurank.data.sampler import BucketBatchSampler
from neurank.evaluation import evaluate
from neurank.inference.checkpoint import load_checkpoint, save_checkpoint, unwrap
from neurank.inference.first_stage import FirstStage, bm25_first_stage
from neurank.inference.fusion import tune_alpha
from neurank.inference.scorer import InferenceOptions, Scorer
from neurank.models import model_config_to_dict
from neurank.models.layers import saved_model_config
from neurank.runtime.allocator import tune_malloc
from neurank.runtime.device import seed_everything, select_device
from neurank.runtime.distributed import SINGLE_PROCESS, DistributedContext
from neurank.runtime.precision import autocast, check_precision, grad_scaler
from neurank.training.checks import check_model, check_settings
from neurank.training.losses import GROUPED, LOSSES, ranking_loss
from neurank.training.model import make_model
from neurank.training.tracking import TensorBoardLog, gradient_norm, read_metrics_lines


class _TrainState(TypedDict):
    """Where training stands; saved in every checkpoint (top-level keys) and read back on resume."""

    epoch: int
    step: int
    best_metric: float
    best_epoch: int
    bad_epochs: int
    metric: str
    seconds: float


# Model options that, when `model_config` does not set them, come from the `embeddings` section.
def training_first_stage(data: PreparedData) -> FirstStage:
    """The first stage that gave `data` its candidates and scores: what a checkpoint records (`first_stage`).

    `prepare_data` scores candidates with `bm25_run`'s defaults; data prepared otherwise says so in a
    `first_stage` attribute."""
    stage = getattr(data, "first_stage", None)
    return stage if isinstance(stage, FirstStage) else bm25_first_stage()


def training_dataset(config: ExperimentConfig, examples: Sequence[QueryExample]):
    loss, seed = config.train.loss, config.train.seed
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    if loss == "bce":
        return PointwiseDataset(examples)
    if loss in GROUPED:
        return PairwiseDataset(examples, seed=seed)
    return ListwiseDataset(examples, num_negatives=config.train.negatives, seed=seed)


@torch.inference_mode()
def score_examples(
    model: nn.Module,
    examples: Sequence[QueryExample],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    *,
    precision: str = "fp32",
    distributed: DistributedContext | None = None,
) -> list[ScoredDoc]:
    """Score every candidate of `examples`, in their order, in length-bucketed batches (see `neurank.inference.scorer`).

    With `distributed`, the batches are dealt over the ranks and every rank returns the whole run, identical to
    the single-process one (see `neurank.runtime.distributed`).
    """
    if not any(len(example) for example in examples):
        return []
    # The DataLoader this replaced drew its base seed from the global generator; drawing it still keeps every
    # later dropout mask, and so a seed's trained weights, as they were.
    torch.empty((), dtype=torch.int64).random_()
    # The plain module: a DDP wrapper may run collectives in forward, and ranks score different numbers of batches.
    scorer = Scorer(unwrap(model), InferenceOptions(batch_size=batch_size), device)
    with autocast(device, precision):
        return scorer.score_examples(examples, distributed=distributed or SINGLE_PROCESS)


def _parameter_groups(model: torch.nn.Module, dense: list[torch.nn.Parameter], train_cfg: TrainConfig) -> list[dict]:
    """AdamW's parameter groups: one at `lr`, or, with `head_lr` and a model with pretrained weights
    (`Ranker.pretrained_part`), those at `lr` and the others (the new layers) at `head_lr`."""
    part = getattr(model, "pretrained_part", None)
    encoder = getattr(model, part, None) if part else None
    if train_cfg.head_lr is None or not isinstance(encoder, torch.nn.Module):
        return [{"params": dense, "lr": train_cfg.lr}]
    inside = {id(p) for p in encoder.parameters()}
    body = [p for p in dense if id(p) in inside]
    head = [p for p in dense if id(p) not in inside]
    return [
        group
        for group in ({"params": body, "lr": train_cfg.lr}, {"params": head, "lr": train_cfg.head_lr})
        if group["params"]
    ]


def _lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return 1.0 - progress
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"unknown schedule {schedule!r}; valid: constant, linear, cosine")

    return factor


def checkpoint_payload(
    config, model, data: PreparedData, optimizers, schedulers, state: _TrainState, averaged: AveragedModel | None = None
) -> dict[str, Any]:
    """What goes into last.pt: enough to rebuild the ranker alone, and to resume training (best.pt holds it less what
    only resuming reads, `ranker_payload`).

    With a weight average (`train.ema`), "state_dict" holds the average, the weights that were evaluated and that
    the ranker uses; the trained weights and the number of averaged steps are kept beside it for resuming."""
    extra = {}
    if averaged is not None:
        extra = {"training_state_dict": unwrap(model).state_dict(), "ema_updates": int(averaged.n_averaged.item())}
    return {
        "model_name": config.model,
        "model_config": model_config_to_dict(unwrap(model).config),
        "state_dict": (averaged.module if averaged is not None else unwrap(model)).state_dict(),
        **extra,
        **data.encoder.to_dict(),  # vocab, tokenizer, text (`neurank.text.TextEncoder.to_dict`)
        "first_stage": training_first_stage(data).to_dict(),
        "config": config.to_dict(),
        "optimizers": [o.state_dict() for o in optimizers],
        "schedulers": [s.state_dict() for s in schedulers],
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        **state,
    }


# What only resuming reads, from last.pt: best.pt, what is re-ranked with, served, exported and shipped, goes
# without it (for a MiniLM cross-encoder AdamW's state alone is twice the weights).
RESUME_ONLY = ("optimizers", "schedulers", "rng", "grad_scaler", "training_state_dict")


def ranker_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` (`checkpoint_payload`) as best.pt holds it: without the entries only resuming reads (`RESUME_ONLY`:
    the optimizer, scheduler, random and loss-scaler states, and with `train.ema` the trained weights beside the
    average); the ranker, its config, encoder, first stage and the training record stay."""
    return {key: value for key, value in payload.items() if key not in RESUME_ONLY}


def train(
    config: ExperimentConfig,
    output_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    data: PreparedData | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    precision: str = "fp32",
    distributed: DistributedContext | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train `config`'s model, writing `best.pt`, `last.pt` and `metrics.jsonl` to `output_dir` (and TensorBoard
    scalars to `output_dir/tensorboard` when tensorboard is installed; see `neurank.training.tracking`).

    Args:
        resume: continue from `output_dir/last.pt` (FileNotFoundError when there is none: nothing is trained);
            refused (ValueError naming the keys) when `config` differs from the one last.pt was written with,
            beyond the keys in `RESUMABLE_CHANGES`.
        overwrite: train into a folder holding an earlier run (best.pt, last.pt, metrics.jsonl), replacing its files
            as the new ones are written; without it (or `resume`) such a folder is refused with FileExistsError.
        data: prepared data to reuse (several seeds on one collection); built from `config` when None.
        on_epoch_end: called with (epoch, record) after each epoch's checkpoint is written.
        precision: "fp32", "bf16" or "fp16" forward passes (`neurank.runtime.precision`).
        distributed: from `neurank.runtime.distributed.init_distributed` under torchrun: DDP over the ranks, each taking
            its slice of every global batch of `train.batch_size`; rank 0 writes the files and prints.

    Returns:
        ``{"metric", "fusion", "dev", "first_stage", "best_metric", "best_epoch", "epochs", "steps", "seconds",
        "output_dir"}``: ``best_metric`` is the best model's own dev value; ``dev`` says what best.pt ranks with,
        fused and unfused (`dev_summary`); ``first_stage`` is what the checkpoint records as its first stage.
    """
    output_dir = Path(output_dir)
    train_cfg = config.train
    dist = distributed or SINGLE_PROCESS
    # The device, the precision, the settings and the model options are checked before the output folder is made
    # (a mistyped --device or model leaves nothing behind) and before the data is prepared (the expensive part).
    device = dist.place(select_device(train_cfg.device))
    check_precision(precision, device)
    if data is None:
        check_settings(config)
        check_model(config)
    previous = None  # last.pt when resuming; read (and its config checked) before anything is prepared or written
    if dist.is_main:  # other ranks write nothing, possibly on machines without this folder
        _check_output_dir(output_dir, resume=resume, overwrite=overwrite)
        previous = _read_last(output_dir) if resume else None
        if previous is not None:
            _check_resumed_config(output_dir / "last.pt", previous, config)
        output_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(output_dir)
    progress = progress and dist.is_main
    seed_everything(train_cfg.seed)
    if device.type == "cpu":
        tune_malloc()  # every step's activations would be fresh pages to fault in; see neurank.runtime.allocator
    if data is None:
        data = prepare_data(config)
    if dist.enabled:
        dist.check_same("vocabulary and examples", _data_fingerprint(data))
    metric = train_cfg.metric or data.collection.measures[0]

    seed_everything(train_cfg.seed)  # the model's initialisation must not depend on how data was prepared
    if previous is not None:
        # A run started before a scoring option existed resumes with the behaviour it started with.
        before = previous.get("model_config") or {}
        added = {k: v for k, v in saved_model_config(config.model, before).items() if k not in before}
        config = dataclasses.replace(config, model_config={**added, **config.model_config})
    model = make_model(config, data.encoder.vocab_size, data.embeddings)
    set_idf = getattr(model, "set_idf", None)  # the models that weight query terms by IDF (DRMM, PACRR)
    if set_idf is not None and data.idf is not None:
        set_idf(data.idf)
    model = dist.wrap(model.to(device))
    dataset = training_dataset(config, data.train_examples)
    if len(dataset) == 0:
        raise ValueError(
            f"{config.data.collection}/{config.data.train_split}: no training example has a positive candidate"
        )
    sampler = dist.shard_batches(
        BucketBatchSampler(dataset.lengths, train_cfg.batch_size, shuffle=True, seed=train_cfg.seed)
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)

    # Sparse embedding gradients need their own optimizer (AdamW takes dense gradients only).
    embedding = getattr(unwrap(model), "embedding", None)
    sparse = (
        [p for p in embedding.parameters() if p.requires_grad] if embedding is not None and embedding.sparse else []
    )
    dense = [p for p in model.parameters() if p.requires_grad and all(p is not s for s in sparse)]
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(_parameter_groups(unwrap(model), dense, train_cfg), weight_decay=train_cfg.weight_decay)
    ]
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=train_cfg.lr))
    total_steps = train_cfg.epochs * len(loader)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(o, _lr_lambda(train_cfg.schedule, train_cfg.warmup_steps, total_steps))
        for o in optimizers
    ]
    scaler = grad_scaler(device, precision)
    # The weight average (train.ema): a copy of the model that follows it, evaluated and saved in its place.
    averaged = None
    if train_cfg.ema:
        averaged = AveragedModel(unwrap(model), multi_avg_fn=get_ema_multi_avg_fn(train_cfg.ema), use_buffers=True)

    state: _TrainState = {
        "epoch": 0,
        "step": 0,
        "best_metric": -math.inf,
        "best_epoch": -1,
        "bad_epochs": 0,
        "metric": metric,
        "seconds": 0.0,
    }
    metrics_path = output_dir / "metrics.jsonl"
    # Rank 0 reads and sends it, so other machines need no copy of output_dir.
    checkpoint = dist.broadcast(previous)
    if checkpoint is not None:
        if (averaged is not None) != ("ema_updates" in checkpoint):
            written = "with" if "ema_updates" in checkpoint else "without"
            raise ValueError(
                f"{output_dir / 'last.pt'}: written {written} a weight average (train.ema), which this config "
                f"{'does not ask for' if averaged is None else 'asks for'}; resume with the config that wrote it"
            )
        unwrap(model).load_state_dict(checkpoint.get("training_state_dict", checkpoint["state_dict"]))
        if averaged is not None:
            averaged.module.load_state_dict(checkpoint["state_dict"])
            averaged.n_averaged.fill_(checkpoint["ema_updates"])
        for o, s in zip(optimizers, checkpoint["optimizers"], strict=True):
            o.load_state_dict(s)
        for s, s_state in zip(schedulers, checkpoint["schedulers"], strict=True):
            s.load_state_dict(s_state)
        torch.set_rng_state(checkpoint["rng"]["torch"])
        random.setstate(checkpoint["rng"]["python"])
        if checkpoint.get("grad_scaler"):
            scaler.load_state_dict(checkpoint["grad_scaler"])
        # last.pt holds the state it was written with (`checkpoint_payload` spreads it into the checkpoint).
        state = cast(_TrainState, {key: checkpoint[key] for key in state})
        if dist.is_main:
            _truncate_metrics(metrics_path, state["epoch"])
    # A fresh run (into an empty folder, or with overwrite) replaces an earlier metrics.jsonl with its first epoch's
    # record, never before: a run that trains no epoch, or is killed before one ends, leaves the earlier one alone.
    fresh_metrics = checkpoint is None

    # Steps are logged from 1; purging from the next step drops what an earlier run (or a killed one) logged there.
    tensorboard = TensorBoardLog(output_dir / "tensorboard", purge_step=state["step"] + 1, enabled=dist.is_main)
    start = time.perf_counter() - state["seconds"]
    best_dev_run = None
    for epoch in range(state["epoch"], train_cfg.epochs):
        if state["bad_epochs"] >= train_cfg.patience:
            break
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        dist.seed_epoch(train_cfg.seed, epoch)
        model.train()
        losses, grad_norms = [], []
        # disable=None hides the bar when output is not a terminal (CI logs, files); the epoch lines still print.
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{train_cfg.epochs}", disable=None if progress else True, leave=False
        )
        for batch in bar:
            batch = batch.to(device)
            with autocast(device, precision):
                logits = model(
                    batch.query_ids, batch.doc_ids, batch.query_mask, batch.doc_mask, batch.first_stage_score
                )
            loss = ranking_loss(train_cfg.loss, logits.float(), batch.labels, batch.group_size)
            loss = dist.global_batch_mean(loss, len(batch) // batch.group_size)
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if scaler.is_enabled():  # fp16: the norm (and clipping) read the true, unscaled gradients
                for optimizer in optimizers:
                    scaler.unscale_(optimizer)
            grad_norm = gradient_norm(dense, train_cfg.grad_clip)  # before clipping; clips when grad_clip > 0
            grad_norms += [grad_norm] if grad_norm is not None else []
            lr = schedulers[0].get_last_lr()[0]  # the rate this step uses
            for optimizer, scheduler in zip(optimizers, schedulers, strict=True):
                scaler.step(optimizer)
                scheduler.step()
            scaler.update()
            if averaged is not None:
                averaged.update_parameters(unwrap(model))
            state["step"] += 1
            losses.append(loss.item())
            tensorboard.step(state["step"], losses[-1], lr, grad_norm)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")

        evaluated = averaged.module if averaged is not None else model
        run = score_examples(
            evaluated, data.dev_examples, train_cfg.eval_batch_size, device, precision=precision, distributed=dist
        )
        dev_value = evaluate(run, data.collection.split(config.data.dev_split).qrels, [metric])[metric]
        improved = dev_value > state["best_metric"]
        state["epoch"], state["seconds"] = epoch + 1, time.perf_counter() - start
        if improved:
            state["best_metric"], state["best_epoch"], state["bad_epochs"] = dev_value, epoch + 1, 0
            # The best model's dev scores (fp32): fusion tuning reads them instead of scoring dev again.
            best_dev_run = run if precision == "fp32" else None
        else:
            state["bad_epochs"] += 1
        record = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": dist.mean(float(np.mean(losses))),  # the global batches' loss
            f"dev_{metric}": dev_value,
            "lr": schedulers[0].get_last_lr()[0],
            "grad_norm": float(np.mean(grad_norms)) if grad_norms else None,
            "seconds": state["seconds"],
        }
        if dist.is_main:
            payload = checkpoint_payload(config, model, data, optimizers, schedulers, state, averaged)
            payload.update(grad_scaler=scaler.state_dict(), precision=precision, world_size=dist.world_size)
            if improved:
                save_checkpoint(output_dir / "best.pt", ranker_payload(payload))
            save_checkpoint(output_dir / "last.pt", payload)
            if fresh_metrics:
                with atomic_write(metrics_path) as handle:
                    handle.write(json.dumps(record) + "\n")
                fresh_metrics = False
            else:
                with open(metrics_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
        tensorboard.epoch(record)
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}: loss {record['train_loss']:.4f}, dev {metric} {dev_value:.4f}"
                + (" (best)" if improved else "")
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)

    tensorboard.close()
    fusion = None
    if train_cfg.fusion and dist.is_main and (output_dir / "best.pt").is_file():
        fusion = _tune_fusion(model, data, config, metric, output_dir / "best.pt", device, best_dev_run)
        if progress:
            tqdm.write(f"fusion with the first stage: alpha {fusion['alpha']} gives dev {metric} {fusion['value']:.4f}")
    # Every rank returns rank 0's result, and only once best.pt holds its fusion weight.
    fusion = dist.broadcast(fusion)
    return {
        "metric": metric,
        "fusion": fusion,
        "dev": dev_summary(metric, state["best_metric"], fusion, (output_dir / "best.pt").is_file()),
        "first_stage": training_first_stage(data).to_dict(),
        "best_metric": state["best_metric"],
        "best_epoch": state["best_epoch"],
        "epochs": state["epoch"],
        "steps": state["step"],
        "seconds": state["seconds"],
        "output_dir": str(output_dir),
    }


def dev_summary(metric: str, unfused: float, fusion: dict | None, saved: bool = True) -> dict[str, Any]:
    """The dev value of what best.pt ranks with: ``{"metric", "unfused", "fused", "alpha", "ranks_with"}``.

    ``ranks_with`` is "fused" (the model's scores interpolated with the first stage, `neurank.inference.fusion`;
    ``fused`` holds that dev value), "model" (its scores alone: ``fused`` and ``alpha`` are None), or None when no
    best.pt was written (no epoch ran)."""
    ranks_with = ("fused" if fusion is not None else "model") if saved else None
    return {
        "metric": metric,
        "unfused": unfused if saved else None,
        "fused": fusion["value"] if fusion is not None else None,
        "alpha": fusion["alpha"] if fusion is not None else None,
        "ranks_with": ranks_with,
    }


def _read_last(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / "last.pt"
    if not path.is_file():
        # Refused rather than a fresh start: a mistyped --output-dir would otherwise train from scratch under a
        # resume the user believes continues an earlier run.
        raise FileNotFoundError(
            f"{path}: not found, so --resume has nothing to continue; start the run without --resume"
        )
    return load_checkpoint(path)  # on the CPU: random states must stay CPU tensors


# The files that make a folder hold a run: a fresh run into it needs `overwrite` (or `resume`).
RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl")
# Config keys a resume may change: where the data is and what runs it, when to stop (a longer or shorter run; with a
# linear or cosine schedule a changed train.epochs also changes the remaining learning rates), and train.ema, which
# is checked on its own with a message of its own. Any other difference is refused.
RESUMABLE_CHANGES = frozenset(
    {"data.data_dir", "train.device", "train.eval_batch_size", "train.epochs", "train.patience", "train.ema"}
)


def _check_output_dir(output_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is prepared or written, an output folder that is a file, `resume` with `overwrite`, and
    a fresh run into a folder that holds an earlier one."""
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"{output_dir}: --output-dir is a file, not a folder; give a folder for the run's files")
    if resume and overwrite:
        raise ValueError("--resume continues the run in --output-dir and --overwrite replaces it: give one of them")
    found = [name for name in RUN_FILES if (output_dir / name).exists()]
    if found and not resume and not overwrite:
        raise FileExistsError(
            f"{output_dir}: holds an earlier run ({', '.join(found)}); continue it with --resume, replace it with "
            "--overwrite, or give another --output-dir"
        )
    if resume and found and "last.pt" not in found:
        raise FileExistsError(
            f"{output_dir}: holds a run ({', '.join(found)}) without the last.pt --resume continues from; replace it "
            "with --overwrite, or give another --output-dir"
        )


def _remove_stale_temporaries(output_dir: Path) -> None:
    # What a run killed while writing left beside its files (`atomic_write`'s `.NAME.*.tmp`): never read, only removed.
    for name in RUN_FILES:
        for stale in output_dir.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _check_resumed_config(path: Path, checkpoint: dict[str, Any], config: ExperimentConfig) -> None:
    """Refuse to resume `checkpoint` (last.pt) with a config that differs from its own beyond `RESUMABLE_CHANGES`."""
    saved = checkpoint.get("config")
    if not isinstance(saved, dict):
        return  # written before checkpoints carried their config: nothing to compare
    before, now = _flatten(saved), _flatten(config.to_dict())
    # model_config is compared whole: one model's options are not another's, and a key's absence is a change.
    before["model_config"], now["model_config"] = saved.get("model_config"), config.to_dict().get("model_config")
    before = {k: v for k, v in before.items() if not k.startswith("model_config.")}
    now = {k: v for k, v in now.items() if not k.startswith("model_config.")}
    changed = sorted(key for key in before.keys() | now.keys() if before.get(key) != now.get(key))
    # A key absent from last.pt's config is a setting added since it was written: its default is what it trained with.
    defaults = _flatten(ExperimentConfig().to_dict())
    changed = [
        key
        for key in changed
        if key not in RESUMABLE_CHANGES and not (key not in before and key in defaults and now[key] == defaults[key])
    ]
    if changed:
        shown = "; ".join(f"{key}: {before.get(key)!r} in last.pt, {now.get(key)!r} now" for key in changed[:5])
        more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
        raise ValueError(
            f"{path}: cannot resume with a changed config ({shown}{more}); resume with the config that wrote it, "
            "or start a new run with --overwrite or another --output-dir"
        )


def _data_fingerprint(data: PreparedData) -> list:
    # What every rank must agree on: the ids (vocabulary) and which candidates, labels and splits it trains on.
    examples = [(e.query_id, e.doc_ids, e.labels) for e in (*data.train_examples, *data.dev_examples)]
    return [data.vocab.tokens, examples]


def _tune_fusion(
    model: nn.Module,
    data: PreparedData,
    config: ExperimentConfig,
    metric: str,
    best_path: Path,
    device,
    dev_run: list[ScoredDoc] | None = None,
) -> dict:
    """Choose the interpolation weight on dev with the best model, and store it in its checkpoint.

    `dev_run`: the best model's dev scores from the epoch that saved it, when this process scored them (None
    after a resume that did not improve): the same weights give the same scores, so dev is not scored again."""
    checkpoint = load_checkpoint(best_path)
    if dev_run is None:
        unwrap(model).load_state_dict(checkpoint["state_dict"])
        dev_run = score_examples(model, data.dev_examples, config.train.eval_batch_size, device)
    run = dev_run
    alpha, value, values = tune_alpha(
        run, data.dev_examples, data.collection.split(config.data.dev_split).qrels, metric
    )
    checkpoint["fusion_alpha"] = float(alpha)
    unfused = checkpoint["best_metric"]
    checkpoint["fusion"] = {"alpha": float(alpha), "metric": metric, "fused": value, "unfused": unfused}
    save_checkpoint(best_path, checkpoint)
    return {"alpha": alpha, "value": value, "values": {str(a): v for a, v in values.items()}}


def _truncate_metrics(path: Path, epochs: int) -> None:
    # A run killed after writing metrics for an epoch whose checkpoint did not land must not log that epoch twice.
    if not path.exists():
        return
    records = read_metrics_lines(path)
    kept = [line for line, record in records if record["epoch"] <= epochs]
    if len(kept) < len(records):
        with atomic_write(path) as handle:
            handle.write("".join(line + "\n" for line in kept))
