"""MatchPyramid, the CNN interaction-based ranker.

Pang, Lan, Guo, Xu, Wan, Cheng. "Text Matching as Image Recognition". AAAI 2016.

Read `MatchPyramid.plain_forward` first: it is the model as the paper specifies it, one step after another. The
query and the document are embedded, every query token is compared with every document token to give an interaction
matrix (an "image", one channel per kind of interaction), a stack of 2-D convolutions reads local matching patterns
(n-gram and phrase matches) off it, dynamic max pooling brings each pair's true (query_length x doc_length) region to
a fixed grid, and a linear layer scores the pooled feature maps.

Appending PAD never changes a score: the interaction matrix is 0 at padded positions, convolutions pad with zeros
('same' padding, so a real cell's neighbours past the end read 0 whether the matrix is padded or not), the
feature maps that feed another convolution are re-masked, and pooling looks only at the true lengths.

`forward`, the fast path that follows it, computes the same scores (tests/models/test_match_pyramid_fast.py compares
the two on padded batches of every interaction option):
- one query's candidates (scoring, no autograd): each interaction is computed once per distinct document token and
  spread over the batch (`one_query_interactions`), instead of once per document position;
- padded cells are zeroed before the activation rather than after (every activation here maps 0 to 0), in place,
  which saves a pass and an allocation per block;
- pooling never reads a padded cell, so the last block is not re-masked; with ReLU its output is pooled raw and
  the activation applied to the small pooled grid (max pooling commutes with ReLU, gradients included);
- without autograd (scoring), the convolutions run channels-last, which oneDNN computes faster for so few channels
  and which also avoids PyTorch's slow fallback for one-token queries, and pooling gathers whole channel vectors.
Training keeps the default layout and the per-position interactions, so its scores and gradients are bit for bit
those of `plain_forward`; scoring agrees with it to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.models.layers import (
    INTERACTIONS,
    Explanation,
    ModuleListOf,
    Ranker,
    Stage,
    build_embedding,
    dynamic_max_pool,
    embedding_config,
    interaction_matrices,
    linear_flops,
    one_query_interactions,
    pair_mask,
    resolve_masks,
    shared_query,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


@dataclass(frozen=True)
class MatchPyramidConfig:
    """MatchPyramid settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        interactions: interaction matrices stacked as input channels, any of "cosine", "dot", "exact".
        conv_channels: output channels of each Conv2d + activation block.
        kernel_sizes: (query, doc) kernel size of each block; one per entry of `conv_channels`.
        activation: "relu", "tanh", "gelu" or "leaky_relu".
        pool_size: (pq, pd), the fixed grid that dynamic pooling brings every pair to. Queries run ~3-10 tokens, so 3
            query bins cover one to a few terms each; documents run ~30-200 tokens, so 10 doc bins each cover a
            passage of ~3-20 tokens. (3, 10) is also MatchZoo's default for MatchPyramid.
        dropout: on the pooled features, before the scoring layer.
        use_first_stage_score: feed the (already normalised) first-stage score to the scoring layer as one feature.
        unknown_match: let the unknown-word id UNK match in the interactions, as before issue 22 (every unknown
            word has the one UNK vector, so two unknown words matched as strongly as a word with itself); False
            (the default) makes a cell with UNK on either side 0 (`neurank.models.layers`). Checkpoints saved
            before the option load with True.
        freeze_embeddings: keep the embeddings fixed during training.
        sparse_embeddings: sparse embedding gradients (for large vocabularies; needs a sparse-aware optimizer).
        padding_idx: the PAD id, whose embedding stays zero and receives no gradient.
    """

    embedding_dim: int = 100
    interactions: tuple[str, ...] = ("cosine",)
    conv_channels: tuple[int, ...] = (16, 32)
    kernel_sizes: tuple[tuple[int, int], ...] = ((3, 3), (3, 3))
    activation: str = "relu"
    pool_size: tuple[int, int] = (3, 10)
    dropout: float = 0.1
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        # Lists (from JSON/YAML) become tuples, so configs stay hashable and compare equal after a round trip.
        kernel_sizes = tuple((k, k) if isinstance(k, int) else tuple(k) for k in self.kernel_sizes)
        object.__setattr__(self, "interactions", tuple(self.interactions))
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        object.__setattr__(self, "kernel_sizes", kernel_sizes)
        object.__setattr__(self, "pool_size", tuple(self.pool_size))
        if not self.interactions or any(kind not in INTERACTIONS for kind in self.interactions):
            raise ValueError(f"interactions must be a non-empty list of {INTERACTIONS}, got {self.interactions}")
        if len(self.kernel_sizes) != len(self.conv_channels):
            raise ValueError(
                f"kernel_sizes has {len(self.kernel_sizes)} entries but conv_channels has {len(self.conv_channels)}"
            )
        if any(len(k) != 2 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be (query, doc) pairs, got {self.kernel_sizes}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if len(self.pool_size) != 2 or min(self.pool_size) < 1:
            raise ValueError(f"pool_size must be two positive ints (query bins, doc bins), got {self.pool_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register("match_pyramid", MatchPyramidConfig, aliases=("cnn",))
class MatchPyramid(Ranker):
    """The MatchPyramid ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `MatchPyramidConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    # Bulk re-ranking on 2 CPU cores, three runs of benchmarks/inference.py --sections budget: 32 channels per
    # cell; 2^17 cells 1.10-1.19x over 2^16 and one-query latency 1.13-1.21x; 2^18 0.99-1.19x.
    cpu_max_cells = 1 << 17

    def __init__(self, vocab_size: int, config: MatchPyramidConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        config = config or MatchPyramidConfig()
        # Exact match alone reads only ids, so the model then has no embedding layer (and no unused parameters);
        # `embeddings` is still checked and still sets `embedding_dim`, so the saved config is the same either way.
        self.embedding = None
        if any(kind != "exact" for kind in config.interactions):
            self.embedding, config = build_embedding(vocab_size, config, embeddings)
        else:
            config = embedding_config(vocab_size, config, embeddings)
        self.config = config
        self.vocab_size = vocab_size

        in_channels = len(config.interactions)
        self.convs: ModuleListOf[nn.Conv2d] = ModuleListOf()
        for out_channels, kernel_size in zip(config.conv_channels, config.kernel_sizes, strict=True):
            self.convs.append(nn.Conv2d(in_channels, out_channels, kernel_size, padding="same"))
            in_channels = out_channels
        self.activation = ACTIVATIONS[config.activation]()
        self.dropout = nn.Dropout(config.dropout)
        pq, pd = config.pool_size
        self.score = nn.Linear(in_channels * pq * pd + int(config.use_first_stage_score), 1)

    # ----------------------------------------------------------------------------------------------------------------
    # The plain forward: the paper's computation, as a student would write it from the specification.

    def plain_forward(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Tensor:
        """Score query-document pairs as the paper specifies MatchPyramid, one step after another.

        Arguments and result are those of `forward`, which computes the same scores faster; this is the reference
        that tests/models/test_match_pyramid_fast.py and benchmarks/inference.py compare it with.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)  # (B, Lq), (B, Ld) bool

        # 1. Embed both texts. Exact match alone reads only the ids, and the model then has no embedding.
        query_emb = doc_emb = None
        if self.embedding is not None:
            query_emb = self.embedding(query_ids)  # (B, Lq, D)
            doc_emb = self.embedding(doc_ids)  # (B, Ld, D)

        # 2. The interaction matrix, the "image": every query token against every document token, one channel per
        #    configured interaction (cosine, dot, exact match), 0 wherever either token is padding.
        interactions = interaction_matrices(
            self.config.interactions,
            query_ids,
            doc_ids,
            query_emb,
            doc_emb,
            query_mask,
            doc_mask,
            self.config.unknown_match,  # False: cells with an unknown word (UNK) on either side are 0
        )  # (B, C, Lq, Ld)

        # 3. Convolution blocks: conv, activation, then re-mask, because the bias moved the padded cells off 0 and
        #    the next convolution must read zeros past the end of a pair whether or not the batch was padded further.
        cell_mask = pair_mask(query_mask, doc_mask)[:, None].to(interactions.dtype)  # (B, 1, Lq, Ld)
        feature_map = interactions
        for conv in self.convs:
            feature_map = self.activation(conv(feature_map)) * cell_mask  # (B, C_out, Lq, Ld)

        # 4. Dynamic max pooling: each pair's true (query length x doc length) region to the fixed (pq, pd) grid.
        query_lengths, doc_lengths = query_mask.sum(1), doc_mask.sum(1)  # (B,), (B,)
        pooled = dynamic_max_pool(feature_map, query_lengths, doc_lengths, self.config.pool_size)  # (B, C, pq, pd)

        # 5. A linear layer scores the flattened grid, and the first-stage score when the config asks for it.
        features = self.dropout(pooled.flatten(1))  # (B, C * pq * pd)
        features = with_first_stage_score(features, first_stage_score, self.config)  # (B, C * pq * pd [+ 1])
        return self.score(features).squeeze(1)  # (B,)

    # ----------------------------------------------------------------------------------------------------------------
    # The fast path: the same scores, computed faster (see the module docstring).

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
            (B,) logits, those of `plain_forward`; `predict_proba` gives probabilities.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        interactions = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, C, Lq, Ld)
        pooled = self.pooled_features(interactions, query_mask, doc_mask)  # (B, C, pq, pd)
        return self._score(pooled, first_stage_score)

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The input "image": one interaction matrix per `config.interactions`, 0 at padded positions.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, C, Lq, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        if self.embedding is not None and not torch.is_grad_enabled() and shared_query(query_ids, query_mask):
            # One query's candidates: every interaction once per distinct document token, laid out channels-last
            # as the scoring convolutions read it (see `one_query_interactions`).
            cells = one_query_interactions(
                self.embedding,
                self.config.interactions,
                query_ids,
                doc_ids,
                query_mask,
                doc_mask,
                self.config.unknown_match,
            )  # (B, Lq, Ld, C)
            return cells.permute(0, 3, 1, 2)  # (B, C, Lq, Ld), channels-last memory
        query_emb = doc_emb = None
        if self.embedding is not None:
            query_emb = self.embedding(query_ids)  # (B, Lq, D)
            doc_emb = self.embedding(doc_ids)  # (B, Ld, D)
        return interaction_matrices(
            self.config.interactions,
            query_ids,
            doc_ids,
            query_emb,
            doc_emb,
            query_mask,
            doc_mask,
            self.config.unknown_match,
        )

    def pooled_features(
        self, interactions: Tensor, query_mask: Tensor, doc_mask: Tensor, maps: list[Tensor] | None = None
    ) -> Tensor:
        """The convolution blocks and dynamic max pooling: (B, C_in, Lq, Ld) -> (B, C, pq, pd).

        Scoring (no autograd) runs the convolutions channels-last. ReLU is applied after pooling, where it touches
        pq x pd values instead of Lq x Ld (max and ReLU commute, so the values are the same); the last block's
        padded cells are never pooled, so they are not re-masked. With `maps` (a list), every block's output is
        appended, activated and 0 at padding, for `explain`.
        """
        x = interactions
        if not torch.is_grad_enabled():
            x = x.contiguous(memory_format=torch.channels_last)
        cell_mask = pair_mask(query_mask, doc_mask)[:, None].to(x.dtype)  # (B, 1, Lq, Ld)
        name = self.config.activation
        *inner, last = self.convs
        for conv in inner:
            # Re-masking puts padded cells back to 0 (the bias moved them), so the next conv reads the same zeros
            # past the end of a pair whether or not the batch was padded further.
            x = _activate_(conv(x).mul_(cell_mask), name)  # (B, C_out, Lq, Ld)
            if maps is not None:
                maps.append(x)
        x = last(x)  # (B, C, Lq, Ld); padded cells are never pooled, so they stay unmasked
        if name not in POOL_FIRST:
            x = _activate_(x, name)
        if maps is not None:
            maps.append((self.activation(x) if name in POOL_FIRST else x) * cell_mask)
        pooled = dynamic_max_pool(x, query_mask.sum(1), doc_mask.sum(1), self.config.pool_size)  # (B, C, pq, pd)
        if name in POOL_FIRST:
            pooled = _activate_(pooled, name)
        return pooled

    def feature_maps(self, interactions: Tensor, query_mask: Tensor, doc_mask: Tensor) -> list[Tensor]:
        """The interaction matrix, then the output of every convolution block: [(B, C_i, Lq, Ld), ...], 0 at padding."""
        maps = [interactions]
        self.pooled_features(interactions, query_mask, doc_mask, maps)
        return maps

    def _score(self, pooled: Tensor, first_stage_score: Tensor | None) -> Tensor:
        features = self.dropout(pooled.flatten(1))  # (B, C * pq * pd)
        features = with_first_stage_score(features, first_stage_score, self.config)  # (B, F + 1) with the score
        return self.score(features).squeeze(1)  # (B,)

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The interaction matrix, every convolution block's feature maps, the pooled grid and the score.

        Stages: "interactions" (channel, query, doc); "conv1", "conv2", ... (channel, query, doc); "pooled"
        (channel, query_bin, doc_bin), the grid the scoring layer reads; "contributions" (channel,), each pooled
        channel's share of the score (scoring weights times pooled values, summed over the grid).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        interactions = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, C, Lq, Ld)
        maps = [interactions]
        pooled = self.pooled_features(interactions, query_mask, doc_mask, maps)  # (B, C, pq, pd), as forward pools
        weights = self.score.weight[0, : pooled[0].numel()].view(pooled.shape[1:])  # (C, pq, pd)
        stages = {
            "interactions": Stage(
                interactions,
                ("channel", "query", "doc"),
                "interaction matrix",
                {"channel": list(self.config.interactions)},
            )
        }
        for depth, (feature_map, (kq, kd)) in enumerate(zip(maps[1:], self.config.kernel_sizes, strict=True), start=1):
            stages[f"conv{depth}"] = Stage(
                feature_map,
                ("channel", "query", "doc"),
                f"conv block {depth}: {feature_map.shape[1]} feature maps "
                f"({kq}x{kd} kernels, {self.config.activation})",
            )
        pq, pd = self.config.pool_size
        stages["pooled"] = Stage(
            pooled,
            ("channel", "query_bin", "doc_bin"),
            f"dynamic max pooling to the {pq}x{pd} grid the scoring layer reads",
        )
        contributions = (pooled * weights).flatten(2).sum(2)  # (B, C)
        stages["contributions"] = Stage(
            contributions, ("channel",), "each channel's contribution to the score (weight x pooled)"
        )
        return Explanation(self._score(pooled, first_stage_score), stages)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: the similarity products, the 'same' convolutions and the scoring layer."""
        config, cells = self.config, query_len * doc_len
        flops = sum(2 * cells * config.embedding_dim for kind in config.interactions if kind != "exact")
        in_channels = len(config.interactions)
        for out_channels, (kq, kd) in zip(config.conv_channels, config.kernel_sizes, strict=True):
            flops += 2 * in_channels * kq * kd * out_channels * cells
            in_channels = out_channels
        return flops + linear_flops(self.score)


# The name under which the project specifies its CNN interaction-based ranker: it is MatchPyramid, so
# `CNNInteractionBasedModel(vocab_size)` builds the default MatchPyramid, and "cnn" is its alias in the registry
# (`model: cnn` in a config, `build_model("cnn", ...)`, checkpoints saved under that name).
CNNInteractionBasedModel = MatchPyramid


# ---------------------------------------------------------------------------------------------------------------------
# Helpers of the fast path

# ReLU commutes with max pooling, values and gradients alike: max(relu(x)) == relu(max(x)), and where relu makes
# ties (all at 0) its gradient is 0 either way. tanh and leaky_relu are non-decreasing too, but float rounding can
# map two inputs to one output, a tie that would route the gradient differently.
POOL_FIRST = {"relu"}


def _activate_(x: Tensor, name: str) -> Tensor:
    """The activation `name` applied in place where autograd allows it (it saves the result, not the input)."""
    if name == "relu":
        return x.relu_()
    if name == "tanh":
        return x.tanh_()
    if name == "leaky_relu":
        return F.leaky_relu_(x)
    return F.gelu(x)
