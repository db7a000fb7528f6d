"""Writing a loaded `Collection` as a collection folder: BEIR layout, candidate runs and a `collection.yaml`.

`export_beir(load_collection("wikiqa"), "wikiqa-beir")` writes a folder that `load_collection("./wikiqa-beir")`
reads back into the same splits, queries, qrels and candidates, so BM25 and the re-rankers give the same numbers on
both. It is what a user's own answer-selection data looks like when it follows docs/collections.md.

What is written:

- `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv` (BEIR; every judgement of every exported split);
- answer selection: `runs/<split>.run`, each query's candidates in their order (TREC run, rank = position, score 0:
  the list, not a ranking), and ids that are unique across splits: the original ids where the reader kept them
  (WikiQA's QuestionID and SentenceID), else the split name before the query id;
- a filtered collection (splits `X` and `X-all`, as WikiQA's dev/dev-all): `X-all` is exported as `X` with
  `filtered: true` in the manifest, which makes `X` filtered and `X-all` whole again on loading; `qrels-filtered/X.tsv`
  holds the judgements of the filtered split, for `neurank evaluate`;
- a folded collection (`folds=K`): one `qrels/all.tsv` and `folds: K`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from neurank.collections.beir import QRELS_HEADER
from neurank.collections.collection import ANSWER_SELECTION, Collection, Split
from neurank.collections.manifest import MANIFEST_NAME
from neurank.collections.records import Doc, Qrel


def export_beir(
    collection: Collection, folder: str | Path, *, folds: int | None = None, name: str | None = None
) -> dict:
    """Write `collection` as a collection folder at `folder`, which must not exist (it is never overwritten).

    The folder is built beside `folder` under a temporary name and renamed into place when complete.

    Args:
        folds: the collection is cut into this many folds (Cranfield, CISI): its `all` split is written as one qrels
            file and the manifest says `folds`.
        name: the name the manifest gives the collection (default: none, so the folder's name is used).

    Returns:
        What was written: folder, splits, queries, documents, filtered splits.
    """
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; choose a new folder (nothing was written)")
    answer_selection = collection.task == ANSWER_SELECTION
    filtered = [split for split in collection.splits if f"{split}-all" in collection.splits]
    if folds:
        exported = {"all": collection.split("all")}
    else:
        derived = {f"{split}-all" for split in filtered}
        exported = {
            split_name: collection.splits[f"{split_name}-all"] if split_name in filtered else split
            for split_name, split in collection.splits.items()
            if split_name not in derived
        }
    query_ids, doc_ids = _new_ids(exported, answer_selection)

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        corpus = _corpus(collection, exported, doc_ids) if answer_selection else dict(collection.docs)
        _jsonl(tmp / "corpus.jsonl", ({"_id": doc_id, "title": "", "text": doc.text} for doc_id, doc in corpus.items()))
        queries: dict[str, str] = {}
        for split_name, split in exported.items():
            for query_id, query in split.queries.items():
                queries.setdefault(query_ids[split_name, query_id], query.text)
        _jsonl(tmp / "queries.jsonl", ({"_id": query_id, "text": text} for query_id, text in queries.items()))
        for split_name, split in exported.items():
            _qrels(tmp / "qrels" / f"{split_name}.tsv", split.qrels, split_name, query_ids, doc_ids)
            if answer_selection:
                _candidates(tmp / "runs" / f"{split_name}.run", split, split_name, query_ids, doc_ids)
        for split_name in filtered:
            qrels = collection.splits[split_name].qrels
            _qrels(tmp / "qrels-filtered" / f"{split_name}.tsv", qrels, split_name, query_ids, doc_ids)
        manifest = _manifest(collection, exported, filtered, folds, name)
        (tmp / MANIFEST_NAME).write_text(manifest, encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the folder is an ordinary one
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "folder": str(folder),
        "splits": list(exported),
        "queries": len(queries),
        "documents": len(corpus),
        "filtered": filtered,
    }


def _new_ids(
    splits: dict[str, Split], answer_selection: bool
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str, str], str]]:
    """`(split, query_id) -> id` and `(split, query_id, doc_id) -> id`, unique across splits."""
    texts: dict[str, str] = {}
    clash = False
    for split in splits.values():
        for query_id, query in split.queries.items():
            clash = clash or texts.setdefault(query_id, query.text) != query.text
    query_ids: dict[tuple[str, str], str] = {}
    doc_ids: dict[tuple[str, str, str], str] = {}
    for name, split in splits.items():
        judged = split.qrels_by_query()
        for query_id in split.queries:
            original = (split.original_ids or {}).get(query_id)
            if original is not None:
                query_ids[name, query_id] = original[0]
            else:
                query_ids[name, query_id] = f"{name}-{query_id}" if clash or answer_selection else query_id
            if not answer_selection:
                continue
            listed = [doc.doc_id for doc in (split.candidates or {}).get(query_id, ())]
            for doc_id in dict.fromkeys(listed + list(judged.get(query_id, ()))):
                mapped = original[1].get(doc_id) if original is not None else None
                doc_ids[name, query_id, doc_id] = mapped or f"{query_ids[name, query_id]}-{doc_id}"
    return query_ids, doc_ids


def _corpus(
    collection: Collection, splits: dict[str, Split], doc_ids: dict[tuple[str, str, str], str]
) -> dict[str, Doc]:
    corpus: dict[str, Doc] = {}
    for name, split in splits.items():
        for query_id, docs in (split.candidates or {}).items():
            for doc in docs:
                new_id = doc_ids[name, query_id, doc.doc_id]
                first = corpus.setdefault(new_id, doc)
                if first.text != doc.text:
                    raise ValueError(f"{collection.name}: document id {new_id} names two different texts")
    return corpus


def _jsonl(path: Path, objects: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for obj in objects:
            handle.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _qrels(path: Path, qrels: Iterable[Qrel], split: str, query_ids: dict, doc_ids: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\t".join(QRELS_HEADER) + "\n")
        for qrel in qrels:
            doc_id = doc_ids.get((split, qrel.query_id, qrel.doc_id), qrel.doc_id)
            handle.write(f"{query_ids[split, qrel.query_id]}\t{doc_id}\t{qrel.relevance}\n")


def _candidates(path: Path, split: Split, name: str, query_ids: dict, doc_ids: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for query_id, docs in (split.candidates or {}).items():
            for rank, doc in enumerate(docs, start=1):
                handle.write(
                    f"{query_ids[name, query_id]} Q0 {doc_ids[name, query_id, doc.doc_id]} {rank} 0 candidates\n"
                )


def _manifest(
    collection: Collection, splits: dict[str, Split], filtered: list[str], folds: int | None, name: str | None
) -> str:
    lines = [
        f"# {collection.name} as a collection folder, written by neurank.collections.export.export_beir.",
        "# corpus.jsonl, queries.jsonl and qrels/<split>.tsv are the BEIR layout; this file adds what BEIR lacks.",
        *([f"name: {json.dumps(name)}"] if name else []),
        f"task: {collection.task}",
    ]
    if collection.task == ANSWER_SELECTION:
        lines.append("# Each query's candidates (rank = position in the list; the scores are not a ranking).")
        lines.append("candidates:")
        lines += [f"  {split}: runs/{split}.run" for split in splits]
    if filtered:
        lines.append(f"# Evaluate {', '.join(filtered)} on the queries with a relevant and a non-relevant candidate")
        lines.append(
            f"# ({', '.join(f'{split}-all' for split in filtered)}: every query); qrels-filtered/ holds their qrels."
        )
        lines.append("filtered: true")
    if folds:
        lines.append(f"folds: {folds}")
    elif "train" in splits and "dev" not in splits:
        lines.append("# The collection has no dev split: none is carved from train on loading.")
        lines.append("dev_fraction: 0")
    lines.append(f"measures: [{', '.join(collection.measures)}]")
    return "\n".join(lines) + "\n"
