"""TK, the Transformer-Kernel ranker.

Hofstätter, Zlabinger, Hanbury. "Interpretable & Time-Budget-Constrained Contextualization for Re-Ranking".
ECAI 2020.

The query and the document are contextualised separately by the same small transformer encoder (sinusoidal position
encodings added to the word embeddings, then self-attention layers); each token's representation is then a learned
mix of its word embedding and its contextualised vector, `alpha * t + (1 - alpha) * context(t)`. The cosine matrix of
the mixed query and document representations goes through K-NRM's RBF kernels, and two kernel features are scored by
learned weights: the log-normalised one, sum over query tokens of log2(soft-TF), and the length-normalised one,
sum over query tokens of soft-TF / document length.

The transformer is built from `nn.Linear`, `nn.LayerNorm` and plain tensor ops (no `nn.MultiheadAttention` and no
fused attention kernel), so torch.export takes it with dynamic batch and lengths, and dynamic quantisation
reaches every projection.

Choices, following the authors' reference implementation (matchmaker's `TK_v1`, the paper's version, and its
config `tk.yaml`) unless said otherwise:
- 2 layers, 10 heads (as the reference; 10 divides the usual GloVe sizes 50/100/200/300, head size 10 at the default
  embedding_dim 100), feed-forward size 100, the default embedding size (the reference: 300 with 300-d GloVe), no
  dropout.
- The encoder layer is the post-norm transformer layer (attention, residual, LayerNorm, then ReLU feed-forward,
  residual, LayerNorm), as in the authors' later native-PyTorch TK (`ECAI20_TK`), which replaced AllenNLP's encoder.
- Position encodings are AllenNLP's sinusoids (sin on the first half of the dimensions, cos on the second, timescales
  1 to 1e4), which the reference adds; queries and documents share them.
- `mixer` is one unconstrained learned scalar alpha, initialised to 0.5, exactly as in the reference (no sigmoid).
- 11 kernels, mu = 1.0, 0.9, 0.7, ..., -0.9, all with sigma 0.1 (the exact-match kernel too).
- Features are `log2` of the soft-TF (clamped at 1e-10), both features are scaled by one learned scalar `kernel_scale`
  (the reference's `nn_scaler`, initialised to 0.01), each feature vector goes through its own bias-free linear layer
  (uniform(-0.014, 0.014) initialisation, from MatchZoo via the reference) and a bias-free 2 -> 1 layer combines them.
- Length normalisation divides by the document length, as the paper writes it; the reference divides by length + 1
  to survive empty documents, which here a clamp at 1 does instead.

Appending PAD never changes a score: attention gives PAD keys exactly zero weight, everything else acts per
position, the cosine matrix is 0 at padded cells, and the kernel sums skip padded query and document positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    ModuleListOf,
    Ranker,
    Stage,
    build_embedding,
    cosine_matrix,
    first_stage_column,
    kernel_labels,
    kernel_mus_sigmas,
    kernel_soft_counts,
    linear_flops,
    match_masks,
    resolve_masks,
)
from neurank.models.registry import register
from neurank.text import PAD_ID


@dataclass(frozen=True)
class TKConfig:
    """TK settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them); the
            transformer works at this size, so it must be divisible by `n_heads`.
        n_layers: transformer encoder layers.
        n_heads: attention heads per layer.
        ff_dim: hidden size of each layer's position-wise feed-forward network.
        n_kernels: RBF kernels: one at 1.0, the rest centred evenly in (-1, 1).
        kernel_sigma: width of the soft kernels; exact_sigma: width of the kernel at 1.0 (TK: both 0.1).
        dropout: on attention weights, residual branches and the feed-forward hidden layer (the reference: 0).
        use_first_stage_score: feed the (already normalised) first-stage score to the final combining layer as one
            feature.
        unknown_match: let the unknown-word id UNK match in the interactions, as before issue 22 (every unknown
            word has the one UNK vector, so two unknown words matched as strongly as a word with itself); False
            (the default) makes a cell with UNK on either side 0 (`neurank.models.layers`). Checkpoints saved
            before the option load with True.
        freeze_embeddings: keep the embeddings fixed during training.
        sparse_embeddings: sparse embedding gradients (for large vocabularies; needs a sparse-aware optimizer).
        padding_idx: the PAD id, whose embedding stays zero and receives no gradient.
    """

    embedding_dim: int = 100
    n_layers: int = 2
    n_heads: int = 10
    ff_dim: int = 100
    n_kernels: int = 11
    kernel_sigma: float = 0.1
    exact_sigma: float = 0.1
    dropout: float = 0.0
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        if self.n_layers < 1 or self.n_heads < 1 or self.ff_dim < 1:
            raise ValueError(
                f"n_layers, n_heads and ff_dim must be positive, got {self.n_layers}, {self.n_heads}, {self.ff_dim}"
            )
        if self.embedding_dim < 1 or self.embedding_dim % self.n_heads != 0:
            raise ValueError(
                f"embedding_dim ({self.embedding_dim}) must be a positive multiple of n_heads ({self.n_heads})"
            )
        if self.n_kernels < 2:
            raise ValueError(f"n_kernels must be >= 2 (exact match and at least one soft kernel), got {self.n_kernels}")
        if self.kernel_sigma <= 0 or self.exact_sigma <= 0:
            raise ValueError(f"kernel widths must be positive, got {self.kernel_sigma} and {self.exact_sigma}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def sinusoidal_positions(
    length: int, dim: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Sinusoidal position encodings (Vaswani et al. 2017) in AllenNLP's layout, the one TK's reference adds.

    Position p, timescale i of n = dim // 2 (geometric from 1 to 1e4): column i holds sin(p / timescale_i),
    column n + i holds cos(p / timescale_i); an odd `dim` leaves its last column 0.

    Returns:
        (length, dim).
    """
    n_timescales = dim // 2
    positions = torch.arange(length, device=device, dtype=torch.float32)  # (L,)
    increment = math.log(1.0e4) / max(n_timescales - 1, 1)
    inverse_timescales = torch.exp(torch.arange(n_timescales, device=device, dtype=torch.float32) * -increment)
    scaled = positions[:, None] * inverse_timescales[None, :]  # (L, n)
    encodings = torch.cat([scaled.sin(), scaled.cos(), scaled.new_zeros(length, dim % 2)], dim=1)  # (L, dim)
    return encodings.to(dtype)


def masked_attention(
    query: Tensor, key: Tensor, value: Tensor, key_mask: Tensor, dropout: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """Scaled dot-product attention in which padded keys get exactly zero weight.

    A query whose keys are all padding attends uniformly (its output is never used, but it stays finite).

    Args:
        query: (B, H, Lq, Dh); key: (B, H, Lk, Dh); value: (B, H, Lk, Dv); key_mask: (B, Lk), True at real keys.
        dropout: applied to the attention weights before they mix the values (as `nn.MultiheadAttention` does).
    Returns:
        output (B, H, Lq, Dv) and attention weights (B, H, Lq, Lk) before dropout, each row summing to 1.
    """
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (B, H, Lq, Lk)
    # The most negative finite value, not -inf: exp underflows to exactly 0 all the same, and an all-padding row
    # gives uniform weights instead of NaN.
    scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)  # (B, H, Lq, Lk)
    mixing = weights if dropout is None else dropout(weights)
    return mixing @ value, weights  # (B, H, Lq, Dv), (B, H, Lq, Lk)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention from four `nn.Linear` projections (query, key, value, output)."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % n_heads != 0:
            raise ValueError(f"dim ({dim}) must be a multiple of n_heads ({n_heads})")
        self.n_heads = n_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        return x.reshape(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, H, L, D / H)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """(B, L, D) inputs, (B, L) mask of real positions -> (B, L, D)."""
        B, L, D = x.shape
        query = self._split_heads(self.query(x))  # (B, H, L, D / H)
        key = self._split_heads(self.key(x))  # (B, H, L, D / H)
        value = self._split_heads(self.value(x))  # (B, H, L, D / H)
        context, _ = masked_attention(query, key, value, mask, self.dropout)  # (B, H, L, D / H)
        context = context.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.output(context)


class TransformerLayer(nn.Module):
    """A post-norm transformer encoder layer: x = LN(x + Attn(x)); x = LN(x + FF(x)), FF = Linear-ReLU-Linear."""

    def __init__(self, dim: int, n_heads: int, ff_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attention = MultiHeadSelfAttention(dim, n_heads, dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim)
        )
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """(B, L, D), (B, L) -> (B, L, D)."""
        x = self.attention_norm(x + self.dropout(self.attention(x, mask)))
        return self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))


@register("tk", TKConfig)
class TK(Ranker):
    """The TK ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `TKConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    # The kernels' buffers registered in __init__, (K,) each; declared so that type checkers know them as tensors.
    mus: Tensor
    sigmas: Tensor

    def __init__(self, vocab_size: int, config: TKConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or TKConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size

        self.layers: ModuleListOf[TransformerLayer] = ModuleListOf(
            TransformerLayer(config.embedding_dim, config.n_heads, config.ff_dim, config.dropout)
            for _ in range(config.n_layers)
        )
        self.mixer = nn.Parameter(torch.full((1,), 0.5))

        mus, sigmas = kernel_mus_sigmas(config.n_kernels, config.kernel_sigma, config.exact_sigma)
        self.register_buffer("mus", mus, persistent=False)
        self.register_buffer("sigmas", sigmas, persistent=False)
        self.kernel_scale = nn.Parameter(torch.full((1,), 0.01))
        self.log_weights = nn.Linear(config.n_kernels, 1, bias=False)
        self.length_weights = nn.Linear(config.n_kernels, 1, bias=False)
        nn.init.uniform_(self.log_weights.weight, -0.014, 0.014)
        nn.init.uniform_(self.length_weights.weight, -0.014, 0.014)
        self.combine = nn.Linear(2 + int(config.use_first_stage_score), 1, bias=False)

    def contextualize(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Each token's mix of its word embedding and its contextualised vector, 0 at padding. (B, L) -> (B, L, D)."""
        emb = self.embedding(ids)  # (B, L, D)
        x = emb + sinusoidal_positions(ids.shape[1], emb.shape[2], emb.device, emb.dtype)  # (B, L, D)
        for layer in self.layers:
            x = layer(x, mask)  # (B, L, D)
        mixed = self.mixer * emb + (1 - self.mixer) * x  # (B, L, D)
        return mixed * mask[:, :, None].to(mixed.dtype)

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The cosine matrix of the mixed (contextualised) query and document representations, 0 at padding.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, 1, Lq, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        query_repr = self.contextualize(query_ids, query_mask)  # (B, Lq, D)
        doc_repr = self.contextualize(doc_ids, doc_mask)  # (B, Ld, D)
        # The position of an unknown word has a vector from its context too, but two such positions are alike
        # through the one UNK embedding (and the positions) more than through anything the words share: its cells
        # are 0 unless `unknown_match`. The kernels still count it as a real (unmatched) document position.
        query_match, doc_match = match_masks(query_ids, doc_ids, query_mask, doc_mask, self.config.unknown_match)
        return cosine_matrix(query_repr, doc_repr, query_match, doc_match)[:, None]  # (B, 1, Lq, Ld)

    def kernel_features(self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor) -> tuple[Tensor, Tensor]:
        """TK's two kernel features, before `kernel_scale`.

        Args:
            sim_matrix: (B, Lq, Ld); query_mask: (B, Lq); doc_mask: (B, Ld).
        Returns:
            log-normalised (B, K): sum over real query tokens of log2(soft-TF), soft-TF clamped at 1e-10;
            length-normalised (B, K): sum over real query tokens of soft-TF / document length.
        """
        query_mask = query_mask.to(sim_matrix.dtype)
        doc_mask = doc_mask.to(sim_matrix.dtype)
        diffs = sim_matrix[..., None] - self.mus  # (B, Lq, Ld, K)
        kernels = torch.exp(-0.5 * (diffs / self.sigmas) ** 2) * doc_mask[:, None, :, None]  # (B, Lq, Ld, K)
        soft_tf = kernels.sum(dim=2)  # (B, Lq, K)
        log_tf = torch.log2(soft_tf.clamp(min=1e-10)) * query_mask[:, :, None]  # (B, Lq, K)
        doc_lengths = doc_mask.sum(dim=1).clamp(min=1)  # (B,)
        length_tf = soft_tf / doc_lengths[:, None, None] * query_mask[:, :, None]  # (B, Lq, K)
        return log_tf.sum(dim=1), length_tf.sum(dim=1)  # (B, K), (B, K)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: every transformer layer over each text (projections, attention scores and
        mixing, feed-forward), the cosine matrix, and the kernel and combining layers."""
        dim = self.config.embedding_dim
        flops = 0
        for length in (query_len, doc_len):
            for layer in self.layers:
                attention = linear_flops(layer.attention, rows=length) + 2 * 2 * length * length * dim
                flops += attention + linear_flops(layer.feed_forward, rows=length)
        flops += 2 * query_len * doc_len * dim
        return flops + linear_flops(self.log_weights) + linear_flops(self.length_weights) + linear_flops(self.combine)

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
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        sim_matrix = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)[:, 0]  # (B, Lq, Ld)
        log_features, length_features = self.kernel_features(sim_matrix, query_mask, doc_mask)  # (B, K), (B, K)
        return self._score(log_features, length_features, first_stage_score)

    def _score(self, log_features: Tensor, length_features: Tensor, first_stage_score: Tensor | None) -> Tensor:
        scores = [
            self.log_weights(log_features * self.kernel_scale),  # (B, 1)
            self.length_weights(length_features * self.kernel_scale),  # (B, 1)
        ]
        if self.config.use_first_stage_score:
            scores.append(first_stage_column(first_stage_score, self.config, log_features))
        return self.combine(torch.cat(scores, dim=1)).squeeze(1)  # (B,)

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The contextualised cosine matrix, soft match counts per kernel, the two kernel features and the score.

        Stages: "interactions" (channel, query, doc); "soft_counts" (query, kernel); "kernel_features"
        (feature, kernel), the log-normalised and length-normalised features times `kernel_scale`, as the two
        scoring layers read them.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        interactions = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, 1, Lq, Ld)
        log_features, length_features = self.kernel_features(interactions[:, 0], query_mask, doc_mask)  # (B, K) x 2
        soft_counts = kernel_soft_counts(interactions[:, 0], doc_mask, self.mus, self.sigmas)  # (B, Lq, K)
        kernels = kernel_labels(self.mus)
        stages = {
            "interactions": Stage(
                interactions,
                ("channel", "query", "doc"),
                "cosine of the contextualised representations",
                {"channel": ["cosine"]},
            ),
            "soft_counts": Stage(
                soft_counts * query_mask[:, :, None],
                ("query", "kernel"),
                "soft match count of each query token per kernel",
                {"kernel": kernels},
            ),
            "kernel_features": Stage(
                torch.stack([log_features, length_features], dim=1) * self.kernel_scale,  # (B, 2, K)
                ("feature", "kernel"),
                "kernel features x kernel_scale, as the scoring layers read them",
                {"feature": ["log2 count", "count / length"], "kernel": kernels},
            ),
        }
        return Explanation(self._score(log_features, length_features, first_stage_score), stages)
