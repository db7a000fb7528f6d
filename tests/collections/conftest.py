"""Tiny collection folders written by the tests: BEIR layout, manifest folders of TSV / TREC files, candidate runs.

Hand-checkable on purpose: six questions, each with three candidate sentences of which the first is the answer,
except `q6`, whose candidates are all wrong (so the filtered protocol drops it). The `folders` fixture is this
module's functions and constants; tests/cli loads this file by path.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest


@pytest.fixture
def folders():
    return types.SimpleNamespace(**{name: value for name, value in globals().items() if not name.startswith("_")})


QUESTIONS = {
    "q1": ("who wrote hamlet", ["hamlet was written by shakespeare", "paris is in france", "the thames is a river"]),
    "q2": ("what is the capital of france", ["paris is the capital of france", "berlin is big", "hamlet is a play"]),
    "q3": ("where does the thames flow", ["the thames flows through london", "the nile is long", "rome is old"]),
    "q4": ("who painted the mona lisa", ["leonardo painted the mona lisa", "picasso painted", "lakes are small"]),
    "q5": ("what is the largest ocean", ["the pacific is the largest ocean", "atlantic waves", "cats purr"]),
    "q6": ("who discovered penicillin", ["newton described gravity", "cats are mammals", "dogs bark"]),
}
TRAIN, DEV, TEST = ["q1", "q2", "q3"], ["q4"], ["q5", "q6"]


def doc_id(query_id: str, position: int) -> str:
    return f"{query_id}-s{position}"


def docs() -> dict[str, str]:
    return {doc_id(q, i): text for q, (_, sentences) in QUESTIONS.items() for i, text in enumerate(sentences)}


def relevance(query_id: str, position: int) -> int:
    return int(position == 0 and query_id != "q6")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(path: Path, objects) -> Path:
    return write(path, "".join(json.dumps(obj) + "\n" for obj in objects))


def beir_qrels(path: Path, query_ids) -> Path:
    rows = [f"{q}\t{doc_id(q, i)}\t{relevance(q, i)}" for q in query_ids for i in range(3)]
    return write(path, "query-id\tcorpus-id\tscore\n" + "".join(row + "\n" for row in rows))


def trec_qrels(path: Path, query_ids) -> Path:
    return write(path, "".join(f"{q} 0 {doc_id(q, i)} {relevance(q, i)}\n" for q in query_ids for i in range(3)))


def candidate_run(path: Path, query_ids) -> Path:
    lines = [f"{q} Q0 {doc_id(q, i)} {i + 1} 0 candidates" for q in query_ids for i in range(3)]
    return write(path, "".join(line + "\n" for line in lines))


def beir_folder(root: Path, splits: dict[str, list[str]] | None = None) -> Path:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv; by default train, dev and test."""
    splits = {"train": TRAIN, "dev": DEV, "test": TEST} if splits is None else splits
    jsonl(root / "corpus.jsonl", ({"_id": d, "title": "", "text": t} for d, t in docs().items()))
    jsonl(root / "queries.jsonl", ({"_id": q, "text": text} for q, (text, _) in QUESTIONS.items()))
    for split, query_ids in splits.items():
        beir_qrels(root / "qrels" / f"{split}.tsv", query_ids)
    return root


def with_candidates(root: Path, splits: dict[str, list[str]], extra: str = "") -> Path:
    """Candidate runs per split and a collection.yaml naming them (plus `extra` manifest lines)."""
    for split, query_ids in splits.items():
        candidate_run(root / "runs" / f"{split}.run", query_ids)
    runs = "".join(f"  {split}: runs/{split}.run\n" for split in splits)
    write(root / "collection.yaml", f"candidates:\n{runs}{extra}")
    return root


def trec_folder(root: Path) -> Path:
    """TREC SGML documents and topics, one TREC qrels file per split, and a manifest naming them."""
    sgml = "".join(f"<DOC>\n<DOCNO> {d} </DOCNO>\n<TEXT>\n{t}\n</TEXT>\n</DOC>\n" for d, t in docs().items())
    write(root / "docs" / "collection.sgml", sgml)
    topics = "".join(
        f"<top>\n<num> Number: {q}\n<title> {text}\n<desc> Description:\nabout {text}\n</top>\n"
        for q, (text, _) in QUESTIONS.items()
    )
    write(root / "topics.txt", topics)
    trec_qrels(root / "qrels.train.txt", TRAIN + DEV)
    trec_qrels(root / "qrels.test.txt", TEST)
    write(
        root / "collection.yaml",
        "name: tiny-trec\n"
        "documents: docs/collection.sgml\n"
        "queries: {path: topics.txt, format: trec, fields: [title]}\n"
        "qrels:\n  train: qrels.train.txt\n  test: qrels.test.txt\n"
        "dev_fraction: 0.25\n",
    )
    return root
