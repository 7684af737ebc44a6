"""Chern numbers (Fukui-Hatsugai-Suzuki), Berry curvature (Kubo), spin Chern number, Hall conductivity.

Sign conventions
----------------
* Berry connection ``A = i <u | grad_k u>``, curvature ``Omega = curl A`` (PythTB's sign; Z2Pack
  reports the opposite Chern sign). ``C = (1/2 pi) * integral of Omega_xy`` summed over the
  occupied bands, with ``k_x, k_y`` right-handed: for a 2D model the reduced axes are oriented by
  the sign of ``det`` of the two lattice vectors, so a left-handed choice of lattice vectors does
  not flip the answer.
* Fukui, Hatsugai, Suzuki, J. Phys. Soc. Jpn. 74, 1674 (2005): link variables
  ``U = det <u(k)|u(k + dk)> / |...|``; the flux through a plaquette is ``-arg`` of the product of
  its four links taken counter-clockwise. The sum is an exact integer on any mesh; the mesh is
  trusted when no plaquette flux comes near pi and the gap stays open.
* Hall conductivity: ``sigma_xy = -(e^2/hbar) integral d^dk/(2 pi)^d sum_n f_n Omega_n,xy``
  (Wang, Yates, Souza, Vanderbilt, PRB 74, 195118 (2006); Wannier90's sign), so a Chern
  insulator has ``sigma_xy = -C e^2/h``.

Batched building blocks, for phase diagrams and the torch backend: :func:`chern_plane` (the two reduced axes
and the fixed k of the others), :func:`plane_orientation` (the 2D handedness sign), :func:`chern_batch` (FHS
on one mesh for many models) and :func:`chern_batch_converged` (with mesh doubling). Their ``raw`` values are
before orientation: multiply by :func:`plane_orientation`, as :func:`chern_number` does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import ConvergenceError, ModelDefinitionError, OccupationError
from td_physics.invariants._core import (
    InvariantResult,
    chunk_size,
    direct_gap,
    eigenstates,
    link_phases,
    plane_grid,
    position_phase,
    resolve_occupied,
    unit,
)
from td_physics.model import TightBindingModel, as_kpoints
from td_physics.options import ChernOptions, resolve

__all__ = [
    "chern_number",
    "berry_curvature",
    "berry_flux_map",
    "spin_chern_number",
    "anomalous_hall_conductivity",
    "E2_OVER_H_SIEMENS",
    "chern_plane",
    "plane_orientation",
    "chern_batch",
    "chern_batch_converged",
]

logger = logging.getLogger(__name__)

E2_OVER_H_SIEMENS = 3.874045846e-5  # e^2/h in siemens (CODATA 2018, exact)


def chern_plane(
    model: TightBindingModel, plane: tuple[int, int] | None = None, k_fixed: float = 0.0
) -> tuple[tuple[int, int], dict[int, float]]:
    """``(axes, fixed)``: the two reduced axes of the Chern plane (default ``(0, 1)``) and the reduced k
    ``k_fixed`` of every other periodic axis (``{2: k_fixed}`` for a 3D model, ``{}`` for a 2D one).

    >>> from td_physics.models import qwz
    >>> chern_plane(qwz(m=1.0))
    ((0, 1), {})
    """
    if model.dim_k == 1:
        raise ModelDefinitionError("a Chern number needs 2 or 3 periodic directions, got a 1D model")
    if plane is None:
        plane = (0, 1)
    a, b = (int(plane[0]), int(plane[1]))
    if a == b or not (0 <= a < model.dim_k and 0 <= b < model.dim_k):
        raise ModelDefinitionError(f"plane must name two different periodic axes of 0..{model.dim_k - 1}, got {plane}")
    fixed = {ax: float(k_fixed) for ax in range(model.dim_k) if ax not in (a, b)}
    return (a, b), fixed


def plane_orientation(model: TightBindingModel, axes: tuple[int, int]) -> int:
    """+1 if the reduced ``axes`` are right-handed in Cartesian space, else -1; always +1 for a 3D model.

    The sign that makes a 2D Chern number independent of the handedness of the lattice vectors.
    """
    if model.dim_k != 2:
        return 1
    frame = model.periodic_frame()
    vecs = model.lattice[list(axes)] @ frame.T  # (2, 2)
    return 1 if np.linalg.det(vecs) > 0 else -1


def _fhs_flux(v: np.ndarray, positions: np.ndarray, axes: tuple[int, int], dim_k: int, n1: int, n2: int) -> np.ndarray:
    """Plaquette Berry fluxes (..., n1, n2) from states v (..., n1, n2, norb, nb) on a periodic grid."""
    ph1 = position_phase(positions, unit(dim_k, axes[0]) / n1)  # (norb,)
    ph2 = position_phase(positions, unit(dim_k, axes[1]) / n2)
    u1 = link_phases(v, np.roll(v, -1, axis=-4), ph1)  # (..., n1, n2)
    u2 = link_phases(v, np.roll(v, -1, axis=-3), ph2)
    plaq = u1 * np.roll(u2, -1, axis=-2) * np.conj(np.roll(u1, -1, axis=-1)) * np.conj(u2)
    return -np.angle(plaq)


def chern_batch(
    models: Sequence[TightBindingModel],
    nocc: int,
    axes: tuple[int, int],
    fixed: dict,
    mesh: int,
    *,
    spin: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """FHS on one ``mesh`` x ``mesh`` grid for each model (same orbitals; ``nocc`` occupied bands; ``axes``
    and ``fixed`` from :func:`chern_plane`). Returns value (before orientation), max |flux|, min gap, spin
    gap, each (nm,).

    With ``spin=True`` the occupied space is split by the sign of P S_z P (Prodan, PRB 80,
    125327 (2009)) and ``value`` is the spin Chern number (C_up - C_down) / 2 (a float, half-odd
    when the split is not clean).
    """
    n = mesh
    first = models[0]
    dim_k, norb = first.dim_k, first.norb
    pos = first.positions[:, :dim_k]
    grid = plane_grid(dim_k, axes, n, n, fixed).reshape(-1, dim_k)
    nm = len(models)
    value = np.zeros(nm)
    maxflux = np.zeros(nm)
    gap = np.zeros(nm)
    spin_gap = np.full(nm, np.inf)
    step = chunk_size(nm, n * n, norb)
    sz = first.spin_z() if spin else None
    for start in range(0, nm, step):  # chunks of models bounded by memory, never single k-points
        sl = slice(start, start + step)
        e, v = eigenstates(models[sl], grid, nocc)
        gap[sl] = direct_gap(e, nocc).min(axis=1)
        v = v.reshape(v.shape[0], n, n, norb, nocc)
        if not spin:
            flux = _fhs_flux(v, pos, axes, dim_k, n, n)
            value[sl] = flux.sum(axis=(1, 2)) / (2 * np.pi)
            maxflux[sl] = np.abs(flux).max(axis=(1, 2))
            continue
        proj = np.conj(np.swapaxes(v, -1, -2)) @ (sz @ v)  # (m, n, n, nocc, nocc)
        w, x = np.linalg.eigh(proj)
        half = nocc // 2
        spin_gap[sl] = np.minimum(-w[..., half - 1], w[..., half]).min(axis=(1, 2)) if nocc % 2 == 0 else 0.0
        v_dn = v @ x[..., :half]
        v_up = v @ x[..., half:]
        f_up = _fhs_flux(v_up, pos, axes, dim_k, n, n)
        f_dn = _fhs_flux(v_dn, pos, axes, dim_k, n, n)
        value[sl] = (f_up.sum(axis=(1, 2)) - f_dn.sum(axis=(1, 2))) / (4 * np.pi)
        maxflux[sl] = np.maximum(np.abs(f_up).max(axis=(1, 2)), np.abs(f_dn).max(axis=(1, 2)))
    return value, maxflux, gap, spin_gap


def chern_batch_converged(
    models: Sequence[TightBindingModel],
    nocc: int,
    axes: tuple[int, int],
    fixed: dict,
    options: ChernOptions,
    *,
    spin: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`chern_batch` with mesh doubling from ``options.mesh`` up to ``options.max_mesh``; only the
    unconverged models with an open gap are recomputed. Returns arrays (nm,): ``raw``, ``max_flux``,
    ``min_gap``, ``spin_gap``, ``mesh`` and ``converged``."""
    nm = len(models)
    out = {
        "raw": np.zeros(nm),
        "max_flux": np.full(nm, np.inf),
        "min_gap": np.zeros(nm),
        "spin_gap": np.full(nm, np.inf),
        "mesh": np.zeros(nm, dtype=int),
        "converged": np.zeros(nm, dtype=bool),
    }
    active = np.arange(nm)
    n, gap_tol = options.mesh, options.gap_threshold
    while active.size:
        raw, mf, gp, sg = chern_batch([models[i] for i in active], nocc, axes, fixed, n, spin=spin)
        out["raw"][active], out["max_flux"][active], out["min_gap"][active] = raw, mf, gp
        out["spin_gap"][active], out["mesh"][active] = sg, n
        gap_open = gp > gap_tol
        if spin:
            gap_open &= sg > gap_tol
        ok = gap_open & (mf <= options.max_flux)
        out["converged"][active] = ok
        # a closed gap is physics, not a mesh problem: refining cannot help those models
        active = active[~ok & gap_open]
        if n * 2 > options.max_mesh:
            break
        n *= 2
    return out


def chern_number(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    plane: tuple[int, int] | None = None,
    k_fixed: float = 0.0,
    options: ChernOptions | None = None,
    **overrides: Any,
) -> InvariantResult:
    """Chern number of the ``occupied`` lowest bands by Fukui-Hatsugai-Suzuki link variables.

    The mesh starts at ``mesh`` x ``mesh`` and doubles until no plaquette carries a Berry flux
    above ``max_flux`` (radians; the integer is unambiguous well below pi), up to ``max_mesh``.
    ``gap_tol`` (eV) is the smallest direct gap accepted; ``None`` turns the check off. These
    come from ``options`` (a :class:`ChernOptions`, default ``ChernOptions()``) with
    ``overrides`` by field name. For a 3D model, ``plane`` names two reduced axes and ``k_fixed``
    the value of the third.

    Examples
    --------
    >>> from td_physics.models import qwz
    >>> chern_number(qwz(m=1.0)).value in (-1, 1)
    True
    >>> chern_number(qwz(m=3.0)).value
    0
    """
    opts = resolve(ChernOptions, options, overrides, "convergence")
    nocc = resolve_occupied(model, occupied)
    axes, fixed = chern_plane(model, plane, k_fixed)
    res = chern_batch_converged([model], nocc, axes, fixed, opts)
    raw = float(res["raw"][0]) * plane_orientation(model, axes)
    value = int(np.rint(raw))
    n = int(res["mesh"][0])
    if not res["converged"][0]:
        logger.warning(
            "Chern number not converged for %s: min gap %.3e eV, max plaquette flux %.3f rad on %dx%d",
            model.name or "model",
            res["min_gap"][0],
            res["max_flux"][0],
            n,
            n,
        )
    return InvariantResult(
        value=value,
        converged=bool(res["converged"][0]),
        min_gap=float(res["min_gap"][0]),
        mesh=(n, n),
        method="fukui-hatsugai-suzuki",
        details={"raw": raw, "max_flux": float(res["max_flux"][0]), "occupied": nocc, "plane": axes, "fixed": fixed},
    )


def spin_chern_number(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    options: ChernOptions | None = None,
    **overrides: Any,
) -> InvariantResult:
    """Spin Chern number ``(C_up - C_down) / 2`` of a 2D spinful model (Prodan's P S_z P split).

    Well defined while the spectrum of the projected ``S_z`` stays gapped at zero, which also
    holds with moderate Rashba coupling. ``details["spin_gap"]`` is that gap (in units of hbar/2).
    Convergence as in :func:`chern_number`; ``gap_tol`` applies to the spin gap too.
    """
    opts = resolve(ChernOptions, options, overrides, "convergence")
    if not model.spinful:
        raise ModelDefinitionError("spin_chern_number needs a spinful model, got a spinless one")
    nocc = resolve_occupied(model, occupied)
    if nocc % 2:
        raise OccupationError(f"spin_chern_number needs an even number of occupied bands, got {nocc}")
    axes, fixed = chern_plane(model, None, 0.0)
    res = chern_batch_converged([model], nocc, axes, fixed, opts, spin=True)
    raw = float(res["raw"][0]) * plane_orientation(model, axes)
    n = int(res["mesh"][0])
    return InvariantResult(
        value=int(np.rint(raw)),
        converged=bool(res["converged"][0]) and abs(raw - np.rint(raw)) < 1e-6,
        min_gap=float(res["min_gap"][0]),
        mesh=(n, n),
        method="prodan-spin-chern",
        details={"raw": raw, "spin_gap": float(res["spin_gap"][0]), "occupied": nocc},
    )


def berry_flux_map(
    model: TightBindingModel, occupied: int | None = None, *, mesh: int = 96, plane=None, k_fixed: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Plaquette Berry fluxes (mesh, mesh) of the occupied bands and the reduced k of each corner.

    Useful for plots: ``flux.sum() / (2 pi)`` is the Chern number (before orientation).
    """
    nocc = resolve_occupied(model, occupied)
    axes, fixed = chern_plane(model, plane, k_fixed)
    grid = plane_grid(model.dim_k, axes, mesh, mesh, fixed)
    _, v = eigenstates([model], grid.reshape(-1, model.dim_k), nocc)
    v = v.reshape(mesh, mesh, model.norb, nocc)
    flux = _fhs_flux(v, model.positions[:, : model.dim_k], axes, model.dim_k, mesh, mesh)
    return flux * plane_orientation(model, axes), grid


def _kubo(energies: np.ndarray, va: np.ndarray, vb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """-2 Im sum_{n,m} w_n (1 - w_m) <n|va|m><m|vb|n> / (E_n - E_m)^2 per k-point.

    energies (nk, norb); va, vb (nk, norb, norb) in the eigenbasis; weight (nk, norb) occupations.
    Pairs of equally occupied bands cancel exactly and are excluded, so degeneracies inside the
    occupied (or empty) space are harmless.
    """
    de = energies[:, :, None] - energies[:, None, :]  # (nk, n, m)
    pair = weight[:, :, None] * (1.0 - weight[:, None, :])
    safe = np.where(np.abs(de) > 1e-12, de, np.inf)
    terms = pair * va * np.swapaxes(vb, -1, -2) / safe**2
    return -2.0 * np.imag(terms.sum(axis=(1, 2)))


def _curvature_components(model: TightBindingModel, kpts: np.ndarray, weight_fn) -> np.ndarray:
    """Cartesian Berry curvature of the weighted bands: (nk,) for 2D, (nk, 3) for 3D."""
    h = model.hamiltonian(kpts, convention=2)
    e, u = np.linalg.eigh(h)
    vel = model.velocity(kpts, cartesian=True)  # (dim_k, nk, norb, norb)
    vel = np.conj(np.swapaxes(u, -1, -2))[None] @ vel @ u[None]
    w = weight_fn(e)
    if model.dim_k == 2:
        return _kubo(e, vel[0], vel[1], w)
    if model.dim_k == 3:
        return np.stack([_kubo(e, vel[1], vel[2], w), _kubo(e, vel[2], vel[0], w), _kubo(e, vel[0], vel[1], w)], -1)
    raise ModelDefinitionError("Berry curvature needs 2 or 3 periodic directions, got a 1D model")


def berry_curvature(model: TightBindingModel, k, occupied: int | None = None) -> np.ndarray:
    """Berry curvature of the ``occupied`` lowest bands at reduced k-points (Kubo formula).

    Returns ``Omega_xy`` (nk,) for a 2D model, or ``(Omega_yz, Omega_zx, Omega_xy)`` (nk, 3) for
    a 3D one, in Angstrom^2 (the square of the lattice's length unit), with the orbital
    positions included (the physical, convention-II curvature).
    """
    kpts = as_kpoints(k, model.dim_k)
    nocc = resolve_occupied(model, occupied)

    def occ(e: np.ndarray) -> np.ndarray:
        w = np.zeros_like(e)
        w[:, :nocc] = 1.0
        return w

    return _curvature_components(model, kpts, occ)


def anomalous_hall_conductivity(
    model: TightBindingModel,
    fermi_energy: float,
    *,
    mesh: int | None = None,
    temperature: float = 0.0,
    length_scale: float | None = None,
    batch: int = 4096,
) -> InvariantResult:
    """Intrinsic anomalous Hall conductivity ``sigma_xy`` at ``fermi_energy`` (eV).

    2D models: ``value`` in units of e^2/h. 3D models: ``value`` in e^2/h per Angstrom (the
    ``sigma_xy`` component). With ``length_scale`` (Angstrom; the layer spacing of a 2D sheet,
    ignored in 3D) ``details["S_per_cm"]`` gives siemens per cm; 3D models always report it.
    ``temperature`` is k_B T in eV (Fermi-Dirac smearing); 0 is a step. The result on ``mesh``
    is compared with the one on every other point of it (a mesh twice as coarse); ``converged``
    means they agree to 1e-2 e^2/h (2D) or 1 S/cm (3D).
    """
    if model.dim_k not in (2, 3):
        raise ModelDefinitionError("the Hall conductivity needs 2 or 3 periodic directions, got a 1D model")
    n = mesh or (200 if model.dim_k == 2 else 48)
    if n < 4 or n % 2:
        raise ConvergenceError(f"mesh must be an even number >= 4, got {n}")
    axes = [np.arange(n) / n] * model.dim_k
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, model.dim_k)

    def occ(e: np.ndarray) -> np.ndarray:
        if temperature > 0:
            return 0.5 * (1.0 - np.tanh((e - fermi_energy) / (2.0 * temperature)))
        return (e < fermi_energy).astype(float)

    omega = np.concatenate([_curvature_components(model, grid[i : i + batch], occ) for i in range(0, len(grid), batch)])
    if model.dim_k == 3:
        omega = omega[:, 2]
    coarse = omega.reshape((n,) * model.dim_k)[(slice(None, None, 2),) * model.dim_k]
    frame = model.periodic_frame()
    measure = abs(np.linalg.det(model.lattice[: model.dim_k] @ frame.T))  # area (2D) or volume (3D)
    sigma = -2 * np.pi * omega.mean() / measure
    sigma_coarse = -2 * np.pi * coarse.mean() / measure
    details = {"coarse": float(sigma_coarse), "mesh_coarse": n // 2, "fermi_energy": fermi_energy}
    if model.dim_k == 3:
        s_cm = sigma * E2_OVER_H_SIEMENS * 1e8
        details["S_per_cm"] = float(s_cm)
        converged = abs(s_cm - sigma_coarse * E2_OVER_H_SIEMENS * 1e8) < 1.0
    else:
        if length_scale is not None:
            details["S_per_cm"] = float(sigma * E2_OVER_H_SIEMENS / (length_scale * 1e-8))
        converged = abs(sigma - sigma_coarse) < 1e-2
    return InvariantResult(
        value=float(sigma),
        converged=bool(converged),
        min_gap=float("nan"),
        mesh=(n,) * model.dim_k,
        method="kubo-berry-curvature",
        details=details,
    )
