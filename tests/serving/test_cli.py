"""`neurank serve`'s mistakes before a port is bound: one line and exit status 2, nothing started."""

from __future__ import annotations

import pytest

from neurank.cli import main
from neurank.cli.serve import parse_models


@pytest.fixture()
def cli(capsys):
    def run(*args):
        try:
            main([str(a) for a in args])
            status = 0
        except SystemExit as exit_:
            status = exit_.code or 0
        captured = capsys.readouterr()
        return status, " ".join(captured.err.split())

    return run


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["nothing to serve"]),
        (["missing.pt"], ["missing.pt", "not found"]),
        (["--model", "no-equals-sign"], ["expected NAME=PATH"]),
        (["--model", "a=x.pt", "--model", "a=y.pt"], ["served twice"]),
        (["NOT_A_MODEL"], ["neither a PyTorch checkpoint nor an ONNX model"]),
        (["MODEL", "--api-key-file", "missing-key"], ["missing-key", "--api-key-file"]),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(cli, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NOT_A_MODEL").write_text("hello\n")
    (tmp_path / "a=x.pt").touch()
    status, err = cli("serve", *args)
    assert status == 2, err
    assert err.startswith("error:") and "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.slow
def test_a_lone_checkpoint_is_named_after_its_run_folder(trained):
    assert parse_models(trained / "best.pt", []) == {"run": trained / "best.pt"}
