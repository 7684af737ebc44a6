"""Shared helpers of the model factories: Pauli matrices, a hopping accumulator, k-paths.

Nothing here is public API; the factories in the sibling modules are.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.model import TightBindingModel

__all__ = ["SIGMA_0", "SIGMA_X", "SIGMA_Y", "SIGMA_Z", "HoppingBuilder", "k_path", "check_finite", "permute_basis"]

SIGMA_0 = np.eye(2, dtype=complex)
SIGMA_X = np.array([[0, 1], [1, 0]], dtype=complex)
SIGMA_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
SIGMA_Z = np.array([[1, 0], [0, -1]], dtype=complex)


def check_finite(**values: float) -> None:
    """Raise :class:`ModelDefinitionError` naming the first parameter that is not a finite real."""
    for key, value in values.items():
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or not np.all(np.isfinite(arr)):
            raise ModelDefinitionError(f"model parameter {key} must be a finite real number, got {value!r}")


def k_path(nodes: Sequence[Sequence[float]], labels: Sequence[str]) -> dict[str, list[Any]]:
    """The ``metadata["k_path"]`` entry: reduced ``nodes`` and their ``labels``."""
    return {"nodes": [[float(x) for x in node] for node in nodes], "labels": list(labels)}


SQUARE_K_PATH = k_path([(0, 0), (0.5, 0), (0.5, 0.5), (0, 0)], ["Γ", "X", "M", "Γ"])
"""Gamma-X-M-Gamma of a square lattice."""

UNITS = {
    "eV": {"energy": "eV", "length": "Angstrom"},
    "dimensionless": {"energy": "dimensionless", "length": "dimensionless"},
}
"""The ``metadata["units"]`` of a model in eV and Angstrom, or in units of its own hopping and lattice constant."""


def record_factory(
    model: TightBindingModel,
    path: dict[str, list[Any]],
    reference: str,
    units: str,
    parameters: dict[str, Any],
    **extra: Any,
) -> TightBindingModel:
    """Write what a factory built into ``model.metadata``: ``k_path``, ``reference``, ``units`` (a key of
    :data:`UNITS`), ``parameters`` and any ``extra`` entries. Returns ``model``."""
    model.metadata.update(
        k_path=copy.deepcopy(path), reference=reference, units=dict(UNITS[units]), parameters=parameters, **extra
    )
    return model


class HoppingBuilder:
    """Accumulates ``H0`` and the ``T_R`` matrices of a model, then builds it.

    ``T_R[i, j] = <i, cell 0 | H | j, cell R>``; each bond must be added once (its conjugate
    ``(j, i, -R)`` comes from the hermitian conjugate in ``H(k)``).
    """

    def __init__(self, norb: int, dim_k: int) -> None:
        self.norb = norb
        self.dim_k = dim_k
        self.onsite = np.zeros((norb, norb), dtype=complex)
        self.hoppings: dict[tuple[int, ...], np.ndarray] = {}

    def _matrix(self, r: Sequence[int]) -> np.ndarray:
        key = tuple(int(x) for x in r)
        if len(key) != self.dim_k:
            raise ModelDefinitionError(f"R must have {self.dim_k} components, got {r!r}")
        return self.hoppings.setdefault(key, np.zeros((self.norb, self.norb), dtype=complex))

    def hop_block(self, block: Any, i: int, j: int, r: Sequence[int]) -> None:
        """Add ``block`` (n x n) to ``T_R[i:i+n, j:j+n]`` (``<i-block, 0 | H | j-block, R>``)."""
        b = np.atleast_2d(np.asarray(block, dtype=complex))
        n = b.shape[0]
        self._matrix(r)[i : i + n, j : j + n] += b

    def trig(self, kind: str, r: Sequence[int], matrix: Any) -> None:
        """Add ``f(2 pi k.R) * matrix`` to ``H(k)``, ``f`` = ``cos`` or ``sin``; ``matrix`` hermitian.

        ``cos(x) M = (M e^{ix} + h.c.) / 2`` and ``sin(x) M = (-i M / 2) e^{ix} + h.c.``.
        """
        m = np.asarray(matrix, dtype=complex)
        if kind == "cos":
            self._matrix(r)[...] += m / 2
        elif kind == "sin":
            self._matrix(r)[...] += -0.5j * m
        else:
            raise ModelDefinitionError(f"trigonometric term must be 'cos' or 'sin', got {kind!r}")

    def build(self, lattice: Any, positions: Any, **kwargs: Any) -> TightBindingModel:
        """The :class:`TightBindingModel` (keyword arguments go to its constructor)."""
        hops = {r: t for r, t in self.hoppings.items() if np.any(t != 0)}
        return TightBindingModel.from_hopping_matrices(lattice, positions, self.onsite, hops, **kwargs)


def permute_basis(matrix: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """``P M P^T`` with new orbital ``n`` equal to old orbital ``order[n]``."""
    idx = np.asarray(order)
    return matrix[np.ix_(idx, idx)]
