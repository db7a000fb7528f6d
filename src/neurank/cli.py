"""The `neurank` command line: parses arguments and calls the library, nothing more.

Every command has `--help`; commands that produce results have `--json` for machine-readable output. Errors in the
user's input (malformed files, unknown collections, missing files) are printed as one line naming what is wrong,
with exit status 2, never as a traceback.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
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
PrecisionOpt = typer.Option("fp32", "--precision", help="fp32, bf16 (CUDA or CPU) or fp16 (CUDA, with loss scaling).")


def _print_json(payload) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=False))


def _emit(result: dict, as_json: bool, message: str) -> None:
    """Print `result` as JSON with --json, else the one-line `message`."""
    if as_json:
        _print_json(result)
    else:
        console.print(message, highlight=False)


def _load(name: str, data_dir: Optional[Path], fold: int, folds: int):
    from neurank.collections.registry import load_collection

    return load_collection(name, data_dir, fold=fold, folds=folds)


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
    _emit(result, as_json, f"indexed {result['documents']} documents of {collection} into {output}")


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
    _emit(result, as_json, f"wrote {result['results']} results for {result['queries']} queries to {output}")


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
    _emit(result, as_json, f"wrote {len(part.qrels)} judgements to {output}")


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
    from neurank.workflows.baseline import baseline_markdown, bm25_baseline
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


@app.command("train", context_settings={"allow_extra_args": False})
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment config (YAML), e.g. configs/wikiqa.yaml."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted key=value overrides, e.g. train.lr=3e-4."),
    output_dir: Path = typer.Option(..., "--output-dir", help="Writes best.pt, last.pt and metrics.jsonl here."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT_DIR/last.pt."),
    device: Optional[str] = typer.Option(None, "--device", help="cuda, mps, cpu or auto (default: the config's)."),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDir,
    as_json: bool = JsonFlag,
) -> None:
    """Train a ranker; the best dev checkpoint is OUTPUT_DIR/best.pt. Under torchrun: one DDP process per rank."""
    from neurank.config import load_config
    from neurank.runtime.distributed import init_distributed
    from neurank.training import train

    experiment = load_config(config, _with_options(overrides, data_dir, device))
    with init_distributed(experiment.train.device) as context:
        result = train(experiment, output_dir, resume=resume, progress=not as_json, precision=precision, distributed=context)
    if context.is_main:
        if as_json:
            _print_json(result)
        else:
            console.print(
                f"best dev {result['metric']} {result['best_metric']:.4f} at epoch {result['best_epoch']} "
                f"({result['epochs']} epochs, {result['seconds']:.0f} s); checkpoint {output_dir / 'best.pt'}"
            )
    context.end_process()  # under torchrun: leave without the teardown where gloo can abort (see its docstring)


@app.command("experiment")
def experiment_cmd(
    config: Path = typer.Argument(..., help="Experiment config (YAML)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="Dotted key=value overrides."),
    output_dir: Path = typer.Option(..., "--output-dir", help="One sub-folder per seed, plus results.md/json."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Train with seeds 1..N (unless --seed-list)."),
    seed_list: Optional[str] = typer.Option(None, "--seed-list", help="Comma-separated seeds, e.g. 1,2,3."),
    device: Optional[str] = typer.Option(None, "--device", help="cuda, mps, cpu or auto."),
    data_dir: Optional[Path] = DataDir,
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
        _print_json(vars(result))
        return
    typer.echo(f"{result.collection} {result.split} ({result.queries} queries), seeds {result.seeds}:\n")
    typer.echo(result.markdown())
    typer.echo(
        f"training time per seed: {statistics.mean(result.train_seconds):.0f} s "
        f"(best dev epochs {result.best_epochs}); runs and checkpoints in {output_dir}"
    )


@app.command("rerank")
def rerank_cmd(
    checkpoint: Path = typer.Argument(..., help="A best.pt / last.pt written by `neurank train`, or a .onnx from `neurank export`."),
    collection: str = typer.Argument(..., help="Collection whose texts are re-ranked."),
    split: str = typer.Option("test", "--split"),
    run: Optional[Path] = typer.Option(None, "--run", help="First-stage TREC run (default: BM25 computed now)."),
    output: Path = typer.Option(..., "--output", help="Re-ranked TREC run to write."),
    depth: int = typer.Option(100, "--depth", min=1, help="Re-rank each query's top DEPTH (ad-hoc collections)."),
    device: str = typer.Option("auto", "--device"),
    precision: str = PrecisionOpt,
    data_dir: Optional[Path] = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Re-rank a first-stage run of a collection's split with a trained model. Under torchrun the candidates are
    scored in shards over the ranks and rank 0 writes the run."""
    from neurank.collections.trec import read_run, write_run
    from neurank.runtime.distributed import init_distributed
    from neurank.inference.reranker import Reranker

    coll = _load(collection, data_dir, fold, folds)
    with init_distributed(device) as context:
        if checkpoint.suffix == ".onnx":
            if context.enabled or precision != "fp32":
                raise ValueError(f"{checkpoint}: an ONNX model re-ranks in one process at fp32 (onnxruntime); drop torchrun / --precision")
            from neurank.inference.onnx_reranker import OnnxReranker

            reranker = OnnxReranker.from_file(checkpoint)
        else:
            reranker = Reranker.from_checkpoint(checkpoint, device=device, precision=precision, distributed=context)
        first_stage = read_run(run) if run is not None else None
        reranked = reranker.rerank_collection(coll, split, first_stage, depth=depth)
    if context.is_main:
        write_run(reranked, output, tag=f"neurank-{checkpoint.stem}")
        result = {"collection": collection, "split": split, "queries": len({r.query_id for r in reranked}), "results": len(reranked), "output": str(output)}
        _emit(result, as_json, f"re-ranked {result['results']} results for {result['queries']} queries into {output}")
    context.end_process()  # under torchrun: leave without the teardown where gloo can abort (see its docstring)


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="A best.pt / last.pt written by `neurank train`."),
    output: Path = typer.Option(..., "--output", help="File to write, e.g. model.onnx."),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    as_json: bool = JsonFlag,
) -> None:
    """Export a trained ranker (with its tokenizer and vocabulary) for re-ranking without PyTorch.

    The export is checked against PyTorch at lengths other than the example's before it is written;
    `neurank rerank OUTPUT ...` and `neurank.inference.onnx_reranker.OnnxReranker` run it."""
    from neurank.inference.export import export_checkpoint

    info = export_checkpoint(checkpoint, output, format=format)
    worst = max(info["check"].values())
    result = {"model": info["model_name"], "format": format, "output": str(output), "max_difference": worst, "static_lengths": info["static_lengths"]}
    _emit(result, as_json, f"exported {info['model_name']} to {output} (largest difference from PyTorch {worst:.1e})")


@app.command("benchmark")
def benchmark_cmd(
    config: Path = typer.Argument(Path("configs/benchmark.yaml"), help="Benchmark config (collections, models, seeds)."),
    output: Path = typer.Option(Path("docs/results.md"), "--output", help="Markdown table to write (JSON beside it)."),
    runs_dir: Path = typer.Option(Path("runs/benchmark"), "--runs-dir", help="Checkpoints and runs of every model and seed."),
    quick: bool = typer.Option(False, "--quick", help="One seed, short training: a smoke test of the whole table."),
    models: Optional[str] = typer.Option(None, "--models", help="Comma-separated subset of the config's models."),
    collections: Optional[str] = typer.Option(None, "--collections", help="Comma-separated subset of the config's collections."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds instead of the config's (e.g. one seed per process)."),
    fresh: bool = typer.Option(False, "--fresh", help="Retrain every seed, even those finished in --runs-dir."),
    readme: Optional[Path] = typer.Option(None, "--readme", help="Also put the tables between this README's results markers."),
    note: Optional[str] = typer.Option(None, "--note", help="A line for the table's header, e.g. how the machine was shared."),
    data_dir: Optional[Path] = DataDir,
) -> None:
    """Train and evaluate every model on every benchmark collection; write the results table.

    Seeds already finished in --runs-dir with the same config are read back (an interrupted run resumes); split
    the work with --models over processes, then run once more over all models to gather the table."""
    from neurank.workflows.results_table import load_plan, run_benchmark, update_readme, write_results
    from neurank.runtime.distributed import require_single_process

    require_single_process("benchmark")
    plan = load_plan(
        config, quick=quick, data_dir=str(data_dir) if data_dir else None, models=models.split(",") if models else None,
        collections=collections.split(",") if collections else None,
        seeds=[int(seed) for seed in seeds.split(",")] if seeds else None,
    )
    started = time.perf_counter()
    results = run_benchmark(plan, runs_dir, log=lambda line: console.print(line, highlight=False), reuse=not fresh)
    command = "neurank benchmark " + " ".join(_without_note(sys.argv[2:]) if len(sys.argv) > 2 else [str(config)])
    write_results(results, plan, output, command, time.perf_counter() - started, note)
    if readme:
        update_readme(readme, output.read_text(encoding="utf-8"))
    typer.echo(output.read_text(encoding="utf-8"))


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


@app.command("explain")
def explain_cmd(
    checkpoint: Optional[Path] = typer.Argument(None, help="A best.pt / last.pt written by `neurank train`."),
    query: Optional[str] = typer.Option(None, "--query", help="Query text (with --doc)."),
    doc: Optional[str] = typer.Option(None, "--doc", help="Document text (with --query)."),
    first_stage_score: Optional[float] = typer.Option(
        None, "--first-stage-score", help="Normalised first-stage score in [0, 1] for --query/--doc, for models that "
        "read one (default: BM25 over this one document, as `Reranker.rank` computes it)."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Explain a query and a document of this collection (with --query-id, --doc-id)."),
    query_id: Optional[str] = typer.Option(None, "--query-id"),
    doc_id: Optional[str] = typer.Option(None, "--doc-id"),
    split: str = typer.Option("test", "--split", help="The split --query-id belongs to."),
    depth: int = typer.Option(100, "--depth", min=1, help="BM25 candidates re-ranked per query (ad-hoc collections)."),
    compare: Optional[tuple[Path, Path]] = typer.Option(
        None, "--compare", help="Two TREC runs, RUN_A RUN_B: per-query differences B - A as a sorted bar chart."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="TREC qrels for --compare."),
    measure: str = typer.Option("AP", "--measure", help="Measure for --compare (ir_measures syntax)."),
    top: int = typer.Option(10, "--top", min=1, help="Queries listed as gained and lost most (--compare)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Figure to write: .png, .svg or .pdf (default: explain.png, or wins-losses.png with --compare)."),
    tokens_per_row: Optional[int] = typer.Option(None, "--tokens-per-row", min=5, help="Document tokens per heatmap row before it wraps."),
    device: str = typer.Option("cpu", "--device"),
    data_dir: Optional[Path] = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    as_json: bool = JsonFlag,
) -> None:
    """See inside a ranker: the interaction matrix of a pair and what the model makes of it (CHECKPOINT --query
    --doc, or CHECKPOINT --collection --query-id --doc-id), or per-query wins and losses (--compare RUN_A RUN_B)."""
    from neurank.explain import figures

    if output is not None:
        figures.figure_format(output)  # a wrong suffix fails now, not after the work
    if compare is not None:
        if checkpoint is not None or qrels is None:
            raise typer.BadParameter("--compare takes two runs and --qrels, and no checkpoint", param_hint="--compare")
        _explain_compare(compare, qrels, measure, top, output or Path("wins-losses.png"), as_json)
        return
    if checkpoint is None:
        raise typer.BadParameter("give a checkpoint to explain, or --compare RUN_A RUN_B", param_hint="CHECKPOINT")
    by_text, by_id = query is not None or doc is not None, collection is not None
    if by_text == by_id or (by_text and (query is None or doc is None)) or (by_id and (query_id is None or doc_id is None)):
        raise typer.BadParameter(
            "give either --query and --doc, or --collection with --query-id and --doc-id", param_hint="--query"
        )
    from neurank.explain import checkpoint_model_name, explain_candidate, explain_pair
    from neurank.inference.reranker import Reranker

    figures.require_matplotlib()
    reranker = Reranker.from_checkpoint(checkpoint, device=device)
    name = checkpoint_model_name(checkpoint)
    if by_id:
        coll = _load(collection, data_dir, fold, folds)
        pair = explain_candidate(reranker, coll, split, query_id, doc_id, depth=depth, model_name=name)
    else:
        pair = explain_pair(reranker, query, doc, first_stage_score, model_name=name)
    output = output or Path("explain.png")
    figures.save_figure(figures.pair_figure(pair, tokens_per_row), output)
    if as_json:
        _print_json({**pair.to_dict(), "output": str(output)})
        return
    console.print(f"{name}: score {pair.score:.4f}; {len(pair.query_tokens)} query x {len(pair.doc_tokens)} document tokens "
                  f"({', '.join(pair.stages)}); figure in {output}", highlight=False)


def _explain_compare(runs: tuple[Path, Path], qrels: Path, measure: str, top: int, output: Path, as_json: bool) -> None:
    from neurank.collections.trec import read_qrels, read_run
    from neurank.explain import per_query_deltas, summarise_deltas
    from neurank.explain import figures

    figures.require_matplotlib()
    run_a, run_b = runs
    deltas = per_query_deltas(read_run(run_a), read_run(run_b), read_qrels(qrels), measure)
    figures.save_figure(figures.wins_losses_figure(deltas, measure, run_a.name, run_b.name), output)
    summary = {"measure": measure, "run_a": str(run_a), "run_b": str(run_b), **summarise_deltas(deltas, top), "output": str(output)}
    if as_json:
        _print_json(summary)
        return
    typer.echo(
        f"{measure} per query, {run_b.name} - {run_a.name}: {summary['wins']} wins, {summary['losses']} losses, "
        f"{summary['ties']} ties over {summary['queries']} queries (means {summary['mean_a']:.4f} -> {summary['mean_b']:.4f})"
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
    output: Optional[Path] = typer.Option(None, "--output", help="HTML file to write (default: RUN_DIR/report.html)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to evaluate and explain (default: the run's dev split)."),
    explain: int = typer.Option(3, "--explain", min=0, help="Queries that get an explain figure."),
    checkpoint: str = typer.Option("best.pt", "--checkpoint", help="Checkpoint file inside RUN_DIR."),
    figures_dir: Optional[Path] = typer.Option(None, "--figures-dir", help="Also save every figure of the page here as PNG."),
    device: str = typer.Option("cpu", "--device"),
    data_dir: Optional[Path] = DataDir,
    as_json: bool = JsonFlag,
) -> None:
    """Turn a training run into one self-contained HTML page: config, curves, results against BM25, explain figures."""
    from neurank.workflows.report import write_report

    path = write_report(
        run_dir, output, data_dir=data_dir, split=split, explain=explain, device=device, checkpoint=checkpoint,
        figures_dir=figures_dir,
    )
    _emit({"run_dir": str(run_dir), "output": str(path)}, as_json, f"report of {run_dir} written to {path}")


embeddings_app = typer.Typer(help="Word embeddings: train word2vec on a collection's text.", no_args_is_help=True)
app.add_typer(embeddings_app, name="embeddings")


@embeddings_app.command("train")
def embeddings_train_cmd(
    collection: str = typer.Argument(..., help="Collection whose queries and documents are the training text."),
    output: Path = typer.Option(..., "--output", help="word2vec text file to write (loadable as embeddings.source)."),
    dim: int = typer.Option(100, "--dim", min=1),
    window: int = typer.Option(5, "--window", min=1),
    epochs: int = typer.Option(10, "--epochs", min=1),
    min_count: int = typer.Option(1, "--min-count", min=1),
    brown: bool = typer.Option(False, "--brown", help="Add the Brown corpus (DATA_DIR/brown_corpus/brown.zip)."),
    seed: int = typer.Option(42, "--seed"),
    data_dir: Optional[Path] = DataDir,
    as_json: bool = JsonFlag,
) -> None:
    """Train word2vec (gensim) on a collection's text and save it in word2vec text format."""
    from neurank.config import config_from_dict
    from neurank.data.embeddings import train_word2vec
    from neurank.text import Tokenizer
    from neurank.data.prepare import collection_texts, word2vec_sentences

    coll = _load(collection, data_dir, 0, 5)
    # The default tokenizer, as a config with default data settings has it; Brown is read as training reads it.
    data = {"collection": collection, "data_dir": None if data_dir is None else str(data_dir)}
    config = config_from_dict({"data": data, "embeddings": {"brown": brown}})
    sentences = word2vec_sentences(config, Tokenizer().tokenize_batch(collection_texts(coll)))
    vectors = train_word2vec(sentences, dim=dim, window=window, min_count=min_count, epochs=epochs, seed=seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    vectors.save_word2vec_format(str(tmp), binary=False)
    tmp.replace(output)
    result = {"collection": collection, "sentences": len(sentences), "words": len(vectors.index_to_key), "dim": dim, "output": str(output)}
    _emit(result, as_json, f"trained {result['words']} word vectors on {result['sentences']} texts into {output}")


def _with_options(overrides: Optional[list[str]], data_dir: Optional[Path], device: Optional[str]) -> list[str]:
    extra = list(overrides or [])
    if data_dir is not None:
        extra.append(f"data.data_dir={data_dir}")
    if device is not None:
        extra.append(f"train.device={device}")
    return extra


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
    if argv is None and sys.argv[1:2] and sys.argv[1] in ("train", "experiment", "benchmark", "rerank"):
        from neurank.runtime.allocator import restart_with_tuned_malloc

        restart_with_tuned_malloc(sys.argv[1:])  # training faults in fresh pages every step; see neurank.runtime.allocator
    from neurank.collections.registry import UnknownCollectionError
    from neurank.config import ConfigError
    from neurank.runtime.distributed import DistributedError
    from neurank.models import UnknownModelError
    from neurank.inference.checkpoint import CheckpointError

    args = _expand_multi_value_options(list(sys.argv[1:] if argv is None else argv))
    warnings.simplefilter("default", DataWarning)
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    try:
        app(args=args, prog_name="neurank")
    except (FormatError, FileNotFoundError, UnknownCollectionError, UnknownModelError, ConfigError, CheckpointError, DistributedError, KeyError, ValueError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        err_console.print(f"error: {message}", highlight=False, markup=False, style="bold red")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
