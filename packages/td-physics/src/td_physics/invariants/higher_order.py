"""Higher-order topology in 2D: nested Wilson loops, the quadrupole moment and corner charges.

Nested Wilson loops (Benalcazar, Bernevig and Hughes, Science 357, 61 (2017); Phys. Rev. B 96,
245115 (2017), Sec. V). On an ``n x n`` mesh of the occupied states ``u(k)`` (orbital positions in
every overlap, PythTB's Berry sign, as in :mod:`td_physics.invariants.wilson`):

1. The Wilson loop along x from the base point ``kx``, ``W_x(kx, ky) = M_j M_{j+1} ... M_{j-1}`` with
   the links ``M_j = <u(k_j) | u(k_{j+1})>`` (made unitary by their polar decomposition); its
   eigenvalues ``exp(-2 pi i nu_x)`` give the Wannier bands ``nu_x(ky)`` in (-1/2, 1/2] (the hybrid
   Wannier centres of :func:`~td_physics.invariants.wilson_loop`, in reduced x).
2. The Wannier sector ``nu_x^+``: the half of the Wannier bands in (0, 1/2) (they must keep away from
   0 and 1/2: a Wannier gap). Its states ``|w(k)> = sum_n |u_n(k)> v^n(k)``, ``v(k)`` the eigenvectors
   of ``W_x`` at base point ``k``, obtained at every ``kx`` by parallel transport of those at
   ``kx = 0``: ``v_j = P_j^dagger v_0`` with ``P_j = M_0 ... M_{j-1}`` (a prefix product, log2(n)
   batched products).
3. The Wannier-sector polarisation ``p_y^{nu_x^+} = (1/n) sum_kx -arg det W~_y(kx) / 2 pi`` (mod 1),
   ``W~_y`` the Wilson loop along y of the sector states (phases unwrapped along kx before the mean).
   ``p_x^{nu_y^+}`` is the same with x and y exchanged.

With the mirror symmetries ``M_x`` and ``M_y`` both sector polarisations are quantised to 0 or 1/2,
and the quadrupole moment is ``q_xy = 2 p_y^{nu_x^+} p_x^{nu_y^+}`` (mod 1): 1/2 when both are 1/2,
else 0 (BBH 2017). In the BBH model ``q_xy = 1/2`` exactly when ``|gamma| < |lam|``.

Corner charge (the second, independent method; BBH 2017): a finite flake with open boundaries
(:func:`td_physics.finite.flake`), filled with ``n_electrons``; the charge of each quadrant is the
ionic background (``electrons_per_cell`` per cell) minus the electrons in it (units of ``e``,
positive where electrons are missing). A quadrupole phase binds ``+-e/2`` (mod 1) to each corner,
with four zero-energy corner states at ``delta = 0``; a trivial phase binds none.

Boundary polarisation (the third method, :func:`edge_polarization`): the hybrid Wannier functions of a
ribbon's occupied bands, their centres weighted by their weight on each layer of cells, summed over
half the ribbon: ``p_edge = q_xy`` for BBH, and ``Q_corner = p_edge_x + p_edge_y - q_xy`` (mod 1).

The Wilson loops are batched over models with the same orbitals: one ``eigh`` for all k-points of all
models per mesh, no Python loop over k-points; their eigenvectors come from a hermitian matrix, so they
stay orthonormal where Wannier bands are degenerate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, OccupationError
from td_physics.finite import FiniteSystem
from td_physics.invariants._core import (
    InvariantResult,
    chunk_size,
    direct_gap,
    eigenstates,
    link_matrices,
    link_phases,
    position_phase,
    resolve_occupied,
    unit,
)
from td_physics.model import TightBindingModel
from td_physics.options import NestedWilsonOptions, resolve

__all__ = ["sector_polarizations", "quadrupole_batch", "quadrupole_moment", "edge_polarization", "corner_charges"]

logger = logging.getLogger(__name__)


def _unitary(m: np.ndarray) -> np.ndarray:
    """The unitary factor ``U V^dagger`` of the polar decomposition of each (..., a, a) matrix."""
    u, _, vh = np.linalg.svd(m)
    return u @ vh


def _prefix_products(m: np.ndarray) -> np.ndarray:
    """``P_j = M_0 M_1 ... M_{j-1}`` (``P_0 = 1``) along axis -3 of (..., n, a, a): a Hillis-Steele scan."""
    n = m.shape[-3]
    scan = m.copy()  # inclusive: scan_j = M_0 ... M_j
    step = 1
    while step < n:
        nxt = scan.copy()
        nxt[..., step:, :, :] = scan[..., :-step, :, :] @ scan[..., step:, :, :]
        scan, step = nxt, 2 * step
    eye = np.broadcast_to(np.eye(m.shape[-1], dtype=m.dtype), m.shape[:-3] + (1,) + m.shape[-2:])
    return np.concatenate([eye, scan[..., :-1, :, :]], axis=-3)


# Weight of the anti-hermitian part in the hermitian matrix whose eigenvectors diagonalise a unitary matrix.
_EIG_MIX = 1.0 / np.pi


def _unitary_eig(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (..., a) and orthonormal eigenvectors (..., a, a) of unitary matrices (..., a, a).

    ``W`` is normal, so ``(W + W^dagger) / 2`` and ``(W - W^dagger) / 2i`` commute and share the eigenvectors
    of ``W``; ``eigh`` of ``(W + W^dagger) / 2 + c (W - W^dagger) / 2i`` (``c = 1/pi``) gives them orthonormal
    even where ``W`` is degenerate (``numpy.linalg.eig`` does not). Eigenvalues ``exp(i t)`` collide in that
    matrix only for ``t`` symmetric about ``atan(c)``; the eigenvalues are the Rayleigh quotients
    ``v^dagger W v``, whose modulus falls below 1 if such a collision mixed two of them.
    """
    herm = 0.5 * (w + np.conj(np.swapaxes(w, -1, -2)))
    anti = -0.5j * (w - np.conj(np.swapaxes(w, -1, -2)))
    _, vec = np.linalg.eigh(herm + _EIG_MIX * anti)
    lam = np.einsum("...ij,...ik,...kj->...j", np.conj(vec), w, vec)
    return lam, vec


def _wannier_basis(v: np.ndarray, phase_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wannier bands and hybrid-Wannier-basis states of occupied states on a mesh.

    ``v`` (m, n_w, n_o, norb, nocc): the states at ``k_w = j / n_w`` (Wilson direction) and
    ``k_o = l / n_o``, periodic gauge; ``phase_w`` (norb,): the orbital-position phases of one step
    along ``k_w``. Returns the Wannier bands (m, n_o, nocc) sorted in (-1/2, 1/2] and the states
    ``|w(k)> = sum_n |u_n(k)> v^n(k)`` of each band (m, n_w, n_o, norb, nocc), ``v(k)`` the eigenvectors
    of the Wilson loop from base point ``k`` (parallel transport from ``k_w = 0``).
    """
    links = _unitary(link_matrices(v, np.roll(v, -1, axis=1), phase_w))  # (m, n_w, n_o, nocc, nocc)
    links = np.moveaxis(links, 1, 2)  # (m, n_o, n_w, nocc, nocc)
    prefix = _prefix_products(links)
    wilson = prefix[..., -1, :, :] @ links[..., -1, :, :]  # base point k_w = 0: (m, n_o, nocc, nocc)
    lam, vec = _unitary_eig(wilson)
    nu = -np.angle(lam) / (2 * np.pi)  # (m, n_o, nocc) in [-1/2, 1/2]
    nu = np.where(nu <= -0.5 + 1e-9, nu + 1.0, nu)  # in (-1/2, 1/2]: a centre at 1/2 is +1/2, whatever the rounding
    order = np.argsort(nu, axis=-1)
    nu = np.take_along_axis(nu, order, axis=-1)
    vec = np.take_along_axis(vec, order[..., None, :], axis=-1)
    frame = np.moveaxis(v, 1, 2) @ np.conj(np.swapaxes(prefix, -1, -2))  # U_j P_j^dagger (m, n_o, n_w, norb, nocc)
    return nu, np.moveaxis(frame @ vec[:, :, None], 1, 2)


def _sector_polarization(
    v: np.ndarray, phase_w: np.ndarray, phase_o: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wannier bands and the upper sector's polarisation of occupied states on a mesh.

    ``v``, ``phase_w`` as :func:`_wannier_basis`; ``phase_o`` (norb,): the orbital-position phases of one
    step along ``k_o``. Returns the sorted Wannier bands (m, n_o, nocc) in (-1/2, 1/2], the sector
    polarisation (m,) in [0, 1) and the number of Wannier bands above 0 (m, n_o).
    """
    nocc = v.shape[-1]
    nu, w = _wannier_basis(v, phase_w)
    w = w[..., nocc // 2 :]  # the sector nu > 0: (m, n_w, n_o, norb, nocc/2)
    dets = link_phases(w, np.roll(w, -1, axis=2), phase_o)  # (m, n_w, n_o)
    p_k = -np.angle(np.prod(dets, axis=2))  # (m, n_w): -arg det W~ at each base point k_w
    p = np.mod(np.unwrap(p_k, axis=1).mean(axis=1) / (2 * np.pi), 1.0)
    p = np.where(1.0 - p < 1e-12, 0.0, p)  # a tiny negative phase is 0, not 1 - 1e-17
    return nu, p, (nu > 0).sum(axis=-1)


def _half_distance(p: np.ndarray) -> np.ndarray:
    """Distance (mod 1) of ``p`` from the nearer of 0 and 1/2."""
    d = np.mod(p, 0.5)
    return np.minimum(d, 0.5 - d)


def _circular(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.mod(a - b, 1.0)
    return np.minimum(d, 1.0 - d)


def sector_polarizations(models: Sequence[TightBindingModel], nocc: int, mesh: int) -> dict[str, np.ndarray]:
    """Both Wannier-sector polarisations of many 2D models on one ``mesh`` x ``mesh`` grid.

    Returns arrays over the models: ``p_y_nu_x`` and ``p_x_nu_y`` (m,) in [0, 1), the same on the half
    mesh (``coarse_p_y_nu_x``, ``coarse_p_x_nu_y``), ``wannier_gap`` (m,) (the smallest distance of a
    Wannier band from 0 and 1/2, both directions), ``balanced`` (m,) (every Wannier spectrum has as
    many bands above 0 as below), ``min_gap`` (m,) and the Wannier bands ``nu_x`` (m, mesh, nocc)
    against ``ky = l / mesh`` and ``nu_y`` against ``kx``.
    """
    first = models[0]
    if first.dim_k != 2:
        raise ModelDefinitionError(f"nested Wilson loops need a 2D model, got dim_k={first.dim_k}")
    if nocc % 2:
        raise OccupationError(
            f"the Wannier sectors split the occupied bands in halves; need an even number, got {nocc}"
        )
    pos = first.positions[:, :2]
    axis = np.arange(mesh) / mesh
    kpts = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)  # [a, b] = (a/n, b/n)
    nm = len(models)
    out: dict[str, np.ndarray] = {
        key: np.zeros(nm)
        for key in ("p_y_nu_x", "p_x_nu_y", "coarse_p_y_nu_x", "coarse_p_x_nu_y", "wannier_gap", "min_gap")
    }
    out["balanced"] = np.ones(nm, dtype=bool)
    out["nu_x"] = np.zeros((nm, mesh, nocc))
    out["nu_y"] = np.zeros((nm, mesh, nocc))
    step = chunk_size(nm, 2 * len(kpts), first.norb)
    for lo in range(0, nm, step):  # memory-bounded chunks of models
        sl = slice(lo, lo + step)
        e, v = eigenstates(models[sl], kpts, nocc)
        out["min_gap"][sl] = direct_gap(e, nocc).min(axis=1)
        v = v.reshape(-1, mesh, mesh, first.norb, nocc)  # (m, kx, ky, norb, nocc)
        gaps = []
        for name, states, w_axis in (("p_y_nu_x", v, 0), ("p_x_nu_y", np.swapaxes(v, 1, 2), 1)):
            o_axis = 1 - w_axis
            for suffix, vv, n in (("", states, mesh), ("coarse_", states[:, ::2, ::2], mesh // 2)):
                nu, p, above = _sector_polarization(
                    vv, position_phase(pos, unit(2, w_axis) / n), position_phase(pos, unit(2, o_axis) / n)
                )
                out[suffix + name][sl] = p
                if not suffix:
                    out["nu_x" if w_axis == 0 else "nu_y"][sl] = nu
                    gaps.append(_half_distance(nu).min(axis=(1, 2)))
                    out["balanced"][sl] &= np.all(above == nocc // 2, axis=1)
        out["wannier_gap"][sl] = np.minimum(*gaps)
    return out


def quadrupole_batch(
    models: Sequence[TightBindingModel], nocc: int, options: NestedWilsonOptions
) -> dict[str, np.ndarray]:
    """``q_xy`` (m,) of many models, the mesh doubled (per model) until its sector polarisations settle.

    Returns ``q_xy`` (0.0 or 0.5), ``converged``, ``mesh`` (the mesh each model ended on), and the last
    mesh's ``p_y_nu_x``, ``p_x_nu_y``, ``wannier_gap`` and ``min_gap`` (all (m,)).
    """
    nm = len(models)
    keys = ("p_y_nu_x", "p_x_nu_y", "wannier_gap", "min_gap")
    res: dict[str, np.ndarray] = {key: np.zeros(nm) for key in keys}
    res["balanced"] = np.zeros(nm, dtype=bool)
    res["settled"] = np.zeros(nm, dtype=bool)
    res["mesh"] = np.zeros(nm, dtype=int)
    todo = np.arange(nm)
    mesh = options.mesh
    while len(todo):
        out = sector_polarizations([models[i] for i in todo], nocc, mesh)
        change = np.maximum(
            _circular(out["p_y_nu_x"], out["coarse_p_y_nu_x"]), _circular(out["p_x_nu_y"], out["coarse_p_x_nu_y"])
        )
        for key in keys + ("balanced",):
            res[key][todo] = out[key]
        res["mesh"][todo] = mesh
        settled = change <= options.pos_tol
        res["settled"][todo] = settled
        gapped = out["min_gap"] > options.gap_threshold
        mesh *= 2
        if mesh > options.max_mesh:
            break
        todo = todo[gapped & ~settled]  # a closed gap is not cured by a finer mesh
    quantised = np.maximum(_half_distance(res["p_y_nu_x"]), _half_distance(res["p_x_nu_y"])) <= options.quantization_tol
    half_x = np.mod(np.rint(2 * res["p_y_nu_x"]), 2)  # 2 p rounded, mod 2: 1 where p = 1/2
    half_y = np.mod(np.rint(2 * res["p_x_nu_y"]), 2)
    res["q_xy"] = np.mod(2 * (half_x / 2) * (half_y / 2), 1.0)
    res["converged"] = (
        res["settled"]
        & quantised
        & res["balanced"]
        & (res["wannier_gap"] > options.wannier_gap_tol)
        & (res["min_gap"] > options.gap_threshold)
    )
    return res


def quadrupole_moment(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    options: NestedWilsonOptions | None = None,
    **overrides: Any,
) -> InvariantResult:
    """The quadrupole moment ``q_xy`` (0 or 1/2) of a 2D insulator from nested Wilson loops.

    ``q_xy = 2 p_y^{nu_x^+} p_x^{nu_y^+}`` mod 1 (Benalcazar, Bernevig and Hughes, Science 357, 61
    (2017); Phys. Rev. B 96, 245115 (2017)), each Wannier-sector polarisation rounded to 0 or 1/2;
    the algorithm is in the module docstring. ``converged`` needs the energy gap open, the Wannier
    bands gapped at 0 and 1/2, both polarisations within ``quantization_tol`` of 0 or 1/2 (they are
    quantised by the mirror symmetries) and settled on the half mesh. ``options`` (a
    :class:`~td_physics.options.NestedWilsonOptions`, default ``NestedWilsonOptions()``) with
    ``overrides`` by field name. ``details`` holds both sector polarisations and the Wannier gap.

    Examples
    --------
    >>> from td_physics.models import bbh
    >>> quadrupole_moment(bbh(0.5, 1.0)).value, quadrupole_moment(bbh(1.0, 0.5)).value
    (0.5, 0.0)
    """
    opts = resolve(NestedWilsonOptions, options, overrides, "convergence")
    nocc = resolve_occupied(model, occupied)
    res = quadrupole_batch([model], nocc, opts)
    mesh = int(res["mesh"][0])
    if not res["converged"][0]:
        logger.warning(
            "quadrupole moment of %s not converged: p_y^nu_x=%.4f, p_x^nu_y=%.4f, Wannier gap %.2e, gap %.2e, mesh %d",
            model.name or "model",
            res["p_y_nu_x"][0],
            res["p_x_nu_y"][0],
            res["wannier_gap"][0],
            res["min_gap"][0],
            mesh,
        )
    return InvariantResult(
        value=float(res["q_xy"][0]),
        converged=bool(res["converged"][0]),
        min_gap=float(res["min_gap"][0]),
        mesh=(mesh, mesh),
        method="nested-wilson-loop",
        details={
            "p_y_nu_x": float(res["p_y_nu_x"][0]),
            "p_x_nu_y": float(res["p_x_nu_y"][0]),
            "wannier_gap": float(res["wannier_gap"][0]),
        },
    )


def edge_polarization(
    model: TightBindingModel,
    *,
    open_axis: int = 1,
    n_cells: int = 20,
    mesh: int = 32,
    occupied: int | None = None,
    centre_tol: float = 1e-2,
) -> InvariantResult:
    """The boundary polarisation of a 2D model: a ribbon's dipole per unit length at one edge, along the edge.

    The ribbon (:func:`td_physics.finite.ribbon`) is open along ``open_axis`` with ``n_cells`` cells (even)
    and periodic along the other axis, on which its occupied states are sampled at ``mesh`` points. Its
    Wilson loop along the edge gives hybrid Wannier functions ``j`` with centres ``nu_j`` (reduced, in
    (-1/2, 1/2]) and weights ``rho_j(R)`` on each layer ``R`` of cells; the layer polarisation is
    ``p(R) = sum_j rho_j(R) nu_j`` and the edge polarisation ``p_edge = sum_{R < n_cells / 2} p(R)`` (mod 1)
    (Benalcazar, Bernevig and Hughes, Phys. Rev. B 96, 245115 (2017), Sec. VI). A quadrupole phase has
    ``p_edge = 1/2`` with a vanishing bulk polarisation; with the corner charge,
    ``Q_corner = p_edge_x + p_edge_y - q_xy`` (mod 1).

    The two edges' Wannier centres at 1/2 hybridise across a finite ribbon and split to ``1/2 +- eps`` (``eps``
    falls off exponentially with ``n_cells``), one on each side of the branch cut; centres within
    ``centre_tol`` of 1/2 are therefore taken as exactly 1/2. ``value`` is ``p_edge`` in [0, 1);
    ``details["layers"]`` the ``p(R)`` of every layer, ``details["wannier"]`` the centres ``nu_j``.
    ``converged`` needs the ribbon's gap open (above 1e-6) and ``p_edge`` within 1e-3 of 0 or 1/2 (it is
    quantised by the mirror symmetries).

    Examples
    --------
    >>> from td_physics.models import bbh
    >>> round(edge_polarization(bbh(0.5, 1.0), n_cells=10, mesh=16).value, 6)
    0.5
    """
    from td_physics.finite import ribbon  # the ribbon is built here only: finite imports nothing from invariants

    if model.dim_k != 2:
        raise ModelDefinitionError(f"the edge polarisation is for 2D models, got dim_k={model.dim_k}")
    if n_cells % 2 or n_cells < 2:
        raise ModelDefinitionError(f"the ribbon is cut in halves; n_cells must be even and >= 2, got {n_cells}")
    nocc = resolve_occupied(model, occupied) * n_cells
    strip = ribbon(model, open_axis, n_cells)
    kpts = (np.arange(mesh) / mesh)[:, None]
    e, v = eigenstates([strip], kpts, nocc)  # (1, mesh, norb), (1, mesh, norb, nocc)
    nu, w = _wannier_basis(v[:, :, None], position_phase(strip.positions[:, :1], unit(1, 0) / mesh))
    centres = np.where(0.5 - np.abs(nu[0, 0]) < centre_tol, 0.5, nu[0, 0])  # (nocc,)
    rho = np.mean(np.abs(w[0, :, 0]) ** 2, axis=0)  # (norb, nocc): weight of each hybrid Wannier function
    per_site = 2 if strip.spinful else 1
    layer = np.asarray(strip.metadata["site_cells"])[np.arange(strip.norb) // per_site, open_axis]  # (norb,)
    layers = np.bincount(layer, weights=rho @ centres, minlength=n_cells)  # p(R) for R = 0 .. n_cells - 1
    p_edge = float(np.mod(layers[: n_cells // 2].sum(), 1.0))
    p_edge = 0.0 if 1.0 - p_edge < 1e-12 else p_edge
    gap = float(direct_gap(e, nocc).min())
    return InvariantResult(
        value=p_edge,
        converged=bool(gap > 1e-6 and _half_distance(np.array(p_edge)) <= 1e-3),
        min_gap=gap,
        mesh=(mesh,),
        method="ribbon-hybrid-wannier-layers",
        details={"layers": layers.tolist(), "wannier": nu[0, 0].tolist()},
    )


def corner_charges(system: FiniteSystem, n_electrons: int | None = None, *, degeneracy_tol: float = 1e-8) -> np.ndarray:
    """Charge (units of ``e``) in each corner region of a finite flake, ground state of ``n_electrons``.

    The regions are the ``2^dim`` blocks of half the cells along each axis (quadrants of a 2D flake;
    every count in ``system.repeats`` must be even); the charge of a region is its ionic background,
    ``electrons_per_cell`` per cell, minus the electrons in it: positive where electrons are missing.
    Returns an array of shape ``(2,) * dim``, index 0 the low half along an axis, 1 the high half.
    ``n_electrons`` defaults to the neutral filling; a filling that splits a degenerate level (within
    ``degeneracy_tol``) has no unique ground state and raises :class:`OccupationError`.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.finite import flake
    >>> from td_physics.models import bbh
    >>> piece = flake(bbh(0.2, 1.0), (6, 6))
    >>> np.round(corner_charges(piece, piece.n_electrons - 2), 3)  # corner states empty: +e/2 each
    array([[0.5, 0.5],
           [0.5, 0.5]])
    """
    reps = np.asarray(system.repeats)
    if np.any(reps % 2):
        raise ModelDefinitionError(f"corner regions halve every axis; repeats must be even, got {system.repeats}")
    n_el = system.n_electrons if n_electrons is None else int(n_electrons)
    if not 0 < n_el < system.norb:
        raise OccupationError(f"n_electrons must be between 1 and {system.norb - 1}, got {n_electrons!r}")
    energies, vectors = system.eigh()
    if energies[n_el] - energies[n_el - 1] < degeneracy_tol:
        raise OccupationError(
            f"filling {n_el} electrons splits a degenerate level at energy {energies[n_el]:.6g}: no unique ground "
            "state (split it with a small regulator, or fill the whole level)"
        )
    density = np.sum(np.abs(vectors[:, :n_el]) ** 2, axis=1)  # (N,) electrons on each orbital
    half = (system.cells >= reps // 2).astype(int)  # (N, dim): which half along each axis
    region = np.ravel_multi_index(tuple(half.T), (2,) * len(reps))
    electrons = np.bincount(region, weights=density, minlength=2 ** len(reps))
    background = system.electrons_per_cell * np.prod(reps) / 2 ** len(reps)
    return (background - electrons).reshape((2,) * len(reps))
