"""The crystal record: the data contract between readers, filters, labellers, models and metrics.

A record is immutable: its arrays are read-only copies, and ``with_labels`` / ``with_properties``
return new records, so a pipeline node can never change its input by accident.

Conventions: ``lattice`` (3, 3) in Angstrom with lattice vectors as rows; ``frac_coords`` (N, 3)
wrapped into [0, 1); ``atomic_numbers`` (N,) integers 1..118; ``properties`` numeric (band gap
in eV, formation energy in eV/atom, ...); ``labels`` JSON values (topological class, Z2 indices,
Chern number, confidence, label source); ``magmoms`` optional magnetic moments in Bohr magnetons,
one per site: (N,) collinear or (N, 3) non-collinear (Cartesian, pymatgen's convention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from td_data.exceptions import RecordValidationError
from td_physics.jsonable import to_jsonable

__all__ = ["CrystalRecord", "ELEMENTS", "symbol", "atomic_number", "ATOMIC_MASSES"]

# fmt: off
ELEMENTS = (
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K",
    "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr",
    "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La",
    "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os",
    "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am",
    "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl",
    "Mc", "Lv", "Ts", "Og",
)
# Standard atomic weights (IUPAC 2021, abridged), g/mol; mass numbers of the most stable isotope for
# elements without a standard weight.
ATOMIC_MASSES = np.array([
    0.0, 1.008, 4.0026, 6.94, 9.0122, 10.81, 12.011, 14.007, 15.999, 18.998, 20.180, 22.990, 24.305, 26.982,
    28.085, 30.974, 32.06, 35.45, 39.95, 39.098, 40.078, 44.956, 47.867, 50.942, 51.996, 54.938, 55.845, 58.933,
    58.693, 63.546, 65.38, 69.723, 72.630, 74.922, 78.971, 79.904, 83.798, 85.468, 87.62, 88.906, 91.224, 92.906,
    95.95, 97.0, 101.07, 102.91, 106.42, 107.87, 112.41, 114.82, 118.71, 121.76, 127.60, 126.90, 131.29, 132.91,
    137.33, 138.91, 140.12, 140.91, 144.24, 145.0, 150.36, 151.96, 157.25, 158.93, 162.50, 164.93, 167.26, 168.93,
    173.05, 174.97, 178.49, 180.95, 183.84, 186.21, 190.23, 192.22, 195.08, 196.97, 200.59, 204.38, 207.2, 208.98,
    209.0, 210.0, 222.0, 223.0, 226.0, 227.0, 232.04, 231.04, 238.03, 237.0, 244.0, 243.0, 247.0, 247.0, 251.0,
    252.0, 257.0, 258.0, 259.0, 262.0, 267.0, 268.0, 269.0, 270.0, 269.0, 277.0, 278.0, 281.0, 282.0, 285.0,
    286.0, 289.0, 290.0, 293.0, 294.0, 294.0,
])
# fmt: on
_SYMBOL_TO_Z = {s: z for z, s in enumerate(ELEMENTS) if z > 0}
AVOGADRO = 6.02214076e23


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z`` (1..118)."""
    if not 1 <= int(z) <= 118:
        raise RecordValidationError(f"atomic numbers must be between 1 and 118, got {z}")
    return ELEMENTS[int(z)]


def atomic_number(sym: str) -> int:
    """Atomic number of an element symbol (case-sensitive, as in 'Fe')."""
    try:
        return _SYMBOL_TO_Z[str(sym).strip()]
    except KeyError:
        raise RecordValidationError(f"unknown element symbol {sym!r}") from None


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class CrystalRecord:
    """One periodic crystal with its properties and labels.

    Parameters
    ----------
    lattice:
        (3, 3) lattice vectors as rows, Angstrom.
    frac_coords:
        (N, 3) fractional coordinates; wrapped into [0, 1) on construction.
    atomic_numbers:
        (N,) integers 1..118 (element symbols are accepted too).
    properties:
        Numeric properties, for example ``{"band_gap": 0.3, "formation_energy": -1.2}`` (eV, eV/atom).
    labels:
        JSON values, for example ``{"topo_class": "z2_ti", "z2_indices": [1, 0, 0, 0]}``.
    id, source:
        An identifier (unique within a data set) and where the record came from.
    magmoms:
        Optional magnetic moments (Bohr magnetons), one per site: shape (N,) for collinear moments or
        (N, 3) for non-collinear ones (Cartesian components, pymatgen's ``Magmom`` convention).
        ``None`` (the default) means the input gave none. Site operations that reorder, rotate or
        repeat sites carry them along.

    Examples
    --------
    >>> cell = [[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]]
    >>> rec = CrystalRecord(cell, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="CsCl")
    >>> rec.num_atoms, rec.formula, round(rec.volume, 3)
    (2, 'CsCl', 64.0)
    >>> rec.with_properties(band_gap=5.0).properties["band_gap"]
    5.0
    """

    lattice: np.ndarray
    frac_coords: np.ndarray
    atomic_numbers: np.ndarray
    properties: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    source: str = ""
    magmoms: np.ndarray | None = None

    def __post_init__(self) -> None:
        lat = np.array(self.lattice, dtype=float)
        if lat.shape != (3, 3):
            raise RecordValidationError(f"lattice must have shape (3, 3) (rows are vectors), got {lat.shape}")
        if not np.all(np.isfinite(lat)):
            raise RecordValidationError("lattice must contain finite numbers, got NaN or infinity")
        volume = abs(float(np.linalg.det(lat)))
        if not volume > 1e-6:
            raise RecordValidationError(f"cell volume must be positive, got {volume:.3g} Angstrom^3")
        numbers = self._numbers(self.atomic_numbers)
        coords = np.array(self.frac_coords, dtype=float)
        if coords.ndim == 1 and coords.size == 3:
            coords = coords[None, :]
        if coords.ndim != 2 or coords.shape[1] != 3 or coords.shape[0] == 0:
            raise RecordValidationError(f"frac_coords must have shape (N, 3) with N >= 1, got {coords.shape}")
        if not np.all(np.isfinite(coords)):
            raise RecordValidationError("frac_coords must contain finite numbers, got NaN or infinity")
        if len(numbers) != len(coords):
            raise RecordValidationError(
                f"atomic_numbers and frac_coords must have the same length, got {len(numbers)} and {len(coords)}"
            )
        coords = np.mod(coords, 1.0)
        coords[coords >= 1.0] = 0.0  # np.mod can round -1e-17 up to exactly 1.0
        props = {}
        for key, value in dict(self.properties).items():
            if not isinstance(key, str):
                raise RecordValidationError(f"property names must be strings, got {key!r}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise RecordValidationError(f"property {key!r} must be a number, got {value!r}") from None
            if not math.isfinite(number):
                raise RecordValidationError(f"property {key!r} must be finite, got {value!r}")
            props[key] = number
        labels = to_jsonable(dict(self.labels), where="labels", error=RecordValidationError)
        magmoms = self._magmoms(self.magmoms, len(numbers))
        object.__setattr__(self, "lattice", _readonly(lat))
        object.__setattr__(self, "frac_coords", _readonly(coords))
        object.__setattr__(self, "atomic_numbers", _readonly(numbers))
        object.__setattr__(self, "properties", MappingProxyType(props))
        object.__setattr__(self, "labels", MappingProxyType(labels))
        object.__setattr__(self, "id", str(self.id))
        object.__setattr__(self, "source", str(self.source))
        object.__setattr__(self, "magmoms", magmoms)

    @staticmethod
    def _magmoms(values: Any, n: int) -> np.ndarray | None:
        """Magnetic moments as a read-only float64 (n,) or (n, 3) array, or None."""
        if values is None:
            return None
        try:
            arr = np.array(values, dtype=float)
        except (TypeError, ValueError):
            raise RecordValidationError(
                f"magmoms must be numbers, one per site ((N,) or (N, 3) Bohr magnetons), got {values!r}"[:300]
            ) from None
        if arr.shape not in ((n,), (n, 3)):
            raise RecordValidationError(
                f"magmoms must have shape ({n},) (collinear) or ({n}, 3) (non-collinear) for {n} sites, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise RecordValidationError("magmoms must contain finite numbers, got NaN or infinity")
        return _readonly(arr)

    @classmethod
    def _from_checked(
        cls,
        lattice: np.ndarray,
        frac_coords: np.ndarray,
        atomic_numbers: np.ndarray,
        properties: dict[str, float],
        labels: dict[str, Any],
        id: str,
        source: str,
        magmoms: np.ndarray | None = None,
    ) -> CrystalRecord:
        """Internal: a record from data that was already validated in bulk, without re-checking.

        For readers that check whole blocks at once (the HDF5 store loads 100k records this way):
        the arrays must be read-only float64 / int64 of the right shapes, coordinates in [0, 1),
        properties finite floats and labels JSON values. Never use it for user input.
        """
        rec = object.__new__(cls)
        for name, value in (
            ("lattice", lattice),
            ("frac_coords", frac_coords),
            ("atomic_numbers", atomic_numbers),
            ("properties", MappingProxyType(properties)),
            ("labels", MappingProxyType(labels)),
            ("id", id),
            ("source", source),
            ("magmoms", magmoms),
        ):
            object.__setattr__(rec, name, value)
        return rec

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle support (multiprocessing, DataLoader workers): rebuilt through the validating constructor."""
        return (
            CrystalRecord,
            (
                np.array(self.lattice),
                np.array(self.frac_coords),
                np.array(self.atomic_numbers),
                dict(self.properties),
                dict(self.labels),
                self.id,
                self.source,
                None if self.magmoms is None else np.array(self.magmoms),
            ),
        )

    @staticmethod
    def _numbers(values: Any) -> np.ndarray:
        raw = list(np.atleast_1d(np.asarray(values, dtype=object)))
        out = np.empty(len(raw), dtype=np.int64)
        for i, v in enumerate(raw):
            if isinstance(v, str):
                out[i] = atomic_number(v)
                continue
            try:
                z = float(v)
            except (TypeError, ValueError):
                raise RecordValidationError(f"atomic numbers must be integers 1..118 or symbols, got {v!r}") from None
            if not z.is_integer() or not 1 <= z <= 118:
                raise RecordValidationError(f"atomic numbers must be integers between 1 and 118, got {v!r}")
            out[i] = int(z)
        return out

    # ------------------------------------------------------------------ derived quantities
    @property
    def num_atoms(self) -> int:
        return int(len(self.atomic_numbers))

    @property
    def volume(self) -> float:
        """Cell volume, Angstrom^3."""
        return abs(float(np.linalg.det(self.lattice)))

    @property
    def density(self) -> float:
        """Mass density, g/cm^3."""
        mass = float(ATOMIC_MASSES[self.atomic_numbers].sum())
        return mass / AVOGADRO / (self.volume * 1e-24)

    @property
    def cart_coords(self) -> np.ndarray:
        """(N, 3) Cartesian positions, Angstrom."""
        return self.frac_coords @ self.lattice

    @property
    def species(self) -> list[str]:
        return [ELEMENTS[z] for z in self.atomic_numbers]

    @property
    def composition(self) -> dict[str, int]:
        """Element counts of the cell, for example {'Cs': 1, 'Cl': 1}."""
        zs, counts = np.unique(self.atomic_numbers, return_counts=True)
        return {ELEMENTS[z]: int(c) for z, c in zip(zs, counts)}

    @property
    def formula(self) -> str:
        """Reduced formula in pymatgen's element order (electronegativity), e.g. 'SrTiO3'."""
        from pymatgen.core import Composition

        return Composition(self.composition).reduced_formula

    @property
    def lattice_parameters(self) -> tuple[float, float, float, float, float, float]:
        """a, b, c (Angstrom) and alpha, beta, gamma (degrees)."""
        a, b, c = np.linalg.norm(self.lattice, axis=1)
        v1, v2, v3 = self.lattice

        def angle(x: np.ndarray, y: np.ndarray) -> float:
            return float(np.degrees(np.arccos(np.clip(x @ y / np.linalg.norm(x) / np.linalg.norm(y), -1, 1))))

        return float(a), float(b), float(c), angle(v2, v3), angle(v1, v3), angle(v1, v2)

    # ------------------------------------------------------------------ copies
    def with_properties(self, **values: float) -> CrystalRecord:
        """A new record with ``values`` added to (or replacing) the properties."""
        return self.replace(properties={**self.properties, **values})

    def with_labels(self, **values: Any) -> CrystalRecord:
        """A new record with ``values`` added to (or replacing) the labels."""
        return self.replace(labels={**self.labels, **values})

    def replace(self, **changes: Any) -> CrystalRecord:
        """A new record with some fields changed (validated again)."""
        fields = {
            "lattice": self.lattice,
            "frac_coords": self.frac_coords,
            "atomic_numbers": self.atomic_numbers,
            "properties": dict(self.properties),
            "labels": dict(self.labels),
            "id": self.id,
            "source": self.source,
            "magmoms": self.magmoms,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown CrystalRecord fields {sorted(unknown)}")
        fields.update(changes)
        return CrystalRecord(**fields)

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``format: td-data.crystal-record``, version 1)."""
        return {
            "format": "td-data.crystal-record",
            "version": 1,
            "id": self.id,
            "source": self.source,
            "lattice": self.lattice.tolist(),
            "frac_coords": self.frac_coords.tolist(),
            "atomic_numbers": self.atomic_numbers.tolist(),
            "properties": dict(self.properties),
            "labels": to_jsonable(dict(self.labels), where="labels", error=RecordValidationError),
            **({} if self.magmoms is None else {"magmoms": self.magmoms.tolist()}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CrystalRecord:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != "td-data.crystal-record":
            raise RecordValidationError(f"expected format 'td-data.crystal-record', got {d.get('format')!r}")
        if d.get("version") != 1:
            raise RecordValidationError(f"crystal-record version 1 is supported, got {d.get('version')!r}")
        try:
            return cls(
                d["lattice"],
                d["frac_coords"],
                d["atomic_numbers"],
                d.get("properties", {}),
                d.get("labels", {}),
                d.get("id", ""),
                d.get("source", ""),
                d.get("magmoms"),
            )
        except KeyError as err:
            raise RecordValidationError(f"crystal-record dict is missing the key {err}") from None

    @classmethod
    def from_structure(
        cls, structure: Any, *, properties=None, labels=None, id: str = "", source: str = ""
    ) -> CrystalRecord:
        """From a :class:`pymatgen.core.Structure` (ordered: every site one element).

        A ``magmom`` site property (numbers, 3-vectors or pymatgen ``Magmom`` objects) becomes
        ``magmoms``: (N,) when every value is a number, else (N, 3) Cartesian moments.
        """
        if not structure.is_ordered:
            raise RecordValidationError(
                "partially occupied (disordered) structures are not supported: order them first, "
                f"got composition {structure.composition}"
            )
        numbers = [site.specie.Z for site in structure]
        magmoms = _structure_magmoms(structure)
        lattice, frac = structure.lattice.matrix, structure.frac_coords
        return cls(lattice, frac, numbers, properties or {}, labels or {}, id, source, magmoms)

    def to_structure(self) -> Any:
        """A :class:`pymatgen.core.Structure` with the same cell and sites."""
        from pymatgen.core import Lattice, Structure

        site_properties = None if self.magmoms is None else {"magmom": self.magmoms.tolist()}
        return Structure(
            Lattice(self.lattice), self.atomic_numbers.tolist(), self.frac_coords, site_properties=site_properties
        )

    @classmethod
    def from_atoms(cls, atoms: Any, *, properties=None, labels=None, id: str = "", source: str = "") -> CrystalRecord:
        """From an :class:`ase.Atoms` with a full 3D cell; its initial magnetic moments, if set, become ``magmoms``."""
        magmoms = atoms.get_initial_magnetic_moments() if atoms.has("initial_magmoms") else None
        return cls(
            np.asarray(atoms.cell),
            atoms.get_scaled_positions(wrap=True),
            atoms.get_atomic_numbers(),
            properties or {},
            labels or {},
            id,
            source,
            magmoms,
        )

    def to_atoms(self) -> Any:
        """An :class:`ase.Atoms` (periodic in all three directions, ``magmoms`` as initial moments); needs ``ase``."""
        try:
            from ase import Atoms
        except ImportError as err:
            raise ImportError("to_atoms needs ASE: pip install 'td-data[ase]'") from err
        return Atoms(
            numbers=self.atomic_numbers,
            scaled_positions=self.frac_coords,
            cell=self.lattice,
            pbc=True,
            magmoms=None if self.magmoms is None else np.array(self.magmoms),
        )

    def __repr__(self) -> str:
        cell = "".join(f"{k}{v}" for k, v in self.composition.items())
        return f"CrystalRecord(id={self.id!r}, cell={cell}, n={self.num_atoms})"


def _structure_magmoms(structure: Any) -> np.ndarray | None:
    """The ``magmom`` site property of a pymatgen Structure as (N,) or (N, 3) floats, or None."""
    values = structure.site_properties.get("magmom")
    if values is None:
        return None
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float)
    out = np.empty((len(values), 3))
    for i, v in enumerate(values):
        if hasattr(v, "global_moment"):  # pymatgen Magmom: its moment in the global Cartesian frame
            out[i] = np.asarray(v.global_moment, dtype=float)
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = (0.0, 0.0, float(v))  # a collinear moment among vectors: along z, pymatgen's default axis
        else:
            try:
                out[i] = np.asarray(v, dtype=float).reshape(3)
            except (TypeError, ValueError):
                raise RecordValidationError(
                    f"site property magmom must be a number or a 3-vector per site, got {v!r} at site {i}"
                ) from None
    return out
