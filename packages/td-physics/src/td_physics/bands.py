"""Band structures along high-symmetry paths, and direct and indirect gaps at a filling."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Sequence
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
    "BandEdges",
    "band_edges",
    "refine_band_edges",
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


@dataclass(frozen=True)
class BandEdges:
    """The band edges at a filling of ``nm`` models, as far as a set of k-points shows them (eV).

    ``direct`` (nm,) is the smallest direct gap seen, ``vbm`` (nm,) the highest energy of band
    ``nocc - 1`` and ``cbm`` (nm,) the lowest of band ``nocc``; ``vbm_k`` and ``cbm_k`` (nm, n_best,
    dim_k) hold the reduced k-points of the ``n_best`` highest (lowest) values, best first.
    Sampling more points can only raise ``vbm`` and lower ``cbm`` and ``direct``.
    """

    direct: np.ndarray
    vbm: np.ndarray
    cbm: np.ndarray
    vbm_k: np.ndarray
    cbm_k: np.ndarray

    @property
    def indirect(self) -> np.ndarray:
        """``cbm - vbm`` (nm,): negative where the bands overlap in energy."""
        return self.cbm - self.vbm


def _best(values: np.ndarray, ks: np.ndarray, new: np.ndarray, k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest of ``values`` (nm, m) and ``new`` (nm, nk), with their k-points (nm, n, dim)."""
    merged = np.concatenate([values, new], axis=1)  # (nm, m + nk)
    merged_k = np.concatenate([ks, np.broadcast_to(k, (len(new), *k.shape))], axis=1)  # (nm, m + nk, dim)
    order = np.argsort(-merged, axis=1, kind="stable")[:, :n]
    return np.take_along_axis(merged, order, 1), np.take_along_axis(merged_k, order[..., None], 1)


def band_edges(
    hamiltonian: Callable[[np.ndarray], np.ndarray],
    kpoints: np.ndarray,
    nocc: int,
    n_models: int,
    norb: int,
    *,
    n_best: int = 1,
    max_elements: int = 2**21,
) -> BandEdges:
    """:class:`BandEdges` above ``nocc`` bands of ``hamiltonian(k) -> (nm, nk, norb, norb)`` on ``kpoints`` (nk, dim).

    One batched ``eigvalsh`` per chunk of k-points (at most ``max_elements`` matrix elements,
    32 MB, at a time, so the matrices stay small and in cache); the extrema and the ``n_best``
    candidates for each are reduced across chunks. No loop over single k-points.
    """
    kpoints = np.asarray(kpoints, dtype=float)
    step = max(1, max_elements // max(1, n_models * norb * norb))
    gap_min = np.full(n_models, np.inf)
    top = np.empty((n_models, 0)), np.empty((n_models, 0, kpoints.shape[1]))  # band nocc - 1, highest first
    bottom = top  # band nocc as -E, so that the largest is the lowest energy
    for lo in range(0, len(kpoints), step):
        k = kpoints[lo : lo + step]
        e = np.linalg.eigvalsh(hamiltonian(k))  # (nm, nk_chunk, norb)
        gap_min = np.minimum(gap_min, (e[..., nocc] - e[..., nocc - 1]).min(axis=1))
        top = _best(*top, e[..., nocc - 1], k, n_best)
        bottom = _best(*bottom, -e[..., nocc], k, n_best)
    return BandEdges(gap_min, top[0][:, 0], -bottom[0][:, 0], top[1], bottom[1])


def refine_band_edges(
    hamiltonian: Callable[[np.ndarray, int], np.ndarray],
    edges: BandEdges,
    nocc: int,
    spacing: Sequence[float],
    *,
    models: Iterable[int] | None = None,
    levels: int = 4,
) -> BandEdges:
    """``edges`` with the band extrema searched between the mesh points, around each candidate k-point.

    A coarse mesh misses extrema that lie between its points: where two bands anticross, the
    lower one peaks sharply on the anticrossing line, and a metal's band overlap can read as a gap
    of tenths of an eV (an 8 x 8 x 8 mesh gives fcc Ca a +0.2 eV gap, a dense one a 0.5 eV overlap).
    Each candidate of ``edges.vbm_k`` and ``edges.cbm_k`` moves ``levels`` times to the best point
    of the 3^dim stencil around it, whose half-width starts at half the mesh ``spacing`` (reduced
    units, one per axis) and halves each time: an extremum up to one mesh step from a candidate is
    located to ``spacing / 2**(levels + 1)``. Every evaluated point also updates ``vbm``, ``cbm`` and
    ``direct``, so the result is never worse than the mesh's. ``hamiltonian(k, m) -> (nk, norb,
    norb)`` is model ``m``'s; ``models`` (default all) are the ones refined.
    """
    nm, n_best, dim = edges.vbm_k.shape
    stencil = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=dim)))  # (3^dim, dim)
    direct, vbm, cbm = edges.direct.copy(), edges.vbm.copy(), edges.cbm.copy()
    vbm_k, cbm_k = edges.vbm_k.copy(), edges.cbm_k.copy()
    band = np.repeat([nocc - 1, nocc], n_best)  # (2 n_best,): valence candidates, then conduction
    sign = np.repeat([1.0, -1.0], n_best)[:, None]  # maximise band nocc - 1, minimise band nocc
    for m in range(nm) if models is None else models:
        centres = np.concatenate([vbm_k[m], cbm_k[m]])  # (2 n_best, dim)
        half = 0.5 * np.asarray(spacing, dtype=float)
        for _ in range(levels):
            k = (centres[:, None, :] + stencil[None] * half).reshape(-1, dim)  # (2 n_best * 3^dim, dim)
            e = np.linalg.eigvalsh(hamiltonian(k, m)).reshape(2 * n_best, len(stencil), -1)  # (nc, 3^dim, norb)
            direct[m] = min(direct[m], float((e[..., nocc] - e[..., nocc - 1]).min()))
            vbm[m] = max(vbm[m], float(e[..., nocc - 1].max()))
            cbm[m] = min(cbm[m], float(e[..., nocc].min()))
            tracked = np.take_along_axis(e, band[:, None, None], axis=2)[..., 0]  # (nc, 3^dim)
            best = np.argmax(sign * tracked, axis=1)  # (nc,) the best stencil point of each centre
            centres = centres + stencil[best] * half
            half = half / 2
        vbm_k[m], cbm_k[m] = centres[:n_best], centres[n_best:]
    return BandEdges(direct, vbm, cbm, vbm_k, cbm_k)


def gaps_of(
    hamiltonian: Callable[[np.ndarray], np.ndarray],
    kpoints: np.ndarray,
    nocc: int,
    n_models: int,
    norb: int,
    *,
    max_elements: int = 2**21,
) -> tuple[np.ndarray, np.ndarray]:
    """Direct and indirect gaps (n_models,) above ``nocc`` bands of ``hamiltonian(k) -> (nm, nk, norb, norb)``
    on ``kpoints`` (:func:`band_edges`)."""
    edges = band_edges(hamiltonian, kpoints, nocc, n_models, norb, max_elements=max_elements)
    return edges.direct, edges.indirect


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
