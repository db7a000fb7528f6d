"""What `GET /metrics` reports, in Prometheus' text format (`prometheus-client`), one registry per app.

neurank_requests_total{path, status}           requests answered, by route and status code
neurank_request_errors_total{path, status}     those answered with a status of 400 or more
neurank_request_duration_seconds{path}         latency histogram, from the first byte read to the last written
neurank_batch_requests / neurank_batch_pairs   requests and (query, document) pairs per scoring call
neurank_queue_depth{model}                     requests waiting to be scored
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets from 1 ms to 10 s: re-ranking a query's 100 candidates takes milliseconds to a second on a CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
PAIR_BUCKETS = (1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The server's Prometheus metrics in a registry of their own (several apps in one process never clash)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "neurank_requests", "HTTP requests answered", ["path", "status"], registry=self.registry
        )
        self.errors = Counter(
            "neurank_request_errors", "HTTP requests answered with an error status", ["path", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "neurank_request_duration_seconds",
            "Time to answer a request",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "neurank_batch_requests", "Requests per scoring call", ["model"], buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.batch_pairs = Histogram(
            "neurank_batch_pairs", "Query-document pairs per scoring call", ["model"], buckets=PAIR_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "neurank_queue_depth", "Requests waiting to be scored", ["model"], registry=self.registry
        )

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path, str(status)).inc()
        if status >= 400:
            self.errors.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def observe_batch(self, model: str, requests: int, pairs: int) -> None:
        self.batch_requests.labels(model).observe(requests)
        self.batch_pairs.labels(model).observe(pairs)

    def set_depth(self, model: str, depth: int) -> None:
        self.queue_depth.labels(model).set(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)
