"""Building the configured ranker: the model's own options, plus the embedding options where the model has them."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from neurank.config import ExperimentConfig
from neurank.models import build_model, model_classes

# Model options filled from the `embeddings` section when the model has them and `model_config` leaves them out.
EMBEDDING_OPTIONS = {"embedding_dim": "dim", "freeze_embeddings": "freeze", "sparse_embeddings": "sparse"}


def make_model(config: ExperimentConfig, vocab_size: int, embeddings: torch.Tensor | None) -> nn.Module:
    """Build the configured model; embedding options apply where the model has them."""
    _, config_cls = model_classes(config.model)
    known = {f.name for f in dataclasses.fields(config_cls)}
    model_config = dict(config.model_config)
    for key, setting in EMBEDDING_OPTIONS.items():
        value = getattr(config.embeddings, setting)
        if key in known and value is not None:
            model_config.setdefault(key, value)
    return build_model(config.model, vocab_size, model_config, embeddings=embeddings)
