"""What a transformer ranker read for one pair: the sequences its transformer was given (`[CLS] query [SEP] document
[SEP]`, or each text alone), which word pieces the window kept, and, for the models without an interaction matrix
(the cross-encoder, the pooled cosine), what else there is to see: each passage's score (MaxP, FirstP) and the cosine,
scale and bias of the pooled cosine.

Which word pieces were read comes from the models' own functions (`cut_query`, `join_pair`, `join_single`,
`split_passages`), and every score from the models' own methods, so what is shown is what the model did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from neurank.models import Stage
from neurank.models.cedr import ContextualRanker, TransformerRanker, join_single
from neurank.models.cross_encoder import CrossEncoder, join_pair, split_passages
from neurank.models.layers import first_stage_column
from neurank.models.pooled_cosine import PooledCosine
from neurank.text import WordPieceEncoder

# Why a model has no interaction matrix, after "<model> has no interaction matrix: ".
NO_MATRIX_REASONS = {
    CrossEncoder: "it reads the query and the document as one sequence, which meet in the transformer's attention, "
    "not in a query-by-document similarity matrix",
    PooledCosine: "it encodes the query and the document apart and compares one pooled vector of each (a cosine), "
    "not their word pieces",
}


@dataclass
class TransformerView:
    """What the transformer of a ranker read for one pair.

    Attributes:
        window: the positions the transformer reads at most (`max_position_embeddings`); None: no limit.
        sequences: name -> the tokens the transformer was given, special tokens included, in order.
        query_read, doc_read: per token of the text encoder's output, whether the model read it (False: cut by the
            model, PACRR's `max_query_len`, or past the window).
        notes: what was cut and why, for a reader of the figure.
        stages: more stages to draw, batch axis first (the passages' scores of a cross-encoder over passages).
        score_parts: named numbers the score is made of (the pooled cosine: cosine, scale, bias).
    """

    window: int | None
    sequences: dict[str, list[str]]
    query_read: list[bool]
    doc_read: list[bool]
    notes: list[str] = field(default_factory=list)
    stages: dict[str, Stage] = field(default_factory=dict)
    score_parts: dict[str, float] = field(default_factory=dict)


def reads_word_pieces(model) -> bool:
    """Whether `model` is a transformer ranker (over a transformer's word pieces), which this module explains."""
    return isinstance(model, (TransformerRanker, CrossEncoder))


def no_matrix_reason(model) -> str:
    """Why `model` has no interaction matrix, as a clause after "<model> has no interaction matrix: "."""
    for kind, reason in NO_MATRIX_REASONS.items():
        if isinstance(model, kind):
            return reason
    return "it computes none"


def special_tokens(model, encoder) -> tuple[str, str]:
    """How the model's `[CLS]` and `[SEP]` ids are spelled in the encoder's vocabulary (`<s>`, `</s>` for some)."""
    cls_id, sep_id = model.config.cls_id, model.config.sep_id
    if isinstance(encoder, WordPieceEncoder):
        return encoder.tokenizer.id_to_token(cls_id) or "[CLS]", encoder.tokenizer.id_to_token(sep_id) or "[SEP]"
    return "[CLS]", "[SEP]"  # a random transformer over word ids: its two ids past the vocabulary


def transformer_view(
    model,
    encoder,
    query_ids: list[int],
    doc_ids: list[int],
    query_tokens: list[str],
    doc_tokens: list[str],
    first_stage_score: Tensor | None,
) -> TransformerView | None:
    """What a transformer ranker's transformer read for one encoded pair; None for a model without a transformer.

    Args:
        model: the ranker, in eval mode; encoder: the checkpoint's text encoder.
        query_ids, doc_ids: the encoder's ids of the pair; query_tokens, doc_tokens: their labels, one per id.
        first_stage_score: (1,) or None, as the model's forward takes it.
    """
    if not reads_word_pieces(model):
        return None
    device = next(model.parameters()).device
    query = torch.tensor([query_ids], device=device)  # (1, Lq)
    doc = torch.tensor([doc_ids], device=device)  # (1, Ld)
    query_mask, doc_mask = torch.ones_like(query, dtype=torch.bool), torch.ones_like(doc, dtype=torch.bool)
    cls_token, sep_token = special_tokens(model, encoder)
    cls_id, sep_id, window = model.config.cls_id, model.config.sep_id, model.max_positions
    notes = []
    query_cut = len(query_ids)
    if isinstance(model, ContextualRanker):
        query, query_mask = model.cut_query(query, query_mask)
        query_cut = query.shape[1]
        if query_cut < len(query_ids):
            notes.append(f"query: the model reads its first {query_cut} word pieces (max_query_len {query_cut})")

    def read(mask: Tensor, length: int) -> list[bool]:
        return mask[0].tolist() + [False] * (length - mask.shape[1])

    def sequence(*texts: tuple[list[str], list[bool]]) -> list[str]:
        out = [cls_token]
        for tokens, kept in texts:
            out += [token for token, is_read in zip(tokens, kept, strict=True) if is_read] + [sep_token]
        return out

    view = TransformerView(window, {}, [], [], notes)
    if isinstance(model, CrossEncoder) and model.config.passages != "none":
        _passages(model, view, query, doc, query_mask, doc_mask, query_tokens, doc_tokens, first_stage_score, sequence)
    elif getattr(model, "joint", False) or isinstance(model, CrossEncoder):
        joined = join_pair(query, doc, query_mask, doc_mask, cls_id, sep_id, window)
        view.query_read = read(joined["query_mask"], len(query_ids))
        view.doc_read = read(joined["doc_mask"], len(doc_ids))
        view.sequences["query and document, joined"] = sequence(
            (query_tokens, view.query_read), (doc_tokens, view.doc_read)
        )
    else:
        view.query_read = read(join_single(query, query_mask, cls_id, sep_id, window)[3], len(query_ids))
        view.sequences["query, alone"] = sequence((query_tokens, view.query_read))
        if isinstance(model, PooledCosine) and model.config.passages != "none":
            _pooled_passages(model, view, query, doc, query_mask, doc_mask, doc_tokens, first_stage_score, sequence)
        else:
            view.doc_read = read(join_single(doc, doc_mask, cls_id, sep_id, window)[3], len(doc_ids))
            view.sequences["document, alone"] = sequence((doc_tokens, view.doc_read))
    matrix = isinstance(model, ContextualRanker)
    firstp = getattr(model.config, "passages", "none") == "firstp"
    for kind, tokens_read, cut in (("query", view.query_read, query_cut), ("document", view.doc_read, len(doc_ids))):
        past = sum(not is_read for is_read in tokens_read[:cut])
        if past and kind == "document" and firstp:
            notes.append(f"document: {past} word pieces after the first passage not read (FirstP)")
        elif past and window is not None:
            zero = " (0 in the matrices)" if matrix else ""
            notes.append(
                f"{kind}: {past} word pieces past the transformer's window of {window} positions not read{zero}"
            )
    if isinstance(model, PooledCosine):
        view.score_parts = _pooled_cosine_parts(model, query, doc, query_mask, doc_mask, first_stage_score)
    return view


def _passages(model, view, query, doc, query_mask, doc_mask, query_tokens, doc_tokens, first_stage_score, sequence):
    """A cross-encoder over passages (MaxP, FirstP): each passage the model scored, its sequence and score."""
    config = model.config
    passage_ids, passage_mask, passage_valid = split_passages(doc, doc_mask, config.passage_len, config.passage_stride)
    count = 1 if config.passages == "firstp" else int(passage_valid[0].sum())
    doc_read = [False] * len(doc_tokens)
    scores, labels = [], []
    for p in range(count):  # valid passages come first: each one starts inside the document
        joined = join_pair(
            query, passage_ids[:, p], query_mask, passage_mask[:, p], config.cls_id, config.sep_id, model.max_positions
        )
        start = p * config.passage_stride
        kept = joined["doc_mask"][0].tolist()
        for offset, is_read in enumerate(kept):
            if is_read:
                doc_read[start + offset] = True
        stop = start + int(passage_mask[0, p].sum())
        passage_tokens = doc_tokens[start:stop]
        query_read = joined["query_mask"][0].tolist()
        name = f"passage {p + 1} (document word pieces {start + 1}-{stop})"
        view.sequences[name] = sequence((query_tokens, query_read), (passage_tokens, kept[: len(passage_tokens)]))
        view.query_read = query_read
        scores.append(model.score_pairs(query, passage_ids[:, p], query_mask, passage_mask[:, p], first_stage_score)[0])
        labels.append(str(p + 1))
    view.doc_read = doc_read
    best = max(range(count), key=lambda p: float(scores[p]))
    mode = "MaxP: the best passage's score" if config.passages == "maxp" else "FirstP: the first passage's score"
    view.notes.append(f"{mode} is the document's; passage {best + 1} of {count} gives it")
    view.stages["passages"] = Stage(
        torch.stack(scores)[None], ("passage",), f"each passage's score ({mode})", {"passage": labels}
    )


def _pooled_passages(model, view, query, doc, query_mask, doc_mask, doc_tokens, first_stage_score, sequence):
    """A pooled cosine over passages (MaxP, FirstP): each passage it encoded alone, and each passage's score."""
    config = model.config
    passage_ids, passage_mask, _ = split_passages(doc, doc_mask, config.passage_len, config.passage_stride)
    cosines, valid = model.passage_cosines(query, doc, query_mask, doc_mask)  # (1, P): the model's own
    count = int(valid[0].sum())  # valid passages come first: each one starts inside the document
    doc_read = [False] * len(doc_tokens)
    for p in range(count):
        kept = join_single(passage_ids[:, p], passage_mask[:, p], config.cls_id, config.sep_id, model.max_positions)[3]
        start = p * config.passage_stride
        stop = start + int(passage_mask[0, p].sum())
        for offset, is_read in enumerate(kept[0].tolist()):
            if is_read:
                doc_read[start + offset] = True
        passage_tokens = doc_tokens[start:stop]
        view.sequences[f"passage {p + 1}, alone (document word pieces {start + 1}-{stop})"] = sequence(
            (passage_tokens, kept[0].tolist()[: len(passage_tokens)])
        )
    view.doc_read = doc_read
    scores = (model.scale * cosines + model.bias)[:, :count]  # (1, count)
    if model.first_stage_weight is not None:  # the document's first-stage term, added to each passage's score
        scores = scores + model.first_stage_weight * first_stage_column(first_stage_score, model.config, scores)
    best = int(scores[0].argmax())
    mode = "MaxP: the best passage's score" if config.passages == "maxp" else "FirstP: the first passage's score"
    view.notes.append(f"{mode} is the document's; passage {best + 1} of {count} gives it")
    view.stages["passages"] = Stage(
        scores.detach(), ("passage",), f"each passage's score ({mode})", {"passage": [str(p + 1) for p in range(count)]}
    )


def _pooled_cosine_parts(model, query, doc, query_mask, doc_mask, first_stage_score) -> dict[str, float]:
    # The pooled vectors are the model's own (`text_vectors`, from its cache when frozen); the cosine is its forward's
    # (over passages: the passage that gives the score).
    cosines, valid = model.passage_cosines(query, doc, query_mask, doc_mask)  # (1, P)
    scores = (model.scale * cosines + model.bias).masked_fill(~valid, float("-inf"))
    parts = {
        "cosine": float(cosines[0, int(scores[0].argmax())]),
        "scale": float(model.scale),
        "bias": float(model.bias),
    }
    if model.first_stage_weight is not None and first_stage_score is not None:
        parts["first-stage weight"] = float(model.first_stage_weight[0])
        parts["first-stage score"] = float(first_stage_score[0])
    return parts
