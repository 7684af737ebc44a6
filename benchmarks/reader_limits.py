"""What the readers' plausibility limits cost, and how fast an oversized CIF is refused.

Run with ``python benchmarks/reader_limits.py [--repeats 3] [--atoms 50000]``. Prints one table; it
never asserts on time.

1. Load the Perov-5 and Carbon-24 test CSVs with ``load_materials_database`` with the limits off
   (``min_distance=None, min_volume_per_atom=None``) and with the defaults, best of ``repeats``: the
   ratio is the cost of the closest-pair and volume checks (every record is kept either way).
2. Write a P1 CIF of ``atoms`` random carbon sites and load it with ``max_atoms=20`` and the default
   1000: the file is refused after counting its atom-site rows, before pymatgen parses it (pymatgen's
   site matching took 775 s on such a file).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from td_data.readers import load_materials_database

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"


def big_cif(n: int) -> str:
    """A P1 CIF of ``n`` carbon sites at random positions in a 200 A cube."""
    frac = np.random.default_rng(1).uniform(0, 1, (n, 3))
    rows = "\n".join(f" C C{i} {x:.6f} {y:.6f} {z:.6f} 1" for i, (x, y, z) in enumerate(frac))
    head = "data_big\n" + "".join(f"_cell_length_{c} 200\n" for c in "abc")
    head += "".join(f"_cell_angle_{a} 90\n" for a in ("alpha", "beta", "gamma"))
    head += "loop_\n_symmetry_equiv_pos_as_xyz\n 'x, y, z'\nloop_\n_atom_site_type_symbol\n_atom_site_label\n"
    head += "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
    return head + rows + "\n"


def best(repeats: int, *args, **kwargs) -> tuple[float, object]:
    """Best wall time of ``load_materials_database(*args, **kwargs)`` over ``repeats`` runs, and its result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = load_materials_database(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--atoms", type=int, default=50_000)
    args = parser.parse_args()
    print(f"{'case':48s} {'seconds':>9s} {'ratio':>7s}  note")
    off = {"min_distance": None, "min_volume_per_atom": None}
    for name in ("perov_5/test.csv.gz", "carbon_24/test.csv.gz"):
        path = BENCHMARKS / name
        if not path.is_file():
            print(f"{name:48s} skipped: {path} not found")
            continue
        t_off, r_off = best(args.repeats, path, **off)
        t_on, r_on = best(args.repeats, path)
        note = f"{len(r_on.records)} of {len(r_off.records)} records kept, {len(r_on.quarantined)} quarantined"
        print(f"{name + ' limits off':48s} {t_off:9.2f} {1.0:7.2f}")
        print(f"{name + ' default limits':48s} {t_on:9.2f} {t_on / t_off:7.2f}  {note}")
    with tempfile.TemporaryDirectory() as folder:
        cif = Path(folder) / "big.cif"
        cif.write_text(big_cif(args.atoms))
        for limit in (20, 1000):
            seconds, result = best(args.repeats, cif, max_atoms=limit)
            reason = result.quarantined[0].reason if result.quarantined else "read"
            print(f"{f'{args.atoms}-atom CIF, max_atoms={limit}':48s} {seconds:9.3f} {'':7s}  {reason}")


if __name__ == "__main__":
    main()
