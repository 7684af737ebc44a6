"""Chiral edge modes of a 2D insulator on a ribbon: the bulk-boundary reading of the Chern number.

A ribbon of ``n_cells`` cells open along ``open_axis`` (:func:`td_physics.finite.ribbon`) is
diagonalised at ``n_k`` points of the remaining periodic direction in one batched ``eigvalsh``
(eigenvectors only at the few steps where a mode crosses the Fermi level). Inside
the bulk gap only edge states are left; each time one crosses the Fermi level between two
neighbouring k-points, the number of states below it changes by one. The crossing state is assigned
to the edge that holds most of its weight (the high or the low end of the open axis) and counted
``+1`` when it moves up through the Fermi level as k grows (``dE/dk > 0``) and ``-1`` when it moves
down. By bulk-boundary correspondence (Hatsugai, PRL 71, 3697 (1993)) the net count on the high edge
is the Chern number of the occupied bands, with :func:`td_physics.invariants.chern_number`'s sign
(the orientation of the periodic and open axes is corrected the same way); the low edge carries its
opposite. A quantum spin Hall insulator has crossings with net zero (helical modes).

The Fermi level defaults to 60 % of the way up the bulk gap: off its centre, so that modes that
cross the centre at the same k on the two edges (by a symmetry of the ribbon) cross it at
different k and are seen one by one.
"""

from __future__ import annotations

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.finite import ribbon
from td_physics.invariants._core import InvariantResult, resolve_occupied
from td_physics.invariants.chern import plane_orientation
from td_physics.model import TightBindingModel

__all__ = ["edge_chirality"]


def _bulk_edges(model: TightBindingModel, nocc: int, mesh: int) -> tuple[float, float, float]:
    """Top of the occupied bands, bottom of the empty ones and the bandwidth (eV) on a ``mesh`` x ``mesh`` grid."""
    axis = np.arange(mesh) / mesh
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    e = model.eigvalsh(grid)  # (mesh^2, norb)
    return float(e[:, nocc - 1].max()), float(e[:, nocc].min()), float(e.max() - e.min())


def _edge_counts(
    model: TightBindingModel, open_axis: int, n_cells: int, n_k: int, ef: float
) -> tuple[dict[str, int], bool]:
    """Net modes and crossings on each edge of one ribbon, and whether every crossing state is localised."""
    strip = ribbon(model, open_axis, n_cells)
    ks = (np.arange(n_k) + 0.5) / n_k
    e = np.linalg.eigvalsh(strip.hamiltonian(ks[:, None]))  # (n_k, norb_r)
    high = strip.positions[:, strip.dim_k] > 0.5  # (norb_r,) orbitals on the high half of the open axis
    below = (e < ef).sum(axis=1)  # (n_k,)
    steps = np.roll(below, -1) - below  # change from k_i to k_{i+1}, periodic
    where = np.flatnonzero(steps)  # the few k-steps where a mode crosses: eigenvectors only there
    _, v = np.linalg.eigh(strip.hamiltonian(ks[where, None])) if len(where) else (None, None)
    counts = {"high_net": 0, "low_net": 0, "high_crossings": 0, "low_crossings": 0}
    localised = True
    for n, i in enumerate(where):
        for state in np.argsort(np.abs(e[i] - ef))[: abs(int(steps[i]))]:
            weight = float((np.abs(v[n, :, state]) ** 2)[high].sum())
            localised &= max(weight, 1.0 - weight) >= 0.75
            side = "high" if weight > 0.5 else "low"
            counts[f"{side}_net"] += 1 if e[i, state] < ef else -1  # emptied as k grows: moving up
            counts[f"{side}_crossings"] += 1
    return counts, bool(localised)


def edge_chirality(
    model: TightBindingModel,
    occupied: int | None = None,
    *,
    open_axis: int = 1,
    n_cells: int = 32,
    n_k: int = 240,
    fermi_energy: float | None = None,
    bulk_mesh: int = 48,
) -> InvariantResult:
    """Net number of chiral modes on the high edge of a ribbon of a 2D model (equal to the Chern number).

    ``open_axis`` (0 or 1) is cut to ``n_cells`` cells; ``n_k`` points sample the other direction;
    ``fermi_energy`` (eV) defaults to 60 % up the bulk gap found on a ``bulk_mesh`` grid.
    ``details``: the net count and the number of crossings on each edge (``high_net``, ``low_net``,
    ``high_crossings``, ``low_crossings``), the same for a ribbon 1.5 times wider (``wider_ribbon``),
    the Fermi level and the bulk band edges. ``converged`` needs an open bulk gap, the same number of
    crossings on both edges with opposite net counts, crossing states localised (at least 75 % of their
    weight on one half of the ribbon), the wider ribbon counting the same, and at least
    ``cells_needed = W / (3 gap)`` cells (``W`` the bulk bandwidth; a rough bound on the edge decay length
    in cells): close to a gap closing the edge modes decay slowly and hybridise across a narrow ribbon.

    Examples
    --------
    >>> from td_physics.models import qwz
    >>> edge_chirality(qwz(-1.0), n_cells=20, n_k=200).value
    1
    """
    if model.dim_k != 2:
        raise ModelDefinitionError(f"edge_chirality needs a 2D model, got dim_k={model.dim_k}")
    if open_axis not in (0, 1):
        raise ModelDefinitionError(f"open_axis must be 0 or 1, got {open_axis!r}")
    if n_cells < 4 or n_k < 16:
        raise ModelDefinitionError(f"need n_cells >= 4 and n_k >= 16, got n_cells={n_cells}, n_k={n_k}")
    nocc = resolve_occupied(model, occupied)
    top_val, bottom_cond, width = _bulk_edges(model, nocc, bulk_mesh)
    gap = bottom_cond - top_val
    cells_needed = width / (3.0 * gap) if gap > 0 else np.inf  # edge decay length bound, in cells
    ef = top_val + 0.6 * gap if fermi_energy is None else float(fermi_energy)
    counts, localised = _edge_counts(model, open_axis, n_cells, n_k, ef)
    wider, _ = _edge_counts(model, open_axis, n_cells + n_cells // 2, n_k, ef)  # finite-size check
    periodic = 1 - open_axis
    value = plane_orientation(model, (periodic, open_axis)) * counts["high_net"]
    converged = (
        n_cells >= cells_needed
        and counts["high_net"] == -counts["low_net"]
        and counts["high_crossings"] == counts["low_crossings"]
        and localised
        and wider == counts
    )
    return InvariantResult(
        value=int(value),
        converged=bool(converged),
        min_gap=float(gap),
        mesh=(n_k, n_cells),
        method="ribbon-edge-modes",
        details={
            **counts,
            "wider_ribbon": wider,
            "cells_needed": float(cells_needed),
            "fermi_energy": ef,
            "bulk_valence_top": top_val,
            "bulk_conduction_bottom": bottom_cond,
        },
    )
