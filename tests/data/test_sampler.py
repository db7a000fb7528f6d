"""BucketBatchSampler: every index once, less padding than random batches, deterministic per (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, RandomSampler

from neurank.data import BucketBatchSampler


def skewed_lengths(n: int = 2000, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).lognormal(3.0, 1.0, size=n).astype(int).clip(1, 1000).tolist()


def padding(batches, lengths) -> int:
    return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)


@pytest.mark.parametrize(
    "n, batch_size, drop_last", [(103, 8, False), (103, 8, True), (96, 8, True), (5, 16, False), (0, 4, False)]
)
@pytest.mark.parametrize("shuffle", [True, False])
def test_each_index_exactly_once_per_epoch(n, batch_size, drop_last, shuffle):
    sampler = BucketBatchSampler(skewed_lengths(n), batch_size, shuffle=shuffle, drop_last=drop_last, pool_batches=3)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen = [i for batch in batches for i in batch]
        assert len(seen) == len(set(seen))
        assert sum(len(batch) < batch_size for batch in batches) <= 1  # pools are whole batches
        if drop_last:
            assert all(len(batch) == batch_size for batch in batches)
            assert len(seen) == n - n % batch_size
        else:
            assert sorted(seen) == list(range(n))


def test_buckets_pad_much_less_than_random_batches():
    lengths = skewed_lengths()
    bucketed = padding(BucketBatchSampler(lengths, 32, seed=0), lengths)
    generator = torch.Generator().manual_seed(0)
    random = padding(BatchSampler(RandomSampler(range(len(lengths)), generator=generator), 32, False), lengths)
    assert bucketed < 0.2 * random


def test_deterministic_per_seed_and_epoch():
    lengths = skewed_lengths(500)
    a, b = BucketBatchSampler(lengths, 16, seed=3), BucketBatchSampler(lengths, 16, seed=3)
    assert list(a) == list(b) == list(a)  # iterating twice in one epoch repeats the epoch
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    assert list(BucketBatchSampler(lengths, 16, seed=4)) != first


def test_inference_order_is_sorted_longest_first():
    lengths = [3, 9, 1, 9, 5]
    batches = list(BucketBatchSampler(lengths, 2, shuffle=False))
    assert batches == [[1, 3], [4, 0], [2]]
