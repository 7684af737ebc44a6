"""Topological families: literature parent compounds and their chemically guided substitutions.

The table ``td_data/data/topological_families.json`` describes the parent of each family that s/p
chemistry reaches (tetradymite Bi2Se3, TlBiSe2, A7 Bi, zincblende HgTe in its own cell and with
CuPt-type layer order along [111], rock-salt SnTe, Na3Bi,
KHgSb, the anti-perovskite Ca3PbO, the half-Heusler MgAgAs, the halide perovskite CsPbI3, the
low-buckled honeycomb sheet stanene and an AA-stacked bilayer of it, the Bi(111) bilayer, diamond
alpha-Sn, the chalcopyrite CuInSe2, CaAgAs, the septuple-layer GeBi2Te4 and BiTeI; and, as trivial or
semimetallic references in other space groups, planar honeycomb h-BN, trigonal Te, InBi, SnSe, wurtzite ZnO,
black phosphorus and Bi2O2Se) crystallographically: space group, Wyckoff sites with their coordinates,
lattice parameters (those of the space group's crystal system), with the references for the
structure and for the parent's class (:meth:`TopologicalFamily.citations`,
:func:`family_citations`). :func:`family_prototype` builds the parent's primitive cell.

:func:`expand_families` substitutes the parents' sites:

* **Slots**: each site label of the table (a Wyckoff orbit, or several orbits that share a label) is
  substituted as one. Some families split one orbit of the parent into two labels, so that the
  substitution can order it: the two atoms of A7 (GeTe type), the two sublattices of the honeycomb
  sheets, the two chalcogen sites of the tetradymites (Bi2Te2Se type).
* **Substitutes**: Hautier's data-mined substitution probabilities with a charge-balanced seed
  (:class:`td_data.substitution.Substituter`), then three checks: the crystal passes
  :func:`td_data.validity.composition_validity` (SMACT charge neutrality and the Pauling test); on
  every slot the DLS bond radius of the new element is within ``max_radius_ratio`` of the parent's
  (a radius-ratio sanity check: no oxygen on a tellurium site); and the scaled cell passes
  :func:`td_data.validity.structure_validity`.
* **Volume**: the DLS rule (:func:`td_data.substitution.dls_length_scale`) scales the parent's
  cell isotropically; in a 2D family the in-plane lattice and the heights scale, the vacuum stays.
  The cell is a starting point for a relaxation, not a prediction of the crystal's geometry.
* **Distinct**: a crystal is kept if no earlier crystal of its family has the same composition and
  the same structure (pymatgen's ``StructureMatcher``), and if its primitive cell is the family's
  cell (an ordering that orders nothing, such as TlBiSe2 with Bi on the Tl site, is another family's
  crystal); the parent comes first.
* **Deterministic**: each family draws from its own generator seeded by ``(seed, family name)``, so
  a family's crystals do not depend on which other families are asked for.

Each record carries the labels ``family``, ``prototype`` (the parent compound), ``parent_label``
(the parent's class in the literature, or ``None`` where the cited sources do not settle it),
``dimensionality``, ``substitution`` ({site label: element}) and ``is_parent``; its ``source`` is
``"topological_families:<family>"``, which :func:`family_citations` resolves.

Examples
--------
>>> fams = topological_families()
>>> fams["tetradymite"].parent, fams["tetradymite"].parent_label
('Bi2Se3', 'z2_ti')
>>> family_prototype("tetradymite").formula
'Bi2Se3'
>>> records = expand_families(3, families=["rocksalt"], seed=0)
>>> [r.labels["family"] for r in records], records[0].labels["is_parent"]
(['rocksalt', 'rocksalt', 'rocksalt'], True)
>>> family_citations(records[0].source)[-1].startswith("T. H. Hsieh")
True
"""

from __future__ import annotations

import json
import logging
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord, atomic_number
from td_data.substitution import Substituter, bond_radius_params, dls_length_scale
from td_data.validity import composition_validity, structure_validity
from td_physics.classes import TOPO_CLASSES

__all__ = [
    "SOURCE_PREFIX",
    "FamilySite",
    "TopologicalFamily",
    "topological_families",
    "family_citations",
    "family_prototype",
    "default_family_elements",
    "expand_families",
]

logger = logging.getLogger(__name__)

SOURCE_PREFIX = "topological_families:"
_TABLE_FILE = "data/topological_families.json"


@dataclass(frozen=True)
class FamilySite:
    """One Wyckoff site of a family's parent: ``coords`` fractional (2D: in-plane only, with ``height``
    in Angstrom from the slab centre); ``label`` names the substitution slot it belongs to."""

    label: str
    element: str
    oxidation_state: int
    wyckoff: str
    coords: tuple[float, ...]
    height: float | None = None


@dataclass(frozen=True)
class TopologicalFamily:
    """One row of the families table (see the module docstring)."""

    name: str
    description: str
    parent: str
    parent_label: str | None
    parent_note: str
    dimensionality: int
    space_group: int  # of the site list as given
    parent_space_group: int  # what spglib finds on the parent cell
    lattice: Mapping[str, float]
    sites: tuple[FamilySite, ...]
    structure_source: tuple[str, ...]
    topology_source: tuple[str, ...]

    @property
    def slots(self) -> tuple[str, ...]:
        """The substitution slots (site labels), in table order."""
        return tuple(dict.fromkeys(s.label for s in self.sites))

    def citations(self) -> list[str]:
        """Full references for the parent's structure and its class, without repeats."""
        refs = _table()["references"]
        return [refs[k] for k in dict.fromkeys(self.structure_source + self.topology_source)]


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("td_data").joinpath(_TABLE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _families() -> Mapping[str, TopologicalFamily]:
    table = _table()
    out = {}
    for name, row in table["families"].items():
        family = TopologicalFamily(
            name=name,
            description=row["description"],
            parent=row["parent"],
            parent_label=row["parent_label"],
            parent_note=row["parent_note"],
            dimensionality=int(row["dimensionality"]),
            space_group=int(row["space_group"]),
            parent_space_group=int(row["parent_space_group"]),
            lattice=MappingProxyType({k: float(v) for k, v in row["lattice"].items()}),
            sites=tuple(
                FamilySite(
                    label=s["label"],
                    element=s["element"],
                    oxidation_state=int(s["oxidation_state"]),
                    wyckoff=s["wyckoff"],
                    coords=tuple(float(c) for c in s["coords"]),
                    height=None if s.get("height") is None else float(s["height"]),
                )
                for s in row["sites"]
            ),
            structure_source=tuple(row["structure_source"]),
            topology_source=tuple(row["topology_source"]),
        )
        for key in ("space_group", "parent_space_group"):
            if not 1 <= getattr(family, key) <= 230:
                raise TDDataError(f"family {name!r}: {key} must be 1-230, got {getattr(family, key)}")
        if family.parent_label is not None and family.parent_label not in TOPO_CLASSES:
            raise TDDataError(
                f"family {name!r}: parent_label must be one of {TOPO_CLASSES} or null, got {family.parent_label!r}"
            )
        out[name] = family
    return MappingProxyType(out)


def topological_families() -> dict[str, TopologicalFamily]:
    """The families table, by name in table order."""
    return dict(_families())


def _family(name: str) -> TopologicalFamily:
    families = _families()
    if name not in families:
        raise TDDataError(f"no topological family named {name!r}; known: {', '.join(families)}")
    return families[name]


def family_citations(key: str) -> list[str]:
    """The references of a family, given its name or a record's ``source`` (``"topological_families:<name>"``).

    >>> len(family_citations("topological_families:zincblende"))
    3
    """
    name = key[len(SOURCE_PREFIX) :] if key.startswith(SOURCE_PREFIX) else key
    return _family(name).citations()


# ---------------------------------------------------------------------------------------------- parent cells
@dataclass(frozen=True, eq=False)
class _Cell:
    """A family's parent cell: ``lattice`` (3, 3) rows in Angstrom, ``frac`` (N, 3), ``slot`` (N,) indices
    into ``family.slots``, ``symbols`` the parent's elements per site."""

    lattice: np.ndarray
    frac: np.ndarray
    slot: np.ndarray
    symbols: tuple[str, ...]


#: The lattice parameters each crystal system takes (the others follow from the system), by the highest
#: space-group number of the system: triclinic 1-2, monoclinic 3-15 (unique axis b), orthorhombic 16-74,
#: tetragonal 75-142, trigonal and hexagonal 143-194 (rhombohedral groups in the hexagonal setting), cubic 195-230.
_LATTICE_KEYS = (
    (2, "triclinic", ("a", "b", "c", "alpha", "beta", "gamma")),
    (15, "monoclinic", ("a", "b", "c", "beta")),
    (74, "orthorhombic", ("a", "b", "c")),
    (142, "tetragonal", ("a", "c")),
    (194, "hexagonal", ("a", "c")),
    (230, "cubic", ("a",)),
)


def _conventional_lattice(family: TopologicalFamily) -> Any:
    """The conventional cell of a 3D family's space group from the parameters its crystal system takes."""
    from pymatgen.core import Lattice

    system, keys = next((name, keys) for last, name, keys in _LATTICE_KEYS if family.space_group <= last)
    if set(family.lattice) != set(keys):
        raise TDDataError(
            f"family {family.name!r}: a {system} lattice (space group {family.space_group}) takes "
            f"{', '.join(keys)}; got {', '.join(sorted(family.lattice))}"
        )
    p = family.lattice
    a = p["a"]
    if system == "cubic":
        return Lattice.cubic(a)
    if system == "hexagonal":
        return Lattice.hexagonal(a, p["c"])
    if system == "tetragonal":
        return Lattice.tetragonal(a, p["c"])
    if system == "orthorhombic":
        return Lattice.orthorhombic(a, p["b"], p["c"])
    if system == "monoclinic":
        return Lattice.monoclinic(a, p["b"], p["c"], p["beta"])
    return Lattice.from_parameters(a, p["b"], p["c"], p["alpha"], p["beta"], p["gamma"])


@lru_cache(maxsize=64)
def _parent_cell(name: str) -> _Cell:
    from pymatgen.core import Lattice, Structure

    family = _family(name)
    slots = family.slots
    a = family.lattice["a"]
    if family.dimensionality == 2:
        heights = [s.height or 0.0 for s in family.sites]
        c = family.lattice["vacuum"] + max(heights) - min(heights)
        coords = [[*s.coords[:2], 0.5 + (s.height or 0.0) / c] for s in family.sites]
        lattice = Lattice.hexagonal(a, c)
    else:
        coords = [list(s.coords) for s in family.sites]
        lattice = _conventional_lattice(family)
    structure = Structure.from_spacegroup(
        family.space_group,
        lattice,
        [s.element for s in family.sites],
        coords,
        site_properties={"slot": [slots.index(s.label) for s in family.sites]},
    )
    if family.dimensionality == 3:  # a 2D cell is primitive already, and keeps its vacuum along c
        structure = structure.get_primitive_structure(use_site_props=True).get_reduced_structure()
    order = np.lexsort(np.round(structure.frac_coords.T[::-1], 6))  # sites in a fixed order
    order = order[np.argsort([structure[i].properties["slot"] for i in order], kind="stable")]
    return _Cell(
        lattice=structure.lattice.matrix.copy(),
        frac=np.mod(structure.frac_coords[order], 1.0),
        slot=np.array([structure[i].properties["slot"] for i in order], dtype=int),
        symbols=tuple(structure[i].specie.symbol for i in order),
    )


def _record(
    family: TopologicalFamily, elements: Sequence[str], *, index: int, seed: int, is_parent: bool
) -> CrystalRecord:
    """The family's cell with ``elements`` (one per slot) at the DLS volume."""
    cell = _parent_cell(family.name)
    symbols = [elements[k] for k in cell.slot]
    scale = dls_length_scale(cell.lattice, cell.frac, symbols)
    labels: dict[str, Any] = {
        "family": family.name,
        "prototype": family.parent,
        "parent_label": family.parent_label,
        "dimensionality": family.dimensionality,
        "substitution": dict(zip(family.slots, elements)),
        "is_parent": is_parent,
        "generator_seed": seed,
    }
    if family.dimensionality == 2:
        cart = cell.frac @ cell.lattice  # (N, 3)
        z = cart[:, 2]
        thickness = float(z.max() - z.min())
        vacuum = float(cell.lattice[2, 2]) - thickness
        c = vacuum + scale * thickness
        lattice = np.vstack([cell.lattice[:2] * scale, [0.0, 0.0, c]])
        frac = np.column_stack([cell.frac[:, :2], 0.5 + scale * (z - 0.5 * (z.max() + z.min())) / c])
        labels["vacuum_angstrom"] = round(vacuum, 6)
    else:
        lattice, frac = cell.lattice * scale, cell.frac
    return CrystalRecord(
        lattice,
        frac,
        symbols,
        labels=labels,
        id=f"fam-{seed}-{family.name}-{index:05d}",
        source=f"{SOURCE_PREFIX}{family.name}",
    )


def family_prototype(name: str) -> CrystalRecord:
    """The parent compound of family ``name`` in its primitive cell, with the table's lattice parameters.

    >>> rec = family_prototype("a7")
    >>> rec.formula, rec.num_atoms, rec.labels["parent_label"]
    ('Bi', 2, 'semimetal_or_metal')
    """
    family = _family(name)
    cell = _parent_cell(name)
    return CrystalRecord(
        cell.lattice,
        cell.frac,
        list(cell.symbols),
        labels={
            "family": name,
            "prototype": family.parent,
            "parent_label": family.parent_label,
            "dimensionality": family.dimensionality,
            "substitution": {s.label: s.element for s in family.sites},
            "is_parent": True,
        },
        id=f"parent-{name}",
        source=f"{SOURCE_PREFIX}{name}",
    )


# ---------------------------------------------------------------------------------------------- expansion
def default_family_elements() -> tuple[str, ...]:
    """The elements substitution may introduce by default: those td-physics' labeller supports, without H.

    Hydrogen is left out because no site of these families is a hydride site: the table's H+ column
    proposes it for alkali sites, where it only makes molecules.
    """
    from td_physics.structure import supported_elements

    return tuple(s for s in supported_elements() if s != "H")


def _primitive_size(record: CrystalRecord) -> int:
    """Atoms in the primitive cell spglib finds (symprec 1e-3 Angstrom: the cells are ideal)."""
    import spglib

    cell = (record.lattice, record.frac_coords, record.atomic_numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+: OLD_ERROR_HANDLING notice
        found = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True, symprec=1e-3)
    return record.num_atoms if found is None else len(found[2])


def _valence_electrons(elements: Sequence[str], counts: Sequence[int]) -> int:
    """Valence s and p electrons of a cell with ``counts[i]`` atoms of ``elements[i]`` (the labeller's count)."""
    from td_physics.structure.parameters import valence_counts

    return sum(c * sum(valence_counts(e)) for e, c in zip(elements, counts))


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TDDataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class _FamilyStream:
    """The distinct crystals of one family, drawn one by one (parent first)."""

    def __init__(
        self,
        family: TopologicalFamily,
        substituter: Substituter,
        *,
        seed: int,
        max_radius_ratio: float,
        max_failures: int,
        isoelectronic: bool,
    ) -> None:
        self.family = family
        self.substituter = substituter
        self.seed = seed
        self.max_radius_ratio = max_radius_ratio
        self.max_failures = max_failures
        self.rng = np.random.default_rng([seed, zlib.crc32(family.name.encode())])
        cell = _parent_cell(family.name)
        self.parent_elements = tuple(
            cell.symbols[int(np.flatnonzero(cell.slot == k)[0])] for k in range(len(family.slots))
        )
        self.counts = tuple(int(c) for c in np.bincount(cell.slot, minlength=len(family.slots)))
        self.parent_radius = np.array([bond_radius_params(e)[0] for e in self.parent_elements])
        self.parent_electrons = _valence_electrons(self.parent_elements, self.counts)
        self.isoelectronic = isoelectronic
        self.slot_of_site = cell.slot
        self.seen: set[tuple[str, ...]] = set()
        self.by_formula: dict[str, list[Any]] = {}
        self.rejected: Counter[str] = Counter()
        self.made = 0
        self.exhausted = False

    def _why_not(self, elements: tuple[str, ...]) -> str | None:
        if not all(e in self.substituter.allowed_elements for e in elements):
            return "element not allowed"
        if self.isoelectronic and _valence_electrons(elements, self.counts) != self.parent_electrons:
            return "not isoelectronic"
        numbers = np.array([atomic_number(e) for e in elements])[self.slot_of_site]
        if not composition_validity(numbers)[0]:
            return "not charge-balanced"
        ratio = np.array([bond_radius_params(e)[0] for e in elements]) / self.parent_radius
        if np.any(ratio > self.max_radius_ratio) or np.any(ratio < 1.0 / self.max_radius_ratio):
            return "radius ratio"
        return None

    def _distinct(self, record: CrystalRecord) -> bool:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        structure = record.to_structure()
        known = self.by_formula.setdefault(record.formula, [])
        if known:
            matcher = StructureMatcher()
            if any(matcher.fit(structure, other) for other in known):
                return False
        known.append(structure)
        return True

    def _accept(self, elements: tuple[str, ...], *, is_parent: bool) -> CrystalRecord | None:
        self.seen.add(elements)
        record = _record(self.family, elements, index=self.made, seed=self.seed, is_parent=is_parent)
        ok, _ = structure_validity(record)
        if not ok:
            self.rejected["structure"] += 1
            return None
        if _primitive_size(record) < record.num_atoms:
            self.rejected["smaller cell"] += 1  # an ordering that orders nothing: another family's crystal
            return None
        if not self._distinct(record):
            self.rejected["same structure"] += 1
            return None
        self.made += 1
        return record

    def next(self) -> CrystalRecord | None:
        """The next distinct crystal, or None once ``max_failures`` draws in a row gave nothing new."""
        if self.exhausted:
            return None
        if self.made == 0 and not self.seen and self._why_not(self.parent_elements) in (None, "not charge-balanced"):
            record = self._accept(self.parent_elements, is_parent=True)  # the parent itself, whatever SMACT says
            if record is not None:
                return record
        failures = 0
        while failures < self.max_failures:
            elements = self.substituter.draw(self.parent_elements, self.counts, self.rng, balanced_seed=False)
            if elements in self.seen:
                failures += 1
                self.rejected["repeat"] += 1
                continue
            why = self._why_not(elements)
            if why is not None:
                self.seen.add(elements)
                failures += 1
                self.rejected[why] += 1
                continue
            record = self._accept(elements, is_parent=elements == self.parent_elements)
            if record is not None:
                return record
            failures += 1
        self.exhausted = True
        logger.info(
            "family %s: no new crystal in %d draws after %d crystals (rejections %s)",
            self.family.name,
            self.max_failures,
            self.made,
            dict(self.rejected),
        )
        return None


def expand_families(
    n_per_family: int | None = None,
    *,
    n_total: int | None = None,
    seed: int = 0,
    families: Iterable[str] | None = None,
    elements: Iterable[str] | None = None,
    substitution_temperature: float = 1.0,
    max_radius_ratio: float = 1.4,
    isoelectronic: bool = True,
    max_failures: int = 2000,
    weights: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CrystalRecord]:
    """Distinct substituted crystals of the topological families (see the module docstring).

    Parameters
    ----------
    n_per_family:
        Crystals per family (the parent included); a family whose chemistry runs out gives fewer.
    n_total:
        Instead of ``n_per_family``: this many in all, one family after another in turn, so that a family
        that runs out leaves its share to the others. Exactly one of the two must be given.
    seed:
        Seed of the draws; each family has its own generator, seeded by ``(seed, family name)``.
    families:
        Names from :func:`topological_families` (default: all, in table order).
    elements:
        Elements a substitution may introduce (default :func:`default_family_elements`). A parent with an
        element outside them is left out; its family is still substituted.
    substitution_temperature:
        ``T`` in ``exp(lambda / T)``: 1 is Hautier's probability, larger values substitute more freely.
    max_radius_ratio:
        Largest ratio (either way) of a substitute's DLS bond radius to the parent element's on its site.
    isoelectronic:
        Keep only crystals with as many valence s and p electrons per cell as the parent (filled d shells are
        core, as in td-physics' labeller): the band filling of the family is kept, so a substitution does not
        turn an insulating family into a metal by its electron count alone (Cu-Ag on the HgTe sites).
    max_failures:
        Draws in a row that give no new crystal before a family counts as exhausted.
    weights:
        With ``n_total`` only: {family name: relative share of the turns} (default 1 for a family not named).
        The next turn goes to the family furthest below its share (the smallest ``(made + 1) / weight``, ties in
        table order), so with equal weights this is the plain round robin, and a family of weight 3 gets three
        crystals for every one of a family of weight 1 until it runs out. Use it to spend the budget on the
        families whose crystals a study needs most (for example those with topological members).
    progress:
        Called as ``progress(done, total)`` after each crystal.

    Returns the records grouped by family (table order), each family's parent first.
    """
    if (n_per_family is None) == (n_total is None):
        raise TDDataError(f"give exactly one of n_per_family and n_total, got {n_per_family!r} and {n_total!r}")
    wanted = _check_count("n_per_family", n_per_family) if n_total is None else _check_count("n_total", n_total)
    max_failures = _check_count("max_failures", max_failures)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TDDataError(f"seed must be a non-negative integer, got {seed!r}")
    if not max_radius_ratio >= 1.0:
        raise TDDataError(f"max_radius_ratio must be at least 1 (a factor), got {max_radius_ratio!r}")
    names = list(_families()) if families is None else list(dict.fromkeys(families))
    if not names:
        raise TDDataError("families must name at least one family, got none")
    chosen = [_family(n) for n in names]
    share = _check_weights(weights, names, n_total_given=n_total is not None)
    allowed = default_family_elements() if elements is None else tuple(elements)
    for s in allowed:
        atomic_number(s)  # raises on an unknown symbol
    substituter = Substituter(allowed, substitution_temperature)
    streams = [
        _FamilyStream(
            f,
            substituter,
            seed=int(seed),
            max_radius_ratio=float(max_radius_ratio),
            max_failures=max_failures,
            isoelectronic=bool(isoelectronic),
        )
        for f in chosen
    ]
    total = wanted * len(streams) if n_total is None else wanted
    by_family: dict[str, list[CrystalRecord]] = {f.name: [] for f in chosen}
    done = 0
    turns = _turns(streams, per_stream=wanted if n_total is None else None, total=total, weights=share)
    for stream in turns:
        record = stream.next()
        if record is None:
            continue
        by_family[stream.family.name].append(record)
        done += 1
        if progress is not None:
            progress(done, total)
    out = [r for name in by_family for r in by_family[name]]
    logger.info(
        "expanded %d families into %d crystals: %s",
        len(chosen),
        len(out),
        {name: len(recs) for name, recs in by_family.items()},
    )
    return out


def _check_weights(weights: Mapping[str, float] | None, names: Sequence[str], *, n_total_given: bool) -> list[float]:
    """One weight per family of ``names`` (see :func:`expand_families`); bad input refused by name."""
    if weights is None:
        return [1.0] * len(names)
    if not n_total_given:
        raise TDDataError(
            "weights share n_total among the families; with n_per_family every family gets the same count"
        )
    if not isinstance(weights, Mapping):
        raise TDDataError(f"weights must be a mapping {{family: weight}}, got {type(weights).__name__}")
    unknown = [k for k in weights if k not in names]
    if unknown:
        raise TDDataError(f"weights name families that are not expanded: {unknown}; expanded: {', '.join(names)}")
    out = []
    for name in names:
        w = weights.get(name, 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not (0 < w < np.inf):
            raise TDDataError(f"weights[{name!r}] must be a finite number > 0, got {w!r}")
        out.append(float(w))
    return out


def _turns(
    streams: Sequence[_FamilyStream], *, per_stream: int | None, total: int, weights: Sequence[float]
) -> Iterator[_FamilyStream]:
    """The stream whose turn it is, until ``total``: of those not exhausted and not full, the one furthest below
    its share (smallest ``(made + 1) / weight``; ties in table order). Equal weights: the plain round robin."""
    while sum(s.made for s in streams) < total:
        live = [i for i, s in enumerate(streams) if not s.exhausted and (per_stream is None or s.made < per_stream)]
        if not live:
            return
        yield streams[min(live, key=lambda i: ((streams[i].made + 1) / weights[i], i))]
