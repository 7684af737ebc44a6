"""The Benalcazar-Bernevig-Hughes (BBH) quadrupole insulator.

References: W. A. Benalcazar, B. A. Bernevig and T. L. Hughes, Science 357, 61 (2017) and
Phys. Rev. B 96, 245115 (2017), Eq. (6.28) there::

    h(k) = (gamma + lam cos kx) G4 + lam sin kx G3 + (gamma + lam cos ky) G2 + lam sin ky G1 + delta G0
    G0 = t3 s0,   Gj = -t2 sj (j = 1, 2, 3),   G4 = t1 s0,            k = 2 pi k_reduced

with ``t`` and ``s`` Pauli matrices and the basis ``(t, s) = (up, up), (up, down), (down, up),
(down, down)`` for orbitals 0..3 (the ``G`` are the paper's Gamma matrices; ``gamma_x = gamma_y = gamma``
and ``lambda_x = lambda_y = lam`` here). Dimensionless, square lattice ``a = 1``.

Sign conventions: exactly the formula above. Real space (read off it; ``<i, cell 0 | H | j, cell R>``):
orbital 0 sits at the upper-right corner of a square plaquette centred on the cell's origin, reduced
position ``(1/4, 1/4)``; orbital 1 lower left ``(-1/4, -1/4)``, orbital 2 upper left ``(-1/4, 1/4)``,
orbital 3 lower right ``(1/4, -1/4)``. Intra-cell bonds: 0-2 and 3-1 along x with ``gamma``, 0-3 with
``gamma`` and 2-1 with ``-gamma`` along y; inter-cell bonds: ``<0|H|2, +x> = <3|H|1, +x> = lam``,
``<0|H|3, +y> = lam``, ``<2|H|1, +y> = -lam``. Every plaquette, inside a cell or between cells, carries
one negative bond: a pi flux.

Phases (the closed form the tests check): at ``delta = 0`` the bands are doubly degenerate,
``E = +-sqrt(2 gamma^2 + 2 lam^2 + 2 gamma lam (cos kx + cos ky))``; the gap closes only at
``|gamma| = |lam|`` (at M for ``gamma = lam``, at Gamma for ``gamma = -lam``), and half filling (two
bands) is the quadrupole phase ``q_xy = 1/2`` when ``|gamma| < |lam|``, trivial ``q_xy = 0`` when
``|gamma| > |lam|``. Mirrors ``M_x = t1 s3`` and ``M_y = t1 s1`` and the chiral symmetry ``G0`` hold
at ``delta = 0``.

``delta`` is the paper's small ``delta G0`` term (orbitals 0 and 1 raised by ``delta``, 2 and 3
lowered): it breaks the chiral symmetry and the mirrors (keeping their product, a C2 rotation) so
that the four degenerate zero-energy corner states of a finite flake split into two at
about ``+delta`` and two at about ``-delta``, and half filling of the flake is unambiguous; the corners
then carry charges ``+-e/2``. It is 0 by default, and is not needed by the nested Wilson loop.
"""

from __future__ import annotations

import numpy as np

from td_physics.model import TightBindingModel
from td_physics.models._common import SQUARE_K_PATH, check_finite, record_factory

__all__ = ["bbh"]

REFERENCE = "W. A. Benalcazar, B. A. Bernevig and T. L. Hughes, Science 357, 61 (2017); Phys. Rev. B 96, 245115 (2017)"

# Reduced positions of the four orbitals around the cell's origin (module docstring).
_POSITIONS = np.array([[0.25, 0.25], [-0.25, -0.25], [-0.25, 0.25], [0.25, -0.25]])


def bbh(gamma: float, lam: float, *, delta: float = 0.0) -> TightBindingModel:
    """The BBH quadrupole model: intra-cell hopping ``gamma``, inter-cell ``lam``, regulator ``delta``.

    Four spinless orbitals per cell, two occupied bands (half filling). Reference: Benalcazar,
    Bernevig and Hughes, Science 357, 61 (2017); Phys. Rev. B 96, 245115 (2017). Geometry and signs
    in the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> model = bbh(0.5, 1.0)
    >>> model.norb, model.n_occupied
    (4, 2)
    >>> np.round(model.eigvalsh([0.5, 0.5]), 6)  # at M, E = +-sqrt(2) |gamma - lam|
    array([[-0.707107, -0.707107,  0.707107,  0.707107]])
    """
    check_finite(gamma=gamma, lam=lam, delta=delta)
    model = TightBindingModel(
        [[1.0, 0.0], [0.0, 1.0]],
        _POSITIONS,
        labels=["upper right", "lower left", "upper left", "lower right"],
        occupied=2,
        name="BBH",
    )
    model.set_onsite([delta, delta, -delta, -delta])
    for i, j, amp in ((0, 2, gamma), (3, 1, gamma), (0, 3, gamma), (2, 1, -gamma)):
        if amp:
            model.add_hopping(amp, i, j, (0, 0))
    for i, j, r, amp in ((0, 2, (1, 0), lam), (3, 1, (1, 0), lam), (0, 3, (0, 1), lam), (2, 1, (0, 1), -lam)):
        if amp:
            model.add_hopping(amp, i, j, r)
    return record_factory(
        model, SQUARE_K_PATH, REFERENCE, "dimensionless", {"gamma": gamma, "lam": lam, "delta": delta}
    )
