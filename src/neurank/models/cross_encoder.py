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
loses the end of its document, unless the document is split into passages:

Documents longer than the window: `passages` "maxp" splits each document into overlapping passages of `passage_len`
word pieces, one every `passage_stride`, scores every passage joined with the query and keeps the best (MaxP), and
"firstp" scores the first passage only (FirstP); Dai & Callan, "Deeper Text Understanding for IR with Contextual
Neural Language Modeling", SIGIR 2019. The split is tensor code inside the model (`split_passages`: the real tokens
moved to the front of each row, then `unfold`), so the signature, the masks and padding invariance hold, and it
exports: the number of passages follows from the padded length alone, and a passage that starts past the part of
the document the previous passage already reached is left out of the max, so PAD never adds one.

The transformer comes from `transformers` (the `neurank[transformers]` extra), read from a local Hugging Face
folder (`hf_model`); nothing is downloaded. A built model's config holds the folder's whole configuration
(`hf_config`) and the special ids, so a checkpoint (config and state_dict) rebuilds it without the folder. With
neither, the default is a tiny random BERT over the given ids plus two of its own for `[CLS]` and `[SEP]`: what the
registry's contract test builds, and a transformer trained from scratch on neurank's word ids, if wanted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.config import ConfigError
from neurank.models.layers import Ranker, linear_flops, resolve_masks, with_first_stage_score
from neurank.models.registry import register
from neurank.text import PAD_ID, load_hf_tokenizer, special_token_ids

TRANSFORMERS_HINT = 'pip install "neurank[transformers]"'
ConfigT = TypeVar("ConfigT")  # a config dataclass with the transformer options (hf_model, hf_config, cls_id, sep_id)

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


def _transformers(model_name: str = "cross_encoder") -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError(f"the {model_name} model needs transformers: {TRANSFORMERS_HINT}") from None
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
        passages: "none" (one pair per document, its end cut where the window ends), "maxp" (the best score over
            overlapping passages) or "firstp" (the first passage's score).
        passage_len: word pieces of the document per passage ("maxp", "firstp"); each passage joined with its query
            must fit the window (what does not fit is cut, as with "none").
        passage_stride: word pieces from one passage's start to the next's, 1..passage_len (half: passages overlap
            by half).
    """

    hf_model: str | None = None
    hf_config: dict[str, Any] | None = None
    cls_id: int | None = None
    sep_id: int | None = None
    pooler: bool = True
    dropout: float = 0.1
    use_first_stage_score: bool = False
    passages: str = "none"
    passage_len: int = 128
    passage_stride: int = 64

    def __post_init__(self):
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_transformer_options(self)
        check_passage_options(self.passages, self.passage_len, self.passage_stride)


PASSAGE_MODES = ("none", "maxp", "firstp")


def check_transformer_options(config: Any) -> None:
    """The transformer options every model over a Hugging Face encoder shares (`hf_config`, `cls_id`, `sep_id`).

    Raises:
        ConfigError: `hf_config` without a model_type, or without the special ids that go with it.
    """
    if config.hf_config is not None and "model_type" not in config.hf_config:
        raise ConfigError("hf_config: expected a Hugging Face configuration dict with a model_type")
    if config.hf_config is not None and (config.cls_id is None or config.sep_id is None):
        raise ConfigError("hf_config needs cls_id and sep_id (the ids of [CLS] and [SEP] in its vocabulary)")


def check_passage_options(passages: str, passage_len: int, passage_stride: int) -> None:
    """Raises ConfigError naming the option when `passages`, `passage_len` or `passage_stride` is out of range."""
    if passages not in PASSAGE_MODES:
        raise ConfigError(f"passages: expected one of {', '.join(PASSAGE_MODES)}, got {passages!r}")
    if passage_len < 1:
        raise ConfigError(f"passage_len: expected a positive number of word pieces, got {passage_len}")
    if not 1 <= passage_stride <= passage_len:
        raise ConfigError(
            f"passage_stride: expected 1..passage_len ({passage_len}) word pieces, got {passage_stride}; a longer "
            "stride would skip part of the document"
        )


def split_passages(doc_ids: Tensor, doc_mask: Tensor, passage_len: int, stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """Overlapping passages of each document's real tokens: passage k holds tokens [k * stride, k * stride + len).

    The real tokens are first moved to the front of their row (a mask may leave holes), so a passage's tokens do
    not depend on the padding. The number of passages P is set by the padded length Ld alone (enough for a document
    that fills it); a passage is kept (`passage_valid`) when it is the first or when the one before it did not reach
    the document's end, so PAD never adds a passage and each kept passage starts inside the document.

    Args:
        doc_ids: (B, Ld); doc_mask: (B, Ld) bool; passage_len, stride: in tokens, 1 <= stride <= passage_len.
    Returns:
        passage_ids: (B, P, passage_len), PAD past a document's end; passage_mask: (B, P, passage_len) bool;
        passage_valid: (B, P) bool, True for the first passage of every row.
    """
    batch, padded_len = doc_ids.shape
    doc_rank = doc_mask.long().cumsum(1) - 1  # (B, Ld) place of each real token among its row's
    doc_len = doc_mask.sum(1)  # (B,)
    # The real tokens to the front; the others to a spare last column, dropped after.
    place = torch.where(doc_mask, doc_rank, padded_len)  # (B, Ld)
    packed = torch.full((batch, padded_len + 1), PAD_ID, dtype=doc_ids.dtype, device=doc_ids.device)
    packed = packed.scatter(1, place, doc_ids)[:, :padded_len]  # (B, Ld)
    # Enough passages to reach the end of a document that fills the padded length; sym_max keeps the count a
    # symbolic expression of Ld under torch.export instead of a branch frozen at the example's length.
    n_passages = 1 + (torch.sym_max(padded_len - passage_len, 0) + stride - 1) // stride
    total = (n_passages - 1) * stride + passage_len
    packed = F.pad(packed, (0, total - padded_len), value=PAD_ID)  # (B, total)
    passage_ids = packed.unfold(1, passage_len, stride)  # (B, P, passage_len)
    positions = torch.arange(total, device=doc_ids.device)  # (total,)
    packed_mask = positions[None, :] < doc_len[:, None]  # (B, total)
    passage_mask = packed_mask.unfold(1, passage_len, stride)  # (B, P, passage_len)
    starts = torch.arange(passage_ids.shape[1], device=doc_ids.device) * stride  # (P,)
    passage_valid = (starts[None, :] == 0) | (starts[None, :] - stride + passage_len < doc_len[:, None])  # (B, P)
    return passage_ids, passage_mask, passage_valid


def join_pair(
    query_ids: Tensor,
    doc_ids: Tensor,
    query_mask: Tensor,
    doc_mask: Tensor,
    cls_id: int,
    sep_id: int,
    max_positions: int | None,
) -> dict[str, Tensor]:
    """`[CLS] query [SEP] document [SEP]` per row, real tokens only, then PAD; the document's end is cut where the
    pair would pass the window (`max_positions`; None: no limit).

    Args:
        query_ids: (B, Lq); doc_ids: (B, Ld); query_mask: (B, Lq) bool; doc_mask: (B, Ld) bool.
    Returns:
        "input_ids", "token_type_ids" (0 up to the first [SEP], 1 after it), "attention_mask": each (B, L) long,
        L = Lq + Ld + 3, or the window if shorter; "query_place" (B, Lq), "doc_place" (B, Ld): where each token
        went in the joined sequence (L for a token left out); "query_mask" (B, Lq), "doc_mask" (B, Ld): the tokens
        that made it into the window.
    """
    batch = torch.arange(query_ids.shape[0], device=query_ids.device)
    query_rank = query_mask.long().cumsum(1) - 1  # (B, Lq) place of each real token among its row's
    doc_rank = doc_mask.long().cumsum(1) - 1  # (B, Ld)
    if max_positions is not None:  # keep 3 special tokens and at least one document token in the window
        query_mask = query_mask & (query_rank < max_positions - 4)
    query_len = query_mask.sum(1)  # (B,)
    if max_positions is not None:
        doc_mask = doc_mask & (doc_rank < (max_positions - 3 - query_len)[:, None])
    doc_len = doc_mask.sum(1)  # (B,)
    total = query_len + doc_len + 3  # (B,)
    # A length known from the shapes alone (no data-dependent size: exportable, no device sync); the columns
    # past a row's end are PAD under the attention mask.
    length = query_ids.shape[1] + doc_ids.shape[1] + 3
    if max_positions is not None:
        length = torch.sym_min(length, max_positions)
    # Real tokens are scattered to their places; the others go to a spare last column, dropped after.
    input_ids = torch.full((query_ids.shape[0], length + 1), PAD_ID, dtype=torch.long, device=query_ids.device)
    query_place = torch.where(query_mask, 1 + query_rank, length)  # (B, Lq)
    doc_place = torch.where(doc_mask, 2 + query_len[:, None] + doc_rank, length)  # (B, Ld)
    input_ids.scatter_(1, query_place, query_ids.long())
    input_ids.scatter_(1, doc_place, doc_ids.long())
    input_ids = input_ids[:, :length]  # (B, L)
    input_ids[:, 0] = cls_id
    input_ids[batch, 1 + query_len] = sep_id
    input_ids[batch, 2 + query_len + doc_len] = sep_id
    positions = torch.arange(length, device=query_ids.device)[None, :]  # (1, L)
    attention_mask = positions < total[:, None]  # (B, L)
    token_type_ids = (positions >= (2 + query_len)[:, None]) & attention_mask  # (B, L)
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids.long(),
        "attention_mask": attention_mask.long(),
        "query_place": query_place,
        "doc_place": doc_place,
        "query_mask": query_mask,
        "doc_mask": doc_mask,
    }


def _config_dict(hf_config: Any) -> dict[str, Any]:
    # The settings that differ from the defaults, JSON-safe (what config.json holds), without the folder's path.
    values = hf_config.to_diff_dict()
    values.pop("_name_or_path", None)
    values.pop("transformers_version", None)  # the version that wrote it, not a setting
    values["model_type"] = hf_config.model_type
    return values


def build_encoder(
    vocab_size: int, config: ConfigT, model_name: str = "cross_encoder", tiny: dict[str, Any] | None = None
) -> tuple[Any, ConfigT]:
    """The transformer and the config completed with what was read (`hf_config`, the special ids).

    Args:
        vocab_size: ids the text encoder gives; checked against the transformer's vocabulary.
        config: a frozen dataclass with `hf_model`, `hf_config`, `cls_id` and `sep_id` (see `CrossEncoderConfig`).
        model_name: for messages.
        tiny: the configuration of the random transformer built when the config names none; None: `TINY_BERT`.
    Raises:
        ImportError: no transformers. FileNotFoundError: `hf_model` is not a model folder (no config.json, no
        weights, or no tokenizer when `cls_id` / `sep_id` are not given). ValueError: ids the transformer's
        vocabulary does not hold.
    """
    encoder, config = _build_encoder(vocab_size, config, model_name, TINY_BERT if tiny is None else tiny)
    hf_config = encoder.config
    cls_id, sep_id = config.cls_id, config.sep_id  # type: ignore[attr-defined]
    if vocab_size > hf_config.vocab_size or max(cls_id, sep_id) >= hf_config.vocab_size:
        raise ValueError(
            f"{model_name}: the text encoder gives {vocab_size} ids and [CLS], [SEP] are {cls_id}, "
            f"{sep_id}, but the transformer's vocabulary has {hf_config.vocab_size} entries; use the "
            "tokenizer that came with the model (neurank.text.WordPieceEncoder)"
        )
    return encoder, config


def _weight_files(transformers: Any) -> tuple[str, ...]:
    # What `from_pretrained` reads from a folder, one of them at least: the weights or a sharded model's index.
    utils = transformers.utils
    return (utils.SAFE_WEIGHTS_NAME, utils.WEIGHTS_NAME, utils.SAFE_WEIGHTS_INDEX_NAME, utils.WEIGHTS_INDEX_NAME)


def _folder_tokenizer(folder: Path) -> Any:
    try:
        return load_hf_tokenizer(folder)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"hf_model: {error}") from None


@contextlib.contextmanager
def _no_progress_bars(transformers: Any) -> Iterator[None]:
    """transformers' progress bars (its "Loading weights" bar on every `from_pretrained`) off while neurank loads a
    folder, then as they were: a user's own settings are left alone."""
    hf_logging = transformers.utils.logging
    if not hf_logging.is_progress_bar_enabled():
        yield
        return
    # disable/enable_progress_bar also switch huggingface_hub's bars, and enabling resets its per-group settings:
    # those are put back as they were.
    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")
    hub_states = getattr(hub_tqdm, "progress_bar_states", None)
    if not isinstance(hub_states, dict):  # a huggingface_hub without that table: nothing to put back
        hub_states = {}
    saved = dict(hub_states)
    with warnings.catch_warnings():  # HF_HUB_DISABLE_PROGRESS_BARS=0 makes huggingface_hub warn; transformers' off
        warnings.simplefilter("ignore")
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_logging.enable_progress_bar()
        hub_states.clear()
        hub_states.update(saved)


def _build_encoder(vocab_size: int, config: Any, model_name: str, tiny: dict[str, Any]) -> tuple[Any, Any]:
    transformers = _transformers(model_name)
    if config.hf_config is not None:
        values = dict(config.hf_config)
        hf_config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
        encoder = transformers.AutoModel.from_config(hf_config)
    elif config.hf_model is not None:
        folder = Path(config.hf_model)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json; hf_model must be a local Hugging Face model folder")
        if not any((folder / name).is_file() for name in _weight_files(transformers)):
            raise FileNotFoundError(
                f"{folder}: no weights; hf_model must be a local Hugging Face model folder holding "
                "model.safetensors or pytorch_model.bin (or a sharded model's index, such as "
                "model.safetensors.index.json, beside its shards)"
            )
        if config.cls_id is None or config.sep_id is None:  # the tokenizer before the weights: it costs less
            ids = special_token_ids(_folder_tokenizer(folder), str(folder))
            config = dataclasses.replace(
                config,
                cls_id=ids["cls"] if config.cls_id is None else config.cls_id,
                sep_id=ids["sep"] if config.sep_id is None else config.sep_id,
            )
        with _no_progress_bars(transformers):
            encoder = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        hf_config = encoder.config
    else:
        hf_config = transformers.AutoConfig.for_model(**{**tiny, "vocab_size": vocab_size + 2})
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
    pretrained_part = "encoder"

    def __init__(self, vocab_size: int, config: CrossEncoderConfig | None = None, embeddings: Tensor | None = None):
        super().__init__()
        if embeddings is not None:
            raise ValueError(
                "cross_encoder reads the pretrained transformer's own word-piece embeddings; leave word vectors "
                "(embeddings.source) unset for it"
            )
        # A transformers PreTrainedModel (an nn.Module), typed Any: its config's attributes are model-specific.
        self.encoder: Any
        built: CrossEncoderConfig
        self.encoder, built = build_encoder(vocab_size, config or CrossEncoderConfig())
        self.config = config = built
        self.vocab_size = vocab_size
        hf_config = self.encoder.config
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
        cls_id, sep_id = self.config.cls_id, self.config.sep_id
        assert cls_id is not None and sep_id is not None  # filled in when the model was built
        joined = join_pair(query_ids, doc_ids, query_mask, doc_mask, cls_id, sep_id, self.max_positions)
        return joined["input_ids"], joined["token_type_ids"], joined["attention_mask"]

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
        if self.config.passages == "none":
            return self.score_pairs(query_ids, doc_ids, query_mask, doc_mask, first_stage_score)
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        passage_ids, passage_mask, passage_valid = split_passages(
            doc_ids, doc_mask, self.config.passage_len, self.config.passage_stride
        )  # (B, P, Lp), (B, P, Lp), (B, P)
        if self.config.passages == "firstp":
            passage_ids, passage_mask, passage_valid = passage_ids[:, :1], passage_mask[:, :1], passage_valid[:, :1]
        batch, n_passages, passage_len = passage_ids.shape

        def per_passage(x: Tensor) -> Tensor:  # (B, ...) -> (B * P, ...): every passage with its document's query
            return x[:, None].expand(batch, n_passages, *x.shape[1:]).reshape(batch * n_passages, *x.shape[1:])

        scores = self.score_pairs(
            per_passage(query_ids),
            passage_ids.reshape(batch * n_passages, passage_len),
            per_passage(query_mask),
            passage_mask.reshape(batch * n_passages, passage_len),
            None if first_stage_score is None else per_passage(first_stage_score),
        ).view(batch, n_passages)  # (B, P)
        scores = scores.masked_fill(~passage_valid, torch.finfo(scores.dtype).min)
        return scores.amax(dim=1)  # (B,)

    def score_pairs(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Tensor:
        """One score per (query, document) row, the document cut at the window (no passages): (B,) logits."""
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
        `num_hidden_layers`). With passages, each passage is one such pair (MaxP: as many as the document has).

        The two attention products (query x key, weights x value: 4 n^2 hidden per layer) are left out, as
        `torch.utils.flop_counter` leaves out PyTorch's fused CPU attention kernel; with BERT-base's shapes they
        add about 3 % at n = 128 and 11 % at n = 512.
        """
        config = self.config
        n_passages = 1
        if config.passages != "none":  # each passage is one pair; MaxP scores those its document has
            if config.passages == "maxp" and doc_len > config.passage_len:
                n_passages += -(-(doc_len - config.passage_len) // config.passage_stride)
            doc_len = min(doc_len, config.passage_len)
        hf_config = self.encoder.config
        n = query_len + doc_len + 3
        if self.max_positions is not None:
            n = min(n, self.max_positions)
        hidden, inner = hf_config.hidden_size, hf_config.intermediate_size
        per_layer = 2 * n * hidden * (4 * hidden + 2 * inner)
        pooler = linear_flops(self.encoder.pooler) if config.pooler else 0
        return n_passages * (hf_config.num_hidden_layers * per_layer + pooler + linear_flops(self.score))
