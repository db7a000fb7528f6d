"""Text -> ids: the one interface every text reaches a model through, and the word encoder behind it today.

    encoder = WordEncoder(Tokenizer(), vocab, max_query_len=20, max_doc_len=200)
    encoder.encode_queries(["who wrote hamlet"])      # [[ids...]], truncated, never empty
    entries = encoder.to_dict()                       # {"vocab": ..., "tokenizer": ..., "text": {...}}
    encoder = encoder_from_dict(entries)              # the same encoder again

    encoder = WordPieceEncoder.from_folder("path/to/hf-model")   # a pretrained model's word pieces (kind "wordpiece")

Examples for the datasets, the re-rankers, checkpoints and the ONNX metadata all go through a `TextEncoder`, so a
second kind (a pretrained model's word pieces, `WordPieceEncoder`) is one more class and one more entry
in `ENCODERS`, not a second pipeline. `to_dict` gives the entries a checkpoint (and an exported ONNX file's
metadata) holds beside the model: for the word encoder exactly the `vocab`, `tokenizer` and `text` entries those
files have always held, so old files load unchanged. A kind other than the word encoder names itself in
`text["kind"]`; files without it are word encoders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from neurank.collections.errors import warn_data
from neurank.text.tokenizer import Tokenizer
from neurank.text.vocab import PAD_ID, UNK_ID, Vocab


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
        def encode(new: list[str]) -> list[list[int]]:
            return [self.vocab.encode(tokens[:max_len]) for tokens in self.tokenizer.tokenize_batch(new)]

        return _encode_cached(
            texts,
            cache,
            encode,
            UNK_ID,
            kind,
            "have no tokens after tokenisation; each is kept as the single token UNK",
        )

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


# Names a tokenizer may give its special tokens: BERT's word pieces first, then the sentence-piece / BPE spellings.
_SPECIAL_TOKENS = {
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "pad": ("[PAD]", "<pad>"),
    "unk": ("[UNK]", "<unk>"),
}


class WordPieceEncoder:
    """Texts -> a pretrained model's word-piece ids (a Hugging Face `tokenizers` tokenizer), without special tokens.

    The model joins a query and a document itself (`[CLS] query [SEP] document [SEP]`, see
    `neurank.models.cross_encoder`), so each text is encoded alone, with no `[CLS]` / `[SEP]`, and truncated to its
    maximum length. Like `WordEncoder`, each distinct text is encoded once and cached (cached lists must not be
    modified), and a text with no word pieces becomes the single id of the tokenizer's unknown token.

    neurank pads with id 0 (`neurank.text.PAD_ID`) and models derive masks from it where none are given, so the
    tokenizer's pad token must have id 0, as it does in BERT's vocabularies (`[PAD]`); others (RoBERTa's `<pad>` is
    1) are refused. A literal pad token in a text is dropped, so id 0 never appears inside an encoded text.

    Args:
        tokenizer: a `tokenizers.Tokenizer` (the `tokenizer.json` of a Hugging Face model folder); its own
            truncation and padding settings are switched off.
        max_query_len, max_doc_len: keep the first this many word pieces.
        source: where the tokenizer came from (a folder), for messages and the record; not read again.
    Raises:
        ValueError: bad lengths, a tokenizer without `[CLS]` / `[SEP]` / unknown tokens, or one whose pad id is not 0.
    """

    kind = "wordpiece"

    def __init__(self, tokenizer: Any, max_query_len: int = 20, max_doc_len: int = 200, source: str | None = None):
        if max_query_len < 1 or max_doc_len < 1:
            raise ValueError(f"max_query_len and max_doc_len must be >= 1, got {max_query_len}, {max_doc_len}")
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.max_query_len = max_query_len
        self.max_doc_len = max_doc_len
        self.source = source
        where = source or "the tokenizer"
        ids = special_token_ids(tokenizer, where)
        self.cls_id, self.sep_id, self.unk_id = ids["cls"], ids["sep"], ids["unk"]
        self._queries: dict[str, list[int]] = {}
        self._docs: dict[str, list[int]] = {}

    @classmethod
    def from_folder(cls, folder: str | Path, max_query_len: int = 20, max_doc_len: int = 200) -> WordPieceEncoder:
        """The tokenizer of a local Hugging Face model folder (nothing is downloaded).

        Reads `tokenizer.json` with `tokenizers`; a folder without one (only `vocab.txt`, say) is read through
        `transformers.AutoTokenizer` (the `neurank[transformers]` extra) with `local_files_only=True`.

        Raises:
            FileNotFoundError: no such folder, or no tokenizer in it. ValueError: as the constructor.
        """
        return cls(load_hf_tokenizer(folder), max_query_len, max_doc_len, source=str(folder))

    @property
    def vocab_size(self) -> int:
        """Word pieces the tokenizer knows, added tokens included: the rows the model's embedding table needs."""
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))

    def encode_queries(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each query text, at most `max_query_len`, never empty, no special tokens."""
        return self._encode(texts, self._queries, self.max_query_len, "query")

    def encode_docs(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each document text, at most `max_doc_len`, never empty, no special tokens."""
        return self._encode(texts, self._docs, self.max_doc_len, "document")

    def _encode(self, texts: Sequence[str], cache: dict[str, list[int]], max_len: int, kind: str) -> list[list[int]]:
        def encode(new: list[str]) -> list[list[int]]:
            encodings = self.tokenizer.encode_batch(new, add_special_tokens=False)
            return [[i for i in encoding.ids if i != PAD_ID][:max_len] for encoding in encodings]

        return _encode_cached(
            texts,
            cache,
            encode,
            self.unk_id,
            kind,
            "have no word pieces; each is kept as the single unknown word piece",
        )

    def to_dict(self) -> dict[str, Any]:
        """`text` (with `kind` "wordpiece") and `encoder`: the whole `tokenizer.json` as a string, and its source,
        so a checkpoint or ONNX metadata rebuilds the encoder without the original folder."""
        return {
            "text": {"kind": self.kind, "max_query_len": self.max_query_len, "max_doc_len": self.max_doc_len},
            "encoder": {"tokenizer_json": self.tokenizer.to_str(), "source": self.source},
        }

    @classmethod
    def from_dict(cls, entries: Mapping[str, Any], source: str | Path = "<text encoder dict>") -> WordPieceEncoder:
        """Rebuild from `to_dict()` output (or a whole checkpoint / ONNX metadata dict holding those entries).

        Raises:
            KeyError, TypeError: an entry is missing or malformed. ValueError: a tokenizer that does not parse (names
            `source`), or bad lengths.
        """
        from tokenizers import Tokenizer as HFTokenizer

        text, encoder = entries["text"], entries["encoder"]
        try:
            tokenizer = HFTokenizer.from_str(encoder["tokenizer_json"])
        except Exception as error:  # tokenizers raises its own Exception for malformed JSON
            raise ValueError(f"{source}: the stored word-piece tokenizer does not parse ({error})") from None
        return cls(tokenizer, text["max_query_len"], text["max_doc_len"], source=encoder.get("source"))


def special_token_ids(tokenizer: Any, source: str = "the tokenizer") -> dict[str, int]:
    """The ids of a `tokenizers.Tokenizer`'s `cls`, `sep`, `unk` and `pad` tokens (BERT's `[CLS]` ... or `<s>` ...).

    Raises:
        ValueError: one of them is missing, or the pad token's id is not 0 (`PAD_ID`, what neurank pads with).
    """
    ids: dict[str, int] = {}
    padding = tokenizer.padding  # set when tokenizer.json declares padding; it names the pad token
    for role, spellings in _SPECIAL_TOKENS.items():
        names: tuple[str, ...] = spellings
        if role == "pad" and padding is not None:
            names = (padding["pad_token"], *spellings)
        found = [tokenizer.token_to_id(name) for name in names]
        found = [i for i in found if i is not None]
        if not found:
            raise ValueError(f"{source}: no {role} token (looked for {', '.join(names)}) in the word-piece vocabulary")
        ids[role] = found[0]
    if ids["pad"] != PAD_ID:
        raise ValueError(
            f"{source}: the pad token {tokenizer.id_to_token(ids['pad'])!r} has id {ids['pad']}; neurank pads with "
            f"id {PAD_ID} and reads masks from it, so only tokenizers whose pad id is {PAD_ID} (BERT's) are supported"
        )
    return ids


# The files a Hugging Face folder's tokenizer is read from: tokenizers' own, then the vocabularies transformers reads.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def check_hf_tokenizer_files(folder: str | Path) -> None:
    """Refuse a folder that holds none of the tokenizer files `load_hf_tokenizer` reads, without reading any: a
    check that costs nothing, for checking a configuration before a model is loaded.

    Raises:
        FileNotFoundError: no such folder, or no tokenizer file in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; expected a Hugging Face model folder with tokenizer.json")
    # transformers builds a tokenizer from config.json alone (an empty BERT one: every word unknown); refuse that.
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder}: no tokenizer found (no tokenizer.json, nor any of {', '.join(_TOKENIZER_FILES[1:])}); "
            "save the model's tokenizer in the folder"
        )


def load_hf_tokenizer(folder: str | Path) -> Any:
    """The `tokenizers.Tokenizer` of a local Hugging Face model folder: its `tokenizer.json`, or, without one,
    the fast tokenizer `transformers.AutoTokenizer` builds from the folder's other files (`local_files_only`).

    Raises:
        FileNotFoundError: no such folder, or no tokenizer in it. ImportError: the folder needs `transformers`,
            which is not installed.
    """
    from tokenizers import Tokenizer as HFTokenizer

    folder = Path(folder)
    check_hf_tokenizer_files(folder)
    path = folder / "tokenizer.json"
    if path.is_file():
        try:
            return HFTokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises its own Exception for malformed JSON
            raise ValueError(f"{path}: not a readable tokenizers file ({error})") from None
    try:
        import transformers
    except ImportError:
        raise ImportError(
            f"{folder}: has no tokenizer.json; reading its other tokenizer files needs transformers: "
            'pip install "neurank[transformers]"'
        ) from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except (OSError, ValueError) as error:
        raise FileNotFoundError(f"{folder}: no tokenizer found ({error})") from None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{folder}: transformers gives no fast tokenizer for this folder; save a tokenizer.json")
    return backend


# Encoder kinds by the name a file's `text["kind"]` gives; files without one hold a word encoder.
ENCODERS: dict[str, Callable[..., TextEncoder]] = {
    "word": WordEncoder.from_dict,
    WordPieceEncoder.kind: WordPieceEncoder.from_dict,
}


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


def _encode_cached(
    texts: Sequence[str],
    cache: dict[str, list[int]],
    encode: Callable[[list[str]], list[list[int]]],
    unk_id: int,
    kind: str,
    empty_note: str,
) -> list[list[int]]:
    """Ids of `texts`, each distinct text encoded once (by `encode`, over the texts not yet in `cache`); a text with
    no ids becomes `[unk_id]`, counted in one warning (`empty_note` says what that means for this encoder)."""
    new = list(dict.fromkeys(text for text in texts if text not in cache))
    if new:
        empty = 0
        for text, ids in zip(new, encode(new), strict=True):
            if not ids:
                empty += 1
                ids = [unk_id]
            cache[text] = ids
        if empty:
            warn_data(f"{empty} of {len(new)} distinct {kind} texts {empty_note}")
    return [cache[text] for text in texts]
