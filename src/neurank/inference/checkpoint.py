"""Checkpoints: one file that rebuilds a trained ranker alone (`torch.save` of one dict, read with
`weights_only=True`). Files are written to a temporary file and renamed into place.

Format 2 (this neurank writes it; format 1, neurank 0.1, still loads, see below). Every entry:

- ``format`` (2) and ``neurank_version``: the stamps `save_checkpoint` adds.
- The ranker: ``model_name``; ``model_config`` (every field of the model's config dataclass); ``state_dict``
  (unwrapped: no ``module.`` or ``_orig_mod.`` prefixes; with ``train.ema`` the weight average).
- The text encoder's entries (`neurank.text.TextEncoder.to_dict`): ``vocab`` (``{"tokens": [...]}``),
  ``tokenizer`` (`neurank.text.Tokenizer.to_dict`), ``text`` (``max_query_len``, ``max_doc_len``; and ``kind``
  for an encoder other than the word encoder, absent meaning ``"word"``).
- ``first_stage`` (new in format 2): the first stage that gave training its candidates and the score the model
  reads (`neurank.inference.first_stage.FirstStage.to_dict`), for BM25 ``{"kind": "bm25", "tokenizer": {...},
  "k1": 0.9, "b": 0.4, "method": "lucene", "normalisation": "max"}``; None when not recorded. The model reads
  its score when ``model_config["use_first_stage_score"]`` is true or ``fusion_alpha`` is set; re-ranking a run
  checks the run against it (`neurank rerank --run`).
- ``fusion_alpha``: the interpolation weight with the first stage chosen on dev (``train.fusion``; best.pt only,
  absent without fusion); ``fusion`` (new in format 2): ``{"alpha", "metric", "fused", "unfused"}``, the dev
  values with and without it.
- Training state, for resuming and for the record: ``config`` (`ExperimentConfig.to_dict`), ``optimizers``,
  ``schedulers``, ``rng`` (``{"torch", "python"}``), ``grad_scaler``, ``precision``, ``world_size``, ``epoch``,
  ``step``, ``best_metric`` (the model's own dev value), ``best_epoch``, ``bad_epochs``, ``metric``, ``seconds``;
  with ``train.ema`` also ``training_state_dict`` and ``ema_updates``.

Optional entries that later versions add within format 2, each read as "absent: the behaviour before it existed":
- a pretrained text encoder (issue 20): ``text["kind"]`` names it and its own entries sit beside ``vocab`` /
  ``tokenizer`` / ``text`` (for example ``encoder``: its configuration and tokenizer files), read by the kind's
  `neurank.text.ENCODERS` entry;
- ``fingerprints`` (issue 22): ``{"vocab": hex digest, "state_dict": hex digest, ...}``, verified on loading when
  present;
- settings that change scores (issue 22's treatment of unknown words, for example) go into ``model_config`` or
  ``tokenizer``, whose readers must give an absent key its old behaviour, not the new default.
A change an older neurank would misread (an entry whose absence cannot mean the old behaviour, a changed meaning)
needs format 3 and an entry in `_UPGRADES`.

Format 1 files load with a `CheckpointWarning` naming the file, upgraded in memory (`_UPGRADES`): ``first_stage``
becomes the BM25 that every format-1 checkpoint was trained with (`FORMAT_1_FIRST_STAGE`), so they score exactly
as before. `upgrade_checkpoint` writes such a file again as format 2.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neurank
from neurank.collections.errors import DataWarning
from neurank.collections.textio import atomic_write
from neurank.inference.first_stage import FORMAT_1_FIRST_STAGE, FirstStageError, first_stage_from_entry
from neurank.models import build_model
from neurank.text import TextEncoder, encoder_from_dict

FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or from an incompatible version."""


class CheckpointWarning(DataWarning):
    """A checkpoint of an older format was read, with defaults for what it does not record."""


def _upgrade_1(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    warnings.warn(
        f"{path}: checkpoint format 1 (neurank {payload.get('neurank_version', '?')}), read as format {FORMAT} with "
        f"the first stage every format-1 checkpoint was trained with, {FORMAT_1_FIRST_STAGE.describe()}; it scores "
        "as before. neurank.inference.checkpoint.upgrade_checkpoint writes it as format 2, which silences this",
        CheckpointWarning,
        stacklevel=4,
    )
    return {**payload, "format": 2, "first_stage": FORMAT_1_FIRST_STAGE.to_dict()}


# format -> the step that reads it as the next format; load_checkpoint applies them in turn up to FORMAT.
_UPGRADES: dict[int, Callable[[dict[str, Any], Path], dict[str, Any]]] = {1: _upgrade_1}


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        wrapped = getattr(model, "module", None)  # DistributedDataParallel
        compiled = getattr(model, "_orig_mod", None)  # torch.compile
        if isinstance(wrapped, nn.Module):
            model = wrapped
        elif isinstance(compiled, nn.Module):
            model = compiled
        else:
            return model


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` with this neurank's format and version stamps (replacing any it holds) to `path` atomically."""
    payload = {**payload, "format": FORMAT, "neurank_version": neurank.__version__}
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, checking its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a readable neurank checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not a neurank checkpoint (no format stamp)")
    readable = sorted(_UPGRADES) + [FORMAT]
    if payload["format"] not in readable:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format']} (neurank {payload.get('neurank_version', '?')}), "
            f"this neurank {neurank.__version__} reads formats {readable[0]} to {FORMAT}; retrain or use a "
            "matching version"
        )
    while payload["format"] != FORMAT:
        payload = _UPGRADES[payload["format"]](payload, path)
    try:
        first_stage_from_entry(payload.get("first_stage"), str(path))
    except FirstStageError as error:
        raise CheckpointError(str(error)) from None
    return payload


def upgrade_checkpoint(path: str | Path, output: str | Path) -> dict[str, Any]:
    """Write the checkpoint `path` (of any format this neurank reads) to `output` as format `FORMAT`, with the
    defaults its format implies filled in; the ranker scores the same. Returns the written entries.

    Raises:
        FileExistsError: `output` exists (nothing is overwritten; pass another name). CheckpointError: as
        `load_checkpoint`.
    """
    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output}: already exists; upgrade_checkpoint writes a new file and replaces none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)  # the upgrade is what was asked for
        payload = load_checkpoint(path)
    save_checkpoint(output, payload)
    return load_checkpoint(output)


def load_ranker(path: str | Path) -> tuple[nn.Module, TextEncoder, dict[str, Any]]:
    """The trained model (on the CPU, in training mode), its text encoder, and the checkpoint's entries.

    Raises:
        FileNotFoundError: no such file. CheckpointError: not a neurank checkpoint, or one this neurank cannot
        rebuild (names the file).
    """
    checkpoint = load_checkpoint(path)
    try:
        encoder = encoder_from_dict(checkpoint, source=path)
        model = build_model(checkpoint["model_name"], encoder.vocab_size, checkpoint["model_config"])
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise CheckpointError(
            f"{path}: checkpoint does not match this neurank ({type(error).__name__}: {error})"
        ) from None
    return model, encoder, checkpoint
