"""A batch sampler that groups items of similar length, so dynamic padding pads little.

Training (`shuffle=True`): the indices are shuffled, cut into pools of `batch_size * pool_batches` items, each pool
is sorted by length and cut into batches, and the batches are shuffled. Batches are therefore of similar lengths
but come in random order, and which items share a batch changes every epoch. Everything is drawn from a numpy
generator seeded with (seed, epoch), so an epoch's batches are a function of (seed, epoch) alone.

Inference (`shuffle=False`): all indices sorted by length, longest first, so that a batch too large for the
device fails at once rather than at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices; pass it to `DataLoader(batch_sampler=...)`.

    Args:
        lengths: one length per dataset item (the datasets' `lengths` property).
        batch_size: items per batch.
        shuffle: True for training (random buckets per epoch), False for inference (sorted, longest first).
        seed: with the epoch, decides the order when shuffling.
        drop_last: drop the one incomplete batch, if any.
        pool_batches: batches per sorting pool; larger pools pad less but mix lengths less across batches.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_batches: int = 50,
    ):
        if batch_size < 1 or pool_batches < 1:
            raise ValueError(f"batch_size and pool_batches must be >= 1, got {batch_size}, {pool_batches}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.pool_batches = pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of `epoch` (shuffling only)."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[list[int]]:
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            yield from self._cut(order)
            return
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        pool_size = self.batch_size * self.pool_batches
        # Stable sort: equal lengths keep their shuffled order. Pools are whole batches, so only the last
        # batch of the last pool can be incomplete.
        pools = np.split(order, range(pool_size, len(order), pool_size))
        order = np.concatenate([pool[np.argsort(self.lengths[pool], kind="stable")] for pool in pools])
        batches = list(self._cut(order))
        for position in rng.permutation(len(batches)):
            yield batches[position]

    def _cut(self, order: np.ndarray) -> Iterator[list[int]]:
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size].tolist()
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch
