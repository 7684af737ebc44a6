#!/usr/bin/env python
"""Time DFT verification (td_physics.dft) on 5-, 10- and 20-atom cells, against GPAW's own plane-wave parity route.

    python benchmarks/dft_verification.py [--sizes 5 10 20] [--no-peer] [--confirm] [--output benchmark_dft.json]

Cells: Bi2Se3's rhombohedral primitive cell (5 atoms) and its 2x1x1 and 2x2x1 supercells (10 and 20 atoms);
a supercell keeps the strong index nu0 = 1 (the weak indices of a folded zone are not compared). Each is run
through ``dft_invariants`` with the default settings (``--confirm`` adds the second, denser self-consistent
mesh, as the pipeline's default does).

The peer, on the 5-atom cell: GPAW's documented route to Fu-Kane parities, a plane-wave ground state (350 eV,
same k-mesh) and ``gpaw.spinorbit.get_parity_eigenvalues`` at the eight TRIMs, run in the same process. It is
also an independent second method: its strong index must agree with ours.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import time
from pathlib import Path

import numpy as np


def _supercell(lattice, frac, numbers, reps):
    reps = np.asarray(reps, dtype=int)
    shifts = np.array([[i, j, k] for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])])
    new_frac = ((frac[None, :, :] + shifts[:, None, :]) / reps).reshape(-1, 3)
    return lattice * reps[:, None], new_frac, np.tile(numbers, len(shifts))


def _plane_wave_peer(lattice, frac, numbers, mesh, nocc):
    """GPAW plane-wave PBE ground state, then SOC parities at the TRIMs with GPAW's own routine."""
    from ase import Atoms
    from gpaw import GPAW, PW, FermiDirac
    from gpaw.spinorbit import get_parity_eigenvalues

    atoms = Atoms(numbers=numbers, scaled_positions=frac, cell=lattice, pbc=True)
    start = time.perf_counter()
    gs = GPAW(mode=PW(350), xc="PBE", kpts={"size": mesh, "gamma": True}, occupations=FermiDirac(0.01), txt=None)
    atoms.calc = gs
    atoms.get_potential_energy()
    g = np.array([0.0, 0.5])
    trims = np.array([[a, b, c] for a in g for b in g for c in g])
    nbands = nocc // 2 + 8
    calc = gs.fixed_density(kpts=trims, symmetry="off", nbands=nbands, txt=None)
    deltas = []
    centre = np.zeros(3)  # the cell is built with the inversion centre at the origin
    for ik in range(len(trims)):
        with contextlib.redirect_stdout(io.StringIO()):  # GPAW's routine prints its tables
            p = get_parity_eigenvalues(calc, ik=ik, spin_orbit=True, inversion_center=centre, bands=range(nbands))
        occ = np.asarray(p)[: nocc // 2]  # one per Kramers pair, in energy order
        deltas.append(int(np.prod(occ)))
    nu0 = int(np.prod(deltas) < 0)
    return time.perf_counter() - start, nu0, deltas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[5, 10, 20], choices=[5, 10, 20])
    parser.add_argument("--no-peer", action="store_true", help="skip GPAW's plane-wave parity route")
    parser.add_argument("--confirm", action="store_true", help="also the second self-consistent mesh")
    parser.add_argument("--output", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from ase.data import atomic_numbers
    from tqdm.auto import tqdm

    from td_physics.dft import dft_invariants
    from td_physics.structure.reference import reference_structure

    lattice, frac, species = reference_structure("Bi2Se3")
    numbers = np.array([atomic_numbers[s] for s in species])
    cells = {5: (1, 1, 1), 10: (2, 1, 1), 20: (2, 2, 1)}
    rows = []
    for n in tqdm(args.sizes, desc="cells", unit="cell"):
        lat, fr, z = _supercell(lattice, frac, numbers, cells[n])
        start = time.perf_counter()
        result = dft_invariants(lat, fr, z, confirm=args.confirm)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "atoms": n,
                "supercell": cells[n],
                "seconds": round(seconds, 1),
                "topo_class": result.topo_class,
                "z2_indices": result.z2_indices,
                "converged": result.converged,
                "reason": result.reason,
                "kpts": result.kpts,
                "direct_gap": result.band_gap_direct,
            }
        )
        tqdm.write(
            f"{n:3d} atoms {cells[n]}: {seconds:6.1f} s  {result.topo_class} {result.z2_indices} "
            f"k-mesh {result.kpts}" + ("" if result.converged else f"  not converged: {result.reason}")
        )
    peer = None
    if not args.no_peer and 5 in args.sizes:
        ours = next(r for r in rows if r["atoms"] == 5)
        seconds, nu0, deltas = _plane_wave_peer(lattice, frac, numbers, tuple(ours["kpts"]), 48)
        peer = {"seconds": round(seconds, 1), "nu0": nu0, "parity_deltas": deltas}
        agree = ours["z2_indices"] is not None and ours["z2_indices"][0] == nu0
        print(
            f"peer (GPAW plane waves 350 eV + get_parity_eigenvalues, 5 atoms): {seconds:.1f} s, nu0 = {nu0}; "
            f"td_physics.dft is {seconds / ours['seconds']:.1f}x faster; strong index agrees: {agree}"
        )
    print("\n| atoms | cell | seconds | class | Z2 |\n|---:|---|---:|---|---|")
    for r in rows:
        print(f"| {r['atoms']} | {r['supercell']} | {r['seconds']} | {r['topo_class']} | {r['z2_indices']} |")
    if args.output:
        args.output.write_text(json.dumps({"rows": rows, "peer": peer}, indent=1, default=list))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
