#!/usr/bin/env python
"""Topological superconductors: Kitaev chain, p + ip and helical p-wave, against their closed forms.

    python examples/superconductors.py                      # figures + summary.json in outputs/superconductors
    python examples/superconductors.py --quick              # coarse grids (seconds)

Figures:

* ``kitaev_phase_diagram.png``: the Majorana number (Pfaffian, Kitaev 2001) over (mu, Delta), with the
  closed-form boundaries |mu| = 2|t| and Delta = 0;
* ``kitaev_open_chain.png``: the spectrum of an open chain against mu (the two Majorana zero modes for
  |mu| < 2|t|) and the probability density of those two modes, localised at the ends;
* ``p_wave_phase_diagram.png``: the BdG Chern number of the spinless p + ip superconductor over
  (mu, Delta), with the boundaries mu = 0, +-4t;
* ``p_wave_ribbon.png``: the bands of a p + ip ribbon, its chiral Majorana edge modes crossing the gap;
* ``helical_z2.png``: the Z2 of the helical (class DIII) superconductor against mu.

The BdG basis and its factor 1/2 are those of ``td_physics.bdg``. Prints a table of each diagram's
agreement with its closed form; exit status 1 if a converged point disagrees.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # tqdm is installed by `make install`; the example still runs without it

    def tqdm(iterable, **_):
        return iterable


from td_physics.finite import flake, ribbon  # noqa: E402
from td_physics.invariants.majorana import majorana_batch  # noqa: E402
from td_physics.models import helical_p_wave_superconductor, kitaev_chain, p_wave_superconductor  # noqa: E402
from td_physics.phase_diagram import phase_diagram  # noqa: E402

T = 1.0  # the hopping of every model here; energies are in units of it


def kitaev_closed_form(mu: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Majorana number: -1 iff |mu| < 2|t| and Delta != 0 (Kitaev 2001)."""
    return np.where((np.abs(mu) < 2 * abs(T)) & (delta != 0), -1, 1)


def chern_closed_form(mu: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """p + ip Chern number: sign(mu) for 0 < |mu| < 4|t| (Delta != 0), else 0 (td_physics.models.superconductors)."""
    return np.where((np.abs(mu) < 4 * abs(T)) & (delta != 0), np.sign(mu), 0).astype(int)


def agreement(name: str, values: np.ndarray, expected: np.ndarray, converged: np.ndarray) -> dict:
    """Counts of points, converged points and converged points that disagree with the closed form."""
    wrong = converged & (values != expected)
    return {
        "diagram": name,
        "points": int(values.size),
        "converged": int(converged.sum()),
        "disagree": int(wrong.sum()),
    }


def mark_unconverged(ax, xs: np.ndarray, ys: np.ndarray, converged: np.ndarray) -> None:
    """Cross the grid points whose gap closed (or whose mesh did not converge)."""
    ix, iy = np.nonzero(~converged)
    if ix.size:
        ax.plot(xs[ix], ys[iy], "x", color="k", ms=4, label="not converged")
        ax.legend(frameon=False, loc="upper right")


def kitaev_diagram(mus: np.ndarray, deltas: np.ndarray, out: Path) -> dict:
    models = [kitaev_chain(T, m, d) for m in tqdm(mus, desc="Kitaev chains", leave=False) for d in deltas]
    res = majorana_batch(models)  # every chain in one batched solve
    values = res["value"].reshape(len(mus), len(deltas))
    converged = res["converged"].reshape(values.shape)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
    mesh = ax.pcolormesh(mus, deltas, values.T, shading="nearest", cmap="coolwarm", vmin=-1, vmax=1)
    fig.colorbar(mesh, ax=ax, label="Majorana number", ticks=[-1, 1])
    for x in (-2 * T, 2 * T):
        ax.axvline(x, color="k", ls="--", lw=1)
    ax.axhline(0.0, color="k", ls="--", lw=1)
    mark_unconverged(ax, mus, deltas, converged)
    ax.set_xlabel("mu / t")
    ax.set_ylabel("Delta / t")
    ax.set_title("Kitaev chain: Pfaffian Majorana number")
    fig.savefig(out / "kitaev_phase_diagram.png", dpi=120)
    plt.close(fig)
    expected = kitaev_closed_form(mus[:, None], deltas[None, :])
    return agreement("Kitaev Majorana number", values, expected, converged)


def open_chain(mus: np.ndarray, n_cells: int, delta: float, out: Path) -> dict:
    hams = np.stack(
        [
            flake(kitaev_chain(T, m, delta), (n_cells,)).hamiltonian.toarray()
            for m in tqdm(mus, desc="open chains", leave=False)
        ]
    )  # (nmu, 2 n_cells, 2 n_cells)
    energies = np.linalg.eigvalsh(hams)  # one batched solve
    mu_show = 0.5
    chain = flake(kitaev_chain(T, mu_show, delta), (n_cells,))
    e, v = np.linalg.eigh(chain.hamiltonian.toarray())
    zero = np.argsort(np.abs(e))[:2]
    density = (np.abs(v[:, zero]) ** 2).reshape(n_cells, 2, 2).sum(axis=1)  # (cell, mode): particle + hole weight
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    ax1.plot(mus, energies, color="0.4", lw=0.6)
    lowest = np.sort(np.abs(energies), axis=1)[:, :2]
    ax1.plot(mus, lowest, color="C3", lw=1.5)
    ax1.plot(mus, -lowest, color="C3", lw=1.5)
    for x in (-2 * T, 2 * T):
        ax1.axvline(x, color="k", ls="--", lw=1)
    ax1.set_xlabel("mu / t")
    ax1.set_ylabel("E / t")
    ax1.set_title(f"open chain of {n_cells} sites, Delta = {delta} t")
    cells = np.arange(n_cells)
    for mode in range(2):
        ax2.plot(cells, density[:, mode], "o-", ms=3, label=f"E = {e[zero[mode]]:.1e} t")
    ax2.set_xlabel("site")
    ax2.set_ylabel("|psi|^2 (particle + hole)")
    ax2.set_title(f"the two Majorana zero modes at mu = {mu_show} t")
    ax2.legend(frameon=False)
    fig.savefig(out / "kitaev_open_chain.png", dpi=120)
    plt.close(fig)
    ends = np.r_[density[:3].sum(), density[-3:].sum()] / density.sum()
    return {"mu": mu_show, "zero_mode_energies": np.abs(e[zero]).tolist(), "weight_on_3_end_sites": float(ends.sum())}


def p_wave_diagram(mus: np.ndarray, deltas: np.ndarray, out: Path) -> dict:
    pd = phase_diagram(p_wave_superconductor, {"mu": mus, "delta": deltas}, "chern", fixed={"t": T})
    fig = pd.plot(title="p + ip superconductor: BdG Chern number")
    ax = fig.axes[0]
    for x in (-4 * T, 0.0, 4 * T):
        ax.axvline(x, color="k", ls="--", lw=1)
    ax.axhline(0.0, color="k", ls="--", lw=1)
    mark_unconverged(ax, mus, deltas, pd.converged)
    ax.set_xlabel("mu / t")
    ax.set_ylabel("Delta / t")
    fig.savefig(out / "p_wave_phase_diagram.png", dpi=120)
    plt.close(fig)
    expected = chern_closed_form(mus[:, None], deltas[None, :])
    return agreement("p+ip Chern number", pd.values, expected, pd.converged)


def p_wave_ribbon(mu: float, n_cells: int, nk: int, out: Path) -> dict:
    """Bands of a p + ip ribbon (open along y) coloured by the weight on the top edge: the chiral Majorana mode."""
    strip = ribbon(p_wave_superconductor(T, mu, 1.0), axis=1, n_cells=n_cells)
    k = np.linspace(-0.5, 0.5, nk)
    e, v = np.linalg.eigh(strip.hamiltonian(k[:, None]))  # (nk, norb), (nk, norb, norb): one batched solve
    y = strip.positions[:, 1]
    top = ((np.abs(v) ** 2) * (y > np.quantile(y, 0.8))[None, :, None]).sum(axis=1)  # (nk, norb)
    bottom = ((np.abs(v) ** 2) * (y < np.quantile(y, 0.2))[None, :, None]).sum(axis=1)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
    kk = np.repeat(k[:, None], e.shape[1], axis=1)
    points = ax.scatter(kk, e, c=top - bottom, s=3, cmap="coolwarm", vmin=-1, vmax=1)
    fig.colorbar(points, ax=ax, label="weight on top edge - bottom edge")
    ax.set_xlabel("k_x (reduced)")
    ax.set_ylabel("E / t")
    ax.set_ylim(-3, 3)
    ax.set_title(f"p + ip ribbon, {n_cells} rows, mu = {mu} t: chiral edge modes")
    fig.savefig(out / "p_wave_ribbon.png", dpi=120)
    plt.close(fig)
    return {"mu": mu, "rows": n_cells, "lowest_abs_energy": float(np.abs(e).min())}


def helical_line(mus: np.ndarray, out: Path) -> dict:
    pd = phase_diagram(helical_p_wave_superconductor, {"mu": mus}, "z2", fixed={"t": T, "delta": 1.0})
    fig = pd.plot(title="helical p-wave (class DIII): Z2")
    for x in (-4 * T, 4 * T):
        fig.axes[0].axvline(x, color="k", ls="--", lw=1)
    fig.savefig(out / "helical_z2.png", dpi=120)
    plt.close(fig)
    expected = ((np.abs(mus) < 4 * abs(T)) & (mus != 0)).astype(int)
    return agreement("helical Z2", pd.values, expected, pd.converged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/superconductors", help="where figures and summary.json go")
    parser.add_argument("--quick", action="store_true", help="coarse grids (a smoke run in seconds)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the library's progress")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = (21, 11, 13, 5, 24, 21) if args.quick else (121, 61, 41, 21, 60, 121)
    # grids offset from the phase boundaries (mu = 0, +-2t, +-4t; Delta = 0), where the gap closes
    kitaev_mu, kitaev_delta = np.linspace(-3.05, 3.05, n[0]), np.linspace(-1.45, 1.55, n[1])
    p_mu, p_delta = np.linspace(-5.1, 5.3, n[2]), np.linspace(-1.45, 1.55, n[3])
    summary = {
        "kitaev": kitaev_diagram(kitaev_mu, kitaev_delta, out),
        "open_chain": open_chain(np.linspace(-3.0, 3.0, n[5]), n[4], 0.6, out),
        "p_wave": p_wave_diagram(p_mu, p_delta, out),
        "helical": helical_line(np.linspace(-5.1, 5.3, n[2]), out),
        "p_wave_ribbon": p_wave_ribbon(1.0, 16 if args.quick else 40, 41 if args.quick else 201, out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{'diagram':<26}{'points':>8}{'converged':>11}{'disagree':>10}")
    for key in ("kitaev", "p_wave", "helical"):
        row = summary[key]
        print(f"{row['diagram']:<26}{row['points']:>8}{row['converged']:>11}{row['disagree']:>10}")
    zm = summary["open_chain"]
    print(
        f"open chain at mu = {zm['mu']} t: zero modes |E| = {max(zm['zero_mode_energies']):.1e} t, "
        f"{100 * zm['weight_on_3_end_sites']:.1f}% of their weight on the 3 sites at each end"
    )
    print(f"figures and summary.json in {out}")
    return 1 if any(summary[k]["disagree"] for k in ("kitaev", "p_wave", "helical")) else 0


if __name__ == "__main__":
    sys.exit(main())
