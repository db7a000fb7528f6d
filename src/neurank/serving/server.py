"""Running the service: thread settings, the API key, and uvicorn with a graceful shutdown (`neurank serve`).

    serve({"wikiqa": Path("runs/wikiqa/best.pt")}, host="127.0.0.1", port=8080)

One process serves every model (each loaded once). On SIGTERM or Ctrl-C uvicorn stops accepting connections and
waits for the requests in flight (up to `drain_seconds`); then the batchers score what is queued and stop. A model
that fails to load stops the server, and `serve` raises the loading error.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from neurank.inference.base import BaseReranker

API_KEY_ENV = "NEURANK_API_KEY"
# neurank is installed from its repository (it is not on PyPI); `make test` / `make demo` environments have the extra.
SERVE_EXTRA = 'pip install -e ".[serve]" in the neurank repository'


def require_serve() -> None:
    """Check that the `serve` extra is installed.

    Raises:
        ImportError: one line naming the missing package and the install command.
    """
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        try:
            __import__(module)
        except ImportError:
            raise ImportError(f"`neurank serve` needs {module}, which is not installed: {SERVE_EXTRA}") from None


def read_api_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The key clients must send: the first line of `key_file`, else $NEURANK_API_KEY, else None (no key).

    Raises:
        FileNotFoundError: `key_file` does not exist. ValueError: it (or the variable) holds an empty key.
    """
    environ = os.environ if environ is None else environ
    if key_file is not None:
        if not key_file.is_file():
            raise FileNotFoundError(f"{key_file}: API key file not found (--api-key-file)")
        lines = key_file.read_text(encoding="utf-8").strip().splitlines()
        key = lines[0].strip() if lines else ""
        if not key:
            raise ValueError(f"{key_file}: the API key file is empty (--api-key-file)")
        return key
    if API_KEY_ENV in environ:
        key = environ[API_KEY_ENV].strip()
        if not key:
            raise ValueError(f"${API_KEY_ENV} is set but empty; unset it to serve without a key")
        return key
    return None


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """A warning when `host` lets other machines in (not loopback) and no key is required; None otherwise."""
    if api_key is not None:
        return None
    if host == "localhost":
        return None
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    return (
        f"--host {host} accepts connections from other machines and no API key is set: anyone who can reach the port "
        "can use the service; set $NEURANK_API_KEY or --api-key-file"
    )


def cpu_threads() -> int:
    """The cores this process may run on (`taskset`, cgroup cpusets), which is how many threads scoring gets."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serve(
    sources: Mapping[str, Path | BaseReranker],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    api_key: str | None = None,
    limits=None,
    device: str = "auto",
    batch_size: int = 256,
    threads: int | None = None,
    drain_seconds: float = 30.0,
    log_level: str = "info",
    access_log: bool = False,
    fusion: bool = True,
) -> None:
    """Serve `sources` (name -> model file or re-ranker) until SIGTERM / Ctrl-C.

    Args:
        limits: `neurank.serving.app.ServeLimits` (None: its defaults).
        device, batch_size: how model files are loaded (`neurank.load_reranker`).
        threads: torch's (and onnxruntime's) intra-op threads (None: the cores this process may use, `cpu_threads`);
            scoring runs in one worker thread per model, so its forward passes have the cores to themselves.
        drain_seconds: how long a shutdown waits for the requests in flight.
        fusion: False serves every model's own logits (sigmoid probabilities) instead of the fusion with the first
            stage its checkpoint records (`--no-fusion`).
    Raises:
        ImportError: the `serve` extra is missing. Whatever loading a model raised (CheckpointError, ...).
    """
    require_serve()
    import torch
    import uvicorn

    import neurank
    from neurank.inference.loader import ONNX, model_file_format
    from neurank.inference.onnx_reranker import OnnxReranker
    from neurank.serving.app import create_app

    threads = threads or cpu_threads()
    torch.set_num_threads(threads)
    # torch refuses to set the inter-op threads once parallel work has run in the process (a second serve() call).
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)  # only the worker thread calls torch: no parallel operators to overlap

    def load(path: str | Path) -> BaseReranker:
        if model_file_format(path) == ONNX and device in ("auto", "cpu"):  # onnxruntime's threads are its own
            return OnnxReranker.from_file(path, batch_size=batch_size, threads=threads)
        return neurank.load_reranker(path, device=device, batch_size=batch_size)

    app = create_app(sources, limits, api_key=api_key, loader=load, drain_seconds=drain_seconds, fusion=fusion)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=int(drain_seconds),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    models = app.state.models

    def stop(_: BaseException) -> None:
        server.should_exit = True

    models.on_failure = stop
    logger = logging.getLogger("neurank.serving")
    logger.setLevel(log_level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     neurank: %(message)s"))
        logger.addHandler(handler)
    if (warning := exposure_warning(host, api_key)) is not None:
        logger.warning(warning)
    server.run()
    if models.error is not None:
        raise models.error
