"""Spatial inversion of a structure-built model, found with spglib.

An operation ``x -> -x + t`` (reduced coordinates, rotation ``-1``) maps atom ``i`` onto the atom
``j`` with ``x_j = -x_i + t`` up to a lattice vector. On the orbitals it acts as that permutation
of atoms (same local orbital, same spin) times the intrinsic parity, +1 for s and -1 for each of
``px, py, pz``; the centre is ``t / 2``. :meth:`TightBindingModel.build_inversion` then checks
``H(-k) = P H(k) P^dagger`` at random k-points.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from td_physics.exceptions import StructureError
from td_physics.inversion import POSITION_TOLERANCE, InversionSymmetry
from td_physics.model import TightBindingModel
from td_physics.structure.parameters import element_symbol, load_table

__all__ = ["inversion_operator"]

logger = logging.getLogger(__name__)


def _atomic_number(value: Any) -> int:
    return int(load_table("valence_electrons")["elements"][element_symbol(value)]["Z"])


def inversion_operator(
    model: TightBindingModel,
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Sequence[Any],
    symprec: float = 1e-3,
) -> InversionSymmetry | None:
    """The inversion operator of a model built by :func:`tight_binding_from_structure`, or ``None``.

    ``lattice``, ``frac_coords`` and ``atomic_numbers`` describe the structure the model was built
    from (numbers or symbols). Uses ``model.metadata["orbital_atom"]`` and ``["orbital_l"]``.
    Raises :class:`~td_physics.exceptions.SymmetryError` when the crystal has inversion but the
    Hamiltonian does not commute with it (for example antiparallel moments on partner atoms).
    A crystal that has inversion only within ``symprec`` (atoms further than
    :data:`~td_physics.inversion.POSITION_TOLERANCE` from their images, as after a relaxation or a
    strain) gets ``None``: parities need an exact symmetry, Wilson loops do not.
    """
    import spglib

    lat = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac_coords, dtype=float)
    numbers = [_atomic_number(z) for z in atomic_numbers]
    if "orbital_atom" not in model.metadata or "orbital_l" not in model.metadata:
        raise StructureError("inversion_operator needs a model from tight_binding_from_structure (orbital metadata)")
    with warnings.catch_warnings():  # spglib 2.x warns about its legacy error handling on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = spglib.get_symmetry((lat, frac, numbers), symprec=symprec)
    if dataset is None:
        return None
    site_atom = np.asarray(model.metadata["orbital_atom"])
    site_l = np.asarray(model.metadata["orbital_l"])
    natom = len(numbers)
    first_site = np.array([np.nonzero(site_atom == a)[0][0] for a in range(natom)])
    atom_pos = model.site_positions[first_site]  # (natom, 3) the positions the model uses
    for rot, trans in zip(dataset["rotations"], dataset["translations"]):
        if not np.array_equal(rot, -np.eye(3, dtype=int)):
            continue
        image = -atom_pos + trans  # (natom, 3)
        diff = image[:, None, :] - atom_pos[None, :, :]  # (natom, natom, 3)
        match = np.all(np.abs(diff - np.round(diff)) < 10 * symprec, axis=-1) & (
            np.asarray(numbers)[:, None] == np.asarray(numbers)[None, :]
        )
        if not np.all(match.sum(axis=1) == 1):
            continue
        atom_perm = np.argmax(match, axis=1)  # atom i -> atom_perm[i]
        # site k of atom a is the n-th site of that atom; it maps to the n-th site of atom_perm[a]
        local = np.array([np.sum(site_atom[:k] == site_atom[k]) for k in range(len(site_atom))])
        site_perm = first_site[atom_perm[site_atom]] + local
        perm = (2 * site_perm[:, None] + np.arange(2)[None, :]).reshape(-1)  # spin untouched
        parities = np.repeat(np.where(site_l == 1, -1, 1), 2)
        # the centre from the positions themselves: spglib's translation is symmetrised to symprec,
        # which can leave an origin-shifted crystal's inversion off by more than the operator check allows
        lattice_shift = np.round(diff[np.arange(natom), atom_perm])  # -x_i + t = x_perm(i) + n_i
        centre = np.mean(atom_pos + atom_pos[atom_perm] + lattice_shift, axis=0) / 2
        residual = 2 * centre - atom_pos - atom_pos[atom_perm] - lattice_shift
        off = float(np.abs(residual).max())
        if off > POSITION_TOLERANCE:
            # symmetric within symprec but not exactly: the Hamiltonian does not commute with the operator
            # (parities would be meaningless), so none is declared and the invariants come from Wilson loops
            logger.info(
                "the crystal has inversion within symprec=%g but its atoms are %.3g (reduced) off their images, "
                "more than %g: no inversion operator declared (symmetrise the structure to use parities)",
                symprec,
                off,
                POSITION_TOLERANCE,
            )
            return None
        return model.build_inversion(perm.tolist(), parities.tolist(), centre.tolist())
    return None
