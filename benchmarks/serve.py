"""`neurank serve` under load: requests/s and latency at 1, 4, 16 and 64 concurrent clients over loopback, beside the
same scoring done in-process, and a soak at 64 clients with the server's resident memory sampled.

    python benchmarks/serve.py                                  # trains a MatchPyramid first (a few minutes)
    python benchmarks/serve.py --checkpoint runs/mp/best.pt --seconds 10 --soak 60

Each request is one NFCorpus test query with 100 candidates drawn from the NFCorpus documents (seeded), each cut to
its first 200 words; 64 such requests are cycled through. The load generator is `wrk` (Debian's `wrk` package) with
a Lua script that POSTs the requests' JSON bodies to /v2/rerank over keep-alive connections, one connection per
client (closed loop: a client sends its next request when the last is answered). The server runs pinned to one
core (`taskset`, 1 torch thread) and wrk to another; the in-process baseline (`neurank.load_reranker` + `predict` on
the same requests, one after another) runs pinned to the server's core with 1 thread, in its own process, right
before each level (the load of a shared machine drifts within minutes). After a warm-up of --warmup seconds at the
highest level, every level runs for --seconds, each once the server has answered what the last one left queued; the
soak runs --soak seconds at 64 clients, with the server's RSS read from /proc before it (after the warm-up and the
levels), every second during it, and at its end.

Without --checkpoint a MatchPyramid is trained for one epoch on WikiQA with random embeddings, documents of up to
200 tokens and no first-stage feature (`neurank train wikiqa ... model_config.use_first_stage_score=false
train.fusion=false`), so the served and the in-process scoring do the same work: a model that reads BM25 would
have the server compute BM25 over each request's documents, which `predict` does not do.

Targets (issue 21): at 1 client, the served p50 within 5 ms of the in-process p50; at 16 clients, served pairs/s at
least 70% of in-process pairs/s on the same core; the soak with no failed request and RSS after it at most 110% of
RSS after warm-up. The table goes to stdout, every figure to --output (JSON). The machine this runs on is shared
(2 cores, other jobs): the load average is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import speedlib  # noqa: E402

CANDIDATES = 100
MAX_WORDS = 200
REQUESTS = 64
SEED = 0
ROUTE = "/v2/rerank"

LUA = r"""
-- Cycle through the JSON bodies in the file given after `--`, one POST each, and print the figures as JSON.
local bodies = {}
local counter = 0
local headers = {["Content-Type"] = "application/json"}

init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  counter = math.random(#bodies)
end

request = function()
  counter = counter % #bodies + 1
  return wrk.format("POST", "%ROUTE%", headers, bodies[counter])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
"""


def build_requests(data_dir: Path) -> list[dict]:
    """REQUESTS bodies: an NFCorpus test query and CANDIDATES documents of up to MAX_WORDS words (seeded)."""
    from neurank.collections import load_collection

    collection = load_collection("nfcorpus", data_dir)
    queries = [query.text for query in collection.split("test").queries.values()]
    docs = [" ".join(doc.text.split()[:MAX_WORDS]) for doc in collection.docs.values()]
    rng = random.Random(SEED)
    return [
        {"query": rng.choice(queries), "documents": rng.sample(docs, CANDIDATES), "top_n": 10} for _ in range(REQUESTS)
    ]


def in_process(checkpoint: str, bodies_file: str, seconds: float) -> dict:
    """The baseline, in this (pinned) process: `predict` on each request in turn for `seconds`, after a warm-up."""
    import torch

    import neurank

    torch.set_num_threads(1)
    reranker = neurank.load_reranker(checkpoint, device="cpu")
    requests = [json.loads(line) for line in Path(bodies_file).read_text().splitlines()]
    pairs = [[(body["query"], doc) for doc in body["documents"]] for body in requests]
    for request in pairs:  # warm-up: every text tokenised once, as the server's warm-up pass does
        reranker.predict(request)
    times = []
    deadline = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        reranker.predict(pairs[index % len(pairs)])
        times.append(time.perf_counter() - start)
        index += 1
    total = sum(times)
    return {
        "requests": len(times),
        "requests_per_s": len(times) / total,
        "pairs_per_s": len(times) * CANDIDATES / total,
        "p50_ms": 1000 * speedlib.percentile(times, 50),
        "p95_ms": 1000 * speedlib.percentile(times, 95),
        "p99_ms": 1000 * speedlib.percentile(times, 99),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(checkpoint: str, core: int, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    command = [
        "taskset", "-c", str(core), sys.executable, "-m", "neurank.cli", "serve", checkpoint,
        "--port", str(port), "--threads", "1", "--queue-size", "256", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("NEURANK_API_KEY", None)
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"the server did not become healthy:\n{log.read_text()}")


def run_wrk(url: str, script: Path, bodies: Path, clients: int, seconds: float, core: int) -> dict:
    """wrk at `clients` connections for `seconds`, pinned to `core`; its figures, with failed requests counted."""
    command = [
        "taskset", "-c", str(core), "wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
        "-s", str(script), url, "--", str(bodies),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    seconds_run = figures["duration_us"] / 1e6
    failed = sum(figures[key] for key in ("connect", "read", "write", "timeout", "status"))
    return {
        "clients": clients,
        "requests": figures["requests"],
        "failed": failed,
        "requests_per_s": figures["requests"] / seconds_run,
        "pairs_per_s": figures["requests"] * CANDIDATES / seconds_run,
        "p50_ms": figures["p50_us"] / 1000,
        "p95_ms": figures["p95_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "seconds": seconds_run,
    }


def settle(url: str, body: str) -> None:
    """Wait until the server has answered what the last level left queued (wrk stops with requests in flight):
    one more request, answered after them (the queue is first in, first out)."""
    import httpx

    httpx.post(f"{url}{ROUTE}", content=body, headers={"Content-Type": "application/json"}, timeout=300)


def train_checkpoint(data_dir: Path, folder: Path) -> Path:
    command = [
        sys.executable, "-m", "neurank.cli", "train", "wikiqa", "--output-dir", str(folder), "--data-dir",
        str(data_dir), "train.epochs=1", "embeddings.source=random", "data.max_doc_len=200",
        "model_config.use_first_stage_score=false", "train.fusion=false",
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return folder / "best.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="A trained model (default: train a MatchPyramid first).")
    parser.add_argument("--data-dir", default=os.environ.get("NEURANK_DATA", str(ROOT.parent / "shared" / "data")))
    parser.add_argument("--seconds", type=float, default=10.0, help="Seconds per concurrency level.")
    parser.add_argument("--soak", type=float, default=60.0, help="Seconds of the soak at 64 clients (0: none).")
    parser.add_argument("--warmup", type=float, default=10.0, help="Seconds of warm-up at the highest level.")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    parser.add_argument("--in-process", nargs=3, metavar=("CHECKPOINT", "BODIES", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        checkpoint, bodies, seconds = args.in_process
        print(json.dumps(in_process(checkpoint, bodies, float(seconds))))
        return
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/serve.py needs wrk (Debian/Ubuntu: apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="neurank-serve-bench-"))
    checkpoint = args.checkpoint or str(train_checkpoint(Path(args.data_dir), work / "run"))
    requests = build_requests(Path(args.data_dir))
    bodies = work / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(body) + "\n" for body in requests))
    script = work / "post.lua"
    script.write_text(LUA.replace("%ROUTE%", ROUTE))

    def in_process_run() -> dict:
        print(f"in-process on core {args.server_core} ({args.seconds:.0f} s) ...", file=sys.stderr)
        command = ["taskset", "-c", str(args.server_core), sys.executable, __file__, "--in-process", checkpoint]
        done = subprocess.run(
            [*command, str(bodies), str(args.seconds)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        return json.loads(done.stdout.strip().splitlines()[-1])

    server, url = start_server(checkpoint, args.server_core, work / "server.log")
    levels = []
    soak: dict = {}
    try:
        # Warm-up at the highest concurrency: every request's texts tokenised, and the allocator's arenas at the
        # size 64 requests in flight need, before any figure (and the soak's first RSS reading) is taken.
        print(f"warm-up: {max(args.levels)} clients ({args.warmup:.0f} s) ...", file=sys.stderr)
        run_wrk(url, script, bodies, max(args.levels), args.warmup, args.client_core)
        first_body = json.dumps(requests[0])
        for clients in args.levels:
            # In-process right before each level (the server idle meanwhile): on a shared machine the load drifts
            # within minutes, so each level is compared with the baseline measured next to it.
            local = in_process_run()
            settle(url, first_body)
            print(f"{clients} clients ({args.seconds:.0f} s) ...", file=sys.stderr)
            level = run_wrk(url, script, bodies, clients, args.seconds, args.client_core)
            levels.append({**level, "in_process": local})
        if args.soak > 0:
            settle(url, first_body)
            print(f"soak: 64 clients for {args.soak:.0f} s ...", file=sys.stderr)
            before = rss_mb(server.pid)
            samples: list[float] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(1.0):
                    samples.append(rss_mb(server.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                result = run_wrk(url, script, bodies, 64, args.soak, args.client_core)
            finally:
                stop.set()
                sampler.join()
            after = rss_mb(server.pid)
            soak = {
                **result,
                "rss_after_warmup_mb": before,
                "rss_after_soak_mb": after,
                "rss_max_mb": max([before, *samples, after]),
                "rss_ratio": after / before,
                "rss_samples_mb": samples,
            }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)

    by_clients = {level["clients"]: level for level in levels}
    targets = {}
    if 1 in by_clients:
        gap = by_clients[1]["p50_ms"] - by_clients[1]["in_process"]["p50_ms"]
        targets["c1_p50_gap_ms"] = {"value": gap, "target": "<= 5", "met": gap <= 5}
    if 16 in by_clients:
        share = by_clients[16]["pairs_per_s"] / by_clients[16]["in_process"]["pairs_per_s"]
        targets["c16_pairs_share"] = {"value": share, "target": ">= 0.70", "met": share >= 0.70}
    if soak:
        targets["soak_failed"] = {"value": soak["failed"], "target": "0", "met": soak["failed"] == 0}
        targets["soak_rss_ratio"] = {"value": soak["rss_ratio"], "target": "<= 1.10", "met": soak["rss_ratio"] <= 1.10}

    rows = []
    for level in levels:
        rows.append({**level["in_process"], "clients": f"in-process (before {level['clients']})", "failed": 0})
        rows.append(level)
    if soak:
        rows.append({**soak, "clients": "64 (soak)"})
    print(
        speedlib.markdown_table(
            rows,
            ["clients", "requests_per_s", "pairs_per_s", "p50_ms", "p95_ms", "p99_ms", "failed"],
            {"requests_per_s": ".1f", "pairs_per_s": ",.0f", "p50_ms": ".1f", "p95_ms": ".1f", "p99_ms": ".1f"},
        )
    )
    if soak:
        print(
            f"soak RSS: {soak['rss_after_warmup_mb']:.0f} MiB after warm-up, {soak['rss_after_soak_mb']:.0f} MiB after "
            f"the soak ({100 * soak['rss_ratio']:.1f}%), at most {soak['rss_max_mb']:.0f} MiB"
        )
    for name, target in targets.items():
        print(f"{name}: {target['value']:.3g} (target {target['target']}): {'met' if target['met'] else 'NOT met'}")
    speedlib.write_json(
        args.output,
        {
            "machine": speedlib.machine(),
            "load_average_after": os.getloadavg(),
            "checkpoint": checkpoint,
            "request": {"candidates": CANDIDATES, "max_words": MAX_WORDS, "distinct": REQUESTS, "route": ROUTE},
            "seconds_per_level": args.seconds,
            "cores": {"server": args.server_core, "client": args.client_core},
            "levels": levels,
            "soak": soak,
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
