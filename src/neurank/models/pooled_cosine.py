"""Zero-shot scoring with a sentence encoder: the cosine of the query's and the document's pooled token vectors.

Reimers, Gurevych. "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks". EMNLP 2019.

Each text goes through the transformer alone (`[CLS] text [SEP]`), its token vectors (special tokens included, as
sentence-transformers pools them) are averaged under the attention mask (`pooling` "mean"; "cls" takes the `[CLS]`
vector), and the score is `scale * cosine(query, document) + bias`. As built (`bias` 0, `scale` positive), the
ranking is the encoder's own: a sentence encoder such as all-MiniLM-L6-v2 (`hf_model`) scores a collection with
no training at all, a baseline row for the results table (`neurank.inference.Reranker(model, encoder)` re-ranks with
it like with any trained model). Training adjusts `scale` and `bias` (calibrated probabilities) and, unless
`freeze`, fine-tunes the transformer as a bi-encoder. A frozen transformer's pooled vectors are computed once per
text and cached (`cache`), keyed by the text's word-piece ids, in a store shared with the process's other models of
the same frozen weights and settings. A fine-tuned one caches the same way while it scores without gradients in eval
mode (dev passes, re-ranking), where each distinct text is encoded once per set of weights: a document that is
a candidate for many queries costs one pass, which is what makes a bi-encoder cheap to score.

Documents longer than the window: `passages` "maxp" encodes each document's overlapping passages alone and keeps
the best passage's score, "firstp" the first passage's (as `neurank.models.cross_encoder` splits them, with
`split_passages`; Dai & Callan, SIGIR 2019, for MaxP and FirstP).

The signature is every ranker's: word-piece ids without special tokens (`neurank.text.WordPieceEncoder`), masks,
and PAD never changes a score. The transformer is read and stored as for `neurank.models.cross_encoder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.config import ConfigError
from neurank.models.cedr import TransformerRanker, join_single
from neurank.models.cross_encoder import check_passage_options, check_transformer_options, split_passages
from neurank.models.layers import first_stage_column, resolve_masks
from neurank.models.registry import register

POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class PooledCosineConfig:
    """Zero-shot (pooled cosine) settings.

    Attributes:
        hf_model, hf_config, cls_id, sep_id: the transformer, as in `neurank.models.cross_encoder.CrossEncoderConfig`.
        pooling: "mean" (the average of the token vectors, `[CLS]` and `[SEP]` included: sentence-transformers'
            mean pooling) or "cls" (the `[CLS]` vector).
        freeze: keep the transformer fixed when trained (only `scale`, `bias` learn); its vectors are then cached.
        cache: keep each text's pooled vector once computed (not while exporting), in a store shared by the
            process's models with the same weights and settings (`TransformerRanker.cached_rows`): always when
            `freeze`, and without it while the model scores in eval mode without gradients (a dev pass, a
            re-ranking; training steps never read the store, and changed weights get a store of their own).
        cache_max_mb: stop adding to that store past this many megabytes, for all its models together (a text
            costs hidden x 4 bytes).
        use_first_stage_score: add the (already normalised) first-stage score, times a learned weight (0 as built).
        scale: the learnable scale's starting value. It never changes the ranking of an untrained model; for
            fine-tuning under a softmax over a query's candidates it sets the temperature (cosines lie in [-1, 1],
            so at 1 every candidate's probability stays near uniform; sentence-transformers' contrastive losses
            use 20).
        passages: "none" (each document one text, its end cut at the window), "maxp" (the document's score is its
            best passage's) or "firstp" (its first passage's); each passage is encoded alone, as a document is.
        passage_len: word pieces per passage ("maxp", "firstp"); at most the window less 2 (`[CLS]`, `[SEP]`).
        passage_stride: word pieces from one passage's start to the next's, 1..passage_len.
    """

    hf_model: str | None = None
    hf_config: dict[str, Any] | None = None
    cls_id: int | None = None
    sep_id: int | None = None
    pooling: str = "mean"
    freeze: bool = False
    cache: bool = True
    cache_max_mb: int = 512
    use_first_stage_score: bool = False
    scale: float = 1.0
    passages: str = "none"
    passage_len: int = 128
    passage_stride: int = 64

    def __post_init__(self):
        check_transformer_options(self)
        check_passage_options(self.passages, self.passage_len, self.passage_stride)
        if not self.scale > 0:
            raise ValueError(f"scale: expected a positive number, got {self.scale}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.cache_max_mb < 0:
            raise ValueError(f"cache_max_mb must be >= 0, got {self.cache_max_mb}")


@register("pooled_cosine", PooledCosineConfig)
class PooledCosine(TransformerRanker):
    """`scale * cosine(pooled(query), pooled(document)) + bias`, each text encoded alone.

    Args:
        vocab_size: ids the text encoder gives (`WordPieceEncoder.vocab_size`).
        config: a `PooledCosineConfig`; None for the defaults (a tiny random BERT).
        embeddings: must be None.
    """

    has_interaction_matrix = False
    caches_in_inference = True  # a fine-tuned bi-encoder's vectors are cached while it scores (see the module)

    def __init__(self, vocab_size: int, config: PooledCosineConfig | None = None, embeddings: Tensor | None = None):
        config = config or PooledCosineConfig()
        super().__init__(vocab_size, config, embeddings, "pooled_cosine", frozen=config.freeze)
        window = self.max_positions
        if config.passages != "none" and window is not None and config.passage_len > window - 2:
            raise ConfigError(
                f"passage_len: {config.passage_len} word pieces do not fit the transformer's window of {window} "
                f"positions with [CLS] and [SEP]; expected at most {window - 2}"
            )
        # Built as the identity on the cosine, so an untrained model ranks as the encoder does.
        self.scale = nn.Parameter(torch.tensor(float(config.scale)))
        self.bias = nn.Parameter(torch.zeros(()))
        self.first_stage_weight = nn.Parameter(torch.zeros(1)) if config.use_first_stage_score else None

    def cache_settings(self) -> dict[str, Any]:
        """`TransformerRanker.cache_settings` and the pooling: the pooled vector is what the cache keeps."""
        return {**super().cache_settings(), "kind": "pooled vector", "pooling": self.config.pooling}

    def text_vectors(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Each text's pooled vector: (B, L) ids and bool mask -> (B, H)."""
        if self.max_positions is not None:
            mask = mask & (mask.long().cumsum(1) <= self.max_positions - 2)
        if not self.caching():
            return self._pool(ids, mask)

        def compute(rows_ids: Tensor, rows_mask: Tensor) -> list[tuple[Tensor, ...]]:
            return [(vector,) for vector in self._pool(rows_ids, rows_mask).cpu()]

        rows = self.cached_rows(ids, mask, compute)
        return torch.stack([vector for (vector,) in rows]).to(ids.device)  # (B, H)

    def _pool(self, ids: Tensor, mask: Tensor) -> Tensor:
        cls_id, sep_id = self.config.cls_id, self.config.sep_id
        input_ids, attention_mask, _, _ = join_single(ids, mask, cls_id, sep_id, self.max_positions)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.run_encoder(input_ids, attention_mask).last_hidden_state  # (B, L', H)
        if self.config.pooling == "cls":
            return hidden[:, 0]  # (B, H)
        weights = attention_mask.to(hidden.dtype)[:, :, None]  # (B, L', 1)
        return (hidden * weights).sum(1) / weights.sum(1)  # (B, H)

    def forward(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Tensor:
        """Score each pair.

        Args:
            query_ids: (B, Lq) word-piece ids, no special tokens; doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived
                from PAD when None; first_stage_score: (B,), read when `use_first_stage_score`.
        Returns:
            (B,) logits: scale * cosine + bias (+ weight * first-stage score).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        cosine, valid = self.passage_cosines(query_ids, doc_ids, query_mask, doc_mask)  # (B, P), (B, P)
        scores = self.scale * cosine + self.bias  # (B, P)
        scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min).amax(dim=1)  # (B,) the best passage's
        if self.first_stage_weight is not None:
            first_stage = first_stage_column(first_stage_score, self.config, scores)[:, 0]  # (B,)
            scores = scores + self.first_stage_weight * first_stage
        return scores

    def passage_cosines(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The cosine between the query's pooled vector and each passage's (the whole document when `passages` is
        "none"; the first passage for "firstp").

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); query_mask, doc_mask: bool masks of the same shapes.
        Returns:
            cosines (B, P) and which passages the document has (B, P) bool, the first always True; P is 1 unless
            `passages` is "maxp".
        """
        query_vector = F.normalize(self.text_vectors(query_ids, query_mask), dim=-1)  # (B, H)
        config = self.config
        if config.passages == "none":
            doc_vector = F.normalize(self.text_vectors(doc_ids, doc_mask), dim=-1)  # (B, H)
            cosine = (query_vector * doc_vector).sum(-1, keepdim=True)  # (B, 1)
            return cosine, torch.ones_like(cosine, dtype=torch.bool)
        passage_ids, passage_mask, valid = split_passages(doc_ids, doc_mask, config.passage_len, config.passage_stride)
        if config.passages == "firstp":
            passage_ids, passage_mask, valid = passage_ids[:, :1], passage_mask[:, :1], valid[:, :1]
        batch, n_passages, passage_len = passage_ids.shape
        flat_ids = passage_ids.reshape(batch * n_passages, passage_len)
        flat_mask = passage_mask.reshape(batch * n_passages, passage_len)
        if torch.compiler.is_exporting() or torch.compiler.is_compiling() or torch.jit.is_tracing():
            vectors = self.text_vectors(flat_ids, flat_mask)  # (B * P, H): every passage, a static graph
        else:  # only the passages the documents have (short documents have one)
            rows = valid.reshape(-1).nonzero().squeeze(1)  # (V,)
            found = self.text_vectors(flat_ids[rows], flat_mask[rows])  # (V, H)
            vectors = found.new_zeros(batch * n_passages, found.shape[1]).index_copy(0, rows, found)  # (B * P, H)
        passage_vectors = F.normalize(vectors, dim=-1).view(batch, n_passages, -1)  # (B, P, H)
        return (query_vector[:, None, :] * passage_vectors).sum(-1), valid  # (B, P), (B, P)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """The transformer's linear layers over each text alone (`[CLS] text [SEP]`, cut at the window), as
        `CrossEncoder.flops_per_pair` counts them; pooling and the cosine are element-wise work, left out."""
        hf_config = self.encoder.config
        hidden, inner = hf_config.hidden_size, hf_config.intermediate_size
        config = self.config
        texts = [query_len, doc_len]
        if config.passages != "none":  # each passage is a text of its own; MaxP encodes those its document has
            n_passages = 1
            if config.passages == "maxp" and doc_len > config.passage_len:
                n_passages += -(-(doc_len - config.passage_len) // config.passage_stride)
            texts = [query_len] + [min(doc_len, config.passage_len)] * n_passages
        total = 0
        for length in texts:
            tokens = length + 2 if self.max_positions is None else min(length + 2, self.max_positions)
            total += hf_config.num_hidden_layers * 2 * tokens * hidden * (4 * hidden + 2 * inner)
        return total
