"""Relax crystals with CHGNet and place them on a convex hull: a candidate is judged as it would sit.

* :mod:`~td_data.relax.relaxer`: :func:`relax_records` relaxes the atomic positions (and, by default, the
  cell) of many crystals at once with the universal machine-learned potential CHGNet (Deng et al., Nat.
  Mach. Intell. 5, 1031 (2023); its pretrained weights ship inside the ``chgnet`` wheel, nothing is
  downloaded) and returns, per record, the relaxed record, its energy per atom, the RMSD between the input
  and the relaxed structure (MatterGen's metric) and whether it converged.
* :mod:`~td_data.relax.idealise`: :func:`idealised` puts a relaxed crystal back on its symmetric positions
  (spglib's idealised primitive cell) before the labeller sees it.
* :mod:`~td_data.relax.hull`: :func:`energy_above_hull` places the relaxed crystals on a convex hull built
  from the same model's energies of the elements and of reference compounds.

Needs the optional extra: ``pip install 'td-data[relax]'``::

    from td_data.relax import Relaxer, energy_above_hull, relax_records
"""

from __future__ import annotations

from td_data.relax.hull import PROTOTYPES, HullResult, elemental_prototypes, energy_above_hull
from td_data.relax.idealise import idealised
from td_data.relax.relaxer import (
    MAX_ATOMIC_NUMBER,
    MIN_ENERGY_PER_ATOM,
    OPTIMIZERS,
    BfgsSettings,
    FireSettings,
    Relaxer,
    RelaxResult,
    relax_records,
    with_rmsd,
)

__all__ = [
    "Relaxer",
    "RelaxResult",
    "BfgsSettings",
    "FireSettings",
    "relax_records",
    "with_rmsd",
    "idealised",
    "energy_above_hull",
    "HullResult",
    "elemental_prototypes",
    "PROTOTYPES",
    "MAX_ATOMIC_NUMBER",
    "MIN_ENERGY_PER_ATOM",
    "OPTIMIZERS",
]
