"""CrystalRecord validation and conversions; CDVAE validity on hand-checked cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_data import CrystalRecord, RecordValidationError
from td_data.validity import composition_validity, min_distance, structure_validity

CUBIC = np.eye(3) * 4.0


def rocksalt() -> CrystalRecord:
    return CrystalRecord(
        CUBIC, [[0, 0, 0], [0.5, 0.5, 0.5]], [11, 17], {"band_gap": 5.0}, {"topo_class": "trivial"}, "x"
    )


def test_validation_errors_name_rule_and_value():
    with pytest.raises(RecordValidationError, match=r"lattice must have shape \(3, 3\).*got \(2, 2\)"):
        CrystalRecord(np.eye(2), [[0, 0, 0]], [1])
    with pytest.raises(RecordValidationError, match="cell volume must be positive, got 0"):
        CrystalRecord([[1, 0, 0], [2, 0, 0], [0, 0, 1]], [[0, 0, 0]], [1])
    with pytest.raises(RecordValidationError, match="frac_coords must contain finite numbers"):
        CrystalRecord(CUBIC, [[np.nan, 0, 0]], [1])
    with pytest.raises(RecordValidationError, match="same length, got 2 and 1"):
        CrystalRecord(CUBIC, [[0, 0, 0]], [1, 2])
    with pytest.raises(RecordValidationError, match="between 1 and 118, got 0"):
        CrystalRecord(CUBIC, [[0, 0, 0]], [0])
    with pytest.raises(RecordValidationError, match="unknown element symbol 'Xx'"):
        CrystalRecord(CUBIC, [[0, 0, 0]], ["Xx"])
    with pytest.raises(RecordValidationError, match="property 'band_gap' must be finite"):
        CrystalRecord(CUBIC, [[0, 0, 0]], [1], {"band_gap": float("inf")})


def test_records_are_immutable_and_copies_are_new():
    rec = rocksalt()
    with pytest.raises(ValueError):
        rec.frac_coords[0, 0] = 0.3
    with pytest.raises(TypeError):
        rec.properties["band_gap"] = 1.0  # type: ignore[index]
    new = rec.with_labels(topo_class="z2_ti")
    assert rec.labels["topo_class"] == "trivial" and new.labels["topo_class"] == "z2_ti"


def test_derived_quantities():
    rec = rocksalt()
    assert rec.formula == "NaCl" and rec.composition == {"Na": 1, "Cl": 1}
    assert rec.volume == pytest.approx(64.0)
    # 58.44 g/mol in 64 A^3
    assert rec.density == pytest.approx(58.44 / 6.02214076e23 / 64e-24, rel=1e-3)
    assert rec.lattice_parameters == pytest.approx((4, 4, 4, 90, 90, 90))


def test_coordinates_are_wrapped():
    rec = CrystalRecord(CUBIC, [[1.25, -0.25, -1e-18]], [6])
    assert np.all((rec.frac_coords >= 0) & (rec.frac_coords < 1))
    assert rec.frac_coords[0].tolist() == pytest.approx([0.25, 0.75, 0.0])


def test_round_trips_dict_pymatgen_ase():
    rec = rocksalt()
    back = CrystalRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert np.array_equal(back.frac_coords, rec.frac_coords) and back.labels == rec.labels
    s = rec.to_structure()
    again = CrystalRecord.from_structure(s, id=rec.id)
    assert np.allclose(again.lattice, rec.lattice) and again.atomic_numbers.tolist() == [11, 17]
    pytest.importorskip("ase")
    atoms = rec.to_atoms()
    assert CrystalRecord.from_atoms(atoms).formula == "NaCl"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6))
def test_min_distance_matches_pymatgen(coords):
    from pymatgen.core import Lattice, Structure

    lattice = Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 110)
    rec = CrystalRecord(lattice.matrix, coords, [6] * len(coords))
    s = Structure(lattice, ["C"] * len(coords), coords)
    ref = min(
        [s.lattice.abc[i] for i in range(3)]
        + [s.get_distance(i, j) for i in range(len(s)) for j in range(i + 1, len(s))]
        + [min(n.nn_distance for n in s.get_neighbors(site, 7.0)) for site in s if s.get_neighbors(site, 7.0)]
    )
    assert min_distance(rec) == pytest.approx(ref, abs=1e-9)


def test_structure_validity_known_cases():
    assert structure_validity(rocksalt()) == (True, "")
    close = CrystalRecord(CUBIC, [[0, 0, 0], [0.1, 0, 0]], [6, 6])  # 0.4 A apart
    ok, reason = structure_validity(close)
    assert not ok and "0.400 A is below 0.5 A" in reason
    tiny = CrystalRecord(np.eye(3) * 0.4, [[0, 0, 0]], [1])
    assert not structure_validity(tiny)[0]


@pytest.mark.parametrize(
    ("species", "valid"),
    [
        (["Na", "Cl"], True),  # Na+ Cl-
        (["Sr", "Ti", "O", "O", "O"], True),  # perovskite
        (["Na", "Na", "Cl"], False),  # Na2Cl cannot balance
        (["Fe", "Ni", "Cu"], True),  # all metals: an alloy passes
        (["C", "C", "C", "C"], True),  # a single element passes
        (["O", "F"], False),  # both only negative in SMACT's default oxidation states: no balance
    ],
)
def test_composition_validity_known_cases(species, valid):
    from td_data.record import atomic_number

    assert composition_validity([atomic_number(s) for s in species])[0] is valid


def test_records_pickle_for_worker_processes():
    import pickle

    rec = rocksalt()
    back = pickle.loads(pickle.dumps(rec))
    assert back.to_dict() == rec.to_dict()
