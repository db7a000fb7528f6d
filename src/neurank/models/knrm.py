"""K-NRM, the kernel-pooling interaction ranker.

Xiong, Dai, Callan, Liu, Power. "End-to-End Neural Ad-hoc Ranking with Kernel Pooling". SIGIR 2017.

Every query token is compared with every document token by the cosine of their embeddings (the translation matrix),
RBF kernels turn each query token's row into soft match counts at several similarity levels (an exact-match kernel
at 1.0 and soft kernels at 0.9, 0.7, ..., -0.9), the log of each count is summed over the query tokens, and a linear
layer scores the resulting K features.

Choices the paper leaves to the code follow the authors' implementation (github.com/AdeDZY/K-NRM, `model_knrm.py`,
and the PyTorch port in thunlp/Kernel-Based-Neural-Ranking-Models, `KNRM.py`):
- the soft counts are clamped at 1e-10 before the log, and the log counts are multiplied by 0.01 ("used to scale
  down the data"; `feature_scale`);
- the score is tanh(w . features + b), as in the paper's equation and both implementations (`tanh_output`). The
  score therefore lies in (-1, 1), which suits the paper's pairwise hinge loss and ranking; set `tanh_output=False`
  for unbounded logits (sharper probabilities under a pointwise or listwise loss);
- no dropout (`dropout=0.0`; the port has it commented out), and query terms weigh 1 each (the paper's setting).

Appending PAD never changes a score: the translation matrix is computed only between real tokens, padded document
positions add nothing to a kernel's soft count, and padded query positions add nothing to the sum over query tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    KernelPooling,
    Ranker,
    Stage,
    build_embedding,
    embedding_similarity,
    kernel_labels,
    linear_flops,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID


@dataclass(frozen=True)
class KNRMConfig:
    """K-NRM settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        n_kernels: RBF kernels, the exact-match kernel at 1.0 included; the soft ones are centred evenly in (-1, 1)
            (11 gives 1.0, 0.9, 0.7, ..., -0.9, the paper's setting).
        sigma: width of the soft kernels (0.1 in the paper: half the distance between two centres).
        exact_sigma: width of the exact-match kernel (1e-3 in the paper).
        feature_scale: factor on the log soft counts before the scoring layer (0.01 in the original code).
        tanh_output: score with tanh(linear(features)) as the paper does; False scores with the linear layer alone.
        dropout: on the kernel features, before the scoring layer (0 in the original).
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
    n_kernels: int = 11
    sigma: float = 0.1
    exact_sigma: float = 1e-3
    feature_scale: float = 0.01
    tanh_output: bool = True
    dropout: float = 0.0
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be positive, got {self.embedding_dim}")
        if self.n_kernels < 2:
            raise ValueError(f"n_kernels must be >= 2 (the exact-match kernel and a soft one), got {self.n_kernels}")
        if self.sigma <= 0 or self.exact_sigma <= 0:
            raise ValueError(f"kernel widths must be positive, got sigma={self.sigma}, exact_sigma={self.exact_sigma}")
        if self.feature_scale <= 0:
            raise ValueError(f"feature_scale must be positive, got {self.feature_scale}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register("knrm", KNRMConfig)
class KNRM(Ranker):
    """The K-NRM ranker: `model(query_ids, doc_ids)` gives one score per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `KNRMConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    def __init__(self, vocab_size: int, config: KNRMConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or KNRMConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size

        self.kernel_pooling = KernelPooling(config.n_kernels, config.sigma, config.exact_sigma)
        self.dropout = nn.Dropout(config.dropout)
        self.score = nn.Linear(config.n_kernels + int(config.use_first_stage_score), 1)

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The translation matrix: cosine of every query token with every document token, 0 at padded positions.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, 1, Lq, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        sim_matrix = embedding_similarity(
            self.embedding, "cosine", query_ids, doc_ids, query_mask, doc_mask, self.config.unknown_match
        )  # (B, Lq, Ld), 0 at UNK cells unless unknown_match
        return sim_matrix[:, None]  # (B, 1, Lq, Ld)

    def kernel_features(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The scaled log soft-TF features the scoring layer reads, (B, n_kernels)."""
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        sim_matrix = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)[:, 0]  # (B, Lq, Ld)
        return self.kernel_pooling(sim_matrix, query_mask, doc_mask) * self.config.feature_scale  # (B, K)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: the translation matrix and the scoring layer (the kernels are elementwise)."""
        return 2 * query_len * doc_len * self.config.embedding_dim + linear_flops(self.score)

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
            (B,) scores, used as logits (in (-1, 1) when `config.tanh_output`); `predict_proba` gives probabilities.
        """
        return self._score(self.kernel_features(query_ids, doc_ids, query_mask, doc_mask), first_stage_score)

    def _score(self, features: Tensor, first_stage_score: Tensor | None) -> Tensor:
        features = with_first_stage_score(self.dropout(features), first_stage_score, self.config)  # (B, K [+ 1])
        score = self.score(features).squeeze(1)  # (B,)
        return torch.tanh(score) if self.config.tanh_output else score

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The translation matrix, each query token's soft match count per kernel, the kernel features and the score.

        Stages: "interactions" (channel, query, doc); "soft_counts" (query, kernel); "kernel_features" (kernel,),
        the scaled log counts summed over query tokens that the scoring layer reads.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        interactions = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, 1, Lq, Ld)
        features = self.kernel_features(query_ids, doc_ids, query_mask, doc_mask)  # (B, K)
        kernels = {"kernel": kernel_labels(self.kernel_pooling.mus)}
        stages = {
            "interactions": Stage(
                interactions, ("channel", "query", "doc"), "translation matrix", {"channel": ["cosine"]}
            ),
            "soft_counts": Stage(
                self.kernel_pooling.soft_counts(interactions[:, 0], query_mask, doc_mask),
                ("query", "kernel"),
                "soft match count of each query token per kernel (kernel centre on the axis)",
                kernels,
            ),
            "kernel_features": Stage(
                features,
                ("kernel",),
                f"kernel features: {self.config.feature_scale:g} x sum over query tokens of log count",
                kernels,
            ),
        }
        return Explanation(self._score(features, first_stage_score), stages)
