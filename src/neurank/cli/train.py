"""`neurank train` and `neurank experiment`: one training run, and several seeds compared with BM25."""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import typer

from neurank.cli._common import DataDir, JsonFlag, PrecisionOpt, app, console, print_json


@app.command("train", context_settings={"allow_extra_args": False})
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment config: a YAML file, or a shipped config's name, e.g. wikiqa."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted key=value overrides, e.g. train.lr=3e-4."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Writes best.pt, last.pt and metrics.jsonl here."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUTPUT_DIR/last.pt, with the config that wrote it."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Train afresh into an OUTPUT_DIR holding an earlier run; its files are replaced as the new ones are "
        "written (without it, or --resume, such a folder is refused).",
    ),
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
            experiment,
            output_dir,
            resume=resume,
            overwrite=overwrite,
            progress=not as_json,
            precision=precision,
            distributed=context,
        )
    if context.is_main:
        if as_json:
            print_json(result)
        else:
            console.print(training_summary(result, output_dir / "best.pt"), highlight=False, soft_wrap=True)
    context.end_process()  # under torchrun: leave without the teardown where gloo can abort (see its docstring)


def training_summary(result: dict, checkpoint: Path) -> str:
    """What `train` prints: the best epoch, and the dev value of what the checkpoint ranks with, fused and not."""
    dev, metric = result["dev"], result["metric"]
    if dev["ranks_with"] is None:
        return f"no epoch was trained ({result['epochs']} epochs), so no checkpoint was written"
    lines = [
        f"best dev {metric} {dev['unfused']:.4f} at epoch {result['best_epoch']} ({result['epochs']} epochs, "
        f"{result['seconds']:.0f} s)"
    ]
    if dev["ranks_with"] == "fused":
        lines.append(
            f"{checkpoint} ranks with the model fused with {result['first_stage']['kind'].upper()} "
            f"(alpha {dev['alpha']:g}): "
            f"dev {metric} {dev['fused']:.4f} fused, {dev['unfused']:.4f} unfused"
        )
    else:
        lines.append(f"{checkpoint} ranks with the model's scores alone (no fusion): dev {metric} {dev['unfused']:.4f}")
    return "\n".join(lines)


@app.command("experiment")
def experiment_cmd(
    config: Path = typer.Argument(..., help="Experiment config: a YAML file, or a shipped config's name."),
    overrides: list[str] | None = typer.Argument(None, help="Dotted key=value overrides."),
    output_dir: Path = typer.Option(..., "--output-dir", help="One sub-folder per seed, plus results.md/json."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Train with seeds 1..N (unless --seed-list)."),
    seed_list: str | None = typer.Option(None, "--seed-list", help="Comma-separated seeds, e.g. 1,2,3."),
    models: str | None = typer.Option(
        None,
        "--models",
        help="Comma-separated candidate models, e.g. compare_aggregate,mvlstm: each trains with every seed (options "
        "from the config's models: section), the best mean on dev is chosen (a tie goes to the model listed "
        "first), and only it is scored on test.",
    ),
    dev_only: bool = typer.Option(
        False, "--dev-only", help="Train and choose on dev, and stop there: the test split is not scored."
    ),
    device: str | None = typer.Option(None, "--device", help="cuda, mps, cpu or auto."),
    data_dir: Path | None = DataDir,
    as_json: bool = JsonFlag,
) -> None:
    """Train with several seeds, re-rank the test split, and compare with BM25 (mean ± std, significance).

    With --models, choose among models on dev first: OUTPUT_DIR/MODEL/seed-N per candidate and seed, the dev table
    in results.md/json, then the chosen model's seeds on test and OUTPUT_DIR/best.test.run, the test run of its
    best-dev seed."""
    from neurank.config import load_config, load_configs
    from neurank.runtime.distributed import require_single_process
    from neurank.workflows.experiment import run_experiment, select_and_test

    require_single_process("experiment")
    options = _with_options(overrides, data_dir, device)
    chosen = _parse_seed_list(seed_list) if seed_list is not None else list(range(1, seeds + 1))
    if models is None and not dev_only:
        result = run_experiment(load_config(config, options), output_dir, chosen, progress=not as_json)
        if as_json:
            print_json(vars(result))
            return
        typer.echo(f"{result.collection} {result.split} ({result.queries} queries), seeds {result.seeds}:\n")
        typer.echo(result.markdown())
        typer.echo(
            f"training time per seed: {statistics.mean(result.train_seconds):.0f} s "
            f"(best dev epochs {result.best_epochs}); runs and checkpoints in {output_dir}"
        )
        return
    if models is None:
        single = load_config(config, options)
        configs = {single.model: single}
    else:
        configs = load_configs(config, options, [name.strip() for name in models.split(",") if name.strip()])
    log = None if as_json else (lambda line: console.print(line, highlight=False, soft_wrap=True))
    selection = select_and_test(configs, output_dir, chosen, progress=not as_json, dev_only=dev_only, log=log)
    if as_json:
        print_json(dataclasses.asdict(selection))
        return
    typer.echo(selection.markdown())
    typer.echo(f"chosen on dev: {selection.chosen}; results in {output_dir / 'results.md'}")
    if selection.best_run is not None:
        typer.echo(f"test run of its best-dev seed ({selection.test_split}): {selection.best_run}")


def _parse_seed_list(text: str) -> list[int]:
    """The seeds of --seed-list: comma-separated integers, each once (one folder per seed)."""
    seeds: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            seed = int(item)
        except ValueError:
            raise ValueError(
                f"--seed-list {text!r}: expected comma-separated integer seeds, e.g. 1,2,3; {item!r} is not an integer"
            ) from None
        if seed in seeds:
            raise ValueError(f"--seed-list {text!r}: seed {seed} is given twice; each seed trains once")
        seeds.append(seed)
    if not seeds:
        raise ValueError(f"--seed-list {text!r}: expected comma-separated integer seeds, e.g. 1,2,3; found none")
    return seeds


def _with_options(overrides: list[str] | None, data_dir: Path | None, device: str | None) -> list[str]:
    """The config overrides with --data-dir and --device added as the dotted overrides they stand for."""
    extra = list(overrides or [])
    if data_dir is not None:
        extra.append(f"data.data_dir={data_dir}")
    if device is not None:
        extra.append(f"train.device={device}")
    return extra
