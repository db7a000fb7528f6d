"""The command line in-process: `cli(*args)` runs `neurank ARGS` through `neurank.cli.main` and returns (exit status,
stdout, stderr). The tiny collection, its config and the `trained` run folder live in tests/conftest.py."""

import matplotlib
import pytest

from neurank.cli import main

matplotlib.use("Agg")  # `neurank explain` draws on the Agg canvas; never open a window


@pytest.fixture()
def cli(capsys):
    def run(*args):
        try:
            main([str(a) for a in args])
            status = 0
        except SystemExit as exit_:
            status = exit_.code or 0
        captured = capsys.readouterr()
        return status, captured.out, " ".join(captured.err.split())  # rich wraps long error lines

    return run
