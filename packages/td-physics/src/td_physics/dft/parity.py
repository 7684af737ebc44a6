"""Fu-Kane parities of DFT spinor states in an atom-centred basis.

Inversion ``r -> t - r`` (``t`` in reduced coordinates) maps atom ``a`` to atom ``b`` with
``t - tau_a = tau_b + R_a`` (``R_a`` a lattice vector). On the Bloch sums of the periodic gauge,
``phi_Mk = sum_R exp(2 pi i k.R) phi_M(r - tau_M - R)``, it acts at a time-reversal invariant
momentum (2k a reciprocal lattice vector) as

    I phi_{a mu, k} = (-1)^l exp(2 pi i k.R_a) phi_{b mu, k},

because a real spherical harmonic of degree ``l`` has parity ``(-1)^l``. The parity of the occupied
space at a TRIM is read from ``P = c^* S I c^T`` (spin summed), which is hermitian and unitary there
when the occupied space is closed under inversion; its eigenvalues are +-1 and come in Kramers pairs,
and ``delta = prod over pairs`` (Fu and Kane, PRB 76, 045302 (2007)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from td_physics.dft._gpaw import BasisLayout


@dataclass(frozen=True)
class Inversion:
    """An inversion ``r -> translation - r`` of the crystal: atom ``a`` goes to ``partner[a]`` + ``shift[a]``."""

    translation: np.ndarray  # (3,) reduced
    partner: np.ndarray  # (natoms,)
    shift: np.ndarray  # (natoms, 3) integer lattice vectors R_a


def find_inversion(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    numbers: np.ndarray,
    magmoms: np.ndarray | None = None,
    symprec: float = 1e-3,
) -> Inversion | None:
    """The crystal's inversion (spglib, with magnetic moments as a colour if given), or ``None``."""
    import spglib

    frac = np.asarray(frac_coords, dtype=float)
    types = np.asarray(numbers, dtype=int)
    if magmoms is not None:
        # moments are axial vectors: inversion keeps them, so they only split the atoms into colours
        _, colour = np.unique(np.round(np.asarray(magmoms, dtype=float), 3), return_inverse=True)
        types = types * 1000 + colour
    sym = spglib.get_symmetry((np.asarray(lattice, dtype=float), frac, types), symprec=symprec)
    if sym is None:
        return None
    for rot, trans in zip(sym["rotations"], sym["translations"]):
        if not np.array_equal(rot, -np.eye(3, dtype=int)):
            continue
        partner = np.empty(len(frac), dtype=int)
        shift = np.empty((len(frac), 3), dtype=int)
        image = trans - frac  # where each atom goes
        for a in range(len(frac)):
            diff = image[a] - frac  # (natoms, 3)
            dist = np.abs(diff - np.round(diff))
            candidates = np.where((dist.max(axis=1) < max(10 * symprec, 1e-3)) & (types == types[a]))[0]
            if len(candidates) != 1:
                break
            b = int(candidates[0])
            partner[a] = b
            shift[a] = np.round(image[a] - frac[b]).astype(int)
        else:
            return Inversion(np.asarray(trans, dtype=float), partner, shift)
    return None


def inversion_matrix(inv: Inversion, layout: BasisLayout, k: np.ndarray) -> np.ndarray:
    """The matrix ``I[M', M]`` of inversion on the LCAO Bloch sums at the TRIM ``k``."""
    nao = layout.nao
    mat = np.zeros((nao, nao), dtype=complex)
    for a in range(len(inv.partner)):
        b = int(inv.partner[a])
        ia = np.where(layout.atom == a)[0]
        ib = np.where(layout.atom == b)[0]
        phase = np.exp(2j * np.pi * float(np.dot(k, inv.shift[a])))
        mat[ib, ia] = ((-1.0) ** layout.l[ia]) * phase
    return mat


@dataclass(frozen=True)
class ParityResult:
    deltas: np.ndarray  # (ntrim,) +-1: product of parities over occupied Kramers pairs
    worst_deviation: float  # max over TRIMs of | |xi| - 1 | (how far the eigenvalues are from +-1)
    odd_pairs: list[int]  # TRIM indices where the number of -1 eigenvalues was odd (no Kramers pairing)
    n_minus: np.ndarray  # (ntrim,) number of negative-parity occupied states


def occupied_parities(coeffs: np.ndarray, overlap: np.ndarray, inversion_mats: np.ndarray, nocc: int) -> ParityResult:
    """Parity products of the lowest ``nocc`` spinor states at each TRIM.

    ``coeffs`` (ntrim, nstates, 2, nao), ``overlap`` (ntrim, nao, nao), ``inversion_mats`` (ntrim, nao, nao).
    """
    c = coeffs[:, :nocc]  # (t, n, s, M)
    si = overlap @ inversion_mats  # (t, M, M)
    p = np.einsum("tnsM,tMN,tmsN->tnm", np.conj(c), si, c)
    herm = 0.5 * (p + np.conj(np.swapaxes(p, -1, -2)))
    eig = np.linalg.eigvalsh(herm)  # (t, nocc)
    deviation = float(np.max(np.abs(np.abs(eig) - 1.0))) if eig.size else 0.0
    deviation = max(deviation, float(np.max(np.abs(p - herm))) if p.size else 0.0)
    n_minus = (eig < 0).sum(axis=1)
    odd = [int(i) for i in np.where(n_minus % 2)[0]]
    deltas = np.where((n_minus // 2) % 2 == 0, 1, -1)
    return ParityResult(deltas.astype(int), deviation, odd, n_minus.astype(int))


def trims() -> np.ndarray:
    """The eight TRIMs of a 3D crystal in reduced coordinates, in the order (n1, n2, n3) of 0/0.5."""
    g = np.array([0.0, 0.5])
    return np.array([[a, b, c] for a in g for b in g for c in g])


def fu_kane(deltas: np.ndarray, points: np.ndarray) -> tuple[int, int, int, int]:
    """(nu0; nu1 nu2 nu3) from the parity products at the eight TRIMs."""
    nu0 = int(np.prod(deltas) < 0)
    weak = tuple(int(np.prod(deltas[np.isclose(points[:, i], 0.5)]) < 0) for i in range(3))
    return (nu0, *weak)
