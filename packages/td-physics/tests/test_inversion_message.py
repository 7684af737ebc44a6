"""An inversion centre slightly off gives a reason that shows the offending shift, not rounded integers (issue 15)."""

from __future__ import annotations

import pytest

from td_physics.exceptions import SymmetryError
from td_physics.model import TightBindingModel


def test_inversion_off_by_a_little_names_orbital_shift_and_distance() -> None:
    model = TightBindingModel([[1.0]], [[0.0], [0.5]], name="chain")
    model.add_hopping(-1.0, 0, 1, (0,))
    with pytest.raises(SymmetryError) as info:
        model.set_inversion([0, 1], centre=[0.000004])
    message = str(info.value)
    assert "away from a lattice vector" in message and "8e-06" in message
    assert "[-0.999992]" in message or "[8e-06]" in message  # the shift as it is, not rounded to an integer
    assert "non-integer shifts [[0.0], [-1.0]]" not in message
    model.set_inversion([0, 1], centre=[0.0], check=False)  # the right centre is accepted
    assert model.inversion.shifts == ((0,), (-1,))
