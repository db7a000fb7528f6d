"""Markdown tables of evaluation results, with markers for significant differences from a baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping

from neurank.evaluation.significance import Comparison

TTEST_MARK = "†"
RANDOMISATION_MARK = "‡"


def _significant(p: float | None, alpha: float) -> bool:
    return p is not None and not math.isnan(p) and p < alpha


def _p(p: float | None) -> str:
    return "-" if p is None else "nan" if math.isnan(p) else f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def format_table(
    results: Mapping[str, Mapping[str, float]],
    comparisons: Mapping[str, Mapping[str, Comparison]] | None = None,
    *,
    alpha: float = 0.05,
    digits: int = 4,
) -> str:
    """Render systems (rows) by measures (columns) as a markdown table.

    Args:
        results: `{system: {measure: value}}`, e.g. the outputs of `evaluate`; the columns are the first system's
            measures.
        comparisons: `{system: {measure: Comparison}}` against a common baseline (from `compare`). A value gets
            † when the paired t-test, and ‡ when the randomisation test, gives p < alpha.
        alpha: significance level.
        digits: decimals shown.

    Returns:
        The table, followed by a legend line when any comparison is given.
    """
    if not results:
        raise ValueError("no results to format")
    measures = list(next(iter(results.values())))
    comparisons = comparisons or {}
    lines = ["| system | " + " | ".join(measures) + " |", "|---|" + "---:|" * len(measures)]
    for system, values in results.items():
        cells = []
        for measure in measures:
            value = values.get(measure)
            cell = "-" if value is None else f"{value:.{digits}f}"
            comparison = comparisons.get(system, {}).get(measure)
            if comparison is not None:
                cell += TTEST_MARK if _significant(comparison.p_ttest, alpha) else ""
                cell += RANDOMISATION_MARK if _significant(comparison.p_randomisation, alpha) else ""
            cells.append(cell)
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    if comparisons:
        lines += [
            "",
            f"{TTEST_MARK} paired t-test, {RANDOMISATION_MARK} paired randomisation test: "
            f"different from the baseline at p < {alpha}.",
        ]
    return "\n".join(lines)


def format_comparison(
    comparisons: Mapping[str, Comparison], name_a: str = "A", name_b: str = "B", *, digits: int = 4
) -> str:
    """Render the output of `compare` as a markdown table: one row per measure with both means, delta and p-values.

    Args:
        comparisons: `{measure: Comparison}` from `compare`.
        name_a: column title for the baseline run.
        name_b: column title for the compared run.
        digits: decimals shown for means and deltas.

    Returns:
        The table.
    """
    lines = [
        f"| measure | {name_a} | {name_b} | delta | p (t-test) | p (randomisation) | queries |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for measure, c in comparisons.items():
        lines.append(
            f"| {measure} | {c.mean_a:.{digits}f} | {c.mean_b:.{digits}f} | {c.delta:+.{digits}f} "
            f"| {_p(c.p_ttest)} | {_p(c.p_randomisation)} | {c.n_queries} |"
        )
    return "\n".join(lines)
