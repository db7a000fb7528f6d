"""Mixed precision: which floating-point type the forward pass runs in (`--precision fp32|bf16|fp16`).

- ``fp32``: everything in float32 (the default; what every result in the README used).
- ``bf16``: `torch.autocast` with bfloat16 on CUDA (GPUs that support it: Ampere and later) or on the CPU. bfloat16
  keeps float32's exponent range, so no loss scaling is needed.
- ``fp16``: `torch.autocast` with float16 on CUDA, with a `GradScaler` that scales the loss so small gradients do
  not underflow (and skips a step whose gradients overflowed). Not offered on the CPU, where it is slow and where
  bf16 is the mixed type to use.

Parameters, optimizer states and the loss stay float32 either way (autocast only changes the dtype of the
operations it lists: convolutions, matrix products); scores are returned as float32. Whether a reduced precision
preserves a model's rankings is checked by `tests/training/test_precision.py` (bf16 on the CPU) and measured by
`benchmarks/precision.py` (with `neurank.evaluation.agreement.ranking_agreement`).
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str) -> None:
    """Raise ValueError, naming the choice and what to use instead, when `device` cannot run `precision`."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                "precision bf16: this GPU has no bfloat16 support (it needs compute capability 8.0+); use fp16"
            )
        return
    if device.type == "cpu":
        if precision == "fp16":
            raise ValueError("precision fp16 runs on CUDA only (with loss scaling); on the CPU use bf16 or fp32")
        return
    raise ValueError(f"precision {precision} is not supported on {device.type}; use fp32 there")


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The context in which forward passes run at `precision` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only; disabled, its `scale`, `unscale_`, `step` and `update` pass through."""
    device_type = torch.device(device).type
    return torch.amp.GradScaler(device_type if device_type == "cuda" else "cpu", enabled=precision == "fp16")
