"""MV-LSTM specifics: k-max pooling over real cells, the padding-blind Bi-LSTM (checked against a packed nn.LSTM),
the interaction matrix, config validation and the first-stage score feature."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from neurank.models import build_model
from neurank.models.mvlstm import MVLSTM, BiLSTM, MVLSTMConfig, k_max_pool, reverse_within_length

QUERY_IDS = torch.tensor([[2, 3, 0], [4, 0, 0]])
DOC_IDS = torch.tensor([[5, 2, 3, 6, 0], [4, 4, 7, 0, 0]])


def test_k_max_pool_keeps_the_largest_real_cells_and_zero_fills_missing_slots():
    x = torch.tensor(
        [
            [[0.1, 0.9, 5.0], [0.7, -0.2, 5.0]],  # the 5.0s are in the padded doc column
            [[0.3, 5.0, 5.0], [5.0, 5.0, 5.0]],  # only one real cell: (0, 0)
        ]
    )[:, None]  # (2, 1, 2, 3)
    query_mask = torch.tensor([[True, True], [True, False]])
    doc_mask = torch.tensor([[True, True, False], [True, False, False]])
    cell_mask = query_mask[:, :, None] & doc_mask[:, None, :]
    top = k_max_pool(x, cell_mask, k=3)
    assert top.shape == (2, 1, 3)
    torch.testing.assert_close(top[:, 0], torch.tensor([[0.9, 0.7, 0.1], [0.3, 0.0, 0.0]]))
    # More slots than cells in the whole (unpadded) matrix: topk still works and pads with 0.
    assert k_max_pool(x[1:, :, :1, :1], cell_mask[1:, :1, :1], k=4).tolist() == [[[pytest.approx(0.3), 0, 0, 0]]]


def test_k_max_pool_passes_gradient_only_to_the_chosen_cells():
    x = torch.tensor([[[[0.1, 0.9], [0.7, 0.5]]]], requires_grad=True)
    cell_mask = torch.tensor([[[True, True], [True, False]]])
    k_max_pool(x, cell_mask, k=2).sum().backward()
    assert x.grad.tolist() == [[[[0.0, 1.0], [1.0, 0.0]]]]


def test_reverse_within_length_keeps_padding_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [0, 0, 0, 0]])[:, :, None]
    reversed_x = reverse_within_length(x, torch.tensor([3, 2, 0]))
    assert reversed_x[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [0, 0, 0, 0]]
    assert torch.equal(reverse_within_length(reversed_x, torch.tensor([3, 2, 0])), x)


def test_bilstm_matches_a_packed_bidirectional_lstm():
    torch.manual_seed(0)
    encoder = BiLSTM(6, 4)
    reference = torch.nn.LSTM(6, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, value in encoder.forward_lstm.named_parameters():
            getattr(reference, name).copy_(value)
        for name, value in encoder.backward_lstm.named_parameters():
            getattr(reference, name + "_reverse").copy_(value)
    lengths = torch.tensor([5, 2, 3])
    mask = torch.arange(7) < lengths[:, None]  # (3, 7): two columns of padding past the longest row
    x = torch.randn(3, 7, 6) * mask[:, :, None]
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=7)
    torch.testing.assert_close(encoder(x, mask), expected, atol=1e-6, rtol=0)


def test_interaction_matrix_is_the_masked_cosine_of_the_states():
    torch.manual_seed(0)
    model = MVLSTM(10, MVLSTMConfig(embedding_dim=8, hidden_size=4)).eval()
    matrix = model.interaction_matrix(QUERY_IDS, DOC_IDS)
    assert matrix.shape == (2, 1, 3, 5)
    assert matrix[:, :, :, -1].abs().sum() == 0 and matrix[1, :, 1:].abs().sum() == 0  # padding is zero
    assert matrix.abs().max() <= 1.0 + 1e-6
    # A one-word query and a one-word document with the same word: the shared Bi-LSTM gives both the same states
    # in both directions, so the cosine is 1, however much padding the batch adds.
    same = model.interaction_matrix(torch.tensor([[4, 0], [2, 0]]), torch.tensor([[4, 0, 0], [3, 2, 0]]))
    torch.testing.assert_close(same[0, 0, 0, 0], torch.tensor(1.0))
    assert same[1, 0, 0, 1] < 1.0 - 1e-3  # with a left context the states differ


def test_tensor_interaction_has_one_channel_per_slice_and_is_nonnegative():
    torch.manual_seed(0)
    config = MVLSTMConfig(embedding_dim=8, hidden_size=4, interaction="tensor", tensor_channels=3, top_k=4)
    model = MVLSTM(10, config).eval()
    matrix = model.interaction_matrix(QUERY_IDS, DOC_IDS)
    assert matrix.shape == (2, 3, 3, 5) and (matrix >= 0).all()
    assert model.mlp[0].in_features == 3 * 4


def test_shared_lstm_reads_both_texts_with_one_encoder():
    shared = MVLSTM(10, MVLSTMConfig(embedding_dim=8))
    separate = MVLSTM(10, MVLSTMConfig(embedding_dim=8, shared_lstm=False))
    assert shared.doc_encoder is None and isinstance(separate.doc_encoder, BiLSTM)
    lstm_params = sum(p.numel() for p in shared.encoder.parameters())
    total = sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters())
    assert total == lstm_params


def test_config_turns_lists_into_tuples_and_rejects_bad_values():
    config = build_model("mvlstm", 10, {"mlp_hidden": [8, 4], "embedding_dim": 8}).config
    assert config.mlp_hidden == (8, 4)
    hash(config)
    with pytest.raises(ValueError, match="interaction"):
        MVLSTMConfig(interaction="dot")
    with pytest.raises(ValueError, match="top_k"):
        MVLSTMConfig(top_k=0)
    with pytest.raises(ValueError, match="dropout"):
        MVLSTMConfig(dropout=1.0)


def test_pretrained_embeddings_set_the_dimension():
    embeddings = torch.randn(10, 6)
    model = MVLSTM(10, MVLSTMConfig(freeze_embeddings=True), embeddings=embeddings)
    assert model.config.embedding_dim == 6 and torch.equal(model.embedding.weight, embeddings)
    assert not model.embedding.weight.requires_grad
    with pytest.raises(ValueError, match=r"shape \(11, dim\)"):
        MVLSTM(11, embeddings=embeddings)


def test_first_stage_score_is_a_feature_of_the_scoring_layer():
    torch.manual_seed(0)
    model = MVLSTM(10, MVLSTMConfig(use_first_stage_score=True, embedding_dim=8)).eval()
    assert model.score.in_features == 20 + 1
    with pytest.raises(ValueError, match="first_stage_score"):
        model(QUERY_IDS, DOC_IDS)
    low = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.zeros(2))
    high = model(QUERY_IDS, DOC_IDS, first_stage_score=torch.ones(2))
    torch.testing.assert_close(high - low, model.score.weight[0, -1].expand(2))
