"""Collection split + candidate run -> per-query candidate lists, all as token ids, tokenised once.

`build_examples` is the one step between records and the datasets: each distinct query and document text is
tokenised, encoded and truncated once (by a `neurank.text.TextEncoder`, which caches by text), so training epochs and
re-ranking never tokenise again.

Choices:
- Candidates are the run's documents for the query, best first (`depth` keeps the top ones). For answer selection
  (WikiQA) the run is `bm25_run`, which scores every given candidate, and the texts come from `Split.candidates`;
  for ad-hoc collections the run is the BM25 top-k and the texts come from `Collection.docs`. Judged documents the
  run missed are not added: their first-stage score would be unknown, and a made-up 0 would tell the model "0
  means relevant".
- Labels: `relevance` from the qrels (0 when unjudged); `label` is 1.0 when `relevance >= min_relevance`, else 0.0.
- `score` is the first-stage score divided by the query's largest score, so it lies in [0, 1] and 0 keeps its
  meaning "no term in common" (a query whose scores are all 0 gets all 0). Runs with negative scores (not BM25)
  are min-max normalised per query instead.
- A text with no tokens after tokenisation (empty, or only punctuation or stop words) becomes the single id
  UNK_ID, with one `DataWarning` giving the count (the encoder's rule, `neurank.text.WordEncoder`). Dropping it
  would change the evaluated run (an answer-selection candidate list is the ranking being judged), and an empty id
  list would reach the model as an all-PAD, all-masked row.
- A query most of whose words the vocabulary does not know (more than half of the tokens the model reads are UNK)
  gives one `DataWarning` per call, with the count and the first few query ids (`warn_unknown_queries`): unknown
  words match nothing (issue 22, `neurank.models.layers`), so such a query is ranked on the little that is left, a
  sign of a collection in another language or script than the one the model was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from neurank.collections.collection import ANSWER_SELECTION, Collection
from neurank.collections.errors import warn_data
from neurank.collections.records import ScoredDoc
from neurank.text import UNK_ID, TextEncoder, WordEncoder

#: A query is "mostly unknown" when more than this share of the tokens the model reads are out of the vocabulary.
UNKNOWN_SHARE = 0.5
#: How many query ids the warning names.
NAMED_QUERIES = 5


@dataclass
class QueryExample:
    """One query and its candidates, best first stage score first; the lists are parallel (one entry per candidate).

    Attributes:
        query_id: the collection's query id.
        query: token ids of the query (1..max_query_len ids).
        doc_ids: the candidates' document ids.
        docs: token ids of each candidate (1..max_doc_len ids each).
        relevance: qrels relevance of each candidate, 0 when unjudged.
        labels: 1.0 for a relevant candidate (relevance >= min_relevance), else 0.0.
        scores: first-stage score divided by the query's largest score, in [0, 1].
    """

    query_id: str
    query: list[int]
    doc_ids: list[str]
    docs: list[list[int]]
    relevance: list[int]
    labels: list[float]
    scores: list[float]

    @property
    def num_positives(self) -> int:
        return sum(1 for label in self.labels if label > 0)

    def __len__(self) -> int:
        return len(self.doc_ids)


def normalise_scores(scores: Sequence[float]) -> list[float]:
    """One query's first-stage scores mapped to [0, 1]: divided by the largest score, or min-max if any is negative."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if low >= 0:
        return [score / high if high > 0 else 0.0 for score in scores]
    return [(score - low) / (high - low) if high > low else 0.0 for score in scores]


def build_examples(
    collection: Collection,
    split: str,
    encoder: TextEncoder,
    run: Iterable[ScoredDoc] | None = None,
    *,
    depth: int | None = None,
    min_relevance: int = 1,
) -> list[QueryExample]:
    """Per-query candidate lists of one split, as token ids, ready for the datasets.

    Args:
        collection: the collection; `split` names one of its splits.
        encoder: tokenises and caches texts; share one across splits so common documents are tokenised once.
        run: the first-stage run; None runs `bm25_run(collection, split, k=depth or 1000)`.
        depth: keep each query's top `depth` candidates by first-stage score (None keeps all).
        min_relevance: the least qrels relevance that counts as a positive (label 1.0).

    Returns:
        One `QueryExample` per query of the split that has at least one candidate, in the split's query order.
        Queries with no candidates (e.g. no BM25 match) are left out; run entries for queries not in the split
        are ignored with a `DataWarning`. A run entry naming an unknown document raises KeyError.
    """
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 or None, got {depth}")
    part = collection.split(split)
    if run is None:
        from neurank.retrieval import bm25_run  # the first stage is only needed when no run is given

        run = bm25_run(collection, split, k=depth or 1000)

    ranked: dict[str, list[ScoredDoc]] = {}
    foreign = 0
    for entry in run:
        if entry.query_id in part.queries:
            ranked.setdefault(entry.query_id, []).append(entry)
        else:
            foreign += 1
    if foreign:
        warn_data(f"{collection.name}/{split}: ignored {foreign} run entries for queries not in the split")

    query_ids = [query_id for query_id in part.queries if ranked.get(query_id)]
    for query_id in query_ids:
        ranked[query_id].sort(key=lambda entry: -entry.score)  # stable: ties keep the run's order
        if depth is not None:
            del ranked[query_id][depth:]

    doc_text = _doc_text_lookup(collection, split)
    flat_docs = encoder.encode_docs([doc_text(entry) for query_id in query_ids for entry in ranked[query_id]])
    queries = encoder.encode_queries([part.queries[query_id].text for query_id in query_ids])
    warn_unknown_queries(
        encoder,
        {query_id: part.queries[query_id].text for query_id in query_ids},
        f"{collection.name}/{split}",
        id_lists=queries,
    )
    judged = part.qrels_by_query()

    examples = []
    start = 0
    for query_id, query in zip(query_ids, queries, strict=True):
        entries = ranked[query_id]
        relevance = [judged.get(query_id, {}).get(entry.doc_id, 0) for entry in entries]
        examples.append(
            QueryExample(
                query_id=query_id,
                query=query,
                doc_ids=[entry.doc_id for entry in entries],
                docs=flat_docs[start : start + len(entries)],
                relevance=relevance,
                labels=[1.0 if rel >= min_relevance else 0.0 for rel in relevance],
                scores=normalise_scores([entry.score for entry in entries]),
            )
        )
        start += len(entries)
    return examples


def mostly_unknown_queries(
    encoder: TextEncoder, queries: Mapping[str, str], id_lists: Sequence[Sequence[int]] | None = None
) -> list[str]:
    """The ids of the queries most of whose tokens (more than `UNKNOWN_SHARE` of those the model reads, the first
    `max_query_len`) are out of the encoder's vocabulary, in the order given.

    A word encoder's tokens are looked up in its vocabulary; a query with no token at all is left out (the encoder
    already warns about those). For another encoder (word pieces) the share of its unknown id among the query's ids
    counts, when it has one. `id_lists`, the queries' ids as the encoder gave them, saves tokenising them again.
    """
    texts = list(queries.values())
    if isinstance(encoder, WordEncoder) and id_lists is not None:
        # An empty query encodes to one UNK: only such queries are tokenised again, to leave them out.
        lone = {i for i, ids in enumerate(id_lists) if list(ids) == [UNK_ID]}
        empty = {
            i
            for i, tokens in zip(
                sorted(lone), encoder.tokenizer.tokenize_batch([texts[i] for i in sorted(lone)]), strict=True
            )
            if not tokens
        }
        unknown = [sum(token_id == UNK_ID for token_id in ids) for ids in id_lists]
        lengths = [0 if i in empty else len(ids) for i, ids in enumerate(id_lists)]
    elif isinstance(encoder, WordEncoder):
        token_lists = [tokens[: encoder.max_query_len] for tokens in encoder.tokenizer.tokenize_batch(texts)]
        unknown = [sum(token not in encoder.vocab for token in tokens) for tokens in token_lists]
        lengths = [len(tokens) for tokens in token_lists]
    else:
        unk_id = getattr(encoder, "unk_id", None)
        if unk_id is None:
            return []
        id_lists = encoder.encode_queries(texts)
        unknown = [sum(token_id == unk_id for token_id in ids) for ids in id_lists]
        lengths = [len(ids) for ids in id_lists]
    return [
        query_id
        for query_id, n_unknown, length in zip(queries, unknown, lengths, strict=True)
        if length and n_unknown > UNKNOWN_SHARE * length
    ]


def warn_unknown_queries(
    encoder: TextEncoder, queries: Mapping[str, str], where: str, id_lists: Sequence[Sequence[int]] | None = None
) -> list[str]:
    """One `DataWarning` when some queries are mostly out-of-vocabulary words (`mostly_unknown_queries`), giving
    their count and the first `NAMED_QUERIES` ids; nothing otherwise.

    Args:
        encoder: the model's text encoder; queries: query id -> text; where: what the queries are, for the message
            (``"wikiqa/test"``); id_lists: the queries' ids, when already encoded (`mostly_unknown_queries`).
    Returns:
        the ids of those queries.
    """
    flagged = mostly_unknown_queries(encoder, queries, id_lists)
    if flagged:
        named = ", ".join(repr(query_id) for query_id in flagged[:NAMED_QUERIES])
        more = f" and {len(flagged) - NAMED_QUERIES} more" if len(flagged) > NAMED_QUERIES else ""
        warn_data(
            f"{where}: {len(flagged)} of {len(queries)} queries are mostly words the model's vocabulary does not know "
            f"(more than {UNKNOWN_SHARE:.0%} of their tokens): {named}{more}. Unknown words match nothing, so these "
            "are ranked on their few known words; is the text in the language and script the model was trained on?"
        )
    return flagged


def _doc_text_lookup(collection: Collection, split: str) -> Callable[[ScoredDoc], str]:
    if collection.task != ANSWER_SELECTION:

        def adhoc_text(entry: ScoredDoc) -> str:
            doc = collection.docs.get(entry.doc_id)
            if doc is None:
                raise KeyError(
                    f"{collection.name}: the run names unknown document {entry.doc_id!r} (query {entry.query_id!r})"
                )
            return doc.text

        return adhoc_text

    # Answer-selection doc ids are unique only within a query, so texts are keyed by (query_id, doc_id).
    candidates = collection.split(split).candidates or {}
    texts = {(query_id, doc.doc_id): doc.text for query_id, docs in candidates.items() for doc in docs}

    def candidate_text(entry: ScoredDoc) -> str:
        text = texts.get((entry.query_id, entry.doc_id))
        if text is None:
            raise KeyError(
                f"{collection.name}/{split}: the run names document {entry.doc_id!r} for query {entry.query_id!r}, "
                "which is not one of its candidates"
            )
        return text

    return candidate_text
