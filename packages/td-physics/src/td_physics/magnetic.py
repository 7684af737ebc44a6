"""Magnetic order on tight-binding models: exchange from site moments, supercells, and ``S = Theta T``.

* :func:`add_exchange` returns a copy of a spinful model with the on-site exchange

  ``H_ex = J sum_i m_i . sigma_i``

  on the spin doublet of every site ``i`` (``sigma`` the Pauli matrices of the model's spin,
  quantisation axis Cartesian z; a *site* is one entry of ``model.site_positions``, i.e. one spin
  doublet). Moments may be collinear (one number per site, along z) or non-collinear (one Cartesian
  3-vector per site). Sign: for ``J > 0`` the spin state antiparallel to ``m_i`` is lowered by
  ``J |m_i|``. With one moment ``m`` on every site and ``J = 1`` this is
  :func:`td_physics.fields.exchange_field` with ``m``; the structure builder's
  ``-(J_b m_i / 2) sigma_z`` is ``add_exchange(model, m, J=-J_b / 2)``.
* :func:`model_supercell` repeats a model ``multiples[i]`` times along each periodic lattice vector
  (:func:`td_physics.finite.tile`), so that an antiferromagnetic order that breaks a primitive
  translation fits in one cell, and carries the model's inversion operator over.
* :func:`magnetic_translation` and :func:`is_s_symmetric`: a translation ``T_tau`` as an orbital
  permutation, and the combined antiunitary symmetry ``S = Theta T_tau`` of an antiferromagnet
  (Mong, Essin and Moore, Phys. Rev. B 81, 245209 (2010)): ``Theta = i s_y K`` and ``T_tau`` each
  broken by the order, their product kept. In the Bloch basis of the periodic gauge
  ``T(k)_{p(j), j} = exp(-2 pi i k . R_j)``, where ``tau_j + tau = tau_{p(j)} + R_j``, and ``S`` is a
  symmetry when ``T(-k) U H(k)* U^dagger T(-k)^dagger = H(-k)`` with ``U`` the unitary part of
  ``Theta``. When ``2 tau`` is a lattice vector, ``S^2 = -exp(-2 pi i k . 2 tau)``: on the planes
  ``k . 2 tau = 0 (mod 1)`` the bands come in Kramers pairs, which is what the antiferromagnetic Z2 of
  :func:`td_physics.invariants.antiferromagnetic_z2` needs.

Nothing here mutates its input; each function that builds a model returns a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import ModelDefinitionError, SymmetryError
from td_physics.fields import _recheck_inversion, exchange_onsite  # exchange_onsite: public here too
from td_physics.finite import tile
from td_physics.model import TightBindingModel

__all__ = [
    "site_moments",
    "add_exchange",
    "exchange_onsite",
    "model_supercell",
    "magnetic_translation",
    "translation_matrices",
    "is_s_symmetric",
]

logger = logging.getLogger(__name__)


def _real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float array, refusing complex and non-numeric input (the message names ``what``)."""
    try:
        if np.iscomplexobj(value):
            raise TypeError("complex")
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelDefinitionError(f"{what} must be real numbers, got {value!r}") from exc


def site_moments(model: TightBindingModel, moments: Any) -> np.ndarray:
    """The moments of a spinful ``model`` as a validated (nsite, 3) Cartesian array.

    ``moments`` is (nsite,) (collinear, along z) or (nsite, 3) (one Cartesian vector per site),
    finite and real, one entry per spin doublet of the model (``model.site_positions``).

    >>> from td_physics.models import kane_mele
    >>> site_moments(kane_mele(), [0.1, -0.1]).tolist()
    [[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]]
    """
    if not model.spinful:
        raise ModelDefinitionError(f"magnetic moments need a spinful model, got the spinless model {model.name!r}")
    nsite = len(model.site_positions)
    arr = _real_array(moments, "magnetic moments")
    if arr.shape == (nsite,):
        out = np.zeros((nsite, 3))
        out[:, 2] = arr
    elif arr.shape == (nsite, 3):
        out = arr.copy()
    else:
        raise ModelDefinitionError(
            f"magnetic moments must have shape ({nsite},) (collinear, along z) or ({nsite}, 3) (a Cartesian vector "
            f"per site) for a model with {nsite} sites, got shape {arr.shape}"
        )
    bad = np.flatnonzero(~np.all(np.isfinite(out), axis=1))
    if len(bad):
        raise ModelDefinitionError(f"magnetic moments must be finite, got {out[bad[0]].tolist()} on site {bad[0]}")
    return out


def add_exchange(model: TightBindingModel, moments: Any, J: float = 1.0) -> TightBindingModel:
    """A copy of a spinful ``model`` with ``J m_i . sigma`` (eV) added on the doublet of every site ``i``.

    ``moments``: see :func:`site_moments`; ``J`` (eV per unit of moment, default 1 so that moments
    given in eV are exchange fields) must be a finite real number. Breaks time reversal unless every
    moment is zero; keeps a declared inversion when the moments respect it (re-checked: inversion does
    not act on spin, so partner sites need equal moments). Appends
    ``{"kind": "site_exchange", "moments": ..., "J_eV": J}`` to ``metadata["applied_fields"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.models import kane_mele
    >>> neel = add_exchange(kane_mele(), [[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]])
    >>> neel.is_time_reversal_symmetric(), neel.inversion is None
    (False, True)
    >>> np.round(neel.onsite[:2, :2].real, 3)
    array([[ 0.1,  0. ],
           [ 0. , -0.1]])
    """
    moms = site_moments(model, moments)
    coupling = _real_array(J, "the exchange constant J")
    if coupling.ndim or not np.isfinite(coupling):
        raise ModelDefinitionError(f"the exchange constant J must be one finite real number (eV), got {J!r}")
    new = model.copy()
    new.set_onsite(exchange_onsite(moms, float(coupling)), mode="add")
    _recheck_inversion(new, model, "the exchange")
    new.metadata["applied_fields"] = [
        *new.metadata.get("applied_fields", []),
        {"kind": "site_exchange", "moments": moms.tolist(), "J_eV": float(coupling)},
    ]
    return new


def model_supercell(model: TightBindingModel, multiples: Sequence[int]) -> TightBindingModel:
    """The ``multiples[0] x multiples[1] (x multiples[2])`` supercell of ``model`` with its inversion kept.

    The cell of :func:`td_physics.finite.tile` with no open direction (cell ``c`` in row-major order holds
    orbitals ``flat(c) * norb ... flat(c) * norb + norb - 1``, site ``s`` of it is site
    ``flat(c) * nsite + s``; the bands are the model's, folded), plus the model's declared inversion
    carried over (same centre, re-checked), which the parity method of an antiferromagnetic supercell
    needs.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.models import qwz
    >>> big = model_supercell(qwz(1.0), (2, 1))
    >>> big.norb, big.n_occupied, big.inversion is not None
    (4, 2, True)
    >>> np.allclose(np.sort(big.eigvalsh([0.0, 0.0])[0]),
    ...             np.sort(qwz(1.0).eigvalsh([[0.0, 0.0], [0.5, 0.0]]).ravel()))
    True
    """
    new = tile(model, multiples)
    if model.inversion is None:
        return new
    reps = np.asarray(new.metadata["repeats"], dtype=int)
    dim_k, norb = model.dim_k, model.norb
    copies = np.array(list(np.ndindex(*reps)), dtype=int)  # (ncopy, dim_k), tile's row-major cell order
    index = {tuple(c): n for n, c in enumerate(copies)}
    inv = model.inversion
    shifts = np.asarray(inv.shifts, dtype=int)[:, :dim_k]  # (norb, dim_k) parent cell of each image
    perm = np.empty(len(copies) * norb, dtype=int)
    for n, c in enumerate(copies):  # orbital j of cell c goes to orbital perm[j] of cell shifts[j] - c
        dest = np.mod(shifts - c[None], reps)  # (norb, dim_k)
        perm[n * norb : (n + 1) * norb] = [index[tuple(d)] * norb + p for d, p in zip(dest, inv.permutation)]
    scale = np.ones(model.dim_r)
    scale[:dim_k] = reps
    try:
        new.set_inversion(perm.tolist(), list(inv.parities) * len(copies), (np.asarray(inv.centre) / scale).tolist())
    except SymmetryError:  # cannot happen for a correct parent operator; logged rather than raised
        logger.warning("the inversion of %r did not survive the supercell; dropped it", model.name)
    return new


def magnetic_translation(model: TightBindingModel, translation: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The translation by ``translation`` (reduced, length ``dim_r``) as an orbital map.

    Returns ``perm`` (norb,) and ``shifts`` (norb, dim_k): orbital ``j`` moves onto orbital ``perm[j]``
    of the cell ``shifts[j]`` (``tau_j + translation = tau_{perm[j]} + shifts[j]``, spin unchanged);
    orbitals that share a position keep their order. Raises :class:`SymmetryError` when the translation
    does not map the orbitals onto each other.

    >>> from td_physics.models import qwz
    >>> perm, shifts = magnetic_translation(model_supercell(qwz(1.0), (2, 1)), [0.5, 0.0])
    >>> perm.tolist(), shifts[:, 0].tolist()
    ([2, 3, 0, 1], [0, 0, 1, 1])
    """
    tau = _real_array(translation, "the translation")
    if tau.shape != (model.dim_r,) or not np.all(np.isfinite(tau)):
        raise ModelDefinitionError(
            f"the translation must be {model.dim_r} finite reduced coordinates, got {translation!r}"
        )
    if np.any(np.abs(tau[model.dim_k :]) > 1e-9):
        raise ModelDefinitionError(
            f"a lattice translation has no component along the non-periodic axes, got {translation!r}"
        )
    pos = model.positions
    spin = np.arange(model.norb) % 2 if model.spinful else np.zeros(model.norb, dtype=int)

    def congruent(d: np.ndarray) -> np.ndarray:  # same spin, positions equal up to a lattice vector
        return np.all(np.abs(d - np.round(d)) < 1e-6, axis=-1) & (spin[:, None] == spin[None, :])

    diff = pos[:, None, :] + tau[None, None, :] - pos[None, :, :]  # (norb, norb, dim_r)
    match = congruent(diff)  # (norb, norb): orbital i lands where orbital j sits
    same = congruent(pos[:, None, :] - pos[None, :, :])  # orbitals sharing a position: kept in index order
    rank = np.tril(same, -1).sum(axis=1)
    bad = np.flatnonzero(match.sum(axis=1) != same.sum(axis=1))
    if len(bad):
        j = int(bad[0])
        raise SymmetryError(
            f"the translation {tau.tolist()} must map the orbitals onto each other; orbital {j} at {pos[j].tolist()} "
            f"shares its position with {int(same[j].sum())} orbitals but lands on {int(match[j].sum())}"
        )
    perm = np.array([np.flatnonzero(match[j])[rank[j]] for j in range(model.norb)])  # loop over orbitals
    if len(set(perm.tolist())) != model.norb:
        raise SymmetryError(f"the translation {tau.tolist()} maps two orbitals onto one, got the map {perm.tolist()}")
    shifts = np.round(diff[np.arange(model.norb), perm, : model.dim_k]).astype(int)
    return perm, shifts


def translation_matrices(perm: np.ndarray, shifts: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``T(k)`` (nk, norb, norb), ``T(k)_{perm[j], j} = exp(-2 pi i k . shifts[j])``, periodic gauge."""
    kk = np.atleast_2d(np.asarray(k, dtype=float))
    norb = len(perm)
    out = np.zeros((len(kk), norb, norb), dtype=complex)
    out[:, perm, np.arange(norb)] = np.exp(-2j * np.pi * kk @ shifts.T)
    return out


def is_s_symmetric(model: TightBindingModel, translation: Sequence[float], tol: float = 1e-8, n_k: int = 4) -> bool:
    """Whether ``S = Theta T_translation`` commutes with the Hamiltonian (at ``n_k`` random k-points).

    ``Theta = i s_y K``; the condition is ``T(-k) U H(k)* U^dagger T(-k)^dagger = H(-k)`` (module
    docstring). A Neel order that doubles the cell along a lattice vector keeps ``S`` with the
    translation by half of it.

    >>> from td_physics.models import afm_fu_kane_mele
    >>> model = afm_fu_kane_mele(m=0.4)
    >>> is_s_symmetric(model, [0.0, 0.0, 0.5]), model.is_time_reversal_symmetric()
    (True, False)
    """
    if not model.spinful:
        raise ModelDefinitionError(f"S = Theta T needs a spinful model, got the spinless model {model.name!r}")
    perm, shifts = magnetic_translation(model, translation)
    ks = np.random.default_rng(13).random((n_k, model.dim_k))
    h = model.hamiltonian(np.concatenate([ks, -ks]))  # (2 n_k, norb, norb)
    op = translation_matrices(perm, shifts, -ks) @ model.time_reversal_matrix()[None]  # (n_k, norb, norb)
    image = op @ np.conj(h[:n_k]) @ np.conj(np.swapaxes(op, -1, -2))
    return bool(np.max(np.abs(image - h[n_k:])) < tol)
