"""The contract every registered ranker keeps: output shape [B], invariance to extra padding, a gradient for every
parameter, a tiny batch can be overfit, a save/load round trip gives identical scores, and `predict_proba` is the
sigmoid of the score.

New models join by registering; `VARIANTS` adds non-default configs worth checking under the same contract. Aliases
(other names of a registered model, such as "cnn" for MatchPyramid) are not in `model_names()`, so every model is
checked once, under its own name.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from neurank.models import Ranker, build_model, model_config_to_dict, model_names
from neurank.text import PAD_ID, UNK_ID

VOCAB_SIZE = 40
VARIANTS = {
    "compare_aggregate": [
        {"comparison": "nn", "windows": [2, 7], "null_attention": False, "use_first_stage_score": True},
        {"comparison": "sub", "hidden_size": 12, "freeze_embeddings": False, "dropout": 0.0},
        {"comparison": "mult", "windows": [1], "dropout": 0.3},
        {"exact_match": True, "windows": [1, 3], "use_first_stage_score": True},
    ],
    "pacrr": [
        {"min_ngram": 2, "max_ngram": 4, "k_max": 6, "use_idf": False, "use_first_stage_score": True},
        {"max_query_len": 3, "dense_sizes": [16], "n_filters": 8, "dropout": 0.1},
    ],
    "duet": [
        {"max_query_len": 3, "max_doc_len": 12, "doc_pool_size": 4, "hidden_dim": 16, "use_first_stage_score": True},
        {"window": 1, "doc_pool_size": 1, "max_doc_len": 30, "dropout": 0.0},
    ],
    "mvlstm": [
        {"interaction": "tensor", "shared_lstm": False, "use_first_stage_score": True, "tensor_channels": 3},
        {"interaction": "bilinear", "top_k": 50, "mlp_hidden": [], "dropout": 0.0},
    ],
    "tk": [{"n_layers": 1, "n_heads": 4, "ff_dim": 32, "dropout": 0.1, "use_first_stage_score": True}],
    "drmm": [
        {"histogram": "ch", "gating": "tv", "freeze_embeddings": False, "use_first_stage_score": True},
        {"histogram": "nh", "hidden_sizes": [8, 4], "dropout": 0.1},
    ],
    "arci": [
        {"conv_channels": [16, 16], "kernel_sizes": [3, 2], "pool_sizes": [2, 3], "use_first_stage_score": True},
        {"share_encoder": True, "activation": "tanh", "hidden_sizes": [], "pool_sizes": [1]},
    ],
    "knrm": [{"use_first_stage_score": True, "tanh_output": False, "dropout": 0.1, "n_kernels": 21, "sigma": 0.05}],
    "conv_knrm": [
        {"ngram_windows": "complete", "n_filters": 16, "use_first_stage_score": True, "tanh_output": False},
        {"cross_match": False, "max_ngram": 2, "n_filters": 8, "dropout": 0.1},
    ],
    "match_pyramid": [
        {"interactions": ["cosine", "dot", "exact"], "use_first_stage_score": True, "activation": "tanh"},
        {"interactions": ["exact"], "conv_channels": [8], "kernel_sizes": [[1, 3]], "pool_size": [2, 4]},
    ],
}
CASES = [(name, {}) for name in model_names()] + [
    (name, config) for name in model_names() for config in VARIANTS.get(name, [])
]


def case_id(case) -> str:
    name, config = case
    return name + ("" if not config else "-" + "-".join(f"{k}={v}" for k, v in config.items()))


@pytest.fixture(params=CASES, ids=[case_id(case) for case in CASES])
def case(request):
    return request.param


def make_batch(seed: int = 0, batch_size: int = 8, query_len: int = 5, doc_len: int = 20):
    """Right-padded ids with lengths that differ per example; every document repeats some of its query's tokens."""
    generator = torch.Generator().manual_seed(seed)
    query_ids = torch.randint(2, VOCAB_SIZE, (batch_size, query_len), generator=generator)
    doc_ids = torch.randint(2, VOCAB_SIZE, (batch_size, doc_len), generator=generator)
    doc_ids[:, 1:4] = query_ids[:, :3]  # matches for the exact-match and cosine paths
    # Unknown words (UNK) in queries and documents, which match nothing by default (issue 22), alone and together.
    query_ids[1, 0] = doc_ids[1, 0] = doc_ids[2, 4] = doc_ids[2, 5] = query_ids[3, 1] = UNK_ID
    query_lengths = torch.randint(1, query_len + 1, (batch_size,), generator=generator)
    doc_lengths = torch.randint(4, doc_len + 1, (batch_size,), generator=generator)
    query_lengths[0], doc_lengths[0] = query_len, doc_len  # one example fills the padded batch
    query_ids[torch.arange(query_len) >= query_lengths[:, None]] = PAD_ID
    doc_ids[torch.arange(doc_len) >= doc_lengths[:, None]] = PAD_ID
    first_stage_score = torch.randn(batch_size, generator=generator)
    labels = torch.tensor([1.0, 0.0] * (batch_size // 2))[torch.randperm(batch_size, generator=generator)]
    return query_ids, doc_ids, first_stage_score, labels


def build(case, seed: int = 0):
    name, config = case
    torch.manual_seed(seed)
    return build_model(name, VOCAB_SIZE, config)


def pad(ids: torch.Tensor, extra: int) -> torch.Tensor:
    return F.pad(ids, (0, extra), value=PAD_ID)


def test_output_is_one_logit_per_pair(case):
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    scores = model(query_ids, doc_ids, first_stage_score=first_stage_score)
    assert scores.shape == (8,) and scores.dtype == torch.float32 and torch.isfinite(scores).all()


def test_predict_proba_is_the_sigmoid_of_the_score(case):
    model = build(case).eval()
    assert isinstance(model, Ranker)
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        scores = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        probabilities = model.predict_proba(query_ids, doc_ids, first_stage_score=first_stage_score)
    assert torch.equal(probabilities, torch.sigmoid(scores))


def test_extra_padding_never_changes_a_score(case):
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, _ = make_batch()
    with torch.no_grad():
        scores = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        for extra_query, extra_doc in [(3, 0), (0, 7), (2, 11)]:
            padded = model(pad(query_ids, extra_query), pad(doc_ids, extra_doc), first_stage_score=first_stage_score)
            torch.testing.assert_close(padded, scores, atol=1e-5, rtol=0)
        # Explicit masks give the same scores as masks derived from PAD.
        masked = model(query_ids, doc_ids, query_ids != PAD_ID, doc_ids != PAD_ID, first_stage_score)
        torch.testing.assert_close(masked, scores, atol=1e-6, rtol=0)
        # Each example alone, unpadded, scores as it does inside the padded batch.
        for i in range(len(scores)):
            query, doc = query_ids[i][query_ids[i] != PAD_ID], doc_ids[i][doc_ids[i] != PAD_ID]
            alone = model(query[None], doc[None], first_stage_score=first_stage_score[i : i + 1])
            torch.testing.assert_close(alone, scores[i : i + 1], atol=1e-5, rtol=0)


def test_every_parameter_receives_a_gradient(case):
    model = build(case).eval()
    query_ids, doc_ids, first_stage_score, labels = make_batch()
    loss = F.binary_cross_entropy_with_logits(model(query_ids, doc_ids, first_stage_score=first_stage_score), labels)
    loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{name} received no gradient"
            assert parameter.grad.abs().sum() > 0, f"{name} received an all-zero gradient"


def test_a_tiny_batch_can_be_overfit(case):
    model = build(case)
    query_ids, doc_ids, first_stage_score, labels = make_batch(seed=1)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            predictions = (model(query_ids, doc_ids, first_stage_score=first_stage_score) > 0).float()
        model.train()
        return (predictions == labels).float().mean().item()

    for step in range(200):
        if step % 10 == 0 and accuracy() == 1.0:  # stop early: the test asks only that it can be done
            break
        optimizer.zero_grad()
        logits = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        F.binary_cross_entropy_with_logits(logits, labels).backward()
        optimizer.step()
    assert accuracy() == 1.0


def test_save_load_round_trip_gives_identical_scores(case, tmp_path):
    name, _ = case
    model = build(case, seed=0)
    model.train()  # move the weights off their initial values, so a fresh model would score differently
    query_ids, doc_ids, first_stage_score, labels = make_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    logits = model(query_ids, doc_ids, first_stage_score=first_stage_score)
    F.binary_cross_entropy_with_logits(logits, labels).backward()
    optimizer.step()
    path = tmp_path / "model.pt"
    torch.save({"config": json.dumps(model_config_to_dict(model.config)), "state_dict": model.state_dict()}, path)

    checkpoint = torch.load(path)
    torch.manual_seed(1)  # a different initialisation, which the state_dict must overwrite entirely
    restored = build_model(name, VOCAB_SIZE, json.loads(checkpoint["config"]))
    restored.load_state_dict(checkpoint["state_dict"])
    assert restored.config == model.config
    model.eval()
    restored.eval()
    with torch.no_grad():
        expected = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        assert torch.equal(restored(query_ids, doc_ids, first_stage_score=first_stage_score), expected)
