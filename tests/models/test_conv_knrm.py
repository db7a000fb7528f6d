"""Conv-KNRM specifics: n-gram windows at the end of a text ("padded" and "complete"), the cross-matched translation
matrices on hand-set filters, the feature layout, config validation and pretrained embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from neurank.models import build_model
from neurank.models.conv_knrm import ConvKNRM, ConvKNRMConfig

# The PAD row is deliberately non-zero (as pretrained vectors copied in may be): masking, not the row, must hide it.
EMBEDDINGS = torch.tensor([[5.0, 5.0], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])


def model(**options) -> ConvKNRM:
    """Two filters that copy the embedding: a unigram is its word vector, a bigram the sum of its two."""
    config = ConvKNRMConfig(n_filters=2, max_ngram=2, **options)
    conv_knrm = ConvKNRM(len(EMBEDDINGS), config, embeddings=EMBEDDINGS).eval()
    with torch.no_grad():
        for h, conv in enumerate(conv_knrm.convs, start=1):
            conv.weight.copy_(torch.eye(2)[:, :, None].expand(2, 2, h))  # (F, D, h)
            conv.bias.zero_()
    return conv_knrm


def test_ngram_windows_read_zeros_past_the_end_or_are_dropped():
    ids = torch.tensor([[2, 3, 2, 0]])
    mask = ids != 0
    vectors, ngram_mask = model().ngram_vectors(ids, mask)
    assert vectors.shape == (1, 2, 4, 2)
    assert vectors[0, 0].tolist() == [[1, 0], [0, 1], [1, 0], [0, 0]]
    assert vectors[0, 1].tolist() == [[1, 1], [1, 1], [1, 0], [0, 0]]  # the last window reads zeros, not PAD
    assert ngram_mask[0].tolist() == [[True, True, True, False], [True, True, True, False]]

    vectors, ngram_mask = model(ngram_windows="complete").ngram_vectors(ids, mask)
    assert vectors[0, 1].tolist() == [[1, 1], [1, 1], [0, 0], [0, 0]]
    assert ngram_mask[0].tolist() == [[True, True, True, False], [True, True, False, False]]


def test_cross_matched_translation_matrices():
    query_ids, doc_ids = torch.tensor([[2, 3]]), torch.tensor([[3, 2, 0]])
    matrix = model().interaction_matrix(query_ids, doc_ids)
    assert matrix.shape == (1, 4, 2, 3)  # (uni, uni), (uni, bi), (bi, uni), (bi, bi)
    s = 1 / math.sqrt(2)
    # Query bigrams: [1, 1] and [0, 1] (3 then zeros); document bigrams: [1, 1] and [1, 0] (2 then zeros).
    torch.testing.assert_close(matrix[0, 0], torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(matrix[0, 1], torch.tensor([[s, 1.0, 0.0], [s, 0.0, 0.0]]))
    torch.testing.assert_close(matrix[0, 2], torch.tensor([[s, s, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(matrix[0, 3], torch.tensor([[1.0, s, 0.0], [s, 0.0, 0.0]]))

    complete = model(ngram_windows="complete").interaction_matrix(query_ids, doc_ids)
    torch.testing.assert_close(complete[0, 3], torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))

    diagonal = model(cross_match=False).interaction_matrix(query_ids, doc_ids)
    torch.testing.assert_close(diagonal, matrix[:, [0, 3]])


def test_kernel_features_pool_each_matrix():
    conv_knrm = model()
    query_ids, doc_ids = torch.tensor([[2, 3]]), torch.tensor([[3, 2, 0]])
    features = conv_knrm.kernel_features(query_ids, doc_ids).view(4, 11) / 0.01  # (matrices, kernels)
    # (uni, uni): each query word has one exact match in the document.
    torch.testing.assert_close(features[0, 0], torch.tensor(0.0), atol=1e-4, rtol=0)
    # (bi, bi) exact kernel: the query bigram [1, 1] matches once, the query's last window [0, 1] never.
    torch.testing.assert_close(features[3, 0], torch.tensor(math.log(1e-10)), atol=1e-3, rtol=0)
    assert conv_knrm.score.in_features == 4 * 11


def test_a_text_shorter_than_the_window_has_no_complete_ngrams():
    conv_knrm = model(ngram_windows="complete")
    features = conv_knrm.kernel_features(torch.tensor([[2]]), torch.tensor([[3, 2]])).view(4, 11)
    assert features[2:].abs().sum() == 0  # no query bigram: nothing to sum
    doc_short = conv_knrm.kernel_features(torch.tensor([[2, 3]]), torch.tensor([[2, 0, 0]])).view(4, 11)
    torch.testing.assert_close(doc_short[1], torch.full((11,), 2 * 0.01 * math.log(1e-10)))  # 2 query unigrams


def test_config_defaults_validation_and_embeddings():
    conv_knrm = build_model("conv_knrm", 10)
    assert isinstance(conv_knrm, ConvKNRM) and conv_knrm.config == ConvKNRMConfig()
    assert [conv.kernel_size for conv in conv_knrm.convs] == [(1,), (2,), (3,)]
    assert conv_knrm.convs[0].out_channels == 128 and conv_knrm.score.in_features == 9 * 11
    assert ConvKNRMConfig(cross_match=False).n_matrices == 3
    assert model().config.embedding_dim == 2
    with pytest.raises(ValueError, match="ngram_windows"):
        ConvKNRMConfig(ngram_windows="valid")
    with pytest.raises(ValueError, match="max_ngram"):
        ConvKNRMConfig(max_ngram=0)
    with pytest.raises(ValueError, match="n_filters"):
        ConvKNRMConfig(n_filters=0)
    with pytest.raises(ValueError, match=r"shape \(5, dim\)"):
        ConvKNRM(5, embeddings=EMBEDDINGS)
