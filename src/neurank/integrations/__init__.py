"""Adapters that put neurank's re-rankers into other toolkits' pipelines (PyTerrier). Thin over
`neurank.inference`; each needs its own extra."""
