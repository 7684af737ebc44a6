"""The tight-binding model.

Convention (the data contract of the project)::

    H(k) = H0 + sum_R [ T_R exp(2 pi i k.R) + h.c. ],   (T_R)_ij = <i, cell 0 | H | j, cell R>

with ``k`` in reduced coordinates of the reciprocal lattice (``k.R`` is the plain dot product of
reduced ``k`` with the integer lattice vector ``R``) and orbital positions in reduced coordinates
of the direct lattice. This is the "periodic gauge" (convention I, ``H(k + G) = H(k)``), the
Wannier90 ``_hr.dat`` convention. Convention II multiplies ``H_ij`` by
``exp(2 pi i k.(tau_j - tau_i))``; :meth:`TightBindingModel.hamiltonian` gives either, and every
invariant in :mod:`td_physics.invariants` returns the same value for both.

Spinful models store two orbitals per site, ``2 * site`` (spin up) and ``2 * site + 1`` (spin
down), at the same position; the spin quantisation axis is Cartesian z.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from td_physics.exceptions import KPointError, ModelDefinitionError, OccupationError, SymmetryError
from td_physics.inversion import POSITION_TOLERANCE, InversionSymmetry
from td_physics.model_file import load_model, model_from_dict, model_to_dict, save_model
from td_physics.wannier90 import build_from_wannier90

__all__ = ["TightBindingModel", "as_kpoints", "stacked_arrays", "stacked_hamiltonian"]

logger = logging.getLogger(__name__)

_HERMITIAN_TOL = 1e-10


def as_kpoints(k: Any, dim_k: int) -> np.ndarray:
    """Validate ``k`` and return it as a float array of shape (nk, dim_k)."""
    arr = np.asarray(k, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim_k:
        raise KPointError(
            f"k-points must have shape (nk, {dim_k}) or ({dim_k},) for a model with "
            f"{dim_k} periodic directions, got shape {np.shape(k)}"
        )
    if not np.all(np.isfinite(arr)):
        raise KPointError("k-points must be finite numbers, got NaN or infinity")
    return arr


@dataclass
class _Arrays:
    """Dense arrays derived from the hopping dictionary (rebuilt lazily after each change)."""

    r_vectors: np.ndarray  # (nR, dim_k) int
    t_matrices: np.ndarray  # (nR, norb, norb) complex


class TightBindingModel:
    """A tight-binding model with 1, 2 or 3 periodic directions.

    Parameters
    ----------
    lattice:
        (dim_r, dim_r) array, rows are lattice vectors, in Angstrom (or dimensionless). The first
        ``dim_k`` rows are the periodic directions; the rest only place orbitals in space (for
        example the out-of-plane buckling of a 2D sheet, needed by electric fields).
    positions:
        (nsite, dim_r) reduced coordinates of the sites. A spinless model has one orbital per
        site; a spinful one two (up, down) per site, so ``norb = 2 * nsite``.
    dim_k:
        Number of periodic directions, default ``dim_r``.
    spinful:
        Whether each site carries a spin-1/2 doublet.
    labels:
        Optional names of the sites (for example ``"Bi_pz"``), one per site.
    occupied:
        Default number of occupied bands used by invariants and gaps; ``None`` means half
        filling, ``norb // 2``.
    name:
        Free text shown in tables and plots.

    Examples
    --------
    >>> import numpy as np
    >>> m = TightBindingModel([[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0]])
    >>> m.add_hopping(-1.0, 0, 0, (1, 0))
    >>> m.add_hopping(-1.0, 0, 0, (0, 1))
    >>> np.round(m.eigvalsh([[0.0, 0.0], [0.5, 0.5]])[:, 0], 6)
    array([-4.,  4.])
    """

    def __init__(
        self,
        lattice: Any,
        positions: Any,
        *,
        dim_k: int | None = None,
        spinful: bool = False,
        labels: Sequence[str] | None = None,
        occupied: int | None = None,
        name: str = "",
    ) -> None:
        lat = np.array(lattice, dtype=float)
        if lat.ndim != 2 or lat.shape[0] != lat.shape[1] or lat.shape[0] not in (1, 2, 3):
            raise ModelDefinitionError(
                f"lattice must be a square (dim_r, dim_r) array with dim_r in 1..3, got shape {lat.shape}"
            )
        if abs(np.linalg.det(lat)) < 1e-12:
            raise ModelDefinitionError("lattice vectors must be linearly independent, got a singular lattice")
        dim_r = lat.shape[0]
        dim_k = dim_r if dim_k is None else int(dim_k)
        if not 1 <= dim_k <= dim_r:
            raise ModelDefinitionError(f"dim_k must be between 1 and dim_r={dim_r}, got {dim_k}")
        sites = np.array(positions, dtype=float)
        if sites.ndim == 1 and dim_r == 1:
            sites = sites[:, None]
        if sites.ndim != 2 or sites.shape[1] != dim_r or sites.shape[0] == 0:
            raise ModelDefinitionError(
                f"positions must have shape (nsite, {dim_r}) in reduced coordinates, got shape {sites.shape}"
            )
        if labels is not None and len(labels) != len(sites):
            raise ModelDefinitionError(f"labels must name each of the {len(sites)} sites, got {len(labels)} labels")
        self.lattice = lat
        self.dim_r = dim_r
        self.dim_k = dim_k
        self.spinful = bool(spinful)
        self.site_positions = sites
        self.site_labels = list(labels) if labels is not None else [f"s{i}" for i in range(len(sites))]
        self.positions = np.repeat(sites, 2, axis=0) if self.spinful else sites.copy()  # (norb, dim_r)
        self.norb = len(self.positions)
        self.name = name
        self._onsite = np.zeros((self.norb, self.norb), dtype=complex)
        self._hoppings: dict[tuple[int, ...], np.ndarray] = {}
        self._arrays: _Arrays | None = None
        self.occupied = occupied
        self.inversion: InversionSymmetry | None = None
        self.metadata: dict[str, Any] = {}
        if occupied is not None:
            self.occupied = self.check_occupied(occupied)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_hopping_matrices(
        cls,
        lattice: Any,
        positions: Any,
        onsite: Any,
        hoppings: Mapping[tuple[int, ...], Any],
        *,
        dim_k: int | None = None,
        spinful: bool = False,
        labels: Sequence[str] | None = None,
        occupied: int | None = None,
        name: str = "",
    ) -> TightBindingModel:
        """Build a model from ``H0`` and the ``T_R`` matrices.

        ``H(k) = onsite + sum_R [T_R exp(2 pi i k.R) + h.c.]``; ``onsite`` is a hermitian
        (norb, norb) array and ``hoppings`` maps integer tuples ``R`` (length ``dim_k``) to
        (norb, norb) arrays. ``R = 0`` may appear; its matrix and its conjugate are both added.
        """
        model = cls(lattice, positions, dim_k=dim_k, spinful=spinful, labels=labels, occupied=occupied, name=name)
        model.set_onsite(onsite)
        for r_vec, matrix in hoppings.items():
            r = model._check_r(r_vec)
            t = np.array(matrix, dtype=complex)
            if t.shape != (model.norb, model.norb):
                raise ModelDefinitionError(
                    f"hopping matrix for R={r} must have shape ({model.norb}, {model.norb}), got {t.shape}"
                )
            if not np.all(np.isfinite(t)):
                raise ModelDefinitionError(f"hopping matrix for R={r} contains NaN or infinity")
            key = tuple(int(x) for x in r)
            model._hoppings[key] = model._hoppings.get(key, 0) + t
        model._arrays = None
        return model

    def copy(self) -> TightBindingModel:
        """A deep copy; changing it leaves this model untouched."""
        return copy.deepcopy(self)

    def orbital_index(self, site: int, spin: int = 0) -> int:
        """Index of the orbital of ``site`` with ``spin`` 0 (up) or 1 (down)."""
        nsite = len(self.site_positions)
        if not 0 <= site < nsite:
            raise ModelDefinitionError(f"site index must be in 0..{nsite - 1}, got {site}")
        if not self.spinful:
            if spin != 0:
                raise ModelDefinitionError(f"a spinless model has only spin 0, got spin={spin}")
            return site
        if spin not in (0, 1):
            raise ModelDefinitionError(f"spin must be 0 (up) or 1 (down), got {spin}")
        return 2 * site + spin

    def _check_orbital(self, i: int, name: str) -> int:
        if not isinstance(i, (int, np.integer)) or not 0 <= int(i) < self.norb:
            raise ModelDefinitionError(f"orbital index {name} must be an integer in 0..{self.norb - 1}, got {i!r}")
        return int(i)

    def _check_r(self, r_vec: Any) -> tuple[int, ...]:
        r = np.atleast_1d(np.asarray(r_vec))
        if r.ndim != 1 or len(r) != self.dim_k:
            raise ModelDefinitionError(
                f"lattice vector R must have {self.dim_k} integer components "
                f"(one per periodic direction), got {r_vec!r}"
            )
        if not np.all(np.equal(np.round(r.astype(float)), r.astype(float))):
            raise ModelDefinitionError(f"lattice vector R must be integer, got {r_vec!r}")
        return tuple(int(x) for x in np.round(r.astype(float)))

    def set_onsite(self, values: Any, orbital: int | None = None, *, mode: str = "set") -> None:
        """Set on-site terms.

        ``values`` is either a full hermitian (norb, norb) matrix, a length-``norb`` vector of
        energies (eV), or, with ``orbital`` given, one real energy. ``mode="add"`` adds instead of
        replacing.
        """
        if mode not in ("set", "add"):
            raise ModelDefinitionError(f"mode must be 'set' or 'add', got {mode!r}")
        if orbital is not None:
            i = self._check_orbital(orbital, "orbital")
            value = complex(values)
            if abs(value.imag) > _HERMITIAN_TOL:
                raise ModelDefinitionError(
                    f"an on-site energy must be real (hermiticity), got {values!r} for orbital {i}"
                )
            self._onsite[i, i] = value.real + (self._onsite[i, i] if mode == "add" else 0.0)
            self._arrays = None
            return
        arr = np.array(values, dtype=complex)
        if arr.ndim == 1:
            if arr.shape != (self.norb,):
                raise ModelDefinitionError(f"on-site energies must have length norb={self.norb}, got {arr.shape[0]}")
            if np.max(np.abs(arr.imag), initial=0.0) > _HERMITIAN_TOL:
                raise ModelDefinitionError("on-site energies must be real (hermiticity), got complex values")
            arr = np.diag(arr.real).astype(complex)
        if arr.shape != (self.norb, self.norb):
            raise ModelDefinitionError(f"on-site matrix must have shape ({self.norb}, {self.norb}), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ModelDefinitionError("on-site matrix contains NaN or infinity")
        deviation = float(np.max(np.abs(arr - arr.conj().T)))
        if deviation > _HERMITIAN_TOL:
            raise ModelDefinitionError(f"on-site matrix must be hermitian, got max |H0 - H0^dagger| = {deviation:.3e}")
        self._onsite = arr + (self._onsite if mode == "add" else 0.0)
        self._arrays = None

    def add_hopping(self, amplitude: complex, i: int, j: int, r_vec: Any = None, *, mode: str = "set") -> None:
        """Set ``<i, cell 0 | H | j, cell R> = amplitude`` (eV); the hermitian conjugate is added.

        ``mode="add"`` adds ``amplitude`` to an existing value instead. A term that was already
        given as its conjugate (``j, i, -R``) is refused, because it would be counted twice.
        """
        if mode not in ("set", "add"):
            raise ModelDefinitionError(f"mode must be 'set' or 'add', got {mode!r}")
        i = self._check_orbital(i, "i")
        j = self._check_orbital(j, "j")
        r = self._check_r(np.zeros(self.dim_k, dtype=int) if r_vec is None else r_vec)
        amp = complex(amplitude)
        if not np.isfinite(amp):
            raise ModelDefinitionError(f"hopping amplitude must be finite, got {amplitude!r}")
        if i == j and not any(r):
            raise ModelDefinitionError(
                f"a hopping from orbital {i} to itself in the same cell is an on-site term; use set_onsite, got R={r}"
            )
        neg = tuple(-x for x in r)
        if neg in self._hoppings and abs(self._hoppings[neg][j, i]) > 0:
            raise ModelDefinitionError(
                f"hopping <{i},0|H|{j},R={r}> was already given as its conjugate <{j},0|H|{i},R={neg}>; "
                "add each bond once"
            )
        matrix = self._hoppings.setdefault(r, np.zeros((self.norb, self.norb), dtype=complex))
        matrix[i, j] = amp + (matrix[i, j] if mode == "add" else 0.0)
        self._arrays = None

    def set_inversion(
        self,
        permutation: Sequence[int] | InversionSymmetry,
        parities: Sequence[int] | None = None,
        centre: Sequence[float] | None = None,
        *,
        check: bool = True,
    ) -> InversionSymmetry:
        """Declare the inversion operator (used by the Fu-Kane parity method).

        ``permutation[j]`` is the orbital that orbital ``j`` maps to under ``r -> 2 c - r``;
        ``parities[j]`` is its intrinsic parity (default +1). ``check`` verifies that
        ``H(-k) = P H(k) P^dagger`` at random k-points and raises :class:`SymmetryError` if not.
        ``permutation`` may instead be an :class:`InversionSymmetry` (another model's, or one from
        :meth:`build_inversion`): its permutation, parities and centre are validated on this model.
        """
        if isinstance(permutation, InversionSymmetry):
            if parities is not None or centre is not None:
                raise SymmetryError(
                    f"an InversionSymmetry carries its parities and centre; got parities={parities}, centre={centre}"
                )
            permutation, parities, centre = permutation.permutation, permutation.parities, permutation.centre
        self.inversion = self.build_inversion(permutation, parities, centre, check=check)
        return self.inversion

    def build_inversion(
        self,
        permutation: Sequence[int],
        parities: Sequence[int] | None = None,
        centre: Sequence[float] | None = None,
        *,
        check: bool = True,
    ) -> InversionSymmetry:
        """The inversion operator of :meth:`set_inversion`, validated but not stored on the model."""
        perm = [int(p) for p in permutation]
        if sorted(perm) != list(range(self.norb)):
            raise SymmetryError(f"permutation must be a permutation of 0..{self.norb - 1}, got {list(permutation)}")
        par = [1] * self.norb if parities is None else [int(p) for p in parities]
        if len(par) != self.norb or any(p not in (1, -1) for p in par):
            raise SymmetryError(f"parities must be {self.norb} values of +1 or -1, got {parities}")
        c = np.zeros(self.dim_r) if centre is None else np.asarray(centre, dtype=float)
        image = 2 * c - self.positions  # (norb, dim_r)
        shifts = image - self.positions[perm]
        off = np.abs(shifts - np.round(shifts)).max(axis=1)  # (norb,) distance from a lattice vector
        if np.any(off > POSITION_TOLERANCE):
            o = int(np.argmax(off))
            raise SymmetryError(
                "inversion must map each orbital onto its image orbital up to a lattice vector (within "
                f"{POSITION_TOLERANCE:g} in reduced coordinates); orbital {o} maps onto orbital {perm[o]} shifted by "
                f"{[float(f'{x:.9g}') for x in shifts[o]]}, {off[o]:.3g} away from a lattice vector"
            )
        op = InversionSymmetry(
            tuple(perm),
            tuple(par),
            tuple(float(x) for x in c),
            tuple(tuple(int(x) for x in s) for s in np.round(shifts)),
        )
        if check:
            ks = np.random.default_rng(7).random((4, self.dim_k))
            h_k = self.hamiltonian(np.concatenate([ks, -ks]))
            ops = np.stack([op.matrix_at(kk) for kk in ks])  # (4, norb, norb)
            err = float(np.max(np.abs(ops @ h_k[:4] @ np.conj(np.swapaxes(ops, -1, -2)) - h_k[4:])))
            if err > 1e-8:
                raise SymmetryError(f"the inversion operator does not commute with H(k): max error {err:.3e}")
        return op

    # ------------------------------------------------------------------ arrays
    @property
    def onsite(self) -> np.ndarray:
        """The hermitian (norb, norb) on-site matrix H0 (a copy)."""
        return self._onsite.copy()

    @property
    def hoppings(self) -> dict[tuple[int, ...], np.ndarray]:
        """Mapping from R to the (norb, norb) matrix T_R (copies)."""
        return {r: t.copy() for r, t in self._hoppings.items()}

    def _dense(self) -> _Arrays:
        if self._arrays is None:
            keys = sorted(self._hoppings)
            if keys:
                rv = np.array(keys, dtype=int).reshape(len(keys), self.dim_k)
                tm = np.stack([self._hoppings[key] for key in keys])
            else:
                rv = np.zeros((0, self.dim_k), dtype=int)
                tm = np.zeros((0, self.norb, self.norb), dtype=complex)
            self._arrays = _Arrays(rv, tm)
        return self._arrays

    @property
    def cartesian_positions(self) -> np.ndarray:
        """(norb, dim_r) orbital positions in Angstrom."""
        return self.positions @ self.lattice

    @property
    def reciprocal_lattice(self) -> np.ndarray:
        """(dim_r, dim_r) reciprocal vectors as rows, ``a_i . b_j = 2 pi delta_ij`` (1/Angstrom)."""
        return 2 * np.pi * np.linalg.inv(self.lattice).T

    def periodic_frame(self) -> np.ndarray:
        """(dim_k, dim_r) orthonormal Cartesian axes of the periodic directions.

        The Cartesian axes themselves when the periodic vectors span them (a 2D sheet in the
        xy-plane gives x and y); otherwise a right-handed orthonormal basis of their span.
        """
        full = self.lattice[: self.dim_k, :]
        if self.dim_k == self.dim_r or np.allclose(full[:, self.dim_k :], 0.0):
            return np.eye(self.dim_r)[: self.dim_k]
        q, r = np.linalg.qr(full.T)
        return (q * np.sign(np.diag(r))).T

    @property
    def n_occupied(self) -> int:
        """The default number of occupied bands (half filling unless set)."""
        if self.occupied is not None:
            return self.occupied
        if self.norb % 2:
            raise OccupationError(
                f"half filling is ambiguous for an odd number of orbitals ({self.norb}); pass occupied explicitly"
            )
        return self.norb // 2

    def check_occupied(self, occupied: int | None) -> int:
        """Validate a number of occupied bands (``None`` gives the model's default)."""
        if occupied is None:
            return self.n_occupied
        if not isinstance(occupied, (int, np.integer)) or not 1 <= int(occupied) <= self.norb - 1:
            raise OccupationError(f"occupied must be between 1 and {self.norb - 1} bands, got {occupied!r}")
        return int(occupied)

    # ------------------------------------------------------------------ Hamiltonian
    def hamiltonian(self, k: Any, *, convention: int = 1) -> np.ndarray:
        """Bloch Hamiltonians at a batch of reduced k-points.

        ``k``: (nk, dim_k) or (dim_k,); returns (nk, norb, norb) complex (eV). ``convention=1``
        is the periodic gauge, ``convention=2`` includes the orbital positions in the phases.
        """
        kpts = as_kpoints(k, self.dim_k)
        return stacked_hamiltonian([self], kpts, convention=convention)[0]

    def velocity(self, k: Any, *, cartesian: bool = True) -> np.ndarray:
        """dH/dk at reduced k-points in convention II, shape (dim_k, nk, norb, norb).

        With ``cartesian=True`` the derivative is with respect to Cartesian k (eV Angstrom),
        along the first ``dim_k`` Cartesian axes spanned by the periodic lattice vectors;
        otherwise with respect to reduced k (eV).
        """
        kpts = as_kpoints(k, self.dim_k)
        arrays = self._dense()
        pos = self.positions[:, : self.dim_k]
        # separation of orbital j in cell R from orbital i in cell 0, reduced (nR, norb, norb, dim_k)
        sep = arrays.r_vectors[:, None, None, :] + pos[None, None, :, :] - pos[None, :, None, :]
        phase = np.exp(2j * np.pi * np.einsum("kd,rijd->krij", kpts, sep))  # (nk, nR, norb, norb)
        hop = phase * arrays.t_matrices[None]
        onsite_sep = pos[None, :, :] - pos[:, None, :]  # (norb, norb, dim_k)
        onsite_phase = np.exp(2j * np.pi * np.einsum("kd,ijd->kij", kpts, onsite_sep))
        if cartesian:
            full = self.lattice[: self.dim_k, :]  # (dim_k, dim_r)
            sep_vec = np.einsum("rijd,dc->rijc", sep, full)  # (nR, norb, norb, dim_r)
            onsite_vec = np.einsum("ijd,dc->ijc", onsite_sep, full)
            basis = self.periodic_frame()  # (dim_k, dim_r)
            sep_vec = np.einsum("rijc,ac->rija", sep_vec, basis)
            onsite_vec = np.einsum("ijc,ac->ija", onsite_vec, basis)
            factor_hop, factor_on = 1j * sep_vec, 1j * onsite_vec
        else:
            factor_hop, factor_on = 2j * np.pi * sep, 2j * np.pi * onsite_sep
        out = np.empty((self.dim_k, len(kpts), self.norb, self.norb), dtype=complex)
        for a in range(self.dim_k):  # loop over Cartesian directions, not k-points
            d_hop = np.einsum("krij,rij->kij", hop, factor_hop[..., a])
            d_on = onsite_phase * (self._onsite * factor_on[..., a])[None]
            out[a] = d_on + d_hop + np.conj(np.swapaxes(d_hop, -1, -2))
        return out

    def eigh(self, k: Any) -> tuple[np.ndarray, np.ndarray]:
        """Energies (nk, norb) in eV and eigenvectors (nk, norb, norb) in the periodic gauge."""
        return np.linalg.eigh(self.hamiltonian(k))

    def eigvalsh(self, k: Any) -> np.ndarray:
        """Energies (nk, norb) in eV, ascending."""
        return np.linalg.eigvalsh(self.hamiltonian(k))

    def is_time_reversal_symmetric(self, tol: float = 1e-8, n_k: int = 4) -> bool:
        """Whether ``Theta H(k) Theta^-1 = H(-k)`` with ``Theta = i sigma_y K`` (spinful) or ``K``."""
        ks = np.random.default_rng(11).random((n_k, self.dim_k))
        h = self.hamiltonian(np.concatenate([ks, -ks]))  # (2 n_k, norb, norb)
        if self.spinful:
            # U = i sigma_y on each site: (U X U^dagger)_{ij} = s_i s_j X_{p(i) p(j)}, p swaps up/down
            p = np.arange(self.norb) ^ 1
            s = np.where(np.arange(self.norb) % 2 == 0, 1.0, -1.0)
            rotated = s[:, None] * np.conj(h[:n_k])[:, p][:, :, p] * s[None, :]
        else:
            rotated = np.conj(h[:n_k])
        return bool(np.max(np.abs(rotated - h[n_k:])) < tol)

    def time_reversal_matrix(self) -> np.ndarray:
        """The unitary part U of ``Theta = U K``: ``i sigma_y`` on each site (spinful) or identity."""
        if not self.spinful:
            return np.eye(self.norb, dtype=complex)
        isy = np.array([[0.0, 1.0], [-1.0, 0.0]], dtype=complex)
        return np.kron(np.eye(self.norb // 2), isy)

    def spin_z(self) -> np.ndarray:
        """The (norb, norb) S_z operator in units of hbar/2 (sigma_z on each site)."""
        if not self.spinful:
            raise ModelDefinitionError("spin_z needs a spinful model, got a spinless one")
        return np.kron(np.eye(self.norb // 2), np.diag([1.0, -1.0])).astype(complex)

    # ------------------------------------------------------------------ misc
    def __repr__(self) -> str:
        return (
            f"TightBindingModel(name={self.name!r}, dim_k={self.dim_k}, dim_r={self.dim_r}, norb={self.norb}, "
            f"spinful={self.spinful}, n_R={len(self._hoppings)})"
        )

    # ------------------------------------------------------------------ files (the same as td_physics.io's functions)
    from_wannier90 = classmethod(build_from_wannier90)
    to_dict = model_to_dict
    from_dict = classmethod(model_from_dict)
    save = save_model
    load = classmethod(load_model)


def stacked_arrays(models: Sequence[TightBindingModel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The models' hopping and on-site arrays stacked over the union of their R vectors (same ``norb`` and
    ``dim_k``): R (nR, dim_k), T (nm, nR, norb, norb) and H0 (nm, norb, norb), so that
    ``H_m(k) = H0[m] + M + M^dagger`` with ``M = sum_R T[m, R] exp(2 pi i k.R)`` (periodic gauge) for every
    model at once: the numpy and torch batched Hamiltonians build on it.
    """
    first = models[0]
    for m in models[1:]:
        if m.norb != first.norb or m.dim_k != first.dim_k:
            raise ModelDefinitionError(
                f"models stacked together need the same norb and dim_k, got ({m.norb}, {m.dim_k}) and "
                f"({first.norb}, {first.dim_k})"
            )
    if len(models) == 1:
        arr = first._dense()
        return arr.r_vectors, arr.t_matrices[None], first._onsite[None]
    keys = sorted({r for m in models for r in m._hoppings})
    index = {r: n for n, r in enumerate(keys)}
    t = np.zeros((len(models), len(keys), first.norb, first.norb), dtype=complex)
    for mi, m in enumerate(models):
        for r, mat in m._hoppings.items():
            t[mi, index[r]] = mat
    rv = np.array(keys, dtype=int).reshape(len(keys), first.dim_k)
    return rv, t, np.stack([m._onsite for m in models])


def stacked_hamiltonian(models: Sequence[TightBindingModel], k: np.ndarray, *, convention: int = 1) -> np.ndarray:
    """H(k) of many models with the same orbitals at once: (nm, nk, norb, norb).

    ``k`` is (nk, dim_k) reduced, or (nm, nk, dim_k) for a separate set of k-points per model.
    One matrix product per model builds every matrix; there is no loop over k-points.
    """
    if convention not in (1, 2):
        raise KPointError(f"convention must be 1 (periodic gauge) or 2 (orbital positions), got {convention}")
    rv, t, h0 = stacked_arrays(models)
    kk = np.asarray(k, dtype=float)
    nm, nr, norb = t.shape[0], t.shape[1], t.shape[-1]
    flat = t.reshape(nm, nr, norb * norb)
    if kk.ndim == 2:
        phases = np.exp(2j * np.pi * (kk @ rv.T))  # (nk, nR)
        hop = np.matmul(phases[None], flat).reshape(nm, len(kk), norb, norb)  # one GEMM per model
    else:
        phases = np.exp(2j * np.pi * np.einsum("mkd,rd->mkr", kk, rv))  # (nm, nk, nR)
        hop = np.matmul(phases, flat).reshape(nm, kk.shape[1], norb, norb)
    h = h0[:, None] + hop + np.conj(np.swapaxes(hop, -1, -2))
    if convention == 2:
        pos = models[0].positions[:, : models[0].dim_k]
        ph = np.exp(2j * np.pi * (kk @ pos.T))  # (..., nk, norb)
        h = ph.conj()[..., :, None] * h * ph[..., None, :]
    return h


def iter_models(models: TightBindingModel | Iterable[TightBindingModel]) -> list[TightBindingModel]:
    """Normalise a model or an iterable of models to a list."""
    if isinstance(models, TightBindingModel):
        return [models]
    return list(models)
