"""Ingest: crystals from the synthetic generator or from the user's files, bad ones quarantined.

``data_config.source`` chooses where the crystals come from:

* ``synthetic`` (default): :class:`td_data.SyntheticDatasetGenerator` (real AFLOW prototypes with
  data-mined substitutions), restricted by default to the elements the physics labeller can build
  (``elements: labeller``), so that the ``label`` pipeline can label what it is given;
* ``cif_folder``, ``mp_export``, ``benchmark_csv``, ``store``: the files under ``data_config.path``,
  read by :func:`td_data.load_materials_database` (which never raises on bad input).

The node is pure with respect to the project: it reads the user's files only through the td-data
reader named by the configuration and returns records and a quarantine list; the catalog writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines._options import OptionsBlock
from td_data import CrystalRecord
from td_physics.structure import supported_elements

logger = logging.getLogger(__name__)

SOURCES = ("synthetic", "cif_folder", "mp_export", "benchmark_csv", "store")

#: Elements td-physics' structure labeller accepts (its parameter tables): crystals with others cannot be labelled.
LABELLER_ELEMENTS = supported_elements()


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

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"data_config.source must be one of {SOURCES}, got {self.source!r}")
        if self.source != "synthetic" and not self.path:
            raise ValueError(f"data_config.path must name a file or folder for source {self.source!r}, got none")
        if self.n_samples < 1:
            raise ValueError(f"data_config.n_samples must be at least 1, got {self.n_samples}")
        if self.max_atoms < 1:
            raise ValueError(f"data_config.max_atoms must be at least 1, got {self.max_atoms}")

    @property
    def allowed_elements(self) -> tuple[str, ...] | None:
        if self.elements == "labeller":
            return LABELLER_ELEMENTS
        if self.elements is None:
            return None
        return tuple(self.elements)


def _quarantine_entry(source: str, reason: str, record_id: str = "") -> dict[str, str]:
    return {"id": record_id, "source": source, "reason": reason}


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

        result = load_materials_database(cfg.path, trusted=cfg.trusted)
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
