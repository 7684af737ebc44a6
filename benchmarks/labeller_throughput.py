#!/usr/bin/env python
"""Structure-labeller throughput: structures per second for 5-, 10- and 20-atom cells.

    python benchmarks/labeller_throughput.py [--repeat N]

Each structure goes through ``classify_structure`` with the full default variant ensemble (six
variants: model building, one batched ``eigh`` over the gap mesh and all variants, then parities
or Wannier-centre flow per variant). The cells are Bi2Se3 (R-3m, 5 atoms, inversion: parities)
and its 1x1x2 and 2x2x1 supercells (10 and 20 atoms), plus GaAs-like zincblende cells without
inversion (Wannier-centre flow). Because the shipped spin-orbit table is still empty, the
spin-orbit constants below are test values, not sourced constants: the timing does not depend
on them. The naive baseline, measured in the same run for the 5-atom cell, diagonalises the same
Hamiltonians one k-point and one variant at a time. Targets: >= 20 structures/s at 5 atoms and
>= 2 structures/s at 20 atoms on 2 cores (one process here; label_records adds worker processes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from td_physics.classify import classify_structure
from td_physics.structure import DEFAULT_VARIANTS, tight_binding_from_structure

SO = {"Bi": 1.5, "Se": 0.3, "Ga": 0.1, "As": 0.2}  # test values for timing only (see the docstring)


def bi2se3() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 5-atom rhombohedral cell of R-3m Bi2Se3 (a = 4.138, c = 28.64 A; Bi 6c z=0.4008, Se2 6c z=0.2117)."""
    a, c = 4.138, 28.64
    hexagonal = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    rhombo = np.array([[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]]) @ hexagonal
    z_bi, z_se2 = 0.4008, 0.2117
    frac = np.array([[z_bi] * 3, [-z_bi] * 3, [0.0] * 3, [z_se2] * 3, [-z_se2] * 3]) % 1.0
    return rhombo, frac, ["Bi", "Bi", "Se", "Se", "Se"]


def supercell(lattice, frac, species, reps):
    shifts = np.array([(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])])
    new_frac = ((frac[None, :, :] + shifts[:, None, :]) / np.array(reps)).reshape(-1, 3)
    return lattice * np.array(reps)[:, None], new_frac, species * len(shifts)


def zincblende(reps=(1, 1, 1)):
    lattice = 0.5 * 5.653 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    return supercell(lattice, np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), ["Ga", "As"], reps)


def rate(structure, repeat: int) -> tuple[float, str]:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = classify_structure(*structure, spin_orbit_constants=SO)
        best = min(best, time.perf_counter() - t0)
    return 1.0 / best, f"{res.topo_class} ({res.confidence:.2f}, {res.variants[0].method})"


def naive_gap_rate(structure, mesh: int = 8) -> float:
    """The gap search of one structure, one k-point and one variant at a time (no batching)."""
    t0 = time.perf_counter()
    axis = np.arange(mesh) / mesh
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    for variant in DEFAULT_VARIANTS:
        model = tight_binding_from_structure(*structure, variant, spin_orbit_constants=SO)
        for k in grid:
            np.linalg.eigvalsh(model.hamiltonian(k)[0])
    return 1.0 / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lat, frac, species = bi2se3()
    cases = {
        "Bi2Se3, 5 atoms (parity)": (lat, frac, species),
        "Bi2Se3 1x1x2, 10 atoms (parity)": supercell(lat, frac, species, (1, 1, 2)),
        "Bi2Se3 2x2x1, 20 atoms (parity)": supercell(lat, frac, species, (2, 2, 1)),
        "GaAs, 2 atoms (Wannier centres)": zincblende(),
        "GaAs 1x1x2, 4 atoms (Wannier centres)": zincblende((1, 1, 2)),
    }
    print(f"{'case':<40} {'structures/s':>13}  class (confidence, method)")
    for name, structure in cases.items():
        r, answer = rate(structure, args.repeat)
        print(f"{name:<40} {r:>13.2f}  {answer}")
    naive = naive_gap_rate(cases["Bi2Se3, 5 atoms (parity)"])
    print(f"{'naive gap search only, 5 atoms':<40} {naive:>13.2f}  (one k-point and one variant at a time)")
    print("\ntargets: >= 20 structures/s at 5 atoms, >= 2 structures/s at 20 atoms (2 cores)")


if __name__ == "__main__":
    main()
