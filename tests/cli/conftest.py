"""The command-line tests draw with matplotlib's Agg canvas. The `cli` fixture (runs `neurank ARGS` in-process), the
tiny collection, its config and the `trained` run folder live in tests/conftest.py."""

import matplotlib

matplotlib.use("Agg")  # `neurank explain` draws on the Agg canvas; never open a window
