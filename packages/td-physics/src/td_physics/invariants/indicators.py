"""Symmetry indicators of inversion-symmetric 3D insulators with time reversal: the Z4 index.

E. Khalaf, H. C. Po, A. Vishwanath and H. Watanabe, Phys. Rev. X 8, 031070 (2018): for a
time-reversal-invariant insulator with inversion (class AII, space group P-1), the indicator group
is ``Z2 x Z2 x Z2 x Z4``: the three weak indices of Fu and Kane and

    z4 = sum_K (n_K^+ - n_K^-) / 2   mod 4,

the sum over the eight TRIMs ``K``, ``n_K^+-`` the numbers of occupied **Kramers pairs** of inversion
parity ``+-1`` at ``K`` (each pair counted once; counting states ``N = 2 n`` instead, the same number is
``sum_K (N_K^+ - N_K^-) / 4``, Khalaf et al.'s Eq. for ``kappa_1``). With ``P`` occupied pairs,
``z4 = 4 P - sum_K n_K^- = -sum_K n_K^-`` (mod 4), an integer.

* ``z4`` odd: a strong topological insulator; ``z4 mod 2`` is the strong Fu-Kane index ``nu0``.
* ``z4 = 2`` with ``nu0 = 0``: not a strong TI; with vanishing weak indices an inversion-protected
  second-order TI with helical hinge modes, for example two copies of a strong TI whose surfaces a
  symmetric coupling gaps (:func:`~td_physics.models.doubled_model` builds the two copies).
* ``z4 = 0``: no indicated topology (which does not prove the insulator trivial).

The parities are those of :func:`td_physics.invariants.parity.batched_parity_counts` (the Fu-Kane
method's), for many models with the same inversion operator at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from td_physics.exceptions import ModelDefinitionError, OccupationError, SymmetryError
from td_physics.invariants._core import InvariantResult, resolve_occupied
from td_physics.invariants.parity import (
    batched_parity_counts,
    deltas_from_counts,
    detect_inversion,
    fu_kane_indices,
    trim_points,
)
from td_physics.inversion import InversionSymmetry
from td_physics.model import TightBindingModel, stacked_hamiltonian

__all__ = ["z4_indicator", "z4_batch"]


def z4_batch(models: Sequence[TightBindingModel], nocc: int, inversion: InversionSymmetry) -> dict[str, np.ndarray]:
    """``z4`` of many 3D models with the same orbitals and inversion operator, one batched solve.

    Returns ``z4`` (m,) in 0..3, ``pairs_minus`` (m, 8) (odd occupied Kramers pairs at each TRIM of
    :func:`~td_physics.invariants.parity.trim_points`), ``fu_kane`` (m, 4) (``nu0; nu1 nu2 nu3`` from the
    same parities) and ``min_gap`` (m,) (smallest direct gap at the TRIMs).
    """
    if models[0].dim_k != 3:
        raise ModelDefinitionError(f"the Z4 indicator is for 3D models, got dim_k={models[0].dim_k}")
    if nocc % 2:
        raise OccupationError(f"the Z4 indicator counts Kramers pairs; need an even number of bands, got {nocc}")
    trims = trim_points(3)
    n_minus, gaps = batched_parity_counts(stacked_hamiltonian(models, trims), trims, inversion, nocc)
    pairs_minus = n_minus // 2  # (m, 8)
    deltas = deltas_from_counts(n_minus)
    return {
        "z4": np.mod(-pairs_minus.sum(axis=1), 4),
        "pairs_minus": pairs_minus,
        "fu_kane": np.array([fu_kane_indices(d, trims) for d in deltas], dtype=int).reshape(len(models), 4),
        "min_gap": gaps,
    }


def z4_indicator(
    model: TightBindingModel, occupied: int | None = None, inversion: InversionSymmetry | None = None
) -> InvariantResult:
    """The Z4 symmetry indicator (0..3) of a time-reversal-invariant 3D insulator with inversion.

    ``z4 = sum_K (n_K^+ - n_K^-) / 2 mod 4`` over the eight TRIMs, ``n_K^+-`` counting occupied Kramers
    pairs (Khalaf, Po, Vishwanath and Watanabe, Phys. Rev. X 8, 031070 (2018); conventions in the module
    docstring). Uses ``inversion``, else the model's declared operator, else
    :func:`~td_physics.invariants.detect_inversion`. ``details``: the odd and even pairs at each TRIM, the
    TRIMs and the Fu-Kane indices ``(nu0, nu1, nu2, nu3)`` of the same parities (``z4 mod 2 == nu0``).

    Examples
    --------
    >>> from td_physics.models import bi2se3
    >>> z4_indicator(bi2se3()).value, z4_indicator(bi2se3(M=-0.28)).value
    (3, 0)
    """
    nocc = resolve_occupied(model, occupied)
    if not model.is_time_reversal_symmetric():
        raise SymmetryError("the Z4 indicator counts Kramers pairs and needs time reversal; this model breaks it")
    op = inversion or model.inversion or detect_inversion(model)
    if op is None:
        raise SymmetryError("the Z4 indicator needs inversion symmetry; none was declared or detected")
    res = z4_batch([model], nocc, op)
    minus = res["pairs_minus"][0]
    return InvariantResult(
        value=int(res["z4"][0]),
        converged=bool(res["min_gap"][0] > 1e-8),
        min_gap=float(res["min_gap"][0]),
        mesh=(8,),
        method="z4-symmetry-indicator",
        details={
            "pairs_minus": minus.tolist(),
            "pairs_plus": (nocc // 2 - minus).tolist(),
            "trims": trim_points(3).tolist(),
            "fu_kane": tuple(int(x) for x in res["fu_kane"][0]),
        },
    )
