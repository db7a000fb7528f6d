"""One query-document pair as a trained ranker sees it: the tokens it read and what it computed from them.

    reranker = Reranker.from_checkpoint("runs/wikiqa/best.pt")
    pair = explain_pair(reranker, "who wrote hamlet", "Hamlet is a tragedy by William Shakespeare.")
    pair.query_tokens, pair.stages["interactions"].values, pair.score

Texts go through the checkpoint's own `TextEncoder` (tokenizer, stop words, stemming, vocabulary, truncation), so
the tokens on a figure's axes are the tokens the model saw, one per row or column of its interaction matrix: words for
the word models, the pretrained tokenizer's word pieces (`ham`, `##let`) for the transformer rankers. The
intermediates come from the model's `explain` hook, never from code here, and the score is the model's forward score
for that pair (the logit, before any fusion with the first stage).

A transformer ranker without an interaction matrix (the cross-encoder, the pooled cosine) is explained too: the word
pieces each text became, what its transformer read (`neurank.explain.transformer`), and its score;
`pair.interactions` then raises `NoInteractionMatrixError`, which says why there is none. A word model without one
(ArcI) is refused with that error: it has nothing to show but its score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch

from neurank.collections import ANSWER_SELECTION, Collection, Doc, Query, ScoredDoc
from neurank.data.examples import normalise_scores
from neurank.explain.transformer import no_matrix_reason, reads_word_pieces, transformer_view
from neurank.inference.reranker import Reranker
from neurank.models import Ranker, Stage
from neurank.retrieval import BM25Retriever, bm25_run, score_candidates
from neurank.text import PAD_ID, UNK_ID, WordEncoder, WordPieceEncoder


class NoInteractionMatrixError(ValueError):
    """The ranker has no query-by-document interaction matrix (ArcI, a cross-encoder, a pooled cosine)."""


@dataclass
class PairExplanation:
    """A ranker's view of one (query, document) pair.

    Attributes:
        model_name: the registered model name.
        query, doc: the texts as given.
        query_tokens, doc_tokens: the tokens the model read, in order, after tokenisation and truncation: words, or
            word pieces (`token_kind`); a text with no token at all reads as the single token UNK, shown as "<empty>".
        query_unknown, doc_unknown: whether each token is out of the vocabulary (the model saw UNK there).
        score: the model's score (its forward logit) for the pair.
        first_stage_score: the normalised first-stage score given to the model (or to fusion); None when unused.
        stages: the model's `explain` stages for this pair, batch axis removed, as float numpy arrays.
        labels, axes, descriptions: per stage, as in `neurank.models.Stage`.
        query_id, doc_id, relevance: set when the pair comes from a collection.
        ranking_score: the score re-ranking sorts by (fused with the first stage when the checkpoint says so).
        rank, candidates: the document's rank among the query's re-ranked candidates, and how many there were.
        first_stage_rank: its rank in the first-stage run.
        fusion_alpha: the checkpoint's fusion weight, None without fusion.
        notes: facts a reader of the figure should know.
        token_kind: "token" (words) or "word piece".
        query_length, doc_length: the tokens each text had before the text encoder kept the first max_query_len /
            max_doc_len.
        window: the positions a transformer reads at most; None for other models (and for no limit).
        query_read, doc_read: per token, whether the model read it (a transformer's window, PACRR's max_query_len);
            None for models that read every token they are given.
        sequences: what a transformer was given, special tokens included: {"query and document, joined": [...]}, or
            each text alone, or each passage.
        score_parts: named numbers the score is made of, where the figure shows them (the pooled cosine: cosine,
            scale, bias).
        no_matrix_reason: why the model has no interaction matrix; None when it has one.
    """

    model_name: str
    query: str
    doc: str
    query_tokens: list[str]
    doc_tokens: list[str]
    query_unknown: list[bool]
    doc_unknown: list[bool]
    score: float
    first_stage_score: float | None
    stages: dict[str, np.ndarray]
    axes: dict[str, tuple[str, ...]]
    labels: dict[str, dict[str, list[str]]]
    descriptions: dict[str, str]
    query_id: str | None = None
    doc_id: str | None = None
    relevance: int | None = None
    ranking_score: float | None = None
    rank: int | None = None
    candidates: int | None = None
    first_stage_rank: int | None = None
    fusion_alpha: float | None = None
    notes: list[str] = field(default_factory=list)
    token_kind: str = "token"
    query_length: int | None = None
    doc_length: int | None = None
    window: int | None = None
    query_read: list[bool] | None = None
    doc_read: list[bool] | None = None
    sequences: dict[str, list[str]] = field(default_factory=dict)
    score_parts: dict[str, float] = field(default_factory=dict)
    no_matrix_reason: str | None = None

    @property
    def has_interaction_matrix(self) -> bool:
        return "interactions" in self.stages

    @property
    def interactions(self) -> np.ndarray:
        """The interaction matrix the model computed, (C, Lq, Ld).

        Raises:
            NoInteractionMatrixError: the model has none; the message says why.
        """
        if "interactions" not in self.stages:
            reason = self.no_matrix_reason or "its explain hook gives none"
            raise NoInteractionMatrixError(f"{self.model_name} has no interaction matrix: {reason}")
        return self.stages["interactions"]

    def to_dict(self) -> dict:
        """Plain JSON-safe values: every field, with each stage as nested lists beside its axes and labels."""
        out = {
            key: value for key, value in vars(self).items() if key not in ("stages", "axes", "labels", "descriptions")
        }
        out["has_interaction_matrix"] = self.has_interaction_matrix
        out["stages"] = {
            name: {
                "axes": list(self.axes[name]),
                "description": self.descriptions[name],
                "labels": self.labels[name],
                "values": values.tolist(),
            }
            for name, values in self.stages.items()
        }
        return out


def checkpoint_model_name(path) -> str:
    """The registered model name a checkpoint was trained as (for titles; the class name may be an alias's)."""
    from neurank.inference.checkpoint import load_checkpoint

    return str(load_checkpoint(path).get("model_name", "model"))


def seen_tokens(reranker: Reranker, text: str, kind: str) -> tuple[list[str], list[int]]:
    """The tokens and ids the model reads for `text` ("query" or "doc"): tokenised and truncated as in training.

    The tokens are words for a word encoder (`neurank.text.WordEncoder`) and the tokenizer's own word pieces
    (`ham`, `##let`) for a word-piece encoder (`neurank.text.WordPieceEncoder`).

    Returns:
        (tokens, ids) of equal length; an empty text is (["<empty>"], [UNK id]), as the encoder makes it.
    Raises:
        TypeError: an encoder of another kind, whose ids this module cannot name.
    """
    tokens, ids, _ = _seen(reranker, text, kind)
    return tokens, ids


def _seen(reranker: Reranker, text: str, kind: str) -> tuple[list[str], list[int], int]:
    # (tokens, ids, tokens before the encoder's cut)
    encoder = reranker.encoder
    if kind == "query":
        ids, max_len = encoder.encode_queries([text])[0], encoder.max_query_len
    else:
        ids, max_len = encoder.encode_docs([text])[0], encoder.max_doc_len
    if isinstance(encoder, WordEncoder):
        every = encoder.tokenizer.tokenize(text)
        tokens = every[:max_len] or ["<empty>"]
    elif isinstance(encoder, WordPieceEncoder):
        every = [i for i in encoder.tokenizer.encode(text, add_special_tokens=False).ids if i != PAD_ID]
        tokens = [encoder.tokenizer.id_to_token(i) for i in ids] if every else ["<empty>"]
    else:
        raise TypeError(
            f"explain names the tokens of word and word-piece encoders; this ranker's encoder is a "
            f"{type(encoder).__name__}, whose ids it cannot name"
        )
    if len(tokens) != len(ids):  # the encoder is the reference; this would be a bug in one of the two
        raise RuntimeError(f"{kind} tokens ({len(tokens)}) and ids ({len(ids)}) differ for {text!r}")
    return tokens, list(ids), len(every)


def _check_encoder(reranker: Reranker, name: str) -> None:
    """Refuse a ranker whose ids would be labelled with another vocabulary's tokens."""
    model, encoder = reranker.model, reranker.encoder
    hf_model = getattr(getattr(model, "config", None), "hf_model", None)
    if hf_model is not None and not isinstance(encoder, WordPieceEncoder):
        raise ValueError(
            f"{name} reads the word pieces of {hf_model}, but this ranker's text encoder is a "
            f"{type(encoder).__name__}: its ids are not those word pieces, and a figure would label them with the "
            "wrong tokens; use the checkpoint's own encoder (Reranker.from_checkpoint)"
        )
    model_ids = getattr(model, "vocab_size", None)
    if isinstance(model_ids, int) and model_ids != encoder.vocab_size:
        raise ValueError(
            f"{name} was built for {model_ids} ids but this ranker's text encoder gives {encoder.vocab_size}: they are "
            "not the same vocabulary, and a figure would label the ids with the wrong tokens"
        )


def explain_pair(
    reranker: Reranker, query: str, doc: str, first_stage_score: float | None = None, model_name: str | None = None
) -> PairExplanation:
    """Explain the ranker's score for one pair of texts.

    Args:
        reranker: a trained ranker with its text encoder (`Reranker.from_checkpoint`).
        first_stage_score: the normalised first-stage score in [0, 1], used when the model (or its fusion) reads
            one; None computes it as `Reranker.rank(query, [doc])` would: BM25 over this one document, normalised,
            i.e. 1.0 when it shares a term with the query and 0.0 otherwise.
        model_name: shown in figures (default: the model's class name).
    Returns:
        the explanation; for a model without an interaction matrix (`no_matrix_reason` says why) it holds the
        tokens, what a transformer read and the score, and no "interactions" stage.
    Raises:
        NoInteractionMatrixError: a word model without an interaction matrix (ArcI).
        ValueError: the ranker's text encoder does not give the ids its model reads (the labels would be wrong).
        TypeError: a text encoder whose ids cannot be named.
    """
    model = reranker.model
    name = model_name or type(model).__name__
    has_matrix = getattr(model, "has_interaction_matrix", True)
    if not has_matrix and not reads_word_pieces(model):
        raise NoInteractionMatrixError(
            f"{name} is representation-based: the query and the document are encoded separately and meet only in "
            "its final layers, so there is no query-by-document interaction matrix to show"
        )
    _check_encoder(reranker, name)
    notes = []
    if reranker.uses_first_stage_score and first_stage_score is None:
        run = score_candidates({"q": Query("q", query)}, {"q": [Doc("d", doc)]})
        first_stage_score = normalise_scores([run[0].score])[0]
        notes.append("first-stage score: BM25 over this one document, normalised as re-ranking does")
    if not reranker.uses_first_stage_score:
        first_stage_score = None
    query_tokens, query_ids, query_length = _seen(reranker, query, "query")
    doc_tokens, doc_ids, doc_length = _seen(reranker, doc, "doc")
    encoder = reranker.encoder
    token_kind = "word piece" if isinstance(encoder, WordPieceEncoder) else "token"
    for kind, length, kept, limit in (
        ("query", query_length, len(query_ids), "max_query_len"),
        ("document", doc_length, len(doc_ids), "max_doc_len"),
    ):
        if length > kept:
            notes.append(f"{kind}: {length} {token_kind}s, the first {kept} read (the checkpoint's {limit})")
    unk_id = encoder.unk_id if isinstance(encoder, WordPieceEncoder) else UNK_ID
    device = reranker.device
    model.eval()
    # Every registered model is a Ranker; the cast checks nothing, so any module is called as before.
    ranker = cast(Ranker, model)
    with torch.inference_mode():
        score_input = None if first_stage_score is None else torch.tensor([first_stage_score], device=device)
        query_input = torch.tensor([query_ids], device=device)
        doc_input = torch.tensor([doc_ids], device=device)
        stages: dict[str, Stage] = {}
        try:
            explanation = ranker.explain(query_input, doc_input, first_stage_score=score_input)
            score, stages = float(explanation.score[0]), dict(explanation.stages)
        except NotImplementedError:
            if has_matrix:
                raise
            score = float(ranker(query_input, doc_input, first_stage_score=score_input)[0])
        view = transformer_view(model, encoder, query_ids, doc_ids, query_tokens, doc_tokens, score_input)
    if view is not None:
        stages.update(view.stages)
        notes += view.notes
    if "interactions" in stages:
        _, query_len, doc_len = stages["interactions"].values.shape[1:]
        if query_len > len(query_tokens) or doc_len > len(doc_tokens):  # labels would be cut or shifted
            raise RuntimeError(
                f"{name}'s interaction matrix is {query_len} x {doc_len} but the texts have {len(query_tokens)} and "
                f"{len(doc_tokens)} {token_kind}s to label it with"
            )
    return PairExplanation(
        model_name=name,
        query=query,
        doc=doc,
        query_tokens=query_tokens,
        doc_tokens=doc_tokens,
        query_unknown=[i == unk_id and t != "<empty>" for t, i in zip(query_tokens, query_ids, strict=True)],
        doc_unknown=[i == unk_id and t != "<empty>" for t, i in zip(doc_tokens, doc_ids, strict=True)],
        score=score,
        first_stage_score=first_stage_score,
        stages={key: _numpy(stage) for key, stage in stages.items()},
        axes={key: stage.axes for key, stage in stages.items()},
        labels={key: stage.labels for key, stage in stages.items()},
        descriptions={key: stage.description for key, stage in stages.items()},
        fusion_alpha=reranker.fusion_alpha,
        notes=notes,
        token_kind=token_kind,
        query_length=query_length,
        doc_length=doc_length,
        window=None if view is None else view.window,
        query_read=None if view is None else view.query_read,
        doc_read=None if view is None else view.doc_read,
        sequences={} if view is None else view.sequences,
        score_parts={} if view is None else view.score_parts,
        no_matrix_reason=None if has_matrix else no_matrix_reason(model),
    )


def _numpy(stage: Stage) -> np.ndarray:
    return stage.values[0].detach().float().cpu().numpy()


def explain_candidate(
    reranker: Reranker,
    collection: Collection,
    split: str,
    query_id: str,
    doc_id: str,
    depth: int = 100,
    model_name: str | None = None,
) -> PairExplanation:
    """Explain the ranker's score for a query and a document of a collection, as re-ranking that split scores it.

    The first-stage score is the pair's BM25 score normalised over the query's candidates, as in training and
    re-ranking: every given candidate (answer selection) or the BM25 top `depth` (ad-hoc). The explanation also
    says where re-ranking puts the document among those candidates, and its relevance.

    Raises:
        KeyError: no such split, query or document (for answer selection: not a candidate of that query).
    """
    part = collection.split(split)
    if query_id not in part.queries:
        raise KeyError(f"{collection.name}/{split}: no query {query_id!r}")
    query = part.queries[query_id]
    doc_text = collection.doc_text(split, query_id, doc_id)
    run, notes = _first_stage_run(collection, split, query, doc_id, depth)
    first_stage = dict(
        zip((entry.doc_id for entry in run), normalise_scores([entry.score for entry in run]), strict=True)
    )

    pair = explain_pair(reranker, query.text, doc_text, first_stage[doc_id], model_name)
    reranked = reranker.rerank(run, {query_id: query}, lambda q, d: collection.doc_text(split, q, d), depth=len(run))
    ranking = sorted(reranked, key=lambda entry: -entry.score)
    position = {entry.doc_id: rank for rank, entry in enumerate(ranking, start=1)}
    pair.query_id, pair.doc_id = query_id, doc_id
    pair.relevance = part.qrels_by_query().get(query_id, {}).get(doc_id, 0)
    pair.ranking_score = next(entry.score for entry in ranking if entry.doc_id == doc_id)
    pair.rank, pair.candidates = position[doc_id], len(ranking)
    pair.first_stage_rank = 1 + [entry.doc_id for entry in sorted(run, key=lambda e: -e.score)].index(doc_id)
    pair.notes = notes + pair.notes
    return pair


def _first_stage_run(
    collection: Collection, split: str, query: Query, doc_id: str, depth: int
) -> tuple[list[ScoredDoc], list[str]]:
    """The query's candidates with their BM25 scores, as re-ranking builds them, and notes about them."""
    if collection.task == ANSWER_SELECTION:
        # BM25 statistics come from the split's whole candidate pool, as in `bm25_run`.
        run = [entry for entry in bm25_run(collection, split) if entry.query_id == query.query_id]
        return run, []
    retriever = BM25Retriever().index(collection.docs.values())
    run = retriever.search([query], k=depth)
    if any(entry.doc_id == doc_id for entry in run):
        return run, []
    index = retriever.doc_ids.index(doc_id)
    score = float(retriever.scores(query.text)[index])
    note = f"document {doc_id} is not in the BM25 top {depth} that re-ranking reads; scored as if it were"
    return run + [ScoredDoc(query.query_id, doc_id, score)], [note]
