"""`neurank collections`, `index`, `search` and `qrels` on the real collections, with --json; their one-line
errors."""

import json

import pytest

from neurank.collections.trec import read_qrels, read_run
from neurank.evaluation import evaluate

pytestmark = pytest.mark.integration


def test_collections_lists_all_four_as_found(cli, shared_data):
    status, out, _ = cli("collections", "--data-dir", shared_data, "--json")
    assert status == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert set(entries) == {"wikiqa", "nfcorpus", "cranfield", "cisi"}
    assert all(e["found"] for e in entries.values())


def test_search_qrels_evaluate_round_trip_on_wikiqa(cli, shared_data, tmp_path):
    run_path, qrels_path = tmp_path / "bm25.run", tmp_path / "test.qrels"
    status, out, _ = cli(
        "search", "wikiqa", "--split", "test", "--output", run_path, "--data-dir", shared_data, "--json"
    )
    assert status == 0 and json.loads(out)["queries"] == 237
    status, _, _ = cli("qrels", "wikiqa", "--split", "test", "--output", qrels_path, "--data-dir", shared_data)
    assert status == 0
    # The written qrels are the official filtered reference file, line for line as a set.
    official = read_qrels(shared_data / "wikiqa" / "official" / "WikiQA-test-filtered.ref")
    assert set(read_qrels(qrels_path)) == set(official)

    status, out, _ = cli("evaluate", run_path, qrels_path, "--measures", "AP", "RR", "nDCG@10", "--json")
    assert status == 0
    result = json.loads(out)
    assert set(result) == {"AP", "RR", "nDCG@10"}
    assert result == pytest.approx(evaluate(read_run(run_path), official, ["AP", "RR", "nDCG@10"]))
    # BM25 beats the paper's word-count baseline (AP 0.4891) by a wide margin.
    assert result["AP"] > 0.55


def test_index_then_search_uses_the_saved_index(cli, shared_data, tmp_path):
    index = tmp_path / "cranfield-index"
    status, out, _ = cli("index", "cranfield", "--output", index, "--data-dir", shared_data, "--json")
    assert status == 0 and json.loads(out)["documents"] == 1400
    with_index, without = tmp_path / "a.run", tmp_path / "b.run"
    for path, extra in ((with_index, ["--index", index]), (without, [])):
        status, _, _ = cli(
            "search", "cranfield", "--fold", 1, "--k", 100, "--output", path, "--data-dir", shared_data, *extra
        )
        assert status == 0
    assert read_run(with_index) == read_run(without)
    assert len(read_run(with_index)) <= 45 * 100


def test_index_of_an_answer_selection_collection_is_refused_with_a_reason(cli, shared_data, tmp_path):
    status, _, err = cli("index", "wikiqa", "--output", tmp_path / "x", "--data-dir", shared_data)
    assert status == 2 and "answer-selection" in err


def test_unknown_collection_is_a_one_line_error(cli, shared_data, tmp_path):
    status, _, err = cli("search", "msmarco", "--output", tmp_path / "r", "--data-dir", shared_data)
    assert status == 2
    assert "msmarco" in err and "wikiqa" in err and "Traceback" not in err
