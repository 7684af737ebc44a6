"""td_data.relax.idealised: relaxed crystals back on their symmetric sites, nothing else changed."""

from __future__ import annotations

import numpy as np
import pytest
import spglib

from td_data import CrystalRecord
from td_data.exceptions import TDDataError
from td_data.relax import idealised

FCC = 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def _zincblende(noise: float) -> CrystalRecord:
    rng = np.random.default_rng(0)
    frac = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]]) + noise * rng.standard_normal((2, 3))
    return CrystalRecord(6.05 * FCC, frac, ["Ga", "As"], id="gaas", labels={"topo_class": "trivial"})


def _space_group(rec: CrystalRecord, symprec: float) -> int:
    return spglib.get_symmetry_dataset((rec.lattice, rec.frac_coords, rec.atomic_numbers), symprec=symprec).number


def test_noise_is_removed_and_the_crystal_kept():
    noisy = _zincblende(2e-5)
    assert _space_group(noisy, 1e-6) != 216  # the noise hides F-43m from a strict search
    clean = idealised(noisy, symprec=1e-3)
    assert _space_group(clean, 1e-6) == 216
    assert clean.id == "gaas" and clean.labels == {"topo_class": "trivial"}
    assert sorted(clean.species) == ["As", "Ga"]
    assert abs(clean.volume - noisy.volume) < 1e-3 * noisy.volume


def test_a_supercell_is_left_as_it_is():
    cell = _zincblende(0.0)
    lattice = np.diag([2.0, 1.0, 1.0]) @ cell.lattice
    frac = np.vstack([cell.frac_coords * [0.5, 1, 1], cell.frac_coords * [0.5, 1, 1] + [0.5, 0, 0]])
    double = CrystalRecord(lattice, frac, ["Ga", "As", "Ga", "As"], id="x2")
    assert idealised(double) is double  # the primitive cell holds 2 atoms, not 4


def test_a_sheet_keeps_its_vacuum_along_the_third_vector():
    a, c = 3.86, 20.0
    lattice = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    frac = [[1 / 3, 2 / 3, 0.5 - 0.23 / c], [2 / 3, 1 / 3, 0.5 + 0.23 / c + 3e-6]]
    sheet = CrystalRecord(lattice, frac, ["Si", "Si"], id="silicene", labels={"dimensionality": 2})
    out = idealised(sheet)
    normal = np.cross(out.lattice[0], out.lattice[1])
    assert abs(abs(out.lattice[2] @ normal) - np.linalg.norm(out.lattice[2]) * np.linalg.norm(normal)) < 1e-6 * c


@pytest.mark.parametrize("symprec", [0, -1e-3, "0.001", True, float("nan")])
def test_symprec_must_be_a_positive_number(symprec):
    with pytest.raises(TDDataError, match="symprec must be a positive number"):
        idealised(_zincblende(0.0), symprec=symprec)
