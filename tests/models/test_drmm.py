"""DRMM specifics: matching histogram bins and modes, IDF and term-vector gating, config validation."""

from __future__ import annotations

import math

import pytest
import torch

from neurank.models import build_model
from neurank.models.drmm import DRMM, DRMMConfig
from neurank.text import UNK_ID

# Unit vectors in 2-D with known cosines to token 2 = (1, 0): 3 -> 0, 4 -> -1, 5 -> 0.707.
EMBEDDINGS = torch.tensor([[0.0, 0.0], [0.6, 0.8], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
QUERY_IDS = torch.tensor([[2, 0]])
DOC_IDS = torch.tensor([[2, 3, 4, 5, 3, 0, 0]])


def histogram(mode: str, query_ids=QUERY_IDS, doc_ids=DOC_IDS, unknown_match: bool = False) -> torch.Tensor:
    model = DRMM(6, DRMMConfig(n_bins=5, histogram=mode, unknown_match=unknown_match), embeddings=EMBEDDINGS)
    return model.matching_histogram(query_ids, doc_ids)


def test_histogram_counts_each_real_doc_term_in_its_bin_and_exact_matches_last():
    # 5 bins: [-1, -.5), [-.5, 0), [0, .5), [.5, 1) and the exact-match bin; PAD counts nowhere.
    counts = histogram("ch")
    assert counts.shape == (1, 2, 5)
    assert counts[0, 0].tolist() == [1.0, 0.0, 2.0, 1.0, 1.0]
    assert counts[0, 1].tolist() == [0.0] * 5  # the padded query term
    lch = histogram("lch")[0, 0].tolist()
    assert lch == pytest.approx([math.log10(2), 0.0, math.log10(3), math.log10(2), math.log10(2)])
    assert histogram("nh")[0, 0].tolist() == pytest.approx([0.2, 0.0, 0.4, 0.2, 0.2])  # / 5 real doc terms


def test_unk_matches_nothing_and_counts_as_an_unrelated_term():
    counts = histogram("ch", torch.tensor([[UNK_ID]]), torch.tensor([[UNK_ID, 4]]))  # both cells 0
    assert counts[0, 0].tolist() == [0.0, 0.0, 2.0, 0.0, 0.0]  # the bin of cosine 0, as unrelated words


def test_before_issue_22_unk_was_not_an_exact_match_though_its_cosine_with_itself_is_one():
    old = histogram("ch", torch.tensor([[UNK_ID]]), torch.tensor([[UNK_ID, 4]]), unknown_match=True)
    assert old[0, 0].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]  # cosines 1 and -0.6: UNK-UNK in the highest soft bin


def test_idf_gating_is_a_softmax_over_real_query_terms_and_its_weight_trains_once_idf_varies():
    model = DRMM(6, DRMMConfig(n_bins=5), embeddings=EMBEDDINGS)
    assert torch.equal(model.idf, torch.ones(6)) and not model.gate_weight.requires_grad
    model.set_idf(torch.tensor([0.0, 1.0, 2.0, 0.5, 1.0, 1.0]))
    assert model.gate_weight.requires_grad
    gates = model.term_gates(torch.tensor([[2, 3, 0]]))
    expected = torch.softmax(torch.tensor([2.0, 0.5]), dim=0)  # gate weight starts at 1
    torch.testing.assert_close(gates[0], torch.cat([expected, torch.zeros(1)]))
    model(torch.tensor([[2, 3]]), DOC_IDS).sum().backward()
    assert model.gate_weight.grad is not None and model.gate_weight.grad != 0
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        model.set_idf(torch.ones(7))

    # The IDF is part of the state_dict, and loading it makes the gate weight trainable again.
    restored = DRMM(6, model.config)
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.idf, model.idf) and restored.gate_weight.requires_grad


def test_extra_padding_never_changes_a_score_with_varying_idf():
    torch.manual_seed(0)
    model = DRMM(12, DRMMConfig(embedding_dim=8)).eval()
    model.set_idf(torch.rand(12) * 5)
    query_ids, doc_ids = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([[2, 7, 8, 9, 0], [6, 6, 10, 11, 5]])
    scores = model(query_ids, doc_ids)
    padded = model(torch.nn.functional.pad(query_ids, (0, 4)), torch.nn.functional.pad(doc_ids, (0, 9)))
    torch.testing.assert_close(padded, scores, atol=1e-6, rtol=0)


def test_term_vector_gating_trains_the_embeddings_through_the_gate():
    model = build_model("drmm", 6, {"gating": "tv", "freeze_embeddings": False, "embedding_dim": 4})
    assert not hasattr(model, "gate_weight") and model.embedding.weight.requires_grad
    model(torch.tensor([[2, 3]]), DOC_IDS).sum().backward()
    assert model.embedding.weight.grad[[2, 3]].abs().sum() > 0


def test_config_defaults_and_validation():
    config = DRMMConfig(hidden_sizes=[4, 2])
    assert config.hidden_sizes == (4, 2) and hash(config)
    default = DRMMConfig()
    assert (default.n_bins, default.histogram, default.hidden_sizes, default.gating) == (30, "lch", (5,), "idf")
    assert default.freeze_embeddings
    assert not DRMM(6).embedding.weight.requires_grad
    with pytest.raises(ValueError, match="gating='tv'"):
        DRMMConfig(freeze_embeddings=False)
    with pytest.raises(ValueError, match="histogram"):
        DRMMConfig(histogram="log")
    with pytest.raises(ValueError, match="n_bins"):
        DRMMConfig(n_bins=1)
    with pytest.raises(ValueError, match="gating"):
        DRMMConfig(gating="attention")
