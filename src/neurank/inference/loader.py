"""`load_reranker(path)`: the one way to load a trained re-ranker, PyTorch or ONNX, told apart by the file itself.

    reranker = neurank.load_reranker("runs/wikiqa/best.pt")     # a checkpoint written by `neurank train`
    reranker = neurank.load_reranker("wikiqa.onnx")             # a model written by `neurank export`
    reranker.rank("who wrote hamlet", ["Hamlet is a tragedy by Shakespeare.", "Paris is in France."])

The file's first bytes decide, not its name: a PyTorch checkpoint is a zip archive holding a pickle (`data.pkl`, what
`torch.save` writes; or torch's legacy pickle magic), and an ONNX model is a protobuf `ModelProto`, which the ONNX
writers begin with its `ir_version` field. Both re-rankers offer the same `predict` / `rank` / `rerank` /
`rerank_collection` (`neurank.inference.base.BaseReranker`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from neurank.inference.base import BaseReranker
from neurank.inference.checkpoint import CheckpointError
from neurank.inference.onnx_reranker import OnnxReranker
from neurank.inference.reranker import Reranker
from neurank.inference.scorer import InferenceOptions
from neurank.runtime.distributed import DistributedContext

PYTORCH = "pytorch"
ONNX = "onnx"

_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's format before 1.6: pickle protocol 2, then the 10-byte magic number 0x1950a86a20f9469cfc6c.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_HEAD_BYTES = 4096


def load_reranker(
    path: str | Path,
    *,
    device: str | torch.device = "auto",
    batch_size: int = 256,
    precision: str = "fp32",
    distributed: DistributedContext | None = None,
    options: InferenceOptions | None = None,
) -> BaseReranker:
    """A trained re-ranker from a PyTorch checkpoint (`Reranker`) or an exported ONNX model (`OnnxReranker`).

    Args:
        path: a `best.pt` / `last.pt` written by `neurank train`, or a `.onnx` written by `neurank export`; which
            one is read from the file's content (`model_file_format`).
        device: where a PyTorch model runs ("auto": cuda, mps, else cpu). An ONNX model runs on onnxruntime's CPU
            provider: "auto" or "cpu".
        batch_size: pairs per forward pass.
        precision: "fp32", "bf16" or "fp16" forward passes of a PyTorch model; an ONNX model runs as exported (fp32).
        distributed: under torchrun, the context from `neurank.runtime.distributed.init_distributed`, to spread a
            PyTorch model's batches over the ranks; an ONNX model runs in one process.
        options: batching and numerics of scoring (`neurank.inference.scorer.InferenceOptions`); None: exact, with
            `batch_size`.
    Raises:
        FileNotFoundError: no such file. CheckpointError: the file is neither, or cannot be rebuilt (the message
        names it). ValueError: an option an ONNX model cannot honour.
    """
    path = Path(path)
    if model_file_format(path) == PYTORCH:
        return Reranker.from_checkpoint(
            path, device=device, batch_size=batch_size, precision=precision, distributed=distributed, options=options
        )
    refused = []
    if str(device) not in ("auto", "cpu"):
        refused.append(f"device {str(device)!r}")
    if precision != "fp32":
        refused.append(f"precision {precision!r}")
    if distributed is not None and distributed.enabled:
        refused.append("torchrun")
    if refused:
        raise ValueError(
            f"{path}: an ONNX model re-ranks in one process on the CPU at fp32 (onnxruntime); drop {', '.join(refused)}"
        )
    return OnnxReranker.from_file(path, batch_size=batch_size, options=options)


def model_file_format(path: str | Path) -> str:
    """`PYTORCH` or `ONNX`: what a trained model file holds, read from its first bytes (not from its name).

    Raises:
        FileNotFoundError: no such file. CheckpointError: neither, naming the file and what it starts with.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: re-ranker file not found")
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if _is_torch_file(path, head):
        return PYTORCH
    if _looks_like_onnx(head):
        return ONNX
    named = {".pt": " (named as a PyTorch checkpoint)", ".onnx": " (named as an ONNX model)"}.get(
        path.suffix.lower(), ""
    )
    raise CheckpointError(
        f"{path}: neither a PyTorch checkpoint nor an ONNX model{named}; it starts with {head[:16]!r}. Expected a "
        "best.pt / last.pt written by `neurank train` or a .onnx written by `neurank export`"
    )


def _is_torch_file(path: Path, head: bytes) -> bool:
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return True
    if not head.startswith(_ZIP_MAGIC):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name == "data.pkl" or name.endswith("/data.pkl") for name in names)


def _looks_like_onnx(head: bytes) -> bool:
    """Whether `head` starts as a serialised ONNX `ModelProto`: field 1 (`ir_version`, a small varint) first, then
    well-formed protobuf fields as far as `head` reaches."""
    position, fields = 0, 0
    while position < len(head):
        key, position = _varint(head, position)
        if key is None:
            return fields > 0  # cut off by the end of `head`
        number, wire_type = key >> 3, key & 7
        if fields == 0 and (number != 1 or wire_type != 0):
            return False
        if number == 0:
            return False
        if wire_type == 0:  # varint
            value, position = _varint(head, position)
            if fields == 0 and (value is None or not 1 <= value <= 100):
                return False
        elif wire_type == 2:  # length-delimited: skip the payload (it may run past `head`)
            length, position = _varint(head, position)
            if length is None:
                return True
            position += length
        elif wire_type == 1:  # 64-bit
            position += 8
        elif wire_type == 5:  # 32-bit
            position += 4
        else:  # groups (3, 4) are not in ONNX; 6 and 7 are not wire types
            return False
        fields += 1
    return fields > 0


def _varint(data: bytes, position: int) -> tuple[int | None, int]:
    """A protobuf varint at `position`, and the position after it; None when `data` ends first or it is too long."""
    value, shift = 0, 0
    while position < len(data) and shift < 64:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7
    return None, position
