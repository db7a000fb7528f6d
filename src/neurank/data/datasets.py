"""Map-style datasets over `QueryExample`s: training groups (pointwise, pairwise, listwise) and inference pairs.

Every dataset returns the same item, a *group* of documents for one query, as unpadded id lists:

    {"query": list[int], "docs": list[list[int]], "labels": list[float], "scores": list[float]}

- pointwise: one candidate per item (group size 1, label 0/1), for binary cross-entropy;
- pairwise: a positive then one sampled negative (group size 2), for hinge or RankNet losses;
- listwise: a positive then `num_negatives` sampled negatives (group size 1 + k), for softmax cross-entropy;
- inference: one candidate per item plus its `"query_id"` and `"doc_id"`, for scoring a run.

The positive is always first in a training group. Training datasets skip queries without a positive (and, for
pairwise and listwise, without a negative); `skipped_queries` lists them. Negatives are drawn from the query's
candidates by a `random.Random` seeded with (seed, epoch, index), so an item depends on nothing else: the same
seed gives the same batches in any worker layout, and training resumes exactly after `set_epoch(epoch)`. Workers
hold a copy of the dataset, so call `set_epoch` before creating each epoch's DataLoader iterator (the default,
`persistent_workers=False`, re-copies it every epoch).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from neurank.data.examples import QueryExample

Item = dict[str, Any]


def _group(example: QueryExample, positions: Sequence[int]) -> Item:
    return {
        "query": example.query,
        "docs": [example.docs[i] for i in positions],
        "labels": [example.labels[i] for i in positions],
        "scores": [example.scores[i] for i in positions],
    }


class PointwiseDataset(Dataset):
    """Each candidate of each query that has a positive, one per item (group size 1).

    Args:
        examples: from `build_examples`.
    """

    group_size = 1

    def __init__(self, examples: Sequence[QueryExample]):
        self.examples = [ex for ex in examples if ex.num_positives > 0]
        self.skipped_queries = [ex.query_id for ex in examples if ex.num_positives == 0]
        self._index = [(e, i) for e, ex in enumerate(self.examples) for i in range(len(ex))]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> Item:
        e, i = self._index[index]
        return _group(self.examples[e], [i])

    @property
    def lengths(self) -> list[int]:
        """Document length of each item, for `BucketBatchSampler`."""
        return [len(self.examples[e].docs[i]) for e, i in self._index]

    def set_epoch(self, epoch: int) -> None:
        """Nothing is sampled here; present so every training dataset takes the same calls."""


class ListwiseDataset(Dataset):
    """One item per (query, positive): the positive, then `num_negatives` negatives sampled from the query's candidates.

    Negatives are drawn without replacement; a query with fewer negatives than `num_negatives` repeats some
    (every group must have the same size to be batched).

    Args:
        examples: from `build_examples`.
        num_negatives: negatives per group (group size is 1 + num_negatives).
        seed: with the epoch and the item index, decides the negatives.
    """

    def __init__(self, examples: Sequence[QueryExample], num_negatives: int, seed: int = 0):
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.num_negatives = num_negatives
        self.seed = seed
        self.epoch = 0
        self.examples: list[QueryExample] = []
        self.skipped_queries: list[str] = []
        self._negatives: list[list[int]] = []
        self._index: list[tuple[int, int]] = []
        for ex in examples:
            positives = [i for i, label in enumerate(ex.labels) if label > 0]
            negatives = [i for i, label in enumerate(ex.labels) if label <= 0]
            if not positives or not negatives:
                self.skipped_queries.append(ex.query_id)
                continue
            self._index += [(len(self.examples), i) for i in positives]
            self.examples.append(ex)
            self._negatives.append(negatives)

    @property
    def group_size(self) -> int:
        return 1 + self.num_negatives

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> Item:
        e, positive = self._index[index]
        pool = self._negatives[e]
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")  # str seeds hash with sha512: stable across runs
        k = self.num_negatives
        negatives = rng.sample(pool, k) if len(pool) >= k else pool + rng.choices(pool, k=k - len(pool))
        return _group(self.examples[e], [positive, *negatives])

    @property
    def lengths(self) -> list[int]:
        """Length of each item's positive document (its negatives change per epoch), for `BucketBatchSampler`."""
        return [len(self.examples[e].docs[i]) for e, i in self._index]

    def set_epoch(self, epoch: int) -> None:
        """Select the negatives of `epoch`; items are a function of (seed, epoch, index) alone."""
        self.epoch = epoch


class PairwiseDataset(ListwiseDataset):
    """One item per (query, positive): the positive and one sampled negative (group size 2)."""

    def __init__(self, examples: Sequence[QueryExample], seed: int = 0):
        super().__init__(examples, num_negatives=1, seed=seed)


class InferenceDataset(Dataset):
    """Every (query, candidate) pair of `examples`, one per item, with `"query_id"` and `"doc_id"` for the run."""

    group_size = 1

    def __init__(self, examples: Sequence[QueryExample]):
        self.examples = list(examples)
        self._index = [(e, i) for e, ex in enumerate(self.examples) for i in range(len(ex))]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> Item:
        e, i = self._index[index]
        example = self.examples[e]
        item = _group(example, [i])
        item["query_id"], item["doc_id"] = example.query_id, example.doc_ids[i]
        return item

    @property
    def lengths(self) -> list[int]:
        """Document length of each item, for `BucketBatchSampler`."""
        return [len(self.examples[e].docs[i]) for e, i in self._index]
