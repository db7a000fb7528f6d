"""MV-LSTM, the ranker that matches positional sentence representations.

Wan, Lan, Guo, Xu, Pang, Cheng. "A Deep Architecture for Semantic Matching with Multiple Positional Sentence
Representations". AAAI 2016.

A bidirectional LSTM reads the query and the document; the hidden state at each position (forward and backward
states concatenated) represents the text as seen from that position. Every query position is compared with every
document position (cosine by default; the paper's bilinear and tensor layers are options), k-max pooling keeps the k
strongest signals of all (query, doc) cells, and a multi-layer perceptron scores them.

Choices the paper leaves open, and where they come from:
- One Bi-LSTM is shared by the query and the document (the paper describes a single Bi-LSTM that reads both
  sentences); `shared_lstm=False` gives each its own, as MatchZoo and matchmaker do.
- The MLP has one ReLU hidden layer (the paper's `r = f(W_r q + b_r)`, `s = W_s r + b_s`) of 20 units (the unit
  count of matchmaker's MV-LSTM); dropout acts on the LSTM inputs (MatchZoo's Keras MV-LSTM, by the paper's authors,
  puts its dropout in the LSTM).
- The tensor layer is the paper's `f(u^T M^[1:c] v + W [u; v] + b)` with f = ReLU; its k-max pooling runs per slice
  and the slices' top-k values are concatenated.
- Fewer than k real cells (a one-word query against a three-word sentence): the missing top-k slots are 0.

Appending PAD never changes a score. The backward LSTM must start at each text's own last token, not at the end of
the padded batch: each row is reversed within its true length (a per-row gather), run through a forward LSTM, and
reversed back. An LSTM state depends only on the inputs before it, so trailing PAD never reaches a real position.
This is what `pack_padded_sequence` achieves, in plain tensor ops and without PackedSequence objects. (torch.export,
as of torch 2.13, still fixes an `nn.LSTM`'s sequence length at the example's; since padding never changes a score,
inputs padded to those lengths score exactly as unpadded ones.) Padded cells are excluded from k-max pooling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    Ranker,
    Stage,
    build_embedding,
    cosine_matrix,
    linear_flops,
    match_masks,
    pair_mask,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID

MVLSTM_INTERACTIONS = ("cosine", "bilinear", "tensor")


@dataclass(frozen=True)
class MVLSTMConfig:
    """MV-LSTM settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        hidden_size: LSTM hidden size per direction; a position's representation has 2 * hidden_size values.
        shared_lstm: one Bi-LSTM for queries and documents (the paper); False gives each text its own.
        interaction: "cosine" (no parameters, the paper's best on most tasks and MatchZoo's only choice),
            "bilinear" (u^T M v + b) or "tensor" (ReLU(u^T M^[1:c] v + W [u; v] + b), c = tensor_channels).
        tensor_channels: slices c of the tensor interaction; ignored otherwise.
        top_k: signals kept by k-max pooling over all real (query, doc) cells, per interaction channel.
        mlp_hidden: sizes of the ReLU hidden layers between the pooled signals and the score.
        dropout: on the word embeddings fed to the LSTM.
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
    hidden_size: int = 64
    shared_lstm: bool = True
    interaction: str = "cosine"
    tensor_channels: int = 4
    top_k: int = 5
    mlp_hidden: tuple[int, ...] = (20,)
    dropout: float = 0.1
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        # Lists (from JSON/YAML) become tuples, so configs stay hashable and compare equal after a round trip.
        object.__setattr__(self, "mlp_hidden", tuple(self.mlp_hidden))
        if self.embedding_dim < 1 or self.hidden_size < 1:
            raise ValueError(
                f"embedding_dim and hidden_size must be positive, got {self.embedding_dim} and {self.hidden_size}"
            )
        if self.interaction not in MVLSTM_INTERACTIONS:
            raise ValueError(f"interaction must be one of {MVLSTM_INTERACTIONS}, got {self.interaction!r}")
        if self.tensor_channels < 1:
            raise ValueError(f"tensor_channels must be >= 1, got {self.tensor_channels}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if any(size < 1 for size in self.mlp_hidden):
            raise ValueError(f"mlp_hidden sizes must be positive, got {self.mlp_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def channels(self) -> int:
        """Interaction channels: `tensor_channels` for the tensor layer, else 1."""
        return self.tensor_channels if self.interaction == "tensor" else 1


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first `lengths[b]` positions and leave its padding in place; applying it twice is identity.

    Args:
        x: (B, L, D); lengths: (B,) true lengths (<= L).
    Returns:
        (B, L, D).
    """
    positions = torch.arange(x.shape[1], device=x.device)  # (L,)
    lengths = lengths.long()[:, None]  # (B, 1)
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (B, L)
    return x.gather(1, index[:, :, None].expand_as(x))  # (B, L, D)


class BiLSTM(nn.Module):
    """A bidirectional LSTM over right-padded rows whose real states never see the padding (see the module docstring).

    The two directions are two unidirectional `nn.LSTM`s, `forward_lstm` and `backward_lstm`.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.forward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """(B, L, D) inputs, (B, L) mask -> (B, L, 2H) states, [forward; backward], 0 at padded positions."""
        lengths = mask.sum(1)  # (B,)
        forward_states, _ = self.forward_lstm(x)  # (B, L, H)
        backward_states, _ = self.backward_lstm(reverse_within_length(x, lengths))  # (B, L, H), reversed order
        backward_states = reverse_within_length(backward_states, lengths)  # (B, L, H)
        states = torch.cat([forward_states, backward_states], dim=2)  # (B, L, 2H)
        return states * mask[:, :, None].to(states.dtype)


def k_max_pool(x: Tensor, cell_mask: Tensor, k: int) -> Tensor:
    """The k largest values over each channel's real (query, doc) cells, in descending order; missing slots are 0.

    Padded cells never win, and an example with fewer than k real cells fills its last slots with 0, so the result
    depends only on the real cells whatever the padding.

    Args:
        x: (B, C, Lq, Ld); cell_mask: (B, Lq, Ld) True at real cells; k: values kept per channel.
    Returns:
        (B, C, k).
    """
    B, C = x.shape[:2]
    masked = x.masked_fill(~cell_mask[:, None], float("-inf")).flatten(2)  # (B, C, Lq * Ld)
    # k spare -inf cells make topk valid however few cells there are (an unpadded 1 x 3 pair with k = 5).
    masked = torch.cat([masked, masked.new_full((B, C, k), float("-inf"))], dim=2)  # (B, C, Lq * Ld + k)
    top = masked.topk(k, dim=2).values  # (B, C, k)
    n_real = cell_mask.flatten(1).sum(1)  # (B,)
    present = torch.arange(k, device=x.device) < n_real[:, None]  # (B, k)
    return top.masked_fill(~present[:, None, :], 0.0)


@register("mvlstm", MVLSTMConfig)
class MVLSTM(Ranker):
    """The MV-LSTM ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: an `MVLSTMConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    # Bulk re-ranking on 2 CPU cores, three runs of benchmarks/inference.py --sections budget: 2^17 cells
    # 1.01-1.15x over 2^16.
    cpu_max_cells = 1 << 17

    def __init__(self, vocab_size: int, config: MVLSTMConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or MVLSTMConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size
        self.dropout = nn.Dropout(config.dropout)

        # `encoder` reads queries, and documents too unless `shared_lstm` is off.
        self.encoder = BiLSTM(config.embedding_dim, config.hidden_size)
        self.doc_encoder = None if config.shared_lstm else BiLSTM(config.embedding_dim, config.hidden_size)

        state_dim = 2 * config.hidden_size
        channels = config.channels
        self.bilinear_weight: nn.Parameter | None = None
        self.bilinear_bias: nn.Parameter | None = None
        self.query_linear: nn.Linear | None = None
        self.doc_linear: nn.Linear | None = None
        if config.interaction in ("bilinear", "tensor"):
            bound = 1.0 / math.sqrt(state_dim)  # nn.Bilinear's initialisation
            self.bilinear_weight = nn.Parameter(torch.empty(channels, state_dim, state_dim).uniform_(-bound, bound))
            self.bilinear_bias = nn.Parameter(torch.zeros(channels))
        if config.interaction == "tensor":
            # W [u; v] = W_u u + W_v v; the bias b lives in `bilinear_bias`.
            self.query_linear = nn.Linear(state_dim, channels, bias=False)
            self.doc_linear = nn.Linear(state_dim, channels, bias=False)

        mlp = []
        in_features = channels * config.top_k
        for size in config.mlp_hidden:
            mlp += [nn.Linear(in_features, size), nn.ReLU()]
            in_features = size
        self.mlp = nn.Sequential(*mlp)
        self.score = nn.Linear(in_features + int(config.use_first_stage_score), 1)

    def _states(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        query_emb = self.dropout(self.embedding(query_ids))  # (B, Lq, D)
        doc_emb = self.dropout(self.embedding(doc_ids))  # (B, Ld, D)
        doc_encoder = self.encoder if self.doc_encoder is None else self.doc_encoder
        return self.encoder(query_emb, query_mask), doc_encoder(doc_emb, doc_mask)  # (B, Lq, 2H), (B, Ld, 2H)

    def _interaction(self, query_states: Tensor, doc_states: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        # The masks are `match_masks`: the cells of an unknown word (UNK) are 0 unless `unknown_match`; k-max pooling
        # still reads them, as real cells holding 0.
        if self.config.interaction == "cosine":
            return cosine_matrix(query_states, doc_states, query_mask, doc_mask)[:, None]  # (B, 1, Lq, Ld)
        # "bilinear" and "tensor": __init__ built the bilinear weight and bias, and for "tensor" the two linear maps.
        assert self.bilinear_weight is not None and self.bilinear_bias is not None
        # u^T M_c v for every channel c and every (query, doc) pair.
        projected = torch.einsum("bqi,cij->bcqj", query_states, self.bilinear_weight)  # (B, C, Lq, 2H)
        sim = projected @ doc_states.transpose(1, 2)[:, None]  # (B, C, Lq, Ld)
        sim = sim + self.bilinear_bias[:, None, None]
        if self.config.interaction == "tensor":
            assert self.query_linear is not None and self.doc_linear is not None
            query_part = self.query_linear(query_states).transpose(1, 2)  # (B, C, Lq)
            doc_part = self.doc_linear(doc_states).transpose(1, 2)  # (B, C, Ld)
            sim = torch.relu(sim + query_part[:, :, :, None] + doc_part[:, :, None, :])  # (B, C, Lq, Ld)
        return sim * pair_mask(query_mask, doc_mask)[:, None].to(sim.dtype)

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The interaction of the Bi-LSTM states (cosine by default), 0 at padded positions.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, C, Lq, Ld): C = 1 for "cosine" and "bilinear", `tensor_channels` for "tensor".
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        query_states, doc_states = self._states(query_ids, doc_ids, query_mask, doc_mask)
        query_match, doc_match = match_masks(query_ids, doc_ids, query_mask, doc_mask, self.config.unknown_match)
        return self._interaction(query_states, doc_states, query_match, doc_match)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: both LSTM directions over both texts (4 gates, input and hidden products at
        every step), the interaction, the MLP and the scoring layer."""
        config = self.config
        state, gates = 2 * config.hidden_size, 4 * config.hidden_size
        lstm = 2 * (query_len + doc_len) * 2 * gates * (config.embedding_dim + config.hidden_size)
        if config.interaction == "cosine":
            interaction = 2 * query_len * doc_len * state
        else:
            channels = config.channels
            interaction = 2 * channels * query_len * state * state + 2 * channels * query_len * state * doc_len
            if config.interaction == "tensor":
                interaction += 2 * (query_len + doc_len) * state * channels
        return lstm + interaction + linear_flops(self.mlp) + linear_flops(self.score)

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
        sim = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, C, Lq, Ld)
        top = k_max_pool(sim, pair_mask(query_mask, doc_mask), self.config.top_k)  # (B, C, k)
        return self._score(top, first_stage_score)

    def _score(self, top: Tensor, first_stage_score: Tensor | None) -> Tensor:
        features = self.mlp(top.flatten(1))  # (B, F)
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
        """The interaction of the Bi-LSTM states, the k strongest signals the MLP reads, and the score.

        Stages: "interactions" (channel, query, doc), one channel per tensor slice ("tensor") or one ("cosine",
        "bilinear"); "top_k" (channel, rank), the k-max pooled signals.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        sim = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, C, Lq, Ld)
        top = k_max_pool(sim, pair_mask(query_mask, doc_mask), self.config.top_k)  # (B, C, k)
        kind = self.config.interaction
        channels = [kind] if self.config.channels == 1 else [f"{kind} {c + 1}" for c in range(self.config.channels)]
        stages = {
            "interactions": Stage(
                sim, ("channel", "query", "doc"), f"{kind} interaction of the Bi-LSTM states", {"channel": channels}
            ),
            "top_k": Stage(
                top,
                ("channel", "rank"),
                f"the {self.config.top_k} strongest interactions (k-max pooling)",
                {"channel": channels, "rank": [str(r) for r in range(1, self.config.top_k + 1)]},
            ),
        }
        return Explanation(self._score(top, first_stage_score), stages)
