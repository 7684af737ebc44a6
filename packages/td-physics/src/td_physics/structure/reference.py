"""Crystal structures of materials whose band topology is established, with the expected label.

The table ``td_physics/data/reference_materials.json`` lists each material's prototype, lattice
parameters, the label the literature gives it (``z2_ti``, ``trivial`` or ``semimetal_or_metal``)
and the references for both. :func:`reference_structure` builds the primitive cell; it is what the
labeller's accuracy is measured on (``scripts/labeller_accuracy.py``, ``docs/labeller_accuracy.md``).

>>> import numpy as np
>>> from td_physics.structure.reference import reference_materials, reference_structure
>>> reference_materials()["Bi2Se3"].expected
'z2_ti'
>>> lattice, frac, species = reference_structure("GaAs")
>>> species
['Ga', 'As']
>>> round(float(abs(np.linalg.det(lattice))), 2)  # a^3 / 4 for the fcc primitive cell
45.16
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from td_physics.exceptions import StructureError
from td_physics.structure.parameters import load_table

__all__ = [
    "ReferenceMaterial",
    "reference_arrays",
    "reference_materials",
    "reference_structure",
    "strained",
    "supercell",
]

_FCC = 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
_BCC = 0.5 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
# rows: rhombohedral primitive vectors in units of the hexagonal (a1, a2, c) vectors (obverse setting)
_RHOMBO_FROM_HEX = np.array([[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]])


@dataclass(frozen=True)
class ReferenceMaterial:
    """One row of the reference table."""

    name: str
    prototype: str
    expected: str
    expected_source: tuple[str, ...]
    structure_source: tuple[str, ...]
    parameters: dict[str, Any]

    def citations(self) -> list[str]:
        """Full references for the structure and the expected label."""
        refs = load_table("reference_materials")["references"]
        keys = dict.fromkeys(self.structure_source + self.expected_source)
        return [refs[k] for k in keys]


def reference_materials() -> dict[str, ReferenceMaterial]:
    """All reference materials by name, in table order."""
    table = load_table("reference_materials")["materials"]
    out = {}
    for name, row in table.items():
        params = {
            k: v for k, v in row.items() if k not in ("prototype", "expected", "expected_source", "structure_source")
        }
        out[name] = ReferenceMaterial(
            name=name,
            prototype=row["prototype"],
            expected=row["expected"],
            expected_source=tuple(row["expected_source"]),
            structure_source=tuple(row["structure_source"]),
            parameters=params,
        )
    return out


def _hexagonal(a: float, c: float) -> np.ndarray:
    return np.array([[a, 0.0, 0.0], [-a / 2, a * np.sqrt(3) / 2, 0.0], [0.0, 0.0, c]])


def reference_structure(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(lattice rows in Angstrom, reduced coordinates, species)`` of a reference material's primitive cell."""
    materials = reference_materials()
    if name not in materials:
        raise StructureError(f"no reference material named {name!r}; known: {', '.join(materials)}")
    m = materials[name]
    p = m.parameters
    species = list(p["species"])
    a = float(p["a"])
    if m.prototype in ("diamond", "zincblende"):
        pair = species * 2 if len(species) == 1 else species
        return a * _FCC, np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]), pair
    if m.prototype == "rocksalt":
        return a * _FCC, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), species
    if m.prototype == "fcc":
        return a * _FCC, np.zeros((1, 3)), species
    if m.prototype == "bcc":
        return a * _BCC, np.zeros((1, 3)), species
    if m.prototype == "tetradymite":  # C33, R-3m: X1 at 1a, M at 2c (+-u), X2 at 2c (+-v)
        metal, chalcogen = species
        lattice = _RHOMBO_FROM_HEX @ _hexagonal(a, float(p["c"]))
        u, v = float(p["u"]), float(p["v"])
        frac = np.array([[u] * 3, [-u] * 3, [0.0] * 3, [v] * 3, [-v] * 3]) % 1.0
        return lattice, frac, [metal, metal, chalcogen, chalcogen, chalcogen]
    if m.prototype == "A7":  # R-3m, two atoms at 2c (+-x)
        lattice = _RHOMBO_FROM_HEX @ _hexagonal(a, float(p["c"]))
        x = float(p["x"])
        return lattice, np.array([[x] * 3, [-x] * 3]) % 1.0, species * 2
    if m.prototype == "honeycomb":  # a flat sheet in the ab plane with a vacuum gap along c
        lattice = _hexagonal(a, float(p["vacuum"]))
        return lattice, np.array([[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]), species * 2
    raise StructureError(f"reference material {name!r} has an unknown prototype {m.prototype!r}")


def strained(lattice: np.ndarray, strain: float) -> np.ndarray:
    """The lattice scaled isotropically by ``1 + strain`` (reduced coordinates unchanged)."""
    return np.asarray(lattice, dtype=float) * (1.0 + float(strain))


def supercell(
    lattice: np.ndarray, frac_coords: np.ndarray, species: list, reps: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, list]:
    """The ``reps[0] x reps[1] x reps[2]`` supercell: lattice rows scaled, atoms repeated cell by cell."""
    reps_arr = np.asarray(reps, dtype=int)
    if reps_arr.shape != (3,) or np.any(reps_arr < 1):
        raise StructureError(f"supercell repetitions must be three positive integers, got {reps!r}")
    shifts = np.stack(np.meshgrid(*[np.arange(n) for n in reps_arr], indexing="ij"), -1).reshape(-1, 3)
    frac = np.asarray(frac_coords, dtype=float)
    new_frac = ((frac[None, :, :] + shifts[:, None, :]) / reps_arr).reshape(-1, 3)
    return np.asarray(lattice, dtype=float) * reps_arr[:, None], new_frac, list(species) * len(shifts)


def reference_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lattice, frac_coords, atomic_numbers)`` of a reference material: the arrays ``td_physics.dft`` takes.

    >>> lattice, frac, numbers = reference_arrays("GaAs")
    >>> numbers.tolist()
    [31, 33]
    """
    from td_physics.structure.parameters import _KNOWN_SYMBOLS

    lattice, frac, species = reference_structure(name)
    return lattice, frac, np.array([_KNOWN_SYMBOLS.index(s) + 1 for s in species])
