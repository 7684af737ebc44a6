"""Ingest: crystals from the synthetic generator or from the user's files, bad ones quarantined.

``data_config.source`` chooses where the crystals come from:

* ``synthetic`` (default): :class:`td_data.SyntheticDatasetGenerator` (real AFLOW prototypes with
  data-mined substitutions), restricted by default to the elements the physics labeller can build
  (``elements: labeller``), so that the ``label`` pipeline can label what it is given;
* ``cif_folder``, ``mp_export``, ``benchmark_csv``, ``store``: the user's files, the ``user_crystals``
  catalog entry (:class:`pipelines.datasets.CrystalFilesDataset`, which reads ``data_config.path`` with
  :func:`td_data.load_materials_database` and never raises on bad input).

Every source then goes through the quality filters of ``data_config.quality_filters`` (physical
limits, SMACT composition validity, space group, duplicates; see :class:`pipelines.config.QualityFilterOptions`), and
every rejection goes to the quarantine with its reason, like every unreadable file, row or entry.

The node is pure: it takes what the catalog read (the user's crystals and what the reader set aside) and
returns records and a quarantine list, which the catalog writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipelines.config import DataConfig, QualityFilterOptions
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord

if TYPE_CHECKING:
    from td_data.readers import LoadResult

logger = logging.getLogger(__name__)


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


def ingest_crystals(
    data_config: Mapping[str, Any], user_crystals: LoadResult | None = None
) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """Crystals for the run and a quarantine report (every crystal or file set aside, with its reason).

    ``user_crystals`` is what :func:`td_data.load_materials_database` read from the user's files (the
    ``user_crystals`` catalog entry); every source but ``synthetic`` needs it, ``synthetic`` ignores it.
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
        if user_crystals is None:
            raise ParameterError(
                f"data_config.source {cfg.source!r} reads the user_crystals dataset (data_config.path), none was given"
            )
        records = list(user_crystals.records)
        entries += [_quarantine_entry(q.source, q.reason) for q in user_crystals.quarantined]
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
        "data_source": cfg.source,
        "counts": {"kept": len(kept), "quarantined": len(entries)},
        "entries": entries,
    }
    return kept, quarantine
