"""The `neurank` command line: parses arguments and calls the library, nothing more.

Every command has `--help`; commands that produce results have `--json` for machine-readable output. Errors in the
user's input (malformed files, unknown collections, missing files) are printed as one line naming what is wrong,
with exit status 2, never as a traceback.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

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
FoldOpt = typer.Option(0, "--fold", help="Fold used as the test split (Cranfield, CISI: collections without an official split).")
FoldsOpt = typer.Option(5, "--folds", help="Number of folds for collections without an official split.")


def _print_json(payload) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=False))


def _load(name: str, data_dir: Optional[Path], fold: int, folds: int):
    from neurank.collections.registry import load_collection

    options = {"fold": fold, "folds": folds} if name in ("cranfield", "cisi") else {}
    return load_collection(name, data_dir, **options)


@app.command("collections")
def collections_cmd(data_dir: Optional[Path] = DataDir, as_json: bool = JsonFlag) -> None:
    """List the known collections and whether their files were found."""
    from neurank.collections.registry import list_collections

    entries = list_collections(data_dir)
    if as_json:
        _print_json(entries)
        return
    table = Table("collection", "found", "path", "description")
    for entry in entries:
        found = "[green]yes[/]" if entry["found"] else f"[red]no[/] (missing {', '.join(entry['missing'][:3])})"
        table.add_row(entry["name"], found, str(entry["path"]), entry["description"])
    console.print(table)


@app.command("download")
def download_cmd(name: str, data_dir: Optional[Path] = DataDir) -> None:
    """Download a collection from its publisher into the data folder (needs the internet)."""
    from neurank.collections.registry import download

    path = download(name, data_dir)
    console.print(f"{name}: files in {path}")


@app.command("index")
def index_cmd(
    collection: str,
    output: Optional[Path] = typer.Option(None, "--output", help="Index folder (default: indexes/COLLECTION)."),
    data_dir: Optional[Path] = DataDir,
    stem: bool = typer.Option(True, "--stem/--no-stem", help="Remove English stop words and Snowball-stem tokens."),
    as_json: bool = JsonFlag,
) -> None:
    """Build the BM25 index of an ad-hoc collection's documents and save it."""
    from neurank.collections import ANSWER_SELECTION
    from neurank.retrieval import BM25Retriever
    from neurank.retrieval.bm25 import BM25_TOKENIZER
    from neurank.text import Tokenizer

    coll = _load(collection, data_dir, 0, 5)
    if coll.task == ANSWER_SELECTION:
        raise typer.BadParameter(
            f"{collection} is an answer-selection collection: BM25 scores each question's own candidates, "
            f"so there is no index to build; run `neurank search {collection}` directly",
            param_hint="COLLECTION",
        )
    output = output or Path("indexes") / collection
    tokenizer = Tokenizer(BM25_TOKENIZER if stem else None)
    retriever = BM25Retriever(tokenizer).index(coll.docs.values(), show_progress=not as_json)
    retriever.save(output)
    result = {"collection": collection, "documents": len(retriever.doc_ids), "index": str(output)}
    if as_json:
        _print_json(result)
    else:
        console.print(f"indexed {result['documents']} documents of {collection} into {output}")


@app.command("search")
def search_cmd(
    collection: str,
    split: str = typer.Option("test", "--split", help="Which split's queries to run."),
    k: int = typer.Option(1000, "--k", min=1, help="Documents per query."),
    output: Path = typer.Option(..., "--output", help="TREC run file to write."),
    index: Optional[Path] = typer.Option(None, "--index", help="A saved index (default: indexes/COLLECTION if it exists)."),
    data_dir: Optional[Path] = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Run BM25 for a split's queries and write a TREC run."""
    from neurank.collections.trec import write_run
    from neurank.retrieval import BM25Retriever, bm25_run

    coll = _load(collection, data_dir, fold, folds)
    retriever = None
    index = index or (Path("indexes") / collection)
    if coll.task != "answer_selection" and (index / "neurank.json").is_file():
        retriever = BM25Retriever.load(index)
    run = bm25_run(coll, split, k=k, retriever=retriever)
    write_run(run, output, tag=f"neurank-bm25-{collection}")
    result = {
        "collection": collection,
        "split": split,
        "queries": len({r.query_id for r in run}),
        "results": len(run),
        "output": str(output),
    }
    if as_json:
        _print_json(result)
    else:
        console.print(f"wrote {result['results']} results for {result['queries']} queries to {output}")


@app.command("qrels")
def qrels_cmd(
    collection: str,
    split: str = typer.Option("test", "--split"),
    output: Path = typer.Option(..., "--output", help="TREC qrels file to write."),
    data_dir: Optional[Path] = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Write the relevance judgements of a collection's split in TREC format."""
    from neurank.collections.trec import write_qrels

    part = _load(collection, data_dir, fold, folds).split(split)
    write_qrels(part.qrels, output)
    result = {"collection": collection, "split": split, "qrels": len(part.qrels), "output": str(output)}
    if as_json:
        _print_json(result)
    else:
        console.print(f"wrote {len(part.qrels)} judgements to {output}")


@app.command("evaluate")
def evaluate_cmd(
    run: Path = typer.Argument(..., help="TREC run to evaluate."),
    qrels: Path = typer.Argument(..., help="TREC qrels."),
    measures: list[str] = typer.Option(
        ["AP", "RR", "nDCG@10"], "--measures", "-m", help="Measures in ir_measures syntax: --measures AP RR nDCG@10."
    ),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A second run to compare against, with significance tests."),
    as_json: bool = JsonFlag,
) -> None:
    """Evaluate a run (optionally against a baseline run, with paired significance tests)."""
    from neurank.collections.trec import read_qrels, read_run
    from neurank.evaluation import compare, evaluate, format_comparison

    judgements = read_qrels(qrels)
    ours = read_run(run)
    if baseline is None:
        result = evaluate(ours, judgements, measures)
        if as_json:
            _print_json(result)
            return
        table = Table("measure", "value")
        for name, value in result.items():
            table.add_row(name, f"{value:.4f}")
        console.print(table)
        return
    comparisons = compare(read_run(baseline), ours, judgements, measures)
    if as_json:
        payload = {name: c.mean_b for name, c in comparisons.items()}
        payload["baseline"] = {name: c.mean_a for name, c in comparisons.items()}
        payload["comparison"] = {name: asdict(c) for name, c in comparisons.items()}
        _print_json(payload)
        return
    typer.echo(format_comparison(comparisons, name_a=f"{baseline.name} (baseline)", name_b=run.name))


@app.command("baseline")
def baseline_cmd(
    data_dir: Optional[Path] = DataDir,
    folds: int = FoldsOpt,
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the Markdown table to this file."),
    as_json: bool = JsonFlag,
) -> None:
    """BM25 on every collection's test split, next to published figures (the README's baseline table)."""
    from neurank.baseline import baseline_markdown, bm25_baseline
    from neurank.collections.textio import atomic_write

    rows = bm25_baseline(data_dir, folds=folds)
    markdown = baseline_markdown(rows)
    if output is not None:
        with atomic_write(output) as handle:
            handle.write(markdown)
    if as_json:
        _print_json([vars(row) for row in rows])
    else:
        typer.echo(markdown)


def _expand_multi_value_options(argv: list[str], options: tuple[str, ...] = ("--measures", "-m")) -> list[str]:
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


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the `neurank` script."""
    from neurank.collections.registry import UnknownCollectionError

    args = _expand_multi_value_options(list(sys.argv[1:] if argv is None else argv))
    warnings.simplefilter("default", DataWarning)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        app(args=args, prog_name="neurank")
    except (FormatError, FileNotFoundError, UnknownCollectionError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        err_console.print(f"error: {message}", highlight=False, markup=False, style="bold red")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
