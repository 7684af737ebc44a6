"""td_physics.dft: PBE(+SOC) topology in GPAW's LCAO mode, against the literature and its own controls.

The physics tests run real GPAW calculations (the ``td-physics[dft]`` extra, installed by ``make install``),
so the expensive ones are marked ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics.dft import DFTInputError, DFTSettings, dft_invariants
from td_physics.dft.core import kpoint_mesh, niggli_basis, screening_mesh, to_user_basis
from td_physics.dft.parity import find_inversion, fu_kane, trims
from td_physics.dft.wilson import chern_number, strong_weak
from td_physics.structure.reference import reference_arrays as _reference

pytest.importorskip("gpaw", reason="the td-physics[dft] extra (GPAW) is not installed")


# ----------------------------------------------------------------------------- GPAW, small and fast
def test_parity_method_refuses_a_crystal_without_inversion():
    result = dft_invariants(*_reference("GaAs"), method="parity", confirm=False, kpt_spacing=1.0)
    assert not result.converged and "no inversion centre" in result.reason


def test_odd_electron_count_is_a_metal_without_a_calculation():
    lattice = 4.23 * np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])  # bcc Na
    result = dft_invariants(lattice, [[0, 0, 0]], [11])
    assert result.converged and result.topo_class == "semimetal_or_metal"
    assert result.method == "electron_count" and "odd number of valence electrons (7)" in result.details["note"]


def test_origin_shift_and_atom_order_do_not_change_the_answer():
    lattice, frac, numbers = _reference("Si")
    settings = DFTSettings(confirm=False, kpt_spacing=0.6)
    first = dft_invariants(lattice, frac, numbers, settings=settings)
    moved = dft_invariants(lattice, (frac + [0.137, -0.29, 0.41])[::-1], numbers[::-1], settings=settings)
    assert first.converged and moved.converged
    assert (first.topo_class, first.z2_indices) == (moved.topo_class, moved.z2_indices)
    assert moved.band_gap_direct == pytest.approx(first.band_gap_direct, abs=2e-3)
    assert moved.band_gap_indirect == pytest.approx(first.band_gap_indirect, abs=2e-3)


def test_lcao_bloch_sums_are_periodic_in_k():
    """The Wilson loops close on the first k of each string: that needs S(k + G) = S(k) in GPAW's LCAO."""
    from td_physics.dft import _gpaw

    lattice, frac, numbers = _reference("Si")
    settings = DFTSettings(confirm=False)
    calc = _gpaw.ground_state(_gpaw.make_atoms(lattice, frac, numbers, None), settings, (2, 2, 2), spinpol=False)
    k = np.array([[0.13, 0.27, -0.31], [1.13, 0.27, -0.31], [0.13, -0.73, 0.69]])
    states = _gpaw.spinor_states(_gpaw.nscf(calc, k, settings), spin_orbit=True, n_states=8)
    np.testing.assert_allclose(states.overlap[1], states.overlap[0], atol=1e-10)
    np.testing.assert_allclose(states.overlap[2], states.overlap[0], atol=1e-10)
    np.testing.assert_allclose(states.energies[1], states.energies[0], atol=1e-8)
    # the overlap in the representation psi = sum_M c_M phi_M normalises the states (at a general k)
    c = states.coeffs[0]  # (n, 2, nao)
    gram = np.einsum("nsM,MN,msN->nm", np.conj(c), states.overlap[0], c)
    np.testing.assert_allclose(gram, np.eye(len(c)), atol=1e-8)


@pytest.mark.slow
def test_a_clear_metal_skips_the_confirming_mesh_and_the_screening_decides_it_alike():
    """Al (two atoms, an even electron count, bands overlapping by ~5 eV): on the regular mesh the denser
    confirming mesh is skipped (no mesh makes such a metal an insulator), and a ground state on a much
    coarser screening mesh, its bands on the same gap mesh, gives the same class and the same overlap. A coarse
    real-space grid (0.3 A) keeps the two ground states cheap; both calls use it, so the comparison is like for like."""
    lattice = 4.05 * np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [1.0, 1.0, 0.0]])  # fcc, doubled along a3
    frac, numbers = [[0, 0, 0], [0, 0, 0.5]], [13, 13]
    full = dft_invariants(lattice, frac, numbers, kpt_spacing=0.8, grid_spacing=0.3)
    assert full.converged and (full.topo_class, full.method) == ("semimetal_or_metal", "gap")
    assert len(full.details["meshes"]) == 1 and "clear_metal_overlap 0.5 eV" in full.details["confirmation"]
    screened = dft_invariants(lattice, frac, numbers, kpt_spacing=0.8, grid_spacing=0.3, screen_kpt_spacing=2.0)
    assert screened.converged and (screened.topo_class, screened.method) == ("semimetal_or_metal", "gap")
    screen = screened.details["screen"]
    assert screen["clear_metal"] and screened.details["meshes"] == [] and screened.kpts == tuple(screen["mesh"])
    assert np.prod(screen["mesh"]) < np.prod(full.kpts) and screen["gap_mesh"] == list(full.kpts)
    assert screened.band_gap_indirect < -4.0
    assert screened.band_gap_indirect == pytest.approx(full.band_gap_indirect, abs=0.05)  # measured: 0.0085 eV


@pytest.mark.slow
def test_a_wide_gap_insulator_skips_the_confirming_mesh_only_when_asked():
    """confirm_max_gap: silicon's direct gap (well above 0.5 eV on the mesh) needs no second mesh; by default the
    second mesh runs, and the answers are the same."""
    lattice, frac, numbers = _reference("Si")
    quick = dft_invariants(lattice, frac, numbers, kpt_spacing=1.0, confirm_max_gap=0.5)
    assert quick.converged and (quick.topo_class, quick.z2_indices) == ("trivial", (0, 0, 0, 0))
    assert len(quick.details["meshes"]) == 1 and "confirm_max_gap 0.5 eV" in quick.details["confirmation"]
    both = dft_invariants(lattice, frac, numbers, kpt_spacing=1.0)
    assert len(both.details["meshes"]) == 2 and "confirmation" not in both.details
    assert (both.topo_class, both.z2_indices) == (quick.topo_class, quick.z2_indices)
    with pytest.raises(DFTInputError, match="confirm_max_gap out of range: 0"):
        DFTSettings(confirm_max_gap=0)


def test_screening_mesh_is_coarse_and_bounded():
    lattice, _, _ = _reference("Bi2Se3")
    settings = DFTSettings(kpt_spacing=0.35, screen_kpt_spacing=0.9)
    screen = screening_mesh(lattice, settings)
    assert all(settings.min_kpts <= n <= settings.max_kpts for n in screen)
    assert np.prod(screen) < np.prod(kpoint_mesh(lattice, settings))
    assert screening_mesh(lattice, DFTSettings(screen_kpt_spacing=100.0)) == (2, 2, 2)  # min_kpts
    with pytest.raises(DFTInputError, match="needs DFTSettings.screen_kpt_spacing"):
        screening_mesh(lattice, DFTSettings())


def test_screening_settings_are_checked():
    with pytest.raises(DFTInputError, match=r"screen_kpt_spacing out of range: 0.3 \(must be larger than kpt_spacing"):
        DFTSettings(kpt_spacing=0.35, screen_kpt_spacing=0.3)
    with pytest.raises(DFTInputError, match="screen_kpt_spacing needs clear_metal_overlap"):
        DFTSettings(screen_kpt_spacing=1.0, clear_metal_overlap=None)
    with pytest.raises(DFTInputError, match=r"clear_metal_overlap out of range: -0.1"):
        DFTSettings(clear_metal_overlap=-0.1)


# ----------------------------------------------------------------------------- refusals (a result, never a label)
def test_atoms_too_close_are_refused_with_the_distance():
    lattice = 5.0 * np.eye(3)
    result = dft_invariants(lattice, [[0, 0, 0], [0.02, 0, 0]], [14, 14])
    assert not result.converged and result.topo_class is None
    assert "atoms 0 and 1 are 0.100 A apart, below min_distance 0.5 A" in result.reason


def test_element_without_a_setup_is_a_result_not_an_exception():
    result = dft_invariants(4.0 * np.eye(3), [[0, 0, 0], [0.5, 0.5, 0.5]], [84, 84])
    assert not result.converged
    assert "no PAW setup for Po" in result.reason


def test_too_large_a_cell_is_refused_by_max_atoms():
    frac = np.array([[i / 8, 0, 0] for i in range(8)])
    result = dft_invariants(np.diag([20.0, 5.0, 5.0]), frac, [14] * 8, max_atoms=4)
    assert not result.converged and "8 atoms exceed max_atoms 4" in result.reason


def test_scf_that_does_not_converge_says_so():
    result = dft_invariants(*_reference("Si"), confirm=False, max_scf_iterations=2)
    assert not result.converged
    assert "SCF did not converge in 2 iterations" in result.reason


def test_a_cell_with_very_short_axes_gets_a_grid_gpaw_can_interpolate(monkeypatch):
    """He on a 0.9 x 0.9 x 2.4 A cell (a compressed synthetic N2 cell of the calibration had two 1.1 A plane
    spacings): h2gpts gives 4 points on the short axes and GPAW cannot build its density interpolator. With at
    least MIN_GPTS points an axis the cell computes; every axis longer than about 1.6 A keeps h2gpts' grid."""
    from td_physics.dft import _gpaw

    lattice, frac, numbers = np.diag([0.9, 0.9, 2.4]), [[0, 0, 0]], [2]
    assert _gpaw.MIN_GPTS == 12
    result = dft_invariants(lattice, frac, numbers, kpt_spacing=1.5, confirm=False)
    assert result.converged and result.topo_class is not None
    monkeypatch.setattr(_gpaw, "MIN_GPTS", 4)  # h2gpts' grid alone: the failure the minimum removes
    result = dft_invariants(lattice, frac, numbers, kpt_spacing=1.5, confirm=False)
    assert not result.converged and "Cannot construct interpolator" in result.reason


def test_a_linearly_dependent_basis_is_named_as_such():
    """A compressed CsF cell (2.57 A apart, 21 A^3 per atom; a synthetic crystal of the calibration run): the dzp
    basis of Cs is numerically linearly dependent there and GPAW's Cholesky of S(k) fails. The result says why in
    words, with the shortest distance, instead of a bare LinAlgError."""
    lattice = [
        [0.0103686, -2.7297120, -2.5699167],
        [-0.0015381, 2.7356016, -2.5761645],
        [3.0148705, -0.0095320, 2.5678581],
    ]
    result = dft_invariants(lattice, [[0, 0, 0], [0.5, 0.5, 0]], [9, 55], confirm=False)
    assert not result.converged and result.topo_class is None
    assert "the LCAO overlap matrix is not positive definite: the dzp basis is numerically linearly dependent" in (
        result.reason
    )
    assert "shortest interatomic distance 2.57 A" in result.reason


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lattice": np.eye(2)}, "lattice must be (3, 3)"),
        ({"frac_coords": [[0, 0]]}, "frac_coords must be (N, 3)"),
        ({"atomic_numbers": [0]}, "atomic_numbers must be integers in 1..118"),
        ({"lattice": -np.eye(3)}, "positive volume"),
        ({"magmoms": [1.0, 2.0]}, "magmoms must be (1,)"),
    ],
)
def test_malformed_input_raises_with_the_rule(kwargs, message):
    args = {"lattice": 4 * np.eye(3), "frac_coords": [[0, 0, 0]], "atomic_numbers": [14]}
    magmoms = kwargs.pop("magmoms", None)
    args.update(kwargs)
    with pytest.raises(DFTInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dft_invariants(args["lattice"], args["frac_coords"], args["atomic_numbers"], magmoms=magmoms)


def test_settings_refuse_unknown_and_out_of_range_values():
    with pytest.raises(DFTInputError, match="unknown DFT setting 'kpoints'"):
        DFTSettings.from_dict({"kpoints": 4})
    with pytest.raises(DFTInputError, match=r"DFTSettings.min_direct_gap out of range: -0.1"):
        DFTSettings(min_direct_gap=-0.1)
    with pytest.raises(DFTInputError, match="unknown DFT setting 'ecut'"):
        dft_invariants(4 * np.eye(3), [[0, 0, 0]], [14], ecut=400)
    assert DFTSettings.from_dict(DFTSettings(n_string=16).to_dict()) == DFTSettings(n_string=16)


# ----------------------------------------------------------------------------- pieces without GPAW
def test_kpoint_mesh_is_even_so_that_it_holds_the_trims():
    lattice, _, _ = _reference("Bi2Se3")
    for spacing in (0.2, 0.35, 0.5, 1.5):
        mesh = kpoint_mesh(lattice, DFTSettings(kpt_spacing=spacing))
        assert all(n % 2 == 0 and n >= 2 for n in mesh)


def test_inversion_is_found_in_bi2se3_and_not_in_gaas():
    lattice, frac, numbers = _reference("Bi2Se3")
    inv = find_inversion(lattice, frac, numbers)
    assert inv is not None
    image = inv.translation - frac
    np.testing.assert_allclose(image, frac[inv.partner] + inv.shift, atol=1e-6)
    assert find_inversion(*_reference("GaAs")) is None


def test_fu_kane_and_plane_bookkeeping():
    points = trims()
    deltas = np.ones(8, dtype=int)
    assert fu_kane(deltas, points) == (0, 0, 0, 0)
    deltas[0] = -1  # inversion at Gamma only
    assert fu_kane(deltas, points) == (1, 0, 0, 0)
    assert strong_weak({"k1=0": 1, "k1=0.5": 0, "k2=0": 1, "k2=0.5": 0, "k3=0": 1, "k3=0.5": 0}) == ((1, 0, 0, 0), True)
    assert strong_weak({"k1=0": 1, "k1=0.5": 0, "k2=0": 0, "k2=0.5": 0, "k3=0": 1, "k3=0.5": 0})[1] is False


@given(
    shears=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(-2, 2)), min_size=1, max_size=6),
    weak=st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, 1)),
    chern=st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3)),
)
@settings(max_examples=200, deadline=None)
def test_indices_found_in_another_basis_map_back_to_the_same_vectors(shears, weak, chern):
    """Weak indices are the reciprocal vector sum nu_i b_i mod 2, plane Chern numbers the lattice vector
    sum C_i a_i: both must be the same vectors after the basis change used for skewed cells."""
    op = np.eye(3, dtype=int)
    for i, j, c in shears:  # products of shears: every unimodular basis change
        if i != j:
            op[i] += c * op[j]
    lattice = np.array([[3.0, 0.1, 0.2], [0.4, 4.0, -0.3], [0.2, 0.5, 5.0]])
    z2, c = to_user_basis(op, (1, *weak), chern)
    recip_new = np.linalg.inv(op @ lattice).T
    recip_old = np.linalg.inv(lattice).T
    diff = np.array(weak) @ recip_new - np.array(z2[1:]) @ recip_old
    in_old = diff @ lattice.T  # coordinates in the old reciprocal basis: must be even integers
    np.testing.assert_allclose(np.mod(np.rint(in_old), 2), 0, atol=1e-9)
    np.testing.assert_allclose(in_old, np.rint(in_old), atol=1e-9)
    np.testing.assert_allclose(np.array(chern) @ (op @ lattice), np.array(c) @ lattice, atol=1e-9)
    assert z2[0] == 1


def test_niggli_basis_is_unimodular_and_reduces_the_rhombohedral_cell():
    lattice, _, _ = _reference("Bi2Se3")
    op = niggli_basis(lattice)
    assert round(np.linalg.det(op)) == 1
    reduced = op @ lattice
    cos = [
        abs(reduced[i] @ reduced[j]) / np.linalg.norm(reduced[i]) / np.linalg.norm(reduced[j])
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    assert max(cos) <= 0.5 + 1e-9  # Niggli: angles between 60 and 120 degrees


def test_fhs_chern_number_of_a_two_band_model_matches_its_phase_diagram():
    """The link-variable routine on frames from a Qi-Wu-Zhang model: C = sign(m) for 0 < |m| < 2, else 0."""

    def frames(m: float, n: int = 24) -> np.ndarray:
        k = 2 * np.pi * np.arange(n) / n
        kx, ky = np.meshgrid(k, k, indexing="ij")
        d = np.stack([np.sin(kx), np.sin(ky), m + np.cos(kx) + np.cos(ky)], axis=-1)
        h = np.einsum("xyi,iab->xyab", d, np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]]))
        _, v = np.linalg.eigh(h)
        return np.swapaxes(v[..., :, :1], -1, -2)  # lower band as a row: (n, n, 1, 2)

    assert abs(chern_number(frames(1.0))[0]) == 1
    assert chern_number(frames(1.0))[0] == -chern_number(frames(-1.0))[0]
    assert chern_number(frames(3.0))[0] == 0
