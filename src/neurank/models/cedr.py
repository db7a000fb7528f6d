"""Contextual interaction models: classic interaction rankers reading a pretrained transformer's token vectors.

MacAvaney, Yates, Cohan, Goharian. "CEDR: Contextualized Embeddings for Document Ranking". SIGIR 2019.

Where the classic models compare word vectors, these compare the transformer's contextual token vectors: every
query token against every document token, cosine similarity, one interaction matrix per chosen hidden layer
(`layers`; the embedding layer is 0, the last layer `num_hidden_layers`), stacked as channels. A classic reader
scores the stack, and the last layer's `[CLS]` vector joins its features at the scoring layer (`use_cls`).

Two ways to get the vectors, four registered rankers:

- `cedr_cnn_joint`: the paper's set-up. `[CLS] query [SEP] document [SEP]` goes through the transformer as one
  sequence (`neurank.models.cross_encoder.join_pair`), so each text's vectors are read in the light of the other,
  and the transformer is fine-tuned with the reader. The reader is the seed CNN, MatchPyramid's convolutions and
  dynamic max pooling (`neurank.models.match_pyramid`), with one input channel per layer. Costs what the
  cross-encoder costs; a pair longer than the window loses the end of its document.
- `cedr_cnn`, `cedr_knrm`, `cedr_pacrr`: each text goes through the transformer alone (`[CLS] text [SEP]`), and the
  transformer is frozen, so a text's vectors never change: they are computed once and kept in memory, keyed by the
  text's word-piece ids (`cache`, up to `cache_max_mb`), in a store every model of the process with the same frozen
  weights and cache settings reads (`TransformerRanker.cached_rows`; a second seed's model encodes nothing the
  first one did; `clear_shared_caches` frees them), and training then costs what the classic models cost. The
  readers: MatchPyramid's CNN, K-NRM's kernel pooling (Xiong et al. 2017) per layer, and PACRR's n-gram
  convolutions and k-max pooling (Hui et al. 2017) with the layers as input channels (CEDR's PACRR reads them so
  too). The `[CLS]` feature is the product of the query's and the document's `[CLS]` vectors. A cached text costs
  tokens x layers x hidden x 4 bytes (`cache_dtype` "float16" halves it; the vectors are then rounded to float16
  whether or not they come from the cache, so a score never depends on where they came from).

Every model keeps the common signature `forward(query_ids, doc_ids, query_mask, doc_mask)`: the ids are word
pieces without special tokens (`neurank.text.WordPieceEncoder`, as for the cross-encoder), and appending PAD never
changes a score (the attention mask hides padding from the transformer, and the interaction matrices are 0 there).
The transformer comes from a local Hugging Face folder (`hf_model`) and the checkpoint keeps its configuration and
weights (`hf_config`), as for `neurank.models.cross_encoder`; with neither, a tiny random BERT, for the contract tests.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.models.cross_encoder import TINY_BERT, build_encoder, check_transformer_options, join_pair
from neurank.models.layers import (
    Explanation,
    KernelPooling,
    ModuleListOf,
    Ranker,
    Stage,
    cosine_matrix,
    dynamic_max_pool,
    first_stage_column,
    kernel_labels,
    kernel_mus_sigmas,
    linear_flops,
    pair_mask,
    resolve_masks,
    with_first_stage_score,
)
from neurank.models.match_pyramid import ACTIVATIONS, MatchPyramidConfig
from neurank.models.pacrr import PACRRConfig, k_max_pool
from neurank.models.registry import register
from neurank.text import PAD_ID

# The random transformer of a frozen model built without `hf_model` (the contract tests' model): with BERT's own
# initialisation (weights of standard deviation 0.02) a random transformer's vectors hardly depend on its input, and
# a frozen one is all a reader sees; wider weights give the readers something to read.
TINY_FROZEN_BERT = {**TINY_BERT, "initializer_range": 0.5}
CACHE_DTYPES = {"float32": torch.float32, "float16": torch.float16}

# ---------------------------------------------------------------------------------------------------------------------
# Configs


@dataclass(frozen=True)
class CEDRConfig:
    """What every contextual interaction model shares.

    Attributes:
        hf_model, hf_config, cls_id, sep_id: the transformer, as in `neurank.models.cross_encoder.CrossEncoderConfig`
            (a local Hugging Face folder; once built, its configuration; the ids of `[CLS]` and `[SEP]`).
        layers: the hidden states read, one interaction matrix each: 0 is the embedding layer's output, n the n-th
            transformer layer's; empty: all of them (CEDR's choice; 13 for BERT-base, 7 for MiniLM-L6).
        use_cls: join the `[CLS]` feature to the reader's at the scoring layer (CEDR's "+ [CLS]").
        dropout: on the features, before the scoring layer.
        use_first_stage_score: feed the (already normalised) first-stage score to the scoring layer as one feature.
    """

    hf_model: str | None = None
    hf_config: dict[str, Any] | None = None
    cls_id: int | None = None
    sep_id: int | None = None
    layers: tuple[int, ...] = ()
    use_cls: bool = True
    dropout: float = 0.1
    use_first_stage_score: bool = False

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        check_transformer_options(self)
        if any(not isinstance(layer, int) or layer < 0 for layer in self.layers):
            raise ValueError(f"layers: expected hidden-state numbers >= 0 (0 is the embeddings), got {self.layers}")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers: a layer is listed twice in {self.layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class FrozenCEDRConfig(CEDRConfig):
    """The separately encoded, frozen variants: `CEDRConfig` plus the token-vector cache.

    Attributes:
        cache: keep each text's vectors, keyed by its word-piece ids, once computed (not while exporting), in a
            store shared by the process's models with the same frozen weights and cache settings.
        cache_max_mb: stop adding to the store past this many megabytes (texts beyond it are encoded each time);
            the models sharing it hold this much together, not each. A text costs its tokens x layers x hidden x 4
            bytes (2 with float16). Choose fewer `layers` to cache a whole collection.
        cache_dtype: "float32", or "float16" for half the memory; with float16 every vector is rounded to it, cached
            or not (an ONNX export then agrees with PyTorch to about 1e-4 rather than 1e-6).
    """

    cache: bool = True
    cache_max_mb: int = 2048
    cache_dtype: str = "float32"

    def __post_init__(self):
        super().__post_init__()
        if self.cache_max_mb < 0:
            raise ValueError(f"cache_max_mb must be >= 0, got {self.cache_max_mb}")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype: expected one of {', '.join(CACHE_DTYPES)}, got {self.cache_dtype!r}")


def _pyramid_options(config: Any) -> None:
    # MatchPyramid's own config checks and normalises the CNN options (lists from YAML become tuples).
    checked = MatchPyramidConfig(
        conv_channels=config.conv_channels,
        kernel_sizes=config.kernel_sizes,
        activation=config.activation,
        pool_size=config.pool_size,
    )
    for name in ("conv_channels", "kernel_sizes", "pool_size"):
        object.__setattr__(config, name, getattr(checked, name))
    if not config.conv_channels:
        raise ValueError("conv_channels: expected at least one convolution block")


@dataclass(frozen=True)
class CEDRJointCNNConfig(CEDRConfig):
    """`cedr_cnn_joint`: `CEDRConfig` plus MatchPyramid's CNN options (see `MatchPyramidConfig`)."""

    conv_channels: tuple[int, ...] = (16, 32)
    kernel_sizes: tuple[tuple[int, int], ...] = ((3, 3), (3, 3))
    activation: str = "relu"
    pool_size: tuple[int, int] = (3, 10)

    def __post_init__(self):
        super().__post_init__()
        _pyramid_options(self)


@dataclass(frozen=True)
class CEDRCNNConfig(FrozenCEDRConfig):
    """`cedr_cnn`: `FrozenCEDRConfig` plus MatchPyramid's CNN options (see `MatchPyramidConfig`)."""

    conv_channels: tuple[int, ...] = (16, 32)
    kernel_sizes: tuple[tuple[int, int], ...] = ((3, 3), (3, 3))
    activation: str = "relu"
    pool_size: tuple[int, int] = (3, 10)

    def __post_init__(self):
        super().__post_init__()
        _pyramid_options(self)


@dataclass(frozen=True)
class CEDRKNRMConfig(FrozenCEDRConfig):
    """`cedr_knrm`: `FrozenCEDRConfig` plus K-NRM's kernels (see `neurank.models.knrm.KNRMConfig`).

    Attributes:
        n_kernels, sigma, exact_sigma: the RBF kernels (11, 0.1, 1e-3 as in K-NRM and CEDR).
        feature_scale: factor on the log soft counts (0.01, as K-NRM's code; a missed exact match counts
            log(1e-10) = -23 per query token, which would otherwise dominate the logits).
        dense_sizes: hidden layers (ReLU) between the kernel features and the scoring layer; () (the default)
            scores them linearly, as CEDR's K-NRM does.
    """

    n_kernels: int = 11
    sigma: float = 0.1
    exact_sigma: float = 1e-3
    feature_scale: float = 0.01
    dense_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dense_sizes", tuple(self.dense_sizes))
        if any(size < 1 for size in self.dense_sizes):
            raise ValueError(f"dense_sizes must be positive, got {self.dense_sizes}")
        kernel_mus_sigmas(self.n_kernels, self.sigma, self.exact_sigma)  # raises on a bad kernel count
        if self.sigma <= 0 or self.exact_sigma <= 0 or self.feature_scale <= 0:
            raise ValueError(
                f"sigma, exact_sigma and feature_scale must be positive, got {self.sigma}, {self.exact_sigma}, "
                f"{self.feature_scale}"
            )


@dataclass(frozen=True)
class CEDRPACRRConfig(FrozenCEDRConfig):
    """`cedr_pacrr`: `FrozenCEDRConfig` plus PACRR's options (see `neurank.models.pacrr.PACRRConfig`).

    Attributes:
        min_ngram, max_ngram, n_filters, k_max: the n x n convolutions and the k-max pooling.
        max_query_len: query word pieces read (the rest is cut before encoding); shorter queries get zero features.
        dense_sizes: the combination network's hidden layers, ReLU between; its last layer's output joins `[CLS]`.
    """

    min_ngram: int = 1
    max_ngram: int = 3
    n_filters: int = 32
    k_max: int = 2
    max_query_len: int = 16
    dense_sizes: tuple[int, ...] = (32, 32)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dense_sizes", tuple(self.dense_sizes))
        PACRRConfig(
            min_ngram=self.min_ngram,
            max_ngram=self.max_ngram,
            n_filters=self.n_filters,
            k_max=self.k_max,
            max_query_len=self.max_query_len,
            dense_sizes=self.dense_sizes,
        )  # PACRR's own checks


# ---------------------------------------------------------------------------------------------------------------------
# The transformer and its token vectors


def join_single(
    ids: Tensor, mask: Tensor, cls_id: int, sep_id: int, max_positions: int | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`[CLS] text [SEP]` per row, real tokens only, then PAD; the text's end is cut at the window.

    Args:
        ids: (B, L); mask: (B, L) bool.
    Returns:
        input_ids (B, L'), attention_mask (B, L') long, with L' = L + 2 or the window if shorter; place (B, L): where
        each token went (L' for a token left out); mask (B, L): the tokens that made it into the window.
    """
    batch = torch.arange(ids.shape[0], device=ids.device)
    rank = mask.long().cumsum(1) - 1  # (B, L)
    if max_positions is not None:
        mask = mask & (rank < max_positions - 2)
    text_len = mask.sum(1)  # (B,)
    length = ids.shape[1] + 2
    if max_positions is not None:
        length = torch.sym_min(length, max_positions)
    input_ids = torch.full((ids.shape[0], length + 1), PAD_ID, dtype=torch.long, device=ids.device)
    place = torch.where(mask, 1 + rank, length)  # (B, L)
    input_ids.scatter_(1, place, ids.long())
    input_ids = input_ids[:, :length]  # (B, L')
    input_ids[:, 0] = cls_id
    input_ids[batch, 1 + text_len] = sep_id
    positions = torch.arange(length, device=ids.device)[None, :]  # (1, L')
    attention_mask = (positions < (text_len + 2)[:, None]).long()  # (B, L')
    return input_ids, attention_mask, place, mask


def gather_tokens(hidden: Tensor, place: Tensor) -> Tensor:
    """Each token's vectors back in its text's layout: (B, C, L', H), (B, L) -> (B, C, L, H); a token left out of
    the window reads the last position (its mask is False, so nothing reads it)."""
    batch, channels, length, width = hidden.shape
    index = place.clamp(max=length - 1)  # (B, L)
    return hidden.gather(2, index[:, None, :, None].expand(batch, channels, place.shape[1], width))


class TransformerRanker(Ranker):
    """A ranker over a Hugging Face transformer: building it (`build_encoder`), its hidden states, and the
    in-memory cache of what a frozen transformer gives a text.

    Subclasses set `frozen` (or pass it) and implement `forward`.
    """

    frozen = False
    pretrained_part = "encoder"
    # Whether a trainable (not frozen) transformer's values are cached too while it scores in eval mode without
    # gradients: right where one text's values do not depend on the text it is paired with (the pooled cosine).
    caches_in_inference = False

    def __init__(self, vocab_size: int, config: Any, embeddings: Tensor | None, name: str, frozen: bool | None = None):
        super().__init__()
        if frozen is not None:
            self.frozen = frozen
        if embeddings is not None:
            raise ValueError(
                f"{name} reads the pretrained transformer's own word-piece embeddings; leave word vectors "
                "(embeddings.source) unset for it"
            )
        # A transformers PreTrainedModel (an nn.Module), typed Any: its config's attributes are model-specific.
        self.encoder: Any
        self.encoder, config = build_encoder(vocab_size, config, name, TINY_FROZEN_BERT if self.frozen else None)
        self.config = config
        self.vocab_size = vocab_size
        hf_config = self.encoder.config
        self.hidden_size: int = hf_config.hidden_size
        self.max_positions: int | None = getattr(hf_config, "max_position_embeddings", None)
        self.uses_segments = getattr(hf_config, "type_vocab_size", 0) >= 2
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # never read, so it would only sit in the state_dict without gradients
        if self.frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        self._weights = _WeightsSeen()  # the encoder weights' digest, computed at the first use of the cache
        self._store_key: str | None = None  # the shared store this model last read
        self.register_load_state_dict_post_hook(_forget_weights)  # loaded weights are hashed again before use

    def train(self, mode: bool = True) -> TransformerRanker:
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # no dropout: a frozen text's vectors are the same every time (and cacheable)
        elif self.caches_in_inference:
            # Trainable weights: hash them again at the next cached pass (about 50 ms for MiniLM), whatever changed
            # them in between; a fused optimiser or a write through `.data` leaves no version count to notice.
            self._weights = _WeightsSeen()
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> TransformerRanker:
        # `.to()`, `.cuda()`, `.half()` ... give the encoder other tensors: hash them again before the next cache use
        # (and let go of the old ones, which `_WeightsSeen` keeps alive).
        self._weights = _WeightsSeen()
        return super()._apply(fn, recurse)

    def cache_settings(self) -> dict[str, Any]:
        """What, besides the frozen encoder's weights, decides what the cache keeps for a text; models whose weights
        and settings agree share one store (`cache_max_mb` is among them, so a store has one budget). Subclasses add
        theirs; the default `kind` (the class) shares with no other class."""
        config = self.config
        return {
            "kind": f"{type(self).__module__}.{type(self).__qualname__}",
            "hf_config": config.hf_config,
            "attention": getattr(self.encoder.config, "_attn_implementation", None),
            "cls_id": config.cls_id,
            "sep_id": config.sep_id,
            "max_positions": self.max_positions,
            "uses_segments": self.uses_segments,
            "cache_max_mb": getattr(config, "cache_max_mb", None),
        }

    def clear_cache(self) -> None:
        """Forget every cached text: the shared store this model reads is dropped, for every model sharing it (see
        `cached_rows`), so each encodes its texts again."""
        if (self.frozen or self.caches_in_inference) and getattr(self.config, "cache", False):
            _drop_stores(self._weights_digest())
        self._store_key = None

    @property
    def cache_size(self) -> int:
        """Texts in the shared store this model reads (0 before its first use of the cache, and after its weights
        were loaded or moved until its next)."""
        store = self._store()
        return 0 if store is None else len(store.entries)

    @property
    def _cache(self) -> dict[tuple[int, ...], tuple[Tensor, ...]]:
        store = self._store()
        return {} if store is None else store.entries

    @property
    def _cache_bytes(self) -> int:
        store = self._store()
        return 0 if store is None else store.bytes

    def _store(self) -> _Store | None:
        if self._weights.digest is None or self._store_key is None:
            return None
        return _SHARED_STORES.get(self._store_key)

    def caching(self) -> bool:
        """Whether texts go through the cache now: `cache` on, not being exported, and a frozen transformer, or
        (for a class with `caches_in_inference`) one that scores in eval mode without gradients."""
        if not getattr(self.config, "cache", False):
            return False
        scoring = self.caches_in_inference and not self.training and not torch.is_grad_enabled()
        if not (self.frozen or scoring):
            return False
        return not (torch.compiler.is_exporting() or torch.compiler.is_compiling() or torch.jit.is_tracing())

    def run_encoder(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Any:
        """The transformer's output with every hidden state (`hidden_states`: the embeddings, then each layer)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": True}
        if self.uses_segments:
            inputs["token_type_ids"] = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        return self.encoder(**inputs)

    def cached_rows(
        self, ids: Tensor, mask: Tensor, compute: Callable[[Tensor, Tensor], list[tuple[Tensor, ...]]]
    ) -> list[tuple[Tensor, ...]]:
        """What `compute` gives each row, every distinct row (its real ids) computed once and kept while the cache
        has room.

        The cache is one store per process shared by every model whose frozen encoder has the same weights (a
        SHA-256 digest of its tensors, taken at the first use and again after weights are loaded, changed in place
        or moved), the same `cache_settings()`, device type and autocast state: a model built again from the same
        folder, as each seed of a results table is, reads what an earlier one computed; a random or retrained
        encoder does not. `cache_max_mb` bounds each store, so models sharing one hold that much together. Stores
        outlive their models (that is the point); `clear_shared_caches()` frees them.

        Args:
            ids: (B, L); mask: (B, L) bool, the tokens that count (the key).
            compute: (ids (M, L), mask (M, L)) -> one tuple of CPU tensors per row.
        Returns:
            one tuple per row of `ids`.
        """
        store = self._shared_store()
        keys = [tuple(row[row_mask].tolist()) for row, row_mask in zip(ids, mask, strict=True)]
        found: dict[tuple[int, ...], tuple[Tensor, ...]] = {}
        missing: dict[tuple[int, ...], int] = {}
        for i, key in enumerate(keys):
            value = store.entries.get(key)
            if value is not None:
                found[key] = value
            elif key not in missing:
                missing[key] = i
        if missing:
            rows = torch.tensor(list(missing.values()), device=ids.device)
            limit = self.config.cache_max_mb * 2**20
            computed = compute(ids[rows], mask[rows])
            with store.lock:
                for key, value in zip(missing, computed, strict=True):
                    found[key] = value
                    size = sum(t.numel() * t.element_size() for t in value)
                    if key not in store.entries and store.bytes + size <= limit:
                        store.entries[key] = value
                        store.bytes += size
        return [found[key] for key in keys]

    def _shared_store(self) -> _Store:
        digest = self._weights_digest()
        key = f"{digest}/{_autocast_state(next(self.encoder.parameters()).device.type)}"
        with _SHARED_LOCK:
            if self._store_key is not None and self._store_key.split("/")[0] != digest:
                _release(self._store_key.split("/")[0], self)  # the weights changed: the old store may be unused now
            _STORE_USERS.setdefault(digest, weakref.WeakSet()).add(self)
            store = _SHARED_STORES.setdefault(key, _Store())
            if self.frozen:
                _READ_FROZEN.add(digest)
            else:
                # A trainable model's stores go with it (a frozen model's outlive it, for the next seed to read).
                holder = self.__dict__.get("_last_digest")
                if holder is None or holder[1] != id(self):
                    holder = self.__dict__["_last_digest"] = [digest, id(self)]
                    weakref.finalize(self, _forget_trainable, holder)
                holder[0] = digest
        self._store_key = key
        return store

    def _weights_digest(self) -> str:
        # A tensor is hashed (all of MiniLM's 87 MB take about 50 ms) only when it is not the one hashed last, so a
        # buffer copied in place at every step (DistributedDataParallel broadcasts them) costs only its own bytes.
        if not self._weights.holds():
            self._weights.update(self.encoder, json.dumps(self.cache_settings(), sort_keys=True, default=str))
        assert self._weights.digest is not None
        return self._weights.digest


class _Store:
    """One shared cache: each text's values by its real ids, the bytes they take, a lock for adding."""

    def __init__(self) -> None:
        self.entries: dict[tuple[int, ...], tuple[Tensor, ...]] = {}
        self.bytes = 0
        self.lock = threading.Lock()


class _WeightsSeen:
    """The digest of an encoder's tensors and of the cache settings, and what it was taken of: every submodule,
    parameter and buffer where it sat, and each tensor's storage (kept alive here, so no new tensor can take its
    address), version and own digest. The digest holds while all of them are still there and unchanged in place;
    checking that costs tens of microseconds, where walking the modules would cost hundreds. A copy or a pickle
    starts empty, so the copy hashes its own tensors."""

    def __init__(self) -> None:
        self.digest: str | None = None
        self.places: list[tuple[dict[str, Any], str, Any]] = []  # (the dict it sits in, its name there, it)
        # name -> (the tensor, a view of its storage, its version, its own digest)
        self.tensors: dict[str, tuple[Tensor, Tensor, int | None, bytes]] = {}

    def holds(self) -> bool:
        if self.digest is None or not all(where.get(name) is value for where, name, value in self.places):
            return False
        return all(_unchanged(tensor, seen, version) for tensor, seen, version, _ in self.tensors.values())

    def update(self, encoder: nn.Module, settings: str) -> None:
        places = []
        for module in encoder.modules():
            for where in (module._modules, module._parameters, module._buffers):
                places += [(where, name, value) for name, value in where.items()]
        tensors = {}
        digest = hashlib.sha256(settings.encode())
        for name, tensor in [*encoder.named_parameters(), *encoder.named_buffers()]:
            entry = self.tensors.get(name)
            if entry is None or entry[0] is not tensor or not _unchanged(tensor, entry[1], entry[2]):
                part = hashlib.sha256(f"{tensor.dtype} {tuple(tensor.shape)} {tensor.device.type}".encode())
                version = _version(tensor)
                part.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
                entry = (tensor, tensor.detach(), version, part.digest())
            tensors[name] = entry
            digest.update(name.encode() + b"\0" + entry[3])
        self.places, self.tensors, self.digest = places, tensors, digest.hexdigest()

    def __deepcopy__(self, memo: dict) -> _WeightsSeen:
        return _WeightsSeen()

    def __reduce__(self) -> tuple:
        return (_WeightsSeen, ())


def _version(tensor: Tensor) -> int | None:
    # An inference tensor has no version counter (and changes in place only under inference mode).
    return None if tensor.is_inference() else tensor._version


def _unchanged(tensor: Tensor, seen: Tensor, version: int | None) -> bool:
    return tensor.data_ptr() == seen.data_ptr() and tensor.dtype == seen.dtype and _version(tensor) == version


# The shared stores, by "weights digest/autocast state", and the live models reading each digest's stores.
_SHARED_STORES: dict[str, _Store] = {}
_STORE_USERS: dict[str, weakref.WeakSet] = {}
_READ_FROZEN: set[str] = set()  # the digests a frozen model has read: their stores outlive a trainable reader
_SHARED_LOCK = threading.RLock()


def clear_shared_caches() -> int:
    """Drop every shared store of frozen text vectors (`TransformerRanker.cached_rows`): their memory is freed and
    every model encodes its texts again when next asked.

    Returns:
        the bytes the stores held.
    """
    with _SHARED_LOCK:
        stores = list(_SHARED_STORES.values())
        _SHARED_STORES.clear()
        _STORE_USERS.clear()
        _READ_FROZEN.clear()
    freed = 0
    for store in stores:
        with store.lock:
            freed += store.bytes
            store.entries.clear()
            store.bytes = 0
    return freed


def _drop_stores(digest: str) -> None:
    with _SHARED_LOCK:
        for key in [key for key in _SHARED_STORES if key.split("/")[0] == digest]:
            store = _SHARED_STORES.pop(key)
            with store.lock:
                store.entries.clear()
                store.bytes = 0


def _release(digest: str, model: TransformerRanker) -> None:
    # A model whose weights changed leaves its old digest; the old stores go when no live model reads them (a model
    # whose frozen encoder is trained anyway would otherwise leave one store per step behind), except that a
    # trainable model never drops what a frozen one has read: a fine-tuned bi-encoder starts from the weights of the
    # frozen zero-shot model, whose store is kept for that model's next seed.
    users = _STORE_USERS.get(digest)
    if users is not None:
        users.discard(model)
        if not users:
            del _STORE_USERS[digest]
            if model.frozen or digest not in _READ_FROZEN:
                _READ_FROZEN.discard(digest)
                _drop_stores(digest)


def _forget_trainable(holder: list) -> None:
    # A trainable model was collected: its last weights' stores go unless a live model or a frozen one reads them.
    digest = holder[0]
    with _SHARED_LOCK:
        users = _STORE_USERS.get(digest)
        if users is not None and any(True for _ in users):
            return
        _STORE_USERS.pop(digest, None)
        if digest not in _READ_FROZEN:
            _drop_stores(digest)


def _autocast_state(device_type: str) -> str:
    try:
        enabled, dtype = torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except TypeError:  # torch < 2.4 has one function per device type
        cpu = device_type == "cpu"
        enabled = torch.is_autocast_cpu_enabled() if cpu else torch.is_autocast_enabled()
        dtype = torch.get_autocast_cpu_dtype() if cpu else torch.get_autocast_gpu_dtype()
    return f"autocast {dtype}" if enabled else "no autocast"


def _forget_weights(module: TransformerRanker, incompatible_keys: Any) -> None:
    module._weights = _WeightsSeen()


def _check_layers(model: TransformerRanker, layers: tuple[int, ...]) -> tuple[int, ...]:
    states = model.encoder.config.num_hidden_layers + 1
    if any(layer >= states for layer in layers):
        raise ValueError(
            f"layers: the transformer has hidden states 0..{states - 1} (0 is the embeddings), got {list(layers)}"
        )
    return layers or tuple(range(states))


class ContextualRanker(TransformerRanker):
    """Token vectors -> interaction matrices (one per layer) -> a reader's features (+ [CLS]) -> a linear score.

    Subclasses name their config class, registered name and reader class (`config_class`, `model_name`,
    `reader_class`: built here over the chosen layers, with `flops` and its feature count `reader_features`) and say
    whether the texts are encoded jointly (`joint`, fine-tuned) or separately (frozen, cacheable).
    """

    joint = False
    reader: PyramidReader | KernelReader | PACRRReader
    reader_features: int

    config_class: type
    model_name: str
    reader_class: type[PyramidReader | KernelReader | PACRRReader]

    def __init__(self, vocab_size: int, config: Any = None, embeddings: Tensor | None = None):
        """Args: vocab_size: ids the text encoder gives (`WordPieceEncoder.vocab_size`); config: the subclass's
        config, None for its defaults (a tiny random BERT); embeddings: must be None."""
        super().__init__(vocab_size, config or self.config_class(), embeddings, self.model_name)
        self.layers = _check_layers(self, self.config.layers)
        self.dropout = nn.Dropout(self.config.dropout)
        self.reader = self.reader_class(len(self.layers), self.config)
        self.reader_features = self.reader.features
        self.build_score()

    def build_score(self) -> None:
        """The scoring layer, once the reader is built."""
        config = self.config
        width = self.reader_features + self.hidden_size * int(config.use_cls) + int(config.use_first_stage_score)
        self.score = nn.Linear(width, 1)

    def cut_query(self, query_ids: Tensor, query_mask: Tensor) -> tuple[Tensor, Tensor]:
        """The query the model reads (PACRR reads the first `max_query_len` word pieces)."""
        return query_ids, query_mask

    def cache_settings(self) -> dict[str, Any]:
        """`TransformerRanker.cache_settings` and what decides the cached token vectors: the frozen models share a
        store whatever their reader, when their layers and `cache_dtype` agree."""
        settings = super().cache_settings()
        return {**settings, "kind": "token vectors and [CLS]", "layers": self.layers, "dtype": self.config.cache_dtype}

    # --- token vectors ---------------------------------------------------------------------------------------------

    def token_vectors(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The chosen layers' vectors of every query and document token, and the `[CLS]` feature.

        Returns:
            query_vectors (B, C, Lq, H), doc_vectors (B, C, Ld, H), cls (B, H), and the query and document masks of
            the tokens that made it into the window, (B, Lq), (B, Ld).
        """
        if self.joint:
            return self._joint_vectors(query_ids, doc_ids, query_mask, doc_mask)
        query_vectors, query_cls, query_mask = self.text_vectors(query_ids, query_mask)
        doc_vectors, doc_cls, doc_mask = self.text_vectors(doc_ids, doc_mask)
        return query_vectors, doc_vectors, query_cls * doc_cls, query_mask, doc_mask

    def _joint_vectors(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        cls_id, sep_id = self.config.cls_id, self.config.sep_id
        joined = join_pair(query_ids, doc_ids, query_mask, doc_mask, cls_id, sep_id, self.max_positions)
        output = self.run_encoder(joined["input_ids"], joined["attention_mask"], joined["token_type_ids"])
        hidden = torch.stack([output.hidden_states[layer] for layer in self.layers], dim=1)  # (B, C, L, H)
        query_vectors = gather_tokens(hidden, joined["query_place"])  # (B, C, Lq, H)
        doc_vectors = gather_tokens(hidden, joined["doc_place"])  # (B, C, Ld, H)
        cls = output.last_hidden_state[:, 0]  # (B, H)
        return query_vectors, doc_vectors, cls, joined["query_mask"], joined["doc_mask"]

    def text_vectors(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each text encoded alone by the frozen transformer (from the cache where it was seen before).

        Args:
            ids: (B, L); mask: (B, L) bool.
        Returns:
            vectors (B, C, L, H), 0 where the mask (returned) is False; cls (B, H); mask (B, L), the tokens inside
            the window. Rounded to `cache_dtype`, as the cache keeps them.
        """
        if self.max_positions is not None:
            mask = mask & (mask.long().cumsum(1) <= self.max_positions - 2)
        if not self.caching():
            vectors, cls = self._encode_texts(ids, mask)
            return vectors * mask[:, None, :, None], cls, mask

        dtype = CACHE_DTYPES[self.config.cache_dtype]

        def compute(rows_ids: Tensor, rows_mask: Tensor) -> list[tuple[Tensor, ...]]:
            vectors, cls = self._encode_texts(rows_ids, rows_mask)
            vectors, cls = vectors.to(dtype).cpu(), cls.to(dtype).cpu()
            return [(v[:, m.cpu()], c) for v, m, c in zip(vectors, rows_mask, cls, strict=True)]

        rows = self.cached_rows(ids, mask, compute)
        batch, length = ids.shape
        vectors = torch.zeros(batch, len(self.layers), length, self.hidden_size)  # (B, C, L, H)
        for row_vectors, row_mask, (tokens, _) in zip(vectors, mask.cpu(), rows, strict=True):
            row_vectors[:, row_mask] = tokens.float()  # (C, n, H) into the row's real positions
        cls = torch.stack([row_cls for _, row_cls in rows]).float()  # (B, H)
        return vectors.to(ids.device), cls.to(ids.device), mask

    def _encode_texts(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        cls_id, sep_id = self.config.cls_id, self.config.sep_id
        with torch.no_grad():
            input_ids, attention_mask, place, _ = join_single(ids, mask, cls_id, sep_id, self.max_positions)
            output = self.run_encoder(input_ids, attention_mask)
            hidden = torch.stack([output.hidden_states[layer] for layer in self.layers], dim=1)  # (B, C, L', H)
            vectors = gather_tokens(hidden, place)  # (B, C, L, H)
            cls = output.last_hidden_state[:, 0]  # (B, H)
        dtype = CACHE_DTYPES[self.config.cache_dtype]
        if dtype != torch.float32:  # what the cache keeps, so a score does not depend on whether the text was cached
            vectors, cls = vectors.to(dtype).float(), cls.to(dtype).float()
        return vectors, cls

    # --- interactions and scores -----------------------------------------------------------------------------------

    def _interactions(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        query_vectors, doc_vectors, cls, query_mask, doc_mask = self.token_vectors(
            query_ids, doc_ids, query_mask, doc_mask
        )
        batch, channels, query_len, width = query_vectors.shape
        doc_len = doc_vectors.shape[2]
        sim_matrix = cosine_matrix(
            query_vectors.reshape(batch * channels, query_len, width),
            doc_vectors.reshape(batch * channels, doc_len, width),
            query_mask.repeat_interleave(channels, dim=0),
            doc_mask.repeat_interleave(channels, dim=0),
        ).view(batch, channels, query_len, doc_len)  # (B, C, Lq, Ld)
        return sim_matrix, cls, query_mask, doc_mask

    def interaction_matrix(
        self, query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None = None, doc_mask: Tensor | None = None
    ) -> Tensor:
        """Cosine similarity of the query's and the document's token vectors, one channel per layer, 0 at padding
        (and at tokens past the window).

        Args:
            query_ids: (B, Lq); doc_ids: (B, Ld); masks (B, Lq), (B, Ld), derived from PAD when None.
        Returns:
            (B, C, Lq, Ld).
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        return self._interactions(query_ids, doc_ids, query_mask, doc_mask)[0]

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
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        query_ids, query_mask = self.cut_query(query_ids, query_mask)
        sim_matrix, cls, query_mask, doc_mask = self._interactions(query_ids, doc_ids, query_mask, doc_mask)
        features = self.reader(sim_matrix, query_mask, doc_mask)  # (B, F)
        return self._score(features, cls, first_stage_score)

    def _score(self, features: Tensor, cls: Tensor, first_stage_score: Tensor | None) -> Tensor:
        if self.config.use_cls:
            features = torch.cat([features, cls], dim=1)  # (B, F + H)
        features = with_first_stage_score(self.dropout(features), first_stage_score, self.config)
        return self.score(features).squeeze(1)  # (B,)

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The cosine matrices of every layer read, the reader's stages, and the parts of the score.

        The query is cut as `forward` cuts it (PACRR: its first `max_query_len` word pieces), so every stage shows what
        the model read. Stages: "interactions" (channel, query, doc), one cosine matrix per layer read (channel labels
        "layer 0 (embeddings)", "layer 1", ...), 0 at tokens past the transformer's window; the reader's own (see
        `PyramidReader.explain`, `KernelReader.explain`, `PACRRReader.explain`); "contributions" (part,), what the
        scoring layer adds from the reader's features, from `[CLS]` (with `use_cls`), from the first-stage score (with
        `use_first_stage_score`) and its bias: they sum to the score.
        """
        query_mask, doc_mask = resolve_masks(query_ids, doc_ids, query_mask, doc_mask)
        query_ids, query_mask = self.cut_query(query_ids, query_mask)
        sim_matrix, cls, query_mask, doc_mask = self._interactions(query_ids, doc_ids, query_mask, doc_mask)
        layers = self._layer_labels()
        features, reader_stages = self.reader.explain(sim_matrix, query_mask, doc_mask, layers)  # (B, F)
        score = self._score(features, cls, first_stage_score)
        read = "query and document read together" if self.joint else "each text read alone by the frozen transformer"
        parts, part_names = self._score_parts(features, cls, first_stage_score)
        stages = {
            "interactions": Stage(
                sim_matrix,
                ("channel", "query", "doc"),
                f"cosine of the contextual word-piece vectors ({read})",
                {"channel": layers},
            ),
            **reader_stages,
            "contributions": Stage(
                parts,
                ("part",),
                "the score's parts: scoring weights x what they read, then the bias",
                {"part": part_names},
            ),
        }
        return Explanation(score, stages)

    def _layer_labels(self) -> list[str]:
        # Which hidden state each channel is: 0 is the embedding layer's output, the last is the transformer's output.
        last = self.encoder.config.num_hidden_layers
        names = {0: " (embeddings)", last: " (last)"}
        return [f"layer {layer}{names.get(layer, '')}" for layer in self.layers]

    def _score_parts(self, features: Tensor, cls: Tensor, first_stage_score: Tensor | None) -> tuple[Tensor, list[str]]:
        # The scoring layer's input in `_score`'s order, each block times its weights: (B, parts), summing to the score
        # in eval mode (dropout, which `_score` applies, is then the identity).
        blocks = [("reader", features)]
        if self.config.use_cls:
            blocks.append(("[CLS]", cls))
        if self.config.use_first_stage_score:
            blocks.append(("first stage", first_stage_column(first_stage_score, self.config, features)))
        weight = self.score.weight[0]  # (F [+ H] [+ 1],)
        parts, start = [], 0
        for _, block in blocks:
            parts.append((block * weight[start : start + block.shape[1]]).sum(1))  # (B,)
            start += block.shape[1]
        parts.append(self.score.bias.expand(features.shape[0]))
        return torch.stack(parts, dim=1), [name for name, _ in blocks] + ["bias"]  # (B, parts)

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """The transformer's linear layers (as `CrossEncoder.flops_per_pair` counts them: over the joined pair, or
        over each text alone with an empty cache), the cosine matrices, the reader and the scoring layer."""
        query_len = self.cut_query(torch.zeros(1, query_len), torch.ones(1, query_len, dtype=torch.bool))[0].shape[1]
        if self.joint:
            total = query_len + doc_len + 3
            if self.max_positions is not None:
                total = min(total, self.max_positions)
                query_len = min(query_len, self.max_positions - 4)
                doc_len = min(doc_len, self.max_positions - 3 - query_len)
            encoder = self._encoder_flops(total)
        else:
            if self.max_positions is not None:
                query_len = min(query_len, self.max_positions - 2)
                doc_len = min(doc_len, self.max_positions - 2)
            encoder = self._encoder_flops(query_len + 2) + self._encoder_flops(doc_len + 2)
        cosine = 2 * query_len * doc_len * self.hidden_size * len(self.layers)
        return encoder + cosine + self.reader.flops(query_len, doc_len) + linear_flops(self.score)

    def _encoder_flops(self, tokens: int) -> int:
        hf_config = self.encoder.config
        hidden, inner = hf_config.hidden_size, hf_config.intermediate_size
        return hf_config.num_hidden_layers * 2 * tokens * hidden * (4 * hidden + 2 * inner)


# ---------------------------------------------------------------------------------------------------------------------
# The readers: (B, C, Lq, Ld) interaction matrices, masks -> (B, F) features


class PyramidReader(nn.Module):
    """MatchPyramid's reader (Pang et al. 2016) over C input channels: conv blocks ('same' padding, re-masked after
    each block, as `MatchPyramid.plain_forward`), then dynamic max pooling of each pair's true region to a grid."""

    def __init__(self, in_channels: int, config: Any):
        super().__init__()
        self.convs: ModuleListOf[nn.Conv2d] = ModuleListOf()
        for out_channels, kernel_size in zip(config.conv_channels, config.kernel_sizes, strict=True):
            self.convs.append(nn.Conv2d(in_channels, out_channels, kernel_size, padding="same"))
            in_channels = out_channels
        self.activation = ACTIVATIONS[config.activation]()
        self.pool_size = config.pool_size
        self.features = in_channels * config.pool_size[0] * config.pool_size[1]

    def forward(self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        cell_mask = pair_mask(query_mask, doc_mask)[:, None].to(sim_matrix.dtype)  # (B, 1, Lq, Ld)
        feature_map = sim_matrix
        for conv in self.convs:
            feature_map = self.activation(conv(feature_map)) * cell_mask  # (B, C_out, Lq, Ld)
        pooled = dynamic_max_pool(feature_map, query_mask.sum(1), doc_mask.sum(1), self.pool_size)  # (B, C, pq, pd)
        return pooled.flatten(1)  # (B, C * pq * pd)

    def explain(
        self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor, channels: list[str]
    ) -> tuple[Tensor, dict[str, Stage]]:
        """`forward`'s features and its stages: "conv1", ... (channel, query, doc), each block's feature maps;
        "pooled" (channel, query_bin, doc_bin), the grid the features flatten. `channels` names the input channels."""
        cell_mask = pair_mask(query_mask, doc_mask)[:, None].to(sim_matrix.dtype)  # (B, 1, Lq, Ld)
        feature_map = sim_matrix
        stages = {}
        for depth, conv in enumerate(self.convs, start=1):
            feature_map = self.activation(conv(feature_map)) * cell_mask  # (B, C_out, Lq, Ld)
            kq, kd = conv.kernel_size
            stages[f"conv{depth}"] = Stage(
                feature_map,
                ("channel", "query", "doc"),
                f"conv block {depth}: {conv.out_channels} feature maps ({kq}x{kd} kernels, "
                f"{type(self.activation).__name__.lower()})",
            )
        pooled = dynamic_max_pool(feature_map, query_mask.sum(1), doc_mask.sum(1), self.pool_size)  # (B, C, pq, pd)
        pq, pd = self.pool_size
        stages["pooled"] = Stage(
            pooled, ("channel", "query_bin", "doc_bin"), f"dynamic max pooling to the {pq}x{pd} grid the features are"
        )
        return pooled.flatten(1), stages

    def flops(self, query_len: int, doc_len: int) -> int:
        cells = query_len * doc_len
        return sum(
            2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] * cells
            for conv in self.convs
        )


class KernelReader(nn.Module):
    """K-NRM's kernel pooling (Xiong et al. 2017) of each channel: C x K log soft-match counts, then `dense_sizes`."""

    def __init__(self, in_channels: int, config: Any):
        super().__init__()
        self.kernels = KernelPooling(config.n_kernels, config.sigma, config.exact_sigma)
        self.feature_scale = config.feature_scale
        width = in_channels * config.n_kernels
        layers: list[nn.Module] = []
        for size in config.dense_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.dense = nn.Sequential(*layers)
        self.features = width

    def forward(self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        batch, channels, query_len, doc_len = sim_matrix.shape
        pooled = self.kernels(
            sim_matrix.reshape(batch * channels, query_len, doc_len),
            query_mask.repeat_interleave(channels, dim=0),
            doc_mask.repeat_interleave(channels, dim=0),
        )  # (B * C, K)
        return self.dense(pooled.view(batch, -1) * self.feature_scale)  # (B, F)

    def explain(
        self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor, channels: list[str]
    ) -> tuple[Tensor, dict[str, Stage]]:
        """`forward`'s features and its stages: "soft_counts" (channel, query, kernel), each query word piece's soft
        match count per kernel in each layer; "kernel_features" (layer, kernel), the scaled log counts summed over the
        query; "dense" (feature,), the dense layers' output, when there are any. `channels` names the layers."""
        batch, n_channels, query_len, doc_len = sim_matrix.shape
        flat_sim = sim_matrix.reshape(batch * n_channels, query_len, doc_len)  # (B * C, Lq, Ld)
        flat_query_mask = query_mask.repeat_interleave(n_channels, dim=0)
        flat_doc_mask = doc_mask.repeat_interleave(n_channels, dim=0)
        soft_counts = self.kernels.soft_counts(flat_sim, flat_query_mask, flat_doc_mask)  # (B * C, Lq, K)
        pooled = self.kernels(flat_sim, flat_query_mask, flat_doc_mask).view(batch, n_channels, -1)  # (B, C, K)
        pooled = pooled * self.feature_scale
        features = self.dense(pooled.flatten(1))  # (B, F)
        kernels = kernel_labels(self.kernels.mus)
        stages = {
            "soft_counts": Stage(
                soft_counts.view(batch, n_channels, query_len, -1),  # (B, C, Lq, K)
                ("channel", "query", "kernel"),
                "soft match count of each query word piece per kernel (kernel centre on the axis)",
                {"channel": channels, "kernel": kernels},
            ),
            "kernel_features": Stage(
                pooled,
                ("layer", "kernel"),
                f"kernel features per layer: {self.feature_scale:g} x sum over query word pieces of log count",
                {"layer": channels, "kernel": kernels},
            ),
        }
        if len(self.dense):
            stages["dense"] = Stage(features, ("feature",), "the dense layers' output, what the scoring layer reads")
        return features, stages

    def flops(self, query_len: int, doc_len: int) -> int:
        return linear_flops(self.dense)  # kernel pooling is element-wise work, which the count leaves out


class PACRRReader(nn.Module):
    """PACRR's reader (Hui et al. 2017) with the layers as input channels, as CEDR's PACRR: n x n convolutions of
    sizes min_ngram..max_ngram, the strongest filter per cell, the k_max strongest document positions per query
    token, the first `max_query_len` tokens' features (zeros for a shorter query) through the dense network."""

    def __init__(self, in_channels: int, config: Any):
        super().__init__()
        self.ngram_sizes = tuple(range(config.min_ngram, config.max_ngram + 1))
        self.convs: ModuleListOf[nn.Conv2d] = ModuleListOf(
            nn.Conv2d(in_channels, config.n_filters, n) for n in self.ngram_sizes
        )
        self.k_max = config.k_max
        self.max_query_len = config.max_query_len
        width = config.max_query_len * len(self.ngram_sizes) * config.k_max
        layers: list[nn.Module] = []
        for size in config.dense_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.dense = nn.Sequential(*layers)
        self.features = width

    def forward(self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        signals = []
        for n, conv in zip(self.ngram_sizes, self.convs, strict=True):
            padded = F.pad(sim_matrix, (0, n - 1, 0, n - 1))  # (B, C, Lq + n - 1, Ld + n - 1)
            strongest = torch.relu(conv(padded)).amax(dim=1)  # (B, Lq, Ld)
            signals.append(k_max_pool(strongest, doc_mask, self.k_max))  # (B, Lq, k)
        features = torch.cat(signals, dim=2) * query_mask[:, :, None]  # (B, Lq, S * k)
        features = F.pad(features, (0, 0, 0, self.max_query_len - features.shape[1]))  # (B, lq, S * k)
        return self.dense(features.flatten(1))  # (B, F)

    def explain(
        self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor, channels: list[str]
    ) -> tuple[Tensor, dict[str, Stage]]:
        """`forward`'s features and its stages: "ngram_signals" (channel, query, doc), the strongest filter over the
        layers at each cell per n-gram size, 0 past the true lengths; "term_features" (query, feature), the k-max
        pooled signals of each query word piece; "dense" (feature,), the dense network's output, when it has layers."""
        strongest_maps, signals = [], []
        for n, conv in zip(self.ngram_sizes, self.convs, strict=True):
            padded = F.pad(sim_matrix, (0, n - 1, 0, n - 1))  # (B, C, Lq + n - 1, Ld + n - 1)
            strongest = torch.relu(conv(padded)).amax(dim=1)  # (B, Lq, Ld)
            strongest_maps.append(strongest)
            signals.append(k_max_pool(strongest, doc_mask, self.k_max))  # (B, Lq, k)
        term_features = torch.cat(signals, dim=2) * query_mask[:, :, None]  # (B, Lq, S * k)
        padded_features = F.pad(term_features, (0, 0, 0, self.max_query_len - term_features.shape[1]))  # (B, lq, S*k)
        features = self.dense(padded_features.flatten(1))  # (B, F)
        ngram_maps = torch.stack(strongest_maps, dim=1) * pair_mask(query_mask, doc_mask)[:, None]  # (B, S, Lq, Ld)
        stages = {
            "ngram_signals": Stage(
                ngram_maps,
                ("channel", "query", "doc"),
                f"strongest filter per cell over the {len(channels)} layers, each n-gram size (n-gram starts there)",
                {"channel": [f"{n}-gram" for n in self.ngram_sizes]},
            ),
            "term_features": Stage(
                term_features,
                ("query", "feature"),
                "features of each query word piece: the top-k signals per n-gram size",
                {"feature": [f"{n}-gram #{rank}" for n in self.ngram_sizes for rank in range(1, self.k_max + 1)]},
            ),
        }
        if len(self.dense):
            stages["dense"] = Stage(features, ("feature",), "the dense network's output, what the scoring layer reads")
        return features, stages

    def flops(self, query_len: int, doc_len: int) -> int:
        cells = query_len * doc_len
        convs = sum(
            2 * n * n * conv.in_channels * conv.out_channels * cells
            for n, conv in zip(self.ngram_sizes, self.convs, strict=True)
        )
        return convs + linear_flops(self.dense)


# ---------------------------------------------------------------------------------------------------------------------
# The registered rankers


@register("cedr_cnn_joint", CEDRJointCNNConfig)
class CEDRJointCNN(ContextualRanker):
    """`[CLS] query [SEP] document [SEP]` through the transformer (fine-tuned), MatchPyramid's CNN over the
    per-layer cosine matrices, the `[CLS]` vector joined at the scoring layer (CEDR's set-up with the seed's CNN).

    Args:
        vocab_size: ids the text encoder gives (`WordPieceEncoder.vocab_size`).
        config: a `CEDRJointCNNConfig`; None for the defaults (a tiny random BERT).
        embeddings: must be None.
    """

    joint = True
    config_class = CEDRJointCNNConfig
    model_name = "cedr_cnn_joint"
    reader_class = PyramidReader


@register("cedr_cnn", CEDRCNNConfig)
class CEDRCNN(ContextualRanker):
    """Each text through the frozen transformer alone (cached), MatchPyramid's CNN over the per-layer cosine
    matrices, the product of the two `[CLS]` vectors joined at the scoring layer. Arguments as `CEDRJointCNN`."""

    frozen = True
    config_class = CEDRCNNConfig
    model_name = "cedr_cnn"
    reader_class = PyramidReader


@register("cedr_knrm", CEDRKNRMConfig)
class CEDRKNRM(ContextualRanker):
    """Each text through the frozen transformer alone (cached), K-NRM's kernel pooling of each layer's cosine
    matrix, the product of the two `[CLS]` vectors joined at the scoring layer. Arguments as `CEDRJointCNN`."""

    frozen = True
    config_class = CEDRKNRMConfig
    model_name = "cedr_knrm"
    reader_class = KernelReader


@register("cedr_pacrr", CEDRPACRRConfig)
class CEDRPACRR(ContextualRanker):
    """Each text through the frozen transformer alone (cached), PACRR over the per-layer cosine matrices (layers
    as channels), the product of the two `[CLS]` vectors joined at the scoring layer. Arguments as `CEDRJointCNN`."""

    frozen = True
    config_class = CEDRPACRRConfig
    model_name = "cedr_pacrr"
    reader_class = PACRRReader

    def cut_query(self, query_ids: Tensor, query_mask: Tensor) -> tuple[Tensor, Tensor]:
        # Cut before encoding, so a cut query reads as the same word pieces whatever followed them.
        lq = self.config.max_query_len
        return query_ids[:, :lq], query_mask[:, :lq]
