"""Where code runs and how it starts: the device to use and the seeds that make a run repeatable."""

from __future__ import annotations

import random
import re

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"(cpu|mps|cuda)(?::(\d+))?")


def select_device(name: str = "auto") -> torch.device:
    """The device `name` names, checked against this machine.

    Args:
        name: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises:
        ValueError: `name` is none of those, or names a device this torch build or this machine lacks (a CUDA
            device on a CPU-only build, a GPU index past the last GPU, mps off Apple silicon); the message says
            which, before any work is done, rather than an assertion deep inside torch later.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    match = _DEVICE.fullmatch(str(name).strip().lower())
    if match is None:
        raise ValueError(f"device {name!r}: expected one of {', '.join(DEVICE_CHOICES)}")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(
                f"device {name!r}: this torch build has no CUDA (torch {torch.__version__}); use cpu or auto"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {name!r}: no CUDA device is visible on this machine; use cpu or auto")
        if index is not None and int(index) >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif index is not None:
        raise ValueError(f"device {name!r}: expected one of {', '.join(DEVICE_CHOICES)} (only cuda takes an index)")
    elif kind == "mps" and not _mps_available():
        mps = getattr(torch.backends, "mps", None)
        built = mps is not None and mps.is_built()
        why = "this machine has no MPS device" if built else f"this torch build has no MPS (torch {torch.__version__})"
        raise ValueError(f"device {name!r}: {why}; use cpu or auto")
    return torch.device(kind if index is None else f"{kind}:{index}")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
