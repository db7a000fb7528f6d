"""ArcI, the representation-based CNN ranker: each text is encoded on its own, and an MLP compares the two vectors.

Hu, Lu, Li, Chen. "Convolutional Neural Network Architectures for Matching Natural Language Sentences". NIPS 2014.

The query and the document are embedded, each goes through its own stack of 1-D convolution + ReLU + max pooling
blocks, a max over the remaining positions makes one fixed-size vector per text, and the concatenation of the two
vectors is scored by a multi-layer perceptron. The texts meet only in that MLP: ArcI is the representation-based
contrast to the interaction-based models, so it has no interaction matrix (`has_interaction_matrix = False`, and the
explain command says so instead of drawing one).

Choices the paper leaves open, taken from MatchZoo-py's `ArcI` (its defaults: one block of 32 filters, window 3,
pool 2, ReLU):
- separate convolution stacks for the query and the document (`share_encoder=True` gives the Siamese variant with
  one stack); one embedding table for both.
- each convolution reads a window starting at its position, with zeros after the end of the text (MatchZoo pads
  kernel_size - 1 zeros on the right), so a block keeps the length of its input.
- MatchZoo flattens a fixed-length final map, which ties the model to one padded length; here a max over each text's
  true positions ends the encoder instead (the paper's final max pooling), so padding never reaches the score.
  The defaults are 64 filters and an MLP hidden layer of 64 units, small enough for two CPU cores.

Unknown words (`unknown_match=False`, the default; see `neurank.models.layers`): ArcI has no cells to zero, but two
texts of unknown words had equal vectors, built from the one vector all unknown words share, which the MLP can read
as a match. So an unknown word is left out of its text's vector as padding is (zero into the convolutions, never
winning a max); a text of unknown words only has the vector of an empty text, whatever the words.

Appending PAD never changes a score: embeddings are zeroed at padded positions (so a window past the end reads the
same zeros whether the text was padded or not), padded positions never win a max (they are -inf going into every
pooling and 0 going into every convolution), and pooled positions count as real when their window holds a real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.models.layers import (
    ModuleListOf,
    Ranker,
    build_embedding,
    linear_flops,
    match_masks,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


@dataclass(frozen=True)
class ArcIConfig:
    """ArcI settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        conv_channels: output channels of each Conv1d + activation + max-pool block.
        kernel_sizes: window of each block's convolution; one per entry of `conv_channels`.
        pool_sizes: window (and stride) of each block's max pooling, 1 for none; one per entry of `conv_channels`.
        activation: "relu" (the paper's), "tanh", "gelu" or "leaky_relu", for the convolutions and the MLP.
        hidden_sizes: hidden layers of the scoring MLP over the concatenated text vectors.
        share_encoder: one convolution stack for both texts (Siamese) instead of one per text.
        dropout: on the concatenated text vectors, before the MLP.
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
    conv_channels: tuple[int, ...] = (64,)
    kernel_sizes: tuple[int, ...] = (3,)
    pool_sizes: tuple[int, ...] = (2,)
    activation: str = "relu"
    hidden_sizes: tuple[int, ...] = (64,)
    share_encoder: bool = False
    dropout: float = 0.1
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        # Lists (from JSON/YAML) become tuples, so configs stay hashable and compare equal after a round trip.
        for name in ("conv_channels", "kernel_sizes", "pool_sizes", "hidden_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.conv_channels:
            raise ValueError("conv_channels must name at least one convolution block")
        for name in ("kernel_sizes", "pool_sizes"):
            if len(getattr(self, name)) != len(self.conv_channels):
                raise ValueError(
                    f"{name} has {len(getattr(self, name))} entries but conv_channels has {len(self.conv_channels)}"
                )
        for name in ("conv_channels", "kernel_sizes", "pool_sizes", "hidden_sizes"):
            if any(value < 1 for value in getattr(self, name)):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class ConvSentenceEncoder(nn.Module):
    """Conv1d + activation + max-pool blocks, then a max over the true positions: (B, L, D) -> (B, C)."""

    def __init__(self, in_channels: int, config: ArcIConfig):
        super().__init__()
        self.convs: ModuleListOf[nn.Conv1d] = ModuleListOf()
        for out_channels, kernel_size in zip(config.conv_channels, config.kernel_sizes, strict=True):
            self.convs.append(nn.Conv1d(in_channels, out_channels, kernel_size))
            in_channels = out_channels
        self.pool_sizes = config.pool_sizes
        self.activation = ACTIVATIONS[config.activation]()

    def forward(self, emb: Tensor, mask: Tensor) -> Tensor:
        """emb: (B, L, D); mask: (B, L), True at real tokens. Returns (B, C); 0 for a text with no real token."""
        x = emb.masked_fill(~mask[:, :, None], 0.0).transpose(1, 2)  # (B, D, L)
        for conv, pool_size in zip(self.convs, self.pool_sizes, strict=True):
            x = self.activation(conv(F.pad(x, (0, conv.kernel_size[0] - 1))))  # (B, C, L)
            # Pooling windows of pool_size positions; -inf keeps padding (and the fill up to a whole window) from
            # winning, and a window with any real position is real.
            x = x.masked_fill(~mask[:, None, :], float("-inf"))
            fill = -x.shape[2] % pool_size
            x = F.pad(x, (0, fill), value=float("-inf"))  # (B, C, L')
            x = x.view(*x.shape[:2], -1, pool_size).amax(dim=3)  # (B, C, L' / pool_size)
            mask = F.pad(mask, (0, fill), value=False).view(mask.shape[0], -1, pool_size).any(dim=2)  # (B, L'/p)
            x = x.masked_fill(~mask[:, None, :], 0.0)
        x = x.masked_fill(~mask[:, None, :], float("-inf")).amax(dim=2)  # (B, C)
        return x.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)


@register("arci", ArcIConfig)
class ArcI(Ranker):
    """The ArcI ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    It has no interaction matrix (`has_interaction_matrix` is False; there is no `interaction_matrix` method).

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: an `ArcIConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    has_interaction_matrix = False

    # Bulk re-ranking on 2 CPU cores, three runs of benchmarks/inference.py --sections budget: no query x document
    # tensor, so larger batches only amortise: 2^18 cells 1.18-1.21x over 2^16.
    cpu_max_cells = 1 << 18

    def __init__(self, vocab_size: int, config: ArcIConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or ArcIConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size

        self.query_encoder = ConvSentenceEncoder(config.embedding_dim, config)
        self.doc_encoder = (
            self.query_encoder if config.share_encoder else ConvSentenceEncoder(config.embedding_dim, config)
        )
        self.dropout = nn.Dropout(config.dropout)
        layers: list[nn.Module] = []
        in_features = 2 * config.conv_channels[-1]
        for size in config.hidden_sizes:
            layers += [nn.Linear(in_features, size), ACTIVATIONS[config.activation]()]
            in_features = size
        self.mlp = nn.Sequential(*layers)
        self.score = nn.Linear(in_features + int(config.use_first_stage_score), 1)

    def encode(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The two text vectors, each computed without seeing the other text: (B, C), (B, C)."""
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        # Unless `unknown_match`, unknown words (UNK) are left out of the text vectors as padding is.
        query_mask, doc_mask = match_masks(query_ids, doc_ids, query_mask, doc_mask, self.config.unknown_match)
        query_vec = self.query_encoder(self.embedding(query_ids), query_mask)  # (B, C)
        doc_vec = self.doc_encoder(self.embedding(doc_ids), doc_mask)  # (B, C)
        return query_vec, doc_vec

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: each text's convolutions (one window per position, then pooling shortens the
        text), the MLP and the scoring layer."""
        flops = 0
        for encoder, length in ((self.query_encoder, query_len), (self.doc_encoder, doc_len)):
            for conv, pool_size in zip(encoder.convs, encoder.pool_sizes, strict=True):
                flops += 2 * conv.in_channels * conv.kernel_size[0] * conv.out_channels * length
                length = -(-length // pool_size)
        return flops + linear_flops(self.mlp) + linear_flops(self.score)

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
            (B,) logits; `predict_proba` gives probabilities.
        """
        query_vec, doc_vec = self.encode(query_ids, doc_ids, query_mask, doc_mask)
        features = self.mlp(self.dropout(torch.cat([query_vec, doc_vec], dim=1)))  # (B, H)
        features = with_first_stage_score(features, first_stage_score, self.config)  # (B, H + 1) with the score
        return self.score(features).squeeze(1)  # (B,)
