#!/usr/bin/env python
"""Higher-order topology: the BBH quadrupole insulator and the Z4 indicator, each against a second method.

    python examples/higher_order.py                      # figures + summary in outputs/higher_order
    python examples/higher_order.py --quick              # coarse grids (seconds)

Figures:

* ``quadrupole_phase_diagram.png``: q_xy of the Benalcazar-Bernevig-Hughes model from nested Wilson
  loops on a (gamma, lambda) grid, with the closed-form boundary |gamma| = |lambda|;
* ``wannier_bands.png``: the Wannier bands nu_x(k_y) and the sector polarisation, quadrupole and trivial;
* ``corner_states.png``: a finite flake with open boundaries: its spectrum with the four zero-energy
  corner states, their probability density, and the corner charges;
* ``edge_polarization.png``: the layer-resolved polarisation along the edge of a ribbon, whose sum over
  half the ribbon is the boundary polarisation (1/2 in the quadrupole phase).

Prints one line per check (points, agreeing with the closed form or the second method) and a table of
the Z4 indicator of 3D models next to the strong index of the Wannier-centre flow; writes
``summary.json``. Exit status 1 if any check disagrees.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
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


from td_physics.finite import flake  # noqa: E402
from td_physics.invariants import (  # noqa: E402
    corner_charges,
    edge_polarization,
    quadrupole_moment,
    z2_indices,
    z4_indicator,
)
from td_physics.invariants.higher_order import sector_polarizations  # noqa: E402
from td_physics.models import bbh, bi2se3, doubled_model, fu_kane_mele  # noqa: E402
from td_physics.phase_diagram import PhaseDiagram, phase_diagram  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="outputs/higher_order", help="where figures and summary.json go")
    parser.add_argument("--quick", action="store_true", help="coarse grids and a small flake (for tests)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the library's progress")
    return parser.parse_args(argv)


def quadrupole_diagram(n: int) -> tuple[PhaseDiagram, dict]:
    """q_xy on an n x n grid of (gamma, lam) in [-1.5, 1.5]^2: one batched phase diagram."""
    axis = np.linspace(-1.5, 1.5, n)
    pd = phase_diagram(bbh, {"gamma": axis, "lam": axis}, "quadrupole")
    g, lam = np.meshgrid(axis, axis, indexing="ij")
    closed = np.where(np.abs(g) < np.abs(lam), 0.5, 0.0)
    trusted = pd.converged & (np.abs(np.abs(g) - np.abs(lam)) > 1e-9)
    row = {
        "check": "q_xy vs |gamma| < |lam|",
        "points": int(pd.values.size),
        "trusted": int(trusted.sum()),
        "disagree": int(np.sum(trusted & (pd.values != closed))),
    }
    return pd, row


def plot_diagram(pd: PhaseDiagram, path: Path) -> None:
    shown = replace(pd, values=np.where(pd.converged, pd.values, np.nan))  # blank where the gap closes
    fig = shown.plot(title="BBH $q_{xy}$ from nested Wilson loops (blank: not converged)")
    ax = fig.axes[0]
    line = np.linspace(-1.5, 1.5, 2)
    for sign in (1, -1):
        ax.plot(line, sign * line, "k--", lw=0.8, label="|γ| = |λ|" if sign == 1 else None)
    ax.set_xlabel("γ (intra-cell)")
    ax.set_ylabel("λ (inter-cell)")
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_wannier_bands(path: Path, mesh: int) -> dict:
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.6), constrained_layout=True, sharey=True)
    out = {}
    for ax, (gamma, lam, title) in zip(axes, ((0.5, 1.0, "quadrupole"), (1.0, 0.5, "trivial"))):
        res = sector_polarizations([bbh(gamma, lam)], 2, mesh)
        ky = np.arange(mesh) / mesh
        for band in range(2):
            ax.plot(ky, res["nu_x"][0, :, band], "o-", ms=3, color=f"C{band}")
        p = float(res["p_y_nu_x"][0])
        ax.set_title(f"{title}: γ={gamma}, λ={lam};  $p_y^{{\\nu_x^+}}$ = {p:.3f}", fontsize=9)
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xlabel("$k_y$ (reduced)")
        out[title] = p
    axes[0].set_ylabel("Wannier bands $\\nu_x(k_y)$")
    axes[0].set_ylim(-0.5, 0.5)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return out


def plot_corner_states(path: Path, size: int) -> tuple[dict, list[dict]]:
    """Flake spectrum, zero-mode density and corner charges: topological (gamma=0.3) and trivial (gamma=1.3)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    rows, charges = [], {}
    for gamma, name in ((0.3, "quadrupole"), (1.3, "trivial")):
        piece = flake(bbh(gamma, 1.0), (size, size))
        energies, vectors = piece.eigh()
        window = 0.1 * abs(1.0 - gamma)
        zero = np.flatnonzero(np.abs(energies) < window)
        q = corner_charges(piece, int(np.sum(energies < -window)))  # in-gap corner states left empty
        charges[name] = q.tolist()
        expected_modes, expected_q = (4, 0.5) if gamma < 1.0 else (0, 0.0)
        rows.append(
            {
                "check": f"flake ({name}): modes and charges",
                "points": 1,
                "trusted": 1,
                "disagree": int(len(zero) != expected_modes or not np.allclose(np.abs(q), expected_q, atol=1e-6)),
            }
        )
        if name == "quadrupole":
            axes[0].plot(energies, "o", ms=2, color="0.4")
            axes[0].plot(zero, energies[zero], "o", ms=5, color="C3", label=f"{len(zero)} corner states")
            axes[0].set_xlabel("state index")
            axes[0].set_ylabel("energy")
            axes[0].set_title(f"{size}x{size} flake, γ={gamma}, λ=1", fontsize=9)
            axes[0].legend(fontsize=8)
            density = np.sum(np.abs(vectors[:, zero]) ** 2, axis=1)
            sc = axes[1].scatter(*piece.positions.T, c=density, s=12, cmap="magma_r")
            fig.colorbar(sc, ax=axes[1], label="zero-mode density")
            axes[1].set_aspect("equal")
            axes[1].set_title("corner-state probability density", fontsize=9)
    labels = list(charges)
    x = np.arange(4)
    for i, name in enumerate(labels):
        axes[2].bar(x + 0.38 * i, np.ravel(charges[name]), width=0.36, label=name)
    axes[2].set_xticks(x + 0.19, ["(low x, low y)", "(low x, high y)", "(high x, low y)", "(high x, high y)"])
    axes[2].tick_params(axis="x", labelsize=7)
    axes[2].axhline(0.5, color="0.6", lw=0.8, ls="--")
    axes[2].set_ylabel("quadrant charge (e), corner states empty")
    axes[2].legend(fontsize=8)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return charges, rows


def plot_edge_polarization(path: Path, n_cells: int, mesh: int) -> tuple[dict, dict]:
    """p(R) along x of ribbons open along y, quadrupole and trivial; both edges of both ribbons against q_xy."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    values, disagree = {}, 0
    for gamma, name in ((0.5, "quadrupole"), (1.3, "trivial")):
        q = quadrupole_moment(bbh(gamma, 1.0)).value
        for axis in (0, 1):
            res = edge_polarization(bbh(gamma, 1.0), open_axis=axis, n_cells=n_cells, mesh=mesh)
            disagree += int(not res.converged or abs(res.value - q) > 1e-6)
            if axis == 1:
                values[name] = res.value
                layers = np.asarray(res.details["layers"])
                ax.plot(
                    np.arange(n_cells),
                    layers,
                    "o-",
                    ms=4,
                    label=f"{name} (γ={gamma}): $p_x^{{edge}}$ = {res.value:.3f}",
                )
    ax.axvline(n_cells / 2 - 0.5, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("layer R_y of the ribbon (open along y)")
    ax.set_ylabel("layer polarisation $p_x(R_y)$")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return values, {"check": "edge polarisation vs q_xy", "points": 4, "trusted": 4, "disagree": disagree}


def z4_table() -> tuple[list[dict], dict]:
    cases = [
        ("Bi2Se3 (strong TI)", bi2se3()),
        ("Bi2Se3, M < 0 (trivial)", bi2se3(M=-0.28)),
        ("2 x Bi2Se3 (doubled strong TI)", doubled_model(bi2se3(), 0.05)),
        ("Fu-Kane-Mele, dt = +0.4", fu_kane_mele(dt=0.4)),
        ("Fu-Kane-Mele, dt = -0.4", fu_kane_mele(dt=-0.4)),
    ]
    table = []
    for name, model in tqdm(cases, desc="Z4 indicator", unit="model"):
        z4 = z4_indicator(model)
        flow = z2_indices(model, method="wcc")
        table.append(
            {"model": name, "z4": z4.value, "z2_wcc": list(flow.value), "agree": z4.value % 2 == flow.value[0]}
        )
    row = {
        "check": "z4 mod 2 vs nu0 (Wilson loops)",
        "points": len(table),
        "trusted": len(table),
        "disagree": sum(not r["agree"] for r in table),
    }
    return table, row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_grid, flake_size, mesh = (11, 10, 16) if args.quick else (41, 20, 32)
    pd, q_row = quadrupole_diagram(n_grid)
    plot_diagram(pd, out / "quadrupole_phase_diagram.png")
    wannier = plot_wannier_bands(out / "wannier_bands.png", mesh)
    charges, flake_rows = plot_corner_states(out / "corner_states.png", flake_size)
    edges, edge_row = plot_edge_polarization(out / "edge_polarization.png", flake_size, mesh)
    table, z4_row = z4_table()
    rows = [q_row, *flake_rows, edge_row, z4_row]
    print(f"{'check':<42}{'points':>8}{'trusted':>9}{'disagree':>10}")
    for r in rows:
        print(f"{r['check']:<42}{r['points']:>8}{r['trusted']:>9}{r['disagree']:>10}")
    print()
    print(f"{'model':<32}{'z4':>4}  {'(nu0; nu1 nu2 nu3), Wilson loops':<34}")
    for r in table:
        nu = r["z2_wcc"]
        print(f"{r['model']:<32}{r['z4']:>4}  ({nu[0]}; {nu[1]} {nu[2]} {nu[3]})")
    summary = {
        "checks": rows,
        "wannier_sector_polarization": wannier,
        "corner_charges": charges,
        "edge_polarization": edges,
        "z4": table,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 1 if any(r["disagree"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
