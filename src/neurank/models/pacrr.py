"""PACRR, the position-aware convolutional relevance matching model.

Hui, Yates, Berberich, de Melo. "PACRR: A Position-Aware Neural IR Model for Relevance Matching". EMNLP 2017.

Every query term is compared (cosine) with every document term. Square 2-D convolutions of sizes n = 1..lg
(`min_ngram`..`max_ngram`), `n_filters` each with ReLU, read n-gram (query n-gram x document n-gram) matches off the
matrix; for every cell only the strongest filter is kept (max pooling over filters), and for every query term the
`k_max` strongest document positions of each n-gram size are kept (k-max pooling along the document, ns in the
paper). Each query term thus gets (max_ngram - min_ngram + 1) * k_max signals, plus, with `use_idf`, its normalised
IDF. The per-term features of the first `max_query_len` query terms (lq in the paper) are concatenated, in query
order, and a dense network scores them: the paper's "dense" combination, rather than its LSTM.

Choices the paper leaves open, taken from the PyTorch reference implementation by co-author Yates' group (OpenNIR's
`pacrr` ranker, also the base of CEDR's and Capreolus' PACRR):
- unigrams go through a 1x1 convolution like the other n-gram sizes (`min_ngram=1`); the paper's text feeds the raw
  similarity matrix to the unigram pooling. Set `min_ngram=2` for convolutions of sizes 2..lg only.
- an n x n convolution pads n - 1 zeros after the last query and document positions, so the cell (i, j) reads the
  n-gram starting at (i, j); a padded cell of the similarity matrix is 0, so a real cell reads the same zeros past
  the end of its pair whether or not the batch was padded further.
- the normalised IDF is a softmax of the IDF over the query terms (Co-PACRR's and OpenNIR's choice); here the softmax
  runs over the real terms only, so PAD takes no share.
- the dense combination is OpenNIR's "dense32": lq * features -> 32 -> 32 -> 1 with ReLU between the layers, and no
  dropout (`dropout` defaults to 0.0).
- the document is not truncated to a fixed length ("firstk" in the paper): k-max pooling reads any length, and the
  data pipeline already truncates documents.

Variable query lengths: the query is cut to its first `max_query_len` terms, and the per-term features of a shorter
query are padded with zeros to `max_query_len` rows. Features of padded query terms are 0, so appending PAD to the
query never changes a score. Padded document positions are left out of k-max pooling (a document shorter than
`k_max` contributes 0 for the missing positions), so appending PAD to the document never changes a score either.

IDF lives in the persistent buffer `idf` (vocab_size,), all ones until `set_idf` is called (the training loop calls
it with the corpus IDF); with all ones the IDF feature is 1 / query length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    ModuleListOf,
    Ranker,
    Stage,
    build_embedding,
    embedding_similarity,
    linear_flops,
    pair_mask,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID


@dataclass(frozen=True)
class PACRRConfig:
    """PACRR settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        min_ngram: the smallest convolution size; 1 adds a 1x1 convolution for unigram matches (OpenNIR's default).
        max_ngram: the largest convolution size, lg in the paper (3).
        n_filters: filters of each convolution (32 in the paper).
        k_max: document positions kept per query term and n-gram size, ns in the paper (2).
        max_query_len: query terms the dense combination reads, lq in the paper (16); longer queries are cut, shorter
            ones padded with zero features.
        use_idf: add the softmax-normalised IDF of each query term to its features (as the paper does).
        dense_sizes: hidden layers of the combination network, lq * features -> *dense_sizes -> 1, ReLU between.
        dropout: on the concatenated query-term features, before the combination network (the references use none).
        use_first_stage_score: feed the (already normalised) first-stage score to the combination network.
        unknown_match: let the unknown-word id UNK match in the interactions, as before issue 22 (every unknown
            word has the one UNK vector, so two unknown words matched as strongly as a word with itself); False
            (the default) makes a cell with UNK on either side 0 (`neurank.models.layers`). Checkpoints saved
            before the option load with True.
        freeze_embeddings: keep the embeddings fixed during training.
        sparse_embeddings: sparse embedding gradients (for large vocabularies; needs a sparse-aware optimizer).
        padding_idx: the PAD id, whose embedding stays zero and receives no gradient.
    """

    embedding_dim: int = 100
    min_ngram: int = 1
    max_ngram: int = 3
    n_filters: int = 32
    k_max: int = 2
    max_query_len: int = 16
    use_idf: bool = True
    dense_sizes: tuple[int, ...] = (32, 32)
    dropout: float = 0.0
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = False
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        # Lists (from JSON/YAML) become tuples, so configs stay hashable and compare equal after a round trip.
        object.__setattr__(self, "dense_sizes", tuple(self.dense_sizes))
        if not 1 <= self.min_ngram <= self.max_ngram:
            raise ValueError(
                f"need 1 <= min_ngram <= max_ngram, got min_ngram={self.min_ngram}, max_ngram={self.max_ngram}"
            )
        for name in ("n_filters", "k_max", "max_query_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        if any(size < 1 for size in self.dense_sizes):
            raise ValueError(f"dense_sizes must be positive, got {self.dense_sizes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def ngram_sizes(self) -> tuple[int, ...]:
        return tuple(range(self.min_ngram, self.max_ngram + 1))


def k_max_pool(x: Tensor, doc_mask: Tensor, k: int) -> Tensor:
    """The k largest values along the document axis, in decreasing order, over real document positions only.

    A document with fewer than k real positions fills the missing values with 0.

    Args:
        x: (B, Lq, Ld); doc_mask: (B, Ld).
    Returns:
        (B, Lq, k).
    """
    x = x.masked_fill(~doc_mask.bool()[:, None, :], float("-inf"))
    # k spare -inf positions make topk valid however short the documents, without a branch on the shape (which an
    # export would freeze at the example's length); they never displace a real value.
    x = F.pad(x, (0, k), value=float("-inf"))  # (B, Lq, Ld + k)
    top = x.topk(k, dim=2).values  # (B, Lq, k)
    return torch.where(torch.isinf(top), torch.zeros_like(top), top)


@register("pacrr", PACRRConfig)
class PACRR(Ranker):
    """The PACRR ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `PACRRConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    # Bulk re-ranking on 2 CPU cores, three runs of benchmarks/inference.py --sections budget: 2^17 cells
    # 1.03-1.10x over 2^16.
    cpu_max_cells = 1 << 17

    # The persistent buffer registered in __init__, (vocab_size,); declared so that type checkers know it as a tensor.
    idf: Tensor

    def __init__(self, vocab_size: int, config: PACRRConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or PACRRConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size

        self.convs: ModuleListOf[nn.Conv2d] = ModuleListOf(
            nn.Conv2d(1, config.n_filters, n) for n in config.ngram_sizes
        )
        self.register_buffer("idf", torch.ones(vocab_size))
        self.dropout = nn.Dropout(config.dropout)

        term_features = len(config.ngram_sizes) * config.k_max + int(config.use_idf)
        in_features = config.max_query_len * term_features + int(config.use_first_stage_score)
        layers: list[nn.Module] = []
        for size in config.dense_sizes:
            layers += [nn.Linear(in_features, size), nn.ReLU()]
            in_features = size
        layers.append(nn.Linear(in_features, 1))
        self.combination = nn.Sequential(*layers)

    def set_idf(self, idf: Tensor) -> None:
        """Set the IDF of the query-term feature: a (vocab_size,) tensor, indexed by token id."""
        idf = torch.as_tensor(idf)
        if idf.shape != (self.vocab_size,):
            raise ValueError(f"idf must have shape ({self.vocab_size},), got {tuple(idf.shape)}")
        with torch.no_grad():
            self.idf.copy_(idf)

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The cosine similarity matrix the convolutions read, 0 at padded positions.

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

    def ngram_signals(self, sim_matrix: Tensor) -> list[Tensor]:
        """For each n-gram size, the strongest filter's response at every cell: [(B, Lq, Ld), ...].

        Args:
            sim_matrix: (B, 1, Lq, Ld), from `interaction_matrix`. Cells past the true lengths are not masked here
                (k-max pooling leaves them out).
        """
        signals = []
        for n, conv in zip(self.config.ngram_sizes, self.convs, strict=True):  # one convolution per size
            # n - 1 zeros after the end: the cell (i, j) reads the n-gram that starts there.
            padded = F.pad(sim_matrix, (0, n - 1, 0, n - 1))  # (B, 1, Lq + n - 1, Ld + n - 1)
            signals.append(torch.relu(conv(padded)).amax(dim=1))  # (B, Lq, Ld)
        return signals

    def feature_names(self) -> list[str]:
        """The name of each per-term feature: "2-gram #1" is the strongest 2-gram signal, then "idf" if used."""
        names = [f"{n}-gram #{rank}" for n in self.config.ngram_sizes for rank in range(1, self.config.k_max + 1)]
        return names + (["idf"] if self.config.use_idf else [])

    def query_term_features(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The features of every query term: k-max pooled n-gram signals of each size, then the normalised IDF.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, Lq, F) with F = n_ngram_sizes * k_max (+ 1 with `use_idf`); 0 for padded query terms.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        sim_matrix = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, 1, Lq, Ld)
        features = [k_max_pool(signals, doc_mask, self.config.k_max) for signals in self.ngram_signals(sim_matrix)]
        if self.config.use_idf:
            idf = self.idf[query_ids]  # (B, Lq)
            # The finite fill (not -inf) keeps a query with no real term at 0 instead of NaN.
            idf = idf.masked_fill(~query_mask, torch.finfo(idf.dtype).min)
            features.append(torch.softmax(idf, dim=1)[:, :, None])  # (B, Lq, 1)
        term_features = torch.cat(features, dim=2)  # (B, Lq, F)
        return term_features * query_mask[:, :, None]

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: on the query cut to `max_query_len`, the cosine matrix and the n x n
        convolutions (one output per cell), then the dense combination."""
        config = self.config
        cells = min(query_len, config.max_query_len) * doc_len
        convs = sum(2 * n * n * config.n_filters * cells for n in config.ngram_sizes)
        return 2 * cells * config.embedding_dim + convs + linear_flops(self.combination)

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
            (B,) logits.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        lq = self.config.max_query_len
        # Cut before the convolutions, so a cut query reads as the same terms whatever followed them.
        query_ids, query_mask = query_ids[:, :lq], query_mask[:, :lq]  # (B, min(Lq, lq))
        features = self.query_term_features(query_ids, doc_ids, query_mask, doc_mask)  # (B, Lq', F)
        return self._score(features, first_stage_score)

    def _score(self, features: Tensor, first_stage_score: Tensor | None) -> Tensor:
        lq = self.config.max_query_len
        features = F.pad(features, (0, 0, 0, lq - features.shape[1]))  # (B, lq, F)
        features = self.dropout(features.flatten(1))  # (B, lq * F)
        features = with_first_stage_score(features, first_stage_score, self.config)  # (B, lq * F + 1) with the score
        return self.combination(features).squeeze(1)  # (B,)

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The similarity matrix, the n-gram signals, the per-term features the dense layers read, and the score.

        The query is cut to `config.max_query_len` terms first, as `forward` does, so every stage shows what the
        model read. Stages: "interactions" (channel, query, doc); "ngram_signals" (channel, query, doc), one
        channel per n-gram size, 0 past the true lengths; "term_features" (query, feature), k-max pooled signals
        (and the normalised IDF) of each query term.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        lq = self.config.max_query_len
        query_ids, query_mask = query_ids[:, :lq], query_mask[:, :lq]  # (B, min(Lq, lq))
        interactions = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, 1, Lq', Ld)
        signals = torch.stack(self.ngram_signals(interactions), dim=1)  # (B, N, Lq', Ld)
        signals = signals * pair_mask(query_mask, doc_mask)[:, None]
        features = self.query_term_features(query_ids, doc_ids, query_mask, doc_mask)  # (B, Lq', F)
        stages = {
            "interactions": Stage(interactions, ("channel", "query", "doc"), "cosine matrix", {"channel": ["cosine"]}),
            "ngram_signals": Stage(
                signals,
                ("channel", "query", "doc"),
                "strongest filter per cell for each n-gram size (n-gram starts there)",
                {"channel": [f"{n}-gram" for n in self.config.ngram_sizes]},
            ),
            "term_features": Stage(
                features,
                ("query", "feature"),
                "features of each query term: top-k signals per n-gram size",
                {"feature": self.feature_names()},
            ),
        }
        return Explanation(self._score(features, first_stage_score), stages)
