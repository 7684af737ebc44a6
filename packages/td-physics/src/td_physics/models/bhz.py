"""The Bernevig-Hughes-Zhang (BHZ) model of a HgTe quantum well, regularised on a square lattice.

References: B. A. Bernevig, T. L. Hughes and S.-C. Zhang, Science 314, 1757 (2006); M. Konig et
al., J. Phys. Soc. Jpn. 77, 031007 (2008) (lattice regularisation and parameters); M. Konig et
al., Science 318, 766 (2007).

In the BHZ basis ``(|E1 +>, |H1 +>, |E1 ->, |H1 ->)``, ``H(k) = blockdiag(h(k), h*(-k))`` with
``h(k) = eps(k) + d(k) . sigma`` and, on a square lattice of constant ``a``
(``kx a = 2 pi k_reduced_x``)::

    d1 = A sin(kx a) / a,     d2 = -A sin(ky a) / a,
    d3 = M - B (2 / a^2) (2 - cos kx a - cos ky a),
    eps = C - D (2 / a^2) (2 - cos kx a - cos ky a)

which reduces to ``d = (A kx, -A ky, M - B k^2)``, ``eps = C - D k^2`` near Gamma.

Sign conventions: the formula above, with ``M < 0`` the normal regime when ``B < 0`` (Konig's
sign). Our orbital order is the spinful one of :class:`TightBindingModel`: site 0 = E (parity +1),
site 1 = H (parity -1), both at the origin, orbitals ``(E +, E -, H +, H -)``; the BHZ Kramers
label ``+/-`` plays the role of spin up/down, so time reversal is our ``i s_y K`` on each site.
Closed forms: levels ``C +- |M|`` (each twice) at Gamma, gap ``2 |M|`` there; the model is a
quantum spin Hall insulator iff ``0 < M a^2 / B < 8`` with ``M a^2 / B != 4`` (the gap closes at
X = (pi, 0) for ``M a^2 / B = 4`` and at M = (pi, pi) for 8), trivial for ``M a^2 / B < 0`` or ``> 8``.
"""

from __future__ import annotations

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.model import TightBindingModel
from td_physics.models._common import (
    SIGMA_0,
    SIGMA_X,
    SIGMA_Y,
    SIGMA_Z,
    SQUARE_K_PATH,
    HoppingBuilder,
    check_finite,
    permute_basis,
    record_factory,
)

__all__ = ["bhz", "hgte_quantum_well", "HGTE_PARAMETERS"]

REFERENCE = (
    "B. A. Bernevig, T. L. Hughes and S.-C. Zhang, Science 314, 1757 (2006); "
    "M. Konig et al., J. Phys. Soc. Jpn. 77, 031007 (2008)"
)

# BHZ basis (E+, H+, E-, H-) -> ours (E up, E down, H up, H down): ours[n] = bhz[_ORDER[n]]
_ORDER = (0, 2, 1, 3)

#: Konig et al., J. Phys. Soc. Jpn. 77, 031007 (2008), Table I (also Science 318, 766 (2007)):
#: thickness (nm) -> A (eV A), B (eV A^2), C (eV), D (eV A^2), M (eV). C is an energy offset, 0.
HGTE_PARAMETERS: dict[float, dict[str, float]] = {
    5.5: {"A": 3.87, "B": -48.0, "C": 0.0, "D": -30.6, "M": 0.009},
    7.0: {"A": 3.65, "B": -68.6, "C": 0.0, "D": -51.2, "M": -0.010},
}


def bhz(
    A: float = 1.0, B: float = -1.0, C: float = 0.0, D: float = 0.0, M: float = -1.0, a: float = 1.0
) -> TightBindingModel:
    """The lattice BHZ model (four bands, two occupied); eV and Angstrom for material parameters.

    ``A`` (eV A), ``B`` and ``D`` (eV A^2), ``C`` and ``M`` (eV), lattice constant ``a`` (A). The
    defaults (dimensionless) give ``M a^2 / B = 1``: a quantum spin Hall insulator. Reference:
    Bernevig, Hughes and Zhang, Science 314, 1757 (2006); signs in the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(bhz(M=-0.5).eigvalsh([0.0, 0.0]), 6)
    array([[-0.5, -0.5,  0.5,  0.5]])
    """
    check_finite(A=A, B=B, C=C, D=D, M=M, a=a)
    if a <= 0:
        raise ModelDefinitionError(f"lattice constant a must be positive (Angstrom), got {a}")
    # Terms of h(k) as (kind, R, 2x2 matrix): const, cos(k.R) or sin(k.R).
    c2 = 1.0 / a**2
    upper = [
        ("const", (0, 0), (C - 4 * D * c2) * SIGMA_0 + (M - 4 * B * c2) * SIGMA_Z),
        ("cos", (1, 0), 2 * D * c2 * SIGMA_0 + 2 * B * c2 * SIGMA_Z),
        ("cos", (0, 1), 2 * D * c2 * SIGMA_0 + 2 * B * c2 * SIGMA_Z),
        ("sin", (1, 0), (A / a) * SIGMA_X),
        ("sin", (0, 1), -(A / a) * SIGMA_Y),
    ]
    builder = HoppingBuilder(norb=4, dim_k=2)
    for kind, r, mat in upper:
        # lower block h*(-k): even terms conjugate, odd (sin) terms conjugate with a minus sign
        lower = -mat.conj() if kind == "sin" else mat.conj()
        full = permute_basis(np.block([[mat, np.zeros((2, 2))], [np.zeros((2, 2)), lower]]), _ORDER)
        if kind == "const":
            builder.onsite += full
        else:
            builder.trig(kind, r, full)
    model = builder.build(
        [[a, 0.0], [0.0, a]], [[0.0, 0.0], [0.0, 0.0]], spinful=True, labels=["E1", "H1"], occupied=2, name="BHZ"
    )
    model.set_inversion([0, 1, 2, 3], [1, 1, -1, -1], [0.0, 0.0])
    return record_factory(model, SQUARE_K_PATH, REFERENCE, "eV", {"A": A, "B": B, "C": C, "D": D, "M": M, "a": a})


def hgte_quantum_well(thickness_nm: float, a: float = 30.0) -> TightBindingModel:
    """The BHZ model of a HgTe/CdTe quantum well of the given thickness (nm), on a lattice ``a`` (A).

    Parameters are those of Konig et al., J. Phys. Soc. Jpn. 77, 031007 (2008) (see
    :data:`HGTE_PARAMETERS`), tabulated at 5.5 nm (normal, M > 0) and 7.0 nm (inverted, M < 0),
    interpolated linearly in thickness in between; outside this range a
    :class:`~td_physics.exceptions.ModelDefinitionError` is raised (no extrapolation). The linear
    interpolation crosses ``M = 0`` at about 6.21 nm, close to but not at the quoted critical
    thickness ``d_c = 6.3 nm`` (Bernevig, Hughes and Zhang 2006), so thicknesses in between are
    classified only approximately. ``a = 30 A`` is a regularisation length, not the atomic lattice
    constant (at 7 nm, ``M a^2 / B = 0.13``: the inversion happens at Gamma only, as in the
    continuum model).

    Reference: Konig et al., J. Phys. Soc. Jpn. 77, 031007 (2008); Konig et al., Science 318, 766 (2007).

    Examples
    --------
    >>> model = hgte_quantum_well(7.0)
    >>> model.metadata["parameters"]["M"]
    -0.01
    """
    check_finite(thickness_nm=thickness_nm)
    lo, hi = min(HGTE_PARAMETERS), max(HGTE_PARAMETERS)
    if not lo <= thickness_nm <= hi:
        raise ModelDefinitionError(
            f"thickness_nm must lie in the tabulated range {lo}..{hi} nm of Konig et al. (2008) "
            f"(no extrapolation), got {thickness_nm}"
        )
    ds = sorted(HGTE_PARAMETERS)
    params = {key: float(np.interp(thickness_nm, ds, [HGTE_PARAMETERS[d][key] for d in ds])) for key in "ABCDM"}
    model = bhz(a=a, **params)
    model.name = f"HgTe QW {thickness_nm:g} nm"
    model.metadata.update(
        reference=(
            "M. Konig et al., J. Phys. Soc. Jpn. 77, 031007 (2008); M. Konig et al., Science 318, 766 (2007); "
            "B. A. Bernevig, T. L. Hughes and S.-C. Zhang, Science 314, 1757 (2006)"
        ),
        thickness_nm=float(thickness_nm),
    )
    return model
