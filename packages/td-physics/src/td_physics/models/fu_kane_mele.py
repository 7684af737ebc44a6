"""The Fu-Kane-Mele model of a 3D topological insulator on the diamond lattice.

Reference: L. Fu, C. L. Kane and E. J. Mele, Phys. Rev. Lett. 98, 106803 (2007)::

    H = sum_<ij> t_ij c_i^+ c_j + i (8 lambda_so / a^2) sum_<<ij>> c_i^+ s . (d1_ij x d2_ij) c_j

Geometry: fcc lattice vectors ``a/2 (0,1,1), a/2 (1,0,1), a/2 (1,1,0)`` (rows), sites A at reduced
(0, 0, 0) and B at (1/4, 1/4, 1/4), i.e. Cartesian ``a/4 (1,1,1)``; dimensionless with ``a = 1``
by default.

Sign conventions (sums over ordered pairs; the coefficient is ``<i | H | j>``):

* nearest neighbours: ``t_ij = t`` for the three bonds along ``[1,-1,-1]``-type directions and
  ``t + dt`` for the bond along ``[111]`` (A at 0 to B at ``a/4 (1,1,1)``, same cell);
* spin-orbit: ``d1_ij`` and ``d2_ij`` are the two nearest-neighbour bond vectors traversed going
  from ``j`` to ``i`` in this order (``d1`` from ``j`` to the common neighbour, ``d2`` from there to
  ``i``); reversing the path flips ``d1 x d2``, which keeps the term hermitian. With the diamond
  geometry ``|d1 x d2| = sqrt(2) a^2 / 8``, so each spin-orbit matrix element has magnitude
  ``sqrt(2) lambda_so``.

Symmetries: time reversal (``i s_y K``) always; inversion about the bond centre ``a/8 (1,1,1)``
(reduced (1/8, 1/8, 1/8)) exchanging A and B with parities +1, declared. ``dt`` splits the four
L points and selects a strong phase for one sign of ``dt`` and a weak one (0;111) for the other
(FKM 2007); which one is checked by the invariant tests, not asserted here.
"""

from __future__ import annotations

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.model import TightBindingModel
from td_physics.models._common import (
    SIGMA_0,
    SIGMA_X,
    SIGMA_Y,
    SIGMA_Z,
    HoppingBuilder,
    check_finite,
    k_path,
    record_factory,
)
from td_physics.models._geometry import neighbour_shells, turn_vectors
from td_physics.models.honeycomb import spinful_site_permutation

__all__ = ["fu_kane_mele"]

REFERENCE = "L. Fu, C. L. Kane and E. J. Mele, Phys. Rev. Lett. 98, 106803 (2007)"
_K_PATH = k_path(
    [(0, 0, 0), (0.5, 0, 0.5), (0.5, 0.25, 0.75), (0.5, 0.5, 0.5), (0, 0, 0), (0.375, 0.375, 0.75)],
    ["Γ", "X", "W", "L", "Γ", "K"],
)

_PAULI = np.stack([SIGMA_X, SIGMA_Y, SIGMA_Z])  # (3, 2, 2)


def fu_kane_mele(t: float = 1.0, lambda_so: float = 0.125, dt: float = 0.4, a: float = 1.0) -> TightBindingModel:
    """The spinful four-band Fu-Kane-Mele model (dimensionless), two occupied bands.

    Reference: Fu, Kane and Mele, Phys. Rev. Lett. 98, 106803 (2007); signs in the module docstring.

    Examples
    --------
    >>> model = fu_kane_mele()
    >>> model.norb, model.n_occupied, model.is_time_reversal_symmetric()
    (4, 2, True)
    """
    check_finite(t=t, lambda_so=lambda_so, dt=dt, a=a)
    if a <= 0:
        raise ModelDefinitionError(f"lattice constant a must be positive, got {a}")
    lattice = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    sites = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
    (d_nn, _), (nearest, second) = neighbour_shells(lattice, sites, dim_k=3, n_shells=2, search=1)
    if len(nearest) != 4 or len(second) != 12:
        raise ModelDefinitionError(f"diamond geometry must give 4 + 12 bonds, got {len(nearest)} + {len(second)}")
    builder = HoppingBuilder(norb=4, dim_k=3)
    axis = np.array([1.0, 1.0, 1.0]) / np.sqrt(3.0)
    for hop in nearest:
        along_111 = abs(abs(hop.vector @ axis) - np.linalg.norm(hop.vector)) < 1e-9
        builder.hop_block((t + dt if along_111 else t) * SIGMA_0, 2 * hop.i, 2 * hop.j, hop.r)
    for hop in second:
        d1, d2 = turn_vectors(lattice, sites, 3, hop, d_nn, search=1)
        spin = np.einsum("a,aij->ij", np.cross(d1, d2), _PAULI)  # s . (d1 x d2)
        builder.hop_block(1j * (8 * lambda_so / a**2) * spin, 2 * hop.i, 2 * hop.j, hop.r)
    model = builder.build(lattice, sites, spinful=True, labels=["A", "B"], occupied=2, name="Fu-Kane-Mele")
    model.set_inversion(spinful_site_permutation([1, 0]), [1] * 4, [0.125, 0.125, 0.125])
    return record_factory(
        model, _K_PATH, REFERENCE, "dimensionless", {"t": t, "lambda_so": lambda_so, "dt": dt, "a": a}
    )
