"""Ingest: crystals from the synthetic generator or from the user's files, bad ones quarantined.

``data_config.source`` chooses where the crystals come from:

* ``synthetic`` (default): :class:`td_data.SyntheticDatasetGenerator` (real AFLOW prototypes with
  data-mined substitutions), restricted by default to the elements the physics labeller can build
  (``elements: labeller``), so that the ``label`` pipeline can label what it is given;
* ``cif_folder``, ``mp_export``, ``benchmark_csv``, ``store``: the files under ``data_config.path``,
  read by :func:`td_data.load_materials_database` (which never raises on bad input).

Every source then goes through the quality filters of ``data_config.quality_filters`` (physical
limits, SMACT composition validity, space group, duplicates; see :class:`QualityFilterOptions`), and
every rejection goes to the quarantine with its reason, like every unreadable file, row or entry.

The node is pure with respect to the project: it reads the user's files only through the td-data
reader named by the configuration and returns records and a quarantine list; the catalog writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines._options import OptionsBlock
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord
from td_data.filters import (
    CompositionValidityFilter,
    DuplicateFilter,
    PlausibilityFilter,
    QualityFilter,
    SizeFilter,
    SpaceGroupFilter,
)
from td_physics.structure import supported_elements

logger = logging.getLogger(__name__)

SOURCES = ("synthetic", "cif_folder", "mp_export", "benchmark_csv", "store")

#: Elements td-physics' structure labeller accepts (its parameter tables): crystals with others cannot be labelled.
LABELLER_ELEMENTS = supported_elements()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class QualityFilterOptions(OptionsBlock):
    """The ``data_config.quality_filters`` block: what ingest refuses, for every source.

    The defaults keep every crystal of the Perov-5, Carbon-24 and MP-20 benchmark files (the
    duplicate filter aside, which keeps the first of each set of matching structures).
    """

    block: ClassVar[str] = "data_config.quality_filters"

    min_distance: float | None = 0.5  # Angstrom between two atoms, periodic images included (CDVAE; H2 has 0.74)
    min_volume_per_atom: float | None = 1.0  # Angstrom^3 per atom (diamond has 5.7); null turns it off
    composition_validity: bool = True  # SMACT charge neutrality + Pauling test (CDVAE's compositional validity)
    max_elements: int | None = None  # distinct elements per cell; null: no limit
    spacegroup: bool = True  # find the space group (spglib) and label it; cells spglib cannot analyse are refused
    symprec: float = 0.1  # Angstrom, spglib's tolerance (pymatgen's SpacegroupAnalyzer default)
    allowed_spacegroups: list[int] | None = None  # keep only these space-group numbers; null keeps all
    duplicates: bool = True  # drop structures pymatgen's StructureMatcher matches to an earlier one

    def __post_init__(self) -> None:
        b = self.block
        for name in ("min_distance", "min_volume_per_atom"):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or value < 0):
                raise ParameterError(f"{b}.{name} must be a non-negative number (Angstrom) or null, got {value!r}")
        for name in ("composition_validity", "spacegroup", "duplicates"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{b}.{name} must be true or false, got {getattr(self, name)!r}")
        m = self.max_elements
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ParameterError(f"{b}.max_elements must be a positive integer or null, got {m!r}")
        if not _is_number(self.symprec) or not self.symprec > 0:
            raise ParameterError(f"{b}.symprec must be a positive distance in Angstrom, got {self.symprec!r}")
        allowed = self.allowed_spacegroups
        if allowed is not None:
            if not isinstance(allowed, (list, tuple)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 230 for n in allowed
            ):
                raise ParameterError(
                    f"{b}.allowed_spacegroups must be a list of numbers 1..230 or null, got {allowed!r}"
                )
            if not self.spacegroup:
                raise ParameterError(f"{b}.allowed_spacegroups needs {b}.spacegroup: true, got spacegroup: false")

    def quality_filter(self) -> QualityFilter:
        """The filters, cheapest first and the pairwise duplicate search last."""
        filters: list[Any] = [PlausibilityFilter(self.min_distance, self.min_volume_per_atom)]
        if self.composition_validity:
            filters.append(CompositionValidityFilter())
        if self.max_elements is not None:
            filters.append(SizeFilter(max_elements=self.max_elements))
        if self.spacegroup:
            allowed = None if self.allowed_spacegroups is None else frozenset(self.allowed_spacegroups)
            filters.append(SpaceGroupFilter(symprec=self.symprec, allowed=allowed))
        if self.duplicates:
            filters.append(DuplicateFilter())
        return QualityFilter(tuple(filters))


@dataclass(frozen=True)
class DataConfig(OptionsBlock):
    """The ``data_config`` block of ``parameters_ingest.yml``."""

    block: ClassVar[str] = "data_config"

    source: str = "synthetic"  # synthetic | cif_folder | mp_export | benchmark_csv | store
    path: str | None = None  # file or folder for every source but synthetic
    n_samples: int = 300  # synthetic crystals to generate
    seed: int = 0  # generator seed (and split seed, see parameters_split.yml)
    max_atoms: int = 20  # larger cells are quarantined (the cpu-demo model takes at most this many)
    elements: str | list[str] | None = "labeller"  # "labeller", a list of symbols, or None = all
    fraction_2d: float = 0.1  # share of 2D sheets from the synthetic generator
    trusted: bool = False  # allow pickle files (never for files from others)
    quality_filters: Any = None  # QualityFilterOptions; a mapping from YAML, None: every default

    def __post_init__(self) -> None:
        if not isinstance(self.quality_filters, QualityFilterOptions):
            if self.quality_filters is not None and not isinstance(self.quality_filters, Mapping):
                raise ParameterError(f"data_config.quality_filters must be a mapping, got {self.quality_filters!r}")
            object.__setattr__(self, "quality_filters", QualityFilterOptions.from_dict(self.quality_filters))
        for name in ("n_samples", "seed", "max_atoms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ParameterError(f"data_config.{name} must be an integer, got {value!r}")
        if not isinstance(self.trusted, bool):
            raise ParameterError(f"data_config.trusted must be true or false, got {self.trusted!r}")
        if not _is_number(self.fraction_2d) or not 0 <= self.fraction_2d <= 1:
            raise ParameterError(f"data_config.fraction_2d must be a number between 0 and 1, got {self.fraction_2d!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise ParameterError(f"data_config.path must be a file or folder name or null, got {self.path!r}")
        elements = self.elements
        if not (
            elements is None
            or elements == "labeller"
            or (isinstance(elements, (list, tuple)) and all(isinstance(e, str) for e in elements))
        ):
            raise ParameterError(
                f"data_config.elements must be 'labeller', a list of element symbols or null, got {elements!r}"
            )
        if self.source not in SOURCES:
            raise ParameterError(f"data_config.source must be one of {SOURCES}, got {self.source!r}")
        if self.source != "synthetic" and not self.path:
            raise ParameterError(f"data_config.path must name a file or folder for source {self.source!r}, got none")
        if self.n_samples < 1:
            raise ParameterError(f"data_config.n_samples must be at least 1, got {self.n_samples}")
        if self.max_atoms < 1:
            raise ParameterError(f"data_config.max_atoms must be at least 1, got {self.max_atoms}")

    @property
    def allowed_elements(self) -> tuple[str, ...] | None:
        if self.elements == "labeller":
            return LABELLER_ELEMENTS
        if self.elements is None:
            return None
        return tuple(self.elements)


def _quarantine_entry(source: str, reason: str, record_id: str = "") -> dict[str, str]:
    return {"id": record_id, "source": source, "reason": reason}


def _apply_quality_filters(
    records: list[CrystalRecord], options: QualityFilterOptions, entries: list[dict[str, str]]
) -> list[CrystalRecord]:
    """The records that pass the quality filters; each rejection is added to ``entries`` with its reason."""
    if not records:
        return records
    result = options.quality_filter()(records)
    source = {rec.id: rec.source for rec in records}
    for rejection in result.rejected:
        entry = _quarantine_entry(source.get(rejection.record_id, ""), rejection.reason, rejection.record_id)
        entry["filter"] = rejection.filter_name
        entries.append(entry)
    logger.info("quality filters: %s", result.summary().replace("\n", "; "))
    return list(result.kept)


def ingest_crystals(data_config: Mapping[str, Any]) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """Crystals for the run and a quarantine report (every crystal or file set aside, with its reason).

    Returns ``(records, quarantine)``; ``quarantine`` is ``{"source": ..., "counts": ..., "entries":
    [{"id", "source", "reason"}, ...]}``. Crystals with more than ``max_atoms`` sites, or elements
    outside ``elements``, are quarantined here rather than failing later.
    """
    cfg = DataConfig.from_dict(data_config)
    entries: list[dict[str, str]] = []
    if cfg.source == "synthetic":
        from td_data import SyntheticDatasetGenerator

        generator = SyntheticDatasetGenerator(
            seed=cfg.seed, max_atoms=cfg.max_atoms, fraction_2d=cfg.fraction_2d, allowed_elements=cfg.allowed_elements
        )
        records = generator.generate_dataset(cfg.n_samples)
        where = f"synthetic generator (seed {cfg.seed}, {cfg.n_samples} crystals)"
    else:
        from td_data import load_materials_database

        limits = cfg.quality_filters
        result = load_materials_database(
            cfg.path,
            trusted=cfg.trusted,
            max_atoms=cfg.max_atoms,  # an oversized CIF is refused before it is parsed
            min_distance=limits.min_distance,
            min_volume_per_atom=limits.min_volume_per_atom,
        )
        records = list(result.records)
        entries += [_quarantine_entry(q.source, q.reason) for q in result.quarantined]
        where = f"{cfg.source} at {cfg.path}"
    allowed = set(cfg.allowed_elements) if cfg.allowed_elements is not None and cfg.source != "synthetic" else None
    kept = []
    for rec in records:
        if rec.num_atoms > cfg.max_atoms:
            entries.append(
                _quarantine_entry(rec.source, f"{rec.num_atoms} sites is more than max_atoms={cfg.max_atoms}", rec.id)
            )
        elif allowed is not None and not set(rec.species) <= allowed:
            other = sorted(set(rec.species) - allowed)
            entries.append(_quarantine_entry(rec.source, f"elements {other} are outside data_config.elements", rec.id))
        else:
            kept.append(rec)
    kept = _apply_quality_filters(kept, cfg.quality_filters, entries)
    if not kept:
        raise ValueError(f"ingest found no usable crystal in {where}; {len(entries)} quarantined (see the log)")
    for e in entries:
        logger.warning("quarantined %s: %s", e["id"] or e["source"], e["reason"])
    logger.info("ingest: %d crystals from %s, %d quarantined", len(kept), where, len(entries))
    quarantine = {
        "source": where,
        "counts": {"kept": len(kept), "quarantined": len(entries)},
        "entries": entries,
    }
    return kept, quarantine
