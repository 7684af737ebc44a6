"""``topological_diffusion.models``: the user guide's import path for td_models.

The same objects as :mod:`td_models` (configuration, the diffusion model, denoiser, property
heads, batches, crystal files)::

    from topological_diffusion.models import ExperimentConfig, TopologicalDiffusionModel

Like :mod:`td_models` itself, the names load on first use, so importing this module does not
import torch. Shipped by td-models as a portion of the PEP 420 namespace package
``topological_diffusion`` (with ``topological_diffusion.training``).
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCE = importlib.import_module("td_models")
__all__ = list(_SOURCE.__all__)


def __getattr__(name: str) -> Any:  # resolved on first use, as in td_models itself
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_SOURCE, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
