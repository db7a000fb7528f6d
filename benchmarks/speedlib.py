"""What the speed benchmarks share: the machine's fp32 matmul rate, interleaved timing, peak memory per run,
persistent worker processes (to compare settings that must be fixed before a process starts, such as the
allocator's), and writing the tables and JSON.

Timings on a loaded machine are noisy; ratios taken from interleaved repetitions (A, B, A, B, ... in one run) are
not, because slow periods hit both sides. Every figure is a median over repetitions.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# TUNED_MALLOC: the settings `neurank train` restarts with (see neurank.runtime.allocator)
from neurank.runtime.allocator import TUNED_MALLOC, malloc_tuned

# OpenMP threads that wait for each other spin (libgomp's default, OMP_WAIT_POLICY=ACTIVE): on a quiet machine that
# saves a wake-up per parallel region; on an oversubscribed one the spinning thread holds the core its partner needs.
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}
ALLOCATOR_VARS = (*TUNED_MALLOC, "NEURANK_MALLOC", *PASSIVE_WAIT)


def machine() -> dict[str, Any]:
    """The machine and settings a table was measured with, including how loaded it was."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "process_env": {name: os.environ[name] for name in (*ALLOCATOR_VARS, "OMP_NUM_THREADS") if name in os.environ},
        "malloc_tuned": malloc_tuned(),
    }


def matmul_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """The fp32 matrix-multiply rate of this process's threads: median GFLOP/s of size x size x size products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def interleave(
    functions: dict[str, Callable[[], Any]], repetitions: int = 5, min_seconds: float = 0.0, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each function once per round, round after round, and return every function's times (seconds).

    Stops after `repetitions` rounds once `min_seconds` have passed (at least `repetitions` rounds).
    """
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    start = time.perf_counter()
    while True:
        for name, fn in functions.items():
            begin = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - begin)
        rounds = len(next(iter(times.values())))
        if rounds >= repetitions and time.perf_counter() - start >= min_seconds:
            return times


def timed(
    fn: Callable[[], Any], budget: float = 2.0, min_repetitions: int = 2, max_repetitions: int = 5
) -> list[float]:
    """Times (seconds) of `fn` after one warm-up call: at least `min_repetitions`, more while within `budget`."""
    fn()
    times: list[float] = []
    while len(times) < min_repetitions or (len(times) < max_repetitions and sum(times) + times[-1] <= budget):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median(values) -> float:
    return float(statistics.median(values))


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def reset_peak_memory() -> None:
    """Start a new peak-memory window (Linux: resets VmHWM of this process)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb() -> float | None:
    """This process's peak resident memory (MiB) since `reset_peak_memory`, or None where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Worker:
    """This script run again as a worker process with its own environment, answering one JSON request per line.

    The script must call `serve(handlers)` when started with `--worker`. Requests and answers are JSON objects.
    """

    def __init__(self, script: str | Path, env: dict[str, str] | None = None, drop: tuple[str, ...] = ()):
        environment = {k: v for k, v in os.environ.items() if k not in drop}
        environment.update(env or {})
        # A worker's allocator is what its environment says: neurank must not tune it from inside
        # (neurank.runtime.allocator).
        environment.setdefault("NEURANK_MALLOC", "default")
        self.process = subprocess.Popen(
            [sys.executable, str(script), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )

    def ask(self, **request) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.process.pid} exited with status {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def serve(handlers: dict[str, Callable[..., dict]]) -> None:
    """The worker side of `Worker`: read requests `{"task": name, ...}` from stdin, answer each on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a handler prints must not corrupt the answers
    for line in sys.stdin:
        request = json.loads(line)
        answer = handlers[request.pop("task")](**request)
        out.write(json.dumps(answer) + "\n")
        out.flush()


def write_json(path: str | Path, payload: Any) -> None:
    """Write `payload` as JSON atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, default=float)
    os.replace(tmp, path)


def markdown_table(rows: list[dict[str, Any]], columns: list[str], formats: dict[str, str] | None = None) -> str:
    """Rows as a Markdown table over `columns`; numbers formatted by `formats[column]` (a format spec)."""
    formats = formats or {}

    def cell(row, column):
        value = row.get(column, "")
        if value is None:
            return ""
        if column in formats and isinstance(value, (int, float)):
            return format(value, formats[column])
        return str(value)

    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if column in formats else "---" for column in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row, column) for column in columns) + " |" for row in rows]
    return "\n".join(lines)
