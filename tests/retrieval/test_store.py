"""The document store: texts written once, read back by id or in order, from memory-mapped files."""

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurank.collections import Doc
from neurank.retrieval import DocumentStore, DocumentStoreWriter

# Any text, lone surrogates included (JSON can carry them), and ids that share prefixes.
TEXT = st.text(st.characters(codec=None), max_size=40)
IDS = st.lists(st.text(st.characters(), min_size=0, max_size=6), unique=True, max_size=30)


@settings(max_examples=60, deadline=None)
@given(ids=IDS, data=st.data())
def test_texts_round_trip_by_id_and_in_order(tmp_path_factory, ids, data):
    docs = [Doc(doc_id, data.draw(TEXT)) for doc_id in ids]
    store = DocumentStore.write(iter(docs), tmp_path_factory.mktemp("store") / "docs")
    assert len(store) == len(docs)
    assert list(store) == ids
    assert list(store.values()) == docs
    assert dict(store.items()) == {doc.doc_id: doc for doc in docs}
    for row, doc in enumerate(docs):
        assert store[doc.doc_id] == doc
        assert store.row(doc.doc_id) == row
        assert store.doc_at(row) == doc
    absent = data.draw(st.text(max_size=7).filter(lambda t: t not in set(ids)))
    assert absent not in store
    assert store.get(absent) is None
    with pytest.raises(KeyError):
        store[absent]


def test_lone_surrogates_and_astral_characters_keep_their_order(tmp_path):
    docs = [Doc("\ud800", "lone \udfff"), Doc("\U0001f600", "emoji \U0001f600"), Doc("\uffff", ""), Doc("", "no id")]
    store = DocumentStore.write(docs, tmp_path / "docs")
    assert [store[doc.doc_id] for doc in docs] == docs
    assert list(store.values()) == docs


def test_a_store_pickles_by_reopening_its_folder(tmp_path):
    store = DocumentStore.write([Doc("b", "second"), Doc("a", "first")], tmp_path / "docs")
    copy = pickle.loads(pickle.dumps(store))
    assert copy["a"] == Doc("a", "first") and list(copy) == ["b", "a"]


def test_a_store_replaces_a_store_but_never_another_folder(tmp_path):
    DocumentStore.write([Doc("a", "old")], tmp_path / "docs")
    assert dict(DocumentStore.write([Doc("b", "new")], tmp_path / "docs")) == {"b": Doc("b", "new")}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a document store"):
        DocumentStore.write([Doc("a", "x")], tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_repeated_id_is_refused_and_no_store_is_left(tmp_path):
    with pytest.raises(ValueError, match="'x' is given twice \\(documents 1 and 3\\)"):
        DocumentStore.write([Doc("x", "1"), Doc("y", "2"), Doc("x", "3")], tmp_path / "docs")
    assert list(tmp_path.iterdir()) == []


def test_the_writer_fills_the_store_while_another_reader_consumes_the_documents(tmp_path):
    docs = [Doc(str(i), f"text {i}") for i in range(5)]
    with DocumentStoreWriter(tmp_path / "docs") as writer:
        assert [doc.doc_id for doc in writer.passing(docs)] == ["0", "1", "2", "3", "4"]
    assert list(DocumentStore(tmp_path / "docs").values()) == docs


def test_opening_something_else_or_a_damaged_store_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a neurank document store"):
        DocumentStore(tmp_path)
    DocumentStore.write([Doc("a", "some text")], tmp_path / "docs")
    with open(tmp_path / "docs" / "texts.bin", "r+b") as handle:
        handle.truncate(3)
    with pytest.raises(ValueError, match="do not agree"):
        DocumentStore(tmp_path / "docs")
    with pytest.raises(FileExistsError, match="empty folder"):
        DocumentStoreWriter(tmp_path / "docs")
