"""What every command shares: several values after --measures, the package run as `python -m neurank.cli`, and the
exit codes: 2 and one line for the user's mistakes, 1 and a request to report it for a bug, --debug for its
traceback."""

import subprocess
import sys

import pytest

from neurank.cli._common import expand_multi_value_options


def test_measures_option_takes_several_values(tmp_path):
    existing = tmp_path / "run.txt"
    existing.write_text("")
    assert expand_multi_value_options(["evaluate", "r", "q", "--measures", "AP", "RR,nDCG@10", "--json"]) == [
        "evaluate",
        "r",
        "q",
        "--measures",
        "AP",
        "--measures",
        "RR",
        "--measures",
        "nDCG@10",
        "--json",
    ]
    # An existing file after the measures is a positional argument, not a measure.
    assert expand_multi_value_options(["evaluate", "-m", "AP", str(existing)]) == [
        "evaluate",
        "-m",
        "AP",
        str(existing),
    ]


def test_python_dash_m_runs_the_command_line():
    # The process boundary is the point: torchrun and the malloc restart launch `python -m neurank.cli`.
    done = subprocess.run([sys.executable, "-m", "neurank.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("collections", "evaluate", "train", "rerank", "benchmark", "explain", "embeddings"):
        assert command in done.stdout


def test_no_command_prints_the_command_tour_in_order(cli):
    status, out, _ = cli("--help")
    assert status == 0
    tour = [
        "collections",
        "download",
        "index",
        "search",
        "qrels",
        "evaluate",
        "baseline",
        "train",
        "experiment",
        "rerank",
        "export",
        "benchmark",
        "explain",
        "report",
        "embeddings",
    ]
    # A command's row starts right after the panel's border; wrapped help continues indented.
    listed = [line[2:].split()[0] for line in out.splitlines() if line.startswith("│ ") and line[2:3].strip()]
    assert [name for name in listed if name in tour] == tour


# ---------------------------------------------------------------------------------------------- exit codes (issue 22)
# A user's mistake: one line and exit 2. Anything else is a bug in neurank: one line asking to report it, exit 1, and
# the traceback only with --debug (anywhere on the command line) or NEURANK_DEBUG=1.


def failing_evaluate(monkeypatch, error):
    """`neurank evaluate` raising `error` where it reads the run."""
    import neurank.collections.trec as trec

    def read_run(*args, **kwargs):
        raise error

    monkeypatch.setattr(trec, "read_run", read_run)


@pytest.fixture()
def qrels(tmp_path):
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d1 1\n")
    return path


def test_an_internal_error_is_one_line_asking_to_report_it(cli, monkeypatch, qrels):
    monkeypatch.delenv("NEURANK_DEBUG", raising=False)
    failing_evaluate(monkeypatch, RuntimeError("something\nbroke"))
    status, out, err = cli("evaluate", "run.txt", qrels)
    assert status == 1 and out == ""
    assert err == (
        "internal error: RuntimeError: something broke (please report it; rerun with --debug for the traceback)"
    )


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_prints_the_traceback(cli, monkeypatch, qrels, where):
    monkeypatch.delenv("NEURANK_DEBUG", raising=False)
    failing_evaluate(monkeypatch, RuntimeError("something broke"))
    args = ["evaluate", "run.txt", str(qrels)]
    if where == "env":
        monkeypatch.setenv("NEURANK_DEBUG", "1")
    else:
        args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    status, _, err = cli(*args)
    assert status == 1
    assert err.startswith("Traceback (most recent call last):") and "in read_run raise error" in err
    assert err.endswith(
        "RuntimeError: something broke internal error: RuntimeError: something broke (please report it; with the "
        "traceback above)"
    )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(13, "Permission denied", "/data/run.txt"), "/data/run.txt: Permission denied"),
        (IsADirectoryError(21, "Is a directory", "/data/run.txt"), "/data/run.txt: Is a directory"),
        (NotADirectoryError(20, "Not a directory", "/data/f.txt/run.txt"), "/data/f.txt/run.txt: Not a directory"),
        # the temporary file a write starts with, in a read-only folder: the folder is what the user must change
        (
            PermissionError(13, "Permission denied", "/data/ro/.run.txt.k2j3.tmp"),
            "/data/ro: cannot write into this folder (Permission denied)",
        ),
        (OSError(28, "No space left on device", "/data/run.txt"), "/data/run.txt: No space left on device"),
        (
            UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid start byte"),
            "a file is not UTF-8 text (byte 0xff at offset 2); save it as UTF-8, or rerun with --debug to see which "
            "file was being read",
        ),
    ],
    ids=["permission", "is-a-directory", "not-a-directory", "read-only-folder", "disk-full", "not-utf8"],
)
def test_errors_of_the_users_files_are_one_line_and_exit_2(cli, monkeypatch, qrels, error, message):
    failing_evaluate(monkeypatch, error)
    status, out, err = cli("evaluate", "run.txt", qrels)
    assert status == 2 and out == ""
    assert err == f"error: {message}"


def test_folds_below_two_are_refused_by_the_option(cli):
    status, _, err = cli("collections", "cranfield", "--folds", "0")
    assert status == 2 and "Invalid value for '--folds'" in err and "greater than or equal to 2" in err
