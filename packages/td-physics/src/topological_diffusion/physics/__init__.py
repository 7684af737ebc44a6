"""``topological_diffusion.physics``: the user guide's import path for td_physics.

The same objects as :mod:`td_physics` (tight-binding models, errors) plus
:class:`~td_physics.calculator.TopologicalInvariantCalculator`, the guide's one-call invariant
calculator, and the result types it returns::

    from topological_diffusion.physics import TopologicalInvariantCalculator

    calc = TopologicalInvariantCalculator(model)  # a td_physics.TightBindingModel
    invariants = calc.compute_all_invariants(occupied_bands, k_grid)

``topological_diffusion`` is a PEP 420 namespace package: td-physics ships this module and
``topological_diffusion.validation``; td-data, td-models and td-hpc ship the others.
"""

from __future__ import annotations

from typing import Any

import td_physics
from td_physics.calculator import InvariantReport, TopologicalInvariantCalculator
from td_physics.invariants import InvariantResult

__all__ = [*td_physics.__all__, "TopologicalInvariantCalculator", "InvariantReport", "InvariantResult"]


def __getattr__(name: str) -> Any:
    if name not in td_physics.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(td_physics, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
