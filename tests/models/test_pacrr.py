"""PACRR specifics: k-max pooling over real document positions, n-gram convolutions on a known matrix, the normalised
IDF feature and the fixed query length of the dense combination."""

from __future__ import annotations

import pytest
import torch

from neurank.models.pacrr import PACRR, PACRRConfig, k_max_pool

QUERY_IDS = torch.tensor([[2, 3, 0], [4, 0, 0]])
DOC_IDS = torch.tensor([[5, 2, 3, 6, 0], [4, 4, 7, 0, 0]])


def one_hot_model(**options) -> PACRR:
    """One-hot embeddings make the cosine matrix the exact-match matrix; every filter is all ones with no bias."""
    model = PACRR(10, PACRRConfig(n_filters=1, **options), embeddings=torch.eye(10))
    with torch.no_grad():
        for conv in model.convs:
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    return model


def test_config_turns_lists_into_tuples_and_rejects_bad_values():
    assert PACRRConfig(dense_sizes=[8]) == PACRRConfig(dense_sizes=(8,))
    assert PACRRConfig().ngram_sizes == (1, 2, 3)
    hash(PACRRConfig(dense_sizes=[8]))
    with pytest.raises(ValueError, match="min_ngram <= max_ngram"):
        PACRRConfig(min_ngram=3, max_ngram=2)
    with pytest.raises(ValueError, match="k_max"):
        PACRRConfig(k_max=0)


def test_k_max_pool_skips_padded_positions_and_fills_short_documents_with_zero():
    x = torch.tensor([[[0.5, 0.9, 0.1, 7.0]], [[0.3, 0.2, 5.0, 5.0]]])  # (B=2, Lq=1, Ld=4); 7.0 and 5.0 are padding
    doc_mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    torch.testing.assert_close(k_max_pool(x, doc_mask, 2), torch.tensor([[[0.9, 0.5]], [[0.3, 0.0]]]))
    # k larger than the padded length.
    expected = torch.tensor([[[0.9, 0.5, 0.0]], [[0.3, 0.0, 0.0]]])
    torch.testing.assert_close(k_max_pool(x[:, :, :2], doc_mask[:, :2], 3), expected)


def test_ngram_convolutions_on_an_exact_match_matrix():
    model = one_hot_model(min_ngram=1, max_ngram=2, k_max=2, use_idf=False)
    features = model.query_term_features(QUERY_IDS, DOC_IDS)  # (B, Lq, 2 sizes * 2)
    assert features.shape == (2, 3, 4)
    # Unigrams: term 2 matches once, term 3 once, term 4 twice. Bigrams: the all-ones 2x2 filter at (0, 1) covers
    # "2 3" against "2 3", two matches; term 3's bigram windows at (1, 1) and (1, 2) each cover its one match (and
    # the padded query row below it).
    assert features[0].tolist() == [[1.0, 0.0, 2.0, 1.0], [1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    assert features[1].tolist() == [[1.0, 1.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_idf_feature_is_a_softmax_over_the_real_query_terms():
    model = one_hot_model(min_ngram=1, max_ngram=1, k_max=1)
    assert torch.equal(model.idf, torch.ones(10)) and "idf" in model.state_dict()
    idf = torch.arange(10, dtype=torch.float)
    model.set_idf(idf)
    features = model.query_term_features(QUERY_IDS, DOC_IDS)  # (B, Lq, 1 + 1)
    expected = torch.softmax(torch.tensor([2.0, 3.0]), dim=0)
    torch.testing.assert_close(features[0, :2, 1], expected)
    assert features[0, 2, 1] == 0 and features[1, :, 1].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        model.set_idf(torch.ones(11))


def test_terms_past_max_query_len_are_ignored_and_short_queries_padded():
    torch.manual_seed(0)
    model = PACRR(20, PACRRConfig(max_query_len=3, embedding_dim=8)).eval()
    doc_ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    long_query = torch.tensor([[5, 6, 7, 11, 12]])
    other_tail = torch.tensor([[5, 6, 7, 13, 0]])
    with torch.no_grad():
        assert torch.equal(model(long_query, doc_ids), model(other_tail, doc_ids))
        assert torch.equal(model(long_query, doc_ids), model(long_query[:, :3], doc_ids))
        assert model(torch.tensor([[5]]), doc_ids).shape == (1,)


def test_first_stage_score_is_an_input_of_the_combination():
    torch.manual_seed(0)
    model = PACRR(10, PACRRConfig(embedding_dim=8, use_first_stage_score=True)).eval()
    assert model.combination[0].in_features == 16 * (3 * 2 + 1) + 1
    with torch.no_grad():
        low = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.zeros(2))
        high = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.full((2,), 5.0))
    assert not torch.equal(low, high)
    with pytest.raises(ValueError, match="first_stage_score"):
        model(QUERY_IDS, DOC_IDS)


def test_interaction_matrix_is_the_masked_cosine_matrix():
    model = one_hot_model()
    matrix = model.interaction_matrix(QUERY_IDS, DOC_IDS)
    assert matrix.shape == (2, 1, 3, 5)
    assert matrix[0, 0].tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
