"""ONNX export of every registered ranker: onnxruntime reproduces PyTorch's scores at lengths other than the export
example's, and an export that does not is refused before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")

from neurank.inference.export import ExportError, export_model_onnx  # noqa: E402
from neurank.inference.onnx_reranker import OnnxScorer  # noqa: E402
from neurank.inference.scorer import InferenceOptions, Scorer  # noqa: E402
from neurank.models import build_model, model_names  # noqa: E402

VOCAB_SIZE = 50
# torch.onnx logs a line per skipped torchvision op and warns about its own internals.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")


def random_pairs(n, seed, max_query, max_doc):
    rng = np.random.default_rng(seed)
    queries = [rng.integers(2, VOCAB_SIZE, rng.integers(1, max_query + 1)).tolist() for _ in range(n)]
    docs = [rng.integers(2, VOCAB_SIZE, rng.integers(1, max_doc + 1)).tolist() for _ in range(n)]
    for query, doc in zip(queries, docs, strict=True):
        doc[: min(2, len(doc), len(query))] = query[: min(2, len(doc), len(query))]
    return queries, docs, rng.random(n).astype(np.float32)


# Options whose branches the default configs do not take.
VARIANTS = [
    ("compare_aggregate", {"exact_match": True}),
    # Passages: the number of passages follows the padded document length inside the graph.
    ("cross_encoder", {"passages": "maxp", "passage_len": 8, "passage_stride": 4}),
    ("cross_encoder", {"passages": "firstp", "passage_len": 8, "passage_stride": 4}),
    ("pooled_cosine", {"passages": "maxp", "passage_len": 8, "passage_stride": 4}),
    ("pooled_cosine", {"passages": "firstp", "passage_len": 8, "passage_stride": 4}),
    # float16 vectors: a score can move by one float16 rounding step (about 1e-3 of a vector entry).
    ("cedr_knrm", {"cache_dtype": "float16"}),
]
# How close onnxruntime's scores must be to PyTorch's, where it cannot be 1e-5.
TOLERANCE = {"cache_dtype": 1e-3}


# Each export runs torch.export and onnxruntime (3-10 s a model): the seed model's stays in the fast run.
FAST = "match_pyramid"


@pytest.mark.parametrize(
    "name, options",
    [
        pytest.param(name, options, marks=() if (name, options) == (FAST, {}) else pytest.mark.slow)
        for name, options in [(n, {}) for n in model_names()] + VARIANTS
    ],
    ids=lambda case: case if isinstance(case, str) else "".join(f"-{k}={v}" for k, v in case.items()),
)
def test_onnx_scores_equal_pytorch_scores_at_other_lengths(name, options, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = build_model(name, VOCAB_SIZE, {"use_first_stage_score": True, **options}).eval()
    path = tmp_path / f"{name}.onnx"
    atol = max([1e-5] + [TOLERANCE[key] for key in options if key in TOLERANCE])
    info = export_model_onnx(model, name, path, max_query_len=12, max_doc_len=90, atol=max(atol, 1e-4))
    assert max(info["check"].values()) < max(atol, 1e-4)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_scorer = OnnxScorer(session, True, info["static_lengths"], InferenceOptions(batch_size=16))
    torch_scorer = Scorer(model, InferenceOptions(batch_size=16))
    # Many batches of many shapes, none of them the export example's (3 x 4 x 13).
    queries, docs, first_stage = random_pairs(70, seed=5, max_query=12, max_doc=90)
    np.testing.assert_allclose(
        onnx_scorer.score(queries, docs, first_stage), torch_scorer.score(queries, docs, first_stage), atol=atol, rtol=0
    )


class ShapeBranch(nn.Module):
    """A 'ranker' whose forward branches on the document length: torch.export keeps only the example's branch."""

    vocab_size = VOCAB_SIZE

    def __init__(self):
        super().__init__()
        self.config = None
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, query_ids, doc_ids, query_mask=None, doc_mask=None, first_stage_score=None):
        counts = (doc_ids != 0).sum(1).float()
        return counts * self.weight if doc_ids.shape[1] > 10 else -counts * self.weight


@pytest.mark.slow  # an export and its check (about 4 s)
def test_an_export_that_differs_from_pytorch_is_refused(tmp_path):
    path = tmp_path / "wrong.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_model_onnx(ShapeBranch(), "shape_branch", path, max_query_len=5, max_doc_len=30)
    assert not path.exists() and not list(tmp_path.iterdir())
