"""The Qi-Wu-Zhang (QWZ) two-band Chern insulator; X.-L. Qi, Y.-S. Wu and S.-C. Zhang,
Phys. Rev. B 74, 085308 (2006).

Dimensionless, square lattice (a = 1), two spinless orbitals at the same site (0, 0)::

    H(k) = t sin kx s_x + t sin ky s_y + (m + t cos kx + t cos ky) s_z,   k = 2 pi k_reduced

Sign conventions: exactly the formula above (``s`` are Pauli matrices in orbital space, orbital 0
is the ``s_z = +1`` state). The energies at Gamma are ``+-|m + 2t|``, at X ``+-|m|``, at M
``+-|m - 2t|``; the gap closes at ``m = 0, +-2t``. Inversion ``P = s_z`` (parities +1, -1) holds
and is declared; time reversal (``K``) is broken when ``t != 0``.
"""

from __future__ import annotations

from td_physics.model import TightBindingModel
from td_physics.models._common import (
    SIGMA_X,
    SIGMA_Y,
    SIGMA_Z,
    SQUARE_K_PATH,
    HoppingBuilder,
    check_finite,
    record_factory,
)

__all__ = ["qwz"]

REFERENCE = "X.-L. Qi, Y.-S. Wu and S.-C. Zhang, Phys. Rev. B 74, 085308 (2006)"


def qwz(m: float, t: float = 1.0) -> TightBindingModel:
    """The QWZ model with mass ``m`` and hopping ``t`` (dimensionless), one occupied band.

    Reference: Qi, Wu and Zhang, Phys. Rev. B 74, 085308 (2006).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(qwz(-1.0).eigvalsh([0.0, 0.0]), 6)
    array([[-1.,  1.]])
    """
    check_finite(m=m, t=t)
    builder = HoppingBuilder(norb=2, dim_k=2)
    builder.onsite += m * SIGMA_Z
    for axis, sigma in ((0, SIGMA_X), (1, SIGMA_Y)):
        r = [0, 0]
        r[axis] = 1
        builder.trig("sin", r, t * sigma)
        builder.trig("cos", r, t * SIGMA_Z)
    model = builder.build([[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], labels=["a", "b"], occupied=1, name="QWZ")
    model.set_inversion([0, 1], [1, -1], [0.0, 0.0])
    return record_factory(model, SQUARE_K_PATH, REFERENCE, "dimensionless", {"m": m, "t": t})
