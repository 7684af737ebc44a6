"""Invariants against closed forms, second methods and invariances (gauge, origin, convention, permutation)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics import TightBindingModel
from td_physics.exceptions import ModelDefinitionError, OccupationError
from td_physics.invariants import (
    anomalous_hall_conductivity,
    berry_curvature,
    berry_flux_map,
    chern_number,
    parity_z2,
    spin_chern_number,
    weyl_nodes,
    wilson_loop,
    z2_indices,
    z2_invariant,
)
from td_physics.models import bhz, bi2se3, fu_kane_mele, haldane, kane_mele, qwz, weyl_two_band
from td_physics.validation import haldane_closed_form, qwz_closed_form

SETTINGS = settings(max_examples=15, deadline=None)


def transformed(model: TightBindingModel, *, phases=None, perm=None, shift=None) -> TightBindingModel:
    """The same physical model after an orbital gauge change, a site permutation or an origin shift."""
    u = np.diag(np.exp(1j * np.asarray(phases))) if phases is not None else np.eye(model.norb)
    sites = model.site_positions.copy()
    orb_perm = np.arange(model.norb)
    if perm is not None:
        sites = sites[list(perm)]
        orb_perm = np.array([2 * p + s for p in perm for s in (0, 1)]) if model.spinful else np.asarray(perm)
    if shift is not None:
        sites = sites + np.asarray(shift)
    onsite = (u @ model.onsite @ u.conj().T)[np.ix_(orb_perm, orb_perm)]
    hops = {r: (u @ t @ u.conj().T)[np.ix_(orb_perm, orb_perm)] for r, t in model.hoppings.items()}
    return TightBindingModel.from_hopping_matrices(
        model.lattice, sites, onsite, hops, dim_k=model.dim_k, spinful=model.spinful, occupied=model.occupied
    )


# ---------------------------------------------------------------------------- Chern: closed forms
def test_haldane_phase_diagram_matches_closed_form():
    t2 = 0.15
    rng = np.random.default_rng(0)
    for _ in range(12):
        phi = rng.uniform(-np.pi, np.pi)
        m = rng.uniform(-1.2, 1.2)
        if abs(abs(m) - 3 * np.sqrt(3) * abs(t2 * np.sin(phi))) < 0.02:
            continue
        res = chern_number(haldane(t2=t2, phi=phi, m=m))
        assert res.converged
        assert res.value == haldane_closed_form(np.array(m), np.array(phi), t2)


def test_haldane_sign_statement_of_the_docs():
    # +M on (1/3, 1/3), counter-clockwise hops exp(+i phi): lower band C = -sign(sin phi)
    assert chern_number(haldane(phi=np.pi / 2, m=0.1)).value == -1
    assert chern_number(haldane(phi=-np.pi / 2, m=0.1)).value == 1


@pytest.mark.parametrize("m", [-3.0, -1.5, -0.5, 0.5, 1.5, 3.0])
def test_qwz_phase_diagram(m):
    assert chern_number(qwz(m)).value == qwz_closed_form(np.array(m))


def test_qwz_matches_analytic_skyrmion_number():
    # second method: C = (1/4 pi) int d^.(d_x d^ x d_y d^) with analytic derivatives of d(k)
    n = 200
    k = 2 * np.pi * np.arange(n) / n
    kx, ky = np.meshgrid(k, k, indexing="ij")
    for m in (-1.3, 0.7, 2.5):
        d = np.stack([np.sin(kx), np.sin(ky), m + np.cos(kx) + np.cos(ky)], -1)
        dx = np.stack([np.cos(kx), 0 * kx, -np.sin(kx)], -1)
        dy = np.stack([0 * ky, np.cos(ky), -np.sin(ky)], -1)
        norm = np.linalg.norm(d, axis=-1)
        # d^.(d_x d^ x d_y d^) = d.(d_x d x d_y d) / |d|^3
        density = np.einsum("...i,...i->...", d, np.cross(dx, dy)) / norm**3
        skyrmion = density.sum() * (2 * np.pi / n) ** 2 / (4 * np.pi)
        assert round(skyrmion) == chern_number(qwz(m)).value


def test_fhs_agrees_with_integrated_kubo_curvature():
    model = haldane(t2=0.15, phi=0.7, m=0.3)
    n = 160
    grid = np.stack(np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij"), -1).reshape(-1, 2)
    omega = berry_curvature(model, grid, 1)  # Angstrom^2 (Cartesian)
    area = abs(np.linalg.det(model.lattice))
    kubo = omega.mean() * (2 * np.pi) ** 2 / area / (2 * np.pi)
    assert kubo == pytest.approx(chern_number(model).value, abs=1e-3)


def test_chern_numbers_of_all_bands_sum_to_zero():
    model = kane_mele(lambda_so=0.06, lambda_v=0.1, exchange=0.3, lambda_r=0.05)
    # band-resolved Chern numbers from cumulative groups: C_n = C(0..n) - C(0..n-1)
    cumulative = [0] + [chern_number(model, occ, mesh=48).value for occ in range(1, model.norb)] + [0]
    per_band = np.diff(cumulative)
    assert per_band.sum() == 0


def test_left_handed_lattice_vectors_do_not_flip_the_sign():
    model = haldane(phi=0.9, m=0.1)
    swapped = TightBindingModel.from_hopping_matrices(
        model.lattice[::-1],
        model.site_positions[:, ::-1],
        model.onsite,
        {r[::-1]: t for r, t in model.hoppings.items()},
    )
    assert chern_number(swapped).value == chern_number(model).value == -1


def test_refinement_and_non_convergence_are_reported():
    near = haldane(t2=0.15, phi=np.pi / 2, m=3 * np.sqrt(3) * 0.15 - 0.05)
    res = chern_number(near, mesh=8)
    assert res.converged and res.mesh[0] > 8 and res.details["max_flux"] <= 1.0
    critical = haldane(t2=0.15, phi=np.pi / 2, m=3 * np.sqrt(3) * 0.15)
    assert not chern_number(critical, mesh=24, max_mesh=48).converged


def test_berry_flux_map_sums_to_chern():
    flux, grid = berry_flux_map(haldane(phi=1.0, m=0.1), mesh=32)
    assert flux.shape == (32, 32) and grid.shape == (32, 32, 2)
    assert flux.sum() / (2 * np.pi) == pytest.approx(-1, abs=1e-9)


# ---------------------------------------------------------------------------- Hall conductivity
def test_hall_conductivity_of_a_chern_insulator_is_minus_c():
    model = haldane(t2=0.15, phi=np.pi / 2, m=0.2)
    res = anomalous_hall_conductivity(model, fermi_energy=0.0, mesh=120)
    assert res.value == pytest.approx(-chern_number(model).value, abs=2e-3)
    assert res.converged


def test_hall_conductivity_of_stacked_layers_in_siemens_per_cm():
    layer = qwz(1.0)
    c = 5.0  # Angstrom between decoupled layers
    lattice = np.diag([1.0, 1.0, c])
    sites = np.hstack([layer.site_positions, np.zeros((len(layer.site_positions), 1))])
    stacked = TightBindingModel.from_hopping_matrices(
        lattice, sites, layer.onsite, {(*r, 0): t for r, t in layer.hoppings.items()}
    )
    res = anomalous_hall_conductivity(stacked, 0.0, mesh=40)
    # sigma_xy = -C e^2/h per layer spacing
    assert res.value == pytest.approx(-chern_number(layer).value / c, rel=5e-3)
    assert res.details["S_per_cm"] == pytest.approx(res.value * 3.874045846e-5 * 1e8)


# ---------------------------------------------------------------------------- Z2 2D
@pytest.mark.parametrize("lambda_v", [0.0, 0.1, 0.2, 0.28, 0.34, 0.45])
def test_kane_mele_closed_form(lambda_v):
    lso = 0.06
    res = z2_invariant(kane_mele(lambda_so=lso, lambda_v=lambda_v))
    assert res.converged
    assert res.value == int(abs(lambda_v) < 3 * np.sqrt(3) * lso)


def test_kane_mele_wcc_parity_and_spin_chern_agree():
    model = kane_mele(lambda_so=0.06)
    wcc = z2_invariant(model)
    assert wcc.details["parity"] == wcc.value == 1
    assert abs(spin_chern_number(model).value) % 2 == 1


def test_kane_mele_with_rashba_stays_topological():
    model = kane_mele(lambda_so=0.06, lambda_v=0.1, lambda_r=0.05)
    res = z2_invariant(model)
    assert res.value == 1 and res.converged


@pytest.mark.parametrize("ratio", [-1.0, 0.5, 2.0, 6.0, 7.5, 9.0])
def test_bhz_closed_form_and_parities(ratio):
    model = bhz(M=ratio, B=1.0, A=1.0, a=1.0)
    res = z2_invariant(model)
    assert res.value == int(0 < ratio < 8)
    assert parity_z2(model).value == res.value


def test_time_reversal_breaking_is_flagged_not_hidden():
    res = z2_invariant(kane_mele(lambda_so=0.06, exchange=0.02))
    assert res.details["time_reversal"] is False


# ---------------------------------------------------------------------------- Z2 3D
@pytest.mark.parametrize(("dt", "expected"), [(0.4, (1, 1, 1, 1)), (-0.4, (0, 1, 1, 1))])
def test_fu_kane_mele_dimerisation(dt, expected):
    res = z2_indices(fu_kane_mele(dt=dt))
    assert res.value == expected
    assert tuple(res.details["parity"]) == expected
    assert len(set(res.details["nu0_by_axis"])) == 1 and res.converged


def test_bi2se3_strong_ti_by_both_methods():
    res = z2_indices(bi2se3())
    assert res.value == (1, 0, 0, 0)
    assert parity_z2(bi2se3()).value == (1, 0, 0, 0)


# ---------------------------------------------------------------------------- Wilson loops
def test_wannier_centre_sits_on_the_orbital():
    # atomic limit: the occupied band lives on an orbital at x = 0.3, so its Wannier centre is there
    chain = TightBindingModel([[1.0, 0.0], [0.0, 1.0]], [[0.3, 0.0], [0.8, 0.0]])
    chain.set_onsite([-2.0, 2.0])
    chain.add_hopping(0.05, 0, 1, (0, 0))
    chain.add_hopping(0.05, 1, 0, (1, 0))
    res = wilson_loop(chain, 1, n_pump=5)
    assert np.allclose(res.wcc[:, 0], 0.3, atol=5e-3)


# ---------------------------------------------------------------------------- invariances
@SETTINGS
@given(
    phases=st.lists(st.floats(-np.pi, np.pi), min_size=2, max_size=2),
    phi=st.floats(0.3, 2.8),
    m=st.floats(-0.4, 0.4),
    shift=st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
)
def test_chern_invariant_under_gauge_origin_and_permutation(phases, phi, m, shift):
    model = haldane(t2=0.15, phi=phi, m=m)
    ref = chern_number(model).value
    assert chern_number(transformed(model, phases=phases)).value == ref
    assert chern_number(transformed(model, shift=shift)).value == ref
    assert chern_number(transformed(model, perm=[1, 0])).value == ref


@SETTINGS
@given(
    phases=st.lists(st.floats(-np.pi, np.pi), min_size=4, max_size=4),
    lambda_v=st.floats(0.0, 0.5),
    shift=st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
)
def test_z2_invariant_under_gauge_origin_and_permutation(phases, lambda_v, shift):
    lso = 0.06
    if abs(lambda_v - 3 * np.sqrt(3) * lso) < 0.02:
        return
    model = kane_mele(lambda_so=lso, lambda_v=lambda_v)
    expected = int(lambda_v < 3 * np.sqrt(3) * lso)
    # a gauge change must keep Kramers pairs: the same phase on both spins of a site
    gauge = [phases[0], phases[0], phases[1], phases[1]]
    for variant in (
        model,
        transformed(model, phases=gauge),
        transformed(model, shift=shift),
        transformed(model, perm=[1, 0]),
    ):
        assert z2_invariant(variant).value == expected


@pytest.mark.parametrize(
    ("factory", "invariant"),
    [(lambda: haldane(phi=1.1, m=0.2), chern_number), (lambda: kane_mele(lambda_so=0.06, lambda_v=0.1), z2_invariant)],
)
def test_bloch_convention_does_not_matter(factory, invariant):
    # all orbitals at the origin is exactly the periodic-gauge (convention I) calculation
    model = factory()
    periodic = TightBindingModel.from_hopping_matrices(
        model.lattice, np.zeros_like(model.site_positions), model.onsite, model.hoppings, spinful=model.spinful
    )
    assert invariant(periodic).value == invariant(model).value


# ---------------------------------------------------------------------------- Weyl
@pytest.mark.parametrize("k0", [np.pi / 2, np.pi / 3])
def test_weyl_nodes_positions_and_chirality(k0):
    res = weyl_nodes(weyl_two_band(k0=k0))
    assert res.converged and len(res.value) == 2
    for node in res.value:
        kz = node.position[2] * 2 * np.pi
        # two-band node: chirality = sign det(dd/dk) = sign(-sin kz)
        assert node.chirality == int(np.sign(-np.sin(kz)))
        assert np.isclose(np.cos(kz), np.cos(k0), atol=1e-6)
        assert np.allclose(node.position[:2], 0.0, atol=1e-6) or np.allclose(node.position[:2], 1.0, atol=1e-6)


def test_insulator_has_no_weyl_nodes():
    layers = qwz(3.0)
    sites = np.hstack([layers.site_positions, np.zeros((len(layers.site_positions), 1))])
    model = TightBindingModel.from_hopping_matrices(
        np.eye(3), sites, layers.onsite, {(*r, 0): t for r, t in layers.hoppings.items()}
    )
    assert weyl_nodes(model, mesh=8).value == ()


# ---------------------------------------------------------------------------- errors
def test_clear_errors():
    with pytest.raises(OccupationError, match="occupied must be between 1 and 1 bands, got 2"):
        chern_number(qwz(1.0), occupied=2)
    with pytest.raises(OccupationError, match="even number"):
        z2_invariant(kane_mele(), occupied=1)
    with pytest.raises(ModelDefinitionError, match="z2_indices"):
        z2_invariant(fu_kane_mele())
    with pytest.raises(ModelDefinitionError, match="plane"):
        chern_number(fu_kane_mele(), plane=(1, 1))
    with pytest.raises(ModelDefinitionError, match="1D"):
        chern_number(TightBindingModel([[1.0]], [[0.0], [0.5]]))
    with pytest.raises(TypeError, match="unknown convergence options"):
        z2_invariant(kane_mele(), bogus=1)


@SETTINGS
@given(angle=st.floats(-np.pi, np.pi), phi=st.floats(0.3, 2.8))
def test_rotations_keep_and_mirrors_flip_the_hall_response(angle, phi):
    model = haldane(t2=0.15, phi=phi, m=0.1)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mirror = np.diag([-1.0, 1.0])
    c = chern_number(model).value

    def moved(matrix):
        return TightBindingModel.from_hopping_matrices(
            model.lattice @ matrix.T, model.site_positions, model.onsite, model.hoppings
        )

    assert chern_number(moved(rot)).value == c  # a proper rotation changes nothing
    assert chern_number(moved(mirror)).value == -c  # C (sigma_xy) is odd under a mirror
    # the Cartesian Berry curvature, hence sigma_xy on the same mesh, is unchanged by a rotation
    sigma = anomalous_hall_conductivity(model, 0.0, mesh=24).value
    assert anomalous_hall_conductivity(moved(rot), 0.0, mesh=24).value == pytest.approx(sigma, abs=1e-9)
