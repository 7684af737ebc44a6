"""The user guide's ``topological_diffusion.physics`` / ``.validation`` imports are td_physics' objects."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import td_physics
import td_physics.calculator
import td_physics.invariants
import td_physics.validation


def test_guide_imports_work():
    from topological_diffusion.physics import TopologicalInvariantCalculator
    from topological_diffusion.validation import validate_known_materials

    assert TopologicalInvariantCalculator is td_physics.calculator.TopologicalInvariantCalculator
    assert validate_known_materials is td_physics.validation.validate_known_materials


def test_physics_facade_re_exports_td_physics():
    facade = importlib.import_module("topological_diffusion.physics")
    assert set(td_physics.__all__) <= set(facade.__all__)
    assert len(facade.__all__) == len(set(facade.__all__))
    for name in facade.__all__:
        source = next(m for m in (td_physics, td_physics.calculator, td_physics.invariants) if hasattr(m, name))
        assert getattr(facade, name) is getattr(source, name), name
    assert facade.__doc__ and "user guide's import path for td_physics" in facade.__doc__


def test_validation_facade_re_exports_td_physics_validation():
    facade = importlib.import_module("topological_diffusion.validation")
    assert sorted(facade.__all__) == sorted(td_physics.validation.__all__)
    for name in facade.__all__:
        assert getattr(facade, name) is getattr(td_physics.validation, name), name
    assert facade.__doc__ and "user guide's import path for td_physics.validation" in facade.__doc__


def test_topological_diffusion_is_a_namespace_package():
    import topological_diffusion

    assert getattr(topological_diffusion, "__file__", None) is None  # PEP 420: no __init__.py
    portions = [Path(p) for p in topological_diffusion.__path__]
    assert portions and not any((p / "__init__.py").exists() for p in portions)
    ours = Path(td_physics.__file__).resolve().parents[1] / "topological_diffusion"
    assert ours.resolve() in {p.resolve() for p in portions}


def test_guide_snippet_runs():
    from topological_diffusion.physics import TopologicalInvariantCalculator

    from td_physics.models import kane_mele

    hamiltonian, occupied_bands, k_grid = kane_mele(lambda_so=0.06), 2, 24
    calc = TopologicalInvariantCalculator(hamiltonian)
    invariants = calc.compute_all_invariants(occupied_bands, k_grid)
    assert invariants["z2_invariant"].value == 1
    assert invariants.to_dict()["invariants"]["chern_number"]["value"] == 0


def test_unknown_names_raise_attribute_error():
    facade = importlib.import_module("topological_diffusion.physics")
    with pytest.raises(AttributeError):
        facade.not_a_name  # noqa: B018
