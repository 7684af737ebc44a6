"""TightBindingModel: construction rules, errors, batched Hamiltonians, conventions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics import TightBindingModel, stacked_hamiltonian
from td_physics.exceptions import KPointError, ModelDefinitionError, OccupationError, SymmetryError
from td_physics.invariants import chern_number, wilson_loop
from td_physics.models import graphene, haldane, kane_mele


def square(norb: int = 1) -> TightBindingModel:
    return TightBindingModel(np.eye(2), np.linspace(0, 0.5, norb, endpoint=False)[:, None] * [1.0, 0.0])


def test_add_hopping_sets_the_documented_matrix_element_and_its_conjugate():
    m = square(2)
    m.add_hopping(0.3 + 0.1j, 0, 1, (1, 0))
    k = np.array([[0.2, 0.7]])
    h = m.hamiltonian(k)[0]
    phase = np.exp(2j * np.pi * 0.2)  # k.R with R = (1, 0)
    assert h[0, 1] == pytest.approx((0.3 + 0.1j) * phase)
    assert h[1, 0] == pytest.approx(np.conj((0.3 + 0.1j) * phase))


def test_from_hopping_matrices_matches_add_hopping():
    a = square(2)
    a.set_onsite([0.5, -0.5])
    a.add_hopping(1.0, 0, 1, (0, 0))
    a.add_hopping(0.2j, 0, 0, (0, 1))
    t0 = np.array([[0, 1.0], [0, 0]])
    t01 = np.array([[0.2j, 0], [0, 0]])
    b = TightBindingModel.from_hopping_matrices(
        np.eye(2), a.site_positions, np.diag([0.5, -0.5]), {(0, 0): t0, (0, 1): t01}
    )
    k = np.random.default_rng(1).random((5, 2))
    assert np.allclose(a.hamiltonian(k), b.hamiltonian(k))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 2),
            st.integers(-2, 2),
            st.integers(-2, 2),
            st.floats(-1, 1),
            st.floats(-1, 1),
        ),
        max_size=8,
    ),
    st.lists(st.floats(-1, 1), min_size=2, max_size=2),
)
def test_hamiltonian_is_hermitian_and_periodic(hops, k):
    m = TightBindingModel(np.eye(2), [[0.0, 0.0], [0.3, 0.1], [0.6, 0.5]])
    for i, j, r1, r2, re, im in hops:
        if i == j and r1 == 0 and r2 == 0:
            continue
        try:
            m.add_hopping(complex(re, im), i, j, (r1, r2), mode="add")
        except ModelDefinitionError:
            pass  # the conjugate bond was given already: refused, as documented
    kk = np.array([k, np.add(k, [1, -2])])
    h = m.hamiltonian(kk)
    assert np.allclose(h, np.conj(np.swapaxes(h, -1, -2)))
    assert np.allclose(h[0], h[1])  # periodic gauge: H(k + G) = H(k)
    h2 = m.hamiltonian(kk, convention=2)
    assert np.allclose(np.linalg.eigvalsh(h2[0]), np.linalg.eigvalsh(h[0]))  # same spectrum


def test_clear_errors_name_the_rule_and_the_value():
    m = square(2)
    with pytest.raises(ModelDefinitionError, match=r"orbital index j must be an integer in 0\.\.1, got 5"):
        m.add_hopping(1.0, 0, 5, (1, 0))
    with pytest.raises(ModelDefinitionError, match=r"R must have 2 integer components.*got \(1, 0, 0\)"):
        m.add_hopping(1.0, 0, 1, (1, 0, 0))
    with pytest.raises(ModelDefinitionError, match="must be integer"):
        m.add_hopping(1.0, 0, 1, (0.5, 0))
    with pytest.raises(ModelDefinitionError, match="on-site matrix must be hermitian"):
        m.set_onsite([[0, 1], [2, 0]])
    with pytest.raises(ModelDefinitionError, match="must be real"):
        m.set_onsite(1j, orbital=0)
    with pytest.raises(ModelDefinitionError, match="use set_onsite"):
        m.add_hopping(1.0, 1, 1, (0, 0))
    m.add_hopping(1.0, 0, 1, (1, 0))
    with pytest.raises(ModelDefinitionError, match="already given as its conjugate"):
        m.add_hopping(1.0, 1, 0, (-1, 0))
    with pytest.raises(ModelDefinitionError, match="singular lattice"):
        TightBindingModel([[1, 0], [2, 0]], [[0, 0]])
    with pytest.raises(KPointError, match=r"shape \(nk, 2\)"):
        m.hamiltonian(np.zeros((3, 3)))
    with pytest.raises(OccupationError, match="half filling is ambiguous"):
        _ = TightBindingModel(np.eye(2), [[0, 0], [0.1, 0], [0.2, 0]]).n_occupied
    with pytest.raises(SymmetryError, match="does not commute"):
        haldane(phi=0.5, m=0.3).set_inversion([1, 0], centre=[0.5, 0.5])


def test_set_inversion_takes_an_inversion_symmetry():
    source = kane_mele(lambda_so=0.06, lambda_v=0.0)
    target = kane_mele(lambda_so=0.02, lambda_v=0.0)
    target.inversion = None
    assert target.set_inversion(source.inversion) == source.inversion == target.inversion
    built = target.build_inversion(source.inversion.permutation, source.inversion.parities, source.inversion.centre)
    assert built == target.inversion
    with pytest.raises(SymmetryError, match="an InversionSymmetry carries its parities and centre"):
        target.set_inversion(source.inversion, centre=[0.0, 0.0])
    with pytest.raises(SymmetryError, match="does not commute"):
        haldane(phi=0.5, m=0.3).set_inversion(graphene().inversion)


def test_stacked_hamiltonian_equals_one_by_one():
    models = [haldane(m=m) for m in (0.0, 0.2, 0.5)]
    k = np.random.default_rng(2).random((7, 2))
    stacked = stacked_hamiltonian(models, k)
    assert stacked.shape == (3, 7, 2, 2)
    for h, m in zip(stacked, models):
        assert np.allclose(h, m.hamiltonian(k))


def test_velocity_matches_finite_differences():
    m = kane_mele(lambda_so=0.06, lambda_r=0.05, lambda_v=0.1)
    k = np.array([[0.13, 0.41]])
    v = m.velocity(k, cartesian=False)  # d/dk_reduced of H in convention II
    eps = 1e-6
    for a in range(2):
        dk = np.zeros((1, 2))
        dk[0, a] = eps
        fd = (m.hamiltonian(k + dk, convention=2) - m.hamiltonian(k - dk, convention=2)) / (2 * eps)
        assert np.allclose(v[a], fd, atol=1e-6)


def test_time_reversal_and_spin():
    assert kane_mele().is_time_reversal_symmetric()
    assert not kane_mele(exchange=0.1).is_time_reversal_symmetric()
    assert not haldane(phi=0.5).is_time_reversal_symmetric()
    assert np.allclose(np.diag(kane_mele().spin_z()).real, [1, -1, 1, -1])


def test_chern_equals_minus_winding_of_the_wannier_centres():
    # second method for C: the hybrid Wannier centre winds by -C as k_2 goes round the zone
    for model in (haldane(phi=1.0, m=0.1), haldane(phi=-1.0, m=0.1), haldane(phi=1.0, m=1.0)):
        res = wilson_loop(model, 1, n_pump=81, n_string=64)
        pol = np.unwrap(res.wcc[:, 0] * 2 * np.pi) / (2 * np.pi)
        winding = round(pol[-1] - pol[0])
        assert winding == -chern_number(model).value
