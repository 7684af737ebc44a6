#!/usr/bin/env python
"""Accuracy and calibration of the structure labeller on the literature reference table.

    python scripts/labeller_accuracy.py --output-dir outputs/labeller_accuracy [--strain 0.01]

Classifies every material of ``td_physics/data/reference_materials.json`` (Bi2Se3, Bi2Te3, Sb2Te3,
group-IV and III-V semiconductors, alkali halides, SnTe/PbTe, metals and semimetals) with the
default variant ensemble, at the tabulated lattice and at -strain/+strain, and writes:

* ``accuracy.json``: every row and the summary (accuracy, coverage at confidence >= 0.8, accuracy
  among the confident labels, calibration per confidence value, labels that change under strain);
* ``accuracy.md``: the per-material table that ``docs/labeller_accuracy.md`` quotes;
* ``calibration.png``: share right against confidence.

    python scripts/labeller_accuracy.py --sweep

measures the same table once per ``max_band_overlap`` tolerance and writes the packaged table
``td_physics/data/labeller_accuracy.json`` (``--sweep-file`` elsewhere) that the pipeline report and the
sweep table of ``docs/labeller_accuracy.md`` quote.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from td_physics.files import write_text_atomic

SWEEP_FILE = Path(__file__).resolve().parents[1] / "packages/td-physics/src/td_physics/data/labeller_accuracy.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/labeller_accuracy"))
    parser.add_argument("--strain", type=float, default=0.01, help="isotropic strain of the robustness check (0: off)")
    parser.add_argument("--materials", nargs="*", default=None, help="a subset of the reference table")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--sweep", action="store_true", help="the max_band_overlap sweep instead (a packaged table)")
    parser.add_argument("--sweep-file", type=Path, default=SWEEP_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from tqdm.auto import tqdm

    if args.sweep:
        from td_physics.structure.accuracy import overlap_sweep

        table = overlap_sweep(threshold=args.threshold, progress=lambda it: tqdm(it, desc="classify"))
        write_text_atomic(args.sweep_file, json.dumps(table, indent=1) + "\n")
        for p in table["sweep"]:
            print(
                f"max_band_overlap {p['max_band_overlap']:g} eV: {p['correct']}/{p['materials']} right, "
                f"{p['confident_correct']}/{p['confident']} confident right; wrong: {', '.join(p['wrong'])}"
            )
        print(f"wrote {args.sweep_file}")
        return 0

    from td_physics.structure.accuracy import labeller_accuracy

    strains = (0.0,) if args.strain == 0 else (0.0, -abs(args.strain), abs(args.strain))
    report = labeller_accuracy(
        args.materials, strains=strains, threshold=args.threshold, progress=lambda it: tqdm(it, desc="classify")
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {**r.__dict__, "z2_indices": None if r.z2_indices is None else list(r.z2_indices), "correct": r.correct}
        for r in report.rows
    ]
    write_text_atomic(
        args.output_dir / "accuracy.json", json.dumps({"summary": report.summary, "rows": rows}, indent=1)
    )
    write_text_atomic(args.output_dir / "accuracy.md", report.markdown() + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal = report.summary["calibration"]
    conf = [float(k) for k in cal]
    share = [v["correct"] / v["n"] for v in cal.values()]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, label="calibrated")
    ax.scatter(conf, share, s=[30 + 15 * v["n"] for v in cal.values()], zorder=3, label="reference set")
    for c, s, v in zip(conf, share, cal.values()):
        ax.annotate(f"n={v['n']}", (c, s), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set(xlim=(0.4, 1.05), ylim=(-0.05, 1.05), xlabel="confidence (share of variants agreeing)", ylabel="share right")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output_dir / "calibration.png", dpi=130)

    s = report.summary
    print(report.markdown())
    print(
        f"\n{s['materials']} materials: accuracy {s['accuracy']:.0%}; confidence >= {s['threshold']}: "
        f"{s['confident']} ({s['coverage']:.0%} coverage), {s['confident_correct']} right "
        f"({s['confident_accuracy']:.0%}); refused: {', '.join(s['refused']) or 'none'}; "
        f"changed under +-{abs(args.strain):.0%} strain: {', '.join(s['changed_under_strain']) or 'none'}"
    )
    print(f"wrote {args.output_dir}/accuracy.json, accuracy.md, calibration.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
