"""``TopologicalInvariantCalculator``: every invariant that applies to a model, in one call.

The user guide's entry point (``from topological_diffusion.physics import
TopologicalInvariantCalculator``). It adds no physics: it decides, from the model's dimension and
symmetries, which of the functions of :mod:`td_physics.invariants` apply, calls them and collects
their :class:`~td_physics.invariants.InvariantResult` objects.

============  ===================================  =============================================
dimension     invariant (key)                      computed when
============  ===================================  =============================================
2D            ``chern_number``                     always
2D            ``z2_invariant``                     spinful, time-reversal symmetric, even filling
2D            ``spin_chern_number``                spinful, even filling
3D            ``z2_indices``                       spinful, time-reversal symmetric, even filling
3D            ``chern_number_k3=0``,               always (the planes spanned by b1, b2 at reduced
              ``chern_number_k3=0.5``              k3 = 0 and 1/2; kz for a tetragonal cell)
3D            ``weyl_nodes``                       time reversal or inversion broken
============  ===================================  =============================================

Whatever does not apply is absent from the results and named, with the reason, in
:attr:`InvariantReport.skipped`. Inversion counts as present when the model declares an operator
or :func:`~td_physics.invariants.detect_inversion` finds one (it only tries orbital parities +1, so
a model with p orbitals should declare its operator, or the Weyl search runs needlessly).

Examples
--------
>>> import numpy as np
>>> from td_physics.models import haldane, kane_mele
>>> report = TopologicalInvariantCalculator(haldane(phi=np.pi / 2, m=0.1)).compute_all_invariants()
>>> report["chern_number"].value, report.skipped["z2_invariant"]
(-1, 'model breaks time reversal (Z2 needs it)')
>>> report = TopologicalInvariantCalculator(kane_mele(lambda_so=0.06)).compute_all_invariants(k_grid=24)
>>> report["z2_invariant"].value, report["chern_number"].value
(1, 0)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from td_physics.exceptions import FileFormatError, KPointError, ModelDefinitionError, OccupationError
from td_physics.invariants import (
    ChernOptions,
    InvariantResult,
    WeylNode,
    Z2Options,
    chern_number,
    detect_inversion,
    spin_chern_number,
    weyl_nodes,
    z2_indices,
    z2_invariant,
)
from td_physics.invariants._core import MAX_ELEMENTS
from td_physics.invariants.weyl import WEYL_MESH
from td_physics.model import TightBindingModel

__all__ = ["TopologicalInvariantCalculator", "InvariantReport"]

logger = logging.getLogger(__name__)

_MIN_K_GRID = 4

_MODEL_SUFFIXES = (".json", ".h5", ".hdf5")


@dataclass(frozen=True)
class InvariantReport:
    """What :meth:`TopologicalInvariantCalculator.compute_all_invariants` found.

    Attributes
    ----------
    model:
        The model's name.
    dim_k:
        Number of periodic directions (2 or 3).
    occupied:
        Number of occupied bands used.
    k_grid:
        The starting mesh per axis that was asked for (``None``: each function's default).
    symmetries:
        ``time_reversal``, ``inversion`` (declared or detected) and ``spinful``.
    results:
        Invariant name -> :class:`~td_physics.invariants.InvariantResult` (value, converged,
        min_gap, mesh, method, details), read-only.
    skipped:
        Invariant name -> why it was not computed, read-only.
    """

    model: str
    dim_k: int
    occupied: int
    k_grid: int | None
    symmetries: Mapping[str, bool]
    results: Mapping[str, InvariantResult]
    skipped: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for name in ("symmetries", "results", "skipped"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def __getitem__(self, name: str) -> InvariantResult:
        if name in self.results:
            return self.results[name]
        if name in self.skipped:
            raise KeyError(f"{name} was not computed: {self.skipped[name]}")
        raise KeyError(f"unknown invariant {name!r}; computed: {sorted(self.results)}, skipped: {sorted(self.skipped)}")

    def __contains__(self, name: object) -> bool:
        return name in self.results

    @property
    def converged(self) -> bool:
        """Whether every computed invariant passed its convergence checks."""
        return all(r.converged for r in self.results.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready plain dictionary: one entry per invariant (value, converged, min_gap, method, mesh)."""
        return {
            "model": self.model,
            "dim_k": self.dim_k,
            "occupied": self.occupied,
            "k_grid": self.k_grid,
            "symmetries": dict(self.symmetries),
            "invariants": {name: _entry(res) for name, res in self.results.items()},
            "skipped": dict(self.skipped),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, WeylNode):
        return {
            "position": [float(x) for x in value.position],
            "chirality": int(value.chirality),
            "gap": float(value.gap),
        }
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    return value


def _entry(res: InvariantResult) -> dict[str, Any]:
    return {
        "value": _plain(res.value),
        "converged": bool(res.converged),
        "min_gap": float(res.min_gap),
        "method": res.method,
        "mesh": [int(n) for n in res.mesh],
    }


def _load(source: str | os.PathLike[str]) -> TightBindingModel:
    """A model from a saved file: ``.json`` / ``.h5`` / ``.hdf5`` (td_physics.io) or a Wannier90 ``*_hr.dat``."""
    from td_physics.io import load_model, model_from_wannier90

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"TopologicalInvariantCalculator: no model file at {str(path)!r}")
    if path.suffix.lower() in _MODEL_SUFFIXES:
        return load_model(path)
    if path.name.endswith("_hr.dat"):
        return model_from_wannier90(path)
    raise FileFormatError(
        f"a model file must be a saved model (.json, .h5, .hdf5) or a Wannier90 *_hr.dat file, got {path.name!r}"
    )


class TopologicalInvariantCalculator:
    """Compute every topological invariant that applies to a tight-binding model.

    Parameters
    ----------
    hamiltonian:
        A :class:`td_physics.TightBindingModel` with 2 or 3 periodic directions, or the path of a
        model saved by :meth:`TightBindingModel.save` (``.json``, ``.h5``, ``.hdf5``) or of a
        Wannier90 ``*_hr.dat`` file (read with :func:`td_physics.io.model_from_wannier90`'s
        defaults; for a lattice, positions or spin, build the model with
        :meth:`TightBindingModel.from_wannier90` and pass it instead).

    Raises
    ------
    TypeError
        For anything else (a bare Hamiltonian matrix has no lattice or orbital positions: build a
        model with :meth:`TightBindingModel.from_hopping_matrices`).
    ModelDefinitionError
        For a 1D model (no Chern, Z2 or Weyl invariant applies).
    """

    def __init__(self, hamiltonian: TightBindingModel | str | os.PathLike[str]) -> None:
        if isinstance(hamiltonian, (str, os.PathLike)):
            hamiltonian = _load(hamiltonian)
        if not isinstance(hamiltonian, TightBindingModel):
            kind = type(hamiltonian)
            raise TypeError(
                "TopologicalInvariantCalculator needs a td_physics.TightBindingModel (or the path of a saved "
                f"model or Wannier90 *_hr.dat file), got {kind.__module__}.{kind.__qualname__}; a bare "
                "Hamiltonian matrix has no lattice or orbital positions: build a model with "
                "TightBindingModel.from_hopping_matrices"
            )
        if hamiltonian.dim_k not in (2, 3):
            raise ModelDefinitionError(
                "TopologicalInvariantCalculator needs a model with 2 or 3 periodic directions "
                f"(Chern, Z2 and Weyl invariants), got dim_k={hamiltonian.dim_k}"
            )
        self.model = hamiltonian

    def __repr__(self) -> str:
        return f"TopologicalInvariantCalculator({self.model!r})"

    # ------------------------------------------------------------------ validation
    def _occupied(self, occupied_bands: Any) -> int:
        norb = self.model.norb
        if occupied_bands is None:
            try:
                return self.model.n_occupied
            except OccupationError as err:
                raise OccupationError(f"occupied_bands must be given: {err}") from None
        if isinstance(occupied_bands, bool) or not isinstance(occupied_bands, (int, np.integer)):
            raise OccupationError(
                f"occupied_bands must be an integer number of bands, got {type(occupied_bands).__name__} "
                f"{occupied_bands!r}"
            )
        if not 1 <= int(occupied_bands) <= norb - 1:
            raise OccupationError(
                f"occupied_bands must be between 1 and {norb - 1} (the model has {norb} bands), got {occupied_bands}"
            )
        return int(occupied_bands)

    def _k_grid(self, k_grid: Any) -> int | None:
        dim = self.model.dim_k
        rule = (
            f"k_grid must be an integer >= {_MIN_K_GRID} (points per axis of the starting mesh) or a tuple of "
            f"{dim} equal such integers (one per periodic direction; the meshes are square)"
        )
        if k_grid is None:
            return None
        if isinstance(k_grid, (tuple, list, np.ndarray)):
            sizes = list(k_grid)
            if len(sizes) != dim:
                raise KPointError(f"{rule}; the model has {dim} periodic directions, got {tuple(sizes)!r}")
            if len({_as_int(n, rule, k_grid) for n in sizes}) != 1:
                raise KPointError(f"{rule}; got unequal sizes {tuple(sizes)!r}")
            n = _as_int(sizes[0], rule, k_grid)
        else:
            n = _as_int(k_grid, rule, k_grid)
        if n < _MIN_K_GRID:
            raise KPointError(f"{rule}, got {k_grid!r}")
        return n

    # ------------------------------------------------------------------ the invariants
    def compute_all_invariants(self, occupied_bands: int | None = None, k_grid: Any = None) -> InvariantReport:
        """Every invariant that applies to the model's dimension and symmetries.

        Parameters
        ----------
        occupied_bands:
            Number of occupied bands; ``None`` is the model's default (its ``occupied``, else half
            filling).
        k_grid:
            Starting mesh per periodic direction: an int, or a tuple with one equal entry per
            direction. It is the starting Chern mesh (``mesh``), the starting number of points per
            Wilson loop of the Z2 calculations (``n_string``) and the Weyl search mesh; each
            function still refines as it needs. ``None`` keeps each function's default (24).

        Returns
        -------
        InvariantReport
            ``report["chern_number"]`` etc. are the :class:`InvariantResult` objects of the
            functions of :mod:`td_physics.invariants`; ``report.skipped`` says why the others are
            absent; ``report.to_dict()`` is a plain, JSON-ready dictionary.
        """
        model = self.model
        nocc = self._occupied(occupied_bands)
        n = self._k_grid(k_grid)
        trs = model.is_time_reversal_symmetric()
        inversion = model.inversion is not None or detect_inversion(model) is not None
        symmetries = {"time_reversal": trs, "inversion": inversion, "spinful": model.spinful}

        # the library defaults; a starting k_grid above a refinement cap raises the cap to k_grid
        chern_opts, z2_opts, weyl_mesh = ChernOptions(), Z2Options(), WEYL_MESH
        if n is not None:
            chern_opts = replace(chern_opts, mesh=n, max_mesh=max(chern_opts.max_mesh, n))
            z2_opts = replace(z2_opts, n_string=n, max_string=max(z2_opts.max_string, n))
            weyl_mesh = n

        results: dict[str, InvariantResult] = {}
        skipped: dict[str, str] = {}
        z2_name = "z2_invariant" if model.dim_k == 2 else "z2_indices"
        z2_reason = self._z2_reason(trs, nocc)
        if z2_reason is not None:
            skipped[z2_name] = z2_reason
        if model.dim_k == 2:
            results["chern_number"] = chern_number(model, nocc, options=chern_opts)
            if z2_reason is None:
                results[z2_name] = z2_invariant(model, nocc, options=z2_opts)
            if not model.spinful:
                skipped["spin_chern_number"] = "spinless model (the spin Chern number needs spin)"
            elif nocc % 2:
                skipped["spin_chern_number"] = f"needs an even number of occupied bands, got {nocc}"
            else:
                results["spin_chern_number"] = spin_chern_number(model, nocc, options=chern_opts)
        else:
            if z2_reason is None:
                results[z2_name] = z2_indices(model, nocc, options=z2_opts)
            for k3 in (0.0, 0.5):
                results[f"chern_number_k3={k3:g}"] = chern_number(
                    model, nocc, plane=(0, 1), k_fixed=k3, options=chern_opts
                )
            weyl_reason = self._weyl_reason(trs, inversion, n)
            if weyl_reason is None:
                results["weyl_nodes"] = weyl_nodes(model, nocc - 1, mesh=weyl_mesh)
            else:
                skipped["weyl_nodes"] = weyl_reason
        order = [k for k in _ORDER if k in results]
        return InvariantReport(
            model=model.name or "model",
            dim_k=model.dim_k,
            occupied=nocc,
            k_grid=n,
            symmetries=symmetries,
            results={k: results[k] for k in order},
            skipped=skipped,
        )

    def _z2_reason(self, trs: bool, nocc: int) -> str | None:
        if not trs:
            return "model breaks time reversal (Z2 needs it)"
        if not self.model.spinful:
            return "spinless model (time reversal squares to +1: no Kramers pairs, no Z2)"
        if nocc % 2:
            return f"needs an even number of occupied bands (Kramers pairs), got {nocc}"
        return None

    def _weyl_reason(self, trs: bool, inversion: bool, n: int | None) -> str | None:
        if trs and inversion:
            return (
                "model has time reversal and inversion: every band is doubly degenerate, so band touchings "
                "are not Weyl nodes"
            )
        mesh = WEYL_MESH if n is None else n
        held = mesh**3 * self.model.norb**2
        if held > MAX_ELEMENTS:
            return (
                f"a {mesh}^3 search mesh with {self.model.norb} orbitals holds {held} matrix elements at once "
                f"(limit {MAX_ELEMENTS}); use a smaller k_grid or call weyl_nodes directly"
            )
        return None


_ORDER = (
    "chern_number",
    "z2_invariant",
    "spin_chern_number",
    "z2_indices",
    "chern_number_k3=0",
    "chern_number_k3=0.5",
    "weyl_nodes",
)


def _as_int(value: Any, rule: str, k_grid: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise KPointError(f"{rule}, got {k_grid!r}")
    return int(value)
