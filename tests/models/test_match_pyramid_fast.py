"""MatchPyramid's fast `forward` (one-query interaction tables, in-place masking, pooling before the activation,
channels-last scoring) gives the scores of `plain_forward`, the formulation the paper specifies: to float rounding when
scoring, and bit for bit (gradients included) under autograd, where both run the same layout and interactions."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch

from neurank.models import INTERACTIONS, build_model, dynamic_max_pool, shared_query
from neurank.text import PAD_ID

VOCAB_SIZE = 60

# Every non-empty set of interaction channels, in the configured order.
INTERACTION_OPTIONS = [list(kinds) for size in range(1, 4) for kinds in combinations(INTERACTIONS, size)]
# Settings of the convolution blocks beyond the defaults: every activation, deeper and narrower stacks, other grids.
CONFIGS = [
    {"interactions": ["cosine", "exact"], "use_first_stage_score": True},
    {
        "interactions": ["cosine", "dot", "exact"],
        "activation": "tanh",
        "conv_channels": [4, 8, 6],
        "kernel_sizes": [3, [1, 5], 3],
    },
    {"activation": "leaky_relu", "pool_size": [5, 7]},
    {"activation": "gelu", "conv_channels": [6, 5]},
    {"interactions": ["exact"], "conv_channels": [8], "kernel_sizes": [[1, 3]], "pool_size": [2, 4]},
]
# (batch size, query length, doc length, one query for the whole batch): padded batches of mixed lengths, one-token
# queries, queries longer than documents, a single cell, and one query's candidates (the one-query path).
SHAPES = [(6, 5, 23, False), (3, 1, 40, False), (4, 12, 7, False), (2, 1, 1, False), (8, 4, 30, True), (5, 1, 17, True)]


def config_id(config: dict) -> str:
    return "-".join(f"{key}={value}" for key, value in config.items())


def batch(seed: int, batch_size: int, query_len: int, doc_len: int, one_query: bool = False):
    """Right-padded ids of random lengths (the first pair fills the batch), UNK included, with some query tokens
    repeated in each document; with `one_query`, every pair has the first pair's query, padding included."""
    generator = torch.Generator().manual_seed(seed)
    query_ids = torch.randint(1, VOCAB_SIZE, (batch_size, query_len), generator=generator)
    doc_ids = torch.randint(1, VOCAB_SIZE, (batch_size, doc_len), generator=generator)
    query_lengths = torch.randint(1, query_len + 1, (batch_size,), generator=generator)
    doc_lengths = torch.randint(1, doc_len + 1, (batch_size,), generator=generator)
    query_lengths[0], doc_lengths[0] = query_len, doc_len
    if one_query:
        query_ids[:], query_lengths[:] = query_ids[0], max(1, query_len - 1)  # padded, when it can be
    shared = min(3, doc_len, query_len)
    doc_ids[:, :shared] = query_ids[:, :shared]
    query_ids[torch.arange(query_len) >= query_lengths[:, None]] = PAD_ID
    doc_ids[torch.arange(doc_len) >= doc_lengths[:, None]] = PAD_ID
    return query_ids, doc_ids, torch.rand(batch_size, generator=generator)


def assert_scores_equal_the_plain_forward(config: dict, shape: tuple[int, int, int, bool]) -> None:
    torch.manual_seed(0)
    model = build_model("match_pyramid", VOCAB_SIZE, config).eval()
    *sizes, one_query = shape
    query_ids, doc_ids, first_stage_score = batch(1, *sizes, one_query)
    assert shared_query(query_ids, query_ids != PAD_ID) == one_query  # the case exercises the path it names
    with torch.inference_mode():
        fast = model(query_ids, doc_ids, first_stage_score=first_stage_score)
        plain = model.plain_forward(query_ids, doc_ids, first_stage_score=first_stage_score)
    torch.testing.assert_close(fast, plain, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("use_first_stage_score", [False, True], ids=["", "first_stage"])
@pytest.mark.parametrize("interactions", INTERACTION_OPTIONS, ids="+".join)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_scores_equal_the_plain_forward_for_every_interaction_option(interactions, use_first_stage_score, shape):
    config = {"interactions": interactions, "use_first_stage_score": use_first_stage_score}
    assert_scores_equal_the_plain_forward(config, shape)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_scores_equal_the_plain_forward_for_every_block_setting(config, shape):
    assert_scores_equal_the_plain_forward(config, shape)


@pytest.mark.parametrize(
    "config",
    [
        {"interactions": kinds, "use_first_stage_score": first}
        for kinds in INTERACTION_OPTIONS
        for first in (False, True)
    ]
    + CONFIGS,
    ids=config_id,
)
def test_training_scores_and_gradients_equal_the_plain_forward_bit_for_bit(config):
    """Under autograd both run the default layout and the per-position interactions, so nothing is rounded
    differently: scores and every gradient are equal, not just close."""
    torch.manual_seed(0)
    model = build_model("match_pyramid", VOCAB_SIZE, {**config, "dropout": 0.0}).train()
    query_ids, doc_ids, first_stage_score = batch(2, 6, 5, 30)
    weights = torch.randn(6)
    results = []
    for forward in (model, model.plain_forward):
        model.zero_grad()
        scores = forward(query_ids, doc_ids, first_stage_score=first_stage_score)
        (scores * weights).sum().backward()
        gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        results.append((scores.detach(), gradients))
    (fast_scores, fast_grads), (plain_scores, plain_grads) = results
    assert torch.equal(fast_scores, plain_scores)
    assert fast_grads.keys() == plain_grads.keys() == {name for name, _ in model.named_parameters()}
    for name in plain_grads:
        assert torch.equal(fast_grads[name], plain_grads[name]), name


@pytest.mark.parametrize(
    "shape,output_size", [((5, 3, 7, 23), (3, 10)), ((4, 1, 2, 3), (3, 5)), ((3, 6, 12, 40), (4, 4))]
)
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
