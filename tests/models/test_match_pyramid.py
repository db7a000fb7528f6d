"""MatchPyramid specifics: config validation, pretrained and frozen embeddings, the first-stage score feature and the
interaction matrix it exposes for visualisation."""

from __future__ import annotations

import pytest
import torch

from neurank.models import (
    CNNInteractionBasedModel,
    MatchPyramid,
    MatchPyramidConfig,
    build_model,
    model_aliases,
    model_classes,
    model_config_to_dict,
    model_names,
)

QUERY_IDS = torch.tensor([[2, 3, 0], [4, 0, 0]])
DOC_IDS = torch.tensor([[5, 2, 3, 6, 0], [4, 4, 7, 0, 0]])


def test_cnn_interaction_based_model_is_match_pyramid_with_defaults():
    model = CNNInteractionBasedModel(20)
    assert isinstance(model, MatchPyramid) and model.config == MatchPyramidConfig()
    assert model.embedding.weight.shape == (20, 100)


def test_cnn_is_an_alias_of_match_pyramid_not_a_second_model():
    assert "match_pyramid" in model_names() and "cnn" not in model_names()
    assert model_aliases()["cnn"] == "match_pyramid"
    assert model_classes("cnn") == (MatchPyramid, MatchPyramidConfig)
    # `model: cnn` configs and checkpoints saved under "cnn" rebuild the same model and give the same scores.
    torch.manual_seed(0)
    saved = build_model("match_pyramid", 10, {"embedding_dim": 8, "interactions": ["cosine", "exact"]}).eval()
    restored = build_model("cnn", 10, model_config_to_dict(saved.config))
    restored.load_state_dict(saved.state_dict())
    assert type(restored) is MatchPyramid and restored.config == saved.config
    with torch.no_grad():
        assert torch.equal(restored.eval()(QUERY_IDS, DOC_IDS), saved(QUERY_IDS, DOC_IDS))


def test_config_turns_lists_into_tuples_and_rejects_bad_values():
    config = MatchPyramidConfig(interactions=["exact"], conv_channels=[4], kernel_sizes=[3], pool_size=[2, 2])
    expected = MatchPyramidConfig(interactions=("exact",), conv_channels=(4,), kernel_sizes=((3, 3),), pool_size=(2, 2))
    assert config == expected
    hash(config)
    with pytest.raises(ValueError, match="interactions"):
        MatchPyramidConfig(interactions=("jaccard",))
    with pytest.raises(ValueError, match="kernel_sizes has 1 entries but conv_channels has 2"):
        MatchPyramidConfig(kernel_sizes=((3, 3),))
    with pytest.raises(ValueError, match="activation"):
        MatchPyramidConfig(activation="swish")


def test_interaction_matrix_has_one_channel_per_interaction():
    model = MatchPyramid(10, MatchPyramidConfig(interactions=("cosine", "exact"), embedding_dim=8))
    matrix = model.interaction_matrix(QUERY_IDS, DOC_IDS)
    assert matrix.shape == (2, 2, 3, 5)
    assert matrix[0, 1].tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert torch.allclose(matrix[0, 0, 0, 1], torch.tensor(1.0))  # the same token has cosine 1
    assert matrix[:, :, :, -1].abs().sum() == 0 and matrix[1, :, 1:].abs().sum() == 0  # padding is zero


def test_pretrained_embeddings_set_the_dimension_and_can_be_frozen():
    embeddings = torch.randn(10, 6)
    model = MatchPyramid(10, MatchPyramidConfig(freeze_embeddings=True), embeddings=embeddings)
    assert model.config.embedding_dim == 6 and torch.equal(model.embedding.weight, embeddings)
    assert not model.embedding.weight.requires_grad
    model(QUERY_IDS, DOC_IDS).sum().backward()
    assert model.embedding.weight.grad is None
    with pytest.raises(ValueError, match=r"shape \(11, dim\)"):
        MatchPyramid(11, embeddings=embeddings)


def test_exact_match_alone_needs_no_embedding():
    model = MatchPyramid(10, MatchPyramidConfig(interactions=("exact",)))
    assert model.embedding is None and model(QUERY_IDS, DOC_IDS).shape == (2,)


def test_first_stage_score_is_a_feature_of_the_scoring_layer():
    torch.manual_seed(0)
    model = MatchPyramid(10, MatchPyramidConfig(use_first_stage_score=True, embedding_dim=8)).eval()
    assert model.score.in_features == 32 * 3 * 10 + 1
    with pytest.raises(ValueError, match="first_stage_score"):
        model(QUERY_IDS, DOC_IDS)
    low = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.zeros(2))
    high = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.ones(2))
    torch.testing.assert_close(high - low, model.score.weight[0, -1].expand(2))
