"""Two coupled copies of a model: the doubled strong topological insulator.

E. Khalaf, H. C. Po, A. Vishwanath and H. Watanabe, Phys. Rev. X 8, 031070 (2018): two copies of a
strong TI with inversion have ``nu0 = 0`` and Z4 indicator ``z4 = 2``; their surfaces can be gapped by
perturbations that keep time reversal and inversion, which leaves an inversion-protected second-order
TI with helical hinge modes.

Construction: orbitals ``0 .. norb-1`` are the first copy and ``norb .. 2 norb - 1`` the second, at the
same positions (sites likewise, so a spinful model stays spinful with its orbital order); ``H =
diag(H_model, H_model) + coupling * (t_x x 1)``, i.e. ``coupling`` on-site between each orbital and its
twin (sign conventions: those of the parent, and ``+coupling`` on both twin elements). The coupling is
real, spin-independent and even under inversion (twins share position and parity), so time reversal and
a declared inversion (one operator per copy) are kept; it shifts the copies' bands by ``+-coupling``
(the bonding and antibonding combinations) and changes no indicator while the bulk gap stays open. It
does not gap the surfaces: two surface Dirac cones of the same helicity coupled by it are shifted apart
in energy, not gapped (the time-reversal-symmetric surface mass would be of the form ``s_z t_y``).
"""

from __future__ import annotations

import numpy as np

from td_physics.model import TightBindingModel
from td_physics.models._common import SIGMA_X, check_finite

__all__ = ["doubled_model"]

REFERENCE = "E. Khalaf, H. C. Po, A. Vishwanath and H. Watanabe, Phys. Rev. X 8, 031070 (2018)"


def doubled_model(model: TightBindingModel, coupling: float = 0.0) -> TightBindingModel:
    """Two copies of ``model`` coupled by ``coupling`` (energy units of ``model``) between twin orbitals.

    Occupied bands double; ``metadata`` keeps the parent's ``k_path`` and ``parameters`` and adds
    ``coupling``. Reference and signs in the module docstring.

    Examples
    --------
    >>> from td_physics.models import bi2se3
    >>> pair = doubled_model(bi2se3(), 0.05)
    >>> pair.norb, pair.n_occupied, pair.is_time_reversal_symmetric(), pair.inversion is not None
    (8, 4, True, True)
    """
    check_finite(coupling=coupling)
    n = model.norb
    onsite = np.kron(np.eye(2), model.onsite) + coupling * np.kron(SIGMA_X, np.eye(n))
    pair = TightBindingModel.from_hopping_matrices(
        model.lattice,
        np.concatenate([model.site_positions, model.site_positions]),
        onsite,
        {r: np.kron(np.eye(2), t) for r, t in model.hoppings.items()},
        dim_k=model.dim_k,
        spinful=model.spinful,
        labels=[f"{label}.{copy}" for copy in (1, 2) for label in model.site_labels],
        occupied=2 * model.n_occupied,
        name=f"2 x {model.name or 'model'}",
    )
    if model.inversion is not None:
        inv = model.inversion
        perm = list(inv.permutation) + [p + n for p in inv.permutation]
        pair.set_inversion(perm, list(inv.parities) * 2, inv.centre)
    pair.metadata.update(
        k_path=model.metadata.get("k_path"),
        reference=f"{REFERENCE}; copies of: {model.metadata.get('reference', model.name)}",
        units=model.metadata.get("units"),
        parameters={**model.metadata.get("parameters", {}), "coupling": coupling},
    )
    return pair
