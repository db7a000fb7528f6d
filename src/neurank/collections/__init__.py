"""Readers that turn collection files into records, and the registry of named collections.

`load_collection` takes a registered name (``"wikiqa"``), a collection folder (BEIR layout and/or a
`collection.yaml`, see `neurank.collections.folder`) or ``"irds:ID"`` (ir_datasets).
"""

from neurank.collections.collection import ADHOC, ANSWER_SELECTION, Collection, Split, kfold_splits
from neurank.collections.errors import DataWarning, FormatError
from neurank.collections.formats import read_qrels_any
from neurank.collections.manifest import ManifestError
from neurank.collections.records import Doc, Qrel, Query, ScoredDoc
from neurank.collections.registry import (
    UnknownCollectionError,
    list_collections,
    load_collection,
    resolve_collection,
    resolve_data_dir,
)
from neurank.collections.trec import read_qrels, read_run, read_topics, write_qrels, write_run

__all__ = [
    "ADHOC",
    "ANSWER_SELECTION",
    "Collection",
    "DataWarning",
    "Doc",
    "FormatError",
    "ManifestError",
    "Qrel",
    "Query",
    "ScoredDoc",
    "Split",
    "UnknownCollectionError",
    "kfold_splits",
    "list_collections",
    "load_collection",
    "read_qrels",
    "read_qrels_any",
    "read_run",
    "read_topics",
    "resolve_collection",
    "resolve_data_dir",
    "write_qrels",
    "write_run",
]
