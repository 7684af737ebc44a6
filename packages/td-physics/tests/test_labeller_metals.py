"""Elemental metals are metals: the 8 - N rule and the band-edge search of the labeller.

``data/elemental_metal_cells.json`` holds the one-element cells (Rb, Ca, Cu, Al, Ga in AFLOW
prototypes of up to four sites, at their DLS volume) that the labeller once called ``z2_ti`` or
``trivial``; docs/labeller_accuracy.md says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics.bands import band_edges, density_mesh, irreducible_mesh, refine_band_edges
from td_physics.classify import classify_structure, electron_deficient_element
from td_physics.exceptions import KPointError
from td_physics.structure import DEFAULT_VARIANTS
from td_physics.structure.builder import variant_stacks
from td_physics.structure.reference import reference_structure

CELLS = json.loads((Path(__file__).parent / "data" / "elemental_metal_cells.json").read_text())["cells"]
FCC = 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
CA_FCC = np.array(next(c["lattice"] for c in CELLS if (c["element"], c["prototype"]) == ("Ca", "A_cF4_225_a")))


@pytest.mark.parametrize("cell", CELLS, ids=[f"{c['element']}-{c['prototype']}" for c in CELLS])
def test_reproduced_false_positives_are_metals(cell):
    result = classify_structure(
        np.array(cell["lattice"]),
        np.array(cell["frac_coords"]),
        [cell["element"]] * len(cell["frac_coords"]),
        gap_mesh=4,
    )
    assert result.topo_class == "semimetal_or_metal" and result.confidence == 1.0
    assert {a.method for a in result.variants} == {"electron-deficient"}


def test_the_fixture_holds_the_reported_elements_and_both_wrong_labels():
    assert {c["element"] for c in CELLS} == {"Rb", "Ca", "Cu", "Al", "Ga"}
    assert {c["label_before"] for c in CELLS} == {"z2_ti", "trivial"}


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ([20], "Ca"),
        (["Rb", "Rb"], "Rb"),
        ([29, 29, 29, 29], "Cu"),  # d10 in the core: one valence electron
        (["Ga"], "Ga"),
        (["Hg"], "Hg"),
        (["B"] * 12, None),  # three-centre bonds: alpha-boron is a semiconductor
        (["H", "H"], None),  # molecular H2
        (["Si", "Si"], None),  # N = 4: the 8 - N rule allows four bonds
        (["Sb", "Sb"], None),
        (["Ca", "Mg"], None),  # compounds are left to their bands
    ],
)
def test_the_8_minus_n_rule(numbers, expected):
    assert electron_deficient_element(numbers) == expected


_METALS = [
    "Li",
    "Na",
    "K",
    "Rb",
    "Cs",
    "Be",
    "Mg",
    "Ca",
    "Sr",
    "Ba",
    "Cu",
    "Ag",
    "Au",
    "Zn",
    "Cd",
    "Al",
    "Ga",
    "In",
    "Tl",
]


@settings(max_examples=12, deadline=None)
@given(
    element=st.sampled_from(_METALS),
    scale=st.floats(2.2, 3.4),
    strain=st.lists(st.floats(-0.1, 0.1), min_size=6, max_size=6),
    second=st.lists(st.floats(0.2, 0.8), min_size=3, max_size=3),
)
def test_any_one_element_cell_of_a_simple_metal_is_a_metal(element, scale, strain, second):
    """Two atoms anywhere in a strained cell of a group 1, 2, 11, 12 or 13 element: never an insulator."""
    eps = np.array(
        [[strain[0], strain[3], strain[4]], [strain[3], strain[1], strain[5]], [strain[4], strain[5], strain[2]]]
    )
    lattice = 2 * scale * FCC @ (np.eye(3) + eps)
    frac = np.array([[0.0, 0.0, 0.0], second])
    result = classify_structure(lattice, frac, [element, element], gap_mesh=4)
    assert result.topo_class == "semimetal_or_metal"


def test_the_mesh_alone_reads_fcc_ca_as_an_insulator_and_the_edge_search_finds_the_overlap():
    """The cause of the fcc-Ca false positive, without the 8 - N rule: the valence band peaks on an
    anticrossing between the points of the default mesh."""
    frac, numbers = np.zeros((1, 3)), np.array([20])
    ((_, stack),) = variant_stacks(CA_FCC, frac, numbers, list(DEFAULT_VARIANTS[:1]))
    nocc, norb = stack.n_electrons, stack.norb

    def hamiltonian(k):
        return stack.hamiltonian(k, [0])

    def edges_on(mesh, n_best=1):
        return band_edges(hamiltonian, irreducible_mesh(CA_FCC, frac, numbers, mesh), nocc, 1, norb, n_best=n_best)

    mesh = density_mesh(CA_FCC)
    coarse = edges_on(mesh, n_best=2)
    dense = edges_on(tuple(4 * m for m in mesh))
    refined = refine_band_edges(lambda k, m: hamiltonian(k)[m], coarse, nocc, 1.0 / np.array(mesh))
    assert coarse.indirect[0] > 0.1  # a gap on the default mesh
    assert dense.indirect[0] < -0.4  # an overlap of half an eV on a mesh four times denser
    assert refined.indirect[0] <= dense.indirect[0] + 0.05  # the edge search finds it from the coarse mesh
    # searching can only find higher valence and lower conduction states than the mesh had
    assert refined.vbm[0] >= coarse.vbm[0] and refined.cbm[0] <= coarse.cbm[0] and refined.direct[0] <= coarse.direct[0]


def test_the_edge_search_leaves_the_topological_insulators_alone():
    for name in ("Bi2Se3", "Sb2Te3"):
        result = classify_structure(*reference_structure(name))
        assert result.topo_class == "z2_ti" and result.indirect_gap > -0.5, name
    searched = classify_structure(*reference_structure("Bi2Se3"))
    mesh_only = classify_structure(*reference_structure("Bi2Se3"), edge_levels=None)
    assert (
        (searched.z2_indices, searched.confidence)
        == (mesh_only.z2_indices, mesh_only.confidence)
        == ((1, 0, 0, 0), 1.0)
    )
    for a, b in zip(searched.variants, mesh_only.variants):
        assert a.indirect_gap <= b.indirect_gap and a.direct_gap <= b.direct_gap


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_edge_levels_are_checked(bad):
    with pytest.raises(KPointError, match="edge_levels"):
        classify_structure(*reference_structure("Si"), edge_levels=bad)
