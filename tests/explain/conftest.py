"""The explain, figure and report tests draw on the Agg canvas (the tiny collection and `trained` live in
tests/conftest.py)."""

import matplotlib

matplotlib.use("Agg")  # never open a window; the figures draw on the Agg canvas anyway
