"""Self-consistent spherical atomic LDA solver: non-relativistic, scalar-relativistic and Dirac.

The solver reproduces the conventions of NIST Standard Reference Database 141, "Atomic Reference
Data for Electronic Structure Calculations" (S. Kotochigova, Z. H. Levine, E. L. Shirley,
M. D. Stiles and C. W. Clark, Phys. Rev. A 55, 191 (1997)):

* a neutral, spherically averaged atom with a point nucleus; open shells carry (possibly
  fractional) occupations averaged over the shell, no spin polarisation;
* LDA exchange (Kohn-Sham, ``alpha = 2/3``) and Vosko-Wilk-Nusair correlation (VWN5, the
  paramagnetic fit to Ceperley-Alder);
* three kinetic-energy treatments, selected by ``relativity``:

  ``"none"`` (NIST "LDA")
      the radial Schroedinger equation ``-P''/2 + [l(l+1)/(2 r^2) + V] P = eps P``;
  ``"scalar"`` (NIST "ScRLDA")
      the Koelling-Harmon scalar-relativistic equation (mass-velocity and Darwin terms, no
      spin-orbit), in Hartree units with ``M = 1 + (eps - V) / (2 c^2)``::

          P' = 2 M Q + P / r
          Q' = -Q / r + [l(l+1) / (2 M r^2) + V - eps] P

      as in NIST's ScRLDA tables, orbitals are normalised on the large component,
      ``int P^2 dr = 1``, and the density is ``sum_i f_i P_i^2 / (4 pi r^2)`` (adding the small
      component ``Q / c`` moves the Kr 1s eigenvalue by 0.08 Ha away from NIST's value);
  ``"dirac"`` (NIST "RLDA")
      the radial Dirac equation for each ``kappa`` (``kappa = l`` for ``j = l - 1/2``,
      ``kappa = -(l+1)`` for ``j = l + 1/2``)::

          P' = -kappa P / r + (2 c + (eps - V) / c) Q
          Q' =  kappa Q / r - ((eps - V) / c) P

      the occupation of an ``l > 0`` shell is shared between its two ``j`` subshells in
      proportion to ``2j + 1`` and the density is ``(P^2 + Q^2) / (4 pi r^2)``.

* in both relativistic modes the exchange energy density and potential carry the MacDonald-Vosko
  relativistic correction (A. H. MacDonald and S. H. Vosko, J. Phys. C 12, 2977 (1979)), with
  ``beta = (3 pi^2 n)^(1/3) / c`` and ``eta = sqrt(1 + beta^2)``::

      e_x -> e_x * (1 - 3/2 * ((beta eta - asinh(beta)) / beta^2)^2)
      v_x -> v_x * (-1/2 + 3/2 * asinh(beta) / (beta eta))

  (the potential factor is the density derivative of the energy factor); correlation stays
  non-relativistic. Eigenvalues exclude the rest energy; ``c = 137.0359895`` a.u. (NIST's value).

Numerics: a logarithmic radial grid ``r_i = r_min exp(i h)``; each radial equation is written as a
first-order linear system in the grid index and integrated with the fourth-order implicit
Adams-Moulton formula. Because the system is linear, one integration is a unit lower-triangular
banded linear system, solved by LAPACK ``dtbtrs`` (forward substitution, no Python loop over grid
points). Eigenvalues are found by shooting: outward integration from the origin (power-series
start) to the outermost classical turning point, inward integration from a WKB-estimated practical
infinity, node counting with bisection and a first-order perturbative energy correction from the
mismatch of the small component. The Hartree potential comes from sixth-order cumulative
quadrature of the radial Poisson integrals; the self-consistency loop mixes ``r V_Hxc`` with
Anderson's method and, when an extrapolated potential loses an occupied level (open 4f/5f
shells), steps back to the last good potential with a shorter linear step.

Accuracy (default grid, ``h = 0.004``, ``r_min = 1e-7/Z``, ``r_max = 60``; asserted in
``tests/test_atomic.py`` of this package): hydrogenic levels to 1e-8 relative; the NIST SRD 141
LDA valence eigenvalues of H and B..Bi to 5.2e-7 Ha (NIST prints 6 decimals); every ScRLDA and
RLDA eigenvalue of Ne, Ar, Kr, Xe, Au, Hg, Rn and U to 2.8e-6 Ha (1.3e-6 Ha but for Kr 4p+) and
their total energies to 2.1e-6 Ha. A neutral atom takes about 0.1 s (H) to 3 s (U, Dirac) on one
core.

Examples
--------
>>> from td_physics.atomic import solve_atom
>>> res = solve_atom(1, "1s1")
>>> round(res.eigenvalues["1s"], 5)  # NIST SRD 141 LDA: -0.233471
-0.23347
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy.linalg.lapack import dtbtrs

from td_physics.exceptions import ConvergenceError, TDPhysicsError

__all__ = [
    "SPEED_OF_LIGHT",
    "HARTREE_TO_EV",
    "NOBLE_GAS_CORES",
    "RELATIVITY_MODES",
    "AtomicInputError",
    "BoundStateError",
    "SCFConvergenceError",
    "RadialGrid",
    "AtomResult",
    "parse_configuration",
    "solve_atom",
    "coulomb_eigenvalue",
    "lda_xc",
]

logger = logging.getLogger(__name__)

SPEED_OF_LIGHT = 137.0359895
"""Speed of light in atomic units, the value used by NIST SRD 141."""

HARTREE_TO_EV = 27.211386245988
"""1 Hartree in eV (CODATA 2018)."""

RELATIVITY_MODES = ("none", "scalar", "dirac")

NOBLE_GAS_CORES: dict[str, str] = {
    "He": "1s2",
    "Ne": "[He] 2s2 2p6",
    "Ar": "[Ne] 3s2 3p6",
    "Kr": "[Ar] 3d10 4s2 4p6",
    "Xe": "[Kr] 4d10 5s2 5p6",
    "Rn": "[Xe] 4f14 5d10 6s2 6p6",
}
"""Closed-shell cores usable as ``[X]`` in configuration strings."""

_L_LETTERS = "spdfg"
_LABEL_RE = re.compile(r"^([1-9][0-9]?)([spdfg])$")
_TOKEN_RE = re.compile(r"^([1-9][0-9]?)([spdfg])\^?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_Z_MAX = 118

# VWN5 paramagnetic parameters (Hartree): A, x0, b, c
_VWN_A = 0.0310907
_VWN_X0 = -0.10498
_VWN_B = 3.72744
_VWN_C = 12.9352

# sixth-order weights for the integral over one grid interval [i, i+1] from points i-2 .. i+3
_W6 = np.array([11.0, -93.0, 802.0, 802.0, -93.0, 11.0]) / 1440.0


class AtomicInputError(TDPhysicsError):
    """Bad input to the atomic solver: atomic number, configuration, orbital label or setting."""


class BoundStateError(ConvergenceError):
    """An orbital could not be located as a bound state of the current potential."""


class SCFConvergenceError(ConvergenceError):
    """The self-consistency loop did not converge.

    Attributes
    ----------
    iterations:
        Iterations performed.
    last_change:
        Largest eigenvalue change (Hartree) in the last iteration.
    """

    def __init__(self, message: str, iterations: int, last_change: float) -> None:
        super().__init__(message)
        self.iterations = iterations
        self.last_change = last_change


# --------------------------------------------------------------------------------------------
# grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RadialGrid:
    """Logarithmic radial grid ``r_i = r_min * exp(i * h)``, ``i = 0 .. n_points - 1``.

    Parameters
    ----------
    r_min, r_max:
        First and last grid point (bohr).
    n_points:
        Number of points; ``h = ln(r_max / r_min) / (n_points - 1)``.
    """

    r_min: float
    r_max: float
    n_points: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.r_min) and np.isfinite(self.r_max) and 0.0 < self.r_min < self.r_max):
            raise AtomicInputError(
                f"RadialGrid needs 0 < r_min < r_max (finite), got r_min={self.r_min!r}, r_max={self.r_max!r}"
            )
        if int(self.n_points) != self.n_points or self.n_points < 200:
            raise AtomicInputError(f"RadialGrid.n_points must be an integer >= 200, got {self.n_points!r}")
        object.__setattr__(self, "n_points", int(self.n_points))

    @classmethod
    def for_atom(cls, Z: int, r_max: float = 60.0, step: float = 0.004, r_min_times_z: float = 1e-7) -> RadialGrid:
        """The default grid for atomic number ``Z``.

        ``r_min = r_min_times_z / Z`` (deep inside the 1s shell), ``r_max`` in bohr, and the number
        of points chosen so that the logarithmic step ``h`` is at most ``step``.
        """
        r_min = r_min_times_z / Z
        n = int(math.ceil(math.log(r_max / r_min) / step)) + 1
        return cls(r_min, r_max, n)

    @property
    def h(self) -> float:
        """Logarithmic step ``ln(r_{i+1} / r_i)``."""
        return math.log(self.r_max / self.r_min) / (self.n_points - 1)

    @cached_property
    def r(self) -> np.ndarray:
        """Grid points (bohr), read-only."""
        out = self.r_min * np.exp(self.h * np.arange(self.n_points))
        out[-1] = self.r_max
        out.setflags(write=False)
        return out


# --------------------------------------------------------------------------------------------
# configurations
# --------------------------------------------------------------------------------------------


def _parse_label(label: str) -> tuple[int, int]:
    m = _LABEL_RE.match(label.strip()) if isinstance(label, str) else None
    if m is None:
        raise AtomicInputError(
            f"orbital labels must look like '1s', '2p', '4f' (n = 1..99, l in s/p/d/f/g), got {label!r}"
        )
    n, l = int(m.group(1)), _L_LETTERS.index(m.group(2))
    if l >= n:
        raise AtomicInputError(f"orbital {label!r} is impossible: the rule is l < n (l={l}, n={n})")
    return n, l


def parse_configuration(configuration: str | Mapping[str, float]) -> dict[str, float]:
    """Occupations per ``nl`` shell from a string or a mapping.

    Parameters
    ----------
    configuration:
        ``"[Xe] 4f14 5d10 6s2 6p3"`` (noble-gas cores ``[He]`` .. ``[Rn]``, occupations may be
        fractional, ``"6p1.5"``) or a mapping ``{"1s": 2, "2s": 2, ...}``.

    Returns
    -------
    dict
        ``{"1s": 2.0, ...}`` sorted by ``(n, l)``.

    Raises
    ------
    AtomicInputError
        Unknown core or orbital label, an orbital given twice, a negative occupation or one above
        the shell capacity ``2 (2l + 1)``.

    Examples
    --------
    >>> parse_configuration("[Ne] 3s2 3p1")
    {'1s': 2.0, '2s': 2.0, '2p': 6.0, '3s': 2.0, '3p': 1.0}
    """
    occ: dict[str, float] = {}

    def add(label: str, value: Any) -> None:
        n, l = _parse_label(label)
        key = f"{n}{_L_LETTERS[l]}"
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise AtomicInputError(f"occupation of {key} must be a number, got {value!r}") from exc
        if not np.isfinite(x) or x < 0:
            raise AtomicInputError(f"occupation of {key} must be finite and >= 0, got {value!r}")
        cap = 2 * (2 * l + 1)
        if x > cap + 1e-12:
            raise AtomicInputError(f"occupation of {key} is {x:g}, above the shell capacity 2(2l+1) = {cap}")
        if key in occ:
            raise AtomicInputError(f"orbital {key} appears twice in the configuration")
        occ[key] = x

    if isinstance(configuration, str):
        tokens = configuration.split()
        if not tokens:
            raise AtomicInputError("the configuration string is empty")
        for tok in tokens:
            if tok.startswith("[") and tok.endswith("]"):
                core = tok[1:-1]
                if core not in NOBLE_GAS_CORES:
                    raise AtomicInputError(
                        f"unknown core {tok!r} in the configuration; known cores: "
                        + ", ".join(f"[{k}]" for k in NOBLE_GAS_CORES)
                    )
                for label, value in parse_configuration(NOBLE_GAS_CORES[core]).items():
                    add(label, value)
                continue
            m = _TOKEN_RE.match(tok)
            if m is None:
                raise AtomicInputError(
                    f"cannot read configuration token {tok!r}: expected e.g. '6p3', '4f14', '6s1.5' or a core '[Xe]'"
                )
            add(m.group(1) + m.group(2), m.group(3))
    elif isinstance(configuration, Mapping):
        if not configuration:
            raise AtomicInputError("the configuration mapping is empty")
        for label, value in configuration.items():
            add(label, value)
    else:
        raise AtomicInputError(
            f"configuration must be a string like '[Ne] 3s2 3p1' or a mapping {{'1s': 2, ...}}, got {configuration!r}"
        )
    return dict(sorted(occ.items(), key=lambda kv: _parse_label(kv[0])))


@dataclass(frozen=True)
class _Orbital:
    label: str
    n: int
    l: int
    kappa: int  # Dirac quantum number; 0 outside dirac mode
    occupation: float


def _orbitals(occ: Mapping[str, float], relativity: str) -> list[_Orbital]:
    out = []
    for label, f in occ.items():
        n, l = _parse_label(label)
        if relativity != "dirac":
            out.append(_Orbital(label, n, l, 0, f))
        elif l == 0:
            out.append(_Orbital(label, n, l, -1, f))
        else:
            out.append(_Orbital(label + "-", n, l, l, f * l / (2 * l + 1)))
            out.append(_Orbital(label + "+", n, l, -(l + 1), f * (l + 1) / (2 * l + 1)))
    return out


# --------------------------------------------------------------------------------------------
# exchange-correlation
# --------------------------------------------------------------------------------------------


def lda_xc(n: np.ndarray, relativistic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """LDA exchange-correlation energy per electron and potential (Hartree), spin-unpolarised.

    Slater exchange (``alpha = 2/3``) and VWN5 correlation; with ``relativistic=True`` the
    exchange carries the MacDonald-Vosko factor (``c = SPEED_OF_LIGHT``).

    Parameters
    ----------
    n:
        Electron density (bohr^-3); values ``<= 1e-30`` give zero.

    Returns
    -------
    eps_xc, v_xc:
        Arrays of the shape of ``n``.
    """
    n = np.asarray(n, dtype=float)
    eps = np.zeros_like(n)
    v = np.zeros_like(n)
    mask = n > 1e-30
    d = n[mask]
    kf = np.cbrt(3.0 * np.pi**2 * d)
    ex = -0.75 / np.pi * kf
    vx = -kf / np.pi
    if relativistic:
        phi_e, phi_v = _macdonald_vosko(kf / SPEED_OF_LIGHT)
        ex = ex * phi_e
        vx = vx * phi_v
    rs = np.cbrt(3.0 / (4.0 * np.pi * d))
    ec, vc = _vwn5(rs)
    eps[mask] = ex + ec
    v[mask] = vx + vc
    return eps, v


def _macdonald_vosko(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MacDonald-Vosko factors of the exchange energy density and potential at ``beta = k_F / c``."""
    beta = np.asarray(beta, dtype=float)
    small = beta < 1e-2
    b = np.where(small, 1.0, beta)
    u_full = (b * np.sqrt(1.0 + b * b) - np.arcsinh(b)) / (b * b)
    u_series = beta * (2.0 / 3.0 - beta**2 / 5.0 + 3.0 * beta**4 / 28.0)
    u = np.where(small, u_series, u_full)
    phi_e = 1.0 - 1.5 * u * u
    ratio_full = np.arcsinh(b) / (b * np.sqrt(1.0 + b * b))
    ratio_series = 1.0 - 2.0 / 3.0 * beta**2 + 8.0 / 15.0 * beta**4
    ratio = np.where(small, ratio_series, ratio_full)
    phi_v = -0.5 + 1.5 * ratio
    return phi_e, phi_v


def _vwn5(rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VWN5 paramagnetic correlation energy per electron and potential (Hartree)."""
    A, x0, b, c = _VWN_A, _VWN_X0, _VWN_B, _VWN_C
    q = math.sqrt(4.0 * c - b * b)
    xx0 = x0 * x0 + b * x0 + c
    x = np.sqrt(rs)
    X = x * x + b * x + c
    at = np.arctan(q / (2.0 * x + b))
    ec = A * (
        np.log(x * x / X)
        + 2.0 * b / q * at
        - b * x0 / xx0 * (np.log((x - x0) ** 2 / X) + 2.0 * (b + 2.0 * x0) / q * at)
    )
    # d(ec)/dx, using (2x + b)^2 + q^2 = 4 X
    dX = 2.0 * x + b
    dec = A * (2.0 / x - dX / X - b / X - b * x0 / xx0 * (2.0 / (x - x0) - dX / X - (b + 2.0 * x0) / X))
    vc = ec - x * dec / 6.0
    return ec, vc


# --------------------------------------------------------------------------------------------
# radial integration
# --------------------------------------------------------------------------------------------

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


class _RadialProblem:
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


def _solve_radial(
    prob: _RadialProblem, n: int, guess: float | None, label: str, tol: float = 1e-11
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
    _check_relativity(relativity)
    label = orbital.strip()
    kappa = 0
    if relativity == "dirac":
        base = label.rstrip("+-")
        n, l = _parse_label(base)
        if l == 0:
            kappa = -1
        elif label.endswith("-"):
            kappa = l
        elif label.endswith("+"):
            kappa = -(l + 1)
        else:
            raise AtomicInputError(f"in dirac mode a p/d/f orbital needs a j suffix ('2p-' or '2p+'), got {orbital!r}")
    else:
        n, l = _parse_label(label)
    if not 0 < Z <= _Z_MAX:
        raise AtomicInputError(f"Z must satisfy 0 < Z <= {_Z_MAX}, got {Z!r}")
    grid = grid or RadialGrid.for_atom(max(1, int(round(Z))))
    r = grid.r
    prob = _RadialProblem(relativity, l, kappa, np.asarray(r), np.full(r.shape, -float(Z)), grid.h, float(Z))
    E, _, _ = _solve_radial(prob, n, None, label)
    return E


# --------------------------------------------------------------------------------------------
# density, potentials, energies
# --------------------------------------------------------------------------------------------


def _cumulative(f: np.ndarray) -> np.ndarray:
    """``F[i] = int_0^i f dt`` on the unit-step index grid (sixth order; f ~ 0 beyond both ends)."""
    fp = np.concatenate([np.zeros(2), f, np.zeros(2)])
    n = f.shape[0]
    seg = np.zeros(n - 1)
    for k, w in enumerate(_W6):
        seg += w * fp[k : k + n - 1]
    out = np.empty(n)
    out[0] = 0.0
    np.cumsum(seg, out=out[1:])
    return out


def _hartree_rv(rho_r: np.ndarray, r: np.ndarray, h: float) -> np.ndarray:
    """``r V_H(r)`` from the radial density ``rho_r = 4 pi r^2 n(r)``."""
    inner = h * _cumulative(rho_r * r)  # charge inside r
    outer = h * _cumulative(rho_r)  # int_0^r rho_r / r' dr'
    return inner + r * (outer[-1] - outer)


def _check_relativity(relativity: str) -> None:
    if relativity not in RELATIVITY_MODES:
        raise AtomicInputError(f"relativity must be one of {RELATIVITY_MODES}, got {relativity!r}")


# --------------------------------------------------------------------------------------------
# result and driver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AtomResult:
    """A converged (or, with ``strict=False``, the last) self-consistent atom.

    Attributes
    ----------
    Z:
        Atomic number.
    relativity:
        ``"none"``, ``"scalar"`` or ``"dirac"``.
    configuration:
        Occupation per ``nl`` shell as solved.
    occupations:
        Occupation per reported orbital (``"6p-"``/``"6p+"`` split by ``2j + 1`` in dirac mode).
    eigenvalues:
        Orbital eigenvalues (Hartree, rest energy excluded); keys ``"6s"``, ``"6p"`` or in dirac
        mode ``"6s"``, ``"6p-"`` (``j = l - 1/2``), ``"6p+"`` (``j = l + 1/2``).
    extra_orbitals:
        Eigenvalues (Hartree) of requested unoccupied orbitals in the final self-consistent
        potential, keyed like ``eigenvalues``.
    total_energy:
        Total energy (Hartree).
    energies:
        Components (Hartree): ``kinetic``, ``nuclear``, ``hartree``, ``xc``.
    iterations:
        Self-consistency iterations.
    converged:
        Whether the convergence criterion was met.
    last_change:
        Largest eigenvalue change in the last iteration (Hartree).
    grid:
        The radial grid.
    density:
        Electron density ``n(r)`` (bohr^-3) on ``grid.r``, read-only.
    potential:
        Self-consistent Kohn-Sham potential ``V(r)`` (Hartree) on ``grid.r``, read-only.
    """

    Z: int
    relativity: str
    configuration: dict[str, float]
    occupations: dict[str, float]
    eigenvalues: dict[str, float]
    extra_orbitals: dict[str, float]
    total_energy: float
    energies: dict[str, float]
    iterations: int
    converged: bool
    last_change: float
    grid: RadialGrid = field(repr=False)
    density: np.ndarray = field(repr=False)
    potential: np.ndarray = field(repr=False)


def _thomas_fermi_rv(Z: int, r: np.ndarray) -> np.ndarray:
    """Initial guess ``r V(r)``: a Thomas-Fermi screened nucleus with a ``-1/r`` tail."""
    b = 0.8853 * Z ** (-1.0 / 3.0)
    x = r / b
    sx = np.sqrt(x)
    phi = 1.0 / (
        1.0 + 0.02747 * sx + 1.243 * x - 0.1486 * x * sx + 0.2302 * x * x + 0.007298 * x * x * sx + 0.006944 * x**3
    )
    return -np.maximum(Z * phi, 1.0)


class _Anderson:
    """Anderson mixing of a vector fixed-point problem ``x -> g(x)``, residual ``g(x) - x``."""

    def __init__(self, alpha: float, history: int) -> None:
        self.alpha = alpha
        self.history = history
        self.xs: list[np.ndarray] = []
        self.fs: list[np.ndarray] = []

    def reset(self) -> None:
        self.xs.clear()
        self.fs.clear()

    def step(self, x: np.ndarray, f: np.ndarray) -> np.ndarray:
        self.xs.append(x.copy())
        self.fs.append(f.copy())
        if len(self.xs) > self.history + 1:
            self.xs.pop(0)
            self.fs.pop(0)
        if len(self.xs) == 1:
            return x + self.alpha * f
        dX = np.stack([self.xs[i + 1] - self.xs[i] for i in range(len(self.xs) - 1)], axis=1)
        dF = np.stack([self.fs[i + 1] - self.fs[i] for i in range(len(self.fs) - 1)], axis=1)
        gamma = np.linalg.lstsq(dF, f, rcond=1e-10)[0]
        x_bar = x - dX @ gamma
        f_bar = f - dF @ gamma
        return x_bar + self.alpha * f_bar


def solve_atom(
    Z: int,
    configuration: str | Mapping[str, float],
    relativity: str = "none",
    extra_orbitals: Iterable[str] = (),
    grid: RadialGrid | None = None,
    tol: float = 1e-8,
    max_iter: int = 200,
    mixing: float = 0.5,
    strict: bool = True,
) -> AtomResult:
    """Self-consistent LDA ground state of a neutral, spherically averaged atom.

    Parameters
    ----------
    Z:
        Atomic number, ``1 <= Z <= 118`` (validated against NIST SRD 141 up to U).
    configuration:
        ``"[Xe] 4f14 5d10 6s2 6p3"`` or ``{"1s": 2, ...}``; the occupations must add up to ``Z``
        (neutral atom). Ground configurations are the caller's choice.
    relativity:
        ``"none"`` (Schroedinger, NIST LDA), ``"scalar"`` (Koelling-Harmon, NIST ScRLDA) or
        ``"dirac"`` (NIST RLDA).
    extra_orbitals:
        Unoccupied orbitals (``"3p"``, ``"4p"``; not in ``configuration``) whose eigenvalues are
        computed in the final self-consistent potential; in dirac mode both ``j`` values.
    grid:
        Radial grid; default :meth:`RadialGrid.for_atom` (``r_min = 1e-7/Z``, ``r_max = 60``,
        ``h <= 0.004``).
    tol:
        Convergence: largest change of any eigenvalue between iterations (Hartree) and the same
        bound on the largest change of ``r V_Hxc`` (Hartree bohr) in one iteration.
    max_iter:
        Iteration limit.
    mixing:
        Anderson mixing parameter (fraction of the residual added).
    strict:
        Raise :class:`SCFConvergenceError` when not converged (default); otherwise return the
        last iterate with ``converged=False``.

    Returns
    -------
    AtomResult

    Raises
    ------
    AtomicInputError
        Bad atomic number, configuration, orbital label or setting.
    SCFConvergenceError
        No convergence within ``max_iter`` (with ``strict=True``).
    BoundStateError
        An orbital is not bound: an unbound extra orbital, or an occupied orbital that stays unbound
        after the mixing step has been shortened ten times (seen only for configurations that put
        one or two electrons into 4f or 5f, such as ``[Xe] 4f1 6s2`` for La in dirac mode).
    """
    if isinstance(Z, bool) or not isinstance(Z, (int, np.integer)):
        raise AtomicInputError(f"Z must be an integer atomic number, got {Z!r}")
    Z = int(Z)
    if not 1 <= Z <= _Z_MAX:
        raise AtomicInputError(f"Z must satisfy 1 <= Z <= {_Z_MAX}, got {Z}")
    _check_relativity(relativity)
    if not (np.isfinite(tol) and tol > 0):
        raise AtomicInputError(f"tol must be a positive number, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise AtomicInputError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not 0.0 < mixing <= 1.0:
        raise AtomicInputError(f"mixing must satisfy 0 < mixing <= 1, got {mixing!r}")
    occ = parse_configuration(configuration)
    n_el = sum(occ.values())
    if abs(n_el - Z) > 1e-9:
        raise AtomicInputError(
            f"the configuration holds {n_el:g} electrons but a neutral atom with Z={Z} needs {Z} "
            "(the rule: electron count = Z)"
        )
    if isinstance(extra_orbitals, str):
        extra_orbitals = (extra_orbitals,)
    extra_labels = []
    for lab in extra_orbitals:
        n, l = _parse_label(lab)
        key = f"{n}{_L_LETTERS[l]}"
        if key in occ:
            raise AtomicInputError(
                f"extra orbital {key} is part of the configuration; its eigenvalue is in AtomResult.eigenvalues"
            )
        extra_labels.append(key)

    grid = grid or RadialGrid.for_atom(Z)
    r = np.asarray(grid.r)
    h = grid.h
    w = r * h  # quadrature weights of dr on the index grid (trapezoid; integrands vanish at both ends)
    orbitals = _orbitals(occ, relativity)
    relativistic_xc = relativity != "none"

    rv_hxc = _thomas_fermi_rv(Z, r) + Z
    mixer = _Anderson(mixing, history=8)
    eig: dict[str, float] = {}
    last_change = float("inf")
    converged = False
    it = 0
    problems: dict[tuple[int, int], _RadialProblem] = {}

    def solve_all(rv_total: np.ndarray, orbs: list[_Orbital], guesses: Mapping[str, float]):
        problems.clear()
        out = {}
        for o in orbs:
            key = (o.l, o.kappa)
            prob = problems.get(key)
            if prob is None:
                prob = _RadialProblem(relativity, o.l, o.kappa, r, rv_total, h, float(Z))
                problems[key] = prob
            out[o.label] = _solve_radial(prob, o.n, guesses.get(o.label), o.label)
        return out

    rho_r = np.zeros_like(r)
    energies: dict[str, float] = {}
    total = float("nan")
    rv_total = rv_hxc - Z
    res_max = float("inf")
    accepted: tuple[np.ndarray, np.ndarray] | None = None  # last input potential with every orbital bound
    backtracks = 0
    for it in range(1, int(max_iter) + 1):
        rv_total = rv_hxc - Z  # the input potential of this iteration
        try:
            sols = solve_all(rv_total, orbitals, eig)
        except BoundStateError as exc:
            # an extrapolated potential lost an occupied level (open 4f/5f shells do this): step back
            # towards the last potential that bound every orbital, with a shorter linear step
            if accepted is None or backtracks >= 10:
                where = "in the initial potential" if accepted is None else "after 10 shortened mixing steps"
                raise BoundStateError(
                    f"Z={Z} ({relativity}), self-consistency iteration {it} {where}: {exc}; the occupied orbitals "
                    "of this configuration may not all be bound in LDA"
                ) from exc
            backtracks += 1
            x_prev, f_prev = accepted
            rv_hxc = x_prev + 0.5**backtracks * mixing * f_prev
            mixer.reset()
            logger.debug("Z=%d %s iteration %d: %s; backtracking (%d)", Z, relativity, it, exc, backtracks)
            continue
        backtracks = 0
        new_eig = {k: v[0] for k, v in sols.items()}
        rho_r = np.zeros_like(r)
        for o in orbitals:
            if o.occupation == 0.0:
                continue
            _, p, q = sols[o.label]
            if relativity == "dirac":
                rho_r += o.occupation * (p * p + q * q)
            else:  # "none" and "scalar": large component only (NIST's ScRLDA convention)
                rho_r += o.occupation * p * p
        n_r = rho_r / (4.0 * np.pi * r * r)
        eps_xc, v_xc = lda_xc(n_r, relativistic_xc)
        rv_h = _hartree_rv(rho_r, r, h)
        rv_out = rv_h + r * v_xc
        # energies from the output density and the input potential
        band = sum(o.occupation * new_eig[o.label] for o in orbitals)
        kinetic = band - float(np.dot(rho_r, (rv_total / r) * w))
        e_nuc = -Z * float(np.dot(rho_r, w / r))
        e_h = 0.5 * float(np.dot(rho_r, (rv_h / r) * w))
        e_xc = float(np.dot(rho_r, eps_xc * w))
        total = kinetic + e_nuc + e_h + e_xc
        energies = {"kinetic": kinetic, "nuclear": e_nuc, "hartree": e_h, "xc": e_xc}
        resid = rv_out - rv_hxc
        res_max = float(np.max(np.abs(resid)))
        last_change = max((abs(new_eig[k] - eig[k]) for k in new_eig), default=float("inf")) if eig else float("inf")
        logger.debug(
            "Z=%d %s iteration %d: E=%.10f max d(eps)=%.3e max |res(rV)|=%.3e",
            Z,
            relativity,
            it,
            total,
            last_change,
            res_max,
        )
        eig = new_eig
        if last_change < tol and res_max < tol:
            converged = True
            break
        accepted = (rv_hxc, resid)
        rv_hxc = mixer.step(rv_hxc, resid)

    if not converged:
        msg = (
            f"Z={Z} ({relativity}): self-consistency not reached in {it} iterations; last largest eigenvalue change "
            f"{last_change:.3e} Ha, largest change of r*V_Hxc {res_max:.3e} Ha*bohr (tolerance {tol:g} for both)"
        )
        if strict:
            raise SCFConvergenceError(msg, it, last_change)
        logger.warning(msg)
    else:
        logger.info("Z=%d %s converged in %d iterations, E=%.8f Ha", Z, relativity, it, total)

    extra: dict[str, float] = {}
    if extra_labels:
        extra_orbs = _orbitals({k: 0.0 for k in extra_labels}, relativity)
        sols = solve_all(rv_total, extra_orbs, {})
        extra = {k: v[0] for k, v in sols.items()}

    density = rho_r / (4.0 * np.pi * r * r)
    density.setflags(write=False)
    potential = rv_total / r
    potential.setflags(write=False)
    return AtomResult(
        Z=Z,
        relativity=relativity,
        configuration=dict(occ),
        occupations={o.label: o.occupation for o in orbitals},
        eigenvalues=eig,
        extra_orbitals=extra,
        total_energy=total,
        energies=energies,
        iterations=it,
        converged=converged,
        last_change=last_change,
        grid=grid,
        density=density,
        potential=potential,
    )
