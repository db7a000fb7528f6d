"""neurank's own training path for the cross-encoder: `model_config.hf_model` makes `prepare_data` take the folder's
word pieces, `train` fine-tunes the transformer, and best.pt re-ranks without the folder. The folder is a tiny random
BERT the tests write themselves (2 layers, hidden 32, a word-piece vocabulary of 74 entries); nothing downloads."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest

from neurank.config import ConfigError, config_from_dict
from neurank.data.prepare import check_data, load_configured_collection, prepare_data
from neurank.text import WordPieceEncoder

transformers = pytest.importorskip("transformers")


def cross_encoder_config(tiny_config, hf_model, model="cross_encoder", **embeddings):
    values = tiny_config.to_dict()
    values["model"], values["model_config"] = model, {"hf_model": str(hf_model), "dropout": 0.0}
    values["embeddings"] = {**values["embeddings"], **embeddings}
    values["train"] = {**values["train"], "epochs": 2, "lr": 1e-3}
    return config_from_dict(values)


def test_prepare_data_takes_the_folders_word_pieces(tiny_bert_folder, tiny_config):
    # Word vectors do not apply to a transformer: a word2vec source is neither checked nor trained.
    config = cross_encoder_config(tiny_config, tiny_bert_folder, source="word2vec", brown=True)
    data = prepare_data(config)
    encoder = data.encoder
    assert isinstance(encoder, WordPieceEncoder) and encoder.source == str(tiny_bert_folder)
    assert (encoder.max_query_len, encoder.max_doc_len) == (config.data.max_query_len, config.data.max_doc_len)
    assert data.tokenizer is None and data.embeddings is None and data.embedding_report is None and data.idf is None
    assert len(data.vocab) == encoder.vocab_size == 74
    assert data.vocab.tokens[2:6] == ["[CLS]", "[SEP]", "[MASK]", "who"]  # the word pieces in id order
    words = prepare_data(tiny_config)  # the same candidates as a word model's, encoded as word pieces
    assert [(e.query_id, e.doc_ids, e.labels) for e in data.dev_examples] == [
        (e.query_id, e.doc_ids, e.labels) for e in words.dev_examples
    ]
    assert len(data.train_examples) == len(words.train_examples)
    split = data.collection.split(config.data.dev_split)
    first = data.dev_examples[0]
    assert first.query == encoder.encode_queries([split.queries[first.query_id].text])[0]
    assert first.query[:3] == [5, 6, 7]  # who wrote ham(##let): no [CLS] or [SEP], the model joins the pair
    assert config.data.max_doc_len == 20 and max(len(doc) for e in data.dev_examples for doc in e.docs) <= 20


@pytest.mark.parametrize(
    ("model", "where", "message"),
    [
        ("match_pyramid", "folder", "model 'match_pyramid' reads no pretrained transformer"),
        ("cross_encoder", "nowhere", "is not a folder"),
        ("cross_encoder", "empty", "has no config.json"),
        ("cross_encoder", "no-tokenizer", "no tokenizer found"),
        (
            "cross_encoder",
            "no-weights",
            r"has no weights; expected model\.safetensors or pytorch_model\.bin \(or a sharded",
        ),
        ("cross_encoder", "no-transformers", "reading its other tokenizer files needs transformers"),
    ],
)
def test_bad_hf_model_settings_fail_before_the_collection_is_read(
    tiny_bert_folder, tiny_config, tmp_path, monkeypatch, model, where, message
):
    places = {"nowhere": tmp_path / "nowhere", "empty": tmp_path / "empty"}
    (tmp_path / "empty").mkdir()
    tokenizer_json = tiny_bert_folder / "tokenizer.json"
    if where == "no-transformers":  # a vocab.txt alone is read through transformers, as if it were not installed
        vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
        (tiny_bert_folder / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n", encoding="utf-8")
        monkeypatch.setitem(sys.modules, "transformers", None)
    if where in ("no-tokenizer", "no-transformers"):
        tokenizer_json.unlink()
    if where == "no-weights":  # config.json and a tokenizer but no weights: transformers' OSError once, deep inside
        (tiny_bert_folder / "model.safetensors").unlink()
    config = cross_encoder_config(tiny_config, places.get(where, tiny_bert_folder), model=model)

    def read(*args, **kwargs):
        raise AssertionError("the collection was read before the configuration was checked")

    monkeypatch.setattr("neurank.data.prepare.load_configured_collection", read)
    expected = ImportError if where == "no-transformers" else ConfigError
    with pytest.raises(expected, match=r"^model_config\.hf_model: .*" + message):
        prepare_data(config)
    if where != "no-transformers":  # check_data (what `neurank validate` runs) says the same
        with pytest.raises(ConfigError, match=r"^model_config\.hf_model: .*" + message):
            check_data(config)


@pytest.mark.parametrize("missing", ["model.safetensors", "tokenizer.json"])
def test_the_model_check_refuses_a_folder_without_weights_or_tokenizer_before_loading_it(
    tiny_bert_folder, tiny_config, monkeypatch, missing
):
    from neurank.training.checks import check_model

    def loading(*args, **kwargs):
        raise AssertionError("the weights were loaded before the folder was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", loading)
    (tiny_bert_folder / missing).unlink()
    message = "has no weights" if missing == "model.safetensors" else "no tokenizer found"
    with pytest.raises(ConfigError, match=rf"^model_config\.hf_model: {re.escape(str(tiny_bert_folder))}.* {message}"):
        check_model(cross_encoder_config(tiny_config, tiny_bert_folder))


def test_train_fine_tunes_it_and_best_pt_reranks_dev_as_training_scored_it(
    tiny_bert_folder, tiny_config, tmp_path, monkeypatch
):
    from neurank import load_reranker
    from neurank.evaluation import evaluate
    from neurank.models.cross_encoder import CrossEncoder
    from neurank.training import loop, train

    config = cross_encoder_config(tiny_config, tiny_bert_folder)
    dev_runs = []  # every epoch's dev scores, as the loop computed them

    def recording(*args, **kwargs):
        run = score_examples(*args, **kwargs)
        dev_runs.append({(r.query_id, r.doc_id): r.score for r in run})
        return run

    score_examples = loop.score_examples
    monkeypatch.setattr(loop, "score_examples", recording)
    result = train(config, tmp_path / "run", progress=False)
    assert result["epochs"] == 2 and len(dev_runs) == 2 and np.isfinite(result["best_metric"])

    shutil.rmtree(tiny_bert_folder)  # best.pt alone must do
    reranker = load_reranker(tmp_path / "run" / "best.pt", device="cpu")
    assert isinstance(reranker.model, CrossEncoder) and isinstance(reranker.encoder, WordPieceEncoder)
    collection = load_configured_collection(config)
    run = reranker.rerank_collection(collection, config.data.dev_split, depth=None)
    expected = dev_runs[result["best_epoch"] - 1]
    scores = {(r.query_id, r.doc_id): r.score for r in run}
    assert scores.keys() == expected.keys()
    np.testing.assert_allclose([scores[key] for key in expected], list(expected.values()), rtol=0, atol=1e-5)
    qrels = collection.split(config.data.dev_split).qrels
    assert evaluate(run, qrels, [result["metric"]])[result["metric"]] == pytest.approx(result["best_metric"])


def test_best_pt_goes_without_the_optimizer_state_that_only_resuming_reads(tiny_bert_folder, tiny_config, tmp_path):
    import dataclasses

    import torch

    from neurank.inference.checkpoint import load_checkpoint, load_ranker
    from neurank.training import train

    config = cross_encoder_config(tiny_config, tiny_bert_folder)
    train(dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1)), tmp_path, progress=False)
    best, last = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "last.pt")
    resume_only = {"optimizers", "schedulers", "rng", "grad_scaler"}
    assert resume_only <= last.keys() and not resume_only & best.keys()
    # Everything else stays: the ranker, its encoder, config and first stage, and the training record.
    assert best.keys() == last.keys() - resume_only
    for name, tensor in last["state_dict"].items():
        assert torch.equal(best["state_dict"][name], tensor), name
    assert (best["epoch"], best["best_epoch"], best["config"]) == (1, 1, last["config"])
    # AdamW keeps two moments per weight: last.pt is about three times the weights, best.pt about the weights.
    assert (tmp_path / "best.pt").stat().st_size < 0.5 * (tmp_path / "last.pt").stat().st_size
    model, encoder, _ = load_ranker(tmp_path / "best.pt")
    assert isinstance(encoder, WordPieceEncoder) and model.config.hf_config is not None


def test_head_lr_trains_the_new_layers_faster_than_the_pretrained_transformer(tiny_bert_folder, tiny_config, tmp_path):
    import dataclasses

    import torch

    from neurank.models.registry import build_model
    from neurank.training.loop import _parameter_groups

    config = cross_encoder_config(tiny_config, tiny_bert_folder)
    model = build_model("cross_encoder", 74, {"hf_model": str(tiny_bert_folder)})
    dense = [p for p in model.parameters() if p.requires_grad]
    (one,) = _parameter_groups(model, dense, config.train)  # no head_lr: every parameter at lr
    assert one["lr"] == config.train.lr and len(one["params"]) == len(dense)
    split = dataclasses.replace(config.train, lr=2e-5, head_lr=1e-3)
    body, head = _parameter_groups(model, dense, split)
    assert (body["lr"], head["lr"]) == (2e-5, 1e-3)
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in body["params"]} == encoder_ids & {id(p) for p in dense}
    assert {id(p) for p in head["params"]} == {id(model.score.weight), id(model.score.bias)}
    # A model without pretrained weights (MV-LSTM's own `encoder` is a new BiLSTM) trains everything at lr.
    mvlstm = build_model("mvlstm", 50, {})
    (only,) = _parameter_groups(mvlstm, list(mvlstm.parameters()), split)
    assert only["lr"] == 2e-5
    with pytest.raises(ConfigError, match="head_lr: expected a finite number above 0"):
        config_from_dict({**config.to_dict(), "train": {**config.to_dict()["train"], "head_lr": 0}})
    # The loop trains with them: last.pt's optimizer has both groups (their rates after the schedule's last step).
    from neurank.training.loop import train

    values = config.to_dict()
    values["train"] = {**values["train"], "epochs": 1, "lr": 2e-5, "head_lr": 1e-3, "schedule": "constant"}
    train(config_from_dict(values), tmp_path / "run", progress=False)
    groups = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["optimizers"][0]["param_groups"]
    assert [group["lr"] for group in groups] == [2e-5, 1e-3]
    assert [len(group["params"]) for group in groups] == [len(body["params"]), 2]


def test_a_transformer_model_without_a_folder_trains_on_word_ids_without_word_vectors(tiny_config, tmp_path):
    from neurank.training.loop import train

    values = tiny_config.to_dict()
    values["model"], values["model_config"] = "cross_encoder", {"dropout": 0.0}
    values["embeddings"] = {**values["embeddings"], "source": "word2vec"}  # not trained: a transformer reads none
    values["train"] = {**values["train"], "epochs": 1}
    config = config_from_dict(values)
    data = prepare_data(config)
    assert data.embeddings is None and data.embedding_report is None and data.tokenizer is not None
    result = train(config, tmp_path / "run", progress=False, data=data)
    assert (tmp_path / "run" / "best.pt").is_file() and result["best_epoch"] == 1
