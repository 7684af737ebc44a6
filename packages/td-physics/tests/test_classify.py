"""classify_structure: consensus over variants, method agreement, cell invariance, input forms."""

from __future__ import annotations

import numpy as np
import pytest

from td_physics.classify import classify_structure, structure_arrays
from td_physics.invariants import parity_z2, z2_indices
from td_physics.structure import Variant, tight_binding_from_structure

SI_LATTICE = 0.5 * 5.431 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
SI_COORDS = [[0, 0, 0], [0.25, 0.25, 0.25]]
SO = {"Si": 0.03, "Ga": 0.1, "As": 0.2}  # test values, not sourced constants


def test_silicon_is_a_confident_trivial_insulator_by_parities():
    res = classify_structure(SI_LATTICE, SI_COORDS, ["Si", "Si"], spin_orbit_constants=SO)
    assert res.topo_class == "trivial" and res.z2_indices == (0, 0, 0, 0)
    assert res.confidence == 1.0 and not res.flagged
    assert {v.method for v in res.variants} == {"parity"}
    assert res.indirect_gap > 0.5
    labels = res.as_labels()
    assert labels["label_source"].startswith("td-physics universal tight binding")


def test_parity_and_wannier_centres_agree_on_a_centrosymmetric_crystal():
    model = tight_binding_from_structure(SI_LATTICE, SI_COORDS, ["Si", "Si"], Variant(), spin_orbit_constants=SO)
    assert model.inversion is not None
    nocc = model.metadata["n_electrons"]
    assert z2_indices(model, nocc, method="wcc").value == parity_z2(model, nocc).value == (0, 0, 0, 0)


def test_class_does_not_depend_on_the_cell_or_the_origin():
    conventional = 5.431 * np.eye(3)
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    coords = np.vstack([fcc, fcc + 0.25])
    variant = [Variant()]
    prim = classify_structure(SI_LATTICE, SI_COORDS, ["Si"] * 2, variants=variant, spin_orbit_constants=SO)
    conv = classify_structure(conventional, coords, ["Si"] * 8, variants=variant, spin_orbit_constants=SO, gap_mesh=4)
    shifted = classify_structure(
        SI_LATTICE,
        np.mod(np.array(SI_COORDS) + [0.11, 0.3, 0.05], 1),
        ["Si"] * 2,
        variants=variant,
        spin_orbit_constants=SO,
    )
    assert prim.topo_class == conv.topo_class == shifted.topo_class == "trivial"
    assert conv.indirect_gap == pytest.approx(prim.indirect_gap, abs=0.05)


def test_without_inversion_the_wannier_centres_decide():
    lattice = 0.5 * 5.653 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    res = classify_structure(lattice, SI_COORDS, ["Ga", "As"], spin_orbit_constants=SO, variants=[Variant()])
    assert res.topo_class == "trivial" and res.variants[0].method == "wcc"


def test_odd_electron_count_is_a_metal():
    # one Si atom per cell: 4 electrons per spin-degenerate cell are fine, so use B (3 electrons)
    lattice = 2.5 * np.eye(3)
    res = classify_structure(lattice, [[0, 0, 0]], ["B"], spin_orbit_constants={"B": 0.001}, variants=[Variant()])
    assert res.topo_class == "semimetal_or_metal"


def test_input_forms_and_errors():
    class RecordLike:  # what a td-data CrystalRecord exposes
        lattice = SI_LATTICE
        frac_coords = np.array(SI_COORDS)
        atomic_numbers = np.array([14, 14])

    lat, frac, numbers = structure_arrays(RecordLike())
    assert np.allclose(lat, SI_LATTICE) and numbers.tolist() == [14, 14]
    pymatgen = pytest.importorskip("pymatgen.core")
    s = pymatgen.Structure(pymatgen.Lattice(SI_LATTICE), ["Si", "Si"], SI_COORDS)
    res = classify_structure(s, spin_orbit_constants=SO, variants=[Variant()])
    assert res.topo_class == "trivial"
    with pytest.raises(ValueError, match="give \\(lattice, frac_coords, atomic_numbers\\)"):
        structure_arrays(42)


def test_irreducible_mesh_gives_the_full_mesh_gaps():
    from td_physics.bands import batched_band_gaps, irreducible_mesh

    lattice = 0.5 * 5.653 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    species = ["Ga", "As"]
    models = [
        tight_binding_from_structure(lattice, SI_COORDS, species, v, spin_orbit_constants=SO)
        for v in (Variant(), Variant(hopping="harrison1999"))
    ]
    nocc = models[0].metadata["n_electrons"]
    kir = irreducible_mesh(lattice, np.array(SI_COORDS), species, 6)
    assert len(kir) < 6**3 / 4
    full = batched_band_gaps(models, nocc, 6)
    reduced = batched_band_gaps(models, nocc, 6, kpoints=kir)
    assert np.allclose(full, reduced, atol=1e-10)


def test_a_trusted_model_is_classified_directly():
    from td_physics.classify import classify_model
    from td_physics.models import bi2se3, haldane, kane_mele

    ti = classify_model(bi2se3(), source="wannier90:test")
    assert ti.topo_class == "z2_ti" and ti.z2_indices == (1, 0, 0, 0) and ti.confidence == 1.0
    assert ti.as_labels()["label_source"].startswith("wannier90:test")
    assert classify_model(kane_mele(lambda_so=0.06)).topo_class == "z2_ti"
    assert classify_model(kane_mele(lambda_so=0.06, lambda_v=0.5)).topo_class == "trivial"
    chern = classify_model(haldane(phi=1.0, m=0.1))
    assert chern.topo_class == "chern" and chern.chern == -1


def _spin_doubled_sp_chain_model(mass: float, soc: float = 0.0):
    """A 2D s-p model, spin doubled: H = (m - cos kx - cos ky) tau_z + sin kx tau_y [+ soc sin ky tau_x s_z].

    Spinless it has time reversal and inversion (s even, p odd); for 0 < m < 2 the parity product of
    the lower band is -1 while Dirac points close the gap (no spin-orbit coupling can open it). The
    optional term couples spin to the orbital (Kane-Mele-like) and opens the gap: a Z2 insulator.
    """
    from td_physics.model import TightBindingModel

    tau_z = np.diag([1.0, -1.0])
    tau_y = np.array([[0, -1j], [1j, 0]])
    tau_x = np.array([[0, 1.0], [1.0, 0]])
    s0, sz = np.eye(2), np.diag([1.0, -1.0])

    def spin(block, s=s0):  # orbital (s, p) x spin, ordered site-major then spin: (s up, s dn, p up, p dn)
        return np.kron(block, s)

    onsite = spin(mass * tau_z)
    hx = spin(-0.5 * tau_z) + spin(tau_y / 2j)  # -cos kx tau_z + sin kx tau_y
    hy = spin(-0.5 * tau_z) + spin(soc * tau_x / 2j, sz)
    model = TightBindingModel.from_hopping_matrices(
        np.eye(2), [[0.0, 0.0], [0.0, 0.0]], onsite, {(1, 0): hx, (0, 1): hy}, spinful=True
    )
    model.set_inversion([0, 1, 2, 3], [1, 1, -1, -1], [0.0, 0.0])
    return model


def test_band_inversion_without_spin_orbit_is_a_semimetal_not_a_z2_insulator():
    from td_physics.classify import _classify_gapped, spin_rotation_symmetric

    plain = _spin_doubled_sp_chain_model(1.0)
    assert spin_rotation_symmetric(plain)
    assert parity_z2(plain, 2, plain.inversion).value == 1  # the parities alone would say Z2-odd
    cls, indices, _, method, _ = _classify_gapped(plain, 2, magnetic=False)
    assert cls == "semimetal_or_metal" and indices == (1,) and method == "parity+no-soc"

    coupled = _spin_doubled_sp_chain_model(1.0, soc=0.5)
    assert not spin_rotation_symmetric(coupled)
    assert _classify_gapped(coupled, 2, magnetic=False)[0] == "z2_ti"
    assert _classify_gapped(_spin_doubled_sp_chain_model(3.0, soc=0.5), 2, magnetic=False)[0] == "trivial"
