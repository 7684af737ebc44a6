"""td_data.evaluation.properties: errors and accuracy of predicted properties, with their baselines."""

from __future__ import annotations

import numpy as np
import pytest

from td_data import CrystalRecord
from td_data.evaluation import property_head_metrics
from td_data.exceptions import EvaluationError


def _records() -> list[CrystalRecord]:
    out = []
    for i, (gap, energy, cls) in enumerate(((0.5, -0.3, "z2_ti"), (0.6, None, "trivial"), (None, -0.4, "trivial"),
                                            (0.9, -0.5, None), (1.0, -0.6, "not_a_class"))):  # fmt: skip
        props = {k: v for k, v in (("band_gap", gap), ("formation_energy_per_atom", energy)) if v is not None}
        labels = {"topo_class": cls} if cls else {}
        out.append(CrystalRecord(4 * np.eye(3), [[0, 0, 0]], ["Si"], id=f"r{i}", properties=props, labels=labels))
    return out


def test_metrics_equal_a_hand_computation():
    records = _records()
    gap_pred = np.array([0.4, 0.9, 7.0, 1.0, 1.0])
    energy_pred = np.array([-0.3, 9.0, -0.2, -0.4, -0.6])
    classes = ["z2_ti", "z2_ti", "trivial", "chern", "trivial"]
    m = property_head_metrics(records, gap_pred, energy_pred, classes)
    gaps = np.array([0.5, 0.6, 0.9, 1.0])  # records 0, 1, 3, 4 carry a band gap
    assert m["band_gap_n_labelled"] == 4
    assert m["band_gap_mae"] == pytest.approx(np.mean(np.abs(gaps - gap_pred[[0, 1, 3, 4]])))
    assert m["band_gap_mae_of_mean_baseline"] == pytest.approx(np.mean(np.abs(gaps - gaps.mean())))
    energies = np.array([-0.3, -0.4, -0.5, -0.6])  # formation_energy_per_atom counts as the formation energy
    assert m["formation_energy_n_labelled"] == 4
    assert m["formation_energy_mae"] == pytest.approx(np.mean(np.abs(energies - energy_pred[[0, 2, 3, 4]])))
    # classes: only the three records labelled with one of the four classes
    assert m["class_n_labelled"] == 3 and m["class_accuracy"] == pytest.approx(2 / 3)
    assert m["class_confusion"] == {"trivial": {"z2_ti": 1, "trivial": 1}, "z2_ti": {"z2_ti": 1}}
    assert m["majority_class_baseline"] == pytest.approx(2 / 3) and m["n_crystals"] == 5


def test_nothing_labelled_gives_none():
    rec = CrystalRecord(4 * np.eye(3), [[0, 0, 0]], ["Si"], id="bare")
    m = property_head_metrics([rec], [1.0], [0.0], ["trivial"])
    assert m["band_gap_mae"] is None and m["band_gap_mae_of_mean_baseline"] is None
    assert m["class_accuracy"] is None and m["majority_class_baseline"] is None and m["class_confusion"] == {}


def test_one_prediction_per_record():
    with pytest.raises(EvaluationError, match="one row per record \\(5\\)"):
        property_head_metrics(_records(), [1.0], [0.0] * 5, ["trivial"] * 5)
