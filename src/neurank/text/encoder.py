"""Text -> ids: the one interface every text reaches a model through, and the word encoder behind it today.

    encoder = WordEncoder(Tokenizer(), vocab, max_query_len=20, max_doc_len=200)
    encoder.encode_queries(["who wrote hamlet"])      # [[ids...]], truncated, never empty
    entries = encoder.to_dict()                       # {"vocab": ..., "tokenizer": ..., "text": {...}}
    encoder = encoder_from_dict(entries)              # the same encoder again

Examples for the datasets, the re-rankers, checkpoints and the ONNX metadata all go through a `TextEncoder`, so a
second kind (a pretrained model's word pieces) is one more class and one more entry in `ENCODERS`, not a second
pipeline. `to_dict` gives the entries a checkpoint (and an exported ONNX file's metadata) holds beside the model:
for the word encoder exactly the `vocab`, `tokenizer` and `text` entries those files have always held, so old
files load unchanged. A kind other than the word encoder names itself in `text["kind"]`; files without it are word
encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from neurank.collections.errors import warn_data
from neurank.text.tokenizer import Tokenizer
from neurank.text.vocab import UNK_ID, Vocab


@runtime_checkable
class TextEncoder(Protocol):
    """What turns query and document texts into the ids a model reads.

    Attributes:
        max_query_len, max_doc_len: the most ids a query / document is encoded to.
        vocab_size: the number of ids (PAD and UNK included): the size of the model's embedding table.
    """

    max_query_len: int
    max_doc_len: int

    @property
    def vocab_size(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each query text: 1..max_query_len ids each."""
        ...

    def encode_docs(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each document text: 1..max_doc_len ids each."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe entries that `encoder_from_dict` rebuilds this encoder from (checkpoints, ONNX metadata)."""
        ...


class WordEncoder:
    """Words -> truncated vocabulary ids, each distinct text tokenised once and cached.

    Identical texts share one id list (the same list object), so a sentence that is a candidate for several
    queries costs its memory once. Cached lists must not be modified. A text with no tokens becomes the single id
    UNK_ID, with one `DataWarning` giving the count (see `neurank.data.examples`).

    Args:
        tokenizer: the neural model's tokenizer (not necessarily BM25's).
        vocab: maps tokens to ids; unknown tokens become UNK_ID.
        max_query_len, max_doc_len: keep the first this many ids.
    """

    kind = "word"

    def __init__(self, tokenizer: Tokenizer, vocab: Vocab, max_query_len: int = 20, max_doc_len: int = 200):
        if max_query_len < 1 or max_doc_len < 1:
            raise ValueError(f"max_query_len and max_doc_len must be >= 1, got {max_query_len}, {max_doc_len}")
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.max_query_len = max_query_len
        self.max_doc_len = max_doc_len
        self._queries: dict[str, list[int]] = {}
        self._docs: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_queries(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each query text, at most `max_query_len`, never empty."""
        return self._encode(texts, self._queries, self.max_query_len, "query")

    def encode_docs(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each document text, at most `max_doc_len`, never empty."""
        return self._encode(texts, self._docs, self.max_doc_len, "document")

    def _encode(self, texts: Sequence[str], cache: dict[str, list[int]], max_len: int, kind: str) -> list[list[int]]:
        new = list(dict.fromkeys(text for text in texts if text not in cache))
        if new:
            empty = 0
            for text, tokens in zip(new, self.tokenizer.tokenize_batch(new), strict=True):
                ids = self.vocab.encode(tokens[:max_len])
                if not ids:
                    empty += 1
                    ids = [UNK_ID]
                cache[text] = ids
            if empty:
                warn_data(
                    f"{empty} of {len(new)} distinct {kind} texts have no tokens after tokenisation; "
                    "each is kept as the single token UNK"
                )
        return [cache[text] for text in texts]

    def to_dict(self) -> dict[str, Any]:
        """The `vocab`, `tokenizer` and `text` entries of a checkpoint or of ONNX metadata (their format since 0.1)."""
        return {
            "vocab": self.vocab.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "text": {"max_query_len": self.max_query_len, "max_doc_len": self.max_doc_len},
        }

    @classmethod
    def from_dict(cls, entries: Mapping[str, Any], source: str | Path = "<text encoder dict>") -> WordEncoder:
        """Rebuild from `to_dict()` output (or a whole checkpoint / ONNX metadata dict holding those entries).

        Raises:
            KeyError, TypeError: an entry is missing or malformed. FormatError: the vocabulary is malformed (names
            `source`). ValueError: unknown tokenizer settings or bad lengths.
        """
        text = entries["text"]
        return cls(
            Tokenizer.from_dict(entries["tokenizer"]),
            Vocab.from_dict(entries["vocab"], source=source),
            text["max_query_len"],
            text["max_doc_len"],
        )


# Encoder kinds by the name a file's `text["kind"]` gives; files without one hold a word encoder.
ENCODERS: dict[str, Callable[..., TextEncoder]] = {"word": WordEncoder.from_dict}


def encoder_from_dict(entries: Mapping[str, Any], source: str | Path = "<text encoder dict>") -> TextEncoder:
    """The encoder that `TextEncoder.to_dict()` described, of the kind it names.

    Args:
        entries: `to_dict()` output, or a whole checkpoint / ONNX metadata dict (other keys are ignored).
        source: the file the entries came from, for error messages.
    Raises:
        KeyError, TypeError: missing or malformed entries. ValueError: an unknown kind, or a malformed setting.
    """
    kind = entries["text"].get("kind", "word")
    if kind not in ENCODERS:
        raise ValueError(f"{source}: unknown text encoder kind {kind!r}; this neurank reads {', '.join(ENCODERS)}")
    return ENCODERS[kind](entries, source=source)
