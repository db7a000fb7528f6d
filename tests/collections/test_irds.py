"""`irds:ID` collections, built from local files through ir_datasets' own API (TsvDocs, TsvQueries, TrecQrels over
LocalDownload), so nothing is downloaded; and the message when a dataset's files are missing."""

from __future__ import annotations

import uuid

import pytest

from neurank.collections import ADHOC, Doc, load_collection
from neurank.collections.collection import dev_query_ids
from neurank.collections.irds import UnknownDatasetError, missing_files_message

ir_datasets = pytest.importorskip("ir_datasets")
from ir_datasets.datasets.base import Dataset  # noqa: E402
from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries  # noqa: E402
from ir_datasets.util import LocalDownload  # noqa: E402

QRELS_DEFS = {0: "not relevant", 1: "relevant"}


@pytest.fixture(autouse=True)
def irds_home(tmp_path, monkeypatch):
    home = tmp_path / "irds-home"
    monkeypatch.setenv("IR_DATASETS_HOME", str(home))
    return home


def register(tmp_path, folders, splits: dict[str, list[str]], with_top_queries: bool = False) -> str:
    """Register `neurank-test-<uuid>` (documents) and `.../<split>` (queries and qrels) over files in tmp_path."""
    name = f"neurank-test-{uuid.uuid4().hex[:8]}"
    docs = folders.write(tmp_path / "docs.tsv", "".join(f"{d}\t{t}\n" for d, t in folders.docs().items()))
    queries = folders.write(
        tmp_path / "queries.tsv", "".join(f"{q}\t{text}\n" for q, (text, _) in folders.QUESTIONS.items())
    )
    shared_docs = TsvDocs(LocalDownload(docs))
    parts = [shared_docs]
    if with_top_queries:
        qrels = folders.trec_qrels(tmp_path / "all.qrels", list(folders.QUESTIONS))
        parts += [TsvQueries(LocalDownload(queries)), TrecQrels(LocalDownload(qrels), QRELS_DEFS)]
    ir_datasets.registry.register(name, Dataset(*parts))
    for split, query_ids in splits.items():
        qrels = folders.trec_qrels(tmp_path / f"{split}.qrels", query_ids)
        dataset = Dataset(shared_docs, TsvQueries(LocalDownload(queries)), TrecQrels(LocalDownload(qrels), QRELS_DEFS))
        ir_datasets.registry.register(f"{name}/{split}", dataset)
    return name


def test_sub_datasets_become_splits_and_dev_is_carved_from_train(tmp_path, folders):
    train = ["q1", "q2", "q3", "q4"]
    name = register(tmp_path, folders, {"train": train, "test": ["q5", "q6"]})
    collection = load_collection(f"irds:{name}")
    assert collection.task == ADHOC and collection.name == name
    assert list(collection.splits) == ["train", "dev", "test"]
    assert collection.docs["q1-s0"] == Doc("q1-s0", "hamlet was written by shakespeare")
    assert set(collection.split("dev").queries) == dev_query_ids(train, 0.1)
    assert list(collection.split("test").queries) == ["q5", "q6"]
    assert {(r.query_id, r.doc_id, r.relevance) for r in collection.split("test").qrels} == {
        (q, folders.doc_id(q, i), folders.relevance(q, i)) for q in ("q5", "q6") for i in range(3)
    }
    assert list(load_collection(f"irds:{name}", dev_fraction=0).splits) == ["train", "test"]


def test_a_dataset_with_its_own_qrels_is_one_split(tmp_path, folders):
    name = register(tmp_path, folders, {}, with_top_queries=True)
    collection = load_collection(f"irds:{name}")
    assert list(collection.splits) == ["test"] and len(collection.split("test").queries) == 6
    # A sub-dataset named by its split keeps that name.
    name = register(tmp_path, folders, {"dev": ["q4"]})
    assert list(load_collection(f"irds:{name}/dev").splits) == ["dev"]


def test_an_unknown_id_is_an_unknown_collection(tmp_path):
    with pytest.raises(UnknownDatasetError, match="irds:no-such/dataset: ir_datasets has no dataset 'no-such/dataset'"):
        load_collection("irds:no-such/dataset")


def test_missing_files_say_where_ir_datasets_looked(tmp_path, folders, irds_home):
    name = register(tmp_path, folders, {"test": ["q5"]})
    (tmp_path / "docs.tsv").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_collection(f"irds:{name}")
    message = str(error.value)
    assert f"irds:{name}" in message and f"IR_DATASETS_HOME={irds_home}" in message
    assert f"  {tmp_path / 'docs.tsv'}" in message  # the file to place, on a line of its own


def test_missing_files_of_a_known_dataset_list_its_downloads():
    # Nothing is downloaded: the files are read off ir_datasets' own dataset objects and download list.
    datasets = [ir_datasets.load("antique"), ir_datasets.load("antique/train")]
    message = missing_files_message("antique/train", OSError("offline"), datasets)
    assert "irds:antique/train: ir_datasets could not read the dataset's files (OSError: offline)" in message
    assert "https://ciir.cs.umass.edu/downloads/Antique/antique-train.qrel -> " in message
    assert "downloads/bac76531a3313a2d1debf5f1602d88ab" in message  # the md5 ir_datasets looks for
