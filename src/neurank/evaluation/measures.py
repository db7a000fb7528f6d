"""Metric values for a run against qrels: a thin layer over ir_measures with trec_eval semantics.

No metric is computed here. ir_measures does the work (through pytrec_eval, i.e. trec_eval's own code, for the
usual measures); this module only fixes which queries are evaluated:

- a query is evaluated when the qrels give it at least one relevant document (relevance > 0); queries judged
  only non-relevant, and run queries absent from the qrels, are left out;
- an evaluated query that the run lacks scores the measure's empty-ranking value (0 for AP, RR, P@k, nDCG@k, R@k),
  as `trec_eval -c` does, so a run cannot gain by dropping hard queries.
"""

from __future__ import annotations

from collections.abc import Iterable

import ir_measures
from ir_measures.util import QrelsConverter, RunConverter

_EXAMPLES = "AP, RR, nDCG@10, P@10, R@100, AP@1000, nDCG, P(rel=2)@5"


def parse_measures(measures: str | Iterable) -> list:
    """Parse measure names in ir_measures syntax into ir_measures Measure objects (duplicates dropped).

    Args:
        measures: one name or several, e.g. "AP", "RR", "nDCG@10", "P@10"; Measure objects pass through.

    Returns:
        The measures in the order given. Their `str()` is the canonical name used as result key (aliases such as
        "MAP" become "AP").

    Raises:
        ValueError: a name ir_measures does not know, with examples of valid ones.
    """
    names = [measures] if isinstance(measures, str) else list(measures)
    if not names:
        raise ValueError(f"no measures given; examples: {_EXAMPLES}")
    parsed = []
    for name in names:
        try:
            measure = ir_measures.parse_measure(name.strip() if isinstance(name, str) else name)
            measure.validate_params()  # parse_measure accepts unknown parameters such as nDCG(foo=1)
        except (NameError, ValueError, SyntaxError, TypeError, AssertionError) as error:
            raise ValueError(f"unknown measure {name!r} ({error}); examples: {_EXAMPLES}") from None
        if measure not in parsed:
            parsed.append(measure)
    return parsed


def _judged_with_relevant(qrels) -> dict[str, dict[str, int]]:
    # Plain ints and floats: pytrec_eval rejects numpy scalars, which model outputs and pandas columns give.
    qrels = QrelsConverter(qrels).as_dict_of_dict()
    return {
        str(query_id): {str(doc_id): int(rel) for doc_id, rel in docs.items()}
        for query_id, docs in qrels.items()
        if any(rel > 0 for rel in docs.values())
    }


def _per_query(run, qrels: dict[str, dict[str, int]], measures: list) -> dict:
    if not qrels:
        raise ValueError("the qrels have no query with a relevant document (relevance > 0); nothing to evaluate")
    run = {
        str(query_id): {str(doc_id): float(score) for doc_id, score in docs.items()}
        for query_id, docs in RunConverter(run).as_dict_of_dict().items()
        if str(query_id) in qrels
    }
    values: dict[ir_measures.Measure, dict[str, float]] = {measure: {} for measure in measures}
    for metric in ir_measures.iter_calc(measures, qrels, run):
        values[metric.measure][metric.query_id] = float(metric.value)
    for measure, per_query in values.items():
        for query_id in qrels.keys() - per_query.keys():
            per_query[query_id] = float(measure.DEFAULT)
    return values


def common_queries(run, qrels) -> tuple[set[str], set[str], set[str]]:
    """Which queries a run and qrels share: ``(run_ids, evaluated_ids, common)``, where `evaluated_ids` are the
    queries the qrels give a relevant document (the ones `evaluate` averages over) and `common` those of them the
    run ranks. An empty `common` means every value is the empty ranking's (0): the two files are about different
    queries (another collection or split), which `neurank evaluate` refuses."""
    run_ids = {str(query_id) for query_id in RunConverter(run).as_dict_of_dict()}
    evaluated = set(_judged_with_relevant(qrels))
    return run_ids, evaluated, run_ids & evaluated


def evaluate_per_query(run, qrels, measures: str | Iterable) -> dict[str, dict[str, float]]:
    """Per-query values of each measure, with the query selection described in the module docstring.

    Args:
        run: `ScoredDoc` records (or anything ir_measures accepts: a `{query_id: {doc_id: score}}` dict, a DataFrame).
        qrels: `Qrel` records (or anything ir_measures accepts).
        measures: names in ir_measures syntax, e.g. ["AP", "RR", "nDCG@10", "P@10"].

    Returns:
        `{measure: {query_id: value}}`; measure keys are ir_measures' canonical names ("nDCG@10", "AP").
    """
    measures = parse_measures(measures)
    values = _per_query(run, _judged_with_relevant(qrels), measures)
    return {str(measure): dict(sorted(values[measure].items())) for measure in measures}


def evaluate(run, qrels, measures: str | Iterable) -> dict[str, float]:
    """Aggregate each measure over the evaluated queries, as trec_eval's summary line does (mean, or sum for counts).

    Args:
        run: `ScoredDoc` records (or anything ir_measures accepts).
        qrels: `Qrel` records (or anything ir_measures accepts).
        measures: names in ir_measures syntax, e.g. ["AP", "RR", "nDCG@10", "P@10"].

    Returns:
        `{measure: value}` in the order the measures were given.
    """
    measures = parse_measures(measures)
    values = _per_query(run, _judged_with_relevant(qrels), measures)
    result = {}
    for measure in measures:
        aggregator = measure.aggregator()
        for value in values[measure].values():
            aggregator.add(value)
        result[str(measure)] = float(aggregator.result())
    return result
