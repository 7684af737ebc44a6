"""Open boundaries: finite flakes, ribbons and supercells cut from a periodic tight-binding model.

A piece of ``n_0 x n_1 x ...`` cells (``repeats``, one count per periodic direction): cell ``c``
(integers ``0 <= c_a < n_a``) holds a copy of every orbital of the model, and orbital ``o`` of cell
``c`` is orbital ``flat(c) * norb + o`` of the piece, ``flat`` the row-major (C-order) index of
``c`` in the grid. Each bond of the model, ``<i, cell c | H | j, cell c + R> = (T_R)_ij``, is kept

* along an *open* direction only when ``c + R`` lies inside the piece (bonds that leave it are cut:
  hard-wall boundaries, no relaxation of the edge);
* along a direction that stays *periodic* always, wrapping ``c + R`` back into the piece and becoming
  a hopping of the larger cell with lattice vector ``R' = floor((c + R) / n)``.

:func:`flake` opens every direction (a finite system: a sparse Hamiltonian, no k); :func:`tile`
opens some (a ribbon or slab, again a :class:`~td_physics.TightBindingModel`) or none (a supercell
of ``n_0 x n_1 x ...`` cells, which folds the bands and leaves every invariant of the occupied bands
unchanged); :func:`ribbon` is :func:`tile` open along one direction. A spinful model stays spinful:
site ``s`` of cell ``c`` becomes site ``flat(c) * nsite + s``, its two spin orbitals consecutive as
in the parent.

The sparse matrices are built from index arrays over all cells at once; the only Python loop runs
over the model's lattice vectors ``R``.

Examples
--------
>>> import numpy as np
>>> from td_physics.models import qwz
>>> chain = ribbon(qwz(-1.0), axis=1, n_cells=3)
>>> chain.dim_k, chain.norb, chain.n_occupied
(1, 6, 3)
>>> piece = flake(qwz(-1.0), (3, 3))
>>> piece.hamiltonian.shape, piece.n_electrons
((18, 18), 9)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from td_physics.exceptions import ModelDefinitionError
from td_physics.model import TightBindingModel, stacked_arrays

__all__ = ["FiniteSystem", "flake", "tile", "ribbon"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # arrays: compare by identity
class FiniteSystem:
    """A finite piece of a periodic model with open boundaries in every direction.

    Attributes
    ----------
    hamiltonian:
        (N, N) hermitian ``scipy.sparse.csr_matrix`` (eV), ``N = norb * prod(repeats)``.
    positions:
        (N, dim_r) Cartesian positions of the orbitals (Angstrom, or the model's length unit).
    cells:
        (N, dim_k) integer cell of each orbital, ``0 <= cells[:, a] < repeats[a]``.
    orbitals:
        (N,) the orbital of the parent model each orbital copies.
    repeats:
        Cells along each periodic direction of the parent.
    electrons_per_cell:
        The parent's occupied bands: the filling that keeps every cell neutral.
    """

    hamiltonian: sp.csr_matrix
    positions: np.ndarray
    cells: np.ndarray
    orbitals: np.ndarray
    repeats: tuple[int, ...]
    electrons_per_cell: int

    @property
    def norb(self) -> int:
        """Number of orbitals of the piece."""
        return self.hamiltonian.shape[0]

    @property
    def n_electrons(self) -> int:
        """Electrons of the neutral piece: ``electrons_per_cell`` times the number of cells."""
        return self.electrons_per_cell * int(np.prod(self.repeats))

    def dense(self) -> np.ndarray:
        """The Hamiltonian as a dense (N, N) complex array."""
        return self.hamiltonian.toarray()

    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """All energies (N,) ascending and eigenvectors (N, N) (columns), by a dense ``eigh``."""
        return np.linalg.eigh(self.dense())


def _check_repeats(model: TightBindingModel, repeats: Sequence[int]) -> tuple[int, ...]:
    reps = tuple(repeats)
    if len(reps) != model.dim_k or any(
        isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in reps
    ):
        raise ModelDefinitionError(
            f"repeats must be {model.dim_k} positive integers (one per periodic direction), got {repeats!r}"
        )
    return tuple(int(n) for n in reps)


def _check_axes(model: TightBindingModel, axes: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(a) for a in axes)
    if any(not 0 <= a < model.dim_k for a in out) or len(set(out)) != len(out):
        raise ModelDefinitionError(
            f"open axes must be distinct periodic directions in 0..{model.dim_k - 1}, got {tuple(axes)!r}"
        )
    return out


def _tiled_blocks(
    model: TightBindingModel, repeats: tuple[int, ...], open_axes: tuple[int, ...]
) -> tuple[np.ndarray, sp.csr_matrix, dict[tuple[int, ...], sp.csr_matrix]]:
    """The grid of cells (ncell, dim_k), the block-diagonal on-site matrix and the hoppings ``M_R'`` of the piece.

    ``H = H0 + sum_R' [M_R' exp(2 pi i k'.R') + h.c.]`` with ``R'`` over the larger cells; along the
    ``open_axes`` every ``R'`` component is 0.
    """
    reps = np.array(repeats)
    grid = np.indices(repeats).reshape(len(repeats), -1).T  # (ncell, dim_k), C order
    ncell, norb = len(grid), model.norb
    n = ncell * norb
    r_vectors, t_matrices, h0 = stacked_arrays([model])
    onsite = sp.kron(sp.identity(ncell, format="csr"), sp.csr_matrix(h0[0]), format="csr")
    open_mask = np.zeros(model.dim_k, dtype=bool)
    open_mask[list(open_axes)] = True
    parts: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    source = np.arange(ncell)
    for r_vec, t_mat in zip(r_vectors, t_matrices[0]):  # loop over the model's R vectors, not over cells
        ii, jj = np.nonzero(t_mat)
        if not len(ii):
            continue
        target = grid + r_vec  # (ncell, dim_k)
        wrap = np.floor_divide(target, reps)  # (ncell, dim_k): the larger cell c + R falls in
        keep = ~np.any(wrap[:, open_mask] != 0, axis=1)
        local = target[keep] - wrap[keep] * reps
        flat_target = np.ravel_multi_index(tuple(local.T), repeats)  # (nkeep,)
        rows = (source[keep][:, None] * norb + ii[None, :]).ravel()  # (nkeep * nnz,)
        cols = (flat_target[:, None] * norb + jj[None, :]).ravel()
        vals = np.broadcast_to(t_mat[ii, jj], (len(flat_target), len(ii))).ravel()
        owner = np.repeat(np.arange(len(flat_target)), len(ii))
        kept_wrap = wrap[keep]
        for w in np.unique(kept_wrap, axis=0):  # at most 3^dim_k larger-cell vectors
            sel = np.all(kept_wrap[owner] == w, axis=1)
            parts.setdefault(tuple(int(x) for x in w), []).append((rows[sel], cols[sel], vals[sel]))
    blocks = {}
    for key, chunks in parts.items():
        rows = np.concatenate([c[0] for c in chunks])
        cols = np.concatenate([c[1] for c in chunks])
        vals = np.concatenate([c[2] for c in chunks])
        blocks[key] = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()  # duplicates are summed
    return grid, onsite, blocks


def flake(model: TightBindingModel, repeats: Sequence[int]) -> FiniteSystem:
    """A finite piece of ``repeats`` cells with open boundaries along every periodic direction.

    Bonds that leave the piece are cut (module docstring). ``repeats`` has one positive count per
    periodic direction of ``model``; the Hamiltonian is sparse, ``norb * prod(repeats)`` square.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.models import qwz
    >>> piece = flake(qwz(-1.0), (4, 4))
    >>> bool(np.allclose(piece.dense(), piece.dense().conj().T))
    True
    """
    reps = _check_repeats(model, repeats)
    grid, onsite, blocks = _tiled_blocks(model, reps, tuple(range(model.dim_k)))
    hop = blocks.get((0,) * model.dim_k, sp.csr_matrix(onsite.shape, dtype=complex))
    h = (onsite + hop + hop.conj().T).tocsr()
    ncell, norb = len(grid), model.norb
    cells = np.repeat(grid, norb, axis=0)  # (N, dim_k)
    orbitals = np.tile(np.arange(norb), ncell)
    frac = model.positions[orbitals].copy()  # (N, dim_r) reduced
    frac[:, : model.dim_k] += cells
    logger.debug("flake of %s cells of %s: %d orbitals", reps, model.name or "model", h.shape[0])
    return FiniteSystem(h, frac @ model.lattice, cells, orbitals, reps, model.n_occupied)


def tile(model: TightBindingModel, repeats: Sequence[int], open_axes: Sequence[int] = ()) -> TightBindingModel:
    """The model on a cell of ``repeats`` cells, open along ``open_axes`` and periodic along the rest.

    With no open axis this is a supercell (same bands, folded). Each open axis stops being periodic:
    the result has ``dim_k - len(open_axes)`` periodic directions, listed first in the original order,
    followed by the open ones (lattice rows scaled by their counts) and the parent's non-periodic rows.
    At least one axis must stay periodic (use :func:`flake` to open them all). Occupied bands scale with
    the number of cells. ``metadata["site_cells"]`` holds the parent cell (one integer per periodic
    direction of the parent) of every site.

    Examples
    --------
    >>> import numpy as np
    >>> from td_physics.models import qwz
    >>> big = tile(qwz(-1.0), (2, 1))
    >>> small = qwz(-1.0).eigvalsh([[0.0, 0.3], [0.5, 0.3]]).ravel()
    >>> bool(np.allclose(np.sort(small), big.eigvalsh([0.0, 0.3])[0]))
    True
    """
    reps = _check_repeats(model, repeats)
    opened = _check_axes(model, open_axes)
    periodic = [a for a in range(model.dim_k) if a not in opened]
    if not periodic:
        raise ModelDefinitionError(
            f"tile keeps at least one periodic direction; open_axes={opened} opens all {model.dim_k}: use flake"
        )
    grid, onsite, blocks = _tiled_blocks(model, reps, opened)
    order = periodic + sorted(opened) + list(range(model.dim_k, model.dim_r))  # new lattice rows from old ones
    scale = np.ones(model.dim_r)
    scale[: model.dim_k] = reps
    lattice = (model.lattice * scale[:, None])[order]
    nsite = len(model.site_positions)
    sites = np.repeat(grid, nsite, axis=0)  # (ncell * nsite, dim_k)
    frac = np.tile(model.site_positions, (len(grid), 1))  # (ncell * nsite, dim_r) reduced, old cell
    frac[:, : model.dim_k] += sites
    new_frac = (frac / scale)[:, order]  # reduced in the new lattice
    hoppings = {tuple(key[a] for a in periodic): m.toarray() for key, m in blocks.items()}
    labels = [f"{label}@{tuple(int(x) for x in c)}" for c in grid for label in model.site_labels]
    occupied = model.n_occupied * len(grid)
    result = TightBindingModel.from_hopping_matrices(
        lattice,
        new_frac,
        onsite.toarray(),
        hoppings,
        dim_k=len(periodic),
        spinful=model.spinful,
        labels=labels,
        occupied=occupied,
        name=f"{model.name or 'model'} x{reps}" + (f" open {opened}" if opened else ""),
    )
    result.metadata.update(
        parent=model.name,
        repeats=list(reps),
        open_axes=list(opened),
        site_cells=sites.tolist(),
    )
    return result


def ribbon(model: TightBindingModel, axis: int, n_cells: int) -> TightBindingModel:
    """A ribbon (2D parent) or slab (3D parent): ``n_cells`` cells along the open ``axis``.

    The other periodic directions keep one cell each and stay periodic; ``tile`` with
    ``repeats[axis] = n_cells`` and ``open_axes=(axis,)``.
    """
    reps = [1] * model.dim_k
    _check_axes(model, (axis,))
    reps[axis] = n_cells
    return tile(model, reps, (axis,))
