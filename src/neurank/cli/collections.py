"""`neurank collections`, `download`, `index`, `search`, `qrels`: a collection's files, its BM25 index, its first-stage
runs and its judgements."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from neurank.cli._common import DataDir, FoldOpt, FoldsOpt, JsonFlag, app, console, emit, print_json
from neurank.collections import load_collection


@app.command("collections")
def collections_cmd(data_dir: Path | None = DataDir, as_json: bool = JsonFlag) -> None:
    """List the known collections and whether their files were found."""
    from neurank.collections.registry import list_collections

    entries = list_collections(data_dir)
    if as_json:
        print_json(entries)
        return
    table = Table("collection", "found", "path", "description")
    for entry in entries:
        found = "[green]yes[/]" if entry["found"] else f"[red]no[/] (missing {', '.join(entry['missing'][:3])})"
        table.add_row(entry["name"], found, str(entry["path"]), entry["description"])
    console.print(table)


@app.command("download")
def download_cmd(name: str, data_dir: Path | None = DataDir) -> None:
    """Download a collection from its publisher into the data folder (needs the internet)."""
    from neurank.collections.registry import download

    path = download(name, data_dir)
    console.print(f"{name}: files in {path}")


@app.command("index")
def index_cmd(
    collection: str,
    output: Path | None = typer.Option(None, "--output", help="Index folder (default: indexes/COLLECTION)."),
    data_dir: Path | None = DataDir,
    stem: bool = typer.Option(True, "--stem/--no-stem", help="Remove English stop words and Snowball-stem tokens."),
    as_json: bool = JsonFlag,
) -> None:
    """Build the BM25 index of an ad-hoc collection's documents and save it."""
    from neurank.collections import ANSWER_SELECTION
    from neurank.retrieval import BM25Retriever
    from neurank.retrieval.bm25 import BM25_TOKENIZER
    from neurank.text import Tokenizer

    coll = load_collection(collection, data_dir)
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
    emit(result, as_json, f"indexed {result['documents']} documents of {collection} into {output}")


@app.command("search")
def search_cmd(
    collection: str,
    split: str = typer.Option("test", "--split", help="Which split's queries to run."),
    k: int = typer.Option(1000, "--k", min=1, help="Documents per query."),
    output: Path = typer.Option(..., "--output", help="TREC run file to write."),
    index: Path | None = typer.Option(
        None, "--index", help="A saved index (default: indexes/COLLECTION if it exists)."
    ),
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Run BM25 for a split's queries and write a TREC run."""
    from neurank.collections import ANSWER_SELECTION
    from neurank.collections.trec import write_run
    from neurank.retrieval import BM25Retriever, bm25_run

    coll = load_collection(collection, data_dir, fold=fold, folds=folds)
    retriever = None
    index = index or (Path("indexes") / collection)
    if coll.task != ANSWER_SELECTION and BM25Retriever.saved_in(index):
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
    emit(result, as_json, f"wrote {result['results']} results for {result['queries']} queries to {output}")


@app.command("qrels")
def qrels_cmd(
    collection: str,
    split: str = typer.Option("test", "--split"),
    output: Path = typer.Option(..., "--output", help="TREC qrels file to write."),
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Write the relevance judgements of a collection's split in TREC format."""
    from neurank.collections.trec import write_qrels

    part = load_collection(collection, data_dir, fold=fold, folds=folds).split(split)
    write_qrels(part.qrels, output)
    result = {"collection": collection, "split": split, "qrels": len(part.qrels), "output": str(output)}
    emit(result, as_json, f"wrote {len(part.qrels)} judgements to {output}")
