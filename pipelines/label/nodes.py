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
from dataclasses import dataclass
from typing import Any, ClassVar

from pipelines._options import OptionsBlock
from td_data import CrystalRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelConfig(OptionsBlock):
    """The ``label_options`` block of ``parameters_label.yml``."""

    block: ClassVar[str] = "label_options"

    max_records: int = 40  # label at most this many crystals (smallest cells first)
    max_atoms: int = 6  # and only cells with at most this many sites
    workers: int = 2  # worker processes
    spin_orbit: bool = True  # atomic lambda L.S on p shells (td-physics' computed table)
    spin_orbit_constants: dict[str, float] | None = None  # {symbol: lambda_p eV}, overrides the table
    gap_mesh: int | None = 6  # k-points per periodic axis for the gap search (None: td-physics' density mesh)
    metal_gap: float = 1e-3  # eV: smaller gaps count as closed
    max_band_overlap: float = 0.5  # eV: bands separated at every k but overlapping by less keep their invariant

    def classify_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`td_physics.classify.classify_structure`."""
        from td_physics.structure import DEFAULT_VARIANTS

        variants = [dataclasses.replace(v, spin_orbit=self.spin_orbit) for v in DEFAULT_VARIANTS]
        options: dict[str, Any] = {
            "variants": variants,
            "gap_mesh": self.gap_mesh,
            "metal_gap": self.metal_gap,
            "max_band_overlap": self.max_band_overlap,
        }
        if self.spin_orbit and self.spin_orbit_constants:
            options["spin_orbit_constants"] = dict(self.spin_orbit_constants)
        return options


def label_crystals(
    records: Sequence[CrystalRecord], label_options: Mapping[str, Any]
) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """All ``records`` (input order), the chosen ones labelled, and a summary with every failure's reason."""
    from td_data.labels import label_records

    cfg = LabelConfig.from_dict(label_options)
    eligible = sorted((r for r in records if r.num_atoms <= cfg.max_atoms), key=lambda r: (r.num_atoms, r.id))
    chosen = eligible[: cfg.max_records]
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
