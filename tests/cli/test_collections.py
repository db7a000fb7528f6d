"""`neurank collections`, `index`, `search` and `qrels`: on the real collections (integration), and on collection
folders the tests write (BEIR layout, candidate runs, a manifest over TREC files, irds:); with --json; their one-line
errors."""

import importlib.util
import json
from pathlib import Path

import pytest

from neurank.collections import load_collection
from neurank.collections.trec import read_qrels, read_run
from neurank.evaluation import evaluate
from neurank.retrieval import BM25Retriever, bm25_run


@pytest.mark.integration
def test_collections_lists_all_four_as_found(cli, shared_data):
    status, out, _ = cli("collections", "--data-dir", shared_data, "--json")
    assert status == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert set(entries) == {"wikiqa", "nfcorpus", "cranfield", "cisi"}
    assert all(e["found"] for e in entries.values())


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_index_of_an_answer_selection_collection_is_refused_with_a_reason(cli, shared_data, tmp_path):
    status, _, err = cli("index", "wikiqa", "--output", tmp_path / "x", "--data-dir", shared_data)
    assert status == 2 and "answer-selection" in err


@pytest.mark.integration
def test_unknown_collection_is_a_one_line_error(cli, shared_data, tmp_path):
    status, _, err = cli("search", "msmarco", "--output", tmp_path / "r", "--data-dir", shared_data)
    assert status == 2
    assert "msmarco" in err and "wikiqa" in err and "Traceback" not in err


# --- collections that are places -------------------------------------------------------------------------------------

_SPEC = importlib.util.spec_from_file_location(
    "collection_folders", Path(__file__).parents[1] / "collections" / "conftest.py"
)
folders = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(folders)
SPLITS = {"train": folders.TRAIN, "dev": folders.DEV, "test": folders.TEST}


def test_collections_lists_the_folders_in_the_data_dir_and_describes_one(cli, tmp_path):
    folders.with_candidates(folders.beir_folder(tmp_path / "qa", SPLITS), SPLITS, "filtered: true\n")
    folders.beir_folder(tmp_path / "plain", {"test": folders.TEST})
    status, out, _ = cli("collections", "--data-dir", tmp_path, "--json")
    assert status == 0
    entries = {entry["name"]: entry for entry in json.loads(out)}
    assert list(entries)[-2:] == ["plain", "qa"] and entries["qa"]["holds"]["task"] == "answer_selection"
    assert entries["qa"]["holds"]["splits"] == ["train", "dev", "test", "dev-all", "test-all"]
    status, out, _ = cli("collections", "--data-dir", tmp_path)
    assert status == 0 and "qa" in out and "plain" in out
    status, out, _ = cli("collections", tmp_path / "qa", "--json")
    described = json.loads(out)
    assert status == 0 and described["kind"] == "folder" and described["task"] == "answer_selection"
    assert described["splits"]["test"] == {"queries": 1, "qrels": 3, "candidates": 3}
    assert described["splits"]["test-all"]["queries"] == 2 and described["measures"] == ["AP", "RR", "nDCG@10"]
    status, out, _ = cli("collections", "qa", "--data-dir", tmp_path)  # a folder name under the data dir
    assert status == 0 and "answer_selection" in out and "filtered" in out


def test_index_search_qrels_evaluate_on_a_beir_folder(cli, tmp_path, monkeypatch):
    folders.beir_folder(tmp_path / "data" / "tiny", SPLITS)
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli("index", "./data/tiny", "--json")
    assert status == 0 and json.loads(out)["index"] == str(Path("indexes") / "tiny")
    assert BM25Retriever.saved_in(tmp_path / "indexes" / "tiny")
    status, out, _ = cli("search", "./data/tiny", "--split", "test", "--k", 5, "--output", "bm25.test", "--json")
    assert status == 0 and json.loads(out)["queries"] == 1
    expected = bm25_run(load_collection(tmp_path / "data" / "tiny"), "test", k=5)
    assert [(r.query_id, r.doc_id) for r in read_run("bm25.test")] == [
        (r.query_id, r.doc_id) for r in sorted(expected, key=lambda r: -r.score)
    ]
    assert read_run("bm25.test")[0].doc_id == "q5-s0"
    status, _, _ = cli("qrels", "tiny", "--data-dir", "data", "--split", "test", "--output", "test.qrels")
    assert status == 0 and len(read_qrels("test.qrels")) == 6
    # evaluate takes the folder's own BEIR qrels as well as the TREC qrels `neurank qrels` wrote.
    for qrels in ("test.qrels", "data/tiny/qrels/test.tsv"):
        status, out, _ = cli("evaluate", "bm25.test", qrels, "--measures", "AP", "RR", "--json")
        assert status == 0 and json.loads(out) == {"AP": 1.0, "RR": 1.0}


def test_a_stale_index_of_another_document_set_is_refused(cli, tmp_path, monkeypatch):
    folders.beir_folder(tmp_path / "a" / "tiny", SPLITS)
    folders.beir_folder(tmp_path / "b" / "tiny", {"test": folders.TEST})
    lines = (tmp_path / "b" / "tiny" / "corpus.jsonl").read_text().splitlines()
    (tmp_path / "b" / "tiny" / "corpus.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    monkeypatch.chdir(tmp_path)
    assert cli("index", "a/tiny")[0] == 0
    status, _, err = cli("search", "b/tiny", "--output", "x.run")
    assert status == 2 and "indexes/tiny" in err and "rebuild it" in err and not (tmp_path / "x.run").exists()


def test_search_on_a_folder_with_candidate_runs_scores_the_given_candidates(cli, tmp_path):
    root = folders.with_candidates(folders.beir_folder(tmp_path / "qa", SPLITS), SPLITS, "filtered: true\n")
    status, _, _ = cli("search", root, "--split", "test", "--output", tmp_path / "bm25.test")
    assert status == 0
    run = read_run(tmp_path / "bm25.test")
    assert sorted(r.doc_id for r in run) == ["q5-s0", "q5-s1", "q5-s2"]  # q6 is filtered out
    status, _, err = cli("index", root, "--output", tmp_path / "index")
    assert status == 2 and "answer-selection" in err


def test_a_trec_files_folder_through_every_command(cli, tmp_path):
    root = folders.trec_folder(tmp_path / "trec")
    status, out, _ = cli("collections", root, "--json")
    assert status == 0 and json.loads(out)["name"] == "tiny-trec" and json.loads(out)["docs"] == 18
    status, _, _ = cli("index", root, "--output", tmp_path / "index")
    assert status == 0
    status, out, _ = cli("search", root, "--index", tmp_path / "index", "--output", tmp_path / "run", "--json")
    assert status == 0 and json.loads(out)["queries"] == 1
    status, out, _ = cli("qrels", root, "--split", "dev", "--output", tmp_path / "dev.qrels", "--json")
    assert status == 0 and json.loads(out)["qrels"] == 3


def test_a_bad_manifest_is_a_one_line_error_from_every_command(cli, tmp_path):
    root = folders.beir_folder(tmp_path / "qa", SPLITS)
    manifest = folders.write(root / "collection.yaml", "candidate: runs/test.run\n")
    for args in (
        ("collections", root),
        ("index", root),
        ("search", root, "--output", tmp_path / "r"),
        ("qrels", root, "--output", tmp_path / "q"),
    ):
        status, _, err = cli(*args)
        # rich wraps long lines anywhere, so compare without spaces
        assert status == 2 and f"{manifest}:1:key'candidate':unknownkey" in err.replace(" ", "")
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa"]
    status, out, _ = cli("collections", "--data-dir", tmp_path)
    assert status == 0 and "qa" in out  # the listing shows the broken folder instead of failing


def test_an_unknown_place_says_what_is_there(cli, tmp_path):
    folders.beir_folder(tmp_path / "mine", {"test": folders.TEST})
    status, _, err = cli("search", "nosuch", "--data-dir", tmp_path, "--output", tmp_path / "r")
    assert status == 2 and "unknown collection 'nosuch'" in err and "mine" in err
    status, _, err = cli("search", tmp_path / "nosuch", "--output", tmp_path / "r")
    assert status == 2 and "no such folder" in err


def test_index_and_search_an_irds_collection(cli, tmp_path, monkeypatch):
    ir_datasets = pytest.importorskip("ir_datasets")
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    name = f"neurank-cli-{tmp_path.name}"
    docs = folders.write(tmp_path / "docs.tsv", "".join(f"{d}\t{t}\n" for d, t in folders.docs().items()))
    queries = folders.write(tmp_path / "q.tsv", "".join(f"{q}\t{t}\n" for q, (t, _) in folders.QUESTIONS.items()))
    qrels = folders.trec_qrels(tmp_path / "test.qrels", folders.TEST)
    dataset = Dataset(
        TsvDocs(LocalDownload(docs)), TsvQueries(LocalDownload(queries)), TrecQrels(LocalDownload(qrels), {})
    )
    ir_datasets.registry.register(name, dataset)
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli("index", f"irds:{name}", "--json")
    assert status == 0 and json.loads(out)["index"] == str(Path("indexes") / f"irds-{name}")
    status, out, _ = cli("search", f"irds:{name}", "--output", "bm25.run", "--json")
    assert status == 0 and json.loads(out)["queries"] == 1 and read_run("bm25.run")[0].doc_id == "q5-s0"


@pytest.mark.integration
@pytest.mark.slow
def test_wikiqa_as_a_beir_folder_gives_the_registered_bm25_run(cli, shared_data, tmp_path):
    from neurank.collections.export import export_beir

    export_beir(load_collection("wikiqa", shared_data), tmp_path / "wikiqa-beir")
    registered, folder = tmp_path / "registered.run", tmp_path / "folder.run"
    assert cli("search", "wikiqa", "--data-dir", shared_data, "--output", registered)[0] == 0
    assert cli("search", tmp_path / "wikiqa-beir", "--output", folder)[0] == 0
    assert cli("qrels", "wikiqa", "--data-dir", shared_data, "--output", tmp_path / "test.qrels")[0] == 0
    values = []
    for run, qrels in (
        (registered, tmp_path / "test.qrels"),
        (folder, tmp_path / "wikiqa-beir/qrels-filtered/test.tsv"),
    ):
        status, out, _ = cli("evaluate", run, qrels, "--measures", "AP", "RR", "nDCG@10", "--json")
        assert status == 0
        values.append(json.loads(out))
    assert values[0] == values[1] and round(values[0]["AP"], 4) == 0.5875  # docs/collections.md, Baseline
    assert [r.score for r in read_run(registered)] == [r.score for r in read_run(folder)]
