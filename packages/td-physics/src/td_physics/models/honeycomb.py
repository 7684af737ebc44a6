"""The honeycomb geometry shared by graphene, Haldane, Kane-Mele and the buckled Xenes.

Lattice (rows, Angstrom or dimensionless) ``a1 = a (1, 0)``, ``a2 = a (1/2, sqrt(3)/2)``;
sublattice A at reduced ``(1/3, 1/3)`` (site 0), B at ``(2/3, 2/3)`` (site 1). A buckled sheet is
embedded in 3D with a third, non-periodic vector ``(0, 0, c)`` and A at ``z = +buckling``, B at
``z = -buckling``.

Sign convention for second neighbours (the one of Haldane 1988 and Kane & Mele 2005): for the
matrix element ``<end | H | start>`` of a second-neighbour hop, let ``d1`` be the bond from the
start site to the common nearest neighbour and ``d2`` the bond from there to the end site. Then
``nu = sign((d1 x d2)_z) = +1`` when the path turns left (counter-clockwise seen from +z) and
``-1`` when it turns right. The geometry is computed, not tabulated.

High-symmetry points (reduced): Gamma (0, 0), K (2/3, 1/3), K' (1/3, 2/3), M (1/2, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from td_physics.models._common import k_path
from td_physics.models._geometry import Hop, neighbour_shells, turn_vectors

__all__ = [
    "HoneycombGeometry",
    "SecondNeighbourHop",
    "honeycomb_geometry",
    "spinful_site_permutation",
    "K_POINT",
    "K_PRIME_POINT",
    "HONEYCOMB_K_PATH",
]

K_POINT = (2.0 / 3.0, 1.0 / 3.0)
K_PRIME_POINT = (1.0 / 3.0, 2.0 / 3.0)
HONEYCOMB_K_PATH = k_path([(0.0, 0.0), K_POINT, (0.5, 0.0), (0.0, 0.0)], ["Γ", "K", "M", "Γ"])


@dataclass(frozen=True)
class SecondNeighbourHop:
    """A second-neighbour hop with its chirality ``nu`` (+1 left turn) and its bonds d1, d2."""

    hop: Hop
    nu: int
    d1: np.ndarray
    d2: np.ndarray


@dataclass(frozen=True)
class HoneycombGeometry:
    """Lattice, reduced site positions and the bonds of a honeycomb sheet."""

    lattice: np.ndarray  # (dim_r, dim_r), rows
    sites: np.ndarray  # (2, dim_r) reduced: A, B
    nearest: list[Hop]  # 3 bonds A-B, each once
    second: list[SecondNeighbourHop]  # 6 bonds (3 A-A, 3 B-B), each once
    inversion_centre: tuple[float, ...]  # bond centre, maps A <-> B


@lru_cache(maxsize=64)
def honeycomb_geometry(a: float = 1.0, buckling: float | None = None, c: float = 20.0) -> HoneycombGeometry:
    """The honeycomb sheet with lattice constant ``a``; 3D with ``z = +-buckling`` if given.

    Cached (factories are called thousands of times in phase diagrams); the arrays of the
    returned geometry are read-only.
    """
    planar = np.array([[1.0, 0.0], [0.5, np.sqrt(3.0) / 2.0]]) * a
    if buckling is None:
        lattice = planar
        sites = np.array([[1 / 3, 1 / 3], [2 / 3, 2 / 3]])
        centre: tuple[float, ...] = (0.5, 0.5)
    else:
        lattice = np.zeros((3, 3))
        lattice[:2, :2] = planar
        lattice[2, 2] = c
        sites = np.array([[1 / 3, 1 / 3, buckling / c], [2 / 3, 2 / 3, -buckling / c]])
        centre = (0.5, 0.5, 0.0)
    (d_nn, _), (nearest, second_hops) = neighbour_shells(lattice, sites, dim_k=2, n_shells=2)
    second = []
    for hop in second_hops:
        d1, d2 = turn_vectors(lattice, sites, 2, hop, d_nn)
        cross_z = d1[0] * d2[1] - d1[1] * d2[0]
        second.append(SecondNeighbourHop(hop, int(np.sign(cross_z)), d1, d2))
    for arr in (lattice, sites, *(h.d1 for h in second), *(h.d2 for h in second)):
        arr.setflags(write=False)
    return HoneycombGeometry(lattice, sites, nearest, second, centre)


def spinful_site_permutation(site_perm: list[int]) -> list[int]:
    """Orbital permutation ``2 s + sigma -> 2 site_perm[s] + sigma`` of a spinful model."""
    return [2 * site_perm[o // 2] + o % 2 for o in range(2 * len(site_perm))]
