"""The FastAPI app of `neurank serve`: routes, limits, authentication and metrics over served re-rankers.

    app = create_app({"wikiqa": "runs/wikiqa/best.pt"}, ServeLimits(), api_key=None)

Routes: `POST /v1/rerank` and `POST /v2/rerank` (Cohere's and Jina's shape), `POST /rerank` (text-embeddings-
inference's), `GET /health` (200 once every model is loaded and warmed up, 503 before), `GET /metrics` (Prometheus)
and FastAPI's `/docs` and `/openapi.json`. Models load in a background thread when the app starts, so the port
answers `/health` while they do.

Scores: `relevance_score` (and `/rerank`'s `score`) is the sigmoid of the model's logit, a probability; for a model
fused with its first stage (`train.fusion`) it is the fused score itself, already in [0, 1] but normalised within
the request, with a note in `meta.warnings` (`create_app(..., fusion=False)`, `neurank serve --no-fusion`, serves the
model's own logits instead).

Answers to what goes wrong: 401 without `Authorization: Bearer KEY` when a key is set (`/health`, `/docs` and
`/openapi.json` stay open), 413 for too many documents or too large a body (the limit is in the message), 422
naming the field (malformed JSON, an empty query, no documents), 404 for an unknown model (naming the known ones),
503 with Retry-After while loading or when the queue is full. Errors are `{"message": ...}` as Cohere's are; the
text-embeddings-inference route answers `{"error": ..., "error_type": ...}` as that server does.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hmac
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from scipy.special import expit
from starlette.exceptions import HTTPException as StarletteHTTPException

import neurank
from neurank.inference.base import BaseReranker, QueryDocs, QueryScores
from neurank.inference.first_stage import FirstStageError
from neurank.serving.batcher import Batcher, BatcherClosed, BatchLimits, QueueFull, Scored
from neurank.serving.metrics import CONTENT_TYPE, Metrics
from neurank.serving.schemas import Health, RerankRequest, RerankResponse, TeiRank, TeiRerankRequest

log = logging.getLogger("neurank.serving")

OPEN_PATHS = ("/health", "/docs", "/openapi.json", "/docs/oauth2-redirect")
TEI_PATH = "/rerank"
# Cohere bills one search unit per query with up to 100 documents.
DOCS_PER_SEARCH_UNIT = 100
# Indices listed in a truncation warning before "and N more".
SHOWN_INDICES = 10
# Seconds a client is asked to wait (Retry-After) while models load or the queue is full.
RETRY_AFTER = "1"


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask, and how requests are gathered.

    Attributes:
        max_documents: the most documents per request (more: 413).
        max_request_bytes: the largest request body (larger: 413).
        queue_size: requests waiting to be scored per model (one more: 503 with Retry-After).
        max_cells: documents x the model's query length x its document length gathered into one scoring call.
    """

    max_documents: int = 1000
    max_request_bytes: int = 4 << 20
    queue_size: int = 64
    max_cells: int = 1 << 22

    def __post_init__(self):
        for name in ("max_documents", "max_request_bytes", "queue_size", "max_cells"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class ApiError(Exception):
    """An answer other than 200: status, message, and for text-embeddings-inference the error type."""

    def __init__(self, status: int, message: str, error_type: str = "Validation", headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.headers = headers or {}


ModelSource = str | Path | BaseReranker


class ServedModels:
    """The served re-rankers by name, each behind its own `Batcher`; `load` loads and warms them up.

    Args:
        sources: name -> a model file (`neurank.load_reranker`) or a loaded re-ranker.
        limits: request limits and batching.
        metrics: where batches and queue depths are counted.
        loader: what loads a model file (`load_reranker` with the server's device and batch size).
        fusion: False serves every model's own logits, without the first-stage fusion its checkpoint records.
    """

    def __init__(
        self,
        sources: Mapping[str, ModelSource],
        limits: ServeLimits,
        metrics: Metrics,
        loader: Callable[[str | Path], BaseReranker],
        fusion: bool = True,
    ):
        if not sources:
            raise ValueError("no model to serve")
        self.sources = dict(sources)
        self.limits = limits
        self.metrics = metrics
        self.loader = loader
        self.fusion = fusion
        self.status = "loading"
        self.error: BaseException | None = None
        self.batchers: dict[str, Batcher] = {}
        self.on_failure: Callable[[BaseException], None] | None = None

    @property
    def names(self) -> list[str]:
        return list(self.sources)

    def load(self) -> None:
        """Load every model, score a warm-up request with each, and start its batcher; on failure keep the error."""
        try:
            for name, source in self.sources.items():
                reranker = source if isinstance(source, BaseReranker) else self.loader(source)
                if not self.fusion and reranker.fusion_alpha is not None:
                    log.info(
                        "model %s: fusion with the first stage (alpha %g) off (--no-fusion): serving its own logits",
                        name,
                        reranker.fusion_alpha,
                    )
                    reranker = copy.copy(reranker)  # a re-ranker handed in stays as its owner set it
                    reranker.fusion_alpha = None
                warm_up(reranker)
                batcher = Batcher(
                    reranker,
                    BatchLimits(self.limits.queue_size, self.limits.max_cells),
                    on_batch=functools.partial(self.metrics.observe_batch, name),
                    on_depth=functools.partial(self.metrics.set_depth, name),
                )
                batcher.start()
                self.batchers[name] = batcher
                log.info("model %s ready (%s)", name, source if not isinstance(source, BaseReranker) else "given")
            self.status = "ok"
        except Exception as error:  # reported by /health and by `neurank serve`, which then exits
            self.status, self.error = "failed", error
            log.error("loading the models failed: %s", error)
            if self.on_failure is not None:
                self.on_failure(error)

    def pick(self, name: str | None) -> tuple[str, Batcher]:
        """The model a request names (None: the first served), once loaded."""
        if name is not None and name not in self.sources:
            known = ", ".join(repr(known) for known in self.sources)
            raise ApiError(404, f"unknown model {name!r}; this server serves {known}", "NotFound")
        if self.status != "ok":
            why = "is loading" if self.status == "loading" else f"failed to load ({self.error})"
            raise ApiError(503, f"the model {why}", "Unhealthy", {"Retry-After": RETRY_AFTER})
        name = name if name is not None else self.names[0]
        return name, self.batchers[name]

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, score the queued ones, stop the workers."""
        for batcher in self.batchers.values():
            batcher.close(timeout)


def warm_up(reranker: BaseReranker) -> None:
    """Score one request of short and full-length documents, so the first client does not pay for first calls."""
    words = ["warm", "up", "document", "text"]
    longest = reranker.encoder.max_doc_len
    docs = [" ".join(words[i % len(words)] for i in range(length)) for length in (1, max(1, longest // 2), longest)]
    scores = [1.0, 0.5, 0.0] if reranker.uses_first_stage_score else None
    reranker.score_queries([QueryDocs("warm up query", docs, scores)])


def create_app(
    sources: Mapping[str, ModelSource],
    limits: ServeLimits | None = None,
    api_key: str | None = None,
    loader: Callable[[str | Path], BaseReranker] | None = None,
    drain_seconds: float | None = 30.0,
    fusion: bool = True,
) -> FastAPI:
    """The service over `sources` (name -> model file or re-ranker).

    Args:
        limits: request limits and batching (`ServeLimits`).
        api_key: required as `Authorization: Bearer KEY` on every route but /health and the docs; None: open.
        loader: loads a model file (default: `neurank.load_reranker` on the CPU, or the best device).
        drain_seconds: at shutdown, how long the batchers may take to score what is queued.
        fusion: False serves the models' own logits (sigmoid probabilities), without the fusion with the first stage
            a checkpoint records (`neurank serve --no-fusion`).
    The app's `state.models` is the `ServedModels`; set its `on_failure` to learn that loading failed.
    """
    limits = limits or ServeLimits()
    metrics = Metrics()
    models = ServedModels(sources, limits, metrics, loader or (lambda path: neurank.load_reranker(path)), fusion)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=models.load, name="neurank-load", daemon=True).start()
        yield
        models.close(drain_seconds)

    app = FastAPI(
        title="neurank re-ranking service",
        version=neurank.__version__,
        description="Re-ranks documents for a query with a trained neurank model: Cohere/Jina (`/v1/rerank`, "
        "`/v2/rerank`) and text-embeddings-inference (`/rerank`) request shapes.",
        lifespan=lifespan,
    )
    app.state.models = models
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(request.url.path, error.status, error.message, error.error_type, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers) if error.headers else None
        return error_response(request.url.path, error.status_code, str(error.detail), "Validation", headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(request.url.path, 422, validation_message(error.errors()), "Validation")

    @app.post("/v1/rerank", response_model=RerankResponse, tags=["rerank"])
    async def rerank_v1(body: RerankRequest) -> Response:
        """Cohere's v1 rerank (documents as strings or {"text"} objects)."""
        return await cohere_rerank(body, "1")

    @app.post("/v2/rerank", response_model=RerankResponse, tags=["rerank"])
    async def rerank_v2(body: RerankRequest) -> Response:
        """Cohere's v2 and Jina's rerank."""
        return await cohere_rerank(body, "2")

    async def cohere_rerank(body: RerankRequest, version: str) -> Response:
        name, batcher = models.pick(body.model)
        texts = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
        scored = await score(batcher, body.query, texts, body.first_stage_scores, limits)
        outcome = scored.outcome
        warnings = outcome_warnings(batcher.reranker, scored, body.first_stage_scores is not None)
        if body.max_tokens_per_doc is not None:
            warnings.append(
                f"max_tokens_per_doc is not applied: the model reads the first {batcher.reranker.encoder.max_doc_len} "
                "tokens of each document, the length it was trained with"
            )
        relevance = relevance_scores(batcher.reranker, outcome.scores)
        results = []
        for index in best_first(outcome.scores, body.top_n):
            result: dict[str, Any] = {"index": index, "relevance_score": float(relevance[index])}
            if body.return_documents:
                result["document"] = {"text": texts[index]}
            results.append(result)
        payload = {
            "id": str(uuid.uuid4()),
            "model": name,
            "results": results,
            "meta": {
                "api_version": {"version": version},
                "billed_units": {"search_units": math.ceil(len(texts) / DOCS_PER_SEARCH_UNIT)},
                "tokens": {"input_tokens": outcome.tokens},
                "warnings": warnings,
                "first_stage": outcome.first_stage,
            },
            "usage": {"total_tokens": outcome.tokens},
        }
        return JSONResponse(payload)

    @app.post(TEI_PATH, response_model=list[TeiRank], tags=["rerank"])
    async def rerank_tei(body: TeiRerankRequest) -> Response:
        """text-embeddings-inference's rerank: `truncate: false` (the default) answers 413 for too long a text."""
        _, batcher = models.pick(body.model)
        outcome = (await score(batcher, body.query, body.texts, body.first_stage_scores, limits)).outcome
        encoder = batcher.reranker.encoder
        if not body.truncate and (outcome.truncated_docs or outcome.query_truncated):
            what = (
                f"the query is longer than the {encoder.max_query_len} tokens"
                if outcome.query_truncated
                else f"{indices_phrase('text', outcome.truncated_docs)} longer than the {encoder.max_doc_len} tokens"
            )
            raise ApiError(413, f"{what} the model reads; send truncate: true to score the start of each, as trained")
        # raw_scores: the logits, or a fused model's fused scores (which are its relevance scores too).
        raw = outcome.scores.astype(np.float64)
        values = raw if body.raw_scores else relevance_scores(batcher.reranker, outcome.scores)
        ranks = []
        for index in best_first(outcome.scores, None):
            rank: dict[str, Any] = {"index": index, "score": float(values[index])}
            if body.return_text:
                rank["text"] = body.texts[index]
            ranks.append(rank)
        return JSONResponse(ranks)

    @app.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["service"])
    async def health() -> Response:
        """200 once every model is loaded and warmed up; 503 while loading or after loading failed."""
        body: dict[str, Any] = {"status": models.status, "models": models.names}
        if models.error is not None:
            body["message"] = str(models.error)
        if models.status == "ok":
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER})

    @app.get("/metrics", tags=["service"])
    async def prometheus_metrics() -> Response:
        """Requests, errors, latency, batch sizes and queue depth in Prometheus' text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routes = {path for route in app.routes if isinstance(path := getattr(route, "path", None), str)}
    app.add_middleware(Guard, metrics=metrics, api_key=api_key, max_bytes=limits.max_request_bytes, routes=routes)
    return app


async def score(
    batcher: Batcher, query: str, texts: list[str], first_stage_scores: list[float] | None, limits: ServeLimits
) -> Scored:
    """One request scored through the batcher, its mistakes answered with the right status."""
    if len(texts) > limits.max_documents:
        most = limits.max_documents
        raise ApiError(413, f"{len(texts)} documents; this server takes at most {most} per request (--max-documents)")
    reranker = batcher.reranker
    if first_stage_scores is not None and len(first_stage_scores) != len(texts):
        raise ApiError(
            422,
            f"first_stage_scores: {len(first_stage_scores)} scores for {len(texts)} documents; give one per document, "
            "in their order",
        )
    if first_stage_scores is not None and not all(math.isfinite(value) for value in first_stage_scores):
        raise ApiError(422, "first_stage_scores: every score must be a finite number")
    if reranker.uses_first_stage_score and first_stage_scores is None:
        stage = reranker.first_stage
        if stage is None or not stage.computable:
            raise ApiError(
                422,
                f"first_stage_scores: this model reads the first-stage score {reranker.first_stage_use()}, and its "
                f"first stage ({stage.describe() if stage else 'not recorded'}) cannot be computed here; send one "
                "first-stage score per document",
            )
    try:
        future = batcher.submit(QueryDocs(query, texts, first_stage_scores))
    except QueueFull as error:
        raise ApiError(503, f"too busy: {error}; retry shortly", "Overloaded", {"Retry-After": RETRY_AFTER}) from None
    except BatcherClosed as error:
        raise ApiError(503, str(error), "Unhealthy", {"Retry-After": RETRY_AFTER}) from None
    try:
        return await future
    except (FirstStageError, ValueError) as error:
        raise ApiError(422, str(error)) from None


def relevance_scores(reranker: BaseReranker, scores: np.ndarray) -> np.ndarray:
    """What a response calls relevance: the sigmoid of the model's logits, a probability; a fused model's scores as
    they are (already in [0, 1]: `neurank.inference.fusion`, normalised per request)."""
    if reranker.fusion_alpha is not None:
        return scores.astype(np.float64)
    return expit(scores.astype(np.float64))


def best_first(scores: np.ndarray, top_n: int | None) -> list[int]:
    """Positions by score, best first (ties in the given order), the first `top_n` (None: all)."""
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:top_n]]


def indices_phrase(kind: str, indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:SHOWN_INDICES])
    more = f" and {len(indices) - SHOWN_INDICES} more" if len(indices) > SHOWN_INDICES else ""
    return f"{kind} {shown}{more} is" if len(indices) == 1 else f"{kind}s {shown}{more} are"


def outcome_warnings(reranker: BaseReranker, scored: Scored, scores_given: bool) -> list[str]:
    """What the client should know about how its request was read and scored: fused scores, texts without tokens,
    truncation, ignored first-stage scores."""
    encoder = reranker.encoder
    outcome: QueryScores = scored.outcome
    warnings = []
    alpha = reranker.fusion_alpha
    if alpha is not None:
        warnings.append(
            f"relevance_score fuses the model with the first stage: {alpha:g} x the model's scores min-max "
            f"normalised within this request + {1 - alpha:g} x the first-stage scores normalised to [0, 1]; comparable "
            "within this response, not a calibrated probability (neurank serve --no-fusion serves the model's own "
            "probabilities)"
        )
    if scored.tokenless_query:
        warnings.append(
            "the query has no token after tokenisation (only punctuation or stop words): the model read it as one "
            "unknown token, so its scores say little about the query"
        )
    if scored.tokenless_docs:
        warnings.append(
            f"{indices_phrase('document', scored.tokenless_docs)} empty after tokenisation (blank, or only "
            "punctuation or stop words): the model read each as one unknown token"
        )
    if outcome.query_truncated:
        warnings.append(
            f"the query is longer than the {encoder.max_query_len} tokens the model reads; it read the first "
            f"{encoder.max_query_len}, as in training"
        )
    if outcome.truncated_docs:
        warnings.append(
            f"{indices_phrase('document', outcome.truncated_docs)} longer than the {encoder.max_doc_len} tokens the "
            f"model reads; it scored the first {encoder.max_doc_len} tokens of each, as in training"
        )
    if scores_given and not reranker.uses_first_stage_score:
        warnings.append("first_stage_scores ignored: this model reads no first-stage score")
    return warnings


def validation_message(errors) -> str:
    """One sentence naming each invalid field of a request (FastAPI's validation errors)."""
    parts = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        if error.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({error.get('ctx', {}).get('error', error['msg'])})")
            continue
        field = ".".join(location) or "body"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "too_short" and location:
            message = "must not be empty"
        parts.append(f"{field}: {message}")
    return "; ".join(parts) or "invalid request"


def error_response(
    path: str, status: int, message: str, error_type: str = "Validation", headers: dict | None = None
) -> JSONResponse:
    """An error in the shape the route's clients read: `{"message"}` (Cohere), `{"error", "error_type"}` (TEI)."""
    body: dict[str, Any] = {"message": message}
    if path == TEI_PATH:
        body = {"error": message, "error_type": error_type, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


class _TooLarge(StarletteHTTPException):
    """A body that passed the size limit while it was read (sent without Content-Length). An HTTPException, because
    FastAPI turns other errors raised while it reads a body into 400."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body of more than {max_bytes} bytes (--max-request-bytes)")


class Guard:
    """ASGI middleware in front of the app: the bearer key, the body size limit, and every request's metrics.

    Written against ASGI itself rather than as a Starlette `BaseHTTPMiddleware`, which costs a task per request.
    """

    def __init__(self, app, metrics: Metrics, api_key: str | None, max_bytes: int, routes: set[str]):
        self.app = app
        self.metrics = metrics
        self.expected = api_key.encode() if api_key else None
        self.max_bytes = max_bytes
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        status = [500]
        started = [False]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                started[0] = True
            await send(message)

        headers = dict(scope["headers"])
        try:
            if self.expected is not None and path not in OPEN_PATHS:
                why = refusal(headers.get(b"authorization"), self.expected)
                if why is not None:
                    await _reply(
                        send_status,
                        error_response(
                            path,
                            401,
                            f"{why}: send the server's key as 'Authorization: Bearer KEY'",
                            "Unauthorized",
                            {"WWW-Authenticate": "Bearer"},
                        ),
                        scope,
                        receive,
                    )
                    return
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                await _reply(send_status, self._too_large(path, int(length)), scope, receive)
                return
            received = [0]

            async def receive_limited():
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > self.max_bytes:
                        raise _TooLarge(self.max_bytes)
                return message

            try:
                await self.app(scope, receive_limited, send_status)
            except _TooLarge:
                if started[0]:
                    raise
                await _reply(send_status, self._too_large(path, None), scope, receive)
        finally:
            label = path if path in self.routes else "other"
            self.metrics.observe_request(label, status[0], time.perf_counter() - start)

    def _too_large(self, path: str, length: int | None) -> JSONResponse:
        size = f"{length} bytes" if length is not None else "more than that"
        return error_response(
            path, 413, f"request body of {size}; this server takes at most {self.max_bytes} (--max-request-bytes)"
        )


def refusal(header: bytes | None, key: bytes) -> str | None:
    """Why an `Authorization` header does not carry `key` as a bearer token (None: it does). The scheme is read
    case-insensitively (RFC 7235: `bearer KEY` is `Bearer KEY`)."""
    if header is None or not header.strip():
        return "no API key was sent (no Authorization header)"
    scheme, _, credentials = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        shown = scheme.decode("latin-1")[:20]
        return f"the Authorization header uses the scheme {shown!r}, not Bearer"
    token = credentials.strip()
    if not token:
        return "an empty bearer token (is the client's key, e.g. $NEURANK_API_KEY, set?)"
    if not hmac.compare_digest(token, key):
        return "a wrong API key"
    return None


async def _reply(send, response: Response, scope, receive) -> None:
    await response(scope, receive, send)
