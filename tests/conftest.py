"""Shared fixtures (where the real collections live for integration tests) and test-wide torch settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The tests push tiny tensors, where intra-op threading costs more than it saves: tests/models ran in 8.9 s with
# one thread against 40.7 s with the default two on this 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real collections: $NEURANK_DATA, else ../shared/data beside the repository.

    Fails (never skips) when the directory is missing, so integration tests cannot pass by not running.
    """
    env = os.environ.get("NEURANK_DATA")
    # tests/conftest.py -> parents[1] is the repository root; shared/ sits beside it.
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.fail(f"shared data directory {path} not found; set NEURANK_DATA to the folder holding the collections")
    return path
