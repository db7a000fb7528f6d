"""`neurank train --output-dir D` never loses an earlier run in D: a fresh run into it is refused (naming --resume and
--overwrite), nothing is deleted before that check, --overwrite replaces files only as new ones are written, and
--resume checks the config it resumes (issue 22)."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import yaml

from neurank.cli import main
from neurank.inference.checkpoint import load_checkpoint
from neurank.training import train


def snapshot(folder):
    """Every file under `folder` with its bytes and mtime: what "no file changed" compares."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    # The error console wraps long lines at the terminal's width: compare the words.
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


def with_train(config, **changes):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


@pytest.fixture()
def config_file(tiny_config, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(with_train(tiny_config, epochs=2).to_dict()), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "overrides",
    [[], ["train.epochs=3"], ["train.seed=5"]],
    ids=["same-config", "more-epochs", "other-seed"],
)
def test_a_fresh_run_into_a_finished_run_is_refused_and_changes_nothing(trained, config_file, capsys, overrides):
    before = snapshot(trained)
    code, err = run_cli(capsys, "train", config_file, *overrides, "--output-dir", trained)
    assert code == 2
    assert err.startswith(f"error: {trained}: holds an earlier run (best.pt, last.pt, metrics.jsonl)")
    assert "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert snapshot(trained) == before


def test_a_fresh_run_killed_before_its_first_epoch_keeps_the_earlier_metrics(trained, tiny_config, monkeypatch):
    from neurank.training import loop

    metrics = (trained / "metrics.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="holds an earlier run"):
        train(with_train(tiny_config, epochs=1), trained, progress=False)

    class Killed(Exception):
        pass

    def killed_while_saving(path, payload):
        raise Killed

    # Even with overwrite, a run that completes no epoch has nothing to put in the earlier files' place.
    monkeypatch.setattr(loop, "save_checkpoint", killed_while_saving)
    with pytest.raises(Killed):
        train(with_train(tiny_config, epochs=1), trained, progress=False, overwrite=True)
    assert (trained / "metrics.jsonl").read_bytes() == metrics


def test_overwrite_replaces_the_run_as_the_new_one_is_written(trained, tiny_config):
    class Killed(Exception):
        pass

    def kill(epoch, record):
        raise Killed

    old_best = (trained / "best.pt").read_bytes()
    config = with_train(tiny_config, epochs=3, seed=11)
    # Killed after its first epoch: that epoch's files replaced the old ones, whole.
    with pytest.raises(Killed):
        train(config, trained, progress=False, overwrite=True, on_epoch_end=kill)
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    assert load_checkpoint(trained / "last.pt")["config"]["train"]["seed"] == 11
    assert (trained / "best.pt").read_bytes() != old_best
    train(config, trained, progress=False, resume=True)
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert not list(trained.glob(".*.tmp"))


def test_overwrite_from_the_cli_trains_afresh(trained, config_file, capsys):
    code = 0
    try:
        main(["train", str(config_file), "train.seed=3", "--output-dir", str(trained), "--overwrite", "--json"])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code in (0, None)
    assert load_checkpoint(trained / "best.pt")["config"]["train"]["seed"] == 3
    assert json.loads(capsys.readouterr().out)["epochs"] == 2


def test_resume_and_overwrite_together_are_refused(trained, config_file, capsys):
    before = snapshot(trained)
    code, err = run_cli(capsys, "train", config_file, "--output-dir", trained, "--resume", "--overwrite")
    assert code == 2 and "give one of them" in err
    assert snapshot(trained) == before


def test_a_file_as_output_dir_is_one_line(tmp_path, config_file, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("mine\n")
    code, err = run_cli(capsys, "train", config_file, "--output-dir", path)
    assert code == 2
    assert err == f"error: {path}: --output-dir is a file, not a folder; give a folder for the run's files"
    assert path.read_text() == "mine\n"


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (["train.seed=5"], ["train.seed: 7 in last.pt, 5 now"]),
        (["embeddings.dim=16"], ["embeddings.dim: 8 in last.pt, 16 now"]),
        (["train.lr=0.5", "data.max_doc_len=30"], ["data.max_doc_len: 20 in last.pt, 30 now", "train.lr"]),
    ],
    ids=["seed", "embedding-dim", "two-keys"],
)
def test_resume_with_a_changed_config_names_the_keys(trained, config_file, capsys, overrides, keys):
    before = snapshot(trained)
    code, err = run_cli(capsys, "train", config_file, *overrides, "--output-dir", trained, "--resume")
    assert code == 2
    assert err.startswith(f"error: {trained / 'last.pt'}: cannot resume with a changed config (")
    assert all(key in err for key in keys), err
    assert "Traceback" not in err
    assert snapshot(trained) == before


def test_resume_may_change_where_and_how_long(trained, tiny_config):
    result = train(with_train(tiny_config, epochs=3, eval_batch_size=16), trained, progress=False, resume=True)
    assert result["epochs"] == 3
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]


def test_resume_without_last_pt_is_refused_and_trains_nothing(tiny_config, tmp_path):
    # Not a fresh start under a --resume the user believes continues an earlier run (issue 22).
    with pytest.raises(FileNotFoundError, match=r"last.pt: not found, so --resume has nothing to continue; start"):
        train(with_train(tiny_config, epochs=1), tmp_path / "new", progress=False, resume=True)
    assert not (tmp_path / "new").exists()


def test_resume_of_a_run_without_last_pt_is_refused(trained, tiny_config):
    (trained / "last.pt").unlink()
    before = snapshot(trained)
    with warnings.catch_warnings(), pytest.raises(FileExistsError, match=r"without the last.pt --resume continues"):
        warnings.simplefilter("error")
        train(tiny_config, trained, progress=False, resume=True)
    assert snapshot(trained) == before


def test_an_empty_or_unrelated_folder_is_trained_into(tiny_config, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    train(with_train(tiny_config, epochs=1), folder, progress=False)
    assert (folder / "notes.txt").read_text() == "mine\n" and (folder / "best.pt").is_file()


def test_temporaries_a_killed_run_left_are_removed_on_the_next(trained, tiny_config):
    stale = [trained / ".last.pt.abc123.tmp", trained / ".metrics.jsonl.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    (trained / ".notes.tmp").write_text("mine\n")
    train(with_train(tiny_config, epochs=3), trained, progress=False, resume=True)
    assert not any(path.exists() for path in stale)
    assert (trained / ".notes.tmp").read_text() == "mine\n"


def test_resume_from_the_cli_with_the_config_file_continues(trained, config_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(config_file), "train.epochs=3", "--output-dir", str(trained), "--resume", "--json"])
    assert exit_info.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["epochs"] == 3
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
