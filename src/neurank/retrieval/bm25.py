"""The BM25 first stage, through bm25s.

Documents and queries are tokenised with neurank's own `Tokenizer`, so BM25 and the neural models see the same
tokens. Results are runs (lists of `ScoredDoc`), never tensors.

Two ways to use it:
- ad-hoc collections: `BM25Retriever(tokenizer).index(docs)`, then `.search(queries, k)`; the index saves to and
  loads from a directory.
- answer selection (WikiQA): `score_candidates(queries, candidates, tokenizer)` indexes the pool of every candidate
  of the split (so IDF and average length come from that pool) and scores each query's own candidates.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import bm25s
import numpy as np

from neurank.collections.collection import ANSWER_SELECTION, Collection
from neurank.collections.errors import warn_data
from neurank.collections.records import Doc, Query, ScoredDoc
from neurank.text import Tokenizer, TokenizerConfig

INDEX_FORMAT = 1

# BM25's own tokenisation: English stop words removed and Snowball-stemmed, as in Anserini's default analyser.
# On the dev splits this beats unstemmed tokens on all four collections (README, "Baseline").
BM25_TOKENIZER = TokenizerConfig(stopwords="en", stemmer="english")


@dataclass(frozen=True)
class BM25Config:
    """BM25 parameters.

    The defaults are Anserini's (k1=0.9, b=0.4) with Lucene's IDF, the setting behind the published BM25 figures
    on BEIR that we compare against.
    """

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"


class BM25Retriever:
    """A BM25 index over a fixed document pool."""

    def __init__(self, tokenizer: Tokenizer | None = None, config: BM25Config | None = None):
        self.tokenizer = tokenizer or Tokenizer(BM25_TOKENIZER)
        self.config = config or BM25Config()
        self.doc_ids: list[str] = []
        self._bm25: bm25s.BM25 | None = None

    def index(self, docs: Iterable[Doc], show_progress: bool = False) -> BM25Retriever:
        """Index `docs`, replacing any previous index. Returns self."""
        docs = list(docs)
        if not docs:
            raise ValueError("cannot build a BM25 index over zero documents")
        self.doc_ids = [doc.doc_id for doc in docs]
        tokens = self.tokenizer.tokenize_batch([doc.text for doc in docs])
        empty = sum(1 for t in tokens if not t)
        if empty:
            warn_data(f"{empty} of {len(docs)} documents have no tokens after tokenisation; BM25 scores them 0")
        self._bm25 = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        self._bm25.index(tokens, show_progress=show_progress)
        return self

    @property
    def bm25(self) -> bm25s.BM25:
        if self._bm25 is None:
            raise RuntimeError("the BM25 index is empty: call index() or BM25Retriever.load() first")
        return self._bm25

    def scores(self, query_text: str) -> np.ndarray:
        """BM25 score of every indexed document for one query, in index order."""
        return self.bm25.get_scores(self.tokenizer.tokenize(query_text))

    def search(self, queries: Iterable[Query], k: int = 1000) -> list[ScoredDoc]:
        """Top-`k` documents per query.

        Documents that share no term with the query (score 0) are not returned, as in an inverted-index engine;
        a query with no tokens gets no results and is reported once in a warning.
        """
        queries = list(queries)
        tokens = self.tokenizer.tokenize_batch([q.text for q in queries])
        kept = [(q, t) for q, t in zip(queries, tokens, strict=True) if t]
        if len(kept) < len(queries):
            empty = [q.query_id for q, t in zip(queries, tokens, strict=True) if not t]
            warn_data(f"{len(empty)} queries have no tokens after tokenisation and get no results: {empty[:5]}")
        if not kept:
            return []
        k = min(k, len(self.doc_ids))
        indices, scores = self.bm25.retrieve(
            [t for _, t in kept], k=k, show_progress=False, n_threads=0, return_as="tuple"
        )
        run: list[ScoredDoc] = []
        for (query, _), row_indices, row_scores in zip(kept, indices, scores, strict=True):
            for index, score in zip(row_indices.tolist(), row_scores.tolist(), strict=True):
                if score > 0:
                    run.append(ScoredDoc(query.query_id, self.doc_ids[index], float(score)))
        return run

    def save(self, directory: str | Path) -> None:
        """Save the index, its document ids and the tokenizer and BM25 settings to `directory`, atomically."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.bm25.save(str(tmp / "bm25s"), show_progress=False)
            meta = {
                "format": INDEX_FORMAT,
                "config": asdict(self.config),
                "tokenizer": self.tokenizer.to_dict(),
                "doc_ids": self.doc_ids,
            }
            (tmp / "neurank.json").write_text(json.dumps(meta), encoding="utf-8")
            _replace_dir(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def saved_in(directory: str | Path) -> bool:
        """Whether `directory` holds an index written by `save`."""
        return (Path(directory) / "neurank.json").is_file()

    @classmethod
    def load(cls, directory: str | Path) -> BM25Retriever:
        """Load an index written by `save`."""
        directory = Path(directory)
        meta_path = directory / "neurank.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{directory}: not a neurank BM25 index (no neurank.json); build one with `neurank index`"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != INDEX_FORMAT:
            raise ValueError(f"{meta_path}: index format {meta.get('format')!r}, expected {INDEX_FORMAT}; rebuild it")
        retriever = cls(Tokenizer.from_dict(meta["tokenizer"]), BM25Config(**meta["config"]))
        retriever.doc_ids = list(meta["doc_ids"])
        retriever._bm25 = bm25s.BM25.load(str(directory / "bm25s"), show_progress=False, verbosity=0)
        return retriever


def _replace_dir(new: Path, target: Path) -> None:
    # os.replace cannot overwrite a non-empty directory: move the old one aside first, drop it only once the new
    # one is in place.
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def score_candidates(
    queries: Mapping[str, Query],
    candidates: Mapping[str, Sequence[Doc]],
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
) -> list[ScoredDoc]:
    """BM25 scores of each query's given candidates, with statistics from the pool of all candidates.

    Candidate texts are pooled by text, so a sentence that is a candidate for several questions counts once in the
    document frequencies. Every candidate gets a score (0 when it shares no term with the query), since the
    candidate list is the ranking being evaluated.
    """
    pool_index: dict[str, int] = {}
    for query_id in queries:
        for doc in candidates.get(query_id, ()):
            pool_index.setdefault(doc.text, len(pool_index))
    retriever = BM25Retriever(tokenizer, config).index(Doc(str(i), text) for text, i in pool_index.items())
    run: list[ScoredDoc] = []
    for query_id, query in queries.items():
        scores = retriever.scores(query.text)
        for doc in candidates.get(query_id, ()):
            run.append(ScoredDoc(query_id, doc.doc_id, float(scores[pool_index[doc.text]])))
    return run


def bm25_run(
    collection: Collection,
    split: str,
    k: int = 1000,
    tokenizer: Tokenizer | None = None,
    config: BM25Config | None = None,
    retriever: BM25Retriever | None = None,
) -> list[ScoredDoc]:
    """The BM25 run of one split: candidates scored (answer selection) or top-`k` retrieved (ad-hoc).

    Args:
        retriever: an already built or loaded index over `collection.docs` (ad-hoc only); built here if None.
    """
    part = collection.split(split)
    if collection.task == ANSWER_SELECTION:
        return score_candidates(part.queries, part.candidates or {}, tokenizer, config)
    if retriever is None:
        retriever = BM25Retriever(tokenizer, config).index(collection.docs.values())
    return retriever.search(part.queries.values(), k=k)
