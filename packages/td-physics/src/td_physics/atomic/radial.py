"""Radial equations (Schroedinger, Koelling-Harmon scalar-relativistic, Dirac) by shooting.

Each equation is a first-order linear system in the grid index, integrated with the fourth-order
implicit Adams-Moulton formula as one unit lower-triangular banded system (LAPACK ``dtbtrs``, no
Python loop over grid points). Eigenvalues: outward integration from the origin (power-series
start) to the outermost classical turning point, inward integration from a WKB-estimated practical
infinity, node counting with bisection and a first-order energy correction from the mismatch.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg.lapack import dtbtrs

from td_physics.atomic.configuration import Z_MAX, check_relativity, parse_label
from td_physics.atomic.constants import SPEED_OF_LIGHT
from td_physics.atomic.grid import RadialGrid
from td_physics.exceptions import AtomicInputError, BoundStateError

__all__ = ["RadialProblem", "solve_radial", "coulomb_eigenvalue"]

_AM_A = 9.0 / 24.0
_AM_B = 19.0 / 24.0
_AM_C = 5.0 / 24.0
_AM_D = 1.0 / 24.0


def _am4_solve(m00, m01, m10, m11, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integrate ``y' = M(t) y`` (unit step in t) with the 4th-order Adams-Moulton formula.

    ``m**`` are the matrix elements at ``t = 0 .. L-1``; ``start`` is ``(3, 2)``: the solution at
    the first three points. The implicit step is linear, so the whole integration is one unit
    lower-triangular banded system (unknowns interleaved P0, Q0, P1, Q1, ...), bandwidth 7.
    """
    L = m00.shape[0]
    # (I - a M_{k})^{-1} for k = 3 .. L-1
    d00 = 1.0 - _AM_A * m00[3:]
    d01 = -_AM_A * m01[3:]
    d10 = -_AM_A * m10[3:]
    d11 = 1.0 - _AM_A * m11[3:]
    det = d00 * d11 - d01 * d10
    i00, i01, i10, i11 = d11 / det, -d01 / det, -d10 / det, d00 / det

    def prod(a00, a01, a10, a11):
        return (i00 * a00 + i01 * a10, i00 * a01 + i01 * a11, i10 * a00 + i11 * a10, i10 * a01 + i11 * a11)

    s = slice(2, L - 1)  # M_{k-1}
    k0 = prod(1.0 + _AM_B * m00[s], _AM_B * m01[s], _AM_B * m10[s], 1.0 + _AM_B * m11[s])
    s = slice(1, L - 2)  # M_{k-2}
    k1 = prod(-_AM_C * m00[s], -_AM_C * m01[s], -_AM_C * m10[s], -_AM_C * m11[s])
    s = slice(0, L - 3)  # M_{k-3}
    k2 = prod(_AM_D * m00[s], _AM_D * m01[s], _AM_D * m10[s], _AM_D * m11[s])

    n2 = 2 * L
    ab = np.zeros((8, n2))

    # rows 2k (P_k) and 2k+1 (Q_k), k = 3 .. L-1; ab[d, col] holds A[col + d, col]
    def put(d: int, m: int, values: np.ndarray) -> None:
        ab[d, 6 - m : n2 - m : 2] = -values

    put(1, 1, k0[1])  # P_k <- Q_{k-1}
    put(2, 2, k0[0])  # P_k <- P_{k-1}
    put(2, 1, k0[3])  # Q_k <- Q_{k-1}   (row 2k+1, col 2k-1: d = 2, col = 2k - 1)
    put(3, 3, k1[1])  # P_k <- Q_{k-2}
    put(3, 2, k0[2])  # Q_k <- P_{k-1}
    put(4, 4, k1[0])  # P_k <- P_{k-2}
    put(4, 3, k1[3])  # Q_k <- Q_{k-2}
    put(5, 5, k2[1])  # P_k <- Q_{k-3}
    put(5, 4, k1[2])  # Q_k <- P_{k-2}
    put(6, 6, k2[0])  # P_k <- P_{k-3}
    put(6, 5, k2[3])  # Q_k <- Q_{k-3}
    put(7, 6, k2[2])  # Q_k <- P_{k-3}
    rhs = np.zeros((n2, 1))
    rhs[:6, 0] = start.ravel()
    x, info = dtbtrs(ab, rhs, uplo="L", diag="U")
    if info != 0:  # pragma: no cover - LAPACK argument error
        raise RuntimeError(f"dtbtrs failed with info={info}")
    x = x[:, 0]
    return x[0::2], x[1::2]


class RadialProblem:
    """One radial equation (mode, l, kappa) in a fixed potential ``r V(r)`` on a grid."""

    def __init__(self, mode: str, l: int, kappa: int, r: np.ndarray, rv: np.ndarray, h: float, z_nuc: float) -> None:
        self.mode = mode
        self.l = l
        self.kappa = kappa
        self.r = r
        self.rv = rv  # r * V(r), nucleus included
        self.h = h
        self.z_nuc = z_nuc
        self.ll = l * (l + 1)
        self.v_eff = rv / r + 0.5 * self.ll / r**2  # for turning points and the WKB practical infinity
        self.c = SPEED_OF_LIGHT

    # matrix of y' = M y in the grid index, on index slice sl
    def matrix(self, E: float, sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r = self.r[sl]
        rv = self.rv[sl]
        h = self.h
        er = E * r - rv  # r (E - V)
        if self.mode == "dirac":
            c = self.c
            k = float(self.kappa)
            m00 = np.full(r.shape, -h * k)
            m11 = np.full(r.shape, h * k)
            m01 = h * (2.0 * c * r + er / c)
            m10 = -h * er / c
        else:
            if self.mode == "scalar":
                mr = r + er / (2.0 * self.c**2)  # M r
                mr = np.maximum(mr, 1e-300)
            else:
                mr = r
            m00 = np.full(r.shape, h)
            m11 = np.full(r.shape, -h)
            m01 = 2.0 * h * mr
            m10 = h * (0.5 * self.ll / mr - er)
        return m00, m01, m10, m11

    def start_outward(self) -> np.ndarray:
        r = self.r[:3]
        z = self.z_nuc
        c = self.c
        l = self.l
        if self.mode == "none":
            p = r ** (l + 1) * (1.0 - z * r / (l + 1))
            q = 0.5 * (l * r**l - z * r ** (l + 1))
        elif self.mode == "scalar":
            g = math.sqrt(self.ll + 1.0 - (z / c) ** 2)
            a = (self.ll * c * c - z * z) / (z * (g + 1.0))  # (g - 1) c^2 / Z without cancellation
            p = r**g
            q = a * p
        else:
            k = self.kappa
            g = math.sqrt(k * k - (z / c) ** 2)
            b = -z / (c * (g - k)) if k < 0 else c * (g + k) / z
            p = r**g
            q = b * p
        return np.stack([p, q], axis=1)

    def start_inward(self, E: float, idx: np.ndarray) -> np.ndarray:
        """Decaying WKB-like start at the (reversed) points ``idx``; outer point first."""
        r = self.r[idx]
        rv = self.rv[idx]
        v_minus_e = rv / r - E
        c = self.c
        if self.mode == "dirac":
            lam2 = v_minus_e * (2.0 - v_minus_e / c**2) + self.kappa * (self.kappa + 1) / r**2
        elif self.mode == "scalar":
            lam2 = 2.0 * (1.0 - v_minus_e / (2 * c * c)) * v_minus_e + self.ll / r**2
        else:
            lam2 = 2.0 * v_minus_e + self.ll / r**2
        lam = math.sqrt(max(float(lam2[0]), 1e-12))
        p = np.exp(-lam * (r - r[0]))
        if self.mode == "dirac":
            q = (-lam + self.kappa / r) * p / (2.0 * c - v_minus_e / c)
        elif self.mode == "scalar":
            q = (-lam - 1.0 / r) * p / (2.0 * (1.0 - v_minus_e / (2 * c * c)))
        else:
            q = (-lam - 1.0 / r) * p / 2.0
        return np.stack([p, q], axis=1)

    def shoot(self, E: float) -> tuple[int, float, np.ndarray, np.ndarray]:
        """Integrate at energy ``E``: nodes, perturbative correction, and the (unnormalised) P, Q."""
        r = self.r
        npts = r.shape[0]
        allowed = np.flatnonzero(self.v_eff < E)
        ic = int(allowed[-1]) if allowed.size else 10
        # practical infinity: WKB decay exponent ~ 50 beyond the turning point
        kappa2 = 2.0 * (self.v_eff[ic:] - E)
        lam = np.sqrt(np.maximum(kappa2, 0.0))
        phase = np.cumsum(lam * r[ic:]) * self.h
        beyond = np.flatnonzero(phase > 50.0)
        iinf = ic + int(beyond[0]) if beyond.size else npts - 1
        iinf = max(iinf, min(npts - 1, ic + 20))
        ic = min(max(ic, 10), iinf - 8)
        # outward 0 .. ic
        m = self.matrix(E, slice(0, ic + 1))
        p_out, q_out = _am4_solve(*m, self.start_outward())
        # inward iinf .. ic (reversed: t' = iinf - t, dy/dt' = -M y)
        rev = slice(iinf, ic - 1 if ic > 0 else None, -1)
        m00, m01, m10, m11 = self.matrix(E, rev)
        start = self.start_inward(E, np.arange(iinf, iinf - 3, -1))
        p_in, q_in = _am4_solve(-m00, -m01, -m10, -m11, start)
        p_in = p_in[::-1]
        q_in = q_in[::-1]
        scale = p_out[-1] / p_in[0]
        p_in = p_in * scale
        q_in = q_in * scale
        nodes = int(np.count_nonzero(np.signbit(p_out[1:]) != np.signbit(p_out[:-1])))
        p = np.zeros(npts)
        q = np.zeros(npts)
        p[: ic + 1] = p_out
        q[: ic + 1] = q_out
        p[ic : iinf + 1] = p_in
        q[ic : iinf + 1] = q_in
        q[ic] = 0.5 * (q_out[-1] + q_in[0])
        w = r * self.h
        if self.mode == "dirac":
            norm = float(np.dot(p * p + q * q, w))
            dE = self.c * p_out[-1] * (q_out[-1] - q_in[0]) / norm
        else:  # for "scalar" the first-order formula neglects O(1/c^2) terms of the norm
            norm = float(np.dot(p * p, w))
            dE = p_out[-1] * (q_out[-1] - q_in[0]) / norm
        return nodes, float(dE), p, q


def solve_radial(
    prob: RadialProblem, n: int, guess: float | None, label: str, tol: float = 1e-11
) -> tuple[float, np.ndarray, np.ndarray]:
    """Eigenvalue and normalised (P, Q) of the state with ``n - l - 1`` nodes of ``P``."""
    target = n - prob.l - 1
    z = max(prob.z_nuc, 1.0)
    e_lo = -(z * z) / (n * n) - 10.0
    e_hi = 0.0
    E = guess if guess is not None and e_lo < guess < e_hi else -0.5 * (z / n) ** 2
    for _ in range(300):
        nodes, dE, p, q = prob.shoot(E)
        if not math.isfinite(dE):
            raise BoundStateError(
                f"orbital {label}: the radial integration overflowed at E = {E:.10g} Ha (grid or potential unsuitable)"
            )
        if nodes > target:
            e_hi = E
        elif nodes < target:
            e_lo = E
        else:
            if abs(dE) < tol * max(1.0, abs(E)):
                E_final = E + dE
                w = prob.r * prob.h
                # Dirac: P^2 + Q^2 normalised; Schroedinger and Koelling-Harmon: P^2 (NIST's ScRLDA)
                norm = np.dot(p * p + q * q, w) if prob.mode == "dirac" else np.dot(p * p, w)
                s = 1.0 / math.sqrt(norm)
                return E_final, p * s, q * s
            if dE > 0:
                e_lo = E
            else:
                e_hi = E
            E_new = E + dE
            if e_lo < E_new < e_hi:
                E = E_new
                continue
        if e_hi - e_lo < 1e-14 * max(1.0, abs(e_lo)):
            break
        if e_hi < 0 and e_lo < 0 and e_hi / e_lo > 1e-6:
            E = -math.sqrt(e_lo * e_hi)
        else:
            E = 0.5 * (e_lo + e_hi)
    if e_hi == 0.0 and e_lo > -1e-6:
        raise BoundStateError(
            f"orbital {label} is not bound in this potential: no eigenvalue below 0 Ha with {target} radial node(s)"
        )
    raise BoundStateError(
        f"orbital {label}: eigenvalue search did not converge (bracket [{e_lo:.10g}, {e_hi:.10g}] Ha, "
        f"{target} radial node(s) wanted)"
    )


def coulomb_eigenvalue(Z: float, orbital: str, relativity: str = "none", grid: RadialGrid | None = None) -> float:
    """Eigenvalue (Hartree) of one orbital in the bare point-nucleus Coulomb potential ``-Z/r``.

    A check of the radial integrator against closed forms: ``-Z^2/(2 n^2)`` (``"none"``) and the
    Dirac formula (``"dirac"``, orbital labels ``"2p-"``/``"2p+"`` for ``j = l -+ 1/2``). With
    ``"scalar"`` the Koelling-Harmon equation is solved (equal to Dirac for s orbitals).

    Examples
    --------
    >>> round(coulomb_eigenvalue(1, "2p"), 10)
    -0.125
    """
    check_relativity(relativity)
    label = orbital.strip()
    kappa = 0
    if relativity == "dirac":
        base = label.rstrip("+-")
        n, l = parse_label(base)
        if l == 0:
            kappa = -1
        elif label.endswith("-"):
            kappa = l
        elif label.endswith("+"):
            kappa = -(l + 1)
        else:
            raise AtomicInputError(f"in dirac mode a p/d/f orbital needs a j suffix ('2p-' or '2p+'), got {orbital!r}")
    else:
        n, l = parse_label(label)
    if not 0 < Z <= Z_MAX:
        raise AtomicInputError(f"Z must satisfy 0 < Z <= {Z_MAX}, got {Z!r}")
    grid = grid or RadialGrid.for_atom(max(1, int(round(Z))))
    r = grid.r
    prob = RadialProblem(relativity, l, kappa, np.asarray(r), np.full(r.shape, -float(Z)), grid.h, float(Z))
    E, _, _ = solve_radial(prob, n, None, label)
    return E
