"""The batched labeller paths equal the one-variant, one-k-point computations they replace.

No timing here (see benchmarks/labeller_throughput.py): the variant stack built from one neighbour
list, its batched Hamiltonian, the k-point-density gap mesh and its irreducible points, the parity
blocks at the TRIMs and the merging of identical variants.
"""

from __future__ import annotations

import numpy as np
import pytest

from td_physics.bands import batched_band_gaps, density_mesh, irreducible_mesh, uniform_mesh
from td_physics.classify import classify_structure
from td_physics.fields import electric_field
from td_physics.invariants import parity_z2
from td_physics.invariants.parity import batched_parity_deltas
from td_physics.model import stacked_hamiltonian
from td_physics.structure import DEFAULT_VARIANTS, Variant, neighbour_list, tight_binding_from_structure
from td_physics.structure.builder import tight_binding_variants
from td_physics.structure.parameters import hopping_integrals
from td_physics.structure.reference import reference_structure, supercell
from td_physics.structure.slater_koster import slater_koster_blocks

# Spin-orbit constants are test inputs (eV), so the tests do not depend on the sourced table.
SO = {"Si": 0.03, "Ga": 0.1, "As": 0.2, "Bi": 1.5, "Se": 0.3, "Pb": 1.0, "Te": 0.5}
FCC = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) * 0.5
TRIMS = np.array([[a, b, c] for a in (0, 0.5) for b in (0, 0.5) for c in (0, 0.5)])


def bi2se3():
    return reference_structure("Bi2Se3")


def gaas():
    return 5.653 * FCC, np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), ["Ga", "As"]


def pbte():
    return 6.46 * FCC, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), ["Pb", "Te"]


def silicon():
    return 5.431 * FCC, np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), ["Si", "Si"]


def reference_hoppings(lattice, frac, species, variant):
    """T_R of one variant, bond by bond (a plain loop, the definition the batched builder implements)."""
    model = tight_binding_from_structure(lattice, frac, species, variant, spin_orbit_constants=SO)
    atom = np.asarray(model.metadata["orbital_atom"])
    local = np.array([np.sum(atom[:k] == atom[k]) for k in range(len(atom))])  # s, px, py, pz
    bonds = neighbour_list(lattice, np.asarray(frac, dtype=float), 3, variant.cutoff)
    integrals = hopping_integrals(variant, bonds["d"], bonds["d_ref"]) * bonds["weight"][:, None]
    out: dict[tuple[int, ...], np.ndarray] = {}
    for b in range(len(bonds["d"])):
        block = slater_koster_blocks(bonds["vector"][b : b + 1], integrals[b : b + 1])[0]
        key = tuple(int(x) for x in bonds["R"][b])
        t = out.setdefault(key, np.zeros((model.norb, model.norb), dtype=complex))
        for p in np.flatnonzero(atom == bonds["i"][b]):
            for q in np.flatnonzero(atom == bonds["j"][b]):
                for s in (0, 1):
                    t[2 * p + s, 2 * q + s] += block[local[p], local[q]]
    return out


@pytest.mark.parametrize("structure", [bi2se3, gaas, pbte])
def test_one_neighbour_list_builds_every_variant_as_the_bond_by_bond_definition(structure):
    lattice, frac, species = structure()
    stack = tight_binding_variants(lattice, frac, species, DEFAULT_VARIANTS, spin_orbit_constants=SO)
    k = np.random.default_rng(1).random((5, 3))
    h_stack = stack.hamiltonian(k)
    for v, variant in enumerate(DEFAULT_VARIANTS):
        alone = tight_binding_from_structure(lattice, frac, species, variant, spin_orbit_constants=SO)
        model = stack.model(v)
        reference = reference_hoppings(lattice, frac, species, variant)
        assert set(model.hoppings) == set(alone.hoppings) == set(reference)
        for r, t in reference.items():
            assert np.abs(model.hoppings[r] - t).max() < 1e-12
            assert np.abs(alone.hoppings[r] - t).max() < 1e-12
        assert np.abs(model.onsite - alone.onsite).max() < 1e-12
        assert model.metadata == alone.metadata and model.metadata["n_bonds"] == alone.metadata["n_bonds"]
        assert (model.inversion is None) == (alone.inversion is None)
        assert np.abs(h_stack[v] - alone.hamiltonian(k)).max() < 1e-12
    assert np.abs(h_stack - stacked_hamiltonian(stack.models, k)).max() < 1e-12


def test_inversion_is_checked_on_every_variant():
    lattice, frac, species = silicon()
    variants = DEFAULT_VARIANTS[:2]
    plain = tight_binding_variants(lattice, frac, species, variants, spin_orbit_constants=SO)
    parallel = tight_binding_variants(
        lattice, frac, species, variants, spin_orbit_constants=SO, magnetic_moments=[1, 1]
    )
    opposite = tight_binding_variants(
        lattice, frac, species, variants, spin_orbit_constants=SO, magnetic_moments=[1, -1]
    )
    assert all(op is not None for op in plain.inversion + parallel.inversion)
    assert opposite.inversion == [None, None]  # antiparallel moments on the inversion partners break it
    assert plain.model(0).inversion == plain.inversion[0]


def test_field_on_a_sheet_equals_the_field_applied_to_the_model():
    a, buckle, c = 3.86, 0.46, 20.0
    lattice = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    frac = np.array([[1 / 3, 2 / 3, 0.5 + buckle / (2 * c)], [2 / 3, 1 / 3, 0.5 - buckle / (2 * c)]])
    variants = DEFAULT_VARIANTS[:2]
    biased = tight_binding_variants(lattice, frac, [14, 14], variants, spin_orbit_constants=SO, electric_field=0.05)
    for v, variant in enumerate(variants):
        sheet = tight_binding_from_structure(lattice, frac, [14, 14], variant, spin_orbit_constants=SO)
        expected = electric_field(sheet, [0.0, 0.0, 0.05])
        assert biased.model(v).dim_k == 2 and biased.inversion[v] is None
        assert np.abs(biased.model(v).onsite - expected.onsite).max() < 1e-12
        assert biased.model(v).metadata["applied_fields"] == expected.metadata["applied_fields"]


def test_density_mesh_scales_with_the_cell():
    lattice, frac, species = bi2se3()
    assert density_mesh(lattice) == (8, 8, 8)
    assert density_mesh(supercell(lattice, frac, species, (2, 2, 1))[0]) == (4, 4, 8)
    assert density_mesh(supercell(lattice, frac, species, (1, 1, 2))[0]) == (8, 8, 4)
    assert density_mesh(gaas()[0]) == density_mesh(silicon()[0] * 5.653 / 5.431) == (8, 8, 8)
    assert density_mesh(40 * np.eye(3)) == (2, 2, 2)  # at least two points, so Gamma and the zone boundary
    assert all(n % 2 == 0 for n in density_mesh(np.diag([3.0, 4.1, 7.7]), density=5.0))  # every TRIM on the mesh
    assert density_mesh(lattice, density=2.0) == (4, 4, 4)
    assert len(uniform_mesh((4, 4, 8))) == 128


def test_irreducible_points_of_an_unequal_supercell_mesh_give_the_full_mesh_gaps():
    lattice, frac, species = supercell(*bi2se3(), (2, 1, 1))
    models = tight_binding_variants(lattice, frac, species, DEFAULT_VARIANTS[:2], spin_orbit_constants=SO).models
    nocc = models[0].metadata["n_electrons"]
    for mesh in (density_mesh(lattice), (2, 4, 6)):
        kir = irreducible_mesh(lattice, frac, species, mesh)
        assert len(kir) < np.prod(mesh)
        full = batched_band_gaps(models, nocc, mesh)
        reduced = batched_band_gaps(models, nocc, kpoints=kir)
        assert np.allclose(full, reduced, atol=1e-10)


@pytest.mark.parametrize("structure", [bi2se3, pbte, silicon])
def test_parity_blocks_equal_the_eigenvector_parities_of_each_variant(structure):
    lattice, frac, species = structure()
    stack = tight_binding_variants(lattice, frac, species, DEFAULT_VARIANTS, spin_orbit_constants=SO)
    op, nocc = stack.inversion[0], stack.n_electrons
    h = stack.hamiltonian(TRIMS)
    blocks, gap_blocks = batched_parity_deltas(h, TRIMS, op, nocc, method="blocks")
    eigh, gap_eigh = batched_parity_deltas(h, TRIMS, op, nocc, method="eigh")
    assert np.array_equal(blocks, eigh) and np.allclose(gap_blocks, gap_eigh, atol=1e-10)
    for v in range(len(stack)):
        one = parity_z2(stack.model(v), nocc, op)
        assert list(one.details["deltas"]) == blocks[v].tolist()
        assert one.min_gap == pytest.approx(gap_blocks[v], abs=1e-10)


def test_parity_blocks_fall_back_to_eigenvectors_at_a_degeneracy():
    # a 2x2x1 supercell of (metallic) Bi2Se3 folds bands onto its TRIMs: degeneracies across the filling
    lattice, frac, species = supercell(*bi2se3(), (2, 2, 1))
    stack = tight_binding_variants(lattice, frac, species, DEFAULT_VARIANTS[:1], spin_orbit_constants=SO)
    h = stack.hamiltonian(TRIMS)
    op, nocc = stack.inversion[0], stack.n_electrons
    blocks = batched_parity_deltas(h, TRIMS, op, nocc, method="blocks")
    eigh = batched_parity_deltas(h, TRIMS, op, nocc, method="eigh")
    assert np.array_equal(blocks[0], eigh[0]) and np.allclose(blocks[1], eigh[1])


def per_variant_reference(lattice, frac, species, variants, mesh):
    """The labeller before batching: one model per variant, gaps on the irreducible mesh, parities per model."""
    models = [tight_binding_from_structure(lattice, frac, species, v, spin_orbit_constants=SO) for v in variants]
    nocc = models[0].metadata["n_electrons"]
    direct, indirect = batched_band_gaps(models, nocc, kpoints=irreducible_mesh(lattice, frac, species, mesh))
    out = []
    for m, d, i in zip(models, direct, indirect):
        z2 = parity_z2(m, nocc, m.inversion).value if i > 1e-3 and m.inversion is not None else None
        out.append((d, i, z2))
    return out


@pytest.mark.parametrize("structure", [pbte, silicon, bi2se3])
def test_classification_on_the_same_mesh_is_unchanged(structure):
    lattice, frac, species = structure()
    res = classify_structure(
        lattice, frac, species, spin_orbit_constants=SO, gap_mesh=8, max_band_overlap=0.0, edge_levels=None
    )  # the mesh alone: the reference below does not search between mesh points
    reference = per_variant_reference(lattice, frac, species, DEFAULT_VARIANTS, 8)
    for answer, (d, i, z2) in zip(res.variants, reference):
        assert answer.direct_gap == pytest.approx(d, abs=1e-8) and answer.indirect_gap == pytest.approx(i, abs=1e-8)
        assert answer.z2_indices == z2


def test_identical_variants_are_computed_once_and_reported_each():
    lattice, frac, species = gaas()
    stack = tight_binding_variants(lattice, frac, species, DEFAULT_VARIANTS, spin_orbit_constants=SO)
    # nearest-neighbour bonds only: the exponential law equals d^-2 at d_ref, the wider cutoff adds nothing
    assert stack.duplicates() == [0, 1, 0, 1, 0, 1]
    assert sorted(set(tight_binding_variants(*bi2se3(), DEFAULT_VARIANTS, spin_orbit_constants=SO).duplicates())) == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    together = classify_structure(lattice, frac, species, spin_orbit_constants=SO)
    assert [a.variant for a in together.variants] == [v.name for v in DEFAULT_VARIANTS]
    for v, variant in enumerate(DEFAULT_VARIANTS):
        answer = together.variants[v]
        alone = classify_structure(lattice, frac, species, spin_orbit_constants=SO, variants=[variant]).variants[0]
        assert (alone.variant, alone.topo_class, alone.z2_indices, alone.method, alone.converged) == (
            answer.variant,
            answer.topo_class,
            answer.z2_indices,
            answer.method,
            answer.converged,
        )
        assert alone.indirect_gap == pytest.approx(answer.indirect_gap, abs=1e-10)
        assert alone.direct_gap == pytest.approx(answer.direct_gap, abs=1e-10)


def test_default_gap_mesh_follows_the_density_and_an_int_overrides_it():
    lattice, frac, species = silicon()
    variant = [Variant()]
    dense = classify_structure(lattice, frac, species, spin_orbit_constants=SO, variants=variant)
    explicit = classify_structure(
        lattice, frac, species, spin_orbit_constants=SO, variants=variant, gap_mesh=density_mesh(lattice)
    )
    coarse = classify_structure(lattice, frac, species, spin_orbit_constants=SO, variants=variant, gap_mesh=2)
    assert density_mesh(lattice) == (10, 10, 10)  # |b| = 2.004 / Angstrom: 8.02 points, rounded up to even
    assert dense == explicit
    assert dense.topo_class == coarse.topo_class == "trivial"
    assert dense.indirect_gap <= coarse.indirect_gap + 1e-12  # the 2x2x2 points are on the 10x10x10 mesh


@pytest.mark.parametrize("field", [0.0, 0.01])
def test_labeller_flow_resolution_gives_the_library_default_answers(field):
    # silicene close to its field-driven transition: the flow is the hardest here (small gaps)
    from td_physics.classify import WCC_OPTIONS
    from td_physics.invariants import z2_invariant

    a, buckle, c = 3.86, 0.46, 20.0
    lattice = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    frac = np.array([[1 / 3, 2 / 3, 0.5 + buckle / (2 * c)], [2 / 3, 1 / 3, 0.5 - buckle / (2 * c)]])
    kw = {"electric_field": field} if field else {}
    stack = tight_binding_variants(lattice, frac, [14, 14], DEFAULT_VARIANTS[:2], spin_orbit_constants=SO, **kw)
    for v in range(len(stack)):
        model = stack.model(v)
        model.inversion = None  # the flow, also where parities would decide
        default = z2_invariant(model, stack.n_electrons, method="wcc", max_string=384, max_pump=101)
        labeller = z2_invariant(model, stack.n_electrons, method="wcc", options=WCC_OPTIONS)
        assert (labeller.value, labeller.converged) == (default.value, default.converged)
