"""The four record types every other layer speaks.

Field names match ir_measures and ir_datasets, so qrels and runs go straight into the metric library.
"""

from __future__ import annotations

from typing import NamedTuple


class Query(NamedTuple):
    query_id: str
    text: str


class Doc(NamedTuple):
    doc_id: str
    text: str


class Qrel(NamedTuple):
    query_id: str
    doc_id: str
    relevance: int


class ScoredDoc(NamedTuple):
    query_id: str
    doc_id: str
    score: float
