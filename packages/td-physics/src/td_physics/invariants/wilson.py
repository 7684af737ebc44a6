"""Z2 invariants: Wannier-charge-centre flow and Fu-Kane parities.

* Wilson loops along one reduced axis give hybrid Wannier charge centres (WCC)
  ``x = -arg(lambda) / 2 pi`` (mod 1, in units of that lattice vector) of the eigenvalues
  ``lambda`` of the ordered product of link matrices, orbital positions included. A string is fine
  enough when dropping every second point moves no centre by more than ``pos_tol``.
* 2D Z2 (Soluyanov and Vanderbilt, PRB 83, 235401 (2011)): follow the middle of the largest gap
  between WCCs over half the Brillouin zone; Z2 is the parity of the number of WCCs it jumps over.
  Pumping lines are inserted where the gap comes too close to a centre (Z2Pack's ``gap_tol``
  idea), so the answer does not depend on a fixed mesh.
* Fu and Kane, PRB 76, 045302 (2007): with inversion, ``(-1)^nu = prod_i delta_i`` over the
  time-reversal-invariant momenta (TRIMs), ``delta_i`` the product of the parities of one member
  of each occupied Kramers pair.
* 3D indices ``(nu0; nu1 nu2 nu3)`` (Fu, Kane, Mele, PRL 98, 106803 (2007)): ``nu_i`` is the 2D
  Z2 of the plane ``k_i = 1/2`` in the model's own reciprocal basis; ``nu0`` is the sum of the
  ``k_i = 0`` and ``k_i = 1/2`` planes, the same for every i (a consistency check).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from td_physics._options import resolve
from td_physics.exceptions import ModelDefinitionError, OccupationError, SymmetryError
from td_physics.invariants._core import (
    InvariantResult,
    chunk_size,
    direct_gap,
    eigenstates,
    link_matrices,
    ordered_product,
    position_phase,
    resolve_occupied,
)
from td_physics.invariants.options import Z2Options
from td_physics.model import InversionSymmetry, TightBindingModel

__all__ = [
    "wilson_loop",
    "WilsonLoopResult",
    "z2_invariant",
    "z2_indices",
    "parity_z2",
    "batched_parity_deltas",
    "fu_kane_indices",
    "detect_inversion",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- Wilson strings
def wilson_strings(
    models: Sequence[TightBindingModel],
    starts: np.ndarray,
    directions: np.ndarray,
    n_string: int,
    nocc: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WCCs of many closed strings ``k = start + j/n_string * G`` for many models at once.

    ``starts`` (ns, dim_k) reduced; ``directions`` (ns, dim_k) integer reciprocal vectors G.
    Returns sorted WCCs (nm, ns, nocc) in [0, 1), the largest change of any WCC when every
    second point of the string is dropped (nm, ns; the string's convergence, Z2Pack's
    ``pos_tol`` idea, at no extra diagonalisation) and the smallest direct gap along each
    string (nm, ns).
    """
    first = models[0]
    pos = first.positions[:, : first.dim_k]
    ns = len(starts)
    steps = np.arange(n_string) / n_string
    kpts = starts[:, None, :] + steps[None, :, None] * directions[:, None, :]  # (ns, n_string, dim_k)
    nm = len(models)
    wcc = np.zeros((nm, ns, nocc))
    change = np.zeros((nm, ns))
    gap = np.zeros((nm, ns))
    step = chunk_size(nm, ns * n_string, first.norb)
    for lo in range(0, nm, step):  # memory-bounded chunks of models
        sl = slice(lo, lo + step)
        e, v = eigenstates(models[sl], kpts.reshape(-1, first.dim_k), nocc)
        gap[sl] = direct_gap(e, nocc).reshape(-1, ns, n_string).min(axis=-1)
        v = v.reshape(-1, ns, n_string, first.norb, nocc)
        fine = _string_wcc(v, pos, directions)
        wcc[sl] = fine
        if n_string % 2 == 0 and n_string >= 8:
            coarse = _string_wcc(v[:, :, ::2], pos, directions)
            dist = _circular_distance(fine[..., :, None], coarse[..., None, :]).min(axis=-1)  # (m, ns, nocc)
            change[sl] = dist.max(axis=-1)
        else:
            change[sl] = np.inf
    return wcc, change, gap


def _string_wcc(v: np.ndarray, pos: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Sorted WCCs (m, ns, nocc) of closed strings of states v (m, ns, n, norb, nocc).

    The eigenphases of the ordered product of overlap matrices; the overlaps are not made
    unitary (their phases, which are all the centres depend on, converge with the string as the
    coarse-string check measures).
    """
    n = v.shape[2]
    phase = position_phase(pos, directions / n)[:, None, :]  # (ns, 1, norb)
    links = link_matrices(v, np.roll(v, -1, axis=2), phase)  # (m, ns, n, nocc, nocc)
    lam = np.linalg.eigvals(ordered_product(links))  # (m, ns, nocc)
    return np.sort(np.mod(-np.angle(lam) / (2 * np.pi), 1.0), axis=-1)


@dataclass(frozen=True)
class WilsonLoopResult:
    """Hybrid Wannier charge centres along ``wilson_axis`` as a function of ``pump`` (k along ``pump_axis``)."""

    pump: np.ndarray  # (n_pump,) reduced k along pump_axis
    wcc: np.ndarray  # (n_pump, nocc) in [0, 1), units of the lattice vector along wilson_axis
    max_change: float  # largest WCC change when every second string point is dropped
    min_gap: float
    wilson_axis: int
    pump_axis: int

    @property
    def polarization(self) -> np.ndarray:
        """Sum of the WCCs mod 1 (the Berry phase / 2 pi of the occupied bands), (n_pump,)."""
        return np.mod(self.wcc.sum(axis=-1), 1.0)


def wilson_loop(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    wilson_axis: int = 0,
    pump_axis: int | None = 1,
    n_pump: int = 51,
    n_string: int = 64,
    pump_range: tuple[float, float] = (0.0, 1.0),
    k_fixed: float = 0.0,
) -> WilsonLoopResult:
    """Hybrid Wannier charge centres from Wilson loops along ``wilson_axis``.

    The loops are stacked along ``pump_axis`` at ``n_pump`` values spanning ``pump_range``
    (inclusive); other axes sit at ``k_fixed``. For a 1D model use ``pump_axis=None``: one loop.
    """
    nocc = resolve_occupied(model, occupied)
    dim = model.dim_k
    if not 0 <= wilson_axis < dim or (pump_axis is not None and (not 0 <= pump_axis < dim or pump_axis == wilson_axis)):
        raise ModelDefinitionError(
            f"wilson_axis and pump_axis must be different axes in 0..{dim - 1}, got {wilson_axis}, {pump_axis}"
        )
    pump = np.linspace(*pump_range, n_pump) if pump_axis is not None else np.zeros(1)
    starts = np.full((len(pump), dim), float(k_fixed))
    starts[:, wilson_axis] = 0.0
    if pump_axis is not None:
        starts[:, pump_axis] = pump
    directions = np.zeros((len(pump), dim))
    directions[:, wilson_axis] = 1.0
    wcc, change, gap = wilson_strings([model], starts, directions, n_string, nocc)
    return WilsonLoopResult(
        pump,
        wcc[0],
        float(change.max()),
        float(gap.min()),
        wilson_axis,
        pump_axis if pump_axis is not None else -1,
    )


# ----------------------------------------------------------------------------- largest-gap rule
def largest_gap(wcc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint (mod 1) and size of the largest gap between sorted WCCs on the circle (...)."""
    wrapped = np.concatenate([wcc, wcc[..., :1] + 1.0], axis=-1)
    gaps = np.diff(wrapped, axis=-1)  # (..., nocc)
    idx = np.argmax(gaps, axis=-1)
    lower = np.take_along_axis(wrapped, idx[..., None], -1)[..., 0]
    size = np.take_along_axis(gaps, idx[..., None], -1)[..., 0]
    return np.mod(lower + size / 2.0, 1.0), size


def _circular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1.0 - d)


def z2_from_flow(wcc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z2 from WCCs (..., n_pump, nocc) over half the zone, and the per-step ambiguity margin.

    Counts, between consecutive pumping lines, the WCCs of the later line that lie between the
    two gap midpoints; their total parity is Z2. The margin is the distance between each
    midpoint and the nearest WCC of the neighbouring line, relative to that line's gap (...,
    n_pump - 1).
    """
    mid, size = largest_gap(wcc)  # (..., n_pump)
    g0, g1 = mid[..., :-1], mid[..., 1:]
    lo, hi = np.minimum(g0, g1)[..., None], np.maximum(g0, g1)[..., None]
    nxt = wcc[..., 1:, :]
    crossings = ((nxt > lo) & (nxt < hi)).sum(axis=(-1, -2))
    z2 = crossings % 2
    d_fwd = _circular_distance(g0[..., None], nxt).min(axis=-1) / np.maximum(size[..., 1:], 1e-300)
    d_bwd = _circular_distance(g1[..., None], wcc[..., :-1, :]).min(axis=-1) / np.maximum(size[..., :-1], 1e-300)
    return z2, np.minimum(d_fwd, d_bwd)


@dataclass
class _Plane:
    """One pumping plane: Wilson loops along ``wilson`` stacked along ``pump`` over [0, 1/2]."""

    fixed_axis: int | None
    fixed_value: float
    wilson: int
    pump: int
    ks: np.ndarray  # (n,) pump values, sorted


def _plane_strings(plane: _Plane, dim: int, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.zeros((len(ks), dim))
    if plane.fixed_axis is not None:
        starts[:, plane.fixed_axis] = plane.fixed_value
    starts[:, plane.pump] = ks
    directions = np.zeros((len(ks), dim))
    directions[:, plane.wilson] = 1.0
    return starts, directions


def _z2_planes(
    models: Sequence[TightBindingModel],
    planes: list[_Plane],
    nocc: int,
    options: Z2Options,
) -> dict[str, np.ndarray]:
    """WCC-flow Z2 of each plane for each model, refining lines where the flow is ambiguous.

    All strings of all planes and models of one refinement step go into one batched solve.
    """
    nm, npl, dim = len(models), len(planes), models[0].dim_k
    ns = options.n_string

    def empty() -> tuple[list, list, list, list]:
        return (
            [np.zeros(0) for _ in planes],
            [np.zeros((nm, 0, nocc)) for _ in planes],
            [np.zeros((nm, 0)) for _ in planes],
            [np.zeros((nm, 0)) for _ in planes],
        )

    ks, wccs, gaps, chs = empty()
    pending = [np.linspace(0.0, 0.5, options.n_pump) for _ in planes]
    result: dict = {}
    while True:
        counts = [len(p) for p in pending]
        parts = [_plane_strings(pl, dim, p) for pl, p in zip(planes, pending)]
        w, ch, gp = wilson_strings(
            models, np.concatenate([s for s, _ in parts]), np.concatenate([d for _, d in parts]), ns, nocc
        )
        offs = np.cumsum([0] + counts)
        for i in range(npl):
            part = slice(offs[i], offs[i + 1])
            order = np.argsort(np.concatenate([ks[i], pending[i]]), kind="stable")
            ks[i] = np.concatenate([ks[i], pending[i]])[order]
            wccs[i] = np.concatenate([wccs[i], w[:, part]], axis=1)[:, order]
            gaps[i] = np.concatenate([gaps[i], gp[:, part]], axis=1)[:, order]
            chs[i] = np.concatenate([chs[i], ch[:, part]], axis=1)[:, order]
        z2 = np.zeros((nm, npl), dtype=int)
        ok = np.ones((nm, npl), dtype=bool)
        min_gap = np.stack([g.min(axis=1) for g in gaps], axis=1)  # (nm, npl)
        max_change = np.stack([c.max(axis=1) for c in chs], axis=1)
        gap_open = min_gap > options.gap_threshold
        new_pending = []
        for i in range(npl):
            zi, margin = z2_from_flow(wccs[i])
            z2[:, i] = zi
            bad_steps = (margin < options.margin_tol) & gap_open[:, i, None]  # (nm, n_pump - 1)
            ok[:, i] = gap_open[:, i] & ~bad_steps.any(axis=1) & (max_change[:, i] <= options.pos_tol)
            mids = 0.5 * (ks[i][:-1] + ks[i][1:])[bad_steps.any(axis=0)]
            new_pending.append(mids if len(ks[i]) + len(mids) <= options.max_pump else np.zeros(0))
        result = {"z2": z2, "converged": ok, "min_gap": min_gap, "max_change": max_change, "n_string": ns}
        if np.any(gap_open & (max_change > options.pos_tol)) and ns * 2 <= options.max_string:
            ns *= 2  # strings too coarse: recompute every line with twice as many points
            pending = [k.copy() for k in ks]
            ks, wccs, gaps, chs = empty()
            continue
        if not any(len(p) for p in new_pending):
            break
        pending = new_pending
    result["pump"] = np.array([len(k) for k in ks])
    result["wcc"] = wccs
    result["ks"] = ks
    return result


# ----------------------------------------------------------------------------- parity
def detect_inversion(model: TightBindingModel, tol: float = 1e-8) -> InversionSymmetry | None:
    """Find an inversion operator with all orbital parities +1, or return ``None``.

    Candidate centres are half lattice vectors and the midpoints of pairs of sites; a candidate
    is accepted when it maps the orbitals onto each other (spin untouched) and
    ``H(-k) = P H(k) P^dagger`` holds at random k-points (one batched Hamiltonian for all
    candidates). Models with odd orbitals (p states) declare their operator with
    :meth:`TightBindingModel.set_inversion` instead.
    """
    pos = model.positions
    dim = model.dim_r
    sites = model.site_positions
    pairs = (sites[:, None, :] + sites[None, :, :]).reshape(-1, dim) / 2
    halves = np.array(list(itertools.product((0.0, 0.5), repeat=dim)))
    centres = np.unique(np.round(np.mod(np.concatenate([halves, pairs]), 0.5), 9), axis=0)
    spin = np.arange(model.norb) % 2 if model.spinful else np.zeros(model.norb, dtype=int)
    onsite = np.real(np.diag(model._onsite))
    # (ncentre, norb, norb): is orbital j the image of orbital i (up to a lattice vector, same spin)?
    shift = (2 * centres[:, None, None, :] - pos[None, :, None, :]) - pos[None, None, :, :]
    match = np.all(np.abs(shift - np.round(shift)) < 1e-6, axis=-1) & (spin[:, None] == spin[None, :])
    ok = np.all(match.sum(axis=2) == 1, axis=1)
    perms = np.argmax(match, axis=2)  # (ncentre, norb)
    ok &= np.array([len(set(p.tolist())) == model.norb for p in perms])
    ok &= np.all(np.abs(onsite[perms] - onsite[None, :]) < tol, axis=1)  # on-site energies must map
    if not ok.any():
        return None
    ks = np.random.default_rng(7).random((3, model.dim_k))
    h = model.hamiltonian(np.concatenate([ks, -ks]))  # (6, norb, norb)
    for c_idx in np.flatnonzero(ok):
        perm = perms[c_idx]
        shifts = np.round(shift[c_idx, np.arange(model.norb), perm]).astype(int)  # (norb, dim)
        op = np.zeros((len(ks), model.norb, model.norb), dtype=complex)
        op[:, perm, np.arange(model.norb)] = np.exp(2j * np.pi * ks @ shifts[:, : model.dim_k].T)
        err = np.abs(op @ h[: len(ks)] @ np.conj(np.swapaxes(op, -1, -2)) - h[len(ks) :]).max()
        if err < tol:
            return model.build_inversion(perm.tolist(), None, centres[c_idx])
    return None


def _trims(dim: int) -> np.ndarray:
    return np.array(list(itertools.product((0.0, 0.5), repeat=dim)))


def parity_deltas(
    model: TightBindingModel, inversion: InversionSymmetry, nocc: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fu-Kane delta_i at the TRIMs (2^dim,), the TRIMs themselves and the smallest gap there."""
    if nocc % 2:
        raise OccupationError(f"the parity method needs an even number of occupied bands, got {nocc}")
    trims = _trims(model.dim_k)
    deltas, gaps = batched_parity_deltas(model.hamiltonian(trims)[None], trims, inversion, nocc)
    return deltas[0], trims, float(gaps[0])


def batched_parity_deltas(
    hamiltonians: np.ndarray, trims: np.ndarray, inversion: InversionSymmetry, nocc: int, *, method: str = "eigh"
) -> tuple[np.ndarray, np.ndarray]:
    """Fu-Kane delta_i (nm, ntrim) and the smallest direct gap at the TRIMs (nm,) of many models at once.

    ``hamiltonians`` (nm, ntrim, norb, norb) are ``H(k)`` (periodic gauge) of ``nm`` models with the
    same orbitals and the same ``inversion`` at the ``trims`` (ntrim, dim_k).

    ``method="eigh"``: one ``eigh`` for all, then the parities of the occupied states (the
    eigenvalues of ``V^dagger P V``), as :func:`parity_z2`. ``method="blocks"``: at a TRIM the
    operator ``P`` is a real signed permutation with ``P^2 = 1`` that commutes with ``H``, so ``H``
    splits into an even and an odd block in the basis ``(e_j +- P e_j) / sqrt 2``; the number of
    odd occupied states is the number of odd-block eigenvalues among the ``nocc`` lowest of both
    blocks (two ``eigvalsh`` of half the size: about a quarter of the work of ``eigh``, and no
    eigenvectors). A model whose blocks do not decouple to 1e-9 eV, or whose gap at a TRIM is below
    1e-6 eV (so that a coupling could mix the parities), is redone with ``"eigh"``: the two
    methods give the same deltas and gaps. Raises :class:`SymmetryError` as :func:`parity_z2`
    does, for the first model that fails.
    """
    if nocc % 2:
        raise OccupationError(f"the parity method needs an even number of occupied bands, got {nocc}")
    if method not in ("eigh", "blocks"):
        raise ModelDefinitionError(f"method must be 'eigh' or 'blocks', got {method!r}")
    h = np.asarray(hamiltonians)
    if method == "blocks":
        n_minus, gaps_at, clean = _parity_blocks(h, trims, inversion, nocc)
        clean &= gaps_at.min(axis=1) > 1e-6
        gaps = gaps_at.min(axis=1)
        redo = np.flatnonzero(~clean)
        if len(redo):
            deltas_redo, gaps_redo = batched_parity_deltas(h[redo], trims, inversion, nocc, method="eigh")
        for m in np.flatnonzero(clean):  # in model order, as the eigh check raises for the first bad one
            if np.any(n_minus[m] % 2):
                raise SymmetryError(
                    f"odd number of negative parities at a TRIM ({n_minus[m].tolist()}): "
                    "occupied bands are not Kramers pairs"
                )
        deltas = np.where((n_minus // 2) % 2 == 1, -1, 1)
        if len(redo):
            deltas[redo], gaps[redo] = deltas_redo, gaps_redo
        return deltas, gaps
    e, v = np.linalg.eigh(h)  # (nm, ntrim, norb), (nm, ntrim, norb, norb)
    gaps = direct_gap(e, nocc).min(axis=1)
    ops = np.stack([inversion.matrix_at(k) for k in trims])  # (ntrim, norb, norb): +-1 signed permutations
    vo = v[..., :nocc]
    proj = np.conj(np.swapaxes(vo, -1, -2)) @ (ops[None] @ vo)  # (nm, ntrim, nocc, nocc)
    eig = np.linalg.eigvals(proj)
    n_minus = np.sum(eig.real < 0, axis=-1)  # (nm, ntrim)
    deviation = np.abs(np.abs(eig) - 1).max(axis=(1, 2))
    bad_unit = deviation > 1e-4
    bad_odd = np.any(n_minus % 2, axis=1)
    for m in range(len(h)):  # the first failing model, with the message of the one-model check
        if bad_unit[m]:
            raise SymmetryError(
                "occupied states are not parity eigenstates at a TRIM "
                "(a degeneracy crosses the gap, or the operator is wrong); "
                f"|eigenvalues| deviate from 1 by up to {deviation[m]:.2e}"
            )
        if bad_odd[m]:
            raise SymmetryError(
                f"odd number of negative parities at a TRIM ({n_minus[m].tolist()}): "
                "occupied bands are not Kramers pairs"
            )
    deltas = np.where((n_minus // 2) % 2 == 1, -1, 1)
    return deltas, gaps


def _parity_basis(inversion: InversionSymmetry, trim: np.ndarray) -> dict[int, tuple[np.ndarray, ...]] | None:
    """The parity eigenbasis at a TRIM: per sector (+1, -1) vectors ``alpha e_i + beta e_j``.

    ``None`` when ``P`` is not a real signed involution there (then the blocks do not apply).
    """
    perm = np.asarray(inversion.permutation)
    norb = len(perm)
    d_complex = np.asarray(inversion.matrix_at(trim))[perm, np.arange(norb)]  # P[perm j, j]
    d = np.round(d_complex.real)
    if np.abs(d_complex - d).max() > 1e-12 or np.any(np.abs(d) != 1) or np.any(perm[perm] != np.arange(norb)):
        return None
    if np.any(d[perm] != d):  # P^2 = 1 needs d_p = d_j on every pair
        return None
    j = np.arange(norb)
    fixed = perm == j
    first = j < perm  # one member of each pair
    c = 1.0 / np.sqrt(2.0)
    out = {}
    for sign in (1, -1):
        f = fixed & (d == sign)
        i_idx = np.concatenate([j[f], j[first]])
        j_idx = np.concatenate([j[f], perm[first]])
        alpha = np.concatenate([np.ones(f.sum()), np.full(first.sum(), c)])
        beta = np.concatenate([np.zeros(f.sum()), sign * c * d[first]])
        out[sign] = (i_idx, j_idx, alpha, beta)
    return out


def _project(h: np.ndarray, left: tuple[np.ndarray, ...], right: tuple[np.ndarray, ...]) -> np.ndarray:
    """``Q_l^T H Q_r`` (..., n_l, n_r) for real basis vectors ``alpha e_i + beta e_j`` (no dense Q)."""
    il, jl, al, bl = left
    ir, jr, ar, br = right
    out = (al[:, None] * ar[None, :]) * h[..., il[:, None], ir[None, :]]
    out += (al[:, None] * br[None, :]) * h[..., il[:, None], jr[None, :]]
    out += (bl[:, None] * ar[None, :]) * h[..., jl[:, None], ir[None, :]]
    out += (bl[:, None] * br[None, :]) * h[..., jl[:, None], jr[None, :]]
    return out


def _parity_blocks(
    h: np.ndarray, trims: np.ndarray, inversion: InversionSymmetry, nocc: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Odd occupied states (nm, ntrim), gap at each TRIM (nm, ntrim) and which models decouple (nm,).

    TRIMs whose blocks have the same sizes share one ``eigvalsh`` per block.
    """
    nm, ntrim = h.shape[0], h.shape[1]
    n_minus = np.zeros((nm, ntrim), dtype=int)
    gaps = np.zeros((nm, ntrim))
    clean = np.ones(nm, dtype=bool)
    bases = [_parity_basis(inversion, k) for k in trims]
    if any(b is None for b in bases):
        return n_minus, gaps, np.zeros(nm, dtype=bool)
    groups: dict[int, list[int]] = {}
    for t, b in enumerate(bases):
        groups.setdefault(len(b[1][0]), []).append(t)
    for ts in groups.values():
        even = np.stack([_project(h[:, t], bases[t][1], bases[t][1]) for t in ts], axis=1)  # (nm, nt, n+, n+)
        odd = np.stack([_project(h[:, t], bases[t][-1], bases[t][-1]) for t in ts], axis=1)
        mixed = np.stack([_project(h[:, t], bases[t][1], bases[t][-1]) for t in ts], axis=1)
        clean &= np.abs(mixed).max(axis=(1, 2, 3), initial=0.0) <= 1e-9
        e_all = np.concatenate([np.linalg.eigvalsh(even), np.linalg.eigvalsh(odd)], axis=-1)  # (nm, nt, norb)
        is_odd = np.concatenate([np.zeros(even.shape[-1], dtype=bool), np.ones(odd.shape[-1], dtype=bool)])
        order = np.argsort(e_all, axis=-1, kind="stable")
        e_sorted = np.take_along_axis(e_all, order, axis=-1)
        n_minus[:, ts] = is_odd[order[..., :nocc]].sum(axis=-1)
        gaps[:, ts] = direct_gap(e_sorted, nocc)
    return n_minus, gaps, clean


def fu_kane_indices(deltas: np.ndarray, trims: np.ndarray) -> int | tuple[int, int, int, int]:
    """Z2 (2D) or ``(nu0, nu1, nu2, nu3)`` (3D) from the deltas at the TRIMs (Fu and Kane 2007)."""
    total = int(np.prod(deltas) < 0)
    if trims.shape[1] == 3:
        weak = tuple(int(np.prod(deltas[trims[:, i] == 0.5]) < 0) for i in range(3))
        return (total, *weak)
    return total


def parity_z2(
    model: TightBindingModel, occupied: int | None = None, inversion: InversionSymmetry | None = None
) -> InvariantResult:
    """Fu-Kane parity invariant: Z2 (2D) or the indices (nu0; nu1 nu2 nu3) (3D).

    Uses ``inversion``, else the model's declared operator, else :func:`detect_inversion`.
    """
    nocc = resolve_occupied(model, occupied)
    op = inversion or model.inversion or detect_inversion(model)
    if op is None:
        raise SymmetryError("the parity method needs inversion symmetry; none was declared or detected")
    deltas, trims, gap = parity_deltas(model, op, nocc)
    return parity_result(deltas, trims, gap)


def parity_result(deltas: np.ndarray, trims: np.ndarray, gap: float) -> InvariantResult:
    """The :class:`InvariantResult` of :func:`parity_z2` from its deltas, TRIMs and smallest gap."""
    return InvariantResult(
        value=fu_kane_indices(deltas, trims),
        converged=gap > 1e-8,
        min_gap=gap,
        mesh=(len(trims),),
        method="fu-kane-parity",
        details={"deltas": deltas.tolist(), "trims": trims.tolist()},
    )


# ----------------------------------------------------------------------------- public Z2
def _z2_setup(model: TightBindingModel, occupied: int | None, method: str, dim: int, name: str) -> int:
    """Validate the shared arguments of the Z2 functions; return the number of occupied bands."""
    if model.dim_k != dim:
        other = "z2_indices for 3D" if dim == 2 else "z2_invariant for 2D"
        raise ModelDefinitionError(f"{name} is for {dim}D models; use {other}, got dim_k={model.dim_k}")
    if method not in ("auto", "wcc", "parity"):
        raise ModelDefinitionError(f"method must be 'auto', 'wcc' or 'parity', got {method!r}")
    nocc = resolve_occupied(model, occupied)
    if nocc % 2:
        raise OccupationError(f"{name} needs an even number of occupied bands (Kramers pairs), got {nocc}")
    return nocc


def _parity_check(
    model: TightBindingModel, nocc: int, method: str, inversion: InversionSymmetry | None, value: object, details: dict
) -> bool:
    """Add the Fu-Kane parity answer to ``details``; False when it contradicts the WCC ``value``."""
    op = inversion or model.inversion or (detect_inversion(model) if method == "auto" else None)
    if op is None:
        return True
    try:
        par = parity_z2(model, nocc, op)
    except SymmetryError as err:
        details["parity_error"] = str(err)
        return True
    details["parity"] = par.value
    details["parity_deltas"] = par.details["deltas"]
    if par.value != value:
        logger.warning("Z2 disagreement for %s: WCC flow %s, parities %s", model.name or "model", value, par.value)
        return False
    return True


def z2_invariant(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    method: str = "auto",
    inversion: InversionSymmetry | None = None,
    options: Z2Options | None = None,
    **overrides: Any,
) -> InvariantResult:
    """Z2 invariant of a 2D time-reversal-invariant insulator.

    ``method``: ``"wcc"`` (Wannier-centre flow, always available), ``"parity"`` (Fu-Kane,
    needs inversion) or ``"auto"`` (the flow, plus the parities when the model has inversion;
    ``converged`` is False if the two disagree). Convergence: ``options`` (a :class:`Z2Options`,
    default ``Z2Options()``) with ``overrides`` by field name (``n_string``, ``max_string``,
    ``n_pump``, ``max_pump``, ``gap_tol``, ``margin_tol``, ``pos_tol``); an unknown name raises
    ``TypeError``.

    Examples
    --------
    >>> from td_physics.models import kane_mele
    >>> z2_invariant(kane_mele(lambda_so=0.06, lambda_v=0.1)).value
    1
    >>> z2_invariant(kane_mele(lambda_so=0.06, lambda_v=0.4)).value
    0
    """
    nocc = _z2_setup(model, occupied, method, 2, "z2_invariant")
    opts = resolve(Z2Options, options, overrides, "convergence")
    if method == "parity":
        return parity_z2(model, nocc, inversion)
    trs = model.is_time_reversal_symmetric()
    if not trs:
        logger.warning("z2_invariant: %s is not time-reversal symmetric; Z2 is not protected", model.name or "model")
    res = _z2_planes([model], [_Plane(None, 0.0, 0, 1, np.zeros(0))], nocc, opts)
    value = int(res["z2"][0, 0])
    converged = bool(res["converged"][0, 0])
    details: dict = {
        "wcc": res["wcc"][0][0],
        "pump": res["ks"][0],
        "max_wcc_change": float(res["max_change"][0, 0]),
        "time_reversal": trs,
    }
    converged = _parity_check(model, nocc, method, inversion, value, details) and converged
    return InvariantResult(
        value=value,
        converged=converged,
        min_gap=float(res["min_gap"][0, 0]),
        mesh=(int(res["n_string"]), int(res["pump"][0])),
        method="wcc-flow" + ("+parity" if "parity" in details else ""),
        details=details,
    )


def z2_indices(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    method: str = "auto",
    inversion: InversionSymmetry | None = None,
    options: Z2Options | None = None,
    **overrides: Any,
) -> InvariantResult:
    """The 3D indices ``(nu0, nu1, nu2, nu3)`` of a time-reversal-invariant insulator.

    ``nu_i`` refers to the model's own reciprocal basis (the plane ``k_i = 1/2``). The six TRIM
    planes are computed in one batched calculation; ``details["planes"]`` holds each plane's Z2
    and ``details["nu0_by_axis"]`` the three independent values of the strong index. Options as in
    :func:`z2_invariant`.

    Examples
    --------
    >>> from td_physics.models import bi2se3
    >>> z2_indices(bi2se3()).value
    (1, 0, 0, 0)
    """
    nocc = _z2_setup(model, occupied, method, 3, "z2_indices")
    opts = resolve(Z2Options, options, overrides, "convergence")
    if method == "parity":
        return parity_z2(model, nocc, inversion)
    planes = [
        _Plane(axis, value, (axis + 1) % 3, (axis + 2) % 3, np.zeros(0)) for axis in range(3) for value in (0.0, 0.5)
    ]
    res = _z2_planes([model], planes, nocc, opts)
    z = res["z2"][0].reshape(3, 2)  # (axis, k_axis = 0 or 1/2)
    nu0_by_axis = (z[:, 0] + z[:, 1]) % 2
    value = (int(nu0_by_axis[0]), int(z[0, 1]), int(z[1, 1]), int(z[2, 1]))
    converged = bool(res["converged"][0].all()) and bool(np.all(nu0_by_axis == nu0_by_axis[0]))
    details: dict = {
        "planes": {f"k{a + 1}={v}": int(z[a, i]) for a in range(3) for i, v in enumerate((0.0, 0.5))},
        "nu0_by_axis": nu0_by_axis.tolist(),
        "max_wcc_change": float(res["max_change"][0].max()),
    }
    converged = _parity_check(model, nocc, method, inversion, value, details) and converged
    return InvariantResult(
        value=value,
        converged=converged,
        min_gap=float(res["min_gap"][0].min()),
        mesh=(int(res["n_string"]), int(res["pump"].max())),
        method="wcc-flow" + ("+parity" if "parity" in details else ""),
        details=details,
    )
