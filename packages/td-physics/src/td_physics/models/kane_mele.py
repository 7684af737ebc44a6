"""The Kane-Mele model; C. L. Kane and E. J. Mele, Phys. Rev. Lett. 95, 226801 (2005).

Dimensionless spinful model on the honeycomb of :mod:`td_physics.models.honeycomb` (a = 1)::

    H = t sum_<ij> c_i^+ c_j + i lambda_so sum_<<ij>> nu_ij c_i^+ s_z c_j
        + i lambda_r sum_<ij> c_i^+ (s x d_ij)_z c_j + lambda_v sum_i xi_i c_i^+ c_i  [+ exchange]

Sign conventions (each sum runs over ordered pairs, so the coefficient is the matrix element
``<i | H | j>``):

* ``nu_ij = +1`` when the path from ``j`` to ``i`` through their common nearest neighbour turns
  left (counter-clockwise seen from +z), ``-1`` when it turns right; this is Kane and Mele's
  ``nu_ij = (2/sqrt 3) (d1 x d2)_z`` with ``d1, d2`` the bonds traversed going from ``j`` to ``i``,
  and the same rule as the Haldane factory;
* ``d_ij`` is the unit vector along the bond pointing from ``j`` to ``i``;
  ``(s x d)_z = s_x d_y - s_y d_x``;
* ``xi = +1`` on A (site 0), ``-1`` on B;
* ``exchange``: a float ``M`` adds ``M s_z`` on every site, a 3-vector ``m`` adds ``m . s``.

Closed forms used by the tests: with ``lambda_r = 0`` the levels at K are
``+-lambda_v +- 3 sqrt(3) lambda_so``, so the gap at K is ``2 | 3 sqrt(3) |lambda_so| - |lambda_v| |``
and the model is a Z2 insulator iff ``|lambda_v| < 3 sqrt(3) lambda_so`` (Kane & Mele).
Time reversal (``i s_y K``) holds when the exchange is zero; inversion about the bond centre is
declared when ``lambda_v = lambda_r = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from td_physics.fields import exchange_field
from td_physics.model import TightBindingModel
from td_physics.models._common import SIGMA_0, SIGMA_X, SIGMA_Y, SIGMA_Z, HoppingBuilder, check_finite, record_factory
from td_physics.models.honeycomb import HONEYCOMB_K_PATH, honeycomb_geometry, spinful_site_permutation

__all__ = ["kane_mele", "rashba_matrix"]

REFERENCE = "C. L. Kane and E. J. Mele, Phys. Rev. Lett. 95, 226801 (2005)"


def rashba_matrix(direction: np.ndarray) -> np.ndarray:
    """The 2x2 spin matrix ``(s x d_hat)_z = s_x d_y - s_y d_x`` of the in-plane unit vector of ``direction``."""
    d = np.asarray(direction, dtype=float)[:2]
    d = d / np.linalg.norm(d)
    return SIGMA_X * d[1] - SIGMA_Y * d[0]


def kane_mele(
    t: float = 1.0,
    lambda_so: float = 0.06,
    lambda_r: float = 0.0,
    lambda_v: float = 0.0,
    exchange: float | Sequence[float] = 0.0,
) -> TightBindingModel:
    """The spinful four-band Kane-Mele model (dimensionless), two occupied bands.

    Reference: Kane and Mele, Phys. Rev. Lett. 95, 226801 (2005). Signs: module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> model = kane_mele(lambda_so=0.06, lambda_v=0.1)
    >>> e = model.eigvalsh([2 / 3, 1 / 3])[0]
    >>> bool(np.isclose(e[2] - e[1], 2 * abs(3 * np.sqrt(3) * 0.06 - 0.1)))
    True
    >>> model.is_time_reversal_symmetric()
    True
    """
    check_finite(t=t, lambda_so=lambda_so, lambda_r=lambda_r, lambda_v=lambda_v, exchange=exchange)
    geo = honeycomb_geometry(1.0)
    builder = HoppingBuilder(norb=4, dim_k=2)
    builder.onsite += np.kron(np.diag([lambda_v, -lambda_v]), SIGMA_0)
    for hop in geo.nearest:
        block = t * SIGMA_0 + 1j * lambda_r * rashba_matrix(hop.vector)
        builder.hop_block(block, 2 * hop.i, 2 * hop.j, hop.r)
    for nnn in geo.second:
        builder.hop_block(1j * lambda_so * nnn.nu * SIGMA_Z, 2 * nnn.hop.i, 2 * nnn.hop.j, nnn.hop.r)
    model = builder.build(geo.lattice, geo.sites, spinful=True, labels=["A", "B"], occupied=2, name="Kane-Mele")
    if lambda_v == 0 and lambda_r == 0:
        model.set_inversion(spinful_site_permutation([1, 0]), [1] * 4, geo.inversion_centre)
    model = record_factory(
        model,
        HONEYCOMB_K_PATH,
        REFERENCE,
        "dimensionless",
        {"t": t, "lambda_so": lambda_so, "lambda_r": lambda_r, "lambda_v": lambda_v, "exchange": exchange},
    )
    if np.any(np.asarray(exchange, dtype=float) != 0):
        model = exchange_field(model, exchange)
        model.metadata.pop("applied_fields", None)  # the exchange is part of this model's definition
    return model
