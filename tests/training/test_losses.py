"""Losses on groups whose values can be worked out by hand."""

import math

import pytest
import torch

from neurank.training.losses import ranking_loss


def test_softmax_loss_is_cross_entropy_of_the_positive():
    logits = torch.tensor([2.0, 0.0, 0.0, 0.0, 1.0, 1.0])  # two groups of 3, positive first
    # group 1: -log(e^2 / (e^2 + 2)) = log(1 + 2e^-2); group 2: -log(1 / (1 + 2e)) = log(1 + 2e)
    expected = (math.log(1 + 2 * math.exp(-2)) + math.log(1 + 2 * math.e)) / 2
    assert ranking_loss("softmax", logits, torch.zeros(6), 3).item() == pytest.approx(expected, rel=1e-6)


def test_hinge_and_ranknet_on_pairs():
    logits = torch.tensor([3.0, 1.0, 0.5, 1.0])  # margins +2 and -0.5
    assert ranking_loss("hinge", logits, torch.zeros(4), 2).item() == pytest.approx((0 + 1.5) / 2)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(0.5))) / 2
    assert ranking_loss("ranknet", logits, torch.zeros(4), 2).item() == pytest.approx(expected, rel=1e-6)


def test_bce_reads_labels():
    logits, labels = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])
    assert ranking_loss("bce", logits, labels, 1).item() == pytest.approx(math.log(2))


def test_grouped_loss_refuses_groups_of_one_and_unknown_names():
    with pytest.raises(ValueError, match="group size 1"):
        ranking_loss("softmax", torch.zeros(2), torch.zeros(2), 1)
    with pytest.raises(ValueError, match="unknown loss 'lambda'"):
        ranking_loss("lambda", torch.zeros(2), torch.zeros(2), 2)
