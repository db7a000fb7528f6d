"""The text-encoder interface and the word encoder: ids, truncation, caching, and the entries checkpoints hold."""

from __future__ import annotations

import warnings

import pytest

from neurank.collections import DataWarning
from neurank.collections.errors import FormatError
from neurank.text import (
    ENCODERS,
    UNK_ID,
    TextEncoder,
    Tokenizer,
    TokenizerConfig,
    Vocab,
    WordEncoder,
    encoder_from_dict,
)

TEXTS = ["Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare.", "Paris is the capital of France."]


@pytest.fixture
def encoder() -> WordEncoder:
    tokenizer = Tokenizer(TokenizerConfig(stopwords="en"))
    return WordEncoder(tokenizer, Vocab.build(tokenizer.tokenize_batch(TEXTS)), max_query_len=2, max_doc_len=4)


def test_the_word_encoder_is_a_text_encoder(encoder):
    assert isinstance(encoder, TextEncoder)
    assert encoder.vocab_size == len(encoder.vocab)


def test_texts_become_truncated_vocabulary_ids(encoder):
    [query] = encoder.encode_queries(["who wrote hamlet"])
    [doc] = encoder.encode_docs([TEXTS[1]])
    assert encoder.vocab.decode(query) == encoder.tokenizer.tokenize("who wrote hamlet")[:2]
    assert encoder.vocab.decode(doc) == encoder.tokenizer.tokenize(TEXTS[1])[:4]
    # Query and document limits apply to their own kind.
    assert len(encoder.encode_docs(["who wrote hamlet"])[0]) == len(encoder.tokenizer.tokenize("who wrote hamlet"))


def test_unknown_words_are_unk_and_a_text_with_no_token_is_one_unk(encoder):
    assert encoder.encode_docs(["zebras"]) == [[UNK_ID]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert encoder.encode_docs(["", "the of"]) == [[UNK_ID], [UNK_ID]]
    assert [str(w.message) for w in caught if issubclass(w.category, DataWarning)] == [
        "2 of 2 distinct document texts have no tokens after tokenisation; each is kept as the single token UNK"
    ]


def test_each_distinct_text_is_tokenised_once_and_shares_one_list(encoder):
    seen = []
    tokenize_batch = encoder.tokenizer.tokenize_batch
    encoder.tokenizer.tokenize_batch = lambda texts: (seen.extend(texts), tokenize_batch(texts))[1]
    first = encoder.encode_docs([TEXTS[1], TEXTS[2], TEXTS[1]])
    again = encoder.encode_docs([TEXTS[2]])
    assert seen == [TEXTS[1], TEXTS[2]]
    assert first[0] is first[2] and again[0] is first[1]


def test_to_dict_gives_the_entries_a_checkpoint_has_always_held(encoder):
    entries = encoder.to_dict()
    # The checkpoint / ONNX metadata format of 0.1: no new key, so old files load and new files read as before.
    assert entries == {
        "vocab": encoder.vocab.to_dict(),
        "tokenizer": encoder.tokenizer.to_dict(),
        "text": {"max_query_len": 2, "max_doc_len": 4},
    }


def test_encoder_from_dict_rebuilds_the_same_encoder_from_a_whole_checkpoint(encoder):
    checkpoint = {"format": 1, "model_name": "match_pyramid", "state_dict": {}, **encoder.to_dict()}
    rebuilt = encoder_from_dict(checkpoint, source="best.pt")
    assert isinstance(rebuilt, WordEncoder) and rebuilt.to_dict() == encoder.to_dict()
    assert rebuilt.encode_docs(TEXTS) == encoder.encode_docs(TEXTS)
    assert rebuilt.encode_queries(TEXTS) == encoder.encode_queries(TEXTS)


def test_bad_entries_name_the_file(encoder):
    entries = encoder.to_dict()
    with pytest.raises(ValueError, match=r"model\.onnx: unknown text encoder kind 'pieces'; this neurank reads word"):
        encoder_from_dict({**entries, "text": {**entries["text"], "kind": "pieces"}}, source="model.onnx")
    with pytest.raises(FormatError, match=r"best\.pt"):
        encoder_from_dict({**entries, "vocab": {"tokens": ["a", "b"]}}, source="best.pt")
    with pytest.raises(KeyError, match="tokenizer"):
        encoder_from_dict({"vocab": entries["vocab"], "text": entries["text"]})
    with pytest.raises(ValueError, match="must be >= 1"):
        WordEncoder(encoder.tokenizer, encoder.vocab, max_query_len=0)


class CharEncoder:
    """A second kind of encoder: one id per character (what a word-piece encoder will be, in miniature)."""

    kind = "chars"

    def __init__(self, max_query_len: int, max_doc_len: int):
        self.max_query_len, self.max_doc_len = max_query_len, max_doc_len

    @property
    def vocab_size(self) -> int:
        return 258

    def encode_queries(self, texts):
        return [[2 + b for b in text.encode()[: self.max_query_len]] or [UNK_ID] for text in texts]

    def encode_docs(self, texts):
        return [[2 + b for b in text.encode()[: self.max_doc_len]] or [UNK_ID] for text in texts]

    def to_dict(self):
        return {"text": {"kind": self.kind, "max_query_len": self.max_query_len, "max_doc_len": self.max_doc_len}}

    @classmethod
    def from_dict(cls, entries, source="<dict>"):
        return cls(entries["text"]["max_query_len"], entries["text"]["max_doc_len"])


def test_a_second_kind_plugs_in_by_its_name(monkeypatch):
    monkeypatch.setitem(ENCODERS, "chars", CharEncoder.from_dict)
    rebuilt = encoder_from_dict(CharEncoder(3, 5).to_dict())
    assert isinstance(rebuilt, CharEncoder) and isinstance(rebuilt, TextEncoder)
    assert rebuilt.encode_queries(["abcd"]) == [[99, 100, 101]]
