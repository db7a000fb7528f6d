"""`neurank train` and `neurank experiment`: one training run, and several seeds compared with BM25."""

from __future__ import annotations

import statistics
from pathlib import Path

import typer

from neurank.cli._common import DataDir, JsonFlag, PrecisionOpt, app, console, print_json


@app.command("train", context_settings={"allow_extra_args": False})
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment config: a YAML file, or a shipped config's name, e.g. wikiqa."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted key=value overrides, e.g. train.lr=3e-4."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Writes best.pt, last.pt and metrics.jsonl here."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT_DIR/last.pt."),
    device: str | None = typer.Option(None, "--device", help="cuda, mps, cpu or auto (default: the config's)."),
    precision: str = PrecisionOpt,
    data_dir: Path | None = DataDir,
    as_json: bool = JsonFlag,
) -> None:
    """Train a ranker; the best dev checkpoint is OUTPUT_DIR/best.pt. Under torchrun: one DDP process per rank."""
    from neurank.config import load_config
    from neurank.runtime.distributed import init_distributed
    from neurank.training import train

    experiment = load_config(config, _with_options(overrides, data_dir, device))
    with init_distributed(experiment.train.device) as context:
        result = train(
            experiment, output_dir, resume=resume, progress=not as_json, precision=precision, distributed=context
        )
    if context.is_main:
        if as_json:
            print_json(result)
        else:
            console.print(
                f"best dev {result['metric']} {result['best_metric']:.4f} at epoch {result['best_epoch']} "
                f"({result['epochs']} epochs, {result['seconds']:.0f} s); checkpoint {output_dir / 'best.pt'}"
            )
    context.end_process()  # under torchrun: leave without the teardown where gloo can abort (see its docstring)


@app.command("experiment")
def experiment_cmd(
    config: Path = typer.Argument(..., help="Experiment config: a YAML file, or a shipped config's name."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted key=value overrides."),
    output_dir: Path = typer.Option(..., "--output-dir", help="One sub-folder per seed, plus results.md/json."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Train with seeds 1..N (unless --seed-list)."),
    seed_list: str | None = typer.Option(None, "--seed-list", help="Comma-separated seeds, e.g. 1,2,3."),
    device: str | None = typer.Option(None, "--device", help="cuda, mps, cpu or auto."),
    data_dir: Path | None = DataDir,
    as_json: bool = JsonFlag,
) -> None:
    """Train with several seeds, re-rank the test split, and compare with BM25 (mean ± std, significance)."""
    from neurank.config import load_config
    from neurank.runtime.distributed import require_single_process
    from neurank.workflows.experiment import run_experiment

    require_single_process("experiment")
    experiment = load_config(config, _with_options(overrides, data_dir, device))
    chosen = [int(s) for s in seed_list.split(",")] if seed_list else list(range(1, seeds + 1))
    result = run_experiment(experiment, output_dir, chosen, progress=not as_json)
    if as_json:
        print_json(vars(result))
        return
    typer.echo(f"{result.collection} {result.split} ({result.queries} queries), seeds {result.seeds}:\n")
    typer.echo(result.markdown())
    typer.echo(
        f"training time per seed: {statistics.mean(result.train_seconds):.0f} s "
        f"(best dev epochs {result.best_epochs}); runs and checkpoints in {output_dir}"
    )


def _with_options(overrides: list[str] | None, data_dir: Path | None, device: str | None) -> list[str]:
    """The config overrides with --data-dir and --device added as the dotted overrides they stand for."""
    extra = list(overrides or [])
    if data_dir is not None:
        extra.append(f"data.data_dir={data_dir}")
    if device is not None:
        extra.append(f"train.device={device}")
    return extra
