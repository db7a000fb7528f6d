"""What every re-ranker offers, whatever runs its forward pass: `predict`, `rank`, `rerank`, `rerank_collection`.

`Reranker` (PyTorch) and `OnnxReranker` (onnxruntime) are siblings under `BaseReranker`: each builds its own model
and `Scorer` and says how one batch of examples is scored; texts become ids through the `TextEncoder` they were
trained with, and everything between texts and scores (grouping pairs by query, normalising first-stage scores,
fusion) is written here once. Load either with `neurank.load_reranker(path)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neurank.collections import ANSWER_SELECTION, Collection, Doc, Query, ScoredDoc
from neurank.data.examples import QueryExample, build_examples, normalise_scores
from neurank.inference.first_stage import (
    AUTO,
    RUN,
    FirstStage,
    FirstStageError,
    FirstStageReport,
    cut_depth,
    resolve_first_stage,
    resolve_run,
)
from neurank.inference.fusion import fuse
from neurank.text import PAD_ID, TextEncoder, Tokenizer, Vocab, WordEncoder


@dataclass
class RerankOutcome:
    """A re-ranked run and what re-ranking took as the first stage (`BaseReranker.rerank_split`)."""

    run: list[ScoredDoc]
    first_stage: FirstStageReport


# `score_queries` scores a query with this many candidates or more in batches of its own. Measured with MatchPyramid
# on one CPU core, 20 NFCorpus queries at a time (all pooled vs each alone): 2 candidates 23 vs 60 ms, 10: 100 vs 98
# ms, 30: 243 vs 194 ms, 100: 699 vs 431 ms; one-query batches win from about ten candidates on.
ALONE_CANDIDATES = 16


@dataclass(frozen=True)
class QueryDocs:
    """One query and its candidate texts, to be scored with others in one shared batch (`score_queries`).

    Attributes:
        query, docs: the texts.
        first_stage_scores: one raw first-stage score per document, for a ranker that reads them; None: computed
            over `docs` as `rank` computes them (a ranker that reads none ignores them).
    """

    query: str
    docs: Sequence[str]
    first_stage_scores: Sequence[float] | None = None


@dataclass
class QueryScores:
    """What `score_queries` gives back for one `QueryDocs`.

    Attributes:
        scores: (N,) float32 scores of the documents in their given order: the model's logits, or with fusion the
            fused scores (as `predict`).
        truncated_docs: positions of the documents longer than the model reads (`encoder.max_doc_len`): it scored
            their first `max_doc_len` tokens, as in training.
        query_truncated: the query was longer than `encoder.max_query_len` and was cut as in training.
        tokens: query and document tokens the model read (after truncation).
        first_stage: "given" (the caller's scores), "computed" (the checkpoint's first stage over the documents),
            or None (the ranker reads no first-stage score).
    """

    scores: np.ndarray
    truncated_docs: list[int]
    query_truncated: bool
    tokens: int
    first_stage: str | None


class BaseReranker(ABC):
    """A trained ranker behind texts in, scores out.

    Subclasses set `encoder` (texts -> ids, as in training), `fusion_alpha` (interpolation weight with the first
    stage, `neurank.inference.fusion`; None: model scores only), `first_stage` (what the checkpoint was trained
    with, `neurank.inference.first_stage.FirstStage`; None: not recorded) and `batch_size`, and implement
    `_score_run` and `reads_first_stage_feature`.

    A model trained with the first-stage score as a feature, or fused with it, needs that score: `rank` computes
    the checkpoint's first stage over the given documents, `rerank_collection` computes it over the run's
    candidates unless the run's scores already are it (`neurank.inference.first_stage`), `rerank` takes the run's
    scores (checked) or recomputes them over the given texts, and `predict` takes it as a third element of each pair.
    """

    encoder: TextEncoder
    fusion_alpha: float | None
    first_stage: FirstStage | None
    batch_size: int

    @abstractmethod
    def _score_run(self, examples: Sequence[QueryExample], batch_size: int | None) -> list[ScoredDoc]:
        """The model's score of every candidate of `examples` (before fusion), as a run in their order."""

    @property
    @abstractmethod
    def reads_first_stage_feature(self) -> bool:
        """Whether the model itself reads the first-stage score as an input."""

    @property
    def uses_first_stage_score(self) -> bool:
        """Whether scoring needs first-stage scores (as a model input, or for fusion)."""
        return self.reads_first_stage_feature or self.fusion_alpha is not None

    def first_stage_use(self) -> str | None:
        """How the ranker reads the first-stage score, for messages ("as a feature and in fusion (alpha 0.45)");
        None when it reads none."""
        uses = ["as a feature"] if self.reads_first_stage_feature else []
        uses += [f"in fusion (alpha {self.fusion_alpha:g})"] if self.fusion_alpha is not None else []
        return " and ".join(uses) or None

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer of a word encoder (`neurank.text.WordEncoder`): what figures show as tokens."""
        return self._word_encoder().tokenizer

    @property
    def vocab(self) -> Vocab:
        """The vocabulary of a word encoder (`neurank.text.WordEncoder`)."""
        return self._word_encoder().vocab

    def _word_encoder(self) -> WordEncoder:
        if not isinstance(self.encoder, WordEncoder):
            raise AttributeError(f"a {type(self.encoder).__name__} has no word tokenizer and vocabulary")
        return self.encoder

    def _score(self, examples: Sequence[QueryExample], batch_size: int | None) -> dict[tuple[str, str], float]:
        run = self._score_run(examples, batch_size)
        if self.fusion_alpha is not None:
            run = fuse(run, examples, self.fusion_alpha)
        return {(r.query_id, r.doc_id): r.score for r in run}

    def _example(
        self, query_id: str, query: str, doc_ids: list[str], texts: list[str], raw_scores: list[float]
    ) -> QueryExample:
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
            texts = [pairs[i][1] for i in indices]
            examples.append(self._example(str(number), query, [str(i) for i in indices], texts, raw))
        scores = self._score(examples, batch_size)
        out = np.empty(len(pairs), dtype=np.float32)
        for example in examples:
            for doc_id in example.doc_ids:
                out[int(doc_id)] = scores[(example.query_id, doc_id)]
        return out

    def score_queries(self, requests: Sequence[QueryDocs], batch_size: int | None = None) -> list[QueryScores]:
        """Score several queries' candidates in one shared set of batches, and say what was truncated.

        What a server does with concurrent requests: each request's scores are those `predict` gives for its pairs
        (with its first-stage scores as the third element), or, without first-stage scores, those `rank` gives (the
        checkpoint's first stage computed over the request's documents). Batches are cut across all requests
        (`neurank.inference.scorer`), which changes no score.

        Raises:
            FirstStageError: a request without first-stage scores for a ranker that reads them and whose checkpoint
                records no first stage to compute them with. ValueError: first-stage scores not aligned with the
                documents.
        """
        examples, outcomes = [], []
        for number, request in enumerate(requests):
            docs = list(request.docs)
            first_stage: str | None = None
            raw = [0.0] * len(docs)
            if self.uses_first_stage_score:
                if request.first_stage_scores is not None:
                    if len(request.first_stage_scores) != len(docs):
                        raise ValueError(
                            f"{len(request.first_stage_scores)} first-stage scores for {len(docs)} documents"
                        )
                    raw, first_stage = [float(score) for score in request.first_stage_scores], "given"
                elif docs:
                    candidates = {"q": [Doc(str(i), text) for i, text in enumerate(docs)]}
                    run = self._known_first_stage().score_pool({"q": Query("q", request.query)}, candidates)
                    raw, first_stage = [r.score for r in run], "computed"
            example = self._example(str(number), request.query, [str(i) for i in range(len(docs))], docs, raw)
            examples.append(example)
            truncated = self._truncated(docs, example.docs, self.encoder.max_doc_len)
            query_cut = bool(self._truncated([request.query], [example.query], self.encoder.max_query_len))
            tokens = len(example.query) + sum(len(ids) for ids in example.docs)
            outcomes.append(QueryScores(np.zeros(len(docs), np.float32), truncated, query_cut, tokens, first_stage))
        scores: dict[tuple[str, str], float] = {}
        for group in self._pool(examples):
            scores.update(self._score(group, batch_size))
        for example, outcome in zip(examples, outcomes, strict=True):
            for doc_id in example.doc_ids:
                outcome.scores[int(doc_id)] = scores[(example.query_id, doc_id)]
        return outcomes

    def _pool(self, examples: list[QueryExample]) -> list[list[QueryExample]]:
        """Which examples share forward batches: a query with `ALONE_CANDIDATES` candidates or more is scored in
        batches of its own, where the interaction models compare each distinct document token with the query once
        (`neurank.models.one_query_interactions`); smaller ones are pooled, so their pairs fill batches together.
        Without a cell budget (a GPU, which wants few large batches) everything is pooled."""
        scorer = getattr(self, "scorer", None)
        budget = scorer.options.cell_budget(scorer.device, scorer.cpu_max_cells) if scorer is not None else None
        alone: list[QueryExample] = []
        pooled: list[QueryExample] = []
        for example in examples:
            if example.docs:
                (alone if budget is not None and len(example.docs) >= ALONE_CANDIDATES else pooled).append(example)
        return [[example] for example in alone] + ([pooled] if pooled else [])

    def _truncated(self, texts: Sequence[str], ids: Sequence[Sequence[int]], max_len: int) -> list[int]:
        """Positions of `texts` whose tokens run past `max_len`: only those encoded to exactly `max_len` ids can, and
        only they are tokenised again to count."""
        full = [i for i, text_ids in enumerate(ids) if len(text_ids) >= max_len]
        if not full:
            return []
        counts = _token_counts(self.encoder, [texts[i] for i in full])
        return [i for i, count in zip(full, counts, strict=True) if count > max_len]

    def rank(self, query: str, docs: Sequence[str | Doc], top_k: int | None = None) -> list[ScoredDoc]:
        """Rank `docs` for `query`, best first. Plain strings get ids "0", "1", ... in the given order."""
        candidates = [doc if isinstance(doc, Doc) else Doc(str(i), doc) for i, doc in enumerate(docs)]
        if not candidates:
            return []
        first_stage = [0.0] * len(candidates)
        if self.uses_first_stage_score:
            run = self._known_first_stage().score_pool({"q": Query("q", query)}, {"q": candidates})
            first_stage = [r.score for r in run]
        doc_ids = [d.doc_id for d in candidates]
        example = self._example("q", query, doc_ids, [d.text for d in candidates], first_stage)
        scores = self._score([example], None)
        ranked = sorted((ScoredDoc("q", d, scores[("q", d)]) for d in doc_ids), key=lambda r: -r.score)
        return ranked[:top_k] if top_k else ranked

    def _known_first_stage(self) -> FirstStage:
        if self.first_stage is None:
            raise FirstStageError(
                f"this ranker reads the first-stage score {self.first_stage_use()}, and its checkpoint records no "
                "first stage to compute it with: pass (query, doc, first_stage_score) triples to predict"
            )
        return self.first_stage

    def rerank(
        self,
        run: Sequence[ScoredDoc],
        queries: Mapping[str, Query | str],
        docs: Mapping[str, Doc | str] | Callable[[str, str], str],
        depth: int = 100,
        first_stage: str = RUN,
    ) -> list[ScoredDoc]:
        """Re-score each query's top-`depth` documents of `run` (by its score); deeper documents are dropped.

        Args:
            queries: query_id -> Query or text.
            docs: doc_id -> Doc or text, or a function (query_id, doc_id) -> text (answer selection, where doc ids
                are only unique within a query).
            first_stage: for a ranker that reads the first-stage score, "run" (default): the run's scores, refused
                when constant within every query and warned when odd; "auto": the checkpoint's first stage
                recomputed over these candidates' texts (statistics from their pool, as `rank`), unless the run's
                scores already agree with it (`neurank.inference.first_stage`). `rerank_collection` recomputes
                with the collection's statistics, as training did.
        Raises:
            FirstStageError: see `first_stage`.
        """

        def text(query_id: str, doc_id: str) -> str:
            if callable(docs):
                return docs(query_id, doc_id)
            doc = docs[doc_id]
            return doc.text if isinstance(doc, Doc) else doc

        def query_text(query_id: str) -> str:
            query = queries[query_id]
            return query.text if isinstance(query, Query) else query

        def over_texts(stage: FirstStage, entries: list[ScoredDoc]) -> list[ScoredDoc]:
            by_query: dict[str, list[Doc]] = {}
            for entry in entries:
                by_query.setdefault(entry.query_id, []).append(Doc(entry.doc_id, text(entry.query_id, entry.doc_id)))
            return stage.score_pool({q: Query(q, query_text(q)) for q in by_query}, by_query)

        entries, _ = resolve_run(
            cut_depth(run, depth),
            over_texts,
            reads_score=self.first_stage_use(),
            first_stage=self.first_stage,
            mode=first_stage,
        )
        return self._rerank_entries(entries, query_text, text)

    def _rerank_entries(
        self, entries: Sequence[ScoredDoc], query_text: Callable[[str], str], text: Callable[[str, str], str]
    ) -> list[ScoredDoc]:
        by_query: dict[str, list[ScoredDoc]] = {}
        for entry in entries:
            by_query.setdefault(entry.query_id, []).append(entry)
        examples = []
        for query_id, group in by_query.items():
            doc_ids = [e.doc_id for e in group]
            texts = [text(query_id, e.doc_id) for e in group]
            examples.append(self._example(query_id, query_text(query_id), doc_ids, texts, [e.score for e in group]))
        return [ScoredDoc(q, d, s) for (q, d), s in self._score(examples, None).items()]

    def rerank_collection(
        self,
        collection: Collection,
        split: str,
        run: Sequence[ScoredDoc] | None = None,
        depth: int | None = 100,
        first_stage: str = AUTO,
    ) -> list[ScoredDoc]:
        """Re-rank a split of a collection: its first-stage run computed now (or `run`), top-`depth` per query.

        See `rerank_split`, which also says what was taken as the first stage.
        """
        return self.rerank_split(collection, split, run, depth, first_stage).run

    def rerank_split(
        self,
        collection: Collection,
        split: str,
        run: Sequence[ScoredDoc] | None = None,
        depth: int | None = 100,
        first_stage: str = AUTO,
        run_name: str = "the run",
    ) -> RerankOutcome:
        """Re-rank a split of a collection, and say what was taken as the first stage.

        Args:
            run: the first-stage run whose candidates are re-ranked; None: the checkpoint's first stage (BM25 with
                its settings) computed now.
            depth: each query's top `depth` candidates by the run's scores (ad hoc); every given candidate is
                re-ranked for answer selection.
            first_stage: for a ranker that reads the first-stage score (as a feature or in fusion): "auto"
                (default) computes the checkpoint's first stage over the run's candidates, as training did, unless
                the run's scores already are it; "run" takes the run's scores (`--first-stage-from-run`). See
                `neurank.inference.first_stage`.
            run_name: how messages name the run (its file).
        Raises:
            FirstStageError: the run cannot give the ranker its first-stage score (the message says why and what
                to pass instead). KeyError: the run names a query or document the split does not have.
        """
        if collection.task == ANSWER_SELECTION:
            depth = None  # every given candidate is re-ranked
        entries, report = resolve_first_stage(
            collection,
            split,
            run,
            reads_score=self.first_stage_use(),
            first_stage=self.first_stage,
            depth=depth,
            mode=first_stage,
            run_name=run_name,
        )
        examples = build_examples(collection, split, self.encoder, entries)
        return RerankOutcome([ScoredDoc(q, d, s) for (q, d), s in self._score(examples, None).items()], report)


def _token_counts(encoder: TextEncoder, texts: list[str]) -> list[int]:
    """How many tokens each text has before truncation, for the encoders neurank has: a word encoder's tokenizer
    (`WordEncoder`), or a Hugging Face tokenizer's word pieces (`WordPieceEncoder`). An encoder that offers neither
    counts as untruncated (0)."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if isinstance(tokenizer, Tokenizer):
        return [len(tokens) for tokens in tokenizer.tokenize_batch(texts)]
    if tokenizer is not None and hasattr(tokenizer, "encode_batch"):
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        return [sum(1 for i in encoding.ids if i != PAD_ID) for encoding in encodings]
    return [0] * len(texts)
