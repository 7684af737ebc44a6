"""Wilson loops and Chern numbers of DFT spinor states in an atom-centred (LCAO) basis.

The occupied states at each k are expressed in the Loewdin-orthonormalised Bloch basis
``S(k)^(1/2) c``. GPAW's LCAO Bloch sums are periodic in k (``S(k + G) = S(k)``) and ``S(k)^(1/2)`` is
smooth, so this is a smooth, periodic, time-reversal compatible frame: the overlaps
``M(k, k') = u(k)^dagger u(k')`` between neighbouring k-points then define a discrete connection whose
Wilson loops differ from the exact ones only by the (continuous) intra-cell dipoles of the basis.
Topological invariants do not depend on that choice: Wannier-centre flow gives the same Z2 and
link variables the same Chern number (the same argument that makes tight-binding invariants
independent of the orbital positions, DESIGN.md). The flow is read with td-physics' own largest-gap rule
(:func:`td_physics.invariants.wilson.z2_from_flow`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from td_physics.invariants._core import ordered_product
from td_physics.invariants.wilson import z2_from_flow


def loewdin_frames(coeffs: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """``(nk, nocc, 2 nao)`` orthonormal coefficient rows ``S^(1/2) c`` of spinor states (nk, nocc, 2, nao)."""
    w, v = np.linalg.eigh(overlap)  # (nk, nao), (nk, nao, nao)
    if np.any(w <= 0):
        raise np.linalg.LinAlgError(f"LCAO overlap matrix not positive definite (smallest eigenvalue {w.min():.3g})")
    half = (v * np.sqrt(w)[:, None, :]) @ np.conj(np.swapaxes(v, -1, -2))  # S^(1/2), hermitian
    # u[k, n, s, M] = sum_N S^(1/2)[M, N] c[k, n, s, N]  (S^(1/2) is hermitian: row form uses its transpose)
    u = np.einsum("kMN,knsN->knsM", half, coeffs)
    return u.reshape(u.shape[0], u.shape[1], -1)


def _unitary(m: np.ndarray) -> np.ndarray:
    u, _, vh = np.linalg.svd(m)
    return u @ vh


def position_phase(positions: np.ndarray, dk: np.ndarray) -> np.ndarray:
    """``exp(-2 pi i dk.tau_M)`` for basis functions at reduced positions ``tau`` (dim, 3) and a k-step ``dk``.

    With it the links are those of the Bloch convention with orbital positions, whose subspaces turn
    slowly with k (atoms at different sites no longer carry relative phases ``exp(2 pi i k.tau)``), so
    that coarse strings suffice; the invariants are the same either way.
    """
    return np.exp(-2j * np.pi * (np.asarray(positions) @ np.asarray(dk, dtype=float)))


def wilson_phases(frames: np.ndarray, phase: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Wannier-centre positions (sorted, in [0, 1)) of closed strings and the smallest link singular value.

    ``frames`` (nstring, npts, nocc, dim): ``npts`` points of each string, the loop closing on the first
    (periodic gauge); ``phase`` (dim,) from :func:`position_phase` for one step.
    """
    nxt = np.roll(frames, -1, axis=1)
    if phase is not None:
        nxt = nxt * phase
    links = np.conj(frames) @ np.swapaxes(nxt, -1, -2)  # (nstring, npts, nocc, nocc): <u_k|u_k+1>
    sv = np.linalg.svd(links, compute_uv=False)
    w = ordered_product(_unitary(links))
    phases = np.angle(np.linalg.eigvals(w)) / (2 * np.pi)
    return np.sort(np.mod(phases, 1.0), axis=-1), float(sv.min()) if sv.size else 1.0


@dataclass(frozen=True)
class PlaneSpec:
    """A TRIM plane: ``fixed_axis`` held at ``fixed_value``, Wilson loops along ``wilson``, pumped along ``pump``."""

    fixed_axis: int
    fixed_value: float
    wilson: int
    pump: int

    @property
    def name(self) -> str:
        return f"k{self.fixed_axis + 1}={self.fixed_value:g}"


def trim_planes() -> list[PlaneSpec]:
    """The six TRIM planes k_i = 0 and 1/2 of a 3D crystal."""
    out = []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for value in (0.0, 0.5):
            out.append(PlaneSpec(axis, value, wilson=others[1], pump=others[0]))
    return out


def plane_kpoints(plane: PlaneSpec, n_pump: int, n_string: int) -> np.ndarray:
    """(n_pump, n_string, 3) reduced k: pump over [0, 1/2], each string a full loop (endpoint excluded)."""
    pump = np.linspace(0.0, 0.5, n_pump)
    line = np.arange(n_string) / n_string
    k = np.zeros((n_pump, n_string, 3))
    k[..., plane.fixed_axis] = plane.fixed_value
    k[..., plane.pump] = pump[:, None]
    k[..., plane.wilson] = line[None, :]
    return k


@dataclass(frozen=True)
class PlaneZ2:
    plane: str
    z2: int
    min_margin: float  # smallest distance of a gap midpoint to the next line's WCC, relative to the gap
    min_link: float  # smallest singular value of a link matrix (near 0: strings too coarse or gap closing)
    wcc: np.ndarray  # (n_pump, nocc)
    margins: np.ndarray  # (n_pump - 1,) per pumping step


def plane_z2(
    plane: PlaneSpec, frames: np.ndarray, positions: np.ndarray | None = None, *, wcc: np.ndarray | None = None
) -> PlaneZ2:
    """Z2 of one TRIM plane from frames (n_pump, n_string, nocc, dim) on :func:`plane_kpoints`.

    ``positions`` (dim, 3): reduced centres of the frame's basis functions (see :func:`position_phase`).
    Pass ``wcc`` (n_pump, nocc) instead of frames when the Wannier centres are already known.
    """
    min_link = 1.0
    if wcc is None:
        phase = None
        if positions is not None:
            dk = np.zeros(3)
            dk[plane.wilson] = 1.0 / frames.shape[1]
            phase = position_phase(positions, dk)
        wcc, min_link = wilson_phases(frames, phase)
    z2, margin = z2_from_flow(wcc)
    return PlaneZ2(plane.name, int(z2), float(margin.min()) if margin.size else 1.0, min_link, wcc, margin)


def strong_weak(planes: dict[str, int]) -> tuple[tuple[int, int, int, int], bool]:
    """(nu0; nu1 nu2 nu3) from the six plane Z2s, and whether the three readings of nu0 agree."""
    nu0s = [(planes[f"k{i}=0"] + planes[f"k{i}=0.5"]) % 2 for i in (1, 2, 3)]
    return (nu0s[0], planes["k1=0.5"], planes["k2=0.5"], planes["k3=0.5"]), len(set(nu0s)) == 1


def chern_plane_kpoints(normal: int, value: float, n: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(n, n, 3) reduced k on the plane k_normal = value, and the two in-plane axes (right-handed)."""
    axes = {0: (1, 2), 1: (2, 0), 2: (0, 1)}[normal]
    line = np.arange(n) / n
    k = np.zeros((n, n, 3))
    k[..., normal] = value
    k[..., axes[0]] = line[:, None]
    k[..., axes[1]] = line[None, :]
    return k, axes


def chern_number(frames: np.ndarray, phases: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[int, float, float]:
    """Fukui-Hatsugai-Suzuki Chern number of frames (n1, n2, nocc, dim) on a periodic plane.

    ``phases``: the :func:`position_phase` of one step along each axis. Returns ``(C, largest plaquette
    phase / pi, deviation of the flux sum from the integer)``.
    """
    p1, p2 = phases if phases is not None else (None, None)

    def link(a: np.ndarray, b: np.ndarray, phase: np.ndarray | None) -> np.ndarray:
        if phase is not None:
            b = b * phase
        d = np.linalg.det(np.conj(a) @ np.swapaxes(b, -1, -2))
        mag = np.abs(d)
        return np.where(mag > 0, d / np.where(mag > 0, mag, 1.0), 1.0)

    u1 = link(frames, np.roll(frames, -1, axis=0), p1)
    u2 = link(frames, np.roll(frames, -1, axis=1), p2)
    flux = np.angle(u1 * np.roll(u2, -1, axis=0) / (np.roll(u1, -1, axis=1) * u2))
    total = flux.sum() / (2 * np.pi)
    c = int(np.rint(total))
    return c, float(np.abs(flux).max() / np.pi), float(abs(total - c))
