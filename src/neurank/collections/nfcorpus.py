"""NFCorpus (Boteva et al., ECIR 2016) from its original release, read into an ad-hoc `Collection`.

The release holds ``{split}.docs`` (``ID<TAB>TEXT``), ``{split}.{query set}.queries`` (``ID<TAB>TEXT``) and
``{split}.{levels}.qrel`` (TREC qrels) for the splits train/dev/test. Its text was pre-processed by the authors
(lowercased, stop words and punctuation removed, numbers replaced by ``num``). Every split's docs file holds the
documents judged for that split; the files overlap, and the document pool here is their union.
"""

from __future__ import annotations

from pathlib import Path

from neurank.collections.collection import ADHOC, Collection, Split, drop_unknown_qrels
from neurank.collections.errors import FormatError, warn_data
from neurank.collections.records import Doc, Query
from neurank.collections.textio import read_lines, require_file
from neurank.collections.trec import read_qrels

SPLITS = ("train", "dev", "test")
QUERY_SETS = ("titles", "all", "vid-titles", "vid-desc", "nontopic-titles")
QRELS_SETS = {
    "2-1-0": "2 = direct citation link, 1 = indirect link; the paper's setting",
    "3-2-1": "3 = direct citation link, 2 = indirect link, 1 = marginally relevant",
}


def read_nfcorpus_docs(path: str | Path) -> list[Doc]:
    """Read a ``*.docs`` file: one ``ID<TAB>TEXT`` document per line, surrounding whitespace stripped."""
    return [Doc(doc_id, text) for doc_id, text in _read_id_text(path, "NFCorpus docs file")]


def read_nfcorpus_queries(path: str | Path) -> list[Query]:
    """Read a ``*.queries`` file: one ``ID<TAB>TEXT`` query per line, surrounding whitespace stripped."""
    return [Query(query_id, text) for query_id, text in _read_id_text(path, "NFCorpus queries file")]


def load_nfcorpus(root: str | Path, *, queries: str = "titles", qrels: str = "2-1-0") -> Collection:
    """Load NFCorpus with splits train/dev/test over the union of the ``*.docs`` files that exist.

    A split whose query file is missing (``train.all.queries`` in a partial copy) is left out with a `DataWarning`.
    Qrels naming documents without text (train, when ``train.docs`` is missing) are dropped with one `DataWarning`
    per file; qrels of queries outside a partial query set (``vid-*``, ``nontopic-titles``) are left out silently,
    since that is what choosing the set means.

    Args:
        root: the release folder.
        queries: the query set: ``titles`` (all queries), ``all`` (title and page text), ``vid-titles``,
            ``vid-desc`` or ``nontopic-titles``.
        qrels: the relevance levels: ``2-1-0`` (the paper's) or ``3-2-1`` (adds marginal relevance).
    """
    if queries not in QUERY_SETS:
        raise ValueError(f"unknown NFCorpus query set {queries!r}; choose from {', '.join(QUERY_SETS)}")
    if qrels not in QRELS_SETS:
        raise ValueError(f"unknown NFCorpus qrels {qrels!r}; choose from {', '.join(QRELS_SETS)}")
    root = Path(root)
    notes = [
        f"queries: {{split}}.{queries}.queries; qrels: {{split}}.{qrels}.qrel ({QRELS_SETS[qrels]})",
        "text was pre-processed by the dataset authors: lowercased, stop words and punctuation removed, "
        "numbers replaced by 'num'",
    ]

    docs_files = [root / f"{split}.docs" for split in SPLITS if (root / f"{split}.docs").is_file()]
    if not docs_files:
        raise FileNotFoundError(f"{root}: no NFCorpus docs file found (expected train.docs, dev.docs, test.docs)")
    docs = _union_docs(docs_files)
    missing_docs = [f"{split}.docs" for split in SPLITS if root / f"{split}.docs" not in docs_files]
    if missing_docs:
        notes.append(
            f"{', '.join(missing_docs)} missing: documents are the union of "
            f"{', '.join(p.name for p in docs_files)} ({len(docs)} documents)"
        )

    splits: dict[str, Split] = {}
    for split in SPLITS:
        query_path = root / f"{split}.{queries}.queries"
        if not query_path.is_file():
            warn_data(f"{query_path}: not found; NFCorpus split {split!r} left out")
            notes.append(f"{split} left out: {query_path.name} is missing")
            continue
        split_queries = {q.query_id: q for q in read_nfcorpus_queries(query_path)}
        qrels_path = require_file(root / f"{split}.{qrels}.qrel", "NFCorpus qrels file")
        judged = [r for r in read_qrels(qrels_path) if r.query_id in split_queries]
        kept = drop_unknown_qrels(judged, None, docs, source=str(qrels_path))
        if len(kept) < len(judged):
            notes.append(
                f"{split}: dropped {len(judged) - len(kept)} of {len(judged)} qrels naming documents without text"
            )
        splits[split] = Split(queries=split_queries, qrels=kept)
    if not splits:
        raise FileNotFoundError(f"{root}: no NFCorpus query files *.{queries}.queries found")
    return Collection(
        name="nfcorpus", task=ADHOC, docs=docs, splits=splits, measures=("nDCG@10", "AP", "P@10"), notes=notes
    )


def _read_id_text(path: str | Path, what: str) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    empty_lines: list[int] = []
    for number, line in read_lines(path, what):
        if not line.strip():
            continue
        record_id, tab, text = line.partition("\t")
        if not tab or not record_id.strip():
            raise FormatError(path, number, "ID<TAB>TEXT", line)
        # Every line of the release's *.docs files ends with a space.
        text = text.strip()
        if not text:
            empty_lines.append(number)
        records.append((record_id.strip(), text))
    if empty_lines:
        warn_data(f"{path}: {len(empty_lines)} line(s) with empty text (first at line {empty_lines[0]}); kept them")
    return records


def _union_docs(paths: list[Path]) -> dict[str, Doc]:
    """Merge docs files; an id seen again must have the same text, else the first text is kept (one warning)."""
    docs: dict[str, Doc] = {}
    conflicts: list[str] = []
    for path in paths:
        for doc in read_nfcorpus_docs(path):
            first = docs.setdefault(doc.doc_id, doc)
            if first.text != doc.text:
                conflicts.append(f"{doc.doc_id} in {path.name}")
    if conflicts:
        warn_data(
            f"{paths[0].parent}: {len(conflicts)} document id(s) repeated with different text "
            f"(first: {conflicts[0]}); kept the first text"
        )
    return docs
