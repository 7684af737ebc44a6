"""Quality filters for crystal records: validity, size, space group and duplicates.

Each filter is a small frozen object with a ``name`` and an ``apply(records)`` method that returns
a :class:`FilterStep`: the records that pass (in input order) and, for every rejected record, the
rule it broke and a reason naming the rule and the value (``"shortest interatomic distance 0.312 A
is below 0.5 A"``). :func:`apply_filters` (or :class:`QualityFilter`) chains filters into a
:class:`FilterResult` with the kept records, every rejection as ``(record_id, filter_name,
reason)`` and counts per rule.

Everything is deterministic and pure: the input list and its records are never changed (records
are immutable; :class:`SpaceGroupFilter` returns new records carrying the space-group label).

Filters
-------
* :class:`PlausibilityFilter`: the readers' physical limits (:class:`td_data.plausibility.Plausibility`:
  atoms at least 0.5 Angstrom apart, periodic images included; at least 1 Angstrom^3 per atom;
  optionally at most ``max_atoms`` sites), for records that did not come through a reader.
* :class:`StructureValidityFilter`: CDVAE's structural validity (shortest interatomic distance,
  periodic images included, at least 0.5 Angstrom; cell volume at least 0.1 Angstrom^3).
* :class:`CompositionValidityFilter`: CDVAE's SMACT charge-neutrality and Pauling test.
* :class:`SizeFilter`: at most ``max_atoms`` sites, at most ``max_elements`` distinct elements,
  and optionally only elements from ``allowed_elements``.
* :class:`SpaceGroupFilter`: the space group found by spglib with one ``symprec`` (default 0.1
  Angstrom), written into each kept record's labels as ``{"spacegroup": n, "symprec": 0.1}``;
  optionally only the space groups in ``allowed``.
* :class:`DuplicateFilter`: pymatgen ``StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)``
  (pymatgen's defaults, as used for uniqueness and novelty in the generation literature),
  compared only within the same reduced formula; the first occurrence is kept.

Examples
--------
>>> from td_data.record import CrystalRecord
>>> cubic = [[4.1, 0, 0], [0, 4.1, 0], [0, 0, 4.1]]
>>> cscl = CrystalRecord(cubic, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="a")
>>> crushed = CrystalRecord(cubic, [[0, 0, 0], [0.05, 0, 0]], ["Cs", "Cl"], id="b")
>>> result = apply_filters([cscl, crushed, cscl.replace(id="c")],
...                        [StructureValidityFilter(), SpaceGroupFilter(), DuplicateFilter()])
>>> [r.id for r in result.kept], result.kept[0].labels["spacegroup"]
(['a'], 221)
>>> for rejection in result.rejected:
...     print(rejection.record_id, rejection.filter_name, rejection.reason)
b structure_validity shortest interatomic distance 0.205 A is below 0.5 A
c duplicate duplicate of record 'a' (StructureMatcher ltol=0.2, stol=0.3, angle_tol=5.0, same reduced formula CsCl)
>>> dict(result.counts)
{'structure_validity/min_distance': 1, 'duplicate/duplicate': 1}
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, Protocol, runtime_checkable

from td_data.exceptions import TDDataError
from td_data.plausibility import DEFAULT_MIN_DISTANCE, DEFAULT_MIN_VOLUME_PER_ATOM, Plausibility
from td_data.record import ELEMENTS, CrystalRecord, atomic_number
from td_data.validity import composition_validity, structure_validity

__all__ = [
    "Rejection",
    "FilterStep",
    "FilterResult",
    "RecordFilter",
    "spacegroup_number",
    "PlausibilityFilter",
    "StructureValidityFilter",
    "CompositionValidityFilter",
    "SizeFilter",
    "SpaceGroupFilter",
    "DuplicateFilter",
    "QualityFilter",
    "apply_filters",
]

log = logging.getLogger(__name__)


class Rejection(NamedTuple):
    """One rejected record: its id (``#i`` for the i-th input when the record has no id), the
    filter that rejected it and the reason (the rule and the value)."""

    record_id: str
    filter_name: str
    reason: str


@dataclass(frozen=True)
class FilterStep:
    """What one filter did to a list of records.

    ``kept`` are the passing records (possibly new records, e.g. with a space-group label) and
    ``kept_indices`` their positions in the filter's input; ``rejected`` holds
    ``(input index, rule, reason)`` for every other record. Every input index appears exactly
    once in ``kept_indices`` or ``rejected``.
    """

    kept: tuple[CrystalRecord, ...]
    kept_indices: tuple[int, ...]
    rejected: tuple[tuple[int, str, str], ...]


@runtime_checkable
class RecordFilter(Protocol):
    """Anything with a ``name`` and ``apply(records) -> FilterStep`` can join a pipeline."""

    name: str

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep: ...


def _per_record(records: Sequence[CrystalRecord], check) -> FilterStep:
    """A filter step from ``check(record) -> None (keep) or (rule, reason)``."""
    kept, kept_idx, rejected = [], [], []
    for i, rec in enumerate(records):
        outcome = check(rec)
        if outcome is None:
            kept.append(rec)
            kept_idx.append(i)
        else:
            rejected.append((i, outcome[0], outcome[1]))
    return FilterStep(tuple(kept), tuple(kept_idx), tuple(rejected))


@dataclass(frozen=True)
class PlausibilityFilter:
    """The limits :func:`~td_data.readers.load_materials_database` applies to what it reads, as a filter.

    Rules ``max_atoms``, ``min_volume_per_atom`` and ``min_distance`` (periodic images included);
    ``None`` turns one off. Reasons name the rule and the value, e.g. ``"atoms 0 and 1 are 0.04 A
    apart, below min_distance 0.5 A"``.
    """

    min_distance: float | None = DEFAULT_MIN_DISTANCE  # Angstrom; CDVAE's threshold, below H2's 0.74 A
    min_volume_per_atom: float | None = DEFAULT_MIN_VOLUME_PER_ATOM  # Angstrom^3; diamond has 5.7
    max_atoms: int | None = None  # sites per cell; None: no limit (SizeFilter has one too)
    name: str = field(default="plausibility", init=False)

    def __post_init__(self) -> None:
        Plausibility(self.min_distance, self.min_volume_per_atom, self.max_atoms)  # validates the limits

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep:
        limits = Plausibility(self.min_distance, self.min_volume_per_atom, self.max_atoms)
        return _per_record(records, limits.violation)


@dataclass(frozen=True)
class StructureValidityFilter:
    """CDVAE's structural validity (:func:`td_data.validity.structure_validity`).

    Rules ``min_distance`` (shortest distance between two atoms, periodic images included,
    below ``cutoff``) and ``volume`` (cell volume below ``min_volume``).
    """

    cutoff: float = 0.5  # Angstrom; CDVAE's threshold for "atoms on top of each other"
    min_volume: float = 0.1  # Angstrom^3; CDVAE's threshold for a collapsed cell
    name: str = field(default="structure_validity", init=False)

    def __post_init__(self) -> None:
        if not self.cutoff >= 0:
            raise TDDataError(f"cutoff must be a non-negative distance in Angstrom, got {self.cutoff}")
        if not self.min_volume >= 0:
            raise TDDataError(f"min_volume must be a non-negative volume in Angstrom^3, got {self.min_volume}")

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep:
        def check(rec: CrystalRecord):
            ok, reason = structure_validity(rec, cutoff=self.cutoff, min_volume=self.min_volume)
            if ok:
                return None
            return ("volume" if reason.startswith("volume") else "min_distance"), reason

        return _per_record(records, check)


@dataclass(frozen=True)
class CompositionValidityFilter:
    """CDVAE's compositional validity (:func:`td_data.validity.composition_validity`): some choice of
    SMACT oxidation states balances the charge and passes the Pauling electronegativity test;
    single elements and all-metal compositions pass. Rule ``charge_balance``."""

    use_pauling_test: bool = True  # CDVAE uses it
    name: str = field(default="composition_validity", init=False)

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep:
        def check(rec: CrystalRecord):
            ok, reason = composition_validity(rec.atomic_numbers, use_pauling_test=self.use_pauling_test)
            return None if ok else ("charge_balance", reason)

        return _per_record(records, check)


@dataclass(frozen=True)
class SizeFilter:
    """Limits on the cell: rules ``max_atoms``, ``max_elements`` and ``allowed_elements``.

    ``None`` turns a limit off. ``allowed_elements`` takes symbols or atomic numbers.
    """

    max_atoms: int | None = None  # sites per cell; MP-20 uses 20, Carbon-24 24
    max_elements: int | None = None  # distinct elements per cell
    allowed_elements: frozenset[int] | None = None  # atomic numbers; None allows every element
    name: str = field(default="size", init=False)

    def __post_init__(self) -> None:
        for what in ("max_atoms", "max_elements"):
            value = getattr(self, what)
            if value is not None and (isinstance(value, bool) or not float(value).is_integer() or value < 1):
                raise TDDataError(f"{what} must be a positive integer or None, got {value!r}")
        if self.allowed_elements is not None:
            if isinstance(self.allowed_elements, (str, bytes)):
                raise TDDataError(f"allowed_elements must be a collection of elements, got {self.allowed_elements!r}")
            zs = frozenset(atomic_number(e) if isinstance(e, str) else int(e) for e in self.allowed_elements)
            bad = sorted(z for z in zs if not 1 <= z <= 118)
            if bad:
                raise TDDataError(f"allowed_elements must be atomic numbers 1..118 or symbols, got {bad}")
            object.__setattr__(self, "allowed_elements", zs)

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep:
        def check(rec: CrystalRecord):
            if self.max_atoms is not None and rec.num_atoms > self.max_atoms:
                return "max_atoms", f"{rec.num_atoms} atoms in the cell is more than max_atoms={self.max_atoms}"
            zs = sorted(set(rec.atomic_numbers.tolist()))
            if self.max_elements is not None and len(zs) > self.max_elements:
                return "max_elements", f"{len(zs)} distinct elements is more than max_elements={self.max_elements}"
            if self.allowed_elements is not None:
                outside = [ELEMENTS[z] for z in zs if z not in self.allowed_elements]
                if outside:
                    return "allowed_elements", f"elements {outside} are not in allowed_elements"
            return None

        return _per_record(records, check)


def spacegroup_number(record: CrystalRecord, symprec: float = 0.1) -> int | None:
    """International space-group number (1..230) from spglib, or None when spglib finds none."""
    import spglib

    cell = (record.lattice, record.frac_coords, record.atomic_numbers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+: OLD_ERROR_HANDLING notice
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception as err:  # spglib >= 2.5 may raise SpglibError instead of returning None
        log.debug("spglib failed on %r: %s", record, err)
        return None
    if dataset is None:
        return None
    number = dataset.number if hasattr(dataset, "number") else dataset["number"]
    return int(number)


@dataclass(frozen=True)
class SpaceGroupFilter:
    """Space group by spglib with one ``symprec``; kept records get ``{"spacegroup": n, "symprec": s}``
    in their labels (replacing earlier values). Rules ``symmetry_failed`` (spglib found no space
    group) and ``spacegroup`` (the number is not in ``allowed``)."""

    symprec: float = 0.1  # Angstrom; pymatgen's SpacegroupAnalyzer default, tolerant of relaxation noise
    allowed: frozenset[int] | None = None  # space-group numbers to keep; None keeps all
    name: str = field(default="spacegroup", init=False)

    def __post_init__(self) -> None:
        if not self.symprec > 0:
            raise TDDataError(f"symprec must be a positive distance in Angstrom, got {self.symprec}")
        if self.allowed is not None:
            numbers = frozenset(int(n) for n in self.allowed)
            bad = sorted(n for n in numbers if not 1 <= n <= 230)
            if bad:
                raise TDDataError(f"allowed space groups must be numbers 1..230, got {bad}")
            object.__setattr__(self, "allowed", numbers)

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep:
        kept, kept_idx, rejected = [], [], []
        for i, rec in enumerate(records):
            number = spacegroup_number(rec, self.symprec)
            if number is None:
                rejected.append((i, "symmetry_failed", f"spglib found no space group with symprec={self.symprec}"))
            elif self.allowed is not None and number not in self.allowed:
                rejected.append(
                    (i, "spacegroup", f"space group {number} (symprec={self.symprec}) is not in the allowed set")
                )
            else:
                kept.append(rec.with_labels(spacegroup=number, symprec=self.symprec))
                kept_idx.append(i)
        return FilterStep(tuple(kept), tuple(kept_idx), tuple(rejected))


@dataclass(frozen=True)
class DuplicateFilter:
    """Drop structures that pymatgen's ``StructureMatcher`` matches to an earlier kept one.

    Records are compared only within the same reduced formula (the matcher could not match
    different compositions anyway), in input order, each against the records already kept; the
    first occurrence stays. Tolerances: ``ltol=0.2`` (fractional length), ``stol=0.3`` (site
    distance in units of (V/N)^(1/3)), ``angle_tol=5`` degrees; the matcher also reduces to the
    primitive cell and scales volumes (``primitive_cell=True, scale=True``, its defaults), so two
    cells that differ only by an isotropic strain count as duplicates. Rule ``duplicate``.
    """

    ltol: float = 0.2
    stol: float = 0.3
    angle_tol: float = 5.0  # degrees
    name: str = field(default="duplicate", init=False)

    def apply(self, records: Sequence[CrystalRecord]) -> FilterStep:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        matcher = StructureMatcher(ltol=self.ltol, stol=self.stol, angle_tol=self.angle_tol)
        kept_by_formula: dict[str, list[tuple[int, object]]] = {}
        kept, kept_idx, rejected = [], [], []
        for i, rec in enumerate(records):
            formula = rec.formula
            group = kept_by_formula.setdefault(formula, [])
            structure = rec.to_structure()
            match = next((j for j, other in group if matcher.fit(other, structure)), None)
            if match is None:
                group.append((i, structure))
                kept.append(rec)
                kept_idx.append(i)
            else:
                first = records[match].id or f"#{match}"
                reason = (
                    f"duplicate of record {first!r} (StructureMatcher ltol={self.ltol}, stol={self.stol}, "
                    f"angle_tol={self.angle_tol}, same reduced formula {formula})"
                )
                rejected.append((i, "duplicate", reason))
        return FilterStep(tuple(kept), tuple(kept_idx), tuple(rejected))


@dataclass(frozen=True)
class FilterResult:
    """Outcome of a filter pipeline.

    ``kept``: the surviving records, in input order (as returned by the last filter);
    ``rejected``: one :class:`Rejection` per dropped record, in the order the filters ran;
    ``counts``: number of rejections per ``"filter_name/rule"``, in first-seen order.
    """

    kept: tuple[CrystalRecord, ...]
    rejected: tuple[Rejection, ...]
    counts: Mapping[str, int]

    @property
    def num_kept(self) -> int:
        return len(self.kept)

    @property
    def num_rejected(self) -> int:
        return len(self.rejected)

    def summary(self) -> str:
        """One line per rule, e.g. ``"structure_validity/min_distance: 3"``, then the totals."""
        lines = [f"{key}: {n}" for key, n in self.counts.items()]
        lines.append(f"kept {self.num_kept} of {self.num_kept + self.num_rejected}")
        return "\n".join(lines)


def apply_filters(records: Iterable[CrystalRecord], filters: Sequence[RecordFilter]) -> FilterResult:
    """Run ``filters`` in order; each sees only what the previous ones kept."""
    records = list(records)
    for rec in records:
        if not isinstance(rec, CrystalRecord):
            raise TDDataError(f"filters take CrystalRecord objects, got {type(rec).__name__}")
    current = records
    origin = list(range(len(records)))  # index in the input of each record in `current`
    rejected: list[Rejection] = []
    counts: Counter[str] = Counter()
    for flt in filters:
        if not isinstance(flt, RecordFilter):
            raise TDDataError(f"filters need a name and an apply(records) method, got {type(flt).__name__}")
        step = flt.apply(current)
        if sorted(list(step.kept_indices) + [r[0] for r in step.rejected]) != list(range(len(current))):
            raise TDDataError(f"filter {flt.name!r} must keep or reject each of its {len(current)} inputs once")
        for idx, rule, reason in step.rejected:
            original = origin[idx]
            rejected.append(Rejection(records[original].id or f"#{original}", flt.name, reason))
            counts[f"{flt.name}/{rule}"] += 1
        origin = [origin[i] for i in step.kept_indices]
        current = list(step.kept)
        log.info("filter %s kept %d, rejected %d", flt.name, len(step.kept), len(step.rejected))
    return FilterResult(tuple(current), tuple(rejected), MappingProxyType(dict(counts)))


def _default_filters() -> tuple[RecordFilter, ...]:
    return QualityFilter.default().filters


@dataclass(frozen=True)
class QualityFilter:
    """A named, reusable pipeline of filters: ``QualityFilter((f1, f2))(records) -> FilterResult``.

    ``QualityFilter()`` without arguments is :meth:`default`: structure validity (atoms at least
    0.5 A apart, cell at least 0.1 A^3), composition validity (SMACT), no size limit, space group
    with symprec 0.1 A (labelled, any group allowed), then duplicates (StructureMatcher's defaults).

    >>> [f.name for f in QualityFilter().filters]
    ['structure_validity', 'composition_validity', 'size', 'spacegroup', 'duplicate']
    """

    filters: tuple[RecordFilter, ...] = field(default_factory=_default_filters)

    def __post_init__(self) -> None:
        if isinstance(self.filters, (str, bytes)) or not isinstance(self.filters, Iterable):
            raise TDDataError(f"filters must be a sequence of filters, got {type(self.filters).__name__}")
        object.__setattr__(self, "filters", tuple(self.filters))
        for flt in self.filters:
            if not isinstance(flt, RecordFilter):
                raise TDDataError(f"filters need a name and an apply(records) method, got {type(flt).__name__}")

    @classmethod
    def default(
        cls, *, max_atoms: int | None = None, symprec: float = 0.1, allowed_spacegroups: Iterable[int] | None = None
    ) -> QualityFilter:
        """Structure and composition validity, size, space group, then duplicates (cheapest first,
        the pairwise duplicate search last, on what is left)."""
        allowed = None if allowed_spacegroups is None else frozenset(allowed_spacegroups)
        return cls(
            (
                StructureValidityFilter(),
                CompositionValidityFilter(),
                SizeFilter(max_atoms=max_atoms),
                SpaceGroupFilter(symprec=symprec, allowed=allowed),
                DuplicateFilter(),
            )
        )

    def __call__(self, records: Iterable[CrystalRecord]) -> FilterResult:
        return apply_filters(records, self.filters)

    apply = __call__
