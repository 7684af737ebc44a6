"""The self-consistent atom: Hartree and exchange-correlation potentials, Anderson mixing, total energy.

The Hartree potential comes from sixth-order cumulative quadrature of the radial Poisson integrals;
the loop mixes ``r V_Hxc`` with Anderson's method and, when an extrapolated potential loses an
occupied level (open 4f/5f shells), steps back to the last good potential with a shorter linear step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from td_physics.atomic.configuration import (
    L_LETTERS,
    Z_MAX,
    Orbital,
    check_relativity,
    parse_configuration,
    parse_label,
    solved_orbitals,
)
from td_physics.atomic.grid import RadialGrid, cumulative
from td_physics.atomic.radial import RadialProblem, solve_radial
from td_physics.atomic.xc import lda_xc
from td_physics.exceptions import AtomicInputError, BoundStateError, SCFConvergenceError

__all__ = ["AtomResult", "solve_atom"]

logger = logging.getLogger(__name__)


def hartree_rv(rho_r: np.ndarray, r: np.ndarray, h: float) -> np.ndarray:
    """``r V_H(r)`` from the radial density ``rho_r = 4 pi r^2 n(r)``."""
    inner = h * cumulative(rho_r * r)  # charge inside r
    outer = h * cumulative(rho_r)  # int_0^r rho_r / r' dr'
    return inner + r * (outer[-1] - outer)


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
    if not 1 <= Z <= Z_MAX:
        raise AtomicInputError(f"Z must satisfy 1 <= Z <= {Z_MAX}, got {Z}")
    check_relativity(relativity)
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
        n, l = parse_label(lab)
        key = f"{n}{L_LETTERS[l]}"
        if key in occ:
            raise AtomicInputError(
                f"extra orbital {key} is part of the configuration; its eigenvalue is in AtomResult.eigenvalues"
            )
        extra_labels.append(key)

    grid = grid or RadialGrid.for_atom(Z)
    r = np.asarray(grid.r)
    h = grid.h
    w = r * h  # quadrature weights of dr on the index grid (trapezoid; integrands vanish at both ends)
    orbitals = solved_orbitals(occ, relativity)
    relativistic_xc = relativity != "none"

    rv_hxc = _thomas_fermi_rv(Z, r) + Z
    mixer = _Anderson(mixing, history=8)
    eig: dict[str, float] = {}
    last_change = float("inf")
    converged = False
    it = 0
    problems: dict[tuple[int, int], RadialProblem] = {}

    def solve_all(rv_total: np.ndarray, orbs: list[Orbital], guesses: Mapping[str, float]):
        problems.clear()
        out = {}
        for o in orbs:
            key = (o.l, o.kappa)
            prob = problems.get(key)
            if prob is None:
                prob = RadialProblem(relativity, o.l, o.kappa, r, rv_total, h, float(Z))
                problems[key] = prob
            out[o.label] = solve_radial(prob, o.n, guesses.get(o.label), o.label)
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
        rv_h = hartree_rv(rho_r, r, h)
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
        extra_orbs = solved_orbitals({k: 0.0 for k in extra_labels}, relativity)
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
