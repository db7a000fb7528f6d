"""`atomic_write` keeps the mode of the file it replaces and leaves no temporary file behind on any exception; an
existing folder given as `--output` to search, rerank or qrels is one line and changes nothing; an existing file is
replaced only when neurank recognisably wrote it, or with --overwrite (issue 22)."""

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


def test_qrels_over_an_existing_file_needs_overwrite_and_keeps_its_mode(tmp_path, tiny_data_dir, capsys):
    path = tmp_path / "dev.qrels"
    path.write_text("old\n")
    path.chmod(0o644)
    args = ["qrels", "wikiqa", "--split", "dev", "--data-dir", tiny_data_dir, "--output", path]
    code, err = run_cli(capsys, *args)
    assert code == 2
    assert str(path) in err and "--overwrite" in err
    assert path.read_text() == "old\n"
    code, _ = run_cli(capsys, *args, "--overwrite")
    assert code == 0
    assert path.read_text() != "old\n"
    assert mode(path) == 0o644


# ------------------------------------------------------------------ whose file may a command replace (issue 22)


def test_a_new_path_and_a_recognised_file_may_be_written(tmp_path):
    path = tmp_path / "out.run"
    assert check_output_file(path, "--output") == path
    path.write_text("mine\n")
    assert check_output_file(path, "--output", ours=lambda p: p.read_text() == "mine\n") == path


@pytest.mark.parametrize(
    ("ours", "says"),
    [(lambda path: False, "was not written by neurank"), (None, "whether neurank wrote it cannot be told")],
    ids=["not-recognised", "no-mark"],
)
def test_an_unrecognised_file_needs_overwrite(tmp_path, ours, says):
    path = tmp_path / "q.txt"
    path.write_text("the user's judgements\n")
    with pytest.raises(FileExistsError) as error:
        check_output_file(path, "--output", ours=ours)
    message = str(error.value)
    assert message.startswith(f"{path}: --output exists and {says}")
    assert "--overwrite" in message and "\n" not in message
    assert path.read_text() == "the user's judgements\n"
    assert check_output_file(path, "--output", overwrite=True, ours=ours) == path


def test_a_predicate_that_cannot_read_the_file_does_not_recognise_it(tmp_path):
    path = tmp_path / "x.run"
    path.write_bytes(b"\xff\xfe")

    def broken(_):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    with pytest.raises(FileExistsError, match="was not written by neurank"):
        check_output_file(path, "--output", ours=broken)


def test_a_read_only_file_is_refused_even_with_overwrite(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("mine\n")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        check_output_file(path, "--output", overwrite=True)


def test_a_dangling_link_needs_overwrite(tmp_path):
    link = tmp_path / "out.run"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError, match="cannot be told"):
        check_output_file(link, "--output", ours=lambda p: True)
    assert check_output_file(link, "--output", overwrite=True) == link


def test_head_lines_reads_both_ends_only(tmp_path):
    from neurank.collections.textio import head_lines

    path = tmp_path / "big.txt"
    path.write_text("".join(f"line {i}\n" for i in range(10_000)))
    lines = head_lines(path, 3, tail_bytes=20)
    assert lines[:3] == ["line 0", "line 1", "line 2"]
    assert lines[3:] == ["line 9998", "line 9999"]  # the partial line before them is dropped
    small = tmp_path / "small.txt"
    small.write_text("a\r\nb\n")
    assert head_lines(small, 10, tail_bytes=100) == ["a", "b"]  # nothing read twice


def test_marked_by_looks_at_the_first_lines(tmp_path):
    from neurank.collections.textio import marked_by

    path = tmp_path / "t.md"
    path.write_text("title\n<!-- mark -->\nbody\n")
    assert marked_by("<!-- mark -->")(path)
    assert not marked_by("<!-- mark -->", lines=1)(path)
