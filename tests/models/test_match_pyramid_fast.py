"""MatchPyramid's fast forward (in-place masking, pooling before the activation, channels-last scoring) computes what
the plain formulation computes: activation after every convolution, re-mask, then dynamic max pooling."""

from __future__ import annotations

import pytest
import torch

from neurank.models import build_model
from neurank.models.layers import dynamic_max_pool, pair_mask, resolve_masks, with_first_stage_score
from neurank.text import PAD_ID

VOCAB_SIZE = 60


def plain_forward(model, query_ids, doc_ids, first_stage_score=None):
    """The textbook MatchPyramid forward, as the model computed it before the fast path."""
    query_mask, doc_mask = resolve_masks(query_ids, doc_ids, None, None)
    x = model.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)
    cell_mask = pair_mask(query_mask, doc_mask)[:, None].to(x.dtype)
    for conv in model.convs:
        x = model.activation(conv(x)) * cell_mask
    pooled = dynamic_max_pool(x, query_mask.sum(1), doc_mask.sum(1), model.config.pool_size)
    features = with_first_stage_score(model.dropout(pooled.flatten(1)), first_stage_score, model.config)
    return model.score(features).squeeze(1)


def batch(seed, batch_size, query_len, doc_len):
    generator = torch.Generator().manual_seed(seed)
    query_ids = torch.randint(1, VOCAB_SIZE, (batch_size, query_len), generator=generator)  # UNK (1) included
    doc_ids = torch.randint(1, VOCAB_SIZE, (batch_size, doc_len), generator=generator)
    doc_ids[:, : min(3, doc_len, query_len)] = query_ids[:, : min(3, doc_len, query_len)]
    query_lengths = torch.randint(1, query_len + 1, (batch_size,), generator=generator)
    doc_lengths = torch.randint(1, doc_len + 1, (batch_size,), generator=generator)
    query_lengths[0], doc_lengths[0] = query_len, doc_len
    query_ids[torch.arange(query_len) >= query_lengths[:, None]] = PAD_ID
    doc_ids[torch.arange(doc_len) >= doc_lengths[:, None]] = PAD_ID
    return query_ids, doc_ids, torch.rand(batch_size, generator=generator)


CONFIGS = [
    {"interactions": ["cosine", "exact"], "use_first_stage_score": True},
    {"interactions": ["cosine", "dot", "exact"], "activation": "tanh", "conv_channels": [4, 8, 6], "kernel_sizes": [3, [1, 5], 3]},
    {"activation": "leaky_relu", "pool_size": [5, 7]},
    {"activation": "gelu", "conv_channels": [6, 5]},
    {"interactions": ["exact"], "conv_channels": [8], "kernel_sizes": [[1, 3]], "pool_size": [2, 4]},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("shape", [(6, 5, 23), (3, 1, 40), (4, 12, 7), (2, 1, 1)])
def test_scores_equal_the_plain_formulation(config, shape):
    torch.manual_seed(0)
    model = build_model("match_pyramid", VOCAB_SIZE, config).eval()
    query_ids, doc_ids, first_stage_score = batch(1, *shape)
    with torch.inference_mode():
        fast = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        plain = plain_forward(model, query_ids, doc_ids, first_stage_score)
    torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_training_gradients_equal_the_plain_formulation(config):
    """In training the layout and every value are those of the plain forward, so gradients match bit for bit."""
    torch.manual_seed(0)
    model = build_model("match_pyramid", VOCAB_SIZE, {**config, "dropout": 0.0}).train()
    query_ids, doc_ids, first_stage_score = batch(2, 6, 5, 30)
    weights = torch.randn(6)
    gradients = []
    for forward in (lambda: model(query_ids, doc_ids, first_stage_score=first_stage_score), lambda: plain_forward(model, query_ids, doc_ids, first_stage_score)):
        model.zero_grad()
        scores = forward()
        (scores * weights).sum().backward()
        gradients.append((scores.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}))
    (fast_scores, fast_grads), (plain_scores, plain_grads) = gradients
    assert torch.equal(fast_scores, plain_scores)
    assert fast_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        assert torch.equal(fast_grads[name], plain_grads[name]), name


@pytest.mark.parametrize("shape,output_size", [((5, 3, 7, 23), (3, 10)), ((4, 1, 2, 3), (3, 5)), ((3, 6, 12, 40), (4, 4))])
def test_channels_last_pooling_equals_the_gather_pooling(shape, output_size):
    """Scoring pools channels-last tensors by whole channel vectors; the maxima are those of the gather formulation."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=generator)
    query_lengths = torch.randint(0, shape[2] + 1, (shape[0],), generator=generator)  # 0: an empty pair pools to 0
    doc_lengths = torch.randint(0, shape[3] + 1, (shape[0],), generator=generator)
    query_lengths[0], doc_lengths[0] = shape[2], shape[3]
    expected = dynamic_max_pool(x, query_lengths, doc_lengths, output_size)
    pooled = dynamic_max_pool(x.contiguous(memory_format=torch.channels_last), query_lengths, doc_lengths, output_size)
    assert torch.equal(pooled, expected)

