#!/usr/bin/env python
"""CHGNet relaxation throughput: td_data.relax.relax_records (batched) against CHGNet's StructOptimizer.

    python benchmarks/relaxation_throughput.py [--n 64] [--max-atoms 10] [--batch-size 32] [--threads 2]
                                               [--peer-n N] [--fmax 0.1] [--max-steps 200] [--seed 0]
                                               [--optimizer fire|bfgs] [--workers 1] [--bfgs-alpha 70]

The crystals come from the project's synthetic data set (``SyntheticDatasetGenerator``, bulk only, at
most ``--max-atoms`` sites), each perturbed: Gaussian displacements of 0.05 A per coordinate and a random
symmetric strain of up to 2 %. Both sides run the same algorithm from the same starting points (FIRE, or
BFGS with ``--optimizer bfgs``, with ASE's defaults over ``FrechetCellFilter`` coordinates, ``fmax`` on
forces and the cell's virial per atom, at most ``max_steps`` steps) with the same loaded CHGNet 0.3.0 model:

* batched: ``relax_records(records, batch_size=...)``, all crystals stepped in lock-step with one CHGNet
  call a step, RMSD (pymatgen StructureMatcher) included, as a user calls it; with ``--workers 2`` in two
  worker processes of one torch thread each (their start-up included);
* peer: ``chgnet.model.StructOptimizer(model).relax(structure)`` one crystal at a time (ASE's FIRE and
  ``FrechetCellFilter``, one CHGNet call with forces and stresses a step), on the first ``--peer-n``
  crystals (default all).

With ``--optimizer bfgs --bfgs-alpha A`` both sides start BFGS from the Hessian A times 1 (ASE's is 70 eV/A^2),
and, when A is not 70, the batched side runs a second time from ASE's 70: steps, time and the final energies of the
two starts are printed side by side (a softer start must reach the same minima in fewer steps), with, for scale, how
far FIRE's minima lie from BFGS's at the same ``fmax``.

Printed: wall-clock crystals/s, CPU crystals/s (crystals per CPU second of this process and its workers
times the number of torch threads: what the cores deliver when nothing else runs on them; the VM is shared, so the wall
figure moves with the load average printed before and after), the ratio, steps, and the agreement of the
two sides' final energies (same problem solved). Target (issue 16): >= 5 crystals/s for cells of <= 10
atoms on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import time


def _perturbed_crystals(n: int, max_atoms: int, seed: int) -> list:
    import numpy as np

    from td_data.synthetic import SyntheticDatasetGenerator

    rng = np.random.default_rng(seed)
    records = SyntheticDatasetGenerator(seed=seed, max_atoms=max_atoms, fraction_2d=0.0).generate_dataset(n)
    out = []
    for rec in records:
        strain = rng.uniform(-0.02, 0.02, size=(3, 3))
        strain = np.eye(3) + 0.5 * (strain + strain.T)
        lattice = rec.lattice @ strain
        cart = rec.frac_coords @ lattice + rng.normal(scale=0.05, size=rec.frac_coords.shape)
        out.append(rec.replace(lattice=lattice, frac_coords=cart @ np.linalg.inv(lattice)))
    return out


def _cpu() -> float:
    """CPU seconds of this process and of its finished worker processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _energy_gap(what: str, first: list, second: list) -> str:
    """One line on how the final energies of two relaxations of the same crystals differ (both converged)."""
    import numpy as np

    gap = np.array(
        [a.energy_per_atom - b.energy_per_atom for a, b in zip(first, second) if a.converged and b.converged]
    )
    return (
        f"{what}, final energy over {len(gap)} crystals: mean {gap.mean() * 1000:+.2f} meV/atom, mean |diff| "
        f"{np.abs(gap).mean() * 1000:.2f}, {int((np.abs(gap) > 0.01).sum())} differ by more than 10 meV/atom (lower: "
        f"{int((gap < -0.01).sum())}), largest {np.abs(gap).max() * 1000:.0f}"
    )


def main() -> None:
    from td_data.relax import OPTIMIZERS  # light: numpy and threadpoolctl

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="crystals (default 64)")
    parser.add_argument("--max-atoms", type=int, default=10, help="largest cell (default 10 sites)")
    parser.add_argument("--batch-size", type=int, default=32, help="relax_records batch size (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2; 1 on a busy machine)")
    parser.add_argument("--peer-n", type=int, default=None, help="crystals for the one-by-one peer (default all)")
    parser.add_argument("--fmax", type=float, default=0.1, help="eV/A (default 0.1)")
    parser.add_argument("--max-steps", type=int, default=200, help="FIRE steps (default 200)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="fire", help="both sides (default fire)")
    parser.add_argument("--workers", type=int, default=1, help="relax_records worker processes (default 1)")
    parser.add_argument(
        "--bfgs-alpha",
        type=float,
        default=None,
        help="BFGS's initial Hessian, eV/A^2, both sides (only with --optimizer bfgs; default ASE's 70)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.bfgs_alpha is not None and args.optimizer != "bfgs":
        parser.error(f"--bfgs-alpha {args.bfgs_alpha} needs --optimizer bfgs (FIRE has no initial Hessian)")

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from td_data.relax import BfgsSettings, Relaxer, relax_records

    bfgs = None if args.bfgs_alpha is None else BfgsSettings(alpha=args.bfgs_alpha)
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}; torch {torch.__version__}, {args.threads} threads")
    records = _perturbed_crystals(args.n, args.max_atoms, args.seed)
    sizes = [r.num_atoms for r in records]
    print(f"{len(records)} perturbed synthetic crystals, {min(sizes)}-{max(sizes)} atoms (mean {np.mean(sizes):.1f})")
    relaxer = Relaxer(threads=args.threads)
    relaxer.predict(records[:4])  # warm-up: first torch call

    def batched(optimizer, settings):
        t0, c0 = time.perf_counter(), _cpu()
        got = relax_records(
            records,
            fmax=args.fmax,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            relaxer=relaxer,
            progress=True,
            optimizer=optimizer,
            workers=args.workers,
            bfgs=settings,
        )
        return got, time.perf_counter() - t0, _cpu() - c0

    ours, wall, cpu = batched(args.optimizer, bfgs)
    from td_data.relax import with_rmsd

    t1 = time.perf_counter()
    [with_rmsd(r) for r in ours]  # the RMSD part of the batched time, measured alone
    rmsd_share = (time.perf_counter() - t1) / len(ours)
    steps = [r.n_steps for r in ours]
    alpha = f", alpha {bfgs.alpha:g}" if bfgs is not None else ""
    print(
        f"batched relax_records ({args.optimizer}{alpha}, batch {args.batch_size}, {args.workers} process(es)): "
        f"{len(records) / wall:.2f} crystals/s wall, "
        f"{len(records) / cpu * args.threads:.2f} crystals/s per {args.threads} CPU-seconds; "
        f"{sum(r.converged for r in ours)}/{len(ours)} converged, steps mean {np.mean(steps):.1f} max {max(steps)}; "
        f"RMSD about {rmsd_share * 1000:.0f} ms a crystal"
    )

    if bfgs is not None and bfgs != BfgsSettings():
        ase, ase_wall, _ = batched("bfgs", None)
        ase_steps = [r.n_steps for r in ase]
        print(
            f"same crystals from ASE's start (alpha {BfgsSettings().alpha:g}): "
            f"{len(records) / ase_wall:.2f} crystals/s wall, {sum(r.converged for r in ase)}/{len(ase)} converged, "
            f"steps mean {np.mean(ase_steps):.1f} max {max(ase_steps)}; "
            f"speed-up of alpha {bfgs.alpha:g}: {ase_wall / wall:.2f}x"
        )
        print(_energy_gap(f"alpha {bfgs.alpha:g} minus alpha {BfgsSettings().alpha:g}", ours, ase))
        # for scale: how far two established optimisers' minima lie apart at this fmax
        fire = batched("fire", None)[0]
        print(_energy_gap(f"for scale, FIRE minus BFGS alpha {BfgsSettings().alpha:g}", fire, ase))

    from chgnet.model import StructOptimizer

    peer_n = len(records) if args.peer_n is None else min(args.peer_n, len(records))
    with contextlib.redirect_stdout(io.StringIO()):
        optimizer = StructOptimizer(model=relaxer.model, optimizer_class=args.optimizer.upper())
    t0, c0 = time.perf_counter(), _cpu()
    theirs = []
    # one BLAS thread for the peer too: ASE's FrechetCellFilter calls scipy's expm_frechet and logm on 3 x 3
    # matrices ten times a step, and with two OpenBLAS threads on a busy VM each call took milliseconds
    with threadpool_limits(1, user_api="blas"):
        for rec in tqdm(records[:peer_n], desc="StructOptimizer, one by one", unit="crystal"):
            extra = {"alpha": bfgs.alpha, "maxstep": bfgs.maxstep} if bfgs is not None else {}
            out = optimizer.relax(rec.to_structure(), fmax=args.fmax, steps=args.max_steps, verbose=False, **extra)
            energies = out["trajectory"].energies
            theirs.append((energies[-1] / rec.num_atoms, len(energies) - 2))
    peer_wall, peer_cpu = time.perf_counter() - t0, _cpu() - c0
    print(
        f"peer StructOptimizer ({args.optimizer}, one by one, {peer_n} crystals): "
        f"{peer_n / peer_wall:.2f} crystals/s wall, "
        f"{peer_n / peer_cpu * args.threads:.2f} crystals/s per {args.threads} CPU-seconds; "
        f"steps mean {np.mean([s for _, s in theirs]):.1f}"
    )
    both = [(o.energy_per_atom, e) for o, (e, _) in zip(ours, theirs) if o.converged]
    diff = np.abs([a - b for a, b in both])
    print(
        f"final energies, batched vs peer: mean |diff| {diff.mean() * 1000:.2f} meV/atom, max {diff.max() * 1000:.2f} "
        f"meV/atom over {len(both)} crystals"
    )
    print(
        f"ratio batched / peer: {(len(records) / wall) / (peer_n / peer_wall):.2f}x wall, "
        f"{(len(records) / cpu) / (peer_n / peer_cpu):.2f}x CPU"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
