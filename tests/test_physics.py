"""The physics as the rest of the product sees it (the user guide's ``pytest tests/test_physics.py``).

td-physics' own unit tests live in ``packages/td-physics/tests``. Here the physics is reached the way users and
the other libraries reach it: through the ``topological_diffusion.physics`` and ``topological_diffusion.validation``
import paths of the guide, checked against closed forms and published invariants; and the structure labeller's
answers, as td-data's :func:`~td_data.labels.label_records` puts them on crystal records, checked against the
label contract that the HDF5 store and td-models consume (DESIGN.md, "Data contracts").

Runs with pytest or as a script: ``python tests/test_physics.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from topological_diffusion.physics import InvariantResult, TightBindingModel, TopologicalInvariantCalculator

QWZ_MASSES = (-3.0, -1.5, -0.5, 0.5, 1.5, 3.0)
HALDANE_POINTS = ((0.1, np.pi / 2), (0.1, -np.pi / 2), (0.9, np.pi / 2), (-0.2, np.pi / 3), (0.0, 0.0))


@pytest.mark.parametrize("m", QWZ_MASSES)
def test_calculator_chern_number_of_qwz_is_the_closed_form(m):
    from topological_diffusion.validation import qwz_closed_form

    from td_physics.models import qwz

    report = TopologicalInvariantCalculator(qwz(m)).compute_all_invariants()
    result = report["chern_number"]
    assert isinstance(result, InvariantResult) and result.converged
    assert result.value == int(qwz_closed_form(np.array(m)))
    assert "z2_invariant" in report.skipped  # QWZ breaks time reversal: the calculator says so, not a Z2 of 0


@pytest.mark.parametrize(("m", "phi"), HALDANE_POINTS)
def test_calculator_chern_number_of_haldane_is_the_closed_form(m, phi):
    from topological_diffusion.validation import haldane_closed_form

    from td_physics.models import haldane

    t2 = 0.15
    result = TopologicalInvariantCalculator(haldane(t2=t2, phi=phi, m=m)).compute_all_invariants()["chern_number"]
    assert result.value == int(haldane_closed_form(np.array(m), np.array(phi), t2))


@pytest.mark.parametrize(("lambda_v", "expected"), [(0.0, 1), (0.5, 0)])
def test_kane_mele_z2_across_the_sublattice_potential_transition(lambda_v, expected):
    """Kane and Mele: a quantum spin Hall insulator for lambda_v < 3 sqrt(3) lambda_so (0.31 here), trivial above."""
    from td_physics.models import kane_mele

    report = TopologicalInvariantCalculator(kane_mele(lambda_so=0.06, lambda_v=lambda_v)).compute_all_invariants()
    assert report["z2_invariant"].value == expected
    assert report["chern_number"].value == 0  # time reversal


def test_fu_kane_mele_indices_and_report_is_plain_json():
    """Fu, Kane and Mele's diamond model: (1;111) for dt > 0; the report travels as JSON (pipelines, reports)."""
    from td_physics.models import fu_kane_mele

    report = TopologicalInvariantCalculator(fu_kane_mele(dt=0.4)).compute_all_invariants()
    assert tuple(report["z2_indices"].value) == (1, 1, 1, 1)
    plain = json.loads(json.dumps(report.to_dict()))
    assert plain["invariants"]["z2_indices"]["value"] == [1, 1, 1, 1]
    assert plain["invariants"]["chern_number_k3=0"]["value"] == 0
    assert plain["symmetries"] == {"time_reversal": True, "inversion": True, "spinful": True}
    assert "weyl_nodes" in plain["skipped"]  # time reversal and inversion: no Weyl nodes to look for


def test_the_user_guide_validation_call_agrees_with_the_literature():
    from topological_diffusion.validation import validate_known_materials

    table = validate_known_materials(["graphene", "bi2se3", "hgte_qw", "weyl_semimetal"])
    assert table.all_agree, str(table)
    assert {row["material"] for row in table} == {"graphene", "bi2se3", "hgte_qw", "weyl_semimetal"}


def test_facade_objects_are_the_library_objects():
    """One class, two import paths: a model made through td_physics is accepted through the guide's path."""
    import td_physics
    from td_physics.calculator import TopologicalInvariantCalculator as Calculator

    assert TightBindingModel is td_physics.TightBindingModel
    assert TopologicalInvariantCalculator is Calculator


# ------------------------------------------------------------------------------------------------------------
# the labeller's answers on crystal records: td-physics -> td-data -> (HDF5 store, td-models)
# ------------------------------------------------------------------------------------------------------------

REFERENCE = {"Bi2Se3": ("z2_ti", [1, 0, 0, 0]), "GaAs": ("trivial", [0, 0, 0, 0]), "NaCl": ("trivial", [0, 0, 0, 0])}


@pytest.fixture(scope="module")
def labelled():
    """Three reference crystals as td-data records, labelled by td-data with td-physics' structure labeller."""
    from td_data import CrystalRecord
    from td_data.labels import label_records
    from td_physics.structure.reference import reference_structure

    records = []
    for name in REFERENCE:
        lattice, frac, symbols = reference_structure(name)
        records.append(CrystalRecord(lattice, frac, symbols, id=name, source=f"reference:{name}"))
    return records, label_records(records, workers=1)


def test_labeller_classes_match_the_reference_crystals(labelled):
    _, result = labelled
    assert not result.quarantined
    got = {r.id: (r.labels["topo_class"], r.labels["z2_indices"]) for r in result.records}
    assert got == REFERENCE


def test_labels_fit_the_contract_the_store_and_the_model_read(labelled, tmp_path):
    from td_data.labels import LABELLER_PREFIX
    from td_data.store import CrystalStore, write_store
    from td_models import TOPO_CLASSES
    from td_models.batch import NULL_CHERN, item_from_record
    from td_physics.classify import TOPO_CLASSES as PHYSICS_CLASSES

    records, result = labelled
    assert PHYSICS_CLASSES == TOPO_CLASSES  # the labeller's classes are the model's condition classes
    assert [r.id for r in result.records] == [r.id for r in records]  # input order, nothing dropped
    for record, original in zip(result.records, records, strict=True):
        labels = record.labels
        assert labels["topo_class"] in TOPO_CLASSES
        assert 0.0 <= labels["confidence"] <= 1.0 and isinstance(labels["flagged"], bool)
        assert labels["label_source"].startswith(LABELLER_PREFIX)
        indices = labels["z2_indices"]
        assert indices is None or (len(indices) == 4 and set(indices) <= {0, 1})
        assert labels["chern"] is None or isinstance(labels["chern"], int)
        # eV; an indirect gap below zero is a band overlap, which the labeller tolerates up to max_band_overlap
        assert labels["direct_gap"] >= labels["indirect_gap"]
        assert labels["direct_gap"] > 0 or labels["topo_class"] == "semimetal_or_metal"
        np.testing.assert_array_equal(record.frac_coords, original.frac_coords)  # labelling leaves the crystal
        item = item_from_record(record)
        assert item["topo_class"] == TOPO_CLASSES.index(labels["topo_class"])
        assert item["chern"] == (NULL_CHERN if labels["chern"] is None else labels["chern"])
    path = write_store(tmp_path / "labelled.h5", result.records)
    with CrystalStore.open(path) as store:
        back = {r.id: dict(r.labels) for r in store.read_all()}
    assert back == {r.id: json.loads(json.dumps(dict(r.labels))) for r in result.records}


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
