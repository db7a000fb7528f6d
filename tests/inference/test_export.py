"""`neurank export` and the ONNX re-ranker: a trained checkpoint exported to ONNX ranks as the checkpoint does."""

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from neurank.collections import load_collection  # noqa: E402
from neurank.collections.trec import read_run  # noqa: E402
from neurank.inference.checkpoint import CheckpointError  # noqa: E402
from neurank.inference.export import export_checkpoint  # noqa: E402
from neurank.inference.onnx_reranker import OnnxReranker, read_metadata  # noqa: E402
from neurank.inference.reranker import Reranker  # noqa: E402
from neurank.models.match_pyramid import MatchPyramid  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.mark.slow
def test_onnx_reranker_ranks_as_the_checkpoint(fused_checkpoint, tmp_path, tiny_data_dir):
    info = export_checkpoint(fused_checkpoint, tmp_path / "model.onnx")
    assert info["model_name"] == "match_pyramid" and info["fusion_alpha"] is not None
    assert read_metadata(tmp_path / "model.onnx")["text"] == info["text"]
    torch_reranker = Reranker.from_checkpoint(fused_checkpoint, device="cpu")
    onnx_reranker = OnnxReranker.from_file(tmp_path / "model.onnx")
    assert onnx_reranker.uses_first_stage_score and onnx_reranker.fusion_alpha == torch_reranker.fusion_alpha
    # Batches are cut under the same per-model cell budget as PyTorch's (MatchPyramid names its own).
    assert onnx_reranker.scorer.cpu_max_cells == torch_reranker.scorer.cpu_max_cells == MatchPyramid.cpu_max_cells

    docs = [
        "hamlet is a tragedy written by william shakespeare",
        "paris is the capital of france",
        "the thames",
        "a play",
    ]
    expected, got = torch_reranker.rank("who wrote hamlet", docs), onnx_reranker.rank("who wrote hamlet", docs)
    assert [r.doc_id for r in got] == [r.doc_id for r in expected]
    np.testing.assert_allclose([r.score for r in got], [r.score for r in expected], atol=1e-5)

    pairs = [("who wrote hamlet", d, float(i)) for i, d in enumerate(docs)]
    np.testing.assert_allclose(onnx_reranker.predict(pairs), torch_reranker.predict(pairs), atol=1e-5)

    collection = load_collection("wikiqa", tiny_data_dir)
    expected = {(r.query_id, r.doc_id): r.score for r in torch_reranker.rerank_collection(collection, "test")}
    got = {(r.query_id, r.doc_id): r.score for r in onnx_reranker.rerank_collection(collection, "test")}
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-5)


@pytest.mark.slow
def test_export_and_rerank_from_the_command_line(cli, fused_checkpoint, tmp_path, tiny_data_dir):
    status, out, err = cli("export", fused_checkpoint, "--format", "onnx", "--output", tmp_path / "m.onnx", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["model"] == "match_pyramid" and result["max_difference"] < 1e-4
    runs = {}
    for name, model in (("pt", fused_checkpoint), ("onnx", tmp_path / "m.onnx")):
        status, out, err = cli(
            "rerank",
            model,
            "wikiqa",
            "--split",
            "test",
            "--output",
            tmp_path / f"{name}.run",
            "--data-dir",
            tiny_data_dir,
            "--device",
            "cpu",
            "--json",
        )
        assert status == 0, err
        runs[name] = {(r.query_id, r.doc_id): r.score for r in read_run(tmp_path / f"{name}.run")}
    assert runs["onnx"].keys() == runs["pt"].keys() and len(runs["pt"]) == 9
    np.testing.assert_allclose([runs["onnx"][k] for k in runs["pt"]], list(runs["pt"].values()), atol=1e-4)


def test_export_errors_are_one_line(cli, fused_checkpoint, tmp_path, tiny_data_dir):
    status, _, err = cli("export", fused_checkpoint, "--format", "tflite", "--output", tmp_path / "m.tflite")
    assert status == 2 and "unknown export format 'tflite'" in err
    (tmp_path / "fake.onnx").write_text("not a model")
    status, _, err = cli(
        "rerank", tmp_path / "fake.onnx", "wikiqa", "--output", tmp_path / "r", "--data-dir", tiny_data_dir
    )
    assert status == 2 and "fake.onnx" in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        OnnxReranker.from_file(tmp_path / "fake.onnx")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, options",
    [
        ("cross_encoder", {"passages": "maxp", "passage_len": 8, "passage_stride": 4}),
        ("cedr_cnn_joint", {"layers": [1, 2]}),
        ("pooled_cosine", {}),
    ],
)
def test_a_word_piece_checkpoint_exports_and_reranks_without_the_folder(tiny_bert_folder, tmp_path, name, options):
    """The fine-tuned transformer rankers: `export_checkpoint` writes the tokenizer into the ONNX metadata, and the
    ONNX re-ranker, with the folder gone, scores texts as the checkpoint does."""
    import shutil

    import torch

    from neurank.inference.checkpoint import save_checkpoint
    from neurank.models import build_model, model_config_to_dict
    from neurank.text import WordPieceEncoder

    encoder = WordPieceEncoder.from_folder(tiny_bert_folder, max_query_len=8, max_doc_len=24)
    torch.manual_seed(0)
    model = build_model(name, encoder.vocab_size, {"hf_model": str(tiny_bert_folder), **options})
    payload = {"model_name": name, "model_config": model_config_to_dict(model.config), "state_dict": model.state_dict()}
    save_checkpoint(tmp_path / "best.pt", {**payload, **encoder.to_dict(), "first_stage": None})
    pairs = [
        ("who wrote hamlet", "hamlet is a tragedy written by william shakespeare in the year sixteen hundred or so"),
        ("what is the capital of france", "paris is the capital of france"),
        ("where is paris", "the thames flows through london"),
    ]
    expected = Reranker.from_checkpoint(tmp_path / "best.pt", device="cpu").predict(pairs)
    export_checkpoint(tmp_path / "best.pt", tmp_path / "model.onnx")
    shutil.rmtree(tiny_bert_folder)
    onnx_reranker = OnnxReranker.from_file(tmp_path / "model.onnx")
    np.testing.assert_allclose(onnx_reranker.predict(pairs), expected, atol=1e-5, rtol=0)
