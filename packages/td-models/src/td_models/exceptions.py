"""Errors raised by td-models: ``ValueError`` subclasses whose messages name the rule and the value."""

from __future__ import annotations

__all__ = [
    "TDModelsError",
    "ConfigError",
    "NotImplementedSettingError",
    "BatchError",
    "CheckpointError",
    "CorruptCheckpointError",
    "TrainingDivergedError",
]


class TDModelsError(ValueError):
    """Base class of every td-models input error."""


class ConfigError(TDModelsError):
    """A configuration value breaks a rule (type, range, unknown key, unknown preset)."""


class NotImplementedSettingError(ConfigError):
    """A configuration key that is documented but has no implementation yet (refused, never ignored)."""


class BatchError(TDModelsError):
    """A crystal batch is malformed (shapes, atom counts, species out of range, non-finite numbers)."""


class CheckpointError(TDModelsError):
    """A checkpoint file is missing, unreadable, of another format version, or not what was expected."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated or corrupt (empty, not a complete torch archive, bad checksum).

    ``Trainer.resume("latest")`` skips such files and falls back to the newest one that loads.
    """


class TrainingDivergedError(TDModelsError):
    """Training produced ``max_nonfinite_steps`` non-finite losses (or gradient norms) in a row.

    Raised by :meth:`td_models.training.Trainer.fit`; no checkpoint is written after the run
    diverged, so the newest one on disk is the last good state.
    """
