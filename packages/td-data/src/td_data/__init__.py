"""td-data: crystal records, readers, storage, synthetic data, filters, splits and generation metrics."""

from __future__ import annotations

import logging

from td_data.exceptions import ReaderError, RecordValidationError, StoreError, TDDataError, UntrustedInputError
from td_data.record import CrystalRecord

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "CrystalRecord",
    "TDDataError",
    "RecordValidationError",
    "ReaderError",
    "StoreError",
    "UntrustedInputError",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
