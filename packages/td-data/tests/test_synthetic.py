"""Tests of the synthetic crystal generator (real AFLOW prototypes)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from td_data.exceptions import TDDataError
from td_data.substitution import dls_length_scale
from td_data.synthetic import (
    MOLECULAR_PROTOTYPES,
    SyntheticDatasetGenerator,
    diversity_report,
    load_prototypes,
)
from td_data.validity import composition_validity, structure_validity


@pytest.fixture(scope="module")
def records():
    return SyntheticDatasetGenerator(seed=0).generate_dataset(200)


@pytest.fixture(scope="module")
def sheets():
    return SyntheticDatasetGenerator(seed=5, fraction_2d=1.0).generate_dataset(60)


def _dump(recs):
    return json.dumps([r.to_dict() for r in recs], sort_keys=True)


# ------------------------------------------------------------------ prototype library
def test_library_is_the_real_aflow_prototypes_filtered():
    protos = load_prototypes(max_atoms=20)
    assert 200 <= len(protos) <= 288
    assert all(len(p.site_species) <= 20 for p in protos)
    assert all((p.label, p.formula) not in MOLECULAR_PROTOTYPES for p in protos)
    by_formula = {(p.label, p.formula) for p in protos}
    for known in [("AB_cF8_225_a_b", "NaCl"), ("A_cF8_227_a", "C"), ("AB3C_cP5_221_a_c_b", "CaTiO3")]:
        assert known in by_formula
    assert len(load_prototypes(max_atoms=4)) < len(protos)
    with pytest.raises(TDDataError, match="max_atoms"):
        load_prototypes(max_atoms=0)


def test_dls_volume_matches_pymatgen_and_library_volumes():
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor
    from pymatgen.core import Lattice, Structure

    protos = load_prototypes()
    predictor = DLSVolumePredictor(min_scaling=None, max_scaling=None)
    for p in protos[::25]:
        if p.formula == "Cf":  # pymatgen has no atomic radius for Cf and fails; we use its metallic radius
            continue
        symbols = [p.elements[i] for i in p.site_species]
        structure = Structure(Lattice(p.lattice), symbols, p.frac_coords)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = predictor.predict(structure) / structure.volume
        assert dls_length_scale(p.lattice, p.frac_coords, symbols) ** 3 == pytest.approx(expected, rel=1e-9)
    ratios = [dls_length_scale(p.lattice, p.frac_coords, [p.elements[i] for i in p.site_species]) ** 3 for p in protos]
    assert 0.9 < float(np.median(ratios)) < 1.1
    assert all(0.5 <= r <= 2.0 for r in ratios)


# ------------------------------------------------------------------ crystals
def test_same_seed_same_records_byte_for_byte():
    a = SyntheticDatasetGenerator(seed=3).generate_dataset(40)
    b = SyntheticDatasetGenerator(seed=3).generate_dataset(40)
    assert _dump(a) == _dump(b)
    assert all(x.lattice.tobytes() == y.lattice.tobytes() for x, y in zip(a, b))
    c = SyntheticDatasetGenerator(seed=4).generate_dataset(40)
    assert _dump(a) != _dump(c)


def test_prefix_is_stable():
    """Asking for more samples extends the list without changing the first ones."""
    short = SyntheticDatasetGenerator(seed=2).generate_dataset(10)
    long = SyntheticDatasetGenerator(seed=2).generate_dataset(20)
    assert _dump(short) == _dump(long[:10])


def test_validity_fraction(records):
    valid = [structure_validity(r)[0] and composition_validity(r.atomic_numbers)[0] for r in records]
    assert len(records) == 200
    assert sum(valid) / len(valid) >= 0.95


def test_ids_sources_labels(records):
    assert [r.id for r in records] == [f"synth-0-{i:06d}" for i in range(200)]
    for r in records:
        assert r.source == f"synthetic:{r.labels['prototype']}"
        assert r.labels["generator_seed"] == 0
        assert r.labels["dimensionality"] in (2, 3)
        assert r.num_atoms <= 20


def test_diversity(records):
    report = diversity_report(records)
    assert report["n_records"] == 200
    assert report["n_prototypes"] >= 40
    assert report["n_space_groups"] >= 20
    assert report["n_elements"] >= 30
    assert report["n_compositions"] >= 100
    assert sum(report["compositions"].values()) == 200
    assert set(report["dimensionality"]) == {2, 3}


def test_substitution_changes_chemistry_but_keeps_the_prototype(records):
    from pymatgen.core import Composition

    bulk = [r for r in records if r.labels["dimensionality"] == 3]
    changed = [r for r in bulk if r.formula != Composition(r.labels["prototype_formula"]).reduced_formula]
    assert len(changed) > 0.5 * len(bulk)
    protos = {(p.label, p.formula): p for p in load_prototypes()}
    for r in bulk[:30]:
        proto = protos[(r.labels["prototype"], r.labels["prototype_formula"])]
        assert r.num_atoms == len(proto.site_species)
        assert len(r.composition) == len(proto.elements)  # one element per AFLOW letter
        assert sorted(r.composition.values()) == sorted(proto.counts)


def test_strain_is_small(records):
    protos = {(p.label, p.formula): p for p in load_prototypes()}
    for r in records[:60]:
        if r.labels["dimensionality"] != 3:
            continue
        proto = protos[(r.labels["prototype"], r.labels["prototype_formula"])]
        # lattice = base * s @ (I + eps), s the DLS scale: eps symmetric with principal strains <= 1%
        scale = dls_length_scale(proto.lattice, proto.frac_coords, r.species)
        eps = np.linalg.solve(proto.lattice * scale, r.lattice) - np.eye(3)
        assert np.allclose(eps, eps.T, atol=1e-12)
        assert np.abs(np.linalg.eigvalsh(eps)).max() <= 0.01 + 1e-12


def test_sheets_have_vacuum_and_are_2d(sheets):
    kinds = {r.labels["prototype"] for r in sheets}
    assert kinds == {"2D-honeycomb", "2D-buckled-honeycomb", "2D-square"}
    for r in sheets:
        assert r.labels["dimensionality"] == 2
        lat = r.lattice
        assert abs(lat[0, 2]) < 1e-12 and abs(lat[1, 2]) < 1e-12 and np.allclose(lat[2, :2], 0.0)
        z = r.cart_coords[:, 2]
        vacuum = lat[2, 2] - (z.max() - z.min())
        assert vacuum >= 15.0
        assert r.labels["vacuum_angstrom"] == pytest.approx(vacuum)
        if r.labels["prototype"] == "2D-buckled-honeycomb":
            assert set(r.species) <= {"Si", "Ge", "Sn"} and z.max() - z.min() > 0.4
        assert structure_validity(r)[0] and composition_validity(r.atomic_numbers)[0]


def test_progress_and_errors():
    calls = []
    SyntheticDatasetGenerator(seed=1).generate_dataset(3, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    for kwargs, word in [
        ({"fraction_2d": 1.5}, "fraction_2d"),
        ({"max_strain": -0.1}, "max_strain"),
        ({"substitution_temperature": 0}, "substitution_temperature"),
        ({"allowed_elements": ["Xx"]}, "Xx"),
    ]:
        with pytest.raises(TDDataError, match=word):
            SyntheticDatasetGenerator(**kwargs)
    with pytest.raises(TDDataError, match="n_samples"):
        SyntheticDatasetGenerator().generate_dataset(-1)


def test_allowed_elements_are_respected():
    allowed = ["Li", "Na", "K", "Mg", "Ca", "Al", "O", "S", "F", "Cl", "Si", "C", "N"]
    recs = SyntheticDatasetGenerator(seed=9, fraction_2d=0.0, allowed_elements=allowed).generate_dataset(30)
    assert all(set(r.species) <= set(allowed) for r in recs)
