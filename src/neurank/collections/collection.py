"""`Collection`: the documents, queries and relevance judgements of one test collection, per split.

Two kinds of collection exist. Ad-hoc collections (NFCorpus, Cranfield, CISI) have one document pool shared by all
queries, and candidates come from a first-stage retriever. Answer-selection collections (WikiQA) give each query
its own candidate list; their document ids are only unique within a query (they follow the official WikiQA `.ref`
files), so candidate texts live in the split, not in `Collection.docs`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from neurank.collections.errors import warn_data
from neurank.collections.records import Doc, Qrel, Query

ADHOC = "adhoc"
ANSWER_SELECTION = "answer_selection"


@dataclass
class Split:
    """Queries, qrels and (answer selection only) the given candidates of one split.

    `original_ids` is set by readers that renumber ids to match an official reference (WikiQA):
    ``{query_id: (original_query_id, {doc_id: original_doc_id})}``.
    """

    queries: dict[str, Query]
    qrels: list[Qrel]
    candidates: dict[str, list[Doc]] | None = None
    original_ids: dict[str, tuple[str, dict[str, str]]] | None = None

    def qrels_by_query(self) -> dict[str, dict[str, int]]:
        """`{query_id: {doc_id: relevance}}`."""
        judged: dict[str, dict[str, int]] = {}
        for qrel in self.qrels:
            judged.setdefault(qrel.query_id, {})[qrel.doc_id] = qrel.relevance
        return judged


@dataclass
class Collection:
    """A named test collection.

    Attributes:
        name: registry name, e.g. ``"wikiqa"``.
        task: ``"adhoc"`` or ``"answer_selection"``.
        docs: the shared document pool (empty for answer selection).
        splits: ``{"train": Split, "dev": Split, "test": Split, ...}``.
        measures: the measures this collection is usually reported with, primary first.
        notes: facts a user should know when reading results (which query set, what was dropped).
    """

    name: str
    task: str
    docs: dict[str, Doc]
    splits: dict[str, Split]
    measures: tuple[str, ...] = ("nDCG@10", "AP", "P@10")
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            known = ", ".join(self.splits)
            raise KeyError(f"collection {self.name!r} has no split {name!r}; it has: {known}") from None

    def doc_text(self, split: str, query_id: str, doc_id: str) -> str:
        """The text of `doc_id` as a candidate for `query_id` (works for both kinds of collection)."""
        if self.task == ANSWER_SELECTION:
            for doc in self.split(split).candidates.get(query_id, ()):  # type: ignore[union-attr]
                if doc.doc_id == doc_id:
                    return doc.text
            raise KeyError(f"{self.name}/{split}: query {query_id!r} has no candidate {doc_id!r}")
        try:
            return self.docs[doc_id].text
        except KeyError:
            raise KeyError(f"{self.name}: unknown document {doc_id!r}") from None

    def summary(self) -> dict:
        """Counts per split, for listings and JSON output."""
        out: dict = {"name": self.name, "task": self.task, "docs": len(self.docs), "splits": {}}
        for name, split in self.splits.items():
            entry = {"queries": len(split.queries), "qrels": len(split.qrels)}
            if split.candidates is not None:
                entry["candidates"] = sum(len(c) for c in split.candidates.values())
            out["splits"][name] = entry
        return out


def kfold_query_ids(query_ids: Iterable[str], k: int, seed: int = 0) -> list[list[str]]:
    """Partition query ids into `k` folds, deterministically for a given seed.

    The ids are sorted (numerically where they are numbers) before a seeded shuffle, so the folds do not depend on
    the order the reader produced them in, nor on Python's hash seed.
    """
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    ids = sorted(set(query_ids), key=lambda q: (0, int(q), "") if q.isdigit() else (1, 0, q))
    if len(ids) < k:
        raise ValueError(f"cannot make {k} folds from {len(ids)} queries")
    random.Random(seed).shuffle(ids)
    return [ids[i::k] for i in range(k)]


def kfold_splits(
    queries: dict[str, Query], qrels: Sequence[Qrel], k: int, fold: int, seed: int = 0
) -> dict[str, Split]:
    """Train/dev/test splits for fold `fold` of `k`: test is fold `fold`, dev the next fold, train the rest.

    Only queries with at least one judgement are split (unjudged queries cannot be evaluated); an ``"all"`` split
    holds every judged query.
    """
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}, got {fold}")
    judged_ids = {q.query_id for q in qrels}
    folds = kfold_query_ids([qid for qid in queries if qid in judged_ids], k, seed)
    parts = {"test": set(folds[fold]), "dev": set(folds[(fold + 1) % k])}
    parts["train"] = judged_ids & set(queries) - parts["test"] - parts["dev"]
    parts["all"] = judged_ids & set(queries)
    return {
        name: Split(
            queries={qid: q for qid, q in queries.items() if qid in ids},
            qrels=[r for r in qrels if r.query_id in ids],
        )
        for name, ids in parts.items()
    }


def dev_query_ids(query_ids: Iterable[str], fraction: float) -> set[str]:
    """The query ids carved from train into dev: `round(fraction * n)` of the `n` ids, at least one, never all.

    Ids are ranked by a hash of the id itself (SHA-256, not Python's seeded `hash`), so the choice depends neither on
    file order nor on the run; the same ids always give the same dev queries. Fewer than two ids give none.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"dev fraction must be from 0 to below 1, got {fraction}")
    ids = sorted(set(query_ids), key=lambda q: (hashlib.sha256(q.encode("utf-8")).hexdigest(), q))
    if fraction == 0 or len(ids) < 2:
        return set()
    count = min(max(round(fraction * len(ids)), 1), len(ids) - 1)
    return set(ids[:count])


def carve_dev(train: Split, fraction: float) -> tuple[Split, Split]:
    """Split `train` into (train, dev) with `dev_query_ids`; qrels and candidates follow their queries."""
    dev_ids = dev_query_ids(train.queries, fraction)

    def part(keep: bool) -> Split:
        queries = {qid: q for qid, q in train.queries.items() if (qid in dev_ids) == keep}
        candidates = None
        if train.candidates is not None:
            candidates = {qid: docs for qid, docs in train.candidates.items() if qid in queries}
        original = (
            None
            if train.original_ids is None
            else {qid: ids for qid, ids in train.original_ids.items() if qid in queries}
        )
        return Split(queries, [r for r in train.qrels if r.query_id in queries], candidates, original)

    return part(False), part(True)


def drop_unknown_qrels(
    qrels: Iterable[Qrel], query_ids: Iterable[str] | None, doc_ids: Iterable[str] | None, source: str
) -> list[Qrel]:
    """Keep the qrels whose query and document are known; warn once, with counts, about the rest.

    Args:
        query_ids / doc_ids: the known ids, or None to skip that check.
        source: the file (or description) named in the warning.
    """
    known_queries = None if query_ids is None else set(query_ids)
    known_docs = None if doc_ids is None else set(doc_ids)
    kept: list[Qrel] = []
    unknown_query = unknown_doc = 0
    for qrel in qrels:
        if known_queries is not None and qrel.query_id not in known_queries:
            unknown_query += 1
        elif known_docs is not None and qrel.doc_id not in known_docs:
            unknown_doc += 1
        else:
            kept.append(qrel)
    if unknown_query or unknown_doc:
        warn_data(
            f"{source}: dropped {unknown_query + unknown_doc} qrel(s) naming unknown ids "
            f"({unknown_query} unknown queries, {unknown_doc} unknown documents)"
        )
    return kept
