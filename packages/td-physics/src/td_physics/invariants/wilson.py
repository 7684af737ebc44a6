"""Wilson loops and the Wannier-charge-centre flow of the 2D Z2 invariant.

* Wilson loops along one reduced axis give hybrid Wannier charge centres (WCC)
  ``x = -arg(lambda) / 2 pi`` (mod 1, in units of that lattice vector) of the eigenvalues
  ``lambda`` of the ordered product of link matrices, orbital positions included. A string is fine
  enough when dropping every second point moves no centre by more than ``pos_tol``.
* 2D Z2 (Soluyanov and Vanderbilt, PRB 83, 235401 (2011)): follow the middle of the largest gap
  between WCCs over half the Brillouin zone; Z2 is the parity of the number of WCCs it jumps over.
  Pumping lines are inserted where the gap comes too close to a centre (Z2Pack's ``gap_tol``
  idea), so the answer does not depend on a fixed mesh.
* :func:`z2_planes` does this for many pumping planes of many models in one batched solve per
  refinement step; :func:`td_physics.invariants.z2_invariant` and ``z2_indices`` use one and six
  planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.invariants._core import (
    chunk_size,
    direct_gap,
    eigenstates,
    link_matrices,
    ordered_product,
    position_phase,
    resolve_occupied,
)
from td_physics.model import TightBindingModel
from td_physics.options import Z2Options

__all__ = [
    "wilson_loop",
    "WilsonLoopResult",
    "wilson_strings",
    "largest_gap",
    "z2_from_flow",
    "PumpPlane",
    "flow_planes",
    "indices_from_planes",
    "z2_planes",
]


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


@dataclass(frozen=True)
class PumpPlane:
    """One pumping plane: Wilson loops along ``wilson`` stacked along ``pump`` over [0, 1/2].

    In 3D the remaining reduced axis ``fixed_axis`` sits at ``fixed_value``.
    """

    fixed_axis: int | None
    fixed_value: float
    wilson: int
    pump: int


def flow_planes(dim: int) -> list[PumpPlane]:
    """The planes of the Z2 flow: the zone itself (``dim=2``), or the six TRIM planes ``k_i = 0, 1/2``
    (``dim=3``, in the order (axis, value) that :func:`indices_from_planes` reads)."""
    if dim == 2:
        return [PumpPlane(None, 0.0, 0, 1)]
    return [PumpPlane(axis, value, (axis + 1) % 3, (axis + 2) % 3) for axis in range(3) for value in (0.0, 0.5)]


def indices_from_planes(z2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(nu0, nu1, nu2, nu3)`` (..., 4) and the three readings of ``nu0`` (..., 3), from the Z2 of the
    six planes of ``flow_planes(3)`` (..., 6).

    ``nu_i`` is the Z2 of the plane ``k_i = 1/2``; ``nu0`` is the sum of the planes ``k_i = 0`` and
    ``k_i = 1/2``, once for each i (they agree in an insulator).
    """
    z = z2.reshape(*z2.shape[:-1], 3, 2)  # (..., axis, k_axis = 0 or 1/2)
    nu0_by_axis = (z[..., 0] + z[..., 1]) % 2
    return np.concatenate([nu0_by_axis[..., :1], z[..., 1]], axis=-1), nu0_by_axis


def _plane_strings(plane: PumpPlane, dim: int, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.zeros((len(ks), dim))
    if plane.fixed_axis is not None:
        starts[:, plane.fixed_axis] = plane.fixed_value
    starts[:, plane.pump] = ks
    directions = np.zeros((len(ks), dim))
    directions[:, plane.wilson] = 1.0
    return starts, directions


def z2_planes(
    models: Sequence[TightBindingModel],
    planes: list[PumpPlane],
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
