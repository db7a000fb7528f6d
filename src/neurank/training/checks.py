"""Checks of a configuration's training settings and model options that cost nothing, run before any data is
prepared: a misspelt loss or another model's option is found in a second, not after tokenising and word2vec."""

from __future__ import annotations

import torch

from neurank.config import ConfigError, ExperimentConfig
from neurank.data.prepare import word_piece_folder
from neurank.evaluation import parse_measures
from neurank.models import UnknownModelError
from neurank.training.losses import LOSSES
from neurank.training.model import make_model

# The learning-rate schedules of the training loop (`neurank.training.loop._lr_lambda`).
SCHEDULES = ("constant", "linear", "cosine")


def check_settings(config: ExperimentConfig) -> None:
    """Check the training settings that are names (loss, schedule, selection measure), which the config schema
    takes as free text.

    Raises:
        ConfigError: naming the key and the valid values.
    """
    train_cfg = config.train
    if train_cfg.loss not in LOSSES:
        raise ConfigError(f"train.loss: expected one of {', '.join(LOSSES)}, found {train_cfg.loss!r}")
    if train_cfg.schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule: expected one of {', '.join(SCHEDULES)}, found {train_cfg.schedule!r}")
    if train_cfg.metric is not None:
        try:
            parse_measures(train_cfg.metric)
        except ValueError as error:
            raise ConfigError(f"train.metric: {error}") from None


def check_model(config: ExperimentConfig) -> None:
    """Build the configured model on a two-word vocabulary, so that an unknown model, an unknown option or a value
    the model refuses is found before any data is prepared. The random state is left as it was.

    Raises:
        UnknownModelError: no such model. ConfigError: its options, naming the model and `model_config`.
    """
    word_piece_folder(config)  # a transformer's folder first: its message names model_config.hf_model
    try:
        with torch.random.fork_rng(devices=[]):
            make_model(config, vocab_size=2, embeddings=None)
    except UnknownModelError:
        raise
    except (ConfigError, TypeError, ValueError) as error:
        hint = ""
        if "unknown option" in str(error):  # most often another model's options, left by switching `model=`
            hint = (
                "; a config's model_config holds the options of one model: to switch models, use a task config "
                "whose models: section has an entry per model (answer_selection, adhoc)"
            )
        raise ConfigError(f"model_config of {config.model!r}: {error}{hint}") from None
