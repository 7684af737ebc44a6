"""Errors raised by td-data: ``ValueError`` subclasses whose messages name the rule and the value."""

from __future__ import annotations

__all__ = [
    "TDDataError",
    "RecordValidationError",
    "ReaderError",
    "StoreError",
    "UntrustedInputError",
    "EvaluationError",
    "BenchmarkDataError",
    "BaselineNotApplicableError",
]


class TDDataError(ValueError):
    """Base class of every td-data input error."""


class RecordValidationError(TDDataError):
    """A crystal record breaks a rule (shape, finite numbers, positive volume, known elements)."""


class ReaderError(TDDataError):
    """A file could not be read as the format it claims to be."""


class StoreError(TDDataError):
    """An HDF5 crystal store is malformed, of another schema version, or misused."""


class UntrustedInputError(TDDataError):
    """Input that could run code when read (pickle) was refused because trusted=True was not given."""


class EvaluationError(TDDataError):
    """Evaluation input breaks a rule (a count out of range, a sample without its arrays, an unknown class)."""


class BenchmarkDataError(TDDataError):
    """A benchmark data set (Perov-5, Carbon-24, MP-20 CSV splits) is unknown, missing or unreadable."""


class BaselineNotApplicableError(EvaluationError):
    """A benchmark baseline does not exist for a data set (the prototype of a data set without one)."""
