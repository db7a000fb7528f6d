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
  with ``train.ema`` also ``training_state_dict`` and ``ema_updates``. ``optimizers``, ``schedulers``, ``rng``,
  ``grad_scaler`` and ``training_state_dict`` are in last.pt only (what resuming reads): best.pt, what re-ranks
  and ships, leaves them out (for all-MiniLM-L6-v2, the AdamW state was twice the weights).

Optional entries that later versions add within format 2, each read as "absent: the behaviour before it existed":
- a pretrained text encoder (issue 20): ``text["kind"]`` names it and its own entries sit beside ``vocab`` /
  ``tokenizer`` / ``text`` (for example ``encoder``: its configuration and tokenizer files), read by the kind's
  `neurank.text.ENCODERS` entry;
- ``fingerprints`` (issue 22; `fingerprints`): SHA-256 digests that `save_checkpoint` writes and `load_checkpoint`
  verifies when present: ``"vocab"`` over the text encoder's entries (``vocab``, ``tokenizer``, ``text``,
  ``encoder``: a shuffled or edited vocabulary changes it), ``"state_dict"`` over the weights (names, dtypes,
  shapes and bytes, in order), and ``"parameters"``, one digest per tensor, so that an edit names the parameter.
  A checkpoint without them (format 1, format 2 before issue 22) loads without a check and without a warning;
  `upgrade_checkpoint` adds them;
- settings that change scores (issue 22's treatment of unknown words, for example) go into ``model_config`` or
  ``tokenizer``, whose readers must give an absent key its old behaviour, not the new default.
A change an older neurank would misread (an entry whose absence cannot mean the old behaviour, a changed meaning)
needs format 3 and an entry in `_UPGRADES`.

Format 1 files load with a `CheckpointWarning` naming the file, upgraded in memory (`_UPGRADES`): ``first_stage``
becomes the BM25 that every format-1 checkpoint was trained with (`FORMAT_1_FIRST_STAGE`), so they score exactly
as before. `upgrade_checkpoint` writes such a file again as format 2.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neurank
from neurank.collections.errors import DataWarning
from neurank.collections.textio import atomic_write
from neurank.inference.first_stage import FORMAT_1_FIRST_STAGE, FirstStageError, first_stage_from_entry
from neurank.models import build_model
from neurank.models.layers import saved_model_config
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


# The entries a text encoder writes into a checkpoint (`neurank.text.TextEncoder.to_dict`), present or not.
ENCODER_ENTRIES = ("vocab", "tokenizer", "text", "encoder")


def _tensor_digest(name: str, tensor: torch.Tensor) -> str:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.sha256(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
    if flat.numel():  # a uint8 view reads any dtype's bytes (numpy has no bfloat16)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprints(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The digests `save_checkpoint` records as ``payload["fingerprints"]`` (see the module docstring): of the text
    encoder's entries, of the whole state_dict, and of each of its tensors."""
    encoder = {key: payload[key] for key in ENCODER_ENTRIES if key in payload}
    text = json.dumps(encoder, sort_keys=True, ensure_ascii=False, default=repr)
    parameters = {name: _tensor_digest(name, tensor) for name, tensor in payload.get("state_dict", {}).items()}
    whole = hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in parameters.items()).encode())
    return {
        "vocab": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "state_dict": whole.hexdigest(),
        "parameters": parameters,
    }


def check_weights(payload: Mapping[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint whose weights hold NaN or infinite values, naming the first such parameter.

    Raises:
        CheckpointError: naming the file, the parameter and how many of its values are not finite.
    """
    for key in ("state_dict", "training_state_dict"):
        for name, tensor in (payload.get(key) or {}).items():
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                continue
            if bool(torch.isfinite(tensor.sum())):  # NaN and inf reach the sum; a finite sum needs no closer look
                continue
            finite = torch.isfinite(tensor)  # a NaN, an inf, or (rarely) a sum that overflowed
            if not bool(finite.all()):
                bad = int((~finite).sum())
                kinds = " and ".join(
                    kind
                    for kind, found in (("NaN", tensor.isnan().any()), ("infinite", tensor.isinf().any()))
                    if bool(found)
                )
                raise CheckpointError(
                    f"{path}: parameter {name!r} ({key}) holds {kinds} values ({bad} of {tensor.numel()}); a "
                    "ranker cannot score with it (did training diverge?): retrain, or use an earlier checkpoint"
                )


def verify_fingerprints(payload: Mapping[str, Any], path: str | Path) -> None:
    """Check the entries of a checkpoint against the fingerprints it was saved with; nothing to check (and nothing
    said) when it has none.

    Raises:
        CheckpointError: naming the file and what does not match (the text encoder, or the changed parameters).
    """
    saved = payload.get("fingerprints")
    if saved is None:
        return
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"{path}: expected the fingerprints to be a mapping, found {type(saved).__name__}")
    now = fingerprints(payload)
    if "vocab" in saved and saved["vocab"] != now["vocab"]:
        raise CheckpointError(
            f"{path}: the vocabulary or text encoder (entries {', '.join(k for k in ENCODER_ENTRIES if k in payload)})"
            " does not match the fingerprint written with the checkpoint: it was changed after saving (a shuffled "
            "or edited vocabulary gives every word another vector); use the file as training wrote it"
        )
    if "state_dict" in saved and saved["state_dict"] != now["state_dict"]:
        recorded = saved.get("parameters")
        before: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
        after: dict[str, str] = now["parameters"]
        differ = {
            "changed": [name for name in after if name in before and before[name] != after[name]],
            "missing": [name for name in before if name not in after],
            "added": [name for name in after if before and name not in before],
        }
        shown = "; ".join(
            f"{what}: {', '.join(names[:3])}" + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            for what, names in differ.items()
            if names
        )
        raise CheckpointError(
            f"{path}: the weights do not match the fingerprint written with the checkpoint"
            + (f" ({shown})" if shown else "")
            + "; they were edited after saving: use the file as training wrote it"
        )


def _short_cause(error: BaseException, limit: int = 100) -> str:
    """The error's type and, when it is one short line, its message."""
    message = str(error).strip()
    if message and "\n" not in message and len(message) <= limit:
        return f"{type(error).__name__}: {message}"
    return type(error).__name__


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` with this neurank's format and version stamps and its `fingerprints` (replacing any it holds)
    to `path` atomically."""
    payload = {**payload, "format": FORMAT, "neurank_version": neurank.__version__}
    payload["fingerprints"] = fingerprints(payload)
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`, checking its format, that its weights are finite, and its
    `fingerprints` when it has them.

    Raises:
        FileNotFoundError: no such file. CheckpointError: not a readable neurank checkpoint, a format this neurank
        does not read, NaN or infinite weights (naming the parameter), or entries that do not match the
        fingerprints they were saved with (naming what differs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        # One short line: torch's own explanation (about weights_only, for any file that is not a pickle of
        # tensors) runs to ten lines and suggests a load that could run code; --debug shows it as the cause.
        raise CheckpointError(
            f"{path}: not a readable neurank checkpoint (torch could not load it: {_short_cause(error)}); expected "
            "a best.pt or last.pt written by `neurank train`"
        ) from error
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not a neurank checkpoint (no format stamp)")
    readable = sorted(_UPGRADES) + [FORMAT]
    if payload["format"] not in readable:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format']} (neurank {payload.get('neurank_version', '?')}), "
            f"this neurank {neurank.__version__} reads formats {readable[0]} to {FORMAT}; retrain or use a "
            "matching version"
        )
    check_weights(payload, path)
    verify_fingerprints(payload, path)
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
        # A checkpoint saved before a scoring option existed keeps the behaviour it was trained with.
        saved = saved_model_config(checkpoint["model_name"], checkpoint["model_config"])
        model = build_model(checkpoint["model_name"], encoder.vocab_size, saved)
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise CheckpointError(
            f"{path}: checkpoint does not match this neurank ({type(error).__name__}: {error})"
        ) from None
    return model, encoder, checkpoint
