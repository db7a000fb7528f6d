"""`neurank collections`, `download`, `index`, `search`, `qrels`: a collection's files, its BM25 index, its first-stage
runs and its judgements.

COLLECTION is a registered name (wikiqa), a collection folder (a path: ./mydata, /data/mydata; or a folder name under
the data directory) or irds:ID; `neurank.collections.registry.resolve_collection` tells them apart."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from neurank.cli._common import DataDir, FoldOpt, FoldsOpt, JsonFlag, OverwriteOpt, app, console, emit, print_json
from neurank.collections import load_collection
from neurank.collections.registry import resolve_collection

CollectionArg = typer.Argument(
    ...,
    metavar="COLLECTION",
    help="A registered name (wikiqa), a collection folder (./mydata: BEIR layout or collection.yaml), or irds:ID.",
)


@app.command("collections")
def collections_cmd(
    place: str | None = typer.Argument(
        None,
        metavar="COLLECTION",
        help="Describe this collection (name, folder or irds:ID) instead of listing them all.",
    ),
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """List the registered collections and the collection folders in the data folder, or describe one collection."""
    from neurank.collections.registry import list_collections

    if place is not None:
        _describe(place, data_dir, fold, folds, as_json)
        return
    entries = list_collections(data_dir)
    if as_json:
        print_json(entries)
        return
    table = Table("collection", "found", "path", "description")
    for entry in entries:
        if entry["found"]:
            found = "[green]yes[/]"
        elif entry.get("error"):
            found = "[red]no[/] (see description)"
        else:
            found = f"[red]no[/] (missing {', '.join(entry['missing'][:3])})"
        table.add_row(entry["name"], found, str(entry["path"]), entry["description"])
    console.print(table)


def _describe(place: str, data_dir: Path | None, fold: int, folds: int, as_json: bool) -> None:
    where = resolve_collection(place, data_dir)
    coll = load_collection(place, data_dir, fold=fold, folds=folds)
    summary = coll.summary()
    result = {
        **summary,
        "kind": where.kind,
        "path": None if where.path is None else str(where.path),
        "measures": list(coll.measures),
        "notes": coll.notes,
    }
    if as_json:
        print_json(result)
        return
    table = Table("split", "queries", "qrels", "candidates")
    for split, counts in summary["splits"].items():
        table.add_row(split, str(counts["queries"]), str(counts["qrels"]), str(counts.get("candidates", "")))
    docs = f", {summary['docs']} documents" if summary["docs"] else ""
    console.print(f"{coll.name}: {coll.task}{docs} ({where.kind}: {result['path'] or place})", highlight=False)
    console.print(table)
    console.print(f"measures: {', '.join(coll.measures)}", highlight=False)
    for note in coll.notes:
        console.print(f"- {note}", highlight=False, markup=False)


@app.command("download")
def download_cmd(name: str, data_dir: Path | None = DataDir) -> None:
    """Download a collection from its publisher into the data folder (needs the internet)."""
    from neurank.collections.registry import download

    path = download(name, data_dir)
    console.print(f"{name}: files in {path}")


@app.command("index")
def index_cmd(
    collection: str = CollectionArg,
    output: Path | None = typer.Option(
        None, "--output", help="Index folder (default: indexes/NAME, NAME the collection's or its folder's name)."
    ),
    data_dir: Path | None = DataDir,
    stem: bool = typer.Option(True, "--stem/--no-stem", help="Remove English stop words and Snowball-stem tokens."),
    as_json: bool = JsonFlag,
) -> None:
    """Build the BM25 index of an ad-hoc collection's documents and save it, with their texts beside it.

    A folder's JSONL corpus is read as a stream (one pass, never all texts at once), so a corpus of millions of
    documents indexes in a bounded memory; an existing index at --output is replaced, any other folder refused."""
    from neurank.collections import ANSWER_SELECTION
    from neurank.collections.beir import iter_beir_corpus
    from neurank.collections.folder import plan_folder
    from neurank.retrieval import build_index, file_fingerprint
    from neurank.retrieval.bm25 import BM25_TOKENIZER
    from neurank.text import Tokenizer

    place = resolve_collection(collection, data_dir)
    answer_selection = f"{collection} is an answer-selection collection: BM25 scores each question's own candidates, "
    answer_selection += f"so there is no index to build; run `neurank search {collection}` directly"
    output = output or Path("indexes") / place.slug
    tokenizer = Tokenizer(BM25_TOKENIZER if stem else None)
    plan = plan_folder(place.path) if place.kind == "folder" and place.path is not None else None
    if plan is not None and (plan.documents.format or "jsonl") == "jsonl":
        if plan.task == ANSWER_SELECTION:
            raise typer.BadParameter(answer_selection, param_hint="COLLECTION")
        documents = plan.documents.path
        docs = iter_beir_corpus(documents)
        retriever = build_index(docs, output, tokenizer, show_progress=not as_json, source=file_fingerprint(documents))
    else:
        coll = load_collection(collection, data_dir)
        if coll.task == ANSWER_SELECTION:
            raise typer.BadParameter(answer_selection, param_hint="COLLECTION")
        retriever = build_index(coll.docs.values(), output, tokenizer, show_progress=not as_json)
    result = {"collection": collection, "documents": len(retriever.doc_ids), "index": str(output)}
    emit(result, as_json, f"indexed {result['documents']} documents of {collection} into {output}")


@app.command("search")
def search_cmd(
    collection: str = CollectionArg,
    split: str = typer.Option("test", "--split", help="Which split's queries to run."),
    k: int = typer.Option(1000, "--k", min=1, help="Documents per query."),
    output: Path = typer.Option(..., "--output", help="TREC run file to write."),
    index: Path | None = typer.Option(
        None, "--index", help="A saved index (default: indexes/NAME if it exists, as `neurank index` writes it)."
    ),
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Run BM25 for a split's queries and write a TREC run (an existing run neurank wrote is replaced; any other
    file needs --overwrite)."""
    from neurank.collections import ANSWER_SELECTION
    from neurank.collections.textio import check_output_file
    from neurank.collections.trec import is_neurank_run, write_run
    from neurank.retrieval import BM25Retriever, bm25_run

    # Before the search: a folder or a user's file there would fail only at the end.
    check_output_file(output, "--output", overwrite, is_neurank_run)
    place = resolve_collection(collection, data_dir)
    coll = load_collection(collection, data_dir, fold=fold, folds=folds)
    retriever = None
    index = index or (Path("indexes") / place.slug)
    if coll.task != ANSWER_SELECTION and BM25Retriever.saved_in(index):
        retriever = BM25Retriever.load(index)
        retriever.check_collection(coll.docs, index, collection)
    run = bm25_run(coll, split, k=k, retriever=retriever)
    write_run(run, output, tag=f"neurank-bm25-{place.slug}")
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
    collection: str = CollectionArg,
    split: str = typer.Option("test", "--split"),
    output: Path = typer.Option(..., "--output", help="TREC qrels file to write."),
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Write the relevance judgements of a collection's split in TREC format. Qrels carry no mark of who wrote them
    (they may be a user's official judgements), so an existing file is replaced only with --overwrite."""
    from neurank.collections.textio import check_output_file
    from neurank.collections.trec import write_qrels

    check_output_file(output, "--output", overwrite)
    part = load_collection(collection, data_dir, fold=fold, folds=folds).split(split)
    write_qrels(part.qrels, output)
    result = {"collection": collection, "split": split, "qrels": len(part.qrels), "output": str(output)}
    emit(result, as_json, f"wrote {len(part.qrels)} judgements to {output}")
