"""Augmentations of crystal records: pure functions that return new records describing the same crystal.

Every function leaves its input untouched (records are immutable) and keeps ``id``, ``source``,
``properties`` and ``labels``. Random ones take an explicit :class:`numpy.random.Generator`, so a
pipeline is reproducible from one seed. The same crystal means: the same according to pymatgen's
``StructureMatcher`` (origin shift, permutation, rotation, Niggli reduction, primitive cell and
supercell change only the description); :func:`random_strain` changes the crystal by a small
strain, within the matcher's default tolerances for strains of a few percent.

Examples
--------
>>> import numpy as np
>>> rec = CrystalRecord(np.eye(3) * 4.0, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="CsCl")
>>> out = augment(rec, np.random.default_rng(0), ops=("origin_shift", "permute", "rotate"))
>>> out.id, out.formula, bool(np.isclose(out.volume, rec.volume))
('CsCl', 'CsCl', True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord

__all__ = [
    "random_origin_shift",
    "permute_atoms",
    "random_rotation",
    "niggli_reduce",
    "primitive_cell",
    "supercell",
    "random_strain",
    "augment",
    "OPERATIONS",
]

Operation = Callable[[CrystalRecord, np.random.Generator], CrystalRecord]


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TDDataError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def random_origin_shift(record: CrystalRecord, rng: np.random.Generator) -> CrystalRecord:
    """The same crystal with its origin moved by a random vector (reduced coordinates in [0, 1))."""
    shift = _check_rng(rng).uniform(0.0, 1.0, size=3)
    return record.replace(frac_coords=record.frac_coords + shift)


def permute_atoms(record: CrystalRecord, rng: np.random.Generator) -> CrystalRecord:
    """The same crystal with its sites listed in a random order."""
    order = _check_rng(rng).permutation(record.num_atoms)
    magmoms = None if record.magmoms is None else record.magmoms[order]
    return record.replace(
        frac_coords=record.frac_coords[order], atomic_numbers=record.atomic_numbers[order], magmoms=magmoms
    )


def random_rotation(record: CrystalRecord, rng: np.random.Generator) -> CrystalRecord:
    """The same crystal rotated rigidly in Cartesian space (a random proper rotation, uniform on SO(3)).

    Fractional coordinates are unchanged; the lattice rows become ``lattice @ R.T``, and non-collinear
    magnetic moments (Cartesian) turn with the crystal (collinear ones keep their values).
    """
    q, r = np.linalg.qr(_check_rng(rng).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))  # Haar-uniform orthogonal matrix
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    magmoms = record.magmoms
    if magmoms is not None and magmoms.ndim == 2:
        magmoms = magmoms @ q.T  # (N, 3): an axial vector turns like a polar one under a proper rotation
    return record.replace(lattice=record.lattice @ q.T, magmoms=magmoms)


def niggli_reduce(record: CrystalRecord, tol: float = 1e-5) -> CrystalRecord:
    """The same crystal in its Niggli-reduced cell (pymatgen, length tolerance ``tol`` Angstrom)."""
    from pymatgen.core import Lattice

    reduced = Lattice(record.lattice).get_niggli_reduced_lattice(tol=tol)
    frac = reduced.get_fractional_coords(record.cart_coords)
    return record.replace(lattice=reduced.matrix, frac_coords=frac)


def primitive_cell(record: CrystalRecord, symprec: float = 1e-3) -> CrystalRecord:
    """The same crystal in a primitive cell found by spglib (``symprec`` Angstrom), Niggli-reduced.

    Spglib's cell is not idealised (``no_idealize``), so positions keep their small deviations from
    symmetry. Raises :class:`TDDataError` when spglib cannot analyse the cell, and for a record
    with magnetic moments (the magnetic cell can be larger than the chemical primitive cell).
    """
    import spglib

    if record.magmoms is not None:
        raise TDDataError(
            f"primitive_cell needs a record without magnetic moments, got magmoms on record {record.id!r}: "
            "the magnetic cell can be larger than the chemical primitive cell"
        )

    cell = (np.asarray(record.lattice), np.asarray(record.frac_coords), np.asarray(record.atomic_numbers))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+: OLD_ERROR_HANDLING notice
            found = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True, symprec=symprec)
    except Exception:  # spglib >= 2.5 may raise SpglibError instead of returning None
        found = None
    if found is None:
        raise TDDataError(f"spglib found no primitive cell for record {record.id!r} at symprec={symprec}")
    lattice, frac, numbers = found
    return niggli_reduce(record.replace(lattice=lattice, frac_coords=frac, atomic_numbers=numbers))


def supercell(record: CrystalRecord, scaling: Sequence[int] | np.ndarray) -> CrystalRecord:
    """The same crystal in a supercell: ``(n1, n2, n3)`` repeats, or a (3, 3) integer matrix S.

    The new lattice is ``S @ lattice`` (rows are lattice vectors); sites are listed image by
    image, and the fractional coordinates are re-expressed in the new cell.
    """
    mat = np.asarray(scaling)
    if mat.shape == (3,):
        mat = np.diag(mat)
    if mat.shape != (3, 3) or not np.all(np.equal(np.mod(mat, 1), 0)):
        raise TDDataError(f"scaling must be three integers or a (3, 3) integer matrix, got {scaling!r}")
    mat = mat.astype(int)
    det = int(round(np.linalg.det(mat)))
    if det < 1:
        raise TDDataError(f"scaling must have a positive determinant (keep handedness), got {det}")
    # Integer translations inside the supercell: corners of S span a box that contains them all.
    corners = np.array(np.meshgrid(*[[0, 1]] * 3, indexing="ij")).reshape(3, -1).T @ mat  # (8, 3)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    grid = np.array(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij")).reshape(3, -1).T
    inside = grid @ np.linalg.inv(mat)  # (M, 3) translations in supercell reduced coordinates
    keep = np.all((inside > -1e-8) & (inside < 1 - 1e-8), axis=1)
    shifts = grid[keep]  # (det, 3) in old reduced coordinates
    if len(shifts) != det:  # pragma: no cover - guards the geometry above
        raise TDDataError(f"supercell found {len(shifts)} translations, expected {det}")
    frac = (record.frac_coords[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ np.linalg.inv(mat)  # (det*N, 3)
    numbers = np.tile(record.atomic_numbers, det)
    magmoms = None if record.magmoms is None else np.tile(record.magmoms, (det,) + (1,) * (record.magmoms.ndim - 1))
    return record.replace(lattice=mat @ record.lattice, frac_coords=frac, atomic_numbers=numbers, magmoms=magmoms)


def random_strain(record: CrystalRecord, rng: np.random.Generator, max_strain: float = 0.02) -> CrystalRecord:
    """The crystal under a random symmetric strain whose principal strains are at most ``max_strain``.

    Lattice rows become ``lattice @ (I + eps)``; fractional coordinates are unchanged.
    """
    if not 0.0 <= max_strain < 0.5:
        raise TDDataError(f"max_strain must be between 0 and 0.5, got {max_strain}")
    raw = _check_rng(rng).uniform(-1.0, 1.0, size=(3, 3))
    raw = 0.5 * (raw + raw.T)
    largest = float(np.abs(np.linalg.eigvalsh(raw)).max())
    eps = raw * (max_strain * rng.uniform() / largest) if largest > 0 else np.zeros((3, 3))
    return record.replace(lattice=record.lattice @ (np.eye(3) + eps))


OPERATIONS: dict[str, Operation] = {
    "origin_shift": random_origin_shift,
    "permute": permute_atoms,
    "rotate": random_rotation,
    "niggli": lambda record, rng: niggli_reduce(record),
    "primitive": lambda record, rng: primitive_cell(record),
    "strain": random_strain,
}


def augment(
    record: CrystalRecord,
    rng: np.random.Generator,
    ops: Sequence[str | Operation] = ("origin_shift", "permute"),
) -> CrystalRecord:
    """Apply ``ops`` in order: names from :data:`OPERATIONS` or callables ``(record, rng) -> record``."""
    _check_rng(rng)
    out = record
    for op in ops:
        if isinstance(op, str):
            if op not in OPERATIONS:
                raise TDDataError(f"unknown augmentation {op!r}: choose from {sorted(OPERATIONS)} or pass a callable")
            op = OPERATIONS[op]
        out = op(out, rng)
    return out
