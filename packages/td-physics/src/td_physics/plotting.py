"""Figures people would rather look at: band structures, Berry curvature, Wannier-centre flow.

matplotlib is imported lazily, and every function returns the Figure without showing it, so the
library works on headless machines (use the Agg backend there).
"""

from __future__ import annotations

import numpy as np

from td_physics.bands import BandStructure
from td_physics.invariants.wilson import WilsonLoopResult

__all__ = ["plot_band_structure", "plot_berry_flux", "plot_wcc_flow"]


def _axes(ax, figsize=(5.0, 4.0)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def plot_band_structure(bands: BandStructure, ax=None, *, title: str = "", fermi_energy: float | None = None):
    """Bands against path length, nodes marked; occupied bands in a darker colour."""
    fig, ax = _axes(ax)
    occ = bands.occupied
    for b in range(bands.energies.shape[1]):
        colour = "C0" if occ is not None and b < occ else "C3"
        ax.plot(bands.distance, bands.energies[:, b], color=colour, lw=1.4)
    for t in bands.ticks:
        ax.axvline(t, color="0.7", lw=0.8)
    if fermi_energy is None and occ is not None:
        fermi_energy = 0.5 * (bands.energies[:, occ - 1].max() + bands.energies[:, occ].min())
    if fermi_energy is not None:
        ax.axhline(fermi_energy, color="0.4", ls="--", lw=0.8)
    ax.set_xticks(bands.ticks)
    ax.set_xticklabels([r"$\Gamma$" if lab in ("G", "Gamma") else lab for lab in bands.labels])
    ax.set_xlim(bands.distance[0], bands.distance[-1])
    ax.set_ylabel("Energy (eV)")
    ax.set_title(title)
    return fig


def plot_berry_flux(flux: np.ndarray, ax=None, *, title: str = "Berry curvature (flux per plaquette)"):
    """A map of plaquette Berry fluxes (from :func:`td_physics.invariants.berry_flux_map`) over reduced k."""
    fig, ax = _axes(ax)
    lim = float(np.abs(flux).max()) or 1.0
    im = ax.imshow(flux.T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, label="flux (rad)")
    ax.set_xlabel("$k_1$ (reduced)")
    ax.set_ylabel("$k_2$ (reduced)")
    ax.set_title(f"{title}; C = {flux.sum() / (2 * np.pi):+.0f}")
    return fig


def plot_wcc_flow(result: WilsonLoopResult, ax=None, *, title: str = "Wannier charge centres"):
    """Hybrid Wannier charge centres against the pumping momentum."""
    fig, ax = _axes(ax)
    for n in range(result.wcc.shape[1]):
        ax.plot(result.pump, result.wcc[:, n], ".", color="C0", ms=3)
    ax.set_xlabel(f"$k_{result.pump_axis + 1}$ (reduced)")
    ax.set_ylabel(f"WCC along $a_{result.wilson_axis + 1}$")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    return fig
