"""`export_beir`: a loaded collection written as a collection folder reads back as the same collection, with the same
BM25 numbers; an existing folder is never overwritten."""

from __future__ import annotations

import pytest

from neurank.collections import Query, load_collection
from neurank.collections.collection import Collection, kfold_splits
from neurank.collections.export import export_beir
from neurank.collections.formats import read_qrels_any
from neurank.collections.trec import read_run
from neurank.evaluation import evaluate
from neurank.retrieval import bm25_run


def test_wikiqa_as_a_folder_is_the_same_collection_with_the_same_bm25(tiny_data_dir, tmp_path):
    registered = load_collection("wikiqa", tiny_data_dir)
    written = export_beir(registered, tmp_path / "wikiqa-beir")
    assert written["splits"] == ["train", "dev", "test"] and written["filtered"] == ["dev", "test"]
    folder = load_collection(tmp_path / "wikiqa-beir")
    assert folder.name == "wikiqa-beir" and folder.task == registered.task
    assert folder.summary()["splits"] == registered.summary()["splits"]
    for name in registered.splits:
        ours, theirs = registered.split(name), folder.split(name)
        # Ids are WikiQA's own QuestionID / SentenceID; texts and order are the registered ones.
        assert [q.text for q in ours.queries.values()] == [q.text for q in theirs.queries.values()]
        pairs = zip(ours.candidates.items(), theirs.candidates.items(), strict=True)
        for (query_id, docs), (folder_id, folder_docs) in pairs:
            assert ours.original_ids[query_id][0] == folder_id
            assert [d.text for d in docs] == [d.text for d in folder_docs]
        measures = ["AP", "RR", "nDCG@10"]
        expected = evaluate(bm25_run(registered, name), ours.qrels, measures)
        assert evaluate(bm25_run(folder, name), theirs.qrels, measures) == pytest.approx(expected, abs=1e-12)
    # The candidate runs list each question's sentences in order, as a list, not a ranking.
    run = read_run(tmp_path / "wikiqa-beir" / "runs" / "test.run")
    assert {entry.score for entry in run} == {0.0}


def test_the_filtered_qrels_are_written_for_evaluate(tiny_data_dir, tmp_path):
    registered = load_collection("wikiqa", tiny_data_dir)
    export_beir(registered, tmp_path / "out")
    folder = load_collection(tmp_path / "out")
    assert set(read_qrels_any(tmp_path / "out" / "qrels-filtered" / "test.tsv")) == set(folder.split("test").qrels)


def test_an_existing_folder_is_never_overwritten(tiny_data_dir, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        export_beir(load_collection("wikiqa", tiny_data_dir), target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "mine"]  # no temporary folder left behind


def test_a_folded_collection_keeps_its_folds(tmp_path, folders):
    queries = {q: Query(q, text) for q, (text, _) in folders.QUESTIONS.items()}
    root = folders.beir_folder(tmp_path / "src", {"all": list(folders.QUESTIONS)})
    source = load_collection(root)
    qrels = source.split("all").qrels
    folded = Collection("folded", "adhoc", source.docs, kfold_splits(queries, qrels, 3, 2), source.measures)
    export_beir(folded, tmp_path / "folded", folds=3)
    assert "folds: 3" in (tmp_path / "folded" / "collection.yaml").read_text()
    again = load_collection(tmp_path / "folded", fold=2)
    assert {n: set(s.queries) for n, s in again.splits.items()} == {n: set(s.queries) for n, s in folded.splits.items()}
