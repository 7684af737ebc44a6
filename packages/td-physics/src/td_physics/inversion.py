"""An inversion operator on the orbitals of a tight-binding model (used by the Fu-Kane parity method)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["InversionSymmetry", "POSITION_TOLERANCE"]

#: How far (reduced coordinates) an orbital's inversion image may lie from its partner orbital plus a
#: lattice vector: the operator is exact, so the Hamiltonian commutes with it to rounding.
POSITION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class InversionSymmetry:
    """Spatial inversion ``r -> 2 c - r`` acting on the orbitals of a model.

    Orbital ``j`` at reduced position ``tau_j`` goes to orbital ``permutation[j]`` at
    ``2 c - tau_j = tau_{permutation[j]} + shifts[j]`` (``shifts`` integer lattice vectors),
    multiplied by ``parities[j]`` (+1 for s and d orbitals, -1 for p orbitals; spin is untouched by
    inversion). ``shifts`` is filled in by :meth:`TightBindingModel.set_inversion`.
    """

    permutation: tuple[int, ...]
    parities: tuple[int, ...]
    centre: tuple[float, ...]
    shifts: tuple[tuple[int, ...], ...] = ()

    def matrix_at(self, k: np.ndarray) -> np.ndarray:
        """The (norb, norb) operator ``P`` with ``H_I(-k) = P H_I(k) P^dagger`` (periodic gauge).

        ``k`` is one reduced k-point of length ``dim_k``; ``shifts`` are truncated to the periodic
        directions.
        """
        k = np.asarray(k, dtype=float)
        norb = len(self.permutation)
        op = np.zeros((norb, norb), dtype=complex)
        shifts = np.asarray(self.shifts, dtype=float)[:, : k.shape[-1]]
        phase = np.exp(2j * np.pi * shifts @ k)  # (norb,)
        op[list(self.permutation), np.arange(norb)] = np.asarray(self.parities) * phase
        return op
