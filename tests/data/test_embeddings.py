"""Word-vector loaders on small files written here, coverage by hand, word2vec training, the Brown zip reader."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from neurank.collections import DataWarning, FormatError
from neurank.data import brown_corpus_sentences, embeddings_from_keyed_vectors, load_embeddings, train_word2vec
from neurank.text import PAD_ID, UNK_ID, Tokenizer, Vocab

VECTORS = {"the": [0.1, 0.2, 0.3], "cat": [1.0, 2.0, 3.0], "dog": [4.0, 5.0, 6.0], "bird": [7.0, 8.0, 9.0]}
GLOVE = "".join(f"{word} {' '.join(map(str, vector))}\n" for word, vector in VECTORS.items())


@pytest.fixture
def vocab() -> Vocab:
    return Vocab.from_counter({"cat": 5, "dog": 3, "fish": 2})  # ids: cat 2, dog 3, fish 4


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def write_binary(path, vectors: dict[str, list[float]], count: int | None = None):
    dim = len(next(iter(vectors.values())))
    data = f"{count or len(vectors)} {dim}\n".encode()
    for word, vector in vectors.items():
        data += word.encode() + b" " + struct.pack(f"<{dim}f", *vector) + b"\n"
    path.write_bytes(data)
    return path


def check_matrix(matrix: torch.Tensor, coverage, vocab: Vocab):
    assert matrix.shape == (5, 3) and matrix.dtype == torch.float32
    assert matrix[PAD_ID].eq(0).all()
    assert matrix[vocab.token_to_id("cat")].tolist() == [1.0, 2.0, 3.0]
    assert matrix[vocab.token_to_id("dog")].tolist() == [4.0, 5.0, 6.0]
    assert matrix[UNK_ID].abs().sum() > 0 and matrix[vocab.token_to_id("fish")].abs().sum() > 0  # random rows
    assert (coverage.vocab_size, coverage.found, coverage.dim) == (3, 2, 3)
    assert coverage.vocab_coverage == pytest.approx(100 * 2 / 3)
    assert coverage.token_coverage == pytest.approx(100 * (5 + 3) / (5 + 3 + 2))
    assert coverage.oov_examples == ("fish",)
    assert "2 of 3 words found" in str(coverage)


def test_glove(tmp_path, vocab):
    matrix, coverage = load_embeddings(write(tmp_path / "glove.txt", GLOVE), vocab)
    check_matrix(matrix, coverage, vocab)
    assert coverage.source.endswith("glove.txt")


@pytest.mark.parametrize("format", ["word2vec", "fasttext", "auto"])
def test_word2vec_text_and_fasttext_vec(tmp_path, vocab, format):
    # fastText writes a space before each newline; accept it.
    text = "4 3\n" + GLOVE.replace("\n", " \n")
    check_matrix(*load_embeddings(write(tmp_path / "wiki.vec", text), vocab, format=format), vocab)


def test_word2vec_binary_by_hand(tmp_path, vocab):
    spaces = float(np.frombuffer(b"    ", "<f4")[0])  # a value whose bytes are all 0x20, the word separator
    vectors = {**VECTORS, "fish": [spaces, 1.0, spaces]}
    matrix, coverage = load_embeddings(write_binary(tmp_path / "vectors.bin", vectors), vocab)
    assert matrix[vocab.token_to_id("fish")].tolist() == [spaces, 1.0, spaces]
    assert coverage.found == 3 and matrix[vocab.token_to_id("dog")].tolist() == [4.0, 5.0, 6.0]


def test_word2vec_binary_written_by_gensim(tmp_path, vocab):
    models = pytest.importorskip("gensim.models")
    keyed = models.KeyedVectors(3)
    keyed.add_vectors(list(VECTORS), np.array(list(VECTORS.values()), dtype=np.float32))
    keyed.save_word2vec_format(str(tmp_path / "gensim.bin"), binary=True)
    check_matrix(*load_embeddings(tmp_path / "gensim.bin", vocab, format="word2vec_binary"), vocab)


def test_gzipped_file(tmp_path, vocab):
    with gzip.open(tmp_path / "glove.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write(GLOVE)
    check_matrix(*load_embeddings(tmp_path / "glove.txt.gz", vocab), vocab)


def test_random_rows_are_seeded_and_scaled_to_the_found_vectors(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(100)]
    path = write(
        tmp_path / "big.txt", "".join(f"{w} {' '.join(f'{v:.4f}' for v in rng.normal(0, 5, 50))}\n" for w in words)
    )
    vocab = Vocab(words + [f"oov{i}" for i in range(20)])
    matrix, coverage = load_embeddings(path, vocab, seed=1)
    assert coverage.found == 100 and coverage.token_coverage is None  # a vocabulary without counts
    random_rows = matrix[[UNK_ID, *range(102, 122)]]  # (21, 50)
    assert float(random_rows.std()) == pytest.approx(float(matrix[2:102].std()), rel=0.15)
    assert torch.equal(load_embeddings(path, vocab, seed=1)[0], matrix)
    assert not torch.equal(load_embeddings(path, vocab, seed=2)[0][UNK_ID], matrix[UNK_ID])


def test_words_with_spaces_are_skipped_and_first_duplicate_wins(tmp_path, vocab):
    text = GLOVE + "new york 0.5 0.5 0.5\ncat 9 9 9\n"
    matrix, coverage = load_embeddings(write(tmp_path / "g.txt", text), vocab)
    assert matrix[vocab.token_to_id("cat")].tolist() == [1.0, 2.0, 3.0] and coverage.found == 2


def test_no_word_found_warns(tmp_path):
    with pytest.warns(DataWarning, match="no vocabulary word has a vector"):
        matrix, coverage = load_embeddings(write(tmp_path / "g.txt", GLOVE), Vocab(["zebra"]))
    assert coverage.found == 0 and matrix[PAD_ID].eq(0).all() and matrix[2].abs().sum() > 0


@pytest.mark.parametrize(
    "name, text, format, line, expected",
    [
        (
            "short.txt",
            "cat 1 2 3\ndog 4 5 6\nbird 7 8\n",
            "glove",
            3,
            "a word followed by 3 numbers (the dimension of line 1)",
        ),
        ("long.txt", "cat 1 2 3\ndog 4 5 6 7\n", "glove", 2, "a word followed by 3 numbers"),
        ("nan.txt", "cat 1 x 3\n", "glove", 1, "3 numbers after the word 'cat'"),
        ("dim.vec", "2 3\ncat 1 2 3 4\ndog 1 2 3\n", "auto", 2, "3 numbers (the header's dimension)"),
        ("noheader.vec", GLOVE, "word2vec", 1, "a header line 'count dim'"),
        ("header.txt", "4 3\n" + GLOVE, "glove", 1, "format='word2vec'"),
        ("count.vec", "5 3\n" + GLOVE, "word2vec", None, "5 vectors (the header's count)"),
    ],
)
def test_malformed_text_files_name_file_line_and_expectation(tmp_path, vocab, name, text, format, line, expected):
    path = write(tmp_path / name, text)
    with pytest.raises(FormatError) as caught:
        load_embeddings(path, vocab, format=format)
    assert caught.value.path == str(path) and caught.value.line == line
    assert expected in str(caught.value) and str(path) in str(caught.value)


def test_truncated_binary_file(tmp_path, vocab):
    path = write_binary(tmp_path / "cut.bin", VECTORS, count=5)
    with pytest.raises(FormatError, match="the file ends inside vector 5"):
        load_embeddings(path, vocab)


def test_from_keyed_vectors_or_a_dict(vocab):
    check_matrix(*embeddings_from_keyed_vectors({w: np.array(v) for w, v in VECTORS.items()}, vocab), vocab)


SENTENCES = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "ate", "the", "bone"],
    ["a", "cat", "and", "a", "dog"],
]
CORPUS = SENTENCES * 30
W2V = dict(dim=8, window=2, min_count=1, epochs=3)
W2V_SCRIPT = f"""
import sys
from neurank.data import train_word2vec
vectors = train_word2vec({SENTENCES!r} * 30, seed=5, **{W2V!r})
sys.stdout.write(vectors["cat"].tobytes().hex())
"""


def test_train_word2vec_is_deterministic_for_a_seed():
    pytest.importorskip("gensim")
    first = train_word2vec(CORPUS, seed=5, **W2V)
    second = train_word2vec(iter(CORPUS), seed=5, **W2V)  # a one-pass iterator is read into a list first
    assert first.vector_size == 8 and set(first.index_to_key) == {w for s in CORPUS for w in s}
    assert np.array_equal(first.vectors, second.vectors)
    assert not np.array_equal(first.vectors, train_word2vec(CORPUS, seed=6, **W2V).vectors)
    env = {**os.environ, "PYTHONHASHSEED": "123"}  # a fresh interpreter with other str hashes
    fresh = subprocess.run([sys.executable, "-c", W2V_SCRIPT], capture_output=True, text=True, check=True, env=env)
    assert fresh.stdout == first["cat"].tobytes().hex()


def test_train_word2vec_without_gensim_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim", None)
    with pytest.raises(ImportError, match=r"pip install neurank\[embeddings\]"):
        train_word2vec(CORPUS)


def test_brown_zip_reader(tmp_path):
    path = tmp_path / "brown.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("brown/README", "not a text / file")
        archive.writestr("brown/cats.txt", "ca01 news\n")
        archive.writestr("brown/cb02", "\n\n\tIt/pps cost/vbd 1/2/cd ./.\n")
        archive.writestr("brown/ca01", "\n\n\tThe/at Fulton/np-tl said/vbd ``/`` ok/jj ''/'' ./.\n\n\n\tNo/at ./.\n")
    assert brown_corpus_sentences(path) == [
        ["The", "Fulton", "said", "``", "ok", "''", "."],
        ["No", "."],
        ["It", "cost", "1/2", "."],
    ]
    assert brown_corpus_sentences(path, Tokenizer()) == [
        ["the", "fulton", "said", "ok"],
        ["no"],
        ["it", "cost", "1", "2"],
    ]


def test_brown_zip_reader_errors(tmp_path):
    path = tmp_path / "brown.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("brown/ca01", "\tThe/at\n\tFulton said/vbd\n")
    with pytest.raises(FormatError, match=r"brown\.zip/brown/ca01:2: expected word/tag tokens, found 'Fulton'"):
        brown_corpus_sentences(path)
    with pytest.raises(FormatError, match="a zip archive"):
        brown_corpus_sentences(write(tmp_path / "not.zip", "hello"))
