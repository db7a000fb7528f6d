"""The cross-encoder (Nogueira & Cho 2019) on a tiny BERT that the tests write themselves: a 2-layer configuration
with a hidden size of 32 and a word-piece vocabulary of about a hundred entries, saved with `save_pretrained`.
Nothing is downloaded. The registry's contract test checks the default (a tiny random BERT from an inline config);
these check what needs a model folder: loading it, the checkpoint round trip without it, and training."""

from __future__ import annotations

import dataclasses
import shutil
import sys

import numpy as np
import pytest
import torch

from neurank.config import ConfigError
from neurank.inference.checkpoint import save_checkpoint
from neurank.models import build_model
from neurank.models.cross_encoder import CrossEncoder
from neurank.text import WordPieceEncoder

transformers = pytest.importorskip("transformers")

PAIRS = [
    ("who wrote hamlet", "hamlet is a tragedy written by william shakespeare"),
    ("who wrote hamlet", "paris is the capital of france"),
    ("what is the capital of france", "paris is the capital of france"),
    ("where does the thames flow", "the thames flows through london and on to the sea at last"),
]


def encode(encoder, pairs):
    from neurank.inference.scorer import pad_ids

    query_ids, query_mask = pad_ids(encoder.encode_queries([q for q, _ in pairs]))
    doc_ids, doc_mask = pad_ids(encoder.encode_docs([d for _, d in pairs]))
    return query_ids, doc_ids, query_mask, doc_mask


def test_loads_the_pretrained_weights_and_records_the_folders_config(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model("cross_encoder", encoder.vocab_size, {"hf_model": str(tiny_bert_folder)})
    pretrained = transformers.AutoModel.from_pretrained(str(tiny_bert_folder), local_files_only=True)
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name
    config = model.config
    assert (config.hf_model, config.cls_id, config.sep_id) == (str(tiny_bert_folder), 2, 3)
    assert config.hf_config["model_type"] == "bert" and config.hf_config["hidden_size"] == 32
    assert "_name_or_path" not in config.hf_config  # nothing that points back at the folder


def test_join_builds_cls_query_sep_doc_sep_from_the_masks(tiny_bert_folder):
    model = build_model("cross_encoder", 60, {"hf_model": str(tiny_bert_folder)})
    query_ids = torch.tensor([[7, 8, 0], [9, 0, 0]])
    doc_ids = torch.tensor([[10, 11, 0, 0], [12, 13, 14, 15]])
    input_ids, token_type_ids, attention_mask = model.join(query_ids, doc_ids)
    assert input_ids.tolist() == [[2, 7, 8, 3, 10, 11, 3, 0, 0, 0], [2, 9, 3, 12, 13, 14, 15, 3, 0, 0]]
    assert token_type_ids.tolist() == [[0, 0, 0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]]
    assert attention_mask.tolist() == [[1] * 7 + [0] * 3, [1] * 8 + [0] * 2]
    # Explicit masks decide, not the ids: a masked-out token inside a row is left out of the joined pair.
    masked = model.join(query_ids, doc_ids, query_ids != 0, torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]]))[0]
    assert masked[0].tolist() == [2, 7, 8, 3, 10, 3, 0, 0, 0, 0]


def test_a_pair_longer_than_the_window_loses_the_end_of_its_document(tmp_path, write_tiny_bert):
    write_tiny_bert(tmp_path, max_position_embeddings=12)
    model = build_model("cross_encoder", 60, {"hf_model": str(tmp_path)}).eval()
    query_ids = torch.tensor([[7, 8, 9]])
    long_doc = torch.arange(10, 30)[None]  # 20 tokens; the window holds 12 - 3 - 3 = 6 of them
    input_ids, _, attention_mask = model.join(query_ids, long_doc)
    assert input_ids.tolist() == [[2, 7, 8, 9, 3, 10, 11, 12, 13, 14, 15, 3]] and attention_mask.all()
    with torch.no_grad():
        assert torch.equal(model(query_ids, long_doc), model(query_ids, long_doc[:, :6]))


def test_padding_never_changes_a_pretrained_models_score(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model("cross_encoder", encoder.vocab_size, {"hf_model": str(tiny_bert_folder)}).eval()
    query_ids, doc_ids, query_mask, doc_mask = encode(encoder, PAIRS)
    with torch.no_grad():
        scores = model(query_ids, doc_ids, query_mask, doc_mask)
        padded = model(torch.nn.functional.pad(query_ids, (0, 5)), torch.nn.functional.pad(doc_ids, (0, 9)))
        alone = torch.cat([model(*encode(encoder, [pair])) for pair in PAIRS])
    torch.testing.assert_close(padded, scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, scores, atol=1e-5, rtol=0)


def test_a_checkpoint_rebuilds_the_reranker_without_the_folder(tiny_bert_folder, tmp_path):
    from neurank import load_reranker
    from neurank.inference.checkpoint import load_ranker
    from neurank.inference.reranker import Reranker

    encoder = WordPieceEncoder.from_folder(tiny_bert_folder, max_query_len=8, max_doc_len=30)
    torch.manual_seed(0)
    model = build_model("cross_encoder", encoder.vocab_size, {"hf_model": str(tiny_bert_folder), "dropout": 0.0})
    with torch.no_grad():
        model.score.weight.normal_()  # a trained head, not the initial one
    expected = Reranker(model, encoder, device="cpu", first_stage=None).predict(PAIRS)
    path = tmp_path / "best.pt"
    from neurank.models import model_config_to_dict

    save_checkpoint(
        path,
        {
            "model_name": "cross_encoder",
            "model_config": model_config_to_dict(model.config),
            "state_dict": model.state_dict(),
            **encoder.to_dict(),
            "first_stage": None,
        },
    )
    shutil.rmtree(tiny_bert_folder)  # the checkpoint alone must do
    restored, restored_encoder, _ = load_ranker(path)
    assert isinstance(restored, CrossEncoder) and isinstance(restored_encoder, WordPieceEncoder)
    assert restored.config == model.config
    reranker = load_reranker(path, device="cpu")
    np.testing.assert_array_equal(reranker.predict(PAIRS), expected)


def test_bad_settings_get_clear_errors(tiny_bert_folder, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="reads the pretrained transformer's own word-piece embeddings"):
        build_model("cross_encoder", 40, {}, embeddings=torch.zeros(40, 8))
    with pytest.raises(ValueError, match="the transformer's vocabulary has 74 entries"):
        build_model("cross_encoder", 500, {"hf_model": str(tiny_bert_folder)})
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_model("cross_encoder", 40, {"hf_model": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="hf_config needs cls_id and sep_id"):
        build_model("cross_encoder", 40, {"hf_config": {"model_type": "bert"}})
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the extra were not installed
    with pytest.raises(ImportError, match=r'pip install "neurank\[transformers\]"'):
        build_model("cross_encoder", 40)


@pytest.mark.slow
def test_neuranks_loop_fine_tunes_it_on_the_tiny_collection(tiny_bert_folder, tiny_config, tmp_path):
    """`neurank.training.train` with word-piece examples; the best checkpoint re-ranks without the folder."""
    from neurank import load_reranker
    from neurank.collections import ANSWER_SELECTION
    from neurank.config import config_from_dict
    from neurank.data.examples import build_examples
    from neurank.data.prepare import prepare_data
    from neurank.retrieval import bm25_run
    from neurank.text import Vocab
    from neurank.training import train

    values = tiny_config.to_dict()
    values["model"], values["model_config"] = "cross_encoder", {"hf_model": str(tiny_bert_folder)}
    values["embeddings"] = {"source": "random"}
    values["train"] = {**values["train"], "epochs": 2, "lr": 1e-3}
    config = config_from_dict(values)
    words = prepare_data(config)
    # What data preparation does not do yet: word-piece examples, and a vocabulary of the word pieces' size.
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder, config.data.max_query_len, config.data.max_doc_len)
    assert words.collection.task == ANSWER_SELECTION

    def examples(split):
        return build_examples(words.collection, split, encoder, bm25_run(words.collection, split, k=100))

    data = dataclasses.replace(
        words,
        encoder=encoder,
        vocab=Vocab([f"piece{i}" for i in range(2, encoder.vocab_size)]),
        train_examples=examples(config.data.train_split),
        dev_examples=examples(config.data.dev_split),
        embeddings=None,
        idf=None,
    )
    result = train(config, tmp_path / "run", progress=False, data=data)
    assert result["epochs"] == 2 and np.isfinite(result["best_metric"])
    shutil.rmtree(tiny_bert_folder)
    reranker = load_reranker(tmp_path / "run" / "best.pt", device="cpu")
    assert reranker.predict(PAIRS).shape == (len(PAIRS),)


# ---------------------------------------------------------------------------------------------------------------------
# Passages: MaxP and FirstP over documents longer than a passage.

PASSAGE_CASES = [
    ("cross_encoder", {"passages": "maxp", "passage_len": 6, "passage_stride": 3}),
    ("cross_encoder", {"passages": "maxp", "passage_len": 5, "passage_stride": 5, "use_first_stage_score": True}),
    ("cross_encoder", {"passages": "firstp", "passage_len": 7, "passage_stride": 4}),
]


def test_split_passages_reads_the_real_tokens_in_overlapping_windows():
    from neurank.models.cross_encoder import split_passages

    doc_ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 0, 0], [5, 0, 6, 0, 0, 0, 0, 0, 0]])
    doc_mask = torch.tensor([[1] * 7 + [0] * 2, [1, 0, 1, 0, 0, 0, 0, 0, 0]]).bool()  # a hole in the second row
    passage_ids, passage_mask, passage_valid = split_passages(doc_ids, doc_mask, 4, 2)
    # Padded length 9: passages start at 0, 2, 4, 6.
    assert passage_ids.tolist()[0] == [[5, 6, 7, 8], [7, 8, 9, 10], [9, 10, 11, 0], [11, 0, 0, 0]]
    assert passage_ids.tolist()[1][0] == [5, 6, 0, 0]
    assert passage_mask[0].sum(1).tolist() == [4, 4, 3, 1] and passage_mask[1].sum(1).tolist() == [2, 0, 0, 0]
    # The fourth passage of row 0 starts inside the document, but the third already reached its end: left out.
    assert passage_valid.tolist() == [[True, True, True, False], [True, False, False, False]]
    # More padding gives more passages, none of them kept; the kept ones are the same.
    padded = split_passages(torch.nn.functional.pad(doc_ids, (0, 8)), torch.nn.functional.pad(doc_mask, (0, 8)), 4, 2)
    assert padded[0].shape[1] > passage_ids.shape[1] and padded[2][:, 4:].sum() == 0
    assert torch.equal(padded[0][:, :4], passage_ids) and torch.equal(padded[2][:, :4], passage_valid)


@pytest.mark.parametrize("options", [case[1] for case in PASSAGE_CASES], ids=lambda o: o["passages"])
def test_passage_scores_are_the_best_or_the_first_of_each_passage_scored_alone(options):
    from .test_contract import make_batch

    torch.manual_seed(0)
    model = build_model("cross_encoder", 40, options).eval()
    with torch.no_grad():
        model.score.weight.normal_(0.0, 10.0)  # scores far enough apart that the best passage is not a near tie
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    length, stride = options["passage_len"], options["passage_stride"]
    several = best_not_first = 0
    with torch.no_grad():
        scores = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        for i in range(len(scores)):
            query, doc = query_ids[i][query_ids[i] != 0][None], doc_ids[i][doc_ids[i] != 0]
            starts = [0, *range(stride, len(doc) - length + stride, stride)]  # until a passage reaches the end
            several += len(starts) > 1
            alone = torch.cat(
                [
                    model.score_pairs(
                        query, doc[start : start + length][None], None, None, first_stage_score[i : i + 1]
                    )
                    for start in starts
                ]
            )
            best_not_first += bool(alone.max() > alone[0] + 1e-3)
            expected = alone[0] if options["passages"] == "firstp" else alone.max()
            torch.testing.assert_close(scores[i], expected, atol=1e-5, rtol=0)
    assert several >= 4 and best_not_first >= 2  # MaxP and FirstP differ on this batch


@pytest.fixture(params=PASSAGE_CASES, ids=lambda case: case[1]["passages"] + str(case[1]["passage_len"]))
def passage_case(request):
    return request.param


def test_passage_variants_keep_the_model_contract(passage_case, tmp_path):
    from . import test_contract as contract

    contract.test_output_is_one_logit_per_pair(passage_case)
    contract.test_extra_padding_never_changes_a_score(passage_case)
    contract.test_every_parameter_receives_a_gradient(passage_case)
    contract.test_save_load_round_trip_gives_identical_scores(passage_case, tmp_path)


def test_bad_passage_options_name_the_option():
    for options, key in [
        ({"passages": "best"}, "passages"),
        ({"passages": "maxp", "passage_len": 0}, "passage_len"),
        ({"passages": "maxp", "passage_len": 8, "passage_stride": 9}, "passage_stride"),
    ]:
        with pytest.raises(ConfigError, match=f"^{key}: expected"):
            build_model("cross_encoder", 40, options)


def _copy_folder(source, target, *names):
    target.mkdir()
    for name in names:
        shutil.copy(source / name, target / name)
    return target


def test_a_folder_without_weights_or_tokenizer_is_refused_before_transformers_reads_it(
    tiny_bert_folder, tmp_path, monkeypatch
):
    def loading(*args, **kwargs):
        raise AssertionError("the weights were loaded before the folder was checked")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", loading)
    # config.json alone: not transformers' OSError from deep inside from_pretrained, but what the folder lacks.
    no_weights = _copy_folder(tiny_bert_folder, tmp_path / "no-weights", "config.json", "tokenizer.json")
    with pytest.raises(FileNotFoundError, match=r"no-weights: no weights; .*model\.safetensors or pytorch_model\.bin"):
        build_model("cross_encoder", 60, {"hf_model": str(no_weights)})
    # Weights but no tokenizer: refused before the weights are read, naming the option.
    no_tokenizer = _copy_folder(tiny_bert_folder, tmp_path / "no-tokenizer", "config.json", "model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"^hf_model: .*no-tokenizer: no tokenizer found"):
        build_model("cross_encoder", 60, {"hf_model": str(no_tokenizer)})
    # A sharded model's index counts as weights (what from_pretrained reads then is the index and its shards).
    sharded = _copy_folder(tiny_bert_folder, tmp_path / "sharded", "config.json", "tokenizer.json")
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {}}', encoding="utf-8")
    with pytest.raises(AssertionError, match="the weights were loaded"):
        build_model("cross_encoder", 60, {"hf_model": str(sharded)})


@pytest.mark.parametrize("bars", [True, False], ids=["bars-on", "bars-off"])
def test_loading_a_folder_shows_no_progress_bar_and_leaves_the_users_setting_alone(tiny_bert_folder, capfd, bars):
    from huggingface_hub.utils import are_progress_bars_disabled

    hf_logging = transformers.utils.logging
    before = hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.enable_progress_bar() if bars else hf_logging.disable_progress_bar()
        hub_before = are_progress_bars_disabled()
        capfd.readouterr()
        build_model("cross_encoder", 60, {"hf_model": str(tiny_bert_folder)})
        err = capfd.readouterr().err
        assert "Loading weights" not in err and "%|" not in err, err
        assert hf_logging.is_progress_bar_enabled() is bars  # as the user had it, not switched for good
        assert are_progress_bars_disabled() is hub_before
    finally:
        hf_logging.enable_progress_bar() if before else hf_logging.disable_progress_bar()
