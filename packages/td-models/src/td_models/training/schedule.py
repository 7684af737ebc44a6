"""Learning-rate schedule: linear warm-up, then the training phases or cosine annealing.

The rate is a pure function of the optimiser-step index ``step`` (0-based, counting every step
slot, also the ones skipped for a non-finite loss, so that the rate stays aligned with the epochs)
and of ``steps_per_epoch``:

* ``epoch = step // steps_per_epoch + 1`` (1-based, as ``PhaseConfig.start_epoch``);
* ``scheduler="phases"``: the rate of the phase active at that epoch (``TrainingConfig.phase_at``);
* ``scheduler="cosine"``: ``eta_min + (lr - eta_min) (1 + cos(pi p)) / 2`` with
  ``p = min(step / (T_max * steps_per_epoch), 1)``, ``T_max = cosine_period_epochs`` (or
  ``max_epochs``), ``lr = learning_rate`` and ``eta_min = min_learning_rate`` -- PyTorch's
  ``CosineAnnealingLR`` closed form with ``T_cur`` counted in (fractional) epochs, except that after
  ``T_max`` epochs the rate stays at ``eta_min`` instead of rising again;
* both multiplied by the warm-up factor ``min(1, (step + 1) / (warmup_epochs * steps_per_epoch))``
  (no warm-up when ``warmup_epochs`` is 0).

>>> from td_models.config import TrainingConfig
>>> tc = TrainingConfig(warmup_epochs=1, max_epochs=4, phases=[
...     {"name": "a", "start_epoch": 1, "learning_rate": 1e-3}, {"name": "b", "start_epoch": 3, "learning_rate": 1e-4}])
>>> [round(learning_rate_at(tc, s, steps_per_epoch=2), 6) for s in range(8)]
[0.0005, 0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 0.0001]
"""

from __future__ import annotations

import math

import torch

from td_models.config import TrainingConfig
from td_models.exceptions import ConfigError

__all__ = ["learning_rate_at", "make_scheduler"]


def learning_rate_at(config: TrainingConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based) with ``steps_per_epoch`` steps an epoch."""
    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
    if not isinstance(step, int) or step < 0:
        raise ConfigError(f"step must be an integer >= 0, got {step!r}")
    if config.scheduler == "cosine":
        total = (config.cosine_period_epochs or config.max_epochs) * steps_per_epoch
        progress = min(step / total, 1.0)
        low, high = config.min_learning_rate, config.learning_rate
        rate = low + (high - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        rate = config.phase_at(step // steps_per_epoch + 1).learning_rate
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if warmup_steps > 0:
        rate *= min(1.0, (step + 1) / warmup_steps)
    return rate


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` giving :func:`learning_rate_at` per optimiser step.

    The optimiser's base rate must be ``config.learning_rate``; the lambda returns the ratio to it.
    The scheduler's state (``last_epoch`` = steps taken) goes into every checkpoint.
    """
    base = config.learning_rate

    def factor(step: int) -> float:
        return learning_rate_at(config, step, steps_per_epoch) / base

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
