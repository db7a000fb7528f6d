"""`Reranker`: a trained PyTorch ranker as three calls, `predict(pairs)`, `rank(query, docs)` and `rerank(run, ...)`.

    reranker = neurank.load_reranker("runs/wikiqa/best.pt")       # or Reranker.from_checkpoint(...)
    reranker.rank("who wrote hamlet", ["Hamlet is a tragedy by Shakespeare.", "Paris is in France."])

Texts become ids through the checkpoint's own text encoder, each distinct text once; the calls themselves are
`BaseReranker`'s, shared with the ONNX runner (`neurank.inference.onnx_reranker`). This module adds the PyTorch
side: the device, the precision of forward passes, and scoring spread over the ranks of a torchrun job.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from neurank.collections import ScoredDoc
from neurank.data.examples import QueryExample
from neurank.inference.base import BaseReranker
from neurank.inference.checkpoint import load_ranker
from neurank.inference.first_stage import FirstStage, bm25_first_stage, first_stage_from_entry
from neurank.inference.scorer import InferenceOptions, Scorer
from neurank.runtime.allocator import tune_malloc
from neurank.runtime.device import select_device
from neurank.runtime.distributed import DistributedContext
from neurank.runtime.precision import autocast, check_precision
from neurank.text import TextEncoder, Tokenizer, Vocab, WordEncoder


class Reranker(BaseReranker):
    """A PyTorch ranker with the text encoder it was trained with.

    Args:
        model: any registered ranker.
        encoder: turns texts into the model's ids (`neurank.text.TextEncoder`). For the word encoder, the tokenizer
            then `vocab` (and the max lengths) may be given instead: `Reranker(model, tokenizer, vocab, 20, 200)` is
            `Reranker(model, WordEncoder(tokenizer, vocab, 20, 200))`.
        vocab, max_query_len, max_doc_len: only with a tokenizer as `encoder`.
        device: where the model runs ("auto": cuda, mps, else cpu).
        batch_size: pairs per forward pass.
        fusion_alpha: interpolate with the first-stage score (`neurank.inference.fusion`); None: model scores only.
        first_stage: the first stage the model was trained with (`neurank.inference.first_stage.FirstStage`);
            "training": BM25 as `neurank train` computes it; None: not recorded.
        precision: "fp32", "bf16" or "fp16" forward passes (`neurank.runtime.precision`).
        distributed: under torchrun, from `neurank.runtime.distributed.init_distributed`: every call scores its batches
            spread over the ranks and returns the whole result on every rank, identical to a single process's.
        options: batching and numerics of scoring (`neurank.inference.scorer`); None: exact, with `batch_size`.

    On a CPU, building one sets glibc's malloc thresholds for the whole process
    (`neurank.runtime.allocator.tune_malloc`: fewer page faults, a steadier latency; freed memory then stays with the
    process). Set `NEURANK_MALLOC=default` before building it to keep glibc's own.
    """

    def __init__(
        self,
        model: nn.Module,
        encoder: TextEncoder | Tokenizer,
        vocab: Vocab | None = None,
        max_query_len: int = 20,
        max_doc_len: int = 200,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 256,
        fusion_alpha: float | None = None,
        first_stage: FirstStage | None | str = "training",
        precision: str = "fp32",
        distributed: DistributedContext | None = None,
        options: InferenceOptions | None = None,
    ):
        if isinstance(encoder, Tokenizer):
            if vocab is None:
                raise TypeError("Reranker(model, tokenizer, vocab, ...): a tokenizer needs its vocabulary")
            encoder = WordEncoder(encoder, vocab, max_query_len, max_doc_len)
        elif vocab is not None:
            raise TypeError("Reranker(model, encoder): vocab and the max lengths go with a tokenizer, not an encoder")
        self.device = select_device(device) if isinstance(device, str) else device
        if distributed is not None:
            self.device = distributed.place(self.device)  # cuda -> this rank's GPU
        check_precision(precision, self.device)
        self.precision = precision
        self.distributed = distributed
        self.model = model.to(self.device).eval()
        self.scorer = Scorer(self.model, options or InferenceOptions(batch_size=batch_size), self.device)
        if self.device.type == "cpu":
            tune_malloc()  # see neurank.runtime.allocator: fewer page faults per query, a steadier latency
        self.encoder = encoder
        self.batch_size = batch_size
        self.fusion_alpha = fusion_alpha
        if isinstance(first_stage, str):
            if first_stage != "training":
                raise ValueError(f"first_stage: a FirstStage, None or 'training', got {first_stage!r}")
            first_stage = bm25_first_stage()
        self.first_stage = first_stage

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "auto",
        batch_size: int = 256,
        precision: str = "fp32",
        distributed: DistributedContext | None = None,
        options: InferenceOptions | None = None,
    ) -> Reranker:
        """Rebuild a ranker from a `best.pt` / `last.pt` written by training (`neurank.load_reranker` picks this
        for a PyTorch checkpoint)."""
        model, encoder, checkpoint = load_ranker(path)
        return cls(
            model,
            encoder,
            device=device,
            batch_size=batch_size,
            fusion_alpha=checkpoint.get("fusion_alpha"),
            first_stage=first_stage_from_entry(checkpoint.get("first_stage"), str(path)),
            precision=precision,
            distributed=distributed,
            options=options,
        )

    @property
    def reads_first_stage_feature(self) -> bool:
        """Whether the model reads the first-stage score as an input (`use_first_stage_score`)."""
        return bool(getattr(getattr(self.model, "config", None), "use_first_stage_score", False))

    def _score_run(self, examples: Sequence[QueryExample], batch_size: int | None) -> list[ScoredDoc]:
        with autocast(self.device, self.precision):
            return self.scorer.score_examples(examples, batch_size, distributed=self.distributed)
