from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from neurank.collections import ADHOC, DataWarning, Doc, FormatError, Qrel, Query
from neurank.collections.nfcorpus import load_nfcorpus, read_nfcorpus_docs, read_nfcorpus_queries

# Like the release: no newline after the last document, and every document line ends with a space.
DEV_DOCS = "MED-1\tdeep fried foods acrylamide \nMED-2\tddt breast milk \nMED-3\tcoffee liver "
TEST_DOCS = "MED-2\tddt breast milk \nMED-4\tbroccoli sulforaphane "
QUERIES = {
    "train": "PLAIN-1\twhy deep fried foods may cause cancer\nPLAIN-2\tddt\n",
    "dev": "PLAIN-10\tcoffee\n",
    "test": "PLAIN-20\tbroccoli\n",
}
QRELS_210 = {
    # MED-8 and MED-9 exist only in the (missing) train.docs.
    "train": "PLAIN-1\t0\tMED-1\t2\nPLAIN-1\t0\tMED-9\t1\nPLAIN-2\t0\tMED-8\t2\nPLAIN-2\t0\tMED-4\t1\n",
    "dev": "PLAIN-10\t0\tMED-3\t2\nPLAIN-10\t0\tMED-2\t1\n",
    "test": "PLAIN-20\t0\tMED-4\t2\n",
}
QRELS_321 = {
    "train": QRELS_210["train"] + "PLAIN-2\t0\tMED-2\t1",
    "dev": QRELS_210["dev"] + "PLAIN-10\t0\tMED-1\t1",
    "test": QRELS_210["test"] + "PLAIN-20\t0\tMED-2\t1",
}


@pytest.fixture
def nf_root(tmp_path: Path) -> Path:
    (tmp_path / "dev.docs").write_text(DEV_DOCS)
    (tmp_path / "test.docs").write_text(TEST_DOCS)
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.titles.queries").write_text(QUERIES[split])
        (tmp_path / f"{split}.2-1-0.qrel").write_text(QRELS_210[split])
        (tmp_path / f"{split}.3-2-1.qrel").write_text(QRELS_321[split])
    (tmp_path / "train.vid-titles.queries").write_text("PLAIN-2\tddt video\n")
    (tmp_path / "dev.vid-titles.queries").write_text("PLAIN-10\tcoffee video\n")
    (tmp_path / "test.vid-titles.queries").write_text("PLAIN-21\tunjudged video\n")
    (tmp_path / "dev.all.queries").write_text("PLAIN-10\tcoffee and the long page text\n")
    (tmp_path / "test.all.queries").write_text("PLAIN-20\tbroccoli and the long page text\n")
    return tmp_path


def test_read_docs_strips_trailing_space_and_needs_no_final_newline(nf_root):
    assert read_nfcorpus_docs(nf_root / "dev.docs") == [
        Doc("MED-1", "deep fried foods acrylamide"),
        Doc("MED-2", "ddt breast milk"),
        Doc("MED-3", "coffee liver"),
    ]


def test_read_queries_crlf_and_bom(tmp_path):
    path = tmp_path / "q.queries"
    path.write_bytes(b"\xef\xbb\xbfPLAIN-1\twhy deep fried foods\r\nPLAIN-2\tddt\r\n")
    assert read_nfcorpus_queries(path) == [Query("PLAIN-1", "why deep fried foods"), Query("PLAIN-2", "ddt")]


def test_line_without_tab_names_file_and_line(tmp_path):
    path = tmp_path / "dev.docs"
    path.write_text("MED-1\tfine \nMED-2 no tab here \nMED-3\tfine ")
    with pytest.raises(FormatError) as info:
        read_nfcorpus_docs(path)
    assert str(info.value).startswith(f"{path}:2: expected ID<TAB>TEXT")
    assert info.value.line == 2


def test_empty_id_is_an_error(tmp_path):
    path = tmp_path / "x.queries"
    path.write_text("PLAIN-1\tok\n\tno id\n")
    with pytest.raises(FormatError, match=r"x\.queries:2: expected ID<TAB>TEXT"):
        read_nfcorpus_queries(path)


def test_empty_text_is_kept_with_one_warning(tmp_path):
    path = tmp_path / "dev.docs"
    path.write_text("MED-1\t \nMED-2\tok \nMED-3\t")
    with pytest.warns(DataWarning, match=r"2 line\(s\) with empty text \(first at line 1\)") as record:
        docs = read_nfcorpus_docs(path)
    assert len(record) == 1
    assert docs[0] == Doc("MED-1", "")


def test_non_utf8_bytes_warn_once(tmp_path):
    path = tmp_path / "dev.titles.queries"
    path.write_bytes("PLAIN-1\tcaf\xe9\nPLAIN-2\tna\xefve\n".encode("cp1252"))
    with pytest.warns(DataWarning, match=r"2 line\(s\) were not valid UTF-8 \(first at line 1\)") as record:
        queries = read_nfcorpus_queries(path)
    assert len(record) == 1
    assert [q.text for q in queries] == ["café", "naïve"]


def test_load_without_train_docs(nf_root):
    with pytest.warns(DataWarning) as record:
        collection = load_nfcorpus(nf_root)
    assert len(record) == 1
    message = str(record[0].message)
    assert "train.2-1-0.qrel" in message and "dropped 2 qrel(s)" in message and "2 unknown documents" in message

    assert collection.name == "nfcorpus" and collection.task == ADHOC
    assert collection.measures == ("nDCG@10", "AP", "P@10")
    assert sorted(collection.docs) == ["MED-1", "MED-2", "MED-3", "MED-4"]
    assert collection.docs["MED-4"] == Doc("MED-4", "broccoli sulforaphane")
    assert list(collection.splits) == ["train", "dev", "test"]
    train = collection.split("train")
    assert train.queries["PLAIN-1"] == Query("PLAIN-1", "why deep fried foods may cause cancer")
    assert train.qrels == [Qrel("PLAIN-1", "MED-1", 2), Qrel("PLAIN-2", "MED-4", 1)]
    assert collection.split("dev").qrels == [Qrel("PLAIN-10", "MED-3", 2), Qrel("PLAIN-10", "MED-2", 1)]
    assert collection.split("test").candidates is None

    notes = " ".join(collection.notes)
    assert "titles.queries" in notes and "2-1-0.qrel" in notes
    assert "train.docs missing" in notes and "(4 documents)" in notes
    assert "train: dropped 2 of 4 qrels" in notes


def test_load_with_train_docs_is_silent(nf_root):
    (nf_root / "train.docs").write_text("MED-1\tdeep fried foods acrylamide \nMED-8\tx \nMED-9\ty ")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        collection = load_nfcorpus(nf_root)
    assert len(collection.docs) == 6
    assert len(collection.split("train").qrels) == 4
    assert not any("missing" in note or "dropped" in note for note in collection.notes)


def test_conflicting_doc_text_keeps_first_and_warns_once(nf_root):
    (nf_root / "test.docs").write_text("MED-2\tsomething else \nMED-3\tanother text \nMED-4\tbroccoli ")
    with pytest.warns(DataWarning) as record:
        collection = load_nfcorpus(nf_root)
    conflicts = [str(w.message) for w in record if "different text" in str(w.message)]
    assert len(conflicts) == 1
    assert "2 document id(s)" in conflicts[0] and "MED-2 in test.docs" in conflicts[0]
    assert collection.docs["MED-2"].text == "ddt breast milk"


def test_graded_qrels_option(nf_root):
    with pytest.warns(DataWarning, match="train.3-2-1.qrel"):
        collection = load_nfcorpus(nf_root, qrels="3-2-1")
    assert len(collection.split("train").qrels) == 3
    assert len(collection.split("test").qrels) == 2
    assert any("3-2-1.qrel" in note for note in collection.notes)


def test_partial_query_set_restricts_qrels_silently(nf_root):
    with pytest.warns(DataWarning) as record:
        collection = load_nfcorpus(nf_root, queries="vid-titles")
    # Only the unknown-document warning for train (PLAIN-2 -> MED-8); PLAIN-1's qrels leave without a warning.
    assert len(record) == 1 and "1 unknown documents" in str(record[0].message)
    assert collection.split("train").qrels == [Qrel("PLAIN-2", "MED-4", 1)]
    assert collection.split("test").qrels == []
    assert list(collection.split("test").queries) == ["PLAIN-21"]


def test_missing_query_file_leaves_split_out(nf_root):
    with pytest.warns(DataWarning, match=r"train\.all\.queries: not found"):
        collection = load_nfcorpus(nf_root, queries="all")
    assert list(collection.splits) == ["dev", "test"]
    assert collection.split("dev").queries["PLAIN-10"].text == "coffee and the long page text"
    assert any("train left out" in note for note in collection.notes)


def test_bad_options_and_missing_files(nf_root, tmp_path):
    with pytest.raises(ValueError, match="unknown NFCorpus query set 'title'"):
        load_nfcorpus(nf_root, queries="title")
    with pytest.raises(ValueError, match="unknown NFCorpus qrels '1-0'"):
        load_nfcorpus(nf_root, qrels="1-0")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no NFCorpus docs file"):
        load_nfcorpus(empty)
    (nf_root / "test.2-1-0.qrel").unlink()
    with pytest.raises(FileNotFoundError, match=r"test\.2-1-0\.qrel"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the train qrels warning comes first
        load_nfcorpus(nf_root)


# --- the real collection -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nfcorpus_loaded(shared_data):
    with pytest.warns(DataWarning) as record:
        collection = load_nfcorpus(shared_data / "nfcorpus")
    return collection, [str(w.message) for w in record]


@pytest.mark.integration
def test_real_docs(shared_data, nfcorpus_loaded):
    collection, _ = nfcorpus_loaded
    dev = read_nfcorpus_docs(shared_data / "nfcorpus" / "dev.docs")
    test = read_nfcorpus_docs(shared_data / "nfcorpus" / "test.docs")
    assert (len(dev), len(test)) == (3193, 3162)
    assert len({d.doc_id for d in dev} & {d.doc_id for d in test}) == 2960
    assert len(collection.docs) == 3395
    assert all(doc.text and doc.text == doc.text.strip() for doc in collection.docs.values())


@pytest.mark.integration
def test_real_queries_and_qrels(nfcorpus_loaded):
    collection, warned = nfcorpus_loaded
    assert {name: len(s.queries) for name, s in collection.splits.items()} == {"train": 2594, "dev": 325, "test": 325}
    assert len(collection.split("dev").qrels) == 11385
    assert len(collection.split("test").qrels) == 12334
    train = collection.split("train").qrels
    assert len(train) == 110575 - 500
    assert len({q.query_id for q in train}) == 2590 - 27
    # One warning, for the train qrels; the overlapping dev/test documents have identical text.
    assert len(warned) == 1 and "dropped 500 qrel(s)" in warned[0] and "train.2-1-0.qrel" in warned[0]
    assert any("train.docs missing" in note for note in collection.notes)


@pytest.mark.integration
def test_real_graded_qrels(shared_data):
    with pytest.warns(DataWarning, match="dropped 555 qrel"):
        collection = load_nfcorpus(shared_data / "nfcorpus", qrels="3-2-1")
    counts = {name: len(s.qrels) for name, s in collection.splits.items()}
    assert counts == {"train": 139350 - 555, "dev": 14589, "test": 15820}
