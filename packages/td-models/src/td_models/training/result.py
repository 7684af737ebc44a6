"""``TrainingResult``: what :meth:`~td_models.training.Trainer.fit` returns.

Paths to what the trainer wrote (``metrics.csv``, checkpoints, ``best_model.pt``, ``final_model.pt``)
and, in memory, what a caller would otherwise read back from them: the model, the metric rows, the
phases reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from td_models.model import TopologicalDiffusionModel

__all__ = ["TrainingResult"]


@dataclass(frozen=True)
class TrainingResult:
    """What :meth:`Trainer.fit` did, with what a caller needs in memory: the model and the metric rows.

    The files (``metrics_csv``, the checkpoints, ``best_model``, ``final_model``) are written as before;
    ``model``, ``history`` and ``phases`` give the same information without reading them back.
    """

    epochs_completed: int  # epochs finished (the last one may have been finished by an earlier run)
    global_step: int  # optimiser-step slots so far, skipped ones included
    last_losses: dict[str, float]  # mean losses of the last epoch over all processes (or of the last step)
    nonfinite_steps: int  # step slots skipped for a non-finite loss or gradient norm, whole run
    preempted: bool  # stopped by a signal (or request_stop) after writing a checkpoint
    output_dir: Path
    metrics_csv: Path
    last_checkpoint: Path | None
    best_model: Path | None  # EMA weights with the lowest selection metric, TopologicalDiffusionModel.load-able
    final_model: Path | None  # EMA weights at the end (None when preempted)
    step_losses: list[float] = field(default_factory=list)  # total loss of each step of this call, main process
    reached_max_steps: bool = False  # stopped by fit(max_steps=...), nothing written at the stop
    time_limited: bool = False  # stopped by fit(max_seconds=...) after writing a checkpoint (no final_model)
    # The trainer's inference model when fit returned, not a copy: the EMA weights when ema_decay > 0 (the
    # weights final_model.pt holds), else the trained model; on the training device.
    model: TopologicalDiffusionModel | None = None
    # The rows of metrics.csv as read_metrics parses them (rows of earlier runs kept in the file included);
    # None unless Trainer(keep_history=True), and on every process but the main one.
    history: tuple[dict[str, Any], ...] | None = None
    phases: tuple[str, ...] = ()  # phases of the epochs begun, finished or stopped midway (resumed ones too), in order
    best_epoch: int | None = None  # epoch of best_model.pt's weights (None before the first epoch ends)
    resumed_from: Path | None = None  # checkpoint this Trainer resumed from (resume() or fit(resume_from))
