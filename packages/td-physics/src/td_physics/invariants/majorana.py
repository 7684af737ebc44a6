"""Invariants of 1D superconductors: the Majorana number (Pfaffian) and the chiral winding number.

Both act on BdG models in the Nambu layout of :mod:`td_physics.bdg` (which defines the basis and the
factor 1/2).

* Majorana number (A. Yu. Kitaev, Phys.-Usp. 44, 131 (2001), "Unpaired Majorana fermions in quantum
  wires"): at the particle-hole invariant momenta k = 0 and pi the BdG matrix becomes, in the Majorana
  basis ``c_i = (gamma_{1,i} + i gamma_{2,i}) / 2``, the real antisymmetric ``A = -i W^dagger H W``
  with ``W = (1/sqrt 2) [[1, i], [1, -i]] (x) 1_n`` (so ``H = (i/4) sum A_lm gamma_l gamma_m``), and
  ``M = sign Pf A(0) * sign Pf A(pi)``: ``-1`` in the topological phase (an unpaired Majorana mode at
  each end of an open wire), ``+1`` in the trivial one.
* Winding number of a chiral-symmetric (class BDI) model: with a unitary ``S`` anticommuting with
  ``H(k)`` (for a real BdG model ``S = tau_x``), ``V^dagger H V = [[0, q], [q^dagger, 0]]`` in the
  eigenbasis ``V`` of ``S`` (eigenvalue +1 first) and
  ``nu = (1 / 2 pi i) oint dk d ln det q(k)``, counted with ``k`` increasing over the zone;
  ``M = (-1)^nu``.
* :func:`pfaffian`: the Pfaffian of a batch of antisymmetric matrices by the Parlett-Reid
  elimination with pivoting of M. Wimmer, ACM Trans. Math. Softw. 38, 30 (2012).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.bdg import check_particle_hole
from td_physics.exceptions import ModelDefinitionError, SymmetryError
from td_physics.invariants._core import InvariantResult, direct_gap, eigenstates
from td_physics.model import TightBindingModel, stacked_hamiltonian
from td_physics.options import ChernOptions, resolve

__all__ = ["pfaffian", "majorana_matrix", "majorana_number", "majorana_batch", "winding_number"]

logger = logging.getLogger(__name__)

_SKEW_TOL = 1e-8


def pfaffian(a: Any) -> np.ndarray:
    """Pfaffian of antisymmetric matrices (..., 2m, 2m), real or complex; ``Pf(A)^2 = det(A)``.

    Parlett-Reid elimination with pivoting (Wimmer 2012): m steps, each vectorised over the batch.
    An odd dimension gives 0. Raises :class:`ModelDefinitionError` unless ``A^T = -A``.

    Examples
    --------
    >>> pfaffian([[0.0, 2.0], [-2.0, 0.0]]).item()
    2.0
    >>> a = [[0, 1, 2, 3], [-1, 0, 4, 5], [-2, -4, 0, 6], [-3, -5, -6, 0]]
    >>> pfaffian(a).item()  # a12 a34 - a13 a24 + a14 a23
    8.0
    """
    arr = np.array(a, dtype=np.result_type(np.asarray(a).dtype, float))
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise ModelDefinitionError(f"pfaffian needs square matrices (..., n, n), got shape {arr.shape}")
    scale = max(float(np.max(np.abs(arr), initial=0.0)), 1.0)
    skew = float(np.max(np.abs(arr + np.swapaxes(arr, -1, -2)), initial=0.0))
    if skew > _SKEW_TOL * scale:
        raise ModelDefinitionError(f"pfaffian needs antisymmetric matrices (A^T = -A), got max |A + A^T| = {skew:.3e}")
    batch, n = arr.shape[:-2], arr.shape[-1]
    a = arr.reshape(-1, n, n).copy()  # (nb, n, n), eliminated in place
    nb = a.shape[0]
    pf = np.ones(nb, dtype=a.dtype)
    if n % 2:
        return np.zeros(batch, dtype=a.dtype)
    rows = np.arange(nb)
    for k in range(0, n - 1, 2):  # loop over the matrix dimension, vectorised over the batch
        # pivot: the largest entry of column k below the diagonal goes to row (and column) k + 1
        p = k + 1 + np.argmax(np.abs(a[:, k + 1 :, k]), axis=1)  # (nb,)
        swap = p != k + 1
        perm = np.tile(np.arange(n), (nb, 1))
        perm[rows, k + 1] = p
        perm[rows, p] = k + 1
        a = np.take_along_axis(np.take_along_axis(a, perm[:, :, None], 1), perm[:, None, :], 2)
        pf = np.where(swap, -pf, pf)
        piv = a[:, k, k + 1]  # (nb,)
        pf = pf * piv
        if k + 2 < n:
            safe = np.where(piv != 0, piv, 1.0)
            tau = a[:, k, k + 2 :] / safe[:, None]  # (nb, n - k - 2)
            col = a[:, k + 2 :, k + 1]
            a[:, k + 2 :, k + 2 :] += tau[:, :, None] * col[:, None, :] - col[:, :, None] * tau[:, None, :]
    return pf.reshape(batch)


def _nambu_to_majorana(n: int) -> np.ndarray:
    """``W = (1/sqrt 2) [[1, i], [1, -i]] (x) 1_n`` (2n, 2n): Nambu components from Majorana operators."""
    return np.kron(np.array([[1.0, 1j], [1.0, -1j]]) / np.sqrt(2.0), np.eye(n))


def majorana_matrix(h: Any) -> np.ndarray:
    """The real antisymmetric ``A = -i W^dagger H W`` of BdG matrices (..., 2n, 2n) at k = 0 or pi.

    Needs ``tau_x H^* tau_x = -H`` (particle-hole symmetry at a particle-hole invariant momentum);
    raises :class:`SymmetryError` when ``A`` is not real.
    """
    h = np.asarray(h, dtype=complex)
    w = _nambu_to_majorana(h.shape[-1] // 2)
    a = -1j * (w.conj().T @ h @ w)
    imag = float(np.max(np.abs(a.imag), initial=0.0))
    if imag > 1e-8 * max(1.0, float(np.max(np.abs(a.real), initial=0.0))):
        raise SymmetryError(
            "the Majorana-basis Hamiltonian must be real (particle-hole symmetry at k = 0, pi), "
            f"got max |Im A| = {imag:.3e}"
        )
    return 0.5 * (a.real - np.swapaxes(a.real, -1, -2))  # antisymmetric to rounding; made exact


def _check_1d(models: Sequence[TightBindingModel], what: str) -> None:
    for m in models:
        if m.dim_k != 1:
            raise ModelDefinitionError(f"{what} is defined for 1D models, got dim_k={m.dim_k}")
        check_particle_hole(m)


def majorana_batch(models: Sequence[TightBindingModel], options: ChernOptions | None = None) -> dict[str, np.ndarray]:
    """Majorana numbers of many 1D BdG models with the same orbitals, in one batched solve.

    Returns arrays (nm,): ``value`` (+1 or -1), ``pfaffian_0`` and ``pfaffian_pi`` (Pf A at k = 0 and
    pi), ``min_gap`` (the BdG gap ``E_n - E_{n-1}`` on ``options.mesh`` points and at k = 0, pi) and
    ``converged`` (gap above ``options.gap_tol``). ``options`` default to ``ChernOptions()``.
    """
    opts = options or ChernOptions()
    _check_1d(models, "the Majorana number")
    h = stacked_hamiltonian(models, np.array([[0.0], [0.5]]))  # (nm, 2, 2n, 2n)
    pf = pfaffian(majorana_matrix(h))  # (nm, 2)
    nocc = models[0].norb // 2
    mesh = np.concatenate([np.arange(opts.mesh) / opts.mesh, [0.5]])[:, None]
    energies, _ = eigenstates(models, mesh, nocc, keep="none")
    gap = direct_gap(energies, nocc).min(axis=1)
    value = np.where(np.sign(pf[:, 0]) * np.sign(pf[:, 1]) < 0, -1, 1)
    return {
        "value": value,
        "pfaffian_0": pf[:, 0],
        "pfaffian_pi": pf[:, 1],
        "min_gap": gap,
        "converged": (gap > opts.gap_threshold) & (pf[:, 0] != 0) & (pf[:, 1] != 0),
    }


def majorana_number(
    model: TightBindingModel, *, options: ChernOptions | None = None, **overrides: Any
) -> InvariantResult:
    """Kitaev's Majorana number of a 1D BdG model: ``-1`` topological, ``+1`` trivial (module docstring).

    ``options`` (a :class:`~td_physics.ChernOptions`; only ``mesh`` and ``gap_tol`` are read) with
    ``overrides`` by field name: the gap is checked on ``mesh`` points, and ``converged`` means it is above
    ``gap_tol`` (the Pfaffians at k = 0, pi are exact; a closed gap elsewhere makes them meaningless).
    ``details`` hold the two Pfaffians.

    Examples
    --------
    >>> from td_physics.models import kitaev_chain
    >>> majorana_number(kitaev_chain(t=1.0, mu=0.5, delta=0.4)).value
    -1
    >>> majorana_number(kitaev_chain(t=1.0, mu=2.5, delta=0.4)).value
    1
    """
    opts = resolve(ChernOptions, options, overrides, "convergence")
    res = majorana_batch([model], opts)
    return InvariantResult(
        value=int(res["value"][0]),
        converged=bool(res["converged"][0]),
        min_gap=float(res["min_gap"][0]),
        mesh=(opts.mesh,),
        method="kitaev-pfaffian",
        details={"pfaffian_0": float(res["pfaffian_0"][0]), "pfaffian_pi": float(res["pfaffian_pi"][0])},
    )


def winding_number(
    model: TightBindingModel,
    chiral: Any = None,
    *,
    options: ChernOptions | None = None,
    **overrides: Any,
) -> InvariantResult:
    """Winding number of ``det q(k)`` of a chiral-symmetric 1D model (module docstring).

    ``chiral`` is the unitary chiral operator (norb, norb); default ``tau_x``, the chiral symmetry
    ``S = C T`` of a BdG model with a real normal state and real pairing (``T = K``). Raises
    :class:`SymmetryError` when ``S H(k) S^dagger != -H(k)``. Convergence as in
    :func:`~td_physics.invariants.chern_number`: the loop starts at ``mesh`` points and doubles up to
    ``max_mesh`` until no step changes the phase of ``det q`` by more than ``max_flux`` radians, with
    the gap (twice the smallest singular value of ``q``) above ``gap_tol``.

    Examples
    --------
    >>> from td_physics.models import kitaev_chain
    >>> winding_number(kitaev_chain(t=1.0, mu=0.5, delta=0.4)).value
    -1
    """
    opts = resolve(ChernOptions, options, overrides, "convergence")
    if model.dim_k != 1:
        raise ModelDefinitionError(f"the winding number is defined for 1D models, got dim_k={model.dim_k}")
    n = model.norb
    s = (
        np.kron(np.array([[0.0, 1.0], [1.0, 0.0]]), np.eye(n // 2)).astype(complex)
        if chiral is None
        else np.asarray(chiral, dtype=complex)
    )
    if s.shape != (n, n) or not np.allclose(s @ s.conj().T, np.eye(n), atol=1e-10):
        raise ModelDefinitionError(f"the chiral operator must be a unitary ({n}, {n}) matrix, got shape {s.shape}")
    eig, v = np.linalg.eigh(0.5 * (s + s.conj().T))
    n_minus = int(np.sum(eig < 0))
    if n_minus != n - n_minus:
        raise SymmetryError(
            f"the chiral operator must have as many +1 as -1 eigenvalues, got {n - n_minus} and {n_minus}"
        )
    v = v[:, ::-1]  # eigenvalue +1 first
    samples = np.random.default_rng(5).random((4, 1))
    h = model.hamiltonian(samples)
    err = float(np.max(np.abs(s @ h @ s.conj().T + h)))
    if err > 1e-8:
        raise SymmetryError(
            f"the chiral operator must anticommute with H(k) (S H S^dagger = -H), got max error {err:.3e}"
        )
    half = n // 2
    mesh = opts.mesh
    while True:
        k = (np.arange(mesh) / mesh)[:, None]
        q = (v.conj().T @ model.hamiltonian(k) @ v)[:, :half, half:]  # (mesh, half, half)
        det = np.linalg.det(q)
        steps = np.angle(np.roll(det, -1) / np.where(det != 0, det, 1.0))  # (mesh,) phase change per step
        gap = 2.0 * float(np.linalg.svd(q, compute_uv=False).min())
        max_step = float(np.max(np.abs(steps)))
        gap_open = gap > opts.gap_threshold
        if (gap_open and max_step <= opts.max_flux) or not gap_open or mesh * 2 > opts.max_mesh:
            break
        mesh *= 2
    raw = float(steps.sum() / (2 * np.pi))
    return InvariantResult(
        value=int(np.rint(raw)),
        converged=bool(gap_open and max_step <= opts.max_flux),
        min_gap=gap,
        mesh=(mesh,),
        method="chiral-winding",
        details={"raw": raw, "max_phase_step": max_step},
    )
