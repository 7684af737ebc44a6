#!/usr/bin/env python
"""Can a generator put a real crystal back together? Test crystals noised to a step ``t``, denoised by the sampler.

    python benchmarks/recovery_from_noise.py --dataset carbon_24 --model-path outputs/c24_img/model.pt

For each model and each start step ``t`` of ``--levels``, the first ``--n`` crystals of the data set's test split
(``--split train``: of its training files) have their coordinates noised at ``t`` (wrapped normal, ``sigma_t`` in
cell fractions; lattice and species clean, as the coordinate column of ``denoising_by_noise_level.py``), and the
sampler's coordinate chain runs from ``t`` to 0: the predictor step of the benchmark's 100-step chain (a stride of
``num_steps / 100``) with ``--corrector-steps`` Langevin corrector steps before each, unconditioned, the lattice and
species held at the crystal's own.

Printed per start step, for the noised crystals and for the recovered ones: the mean CrystalNN fingerprint distance
to the crystal's own original (the coverage metrics' structure fingerprint; their cutoff is 0.2 on Perov-5 and
Carbon-24) and the share within 0.2, and the mean CrystalNN probability of 1-2 / 3 / 4 / 5+ neighbours a site
(``sample_geometry.py --coordination``). A model whose last steps know the local order brings the noised crystals
back inside the cutoff; one that does not leaves them where the noise put them, or further. Generation ends with
exactly these steps, so this separates poor local denoising from a poor start. Nothing here is timed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# run as a script, its own folder is first on the import path: the sibling script's helpers are shared, not copied
from denoising_by_noise_level import load_records, log, parse_levels, split_options_parser
from sample_geometry import coordination_cell

LEVELS = "10,30,100,200"
CUTOFF = 0.2  # CDVAE's structure cutoff for Perov-5 and Carbon-24


def recover(model, batch, t_start: int, corrector_steps: int, step_lr: float, seed: int):
    """(noised, recovered) fractional coordinates (sum N, 3) of ``batch`` noised at ``t_start`` and denoised to 0."""
    gen = torch.Generator().manual_seed(seed + t_start)
    n = len(batch)
    species, index = batch.atom_types - 1, batch.batch_index
    stride = max(1, model.num_steps // 100)
    taus = list(range(t_start, 0, -stride)) + [0]
    with torch.no_grad():
        lattice0 = model.normalise_lattice(batch.lattice, batch.num_atoms)
        cond = model.conditions(*model.conditions.null_like(n))
        t0 = torch.full((n,), t_start, dtype=torch.long)
        noised, _ = model.coord_process.q_sample(batch.frac_coords, t0[index], generator=gen)
        frac = noised
        for t_int, s_int in zip(taus, taus[1:]):
            t = torch.full((n,), t_int, dtype=torch.long)
            t_atoms, s_atoms = t[index], torch.full_like(t[index], s_int)

            def score(frac, t=t):
                out, mask = model.denoise(lattice0, frac, species, index, batch.num_atoms, t, cond)
                return out.coord_score[mask]

            for _ in range(corrector_steps):
                frac = model.coord_process.corrector_step(frac, t_atoms, score(frac), step_lr=step_lr, generator=gen)
            frac = model.coord_process.predictor_step(frac, t_atoms, s_atoms, score(frac), generator=gen)
    return noised, frac


def describe(records, frac: torch.Tensor, offsets: np.ndarray, reference: np.ndarray) -> tuple[str, str]:
    """("mean fingerprint distance to ``reference`` (rows: the originals) | share within the cutoff", CN cell)."""
    from td_data.fingerprint import structure_fingerprint

    coords = torch.remainder(frac, 1.0).double().numpy()
    prints = np.stack([
        structure_fingerprint(np.asarray(r.lattice), coords[offsets[i] : offsets[i + 1]], r.atomic_numbers)
        for i, r in enumerate(records)
    ])  # fmt: skip
    dist = np.linalg.norm(prints - reference, axis=1)
    return f"{dist.mean():.3f} | {100 * np.mean(dist <= CUTOFF):.0f}", coordination_cell(prints)


def main() -> None:
    parser = split_options_parser(__doc__.split("\n")[0], "carbon_24", 200, LEVELS)
    parser.add_argument("--corrector-steps", type=int, default=3, help="Langevin steps before each predictor step")
    parser.add_argument("--step-lr", type=float, default=1e-5, help="corrector step size (the sampler's default)")
    args = parser.parse_args()
    if args.n < 1:
        raise SystemExit(f"--n must be >= 1, got {args.n}")
    if args.corrector_steps < 0:
        raise SystemExit(f"--corrector-steps must be >= 0, got {args.corrector_steps}")

    from td_data.fingerprint import structure_fingerprint
    from td_models import TopologicalDiffusionModel
    from td_models.batch import collate, crystal_item

    torch.set_num_threads(args.threads)
    records = load_records(args)
    for path in args.model_path:
        if not Path(path).is_file():
            raise SystemExit(f"no model at {path}")
    models = [TopologicalDiffusionModel.load(path).eval() for path in args.model_path]
    levels = parse_levels(args.levels, min(m.num_steps for m in models))
    batch = collate([crystal_item(np.asarray(r.lattice), np.asarray(r.frac_coords), list(r.atomic_numbers))
                     for r in records])  # fmt: skip
    offsets = np.concatenate([[0], np.cumsum(batch.num_atoms.numpy())])
    reference = np.stack([structure_fingerprint(np.asarray(r.lattice), r.frac_coords, r.atomic_numbers)
                          for r in records])  # fmt: skip
    log(f"{len(records)} {args.split} crystals of {args.dataset}, {len(models)} model(s)")

    print(f"# Recovery from noise: {args.dataset}, {len(records)} {args.split} crystals, seed {args.seed}, "
          f"{args.corrector_steps} corrector steps (step_lr {args.step_lr:g}), structure cutoff {CUTOFF}")  # fmt: skip
    shares = describe(records, batch.frac_coords, offsets, reference)[1]
    print(f"# the {args.split} crystals: CN 1-2 / 3 / 4 / 5+ = {shares} %")
    for i, path in enumerate(args.model_path):
        print(f"# [{i}] {path}")
    print("| t | sigma | model | noised: distance | within 0.2 [%] | CN 1-2 / 3 / 4 / 5+ [%] "
          "| recovered: distance | within 0.2 [%] | CN 1-2 / 3 / 4 / 5+ [%] |")  # fmt: skip
    print("|---" * 9 + "|")
    for t_value in levels:
        sigma = float(models[0].coord_process.sigma(t_value))
        for i, model in enumerate(models):
            noised, recovered = recover(model, batch, t_value, args.corrector_steps, args.step_lr, args.seed)
            before = " | ".join(describe(records, noised, offsets, reference))
            after = " | ".join(describe(records, recovered, offsets, reference))
            print(f"| {t_value} | {sigma:.4f} | [{i}] | {before} | {after} |", flush=True)
        log(f"t = {t_value} done")


if __name__ == "__main__":
    main()
