"""The errors of td-physics: one module defines them, the package exports each of them once."""

from __future__ import annotations

import td_physics
from td_physics import exceptions


def test_every_error_is_a_value_error_exported_by_the_package():
    for name in exceptions.__all__:
        error = getattr(exceptions, name)
        assert issubclass(error, exceptions.TDPhysicsError) and issubclass(error, ValueError), name
        assert getattr(td_physics, name) is error, name
    assert set(exceptions.__all__) <= set(td_physics.__all__)
    assert len(td_physics.__all__) == len(set(td_physics.__all__))


def test_the_subpackages_re_export_the_errors_of_exceptions():
    import td_physics.atomic
    import td_physics.structure

    for module in (td_physics.atomic, td_physics.structure):
        for name in ("AtomicInputError", "BoundStateError", "SCFConvergenceError", "StructureError"):
            if hasattr(module, name):
                assert getattr(module, name) is getattr(exceptions, name), (module.__name__, name)
