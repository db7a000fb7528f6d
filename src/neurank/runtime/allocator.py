"""Memory-allocator settings: glibc's malloc thresholds, set at start-up by the commands and in-process by a re-ranker.

glibc hands a freed block above its mmap threshold (128 KiB by default, adjusted upwards as large blocks come and go)
back to the kernel and trims the top of its heap, so each training step's large activations and gradients are
fresh pages that the kernel must fault in and zero one by one. With the thresholds raised, freed memory stays in the
process and the next step reuses it. `python benchmarks/training.py` measures it (worker processes with and without
the settings, interleaved): the CNN's training step ran 1.3x faster (1.6x in an earlier run), page faults per step
down from ~51,000 to ~1,800, and the training loop of the wikiqa config took 34 s instead of 48 s (loaded
machine, one thread). Scoring, whose batches the cell budget (`neurank.inference.scorer`) keeps small, gained between
nothing and 2x (glibc's own threshold moves with the allocation history; with these settings it does not).

`neurank train`, `experiment`, `benchmark` and `rerank` restart themselves once with these settings on Linux/glibc
when none of them is set. A process that imports neurank gets the same settings from glibc's `mallopt` the first
time it builds a `Reranker` or `OnnxReranker` for the CPU or calls `neurank.training.train` (`tune_malloc`): in a
fresh process re-ranking one query's top 100 with the CNN, page faults per query went from 236-1,914 (glibc's
threshold moves with the allocation history) to 72-147 and the p50 from 9.2-10.7 ms to 9.0-9.3 ms, the p95 from
17-24 ms to 15 ms (three processes each). `NEURANK_MALLOC=default` keeps the allocator as it is, and so does setting
any of the variables yourself. Nothing here changes a number a run computes; the cost is that freed memory stays
with the process (its resident size stays at its peak) instead of going back to the kernel.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# The largest mmap threshold glibc accepts on 64-bit (32 MiB; larger values are ignored), a trim threshold that
# never trims, and 256 MiB of extra heap per growth so that the heap grows rarely.
TUNED_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 25),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 36),
    "MALLOC_TOP_PAD_": str(1 << 28),
}
OPT_OUT = "NEURANK_MALLOC"


def tuned_environment(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to restart with, or None when there is nothing to do.

    Nothing to do: not glibc, the user set any of the variables, or `NEURANK_MALLOC=default`.
    """
    environ = dict(os.environ if environ is None else environ)
    if environ.get(OPT_OUT, "").lower() == "default" or any(name in environ for name in TUNED_MALLOC):
        return None
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    return {**environ, **TUNED_MALLOC}


# mallopt's parameters (glibc's malloc.h) and the values it takes for TUNED_MALLOC: its value is a C int, so the trim
# threshold is the largest int (2 GiB of free heap top) rather than 2^36, which never trims in practice either.
_MALLOPT = {
    "MALLOC_TRIM_THRESHOLD_": (-1, (1 << 31) - 1),
    "MALLOC_TOP_PAD_": (-2, 1 << 28),
    "MALLOC_MMAP_THRESHOLD_": (-3, 1 << 25),
}
_tuned_in_process = False


def tune_malloc() -> bool:
    """Apply the tuned thresholds to this running process with glibc's `mallopt`, once; True when they are in force.

    Nothing is done (False) where `tuned_environment` would do nothing: not glibc, `NEURANK_MALLOC=default`, or any
    of the variables set by the user (who chose; a process started by `neurank` with them has them already).
    """
    global _tuned_in_process
    if _tuned_in_process:
        return True
    if tuned_environment() is None:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # this process's C library
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success; each setting stands on its own, so apply every one.
    results = [mallopt(parameter, value) == 1 for parameter, value in _MALLOPT.values()]
    _tuned_in_process = all(results)
    return _tuned_in_process


def malloc_tuned() -> bool:
    """Whether this process runs with the tuned thresholds (from its environment or from `tune_malloc`)."""
    return _tuned_in_process or all(name in os.environ for name in TUNED_MALLOC)


def restart_with_tuned_malloc(args: list[str]) -> None:
    """Replace this process by `python -m neurank.cli ARGS` with the tuned settings; returns if there is nothing
    to do."""
    environment = tuned_environment()
    if environment is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "neurank.cli", *args], environment)
