"""Errors and warnings raised by the collection readers.

A `FormatError` always names the file, the line (1-based) and what was expected, so a user can open the file at
that line and see the problem. Problems that do not stop reading (unknown ids in qrels, empty texts, undecodable
bytes) are gathered and reported once per file as a `DataWarning` with a count.
"""

from __future__ import annotations

import warnings
from pathlib import Path


class FormatError(ValueError):
    """A line of an input file does not have the expected format."""

    def __init__(self, path: str | Path, line: int | None, expected: str, found: str | None = None):
        self.path = str(path)
        self.line = line
        self.expected = expected
        self.found = found
        where = f"{self.path}:{line}" if line is not None else self.path
        message = f"{where}: expected {expected}"
        if found is not None:
            shown = found if len(found) <= 80 else found[:77] + "..."
            message += f", found {shown!r}"
        super().__init__(message)


class DataWarning(UserWarning):
    """Something in an input file was skipped or repaired; reading went on."""


def warn_data(message: str) -> None:
    """Issue a `DataWarning` that points at the caller of the reader, not at this module."""
    warnings.warn(message, DataWarning, stacklevel=3)
