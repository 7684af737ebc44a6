"""Limits that every crystal read from a file must meet: no atoms on top of each other, no collapsed cell.

:func:`~td_data.readers.load_materials_database` quarantines a record that breaks one of them, with
the rule and the value in the reason. The defaults keep every real crystal and refuse what no
experiment or relaxation gives:

* ``min_distance = 0.5`` Angstrom between two atoms, periodic images included (CDVAE's structural
  validity threshold). The shortest bond in a real solid is H-H in solid hydrogen, 0.74 A; the
  shortest distances in the Perov-5, Carbon-24 and MP-20 benchmark files are 1.31, 1.19 and 0.97 A.
* ``min_volume_per_atom = 1.0`` Angstrom^3. Diamond has 5.7, the smallest value in those benchmark
  files is 5.4 (Carbon-24); even metal hydrides at megabar pressures stay above 2.
* ``max_atoms = 1000`` sites per cell, checked on a CIF before pymatgen parses it (its site
  matching grows with the square of the number of sites, so a huge cell would take minutes to hours).

``None`` turns a limit off.

Examples
--------
>>> import numpy as np
>>> from td_data.record import CrystalRecord
>>> crushed = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.01, 0, 0]], ["Na", "Cl"])
>>> print(Plausibility().problem(crushed))
atoms 0 and 1 are 0.04 A apart, below min_distance 0.5 A
>>> Plausibility().problem(crushed.replace(frac_coords=[[0, 0, 0], [0.5, 0.5, 0.5]])) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord

__all__ = ["Plausibility", "closest_pair", "DEFAULT_MIN_DISTANCE", "DEFAULT_MIN_VOLUME_PER_ATOM", "DEFAULT_MAX_ATOMS"]

DEFAULT_MIN_DISTANCE = 0.5  # Angstrom; CDVAE's threshold, below the 0.74 A of H2
DEFAULT_MIN_VOLUME_PER_ATOM = 1.0  # Angstrom^3; diamond has 5.7
DEFAULT_MAX_ATOMS = 1000  # sites per cell

_BLOCK = 1 << 21  # distances computed per chunk: about 50 MB of float64 temporaries
_NEIGHBOURS = np.array(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij")).reshape(3, -1).T  # (27, 3)
_MAX_IMAGES = 4096  # more neighbouring cells than this: LLL-reduce the cell first


def _image_range(lattice: np.ndarray, bound: float) -> np.ndarray:
    """Half-widths m (3,) of the image box that holds every pair closer than ``bound`` Angstrom.

    For two sites with fractional difference in (-1, 1), an image n at Cartesian distance <= bound
    has |n_i| <= ceil(bound |b_i|), where b_i are the rows of inv(lattice).T (reciprocal vectors
    without 2 pi). Any distance actually found is a valid bound, and so is the shortest lattice vector.
    """
    reciprocal = np.linalg.norm(np.linalg.inv(lattice), axis=0)  # |b_i|
    return np.ceil(bound * reciprocal - 1e-9).astype(np.int64)


def closest_pair(lattice: np.ndarray, frac_coords: np.ndarray) -> tuple[float, int, int]:
    """The shortest distance (Angstrom) between two sites or a site and its own periodic image.

    Returns ``(distance, i, j)`` with ``i <= j`` (``i == j``: a site and its image). Exact for any
    cell: the 27 neighbouring cells give a first distance, then every image that could be closer
    is checked too (none more for most cells; very skewed cells are LLL-reduced first). Array
    operations run in chunks of rows, so memory stays bounded for large cells.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _closest_pair(np.asarray(lattice, dtype=float), np.asarray(frac_coords, dtype=float))


def _closest_pair(lattice: np.ndarray, frac: np.ndarray) -> tuple[float, int, int]:
    # first the 27 neighbouring cells: the distance found bounds the answer, and usually needs no more images
    first = _search(lattice, frac, np.ones(3, dtype=np.int64))
    m = _image_range(lattice, min(first[0], float(np.linalg.norm(lattice, axis=1).min())))
    if np.all(m <= 1):
        return first
    if np.prod(2 * m + 1) > _MAX_IMAGES:
        from pymatgen.core import Lattice

        try:
            reduced = np.asarray(Lattice(lattice).get_lll_reduced_lattice().matrix)
            frac = np.mod((frac @ lattice) @ np.linalg.inv(reduced), 1.0)  # (N, 3)
            lattice = reduced
            m = _image_range(lattice, min(first[0], float(np.linalg.norm(lattice, axis=1).min())))
        except (ValueError, ArithmeticError):  # numbers too large to reduce
            pass
        m = np.minimum(m, 7)  # a cell this degenerate is refused by its volume per atom anyway
    return min(first, _search(lattice, frac, m))


def _search(lattice: np.ndarray, frac: np.ndarray, m: np.ndarray) -> tuple[float, int, int]:
    """The closest pair among the images n with |n_i| <= m_i."""
    n = len(frac)
    if np.all(m == 1):
        grid = _NEIGHBOURS
    else:
        grid = np.array(np.meshgrid(*[np.arange(-k, k + 1) for k in m], indexing="ij")).reshape(3, -1).T  # (K, 3)
    zero = int(np.flatnonzero(~grid.any(axis=1))[0])
    shifts = grid @ lattice  # (K, 3) Cartesian image offsets
    cart = frac @ lattice  # (N, 3)
    k = len(grid)
    rows = max(1, _BLOCK // (k * n))
    best = (np.inf, 0, 0)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        diff = cart[None, :, None, :] - cart[lo:hi, None, None, :] + shifts[None, None, :, :]  # (b, N, K, 3)
        d2 = np.einsum("bnkx,bnkx->bnk", diff, diff)
        local = np.arange(hi - lo)
        d2[local, lo + local, zero] = np.inf  # a site and itself in the same cell
        flat = int(np.argmin(d2))
        if d2.flat[flat] < best[0] ** 2:
            b, j, _ = np.unravel_index(flat, d2.shape)
            best = (float(np.sqrt(d2.flat[flat])), lo + int(b), int(j))
    d, i, j = best
    return d, min(i, j), max(i, j)


@dataclass(frozen=True)
class Plausibility:
    """Physical limits for crystals read from files (see the module docstring for the defaults).

    :meth:`problem` returns ``None`` for a plausible record, else the first broken rule with its value.
    """

    min_distance: float | None = DEFAULT_MIN_DISTANCE  # Angstrom between two atoms, periodic images included
    min_volume_per_atom: float | None = DEFAULT_MIN_VOLUME_PER_ATOM  # Angstrom^3 per site
    max_atoms: int | None = DEFAULT_MAX_ATOMS  # sites per cell

    def __post_init__(self) -> None:
        for name in ("min_distance", "min_volume_per_atom"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not float(value) >= 0):
                raise TDDataError(f"{name} must be a non-negative number or None, got {value!r}")
        m = self.max_atoms
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
            raise TDDataError(f"max_atoms must be a positive integer or None, got {m!r}")

    def problem(self, record: CrystalRecord) -> str | None:
        """The reason ``record`` is implausible (rule and value), or ``None``."""
        found = self.violation(record)
        return None if found is None else found[1]

    def violation(self, record: CrystalRecord) -> tuple[str, str] | None:
        """``(rule, reason)`` for the first limit ``record`` breaks (``max_atoms``, ``min_volume_per_atom``,
        ``min_distance``, cheapest first), or ``None``."""
        n = record.num_atoms
        if self.max_atoms is not None and n > self.max_atoms:
            return "max_atoms", f"{n} atoms in the cell, more than max_atoms {self.max_atoms}"
        if self.min_volume_per_atom is not None:
            per_atom = record.volume / n
            if per_atom < self.min_volume_per_atom:
                return "min_volume_per_atom", (
                    f"cell volume {record.volume:.3g} A^3 for {n} atoms is {per_atom:.3g} A^3 per atom, "
                    f"below min_volume_per_atom {self.min_volume_per_atom} A^3"
                )
        if self.min_distance is not None:
            d, i, j = closest_pair(record.lattice, record.frac_coords)
            if d < self.min_distance:
                who = f"atom {i} and its own periodic image are" if i == j else f"atoms {i} and {j} are"
                return "min_distance", f"{who} {d:.3g} A apart, below min_distance {self.min_distance} A"
        return None
