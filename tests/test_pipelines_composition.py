"""The evaluate pipeline's composition statistics: distances, charge balance, element counts, densities."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.evaluate.nodes import composition_statistics
from td_data import CrystalRecord


def cell(species: list[str], a: float = 4.0) -> CrystalRecord:
    frac = np.linspace(0.0, 0.9, len(species))[:, None] * np.ones(3)
    return CrystalRecord(a * np.eye(3), frac, species)


def test_composition_statistics_compare_all_candidates_with_the_training_split():
    train = [cell(["Na", "Cl"]), cell(["Mg", "O"]), cell(["Cu"])]  # 2, 2, 1 elements; 2, 2, 1 atoms
    candidates = [cell(["Na", "Cl"]), cell(["Na", "Na", "Na", "Cl", "F"]), cell(["Cu", "Cu"])]  # 2, 3, 1 el; 2, 5, 2
    stats = composition_statistics(candidates, train)
    assert stats["n_candidates"] == 3
    assert stats["wdist_num_elems"] == pytest.approx(1 / 3)  # sorted (1, 2, 2) vs (1, 2, 3)
    assert stats["wdist_num_atoms"] == pytest.approx(4 / 3)  # sorted (1, 2, 2) vs (2, 2, 5)
    assert stats["charge_balanced"] == pytest.approx(2 / 3)  # Na3ClF is not neutral (Cl would need -2)
    assert stats["train_charge_balanced"] == 1.0
    assert (stats["max_num_elems"], stats["train_max_num_elems"]) == (3, 2)
    assert stats["num_elems_counts"] == {1: 1, 2: 1, 3: 1}
    low, high = stats["density_range"]
    assert low == pytest.approx(min(c.density for c in candidates)) and high == pytest.approx(
        max(c.density for c in candidates)
    )
    train_low, train_high = stats["train_density_range"]
    inside = sum(train_low <= c.density <= train_high for c in candidates) / 3
    assert stats["density_in_train_range"] == pytest.approx(inside) == 1 / 3  # Na3ClF and Cu2 are denser than all


def test_composition_statistics_of_nothing_say_so():
    assert composition_statistics([], [cell(["Cu"])]) == {
        "n_candidates": 0,
        "error": "no candidates or no training crystals",
    }
