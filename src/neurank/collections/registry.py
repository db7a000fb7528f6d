"""The registry of named collections, and how a name or a place becomes a collection.

A collection named ``NAME`` lives in ``DATA_DIR/NAME``. ``DATA_DIR`` is the argument given, else the environment
variable ``NEURANK_DATA``, else ``./data``. Loaders are named as ``"module:function"`` and imported on first use,
so listing collections imports no reader.

What `load_collection` accepts (`resolve_collection` tells them apart):

- ``irds:ID``: a dataset of ir_datasets (`neurank.collections.irds`);
- a path: anything with a path separator, starting with ``.`` or ``~``, or given as a `Path`
  (``./mydata``, ``../data/qa``, ``/abs/qa``): a collection folder (`neurank.collections.folder`);
- a bare word: a registered name (``wikiqa``), else a collection folder ``DATA_DIR/WORD``, else a collection folder
  ``./WORD``. Registered names come first, so a folder that shares one is reached as ``./wikiqa``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from neurank.collections.collection import Collection
from neurank.collections.folder import folder_kind, load_folder, plan_folder
from neurank.collections.irds import PREFIX as IRDS_PREFIX

DATA_ENV_VAR = "NEURANK_DATA"


class UnknownCollectionError(KeyError, ValueError):
    """No collection of that name is registered."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class CollectionInfo:
    """One registered collection.

    Attributes:
        loader: ``"module:function"``; the function takes the collection folder and keyword options.
        files: files that must exist in the collection folder for the loader's default options.
        layouts: sub-folders of the collection folder that the loader also accepts as the place of `files`.
        url: the publisher's download (an archive), if the publisher offers one.
        folded: the collection has no official split; its loader makes k folds and takes `fold` and `folds`.
    """

    name: str
    description: str
    loader: str
    files: tuple[str, ...]
    url: str | None = None
    layouts: tuple[str, ...] = ("",)
    folded: bool = False

    def missing_files(self, folder: str | Path) -> list[str]:
        """The required files absent from `folder` (empty when some accepted layout has them all)."""
        folder = Path(folder)
        for layout in self.layouts:
            if all((folder / layout / name).is_file() for name in self.files):
                return []
        return [name for name in self.files if not (folder / name).is_file()]

    def load(self, folder: str | Path, **options) -> Collection:
        """Import the loader and call it on `folder` with `options`."""
        module_name, function_name = self.loader.split(":")
        return getattr(importlib.import_module(module_name), function_name)(folder, **options)


REGISTRY: dict[str, CollectionInfo] = {
    info.name: info
    for info in (
        CollectionInfo(
            name="wikiqa",
            description="WikiQA answer-sentence selection (Yang et al. 2015): 3,047 Bing questions, 29,258 sentences",
            loader="neurank.collections.wikiqa:load_wikiqa",
            files=("WikiQA-train.tsv", "WikiQA-dev.tsv", "WikiQA-test.tsv"),
            url="https://download.microsoft.com/download/E/5/F/E5FCFCEE-7005-4814-853D-DAA7C66507E0/WikiQACorpus.zip",
            layouts=("", "WikiQACorpus"),
        ),
        CollectionInfo(
            name="nfcorpus",
            description="NFCorpus medical ad-hoc retrieval (Boteva et al. 2016): NutritionFacts queries, PubMed docs",
            loader="neurank.collections.nfcorpus:load_nfcorpus",
            files=(
                "dev.docs",
                "test.docs",
                "train.titles.queries",
                "dev.titles.queries",
                "test.titles.queries",
                "train.2-1-0.qrel",
                "dev.2-1-0.qrel",
                "test.2-1-0.qrel",
            ),  # fmt: skip
            url="https://www.cl.uni-heidelberg.de/statnlpgroup/nfcorpus/nfcorpus.tar.gz",
        ),
        CollectionInfo(
            name="cranfield",
            description="Cranfield 1400 aeronautics abstracts, 225 queries, graded judgements (k-fold splits)",
            loader="neurank.collections.smart:load_cranfield",
            files=("cran.all.1400", "cran.qry", "cranqrel"),
            url="http://ir.dcs.gla.ac.uk/resources/test_collections/cran/cran.tar.gz",
            folded=True,
        ),
        CollectionInfo(
            name="cisi",
            description="CISI library-science abstracts, 1,460 docs, 112 queries, binary judgements (k-fold splits)",
            loader="neurank.collections.smart:load_cisi",
            files=("CISI.ALL", "CISI.QRY", "CISI.REL"),
            url="http://ir.dcs.gla.ac.uk/resources/test_collections/cisi/cisi.tar.gz",
            folded=True,
        ),
    )
}


def collection_info(name: str) -> CollectionInfo:
    """The registry entry for `name`; `UnknownCollectionError` lists the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownCollectionError(
            f"unknown collection {name!r}; known collections: {', '.join(sorted(REGISTRY))}"
        ) from None


def resolve_data_dir(data_dir: str | Path | None = None, *, must_exist: bool = True) -> Path:
    """The data directory: `data_dir`, else ``$NEURANK_DATA``, else ``./data``.

    Raises:
        FileNotFoundError: `must_exist` and the directory does not exist (the message says where the path came from).
    """
    if data_dir is not None:
        path, origin = Path(data_dir), "the data_dir argument"
    elif os.environ.get(DATA_ENV_VAR):
        path, origin = Path(os.environ[DATA_ENV_VAR]), f"${DATA_ENV_VAR}"
    else:
        path, origin = Path("data"), f"the default, since ${DATA_ENV_VAR} is not set"
    if must_exist and not path.is_dir():
        raise FileNotFoundError(
            f"data directory {path} ({origin}) does not exist; pass a data directory, set {DATA_ENV_VAR}, "
            "or fetch a collection with `neurank download NAME`"
        )
    return path


def list_collections(data_dir: str | Path | None = None) -> list[dict]:
    """One entry per registered collection, then one per collection folder found in the data directory.

    Every entry has name, kind (``"registered"``, ``"beir"``, ``"manifest"`` or ``"beir+manifest"``), description,
    path, found, missing (files), url. A folder entry also has `holds` (`FolderPlan.describe`: task, files, splits),
    or, when its manifest is broken, found False and `error` (the message). Folders are described from their file
    names; nothing is read but their `collection.yaml`.
    """
    root = resolve_data_dir(data_dir, must_exist=False)
    listing = []
    for info in REGISTRY.values():
        missing = info.missing_files(root / info.name)
        listing.append(
            {
                "name": info.name,
                "kind": "registered",
                "description": info.description,
                "path": str(root / info.name),
                "found": not missing,
                "missing": missing,
                "url": info.url,
            }
        )
    for folder in collection_folders(root):
        entry: dict = {"name": folder.name, "kind": folder_kind(folder), "path": str(folder)}
        entry.update(missing=[], url=None)
        try:
            holds = plan_folder(folder).describe()
        except (ValueError, OSError) as error:  # ManifestError is a ValueError; a missing file an OSError
            entry.update(description=f"not loadable: {error}", found=False, error=str(error))
        else:
            entry.update(description=holds["description"], found=True, holds=holds)
        listing.append(entry)
    return listing


def collection_folders(root: str | Path) -> list[Path]:
    """The sub-folders of `root` that are collection folders (BEIR layout or manifest), registered names excluded."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        folder for folder in root.iterdir() if folder.name not in REGISTRY and folder.is_dir() and folder_kind(folder)
    )


@dataclass(frozen=True)
class CollectionPlace:
    """Where a collection argument points.

    Attributes:
        kind: ``"registered"``, ``"folder"`` or ``"irds"``.
        name: the registered name, the folder's name or the ir_datasets id.
        path: the folder (registered collections: ``DATA_DIR/NAME``), None for ir_datasets.
    """

    kind: str
    name: str
    path: Path | None = None

    @property
    def slug(self) -> str:
        """A file-name-safe name: the default index folder is ``indexes/<slug>``, and run tags use it."""
        if self.kind == "irds":
            return "irds-" + "-".join(part for part in self.name.replace("\\", "/").split("/") if part)
        return "-".join(self.name.split()) or "collection"


def is_place(name_or_place: str | Path) -> bool:
    """Whether the argument is a path (a `Path`, or text with a separator or starting with ``.`` or ``~``)."""
    if isinstance(name_or_place, Path):
        return True
    separators = [sep for sep in (os.sep, os.altsep, "/") if sep]
    return any(sep in name_or_place for sep in separators) or name_or_place.startswith((".", "~"))


def resolve_collection(name_or_place: str | Path, data_dir: str | Path | None = None) -> CollectionPlace:
    """Tell a registered name, a folder and an ir_datasets id apart (rules in the module docstring).

    Raises:
        UnknownCollectionError: a bare word that is no registered name nor a collection folder (the message lists
            the names and folders found).
        FileNotFoundError: a path to a missing folder, or to a folder that is not a collection.
    """
    text = str(name_or_place)
    if not isinstance(name_or_place, Path) and text.startswith(IRDS_PREFIX):
        dataset_id = text[len(IRDS_PREFIX) :].strip()
        if not dataset_id:
            raise UnknownCollectionError(f"{text!r}: name an ir_datasets id after irds:, e.g. irds:beir/scifact")
        return CollectionPlace("irds", dataset_id)
    if is_place(name_or_place):
        folder = Path(text).expanduser()
        if folder_kind(folder) is None:
            plan_folder(folder)  # raises FileNotFoundError saying why this is not a collection folder
        return CollectionPlace("folder", folder.resolve().name, folder)
    if text in REGISTRY:
        return CollectionPlace("registered", text, resolve_data_dir(data_dir, must_exist=False) / text)
    root = resolve_data_dir(data_dir, must_exist=False)
    for folder in (root / text, Path(text)):
        if folder.is_dir() and folder_kind(folder):
            return CollectionPlace("folder", text, folder)
    folders = [folder.name for folder in collection_folders(root)]
    found = f"; collection folders in {root}: {', '.join(folders)}" if folders else ""
    hint = f" (./{text} is a folder, but holds neither corpus.jsonl nor collection.yaml)" if Path(text).is_dir() else ""
    raise UnknownCollectionError(
        f"unknown collection {text!r}{hint}; known collections: {', '.join(sorted(REGISTRY))}{found}; "
        "a folder path (./mydata, /data/mydata) or irds:ID also works"
    )


def is_folded(name: str) -> bool:
    """Whether `name` has no official split and is cut into k folds (Cranfield, CISI): the one place of that rule."""
    return collection_info(name).folded


def load_collection(
    name_or_place: str | Path,
    data_dir: str | Path | None = None,
    *,
    fold: int | None = None,
    folds: int | None = None,
    **options,
) -> Collection:
    """Load a collection by registered name, folder path or ``irds:ID`` (see the module docstring).

    `fold` and `folds` choose the test fold of a collection without an official split (`is_folded`); other
    collections ignore them, so callers pass them whatever the collection. A folder whose `collection.yaml` sets
    `folds` takes `fold` but keeps its own number of folds. Folders and ir_datasets take the option `dev_fraction`
    (the share of train carved into dev when there is no dev split), which registered collections, all of which
    have a dev split, ignore; registered loaders take their own options.

    Raises:
        UnknownCollectionError: a name that is not registered and no collection folder.
        FileNotFoundError: required files are missing (the message names them and how to get them).
        ManifestError: a folder's `collection.yaml` is wrong (the message names the file, line and key).
    """
    place = resolve_collection(name_or_place, data_dir)
    if place.kind == "folder":
        assert place.path is not None
        return load_folder(place.path, fold=fold, **_only(options, ("dev_fraction",), place))
    if place.kind == "irds":
        from neurank.collections.irds import load_irds

        return load_irds(place.name, **_only(options, ("dev_fraction",), place))
    name = place.name
    info = collection_info(name)
    folder = resolve_data_dir(data_dir) / name
    missing = info.missing_files(folder)
    if missing:
        raise FileNotFoundError(
            f"collection {name!r}: {', '.join(missing)} not found in {folder}; run `neurank download {name}`, "
            f"or set {DATA_ENV_VAR} to a directory that holds {name}/"
        )
    if info.folded:
        options.update({key: value for key, value in (("fold", fold), ("folds", folds)) if value is not None})
    options.pop("dev_fraction", None)  # every registered collection has its own dev split
    return info.load(folder, **options)


def _only(options: dict, allowed: tuple[str, ...], place: CollectionPlace) -> dict:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{place.kind} collection {place.name!r} takes no option {', '.join(unknown)}; "
            f"it takes {', '.join(allowed)}"
        )
    return {key: value for key, value in options.items() if value is not None}


def download(name: str, data_dir: str | Path | None = None, *, url: str | None = None) -> Path:
    """Fetch the publisher's archive for `name` and unpack it into ``DATA_DIR/name``.

    The archive (zip or tar, compressed or not) is downloaded and unpacked inside a temporary folder in the data
    directory; a single top-level folder in the archive is unwrapped. The result is moved into place only when it
    holds the collection's required files, so a failed download leaves nothing behind. An existing
    ``DATA_DIR/name`` is never overwritten.

    Args:
        url: download from here instead of the registered URL (a mirror, or a ``file://`` URL).

    Returns:
        The collection folder.
    """
    info = collection_info(name)
    url = url or info.url
    if url is None:
        raise ValueError(f"collection {name!r} has no download URL; place its files in DATA_DIR/{name} by hand")
    root = resolve_data_dir(data_dir, must_exist=False)
    target = root / name
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it to download {name!r} again")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.download.", dir=root) as tmp:
        archive = Path(tmp) / "archive"
        try:
            with urllib.request.urlopen(url) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:  # urllib.error.URLError is an OSError
            raise ConnectionError(f"could not download {name!r} from {url}: {err}") from err
        unpacked = Path(tmp) / "unpacked"
        _extract(archive, unpacked, url)
        folder = _unwrap_single_folder(unpacked)
        missing = info.missing_files(folder)
        if missing:
            raise ValueError(f"the archive from {url} lacks {', '.join(missing)}; nothing was written")
        os.replace(folder, target)
    return target


def _extract(archive: Path, dest: Path, url: str) -> None:
    dest.mkdir()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(dest)  # zipfile drops absolute paths and ".." itself
        return
    try:
        # "r:*" detects the compression; some ".tar.gz" files (CISI's) are plain tar.
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError as err:
        raise ValueError(f"the file at {url} is neither a zip nor a tar archive") from err
    with tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if member.name.startswith("/") or ".." in parts or member.issym() or member.islnk():
                raise ValueError(f"the archive from {url} has an unsafe member {member.name!r}")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4; members were checked above
            tar.extractall(dest)


def _unwrap_single_folder(folder: Path) -> Path:
    entries = [entry for entry in folder.iterdir() if entry.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder
