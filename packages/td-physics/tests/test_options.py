"""The options objects: validated once, overrides equal options, defaults equal the documented ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from td_physics import ChernOptions, TightBindingOptions, Z2Options
from td_physics.exceptions import ConvergenceError, TDPhysicsError
from td_physics.invariants import chern_number, spin_chern_number, z2_indices, z2_invariant
from td_physics.models import bi2se3, kane_mele, qwz
from td_physics.structure import StructureError, Variant, tight_binding_from_structure, tight_binding_variants

SI_LATTICE = 0.5 * 5.431 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
SI_COORDS = [[0, 0, 0], [0.25, 0.25, 0.25]]


def test_defaults_are_the_documented_values():
    assert dataclasses.asdict(Z2Options()) == {
        "n_string": 24,
        "max_string": 8192,
        "n_pump": 11,
        "max_pump": 401,
        "gap_tol": 1e-6,
        "margin_tol": 0.3,
        "pos_tol": 0.01,
    }
    assert dataclasses.asdict(ChernOptions()) == {"mesh": 24, "max_mesh": 384, "max_flux": 1.0, "gap_tol": 1e-6}
    assert dataclasses.asdict(TightBindingOptions()) == {
        "spin_orbit_constants": None,
        "magnetic_moments": None,
        "exchange_per_moment": 1.0,
        "dimension": None,
        "electric_field": None,
        "vacuum_gap": 7.0,
        "min_distance": 0.5,
        "find_inversion": True,
        "name": "",
    }


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Z2Options().n_string = 48  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (Z2Options, {"n_string": 1}, "Z2Options.n_string must be an integer >= 2, got 1"),
        (Z2Options, {"n_string": 24.0}, "Z2Options.n_string must be an integer >= 2, got 24.0"),
        (Z2Options, {"n_string": 64, "max_string": 32}, "Z2Options.max_string must be >= n_string (64), got 32"),
        (Z2Options, {"max_pump": 5}, "Z2Options.max_pump must be >= n_pump (11), got 5"),
        (Z2Options, {"gap_tol": -1.0}, "Z2Options.gap_tol must be a finite number >= 0, got -1.0"),
        (Z2Options, {"margin_tol": float("nan")}, "Z2Options.margin_tol must be a finite number >= 0, got nan"),
        (Z2Options, {"pos_tol": 0.0}, "Z2Options.pos_tol must be a finite number > 0, got 0.0"),
        (ChernOptions, {"mesh": 1}, "ChernOptions.mesh must be an integer >= 2, got 1"),
        (ChernOptions, {"mesh": 48, "max_mesh": 24}, "ChernOptions.max_mesh must be >= mesh (48), got 24"),
        (ChernOptions, {"max_flux": 0}, "ChernOptions.max_flux must be a finite number > 0, got 0"),
        (ChernOptions, {"gap_tol": "small"}, "ChernOptions.gap_tol must be a finite number >= 0, got 'small'"),
    ],
)
def test_convergence_options_name_the_rule_and_the_value(cls, kwargs, message):
    with pytest.raises(ConvergenceError) as info:
        cls(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimension": 1}, "dimension must be 2 or 3 (or None to detect), got 1"),
        ({"vacuum_gap": 0.0}, "TightBindingOptions.vacuum_gap must be a finite number > 0, got 0.0"),
        ({"min_distance": -0.1}, "TightBindingOptions.min_distance must be a finite number >= 0, got -0.1"),
        ({"electric_field": np.inf}, "TightBindingOptions.electric_field must be a finite number, got inf"),
        ({"magnetic_moments": [[1.0], [2.0]]}, "TightBindingOptions.magnetic_moments must be finite values"),
        ({"magnetic_moments": [1.0, np.nan]}, "TightBindingOptions.magnetic_moments must be finite values"),
        ({"spin_orbit_constants": {"Bi": "big"}}, "spin_orbit_constants['Bi'] must be a finite number, got 'big'"),
        ({"find_inversion": "yes"}, "TightBindingOptions.find_inversion must be True or False, got 'yes'"),
    ],
)
def test_builder_options_name_the_rule_and_the_value(kwargs, message):
    with pytest.raises(StructureError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TightBindingOptions(**kwargs)


def test_overrides_are_validated_and_unknown_names_refused():
    with pytest.raises(ConvergenceError, match="Z2Options.pos_tol must be a finite number > 0"):
        z2_invariant(kane_mele(), pos_tol=0.0)
    with pytest.raises(ConvergenceError, match="ChernOptions.max_mesh must be >= mesh"):
        chern_number(qwz(1.0), options=ChernOptions(mesh=8, max_mesh=8), mesh=16)
    with pytest.raises(TypeError, match="unknown convergence options \\['mesh'\\]"):
        z2_invariant(kane_mele(), mesh=16)
    with pytest.raises(TypeError, match="unknown builder options \\['spin_orbit'\\]"):
        tight_binding_from_structure(SI_LATTICE, SI_COORDS, [14, 14], spin_orbit=False)
    with pytest.raises(TypeError, match="options must be a Z2Options, got ChernOptions"):
        z2_invariant(kane_mele(), options=ChernOptions())
    assert issubclass(StructureError, TDPhysicsError)


def test_overrides_equal_options():
    km = kane_mele(lambda_so=0.06, lambda_v=0.1)
    a = z2_invariant(km, n_string=32, n_pump=7)
    b = z2_invariant(km, options=Z2Options(n_string=32, n_pump=7))
    c = z2_invariant(km, options=Z2Options(n_string=32), n_pump=7)
    assert a.value == b.value == c.value == 1 and a.mesh == b.mesh == c.mesh
    assert a.details["max_wcc_change"] == b.details["max_wcc_change"] == c.details["max_wcc_change"]
    model = qwz(1.0)
    x = chern_number(model, mesh=12, max_mesh=48, max_flux=0.5)
    y = chern_number(model, options=ChernOptions(mesh=12, max_mesh=48, max_flux=0.5))
    assert (x.value, x.mesh, x.details["raw"]) == (y.value, y.mesh, y.details["raw"])
    s1 = spin_chern_number(km, mesh=12)
    s2 = spin_chern_number(km, options=ChernOptions(mesh=12))
    assert (s1.value, s1.mesh) == (s2.value, s2.mesh)
    so = {"Si": 0.02}
    m1 = tight_binding_from_structure(SI_LATTICE, SI_COORDS, [14, 14], Variant(), spin_orbit_constants=so, name="si")
    m2 = tight_binding_from_structure(
        SI_LATTICE, SI_COORDS, [14, 14], Variant(), options=TightBindingOptions(spin_orbit_constants=so, name="si")
    )
    assert m1.name == m2.name == "si"
    assert np.array_equal(m1.onsite, m2.onsite) and m1.hoppings.keys() == m2.hoppings.keys()
    stack = tight_binding_variants(SI_LATTICE, SI_COORDS, [14, 14], [Variant()], spin_orbit_constants=so)
    assert np.array_equal(stack.model(0).onsite, m1.onsite)


def test_defaults_give_the_same_answer_as_no_options():
    model = bi2se3()
    assert z2_indices(model).value == z2_indices(model, options=Z2Options()).value == (1, 0, 0, 0)
    assert chern_number(qwz(3.0), options=ChernOptions()).value == chern_number(qwz(3.0)).value == 0


def test_none_turns_the_gap_check_off_in_both():
    # at the QWZ transition m = 2 the gap closes on an 8 x 8 mesh; max_flux above pi accepts any flux
    closed = qwz(2.0)
    assert not chern_number(closed, mesh=8, max_mesh=8, max_flux=3.2).converged
    assert chern_number(closed, mesh=8, max_mesh=8, max_flux=3.2, gap_tol=None).converged
    km = kane_mele(lambda_so=0.06, lambda_v=0.1)  # gap about 0.2 eV
    assert not z2_invariant(km, method="wcc", gap_tol=10.0).converged
    assert z2_invariant(km, method="wcc", gap_tol=None).converged
    assert Z2Options(gap_tol=None).gap_threshold == ChernOptions(gap_tol=None).gap_threshold == -np.inf
    assert Z2Options().gap_threshold == ChernOptions().gap_threshold == 1e-6
