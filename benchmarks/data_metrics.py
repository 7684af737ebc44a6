"""td_data.metrics on Perov-5: 1,000 "generated" crystals against the 3,785-crystal test set.

Run with ``python benchmarks/data_metrics.py [--n-jobs 2] [--cache PATH] [--quick]``.

**Stand-in generated set.** Until the generative model exists, the "generated" crystals are the
first 1,000 Perov-5 *validation* structures with their fractional coordinates perturbed by a
Gaussian (sigma 0.05, fractional units) and their lattices strained by a random symmetric strain
(entries with sigma 0.02, i.e. a few percent), seed 0. The metrics of this set say nothing about
any model; they exercise the code path at the real size and time it.

The script times the metrics twice in one run: cold (the reference fingerprint cache does not
exist yet: all 3,785 reference crystals and the 1,000 generated ones are featurised) and warm
(the reference fingerprints come from the cache; the generated ones are featurised again). It
prints the metrics table, the published CDVAE and DiffCSP numbers for Perov-5 for orientation
(quoted, not measured here), and the wall times. Nothing asserts on time. Novelty is measured
against the 1,024 Perov-5 training rows that are available (not the full 11,356).

Data: ``../shared/data/benchmarks/perov_5`` next to the repository (see its README); the script
exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipelines.benchmark.nodes import TABLE_ROWS
from pipelines.benchmark.published import PUBLISHED as _ALL_PUBLISHED  # one copy of the published tables

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmarks" / "perov_5"

# Published Perov-5 generation numbers (percent for validity and coverage), for orientation only.
PUBLISHED = {
    "CDVAE (Xie et al. 2022)": _ALL_PUBLISHED["perov_5"]["CDVAE"],
    "DiffCSP (Jiao et al. 2023)": _ALL_PUBLISHED["perov_5"]["DiffCSP"],
}
# the Perov-5 benchmark's table rows (pipelines.benchmark.nodes.TABLE_ROWS) and five more, in this order
_EXTRA_ROWS = {
    "valid": ("validity, both [%]", 100.0),
    "amsd_recall": ("AMSD-R", 1.0),
    "amcd_recall": ("AMCD-R", 1.0),
    "uniqueness": ("uniqueness [%]", 100.0),
    "novelty": ("novelty vs 1,024 train [%]", 100.0),
}
_ORDER = ("struct_valid", "comp_valid", "valid", "cov_recall", "cov_precision", "amsd_recall", "amcd_recall",
          "wdist_density", "wdist_num_elems", "uniqueness", "novelty")  # fmt: skip
_LABELS = {**{key: (label, factor) for key, label, factor in TABLE_ROWS}, **_EXTRA_ROWS}
ROWS = [(key, *_LABELS[key]) for key in _ORDER]

log = logging.getLogger("data_metrics")


def load(path: Path, limit: int | None = None) -> list:
    """CrystalRecords from a CDVAE CSV (``cif`` column), in file order (td-data's benchmark protocol)."""
    from td_data.evaluation import load_split

    return load_split([path], path.name, limit).records


def stand_in(records: list, seed: int = 0, coord_sigma: float = 0.05, strain_sigma: float = 0.02) -> list:
    """Perturbed copies: Gaussian noise on fractional coordinates, a random symmetric strain on the lattice."""
    rng = np.random.default_rng(seed)
    out = []
    for rec in records:
        e = rng.normal(0.0, strain_sigma, (3, 3))
        strain = np.eye(3) + (e + e.T) / 2  # symmetric, a few percent
        frac = rec.frac_coords + rng.normal(0.0, coord_sigma, rec.frac_coords.shape)
        out.append(rec.replace(lattice=rec.lattice @ strain, frac_coords=frac, id=f"standin-{rec.id}", labels={}))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=2, help="featurisation processes (default 2)")
    parser.add_argument("--cache", type=Path, default=None, help="reference fingerprint cache (default: a temp file)")
    parser.add_argument("--quick", action="store_true", help="200 generated against 500 reference crystals")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("td_data.filters").setLevel(logging.WARNING)

    if not DATA.is_dir():
        print(f"data_metrics: skipped, the benchmark data folder {DATA} is absent (see shared/data/benchmarks)")
        return 0
    from td_data.metrics import generation_metrics

    n_gen, n_ref = (200, 500) if args.quick else (1000, None)
    t0 = time.perf_counter()
    reference = load(DATA / "test.csv.gz", n_ref)
    generated = stand_in(load(DATA / "val.csv.gz", n_gen))
    train = load(DATA / "train_first1024.csv.gz")
    t_load = time.perf_counter() - t0
    sizes = (len(reference), len(generated), len(train))
    log.info("loaded %d reference, %d stand-in generated, %d train crystals in %.1f s", *sizes, t_load)

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "perov5_test_fingerprints.npz"
        cold_state = "cold" if not cache.exists() else "warm (cache file already existed)"
        timings = {}
        results = {}
        for run in ("first", "second"):
            t = time.perf_counter()
            results[run] = generation_metrics(
                generated, reference, dataset="perov_5", train=train, n_jobs=args.n_jobs, reference_cache=cache
            )
            timings[run] = time.perf_counter() - t
            log.info("%s run: %.1f s", run, timings[run])
    if results["first"] != results["second"]:
        print("WARNING: the cold and warm runs gave different metrics")
    m = results["second"]

    print()
    print(f"Perov-5 generation metrics: {m['n_generated']} STAND-IN generated crystals (perturbed val structures,")
    print("NOT model output) against the test set. Published numbers are quoted from the papers, not measured here.")
    print()
    names = list(PUBLISHED)
    print(f"{'metric':30s} {'measured (stand-in)':>20s} " + " ".join(f"{n:>27s}" for n in names))
    for key, label, scale in ROWS:
        value = m[key]
        text = "n/a" if value is None else f"{value * scale:.4g}"
        pub = [PUBLISHED[n].get(key) for n in names]
        print(f"{label:30s} {text:>20s} " + " ".join(f"{'-' if p is None else p:>27}" for p in pub))
    print(f"{'w(property)':30s} {'n/a (no predictor)':>20s}")
    print()
    failed = f"{m['n_featurisation_failed']} generated / {m['n_reference_featurisation_failed']} reference"
    print(f"reference {len(reference)} (test), generated {m['n_generated']}, valid {m['n_valid']}")
    print(f"featurisation failures {failed}; cutoffs struct {m['struct_cutoff']}, comp {m['comp_cutoff']}")
    print("(Magpie composition fingerprints scaled by the reference set's mean and std, not CDVAE's constants)")
    print()
    print(f"wall time, n_jobs={args.n_jobs} (CSV parsing {t_load:.1f} s not included):")
    print(f"  first run ({cold_state}): {timings['first']:.1f} s")
    print(f"  second run (warm reference cache): {timings['second']:.1f} s")
    print("  target: <= 60 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
