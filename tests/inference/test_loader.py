"""`neurank.load_reranker`: one entry point that tells a PyTorch checkpoint from an ONNX model by the file's content,
and two sibling re-rankers with one surface and the scores each format gave before."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import neurank
from neurank.collections import ScoredDoc, load_collection
from neurank.inference import BaseReranker, OnnxReranker, Reranker, load_reranker, model_file_format
from neurank.inference.checkpoint import CheckpointError, load_checkpoint
from neurank.inference.loader import ONNX, PYTORCH
from neurank.inference.scorer import pad_ids
from neurank.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")

QUERY = "who wrote hamlet"
DOCS = ["hamlet is a tragedy written by william shakespeare", "paris is the capital of france", "the thames", "a play"]
SURFACE = {"predict", "rank", "rerank", "rerank_collection"}


def surface_scores(reranker, collection):
    """What each call of the surface gives, by (query id, doc id)."""
    pairs = [(QUERY, doc, float(i)) for i, doc in enumerate(DOCS)]
    run = [ScoredDoc("q", str(i), float(10 - i)) for i in range(len(DOCS))]
    return {
        "predict": dict(enumerate(reranker.predict(pairs).tolist())),
        "rank": {r.doc_id: r.score for r in reranker.rank(QUERY, DOCS, top_k=3)},
        "rerank": {
            r.doc_id: r.score
            for r in reranker.rerank(run, {"q": QUERY}, {str(i): d for i, d in enumerate(DOCS)}, depth=3)
        },
        "rerank_collection": {(r.query_id, r.doc_id): r.score for r in reranker.rerank_collection(collection, "test")},
    }


def test_the_two_rerankers_are_siblings_with_one_surface():
    assert not issubclass(OnnxReranker, Reranker) and not issubclass(Reranker, OnnxReranker)
    for cls in (Reranker, OnnxReranker):
        assert issubclass(cls, BaseReranker) and not inspect.isabstract(cls)
        public = {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}
        assert SURFACE <= public
        assert inspect.signature(cls.predict) == inspect.signature(BaseReranker.predict)
    assert neurank.load_reranker is load_reranker and neurank.Reranker is Reranker


def test_a_checkpoint_loads_as_the_pytorch_reranker_with_its_model_scores(trained, tiny_data_dir):
    path = trained / "best.pt"
    reranker = load_reranker(path, device="cpu")
    assert type(reranker) is Reranker and model_file_format(path) == PYTORCH
    collection = load_collection("wikiqa", tiny_data_dir)
    assert surface_scores(reranker, collection) == surface_scores(
        Reranker.from_checkpoint(path, device="cpu"), collection
    )

    # The scores are the checkpoint's model's own forward scores on its encoder's ids.
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_name"], len(checkpoint["vocab"]["tokens"]), checkpoint["model_config"])
    model.load_state_dict(checkpoint["state_dict"])
    query_ids, query_mask = pad_ids(reranker.encoder.encode_queries([QUERY] * len(DOCS)))
    doc_ids, doc_mask = pad_ids(reranker.encoder.encode_docs(DOCS))
    with torch.no_grad():
        expected = model.eval()(query_ids, doc_ids, query_mask, doc_mask).numpy()
    np.testing.assert_allclose(reranker.predict([(QUERY, doc) for doc in DOCS]), expected, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_an_onnx_file_loads_as_the_onnx_reranker_and_ranks_as_the_checkpoint(fused_checkpoint, tmp_path, tiny_data_dir):
    pytest.importorskip("onnxruntime")
    from neurank.inference.export import export_checkpoint

    export_checkpoint(fused_checkpoint, tmp_path / "model.onnx")
    reranker = load_reranker(tmp_path / "model.onnx")
    assert type(reranker) is OnnxReranker and reranker.uses_first_stage_score and reranker.fusion_alpha is not None
    collection = load_collection("wikiqa", tiny_data_dir)
    got = surface_scores(reranker, collection)
    assert got == surface_scores(OnnxReranker.from_file(tmp_path / "model.onnx"), collection)
    expected = surface_scores(load_reranker(fused_checkpoint, device="cpu"), collection)
    for call in SURFACE:
        assert got[call].keys() == expected[call].keys(), call
        np.testing.assert_allclose([got[call][k] for k in expected[call]], list(expected[call].values()), atol=1e-5)

    # The content decides, not the name.
    shutil.copy(tmp_path / "model.onnx", tmp_path / "onnx-inside.pt")
    shutil.copy(fused_checkpoint, tmp_path / "checkpoint-inside.onnx")
    assert model_file_format(tmp_path / "onnx-inside.pt") == ONNX
    assert model_file_format(tmp_path / "checkpoint-inside.onnx") == PYTORCH
    assert surface_scores(load_reranker(tmp_path / "onnx-inside.pt"), collection) == got
    assert type(load_reranker(tmp_path / "checkpoint-inside.onnx", device="cpu")) is Reranker


def a_zip_without_a_pickle(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")


@pytest.mark.parametrize(
    "name, write",
    [
        ("junk.pt", lambda p: p.write_text("not a model")),
        ("junk.onnx", lambda p: p.write_text("not a model")),
        ("empty.onnx", lambda p: p.write_bytes(b"")),
        ("archive.pt", a_zip_without_a_pickle),
        ("config.yaml", lambda p: p.write_text("model: match_pyramid\n")),
        ("noise.bin", lambda p: p.write_bytes(bytes(range(7, 256)))),
    ],
)
def test_a_file_that_is_neither_is_refused_naming_it(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=rf"{name}: neither a PyTorch checkpoint nor an ONNX model"):
        load_reranker(path)
    assert path.read_bytes() == before
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: re-ranker file not found"):
        load_reranker(tmp_path / "missing.pt")


def test_the_old_torch_format_is_a_pytorch_checkpoint(tmp_path):
    torch.save({"format": 1}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"format": 1}, tmp_path / "zipped.bin")
    assert model_file_format(tmp_path / "legacy.pt") == model_file_format(tmp_path / "zipped.bin") == PYTORCH


@pytest.mark.parametrize(
    "options, refused",
    [
        ({"precision": "bf16"}, "precision 'bf16'"),
        ({"device": "cuda"}, "device 'cuda'"),
        ({"distributed": SimpleNamespace(enabled=True)}, "torchrun"),
    ],
)
def test_an_onnx_model_refuses_what_only_pytorch_does(tmp_path, options, refused):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x0a\x12\x07pytorch\x1a\x06" + b"2.13.0")  # how every ONNX writer starts a ModelProto
    assert model_file_format(path) == ONNX
    with pytest.raises(
        ValueError, match=rf"model\.onnx: an ONNX model re-ranks in one process on the CPU at fp32.*{refused}"
    ):
        load_reranker(path, **options)


def test_import_neurank_stays_cheap():
    code = (
        "import sys, neurank; assert 'torch' not in sys.modules; neurank.load_reranker; assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
