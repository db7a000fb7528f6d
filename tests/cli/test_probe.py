"""The probe of issue 22 as tests: every command over a table of bad inputs, in-process.

Each row of `CASES` is one command line run in a fresh working folder that holds the tiny WikiQA collection
(`data/wikiqa`, from tests/conftest.py) and whatever the row's setup writes. The test asserts

- the exit status (2 for a user's mistake, 0 where the input is accepted, with or without a warning),
- that the message (stderr and warnings together) holds the row's fragments, which name the file, line or key,
- that no traceback reached the user (an exception escaping `main` fails the row with its type),
- that no file or folder of the working folder changed: same paths, same bytes, same modes (`snapshot`), except the
  outputs an accepted row is meant to write (`creates`).

Every row says whether the expected outcome is an error or a warning, and why (`why`): that column is the table the
issue asks for. Rows that fail because of code another helper owns are `xfail(strict=True)` with the owner in the
reason, so they turn into failures (to be un-marked) as soon as the fix lands.

Permission rows (a read-only output folder, a data folder without read permission, a read-only file) need a user
that file modes apply to: root ignores them, and the tests run as root here. They run `python -m neurank.cli` in a
subprocess as `nobody`, in a world-traversable temporary folder outside pytest's private tmp_path; as a non-root
user they run directly; they are skipped when neither is possible.

Run: `.venv/bin/python -m pytest -q tests/cli/test_probe.py` (`-m "not slow"` leaves out the subprocess rows).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
import yaml

from neurank.cli import main
from neurank.cli._common import err_console

_SPEC = importlib.util.spec_from_file_location(
    "collection_folders", Path(__file__).parents[1] / "collections" / "conftest.py"
)
assert _SPEC is not None and _SPEC.loader is not None
folders = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(folders)

WIKIQA = "data/wikiqa"
HEADER = "QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel"
HUGE = str(2**70)  # does not fit the C long of trec_eval / pytrec_eval


# ---------------------------------------------------------------------------------------------------------- snapshot


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under `root` (relative), with its kind, mode and, for files, a digest of the bytes."""
    entries: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISREG(info.st_mode):
                entries[key] = ("file", stat.S_IMODE(info.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                entries[key] = ("dir" if stat.S_ISDIR(info.st_mode) else "other", stat.S_IMODE(info.st_mode), None)
    return entries


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> dict[str, str]:
    """What differs between two snapshots: `{path: "added" | "removed" | "changed"}`."""
    out = {key: "removed" for key in before.keys() - after.keys()}
    out.update({key: "added" for key in after.keys() - before.keys()})
    out.update({key: "changed" for key in before.keys() & after.keys() if before[key] != after[key]})
    return out


def run_in_process(capsys, argv: Sequence[str]) -> tuple[int | str, str, str]:
    """`neurank ARGV` through `neurank.cli.main`: (exit status, stdout, stderr with the warnings as printed).

    An exception escaping `main` is what a user sees as a traceback; it comes back as the status string
    "traceback: TYPE: message" so that the row fails naming it.
    """
    status: int | str
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main([str(a) for a in argv])
            status = 0
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except Exception as error:  # noqa: BLE001 - the point is to report any of them
            status = f"traceback: {type(error).__name__}: {error}"
    captured = capsys.readouterr()
    err = captured.err + "".join(f"warning: {w.message}\n" for w in caught if _is_data_warning(w))
    return status, captured.out, err


def _is_data_warning(record: warnings.WarningMessage) -> bool:
    # What main prints (DataWarning and its kind); library deprecations are not the user's concern.
    return issubclass(record.category, UserWarning) and not issubclass(record.category, DeprecationWarning)


def squash(text: str) -> str:
    # rich wraps long lines (sometimes inside a path); compare without any whitespace.
    return "".join(text.split())


# ------------------------------------------------------------------------------------------------------------ setups

Setup = Callable[[Path], None]


def write(relative: str, content: str | bytes) -> Setup:
    def setup(work: Path) -> None:
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return setup


def mkdir(relative: str, *files: str) -> Setup:
    """A folder (with small files in it) that the user made: nothing neurank may remove."""

    def setup(work: Path) -> None:
        (work / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            (work / relative / name).write_text(f"the user's {name}\n", encoding="utf-8")

    return setup


def beir(relative: str = "data/mini", splits: dict[str, list[str]] | None = None) -> Setup:
    """The tests/collections BEIR folder (18 documents, 6 queries; train, dev, test qrels)."""
    return lambda work: folders.beir_folder(work / relative, splits) and None


def edit(relative: str, change: Callable[[str], str]) -> Setup:
    def setup(work: Path) -> None:
        path = work / relative
        path.write_bytes(change(path.read_bytes().decode("utf-8")).encode("utf-8"))

    return setup


def edit_bytes(relative: str, change: Callable[[bytes], bytes]) -> Setup:
    def setup(work: Path) -> None:
        path = work / relative
        path.write_bytes(change(path.read_bytes()))

    return setup


def wikiqa_line(number: int, change: Callable[[str], str], split: str = "train") -> Setup:
    """Replace line `number` (1-based, the header is line 1) of the tiny WikiQA split with `change(line)`."""

    def apply(text: str) -> str:
        lines = text.split("\r\n")
        lines[number - 1] = change(lines[number - 1])
        return "\r\n".join(lines)

    return edit(f"{WIKIQA}/WikiQA-{split}.tsv", apply)


def duplicate_wikiqa_row(number: int, split: str = "test") -> Setup:
    def apply(text: str) -> str:
        lines = text.split("\r\n")
        return "\r\n".join(lines[:number] + [lines[number - 1]] + lines[number:])

    return edit(f"{WIKIQA}/WikiQA-{split}.tsv", apply)


def edit_checkpoint(change: Callable[[dict], None], relative: str = "run/best.pt") -> Setup:
    """Load a checkpoint, change it in place, save it back the way torch does (no new fingerprints)."""

    def setup(work: Path) -> None:
        path = work / relative
        payload = torch.load(path, map_location="cpu", weights_only=False)
        change(payload)
        torch.save(payload, path)

    return setup


def nan_weights(payload: dict) -> None:
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], math.nan)


def shuffled_vocab(payload: dict) -> None:
    tokens = payload["vocab"]["tokens"]
    payload["vocab"]["tokens"] = tokens[:2] + list(reversed(tokens[2:]))


def config_yaml(relative: str = "tiny.yaml", **changes: dict) -> Setup:
    """The tiny training config (tests/conftest.py's `tiny_config`, data in ./data) as YAML, with sections changed."""

    def setup(work: Path) -> None:
        config = {
            "model": "match_pyramid",
            "model_config": {
                "conv_channels": [4],
                "kernel_sizes": [[3, 3]],
                "pool_size": [2, 4],
                "interactions": ["cosine", "exact"],
            },
            "data": {"collection": "wikiqa", "data_dir": "data", "max_doc_len": 20},
            "embeddings": {"source": "random", "dim": 8},
            "train": {"loss": "softmax", "negatives": 2, "batch_size": 2, "epochs": 1, "seed": 7, "device": "cpu"},
        }
        for section, values in changes.items():
            config[section] = {**config.get(section, {}), **values}
        (work / relative).write_text(yaml.safe_dump(config), encoding="utf-8")

    return setup


def neurank_setup(*argv: str) -> Setup:
    """Run a neurank command that must succeed (in the working folder) as part of a row's setup."""

    def setup(work: Path) -> None:
        try:
            main(list(argv))
        except SystemExit as exit_:
            assert not exit_.code, f"setup command {argv} failed with {exit_.code}"

    return setup


RUN = "q1 Q0 d1 1 2.5 probe\nq1 Q0 d2 2 1.5 probe\nq2 Q0 d1 1 0.5 probe\n"
QRELS = "q1 0 d1 1\nq1 0 d2 0\nq2 0 d1 1\n"
GOOD = (write("run.txt", RUN), write("qrels.txt", QRELS))
USER_RUN = "1 Q0 0 1 1.0 myrun\n"  # a run the user made (tag myrun): no command may replace it without --overwrite


# -------------------------------------------------------------------------------------------------------------- table


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: the command line, what to set up, the expected exit status and message fragments, and why."""

    argv: tuple[str, ...]
    code: int
    message: tuple[str, ...]
    outcome: str  # "error", "warning" or "accepted"
    why: str
    setup: tuple[Setup, ...] = ()
    trained: bool = False  # needs the tiny run folder ./run (best.pt, last.pt, metrics.jsonl)
    creates: tuple[str, ...] = ()  # outputs an accepted row may add or replace

    def __post_init__(self):
        assert self.outcome in ("error", "warning", "accepted"), self.outcome
        assert (self.code == 0) == (self.outcome != "error"), "errors exit 2; accepted input and warnings exit 0"


def case(
    id: str,
    argv: str | Sequence[str],
    code: int,
    message: str | Sequence[str],
    outcome: str,
    why: str,
    *setup: Setup,
    trained: bool = False,
    creates: Sequence[str] = (),
    xfail: str | None = None,
    slow: bool = False,
):
    args = tuple(argv.split()) if isinstance(argv, str) else tuple(argv)
    fragments = (message,) if isinstance(message, str) else tuple(message)
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    if slow or trained:
        marks.append(pytest.mark.slow)
    return pytest.param(
        Case(args, code, fragments, outcome, why, tuple(setup), trained, tuple(creates)), id=id, marks=marks
    )


E, W, A = "error", "warning", "accepted"

CASES = [
    # ----------------------------------------------------------------------------------------------- collections
    case("collections/unknown-name", "collections nosuch --data-dir data", 2, "nosuch", E,
         "a name that is neither registered nor a folder: nothing to describe"),
    case("collections/data-dir-missing", "collections wikiqa --data-dir nowhere", 2, "nowhere", E,
         "the collection's files cannot be found"),
    case("collections/data-dir-is-a-file", "collections wikiqa --data-dir data.txt", 2, "data.txt", E,
         "a file where the data folder should be", write("data.txt", "x\n")),
    case("collections/wikiqa-file-is-a-directory", "collections wikiqa --data-dir data", 2,
         "WikiQA-dev.tsv", E, "a folder stands where a split file must be",
         lambda work: (os.remove(work / WIKIQA / "WikiQA-dev.tsv"), os.mkdir(work / WIKIQA / "WikiQA-dev.tsv"))),
    case("collections/wikiqa-empty-file", "collections wikiqa --data-dir data", 2,
         ["WikiQA-dev.tsv:1", "header"], E, "an empty split has no header: a truncated download",
         write(f"{WIKIQA}/WikiQA-dev.tsv", "")),
    case("collections/wikiqa-wrong-header", "collections wikiqa --data-dir data", 2,
         ["WikiQA-train.tsv:1", "header"], E, "another file under the split's name", wikiqa_line(1, str.upper)),
    case("collections/wikiqa-six-columns", "collections wikiqa --data-dir data", 2,
         ["WikiQA-train.tsv:3", "7 tab-separated fields"], E,
         "a row without its label: every later field would shift",
         wikiqa_line(3, lambda line: line.rsplit("\t", 1)[0])),
    case("collections/wikiqa-label-2", "collections wikiqa --data-dir data", 2,
         ["WikiQA-train.tsv:2", "Label 0 or 1"], E, "a label outside 0/1 is not a WikiQA judgement",
         wikiqa_line(2, lambda line: line[:-1] + "2")),
    case("collections/wikiqa-huge-label", "collections wikiqa --data-dir data", 2,
         ["WikiQA-train.tsv:2", "Label 0 or 1"], E, "a huge integer is no label either",
         wikiqa_line(2, lambda line: line[:-1] + HUGE)),
    case("collections/wikiqa-empty-sentence-id", "collections wikiqa --data-dir data", 2,
         ["WikiQA-train.tsv:2", "SentenceID"], E, "an id is what the .ref files and runs join on",
         wikiqa_line(2, lambda line: "\t".join(f if i != 4 else "" for i, f in enumerate(line.split("\t"))))),
    case("collections/wikiqa-duplicated-row", "collections wikiqa --data-dir data", 2,
         ["WikiQA-test.tsv:3", "line 2"], E,
         "a repeated row shifts every later sentence id of its question against the official .ref: refused "
         "(a warning would leave every later id wrong), naming both lines", duplicate_wikiqa_row(2)),
    case("collections/wikiqa-empty-question", "collections wikiqa --data-dir data --json", 0,
         ["WikiQA-train.tsv", "empty Question or Sentence"], W,
         "kept (positions must match the .ref files) but reported, so empty query text is never silent",
         wikiqa_line(2, lambda line: "\t".join(f if i != 1 else " " for i, f in enumerate(line.split("\t"))))),
    case("collections/wikiqa-non-utf8", "collections wikiqa --data-dir data --json", 0,
         ["WikiQA-train.tsv", "not valid UTF-8", "line 2"], W,
         "real releases hold cp1252 bytes: decoded, and the count and first line reported",
         edit_bytes(f"{WIKIQA}/WikiQA-train.tsv", lambda b: b.replace(b"hamlet is a", b"hamlet\xe9 is a", 1))),
    case("collections/wikiqa-bom-and-lf", "collections wikiqa --data-dir data --json", 0, [], A,
         "a UTF-8 BOM and LF (not CRLF) endings are how editors save the file: nothing to report",
         edit_bytes(f"{WIKIQA}/WikiQA-train.tsv", lambda b: b"\xef\xbb\xbf" + b.replace(b"\r\n", b"\n"))),
    case("collections/beir-corpus-bad-json", "collections data/mini", 2, ["corpus.jsonl:3", "JSON"], E,
         "a broken line would lose a document", beir(),
         edit("data/mini/corpus.jsonl", lambda t: t.replace("}\n", "\n", 3).replace("\n", "}\n", 2))),
    case("collections/beir-corpus-missing-text", "collections data/mini", 2, ["corpus.jsonl:1", "'text'"], E,
         "a document without text is a broken converter, not an empty document", beir(),
         edit("data/mini/corpus.jsonl", lambda t: t.replace('"text"', '"body"', 1))),
    case("collections/beir-corpus-duplicate-id", "collections data/mini", 2,
         ["corpus.jsonl:2", "q1-s0", "line 1"], E, "which text the id means would depend on the reader", beir(),
         edit("data/mini/corpus.jsonl", lambda t: t.replace("q1-s1", "q1-s0", 1))),
    case("collections/beir-query-id-number", "collections data/mini --json", 0, [], A,
         "numeric JSON ids are how some converted corpora write them; read as strings", beir(),
         edit("data/mini/queries.jsonl", lambda t: t.replace('"_id": "q1"', '"_id": 1')),
         edit("data/mini/qrels/train.tsv", lambda t: t.replace("\nq1\t", "\n1\t"))),
    case("collections/beir-query-text-null", "collections data/mini", 2, ["queries.jsonl:1", "'text'"], E,
         "null is no text", beir(), edit("data/mini/queries.jsonl", lambda t: t.replace('"who wrote hamlet"', "null"))),
    case("collections/beir-query-empty-text", "collections data/mini --json", 0,
         ["queries.jsonl", "1 query(s) have empty text"], W,
         "an empty query is kept (its qrels still resolve) and counted, never silent", beir(),
         edit("data/mini/queries.jsonl", lambda t: t.replace('"who wrote hamlet"', '""'))),
    case("collections/beir-qrels-huge-score", "collections data/mini", 2, ["test.tsv:2", "integer score"], E,
         "trec_eval keeps relevance in a C long: a larger grade crashed the evaluation (OverflowError)", beir(),
         edit("data/mini/qrels/test.tsv", lambda t: t.replace("\t1\n", f"\t{HUGE}\n", 1))),
    case("collections/beir-qrels-float-score", "collections data/mini", 2, ["test.tsv:2", "integer score"], E,
         "a fractional grade would be truncated silently", beir(),
         edit("data/mini/qrels/test.tsv", lambda t: t.replace("\t1\n", "\t0.5\n", 1))),
    case("collections/beir-qrels-no-header", "collections data/mini", 2, ["test.tsv:1", "query-id"], E,
         "without the header the first judgement would be read as one", beir(),
         edit("data/mini/qrels/test.tsv", lambda t: t.split("\n", 1)[1])),
    case("collections/beir-qrels-unknown-ids", "collections data/mini --json", 0, ["test.tsv", "unknown"], W,
         "qrels for documents not in the corpus are dropped (BEIR does the same) and counted", beir(),
         edit("data/mini/qrels/test.tsv", lambda t: t + "q5\tnot-a-doc\t1\nnobody\tq5-s0\t1\n")),
    case("collections/beir-qrels-duplicate-pair", "collections data/mini --json", 0,
         ["test.tsv", "more than once"], W, "BEIR's loader keeps the last score; kept, and reported", beir(),
         edit("data/mini/qrels/test.tsv", lambda t: t + "q5\tq5-s0\t0\n")),
    case("collections/beir-crlf", "collections data/mini --json", 0, [], A,
         "CRLF files from Windows tools read as LF files", beir(),
         edit_bytes("data/mini/corpus.jsonl", lambda b: b.replace(b"\n", b"\r\n"))),
    case("collections/folds-zero", "collections data/folded --folds 0", 2, ["folds"], E,
         "0 folds cannot make a test split", beir("data/folded", {"all": list(folders.QUESTIONS)}),
         write("data/folded/collection.yaml", "folds: 3\n")),
    case("collections/folds-of-no-queries", "collections data/folded", 2, ["all.tsv", "queries.jsonl", "3 folds"], E,
         "'cannot make 5 folds from 0 queries' named no file: the empty query file is the cause",
         beir("data/folded", {"all": list(folders.QUESTIONS)}), write("data/folded/collection.yaml", "folds: 3\n"),
         write("data/folded/queries.jsonl", "")),
    # ---------------------------------------------------------------------------------------------------- download
    case("download/unknown-name", "download nosuch --data-dir data", 2, "nosuch", E, "no such collection"),
    case("download/already-there", "download wikiqa --data-dir data", 2, ["data/wikiqa", "already exists"], E,
         "an existing collection folder is never replaced (nothing downloaded, no network needed)"),
    case("download/data-dir-is-a-file", "download nfcorpus --data-dir data.txt", 2, "data.txt", E,
         "a file where the data folder should be", write("data.txt", "x\n")),
    # ------------------------------------------------------------------------------------------------------- index
    case("index/existing-user-folder", "index data/mini --output mine", 2, ["mine", "not a neurank BM25 index"], E,
         "issue 22: an existing folder was deleted with everything in it; a folder neurank did not make is refused "
         "(index has no --overwrite: choose another folder)",
         beir(), mkdir("mine", "notes.txt")),
    case("index/existing-user-file", "index data/mini --output mine.txt", 2, "mine.txt", E,
         "issue 22: a file survived only as a hidden .NAME.old.PID", beir(), write("mine.txt", "mine\n")),
    case("index/answer-selection", "index wikiqa --data-dir data --output idx", 2, "answer-selection", E,
         "WikiQA ranks each question's own candidates: there is nothing to index"),
    case("index/corpus-bad-json", "index data/mini --output idx", 2, ["corpus.jsonl:2", "JSON"], E,
         "the streaming reader names the line as the list reader does", beir(),
         edit("data/mini/corpus.jsonl", lambda t: t.replace("}\n", "\n", 2).replace("\n", "}\n", 1))),
    case("index/corpus-duplicate-id", "index data/mini --output idx", 2, ["corpus.jsonl:2", "q1-s0"], E,
         "a repeated id would make two index rows answer to one id", beir(),
         edit("data/mini/corpus.jsonl", lambda t: t.replace("q1-s1", "q1-s0", 1))),
    case("index/corpus-text-number", "index data/mini --output idx", 2, ["corpus.jsonl:1", "'text'"], E,
         "a number is no text", beir(), edit("data/mini/corpus.jsonl", lambda t: t.replace(
             '"hamlet was written by shakespeare"', "42", 1))),
    case("index/corpus-empty", "index data/mini --output idx", 2, "corpus.jsonl", E,
         "an index of no documents answers every query with nothing", beir(), write("data/mini/corpus.jsonl", "")),
    # ------------------------------------------------------------------------------------------------------ search
    case("search/output-existing-folder", "search wikiqa --data-dir data --output out", 2,
         ["out", "existing folder"], E, "issue 22: IsADirectoryError after the search", mkdir("out", "a.txt")),
    case("search/output-under-a-file", "search wikiqa --data-dir data --output f.txt/run.txt", 2,
         ["f.txt", "is a file"], E, "a file where a parent folder must be", write("f.txt", "x\n")),
    case("search/output-user-run", "search wikiqa --data-dir data --output r.run", 2,
         ["r.run", "not written by neurank", "--overwrite"], E,
         "issue 22: a user's run was replaced; its tag is not one neurank writes", write("r.run", USER_RUN)),
    case("search/output-user-run-overwrite", "search wikiqa --data-dir data --output r.run --overwrite --json", 0,
         [], A, "--overwrite replaces it, atomically once the new run is complete", write("r.run", USER_RUN),
         creates=["r.run"]),
    case("search/output-neurank-run", "search wikiqa --data-dir data --output r.run --json", 0, [], A,
         "a rerun replaces the run neurank wrote (tag neurank-bm25-wikiqa)",
         neurank_setup("search", "wikiqa", "--data-dir", "data", "--k", "2", "--output", "r.run"), creates=["r.run"]),
    case("search/unknown-split", "search wikiqa --data-dir data --split nosuch --output run.out", 2, "nosuch", E,
         "no such split; the message lists the splits"),
    case("search/k-zero", "search wikiqa --data-dir data --k 0 --output run.out", 2, "--k", E,
         "0 results per query is an empty run"),
    case("search/index-of-fewer-documents", "search data/mini --index idx --output run.out", 2,
         ["idx", "documents"], E, "issue 22: IndexError; another collection's (smaller) index is refused",
         beir(), beir("data/small", {"test": folders.TEST}), edit("data/small/corpus.jsonl", lambda t: t.split(
             "\n", 3)[3]), neurank_setup("index", "data/small", "--output", "idx")),
    case("search/index-of-shuffled-ids", "search data/mini --index idx --output run.out", 2, ["idx"], E,
         "issue 22: a run of wrong ids; the index's fingerprint of its collection no longer matches", beir(),
         neurank_setup("index", "data/mini", "--output", "idx"),
         edit("data/mini/corpus.jsonl", lambda t: t.replace("q1-s0", "TMP").replace("q1-s1", "q1-s0").replace(
             "TMP", "q1-s1"))),
    case("search/empty-query-text", "search data/mini --output run.out --split train --json", 0,
         ["queries.jsonl", "empty text"], W,
         "an empty query finds nothing; it stays in the split (its qrels count) and the reader reports it", beir(),
         edit("data/mini/queries.jsonl", lambda t: t.replace('"who wrote hamlet"', '" "')), creates=["run.out"]),
    # ------------------------------------------------------------------------------------------------------- qrels
    case("qrels/output-existing-folder", "qrels wikiqa --data-dir data --output out", 2,
         ["out", "existing folder"], E, "a folder is never replaced by a file", mkdir("out", "a.txt")),
    case("qrels/read-only-output-file", "qrels wikiqa --data-dir data --output q.txt", 2, ["q.txt", "read-only"], E,
         "renaming over a write-protected file succeeds in a writable folder: refused before anything is written "
         "(root too, by the mode bits)", write("q.txt", "mine\n"), lambda work: (work / "q.txt").chmod(0o444)),
    case("qrels/output-existing-file", "qrels wikiqa --data-dir data --output q.txt", 2,
         ["q.txt", "exists", "cannot be told", "--overwrite"], E,
         "issue 22: any file was replaced; qrels carry no mark of their writer and may be the official judgements, "
         "so an existing file needs --overwrite", write("q.txt", "old\n")),
    case("qrels/output-existing-file-overwrite", "qrels wikiqa --data-dir data --output q.txt --overwrite --json", 0,
         [], A, "--overwrite: replaced atomically once complete, its mode kept (issue 22: 0644 became 0600)",
         write("q.txt", "old\n"), creates=["q.txt"]),
    case("qrels/unknown-split", "qrels wikiqa --data-dir data --split nosuch --output q.txt", 2, "nosuch", E,
         "no such split"),
    case("qrels/unknown-collection-folder", "qrels ./nothing-here --output q.txt", 2, "nothing-here", E,
         "a path that does not exist"),
    # ---------------------------------------------------------------------------------------------------- evaluate
    case("evaluate/inf-score", "evaluate run.txt qrels.txt", 2, ["run.txt:2", "finite"], E,
         "issue 22: inf was accepted; inf ties with inf, so its rank is arbitrary", *GOOD,
         edit("run.txt", lambda t: t.replace("1.5", "inf"))),
    case("evaluate/minus-inf-score", "evaluate run.txt qrels.txt", 2, ["run.txt:2", "finite"], E,
         "issue 22: -inf was accepted", *GOOD, edit("run.txt", lambda t: t.replace("1.5", "-inf"))),
    case("evaluate/1e999-score", "evaluate run.txt qrels.txt", 2, ["run.txt:1", "1e999"], E,
         "issue 22: 1e999 overflows to inf", *GOOD, edit("run.txt", lambda t: t.replace("2.5", "1e999"))),
    case("evaluate/nan-score", "evaluate run.txt qrels.txt", 2, ["run.txt:1", "NaN"], E,
         "NaN orders with nothing", *GOOD, edit("run.txt", lambda t: t.replace("2.5", "nan"))),
    case("evaluate/empty-run", "evaluate run.txt qrels.txt", 2, ["run.txt", "no results"], E,
         "issue 22: an empty run evaluated to zeros with exit 0", *GOOD, write("run.txt", "")),
    case("evaluate/whitespace-run", "evaluate run.txt qrels.txt", 2, ["run.txt", "no results"], E,
         "issue 22: as the empty run", *GOOD, write("run.txt", " \n\t\n\n")),
    case("evaluate/run-five-columns", "evaluate run.txt qrels.txt", 2, ["run.txt:2", "6 whitespace-separated"], E,
         "a missing column shifts the score into the tag", *GOOD, edit("run.txt", lambda t: t.replace(" probe\nq2",
                                                                                                   "\nq2"))),
    case("evaluate/run-duplicate-doc", "evaluate run.txt qrels.txt", 2, ["run.txt:2", "line 1"], E,
         "trec_eval would count the document twice", *GOOD, edit("run.txt", lambda t: t.replace("d2", "d1", 1))),
    case("evaluate/run-non-utf8", "evaluate run.txt qrels.txt --json", 0, ["run.txt", "not valid UTF-8"], W,
         "an id in cp1252 is read and reported; ids then match only qrels written the same way", *GOOD,
         edit_bytes("run.txt", lambda b: b.replace(b"probe\nq2", b"prob\xe9\nq2"))),
    case("evaluate/run-bom-crlf", "evaluate run.txt qrels.txt --json", 0, [], A,
         "a BOM and CRLF endings (Windows editors) change nothing", *GOOD,
         edit_bytes("run.txt", lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"))),
    case("evaluate/qrels-huge-relevance", "evaluate run.txt qrels.txt", 2, ["qrels.txt:1", "relevance"], E,
         "issue 22: OverflowError / SystemError from the C long", *GOOD,
         edit("qrels.txt", lambda t: t.replace("q1 0 d1 1", f"q1 0 d1 {HUGE}"))),
    case("evaluate/qrels-float-relevance", "evaluate run.txt qrels.txt", 2, ["qrels.txt:2", "integer"], E,
         "a fractional grade would be truncated", *GOOD, edit("qrels.txt", lambda t: t.replace("d2 0", "d2 0.5"))),
    case("evaluate/qrels-three-columns", "evaluate run.txt qrels.txt", 2, ["qrels.txt:1", "4"], E,
         "a qrels line without its iteration column", *GOOD, write("qrels.txt", "q1 d1 1\n")),
    case("evaluate/qrels-empty", "evaluate run.txt qrels.txt", 2, ["qrels.txt", "empty"], E,
         "no judgements: every measure would be zero", *GOOD, write("qrels.txt", "")),
    case("evaluate/qrels-duplicate-pair", "evaluate run.txt qrels.txt", 2, ["qrels.txt:3", "line 1"], E,
         "two grades for one pair: which one counts is arbitrary", *GOOD, edit("qrels.txt", lambda t: t.replace(
             "q2 0 d1 1", "q1 0 d1 0"))),
    case("evaluate/beir-qrels-huge", "evaluate run.txt qrels.tsv", 2, ["qrels.tsv:2", "score"], E,
         "as TREC qrels, in the BEIR format", *GOOD,
         write("qrels.tsv", f"query-id\tcorpus-id\tscore\nq1\td1\t{HUGE}\n")),
    case("evaluate/no-common-query", "evaluate run.txt qrels.txt", 2, ["run.txt", "qrels.txt"], E,
         "issue 22: zeros and no warning; a run and qrels about different queries are the wrong pair of files",
         *GOOD, write("qrels.txt", "x1 0 d1 1\n")),
    case("evaluate/run-missing", "evaluate nothing.txt qrels.txt", 2, "nothing.txt", E, "a mistyped path", *GOOD),
    case("evaluate/run-is-a-directory", "evaluate adir qrels.txt", 2, ["adir", "directory"], E,
         "a folder where the run should be", *GOOD, mkdir("adir")),
    case("evaluate/unknown-measure", "evaluate run.txt qrels.txt -m Nonsense@3", 2, "Nonsense", E,
         "ir_measures cannot parse it", *GOOD),
    case("evaluate/empty-baseline", "evaluate run.txt qrels.txt --baseline base.txt", 2,
         ["base.txt", "no results"], E, "issue 22: p = 9e-10 against an empty baseline", *GOOD, write("base.txt", "")),
    # ---------------------------------------------------------------------------------------------------- baseline
    case("baseline/output-existing-folder", "baseline --data-dir data --output out", 2, ["out"], E,
         "a folder is never replaced by the table", mkdir("out", "a.md")),
    case("baseline/output-user-file", "baseline --data-dir data --output b.md", 2,
         ["b.md", "not written by neurank", "--overwrite"], E,
         "issue 22: a user's Markdown was replaced; neurank's table starts with its mark", write("b.md", "# mine\n")),
    case("baseline/output-neurank-table", "baseline --data-dir nowhere --output b.md", 2, "nowhere", E,
         "the table neurank wrote (its first line is the mark) is not refused: the run gets as far as the data "
         "(every collection is needed for a full run, not at hand here)",
         write("b.md", "<!-- written by neurank baseline; rerunning it replaces this file -->\n| collection |\n")),
    case("baseline/data-dir-missing", "baseline --data-dir nowhere", 2, "nowhere", E,
         "no collections to run BM25 on"),
    # ------------------------------------------------------------------------------------------------------- train
    case("train/config-top-level-list", "train list.yaml --output-dir out", 2, ["list.yaml", "mapping"], E,
         "issue 22: AttributeError", write("list.yaml", "- a\n- b\n")),
    case("train/override-bad-yaml", ["train", "tiny.yaml", "train.lr=[1,", "--output-dir", "out"], 2,
         "train.lr", E, "issue 22: ParserError", config_yaml()),
    case("train/device-quantum", "train tiny.yaml --output-dir out --device quantum", 2, "quantum", E,
         "issue 22: RuntimeError from torch", config_yaml()),
    case("train/empty-yaml", "train empty.yaml --output-dir out", 2, "empty.yaml", E,
         "issue 22: an empty YAML started a full default WikiQA run", write("empty.yaml", "")),
    case("train/yaml-non-utf8", "train bad.yaml --output-dir out", 2, "bad.yaml", E,
         "issue 22: the encoding error named no file", write("bad.yaml", b"model: match\xff_pyramid\n")),
    case("train/missing-config", "train nothing.yaml --output-dir out", 2, "nothing.yaml", E, "a mistyped path"),
    case("train/unknown-key", "train tiny.yaml train.lrr=0.1 --output-dir out", 2, ["tiny.yaml", "train", "'lrr'"], E,
         "a mistyped key would be ignored", config_yaml()),
    case("train/negative-lr", "train tiny.yaml train.lr=-1 --output-dir out", 2, "train.lr", E,
         "issue 22: a vague message without the key", config_yaml()),
    case("train/candidates-zero", "train tiny.yaml data.candidates=0 --output-dir out", 2, "data.candidates", E,
         "issue 22: a vague message without the key", config_yaml()),
    case("train/epochs-zero", "train tiny.yaml train.epochs=0 --output-dir out", 2, "train.epochs", E,
         "issue 22: finished and named a best.pt that does not exist", config_yaml()),
    case("train/epochs-negative", "train tiny.yaml train.epochs=-1 --output-dir out", 2, "train.epochs", E,
         "issue 22: as epochs=0", config_yaml()),
    case("train/patience-zero", "train tiny.yaml train.patience=0 --output-dir out", 2, "train.patience", E,
         "issue 22: stopped before training", config_yaml()),
    case("train/unknown-model", "train tiny.yaml model=nosuch --output-dir out", 2, "nosuch", E,
         "the message lists the registered models", config_yaml()),
    case("train/output-dir-is-a-file", "train tiny.yaml --output-dir out.txt", 2, "out.txt", E,
         "issue 22: FileExistsError traceback", config_yaml(), write("out.txt", "mine\n")),
    case("train/over-a-finished-run", "train tiny.yaml --output-dir run", 2, ["run", "--resume", "--overwrite"], E,
         "issue 22: best.pt and metrics.jsonl were replaced without a word", config_yaml(), trained=True),
    case("train/resume-without-last", "train tiny.yaml --output-dir empty --resume", 2, ["last.pt"], E,
         "issue 22: trained from scratch without saying so", config_yaml(), mkdir("empty")),
    case("train/resume-changed-seed", "train tiny.yaml train.seed=5 --output-dir run --resume", 2, "train.seed", E,
         "issue 22: reported the old result with exit 0", config_yaml(), trained=True),
    case("train/resume-changed-dim", "train tiny.yaml embeddings.dim=16 --output-dir run --resume", 2,
         "embeddings.dim", E, "issue 22: RuntimeError: size mismatch", config_yaml(), trained=True),
    # -------------------------------------------------------------------------------------------------- experiment
    case("experiment/config-top-level-list", "experiment list.yaml --output-dir out --seeds 1", 2,
         ["list.yaml", "mapping"], E, "as train", write("list.yaml", "- a\n")),
    case("experiment/seed-list-not-ints", "experiment tiny.yaml --output-dir out --seed-list 1,x", 2,
         ["--seed-list", "x"], E, "a seed that is not an integer", config_yaml()),
    case("experiment/unknown-model", "experiment tiny.yaml --output-dir out --models nosuch --seeds 1", 2,
         "nosuch", E, "no such model", config_yaml()),
    case("experiment/output-dir-is-a-file", "experiment tiny.yaml --output-dir out.txt --seeds 1", 2, "out.txt",
         E, "a file where the folder should be", config_yaml(), write("out.txt", "mine\n")),
    # ------------------------------------------------------------------------------------------------------ rerank
    case("rerank/empty-run", "rerank run/best.pt wikiqa --data-dir data --device cpu --run empty.run --output o.run",
         2, ["empty.run", "no results"], E, "issue 22: re-ranked 0 queries with exit 0", write("empty.run", ""),
         trained=True),
    case("rerank/output-existing-folder",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --output out", 2, ["out", "existing folder"], E,
         "issue 22: IsADirectoryError after the scoring", mkdir("out", "a.txt"), trained=True),
    case("rerank/output-user-run",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --output o.run", 2,
         ["o.run", "not written by neurank", "--overwrite"], E, "issue 22: a user's run was replaced after the scoring",
         write("o.run", USER_RUN), trained=True),
    case("rerank/output-neurank-run",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --output o.run --json", 0, [], A,
         "a rerun replaces the run neurank wrote (tag neurank-CHECKPOINT)",
         write("o.run", "1 Q0 0 1 1.0 neurank-best\n"), trained=True, creates=["o.run"]),
    case("rerank/checkpoint-missing", "rerank nothing.pt wikiqa --data-dir data --device cpu --output o.run", 2,
         "nothing.pt", E, "a mistyped path"),
    case("rerank/checkpoint-garbage", "rerank junk.pt wikiqa --data-dir data --device cpu --output o.run", 2,
         "junk.pt", E, "not a checkpoint at all", write("junk.pt", b"\x00\x01garbage" * 10)),
    case("rerank/checkpoint-is-a-directory", "rerank run wikiqa --data-dir data --device cpu --output o.run", 2,
         "run", E, "the run folder instead of its best.pt", trained=True),
    case("rerank/checkpoint-nan-weights",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --output o.run", 2, "best.pt", E,
         "issue 22: accepted; the weights no longer match the checkpoint's fingerprint", edit_checkpoint(nan_weights),
         trained=True),
    case("rerank/checkpoint-shuffled-vocab",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --output o.run", 2, ["best.pt", "vocab"], E,
         "issue 22: accepted; the vocabulary no longer matches the fingerprint", edit_checkpoint(shuffled_vocab),
         trained=True),
    case("rerank/device-quantum",
         "rerank run/best.pt wikiqa --data-dir data --device quantum --output o.run", 2, "quantum", E,
         "issue 22: RuntimeError from torch", trained=True),
    case("rerank/run-inf-score",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --run inf.run --output o.run", 2,
         ["inf.run:1", "finite"], E, "as evaluate", write("inf.run", "1 Q0 0 1 inf x\n"), trained=True),
    case("rerank/run-of-unknown-queries",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --run other.run --output o.run", 2,
         ["other.run"], E, "a run of another collection: nothing of it can be re-ranked",
         write("other.run", "x1 Q0 d1 1 1.0 x\n"), trained=True),
    case("rerank/unknown-split",
         "rerank run/best.pt wikiqa --data-dir data --device cpu --split nosuch --output o.run", 2, "nosuch", E,
         "no such split", trained=True),
    # ------------------------------------------------------------------------------------------------------ export
    case("export/output-existing-folder", "export run/best.pt --output out", 2, ["out", "existing folder"], E,
         "issue 22: IsADirectoryError", mkdir("out", "a.txt"), trained=True),
    case("export/output-user-file", "export run/best.pt --output m.onnx", 2,
         ["m.onnx", "not written by neurank", "--overwrite"], E,
         "issue 22: any file was replaced; neurank's ONNX files carry its metadata", write("m.onnx", b"mine\x00"),
         trained=True),
    case("export/checkpoint-garbage", "export junk.pt --output m.onnx", 2, "junk.pt", E, "not a checkpoint",
         write("junk.pt", b"\x00garbage" * 10)),
    case("export/unknown-format", "export run/best.pt --output m.xyz --format xyz", 2, "xyz", E,
         "only onnx exists", trained=True),
    case("export/checkpoint-nan-weights", "export run/best.pt --output m.onnx", 2, "best.pt", E,
         "issue 22: exported NaN weights", edit_checkpoint(nan_weights), trained=True),
    # --------------------------------------------------------------------------------------------------- benchmark
    case("benchmark/missing-config", "benchmark nothing.yaml --data-dir data", 2, "nothing.yaml", E,
         "a mistyped path"),
    case("benchmark/config-top-level-list", "benchmark list.yaml --data-dir data", 2, "list.yaml", E,
         "as train", write("list.yaml", "- a\n")),
    case("benchmark/output-user-file", "benchmark --data-dir data --output o.md", 2,
         ["o.md", "not written by neurank", "--overwrite"], E,
         "refused before the plan and the training, not after hours", write("o.md", "# my results\n")),
    case("benchmark/output-json-user-file", "benchmark --data-dir data --output o.md", 2,
         ["o.json", "not written by neurank", "--overwrite"], E,
         "the JSON written beside the table is an output too", write("o.json", '{"mine": 1}\n')),
    case("benchmark/unknown-model", "benchmark --models nosuch --data-dir data --output o.md", 2, "nosuch", E,
         "not one of the config's models"),
    # ----------------------------------------------------------------------------------------------------- explain
    case("explain/compare-huge-relevance", "explain --compare run.txt run.txt --qrels qrels.txt", 2,
         ["qrels.txt:1", "relevance"], E, "issue 22: OverflowError", *GOOD,
         edit("qrels.txt", lambda t: t.replace("q1 0 d1 1", f"q1 0 d1 {HUGE}"))),
    case("explain/compare-empty-run", "explain --compare empty.txt run.txt --qrels qrels.txt", 2,
         ["empty.txt", "no results"], E, "an empty run compares as all losses", *GOOD, write("empty.txt", "")),
    case("explain/compare-without-qrels", "explain --compare run.txt run.txt", 2, "--qrels", E,
         "nothing to measure against", *GOOD),
    case("explain/nothing-given", "explain", 2, "checkpoint", E, "nothing to explain"),
    case("explain/query-without-doc", "explain run/best.pt --query hamlet", 2, "--doc", E,
         "a pair needs both texts", trained=True),
    case("explain/bad-figure-suffix", "explain run/best.pt --query a --doc b --output fig.txt", 2, "fig.txt", E,
         "matplotlib cannot write .txt; checked before the work", trained=True),
    case("explain/unknown-query-id",
         "explain run/best.pt --collection wikiqa --data-dir data --query-id 999 --doc-id 0", 2, "999", E,
         "no such query in the split", trained=True),
    case("explain/checkpoint-garbage", "explain junk.pt --query a --doc b", 2, "junk.pt", E, "not a checkpoint",
         write("junk.pt", b"\x00garbage" * 10)),
    case("explain/checkpoint-shuffled-vocab", "explain run/best.pt --query a --doc b", 2, ["best.pt", "vocab"], E,
         "issue 22: accepted", edit_checkpoint(shuffled_vocab), trained=True),
    case("explain/output-existing-folder", "explain run/best.pt --query a --doc b --output out.png", 2,
         "out.png", E, "a folder named like a figure", mkdir("out.png"), trained=True),
    case("explain/output-existing-figure", "explain run/best.pt --query a --doc b --output fig.png", 2,
         ["fig.png", "not written by neurank", "--overwrite"], E,
         "issue 22: any file was replaced; neurank's own figures name it in their writer field",
         write("fig.png", b"\x89PNG mine"),
         trained=True),
    # ------------------------------------------------------------------------------------------------------ report
    case("report/missing-run-dir", "report nowhere", 2, "nowhere", E, "a mistyped path"),
    case("report/no-checkpoint", "report run --data-dir data --checkpoint nothing.pt", 2, "nothing.pt", E,
         "the named checkpoint is not in the folder", trained=True),
    case("report/metrics-non-utf8", "report run --data-dir data", 2, "metrics.jsonl", E,
         "issue 22: the encoding error named no file", edit_bytes("run/metrics.jsonl", lambda b: b"\xff\xfe" + b),
         trained=True),
    case("report/metrics-bad-json", "report run --data-dir data", 2, "metrics.jsonl:1", E,
         "a broken line of the training log", edit_bytes("run/metrics.jsonl", lambda b: b"{not json\n" + b),
         trained=True),
    case("report/output-existing-folder", "report run --data-dir data --output out", 2, "out", E,
         "a folder is never replaced by the page", mkdir("out", "a.html"), trained=True),
    case("report/output-user-file", "report run --data-dir data --output r.html", 2,
         ["r.html", "not written by neurank", "--overwrite"], E,
         "issue 22: any file was replaced; neurank's pages carry the title 'neurank report: ...'",
         write("r.html", "<html>mine</html>\n"), trained=True),
    # -------------------------------------------------------------------------------------------------- embeddings
    case("embeddings/unknown-collection", "embeddings train nosuch --data-dir data --output v.txt", 2, "nosuch", E,
         "no such collection"),
    case("embeddings/output-existing-folder", "embeddings train wikiqa --data-dir data --output out --epochs 1",
         2, ["out", "existing folder"], E, "a folder is never replaced by the vectors", mkdir("out", "a.txt")),
    case("embeddings/output-user-file", "embeddings train wikiqa --data-dir data --output v.txt --epochs 1", 2,
         ["v.txt", "cannot be told", "--overwrite"], E,
         "issue 22: any file was replaced; word2vec text has no room for a mark of its writer",
         write("v.txt", "2 3\nmine 1 2 3\n")),
    case("embeddings/output-user-file-overwrite",
         "embeddings train wikiqa --data-dir data --output v.txt --epochs 1 --overwrite --json", 0, [], A,
         "--overwrite replaces it once the new vectors are complete", write("v.txt", "mine\n"), creates=["v.txt"]),
    case("embeddings/brown-missing", "embeddings train wikiqa --data-dir data --output v.txt --brown --epochs 1", 2,
         "brown", E, "--brown names a file that is not there"),
    case("embeddings/malformed-collection", "embeddings train wikiqa --data-dir data --output v.txt --epochs 1", 2,
         "WikiQA-train.tsv:2", E, "as the reader", wikiqa_line(2, lambda line: line[:-1] + "7")),
    # ------------------------------------------------------------------------------------------------------- serve
    # Only rows that fail before the server binds a port: a row that passed would serve until killed.
    case("serve/checkpoint-missing", "serve nothing.pt", 2, "nothing.pt", E, "a mistyped path"),
    case("serve/nothing-to-serve", "serve", 2, "--model", E, "no model given"),
    case("serve/model-without-name", "serve --model bad", 2, ["--model", "NAME=PATH"], E, "NAME=PATH expected"),
    case("serve/model-name-twice", "serve --model a=x.pt --model a=y.pt", 2, ["'a'", "twice"], E,
         "which model a request named 'a' gets would be arbitrary"),
]  # fmt: skip


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory):
    """Where the first row that needs a run folder leaves a copy of it, so that the tiny model trains once."""
    return tmp_path_factory.mktemp("probe-trained") / "run"


@pytest.fixture()
def work(tmp_path, tiny_data_dir, monkeypatch):
    """The working folder: ./data/wikiqa (the tiny collection); commands run here."""
    assert tiny_data_dir == tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEURANK_DATA", str(tiny_data_dir))
    # Unwrapped messages, so that "one line" can be checked (rich wraps at 80 columns when not on a terminal).
    monkeypatch.setattr(err_console, "width", 4000)
    return tmp_path


@pytest.mark.parametrize("probe", CASES)
def test_bad_input(probe: Case, work, capsys, request, trained_cache):
    if probe.trained:
        if trained_cache.exists():
            shutil.copytree(trained_cache, work / "run")
        else:
            shutil.copytree(request.getfixturevalue("trained"), trained_cache)
    for setup in probe.setup:
        setup(work)
    capsys.readouterr()
    before = snapshot(work)

    status, out, err = run_in_process(capsys, probe.argv)

    assert "Traceback" not in err + out
    assert status == probe.code, f"exit status {status!r}, expected {probe.code}; stderr: {err.strip()!r}"
    for fragment in probe.message:
        assert squash(fragment) in squash(err), f"{fragment!r} not in the message {err.strip()!r}"
    if probe.outcome == "error":
        # One message: an `error:` line (after any progress bar), or click's usage error in its small box.
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 or "Usage:" in err, err
        if lines:
            assert len(err[err.index("error:") :].strip().splitlines()) <= 3, f"a long message: {err!r}"
    if probe.outcome == "accepted":
        assert "warning:" not in err, err
    changed = changes(before, snapshot(work))
    unexpected = {path: what for path, what in changed.items() if path not in probe.creates}
    assert not unexpected, f"files changed: {unexpected}"


def test_every_command_is_probed():
    """Each command of `neurank --help` has rows in the table (a new command needs its own)."""
    from neurank.cli import app

    commands = {command.name for command in app.registered_commands}
    commands |= {group.name for group in app.registered_groups}
    probed = {param.values[0].argv[0] for param in CASES}
    assert commands <= probed, f"commands without a probe row: {sorted(commands - probed)}"


# ---------------------------------------------------------------------------------------------------- permissions


# Root ignores file modes through two capabilities; a process without them (and without CAP_FOWNER) meets the modes of
# the files it owns as any user does. (Switching to `nobody` is no option here: the interpreter lives under /root.)
_DROP_CAPABILITIES = "-dac_override,-dac_read_search,-fowner"


def _unprivileged() -> list[str] | None:
    """The command prefix that runs a process file modes apply to, or None where there is none."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, f"--bounding-set={_DROP_CAPABILITIES}", "--inh-caps=-all", "--"]


@pytest.fixture()
def open_folder(tiny_data_dir):
    """A temporary folder that an unprivileged user can enter, holding a copy of the tiny collection in ./data;
    removed afterwards (pytest's own tmp_path is private to root)."""
    if _unprivileged() is None:
        pytest.skip("needs a process that file modes apply to: not root, or root with setpriv (util-linux)")
    root = Path(tempfile.mkdtemp(prefix="neurank-probe-"))
    try:
        root.chmod(0o777)
        shutil.copytree(tiny_data_dir, root / "data")
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                (Path(folder) / name).chmod(0o755)
            for name in files:
                (Path(folder) / name).chmod(0o644)
        yield root
    finally:
        for folder, dirs, _ in os.walk(root):
            for name in dirs:
                (Path(folder) / name).chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def run_unprivileged(root: Path, *argv: str) -> tuple[int, str]:
    """`python -m neurank.cli ARGV` in `root`, as a process that file modes apply to: (exit status, stderr)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / ".home"),
        "MPLCONFIGDIR": str(root / ".home"),
        "NEURANK_DATA": str(root / "data"),
        "COLUMNS": "4000",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    result = subprocess.run(
        [*(_unprivileged() or []), sys.executable, "-m", "neurank.cli", *argv],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.returncode, result.stderr


def _tiny_config(root: Path) -> Path:
    config_yaml("tiny.yaml")(root)
    (root / "tiny.yaml").chmod(0o644)
    return root / "tiny.yaml"


PERMISSION_CASES = [
    pytest.param(
        "read-only-output-folder",
        lambda root: (root / "ro").mkdir(mode=0o555),
        ["search", "wikiqa", "--output", "ro/run.txt"],
        ["ro", "permission"],
        id="search/read-only-output-folder",
    ),
    pytest.param(
        "read-only-output-folder",
        lambda root: (_tiny_config(root), (root / "ro").mkdir(mode=0o555)),
        ["train", "tiny.yaml", "--output-dir", "ro/run"],
        ["ro", "permission"],
        id="train/read-only-output-folder",
    ),
    pytest.param(
        "unreadable-data-folder",
        lambda root: (root / "data" / "wikiqa").chmod(0o000),
        ["collections", "wikiqa", "--data-dir", "data"],
        ["data/wikiqa", "permission"],
        id="collections/unreadable-data-folder",
    ),
    pytest.param(
        "unreadable-file",
        lambda root: (root / "data" / "wikiqa" / "WikiQA-test.tsv").chmod(0o000),
        ["search", "wikiqa", "--output", "out/run.txt"],
        ["WikiQA-test.tsv", "permission"],
        id="search/unreadable-data-file",
    ),
    pytest.param(
        "read-only-file",
        lambda root: (
            (root / "out").mkdir(),
            (root / "out/q.txt").write_text("mine\n"),
            (root / "out/q.txt").chmod(0o444),
        ),
        ["qrels", "wikiqa", "--output", "out/q.txt"],
        ["out/q.txt", "read-only"],
        id="qrels/read-only-output-file",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "setup", "argv", "message"), PERMISSION_CASES)
def test_permission(kind, setup, argv, message, open_folder):
    """Errors, each: the user cannot write (or read) there, and the message says where; nothing changes."""
    setup(open_folder)
    before = snapshot(open_folder)
    (open_folder / ".home").mkdir()
    status, err = run_unprivileged(open_folder, *argv)
    assert "Traceback" not in err, err
    assert status == 2, f"exit status {status}; stderr: {err!r}"
    for fragment in message:
        assert squash(fragment).lower() in squash(err).lower(), f"{fragment!r} not in {err!r}"
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    mine = lambda entries: {k: v for k, v in entries.items() if not k.startswith(".home")}  # noqa: E731
    assert not changes(mine(before), mine(snapshot(open_folder)))
