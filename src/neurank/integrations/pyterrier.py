"""A trained neurank re-ranker as a PyTerrier transformer (`NeurankReranker`), for pipelines such as

    import pyterrier as pt
    from neurank.integrations.pyterrier import NeurankReranker

    bm25 = pt.Transformer.from_df(pt.io.read_results("bm25.run", topics=topics))
    pipeline = bm25 >> pt.apply.generic(join_texts) >> NeurankReranker("runs/wikiqa/best.pt")
    pt.Experiment([bm25, pipeline], topics, qrels, eval_metrics=["map", "nDCG@10"])

It takes a result frame (``qid, query, docno, text``, and the previous stage's ``score``), scores every row with
`BaseReranker.rerank` and returns the frame with neurank's ``score`` and a fresh 0-based ``rank`` per query (PyTerrier's
own `pt.model.add_ranks`), each query's rows best first. Needs the ``pyterrier`` extra (``pip install -e
".[pyterrier]"`` in the neurank repository; ``make test`` / ``make demo`` environments have it); PyTerrier
transformers run without Java, and nothing here starts it.

A ranker trained with the first-stage score (as a feature, or fused with it) reads it as its checkpoint records
(`neurank.inference.first_stage`): with ``first_stage="auto"`` (default) the frame's ``score`` column is used when it
agrees with the checkpoint's BM25 computed over the frame's candidates, and replaced by that computation (with a
warning) when it does not; ``first_stage="run"`` takes the ``score`` column as it is (``neurank rerank
--first-stage-from-run``). A frame without ``score`` gets the checkpoint's first stage computed over its candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurank.collections import Doc, Query, ScoredDoc
from neurank.inference import BaseReranker, load_reranker
from neurank.inference.first_stage import AUTO, MODES, RUN, FirstStageError, inspect_run

try:
    import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the environment
    import pyterrier as pt
except ImportError as error:  # pragma: no cover - exercised by a test that hides pyterrier
    raise ImportError(
        f"neurank.integrations.pyterrier needs PyTerrier ({error.name} is missing): "
        'pip install -e ".[pyterrier]" in the neurank repository'
    ) from None

REQUIRED_COLUMNS = ("qid", "query", "docno")


class MissingColumnError(pt.validate.InputValidationError):
    """The frame lacks a column the re-ranker needs; a `pt.validate.InputValidationError`, so that PyTerrier's
    pipeline checks (`pt.inspect`, `pt.Experiment(validate=...)`) read it as one."""

    def __str__(self) -> str:
        return str(self.args[0])


class NeurankReranker(pt.Transformer):
    """Re-rank a PyTerrier result frame with a trained neurank ranker.

    Args:
        model: a `best.pt` / `last.pt` written by `neurank train`, a `.onnx` written by `neurank export`
            (`neurank.load_reranker`), or an already loaded re-ranker.
        batch_size: pairs per forward pass (only with a path).
        device: where a PyTorch model runs ("auto": cuda, mps, else cpu; only with a path).
        precision: "fp32", "bf16" or "fp16" forward passes (only with a path).
        first_stage: for a ranker that reads the first-stage score: "auto" or "run" (module docstring).
        text_field: the column holding the candidates' texts.
    """

    def __init__(
        self,
        model: str | Path | BaseReranker,
        *,
        batch_size: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        first_stage: str = AUTO,
        text_field: str = "text",
    ):
        if first_stage not in MODES:
            raise ValueError(f"first_stage must be one of {', '.join(MODES)}, got {first_stage!r}")
        if isinstance(model, BaseReranker):
            options = {"batch_size": batch_size, "device": device, "precision": precision}
            given = [name for name, value in options.items() if value is not None]
            if given:
                raise TypeError(
                    f"NeurankReranker: {', '.join(given)} apply when loading a model from a path; set them on the "
                    "re-ranker you pass (neurank.load_reranker(path, ...))"
                )
            self.reranker = model
            self.source = type(model).__name__
        else:
            self.reranker = load_reranker(
                model, device=device or "auto", batch_size=batch_size or 256, precision=precision or "fp32"
            )
            self.source = str(model)
        self.first_stage = first_stage
        self.text_field = text_field

    def __repr__(self) -> str:
        return f"NeurankReranker({self.source!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """The frame's rows with neurank's ``score`` and a 0-based ``rank`` per query, each query's best first.

        Raises:
            MissingColumnError: a required column is missing (named in the message).
            ValueError: a (qid, docno) pair repeats, or a row has no text.
            FirstStageError: the ranker reads the first-stage score and the frame cannot give it (see
                `neurank.inference.first_stage`).
        """
        self._check_columns(inp)
        out = inp.copy()
        if out.empty:
            out["score"] = pd.Series(index=out.index, dtype="float64")
            return _add_ranks(out).reset_index(drop=True)

        query_ids = out["qid"].astype(str).tolist()
        doc_ids = out["docno"].astype(str).tolist()
        texts = out[self.text_field].tolist()
        self._check_rows(query_ids, doc_ids, texts)
        query_texts: dict[str, str] = {}
        for query_id, query in zip(query_ids, out["query"].tolist(), strict=True):
            query_texts.setdefault(query_id, str(query))
        text_of = {(q, d): str(t) for q, d, t in zip(query_ids, doc_ids, texts, strict=True)}

        mode = self.first_stage
        if "score" in out.columns:
            run_scores = out["score"].astype("float64").tolist()
        elif self.reranker.uses_first_stage_score:
            if mode == RUN:
                raise FirstStageError(
                    "NeurankReranker(first_stage='run') takes the first-stage score from the frame's 'score' column, "
                    "and the frame has none; keep the previous stage's score, or drop first_stage='run' to have the "
                    "checkpoint's first stage computed over the frame's candidates"
                )
            run_scores = self._computed_first_stage(query_ids, doc_ids, query_texts, text_of)
            # Computed here, so taken as they are ("run"), except where a query's scores are all one value (a query
            # with no BM25 term scores every candidate 0): "run" would refuse or warn about them, so "auto" checks
            # them against the same computation instead, which agrees.
            computed = [ScoredDoc(q, d, s) for q, d, s in zip(query_ids, doc_ids, run_scores, strict=True)]
            shape = inspect_run(computed)
            mode = AUTO if shape.all_constant or shape.constant else RUN
        else:
            run_scores = [0.0] * len(out)  # the ranker reads no first-stage score: these only order ties
        run = [ScoredDoc(q, d, s) for q, d, s in zip(query_ids, doc_ids, run_scores, strict=True)]
        # depth: every row is re-ranked (a pipeline cuts depth before this step, e.g. `bm25 % 100`).
        reranked = self.reranker.rerank(
            run, query_texts, lambda query_id, doc_id: text_of[(query_id, doc_id)], depth=len(run), first_stage=mode
        )
        scores = {(r.query_id, r.doc_id): r.score for r in reranked}
        out["score"] = np.array([scores[pair] for pair in zip(query_ids, doc_ids, strict=True)], dtype=np.float64)
        out = _add_ranks(out)
        # Queries in the order they came, each query's rows by rank (what PyTerrier's retrievers give).
        query_order = pd.factorize(out["qid"])[0]
        order = np.lexsort((out["rank"].to_numpy(), query_order))
        return out.iloc[order].reset_index(drop=True)

    def _check_columns(self, inp: pd.DataFrame) -> None:
        required = [*REQUIRED_COLUMNS, self.text_field]
        missing = [column for column in required if column not in inp.columns]
        if not missing:
            return
        hints = {
            self.text_field: "the candidates' texts: join them first, e.g. >> pt.text.get_text(...) or a pt.apply step",
            "query": "the query text: read the run with its topics, pt.io.read_results(path, topics=topics)",
        }
        why = "; ".join(f"{column!r} ({hints.get(column, 'PyTerrier result frames carry it')})" for column in missing)
        message = (
            f"NeurankReranker needs the column{'s' if len(missing) > 1 else ''} {why}; the frame has "
            f"{', '.join(map(str, inp.columns)) or 'no columns'}"
        )
        try:
            pt.validate.result_frame(inp, extra_columns=["query", self.text_field], context=self)
        except pt.validate.InputValidationError as error:
            raise MissingColumnError(message, error.modes) from None

    def _check_rows(self, query_ids: Sequence[str], doc_ids: Sequence[str], texts: Sequence[Any]) -> None:
        seen: set[tuple[str, str]] = set()
        for row, (query_id, doc_id, text) in enumerate(zip(query_ids, doc_ids, texts, strict=True)):
            if (query_id, doc_id) in seen:
                raise ValueError(f"NeurankReranker: row {row} repeats qid {query_id!r}, docno {doc_id!r}")
            seen.add((query_id, doc_id))
            if not isinstance(text, str):
                raise ValueError(
                    f"NeurankReranker: row {row} (qid {query_id!r}, docno {doc_id!r}) has no text in column "
                    f"{self.text_field!r} (found {text!r}); was every document's text joined?"
                )

    def _computed_first_stage(
        self,
        query_ids: Sequence[str],
        doc_ids: Sequence[str],
        query_texts: dict[str, str],
        text_of: dict[tuple[str, str], str],
    ) -> list[float]:
        """The checkpoint's first stage over the frame's candidates (statistics from their pool), as `rank`."""
        stage = self.reranker.first_stage
        if stage is None or not stage.computable:
            raise FirstStageError(
                f"the frame has no 'score' column, and the ranker reads the first-stage score "
                f"{self.reranker.first_stage_use()} of "
                f"{stage.describe() if stage else 'a first stage its checkpoint does not record'}, which neurank "
                "cannot compute: keep the previous stage's 'score' column and pass first_stage='run'"
            )
        candidates: dict[str, list[Doc]] = {}
        for query_id, doc_id in zip(query_ids, doc_ids, strict=True):
            candidates.setdefault(query_id, []).append(Doc(doc_id, text_of[(query_id, doc_id)]))
        run = stage.score_pool({q: Query(q, text) for q, text in query_texts.items()}, candidates)
        scores = {(r.query_id, r.doc_id): r.score for r in run}
        return [scores[pair] for pair in zip(query_ids, doc_ids, strict=True)]


def _add_ranks(frame: pd.DataFrame) -> pd.DataFrame:
    """`pt.model.add_ranks` (0-based ranks by descending score per qid, ties in frame order), without the
    deprecation warning pandas 3.1 gives for its ``drop(inplace=True)``, which is PyTerrier's to change."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword", module="pyterrier")
        return pt.model.add_ranks(frame)
