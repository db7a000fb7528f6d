"""ArcI specifics: no interaction matrix, texts encoded independently, masked convolution and pooling."""

from __future__ import annotations

import math

import pytest
import torch

from neurank.models import build_model
from neurank.models.arci import ArcI, ArcIConfig, ConvSentenceEncoder


def test_arci_has_no_interaction_matrix():
    model = ArcI(10)
    assert ArcI.has_interaction_matrix is False and not hasattr(model, "interaction_matrix")


def test_each_text_is_encoded_without_seeing_the_other():
    torch.manual_seed(0)
    model = build_model("arci", 20, {"embedding_dim": 8, "conv_channels": [4]}).eval()
    query_ids = torch.tensor([[2, 3, 4], [2, 3, 4]])
    doc_ids = torch.tensor([[5, 6, 7, 8, 0], [9, 9, 10, 0, 0]])
    query_vec, doc_vec = model.encode(query_ids, doc_ids)
    assert query_vec.shape == (2, 4) and doc_vec.shape == (2, 4)
    assert torch.equal(query_vec[0], query_vec[1]) and not torch.equal(doc_vec[0], doc_vec[1])


@pytest.mark.parametrize("pool_size", [1, 2])
def test_padding_never_wins_a_max_and_windows_past_the_end_read_zeros(pool_size):
    # One channel that sums a window of two embeddings: for the values -3, -1, -2 the windows give tanh(-4),
    # tanh(-3) and tanh(-2 + 0), so the text vector is tanh(-2); a padded position would give tanh(0) = 0.
    config = ArcIConfig(conv_channels=(1,), kernel_sizes=(2,), pool_sizes=(pool_size,), activation="tanh")
    encoder = ConvSentenceEncoder(1, config)
    with torch.no_grad():
        encoder.convs[0].weight.fill_(1.0)
        encoder.convs[0].bias.zero_()
    emb = torch.tensor([[-3.0, -1.0, -2.0, 5.0, 5.0, 5.0]])[:, :, None]  # (1, 6, 1); PAD rows hold junk
    for length in (3, 4, 6):
        mask = torch.arange(length) < 3
        vec = encoder(emb[:, :length], mask[None])
        assert vec.item() == pytest.approx(math.tanh(-2.0))
    assert encoder(emb, torch.zeros(1, 6, dtype=torch.bool)).item() == 0.0  # an empty text encodes to 0


def test_config_validation():
    assert ArcIConfig(conv_channels=[8, 8], kernel_sizes=[3, 3], pool_sizes=[2, 2]).conv_channels == (8, 8)
    with pytest.raises(ValueError, match="kernel_sizes has 1 entries but conv_channels has 2"):
        ArcIConfig(conv_channels=(8, 8))
    with pytest.raises(ValueError, match="activation"):
        ArcIConfig(activation="swish")
    with pytest.raises(ValueError, match="pool_sizes must be positive"):
        ArcIConfig(pool_sizes=(0,))


def test_shared_encoder_is_one_module():
    model = ArcI(10, ArcIConfig(share_encoder=True))
    assert model.query_encoder is model.doc_encoder
    separate = ArcI(10)
    assert separate.query_encoder is not separate.doc_encoder
