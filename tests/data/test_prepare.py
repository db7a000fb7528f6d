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


# -- queries of words the vocabulary does not know (issue 22) ----------------------------------------------------


def test_one_warning_names_the_queries_that_are_mostly_unknown_words(answer_selection, tokenizer):
    from neurank.collections import DataWarning
    from neurank.data import build_examples
    from neurank.text import Vocab, WordEncoder

    # The documents' words and question 2's: questions 1 (3 of 5 words unknown) and 3 (3 of 4) are mostly unknown.
    texts = [d.text for docs in answer_selection.split("train").candidates.values() for d in docs]
    vocab = Vocab.build(tokenizer.tokenize_batch([*texts, "who wrote hamlet"]))
    with pytest.warns(DataWarning) as caught:
        build_examples(answer_selection, "train", WordEncoder(tokenizer, vocab), depth=None)
    unknown = [w for w in caught if "does not know" in str(w.message)]
    assert len(unknown) == 1
    message = str(unknown[0].message)
    assert message.startswith("tiny-as/train: 2 of 3 queries are mostly words") and "'1', '3'." in message


def test_the_warning_lists_a_few_ids_and_counts_the_rest_and_skips_texts_without_tokens(tokenizer):
    import warnings

    from neurank.collections import DataWarning
    from neurank.data.examples import NAMED_QUERIES, mostly_unknown_queries, warn_unknown_queries
    from neurank.text import Vocab, WordEncoder

    encoder = WordEncoder(tokenizer, Vocab.build([["known", "words"]]), max_query_len=4)
    queries = {f"q{i}": "blorf quazzle known" for i in range(NAMED_QUERIES + 2)}
    queries |= {"half": "known blorf", "empty": "?!", "cut": "known words known known blorf zap zop"}
    # "half" is not more than half unknown; "empty" has no tokens (the encoder warns about it); "cut" is read to
    # its first 4 tokens, all known.
    assert mostly_unknown_queries(encoder, queries) == [f"q{i}" for i in range(NAMED_QUERIES + 2)]
    with pytest.warns(DataWarning, match=r"^here: 7 of 10 queries .*'q0', 'q1', 'q2', 'q3', 'q4' and 2 more\."):
        warn_unknown_queries(encoder, queries, "here")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_unknown_queries(encoder, {"fine": "known words"}, "here") == []
