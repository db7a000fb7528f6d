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
`benchmarks/precision.py`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import ContextManager

import torch

from neurank.collections.records import ScoredDoc

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
            raise ValueError("precision bf16: this GPU has no bfloat16 support (it needs compute capability 8.0+); use fp16")
        return
    if device.type == "cpu":
        if precision == "fp16":
            raise ValueError("precision fp16 runs on CUDA only (with loss scaling); on the CPU use bf16 or fp32")
        return
    raise ValueError(f"precision {precision} is not supported on {device.type}; use fp32 there")


def autocast(device: torch.device | str, precision: str) -> ContextManager:
    """The context in which forward passes run at `precision` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only; disabled, its `scale`, `unscale_`, `step` and `update` pass through."""
    device_type = torch.device(device).type
    return torch.amp.GradScaler(device_type if device_type == "cuda" else "cpu", enabled=precision == "fp16")


def ranking_agreement(run_a: Iterable[ScoredDoc], run_b: Iterable[ScoredDoc]) -> dict[str, float]:
    """How alike two runs over the same (query, doc) pairs rank, e.g. the same model at fp32 and at bf16.

    Returns:
        ``kendall_tau``: Kendall's tau-b between the two score lists, averaged over queries with 2+ documents;
        ``same_ranking``: the share of queries whose documents come in the same order (ties broken as `write_run`
        and trec_eval do, by doc_id); ``same_top``: the share whose first document is the same; ``queries``.
    Raises:
        ValueError: the runs do not hold the same (query, doc) pairs.
    """
    from scipy.stats import kendalltau

    a, b = _by_query(run_a), _by_query(run_b)
    if a.keys() != b.keys() or any(a[q].keys() != b[q].keys() for q in a):
        raise ValueError("the runs must score the same (query, doc) pairs")
    taus, same, top = [], 0, 0
    for query_id, scores in a.items():
        docs = sorted(scores, reverse=True)  # then a stable sort by score: ties stay in doc_id descending order
        order_a = sorted(docs, key=lambda d: -scores[d])
        order_b = sorted(docs, key=lambda d: -b[query_id][d])
        same += order_a == order_b
        top += order_a[0] == order_b[0]
        if len(docs) > 1:
            tau = kendalltau([scores[d] for d in docs], [b[query_id][d] for d in docs]).statistic
            taus.append(1.0 if math.isnan(tau) else float(tau))  # NaN: both lists constant, so the same order
    n = len(a)
    return {
        "kendall_tau": float(sum(taus) / len(taus)) if taus else 1.0,
        "same_ranking": same / n if n else 1.0,
        "same_top": top / n if n else 1.0,
        "queries": n,
    }


def _by_query(run: Iterable[ScoredDoc]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for entry in run:
        out.setdefault(entry.query_id, {})[entry.doc_id] = float(entry.score)
    return out

