"""Samples -> records: the sampler's plain-array crystals as :class:`~td_data.record.CrystalRecord` objects.

A *sample* is one dict of ``TopologicalDiffusionModel.sample`` (or of a ``td_models.save_crystals`` file):
``lattice`` (3, 3) Angstrom, ``frac_coords`` (N, 3) reduced, ``atomic_numbers`` (N,), optionally
``conditions`` (what it was generated for: ``topo_class`` as a class index or name, ``band_gap`` eV, ...)
and ``predicted`` (the property heads' answers: ``band_gap`` eV, ``formation_energy`` eV/atom,
``topo_class``, ``topo_class_probability``; None where the model could not featurise the crystal).
Nothing here imports torch: the predictions arrive as arrays (:func:`attach_predictions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from td_data.exceptions import EvaluationError
from td_data.record import CrystalRecord
from td_physics.classes import CLASS_ALIASES, TOPO_CLASSES

__all__ = [
    "DEFAULT_ID_PREFIX",
    "GENERATED_SOURCE",
    "NO_PREDICTION",
    "SampleRecords",
    "attach_predictions",
    "requested_class",
    "samples_to_records",
]

#: ``source`` of every generated record
GENERATED_SOURCE = "generated:td-models"
#: id prefix of generated records: ``gen-0000``, ``gen-0001``, ... (the generate pipeline passes ``cand``)
DEFAULT_ID_PREFIX = "gen"
#: the ``predicted`` entry of a sample the model could not featurise
NO_PREDICTION: Mapping[str, Any] = {
    "band_gap": None,
    "formation_energy": None,
    "topo_class": None,
    "topo_class_probability": None,
}


class SampleRecords(NamedTuple):
    """``records`` (valid samples, sampling order) and ``rejected`` (``{"index", "reason"}`` per other sample)."""

    records: list[CrystalRecord]
    rejected: list[dict[str, Any]]


def _column(predictions: Any, name: str) -> Any:
    return predictions[name] if isinstance(predictions, Mapping) else getattr(predictions, name)


def attach_predictions(
    samples: Sequence[Mapping[str, Any]],
    predictions: Any,
    indices: Sequence[int] | None = None,
    classes: Sequence[str] = TOPO_CLASSES,
) -> list[dict[str, Any]]:
    """``samples`` with ``"predicted"`` added from the property heads' arrays (new dicts; the inputs unchanged).

    ``predictions`` has ``band_gap`` (M,) eV, ``formation_energy`` (M,) eV/atom, ``topo_probabilities``
    (M, C) in the order of ``classes`` and ``topo_class`` (M,) names, as attributes (td-models'
    ``PropertyPredictions``) or keys; row ``j`` belongs to sample ``indices[j]`` (default: every sample, in
    order). Samples without a row get :data:`NO_PREDICTION`; ``predictions=None`` with ``indices=[]``: none
    was predicted (the model could featurise no sample).

    >>> s = [{"lattice": None}, {"lattice": None}]
    >>> p = {"band_gap": [0.3], "formation_energy": [-1.0], "topo_probabilities": [[0.1, 0.7, 0.1, 0.1]],
    ...      "topo_class": ["z2_ti"]}
    >>> [x["predicted"]["topo_class"] for x in attach_predictions(s, p, indices=[1])]
    [None, 'z2_ti']
    """
    indices = list(range(len(samples))) if indices is None else [int(i) for i in indices]
    if predictions is None:
        if indices:
            raise EvaluationError(f"predictions=None means no sample was predicted, got indices {indices[:5]}")
        predictions = dict.fromkeys(("band_gap", "formation_energy", "topo_probabilities", "topo_class"), ())
    gaps = np.asarray(_column(predictions, "band_gap"), dtype=float)
    energies = np.asarray(_column(predictions, "formation_energy"), dtype=float)
    probabilities = np.asarray(_column(predictions, "topo_probabilities"), dtype=float)
    names = list(_column(predictions, "topo_class"))
    rows = {len(gaps), len(energies), len(probabilities), len(names)}
    if rows != {len(indices)}:
        raise EvaluationError(
            f"predictions must have one row per predicted sample ({len(indices)}), got row counts {sorted(rows)}"
        )
    bad = [i for i in indices if not 0 <= i < len(samples)]
    if bad:
        raise EvaluationError(f"prediction indices must lie in [0, {len(samples)}), got {bad[:5]}")
    predicted: dict[int, dict[str, Any]] = {}
    for j, i in enumerate(indices):
        klass = names[j]
        if klass not in classes:
            raise EvaluationError(f"predicted class must be one of {list(classes)}, got {klass!r}")
        predicted[i] = {
            "band_gap": float(gaps[j]),
            "formation_energy": float(energies[j]),
            "topo_class": klass,
            "topo_class_probability": float(probabilities[j][list(classes).index(klass)]),
        }
    return [{**s, "predicted": predicted.get(i, dict(NO_PREDICTION))} for i, s in enumerate(samples)]


def requested_class(conditions: Mapping[str, Any] | None) -> str | None:
    """The class name a sample was generated for (``conditions["topo_class"]``: index or name), or None.

    >>> requested_class({"topo_class": 1}), requested_class({"topo_class": "TI"}), requested_class({})
    ('z2_ti', 'z2_ti', None)
    """
    value = (conditions or {}).get("topo_class")
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        if key not in CLASS_ALIASES:
            raise EvaluationError(f"conditions topo_class must be a class name or index, got {value!r}")
        return TOPO_CLASSES[CLASS_ALIASES[key]]
    index = int(value)
    if not 0 <= index < len(TOPO_CLASSES):
        raise EvaluationError(f"conditions topo_class index must be in [0, {len(TOPO_CLASSES)}), got {value!r}")
    return TOPO_CLASSES[index]


def samples_to_records(
    samples: Sequence[Mapping[str, Any]],
    *,
    id_prefix: str = DEFAULT_ID_PREFIX,
    record_requested_class: bool = True,
    source: str = GENERATED_SOURCE,
) -> SampleRecords:
    """Records of the samples that are valid crystals, and why the others are not.

    Record ``i`` gets the id ``f"{id_prefix}-{i:04d}"`` (``i`` the sample's position, so ids survive
    rejects), coordinates wrapped into [0, 1), ``source``, and

    * ``properties``: ``predicted_band_gap`` (eV) and ``predicted_formation_energy`` (eV/atom) where the
      sample carries a prediction; ``target_band_gap`` (eV) where it was generated for a band gap;
    * ``labels``: ``requested_class`` (the class it was generated for; only with ``record_requested_class``,
      the default, and only when it was conditioned on one), ``predicted_class`` and
      ``predicted_class_probability`` where the sample carries a predicted class.

    A sample that is not a valid record (a singular cell, a non-finite coordinate) is rejected with the
    record's own error message.

    >>> s = {"lattice": 4 * np.eye(3), "frac_coords": [[0, 0, 0], [0.5, 0.5, 1.5]], "atomic_numbers": [55, 17],
    ...      "conditions": {"topo_class": 0, "band_gap": 0.2}}
    >>> records, rejected = samples_to_records([s, {**s, "lattice": np.zeros((3, 3))}], id_prefix="cand")
    >>> records[0].id, dict(records[0].labels), dict(records[0].properties), [r["index"] for r in rejected]
    ('cand-0000', {'requested_class': 'trivial'}, {'target_band_gap': 0.2}, [1])
    """
    if not isinstance(id_prefix, str) or not id_prefix:
        raise EvaluationError(f"id_prefix must be a non-empty string, got {id_prefix!r}")
    records: list[CrystalRecord] = []
    rejected: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        missing = [k for k in ("lattice", "frac_coords", "atomic_numbers") if k not in s]
        if missing:
            raise EvaluationError(f"sample {i} must have lattice, frac_coords and atomic_numbers, lacks {missing}")
        try:
            frac = np.asarray(s["frac_coords"], dtype=float) % 1.0
            rec = CrystalRecord(s["lattice"], frac, s["atomic_numbers"], id=f"{id_prefix}-{i:04d}")
        except ValueError as err:
            rejected.append({"index": i, "reason": str(err)})
            continue
        conditions = s.get("conditions") or {}
        pred = s.get("predicted") or {}
        properties = {f"predicted_{k}": float(pred[k]) for k in ("band_gap", "formation_energy")
                      if pred.get(k) is not None}  # fmt: skip
        if conditions.get("band_gap") is not None:
            properties["target_band_gap"] = float(conditions["band_gap"])
        labels: dict[str, Any] = {}
        wanted = requested_class(conditions) if record_requested_class else None
        if wanted is not None:
            labels["requested_class"] = wanted
        if pred.get("topo_class") is not None:
            labels["predicted_class"] = pred["topo_class"]
            labels["predicted_class_probability"] = pred.get("topo_class_probability")
        records.append(rec.replace(properties=properties, labels=labels, source=source))
    return SampleRecords(records, rejected)
