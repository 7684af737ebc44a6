"""td_data.evaluation.samples: the sampler's dicts -> records, ids, requested class, predictions, rejects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from td_data.evaluation import (
    GENERATED_SOURCE,
    NO_PREDICTION,
    attach_predictions,
    requested_class,
    samples_to_records,
)
from td_data.exceptions import EvaluationError


def _sample(a: float = 4.12, topo_class=1, band_gap=0.3) -> dict:
    return {
        "lattice": a * np.eye(3),
        "frac_coords": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 1.5]]),  # 1.5 wraps to 0.5
        "atomic_numbers": np.array([55, 17]),
        "conditions": {"topo_class": topo_class, "band_gap": band_gap, "chern": None, "formation_energy": None},
    }


PREDICTIONS = {
    "band_gap": np.array([0.25, 1.5]),
    "formation_energy": np.array([-1.0, -0.5]),
    "topo_probabilities": np.array([[0.1, 0.7, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1]]),
    "topo_class": ("z2_ti", "trivial"),
}


def test_ids_keep_the_sample_position_and_rejects_say_why():
    samples = [_sample(), {**_sample(), "lattice": np.zeros((3, 3))}, _sample(5.0)]
    records, rejected = samples_to_records(samples)
    assert [r.id for r in records] == ["gen-0000", "gen-0002"]  # the default prefix; ids survive a reject
    assert len(rejected) == 1 and rejected[0]["index"] == 1 and rejected[0]["reason"]
    assert all(r.source == GENERATED_SOURCE for r in records)
    np.testing.assert_allclose(records[0].frac_coords[1], [0.5, 0.5, 0.5])
    cands, _ = samples_to_records(samples, id_prefix="cand")
    assert [r.id for r in cands] == ["cand-0000", "cand-0002"]  # the generate pipeline's ids


def test_requested_class_and_target_gap_come_from_the_conditions():
    (rec,), _ = samples_to_records([_sample(topo_class=1, band_gap=0.3)])
    assert dict(rec.labels) == {"requested_class": "z2_ti"}
    assert dict(rec.properties) == {"target_band_gap": 0.3}
    (plain,), _ = samples_to_records([_sample()], record_requested_class=False)
    assert "requested_class" not in plain.labels
    (unconditioned,), _ = samples_to_records([_sample(topo_class=None, band_gap=None)])
    assert dict(unconditioned.labels) == {} and dict(unconditioned.properties) == {}


def test_requested_class_accepts_index_name_and_alias():
    assert [requested_class({"topo_class": c}) for c in (0, 1, "TI", "chern", None)] == [
        "trivial", "z2_ti", "z2_ti", "chern", None
    ]  # fmt: skip
    with pytest.raises(EvaluationError, match="index must be in \\[0, 4\\), got 7"):
        requested_class({"topo_class": 7})
    with pytest.raises(EvaluationError, match="class name or index, got 'magnet'"):
        requested_class({"topo_class": "magnet"})


def test_predictions_from_arrays_become_properties_and_labels():
    samples = [_sample(), _sample(5.0), _sample(6.0)]
    predicted = attach_predictions(samples, PREDICTIONS, indices=[0, 2])
    assert "predicted" not in samples[0]  # the inputs are left alone
    assert predicted[1]["predicted"] == NO_PREDICTION
    assert predicted[2]["predicted"] == {"band_gap": 1.5, "formation_energy": -0.5, "topo_class": "trivial",
                                         "topo_class_probability": 0.6}  # fmt: skip
    records, rejected = samples_to_records(predicted, id_prefix="cand")
    assert rejected == []
    first, unpredicted, third = records
    assert dict(first.properties) == {"predicted_band_gap": 0.25, "predicted_formation_energy": -1.0,
                                      "target_band_gap": 0.3}  # fmt: skip
    assert dict(first.labels) == {"requested_class": "z2_ti", "predicted_class": "z2_ti",
                                  "predicted_class_probability": 0.7}  # fmt: skip
    assert dict(unpredicted.labels) == {"requested_class": "z2_ti"}
    assert third.labels["predicted_class"] == "trivial"


def test_no_prediction_at_all_marks_every_sample_unpredicted():
    predicted = attach_predictions([_sample(), _sample(5.0)], None, indices=[])
    assert [p["predicted"] for p in predicted] == [NO_PREDICTION, NO_PREDICTION]
    with pytest.raises(EvaluationError, match="predictions=None means no sample was predicted, got indices \\[1\\]"):
        attach_predictions([_sample(), _sample(5.0)], None, indices=[1])


def test_predictions_must_match_the_samples():
    with pytest.raises(EvaluationError, match="one row per predicted sample \\(3\\)"):
        attach_predictions([_sample()] * 3, PREDICTIONS)
    with pytest.raises(EvaluationError, match="must lie in \\[0, 2\\), got \\[5\\]"):
        attach_predictions([_sample()] * 2, PREDICTIONS, indices=[0, 5])
    with pytest.raises(EvaluationError, match="must have lattice, frac_coords and atomic_numbers"):
        samples_to_records([{"lattice": np.eye(3)}])
    with pytest.raises(EvaluationError, match="id_prefix must be a non-empty string"):
        samples_to_records([_sample()], id_prefix="")


def test_predictions_as_attributes_equal_predictions_as_keys():
    class Predictions:  # td-models' PropertyPredictions has these fields
        pass

    obj = Predictions()
    for key, value in PREDICTIONS.items():
        setattr(obj, key, value)
    samples = [_sample(), _sample(5.0)]
    assert attach_predictions(samples, obj) == attach_predictions(samples, PREDICTIONS)


def test_evaluation_imports_no_torch():
    code = "import sys, td_data.evaluation; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
