"""ONNX export of a trained ranker: one `.onnx` file that re-ranks without PyTorch (`neurank.inference.onnx_reranker`).

    neurank export runs/wikiqa/best.pt --format onnx --output wikiqa.onnx

The graph takes `query_ids` (B, Lq) and `doc_ids` (B, Ld) int64, right-padded with PAD (0), and, for a model that
reads it, `first_stage_score` (B,) float32; it returns `score` (B,) float32, the model's logits. Masks are derived
from PAD inside the graph. Batch size and both lengths are dynamic. Everything needed to turn texts into those ids
travels in the file's metadata (key `neurank`, JSON): model name and config, the text encoder's entries
(`neurank.text.TextEncoder.to_dict`: for the word encoder the tokenizer settings, vocabulary and text limits, as in
a checkpoint), fusion weight, first stage (`neurank.inference.first_stage`; absent in files exported before it
was recorded, which then read as format-1 checkpoints' BM25), and the lengths a model must be padded to when its
graph fixes them.

The export uses torch.export (`torch.onnx.export(dynamo=True)`), which records shape arithmetic symbolically, where
the older tracing exporter silently freezes it at the example's values (it got MatchPyramid's pooling bins, ArcI's
pooling windows and DUET's frame wrong at any other length). Every export is checked before it is written: the ONNX
model must reproduce PyTorch's scores on batches of lengths other than the example's, or nothing is written.

MV-LSTM's `nn.LSTM` is exported by torch.export with the example's sequence length fixed (torch 2.13), so MV-LSTM
is exported at the checkpoint's `max_query_len` x `max_doc_len` and the ONNX re-ranker pads every batch to those
lengths; padding never changes a score, so its scores are the same, at the cost of always scoring full lengths.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from neurank.collections.textio import atomic_write
from neurank.inference.checkpoint import load_ranker
from neurank.models import model_config_to_dict
from neurank.text import PAD_ID

FORMATS = ("onnx",)
METADATA_KEY = "neurank"
METADATA_FORMAT = 1
# Models whose exported graph fixes the text lengths at the example's (see the module docstring).
STATIC_LENGTH_MODELS = {"mvlstm"}
OPSET = 18


def require_onnx():
    """The `onnx` and `onnxruntime` modules, or an ImportError saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            f"ONNX export and re-ranking need onnx and onnxruntime: pip install 'neurank[onnx]' ({error})"
        ) from None
    return onnx, onnxruntime


def is_neurank_onnx(path: str | Path) -> bool:
    """Whether `path` is an ONNX model that `neurank export` wrote (it carries the `neurank` metadata entry), so that
    a rerun may replace it; any other file, ONNX or not, is not recognised."""
    onnx, _ = require_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - onnx raises DecodeError and others for a file that is not a model
        return False
    return any(entry.key == METADATA_KEY for entry in model.metadata_props)


class ExportError(ValueError):
    """A model could not be exported, or its export does not reproduce PyTorch's scores."""


class _ExportWrapper(nn.Module):
    """The ranker with the graph's inputs: ids (masks derived from PAD) and, when the model reads it, the score."""

    def __init__(self, model: nn.Module, uses_first_stage_score: bool):
        super().__init__()
        self.model = model
        self.uses_first_stage_score = uses_first_stage_score

    def forward(self, query_ids: Tensor, doc_ids: Tensor, first_stage_score: Tensor | None = None) -> Tensor:
        return self.model(query_ids, doc_ids, None, None, first_stage_score if self.uses_first_stage_score else None)


def _random_batch(
    vocab_size: int, batch_size: int, query_len: int, doc_len: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded random ids with per-row lengths (the first row full) that share some tokens, and scores."""
    generator = torch.Generator().manual_seed(seed)
    low = min(2, vocab_size - 1)
    query_ids = torch.randint(low, vocab_size, (batch_size, query_len), generator=generator)
    doc_ids = torch.randint(low, vocab_size, (batch_size, doc_len), generator=generator)
    shared = min(3, query_len, doc_len)
    doc_ids[:, :shared] = query_ids[:, :shared]
    query_lengths = torch.randint(1, query_len + 1, (batch_size,), generator=generator)
    doc_lengths = torch.randint(1, doc_len + 1, (batch_size,), generator=generator)
    query_lengths[0], doc_lengths[0] = query_len, doc_len
    query_ids[torch.arange(query_len) >= query_lengths[:, None]] = PAD_ID
    doc_ids[torch.arange(doc_len) >= doc_lengths[:, None]] = PAD_ID
    return query_ids, doc_ids, torch.rand(batch_size, generator=generator)


def export_model_onnx(
    model: nn.Module,
    model_name: str,
    output: str | Path,
    metadata: dict[str, Any] | None = None,
    max_query_len: int = 20,
    max_doc_len: int = 200,
    opset: int = OPSET,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Export a ranker to ONNX at `output` (written atomically), after checking it against PyTorch.

    Args:
        model: a registered ranker (its `config` says whether it reads the first-stage score).
        model_name: its registry name.
        metadata: extra JSON-able entries for the file's `neurank` metadata (vocabulary, tokenizer, ...).
        max_query_len, max_doc_len: the longest texts it will see (the check runs up to these; MV-LSTM is exported
            at exactly these lengths).
        atol: the largest score difference from PyTorch the check accepts.
    Returns:
        The metadata written, with `check`: the largest difference found at each checked shape.
    Raises:
        ExportError: torch.export failed, or the ONNX model does not reproduce PyTorch's scores.
    """
    onnx, ort = require_onnx()
    model = model.eval()
    uses_score = bool(getattr(getattr(model, "config", None), "use_first_stage_score", False))
    wrapper = _ExportWrapper(model, uses_score)
    static = model_name in STATIC_LENGTH_MODELS
    vocab_size = int(getattr(model, "vocab_size", 3))
    # The example avoids lengths 0 and 1 (torch.export would specialise on them) and any length the check uses.
    example_lengths = (max_query_len, max_doc_len) if static else (min(4, max_query_len), min(13, max_doc_len))
    query_ids, doc_ids, first_stage = _random_batch(vocab_size, 3, *example_lengths, seed=0)
    args = (query_ids, doc_ids, first_stage) if uses_score else (query_ids, doc_ids)
    auto = torch.export.Dim.AUTO
    dims = [{0: auto} if static else {0: auto, 1: auto}] * 2 + ([{0: auto}] if uses_score else [])
    input_names = ["query_ids", "doc_ids"] + (["first_stage_score"] if uses_score else [])
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                args,
                dynamo=True,
                input_names=input_names,
                output_names=["score"],
                dynamic_shapes=tuple(dims),
                opset_version=opset,
                verbose=False,
            )
    except Exception as error:  # torch.export raises many types; the message says what failed
        raise ExportError(
            f"{model_name}: torch.onnx.export failed ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None

    if program is None:  # dynamo=True always returns one; None is the old exporter's answer when given a file
        raise ExportError(f"{model_name}: torch.onnx.export returned no program")
    proto = program.model_proto
    info = {
        "format": METADATA_FORMAT,
        "model_name": model_name,
        "model_config": model_config_to_dict(model.config) if dataclasses.is_dataclass(model.config) else {},
        "inputs": input_names,
        "static_lengths": [max_query_len, max_doc_len] if static else None,
        **(metadata or {}),
    }
    check = _check_against_torch(
        wrapper,
        proto.SerializeToString(),
        vocab_size,
        uses_score,
        info["static_lengths"],
        max_query_len,
        max_doc_len,
        atol,
        ort,
    )
    info["check"] = check
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(info)
    with atomic_write(output, "wb") as handle:  # a failed write leaves an existing file as it was
        handle.write(proto.SerializeToString())  # what onnx.save writes for a model without external data
    return info


def _check_shapes(max_query_len: int, max_doc_len: int) -> list[tuple[int, int, int]]:
    """(batch, query length, document length) of the check batches: unlike the example, up to the limits."""
    shapes = {(1, 1, 1), (2, min(3, max_query_len), min(7, max_doc_len)), (5, max_query_len, max_doc_len)}
    shapes.add((4, max(1, max_query_len // 2), max(1, max_doc_len // 3)))
    return sorted(shapes)


def _check_against_torch(
    wrapper, serialized: bytes, vocab_size, uses_score, static_lengths, max_query_len, max_doc_len, atol, ort
) -> dict[str, float]:
    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    differences = {}
    for seed, (batch_size, query_len, doc_len) in enumerate(_check_shapes(max_query_len, max_doc_len), start=1):
        query_ids, doc_ids, first_stage = _random_batch(vocab_size, batch_size, query_len, doc_len, seed)
        with torch.no_grad():
            expected = wrapper(query_ids, doc_ids, first_stage).numpy()
        feed = onnx_inputs(query_ids.numpy(), doc_ids.numpy(), first_stage.numpy(), uses_score, static_lengths)
        got = session.run(["score"], feed)[0]
        difference = float(np.abs(got - expected).max())
        differences[f"{batch_size}x{query_len}x{doc_len}"] = difference
        if not difference <= atol:  # also catches NaN
            raise ExportError(
                f"the ONNX export differs from PyTorch by {difference:.3g} on a {batch_size} x {query_len} x {doc_len} "
                f"batch (tolerance {atol}); nothing was written"
            )
    return differences


def onnx_inputs(
    query_ids: np.ndarray, doc_ids: np.ndarray, first_stage: np.ndarray | None, uses_score: bool, static_lengths
) -> dict[str, np.ndarray]:
    """The feed of an exported graph: ids as int64 (padded to `static_lengths` when the graph fixes them)."""
    query_ids = np.asarray(query_ids, dtype=np.int64)
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    if static_lengths is not None:
        query_len, doc_len = static_lengths
        if query_ids.shape[1] > query_len or doc_ids.shape[1] > doc_len:
            raise ValueError(f"this model was exported for texts of at most {query_len} / {doc_len} ids")
        query_ids = np.pad(query_ids, ((0, 0), (0, query_len - query_ids.shape[1])), constant_values=PAD_ID)
        doc_ids = np.pad(doc_ids, ((0, 0), (0, doc_len - doc_ids.shape[1])), constant_values=PAD_ID)
    feed = {"query_ids": query_ids, "doc_ids": doc_ids}
    if uses_score:
        feed["first_stage_score"] = np.asarray(first_stage, dtype=np.float32)
    return feed


def export_checkpoint(
    checkpoint_path: str | Path, output: str | Path, format: str = "onnx", opset: int = OPSET
) -> dict[str, Any]:
    """Export a `best.pt` / `last.pt` written by training; see `export_model_onnx`.

    Raises:
        ValueError: an unknown format. CheckpointError: the checkpoint cannot be read. ExportError: see above.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")
    model, encoder, checkpoint = load_ranker(checkpoint_path)
    metadata = {
        **encoder.to_dict(),  # the text encoder, rebuilt by the ONNX re-ranker (`neurank.text.encoder_from_dict`)
        "fusion_alpha": checkpoint.get("fusion_alpha"),
        "first_stage": checkpoint.get("first_stage"),  # what the ONNX re-ranker checks a run against
        "source": str(checkpoint_path),
    }
    return export_model_onnx(
        model, checkpoint["model_name"], output, metadata, encoder.max_query_len, encoder.max_doc_len, opset=opset
    )
