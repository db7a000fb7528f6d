"""`neurank rerank --run`: what a model that reads the first-stage score gets from a run, said on the way.

The ranker is the committed format-1 checkpoint (tests/fixtures), which reads the BM25 score as a feature and is
fused with it."""

import json
import warnings
from pathlib import Path

import pytest

from neurank.collections import ScoredDoc, load_collection
from neurank.collections.trec import read_run, write_run
from neurank.inference.checkpoint import CheckpointWarning, upgrade_checkpoint
from neurank.inference.first_stage import FirstStageWarning
from neurank.retrieval import bm25_run

FORMAT_1 = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint-format-1.pt"


def rerank(cli, tmp_path, data_dir, output, *extra, checkpoint=None):
    """`neurank rerank` of the fixture, upgraded to format 2 unless `checkpoint` is given; stdout with its lines
    joined (rich wraps them to the terminal)."""
    if checkpoint is None:
        checkpoint = tmp_path / "format-2.pt"
        if not checkpoint.exists():
            upgrade_checkpoint(FORMAT_1, checkpoint)
    status, out, err = cli(
        "rerank",
        checkpoint,
        "wikiqa",
        "--split",
        "test",
        "--output",
        tmp_path / output,
        "--data-dir",
        data_dir,
        "--device",
        "cpu",
        *extra,
    )
    return status, " ".join(out.split()), err


def test_rerank_says_what_it_took_as_the_first_stage(cli, tmp_path, tiny_data_dir):
    # A format-1 checkpoint: loaded, with a warning naming it (`neurank.cli.main` prints it as "warning: ...").
    with pytest.warns(CheckpointWarning, match=r"checkpoint-format-1\.pt: checkpoint format 1"):
        status, out, err = rerank(cli, tmp_path, tiny_data_dir, "plain.run", checkpoint=FORMAT_1)
    assert status == 0, err
    assert "first stage: BM25 (k1 0.9, b 0.4" in out and "computed now" in out

    collection = load_collection("wikiqa", tiny_data_dir)
    bm25 = bm25_run(collection, "test")
    write_run(bm25, tmp_path / "bm25.run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FirstStageWarning)
        status, out, err = rerank(cli, tmp_path, tiny_data_dir, "bm25-reranked.run", "--run", tmp_path / "bm25.run")
    assert status == 0 and "bm25.run: its scores are the ranker's first stage" in out
    assert read_run(tmp_path / "bm25-reranked.run") == read_run(tmp_path / "plain.run")

    # Constant scores (a file that only lists the given candidates): recomputed, and said.
    write_run([ScoredDoc(r.query_id, r.doc_id, 1.0) for r in bm25], tmp_path / "given.run")
    with pytest.warns(FirstStageWarning) as caught:
        status, out, err = rerank(cli, tmp_path, tiny_data_dir, "given-reranked.run", "--run", tmp_path / "given.run")
    assert status == 0, err
    said = " ".join(str(w.message) for w in caught if w.category is FirstStageWarning)
    assert "given.run: its scores are not the first stage the ranker was trained with" in said
    # Constant scores are refused with --first-stage-from-run, so the warning does not offer it.
    assert "constant within every query" in said and "--first-stage-from-run" not in said
    assert "first-stage score recomputed over its candidates" in out
    assert read_run(tmp_path / "given-reranked.run") == read_run(tmp_path / "plain.run")


def test_first_stage_from_run_refuses_constant_scores(cli, tmp_path, tiny_data_dir):
    collection = load_collection("wikiqa", tiny_data_dir)
    write_run([ScoredDoc(r.query_id, r.doc_id, 1.0) for r in bm25_run(collection, "test")], tmp_path / "given.run")
    status, _, err = rerank(
        cli, tmp_path, tiny_data_dir, "x.run", "--run", tmp_path / "given.run", "--first-stage-from-run"
    )
    assert status == 2 and "error: " in err and "given.run: its scores are constant within every query" in err
    assert "Traceback" not in err and not (tmp_path / "x.run").exists()
    status, _, err = rerank(cli, tmp_path, tiny_data_dir, "x.run", "--first-stage-from-run")
    assert status == 2 and "no run was given" in err

    dense = [ScoredDoc(r.query_id, r.doc_id, 1.0 / (2.0 + r.score)) for r in bm25_run(collection, "test")]
    write_run(dense, tmp_path / "dense.run")
    status, out, err = rerank(
        cli,
        tmp_path,
        tiny_data_dir,
        "dense-reranked.run",
        "--run",
        tmp_path / "dense.run",
        "--first-stage-from-run",
        "--json",
    )
    assert status == 0, err
    first_stage = json.loads(out)["first_stage"]
    assert first_stage["source"] == "run" and first_stage["queries"] == 3 and first_stage["constant_queries"] == 0
