"""The tiny collection and a checkpoint trained on it in seconds, shared by the explain, figure and report tests."""

import dataclasses

import matplotlib
import pytest

from ..training.conftest import tiny_config, tiny_data_dir  # noqa: F401 (fixtures)

matplotlib.use("Agg")  # never open a window; the figures draw on the Agg canvas anyway


@pytest.fixture()
def trained(tiny_config, tmp_path):  # noqa: F811 (the fixture, by name)
    """A MatchPyramid run folder (best.pt, last.pt, metrics.jsonl) trained for two epochs on the tiny collection."""
    from neurank.training import train

    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=2))
    train(config, tmp_path / "run", progress=False)
    return tmp_path / "run"
