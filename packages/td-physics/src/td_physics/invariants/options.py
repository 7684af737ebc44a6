"""Convergence options of the invariants: :class:`Z2Options` and :class:`ChernOptions`.

Frozen and validated once. The functions take ``options=`` plus overrides by field name, so
``z2_invariant(model, n_string=48)`` equals ``z2_invariant(model, options=Z2Options(n_string=48))``.
``gap_tol=None`` turns the gap check off in both (Z2Pack's convention).

>>> Z2Options(n_pump=6).max_pump, ChernOptions().max_mesh
(401, 384)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from td_physics._options import check_int, check_number
from td_physics.exceptions import ConvergenceError

__all__ = ["Z2Options", "ChernOptions"]


def _check_gap_tol(owner: str, gap_tol: float | None) -> None:
    if gap_tol is not None:
        check_number(ConvergenceError, owner, "gap_tol", gap_tol, minimum=0.0)


def _check_range(owner: str, start: str, stop: str, values: tuple[int, int], minimum: int) -> None:
    """``start >= minimum`` and ``stop >= start`` (a refinement that starts at ``start`` and stops at ``stop``)."""
    check_int(ConvergenceError, owner, start, values[0], minimum)
    check_int(ConvergenceError, owner, stop, values[1], minimum)
    if values[1] < values[0]:
        raise ConvergenceError(f"{owner}.{stop} must be >= {start} ({values[0]}), got {values[1]}")


class _GapCheck:
    """The gap check shared by the options classes: ``gap_tol`` in eV, or ``None`` for none."""

    gap_tol: float | None

    @property
    def gap_threshold(self) -> float:
        """The smallest accepted gap as a number (``-inf`` when the check is off)."""
        return -np.inf if self.gap_tol is None else float(self.gap_tol)


@dataclass(frozen=True)
class Z2Options(_GapCheck):
    """Convergence of the Wannier-centre flow of :func:`~td_physics.invariants.z2_invariant` and
    :func:`~td_physics.invariants.z2_indices`.

    The strings double from ``n_string`` up to ``max_string`` points while some centre moves by
    more than ``pos_tol`` when every second point is dropped; pumping lines start at ``n_pump``
    over k in [0, 1/2] and are inserted, up to ``max_pump``, where the largest-gap midpoint comes
    within ``margin_tol`` gap widths of a centre.
    """

    n_string: int = 24  # points per Wilson loop to start with (doubled while the centres move)
    max_string: int = 8192  # the most points per Wilson loop
    n_pump: int = 11  # pumping lines over k in [0, 1/2] to start with
    max_pump: int = 401  # the most pumping lines per plane
    gap_tol: float | None = 1e-6  # smallest direct gap (eV) for a converged answer; None: no gap check
    margin_tol: float = 0.3  # closest approach of the largest-gap midpoint to a centre, in gap widths
    pos_tol: float = 0.01  # largest centre change (units of the lattice vector) when every second point is dropped

    def __post_init__(self) -> None:
        _check_range("Z2Options", "n_string", "max_string", (self.n_string, self.max_string), 2)
        _check_range("Z2Options", "n_pump", "max_pump", (self.n_pump, self.max_pump), 2)
        _check_gap_tol("Z2Options", self.gap_tol)
        check_number(ConvergenceError, "Z2Options", "margin_tol", self.margin_tol, minimum=0.0)
        check_number(ConvergenceError, "Z2Options", "pos_tol", self.pos_tol, minimum=0.0, strict=True)


@dataclass(frozen=True)
class ChernOptions(_GapCheck):
    """Convergence of the Fukui-Hatsugai-Suzuki Chern number (:func:`~td_physics.invariants.chern_number`,
    :func:`~td_physics.invariants.spin_chern_number`).

    The mesh starts at ``mesh`` x ``mesh`` and doubles, up to ``max_mesh``, until no plaquette
    carries a Berry flux above ``max_flux`` (the integer is unambiguous well below pi) with the
    gap open.
    """

    mesh: int = 24  # points per axis of the starting mesh
    max_mesh: int = 384  # the largest mesh the doubling reaches
    max_flux: float = 1.0  # largest Berry flux (radians) through one plaquette of a converged mesh
    gap_tol: float | None = 1e-6  # smallest direct gap (eV) for a converged answer; None: no gap check

    def __post_init__(self) -> None:
        _check_range("ChernOptions", "mesh", "max_mesh", (self.mesh, self.max_mesh), 2)
        check_number(ConvergenceError, "ChernOptions", "max_flux", self.max_flux, minimum=0.0, strict=True)
        _check_gap_tol("ChernOptions", self.gap_tol)
