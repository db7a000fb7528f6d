"""Vocabulary: ids, build settings, determinism and the JSON file."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import numpy as np
import pytest

from neurank.collections.errors import FormatError
from neurank.text import PAD, PAD_ID, UNK, UNK_ID, Vocab

CORPUS = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "sat", "on", "a", "log"],
    ["a", "cat", "and", "a", "dog"],
]


def test_specials_take_ids_zero_and_one():
    vocab = Vocab.build(CORPUS)
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.id_to_token(PAD_ID) == PAD == "<pad>"
    assert vocab.id_to_token(UNK_ID) == UNK == "<unk>"
    assert vocab.token_to_id(PAD) == PAD_ID and vocab.token_to_id(UNK) == UNK_ID
    assert len(Vocab([])) == 2


def test_order_is_frequency_descending_then_token_ascending():
    vocab = Vocab.build(CORPUS)
    # a:3 the:3, then cat dog on sat (2 each), then and log mat (1 each)
    assert vocab.tokens == [PAD, UNK, "a", "the", "cat", "dog", "on", "sat", "and", "log", "mat"]
    assert vocab.counts["a"] == 3 and vocab.counts["mat"] == 1


def test_build_is_deterministic_whatever_the_input_order():
    shuffled = [list(tokens) for tokens in CORPUS]
    random.Random(0).shuffle(shuffled)
    for tokens in shuffled:
        random.Random(1).shuffle(tokens)
    assert Vocab.build(shuffled) == Vocab.build(CORPUS)
    assert Vocab.from_counter(Counter(t for tokens in CORPUS for t in tokens)) == Vocab.build(CORPUS)


def test_min_freq_and_max_size():
    assert Vocab.build(CORPUS, min_freq=2).tokens == [PAD, UNK, "a", "the", "cat", "dog", "on", "sat"]
    assert Vocab.build(CORPUS, min_freq=3).tokens == [PAD, UNK, "a", "the"]
    # max_size counts PAD and UNK; ties at the cut are resolved by token.
    vocab = Vocab.build(CORPUS, max_size=5)
    assert len(vocab) == 5 and vocab.tokens == [PAD, UNK, "a", "the", "cat"]
    assert Vocab.build(CORPUS, min_freq=2, max_size=100).tokens == Vocab.build(CORPUS, min_freq=2).tokens
    assert len(Vocab.build(CORPUS, max_size=2)) == 2
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(CORPUS, max_size=1)
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(CORPUS, min_freq=0)


def test_special_tokens_in_the_counts_are_ignored():
    vocab = Vocab.from_counter(Counter({"<pad>": 9, "<unk>": 9, "x": 1}))
    assert vocab.tokens == [PAD, UNK, "x"]


def test_build_rejects_plain_strings():
    with pytest.raises(TypeError, match="token lists"):
        Vocab.build(["the cat sat"])


def test_duplicate_or_special_tokens_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", "b", "a"])
    with pytest.raises(ValueError, match="unique"):
        Vocab(["a", PAD])


def test_encode_decode_and_lookups():
    vocab = Vocab.build(CORPUS)
    ids = vocab.encode(["the", "zebra", "cat"])
    assert ids == [3, UNK_ID, 4]
    assert vocab.decode(ids) == ["the", UNK, "cat"]
    assert vocab.decode(np.array([3, 4, PAD_ID])) == ["the", "cat", PAD]
    assert vocab.encode([]) == [] and vocab.decode([]) == []
    assert "cat" in vocab and "zebra" not in vocab and PAD in vocab
    assert vocab.token_to_id("zebra") == UNK_ID
    with pytest.raises(IndexError, match="out of range"):
        vocab.id_to_token(len(vocab))
    with pytest.raises(IndexError):
        vocab.decode([-1])


def test_save_load_round_trip(tmp_path):
    vocab = Vocab.build(CORPUS + [["café", "naïve", "北京"]], min_freq=1, max_size=50)
    path = tmp_path / "sub" / "vocab.json"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded == vocab
    assert loaded.encode(["café", "the", "zebra"]) == vocab.encode(["café", "the", "zebra"])
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["tokens"][:2] == [PAD, UNK] and data["min_freq"] == 1 and data["max_size"] == 50
    assert len(data["counts"]) == len(data["tokens"])
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary file left behind


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "vocab.json"
    Vocab(["old"]).save(path)
    Vocab.build(CORPUS).save(path)
    assert Vocab.load(path) == Vocab.build(CORPUS)


def test_file_without_counts_or_settings_loads(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"tokens": [PAD, UNK, "a", "b"]}), encoding="utf-8")
    vocab = Vocab.load(path)
    assert vocab.tokens == [PAD, UNK, "a", "b"] and vocab.counts == {} and vocab.max_size is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"tokens": ["<pad>", "<unk>", ', "JSON vocabulary file"),
        ('["<pad>", "<unk>"]', '"tokens"'),
        ('{"words": ["<pad>", "<unk>"]}', '"tokens"'),
        ('{"tokens": ["<unk>", "<pad>", "a"]}', "'<pad>' \\(id 0\\) and '<unk>' \\(id 1\\)"),
        ('{"tokens": ["a", "b"]}', "'<pad>' \\(id 0\\)"),
        ('{"tokens": ["<pad>", "<unk>", 3]}', "only strings"),
        ('{"tokens": ["<pad>", "<unk>", "a", "a"]}', "unique"),
        ('{"tokens": ["<pad>", "<unk>", "a"], "counts": [0, 0]}', "list of 3 integers"),
        ('{"tokens": ["<pad>", "<unk>", "a"], "min_freq": "2"}', "min_freq"),
    ],
)
def test_malformed_file_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken-vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FormatError, match=message) as caught:
        Vocab.load(path)
    assert str(path) in str(caught.value)


def test_json_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('{\n "tokens": ["<pad>", "<unk>"],\n "counts": [0 0]\n}', encoding="utf-8")
    with pytest.raises(FormatError, match=re.escape(f"{path}:3: expected a JSON vocabulary file")):
        Vocab.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        Vocab.load(tmp_path / "nope.json")
