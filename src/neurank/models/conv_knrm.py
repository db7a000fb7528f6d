"""Conv-KNRM, kernel pooling over soft-matched n-grams.

Dai, Xiong, Callan, Liu. "Convolutional Neural Networks for Soft-Matching N-Grams in Ad-hoc Search". WSDM 2018.

The query and the document are embedded, 1-D convolutions with window sizes 1, 2, 3 (each a bank of `n_filters`
filters with ReLU) turn the word vectors into uni-, bi- and tri-gram vectors in one shared space, and every query
n-gram size is cross-matched with every document n-gram size: 3 x 3 = 9 cosine translation matrices. K-NRM's kernel
pooling reads each matrix into K log soft-match counts, and a linear layer scores the 9 K features.

Choices the paper leaves to the code follow the authors' PyTorch implementation (thunlp/Kernel-Based-Neural-Ranking-
Models, `CKNRM.py`) and K-NRM's original code:
- the log soft counts are clamped at 1e-10 and multiplied by 0.01 (`feature_scale`), and the score is
  tanh(w . features + b) (`tanh_output`), as in K-NRM;
- the same filter bank of each window size serves the query and the document (shared weights);
- n-gram windows at the end of a text (`ngram_windows`): the reference runs an unpadded convolution over the padded
  batch and keeps window i wherever token i is real, so the last windows of a text read its PAD tail. That keeps
  L windows per size for a text of L tokens, but in the reference the PAD tail exists only when the text is
  shorter than the batch's longest one. "padded" (the default) makes that convention exact: windows start at every
  real token and read zero vectors past the end (as MatchZoo's Conv-KNRM, which right-pads each convolution
  with zeros), whatever the batch padding. "complete" keeps only windows that lie wholly inside the text
  (L - h + 1 of them); a text shorter than h then has no h-grams: as a query it adds nothing to those features,
  as a document every query n-gram's count is the clamp, log(1e-10).
- no dropout (`dropout=0.0`), as in the reference.

Unknown words (`unknown_match=False`, the default; see `neurank.models.layers`): the word vector of UNK is read as 0
inside every window, so an n-gram made of known words and unknown ones is the n-gram of its known words (otherwise
the one vector all unknown words share would make "X foo" and "Y foo" alike through X and Y), and a window of unknown
words only has no vector of its own: its cells in every translation matrix are 0. It is still a real window, which
the kernels count as unmatched.

Appending PAD never changes a score: embeddings are zeroed at padded positions, so a window that runs past the end
of a text reads the same zeros whether the batch is padded further or not, n-gram positions outside a text are
masked, and the kernel pooling ignores masked positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    KernelPooling,
    ModuleListOf,
    Ranker,
    Stage,
    build_embedding,
    kernel_labels,
    known_mask,
    linear_flops,
    pair_mask,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID

NGRAM_WINDOWS = ("padded", "complete")


@dataclass(frozen=True)
class ConvKNRMConfig:
    """Conv-KNRM settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        n_filters: filters of each convolution, the size of the n-gram vectors (128 in the paper).
        max_ngram: the convolutions have window sizes 1 .. max_ngram (3 in the paper).
        cross_match: match every query n-gram size with every document n-gram size (max_ngram^2 matrices); False
            matches only equal sizes (max_ngram matrices), the paper's ablation.
        ngram_windows: "padded" (windows start at every real token, zeros past the end) or "complete" (only
            windows wholly inside the text); see the module docstring.
        n_kernels: RBF kernels, the exact-match kernel at 1.0 included (11: 1.0, 0.9, 0.7, ..., -0.9).
        sigma: width of the soft kernels (0.1).
        exact_sigma: width of the exact-match kernel (1e-3).
        feature_scale: factor on the log soft counts before the scoring layer (0.01 in the original code).
        tanh_output: score with tanh(linear(features)) as the paper does; False scores with the linear layer alone.
        dropout: on the kernel features, before the scoring layer (0 in the reference).
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
    n_filters: int = 128
    max_ngram: int = 3
    cross_match: bool = True
    ngram_windows: str = "padded"
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
        if self.embedding_dim < 1 or self.n_filters < 1:
            raise ValueError(
                f"embedding_dim and n_filters must be positive, got {self.embedding_dim} and {self.n_filters}"
            )
        if self.max_ngram < 1:
            raise ValueError(f"max_ngram must be >= 1, got {self.max_ngram}")
        if self.ngram_windows not in NGRAM_WINDOWS:
            raise ValueError(f"unknown ngram_windows {self.ngram_windows!r}; valid: {', '.join(NGRAM_WINDOWS)}")
        if self.n_kernels < 2:
            raise ValueError(f"n_kernels must be >= 2 (the exact-match kernel and a soft one), got {self.n_kernels}")
        if self.sigma <= 0 or self.exact_sigma <= 0:
            raise ValueError(f"kernel widths must be positive, got sigma={self.sigma}, exact_sigma={self.exact_sigma}")
        if self.feature_scale <= 0:
            raise ValueError(f"feature_scale must be positive, got {self.feature_scale}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def n_matrices(self) -> int:
        """How many translation matrices the model pools: max_ngram^2 with cross-matching, else max_ngram."""
        return self.max_ngram**2 if self.cross_match else self.max_ngram


@register("conv_knrm", ConvKNRMConfig)
class ConvKNRM(Ranker):
    """The Conv-KNRM ranker: `model(query_ids, doc_ids)` gives one score per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `ConvKNRMConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    def __init__(self, vocab_size: int, config: ConvKNRMConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or ConvKNRMConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size

        # convs[h - 1] reads h-grams.
        self.convs: ModuleListOf[nn.Conv1d] = ModuleListOf(
            nn.Conv1d(config.embedding_dim, config.n_filters, kernel_size=h) for h in range(1, config.max_ngram + 1)
        )
        self.kernel_pooling = KernelPooling(config.n_kernels, config.sigma, config.exact_sigma)
        self.dropout = nn.Dropout(config.dropout)
        self.score = nn.Linear(config.n_matrices * config.n_kernels + int(config.use_first_stage_score), 1)

    def ngram_vectors(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The n-gram vectors of a batch of texts, window size 1 .. max_ngram, and where they are real.

        Window i of size h covers tokens i .. i + h - 1; the windows of every size start at the same L positions.
        Unless `unknown_match`, UNK reads as a zero word vector and a window of UNK only has the zero vector (its
        cells are then 0; the module docstring says why).

        Args:
            ids: (B, L); mask: (B, L) bool.
        Returns:
            vectors: (B, N, L, F), N = max_ngram, 0 at masked positions; ngram_mask: (B, N, L) bool.
        """
        known = mask if self.config.unknown_match else known_mask(ids, mask)  # (B, L) the words with a vector
        emb = self.embedding(ids) * known[:, :, None]  # (B, L, D), zero past the end whatever the PAD embedding
        emb = emb.transpose(1, 2)  # (B, D, L)
        vectors, masks = [], []
        for h, conv in enumerate(self.convs, start=1):
            # Right-padding by h - 1 zeros gives every start position a full window, so the output keeps length L.
            ngrams = F.relu(conv(F.pad(emb, (0, h - 1))))  # (B, F, L)
            vectors.append(ngrams.transpose(1, 2))  # (B, L, F)
            if self.config.ngram_windows == "complete":
                # A window is real when all h of its tokens are: a min over the window of the (zero-extended) mask.
                window_mask = F.pad(mask.float(), (0, h - 1)).unfold(1, h, 1).amin(dim=2).bool()  # (B, L)
            else:
                window_mask = mask
            masks.append(window_mask)
            if not self.config.unknown_match:
                # A window holding no known word (a max over the window of the zero-extended known mask) has no
                # vector; it stays a real window for the kernels.
                has_known = F.pad(known.float(), (0, h - 1)).unfold(1, h, 1).amax(dim=2)  # (B, L)
                vectors[-1] = vectors[-1] * has_known[:, :, None]
        stacked = torch.stack(vectors, dim=1)  # (B, N, L, F)
        ngram_mask = torch.stack(masks, dim=1)  # (B, N, L)
        return stacked * ngram_mask[..., None], ngram_mask

    def _matched(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None, doc_mask: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The translation matrices flattened into the batch, with the n-gram masks aligned to them.

        Returns:
            sim_matrix: (B * C, Lq, Ld); query_ngram_mask: (B * C, Lq); doc_ngram_mask: (B * C, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        query_vectors, query_ngram_mask = self.ngram_vectors(query_ids, query_mask)  # (B, N, Lq, F), (B, N, Lq)
        doc_vectors, doc_ngram_mask = self.ngram_vectors(doc_ids, doc_mask)  # (B, N, Ld, F), (B, N, Ld)
        query_unit = F.normalize(query_vectors, dim=-1)  # (B, N, Lq, F); a zero vector stays zero
        doc_unit = F.normalize(doc_vectors, dim=-1)  # (B, N, Ld, F)
        B, N, Lq, _ = query_vectors.shape
        Ld = doc_vectors.shape[2]
        if self.config.cross_match:
            # Channel qh * N + dh matches query (qh + 1)-grams with document (dh + 1)-grams.
            sim_matrix = torch.einsum("bqif,bdjf->bqdij", query_unit, doc_unit)  # (B, N, N, Lq, Ld)
            query_ngram_mask = query_ngram_mask[:, :, None].expand(B, N, N, Lq)  # (B, N, N, Lq)
            doc_ngram_mask = doc_ngram_mask[:, None].expand(B, N, N, Ld)  # (B, N, N, Ld)
        else:
            sim_matrix = torch.einsum("bnif,bnjf->bnij", query_unit, doc_unit)  # (B, N, Lq, Ld)
        sim_matrix = sim_matrix.reshape(-1, Lq, Ld)  # (B * C, Lq, Ld)
        query_ngram_mask = query_ngram_mask.reshape(-1, Lq)  # (B * C, Lq)
        doc_ngram_mask = doc_ngram_mask.reshape(-1, Ld)  # (B * C, Ld)
        sim_matrix = sim_matrix * pair_mask(query_ngram_mask, doc_ngram_mask)  # (B * C, Lq, Ld)
        return sim_matrix, query_ngram_mask, doc_ngram_mask

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The n-gram translation matrices: cosine of every query n-gram with every document n-gram.

        Row i, column j of channel c compare the query window starting at token i with the document window starting
        at token j; channel qh * max_ngram + dh holds query (qh + 1)-grams against document (dh + 1)-grams when
        `config.cross_match`, else channel h holds (h + 1)-grams against (h + 1)-grams. Masked windows are 0.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, C, Lq, Ld), C = `config.n_matrices`.
        """
        sim_matrix, _, _ = self._matched(query_ids, doc_ids, query_mask, doc_mask)
        return sim_matrix.view(query_ids.shape[0], self.config.n_matrices, *sim_matrix.shape[1:])  # (B, C, Lq, Ld)

    def kernel_features(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The scaled log soft-TF features the scoring layer reads, (B, n_matrices * n_kernels), matrix-major."""
        sim_matrix, query_ngram_mask, doc_ngram_mask = self._matched(query_ids, doc_ids, query_mask, doc_mask)
        pooled = self.kernel_pooling(sim_matrix, query_ngram_mask, doc_ngram_mask)  # (B * C, K)
        return pooled.view(query_ids.shape[0], -1) * self.config.feature_scale  # (B, C * K)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: the n-gram convolutions (one window per position), the translation matrices
        and the scoring layer."""
        config = self.config
        convs = sum(
            2 * config.embedding_dim * h * config.n_filters * (query_len + doc_len)
            for h in range(1, config.max_ngram + 1)
        )
        matrices = 2 * config.n_matrices * query_len * doc_len * config.n_filters
        return convs + matrices + linear_flops(self.score)

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
        features = with_first_stage_score(self.dropout(features), first_stage_score, self.config)  # (B, C * K [+ 1])
        score = self.score(features).squeeze(1)  # (B,)
        return torch.tanh(score) if self.config.tanh_output else score

    def matrix_names(self) -> list[str]:
        """The name of each translation matrix, in channel order, e.g. "q2 x d1" for query bigrams x doc unigrams."""
        sizes = range(1, self.config.max_ngram + 1)
        if self.config.cross_match:
            return [f"q{qh} x d{dh}" for qh in sizes for dh in sizes]
        return [f"q{h} x d{h}" for h in sizes]

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The n-gram translation matrices, soft match counts per kernel, the kernel features and the score.

        Stages: "interactions" (channel, query, doc), one channel per n-gram pairing (rows and columns are the
        positions where the n-grams start); "soft_counts" (channel, query, kernel); "kernel_features"
        (channel, kernel), the scaled log counts summed over query n-grams that the scoring layer reads.
        """
        sim_matrix, query_ngram_mask, doc_ngram_mask = self._matched(query_ids, doc_ids, query_mask, doc_mask)
        B, C = query_ids.shape[0], self.config.n_matrices
        soft_counts = self.kernel_pooling.soft_counts(sim_matrix, query_ngram_mask, doc_ngram_mask)  # (B * C, Lq, K)
        features = self.kernel_features(query_ids, doc_ids, query_mask, doc_mask)  # (B, C * K)
        labels = {"channel": self.matrix_names(), "kernel": kernel_labels(self.kernel_pooling.mus)}
        stages = {
            "interactions": Stage(
                sim_matrix.view(B, C, *sim_matrix.shape[1:]),
                ("channel", "query", "doc"),  # (B, C, Lq, Ld)
                "n-gram translation matrices (n-grams start at the token)",
                labels,
            ),
            "soft_counts": Stage(
                soft_counts.view(B, C, *soft_counts.shape[1:]),
                ("channel", "query", "kernel"),  # (B, C, Lq, K)
                "soft match count of each query n-gram per kernel",
                labels,
            ),
            "kernel_features": Stage(
                features.view(B, C, -1),
                ("channel", "kernel"),  # (B, C, K)
                f"kernel features: {self.config.feature_scale:g} x sum over query n-grams of log count",
                labels,
            ),
        }
        return Explanation(self._score(features, first_stage_score), stages)
