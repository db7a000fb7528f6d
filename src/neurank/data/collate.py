"""Items -> `Batch`: the one place where id lists are padded and masks are built.

Groups are flattened: a batch of B items of group size G holds N = B * G rows, row `b * G + g` being document `g`
of item `b` (the query repeated on each of its rows). Padding is dynamic, to the longest sequence in the batch
(optionally rounded up to a multiple), never to a global maximum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from neurank.text import PAD_ID


@dataclass
class Batch:
    """A padded batch of (query, document) rows.

    Attributes:
        query_ids: (N, Lq) long, PAD_ID after each query's end.
        query_mask: (N, Lq) bool, True on real tokens; every row has at least one.
        doc_ids: (N, Ld) long.
        doc_mask: (N, Ld) bool.
        first_stage_score: (N,) float, the per-query normalised first-stage score.
        labels: (N,) float.
        group_size: G, rows per item; N = items * G.
        pairs: (query_id, doc_id) of each row, inference batches only.
    """

    query_ids: torch.Tensor
    query_mask: torch.Tensor
    doc_ids: torch.Tensor
    doc_mask: torch.Tensor
    first_stage_score: torch.Tensor
    labels: torch.Tensor
    group_size: int
    pairs: list[tuple[str, str]] | None = None

    def __len__(self) -> int:
        return self.query_ids.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on `device`."""
        return self._map(lambda tensor: tensor.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """A copy in pinned memory; `DataLoader(pin_memory=True)` calls this."""
        return self._map(torch.Tensor.pin_memory)

    def _map(self, fn) -> Batch:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: fn(v) for k, v in values.items() if isinstance(v, torch.Tensor)})


def pad(sequences: Sequence[Sequence[int]], pad_to_multiple_of: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to the longest one (rounded up to `pad_to_multiple_of`).

    Returns:
        ids (N, L) long and mask (N, L) bool. Raises ValueError on an empty list, which would become an all-masked row.
    """
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.long)  # (N,)
    if len(sequences) == 0 or int(lengths.min()) == 0:
        raise ValueError("cannot pad an empty id list: the model would get an all-PAD row (see data.examples)")
    max_len = int(lengths.max())
    if pad_to_multiple_of:
        max_len = -(-max_len // pad_to_multiple_of) * pad_to_multiple_of
    mask = torch.arange(max_len) < lengths[:, None]  # (N, L)
    ids = torch.full(mask.shape, PAD_ID, dtype=torch.long)  # (N, L)
    # Boolean-mask assignment fills row by row, left to right: exactly the concatenated sequences.
    ids[mask] = torch.tensor([token for seq in sequences for token in seq], dtype=torch.long)
    return ids, mask


def collate(items: Sequence[dict[str, Any]], pad_to_multiple_of: int | None = None) -> Batch:
    """Pad a list of dataset items into a `Batch`; use `functools.partial` to fix `pad_to_multiple_of`.

    Args:
        items: groups `{"query", "docs", "labels", "scores"}`, all with the same number of docs; inference items
            also carry `"query_id"` and `"doc_id"`.
        pad_to_multiple_of: round both padded lengths up to a multiple of this (e.g. 8 for tensor cores).
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    group_size = len(items[0]["docs"])
    if any(len(item["docs"]) != group_size for item in items):
        sizes = sorted({len(item["docs"]) for item in items})
        raise ValueError(f"all items of a batch must have the same group size, got sizes {sizes}")
    query_ids, query_mask = pad([item["query"] for item in items for _ in range(group_size)], pad_to_multiple_of)
    doc_ids, doc_mask = pad([doc for item in items for doc in item["docs"]], pad_to_multiple_of)
    pairs = [(item["query_id"], item["doc_id"]) for item in items] if "doc_id" in items[0] else None
    return Batch(
        query_ids=query_ids,  # (N, Lq)
        query_mask=query_mask,  # (N, Lq)
        doc_ids=doc_ids,  # (N, Ld)
        doc_mask=doc_mask,  # (N, Ld)
        first_stage_score=torch.tensor([s for item in items for s in item["scores"]], dtype=torch.float),  # (N,)
        labels=torch.tensor([label for item in items for label in item["labels"]], dtype=torch.float),  # (N,)
        group_size=group_size,
        pairs=pairs,
    )
