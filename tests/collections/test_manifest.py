"""`collection.yaml`: every bad manifest is an error naming the file, the line and the key, and changes nothing; a
property test writes random collections as folders and reads them back."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurank.collections import load_collection
from neurank.collections.manifest import ManifestError, read_manifest

SPLITS = {"train": ["q1", "q2", "q3"], "dev": ["q4"], "test": ["q5", "q6"]}


@pytest.fixture
def qa_folder(tmp_path, folders):
    """A BEIR folder with train/dev/test qrels, a candidate run per split, a docs.txt and a TREC topic file."""
    root = folders.beir_folder(tmp_path / "qa", SPLITS)
    for split, ids in SPLITS.items():
        folders.candidate_run(root / "runs" / f"{split}.run", ids)
    folders.write(root / "docs.txt", "d1\tsome text\n")
    folders.write(root / "topics", "<top>\n<num> 1\n<title> a\n</top>\n")
    return root


RUNS = "candidates: {train: runs/train.run, dev: runs/dev.run, test: runs/test.run}\n"

# (manifest text, the key the message must name, words it must contain, the line it must name or None)
BAD_MANIFESTS = [
    ("candidate: runs/test.run\n", "candidate", "did you mean 'candidates'", 1),
    ("name: x\nqrel: {test: qrels/test.tsv}\n", "qrel", "valid keys: name, task, documents", 2),
    ("documents: nope.jsonl\n", "documents", "nope.jsonl not found", 1),
    ("queries: {test: q/test.tsv}\n", "queries.test", "test.tsv not found", 1),
    (RUNS.replace("runs/dev.run", "runs/missing.run"), "candidates.dev", "missing.run not found", 1),
    ("documents: runs\n", "documents", "is a folder, not a file", 1),
    ("qrels:\n  test: qrels/test.tsv\n  test: qrels/dev.tsv\n", "qrels.test", "named twice (first on line 2)", 3),
    ("task: ranking\n", "task", "unknown task 'ranking'; valid tasks: answer_selection, adhoc", 1),
    ("task: [adhoc]\n", "task", "expected a task", 1),
    ("folds: five\n", "folds", "expected a whole number of folds", 1),
    ("folds: true\n", "folds", "found True", 1),
    ("folds: 1\n", "folds", "2 or more, found 1", 1),
    ("filtered: maybe\n", "filtered", "expected true or false", 1),
    ("dev_fraction: 1.5\n", "dev_fraction", "from 0 (no dev split) to below 1", 1),
    ("documents: {path: docs.txt, format: xml}\n", "documents.format", "unknown format 'xml'; valid formats", 1),
    ("documents: docs.txt\n", "documents", "cannot tell the format of docs.txt", 1),
    ("queries: topics\n", "queries", "format: jsonl | tsv | trec", 1),
    ("queries: {path: queries.jsonl, fromat: tsv}\n", "queries.fromat", "valid keys of a file: path, format", 1),
    ("queries: {path: queries.jsonl, fields: [title]}\n", "queries.fields", "not format trec", 1),
    ("queries: {path: topics, format: trec, fields: [summary]}\n", "queries.fields", "title, desc, narr", 1),
    ("qrels: 7\n", "qrels", "expected a file name", 1),
    ("qrels: {my split: qrels/test.tsv}\n", "qrels.my split", "no spaces", 1),
    ("measures: [AP, Precision@ten]\n", "measures", "unknown measure 'Precision@ten'", 1),
    ("measures: {AP: 1}\n", "measures", "list of measure names", 1),
    ("name: ''\n", "name", "non-empty name", 1),
    ("name: x\n  bad: indentation\n", "(file)", "not valid YAML", 2),
    ("- a list\n", "(top level)", "expected a mapping of keys", 1),
    # Keys that are fine alone but do not fit together.
    ("dev_fraction: 0.2\n", "dev_fraction", "split 'dev' would be named twice", 1),
    ("candidates: {train: runs/train.run, valid: runs/dev.run}\n", "candidates.valid", "no split 'valid'", 1),
    ("candidates: {train: runs/train.run, test: runs/test.run}\n", "candidates", "no candidate run for split 'dev'", 1),
    ("task: answer_selection\n", "task", "name them with candidates", 1),
    (RUNS + "task: adhoc\n", "candidates", "remove task: adhoc or the candidates", 1),
    ("filtered: true\n", "filtered", "it needs candidate runs", 1),
    ("qrels: qrels/test.tsv\n", "qrels", "needs folds: K", 1),
    ("folds: 5\n", "folds", "qrels for: train, dev, test", 1),
    (
        RUNS.replace("}", ", test-all: runs/test.run}") + "filtered: true\nqrels: {test-all: qrels/test.tsv}\n",
        "filtered",
        "'test-all' would be named twice",
        2,
    ),
]


@pytest.mark.parametrize(("text", "key", "words", "line"), BAD_MANIFESTS, ids=[case[1] for case in BAD_MANIFESTS])
def test_a_bad_manifest_names_the_file_the_line_and_the_key(qa_folder, text, key, words, line):
    manifest = qa_folder / "collection.yaml"
    manifest.write_text(text, encoding="utf-8")
    before = {path: path.read_bytes() for path in qa_folder.rglob("*") if path.is_file()}
    with pytest.raises(ManifestError) as error:
        load_collection(qa_folder)
    message = str(error.value)
    where = f"{manifest}:{line}" if line else str(manifest)
    assert message.startswith(f"{where}: key '{key}': "), message
    assert words in message, message
    assert error.value.key == key and error.value.path == str(manifest)
    assert {path: path.read_bytes() for path in qa_folder.rglob("*") if path.is_file()} == before


def test_an_empty_manifest_in_a_beir_folder_changes_nothing(qa_folder):
    (qa_folder / "collection.yaml").write_text("# nothing to add\n")
    assert read_manifest(qa_folder / "collection.yaml").lines == {}
    assert list(load_collection(qa_folder).splits) == ["train", "dev", "test"]


def test_a_manifest_folder_without_documents_says_which_key_is_missing(tmp_path, folders):
    folders.write(tmp_path / "mine" / "collection.yaml", "name: mine\n")
    with pytest.raises(ManifestError, match=r"key 'documents': missing: name the documents file"):
        load_collection(tmp_path / "mine")


# --- property: what is written as a folder is what is read back ------------------------------------------------------

ids = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=8)
texts = st.text(string.ascii_letters + string.digits + " ,.'é", max_size=30).map(lambda t: " ".join(t.split()))


@st.composite
def collections(draw):
    doc_ids = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    query_ids = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    docs = {doc_id: draw(texts) for doc_id in doc_ids}
    queries = {query_id: draw(texts) for query_id in query_ids}
    split_of = {query_id: draw(st.sampled_from(["train", "test"])) for query_id in query_ids}
    qrels = {
        (query_id, doc_id): draw(st.integers(-1, 3))
        for query_id in query_ids
        for doc_id in draw(st.lists(st.sampled_from(doc_ids), min_size=1, max_size=3, unique=True))
    }
    return docs, queries, split_of, qrels, draw(st.sampled_from(["beir", "manifest-tsv", "manifest-trec"]))


@pytest.mark.filterwarnings("ignore::neurank.collections.DataWarning")  # empty texts are allowed, and reported
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(collections())
def test_a_folder_reads_back_what_was_written(tmp_path_factory, case):
    docs, queries, split_of, qrels, layout = case
    root = tmp_path_factory.mktemp("prop")
    splits = sorted(set(split_of.values()), key=["train", "test"].index)
    if layout == "beir":
        (root / "corpus.jsonl").write_text(
            "".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in docs.items()), encoding="utf-8"
        )
        (root / "queries.jsonl").write_text(
            "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()), encoding="utf-8"
        )
        (root / "qrels").mkdir()
        for split in splits:
            rows = "".join(f"{q}\t{d}\t{r}\n" for (q, d), r in qrels.items() if split_of[q] == split)
            (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
        manifest = "dev_fraction: 0\n"
    else:
        (root / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in docs.items()), encoding="utf-8")
        (root / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()), encoding="utf-8")
        for split in splits:
            rows = "".join(f"{q} 0 {d} {r}\n" for (q, d), r in qrels.items() if split_of[q] == split)
            (root / f"{split}.qrels").write_text(rows, encoding="utf-8")
        qrels_map = ", ".join(f"{split}: {split}.qrels" for split in splits)
        manifest = f"documents: docs.tsv\nqueries: queries.tsv\nqrels: {{{qrels_map}}}\ndev_fraction: 0\n"
        if layout == "manifest-trec":
            sgml = "".join(f"<DOC><DOCNO>{d}</DOCNO><TEXT>{t}</TEXT></DOC>\n" for d, t in docs.items())
            (root / "docs.sgml").write_text(sgml, encoding="utf-8")
            manifest = manifest.replace("docs.tsv", "docs.sgml")
    (root / "collection.yaml").write_text(manifest, encoding="utf-8")
    collection = load_collection(root)
    assert list(collection.splits) == splits
    assert {d.doc_id: d.text for d in collection.docs.values()} == docs
    for split in splits:
        part = collection.split(split)
        judged = {q for q in queries if split_of[q] == split}
        assert {q: query.text for q, query in part.queries.items()} == {q: queries[q] for q in judged}
        assert {(r.query_id, r.doc_id): r.relevance for r in part.qrels} == {
            key: value for key, value in qrels.items() if split_of[key[0]] == split
        }
