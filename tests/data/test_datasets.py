"""Training groups (pointwise, pairwise, listwise) and inference pairs: shapes, skipped queries, determinism."""

from __future__ import annotations

import pytest
from torch.utils.data import DataLoader

from neurank.data import (
    BucketBatchSampler,
    InferenceDataset,
    ListwiseDataset,
    PairwiseDataset,
    PointwiseDataset,
    collate,
)

KEYS = {"query", "docs", "labels", "scores"}


@pytest.fixture
def examples(make_example):
    return [
        make_example("a", [1, 0, 0, 0, 0, 0]),  # 1 positive, 5 negatives
        make_example("b", [0, 0, 0]),  # no positive: skipped everywhere for training
        make_example("c", [1, 1]),  # no negative: pointwise only
        make_example("d", [0, 1, 0]),  # 1 positive, 2 negatives
    ]


def test_pointwise_items(examples):
    dataset = PointwiseDataset(examples)
    assert dataset.skipped_queries == ["b"]
    assert len(dataset) == 6 + 2 + 3
    item = dataset[1]
    assert set(item) == KEYS
    assert item["query"] == [2, 3] and item["docs"] == [[11, 11]] and item["labels"] == [0.0]
    assert item["scores"] == [pytest.approx(0.9)]
    assert [dataset[i]["labels"][0] for i in range(len(dataset))] == [1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0]
    assert dataset.lengths == [1, 2, 3, 4, 5, 6, 1, 2, 1, 2, 3]


def test_pairwise_items(examples):
    dataset = PairwiseDataset(examples, seed=0)
    assert dataset.skipped_queries == ["b", "c"] and dataset.group_size == 2
    assert len(dataset) == 2  # one item per positive
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == KEYS and item["labels"] == [1.0, 0.0] and len(item["docs"]) == 2
    assert dataset[1]["docs"][0] == [11, 11]  # query d's positive first
    assert dataset[1]["docs"][1] in ([10], [12, 12, 12])  # a negative of the same query
    assert dataset.lengths == [1, 2]


def test_listwise_samples_distinct_negatives_and_repeats_when_too_few(examples):
    dataset = ListwiseDataset(examples, num_negatives=3, seed=1)
    assert dataset.group_size == 4 and len(dataset) == 2
    first = dataset[0]
    assert first["labels"] == [1.0, 0.0, 0.0, 0.0] and first["docs"][0] == [10]
    negatives = [tuple(doc) for doc in first["docs"][1:]]
    assert len(set(negatives)) == 3 and all(len(doc) > 1 for doc in negatives)  # distinct, none is the positive
    second = dataset[1]  # query d has 2 negatives for 3 slots
    assert len(second["docs"]) == 4 and {tuple(d) for d in second["docs"][1:]} == {(10,), (12, 12, 12)}
    assert second["scores"][0] == pytest.approx(0.9)  # scores travel with their documents


def test_negatives_are_a_function_of_seed_epoch_and_index(make_example):
    examples = [make_example(f"q{i}", [1] + [0] * 20) for i in range(20)]
    dataset = ListwiseDataset(examples, num_negatives=4, seed=7)
    epoch0 = [dataset[i]["docs"] for i in range(len(dataset))]
    assert [dataset[i]["docs"] for i in reversed(range(len(dataset)))][::-1] == epoch0  # access order is irrelevant
    dataset.set_epoch(1)
    epoch1 = [dataset[i]["docs"] for i in range(len(dataset))]
    assert epoch1 != epoch0
    resumed = ListwiseDataset(examples, num_negatives=4, seed=7)  # e.g. a restart from a checkpoint after epoch 0
    resumed.set_epoch(1)
    assert [resumed[i]["docs"] for i in range(len(resumed))] == epoch1
    other_seed = ListwiseDataset(examples, num_negatives=4, seed=8)
    assert [other_seed[i]["docs"] for i in range(len(other_seed))] != epoch0


def test_inference_pairs_cover_every_candidate(examples):
    dataset = InferenceDataset(examples)
    assert len(dataset) == 6 + 3 + 2 + 3
    pairs = [(dataset[i]["query_id"], dataset[i]["doc_id"]) for i in range(len(dataset))]
    assert pairs[:2] == [("a", "a-d0"), ("a", "a-d1")] and len(set(pairs)) == len(pairs)
    assert set(dataset[0]) == KEYS | {"query_id", "doc_id"}


def test_dataloader_with_sampler_and_collate(examples):
    dataset = ListwiseDataset(examples, num_negatives=2)
    loader = DataLoader(dataset, batch_sampler=BucketBatchSampler(dataset.lengths, 2), collate_fn=collate)
    (batch,) = list(loader)
    assert batch.group_size == 3 and batch.doc_ids.shape[0] == 6 and batch.labels.tolist() == [1, 0, 0, 1, 0, 0]
    inference = InferenceDataset(examples)
    sampler = BucketBatchSampler(inference.lengths, 4, shuffle=False)
    pairs = [pair for batch in DataLoader(inference, batch_sampler=sampler, collate_fn=collate) for pair in batch.pairs]
    assert sorted(pairs) == sorted((dataset_item["query_id"], dataset_item["doc_id"]) for dataset_item in inference)


def test_listwise_rejects_zero_negatives(examples):
    with pytest.raises(ValueError, match="num_negatives"):
        ListwiseDataset(examples, num_negatives=0)
