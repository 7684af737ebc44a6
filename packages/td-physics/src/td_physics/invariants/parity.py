"""Inversion and the Fu-Kane parity invariant.

* Fu and Kane, PRB 76, 045302 (2007): with inversion, ``(-1)^nu = prod_i delta_i`` over the
  time-reversal-invariant momenta (TRIMs), ``delta_i`` the product of the parities of one member
  of each occupied Kramers pair.
* 3D: the strong index from all eight deltas, the weak index ``nu_i`` from the four TRIMs with
  ``k_i = 1/2`` (Fu, Kane, Mele, PRL 98, 106803 (2007)).
* :func:`detect_inversion` finds an operator with all orbital parities +1 by trying centres;
  :func:`batched_parity_deltas` computes the deltas of many models at once, from the even and odd
  blocks of ``H`` where the operator allows it.
"""

from __future__ import annotations

import itertools

import numpy as np

from td_physics.exceptions import ModelDefinitionError, OccupationError, SymmetryError
from td_physics.invariants._core import InvariantResult, direct_gap, resolve_occupied
from td_physics.inversion import InversionSymmetry
from td_physics.model import TightBindingModel

__all__ = [
    "detect_inversion",
    "trim_points",
    "parity_deltas",
    "batched_parity_deltas",
    "batched_parity_counts",
    "deltas_from_counts",
    "fu_kane_indices",
    "parity_z2",
    "parity_result",
]


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
    halves = trim_points(dim)  # half lattice vectors
    centres = np.unique(np.round(np.mod(np.concatenate([halves, pairs]), 0.5), 9), axis=0)
    spin = np.arange(model.norb) % 2 if model.spinful else np.zeros(model.norb, dtype=int)
    onsite = np.real(np.diag(model.onsite))
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


def trim_points(dim: int) -> np.ndarray:
    """The 2^dim time-reversal-invariant momenta (reduced, components 0 or 1/2), (2^dim, dim)."""
    return np.array(list(itertools.product((0.0, 0.5), repeat=dim)))


def parity_deltas(
    model: TightBindingModel, inversion: InversionSymmetry, nocc: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fu-Kane delta_i at the TRIMs (2^dim,), the TRIMs themselves and the smallest gap there."""
    if nocc % 2:
        raise OccupationError(f"the parity method needs an even number of occupied bands, got {nocc}")
    trims = trim_points(model.dim_k)
    deltas, gaps = batched_parity_deltas(model.hamiltonian(trims)[None], trims, inversion, nocc)
    return deltas[0], trims, float(gaps[0])


def batched_parity_deltas(
    hamiltonians: np.ndarray, trims: np.ndarray, inversion: InversionSymmetry, nocc: int, *, method: str = "eigh"
) -> tuple[np.ndarray, np.ndarray]:
    """Fu-Kane delta_i (nm, ntrim) and the smallest direct gap at the TRIMs (nm,) of many models at once.

    ``delta_i = (-1)^(n_minus / 2)`` from the odd occupied states ``n_minus`` of
    :func:`batched_parity_counts`, which takes the same arguments.
    """
    n_minus, gaps = batched_parity_counts(hamiltonians, trims, inversion, nocc, method=method)
    return deltas_from_counts(n_minus), gaps


def deltas_from_counts(n_minus: np.ndarray) -> np.ndarray:
    """Fu-Kane ``delta = (-1)^(n_minus / 2)``: the parity product of one member of each occupied Kramers pair,
    from the number of odd occupied states ``n_minus`` (even: Kramers pairs share their parity)."""
    return np.where((n_minus // 2) % 2 == 1, -1, 1)


def batched_parity_counts(
    hamiltonians: np.ndarray, trims: np.ndarray, inversion: InversionSymmetry, nocc: int, *, method: str = "eigh"
) -> tuple[np.ndarray, np.ndarray]:
    """Occupied states of odd parity at each TRIM (nm, ntrim) and the smallest direct gap at the TRIMs (nm,).

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
            minus_redo, gaps_redo = batched_parity_counts(h[redo], trims, inversion, nocc, method="eigh")
        for m in np.flatnonzero(clean):  # in model order, as the eigh check raises for the first bad one
            if np.any(n_minus[m] % 2):
                raise SymmetryError(
                    f"odd number of negative parities at a TRIM ({n_minus[m].tolist()}): "
                    "occupied bands are not Kramers pairs"
                )
        if len(redo):
            n_minus[redo], gaps[redo] = minus_redo, gaps_redo
        return n_minus, gaps
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
    return n_minus, gaps


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
