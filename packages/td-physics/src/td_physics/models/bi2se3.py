"""The four-band model of Bi2Se3 (H. Zhang et al., Nature Phys. 5, 438 (2009)), on a lattice.

Zhang's continuum Hamiltonian in the basis ``(|P1+ up>, |P2- up>, |P1+ down>, |P2- down>)``::

    H(k) = eps(k) + [[ M(k),    A1 kz,   0,       A2 k- ],
                     [ A1 kz,  -M(k),    A2 k-,   0     ],
                     [ 0,       A2 k+,   M(k),   -A1 kz ],
                     [ A2 k+,   0,      -A1 kz,  -M(k)  ]]
    eps(k) = C + D1 kz^2 + D2 k_perp^2,   M(k) = M - B1 kz^2 - B2 k_perp^2,   k+- = kx +- i ky

with M, B1, B2 > 0 the inverted (topological) regime. Parameters (Zhang et al. 2009, Table 1,
Bi2Se3): A1 = 2.2 eV A, A2 = 4.1 eV A, B1 = 10 eV A^2, B2 = 56.6 eV A^2, C = -0.0068 eV,
D1 = 1.3 eV A^2, D2 = 19.6 eV A^2, M = 0.28 eV.

Regularisation (our choice): a simple orthorhombic (here tetragonal) lattice with in-plane
constant ``a = 4.14 A`` and ``c = 9.55 A`` (one quintuple layer) along z, both orbitals at the
origin, and ``k_i -> sin(k_i a_i) / a_i``, ``k_i^2 -> 2 (1 - cos(k_i a_i)) / a_i^2``. With the
default parameters ``M(k)`` is positive only at Gamma among the eight TRIM
(``M - 4 B2 / a^2 < 0`` at X, ``M - 4 B1 / c^2 = -0.16 eV`` at Z), so the band inversion is at
Gamma only: a strong topological insulator (1;000). The in-plane C3 symmetry of the crystal is
lost (irrelevant for the invariants).

Sign conventions: Zhang's matrix above (no extra phases were needed: it satisfies
``Theta H(k) Theta^-1 = H(-k)`` with ``Theta = i s_y K`` acting on spin). Our orbital order is the
spinful one of :class:`TightBindingModel`: site 0 = P1+ (parity +1), site 1 = P2- (parity -1),
orbitals ``(P1 up, P1 down, P2 up, P2 down)``; inversion ``P = diag(+1, +1, -1, -1)`` is declared.
"""

from __future__ import annotations

import numpy as np

from td_physics.exceptions import ModelDefinitionError
from td_physics.model import TightBindingModel
from td_physics.models._common import HoppingBuilder, check_finite, k_path, permute_basis, record_factory

__all__ = ["bi2se3"]

REFERENCE = "H. Zhang et al., Nature Phys. 5, 438 (2009)"
_K_PATH = k_path(
    [(0, 0, 0), (0.5, 0, 0), (0.5, 0.5, 0), (0, 0, 0), (0, 0, 0.5), (0.5, 0, 0.5)], ["Γ", "X", "M", "Γ", "Z", "R"]
)

# Zhang basis (P1+ up, P2- up, P1+ down, P2- down) -> ours (P1 up, P1 down, P2 up, P2 down)
_ORDER = (0, 2, 1, 3)

# 4x4 matrices of Zhang's basis multiplying M(k), A1 kz, A2 kx and A2 ky.
_GAMMA_M = np.diag([1.0, -1.0, 1.0, -1.0]).astype(complex)
_GAMMA_Z = np.zeros((4, 4), dtype=complex)
_GAMMA_Z[0, 1] = _GAMMA_Z[1, 0] = 1.0
_GAMMA_Z[2, 3] = _GAMMA_Z[3, 2] = -1.0
_GAMMA_X = np.zeros((4, 4), dtype=complex)
_GAMMA_X[0, 3] = _GAMMA_X[1, 2] = _GAMMA_X[3, 0] = _GAMMA_X[2, 1] = 1.0
_GAMMA_Y = np.zeros((4, 4), dtype=complex)
_GAMMA_Y[0, 3] = _GAMMA_Y[1, 2] = -1j  # k- = kx - i ky above the diagonal
_GAMMA_Y[3, 0] = _GAMMA_Y[2, 1] = 1j


def bi2se3(
    A1: float = 2.2,
    A2: float = 4.1,
    B1: float = 10.0,
    B2: float = 56.6,
    C: float = -0.0068,
    D1: float = 1.3,
    D2: float = 19.6,
    M: float = 0.28,
    a: float = 4.14,
    c: float = 9.55,
) -> TightBindingModel:
    """Zhang's four-band Bi2Se3 model on a tetragonal lattice (eV, Angstrom), two occupied bands.

    Reference: H. Zhang et al., Nature Phys. 5, 438 (2009). Regularisation and signs in the module
    docstring.

    Examples
    --------
    >>> import numpy as np
    >>> np.round(bi2se3().eigvalsh([0.0, 0.0, 0.0]), 4)
    array([[-0.2868, -0.2868,  0.2732,  0.2732]])
    """
    check_finite(A1=A1, A2=A2, B1=B1, B2=B2, C=C, D1=D1, D2=D2, M=M, a=a, c=c)
    if a <= 0 or c <= 0:
        raise ModelDefinitionError(f"lattice constants a and c must be positive (Angstrom), got a={a}, c={c}")
    eye = np.eye(4, dtype=complex)
    builder = HoppingBuilder(norb=4, dim_k=3)
    # k_perp^2 -> sum_{x,y} 2 (1 - cos) / a^2 and kz^2 -> 2 (1 - cos) / c^2
    const = (C + 2 * D1 / c**2 + 4 * D2 / a**2) * eye + (M - 2 * B1 / c**2 - 4 * B2 / a**2) * _GAMMA_M
    builder.onsite += permute_basis(const, _ORDER)
    terms = [
        ("cos", (1, 0, 0), -2 * D2 / a**2 * eye + 2 * B2 / a**2 * _GAMMA_M),
        ("cos", (0, 1, 0), -2 * D2 / a**2 * eye + 2 * B2 / a**2 * _GAMMA_M),
        ("cos", (0, 0, 1), -2 * D1 / c**2 * eye + 2 * B1 / c**2 * _GAMMA_M),
        ("sin", (1, 0, 0), A2 / a * _GAMMA_X),
        ("sin", (0, 1, 0), A2 / a * _GAMMA_Y),
        ("sin", (0, 0, 1), A1 / c * _GAMMA_Z),
    ]
    for kind, r, mat in terms:
        builder.trig(kind, r, permute_basis(mat, _ORDER))
    lattice = np.diag([a, a, c])
    model = builder.build(lattice, np.zeros((2, 3)), spinful=True, labels=["P1+", "P2-"], occupied=2, name="Bi2Se3")
    model.set_inversion([0, 1, 2, 3], [1, 1, -1, -1], [0.0, 0.0, 0.0])
    return record_factory(
        model,
        _K_PATH,
        REFERENCE,
        "eV",
        {"A1": A1, "A2": A2, "B1": B1, "B2": B2, "C": C, "D1": D1, "D2": D2, "M": M, "a": a, "c": c},
    )
