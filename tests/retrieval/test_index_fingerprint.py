"""An index's fingerprint of the documents it was built from (issue 22): `search --index` refuses another
collection's index, a collection whose documents changed, and an index whose id list was edited or cut short, each
in one line naming the index and the collection; an index written before fingerprints gets the old checks and a
warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurank.collections import DataWarning, Doc
from neurank.retrieval import BM25Retriever, CollectionFingerprint, IndexMismatchError, build_index

DOCS = [
    Doc("d1", "hamlet is a tragedy written by william shakespeare"),
    Doc("d2", "paris is the capital of france"),
    Doc("d3", "the thames flows through london"),
    Doc("d4", "the mona lisa was painted by leonardo da vinci"),
    Doc("d5", "the pacific is the largest ocean"),
]
QUERIES = {"q1": "who wrote hamlet", "q2": "what is the capital of france", "q3": "which river flows through london"}
QRELS = [("q1", "d1"), ("q2", "d2"), ("q3", "d3")]


def write_beir(folder: Path, docs: list[Doc]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d.doc_id, "title": "", "text": d.text}) + "\n" for d in docs), encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()), encoding="utf-8"
    )
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in QRELS)
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edit_meta(index: Path, change) -> None:
    meta = json.loads((index / "neurank.json").read_text(encoding="utf-8"))
    change(meta)
    (index / "neurank.json").write_text(json.dumps(meta), encoding="utf-8")


def test_the_fingerprint_counts_ids_in_order_and_contents_in_any_order():
    base = CollectionFingerprint.of(DOCS)
    assert base["documents"] == len(DOCS)
    reordered = CollectionFingerprint.of(DOCS[::-1])
    assert reordered["contents"] == base["contents"] and reordered["doc_ids"] != base["doc_ids"]
    swapped = [Doc("d2", DOCS[0].text), Doc("d1", DOCS[1].text), *DOCS[2:]]  # the same ids and texts, paired anew
    assert CollectionFingerprint.of(swapped)["contents"] != base["contents"]
    edited = [*DOCS[:-1], Doc("d5", DOCS[-1].text + " too")]
    assert CollectionFingerprint.of(edited)["contents"] != base["contents"]


def test_an_index_records_its_fingerprint_and_checks_a_collection_against_it(tmp_path):
    retriever = build_index(DOCS, tmp_path / "idx")
    loaded = BM25Retriever.load(tmp_path / "idx")
    assert loaded.fingerprint == retriever.fingerprint == CollectionFingerprint.of(DOCS)
    loaded.check_collection({d.doc_id: d for d in DOCS[::-1]}, tmp_path / "idx", "mine")  # any order matches
    changed = {d.doc_id: d for d in DOCS} | {"d3": Doc("d3", "the seine flows through paris")}
    with pytest.raises(IndexMismatchError) as info:
        loaded.check_collection(changed, tmp_path / "idx", "mine")
    assert str(info.value).startswith(f"{tmp_path / 'idx'}: this index was built from other documents than mine's:")
    assert "the same 5 document ids, but the texts of some differ" in str(info.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["doc_ids"].reverse(), "the document ids (5) do not match the fingerprint written when the 5"),
        (lambda m: m["doc_ids"].pop(), "the document ids (4) do not match the fingerprint written when the 5"),
        # an older index: the id list against the index arrays (it was an IndexError in the middle of a search)
        (
            lambda m: (m["doc_ids"].pop(), m.pop("fingerprint")),
            "expected 5 document ids (the documents in the index arrays), found 4",
        ),
        (lambda m: m.update(doc_ids="d1 d2"), "expected doc_ids to be a list of strings"),
        (lambda m: m.pop("tokenizer"), "tokenizer missing"),
    ],
    ids=["reordered-ids", "shorter-id-list", "shorter-id-list-old-index", "ids-not-a-list", "no-tokenizer"],
)
def test_an_index_whose_files_do_not_agree_is_refused_on_loading(tmp_path, change, expected):
    build_index(DOCS, tmp_path / "idx", store=False)
    edit_meta(tmp_path / "idx", change)
    with pytest.raises(IndexMismatchError) as info:
        BM25Retriever.load(tmp_path / "idx")
    assert str(info.value).startswith(f"{tmp_path / 'idx' / 'neurank.json'}") and expected in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"format": 1, "doc_ids": [', ":1: expected a JSON object with format, config, tokenizer and doc_ids"),
        (b"[1, 2]", ": expected a JSON object with format, config, tokenizer and doc_ids, as `neurank index` writes"),
        (b'{"format": 1}\xff', ": expected UTF-8 JSON"),
    ],
    ids=["truncated", "a-list", "not-utf8"],
)
def test_a_broken_index_json_names_the_file_and_what_was_expected(tmp_path, cli, content, expected):
    data = write_beir(tmp_path / "coll", DOCS)
    build_index(DOCS, tmp_path / "idx", store=False)
    (tmp_path / "idx" / "neurank.json").write_bytes(content)
    status, _, err = cli("search", data, "--index", tmp_path / "idx", "--output", tmp_path / "run.txt")
    assert status == 2 and err.startswith(f"error: {tmp_path / 'idx' / 'neurank.json'}{expected}")
    assert not (tmp_path / "run.txt").exists()


def test_search_with_another_collections_index_is_one_line_and_writes_nothing(tmp_path, cli):
    mine = write_beir(tmp_path / "mine", DOCS)
    other = write_beir(tmp_path / "other", DOCS[:3])
    status, _, _ = cli("index", other, "--output", tmp_path / "idx")
    assert status == 0
    before = snapshot(tmp_path)
    status, _, err = cli("search", mine, "--index", tmp_path / "idx", "--output", tmp_path / "run.txt")
    assert status == 2
    assert err == (
        f"error: {tmp_path / 'idx'}: this index was built from other documents than {mine}'s: it holds 3 documents, "
        f"{mine} has 5; rebuild it with `neurank index {mine}`, or pass the --index built from {mine}"
    )
    assert snapshot(tmp_path) == before


def test_search_with_documents_changed_since_indexing_is_refused(tmp_path, cli):
    mine = write_beir(tmp_path / "mine", DOCS)
    assert cli("index", mine, "--output", tmp_path / "idx")[0] == 0
    # Two documents swap ids: the same ids and the same texts, so only the fingerprint of the contents can tell.
    corpus = mine / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace('"d1"', '"tmp"').replace('"d2"', '"d1"').replace('"tmp"', '"d2"'))
    before = snapshot(tmp_path)
    status, _, err = cli("search", mine, "--index", tmp_path / "idx", "--output", tmp_path / "run.txt")
    assert status == 2 and err.startswith(f"error: {tmp_path / 'idx'}: this index was built from other documents")
    assert "the same 5 document ids, but the texts of some differ from the ones indexed" in err
    assert snapshot(tmp_path) == before


def test_an_index_without_a_fingerprint_gets_the_old_checks_and_a_warning(tmp_path, cli):
    mine = write_beir(tmp_path / "mine", DOCS)
    build_index(DOCS, tmp_path / "old")
    edit_meta(tmp_path / "old", lambda m: m.pop("fingerprint"))
    with pytest.warns(DataWarning, match=r"an index without a fingerprint of its documents"):
        status, _, _ = cli("search", mine, "--index", tmp_path / "old", "--output", tmp_path / "run.txt")
    assert status == 0 and (tmp_path / "run.txt").read_text().startswith("q1 Q0 d1 1 ")
    # The old checks still hold: a subset's index is refused, not an IndexError.
    build_index(DOCS[:4], tmp_path / "old-subset", store=False)
    edit_meta(tmp_path / "old-subset", lambda m: m.pop("fingerprint"))
    status, _, err = cli("search", mine, "--index", tmp_path / "old-subset", "--output", tmp_path / "r2.txt")
    assert status == 2 and "it holds 4 documents" in err and not (tmp_path / "r2.txt").exists()
