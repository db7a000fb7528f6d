"""Fast scoring of (query, candidate) id lists: the path `Reranker` and the training loop's dev evaluation take.

    scorer = Scorer(model)                                   # exact: the model's own scores, within float rounding
    scores = scorer.score(query_ids, doc_ids, first_stage)   # one score per pair, in the given order

What makes it fast without changing a score (each measured by `benchmarks/inference.py`):
- length bucketing with dynamic padding: pairs are sorted by (document, query) length and cut into batches padded
  only to their own longest texts, never to a global maximum;
- a cell budget: a batch holds at most `max_cells` interaction-matrix cells (pairs x query length x document
  length). Every interaction model materialises tensors of that many cells times its channels; on a CPU a batch
  that fits in the caches runs several times faster than one that spills to memory, whose fresh pages the allocator
  must also fault in. Smaller batches are scored exactly as larger ones (padding never changes a score). The budget
  is the model's own where one was measured to pay (`Ranker.cpu_max_cells`: 2^17 for MatchPyramid, DRMM, PACRR,
  DUET and MV-LSTM, 2^18 for ArcI, which has no query x document tensor), else `CPU_MAX_CELLS`;
- ids padded with numpy from the cached id lists (texts are tokenised once by `TextEncoder`), and `inference_mode`;
- a batch of one query's candidates (re-ranking one query) lets the models that compare embeddings compute each
  distinct document token's similarity to the query once (`neurank.models.one_query_interactions`).

One option changes numerics and is off by default: `precision="bf16"` (autocast to bfloat16). It paid for TK
(1.8-2.6x), MV-LSTM (1.2-1.4x) and ArcI (1.2-1.3x) and cost MatchPyramid (0.8x) and DUET (0.4-0.5x); it kept the
rankings of NFCorpus candidates close (Spearman >= 0.993 against fp32) except Conv-KNRM's (0.87), and it blurs the
kernel models' exact-match kernel (sigma 1e-3 cannot separate 1.0 from its bfloat16 neighbours): check the ranking
before using it. Measured and dropped (`benchmarks/inference.py` still measures them): int8 dynamic quantisation of
the linear and LSTM layers (0.65-1.07x: the models' work is not there, and rankings moved more than with bf16) and
`torch.compile` (1.1-1.3x at one fixed shape after 7-21 s of compiling it, but every length bucket is a new shape,
and a training step ran 0.9x). The README's "Speed" section has the tables.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from neurank.collections.records import ScoredDoc
from neurank.data.examples import QueryExample
from neurank.text import PAD_ID

PRECISIONS = ("fp32", "bf16")
# The CPU cell budget of a model that names none (`Ranker.cpu_max_cells`): a batch's activations are cells times
# the model's channels, and a batch whose activations stay in the last-level cache runs faster than one that spills
# to memory, while every batch also pays a fixed cost. Where the balance lies depends on what a model keeps per
# cell, so models measured to prefer another budget name it. GPUs want few, large batches: no budget there.
CPU_MAX_CELLS = 1 << 16


def cpu_cell_budget(model: nn.Module | type[nn.Module] | None) -> int:
    """The cell budget for scoring `model` on a CPU: its `cpu_max_cells`, else `CPU_MAX_CELLS`."""
    return getattr(model, "cpu_max_cells", None) or CPU_MAX_CELLS


@dataclass(frozen=True)
class InferenceOptions:
    """How a `Scorer` batches and runs a model.

    Attributes:
        batch_size: the most pairs per forward pass.
        max_cells: the most query x document cells per forward pass (pairs x padded query length x padded document
            length); "auto": the model's CPU budget on a CPU (`cpu_cell_budget`), no limit on other devices; None:
            no limit.
        precision: "fp32" (exact) or "bf16" (autocast; changes scores).
    """

    batch_size: int = 256
    max_cells: int | str | None = "auto"
    precision: str = "fp32"

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_cells not in ("auto", None) and (not isinstance(self.max_cells, int) or self.max_cells < 1):
            raise ValueError(f"max_cells must be a positive int, 'auto' or None, got {self.max_cells!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")

    @property
    def exact(self) -> bool:
        """Whether scores are the model's own, up to float rounding (fp32)."""
        return self.precision == "fp32"

    def cell_budget(self, device: torch.device, cpu_max_cells: int = CPU_MAX_CELLS) -> int | None:
        """The budget on `device` (see `max_cells`), for a model whose own CPU budget is `cpu_max_cells`."""
        if isinstance(self.max_cells, str):  # "auto", the only string __post_init__ accepts
            return cpu_max_cells if device.type == "cpu" else None
        return self.max_cells


def plan_batches(
    query_lengths: np.ndarray, doc_lengths: np.ndarray, batch_size: int, max_cells: int | None = None
) -> list[np.ndarray]:
    """Cut pairs into batches of similar lengths: longest documents first, each batch under both limits.

    Args:
        query_lengths, doc_lengths: (N,) true lengths of each pair's texts.
        batch_size: the most pairs per batch.
        max_cells: the most pairs x padded query length x padded document length per batch (None: no limit); a
            single pair over the budget still gets a batch of its own.
    Returns:
        Index arrays into the pairs, covering each pair exactly once.
    """
    query_lengths = np.asarray(query_lengths, dtype=np.int64)
    doc_lengths = np.asarray(doc_lengths, dtype=np.int64)
    order = np.lexsort((-query_lengths, -doc_lengths))  # by document length, then query length, longest first
    batches: list[np.ndarray] = []
    start, n = 0, len(order)
    while start < n:
        if max_cells is None:
            stop = min(n, start + batch_size)
        else:
            # Documents shrink along the order, so the first pair sets the batch's document length; the query
            # length is the running maximum.
            doc_len = int(doc_lengths[order[start]])
            query_max = np.maximum.accumulate(query_lengths[order[start : start + batch_size]])
            cells = np.arange(1, len(query_max) + 1) * query_max * doc_len  # increasing: the fitting pairs are a prefix
            stop = start + max(1, int((cells <= max_cells).sum()))
        batches.append(order[start:stop])
        start = stop
    return batches


def pad_ids(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists (or arrays) with PAD to the longest: (N, L) int64 ids and a (N, L) bool mask."""
    lengths = np.fromiter((len(seq) for seq in sequences), dtype=np.int64, count=len(sequences))
    if len(lengths) == 0 or lengths.min() == 0:
        raise ValueError("cannot pad an empty id list: the model would get an all-PAD row (see data.examples)")
    width = int(lengths.max())
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    mask = np.arange(width) < lengths[:, None]  # (N, L)
    ids = np.full(mask.shape, PAD_ID, dtype=np.int64)  # (N, L)
    ids[mask] = flat  # row by row, left to right: the concatenated sequences
    return torch.from_numpy(ids), torch.from_numpy(mask)


class Scorer:
    """Scores id pairs with a model under `InferenceOptions`.

    Args:
        model: any registered ranker (put on `device` here).
        options: batching and numerics; the defaults are exact.
        device: where the model runs.
    """

    def __init__(self, model: nn.Module, options: InferenceOptions | None = None, device: torch.device | str = "cpu"):
        self.options = options or InferenceOptions()
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.runner: Callable[..., torch.Tensor] = self.model  # what a batch goes through (`OnnxScorer`: a session)
        self.cpu_max_cells = cpu_cell_budget(model)

    def _autocast(self):
        if self.options.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def score(
        self,
        query_ids: Sequence[Sequence[int]],
        doc_ids: Sequence[Sequence[int]],
        first_stage_scores: Sequence[float] | np.ndarray | None = None,
        batch_size: int | None = None,
        distributed=None,
    ) -> np.ndarray:
        """Scores of pairs (query_ids[i], doc_ids[i]), in that order, as float32.

        Args:
            query_ids, doc_ids: id lists (never empty), one pair per position.
            first_stage_scores: normalised first-stage scores, one per pair (0 when None).
            batch_size: overrides `options.batch_size` for this call.
            distributed: a `neurank.runtime.distributed` context: the batches are dealt round-robin over its ranks, each
                scores its own, and every rank gets all the scores back (the same as one process's).
        """
        n = len(doc_ids)
        if len(query_ids) != n:
            raise ValueError(f"{len(query_ids)} queries for {n} documents: pass one query per pair")
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        first_stage = (
            np.zeros(n, dtype=np.float32)
            if first_stage_scores is None
            else np.asarray(first_stage_scores, dtype=np.float32)
        )
        query_lengths = np.fromiter((len(q) for q in query_ids), dtype=np.int64, count=n)
        doc_lengths = np.fromiter((len(d) for d in doc_ids), dtype=np.int64, count=n)
        options = self.options if batch_size is None else replace(self.options, batch_size=batch_size)
        budget = options.cell_budget(self.device, self.cpu_max_cells)
        batches = plan_batches(query_lengths, doc_lengths, options.batch_size, budget)
        if distributed is not None and distributed.enabled:
            mine = list(distributed.deal_batches(batches))
        else:
            distributed, mine = None, batches
        for index in mine:
            queries, query_mask = pad_ids([query_ids[i] for i in index])
            docs, doc_mask = pad_ids([doc_ids[i] for i in index])
            scores_in = torch.from_numpy(first_stage[index])
            with self._autocast():
                scores = self.runner(
                    queries.to(self.device),
                    docs.to(self.device),
                    query_mask.to(self.device),
                    doc_mask.to(self.device),
                    scores_in.to(self.device),
                )
            out[index] = scores.float().cpu().numpy()
        if distributed is not None:
            for index, values in zip(batches, distributed.gather_dealt([out[index] for index in mine]), strict=True):
                out[index] = values
        return out

    def score_examples(
        self, examples: Sequence[QueryExample], batch_size: int | None = None, distributed=None
    ) -> list[ScoredDoc]:
        """Every candidate of `examples` scored, as a run in the examples' order (`distributed`: see `score`)."""
        queries = [ex.query for ex in examples for _ in ex.docs]
        docs = [doc for ex in examples for doc in ex.docs]
        first_stage = [score for ex in examples for score in ex.scores]
        scores = self.score(queries, docs, first_stage, batch_size, distributed).tolist()
        pairs = ((ex.query_id, doc_id) for ex in examples for doc_id in ex.doc_ids)
        return [ScoredDoc(query_id, doc_id, score) for (query_id, doc_id), score in zip(pairs, scores, strict=True)]
