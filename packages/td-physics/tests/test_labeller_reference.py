"""The structure labeller against the literature reference table (issue 4, docs/labeller_accuracy.md).

The table (``td_physics/data/reference_materials.json``) holds the materials the issue names (Bi2Se3,
Bi2Te3, Sb2Te3 strong TIs; Si, GaAs, NaCl trivial; Cu a metal) and a broader set. The tests pin the
measured outcome, failures included, so that any change of the labeller that moves a label shows
up here and in the document together.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import spglib
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics.classify import classify_structure
from td_physics.structure import load_table, tight_binding_from_structure
from td_physics.structure.accuracy import labeller_accuracy, measured_accuracy
from td_physics.structure.reference import reference_materials, reference_structure, strained, supercell

ISSUE_TABLE = {
    "Bi2Se3": "z2_ti",
    "Bi2Te3": "z2_ti",
    "Sb2Te3": "z2_ti",
    "Si": "trivial",
    "GaAs": "trivial",
    "NaCl": "trivial",
    "Cu": "semimetal_or_metal",
}
# measured with the default variants and max_band_overlap=0.5 eV (docs/labeller_accuracy.md)
KNOWN_FAILURES = {
    "Bi2Te3": "semimetal_or_metal",  # 4 of 6 variants overlap by more than 0.5 eV: confidence 0.67
    "Sb2Te3": "z2_ti",  # right class, but 3 variants say weak (0;111), 3 strong (1;000): confidence 0.5
    "HgTe": "trivial",  # the sp3 model puts the s-like Gamma6 level above Gamma8: no inversion
    "Bi": "z2_ti",  # A7 Bi: valence bands (1;111) in 4 of 6 variants (literature: semimetal, (0;000))
    "Sb": "z2_ti",  # A7 Sb: (1;111) is right for its valence bands, but the model misses the band overlap
}


def _numbers(species):
    symbols = load_table("valence_electrons")["elements"]
    return [symbols[s]["Z"] for s in species]


def test_the_issue_materials_are_in_the_table_with_sources():
    table = reference_materials()
    refs = load_table("reference_materials")["references"]
    for name, expected in ISSUE_TABLE.items():
        assert table[name].expected == expected
        assert table[name].structure_source and table[name].expected_source
        assert all(key in refs for key in table[name].structure_source + table[name].expected_source)
    assert all(m.citations() for m in table.values())


@pytest.mark.parametrize(
    ("name", "space_group", "natoms"),
    [("Bi2Se3", 166, 5), ("Si", 227, 2), ("GaAs", 216, 2), ("NaCl", 225, 2), ("Cu", 225, 1), ("Bi", 166, 2)],
)
def test_reference_structures_have_their_space_groups(name, space_group, natoms):
    lattice, frac, species = reference_structure(name)
    assert len(frac) == natoms
    assert spglib.get_symmetry_dataset((lattice, frac, _numbers(species)), symprec=1e-3).number == space_group


def test_the_labeller_on_the_reference_table():
    report = labeller_accuracy()
    rows = {r.material: r for r in report.rows}
    for name, expected in ISSUE_TABLE.items():
        if name not in KNOWN_FAILURES:
            assert rows[name].correct and rows[name].computed == expected, (name, rows[name])
    assert rows["Bi2Se3"].z2_indices == (1, 0, 0, 0) and rows["Bi2Se3"].confidence == 1.0
    assert rows["Bi2Te3"].confidence == pytest.approx(4 / 6)  # the band-edge search finds a fourth overlap
    assert all(rows[n].correct and rows[n].confidence == 1.0 for n in ("Cu", "Al", "Na"))  # the elemental metals
    assert {n for n, r in rows.items() if not r.correct} == set(KNOWN_FAILURES)
    assert {n: rows[n].computed for n in KNOWN_FAILURES} == KNOWN_FAILURES
    s = report.summary
    # the aims of issue 4: >= 90% right among confident labels, >= half of the set labelled confidently
    assert s["confident_accuracy"] >= 0.9 and s["coverage"] >= 0.5, s
    assert s["refused"] == []
    # the packaged sweep that the report and the document quote holds this measurement (the default 0.5 eV)
    packaged = measured_accuracy()[0.5]
    assert (packaged.materials, packaged.confident, packaged.confident_correct) == (
        s["materials"],
        s["confident"],
        s["confident_correct"],
    )
    assert list(packaged.wrong) == s["wrong"] == [n for n in rows if n in KNOWN_FAILURES]
    # confidence is informative: the confident labels are right more often than the unconfident ones
    unconfident = [r for r in report.rows if r.confidence < 0.8]
    assert sum(r.correct for r in unconfident) / len(unconfident) < s["confident_accuracy"]


def test_band_overlap_tolerance_is_explicit():
    lattice, frac, species = reference_structure("Bi2Se3")
    strict = classify_structure(lattice, frac, species, max_band_overlap=0.0)
    tolerant = classify_structure(lattice, frac, species)
    assert strict.topo_class == "semimetal_or_metal"
    assert tolerant.topo_class == "z2_ti" and tolerant.indirect_gap < 0
    assert any(a.method == "parity+overlap" for a in tolerant.variants)
    # the strict reading's metals are exactly the variants whose bands overlap; with the tolerance every
    # one of them reports the invariant of its (separated) valence bands, the same (1;000) for all six
    for loose, tight in zip(tolerant.variants, strict.variants):
        assert loose.z2_indices == (1, 0, 0, 0) and loose.direct_gap > 1e-3
        assert (tight.topo_class == "semimetal_or_metal") == (loose.indirect_gap <= 1e-3)


@pytest.mark.slow
def test_labels_survive_strain_supercells_and_origin_shifts():
    rng = np.random.default_rng(0)
    for name in ("Bi2Se3", "GaAs", "NaCl", "Cu", "PbTe"):
        lattice, frac, species = reference_structure(name)
        base = classify_structure(lattice, frac, species)
        for strain in (-0.01, 0.01):
            assert classify_structure(strained(lattice, strain), frac, species).topo_class == base.topo_class
        shift = rng.random(3)
        moved = classify_structure(lattice, (frac + shift) % 1.0, species)
        assert (moved.topo_class, moved.z2_indices) == (base.topo_class, base.z2_indices)
        big = classify_structure(*supercell(lattice, frac, species, (1, 1, 2)))
        assert big.topo_class == base.topo_class, name


def test_a_supercell_is_classified_as_its_primitive_cell():
    lattice, frac, species = reference_structure("Bi2Se3")
    base = classify_structure(lattice, frac, species)
    big = supercell(lattice, frac, species, (2, 2, 1))
    reduced = classify_structure(*big)
    assert (reduced.topo_class, reduced.z2_indices, reduced.confidence) == (base.topo_class, base.z2_indices, 1.0)
    # as given, the folded bands of the overlap cross in some variants: why the labeller reduces the cell
    folded = classify_structure(*big, reduce_to_primitive=False)
    assert folded.confidence < 1.0


_NAMES = sorted(reference_materials())


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(_NAMES),
    shift=st.lists(st.floats(0, 1, allow_nan=False), min_size=3, max_size=3),
    k=st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_built_hamiltonians_keep_the_crystal_symmetries(name, shift, k, seed):
    """With the shipped tables: hermiticity, time reversal, [P, H] = 0 at the TRIMs, and a spectrum
    that ignores the origin and the order of the atoms."""
    lattice, frac, species = reference_structure(name)
    model = tight_binding_from_structure(lattice, frac, species)
    kk = np.array([k])[:, : model.dim_k]
    h = model.hamiltonian(kk)[0]
    assert np.allclose(h, h.conj().T, atol=1e-12)
    assert model.is_time_reversal_symmetric()
    if model.inversion is not None:
        for trim in itertools.product((0.0, 0.5), repeat=model.dim_k):
            p, ht = model.inversion.matrix_at(np.array(trim)), model.hamiltonian(np.array([trim]))[0]
            assert np.allclose(p @ ht, ht @ p, atol=1e-9)
    order = np.random.default_rng(seed).permutation(len(frac))
    moved = tight_binding_from_structure(lattice, (frac[order] + np.array(shift)) % 1.0, [species[i] for i in order])
    assert np.allclose(model.eigvalsh(kk), moved.eigvalsh(kk), atol=1e-8)


def test_a_skewed_basis_is_classified_in_its_reduced_basis():
    from td_physics.classify import primitive_cell

    lattice, frac, species = reference_structure("GaAs")
    shear = np.array([[1, 6, 0], [0, 1, 9], [0, 0, 1]])  # the same lattice, vectors of 26 and 38 A
    skewed, skewed_frac = shear @ lattice, (frac @ np.linalg.inv(shear)) % 1.0
    reduced, _, _ = primitive_cell(skewed, skewed_frac, np.array(species))
    assert np.linalg.norm(reduced, axis=1).max() < 4.1 and abs(np.linalg.det(reduced)) == pytest.approx(
        abs(np.linalg.det(lattice))
    )
    base, moved = classify_structure(lattice, frac, species), classify_structure(skewed, skewed_frac, species)
    assert (moved.topo_class, moved.confidence) == (base.topo_class, 1.0)
    assert moved.indirect_gap == pytest.approx(base.indirect_gap, abs=0.05)
    well_formed, _, _ = primitive_cell(lattice, frac, np.array(species))
    assert np.array_equal(well_formed, lattice)  # a well-formed basis is kept as given


@pytest.mark.parametrize("name", ["Bi", "Bi2Se3", "NaCl"])
def test_inversion_survives_a_tiny_origin_shift(name):
    """Found by hypothesis: A7 Bi shifted by 1e-5 lost its inversion, because the centre came from
    spglib's symmetrised translation instead of the atoms' positions."""
    lattice, frac, species = reference_structure(name)
    moved = tight_binding_from_structure(lattice, (frac + np.array([1e-5, 0.0, 0.0])) % 1.0, species)
    assert moved.inversion is not None
