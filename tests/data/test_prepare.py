"""What word2vec reads (the Brown corpus from its own setting, extra text), and the checks made before the data is
prepared (the tiny collection and its config live in tests/conftest.py)."""

import dataclasses
import zipfile

import pytest

import neurank.data.prepare as prepare_module
from neurank.data.prepare import check_files, load_configured_collection, train_collection_word2vec, word2vec_sentences


def brown_zip(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("brown/ca01", "\n\n\tThe/at Fulton/np-tl juries/nns said/vbd ./.\n")
    return path


def with_embeddings(config, **changes):
    return dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, **changes))


def test_the_brown_corpus_can_live_anywhere(tmp_path, tiny_config):
    # Not in the data directory: its own setting names it, wherever the collection is.
    config = with_embeddings(tiny_config, brown=str(brown_zip(tmp_path / "corpora" / "brown.zip")))
    assert word2vec_sentences(config, [["who", "wrote", "hamlet"], []]) == [
        ["who", "wrote", "hamlet"],
        ["the", "fulton", "juries", "said"],
    ]


def test_extra_text_is_read_line_by_line_and_tokenised_as_the_collection(tmp_path, tiny_config):
    extra = tmp_path / "extra.txt"
    extra.write_text("Hamlet PLAY, in Denmark.\n\n   \nPlays are written\n", encoding="utf-8")
    config = with_embeddings(tiny_config, extra_text=str(extra))
    assert word2vec_sentences(config, [["hamlet"]]) == [
        ["hamlet"],
        ["hamlet", "play", "in", "denmark"],
        ["plays", "are", "written"],
    ]
    # The collection's stop words apply to it too; a line left empty is dropped.
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, stopwords="en"))
    extra.write_text("Hamlet PLAY, in Denmark.\nin the\n", encoding="utf-8")
    assert word2vec_sentences(config, []) == [["hamlet", "play", "denmark"]]


def test_a_missing_brown_corpus_is_named_before_the_collection_is_read(tmp_path, tiny_config, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the collection must not be read before the files are checked")

    monkeypatch.setattr(prepare_module, "load_collection", refuse)
    monkeypatch.delenv("NEURANK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    # A collection given by path and no data directory at all: `true` still says where it looked.
    config = with_embeddings(tiny_config, source="word2vec", brown=True)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=None))
    for call in (lambda: check_files(config), lambda: train_collection_word2vec(config, tmp_path / "w2v.txt")):
        with pytest.raises(FileNotFoundError) as error:
            call()
        message = str(error.value)
        assert "data/brown_corpus/brown.zip" in message and "$NEURANK_DATA" in message
        assert "embeddings.brown=false" in message and "embeddings.brown=PATH/brown.zip" in message
    assert not (tmp_path / "w2v.txt").exists()
    extra = with_embeddings(config, brown=False, extra_text="more.txt")
    with pytest.raises(FileNotFoundError, match=r"embeddings\.extra_text: more\.txt not found"):
        check_files(extra)
    check_files(with_embeddings(extra, source="random"))  # nothing of word2vec's is read then


def test_dev_fraction_is_passed_to_the_collection_loader(tiny_config, monkeypatch):
    calls = []
    monkeypatch.setattr(prepare_module, "load_collection", lambda *args, **kwargs: calls.append(kwargs))
    load_configured_collection(tiny_config)
    load_configured_collection(
        dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data, dev_fraction=0.2))
    )
    assert [call["dev_fraction"] for call in calls] == [None, 0.2]  # None: the collection's own setting
