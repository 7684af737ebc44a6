"""Spinful s/p tight-binding models of real crystals from universal parameter tables.

:func:`tight_binding_from_structure` turns a crystal (lattice, reduced coordinates, atomic
numbers) into a :class:`~td_physics.model.TightBindingModel`:

* basis: per atom one s and three p spatial orbitals (s only for H), each a spin doublet; site
  order follows the atoms, orbital ``2 * site + spin`` as everywhere in td-physics;
* on-site: the variant's term values (eV, non-relativistic, see
  :mod:`td_physics.structure.parameters`), plus ``lambda L.S`` on p shells
  (:func:`~td_physics.structure.slater_koster.spin_orbit_matrix`) when the variant asks for it;
* hopping: two-centre Slater-Koster s/p integrals with Harrison's coefficients, the variant's
  distance law and a smooth cosine cutoff in ``d / d_ref``;
* filling: ``occupied`` = number of valence s + p electrons (one electron per spinful band);
* optional moments ``m_i`` (Bohr magnetons; a number along +z, or a Cartesian 3-vector for
  non-collinear order): ``-(J / 2) m_i . sigma`` on every orbital of atom ``i``
  (:func:`td_physics.fields.exchange_onsite`), lowering the spin along ``m_i`` by ``J |m_i| / 2``
  (splitting ``J |m_i|``). ``J`` (eV per Bohr magneton, default 1.0) is a model parameter of Stoner
  type, not a sourced value;
* 2D cells: when the third lattice vector holds a vacuum gap of at least ``vacuum_gap`` Angstrom
  (or ``dimension=2``), the model has ``dim_k=2``, atoms are unwrapped into one contiguous slab and
  an optional perpendicular field (V/Angstrom, along ``a1 x a2``) is applied with
  :func:`td_physics.fields.electric_field`.

When spglib finds inversion, the operator of
:func:`~td_physics.structure.symmetry.inversion_operator` is declared on the model.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import StructureError
from td_physics.fields import electric_field as apply_electric_field
from td_physics.fields import exchange_onsite
from td_physics.inversion import InversionSymmetry
from td_physics.model import TightBindingModel
from td_physics.options import TightBindingOptions, resolve
from td_physics.structure.parameters import (
    Variant,
    cutoff_weight,
    element_symbol,
    hopping_integrals,
    references,
    spin_orbit_constant,
    term_values,
    valence_counts,
)
from td_physics.structure.slater_koster import slater_koster_blocks, spin_orbit_matrix

__all__ = [
    "tight_binding_from_structure",
    "tight_binding_variants",
    "variant_stacks",
    "VariantStack",
    "neighbour_list",
]

logger = logging.getLogger(__name__)

_ORBITAL_NAMES = ("s", "px", "py", "pz")


def _check_inputs(lattice: Any, frac_coords: Any, atomic_numbers: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    lat = np.asarray(lattice, dtype=float)
    if lat.shape != (3, 3) or not np.all(np.isfinite(lat)):
        raise StructureError(f"lattice must be a finite (3, 3) array of row vectors in Angstrom, got shape {lat.shape}")
    if abs(np.linalg.det(lat)) < 1e-8:
        raise StructureError("lattice vectors must be linearly independent, got a singular lattice")
    frac = np.asarray(frac_coords, dtype=float)
    if frac.ndim != 2 or frac.shape[1] != 3 or len(frac) == 0 or not np.all(np.isfinite(frac)):
        raise StructureError(f"frac_coords must be a finite (natom, 3) array of reduced coordinates, got {frac.shape}")
    numbers = list(np.atleast_1d(np.asarray(atomic_numbers, dtype=object)))
    if len(numbers) != len(frac):
        raise StructureError(f"atomic_numbers must name each of the {len(frac)} atoms, got {len(numbers)}")
    return lat, frac, [element_symbol(z) for z in numbers]


def _vacuum_gap(lat: np.ndarray, frac: np.ndarray) -> tuple[float, float]:
    """Largest empty slab along the third lattice vector (Angstrom) and the reduced c where atoms start."""
    c = np.sort(np.mod(frac[:, 2], 1.0))
    gaps = np.diff(np.concatenate([c, [c[0] + 1.0]]))  # gap after each atom, the last one wraps
    k = int(np.argmax(gaps))
    height = abs(np.linalg.det(lat)) / np.linalg.norm(np.cross(lat[0], lat[1]))  # interplanar spacing along c
    return float(gaps[k] * height), float(c[(k + 1) % len(c)])


def _image_vectors(lat: np.ndarray, dim_k: int, radius: float) -> np.ndarray:
    """Integer lattice vectors (nR, 3), zero beyond ``dim_k``, covering ``radius`` for wrapped atoms."""
    volume = abs(np.linalg.det(lat))
    spacing = [volume / np.linalg.norm(np.cross(lat[(a + 1) % 3], lat[(a + 2) % 3])) for a in range(3)]
    reach = [int(np.ceil(radius / spacing[a])) + 1 for a in range(dim_k)]  # +1: atoms anywhere in [0, 1)
    ranges = [np.arange(-n, n + 1) for n in reach]
    ranges += [np.zeros(1, dtype=int)] * (3 - dim_k)
    return np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)


def _bond_candidates(
    lattice: np.ndarray, frac: np.ndarray, dim_k: int, outer: float, min_distance: float
) -> dict[str, np.ndarray]:
    """Every unordered pair (atom, atom, image) with ``d / d_ref < outer``, vectorised over atoms and images.

    The geometry shared by all cutoffs with an outer radius up to ``outer`` (in units of ``d_ref``):
    arrays ``i, j, R, vector, d, d_ref, ratio`` per candidate bond and ``d_nn`` per atom. A
    cutoff ``(inner, outer')`` with ``outer' <= outer`` keeps the candidates of positive
    :func:`cutoff_weight` (its weight is exactly 0 at ``ratio >= outer'``).
    """
    natom = len(frac)
    radius = 4.0
    while True:
        images = _image_vectors(lattice, dim_k, radius)  # (nR, 3)
        # Cartesian r_j + R - r_i for every (i, j, R): (natom, natom, nR, 3)
        sep = ((frac[None, :, None, :] + images[None, None, :, :]) - frac[:, None, None, :]) @ lattice
        dist = np.linalg.norm(sep, axis=-1)
        same_atom = np.arange(natom)[:, None, None] == np.arange(natom)[None, :, None]
        self_term = same_atom & np.all(images == 0, axis=1)[None, None, :]  # (natom, natom, nR)
        dist_masked = np.where(self_term, np.inf, dist)
        d_nn = dist_masked.min(axis=(1, 2))  # (natom,)
        if np.all(np.isfinite(d_nn)) and outer * d_nn.max() <= radius:
            break
        radius = max(2 * radius, outer * float(np.max(d_nn[np.isfinite(d_nn)], initial=radius)))
    close = np.argwhere(dist_masked < min_distance)
    if len(close):
        i, j, r = close[np.argmin(dist_masked[tuple(close.T)])]
        raise StructureError(
            f"atoms {i} and {j} (image R={tuple(int(x) for x in images[r])}) are "
            f"{dist_masked[i, j, r]:.3f} Angstrom apart; atoms closer than {min_distance} Angstrom overlap"
        )
    d_ref = np.maximum(d_nn[:, None], d_nn[None, :])[:, :, None]  # (natom, natom, 1)
    ratio = dist_masked / d_ref  # inf for the atom itself
    r0, r1, r2 = images.T  # lexicographically positive image: R > (0, 0, 0) as a tuple
    lex_positive = (r0 > 0) | ((r0 == 0) & ((r1 > 0) | ((r1 == 0) & (r2 > 0))))
    before = np.arange(natom)[:, None, None] < np.arange(natom)[None, :, None]
    upper = before | (same_atom & lex_positive[None, None, :])
    ii, jj, rr = np.nonzero((ratio < outer) & upper)
    return {
        "i": ii,
        "j": jj,
        "R": images[rr],
        "vector": sep[ii, jj, rr],
        "d": dist[ii, jj, rr],
        "d_ref": np.broadcast_to(d_ref, dist.shape)[ii, jj, rr],
        "ratio": ratio[ii, jj, rr],
        "d_nn": d_nn,
    }


def neighbour_list(
    lattice: np.ndarray, frac: np.ndarray, dim_k: int, cutoff: tuple[float, float], min_distance: float = 0.5
) -> dict[str, np.ndarray]:
    """Bonds of a periodic structure, each unordered bond once, vectorised over atoms and images.

    Returns arrays ``i, j`` (atom indices), ``R`` (nbond, 3) integer image of ``j``, ``vector``
    (nbond, 3) Cartesian ``r_j + R - r_i`` (Angstrom), ``d``, ``d_ref`` and cutoff ``weight``;
    plus ``d_nn`` (natom,), each atom's shortest bond. A bond is kept as ``i < j``, or ``i == j``
    with ``R`` lexicographically positive, so its conjugate is never listed. Raises
    :class:`StructureError` when two atoms (or an atom and its image) are closer than
    ``min_distance`` Angstrom.
    """
    cand = _bond_candidates(
        np.asarray(lattice, dtype=float), np.asarray(frac, dtype=float), dim_k, float(cutoff[1]), min_distance
    )
    weight = cutoff_weight(cand["ratio"], cutoff)
    keep = weight > 0
    out = {key: cand[key][keep] for key in ("i", "j", "R", "vector", "d", "d_ref")}
    out["weight"] = weight[keep]
    out["d_nn"] = cand["d_nn"]
    return out


class VariantStack:
    """The models of several variants of one crystal, built together, with their shared arrays.

    Every variant has the same orbitals (``2 * site + spin``, as in td-physics) and spin-diagonal
    hoppings ``T_R = t_R x 1_2`` (spin-orbit coupling and exchange are on-site), so the stack keeps

    * ``r_vectors`` (nR, dim_k): the union of the variants' lattice vectors, sorted;
    * ``spatial`` (nvar, nR, nsite, nsite) real: the spatial hoppings ``t_R`` of each variant, zero
      where a variant has no bond;
    * ``present`` (nvar, nR): which ``R`` carry a bond of each variant (the keys of its model);
    * ``onsite`` (nvar, norb, norb) complex: ``H0`` (term values, spin-orbit, exchange, field);
    * ``inversion``: per variant the inversion operator (found once with spglib and checked on
      every variant) or ``None``.

    :meth:`hamiltonian` evaluates all variants at a batch of k-points with one pair of real
    matrix products; :meth:`model` gives variant ``v`` as a :class:`TightBindingModel` (built on
    first use; the labeller needs one only for the Wannier-centre flow or the Chern number).
    """

    def __init__(
        self,
        variants: Sequence[Variant],
        skeleton: TightBindingModel,
        r_vectors: np.ndarray,
        spatial: np.ndarray,
        present: np.ndarray,
        onsite: np.ndarray,
        metadata: Sequence[dict[str, Any]],
    ) -> None:
        self.variants = tuple(variants)
        self._skeleton = skeleton  # lattice, positions, labels, filling and name shared by every model
        self.r_vectors = r_vectors
        self.spatial = spatial
        self.present = present
        self.onsite = onsite
        self.metadata = [dict(m) for m in metadata]
        self.inversion: list[InversionSymmetry | None] = [None] * len(self.variants)
        self._models: dict[int, TightBindingModel] = {}

    def __len__(self) -> int:
        return len(self.variants)

    @property
    def norb(self) -> int:
        return self.onsite.shape[-1]

    @property
    def dim_k(self) -> int:
        return self._skeleton.dim_k

    @property
    def n_electrons(self) -> int:
        return int(self.metadata[0]["n_electrons"])

    def hamiltonian(self, k: Any, variants: Sequence[int] | None = None) -> np.ndarray:
        """``H(k)`` (nvar, nk, norb, norb) of all variants (or the indices ``variants``), periodic gauge.

        ``H(k) = H0 + [h(k) + h(k)^dagger] x 1_2`` with ``h(k) = sum_R t_R exp(2 pi i k.R)``: the
        phases (nk, nR) are computed once, and their cosines and sines are contracted with the real
        spatial hoppings of every variant in two real matrix products (no loop over k or bonds).
        Equal to :meth:`TightBindingModel.hamiltonian` of each variant's model to rounding.
        """
        kk = np.asarray(k, dtype=float).reshape(-1, self.dim_k)
        idx = np.arange(len(self)) if variants is None else np.asarray(variants, dtype=int).reshape(-1)
        h_s = self._spatial_bloch(kk, idx)
        nm, nsite = h_s.shape[0], h_s.shape[-1]
        h = np.zeros((nm, len(kk), 2 * nsite, 2 * nsite), dtype=complex)
        h[..., 0::2, 0::2] = h_s
        h[..., 1::2, 1::2] = h_s
        h += self.onsite[idx][:, None]
        return h

    def _spatial_bloch(self, kk: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``h(k) + h(k)^dagger`` (nm, nk, nsite, nsite), the spin-independent hopping part of ``H(k)``."""
        t = self.spatial[idx]  # (nm, nR, nsite, nsite)
        nm, nr, nsite = t.shape[0], t.shape[1], t.shape[-1]
        arg = 2 * np.pi * (kk @ self.r_vectors.T)  # (nk, nR)
        flat = t.reshape(nm, nr, nsite * nsite)
        re = np.matmul(np.cos(arg)[None], flat).reshape(nm, len(kk), nsite, nsite)
        im = np.matmul(np.sin(arg)[None], flat).reshape(nm, len(kk), nsite, nsite)
        h_s = np.empty((nm, len(kk), nsite, nsite), dtype=complex)
        h_s.real = re + np.swapaxes(re, -1, -2)
        h_s.imag = im - np.swapaxes(im, -1, -2)
        return h_s

    def duplicates(self, atol: float = 1e-12) -> list[int]:
        """For each variant, the first variant with the same Hamiltonian (``atol`` eV on every element).

        Variants often coincide: with only nearest-neighbour bonds at ``d = d_ref`` the exponential
        law equals Harrison's ``d^-2`` and a wider cutoff adds no bond (zincblende, diamond).
        """
        # a cheap fingerprint first: two variants can only coincide if their summed magnitudes do
        size = self.spatial[0].size + self.onsite[0].size
        prints = np.abs(self.spatial).sum(axis=(1, 2, 3)) + np.abs(self.onsite).sum(axis=(1, 2))
        first: list[int] = []
        for v in range(len(self)):
            same = v
            for w in sorted(set(first)):
                if (
                    abs(prints[v] - prints[w]) <= atol * size
                    and np.abs(self.onsite[v] - self.onsite[w]).max(initial=0.0) <= atol
                    and np.abs(self.spatial[v] - self.spatial[w]).max(initial=0.0) <= atol
                    and (self.inversion[v] is None) == (self.inversion[w] is None)
                ):
                    same = w
                    break
            first.append(same)
        return first

    def model(self, v: int) -> TightBindingModel:
        """Variant ``v`` as a :class:`TightBindingModel` (built once; the stack's arrays stay unchanged)."""
        if v not in self._models:
            model = self._skeleton.copy()
            model.set_onsite(self.onsite[v])
            keep = np.flatnonzero(self.present[v])
            nsite = self.spatial.shape[-1]
            t = np.zeros((len(keep), 2 * nsite, 2 * nsite), dtype=complex)
            t[:, 0::2, 0::2] = self.spatial[v, keep]  # t_R x 1_2
            t[:, 1::2, 1::2] = self.spatial[v, keep]
            # the arrays are built and checked (finite, one entry per bond) by the builder: fill the model directly
            model._hoppings = {tuple(int(x) for x in self.r_vectors[r]): t[n] for n, r in enumerate(keep)}
            model._arrays = None
            model.metadata = copy.deepcopy(self.metadata[v])
            model.inversion = self.inversion[v]
            self._models[v] = model
        return self._models[v]

    def _inversion_error_by_spin(self, op: InversionSymmetry, ks: np.ndarray) -> np.ndarray | None:
        """``max |P H(k) P^dagger - H(-k)|`` over ``ks`` (nvar,), from the spatial hoppings and ``H0``.

        ``H(k) = [h(k) + h(k)^dagger] x 1_2 + H0`` and the builder's ``P = P_s x 1_2`` (spin untouched),
        so the deviation is ``D_s(k) x 1_2 + D_0`` with ``D_s`` on the sites (a quarter of the matrix)
        and ``D_0`` of ``H0``, which is k-independent because ``H0`` couples only orbitals of one
        atom (one position, one lattice shift). The same numbers as the check of the full
        matrices; ``None`` when ``op`` or ``H0`` is not of that form.
        """
        perm, par = np.asarray(op.permutation), np.asarray(op.parities)
        shifts = np.asarray(op.shifts, dtype=float)[:, : self.dim_k]
        spin_blind = (
            np.all(perm[0::2] % 2 == 0)
            and np.array_equal(perm[1::2], perm[0::2] + 1)
            and np.array_equal(par[0::2], par[1::2])
            and np.array_equal(shifts[0::2], shifts[1::2])
        )
        pos = self._skeleton.positions
        rows, cols = np.nonzero(np.any(self.onsite != 0, axis=0))
        if not spin_blind or not np.array_equal(pos[rows], pos[cols]):
            return None
        inv_s = np.argsort(perm[0::2] // 2)  # site a is the image of site inv_s[a]
        d = (par[0::2][None, :] * np.exp(2j * np.pi * ks @ shifts[0::2].T))[:, inv_s]  # (4, nsite)
        h_s = self._spatial_bloch(np.concatenate([ks, -ks]), np.arange(len(self)))  # (nvar, 8, nsite, nsite)
        rotated = d[None, :, :, None] * h_s[:, :4][:, :, inv_s][:, :, :, inv_s] * np.conj(d)[None, :, None, :]
        d_s = rotated - h_s[:, 4:]  # (nvar, 4, nsite, nsite)
        inv = np.argsort(perm)
        d_0 = par[inv][:, None] * self.onsite[:, inv][:, :, inv] * par[inv][None, :] - self.onsite  # (nvar, norb, norb)
        same_spin = [np.abs(d_s + d_0[:, None, s::2, s::2]).max(axis=(1, 2, 3)) for s in (0, 1)]
        spin_flip = np.abs(d_0[:, 0::2, 1::2]).max(axis=(1, 2), initial=0.0)
        spin_flip = np.maximum(spin_flip, np.abs(d_0[:, 1::2, 0::2]).max(axis=(1, 2), initial=0.0))
        return np.maximum(np.maximum(*same_spin), spin_flip)

    @property
    def models(self) -> tuple[TightBindingModel, ...]:
        """Every variant's model, in order."""
        return tuple(self.model(v) for v in range(len(self)))

    def _check_inversion(self, op: InversionSymmetry | None) -> None:
        """Declare ``op`` on every variant whose Hamiltonian commutes with it (one batched check).

        The test of :meth:`TightBindingModel.build_inversion`, ``H(-k) = P H(k) P^dagger`` at the
        same four random k-points to 1e-8 eV, with ``P`` applied as the signed permutation it is.
        """
        if op is None:
            self.inversion = [None] * len(self)
            return
        ks = np.random.default_rng(7).random((4, self.dim_k))
        err = self._inversion_error_by_spin(op, ks)
        if err is None:  # not of the builder's form: the full matrices
            h = self.hamiltonian(np.concatenate([ks, -ks]))  # (nvar, 8, norb, norb)
            inv = np.argsort(np.asarray(op.permutation))  # orbital a is the image of orbital inv[a]
            shifts = np.asarray(op.shifts, dtype=float)[:, : self.dim_k]
            d = np.asarray(op.parities)[None, :] * np.exp(2j * np.pi * ks @ shifts.T)  # (4, norb): P[perm j, j]
            d_a = d[:, inv]
            rotated = d_a[None, :, :, None] * h[:, :4][:, :, inv][:, :, :, inv] * np.conj(d_a)[None, :, None, :]
            err = np.abs(rotated - h[:, 4:]).max(axis=(1, 2, 3))  # (nvar,)
        self.inversion = [op if e <= 1e-8 else None for e in err]
        for v in np.flatnonzero(err > 1e-8):
            logger.info("the crystal of %r has inversion but variant %d (moments) breaks it", self._skeleton.name, v)
        for v, model in self._models.items():
            model.inversion = self.inversion[v]


def tight_binding_from_structure(
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Sequence[Any],
    variant: Variant | None = None,
    *,
    options: TightBindingOptions | None = None,
    **overrides: Any,
) -> TightBindingModel:
    """A spinful s/p Slater-Koster model of a crystal (see the module docstring for the physics).

    Parameters
    ----------
    lattice:
        (3, 3) lattice vectors as rows, Angstrom.
    frac_coords:
        (natom, 3) reduced coordinates.
    atomic_numbers:
        (natom,) atomic numbers or element symbols.
    variant:
        The parameter set; default ``Variant()`` (Harrison 1980, d^-2, NIST LDA term values).
    options:
        A :class:`~td_physics.options.TightBindingOptions` (default
        ``TightBindingOptions()``): spin-orbit constants, magnetic moments and exchange,
        dimension, electric field, vacuum gap, minimum distance, inversion search, name.
    **overrides:
        Fields of ``options`` by name (``spin_orbit_constants=...``, ``dimension=2``, ...); an
        unknown name raises ``TypeError``.

    Examples
    --------
    >>> import numpy as np
    >>> a = 5.431
    >>> lat = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    >>> si = tight_binding_from_structure(lat, [[0, 0, 0], [0.25, 0.25, 0.25]], [14, 14],
    ...                                   Variant(spin_orbit=False))
    >>> si.norb, si.occupied, si.inversion is not None
    (16, 8, True)
    """
    opts = resolve(TightBindingOptions, options, overrides, "builder")
    return tight_binding_variants(
        lattice, frac_coords, atomic_numbers, [Variant() if variant is None else variant], options=opts
    ).model(0)


def _orbitals(symbols: Sequence[str], variant: Variant) -> tuple[list[tuple[int, int]], list[float], int]:
    """Per spatial orbital ``(atom, mu)`` with ``mu`` in s, px, py, pz; its term value; the electron count."""
    layout, eps, n_electrons = [], [], 0
    for a, sym in enumerate(symbols):
        eps_s, eps_p = term_values(sym, variant.term_values)
        n_s, n_p = valence_counts(sym)
        n_electrons += n_s + n_p
        for mu in (0,) if eps_p is None else (0, 1, 2, 3):
            layout.append((a, mu))
            eps.append(eps_s if mu == 0 else eps_p)
    return layout, eps, n_electrons


def tight_binding_variants(
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Sequence[Any],
    variants: Sequence[Variant],
    *,
    options: TightBindingOptions | None = None,
    **overrides: Any,
) -> VariantStack:
    """The models of :func:`tight_binding_from_structure` for several variants, built together.

    The variants differ only in their term values, hopping coefficients, distance law and
    cutoff, so the geometry is computed once: one neighbour list out to the widest cutoff (each
    variant keeps the bonds of positive weight under its own cutoff), one Slater-Koster call for
    the bonds of all variants, one scatter into (nvar, nR, nsite, nsite) spatial hoppings. The
    inversion search (spglib) runs once and its operator is checked on every variant. Returns a
    :class:`VariantStack`; ``stack.model(v)`` holds the same hopping and on-site matrices, bond
    count and metadata as ``tight_binding_from_structure(..., variants[v], ...)``. Options as in
    :func:`tight_binding_from_structure`; all variants must give the same orbitals (see
    :func:`variant_stacks`).
    """
    opts = resolve(TightBindingOptions, options, overrides, "builder")
    variants = list(variants)
    if not variants:
        raise StructureError("tight_binding_variants needs at least one Variant")
    lat, frac, symbols = _check_inputs(lattice, frac_coords, atomic_numbers)
    natom = len(symbols)
    gap, c_start = _vacuum_gap(lat, frac)
    dimension = opts.dimension if opts.dimension is not None else (2 if gap >= opts.vacuum_gap else 3)
    electric_field, exchange_per_moment = opts.electric_field, opts.exchange_per_moment
    frac = frac.copy()
    if dimension == 2:  # one contiguous slab along the non-periodic a3
        frac[:, 2] = np.mod(frac[:, 2] - c_start, 1.0) + c_start
    if electric_field is not None and dimension != 2:
        raise StructureError("electric_field needs a 2D cell (dimension=2 or a vacuum gap along a3), got a 3D cell")

    # ---- orbitals: one site per spatial orbital, at its atom's position (term values per variant)
    per_variant = [_orbitals(symbols, v) for v in variants]
    layout, _, n_electrons = per_variant[0]
    if any(p[0] != layout for p in per_variant[1:]):
        raise StructureError(
            "these variants give the crystal different orbital sets (a term-value table without p states for an "
            "element); build them with variant_stacks"
        )
    site_atom_arr = np.array([a for a, _ in layout])
    site_mu = np.array([mu for _, mu in layout])
    site_l = [0 if mu == 0 else 1 for mu in site_mu]
    site_names = [f"{symbols[a]}{a}_{_ORBITAL_NAMES[mu]}" for a, mu in layout]
    pad_index_arr = 4 * site_atom_arr + site_mu  # index in the padded (natom * 4) orbital list
    nsite, nvar = len(layout), len(variants)
    norb = 2 * nsite

    # ---- hoppings of all variants: one neighbour list out to the widest cutoff, one Slater-Koster call
    dim_k = dimension
    outer = max(v.cutoff[1] for v in variants)
    bonds = _bond_candidates(lat, frac, dim_k, outer, opts.min_distance)
    nbond = len(bonds["d"])
    weights = np.stack([cutoff_weight(bonds["ratio"], v.cutoff) for v in variants])  # (nvar, nbond)
    integrals = np.stack(
        [hopping_integrals(v, bonds["d"], bonds["d_ref"]) * w[:, None] for v, w in zip(variants, weights)]
    )  # (nvar, nbond, 4)
    blocks = slater_koster_blocks(np.tile(bonds["vector"], (nvar, 1)), integrals.reshape(-1, 4))
    blocks = blocks.reshape(nvar, nbond, 4, 4)
    r_keys, r_index = np.unique(bonds["R"][:, :dim_k], axis=0, return_inverse=True)
    r_index = np.asarray(r_index).reshape(-1)
    nr = len(r_keys)
    padded = np.zeros((nvar, nr, 4 * natom, 4 * natom))
    rows = 4 * bonds["i"][:, None, None] + np.arange(4)[None, :, None]  # (nbond, 4, 1)
    cols = 4 * bonds["j"][:, None, None] + np.arange(4)[None, None, :]  # (nbond, 1, 4)
    padded[:, r_index[:, None, None], rows, cols] = blocks  # each (i, j, R) is listed once
    spatial = padded[:, :, pad_index_arr][:, :, :, pad_index_arr]  # (nvar, nR, nsite, nsite)
    v_idx, b_idx = np.nonzero(weights > 0)
    present = np.zeros((nvar, nr), dtype=bool)  # the R of each variant's own bonds
    present[v_idx, r_index[b_idx]] = True
    n_bonds = (weights > 0).sum(axis=1)

    # ---- on-site: term values, spin-orbit, exchange
    diag_eps = np.repeat(np.array([p[1] for p in per_variant]), 2, axis=1)  # (nvar, norb)
    onsite = np.zeros((nvar, norb, norb), dtype=complex)
    onsite[:, np.arange(norb), np.arange(norb)] = diag_eps
    so_used: dict[str, float] = {}
    if any(v.spin_orbit for v in variants):
        so_block = np.zeros((norb, norb), dtype=complex)
        for a, sym in enumerate(symbols):
            p_sites = np.nonzero((site_atom_arr == a) & (site_mu > 0))[0]
            if len(p_sites) == 0:
                continue
            lam = spin_orbit_constant(sym, dict(opts.spin_orbit_constants or {}))
            so_used[sym] = lam
            orb = (2 * p_sites[:, None] + np.arange(2)[None, :]).reshape(-1)  # px up, px down, py up, ...
            so_block[np.ix_(orb, orb)] += spin_orbit_matrix(lam)
        onsite[[v.spin_orbit for v in variants]] += so_block
    moments = None
    if opts.magnetic_moments is not None:
        moments = np.asarray(opts.magnetic_moments, dtype=float)
        if moments.shape not in ((natom,), (natom, 3)):
            raise StructureError(
                f"magnetic_moments must be {natom} finite values (Bohr magnetons along z) or {natom} Cartesian "
                f"3-vectors, got shape {np.shape(moments)}"
            )
        onsite += exchange_onsite(moments[site_atom_arr], -0.5 * float(exchange_per_moment))  # -(J/2) m.sigma
    if not (np.all(np.isfinite(spatial)) and np.all(np.isfinite(onsite))):
        raise StructureError("the tight-binding parameters of this structure are not finite numbers")

    skeleton = TightBindingModel(
        lat,
        frac[site_atom_arr],
        dim_k=dim_k,
        spinful=True,
        labels=site_names,
        occupied=n_electrons,
        name=opts.name or "-".join(symbols),
    )
    skeleton.metadata.update({"orbital_atom": site_atom_arr.tolist(), "orbital_l": list(site_l)})
    applied_fields = None
    if electric_field is not None:  # on-site energies of the field, from the orbitals' positions
        normal = np.cross(lat[0], lat[1])
        biased = apply_electric_field(skeleton, float(electric_field) * normal / np.linalg.norm(normal))
        onsite = onsite + biased.onsite[None]
        applied_fields = biased.metadata["applied_fields"]
    metadata = []
    for v, variant in enumerate(variants):
        meta = {
            "n_electrons": n_electrons,
            "orbital_atom": site_atom_arr.tolist(),
            "orbital_l": list(site_l),
            "orbital_name": site_names,
            "elements": symbols,
            "variant": variant.as_dict(),
            "references": references(variant),
            "dimension": dimension,
            "spin_orbit_constants_eV": dict(so_used) if variant.spin_orbit else {},
            "nearest_neighbour_distances_A": bonds["d_nn"].tolist(),
            "n_bonds": int(n_bonds[v]),
        }
        if moments is not None:
            meta["magnetic_moments_muB"] = moments.tolist()
            meta["exchange_per_moment_eV"] = float(exchange_per_moment)
        if applied_fields is not None:
            meta["applied_fields"] = applied_fields
        metadata.append(meta)
    stack = VariantStack(variants, skeleton, r_keys.reshape(nr, dim_k).astype(int), spatial, present, onsite, metadata)
    if opts.find_inversion:
        from td_physics.structure.symmetry import inversion_operator

        # the operation and the orbital map come from the geometry (spglib, once); the skeleton has no
        # Hamiltonian, so inversion_operator's own check is void and the real one runs on every variant
        stack._check_inversion(inversion_operator(skeleton, lat, frac, symbols))
    return stack


def variant_stacks(
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Sequence[Any],
    variants: Sequence[Variant],
    *,
    options: TightBindingOptions | None = None,
    **overrides: Any,
) -> list[tuple[list[int], VariantStack]]:
    """:func:`tight_binding_variants` for variants grouped by orbital set: ``[(indices, stack), ...]``.

    Every variant of the shipped tables gives the same orbitals (one group); a term-value table
    without p states for some element would give that element an s-only basis in those variants.
    """
    opts = resolve(TightBindingOptions, options, overrides, "builder")
    variants = list(variants)
    _, _, symbols = _check_inputs(lattice, frac_coords, atomic_numbers)
    groups: dict[tuple, list[int]] = {}
    for n, v in enumerate(variants):
        groups.setdefault(tuple(_orbitals(symbols, v)[0]), []).append(n)
    return [
        (idx, tight_binding_variants(lattice, frac_coords, atomic_numbers, [variants[n] for n in idx], options=opts))
        for idx in groups.values()
    ]
