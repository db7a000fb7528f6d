"""Compare-Aggregate, the answer-selection ranker that compares every document word with what the query says about it.

Wang, Jiang. "A Compare-Aggregate Model for Matching Text Sequences". ICLR 2017.

Four layers, in the paper's terms (Q the query, A the document):
1. Preprocessing: each word vector goes through a gate, `x' = sigmoid(W_i x + b_i) * tanh(W_u x + b_u)` (an LSTM
   cell without recurrence), with one set of weights for both texts.
2. Attention: every document word j attends over the query words, `h_j = sum_i softmax_i(q'_i . a'_j) q'_i`: what
   the query holds that matches word j.
3. Comparison: `t_j = f(a'_j, h_j)`; the paper's best on WikiQA is SUBMULT+NN,
   `ReLU(W [(a'_j - h_j) * (a'_j - h_j); a'_j * h_j] + b)`.
4. Aggregation: a CNN over the t_j (one convolution per window size, ReLU, max over positions), and the pooled
   vector is scored.

Choices the paper leaves open follow the authors' SeqMatchSeq code for WikiQA (`compAggWikiqa`), which was read for
understanding, not copied:
- the attention score is the plain dot product of the preprocessed vectors (the paper's `W_g` projection is absent);
- one more, all-zero query position ("null") joins the attention: a document word that matches nothing can attend
  to it (its score is 0 and it contributes nothing to h_j), instead of being forced onto some query word;
- the CNN has windows 1 to 5 with `hidden_size` (150) filters each, and the pooled features go through a tanh layer
  of `hidden_size` units before the scoring layer;
- the word vectors stay fixed (`freeze_embeddings=True`): the reference keeps its GloVe vectors fixed.
Dropout is ours (the reference has none): on the word vectors and on the pooled features, 0.1 by default.
`exact_match` (off by default) is ours too: one more input channel to the aggregation CNN, 1 where the document word
occurs in the query (PAD and UNK never match), like the word-overlap indicators that Severyn and Moschitti (SIGIR
2015) append to word vectors for answer selection. Attention finds a repeated word only through its vector, which
for a rare word trained on little text says little.

Unknown words (`unknown_match=False`, the default; see `neurank.models.layers`): a cell whose query word or document
word is UNK has attention score 0 and takes no attention, so an unknown document word attends only to the null
position (it matches nothing in the query: h_j = 0) and an unknown query word is attended by no document word. Without
them, every unknown word had the one UNK vector, and an unknown document word found its exact twin in any unknown
query word.

Appending PAD never changes a score: padded query positions get no attention, padded document positions are 0 in
the comparison (so a convolution window past a text's end reads the same zeros whether the text was padded or not),
and a window starting at a padded position never wins the max.
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
    exact_match_matrix,
    linear_flops,
    match_masks,
    pair_mask,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.registry import register
from neurank.text import PAD_ID

#: The comparison functions of the paper's section 2 that neurank implements (NN, SUB, MULT, SUBMULT+NN).
COMPARISONS = ("submult_nn", "nn", "sub", "mult")


@dataclass(frozen=True)
class CompareAggregateConfig:
    """Compare-Aggregate settings.

    Attributes:
        embedding_dim: word vector size (taken from `embeddings` when the model is initialised from them).
        hidden_size: width of the preprocessed vectors, the comparison, each window's filters and the tanh layer.
        comparison: "submult_nn" (the paper's best), "nn" (ReLU(W [a; h] + b)), "sub" ((a - h) * (a - h)) or
            "mult" (a * h).
        windows: window sizes of the aggregation CNN, one convolution of `hidden_size` filters each.
        null_attention: attend over one more, all-zero query position as well as the query's words.
        exact_match: give the aggregation CNN one more channel, 1 where the document word occurs in the query.
        dropout: on the word vectors and on the pooled features.
        use_first_stage_score: feed the (already normalised) first-stage score to the scoring layer as one feature.
        unknown_match: let the unknown-word id UNK match in the interactions, as before issue 22 (every unknown
            word has the one UNK vector, so two unknown words matched as strongly as a word with itself); False
            (the default) makes a cell with UNK on either side 0 (`neurank.models.layers`). Checkpoints saved
            before the option load with True.
        freeze_embeddings: keep the embeddings fixed during training (the reference does).
        sparse_embeddings: sparse embedding gradients (for large vocabularies; needs a sparse-aware optimizer).
        padding_idx: the PAD id, whose embedding stays zero and receives no gradient.
    """

    embedding_dim: int = 100
    hidden_size: int = 150
    comparison: str = "submult_nn"
    windows: tuple[int, ...] = (1, 2, 3, 4, 5)
    null_attention: bool = True
    exact_match: bool = False
    dropout: float = 0.1
    use_first_stage_score: bool = False
    unknown_match: bool = False
    freeze_embeddings: bool = True
    sparse_embeddings: bool = False
    padding_idx: int = PAD_ID

    def __post_init__(self):
        # Lists (from JSON/YAML) become tuples, so configs stay hashable and compare equal after a round trip.
        object.__setattr__(self, "windows", tuple(self.windows))
        if self.embedding_dim < 1 or self.hidden_size < 1:
            raise ValueError(
                f"embedding_dim and hidden_size must be positive, got {self.embedding_dim} and {self.hidden_size}"
            )
        if self.comparison not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.comparison!r}; valid: {', '.join(COMPARISONS)}")
        if not self.windows or any(window < 1 for window in self.windows):
            raise ValueError(f"windows must name at least one positive window size, got {self.windows}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register("compare_aggregate", CompareAggregateConfig)
class CompareAggregate(Ranker):
    """The Compare-Aggregate ranker: `model(query_ids, doc_ids)` gives one logit per query-document pair.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a `CompareAggregateConfig`; None for the defaults.
        embeddings: optional (vocab_size, dim) float tensor to initialise the embeddings from; `dim` then replaces
            `config.embedding_dim` in `self.config`, so the saved config rebuilds the same shapes.
    """

    def __init__(self, vocab_size: int, config: CompareAggregateConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        self.embedding, config = build_embedding(vocab_size, config or CompareAggregateConfig(), embeddings)
        self.config = config
        self.vocab_size = vocab_size
        hidden = config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.gate = nn.Linear(config.embedding_dim, hidden)  # W_i, b_i
        self.update = nn.Linear(config.embedding_dim, hidden)  # W_u, b_u
        # SUB and MULT have no parameters; NN reads [a; h], SUBMULT+NN reads [(a - h)^2; a * h].
        self.compare = nn.Linear(2 * hidden, hidden) if config.comparison in ("nn", "submult_nn") else None
        channels = hidden + int(config.exact_match)  # the comparison, and the exact-match flag when asked for
        self.convs: ModuleListOf[nn.Conv1d] = ModuleListOf(
            nn.Conv1d(channels, hidden, window) for window in config.windows
        )
        self.aggregate = nn.Linear(len(config.windows) * hidden, hidden)
        self.score = nn.Linear(hidden + int(config.use_first_stage_score), 1)

    # -- the four layers ---------------------------------------------------------------------------------------

    def _preprocess(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Gated word vectors, 0 at padded positions: (B, L) -> (B, L, H)."""
        emb = self.dropout(self.embedding(ids))  # (B, L, D)
        gated = torch.sigmoid(self.gate(emb)) * torch.tanh(self.update(emb))  # (B, L, H)
        return gated * mask[:, :, None].to(gated.dtype)

    def _attend(
        self, query: Tensor, doc: Tensor, query_mask: Tensor, doc_mask: Tensor, query_match: Tensor, doc_match: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Dot-product attention of each document word over the query words (and the null position).

        `query_match` and `doc_match` are `match_masks`: the words whose cells may match (without UNK unless
        `unknown_match`).

        Returns:
            sim (B, Lq, Ld), the dot products, 0 at padded cells; attention (B, Lq, Ld), each real document word's
            weights over the query words (with the null position's weight, they sum to 1); null (B, Ld), the null
            position's weight (0 without `null_attention`); both 0 at padded positions.
        """
        cells = pair_mask(query_match, doc_match)  # (B, Lq, Ld): True where the two words may match
        sim = (query @ doc.transpose(1, 2)) * cells.to(query.dtype)  # (B, Lq, Ld)
        logits = sim.masked_fill(~query_mask[:, :, None], float("-inf"))  # (B, Lq, Ld)
        if not self.config.unknown_match:
            # Cells of an unknown word take no attention. The finite fill (not -inf) keeps a document word with no
            # cell to attend to (no null position) finite; the weights are zeroed there below.
            logits = logits.masked_fill(~cells, torch.finfo(logits.dtype).min)
        if self.config.null_attention:
            # The null position's vector is 0, so its score is 0 and it adds nothing to the attended vector.
            logits = torch.cat([logits, logits.new_zeros(logits.shape[0], 1, logits.shape[2])], dim=1)  # (B, Lq+1, Ld)
        # A query with no real token (and no null position) attends to nothing instead of giving NaN.
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0) * doc_mask[:, None, :].to(sim.dtype)
        attention = weights[:, : query.shape[1]]  # (B, Lq, Ld)
        if not self.config.unknown_match:
            attention = attention * cells.to(attention.dtype)
        null = weights[:, -1] if self.config.null_attention else torch.zeros_like(weights[:, 0])  # (B, Ld)
        return sim, attention, null

    def _compare(self, doc: Tensor, attended: Tensor, doc_mask: Tensor) -> Tensor:
        """t_j = f(a'_j, h_j) for every document word, 0 at padded positions: (B, Ld, H)."""
        comparison = self.config.comparison
        if comparison == "sub":
            compared = (doc - attended) * (doc - attended)
        elif comparison == "mult":
            compared = doc * attended
        else:  # "nn" or "submult_nn", the comparisons with a layer: __init__ built `compare` for them
            assert self.compare is not None
            if comparison == "nn":
                pair = torch.cat([doc, attended], dim=2)
            else:  # submult_nn
                pair = torch.cat([(doc - attended) * (doc - attended), doc * attended], dim=2)
            compared = torch.relu(self.compare(pair))
        return compared * doc_mask[:, :, None].to(compared.dtype)

    def _pool(self, compared: Tensor, doc_mask: Tensor, matched: Tensor | None = None) -> Tensor:
        """Each window's convolution + ReLU, max over the windows that start at a real position: (B, W * H).

        `matched` (B, Ld), the exact-match flags, joins the comparison as one more channel when given.
        """
        x = compared.transpose(1, 2)  # (B, H, Ld)
        if matched is not None:
            x = torch.cat([x, matched[:, None, :].to(x.dtype)], dim=1)  # (B, H + 1, Ld)
        has_text = doc_mask.any(dim=1, keepdim=True)  # (B, 1)
        pooled = []
        for conv in self.convs:
            # Zeros after the end, as the padded positions are, so a window reads the same whatever the padding.
            y = torch.relu(conv(F.pad(x, (0, conv.kernel_size[0] - 1))))  # (B, H, Ld)
            y = y.masked_fill(~doc_mask[:, None, :], float("-inf")).amax(dim=2)  # (B, H)
            pooled.append(y.masked_fill(~has_text, 0.0))  # a document with no real token pools to 0
        return torch.cat(pooled, dim=1)  # (B, W * H)

    def _matched(self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor | None:
        """(B, Ld): 1.0 where the document word occurs in the query, 0 elsewhere; None without `exact_match`."""
        if not self.config.exact_match:
            return None
        return exact_match_matrix(query_ids, doc_ids, query_mask, doc_mask).amax(dim=1)

    def _score(self, pooled: Tensor, first_stage_score: Tensor | None) -> Tensor:
        features = torch.tanh(self.aggregate(self.dropout(pooled)))  # (B, H)
        features = with_first_stage_score(features, first_stage_score, self.config)  # (B, H + 1) with the score
        return self.score(features).squeeze(1)  # (B,)

    def _preprocess_and_attend(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
        """The preprocessed query (B, Lq, H) and document (B, Ld, H), and what `_attend` makes of them."""
        query = self._preprocess(query_ids, query_mask)
        doc = self._preprocess(doc_ids, doc_mask)
        query_match, doc_match = match_masks(query_ids, doc_ids, query_mask, doc_mask, self.config.unknown_match)
        return query, doc, self._attend(query, doc, query_mask, doc_mask, query_match, doc_match)

    def _layers(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """sim, attention, null (see `_attend`) and the comparison (B, Ld, H)."""
        query, doc, (sim, attention, null) = self._preprocess_and_attend(query_ids, doc_ids, query_mask, doc_mask)
        attended = attention.transpose(1, 2) @ query  # (B, Ld, H); the null position adds 0
        return sim, attention, null, self._compare(doc, attended, doc_mask)

    # -- the Ranker interface ----------------------------------------------------------------------------------

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """The attention scores: dot products of the preprocessed query and document vectors, 0 at padded cells.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, 1, Lq, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        return self._preprocess_and_attend(query_ids, doc_ids, query_mask, doc_mask)[2][0][:, None]

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """See `Ranker.flops_per_pair`: the two preprocessing layers over both texts, the attention scores and the
        attended vectors, the comparison layer, every window's convolution (one window per document position) and
        the two scoring layers."""
        config, hidden = self.config, self.config.hidden_size
        flops = 2 * 2 * (query_len + doc_len) * config.embedding_dim * hidden  # W_i and W_u
        flops += 2 * 2 * query_len * doc_len * hidden  # q' . a' and the attention-weighted sum
        if self.compare is not None:
            flops += linear_flops(self.compare, rows=doc_len)
        channels = hidden + int(config.exact_match)
        flops += sum(2 * channels * window * hidden * doc_len for window in config.windows)
        return flops + linear_flops(self.aggregate) + linear_flops(self.score)

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
        compared = self._layers(query_ids, doc_ids, query_mask, doc_mask)[3]
        matched = self._matched(query_ids, doc_ids, query_mask, doc_mask)
        return self._score(self._pool(compared, doc_mask, matched), first_stage_score)

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The attention scores, the attention each document word pays, how strongly it compares, and the score.

        Stages: "interactions" (channel, query, doc), the dot products the attention is computed from; "attention"
        (query, doc), each document word's weights over the query words; "null_attention" (doc), the weight left on
        the null position (0 without it); "comparison" (doc,), the length of each word's comparison vector t_j;
        with `exact_match`, "exact_match" (doc,), the flags the aggregation CNN reads beside the comparison.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        sim, attention, null, compared = self._layers(query_ids, doc_ids, query_mask, doc_mask)
        matched = self._matched(query_ids, doc_ids, query_mask, doc_mask)
        score = self._score(self._pool(compared, doc_mask, matched), first_stage_score)
        stages = {
            "interactions": Stage(
                sim[:, None],
                ("channel", "query", "doc"),
                "dot products of the gated word vectors",
                {"channel": ["dot"]},
            ),
            "attention": Stage(attention, ("query", "doc"), "attention of each document word over the query words"),
            "null_attention": Stage(null, ("doc",), "attention left on the null query position"),
            "comparison": Stage(compared.norm(dim=2), ("doc",), "length of each document word's comparison vector"),
        }
        if matched is not None:
            stages["exact_match"] = Stage(matched, ("doc",), "1 where the document word occurs in the query")
        return Explanation(score=score, stages=stages)
