"""The topological families (td_data.families): parent cells, their substitutions, their sources."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from importlib import resources

import numpy as np
import pytest
import spglib

from td_data.exceptions import TDDataError
from td_data.families import (
    SOURCE_PREFIX,
    _record,
    default_family_elements,
    expand_families,
    family_citations,
    family_prototype,
    topological_families,
)
from td_data.substitution import bond_radius_params
from td_data.validity import composition_validity, structure_validity
from td_physics.structure.parameters import valence_counts

FAMILIES = topological_families()
LABEL_KEYS = {"family", "prototype", "parent_label", "dimensionality", "substitution", "is_parent", "generator_seed"}


def space_group(lattice, frac, numbers, symprec=1e-3) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+: OLD_ERROR_HANDLING notice
        return int(spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=symprec).number)


def same_formula(formula: str) -> str:
    """pymatgen's reduced formula (element order by electronegativity: CuInSe2 is 'InCuSe2')."""
    from pymatgen.core import Composition

    return Composition(formula).reduced_formula


def electrons(record) -> int:
    return sum(sum(valence_counts(s)) for s in record.species)


@pytest.fixture(scope="module")
def expanded():
    return expand_families(8, seed=0)


# ------------------------------------------------------------------ the table
def test_the_table_holds_the_families_of_the_issue():
    expected = {"tetradymite", "tlbise2", "a7", "zincblende", "rocksalt", "na3bi", "khgsb", "antiperovskite",
                "half_heusler", "buckled_honeycomb", "buckled_bilayer", "bi_bilayer", "diamond", "chalcopyrite",
                "caagas", "septuple", "bitei", "flat_honeycomb", "tellurium", "inbi", "snse", "wurtzite",
                "black_phosphorus", "bi2o2se"}  # fmt: skip
    assert expected <= set(FAMILIES)
    assert {f.dimensionality for f in FAMILIES.values()} == {2, 3}
    assert all(f.parent_label in (None, "trivial", "z2_ti", "semimetal_or_metal") for f in FAMILIES.values())
    assert FAMILIES["tetradymite"].parent_label == "z2_ti" and FAMILIES["rocksalt"].parent_label == "trivial"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_parent_cell_has_the_expected_space_group_and_composition(name):
    family = FAMILIES[name]
    rec = family_prototype(name)
    assert rec.formula == same_formula(family.parent)
    assert space_group(rec.lattice, rec.frac_coords, rec.atomic_numbers) == family.parent_space_group
    assert rec.num_atoms <= 10
    assert structure_validity(rec)[0]
    assert rec.labels["dimensionality"] == family.dimensionality and rec.source == SOURCE_PREFIX + name


@pytest.mark.parametrize("name", list(FAMILIES))
def test_parent_bonds_match_the_covalent_radii(name):
    # an independent check of the typed coordinates and of the space-group setting: every site's nearest
    # neighbour sits at 0.9-1.25 times the sum of the two covalent radii (Cordero et al. 2008, as pymatgen ships
    # them). InBi's sites typed in origin choice 2 of P4/nmm, which pymatgen does not use, put In and Bi 1.0 A apart
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    structure = family_prototype(name).to_structure()
    for site in structure:
        nearest = min(structure.get_neighbors(site, 5.0), key=lambda n: n.nn_distance)
        bond = CovalentRadius.radius[site.specie.symbol] + CovalentRadius.radius[nearest.specie.symbol]
        assert 0.9 <= nearest.nn_distance / bond <= 1.25, (name, site.specie.symbol, nearest.nn_distance, bond)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_site_list_has_its_stated_space_group_when_every_slot_holds_its_own_element(name):
    family = FAMILIES[name]
    placeholders = dict(zip(family.slots, ["Na", "Mg", "Al", "Si", "P", "S"]))  # one element per slot
    sub = _record(family, [placeholders[s] for s in family.slots], index=0, seed=0, is_parent=False)
    assert space_group(sub.lattice, sub.frac_coords, sub.atomic_numbers) == family.space_group
    assert sub.num_atoms == family_prototype(name).num_atoms


def test_sources_resolve_to_full_citations():
    refs = json.loads((resources.files("td_data") / "data" / "topological_families.json").read_text())["references"]
    for name, family in FAMILIES.items():
        assert family.structure_source, name
        keys = family.structure_source + family.topology_source
        assert set(keys) <= set(refs), name
        cites = family_citations(SOURCE_PREFIX + name)
        assert cites == family.citations() == family_citations(name)
        assert len(cites) == len(set(keys))
        assert all(re.search(r"(19|20)\d\d\)", c) for c in cites), name
    with pytest.raises(TDDataError, match="no topological family named 'graphite'"):
        family_citations("graphite")


# ------------------------------------------------------------------ the expansion
def test_expansion_is_deterministic_per_seed_and_per_family():
    first = expand_families(6, seed=3, families=["tetradymite", "na3bi"])
    again = expand_families(6, seed=3, families=["tetradymite", "na3bi"])
    alone = expand_families(6, seed=3, families=["na3bi"])
    other = expand_families(6, seed=4, families=["tetradymite", "na3bi"])
    dump = lambda recs: json.dumps([r.to_dict() for r in recs], sort_keys=True)  # noqa: E731
    assert dump(first) == dump(again)
    assert dump([r for r in first if r.labels["family"] == "na3bi"]) == dump(alone)
    assert [r.formula for r in first] != [r.formula for r in other]


def test_expanded_crystals_are_distinct_balanced_isoelectronic_and_small(expanded):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher()
    by_family = {}
    for rec in expanded:
        by_family.setdefault(rec.labels["family"], []).append(rec)
    assert set(by_family) == set(FAMILIES)
    for name, recs in by_family.items():
        family = FAMILIES[name]
        parent = family_prototype(name)
        assert 1 <= len(recs) <= 8
        for i, rec in enumerate(recs):
            assert LABEL_KEYS <= set(rec.labels)
            assert rec.num_atoms == parent.num_atoms <= 20
            assert rec.source == SOURCE_PREFIX + name and rec.id == f"fam-0-{name}-{i:05d}"
            assert structure_validity(rec)[0]
            assert composition_validity(rec.atomic_numbers)[0] or rec.labels["is_parent"]
            assert electrons(rec) == electrons(parent)
            assert set(rec.species) <= set(default_family_elements()) | set(parent.species)
            for slot, element in rec.labels["substitution"].items():
                old = next(s.element for s in family.sites if s.label == slot)
                ratio = bond_radius_params(element)[0] / bond_radius_params(old)[0]
                assert 1 / 1.4 <= ratio <= 1.4
        for i, a in enumerate(recs):
            for b in recs[i + 1 :]:
                assert a.formula != b.formula or not matcher.fit(a.to_structure(), b.to_structure()), (name, a.id, b.id)


def test_each_family_starts_with_its_parent_unless_its_parent_cell_is_another_familys(expanded):
    firsts = {}
    for rec in expanded:
        firsts.setdefault(rec.labels["family"], rec)
    for name, rec in firsts.items():
        if name == "zincblende_cupt":  # HgTe in the doubled cell is the zincblende family's parent
            assert not rec.labels["is_parent"]
        else:
            assert rec.labels["is_parent"] and rec.formula == same_formula(FAMILIES[name].parent)


def test_2d_families_scale_the_sheet_and_keep_the_vacuum(expanded):
    sheets = [r for r in expanded if r.labels["dimensionality"] == 2]
    assert sheets
    for rec in sheets:
        z = np.sort(rec.cart_coords[:, 2])
        gap = rec.lattice[2, 2] - (z[-1] - z[0])
        assert gap == pytest.approx(rec.labels["vacuum_angstrom"], abs=1e-6)
        assert rec.labels["vacuum_angstrom"] == pytest.approx(20.0)
        assert np.allclose(rec.lattice[:2, 2], 0.0) and np.allclose(rec.lattice[2, :2], 0.0)


def test_n_total_shares_the_crystals_among_the_families_in_turn():
    recs = expand_families(n_total=2 * len(FAMILIES) + 1, seed=0)
    counts = {}
    for r in recs:
        counts[r.labels["family"]] = counts.get(r.labels["family"], 0) + 1
    assert len(recs) == 2 * len(FAMILIES) + 1
    assert sorted(counts.values())[0] >= 2 and max(counts.values()) == 3


def test_weights_share_n_total_among_the_families_and_equal_weights_are_the_round_robin():
    names = ["tetradymite", "rocksalt", "half_heusler"]
    plain = expand_families(n_total=9, seed=0, families=names)
    assert [r.id for r in expand_families(n_total=9, seed=0, families=names, weights={n: 2.0 for n in names})] == [
        r.id for r in plain
    ]
    weighted = expand_families(n_total=10, seed=0, families=names, weights={"tetradymite": 3, "rocksalt": 1})
    counts = {n: sum(r.labels["family"] == n for r in weighted) for n in names}
    assert counts == {"tetradymite": 6, "rocksalt": 2, "half_heusler": 2}
    # a family's crystals do not depend on its share: the first two tetradymites are the same either way
    assert [r.id for r in weighted if r.labels["family"] == "tetradymite"][:2] == [
        r.id for r in plain if r.labels["family"] == "tetradymite"
    ][:2]


def test_elements_restrict_the_substitutes_and_a_parent_outside_them_is_left_out():
    recs = expand_families(5, seed=0, families=["rocksalt"], elements=["Pb", "Se", "S", "Ge"])
    assert recs and all(set(r.species) <= {"Pb", "Se", "S", "Ge"} for r in recs)
    assert not any(r.labels["is_parent"] for r in recs)  # SnTe holds elements outside the list


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of n_per_family and n_total"),
        ({"n_per_family": 2, "n_total": 4}, "give exactly one of n_per_family and n_total"),
        ({"n_per_family": 0}, "n_per_family must be a positive integer, got 0"),
        ({"n_total": 2.5}, "n_total must be a positive integer, got 2.5"),
        ({"n_per_family": 1, "families": ["graphite"]}, "no topological family named 'graphite'"),
        ({"n_per_family": 1, "families": []}, "families must name at least one family"),
        ({"n_per_family": 1, "max_radius_ratio": 0.5}, "max_radius_ratio must be at least 1"),
        ({"n_per_family": 1, "seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"n_per_family": 1, "substitution_temperature": 0}, "substitution_temperature must be positive"),
        ({"n_per_family": 1, "elements": ["Xx"]}, "Xx"),
        ({"n_per_family": 1, "weights": {"rocksalt": 2}}, "weights share n_total among the families"),
        (
            {"n_total": 4, "families": ["rocksalt"], "weights": {"a7": 2}},
            r"weights name families that are not expanded: \['a7'\]",
        ),
        ({"n_total": 4, "weights": {"rocksalt": 0}}, r"weights\['rocksalt'\] must be a finite number > 0, got 0"),
        ({"n_total": 4, "weights": {"rocksalt": float("inf")}}, r"weights\['rocksalt'\] must be a finite number > 0"),
        ({"n_total": 4, "weights": [2]}, "weights must be a mapping"),
    ],
)
def test_bad_input_names_the_rule_and_the_value(kwargs, message):
    with pytest.raises(TDDataError, match=message):
        expand_families(**kwargs)


def test_unknown_family_prototype_is_refused():
    with pytest.raises(TDDataError, match="no topological family named 'nope'; known: tetradymite"):
        family_prototype("nope")


@pytest.mark.parametrize(
    ("space_group", "lattice", "cell"),
    [
        (122, {"a": 5.0, "c": 10.0}, [5.0, 5.0, 10.0, 90.0, 90.0, 90.0]),
        (62, {"a": 11.5, "b": 4.15, "c": 4.44}, [11.5, 4.15, 4.44, 90.0, 90.0, 90.0]),
        (14, {"a": 8.2, "b": 4.5, "c": 9.0, "beta": 112.8}, [8.2, 4.5, 9.0, 90.0, 112.8, 90.0]),
        (166, {"a": 4.1, "c": 28.6}, [4.1, 4.1, 28.6, 90.0, 90.0, 120.0]),
        (225, {"a": 6.3}, [6.3, 6.3, 6.3, 90.0, 90.0, 90.0]),
    ],
)
def test_the_conventional_cell_follows_the_crystal_system(space_group, lattice, cell):
    from td_data.families import _conventional_lattice

    family = dataclasses.replace(FAMILIES["rocksalt"], space_group=space_group, lattice=lattice)
    assert np.allclose(_conventional_lattice(family).parameters, cell)


def test_a_lattice_with_the_wrong_parameters_for_its_system_names_them():
    from td_data.families import _conventional_lattice

    family = dataclasses.replace(FAMILIES["chalcopyrite"], lattice={"a": 5.78})
    rule = r"'chalcopyrite': a tetragonal lattice \(space group 122\) takes a, c; got a"
    with pytest.raises(TDDataError, match=rule):
        _conventional_lattice(family)
