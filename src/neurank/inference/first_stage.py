"""What a ranker's first stage was, and what re-ranking does with a run's scores.

A ranker that reads the first-stage score (as a feature, `use_first_stage_score`, or through fusion, `fusion_alpha`)
learnt from one kind of number: BM25 with particular settings, divided by each query's largest score
(`neurank.data.examples.normalise_scores`). Fed another kind (a dense retriever's cosines, another engine's BM25, the
constant scores of a file that only lists given candidates) it fails in no visible way; it just ranks worse. So a
checkpoint records its first stage (`FirstStage`, the `first_stage` entry of checkpoint format 2), and re-ranking a
run (`BaseReranker.rerank_collection`, `neurank rerank --run`) does one of two things, said in its report:

- ``first_stage="auto"`` (the default): a ranker that reads the score gets the checkpoint's own first stage,
  recomputed over the run's candidates with the collection's statistics, as in training. The run chooses which
  documents are re-ranked (its top `depth`), never their feature. When the run's scores already are that first
  stage (they agree with the recomputation within `AGREEMENT`, after normalisation) they are used as they are;
  otherwise a `FirstStageWarning` says how they differ (constant within queries, or another kind) and that they
  were replaced. A ranker that reads no score takes the run as it is.
- ``first_stage="run"`` (``--first-stage-from-run``): the run's own scores are the feature, for a user who knows
  they are BM25-like. Refused (`FirstStageError`) when they are constant within every query, since a model then
  reads one value for every candidate; warned when constant within some queries or negative (not BM25).

`predict` takes scores from its caller, and `rank` computes the checkpoint's first stage over the given texts.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neurank.collections.collection import ANSWER_SELECTION, Collection
from neurank.collections.errors import DataWarning
from neurank.collections.records import Doc, Query, ScoredDoc
from neurank.data.examples import normalise_scores
from neurank.retrieval import BM25Config, BM25Retriever, bm25_run, score_candidates
from neurank.retrieval.bm25 import BM25_TOKENIZER
from neurank.text import Tokenizer

BM25 = "bm25"
KINDS = (BM25,)  # the first stages this neurank can compute
# How scores become the model's input: divided by the query's largest (min-max when one is negative).
NORMALISATIONS = ("max",)
AUTO, RUN = "auto", "run"
MODES = (AUTO, RUN)
# Two runs agree when every normalised score (in [0, 1]) differs by at most this: run files keep scores exactly
# (`write_run` writes repr), so only rounding in another tool's files can get near it.
AGREEMENT = 1e-4


class FirstStageError(ValueError):
    """A run cannot give this ranker its first-stage feature (the message says why and what to do)."""


class FirstStageWarning(DataWarning):
    """A run's scores were replaced by the ranker's own first stage, or are used but look odd."""


@dataclass(frozen=True)
class FirstStage:
    """A first stage as a checkpoint records it: its kind, its settings, and how its scores were normalised.

    Attributes:
        kind: ``"bm25"`` (computable here), or a kind a later neurank knows.
        settings: for BM25, ``tokenizer`` (`neurank.text.Tokenizer.to_dict`), ``k1``, ``b`` and ``method`` (the IDF
            variant of bm25s).
        normalisation: ``"max"``: each query's scores divided by its largest (min-max when one is negative).
    """

    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    normalisation: str = "max"

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's ``first_stage`` entry: ``{"kind", <settings>..., "normalisation"}``."""
        return {"kind": self.kind, **self.settings, "normalisation": self.normalisation}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], source: str = "checkpoint") -> FirstStage:
        """Rebuild from `to_dict` output.

        Raises:
            FirstStageError: not a mapping with a kind, or malformed BM25 settings (names `source`).
        """
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kind"), str):
            raise FirstStageError(f"{source}: first_stage must be a mapping with a 'kind', found {entry!r}")
        settings = {key: value for key, value in entry.items() if key not in ("kind", "normalisation")}
        stage = cls(entry["kind"], settings, str(entry.get("normalisation", "max")))
        if stage.kind == BM25:
            odd = [
                key
                for key, kind in (("k1", (int, float)), ("b", (int, float)), ("method", str), ("tokenizer", Mapping))
                if key in settings and (not isinstance(settings[key], kind) or isinstance(settings[key], bool))
            ]
            if odd:
                raise FirstStageError(
                    f"{source}: first_stage: malformed BM25 settings ({odd[0]}: {settings[odd[0]]!r})"
                )
            try:
                stage.tokenizer()
                stage.bm25_config()
            except (TypeError, ValueError) as error:
                raise FirstStageError(f"{source}: first_stage: malformed BM25 settings ({error})") from None
        return stage

    @property
    def computable(self) -> bool:
        """Whether this neurank can compute this first stage's scores."""
        return self.kind in KINDS and self.normalisation in NORMALISATIONS

    def tokenizer(self) -> Tokenizer:
        """BM25's tokenizer."""
        return Tokenizer.from_dict(dict(self.settings.get("tokenizer", {})))

    def bm25_config(self) -> BM25Config:
        """BM25's parameters."""
        return BM25Config(**{key: self.settings[key] for key in ("k1", "b", "method") if key in self.settings})

    def describe(self) -> str:
        """One phrase for messages, e.g. "BM25 (k1 0.9, b 0.4, lucene IDF; stop words en, stemmer english)"."""
        if self.kind != BM25:
            return f"{self.kind} (a first stage this neurank cannot compute)"
        config = self.bm25_config()
        tokens = self.tokenizer().config
        words = [f"stop words {tokens.stopwords}"] if tokens.stopwords else []
        words += [f"stemmer {tokens.stemmer}"] if tokens.stemmer else []
        return f"BM25 (k1 {config.k1:g}, b {config.b:g}, {config.method} IDF; {', '.join(words) or 'plain tokens'})"

    def _require_computable(self) -> None:
        if not self.computable:
            raise FirstStageError(
                f"the first stage {self.describe()} (normalisation {self.normalisation!r}) cannot be computed by "
                f"this neurank, which computes {', '.join(KINDS)}; pass a run of that kind with its scores "
                "(--first-stage-from-run, first_stage='run')"
            )

    def run(self, collection: Collection, split: str, k: int = 1000) -> list[ScoredDoc]:
        """This first stage's run of a split: every given candidate scored (answer selection), else the top `k`."""
        self._require_computable()
        return bm25_run(collection, split, k=k, tokenizer=self.tokenizer(), config=self.bm25_config())

    def score_pool(self, queries: Mapping[str, Query], candidates: Mapping[str, Sequence[Doc]]) -> list[ScoredDoc]:
        """Each query's given candidates scored, with statistics from the pool of all of them (`rank`)."""
        self._require_computable()
        return score_candidates(queries, candidates, self.tokenizer(), self.bm25_config())

    def rescore(self, collection: Collection, split: str, run: Sequence[ScoredDoc]) -> list[ScoredDoc]:
        """The run's (query, document) pairs scored by this first stage, as training scored its candidates: over a
        split's candidates (answer selection) or with the whole collection's statistics (ad hoc).

        Raises:
            KeyError: the run names a query not in the split, or a document the collection does not have.
        """
        self._require_computable()
        part = collection.split(split)
        # Entries of queries outside the split keep their score: building the examples drops them, with a warning.
        mine = [entry for entry in run if entry.query_id in part.queries]
        if collection.task == ANSWER_SELECTION:
            scored = {(r.query_id, r.doc_id): r.score for r in self.run(collection, split)}
            missing = next((e for e in mine if (e.query_id, e.doc_id) not in scored), None)
            if missing is not None:
                raise KeyError(
                    f"{collection.name}/{split}: the run names document {missing.doc_id!r} for query "
                    f"{missing.query_id!r}, which is not one of its candidates"
                )
        else:
            unknown = next((e for e in mine if e.doc_id not in collection.docs), None)
            if unknown is not None:
                raise KeyError(
                    f"{collection.name}: the run names unknown document {unknown.doc_id!r} (query {unknown.query_id!r})"
                )
            retriever = BM25Retriever(self.tokenizer(), self.bm25_config()).index(collection.docs.values())
            position = {doc_id: i for i, doc_id in enumerate(retriever.doc_ids)}
            scored = {}
            for query_id, entries in _by_query(mine).items():
                values = retriever.scores(part.queries[query_id].text)
                for entry in entries:
                    scored[(query_id, entry.doc_id)] = float(values[position[entry.doc_id]])
        return [ScoredDoc(e.query_id, e.doc_id, scored.get((e.query_id, e.doc_id), e.score)) for e in run]


def bm25_first_stage(tokenizer: Tokenizer | None = None, config: BM25Config | None = None) -> FirstStage:
    """The BM25 first stage with these settings; by default the one training uses (`neurank.retrieval.bm25_run`)."""
    config = config or BM25Config()
    settings = {
        "tokenizer": (tokenizer or Tokenizer(BM25_TOKENIZER)).to_dict(),
        "k1": config.k1,
        "b": config.b,
        "method": config.method,
    }
    return FirstStage(BM25, settings, "max")


# What every checkpoint of format 1 (neurank 0.1) was trained with: `bm25_run`'s defaults of that version, which
# are today's (Anserini's k1 0.9, b 0.4, Lucene IDF; English stop words and Snowball stems) but for the tokenizer
# fixes of issue 22 (zero-width characters dropped, CJK characters split), which format 1 predates.
FORMAT_1_FIRST_STAGE = FirstStage(
    BM25,
    {
        "tokenizer": {
            "lowercase": True,
            "strip_accents": True,
            "drop_punctuation": True,
            "stopwords": "en",
            "stemmer": "english",
            "backend": "regex",
        },
        "k1": 0.9,
        "b": 0.4,
        "method": "lucene",
    },
    "max",
)


def first_stage_from_entry(entry: Any, source: str = "checkpoint") -> FirstStage | None:
    """A checkpoint's (or ONNX metadata's) ``first_stage`` entry as a `FirstStage`; None when it records none."""
    return None if entry is None else FirstStage.from_dict(entry, source)


@dataclass
class RunScores:
    """What a run's scores look like, query by query.

    Attributes:
        queries: queries in the run.
        ranked: queries with two or more candidates (where equal scores say something).
        constant: of those, the ids of the queries whose candidates share one score other than 0.
        zero: of those, the ids of the queries whose candidates all score 0: BM25's "no term in common", plausible
            for a query or two, not for every query.
        negative: entries with a negative score (BM25 never gives one).
    """

    queries: int
    ranked: int
    constant: list[str]
    zero: list[str]
    negative: int

    @property
    def all_constant(self) -> bool:
        """Every query's candidates share one score (two queries at least: one query's may be BM25's)."""
        return self.ranked >= 2 and len(self.constant) + len(self.zero) == self.ranked

    def constant_phrase(self, subject: str = "its scores are") -> str:
        if self.all_constant:
            return f"{subject} constant within every query ({self.ranked} with several candidates)"
        shown = ", ".join(self.constant[:3]) + (", ..." if len(self.constant) > 3 else "")
        return f"{subject} constant within {len(self.constant)} of {self.ranked} queries ({shown})"


def inspect_run(run: Iterable[ScoredDoc]) -> RunScores:
    """Count what makes a run's scores useless or suspect as a first-stage feature."""
    by_query = _by_query(run)
    ranked = {query_id: [e.score for e in entries] for query_id, entries in by_query.items() if len(entries) > 1}
    same = [query_id for query_id, scores in ranked.items() if min(scores) == max(scores)]
    zero = [query_id for query_id in same if ranked[query_id][0] == 0]
    constant = [query_id for query_id in same if ranked[query_id][0] != 0]
    negative = sum(1 for entries in by_query.values() for e in entries if e.score < 0)
    return RunScores(len(by_query), len(ranked), constant, zero, negative)


def cut_depth(run: Iterable[ScoredDoc], depth: int | None) -> list[ScoredDoc]:
    """Each query's top `depth` entries by score (ties keep the run's order; None keeps all), queries in run order."""
    out: list[ScoredDoc] = []
    for entries in _by_query(run).values():
        entries.sort(key=lambda entry: -entry.score)  # stable
        out += entries if depth is None else entries[:depth]
    return out


def _by_query(run: Iterable[ScoredDoc]) -> dict[str, list[ScoredDoc]]:
    by_query: dict[str, list[ScoredDoc]] = {}
    for entry in run:
        by_query.setdefault(entry.query_id, []).append(entry)
    return by_query


def _normalised(run: Iterable[ScoredDoc]) -> dict[tuple[str, str], float]:
    out = {}
    for query_id, entries in _by_query(run).items():
        for entry, value in zip(entries, normalise_scores([e.score for e in entries]), strict=True):
            out[(query_id, entry.doc_id)] = value
    return out


def disagreements(run: Sequence[ScoredDoc], reference: Sequence[ScoredDoc]) -> list[tuple[str, str, float, float]]:
    """(query_id, doc_id, run's value, reference's value) of the worst pair of each query whose normalised scores
    differ by more than `AGREEMENT`, worst query first. `reference` scores the same pairs."""
    mine, theirs = _normalised(run), _normalised(reference)
    worst: dict[str, tuple[float, str]] = {}
    for (query_id, doc_id), value in mine.items():
        gap = abs(value - theirs[(query_id, doc_id)])
        if gap > AGREEMENT and gap > worst.get(query_id, (0.0, ""))[0]:
            worst[query_id] = (gap, doc_id)
    ordered = sorted(worst.items(), key=lambda item: -item[1][0])
    return [(q, d, mine[(q, d)], theirs[(q, d)]) for q, (_, d) in ordered]


@dataclass
class FirstStageReport:
    """What re-ranking took as the first stage, for the user.

    Attributes:
        source: ``"computed"`` (no run given: the checkpoint's first stage computed now), ``"run"`` (the run's own
            scores), ``"recomputed"`` (the checkpoint's first stage over the run's candidates, in place of the run's
            scores), or ``"unread"`` (the ranker reads no first-stage score; the run only chose the candidates).
        message: one sentence saying so.
        queries, constant_queries: queries in the run, and those whose candidates share one score (not 0).
        differing_queries: queries whose run scores differ from the recomputed first stage (None: not compared).
    """

    source: str
    message: str
    queries: int = 0
    constant_queries: int = 0
    differing_queries: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _warn(message: str) -> None:
    warnings.warn(message, FirstStageWarning, stacklevel=4)


def resolve_run(
    run: Sequence[ScoredDoc],
    rescore: Callable[[FirstStage, list[ScoredDoc]], list[ScoredDoc]],
    *,
    reads_score: str | None,
    first_stage: FirstStage | None,
    mode: str = AUTO,
    run_name: str = "the run",
) -> tuple[list[ScoredDoc], FirstStageReport]:
    """The first-stage scores a ranker reads for a given run's candidates, and what was done (module docstring).

    Args:
        run: the candidates to re-rank (already cut to the depth), with the run's scores.
        rescore: scores a run's pairs with a first stage (over a collection, or over the given texts).
        reads_score: how the ranker reads the first-stage score ("as a feature", "in fusion (alpha 0.45)", ...),
            None when it reads none.
        first_stage: the checkpoint's first stage (None: not recorded).
        mode: ``"auto"`` or ``"run"``.
        run_name: how messages name the run (its file).
    Returns:
        (run, report): the same pairs, with the scores the ranker is to read.
    Raises:
        FirstStageError: the run cannot give the ranker its feature (constant scores with mode "run"; a first stage
            this neurank cannot compute). ValueError: an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown first_stage mode {mode!r}; valid: {', '.join(MODES)}")
    run = list(run)
    stage_name = first_stage.describe() if first_stage is not None else "not recorded in the checkpoint"
    shape = inspect_run(run)
    counts = {"queries": shape.queries, "constant_queries": len(shape.constant)}
    if not reads_score:
        message = f"{run_name}: the ranker reads no first-stage score; the run chose the candidates only"
        return run, FirstStageReport("unread", message, **counts)

    if mode == RUN:
        if shape.all_constant:
            raise FirstStageError(
                f"{run_name}: {shape.constant_phrase()}, so the ranker, which reads the first-stage score "
                f"{reads_score}, would see one value for all of a query's candidates; it was trained with "
                f"{stage_name}. Drop --first-stage-from-run (first_stage='auto') to have neurank compute that score "
                "over the run's candidates"
            )
        if shape.constant:
            _warn(f"{run_name}: {shape.constant_phrase()}; the ranker reads one value for all of their candidates")
        if shape.negative:
            _warn(
                f"{run_name}: {shape.negative} negative scores, which BM25 never gives (the ranker was trained with "
                f"{stage_name}); each query's scores are min-max normalised"
            )
        message = (
            f"{run_name}: its own scores are the first-stage score the ranker reads {reads_score} "
            "(--first-stage-from-run), each query's divided by its largest as in training"
        )
        return run, FirstStageReport("run", message, **counts)

    if first_stage is None or not first_stage.computable:
        raise FirstStageError(
            f"{run_name}: the ranker reads the first-stage score {reads_score}, and its first stage is "
            f"{stage_name}, which this neurank cannot compute over the run's candidates; if the run's scores are of "
            "that kind, pass --first-stage-from-run (first_stage='run')"
        )
    recomputed = rescore(first_stage, run)
    differ = disagreements(run, recomputed)
    if not differ:
        message = (
            f"{run_name}: its scores are the ranker's first stage, {first_stage.describe()} (checked against a "
            f"recomputation for all {shape.queries} queries); used as they are"
        )
        return run, FirstStageReport("run", message, differing_queries=0, **counts)
    if shape.all_constant:
        why = shape.constant_phrase("they are")
    else:
        query_id, doc_id, given, expected = differ[0]
        why = (
            f"they differ from it in {len(differ)} of {shape.queries} queries, e.g. query {query_id}, document "
            f"{doc_id}: {given:.3f} in the run, {expected:.3f} by {first_stage.kind.upper()} (each divided by the "
            "query's largest)"
        )
        if shape.constant:
            why = f"{shape.constant_phrase('they are')}; {why}"
    _warn(
        f"{run_name}: its scores are not the first stage the ranker was trained with, {first_stage.describe()}: "
        f"{why}. The ranker reads that score {reads_score}, so neurank recomputed it over the run's candidates; "
        "the run chose the candidates only"
        # Constant scores are refused with --first-stage-from-run, so it is offered only where it would be taken.
        + (
            ""
            if shape.all_constant
            else ". Pass --first-stage-from-run (first_stage='run') to use the run's scores instead"
        )
    )
    message = (
        f"{run_name}: first-stage score recomputed over its candidates, {first_stage.describe()}, as in training "
        f"(the run's own scores differ in {len(differ)} of {shape.queries} queries)"
    )
    return recomputed, FirstStageReport("recomputed", message, differing_queries=len(differ), **counts)


def resolve_first_stage(
    collection: Collection,
    split: str,
    run: Sequence[ScoredDoc] | None,
    *,
    reads_score: str | None,
    first_stage: FirstStage | None,
    depth: int | None,
    mode: str = AUTO,
    run_name: str = "the run",
) -> tuple[list[ScoredDoc], FirstStageReport]:
    """The candidates and first-stage scores a ranker re-ranks one split of a collection with (`resolve_run`).

    Args:
        run: the given first-stage run; None computes the checkpoint's first stage now (its top `depth`).
        depth: each query's top `depth` of the run are re-ranked (None: all), chosen by the run's own scores.
        reads_score, first_stage, mode, run_name: as for `resolve_run`.
    Raises:
        FirstStageError: as `resolve_run`; also without a run, for a ranker that reads the score of a first stage
            this neurank cannot compute. KeyError: the run names a query or document the split does not have.
            ValueError: the run ranks no query of the split (another collection's or split's run): nothing of it
            could be re-ranked.
    """
    if run is not None:
        _check_common_queries(collection, split, run, run_name)
    if run is None:
        if mode == RUN:
            raise ValueError(
                "the run's own scores were asked for (--first-stage-from-run), but no run was given (--run)"
            )
        if first_stage is None and not reads_score:
            first_stage = bm25_first_stage()  # only the candidates depend on it
        if first_stage is None or not first_stage.computable:
            raise FirstStageError(
                f"the ranker reads the first-stage score {reads_score}, and its first stage is "
                f"{first_stage.describe() if first_stage else 'not recorded in the checkpoint'}, which this neurank "
                "cannot compute: pass a run of that first stage (--run RUN --first-stage-from-run, first_stage='run')"
            )
        computed = cut_depth(first_stage.run(collection, split, k=depth or 1000), depth)
        use = f"read {reads_score}" if reads_score else "giving the candidates only (the ranker reads no score)"
        return computed, FirstStageReport("computed", f"first stage: {first_stage.describe()} computed now, {use}")
    if not reads_score and depth is not None and any(len(e) > depth for e in _by_query(run).values()):
        shape = inspect_run(run)
        if shape.all_constant:
            _warn(f"{run_name}: {shape.constant_phrase()}, so each query's top {depth} are its first in the file")
    return resolve_run(
        cut_depth(run, depth),
        lambda stage, entries: stage.rescore(collection, split, entries),
        reads_score=reads_score,
        first_stage=first_stage,
        mode=mode,
        run_name=run_name,
    )


def _check_common_queries(collection: Collection, split: str, run: Sequence[ScoredDoc], run_name: str) -> None:
    """Refuse a run that ranks no query of the split: re-ranking it would write an empty run (a run of another
    collection or split, or query ids written differently). A run sharing some queries is re-ranked for those, and
    the others are reported when the examples are built."""
    split_ids = list(collection.split(split).queries)
    run_ids = {entry.query_id for entry in run}
    if run_ids.intersection(split_ids):
        return
    raise ValueError(
        f"{run_name} and {collection.name}/{split}: no query in common (the run ranks {_some(sorted(run_ids))}; "
        f"the split has {_some(split_ids)}), so nothing would be re-ranked; is the run for this collection and split?"
    )


def _some(ids: Sequence[str]) -> str:
    if not ids:
        return "no query"
    return f"{len(ids)} {'query' if len(ids) == 1 else 'queries'}, e.g. {ids[0]!r}"
