"""Band structures along high-symmetry paths, and direct and indirect gaps at a filling."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from td_physics.exceptions import KPointError
from td_physics.model import TightBindingModel, stacked_hamiltonian

__all__ = [
    "BandStructure",
    "GapResult",
    "k_path",
    "band_structure",
    "band_gap",
    "batched_band_gaps",
    "irreducible_mesh",
]


@dataclass(frozen=True)
class BandStructure:
    """Energies along a k-path.

    ``kpoints`` (nk, dim_k) reduced; ``distance`` (nk,) cumulative Cartesian length (1/Angstrom);
    ``energies`` (nk, norb) eV; ``ticks`` the distances of the nodes and ``labels`` their names.
    """

    kpoints: np.ndarray
    distance: np.ndarray
    energies: np.ndarray
    ticks: np.ndarray
    labels: tuple[str, ...]
    occupied: int | None = None


@dataclass(frozen=True)
class GapResult:
    """Gaps above the ``occupied`` lowest bands (eV) and where they occur (reduced k)."""

    direct: float
    indirect: float
    k_direct: np.ndarray
    k_vbm: np.ndarray
    k_cbm: np.ndarray
    occupied: int

    @property
    def is_insulating(self) -> bool:
        """True when the indirect gap is positive (no band overlaps the filling)."""
        return self.indirect > 0


def k_path(
    model: TightBindingModel, nodes: Sequence[Sequence[float]], n_points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points along straight segments between reduced ``nodes``, spaced evenly in Cartesian length.

    Returns k (n_points, dim_k), cumulative distance (n_points,) and the node distances.
    """
    nodes_arr = np.asarray(nodes, dtype=float)
    if nodes_arr.ndim != 2 or nodes_arr.shape[1] != model.dim_k or len(nodes_arr) < 2:
        raise KPointError(
            f"a k-path needs at least two nodes of {model.dim_k} reduced coordinates, got {np.shape(nodes)}"
        )
    if n_points < len(nodes_arr):
        raise KPointError(f"n_points must be at least the number of nodes ({len(nodes_arr)}), got {n_points}")
    recip = model.reciprocal_lattice[: model.dim_k]
    seg = np.linalg.norm(np.diff(nodes_arr, axis=0) @ recip, axis=1)
    ticks = np.concatenate([[0.0], np.cumsum(seg)])
    dist = np.linspace(0.0, ticks[-1], n_points)
    idx = np.clip(np.searchsorted(ticks, dist, side="right") - 1, 0, len(seg) - 1)
    frac = np.where(seg[idx] > 0, (dist - ticks[idx]) / np.where(seg[idx] > 0, seg[idx], 1.0), 0.0)
    k = nodes_arr[idx] + frac[:, None] * (nodes_arr[idx + 1] - nodes_arr[idx])
    return k, dist, ticks


def band_structure(
    model: TightBindingModel,
    nodes: Sequence[Sequence[float]] | None = None,
    labels: Sequence[str] | None = None,
    n_points: int = 200,
) -> BandStructure:
    """Bands along ``nodes`` (default: the factory's ``metadata["k_path"]``)."""
    if nodes is None:
        path = model.metadata.get("k_path")
        if not path:
            raise KPointError("no k-path given and the model has no metadata['k_path']; pass nodes=[...]")
        nodes, labels = path["nodes"], path["labels"]
    labels = tuple(labels) if labels is not None else tuple(str(i) for i in range(len(nodes)))
    if len(labels) != len(nodes):
        raise KPointError(f"labels must name each of the {len(nodes)} nodes, got {len(labels)}")
    k, dist, ticks = k_path(model, nodes, n_points)
    energies = model.eigvalsh(k)
    occ = model.occupied if model.occupied is not None else (model.norb // 2 if model.norb % 2 == 0 else None)
    return BandStructure(k, dist, energies, ticks, labels, occ)


def batched_band_gaps(
    models: Sequence[TightBindingModel], nocc: int, mesh: int, *, kpoints: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Direct and indirect gaps (nm,) of many models on a shared uniform mesh (one batched solve).

    ``kpoints`` (nk, dim_k) replaces the mesh, for example by its irreducible points when the
    models share the crystal's symmetry (see :func:`irreducible_mesh`).
    """
    dim = models[0].dim_k
    if kpoints is None:
        axis = np.arange(mesh) / mesh
        kpoints = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)
    e = np.linalg.eigvalsh(stacked_hamiltonian(models, kpoints))  # (nm, nk, norb)
    direct = (e[..., nocc] - e[..., nocc - 1]).min(axis=1)
    indirect = e[..., nocc].min(axis=1) - e[..., nocc - 1].max(axis=1)
    return direct, indirect


def irreducible_mesh(
    lattice: np.ndarray, frac_coords: np.ndarray, atomic_numbers: Sequence[int], mesh: int, *, symprec: float = 1e-3
) -> np.ndarray:
    """Reduced k-points of a ``mesh`` x ``mesh`` x ``mesh`` grid that are not related by the
    crystal's point group or time reversal (spglib ``get_ir_reciprocal_mesh``), (n_ir, 3).

    Valid for quantities that share the crystal's full symmetry, such as the band energies of a
    non-magnetic model built from the structure (no field, no moments).
    """
    import spglib

    species = np.unique(np.asarray(atomic_numbers).astype(str), return_inverse=True)[1]  # symbols or numbers
    cell = (np.asarray(lattice, dtype=float), np.asarray(frac_coords, dtype=float), species.astype(np.intc) + 1)
    with warnings.catch_warnings():  # spglib 2.x warns about its own legacy error handling on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        mapping, grid = spglib.get_ir_reciprocal_mesh([mesh] * 3, cell, is_shift=[0, 0, 0], symprec=symprec)
    return grid[np.unique(mapping)] / float(mesh)


def band_gap(
    model: TightBindingModel, occupied: int | None = None, *, mesh: int | None = None, polish: bool = True
) -> GapResult:
    """Direct and indirect gaps above the ``occupied`` lowest bands.

    A uniform mesh (default 48 per axis in 2D, 16 in 3D, 200 in 1D) locates the extrema; with
    ``polish`` each is then refined by Nelder-Mead, so gaps at points off the mesh (a Dirac point
    at K) are found to about 1e-8 eV.
    """
    nocc = model.check_occupied(occupied)
    dim = model.dim_k
    n = mesh or {1: 200, 2: 48, 3: 16}[dim]
    axis = np.arange(n) / n
    grid = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)
    e = model.eigvalsh(grid)
    i_dir = int(np.argmin(e[:, nocc] - e[:, nocc - 1]))
    i_vbm = int(np.argmax(e[:, nocc - 1]))
    i_cbm = int(np.argmin(e[:, nocc]))
    k_dir, k_vbm, k_cbm = grid[i_dir], grid[i_vbm], grid[i_cbm]

    def band(k: np.ndarray, b: int) -> float:
        return float(model.eigvalsh(k)[0, b])

    if polish:
        opts = {"xatol": 1e-10, "fatol": 1e-13, "maxiter": 2000}
        r = minimize(lambda k: band(k, nocc) - band(k, nocc - 1), k_dir, method="Nelder-Mead", options=opts)
        k_dir = np.mod(r.x, 1.0)
        r = minimize(lambda k: -band(k, nocc - 1), k_vbm, method="Nelder-Mead", options=opts)
        k_vbm = np.mod(r.x, 1.0)
        r = minimize(lambda k: band(k, nocc), k_cbm, method="Nelder-Mead", options=opts)
        k_cbm = np.mod(r.x, 1.0)
    ed = model.eigvalsh(np.stack([k_dir, k_vbm, k_cbm]))
    direct = min(float(ed[0, nocc] - ed[0, nocc - 1]), float((e[:, nocc] - e[:, nocc - 1]).min()))
    vbm = max(float(ed[1, nocc - 1]), float(e[:, nocc - 1].max()))
    cbm = min(float(ed[2, nocc]), float(e[:, nocc].min()))
    return GapResult(direct, cbm - vbm, k_dir, k_vbm, k_cbm, nocc)
