"""`neurank explain` over the transformer rankers: a checkpoint of each family (joint CEDR, frozen CEDR, cross-encoder,
pooled cosine) is trained for one epoch on the tiny collection over the tiny BERT folder, then explained through the
CLI in this process. The axes are labelled by the word pieces the model read, there is one panel per layer it reads,
the printed score is the model's `predict`, and a model without an interaction matrix says so and shows what its
transformer read instead."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurank.collections import load_collection
from neurank.config import config_from_dict
from neurank.explain import NoInteractionMatrixError, explain_pair
from neurank.explain.figures import pair_figure
from neurank.inference.reranker import Reranker
from neurank.models import build_model
from neurank.models.cross_encoder import TINY_BERT
from neurank.text import Tokenizer, Vocab, WordEncoder, WordPieceEncoder
from neurank.training import train

pytest.importorskip("transformers")

QUERY = "who wrote hamlet"
DOC = "hamlet is the play of paris"
# What the tiny BERT's tokenizer makes of them (tests/conftest.py: "ham" and "##let" are in its vocabulary).
QUERY_PIECES = ["who", "wrote", "ham", "##let"]
DOC_PIECES = ["ham", "##let", "is", "the", "play", "of", "paris"]
PYRAMID = {"conv_channels": [4], "kernel_sizes": [[3, 3]], "pool_size": [2, 4]}


def train_checkpoint(tiny_config, hf_model, tmp_path, model: str, **options):
    """best.pt of `model` over the tiny BERT folder, trained for one epoch on the tiny collection."""
    values = tiny_config.to_dict()
    values["model"], values["model_config"] = model, {"hf_model": str(hf_model), **options}
    values["train"] = {**values["train"], "epochs": 1, "lr": 1e-3}
    train(config_from_dict(values), tmp_path / model, progress=False)
    return tmp_path / model / "best.pt"


def explain(cli, checkpoint, tmp_path, *args) -> tuple[list[str], dict]:
    """The printed lines of `neurank explain CHECKPOINT ARGS`, and its --json result."""
    output = tmp_path / "explain.png"
    status, out, err = cli("explain", checkpoint, *args, "--output", output, "--overwrite")
    assert status == 0, err
    status, as_json, err = cli("explain", checkpoint, *args, "--output", output, "--overwrite", "--json")
    assert status == 0, err
    assert output.read_bytes()[:4] == b"\x89PNG"
    return out.splitlines(), json.loads(as_json)


def hf_pieces(folder, text: str, limit: int) -> list[str]:
    """The word pieces of `text` from the folder's tokenizer itself (not through neurank's encoder), cut to `limit`."""
    from tokenizers import Tokenizer as HFTokenizer

    return HFTokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).tokens[:limit]


def layer_panels(figure) -> list:
    """The heatmaps of the interaction matrices, channel by channel: full width ("interactions/c/row") or small
    ("interactions/c"), first row only."""
    panels = {}
    for ax in figure.axes:
        parts = ax.get_label().split("/")
        if parts[0] == "interactions" and (len(parts) == 2 or parts[2] == "0"):
            panels[int(parts[1])] = ax
    return [panels[c] for c in sorted(panels)]


def ticks(labels) -> list[str]:
    return [label.get_text() for label in labels]


def figure_texts(figure) -> list[str]:
    return [text.get_text() for text in figure.texts]


def test_joint_cedr_shows_each_layers_cosine_matrix_over_the_word_pieces(cli, tiny_bert_folder, tiny_config, tmp_path):
    checkpoint = train_checkpoint(tiny_config, tiny_bert_folder, tmp_path, "cedr_cnn_joint", dropout=0.0, **PYRAMID)
    reranker = Reranker.from_checkpoint(checkpoint, device="cpu")
    predicted = float(reranker.predict([(QUERY, DOC)])[0])
    lines, result = explain(cli, checkpoint, tmp_path, "--query", QUERY, "--doc", DOC)

    layers = ["layer 0 (embeddings)", "layer 1", "layer 2 (last)"]
    assert lines[0] == (
        f"cedr_cnn_joint: score {predicted:.4f}; 4 query x 7 document word pieces "
        "(interactions, conv1, pooled, contributions)"
    )
    assert lines[1] == "interaction matrices, one per layer read: " + ", ".join(layers)
    assert result["token_kind"] == "word piece"
    assert (result["query_tokens"], result["doc_tokens"]) == (QUERY_PIECES, DOC_PIECES)
    assert result["score"] == pytest.approx(predicted, abs=1e-6)
    interactions = result["stages"]["interactions"]
    assert interactions["labels"]["channel"] == layers
    query_ids = torch.tensor([reranker.encoder.encode_queries([QUERY])[0]])
    doc_ids = torch.tensor([reranker.encoder.encode_docs([DOC])[0]])
    with torch.no_grad():
        matrices = reranker.model.interaction_matrix(query_ids, doc_ids)[0].numpy()  # (3, 4, 7)
    np.testing.assert_allclose(interactions["values"], matrices, rtol=0, atol=1e-6)
    # The scoring layer's parts add up to the score.
    contributions = result["stages"]["contributions"]
    assert contributions["labels"]["part"] == ["reader", "[CLS]", "bias"]
    assert sum(contributions["values"]) == pytest.approx(predicted, abs=1e-5)
    # Nothing was cut: the pair fits the window of 64 positions.
    assert result["query_read"] == [True] * 4 and result["doc_read"] == [True] * 7 and result["notes"] == []

    figure = pair_figure(explain_pair(reranker, QUERY, DOC, model_name="cedr_cnn_joint"))
    panels = layer_panels(figure)
    assert len(panels) == 3  # one per layer read
    for channel, (ax, layer) in enumerate(zip(panels, layers, strict=True)):
        assert ax.get_title(loc="left").endswith(f": {layer}")
        assert ticks(ax.get_yticklabels()) == QUERY_PIECES and ticks(ax.get_xticklabels()) == DOC_PIECES
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), matrices[channel], rtol=0, atol=1e-6)


def first_test_pair(checkpoint, data_dir):
    """The re-ranker of `checkpoint`, the tiny collection's test query 1 and its candidate 0, and their score."""
    reranker = Reranker.from_checkpoint(checkpoint, device="cpu")
    collection = load_collection("wikiqa", data_dir)
    query, doc = collection.split("test").queries["1"].text, collection.doc_text("test", "1", "0")
    return reranker, query, doc, float(reranker.predict([(query, doc)])[0])


def collection_args(data_dir):
    """`neurank explain`'s arguments for that pair."""
    return ("--collection", "wikiqa", "--data-dir", data_dir, "--split", "test", "--query-id", "1", "--doc-id", "0")


@pytest.mark.parametrize(
    ("model", "options", "reader_stages"),
    [
        ("cedr_knrm", {}, ["soft_counts", "kernel_features"]),
        ("cedr_cnn", PYRAMID, ["conv1", "pooled"]),
        ("cedr_pacrr", {"n_filters": 4, "dense_sizes": [8], "max_query_len": 4}, ["ngram_signals", "term_features"]),
    ],
)
def test_frozen_cedr_explains_a_collections_pair_over_the_layers_it_reads(
    cli, tiny_bert_folder, tiny_config, tiny_data_dir, tmp_path, model, options, reader_stages
):
    checkpoint = train_checkpoint(tiny_config, tiny_bert_folder, tmp_path, model, layers=[0, 2], **options)
    reranker, query, doc, predicted = first_test_pair(checkpoint, tiny_data_dir)
    lines, result = explain(cli, checkpoint, tmp_path, *collection_args(tiny_data_dir))

    query_pieces = hf_pieces(tiny_bert_folder, query, tiny_config.data.max_query_len)
    doc_pieces = hf_pieces(tiny_bert_folder, doc, tiny_config.data.max_doc_len)
    assert (result["query_tokens"], result["doc_tokens"]) == (query_pieces, doc_pieces)
    assert (
        len(doc_pieces) == 20 and "document: 36 word pieces, the first 20 read (the checkpoint's max_doc_len)" in lines
    )
    assert lines[0].startswith(f"{model}: score {predicted:.4f}; {len(query_pieces)} query x 20 document word pieces")
    assert "interaction matrices, one per layer read: layer 0 (embeddings), layer 2 (last)" in lines
    assert result["score"] == pytest.approx(predicted, abs=1e-6)
    assert (result["query_id"], result["doc_id"], result["relevance"]) == ("1", "0", 1)
    assert list(result["stages"])[1:3] == reader_stages and list(result["stages"])[-1] == "contributions"
    read = 4 if model == "cedr_pacrr" else len(query_pieces)  # PACRR reads the first max_query_len word pieces
    assert np.array(result["stages"]["interactions"]["values"]).shape == (2, read, 20)
    assert result["query_read"] == [True] * read + [False] * (len(query_pieces) - read)
    if model == "cedr_pacrr":
        assert "query: the model reads its first 4 word pieces (max_query_len 4)" in lines

    figure = pair_figure(explain_pair(reranker, query, doc, model_name=model))
    panels = layer_panels(figure)
    assert [ax.get_title(loc="left").rsplit(": ", 1)[1] for ax in panels] == ["layer 0 (embeddings)", "layer 2 (last)"]
    for ax in panels:
        assert ticks(ax.get_yticklabels()) == query_pieces[:read] and ticks(ax.get_xticklabels()) == doc_pieces


def test_every_layer_read_gets_a_panel_when_there_are_more_than_three(tiny_bert_folder):
    # A 4-layer transformer, all 5 hidden states read: the first full width, the others small, none left out.
    hf_config = {**TINY_BERT, "vocab_size": 74, "num_hidden_layers": 4, "max_position_embeddings": 64}
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    model = build_model("cedr_cnn", 74, {"hf_config": hf_config, "cls_id": 2, "sep_id": 3, **PYRAMID})
    pair = explain_pair(Reranker(model, encoder, device="cpu"), QUERY, DOC, model_name="cedr_cnn")
    panels = layer_panels(pair_figure(pair))
    assert len(panels) == 5 == pair.interactions.shape[0]
    assert panels[0].get_title(loc="left").endswith(": layer 0 (embeddings)")
    assert [ax.get_title().split("  ")[0] for ax in panels[1:]] == ["layer 1", "layer 2", "layer 3", "layer 4 (last)"]
    assert all(ticks(ax.get_xticklabels()) == DOC_PIECES for ax in panels)
    assert ticks(panels[0].get_yticklabels()) == ticks(panels[1].get_yticklabels()) == QUERY_PIECES


def test_cross_encoder_says_it_has_no_matrix_and_shows_what_it_read(cli, tiny_bert_folder, tiny_config, tmp_path):
    checkpoint = train_checkpoint(tiny_config, tiny_bert_folder, tmp_path, "cross_encoder", dropout=0.0)
    reranker = Reranker.from_checkpoint(checkpoint, device="cpu")
    predicted = float(reranker.predict([(QUERY, DOC)])[0])
    lines, result = explain(cli, checkpoint, tmp_path, "--query", QUERY, "--doc", DOC)

    joined = ["[CLS]", *QUERY_PIECES, "[SEP]", *DOC_PIECES, "[SEP]"]
    assert [line for line in lines if "interaction matrix" in line] == [
        "cross_encoder has no interaction matrix: it reads the query and the document as one sequence, which meet in "
        "the transformer's attention, not in a query-by-document similarity matrix"
    ]
    assert lines[1:5] == [
        f"cross_encoder: score {predicted:.4f}; 4 query x 7 document word pieces",
        "query word pieces: " + " ".join(QUERY_PIECES),
        "document word pieces: " + " ".join(DOC_PIECES),
        "the transformer read (query and document, joined): " + " ".join(joined),
    ]
    assert result["has_interaction_matrix"] is False and result["stages"] == {}
    assert result["score"] == pytest.approx(predicted, abs=1e-6)
    assert result["sequences"] == {"query and document, joined": joined} and result["window"] == 64

    pair = explain_pair(reranker, QUERY, DOC, model_name="cross_encoder")
    with pytest.raises(NoInteractionMatrixError, match="^cross_encoder has no interaction matrix: it reads the query"):
        _ = pair.interactions
    figure = pair_figure(pair)
    assert figure.axes == []  # no empty heatmap: the reason, what was read, and the score
    texts = figure_texts(figure)
    assert " ".join(joined) in texts and f"score {predicted:.4f} (the model's output for this pair)" in texts
    assert any(text.startswith("no interaction matrix: it reads the query and the document") for text in texts)


def test_cross_encoder_shows_the_window_cut_and_each_passage(write_tiny_bert, tmp_path):
    folder = tmp_path / "bert-12"
    folder.mkdir()
    write_tiny_bert(folder, max_position_embeddings=12)  # [CLS] 4 query [SEP] 5 document pieces [SEP]
    encoder = WordPieceEncoder.from_folder(folder)
    cut = Reranker(build_model("cross_encoder", encoder.vocab_size, {"hf_model": str(folder)}), encoder, device="cpu")
    pair = explain_pair(cut, QUERY, DOC, model_name="cross_encoder")
    assert pair.sequences == {"query and document, joined": ["[CLS]", *QUERY_PIECES, "[SEP]", *DOC_PIECES[:5], "[SEP]"]}
    assert pair.doc_read == [True] * 5 + [False] * 2 and pair.window == 12
    assert "document: 2 word pieces past the transformer's window of 12 positions not read" in pair.notes
    assert "document word pieces not read: of paris" in figure_texts(pair_figure(pair))
    assert pair.score == pytest.approx(float(cut.predict([(QUERY, DOC)])[0]), abs=1e-6)

    options = {"hf_model": str(folder), "passages": "maxp", "passage_len": 3, "passage_stride": 2}
    maxp = Reranker(build_model("cross_encoder", encoder.vocab_size, options), encoder, device="cpu")
    pair = explain_pair(maxp, QUERY, DOC, model_name="cross_encoder")
    assert list(pair.sequences) == [
        "passage 1 (document word pieces 1-3)",
        "passage 2 (document word pieces 3-5)",
        "passage 3 (document word pieces 5-7)",
    ]
    assert pair.sequences["passage 3 (document word pieces 5-7)"] == [
        "[CLS]",
        *QUERY_PIECES,
        "[SEP]",
        "play",
        "of",
        "paris",
        "[SEP]",
    ]
    passages = pair.stages["passages"]
    assert pair.labels["passages"]["passage"] == ["1", "2", "3"]
    assert pair.score == pytest.approx(float(passages.max()), abs=1e-6)
    assert pair.score == pytest.approx(float(maxp.predict([(QUERY, DOC)])[0]), abs=1e-6)
    assert pair.doc_read == [True] * 7


def test_pooled_cosine_shows_its_cosine_scale_and_bias(cli, tiny_bert_folder, tiny_config, tiny_data_dir, tmp_path):
    checkpoint = train_checkpoint(tiny_config, tiny_bert_folder, tmp_path, "pooled_cosine")
    reranker, query, doc, predicted = first_test_pair(checkpoint, tiny_data_dir)
    lines, result = explain(cli, checkpoint, tmp_path, *collection_args(tiny_data_dir))

    model = reranker.model
    query_ids = torch.tensor([reranker.encoder.encode_queries([query])[0]])
    doc_ids = torch.tensor([reranker.encoder.encode_docs([doc])[0]])
    with torch.no_grad():
        mask = torch.ones_like
        cosine = float(
            F.cosine_similarity(
                model.text_vectors(query_ids, mask(query_ids, dtype=torch.bool)),
                model.text_vectors(doc_ids, mask(doc_ids, dtype=torch.bool)),
            )
        )
    parts = result["score_parts"]
    assert parts["cosine"] == pytest.approx(cosine, abs=1e-5)
    assert parts["scale"] == pytest.approx(model.scale.item()) and parts["bias"] == pytest.approx(model.bias.item())
    assert parts["scale"] * parts["cosine"] + parts["bias"] == pytest.approx(predicted, abs=1e-5)
    assert result["score"] == pytest.approx(predicted, abs=1e-6)
    assert lines[0] == (
        "pooled_cosine has no interaction matrix: it encodes the query and the document apart and compares one "
        "pooled vector of each (a cosine), not their word pieces"
    )
    query_pieces = hf_pieces(tiny_bert_folder, query, tiny_config.data.max_query_len)
    assert lines[1] == f"pooled_cosine: score {predicted:.4f}; {len(query_pieces)} query x 20 document word pieces"
    assert lines[2] == f"score = scale {parts['scale']:.4f} x cosine {parts['cosine']:.4f} + bias {parts['bias']:+.4f}"
    assert "the transformer read (query, alone): " + " ".join(["[CLS]", *query_pieces, "[SEP]"]) in lines
    assert result["stages"] == {} and result["has_interaction_matrix"] is False
    assert (result["candidates"], result["relevance"]) == (3, 1)
    rank = f"rank {result['rank']} of 3 after re-ranking (BM25 rank {result['first_stage_rank']}); relevance 1"
    assert rank in lines


def test_ids_are_never_labelled_with_the_tokens_of_another_vocabulary(tiny_bert_folder):
    cedr = build_model("cedr_knrm", 74, {"hf_model": str(tiny_bert_folder)})
    words = WordEncoder(Tokenizer(), Vocab.build([QUERY.split(), DOC.split()]))
    with pytest.raises(ValueError, match=r"cedr_knrm reads the word pieces of .*tiny-bert, but .* a WordEncoder"):
        explain_pair(Reranker(cedr, words, device="cpu"), QUERY, DOC, model_name="cedr_knrm")
    pieces = WordPieceEncoder.from_folder(tiny_bert_folder)
    match_pyramid = build_model("match_pyramid", 50, {"embedding_dim": 8})
    with pytest.raises(ValueError, match="match_pyramid was built for 50 ids but this ranker's text encoder gives 74"):
        explain_pair(Reranker(match_pyramid, pieces, device="cpu"), QUERY, DOC, model_name="match_pyramid")


def test_pooled_cosine_over_passages_shows_each_passage_alone_and_its_score(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    options = {"hf_model": str(tiny_bert_folder), "passages": "maxp", "passage_len": 3, "passage_stride": 2}
    maxp = Reranker(build_model("pooled_cosine", encoder.vocab_size, options), encoder, device="cpu")
    pair = explain_pair(maxp, QUERY, DOC, model_name="pooled_cosine")
    assert pair.sequences == {
        "query, alone": ["[CLS]", *QUERY_PIECES, "[SEP]"],
        "passage 1, alone (document word pieces 1-3)": ["[CLS]", "ham", "##let", "is", "[SEP]"],
        "passage 2, alone (document word pieces 3-5)": ["[CLS]", "is", "the", "play", "[SEP]"],
        "passage 3, alone (document word pieces 5-7)": ["[CLS]", "play", "of", "paris", "[SEP]"],
    }
    passages = pair.stages["passages"]
    assert pair.labels["passages"]["passage"] == ["1", "2", "3"]
    predicted = float(maxp.predict([(QUERY, DOC)])[0])
    assert pair.score == pytest.approx(predicted, abs=1e-6)
    assert float(passages.max()) == pytest.approx(predicted, abs=1e-6)
    best = int(passages[0].argmax())
    assert f"MaxP: the best passage's score is the document's; passage {best + 1} of 3 gives it" in pair.notes
    parts = pair.score_parts
    assert parts["scale"] * parts["cosine"] + parts["bias"] == pytest.approx(predicted, abs=1e-5)
    assert pair.doc_read == [True] * 7


def test_pooled_cosine_over_passages_adds_the_first_stage_term_and_names_firstp(tiny_bert_folder):
    encoder = WordPieceEncoder.from_folder(tiny_bert_folder)
    options = {"hf_model": str(tiny_bert_folder), "passages": "maxp", "passage_len": 3, "passage_stride": 2}
    model = build_model("pooled_cosine", encoder.vocab_size, {**options, "use_first_stage_score": True})
    with torch.no_grad():
        model.first_stage_weight.fill_(0.5)
    maxp = Reranker(model, encoder, device="cpu")
    pair = explain_pair(maxp, QUERY, DOC, first_stage_score=0.8, model_name="pooled_cosine")
    query_ids = torch.tensor(encoder.encode_queries([QUERY]))
    doc_ids = torch.tensor(encoder.encode_docs([DOC]))
    with torch.no_grad():
        predicted = float(model.eval()(query_ids, doc_ids, None, None, torch.tensor([0.8]))[0])
    assert float(pair.stages["passages"].max()) == pytest.approx(predicted, abs=1e-5)  # 0.5 x 0.8 included
    assert pair.score == pytest.approx(predicted, abs=1e-5)

    firstp = {**options, "passages": "firstp"}
    first = Reranker(build_model("pooled_cosine", encoder.vocab_size, firstp), encoder, device="cpu")
    pair = explain_pair(first, QUERY, DOC, model_name="pooled_cosine")
    assert "document: 4 word pieces after the first passage not read (FirstP)" in pair.notes
    assert not any("window" in note for note in pair.notes)
    assert pair.doc_read == [True] * 3 + [False] * 4
