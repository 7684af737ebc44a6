"""Topological superconductors as BdG models (the basis, Nambu doubling and factor 1/2 of
:mod:`td_physics.bdg`); dimensionless, lattice constant 1, ``k = 2 pi k_reduced``.

* :func:`kitaev_chain` (A. Yu. Kitaev, Phys.-Usp. 44, 131 (2001)): spinless chain, ::

      H = sum_j [-t (a_j^+ a_{j+1} + h.c.) - mu a_j^+ a_j + Delta a_j a_{j+1} + Delta a_{j+1}^+ a_j^+]

  exactly as Kitaev writes it (real ``Delta``; the constant ``mu/2`` per site dropped), so
  ``D_{+1} = -Delta`` and ``H_BdG(k) = (-2t cos k - mu) tau_z + 2 Delta sin k tau_y``. Topological
  (Majorana number -1, one Majorana zero mode at each end of an open chain) iff ``|mu| < 2|t|`` and
  ``Delta != 0``. The model is real, so ``tau_x`` is a chiral symmetry (class BDI); its winding number
  is ``-sign(t Delta)`` in the topological phase and 0 outside.
* :func:`p_wave_superconductor` (N. Read and D. Green, Phys. Rev. B 61, 10267 (2000)): spinless
  square lattice, ``xi(k) = -2t (cos kx + cos ky) - mu``, pairing ``(1/2) sum_k Delta(k) c_k^dagger
  c_{-k}^dagger + h.c.`` with ``Delta(k) = Delta (sin kx - i sin ky)``, the lattice form of Read and
  Green's ``Delta_k = Delta (k_x - i k_y)`` (their p_x + i p_y state). Then
  ``H_BdG(k) = d(k) . tau`` with ``d = (Delta sin kx, Delta sin ky, xi(k))``. The Chern number of the
  negative-energy band (PythTB's Berry sign, as every Chern number of td-physics) is ``sign(mu)``
  for ``0 < |mu| < 4|t|`` and 0 for ``|mu| > 4|t|``, whatever the signs of ``t`` and ``Delta != 0``:
  the skyrmion number ``(1/4 pi) int d_hat . (dx d_hat x dy d_hat)`` of ``d``, the sum of
  ``sign(det d(d_x, d_y)/d(kx, ky)) sign(d_z) / 2`` over the four zeros of ``(d_x, d_y)`` at
  ``kx, ky in {0, pi}``.
* :func:`helical_p_wave_superconductor` (class DIII; X.-L. Qi, T. L. Hughes, S. Raghu and
  S.-C. Zhang, Phys. Rev. Lett. 102, 187001 (2009)): spin up pairs as p + ip above and spin down as
  its time-reversed partner, ``Delta(k) = Delta (sin kx s_z - i sin ky s_0)`` (spin-down amplitude
  ``-Delta (sin kx + i sin ky)``), so that ``diag(i s_y, i s_y) K`` (T^2 = -1) is a symmetry. Its Z2 is
  the spin-up Chern number mod 2: 1 iff ``0 < |mu| < 4|t|``.

Inversion: the pairings are odd, so ``P = tau_z`` (parity +1 on particles, -1 on holes, site at the
origin) is a symmetry of all three models and is declared.
"""

from __future__ import annotations

import numpy as np

from td_physics.bdg import Pairing, bdg_model, chiral_p_wave
from td_physics.model import TightBindingModel
from td_physics.models._common import SIGMA_0, SIGMA_Z, SQUARE_K_PATH, check_finite, k_path, record_factory

__all__ = ["kitaev_chain", "p_wave_superconductor", "helical_p_wave_superconductor"]

KITAEV = "A. Yu. Kitaev, Phys.-Usp. 44, 131 (2001)"
READ_GREEN = "N. Read and D. Green, Phys. Rev. B 61, 10267 (2000)"
QHRZ = "X.-L. Qi, T. L. Hughes, S. Raghu and S.-C. Zhang, Phys. Rev. Lett. 102, 187001 (2009)"

CHAIN_K_PATH = k_path([(-0.5,), (0.0,), (0.5,)], ["-X", "Γ", "X"])


def _square_normal(t: float, spinful: bool) -> TightBindingModel:
    """Nearest-neighbour square lattice, ``h(k) = -2t (cos kx + cos ky)`` on each orbital."""
    normal = TightBindingModel(np.eye(2), [[0.0, 0.0]], spinful=spinful, labels=["c"])
    for spin in range(normal.norb):
        normal.add_hopping(-t, spin, spin, (1, 0))
        normal.add_hopping(-t, spin, spin, (0, 1))
    return normal


def _declare_tau_z(model: TightBindingModel) -> None:
    """Declare inversion ``P = tau_z`` about the origin (odd-parity pairing)."""
    n = model.norb // 2
    model.set_inversion(list(range(model.norb)), [1] * n + [-1] * n, [0.0] * model.dim_r)


def kitaev_chain(t: float = 1.0, mu: float = 0.0, delta: float = 1.0) -> TightBindingModel:
    """Kitaev's p-wave chain as a two-band BdG model (one occupied band); signs in the module docstring.

    Reference: Kitaev, Phys.-Usp. 44, 131 (2001).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(kitaev_chain(t=1.0, mu=0.5, delta=0.4).eigvalsh([[0.0], [0.5]]), 6)  # +-|2t + mu|, +-|2t - mu|
    array([[-2.5,  2.5],
           [-1.5,  1.5]])
    """
    check_finite(t=t, mu=mu, delta=delta)
    normal = TightBindingModel([[1.0]], [[0.0]], labels=["a"])
    normal.add_hopping(-t, 0, 0, (1,))
    pairing = Pairing.from_matrices({(1,): [[-delta]]}, norb=1, dim_k=1, name="p-wave")
    model = bdg_model(normal, pairing, mu=mu, name="Kitaev chain")
    _declare_tau_z(model)
    return record_factory(model, CHAIN_K_PATH, KITAEV, "dimensionless", {"t": t, "mu": mu, "delta": delta})


def p_wave_superconductor(t: float = 1.0, mu: float = 1.0, delta: float = 1.0) -> TightBindingModel:
    """Spinless p + ip superconductor on the square lattice, two BdG bands (one occupied).

    Reference: Read and Green, Phys. Rev. B 61, 10267 (2000); signs in the module docstring.

    Examples
    --------
    >>> from td_physics.invariants import chern_number
    >>> chern_number(p_wave_superconductor(t=1.0, mu=1.0, delta=1.0)).value
    1
    >>> chern_number(p_wave_superconductor(t=1.0, mu=-1.0, delta=1.0)).value
    -1
    """
    check_finite(t=t, mu=mu, delta=delta)
    normal = _square_normal(t, spinful=False)
    model = bdg_model(normal, chiral_p_wave(normal, delta, chirality=1), mu=mu, name="p+ip superconductor")
    _declare_tau_z(model)
    return record_factory(model, SQUARE_K_PATH, READ_GREEN, "dimensionless", {"t": t, "mu": mu, "delta": delta})


def helical_p_wave_superconductor(t: float = 1.0, mu: float = 1.0, delta: float = 1.0) -> TightBindingModel:
    """Time-reversal-invariant (class DIII) helical p-wave superconductor, four BdG bands (two occupied).

    Spin up is the p + ip model of :func:`p_wave_superconductor`, spin down its time-reversed p - ip
    partner. Reference: Qi, Hughes, Raghu and Zhang, Phys. Rev. Lett. 102, 187001 (2009).

    Examples
    --------
    >>> from td_physics.invariants import z2_invariant
    >>> z2_invariant(helical_p_wave_superconductor(t=1.0, mu=1.0, delta=1.0)).value
    1
    """
    check_finite(t=t, mu=mu, delta=delta)
    normal = _square_normal(t, spinful=True)
    mats = {(1, 0): -0.5j * delta * SIGMA_Z, (0, 1): -0.5 * delta * SIGMA_0}
    pairing = Pairing.from_matrices(mats, norb=2, dim_k=2, name="helical p-wave")
    model = bdg_model(normal, pairing, mu=mu, name="helical p-wave superconductor")
    _declare_tau_z(model)
    return record_factory(model, SQUARE_K_PATH, QHRZ, "dimensionless", {"t": t, "mu": mu, "delta": delta})
