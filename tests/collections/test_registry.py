from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from neurank.collections import Collection
from neurank.collections.registry import (
    REGISTRY,
    UnknownCollectionError,
    collection_info,
    download,
    list_collections,
    load_collection,
    resolve_data_dir,
)

WIKIQA_HEADER = "QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel"
WIKIQA_TSV = (
    "\r\n".join([WIKIQA_HEADER, "Q0\twho\tD0\tT\tD0-0\tno\t0", "Q0\twho\tD0\tT\tD0-1\tyes\t1"]) + "\r\n"
).encode()
WIKIQA_FILES = {f"WikiQA-{split}.tsv": WIKIQA_TSV for split in ("train", "dev", "test")}


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return path


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


# --- names and the data directory ----------------------------------------------------------------------------------


def test_registry_names_and_urls():
    assert list(REGISTRY) == ["wikiqa", "nfcorpus", "cranfield", "cisi"]
    assert REGISTRY["wikiqa"].url.endswith("/WikiQACorpus.zip")
    assert REGISTRY["nfcorpus"].url == "https://www.cl.uni-heidelberg.de/statnlpgroup/nfcorpus/nfcorpus.tar.gz"
    assert REGISTRY["cranfield"].url.endswith("/cran/cran.tar.gz")
    assert REGISTRY["cisi"].url.endswith("/cisi/cisi.tar.gz")


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownCollectionError) as info:
        collection_info("msmarco")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert str(info.value) == "unknown collection 'msmarco'; known collections: cisi, cranfield, nfcorpus, wikiqa"
    with pytest.raises(UnknownCollectionError):
        load_collection("msmarco", Path("."))
    with pytest.raises(UnknownCollectionError):
        download("msmarco", Path("."))


def test_loaders_are_imported_lazily():
    code = (
        "import sys, neurank.collections.registry as r; "
        "assert not any(m in sys.modules for m in ('neurank.collections.smart', 'neurank.collections.wikiqa'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resolve_data_dir_argument_env_default(tmp_path, monkeypatch):
    (tmp_path / "arg").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("NEURANK_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("NEURANK_DATA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data directory data \(the default.*NEURANK_DATA"):
        resolve_data_dir()
    assert resolve_data_dir(must_exist=False) == Path("data")
    (tmp_path / "data").mkdir()
    assert resolve_data_dir() == Path("data")
    with pytest.raises(FileNotFoundError, match="nowhere.*the data_dir argument"):
        resolve_data_dir(tmp_path / "nowhere")


def test_list_collections_reports_found_and_missing(tmp_path):
    write_files(tmp_path / "wikiqa" / "WikiQACorpus", WIKIQA_FILES)
    write_files(tmp_path / "cisi", {"CISI.ALL": b"", "CISI.QRY": b""})
    listing = {entry["name"]: entry for entry in list_collections(tmp_path)}
    assert list(listing) == ["wikiqa", "nfcorpus", "cranfield", "cisi"]
    assert listing["wikiqa"]["found"] and listing["wikiqa"]["missing"] == []
    assert listing["wikiqa"]["path"] == str(tmp_path / "wikiqa")
    assert listing["cisi"]["missing"] == ["CISI.REL"] and not listing["cisi"]["found"]
    assert "dev.docs" in listing["nfcorpus"]["missing"] and "train.docs" not in listing["nfcorpus"]["missing"]
    assert all(entry["description"] and entry["url"] for entry in listing.values())


def test_load_collection_from_env(tmp_path, monkeypatch):
    write_files(tmp_path / "wikiqa", WIKIQA_FILES)
    monkeypatch.setenv("NEURANK_DATA", str(tmp_path))
    collection = load_collection("wikiqa")
    assert isinstance(collection, Collection) and collection.name == "wikiqa"
    assert len(collection.split("test").queries) == 1


def test_load_collection_missing_files_says_how_to_get_them(tmp_path):
    write_files(tmp_path / "nfcorpus", {"dev.docs": b"MED-1\tx "})
    with pytest.raises(FileNotFoundError) as info:
        load_collection("nfcorpus", tmp_path)
    message = str(info.value)
    assert "test.docs" in message and "train.2-1-0.qrel" in message and "dev.docs," not in message
    assert "neurank download nfcorpus" in message and "NEURANK_DATA" in message


def test_load_collection_passes_options(tmp_path):
    write_files(tmp_path / "nfcorpus", {name: b"" for name in REGISTRY["nfcorpus"].files})
    with pytest.raises(ValueError, match="unknown NFCorpus query set 'bogus'"):
        load_collection("nfcorpus", tmp_path, queries="bogus")


# --- download ------------------------------------------------------------------------------------------------------


def test_download_zip_with_top_folder(tmp_path):
    files = {f"WikiQACorpus/{name}": data for name, data in WIKIQA_FILES.items()}
    files["__MACOSX/WikiQACorpus/._WikiQA-dev.tsv"] = b"resource fork"
    archive = make_zip(tmp_path / "WikiQACorpus.zip", files)
    data = tmp_path / "data"
    target = download("wikiqa", data, url=archive.as_uri())
    assert target == data / "wikiqa"
    assert sorted(p.name for p in target.iterdir()) == sorted(WIKIQA_FILES)
    assert os.listdir(data) == ["wikiqa"]  # no temporary leftovers
    assert load_collection("wikiqa", data).split("dev").qrels[1].relevance == 1


def test_download_gzipped_tar_with_top_folder(tmp_path):
    files = {f"nfcorpus/{name}": b"" for name in REGISTRY["nfcorpus"].files}
    files["nfcorpus/raw/dev.docs.ids"] = b"MED-1\n"
    archive = make_tar(tmp_path / "nfcorpus.tar.gz", files)
    target = download("nfcorpus", tmp_path / "data", url=archive.as_uri())
    assert (target / "dev.docs").is_file() and (target / "raw" / "dev.docs.ids").is_file()
    assert {e["name"]: e["found"] for e in list_collections(tmp_path / "data")}["nfcorpus"]


def test_download_plain_tar_named_tar_gz(tmp_path):
    # The CISI archive is an uncompressed tar despite its name, with the files at the top level.
    files = {"CISI.ALL": b".I 1\n", "CISI.BLN": b"", "CISI.QRY": b".I 1\n", "CISI.REL": b"1 1 0 0\n"}
    archive = make_tar(tmp_path / "cisi.tar.gz", files, mode="w")
    target = download("cisi", tmp_path / "data", url=archive.as_uri())
    assert sorted(p.name for p in target.iterdir()) == sorted(files)


def test_download_never_overwrites(tmp_path):
    archive = make_zip(tmp_path / "w.zip", WIKIQA_FILES)
    write_files(tmp_path / "data" / "wikiqa", {"mine.txt": b"keep me"})
    with pytest.raises(FileExistsError, match="already exists"):
        download("wikiqa", tmp_path / "data", url=archive.as_uri())
    assert os.listdir(tmp_path / "data" / "wikiqa") == ["mine.txt"]


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        ("incomplete zip", ValueError, "lacks WikiQA-dev.tsv, WikiQA-test.tsv; nothing was written"),
        ("not an archive", ValueError, "neither a zip nor a tar archive"),
        ("unsafe tar", ValueError, "unsafe member '../evil.tsv'"),
        ("no such file", ConnectionError, "could not download 'wikiqa'"),
    ],
)
def test_failed_download_leaves_nothing(tmp_path, payload, error, match):
    source = tmp_path / "archive"
    if payload == "incomplete zip":
        make_zip(source, {"WikiQA-train.tsv": WIKIQA_TSV})
    elif payload == "not an archive":
        source.write_text("<html>404</html>")
    elif payload == "unsafe tar":
        make_tar(source, {**WIKIQA_FILES, "../evil.tsv": b"x"})
    data = tmp_path / "data"
    with pytest.raises(error, match=match):
        download("wikiqa", data, url=source.as_uri())
    assert os.listdir(data) == []
    assert not (tmp_path / "evil.tsv").exists()


# --- the real collections ------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::neurank.collections.errors.DataWarning")  # Cranfield's known empty abstracts
def test_real_listing_and_loading(shared_data):
    assert {entry["name"]: entry["missing"] for entry in list_collections(shared_data)} == {
        "wikiqa": [],
        "nfcorpus": [],
        "cranfield": [],
        "cisi": [],
    }
    assert len(load_collection("wikiqa", shared_data).split("test").queries) == 237
    assert len(load_collection("cranfield", shared_data).docs) == 1400
    assert len(load_collection("cisi", shared_data).docs) == 1460
