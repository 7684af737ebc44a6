"""Z2 invariants of time-reversal-invariant insulators: the 2D Z2 and the 3D indices.

The dispatch between the two methods and their cross-check: the Wannier-centre flow of
:mod:`td_physics.invariants.wilson` always, and the Fu-Kane parities of
:mod:`td_physics.invariants.parity` where the model has inversion (``method="auto"``: a
disagreement marks the result unconverged).

3D indices ``(nu0; nu1 nu2 nu3)`` (Fu, Kane, Mele, PRL 98, 106803 (2007)): ``nu_i`` is the 2D Z2
of the plane ``k_i = 1/2`` in the model's own reciprocal basis; ``nu0`` is the sum of the
``k_i = 0`` and ``k_i = 1/2`` planes, the same for every i (a consistency check).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, OccupationError, SymmetryError
from td_physics.invariants._core import InvariantResult, resolve_occupied
from td_physics.invariants.parity import detect_inversion, parity_z2
from td_physics.invariants.wilson import flow_planes, indices_from_planes, z2_planes
from td_physics.inversion import InversionSymmetry
from td_physics.model import TightBindingModel
from td_physics.options import Z2Options, resolve

__all__ = ["z2_invariant", "z2_indices"]

logger = logging.getLogger(__name__)


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
    res = z2_planes([model], flow_planes(2), nocc, opts)
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
    planes = flow_planes(3)
    res = z2_planes([model], planes, nocc, opts)
    indices, nu0_by_axis = indices_from_planes(res["z2"][0])
    value = tuple(int(v) for v in indices)
    converged = bool(res["converged"][0].all()) and bool(np.all(nu0_by_axis == nu0_by_axis[0]))
    details: dict = {
        "planes": {f"k{p.fixed_axis + 1}={p.fixed_value}": int(z) for p, z in zip(planes, res["z2"][0])},
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
