"""What every command shares: the Typer app, the common options, the consoles, JSON output, and `main`, which turns
the user's mistakes into one line and exit status 2."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console

from neurank.collections import DataWarning, FormatError

app = typer.Typer(
    help="neurank: BM25 candidates, neural re-ranking, and IR evaluation you can reproduce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DataDir = typer.Option(None, "--data-dir", help="Folder holding the collections (default: $NEURANK_DATA, else ./data).")
JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
FoldOpt = typer.Option(
    0, "--fold", help="Fold used as the test split (Cranfield, CISI: collections without an official split)."
)
FoldsOpt = typer.Option(5, "--folds", help="Number of folds for collections without an official split.")
PrecisionOpt = typer.Option("fp32", "--precision", help="fp32, bf16 (CUDA or CPU) or fp16 (CUDA, with loss scaling).")

# Commands that train or re-rank restart once under the tuned malloc settings (see neurank.runtime.allocator).
RESTARTING_COMMANDS = ("train", "experiment", "benchmark", "rerank")


def print_json(payload) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=False))


def emit(result: dict, as_json: bool, message: str) -> None:
    """Print `result` as JSON with --json, else the one-line `message`."""
    if as_json:
        print_json(result)
    else:
        console.print(message, highlight=False)


def expand_multi_value_options(argv: list[str], options: tuple[str, ...] = ("--measures", "-m")) -> list[str]:
    # Click takes one value per option; `--measures AP RR nDCG@10` is what IR users type (and what trec_eval-style
    # tools accept), so repeat the flag for every value up to the next option or an existing file (a positional
    # RUN or QRELS written after the measures). Commas also separate values.
    out: list[str] = []
    current = None
    for arg in argv:
        if arg in options:
            current = arg
            continue
        if current is not None and not arg.startswith("-") and not Path(arg).exists():
            for value in filter(None, arg.split(",")):
                out += [current, value]
            continue
        current = None
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `neurank` script; `main([...])` runs a command in this process (tests, notebooks).

    Errors in the user's input print one line and exit with status 2.
    """
    if argv is None and sys.argv[1:2] and sys.argv[1] in RESTARTING_COMMANDS:
        from neurank.runtime.allocator import restart_with_tuned_malloc

        restart_with_tuned_malloc(
            sys.argv[1:]
        )  # training faults in fresh pages every step; see neurank.runtime.allocator
    from neurank.collections.registry import UnknownCollectionError
    from neurank.config import ConfigError
    from neurank.inference.checkpoint import CheckpointError
    from neurank.models import UnknownModelError
    from neurank.runtime.distributed import DistributedError

    given = list(sys.argv[1:] if argv is None else argv)
    args = expand_multi_value_options(given)
    warnings.simplefilter("default", DataWarning)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        # `obj` carries the command line as given to the commands that print it (the results table says how it was
        # made), also when `main` is called in-process, where sys.argv is the caller's.
        app(args=args, prog_name="neurank", obj={"argv": given})
    except (
        FormatError,
        FileNotFoundError,
        FileExistsError,  # an output that would replace something neurank did not make
        UnknownCollectionError,
        UnknownModelError,
        ConfigError,
        CheckpointError,
        DistributedError,
        KeyError,
        ValueError,
        ImportError,
    ) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        err_console.print(f"error: {message}", highlight=False, markup=False, style="bold red")
        raise SystemExit(2) from None
