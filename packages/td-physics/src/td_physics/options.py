"""Options objects: frozen dataclasses validated once, with overrides by keyword.

* :class:`Z2Options`: convergence of the Wannier-centre flow (:func:`~td_physics.invariants.z2_invariant`,
  :func:`~td_physics.invariants.z2_indices`, :func:`~td_physics.phase_diagram.phase_diagram`);
* :class:`ChernOptions`: convergence of the Fukui-Hatsugai-Suzuki Chern number
  (:func:`~td_physics.invariants.chern_number`, :func:`~td_physics.invariants.spin_chern_number`);
* :class:`NestedWilsonOptions`: convergence of the nested Wilson loops of
  :func:`~td_physics.invariants.quadrupole_moment`;
* :class:`TightBindingOptions`: the structure -> tight-binding builder
  (:func:`~td_physics.structure.tight_binding_from_structure` and its batched forms).

A function takes ``options: XOptions | None = None, **overrides``; :func:`resolve` applies the
overrides with :func:`dataclasses.replace`, which validates the result again, so
``z2_invariant(model, n_string=48)`` equals ``z2_invariant(model, options=Z2Options(n_string=48))``.
In every options class ``None`` means one thing: the setting is off, or not given (``gap_tol=None``
turns the gap check off, Z2Pack's convention; ``dimension=None`` imposes none, so it is detected),
never "the default value".

>>> Z2Options(n_pump=6).max_pump, ChernOptions().max_mesh, TightBindingOptions(dimension=2).vacuum_gap
(401, 384, 7.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from td_physics.exceptions import ConvergenceError, StructureError

__all__ = ["Z2Options", "ChernOptions", "NestedWilsonOptions", "TightBindingOptions", "resolve", "from_mapping"]

T = TypeVar("T")


def resolve(cls: type[T], options: T | None, overrides: Mapping[str, Any], what: str) -> T:
    """``options`` (default ``cls()``) with ``overrides`` applied; unknown names raise ``TypeError``.

    ``what`` names the kind of options in the error ("convergence", "builder").
    """
    if options is None:
        options = cls()
    elif not isinstance(options, cls):
        raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
    valid = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"unknown {what} options {unknown}; valid: {valid}")
    return replace(options, **overrides) if overrides else options  # type: ignore[type-var]


def from_mapping(
    cls: type[T], data: Mapping[str, Any] | None, refuse: Callable[[list[str], list[str]], Exception]
) -> T:
    """``cls(**data)`` for a dataclass read from YAML or JSON; keys that are not its fields raise
    ``refuse(unknown, known)`` (both sorted), so that each caller keeps its own error class and wording."""
    data = dict(data or {})
    known = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise refuse(unknown, known)
    return cls(**data)


def check_int(error: type[ValueError], owner: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or ``error`` naming the rule ``owner.name >= minimum`` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise error(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(
    error: type[ValueError], owner: str, name: str, value: Any, *, minimum: float | None = None, strict: bool = False
) -> float:
    """``value`` as a finite float (``>= minimum``, or ``> minimum`` when ``strict``), or ``error``."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.integer, np.floating))
        and math.isfinite(value)
        and (minimum is None or (value > minimum if strict else value >= minimum))
    )
    if not ok:
        rule = "" if minimum is None else (f" > {minimum:g}" if strict else f" >= {minimum:g}")
        raise error(f"{owner}.{name} must be a finite number{rule}, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- invariants
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


@dataclass(frozen=True)
class NestedWilsonOptions(_GapCheck):
    """Convergence of the nested Wilson loops of :func:`~td_physics.invariants.quadrupole_moment`.

    A ``mesh`` x ``mesh`` grid of k-points, doubled up to ``max_mesh`` while a Wannier-sector
    polarisation moves by more than ``pos_tol`` when every second point along both axes is dropped.
    The answer is converged when, besides, the energy gap exceeds ``gap_tol``, every Wannier band
    keeps ``wannier_gap_tol`` away from 0 and 1/2 (so the sectors are defined) and both sector
    polarisations lie within ``quantization_tol`` of 0 or 1/2.
    """

    mesh: int = 16  # points per axis to start with (even: the coarse check drops every second one)
    max_mesh: int = 128  # the largest mesh the doubling reaches
    pos_tol: float = 0.01  # largest sector-polarisation change (units of the lattice vector) on the half mesh
    gap_tol: float | None = 1e-6  # smallest direct gap (energy units of the model); None: no gap check
    wannier_gap_tol: float = 1e-3  # smallest distance of a Wannier band from 0 and 1/2 (units of the lattice vector)
    quantization_tol: float = 1e-3  # largest distance of a sector polarisation from 0 or 1/2 (mirrors make it exact)

    def __post_init__(self) -> None:
        _check_range("NestedWilsonOptions", "mesh", "max_mesh", (self.mesh, self.max_mesh), 4)
        if self.mesh % 2:
            raise ConvergenceError(f"NestedWilsonOptions.mesh must be even (the half mesh checks it), got {self.mesh}")
        check_number(ConvergenceError, "NestedWilsonOptions", "pos_tol", self.pos_tol, minimum=0.0, strict=True)
        _check_gap_tol("NestedWilsonOptions", self.gap_tol)
        check_number(ConvergenceError, "NestedWilsonOptions", "wannier_gap_tol", self.wannier_gap_tol, minimum=0.0)
        check_number(ConvergenceError, "NestedWilsonOptions", "quantization_tol", self.quantization_tol, minimum=0.0)


# ----------------------------------------------------------------------------- structure builder
@dataclass(frozen=True)
class TightBindingOptions:
    """Everything the builder takes besides the crystal and the parameter variant."""

    spin_orbit_constants: Mapping[str, float] | None = None  # {symbol: lambda_p (eV)} before the sourced table
    magnetic_moments: Sequence[Any] | None = None  # one per atom, Bohr magnetons: along +z, or (natom, 3) vectors
    exchange_per_moment: float = 1.0  # J (eV per Bohr magneton), a Stoner-type model parameter: splitting J m
    dimension: int | None = None  # 2 or 3; None: 2 when a vacuum gap of vacuum_gap lies along a3
    electric_field: float | None = None  # perpendicular field (V/Angstrom) along a1 x a2; 2D cells only
    vacuum_gap: float = 7.0  # smallest empty slab (Angstrom) along a3 that makes a cell 2D
    min_distance: float = 0.5  # atoms closer than this (Angstrom) are refused as overlapping
    find_inversion: bool = True  # look for inversion with spglib and declare it on the model
    name: str = ""  # free text stored on the model (default: the element symbols)

    def __post_init__(self) -> None:
        owner = "TightBindingOptions"
        if self.spin_orbit_constants is not None:
            if not isinstance(self.spin_orbit_constants, Mapping):
                raise StructureError(
                    f"{owner}.spin_orbit_constants must map element symbols to lambda_p in eV, "
                    f"got {type(self.spin_orbit_constants).__name__}"
                )
            constants = {
                str(sym): check_number(StructureError, owner, f"spin_orbit_constants[{sym!r}]", lam)
                for sym, lam in self.spin_orbit_constants.items()
            }
            object.__setattr__(self, "spin_orbit_constants", MappingProxyType(constants))
        if self.magnetic_moments is not None:
            try:
                moments = np.asarray(self.magnetic_moments, dtype=float)
            except (TypeError, ValueError):
                moments = np.full(1, np.nan)
            vectors = moments.ndim == 2 and moments.shape[1] == 3
            if not (moments.ndim == 1 or vectors) or not np.all(np.isfinite(moments)):
                raise StructureError(
                    f"{owner}.magnetic_moments must be finite values, one per atom (Bohr magnetons: a number along z "
                    f"or a Cartesian 3-vector), got {self.magnetic_moments!r}"
                )
            value = tuple(tuple(m) for m in moments.tolist()) if vectors else tuple(moments.tolist())
            object.__setattr__(self, "magnetic_moments", value)
        check_number(StructureError, owner, "exchange_per_moment", self.exchange_per_moment)
        if self.dimension not in (None, 2, 3) or isinstance(self.dimension, bool):
            raise StructureError(f"dimension must be 2 or 3 (or None to detect), got {self.dimension!r}")
        if self.electric_field is not None:
            check_number(StructureError, owner, "electric_field", self.electric_field)
        check_number(StructureError, owner, "vacuum_gap", self.vacuum_gap, minimum=0.0, strict=True)
        check_number(StructureError, owner, "min_distance", self.min_distance, minimum=0.0)
        if not isinstance(self.find_inversion, (bool, np.bool_)):
            raise StructureError(f"{owner}.find_inversion must be True or False, got {self.find_inversion!r}")
        if not isinstance(self.name, str):
            raise StructureError(f"{owner}.name must be a string, got {type(self.name).__name__}")
