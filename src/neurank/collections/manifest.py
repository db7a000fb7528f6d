"""`collection.yaml`: the small file that tells neurank what a folder of the user's files holds.

Every key is optional where the folder's BEIR layout supplies it (`corpus.jsonl`, `queries.jsonl`, `qrels/*.tsv`),
and a manifest in a BEIR folder adds to that layout or overrides it split by split. The keys (`KEYS`):

    name: my-qa                     # default: the folder's name
    task: answer_selection          # or adhoc; default: answer_selection when candidates are given, else adhoc
    documents: corpus.jsonl         # JSONL (BEIR), TSV (id<TAB>text) or TREC SGML (<DOC><DOCNO>..<TEXT>)
    queries: queries.jsonl          # one file, or one per split: {train: q/train.tsv, test: q/test.tsv}
    qrels: {train: qrels/train.tsv, test: qrels-clean/test.tsv}   # TREC or BEIR qrels, one per split
    candidates: {train: runs/train.run, dev: runs/dev.run, test: runs/test.run}  # TREC runs: each query's candidates
    filtered: true                  # evaluate only queries with a relevant and a non-relevant candidate
    folds: 5                        # k folds over the queries of a collection without splits
    dev_fraction: 0.1               # share of train carved into dev when there is no dev split (0: none)
    measures: [AP, RR, nDCG@10]     # primary first

A file is a path relative to the folder (or absolute), or `{path: FILE, format: FORMAT}` where the extension does
not tell the format; TREC topics also take `fields: [title, desc]`. `read_manifest` checks the keys, their types and
that every file exists; each problem is a `ManifestError` naming the file, the line and the key. What the keys
mean together (which splits exist, how candidates and folds apply) is `neurank.collections.folder`'s business.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurank.collections.collection import ADHOC, ANSWER_SELECTION
from neurank.collections.errors import FormatError
from neurank.collections.formats import EXTENSIONS, QRELS_FORMATS, TEXT_FORMATS, format_from_extension
from neurank.collections.trec import TOPIC_FIELDS

MANIFEST_NAME = "collection.yaml"
TASKS = (ANSWER_SELECTION, ADHOC)
KEYS = {
    "name": "the collection's name (default: the folder's name)",
    "task": f"{' or '.join(TASKS)}",
    "documents": "the document file",
    "queries": "the query file, or one per split",
    "qrels": "one qrels file per split ({split: FILE}), or one file with folds",
    "candidates": "each query's candidates as TREC runs, one per split or one for all",
    "filtered": "true: evaluate only queries with a relevant and a non-relevant candidate",
    "folds": "k >= 2 folds over the queries of a collection without splits",
    "dev_fraction": "share of train carved into a dev split when there is none, from 0 (none) to below 1",
    "measures": "the measures to report, primary first",
}
FILE_KEYS = ("path", "format")
FORMAT_HINT = f"add its format: {{path: FILE, format: {' | '.join(TEXT_FORMATS)}}}"


class ManifestError(FormatError):
    """A `collection.yaml` key is unknown, of the wrong type, or names a file that is not there."""

    def __init__(self, path: str | Path, line: int | None, key: str, problem: str):
        self.path = str(path)
        self.line = line
        self.key = key
        self.expected = problem
        self.found = None
        where = f"{self.path}:{line}" if line is not None else self.path
        ValueError.__init__(self, f"{where}: key '{key}': {problem}")


@dataclass(frozen=True)
class FileSpec:
    """One file a manifest names.

    Attributes:
        key: the manifest key that names it (``"qrels.test"``), for messages.
        format: the format given or told from the extension; None for qrels whose format is told from the file.
        fields: TREC topic fields that make the query text.
    """

    path: Path
    key: str
    format: str | None = None
    fields: tuple[str, ...] = ("title",)


@dataclass(frozen=True)
class Manifest:
    """A parsed `collection.yaml` (every field None or empty when the folder has none).

    `queries`, `qrels` and `candidates` are split into one file for all (`*_file`) and one per split (`split_*`).
    """

    path: Path | None = None
    name: str | None = None
    task: str | None = None
    documents: FileSpec | None = None
    queries_file: FileSpec | None = None
    split_queries: dict[str, FileSpec] = field(default_factory=dict)
    qrels_file: FileSpec | None = None
    split_qrels: dict[str, FileSpec] = field(default_factory=dict)
    candidates_file: FileSpec | None = None
    split_candidates: dict[str, FileSpec] = field(default_factory=dict)
    filtered: bool = False
    folds: int | None = None
    dev_fraction: float | None = None
    measures: tuple[str, ...] | None = None
    lines: dict[str, int] = field(default_factory=dict)

    def error(self, key: str, problem: str) -> Exception:
        """A `ManifestError` at `key`'s line; without a manifest, a `FileNotFoundError` (what is missing is a file)."""
        if self.path is None:
            return FileNotFoundError(problem)
        top = key.split(".")[0]
        return ManifestError(self.path, self.lines.get(key, self.lines.get(top)), key, problem)

    def has(self, key: str) -> bool:
        """Whether the manifest sets `key` (an explicit setting, even to its default)."""
        return key in self.lines


def read_manifest(path: str | Path) -> Manifest:
    """Read and check a `collection.yaml`; paths in it are relative to its folder.

    Raises:
        ManifestError: invalid YAML, a key named twice, an unknown key (the valid ones are listed), a value of the
            wrong type, an unknown task or format, or a file that does not exist.
    """
    path = Path(path)
    values, lines = _load_yaml(path)
    base = path.parent
    manifest = Manifest(path=path, lines=lines)

    def fail(key: str, problem: str) -> ManifestError:
        return manifest.error(key, problem)  # type: ignore[return-value]  # path is set, so a ManifestError

    for key in values:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise fail(key, f"unknown key; {hint}valid keys: {', '.join(KEYS)}")
    name = _typed(values.get("name"), str, "name", "a name (text)", fail)
    if name is not None and not name.strip():
        raise fail("name", "expected a non-empty name")
    task = _typed(values.get("task"), str, "task", f"a task: {' or '.join(TASKS)}", fail)
    if task is not None and task not in TASKS:
        raise fail("task", f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    documents = None
    if values.get("documents") is not None:
        documents = _file(values["documents"], "documents", base, "text", fail)
    queries_file, split_queries = _file_or_splits(values.get("queries"), "queries", base, "queries", fail)
    qrels_file, split_qrels = _file_or_splits(values.get("qrels"), "qrels", base, "qrels", fail)
    candidates_file, split_candidates = _file_or_splits(values.get("candidates"), "candidates", base, "run", fail)
    filtered = _typed(values.get("filtered"), bool, "filtered", "true or false", fail)
    folds = _typed(values.get("folds"), int, "folds", "a whole number of folds, 2 or more", fail)
    if folds is not None and folds < 2:
        raise fail("folds", f"expected a whole number of folds, 2 or more, found {folds}")
    dev_fraction = _typed(values.get("dev_fraction"), (int, float), "dev_fraction", "a number from 0 to below 1", fail)
    if dev_fraction is not None and not 0 <= dev_fraction < 1:
        raise fail("dev_fraction", f"expected a number from 0 (no dev split) to below 1, found {dev_fraction}")
    return Manifest(
        path=path,
        name=name,
        task=task,
        documents=documents,
        queries_file=queries_file,
        split_queries=split_queries,
        qrels_file=qrels_file,
        split_qrels=split_qrels,
        candidates_file=candidates_file,
        split_candidates=split_candidates,
        filtered=bool(filtered),
        folds=folds,
        dev_fraction=None if dev_fraction is None else float(dev_fraction),
        measures=_measures(values.get("measures"), fail),
        lines=lines,
    )


def _load_yaml(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The top-level mapping and the line of every key (dotted: ``"qrels.test"``); keys named twice are errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(path, None, "(file)", f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    lines: dict[str, int] = {}
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # refuses characters YAML does not allow (NUL, most controls) right here
        node = loader.get_single_node()
        values = _python(node, "", loader, lines, path) if node is not None else {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else _reader_line(error, text)
        problem = getattr(error, "problem", None) or _reader_problem(error)
        raise ManifestError(path, line, "(file)", f"not valid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(values, dict):
        raise ManifestError(path, 1, "(top level)", f"expected a mapping of keys ({', '.join(KEYS)})")
    return values, lines


def _reader_line(error: yaml.YAMLError, text: str) -> int | None:
    # A yaml.reader.ReaderError (a character YAML forbids) has a character position but no mark.
    position = getattr(error, "position", None)
    return None if position is None else text.count("\n", 0, position) + 1


def _reader_problem(error: yaml.YAMLError) -> str:
    character = getattr(error, "character", None)
    if isinstance(character, str):
        character = ord(character)
    if isinstance(character, int):
        return f"the character #x{character:04x} is not allowed in YAML"
    return " ".join(str(error).split())


def _python(node: yaml.Node, key: str, loader: yaml.SafeLoader, lines: dict[str, int], path: Path) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ManifestError(path, line, key or "(top level)", "expected plain names as keys")
            name = str(loader.construct_object(key_node))
            full = f"{key}.{name}" if key else name
            if name in out:
                raise ManifestError(path, line, full, f"named twice (first on line {lines[full]})")
            lines[full] = line
            out[name] = _python(value_node, full, loader, lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_python(item, key, loader, lines, path) for item in node.value]
    return loader.construct_object(node, deep=True)


def _typed(value: Any, types: type | tuple[type, ...], key: str, expected: str, fail) -> Any:
    # bool is an int in Python; `folds: true` is a mistake, not 1 fold.
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise fail(key, f"expected {expected}, found {value!r}")
    if not isinstance(value, types):
        raise fail(key, f"expected {expected}, found {_kind(value)} {value!r}")
    return value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean"}.get(type(value), type(value).__name__)


def _file_or_splits(value: Any, key: str, base: Path, kind: str, fail) -> tuple[FileSpec | None, dict[str, FileSpec]]:
    """One file for all splits (a name, or a mapping with `path`), or a mapping of split names to files."""
    if value is None:
        return None, {}
    if isinstance(value, str) or (isinstance(value, dict) and "path" in value):
        return _file(value, key, base, kind, fail), {}
    if not isinstance(value, dict) or not value:
        raise fail(key, f"expected a file name, or one file per split ({{test: FILE}}), found {_kind(value)}")
    splits: dict[str, FileSpec] = {}
    for split, file_value in value.items():
        if not split.strip() or any(c.isspace() or c in "/\\" for c in split):
            raise fail(f"{key}.{split}", "expected a split name such as train, dev or test (no spaces or slashes)")
        splits[split] = _file(file_value, f"{key}.{split}", base, kind, fail)
    return None, splits


def _file(value: Any, key: str, base: Path, kind: str, fail) -> FileSpec:
    """A file spec: `FILE` or `{path: FILE, format: ..., fields: ...}`; the file must exist."""
    allowed = FILE_KEYS + (("fields",) if kind == "queries" else ())
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        raise fail(key, f"expected a file name or {{path: FILE, format: FORMAT}}, found {_kind(value)} {value!r}")
    for name in value:
        if name not in allowed:
            raise fail(f"{key}.{name}", f"unknown key; valid keys of a file: {', '.join(allowed)}")
    raw = value.get("path")
    if not isinstance(raw, str) or not raw.strip():
        raise fail(f"{key}.path" if "path" in value else key, "expected a file name")
    path = base / Path(raw).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise fail(key, f"file {path} {what}")
    formats = {"text": TEXT_FORMATS, "queries": TEXT_FORMATS, "qrels": QRELS_FORMATS, "run": ("trec",)}[kind]
    format = value.get("format")
    if format is not None and format not in formats:
        raise fail(f"{key}.format", f"unknown format {format!r}; valid formats: {', '.join(formats)}")
    if format is None and kind in ("text", "queries"):
        format = format_from_extension(path)
        if format is None:
            known = ", ".join(f"{ext} ({fmt})" for ext, fmt in EXTENSIONS.items())
            raise fail(key, f"cannot tell the format of {path.name} from its extension ({known}); {FORMAT_HINT}")
    fields: tuple[str, ...] = ("title",)
    if "fields" in value:
        raw_fields = value["fields"]
        fields = (
            (raw_fields,)
            if isinstance(raw_fields, str)
            else tuple(raw_fields or ())
            if isinstance(raw_fields, list)
            else ()
        )
        if not fields or any(name not in TOPIC_FIELDS for name in fields):
            expected = f"TREC topic fields from {', '.join(TOPIC_FIELDS)}"
            raise fail(f"{key}.fields", f"expected {expected}, found {raw_fields!r}")
        if format != "trec":
            raise fail(f"{key}.fields", "fields choose the parts of TREC topics; this file is not format trec")
    return FileSpec(path, key, format, fields)


def _measures(value: Any, fail) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise fail("measures", f"expected a list of measure names such as [AP, RR, nDCG@10], found {value!r}")
    import ir_measures  # the metric library's own parser: fail here, not after training

    for name in names:
        try:
            ir_measures.parse_measure(name).validate_params()
        except (NameError, ValueError, SyntaxError, TypeError, AssertionError):
            raise fail("measures", f"unknown measure {name!r}; examples: AP, RR, nDCG@10, P@10, R@100") from None
    return tuple(names)
