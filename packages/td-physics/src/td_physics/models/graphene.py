"""Nearest-neighbour graphene (spinless); Castro Neto et al., Rev. Mod. Phys. 81, 109 (2009).

Sign convention: ``t`` is the magnitude of the nearest-neighbour hopping; every matrix element
``<A | H | B>`` between nearest neighbours is ``-t`` (eV). Lattice constant ``a`` in Angstrom
(2.46 A); geometry of :mod:`td_physics.models.honeycomb`. The Dirac points K = (2/3, 1/3) and
K' = (1/3, 2/3) (reduced) sit at E = 0 and the bands at Gamma are ``-3t`` and ``+3t``.
"""

from __future__ import annotations

from td_physics.model import TightBindingModel
from td_physics.models._common import HoppingBuilder, check_finite, record_factory
from td_physics.models.honeycomb import HONEYCOMB_K_PATH, honeycomb_geometry

__all__ = ["graphene"]

REFERENCE = "A. H. Castro Neto et al., Rev. Mod. Phys. 81, 109 (2009)"


def graphene(t: float = 2.7, a: float = 2.46) -> TightBindingModel:
    """Spinless graphene with nearest-neighbour hopping ``-t`` (eV) and lattice constant ``a`` (A).

    Reference: Castro Neto et al., Rev. Mod. Phys. 81, 109 (2009).

    Examples
    --------
    >>> import numpy as np
    >>> model = graphene()
    >>> np.round(model.eigvalsh([0.0, 0.0]), 6)  # Gamma: -3t, +3t
    array([[-8.1,  8.1]])
    >>> bool(np.allclose(model.eigvalsh([2 / 3, 1 / 3]), 0.0))  # Dirac point K
    True
    """
    check_finite(t=t, a=a)
    geo = honeycomb_geometry(a)
    builder = HoppingBuilder(norb=2, dim_k=2)
    for hop in geo.nearest:
        builder.hop_block(-t, hop.i, hop.j, hop.r)
    model = builder.build(geo.lattice, geo.sites, labels=["C_A", "C_B"], occupied=1, name="graphene")
    model.set_inversion([1, 0], [1, 1], geo.inversion_centre)
    return record_factory(model, HONEYCOMB_K_PATH, REFERENCE, "eV", {"t": t, "a": a})
