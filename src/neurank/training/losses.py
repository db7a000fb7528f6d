"""Ranking losses over flattened groups: row `b * G + g` is document `g` of group `b`, the positive first.

- ``bce``: pointwise binary cross-entropy on the sigmoid of each logit (group size 1, labels 0/1);
- ``hinge``: pairwise margin loss max(0, 1 - s+ + s-) (group size 2);
- ``ranknet``: pairwise logistic loss log(1 + exp(s- - s+)) (group size 2);
- ``softmax``: listwise cross-entropy of the positive against its G - 1 negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("bce", "hinge", "ranknet", "softmax")
GROUPED = {"hinge": 2, "ranknet": 2}


def ranking_loss(name: str, logits: Tensor, labels: Tensor, group_size: int) -> Tensor:
    """The mean loss of a batch.

    Args:
        logits: (N,) raw scores, N = groups * group_size.
        labels: (N,) 0/1 labels (only ``bce`` reads them; grouped losses know the positive is first).
    """
    if name == "bce":
        return F.binary_cross_entropy_with_logits(logits, labels)
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")
    if group_size < 2:
        raise ValueError(f"loss {name!r} needs groups of a positive and negatives, got group size {group_size}")
    grouped = logits.view(-1, group_size)  # (B, G)
    if name == "softmax":
        return F.cross_entropy(grouped, torch.zeros(grouped.shape[0], dtype=torch.long, device=logits.device))
    margin = grouped[:, :1] - grouped[:, 1:]  # (B, G - 1): positive minus each negative
    if name == "hinge":
        return F.relu(1.0 - margin).mean()
    return F.softplus(-margin).mean()  # ranknet
