r"""Write a registered collection as a collection folder (BEIR layout + candidate runs + collection.yaml), and check
that the folder gives the same collection and the same BM25 numbers as the registered name.

    python benchmarks/export_beir.py wikiqa ../wikiqa-beir --data-dir ../shared/data [--check]

The folder is what a user's own answer-selection data looks like when it follows docs/collections.md: for WikiQA,
corpus.jsonl (the candidate sentences, SentenceID as id), queries.jsonl (QuestionID), qrels/{train,dev,test}.tsv
(every question), qrels-filtered/{dev,test}.tsv (the questions with a correct and an incorrect sentence, the
official *-filtered.ref sets), runs/{train,dev,test}.run (each question's candidate sentences, in order) and a
collection.yaml (task answer_selection, the candidate runs, filtered: true). An existing folder is never
overwritten.

With --check, the folder is loaded again and compared with the registered collection, split by split (queries,
judgements, candidates in order, through the id mapping), then BM25 is run on every split of both and evaluated with
the collection's measures; it prints both and exits non-zero if anything differs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from neurank.collections import load_collection
from neurank.collections.export import export_beir
from neurank.collections.registry import REGISTRY, is_folded
from neurank.evaluation import evaluate
from neurank.retrieval import bm25_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    default_data = os.environ.get("NEURANK_DATA", str(ROOT.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("collection", choices=sorted(REGISTRY), help="the registered collection to write")
    parser.add_argument("output", type=Path, help="the folder to create (must not exist)")
    parser.add_argument("--data-dir", type=Path, default=Path(default_data), help="holds the registered collection")
    parser.add_argument("--folds", type=int, default=5, help="folds of a collection without splits (Cranfield, CISI)")
    parser.add_argument("--name", help="the name collection.yaml gives it (default: the folder's name)")
    parser.add_argument("--check", action="store_true", help="load the folder again and compare with the registered")
    args = parser.parse_args()

    folds = args.folds if is_folded(args.collection) else None
    started = time.perf_counter()
    registered = load_collection(args.collection, args.data_dir, folds=folds)
    try:
        written = export_beir(registered, args.output, folds=folds, name=args.name)
    except FileExistsError as error:
        sys.exit(f"error: {error}")
    print(
        f"wrote {args.collection} to {written['folder']} in {time.perf_counter() - started:.1f} s: "
        f"{written['documents']} documents, {written['queries']} queries, splits {', '.join(written['splits'])}"
        + (f", filtered {', '.join(written['filtered'])}" if written["filtered"] else "")
    )
    if args.check:
        sys.exit(0 if check(registered, args.output, folds) else 1)


def check(registered, folder: Path, folds: int | None) -> bool:
    """Compare the folder, loaded again, with the registered collection; print BM25 on every split of both."""
    started = time.perf_counter()
    exported = load_collection(folder, folds=folds)
    print(f"loaded {folder} in {time.perf_counter() - started:.1f} s")
    same = list(registered.splits) == list(exported.splits)
    if not same:
        print(f"splits differ: {list(registered.splits)} vs {list(exported.splits)}")
        return False
    measures = list(registered.measures)
    print(f"{'split':<10} {'queries':>7}  " + "  ".join(f"{m + ' reg':>12} {m + ' folder':>12}" for m in measures))
    for name in registered.splits:
        mine, theirs = registered.split(name), exported.split(name)
        if not _same_split(mine, theirs):
            print(f"{name}: queries, judgements or candidates differ")
            same = False
            continue
        if not any(q.relevance > 0 for q in mine.qrels):
            continue
        ours = evaluate(bm25_run(registered, name), mine.qrels, measures)
        folder_values = evaluate(bm25_run(exported, name), theirs.qrels, measures)
        cells = "  ".join(f"{ours[m]:>12.4f} {folder_values[m]:>12.4f}" for m in measures)
        print(f"{name:<10} {len(mine.queries):>7}  {cells}")
        same = same and all(abs(ours[m] - folder_values[m]) < 1e-12 for m in measures)
    print("same collection and same BM25 numbers" if same else "DIFFERENT")
    return same


def _same_split(mine, theirs) -> bool:
    """Equal up to the renaming of ids: query texts, judgements and candidate texts, in order."""
    if [q.text for q in mine.queries.values()] != [q.text for q in theirs.queries.values()]:
        return False
    renamed = dict(zip(mine.queries, theirs.queries, strict=True))
    mine_qrels = sorted((renamed[r.query_id], r.relevance) for r in mine.qrels)
    if mine_qrels != sorted((r.query_id, r.relevance) for r in theirs.qrels):
        return False
    if mine.candidates is None:
        return theirs.candidates is None
    return all(
        [d.text for d in docs] == [d.text for d in (theirs.candidates or {}).get(renamed[qid], ())]
        for qid, docs in mine.candidates.items()
    )


if __name__ == "__main__":
    main()
