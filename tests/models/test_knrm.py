"""K-NRM specifics: kernel features on a hand-made translation matrix, the tanh scoring head, masking, config
validation and pretrained embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from neurank.models import build_model
from neurank.models.knrm import KNRM, KNRMConfig

# Two-dimensional unit vectors with known cosines: ids 2 and 4 are the same direction, 5 is at cosine 0.9 from 2,
# and 3 is orthogonal to 2.
EMBEDDINGS = torch.tensor([[0.0, 0.0], [0.3, 0.3], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.9, math.sqrt(0.19)]])


def model(**options) -> KNRM:
    return KNRM(len(EMBEDDINGS), KNRMConfig(**options), embeddings=EMBEDDINGS).eval()


def test_kernel_features_count_soft_matches_at_each_similarity_level():
    # One query token against cosines 1.0 (id 4), 0.9 (id 5) and 0.0 (id 3), then PAD.
    query_ids, doc_ids = torch.tensor([[2, 0]]), torch.tensor([[4, 5, 3, 0, 0]])
    features = model().kernel_features(query_ids, doc_ids)[0] / 0.01  # undo the feature scale
    # Kernels: 1.0 (exact), 0.9, 0.7, 0.5, 0.3, 0.1, -0.1, ...
    expected_exact = 0.0  # log(1): only the identical token falls in the exact kernel
    expected_09 = math.log(1 + math.exp(-0.5))  # 0.9 scores 1, 1.0 scores exp(-0.5 (0.1 / 0.1)^2)
    expected_01 = -0.5  # log(exp(-0.5)) from the orthogonal token alone; PAD adds nothing
    torch.testing.assert_close(features[0], torch.tensor(expected_exact), atol=1e-4, rtol=0)
    torch.testing.assert_close(features[1], torch.tensor(expected_09), atol=1e-4, rtol=0)
    torch.testing.assert_close(features[5], torch.tensor(expected_01), atol=1e-4, rtol=0)
    torch.testing.assert_close(features[6], torch.tensor(expected_01), atol=1e-4, rtol=0)
    assert features[-1] < -20  # no match near -0.9: the clamped count, log(1e-10)


def test_features_sum_over_query_tokens_and_ignore_padded_ones():
    knrm = model()
    doc_ids = torch.tensor([[4, 5, 3]])
    one = knrm.kernel_features(torch.tensor([[2]]), doc_ids)
    twice = knrm.kernel_features(torch.tensor([[2, 2, 0, 0]]), doc_ids)
    torch.testing.assert_close(twice, 2 * one)


def test_score_is_tanh_of_a_linear_layer_unless_disabled():
    query_ids, doc_ids = torch.tensor([[2, 3]]), torch.tensor([[4, 5, 3, 1]])
    knrm = model()
    with torch.no_grad():
        knrm.score.weight.fill_(100.0)
        features = knrm.kernel_features(query_ids, doc_ids)
        linear = features @ knrm.score.weight[0] + knrm.score.bias
        torch.testing.assert_close(knrm(query_ids, doc_ids), torch.tanh(linear))
        assert knrm(query_ids, doc_ids).abs().max() <= 1.0
        plain = model(tanh_output=False)
        plain.load_state_dict(knrm.state_dict())
        torch.testing.assert_close(plain(query_ids, doc_ids), linear)


def test_interaction_matrix_is_the_masked_cosine_matrix():
    matrix = model().interaction_matrix(torch.tensor([[2, 0]]), torch.tensor([[4, 5, 3, 0]]))
    assert matrix.shape == (1, 1, 2, 4)
    torch.testing.assert_close(matrix[0, 0], torch.tensor([[1.0, 0.9, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))


def test_first_stage_score_is_an_input_of_the_scoring_layer():
    knrm = model(use_first_stage_score=True, tanh_output=False)
    assert knrm.score.in_features == 11 + 1
    query_ids, doc_ids = torch.tensor([[2, 3]]), torch.tensor([[4, 5, 3]])
    with pytest.raises(ValueError, match="first_stage_score"):
        knrm(query_ids, doc_ids)
    with torch.no_grad():
        low = knrm(query_ids, doc_ids, first_stage_score=torch.zeros(1))
        high = knrm(query_ids, doc_ids, first_stage_score=torch.ones(1))
    torch.testing.assert_close(high - low, knrm.score.weight[0, -1:])


def test_config_defaults_validation_and_embeddings():
    knrm = build_model("knrm", 10)
    assert isinstance(knrm, KNRM) and knrm.config == KNRMConfig()
    assert knrm.embedding.weight.shape == (10, 100) and knrm.score.in_features == 11
    mus = [1.0, 0.9, 0.7, 0.5, 0.3, 0.1, -0.1, -0.3, -0.5, -0.7, -0.9]
    assert knrm.kernel_pooling.mus.tolist() == pytest.approx(mus)
    assert model().config.embedding_dim == 2
    frozen = model(freeze_embeddings=True)
    assert not frozen.embedding.weight.requires_grad
    with pytest.raises(ValueError, match="n_kernels"):
        KNRMConfig(n_kernels=1)
    with pytest.raises(ValueError, match="kernel widths"):
        KNRMConfig(sigma=0.0)
    with pytest.raises(ValueError, match="dropout"):
        KNRMConfig(dropout=1.0)
    with pytest.raises(ValueError, match=r"shape \(7, dim\)"):
        KNRM(7, embeddings=EMBEDDINGS)
