"""Layers with hand-checkable values: masks, interaction matrices, dynamic max pooling, kernel pooling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from neurank.models import (
    CNNInteractionBasedModel,
    KernelPooling,
    KNRMConfig,
    Ranker,
    build_embedding,
    cosine_matrix,
    derive_mask,
    dot_matrix,
    dynamic_max_pool,
    embedding_config,
    embedding_similarity,
    exact_match_matrix,
    interaction_matrices,
    kernel_mus_sigmas,
    kernel_pooling,
    one_query_interactions,
    one_query_tables,
    resolve_masks,
    shared_query,
)
from neurank.models.layers import match_masks
from neurank.text import PAD_ID, UNK_ID


def test_resolve_masks_derives_missing_masks_and_makes_given_ones_bool():
    query_ids = torch.tensor([[2, 3, 0]])
    doc_ids = torch.tensor([[4, 0]])
    query_mask, doc_mask = resolve_masks(query_ids, doc_ids, None, None)
    assert query_mask.tolist() == [[True, True, False]] and doc_mask.tolist() == [[True, False]]
    query_mask, doc_mask = resolve_masks(query_ids, doc_ids, torch.tensor([[1, 0, 0]]), torch.tensor([[1.0, 1.0]]))
    assert query_mask.dtype == doc_mask.dtype == torch.bool
    assert query_mask.tolist() == [[True, False, False]] and doc_mask.tolist() == [[True, True]]


def test_build_embedding_defaults_and_pretrained_vectors():
    embedding, config = build_embedding(10, KNRMConfig(embedding_dim=6))
    assert embedding.weight.shape == (10, 6) and config.embedding_dim == 6
    assert embedding.padding_idx == PAD_ID and embedding.weight.requires_grad and not embedding.sparse

    vectors = torch.randn(10, 4)
    embedding, config = build_embedding(10, KNRMConfig(freeze_embeddings=True, sparse_embeddings=True), vectors)
    assert config == KNRMConfig(embedding_dim=4, freeze_embeddings=True, sparse_embeddings=True)
    assert torch.equal(embedding.weight, vectors) and not embedding.weight.requires_grad and embedding.sparse
    assert embedding_config(10, KNRMConfig(), vectors).embedding_dim == 4
    assert embedding_config(10, KNRMConfig()) == KNRMConfig()


@pytest.mark.parametrize("shape", [(11, 4), (10,), (10, 4, 1)])
def test_build_embedding_rejects_vectors_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"embeddings must have shape \(10, dim\), got"):
        build_embedding(10, KNRMConfig(), torch.randn(*shape))
    with pytest.raises(ValueError, match=r"embeddings must have shape \(10, dim\), got"):
        embedding_config(10, KNRMConfig(), torch.randn(*shape))


def test_ranker_base_adds_no_state():
    assert Ranker().state_dict() == {} and list(Ranker().children()) == []


def test_derive_mask_is_true_off_pad():
    ids = torch.tensor([[5, UNK_ID, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]])
    assert derive_mask(ids).tolist() == [[True, True, False], [False, False, False]]


def test_cosine_and_dot_of_known_vectors_with_padding_zeroed():
    query_emb = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])  # second query token is padding
    doc_emb = torch.tensor([[[4.0, 3.0], [0.0, 2.0], [5.0, 5.0]]])  # third doc token is padding
    query_mask, doc_mask = torch.tensor([[True, False]]), torch.tensor([[True, True, False]])
    cosine = cosine_matrix(query_emb, doc_emb, query_mask, doc_mask)
    # (3,4).(4,3) = 24 over 5*5; (3,4).(0,2) = 8 over 5*2.
    assert torch.allclose(cosine, torch.tensor([[[24 / 25, 0.8, 0.0], [0.0, 0.0, 0.0]]]))
    dot = dot_matrix(query_emb, doc_emb, query_mask, doc_mask)
    assert torch.equal(dot, torch.tensor([[[24.0, 8.0, 0.0], [0.0, 0.0, 0.0]]]))


class _RecordingEmbedding(torch.nn.Embedding):
    """An embedding that records the shape of every id tensor it looks up."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookups = []

    def forward(self, ids):
        self.lookups.append(tuple(ids.shape))
        return super().forward(ids)


def _one_query_batch():
    torch.manual_seed(0)
    query = [5, UNK_ID, 9, PAD_ID]  # one padded query position
    docs = [[9, 9, 7, 5, 11, PAD_ID], [3, UNK_ID, 9, 12, 4, 6], [5, PAD_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]]
    query_ids, doc_ids = torch.tensor([query] * len(docs)), torch.tensor(docs)
    return query_ids, doc_ids, derive_mask(query_ids), derive_mask(doc_ids)


@pytest.mark.parametrize("unknown_match", [False, True])
@pytest.mark.parametrize("kind", ["cosine", "dot"])
def test_embedding_similarity_of_one_query_reads_each_distinct_token_once(kind, unknown_match):
    embedding = _RecordingEmbedding(13, 8, padding_idx=PAD_ID)
    query_ids, doc_ids, query_mask, doc_mask = _one_query_batch()
    plain = (cosine_matrix if kind == "cosine" else dot_matrix)(
        embedding(query_ids),
        embedding(doc_ids),
        *match_masks(query_ids, doc_ids, query_mask, doc_mask, unknown_match),
    )
    assert bool((plain[:, 1] == 0).all()) is not unknown_match  # the query's UNK row
    embedding.lookups.clear()
    with torch.inference_mode():
        shared = embedding_similarity(embedding, kind, query_ids, doc_ids, query_mask, doc_mask, unknown_match)
    # The query's 4 positions and the distinct document ids (PAD, UNK, 3..12: 10 of them), not 3 x 4 and 3 x 6.
    assert embedding.lookups == [(4,), (10,)]
    assert shared.shape == plain.shape == (3, 4, 6)
    torch.testing.assert_close(shared, plain, atol=1e-6, rtol=0)
    assert torch.equal(shared == 0, plain == 0)  # padded cells are exactly 0 in both


@pytest.mark.parametrize("unknown_match", [False, True])
@pytest.mark.parametrize("kinds", [("exact", "cosine", "dot"), ("cosine", "exact"), ("exact",), ("dot",)])
@pytest.mark.parametrize("mask_a_token", [False, True])
def test_one_query_interactions_equal_the_stacked_matrices_channels_last(kinds, mask_a_token, unknown_match):
    # Three channels gather rows, two float32 channels gather 8-byte values, one channel single values.
    embedding = torch.nn.Embedding(13, 8, padding_idx=PAD_ID)
    query_ids, doc_ids, query_mask, doc_mask = _one_query_batch()
    if mask_a_token:  # masks given by the caller, False at real tokens: their cells are 0 like padding
        query_mask, doc_mask = query_mask.clone(), doc_mask.clone()
        query_mask[:, 0] = False
        doc_mask[0, 2] = False
    with torch.no_grad():
        plain = interaction_matrices(
            kinds, query_ids, doc_ids, embedding(query_ids), embedding(doc_ids), query_mask, doc_mask, unknown_match
        )
        cells = one_query_interactions(embedding, kinds, query_ids, doc_ids, query_mask, doc_mask, unknown_match)
    assert cells.shape == (3, 4, 6, len(kinds)) and cells.is_contiguous()
    torch.testing.assert_close(cells.permute(0, 3, 1, 2), plain, atol=1e-6, rtol=0)
    assert torch.equal(cells.permute(0, 3, 1, 2) == 0, plain == 0)  # the same zeros: padding and masked cells
    if "exact" in kinds:  # exact match: the same 0s and 1s, UNK and PAD never matching
        assert torch.equal(cells[..., kinds.index("exact")], plain[:, kinds.index("exact")])
    with pytest.raises(ValueError, match="valid interactions"):
        one_query_interactions(embedding, ("jaccard",), query_ids, doc_ids, query_mask, doc_mask)


def test_one_query_interactions_keep_the_embeddings_dtype_whatever_the_channel_order():
    embedding = torch.nn.Embedding(13, 8, padding_idx=PAD_ID).double()
    query_ids, doc_ids, query_mask, doc_mask = _one_query_batch()
    kinds = ("exact", "cosine")  # the exact channel (float32) first, the cosine one float64
    with torch.no_grad():
        plain = interaction_matrices(
            kinds, query_ids, doc_ids, embedding(query_ids), embedding(doc_ids), query_mask, doc_mask
        )
        cells = one_query_interactions(embedding, kinds, query_ids, doc_ids, query_mask, doc_mask)
    assert cells.dtype == plain.dtype == torch.float64
    torch.testing.assert_close(cells.permute(0, 3, 1, 2), plain, atol=1e-12, rtol=0)


def test_embedding_similarity_keeps_the_plain_path_under_autograd_and_for_different_queries():
    embedding = _RecordingEmbedding(13, 8, padding_idx=PAD_ID)
    query_ids, doc_ids, query_mask, doc_mask = _one_query_batch()
    with_grad = embedding_similarity(embedding, "cosine", query_ids, doc_ids, query_mask, doc_mask)
    assert with_grad.requires_grad and embedding.lookups == [(3, 4), (3, 6)]
    with_grad.sum().backward()
    assert embedding.weight.grad is not None
    query_ids[1, 0] = 7  # a second query
    embedding.lookups.clear()
    with torch.no_grad():
        embedding_similarity(embedding, "dot", query_ids, doc_ids, derive_mask(query_ids), doc_mask)
    assert embedding.lookups == [(3, 4), (3, 6)]
    assert not shared_query(query_ids, derive_mask(query_ids))
    assert not shared_query(query_ids[:1], query_mask[:1])  # one pair: nothing to share
    query_ids[1, 0] = 5
    assert shared_query(query_ids, query_mask)
    with one_query_tables(False):
        assert not shared_query(query_ids, query_mask)
    assert shared_query(query_ids, query_mask)
    with pytest.raises(ValueError, match="'cosine' or 'dot'"):
        embedding_similarity(embedding, "exact", query_ids, doc_ids, query_mask, doc_mask)


def test_exact_match_indicator_never_matches_pad_or_unk():
    query_ids = torch.tensor([[7, UNK_ID, 9, PAD_ID]])
    doc_ids = torch.tensor([[9, 7, UNK_ID, 7, PAD_ID]])
    matrix = exact_match_matrix(query_ids, doc_ids, derive_mask(query_ids), derive_mask(doc_ids))
    assert matrix.tolist() == [
        [
            [0.0, 1.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],  # UNK never matches, not even UNK
            [1.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],  # PAD never matches, not even PAD
        ]
    ]


def test_interaction_matrices_stack_channels_in_order():
    query_ids, doc_ids = torch.tensor([[2, 3]]), torch.tensor([[3, 4, 2]])
    query_emb, doc_emb = torch.randn(1, 2, 4), torch.randn(1, 3, 4)
    masks = derive_mask(query_ids), derive_mask(doc_ids)
    stacked = interaction_matrices(("exact", "dot"), query_ids, doc_ids, query_emb, doc_emb, *masks)
    assert stacked.shape == (1, 2, 2, 3)
    assert torch.equal(stacked[:, 0], exact_match_matrix(query_ids, doc_ids, *masks))
    assert torch.allclose(stacked[:, 1], dot_matrix(query_emb, doc_emb, *masks))
    with pytest.raises(ValueError, match="valid interactions: cosine, dot, exact"):
        interaction_matrices(("jaccard",), query_ids, doc_ids, query_emb, doc_emb, *masks)


def test_dynamic_max_pool_by_hand():
    x = torch.tensor(
        [
            [0.0, 1.0, 2.0, 3.0, 9.0],
            [4.0, 5.0, 6.0, 7.0, 9.0],
            [8.0, 9.0, 10.0, 11.0, 9.0],
            [9.0, 9.0, 9.0, 9.0, 9.0],
        ]
    )[None, None]  # (1, 1, 4, 5); the 9s in the last row and column lie outside the true 3 x 4 region
    pooled = dynamic_max_pool(x, torch.tensor([3]), torch.tensor([4]), (2, 2))
    # Query bins over 3 rows: [0, 2) and [1, 3); doc bins over 4 columns: [0, 2) and [2, 4).
    assert pooled.tolist() == [[[[5.0, 7.0], [9.0, 11.0]]]]


def test_dynamic_max_pool_stretches_a_length_shorter_than_the_grid():
    x = torch.tensor([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]])[None, None]  # (1, 1, 2, 3): true size 1 x 2
    pooled = dynamic_max_pool(x, torch.tensor([1]), torch.tensor([2]), (2, 3))
    # One query row fills both query bins; 2 doc columns over 3 bins: {0}, {0, 1}, {1}.
    assert pooled.tolist() == [[[[1.0, 2.0, 2.0], [1.0, 2.0, 2.0]]]]


def test_dynamic_max_pool_of_an_empty_pair_is_zero():
    x = torch.full((1, 2, 3, 4), -5.0)
    assert torch.equal(dynamic_max_pool(x, torch.tensor([0]), torch.tensor([4]), (2, 2)), torch.zeros(1, 2, 2, 2))


def test_dynamic_max_pool_matches_adaptive_pooling_of_each_true_region():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 7, 23, generator=generator)
    query_lengths = torch.tensor([7, 1, 2, 3, 5, 6])
    doc_lengths = torch.tensor([23, 1, 9, 10, 4, 17])
    pooled = dynamic_max_pool(x, query_lengths, doc_lengths, (3, 5))
    for i, (lq, ld) in enumerate(zip(query_lengths.tolist(), doc_lengths.tolist(), strict=True)):
        expected = F.adaptive_max_pool2d(x[i : i + 1, :, :lq, :ld], (3, 5))
        assert torch.equal(pooled[i : i + 1], expected)
    # Extra padding (any values) changes nothing.
    padded = F.pad(x, (0, 6, 0, 2), value=100.0)
    assert torch.equal(dynamic_max_pool(padded, query_lengths, doc_lengths, (3, 5)), pooled)


def test_kernel_mus_and_sigmas_follow_knrm():
    mus, sigmas = kernel_mus_sigmas(11)
    assert torch.allclose(mus, torch.tensor([1.0, 0.9, 0.7, 0.5, 0.3, 0.1, -0.1, -0.3, -0.5, -0.7, -0.9]))
    assert sigmas[0].item() == pytest.approx(1e-3) and torch.allclose(sigmas[1:], torch.full((10,), 0.1))


def test_kernel_pooling_by_hand():
    sim_matrix = torch.tensor([[[1.0, 0.0], [0.5, 0.0], [0.3, 0.3]]])  # (1, 3, 2); the third query row is padding
    query_mask = torch.tensor([[True, True, False]])
    mus, sigmas = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5])
    features = kernel_pooling(sim_matrix, query_mask, torch.tensor([[True, True]]), mus, sigmas)
    # Kernel mu=0, sigma=1: log(e^-0.5 + 1) + log(e^-0.125 + 1).
    # Kernel mu=1, sigma=0.5: log(1 + e^-2) + log(e^-0.5 + e^-2).
    expected = [
        math.log(math.exp(-0.5) + 1) + math.log(math.exp(-0.125) + 1),
        math.log(1 + math.exp(-2)) + math.log(math.exp(-0.5) + math.exp(-2)),
    ]
    assert torch.allclose(features, torch.tensor([expected]))
    # Masking the second document column leaves one term per query token: -0.5 + -0.125 for the first kernel.
    masked = kernel_pooling(sim_matrix, query_mask, torch.tensor([[True, False]]), mus, sigmas)
    assert masked[0, 0].item() == pytest.approx(-0.625)
    assert KernelPooling(11)(sim_matrix, query_mask, torch.tensor([[True, True]])).shape == (1, 11)


def test_cnn_interaction_based_model_literal_usage():
    torch.manual_seed(0)
    model = CNNInteractionBasedModel(vocab_size=30)
    query = torch.tensor([[2, 3, 4, 0], [5, 6, 0, 0]])
    document = torch.randint(2, 30, (2, 12))
    logits = model(query, document)
    assert logits.shape == (2,)
    probabilities = model.predict_proba(query, document)
    assert probabilities.shape == (2,) and bool(((probabilities >= 0) & (probabilities <= 1)).all())
    model.eval()  # dropout off, so the two calls agree
    assert torch.allclose(model.predict_proba(query, document), torch.sigmoid(model(query, document)))
