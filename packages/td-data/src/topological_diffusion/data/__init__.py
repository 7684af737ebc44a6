"""``topological_diffusion.data``: the user guide's import path for td_data.

The same objects as :mod:`td_data` (records, readers, the HDF5 store, synthetic data, filters,
splits, metrics)::

    from topological_diffusion.data import SyntheticDatasetGenerator, load_materials_database

Like :mod:`td_data` itself, the heavier names load on first use (pymatgen is imported only when
needed). Shipped by td-data as a portion of the PEP 420 namespace package ``topological_diffusion``.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCE = importlib.import_module("td_data")
__all__ = list(_SOURCE.__all__)


def __getattr__(name: str) -> Any:  # resolved on first use, as in td_data itself
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_SOURCE, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
