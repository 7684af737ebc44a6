"""The Z2 invariant of antiferromagnetic topological insulators (AFTI).

Mong, Essin and Moore, Phys. Rev. B 81, 245209 (2010): an antiferromagnet that breaks time reversal
``Theta`` and a primitive translation ``T_{1/2}`` but keeps ``S = Theta T_{1/2}`` has a Z2 index. In a
magnetic cell whose lattice vector ``A`` along ``axis`` is twice the broken translation
(``T_{1/2}`` = translation by ``A / 2``), ``S^2 = -1`` on the plane ``k_axis = 0`` (reduced), so
its bands come in Kramers pairs there and the plane carries a 2D Z2 exactly as a time-reversal
invariant plane does. Two independent methods, cross-checked under ``method="auto"``:

* Wannier-centre flow (Soluyanov and Vanderbilt, PRB 83, 235401 (2011)) on that plane, by the
  machinery of :mod:`td_physics.invariants.wilson`: it needs only the Kramers pairs and the
  ``k -> -k`` relation that ``S`` gives, not time reversal itself;
* with inversion, the parity formula of Fang, Gilbert and Bernevig, PRB 88, 085406 (2013):
  ``(-1)^nu = prod_i delta_i`` over the four inversion-invariant momenta of the plane, ``delta_i``
  the product of the parities of one state of each occupied ``S``-Kramers pair (``P`` commutes with
  ``S`` on the plane, so partners share a parity).

Everything is batched over models (one solve per refinement step for a whole phase diagram).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, OccupationError, SymmetryError
from td_physics.invariants._core import InvariantResult
from td_physics.invariants.parity import batched_parity_deltas
from td_physics.invariants.wilson import PumpPlane, z2_planes
from td_physics.inversion import InversionSymmetry
from td_physics.magnetic import is_s_symmetric
from td_physics.model import TightBindingModel, stacked_hamiltonian
from td_physics.options import Z2Options, resolve

__all__ = ["antiferromagnetic_z2", "antiferromagnetic_z2_batch", "s_plane_trims"]

logger = logging.getLogger(__name__)


def s_plane_trims(axis: int) -> np.ndarray:
    """The four inversion-invariant momenta (4, 3) of the plane ``k_axis = 0`` (reduced).

    >>> s_plane_trims(2).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.5, 0.0, 0.0], [0.5, 0.5, 0.0]]
    """
    others = [a for a in range(3) if a != axis]
    out = np.zeros((4, 3))
    out[:, others[0]] = [0.0, 0.0, 0.5, 0.5]
    out[:, others[1]] = [0.0, 0.5, 0.0, 0.5]
    return out


def _setup(models: Sequence[TightBindingModel], occupied: int | None, axis: int, method: str) -> int:
    first = models[0]
    if first.dim_k != 3:
        raise ModelDefinitionError(f"the antiferromagnetic Z2 is for 3D models, got dim_k={first.dim_k}")
    if axis not in (0, 1, 2):
        raise ModelDefinitionError(f"axis must be 0, 1 or 2 (the doubled magnetic lattice vector), got {axis!r}")
    if method not in ("auto", "wcc", "parity"):
        raise ModelDefinitionError(f"method must be 'auto', 'wcc' or 'parity', got {method!r}")
    nocc = first.check_occupied(occupied)
    if nocc % 2:
        raise OccupationError(f"the antiferromagnetic Z2 needs an even number of occupied bands, got {nocc}")
    return nocc


def _parities(
    models: Sequence[TightBindingModel], nocc: int, axis: int, inversion: InversionSymmetry | None
) -> tuple[np.ndarray, np.ndarray]:
    """Parity Z2 (nm,) (-1 where a model has no inversion) and the smallest gap at the four momenta (nm,)."""
    trims = s_plane_trims(axis)
    ops = [inversion or m.inversion for m in models]
    z2 = np.full(len(models), -1)
    gaps = np.full(len(models), np.inf)
    groups: dict[InversionSymmetry, list[int]] = {}
    for i, op in enumerate(ops):
        if op is not None:
            groups.setdefault(op, []).append(i)
    for op, idx in groups.items():  # one batched solve per distinct operator (usually one for a whole diagram)
        h = stacked_hamiltonian([models[i] for i in idx], trims)  # (n, 4, norb, norb)
        d, gaps[idx] = batched_parity_deltas(h, trims, op, nocc, method="blocks")
        z2[idx] = (np.prod(d, axis=1) < 0).astype(int)
    return z2, gaps


def antiferromagnetic_z2_batch(
    models: Sequence[TightBindingModel],
    occupied: int | None = None,
    *,
    axis: int = 2,
    method: str = "auto",
    inversion: InversionSymmetry | None = None,
    options: Z2Options | None = None,
    **overrides: Any,
) -> dict[str, np.ndarray]:
    """:func:`antiferromagnetic_z2` for many models with the same orbitals, in batched solves.

    Returns arrays (nm,): ``value`` (the WCC answer, or the parity answer with ``method="parity"``),
    ``wcc`` and ``parity`` (-1 where not computed), ``converged``, ``min_gap`` (eV, on the points
    used), ``s_symmetric``, and ``mesh`` (the string length and the number of pumping lines of the
    flow, or ``(4,)`` for the parities alone).
    """
    nocc = _setup(models, occupied, axis, method)
    translation = np.zeros(models[0].dim_r)
    translation[axis] = 0.5
    s_ok = np.array([is_s_symmetric(m, translation) for m in models])
    for m in np.asarray(models, dtype=object)[~s_ok]:
        logger.warning("%s has no S = Theta T_1/2 symmetry along axis %d; its Z2 is not protected", m.name, axis)
    nm = len(models)
    wcc = np.full(nm, -1)
    converged = s_ok.copy()
    min_gap = np.full(nm, np.inf)
    mesh: tuple[int, ...] = (4,)
    if method in ("auto", "wcc"):
        opts = resolve(Z2Options, options, overrides, "convergence")
        plane = PumpPlane(axis, 0.0, (axis + 1) % 3, (axis + 2) % 3)
        res = z2_planes(list(models), [plane], nocc, opts)
        wcc = res["z2"][:, 0].astype(int)
        converged &= res["converged"][:, 0]
        min_gap = res["min_gap"][:, 0]
        mesh = (int(res["n_string"]), int(res["pump"].max()))
    parity = np.full(nm, -1)
    if method in ("auto", "parity"):
        try:
            parity, trim_gap = _parities(models, nocc, axis, inversion)
            min_gap = np.minimum(min_gap, trim_gap)
        except SymmetryError as err:
            if method == "parity":
                raise
            logger.warning("antiferromagnetic Z2: the parity check failed (%s); WCC flow only", err)
    if method == "parity":
        if np.any(parity < 0):
            raise SymmetryError("method='parity' needs inversion symmetry; a model has none declared")
        value = parity
        converged &= min_gap > 1e-8
    else:
        value = wcc
        disagree = (parity >= 0) & (parity != wcc)
        for i in np.flatnonzero(disagree):
            logger.warning("AFTI Z2 disagreement for %s: WCC flow %d, parities %d", models[i].name, wcc[i], parity[i])
        converged &= ~disagree
    return {
        "value": value,
        "wcc": wcc,
        "parity": parity,
        "converged": converged,
        "min_gap": min_gap,
        "s_symmetric": s_ok,
        "mesh": np.array(mesh),
    }


def antiferromagnetic_z2(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    axis: int = 2,
    method: str = "auto",
    inversion: InversionSymmetry | None = None,
    options: Z2Options | None = None,
    **overrides: Any,
) -> InvariantResult:
    """Z2 of a 3D antiferromagnetic insulator with ``S = Theta T_{1/2}``, ``T_{1/2}`` half of lattice vector ``axis``.

    ``method``: ``"wcc"`` (Wannier-centre flow on the plane ``k_axis = 0``), ``"parity"`` (Fang,
    Gilbert and Bernevig's parity product over the plane's four inversion-invariant momenta; needs
    inversion, declared on the model or passed as ``inversion``) or ``"auto"`` (the flow, plus the
    parities where there is inversion; ``converged`` is False when they disagree). ``converged`` is
    also False when the model lacks ``S`` (``details["s_symmetric"]``). Options as
    :func:`td_physics.invariants.z2_invariant` (a :class:`Z2Options` and overrides by field name).

    Examples
    --------
    >>> from td_physics.models import afm_fu_kane_mele
    >>> antiferromagnetic_z2(afm_fu_kane_mele(m=0.5, dt=0.4)).value
    1
    >>> antiferromagnetic_z2(afm_fu_kane_mele(m=0.5, dt=-0.4)).value
    0
    """
    res = antiferromagnetic_z2_batch(
        [model], occupied, axis=axis, method=method, inversion=inversion, options=options, **overrides
    )
    details: dict[str, Any] = {"s_symmetric": bool(res["s_symmetric"][0]), "axis": axis}
    if res["wcc"][0] >= 0:
        details["wcc_flow"] = int(res["wcc"][0])
    if res["parity"][0] >= 0:
        details["parity"] = int(res["parity"][0])
    methods = [name for name, key in (("wcc-flow", "wcc_flow"), ("fgb-parity", "parity")) if key in details]
    return InvariantResult(
        value=int(res["value"][0]),
        converged=bool(res["converged"][0]),
        min_gap=float(res["min_gap"][0]),
        mesh=tuple(int(x) for x in res["mesh"]),
        method="+".join(methods),
        details=details,
    )
