"""td-physics: tight-binding models and topological invariants, right and fast."""

from __future__ import annotations

import logging

from td_physics import exceptions  # its __all__ names the errors re-exported below
from td_physics.exceptions import AtomicInputError as AtomicInputError
from td_physics.exceptions import BoundStateError as BoundStateError
from td_physics.exceptions import ConvergenceError as ConvergenceError
from td_physics.exceptions import FileFormatError as FileFormatError
from td_physics.exceptions import KPointError as KPointError
from td_physics.exceptions import ModelDefinitionError as ModelDefinitionError
from td_physics.exceptions import OccupationError as OccupationError
from td_physics.exceptions import SCFConvergenceError as SCFConvergenceError
from td_physics.exceptions import StructureError as StructureError
from td_physics.exceptions import SymmetryError as SymmetryError
from td_physics.exceptions import TDPhysicsError as TDPhysicsError
from td_physics.exceptions import UnsupportedElementError as UnsupportedElementError
from td_physics.inversion import InversionSymmetry
from td_physics.model import TightBindingModel, stacked_hamiltonian
from td_physics.options import ChernOptions, TightBindingOptions, Z2Options

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "TightBindingModel",
    "InversionSymmetry",
    "stacked_hamiltonian",
    "Z2Options",
    "ChernOptions",
    "TightBindingOptions",
    *exceptions.__all__,
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
