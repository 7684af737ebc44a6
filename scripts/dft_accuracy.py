#!/usr/bin/env python
"""DFT (PBE + spin-orbit, GPAW LCAO) beside the tight-binding labeller on the literature reference table.

    python scripts/dft_accuracy.py --output-dir outputs/dft_accuracy [--materials Bi2Se3 HgTe] [--no-confirm]

Runs ``td_physics.dft.dft_invariants`` on every material of ``td_physics/data/reference_materials.json``
(about 1-3 minutes each on two cores) and the structure labeller on the same crystals, and writes:

* ``results/<material>.json``: one DFT result per material, written as it finishes; a rerun reuses them
  (delete a file, or pass ``--redo``, to recompute), so an interrupted run resumes;
* ``dft_accuracy.json``: every row and the summary;
* ``dft_accuracy.md``: the table that ``docs/labeller_accuracy.md`` quotes.

Needs the ``td-physics[dft]`` extra (``make install`` builds it).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from td_physics.files import write_text_atomic


def _z2(indices) -> str:
    if not indices:
        return ""
    return f"({indices[0]};{''.join(str(i) for i in indices[1:])})"


def _correct(expected: str, expected_indices, topo_class, z2) -> bool:
    if topo_class != expected:
        return False
    return expected_indices is None or tuple(z2 or ()) == tuple(expected_indices)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/dft_accuracy"))
    parser.add_argument("--materials", nargs="*", default=None, help="a subset of the reference table")
    parser.add_argument("--no-confirm", action="store_true", help="one self-consistent k-mesh instead of two")
    parser.add_argument("--settings", type=str, default=None, help="DFTSettings as a JSON object or a JSON file")
    parser.add_argument("--redo", action="store_true", help="recompute materials that already have a result")
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: the environment's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import numpy as np
    from ase.data import atomic_numbers
    from tqdm.auto import tqdm

    from td_physics.dft import DFTResult, DFTSettings, dft_available, dft_invariants
    from td_physics.structure.accuracy import labeller_accuracy
    from td_physics.structure.reference import reference_materials, reference_structure

    ok, why = dft_available()
    if not ok:
        parser.error(f"DFT is not available: {why}")
    raw = {}
    if args.settings:
        text = Path(args.settings).read_text() if Path(args.settings).is_file() else args.settings
        raw = json.loads(text)
    if args.no_confirm:
        raw["confirm"] = False
    if args.threads:
        raw["threads"] = args.threads
    settings = DFTSettings.from_dict(raw)
    table = reference_materials()
    names = args.materials or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"not in the reference table: {unknown}; known: {list(table)}")

    tb = {r.material: r for r in labeller_accuracy(names, strains=(0.0,)).rows}
    rows = []
    results_dir = args.output_dir / "results"
    for name in tqdm(names, desc="DFT", unit="crystal"):
        path = results_dir / f"{name}.json"
        result = None
        if path.exists() and not args.redo:
            try:
                saved = json.loads(path.read_text())
                if saved.get("settings") == settings.to_dict():
                    result = DFTResult.from_dict(saved)
            except (ValueError, TypeError, KeyError):
                result = None  # corrupt or from another version: recompute
        if result is None:
            lattice, frac, species = reference_structure(name)
            numbers = np.array([atomic_numbers[s] for s in species])
            start = time.perf_counter()
            result = dft_invariants(lattice, frac, numbers, spin_orbit=True, settings=settings)
            write_text_atomic(path, json.dumps(result.to_dict(), indent=1))
            tqdm.write(
                f"{name}: {result.topo_class} {_z2(result.z2_indices)} ({time.perf_counter() - start:.0f} s)"
                + ("" if result.converged else f" not converged: {result.reason}")
            )
        material = table[name]
        expected_indices = tb[name].expected_indices
        t = tb[name]
        rows.append(
            {
                "material": name,
                "n_atoms": result.n_atoms,
                "expected": material.expected,
                "expected_indices": list(expected_indices) if expected_indices else None,
                "tb_class": t.computed,
                "tb_confidence": t.confidence,
                "tb_z2": list(t.z2_indices) if t.z2_indices else None,
                "tb_correct": t.correct,
                "dft_class": result.topo_class if result.converged else None,
                "dft_z2": list(result.z2_indices) if result.z2_indices else None,
                "dft_method": result.method,
                "dft_converged": result.converged,
                "dft_reason": result.reason,
                "dft_direct_gap": result.band_gap_direct,
                "dft_indirect_gap": result.band_gap_indirect,
                "dft_separated_bands": (result.details.get("meshes") or [{}])[0].get("separated_bands"),
                "dft_seconds": round(result.wall_time, 1),
                "dft_correct": result.converged
                and _correct(material.expected, expected_indices, result.topo_class, result.z2_indices),
            }
        )

    n = len(rows)
    converged = [r for r in rows if r["dft_converged"]]
    summary = {
        "materials": n,
        "dft_converged": len(converged),
        "dft_correct": sum(r["dft_correct"] for r in rows),
        "dft_correct_among_converged": sum(r["dft_correct"] for r in converged),
        "tb_correct": sum(r["tb_correct"] for r in rows),
        "agree": sum(r["dft_class"] == r["tb_class"] for r in converged),
        "dft_wrong": [r["material"] for r in converged if not r["dft_correct"]],
        "dft_not_converged": {r["material"]: r["dft_reason"] for r in rows if not r["dft_converged"]},
        "settings": settings.to_dict(),
        "total_dft_seconds": round(sum(r["dft_seconds"] for r in rows), 1),
    }
    head = (
        "| material | atoms | expected | TB labeller (confidence) | DFT PBE+SOC | DFT method | direct gap (eV) "
        "| indirect gap (eV) | DFT time (s) |"
    )
    lines = [head, "|---|---:|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        exp = r["expected"] + (f" {_z2(r['expected_indices'])}" if r["expected_indices"] else "")
        tbc = f"{r['tb_class']} {_z2(r['tb_z2'])}".strip() + ("" if r["tb_correct"] else " **x**")
        if r["dft_converged"]:
            dft = f"{r['dft_class']} {_z2(r['dft_z2'])}".strip() + ("" if r["dft_correct"] else " **x**")
            sep = r["dft_separated_bands"]
            if sep:
                dft += f" (separated bands: {sep['topo_class']} {_z2(sep['z2_indices'])})".replace(" )", ")")
        else:
            dft = f"not converged: {r['dft_reason']}"
        fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(
            f"| {r['material']} | {r['n_atoms']} | {exp} | {tbc} ({r['tb_confidence']:.2f}) | {dft} | "
            f"{r['dft_method'] or ''} | {fmt(r['dft_direct_gap'])} | {fmt(r['dft_indirect_gap'])} | "
            f"{r['dft_seconds']} |"
        )
    markdown = "\n".join(lines)
    write_text_atomic(args.output_dir / "dft_accuracy.json", json.dumps({"summary": summary, "rows": rows}, indent=1))
    write_text_atomic(args.output_dir / "dft_accuracy.md", markdown + "\n")
    print(markdown)
    print(
        f"\nDFT right on {summary['dft_correct']} of {n} ({summary['dft_converged']} converged); TB labeller right on "
        f"{summary['tb_correct']} of {n}; DFT and TB agree on {summary['agree']} of {summary['dft_converged']}. "
        f"DFT wrong: {', '.join(summary['dft_wrong']) or 'none'}; DFT time {summary['total_dft_seconds']} s"
    )
    print(f"wrote {args.output_dir}/dft_accuracy.json, dft_accuracy.md and results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
