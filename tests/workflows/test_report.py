"""`neurank report`: one self-contained HTML page whose results table is the evaluation of the checkpoint."""

from __future__ import annotations

import base64
import dataclasses
import re

import pytest

from neurank.collections import load_collection
from neurank.evaluation import evaluate
from neurank.inference.reranker import Reranker
from neurank.retrieval import bm25_run
from neurank.training import train
from neurank.workflows.report import build_report, read_metrics, write_report


def images(page: str) -> list[bytes]:
    return [
        base64.b64decode(data) for data in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)">', page)
    ]


def table_row(page: str, first_cell: str) -> list[str]:
    match = re.search(rf"<tr><td>{re.escape(first_cell)}</td>(.*?)</tr>", page)
    assert match, first_cell
    return re.findall(r"<td>(.*?)</td>", match.group(1))


@pytest.mark.slow  # draws the explain figures with matplotlib (about 3 s)
def test_report_is_self_contained_and_its_table_is_the_checkpoints_evaluation(trained, tiny_data_dir):
    output = write_report(trained, explain=2)
    assert output == trained / "report.html"
    page = output.read_text(encoding="utf-8")
    # Nothing external: no scripts, no stylesheets, no remote or relative images.
    assert not re.search(r"<script|<link|<iframe|@import|url\(", page)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    pngs = images(page)
    assert len(pngs) == 2 + 2  # curves, wins and losses, two explain figures
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs)

    # The table: BM25 and the model re-ranking the dev split, evaluated independently here.
    collection = load_collection("wikiqa", tiny_data_dir)
    qrels = collection.split("dev").qrels
    bm25 = bm25_run(collection, "dev", k=100)
    model = Reranker.from_checkpoint(trained / "best.pt", device="cpu").rerank_collection(collection, "dev", bm25)
    for name, run in (("BM25", bm25), ("match_pyramid", model)):
        values = evaluate(run, qrels, ["AP", "RR", "nDCG@10"])
        assert table_row(page, name) == [f"{v:.4f}" for v in values.values()]
    assert "This is the dev split" in page
    # The curves' table has one row per epoch of metrics.jsonl.
    assert len(read_metrics(trained / "metrics.jsonl")) == 2
    assert table_row(page, "2")[0] == str(read_metrics(trained / "metrics.jsonl")[1]["step"])
    assert "<details open><summary>experiment config" in page
    assert sorted(p.name for p in trained.iterdir() if not p.is_dir()) == [
        "best.pt",
        "last.pt",
        "metrics.jsonl",
        "report.html",
    ]


@pytest.mark.slow  # re-ranks the test split and draws the training curves (about 4 s)
def test_report_on_test_and_without_explain_figures(trained, tmp_path):
    page = build_report(trained, split="test", explain=0)
    assert (
        "Results on wikiqa test (3 queries)" in page and "model selection (and any fusion weight) read only dev" in page
    )
    assert len(images(page)) == 2
    write_report(trained, tmp_path / "elsewhere" / "r.html", explain=1, figures_dir=tmp_path / "figures")
    page = (tmp_path / "elsewhere" / "r.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    saved = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert len(saved) == 3 and saved[0].startswith("explain-query-")
    assert saved[1:] == ["training-curves.png", "wins-losses.png"]
    # The files are the very images the page embeds.
    embedded = images(page)
    assert sorted(embedded) == sorted((tmp_path / "figures" / name).read_bytes() for name in saved)


def test_report_of_a_model_without_interaction_matrix_says_so(tiny_config, tmp_path):
    config = dataclasses.replace(
        tiny_config,
        model="arci",
        model_config={"conv_channels": [4], "hidden_sizes": [4]},
        train=dataclasses.replace(tiny_config.train, epochs=1),
    )
    train(config, tmp_path / "arci", progress=False)
    page = build_report(tmp_path / "arci", explain=2)
    assert "arci is representation-based" in page
    assert len(images(page)) == 2


def test_missing_run_folder_and_bad_metrics_lines_are_named(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="best.pt"):
        build_report(tmp_path / "nothing")
    (trained / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: expected one JSON record per line"):
        build_report(trained)


def test_report_of_a_cross_encoder_shows_what_it_read_for_each_chosen_query(tiny_config, tiny_bert_folder, tmp_path):
    values = tiny_config.to_dict()
    values["model"], values["model_config"] = "cross_encoder", {"hf_model": str(tiny_bert_folder), "dropout": 0.0}
    values["train"] = {**values["train"], "epochs": 1}
    from neurank.config import config_from_dict

    train(config_from_dict(values), tmp_path / "ce", progress=False)
    page = build_report(tmp_path / "ce", explain=2)
    assert "representation-based" not in page
    assert "the word pieces and sequences the model read, and its score" in page
    explained = page.count("<b>Query ")
    assert explained >= 1 and len(images(page)) == 2 + explained  # curves, wins/losses, then one per chosen query
