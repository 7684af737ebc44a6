#!/usr/bin/env python
"""Each tight-binding variant of the structure labeller against DFT, from finished calibration runs.

    python scripts/labeller_variants_vs_dft.py docs/data/labeller_calibration_dft docs/data/families_new_dft \
        --output outputs/labeller_variants_vs_dft.md

The structure labeller's class is the consensus of six tight-binding variants (coupling set, distance law,
neighbour cutoff; ``docs/labeller_accuracy.md``). When they split three to three the tie goes to the more
conservative class, and a known topological insulator can come out trivial that way (TlBiSe2 and the Bi(111)
bilayer do). Is one variant, or one coupling set, closer to DFT than the others, so that the ensemble should
lean on it? This script answers from runs of ``scripts/labeller_calibration_dft.py``, computing nothing: each
run folder's ``calibration.json`` gives the DFT class of every crystal DFT converged on, and its
``tb/tb-IIIIII.json`` files the class of every variant. Per variant (and for the ensemble) it counts the crystals
whose class equals DFT's, the same among crystals DFT calls insulators (trivial or ``z2_ti``), and the ``z2_ti``
calls as true positives, false positives and misses against DFT. It prints a Markdown table (written to
``--output`` too, with ``--json`` the numbers).

Read the counts with their size: on a few hundred crystals, a handful of crystals separates the variants.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ENSEMBLE = "ensemble (the label)"


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_run(folder: Path) -> list[dict[str, Any]]:
    """The crystals of one calibration run that DFT classified and the TB labeller labelled, with every variant's
    class: ``{"run", "id", "formula", "dft", "ensemble", "variants": {name: class}}``."""
    path = folder / "calibration.json"
    if not path.is_file():
        _fail(f"{path} does not exist: give the --output-dir of a scripts/labeller_calibration_dft.py run")
    rows = json.loads(path.read_text()).get("rows")
    if not isinstance(rows, list):
        _fail(f"{path} has no 'rows' list: not a calibration.json of scripts/labeller_calibration_dft.py")
    out = []
    for row in rows:
        if not row.get("both"):
            continue
        tb_path = folder / "tb" / f"tb-{int(row['index']):06d}.json"
        tb = json.loads(tb_path.read_text()) if tb_path.is_file() else None
        if not tb or tb.get("id") != row["id"] or not (tb.get("labels") or {}).get("variants"):
            _fail(f"{tb_path} is missing or holds no variant classes for {row['id']}")
        out.append(
            {
                "run": folder.name,
                "id": row["id"],
                "formula": row["formula"],
                "dft": row["dft_class"],
                "ensemble": row["tb_class"],
                "variants": dict(tb["labels"]["variants"]),
            }
        )
    return out


def agreement(crystals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per variant (in the order the runs list them) and one for the ensemble."""
    if not crystals:
        return []
    names = list(crystals[0]["variants"])
    for c in crystals:
        if list(c["variants"]) != names:
            _fail(f"{c['run']}/{c['id']} has the variants {list(c['variants'])}, the first crystal {names}")
    table = []
    for name in [*names, ENSEMBLE]:
        calls = [(c["ensemble"] if name == ENSEMBLE else c["variants"][name], c["dft"]) for c in crystals]
        insulators = [(tb, dft) for tb, dft in calls if dft in ("trivial", "z2_ti")]
        table.append(
            {
                "variant": name,
                "n": len(calls),
                "agree": sum(tb == dft for tb, dft in calls),
                "n_dft_insulators": len(insulators),
                "agree_dft_insulators": sum(tb == dft for tb, dft in insulators),
                "z2_true_positive": sum(tb == dft == "z2_ti" for tb, dft in calls),
                "z2_false_positive": sum(tb == "z2_ti" != dft for tb, dft in calls),
                "z2_missed": sum(dft == "z2_ti" != tb for tb, dft in calls),
            }
        )
    return table


def markdown(table: list[dict[str, Any]], runs: list[str]) -> str:
    lines = [
        f"Tight-binding variants against DFT PBE+SOC, crystals both classified in {', '.join(runs)}.",
        "",
        "| variant | class = DFT's | on DFT insulators | `z2_ti` right | `z2_ti` wrong | `z2_ti` missed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        lines.append(
            f"| {t['variant']} | {t['agree']} of {t['n']} | {t['agree_dft_insulators']} of {t['n_dft_insulators']} "
            f"| {t['z2_true_positive']} | {t['z2_false_positive']} | {t['z2_missed']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of scripts/labeller_calibration_dft.py")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    crystals = [c for folder in args.runs for c in read_run(folder)]
    if not crystals:
        _fail("no crystal in these runs has both a DFT class and a TB label")
    table = agreement(crystals)
    text = markdown(table, [str(f) for f in args.runs])
    print(text, end="")
    from td_physics.files import write_text_atomic

    if args.output is not None:
        write_text_atomic(args.output, text)
    if args.json is not None:
        write_text_atomic(args.json, json.dumps({"runs": [str(f) for f in args.runs], "variants": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
