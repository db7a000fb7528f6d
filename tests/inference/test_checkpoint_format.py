"""Checkpoint format 2: what it records, and format-1 files (neurank 0.1) loading with defaults and a warning.

tests/fixtures/checkpoint-format-1.pt was written by neurank 0.1.0 (tests/fixtures/make_checkpoint_format_1.py, run
from that version's checkout); checkpoint-format-1.json beside it holds the scores that version gave with it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from neurank.collections import load_collection
from neurank.inference import load_reranker
from neurank.inference.checkpoint import (
    FORMAT,
    CheckpointError,
    CheckpointWarning,
    load_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
)
from neurank.inference.first_stage import FORMAT_1_FIRST_STAGE, FirstStage, bm25_first_stage
from neurank.retrieval import BM25Config
from neurank.retrieval.bm25 import BM25_TOKENIZER

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORMAT_1 = FIXTURES / "checkpoint-format-1.pt"
EXPECTED = json.loads((FIXTURES / "checkpoint-format-1.json").read_text(encoding="utf-8"))


def scores_of(run):
    return sorted([r.query_id, r.doc_id, pytest.approx(r.score, abs=1e-6)] for r in run)


def test_the_fixture_is_a_small_format_1_file():
    assert FORMAT_1.stat().st_size < 16_000
    raw = torch.load(FORMAT_1, weights_only=True)
    assert raw["format"] == 1 and raw["neurank_version"] == "0.1.0" and "first_stage" not in raw


def test_a_format_1_checkpoint_loads_with_a_warning_naming_it_and_the_first_stage_it_was_trained_with():
    with pytest.warns(CheckpointWarning, match=r"checkpoint-format-1\.pt: checkpoint format 1 \(neurank 0\.1\.0\)"):
        checkpoint = load_checkpoint(FORMAT_1)
    assert checkpoint["format"] == FORMAT == 2
    assert checkpoint["first_stage"] == FORMAT_1_FIRST_STAGE.to_dict()
    assert checkpoint["fusion_alpha"] == EXPECTED["fusion_alpha"]


def test_format_1s_first_stage_is_todays_training_bm25_but_for_the_tokenizer_fixes():
    # Pinned: when BM25's defaults change, format-1 checkpoints keep the settings they were trained with. Since
    # issue 22 the tokenizer drops zero-width characters and splits CJK characters; format 1 predates both.
    today = bm25_first_stage().to_dict()
    assert today["tokenizer"].pop("drop_zero_width") is True and today["tokenizer"].pop("split_cjk") is True
    assert today == FORMAT_1_FIRST_STAGE.to_dict()
    assert FORMAT_1_FIRST_STAGE.tokenizer().config == dataclasses.replace(
        BM25_TOKENIZER, drop_zero_width=False, split_cjk=False
    )
    assert FORMAT_1_FIRST_STAGE.to_dict() == {
        "kind": "bm25",
        "tokenizer": {
            "lowercase": True,
            "strip_accents": True,
            "drop_punctuation": True,
            "stopwords": "en",
            "stemmer": "english",
            "backend": "regex",
        },
        "k1": 0.9,
        "b": 0.4,
        "method": "lucene",
        "normalisation": "max",
    }


def test_a_format_1_checkpoint_scores_as_neurank_0_1_scored_it(tiny_data_dir):
    with pytest.warns(CheckpointWarning):
        reranker = load_reranker(FORMAT_1, device="cpu")
    assert reranker.first_stage == FORMAT_1_FIRST_STAGE and reranker.fusion_alpha == EXPECTED["fusion_alpha"]
    collection = load_collection("wikiqa", tiny_data_dir)
    assert scores_of(reranker.rerank_collection(collection, "test")) == EXPECTED["rerank_collection"]
    rank = EXPECTED["rank"]
    got = {r.doc_id: r.score for r in reranker.rank(rank["query"], rank["docs"])}
    assert got == pytest.approx(rank["scores"], abs=1e-6)
    triples = [tuple(t) for t in EXPECTED["predict"]["triples"]]
    assert reranker.predict(triples).tolist() == pytest.approx(EXPECTED["predict"]["scores"], abs=1e-6)
    reranker.fusion_alpha = None  # the model's own scores, as 0.1 gave them
    assert scores_of(reranker.rerank_collection(collection, "test")) == EXPECTED["rerank_collection_unfused"]


def test_upgrading_writes_format_2_that_loads_silently_and_scores_the_same(tmp_path, tiny_data_dir):
    upgraded = upgrade_checkpoint(FORMAT_1, tmp_path / "upgraded.pt")
    assert upgraded["format"] == 2 and upgraded["first_stage"] == FORMAT_1_FIRST_STAGE.to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        reranker = load_reranker(tmp_path / "upgraded.pt", device="cpu")
    collection = load_collection("wikiqa", tiny_data_dir)
    assert scores_of(reranker.rerank_collection(collection, "test")) == EXPECTED["rerank_collection"]
    # Nothing is overwritten, not even the file itself.
    with pytest.raises(FileExistsError, match="upgraded.pt"):
        upgrade_checkpoint(FORMAT_1, tmp_path / "upgraded.pt")


def test_a_checkpoint_from_training_records_its_first_stage_and_fusion(fused_checkpoint):
    checkpoint = load_checkpoint(fused_checkpoint)
    assert checkpoint["format"] == 2
    assert checkpoint["first_stage"] == bm25_first_stage().to_dict()
    fusion = checkpoint["fusion"]
    assert fusion["alpha"] == checkpoint["fusion_alpha"] and fusion["unfused"] == checkpoint["best_metric"]
    assert fusion["metric"] == checkpoint["metric"] and 0.0 <= fusion["fused"] <= 1.0
    # The text encoder's entries, as format 1 had them.
    assert set(checkpoint["text"]) == {"max_query_len", "max_doc_len"} and checkpoint["vocab"]["tokens"][:2]
    assert load_reranker(fused_checkpoint, device="cpu").first_stage == bm25_first_stage()


def test_unknown_formats_and_malformed_first_stages_are_named(tmp_path):
    with pytest.warns(CheckpointWarning):
        checkpoint = load_checkpoint(FORMAT_1)
    for entry, message in (
        ({**checkpoint, "format": 3}, r"format 3 .*reads formats 1 to 2"),
        ({**checkpoint, "first_stage": "bm25"}, "first_stage must be a mapping with a 'kind'"),
        ({**checkpoint, "first_stage": {"kind": "bm25", "k1": "high"}}, "malformed BM25 settings"),
    ):
        torch.save(entry, tmp_path / "odd.pt")
        with pytest.raises(CheckpointError, match=message) as error:
            load_checkpoint(tmp_path / "odd.pt")
        assert "odd.pt" in str(error.value)


def test_a_first_stage_not_recorded_or_of_another_kind_still_loads(tmp_path):
    with pytest.warns(CheckpointWarning):
        checkpoint = load_checkpoint(FORMAT_1)
    save_checkpoint(tmp_path / "none.pt", {**checkpoint, "first_stage": None})
    assert load_reranker(tmp_path / "none.pt", device="cpu").first_stage is None
    dense = FirstStage("dense", {"model": "some-encoder"})
    save_checkpoint(tmp_path / "dense.pt", {**checkpoint, "first_stage": dense.to_dict()})
    loaded = load_reranker(tmp_path / "dense.pt", device="cpu").first_stage
    assert loaded == dense and not loaded.computable and "cannot compute" in loaded.describe()


def test_other_bm25_settings_round_trip(tmp_path):
    stage = bm25_first_stage(config=BM25Config(k1=1.2, b=0.75))
    assert FirstStage.from_dict(stage.to_dict()) == stage
    assert stage.describe().startswith("BM25 (k1 1.2, b 0.75, lucene IDF; stop words en, stemmer english")
    assert dataclasses.replace(stage, normalisation="zscore").computable is False


@pytest.mark.slow
def test_an_onnx_export_carries_the_first_stage(tmp_path):
    pytest.importorskip("onnxruntime")
    from neurank.inference.export import export_checkpoint
    from neurank.inference.onnx_reranker import read_metadata

    shutil.copy(FORMAT_1, tmp_path / "old.pt")
    with pytest.warns(CheckpointWarning):
        export_checkpoint(tmp_path / "old.pt", tmp_path / "old.onnx")
    assert read_metadata(tmp_path / "old.onnx")["first_stage"] == FORMAT_1_FIRST_STAGE.to_dict()
    assert load_reranker(tmp_path / "old.onnx").first_stage == FORMAT_1_FIRST_STAGE
