"""Tests of the model factories in td_physics.models: closed-form spectra and symmetries."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from td_physics import models
from td_physics.exceptions import ModelDefinitionError
from td_physics.models import (
    bhz,
    bi2se3,
    buckled_honeycomb,
    fu_kane_mele,
    germanene,
    graphene,
    haldane,
    hgte_quantum_well,
    kane_mele,
    qwz,
    silicene,
    stanene,
    weyl_two_band,
)
from td_physics.models.bhz import HGTE_PARAMETERS

K = (2 / 3, 1 / 3)
KP = (1 / 3, 2 / 3)
SQ3 = np.sqrt(3.0)

FACTORIES = {
    "haldane": haldane,
    "qwz": lambda: qwz(-1.0),
    "graphene": graphene,
    "kane_mele": kane_mele,
    "bhz": bhz,
    "hgte_quantum_well": lambda: hgte_quantum_well(6.5),
    "fu_kane_mele": fu_kane_mele,
    "bi2se3": bi2se3,
    "weyl_two_band": weyl_two_band,
    "buckled_honeycomb": lambda: buckled_honeycomb(1.0, 0.05, 0.01),
    "silicene": silicene,
    "germanene": germanene,
    "stanene": stanene,
    "kitaev_chain": models.kitaev_chain,
    "p_wave_superconductor": models.p_wave_superconductor,
    "helical_p_wave_superconductor": models.helical_p_wave_superconductor,
    "bbh": lambda: models.bbh(0.5, 1.0),
    "doubled_model": lambda: models.doubled_model(bi2se3(), 0.05),
}
BROKEN_TIME_REVERSAL = {"haldane", "qwz", "weyl_two_band", "p_wave_superconductor"}
MODULES = [
    "bhz",
    "bi2se3",
    "buckled",
    "fu_kane_mele",
    "graphene",
    "haldane",
    "kane_mele",
    "qwz",
    "weyl",
    "superconductors",
    "bbh",
    "doubled",
]
finite = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


def element(model, i, j, r):
    """<i, 0 | H | j, R> read from the hopping matrices (either orientation)."""
    hops = model.hoppings
    r = tuple(r)
    neg = tuple(-x for x in r)
    value = 0.0
    if r in hops:
        value += hops[r][i, j]
    if neg in hops:
        value += np.conj(hops[neg][j, i])
    return value


def gap_at(model, k, occupied=None):
    e = model.eigvalsh(k)[0]
    n = model.n_occupied if occupied is None else occupied
    return e[n] - e[n - 1]


# ---------------------------------------------------------------- every factory
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_contract(name):
    model = FACTORIES[name]()
    rng = np.random.default_rng(0)
    h = model.hamiltonian(rng.random((6, model.dim_k)))  # (6, norb, norb)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h, np.conj(np.swapaxes(h, -1, -2)), atol=1e-12)
    assert model.name
    assert 1 <= model.n_occupied < model.norb
    path = model.metadata["k_path"]
    assert len(path["nodes"]) == len(path["labels"]) >= 2
    assert all(len(node) == model.dim_k for node in path["nodes"])
    assert model.metadata["reference"] and any(c.isdigit() for c in model.metadata["reference"])
    assert model.is_time_reversal_symmetric() == (name not in BROKEN_TIME_REVERSAL)


@pytest.mark.parametrize("module", MODULES)
def test_module_docstrings_cite_and_state_signs(module):
    mod = importlib.import_module(f"td_physics.models.{module}")
    assert mod.__doc__ and ("(19" in mod.__doc__ or "(20" in mod.__doc__)
    assert "sign" in mod.__doc__.lower()


@pytest.mark.parametrize("name", sorted(models.__all__))
def test_factory_docstrings_cite(name):
    doc = getattr(models, name).__doc__
    assert doc and ("Reference" in doc or "Source" in doc), name


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    mod = importlib.import_module(f"td_physics.models.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


# ---------------------------------------------------------------- graphene
def test_graphene_dirac_points_and_gamma():
    model = graphene(t=2.7)
    e = model.eigvalsh([[0, 0], K, KP])
    np.testing.assert_allclose(e, [[-8.1, 8.1], [0, 0], [0, 0]], atol=1e-12)
    assert model.inversion is not None
    np.testing.assert_allclose(np.linalg.norm(model.lattice, axis=1), 2.46)


# ---------------------------------------------------------------- QWZ
@settings(max_examples=30, deadline=None)
@given(m=finite, t=finite)
def test_qwz_levels_at_trim(m, t):
    e = qwz(m, t).eigvalsh([[0, 0], [0.5, 0], [0.5, 0.5]])
    np.testing.assert_allclose(e[:, 1], [abs(m + 2 * t), abs(m), abs(m - 2 * t)], atol=1e-12)
    np.testing.assert_allclose(e[:, 0], -e[:, 1], atol=1e-12)


def test_qwz_matches_formula():
    k = np.array([[0.13, 0.71]])
    kx, ky = 2 * np.pi * k[0]
    m, t = 0.7, 1.3
    sx = np.array([[0, 1], [1, 0]])
    sy = np.array([[0, -1j], [1j, 0]])
    sz = np.diag([1.0, -1.0])
    expected = t * np.sin(kx) * sx + t * np.sin(ky) * sy + (m + t * np.cos(kx) + t * np.cos(ky)) * sz
    np.testing.assert_allclose(qwz(m, t).hamiltonian(k)[0], expected, atol=1e-12)


# ---------------------------------------------------------------- Haldane
def test_haldane_second_neighbour_convention_by_hand():
    # start A + a1 = (1.5, 0.289), via B (1, 0.577), to A (0.5, 0.289): heading 150 deg then
    # 210 deg, a left turn, so <A, 0 | H | A, a1> = t2 exp(+i phi).
    t2, phi = 0.2, 0.7
    model = haldane(t1=1.0, t2=t2, phi=phi, m=0.0)
    assert np.isclose(element(model, 0, 0, (1, 0)), t2 * np.exp(1j * phi))
    # on B the path A-site in the middle: start B + a1 = (2, 0.577) via A + a1 = (1.5, 0.289) to
    # B (1, 0.577): heading 210 then 150 deg, a right turn.
    assert np.isclose(element(model, 1, 1, (1, 0)), t2 * np.exp(-1j * phi))
    assert np.isclose(element(model, 0, 1, (0, 0)), 1.0)


@settings(max_examples=30, deadline=None)
@given(t2=st.floats(-0.5, 0.5), phi=st.floats(-np.pi, np.pi), m=finite)
def test_haldane_levels_at_k_and_k_prime(t2, phi, m):
    e = haldane(t1=1.0, t2=t2, phi=phi, m=m).eigvalsh([K, KP])
    shift = -3 * t2 * np.cos(phi)
    half = [abs(m + 3 * SQ3 * t2 * np.sin(phi)), abs(m - 3 * SQ3 * t2 * np.sin(phi))]
    np.testing.assert_allclose(e[:, 1] - shift, half, atol=1e-10)
    np.testing.assert_allclose(e[:, 0] - shift, -np.array(half), atol=1e-10)


def test_haldane_symmetries():
    assert haldane(m=0.0).inversion is not None
    assert haldane(m=0.1).inversion is None
    assert not haldane(phi=np.pi / 2).is_time_reversal_symmetric()
    assert haldane(phi=0.0).is_time_reversal_symmetric()


# ---------------------------------------------------------------- Kane-Mele
@settings(max_examples=30, deadline=None)
@given(lam=st.floats(-0.2, 0.2), lv=st.floats(-1.0, 1.0))
def test_kane_mele_gap_at_k(lam, lv):
    model = kane_mele(lambda_so=lam, lambda_v=lv)
    expected = 2 * abs(3 * SQ3 * abs(lam) - abs(lv))
    assert np.isclose(gap_at(model, K), expected, atol=1e-10)
    assert np.isclose(gap_at(model, KP), expected, atol=1e-10)


def test_kane_mele_sign_conventions_by_hand():
    lam, lr = 0.07, 0.05
    model = kane_mele(t=1.0, lambda_so=lam, lambda_r=lr)
    # same left-turn path as in the Haldane test: nu = +1 on A, spin up gets +i lambda_so
    assert np.isclose(element(model, 0, 0, (1, 0)), 1j * lam)
    assert np.isclose(element(model, 1, 1, (1, 0)), -1j * lam)
    # bond from B (1, 0.577) to A (0.5, 0.289): d = (-sqrt(3)/2, -1/2); (s x d)_z = s_x d_y - s_y d_x
    d = np.array([-SQ3 / 2, -0.5])
    sx = np.array([[0, 1], [1, 0]])
    sy = np.array([[0, -1j], [1j, 0]])
    block = np.array([[element(model, a, 2 + b, (0, 0)) for b in range(2)] for a in range(2)])
    np.testing.assert_allclose(block, np.eye(2) + 1j * lr * (sx * d[1] - sy * d[0]), atol=1e-12)


def test_kane_mele_symmetries():
    assert kane_mele(lambda_r=0.05, lambda_v=0.1).is_time_reversal_symmetric()
    assert kane_mele().inversion is not None
    assert kane_mele(lambda_v=0.1).inversion is None
    assert kane_mele(lambda_r=0.05).inversion is None
    assert not kane_mele(exchange=0.1).is_time_reversal_symmetric()
    assert not kane_mele(exchange=[0.1, 0.0, 0.0]).is_time_reversal_symmetric()
    assert kane_mele(exchange=0.1).inversion is not None  # exchange does not act on positions
    k = np.random.default_rng(1).random((3, 2))
    np.testing.assert_allclose(
        kane_mele(exchange=0.1).hamiltonian(k), kane_mele(exchange=[0.0, 0.0, 0.1]).hamiltonian(k), atol=1e-14
    )
    model = kane_mele(lambda_v=0.1)
    sz = model.spin_z()
    h = model.hamiltonian(k)
    np.testing.assert_allclose(h @ sz, sz @ h, atol=1e-12)  # s_z conserved without Rashba


# ---------------------------------------------------------------- BHZ and HgTe
@settings(max_examples=30, deadline=None)
@given(A=finite, B=finite, C=finite, D=finite, M=finite, a=st.floats(0.5, 3.0))
def test_bhz_levels_at_trim(A, B, C, D, M, a):
    model = bhz(A=A, B=B, C=C, D=D, M=M, a=a)
    e = model.eigvalsh([[0, 0], [0.5, 0], [0.5, 0.5]])
    for row, n in zip(e, (0, 1, 2), strict=True):  # d1 = d2 = 0 at the TRIM; 4n/a^2 from the cosines
        d3, eps = M - 4 * n * B / a**2, C - 4 * n * D / a**2
        np.testing.assert_allclose(row, np.sort([eps - abs(d3)] * 2 + [eps + abs(d3)] * 2), atol=1e-10)
    assert model.is_time_reversal_symmetric()
    assert model.inversion is not None and model.inversion.parities == (1, 1, -1, -1)


def test_bhz_matches_formula_in_permuted_basis():
    A, B, C, D, M, a = 1.3, -0.8, 0.1, -0.2, -0.4, 1.7
    k = np.array([0.17, 0.41])
    kx, ky = 2 * np.pi * k
    s0, sx, sy, sz = np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])

    def h(kx, ky):
        f = (2 / a**2) * (2 - np.cos(kx) - np.cos(ky))
        return (C - D * f) * s0 + A * np.sin(kx) / a * sx - A * np.sin(ky) / a * sy + (M - B * f) * sz

    full = np.block([[h(kx, ky), np.zeros((2, 2))], [np.zeros((2, 2)), h(-kx, -ky).conj()]])
    order = [0, 2, 1, 3]
    np.testing.assert_allclose(bhz(A, B, C, D, M, a).hamiltonian(k)[0], full[np.ix_(order, order)], atol=1e-12)


def test_hgte_tabulated_and_interpolated():
    for d, params in HGTE_PARAMETERS.items():
        got = hgte_quantum_well(d).metadata["parameters"]
        for key, value in params.items():
            assert np.isclose(got[key], value)
    mid = hgte_quantum_well(6.25).metadata["parameters"]
    assert np.isclose(mid["M"], (0.009 - 0.010) / 2)
    assert np.isclose(mid["A"], (3.87 + 3.65) / 2)
    d_zero = np.interp(0.0, [-0.010, 0.009], [7.0, 5.5])
    assert 6.15 < d_zero < 6.25
    # gap at Gamma is 2 |M|; inverted (M a^2 / B > 0) only above the crossing
    for d in (5.5, 6.0, 6.5, 7.0):
        model = hgte_quantum_well(d)
        p = model.metadata["parameters"]
        assert np.isclose(gap_at(model, [0, 0]), 2 * abs(p["M"]))
        assert (p["M"] * 30.0**2 / p["B"] > 0) == (d > d_zero)


@pytest.mark.parametrize("bad", [5.0, 7.5, -1.0])
def test_hgte_range_error(bad):
    with pytest.raises(ModelDefinitionError, match=r"5\.5\.\.7\.0 nm") as info:
        hgte_quantum_well(bad)
    assert isinstance(info.value, ValueError)
    assert f"got {bad}" in str(info.value)


def test_hgte_rejects_nan():
    with pytest.raises(ModelDefinitionError, match="thickness_nm must be a finite"):
        hgte_quantum_well(float("nan"))


# ---------------------------------------------------------------- Fu-Kane-Mele
def test_fu_kane_mele_bonds_and_symmetries():
    t, dt, lam = 1.0, 0.3, 0.1
    model = fu_kane_mele(t=t, lambda_so=lam, dt=dt)
    assert np.isclose(element(model, 0, 2, (0, 0, 0)), t + dt)  # A -> B along [111], same cell
    for r in [(-1, 0, 0), (0, -1, 0), (0, 0, -1)]:
        assert np.isclose(element(model, 0, 2, r), t)
    so = np.array([[element(model, a, b, (1, 0, 0)) for b in range(2)] for a in range(2)])
    # i (8 lambda/a^2) s.(d1 x d2) with |d1 x d2| = sqrt(2) a^2 / 8: singular values sqrt(2) lambda
    np.testing.assert_allclose(np.linalg.svd(so, compute_uv=False), [np.sqrt(2) * lam] * 2, atol=1e-12)
    assert model.is_time_reversal_symmetric()
    assert model.inversion is not None
    np.testing.assert_allclose(model.inversion.centre, [0.125] * 3)


def test_fu_kane_mele_so_direction_by_hand():
    # <A, 0 | H | A, a1>: start at a1 = (0, 1/2, 1/2), via B at (1/4, 1/4, 1/4), to A at 0.
    lam = 0.1
    model = fu_kane_mele(lambda_so=lam, dt=0.0)
    d1 = np.array([0.25, 0.25, 0.25]) - np.array([0.0, 0.5, 0.5])
    d2 = -np.array([0.25, 0.25, 0.25])
    v = np.cross(d1, d2)
    spin = v[0] * np.array([[0, 1], [1, 0]]) + v[1] * np.array([[0, -1j], [1j, 0]]) + v[2] * np.diag([1, -1])
    block = np.array([[element(model, a, b, (1, 0, 0)) for b in range(2)] for a in range(2)])
    np.testing.assert_allclose(block, 1j * 8 * lam * spin, atol=1e-12)


def test_fu_kane_mele_dirac_points_at_x_when_dt_zero():
    x_points = [[0.5, 0, 0.5], [0.5, 0.5, 0], [0, 0.5, 0.5]]
    for x in x_points:
        assert abs(gap_at(fu_kane_mele(dt=0.0), x)) < 1e-10
        assert gap_at(fu_kane_mele(dt=0.4), x) > 0.1


# ---------------------------------------------------------------- Bi2Se3
def test_bi2se3_gamma_levels_and_symmetries():
    model = bi2se3()
    e = model.eigvalsh([0, 0, 0])[0]
    np.testing.assert_allclose(e, [-0.0068 - 0.28] * 2 + [-0.0068 + 0.28] * 2, atol=1e-12)
    assert model.is_time_reversal_symmetric()
    assert model.inversion is not None


def test_bi2se3_band_inversion_at_gamma_only():
    model = bi2se3()
    trims = np.array([[i, j, k] for i in (0, 0.5) for j in (0, 0.5) for k in (0, 0.5)])
    _, vecs = model.eigh(trims)
    for kpt, v in zip(trims, vecs, strict=True):
        p = model.inversion.matrix_at(kpt)
        occ = v[:, :2]
        parity = np.real(np.trace(occ.conj().T @ p @ occ)) / 2
        assert np.isclose(parity, -1.0 if not kpt.any() else 1.0)


# ---------------------------------------------------------------- Weyl
@pytest.mark.parametrize("k0", [np.pi / 2, 1.0, 2.0])
def test_weyl_nodes(k0):
    model = weyl_two_band(m=1.0, k0=k0)
    node = k0 / (2 * np.pi)
    e = model.eigvalsh([[0, 0, node], [0, 0, -node], [0, 0, 0]])
    np.testing.assert_allclose(e[:2], 0.0, atol=1e-12)
    assert np.isclose(e[2, 1] - e[2, 0], 2 * abs(1 - np.cos(k0)))
    np.testing.assert_allclose(model.metadata["weyl_nodes_reduced"], [[0, 0, node], [0, 0, -node]])
    g = (np.arange(8) + 0.5) / 8  # a grid that misses the nodes
    kk = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    assert np.min(np.diff(model.eigvalsh(kk), axis=1)) > 1e-3


# ---------------------------------------------------------------- buckled honeycomb
@pytest.mark.parametrize(
    ("factory", "params"),
    [
        (silicene, (1.6, 3.9e-3, 0.7e-3, 3.86, 0.23)),
        (germanene, (1.3, 43e-3, 10.7e-3, 4.02, 0.33)),
        (stanene, (1.3, 100e-3, 0.0, 4.70, 0.40)),
    ],
)
def test_xene_presets(factory, params):
    t, lam, lr2, a, l = params
    model = factory()
    p = model.metadata["parameters"]
    assert (p["t"], p["lambda_so"], p["lambda_r2"], p["a"], p["buckling"]) == (t, lam, lr2, a, l)
    assert np.isclose(model.metadata["critical_field_V_per_A"], lam / l)
    z = model.cartesian_positions[:, 2]
    np.testing.assert_allclose(z, [l, l, -l, -l])
    assert np.isclose(gap_at(model, K), 2 * lam) and np.isclose(gap_at(model, KP), 2 * lam)
    assert model.inversion is not None and model.is_time_reversal_symmetric()
    assert model.dim_k == 2 and model.dim_r == 3


def test_buckled_sign_conventions_by_hand():
    lam, lr2 = 0.05, 0.02
    model = buckled_honeycomb(1.0, lam, lr2, buckling=0.3, a=1.0)
    assert np.isclose(element(model, 0, 2, (0, 0)), -1.0)
    # A -> A along -a1 (the left-turn path of the Haldane test), d_ij = (-1, 0), mu = +1:
    # i lambda/(3 sqrt 3) s_z - i (2/3) lr2 (s x d)_z with (s x d)_z = s_y
    sy = np.array([[0, -1j], [1j, 0]])
    block = np.array([[element(model, a, b, (1, 0)) for b in range(2)] for a in range(2)])
    expected = 1j * lam / (3 * SQ3) * np.diag([1, -1]) - 1j * (2 / 3) * lr2 * sy
    np.testing.assert_allclose(block, expected, atol=1e-12)


def test_rashba_breaks_sz_conservation():
    k = np.random.default_rng(2).random((3, 2))
    for model, conserved in ((buckled_honeycomb(1.0, 0.05, 0.0), True), (buckled_honeycomb(1.0, 0.05, 0.02), False)):
        sz = model.spin_z()
        h = model.hamiltonian(k)
        assert np.allclose(h @ sz, sz @ h) == conserved


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: graphene(t=float("nan")), "t must be a finite"),
        (lambda: qwz(float("inf")), "m must be a finite"),
        (lambda: bhz(a=0.0), "lattice constant a must be positive"),
        (lambda: bi2se3(c=-1.0), "must be positive"),
        (lambda: kane_mele(exchange=[0.1, float("nan"), 0.0]), "exchange must be a finite"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ModelDefinitionError, match=match):
        call()
