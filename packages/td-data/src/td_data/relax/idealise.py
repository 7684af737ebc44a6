"""Relaxed crystals back on their symmetric positions before they are labelled.

A relaxation with a machine-learned potential leaves float32 noise on symmetric sites (a fractional
coordinate of 0.99999 for 0). The tight-binding labeller does not see the symmetry through that noise and
labels such a cell hundreds of times slower (no irreducible k-points, no parity shortcut), with the same
answer; :func:`idealised` puts the crystal in spglib's idealised primitive cell first.

>>> import numpy as np
>>> from td_data import CrystalRecord
>>> a = 5.43
>>> fcc = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
>>> noisy = CrystalRecord(fcc, [[0.0, 0.0, 0.0], [0.25, 0.25, 0.2500003]], ["Si", "Si"], id="si")
>>> clean = idealised(noisy, symprec=1e-3)
>>> clean.num_atoms, clean.id, round(float(abs(np.linalg.det(clean.lattice))), 3)
(2, 'si', 40.026)
"""

from __future__ import annotations

import warnings

import numpy as np

from td_data.exceptions import TDDataError
from td_data.record import CrystalRecord

__all__ = ["idealised"]


def idealised(record: CrystalRecord, symprec: float = 1e-3) -> CrystalRecord:
    """``record`` in spglib's idealised primitive cell at ``symprec`` (Angstrom), with its id and labels.

    The record comes back unchanged when spglib finds no cell, when the idealised cell would hold another
    number of atoms (a supercell the caller chose, or a tolerance that merges sites), or when a 2D sheet
    (``labels["dimensionality"] == 2``) would lose its vacuum direction as the third lattice vector (the
    labeller finds the vacuum along it). ``symprec`` must be a positive number (:class:`TDDataError`)."""
    if isinstance(symprec, bool) or not isinstance(symprec, (int, float)) or not symprec > 0:
        raise TDDataError(f"symprec must be a positive number of Angstrom, got {symprec!r}")
    import spglib

    cell = (record.lattice, record.frac_coords, record.atomic_numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+: OLD_ERROR_HANDLING notice
        try:
            found = spglib.standardize_cell(cell, to_primitive=True, symprec=float(symprec))
        except Exception:  # noqa: BLE001 - spglib >= 2.5 raises where older versions returned None
            found = None
    if found is None or len(found[2]) != record.num_atoms:
        return record
    lattice, frac, numbers = found
    if int(record.labels.get("dimensionality", 3)) == 2:
        normal = np.cross(record.lattice[0], record.lattice[1])
        c = lattice[2]
        if abs(abs(float(c @ normal)) - np.linalg.norm(c) * np.linalg.norm(normal)) > 1e-6 * np.linalg.norm(normal):
            return record
    return record.replace(lattice=lattice, frac_coords=frac, atomic_numbers=numbers)
