"""Collections that are folders: BEIR layout, a collection.yaml over TSV / JSONL / TREC files, candidate runs, carved
dev splits, folds, the filtered protocol; and how `load_collection` tells a name from a place."""

from __future__ import annotations

import os
import random
import re

import pytest

from neurank.collections import ADHOC, ANSWER_SELECTION, Doc, FormatError, Query, load_collection
from neurank.collections.collection import dev_query_ids, kfold_splits
from neurank.collections.folder import folder_kind, load_folder, plan_folder
from neurank.collections.registry import (
    UnknownCollectionError,
    list_collections,
    resolve_collection,
)
from neurank.retrieval import bm25_run

# --- BEIR layout ----------------------------------------------------------------------------------------------------


def test_beir_folder_without_manifest_is_adhoc_with_its_splits(tmp_path, folders):
    root = folders.beir_folder(tmp_path / "tiny")
    collection = load_collection(root)
    assert collection.name == "tiny" and collection.task == ADHOC
    assert list(collection.splits) == ["train", "dev", "test"]
    assert len(collection.docs) == 18 and collection.docs["q2-s0"] == Doc("q2-s0", "paris is the capital of france")
    assert list(collection.split("test").queries) == ["q5", "q6"]
    assert collection.split("dev").queries["q4"] == Query("q4", "who painted the mona lisa")
    assert collection.measures[0] == "nDCG@10"
    run = bm25_run(collection, "test", k=5)
    # q6's words ("discovered penicillin") are in no document, so it gets no results.
    assert {r.query_id for r in run} == {"q5"} and all(r.doc_id in collection.docs for r in run)


def test_a_place_is_absolute_relative_or_a_folder_under_the_data_dir(tmp_path, folders, monkeypatch):
    folders.beir_folder(tmp_path / "data" / "tiny")
    monkeypatch.chdir(tmp_path)
    by_path = load_collection(str(tmp_path / "data" / "tiny"))
    for place, data_dir in (("./data/tiny", None), ("data/tiny", None), ("tiny", tmp_path / "data")):
        assert load_collection(place, data_dir).summary() == by_path.summary()
    monkeypatch.chdir(tmp_path / "data")
    assert load_collection("tiny", tmp_path / "elsewhere").summary() == by_path.summary()  # ./tiny, a bare word
    assert resolve_collection("tiny", tmp_path / "data").slug == "tiny"
    monkeypatch.chdir(tmp_path / "data" / "tiny")
    assert resolve_collection(".", None).slug == "tiny"  # the folder's own name, not "."


def test_registered_names_come_first_and_unknown_words_say_what_exists(tmp_path, folders):
    folders.beir_folder(tmp_path / "wikiqa")  # a folder that shares a registered name
    folders.beir_folder(tmp_path / "mine")
    assert resolve_collection("wikiqa", tmp_path).kind == "registered"
    assert resolve_collection(str(tmp_path / "wikiqa")).kind == "folder"
    with pytest.raises(UnknownCollectionError) as error:
        load_collection("nosuch", tmp_path)
    message = str(error.value)
    assert "'nosuch'" in message and "wikiqa" in message and "mine" in message and "irds:" in message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "not a collection folder"),
    ],
)
def test_a_path_that_is_not_a_collection_folder_says_why(tmp_path, make, expected):
    with pytest.raises(FileNotFoundError, match=expected):
        load_collection(make(tmp_path))


def test_manifest_adds_to_a_beir_folder_and_overrides_a_split(tmp_path, folders):
    root = folders.beir_folder(tmp_path / "tiny")
    folders.beir_qrels(root / "qrels-clean" / "test.tsv", ["q5"])
    folders.write(root / "collection.yaml", "name: clean\nqrels: {test: qrels-clean/test.tsv}\nmeasures: [AP, P@1]\n")
    collection = load_collection(root)
    assert folder_kind(root) == "beir+manifest" and collection.name == "clean"
    assert list(collection.split("test").queries) == ["q5"] and list(collection.split("train").queries) == folders.TRAIN
    assert collection.measures == ("AP", "P@1")


# --- splits a user actually has ---------------------------------------------------------------------------------------


def test_dev_is_carved_from_train_when_there_is_none(tmp_path, folders):
    train = ["q1", "q2", "q3", "q4"]
    root = folders.beir_folder(tmp_path / "tiny", {"train": train, "test": folders.TEST})
    collection = load_collection(root)
    assert list(collection.splits) == ["train", "dev", "test"]
    dev = set(collection.split("dev").queries)
    assert dev == dev_query_ids(train, 0.1) and len(dev) == 1  # round(0.4) = 0, at least one
    assert dev | set(collection.split("train").queries) == set(train) and not dev & set(
        collection.split("train").queries
    )
    assert {r.query_id for r in collection.split("dev").qrels} == dev
    assert any("dev carved from train" in note for note in collection.notes)
    # An option (or the manifest's dev_fraction) sets the share; 0 turns carving off.
    assert len(load_collection(root, dev_fraction=0.5).split("dev").queries) == 2
    assert list(load_collection(root, dev_fraction=0).splits) == ["train", "test"]


def test_dev_carving_ignores_file_order_and_is_stable():
    ids = [f"query-{i}" for i in range(200)]
    chosen = dev_query_ids(ids, 0.15)
    assert len(chosen) == 30
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    assert dev_query_ids(shuffled, 0.15) == chosen
    # The choice is a ranking by a hash of each id: a larger share only adds queries.
    assert chosen < dev_query_ids(ids, 0.3)


def test_dev_carving_in_the_folder_does_not_depend_on_the_order_of_queries_jsonl(tmp_path, folders):
    splits = {"train": ["q1", "q2", "q3", "q4", "q5"], "test": ["q6"]}
    first = folders.beir_folder(tmp_path / "a", splits)
    second = folders.beir_folder(tmp_path / "b", splits)
    lines = (second / "queries.jsonl").read_text().splitlines()
    (second / "queries.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    dev_a = load_collection(first, dev_fraction=0.4).split("dev").queries
    dev_b = load_collection(second, dev_fraction=0.4).split("dev").queries
    assert set(dev_a) == set(dev_b) and len(dev_a) == 2


def test_a_test_only_folder_loads_and_searches(tmp_path, folders):
    root = folders.beir_folder(tmp_path / "tiny", {"test": folders.TEST})
    collection = load_collection(root)
    assert list(collection.splits) == ["test"]
    assert {r.query_id for r in bm25_run(collection, "test")} == {"q5"}
    with pytest.raises(KeyError, match="has no split 'train'; it has: test"):
        collection.split("train")


def test_folds_make_the_fold_rule_a_property_of_the_collection(tmp_path, folders):
    root = tmp_path / "folded"
    folders.jsonl(root / "docs.jsonl", ({"_id": d, "text": t} for d, t in folders.docs().items()))
    folders.write(root / "queries.tsv", "".join(f"{q}\t{text}\n" for q, (text, _) in folders.QUESTIONS.items()))
    folders.trec_qrels(root / "judgements.qrels", list(folders.QUESTIONS))
    folders.write(
        root / "collection.yaml", "documents: docs.jsonl\nqueries: queries.tsv\nqrels: judgements.qrels\nfolds: 3\n"
    )
    collection = load_collection(root, fold=1, folds=5)  # the manifest's 3 folds win over the caller's default
    reference = kfold_splits(
        {q: Query(q, t) for q, (t, _) in folders.QUESTIONS.items()}, collection.split("all").qrels, 3, 1
    )
    assert {name: set(split.queries) for name, split in collection.splits.items()} == {
        name: set(split.queries) for name, split in reference.items()
    }
    # q6 has only non-relevant judgements, but it is judged, so it is split too.
    assert len(collection.split("all").queries) == 6 and len(collection.split("test").queries) == 2


# --- candidates: answer selection from the user's own runs ------------------------------------------------------------


def test_candidate_runs_make_an_answer_selection_collection(tmp_path, folders):
    splits = {"train": folders.TRAIN, "dev": folders.DEV, "test": folders.TEST}
    root = folders.with_candidates(folders.beir_folder(tmp_path / "qa", splits), splits)
    collection = load_collection(root)
    assert collection.task == ANSWER_SELECTION and collection.docs == {}
    assert collection.measures == ("AP", "RR", "nDCG@10")
    test = collection.split("test")
    assert [d.text for d in test.candidates["q5"]] == folders.QUESTIONS["q5"][1]
    run = bm25_run(collection, "test")
    # BM25 scores exactly the given candidates, every one of them.
    assert sorted((r.query_id, r.doc_id) for r in run) == sorted(
        (q, folders.doc_id(q, i)) for q in folders.TEST for i in range(3)
    )
    best = max((r for r in run if r.query_id == "q5"), key=lambda r: r.score)
    assert best.doc_id == "q5-s0"  # "the pacific is the largest ocean" shares "largest ocean"


def test_carved_dev_takes_its_candidates_from_the_train_run(tmp_path, folders):
    splits = {"train": ["q1", "q2", "q3", "q4"], "test": folders.TEST}
    root = folders.with_candidates(folders.beir_folder(tmp_path / "qa", splits), splits, "dev_fraction: 0.5\n")
    collection = load_collection(root)
    dev = collection.split("dev")
    assert len(dev.queries) == 2 and set(dev.candidates) == set(dev.queries)
    assert all(len(docs) == 3 for docs in dev.candidates.values())
    assert set(collection.split("train").candidates) == set(collection.split("train").queries)


def test_filtered_keeps_queries_with_a_relevant_and_a_non_relevant_candidate(tmp_path, folders):
    splits = {"train": folders.TRAIN, "dev": folders.DEV, "test": folders.TEST}
    root = folders.with_candidates(folders.beir_folder(tmp_path / "qa", splits), splits, "filtered: true\n")
    collection = load_collection(root)
    assert list(collection.splits) == ["train", "dev", "test", "dev-all", "test-all"]
    assert list(collection.split("test").queries) == ["q5"]  # q6 has no correct candidate
    assert list(collection.split("test-all").queries) == ["q5", "q6"]
    assert {r.query_id for r in collection.split("test").qrels} == {"q5"}
    assert list(collection.split("train").queries) == folders.TRAIN  # train is never filtered


def test_a_candidate_missing_from_the_corpus_names_the_run_file_and_line(tmp_path, folders):
    splits = {"test": folders.TEST}
    root = folders.with_candidates(folders.beir_folder(tmp_path / "qa", splits), splits)
    run = root / "runs" / "test.run"
    lines = run.read_text().splitlines()
    lines[4] = "q6 Q0 nowhere 2 0 candidates"
    run.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=re.escape(f"{run}:5: expected a document id of the corpus, found 'nowhere'")):
        load_collection(root)


def test_queries_without_candidates_are_kept_with_a_warning(tmp_path, folders):
    root = folders.beir_folder(tmp_path / "qa", {"test": folders.TEST})
    folders.candidate_run(root / "runs" / "test.run", ["q5"])
    folders.write(root / "collection.yaml", "candidates: runs/test.run\n")  # one run for every split
    with pytest.warns(UserWarning, match="1 of the 2 judged queries of split 'test' have no candidates"):
        collection = load_collection(root)
    assert collection.split("test").candidates["q6"] == []


# --- manifest folders of other files ----------------------------------------------------------------------------------


def test_trec_files_described_by_a_manifest(tmp_path, folders):
    root = folders.trec_folder(tmp_path / "trec")
    collection = load_collection(root)
    assert collection.name == "tiny-trec" and collection.task == ADHOC
    assert collection.docs["q3-s0"].text == "the thames flows through london"
    assert collection.split("test").queries["q5"].text == "what is the largest ocean"
    # train (q1..q4) with dev_fraction 0.25 gives one dev query, chosen by the id hash.
    assert list(collection.splits) == ["train", "dev", "test"]
    assert set(collection.split("dev").queries) == dev_query_ids(["q1", "q2", "q3", "q4"], 0.25)
    assert len(bm25_run(collection, "test", k=3)) > 0


def test_per_split_tsv_queries_and_a_tsv_corpus(tmp_path, folders):
    root = tmp_path / "tsv"
    folders.write(root / "docs.tsv", "".join(f"{d}\t{t}\n" for d, t in folders.docs().items()))
    for split, ids in (("train", folders.TRAIN), ("test", folders.TEST)):
        rows = "".join(f"{q}\t{folders.QUESTIONS[q][0]}\n" for q in ids)
        folders.write(root / "queries" / f"{split}.tsv", rows)
        folders.trec_qrels(root / "qrels" / f"{split}.txt", ids)
    folders.write(
        root / "collection.yaml",
        "documents: docs.tsv\nqueries: {train: queries/train.tsv, test: queries/test.tsv}\n"
        "qrels: {train: qrels/train.txt, test: qrels/test.txt}\ndev_fraction: 0\n",
    )
    collection = load_collection(root)
    assert list(collection.splits) == ["train", "test"]
    assert list(collection.split("train").queries) == folders.TRAIN
    assert plan_folder(root).describe()["queries"] == {"train": "queries/train.tsv", "test": "queries/test.tsv"}


# --- listing ----------------------------------------------------------------------------------------------------------


def test_list_collections_adds_the_folders_it_recognises(tmp_path, folders):
    splits = {"train": folders.TRAIN, "test": folders.TEST}
    folders.with_candidates(folders.beir_folder(tmp_path / "qa", splits), splits)
    folders.trec_folder(tmp_path / "trec")
    folders.write(tmp_path / "broken" / "collection.yaml", "task: ranking\n")
    (tmp_path / "notes").mkdir()
    listing = {entry["name"]: entry for entry in list_collections(tmp_path)}
    assert list(listing) == ["wikiqa", "nfcorpus", "cranfield", "cisi", "broken", "qa", "trec"]
    qa = listing["qa"]
    assert qa["found"] and qa["kind"] == "beir+manifest" and qa["holds"]["task"] == ANSWER_SELECTION
    assert qa["holds"]["splits"] == ["train", "dev", "test"] and qa["holds"]["candidates"]["test"] == "runs/test.run"
    assert "dev carved from train" in qa["description"]
    assert listing["trec"]["holds"]["documents"] == "docs/collection.sgml"
    broken = listing["broken"]
    assert not broken["found"] and "key 'task'" in broken["error"]


def test_a_folder_is_read_in_place_and_never_written(tmp_path, folders):
    splits = {"train": folders.TRAIN, "test": folders.TEST}
    root = folders.with_candidates(folders.beir_folder(tmp_path / "qa", splits), splits, "filtered: true\n")
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    load_folder(root)
    list_collections(tmp_path)
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["qa"]
