"""Two-centre Slater-Koster s/p blocks and the atomic spin-orbit matrix.

Slater-Koster (Phys. Rev. 94, 1498 (1954), Table I), for an orbital on atom ``i`` and one on
atom ``j`` displaced by ``d = r_j - r_i`` with direction cosines ``n = d / |d|``::

    <s_i|H|s_j>   = V_sss
    <s_i|H|p_a,j> = n_a V_sps          <p_a,i|H|s_j> = -n_a V_sps
    <p_a,i|H|p_b,j> = n_a n_b (V_pps - V_ppp) + delta_ab V_ppp

Harrison's signs (``V_sps > 0``, ``V_pps > 0``, ``V_sss < 0``, ``V_ppp < 0``) go with these
formulas. Orbital order per atom: ``s, px, py, pz`` (Cartesian axes of the lattice's frame).

Spin-orbit convention: ``H_SO = lambda L.S`` with ``S = sigma / 2`` and ``hbar = 1``, in the basis
``(px, py, pz) x (up, down)`` ordered as ``px up, px down, py up, py down, pz up, pz down``;
``<p_b|L_a|p_c> = -i eps_abc``. Its eigenvalues are ``lambda/2`` (four times, j = 3/2) and
``-lambda`` (twice, j = 1/2): the atomic p splitting is ``E(3/2) - E(1/2) = 3 lambda / 2``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["slater_koster_blocks", "spin_orbit_matrix"]

_EPS = np.zeros((3, 3, 3))
_EPS[0, 1, 2] = _EPS[1, 2, 0] = _EPS[2, 0, 1] = 1.0
_EPS[0, 2, 1] = _EPS[2, 1, 0] = _EPS[1, 0, 2] = -1.0
_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=complex)  # (3, 2, 2)


def slater_koster_blocks(vectors: np.ndarray, integrals: np.ndarray) -> np.ndarray:
    """The (nbond, 4, 4) blocks ``<mu, i | H | nu, j>`` over ``s, px, py, pz`` of both atoms.

    ``vectors`` (nbond, 3) Cartesian ``r_j - r_i`` (Angstrom); ``integrals`` (nbond, 4) the
    ``(V_sss, V_sps, V_pps, V_ppp)`` of each bond (eV). Atoms with an s-only basis use the
    ``[:1]`` rows or columns.
    """
    vec = np.asarray(vectors, dtype=float)
    n = vec / np.linalg.norm(vec, axis=1, keepdims=True)  # (nbond, 3) direction cosines
    v_sss, v_sps, v_pps, v_ppp = (integrals[:, k] for k in range(4))
    blocks = np.empty((len(vec), 4, 4))
    blocks[:, 0, 0] = v_sss
    blocks[:, 0, 1:] = n * v_sps[:, None]
    blocks[:, 1:, 0] = -n * v_sps[:, None]
    nn = n[:, :, None] * n[:, None, :]  # (nbond, 3, 3)
    blocks[:, 1:, 1:] = nn * (v_pps - v_ppp)[:, None, None] + np.eye(3)[None] * v_ppp[:, None, None]
    return blocks


def spin_orbit_matrix(lam: float) -> np.ndarray:
    """The (6, 6) matrix of ``lambda L.S`` on ``(px, py, pz) x (up, down)`` (see module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(np.linalg.eigvalsh(spin_orbit_matrix(1.0)), 12).tolist()
    [-1.0, -1.0, 0.5, 0.5, 0.5, 0.5]
    """
    return float(lam) * _unit_spin_orbit()


@lru_cache(maxsize=1)
def _unit_spin_orbit() -> np.ndarray:
    """L.S for lambda = 1, built once (read-only)."""
    l_ops = -1j * _EPS  # (3, 3, 3): l_ops[a] is L_a on (px, py, pz)
    out = 0.5 * sum(np.kron(l_ops[a], _PAULI[a]) for a in range(3))
    out.setflags(write=False)
    return out
