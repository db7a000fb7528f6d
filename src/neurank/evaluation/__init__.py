"""Evaluation: trec_eval-compatible metrics through ir_measures, paired significance tests, and result tables."""

from neurank.evaluation.measures import common_queries, evaluate, evaluate_per_query, parse_measures
from neurank.evaluation.significance import Comparison, compare, compare_values
from neurank.evaluation.tables import format_comparison, format_table

__all__ = [
    "Comparison",
    "common_queries",
    "compare",
    "compare_values",
    "evaluate",
    "evaluate_per_query",
    "format_comparison",
    "format_table",
    "parse_measures",
]
