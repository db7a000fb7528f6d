"""`neurank rerank` and `neurank export`: a trained ranker over a first-stage run, and its ONNX export."""

from __future__ import annotations

from pathlib import Path

import typer

from neurank.cli._common import DataDir, FoldOpt, FoldsOpt, JsonFlag, OverwriteOpt, PrecisionOpt, app, emit
from neurank.collections import load_collection


@app.command("rerank")
def rerank_cmd(
    checkpoint: Path = typer.Argument(
        ..., help="A best.pt / last.pt written by `neurank train`, or a .onnx from `neurank export`."
    ),
    collection: str = typer.Argument(..., help="Collection whose texts are re-ranked."),
    split: str = typer.Option("test", "--split"),
    run: Path | None = typer.Option(
        None,
        "--run",
        help="First-stage TREC run whose candidates are re-ranked (default: the checkpoint's BM25 computed now). "
        "A model that reads the first-stage score gets it recomputed over these candidates, as in training, unless "
        "the run's scores already are it; the output says which.",
    ),
    first_stage_from_run: bool = typer.Option(
        False,
        "--first-stage-from-run",
        help="Feed the run's own scores to a model that reads the first-stage score (only when they are like the "
        "BM25 it was trained with); refused when they are constant within every query.",
    ),
    output: Path = typer.Option(..., "--output", help="Re-ranked TREC run to write."),
    depth: int = typer.Option(100, "--depth", min=1, help="Re-rank each query's top DEPTH (ad-hoc collections)."),
    device: str = typer.Option("auto", "--device"),
    precision: str = PrecisionOpt,
    data_dir: Path | None = DataDir,
    fold: int = FoldOpt,
    folds: int = FoldsOpt,
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Re-rank a first-stage run of a collection's split with a trained model. Under torchrun the candidates are
    scored in shards over the ranks and rank 0 writes the run.

    The checkpoint records its first stage (BM25 and its settings); a model trained with that score as a feature
    or fused with it never silently reads another kind of score from --run (see --first-stage-from-run)."""
    from neurank.collections.textio import check_output_file
    from neurank.collections.trec import is_neurank_run, read_run, write_run
    from neurank.inference import load_reranker
    from neurank.runtime.distributed import init_distributed

    # Before the scoring: a folder or a user's file there would fail only at the end.
    check_output_file(output, "--output", overwrite, is_neurank_run)
    coll = load_collection(collection, data_dir, fold=fold, folds=folds)
    with init_distributed(device) as context:
        reranker = load_reranker(checkpoint, device=device, precision=precision, distributed=context)
        first_stage = read_run(run) if run is not None else None
        outcome = reranker.rerank_split(
            coll,
            split,
            first_stage,
            depth=depth,
            first_stage="run" if first_stage_from_run else "auto",
            run_name=str(run),
        )
    if context.is_main:
        reranked = outcome.run
        write_run(reranked, output, tag=f"neurank-{checkpoint.stem}")
        result = {
            "collection": collection,
            "split": split,
            "queries": len({r.query_id for r in reranked}),
            "results": len(reranked),
            "output": str(output),
            "first_stage": outcome.first_stage.to_dict(),
        }
        emit(
            result,
            as_json,
            f"re-ranked {result['results']} results for {result['queries']} queries into {output}\n"
            f"{outcome.first_stage.message}",
        )
    context.end_process()  # under torchrun: leave without the teardown where gloo can abort (see its docstring)


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="A best.pt / last.pt written by `neurank train`."),
    output: Path = typer.Option(..., "--output", help="File to write, e.g. model.onnx."),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Export a trained ranker (with its tokenizer and vocabulary) for re-ranking without PyTorch.

    The export is checked against PyTorch at lengths other than the example's before it is written;
    `neurank rerank OUTPUT ...` and `neurank.load_reranker(OUTPUT)` run it."""
    from neurank.collections.textio import check_output_file
    from neurank.inference.export import export_checkpoint, is_neurank_onnx

    # Before the export: a folder or a user's file there would fail only at the end.
    check_output_file(output, "--output", overwrite, is_neurank_onnx)
    info = export_checkpoint(checkpoint, output, format=format)
    worst = max(info["check"].values())
    result = {
        "model": info["model_name"],
        "format": format,
        "output": str(output),
        "max_difference": worst,
        "static_lengths": info["static_lengths"],
    }
    emit(result, as_json, f"exported {info['model_name']} to {output} (largest difference from PyTorch {worst:.1e})")
