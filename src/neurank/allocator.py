"""Memory-allocator settings for training: glibc's malloc thresholds, which must be set before a process starts.

glibc hands a freed block above its mmap threshold (128 KiB by default, adjusted upwards as large blocks come and go)
back to the kernel and trims the top of its heap, so each training step's large activations and gradients are
fresh pages that the kernel must fault in and zero one by one. With the thresholds raised, freed memory stays in the
process and the next step reuses it. `python benchmarks/training.py` measures it (worker processes with and without
the settings, interleaved): the CNN's training step ran 1.3x faster (1.6x in an earlier run), page faults per step
down from ~51,000 to ~1,800, and the training loop of configs/wikiqa.yaml took 34 s instead of 48 s (loaded
machine, one thread). Scoring, whose batches the cell budget (`neurank.inference`) keeps small, gained between
nothing and 2x (glibc's own threshold moves with the allocation history; with these settings it does not).

`neurank train`, `experiment`, `benchmark` and `rerank` restart themselves once with these settings on Linux/glibc
when none of them is set; `NEURANK_MALLOC=default` keeps the allocator as it is. A process that imports neurank
(a re-ranking service) must be started with them to get them. Nothing here changes a number a run computes.
"""

from __future__ import annotations

import os
import platform
import sys

# The largest mmap threshold glibc accepts on 64-bit (32 MiB; larger values are ignored), a trim threshold that
# never trims, and 256 MiB of extra heap per growth so that the heap grows rarely.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 25), "MALLOC_TRIM_THRESHOLD_": str(1 << 36), "MALLOC_TOP_PAD_": str(1 << 28)}
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


def restart_with_tuned_malloc(args: list[str]) -> None:
    """Replace this process by `python -m neurank.cli ARGS` with the tuned settings; returns if there is nothing to do."""
    environment = tuned_environment()
    if environment is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "neurank.cli", *args], environment)
