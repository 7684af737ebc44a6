"""Property-head metrics: how well predicted band gaps, formation energies and classes match labelled crystals.

The predictions arrive as arrays (td-models' ``PropertyPredictions`` fields, or anyone's), one row per
record; each metric is reported next to the baseline a model must beat (the mean for the errors, the most
common class for the accuracy) and the number of records that carry the quantity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_data.exceptions import EvaluationError
from td_data.record import CrystalRecord
from td_physics.classes import TOPO_CLASSES

__all__ = ["BAND_GAP_KEYS", "FORMATION_ENERGY_KEYS", "first_property", "property_head_metrics"]

#: property names of td-data records that hold a band gap (eV); readers map MP/CDVAE columns onto these
BAND_GAP_KEYS = ("band_gap",)
#: property names that hold a formation energy (eV/atom), first found wins
FORMATION_ENERGY_KEYS = ("formation_energy", "formation_energy_per_atom")


def first_property(properties: dict[str, Any], keys: Sequence[str]) -> float | None:
    """The first finite value of ``keys`` in ``properties``, or None.

    >>> first_property({"formation_energy": None, "formation_energy_per_atom": -0.5}, FORMATION_ENERGY_KEYS)
    -0.5
    """
    for k in keys:
        v = properties.get(k)
        if v is not None and np.isfinite(v):
            return float(v)
    return None


def property_head_metrics(
    records: Sequence[CrystalRecord],
    band_gap: Sequence[float],
    formation_energy: Sequence[float],
    topo_class: Sequence[str],
) -> dict[str, Any]:
    """MAE of band gap (eV) and formation energy (eV/atom) and class accuracy of predictions on ``records``.

    Row ``i`` of each prediction belongs to ``records[i]``. Returns ``n_crystals``; per quantity
    ``{name}_n_labelled``, ``{name}_mae`` and ``{name}_mae_of_mean_baseline`` (the error of predicting the
    labelled mean); ``class_n_labelled``, ``class_accuracy``, ``class_confusion`` (``{true: {predicted:
    count}}``) and ``majority_class_baseline``. Only records whose ``topo_class`` label is one of the four
    classes count for the class metrics. A metric without labelled records is None.

    >>> from td_data import CrystalRecord
    >>> recs = [CrystalRecord(4 * np.eye(3), [[0, 0, 0]], ["Si"], id=str(g), properties={"band_gap": g},
    ...                       labels={"topo_class": "trivial"}) for g in (1.0, 2.0)]
    >>> m = property_head_metrics(recs, [1.5, 1.5], [0.0, 0.0], ["trivial", "z2_ti"])
    >>> m["band_gap_mae"], m["class_accuracy"], m["formation_energy_mae"]
    (0.5, 0.5, None)
    """
    records = list(records)
    columns = {"band_gap": band_gap, "formation_energy": formation_energy, "topo_class": topo_class}
    lengths = {name: len(values) for name, values in columns.items()}
    if set(lengths.values()) != {len(records)}:
        raise EvaluationError(f"predictions must have one row per record ({len(records)}), got {lengths}")
    out: dict[str, Any] = {"n_crystals": len(records)}
    for name, keys, values in (("band_gap", BAND_GAP_KEYS, band_gap),
                               ("formation_energy", FORMATION_ENERGY_KEYS, formation_energy)):  # fmt: skip
        pairs = [
            (t, float(p)) for r, p in zip(records, values) if (t := first_property(r.properties, keys)) is not None
        ]
        err = np.array([abs(t - p) for t, p in pairs])
        out[f"{name}_n_labelled"] = len(pairs)
        out[f"{name}_mae"] = float(err.mean()) if len(pairs) else None
        out[f"{name}_mae_of_mean_baseline"] = (
            float(np.mean(np.abs(np.array([t for t, _ in pairs]) - np.mean([t for t, _ in pairs])))) if pairs else None
        )
    labelled = [(r.labels["topo_class"], p) for r, p in zip(records, topo_class) if r.labels.get("topo_class")]
    labelled = [(t, p) for t, p in labelled if t in TOPO_CLASSES]
    out["class_n_labelled"] = len(labelled)
    out["class_accuracy"] = sum(t == p for t, p in labelled) / len(labelled) if labelled else None
    out["class_confusion"] = {
        t: dict(Counter(p for tt, p in labelled if tt == t)) for t in sorted({t for t, _ in labelled})
    }
    out["majority_class_baseline"] = (
        Counter(t for t, _ in labelled).most_common(1)[0][1] / len(labelled) if labelled else None
    )
    return out
