#!/usr/bin/env python
"""Magnetic topological insulators: the QAH phases of Kane-Mele with exchange and the AFTI Z2.

    python examples/magnetic.py                      # figures + summary.json in outputs/magnetic
    python examples/magnetic.py --quick              # coarse grids (seconds)

Figures:

* ``qah_phase_diagram.png``: the Chern number of the Kane-Mele model with a Neel exchange +-M_s on the
  two sublattices over (M_s, lambda_v), with the closed-form gap closings |lambda_v +- M_s| = 3 sqrt(3)
  lambda_so (td_physics.models.magnetic_ti): quantum spin Hall (C = 0) in the middle, quantum anomalous
  Hall (C = +-1) on the four sides, trivial beyond;
* ``qah_hall_cut.png``: along lambda_v = 0.1, the Kubo anomalous Hall conductivity (a second method)
  against -C e^2/h from the Chern number;
* ``qah_ribbon_bands.png``: the bands of a ribbon in the quantum spin Hall and the quantum anomalous Hall
  phase, coloured by the edge that holds each state: helical pairs on each edge, then one chiral mode
  per edge (``edge_chirality`` counts them along the cut, a third method);
* ``afti_phase_diagram.png``: the Z2 of the antiferromagnetic Fu-Kane-Mele model (Mong, Essin and
  Moore 2010) over (|m|, dt) by the Wannier-centre flow on the plane k_3 = 0, with the closed-form
  boundaries |m|^2 = dt (dt - 2t) and |m|^2 = (4t + dt)(2t + dt); crosses mark points whose bulk gap is
  closed (metals) or where the flow and the parities disagree.

Prints a table of each diagram's agreement with its closed form; exit status 1 if a converged point
disagrees.
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


from td_physics.bands import batched_band_gaps  # noqa: E402
from td_physics.finite import ribbon  # noqa: E402
from td_physics.invariants import anomalous_hall_conductivity, edge_chirality  # noqa: E402
from td_physics.invariants.antiferromagnetic import antiferromagnetic_z2_batch  # noqa: E402
from td_physics.models import afm_fu_kane_mele, kane_mele_exchange  # noqa: E402
from td_physics.phase_diagram import phase_diagram  # noqa: E402

LAMBDA_SO = 0.06  # Kane-Mele spin-orbit coupling (units of t)
CRITICAL = 3 * np.sqrt(3) * LAMBDA_SO  # the Dirac mass of lambda_so at K
T = 1.0  # the Fu-Kane-Mele hopping


def neel_kane_mele(m_s: float, lambda_v: float):
    """Kane-Mele with exchange +M_s s_z on A and -M_s s_z on B."""
    return kane_mele_exchange(m_s, -m_s, lambda_so=LAMBDA_SO, lambda_v=lambda_v)


def qah_closed_form(m_s: np.ndarray, lambda_v: np.ndarray) -> np.ndarray:
    """C = C_up + C_down with C_s = -s sign(lambda_so) theta(3 sqrt(3) lambda_so - |lambda_v + s M_s|)."""
    up = -(np.abs(lambda_v + m_s) < CRITICAL).astype(int)
    down = (np.abs(lambda_v - m_s) < CRITICAL).astype(int)
    return up + down


def afti_closed_form(m: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """(-1)^nu = sign[(4t + dt)(2t + dt) - m^2] sign[dt (dt - 2t) - m^2] (td_physics.models.magnetic_ti)."""
    sign = np.sign((4 * T + dt) * (2 * T + dt) - m**2) * np.sign(dt * (dt - 2 * T) - m**2)
    return (sign < 0).astype(int)


def tally(name: str, values: np.ndarray, expected: np.ndarray, trusted: np.ndarray) -> dict:
    """Grid points, trusted points (converged, gap open) and trusted points that differ from the closed form."""
    return {
        "diagram": name,
        "points": int(values.size),
        "trusted": int(trusted.sum()),
        "disagree": int((trusted & (values != expected)).sum()),
    }


def qah_diagram(m_s: np.ndarray, lambda_v: np.ndarray, out: Path) -> dict:
    diagram = phase_diagram(neel_kane_mele, {"m_s": m_s, "lambda_v": lambda_v}, "chern")  # one batched solve
    expected = qah_closed_form(m_s[:, None], lambda_v[None, :])
    fig = diagram.plot(title=f"Kane-Mele + Neel exchange, lambda_so = {LAMBDA_SO}")
    ax = fig.axes[0]
    xs = np.linspace(m_s.min(), m_s.max(), 200)
    for sign_c in (1, -1):
        for sign_m in (1, -1):
            ax.plot(xs, sign_c * CRITICAL + sign_m * xs, "k--", lw=1)
    ax.set_ylim(lambda_v.min(), lambda_v.max())
    ax.set_xlabel("staggered exchange M_s (units of t)")
    ax.set_ylabel("sublattice potential lambda_v (units of t)")
    fig.savefig(out / "qah_phase_diagram.png", dpi=120)
    plt.close(fig)
    return tally("QAH Chern number", diagram.values, expected, diagram.converged)


def hall_cut(m_s: np.ndarray, lambda_v: float, mesh: int, out: Path) -> dict:
    chern = phase_diagram(neel_kane_mele, {"m_s": m_s}, "chern", fixed={"lambda_v": lambda_v})
    sigma = np.array(
        [
            anomalous_hall_conductivity(neel_kane_mele(m, lambda_v), 0.0, mesh=mesh).value
            for m in tqdm(m_s, desc="Hall conductivity", leave=False)
        ]
    )
    fig, ax = plt.subplots(figsize=(5.5, 4.0), constrained_layout=True)
    ax.plot(m_s, sigma, "o-", ms=3, label="Kubo sigma_xy (e^2/h)")
    ax.step(m_s, -chern.values, where="mid", color="k", lw=1, label="-C (Fukui-Hatsugai-Suzuki)")
    for x in (CRITICAL - lambda_v, -CRITICAL - lambda_v, CRITICAL + lambda_v, -CRITICAL + lambda_v):
        ax.axvline(x, color="0.6", ls="--", lw=0.8)
    ax.set_xlabel("staggered exchange M_s (units of t)")
    ax.set_ylabel("sigma_xy (e^2/h)")
    ax.set_title(f"lambda_v = {lambda_v}: the Hall conductivity follows -C")
    ax.legend(frameon=False)
    fig.savefig(out / "qah_hall_cut.png", dpi=120)
    plt.close(fig)
    trusted = chern.converged & (chern.min_gap > 0.02)  # the Kubo sum converges slowly next to a closing
    return tally("QAH Hall conductivity", np.rint(-sigma).astype(int), chern.values, trusted)


def edge_cut(m_s: np.ndarray, lambda_v: float, out: Path) -> dict:
    chern = phase_diagram(neel_kane_mele, {"m_s": m_s}, "chern", fixed={"lambda_v": lambda_v})
    edges = [edge_chirality(neel_kane_mele(m, lambda_v)) for m in tqdm(m_s, desc="ribbons", leave=False)]
    values = np.array([r.value for r in edges])
    trusted = chern.converged & np.array([r.converged for r in edges])
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.8), sharey=True, constrained_layout=True)
    for ax, (m, title) in zip(axes, ((0.05, "quantum spin Hall"), (0.3, "quantum anomalous Hall"))):
        strip = ribbon(neel_kane_mele(m, lambda_v), 1, 24)
        ks = np.linspace(0.0, 1.0, 241)
        e, v = np.linalg.eigh(strip.hamiltonian(ks[:, None]))  # (nk, norb), (nk, norb, norb)
        high = strip.positions[:, 1] > 0.5
        weight = (np.abs(v) ** 2 * high[None, :, None]).sum(axis=1)  # (nk, norb) weight on the high edge
        kk = np.broadcast_to(ks[:, None], e.shape)
        points = ax.scatter(kk, e, c=weight, s=1.5, cmap="coolwarm", vmin=0, vmax=1)
        ax.set_ylim(-0.6, 0.6)
        ax.set_xlabel("k along the ribbon (reduced)")
        ax.set_title(f"{title}\nM_s = {m}, lambda_v = {lambda_v}", fontsize=10)
    axes[0].set_ylabel("energy (units of t)")
    fig.colorbar(points, ax=axes, label="weight on the high edge")
    fig.savefig(out / "qah_ribbon_bands.png", dpi=120)
    plt.close(fig)
    return tally("QAH edge modes", values, chern.values, trusted)


def afti_diagram(m: np.ndarray, dt: np.ndarray, out: Path) -> dict:
    models = [afm_fu_kane_mele(m=mm, dt=d, t=T) for mm in tqdm(m, desc="AFM models", leave=False) for d in dt]
    res = antiferromagnetic_z2_batch(models)  # the whole grid in batched Wilson-loop and parity solves
    direct, _ = batched_band_gaps(models, 4, 12)  # the bulk gap over the whole zone
    shape = (len(m), len(dt))
    values, converged = res["value"].reshape(shape), res["converged"].reshape(shape)
    gap = direct.reshape(shape)
    trusted = converged & (gap > 1e-3)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
    mesh = ax.pcolormesh(m, dt, values.T, shading="nearest", cmap="coolwarm", vmin=0, vmax=1)
    fig.colorbar(mesh, ax=ax, label="AFTI Z2", ticks=[0, 1])
    bad = ~trusted
    mm, dd = np.meshgrid(m, dt, indexing="ij")
    ax.plot(mm[bad], dd[bad], "x", color="k", ms=4, label="gap closed / not converged")
    ds = np.linspace(dt.min(), dt.max(), 400)
    for curve in (ds * (ds - 2 * T), (4 * T + ds) * (2 * T + ds)):
        ok = curve >= 0
        ax.plot(np.sqrt(curve[ok]), ds[ok], "k--", lw=1)
    ax.set_xlim(m.min(), m.max())
    ax.set_xlabel("staggered moment |m| (units of t)")
    ax.set_ylabel("[111] bond dimerisation dt (units of t)")
    ax.set_title("antiferromagnetic Fu-Kane-Mele: Z2 on k_3 = 0")
    if bad.any():
        ax.legend(frameon=False, loc="lower right")
    fig.savefig(out / "afti_phase_diagram.png", dpi=120)
    plt.close(fig)
    return tally("AFTI Z2", values, afti_closed_form(m[:, None], dt[None, :]), trusted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/magnetic"), help="where figures go")
    parser.add_argument("--quick", action="store_true", help="coarse grids: a smoke run in seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the diagrams' points next to a gap closing warn by design
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    n = 9 if args.quick else 41
    rows = [
        qah_diagram(np.linspace(-0.5, 0.5, n), np.linspace(-0.45, 0.45, n), out),
        hall_cut(np.linspace(-0.5, 0.5, 7 if args.quick else 41), 0.1, 64 if args.quick else 160, out),
        edge_cut(np.linspace(-0.5, 0.5, 7 if args.quick else 41), 0.1, out),
        afti_diagram(
            np.linspace(0.0, 3.0, 7 if args.quick else 31), np.linspace(-1.0, 1.0, 5 if args.quick else 21), out
        ),
    ]
    (out / "summary.json").write_text(json.dumps({"quick": args.quick, "diagrams": rows}, indent=2))
    print(f"{'diagram':<24}{'points':>8}{'trusted':>9}{'disagree':>10}")
    for row in rows:
        print(f"{row['diagram']:<24}{row['points']:>8}{row['trusted']:>9}{row['disagree']:>10}")
    print(f"figures and summary.json in {out}")
    return int(any(row["disagree"] for row in rows))


if __name__ == "__main__":
    sys.exit(main())
