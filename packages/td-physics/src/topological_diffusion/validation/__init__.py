"""``topological_diffusion.validation``: the user guide's import path for td_physics.validation.

The same objects as :mod:`td_physics.validation`: the canonical models and the literature table
of known materials checked against their published invariants::

    from topological_diffusion.validation import validate_known_materials

    results = validate_known_materials(["graphene", "bi2se3", "hgte_qw", "weyl_semimetal"])

Shipped by td-physics as a portion of the PEP 420 namespace package ``topological_diffusion``.
"""

from td_physics.validation import *  # noqa: F403  (the same objects, by the source's __all__)
from td_physics.validation import __all__  # noqa: F401
