"""`neurank serve`'s mistakes before a port is bound: one line and exit status 2, nothing started."""

from __future__ import annotations

import pytest

from neurank.cli.serve import parse_models


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["nothing to serve"]),
        (["missing.pt"], ["missing.pt", "not found"]),
        (["--model", "no-equals-sign"], ["expected NAME=PATH"]),
        (["--model", "a=x.pt", "--model", "a=y.pt"], ["served twice"]),
        (["NOT_A_MODEL"], ["neither a PyTorch checkpoint nor an ONNX model"]),
        (["MODEL", "--api-key-file", "missing-key"], ["missing-key", "--api-key-file"]),
        (["run"], ["run is a directory; pass DIR/best.pt"]),
        (["--model", "x=run"], ["run is a directory; pass DIR/best.pt"]),
        (["last-only"], ["last-only is a directory; pass DIR/best.pt", "it holds last.pt"]),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(cli, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NOT_A_MODEL").write_text("hello\n")
    (tmp_path / "a=x.pt").touch()
    (tmp_path / "run").mkdir()
    (tmp_path / "last-only").mkdir()
    (tmp_path / "last-only" / "last.pt").touch()
    status, _, err = cli("serve", *args)
    assert status == 2, err
    assert err.startswith("error:") and "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.slow
def test_a_lone_checkpoint_is_named_after_its_run_folder(trained):
    assert parse_models(trained / "best.pt", []) == {"run": trained / "best.pt"}


@pytest.mark.slow
def test_a_run_folder_serves_its_best_pt_and_no_fusion_reaches_the_server(cli, trained, monkeypatch):
    import neurank.serving.server

    calls = []
    monkeypatch.setattr(neurank.serving.server, "serve", lambda sources, **options: calls.append((sources, options)))
    status, _, err = cli("serve", trained, "--no-fusion")
    assert status == 0, err
    assert f"{trained} is a run folder: serving {trained / 'best.pt'}" in err
    (sources, options), *_ = calls
    assert sources == {"run": trained / "best.pt"} and options["fusion"] is False
    cli("serve", trained / "best.pt")
    assert calls[1][1]["fusion"] is True


@pytest.mark.parametrize(
    ("host", "key", "warned"),
    [("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False), ("0.0.0.0", None, True),
     ("192.168.1.5", None, True), ("0.0.0.0", "k", False)],
)  # fmt: skip
def test_an_open_host_without_a_key_is_warned(host, key, warned):
    from neurank.serving.server import exposure_warning

    warning = exposure_warning(host, key)
    assert (warning is not None) == warned
    if warned:
        assert f"--host {host}" in str(warning) and "NEURANK_API_KEY" in str(warning)
