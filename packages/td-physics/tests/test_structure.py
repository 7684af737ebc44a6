"""Tests of td_physics.structure: symmetry of the built Hamiltonian, cell and origin invariance, errors."""

from __future__ import annotations

import numpy as np
import pytest

from td_physics.bands import band_gap
from td_physics.structure import (
    DEFAULT_VARIANTS,
    StructureError,
    UnsupportedElementError,
    Variant,
    inversion_operator,
    load_table,
    spin_orbit_matrix,
    tight_binding_from_structure,
)

A_SI = 5.431  # Angstrom
FCC = 0.5 * A_SI * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
DIAMOND = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
NO_SO = Variant(spin_orbit=False)
# Spin-orbit constants below are arbitrary test inputs (eV), not physical values.
TEST_LAMBDA = {"Si": 0.1, "Ga": 0.2, "As": 0.3, "Bi": 1.0, "Se": 0.3}
TRIMS = np.array([[a, b, c] for a in (0, 0.5) for b in (0, 0.5) for c in (0, 0.5)])


def silicon(variant: Variant = NO_SO, **kw):
    return tight_binding_from_structure(FCC, DIAMOND, [14, 14], variant, **kw)


def conventional_silicon() -> tuple[np.ndarray, np.ndarray]:
    base = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    return A_SI * np.eye(3), np.concatenate([base, base + 0.25])


def bi2se3_primitive() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """R-3m Bi2Se3, a = 4.138, c = 28.64 Angstrom; Bi 6c z=0.4008, Se1 3a, Se2 6c z=0.2117."""
    a, c = 4.138, 28.64
    lat = np.array(
        [[a / 2, a / (2 * np.sqrt(3)), c / 3], [-a / 2, a / (2 * np.sqrt(3)), c / 3], [0, -a / np.sqrt(3), c / 3]]
    )
    z_bi, z_se2 = 0.4008, 0.2117
    frac = np.array([[z_bi] * 3, [-z_bi] * 3, [0, 0, 0], [z_se2] * 3, [-z_se2] * 3])
    return lat, frac, ["Bi", "Bi", "Se", "Se", "Se"]


def test_spin_orbit_matrix_splitting():
    lam = 0.7
    m = spin_orbit_matrix(lam)
    assert np.allclose(m, m.conj().T)
    assert np.allclose(np.linalg.eigvalsh(m), [-lam, -lam, lam / 2, lam / 2, lam / 2, lam / 2])


def test_silicon_symmetries_and_gap():
    si = silicon(Variant(), spin_orbit_constants=TEST_LAMBDA)
    h = si.hamiltonian(np.random.default_rng(0).random((5, 3)))
    assert np.allclose(h, np.conj(np.swapaxes(h, -1, -2)), atol=1e-12)
    assert si.is_time_reversal_symmetric()
    assert si.occupied == 8 and si.metadata["n_electrons"] == 8
    op = si.inversion
    assert op is not None
    for k in TRIMS:  # [P, H(k)] = 0 at the TRIMs, where k = -k
        p = op.matrix_at(k)
        hk = si.hamiltonian(k)[0]
        assert np.allclose(p @ hk, hk @ p, atol=1e-10)
    gap = band_gap(silicon(), mesh=8, polish=False)
    assert gap.indirect > 1.0  # Harrison 1980 + NIST LDA terms: about 3.9 eV indirect, 4.0 eV direct


def test_gaas_has_no_inversion():
    lat = 0.5 * 5.653 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    gaas = tight_binding_from_structure(lat, DIAMOND, ["Ga", "As"], Variant(), spin_orbit_constants=TEST_LAMBDA)
    assert gaas.is_time_reversal_symmetric()
    assert gaas.inversion is None
    assert inversion_operator(gaas, lat, DIAMOND, [31, 33]) is None
    assert gaas.occupied == 8


def test_primitive_and_conventional_cells_agree():
    prim = silicon()
    lat_c, frac_c = conventional_silicon()
    conv = tight_binding_from_structure(lat_c, frac_c, [14] * 8, NO_SO)
    assert conv.occupied == 32
    rng = np.random.default_rng(3)
    k_conv = np.concatenate([np.zeros((1, 3)), rng.random((2, 3))])  # reduced in the cubic cell
    e_conv = conv.eigvalsh(k_conv)
    for n, kc in enumerate(k_conv):
        # cubic G vectors (2 pi / a)(h, k, l), h,k,l in {0,1} with even sum excluded, fold onto 4 primitive k
        k_cart = 2 * np.pi * (kc + np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])) / A_SI
        k_prim = k_cart @ FCC.T / (2 * np.pi)
        e_prim = np.sort(prim.eigvalsh(k_prim).ravel())
        assert np.allclose(e_prim, e_conv[n], atol=1e-8)


def test_origin_shift_keeps_spectrum():
    shifted = tight_binding_from_structure(FCC, DIAMOND + np.array([0.13, -0.41, 0.77]), [14, 14], NO_SO)
    k = np.random.default_rng(5).random((4, 3))
    assert np.allclose(silicon().eigvalsh(k), shifted.eigvalsh(k), atol=1e-9)
    assert shifted.inversion is not None


def test_overlapping_atoms_are_refused():
    with pytest.raises(StructureError, match=r"atoms 0 and 1 .* 0\.2\d\d Angstrom apart"):
        tight_binding_from_structure(FCC, [[0, 0, 0], [0.03, 0.03, 0.03]], [14, 14], NO_SO)


def test_unsupported_elements_are_named():
    with pytest.raises(UnsupportedElementError, match=r"Fe \(Z=26\)"):
        tight_binding_from_structure(FCC, DIAMOND, [26, 14], NO_SO)
    with pytest.raises(UnsupportedElementError, match="Bi"):
        tight_binding_from_structure(FCC, DIAMOND, ["Bi", "Bi"], Variant(term_values="harrison1980", spin_orbit=False))
    with pytest.raises(UnsupportedElementError, match="Na"):  # the non-relativistic NIST table lists no group-1 p level
        tight_binding_from_structure(FCC, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"], Variant(term_values="nist_lda"))
    with pytest.raises(ValueError, match="sp3s"):
        Variant(basis="sp3s*")


def test_every_table_value_has_a_source():
    for name in (
        "term_values_scrlda",
        "term_values_nist_lda",
        "term_values_harrison1980",
        "valence_electrons",
        "spin_orbit_p",
    ):
        table = load_table(name)
        for entry in table["elements"].values():
            assert entry["source"] in table["references"]
    # every element the builder accepts has a default on-site energy and, with a p shell, a spin-orbit constant
    supported = load_table("valence_electrons")["elements"]
    assert set(supported) <= set(load_table("term_values_scrlda")["elements"])
    assert set(supported) - {"H"} <= set(load_table("spin_orbit_p")["elements"])
    hop = load_table("hopping_coefficients")
    assert all(s["source"] in hop["references"] for s in hop["sets"].values())


def silicene(**kw):
    a, buckle, c = 3.86, 0.46, 20.0  # Angstrom
    lat = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    frac = np.array([[1 / 3, 2 / 3, 0.5 + buckle / (2 * c)], [2 / 3, 1 / 3, 0.5 - buckle / (2 * c)]])
    return tight_binding_from_structure(lat, frac, [14, 14], NO_SO, **kw)


def test_buckled_sheet_is_2d_and_field_splits_sublattices():
    sheet = silicene()
    assert sheet.dim_k == 2 and sheet.metadata["dimension"] == 2
    assert sheet.inversion is not None and sheet.is_time_reversal_symmetric()
    biased = silicene(electric_field=0.05)
    shift = np.real(np.diag(biased.onsite - sheet.onsite))
    atom = np.repeat(sheet.metadata["orbital_atom"], 2)
    assert np.allclose(shift[atom == 0], 0.05 * 0.23) and np.allclose(shift[atom == 1], -0.05 * 0.23)
    assert biased.inversion is None


def test_magnetic_moments_break_time_reversal():
    magnet = silicon(magnetic_moments=[1.0, 1.0], exchange_per_moment=0.5)
    assert not magnet.is_time_reversal_symmetric()
    assert magnet.inversion is not None  # parallel moments keep inversion
    assert np.allclose(np.diag(magnet.onsite - silicon().onsite).real[:2], [-0.25, 0.25])


def test_bi2se3_builds_with_inversion():
    lat, frac, species = bi2se3_primitive()
    model = tight_binding_from_structure(lat, frac, species, Variant(), spin_orbit_constants=TEST_LAMBDA)
    assert model.occupied == 28 and model.norb == 40
    assert model.inversion is not None
    assert model.is_time_reversal_symmetric()


def test_inversion_within_symprec_only_is_not_declared_and_wilson_loops_label_it(caplog):
    """An atom 5e-6 off its inversion image (a strained or relaxed cell): spglib finds inversion at
    symprec 1e-3, but the Hamiltonian does not commute with it exactly, so no operator is declared
    (it used to raise SymmetryError) and the labeller's Wilson-loop path gives Bi2Se3's class."""
    from td_physics.classify import classify_structure

    lat, frac, species = bi2se3_primitive()
    frac[3, 2] += 5e-6
    with caplog.at_level("INFO", logger="td_physics.structure.symmetry"):
        model = tight_binding_from_structure(lat, frac, species, Variant(), spin_orbit_constants=TEST_LAMBDA)
    assert model.inversion is None
    assert "no inversion operator declared" in caplog.text and "more than 1e-06" in caplog.text
    assert classify_structure(lat, frac, species).topo_class == "z2_ti"


def test_default_variants_are_distinct():
    names = [v.name for v in DEFAULT_VARIANTS]
    assert 4 <= len(names) <= 6 and len(set(names)) == len(names)
