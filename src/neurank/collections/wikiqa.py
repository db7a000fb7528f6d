"""WikiQA (Yang, Yih and Meek, EMNLP 2015): the release's TSV files, read into an answer-selection `Collection`.

Ids follow the release's official `.ref` files, so results can be checked against them and against the paper's own
run files: ``query_id`` is the 1-based position of the question in its split's TSV and ``doc_id`` the 0-based
position of the sentence within its question, both as strings. The release's own QuestionID and SentenceID stay
reachable through `Split.original_ids`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from neurank.collections.collection import ANSWER_SELECTION, Collection, Split
from neurank.collections.errors import FormatError, warn_data
from neurank.collections.records import Doc, Qrel, Query
from neurank.collections.textio import read_lines

HEADER = ("QuestionID", "Question", "DocumentID", "DocumentTitle", "SentenceID", "Sentence", "Label")
SPLIT_FILES = {"train": "WikiQA-train.tsv", "dev": "WikiQA-dev.tsv", "test": "WikiQA-test.tsv"}
# The official zip unpacks into this folder; both it and its parent are accepted as the root.
RELEASE_FOLDER = "WikiQACorpus"


class WikiQARow(NamedTuple):
    """One data line of a WikiQA TSV file: a question paired with one candidate sentence."""

    question_id: str
    question: str
    document_id: str
    document_title: str
    sentence_id: str
    sentence: str
    label: int


def read_wikiqa_tsv(path: str | Path) -> list[WikiQARow]:
    """Read one WikiQA TSV file: a header line, then 7 tab-separated fields per row, Label 0 or 1.

    Fields are split on tabs only: double quotes are part of the text, never CSV quoting. CRLF endings, a BOM and
    non-UTF-8 bytes are handled by `read_lines`; blank lines are skipped. Rows with an empty Question or Sentence
    are kept (positions must line up with the `.ref` files) and reported in one `DataWarning`.

    A (QuestionID, SentenceID) pair given twice is refused, naming both lines: a repeated row would take a position
    in its question, shifting every later sentence's doc_id against the official `.ref` files (and the runs scored
    with them), so a warning would leave every later id of that question wrong.

    Raises:
        FormatError: a missing header, a row without exactly 7 fields, an empty id, a Label other than 0/1, or a
            (QuestionID, SentenceID) pair already given on an earlier line.
    """
    expected_fields = f"{len(HEADER)} tab-separated fields ({', '.join(HEADER)})"
    rows: list[WikiQARow] = []
    header_seen = False
    empty_lines: list[int] = []
    first_line: dict[tuple[str, str], int] = {}
    for number, line in read_lines(path, "WikiQA TSV file"):
        if not header_seen:
            if tuple(line.split("\t")) != HEADER:
                raise FormatError(path, number, "the header line " + "<TAB>".join(HEADER), line)
            header_seen = True
            continue
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(HEADER):
            raise FormatError(path, number, expected_fields, f"{len(fields)} field(s): {line}")
        question_id, question, document_id, title, sentence_id, sentence, label = fields
        for name, value in (("QuestionID", question_id), ("DocumentID", document_id), ("SentenceID", sentence_id)):
            if not value.strip():
                raise FormatError(path, number, f"a non-empty {name}", line)
        if label not in ("0", "1"):
            raise FormatError(path, number, "Label 0 or 1", label)
        if (question_id, sentence_id) in first_line:
            where = first_line[question_id, sentence_id]
            expected = f"a new SentenceID for QuestionID {question_id}, but {sentence_id} was already on line {where}"
            raise FormatError(path, number, expected + " (a repeated row shifts every later sentence id)", line)
        first_line[question_id, sentence_id] = number
        if not question.strip() or not sentence.strip():
            empty_lines.append(number)
        rows.append(WikiQARow(question_id, question, document_id, title, sentence_id, sentence, int(label)))
    if not header_seen:
        raise FormatError(path, 1, "the header line " + "<TAB>".join(HEADER), "an empty file")
    if empty_lines:
        warn_data(
            f"{path}: {len(empty_lines)} row(s) with an empty Question or Sentence (first at line {empty_lines[0]}); "
            "kept them with empty text"
        )
    return rows


def find_wikiqa_dir(root: str | Path) -> Path:
    """The folder holding the three WikiQA TSV files: `root` itself or `root/WikiQACorpus` (the official zip)."""
    root = Path(root)
    for folder in (root, root / RELEASE_FOLDER):
        if all((folder / name).is_file() for name in SPLIT_FILES.values()):
            return folder
    missing = [name for name in SPLIT_FILES.values() if not (root / name).is_file()]
    raise FileNotFoundError(
        f"{root}: WikiQA file(s) not found: {', '.join(missing)} (looked in {root} and {root / RELEASE_FOLDER})"
    )


def load_wikiqa(root: str | Path) -> Collection:
    """Load WikiQA with the standard answer-selection protocol.

    Splits: ``train`` (every question), ``dev`` and ``test`` (only questions with at least one correct and one
    incorrect sentence, as in the paper and the official ``*-filtered.ref`` files), and ``dev-all`` / ``test-all``
    (every question). Each split carries its candidates and qrels for every candidate, label-0 rows included.

    Args:
        root: a folder holding ``WikiQA-{train,dev,test}.tsv``, directly or in ``WikiQACorpus/``.
    """
    folder = find_wikiqa_dir(root)
    questions = {name: _group_by_question(read_wikiqa_tsv(folder / file)) for name, file in SPLIT_FILES.items()}
    filtered = {
        name: {query_id: group for query_id, group in questions[name].items() if _has_both_labels(group)}
        for name in ("dev", "test")
    }
    splits = {
        "train": _make_split(questions["train"]),
        "dev": _make_split(filtered["dev"]),
        "test": _make_split(filtered["test"]),
        "dev-all": _make_split(questions["dev"]),
        "test-all": _make_split(questions["test"]),
    }
    kept = ", ".join(f"{name} {len(filtered[name])} of {len(questions[name])}" for name in ("dev", "test"))
    notes = [
        "ids follow the official WikiQA .ref files: query_id is the 1-based position of the question in its "
        "split's TSV (so ids restart at 1 in every split), doc_id the 0-based position of the sentence within its "
        "question; Split.original_ids maps them back to QuestionID and SentenceID",
        "'dev' and 'test' keep only questions with at least one correct and one incorrect sentence (the WikiQA "
        f"paper's protocol, equal to WikiQA-{{dev,test}}-filtered.ref): {kept} questions; 'dev-all', 'test-all' "
        "and 'train' keep every question",
        "qrels hold every candidate sentence, label 0 included, like the .ref files",
    ]
    return Collection(
        name="wikiqa",
        task=ANSWER_SELECTION,
        docs={},
        splits=splits,
        measures=("AP", "RR", "nDCG@10"),
        notes=notes,
    )


def _group_by_question(rows: list[WikiQARow]) -> dict[str, list[WikiQARow]]:
    """`{query_id: rows}` with query_id the 1-based position of the question's first row."""
    grouped: dict[str, list[WikiQARow]] = {}
    for row in rows:
        grouped.setdefault(row.question_id, []).append(row)
    return {str(position): group for position, group in enumerate(grouped.values(), start=1)}


def _has_both_labels(group: list[WikiQARow]) -> bool:
    return {row.label for row in group} == {0, 1}


def _make_split(questions: dict[str, list[WikiQARow]]) -> Split:
    queries: dict[str, Query] = {}
    qrels: list[Qrel] = []
    candidates: dict[str, list[Doc]] = {}
    original_ids: dict[str, tuple[str, dict[str, str]]] = {}
    for query_id, group in questions.items():
        queries[query_id] = Query(query_id, group[0].question)
        candidates[query_id] = [Doc(str(i), row.sentence) for i, row in enumerate(group)]
        qrels.extend(Qrel(query_id, str(i), row.label) for i, row in enumerate(group))
        original_ids[query_id] = (group[0].question_id, {str(i): row.sentence_id for i, row in enumerate(group)})
    return Split(queries, qrels, candidates, original_ids)
