"""Fixtures of the td-physics tests."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

#: DFTSettings fields read only after the ground state (how the invariant is read from it, which meshes and
#: checks run): calculations that differ in these alone share one self-consistent ground state
AFTER_GROUND_STATE = frozenset({"method", "confirm", "confirm_pw_below", "pw_ecut"})


@pytest.fixture(scope="module")
def shared_ground_states():
    """Within one test module, one GPAW ground state per crystal, settings and k-mesh.

    ``td_physics.dft`` computes the self-consistent LCAO ground state afresh on every call; the invariant, the
    spin-orbit states and the checks are read from it without changing it (spin-orbit coupling is added after
    the self-consistent cycle). Tests that ask the same crystal different questions (with and without
    spin-orbit coupling, parities and Wilson loops, one mesh or two) reuse it here; everything after the ground
    state still runs for each call. The key holds every setting except :data:`AFTER_GROUND_STATE`.
    """
    from td_physics.dft import _gpaw

    compute = _gpaw.ground_state
    done: dict[tuple, object] = {}

    def ground_state(atoms, settings, mesh, *, spinpol):
        chosen = tuple(sorted((k, v) for k, v in asdict(settings).items() if k not in AFTER_GROUND_STATE))
        key = (
            np.asarray(atoms.cell).round(10).tobytes(),
            atoms.get_scaled_positions().round(10).tobytes(),
            atoms.numbers.tobytes(),
            atoms.get_initial_magnetic_moments().round(10).tobytes(),
            chosen,
            tuple(int(n) for n in mesh),
            bool(spinpol),
        )
        if key not in done:
            done[key] = compute(atoms, settings, mesh, spinpol=spinpol)
        return done[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_gpaw, "ground_state", ground_state)
        yield done
