"""td_data input/output against naive baselines measured in the same run.

Run with ``python benchmarks/data_io.py [--n 100000] [--baseline-n 2000]``. Prints one table; it
never asserts on time.

1. Write ``n`` random small crystals (1-20 atoms, two properties, labels on a third of them) to a
   :class:`~td_data.store.CrystalStore` with ``write_store`` (records/s), against the naive layout:
   one HDF5 group per record with its own datasets (``baseline-n`` records, extrapolated to ``n``).
2. Read them all back (``CrystalStore.read_all``), against reading the naive file group by group
   into validated ``CrystalRecord`` objects (extrapolated).
3. Load the Perov-5 test CSV (3,785 CIFs) with ``load_materials_database``, against
   ``pandas.read_csv`` plus ``CifParser`` and ``CrystalRecord.from_structure`` row by row. Skipped
   with a message when ``../shared/data/benchmarks`` is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import h5py
import numpy as np

from td_data.readers import load_materials_database
from td_data.record import CrystalRecord
from td_data.store import CrystalStore, write_store

REPO_ROOT = Path(__file__).resolve().parents[1]
PEROV_TEST = REPO_ROOT.parent / "shared" / "data" / "benchmarks" / "perov_5" / "test.csv.gz"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def random_records(n: int, seed: int = 0) -> list[CrystalRecord]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 21, n)
    lattices = np.einsum("ij,nj->nij", np.eye(3), rng.uniform(3.0, 12.0, (n, 3))) + rng.uniform(-0.5, 0.5, (n, 3, 3))
    frac = rng.random((int(sizes.sum()), 3))
    numbers = rng.integers(1, 95, int(sizes.sum()))
    gaps, energies = rng.uniform(0, 4, n), rng.uniform(-4, 1, n)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for i in range(n):
        lo, hi = offsets[i], offsets[i + 1]
        labels = {"topo_class": "trivial", "confidence": 0.9} if i % 3 == 0 else {}
        props = {"band_gap": gaps[i], "formation_energy": energies[i]}
        out.append(CrystalRecord(lattices[i], frac[lo:hi], numbers[lo:hi], props, labels, f"rand-{i}", "benchmark"))
    return out


def naive_write(path: Path, records: list[CrystalRecord]) -> None:
    """The layout people write first: one group per record, several small datasets each."""
    with h5py.File(path, "w") as f:
        for rec in records:
            g = f.create_group(rec.id)
            g["lattice"] = rec.lattice
            g["frac_coords"] = rec.frac_coords
            g["atomic_numbers"] = rec.atomic_numbers
            for k, v in rec.properties.items():
                g.attrs[k] = v
            g.attrs["source"] = rec.source


def naive_read(path: Path) -> list[CrystalRecord]:
    with h5py.File(path, "r") as f:
        return [
            CrystalRecord(
                g["lattice"][()],
                g["frac_coords"][()],
                g["atomic_numbers"][()],
                {k: float(v) for k, v in g.attrs.items() if k != "source"},
                id=name,
                source=str(g.attrs["source"]),
            )
            for name, g in f.items()
        ]


def naive_csv_load(path: Path) -> list[CrystalRecord]:
    import pandas as pd
    from pymatgen.io.cif import CifParser

    frame = pd.read_csv(path, index_col=0)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, row in frame.iterrows():
            structure = CifParser.from_str(row["cif"]).parse_structures(primitive=False)[0]
            props = {k: row[k] for k in ("heat_ref", "heat_all", "dir_gap", "ind_gap")}
            out.append(CrystalRecord.from_structure(structure, properties=props, id=str(row["material_id"])))
    return out


def timed(func, *args):
    t0 = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - t0, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="records written and read by ours")
    parser.add_argument("--baseline-n", type=int, default=2_000, help="records for the naive store (extrapolated)")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, str, float]] = []  # case, method, seconds, rate, ratio

    log(f"building {args.n} random records ...")
    records = random_records(args.n)
    n_atoms = sum(r.num_atoms for r in records)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log("writing with write_store ...")
        t_write, _ = timed(write_store, folder / "ours.h5", records)
        size_mb = (folder / "ours.h5").stat().st_size / 1e6
        log("reading with read_all ...")

        def read_all() -> list[CrystalRecord]:
            with CrystalStore.open(folder / "ours.h5") as store:
                return store.read_all()

        t_read, back = timed(read_all)
        if len(back) != args.n or not np.array_equal(back[-1].frac_coords, records[-1].frac_coords):
            log("ERROR: the store did not give the records back")
            return 1
        log(f"naive baseline on {args.baseline_n} records ...")
        sample = records[: args.baseline_n]
        scale = args.n / len(sample)
        t_nw, _ = timed(naive_write, folder / "naive.h5", sample)
        t_nr, _ = timed(naive_read, folder / "naive.h5")

    case_w = f"write {args.n} records"
    rows.append((case_w, "ours write_store", t_write, f"{args.n / t_write:,.0f} rec/s", 1.0))
    rows.append((case_w, f"naive group/record (x{scale:.0f})", t_nw * scale, f"{len(sample) / t_nw:,.0f} rec/s", 0.0))
    case_r = f"read {args.n} records"
    rows.append((case_r, "ours read_all", t_read, f"{args.n / t_read:,.0f} rec/s", 1.0))
    rows.append((case_r, f"naive group/record (x{scale:.0f})", t_nr * scale, f"{len(sample) / t_nr:,.0f} rec/s", 0.0))

    if PEROV_TEST.is_file():
        log("loading Perov-5 test with load_materials_database ...")
        t_load, result = timed(load_materials_database, PEROV_TEST)
        log("loading Perov-5 test with pandas + CifParser per row ...")
        t_naive_csv, naive = timed(naive_csv_load, PEROV_TEST)
        case = f"Perov-5 test CSV ({len(result.records)} rec)"
        rows.append((case, "ours load_materials_database", t_load, f"{len(result.records) / t_load:,.0f} rec/s", 1.0))
        rows.append((case, "pandas + CifParser per row", t_naive_csv, f"{len(naive) / t_naive_csv:,.0f} rec/s", 0.0))
    else:
        log(f"Perov-5 test CSV not found at {PEROV_TEST}: skipping the CSV case")

    # ratio: time of this row over the time of ours in the same case
    ours = {case: t for case, method, t, _, _ in rows if method.startswith("ours")}
    print(f"{args.n} records, {n_atoms} atoms, store file {size_mb:.1f} MB")
    print(f"{'case':36s} {'method':34s} {'time [s]':>9s} {'rate':>16s} {'vs ours':>8s}")
    for case, method, t, rate, _ in rows:
        print(f"{case:36s} {method:34s} {t:9.2f} {rate:>16s} {t / ours[case]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
