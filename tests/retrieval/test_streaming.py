"""Streaming indexing: the same index as bm25s builds from all token lists at once, memory-mapped loading, and
indexing a corpus file in one pass."""

import json
import warnings

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurank.collections import DataWarning, Doc, FormatError, Query, load_collection
from neurank.collections.beir import iter_beir_corpus, read_beir_corpus
from neurank.retrieval import (
    BM25Config,
    BM25Retriever,
    DocumentStore,
    build_index,
    file_fingerprint,
    index_corpus_file,
)
from neurank.retrieval.bm25 import _Blocks
from neurank.text import Tokenizer

DOCS = [
    Doc("d1", "neural ranking models for search"),
    Doc("d2", "bm25 is a strong ranking baseline baseline"),
    Doc("d3", "?!"),  # no tokens: a document of length 0
    Doc("d4", "kernel pooling for soft matching in search search search"),
    Doc("d5", "cooking pasta with tomato sauce"),
    Doc("d6", "the tomato is a fruit"),
]
METHODS = ["lucene", "robertson", "atire", "bm25l", "bm25+"]


def reference_index(texts, tokenizer, config):
    """What `BM25Retriever.index` did before it streamed: bm25s indexing every token list at once."""
    bm25 = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
    bm25.index(tokenizer.tokenize_batch(texts), show_progress=False)
    return bm25


def postings(bm25):
    """{term: (document indices, BM25 weights as raw bits)}: the index, whatever ids the terms were given."""
    scores = bm25.scores
    out = {}
    for term, term_id in bm25.vocab_dict.items():
        if term == "":
            continue
        part = slice(scores["indptr"][term_id], scores["indptr"][term_id + 1])
        out[term] = (scores["indices"][part].tolist(), np.asarray(scores["data"][part]).view(np.uint32).tolist())
    return out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_streamed_index_is_bm25s_index_bit_for_bit(method, batch_size):
    config = BM25Config(k1=1.2, b=0.75, method=method)
    tokenizer = Tokenizer()
    with pytest.warns(DataWarning, match="no tokens"):
        streamed = BM25Retriever(tokenizer, config).index(iter(DOCS), batch_size=batch_size)
    reference = reference_index([d.text for d in DOCS], tokenizer, config)
    assert postings(streamed.bm25) == postings(reference)
    assert streamed.bm25.scores["num_docs"] == reference.scores["num_docs"] == len(DOCS)
    for name in ("data", "indices", "indptr"):
        assert streamed.bm25.scores[name].dtype == reference.scores[name].dtype
    if reference.nonoccurrence_array is not None:
        by_term = [streamed.bm25.vocab_dict[t] for t in postings(reference)]
        by_term_reference = [reference.vocab_dict[t] for t in postings(reference)]
        assert (
            streamed.bm25.nonoccurrence_array[by_term].tolist()
            == reference.nonoccurrence_array[by_term_reference].tolist()
        )
    for query in ["tomato search", "baseline", "unknownword", "search search ranking"]:
        tokens = tokenizer.tokenize(query)
        assert streamed.bm25.get_scores(tokens).tolist() == reference.get_scores(tokens).tolist()


WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"])


@settings(max_examples=40, deadline=None)
@given(
    texts=st.lists(st.lists(WORDS, max_size=12).map(" ".join), min_size=1, max_size=25),
    batch_size=st.integers(1, 9),
    k1=st.floats(0.1, 3.0),
    b=st.floats(0.0, 1.0),
)
def test_streamed_scores_equal_bm25s_scores_for_any_corpus(texts, batch_size, k1, b):
    if not any(texts):
        return  # nothing to index; covered by the zero-token test
    config = BM25Config(k1=k1, b=b)
    docs = [Doc(str(i), text) for i, text in enumerate(texts)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # empty texts are reported; not what this test is about
        streamed = BM25Retriever(Tokenizer(), config).index(docs, batch_size=batch_size)
    reference = reference_index(texts, Tokenizer(), config)
    assert postings(streamed.bm25) == postings(reference)


@pytest.mark.filterwarnings("ignore::neurank.collections.DataWarning")
def test_registered_collection_index_is_unchanged(shared_data):
    collection = load_collection("cranfield", shared_data)
    retriever = BM25Retriever().index(collection.docs.values())
    reference = reference_index([d.text for d in collection.docs.values()], retriever.tokenizer, retriever.config)
    assert postings(retriever.bm25) == postings(reference)


def test_a_corpus_without_any_token_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="none of the 2 documents has a token"), pytest.warns(DataWarning):
        BM25Retriever().index([Doc("a", "?"), Doc("b", "")])


def test_mmap_load_gives_the_same_runs_and_keeps_the_arrays_on_disk(tmp_path):
    queries = [Query("q1", "tomato"), Query("q2", "neural search"), Query("q3", "baseline ranking")]
    with pytest.warns(DataWarning, match="no tokens"):
        built = build_index(DOCS, tmp_path / "index", config=BM25Config(k1=1.1, b=0.5))
    mapped = BM25Retriever.load(tmp_path / "index", mmap=True)
    loaded = BM25Retriever.load(tmp_path / "index")
    assert isinstance(mapped.bm25.scores["data"], np.memmap)
    assert not isinstance(loaded.bm25.scores["data"], np.memmap)
    assert mapped.search(queries) == loaded.search(queries) == built.search(queries)
    assert mapped.scores("tomato sauce").tolist() == built.scores("tomato sauce").tolist()
    assert mapped.doc_ids == [d.doc_id for d in DOCS]


def test_build_index_keeps_the_texts_in_a_store_that_travels_with_the_index(tmp_path):
    with pytest.warns(DataWarning):
        built = build_index(DOCS, tmp_path / "index")
    assert dict(built.store.items()) == {d.doc_id: d for d in DOCS}
    loaded = BM25Retriever.load(tmp_path / "index", mmap=True)
    assert loaded.store["d5"] == DOCS[4]
    loaded.save(tmp_path / "copy")  # save copies the store along
    assert list(BM25Retriever.load(tmp_path / "copy").store.values()) == DOCS
    with pytest.warns(DataWarning):
        assert build_index(DOCS, tmp_path / "bare", store=False).store is None
    assert BM25Retriever.load(tmp_path / "bare").store is None


def test_an_existing_index_is_replaced_but_any_other_folder_is_refused(tmp_path):
    with pytest.warns(DataWarning):
        build_index(DOCS, tmp_path / "index")
    build_index(DOCS[:2], tmp_path / "index")
    assert BM25Retriever.load(tmp_path / "index").doc_ids == ["d1", "d2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for write in (lambda: build_index(DOCS[:2], mine), lambda: BM25Retriever().index(DOCS[:2]).save(mine)):
        with pytest.raises(FileExistsError, match="not a neurank BM25 index"):
            write()
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def write_corpus(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


CORPUS = [
    json.dumps({"_id": "d1", "title": "Tomato", "text": "the tomato is a fruit"}),
    "",
    json.dumps({"_id": 7, "text": "  cooking pasta with tomato sauce "}),
    json.dumps({"_id": "d3", "title": "", "text": "neural ranking for search", "metadata": {"year": 2020}}),
]


def test_streaming_corpus_reader_gives_the_documents_of_the_beir_reader(tmp_path):
    path = write_corpus(tmp_path / "corpus.jsonl", CORPUS)
    assert list(iter_beir_corpus(path)) == read_beir_corpus(path)
    assert list(iter_beir_corpus(path))[0] == Doc("d1", "Tomato the tomato is a fruit")


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"_id": "x", "text": "unterminated', "invalid JSON"),
        ('["d9", "a list"]', "a JSON object"),
        ('{"_id": "d9"}', "key 'text'"),
        ('{"_id": "d9", "text": 5}', "a string for key 'text'"),
        ('{"_id": " ", "text": "blank id"}', "a non-empty '_id'"),
        ('{"_id": "d1", "text": "again"}', "a new document id"),
    ],
)
def test_a_malformed_corpus_line_is_named_by_file_and_line_and_nothing_is_written(tmp_path, line, expected):
    path = write_corpus(tmp_path / "corpus.jsonl", [*CORPUS, line])
    with pytest.raises(FormatError, match=expected) as streamed:
        index_corpus_file(path, tmp_path / "index")
    assert str(streamed.value).startswith(f"{path}:5: expected")
    with pytest.raises(FormatError) as whole:
        read_beir_corpus(path)
    assert str(streamed.value) == str(whole.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_index_corpus_file_streams_a_corpus_into_a_searchable_index(tmp_path):
    path = write_corpus(tmp_path / "corpus.jsonl", CORPUS)
    retriever = index_corpus_file(path, tmp_path / "index")
    in_memory = BM25Retriever().index(read_beir_corpus(path))
    queries = [Query("q", "tomato"), Query("r", "search")]
    assert BM25Retriever.load(tmp_path / "index", mmap=True).search(queries) == in_memory.search(queries)
    assert retriever.store["7"] == Doc("7", "cooking pasta with tomato sauce")
    assert isinstance(DocumentStore(tmp_path / "index" / "docs"), DocumentStore)
    # The index remembers its file, so a caller can tell when the corpus changed after indexing.
    assert BM25Retriever.load(tmp_path / "index").source == file_fingerprint(path) == retriever.source
    write_corpus(path, CORPUS[:2])
    assert file_fingerprint(path) != retriever.source


@given(parts=st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=9), max_size=8), block=st.integers(1, 5))
def test_postings_grow_by_blocks_and_come_back_whole(parts, block):
    blocks = _Blocks(np.int32, block=block)
    for part in parts:
        blocks.extend(np.asarray(part, dtype=np.int64))
    assert blocks.take().tolist() == [value for part in parts for value in part]
    assert blocks.blocks == []
