#!/usr/bin/env python
"""The geometry of generated crystals against a benchmark's test split: density, volume per atom and the
shortest interatomic distance, per samples file, beside the test split itself.

Cheap where the published metrics are not: no fingerprints, so it compares sampler settings of one model in
seconds (the coverage metrics of a 24-atom Carbon-24 set take about a second a crystal). Each samples file is a
``td_models.save_crystals`` file as the benchmarks' train stage writes it (``outputs/<name>/samples.npz``); its
sampling settings (steps, corrector steps, volume guidance) come from its own metadata.

    python benchmarks/sample_geometry.py --dataset carbon_24 \\
        --samples outputs/carbon24_vg/samples.npz outputs/carbon24_vg02/samples.npz

With ``--coverage N``, COV-R and COV-P (CDVAE's fingerprints and the data set's published cutoffs, the published
protocol's composition scaling) of the first N crystals of each file against the test crystals read
(``--max-test``): a cheaper, smaller reading than the benchmark's, comparable between the files of one call only;
beside them the mean, over the generated crystals, of the structure-fingerprint distance to the nearest test crystal
(AMSD-P), which says how far the crystals are from the structure cutoff when no crystal is within it.

With ``--coordination N``, the CrystalNN coordination of the first N crystals of each file and of the test split:
the mean probability (%) that a site has 1-2, 3, 4 or 5 and more neighbours, the coordination part of the same
fingerprint (for carbon, 3 is sp2 and 4 sp3); the fast fingerprint path, about 10 ms a crystal.

Columns: crystals that are records; W(density) and W(volume per atom), the Wasserstein-1 distances to the test
split's; the median volume per atom; the 5th percentile, median and 95th percentile of each crystal's shortest
distance (periodic images included); the share of crystals with a shortest distance under ``--close`` (default
1.2 A: carbon's shortest bond in the test split is about 1.3 A).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def geometry(records) -> dict[str, np.ndarray]:
    """Density (g/cm^3), volume per atom (A^3) and shortest distance (A) of each record."""
    from td_data.validity import min_distance

    return {
        "density": np.array([r.density for r in records]),
        "volume": np.array([r.volume / r.num_atoms for r in records]),
        "shortest": np.array([min_distance(r) for r in records]),
    }


def coordination_cell(fingerprints: np.ndarray) -> str:
    """ "1-2 / 3 / 4 / 5+": the mean CrystalNN probability (%) of each coordination over structure fingerprints
    (rows of ``td_data.fingerprint.structure_fingerprint``); also used by ``recovery_from_noise.py``."""
    from td_data.fingerprint import FEATURE_LABELS

    columns = [FEATURE_LABELS.index(f"wt CN_{cn}") for cn in range(1, 25)]
    wt = 100 * np.asarray(fingerprints)[:, columns].mean(axis=0)  # (24,): CN 1..24
    return f"{wt[:2].sum():.0f} / {wt[2]:.0f} / {wt[3]:.0f} / {wt[4:].sum():.0f}"


def coordination(records, n: int) -> str:
    """:func:`coordination_cell` of the first ``n`` records as a table cell; records whose fingerprint fails are
    counted and left out."""
    from td_data.fingerprint import structure_fingerprint

    rows, failed = [], 0
    for r in records[:n]:
        try:
            rows.append(structure_fingerprint(r.lattice, r.frac_coords, r.atomic_numbers))
        except Exception:  # noqa: BLE001 (a degenerate generated cell: counted in the cell, not fatal)
            failed += 1
    if not rows:
        return f" - ({failed} failed) |"
    return f" {coordination_cell(np.stack(rows))}{f' ({failed} failed)' if failed else ''} |"


def row(name: str, g: dict[str, np.ndarray], ref: dict[str, np.ndarray] | None, close: float, cov: str = "") -> str:
    from scipy.stats import wasserstein_distance

    def w(key: str) -> str:
        return "-" if ref is None else f"{wasserstein_distance(g[key], ref[key]):.3f}"

    p5, p50, p95 = np.percentile(g["shortest"], [5, 50, 95])
    return (f"| {name} | {len(g['density'])} | {w('density')} | {w('volume')} | {np.median(g['volume']):.2f} | "
            f"{p5:.2f} / {p50:.2f} / {p95:.2f} | {np.mean(g['shortest'] < close):.3f} |{cov}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="carbon_24", help="perov_5 | carbon_24 | mp_20")
    p.add_argument("--data-dir", type=Path, default=None, help="the CDVAE files (default ../shared/data/benchmarks/X)")
    p.add_argument("--samples", type=Path, nargs="+", required=True, help="samples.npz files")
    p.add_argument("--close", type=float, default=1.2, help="Angstrom: a shortest distance below it counts as close")
    p.add_argument("--max-test", type=int, default=None, help="the first N test crystals only")
    p.add_argument("--coverage", type=int, default=0, help="COV-R/COV-P of the first N crystals of each file (0: off)")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes of the coverage fingerprints")
    p.add_argument("--coordination", type=int, default=0, help="CrystalNN CN of the first N crystals (0: off)")
    args = p.parse_args(argv)

    from td_data.evaluation import load_split, samples_to_records, split_paths
    from td_models import load_crystals

    data_dir = args.data_dir or Path("../shared/data/benchmarks") / args.dataset
    _, test_file = split_paths(args.dataset, data_dir)
    test = load_split([test_file], "test", limit=args.max_test).records
    ref = geometry(test)
    print(f"{args.dataset} test split: {len(test)} crystals ({test_file})\n")
    cov_head = f" COV-R / COV-P, {args.coverage} vs {len(test)} [%] | AMSD-P |" if args.coverage else ""
    if args.coordination:
        cov_head += f" CN 1-2 / 3 / 4 / 5+, first {args.coordination} [%] |"
    print("| set | n | W(density) | W(volume/atom) | median volume/atom | shortest distance p5 / median / p95 [A] "
          f"| share < {args.close:g} A |{cov_head}")  # fmt: skip
    print("|---|" + "---:|" * (6 + 2 * bool(args.coverage) + bool(args.coordination)))
    test_cn = coordination(test, args.coordination) if args.coordination else ""
    print(row("test split", ref, None, args.close, (" - | - |" if args.coverage else "") + test_cn))
    cache = tempfile.TemporaryDirectory()  # the test crystals' fingerprints, computed once for every file
    for path in args.samples:
        samples, meta = load_crystals(path)
        records = samples_to_records(samples, id_prefix="s").records
        settings = ", ".join(
            f"{k} {meta.get(k)}"
            for k in ("steps", "corrector_steps", "volume_guidance", "min_distance", "physics_guidance")
            if k in meta
        )
        cov = ""
        if args.coverage:
            from td_data.metrics import generation_metrics

            m = generation_metrics(records[: args.coverage], test, dataset=args.dataset, n_jobs=args.n_jobs,
                                   reference_cache=Path(cache.name) / "test.npz")  # fmt: skip
            cov = f" {100 * m['cov_recall']:.1f} / {100 * m['cov_precision']:.1f} | {m['amsd_precision']:.3f} |"
        if args.coordination:
            cov += coordination(records, args.coordination)
        print(row(f"{path} ({settings})", geometry(records), ref, args.close, cov), flush=True)
    cache.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
