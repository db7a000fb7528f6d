"""`neurank benchmark`: every model on every benchmark collection, written as the results table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from neurank.cli._common import DataDir, OverwriteOpt, app, console


@app.command("benchmark")
def benchmark_cmd(
    ctx: typer.Context,
    config: Path = typer.Argument(
        Path("benchmark"),
        help="Benchmark config (collections, models, seeds): a YAML file, or a shipped config's name.",
    ),
    output: Path = typer.Option(
        Path("docs/results.md"),
        "--output",
        help="Markdown table to write (JSON beside it); tables neurank wrote are replaced, other files need "
        "--overwrite.",
    ),
    runs_dir: Path = typer.Option(
        Path("runs/benchmark"), "--runs-dir", help="Checkpoints and runs of every model and seed."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="One seed, short training, and a tiny random BERT for every transformer model (hf_model dropped): a "
        "smoke test of the whole table.",
    ),
    models: str | None = typer.Option(None, "--models", help="Comma-separated subset of the config's models."),
    collections: str | None = typer.Option(
        None, "--collections", help="Comma-separated subset of the config's collections."
    ),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        help="Comma-separated seeds for every model, instead of the config's seeds and model_seeds (e.g. one seed "
        "per process).",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain every seed, even those finished in --runs-dir."),
    pages: list[Path] | None = typer.Option(
        None,
        "--page",
        help="Also write the tables between this Markdown page's markers (the full tables in "
        "docs/models.md, the headline table in README.md); repeat for several pages.",
    ),
    note: str | None = typer.Option(
        None, "--note", help="A line for the table's header, e.g. how the machine was shared."
    ),
    data_dir: Path | None = DataDir,
    overwrite: bool = OverwriteOpt,
) -> None:
    """Train and evaluate every model on every benchmark collection; write the results table.

    Seeds already finished in --runs-dir with the same config are read back (an interrupted run resumes); split
    the work with --models over processes, then run once more over all models to gather the table."""
    from neurank.collections.textio import check_output_file
    from neurank.runtime.distributed import require_single_process
    from neurank.workflows.results_table import (
        is_results_json,
        is_results_table,
        load_plan,
        run_benchmark,
        update_results_page,
        write_results,
    )

    require_single_process("benchmark")
    # Before the plan and the hours of training: a user's file at either output would be refused only at the end.
    check_output_file(output, "--output", overwrite, is_results_table)
    check_output_file(output.with_suffix(".json"), "--output's JSON", overwrite, is_results_json)
    plan = load_plan(
        config,
        quick=quick,
        data_dir=str(data_dir) if data_dir else None,
        models=models.split(",") if models else None,
        collections=collections.split(",") if collections else None,
        seeds=[int(seed) for seed in seeds.split(",")] if seeds else None,
    )
    started = time.perf_counter()
    results = run_benchmark(plan, runs_dir, log=lambda line: console.print(line, highlight=False), reuse=not fresh)
    args = _command_args(ctx)
    command = "neurank benchmark " + " ".join(_without_note(args) if args else [str(config)])
    write_results(results, plan, output, command, time.perf_counter() - started, note)
    for page in pages or []:
        update_results_page(page, output.read_text(encoding="utf-8"))
    typer.echo(output.read_text(encoding="utf-8"))


def _command_args(ctx: typer.Context) -> list[str]:
    """What followed `neurank benchmark` on the command line, as `main` received it (sys.argv when the app runs
    without `main`)."""
    given = ctx.obj["argv"] if isinstance(ctx.obj, dict) and "argv" in ctx.obj else sys.argv[1:]
    return list(given[1:])


def _without_note(args: list[str]) -> list[str]:
    """The command line with the text of `--note` elided: the table prints the note on its own line."""
    shown, skip = [], False
    for arg in args:
        if skip:
            shown.append("'...'")
            skip = False
        elif arg == "--note":
            shown.append(arg)
            skip = True
        elif arg.startswith("--note="):
            shown.append("--note '...'")
        else:
            shown.append(arg)
    return shown
