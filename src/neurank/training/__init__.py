"""Training: the ranking losses and the loop (AdamW, dev selection every epoch, early stopping, exact resume).

Data preparation lives in `neurank.data.prepare`, checkpoints in `neurank.inference.checkpoint`."""

from neurank.training.loop import make_model, score_examples, train
from neurank.training.losses import LOSSES, ranking_loss

__all__ = ["LOSSES", "make_model", "ranking_loss", "score_examples", "train"]
