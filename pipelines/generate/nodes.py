"""Generate: candidates for the target class and band-gap range of ``physics_config``, with predictions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from td_data import CrystalRecord

logger = logging.getLogger(__name__)


def generate_candidates(
    model: Any, physics_config: Mapping[str, Any], generate_options: Mapping[str, Any]
) -> tuple[list[CrystalRecord], dict[str, Any]]:
    """Sample ``n_candidates`` crystals and attach the property heads' predictions.

    Each candidate is a :class:`CrystalRecord` (id ``cand-NNNN``) with ``properties``
    ``predicted_band_gap`` (eV), ``predicted_formation_energy`` (eV/atom) and ``target_band_gap`` (eV),
    and ``labels`` ``requested_class``, ``predicted_class`` and ``predicted_class_probability``.
    Samples that are not valid records (for example atoms on top of each other are allowed, but a
    non-invertible cell is not) are counted in the summary and left out.
    """
    from td_models.config import TOPO_CLASSES, PhysicsConfig, topo_class_index

    pc = PhysicsConfig.from_dict(dict(physics_config))
    opts = dict(generate_options)
    n = int(opts.get("n_candidates", 64))
    requested = TOPO_CLASSES[topo_class_index(pc.topological_class)]
    samples = model.sample(
        n,
        topo_class=pc.topological_class,
        band_gap_range=tuple(pc.band_gap_range),
        steps=opts.get("steps"),
        seed=int(opts.get("seed", 0)),
    )
    records, rejected = [], []
    for i, s in enumerate(samples):
        try:
            rec = CrystalRecord(s["lattice"], s["frac_coords"] % 1.0, s["atomic_numbers"], id=f"cand-{i:04d}")
        except ValueError as err:
            rejected.append({"index": i, "reason": str(err)})
            continue
        target = s.get("conditions", {}).get("band_gap")
        records.append((rec, None if target is None else float(target)))
    arrays = [
        {"lattice": r.lattice, "frac_coords": r.frac_coords, "atomic_numbers": r.atomic_numbers} for r, _ in records
    ]
    preds = model.predict_properties(arrays) if records else None
    out = []
    for j, (rec, target) in enumerate(records):
        props = {
            "predicted_band_gap": float(preds.band_gap[j]),
            "predicted_formation_energy": float(preds.formation_energy[j]),
        }
        if target is not None:
            props["target_band_gap"] = target
        klass = preds.topo_class[j]
        out.append(
            rec.replace(
                properties=props,
                labels={
                    "requested_class": requested,
                    "predicted_class": klass,
                    "predicted_class_probability": float(preds.topo_probabilities[j][TOPO_CLASSES.index(klass)]),
                },
                source="generated:td-models",
            )
        )
    summary = {"n_requested": n, "n_records": len(out), "rejected": rejected, "requested_class": requested,
               "band_gap_range": list(pc.band_gap_range), "steps": opts.get("steps")}  # fmt: skip
    logger.info("generate: %d of %d samples are valid records", len(out), n)
    return out, summary
