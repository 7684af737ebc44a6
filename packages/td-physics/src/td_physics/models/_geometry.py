"""Neighbour shells and the geometry of second-neighbour paths (Cartesian, Angstrom).

Convention used by every factory: a hop ``(i, j, R)`` is the matrix element
``<i, cell 0 | H | j, cell R>``: the electron goes from the *start* site ``j`` in cell ``R`` to the
*end* site ``i`` in the home cell. Its ``vector`` is ``x_i - (x_j + R)``, pointing from start to
end. For a second-neighbour hop through the unique common nearest neighbour ``m``,
``d1 = x_m - x_start`` and ``d2 = x_end - x_m`` (the two bonds traversed, in order).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from td_physics.exceptions import ModelDefinitionError

__all__ = ["Hop", "neighbour_shells", "turn_vectors"]

_TOL = 1e-6


@dataclass(frozen=True)
class Hop:
    """One bond, stored once: ``<i, 0 | H | j, R>``; ``vector`` points from start (j) to end (i)."""

    i: int
    j: int
    r: tuple[int, ...]
    vector: np.ndarray


def _cells(dim_k: int, search: int) -> list[tuple[int, ...]]:
    return list(itertools.product(range(-search, search + 1), repeat=dim_k))


def _cartesian(lattice: np.ndarray, sites: np.ndarray, dim_k: int, r: tuple[int, ...], j: int) -> np.ndarray:
    return sites[j] @ lattice + np.asarray(r, dtype=float) @ lattice[:dim_k]


def neighbour_shells(
    lattice: np.ndarray, sites: np.ndarray, dim_k: int, n_shells: int = 2, search: int = 2
) -> tuple[list[float], list[list[Hop]]]:
    """The first ``n_shells`` neighbour distances and, for each, its bonds (each bond once).

    ``sites`` are reduced (nsite, dim_r). A bond is kept in the orientation ``i < j``, or for
    ``i == j`` with ``R`` lexicographically positive, so that its conjugate is never listed.
    """
    lat = np.asarray(lattice, dtype=float)
    pos = np.asarray(sites, dtype=float)
    found: list[tuple[float, Hop]] = []
    for r in _cells(dim_k, search):
        for i in range(len(pos)):
            for j in range(len(pos)):
                if i > j or (i == j and not r > tuple([0] * dim_k)):
                    continue
                vec = pos[i] @ lat - _cartesian(lat, pos, dim_k, r, j)
                found.append((float(np.linalg.norm(vec)), Hop(i, j, r, vec)))
    distances: list[float] = []
    for d, _ in sorted(found, key=lambda item: item[0]):
        if d > _TOL and (not distances or d - distances[-1] > _TOL):
            distances.append(d)
        if len(distances) == n_shells:
            break
    shells = [[hop for d, hop in found if abs(d - dist) < _TOL] for dist in distances]
    return distances, shells


def turn_vectors(
    lattice: np.ndarray, sites: np.ndarray, dim_k: int, hop: Hop, nn_distance: float, search: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """``(d1, d2)`` of a second-neighbour ``hop`` through its unique common nearest neighbour."""
    lat = np.asarray(lattice, dtype=float)
    pos = np.asarray(sites, dtype=float)
    end = pos[hop.i] @ lat
    start = _cartesian(lat, pos, dim_k, hop.r, hop.j)
    mids = []
    for r in _cells(dim_k, search):
        for m in range(len(pos)):
            mid = _cartesian(lat, pos, dim_k, r, m)
            if (
                abs(np.linalg.norm(mid - end) - nn_distance) < _TOL
                and abs(np.linalg.norm(mid - start) - nn_distance) < _TOL
            ):
                mids.append(mid)
    if len(mids) != 1:
        raise ModelDefinitionError(
            f"a second-neighbour hop must have exactly one common nearest neighbour, got {len(mids)} for {hop}"
        )
    return mids[0] - start, end - mids[0]
