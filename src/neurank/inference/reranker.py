"""`Reranker`: a trained ranker as three calls, `predict(pairs)`, `rank(query, docs)` and `rerank(run, ...)`.

    reranker = Reranker.from_checkpoint("runs/wikiqa/best.pt")
    reranker.rank("who wrote hamlet", ["Hamlet is a tragedy by Shakespeare.", "Paris is in France."])

Texts are tokenised with the checkpoint's own tokenizer and vocabulary, each distinct text once. A model trained
with the first-stage score as a feature needs that score: `rank` computes BM25 over the given documents,
`rerank` takes it from the run, and `predict` takes it as a third element of each pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurank.runtime.allocator import tune_malloc
from neurank.collections import ANSWER_SELECTION, Collection, Doc, Query, ScoredDoc
from neurank.data.examples import QueryExample, TextEncoder, build_examples, normalise_scores
from neurank.runtime.distributed import DistributedContext
from neurank.inference.scorer import InferenceOptions, Scorer
from neurank.models import build_model
from neurank.retrieval import score_candidates
from neurank.text import Tokenizer, Vocab
from neurank.inference.checkpoint import CheckpointError, load_checkpoint
from neurank.inference.fusion import fuse
from neurank.runtime.device import select_device
from neurank.runtime.precision import autocast, check_precision


class Reranker:
    """A ranker with the tokenizer and vocabulary it was trained with.

    Args:
        model: any registered ranker.
        tokenizer, vocab: those used in training.
        max_query_len, max_doc_len: truncation limits used in training.
        device: where the model runs ("auto": cuda, mps, else cpu).
        batch_size: pairs per forward pass.
        fusion_alpha: interpolate with the first-stage score (`neurank.inference.fusion`); None: model scores only.
        precision: "fp32", "bf16" or "fp16" forward passes (`neurank.runtime.precision`).
        distributed: under torchrun, from `neurank.runtime.distributed.init_distributed`: every call scores its batches
            spread over the ranks and returns the whole result on every rank, identical to a single process's.
        options: batching and numerics of scoring (`neurank.inference.scorer`); None: exact, with `batch_size`.

    On a CPU, building one sets glibc's malloc thresholds for the whole process (`neurank.runtime.allocator.tune_malloc`:
    fewer page faults, a steadier latency; freed memory then stays with the process). Set `NEURANK_MALLOC=default`
    before building it to keep glibc's own.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        vocab: Vocab,
        max_query_len: int = 20,
        max_doc_len: int = 200,
        device: str | torch.device = "auto",
        batch_size: int = 256,
        fusion_alpha: float | None = None,
        precision: str = "fp32",
        distributed: DistributedContext | None = None,
        options: InferenceOptions | None = None,
    ):
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
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.encoder = TextEncoder(tokenizer, vocab, max_query_len, max_doc_len)
        self.batch_size = batch_size
        self.fusion_alpha = fusion_alpha

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
        """Rebuild a ranker from a `best.pt` / `last.pt` written by training."""
        checkpoint = load_checkpoint(path)
        try:
            vocab = Vocab.from_dict(checkpoint["vocab"])
            model = build_model(checkpoint["model_name"], len(vocab), checkpoint["model_config"])
            model.load_state_dict(checkpoint["state_dict"])
            tokenizer = Tokenizer.from_dict(checkpoint["tokenizer"])
            text = checkpoint["text"]
        except (KeyError, RuntimeError, TypeError) as error:
            raise CheckpointError(f"{path}: checkpoint does not match this neurank ({type(error).__name__}: {error})") from None
        return cls(
            model, tokenizer, vocab, text["max_query_len"], text["max_doc_len"], device, batch_size,
            fusion_alpha=checkpoint.get("fusion_alpha"), precision=precision, distributed=distributed,
            options=options,
        )

    @property
    def uses_first_stage_score(self) -> bool:
        """Whether scoring needs first-stage scores (as a model input, or for fusion)."""
        model_input = bool(getattr(getattr(self.model, "config", None), "use_first_stage_score", False))
        return model_input or self.fusion_alpha is not None

    def _score(self, examples: Sequence[QueryExample], batch_size: int | None) -> dict[tuple[str, str], float]:
        with autocast(self.device, self.precision):
            run = self.scorer.score_examples(examples, batch_size, distributed=self.distributed)
        if self.fusion_alpha is not None:
            run = fuse(run, examples, self.fusion_alpha)
        return {(r.query_id, r.doc_id): r.score for r in run}

    def predict(self, pairs: Sequence[Sequence], batch_size: int | None = None) -> np.ndarray:
        """Scores of `(query, doc)` text pairs, or `(query, doc, first_stage_score)` triples.

        Scores are the model's logits, or with fusion the interpolated scores. First-stage scores, when the model
        or the fusion uses them, are normalised per query text as in training.
        """
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        has_scores = all(len(pair) == 3 for pair in pairs)
        if self.uses_first_stage_score and not has_scores:
            raise ValueError("this ranker uses the first-stage score: pass (query, doc, first_stage_score) triples")
        by_query: dict[str, list[int]] = {}
        for index, pair in enumerate(pairs):
            by_query.setdefault(pair[0], []).append(index)
        examples = []
        for number, (query, indices) in enumerate(by_query.items()):
            raw = [float(pairs[i][2]) if has_scores else 0.0 for i in indices]
            examples.append(self._example(str(number), query, [str(i) for i in indices], [pairs[i][1] for i in indices], raw))
        scores = self._score(examples, batch_size)
        out = np.empty(len(pairs), dtype=np.float32)
        for example in examples:
            for doc_id in example.doc_ids:
                out[int(doc_id)] = scores[(example.query_id, doc_id)]
        return out

    def _example(self, query_id: str, query: str, doc_ids: list[str], texts: list[str], raw_scores: list[float]) -> QueryExample:
        docs = self.encoder.encode_docs(texts)
        return QueryExample(
            query_id=query_id,
            query=self.encoder.encode_queries([query])[0],
            doc_ids=doc_ids,
            docs=docs,
            relevance=[0] * len(docs),
            labels=[0.0] * len(docs),
            scores=normalise_scores(raw_scores),
        )

    def rank(self, query: str, docs: Sequence[str | Doc], top_k: int | None = None) -> list[ScoredDoc]:
        """Rank `docs` for `query`, best first. Plain strings get ids "0", "1", ... in the given order."""
        docs = [doc if isinstance(doc, Doc) else Doc(str(i), doc) for i, doc in enumerate(docs)]
        if not docs:
            return []
        first_stage = [0.0] * len(docs)
        if self.uses_first_stage_score:
            run = score_candidates({"q": Query("q", query)}, {"q": docs})
            first_stage = [r.score for r in run]
        example = self._example("q", query, [d.doc_id for d in docs], [d.text for d in docs], first_stage)
        scores = self._score([example], None)
        ranked = sorted((ScoredDoc("q", d.doc_id, scores[("q", d.doc_id)]) for d in docs), key=lambda r: -r.score)
        return ranked[:top_k] if top_k else ranked

    def rerank(
        self,
        run: Sequence[ScoredDoc],
        queries: Mapping[str, Query | str],
        docs: Mapping[str, Doc | str] | Callable[[str, str], str],
        depth: int = 100,
    ) -> list[ScoredDoc]:
        """Re-score each query's top-`depth` documents of `run` (by its score); deeper documents are dropped.

        Args:
            queries: query_id -> Query or text.
            docs: doc_id -> Doc or text, or a function (query_id, doc_id) -> text (answer selection, where doc ids
                are only unique within a query).
        """
        text = docs if callable(docs) else (lambda _q, d: docs[d].text if isinstance(docs[d], Doc) else docs[d])
        by_query: dict[str, list[ScoredDoc]] = {}
        for entry in run:
            by_query.setdefault(entry.query_id, []).append(entry)
        examples = []
        for query_id, entries in by_query.items():
            entries = sorted(entries, key=lambda r: -r.score)[:depth]
            query = queries[query_id]
            query_text = query.text if isinstance(query, Query) else query
            examples.append(
                self._example(query_id, query_text, [e.doc_id for e in entries], [text(query_id, e.doc_id) for e in entries], [e.score for e in entries])
            )
        return [ScoredDoc(q, d, s) for (q, d), s in self._score(examples, None).items()]

    def rerank_collection(self, collection: Collection, split: str, run: Sequence[ScoredDoc] | None = None, depth: int = 100) -> list[ScoredDoc]:
        """Re-rank a split of a named collection: its BM25 run (or `run`), top-`depth` per query."""
        if collection.task == ANSWER_SELECTION:
            depth = None  # every given candidate is re-ranked
        examples = build_examples(collection, split, self.encoder, run, depth=depth)
        return [ScoredDoc(q, d, s) for (q, d), s in self._score(examples, None).items()]
