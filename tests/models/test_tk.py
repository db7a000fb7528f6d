"""TK specifics: masked attention checked by hand, padding-blind self-attention, position encodings, the mixer, the
two kernel features on a known matrix, config validation and the first-stage score feature."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neurank.models import build_model, cosine_matrix, kernel_pooling
from neurank.models.tk import TK, MultiHeadSelfAttention, TKConfig, masked_attention, sinusoidal_positions

QUERY_IDS = torch.tensor([[2, 3, 0], [4, 0, 0]])
DOC_IDS = torch.tensor([[5, 2, 3, 6, 0], [4, 4, 7, 0, 0]])


def test_masked_attention_gives_a_masked_key_zero_weight_and_equal_keys_equal_weight():
    query = torch.tensor([[[[1.0, 0.0]]]])  # (B=1, H=1, Lq=1, Dh=2)
    key = torch.tensor([[[[2.0, 1.0], [2.0, 1.0], [9.0, 9.0]]]])  # two equal keys, then a masked key
    value = torch.tensor([[[[1.0], [3.0], [100.0]]]])
    output, weights = masked_attention(query, key, value, torch.tensor([[True, True, False]]))
    assert weights.tolist() == [[[[0.5, 0.5, 0.0]]]]
    assert output.tolist() == [[[[2.0]]]]  # the mean of the two real values


def test_masked_attention_is_the_softmax_of_scaled_scores():
    query = torch.tensor([[[[1.0, 1.0]]]])
    key = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])  # scores 0 and 2 / sqrt(2)
    _, weights = masked_attention(query, key, torch.zeros(1, 1, 2, 1), torch.tensor([[True, True]]))
    expected = torch.tensor([1.0, math.exp(math.sqrt(2))]) / (1 + math.exp(math.sqrt(2)))
    torch.testing.assert_close(weights[0, 0, 0], expected)
    # A row whose keys are all padding stays finite.
    output, weights = masked_attention(query, key, torch.ones(1, 1, 2, 1), torch.tensor([[False, False]]))
    assert torch.isfinite(output).all() and torch.isfinite(weights).all()


def test_self_attention_ignores_whatever_sits_at_padded_positions():
    torch.manual_seed(0)
    attention = MultiHeadSelfAttention(8, 2).eval()
    x = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = attention(x, mask)
    noisy = torch.where(mask[:, :, None], x, torch.randn(2, 4, 8) * 10)
    longer = torch.cat([x, torch.randn(2, 3, 8)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1)
    real = mask[:, :, None].expand_as(out)
    torch.testing.assert_close(attention(noisy, mask)[real], out[real])
    torch.testing.assert_close(attention(longer, longer_mask)[:, :4][real], out[real])


def test_sinusoidal_positions_follow_the_allennlp_layout():
    encodings = sinusoidal_positions(3, 5)
    assert encodings.shape == (3, 5)
    assert encodings[0].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]  # sin 0, sin 0, cos 0, cos 0, odd column 0
    # Timescales 1 and 1e4: column 0 is sin(p), column 1 is sin(p / 1e4).
    torch.testing.assert_close(encodings[2, :2], torch.tensor([math.sin(2.0), math.sin(2e-4)]))
    torch.testing.assert_close(encodings[:, 4], torch.zeros(3))


def test_mixer_one_gives_the_cosine_of_the_word_embeddings():
    torch.manual_seed(0)
    model = TK(10, TKConfig(embedding_dim=8, n_heads=2, ff_dim=8)).eval()
    with torch.no_grad():
        model.mixer.fill_(1.0)
    query_mask, doc_mask = QUERY_IDS != 0, DOC_IDS != 0
    expected = cosine_matrix(model.embedding(QUERY_IDS), model.embedding(DOC_IDS), query_mask, doc_mask)
    matrix = model.interaction_matrix(QUERY_IDS, DOC_IDS)
    assert matrix.shape == (2, 1, 3, 5)
    torch.testing.assert_close(matrix[:, 0], expected)
    torch.testing.assert_close(matrix[0, 0, 0, 1], torch.tensor(1.0))  # the same word


def test_kernel_features_on_a_known_matrix():
    model = TK(10, TKConfig(embedding_dim=8, n_heads=2))
    sim = torch.tensor([[[1.0, 1.0, 1.0, 0.3], [1.0, 1.0, 1.0, 0.3], [0.5, 0.5, 0.5, 0.5]]])  # (1, 3, 4)
    query_mask = torch.tensor([[True, True, False]])
    doc_mask = torch.tensor([[True, True, True, False]])
    log_features, length_features = model.kernel_features(sim, query_mask, doc_mask)
    # Two real query tokens, each matching three real doc tokens with cosine 1.0: kernel mu=1.0 counts 3 each,
    # kernel mu=0.9 (sigma 0.1, one sigma away) counts 3 exp(-1/2) each.
    torch.testing.assert_close(log_features[0, :2], torch.tensor([2 * math.log2(3), 2 * math.log2(3 * math.exp(-0.5))]))
    torch.testing.assert_close(length_features[0, :2], torch.tensor([2 * 3 / 3, 2 * 3 * math.exp(-0.5) / 3]))
    # The log feature is K-NRM's kernel pooling in base 2.
    reference = kernel_pooling(sim, query_mask.float(), doc_mask.float(), model.mus, model.sigmas)
    torch.testing.assert_close(log_features, reference / math.log(2))


def test_transformer_is_built_from_linear_layers():
    model = TK(10)
    banned = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)
    assert not any(isinstance(module, banned) for module in model.modules())
    assert len(model.layers) == 2 and model.layers[0].attention.n_heads == 10
    assert model.mixer.item() == 0.5 and model.kernel_scale.item() == pytest.approx(0.01)


def test_config_validates_heads_against_the_embedding_size():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TKConfig(embedding_dim=100, n_heads=3)
    with pytest.raises(ValueError, match="multiple of n_heads"):
        TK(10, embeddings=torch.randn(10, 7))  # 7-d vectors cannot split into 10 heads
    with pytest.raises(ValueError, match="n_kernels"):
        TKConfig(n_kernels=1)
    model = build_model("tk", 10, {"embedding_dim": 12, "n_heads": 4, "ff_dim": 16})
    assert model.config == TKConfig(embedding_dim=12, n_heads=4, ff_dim=16)


def test_pretrained_embeddings_set_the_dimension():
    embeddings = torch.randn(10, 20)
    model = TK(10, TKConfig(freeze_embeddings=True), embeddings=embeddings)
    assert model.config.embedding_dim == 20 and torch.equal(model.embedding.weight, embeddings)
    assert not model.embedding.weight.requires_grad


def test_first_stage_score_is_a_feature_of_the_combining_layer():
    torch.manual_seed(0)
    model = TK(10, TKConfig(use_first_stage_score=True, embedding_dim=8, n_heads=2)).eval()
    assert model.combine.in_features == 3
    with pytest.raises(ValueError, match="first_stage_score"):
        model(QUERY_IDS, DOC_IDS)
    low = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.zeros(2))
    high = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.ones(2))
    torch.testing.assert_close(high - low, model.combine.weight[0, -1].expand(2))
