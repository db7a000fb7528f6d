"""Every ranker's analytic `flops_per_pair` equals what torch's FLOP counter counts when it scores one unpadded pair."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from neurank.models import build_model, model_names

# Switching oneDNN off makes torch warn about TF32 on Intel GPUs, which this test does not use.
pytestmark = pytest.mark.filterwarnings("ignore:TF32 acceleration")

VOCAB_SIZE = 40
# Variants that take the other branches of the counts.
VARIANTS = [
    (
        "match_pyramid",
        {
            "interactions": ["cosine", "dot", "exact"],
            "conv_channels": [4, 8, 6],
            "kernel_sizes": [3, [1, 5], [2, 2]],
            "use_first_stage_score": True,
        },
    ),
    ("match_pyramid", {"interactions": ["exact"], "conv_channels": [8], "kernel_sizes": [[1, 3]]}),
    ("conv_knrm", {"cross_match": False, "max_ngram": 2, "n_filters": 8, "ngram_windows": "complete"}),
    ("drmm", {"gating": "tv", "freeze_embeddings": False, "hidden_sizes": [8, 4], "use_first_stage_score": True}),
    (
        "arci",
        {
            "conv_channels": [16, 8],
            "kernel_sizes": [3, 2],
            "pool_sizes": [2, 3],
            "hidden_sizes": [],
            "share_encoder": True,
        },
    ),
    ("pacrr", {"min_ngram": 2, "max_ngram": 4, "max_query_len": 3, "use_first_stage_score": True}),
    (
        "duet",
        {"max_query_len": 3, "max_doc_len": 12, "doc_pool_size": 4, "hidden_dim": 16, "use_first_stage_score": True},
    ),
    ("mvlstm", {"interaction": "tensor", "shared_lstm": False, "tensor_channels": 3, "use_first_stage_score": True}),
    ("mvlstm", {"interaction": "bilinear", "mlp_hidden": []}),
    ("tk", {"n_layers": 1, "n_heads": 4, "ff_dim": 32}),
    (
        "compare_aggregate",
        {"comparison": "nn", "windows": [2, 7], "null_attention": False, "use_first_stage_score": True},
    ),
    ("compare_aggregate", {"comparison": "mult", "hidden_size": 12}),
    ("compare_aggregate", {"exact_match": True, "windows": [1, 4]}),
]
CASES = [(name, {}) for name in model_names()] + VARIANTS


def counted_flops(model, query_len: int, doc_len: int, batch_size: int = 1) -> int:
    generator = torch.Generator().manual_seed(query_len * 1000 + doc_len)
    query_ids = torch.randint(2, VOCAB_SIZE, (batch_size, query_len), generator=generator)
    doc_ids = torch.randint(2, VOCAB_SIZE, (batch_size, doc_len), generator=generator)
    counter = FlopCounterMode(display=False)
    # Without oneDNN, nn.LSTM runs as matrix products that the counter sees (its oneDNN kernel is opaque to it).
    with torch.backends.mkldnn.flags(enabled=False), counter, torch.no_grad():
        model(query_ids, doc_ids, first_stage_score=torch.zeros(batch_size))
    return counter.get_total_flops()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case[0] + "".join(f"-{k}={v}" for k, v in case[1].items()))
def test_analytic_flops_equal_the_counted_ones(case):
    name, config = case
    torch.manual_seed(0)
    model = build_model(name, VOCAB_SIZE, config).eval()
    for query_len, doc_len in [(1, 1), (3, 17), (7, 45), (20, 33)]:
        assert model.flops_per_pair(query_len, doc_len) == counted_flops(model, query_len, doc_len), (
            query_len,
            doc_len,
        )
    # Work grows linearly with the batch.
    assert counted_flops(model, 4, 9, batch_size=3) == 3 * model.flops_per_pair(4, 9)
