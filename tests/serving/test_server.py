"""`neurank serve` as clients see it: a real server process on 127.0.0.1 called with httpx and with the official
Cohere SDK, serving a plain MatchPyramid, a fused one that reads BM25, and the plain one exported to ONNX, by name.
Scores are compared with the same models loaded in this process."""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import socket
import time

import cohere
import httpx
import numpy as np
import pytest
from scipy.special import expit
from tests.serving.conftest import start_server

from neurank.inference import load_reranker

pytestmark = pytest.mark.slow

KEY = "s3cret-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY = "who wrote hamlet"
DOCS = [
    "hamlet is a tragedy written by william shakespeare",
    "paris is the capital of france",
    "the thames flows through london",
    "alexander fleming discovered penicillin in 1928",
    "the mona lisa was painted by leonardo da vinci",
]
MAX_DOCUMENTS = 50
# uvicorn shuts down gracefully on SIGTERM, then re-raises the signal, so the process ends as signalled (as systemd
# expects of a service it stopped).
CLEAN_EXIT = (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def server(model_files, tmp_path_factory):
    args = [f"--model={name}={path}" for name, path in model_files.items()]
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = start_server([*args, "--max-documents", MAX_DOCUMENTS], log, env={"NEURANK_API_KEY": KEY})
    yield running
    assert running.stop() in CLEAN_EXIT, log.read_text()


@pytest.fixture(scope="module")
def local(model_files):
    """The served models loaded in this process, to compare scores with."""
    return {name: load_reranker(path, device="cpu") for name, path in model_files.items()}


def expected_order(scores) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def test_health_lists_the_models_without_a_key(server):
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "models": ["plain", "fused", "onnx"]}


def test_cohere_v2_client_parses_the_response(server, local):
    client = cohere.ClientV2(api_key=KEY, base_url=server.url)
    response = client.rerank(model="plain", query=QUERY, documents=DOCS, top_n=3)
    logits = local["plain"].predict([(QUERY, doc) for doc in DOCS])
    assert [r.index for r in response.results] == expected_order(logits)[:3]
    np.testing.assert_allclose(
        [r.relevance_score for r in response.results], expit(np.sort(logits.astype(np.float64))[::-1][:3]), atol=1e-6
    )
    assert response.id and response.meta is not None
    assert response.meta.api_version.version == "2"
    assert response.meta.billed_units.search_units == 1
    assert response.meta.warnings == []


def test_cohere_v1_client_with_documents_returned(server, local):
    client = cohere.Client(api_key=KEY, base_url=server.url)
    response = client.rerank(
        model="onnx", query=QUERY, documents=[{"text": doc} for doc in DOCS], top_n=2, return_documents=True
    )
    logits = local["onnx"].predict([(QUERY, doc) for doc in DOCS])
    assert [r.index for r in response.results] == expected_order(logits)[:2]
    assert [r.document.text for r in response.results] == [DOCS[i] for i in expected_order(logits)[:2]]
    assert response.meta.api_version.version == "1"


def test_cohere_client_sees_errors_as_its_own_exceptions(server):
    with pytest.raises(cohere.errors.UnauthorizedError):
        cohere.ClientV2(api_key="wrong", base_url=server.url).rerank(model="plain", query=QUERY, documents=DOCS)
    with pytest.raises(cohere.errors.NotFoundError) as raised:
        cohere.ClientV2(api_key=KEY, base_url=server.url).rerank(model="rerank-v3.5", query=QUERY, documents=DOCS)
    assert "'plain', 'fused', 'onnx'" in raised.value.body["message"]


def test_concurrent_requests_are_all_answered_with_predict_s_scores(server, local):
    requests = [
        {"model": "plain", "query": query, "documents": DOCS[i % 3 :] + [f"{query} {i}"]}
        for i, query in enumerate(
            ["who wrote hamlet", "capital of france", "where does the thames flow", "who discovered penicillin"] * 8
        )
    ]

    async def send_all():
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v2/rerank", json=body) for body in requests))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * len(requests)
    for body, response in zip(requests, responses, strict=True):
        logits = local["plain"].predict([(body["query"], doc) for doc in body["documents"]])
        got = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        np.testing.assert_allclose([got[i] for i in range(len(logits))], expit(logits.astype(np.float64)), atol=1e-6)
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    scored = [line for line in metrics.splitlines() if line.startswith('neurank_batch_requests_sum{model="plain"}')]
    assert scored and float(scored[0].split()[-1]) >= len(requests)


def test_fused_model_takes_given_first_stage_scores_or_computes_them(server, local):
    bm25 = [3.0, 0.5, 0.0, 1.0, 2.0]
    with httpx.Client(base_url=server.url, headers=AUTH) as client:
        given = client.post(
            "/rerank",
            json={"model": "fused", "query": QUERY, "texts": DOCS, "raw_scores": True, "first_stage_scores": bm25},
        ).json()
        computed = client.post("/v2/rerank", json={"model": "fused", "query": QUERY, "documents": DOCS}).json()
    expected = local["fused"].predict([(QUERY, doc, score) for doc, score in zip(DOCS, bm25, strict=True)])
    np.testing.assert_allclose([r["score"] for r in given], np.sort(expected)[::-1], atol=1e-5)
    assert [r["index"] for r in given] == expected_order(expected)
    ranked = local["fused"].rank(QUERY, DOCS)
    assert [r["index"] for r in computed["results"]] == [int(r.doc_id) for r in ranked]
    # a fused score is already in [0, 1] (normalised within the request): served as it is, with a note saying so
    np.testing.assert_allclose(
        [r["relevance_score"] for r in computed["results"]], [r.score for r in ranked], atol=1e-6
    )
    assert computed["meta"]["first_stage"] == "computed"
    assert [w for w in computed["meta"]["warnings"] if "--no-fusion" in w]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        ({"query": QUERY, "documents": DOCS}, {}, 401, ["no API key"]),
        ("{not json", AUTH, 422, ["not valid JSON"]),
        ({"query": "", "documents": DOCS}, AUTH, 422, ["query", "empty"]),
        ({"query": QUERY, "documents": []}, AUTH, 422, ["documents", "empty"]),
        ({"query": QUERY, "documents": ["d"] * (MAX_DOCUMENTS + 1)}, AUTH, 413, [f"at most {MAX_DOCUMENTS}"]),
        ({"model": "nope", "query": QUERY, "documents": DOCS}, AUTH, 404, ["'nope'", "'plain', 'fused', 'onnx'"]),
    ],
)
def test_errors_over_http(server, body, headers, status, words):
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(
        f"{server.url}/v2/rerank", content=content, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["message"]


def test_metrics_in_prometheus_text(server):
    httpx.post(f"{server.url}/v2/rerank", json={"query": QUERY, "documents": DOCS}, headers=AUTH)
    response = httpx.get(f"{server.url}/metrics", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    for name in (
        "neurank_requests_total",
        "neurank_request_errors_total",
        "neurank_request_duration_seconds_bucket",
        "neurank_batch_pairs_bucket",
        "neurank_queue_depth",
    ):
        assert name in response.text


def test_a_run_folder_no_fusion_and_an_open_host_without_key(model_files, local, tmp_path):
    server = start_server([model_files["fused"].parent, "--no-fusion", "--host", "0.0.0.0"], tmp_path / "server.log")
    try:
        health = httpx.get(f"{server.url}/health").json()
        body = httpx.post(
            f"{server.url}/v2/rerank", json={"query": "the", "documents": [*DOCS, "!!!", ""]}, timeout=30
        ).json()
    finally:
        assert server.stop() in CLEAN_EXIT
    log = " ".join(server.log.read_text().split())
    assert health["models"] == ["fused"]  # named after the run folder
    assert f"serving {model_files['fused']}" in log
    assert "--host 0.0.0.0 accepts connections from other machines and no API key is set" in log
    assert "fusion with the first stage" in log and "off (--no-fusion)" in log
    unfused = copy.copy(local["fused"])
    unfused.fusion_alpha = None
    ranked = unfused.rank("the", [*DOCS, "!!!", ""])
    assert [r["index"] for r in body["results"]] == [int(r.doc_id) for r in ranked]
    np.testing.assert_allclose(
        [r["relevance_score"] for r in body["results"]], expit([r.score for r in ranked]), atol=1e-6
    )
    assert body["meta"]["warnings"] == [
        "documents 5, 6 are empty after tokenisation (blank, or only punctuation or stop words): the model read each "
        "as one unknown token"
    ]


def test_sigterm_answers_the_request_in_flight_then_exits(model_files, tmp_path):
    server = start_server([model_files["plain"]], tmp_path / "server.log")
    body = json.dumps({"query": QUERY, "documents": DOCS}).encode()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST /v2/rerank HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(1.0)  # the server has read the headers: the request is in flight
        server.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        with pytest.raises(httpx.TransportError):  # no new connections once draining
            httpx.get(f"{server.url}/health", timeout=5)
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, payload = answer.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 200"), answer
    assert len(json.loads(payload)["results"]) == len(DOCS)
    assert server.process.wait(60) in CLEAN_EXIT
    assert "Finished server process" in server.log.read_text()
