"""Gathering concurrent requests into shared scoring batches, scored by one worker thread off the event loop.

    batcher = Batcher(reranker, BatchLimits(queue_size=64, max_cells=1 << 22))
    batcher.start()
    scored = await batcher.submit(QueryDocs(query, docs))     # QueueFull when `queue_size` requests wait already
    batcher.close()                                            # scores what is queued, then stops the thread

The event loop only parses and answers; tokenising and the forward passes run in the worker thread, which takes
every waiting request up to a cell budget (documents x the model's query length x its document length, an upper
bound on the interaction cells the request can cost) and scores them with one `BaseReranker.score_queries` call.
The scorer then cuts that pool into forward batches of similar lengths under the model's own cell budget
(`neurank.inference.scorer`), so a lone request is scored as soon as it arrives and concurrent ones share batches.
The queue is bounded: a full queue refuses at once (the server answers 503 with Retry-After) instead of letting
latency grow without limit.

Each request comes back as a `Scored`: its `QueryScores` and which of its texts had no token at all (empty, or only
punctuation or stop words), found in the worker for that request alone. The encoder's own `DataWarning` about such
texts is no use to a response: it is raised only the first time a text is seen (the encoder caches texts), counts
every request of a shared scoring call together, and `warnings.catch_warnings` is process-wide state that the worker
threads of several models would change under one another.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from neurank.inference.base import BaseReranker, QueryDocs, QueryScores
from neurank.text import TextEncoder, Tokenizer

log = logging.getLogger("neurank.serving")

# Texts an encoder may keep tokenised (`neurank.text.WordEncoder` caches every distinct text): a server sees new
# texts for ever, so past this many the cache is emptied, keeping memory flat.
MAX_CACHED_TEXTS = 20_000


class QueueFull(RuntimeError):
    """The batcher's queue holds `queue_size` requests already; try again shortly."""


class BatcherClosed(RuntimeError):
    """The batcher is draining or stopped: the server is shutting down."""


@dataclass(frozen=True)
class BatchLimits:
    """How the batcher gathers requests.

    Attributes:
        queue_size: the most requests waiting to be scored; one more is refused (`QueueFull`).
        max_cells: the most cells (documents x max query length x max document length of the model) gathered into
            one scoring call; a single request over it is scored alone.
    """

    queue_size: int = 64
    max_cells: int = 1 << 22

    def __post_init__(self):
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.max_cells < 1:
            raise ValueError(f"max_cells must be >= 1, got {self.max_cells}")


@dataclass
class Scored:
    """One request's scores (`QueryScores`) and which of its texts had no token after tokenisation.

    Attributes:
        outcome: what `BaseReranker.score_queries` gave for the request.
        tokenless_docs: positions of the documents without a token; the model read each as the single unknown token.
        tokenless_query: the query has no token (the model read it as the single unknown token).
    """

    outcome: QueryScores
    tokenless_docs: list[int] = field(default_factory=list)
    tokenless_query: bool = False


@dataclass
class _Job:
    request: QueryDocs
    cells: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Batcher:
    """One re-ranker's queue and the worker thread that scores it.

    Args:
        reranker: any `BaseReranker`.
        limits: queue size and cell budget.
        on_batch: called in the worker with (requests, pairs) after each scoring call (metrics).
        on_depth: called with the queue depth whenever it changes (metrics).
    """

    def __init__(
        self,
        reranker: BaseReranker,
        limits: BatchLimits | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ):
        self.reranker = reranker
        self.limits = limits or BatchLimits()
        self.on_batch = on_batch
        self.on_depth = on_depth
        encoder = reranker.encoder
        self.cells_per_doc = encoder.max_query_len * encoder.max_doc_len
        self._queue: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._work, name="neurank-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting to be scored."""
        return len(self._queue)

    def submit(self, request: QueryDocs) -> asyncio.Future:
        """Queue `request` and return a future of its `Scored` (await it on the calling event loop).

        Raises:
            QueueFull: `queue_size` requests wait already. BatcherClosed: the batcher is draining.
        """
        loop = asyncio.get_running_loop()
        job = _Job(request, max(1, len(request.docs)) * self.cells_per_doc, loop.create_future(), loop)
        with self._ready:
            if self._closing:
                raise BatcherClosed("the server is shutting down")
            if len(self._queue) >= self.limits.queue_size:
                raise QueueFull(f"{len(self._queue)} requests are waiting already (--queue-size)")
            self._queue.append(job)
            depth = len(self._queue)
            self._ready.notify()
        self._report_depth(depth)
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, score the queued ones, and stop the worker (waits up to `timeout` seconds)."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[_Job] | None:
        """The next batch: the oldest request and those behind it while the cell budget lasts (None: closed)."""
        with self._ready:
            while not self._queue:
                if self._closing:
                    return None
                self._ready.wait()
            jobs = [self._queue.popleft()]
            cells = jobs[0].cells
            while self._queue and cells + self._queue[0].cells <= self.limits.max_cells:
                job = self._queue.popleft()
                cells += job.cells
                jobs.append(job)
            depth = len(self._queue)
        self._report_depth(depth)
        return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            live = [job for job in jobs if not job.future.cancelled()]  # a client that left needs no scores
            if not live:
                continue
            try:
                results: list[QueryScores] | None = self.reranker.score_queries([job.request for job in live])
                error: BaseException | None = None
            except Exception as caught:  # handed to the requests' handlers, which answer with it
                results, error = None, caught
                log.exception("scoring a batch of %d requests failed", len(live))
            for index, job in enumerate(live):
                outcome: Scored | BaseException | None = error if results is None else self._scored(job, results[index])
                job.loop.call_soon_threadsafe(_resolve, job.future, outcome)
            if self.on_batch is not None:
                self.on_batch(len(live), sum(len(job.request.docs) for job in live))
            _bound_encoder_cache(self.reranker)

    def _scored(self, job: _Job, outcome: QueryScores) -> Scored:
        encoder = self.reranker.encoder
        request = job.request
        try:
            # Only a text encoded to one id can have had no token (it became the single UNK); the encoder's cache
            # holds the ids of the scoring just done, so the others are not tokenised again.
            maybe = [i for i, ids in enumerate(encoder.encode_docs(list(request.docs))) if len(ids) == 1]
            empty = [maybe[i] for i in tokenless(encoder, [request.docs[i] for i in maybe])]
            one_id = len(encoder.encode_queries([request.query])[0]) == 1
            return Scored(outcome, empty, one_id and bool(tokenless(encoder, [request.query])))
        except Exception:  # the scores stand; only the note about tokenless texts is lost, and logged
            log.exception("finding the texts without tokens failed")
            return Scored(outcome)

    def _report_depth(self, depth: int) -> None:
        if self.on_depth is not None:
            self.on_depth(depth)


def _resolve(future: asyncio.Future, outcome) -> None:
    if future.cancelled():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def tokenless(encoder: TextEncoder, texts: Sequence[str]) -> list[int]:
    """Positions of `texts` with no token after the encoder's tokenisation (a word tokenizer's words, a Hugging Face
    tokenizer's word pieces; an encoder with neither: blank texts)."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if not texts:
        return []
    if isinstance(tokenizer, Tokenizer):
        counts = [len(tokens) for tokens in tokenizer.tokenize_batch(texts)]
    elif tokenizer is not None and hasattr(tokenizer, "encode_batch"):
        counts = [len(encoding.ids) for encoding in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    else:
        counts = [len(text.strip()) for text in texts]
    return [i for i, count in enumerate(counts) if count == 0]


def _bound_encoder_cache(reranker: BaseReranker) -> None:
    # The text encoders cache every distinct text they tokenised (`neurank.text.encoder`), which suits a collection
    # but grows without end in a server; they offer no public way to bound it, so the caches are emptied here once
    # they pass MAX_CACHED_TEXTS (an emptied cache only costs tokenising again).
    encoder = reranker.encoder
    for name in ("_docs", "_queries"):
        cache = getattr(encoder, name, None)
        if isinstance(cache, dict) and len(cache) > MAX_CACHED_TEXTS:
            cache.clear()
