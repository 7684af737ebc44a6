"""td-data: crystal records, readers, storage, synthetic data, filters, splits and generation metrics.

The common entry points are importable from the package itself; they load lazily, so
``import td_data`` stays fast and pymatgen is imported only when a function needs it::

    from td_data import CrystalRecord, load_materials_database, SyntheticDatasetGenerator
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from td_data.exceptions import ReaderError, RecordValidationError, StoreError, TDDataError, UntrustedInputError
from td_data.record import CrystalRecord

__version__ = "0.1.0"

_LAZY = {
    "CrystalStore": "td_data.store",
    "write_store": "td_data.store",
    "load_materials_database": "td_data.readers",
    "LoadResult": "td_data.readers",
    "Quarantined": "td_data.readers",
    "SyntheticDatasetGenerator": "td_data.synthetic",
    "diversity_report": "td_data.synthetic",
    "QualityFilter": "td_data.filters",
    "apply_filters": "td_data.filters",
    "random_split": "td_data.splits",
    "composition_split": "td_data.splits",
    "generation_metrics": "td_data.metrics",
    "structure_prediction_metrics": "td_data.metrics",
}

__all__ = [
    "__version__",
    "CrystalRecord",
    "TDDataError",
    "RecordValidationError",
    "ReaderError",
    "StoreError",
    "UntrustedInputError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'td_data' has no attribute {name!r}")


logging.getLogger(__name__).addHandler(logging.NullHandler())
