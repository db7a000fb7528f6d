"""The training loop: determinism, exact resume after a kill, checkpoints that rebuild the ranker alone."""

import dataclasses
import json
import math
import zipfile

import pytest
import torch

from neurank.data.prepare import make_embeddings, word2vec_sentences
from neurank.inference.checkpoint import CheckpointError, load_checkpoint
from neurank.inference.reranker import Reranker
from neurank.text import Vocab
from neurank.training import train


class Killed(Exception):
    pass


def weights(path):
    return load_checkpoint(path)["state_dict"]


def test_same_seed_same_weights_and_metrics(tiny_config, tmp_path):
    a = train(tiny_config, tmp_path / "a", progress=False)
    b = train(tiny_config, tmp_path / "b", progress=False)
    for name, tensor in weights(tmp_path / "a" / "last.pt").items():
        assert torch.equal(tensor, weights(tmp_path / "b" / "last.pt")[name]), name
    assert a["best_metric"] == b["best_metric"]
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all({"train_loss", "dev_AP", "lr", "grad_norm"} <= set(r) for r in records)


@pytest.mark.parametrize("ema", [0.0, 0.9], ids=["plain", "weight-average"])
def test_resume_after_a_kill_ends_with_the_same_weights(tiny_config, tmp_path, ema):
    tiny_config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, ema=ema))
    train(tiny_config, tmp_path / "straight", progress=False)

    def kill_after_first_epoch(epoch, record):
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        train(tiny_config, tmp_path / "killed", progress=False, on_epoch_end=kill_after_first_epoch)
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] == 1
    train(tiny_config, tmp_path / "killed", progress=False, resume=True)

    straight, resumed = (
        load_checkpoint(tmp_path / "straight" / "last.pt"),
        load_checkpoint(tmp_path / "killed" / "last.pt"),
    )
    # With train.ema, "state_dict" is the average and the trained weights are kept beside it: both must agree.
    for key in ("state_dict", "training_state_dict") if ema else ("state_dict",):
        assert straight[key].keys() == resumed[key].keys()
        for name in straight[key]:
            assert torch.equal(straight[key][name], resumed[key][name]), (key, name)
    assert straight.get("ema_updates") == resumed.get("ema_updates")
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_checkpoint_rebuilds_the_ranker_alone(tiny_config, tmp_path):
    train(tiny_config, tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint["model_name"] == "match_pyramid"
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in checkpoint["state_dict"])
    reranker = Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    ranked = reranker.rank("who wrote hamlet", ["paris is the capital of france", "hamlet was written by shakespeare"])
    assert sorted(r.doc_id for r in ranked) == ["0", "1"]
    assert ranked[0].score >= ranked[1].score
    assert reranker.rank("who wrote hamlet", ["a", "b", "c"], top_k=2)[1].doc_id in {"0", "1", "2"}
    scores = reranker.predict(
        [("who wrote hamlet", "hamlet was written by shakespeare", 3.0), ("who wrote hamlet", "paris", 1.0)]
    )
    assert scores.shape == (2,)
    # Predicting the same pairs twice gives the same scores (eval mode, no dropout).
    again = reranker.predict(
        [("who wrote hamlet", "hamlet was written by shakespeare", 3.0), ("who wrote hamlet", "paris", 1.0)]
    )
    assert (scores == again).all()


def test_pairs_without_first_stage_score_are_refused_when_the_model_needs_them(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, model_config={**tiny_config.model_config, "use_first_stage_score": True})
    train(config, tmp_path / "run", progress=False)
    reranker = Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    with pytest.raises(ValueError, match="first-stage score"):
        reranker.predict([("q", "d")])
    assert len(reranker.rank("who wrote hamlet", ["hamlet by shakespeare", "paris"])) == 2


def test_incompatible_or_foreign_checkpoints_get_clear_errors(tiny_config, tmp_path):
    train(
        dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=1)),
        tmp_path / "run",
        progress=False,
    )
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    checkpoint["format"] = 99
    torch.save(checkpoint, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format 99"):
        Reranker.from_checkpoint(tmp_path / "future.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        Reranker.from_checkpoint(tmp_path / "junk.pt")


@pytest.mark.parametrize("loss", ["bce", "hinge", "ranknet"])
def test_every_loss_trains(tiny_config, tmp_path, loss):
    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, loss=loss, epochs=1))
    result = train(config, tmp_path / loss, progress=False)
    assert result["steps"] > 0 and 0.0 <= result["best_metric"] <= 1.0


def test_rerank_keeps_every_candidate_and_reorders(tiny_config, tmp_path):
    from neurank.collections import load_collection
    from neurank.retrieval import bm25_run

    train(tiny_config, tmp_path / "run", progress=False)
    reranker = Reranker.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    collection = load_collection("wikiqa", tiny_config.data.data_dir)
    first_stage = bm25_run(collection, "test")
    reranked = reranker.rerank_collection(collection, "test", first_stage)
    assert {(r.query_id, r.doc_id) for r in reranked} == {(r.query_id, r.doc_id) for r in first_stage}
    queries = collection.split("test").queries
    again = reranker.rerank(first_stage, queries, lambda q, d: collection.doc_text("test", q, d), depth=100)
    assert sorted(again) == sorted(reranked)


@pytest.mark.parametrize(
    "embeddings",
    [{"sparse": True}, {"freeze": True}, {"source": "word2vec", "dim": 8, "epochs": 2}],
    ids=["sparse-gradients", "frozen", "word2vec"],
)
def test_embedding_options_train(tiny_config, tmp_path, embeddings):
    config = dataclasses.replace(
        tiny_config,
        embeddings=dataclasses.replace(tiny_config.embeddings, **embeddings),
        train=dataclasses.replace(tiny_config.train, epochs=1),
    )
    before = None
    if embeddings.get("freeze"):
        from neurank.data.prepare import prepare_data
        from neurank.training.loop import make_model

        data = prepare_data(config)
        torch.manual_seed(config.train.seed)
        before = make_model(config, len(data.vocab), data.embeddings).embedding.weight.detach().clone()
    result = train(config, tmp_path / "run", progress=False)
    assert result["steps"] > 0
    state = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    if before is not None:
        assert torch.equal(state["embedding.weight"], before)


def test_idf_by_hand():
    from neurank.data.prepare import inverse_document_frequencies
    from neurank.text import Vocab

    vocab = Vocab.build([["a", "b"], ["a"]])
    idf = inverse_document_frequencies(vocab, [["a", "b"], ["a"], ["c"]])
    # N = 3; df(a) = 2, df(b) = 1; "c" is not in the vocabulary, so it counts for UNK (df 1).
    assert idf[vocab.token_to_id("a")].item() == pytest.approx(math.log1p(1.5 / 2.5))
    assert idf[vocab.token_to_id("b")].item() == pytest.approx(math.log1p(2.5 / 1.5))
    assert idf[0].item() == 0.0


def test_word2vec_reads_the_collection_then_brown_tokenised_alike(tiny_config, tiny_data_dir):
    (tiny_data_dir / "brown_corpus").mkdir()
    with zipfile.ZipFile(tiny_data_dir / "brown_corpus" / "brown.zip", "w") as archive:
        archive.writestr("brown/ca01", "\n\n\tThe/at Fulton/np-tl juries/nns said/vbd ./.\n")
    collection_tokens = [["who", "wrote", "hamlet"], [], ["hamlets", "play"]]
    config = dataclasses.replace(
        tiny_config,
        data=dataclasses.replace(tiny_config.data, stemmer="porter", stopwords="en"),
        embeddings=dataclasses.replace(tiny_config.embeddings, brown=True),
    )
    assert word2vec_sentences(config, collection_tokens) == [
        ["who", "wrote", "hamlet"],
        ["hamlets", "play"],
        ["fulton", "juri", "said"],
    ]
    without = dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, brown=False))
    assert word2vec_sentences(without, collection_tokens) == [["who", "wrote", "hamlet"], ["hamlets", "play"]]


def test_word2vec_embeddings_read_brown_when_asked(tiny_config, tiny_data_dir):
    config = dataclasses.replace(
        tiny_config, embeddings=dataclasses.replace(tiny_config.embeddings, source="word2vec", brown=True)
    )
    tokens = [["who", "wrote", "hamlet"], ["hamlet", "is", "a", "play"]]
    vocab = Vocab.build(tokens)
    with pytest.raises(FileNotFoundError, match="brown.zip"):
        make_embeddings(config, vocab, tokens, None)
    (tiny_data_dir / "brown_corpus").mkdir()
    with zipfile.ZipFile(tiny_data_dir / "brown_corpus" / "brown.zip", "w") as archive:
        archive.writestr("brown/ca01", "\n\n\tThe/at play/nn said/vbd ./.\n")
    matrix, report = make_embeddings(config, vocab, tokens, None)
    assert matrix.shape == (len(vocab), config.embeddings.dim)
    assert report["found"] == len(vocab) - 2  # every word but PAD and UNK has a trained vector
