"""Magnetic topological insulators: the Kane-Mele model with sublattice exchange, and the
antiferromagnetic Fu-Kane-Mele model.

**Kane-Mele with exchange** (:func:`kane_mele_exchange`): the Kane-Mele model of
:mod:`td_physics.models.kane_mele` (C. L. Kane and E. J. Mele, Phys. Rev. Lett. 95, 226801 (2005);
its signs) plus ``m_A . s`` on sublattice A and ``m_B . s`` on B (:func:`td_physics.magnetic.add_exchange`,
``J = 1``). ``m_A = m_B`` is a ferromagnet, ``m_A = -m_B`` a Neel antiferromagnet.

Closed form (``lambda_r = 0``, moments along z: ``m_A = M_A z``, ``m_B = M_B z``): ``s_z`` is
conserved and the spin-``s`` block (``s = +-1``) is a Haldane model with sublattice energies
``+-lambda_v + s M_{A,B}``, i.e. an energy shift ``s (M_A + M_B) / 2`` and a Dirac mass
``lambda_v + s M_s`` with ``M_s = (M_A - M_B) / 2``. Its levels at K and K' are
``s (M_A + M_B)/2 +- (lambda_v + s M_s -+ s 3 sqrt(3) lambda_so)``, so the block's gap closes when
``|lambda_v + s M_s| = 3 sqrt(3) |lambda_so|`` and its Chern number is

``C_s = -s sign(lambda_so) theta(3 sqrt(3) |lambda_so| - |lambda_v + s M_s|)``

(PythTB's Berry sign, as :func:`td_physics.invariants.chern_number`). The total ``C = C_up + C_down`` of
the two lowest bands, while the spin blocks do not overlap in energy (always for ``M_A = -M_B``), is

* 0 with spin Chern number ``(C_up - C_down)/2 = -sign(lambda_so)`` (quantum spin Hall) when both
  ``|lambda_v +- M_s| < 3 sqrt(3) |lambda_so|``;
* ``+-1`` (quantum anomalous Hall) when exactly one is: ``C = -sign(lambda_so)`` for
  ``|lambda_v + M_s| < 3 sqrt(3) |lambda_so| < |lambda_v - M_s|`` and ``+sign(lambda_so)`` the other way,
  with ``sigma_xy = -C e^2/h`` (:func:`td_physics.invariants.anomalous_hall_conductivity`'s sign);
* 0 (trivial) when neither is.

A uniform exchange ``M_A = M_B = M`` with ``lambda_v = 0`` keeps ``C = 0`` and shifts the blocks by
``+-M``: the gap ``2 (3 sqrt(3) |lambda_so| - |M|)`` closes at ``|M| = 3 sqrt(3) |lambda_so|`` (beyond,
the two spin blocks cross on a ring around K and K': a semimetal).

A uniform exchange with Rashba coupling and ``lambda_so = 0`` is the graphene quantum anomalous Hall
insulator of Z. Qiao et al., Phys. Rev. B 82, 161414(R) (2010): |C| = 2.

**Antiferromagnetic Fu-Kane-Mele** (:func:`afm_fu_kane_mele`): the construction of R. S. K. Mong,
A. M. Essin and J. E. Moore, Phys. Rev. B 81, 245209 (2010): the Fu-Kane-Mele diamond model of
:mod:`td_physics.models.fu_kane_mele` (its signs; ``t + dt`` on the [111] bond) in the magnetic cell
doubled along ``a3`` (:func:`td_physics.magnetic.model_supercell` with ``(1, 1, 2)``), with the
exchange ``+m . s`` on both sites of the first primitive cell and ``-m . s`` on both sites of the
second. Time reversal and the translation ``T_{1/2}`` by the parent ``a3`` (reduced ``(0, 0, 1/2)``)
are broken, ``S = Theta T_{1/2}`` and inversion (centre of the parent) are kept.

Closed form (derived here, the parity formula of Fang, Gilbert and Bernevig, PRB 88, 085406 (2013)):
at the parent's TRIMs the spin-orbit term vanishes and ``H = f tau_x`` in sublattice space with
``f = t + dt + t sum_i (-1)^{n_i}`` at ``k = (n_1, n_2, n_3) / 2``. The magnetic plane ``K_3 = 0``
holds four inversion-invariant momenta, each folding the parent pair ``(n_1, n_2, 0)`` and
``(n_1, n_2, 1)`` (values ``f_a``, ``f_b``); the exchange couples the pair within each parity sector
``tau_x = +-1``, giving levels ``tau (f_a + f_b)/2 +- sqrt(((f_a - f_b)/2)^2 + |m|^2)``, so
``delta = sign(f_a f_b - |m|^2)`` and

``(-1)^nu = sign[(4t + dt)(2t + dt) - |m|^2] * sign[dt (dt - 2t) - |m|^2]``

(the pairs (1,0) and (0,1) close together and cancel). For ``0 < dt < 2t`` the parent is a strong TI
(1;111) and nu = 1 up to ``|m|^2 = (4t + dt)(2t + dt)``; for ``-2t < dt < 0`` the parent is the weak
(0;111) phase and the exchange drives it into the AFTI at ``|m|^2 = dt (dt - 2t)``. The formula holds
where the bulk stays insulating (checked numerically by the invariant's ``min_gap``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.magnetic import add_exchange, model_supercell
from td_physics.model import TightBindingModel
from td_physics.models._common import check_finite, k_path, record_factory
from td_physics.models.fu_kane_mele import REFERENCE as FKM_REFERENCE
from td_physics.models.fu_kane_mele import fu_kane_mele
from td_physics.models.honeycomb import HONEYCOMB_K_PATH
from td_physics.models.kane_mele import REFERENCE as KM_REFERENCE
from td_physics.models.kane_mele import kane_mele

__all__ = ["kane_mele_exchange", "afm_fu_kane_mele", "moment_vector"]

MEM_REFERENCE = "R. S. K. Mong, A. M. Essin and J. E. Moore, Phys. Rev. B 81, 245209 (2010)"
QAH_REFERENCE = "Z. Qiao et al., Phys. Rev. B 82, 161414(R) (2010)"

#: Gamma-X-M-Gamma-Z of the magnetic cell of :func:`afm_fu_kane_mele` (reduced magnetic coordinates).
AFM_K_PATH = k_path([(0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0), (0, 0, 0), (0, 0, 0.5)], ["Γ", "X", "M", "Γ", "Z"])


def moment_vector(value: float | Sequence[float], name: str) -> np.ndarray:
    """A moment given as a number (along z) or a Cartesian 3-vector, as a (3,) array; ``name`` is in the error.

    >>> moment_vector(0.2, "m").tolist()
    [0.0, 0.0, 0.2]
    """
    check_finite(**{name: value})
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.array([0.0, 0.0, float(arr)])
    if arr.shape != (3,):
        raise ModelDefinitionError(f"{name} must be a number (along z) or a Cartesian 3-vector, got shape {arr.shape}")
    return arr.copy()


def kane_mele_exchange(
    m_a: float | Sequence[float] = 0.0,
    m_b: float | Sequence[float] = 0.0,
    *,
    t: float = 1.0,
    lambda_so: float = 0.06,
    lambda_r: float = 0.0,
    lambda_v: float = 0.0,
) -> TightBindingModel:
    """The Kane-Mele model with exchange ``m_a . s`` on sublattice A and ``m_b . s`` on B (dimensionless).

    ``m_a``, ``m_b``: numbers (along z) or Cartesian 3-vectors. Two occupied bands. Closed-form phase
    diagram and signs in the module docstring.

    Reference: Kane and Mele, Phys. Rev. Lett. 95, 226801 (2005); with Rashba, Qiao et al., Phys. Rev. B
    82, 161414(R) (2010).

    Examples
    --------
    >>> from td_physics.invariants import chern_number
    >>> chern_number(kane_mele_exchange(0.3, -0.3, lambda_so=0.06, lambda_v=0.1)).value
    1
    >>> chern_number(kane_mele_exchange(0.05, -0.05, lambda_so=0.06)).value
    0
    """
    check_finite(t=t, lambda_so=lambda_so, lambda_r=lambda_r, lambda_v=lambda_v)
    moments = np.stack([moment_vector(m_a, "m_a"), moment_vector(m_b, "m_b")])  # (2, 3)
    model = add_exchange(kane_mele(t=t, lambda_so=lambda_so, lambda_r=lambda_r, lambda_v=lambda_v), moments)
    model.metadata.pop("applied_fields", None)  # the exchange is part of this model's definition
    model.name = "Kane-Mele + exchange"
    return record_factory(
        model,
        HONEYCOMB_K_PATH,
        f"{KM_REFERENCE}; {QAH_REFERENCE}",
        "dimensionless",
        {
            "m_a": moments[0].tolist(),
            "m_b": moments[1].tolist(),
            "t": t,
            "lambda_so": lambda_so,
            "lambda_r": lambda_r,
            "lambda_v": lambda_v,
        },
    )


def afm_fu_kane_mele(
    m: float | Sequence[float] = 0.5,
    dt: float = 0.4,
    *,
    t: float = 1.0,
    lambda_so: float = 0.125,
) -> TightBindingModel:
    """The antiferromagnetic Fu-Kane-Mele model (Mong, Essin and Moore 2010), dimensionless.

    Eight orbitals (four sites: A, B of the first parent cell with moment ``+m``, then A, B of the
    second with ``-m``), four occupied bands; ``m`` a number (along z) or a Cartesian 3-vector. ``S``
    translates by reduced ``(0, 0, 1/2)``; the antiferromagnetic Z2 lives on the plane ``k_3 = 0``
    (:func:`td_physics.invariants.antiferromagnetic_z2` with ``axis=2``). Closed form and signs in the
    module docstring.

    Reference: Mong, Essin and Moore, Phys. Rev. B 81, 245209 (2010); Fu, Kane and Mele, Phys. Rev. Lett.
    98, 106803 (2007).

    Examples
    --------
    >>> model = afm_fu_kane_mele(m=0.4, dt=0.4)
    >>> model.norb, model.n_occupied, model.inversion is not None
    (8, 4, True)
    """
    moment = moment_vector(m, "m")
    parent = fu_kane_mele(t=t, lambda_so=lambda_so, dt=dt)
    cell = model_supercell(parent, (1, 1, 2))
    model = add_exchange(cell, np.stack([moment, moment, -moment, -moment]))
    model.metadata.pop("applied_fields", None)
    model.name = "AFM Fu-Kane-Mele"
    return record_factory(
        model,
        AFM_K_PATH,
        f"{MEM_REFERENCE}; {FKM_REFERENCE}",
        "dimensionless",
        {"m": moment.tolist(), "dt": dt, "t": t, "lambda_so": lambda_so},
        s_translation=[0.0, 0.0, 0.5],
    )
