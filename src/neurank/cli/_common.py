"""What every command shares: the Typer app, the common options, the consoles, JSON output, and `main`, which turns
the user's mistakes into one line and exit status 2, and any other exception (a bug in neurank) into one line asking
to report it and exit status 1; `neurank --debug ...` (or NEURANK_DEBUG=1) prints the traceback as well."""

from __future__ import annotations

import errno
import json
import os
import sys
import traceback
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


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Print the traceback of an error as well as its one line (also NEURANK_DEBUG=1); for reporting bugs.",
    ),
) -> None:
    """neurank: BM25 candidates, neural re-ranking, and IR evaluation you can reproduce."""
    if debug and isinstance(ctx.obj, dict):
        ctx.obj["debug"] = True  # read by `main` when a command fails


err_console = Console(stderr=True)

DataDir = typer.Option(None, "--data-dir", help="Folder holding the collections (default: $NEURANK_DATA, else ./data).")
JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
FoldOpt = typer.Option(
    0, "--fold", min=0, help="Fold used as the test split (Cranfield, CISI: collections without an official split)."
)
FoldsOpt = typer.Option(5, "--folds", min=2, help="Number of folds for collections without an official split.")
OverwriteOpt = typer.Option(
    False,
    "--overwrite",
    help="Replace an existing output file that neurank did not write (one it wrote is replaced anyway); the old file "
    "stays until the new one is complete.",
)
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


# OSErrors that come from the user's files and environment, not from a bug: one line naming the path, exit 2.
USER_OS_ERRORS = (PermissionError, IsADirectoryError, NotADirectoryError, FileNotFoundError, FileExistsError)
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP})


def user_message(error: BaseException) -> str | None:
    """The one line `main` prints for an error in the user's input or environment, or None for any other error
    (a bug)."""
    from neurank.collections.registry import UnknownCollectionError
    from neurank.config import ConfigError
    from neurank.inference.checkpoint import CheckpointError
    from neurank.models import UnknownModelError
    from neurank.runtime.distributed import DistributedError

    if isinstance(error, OSError) and (isinstance(error, USER_OS_ERRORS) or error.errno in USER_ERRNOS):
        if error.filename is None:  # raised by neurank with its own message
            return str(error)
        path = Path(os.fsdecode(error.filename))
        if path.name.startswith(".") and not os.path.lexists(path):
            # the temporary file or folder a write starts with (`atomic_write`, `atomic_dir`): the folder is the news
            return f"{path.parent}: cannot write into this folder ({error.strerror or error})"
        target = f" -> {error.filename2}" if error.filename2 is not None else ""
        return f"{error.filename}{target}: {error.strerror or error}"
    if isinstance(error, UnicodeDecodeError):  # a reader that did not name its file; --debug shows which
        return (
            f"a file is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); save it as "
            "UTF-8, or rerun with --debug to see which file was being read"
        )
    user_errors = (
        FormatError,
        UnknownCollectionError,
        UnknownModelError,
        ConfigError,
        CheckpointError,
        DistributedError,
        KeyError,
        ValueError,
        ImportError,
    )
    if isinstance(error, user_errors):
        return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return None


def debug_requested(obj: dict) -> bool:
    return bool(obj.get("debug")) or os.environ.get("NEURANK_DEBUG", "").strip() not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `neurank` script; `main([...])` runs a command in this process (tests, notebooks).

    Errors in the user's input print one line and exit with status 2; any other exception is an internal error:
    one line asking to report it, exit status 1. With `--debug` (anywhere on the command line) or NEURANK_DEBUG=1
    the traceback is printed too.
    """
    if argv is None and sys.argv[1:2] and sys.argv[1] in RESTARTING_COMMANDS:
        from neurank.runtime.allocator import restart_with_tuned_malloc

        restart_with_tuned_malloc(
            sys.argv[1:]
        )  # training faults in fresh pages every step; see neurank.runtime.allocator

    given = list(sys.argv[1:] if argv is None else argv)
    args = expand_multi_value_options(given)
    if "--debug" in args:  # a global option: accepted after the command too, as users type it
        args = ["--debug", *[arg for arg in args if arg != "--debug"]]
    warnings.simplefilter("default", DataWarning)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    # `obj` carries the command line as given to the commands that print it (the results table says how it was
    # made), also when `main` is called in-process, where sys.argv is the caller's; `--debug` marks it.
    obj: dict = {"argv": given}
    try:
        app(args=args, prog_name="neurank", obj=obj)
    except Exception as error:  # SystemExit (usage errors, exit codes) and KeyboardInterrupt pass through
        message = user_message(error)
        debug = debug_requested(obj)
        if debug:
            traceback.print_exc()
        if message is not None:
            err_console.print(f"error: {message}", highlight=False, markup=False, style="bold red", soft_wrap=True)
            raise SystemExit(2) from None
        line = " ".join(f"{type(error).__name__}: {error}".split())
        hint = "with the traceback above" if debug else "rerun with --debug for the traceback"
        err_console.print(
            f"internal error: {line} (please report it; {hint})",
            highlight=False,
            markup=False,
            style="bold red",
            soft_wrap=True,
        )
        raise SystemExit(1) from None
