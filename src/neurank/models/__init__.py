"""Rankers that score (query, document) id tensors, the layers they share, and the registry that builds them by name.

Every ranker: `model(query_ids, doc_ids, query_mask=None, doc_mask=None, first_stage_score=None) -> Tensor[B]` logits.
`CNNInteractionBasedModel` is MatchPyramid under the name the project first gave it ("cnn" in the registry, an alias).
"""

from neurank.models.arci import ArcI, ArcIConfig
from neurank.models.compare_aggregate import CompareAggregate, CompareAggregateConfig
from neurank.models.conv_knrm import ConvKNRM, ConvKNRMConfig
from neurank.models.drmm import DRMM, DRMMConfig
from neurank.models.duet import DUET, DUETConfig
from neurank.models.knrm import KNRM, KNRMConfig
from neurank.models.layers import (
    INTERACTIONS,
    Explanation,
    KernelPooling,
    Ranker,
    Stage,
    build_embedding,
    cosine_matrix,
    derive_mask,
    dot_matrix,
    dynamic_max_pool,
    embedding_config,
    embedding_similarity,
    exact_match_matrix,
    interaction_matrices,
    kernel_mus_sigmas,
    kernel_pooling,
    kernel_soft_counts,
    one_query_interactions,
    one_query_tables,
    pair_mask,
    resolve_masks,
    shared_query,
)
from neurank.models.match_pyramid import CNNInteractionBasedModel, MatchPyramid, MatchPyramidConfig
from neurank.models.mvlstm import MVLSTM, MVLSTMConfig
from neurank.models.pacrr import PACRR, PACRRConfig
from neurank.models.registry import (
    ConfigError,
    UnknownModelError,
    build_model,
    config_from_dict,
    model_aliases,
    model_classes,
    model_config_to_dict,
    model_names,
    register,
    resolve_model_name,
)
from neurank.models.tk import TK, TKConfig

__all__ = [
    "ArcI",
    "ArcIConfig",
    "CNNInteractionBasedModel",
    "CompareAggregate",
    "CompareAggregateConfig",
    "ConvKNRM",
    "ConvKNRMConfig",
    "DRMM",
    "DRMMConfig",
    "DUET",
    "DUETConfig",
    "KNRM",
    "KNRMConfig",
    "MVLSTM",
    "MVLSTMConfig",
    "PACRR",
    "PACRRConfig",
    "TK",
    "TKConfig",
    "ConfigError",
    "Explanation",
    "INTERACTIONS",
    "KernelPooling",
    "MatchPyramid",
    "MatchPyramidConfig",
    "Ranker",
    "Stage",
    "UnknownModelError",
    "build_embedding",
    "build_model",
    "config_from_dict",
    "cosine_matrix",
    "derive_mask",
    "dot_matrix",
    "dynamic_max_pool",
    "embedding_config",
    "embedding_similarity",
    "exact_match_matrix",
    "interaction_matrices",
    "kernel_mus_sigmas",
    "kernel_pooling",
    "kernel_soft_counts",
    "model_aliases",
    "model_classes",
    "model_config_to_dict",
    "model_names",
    "one_query_interactions",
    "one_query_tables",
    "pair_mask",
    "register",
    "resolve_masks",
    "resolve_model_name",
    "shared_query",
]
