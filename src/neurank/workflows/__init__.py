"""End-to-end jobs built from the layers below: the BM25 baseline, an experiment over seeds, the results table and
the run report. The CLI calls these; they hold no tensor code."""
