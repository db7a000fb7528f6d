"""The app in-process (FastAPI's TestClient) and the batcher alone: routes, shapes, limits and errors, queueing and
draining, over an untrained tiny MatchPyramid (scores need no training to be compared with `predict`)."""

from __future__ import annotations

import asyncio
import copy
import threading
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from scipy.special import expit

from neurank.inference import Reranker, load_reranker
from neurank.inference.base import ALONE_CANDIDATES, QueryDocs
from neurank.models.match_pyramid import MatchPyramid, MatchPyramidConfig
from neurank.serving.app import ServeLimits, create_app
from neurank.serving.batcher import Batcher, BatcherClosed, BatchLimits, QueueFull
from neurank.serving.server import read_api_key, require_serve
from neurank.text import Tokenizer, Vocab

QUERY = "who wrote hamlet"
DOCS = [
    "hamlet is a tragedy written by william shakespeare",
    "paris is the capital of france",
    "the thames flows through london",
    "shakespeare wrote plays",
]
MAX_DOC_LEN = 12
KEY = "test-key-123"


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    tokenizer = Tokenizer()
    vocab = Vocab.build(tokenizer.tokenize_batch([QUERY, *DOCS]))
    torch.manual_seed(3)
    config = MatchPyramidConfig(
        embedding_dim=8, interactions=("cosine", "exact"), conv_channels=(4,), kernel_sizes=((3, 3),), pool_size=(2, 4)
    )
    model = MatchPyramid(len(vocab), config)
    return Reranker(model, tokenizer, vocab, 6, MAX_DOC_LEN, device="cpu", first_stage=None)


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.02)


@pytest.fixture(scope="module")
def client(reranker):
    app = create_app({"tiny": reranker, "other": reranker}, ServeLimits(max_documents=8, max_request_bytes=4096))
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def test_v2_rerank_sorts_by_the_sigmoid_of_predict(client, reranker):
    response = client.post("/v2/rerank", json={"model": "tiny", "query": QUERY, "documents": DOCS})
    assert response.status_code == 200, response.text
    body = response.json()
    logits = reranker.predict([(QUERY, doc) for doc in DOCS])
    expected = sorted(range(len(DOCS)), key=lambda i: -logits[i])
    assert [r["index"] for r in body["results"]] == expected
    scores = {r["index"]: r["relevance_score"] for r in body["results"]}
    np.testing.assert_allclose([scores[i] for i in range(len(DOCS))], expit(logits.astype(np.float64)), atol=1e-6)
    assert all(0.0 <= r["relevance_score"] <= 1.0 for r in body["results"])
    assert body["model"] == "tiny" and body["id"]
    assert body["meta"]["api_version"] == {"version": "2"}
    assert body["meta"]["billed_units"] == {"search_units": 1}
    assert body["meta"]["warnings"] == []
    assert body["usage"]["total_tokens"] == body["meta"]["tokens"]["input_tokens"] > 0
    assert "document" not in body["results"][0]


def test_v1_top_n_return_documents_and_text_objects(client):
    documents = [{"text": doc, "title": "t"} for doc in DOCS]
    response = client.post(
        "/v1/rerank", json={"query": QUERY, "documents": documents, "top_n": 2, "return_documents": True}
    )
    body = response.json()
    assert response.status_code == 200, body
    assert len(body["results"]) == 2
    assert [r["document"]["text"] for r in body["results"]] == [DOCS[r["index"]] for r in body["results"]]
    assert body["model"] == "tiny"  # the first served, when the request names none
    assert body["meta"]["api_version"] == {"version": "1"}


def test_score_queries_pools_small_queries_and_keeps_predict_s_scores(reranker):
    many = [f"{doc} {i}" for i in range(ALONE_CANDIDATES) for doc in DOCS[:1]]
    long_doc = " ".join(["william"] * (MAX_DOC_LEN + 1))
    requests = [QueryDocs(QUERY, many), QueryDocs("capital of france", DOCS), QueryDocs("london", [long_doc, "x"])]
    examples = [
        reranker._example(str(i), r.query, [str(j) for j in range(len(r.docs))], list(r.docs), [0.0] * len(r.docs))
        for i, r in enumerate(requests)
    ]
    assert [len(group) for group in reranker._pool(examples)] == [1, 2]  # the large query alone, the small pooled
    outcomes = reranker.score_queries(requests)
    for request, outcome in zip(requests, outcomes, strict=True):
        expected = reranker.predict([(request.query, doc) for doc in request.docs])
        np.testing.assert_allclose(outcome.scores, expected, atol=1e-5)
        assert outcome.first_stage is None and not outcome.query_truncated
    assert [outcome.truncated_docs for outcome in outcomes] == [[], [], [0]]


def test_truncation_is_reported_in_warnings(client):
    long_doc = " ".join(["shakespeare"] * (MAX_DOC_LEN + 5))
    exact = " ".join(["hamlet"] * MAX_DOC_LEN)  # as long as the model reads: not truncated
    body = client.post("/v2/rerank", json={"query": QUERY, "documents": [DOCS[0], long_doc, exact]}).json()
    assert len(body["meta"]["warnings"]) == 1
    assert "document 1 is longer than the 12 tokens" in body["meta"]["warnings"][0]


def test_tei_shape_raw_scores_return_text_and_truncate(client, reranker):
    logits = reranker.predict([(QUERY, doc) for doc in DOCS])
    response = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True})
    ranks = response.json()
    assert response.status_code == 200, ranks
    assert [r["index"] for r in ranks] == sorted(range(len(DOCS)), key=lambda i: -logits[i])
    np.testing.assert_allclose([r["score"] for r in ranks], sorted(logits, reverse=True), atol=1e-5)
    assert [r["text"] for r in ranks] == [DOCS[r["index"]] for r in ranks]
    probabilities = client.post("/rerank", json={"query": QUERY, "texts": DOCS}).json()
    assert all(0 <= r["score"] <= 1 and "text" not in r for r in probabilities)

    long_doc = " ".join(["shakespeare"] * (MAX_DOC_LEN + 1))
    refused = client.post("/rerank", json={"query": QUERY, "texts": [DOCS[0], long_doc]})
    assert refused.status_code == 413
    assert "text 1 is longer than the 12 tokens" in refused.json()["error"]
    assert client.post("/rerank", json={"query": QUERY, "texts": [long_doc], "truncate": True}).status_code == 200


@pytest.mark.parametrize(
    ("route", "body", "status", "words"),
    [
        ("/v2/rerank", '{"query": "a", "documents": [', 422, ["not valid JSON"]),
        ("/v2/rerank", {"query": "  ", "documents": DOCS}, 422, ["query", "empty"]),
        ("/v2/rerank", {"query": QUERY, "documents": []}, 422, ["documents", "empty"]),
        ("/v2/rerank", {"documents": DOCS}, 422, ["query", "required"]),
        ("/v2/rerank", {"query": QUERY, "documents": DOCS, "top_n": 0}, 422, ["top_n"]),
        ("/rerank", {"query": QUERY, "texts": []}, 422, ["texts", "empty"]),
        ("/v2/rerank", {"query": QUERY, "documents": ["d"] * 9}, 413, ["9 documents", "at most 8"]),
        ("/v2/rerank", {"query": QUERY, "documents": ["x" * 5000]}, 413, ["at most 4096", "--max-request-bytes"]),
        ("/v2/rerank", {"model": "nope", "query": QUERY, "documents": DOCS}, 404, ["'nope'", "'tiny'", "'other'"]),
        (
            "/v2/rerank",
            {"query": QUERY, "documents": DOCS, "first_stage_scores": [1.0]},
            422,
            ["first_stage_scores", "1 scores for 4 documents"],
        ),
    ],
)
def test_errors_name_the_field_or_the_limit(client, route, body, status, words):
    if isinstance(body, str):
        response = client.post(route, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(route, json=body)
    assert response.status_code == status, response.text
    message = response.json()["message"]
    for word in words:
        assert word in message


def test_a_body_without_length_is_cut_off_at_the_limit(client):
    def chunks():
        yield b'{"query": "q", "documents": ["'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"]}'

    response = client.post("/v2/rerank", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert "more than 4096 bytes" in response.json()["message"]
    assert client.get("/nowhere").json() == {"message": "Not Found"}


def test_first_stage_scores_given_to_a_model_that_reads_none_are_reported(client):
    body = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, "first_stage_scores": [1, 2, 3, 4]})
    assert body.json()["meta"]["warnings"] == ["first_stage_scores ignored: this model reads no first-stage score"]


def test_api_key_is_required_except_on_health(reranker):
    app = create_app({"tiny": reranker}, api_key=KEY)
    with TestClient(app) as client:
        wait_ready(client)
        request = {"query": QUERY, "documents": DOCS}
        missing = client.post("/v2/rerank", json=request)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["message"]
        assert missing.json()["message"].startswith("no API key was sent")
        refused = {
            "Bearer nope": "a wrong API key",
            "Bearer ": "an empty bearer token",  # what a client with an unset $NEURANK_API_KEY sends
            f"Basic {KEY}": "the Authorization header uses the scheme 'Basic', not Bearer",
        }
        for header, why in refused.items():
            answer = client.post("/v2/rerank", json=request, headers={"Authorization": header})
            assert answer.status_code == 401 and answer.json()["message"].startswith(why), (header, answer.text)
        assert client.get("/metrics").status_code == 401
        for scheme in ("Bearer", "bearer", "BEARER"):  # RFC 7235: the scheme is case-insensitive
            good = client.post("/v2/rerank", json=request, headers={"Authorization": f"{scheme} {KEY}"})
            assert good.status_code == 200, (scheme, good.text)


TOKENLESS = ["the", "", "!!!", DOCS[0], "???"]  # this tokenizer keeps stop words: "the" has a token


@pytest.mark.parametrize("query", ["the", "???", QUERY])
def test_texts_without_tokens_are_scored_and_named_in_warnings(client, reranker, query):
    body = client.post("/v2/rerank", json={"query": query, "documents": TOKENLESS}).json()
    scores = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert sorted(scores) == list(range(len(TOKENLESS))), body
    logits = reranker.predict([(query, doc) for doc in TOKENLESS])
    np.testing.assert_allclose([scores[i] for i in range(len(TOKENLESS))], expit(logits.astype(np.float64)), atol=1e-6)
    warnings = body["meta"]["warnings"]
    assert [w for w in warnings if w.startswith("documents 1, 2, 4 are empty after tokenisation")], warnings
    assert any(w.startswith("the query has no token") for w in warnings) == (query == "???"), warnings
    assert len(warnings) == 1 + (query == "???")
    again = client.post("/v2/rerank", json={"query": query, "documents": TOKENLESS}).json()  # the texts are cached
    assert again["meta"]["warnings"] == warnings
    ranks = client.post("/rerank", json={"query": query, "texts": TOKENLESS}).json()
    assert sorted(r["index"] for r in ranks) == list(range(len(TOKENLESS))), ranks
    assert all(0.0 <= r["score"] <= 1.0 for r in ranks)


@pytest.mark.slow
def test_a_fused_model_answers_its_fused_scores_and_without_fusion_probabilities(fused_checkpoint):
    local = load_reranker(fused_checkpoint, device="cpu")
    alpha = local.fusion_alpha
    assert alpha is not None and local.reads_first_stage_feature
    ranked = local.rank(QUERY, DOCS)
    with TestClient(create_app({"fused": fused_checkpoint}, loader=lambda path: load_reranker(path, device="cpu"))) as (
        client
    ):
        wait_ready(client)
        body = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS}).json()
        assert [r["index"] for r in body["results"]] == [int(r.doc_id) for r in ranked]
        relevance = [r["relevance_score"] for r in body["results"]]
        np.testing.assert_allclose(relevance, [r.score for r in ranked], atol=1e-6)  # the fused score, no sigmoid
        assert all(0.0 <= score <= 1.0 for score in relevance)
        (note,) = body["meta"]["warnings"]
        assert f"{alpha:g} x the model's scores" in note and "not a calibrated probability" in note
        assert "--no-fusion" in note
        for raw in (True, False):  # TEI: raw_scores or not, a fused model's score is the fused score
            ranks = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": raw}).json()
            np.testing.assert_allclose([r["score"] for r in ranks], [r.score for r in ranked], atol=1e-6)
        for query in ("the", "???"):  # BM25 (stop words dropped) has no term: it scores every document 0
            body = client.post("/v2/rerank", json={"query": query, "documents": TOKENLESS})
            assert body.status_code == 200, body.text
            expected = local.rank(query, TOKENLESS)
            got = {r["index"]: r["relevance_score"] for r in body.json()["results"]}
            np.testing.assert_allclose([got[int(r.doc_id)] for r in expected], [r.score for r in expected], atol=1e-6)
            assert all(0.0 <= score <= 1.0 for score in got.values()) and len(got) == len(TOKENLESS)
            ranks = client.post("/rerank", json={"query": query, "texts": TOKENLESS, "raw_scores": True})
            assert ranks.status_code == 200, ranks.text
            assert np.isfinite([r["score"] for r in ranks.json()]).all()

    with TestClient(create_app({"fused": local}, fusion=False)) as client:  # --no-fusion
        wait_ready(client)
        body = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS}).json()
    assert local.fusion_alpha == alpha  # the re-ranker handed in is left as it was
    unfused = copy.copy(local)
    unfused.fusion_alpha = None
    logits = unfused.rank(QUERY, DOCS)
    assert [r["index"] for r in body["results"]] == [int(r.doc_id) for r in logits]
    np.testing.assert_allclose(
        [r["relevance_score"] for r in body["results"]], expit([r.score for r in logits]), atol=1e-6
    )
    assert body["meta"]["warnings"] == [] and body["meta"]["first_stage"] == "computed"


def test_metrics_count_requests_errors_and_batches(client):
    client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS})
    client.post("/v2/rerank", json={"query": "", "documents": DOCS})
    text = client.get("/metrics").text
    assert 'neurank_requests_total{path="/v2/rerank",status="200"}' in text
    assert 'neurank_request_errors_total{path="/v2/rerank",status="422"}' in text
    assert 'neurank_request_duration_seconds_bucket{le="0.001",path="/v2/rerank"}' in text
    assert 'neurank_batch_pairs_count{model="tiny"}' in text
    assert 'neurank_queue_depth{model="tiny"}' in text


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/rerank", "/v2/rerank", "/rerank", "/health", "/metrics"} <= set(paths)


class Gate:
    """A re-ranker stand-in whose scoring waits until the test opens the gate, recording each call's batch."""

    def __init__(self, reranker):
        self.reranker = reranker
        self.encoder = reranker.encoder
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self.reranker, name)

    def score_queries(self, requests):
        self.entered.set()
        self.opened.wait(30)
        self.calls.append(len(requests))
        return self.reranker.score_queries(requests)


def test_batcher_gathers_waiting_requests_refuses_a_full_queue_and_drains(reranker):
    gate = Gate(reranker)
    batcher = Batcher(gate, BatchLimits(queue_size=3))  # type: ignore[arg-type]
    batcher.start()

    async def scenario():
        first = batcher.submit(QueryDocs(QUERY, DOCS))
        await asyncio.sleep(0.2)  # the worker holds the first request at the gate
        waiting = [batcher.submit(QueryDocs(QUERY, DOCS[:i])) for i in (1, 2, 3)]
        with pytest.raises(QueueFull):
            batcher.submit(QueryDocs(QUERY, DOCS))
        gate.opened.set()
        return await asyncio.gather(first, *waiting)

    results = asyncio.run(scenario())
    assert gate.calls == [1, 3]  # the three that waited were scored together
    expected = reranker.predict([(QUERY, doc) for doc in DOCS])
    np.testing.assert_allclose(results[0].outcome.scores, expected, atol=1e-6)
    np.testing.assert_allclose(results[3].outcome.scores, expected[:3], atol=1e-6)
    batcher.close(10)

    async def after_close():
        batcher.submit(QueryDocs(QUERY, DOCS))

    with pytest.raises(BatcherClosed):
        asyncio.run(after_close())


def test_a_full_queue_answers_503_with_retry_after(reranker):
    gate = Gate(reranker)
    app = create_app({"tiny": "gate.pt"}, ServeLimits(queue_size=1), loader=lambda path: gate)  # type: ignore
    gate.opened.set()
    with TestClient(app) as client:
        wait_ready(client)
        gate.opened.clear()
        gate.entered.clear()
        outcomes: list = []

        def post():
            outcomes.append(client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS}))

        threads = [threading.Thread(target=post) for _ in range(3)]
        threads[0].start()
        assert gate.entered.wait(10)  # the worker holds the first request
        for thread in threads[1:]:
            thread.start()
        deadline = time.monotonic() + 10
        while not any(r.status_code == 503 for r in outcomes) and time.monotonic() < deadline:
            time.sleep(0.02)
        gate.opened.set()
        for thread in threads:
            thread.join(30)
    statuses = sorted(r.status_code for r in outcomes)
    assert statuses == [200, 200, 503]  # one scored, one queued, one refused
    refused = next(r for r in outcomes if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "too busy" in refused.json()["message"]


def test_health_is_503_until_the_model_is_loaded(reranker):
    loaded = threading.Event()

    def slow_loader(path):
        loaded.wait(30)
        return reranker

    app = create_app({"tiny": "unused.pt"}, loader=slow_loader)
    with TestClient(app) as client:
        early = client.get("/health")
        assert early.status_code == 503 and early.json()["status"] == "loading"
        assert client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 503
        loaded.set()
        wait_ready(client)
        assert client.get("/health").json() == {"status": "ok", "models": ["tiny"]}


def test_api_key_comes_from_a_file_or_the_environment(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert read_api_key(key_file, {"NEURANK_API_KEY": "from-env"}) == "from-file"
    assert read_api_key(None, {"NEURANK_API_KEY": " from-env "}) == "from-env"
    assert read_api_key(None, {}) is None
    key_file.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_api_key(key_file, {})
    with pytest.raises(FileNotFoundError, match="--api-key-file"):
        read_api_key(tmp_path / "missing", {})


def test_a_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[serve\]" in the neurank repository'):
        require_serve()
