"""SMART-format parsing and the Cranfield / CISI loaders: tiny files first, then the real collections."""

from __future__ import annotations

import re
import warnings
from collections import Counter

import pytest

from neurank.collections import ADHOC, DataWarning, FormatError, Qrel
from neurank.collections.smart import load_cisi, load_cranfield, read_smart


def write(path, text: str, newline: str = "\n", encoding: str = "utf-8", bom: bool = False) -> None:
    data = text.replace("\n", newline).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def raises_at(path, line: int, match: str):
    """`pytest.raises(FormatError)` whose message names `path:line` and contains `match`."""
    return pytest.raises(FormatError, match=rf"{re.escape(str(path))}:{line}: expected .*{match}")


# ---- read_smart -------------------------------------------------------------------------------------------------

SMART = """.I 001
.T
A title
on two lines
.A
First, A.
.A
Second, B.
.W
  Body text.
.I 7
.W
Only text.
"""


@pytest.mark.parametrize("newline,bom", [("\n", False), ("\r\n", False), ("\r\n", True)])
def test_read_smart_fields_ids_and_line_endings(tmp_path, newline, bom):
    path = tmp_path / "f.all"
    write(path, SMART, newline, bom=bom)
    first, second = read_smart(path)
    assert first.record_id == "1" and first.line == 1  # leading zeros dropped
    assert first.fields == {"title": "A title\non two lines", "authors": "First, A.\nSecond, B.", "text": "Body text."}
    assert second == ("7", 11, {"text": "Only text."})


def test_read_smart_accepts_trailing_space_after_marker_and_every_known_marker(tmp_path):
    path = tmp_path / "f.all"
    write(path, ".I 1\n.T \nt\n.B\nb\n.K\nk\n.C\nc\n.X\n1\t5\t1\n.W  \nw\n")
    (record,) = read_smart(path)
    assert set(record.fields) == {"title", "source", "keywords", "classification", "references", "text"}
    assert record.fields["title"] == "t"


def test_read_smart_keeps_lines_that_only_look_like_markers(tmp_path):
    path = tmp_path / "f.all"
    write(path, ".I 1\n.W\n.5 mach at .T = 3\n.net\n")
    assert read_smart(path)[0].fields["text"] == ".5 mach at .T = 3\n.net"


def test_read_smart_non_utf8_bytes_decoded_with_one_warning(tmp_path):
    path = tmp_path / "f.all"
    path.write_bytes(b".I 1\n.W\ncaf\xe9 na\xefve\n\xe9t\xe9\n")
    with pytest.warns(DataWarning, match="2 line"):
        (record,) = read_smart(path)
    assert record.fields["text"] == "café naïve\nété"


@pytest.mark.parametrize(
    "text,line,match",
    [
        ("stray text\n.I 1\n.W\nx\n", 1, "'.I <id>' to start the first record"),
        ("\n.T\ntitle\n", 2, "'.I <id>' to start the first record"),
        (".I 1\n.W\nx\n.Z\ny\n", 4, "field marker"),
        (".I 1\n.W\nx\n.I 2\n.W\ny\n.I 01\n", 7, r"a new record id.*line 1\)"),
        (".I abc\n.W\nx\n", 1, "numeric id"),
        (".I 1\n.W\nx\n.I\n.W\ny\n", 4, "numeric id"),
        (".I -3\n.W\nx\n", 1, "numeric id"),
        (".I 1\ntext before any marker\n", 2, "a field marker after '.I'"),
    ],
    ids=[
        "text-before-I",
        "marker-before-I",
        "unknown-marker",
        "duplicate-id",
        "non-numeric",
        "missing-id",
        "negative-id",
        "text-after-I",
    ],
)
def test_read_smart_format_errors_name_file_and_line(tmp_path, text, line, match):
    path = tmp_path / "bad.all"
    write(path, text, "\r\n")
    with raises_at(path, line, match):
        read_smart(path)


def test_read_smart_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.all"):
        read_smart(tmp_path / "nope.all")


# ---- load_cranfield on a tiny copy ------------------------------------------------------------------------------

CRAN_DOCS = """.I 1
.T
wing flow .
.A
a.
.B
j. 1.
.W
wing flow .
  the lift of a
wing .
.I 2
.T
shock   waves .
.A
.B
.W
.I 3
.T
.A
.B
.W
.I 4
.T
heat .
.A
.B
.W
heat . transfer in slabs .
"""
CRAN_QUERIES = ".I 001\n.W\nwhat lift ?\n.I 002\n.W\nwhat shock ?\n.I 004\n.W\nwhat heat\nin slabs ?\n"
CRAN_QRELS = "1 1 2 \n1 4 -1 \n2 2 1 \n2 1 4 \n3 4 3 \n3 3 -1 "


@pytest.fixture
def cran_root(tmp_path):
    root = tmp_path / "cran"
    root.mkdir()
    write(root / "cran.all.1400", CRAN_DOCS)
    write(root / "cran.qry", CRAN_QUERIES, "\r\n")
    write(root / "cranqrel", CRAN_QRELS)
    return root


def load_quietly(loader, root, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return loader(root, **kwargs)


def test_cranfield_text_is_title_plus_abstract_without_repeated_title(cran_root):
    docs = load_quietly(load_cranfield, cran_root, folds=2).docs
    assert docs["1"].text == "wing flow . the lift of a wing ."
    assert docs["2"].text == "shock waves ."
    assert docs["3"].text == ""
    assert docs["4"].text == "heat . transfer in slabs ."


def test_cranfield_warns_once_for_empty_abstracts_and_once_for_empty_docs(cran_root):
    with pytest.warns(DataWarning) as record:
        load_cranfield(cran_root, folds=2)
    messages = [str(w.message) for w in record]
    assert any("2 document(s) have an empty abstract" in m and "2, 3" in m for m in messages)
    assert any("1 document(s) have no text at all" in m and m.endswith(": 3") for m in messages)
    assert len(messages) == 2


def test_cranfield_query_ids_are_positions_and_grades_map_to_relevance(cran_root):
    collection = load_quietly(load_cranfield, cran_root, folds=2)
    assert collection.name == "cranfield" and collection.task == ADHOC
    assert collection.measures == ("AP", "nDCG@10", "P@10")
    every = collection.split("all")
    assert list(every.queries) == ["1", "2", "3"]
    assert every.queries["3"].text == "what heat in slabs ?"  # .I 004 is the third query
    assert set(every.qrels) == {
        Qrel("1", "1", 3),
        Qrel("1", "4", 0),
        Qrel("2", "2", 4),
        Qrel("2", "1", 1),
        Qrel("3", "4", 2),
        Qrel("3", "3", 0),
    }
    assert any("position" in note for note in collection.notes)


@pytest.mark.parametrize(
    "qrels,line",
    [
        ("1 1 2\n1 2\n", 2),
        ("1 1 2\n1 x 2\n", 2),
        ("1 1 5\n", 1),
        ("1 1 0\n", 1),
        ("1 1 2\n\n1 2 2 extra\n", 3),
        ("1 1 2\n1 1 3\n", 2),
    ],
    ids=["two-fields", "non-numeric", "grade-5", "grade-0", "four-fields", "duplicate-pair"],
)
def test_cranfield_malformed_qrels(cran_root, qrels, line):
    write(cran_root / "cranqrel", qrels)
    with raises_at(cran_root / "cranqrel", line, ""):
        load_quietly(load_cranfield, cran_root, folds=2)


def test_cranfield_unknown_ids_in_qrels_are_dropped_with_one_warning(cran_root):
    write(cran_root / "cranqrel", CRAN_QRELS + "\n4 1 2\n1 99 2\n2 98 3\n")
    with pytest.warns(DataWarning) as record:
        collection = load_cranfield(cran_root, folds=2)
    dropped = [str(w.message) for w in record if "dropped" in str(w.message)]
    assert len(dropped) == 1
    assert re.search(r"cranqrel: dropped 3 qrel\(s\).*1 unknown queries, 2 unknown documents", dropped[0])
    assert len(collection.split("all").qrels) == 6


def test_cranfield_missing_file_is_named(cran_root):
    (cran_root / "cran.qry").unlink()
    with pytest.raises(FileNotFoundError, match="cran.qry"):
        load_quietly(load_cranfield, cran_root)


# ---- load_cisi on a tiny copy -----------------------------------------------------------------------------------

CISI_DOCS = "".join(
    f".I {i}\n.T \nTitle {i}\n.A\nX, Y.\n.A\nZ, W.\n.W\n  Abstract {i}.\n.X\n{i}\t1\t{i}\n" for i in range(1, 7)
)
CISI_QUERIES = ".I 1\n.W\nfirst?\n.I 2\n.T\nA paper\n.A\nQ.\n.W\nits abstract\n.B\n(JASIS)\n\n" + "".join(
    f".I {i}\n.W\nq{i}\n" for i in range(3, 7)
)
CISI_REL = "".join(f"{q:6d}{d:7d}\t0\t0.000000\n" for q, d in [(1, 1), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6)])


@pytest.fixture
def cisi_root(tmp_path):
    root = tmp_path / "cisi"
    root.mkdir()
    write(root / "CISI.ALL", CISI_DOCS, "\r\n")
    write(root / "CISI.QRY", CISI_QUERIES, "\r\n")
    write(root / "CISI.REL", CISI_REL, "\r\n")
    return root


def test_cisi_tiny(cisi_root):
    collection = load_cisi(cisi_root, folds=2)
    assert collection.name == "cisi" and collection.measures == ("AP", "nDCG@10", "P@10")
    assert collection.docs["3"].text == "Title 3 Abstract 3."
    every = collection.split("all")
    assert sorted(every.queries) == ["1", "2", "3", "4"]  # 5 and 6 are unjudged
    assert every.queries["2"].text == "A paper its abstract"
    assert {qrel.relevance for qrel in every.qrels} == {1} and len(every.qrels) == 6
    assert any("2 of 6 queries have no judgements" in note for note in collection.notes)


@pytest.mark.parametrize(
    "rel,line",
    [("     1      1\t0\n", 1), ("     1      1\t0\t0.0\n     x      2\t0\t0.0\n", 2), ("1 1 0 0\n1 1 0 0\n", 2)],
    ids=["three-columns", "non-numeric", "duplicate-pair"],
)
def test_cisi_malformed_rel(cisi_root, rel, line):
    write(cisi_root / "CISI.REL", rel, "\r\n")
    with raises_at(cisi_root / "CISI.REL", line, ""):
        load_cisi(cisi_root, folds=2)


def test_cisi_unknown_doc_in_rel_dropped_with_one_warning(cisi_root):
    write(cisi_root / "CISI.REL", CISI_REL + "     1   9999\t0\t0.000000\n    77      1\t0\t0.000000\n", "\r\n")
    with pytest.warns(DataWarning, match=r"CISI.REL: dropped 2 qrel"):
        collection = load_cisi(cisi_root, folds=2)
    assert len(collection.split("all").qrels) == 6


# ---- the real collections ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cranfield(shared_data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collection = load_cranfield(shared_data / "cranfield")
    return collection, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


@pytest.fixture(scope="module")
def cisi(shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # CISI has nothing to warn about
        return load_cisi(shared_data / "cisi")


@pytest.mark.integration
def test_cranfield_counts(cranfield):
    collection, _ = cranfield
    every = collection.split("all")
    assert len(collection.docs) == 1400 and set(collection.docs) == {str(i) for i in range(1, 1401)}
    assert len(every.queries) == 225 and set(every.queries) == {str(i) for i in range(1, 226)}
    assert len(every.qrels) == 1837
    # PROVENANCE grade counts -1: 225, 1: 128, 2: 387, 3: 734, 4: 363, as relevance 5 - grade (and -1 -> 0).
    assert Counter(q.relevance for q in every.qrels) == {0: 225, 4: 128, 3: 387, 2: 734, 1: 363}
    assert len({q.doc_id for q in every.qrels}) == 924
    assert Counter(q.query_id for q in every.qrels if q.relevance == 0) == {str(i): 1 for i in range(1, 226)}


@pytest.mark.integration
def test_cranfield_warns_about_docs_471_and_995(cranfield):
    collection, messages = cranfield
    assert any("2 document(s) have an empty abstract (.W): 471, 995" in m for m in messages)
    assert any("2 document(s) have no text at all" in m and "471, 995" in m for m in messages)
    assert collection.docs["471"].text == collection.docs["995"].text == ""


@pytest.mark.integration
def test_cranfield_qrel_query_n_is_the_nth_query(cranfield, shared_data):
    collection, _ = cranfield
    records = read_smart(shared_data / "cranfield" / "cran.qry")
    assert [r.record_id for r in records[:4]] == ["1", "2", "4", "8"] and records[-1].record_id == "365"
    queries = collection.split("all").queries
    for position, record in enumerate(records, start=1):
        assert queries[str(position)].text == " ".join(record.fields["text"].split())
    qrels = collection.split("all").qrels
    # First and last lines of cranqrel: "1 184 2 " and "225 1188 -1" (no final newline).
    assert qrels[0] == Qrel("1", "184", 3) and qrels[-1] == Qrel("225", "1188", 0)


@pytest.mark.integration
def test_cranfield_title_appears_once(cranfield):
    collection, _ = cranfield
    text = collection.docs["1"].text
    assert text.startswith("experimental investigation of the aerodynamics of a wing in a slipstream . an experimental")
    assert text.count("experimental investigation of the aerodynamics") == 1


@pytest.mark.integration
def test_cisi_counts(cisi, shared_data):
    every = cisi.split("all")
    assert len(cisi.docs) == 1460 and set(cisi.docs) == {str(i) for i in range(1, 1461)}
    assert len(read_smart(shared_data / "cisi" / "CISI.QRY")) == 112
    assert len(every.queries) == 76 and len(every.qrels) == 3114
    assert {q.relevance for q in every.qrels} == {1}
    assert len({q.doc_id for q in every.qrels}) == 1162
    assert any("36 of 112 queries have no judgements" in note for note in cisi.notes)
    assert "Keywords" not in cisi.docs["321"].text and cisi.docs["321"].text.startswith("An Information-Theoretic")


@pytest.mark.integration
@pytest.mark.parametrize("loader,folder", [(load_cranfield, "cranfield"), (load_cisi, "cisi")])
def test_kfold_splits_partition_judged_queries(shared_data, loader, folder):
    root = shared_data / folder
    folds = [load_quietly(loader, root, folds=5, fold=f) for f in range(5)]
    judged = set(folds[0].split("all").queries)
    tests = [set(c.split("test").queries) for c in folds]
    assert set().union(*tests) == judged and sum(map(len, tests)) == len(judged)  # disjoint cover
    for collection in folds:
        parts = [set(collection.split(name).queries) for name in ("train", "dev", "test")]
        assert set().union(*parts) == judged and sum(map(len, parts)) == len(judged)
        assert sum(len(collection.split(name).qrels) for name in ("train", "dev", "test")) == len(
            collection.split("all").qrels
        )
    again = load_quietly(loader, root, folds=5, fold=0)
    assert again.split("test").queries == folds[0].split("test").queries
    other_seed = load_quietly(loader, root, folds=5, fold=0, seed=1)
    assert set(other_seed.split("test").queries) != tests[0]
