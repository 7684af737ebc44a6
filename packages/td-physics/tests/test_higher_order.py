"""Higher-order topology: the BBH model, nested Wilson loops, open flakes and their corner charges, the Z4 indicator.

Every invariant is checked against its closed form and against a second, independent method: the quadrupole
moment of the nested Wilson loops against the corner charges and zero modes of a finite flake.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from td_physics.exceptions import ConvergenceError, ModelDefinitionError, OccupationError, SymmetryError
from td_physics.finite import flake, ribbon, tile
from td_physics.invariants import (
    NestedWilsonOptions,
    chern_number,
    corner_charges,
    detect_inversion,
    edge_polarization,
    quadrupole_moment,
    z2_indices,
    z4_indicator,
)
from td_physics.invariants._core import eigenstates, position_phase, unit
from td_physics.invariants.higher_order import _sector_polarization, quadrupole_batch, sector_polarizations
from td_physics.invariants.indicators import z4_batch
from td_physics.invariants.parity import trim_points
from td_physics.model import TightBindingModel
from td_physics.models import bbh, bi2se3, doubled_model, fu_kane_mele, kane_mele, qwz
from td_physics.phase_diagram import phase_diagram

# (gamma, lam) pairs at least 25 % away from the transition |gamma| = |lam|, both sides, all four sign sectors
GRID = [
    (g * sg, l * sl)
    for g, l in ((0.0, 1.0), (0.3, 1.0), (0.7, 1.0), (1.0, 0.7), (1.0, 0.3), (1.4, 0.5))
    for sg in (1, -1)
    for sl in (1, -1)
]


def closed_form_q(gamma: float, lam: float) -> float:
    return 0.5 if abs(gamma) < abs(lam) else 0.0


def pauli_bloch(gamma: float, lam: float, delta: float, k: np.ndarray) -> np.ndarray:
    """BBH 2017's Bloch Hamiltonian written with its Gamma matrices, (nk, 4, 4)."""
    s0, s1, s2, s3 = np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0])
    g0, g4 = np.kron(s3, s0), np.kron(s1, s0)
    g1, g2, g3 = -np.kron(s2, s1), -np.kron(s2, s2), -np.kron(s2, s3)
    kx, ky = (2 * np.pi * k).T
    c = lambda f: f[:, None, None]  # noqa: E731
    return (
        c(gamma + lam * np.cos(kx)) * g4
        + c(lam * np.sin(kx)) * g3
        + c(gamma + lam * np.cos(ky)) * g2
        + c(lam * np.sin(ky)) * g1
        + delta * g0
    )


# ----------------------------------------------------------------------------- the model
def test_bbh_is_the_papers_bloch_hamiltonian():
    k = np.random.default_rng(0).random((20, 2))
    model = bbh(0.3, -1.1, delta=0.07)
    assert np.allclose(model.hamiltonian(k), pauli_bloch(0.3, -1.1, 0.07, k), atol=1e-12)


def test_bbh_bands_follow_the_closed_form_and_are_doubly_degenerate():
    k = np.random.default_rng(1).random((50, 2))
    gamma, lam = 0.4, 0.9
    e = bbh(gamma, lam).eigvalsh(k)
    kx, ky = (2 * np.pi * k).T
    expected = np.sqrt(2 * gamma**2 + 2 * lam**2 + 2 * gamma * lam * (np.cos(kx) + np.cos(ky)))
    assert np.allclose(e, np.stack([-expected, -expected, expected, expected], axis=1), atol=1e-12)


def test_bbh_has_a_pi_flux_through_every_plaquette():
    model = bbh(0.6, 1.3)
    t = model.hoppings
    intra = t[(0, 0)]
    # the cell's plaquette 0 -> 2 -> 1 -> 3 -> 0 (upper right, upper left, lower left, lower right)
    loop = intra[0, 2] * intra[2, 1] * np.conj(intra[3, 1]) * np.conj(intra[0, 3])
    assert np.real(loop) < 0 and abs(np.imag(loop)) < 1e-12
    # the plaquette between four cells around the cell corner (1/2, 1/2): 0 -> 2(+x) -> 1(+x+y) -> 3(+y) -> 0
    tx, ty = t[(1, 0)], t[(0, 1)]
    loop = tx[0, 2] * ty[2, 1] * np.conj(tx[3, 1]) * np.conj(ty[0, 3])
    assert np.real(loop) < 0


def test_bbh_metadata_and_bad_parameters():
    model = bbh(0.5, 1.0)
    assert model.metadata["parameters"] == {"gamma": 0.5, "lam": 1.0, "delta": 0.0}
    assert "Science 357, 61" in model.metadata["reference"]
    assert model.metadata["k_path"]["labels"] == ["Γ", "X", "M", "Γ"]
    with pytest.raises(ModelDefinitionError, match="gamma must be a finite real number"):
        bbh(float("nan"), 1.0)
    with pytest.raises(ModelDefinitionError, match="delta must be a finite real number"):
        bbh(0.5, 1.0, delta=1j)


# ----------------------------------------------------------------------------- nested Wilson loops
@pytest.mark.parametrize(("gamma", "lam"), GRID)
def test_quadrupole_moment_follows_the_closed_form(gamma, lam):
    result = quadrupole_moment(bbh(gamma, lam))
    assert result.value == closed_form_q(gamma, lam)
    assert result.converged and result.method == "nested-wilson-loop"
    assert result.details["wannier_gap"] > 0.05
    # both Wannier-sector polarisations are quantised and equal (C4 symmetry of the model)
    for key in ("p_y_nu_x", "p_x_nu_y"):
        assert abs(result.details[key] - closed_form_q(gamma, lam)) < 1e-8


@settings(max_examples=25, deadline=None)
@given(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0))
def test_quadrupole_is_quantised_and_follows_the_closed_form_anywhere_off_the_transition(gamma, lam):
    assume(abs(abs(gamma) - abs(lam)) > 0.1 and max(abs(gamma), abs(lam)) > 0.2)
    result = quadrupole_moment(bbh(gamma, lam))
    assert result.converged
    assert result.value == closed_form_q(gamma, lam)
    assert all(min(p % 0.5, 0.5 - p % 0.5) < 1e-8 for p in (result.details["p_y_nu_x"], result.details["p_x_nu_y"]))


def test_phase_diagram_of_the_quadrupole_follows_the_closed_form():
    axis = np.array([-1.4, -0.6, 0.0, 0.6, 1.4])
    pd = phase_diagram(bbh, {"gamma": axis, "lam": axis}, "quadrupole", mesh=8)
    g, lam = np.meshgrid(axis, axis, indexing="ij")
    off = np.abs(np.abs(g) - np.abs(lam)) > 1e-9
    assert pd.values.shape == (5, 5) and pd.invariant == "quadrupole"
    assert np.array_equal(pd.values[off], np.where(np.abs(g) < np.abs(lam), 0.5, 0.0)[off])
    assert pd.converged[off].all() and not pd.converged[~off].any()
    with pytest.raises(TypeError, match="unknown convergence options"):
        phase_diagram(bbh, {"gamma": axis}, "quadrupole", fixed={"lam": 1.0}, n_string=8)


def test_quadrupole_batch_gives_the_phase_diagram_in_one_call():
    gammas = np.linspace(-1.8, 1.8, 13)
    models = [bbh(g, 1.0) for g in gammas]
    res = quadrupole_batch(models, 2, NestedWilsonOptions())
    away = np.abs(np.abs(gammas) - 1.0) > 0.1
    assert np.array_equal(res["q_xy"][away], np.where(np.abs(gammas[away]) < 1.0, 0.5, 0.0))
    assert res["converged"][away].all()


def test_quadrupole_moment_at_the_transition_is_not_converged():
    result = quadrupole_moment(bbh(1.0, 1.0))
    assert not result.converged
    assert result.min_gap < 1e-6


def test_the_mirror_breaking_regulator_unquantises_the_sector_polarisations():
    """delta G0 breaks M_x and M_y: the sector polarisations leave 1/2 and the answer is not trusted."""
    result = quadrupole_moment(bbh(0.5, 1.0, delta=0.1))
    assert not result.converged
    assert abs(result.details["p_y_nu_x"] - 0.5) > 0.01 and result.min_gap > 0.1


def test_an_odd_number_of_occupied_bands_is_refused():
    with pytest.raises(OccupationError, match="even number"):
        quadrupole_moment(qwz(-1.0))


@settings(max_examples=15, deadline=None)
@given(
    st.floats(0.0, 0.75),
    st.sampled_from([1.0, -1.0]),
    st.lists(st.floats(-np.pi, np.pi), min_size=4, max_size=4),
)
def test_quadrupole_is_invariant_under_orbital_phases(ratio, lam, phases):
    """A gauge transformation c_j -> exp(i phi_j) c_j of the orbitals changes no observable."""
    u = np.diag(np.exp(1j * np.asarray(phases)))
    for gamma, expected in ((ratio, 0.5), (1.3 + ratio, 0.0)):
        model = bbh(gamma, lam)
        rotated = TightBindingModel.from_hopping_matrices(
            model.lattice,
            model.positions,
            u @ model.onsite @ u.conj().T,
            {r: u @ t @ u.conj().T for r, t in model.hoppings.items()},
            occupied=2,
        )
        assert quadrupole_moment(rotated).value == quadrupole_moment(model).value == expected


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_sector_polarization_is_invariant_under_random_unitaries_of_the_occupied_states(seed):
    """The occupied states are degenerate in BBH: any U(2) rotation at every k is a legitimate gauge."""
    rng = np.random.default_rng(seed)
    model, n = bbh(0.4, 1.0), 12
    axis = np.arange(n) / n
    kpts = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    _, v = eigenstates([model], kpts, 2)
    v = v.reshape(1, n, n, 4, 2)
    a = rng.normal(size=(n, n, 2, 2)) + 1j * rng.normal(size=(n, n, 2, 2))
    q, _ = np.linalg.qr(a)  # (n, n, 2, 2) random unitaries
    pos = model.positions
    phases = position_phase(pos, unit(2, 0) / n), position_phase(pos, unit(2, 1) / n)
    nu, p, _ = _sector_polarization(v, *phases)
    nu_r, p_r, _ = _sector_polarization(v @ q[None], *phases)
    assert np.allclose(nu, nu_r, atol=1e-10)
    assert abs(((p - p_r + 0.5) % 1.0) - 0.5) < 1e-10
    assert abs(p[0] - 0.5) < 1e-8


def test_shifting_the_orbitals_by_half_a_cell_moves_the_sector_polarisation_by_half():
    """Wannier centres are physical positions: a different unit cell (origin at the cell corner) is a different
    termination, with p_x^{nu_y} moved by 1/2; a whole lattice vector changes nothing."""
    model = bbh(0.3, 1.0)
    base = sector_polarizations([model], 2, 16)

    def shifted(shift):
        return TightBindingModel.from_hopping_matrices(
            model.lattice, model.positions + shift, model.onsite, model.hoppings, occupied=2
        )

    half = sector_polarizations([shifted([0.5, 0.0])], 2, 16)
    whole = sector_polarizations([shifted([1.0, -1.0])], 2, 16)
    assert abs(half["p_x_nu_y"][0] - ((base["p_x_nu_y"][0] + 0.5) % 1.0)) < 1e-8
    assert abs(half["p_y_nu_x"][0] - base["p_y_nu_x"][0]) < 1e-8
    assert abs(whole["p_x_nu_y"][0] - base["p_x_nu_y"][0]) < 1e-8
    assert quadrupole_moment(shifted([0.5, 0.0])).value == 0.0


def test_wannier_bands_are_gapped_and_symmetric():
    out = sector_polarizations([bbh(0.5, 1.0)], 2, 16)
    nu = out["nu_x"][0]  # (ky, 2)
    assert np.allclose(nu[:, 0], -nu[:, 1], atol=1e-10)  # mirror M_x: nu -> -nu
    assert out["balanced"][0] and out["wannier_gap"][0] > 0.1


def test_nested_wilson_options_are_validated():
    with pytest.raises(ConvergenceError, match="mesh must be even"):
        NestedWilsonOptions(mesh=15)
    with pytest.raises(ConvergenceError, match="max_mesh must be >= mesh"):
        NestedWilsonOptions(mesh=32, max_mesh=16)
    with pytest.raises(TypeError, match="unknown convergence options"):
        quadrupole_moment(bbh(0.5, 1.0), n_string=4)
    assert quadrupole_moment(bbh(0.5, 1.0), mesh=8).mesh == (8, 8)


# ----------------------------------------------------------------------------- finite pieces
def test_supercell_keeps_the_bands_and_the_chern_number():
    model = qwz(-1.0)
    big = tile(model, (2, 3))
    k = np.random.default_rng(2).random((3, 2))
    small_k = (k[:, None, None, :] + np.stack(np.meshgrid(np.arange(2), np.arange(3), indexing="ij"), -1)) / [2, 3]
    folded = np.sort(model.eigvalsh(small_k.reshape(-1, 2)).reshape(3, -1), axis=1)
    assert np.allclose(big.eigvalsh(k), folded, atol=1e-10)
    assert big.n_occupied == 6
    assert chern_number(big).value == chern_number(model).value == 1


def test_ribbon_of_a_chern_insulator_has_edge_states_crossing_the_bulk_gap():
    model = qwz(-1.0)
    chain = ribbon(model, axis=1, n_cells=24)
    assert chain.dim_k == 1 and chain.norb == 48 and chain.n_occupied == 24 and chain.lattice[1, 1] == 24
    axis = np.linspace(0, 1, 61)
    bulk = model.eigvalsh(np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2))
    assert np.abs(bulk).min() > 0.9  # the bulk gap of QWZ at m = -1
    e = chain.eigvalsh(np.linspace(0, 1, 401)[:, None])
    assert np.abs(e[:, 23:25]).min() < 0.05  # the chiral edge modes cross zero energy


def test_slab_of_a_strong_ti_has_surface_dirac_points_in_the_bulk_gap():
    """A 20-cell Bi2Se3 slab (open along z): at Gamma four degenerate states (a Dirac point on each surface) sit
    inside the bulk gap; the trivial slab has none. Two copies coupled by doubled_model's on-site term keep their
    Dirac points, shifted by +-coupling (the coupling does not gap the surfaces)."""
    bulk_gap = np.ptp(bi2se3().eigvalsh([0.0, 0.0, 0.0])[0, 1:3])  # 0.56 eV at Gamma
    for model, shifts in ((bi2se3(), (0.0,)), (doubled_model(bi2se3(), 0.05), (-0.05, 0.05))):
        slab = ribbon(model, axis=2, n_cells=20)
        assert slab.dim_k == 2 and slab.dim_r == 3 and slab.lattice[2, 2] == pytest.approx(20 * 9.55)
        e = slab.eigvalsh([0.0, 0.0])[0]
        dirac = 0.0296 + np.asarray(shifts)  # Bi2Se3's surface Dirac point (C and D shift it off zero)
        for point in dirac:
            assert np.sum(np.abs(e - point) < 1e-3) == 4
        assert np.min(np.abs(e - dirac[:, None])) < 1e-3 < bulk_gap / 4
    trivial = ribbon(bi2se3(M=-0.28), axis=2, n_cells=20).eigvalsh([0.0, 0.0])[0]
    assert np.sum(np.abs(trivial) < 0.2) == 0


def test_flake_is_hermitian_and_cuts_every_bond_leaving_it():
    piece = flake(bbh(0.5, 1.0), (3, 2))
    h = piece.dense()
    assert np.allclose(h, h.conj().T)
    assert piece.norb == 24 and piece.n_electrons == 12
    # bonds (each counted twice in H): 4 in each of 6 cells, 2 per neighbouring pair along x (2 x 2 pairs)
    # and along y (3 x 1 pairs); none leaves the piece
    assert np.count_nonzero(h - np.diag(np.diag(h))) == 2 * (4 * 6 + 2 * 4 + 2 * 3)
    assert np.allclose(piece.positions[piece.orbitals == 1][0], [-0.25, -0.25])
    assert np.allclose(piece.positions[-1], [2.25, 0.75])  # orbital 3 (lower right) of cell (2, 1)


def test_finite_pieces_refuse_bad_input():
    with pytest.raises(ModelDefinitionError, match="repeats must be 2 positive integers"):
        flake(bbh(0.5, 1.0), (3,))
    with pytest.raises(ModelDefinitionError, match="use flake"):
        tile(bbh(0.5, 1.0), (2, 2), open_axes=(0, 1))
    with pytest.raises(ModelDefinitionError, match="open axes must be distinct"):
        ribbon(bbh(0.5, 1.0), axis=2, n_cells=4)


# ----------------------------------------------------------------------------- second method: the flake
def filling_below(energies: np.ndarray, window: float) -> int:
    """Electrons filling every state below ``-window``: in-gap (corner) modes of a chiral flake stay empty."""
    return int(np.sum(energies < -window))


@pytest.mark.parametrize(
    ("gamma", "lam"), [(0.0, 1.0), (0.3, 1.0), (-0.5, 1.0), (0.4, -1.0), (1.0, 0.4), (1.0, 0.0), (-1.0, 0.5)]
)
def test_corner_charge_and_zero_modes_agree_with_the_quadrupole_moment(gamma, lam):
    q = quadrupole_moment(bbh(gamma, lam)).value
    piece = flake(bbh(gamma, lam), (10, 10))
    energies, vectors = piece.eigh()
    scale = abs(abs(lam) - abs(gamma))
    zero = np.flatnonzero(np.abs(energies) < 0.1 * scale)
    assert len(zero) == (4 if q == 0.5 else 0)
    charges = corner_charges(piece, filling_below(energies, 0.1 * scale))
    assert np.allclose(np.abs(charges), q, atol=1e-6)
    if len(zero):
        # the zero modes sit at the corners: within 4 cells of one of the four (decay (gamma / lam)^2 per cell)
        weight = np.sum(np.abs(vectors[:, zero]) ** 2, axis=1)
        near = np.all((piece.cells < 4) | (piece.cells >= 6), axis=1)
        assert weight[near].sum() / weight.sum() > 0.99


@pytest.mark.parametrize(("gamma", "lam"), [(0.0, 1.0), (0.5, 1.0), (-0.7, 1.0), (0.3, -1.0), (1.0, 0.5), (-1.2, 0.4)])
def test_edge_polarisation_and_corner_charge_follow_from_the_quadrupole(gamma, lam):
    """Three methods, one answer (BBH 2017): the ribbon's boundary polarisation along each edge is q_xy, and the
    corner charge is Q = p_edge_x + p_edge_y - q_xy (mod 1) = 1/2 in the quadrupole phase, 0 otherwise."""
    q = quadrupole_moment(bbh(gamma, lam)).value
    edges = [edge_polarization(bbh(gamma, lam), open_axis=axis, n_cells=12, mesh=16) for axis in (0, 1)]
    for edge in edges:
        assert edge.converged
        assert abs(edge.value - q) < 1e-6
        layers = np.asarray(edge.details["layers"])
        assert np.abs(layers[4:8]).max() < 0.05  # the dipole sits at the edges; the bulk layers carry none
    piece = flake(bbh(gamma, lam), (10, 10))
    energies, _ = piece.eigh()
    window = 0.1 * abs(abs(lam) - abs(gamma))
    corner = corner_charges(piece, filling_below(energies, window))[0, 0]
    assert abs((edges[0].value + edges[1].value - q - corner + 0.5) % 1.0 - 0.5) < 1e-6


def test_edge_polarisation_refuses_bad_ribbons():
    with pytest.raises(ModelDefinitionError, match="n_cells must be even"):
        edge_polarization(bbh(0.5, 1.0), n_cells=7)
    with pytest.raises(ModelDefinitionError, match="for 2D models"):
        edge_polarization(bi2se3())


def test_the_regulator_splits_the_corner_states_into_alternating_half_charges():
    piece = flake(bbh(0.2, 1.0, delta=1e-3), (8, 8))
    charges = corner_charges(piece)  # neutral filling is now unique
    assert np.allclose(charges, [[0.5, -0.5], [-0.5, 0.5]], atol=5e-3)  # O(delta) off 1/2: delta breaks the mirrors
    assert abs(charges.sum()) < 1e-10


def test_corner_charges_refuse_an_ambiguous_filling_and_odd_flakes():
    piece = flake(bbh(0.0, 1.0), (6, 6))  # decoupled corners: four exactly degenerate zero modes
    with pytest.raises(OccupationError, match="splits a degenerate level"):
        corner_charges(piece)
    with pytest.raises(ModelDefinitionError, match="repeats must be even"):
        corner_charges(flake(bbh(0.2, 1.0), (5, 6)))
    with pytest.raises(OccupationError, match="n_electrons must be between"):
        corner_charges(piece, 0)


# ----------------------------------------------------------------------------- the Z4 symmetry indicator
def bi2se3_mass_at_trims(M: float, B1: float, B2: float, a: float = 4.14, c: float = 9.55) -> np.ndarray:
    """Zhang's M(k) of the lattice-regularised Bi2Se3 model at the eight TRIMs (order of ``trim_points(3)``)."""
    trims = trim_points(3)
    n_perp = trims[:, 0] * 2 + trims[:, 1] * 2  # (1 - cos) / 2 at k = 0 or 1/2, summed over x and y
    return M - 4 * B1 * (trims[:, 2] * 2) / c**2 - 4 * B2 * n_perp / a**2


@settings(max_examples=30, deadline=None)
@given(st.floats(-0.3, 1.2), st.floats(2.0, 30.0), st.floats(5.0, 80.0))
def test_z4_of_bi2se3_follows_the_band_inversions_at_the_trims(M, B1, B2):
    """At a TRIM the sine terms vanish and H = eps + M(K) Gamma_M: the occupied pair is P2- (odd) where
    M(K) > 0, P1+ (even) where M(K) < 0, so z4 = -#{K: M(K) > 0} mod 4 (Khalaf et al.'s formula, pairs once)."""
    mass = bi2se3_mass_at_trims(M, B1, B2)
    assume(np.abs(mass).min() > 0.02)
    result = z4_indicator(bi2se3(M=M, B1=B1, B2=B2))
    assert result.value == (-int(np.sum(mass > 0))) % 4
    assert result.details["pairs_minus"] == (mass > 0).astype(int).tolist()
    assert result.value % 2 == result.details["fu_kane"][0]


def test_z4_published_cases():
    """Khalaf et al. 2018: a strong TI has odd z4; two copies of it (here coupled, with the bulk gap open) have
    z4 = 2 and nu0 = 0, a doubled strong TI; the atomic limit has z4 = 0."""
    strong = z4_indicator(bi2se3())
    assert strong.value == 3 and strong.converged
    pair = doubled_model(bi2se3(), 0.05)
    assert pair.is_time_reversal_symmetric()
    double = z4_indicator(pair)
    assert double.value == 2 and double.details["fu_kane"] == (0, 0, 0, 0) and double.min_gap > 0.1
    assert z4_indicator(bi2se3(M=-0.28)).value == 0
    assert z4_indicator(fu_kane_mele(dt=0.4)).value % 2 == 1
    weak = z4_indicator(fu_kane_mele(dt=-0.4))
    assert weak.value % 2 == 0 and weak.details["fu_kane"] == (0, 1, 1, 1)


@pytest.mark.parametrize(
    "model",
    [
        bi2se3(),
        bi2se3(M=-0.28),
        bi2se3(M=0.28, B1=3.0),
        bi2se3(M=1.0, B2=20.0),
        fu_kane_mele(dt=0.4),
        fu_kane_mele(dt=-0.4),
        fu_kane_mele(dt=0.2, lambda_so=0.06),
        doubled_model(bi2se3(), 0.05),
    ],
    ids=[
        "bi2se3",
        "bi2se3-trivial",
        "bi2se3-B1=3",
        "bi2se3-M=1-B2=20",
        "fkm-strong",
        "fkm-weak",
        "fkm-soc",
        "2xbi2se3",
    ],
)
def test_z4_mod_2_is_the_strong_index_of_the_wannier_centre_flow(model):
    """The second method: Wilson loops on the six TRIM planes (no parities) give nu0 = z4 mod 2."""
    flow = z2_indices(model, method="wcc")
    assert flow.converged
    assert z4_indicator(model).value % 2 == flow.value[0]


def test_z4_batch_agrees_with_one_model_at_a_time():
    models = [bi2se3(M=m) for m in (-0.3, 0.1, 0.28, 0.7, 1.2)]
    batch = z4_batch(models, 2, models[0].inversion)
    assert batch["z4"].tolist() == [z4_indicator(m).value for m in models]


def test_z4_refuses_models_it_does_not_apply_to():
    with pytest.raises(ModelDefinitionError, match="for 3D models"):
        z4_batch([kane_mele()], 2, kane_mele().inversion or detect_inversion(kane_mele()))
    with pytest.raises(SymmetryError, match="needs time reversal"):
        z4_indicator(tile(qwz(1.0), (1, 1)))
    with pytest.raises(OccupationError, match="counts Kramers pairs"):
        z4_batch([bi2se3()], 1, bi2se3().inversion)
