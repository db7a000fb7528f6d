"""The command line, end to end on the real collections: each command, --json output, and clear errors."""

import json

import pytest

from neurank.cli import _expand_multi_value_options, main
from neurank.collections.trec import read_qrels, read_run
from neurank.evaluation import evaluate

pytestmark = pytest.mark.integration


def run_cli(capsys, *args):
    """Run `neurank ARGS`; return (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        status = 0
    except SystemExit as exit_:
        status = exit_.code or 0
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_measures_option_takes_several_values(tmp_path):
    existing = tmp_path / "run.txt"
    existing.write_text("")
    assert _expand_multi_value_options(["evaluate", "r", "q", "--measures", "AP", "RR,nDCG@10", "--json"]) == [
        "evaluate", "r", "q", "--measures", "AP", "--measures", "RR", "--measures", "nDCG@10", "--json",
    ]
    # An existing file after the measures is a positional argument, not a measure.
    assert _expand_multi_value_options(["evaluate", "-m", "AP", str(existing)]) == ["evaluate", "-m", "AP", str(existing)]


def test_collections_lists_all_four_as_found(capsys, shared_data):
    status, out, _ = run_cli(capsys, "collections", "--data-dir", shared_data, "--json")
    assert status == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert set(entries) == {"wikiqa", "nfcorpus", "cranfield", "cisi"}
    assert all(e["found"] for e in entries.values())


def test_search_qrels_evaluate_round_trip_on_wikiqa(capsys, shared_data, tmp_path):
    run_path, qrels_path = tmp_path / "bm25.run", tmp_path / "test.qrels"
    status, out, _ = run_cli(capsys, "search", "wikiqa", "--split", "test", "--output", run_path, "--data-dir", shared_data, "--json")
    assert status == 0 and json.loads(out)["queries"] == 237
    status, _, _ = run_cli(capsys, "qrels", "wikiqa", "--split", "test", "--output", qrels_path, "--data-dir", shared_data)
    assert status == 0
    # The written qrels are the official filtered reference file, line for line as a set.
    official = read_qrels(shared_data / "wikiqa" / "official" / "WikiQA-test-filtered.ref")
    assert set(read_qrels(qrels_path)) == set(official)

    status, out, _ = run_cli(capsys, "evaluate", run_path, qrels_path, "--measures", "AP", "RR", "nDCG@10", "--json")
    assert status == 0
    result = json.loads(out)
    assert set(result) == {"AP", "RR", "nDCG@10"}
    assert result == pytest.approx(evaluate(read_run(run_path), official, ["AP", "RR", "nDCG@10"]))
    # BM25 beats the paper's word-count baseline (AP 0.4891) by a wide margin.
    assert result["AP"] > 0.55


def test_evaluate_against_a_baseline_reports_significance(capsys, shared_data):
    official = shared_data / "wikiqa" / "official"
    status, out, _ = run_cli(
        capsys, "evaluate", official / "WikiQA.CNN-Cnt.test.rank", official / "WikiQA-test-filtered.ref",
        "--measures", "AP", "RR", "--baseline", official / "WikiQA.CNN.test.rank", "--json",
    )
    assert status == 0
    result = json.loads(out)
    assert round(result["AP"], 4) == 0.6591 and round(result["baseline"]["AP"], 4) == 0.6190
    assert 0 < result["comparison"]["AP"]["p_ttest"] < 0.05
    status, out, _ = run_cli(
        capsys, "evaluate", official / "WikiQA.CNN-Cnt.test.rank", official / "WikiQA-test-filtered.ref",
        "--measures", "AP", "--baseline", official / "WikiQA.CNN.test.rank",
    )
    assert status == 0 and "p (t-test)" in out and "0.6591" in out


def test_index_then_search_uses_the_saved_index(capsys, shared_data, tmp_path):
    index = tmp_path / "cranfield-index"
    status, out, _ = run_cli(capsys, "index", "cranfield", "--output", index, "--data-dir", shared_data, "--json")
    assert status == 0 and json.loads(out)["documents"] == 1400
    with_index, without = tmp_path / "a.run", tmp_path / "b.run"
    for path, extra in ((with_index, ["--index", index]), (without, [])):
        status, _, _ = run_cli(capsys, "search", "cranfield", "--fold", 1, "--k", 100, "--output", path, "--data-dir", shared_data, *extra)
        assert status == 0
    assert read_run(with_index) == read_run(without)
    assert len(read_run(with_index)) <= 45 * 100


def test_index_of_an_answer_selection_collection_is_refused_with_a_reason(capsys, shared_data, tmp_path):
    status, _, err = run_cli(capsys, "index", "wikiqa", "--output", tmp_path / "x", "--data-dir", shared_data)
    assert status == 2 and "answer-selection" in err


def test_unknown_collection_is_a_one_line_error(capsys, shared_data, tmp_path):
    status, _, err = run_cli(capsys, "search", "msmarco", "--output", tmp_path / "r", "--data-dir", shared_data)
    assert status == 2
    assert "msmarco" in err and "wikiqa" in err and "Traceback" not in err


def test_malformed_run_names_file_and_line(capsys, tmp_path):
    run, qrels = tmp_path / "bad.run", tmp_path / "q.qrels"
    run.write_text("1 Q0 d1 1 0.5 tag\n1 Q0 d2 two 0.4\n")
    qrels.write_text("1 0 d1 1\n")
    status, _, err = run_cli(capsys, "evaluate", run, qrels, "--measures", "AP")
    assert status == 2
    assert f"{run}:2" in err and "Traceback" not in err


def test_missing_file_is_a_one_line_error(capsys, tmp_path):
    status, _, err = run_cli(capsys, "evaluate", tmp_path / "nope.run", tmp_path / "nope.qrels")
    assert status == 2 and "nope" in err


def test_baseline_table_agrees_with_search_and_evaluate(capsys, shared_data, tmp_path):
    table = tmp_path / "baseline.md"
    status, out, _ = run_cli(capsys, "baseline", "--data-dir", shared_data, "--output", table, "--json")
    assert status == 0
    rows = {row["collection"]: row for row in json.loads(out)}
    assert set(rows) == {"wikiqa", "nfcorpus", "cranfield", "cisi"}
    assert rows["cranfield"]["queries"] == 225 and len(rows["cranfield"]["per_fold"]) == 5
    assert rows["cisi"]["queries"] == 76
    assert rows["nfcorpus"]["queries"] == 323
    # The same number through `search` + `evaluate`.
    run_path = tmp_path / "nf.run"
    run_cli(capsys, "search", "nfcorpus", "--output", run_path, "--data-dir", shared_data)
    run_cli(capsys, "qrels", "nfcorpus", "--output", tmp_path / "nf.qrels", "--data-dir", shared_data)
    status, out, _ = run_cli(capsys, "evaluate", run_path, tmp_path / "nf.qrels", "--measures", "nDCG@10", "--json")
    assert json.loads(out)["nDCG@10"] == pytest.approx(rows["nfcorpus"]["metrics"]["nDCG@10"])
    assert "| nfcorpus | test |" in table.read_text()


def test_the_benchmark_table_shows_its_command_without_the_notes_text():
    from neurank.cli import _without_note

    args = ["configs/benchmark.yaml", "--note", "two processes, 1 thread each", "--readme", "README.md"]
    assert _without_note(args) == ["configs/benchmark.yaml", "--note", "'...'", "--readme", "README.md"]
    assert _without_note(["--note=shared machine", "--quick"]) == ["--note '...'", "--quick"]
