"""The `neurank` command line: parses arguments and calls the library, nothing more.

Every command has `--help`; commands that produce results have `--json` for machine-readable output. Errors in the
user's input (malformed files, unknown collections, missing files) are printed as one line naming what is wrong,
with exit status 2, never as a traceback.

One module per command group, each registering its commands on the one Typer `app` of `_common`:

    collections   collections, download, index, search, qrels
    evaluate      evaluate, baseline
    train         train, experiment
    rerank        rerank, export
    serve         serve
    results_table benchmark
    explain       explain, report
    embeddings    embeddings train

`main(argv)` runs a command in this process; `python -m neurank.cli` and the `neurank` script run `main()`.
"""

from neurank.cli._common import app, main

# Importing a module registers its commands, and `neurank --help` lists them in registration order: a tour from
# the collections to seeing inside a model, not the alphabet.
# isort: off
from neurank.cli import collections, evaluate, train, rerank, serve, results_table, explain, embeddings  # noqa: F401
# isort: on

__all__ = ["app", "main"]
