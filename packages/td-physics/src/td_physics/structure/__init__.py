"""Tight-binding models of real crystal structures from universal, sourced parameter tables.

The labeller of DESIGN.md ("Physics labels for real structures: honest limits"): a spinful s/p
Slater-Koster model with Harrison-type distance scaling, built for each of a small ensemble of
equally defensible :class:`Variant` s; the consensus of their invariants is the label.

>>> import numpy as np
>>> from td_physics.structure import Variant, tight_binding_from_structure
>>> lat = 0.5 * 5.431 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
>>> si = tight_binding_from_structure(lat, [[0, 0, 0], [0.25, 0.25, 0.25]], ["Si", "Si"],
...                                   Variant(spin_orbit=False))
>>> si.metadata["n_electrons"], si.is_time_reversal_symmetric()
(8, True)
"""

from td_physics.exceptions import StructureError, UnsupportedElementError
from td_physics.options import TightBindingOptions
from td_physics.structure.builder import neighbour_list, tight_binding_from_structure, tight_binding_variants
from td_physics.structure.parameters import DEFAULT_VARIANTS, Variant, load_table, supported_elements
from td_physics.structure.reference import reference_materials, reference_structure, supercell
from td_physics.structure.slater_koster import slater_koster_blocks, spin_orbit_matrix
from td_physics.structure.symmetry import inversion_operator

__all__ = [
    "Variant",
    "DEFAULT_VARIANTS",
    "TightBindingOptions",
    "tight_binding_from_structure",
    "tight_binding_variants",
    "reference_materials",
    "reference_structure",
    "supercell",
    "inversion_operator",
    "neighbour_list",
    "slater_koster_blocks",
    "spin_orbit_matrix",
    "load_table",
    "supported_elements",
    "UnsupportedElementError",
    "StructureError",
]
