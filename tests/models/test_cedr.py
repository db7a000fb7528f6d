"""The contextual interaction models (CEDR, MacAvaney et al. 2019) and zero-shot pooled-cosine scoring, on a tiny BERT
folder the tests write themselves (2 layers, hidden 32, 74 word pieces). Nothing is downloaded.

The registry's contract, FLOP, explain, scorer and ONNX tests check the defaults (a tiny random BERT from an inline
config); these check what needs a folder, against the transformer run directly through `transformers`: the
interaction matrices, the pooled vectors, the cache, the checkpoint round trip without the folder, and training.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurank.inference.checkpoint import save_checkpoint
from neurank.inference.scorer import pad_ids
from neurank.models import build_model, model_config_to_dict
from neurank.text import WordPieceEncoder

transformers = pytest.importorskip("transformers")

PAIRS = [
    ("who wrote hamlet", "hamlet is a tragedy written by william shakespeare"),
    ("who wrote hamlet", "paris is the capital of france"),
    ("what is the capital of france", "paris is the capital of france"),
    ("where does the thames flow", "the thames flows through london and on to the sea at last"),
]
FROZEN = ["cedr_cnn", "cedr_knrm", "cedr_pacrr"]
CONTEXTUAL = ["cedr_cnn_joint", *FROZEN]


def encode(encoder, pairs):
    query_ids, query_mask = pad_ids(encoder.encode_queries([q for q, _ in pairs]))
    doc_ids, doc_mask = pad_ids(encoder.encode_docs([d for _, d in pairs]))
    return query_ids, doc_ids, query_mask, doc_mask


def hidden_states(folder, ids, token_type_ids=None):
    """Every hidden state of the folder's BERT for one sequence of ids, run by transformers directly: (C, L, H)."""
    bert = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    inputs = {"input_ids": torch.tensor([ids])}
    if token_type_ids is not None:
        inputs["token_type_ids"] = torch.tensor([token_type_ids])
    with torch.no_grad():
        return torch.stack(bert(**inputs, output_hidden_states=True).hidden_states)[:, 0]


@pytest.mark.parametrize("name", [*CONTEXTUAL, "pooled_cosine"])
def test_loads_the_pretrained_weights(tiny_bert_folder, name):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model(name, encoder.vocab_size, {"hf_model": str(tiny_bert_folder)})
    pretrained = transformers.AutoModel.from_pretrained(str(tiny_bert_folder), local_files_only=True)
    weights = model.encoder.state_dict()
    for key, tensor in pretrained.state_dict().items():
        if not key.startswith("pooler."):  # never read, so dropped
            assert torch.equal(weights[key], tensor), key
    assert model.config.hf_config["model_type"] == "bert" and (model.config.cls_id, model.config.sep_id) == (2, 3)
    frozen = name in FROZEN
    assert all(p.requires_grad != frozen for p in model.encoder.parameters())


def test_joint_interactions_are_the_cosines_of_the_pairs_hidden_states(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model("cedr_cnn_joint", encoder.vocab_size, {"hf_model": str(tiny_bert_folder), "layers": [0, 2]})
    query_ids, doc_ids, query_mask, doc_mask = encode(encoder, PAIRS)
    with torch.no_grad():
        matrices = model.eval().interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)
    assert matrices.shape == (4, 2, query_ids.shape[1], doc_ids.shape[1])
    for i, (query, doc) in enumerate(PAIRS):
        q, d = encoder.encode_queries([query])[0], encoder.encode_docs([doc])[0]
        states = hidden_states(
            tiny_bert_folder, [2, *q, 3, *d, 3], [0] * (len(q) + 2) + [1] * (len(d) + 1)
        )  # [CLS] q [SEP] d [SEP]
        for channel, layer in enumerate([0, 2]):
            query_vectors, doc_vectors = states[layer, 1 : 1 + len(q)], states[layer, 2 + len(q) : 2 + len(q) + len(d)]
            expected = F.normalize(query_vectors, dim=-1) @ F.normalize(doc_vectors, dim=-1).T
            torch.testing.assert_close(matrices[i, channel, : len(q), : len(d)], expected, atol=1e-5, rtol=0)
        assert matrices[i, :, len(q) :].abs().sum() == 0 and matrices[i, :, :, len(d) :].abs().sum() == 0


@pytest.mark.parametrize("name", FROZEN)
def test_frozen_interactions_are_the_cosines_of_each_text_encoded_alone(tiny_bert_folder, name):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model(name, encoder.vocab_size, {"hf_model": str(tiny_bert_folder)}).eval()
    query_ids, doc_ids, query_mask, doc_mask = encode(encoder, PAIRS)
    with torch.no_grad():
        matrices = model.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)
    assert matrices.shape[1] == 3  # every hidden state by default: the embeddings and 2 layers
    for i, (query, doc) in enumerate(PAIRS):
        q, d = encoder.encode_queries([query])[0], encoder.encode_docs([doc])[0]
        query_states = hidden_states(tiny_bert_folder, [2, *q, 3])[:, 1:-1]  # [CLS] q [SEP], alone
        doc_states = hidden_states(tiny_bert_folder, [2, *d, 3])[:, 1:-1]
        expected = F.normalize(query_states, dim=-1) @ F.normalize(doc_states, dim=-1).transpose(1, 2)
        torch.testing.assert_close(matrices[i, :, : len(q), : len(d)], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", FROZEN)
def test_the_cache_computes_each_text_once_and_changes_no_score(tiny_bert_folder, name):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    torch.manual_seed(0)
    model = build_model(name, encoder.vocab_size, {"hf_model": str(tiny_bert_folder)})
    uncached = build_model(name, encoder.vocab_size, {**model_config_to_dict(model.config), "cache": False})
    uncached.load_state_dict(model.state_dict())
    batch = encode(encoder, PAIRS)
    calls = []
    model.encoder.register_forward_hook(lambda module, args, kwargs_or_output: calls.append(1))
    model.train()  # training mode: the frozen transformer stays in eval mode (no dropout), so vectors are cacheable
    assert not model.encoder.training
    model.eval()
    with torch.no_grad():
        first = model(*batch)
        texts = len({q for q, _ in PAIRS} | {d for _, d in PAIRS})
        assert model.cache_size == texts and len(calls) == 2  # one batch of new queries, one of new documents
        again = model(*batch)
        assert len(calls) == 2 and torch.equal(again, first)  # all from the cache
        torch.testing.assert_close(uncached.eval()(*batch), first, atol=1e-6, rtol=0)
    model.load_state_dict(model.state_dict())  # new weights make the cache stale
    assert model.cache_size == 0
    full = build_model(name, encoder.vocab_size, {**model_config_to_dict(model.config), "cache_max_mb": 0})
    with torch.no_grad():
        full.eval()(*batch)
    assert full.cache_size == 0  # no room: nothing kept


def test_float16_cache_rounds_cached_and_uncached_vectors_alike(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    options = {"hf_model": str(tiny_bert_folder), "cache_dtype": "float16"}
    torch.manual_seed(0)
    model = build_model("cedr_knrm", encoder.vocab_size, options).eval()
    uncached = build_model("cedr_knrm", encoder.vocab_size, {**model_config_to_dict(model.config), "cache": False})
    uncached.load_state_dict(model.state_dict())
    batch = encode(encoder, PAIRS)
    with torch.no_grad():
        torch.testing.assert_close(uncached.eval()(*batch), model(*batch), atol=1e-6, rtol=0)
    assert all(t.dtype == torch.float16 for value in model._cache.values() for t in value)


def test_layers_choose_the_channels_and_bad_ones_are_refused(tiny_bert_folder):
    model = build_model("cedr_pacrr", 74, {"hf_model": str(tiny_bert_folder), "layers": [2]})
    query_ids = torch.tensor([[5, 6, 7]])
    assert model.interaction_matrix(query_ids, torch.tensor([[7, 8, 9, 10]])).shape == (1, 1, 3, 4)
    with pytest.raises(ValueError, match=r"layers: the transformer has hidden states 0\.\.2"):
        build_model("cedr_cnn", 74, {"hf_model": str(tiny_bert_folder), "layers": [3]})
    with pytest.raises(ValueError, match="layers: a layer is listed twice"):
        build_model("cedr_cnn", 74, {"layers": [1, 1]})
    with pytest.raises(ValueError, match="reads the pretrained transformer's own word-piece embeddings"):
        build_model("cedr_knrm", 40, {}, embeddings=torch.zeros(40, 8))
    with pytest.raises(ValueError, match="cache_dtype: expected one of"):
        build_model("cedr_knrm", 40, {"cache_dtype": "int8"})


def test_pooled_cosine_is_the_cosine_of_mean_pooled_vectors(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model("pooled_cosine", encoder.vocab_size, {"hf_model": str(tiny_bert_folder)}).eval()
    with torch.no_grad():
        scores = model(*encode(encoder, PAIRS))
    for i, (query, doc) in enumerate(PAIRS):
        q, d = encoder.encode_queries([query])[0], encoder.encode_docs([doc])[0]
        query_vector = hidden_states(tiny_bert_folder, [2, *q, 3])[-1].mean(0)  # every token, [CLS] and [SEP] too
        doc_vector = hidden_states(tiny_bert_folder, [2, *d, 3])[-1].mean(0)
        expected = F.cosine_similarity(query_vector, doc_vector, dim=0)
        torch.testing.assert_close(scores[i], expected, atol=1e-5, rtol=0)


def test_pooled_cosine_frozen_caches_and_learns_only_its_scale(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model("pooled_cosine", encoder.vocab_size, {"hf_model": str(tiny_bert_folder), "freeze": True})
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["scale", "bias"]
    model.eval()
    with torch.no_grad():
        first = model(*encode(encoder, PAIRS))
    assert model.cache_size == 6
    with torch.no_grad():
        assert torch.equal(model(*encode(encoder, PAIRS)), first)


@pytest.mark.parametrize("name", ["cedr_cnn_joint", "cedr_knrm", "pooled_cosine"])
def test_a_checkpoint_rebuilds_the_reranker_without_the_folder(tiny_bert_folder, tmp_path, name):
    from neurank import load_reranker
    from neurank.inference.reranker import Reranker

    encoder = WordPieceEncoder.from_folder(tiny_bert_folder, max_query_len=8, max_doc_len=30)
    torch.manual_seed(0)
    model = build_model(name, encoder.vocab_size, {"hf_model": str(tiny_bert_folder)})
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad and parameter.dim() == 2:
                parameter.add_(torch.randn_like(parameter) * 0.01)  # trained weights, not the initial ones
    expected = Reranker(model, encoder, device="cpu", first_stage=None).predict(PAIRS)
    path = tmp_path / "best.pt"
    save_checkpoint(
        path,
        {
            "model_name": name,
            "model_config": model_config_to_dict(model.config),
            "state_dict": model.state_dict(),
            **encoder.to_dict(),
            "first_stage": None,
        },
    )
    shutil.rmtree(tiny_bert_folder)  # the checkpoint alone must do
    np.testing.assert_allclose(load_reranker(path, device="cpu").predict(PAIRS), expected, atol=1e-6, rtol=0)


def test_data_preparation_takes_the_word_pieces_for_every_transformer_model(tiny_bert_folder, tiny_config):
    from neurank.config import config_from_dict
    from neurank.data.prepare import WORD_PIECE_MODELS, word_piece_folder

    for name in [*CONTEXTUAL, "pooled_cosine"]:
        assert name in WORD_PIECE_MODELS
        values = tiny_config.to_dict()
        values["model"], values["model_config"] = name, {"hf_model": str(tiny_bert_folder)}
        assert word_piece_folder(config_from_dict(values)) == tiny_bert_folder


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cedr_knrm", "cedr_cnn_joint"])
def test_neuranks_loop_trains_it_from_a_config(tiny_bert_folder, tiny_config, tmp_path, name):
    """`prepare_data` takes the folder's word pieces and `train` trains the model; best.pt re-ranks alone."""
    from neurank import load_reranker
    from neurank.config import config_from_dict
    from neurank.training import train

    values = tiny_config.to_dict()
    values["model"], values["model_config"] = name, {"hf_model": str(tiny_bert_folder)}
    values["train"] = {**values["train"], "epochs": 2, "lr": 1e-3}
    result = train(config_from_dict(values), tmp_path / "run", progress=False)
    assert result["epochs"] == 2 and np.isfinite(result["best_metric"])
    shutil.rmtree(tiny_bert_folder)
    scores = load_reranker(tmp_path / "run" / "best.pt", device="cpu").predict(PAIRS)
    assert scores.shape == (len(PAIRS),) and np.isfinite(scores).all()


def test_lists_from_yaml_become_tuples():
    from neurank.models.cedr import CEDRKNRMConfig

    config = CEDRKNRMConfig(layers=[0, 1], dense_sizes=[4])
    assert dataclasses.asdict(config)["layers"] == (0, 1) and config.dense_sizes == (4,)


def test_a_model_with_a_filled_cache_copies_and_a_copy_forgets_on_new_weights():
    import copy

    model = build_model("cedr_knrm", 40).eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        score = model(ids, ids)
    assert model.cache_size == 1
    restored = copy.deepcopy(model)
    with torch.no_grad():
        assert torch.equal(restored(ids, ids), score)
    restored.load_state_dict(model.state_dict())
    assert restored.cache_size == 0 and model.cache_size == 1


def test_pooled_cosine_scale_sets_the_temperature_not_the_ranking(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    torch.manual_seed(0)
    plain = build_model("pooled_cosine", encoder.vocab_size, {"hf_model": str(tiny_bert_folder)}).eval()
    hot = build_model("pooled_cosine", encoder.vocab_size, {"hf_model": str(tiny_bert_folder), "scale": 20.0}).eval()
    with torch.no_grad():
        cosine, scaled = plain(*encode(encoder, PAIRS)), hot(*encode(encoder, PAIRS))
    torch.testing.assert_close(scaled, 20.0 * cosine, atol=1e-4, rtol=0)
    assert cosine.std() > 0  # the pairs differ, so the check above compares a ranking, not constants
    with pytest.raises(ValueError, match="scale: expected a positive number"):
        build_model("pooled_cosine", encoder.vocab_size, {"hf_model": str(tiny_bert_folder), "scale": 0.0})


# --- the shared store of frozen text vectors -------------------------------------------------------------------------
# Every tiny_bert_folder holds the same weights (seeded), so a model in one test would read what another test's model
# computed; each test here starts with no store, so that counting encoder calls means something.


@pytest.fixture(autouse=True)
def no_shared_stores():
    from neurank.models.cedr import clear_shared_caches

    clear_shared_caches()
    yield
    clear_shared_caches()


def encoder_calls(model):
    """A list that grows by one each time the model's transformer runs."""
    calls = []
    model.encoder.register_forward_hook(lambda module, args, output: calls.append(1))
    return calls


def uncached_twin(model):
    """The same model (same weights) with `cache: false`."""
    name = getattr(model, "model_name", "pooled_cosine")
    twin = build_model(name, model.vocab_size, {**model_config_to_dict(model.config), "cache": False})
    twin.load_state_dict(model.state_dict())
    return twin.eval()


@pytest.mark.parametrize("name", [*FROZEN, "pooled_cosine"])
def test_models_built_from_one_folder_share_vectors_and_score_as_uncached(tiny_bert_folder, name):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    options = {"hf_model": str(tiny_bert_folder), **({"freeze": True} if name == "pooled_cosine" else {})}
    batch = encode(encoder, PAIRS)
    torch.manual_seed(0)
    first = build_model(name, encoder.vocab_size, options).eval()
    first_calls = encoder_calls(first)
    with torch.no_grad():
        first(*batch)
    assert len(first_calls) == 2 and first.cache_size == 6
    torch.manual_seed(1)  # a second seed: other reader weights, the same frozen transformer
    second = build_model(name, encoder.vocab_size, options).eval()
    second_calls = encoder_calls(second)
    with torch.no_grad():
        scores = second(*batch)
        assert second_calls == [] and second.cache_size == 6  # every text from the first model's store
        torch.testing.assert_close(uncached_twin(second)(*batch), scores, atol=1e-6, rtol=0)
    assert second._cache is first._cache


def test_the_frozen_cedr_readers_share_one_store_and_other_settings_do_not(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    folder = {"hf_model": str(tiny_bert_folder)}
    batch = encode(encoder, PAIRS)
    with torch.no_grad():
        build_model("cedr_knrm", encoder.vocab_size, folder).eval()(*batch)
        for name, options, computes in [
            ("cedr_cnn", folder, False),  # the same token vectors, another reader
            ("cedr_pacrr", folder, False),
            ("cedr_cnn", {**folder, "layers": [1, 2]}, True),
            ("cedr_cnn", {**folder, "cache_dtype": "float16"}, True),
            ("cedr_cnn", {**folder, "cache_max_mb": 100}, True),  # a store has one budget
            ("pooled_cosine", {**folder, "freeze": True}, True),  # a pooled vector, not token vectors
        ]:
            model = build_model(name, encoder.vocab_size, options).eval()
            calls = encoder_calls(model)
            scores = model(*batch)
            assert (len(calls) == 2) == computes, (name, options)
            torch.testing.assert_close(uncached_twin(model)(*batch), scores, atol=1e-6, rtol=0)


def test_models_whose_encoder_weights_differ_do_not_share(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    folder = {"hf_model": str(tiny_bert_folder)}
    batch = encode(encoder, PAIRS)
    reference = build_model("cedr_knrm", encoder.vocab_size, folder).eval()
    with torch.no_grad():
        expected = reference(*batch)

    def fresh_scores(model, twin=None):
        # The model computes every text again and scores as its uncached twin does.
        calls = encoder_calls(model)
        with torch.no_grad():
            scores = model(*batch)
            torch.testing.assert_close((twin or uncached_twin(model))(*batch), scores, atol=1e-6, rtol=0)
        assert len(calls) == 2
        return scores

    def shared(model):
        # A model of the reference's weights that has read the reference's store.
        model.load_state_dict(reference.state_dict())
        calls = encoder_calls(model)
        with torch.no_grad():
            assert torch.equal(model(*batch), expected) and calls == []
        return model

    loaded = build_model("cedr_knrm", encoder.vocab_size, folder).eval()
    loaded.load_state_dict(reference.state_dict())
    state = loaded.state_dict()
    state["encoder.embeddings.word_embeddings.weight"] = state["encoder.embeddings.word_embeddings.weight"] * 1.5
    loaded.load_state_dict(state)  # a checkpoint of other frozen weights
    assert not torch.allclose(fresh_scores(loaded), expected)

    in_place = shared(build_model("cedr_knrm", encoder.vocab_size, folder).eval())
    with torch.no_grad():
        in_place.encoder.encoder.layer[0].output.dense.weight.mul_(2.0)  # changed in place, no load
    assert not torch.allclose(fresh_scores(in_place), expected)

    replaced = shared(build_model("cedr_knrm", encoder.vocab_size, folder).eval())
    torch.manual_seed(2)
    replaced.encoder.encoder.layer[1].output.dense = torch.nn.Linear(37, 32)  # a new module, new weights
    assert not torch.allclose(fresh_scores(replaced), expected)

    moved = shared(build_model("cedr_knrm", encoder.vocab_size, folder).eval())
    moved.half().float()  # a round trip through float16 rounds the weights (the readers' buffers too)
    twin = uncached_twin(reference).half().float()
    assert not torch.allclose(fresh_scores(moved, twin), expected)
    encoder_only = shared(build_model("cedr_knrm", encoder.vocab_size, folder).eval())
    encoder_only.encoder.bfloat16().float()  # the transformer alone, past the ranker's `.to()`
    twin = uncached_twin(reference)
    twin.encoder.bfloat16().float()
    assert not torch.allclose(fresh_scores(encoder_only, twin), expected)

    exact = shared(build_model("cedr_knrm", encoder.vocab_size, folder).eval())
    exact.double().float()  # a round trip through float64 keeps the weights: the model shares again
    calls = encoder_calls(exact)
    with torch.no_grad():
        assert torch.equal(exact(*batch), expected) and calls == []
        position_ids = exact.encoder.embeddings.position_ids
        position_ids.copy_(position_ids.clone())  # as DistributedDataParallel broadcasts buffers: the same values
        assert torch.equal(exact(*batch), expected) and calls == []
        with torch.autocast("cpu", dtype=torch.bfloat16):  # other numbers: another store
            exact(*batch)
    assert len(calls) == 2

    with torch.no_grad():
        assert reference.cache_size == 6 and torch.equal(reference(*batch), expected)  # its store is still there
    for seed in (0, 1):  # random transformers (no folder) of other seeds
        torch.manual_seed(seed)
        fresh_scores(build_model("cedr_knrm", encoder.vocab_size).eval())


def test_clearing_frees_the_shared_vectors_and_models_compute_again(tiny_bert_folder):
    import gc
    import weakref

    from neurank.models.cedr import clear_shared_caches

    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    folder = {"hf_model": str(tiny_bert_folder)}
    batch = encode(encoder, PAIRS)
    first, second = (build_model("cedr_pacrr", encoder.vocab_size, folder).eval() for _ in range(2))
    calls = encoder_calls(second)
    with torch.no_grad():
        first(*batch)
        second(*batch)
        assert calls == [] and second.cache_size == 6
        held = first._cache_bytes
        cached = weakref.ref(next(iter(first._cache.values()))[0])
        assert clear_shared_caches() == held > 0
        gc.collect()
        assert cached() is None and first.cache_size == 0 and second.cache_size == 0
        second(*batch)
        assert len(calls) == 2 and first.cache_size == 6  # one store again, for both
        first.clear_cache()  # one model's clear_cache empties the store it shares
        assert second.cache_size == 0
        second(*batch)
        assert len(calls) == 4
        del first
        gc.collect()
        cached = weakref.ref(next(iter(second._cache.values()))[0])
        second.encoder.embeddings.word_embeddings.weight.mul_(2.0)
        second(*batch)  # other weights, another store: the old one, which no live model reads, is dropped
        gc.collect()
        assert len(calls) == 6 and cached() is None


def test_models_sharing_a_store_share_its_budget(tiny_bert_folder):
    folder = {"hf_model": str(tiny_bert_folder), "cache_max_mb": 1}
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 74, (300, 20), generator=generator)  # 300 texts of 20 tokens: 2.2 MB of vectors
    mask = torch.ones_like(ids, dtype=torch.bool)
    first, second = (build_model("cedr_knrm", 74, folder).eval() for _ in range(2))
    uncached = uncached_twin(first)
    with torch.no_grad():
        for model, rows in [(first, slice(0, 150)), (second, slice(150, 300))]:
            vectors, cls, _ = model.text_vectors(ids[rows], mask[rows])
            expected_vectors, expected_cls, _ = uncached.text_vectors(ids[rows], mask[rows])
            torch.testing.assert_close(vectors, expected_vectors, atol=1e-6, rtol=0)
            torch.testing.assert_close(cls, expected_cls, atol=1e-6, rtol=0)
    text_bytes = 3 * 20 * 32 * 4 + 32 * 4  # 3 layers of 20 tokens of 32 floats, and [CLS]
    assert first._cache is second._cache and first._cache_bytes == second._cache_bytes
    assert first.cache_size == 2**20 // text_bytes and first._cache_bytes <= 2**20  # 1 MB for both, not each
