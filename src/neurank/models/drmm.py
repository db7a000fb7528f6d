"""DRMM, the Deep Relevance Matching Model: matching histograms, a per-term feed-forward network and term gating.

Guo, Fan, Ai, Croft. "A Deep Relevance Matching Model for Ad-hoc Retrieval". CIKM 2016.

Every query term is compared (cosine) with every real document term, and the similarities are counted into a fixed
matching histogram per query term: `n_bins - 1` equal bins over [-1, 1) and one last bin, [1, 1], for exact matches.
A small feed-forward network (30 -> 5 -> 1, tanh, the paper's best) turns each query term's histogram into a matching
score, and a term gating network weighs the query terms: a softmax over the query terms of `w * idf(term)` ("idf",
the paper's best) or of `w . embedding(term)` ("tv"). The score is the gated sum.

Choices the paper leaves open, taken from MatchZoo (the toolkit of the paper's second author; `DRMM_PairGenerator.
cal_hist` in MatchZoo 1.x, `MatchingHistogram` and `DRMM` in MatchZoo-py):
- bin of a similarity s: floor((s + 1) / 2 * (n_bins - 1)), so the soft bins are [-1, 1) in n_bins - 1 equal steps.
  The exact-match bin is decided by token id (the same term, UNK excluded, as `exact_match_matrix` does), not by
  s == 1, which float rounding can miss for a term compared with itself.
- "lch" is log10(1 + count) (MatchZoo 1.x adds 1 to every bin before log10, so empty bins are 0, not -inf); "nh"
  divides the counts by the number of real document terms; "ch" keeps the counts.
- a linear layer on the gated sum (MatchZoo-py's output layer): the paper's network ends in tanh, which would bound
  the logit to [-1, 1]. With `use_first_stage_score` this layer also reads the first-stage score.
- the IDF gate weight starts at 1.0 (neither the paper nor MatchZoo, which gates on term vectors, fixes it).

Embeddings are frozen by default (`freeze_embeddings=True`): the paper uses fixed pretrained word vectors, and
histograms are counts, with no gradient, so under IDF gating the embeddings could not be trained anyway (a config
asking to train them with IDF gating is rejected). Under "tv" gating the query term embeddings do receive a gradient,
through the gate, and may be trained.

IDF lives in the persistent buffer `idf` (vocab_size,), all ones until `set_idf` is called (the training loop calls
it with the corpus IDF before it builds its optimizer). While the IDF is uniform the gate is a plain average whatever
its weight, so the weight is then frozen (requires_grad False) and becomes trainable once `set_idf` (or loading a
state_dict) gives varying values: build the optimizer after `set_idf`.

Appending PAD never changes a score: padded document terms are left out of the counts, padded query terms are left
out of the gate's softmax, and the histogram's normaliser is the true document length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from neurank.models.layers import (
    Explanation,
    Ranker,
    Stage,
    build_embedding,
    derive_mask,
    embedding_similarity,
    exact_match_matrix,
    linear_flops,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID

HISTOGRAMS = ("lch", "ch", "nh")
GATINGS = ("idf", "tv")


@dataclass(frozen=True)
class DRMMConfig:
    """DRMM settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        n_bins: histogram bins: n_bins - 1 equal bins over [-1, 1) and one bin for exact matches (30 in the paper).
        histogram: "lch" (log10 of 1 + count, the paper's best), "ch" (count) or "nh" (count / document length).
        hidden_sizes: hidden layers of the per-term matching network, n_bins -> *hidden_sizes -> 1, all tanh; the
            paper's best is (5,).
        gating: "idf" (softmax of w * idf(term), the paper's best) or "tv" (softmax of w . embedding(term)).
        dropout: after each hidden layer of the matching network (the paper uses none).
        use_first_stage_score: feed the (already normalised) first-stage score to the scoring layer as one feature.
        unknown_match: let the unknown-word id UNK match in the interactions, as before issue 22 (every unknown
            word has the one UNK vector, so two unknown words matched as strongly as a word with itself); False
            (the default) makes a cell with UNK on either side 0 (`neurank.models.layers`). Checkpoints saved
            before the option load with True.
        freeze_embeddings: keep the embeddings fixed (True by default, as in the paper; must be True with "idf").
        sparse_embeddings: sparse embedding gradients (for large vocabularies; needs a sparse-aware optimizer).
        padding_idx: the PAD id, whose embedding stays zero and receives no gradient.
    """

    embedding_dim: int = 100
    n_bins: int = 30
    histogram: str = "lch"
    hidden_sizes: tuple[int, ...] = (5,)
    gating: str = "idf"
    dropout: float = 0.0
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = True
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        # Lists (from JSON/YAML) become tuples, so configs stay hashable and compare equal after a round trip.
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be >= 2 (at least one soft bin and the exact-match bin), got {self.n_bins}")
        if self.histogram not in HISTOGRAMS:
            raise ValueError(f"unknown histogram {self.histogram!r}; valid: {', '.join(HISTOGRAMS)}")
        if any(size < 1 for size in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive, got {self.hidden_sizes}")
        if self.gating not in GATINGS:
            raise ValueError(f"unknown gating {self.gating!r}; valid: {', '.join(GATINGS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.gating == "idf" and not self.freeze_embeddings:
            raise ValueError(
                "freeze_embeddings=False needs gating='tv': with IDF gating the embeddings reach the score only "
                "through the matching histograms, which are counts and carry no gradient"
            )


def _sync_gate_after_load(module: DRMM, incompatible_keys) -> None:
    # A module-level function (not a lambda), so the model still pickles whole.
    module._sync_gate()


@register("drmm", DRMMConfig)
class DRMM(Ranker):
    """The DRMM ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `DRMMConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    # Bulk re-ranking on 2 CPU cores, three runs of benchmarks/inference.py --sections budget: 2^17 cells
    # 1.05-1.25x over 2^16.
    cpu_max_cells = 1 << 17

    # The persistent buffer registered in __init__, (vocab_size,); declared so that type checkers know it as a tensor.
    idf: Tensor

    def __init__(self, vocab_size: int, config: DRMMConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or DRMMConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size

        layers: list[nn.Module] = []
        in_features = config.n_bins
        for size in config.hidden_sizes:
            layers += [nn.Linear(in_features, size), nn.Tanh(), nn.Dropout(config.dropout)]
            in_features = size
        layers += [nn.Linear(in_features, 1), nn.Tanh()]
        self.matching = nn.Sequential(*layers)

        self.register_buffer("idf", torch.ones(vocab_size))
        if config.gating == "idf":
            self.gate_weight = nn.Parameter(torch.tensor(1.0))
            self.gate_weight.requires_grad_(False)  # the IDF is uniform until `set_idf`
            self.register_load_state_dict_post_hook(_sync_gate_after_load)
        else:
            self.gate = nn.Linear(config.embedding_dim, 1, bias=False)
        self.score = nn.Linear(1 + int(config.use_first_stage_score), 1)

    def set_idf(self, idf: Tensor) -> None:
        """Set the IDF the gate reads: a (vocab_size,) tensor, indexed by token id."""
        idf = torch.as_tensor(idf)
        if idf.shape != (self.vocab_size,):
            raise ValueError(f"idf must have shape ({self.vocab_size},), got {tuple(idf.shape)}")
        with torch.no_grad():
            self.idf.copy_(idf)
        self._sync_gate()

    def _sync_gate(self) -> None:
        # With one IDF value for every term the softmax is uniform for any weight, so the weight has no gradient.
        if self.config.gating == "idf":
            pad = self.config.padding_idx
            terms = torch.cat([self.idf[:pad], self.idf[pad + 1 :]])
            self.gate_weight.requires_grad_(bool((terms != terms[0]).any()) if len(terms) else False)

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The cosine matrix the histograms count, 0 at padded positions.

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

    def matching_histogram(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The matching histogram of every query term, transformed as `config.histogram` says; 0 for padded terms.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, Lq, n_bins); the last bin counts exact matches. No gradient flows through it.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        n_bins = self.config.n_bins
        with torch.no_grad():
            sim_matrix = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)[:, 0]  # (B, Lq, Ld)
            soft_bin = ((sim_matrix + 1.0) / 2.0 * (n_bins - 1)).floor().long().clamp(0, n_bins - 2)  # (B, Lq, Ld)
            exact = exact_match_matrix(query_ids, doc_ids, query_mask, doc_mask).bool()  # (B, Lq, Ld)
            bin_index = torch.where(exact, n_bins - 1, soft_bin)  # (B, Lq, Ld)
            # Padded document terms add 0 to whatever bin they fall in.
            weights = doc_mask[:, None, :].expand_as(bin_index).to(sim_matrix.dtype)  # (B, Lq, Ld)
            counts = sim_matrix.new_zeros(*bin_index.shape[:2], n_bins).scatter_add_(2, bin_index, weights)
            if self.config.histogram == "lch":
                counts = torch.log10(1.0 + counts)
            elif self.config.histogram == "nh":
                counts = counts / doc_mask.sum(1).clamp(min=1)[:, None, None].to(counts.dtype)
            return counts * query_mask[:, :, None]  # (B, Lq, n_bins)

    def term_gates(self, query_ids: Tensor, query_mask: Tensor | None = None) -> Tensor:
        """The weight of every query term: a softmax over the real query terms, 0 at padding. (B, Lq) -> (B, Lq)."""
        query_mask = derive_mask(query_ids) if query_mask is None else query_mask.bool()
        if self.config.gating == "idf":
            logits = self.gate_weight * self.idf[query_ids]  # (B, Lq)
        else:
            logits = self.gate(self.embedding(query_ids)).squeeze(2)  # (B, Lq)
        # The finite fill (not -inf) keeps a query with no real term at 0 instead of NaN.
        logits = logits.masked_fill(~query_mask, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=1) * query_mask  # (B, Lq)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: the cosine matrix, the matching network on every query term, the term-vector
        gate ("tv") and the scoring layer (the histograms are counts)."""
        flops = 2 * query_len * doc_len * self.config.embedding_dim + linear_flops(self.matching, rows=query_len)
        if self.config.gating == "tv":
            flops += linear_flops(self.gate, rows=query_len)
        return flops + linear_flops(self.score)

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
        histogram = self.matching_histogram(query_ids, doc_ids, query_mask, doc_mask)  # (B, Lq, n_bins)
        term_scores = self.matching(histogram).squeeze(2)  # (B, Lq)
        gates = self.term_gates(query_ids, query_mask)  # (B, Lq)
        return self._score(term_scores, gates, first_stage_score)

    def _score(self, term_scores: Tensor, gates: Tensor, first_stage_score: Tensor | None) -> Tensor:
        features = (gates * term_scores).sum(1, keepdim=True)  # (B, 1)
        features = with_first_stage_score(features, first_stage_score, self.config)  # (B, 2) with the score
        return self.score(features).squeeze(1)  # (B,)

    def bin_labels(self) -> list[str]:
        """The lower edge of each soft histogram bin, then "exact" for the exact-match bin."""
        width = 2.0 / (self.config.n_bins - 1)
        return [f"{-1.0 + i * width:.2f}" for i in range(self.config.n_bins - 1)] + ["exact"]

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The cosine matrix, each query term's matching histogram, term scores and gates, and the score.

        Stages: "interactions" (channel, query, doc); "histogram" (query, bin), as `config.histogram` transforms
        it; "term_scores" (query,), the matching network's output; "gates" (query,), the term gating weights.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        interactions = self.interaction_matrix(query_ids, doc_ids, query_mask, doc_mask)  # (B, 1, Lq, Ld)
        histogram = self.matching_histogram(query_ids, doc_ids, query_mask, doc_mask)  # (B, Lq, n_bins)
        term_scores = self.matching(histogram).squeeze(2)  # (B, Lq)
        gates = self.term_gates(query_ids, query_mask)  # (B, Lq)
        stages = {
            "interactions": Stage(interactions, ("channel", "query", "doc"), "cosine matrix", {"channel": ["cosine"]}),
            "histogram": Stage(
                histogram,
                ("query", "bin"),
                f"matching histogram of each query term ({self.config.histogram}; bin lower edge)",
                {"bin": self.bin_labels()},
            ),
            "term_scores": Stage(term_scores * query_mask, ("query",), "matching score of each query term"),
            "gates": Stage(gates, ("query",), f"term gates (softmax over the query of {self.config.gating})"),
        }
        return Explanation(self._score(term_scores, gates, first_stage_score), stages)
