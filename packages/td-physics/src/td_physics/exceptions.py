"""Errors raised by td-physics.

Every error a user can trigger with bad input is a :class:`ValueError` subclass whose message
names the rule that was broken and the value that was received.
"""

from __future__ import annotations

__all__ = [
    "TDPhysicsError",
    "ModelDefinitionError",
    "KPointError",
    "OccupationError",
    "SymmetryError",
    "ConvergenceError",
    "FileFormatError",
    "StructureError",
    "UnsupportedElementError",
    "AtomicInputError",
    "BoundStateError",
    "SCFConvergenceError",
]


class TDPhysicsError(ValueError):
    """Base class of every td-physics input error."""


class ModelDefinitionError(TDPhysicsError):
    """A tight-binding model was given inconsistent data (orbital index, R vector, hermiticity)."""


class KPointError(TDPhysicsError):
    """k-points of the wrong shape or dimension."""


class OccupationError(TDPhysicsError):
    """The number of occupied bands is impossible for the model."""


class SymmetryError(TDPhysicsError):
    """A symmetry operator does not commute with the Hamiltonian, or is malformed."""


class ConvergenceError(TDPhysicsError):
    """A computation could not be converged within the allowed resources."""


class FileFormatError(TDPhysicsError):
    """A model file (JSON, HDF5, Wannier90) is malformed."""


class StructureError(ModelDefinitionError):
    """A crystal structure that cannot be turned into a model (overlapping atoms, bad arrays, bad builder options)."""


class UnsupportedElementError(ModelDefinitionError):
    """An element has no sourced parameter in the table a variant needs."""


class AtomicInputError(TDPhysicsError):
    """Bad input to the atomic solver: atomic number, configuration, orbital label or setting."""


class BoundStateError(ConvergenceError):
    """An orbital could not be located as a bound state of the current potential."""


class SCFConvergenceError(ConvergenceError):
    """The self-consistency loop did not converge.

    Attributes
    ----------
    iterations:
        Iterations performed.
    last_change:
        Largest eigenvalue change (Hartree) in the last iteration.
    """

    def __init__(self, message: str, iterations: int, last_change: float) -> None:
        super().__init__(message)
        self.iterations = iterations
        self.last_change = last_change
