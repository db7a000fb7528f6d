"""Checkpoints: one file that rebuilds a trained ranker alone.

It holds the model name and config, the unwrapped state_dict (no `module.` or `_orig_mod.` prefixes), the vocabulary,
the tokenizer settings and text limits, and, for resuming, the optimizer and scheduler states, the random states,
the epoch, the step and the best dev metric. Files are written to a temporary file and renamed into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import neurank
from neurank.collections.textio import atomic_write
from neurank.models import build_model
from neurank.text import TextEncoder, encoder_from_dict

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or from an incompatible version."""


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
    """Write `payload` (plus format and version stamps) to `path` atomically."""
    payload = {"format": FORMAT, "neurank_version": neurank.__version__, **payload}
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
    if payload["format"] != FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format']} (neurank {payload.get('neurank_version', '?')}), "
            f"this neurank {neurank.__version__} reads format {FORMAT}; retrain or use a matching version"
        )
    return payload


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
