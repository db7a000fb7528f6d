from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from neurank.collections import ANSWER_SELECTION, DataWarning, Doc, FormatError, Qrel, Query
from neurank.collections.wikiqa import find_wikiqa_dir, load_wikiqa, read_wikiqa_tsv

HEADER = "QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel"


def write_tsv(path: Path, rows: list[str], *, header: str = HEADER, newline: str = "\r\n") -> Path:
    path.write_bytes((newline.join([header, *rows]) + newline).encode("utf-8"))
    return path


def row(question_id: str, question: str, document_id: str, index: int, sentence: str, label: int | str) -> str:
    return f"{question_id}\t{question}\t{document_id}\tTitle {document_id}\t{document_id}-{index}\t{sentence}\t{label}"


# Q0: mixed labels; Q3: no correct sentence; Q4: only correct sentences; Q7: mixed.
ROWS = [
    row("Q0", "how are glacier caves formed?", "D0", 0, 'A "glacier cave" is a cave formed within the ice.', 0),
    row("Q0", "how are glacier caves formed?", "D0", 1, "The ice facade is approximately 60 m high", 1),
    row("Q3", 'what is "la bamba', "D3", 0, "La Bamba is a Mexican folk song.", 0),
    row("Q3", 'what is "la bamba', "D3", 1, "It was adapted by Ritchie Valens.", 0),
    row("Q4", "who wrote hamlet", "D4", 0, "Hamlet is a tragedy by William Shakespeare.", 1),
    row("Q7", "when did it end", "D7", 0, "It began in 1914.", 0),
    row("Q7", "when did it end", "D7", 1, "It ended in 1918.", 1),
    row("Q7", "when did it end", "D7", 2, "Many died.", 0),
]


@pytest.fixture
def wikiqa_root(tmp_path: Path) -> Path:
    for split in ("train", "dev", "test"):
        write_tsv(tmp_path / f"WikiQA-{split}.tsv", ROWS)
    return tmp_path


def test_read_rows_keeps_quotes_and_strips_crlf(tmp_path):
    rows = read_wikiqa_tsv(write_tsv(tmp_path / "t.tsv", ROWS))
    assert len(rows) == 8
    assert rows[0].sentence == 'A "glacier cave" is a cave formed within the ice.'
    assert rows[2].question == 'what is "la bamba'  # an unbalanced quote must not swallow the next rows
    assert rows[1].label == 1 and rows[1].sentence_id == "D0-1" and rows[1].document_title == "Title D0"
    assert all("\r" not in field for r in rows for field in r[:6])


def test_lf_line_endings_and_bom(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join([HEADER, *ROWS[:2]]) + "\n").encode())
    rows = read_wikiqa_tsv(path)
    assert [r.question_id for r in rows] == ["Q0", "Q0"]


def test_wrong_field_count_names_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [ROWS[0], "Q0\thow are glacier caves formed?\tD0\tD0-1\tOnly six fields\t1"])
    with pytest.raises(FormatError) as info:
        read_wikiqa_tsv(path)
    message = str(info.value)
    assert f"{path}:3:" in message
    assert "7 tab-separated fields (QuestionID, Question, DocumentID" in message
    assert info.value.line == 3


def test_extra_tab_inside_a_field_is_an_error(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [ROWS[0] + "\textra"])
    with pytest.raises(FormatError, match=r"t\.tsv:2: expected 7 tab-separated fields"):
        read_wikiqa_tsv(path)


@pytest.mark.parametrize("label", ["2", "", "yes", "1.0"])
def test_bad_label(tmp_path, label):
    path = write_tsv(tmp_path / "t.tsv", [*ROWS[:3], row("Q3", "q", "D3", 2, "s", label)])
    with pytest.raises(FormatError) as info:
        read_wikiqa_tsv(path)
    assert f"{path}:5:" in str(info.value) and "Label 0 or 1" in str(info.value)


def test_missing_header(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", ROWS[1:], header=ROWS[0])
    with pytest.raises(FormatError, match=r"t\.tsv:1: expected the header line QuestionID<TAB>Question"):
        read_wikiqa_tsv(path)


def test_empty_file(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="an empty file"):
        read_wikiqa_tsv(path)


def test_empty_question_id_is_an_error(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [ROWS[0], row("", "q", "D9", 0, "s", 0)])
    with pytest.raises(FormatError, match=r"t\.tsv:3: expected a non-empty QuestionID"):
        read_wikiqa_tsv(path)


def test_empty_sentence_is_kept_with_one_warning(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [ROWS[0], row("Q0", "q", "D0", 1, "", 1), row("Q0", "q", "D0", 2, " ", 0)])
    expected = r"2 row\(s\) with an empty Question or Sentence \(first at line 3\)"
    with pytest.warns(DataWarning, match=expected) as record:
        rows = read_wikiqa_tsv(path)
    assert len(record) == 1
    assert [r.sentence for r in rows[1:]] == ["", " "]


def test_non_utf8_bytes_warn_once_and_decode(tmp_path):
    path = tmp_path / "t.tsv"
    body = "\r\n".join([HEADER, *ROWS[:2]]).encode() + b"\r\n" + row("Q0", "q", "D0", 2, "caf\xe9", 0).encode("cp1252")
    path.write_bytes(body + b"\r\n")
    with pytest.warns(DataWarning, match=r"1 line\(s\) were not valid UTF-8 \(first at line 4\)") as record:
        rows = read_wikiqa_tsv(path)
    assert len(record) == 1
    assert rows[2].sentence == "café"


def test_blank_lines_are_skipped(tmp_path):
    path = write_tsv(tmp_path / "t.tsv", [ROWS[0], "", ROWS[1], ""])
    assert len(read_wikiqa_tsv(path)) == 2


def test_load_ids_follow_ref_convention(wikiqa_root):
    collection = load_wikiqa(wikiqa_root)
    assert collection.name == "wikiqa" and collection.task == ANSWER_SELECTION
    assert collection.measures == ("AP", "RR", "nDCG@10")
    assert collection.docs == {}
    assert list(collection.splits) == ["train", "dev", "test", "dev-all", "test-all"]
    train = collection.split("train")
    assert train.queries == {
        "1": Query("1", "how are glacier caves formed?"),
        "2": Query("2", 'what is "la bamba'),
        "3": Query("3", "who wrote hamlet"),
        "4": Query("4", "when did it end"),
    }
    assert train.candidates["4"] == [
        Doc("0", "It began in 1914."),
        Doc("1", "It ended in 1918."),
        Doc("2", "Many died."),
    ]
    assert train.qrels[:2] == [Qrel("1", "0", 0), Qrel("1", "1", 1)]
    assert len(train.qrels) == 8
    assert train.original_ids["4"] == ("Q7", {"0": "D7-0", "1": "D7-1", "2": "D7-2"})
    assert collection.doc_text("train", "1", "1") == "The ice facade is approximately 60 m high"


def test_load_filters_dev_and_test_only(wikiqa_root):
    collection = load_wikiqa(wikiqa_root)
    for name in ("dev", "test"):
        split = collection.split(name)
        # Q3 (no correct sentence) and Q4 (no incorrect sentence) are dropped; ids keep their positions.
        assert list(split.queries) == ["1", "4"]
        assert set(split.candidates) == {"1", "4"}
        assert {q.query_id for q in split.qrels} == {"1", "4"}
        assert list(collection.split(f"{name}-all").queries) == ["1", "2", "3", "4"]
    assert len(collection.split("train").queries) == 4
    notes = " ".join(collection.notes)
    assert "at least one correct and one incorrect" in notes and "dev 2 of 4" in notes


def test_non_contiguous_question_rows_group_by_first_appearance(tmp_path):
    rows = [ROWS[0], ROWS[2], ROWS[1]]
    for split in ("train", "dev", "test"):
        write_tsv(tmp_path / f"WikiQA-{split}.tsv", rows)
    train = load_wikiqa(tmp_path).split("train")
    assert train.original_ids["1"] == ("Q0", {"0": "D0-0", "1": "D0-1"})
    assert train.original_ids["2"] == ("Q3", {"0": "D3-0"})


def test_official_zip_layout(tmp_path):
    (tmp_path / "WikiQACorpus").mkdir()
    for split in ("train", "dev", "test"):
        write_tsv(tmp_path / "WikiQACorpus" / f"WikiQA-{split}.tsv", ROWS)
    assert find_wikiqa_dir(tmp_path) == tmp_path / "WikiQACorpus"
    assert len(load_wikiqa(tmp_path).split("test").queries) == 2


def test_missing_files_are_named(tmp_path):
    write_tsv(tmp_path / "WikiQA-train.tsv", ROWS)
    with pytest.raises(FileNotFoundError, match="WikiQA-dev.tsv, WikiQA-test.tsv"):
        load_wikiqa(tmp_path)


# --- the real collection -------------------------------------------------------------------------------------------

# From PROVENANCE.md: data rows, questions, questions with >= 1 positive, label 1, label 0.
COUNTS = {
    "train": (20360, 2118, 873, 1040, 19320),
    "dev": (2733, 296, 126, 140, 2593),
    "test": (6165, 633, 243, 293, 5872),
}


def read_ref(path: Path) -> set[tuple[str, str, int]]:
    judged = set()
    for line in path.read_text().splitlines():
        query_id, _, doc_id, relevance = line.split()
        judged.add((query_id, doc_id, int(relevance)))
    return judged


@pytest.fixture(scope="module")
def wikiqa(shared_data):
    return load_wikiqa(shared_data / "wikiqa")


@pytest.mark.integration
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_real_counts(shared_data, wikiqa, split):
    rows_expected, questions, answered, positives, negatives = COUNTS[split]
    rows = read_wikiqa_tsv(shared_data / "wikiqa" / f"WikiQA-{split}.tsv")
    assert len(rows) == rows_expected
    assert len({r.question_id for r in rows}) == questions
    assert Counter(r.label for r in rows) == {1: positives, 0: negatives}
    assert sum('"' in r.question or '"' in r.sentence or '"' in r.document_title for r in rows) > 0

    full = wikiqa.split(split if split == "train" else f"{split}-all")
    assert len(full.queries) == questions
    assert sum(len(c) for c in full.candidates.values()) == rows_expected
    assert Counter(q.relevance for q in full.qrels) == {1: positives, 0: negatives}
    assert len({q.query_id for q in full.qrels if q.relevance}) == answered


@pytest.mark.integration
@pytest.mark.parametrize("split", ["dev", "test"])
def test_real_filtered_qrels_equal_official_ref(shared_data, wikiqa, split):
    official = read_ref(shared_data / "wikiqa" / "official" / f"WikiQA-{split}-filtered.ref")
    qrels = wikiqa.split(split).qrels
    assert len(qrels) == len(official)
    assert set(qrels) == official
    assert set(wikiqa.split(split).queries) == {query_id for query_id, _, _ in official}


@pytest.mark.integration
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_real_unfiltered_qrels_equal_official_ref(shared_data, wikiqa, split):
    official = read_ref(shared_data / "wikiqa" / "official" / f"WikiQA-{split}.ref")
    assert set(wikiqa.split(split if split == "train" else f"{split}-all").qrels) == official


@pytest.mark.integration
def test_real_original_ids(wikiqa):
    question_id, sentence_ids = wikiqa.split("test").original_ids["1"]
    assert question_id == "Q0"
    assert sentence_ids["0"] == "D0-0"
    assert wikiqa.split("test").queries["1"].text == "HOW AFRICAN AMERICANS WERE IMMIGRATED TO THE US"
    assert len(wikiqa.split("test").queries) == 237 and len(wikiqa.split("dev").queries) == 122
