"""`neurank evaluate` (alone and against a baseline run) and `neurank baseline`, and their one-line errors."""

import json

import pytest


@pytest.mark.integration
def test_evaluate_against_a_baseline_reports_significance(cli, shared_data):
    official = shared_data / "wikiqa" / "official"
    status, out, _ = cli(
        "evaluate",
        official / "WikiQA.CNN-Cnt.test.rank",
        official / "WikiQA-test-filtered.ref",
        "--measures",
        "AP",
        "RR",
        "--baseline",
        official / "WikiQA.CNN.test.rank",
        "--json",
    )
    assert status == 0
    result = json.loads(out)
    assert round(result["AP"], 4) == 0.6591 and round(result["baseline"]["AP"], 4) == 0.6190
    assert 0 < result["comparison"]["AP"]["p_ttest"] < 0.05
    status, out, _ = cli(
        "evaluate",
        official / "WikiQA.CNN-Cnt.test.rank",
        official / "WikiQA-test-filtered.ref",
        "--measures",
        "AP",
        "--baseline",
        official / "WikiQA.CNN.test.rank",
    )
    assert status == 0 and "p (t-test)" in out and "0.6591" in out


def test_malformed_run_names_file_and_line(cli, tmp_path):
    run, qrels = tmp_path / "bad.run", tmp_path / "q.qrels"
    run.write_text("1 Q0 d1 1 0.5 tag\n1 Q0 d2 two 0.4\n")
    qrels.write_text("1 0 d1 1\n")
    status, _, err = cli("evaluate", run, qrels, "--measures", "AP")
    assert status == 2
    assert f"{run}:2" in err and "Traceback" not in err


def test_beir_qrels_evaluate_as_trec_qrels_do(cli, tmp_path):
    run, trec, beir = tmp_path / "r.run", tmp_path / "test.qrels", tmp_path / "test.tsv"
    run.write_text("q1 Q0 d1 1 0.9 t\nq1 Q0 d2 2 0.5 t\nq2 Q0 d3 1 0.8 t\nq2 Q0 d4 2 0.1 t\n")
    trec.write_text("q1 0 d2 1\nq2 0 d3 1\nq2 0 d4 0\n")
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\nq2\td4\t0\n")
    results = []
    for qrels in (trec, beir):
        status, out, _ = cli("evaluate", run, qrels, "--measures", "AP", "RR", "--json")
        assert status == 0
        results.append(json.loads(out))
    # q1: the relevant d2 at rank 2 (AP = RR = 1/2); q2: d3 at rank 1 (1): means 0.75.
    assert results[0] == results[1] == {"AP": 0.75, "RR": 0.75}


@pytest.mark.parametrize("text", ["q1\td2\t1\n", "q1 d2\n", "qid docid rel\nq1 d2 1\n"])
def test_qrels_of_neither_format_say_which_formats_were_expected(cli, tmp_path, text):
    run, qrels = tmp_path / "r.run", tmp_path / "q.tsv"
    run.write_text("q1 Q0 d1 1 0.9 t\n")
    qrels.write_text(text)
    status, _, err = cli("evaluate", run, qrels)
    assert status == 2 and f"{qrels}:1:expectedTRECqrels" in err.replace(" ", "")  # rich wraps anywhere
    assert "TREC qrels" in err and "BEIR qrels" in err and "query-id<TAB>corpus-id<TAB>score" in err
    assert "Traceback" not in err


def test_missing_file_is_a_one_line_error(cli, tmp_path):
    status, _, err = cli("evaluate", tmp_path / "nope.run", tmp_path / "nope.qrels")
    assert status == 2 and "nope" in err


@pytest.mark.integration
@pytest.mark.slow
def test_baseline_table_agrees_with_search_and_evaluate(cli, shared_data, tmp_path):
    table = tmp_path / "baseline.md"
    status, out, _ = cli("baseline", "--data-dir", shared_data, "--output", table, "--json")
    assert status == 0
    rows = {row["collection"]: row for row in json.loads(out)}
    assert set(rows) == {"wikiqa", "nfcorpus", "cranfield", "cisi"}
    assert rows["cranfield"]["queries"] == 225 and len(rows["cranfield"]["per_fold"]) == 5
    assert rows["cisi"]["queries"] == 76
    assert rows["nfcorpus"]["queries"] == 323
    # The same number through `search` + `evaluate`.
    run_path = tmp_path / "nf.run"
    cli("search", "nfcorpus", "--output", run_path, "--data-dir", shared_data)
    cli("qrels", "nfcorpus", "--output", tmp_path / "nf.qrels", "--data-dir", shared_data)
    status, out, _ = cli("evaluate", run_path, tmp_path / "nf.qrels", "--measures", "nDCG@10", "--json")
    assert json.loads(out)["nDCG@10"] == pytest.approx(rows["nfcorpus"]["metrics"]["nDCG@10"])
    assert "| nfcorpus | test |" in table.read_text()
