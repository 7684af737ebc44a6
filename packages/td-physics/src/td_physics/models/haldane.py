"""The Haldane model; F. D. M. Haldane, Phys. Rev. Lett. 61, 2015 (1988).

Dimensionless toy model on the honeycomb of :mod:`td_physics.models.honeycomb` (a = 1).

Sign conventions:

* on-site energy ``+m`` on sublattice A (site 0, reduced (1/3, 1/3)), ``-m`` on B;
* nearest-neighbour matrix element ``<A | H | B> = t1``;
* second neighbours: for ``<end | H | start>``, with ``d1`` the bond from the start site to the
  common nearest neighbour and ``d2`` the bond from there to the end site (Cartesian), the hop is
  counter-clockwise when the path turns left, ``(d1 x d2)_z > 0``, and then
  ``<end | H | start> = t2 exp(+i phi)``; clockwise hops get ``t2 exp(-i phi)``. The same rule
  holds on both sublattices, so the net flux through the unit cell is zero.

With this convention the levels are ``-3 t2 cos(phi) +- (m + 3 sqrt(3) t2 sin(phi))`` at
K = (2/3, 1/3) and ``-3 t2 cos(phi) +- (m - 3 sqrt(3) t2 sin(phi))`` at K' = (1/3, 2/3) (reduced),
so the gap closes when ``|m| = 3 sqrt(3) |t2 sin(phi)|``; the
project claims (and checks in the invariant tests) that the lower band has Chern number
``C = -sign(sin phi)`` when ``|m| < 3 sqrt(3) |t2 sin phi|``. Time reversal is broken for
``sin(phi) != 0``; inversion (A <-> B about the bond centre) holds only for ``m = 0`` and is then
declared.
"""

from __future__ import annotations

import numpy as np

from td_physics.model import TightBindingModel
from td_physics.models._common import HoppingBuilder, check_finite, record_factory
from td_physics.models.honeycomb import HONEYCOMB_K_PATH, honeycomb_geometry

__all__ = ["haldane"]

REFERENCE = "F. D. M. Haldane, Phys. Rev. Lett. 61, 2015 (1988)"


def haldane(t1: float = 1.0, t2: float = 0.15, phi: float = np.pi / 2, m: float = 0.0) -> TightBindingModel:
    """The spinless two-band Haldane model (dimensionless), one occupied band.

    Reference: Haldane, Phys. Rev. Lett. 61, 2015 (1988). See the module docstring for signs.

    Examples
    --------
    >>> import numpy as np
    >>> model = haldane(t2=0.1, phi=np.pi / 2, m=0.2)
    >>> levels = model.eigvalsh([[2 / 3, 1 / 3], [1 / 3, 2 / 3]])  # K, K'
    >>> bool(np.allclose(levels[:, 1], [0.2 + 3 * np.sqrt(3) * 0.1, abs(0.2 - 3 * np.sqrt(3) * 0.1)]))
    True
    """
    check_finite(t1=t1, t2=t2, phi=phi, m=m)
    geo = honeycomb_geometry(1.0)
    builder = HoppingBuilder(norb=2, dim_k=2)
    builder.onsite[0, 0], builder.onsite[1, 1] = m, -m
    for hop in geo.nearest:
        builder.hop_block(t1, hop.i, hop.j, hop.r)
    for nnn in geo.second:
        builder.hop_block(t2 * np.exp(1j * nnn.nu * phi), nnn.hop.i, nnn.hop.j, nnn.hop.r)
    model = builder.build(geo.lattice, geo.sites, labels=["A", "B"], occupied=1, name="Haldane")
    if m == 0:
        model.set_inversion([1, 0], [1, 1], geo.inversion_centre)
    return record_factory(model, HONEYCOMB_K_PATH, REFERENCE, "dimensionless", {"t1": t1, "t2": t2, "phi": phi, "m": m})
