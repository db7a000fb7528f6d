"""DUET specifics: the fixed (max_query_len x max_doc_len) frame of the local model, masked document windows of the
distributed model, and the score as the sum of the two sub-models."""

from __future__ import annotations

import pytest
import torch

from neurank.models.duet import DUET, DUETConfig

QUERY_IDS = torch.tensor([[2, 3, 0], [4, 0, 0]])
DOC_IDS = torch.tensor([[5, 2, 3, 6, 0], [4, 4, 7, 0, 0]])
SMALL = dict(embedding_dim=8, hidden_dim=4, max_query_len=4, max_doc_len=6, doc_pool_size=2)


def capture_input(module: torch.nn.Module) -> list[torch.Tensor]:
    inputs: list[torch.Tensor] = []
    module.register_forward_hook(lambda mod, args, output: inputs.append(args[0].detach()))
    return inputs


def test_config_rejects_bad_values():
    assert DUETConfig().n_doc_windows == 101
    with pytest.raises(ValueError, match="doc_pool_size"):
        DUETConfig(max_doc_len=10, doc_pool_size=20)
    with pytest.raises(ValueError, match="hidden_dim"):
        DUETConfig(hidden_dim=0)


def test_local_model_reads_the_exact_match_matrix_in_a_fixed_frame():
    torch.manual_seed(0)
    model = DUET(10, DUETConfig(**SMALL)).eval()
    frames = capture_input(model.local_conv)
    with torch.no_grad():
        model(QUERY_IDS, DOC_IDS)
    assert frames[0].shape == (2, 4, 6)  # (B, max_query_len, max_doc_len), doc positions as channels
    assert frames[0][0].tolist() == [[0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0] * 6, [0] * 6]
    assert frames[0][1].tolist() == [[1, 1, 0, 0, 0, 0], [0] * 6, [0] * 6, [0] * 6]


def test_document_windows_past_the_end_are_zero():
    torch.manual_seed(0)
    model = DUET(10, DUETConfig(**SMALL)).eval()
    matched = capture_input(model.distributed_head)
    with torch.no_grad():
        model(QUERY_IDS, DOC_IDS)
    windows = matched[0].view(2, 4, 5)  # (B, H, max_doc_len - doc_pool_size + 1)
    # Document 0 has 4 real tokens: windows starting at 0..3 hold a real position; document 1 has 3.
    assert (windows[0, :, :4] != 0).any(dim=0).all() and (windows[0, :, 4:] == 0).all()
    assert (windows[1, :, :3] != 0).any(dim=0).all() and (windows[1, :, 3:] == 0).all()


def test_tokens_past_max_doc_len_are_ignored():
    torch.manual_seed(0)
    model = DUET(20, DUETConfig(**SMALL)).eval()
    doc = torch.tensor([[5, 2, 3, 6, 7, 8, 2, 3, 9]])
    other_tail = torch.tensor([[5, 2, 3, 6, 7, 8, 11, 0, 0]])
    with torch.no_grad():
        assert torch.equal(model(QUERY_IDS[:1], doc), model(QUERY_IDS[:1], other_tail))
        assert torch.equal(model(QUERY_IDS[:1], doc), model(QUERY_IDS[:1], doc[:, :6]))


def test_score_is_local_plus_distributed_plus_weighted_first_stage_score():
    torch.manual_seed(0)
    model = DUET(10, DUETConfig(**SMALL, use_first_stage_score=True)).eval()
    query_mask, doc_mask = QUERY_IDS != 0, DOC_IDS != 0
    first_stage_score = torch.tensor([0.5, -2.0])
    with torch.no_grad():
        score = model(QUERY_IDS, DOC_IDS, first_stage_score=first_stage_score)
        local = model.local_score(QUERY_IDS, DOC_IDS, query_mask, doc_mask)
        distributed = model.distributed_score(QUERY_IDS, DOC_IDS, query_mask, doc_mask)
    weight = model.first_stage_weight.weight.item()
    torch.testing.assert_close(score, local + distributed + weight * first_stage_score)
    with pytest.raises(ValueError, match="first_stage_score"):
        model(QUERY_IDS, DOC_IDS)


def test_interaction_matrix_is_the_masked_exact_match_matrix():
    model = DUET(10, DUETConfig(**SMALL))
    matrix = model.interaction_matrix(QUERY_IDS, DOC_IDS)
    assert matrix.shape == (2, 1, 3, 5)
    assert matrix[1, 0].tolist() == [[1, 1, 0, 0, 0], [0] * 5, [0] * 5]
