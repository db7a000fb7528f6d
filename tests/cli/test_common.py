"""What every command shares: several values after --measures, and the package run as `python -m neurank.cli`."""

import subprocess
import sys

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
