"""Tests of td_physics.fields: electric and exchange fields return new, correctly shifted models."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import td_physics.fields as fields_module
from td_physics import TightBindingModel
from td_physics.exceptions import ModelDefinitionError
from td_physics.fields import electric_field, exchange_field
from td_physics.models import bhz, graphene, kane_mele, silicene

K = (2 / 3, 1 / 3)
KP = (1 / 3, 2 / 3)


def gap_at_k(model):
    e = model.eigvalsh([K, KP])  # (2, norb)
    n = model.n_occupied
    return e[:, n] - e[:, n - 1]


def test_docstring_examples():
    assert doctest.testmod(fields_module).failed == 0


# ---------------------------------------------------------------- electric field
@pytest.mark.parametrize("field", [0.0, 0.005, 0.01, 0.017, 0.025, -0.01, -0.03])
def test_silicene_gap_closes_at_critical_field(field):
    model = silicene()
    lam, l = 3.9e-3, 0.23
    gaps = gap_at_k(electric_field(model, field))
    np.testing.assert_allclose(gaps, 2 * abs(lam - l * abs(field)), atol=1e-10)


def test_electric_field_sign_pushes_orbitals_along_field_up():
    model = silicene()  # A at z = +0.23 A, B at z = -0.23 A
    new = electric_field(model, 0.01)  # V/A along +z
    shift = np.real(np.diag(new.onsite - model.onsite))
    np.testing.assert_allclose(shift, [0.0023, 0.0023, -0.0023, -0.0023], atol=1e-15)
    np.testing.assert_allclose(
        electric_field(model, [0.0, 0.0, 0.01]).hamiltonian([K]), new.hamiltonian([K]), atol=1e-15
    )
    assert new.metadata["applied_fields"][-1]["kind"] == "electric"


def test_electric_field_does_not_mutate_input():
    model = silicene()
    before = model.hamiltonian([K, KP]).copy()
    inversion, metadata = model.inversion, dict(model.metadata)
    new = electric_field(model, 0.02)
    assert new is not model
    np.testing.assert_array_equal(model.hamiltonian([K, KP]), before)
    assert model.inversion is inversion and model.inversion is not None
    assert model.metadata == metadata and "applied_fields" not in model.metadata


def test_electric_field_drops_inversion_only_when_broken():
    model = silicene()
    assert electric_field(model, 0.01).inversion is None
    assert electric_field(model, 0.0).inversion is not None
    assert electric_field(model, 0.01).is_time_reversal_symmetric()


@settings(max_examples=25, deadline=None)
@given(
    field=st.floats(-0.1, 0.1),
    ref=st.lists(st.floats(-5.0, 5.0), min_size=3, max_size=3),
)
def test_electric_field_reference_only_shifts_energies(field, ref):
    model = silicene()
    k = np.array([K, [0.1, 0.3]])
    centred = electric_field(model, field).eigvalsh(k)
    shifted = electric_field(model, field, reference=ref).eigvalsh(k)
    centroid = model.cartesian_positions.mean(axis=0)
    offset = field * (centroid[2] - ref[2])  # U_i changes by E . (centroid - ref) on every orbital
    np.testing.assert_allclose(shifted, centred + offset, atol=1e-12)


def test_electric_field_ribbon_in_plane():
    # one periodic direction (x) embedded in 2D: a field along y is allowed and breaks inversion
    ribbon = TightBindingModel([[1.0, 0.0], [0.0, 4.0]], [[0.0, 0.25], [0.0, 0.75]], dim_k=1, occupied=1)
    ribbon.add_hopping(-1.0, 0, 1, (0,))
    ribbon.add_hopping(-0.5, 0, 0, (1,))
    ribbon.add_hopping(-0.5, 1, 1, (1,))
    ribbon.set_inversion([1, 0], [1, 1], [0.0, 0.5])
    new = electric_field(ribbon, 0.1)  # along y, the last axis
    np.testing.assert_allclose(np.real(np.diag(new.onsite)), [-0.1, 0.1], atol=1e-14)
    assert new.inversion is None and ribbon.inversion is not None


@pytest.mark.parametrize(
    ("field", "match"),
    [
        ([0.01, 0.0, 0.0], "perpendicular to the periodic lattice vectors"),
        ([0.0, 0.01], "scalar .* or a vector of length 3"),
        (float("nan"), "must be finite"),
        (1j, "real number or vector"),
        ("up", "real number or vector"),
    ],
)
def test_electric_field_errors(field, match):
    with pytest.raises(ModelDefinitionError, match=match):
        electric_field(silicene(), field)


def test_electric_field_on_fully_periodic_sheet_is_refused():
    with pytest.raises(ModelDefinitionError, match="perpendicular"):
        electric_field(graphene(), 0.1)


def test_electric_field_bad_reference():
    with pytest.raises(ModelDefinitionError, match="reference must be a finite Cartesian point of length 3"):
        electric_field(silicene(), 0.01, reference=[0.0, 0.0])


# ---------------------------------------------------------------- exchange field
@settings(max_examples=25, deadline=None)
@given(m=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3))
def test_exchange_splits_bhz_gamma_levels(m):
    model = bhz(M=-0.5, C=0.1)
    e = exchange_field(model, m).eigvalsh([0.0, 0.0])[0]
    size = np.linalg.norm(m)
    expected = np.sort([0.1 + s * 0.5 + sign * size for s in (1, -1) for sign in (1, -1)])
    np.testing.assert_allclose(e, expected, atol=1e-10)


def test_exchange_breaks_time_reversal_keeps_inversion():
    model = kane_mele()
    new = exchange_field(model, 0.05)
    assert model.is_time_reversal_symmetric() and not new.is_time_reversal_symmetric()
    assert new.inversion is not None
    assert exchange_field(model, 0.0).is_time_reversal_symmetric()
    assert new.metadata["applied_fields"] == [{"kind": "exchange", "m_eV": [0.0, 0.0, 0.05]}]
    k = np.random.default_rng(3).random((2, 2))
    np.testing.assert_allclose(new.hamiltonian(k), exchange_field(model, [0, 0, 0.05]).hamiltonian(k), atol=1e-15)
    added = np.kron(np.eye(2), np.diag([0.05, -0.05]))  # (4, 4): + m on up, - m on down, each site
    np.testing.assert_allclose(new.hamiltonian(k) - model.hamiltonian(k), [added] * 2, atol=1e-15)


def test_exchange_does_not_mutate_input():
    model = kane_mele()
    before = model.onsite
    exchange_field(model, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(model.onsite, before)
    assert "applied_fields" not in model.metadata


def test_exchange_errors():
    with pytest.raises(ModelDefinitionError, match="needs a spinful model"):
        exchange_field(graphene(), 0.1)
    with pytest.raises(ModelDefinitionError, match="vector of length 3"):
        exchange_field(kane_mele(), [0.1, 0.2])
    with pytest.raises(ModelDefinitionError, match="must be finite"):
        exchange_field(kane_mele(), float("inf"))
