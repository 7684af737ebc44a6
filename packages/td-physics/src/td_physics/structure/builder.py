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
* optional collinear moments ``m_i`` (Bohr magnetons, along +z): ``-(J m_i / 2) sigma_z`` on every
  orbital of atom ``i``, lowering spin up by ``J m_i / 2`` (splitting ``J m_i``). ``J`` (eV per
  Bohr magneton, default 1.0) is a model parameter of Stoner type, not a sourced value;
* 2D cells: when the third lattice vector holds a vacuum gap of at least ``vacuum_gap`` Angstrom
  (or ``dimension=2``), the model has ``dim_k=2``, atoms are unwrapped into one contiguous slab and
  an optional perpendicular field (V/Angstrom, along ``a1 x a2``) is applied with
  :func:`td_physics.fields.electric_field`.

When spglib finds inversion, the operator of
:func:`~td_physics.structure.symmetry.inversion_operator` is declared on the model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import SymmetryError
from td_physics.fields import electric_field as apply_electric_field
from td_physics.model import TightBindingModel
from td_physics.structure.parameters import (
    StructureError,
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

__all__ = ["tight_binding_from_structure", "neighbour_list"]

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
        if np.all(np.isfinite(d_nn)) and cutoff[1] * d_nn.max() <= radius:
            break
        radius = max(2 * radius, cutoff[1] * float(np.max(d_nn[np.isfinite(d_nn)], initial=radius)))
    close = np.argwhere(dist_masked < min_distance)
    if len(close):
        i, j, r = close[np.argmin(dist_masked[tuple(close.T)])]
        raise StructureError(
            f"atoms {i} and {j} (image R={tuple(int(x) for x in images[r])}) are "
            f"{dist_masked[i, j, r]:.3f} Angstrom apart; atoms closer than {min_distance} Angstrom overlap"
        )
    d_ref = np.maximum(d_nn[:, None], d_nn[None, :])[:, :, None]  # (natom, natom, 1)
    weight = cutoff_weight(dist_masked / d_ref, cutoff)  # inf distances give weight 0
    lex_positive = np.array([tuple(r) > (0, 0, 0) for r in images])
    upper = (np.arange(natom)[:, None, None] < np.arange(natom)[None, :, None]) | (
        (np.arange(natom)[:, None, None] == np.arange(natom)[None, :, None]) & lex_positive[None, None, :]
    )
    ii, jj, rr = np.nonzero((weight > 0) & upper)
    return {
        "i": ii,
        "j": jj,
        "R": images[rr],
        "vector": sep[ii, jj, rr],
        "d": dist[ii, jj, rr],
        "d_ref": np.broadcast_to(d_ref, dist.shape)[ii, jj, rr],
        "weight": weight[ii, jj, rr],
        "d_nn": d_nn,
    }


def tight_binding_from_structure(
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Sequence[Any],
    variant: Variant | None = None,
    *,
    spin_orbit_constants: Mapping[str, float] | None = None,
    magnetic_moments: Sequence[float] | None = None,
    exchange_per_moment: float = 1.0,
    dimension: int | None = None,
    electric_field: float | None = None,
    vacuum_gap: float = 7.0,
    min_distance: float = 0.5,
    find_inversion: bool = True,
    name: str = "",
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
    spin_orbit_constants:
        ``{symbol: lambda_p}`` (eV) used before the (currently empty) sourced table.
    magnetic_moments:
        (natom,) collinear moments along +z in Bohr magnetons; breaks time reversal.
    exchange_per_moment:
        ``J`` in eV per Bohr magneton (model parameter; spin splitting ``J m``).
    dimension:
        2 or 3; ``None`` detects a 2D sheet from a vacuum gap along the third lattice vector.
    electric_field:
        Perpendicular field (V/Angstrom) along ``a1 x a2``; 2D cells only.
    vacuum_gap:
        Smallest empty slab (Angstrom) along ``a3`` that makes the cell 2D when ``dimension=None``.
    min_distance:
        Atoms closer than this (Angstrom) are refused as overlapping.
    find_inversion:
        Look for inversion with spglib and declare it on the model.
    name:
        Free text stored on the model.

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
    variant = Variant() if variant is None else variant
    lat, frac, symbols = _check_inputs(lattice, frac_coords, atomic_numbers)
    natom = len(symbols)
    gap, c_start = _vacuum_gap(lat, frac)
    if dimension is None:
        dimension = 2 if gap >= vacuum_gap else 3
    if dimension not in (2, 3):
        raise StructureError(f"dimension must be 2 or 3 (or None to detect), got {dimension!r}")
    frac = frac.copy()
    if dimension == 2:  # one contiguous slab along the non-periodic a3
        frac[:, 2] = np.mod(frac[:, 2] - c_start, 1.0) + c_start
    if electric_field is not None and dimension != 2:
        raise StructureError("electric_field needs a 2D cell (dimension=2 or a vacuum gap along a3), got a 3D cell")

    # ---- orbitals: one site per spatial orbital, at its atom's position
    site_atom, site_l, site_names, eps = [], [], [], []
    pad_index = []  # index in the padded (natom * 4) orbital list
    n_electrons = 0
    for a, sym in enumerate(symbols):
        eps_s, eps_p = term_values(sym, variant.term_values)
        n_s, n_p = valence_counts(sym)
        n_electrons += n_s + n_p
        local = (0,) if eps_p is None else (0, 1, 2, 3)
        for mu in local:
            site_atom.append(a)
            site_l.append(0 if mu == 0 else 1)
            site_names.append(f"{sym}{a}_{_ORBITAL_NAMES[mu]}")
            eps.append(eps_s if mu == 0 else eps_p)
            pad_index.append(4 * a + mu)
    nsite = len(site_atom)
    site_atom_arr = np.array(site_atom)
    pad_index_arr = np.array(pad_index)

    # ---- hoppings, scattered into padded (nR, 4 natom, 4 natom) spatial blocks at once
    dim_k = dimension
    bonds = neighbour_list(lat, frac, dim_k, variant.cutoff, min_distance)
    integrals = hopping_integrals(variant, bonds["d"], bonds["d_ref"]) * bonds["weight"][:, None]
    blocks = slater_koster_blocks(bonds["vector"], integrals)  # (nbond, 4, 4)
    r_keys, r_index = np.unique(bonds["R"][:, :dim_k], axis=0, return_inverse=True)
    r_index = np.asarray(r_index).reshape(-1)
    padded = np.zeros((len(r_keys), 4 * natom, 4 * natom))
    rows = 4 * bonds["i"][:, None, None] + np.arange(4)[None, :, None]  # (nbond, 4, 1)
    cols = 4 * bonds["j"][:, None, None] + np.arange(4)[None, None, :]  # (nbond, 1, 4)
    np.add.at(padded, (r_index[:, None, None], rows, cols), blocks)
    spatial = padded[:, pad_index_arr][:, :, pad_index_arr]  # (nR, nsite, nsite)
    spin_eye = np.eye(2)
    hoppings = {tuple(int(x) for x in r): np.kron(t, spin_eye) for r, t in zip(r_keys, spatial)}

    # ---- on-site: term values, spin-orbit, exchange
    onsite = np.kron(np.diag(eps), spin_eye).astype(complex)  # (norb, norb)
    so_used: dict[str, float] = {}
    if variant.spin_orbit:
        for a, sym in enumerate(symbols):
            p_sites = np.nonzero((site_atom_arr == a) & (np.array(site_l) == 1))[0]
            if len(p_sites) == 0:
                continue
            lam = spin_orbit_constant(sym, dict(spin_orbit_constants or {}))
            so_used[sym] = lam
            orb = (2 * p_sites[:, None] + np.arange(2)[None, :]).reshape(-1)  # px up, px down, py up, ...
            onsite[np.ix_(orb, orb)] += spin_orbit_matrix(lam)
    moments = None
    if magnetic_moments is not None:
        moments = np.asarray(magnetic_moments, dtype=float)
        if moments.shape != (natom,) or not np.all(np.isfinite(moments)):
            raise StructureError(
                f"magnetic_moments must be {natom} finite values (Bohr magnetons along z), got {np.shape(moments)}"
            )
        split = -0.5 * float(exchange_per_moment) * moments[site_atom_arr]  # (nsite,) eV
        onsite += np.diag(np.repeat(split, 2) * np.tile([1.0, -1.0], nsite))

    model = TightBindingModel.from_hopping_matrices(
        lat,
        frac[site_atom_arr],
        onsite,
        hoppings,
        dim_k=dim_k,
        spinful=True,
        labels=site_names,
        occupied=n_electrons,
        name=name or "-".join(symbols),
    )
    model.metadata.update(
        {
            "n_electrons": n_electrons,
            "orbital_atom": site_atom_arr.tolist(),
            "orbital_l": list(site_l),
            "orbital_name": site_names,
            "elements": symbols,
            "variant": variant.as_dict(),
            "references": references(variant),
            "dimension": dimension,
            "spin_orbit_constants_eV": so_used,
            "nearest_neighbour_distances_A": bonds["d_nn"].tolist(),
            "n_bonds": int(len(bonds["d"])),
        }
    )
    if moments is not None:
        model.metadata["magnetic_moments_muB"] = moments.tolist()
        model.metadata["exchange_per_moment_eV"] = float(exchange_per_moment)
    if find_inversion:
        from td_physics.structure.symmetry import inversion_operator

        try:
            op = inversion_operator(model, lat, frac, symbols)
        except SymmetryError:
            op = None
            logger.info("the crystal of %r has inversion but the Hamiltonian (moments) breaks it", model.name)
        model.inversion = op
    if electric_field is not None:
        normal = np.cross(lat[0], lat[1])
        model = apply_electric_field(model, float(electric_field) * normal / np.linalg.norm(normal))
    return model
