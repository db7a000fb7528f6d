"""Reading text files the way real collections arrive: with BOMs, CRLF line endings and stray non-UTF-8 bytes.

Every reader goes through `read_lines`, so these quirks are handled (and reported) in one place.
Writers go through `atomic_write`, so a crash never leaves a half-written file where the user's file was.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from neurank.collections.errors import warn_data


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return `path` as a Path, or raise FileNotFoundError that says which file was expected and where."""
    path = Path(path)
    if not path.is_file():
        # A relative path is named with the folder it was looked for in: paths inside a collection.yaml are relative
        # to the collection, those on the command line to the working directory.
        where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
        raise FileNotFoundError(f"{path}: {what} not found" + (" (it is a directory)" if path.is_dir() else where))
    return path


def read_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """Yield `(line_number, line)` for each line of a text file, 1-based, without the line ending.

    A UTF-8 byte-order mark is dropped, `\\r\\n` and lone `\\r` line endings are accepted, and lines that are
    not valid UTF-8 are decoded as cp1252 (latin-1 for the bytes cp1252 lacks). Repaired lines are reported
    once per file in a `DataWarning` with their count and the first line number.
    """
    path = require_file(path, what)
    bad_lines = 0
    first_bad = None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_lines += 1
                first_bad = first_bad or number
                try:
                    line = raw.decode("cp1252")
                except UnicodeDecodeError:
                    line = raw.decode("latin-1")
            yield number, line
    if bad_lines:
        warn_data(
            f"{path}: {bad_lines} line(s) were not valid UTF-8 (first at line {first_bad}); "
            "decoded them as cp1252/latin-1"
        )


def check_output_path(path: str | Path, what: str = "output") -> Path:
    """Return `path` as a Path, or raise FileExistsError when it cannot be written as a file: it is an existing folder,
    or a file stands where one of its parent folders would go. Whether an existing file there may be replaced is
    `check_output_file`'s question."""
    path = Path(path)
    if path.is_dir():
        raise FileExistsError(f"{path}: {what} is an existing folder; expected a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FileExistsError(f"{path}: {what} cannot be written, {parent} is a file, not a folder")
            break
    return path


def check_output_file(
    path: str | Path,
    what: str = "output",
    overwrite: bool = False,
    ours: Callable[[Path], bool] | None = None,
) -> Path:
    """Return `path` as a Path if a command may write its output file there, else raise. Commands call it before
    their expensive work, so that a refusal costs nothing.

    The rule (issue 22: nothing a user had is lost): a new path is fine; an existing file is replaced only when
    `ours(path)` recognises it as an output neurank wrote (a rerun replaces it), or when the user passed
    `--overwrite` (`overwrite=True`). Either way the replacement is atomic (`atomic_write`), so the old file stays
    until the new one is complete. A file kind that carries no mark of its writer (`ours=None`: qrels, word2vec
    text) always needs `--overwrite`.

    Raises:
        FileExistsError: a folder at `path`, a file where a parent folder would go, or an existing file neither
            recognised as neurank's nor allowed by `overwrite`.
        PermissionError: an existing read-only file (even `--overwrite` does not replace it).
    """
    path = check_output_path(path, what)
    if not path.is_file():
        if overwrite or not (path.is_symlink() or path.exists()):
            return path
        ours = None  # a dangling link, a pipe, a device: nothing neurank writes
    else:
        _check_writable(path)
        if overwrite or (ours is not None and _recognised(ours, path)):
            return path
    if ours is None:
        whose = "whether neurank wrote it cannot be told (this kind of file carries no mark of its writer)"
    else:
        whose = "was not written by neurank"
    raise FileExistsError(
        f"{path}: {what} exists and {whose}; pass --overwrite to replace it, or choose another path (nothing was "
        "written)"
    )


def marked_by(marker: str, lines: int = 10) -> Callable[[Path], bool]:
    """A predicate for `check_output_file`: whether one of a file's first `lines` lines holds `marker`."""
    return lambda path: any(marker in line for line in head_lines(path, lines))


def _recognised(ours: Callable[[Path], bool], path: Path) -> bool:
    # A predicate that cannot read the file (unreadable, undecodable) has not recognised it.
    try:
        return bool(ours(path))
    except (OSError, ValueError):
        return False


def _check_writable(path: Path) -> int:
    """The mode of the existing file `path`, or PermissionError when it is read-only."""
    file_mode = stat.S_IMODE(path.stat().st_mode)
    # Root may write anything (os.access says yes), so a file nobody may write counts as read-only too.
    if not os.access(path, os.W_OK) or not file_mode & 0o222:
        raise PermissionError(
            f"{path}: the file is read-only (mode {file_mode:o}); make it writable or choose another path "
            "(nothing was written)"
        )
    return file_mode


def head_lines(path: str | Path, count: int, tail_bytes: int = 0) -> list[str]:
    """The first `count` lines of a text file (decoded as UTF-8 with replacement, line endings dropped), followed by
    the complete lines within its last `tail_bytes` bytes: a cheap look at both ends of a large file."""
    lines: list[str] = []
    with open(path, "rb") as handle:
        while len(lines) < count:
            raw = handle.readline(1 << 16)  # bounded: a binary file may have no line ending at all
            if not raw:
                break
            lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        read_to = handle.tell()
        size = handle.seek(0, os.SEEK_END)
        if tail_bytes and size > read_to:
            start = max(read_to, size - tail_bytes)
            if start > read_to:
                handle.seek(start - 1)  # from the byte before: the first piece ends a line begun before `start`
                tail = handle.read().split(b"\n")[1:]
            else:
                handle.seek(start)
                tail = handle.read().split(b"\n")
            lines += [raw.decode("utf-8", "replace").rstrip("\r") for raw in tail if raw.strip()]
    return lines


def _new_file_mode() -> int:
    # What open() would give a new file: 0666 less the umask (which can only be read by setting it).
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path` and rename it over `path` only when the block ends without error.

    The file keeps the mode of the one it replaces (a new one gets the mode open() would give it), and the temporary
    file is removed on every exception, KeyboardInterrupt included. A folder at `path` is refused (FileExistsError),
    and so is a read-only file (PermissionError, before anything is written): renaming over it would succeed in a
    writable folder, silently replacing a file its owner protected, as `cp` and `open` never do.
    """
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    try:
        file_mode = _check_writable(path)
    except FileNotFoundError:
        file_mode = _new_file_mode()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            handle = os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "\n")
        except BaseException:
            with contextlib.suppress(OSError):  # open() may have closed it already
                os.close(fd)
            raise
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, file_mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
