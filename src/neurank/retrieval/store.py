"""`DocumentStore`: document texts on disk, read by id on demand, for collections too large to hold as a dict.

Re-ranking the top 100 of a first-stage run needs the texts of the retrieved documents only, so an index keeps its
documents beside it in a folder of four files:

    ids.bin / texts.bin        every id / text, UTF-8, one after the other, in index order
    offsets.npy                (n + 1, 2) int64: where id i and text i start (row i) and end (row i + 1)
    order.npy                  the rows sorted by id, so an id is found by binary search
    store.json                 the format number and the document count

The files are memory-mapped, so opening a store of a million documents costs a few pages, and a lookup reads about
log2(n) ids and one text. Ids compare as UTF-8 bytes, which is the order of Python's `str` comparison.

A `DocumentStore` is a read-only `Mapping[str, Doc]`: it goes wherever a dict of documents does
(`Reranker.rerank(run, queries, store)`, `Collection.docs`), and `values()` streams the documents in index order.
"""

from __future__ import annotations

import json
import mmap
from array import array
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from neurank.collections.records import Doc
from neurank.retrieval.folders import atomic_dir

STORE_FORMAT = 1
_META = "store.json"
# Lone surrogates (possible in JSON input) survive a round trip, and sort where their code points do.
_ERRORS = "surrogatepass"


class DocumentStore(Mapping[str, Doc]):
    """The documents of a store folder written by `DocumentStore.write` or `DocumentStoreWriter`.

    Raises (on opening):
        FileNotFoundError: `directory` holds no store.
        ValueError: a store of another format, or files that do not agree (a truncated copy).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta_path = self.directory / _META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.directory}: not a neurank document store (no {_META})")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f'{meta_path}: expected the JSON object a document store writes ({{"format": {STORE_FORMAT}, '
                f'"documents": N}}), found unreadable text ({type(error).__name__}); rebuild it'
            ) from None
        if not isinstance(meta, dict) or not isinstance(meta.get("documents"), int):
            raise ValueError(
                f'{meta_path}: expected the JSON object a document store writes ({{"format": {STORE_FORMAT}, '
                f'"documents": N}}), found {str(meta)[:60]!r}; rebuild it'
            )
        if meta.get("format") != STORE_FORMAT:
            raise ValueError(f"{meta_path}: store format {meta.get('format')!r}, expected {STORE_FORMAT}; rebuild it")
        self._n = int(meta["documents"])
        self._offsets = np.load(self.directory / "offsets.npy", mmap_mode="r")
        self._order = np.load(self.directory / "order.npy", mmap_mode="r")
        self._ids = _map(self.directory / "ids.bin")
        self._texts = _map(self.directory / "texts.bin")
        # Memoryviews index to Python ints four times faster than numpy scalars: lookups are a loop of such reads.
        self._order_view = memoryview(self._order)
        self._offset_view = memoryview(self._offsets.reshape(-1))  # id i starts at [2i], text i at [2i + 1]
        ends = self._offsets[-1].tolist() if len(self._offsets) else [0, 0]
        if (
            self._offsets.shape != (self._n + 1, 2)
            or len(self._order) != self._n
            or ends != [len(self._ids), len(self._texts)]
        ):
            raise ValueError(f"{self.directory}: the store's files do not agree (a truncated copy?); rebuild it")

    @classmethod
    def write(cls, docs: Iterable[Doc], directory: str | Path) -> DocumentStore:
        """Write `docs` to a new store at `directory` (replacing a store there) and open it.

        Raises:
            ValueError: two documents with the same id.
            FileExistsError: `directory` is a non-empty folder that holds no store (it is left alone).
        """
        directory = Path(directory)
        if directory.exists() and not cls.saved_in(directory) and (not directory.is_dir() or any(directory.iterdir())):
            raise FileExistsError(f"{directory}: exists and is not a document store; choose another folder")
        with atomic_dir(directory) as tmp, DocumentStoreWriter(tmp) as writer:
            for doc in docs:
                writer.add(doc)
        return cls(directory)

    @staticmethod
    def saved_in(directory: str | Path) -> bool:
        """Whether `directory` holds a store."""
        return (Path(directory) / _META).is_file()

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        """The ids, in index order."""
        for start in range(0, self._n, 4096):
            bounds = self._offsets[start : min(start + 4096, self._n) + 1, 0].tolist()
            for begin, end in zip(bounds, bounds[1:], strict=False):
                yield self._ids[begin:end].decode("utf-8", _ERRORS)

    def __getitem__(self, doc_id: str) -> Doc:
        row = self.row(doc_id)
        if row is None:
            raise KeyError(doc_id)
        return Doc(doc_id, self.text_at(row))

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.row(doc_id) is not None

    def values(self) -> ValuesView[Doc]:
        """The documents in index order, read sequentially (not one lookup each)."""
        return _StoreValues(self)

    def items(self) -> ItemsView[str, Doc]:
        """`(doc_id, Doc)` in index order, read sequentially."""
        return _StoreItems(self)

    def _docs(self) -> Iterator[Doc]:
        for start in range(0, self._n, 4096):
            rows = self._offsets[start : min(start + 4096, self._n) + 1].tolist()
            for (id_begin, text_begin), (id_end, text_end) in zip(rows, rows[1:], strict=False):
                yield Doc(
                    self._ids[id_begin:id_end].decode("utf-8", _ERRORS),
                    self._texts[text_begin:text_end].decode("utf-8", _ERRORS),
                )

    def row(self, doc_id: str) -> int | None:
        """The index position of `doc_id`, or None when the store does not hold it."""
        key = doc_id.encode("utf-8", _ERRORS)
        order, offsets, ids = self._order_view, self._offset_view, self._ids
        low, high = 0, self._n
        while low < high:
            middle = (low + high) // 2
            row = order[middle]
            if ids[offsets[2 * row] : offsets[2 * row + 2]] < key:
                low = middle + 1
            else:
                high = middle
        if low < self._n:
            row = order[low]
            if ids[offsets[2 * row] : offsets[2 * row + 2]] == key:
                return row
        return None

    def doc_at(self, row: int) -> Doc:
        """The document at index position `row`."""
        begin, end = self._offsets[row : row + 2, 0].tolist()
        return Doc(self._ids[begin:end].decode("utf-8", _ERRORS), self.text_at(row))

    def text_at(self, row: int) -> str:
        """The text of the document at index position `row`."""
        if not 0 <= row < self._n:
            raise IndexError(f"row {row} is outside the store's {self._n} documents")
        begin, end = self._offsets[row : row + 2, 1].tolist()
        return self._texts[begin:end].decode("utf-8", _ERRORS)

    def __reduce__(self):
        # Memory maps do not pickle; a worker process reopens the folder instead.
        return (type(self), (self.directory,))

    def __repr__(self) -> str:
        return f"DocumentStore({str(self.directory)!r}, {self._n} documents)"


class _StoreValues(ValuesView[Doc]):
    _mapping: DocumentStore

    def __iter__(self) -> Iterator[Doc]:
        return self._mapping._docs()


class _StoreItems(ItemsView[str, Doc]):
    _mapping: DocumentStore

    def __iter__(self) -> Iterator[tuple[str, Doc]]:
        return ((doc.doc_id, doc) for doc in self._mapping._docs())


class DocumentStoreWriter:
    """Writes documents one at a time into an empty folder; `close` (or leaving the `with` block) completes it.

    The texts go straight to disk; only the ids stay in memory (to sort them at the end). Use it where documents
    pass by once anyway, e.g. `passing(docs)` while indexing them.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if any(self.directory.iterdir()):
            raise FileExistsError(f"{self.directory}: a document store is written into an empty folder")
        self._id_file: IO[bytes] = open(self.directory / "ids.bin", "wb")  # noqa: SIM115 (closed in close())
        self._text_file: IO[bytes] = open(self.directory / "texts.bin", "wb")  # noqa: SIM115
        self._offsets = array("q", [0, 0])
        self._ids: list[str] = []
        self._closed = False

    def add(self, doc: Doc) -> None:
        """Append one document."""
        id_bytes = doc.doc_id.encode("utf-8", _ERRORS)
        text_bytes = doc.text.encode("utf-8", _ERRORS)
        self._id_file.write(id_bytes)
        self._text_file.write(text_bytes)
        self._offsets.append(self._offsets[-2] + len(id_bytes))
        self._offsets.append(self._offsets[-2] + len(text_bytes))
        self._ids.append(doc.doc_id)

    def passing(self, docs: Iterable[Doc]) -> Iterator[Doc]:
        """Yield each of `docs` after writing it: the store fills as another consumer reads the documents."""
        for doc in docs:
            self.add(doc)
            yield doc

    def close(self) -> None:
        """Write the offsets, the sorted order and the metadata.

        Raises:
            ValueError: two documents with the same id.
        """
        if self._closed:
            return
        self._closed = True
        self._id_file.close()
        self._text_file.close()
        ids = self._ids
        order = sorted(range(len(ids)), key=ids.__getitem__)
        for before, after in zip(order, order[1:], strict=False):
            if ids[before] == ids[after]:
                raise ValueError(
                    f"document id {ids[before]!r} is given twice (documents {min(before, after) + 1} and "
                    f"{max(before, after) + 1}); ids must be unique"
                )
        offsets = np.frombuffer(self._offsets, dtype=np.int64).reshape(-1, 2)
        np.save(self.directory / "offsets.npy", offsets)
        np.save(self.directory / "order.npy", np.asarray(order, dtype=np.int64))
        meta = {"format": STORE_FORMAT, "documents": len(ids)}
        (self.directory / _META).write_text(json.dumps(meta), encoding="utf-8")

    def __enter__(self) -> DocumentStoreWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:  # leave no store behind that looks complete
            self._closed = True
            self._id_file.close()
            self._text_file.close()


def _map(path: Path) -> mmap.mmap | bytes:
    # mmap cannot map an empty file (a store of empty texts, or of no documents).
    if path.stat().st_size == 0:
        return b""
    with open(path, "rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
