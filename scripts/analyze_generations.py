#!/usr/bin/env python
"""Analyse generated crystals: space groups, elements, AFLOW prototypes and a gallery of the best candidates.

    python scripts/analyze_generations.py --output-dir results/          # the newest generated crystals
    python scripts/analyze_generations.py --input-dir validation_results/samples --output-dir results/

Reads every CIF in ``--input-dir`` and in its sub-folders (``index.json`` next to the CIFs restores ids and
labels). Without ``--input-dir``: ``--output-dir`` itself when it holds CIFs (a folder of
``test_generation_quality.py``), else the newest generated crystals under the working folder
(``validation_results/samples/`` and ``*/samples/`` of ``test_generation_quality.py``, the Kedro generate
pipeline's ``data/07_model_output/candidates/``). Writes to ``--analysis-dir`` (default
``OUTPUT_DIR/analysis``, created; ``OUTPUT_DIR`` defaults to ``results``):

* ``structures.csv``: one row per crystal: formula, sites, space group (spglib, ``--symprec``), crystal
  system, AFLOW prototype matched by pymatgen's ``AflowPrototypeMatcher`` (loading its library takes a
  few seconds; ``--no-prototypes`` skips it), labels from the index;
* ``analysis.json``: counts of space groups, crystal systems, elements, element counts and prototypes;
* ``summary.png``: crystal systems, most common space groups and elements;
* ``gallery.png``: band structures of the ``--n-best`` best candidates the td-physics tight-binding
  builder can model (best = recomputed class as requested when labelled, then highest symmetry, then
  fewest sites); candidates it cannot build are listed with the reason.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _evaluation import (
    GENERATION_LOCATIONS,
    ScriptError,
    display_path,
    has_cifs,
    progress,
    pyplot,
    quiet_libraries,
    resolve_generation_dir,
    run_main,
    save_figure,
    write_json,
    write_text,
)

CRYSTAL_SYSTEMS = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                   (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="analyze_generations.py",
        description="Space groups, elements, AFLOW prototypes and a band-structure gallery of generated CIFs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--input-dir", default=None,
                   help="folder with the generated CIFs (searched recursively); default: OUTPUT_DIR when it holds "
                   "CIFs, else the newest generated crystals under the working folder")  # fmt: skip
    p.add_argument("--output-dir", default="results", help="the analysis goes to OUTPUT_DIR/analysis (created)")
    p.add_argument("--analysis-dir", default=None, help="where to write instead (default: OUTPUT_DIR/analysis)")
    p.add_argument("--symprec", type=float, default=0.1, help="spglib symmetry tolerance (Angstrom)")
    p.add_argument("--no-prototypes", action="store_true", help="skip the AFLOW prototype matching")
    p.add_argument("--max-prototype-sites", type=int, default=40, help="match prototypes only up to this cell size")
    p.add_argument("--n-best", type=int, default=4, help="candidates in the gallery")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="library logs at INFO")
    return p


def crystal_system(number: int | None) -> str:
    if not number:
        return "unknown"
    return next(name for top, name in CRYSTAL_SYSTEMS if number <= top)


def load_folder(folder: Path) -> list[Any]:
    """Every CIF under ``folder``, one :class:`CifFolderDataset` per folder that holds CIFs (ids from its index)."""
    from pipelines.datasets import CifFolderDataset

    if not folder.is_dir():
        where = "; ".join(f"{pattern}, by {what}" for pattern, what in GENERATION_LOCATIONS)
        raise ScriptError(f"--input-dir {str(folder)!r} does not exist or is not a folder; generated crystals are "
                          f"written to {where}")  # fmt: skip
    hidden = lambda p: any(s.startswith(".") for s in p.relative_to(folder).parts)  # noqa: E731
    dirs = sorted({p.parent for p in folder.rglob("*.cif") if not hidden(p)})
    records = []
    for d in dirs:
        for rec in CifFolderDataset(path=d).load():
            rel = d.relative_to(folder)
            records.append(rec.replace(id=f"{rel}/{rec.id}" if str(rel) != "." else rec.id))
    if not records:
        raise ScriptError(f"no readable CIF file in {str(folder)!r} or below")
    return records


def space_group(rec: Any, symprec: float) -> tuple[int | None, str]:
    import spglib

    try:
        data = spglib.get_symmetry_dataset((rec.lattice, rec.frac_coords, rec.atomic_numbers), symprec=symprec)
    except Exception:  # noqa: BLE001 - spglib raises on degenerate cells; reported as unknown
        data = None
    if data is None:
        return None, "unknown"
    return int(data.number), str(data.international)


def _rank(row: dict[str, Any]) -> tuple:
    labelled = row.get("recomputed_class") not in (None, "not_checked")
    return (
        not (labelled and row.get("recomputed_class") == row.get("requested_class")),
        not labelled,
        -(row.get("spacegroup_number") or 0),
        row["num_atoms"],
        row["id"],
    )


def gallery_figure(records: dict[str, Any], rows: Sequence[dict[str, Any]], n_best: int):
    """Band structures of the best ``n_best`` candidates td-physics can build (default variant, spin-orbit on)."""
    from pipelines.report.nodes import DEFAULT_K_LABELS, DEFAULT_K_PATH
    from td_physics.bands import band_structure
    from td_physics.plotting import plot_band_structure
    from td_physics.structure import DEFAULT_VARIANTS, tight_binding_from_structure

    variant = DEFAULT_VARIANTS[0]  # scalar-relativistic on-site energies and atomic spin-orbit coupling
    built, refused = [], []
    for row in sorted(rows, key=_rank):
        if len(built) >= n_best:
            break
        rec = records[row["id"]]
        try:
            model = tight_binding_from_structure(rec.lattice, rec.frac_coords, rec.atomic_numbers, variant=variant)
            nodes = [k[: model.dim_k] for k in DEFAULT_K_PATH]
            built.append((row, band_structure(model, nodes, DEFAULT_K_LABELS, n_points=80)))
        except Exception as err:  # noqa: BLE001 - a crystal the builder refuses is listed, not fatal
            refused.append(f"{row['id']} {row['formula']}: {str(err).splitlines()[0][:70]}")
    ncols = max(len(built), 1)
    fig, axes = pyplot().subplots(1, ncols, figsize=(4.2 * ncols, 3.8), constrained_layout=True)
    axes = np.atleast_1d(axes)
    if not built:
        text = "no candidate could be built by the tight-binding builder"
        axes[0].text(0.5, 0.5, text + "\n" + "\n".join(refused[:6]), ha="center", va="center", fontsize=7, wrap=True)
        axes[0].set_axis_off()
    for ax, (row, bands) in zip(axes, built):
        sg = row["spacegroup_symbol"]
        title = f"{row['id']} {row['formula']} ({sg})"
        if row.get("recomputed_class"):
            title += f"\n{row['recomputed_class']}"
        plot_band_structure(bands, ax=ax, title=title)
        ax.title.set_fontsize(8)
    return fig, len(built), refused


def summary_figure(rows: Sequence[dict[str, Any]]):
    fig, axes = pyplot().subplots(1, 3, figsize=(13.5, 3.8), constrained_layout=True)
    systems = Counter(r["crystal_system"] for r in rows)
    order = [name for _, name in CRYSTAL_SYSTEMS] + ["unknown"]
    axes[0].bar(order, [systems.get(s, 0) for s in order])
    axes[0].tick_params(axis="x", rotation=40, labelsize=7)
    axes[0].set_title("crystal systems")
    groups = Counter(r["spacegroup_symbol"] for r in rows).most_common(12)
    axes[1].barh([g for g, _ in groups][::-1], [n for _, n in groups][::-1])
    axes[1].set_title("most common space groups")
    elements = Counter(el for r in rows for el in r["elements"].split())
    top = elements.most_common(15)
    axes[2].bar([e for e, _ in top], [n for _, n in top])
    axes[2].set_title("crystals containing each element")
    axes[2].tick_params(axis="x", rotation=40, labelsize=7)
    return fig


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(args.verbose)
    output = Path(args.output_dir)
    if args.input_dir is not None:
        folder, how = Path(args.input_dir), "--input-dir"
    elif has_cifs(output):
        folder, how = output, "--output-dir holds CIFs"
    else:
        folder, how = resolve_generation_dir()
    print(f"crystals: {display_path(folder)} ({how})", flush=True)
    records = load_folder(folder)
    out = Path(args.analysis_dir) if args.analysis_dir else output / "analysis"

    matcher = None
    if not args.no_prototypes:
        import contextlib
        import io

        from pymatgen.analysis.prototypes import AflowPrototypeMatcher

        with contextlib.redirect_stdout(io.StringIO()):
            matcher = AflowPrototypeMatcher()
    rows = []
    for rec in progress(records, desc="crystals", disable=args.no_progress):
        number, symbol = space_group(rec, args.symprec)
        prototype = None
        if matcher is not None and rec.num_atoms <= args.max_prototype_sites:
            try:
                found = matcher.get_prototypes(rec.to_structure())
            except Exception:  # noqa: BLE001 - the matcher fails on some degenerate cells: no match
                found = None
            if found:
                prototype = found[0]["tags"]["aflow"]
        row = {
            "id": rec.id,
            "formula": rec.formula,
            "num_atoms": rec.num_atoms,
            "num_elements": len(rec.composition),
            "elements": " ".join(sorted(rec.composition)),
            "density": float(rec.density),
            "spacegroup_number": number,
            "spacegroup_symbol": symbol,
            "crystal_system": crystal_system(number),
            "aflow_prototype": prototype,
        }
        row.update({k: v for k, v in rec.labels.items() if isinstance(v, (str, int, float, bool))})
        rows.append(row)

    import pandas as pd

    write_text(pd.DataFrame(rows).to_csv(index=False), out / "structures.csv")
    by_id = {r.id: r for r in records}
    fig, n_built, refused = gallery_figure(by_id, rows, args.n_best)
    save_figure(fig, out / "gallery.png")
    save_figure(summary_figure(rows), out / "summary.png")
    summary = {
        "folder": str(folder),
        "n_crystals": len(rows),
        "symprec": args.symprec,
        "spacegroups": dict(Counter(r["spacegroup_symbol"] for r in rows).most_common()),
        "crystal_systems": dict(Counter(r["crystal_system"] for r in rows).most_common()),
        "elements": dict(Counter(el for r in rows for el in r["elements"].split()).most_common()),
        "num_elements": dict(sorted(Counter(r["num_elements"] for r in rows).items())),
        "num_atoms": dict(sorted(Counter(r["num_atoms"] for r in rows).items())),
        "prototypes_matched": None if matcher is None else sum(r["aflow_prototype"] is not None for r in rows),
        "prototypes": None
        if matcher is None
        else dict(Counter(r["aflow_prototype"] for r in rows if r["aflow_prototype"]).most_common()),
        "gallery": {"n_built": n_built, "refused": refused},
    }
    write_json(summary, out / "analysis.json")
    print(f"{len(rows)} crystals from {folder}: {len(summary['spacegroups'])} space groups, "
          f"systems {summary['crystal_systems']}")  # fmt: skip
    if matcher is not None:
        print(f"AFLOW prototypes matched: {summary['prototypes_matched']} of {len(rows)} {summary['prototypes']}")
    print(f"gallery: {n_built} band structures ({len(refused)} candidates the builder refused)")
    print(f"wrote {out}/structures.csv, analysis.json, summary.png, gallery.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
