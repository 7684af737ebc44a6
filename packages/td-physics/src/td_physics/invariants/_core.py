"""Shared machinery of the invariants: result objects, batched eigenstates, link variables.

Everything here works on a *batch of models* with the same orbitals (leading axis ``nm``) and
a batch of k-points, so that one ``numpy.linalg.eigh`` call diagonalises every Hamiltonian of a
calculation, or of a whole phase diagram. Nothing loops over k-points in Python.

Berry phase sign: with ``A = i <u | grad_k u>``, the discrete Berry phase of a closed path is
``gamma = -Im ln prod_j det <u_j | u_{j+1}>`` and the Berry curvature is ``Omega = curl A``
(PythTB's sign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from td_physics.model import TightBindingModel, stacked_hamiltonian

__all__ = ["InvariantResult", "eigenstates", "link_phases", "ordered_product", "position_phase"]

# Largest number of complex matrix elements held at once by a batched eigen-solve (about 1 GB).
MAX_ELEMENTS = 2**26


@dataclass(frozen=True)
class InvariantResult:
    """A topological invariant and how far it can be trusted.

    Attributes
    ----------
    value:
        The invariant (an int, or a tuple for the 3D Z2 indices).
    converged:
        Whether every convergence check passed (gap open, mesh fine enough, methods agree).
    min_gap:
        The smallest direct gap (eV) between the occupied and the empty bands on the points used.
    mesh:
        The k-mesh used in the end (a tuple of point counts).
    method:
        Short name of the algorithm.
    details:
        Read-only extra data (per-plane values, plaquette fluxes, Wannier centres, parities...).
    """

    value: Any
    converged: bool
    min_gap: float
    mesh: tuple[int, ...]
    method: str
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def __int__(self) -> int:
        if isinstance(self.value, tuple):
            raise TypeError("this invariant is a tuple of indices; use .value")
        return int(self.value)


def resolve_occupied(model: TightBindingModel, occupied: int | None) -> int:
    """The number of occupied bands: ``occupied`` validated, or the model's default."""
    return model.check_occupied(occupied)


def chunk_size(n_models: int, nk: int, norb: int) -> int:
    """How many models to diagonalise at once so that one batch stays under MAX_ELEMENTS."""
    per_model = max(1, nk * norb * norb * 3)
    return int(max(1, min(n_models, MAX_ELEMENTS // per_model)))


def eigenstates(
    models: Sequence[TightBindingModel], kpts: np.ndarray, nocc: int, *, keep: str = "occupied"
) -> tuple[np.ndarray, np.ndarray]:
    """Energies and eigenvectors of many models at many k-points, periodic gauge.

    ``kpts`` is (nk, dim_k) shared by all models, or (nm, nk, dim_k). Returns energies
    (nm, nk, norb) and eigenvectors (nm, nk, norb, nkeep) where ``keep`` selects the occupied
    bands (``"occupied"``), all bands (``"all"``) or none (``"none"``, an empty last axis).
    """
    h = stacked_hamiltonian(models, kpts)  # (nm, nk, norb, norb)
    if keep == "none":
        return np.linalg.eigvalsh(h), np.empty(h.shape[:-1] + (0,), dtype=complex)
    e, v = np.linalg.eigh(h)
    if keep == "occupied":
        v = v[..., :nocc]
    return e, v


def direct_gap(energies: np.ndarray, nocc: int) -> np.ndarray:
    """E_{nocc} - E_{nocc-1} at every point: the direct gap above the occupied bands."""
    return energies[..., nocc] - energies[..., nocc - 1]


def position_phase(positions: np.ndarray, dk: np.ndarray) -> np.ndarray:
    """exp(-2 pi i dk . tau_j) for reduced steps ``dk`` (..., dim_k): shape (..., norb).

    Multiplying the ket of a link by this factor turns periodic-gauge overlaps into the overlaps
    of the cell-periodic parts with the orbital positions included (convention II), which gives
    Wannier centres at their physical positions.
    """
    return np.exp(-2j * np.pi * np.asarray(dk) @ positions.T)


def link_matrices(bra: np.ndarray, ket: np.ndarray, phase: np.ndarray | None) -> np.ndarray:
    """Overlap matrices ``bra^dagger diag(phase) ket``: (..., norb, n) x (..., norb, n) -> (..., n, n)."""
    if phase is not None:
        ket = ket * phase[..., :, None]
    return np.conj(np.swapaxes(bra, -1, -2)) @ ket


def link_phases(bra: np.ndarray, ket: np.ndarray, phase: np.ndarray | None) -> np.ndarray:
    """Normalised determinants of the link matrices, U = det M / |det M| (...)."""
    m = link_matrices(bra, ket, phase)
    d = m[..., 0, 0] if m.shape[-1] == 1 else np.linalg.det(m)
    mag = np.abs(d)
    return np.where(mag > 0, d / np.where(mag > 0, mag, 1.0), 1.0)


def ordered_product(mats: np.ndarray) -> np.ndarray:
    """The ordered product M_0 M_1 ... M_{n-1} along axis -3 of (..., n, a, a).

    A pairwise tree: log2(n) batched matrix products, no loop over the n factors.
    """
    while mats.shape[-3] > 1:
        last = None
        if mats.shape[-3] % 2:
            last = mats[..., -1:, :, :]
            mats = mats[..., :-1, :, :]
        mats = mats[..., 0::2, :, :] @ mats[..., 1::2, :, :]
        if last is not None:
            mats = np.concatenate([mats, last], axis=-3)
    return mats[..., 0, :, :]


def plane_grid(dim_k: int, axes: tuple[int, int], n1: int, n2: int, fixed: Mapping[int, float]) -> np.ndarray:
    """Reduced k-points (n1, n2, dim_k) covering the plane spanned by ``axes``.

    The other coordinates take the values in ``fixed`` (default 0).
    """
    grid = np.zeros((n1, n2, dim_k))
    for ax, val in fixed.items():
        grid[..., ax] = val
    grid[..., axes[0]] = (np.arange(n1) / n1)[:, None]
    grid[..., axes[1]] = (np.arange(n2) / n2)[None, :]
    return grid


def unit(dim_k: int, axis: int) -> np.ndarray:
    e = np.zeros(dim_k)
    e[axis] = 1.0
    return e
