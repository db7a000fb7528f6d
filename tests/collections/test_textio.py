"""`atomic_write` keeps the mode of the file it replaces and leaves no temporary file behind on any exception; an
existing folder given as `--output` to search, rerank or qrels is one line and changes nothing (issue 22)."""

from __future__ import annotations

import os
import stat

import pytest

from neurank.cli import main
from neurank.collections.textio import atomic_write, check_output_file


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "out.txt"
    for file_mode in (0o644, 0o640, 0o755):
        path.write_text("old\n")
        path.chmod(file_mode)
        with atomic_write(path) as handle:
            handle.write("new\n")
        assert path.read_text() == "new\n"
        assert mode(path) == file_mode


def test_a_new_file_gets_the_mode_open_gives(tmp_path):
    umask = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.txt") as handle:
            handle.write("x\n")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x\n")
    finally:
        os.umask(umask)
    assert mode(tmp_path / "new.txt") == mode(tmp_path / "plain.txt") == 0o640


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt, UnicodeEncodeError])
def test_an_error_in_the_block_leaves_the_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(error):
        with atomic_write(path, encoding="ascii") as handle:
            handle.write("half\n")
            if error is UnicodeEncodeError:
                handle.write("é")
                handle.flush()
            raise error()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failed_open_leaves_no_temporary(tmp_path):
    with pytest.raises(LookupError):
        with atomic_write(tmp_path / "out.txt", encoding="no-such-codec"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_refused_and_kept(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine\n")
    with pytest.raises(FileExistsError, match=r"out: output is an existing folder; expected a file path"):
        with atomic_write(folder) as handle:
            handle.write("x\n")
    assert (folder / "mine.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_where_a_parent_folder_goes_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine\n")
    with pytest.raises(FileExistsError, match=r"file is a file, not a folder"):
        check_output_file(tmp_path / "file" / "out.run", "--output")


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    return exit_info.value.code, " ".join(capsys.readouterr().err.split())


def snapshot(folder):
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    "command",
    [
        ["qrels", "wikiqa", "--split", "dev"],
        ["search", "wikiqa", "--split", "dev"],
        ["rerank", "CHECKPOINT", "wikiqa", "--split", "dev", "--device", "cpu"],
    ],
    ids=["qrels", "search", "rerank"],
)
def test_an_existing_folder_as_output_is_one_line(tmp_path, tiny_data_dir, capsys, command):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    # The folder is refused before the checkpoint is read: a placeholder checkpoint path is enough.
    command = [str(tmp_path / "missing.pt") if arg == "CHECKPOINT" else arg for arg in command]
    code, err = run_cli(capsys, *command, "--data-dir", tiny_data_dir, "--output", folder)
    assert code == 2
    assert err == f"error: {folder}: --output is an existing folder; expected a file path"
    assert snapshot(tmp_path) == before


def test_an_existing_folder_as_export_output_is_one_line(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, "export", tmp_path / "missing.pt", "--output", folder)
    assert code == 2
    assert err == f"error: {folder}: --output is an existing folder; expected a file path"
    assert snapshot(tmp_path) == before


def test_qrels_over_an_existing_file_keeps_its_mode(tmp_path, tiny_data_dir, capsys):
    path = tmp_path / "dev.qrels"
    path.write_text("old\n")
    path.chmod(0o644)
    code, _ = run_cli(capsys, "qrels", "wikiqa", "--split", "dev", "--data-dir", tiny_data_dir, "--output", path)
    assert code == 0
    assert path.read_text() != "old\n"
    assert mode(path) == 0o644
