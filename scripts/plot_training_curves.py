#!/usr/bin/env python
"""Training curves from the ``metrics.csv`` the td-models Trainer writes.

    python scripts/plot_training_curves.py                                   # the newest training run
    python scripts/plot_training_curves.py --log-dir outputs/training/       # finds outputs/training/**/metrics.csv

Training writes its log to ``OUTPUT_DIR/metrics.csv`` (``examples/training_example.py``, ``outputs/training/``
by default) and the Kedro train pipeline to ``data/06_models/metrics.csv``; without ``--log-dir`` the newest of
these under the working folder is plotted. Three panels against the optimiser step: the diffusion loss parts
(lattice, coordinates, species, and the weighted sum), the physics and property parts (band gap, formation
energy, class, penalties) and the learning rate; per-step training rows faint, epoch means and validation
passes bold, and each training phase (structure learning, physics integration, fine-tuning...) shaded. Saves
``training_curves.png`` beside the log (or ``--output``; its folders are created) and prints the last epoch's
losses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from _evaluation import ScriptError, display_path, pyplot, quiet_libraries, resolve_log_path, run_main, save_figure

DIFFUSION_PARTS = ("diffusion", "lattice", "coords", "species")
PHYSICS_PARTS = ("properties", "band_gap", "formation_energy", "topo", "min_distance", "density", "charge")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="plot_training_curves.py",
        description="Plot per-part losses, learning rate and training phases from a Trainer's metrics.csv.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--log-dir",
        default=None,
        help="the training output folder (metrics.csv in it or below; the newest there) or the metrics.csv; "
        "default: the newest training log under the working folder (outputs/*/, data/06_models/)",
    )
    p.add_argument("--output", default=None, help="PNG to write (default: LOG_DIR/training_curves.png)")
    p.add_argument("--log-scale", action="store_true", help="logarithmic loss axes")
    p.add_argument("--verbose", action="store_true", help="library logs at INFO")
    return p


def phase_spans(df) -> list[tuple[str, float, float]]:
    """``(phase, first step, last step)`` of each run of equal phases, in step order."""
    rows = df[df["phase"].notna() & (df["phase"] != "")].sort_values("step")
    spans: list[tuple[str, float, float]] = []
    for phase, step in zip(rows["phase"], rows["step"]):
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], step)
        else:
            spans.append((phase, spans[-1][2] if spans else step, step))
    return spans


def training_figure(df, log_scale: bool = False):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, parts, title in ((axes[0], DIFFUSION_PARTS, "diffusion losses"), (axes[1], PHYSICS_PARTS,
                             "property and physics losses")):  # fmt: skip
        for i, part in enumerate(p for p in parts if p in df and df[p].notna().any()):
            c = colours[i % len(colours)]
            for kind, style, alpha, label in (("train", "-", 0.25, None), ("epoch", "o-", 1.0, f"{part} (epoch)"),
                                              ("val", "^--", 1.0, f"{part} (val)")):  # fmt: skip
                rows = df[(df["kind"] == kind) & df[part].notna()]
                if len(rows):
                    ax.plot(rows["step"], rows[part], style, color=c, lw=1, ms=3, alpha=alpha, label=label)
        ax.set_title(title)
        ax.set_ylabel("loss")
        if log_scale:
            ax.set_yscale("log")
        if ax.has_data():
            ax.legend(fontsize=7, ncol=2)
        else:
            ax.text(0.5, 0.5, "no such losses logged", ha="center", va="center", transform=ax.transAxes)
    lr = df[(df["kind"] == "train") & df["lr"].notna()] if "lr" in df else df.iloc[:0]
    axes[2].plot(lr["step"], lr["lr"], "-", color="k", lw=1)
    axes[2].set_title("learning rate")
    axes[2].set_ylabel("lr")
    for ax in axes:
        ax.set_xlabel("optimiser step")
        for j, (phase, lo, hi) in enumerate(phase_spans(df)):
            ax.axvspan(lo, max(hi, lo + 0.5), color=f"C{j % 10}", alpha=0.08, lw=0)
            ax.text(lo, 1.0, f" {phase}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", rotation=0)
    return fig


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(args.verbose)
    path, how = resolve_log_path(args.log_dir)  # before the slow imports: a wrong folder is reported at once
    print(f"log: {display_path(path)} ({how})", flush=True)
    import pandas as pd

    from td_models.training import read_metrics

    try:
        df = pd.DataFrame(read_metrics(path))
    except (ValueError, KeyError) as err:
        raise ScriptError(f"{path} is not a Trainer metrics.csv: {err}") from err
    if df.empty or "kind" not in df or "step" not in df:
        raise ScriptError(f"{path} holds no metric rows")
    if "phase" not in df:
        df["phase"] = None
    out = Path(args.output) if args.output else (path.parent / "training_curves.png")
    save_figure(training_figure(df, args.log_scale), out)
    last = df[df["kind"] == "epoch"].tail(1)
    if len(last):
        row = last.iloc[0]
        parts = ", ".join(f"{p} {row[p]:.4g}" for p in ("total", *DIFFUSION_PARTS) if p in row and pd.notna(row[p]))
        print(f"epoch {int(row['epoch'])}, step {int(row['step'])} ({row['phase']}): {parts}")
    print(f"{len(df)} rows from {display_path(path)}; wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
