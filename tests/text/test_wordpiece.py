"""The word-piece encoder: a Hugging Face tokenizer read from a local folder, texts encoded without special tokens,
truncated, cached, and rebuilt from its `to_dict()` alone (a checkpoint's entries)."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from neurank.collections.errors import DataWarning
from neurank.text import ENCODERS, TextEncoder, WordPieceEncoder, encoder_from_dict

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["who", "wrote", "ham", "##let", "paris", "capital", "of", "france", "the", "is", "play", "writ"]


def tiny_tokenizer(pad_first: bool = True) -> Tokenizer:
    """A BERT-style word-piece tokenizer (lower-cased, split on spaces and punctuation) over a hand-written vocabulary
    of about a hundred entries: specials, a few words, letters and their `##` continuations."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = SPECIALS if pad_first else ["[UNK]", "[PAD]", *SPECIALS[2:]]
    vocab = [*tokens, *WORDS, *letters, *(f"##{c}" for c in letters), *".,?!"]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(SPECIALS)  # as in a real BERT tokenizer.json: matched whole in any text
    return tokenizer


@pytest.fixture()
def folder(tmp_path):
    path = tmp_path / "tiny-bert"
    path.mkdir()
    tiny_tokenizer().save(str(path / "tokenizer.json"))
    return path


def test_encodes_word_pieces_without_special_tokens_truncated(folder):
    encoder = WordPieceEncoder.from_folder(folder, max_query_len=3, max_doc_len=50)
    assert isinstance(encoder, TextEncoder) and encoder.vocab_size == 5 + len(WORDS) + 26 + 26 + 4
    vocab = tiny_tokenizer().get_vocab()
    [hamlet] = encoder.encode_docs(["Who wrote HAMLET?"])
    assert hamlet == [vocab[t] for t in ("who", "wrote", "ham", "##let", "?")]
    assert encoder.encode_queries(["who wrote hamlet"]) == [hamlet[:3]]  # truncated to max_query_len
    assert (encoder.cls_id, encoder.sep_id, encoder.unk_id) == (2, 3, 1)
    # Special tokens never come from encoding alone; a literal [PAD] (id 0, neurank's PAD) is dropped.
    assert encoder.encode_docs(["paris [PAD] france"]) == [[vocab["paris"], vocab["france"]]]
    with pytest.warns(DataWarning, match="no word pieces"):
        assert encoder.encode_docs(["[PAD]"]) == [[encoder.unk_id]]


def test_identical_texts_share_one_cached_list_and_empty_texts_become_unk(folder):
    encoder = WordPieceEncoder.from_folder(folder)
    first, second = encoder.encode_docs(["paris is a capital", "paris is a capital"])
    assert first is second
    with pytest.warns(DataWarning, match="1 of 1 distinct query texts have no word pieces"):
        assert encoder.encode_queries(["   "]) == [[encoder.unk_id]]


def test_to_dict_rebuilds_the_same_encoder_without_the_folder(folder):
    import shutil

    encoder = WordPieceEncoder.from_folder(folder, max_query_len=4, max_doc_len=9)
    entries = json.loads(json.dumps(encoder.to_dict()))  # JSON-safe, as checkpoints and ONNX metadata need
    assert entries["text"] == {"kind": "wordpiece", "max_query_len": 4, "max_doc_len": 9}
    shutil.rmtree(folder)
    assert ENCODERS["wordpiece"] == WordPieceEncoder.from_dict
    rebuilt = encoder_from_dict({**entries, "state_dict": {}}, source="x.pt")  # other keys are ignored
    assert isinstance(rebuilt, WordPieceEncoder) and rebuilt.vocab_size == encoder.vocab_size
    texts = ["Who wrote Hamlet, the play?", "paris is the capital of france and more words than nine"]
    assert rebuilt.encode_docs(texts) == encoder.encode_docs(texts)
    assert rebuilt.encode_queries(texts) == encoder.encode_queries(texts)


def test_bad_tokenizers_and_folders_get_clear_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        WordPieceEncoder.from_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"pad token '\[PAD\]' has id 1; neurank pads with id 0"):
        WordPieceEncoder(tiny_tokenizer(pad_first=False))
    (folder / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer.json: not a readable tokenizers file"):
        WordPieceEncoder.from_folder(folder)
    with pytest.raises(ValueError, match="x.pt: the stored word-piece tokenizer does not parse"):
        encoder_from_dict({"text": {"kind": "wordpiece"}, "encoder": {"tokenizer_json": "{"}}, source="x.pt")
    with pytest.raises(ValueError, match="must be >= 1"):
        WordPieceEncoder(tiny_tokenizer(), max_query_len=0)
