"""A minimal two-band Weyl semimetal with two nodes (cubic lattice, a = 1, dimensionless).

Reference for this lattice regularisation: N. P. Armitage, E. J. Mele and A. Vishwanath,
Rev. Mod. Phys. 90, 015001 (2018) (two-node minimal model); see also A. A. Burkov and L. Balents,
Phys. Rev. Lett. 107, 127205 (2011)::

    H(k) = sin kx s_x + sin ky s_y + (m (2 - cos kx - cos ky) + cos kz - cos k0) s_z

with ``k = 2 pi k_reduced`` and orbital 0 the ``s_z = +1`` state. For ``k0`` in (0, pi) and
``m > (1 + |cos k0|) / 2`` the only band touchings are the two Weyl nodes at
``k = (0, 0, +-k0)``, reduced ``(0, 0, +-k0 / (2 pi))`` (at kx, ky in {0, pi} other than 0,
``d_z >= 2m - 1 - |cos k0| > 0``). Near them ``H = dkx s_x + dky s_y -+ sin(k0) dkz s_z``, so
``sign det(d d_i / d k_j) = -+ sign(sin k0)``: the two nodes have
opposite chirality. Time reversal is broken; inversion ``P = s_z`` (parities +1, -1) holds and is
declared.
"""

from __future__ import annotations

import numpy as np

from td_physics.model import TightBindingModel
from td_physics.models._common import SIGMA_X, SIGMA_Y, SIGMA_Z, HoppingBuilder, check_finite, k_path

__all__ = ["weyl_two_band"]

REFERENCE = "N. P. Armitage, E. J. Mele and A. Vishwanath, Rev. Mod. Phys. 90, 015001 (2018)"


def weyl_two_band(m: float = 1.0, k0: float = np.pi / 2) -> TightBindingModel:
    """Two-band Weyl semimetal with nodes at reduced ``(0, 0, +-k0 / 2 pi)``; one occupied band.

    Reference: Armitage, Mele and Vishwanath, Rev. Mod. Phys. 90, 015001 (2018).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(weyl_two_band().eigvalsh([0.0, 0.0, 0.25]), 6)
    array([[0., 0.]])
    """
    check_finite(m=m, k0=k0)
    builder = HoppingBuilder(norb=2, dim_k=3)
    builder.onsite += (2 * m - np.cos(k0)) * SIGMA_Z
    builder.trig("sin", (1, 0, 0), SIGMA_X)
    builder.trig("sin", (0, 1, 0), SIGMA_Y)
    builder.trig("cos", (1, 0, 0), -m * SIGMA_Z)
    builder.trig("cos", (0, 1, 0), -m * SIGMA_Z)
    builder.trig("cos", (0, 0, 1), SIGMA_Z)
    model = builder.build(np.eye(3), np.zeros((2, 3)), labels=["a", "b"], occupied=1, name="Weyl two-band")
    model.set_inversion([0, 1], [1, -1], [0.0, 0.0, 0.0])
    node = k0 / (2 * np.pi)
    model.metadata.update(
        k_path=k_path(
            [(0, 0, -0.5), (0, 0, 0), (0, 0, 0.5), (0.5, 0, 0.5), (0.5, 0, 0), (0, 0, 0)],
            ["Z'", "Γ", "Z", "R_x", "X", "Γ"],
        ),
        reference=REFERENCE,
        units={"energy": "dimensionless", "length": "dimensionless"},
        parameters={"m": m, "k0": k0},
        weyl_nodes_reduced=[[0.0, 0.0, node], [0.0, 0.0, -node]],
    )
    return model
