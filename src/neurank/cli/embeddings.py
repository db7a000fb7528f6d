"""`neurank embeddings train`: word2vec trained on a collection's text, written for `embeddings.source`."""

from __future__ import annotations

from pathlib import Path

import typer

from neurank.cli._common import DataDir, JsonFlag, OverwriteOpt, app, emit

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
    data_dir: Path | None = DataDir,
    overwrite: bool = OverwriteOpt,
    as_json: bool = JsonFlag,
) -> None:
    """Train word2vec (gensim) on a collection's text and save it in word2vec text format. The format has no room
    for a mark of its writer, so an existing file is replaced only with --overwrite."""
    from neurank.collections.textio import check_output_file
    from neurank.config import config_from_dict
    from neurank.data.prepare import train_collection_word2vec

    # Before the training: a folder or an existing file there would fail only at the end.
    check_output_file(output, "--output", overwrite)
    # The options are the config's embeddings settings; data and tokenizer settings stay at their defaults.
    config = config_from_dict(
        {
            "data": {"collection": collection, "data_dir": None if data_dir is None else str(data_dir)},
            "embeddings": {
                "source": "word2vec",
                "dim": dim,
                "window": window,
                "epochs": epochs,
                "min_count": min_count,
                "brown": brown,
            },
            "train": {"seed": seed},
        }
    )
    result = train_collection_word2vec(config, output)
    emit(result, as_json, f"trained {result['words']} word vectors on {result['sentences']} texts into {output}")
