"""The cross-encoder: a pretrained transformer (BERT and its kin) reading the query and the document as one sequence.

Nogueira, Cho. "Passage Re-ranking with BERT". arXiv:1901.04085, 2019.

The query and the document are joined as `[CLS] query [SEP] document [SEP]` (segment 0 up to the first `[SEP]`,
segment 1 after it), the transformer reads the pair, and a linear layer scores the first token's output: BERT's
pooler (a tanh layer over `[CLS]`, what the paper's classifier reads) or the `[CLS]` vector itself. The paper
fine-tunes BERT on MS MARCO with pointwise cross-entropy; here neurank's own loop trains it with any of its losses.

Every ranker's signature is kept: the model receives the word-piece ids of the query and of the document apart
(`neurank.text.WordPieceEncoder` encodes them without special tokens) and joins them itself, row by row without a
Python loop. Appending PAD never changes a score: the joined sequence holds only the real tokens, followed by
padding that the attention mask hides. A pair longer than the transformer's window (`max_position_embeddings`)
loses the end of its document (FirstP; MaxP over passages is for later).

The transformer comes from `transformers` (the `neurank[transformers]` extra), read from a local Hugging Face
folder (`hf_model`); nothing is downloaded. A built model's config holds the folder's whole configuration
(`hf_config`) and the special ids, so a checkpoint (config and state_dict) rebuilds it without the folder. With
neither, the default is a tiny random BERT over the given ids plus two of its own for `[CLS]` and `[SEP]`: what the
registry's contract test builds, and a transformer trained from scratch on neurank's word ids, if wanted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from neurank.config import ConfigError
from neurank.models.layers import Ranker, linear_flops, resolve_masks, with_first_stage_score
from neurank.models.registry import register
from neurank.text import PAD_ID, load_hf_tokenizer, special_token_ids

TRANSFORMERS_HINT = 'pip install "neurank[transformers]"'

# The default transformer, when neither `hf_model` nor `hf_config` is given: small enough for the contract test.
TINY_BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": PAD_ID,
}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError(f"the cross_encoder model needs transformers: {TRANSFORMERS_HINT}") from None
    return transformers


@dataclass(frozen=True)
class CrossEncoderConfig:
    """Cross-encoder settings.

    Attributes:
        hf_model: a local Hugging Face model folder (config.json, the weights, tokenizer.json): the pretrained
            transformer to fine-tune. Read only when `hf_config` is None; once built, `hf_config` and the special
            ids hold what was read, and the folder stays here as the record of where the weights came from.
        hf_config: the transformer's Hugging Face configuration as a dict (with `model_type`); given it, the model
            is built from it with random weights (a checkpoint's state_dict then fills them) and no folder is read.
            With neither, a tiny random BERT (`TINY_BERT`) over the given ids plus two ids for `[CLS]` and `[SEP]`.
        cls_id, sep_id: the ids of `[CLS]` and `[SEP]`; None: the folder's tokenizer's (or the tiny BERT's own).
        pooler: score the transformer's pooler output (BERT's tanh layer over `[CLS]`, as the paper does); False
            scores the `[CLS]` vector itself and drops the pooler.
        dropout: on the pooled vector, before the scoring layer (BERT's classifier uses 0.1).
        use_first_stage_score: feed the (already normalised) first-stage score to the scoring layer as one feature.
    """

    hf_model: str | None = None
    hf_config: dict[str, Any] | None = None
    cls_id: int | None = None
    sep_id: int | None = None
    pooler: bool = True
    dropout: float = 0.1
    use_first_stage_score: bool = False

    def __post_init__(self):
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.hf_config is not None and "model_type" not in self.hf_config:
            raise ConfigError("hf_config: expected a Hugging Face configuration dict with a model_type")
        if self.hf_config is not None and (self.cls_id is None or self.sep_id is None):
            raise ConfigError("hf_config needs cls_id and sep_id (the ids of [CLS] and [SEP] in its vocabulary)")


def _config_dict(hf_config: Any) -> dict[str, Any]:
    # The settings that differ from the defaults, JSON-safe (what config.json holds), without the folder's path.
    values = hf_config.to_diff_dict()
    values.pop("_name_or_path", None)
    values.pop("transformers_version", None)  # the version that wrote it, not a setting
    values["model_type"] = hf_config.model_type
    return values


def _build_encoder(vocab_size: int, config: CrossEncoderConfig) -> tuple[Any, CrossEncoderConfig]:
    """The transformer and the config completed with what was read (`hf_config`, the special ids)."""
    transformers = _transformers()
    if config.hf_config is not None:
        values = dict(config.hf_config)
        hf_config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
        encoder = transformers.AutoModel.from_config(hf_config)
    elif config.hf_model is not None:
        folder = Path(config.hf_model)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json; hf_model must be a local Hugging Face model folder")
        encoder = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        hf_config = encoder.config
        if config.cls_id is None or config.sep_id is None:
            ids = special_token_ids(load_hf_tokenizer(folder), str(folder))
            config = dataclasses.replace(
                config,
                cls_id=ids["cls"] if config.cls_id is None else config.cls_id,
                sep_id=ids["sep"] if config.sep_id is None else config.sep_id,
            )
    else:
        hf_config = transformers.AutoConfig.for_model(**{**TINY_BERT, "vocab_size": vocab_size + 2})
        encoder = transformers.AutoModel.from_config(hf_config)
        config = dataclasses.replace(
            config,
            cls_id=vocab_size if config.cls_id is None else config.cls_id,
            sep_id=vocab_size + 1 if config.sep_id is None else config.sep_id,
        )
    config = dataclasses.replace(config, hf_config=_config_dict(hf_config))
    return encoder, config


@register("cross_encoder", CrossEncoderConfig)
class CrossEncoder(Ranker):
    """A transformer over `[CLS] query [SEP] document [SEP]` with a linear score on the first token.

    Args:
        vocab_size: ids the text encoder gives (`WordPieceEncoder.vocab_size`): at most the transformer's own
            vocabulary, which must also hold `cls_id` and `sep_id`.
        config: a `CrossEncoderConfig`; None for the defaults (a tiny random BERT).
        embeddings: must be None: the transformer brings its own word-piece embeddings, word vectors do not apply.
    Raises:
        ValueError: word vectors given, or ids the transformer's vocabulary does not hold. ImportError: no
        transformers. FileNotFoundError: `hf_model` is not a model folder.
    """

    has_interaction_matrix = False

    def __init__(self, vocab_size: int, config: CrossEncoderConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        if embeddings is not None:
            raise ValueError(
                "cross_encoder reads the pretrained transformer's own word-piece embeddings; leave word vectors "
                "(embeddings.source) unset for it"
            )
        # A transformers PreTrainedModel (an nn.Module), typed Any: its config's attributes are model-specific.
        self.encoder: Any
        self.encoder, config = _build_encoder(vocab_size, config or CrossEncoderConfig())
        self.config = config
        self.vocab_size = vocab_size
        hf_config = self.encoder.config
        assert config.cls_id is not None and config.sep_id is not None  # _build_encoder fills them
        if vocab_size > hf_config.vocab_size or max(config.cls_id, config.sep_id) >= hf_config.vocab_size:
            raise ValueError(
                f"cross_encoder: the text encoder gives {vocab_size} ids and [CLS], [SEP] are {config.cls_id}, "
                f"{config.sep_id}, but the transformer's vocabulary has {hf_config.vocab_size} entries; use the "
                "tokenizer that came with the model (neurank.text.WordPieceEncoder)"
            )
        self.max_positions: int | None = getattr(hf_config, "max_position_embeddings", None)
        self.uses_segments = getattr(hf_config, "type_vocab_size", 0) >= 2
        if config.pooler:
            if getattr(self.encoder, "pooler", None) is None:
                raise ConfigError(f"{hf_config.model_type} has no pooler; set pooler: false to read [CLS] itself")
        elif getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # unused, so it would only sit in the state_dict without gradients
        self.dropout = nn.Dropout(config.dropout)
        self.score = nn.Linear(hf_config.hidden_size + int(config.use_first_stage_score), 1)

    def join(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`[CLS] query [SEP] document [SEP]` per row, real tokens only, then PAD; the document's end is cut where
        the pair would pass the transformer's window.

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            input_ids, token_type_ids (0 up to the first [SEP], 1 after it), attention_mask: each (B, L) long,
            L = Lq + Ld + 3, or the window if shorter.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        batch = torch.arange(query_ids.shape[0], device=query_ids.device)
        query_rank = query_mask.long().cumsum(1) - 1  # (B, Lq) place of each real token among its row's
        doc_rank = doc_mask.long().cumsum(1) - 1  # (B, Ld)
        if self.max_positions is not None:  # keep 3 special tokens and at least one document token in the window
            query_mask = query_mask & (query_rank < self.max_positions - 4)
        query_len = query_mask.sum(1)  # (B,)
        if self.max_positions is not None:
            doc_mask = doc_mask & (doc_rank < (self.max_positions - 3 - query_len)[:, None])
        doc_len = doc_mask.sum(1)  # (B,)
        total = query_len + doc_len + 3  # (B,)
        # A length known from the shapes alone (no data-dependent size: exportable, no device sync); the columns
        # past a row's end are PAD under the attention mask.
        length = query_ids.shape[1] + doc_ids.shape[1] + 3
        if self.max_positions is not None:
            length = min(length, self.max_positions)
        # Real tokens are scattered to their places; the others go to a spare last column, dropped after.
        input_ids = torch.full((len(batch), length + 1), PAD_ID, dtype=torch.long, device=query_ids.device)
        query_place = torch.where(query_mask, 1 + query_rank, length)  # (B, Lq)
        doc_place = torch.where(doc_mask, 2 + query_len[:, None] + doc_rank, length)  # (B, Ld)
        input_ids.scatter_(1, query_place, query_ids.long())
        input_ids.scatter_(1, doc_place, doc_ids.long())
        input_ids = input_ids[:, :length]  # (B, L)
        cls_id, sep_id = self.config.cls_id, self.config.sep_id
        assert cls_id is not None and sep_id is not None  # filled in when the model was built
        input_ids[:, 0] = cls_id
        input_ids[batch, 1 + query_len] = sep_id
        input_ids[batch, 2 + query_len + doc_len] = sep_id
        positions = torch.arange(length, device=query_ids.device)[None, :]  # (1, L)
        attention_mask = positions < total[:, None]  # (B, L)
        token_type_ids = (positions >= (2 + query_len)[:, None]) & attention_mask  # (B, L)
        return input_ids, token_type_ids.long(), attention_mask.long()

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
            (B,) logits.
        """
        input_ids, token_type_ids, attention_mask = self.join(query_ids, doc_ids, query_mask, doc_mask)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.uses_segments:
            inputs["token_type_ids"] = token_type_ids
        output = self.encoder(**inputs)
        pooled = output.pooler_output if self.config.pooler else output.last_hidden_state[:, 0]  # (B, H)
        features = with_first_stage_score(self.dropout(pooled), first_stage_score, self.config)  # (B, H [+ 1])
        return self.score(features).squeeze(-1)  # (B,)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """The linear layers of a BERT-style encoder over the joined pair (n = query_len + doc_len + 3 tokens): per
        layer the four attention projections and the two feed-forward layers, then the pooler and the scoring
        layer on one row. Assumes BERT's layer shapes (its config's `hidden_size`, `intermediate_size`,
        `num_hidden_layers`).

        The two attention products (query x key, weights x value: 4 n^2 hidden per layer) are left out, as
        `torch.utils.flop_counter` leaves out PyTorch's fused CPU attention kernel; with BERT-base's shapes they
        add about 3 % at n = 128 and 11 % at n = 512.
        """
        hf_config = self.encoder.config
        n = query_len + doc_len + 3
        if self.max_positions is not None:
            n = min(n, self.max_positions)
        hidden, inner = hf_config.hidden_size, hf_config.intermediate_size
        per_layer = 2 * n * hidden * (4 * hidden + 2 * inner)
        pooler = linear_flops(self.encoder.pooler) if self.config.pooler else 0
        return hf_config.num_hidden_layers * per_layer + pooler + linear_flops(self.score)
