"""LDA exchange-correlation: Kohn-Sham exchange with the MacDonald-Vosko relativistic correction, VWN5 correlation."""

from __future__ import annotations

import math

import numpy as np

from td_physics.atomic.constants import SPEED_OF_LIGHT

__all__ = ["lda_xc"]

# VWN5 paramagnetic parameters (Hartree): A, x0, b, c
_VWN_A = 0.0310907
_VWN_X0 = -0.10498
_VWN_B = 3.72744
_VWN_C = 12.9352


def lda_xc(n: np.ndarray, relativistic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """LDA exchange-correlation energy per electron and potential (Hartree), spin-unpolarised.

    Slater exchange (``alpha = 2/3``) and VWN5 correlation; with ``relativistic=True`` the
    exchange carries the MacDonald-Vosko factor (``c = SPEED_OF_LIGHT``).

    Parameters
    ----------
    n:
        Electron density (bohr^-3); values ``<= 1e-30`` give zero.

    Returns
    -------
    eps_xc, v_xc:
        Arrays of the shape of ``n``.
    """
    n = np.asarray(n, dtype=float)
    eps = np.zeros_like(n)
    v = np.zeros_like(n)
    mask = n > 1e-30
    d = n[mask]
    kf = np.cbrt(3.0 * np.pi**2 * d)
    ex = -0.75 / np.pi * kf
    vx = -kf / np.pi
    if relativistic:
        phi_e, phi_v = _macdonald_vosko(kf / SPEED_OF_LIGHT)
        ex = ex * phi_e
        vx = vx * phi_v
    rs = np.cbrt(3.0 / (4.0 * np.pi * d))
    ec, vc = _vwn5(rs)
    eps[mask] = ex + ec
    v[mask] = vx + vc
    return eps, v


def _macdonald_vosko(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MacDonald-Vosko factors of the exchange energy density and potential at ``beta = k_F / c``."""
    beta = np.asarray(beta, dtype=float)
    small = beta < 1e-2
    b = np.where(small, 1.0, beta)
    u_full = (b * np.sqrt(1.0 + b * b) - np.arcsinh(b)) / (b * b)
    u_series = beta * (2.0 / 3.0 - beta**2 / 5.0 + 3.0 * beta**4 / 28.0)
    u = np.where(small, u_series, u_full)
    phi_e = 1.0 - 1.5 * u * u
    ratio_full = np.arcsinh(b) / (b * np.sqrt(1.0 + b * b))
    ratio_series = 1.0 - 2.0 / 3.0 * beta**2 + 8.0 / 15.0 * beta**4
    ratio = np.where(small, ratio_series, ratio_full)
    phi_v = -0.5 + 1.5 * ratio
    return phi_e, phi_v


def _vwn5(rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """VWN5 paramagnetic correlation energy per electron and potential (Hartree)."""
    A, x0, b, c = _VWN_A, _VWN_X0, _VWN_B, _VWN_C
    q = math.sqrt(4.0 * c - b * b)
    xx0 = x0 * x0 + b * x0 + c
    x = np.sqrt(rs)
    X = x * x + b * x + c
    at = np.arctan(q / (2.0 * x + b))
    ec = A * (
        np.log(x * x / X)
        + 2.0 * b / q * at
        - b * x0 / xx0 * (np.log((x - x0) ** 2 / X) + 2.0 * (b + 2.0 * x0) / q * at)
    )
    # d(ec)/dx, using (2x + b)^2 + q^2 = 4 X
    dX = 2.0 * x + b
    dec = A * (2.0 / x - dX / X - b / X - b * x0 / xx0 * (2.0 / (x - x0) - dX / X - (b + 2.0 * x0) / X))
    vc = ec - x * dec / 6.0
    return ec, vc
