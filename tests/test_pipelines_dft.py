"""pipelines.dft: records into the DFT runner's input, and the DFT settings of a parameter block."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.dft import dft_crystal, dft_settings
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord


def _cartesian(lattice, frac) -> np.ndarray:
    return np.asarray(frac) @ np.asarray(lattice)


def test_a_left_handed_cell_becomes_the_same_crystal_in_a_right_handed_one():
    lattice = np.array([[4.0, 0.0, 0.0], [0.3, 5.0, 0.0], [0.0, 0.2, -6.0]])  # det < 0
    frac = [[0.1, 0.2, 0.3], [0.6, 0.4, 0.9]]
    rec = CrystalRecord(lattice, frac, ["Bi", "Se"], id="left", magmoms=[0.5, -0.5])
    crystal = dft_crystal(rec)
    assert np.linalg.det(crystal["lattice"]) > 0
    assert np.allclose(_cartesian(crystal["lattice"], crystal["frac_coords"]), _cartesian(rec.lattice, rec.frac_coords))
    assert crystal["atomic_numbers"] == [83, 34] and crystal["magmoms"] == [0.5, -0.5] and crystal["id"] == "left"


def test_a_right_handed_cell_passes_as_it_is():
    rec = CrystalRecord(4.0 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"], id="cscl")
    crystal = dft_crystal(rec)
    assert crystal["lattice"] == rec.lattice.tolist() and crystal["frac_coords"] == rec.frac_coords.tolist()
    assert "magmoms" not in crystal


def test_bad_dft_settings_name_the_parameter():
    assert dft_settings({"min_kpts": 2, "max_kpts": 2}, "verify_options.settings").max_kpts == 2
    with pytest.raises(ParameterError, match="^verify_options.settings: "):
        dft_settings({"kpoints": 3}, "verify_options.settings")
