"""Shared pieces of the rankers: the `Ranker` base class and what `Ranker.explain` returns, the word embedding layer,
masks, masked interaction matrices, dynamic max pooling and RBF kernel pooling.

Every function here takes right-padded batches (PAD id 0 at the end of each row, as the collate function builds
them) and is written so that appending PAD tokens never changes a result: padded positions of an interaction matrix
are 0, and pooling looks only at each pair's true lengths. No Python loop runs over the batch, and no output size
depends on data, so the models export (ONNX, torch.export) with dynamic batch and sequence lengths.

Unknown words match nothing (issue 22). Every out-of-vocabulary word encodes to the one id UNK, so two different
unknown words have the same vector: cosine 1, the strongest match there is, and two unrelated texts in a script the
vocabulary lacks (Arabic, Chinese, nonsense) outscored a genuine English match. With a model config's
`unknown_match=False` (the default of every model config) a cell of a query-by-document interaction whose query
token or document token is UNK is 0, in every interaction: cosine and dot product of word vectors, n-gram vectors,
contextual states and attention scores. UNK against a known word is 0 as well, not only UNK against UNK: the UNK
vector is shared by every unknown word, so its similarity to a known word describes that one vector (random in an
untrained row), not the word it stands for; 0 is the similarity of unrelated words. The token is still a real
position (lengths, masks, pooling and document length count it), so an unknown word reads as a word related to
nothing, not as padding. Exact match never counted UNK as a match, so it is the same under both settings. The zeroing
multiplies by a mask built from the ids (`match_masks`), with no Python branch on data, so it exports.
`unknown_match=True` is the behaviour before issue 22, which checkpoints saved before it keep (`saved_model_config`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.text import PAD_ID, UNK_ID

INTERACTIONS = ("cosine", "dot", "exact")

#: Options added to the model configs after checkpoints were first written, with the value that gives the behaviour
#: of a checkpoint saved before the option existed (its saved config lacks the key). New configs get the field's
#: default instead. `saved_model_config` applies them.
SAVED_CONFIG_DEFAULTS: dict[str, Any] = {"unknown_match": True}

_M = TypeVar("_M", bound=nn.Module)

if TYPE_CHECKING:

    class ModuleListOf(nn.ModuleList, Generic[_M]):
        """An `nn.ModuleList` whose items are all `_M`, as type checkers see it; at run time it is `nn.ModuleList`.

        Iterating over or indexing a plain `nn.ModuleList` gives `nn.Module`, whose attributes a type checker can only
        type as `Tensor | Module`. Annotate a list that holds one kind of layer as `ModuleListOf[nn.Conv1d]` (and
        build it with `ModuleListOf(...)`, which is `nn.ModuleList` itself), and its items keep their type. Being the
        same class at run time, it changes nothing in a model: not its state_dict, repr, export or pickling. Only
        write `ModuleListOf[...]` in annotations (every module here has `from __future__ import annotations`).
        """

        def __init__(self, modules: Iterable[_M] | None = None) -> None: ...

        def __iter__(self) -> Iterator[_M]: ...

        @overload
        def __getitem__(self, idx: slice) -> ModuleListOf[_M]: ...

        @overload
        def __getitem__(self, idx: int) -> _M: ...

        def __getitem__(self, idx: int | slice) -> _M | ModuleListOf[_M]: ...

else:
    ModuleListOf = nn.ModuleList


@dataclass
class Stage:
    """One named intermediate of a ranker's computation, as `Ranker.explain` returns it.

    Attributes:
        values: (B, *shape), one entry per pair of the batch.
        axes: the name of each axis after the batch axis. "query" and "doc" are token positions (a figure labels
            them with the tokens the model saw); any other axis is labelled by `labels[axis]`, else by index.
        description: one line saying what the values are, for a figure's panel title.
        labels: labels of non-token axes, e.g. ``{"kernel": ["1.0", "0.9", ...]}``.
    """

    values: Tensor
    axes: tuple[str, ...]
    description: str
    labels: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.values.dim() != len(self.axes) + 1:
            shape = tuple(self.values.shape)
            raise ValueError(f"stage values have shape {shape} but axes {self.axes} (plus the batch)")


@dataclass
class Explanation:
    """What a ranker computed for a batch of pairs: its score and its named intermediates, in the order data flows.

    Attributes:
        score: (B,) computed by the same code as `forward`, so in eval mode it equals `forward`'s output.
        stages: name -> `Stage`. Every interaction-based ranker's first stage is "interactions", axes
            ("channel", "query", "doc"): the interaction matrix (or matrices) exactly as the model computed it.
    """

    score: Tensor
    stages: dict[str, Stage]


class Ranker(nn.Module):
    """What every ranker shares beyond `nn.Module`: `predict_proba`, the sigmoid of its `forward` logits, and the
    `explain` hook that returns what the ranker saw and computed on the way to a score.

    It holds no parameters, buffers or submodules, so it adds nothing to a state_dict.
    """

    #: False for representation-based rankers, whose texts never meet in a query-by-document matrix (ArcI).
    has_interaction_matrix = True
    #: Scoring on a CPU, the most cells (pairs x padded query length x padded document length) per forward pass,
    #: chosen per model from `benchmarks/inference.py --sections budget`;
    #: None: `neurank.inference.scorer.CPU_MAX_CELLS`.
    cpu_max_cells: int | None = None
    #: The submodule holding pretrained weights (a transformer: "encoder"), which `train.head_lr` leaves at
    #: `train.lr` while the rest trains at `head_lr`; None: the whole model is new.
    pretrained_part: str | None = None

    def explain(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Explanation:
        """The score of each pair with the intermediates that led to it (see `Explanation`).

        Each ranker implements it from the same building blocks its `forward` uses, so the two cannot drift apart;
        call it in eval mode (dropout off) for a score equal to `forward`'s. Arguments are those of `forward`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement explain")

    def predict_proba(
        self,
        query_ids: Tensor,
        doc_ids: Tensor,
        query_mask: Tensor | None = None,
        doc_mask: Tensor | None = None,
        first_stage_score: Tensor | None = None,
    ) -> Tensor:
        """The sigmoid of `forward`: the probability that each pair is relevant, (B,) in [0, 1]."""
        return torch.sigmoid(self.forward(query_ids, doc_ids, query_mask, doc_mask, first_stage_score))

    def flops_per_pair(self, query_len: int, doc_len: int) -> int:
        """Floating-point operations to score one unpadded pair of these lengths, counted from the architecture.

        Counts what `torch.utils.flop_counter` counts: 2 per multiply-add of every matrix product, convolution,
        linear layer and LSTM gate. Elementwise work (normalisation, masking, activations, RBF kernels, pooling,
        top-k) is left out, so for K-NRM and DRMM, whose work is mostly elementwise, it understates the work done.
        A padded batch does the work of its padded lengths.
        """
        raise NotImplementedError(f"{type(self).__name__} does not count its FLOPs")


def embedding_config(vocab_size: int, config: Any, embeddings: Tensor | None = None) -> Any:
    """`config` with `embedding_dim` set to the width of `embeddings`, checked against `vocab_size`; as is when None.

    Raises:
        ValueError: `embeddings` is not (vocab_size, dim).
    """
    if embeddings is None:
        return config
    if embeddings.dim() != 2 or embeddings.shape[0] != vocab_size:
        raise ValueError(f"embeddings must have shape ({vocab_size}, dim), got {tuple(embeddings.shape)}")
    return replace(config, embedding_dim=embeddings.shape[1])


def build_embedding(vocab_size: int, config: Any, embeddings: Tensor | None = None) -> tuple[nn.Embedding, Any]:
    """The word embedding layer of a ranker, initialised from `embeddings` when given.

    Args:
        vocab_size: number of ids, PAD and UNK included.
        config: a model config with `embedding_dim`, `padding_idx`, `sparse_embeddings` and `freeze_embeddings`.
        embeddings: optional (vocab_size, dim) float tensor; `dim` then replaces `config.embedding_dim`.
    Returns:
        The `nn.Embedding` (its weight trainable unless `config.freeze_embeddings`) and the config it was built from,
        which the model keeps so that its saved config rebuilds the same shapes.
    Raises:
        ValueError: `embeddings` is not (vocab_size, dim).
    """
    config = embedding_config(vocab_size, config, embeddings)
    embedding = nn.Embedding(
        vocab_size, config.embedding_dim, padding_idx=config.padding_idx, sparse=config.sparse_embeddings
    )
    if embeddings is not None:
        with torch.no_grad():
            embedding.weight.copy_(embeddings)
    embedding.weight.requires_grad_(not config.freeze_embeddings)
    return embedding, config


def linear_flops(module: nn.Module, rows: int = 1) -> int:
    """FLOPs of every `nn.Linear` inside `module` (itself included) applied to `rows` rows: 2 x in x out each."""
    return sum(2 * rows * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def saved_model_config(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """A model config saved with a checkpoint (or ONNX metadata), with the options it predates set to the behaviour
    it was saved with (`SAVED_CONFIG_DEFAULTS`), so that a file written before an option existed scores as before.

    Only options of the model's config class are added; keys the saved config has are kept as they are. Use it
    wherever a saved config rebuilds a model (not for a user's config, whose missing options take the defaults).

    Args:
        name: the model's registered name (or an alias); values: the saved config, as `model_config_to_dict` wrote it.
    Returns:
        a new dict for `build_model`.
    """
    from neurank.models.registry import model_classes  # the registry imports every model module, which import this

    options = {field.name for field in fields(model_classes(name)[1])}
    added = {key: value for key, value in SAVED_CONFIG_DEFAULTS.items() if key in options and key not in values}
    return {**values, **added}


def known_mask(ids: Tensor, mask: Tensor) -> Tensor:
    """True at real tokens that are in the vocabulary: `mask` without PAD and UNK. (B, L) -> (B, L) bool."""
    return mask.bool() & (ids != UNK_ID)


def match_masks(
    query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor, unknown_match: bool
) -> tuple[Tensor, Tensor]:
    """The masks that decide which interaction cells may be non-zero: the real tokens, without UNK unless
    `unknown_match` (see the module docstring). Lengths, pooling and counts keep reading the real masks.

    Args:
        query_ids: (B, Lq); doc_ids: (B, Ld); query_mask: (B, Lq); doc_mask: (B, Ld); unknown_match: the model
            config's option (a setting, not data, so the branch is fixed when a model is exported).
    Returns:
        query_match: (B, Lq) bool; doc_match: (B, Ld) bool.
    """
    if unknown_match:
        return query_mask.bool(), doc_mask.bool()
    return known_mask(query_ids, query_mask), known_mask(doc_ids, doc_mask)


def derive_mask(ids: Tensor) -> Tensor:
    """The boolean mask of real tokens: True where `ids` is not PAD. (B, L) -> (B, L)."""
    return ids != PAD_ID


def resolve_masks(
    query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor | None, doc_mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Boolean query and document masks: the given ones as bool, or derived from PAD where None.

    Args:
        query_ids: (B, Lq); doc_ids: (B, Ld); query_mask: (B, Lq) or None; doc_mask: (B, Ld) or None.
    Returns:
        query_mask: (B, Lq) bool; doc_mask: (B, Ld) bool.
    """
    query_mask = derive_mask(query_ids) if query_mask is None else query_mask.bool()
    doc_mask = derive_mask(doc_ids) if doc_mask is None else doc_mask.bool()
    return query_mask, doc_mask


def first_stage_column(first_stage_score: Tensor | None, config: Any, like: Tensor) -> Tensor:
    """The first-stage scores as a (B, 1) column in `like`'s dtype, for models with `use_first_stage_score`.

    Raises:
        ValueError: the model was configured to read the score and none was passed.
    """
    if first_stage_score is None:
        raise ValueError("this model was configured with use_first_stage_score=True; pass first_stage_score")
    return first_stage_score.to(like.dtype)[:, None]  # (B, 1)


def with_first_stage_score(features: Tensor, first_stage_score: Tensor | None, config: Any) -> Tensor:
    """`features` (B, F), with the first-stage score appended as one more column when the config asks for it."""
    if not config.use_first_stage_score:
        return features
    return torch.cat([features, first_stage_column(first_stage_score, config, features)], dim=1)  # (B, F + 1)


def pair_mask(query_mask: Tensor, doc_mask: Tensor) -> Tensor:
    """True where both the query token and the document token are real. (B, Lq), (B, Ld) -> (B, Lq, Ld)."""
    return query_mask.bool()[:, :, None] & doc_mask.bool()[:, None, :]


def cosine_matrix(query_emb: Tensor, doc_emb: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
    """Cosine similarity of every query token with every document token, 0 at padded positions.

    Args:
        query_emb: (B, Lq, D); doc_emb: (B, Ld, D); query_mask: (B, Lq); doc_mask: (B, Ld).
    Returns:
        (B, Lq, Ld) in [-1, 1]; a zero vector has cosine 0 with everything.
    """
    query_unit = F.normalize(query_emb, dim=-1)
    doc_unit = F.normalize(doc_emb, dim=-1)
    return dot_matrix(query_unit, doc_unit, query_mask, doc_mask)


def dot_matrix(query_emb: Tensor, doc_emb: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
    """Dot product of every query token with every document token, 0 at padded positions. Shapes as `cosine_matrix`."""
    sim_matrix = torch.bmm(query_emb, doc_emb.transpose(1, 2))  # (B, Lq, Ld)
    return sim_matrix * pair_mask(query_mask, doc_mask)


_ONE_QUERY_TABLES = True


@contextlib.contextmanager
def one_query_tables(enabled: bool):
    """Switch the per-distinct-token path of one query's batches (`one_query_interactions`) on or off in this block,
    e.g. to measure it (`benchmarks/inference.py --sections sharedquery`) or to compare both ways."""
    global _ONE_QUERY_TABLES
    previous, _ONE_QUERY_TABLES = _ONE_QUERY_TABLES, enabled
    try:
        yield
    finally:
        _ONE_QUERY_TABLES = previous


def shared_query(query_ids: Tensor, query_mask: Tensor) -> bool:
    """Whether every pair of the batch has the same query (ids and mask), as when one query's candidates are scored.

    Always False while torch.export, torch.compile or the JIT tracer records the model: the answer depends on the
    data, and an exported graph must hold for every batch.
    """
    if not _ONE_QUERY_TABLES or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return (
        query_ids.shape[0] > 1
        and bool((query_ids == query_ids[:1]).all())
        and bool((query_mask == query_mask[:1]).all())
    )


def embedding_similarity(
    embedding: nn.Embedding,
    kind: str,
    query_ids: Tensor,
    doc_ids: Tensor,
    query_mask: Tensor,
    doc_mask: Tensor,
    unknown_match: bool = False,
) -> Tensor:
    """`cosine_matrix` or `dot_matrix` of the embedded texts, computed once per distinct token when it pays.

    Scoring one query's candidates (no autograd, the same query in every row), each document token's similarity to
    the query depends only on its id: the distinct document ids are embedded once and compared with the query once,
    and every cell reads its value from that (distinct ids x query length) table, instead of embedding every
    document position and multiplying (B, Lq, D) by (B, D, Ld). The values are the same products (float rounding
    aside; `tests/models` compares the two). Otherwise, and always under autograd, the plain formulation runs.

    Args:
        embedding: the model's embedding layer; kind: "cosine" or "dot".
        query_ids: (B, Lq); doc_ids: (B, Ld); query_mask: (B, Lq) bool; doc_mask: (B, Ld) bool.
        unknown_match: let UNK match (the behaviour before issue 22); False: cells with UNK are 0.
    Returns:
        (B, Lq, Ld), 0 at padded positions (and at UNK unless `unknown_match`).
    """
    if kind not in ("cosine", "dot"):
        raise ValueError(f"kind must be 'cosine' or 'dot', got {kind!r}")
    if torch.is_grad_enabled() or not shared_query(query_ids, query_mask):
        query_emb, doc_emb = embedding(query_ids), embedding(doc_ids)  # (B, Lq, D), (B, Ld, D)
        similarity = cosine_matrix if kind == "cosine" else dot_matrix
        return similarity(query_emb, doc_emb, *match_masks(query_ids, doc_ids, query_mask, doc_mask, unknown_match))
    cells = one_query_interactions(embedding, (kind,), query_ids, doc_ids, query_mask, doc_mask, unknown_match)
    return cells[..., 0]


def one_query_interactions(
    embedding: nn.Embedding,
    kinds: Sequence[str],
    query_ids: Tensor,
    doc_ids: Tensor,
    query_mask: Tensor,
    doc_mask: Tensor,
    unknown_match: bool = False,
) -> Tensor:
    """Interaction matrices of a batch whose pairs all have the same query (see `shared_query`), channels last.

    Each kind's value at (query position, document token) is computed once per distinct document id, in a
    (Lq, distinct ids + 1, C) table whose last column is zero, and one indexing spreads it over the batch, already in
    channels-last order; padded document positions read the zero column and padded query positions zero rows, so the
    batch-sized result needs no masking pass. Cosine divides each query-token x document-token product by the two
    norms (F.normalize's max(|x|, eps)) instead of normalising every distinct vector first.

    Args:
        embedding: the model's embedding layer; kinds: names from `INTERACTIONS`.
        query_ids: (B, Lq), every row the same; doc_ids: (B, Ld); query_mask: (B, Lq) bool; doc_mask: (B, Ld) bool.
        unknown_match: as `interaction_matrices`.
    Returns:
        (B, Lq, Ld, C): the values of `interaction_matrices` (float rounding aside), 0 at padded positions.
    """
    vocab_size, device = embedding.num_embeddings, doc_ids.device
    # Distinct ids without sorting: mark the ids present in a vocabulary-sized table, then number them.
    present = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    present[doc_ids] = True
    distinct = present.nonzero().squeeze(1)  # (U,)
    position = torch.empty(vocab_size, dtype=torch.long, device=device)
    position[distinct] = torch.arange(distinct.numel(), device=device)
    query, query_known = query_ids[0], query_mask[0].bool()  # (Lq,)
    # Cells of UNK against anything are 0 unless `unknown_match` (the module docstring says why): a (Lq, U) mask.
    similar = None if unknown_match else (query != UNK_ID)[:, None] & (distinct != UNK_ID)[None, :]
    columns, products = [], None
    for kind in kinds:
        if kind == "exact":
            known = query_known & (query != UNK_ID)  # UNK and PAD never match
            columns.append(((query[:, None] == distinct[None, :]) & known[:, None]).float())  # (Lq, U)
        elif kind in ("cosine", "dot"):
            if products is None:
                query_vectors, doc_vectors = embedding(query), embedding(distinct)  # (Lq, D), (U, D)
                products = query_vectors @ doc_vectors.T  # (Lq, U)
                if similar is not None:
                    products = products * similar
            if kind == "dot":
                columns.append(products)
            else:
                eps = 1e-12  # F.normalize's
                query_norms = torch.linalg.vector_norm(query_vectors, dim=1).clamp_min(eps)  # (Lq,)
                doc_norms = torch.linalg.vector_norm(doc_vectors, dim=1).clamp_min(eps)  # (U,)
                columns.append(products / (query_norms[:, None] * doc_norms[None, :]))
        else:
            raise ValueError(f"unknown interaction {kind!r}; valid interactions: {', '.join(INTERACTIONS)}")
    width = distinct.numel() + 1  # the last column stays zero: masked document positions read it
    dtype = functools.reduce(torch.promote_types, (column.dtype for column in columns))  # as torch.stack promotes
    table = torch.zeros(query.numel(), width, len(kinds), dtype=dtype, device=device)  # (Lq, U + 1, C)
    # Padded query positions' rows are zeroed by a multiply (a boolean-mask assignment would sync with a GPU).
    table[:, :-1] = torch.stack(columns, dim=-1) * query_known[:, None, None]
    doc_columns = torch.where(doc_mask.bool(), position[doc_ids], width - 1)  # (B, Ld)
    rows = (torch.arange(query.numel(), device=device)[None, :, None] * width + doc_columns[:, None, :]).flatten()
    flat = table.flatten(0, 1)  # (Lq * (U + 1), C): row (i, u) is query position i against column u
    if len(kinds) == 1:
        cells = flat.squeeze(1).index_select(0, rows)
    elif len(kinds) == 2 and flat.dtype == torch.float32:
        # Two float32 channels are one 8-byte value: gathered as int64, the same bits move faster than 2-float rows.
        cells = flat.view(torch.int64).squeeze(1).index_select(0, rows).view(torch.float32)
    else:
        cells = flat.index_select(0, rows)
    return cells.view(query_ids.shape[0], query.numel(), doc_ids.shape[1], len(kinds))  # (B, Lq, Ld, C)


def exact_match_matrix(query_ids: Tensor, doc_ids: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
    """1.0 where the query token and the document token are the same id, else 0.0.

    PAD never matches, and neither does UNK: two different out-of-vocabulary words both encode to UNK, so an UNK-UNK
    "match" says nothing about the words themselves.

    Args:
        query_ids: (B, Lq); doc_ids: (B, Ld); query_mask: (B, Lq); doc_mask: (B, Ld).
    Returns:
        (B, Lq, Ld) float.
    """
    query_known = query_mask.bool() & (query_ids != UNK_ID)
    doc_known = doc_mask.bool() & (doc_ids != UNK_ID)
    same = query_ids[:, :, None] == doc_ids[:, None, :]  # (B, Lq, Ld)
    return (same & pair_mask(query_known, doc_known)).float()


def interaction_matrices(
    kinds: Sequence[str],
    query_ids: Tensor,
    doc_ids: Tensor,
    query_emb: Tensor | None,
    doc_emb: Tensor | None,
    query_mask: Tensor,
    doc_mask: Tensor,
    unknown_match: bool = False,
) -> Tensor:
    """Several interaction matrices stacked as channels, in the order of `kinds`.

    Args:
        kinds: names from `INTERACTIONS` ("cosine", "dot", "exact").
        query_ids: (B, Lq); doc_ids: (B, Ld).
        query_emb: (B, Lq, D); doc_emb: (B, Ld, D); may be None when `kinds` is only "exact".
        query_mask: (B, Lq); doc_mask: (B, Ld).
        unknown_match: let UNK match in "cosine" and "dot" (the behaviour before issue 22); False: their cells with
            UNK on either side are 0. "exact" never matches UNK.
    Returns:
        (B, C, Lq, Ld) with C = len(kinds), 0 at padded positions.
    Raises:
        ValueError: an unknown kind, or "cosine" or "dot" without both embeddings.
    """
    query_match, doc_match = match_masks(query_ids, doc_ids, query_mask, doc_mask, unknown_match)
    channels = []
    for kind in kinds:
        if kind in ("cosine", "dot"):
            if query_emb is None or doc_emb is None:
                raise ValueError(f"the {kind!r} interaction needs query_emb and doc_emb, got None")
            similarity = cosine_matrix if kind == "cosine" else dot_matrix
            channels.append(similarity(query_emb, doc_emb, query_match, doc_match))
        elif kind == "exact":
            channels.append(exact_match_matrix(query_ids, doc_ids, query_mask, doc_mask))
        else:
            raise ValueError(f"unknown interaction {kind!r}; valid interactions: {', '.join(INTERACTIONS)}")
    return torch.stack(channels, dim=1)  # (B, C, Lq, Ld)


def _pool_index(lengths: Tensor, padded_len: int, bins: int) -> Tensor:
    """For each example and bin, the source positions the bin covers, padded to a fixed width by repeating the last.

    Bin i of a row of true length L covers [floor(i L / bins), ceil((i + 1) L / bins)), the bins of adaptive max
    pooling; when L < bins the bins overlap, which stretches a short row over the grid (as MatchZoo's dynamic pooling
    index does). A bin holds at most ceil(L / bins) + 1 positions, so that width, taken from the padded length,
    fits every example; repeating a position does not change a max. (B,) -> (B, bins * width).
    """
    width = (padded_len + bins - 1) // bins + 1
    bin_ids = torch.arange(bins, device=lengths.device)
    lengths = lengths.long()[:, None]  # (B, 1)
    start = bin_ids * lengths // bins  # (B, bins)
    end = ((bin_ids + 1) * lengths + bins - 1) // bins  # (B, bins)
    offsets = torch.arange(width, device=lengths.device)
    index = torch.minimum(start[:, :, None] + offsets, end[:, :, None] - 1)  # (B, bins, width)
    return index.clamp(min=0).flatten(1)  # (B, bins * width)


def dynamic_max_pool(x: Tensor, query_lengths: Tensor, doc_lengths: Tensor, output_size: tuple[int, int]) -> Tensor:
    """Max-pool each example's true (query_length x doc_length) region to a fixed grid (pq, pd).

    The result depends only on the values inside each example's true region, so appending PAD changes nothing. It is
    computed by gathering, per example, the positions each bin covers (see `_pool_index`) and taking their max:
    first along the document axis, then along the query axis. An example with a zero length pools to zeros.

    Args:
        x: (B, C, Lq, Ld).
        query_lengths: (B,) true query lengths (<= Lq); doc_lengths: (B,) true document lengths (<= Ld).
        output_size: (pq, pd).
    Returns:
        (B, C, pq, pd).
    """
    pq, pd = output_size
    B, C, Lq, Ld = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.requires_grad:
        return _dynamic_max_pool_rows(x, query_lengths, doc_lengths, output_size)
    doc_index = _pool_index(doc_lengths, Ld, pd)  # (B, pd * Wd)
    gathered = x.gather(3, doc_index[:, None, None, :].expand(B, C, Lq, -1))  # (B, C, Lq, pd * Wd)
    pooled = gathered.view(B, C, Lq, pd, -1).amax(dim=4)  # (B, C, Lq, pd)
    query_index = _pool_index(query_lengths, Lq, pq)  # (B, pq * Wq)
    gathered = pooled.gather(2, query_index[:, None, :, None].expand(B, C, -1, pd))  # (B, C, pq * Wq, pd)
    pooled = gathered.view(B, C, pq, -1, pd).amax(dim=3)  # (B, C, pq, pd)
    nonempty = (query_lengths > 0) & (doc_lengths > 0)  # (B,)
    return pooled * nonempty[:, None, None, None]


def _dynamic_max_pool_rows(
    x: Tensor, query_lengths: Tensor, doc_lengths: Tensor, output_size: tuple[int, int]
) -> Tensor:
    """`dynamic_max_pool` of a channels-last tensor, gathering whole channel vectors (rows) instead of single values.

    In channels-last memory a cell's C channels are contiguous, so `index_select` over cells copies C floats at a time
    where `gather` reads one strided value per index: several times faster, and the same maxima. Used without
    autograd only, so training keeps the gather formulation (and its gradient's summation order).
    """
    pq, pd = output_size
    B, C, Lq, Ld = x.shape
    cells = x.permute(0, 2, 3, 1).reshape(B * Lq * Ld, C)  # (B * Lq * Ld, C), a view of channels-last memory
    doc_index = _pool_index(doc_lengths, Ld, pd)  # (B, pd * Wd)
    row_start = torch.arange(B * Lq, device=x.device).view(B, Lq, 1) * Ld  # (B, Lq, 1)
    rows = (row_start + doc_index[:, None, :]).flatten()  # (B * Lq * pd * Wd,)
    pooled = cells.index_select(0, rows).view(B, Lq, pd, -1, C).amax(dim=3)  # (B, Lq, pd, C)
    query_index = _pool_index(query_lengths, Lq, pq)  # (B, pq * Wq)
    rows = (torch.arange(B, device=x.device)[:, None] * Lq + query_index).flatten()  # (B * pq * Wq,)
    pooled = pooled.reshape(B * Lq, pd * C).index_select(0, rows).view(B, pq, -1, pd, C).amax(dim=2)  # (B, pq, pd, C)
    nonempty = (query_lengths > 0) & (doc_lengths > 0)  # (B,)
    return (pooled * nonempty[:, None, None, None]).permute(0, 3, 1, 2)  # (B, C, pq, pd)


def kernel_mus_sigmas(n_kernels: int = 11, sigma: float = 0.1, exact_sigma: float = 1e-3) -> tuple[Tensor, Tensor]:
    """The K-NRM kernels: one exact-match kernel at 1.0, the rest centred evenly in (-1, 1).

    For 11 kernels the centres are 1.0, 0.9, 0.7, ..., -0.9 (Xiong et al. 2017).

    Returns:
        mus: (K,), sigmas: (K,).
    """
    if n_kernels < 2:
        raise ValueError(f"n_kernels must be >= 2 (the exact-match kernel and at least one soft one), got {n_kernels}")
    bin_size = 2.0 / (n_kernels - 1)
    mus = [1.0] + [1.0 - bin_size / 2 - i * bin_size for i in range(n_kernels - 1)]
    sigmas = [exact_sigma] + [sigma] * (n_kernels - 1)
    return torch.tensor(mus), torch.tensor(sigmas)


def kernel_pooling(sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor, mus: Tensor, sigmas: Tensor) -> Tensor:
    """RBF kernel pooling (K-NRM, Xiong et al. 2017): soft match counts per kernel, log-summed over query tokens.

    feature_k = sum over real query tokens q of log(sum over real doc tokens d of exp(-(s_qd - mu_k)^2 / 2 sigma_k^2)).
    The soft count is clamped at 1e-10 before the log, as in the original code; the original's extra factor 0.01 on
    the features is left to the model.

    Args:
        sim_matrix: (B, Lq, Ld); query_mask: (B, Lq); doc_mask: (B, Ld); mus, sigmas: (K,).
    Returns:
        (B, K).
    """
    soft_tf = kernel_soft_counts(sim_matrix, doc_mask, mus, sigmas)  # (B, Lq, K)
    log_tf = torch.log(soft_tf.clamp(min=1e-10)) * query_mask[:, :, None]  # (B, Lq, K)
    return log_tf.sum(dim=1)  # (B, K)


def kernel_soft_counts(sim_matrix: Tensor, doc_mask: Tensor, mus: Tensor, sigmas: Tensor) -> Tensor:
    """Each query token's soft match count per RBF kernel: sum over real doc tokens of exp(-(s - mu)^2 / 2 sigma^2).

    Args:
        sim_matrix: (B, Lq, Ld); doc_mask: (B, Ld); mus, sigmas: (K,).
    Returns:
        (B, Lq, K); rows of padded query tokens are not masked (the caller's query mask decides what counts).
    """
    diffs = sim_matrix[..., None] - mus  # (B, Lq, Ld, K)
    kernels = torch.exp(-0.5 * (diffs / sigmas) ** 2) * doc_mask[:, None, :, None]  # (B, Lq, Ld, K)
    return kernels.sum(dim=2)  # (B, Lq, K)


def kernel_labels(mus: Tensor) -> list[str]:
    """Axis labels of RBF kernels: their centres, the exact-match kernel first ("1.0", "0.9", ..., "-0.9")."""
    return [f"{round(mu, 3):g}" for mu in mus.tolist()]


class KernelPooling(nn.Module):
    """`kernel_pooling` with the K-NRM kernels held as (non-persistent) buffers, so they follow `.to(device)`."""

    # The buffers registered in __init__, (K,) each; declared so that type checkers know them as tensors.
    mus: Tensor
    sigmas: Tensor

    def __init__(self, n_kernels: int = 11, sigma: float = 0.1, exact_sigma: float = 1e-3):
        super().__init__()
        mus, sigmas = kernel_mus_sigmas(n_kernels, sigma, exact_sigma)
        self.register_buffer("mus", mus, persistent=False)
        self.register_buffer("sigmas", sigmas, persistent=False)

    def forward(self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        """(B, Lq, Ld), (B, Lq), (B, Ld) -> (B, K)."""
        return kernel_pooling(sim_matrix, query_mask, doc_mask, self.mus, self.sigmas)

    def soft_counts(self, sim_matrix: Tensor, query_mask: Tensor, doc_mask: Tensor) -> Tensor:
        """Soft match counts per query token and kernel, 0 for padded query tokens: (B, Lq, Ld) -> (B, Lq, K)."""
        soft_tf = kernel_soft_counts(sim_matrix, doc_mask, self.mus, self.sigmas)  # (B, Lq, K)
        return soft_tf * query_mask[:, :, None]
