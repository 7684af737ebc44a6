"""BdG models (td_physics.bdg), the superconductor factories and the Majorana invariants.

Each invariant is checked against its closed-form phase diagram and against a second method: the Pfaffian
Majorana number against the chiral winding number and the zero modes of an open chain; the p + ip Chern
number against the skyrmion number of the closed-form d-vector; the helical Z2 against the Chern number of
one spin sector and the Fu-Kane parities of the declared inversion.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics import TightBindingModel
from td_physics.bdg import (
    Pairing,
    bdg_model,
    check_particle_hole,
    chiral_p_wave,
    d_wave,
    decoupled_block,
    particle_hole_error,
    particle_hole_matrix,
    s_wave,
)
from td_physics.exceptions import ModelDefinitionError, SymmetryError
from td_physics.finite import flake, ribbon
from td_physics.invariants import (
    berry_curvature,
    chern_number,
    majorana_number,
    pfaffian,
    winding_number,
    z2_invariant,
)
from td_physics.invariants.majorana import majorana_batch, majorana_matrix
from td_physics.models import helical_p_wave_superconductor, kitaev_chain, p_wave_superconductor
from td_physics.phase_diagram import phase_diagram

FAST = settings(max_examples=25, deadline=None)


# ----------------------------------------------------------------------------- helpers
def _random_normal(seed: int, norb: int, dim_k: int) -> TightBindingModel:
    """A random hermitian normal model with orbitals at random positions."""
    rng = np.random.default_rng(seed)
    lattice = np.eye(dim_k) + 0.2 * rng.standard_normal((dim_k, dim_k))
    model = TightBindingModel(lattice, rng.random((norb, dim_k)))
    onsite = rng.standard_normal((norb, norb)) + 1j * rng.standard_normal((norb, norb))
    model.set_onsite(onsite + onsite.conj().T)
    for r in np.eye(dim_k, dtype=int):
        for i in range(norb):
            for j in range(norb):
                model.add_hopping(complex(*rng.standard_normal(2)), i, j, r)
    return model


def _random_pairing(seed: int, norb: int, dim_k: int) -> dict:
    """Random pair amplitudes: an antisymmetric D_0 and a free D_R on each axis."""
    rng = np.random.default_rng(seed + 1)
    d0 = rng.standard_normal((norb, norb)) + 1j * rng.standard_normal((norb, norb))
    mats = {(0,) * dim_k: d0 - d0.T}
    for r in np.eye(dim_k, dtype=int):
        mats[tuple(r)] = rng.standard_normal((norb, norb)) + 1j * rng.standard_normal((norb, norb))
    return mats


def _skyrmion_number(d_fn, mesh: int = 96) -> int:
    """(1/4 pi) int d_hat . (dx d_hat x dy d_hat) from solid angles of mesh triangles (an exact integer)."""
    ks = 2 * np.pi * np.arange(mesh) / mesh
    kx, ky = np.meshgrid(ks, ks, indexing="ij")
    d = d_fn(kx, ky)
    d = d / np.linalg.norm(d, axis=0)  # (3, mesh, mesh)
    a, b = d, np.roll(d, -1, axis=1)
    c, e = np.roll(b, -1, axis=2), np.roll(d, -1, axis=2)

    def solid(p, q, r):
        num = np.einsum("i...,i...->...", p, np.cross(q, r, axis=0))
        den = (
            1
            + np.einsum("i...,i...->...", p, q)
            + np.einsum("i...,i...->...", q, r)
            + np.einsum("i...,i...->...", r, p)
        )
        return 2 * np.arctan2(num, den)

    total = solid(a, b, c).sum() + solid(a, c, e).sum()
    return int(np.rint(total / (4 * np.pi)))


def _p_wave_d_vector(t: float, mu: float, delta: float):
    return lambda kx, ky: np.stack(
        [delta * np.sin(kx), delta * np.sin(ky), -2 * t * (np.cos(kx) + np.cos(ky)) - mu + 0 * kx]
    )


# ----------------------------------------------------------------------------- the pairing and the BdG matrix
def test_pairing_fills_in_the_minus_r_partner_as_minus_transpose():
    d = np.array([[1.0, 2.0j], [3.0, 4.0]])
    p = Pairing.from_matrices({(1, 0): d}, norb=2, dim_k=2, name="x")
    np.testing.assert_allclose(p.matrices[(-1, 0)], -d.T)
    k = np.random.default_rng(0).random((5, 2))
    np.testing.assert_allclose(p.delta(-k), -np.swapaxes(p.delta(k), -1, -2), atol=1e-12)
    with pytest.raises(ValueError, match="read-only"):
        p.matrices[(1, 0)][0, 0] = 5.0


@pytest.mark.parametrize(
    ("matrices", "match"),
    [
        ({(0,): [[1.0]]}, "D_0 must be antisymmetric"),
        ({(1,): [[1.0]], (-1,): [[1.0]]}, "must equal -D_R"),
        ({(1,): [[1.0, 0.0]]}, "must have shape"),
        ({(1, 0): [[1.0]]}, "must be 1 integers"),
        ({(1,): [[np.nan]]}, "NaN"),
    ],
)
def test_pairing_refuses_what_fermion_antisymmetry_forbids(matrices, match):
    with pytest.raises(ModelDefinitionError, match=match):
        Pairing.from_matrices(matrices, norb=1, dim_k=1)


def test_pairing_symmetry_helpers_need_the_right_normal_state():
    spinless = TightBindingModel(np.eye(2), [[0.0, 0.0]])
    spinful = TightBindingModel(np.eye(2), [[0.0, 0.0]], spinful=True)
    with pytest.raises(ModelDefinitionError, match="s-wave pairing needs a spinful"):
        s_wave(spinless, 1.0)
    with pytest.raises(ModelDefinitionError, match="d-wave pairing needs a spinful"):
        d_wave(spinless, 1.0)
    with pytest.raises(ModelDefinitionError, match="chiral p-wave pairing needs a spinless"):
        chiral_p_wave(spinful, 1.0)
    with pytest.raises(ModelDefinitionError, match="chirality must be"):
        chiral_p_wave(spinless, 1.0, chirality=2)
    with pytest.raises(ModelDefinitionError, match="pairing is for"):
        bdg_model(spinless, s_wave(spinful, 1.0))
    with pytest.raises(ModelDefinitionError, match="amplitude delta must be a finite real"):
        s_wave(spinful, 1j)
    with pytest.raises(ModelDefinitionError, match="chemical potential"):
        bdg_model(spinless, {}, mu=float("nan"))


@FAST
@given(seed=st.integers(0, 10_000), norb=st.integers(1, 3), dim_k=st.integers(1, 2), mu=st.floats(-3, 3))
def test_bdg_hamiltonian_is_hermitian_and_particle_hole_symmetric(seed, norb, dim_k, mu):
    bdg = bdg_model(_random_normal(seed, norb, dim_k), _random_pairing(seed, norb, dim_k), mu=mu)
    k = np.random.default_rng(seed).random((6, dim_k))
    c = particle_hole_matrix(bdg)
    for convention in (1, 2):
        h = bdg.hamiltonian(np.concatenate([k, -k]), convention=convention)
        np.testing.assert_allclose(h, np.conj(np.swapaxes(h, -1, -2)), atol=1e-12)
        np.testing.assert_allclose(c @ h[:6].conj() @ c, -h[6:], atol=1e-10)
    assert particle_hole_error(bdg) < 1e-10
    e_k, e_minus_k = bdg.eigvalsh(k), bdg.eigvalsh(-k)
    np.testing.assert_allclose(e_k, -e_minus_k[:, ::-1], atol=1e-10)  # E(k) and -E(-k): the doubling
    assert bdg.occupied == norb and bdg.norb == 2 * norb


@FAST
@given(seed=st.integers(0, 10_000), mu=st.floats(-3, 3))
def test_without_pairing_the_bdg_bands_are_the_electrons_and_the_mirrored_holes(seed, mu):
    normal = _random_normal(seed, 2, 2)
    bdg = bdg_model(normal, {}, mu=mu)
    k = np.random.default_rng(seed).random((5, 2))
    expected = np.sort(np.concatenate([normal.eigvalsh(k) - mu, -(normal.eigvalsh(-k) - mu)], axis=1), axis=1)
    np.testing.assert_allclose(bdg.eigvalsh(k), expected, atol=1e-10)


def test_a_model_that_is_not_in_the_nambu_layout_fails_the_particle_hole_check():
    normal = _random_normal(1, 2, 1)
    assert particle_hole_error(normal) > 1e-3
    with pytest.raises(SymmetryError, match="particle-hole symmetry"):
        check_particle_hole(normal)
    with pytest.raises(ModelDefinitionError, match="even number of orbitals"):
        particle_hole_matrix(TightBindingModel([[1.0]], [[0.0]]))


def _square(spinful: bool, t: float = 1.0) -> TightBindingModel:
    model = TightBindingModel(np.eye(2), [[0.0, 0.0]], spinful=spinful)
    for o in range(model.norb):
        model.add_hopping(-t, o, o, (1, 0))
        model.add_hopping(-t, o, o, (0, 1))
    return model


@pytest.mark.parametrize(
    ("pairing", "form"),
    [
        (s_wave, lambda kx, ky: np.ones_like(kx)),
        (d_wave, lambda kx, ky: np.cos(kx) - np.cos(ky)),
    ],
)
def test_singlet_spectra_match_the_closed_form(pairing, form):
    normal, delta, mu = _square(True), 0.4, -0.7
    bdg = bdg_model(normal, pairing(normal, delta), mu=mu)
    k = np.random.default_rng(2).random((20, 2))
    kx, ky = 2 * np.pi * k.T
    xi = -2 * (np.cos(kx) + np.cos(ky)) - mu
    e = np.sqrt(xi**2 + (delta * form(kx, ky)) ** 2)
    expected = np.stack([-e, -e, e, e], axis=1)
    np.testing.assert_allclose(bdg.eigvalsh(k), expected, atol=1e-10)


def test_d_wave_is_nodal_on_the_diagonal_and_s_wave_is_gapped_with_chern_zero():
    normal, mu = _square(True), -0.7
    d = bdg_model(normal, d_wave(normal, 0.4), mu=mu)
    node = np.arccos(-mu / 4) / (2 * np.pi)  # xi = 0 on kx = ky
    assert np.abs(d.eigvalsh([node, node])).min() < 1e-12
    s = bdg_model(normal, s_wave(normal, 0.4), mu=mu)
    res = chern_number(s)
    assert res.value == 0 and res.converged and res.min_gap > 0.79


# ----------------------------------------------------------------------------- Pfaffian
@FAST
@given(seed=st.integers(0, 10_000), half=st.integers(1, 5), complex_=st.booleans())
def test_pfaffian_squares_to_the_determinant_and_transforms_with_det(seed, half, complex_):
    rng = np.random.default_rng(seed)
    n = 2 * half
    x = rng.standard_normal((7, n, n)) + (1j * rng.standard_normal((7, n, n)) if complex_ else 0)
    a = x - np.swapaxes(x, -1, -2)
    pf = pfaffian(a)
    np.testing.assert_allclose(pf**2, np.linalg.det(a), rtol=1e-8, atol=1e-8)
    b = rng.standard_normal((n, n))
    np.testing.assert_allclose(pfaffian(b @ a @ b.T), np.linalg.det(b) * pf, rtol=1e-7, atol=1e-8)


def test_pfaffian_of_a_block_diagonal_matrix_is_the_product_and_odd_size_gives_zero():
    blocks = np.zeros((6, 6))
    for i, v in enumerate((2.0, -3.0, 0.5)):
        blocks[2 * i, 2 * i + 1], blocks[2 * i + 1, 2 * i] = v, -v
    assert pfaffian(blocks) == pytest.approx(-3.0)
    assert pfaffian(np.zeros((3, 3))) == 0.0
    with pytest.raises(ModelDefinitionError, match="antisymmetric"):
        pfaffian(np.eye(2))


# ----------------------------------------------------------------------------- Kitaev chain
def _kitaev_closed_form(t, mu, delta):
    return np.where((np.abs(mu) < 2 * np.abs(t)) & (delta != 0), -1, 1)


def test_majorana_number_follows_kitaevs_phase_diagram_in_mu_and_delta():
    mus = np.linspace(-3.1, 3.1, 32)  # never on |mu| = 2 exactly
    deltas = np.array([-1.0, -0.3, 0.05, 0.3, 1.0])
    models = [kitaev_chain(1.0, m, d) for m in mus for d in deltas]
    res = majorana_batch(models)
    expected = _kitaev_closed_form(1.0, mus[:, None], deltas[None, :]).ravel()
    np.testing.assert_array_equal(res["value"], expected)
    assert res["converged"].all()
    closed = majorana_batch([kitaev_chain(1.0, 1.0, 0.0), kitaev_chain(1.0, 2.0, 0.5)])
    assert not closed["converged"].any()  # Delta = 0 (gapless at k_F) and |mu| = 2|t| (gap closes at k = pi)


@pytest.mark.parametrize(("t", "mu", "delta"), [(1.0, 0.5, 0.4), (-1.0, 0.5, 0.4), (1.0, -1.9, -0.2), (0.7, 0.3, 2.0)])
def test_majorana_number_and_the_chiral_winding_agree(t, mu, delta):
    model = kitaev_chain(t, mu, delta)
    m, w = majorana_number(model), winding_number(model)
    assert m.converged and w.converged
    assert m.value == (-1) ** abs(w.value) == -1
    assert w.value == -np.sign(t * delta)  # the sign stated in the module docstring
    trivial = kitaev_chain(t, 2.5 * abs(t), delta)
    assert majorana_number(trivial).value == 1 and winding_number(trivial).value == 0


def test_majorana_matrix_is_real_antisymmetric_and_kitaev_pfaffians_are_the_band_edges():
    t, mu, delta = 1.0, 0.5, 0.4
    a = majorana_matrix(kitaev_chain(t, mu, delta).hamiltonian([[0.0], [0.5]]))
    np.testing.assert_allclose(a, -np.swapaxes(a, -1, -2))
    res = majorana_number(kitaev_chain(t, mu, delta))
    assert res.details["pfaffian_0"] == pytest.approx(-2 * t - mu)  # Pf A = xi at k = 0 and pi
    assert res.details["pfaffian_pi"] == pytest.approx(2 * t - mu)


def test_open_kitaev_chain_has_two_end_majorana_zero_modes_only_when_topological():
    n = 40
    for mu, topological in ((0.5, True), (2.5, False)):
        chain = flake(kitaev_chain(1.0, mu, 0.6), (n,))
        e, v = np.linalg.eigh(chain.hamiltonian.toarray())
        order = np.argsort(np.abs(e))
        near_zero = np.abs(e[order[:2]])
        bulk_gap = 2 * min(abs(2 - abs(mu)), 0.6 * 0.5)
        if topological:
            assert near_zero.max() < 1e-6  # splitting ~ exp(-n / xi)
            weight = (np.abs(v[:, order[:2]]) ** 2).sum(axis=1)  # both zero modes
            ends = (chain.cells[:, 0] < 5) | (chain.cells[:, 0] >= n - 5)
            assert weight[ends].sum() > 0.99 * weight.sum()
        else:
            assert near_zero.min() > 0.25 * bulk_gap


def _two_chains(mus, deltas, coupling: float = 0.0, phases=(0.0, 0.0)) -> TightBindingModel:
    """Two Kitaev chains (t = 1) on one site, optionally coupled by an inter-chain hopping.

    ``phases`` gauge the orbitals, c_j -> exp(i theta_j) c_j: c_i^+ c_j picks up exp(i (theta_j - theta_i))
    and c_i^+ c_j^+ picks up exp(-i (theta_i + theta_j)).
    """
    normal = TightBindingModel([[1.0]], [[0.0], [0.0]])
    u = np.exp(1j * np.asarray(phases))
    normal.set_onsite(
        np.diag(-np.asarray(mus, dtype=float)) + coupling * (np.conj(u)[:, None] * u[None, :]) * (1 - np.eye(2))
    )
    for i in range(2):
        normal.add_hopping(-1.0, i, i, (1,))
    pairing = {(1,): -np.diag(deltas) * np.conj(u[:, None] * u[None, :])}
    return bdg_model(normal, pairing)


def test_decoupled_chains_multiply_majorana_numbers_and_add_windings():
    for mus, expected_m, expected_w in (((0.5, 3.0), -1, -1), ((0.5, -1.0), 1, -2), ((2.5, 3.0), 1, 0)):
        model = _two_chains(mus, (0.6, 0.6))
        assert majorana_number(model).value == expected_m  # class D: Z2, two Majoranas pair up
        assert winding_number(model).value == expected_w  # class BDI: Z, they do not


@FAST
@given(theta=st.tuples(st.floats(0, 2 * np.pi), st.floats(0, 2 * np.pi)), coupling=st.floats(-0.3, 0.3))
def test_majorana_number_survives_an_orbital_gauge_and_a_weak_coupling(theta, coupling):
    model = _two_chains((0.5, 3.0), (0.6, -0.4), coupling=coupling, phases=theta)
    res = majorana_number(model)
    assert res.value == -1 and res.converged


def test_majorana_invariants_refuse_what_they_do_not_define():
    with pytest.raises(ModelDefinitionError, match="1D models"):
        majorana_number(p_wave_superconductor())
    with pytest.raises(ModelDefinitionError, match="1D models"):
        winding_number(p_wave_superconductor())
    with pytest.raises(SymmetryError, match="particle-hole"):
        majorana_number(_random_normal(4, 2, 1))
    with pytest.raises(SymmetryError, match="anticommute"):
        winding_number(kitaev_chain(mu=0.5), chiral=np.diag([1.0, -1.0]))  # tau_z commutes with the xi tau_z term
    with pytest.raises(ModelDefinitionError, match="unitary"):
        winding_number(kitaev_chain(), chiral=np.eye(3))


# ----------------------------------------------------------------------------- p + ip
def _p_wave_closed_form(t, mu, delta):
    inside = (np.abs(mu) < 4 * abs(t)) & (mu != 0) & (delta != 0)
    return np.where(inside, np.sign(mu), 0).astype(int)


def test_p_wave_chern_phase_diagram_in_mu_and_delta_matches_the_closed_form():
    mus = np.array([-5.0, -3.5, -2.0, -0.6, 0.6, 2.0, 3.5, 5.0])
    deltas = np.array([-1.0, 0.5, 1.5])
    pd = phase_diagram(p_wave_superconductor, {"mu": mus, "delta": deltas}, "chern", fixed={"t": 1.0})
    np.testing.assert_array_equal(pd.values, _p_wave_closed_form(1.0, mus[:, None], deltas[None, :]))
    assert pd.converged.all()


@pytest.mark.parametrize(("t", "mu", "delta"), [(1.0, 1.0, 1.0), (1.0, -2.5, 0.7), (-1.0, 1.5, 1.0), (1.0, 4.5, 1.0)])
def test_p_wave_chern_equals_the_skyrmion_number_of_the_closed_form_d_vector(t, mu, delta):
    model = p_wave_superconductor(t, mu, delta)
    k = np.random.default_rng(0).random((10, 2))
    kx, ky = 2 * np.pi * k.T
    d = _p_wave_d_vector(t, mu, delta)(kx, ky)
    e = np.linalg.norm(d, axis=0)
    np.testing.assert_allclose(model.eigvalsh(k), np.stack([-e, e], 1), atol=1e-10)  # H = d . tau
    assert chern_number(model).value == _skyrmion_number(_p_wave_d_vector(t, mu, delta))
    assert chern_number(model).value == _p_wave_closed_form(t, mu, delta)


def test_p_wave_chern_from_the_berry_curvature_integral():
    model = p_wave_superconductor(1.0, 1.0, 1.0)
    n = 120
    g = (np.arange(n) + 0.5) / n
    k = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    flux = berry_curvature(model, k).sum() * (2 * np.pi / n) ** 2 / (2 * np.pi)
    assert flux == pytest.approx(chern_number(model).value, abs=1e-3)


def _top_edge_spectral_flow(model: TightBindingModel, n_cells: int = 24, nk: int = 96) -> int:
    """Signed count of zero crossings, along kx, of the in-gap modes localised on the top edge of a ribbon."""
    strip = ribbon(model, axis=1, n_cells=n_cells)
    k = ((np.arange(nk) + 0.5) / nk)[:, None]
    e, v = np.linalg.eigh(strip.hamiltonian(k))  # (nk, norb), (nk, norb, norb)
    top = strip.positions[:, 1] > np.quantile(strip.positions[:, 1], 0.9)
    weight = (np.abs(v[:, top, :]) ** 2).sum(axis=1)  # (nk, norb) on the top tenth
    in_gap = np.abs(e) < 0.5 * chern_number(model).min_gap
    pick = np.argmax(np.where(in_gap, weight, -1.0), axis=1)  # the top-edge in-gap state at each k
    energy = np.take_along_axis(e, pick[:, None], 1)[:, 0]
    edge = (np.take_along_axis(weight, pick[:, None], 1)[:, 0] > 0.5) & in_gap[np.arange(nk), pick]
    nxt = np.roll(np.arange(nk), -1)
    crossing = edge & edge[nxt] & (np.sign(energy) != np.sign(energy[nxt]))
    return int(np.sign(energy[nxt] - energy)[crossing].sum())


@pytest.mark.parametrize("mu", [-1.0, 2.5, 5.0])
def test_p_wave_chern_counts_the_chiral_majorana_modes_on_one_edge_of_a_ribbon(mu):
    model = p_wave_superconductor(1.0, mu, 1.0)
    assert _top_edge_spectral_flow(model) == chern_number(model).value == _p_wave_closed_form(1.0, mu, 1.0)


@FAST
@given(
    phase=st.floats(0, 2 * np.pi),
    shift=st.tuples(st.floats(-1, 1), st.floats(-1, 1)),
    mu=st.sampled_from([-3.0, 1.0, 5.0]),
)
def test_p_wave_chern_survives_a_pairing_phase_and_an_origin_shift(phase, shift, mu):
    normal = TightBindingModel(np.eye(2), [list(shift)])
    normal.add_hopping(-1.0, 0, 0, (1, 0))
    normal.add_hopping(-1.0, 0, 0, (0, 1))
    base = chiral_p_wave(normal, 1.0)
    rotated = Pairing.from_matrices({r: np.exp(1j * phase) * d for r, d in base.matrices.items()}, norb=1, dim_k=2)
    assert chern_number(bdg_model(normal, rotated, mu=mu)).value == _p_wave_closed_form(1.0, mu, 1.0)


# ----------------------------------------------------------------------------- helical (class DIII)
@pytest.mark.parametrize("mu", [-5.0, -2.0, 1.0, 3.0, 4.5])
def test_helical_z2_matches_the_closed_form_a_spin_sector_chern_and_the_parities(mu):
    model = helical_p_wave_superconductor(1.0, mu, 0.8)
    assert model.is_time_reversal_symmetric() and particle_hole_error(model) < 1e-12
    res = z2_invariant(model)
    expected = int(0 < abs(mu) < 4)
    assert res.value == expected and res.converged
    assert res.details["parity"] == expected  # Fu-Kane parities of the declared P = tau_z
    up = decoupled_block(model, [0, 2])  # particle and hole of spin up
    down = decoupled_block(model, [1, 3])
    c_up, c_down = chern_number(up).value, chern_number(down).value
    assert c_up == -c_down == _p_wave_closed_form(1.0, mu, 0.8)  # the spin-up sector is the p + ip model
    assert abs(c_up) % 2 == res.value


def test_decoupled_block_refuses_coupled_orbitals():
    with pytest.raises(ModelDefinitionError, match="must not be coupled"):
        decoupled_block(helical_p_wave_superconductor(), [0, 1])
    with pytest.raises(ModelDefinitionError, match="distinct indices"):
        decoupled_block(helical_p_wave_superconductor(), [0, 0])


def test_factories_record_their_metadata():
    for model in (kitaev_chain(), p_wave_superconductor(), helical_p_wave_superconductor()):
        assert {"k_path", "reference", "parameters", "bdg"} <= set(model.metadata)
        assert model.occupied == model.norb // 2 and model.inversion is not None
    with pytest.raises(ModelDefinitionError, match="finite real"):
        kitaev_chain(mu=float("inf"))
