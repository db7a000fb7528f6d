"""Seeing inside a ranker: one pair's interaction matrix and what the model makes of it, per-query wins and losses
between two runs, and the figures for both (matplotlib, an optional dependency, imported only to draw)."""

from neurank.explain.compare import QueryDelta, per_query_deltas, summarise_deltas
from neurank.explain.pair import (
    NoInteractionMatrixError,
    PairExplanation,
    checkpoint_model_name,
    explain_candidate,
    explain_pair,
    seen_tokens,
)

__all__ = [
    "NoInteractionMatrixError",
    "PairExplanation",
    "QueryDelta",
    "checkpoint_model_name",
    "explain_candidate",
    "explain_pair",
    "per_query_deltas",
    "seen_tokens",
    "summarise_deltas",
]
