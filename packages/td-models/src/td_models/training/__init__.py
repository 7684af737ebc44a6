"""Training on Hugging Face Accelerate: :class:`Trainer` and its parts.

>>> from td_models.training import Trainer, TrainingResult, PREEMPTED_EXIT_CODE
>>> PREEMPTED_EXIT_CODE
75

* :mod:`~td_models.training.trainer`: ``Trainer`` (phases or cosine schedule, warm-up, mixed
  precision, gradient accumulation and clipping, EMA, non-finite guard, preemption, checkpoints,
  exact resume);
* :mod:`~td_models.training.result`: ``TrainingResult``, what ``fit`` wrote and what it returns in memory;
* :mod:`~td_models.training.schedule`: ``learning_rate_at`` and the ``LambdaLR`` built on it;
* :mod:`~td_models.training.sampler`: ``ShardedBatchSampler``, data order from ``(seed, epoch)``;
* :mod:`~td_models.training.checkpoint`: checkpoint names, rotation, ``load_latest_checkpoint`` (the newest
  that loads), orphan clean-up, RNG states;
* :mod:`~td_models.training.ema`: ``ExponentialMovingAverage``;
* :mod:`~td_models.training.logbook`: ``metrics.csv``, TensorBoard and W&B.
"""

from __future__ import annotations

from td_models.training.checkpoint import (
    TRAINER_CHECKPOINT_FORMAT,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    load_latest_checkpoint,
    load_trainer_checkpoint,
    remove_orphan_checkpoint_files,
)
from td_models.training.ema import ExponentialMovingAverage
from td_models.training.logbook import COLUMNS, LOSS_PARTS, MetricsLogger, read_metrics
from td_models.training.preemption import PREEMPTED_EXIT_CODE
from td_models.training.result import TrainingResult
from td_models.training.sampler import ShardedBatchSampler
from td_models.training.schedule import learning_rate_at, make_scheduler
from td_models.training.trainer import GRADIENT_COMPRESSION, Trainer

__all__ = [
    "Trainer",
    "TrainingResult",
    "PREEMPTED_EXIT_CODE",
    "GRADIENT_COMPRESSION",
    "learning_rate_at",
    "make_scheduler",
    "ShardedBatchSampler",
    "ExponentialMovingAverage",
    "MetricsLogger",
    "read_metrics",
    "COLUMNS",
    "LOSS_PARTS",
    "TRAINER_CHECKPOINT_FORMAT",
    "checkpoint_name",
    "list_checkpoints",
    "latest_checkpoint",
    "load_trainer_checkpoint",
    "load_latest_checkpoint",
    "remove_orphan_checkpoint_files",
]
