"""A collection that is a folder of the user's files: BEIR layout, a `collection.yaml` manifest, or both.

A folder is a collection when it holds `corpus.jsonl` (the BEIR layout: `queries.jsonl` and `qrels/<split>.tsv`
beside it) or a `collection.yaml` (`neurank.collections.manifest`), which names other files or adds to the BEIR
layout. How the pieces make splits:

- each qrels file is a split (`qrels/test.tsv`, or `qrels: {test: FILE}` in the manifest, which wins for its
  split), holding the queries judged in it; with `folds: K` one qrels file is cut into train/dev/test/all by
  `kfold_splits` (`fold` picks the test fold);
- with train but no dev, a dev split is carved from train (`dev_fraction`, default `DEFAULT_DEV_FRACTION`; 0 turns
  it off), by `dev_query_ids`: deterministic, independent of file order;
- with candidate runs the collection is answer selection: each query's candidates are the documents its run lists
  (file order), texts from the corpus, and `Collection.docs` stays empty, as for WikiQA;
- `filtered: true` keeps, in every split but train, the queries with a relevant and a non-relevant candidate, and
  keeps the whole split as `<split>-all` (WikiQA's protocol).

`plan_folder` resolves all of that from file names alone (cheap, for listings); `load_folder` reads the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from neurank.collections.beir import BEIR_MEASURES
from neurank.collections.collection import (
    ADHOC,
    ANSWER_SELECTION,
    Collection,
    Split,
    carve_dev,
    drop_unknown_qrels,
    kfold_splits,
)
from neurank.collections.errors import FormatError, warn_data
from neurank.collections.formats import read_documents, read_qrels_any, read_queries
from neurank.collections.manifest import MANIFEST_NAME, FileSpec, Manifest, read_manifest
from neurank.collections.records import Doc, Qrel, Query
from neurank.collections.textio import read_lines
from neurank.collections.trec import read_run

BEIR_CORPUS = "corpus.jsonl"
BEIR_QUERIES = "queries.jsonl"
DEFAULT_DEV_FRACTION = 0.1
ANSWER_SELECTION_MEASURES = ("AP", "RR", "nDCG@10")
_SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}


def folder_kind(folder: str | Path) -> str | None:
    """``"beir+manifest"``, ``"manifest"``, ``"beir"``, or None when `folder` is not a collection folder."""
    folder = Path(folder)
    beir, manifest = (folder / BEIR_CORPUS).is_file(), (folder / MANIFEST_NAME).is_file()
    return "beir+manifest" if beir and manifest else "manifest" if manifest else "beir" if beir else None


@dataclass
class FolderPlan:
    """What a collection folder holds and how it becomes splits, resolved from its file names (nothing read yet).

    Attributes:
        split_qrels: the qrels file of each split, in split order; with `folds` the one file cut into folds.
        queries: the query file of each split (the same spec for several splits when one file serves all).
        candidates: the candidate run of each split (the same spec for several when one run serves all).
        carve: a dev split is carved from train with `dev_fraction`.
    """

    folder: Path
    kind: str
    manifest: Manifest
    name: str
    task: str
    documents: FileSpec
    queries: dict[str, FileSpec]
    split_qrels: dict[str, FileSpec]
    candidates: dict[str, FileSpec] = field(default_factory=dict)
    folds: int | None = None
    filtered: bool = False
    dev_fraction: float = DEFAULT_DEV_FRACTION
    carve: bool = False
    measures: tuple[str, ...] = BEIR_MEASURES

    @property
    def splits(self) -> list[str]:
        """The split names a load gives, in order (before filtering's `-all` copies)."""
        names = ["train", "dev", "test", "all"] if self.folds else list(self.split_qrels)
        if self.carve:
            names.insert(names.index("train") + 1, "dev")
        return names

    def describe(self) -> dict:
        """A JSON-ready description: kind, task, files and splits, and one line saying it."""
        relative = _relative_to(self.folder)
        splits = self.splits
        if self.filtered:
            splits = splits + [f"{name}-all" for name in splits if name not in ("train", "all")]
        line = [f"{self.kind} folder, {self.task}", "splits " + ", ".join(self.splits)]
        if self.carve:
            line.append(f"dev carved from train ({self.dev_fraction:g})")
        if self.folds:
            line.append(f"{self.folds} folds")
        if self.candidates:
            line.append("candidate runs for " + ", ".join(self.candidates))
        if self.filtered:
            line.append("filtered")
        return {
            "kind": self.kind,
            "task": self.task,
            "documents": relative(self.documents.path),
            "queries": {split: relative(spec.path) for split, spec in self.queries.items()},
            "qrels": {split: relative(spec.path) for split, spec in self.split_qrels.items()},
            "candidates": {split: relative(spec.path) for split, spec in self.candidates.items()},
            "splits": splits,
            "folds": self.folds,
            "filtered": self.filtered,
            "dev_fraction": self.dev_fraction if self.carve else None,
            "measures": list(self.measures),
            "description": "; ".join(line),
        }


def plan_folder(folder: str | Path, *, dev_fraction: float | None = None) -> FolderPlan:
    """Resolve a collection folder's files and splits, checking that its manifest's keys fit together.

    Args:
        dev_fraction: overrides the manifest's `dev_fraction` (only used when there is train but no dev).

    Raises:
        FileNotFoundError: `folder` is missing or not a collection folder, or a BEIR folder lacks a file.
        ManifestError: keys that do not fit together (folds with several splits, candidates for an unknown split,
            a split named twice, answer selection without candidates, ...), naming the key.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder" if not folder.exists() else f"{folder}: not a folder")
    kind = folder_kind(folder)
    if kind is None:
        raise FileNotFoundError(
            f"{folder}: not a collection folder: it holds neither {BEIR_CORPUS} (BEIR layout) nor {MANIFEST_NAME} "
            "(a manifest naming the files); see docs/collections.md"
        )
    manifest = read_manifest(folder / MANIFEST_NAME) if "manifest" in kind else Manifest()
    beir = "beir" in kind
    where = f"{folder} ({MANIFEST_NAME})" if manifest.path else str(folder)

    documents = manifest.documents or (FileSpec(folder / BEIR_CORPUS, BEIR_CORPUS, "jsonl") if beir else None)
    if documents is None:
        raise manifest.error("documents", f"missing: name the documents file of {where} (JSONL, TSV or TREC SGML)")

    split_qrels = _beir_qrels(folder) if beir else {}
    split_qrels.update(manifest.split_qrels)
    split_qrels = dict(sorted(split_qrels.items(), key=lambda item: (_SPLIT_ORDER.get(item[0], 3), item[0])))
    folds = manifest.folds
    if manifest.qrels_file is not None and not folds:
        raise manifest.error(
            "qrels",
            "one qrels file for every query needs folds: K (k folds over the queries); otherwise name its split, "
            "e.g. qrels: {test: FILE}",
        )
    if folds:
        files = [manifest.qrels_file] if manifest.qrels_file else list(split_qrels.values())
        if len(files) != 1:
            found = "none" if not files else ", ".join(split_qrels)
            raise manifest.error(
                "folds", f"folds cut one qrels file into train/dev/test, but this collection has qrels for: {found}"
            )
        for key in ("split_queries", "split_candidates"):
            if getattr(manifest, key):
                short = key.split("_")[1]
                raise manifest.error(short, f"with folds the splits are made from one file: give one {short} file")
        split_qrels = {"all": files[0]}
    if not split_qrels:
        if manifest.path is None:
            raise FileNotFoundError(f"{folder / 'qrels'}: no <split>.tsv qrels files found")
        raise manifest.error("qrels", f"missing: name the qrels of each split of {where}, e.g. qrels: {{test: FILE}}")
    split_names = ["train", "dev", "test", "all"] if folds else list(split_qrels)

    queries_file = manifest.queries_file
    if queries_file is None and beir and (folder / BEIR_QUERIES).is_file():
        queries_file = FileSpec(folder / BEIR_QUERIES, BEIR_QUERIES, "jsonl")
    _known_splits(manifest, "queries", manifest.split_queries, split_names)
    queries: dict[str, FileSpec] = {}
    for split in split_names:
        spec = manifest.split_queries.get(split, queries_file)
        if spec is None:
            raise manifest.error(
                "queries", f"no queries for split {split!r} of {where}: name one file for all, or one per split"
            )
        queries[split] = spec

    # A dev split: given, made by folds, or carved from train.
    explicit_fraction = manifest.dev_fraction if manifest.has("dev_fraction") else None
    if explicit_fraction:
        if folds:
            raise manifest.error("dev_fraction", "folds make the dev split already; remove dev_fraction or folds")
        if "dev" in split_names:
            raise manifest.error(
                "dev_fraction", "split 'dev' would be named twice: the qrels give one, and dev_fraction would carve one"
            )
        if "train" not in split_names:
            raise manifest.error("dev_fraction", "there is no train split to carve a dev split from")
    fraction = next(f for f in (dev_fraction, explicit_fraction, DEFAULT_DEV_FRACTION) if f is not None)
    carve = not folds and "train" in split_names and "dev" not in split_names and fraction > 0

    candidates: dict[str, FileSpec] = {}
    if manifest.candidates_file or manifest.split_candidates:
        _known_splits(manifest, "candidates", manifest.split_candidates, split_names)
        for split in split_names:
            spec = manifest.split_candidates.get(split, manifest.candidates_file)
            if spec is None:
                given = ", ".join(manifest.split_candidates)
                raise manifest.error(
                    "candidates",
                    f"no candidate run for split {split!r} (runs given for {given}); every split needs one, "
                    "or give one run for all splits",
                )
            candidates[split] = spec
        if carve:
            candidates["dev"] = candidates["train"]
    task = manifest.task or (ANSWER_SELECTION if candidates else ADHOC)
    if task == ANSWER_SELECTION and not candidates:
        raise manifest.error(
            "task", "answer_selection re-ranks each query's given candidates: name them with candidates: {split: RUN}"
        )
    if task == ADHOC and candidates:
        raise manifest.error(
            "candidates",
            "candidate runs make a collection re-rank each query's given candidates (task answer_selection); "
            "task adhoc retrieves from the whole corpus: remove task: adhoc or the candidates",
        )
    if manifest.filtered:
        if not candidates:
            raise manifest.error(
                "filtered",
                "filtered keeps queries with a relevant and a non-relevant candidate: it needs candidate runs",
            )
        names = split_names + (["dev"] if carve else [])
        for split in names:
            if split not in ("train", "all") and f"{split}-all" in names:
                raise manifest.error(
                    "filtered", f"split '{split}-all' would be named twice: in qrels and as the unfiltered {split}"
                )
    measures = manifest.measures or (ANSWER_SELECTION_MEASURES if task == ANSWER_SELECTION else BEIR_MEASURES)
    return FolderPlan(
        folder=folder,
        kind=kind,
        manifest=manifest,
        name=manifest.name or folder.resolve().name,
        task=task,
        documents=documents,
        queries=queries,
        split_qrels=split_qrels,
        candidates=candidates,
        folds=folds,
        filtered=manifest.filtered,
        dev_fraction=fraction,
        carve=carve,
        measures=measures,
    )


def load_folder(
    folder: str | Path, *, fold: int | None = None, dev_fraction: float | None = None, name: str | None = None
) -> Collection:
    """Load a collection folder (BEIR layout and/or `collection.yaml`); see the module docstring for the rules.

    Args:
        fold: with `folds` in the manifest, the test fold (default 0); ignored otherwise. The number of folds is the
            manifest's: the fold rule is a property of the collection.
        dev_fraction: overrides the manifest's `dev_fraction`.
        name: overrides the collection's name.

    Raises:
        FileNotFoundError, ManifestError: as `plan_folder`.
        FormatError: a malformed line in any file, or a candidate that is not in the corpus (naming the run's line).
    """
    plan = plan_folder(folder, dev_fraction=dev_fraction)
    docs = {doc.doc_id: doc for doc in read_documents(plan.documents.path, plan.documents.format or "jsonl")}
    query_files: dict[Path, dict[str, Query]] = {}
    for spec in plan.queries.values():
        if spec.path not in query_files:
            read = read_queries(spec.path, spec.format or "jsonl", spec.fields)
            query_files[spec.path] = {query.query_id: query for query in read}
    runs = {spec.path: _read_candidates(spec.path, docs) for spec in dict.fromkeys(plan.candidates.values())}

    relative = _relative_to(plan.folder)
    notes = [f"read from {plan.folder} ({plan.kind} folder)", f"documents: {relative(plan.documents.path)}"]
    splits: dict[str, Split] = {}
    if plan.folds:
        spec = plan.split_qrels["all"]
        queries = query_files[plan.queries["all"].path]
        qrels = drop_unknown_qrels(read_qrels_any(spec.path, spec.format), queries, docs, str(spec.path))
        k, test_fold = plan.folds, 0 if fold is None else fold
        judged = {qrel.query_id for qrel in qrels}
        if len(judged) < k:  # name the files: "cannot make 5 folds from 0 queries" alone says not which
            raise FormatError(
                spec.path,
                None,
                f"at least {k} judged queries to make {k} folds (manifest 'folds'), found {len(judged)} that are "
                f"both in {relative(plan.queries['all'].path)} ({len(queries)} queries) and judged here",
            )
        splits = kfold_splits(queries, qrels, k, test_fold)
        notes.append(
            f"{k} folds over the {len(splits['all'].queries)} judged queries of {spec.path.name} ({spec.key}): "
            f"test = fold {test_fold}, dev = fold {(test_fold + 1) % k}, train = the rest; 'all' = every query"
        )
    else:
        for split, spec in plan.split_qrels.items():
            queries = query_files[plan.queries[split].path]
            qrels = drop_unknown_qrels(read_qrels_any(spec.path, spec.format), queries, docs, str(spec.path))
            judged = {qrel.query_id for qrel in qrels}
            splits[split] = Split({qid: q for qid, q in queries.items() if qid in judged}, qrels)
            notes.append(f"{split}: the {len(judged)} queries judged in {relative(spec.path)}")
    for split, part in splits.items():
        if split in plan.candidates:
            spec = plan.candidates[split]
            part.candidates = _split_candidates(runs[spec.path], part.queries, spec.path, split)
    if plan.carve and len(splits["train"].queries) < 2:
        notes.append(f"no dev split: train has {len(splits['train'].queries)} judged queries, too few to carve one")
    elif plan.carve:
        train, dev = carve_dev(splits["train"], plan.dev_fraction)
        order = list(splits)
        splits.update(train=train, dev=dev)
        order.insert(order.index("train") + 1, "dev")
        splits = {name: splits[name] for name in order}
        notes.append(
            f"dev carved from train: {len(dev.queries)} of {len(dev.queries) + len(train.queries)} queries "
            f"(dev_fraction {plan.dev_fraction:g}, chosen by a hash of the query id, independent of file order)"
        )
    if plan.candidates:
        notes.append(
            "candidates: each query's documents in its run ("
            + ", ".join(f"{split}: {relative(spec.path)}" for split, spec in plan.candidates.items())
            + "), in file order; BM25 and the re-rankers score exactly these"
        )
    if plan.filtered:
        kept = []
        for split in [name for name in splits if name != "train"]:
            whole = splits[split]
            splits[split] = _filtered(whole)
            if split != "all":
                splits[f"{split}-all"] = whole
            kept.append(f"{split} {len(splits[split].queries)} of {len(whole.queries)}")
        notes.append(
            "filtered: splits other than train keep only queries with a relevant and a non-relevant candidate "
            f"({', '.join(kept)} queries); '<split>-all' keeps every query"
        )
    return Collection(
        name=name or plan.name,
        task=plan.task,
        docs={} if plan.task == ANSWER_SELECTION else docs,
        splits=splits,
        measures=plan.measures,
        notes=notes,
    )


def _beir_qrels(folder: Path) -> dict[str, FileSpec]:
    qrels_dir = folder / "qrels"
    if not qrels_dir.is_dir():
        return {}
    return {path.stem: FileSpec(path, f"qrels/{path.name}", "beir") for path in sorted(qrels_dir.glob("*.tsv"))}


def _known_splits(manifest: Manifest, key: str, given: Mapping[str, FileSpec], splits: list[str]) -> None:
    for split in given:
        if split not in splits:
            raise manifest.error(
                f"{key}.{split}", f"no split {split!r}: the splits are those with qrels ({', '.join(splits)})"
            )


def _relative_to(folder: Path):
    def relative(path: Path) -> str:
        try:
            return str(path.relative_to(folder))
        except ValueError:
            return str(path)

    return relative


def _read_candidates(path: Path, docs: Mapping[str, Doc]) -> dict[str, list[Doc]]:
    """`{query_id: [Doc]}` from a TREC run, in file order; a document missing from the corpus is a FormatError."""
    candidates: dict[str, list[Doc]] = {}
    for entry in read_run(path):
        doc = docs.get(entry.doc_id)
        if doc is None:
            raise FormatError(
                path, _line_of(path, entry.query_id, entry.doc_id), "a document id of the corpus", entry.doc_id
            )
        candidates.setdefault(entry.query_id, []).append(doc)
    return candidates


def _line_of(path: Path, query_id: str, doc_id: str) -> int | None:
    # read_run keeps no line numbers; the error path looks the line up again rather than every read carrying them.
    for number, line in read_lines(path, "run file"):
        fields = line.split()
        if len(fields) == 6 and fields[0] == query_id and fields[2] == doc_id:
            return number
    return None


def _split_candidates(
    run: Mapping[str, list[Doc]], queries: Iterable[str], path: Path, split: str
) -> dict[str, list[Doc]]:
    query_ids = list(queries)
    lacking = [qid for qid in query_ids if qid not in run]
    if lacking:
        warn_data(
            f"{path}: {len(lacking)} of the {len(query_ids)} judged queries of split {split!r} have no candidates "
            f"(first: {lacking[0]}); they keep an empty candidate list and score 0"
        )
    return {qid: list(run.get(qid, ())) for qid in query_ids}


def _filtered(split: Split) -> Split:
    judged = split.qrels_by_query()
    candidates = split.candidates or {}

    def both(query_id: str) -> bool:
        labels = {judged.get(query_id, {}).get(doc.doc_id, 0) > 0 for doc in candidates.get(query_id, ())}
        return labels == {True, False}

    keep = [qid for qid in split.queries if both(qid)]
    kept: set[str] = set(keep)
    qrels: list[Qrel] = [r for r in split.qrels if r.query_id in kept]
    return Split({qid: split.queries[qid] for qid in keep}, qrels, {qid: candidates[qid] for qid in keep}, None)
