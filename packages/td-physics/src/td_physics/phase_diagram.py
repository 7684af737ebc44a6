"""Phase diagrams: an invariant scanned over a grid of model parameters, vectorised across the grid.

Every model of the grid goes into the same batched eigen-solves (the invariant kernels take a
stack of models), so a 40 x 40 Haldane diagram costs a few large ``eigh`` calls rather than
1,600 small calculations.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from td_physics.bands import batched_band_gaps
from td_physics.exceptions import ModelDefinitionError
from td_physics.invariants.chern import chern_batch_converged, chern_plane, plane_orientation
from td_physics.invariants.higher_order import quadrupole_batch
from td_physics.invariants.wilson import flow_planes, indices_from_planes, z2_planes
from td_physics.model import TightBindingModel
from td_physics.options import ChernOptions, NestedWilsonOptions, Z2Options, resolve

__all__ = ["PhaseDiagram", "phase_diagram", "INVARIANTS", "PHASE_DIAGRAM_CHERN"]

logger = logging.getLogger(__name__)

INVARIANTS = ("chern", "z2", "z2_indices", "spin_chern", "gap", "quadrupole")

#: The Chern options of a phase diagram given none: a lower mesh ceiling than one ``chern_number``, since
#: a grid holds many points and its few unconverged ones (near a gap closing) are reported, not refined.
PHASE_DIAGRAM_CHERN = ChernOptions(max_mesh=192)


@dataclass(frozen=True)
class PhaseDiagram:
    """An invariant on a parameter grid.

    ``values`` has the shape of the grid (one axis per parameter, in the order given); for
    ``z2_indices`` a trailing axis of 4. ``converged`` and ``min_gap`` have the grid's shape.
    """

    parameters: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    invariant: str
    values: np.ndarray
    converged: np.ndarray
    min_gap: np.ndarray
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """One row per grid point: the parameters, the value, converged, min_gap."""
        rows = []
        for idx in itertools.product(*(range(len(a)) for a in self.axes)):
            row = {name: float(ax[i]) for name, ax, i in zip(self.parameters, self.axes, idx)}
            val = self.values[idx]
            row[self.invariant] = tuple(int(x) for x in val) if np.ndim(val) else val.item()
            row["converged"] = bool(self.converged[idx])
            row["min_gap"] = float(self.min_gap[idx])
            rows.append(row)
        return rows

    def plot(self, ax=None, *, title: str | None = None, boundary: Callable[[np.ndarray], np.ndarray] | None = None):
        """A figure of the diagram (1D: value against the parameter; 2D: a coloured map).

        ``boundary`` optionally overlays a closed-form phase boundary: a function of the first
        parameter returning the second. Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
        else:
            fig = ax.figure
        vals = self.values if self.values.ndim == len(self.axes) else self.values[..., 0]
        integer = np.issubdtype(vals.dtype, np.integer)
        if len(self.axes) == 1:
            x = self.axes[0]
            ax.step(x, vals, where="mid", color="C0", lw=2, label=self.invariant)
            bad = ~self.converged
            if bad.any():
                ax.plot(x[bad], vals[bad], "x", color="C3", label="not converged")
            if integer:
                ax.set_yticks(np.arange(vals.min(), vals.max() + 1))
            ax.set_xlabel(self.parameters[0])
            ax.set_ylabel(self.invariant, color="C0")
            gap_ax = ax.twinx()
            gap_ax.plot(x, self.min_gap * 1e3, color="C1", lw=1)
            gap_ax.set_ylabel("smallest direct gap (meV)", color="C1")
            gap_ax.set_ylim(bottom=0)
            ax.legend(frameon=False, loc="best")
        elif len(self.axes) == 2:
            from matplotlib.colors import BoundaryNorm

            x, y = self.axes
            if integer:
                levels = np.arange(vals.min(), vals.max() + 2) - 0.5
                norm = BoundaryNorm(levels, 256)
                mesh = ax.pcolormesh(x, y, vals.T, shading="nearest", cmap="coolwarm", norm=norm)
                fig.colorbar(mesh, ax=ax, label=self.invariant, ticks=np.arange(vals.min(), vals.max() + 1))
            else:
                mesh = ax.pcolormesh(x, y, vals.T, shading="nearest", cmap="viridis")
                fig.colorbar(mesh, ax=ax, label=self.invariant)
            if boundary is not None:
                xs = np.linspace(x.min(), x.max(), 400)
                ax.plot(xs, boundary(xs), "k--", lw=1)
                ax.plot(xs, -boundary(xs), "k--", lw=1)
                ax.set_ylim(y.min(), y.max())
            ax.set_xlabel(self.parameters[0])
            ax.set_ylabel(self.parameters[1])
        else:
            raise ModelDefinitionError(f"plot shows 1 or 2 parameters, got {len(self.axes)}")
        ax.set_title(title or f"{self.invariant} phase diagram")
        return fig


def _groups(models: Sequence[TightBindingModel]) -> list[list[int]]:
    """Indices of models that can share a batched solve (same orbitals at the same positions)."""
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(models):
        key = (m.norb, m.dim_k, np.round(m.positions, 10).tobytes())
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def phase_diagram(
    factory: Callable[..., TightBindingModel],
    grid: Mapping[str, Sequence[float]],
    invariant: str | Callable[[TightBindingModel], Any] = "chern",
    *,
    fixed: Mapping[str, Any] | None = None,
    occupied: int | None = None,
    options: ChernOptions | Z2Options | None = None,
    **overrides: Any,
) -> PhaseDiagram:
    """Scan ``factory(**params, **fixed)`` over ``grid`` and compute ``invariant`` everywhere.

    ``invariant`` is one of ``"chern"``, ``"z2"``, ``"z2_indices"``, ``"spin_chern"``,
    ``"gap"`` (the direct gap on a ``mesh`` x ``mesh`` grid), or any callable ``model -> number``, which
    is applied model by model (not vectorised). The convergence options are those of the invariant
    functions: a :class:`ChernOptions` for ``"chern"``, ``"spin_chern"`` and ``"gap"`` (default
    :data:`PHASE_DIAGRAM_CHERN`; the gap uses its ``mesh``), a :class:`Z2Options` for ``"z2"`` and
    ``"z2_indices"`` (default ``Z2Options()``), a :class:`NestedWilsonOptions` for ``"quadrupole"`` (the
    quadrupole moment ``q_xy`` of :func:`~td_physics.invariants.quadrupole_moment`, 0.0 or 0.5), with
    ``overrides`` by field name (``mesh=48``, ``n_string=48``). A callable takes none.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.models import qwz
    >>> pd = phase_diagram(qwz, {"m": np.array([-3.0, -1.0, 1.0, 3.0])}, "chern")
    >>> pd.values.tolist()
    [0, 1, -1, 0]
    """
    if not grid:
        raise ModelDefinitionError("grid must name at least one parameter, got an empty mapping")
    names = tuple(grid)
    axes = tuple(np.asarray(grid[n], dtype=float) for n in names)
    fixed = dict(fixed or {})
    shape = tuple(len(a) for a in axes)
    points = list(itertools.product(*axes))
    models = [factory(**dict(zip(names, p)), **fixed) for p in points]
    n = len(models)
    extra = (4,) if invariant == "z2_indices" else ()
    values = np.zeros((n,) + extra, dtype=float if invariant in ("gap", "quadrupole") or callable(invariant) else int)
    converged = np.ones(n, dtype=bool)
    min_gap = np.zeros(n)
    if callable(invariant):
        if options is not None or overrides:
            raise TypeError(f"a callable invariant takes no convergence options, got {sorted(overrides) or options}")
        for i, m in enumerate(models):  # user callables are opaque: one model at a time
            out = invariant(m)
            values[i] = getattr(out, "value", out)
            converged[i] = bool(getattr(out, "converged", True))
            min_gap[i] = float(getattr(out, "min_gap", np.nan))
        name = getattr(invariant, "__name__", "value")
    elif invariant not in INVARIANTS:
        raise ModelDefinitionError(f"invariant must be one of {INVARIANTS} or a callable, got {invariant!r}")
    else:
        name = invariant
        if invariant in ("z2", "z2_indices"):
            opts: Any = resolve(Z2Options, options, overrides, "convergence")
        elif invariant == "quadrupole":
            opts = resolve(NestedWilsonOptions, options, overrides, "convergence")
        else:
            opts = resolve(ChernOptions, PHASE_DIAGRAM_CHERN if options is None else options, overrides, "convergence")
        for idx in _groups(models):
            group = [models[i] for i in idx]
            nocc = group[0].check_occupied(occupied)
            if invariant in ("chern", "spin_chern"):
                plane, fixed_k = chern_plane(group[0])
                res = chern_batch_converged(group, nocc, plane, fixed_k, opts, spin=invariant == "spin_chern")
                sign = np.array([plane_orientation(m, plane) for m in group])
                values[idx] = np.rint(res["raw"] * sign).astype(int)
                converged[idx], min_gap[idx] = res["converged"], res["min_gap"]
            elif invariant == "quadrupole":
                res = quadrupole_batch(group, nocc, opts)
                values[idx], converged[idx], min_gap[idx] = res["q_xy"], res["converged"], res["min_gap"]
            elif invariant == "gap":
                direct, _ = batched_band_gaps(group, nocc, opts.mesh)
                values[idx], min_gap[idx] = direct, direct
            else:
                planes = flow_planes(2 if invariant == "z2" else 3)
                res = z2_planes(group, planes, nocc, opts)
                if invariant == "z2":
                    values[idx] = res["z2"][:, 0]
                    converged[idx] = res["converged"][:, 0]
                else:
                    values[idx], nu0 = indices_from_planes(res["z2"])
                    converged[idx] = res["converged"].all(axis=1) & np.all(nu0 == nu0[:, :1], axis=1)
                min_gap[idx] = res["min_gap"].min(axis=1)
    logger.info("phase diagram of %s over %s: %d points, %d not converged", name, names, n, int((~converged).sum()))
    return PhaseDiagram(
        names, axes, name, values.reshape(shape + extra), converged.reshape(shape), min_gap.reshape(shape), fixed
    )
