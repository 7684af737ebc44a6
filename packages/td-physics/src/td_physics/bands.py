"""Band structures along high-symmetry paths, and direct and indirect gaps at a filling."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    "density_mesh",
    "uniform_mesh",
    "gaps_of",
    "GAP_KPOINT_DENSITY",
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


GAP_KPOINT_DENSITY = 4.0
"""Default k-point density of the labeller's gap mesh: points per 1/Angstrom of ``|b_i|`` (``b_i``
including the 2 pi; a spacing of 0.25 1/Angstrom). 8 points per axis for the 5-atom cell of Bi2Se3
(``|b_i| = 1.77``), for Si and for GaAs; 4 along a doubled lattice vector."""


def density_mesh(lattice: Any, density: float = GAP_KPOINT_DENSITY, dim_k: int | None = None) -> tuple[int, ...]:
    """Points per periodic axis of a Gamma-centred mesh of ``density`` points per 1/Angstrom.

    ``n_i = max(2, ceil(density |b_i|))``, rounded up to an even number so that the mesh holds
    every time-reversal-invariant momentum (the points where the Fu-Kane parities are taken and
    where band inversions happen). A cell that is ``m`` times longer along ``a_i`` gets about
    ``1/m`` as many points along ``b_i``: a 2x2x1 supercell of a cell with an 8x8x8 mesh gets
    4x4x8, which samples the same physical k-points. ``lattice`` holds the lattice vectors as rows
    (Angstrom); ``dim_k`` (default: all) is the number of periodic directions.

    Examples
    --------
    >>> import numpy as np
    >>> density_mesh(0.5 * 5.653 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]))
    (8, 8, 8)
    """
    lat = np.asarray(lattice, dtype=float)
    dim_k = lat.shape[0] if dim_k is None else int(dim_k)
    if not (np.isfinite(density) and density > 0):
        raise KPointError(f"the k-point density must be a positive number of points per 1/Angstrom, got {density!r}")
    length = np.linalg.norm(2 * np.pi * np.linalg.inv(lat).T, axis=1)[:dim_k]  # |b_i|, 1/Angstrom
    n = np.ceil(density * length * (1 - 1e-12))  # a product that is an integer to rounding stays that integer
    return tuple(int(max(2, 2 * np.ceil(x / 2))) for x in n)


def _mesh_axes(mesh: int | Sequence[int], dim: int) -> tuple[int, ...]:
    sizes = (int(mesh),) * dim if np.ndim(mesh) == 0 else tuple(int(m) for m in mesh)
    if len(sizes) != dim or any(m < 1 for m in sizes):
        raise KPointError(f"a mesh needs {dim} positive point counts (one per periodic axis), got {mesh!r}")
    return sizes


def uniform_mesh(mesh: int | Sequence[int], dim: int = 3) -> np.ndarray:
    """Reduced k-points (nk, dim) of a Gamma-centred ``mesh`` (an int for every axis, or one per axis)."""
    sizes = _mesh_axes(mesh, dim)
    axes = [np.arange(m) / m for m in sizes]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)


def gaps_of(
    hamiltonian: Callable[[np.ndarray], np.ndarray],
    kpoints: np.ndarray,
    nocc: int,
    n_models: int,
    norb: int,
    *,
    max_elements: int = 2**21,
) -> tuple[np.ndarray, np.ndarray]:
    """Direct and indirect gaps (n_models,) above ``nocc`` bands of ``hamiltonian(k) -> (nm, nk, norb, norb)``.

    One batched ``eigvalsh`` per chunk of k-points (at most ``max_elements`` matrix elements,
    32 MB, at a time, so the matrices stay small and in cache); the extrema are reduced across
    chunks. No loop over single k-points.
    """
    kpoints = np.asarray(kpoints, dtype=float)
    step = max(1, max_elements // max(1, n_models * norb * norb))
    gap_min = np.full(n_models, np.inf)
    vbm = np.full(n_models, -np.inf)
    cbm = np.full(n_models, np.inf)
    for lo in range(0, len(kpoints), step):
        e = np.linalg.eigvalsh(hamiltonian(kpoints[lo : lo + step]))  # (nm, nk_chunk, norb)
        gap_min = np.minimum(gap_min, (e[..., nocc] - e[..., nocc - 1]).min(axis=1))
        vbm = np.maximum(vbm, e[..., nocc - 1].max(axis=1))
        cbm = np.minimum(cbm, e[..., nocc].min(axis=1))
    return gap_min, cbm - vbm


def batched_band_gaps(
    models: Sequence[TightBindingModel],
    nocc: int,
    mesh: int | Sequence[int] | None = None,
    *,
    kpoints: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Direct and indirect gaps (nm,) of many models on a shared uniform mesh (batched solves).

    ``mesh`` is the number of points per periodic axis (an int, or one per axis); ``kpoints``
    (nk, dim_k) replaces the mesh, for example by its irreducible points when the models share
    the crystal's symmetry (see :func:`irreducible_mesh`).
    """
    dim = models[0].dim_k
    if kpoints is None:
        if mesh is None:
            raise KPointError("batched_band_gaps needs a mesh or kpoints")
        kpoints = uniform_mesh(mesh, dim)
    return gaps_of(lambda k: stacked_hamiltonian(models, k), kpoints, nocc, len(models), models[0].norb)


def irreducible_mesh(
    lattice: np.ndarray,
    frac_coords: np.ndarray,
    atomic_numbers: Sequence[int],
    mesh: int | Sequence[int],
    *,
    symprec: float = 1e-3,
) -> np.ndarray:
    """Reduced k-points of a Gamma-centred ``mesh`` (an int for all three axes, or one per axis)
    that are not related by the crystal's point group or time reversal, (n_ir, 3).

    Valid for quantities that share the crystal's full symmetry, such as the band energies of a
    non-magnetic model built from the structure (no field, no moments). The rotations come from
    spglib; only those that map the mesh onto itself are used (a mesh with unequal axes, such as
    the density mesh of a supercell, keeps fewer), and the orbits are built here rather than by
    ``spglib.get_ir_reciprocal_mesh``, which reduced such meshes by rotations that do not preserve
    them (a Bi2Se3 2x1x1 supercell lost its band extrema on a 4x8x8 mesh).
    """
    import spglib

    sizes = np.array(_mesh_axes(mesh, 3))
    species = np.unique(np.asarray(atomic_numbers).astype(str), return_inverse=True)[1]  # symbols or numbers
    cell = (np.asarray(lattice, dtype=float), np.asarray(frac_coords, dtype=float), species.astype(np.intc) + 1)
    with warnings.catch_warnings():  # spglib 2.x warns about its own legacy error handling on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = spglib.get_symmetry(cell, symprec=symprec)
    rotations = (
        np.unique(np.asarray(dataset["rotations"], dtype=int), axis=0) if dataset else np.eye(3, dtype=int)[None]
    )
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij"), -1).reshape(-1, 3)
    index = lambda g: np.ravel_multi_index(tuple(np.mod(g, sizes).T), tuple(sizes))  # noqa: E731
    # x' = R x in reduced direct coordinates sends reduced k (a row) to k R^-1; the group holds every
    # inverse, so the images of k are {k R} over the group; time reversal adds -k
    images = [index(-grid)]
    for rot in rotations:
        num = grid * (1.0 / sizes) @ rot * sizes
        if np.allclose(num, np.rint(num), atol=1e-9):  # the rotation maps the mesh onto itself
            images.append(index(np.rint(num).astype(int)))
    label = np.arange(len(grid))
    while True:  # propagate the smallest index through every orbit
        new = label.copy()
        for img in images:
            np.minimum.at(new, img, label)
            new = np.minimum(new, new[img])
        if np.array_equal(new, label):
            break
        label = new
    return grid[np.unique(label)] / sizes[None, :].astype(float)


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
