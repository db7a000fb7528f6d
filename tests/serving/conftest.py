"""Served models for the serving tests, trained once per session on the tiny collection of tests/conftest.py: a plain
MatchPyramid, one that reads the BM25 score and is fused with it, and the plain one exported to ONNX. `start_server`
runs `python -m neurank.cli serve ...` as a real process on a free port of 127.0.0.1 and waits for /health."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import QUESTIONS, tiny_config_for, write_wikiqa

REPO = Path(__file__).resolve().parents[2]
# A server on these two busy cores takes seconds to import torch, load and warm up.
START_TIMEOUT = 120.0


def _tiny_config(data_dir: Path, **model_config):
    # tests/conftest.py's tiny config, trained for one epoch: these models only need to exist.
    config = tiny_config_for(data_dir, **model_config)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """{"plain": best.pt, "fused": best.pt reading BM25 and fused with it, "onnx": the plain one exported}."""
    from neurank.inference.export import export_checkpoint
    from neurank.training import train

    root = tmp_path_factory.mktemp("serving")
    folder = root / "data" / "wikiqa"
    folder.mkdir(parents=True)
    (folder / "WikiQA-train.tsv").write_text(write_wikiqa(folder, QUESTIONS), encoding="utf-8")
    (folder / "WikiQA-dev.tsv").write_text(write_wikiqa(folder, QUESTIONS[:3], 100), encoding="utf-8")
    (folder / "WikiQA-test.tsv").write_text(write_wikiqa(folder, QUESTIONS[3:], 200), encoding="utf-8")
    plain = _tiny_config(root / "data")
    train(plain, root / "plain", progress=False)
    fused = _tiny_config(root / "data", use_first_stage_score=True)
    fused = dataclasses.replace(fused, train=dataclasses.replace(fused.train, fusion=True))
    train(fused, root / "fused", progress=False)
    export_checkpoint(root / "plain" / "best.pt", root / "plain.onnx")
    return {"plain": root / "plain" / "best.pt", "fused": root / "fused" / "best.pt", "onnx": root / "plain.onnx"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(args: list[str], log: Path, env: dict[str, str] | None = None) -> Server:
    """`neurank serve ARGS --port FREE` in a new process, once /health answers 200 (fails with its log if not)."""
    port = free_port()
    environ = {name: value for name, value in os.environ.items() if name != "NEURANK_API_KEY"}
    environ.update({"OMP_NUM_THREADS": "1", **(env or {})})
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "neurank.cli", "serve", *map(str, args), "--port", str(port), "--threads", "1"],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=environ,
        cwd=REPO,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"the server did not become healthy in {START_TIMEOUT:.0f} s:\n{log.read_text()}")
