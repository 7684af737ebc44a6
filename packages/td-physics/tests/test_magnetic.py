"""Magnetic order: site exchange, supercells, the QAH phase of Kane-Mele with exchange, and the AFTI Z2.

Closed forms are those of the module docstring of ``td_physics.models.magnetic_ti``; every invariant is
also checked by a second, independent method.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from td_physics import TightBindingModel
from td_physics.bands import batched_band_gaps
from td_physics.exceptions import ModelDefinitionError, OccupationError, SymmetryError
from td_physics.fields import exchange_field
from td_physics.invariants import (
    anomalous_hall_conductivity,
    antiferromagnetic_z2,
    chern_number,
    spin_chern_number,
    z2_indices,
)
from td_physics.invariants.antiferromagnetic import antiferromagnetic_z2_batch
from td_physics.invariants.edge import edge_chirality
from td_physics.magnetic import (
    add_exchange,
    is_s_symmetric,
    magnetic_translation,
    model_supercell,
    site_moments,
    translation_matrices,
)
from td_physics.models import afm_fu_kane_mele, fu_kane_mele, kane_mele, kane_mele_exchange, qwz
from td_physics.phase_diagram import phase_diagram
from td_physics.structure import StructureError, Variant, tight_binding_from_structure

LAMBDA_SO = 0.06
CRITICAL = 3 * np.sqrt(3) * LAMBDA_SO  # the Kane-Mele gap closing at K: |lambda_v +- M_s| = 3 sqrt(3) lambda_so

moment = st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3)
kpoint2 = st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2)


def qah_closed_form(lambda_v: float, m_s: float, lambda_so: float = LAMBDA_SO) -> tuple[int, int]:
    """(C_up, C_down) of Kane-Mele with staggered exchange M_s: C_s = -s sign(lambda_so) theta(...)."""
    crit = 3 * np.sqrt(3) * abs(lambda_so)
    up = -int(np.sign(lambda_so)) * int(abs(lambda_v + m_s) < crit)
    down = int(np.sign(lambda_so)) * int(abs(lambda_v - m_s) < crit)
    return up, down


def afti_closed_form(m: float, dt: float, t: float = 1.0) -> int:
    """The parity formula derived in td_physics.models.magnetic_ti."""
    sign = np.sign((4 * t + dt) * (2 * t + dt) - m * m) * np.sign(dt * (dt - 2 * t) - m * m)
    return int(sign < 0)


def staggered_km(m_s: float, lambda_v: float) -> TightBindingModel:
    """Kane-Mele with a Neel exchange +M_s on A and -M_s on B (along z)."""
    return kane_mele_exchange(m_s, -m_s, lambda_so=LAMBDA_SO, lambda_v=lambda_v)


def rephased(model: TightBindingModel, phases: np.ndarray) -> TightBindingModel:
    """The same model in the orbital basis c_j -> exp(i phi_j) c_j (a gauge change)."""
    u = np.exp(1j * np.asarray(phases))
    conj = np.conj(u)[:, None] * u[None, :]
    return TightBindingModel.from_hopping_matrices(
        model.lattice,
        model.site_positions,
        model.onsite * conj,
        {r: t * conj for r, t in model.hoppings.items()},
        spinful=model.spinful,
        occupied=model.occupied,
    )


# ----------------------------------------------------------------------------- exchange
def test_uniform_site_moments_equal_the_exchange_field():
    base = kane_mele(lambda_r=0.05, lambda_v=0.1)
    m = np.array([0.1, -0.2, 0.3])
    k = np.random.default_rng(0).random((6, 2))
    np.testing.assert_allclose(add_exchange(base, [m, m]).hamiltonian(k), exchange_field(base, m).hamiltonian(k))
    np.testing.assert_allclose(add_exchange(base, [0.2, 0.2], J=0.5).onsite, exchange_field(base, 0.1).onsite)


@settings(max_examples=25, deadline=None)
@given(m_a=moment, m_b=moment, coupling=st.floats(-2.0, 2.0))
def test_exchange_is_hermitian_and_adds_j_m_dot_sigma(m_a, m_b, coupling):
    base = kane_mele(lambda_r=0.05)
    model = add_exchange(base, [m_a, m_b], J=coupling)
    h = model.hamiltonian(np.random.default_rng(1).random((5, 2)))
    np.testing.assert_allclose(h, np.conj(np.swapaxes(h, -1, -2)), atol=1e-12)
    added = model.onsite - base.onsite
    pauli = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
    for site, mom in enumerate((m_a, m_b)):
        block = added[2 * site : 2 * site + 2, 2 * site : 2 * site + 2]
        np.testing.assert_allclose(block, coupling * np.einsum("a,aij->ij", mom, pauli), atol=1e-12)
    np.testing.assert_allclose(added[:2, 2:], 0.0)
    assert model.metadata["applied_fields"][-1]["kind"] == "site_exchange"


@settings(max_examples=20, deadline=None)
@given(m_a=moment, m_b=moment, angles=st.lists(st.floats(-np.pi, np.pi), min_size=3, max_size=3))
def test_global_spin_rotation_keeps_the_spectrum_without_spin_orbit(m_a, m_b, angles):
    base = kane_mele(lambda_so=0.0, lambda_r=0.0, lambda_v=0.1)
    rot = Rotation.from_euler("zyz", angles).as_matrix()
    k = np.random.default_rng(2).random((8, 2))
    e = add_exchange(base, [m_a, m_b]).eigvalsh(k)
    e_rot = add_exchange(base, np.array([m_a, m_b]) @ rot.T).eigvalsh(k)
    np.testing.assert_allclose(e, e_rot, atol=1e-10)


def test_spin_rotation_changes_the_spectrum_with_spin_orbit():
    base = kane_mele(lambda_so=0.06)
    k = np.random.default_rng(3).random((8, 2))
    e_z = add_exchange(base, [[0, 0, 0.2], [0, 0, -0.2]]).eigvalsh(k)
    e_x = add_exchange(base, [[0.2, 0, 0], [-0.2, 0, 0]]).eigvalsh(k)
    assert np.abs(e_z - e_x).max() > 1e-3


@settings(max_examples=20, deadline=None)
@given(m_a=moment, m_b=moment)
def test_time_reversal_maps_the_moments_to_their_opposites(m_a, m_b):
    base = kane_mele(lambda_so=0.06, lambda_r=0.05, lambda_v=0.1)
    plus, minus = add_exchange(base, [m_a, m_b]), add_exchange(base, -np.array([m_a, m_b]))
    k = np.random.default_rng(4).random((5, 2))
    u = base.time_reversal_matrix()
    image = u @ np.conj(plus.hamiltonian(k)) @ np.conj(u.T)
    np.testing.assert_allclose(image, minus.hamiltonian(-k), atol=1e-12)
    assert plus.is_time_reversal_symmetric() == bool(np.allclose([m_a, m_b], 0.0))


def test_inversion_is_kept_for_equal_partner_moments_and_dropped_for_a_neel_order():
    base = kane_mele()
    assert add_exchange(base, [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]).inversion is not None
    assert add_exchange(base, [0.1, -0.1]).inversion is None
    assert base.inversion is not None  # the input is untouched


@pytest.mark.parametrize(
    "moments, rule",
    [
        ([0.1, 0.2, 0.3], r"shape \(2,\) .* or \(2, 3\)"),
        ([[0.1, 0.0], [0.0, 0.1]], r"shape \(2,\)"),
        ([0.1, np.nan], "finite"),
        ([0.1j, 0.0], "real numbers"),
        (["up", "down"], "real numbers"),
    ],
)
def test_bad_moments_are_refused_with_the_rule(moments, rule):
    with pytest.raises(ModelDefinitionError, match=rule):
        add_exchange(kane_mele(), moments)


def test_bad_exchange_constant_and_spinless_models_are_refused():
    with pytest.raises(ModelDefinitionError, match="J must be one finite real number"):
        add_exchange(kane_mele(), [0.1, 0.1], J=np.inf)
    with pytest.raises(ModelDefinitionError, match="spinful"):
        site_moments(qwz(1.0), [0.1, 0.1])


def silicon(moments, **kw):
    """The structure builder's diamond silicon (no spin-orbit coupling) with per-atom moments."""
    fcc = 0.5 * 5.431 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    frac = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
    return tight_binding_from_structure(fcc, frac, [14, 14], Variant(spin_orbit=False), magnetic_moments=moments, **kw)


def test_structure_builder_takes_non_collinear_moments_as_minus_half_j_m_dot_sigma():
    collinear = silicon([1.0, -1.0], exchange_per_moment=0.5)
    along_z = silicon([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], exchange_per_moment=0.5)
    np.testing.assert_allclose(along_z.onsite, collinear.onsite)
    tilted = np.array([[0.6, 0.0, 0.8], [0.0, -0.6, 0.8]])
    magnet = silicon(tilted, exchange_per_moment=0.5)
    paramagnet = silicon(None)
    per_orbital = np.repeat(tilted, [4, 4], axis=0)  # the four s/p orbitals of each atom
    expected = add_exchange(paramagnet, per_orbital, J=-0.25)
    np.testing.assert_allclose(magnet.onsite, expected.onsite, atol=1e-12)
    assert not magnet.is_time_reversal_symmetric()
    k = np.random.default_rng(6).random((4, 3))
    rot = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()  # no spin-orbit: a global rotation is free
    np.testing.assert_allclose(magnet.eigvalsh(k), silicon(tilted @ rot.T, exchange_per_moment=0.5).eigvalsh(k))
    with pytest.raises(StructureError, match="Cartesian 3-vector"):
        silicon([[1.0, 0.0], [0.0, 1.0]])


# ----------------------------------------------------------------------------- supercells and S
@settings(max_examples=15, deadline=None)
@given(k=kpoint2)
def test_supercell_bands_are_the_folded_bands(k):
    parent = kane_mele_exchange(0.3, -0.3, lambda_v=0.1, lambda_r=0.05)
    big = model_supercell(parent, (2, 3))
    kk = np.asarray(k)
    folded = [(kk + [i, j]) / [2, 3] for i in range(2) for j in range(3)]
    expected = np.sort(parent.eigvalsh(np.array(folded)).ravel())
    np.testing.assert_allclose(big.eigvalsh(kk)[0], expected, atol=1e-10)


def test_supercell_keeps_inversion_and_the_chern_number():
    parent = qwz(1.0)
    big = model_supercell(parent, (2, 1))
    assert big.inversion is not None and big.n_occupied == 2
    assert chern_number(big).value == chern_number(parent).value != 0


@pytest.mark.parametrize("multiples", [(2,), (0, 1), (1.5, 1)])
def test_bad_supercell_multiples_are_refused(multiples):
    with pytest.raises(ModelDefinitionError, match="repeats must be 2 positive integers"):
        model_supercell(qwz(1.0), multiples)


def test_translation_of_a_supercell_permutes_the_copies():
    perm, shifts = magnetic_translation(model_supercell(kane_mele(), (1, 2)), [0.0, 0.5])
    assert perm.tolist() == [4, 5, 6, 7, 0, 1, 2, 3]
    assert shifts[:, 1].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(SymmetryError, match="must map the orbitals onto each other"):
        magnetic_translation(kane_mele(), [0.25, 0.0])


def test_the_afm_model_breaks_time_reversal_and_the_half_translation_but_keeps_their_product():
    model = afm_fu_kane_mele(m=[0.3, 0.2, 0.4], dt=0.4)
    assert not model.is_time_reversal_symmetric()
    perm, shifts = magnetic_translation(model, [0.0, 0.0, 0.5])
    k = np.random.default_rng(5).random((4, 3))
    t_k = translation_matrices(perm, shifts, k)
    h = model.hamiltonian(k)
    assert np.abs(t_k @ h @ np.conj(np.swapaxes(t_k, -1, -2)) - h).max() > 0.1  # T_1/2 broken
    assert is_s_symmetric(model, [0.0, 0.0, 0.5])
    paramagnet = model_supercell(fu_kane_mele(dt=0.4), (1, 1, 2))
    ferromagnet = add_exchange(paramagnet, [0.3] * 4)
    assert is_s_symmetric(paramagnet, [0.0, 0.0, 0.5]) and not is_s_symmetric(ferromagnet, [0.0, 0.0, 0.5])


# ----------------------------------------------------------------------------- quantum anomalous Hall
def test_qah_chern_numbers_follow_the_closed_form_on_a_grid():
    grid = {
        "m_s": np.array([-0.46, -0.31, -0.16, 0.0, 0.16, 0.31, 0.46]),
        "lambda_v": np.array([-0.2, -0.05, 0.1, 0.25]),
    }
    diagram = phase_diagram(staggered_km, grid, "chern")
    for i, ms in enumerate(grid["m_s"]):
        for j, lv in enumerate(grid["lambda_v"]):
            assert min(abs(abs(lv + ms) - CRITICAL), abs(abs(lv - ms) - CRITICAL)) > 0.03  # off the boundaries
            assert diagram.converged[i, j]
            assert diagram.values[i, j] == sum(qah_closed_form(lv, ms)), (lv, ms)
    assert {-1, 0, 1} <= set(diagram.values.ravel().tolist())


@pytest.mark.parametrize("lambda_v, m_s", [(0.1, 0.3), (0.1, -0.3), (0.0, 0.1), (0.0, 0.4)])
def test_spin_resolved_chern_numbers_and_hall_conductivity_agree_with_the_closed_form(lambda_v, m_s):
    model = staggered_km(m_s, lambda_v)
    total = chern_number(model)
    spin = spin_chern_number(model)  # raw = (C_up - C_down) / 2, exact while s_z is conserved
    up, down = qah_closed_form(lambda_v, m_s)
    assert total.converged and total.value == up + down
    assert spin.details["raw"] == pytest.approx((up - down) / 2, abs=1e-8)
    hall = anomalous_hall_conductivity(model, 0.0, mesh=120)
    assert hall.converged and hall.value == pytest.approx(-(up + down), abs=2e-3)


def test_qah_boundary_is_where_the_gap_closes_at_k():
    for lv, ms in ((0.1, CRITICAL - 0.1), (0.0, CRITICAL)):
        model = staggered_km(ms, lv)
        levels = model.eigvalsh([[2 / 3, 1 / 3], [1 / 3, 2 / 3]])  # K and K'
        assert np.min(levels[:, 2] - levels[:, 1]) < 1e-9


@settings(max_examples=10, deadline=None)
@given(phases=st.lists(st.floats(-np.pi, np.pi), min_size=4, max_size=4))
def test_qah_chern_number_is_gauge_invariant(phases):
    model = staggered_km(0.3, 0.1)
    assert chern_number(rephased(model, np.array(phases))).value == chern_number(model).value == 1


def test_uniform_exchange_keeps_c_zero_until_the_gap_closes_at_three_root_three_lambda():
    below = kane_mele_exchange(0.8 * CRITICAL, 0.8 * CRITICAL, lambda_so=LAMBDA_SO)
    direct, indirect = batched_band_gaps([below], 2, 48)
    assert indirect[0] == pytest.approx(2 * (CRITICAL - 0.8 * CRITICAL), abs=1e-9)
    assert chern_number(below).value == 0 and spin_chern_number(below).value == -1
    above = kane_mele_exchange(1.2 * CRITICAL, 1.2 * CRITICAL, lambda_so=LAMBDA_SO)
    direct, _ = batched_band_gaps([above], 2, 48)
    assert direct[0] < 0.02 < indirect[0]  # the shifted spin blocks cross on a ring around K: a semimetal


@pytest.mark.parametrize(
    "model, chern",
    [
        (staggered_km(0.3, 0.1), 1),
        (staggered_km(-0.3, 0.1), -1),
        (kane_mele_exchange(0.2, 0.2, lambda_so=0.0, lambda_r=0.1), 2),
        (qwz(-1.0), 1),
        (qwz(3.0), 0),
    ],
)
@pytest.mark.parametrize("open_axis", [0, 1])
def test_chiral_edge_modes_of_a_ribbon_count_the_chern_number(model, chern, open_axis):
    edges = edge_chirality(model, open_axis=open_axis, n_cells=24, n_k=160)
    assert edges.converged and edges.value == chern == chern_number(model).value
    assert edges.details["high_crossings"] == edges.details["low_crossings"] == abs(chern)


def test_quantum_spin_hall_ribbon_has_helical_modes_with_no_net_chirality():
    edges = edge_chirality(staggered_km(0.05, 0.0), n_cells=16, n_k=160)
    assert edges.converged and edges.value == 0
    assert edges.details["high_crossings"] == edges.details["low_crossings"] == 2
    with pytest.raises(ModelDefinitionError, match="2D model"):
        edge_chirality(afm_fu_kane_mele())


@pytest.mark.parametrize("lambda_r, m", [(0.05, 0.1), (0.2, 0.4)])
def test_graphene_with_rashba_and_exchange_is_a_c_equals_two_qah_insulator(lambda_r, m):
    # Qiao et al. 2010: |C| = 2; time reversal maps m to -m and C to -C
    plus = chern_number(kane_mele_exchange(m, m, lambda_so=0.0, lambda_r=lambda_r))
    minus = chern_number(kane_mele_exchange(-m, -m, lambda_so=0.0, lambda_r=lambda_r))
    assert plus.converged and abs(plus.value) == 2 and minus.value == -plus.value
    hall = anomalous_hall_conductivity(kane_mele_exchange(m, m, lambda_so=0.0, lambda_r=lambda_r), 0.0, mesh=160)
    assert hall.value == pytest.approx(-plus.value, abs=2e-2)


# ----------------------------------------------------------------------------- antiferromagnetic TI
AFTI_M = np.array([0.0, 0.5, 0.9, 1.2, 2.0, 3.0])
AFTI_DT = np.array([-0.4, 0.4])


def test_afti_z2_follows_the_closed_form_by_two_methods():
    models = [afm_fu_kane_mele(m=m, dt=dt) for dt in AFTI_DT for m in AFTI_M]
    res = antiferromagnetic_z2_batch(models)
    expected = [afti_closed_form(m, dt) for dt in AFTI_DT for m in AFTI_M]
    assert res["s_symmetric"].all() and res["converged"].all() and (res["min_gap"] > 0.05).all()
    assert res["wcc"].tolist() == expected
    assert res["parity"].tolist() == expected
    assert expected == [0, 0, 0, 1, 1, 0] + [1] * 6  # the exchange drives the weak phase into the AFTI


@pytest.mark.parametrize("dt", [0.4, -0.4])
def test_afti_z2_at_zero_moment_is_the_strong_index_of_the_parent(dt):
    parent = z2_indices(fu_kane_mele(dt=dt))
    afm = antiferromagnetic_z2(afm_fu_kane_mele(m=0.0, dt=dt))
    assert parent.converged and afm.converged
    assert afm.value == parent.value[0] == int(dt > 0)


@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.3, -0.5, 0.8)])
def test_afti_z2_does_not_depend_on_the_moment_direction(direction):
    d = np.asarray(direction) / np.linalg.norm(direction)
    for m, dt in ((1.3, -0.4), (0.5, -0.4), (0.5, 0.4)):
        res = antiferromagnetic_z2(afm_fu_kane_mele(m=m * d, dt=dt))
        assert res.converged and res.value == afti_closed_form(m, dt)
        assert res.method == "wcc-flow+fgb-parity"


@settings(max_examples=6, deadline=None)
@given(shift=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3))
def test_afti_z2_does_not_depend_on_the_origin(shift):
    model = afm_fu_kane_mele(m=1.2, dt=-0.4)
    moved = TightBindingModel.from_hopping_matrices(
        model.lattice,
        model.site_positions + np.asarray(shift)[None, :],
        model.onsite,
        model.hoppings,
        spinful=True,
        occupied=model.occupied,
    )
    res = antiferromagnetic_z2(moved)  # no inversion declared on the moved copy: the Wannier-centre flow alone
    assert res.converged and res.value == 1 and res.method == "wcc-flow"


def test_afti_z2_without_s_is_flagged_and_bad_input_refused():
    ferromagnet = add_exchange(model_supercell(fu_kane_mele(dt=0.4), (1, 1, 2)), [0.3] * 4)
    res = antiferromagnetic_z2(ferromagnet)
    assert not res.converged and not res.details["s_symmetric"]
    no_inversion = afm_fu_kane_mele(m=0.5)
    no_inversion.inversion = None
    assert antiferromagnetic_z2(no_inversion).method == "wcc-flow"
    with pytest.raises(SymmetryError, match="needs inversion"):
        antiferromagnetic_z2(no_inversion, method="parity")
    with pytest.raises(ModelDefinitionError, match="3D models"):
        antiferromagnetic_z2(kane_mele())
    with pytest.raises(OccupationError, match="even number"):
        antiferromagnetic_z2(afm_fu_kane_mele(), occupied=3)
    with pytest.raises(ModelDefinitionError, match="axis must be 0, 1 or 2"):
        antiferromagnetic_z2(afm_fu_kane_mele(), axis=3)
