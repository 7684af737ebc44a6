"""td-physics: tight-binding models and topological invariants, right and fast."""

from __future__ import annotations

import logging

from td_physics.exceptions import (
    ConvergenceError,
    FileFormatError,
    KPointError,
    ModelDefinitionError,
    OccupationError,
    SymmetryError,
    TDPhysicsError,
)
from td_physics.invariants.options import ChernOptions, Z2Options
from td_physics.model import InversionSymmetry, TightBindingModel, stacked_hamiltonian
from td_physics.structure.options import TightBindingOptions

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "TightBindingModel",
    "InversionSymmetry",
    "stacked_hamiltonian",
    "Z2Options",
    "ChernOptions",
    "TightBindingOptions",
    "TDPhysicsError",
    "ModelDefinitionError",
    "KPointError",
    "OccupationError",
    "SymmetryError",
    "ConvergenceError",
    "FileFormatError",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
