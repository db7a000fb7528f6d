"""collate: dynamic padding, masks, group flattening, inference pairs."""

from __future__ import annotations

import pytest
import torch

from neurank.data import Batch, collate
from neurank.text import PAD_ID


def group(query, docs, labels=None, scores=None):
    return {
        "query": query,
        "docs": docs,
        "labels": labels or [0.0] * len(docs),
        "scores": scores or [0.5] * len(docs),
    }


def test_pads_to_the_longest_in_the_batch_and_masks_real_tokens():
    batch = collate([group([5, 6, 7], [[8]], [1.0], [1.0]), group([9], [[10, 11]], [0.0], [0.25])])
    assert isinstance(batch, Batch) and len(batch) == 2 and batch.group_size == 1
    assert batch.query_ids.tolist() == [[5, 6, 7], [9, PAD_ID, PAD_ID]]
    assert batch.query_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.doc_ids.tolist() == [[8, PAD_ID], [10, 11]]
    assert batch.doc_mask.tolist() == [[True, False], [True, True]]
    assert batch.labels.tolist() == [1.0, 0.0] and batch.first_stage_score.tolist() == [1.0, 0.25]
    assert batch.query_ids.dtype == batch.doc_ids.dtype == torch.long
    assert batch.query_mask.dtype == batch.doc_mask.dtype == torch.bool
    assert batch.labels.dtype == batch.first_stage_score.dtype == torch.float32
    assert batch.pairs is None


def test_padding_is_per_batch_not_global():
    short = collate([group([1], [[2, 3]])])
    long = collate([group([1, 2, 3, 4], [list(range(2, 50))])])
    assert short.doc_ids.shape == (1, 2) and short.query_ids.shape == (1, 1)
    assert long.doc_ids.shape == (1, 48) and long.query_ids.shape == (1, 4)


def test_groups_are_flattened_item_major_with_the_query_repeated():
    items = [
        group([1], [[10], [11, 11], [12]], [1.0, 0.0, 0.0], [1.0, 0.5, 0.2]),
        group([2, 2], [[20, 20, 20], [21], [22]], [1.0, 0.0, 0.0], [0.9, 0.8, 0.7]),
    ]
    batch = collate(items)
    assert batch.group_size == 3 and batch.doc_ids.shape == (6, 3) and batch.query_ids.shape == (6, 2)
    assert batch.doc_ids[:, 0].tolist() == [10, 11, 12, 20, 21, 22]  # row b * G + g
    assert batch.query_ids[:, 0].tolist() == [1, 1, 1, 2, 2, 2]
    assert batch.query_mask.sum(1).tolist() == [1, 1, 1, 2, 2, 2]
    assert batch.labels.view(2, 3)[:, 0].tolist() == [1.0, 1.0]  # positives first in each group
    assert batch.first_stage_score.tolist() == pytest.approx([1.0, 0.5, 0.2, 0.9, 0.8, 0.7])


def test_pad_to_multiple_of():
    batch = collate([group([1, 2, 3], [[4] * 9])], pad_to_multiple_of=8)
    assert batch.query_ids.shape == (1, 8) and batch.doc_ids.shape == (1, 16)
    assert batch.doc_mask.sum().item() == 9 and batch.doc_ids[0, 9:].eq(PAD_ID).all()


def test_inference_items_carry_their_ids():
    items = [dict(group([1], [[2]]), query_id="q1", doc_id="d1"), dict(group([1], [[3]]), query_id="q1", doc_id="d2")]
    assert collate(items).pairs == [("q1", "d1"), ("q1", "d2")]


def test_rejects_mixed_group_sizes_and_empty_rows():
    with pytest.raises(ValueError, match="same group size"):
        collate([group([1], [[2]]), group([1], [[2], [3]])])
    with pytest.raises(ValueError, match="all-PAD row"):
        collate([group([1], [[]])])
    with pytest.raises(ValueError, match="all-PAD row"):
        collate([group([], [[2]])])


def test_to_moves_every_tensor_and_keeps_the_rest():
    batch = collate([dict(group([1], [[2]]), query_id="q", doc_id="d")])
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and moved.group_size == 1 and moved.pairs == [("q", "d")]
    assert all(t.device.type == "cpu" for t in (moved.query_ids, moved.doc_mask, moved.labels, moved.first_stage_score))
    if torch.cuda.is_available():
        assert batch.to("cuda").doc_ids.is_cuda and batch.pin_memory().doc_ids.is_pinned()
