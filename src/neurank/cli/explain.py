"""`neurank explain` and `neurank report`: seeing inside a ranker (a pair's interaction matrix, per-query wins and
losses) and a training run as one HTML page."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from neurank.cli._common import DataDir, FoldOpt, FoldsOpt, JsonFlag, OverwriteOpt, app, console, emit, print_json
from neurank.collections import load_collection


@app.command("explain")
def explain_cmd(
    checkpoint: Path | None = typer.Argument(None, help="A best.pt / last.pt written by `neurank train`."),
    query: str | None = typer.Option(None, "--query", help="Query text (with --doc)."),
    doc: str | None = typer.Option(None, "--doc", help="Document text (with --query)."),
    first_stage_score: float | None = typer.Option(
        None,
        "--first-stage-score",
        help="Normalised first-stage score in [0, 1] for --query/--doc, for models that "
        "read one (default: BM25 over this one document, as `Reranker.rank` computes it).",
    ),
    collection: str | None = typer.Option(
        None, "--collection", help="Explain a query and a document of this collection (with --query-id, --doc-id)."
    ),
    query_id: str | None = typer.Option(None, "--query-id"),
    doc_id: str | None = typer.Option(None, "--doc-id"),
    split: str = typer.Option("test", "--split", help="The split --query-id belongs to."),
    depth: int = typer.Option(100, "--depth", min=1, help="BM25 candidates re-ranked per query (ad-hoc collections)."),
    compare: tuple[Path, Path] | None = typer.Option(
        None, "--compare", help="Two TREC runs, RUN_A RUN_B: per-query differences B - A as a sorted bar chart."
    ),
    qrels: Path | None = typer.Option(None, "--qrels", help="TREC qrels for --compare."),
    measure: str = typer.Option("AP", "--measure", help="Measure for --compare (ir_measures syntax)."),
    top: int = typer.Option(10, "--top", min=1, help="Queries listed as gained and lost most (--compare)."),
    output: Path | None = typer.Option(
        None,
        "--output",
        help="Figure to write: .png, .svg or .pdf (default: explain.png, or wins-losses.png with --compare). "
        "A figure neurank wrote (its writer field says neurank) is replaced; any other existing file needs "
        "--overwrite.",
    ),
    tokens_per_row: int | None = typer.Option(
        None, "--tokens-per-row", min=5, help="Document tokens per heatmap row before it wraps."
    ),
    device: str = typer.Option("cpu", "--device"),
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """See inside a ranker: the interaction matrix of a pair and what the model makes of it (CHECKPOINT --query
    --doc, or CHECKPOINT --collection --query-id --doc-id), or per-query wins and losses (--compare RUN_A RUN_B)."""
    from neurank.collections.textio import check_output_file
    from neurank.explain import figures

    if output is not None:
        figures.figure_format(output)  # a wrong suffix fails now, not after the work
    output = output or Path("wins-losses.png" if compare is not None else "explain.png")
    # An existing figure neurank did not write: refused now, not after the work.
    check_output_file(output, "--output", overwrite, figures.is_neurank_figure)
    if compare is not None:
        if checkpoint is not None or qrels is None:
            raise typer.BadParameter("--compare takes two runs and --qrels, and no checkpoint", param_hint="--compare")
        _explain_compare(compare, qrels, measure, top, output, as_json)
        return
    if checkpoint is None:
        raise typer.BadParameter("give a checkpoint to explain, or --compare RUN_A RUN_B", param_hint="CHECKPOINT")
    by_text, by_id = query is not None or doc is not None, collection is not None
    if (
        by_text == by_id
        or (by_text and (query is None or doc is None))
        or (by_id and (query_id is None or doc_id is None))
    ):
        raise typer.BadParameter(
            "give either --query and --doc, or --collection with --query-id and --doc-id", param_hint="--query"
        )
    from neurank.explain import checkpoint_model_name, explain_candidate, explain_pair
    from neurank.inference.reranker import Reranker

    figures.require_matplotlib()
    reranker = Reranker.from_checkpoint(checkpoint, device=device)
    name = checkpoint_model_name(checkpoint)
    if by_id:
        assert collection is not None and query_id is not None and doc_id is not None  # checked above
        coll = load_collection(collection, data_dir, fold=fold, folds=folds)
        pair = explain_candidate(reranker, coll, split, query_id, doc_id, depth=depth, model_name=name)
    else:
        assert query is not None and doc is not None  # checked above
        pair = explain_pair(reranker, query, doc, first_stage_score, model_name=name)
    figures.save_figure(figures.pair_figure(pair, tokens_per_row), output)
    if as_json:
        print_json({**pair.to_dict(), "output": str(output)})
        return
    for line in _pair_lines(pair, name):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"figure in {output}", highlight=False, markup=False, soft_wrap=True)


def _pair_lines(pair, name: str) -> list[str]:
    """What `neurank explain` prints for a pair: the score and the stages, the layers a transformer ranker's matrices
    come from, and for a model without an interaction matrix one line saying so, then what it read."""
    kind = pair.token_kind
    shape = f"{len(pair.query_tokens)} query x {len(pair.doc_tokens)} document {kind}s"
    if pair.has_interaction_matrix:
        lines = [f"{name}: score {pair.score:.4f}; {shape} ({', '.join(pair.stages)})"]
        channels = pair.labels["interactions"].get("channel", [])
        if any(channel.startswith("layer ") for channel in channels):
            lines.append(f"interaction matrices, one per layer read: {', '.join(channels)}")
    else:
        lines = [f"{name} has no interaction matrix: {pair.no_matrix_reason}"]
        lines.append(f"{name}: score {pair.score:.4f}; {shape}")
    parts = pair.score_parts
    if "cosine" in parts:
        lines.append(f"score = scale {parts['scale']:.4f} x cosine {parts['cosine']:.4f} + bias {parts['bias']:+.4f}")
        if "first-stage weight" in parts:
            lines[-1] += f" + {parts['first-stage weight']:.4f} x first-stage score {parts['first-stage score']:.4f}"
    if not pair.has_interaction_matrix:
        lines.append(f"query {kind}s: {' '.join(pair.query_tokens)}")
        lines.append(f"document {kind}s: {' '.join(pair.doc_tokens)}")
        for sequence, tokens in pair.sequences.items():
            lines.append(f"the transformer read ({sequence}): {' '.join(tokens)}")
    if pair.rank is not None:
        lines.append(
            f"rank {pair.rank} of {pair.candidates} after re-ranking (BM25 rank {pair.first_stage_rank}); "
            f"relevance {pair.relevance}"
        )
    lines += pair.notes
    return lines


def _explain_compare(runs: tuple[Path, Path], qrels: Path, measure: str, top: int, output: Path, as_json: bool) -> None:
    from neurank.collections.trec import read_qrels, read_run
    from neurank.explain import figures, per_query_deltas, summarise_deltas

    figures.require_matplotlib()
    run_a, run_b = runs
    deltas = per_query_deltas(read_run(run_a), read_run(run_b), read_qrels(qrels), measure)
    figures.save_figure(figures.wins_losses_figure(deltas, measure, run_a.name, run_b.name), output)
    summary = {
        "measure": measure,
        "run_a": str(run_a),
        "run_b": str(run_b),
        **summarise_deltas(deltas, top),
        "output": str(output),
    }
    if as_json:
        print_json(summary)
        return
    typer.echo(
        f"{measure} per query, {run_b.name} - {run_a.name}: {summary['wins']} wins, {summary['losses']} losses, "
        f"{summary['ties']} ties over {summary['queries']} queries "
        f"(means {summary['mean_a']:.4f} -> {summary['mean_b']:.4f})"
    )
    for title, rows in (("gained most", summary["gained"]), ("lost most", summary["lost"])):
        table = Table("query", run_a.name, run_b.name, "difference", title=title)
        for row in rows:
            table.add_row(row["query_id"], f"{row['a']:.4f}", f"{row['b']:.4f}", f"{row['delta']:+.4f}")
        console.print(table)
    typer.echo(f"figure in {output}")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A folder written by `neurank train` (best.pt, last.pt, metrics.jsonl)."),
    output: Path | None = typer.Option(
        None,
        "--output",
        help="HTML file to write (default: RUN_DIR/report.html); a report neurank wrote is replaced, any other file "
        "needs --overwrite.",
    ),
    split: str | None = typer.Option(
        None, "--split", help="Split to evaluate and explain (default: the run's dev split)."
    ),
    explain: int = typer.Option(3, "--explain", min=0, help="Queries that get an explain figure."),
    checkpoint: str = typer.Option("best.pt", "--checkpoint", help="Checkpoint file inside RUN_DIR."),
    figures_dir: Path | None = typer.Option(
        None, "--figures-dir", help="Also save every figure of the page here as PNG."
    ),
    device: str = typer.Option("cpu", "--device"),
    data_dir: Path | None = DataDir,
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Turn a training run into one self-contained HTML page: config, curves, results against BM25, explain figures."""
    from neurank.collections.textio import check_output_file
    from neurank.workflows.report import is_report, write_report

    output = output or run_dir / "report.html"
    check_output_file(output, "--output", overwrite, is_report)  # before the evaluation and the figures
    path = write_report(
        run_dir,
        output,
        data_dir=data_dir,
        split=split,
        explain=explain,
        device=device,
        checkpoint=checkpoint,
        figures_dir=figures_dir,
    )
    emit({"run_dir": str(run_dir), "output": str(path)}, as_json, f"report of {run_dir} written to {path}")
