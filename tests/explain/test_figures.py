"""The figures, drawn on the Agg canvas and read back: the heatmap holds the model's interaction matrix with the
tokens on its axes, every stage gets a panel, long documents wrap, bars are the per-query differences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from neurank.explain import QueryDelta, explain_pair
from neurank.explain.figures import (
    figure_bytes,
    pair_figure,
    save_figure,
    training_curves_figure,
    wins_losses_figure,
)
from neurank.inference.reranker import Reranker
from neurank.models import build_model, model_classes, model_names

QUERY = "who wrote the tragedy hamlet"
DOC = "hamlet is a tragedy written by william shakespeare and set in denmark where the prince of denmark"


def heatmap_rows(figure, stage: str, channel: int):
    """The full-width heatmap axes of one interaction channel, in row order."""
    axes = [ax for ax in figure.axes if ax.get_label().startswith(f"{stage}/{channel}/")]
    return sorted(axes, key=lambda ax: int(ax.get_label().rsplit("/", 1)[1]))


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


@pytest.fixture()
def reranker(trained):
    return Reranker.from_checkpoint(trained / "best.pt", device="cpu")


def test_heatmap_is_the_interaction_matrix_with_the_tokens_on_its_axes(reranker):
    pair = explain_pair(reranker, QUERY, DOC)
    query_ids = torch.tensor([reranker.encoder.encode_queries([QUERY])[0]])
    doc_ids = torch.tensor([reranker.encoder.encode_docs([DOC])[0]])
    with torch.no_grad():
        matrix = reranker.model.interaction_matrix(query_ids, doc_ids)[0].numpy()  # (C, Lq, Ld)
    figure = pair_figure(pair)
    assert matrix.shape[0] == 2  # the tiny config's cosine and exact channels
    for channel in range(matrix.shape[0]):
        (ax,) = heatmap_rows(figure, "interactions", channel)
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), matrix[channel])
        assert tick_texts(ax.get_yticklabels()) == reranker.tokenizer.tokenize(QUERY)
        assert tick_texts(ax.get_xticklabels()) == reranker.tokenizer.tokenize(DOC)
    # The exact-match channel is 1 exactly where the tokens agree.
    query_tokens, doc_tokens = pair.query_tokens, pair.doc_tokens
    expected_exact = np.array([[float(q == d) for d in doc_tokens] for q in query_tokens])
    np.testing.assert_array_equal(matrix[1], expected_exact)


def test_a_long_document_wraps_onto_several_rows_and_keeps_every_token(reranker):
    pair = explain_pair(reranker, QUERY, DOC)
    figure = pair_figure(pair, tokens_per_row=5)
    rows = heatmap_rows(figure, "interactions", 0)
    assert len(rows) == -(-len(pair.doc_tokens) // 5)
    assert sum((tick_texts(ax.get_xticklabels()) for ax in rows), []) == pair.doc_tokens
    stitched = np.concatenate([np.asarray(ax.images[0].get_array()) for ax in rows], axis=1)
    np.testing.assert_array_equal(stitched, pair.interactions[0])
    assert all(tick_texts(ax.get_yticklabels()) == pair.query_tokens for ax in rows)


def test_every_stage_gets_a_panel_and_the_score_is_written(reranker):
    pair = explain_pair(reranker, QUERY, DOC)
    figure = pair_figure(pair)
    labels = {ax.get_label().split("/")[0] for ax in figure.axes}
    assert {"interactions", "conv1", "pooled", "contributions"} <= labels
    texts = " ".join(text.get_text() for text in figure.texts)
    assert f"score {pair.score:.4f}" in texts and QUERY in texts
    # The strongest feature maps are shown, strongest first, with their maxima as drawn.
    conv = [ax for ax in figure.axes if ax.get_label().startswith("conv1/")]
    maxima = [float(np.asarray(ax.images[0].get_array()).max()) for ax in conv]
    assert maxima == sorted(maxima, reverse=True)
    assert maxima[0] == pytest.approx(float(np.abs(pair.stages["conv1"]).max()))


# The word models: the transformer rankers (a `hf_model` option) read word pieces, which these figures do not draw yet.
@pytest.mark.parametrize(
    "name",
    [
        n
        for n in model_names()
        if getattr(model_classes(n)[0], "has_interaction_matrix", True)
        and "hf_model" not in {f.name for f in dataclasses.fields(model_classes(n)[1])}
    ],
)
def test_every_interaction_model_draws(reranker, name):
    torch.manual_seed(0)
    options = {"max_doc_len": 30, "doc_pool_size": 5} if name == "duet" else {}
    options["embedding_dim"] = 10 if name == "tk" else 8  # TK needs a multiple of its 10 heads
    model = build_model(name, len(reranker.vocab), options)
    other = Reranker(model, reranker.tokenizer, reranker.vocab, device="cpu")
    pair = explain_pair(other, QUERY, DOC, model_name=name)
    figure = pair_figure(pair)
    (ax, *_) = heatmap_rows(figure, "interactions", 0)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), pair.interactions[0])
    drawn = {ax.get_label().split("/")[0] for ax in figure.axes}
    assert set(pair.stages) <= drawn, name
    assert figure_bytes(figure, "png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_save_as_png_and_svg_atomically(reranker, tmp_path):
    figure = pair_figure(explain_pair(reranker, QUERY, DOC))
    folder = tmp_path / "figures"
    png, svg = save_figure(figure, folder / "pair.png"), save_figure(figure, folder / "pair.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert sorted(p.name for p in folder.iterdir()) == ["pair.png", "pair.svg"]  # no temporary file left
    with pytest.raises(ValueError, match=r"unsupported figure format '\.jpg'"):
        save_figure(figure, folder / "pair.jpg")


def test_wins_and_losses_bars_are_the_sorted_differences():
    deltas = [
        QueryDelta("q1", 0.5, 0.75),
        QueryDelta("q2", 1.0, 0.0),
        QueryDelta("q3", 0.2, 0.2),
        QueryDelta("q4", 0.0, 1.0),
    ]
    figure = wins_losses_figure(deltas, "AP", "bm25", "model")
    (ax,) = [ax for ax in figure.axes if ax.get_label() == "deltas"]
    assert [bar.get_height() for bar in ax.patches] == pytest.approx([1.0, 0.25, 0.0, -1.0])
    assert tick_texts(ax.get_xticklabels()) == ["q4", "q1", "q3", "q2"]
    assert "2 wins, 1 losses, 1 ties over 4 queries" in ax.get_title(loc="left")
    many = [QueryDelta(f"q{i}", 0.5, 0.5 + (i - 50) / 100) for i in range(100)]
    figure = wins_losses_figure(many, "AP", "bm25", "model", listed=2)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == ["gained most: q99 (+0.490), q98 (+0.480)", "lost most: q0 (-0.500), q1 (-0.490)"]


def test_training_curves_plot_the_metrics_records():
    records = [
        {"epoch": 1, "step": 10, "train_loss": 0.9, "dev_AP": 0.5, "lr": 1e-3, "grad_norm": 2.0},
        {"epoch": 2, "step": 20, "train_loss": 0.7, "dev_AP": 0.6, "lr": 5e-4, "grad_norm": None},
    ]
    figure = training_curves_figure(records, "AP", best_epoch=2)
    by_label = {ax.get_label(): ax for ax in figure.axes}
    assert list(by_label["train_loss"].lines[0].get_ydata()) == [0.9, 0.7]
    assert list(by_label["dev_AP"].lines[0].get_ydata()) == [0.5, 0.6]
    assert list(by_label["grad_norm"].lines[0].get_xdata()) == [1]  # epochs without a norm are skipped


def test_a_missing_matplotlib_names_the_extra(monkeypatch):
    import importlib.util

    from neurank.explain.figures import require_matplotlib

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "matplotlib" else real(name, *rest)
    )
    with pytest.raises(ImportError, match=r"pip install 'neurank\[viz\]'"):
        require_matplotlib()
