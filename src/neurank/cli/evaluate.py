"""`neurank evaluate` and `neurank baseline`: measuring runs against judgements, and BM25 on every collection."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from neurank.cli._common import DataDir, FoldsOpt, JsonFlag, OverwriteOpt, app, console, print_json


@app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="TREC run to evaluate."),
    qrels: Path = typer.Argument(
        ..., help="Qrels: TREC (query_id iteration doc_id relevance) or BEIR TSV (with its query-id header)."
    ),
    measures: list[str] = typer.Option(
        ["AP", "RR", "nDCG@10"], "--measures", "-m", help="Measures in ir_measures syntax: --measures AP RR nDCG@10."
    ),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="A second run to compare against, with significance tests."
    ),
    as_json: bool = JsonFlag,
) -> None:
    """Evaluate a TREC run against TREC or BEIR qrels (optionally against a baseline run, with paired significance
    tests)."""
    from neurank.collections.formats import read_qrels_any
    from neurank.collections.trec import read_run
    from neurank.evaluation import compare, evaluate, format_comparison

    judgements = read_qrels_any(qrels)
    ours = read_run(run)
    theirs = None if baseline is None else read_run(baseline)  # every file read before any check of their queries
    _check_common_queries(ours, run, judgements, qrels)
    if theirs is None or baseline is None:
        result = evaluate(ours, judgements, measures)
        if as_json:
            print_json(result)
            return
        table = Table("measure", "value")
        for name, value in result.items():
            table.add_row(name, f"{value:.4f}")
        console.print(table)
        return
    _check_common_queries(theirs, baseline, judgements, qrels)
    comparisons = compare(theirs, ours, judgements, measures)
    if as_json:
        payload: dict[str, Any] = {name: c.mean_b for name, c in comparisons.items()}
        payload["baseline"] = {name: c.mean_a for name, c in comparisons.items()}
        payload["comparison"] = {name: asdict(c) for name, c in comparisons.items()}
        print_json(payload)
        return
    typer.echo(format_comparison(comparisons, name_a=f"{baseline.name} (baseline)", name_b=run.name))


def _check_common_queries(run: list, run_path: Path, qrels: list, qrels_path: Path) -> None:
    """Refuse a run that ranks none of the queries the qrels evaluate: every value would be 0 (a run for another
    collection or split, or query ids written differently), and a comparison with it meaningless."""
    from neurank.evaluation import common_queries

    run_ids, evaluated, common = common_queries(run, qrels)
    if evaluated and not common:
        raise ValueError(
            f"{run_path} and {qrels_path}: no query in common (the run ranks {_queries(run_ids)}; the qrels give "
            f"{_queries(evaluated)} a relevant document), "
            "so every value would be 0; are they for the same collection and split?"
        )


def _queries(ids: set[str]) -> str:
    return f"{len(ids)} {'query' if len(ids) == 1 else 'queries'}, e.g. {min(ids)!r}"


@app.command("baseline")
def baseline_cmd(
    data_dir: Path | None = DataDir,
    folds: int = FoldsOpt,
    output: Path | None = typer.Option(
        None,
        "--output",
        help="Also write the Markdown table to this file (a table neurank wrote is replaced; any other file needs "
        "--overwrite).",
    ),
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """BM25 on every collection's test split, next to published figures (the README's baseline table)."""
    from neurank.collections.textio import atomic_write, check_output_file, marked_by
    from neurank.workflows.baseline import BASELINE_MARK, baseline_markdown, bm25_baseline

    if output is not None:
        # Before BM25 on every collection: a folder or a user's file there would fail only at the end.
        check_output_file(output, "--output", overwrite, marked_by(BASELINE_MARK, lines=1))
    rows = bm25_baseline(data_dir, folds=folds)
    markdown = baseline_markdown(rows)
    if output is not None:
        with atomic_write(output) as handle:
            handle.write(BASELINE_MARK + "\n" + markdown)
    if as_json:
        print_json([vars(row) for row in rows])
    else:
        typer.echo(markdown)
