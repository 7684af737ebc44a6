"""Weyl nodes: where band ``n`` touches band ``n + 1`` in a 3D model, and each node's chirality.

Search: the gap ``E_{n+1} - E_n`` on a coarse periodic mesh (one batched ``eigvalsh``), its local
minima as candidates, each polished by Nelder-Mead on the gap; a node is kept when its gap is
below ``node_tol``. Chirality: the Berry flux of bands ``0..n`` through a small sphere around the
node (Cartesian k, outward normal), by Fukui-Hatsugai-Suzuki link variables on a (theta, phi)
mesh; with the Chern sign of :mod:`td_physics.invariants.chern` this equals
``sign det(d d_i / d k_j)`` for a two-band node ``H = d(k) . sigma``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from td_physics.exceptions import ModelDefinitionError, OccupationError
from td_physics.invariants._core import InvariantResult, eigenstates, link_phases, position_phase
from td_physics.model import TightBindingModel

__all__ = ["WeylNode", "weyl_nodes", "node_chirality", "WEYL_MESH"]

logger = logging.getLogger(__name__)

WEYL_MESH = 24
"""Points per axis of the default search mesh of :func:`weyl_nodes`."""


@dataclass(frozen=True)
class WeylNode:
    """One band touching: reduced position (in [0, 1)), chirality (+1/-1, 0 if not a simple node) and gap (eV)."""

    position: tuple[float, float, float]
    chirality: int
    gap: float
    flux: float


def _gap_fn(model: TightBindingModel, band: int):
    def gap(k: np.ndarray) -> float:
        e = np.linalg.eigvalsh(model.hamiltonian(k)[0])
        return float(e[band + 1] - e[band])

    return gap


def node_chirality(
    model: TightBindingModel, nodes: np.ndarray, band: int, *, radius: float, n_theta: int = 24, n_phi: int = 48
) -> np.ndarray:
    """Outward Berry flux / 2 pi of bands 0..band through spheres around ``nodes`` (nn, 3) reduced.

    ``radius`` is in Cartesian 1/Angstrom (or the lattice's inverse unit). All spheres are done in
    one batched solve. Returns the raw fluxes (nn,), integers when the spheres are fine enough.
    """
    recip = model.reciprocal_lattice  # rows b_i, k_cart = k_red @ recip
    theta = np.linspace(0.0, np.pi, n_theta + 1)
    phi = np.arange(n_phi) * 2 * np.pi / n_phi
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    dirs = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1)  # (nt+1, nphi, 3)
    offset_red = (radius * dirs) @ np.linalg.inv(recip)  # Cartesian offset -> reduced
    kpts = nodes[:, None, None, :] + offset_red[None]  # (nn, nt+1, nphi, 3)
    nocc = band + 1
    _, v = eigenstates([model], kpts.reshape(-1, 3), nocc)
    v = v.reshape(len(nodes), n_theta + 1, n_phi, model.norb, nocc)
    pos = model.positions[:, :3]
    dk_theta = kpts[:, 1:] - kpts[:, :-1]  # (nn, nt, nphi, 3)
    dk_phi = np.roll(kpts, -1, axis=2) - kpts
    u_t = link_phases(v[:, :-1], v[:, 1:], position_phase(pos, dk_theta))  # (nn, nt, nphi)
    u_p = link_phases(v, np.roll(v, -1, axis=2), position_phase(pos, dk_phi))  # (nn, nt+1, nphi)
    plaq = u_t * u_p[:, 1:] * np.conj(np.roll(u_t, -1, axis=2)) * np.conj(u_p[:, :-1])
    return -np.angle(plaq).sum(axis=(1, 2)) / (2 * np.pi)


def weyl_nodes(
    model: TightBindingModel,
    band: int | None = None,
    *,
    mesh: int = WEYL_MESH,
    node_tol: float = 1e-5,
    max_candidates: int = 64,
    radius: float | None = None,
) -> InvariantResult:
    """Find the touchings of bands ``band`` and ``band + 1`` and their chiralities.

    ``band`` defaults to the highest occupied band (``n_occupied - 1``). ``value`` is a tuple of
    :class:`WeylNode`; ``converged`` means every node has an integer chirality and the total
    chirality is zero (Nielsen-Ninomiya). ``radius`` (Cartesian, inverse length) defaults to a
    third of the distance to the nearest other node, at most 2% of the shortest reciprocal vector.

    Examples
    --------
    >>> from td_physics.models import weyl_two_band
    >>> res = weyl_nodes(weyl_two_band())
    >>> sorted(n.chirality for n in res.value)
    [-1, 1]
    """
    if model.dim_k != 3:
        raise ModelDefinitionError(f"weyl_nodes needs a 3D model, got dim_k={model.dim_k}")
    band = model.n_occupied - 1 if band is None else int(band)
    if not 0 <= band < model.norb - 1:
        raise OccupationError(f"band must be between 0 and {model.norb - 2}, got {band}")
    axis = np.arange(mesh) / mesh
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)  # (n, n, n, 3)
    e, _ = eigenstates([model], grid.reshape(-1, 3), band + 1, keep="none")
    gap = (e[0, :, band + 1] - e[0, :, band]).reshape(mesh, mesh, mesh)
    is_min = np.ones_like(gap, dtype=bool)
    for shift in np.ndindex(3, 3, 3):  # the 26 neighbours of every mesh point, vectorised over the mesh
        if shift == (1, 1, 1):
            continue
        is_min &= gap <= np.roll(gap, tuple(s - 1 for s in shift), axis=(0, 1, 2))
    cand = np.argwhere(is_min)
    cand = cand[np.argsort(gap[tuple(cand.T)])][:max_candidates]
    fn = _gap_fn(model, band)
    found: list[tuple[np.ndarray, float]] = []
    for idx in cand:  # polish each candidate minimum (a handful), not a loop over the mesh
        start = idx / mesh
        opt = minimize(fn, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
        k = np.mod(opt.x, 1.0)
        if opt.fun < node_tol and not any(
            np.allclose(np.mod(k - other + 0.5, 1.0) - 0.5, 0.0, atol=1e-4) for other, _ in found
        ):
            found.append((k, float(opt.fun)))
    if not found:
        return InvariantResult((), True, float(gap.min()), (mesh,) * 3, "gap-minimisation+berry-flux", {})
    nodes = np.array([k for k, _ in found])
    recip = model.reciprocal_lattice
    bmin = float(np.min(np.linalg.norm(recip, axis=1)))
    if radius is None:
        radius = 0.02 * bmin
        if len(nodes) > 1:
            diff = np.mod(nodes[:, None] - nodes[None] + 0.5, 1.0) - 0.5
            dist = np.linalg.norm(diff @ recip, axis=-1) + np.eye(len(nodes)) * 1e9
            radius = min(radius, float(dist.min()) / 3)
    flux = node_chirality(model, nodes, band, radius=radius)
    chir = np.rint(flux).astype(int)
    result = tuple(WeylNode(tuple(float(x) for x in k), int(c), g, float(f)) for (k, g), c, f in zip(found, chir, flux))
    integral = bool(np.all(np.abs(flux - chir) < 1e-3))
    converged = integral and int(chir.sum()) == 0
    if not converged:
        logger.warning("Weyl search for %s: fluxes %s (total %d)", model.name or "model", np.round(flux, 3), chir.sum())
    return InvariantResult(
        value=result,
        converged=converged,
        min_gap=float(min(g for _, g in found)),
        mesh=(mesh,) * 3,
        method="gap-minimisation+berry-flux",
        details={"radius": radius, "total_chirality": int(chir.sum())},
    )
