"""PBE(+SOC) band structure along a standard high-symmetry path (ASE's Setyawan-Curtarolo paths)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

import td_physics.dft._gpaw as _gpaw
from td_physics.dft.core import DFTInputError, DFTSettings, _check_arrays, kpoint_mesh, niggli_basis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DFTBandStructure:
    """Bands along a path; energies in eV relative to the valence-band maximum on the path."""

    distances: np.ndarray  # (nk,) 1/A along the path
    energies: np.ndarray  # (nk, nbands) eV - vbm
    labels: list[tuple[float, str]]  # (distance, name) of the special points
    path: str  # ASE path string, e.g. "GXWKGLUWLK,UX"
    n_occupied: int
    vbm: float  # eV, absolute
    spin_orbit: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "distances": self.distances.tolist(),
            "energies": self.energies.tolist(),
            "labels": [[float(x), str(n)] for x, n in self.labels],
            "path": self.path,
            "n_occupied": self.n_occupied,
            "vbm": self.vbm,
            "spin_orbit": self.spin_orbit,
        }

    def plot(self, ax: Any = None, *, window: tuple[float, float] = (-3.0, 3.0), title: str | None = None):
        """Draw the bands (valence solid, conduction dashed) on ``ax`` (a new figure if None); returns ax."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4))
        x = self.distances
        for n in range(self.energies.shape[1]):
            ax.plot(
                x,
                self.energies[:, n],
                color="C0" if n < self.n_occupied else "C3",
                lw=1.0,
                ls="-" if n < self.n_occupied else "--",
            )
        for pos, _ in self.labels:
            ax.axvline(pos, color="0.7", lw=0.5)
        ax.axhline(0.0, color="0.5", lw=0.5, ls=":")
        ax.set_xticks([p for p, _ in self.labels])
        ax.set_xticklabels(["$\\Gamma$" if n == "G" else n for _, n in self.labels])
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(*window)
        ax.set_ylabel("E - E$_{VBM}$ (eV)")
        if title:
            ax.set_title(title)
        return ax


def dft_band_structure(
    lattice: Any,
    frac_coords: Any,
    atomic_numbers: Any,
    *,
    spin_orbit: bool = True,
    settings: DFTSettings | Mapping[str, Any] | None = None,
    n_points: int = 120,
    n_bands: int = 8,
) -> DFTBandStructure:
    """Self-consistent PBE ground state, then (SOC) bands along the crystal's standard path.

    ``n_bands`` bands on each side of the gap are kept. Raises on failure (unlike :func:`dft_invariants`,
    this is a plot, not a verdict): GPAW's convergence error, or :class:`DFTInputError` for bad input.
    """
    if settings is None:
        settings = DFTSettings()
    elif not isinstance(settings, DFTSettings):
        settings = DFTSettings.from_dict(settings)
    if n_points < 2:
        raise DFTInputError(f"n_points must be >= 2, got {n_points}")
    lat, frac, z, _ = _check_arrays(lattice, frac_coords, atomic_numbers, None)
    _gpaw.import_gpaw()
    op = niggli_basis(lat)  # GPAW's grids want a reduced cell; the path is the crystal's, whatever the basis
    lat = op @ lat
    frac = np.mod(frac @ np.rint(np.linalg.inv(op)).astype(int), 1.0)
    n_el, _ = _gpaw.valence_electrons(z, settings.xc)
    atoms = _gpaw.make_atoms(lat, frac, z, None)
    with _gpaw.blas_threads(settings.threads):
        calc = _gpaw.ground_state(atoms, settings, kpoint_mesh(lat, settings), spinpol=False)
        path = atoms.cell.bandpath(npoints=n_points)
        nscf = _gpaw.nscf(calc, path.kpts, settings)
        states = _gpaw.spinor_states(nscf, spin_orbit=spin_orbit, n_states=None)
    energies = states.energies
    nocc = n_el
    vbm = float(energies[:, nocc - 1].max())
    lo = max(0, nocc - 2 * n_bands)
    hi = min(energies.shape[1], nocc + 2 * n_bands)
    x, special_x, special_names = path.get_linear_kpoint_axis()
    labels = [(float(p), str(n)) for p, n in zip(special_x, special_names)]
    return DFTBandStructure(
        distances=np.asarray(x, dtype=float),
        energies=energies[:, lo:hi] - vbm,
        labels=labels,
        path=str(path.path),
        n_occupied=nocc - lo,
        vbm=vbm,
        spin_orbit=bool(spin_orbit),
    )


__all__ = ["DFTBandStructure", "dft_band_structure"]
