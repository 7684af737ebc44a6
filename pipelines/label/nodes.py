"""Label: physics labels from td-physics' structure labeller (:func:`td_data.labels.label_records`).

The labeller builds a universal-parameter tight-binding model per ensemble variant and classifies it.
It is expensive (seconds per small cell on two cores, much more for larger, low-symmetry cells), so
only the ``max_records`` smallest crystals with at most ``max_atoms`` sites are labelled; the others
keep no ``topo_class`` and train the model without a class condition (their condition is the null).
The variants carry atomic spin-orbit coupling on p shells (``spin_orbit: true``, constants from
td-physics' computed Dirac-LDA table) and scalar-relativistic on-site energies; the labeller's accuracy
on a literature reference table is in ``docs/labeller_accuracy.md``. With ``spin_orbit: false`` a
``z2_ti`` answer cannot occur: an odd parity inversion of spin-degenerate bands is reported as a
semimetal. No label is invented or edited here. Records that cannot be labelled are reported, not
dropped.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.config import LabelConfig
from td_data import CrystalRecord

logger = logging.getLogger(__name__)


def records_to_label(records: Sequence[CrystalRecord], label_options: Mapping[str, Any]) -> list[CrystalRecord]:
    """The records :func:`label_crystals` labels: the ``max_records`` smallest cells (ties by id) of at most
    ``max_atoms`` sites."""
    cfg = LabelConfig.from_dict(label_options)
    eligible = sorted((r for r in records if r.num_atoms <= cfg.max_atoms), key=lambda r: (r.num_atoms, r.id))
    return eligible[: cfg.max_records]


def label_crystals(
    records: Sequence[CrystalRecord], label_options: Mapping[str, Any]
) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """All ``records`` (input order), the chosen ones labelled, and a summary with every failure's reason."""
    from td_data.labels import label_records

    cfg = LabelConfig.from_dict(label_options)
    chosen = records_to_label(records, label_options)
    result = label_records(chosen, workers=cfg.workers, **cfg.classify_options())
    labelled = {r.id: r for r in result.records}
    out = [labelled.get(r.id, r) for r in records]
    classes = Counter(r.labels.get("topo_class", "unlabelled") for r in out)
    summary = {
        "n_records": len(records),
        "n_attempted": len(chosen),
        "n_labelled": len(labelled),
        "n_failed": len(result.quarantined),
        "class_counts": dict(sorted(classes.items())),
        "options": {k: v for k, v in dataclasses.asdict(cfg).items()},
        "failures": [{"source": q.source, "reason": q.reason} for q in result.quarantined],
        "note": "spin-orbit off: odd parity inversions are reported as semimetals" if not cfg.spin_orbit else "",
    }
    logger.info("label: %d of %d attempted labelled, classes %s", len(labelled), len(chosen), dict(classes))
    return out, summary
