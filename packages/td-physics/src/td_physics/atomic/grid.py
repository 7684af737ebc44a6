"""The logarithmic radial grid and sixth-order quadrature on it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from td_physics.exceptions import AtomicInputError

__all__ = ["RadialGrid", "cumulative"]

# sixth-order weights for the integral over one grid interval [i, i+1] from points i-2 .. i+3
_W6 = np.array([11.0, -93.0, 802.0, 802.0, -93.0, 11.0]) / 1440.0


@dataclass(frozen=True)
class RadialGrid:
    """Logarithmic radial grid ``r_i = r_min * exp(i * h)``, ``i = 0 .. n_points - 1``.

    Parameters
    ----------
    r_min, r_max:
        First and last grid point (bohr).
    n_points:
        Number of points; ``h = ln(r_max / r_min) / (n_points - 1)``.
    """

    r_min: float
    r_max: float
    n_points: int

    def __post_init__(self) -> None:
        if not (np.isfinite(self.r_min) and np.isfinite(self.r_max) and 0.0 < self.r_min < self.r_max):
            raise AtomicInputError(
                f"RadialGrid needs 0 < r_min < r_max (finite), got r_min={self.r_min!r}, r_max={self.r_max!r}"
            )
        if int(self.n_points) != self.n_points or self.n_points < 200:
            raise AtomicInputError(f"RadialGrid.n_points must be an integer >= 200, got {self.n_points!r}")
        object.__setattr__(self, "n_points", int(self.n_points))

    @classmethod
    def for_atom(cls, Z: int, r_max: float = 60.0, step: float = 0.004, r_min_times_z: float = 1e-7) -> RadialGrid:
        """The default grid for atomic number ``Z``.

        ``r_min = r_min_times_z / Z`` (deep inside the 1s shell), ``r_max`` in bohr, and the number
        of points chosen so that the logarithmic step ``h`` is at most ``step``.
        """
        r_min = r_min_times_z / Z
        n = int(math.ceil(math.log(r_max / r_min) / step)) + 1
        return cls(r_min, r_max, n)

    @property
    def h(self) -> float:
        """Logarithmic step ``ln(r_{i+1} / r_i)``."""
        return math.log(self.r_max / self.r_min) / (self.n_points - 1)

    @cached_property
    def r(self) -> np.ndarray:
        """Grid points (bohr), read-only."""
        out = self.r_min * np.exp(self.h * np.arange(self.n_points))
        out[-1] = self.r_max
        out.setflags(write=False)
        return out


def cumulative(f: np.ndarray) -> np.ndarray:
    """``F[i] = int_0^i f dt`` on the unit-step index grid (sixth order; f ~ 0 beyond both ends)."""
    fp = np.concatenate([np.zeros(2), f, np.zeros(2)])
    n = f.shape[0]
    seg = np.zeros(n - 1)
    for k, w in enumerate(_W6):
        seg += w * fp[k : k + n - 1]
    out = np.empty(n)
    out[0] = 0.0
    np.cumsum(seg, out=out[1:])
    return out
