"""`neurank serve`: trained re-rankers behind an HTTP service that Cohere, Jina and text-embeddings-inference
clients can call (`neurank.serving`, the `serve` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from neurank.cli._common import app


def parse_models(checkpoint: Path | None, models: list[str]) -> dict[str, Path]:
    """Name -> model file, from the positional CHECKPOINT and the repeated `--model NAME=PATH`.

    A lone CHECKPOINT is served under its folder's name when it is a `best.pt` / `last.pt` (runs/wikiqa/best.pt ->
    "wikiqa"), else under its file name without the suffix. A run folder (CHECKPOINT or PATH) stands for the
    `best.pt` in it, which is said on stderr.

    Raises:
        ValueError: no model, a malformed or repeated --model, a folder without best.pt. FileNotFoundError: a model
        file is missing. CheckpointError: a file is neither a PyTorch checkpoint nor an ONNX model.
    """
    from neurank.inference.loader import model_file_format

    served: dict[str, Path] = {}
    if checkpoint is not None:
        checkpoint = run_best(checkpoint)
        name = checkpoint.parent.name if checkpoint.stem in ("best", "last") and checkpoint.parent.name else None
        served[name or checkpoint.stem] = checkpoint
    for entry in models:
        name, sep, file = entry.partition("=")
        if not sep or not name.strip() or not file.strip():
            raise ValueError(f"--model {entry!r}: expected NAME=PATH, e.g. --model wikiqa=runs/wikiqa/best.pt")
        if name.strip() in served:
            raise ValueError(f"--model {entry!r}: the name {name.strip()!r} is served twice")
        served[name.strip()] = run_best(Path(file.strip()))
    if not served:
        raise ValueError("nothing to serve: give a CHECKPOINT or --model NAME=PATH")
    for name, path in served.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model file not found (model {name!r})")
        model_file_format(path)  # before binding the port: a file that is no model is refused at once
    return served


def run_best(path: Path) -> Path:
    """`path`, or for a run folder the `best.pt` in it (said on stderr).

    Raises:
        ValueError: a folder without best.pt.
    """
    if not path.is_dir():
        return path
    best = path / "best.pt"
    if best.is_file():
        typer.echo(f"{path} is a run folder: serving {best}, its best checkpoint", err=True)
        return best
    last = " (it holds last.pt: pass DIR/last.pt for the last epoch's)" if (path / "last.pt").is_file() else ""
    raise ValueError(f"{path} is a directory; pass DIR/best.pt, a checkpoint written by `neurank train`{last}")


@app.command("serve")
def serve_cmd(
    checkpoint: Path | None = typer.Argument(
        None,
        help="A best.pt / last.pt written by `neurank train` (or its run folder: its best.pt), or a .onnx from "
        "`neurank export`.",
    ),
    model: list[str] = typer.Option(
        [], "--model", help="NAME=PATH: serve a model under NAME (repeat for several); requests pick it by `model`."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes the service (warned without an API key)."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535),
    api_key_file: Path | None = typer.Option(
        None,
        "--api-key-file",
        help="File whose first line is the key clients must send as 'Authorization: Bearer KEY' (default: "
        "$NEURANK_API_KEY; neither: no key). Never given on the command line, where other users can read it.",
    ),
    max_documents: int = typer.Option(1000, "--max-documents", min=1, help="Most documents per request (else 413)."),
    max_request_bytes: int = typer.Option(
        4 << 20, "--max-request-bytes", min=1, help="Largest request body in bytes (else 413)."
    ),
    queue_size: int = typer.Option(
        64, "--queue-size", min=1, help="Requests waiting to be scored per model (one more: 503 with Retry-After)."
    ),
    max_cells: int = typer.Option(
        1 << 22,
        "--max-cells",
        min=1,
        help="Cell budget of one scoring call: concurrent requests are gathered while documents x max query length "
        "x max document length stays under it.",
    ),
    device: str = typer.Option("auto", "--device"),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Most pairs per forward pass."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Torch threads for scoring (default: the cores this process may use)."
    ),
    drain_seconds: float = typer.Option(
        30.0, "--drain-seconds", min=0, help="On SIGTERM, how long to wait for the requests in flight."
    ),
    log_level: str = typer.Option("info", "--log-level"),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (uvicorn's access log)."),
    no_fusion: bool = typer.Option(
        False,
        "--no-fusion",
        help="Serve every model's own logits (relevance_score = their sigmoid, a probability) instead of the fusion "
        "with the first stage a checkpoint records (train.fusion), whose scores are normalised within each request.",
    ),
) -> None:
    """Serve trained re-rankers over HTTP: POST /v1/rerank and /v2/rerank (Cohere, Jina), POST /rerank
    (text-embeddings-inference), GET /health, GET /metrics (Prometheus), GET /docs (OpenAPI).

    Concurrent requests are scored together in shared batches; SIGTERM answers the requests in flight, then exits."""
    from neurank.serving.server import read_api_key, require_serve, serve

    require_serve()
    from neurank.serving.app import ServeLimits

    api_key = read_api_key(api_key_file)
    sources = parse_models(checkpoint, model)
    limits = ServeLimits(max_documents, max_request_bytes, queue_size, max_cells)
    serve(
        dict(sources),
        host=host,
        port=port,
        api_key=api_key,
        limits=limits,
        device=device,
        batch_size=batch_size,
        threads=threads,
        drain_seconds=drain_seconds,
        log_level=log_level,
        access_log=access_log,
        fusion=not no_fusion,
    )
