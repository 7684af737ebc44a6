"""Buckled honeycomb Xenes (silicene, germanene, stanene) in Ezawa's tight-binding model.

References: M. Ezawa, New J. Phys. 14, 033003 (2012) (the Hamiltonian and the field-driven
transition); C.-C. Liu, W. Feng and Y. Yao, Phys. Rev. Lett. 107, 076802 (2011) and C.-C. Liu,
H. Jiang and Y. Yao, Phys. Rev. B 84, 195430 (2011) (silicene and germanene parameters).

Hamiltonian (eV; energies, Angstrom; lengths)::

    H = -t sum_<ij> c_i^+ c_j + i (lambda_so / (3 sqrt 3)) sum_<<ij>> nu_ij c_i^+ s_z c_j
        - i (2/3) lambda_r2 sum_<<ij>> mu_ij c_i^+ (s x d_ij)_z c_j

Sign conventions (sums over ordered pairs; the coefficient is ``<i | H | j>``):

* ``nu_ij = +1`` when the path from ``j`` to ``i`` through the common nearest neighbour turns
  left (counter-clockwise seen from +z), ``-1`` otherwise (as in the Haldane and Kane-Mele
  factories);
* ``mu_ij = +1`` when ``i, j`` are on sublattice A, ``-1`` on B;
* ``d_ij`` is the in-plane unit vector from ``j`` to ``i``; ``(s x d)_z = s_x d_y - s_y d_x``.

Geometry: the honeycomb of :mod:`td_physics.models.honeycomb` with lattice constant ``a``,
embedded in 3D (third, non-periodic lattice vector ``(0, 0, c)``), sublattice A at
``z = +buckling`` and B at ``z = -buckling``: the vertical A-B separation is ``2 * buckling``
(Ezawa's ``2 l``). Ezawa's field-induced nearest-neighbour Rashba term ``lambda_R1`` is not
included. A perpendicular field ``E_z`` (V/A) applied with
:func:`td_physics.fields.electric_field` puts ``+-l E_z`` on A and B, and the gap at K becomes
``2 |lambda_so - l |E_z||``; it closes at the critical field ``lambda_so / l`` stored in
``metadata["critical_field_V_per_A"]``.
"""

from __future__ import annotations

import numpy as np

from td_physics.model import TightBindingModel
from td_physics.models._common import SIGMA_0, SIGMA_Z, HoppingBuilder, check_finite, record_factory
from td_physics.models.honeycomb import HONEYCOMB_K_PATH, honeycomb_geometry, spinful_site_permutation
from td_physics.models.kane_mele import rashba_matrix

__all__ = ["buckled_honeycomb", "silicene", "germanene", "stanene"]

REFERENCE = (
    "M. Ezawa, New J. Phys. 14, 033003 (2012); C.-C. Liu, W. Feng and Y. Yao, Phys. Rev. Lett. 107, 076802 (2011)"
)


def buckled_honeycomb(
    t: float,
    lambda_so: float,
    lambda_r2: float = 0.0,
    buckling: float = 0.23,
    a: float = 3.86,
    c: float = 20.0,
    name: str = "buckled honeycomb",
) -> TightBindingModel:
    """Ezawa's four-band model of a buckled honeycomb sheet; eV and Angstrom, two occupied bands.

    ``t`` nearest-neighbour hopping (eV, enters as ``-t``), ``lambda_so`` and ``lambda_r2``
    spin-orbit couplings (eV), ``buckling`` the height ``l`` of A above the plane (A), ``a`` the
    lattice constant (A), ``c`` the length of the non-periodic third lattice vector (A). The gap at
    K is ``2 |lambda_so|`` without field. Reference: Ezawa, New J. Phys. 14, 033003 (2012).

    Examples
    --------
    >>> import numpy as np
    >>> model = buckled_honeycomb(1.6, 0.0039, 0.0007)
    >>> e = model.eigvalsh([2 / 3, 1 / 3])[0]
    >>> round(float(e[2] - e[1]), 6)
    0.0078
    """
    check_finite(t=t, lambda_so=lambda_so, lambda_r2=lambda_r2, buckling=buckling, a=a, c=c)
    geo = honeycomb_geometry(a, buckling=buckling, c=c)
    builder = HoppingBuilder(norb=4, dim_k=2)
    for hop in geo.nearest:
        builder.hop_block(-t * SIGMA_0, 2 * hop.i, 2 * hop.j, hop.r)
    for nnn in geo.second:
        mu = 1.0 if nnn.hop.i == 0 else -1.0
        block = 1j * lambda_so / (3 * np.sqrt(3)) * nnn.nu * SIGMA_Z
        block = block - 1j * (2.0 / 3.0) * lambda_r2 * mu * rashba_matrix(nnn.hop.vector)
        builder.hop_block(block, 2 * nnn.hop.i, 2 * nnn.hop.j, nnn.hop.r)
    model = builder.build(geo.lattice, geo.sites, dim_k=2, spinful=True, labels=["A", "B"], occupied=2, name=name)
    model.set_inversion(spinful_site_permutation([1, 0]), [1] * 4, geo.inversion_centre)
    return record_factory(
        model,
        HONEYCOMB_K_PATH,
        REFERENCE,
        "eV",
        {"t": t, "lambda_so": lambda_so, "lambda_r2": lambda_r2, "buckling": buckling, "a": a, "c": c},
        critical_field_V_per_A=abs(lambda_so) / abs(buckling) if buckling else float("inf"),
    )


def silicene() -> TightBindingModel:
    """Silicene: t = 1.6 eV, lambda_so = 3.9 meV, lambda_r2 = 0.7 meV, a = 3.86 A, l = 0.23 A.

    Source: the parameter table of Ezawa, New J. Phys. 14, 033003 (2012), which takes them from
    Liu, Feng and Yao, Phys. Rev. Lett. 107, 076802 (2011) and Liu, Jiang and Yao, Phys. Rev. B 84,
    195430 (2011). Critical field lambda_so / l = 17 meV/A.
    """
    model = buckled_honeycomb(1.6, 3.9e-3, 0.7e-3, buckling=0.23, a=3.86, name="silicene")
    model.metadata["reference"] = (
        "M. Ezawa, New J. Phys. 14, 033003 (2012); C.-C. Liu, W. Feng and Y. Yao, Phys. Rev. Lett. 107, 076802 (2011)"
    )
    return model


def germanene() -> TightBindingModel:
    """Germanene: t = 1.3 eV, lambda_so = 43 meV, lambda_r2 = 10.7 meV, a = 4.02 A, l = 0.33 A.

    Source: the parameter table of Ezawa, New J. Phys. 14, 033003 (2012), from Liu, Jiang and
    Yao, Phys. Rev. B 84, 195430 (2011).
    """
    model = buckled_honeycomb(1.3, 43e-3, 10.7e-3, buckling=0.33, a=4.02, name="germanene")
    model.metadata["reference"] = (
        "M. Ezawa, New J. Phys. 14, 033003 (2012); C.-C. Liu, H. Jiang and Y. Yao, Phys. Rev. B 84, 195430 (2011)"
    )
    return model


def stanene() -> TightBindingModel:
    """Stanene: t = 1.3 eV, lambda_so = 100 meV, a = 4.70 A, l = 0.40 A; lambda_r2 set to 0.

    Source: the Xene parameter table of M. Ezawa, J. Phys. Soc. Jpn. 84, 121003 (2015); the
    ~0.1 eV spin-orbit gap follows Y. Xu et al., Phys. Rev. Lett. 111, 136804 (2013). We have no
    source we trust for lambda_r2 of stanene, so it is zero (it does not change the gap at K).
    """
    model = buckled_honeycomb(1.3, 100e-3, 0.0, buckling=0.40, a=4.70, name="stanene")
    model.metadata["reference"] = (
        "M. Ezawa, J. Phys. Soc. Jpn. 84, 121003 (2015); Y. Xu et al., Phys. Rev. Lett. 111, 136804 (2013)"
    )
    return model
