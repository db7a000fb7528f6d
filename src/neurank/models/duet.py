"""DUET, the sum of a local (exact-match) model and a distributed (representation) model.

Mitra, Diaz, Craswell. "Learning to Match Using Local and Distributed Representations of Text for Web Search".
WWW 2017.

The local model reads the binary exact-match matrix of the first `max_query_len` query terms against the first
`max_doc_len` document positions. Its convolution has filters of width 1 over the query terms with the document
positions as input channels: every query term's row of matches becomes `hidden_dim` position-weighted match counts
(the weights are per document position, so the model can learn that early matches matter more). Two dense layers, a
dropout layer and a final dense layer turn the concatenated per-term features into the local score.

The distributed model embeds query and document, reads them with a width-3 convolution each (`hidden_dim` filters),
max-pools the query over all its terms into one vector (then a dense layer), max-pools the document over windows of
`doc_pool_size` positions with stride 1 (then a 1x1 convolution), and multiplies the query vector into every document
window (Hadamard product). Two dense layers, dropout and a final dense layer over the flattened windows give the
distributed score. The score is the local score plus the distributed score. Every hidden activation is tanh.

Departures from the paper and the choices it leaves open:
- word embeddings (`self.embedding`, shared by query and document) replace the paper's character-trigram ("n-graph")
  hash counts as the distributed model's input, as the authors' own PyTorch baseline for MS MARCO does (Duet v2,
  Mitra & Craswell 2019, `Duet.ipynb` in the MSMARCO and NDRM repositories).
- Variable lengths. The local filters and the distributed model's flattened windows need a fixed document length, as
  in the paper (1000 terms) and the reference code (`MAX_DOC_TERMS` 200, `MAX_QUERY_TERMS` 20). The model keeps that
  design and cuts or zero-pads every pair to `max_query_len` x `max_doc_len` itself: documents longer than
  `max_doc_len` are read up to that length only (the paper does the same at 1000), and a shorter one's missing
  positions are zeros, so padding a batch further, or not at all, gives the same tensors and the same score. Inside
  that fixed frame everything past the true lengths is masked: padded query terms have zero local features, the
  query is max-pooled over its real terms only, and document windows that start past the end are zeroed after the
  Hadamard product, so appending PAD never changes a score. We chose this over convolving along the document and
  pooling (which accepts any length) because the position-specific weights are the point of the local model.
- sizes follow the reference code where the paper's would not train on a CPU: `hidden_dim` 64 (300 in the paper),
  `max_doc_len` 200 and `doc_pool_size` 100 (the reference's values; the paper uses 1000 and 100), `max_query_len`
  20, dropout 0.5 (the reference's rate). Each convolution window starts at its position and reads zeros past the
  end (the reference uses 'valid' convolutions over zero-padded fixed-length inputs, which reads the same zeros).
- with `use_first_stage_score`, a learnt weight times the first-stage score is added to the sum of the two scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    Ranker,
    Stage,
    build_embedding,
    exact_match_matrix,
    first_stage_column,
    linear_flops,
    match_masks,
    resolve_masks,
)
from neurank.models.registry import register
from neurank.text import PAD_ID


@dataclass(frozen=True)
class DUETConfig:
    """DUET settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        hidden_dim: filters of every convolution and width of every dense layer (300 in the paper).
        max_query_len: query terms the local model reads (10 in the paper, 20 in the reference code); longer queries
            are cut (for both sub-models), shorter ones padded with zero features.
        max_doc_len: document positions both sub-models read (1000 in the paper, 200 in the reference code); longer
            documents are cut, shorter ones zero-padded.
        window: width of the distributed model's query and document convolutions (3).
        doc_pool_size: width of the distributed model's max pooling over the document, stride 1 (100).
        dropout: before the final dense layer of each sub-model (0.5 in the reference code).
        use_first_stage_score: add a learnt weight times the (already normalised) first-stage score to the score.
        unknown_match: let the unknown-word id UNK match in the interactions, as before issue 22 (every unknown
            word has the one UNK vector, so two unknown words matched as strongly as a word with itself); False
            (the default) makes a cell with UNK on either side 0 (`neurank.models.layers`). Checkpoints saved
            before the option load with True.
        freeze_embeddings: keep the embeddings fixed during training.
        sparse_embeddings: sparse embedding gradients (for large vocabularies; needs a sparse-aware optimizer).
        padding_idx: the PAD id, whose embedding stays zero and receives no gradient.
    """

    embedding_dim: int = 100
    hidden_dim: int = 64
    max_query_len: int = 20
    max_doc_len: int = 200
    window: int = 3
    doc_pool_size: int = 100
    dropout: float = 0.5
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        for name in ("hidden_dim", "max_query_len", "max_doc_len", "window", "doc_pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        if self.doc_pool_size > self.max_doc_len:
            raise ValueError(f"doc_pool_size ({self.doc_pool_size}) must not exceed max_doc_len ({self.max_doc_len})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def n_doc_windows(self) -> int:
        """Document pooling windows the distributed model flattens."""
        return self.max_doc_len - self.doc_pool_size + 1


def _fit(x: Tensor, length: int, dim: int) -> Tensor:
    """Cut or zero-pad `x` along `dim` to exactly `length`."""
    x = x.narrow(dim, 0, min(length, x.shape[dim]))
    pad = [0, 0] * (x.dim() - 1 - dim) + [0, length - x.shape[dim]]
    return F.pad(x, pad)


@register("duet", DUETConfig)
class DUET(Ranker):
    """The DUET ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `DUETConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    # Bulk re-ranking on 2 CPU cores, three runs of benchmarks/inference.py --sections budget: 2^17 cells
    # 1.05-1.08x over 2^16.
    cpu_max_cells = 1 << 17

    def __init__(self, vocab_size: int, config: DUETConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or DUETConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size
        hidden = config.hidden_dim

        # Local model. The paper's width-1 convolution over query terms with document positions as channels is a
        # linear layer applied to every query term's row.
        self.local_conv = nn.Linear(config.max_doc_len, hidden)
        self.local_head = self._head(config.max_query_len * hidden)

        # Distributed model.
        self.query_conv = nn.Conv1d(config.embedding_dim, hidden, config.window)
        self.query_dense = nn.Linear(hidden, hidden)
        self.doc_conv = nn.Conv1d(config.embedding_dim, hidden, config.window)
        self.doc_dense = nn.Conv1d(hidden, hidden, 1)
        self.distributed_head = self._head(config.n_doc_windows * hidden)

        if config.use_first_stage_score:
            self.first_stage_weight = nn.Linear(1, 1, bias=False)

    def _head(self, in_features: int) -> nn.Sequential:
        hidden = self.config.hidden_dim
        return nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Dropout(self.config.dropout),
            nn.Linear(hidden, 1),
        )

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The binary exact-match matrix the local model reads (before it is cut to the fixed frame), 0 at padding.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, 1, Lq, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        return exact_match_matrix(query_ids, doc_ids, query_mask, doc_mask)[:, None]  # (B, 1, Lq, Ld)

    def local_score(self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        """The local model's score, (B,); inputs already cut to the fixed frame, shapes (B, <=lq), (B, <=ld)."""
        matches = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)[:, 0]  # (B, Lq, Ld)
        matches = _fit(_fit(matches, self.config.max_query_len, 1), self.config.max_doc_len, 2)  # (B, lq, ld)
        term_mask = _fit(query_mask, self.config.max_query_len, 1)  # (B, lq)
        features = torch.tanh(self.local_conv(matches)) * term_mask[:, :, None]  # (B, lq, H)
        return self.local_head(features.flatten(1)).squeeze(1)  # (B,)

    def _convolve(self, conv: nn.Conv1d, ids: Tensor, mask: Tensor) -> Tensor:
        # Zeros after the end: the window at position i reads tokens i .. i + window - 1.
        emb = self.embedding(ids) * mask[:, :, None]  # (B, L, D)
        emb = F.pad(emb.transpose(1, 2), (0, self.config.window - 1))  # (B, D, L + window - 1)
        return torch.tanh(conv(emb))  # (B, H, L)

    def distributed_score(self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        """The distributed model's score, (B,); inputs already cut to the fixed frame, shapes (B, <=lq), (B, <=ld).

        The masks may leave out positions inside a text (unknown words, see `score_components`), not only its end.
        """
        query_conv = self._convolve(self.query_conv, query_ids, query_mask)  # (B, H, Lq)
        query_conv = query_conv.masked_fill(~query_mask[:, None, :], float("-inf"))
        query_pooled = query_conv.amax(dim=2)  # (B, H)
        query_pooled = query_pooled.masked_fill(~query_mask.any(dim=1, keepdim=True), 0.0)  # a query of only PAD
        query_rep = torch.tanh(self.query_dense(query_pooled))  # (B, H)

        doc_ids, doc_mask = _fit(doc_ids, self.config.max_doc_len, 1), _fit(doc_mask, self.config.max_doc_len, 1)
        doc_conv = self._convolve(self.doc_conv, doc_ids, doc_mask)  # (B, H, ld)
        doc_conv = doc_conv.masked_fill(~doc_mask[:, None, :], float("-inf"))
        pooled = F.max_pool1d(doc_conv, self.config.doc_pool_size, stride=1)  # (B, H, W)
        # A window is real when it holds a real position (for a right-padded mask: when it starts at one).
        window_mask = F.max_pool1d(doc_mask[:, None].float(), self.config.doc_pool_size, stride=1)[:, 0] > 0  # (B, W)
        pooled = pooled.masked_fill(~window_mask[:, None, :], 0.0)
        doc_rep = torch.tanh(self.doc_dense(pooled)) * window_mask[:, None, :]  # (B, H, W)

        matched = query_rep[:, :, None] * doc_rep  # (B, H, W)
        return self.distributed_head(matched.flatten(1)).squeeze(1)  # (B,)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`. The local model and the document side work on the fixed frame whatever the
        lengths; the query convolution reads the query cut to `max_query_len`."""
        config, hidden = self.config, self.config.hidden_dim
        local = linear_flops(self.local_conv, rows=config.max_query_len) + linear_flops(self.local_head)
        query = 2 * config.embedding_dim * config.window * hidden * min(query_len, config.max_query_len)
        query += linear_flops(self.query_dense)
        doc = 2 * config.embedding_dim * config.window * hidden * config.max_doc_len
        doc += 2 * hidden * hidden * config.n_doc_windows  # the 1x1 convolution over the windows
        first_stage = linear_flops(self.first_stage_weight) if config.use_first_stage_score else 0
        return local + query + doc + linear_flops(self.distributed_head) + first_stage

    def forward(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Tensor:
        """Score query-document pairs.

        Args:
            query_ids: (B, Lq) right-padded ids; doc_ids: (B, Ld).
            query_mask: (B, Lq), True at real tokens; doc_mask: (B, Ld); both derived from PAD (id 0) when None.
            first_stage_score: (B,) normalised first-stage scores; required when `config.use_first_stage_score`,
                ignored otherwise.
        Returns:
            (B,) logits: local score + distributed score (+ weight * first-stage score).
        """
        components = self.score_components(query_ids, doc_ids, query_mask, doc_mask, first_stage_score)
        return _total(components)

    def score_components(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The terms whose sum is the score: "local", "distributed" (and "first stage" when configured), each (B,)."""
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        lq, ld = self.config.max_query_len, self.config.max_doc_len
        query_ids, query_mask = query_ids[:, :lq], query_mask[:, :lq]  # (B, min(Lq, lq))
        doc_ids, doc_mask = doc_ids[:, :ld], doc_mask[:, :ld]  # (B, min(Ld, ld))
        # The local model's exact match never matches UNK. The distributed model has no cells to zero, but texts of
        # unknown words had equal representations (from the one UNK vector); unless `unknown_match` it leaves
        # unknown words out as padding, so they add nothing to either representation.
        query_known, doc_known = match_masks(query_ids, doc_ids, query_mask, doc_mask, self.config.unknown_match)
        components = {
            "local": self.local_score(query_ids, doc_ids, query_mask, doc_mask),  # (B,)
            "distributed": self.distributed_score(query_ids, doc_ids, query_known, doc_known),  # (B,)
        }
        if self.config.use_first_stage_score:
            column = first_stage_column(first_stage_score, self.config, components["local"])  # (B, 1)
            components["first stage"] = self.first_stage_weight(column).squeeze(1)  # (B,)
        return components

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The exact-match matrix the local model reads, the score's components, and the score.

        Texts are cut to `config.max_query_len` x `config.max_doc_len` first, as `forward` does. Stages:
        "interactions" (channel, query, doc); "components" (component,), the local and distributed scores (and the
        weighted first-stage score) that add up to the score.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        lq, ld = self.config.max_query_len, self.config.max_doc_len
        cut_query_ids, cut_query_mask = query_ids[:, :lq], query_mask[:, :lq]  # (B, min(Lq, lq))
        cut_doc_ids, cut_doc_mask = doc_ids[:, :ld], doc_mask[:, :ld]  # (B, min(Ld, ld))
        interactions = self.interaction_matrix(cut_query_ids, cut_doc_ids, cut_query_mask, cut_doc_mask)
        components = self.score_components(query_ids, doc_ids, query_mask, doc_mask, first_stage_score)
        stages = {
            "interactions": Stage(
                interactions,
                ("channel", "query", "doc"),
                "exact-match matrix (the local model's input)",
                {"channel": ["exact"]},
            ),
            "components": Stage(
                torch.stack(list(components.values()), dim=1),
                ("component",),  # (B, P)
                "the score is the sum of the local and the distributed model's scores",
                {"component": list(components)},
            ),
        }
        return Explanation(_total(components), stages)


def _total(components: dict[str, Tensor]) -> Tensor:
    # Added left to right, as the paper writes the sum: local + distributed (+ first stage).
    values = list(components.values())
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
