"""Losses, the training loop and checkpoints."""

from neurank.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, unwrap
from neurank.training.losses import LOSSES, ranking_loss
from neurank.training.loop import PreparedData, prepare_data, score_examples, select_device, seed_everything, train

__all__ = [
    "LOSSES",
    "CheckpointError",
    "PreparedData",
    "load_checkpoint",
    "prepare_data",
    "ranking_loss",
    "save_checkpoint",
    "score_examples",
    "seed_everything",
    "select_device",
    "train",
    "unwrap",
]
