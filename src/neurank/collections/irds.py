"""Collections from ir_datasets: `irds:ID` (the optional extra, ``pip install 'neurank[irds]'``).

`load_irds("beir/scifact")` reads a dataset through ir_datasets' own API. Splits: when the id has sub-datasets
`ID/train`, `ID/dev`, `ID/test` (ir_datasets' convention), each one with queries and qrels is a split and the
documents are the parent's; otherwise the dataset's own queries and qrels make one split, named after the last part
of the id when that is train, dev or test, else `test`. With train but no dev, a dev split is carved from train as
for folders (`dev_query_ids`).

ir_datasets downloads its files into ``IR_DATASETS_HOME`` (default ``~/.ir_datasets``) the first time; offline it
reads what is already there. When files are missing, the error says where ir_datasets looked and which files to
place there.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from neurank.collections.beir import BEIR_MEASURES
from neurank.collections.collection import ADHOC, Collection, Split, carve_dev, drop_unknown_qrels
from neurank.collections.records import Doc, Qrel, Query

PREFIX = "irds:"
SPLIT_NAMES = ("train", "dev", "test")
DEFAULT_DEV_FRACTION = 0.1
INSTALL_HINT = "pip install 'neurank[irds]' (or pip install ir_datasets)"


class UnknownDatasetError(KeyError, ValueError):
    """ir_datasets has no dataset of that id."""

    def __str__(self) -> str:
        return str(self.args[0])


def _ir_datasets() -> Any:
    try:
        return importlib.import_module("ir_datasets")  # typed as Any: ir_datasets ships no type hints
    except ImportError:
        raise ImportError(f"irds: collections need the optional ir_datasets package: {INSTALL_HINT}") from None


def load_irds(dataset_id: str, *, dev_fraction: float | None = None) -> Collection:
    """Load `dataset_id` (without the ``irds:`` prefix) as an ad-hoc `Collection`.

    Args:
        dev_fraction: share of train carved into dev when the dataset has train but no dev (default 0.1; 0: none).

    Raises:
        ImportError: ir_datasets is not installed (the message says how to install it).
        UnknownDatasetError: ir_datasets has no such id.
        FileNotFoundError: ir_datasets could not read or fetch its files (the message says where to place them).
        ValueError: the dataset has no documents, or neither queries with qrels nor train/dev/test sub-datasets.
    """
    ir_datasets = _ir_datasets()
    dataset = _load(ir_datasets, dataset_id)
    if not dataset.has_docs():
        raise ValueError(f"{PREFIX}{dataset_id}: this ir_datasets dataset has no documents")
    parts = {split: _load(ir_datasets, f"{dataset_id}/{split}", missing_ok=True) for split in SPLIT_NAMES}
    parts = {split: part for split, part in parts.items() if part and part.has_queries() and part.has_qrels()}
    if not parts:
        if not (dataset.has_queries() and dataset.has_qrels()):
            raise ValueError(
                f"{PREFIX}{dataset_id}: this dataset has neither queries with qrels nor train/dev/test sub-datasets; "
                f"name one that has, e.g. {PREFIX}{dataset_id}/test"
            )
        last = dataset_id.rsplit("/", 1)[-1]
        parts = {last if last in SPLIT_NAMES else "test": dataset}

    datasets = [dataset, *parts.values()]
    docs = _read(dataset_id, datasets, lambda: {doc.doc_id: Doc(doc.doc_id, _text(doc)) for doc in dataset.docs_iter()})
    splits: dict[str, Split] = {}
    for split, part in parts.items():
        queries = _read(
            dataset_id,
            datasets,
            lambda part=part: {q.query_id: Query(q.query_id, _text(q)) for q in part.queries_iter()},
        )
        qrels = _read(
            dataset_id, datasets, lambda part=part: [Qrel(r.query_id, r.doc_id, r.relevance) for r in part.qrels_iter()]
        )
        qrels = drop_unknown_qrels(qrels, queries, docs, f"{PREFIX}{dataset_id} ({split} qrels)")
        judged = {qrel.query_id for qrel in qrels}
        splits[split] = Split({qid: q for qid, q in queries.items() if qid in judged}, qrels)
    sources = ", ".join(f"{split}: {part.dataset_id()}" for split, part in parts.items())
    notes = [f"read through ir_datasets: {dataset_id} ({sources})"]
    fraction = DEFAULT_DEV_FRACTION if dev_fraction is None else dev_fraction
    if "train" in splits and "dev" not in splits and fraction > 0 and len(splits["train"].queries) >= 2:
        train, dev = carve_dev(splits["train"], fraction)
        splits = {"train": train, "dev": dev, **{s: p for s, p in splits.items() if s != "train"}}
        notes.append(f"dev carved from train: {len(dev.queries)} queries (dev_fraction {fraction:g}, by query-id hash)")
    return Collection(dataset_id, ADHOC, docs, splits, BEIR_MEASURES, notes)


def _load(ir_datasets: Any, dataset_id: str, missing_ok: bool = False) -> Any:
    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        if missing_ok:
            return None
        raise UnknownDatasetError(
            f"{PREFIX}{dataset_id}: ir_datasets has no dataset {dataset_id!r}; see https://ir-datasets.com for ids"
        ) from None


def _text(record: Any) -> str:
    # ir_datasets' records know their own text (title and body for documents with both); older records do not.
    if hasattr(record, "default_text"):
        return " ".join(str(record.default_text()).split())
    return " ".join(str(getattr(record, "text", "")).split())


def _read(dataset_id: str, datasets: list, read):
    try:
        return read()
    except (OSError, RuntimeError) as error:  # requests' errors are OSErrors; ir_datasets raises both
        raise FileNotFoundError(missing_files_message(dataset_id, error, datasets)) from error


def missing_files_message(dataset_id: str, error: BaseException, datasets: Iterable[Any] = ()) -> str:
    """Where ir_datasets looked for `dataset_id`'s files and how to place them there by hand (offline).

    The files are found in the dataset objects themselves (their downloads, local files and prepared caches), and
    each download's local name from ir_datasets' download list.
    """
    ir_datasets = _ir_datasets()
    home = Path(ir_datasets.util.home_path())
    lines = [
        f"{PREFIX}{dataset_id}: ir_datasets could not read the dataset's files ({type(error).__name__}: {error}).",
        f"ir_datasets keeps them under IR_DATASETS_HOME={home} (set that variable, before Python starts, to use "
        "another folder). Offline, place each file where ir_datasets looks for it:",
    ]
    md5 = _download_md5s()
    urls, paths = _dataset_files(datasets, ir_datasets)
    for url in urls:
        local = home / "downloads" / md5[url] if url in md5 else None
        lines.append(f"  {url} -> {local}" if local else f"  {url} (download it; ir_datasets has no local name for it)")
    lines += [f"  {path}" for path in paths]
    if not urls and not paths:
        lines.append(f"  (ir_datasets names no file for {dataset_id}; see https://ir-datasets.com)")
    return "\n".join(lines[:20])


def _download_md5s() -> dict[str, str]:
    """`{url: md5}` from ir_datasets' download list: a download is looked for as IR_DATASETS_HOME/downloads/<md5>."""
    try:
        listing = json.loads(pkgutil.get_data("ir_datasets", "etc/downloads.json") or b"{}")
    except (OSError, ValueError):
        return {}
    found: dict[str, str] = {}
    for group in listing.values():
        for entry in group.values() if isinstance(group, dict) else ():
            if isinstance(entry, dict) and "url" in entry and "expected_md5" in entry:
                found[entry["url"]] = entry["expected_md5"]
    return found


def _dataset_files(datasets: Iterable[Any], ir_datasets: Any) -> tuple[list[str], list[str]]:
    """The download URLs and the local paths (files placed by hand, prepared caches) inside dataset objects."""
    local_type, remote_type = ir_datasets.util.LocalDownload, ir_datasets.util.RequestsDownload
    urls: dict[str, None] = {}
    paths: dict[str, None] = {}
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 12:
            return
        seen.add(id(obj))
        if isinstance(obj, remote_type):
            urls[obj.url] = None
        elif isinstance(obj, local_type) and "downloads" not in Path(obj._path).parts:
            paths[str(obj._path)] = None
        elif type(obj).__name__ == "Cache" and hasattr(obj, "_path"):
            paths[str(obj._path)] = None
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, list | tuple):
            children = list(obj)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("ir_datasets"):
            children = list(vars(obj).values())
        else:
            return
        for child in children:
            walk(child, depth + 1)

    for dataset in datasets:
        walk(dataset, 0)
    return list(urls), list(paths)
