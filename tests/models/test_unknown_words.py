"""Unknown words match nothing (issue 22): in every model's interactions a cell with UNK on either side is 0 unless
`unknown_match`; two unrelated unknown texts no longer outscore a genuine match; checkpoints saved before the option
keep the old behaviour (`saved_model_config`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from neurank.models import build_model, model_classes, model_config_to_dict, model_names
from neurank.models.layers import SAVED_CONFIG_DEFAULTS, saved_model_config
from neurank.text import PAD_ID, UNK_ID, Tokenizer, Vocab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VOCAB_SIZE = 30
SMALL = {  # small enough to train in a fraction of a second
    "tk": {"embedding_dim": 8, "n_heads": 2, "ff_dim": 8, "n_layers": 1},
    "conv_knrm": {"n_filters": 8},
    "mvlstm": {"hidden_size": 8},
    "compare_aggregate": {"hidden_size": 8},
    "duet": {"hidden_dim": 8, "max_doc_len": 12, "doc_pool_size": 4, "max_query_len": 4},
}


def with_option(name: str) -> bool:
    return "unknown_match" in {field.name for field in dataclasses.fields(model_classes(name)[1])}


MODELS = [name for name in model_names() if with_option(name)]
INTERACTION_MODELS = [name for name in MODELS if model_classes(name)[0].has_interaction_matrix]


def build(name: str, unknown_match: bool = False, **options):
    torch.manual_seed(0)
    config = {"embedding_dim": 8, **SMALL.get(name, {}), **options, "unknown_match": unknown_match}
    return build_model(name, VOCAB_SIZE, config).eval()


def unknown_batch():
    """Pair 0: an all-unknown query and document; pair 1: a query and a document mixing known and unknown words."""
    query_ids = torch.tensor([[UNK_ID, UNK_ID, PAD_ID], [5, UNK_ID, 7]])
    doc_ids = torch.tensor([[UNK_ID, UNK_ID, UNK_ID, UNK_ID, PAD_ID], [UNK_ID, 5, 9, UNK_ID, 7]])
    return query_ids, doc_ids


def test_every_ranker_but_the_cross_encoder_has_the_option_and_new_configs_default_to_the_fix():
    assert {"knrm", "match_pyramid", "drmm", "pacrr", "duet", "mvlstm", "tk", "conv_knrm", "arci"} <= set(MODELS)
    for name in MODELS:
        assert model_classes(name)[1]().unknown_match is False


@pytest.mark.parametrize("name", INTERACTION_MODELS)
def test_cells_with_an_unknown_word_are_zero_in_every_interaction(name):
    model = build(name)
    query_ids, doc_ids = unknown_batch()
    with torch.no_grad():
        cells = model.interaction_matrix(query_ids, doc_ids)  # (B, C, Lq, Ld)
    assert torch.count_nonzero(cells[0]) == 0  # two unknown texts: no similarity at all
    if name != "conv_knrm":  # its rows and columns are n-gram windows, which mix known and unknown words
        assert torch.count_nonzero(cells[1][:, 1, :]) == 0  # the query's unknown word against every document word
        assert torch.count_nonzero(cells[1][:, :, [0, 3]]) == 0  # every query word against the unknown ones
    else:
        unigrams = cells[1, 0]  # channel "q1 x d1"
        assert torch.count_nonzero(unigrams[1]) == 0 and torch.count_nonzero(unigrams[:, [0, 3]]) == 0
    assert torch.count_nonzero(cells[1]) > 0  # the known words still interact


@pytest.mark.parametrize("name", [name for name in INTERACTION_MODELS if name != "duet"])
def test_before_issue_22_two_unknown_words_matched(name):
    # DUET's only interaction is exact match, which never matched UNK; the others compared UNK's one vector with
    # itself.
    model = build(name, unknown_match=True)
    query_ids, doc_ids = unknown_batch()
    with torch.no_grad():
        cells = model.interaction_matrix(query_ids, doc_ids)
    assert torch.count_nonzero(cells[0]) > 0
    if name in ("knrm", "drmm", "pacrr", "match_pyramid"):  # word vectors: the cosine of UNK with itself
        torch.testing.assert_close(cells[0, 0, :2, :4], torch.ones(2, 4))


@pytest.mark.parametrize("name", ["knrm", "drmm", "pacrr", "match_pyramid"])
@pytest.mark.parametrize("unknown_match", [False, True])
def test_one_querys_tables_agree_with_the_plain_interactions(name, unknown_match):
    options = {"interactions": ["cosine", "dot", "exact"]} if name == "match_pyramid" else {}
    model = build(name, unknown_match, **options)
    query_ids = torch.tensor([[5, UNK_ID, 7]] * 3)
    doc_ids = torch.tensor([[UNK_ID, 5, 9, UNK_ID, 7], [UNK_ID, UNK_ID, PAD_ID, PAD_ID, PAD_ID], [8, 7, 6, 5, 4]])
    plain = model.interaction_matrix(query_ids, doc_ids).detach()  # under autograd: the plain path
    with torch.inference_mode():
        tables = model.interaction_matrix(query_ids, doc_ids)
        scores = model(query_ids, doc_ids)
    torch.testing.assert_close(tables, plain, atol=1e-6, rtol=0)
    if name == "match_pyramid":
        with torch.no_grad():
            torch.testing.assert_close(scores, model.plain_forward(query_ids, doc_ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_unknown_words_keep_padding_invariance(name):
    model = build(name)
    query_ids, doc_ids = unknown_batch()
    with torch.no_grad():
        scores = model(query_ids, doc_ids)
        padded = model(F.pad(query_ids, (0, 2)), F.pad(doc_ids, (0, 3)))
    torch.testing.assert_close(padded, scores, atol=1e-5, rtol=0)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", [name for name in MODELS if not model_classes(name)[0].has_interaction_matrix])
def test_a_representation_model_reads_unknown_words_as_absent(name):
    # No cells to zero: an unknown word is left out of its text's vector, so a text of unknown words only reads as
    # the same text with those words gone.
    model = build(name)
    with torch.no_grad():
        unknown = model(torch.tensor([[5, UNK_ID, UNK_ID]]), torch.tensor([[UNK_ID, 7, UNK_ID, 9]]))
        old = build(name, unknown_match=True)(
            torch.tensor([[5, UNK_ID, UNK_ID]]), torch.tensor([[UNK_ID, 7, UNK_ID, 9]])
        )
        query_mask, doc_mask = torch.tensor([[True, False, False]]), torch.tensor([[False, True, False, True]])
        absent = model(torch.tensor([[5, 3, 3]]), torch.tensor([[3, 7, 3, 9]]), query_mask, doc_mask)
    torch.testing.assert_close(unknown, absent)
    assert not torch.equal(old, unknown)


# -- the issue's example: unrelated unknown texts against a genuine English match -------------------------------

ENGLISH = [
    ("who wrote hamlet", "hamlet is a tragedy written by william shakespeare", 1.0),
    ("who wrote hamlet", "paris is the capital of france", 0.0),
    ("where does the thames flow", "the thames flows through london", 1.0),
    ("where does the thames flow", "glaciers are rivers of ice", 0.0),
    ("capital of france", "paris is the capital of france", 1.0),
    ("capital of france", "the thames flows through london", 0.0),
    ("rivers of ice", "glaciers are rivers of ice", 1.0),
    ("rivers of ice", "hamlet is a tragedy written by william shakespeare", 0.0),
]
GENUINE = ("who wrote hamlet", "hamlet is a tragedy written by william shakespeare")
UNKNOWN_PAIRS = [
    ("من كتب هاملت", "这是一个关于天气的句子"),  # Arabic against Chinese
    ("blorf quazzle snig", "zorp wibble frumious blick"),  # nonsense against other nonsense
]


def encode(vocab: Vocab, tokenizer: Tokenizer, pairs) -> tuple[torch.Tensor, torch.Tensor]:
    def padded(texts):
        ids = [vocab.encode(tokens) or [UNK_ID] for tokens in tokenizer.tokenize_batch(texts)]
        width = max(map(len, ids))
        return torch.tensor([row + [PAD_ID] * (width - len(row)) for row in ids])

    return padded([query for query, *_ in pairs]), padded([doc for _, doc, *_ in pairs])


def trained(name: str, unknown_match: bool, steps: int):
    tokenizer = Tokenizer()
    vocab = Vocab.build(tokenizer.tokenize_batch([text for pair in ENGLISH for text in pair[:2]]))
    torch.manual_seed(0)
    model = build_model(name, len(vocab), {"embedding_dim": 8, "unknown_match": unknown_match})
    query_ids, doc_ids = encode(vocab, tokenizer, ENGLISH)
    labels = torch.tensor([label for *_, label in ENGLISH])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        F.binary_cross_entropy_with_logits(model(query_ids, doc_ids), labels).backward()
        optimizer.step()
    return model.eval(), vocab, tokenizer


@pytest.mark.parametrize("name", ["knrm", "match_pyramid"])
def test_unrelated_unknown_texts_no_longer_outscore_a_genuine_match(name):
    model, vocab, tokenizer = trained(name, unknown_match=False, steps=60)
    old, _, _ = trained(name, unknown_match=True, steps=60)
    query_ids, doc_ids = encode(vocab, tokenizer, [GENUINE, *UNKNOWN_PAIRS])
    assert (query_ids[1:] == UNK_ID).logical_or(query_ids[1:] == PAD_ID).all()  # the texts are unknown indeed
    with torch.no_grad():
        genuine, *unknown = model(query_ids, doc_ids).tolist()
        old_genuine, *old_unknown = old(query_ids, doc_ids).tolist()
    assert all(score < genuine for score in unknown)
    assert all(score > old_genuine for score in old_unknown)  # the bug, as the issue found it


@pytest.mark.parametrize("name", INTERACTION_MODELS)
def test_an_untrained_model_sees_no_evidence_in_unknown_texts(name):
    tokenizer = Tokenizer()
    vocab = Vocab.build(tokenizer.tokenize_batch([text for pair in ENGLISH for text in pair[:2]]))
    torch.manual_seed(0)
    model = build_model(name, len(vocab), {"embedding_dim": 8, **SMALL.get(name, {})}).eval()
    query_ids, doc_ids = encode(vocab, tokenizer, [GENUINE, *UNKNOWN_PAIRS])
    with torch.no_grad():
        cells = model.interaction_matrix(query_ids, doc_ids)
    assert torch.count_nonzero(cells[1:]) == 0
    assert torch.count_nonzero(cells[0]) > 0


# -- settings saved with checkpoints ---------------------------------------------------------------------------


def test_a_saved_config_without_the_option_keeps_the_old_behaviour():
    for name in MODELS:
        saved = model_config_to_dict(model_classes(name)[1]())
        del saved["unknown_match"]  # as a checkpoint written before issue 22 holds it
        assert build_model(name, VOCAB_SIZE, saved_model_config(name, saved)).config.unknown_match is True
        assert build_model(name, VOCAB_SIZE, saved).config.unknown_match is False  # a user's config: the default
        saved["unknown_match"] = False  # a checkpoint written since keeps its value
        assert saved_model_config(name, saved)["unknown_match"] is False
    assert SAVED_CONFIG_DEFAULTS == {"unknown_match": True}
    for name in set(model_names()) - set(MODELS):  # rankers without the option get nothing they would refuse
        assert "unknown_match" not in saved_model_config(name, {})
    assert saved_model_config("cnn", {})["unknown_match"] is True  # aliases resolve


def test_a_new_config_round_trips_with_the_fix():
    for name in MODELS:
        saved = json.loads(json.dumps(model_config_to_dict(build(name).config)))
        assert saved["unknown_match"] is False
        assert build_model(name, VOCAB_SIZE, saved_model_config(name, saved)).config.unknown_match is False


def test_the_format_1_fixture_rebuilds_with_the_old_behaviour_and_its_recorded_scores(monkeypatch):
    pytest.importorskip("bm25s")
    from neurank.inference import checkpoint as checkpoint_module
    from neurank.inference import load_reranker
    from neurank.inference.checkpoint import CheckpointWarning

    raw = torch.load(FIXTURES / "checkpoint-format-1.pt", weights_only=True)
    assert "unknown_match" not in raw["model_config"]
    config = saved_model_config(raw["model_name"], raw["model_config"])
    assert build_model(raw["model_name"], len(raw["vocab"]["tokens"]), config).config.unknown_match is True

    # What `load_ranker` does once it passes the saved config through `saved_model_config`.
    def rebuild(name, vocab_size, values, embeddings=None):
        return build_model(name, vocab_size, saved_model_config(name, values), embeddings=embeddings)

    monkeypatch.setattr(checkpoint_module, "build_model", rebuild)
    expected = json.loads((FIXTURES / "checkpoint-format-1.json").read_text(encoding="utf-8"))["predict"]
    with pytest.warns(CheckpointWarning):
        reranker = load_reranker(FIXTURES / "checkpoint-format-1.pt", device="cpu")
    assert reranker.model.config.unknown_match is True
    triples = [tuple(triple) for triple in expected["triples"]]
    assert reranker.predict(triples).tolist() == pytest.approx(expected["scores"], abs=1e-6)


@pytest.mark.slow  # torch.export and onnxruntime, 3-10 s a model
@pytest.mark.parametrize("name", ["match_pyramid", "conv_knrm", "compare_aggregate", "duet"])
def test_the_zeroing_exports_to_onnx_with_unknown_words_anywhere(name, tmp_path):
    # One model per mechanism: word interactions, n-gram windows, attention, a representation's masks.
    pytest.importorskip("onnxruntime")
    import numpy as np
    import onnxruntime as ort

    from neurank.inference.export import export_model_onnx
    from neurank.inference.onnx_reranker import OnnxScorer
    from neurank.inference.scorer import InferenceOptions, Scorer

    model = build(name)
    info = export_model_onnx(model, name, tmp_path / "model.onnx", max_query_len=6, max_doc_len=24)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_scorer = OnnxScorer(session, False, info["static_lengths"], InferenceOptions(batch_size=4))
    rng = np.random.default_rng(0)
    queries = [rng.integers(1, 6, rng.integers(1, 7)).tolist() for _ in range(12)]  # ids 1..5: many UNKs
    docs = [rng.integers(1, 6, rng.integers(1, 25)).tolist() for _ in range(12)]
    queries[0], docs[0] = [UNK_ID] * 3, [UNK_ID] * 7
    expected = Scorer(model, InferenceOptions(batch_size=4)).score(queries, docs, None)
    np.testing.assert_allclose(onnx_scorer.score(queries, docs, None), expected, atol=1e-5, rtol=0)
