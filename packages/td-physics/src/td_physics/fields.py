"""Uniform external fields applied to a tight-binding model; each returns a new model.

* :func:`electric_field` adds the electrostatic potential energy of an electron,
  ``U_i = -q E . r_i = +|e| E . r_i`` with ``q = -|e|``: for ``E`` in V/Angstrom and positions in
  Angstrom, ``U_i`` in eV is numerically ``E . (r_i - r_ref)``. Orbitals further along ``E`` are
  pushed *up* in energy.
* :func:`exchange_field` adds a Zeeman-like exchange ``m . sigma`` (eV) on every site of a spinful
  model (``sigma`` the Pauli matrices of the model's spin, quantisation axis Cartesian z).

Neither function mutates its input. A declared inversion operator is re-checked on the copy and
dropped when the field breaks it (an exchange field keeps inversion, which does not act on spin;
a field along an axis on which inversion-partner orbitals differ breaks it). Time reversal is not
stored on a model; :meth:`TightBindingModel.is_time_reversal_symmetric` reports it on demand and
an exchange field breaks it. Each call appends a record to ``metadata["applied_fields"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, SymmetryError
from td_physics.model import TightBindingModel

__all__ = ["electric_field", "exchange_field", "exchange_onsite"]

logger = logging.getLogger(__name__)

_PAULI = np.array(
    [[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
    dtype=complex,
)  # (3, 2, 2)


def _vector(value: Any, dim: int, what: str, unit: str) -> np.ndarray:
    """A scalar (along the last Cartesian axis) or a length-``dim`` vector, checked finite."""
    try:
        if np.iscomplexobj(value):
            raise TypeError("complex")
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelDefinitionError(f"{what} must be a real number or vector ({unit}), got {value!r}") from exc
    if arr.ndim == 0:
        vec = np.zeros(dim)
        vec[-1] = float(arr)
    elif arr.shape == (dim,):
        vec = arr.copy()
    else:
        raise ModelDefinitionError(
            f"{what} must be a scalar (along the last Cartesian axis) or a vector of length {dim} ({unit}), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(vec)):
        raise ModelDefinitionError(f"{what} must be finite ({unit}), got {value!r}")
    return vec


def _recheck_inversion(new: TightBindingModel, old: TightBindingModel, what: str) -> None:
    """Keep ``old``'s inversion on ``new`` if it still holds, else drop it (logged)."""
    if old.inversion is None:
        new.inversion = None
        return
    try:
        new.set_inversion(old.inversion, check=True)
    except SymmetryError:
        new.inversion = None
        logger.info("%s breaks the inversion symmetry of model %r; dropped it", what, old.name)


def electric_field(
    model: TightBindingModel, field: float | Sequence[float], reference: Sequence[float] | None = None
) -> TightBindingModel:
    """A copy of ``model`` in a uniform electric field ``field`` (V/Angstrom).

    ``field`` is a Cartesian vector of length ``dim_r`` or a scalar meaning along the last
    Cartesian axis (z for a sheet embedded in 3D). Orbital ``i`` at Cartesian ``r_i`` (Angstrom)
    gets ``U_i = +|e| E . (r_i - reference)`` (eV), the potential energy ``-q E . r`` of an
    electron (``q = -|e|``); ``reference`` defaults to the centroid of the orbitals, so the mean
    energy is unchanged. A uniform field has no periodic potential along a periodic direction, so
    the field must be perpendicular to the periodic lattice vectors.

    Examples
    --------
    >>> from td_physics.models import silicene
    >>> sheet = electric_field(silicene(), 0.01)
    >>> sheet.inversion is None, silicene().inversion is not None
    (True, True)
    """
    vec = _vector(field, model.dim_r, "electric field", "V/Angstrom")
    periodic = model.lattice[: model.dim_k]  # (dim_k, dim_r)
    along = periodic @ vec / np.linalg.norm(periodic, axis=1)
    if np.any(np.abs(along) > 1e-12 * max(1.0, float(np.linalg.norm(vec)))):
        raise ModelDefinitionError(
            "a uniform electric field must be perpendicular to the periodic lattice vectors (its potential is not "
            f"periodic otherwise); got components {along.tolist()} V/Angstrom along them"
        )
    positions = model.cartesian_positions  # (norb, dim_r) Angstrom
    if reference is None:
        ref = positions.mean(axis=0)
    else:
        ref = np.asarray(reference, dtype=float)
        if ref.shape != (model.dim_r,) or not np.all(np.isfinite(ref)):
            raise ModelDefinitionError(
                f"reference must be a finite Cartesian point of length {model.dim_r} (Angstrom), got {reference!r}"
            )
    energies = (positions - ref) @ vec  # (norb,) eV
    new = model.copy()
    new.set_onsite(energies, mode="add")
    _recheck_inversion(new, model, "the electric field")
    new.metadata["applied_fields"] = [
        *new.metadata.get("applied_fields", []),
        {"kind": "electric", "field_V_per_A": vec.tolist(), "reference_A": ref.tolist()},
    ]
    return new


def exchange_onsite(moments: np.ndarray, J: float = 1.0) -> np.ndarray:
    """The block-diagonal (2 nsite, 2 nsite) matrix ``J m_i . sigma`` of (nsite,) (along z) or (nsite, 3) moments.

    No validation: :func:`exchange_field`, :func:`td_physics.magnetic.add_exchange` and the structure builder check
    their moments first.

    >>> exchange_onsite(np.array([[0.0, 0.0, 0.5], [0.5, 0.0, 0.0]])).real.tolist()
    [[0.5, 0.0, 0.0, 0.0], [0.0, -0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.5, 0.0]]
    """
    moms = np.asarray(moments, dtype=float)
    if moms.ndim == 1:
        moms = np.stack([np.zeros_like(moms), np.zeros_like(moms), moms], axis=1)  # collinear: along z
    nsite = len(moms)
    blocks = J * np.einsum("sa,aij->sij", moms, _PAULI)  # (nsite, 2, 2)
    return np.einsum("st,sij->sitj", np.eye(nsite), blocks).reshape(2 * nsite, 2 * nsite)


def exchange_field(model: TightBindingModel, m: float | Sequence[float]) -> TightBindingModel:
    """A copy of a spinful ``model`` with ``m . sigma`` (eV) added on every site.

    ``m`` is a scalar (along z, adding ``m sigma_z``) or a Cartesian 3-vector. Breaks time
    reversal for ``m != 0``; keeps a declared inversion (re-checked).

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.models import kane_mele
    >>> exchange_field(kane_mele(), 0.1).is_time_reversal_symmetric()
    False
    """
    if not model.spinful:
        raise ModelDefinitionError(f"exchange_field needs a spinful model, got the spinless model {model.name!r}")
    vec = _vector(m, 3, "exchange field", "eV")
    new = model.copy()
    new.set_onsite(exchange_onsite(np.tile(vec, (model.norb // 2, 1))), mode="add")  # the same m on every site
    _recheck_inversion(new, model, "the exchange field")
    new.metadata["applied_fields"] = [
        *new.metadata.get("applied_fields", []),
        {"kind": "exchange", "m_eV": vec.tolist()},
    ]
    return new
