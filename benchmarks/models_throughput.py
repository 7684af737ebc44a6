#!/usr/bin/env python
"""td-models throughput: sampling crystals/s at 50, 200 and 1,000 steps, training step time, preset sizes.

    python benchmarks/models_throughput.py [--train-steps 600] [--n-samples 64] [--quick]

1. **Parameter counts** of every preset, built on torch's meta device (no memory allocated).
2. **Training step** of ``cpu-demo`` (batch 32, physics phase on and off): mean wall time per
   optimiser step over the synthetic data set of td-data (the embedded default data).
3. **Sampling** with the ``cpu-demo`` model after ``--train-steps`` optimiser steps on that data
   (a short run, so that the samples are shaped by training rather than by the zero-initialised
   network): crystals/s at 50, 200 and 1,000 reverse steps, and the quality each step count gives,
   measured in the same run: structural validity (CDVAE: every distance >= 0.5 Angstrom, volume >=
   0.1 Angstrom^3), the median nearest-neighbour distance, and the 1-D Wasserstein distance between
   the density (g/cm^3-free: atoms per 100 Angstrom^3) of the samples and of the training crystals.
   The naive peer for speed is the full 1,000-step chain; the ratio column is the speed-up of the
   fast sampler over it.
4. With a CUDA device, the same timings for the ``small`` preset (training step at batch 32 in bf16,
   sampling 256 crystals at 50 steps).

Nothing asserts on time. Progress goes to stderr, tables to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from td_models import ExperimentConfig, TopologicalDiffusionModel, collate, crystal_item
from td_models.denoiser import count_parameters


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def training_items(n: int, seed: int, max_atoms: int) -> list[dict]:
    from td_data import SyntheticDatasetGenerator

    records = SyntheticDatasetGenerator(seed=seed).generate_dataset(n)
    return [crystal_item(r.lattice, r.frac_coords, r.atomic_numbers) for r in records if r.num_atoms <= max_atoms]


def quality(crystals: list[dict], reference_density: np.ndarray) -> dict[str, float]:
    from td_data import CrystalRecord
    from td_data.validity import min_distance, structure_validity

    valid, nearest, density = [], [], []
    for c in crystals:
        try:
            record = CrystalRecord(c["lattice"], c["frac_coords"], c["atomic_numbers"])
        except ValueError:
            valid.append(False)
            continue
        valid.append(structure_validity(record)[0])
        nearest.append(min_distance(record))
        density.append(100.0 * record.num_atoms / abs(np.linalg.det(record.lattice)))
    return {
        "valid": 100.0 * float(np.mean(valid)),
        "nn": float(np.median(nearest)) if nearest else float("nan"),
        "w_density": wasserstein_distance(density, reference_density) if density else float("nan"),
    }


def time_training(model, items, batch_size: int, steps: int, physics: bool, device, autocast_dtype=None) -> float:
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    model.train()
    times = []
    for step in range(steps + 2):
        batch = collate([items[i] for i in rng.choice(len(items), size=batch_size, replace=False)]).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            losses = model.training_losses(batch, physics=physics)
        optimiser.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:  # the first two steps warm up allocators and kernels
            times.append(time.perf_counter() - start)
    return float(np.mean(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=600, help="optimiser steps before sampling")
    parser.add_argument("--n-samples", type=int, default=64, help="crystals per sampling measurement")
    parser.add_argument("--n-data", type=int, default=600, help="synthetic training crystals")
    parser.add_argument("--quick", action="store_true", help="60 training steps, 16 samples, 200 crystals")
    args = parser.parse_args()
    if args.quick:
        args.train_steps, args.n_samples, args.n_data = 60, 16, 200
    torch.manual_seed(0)

    print("## Parameter counts (meta device)\n")
    print("| preset | hidden_dim | layers | heads | parameters |")
    print("|---|---|---|---|---|")
    for name in ExperimentConfig.preset_names():
        cfg = ExperimentConfig.preset(name)
        with torch.device("meta"):
            count = count_parameters(TopologicalDiffusionModel(cfg))
        mc = cfg.model_config
        print(f"| {name} | {mc.hidden_dim} | {mc.num_layers} | {mc.num_heads} | {count / 1e6:,.1f}M |")

    cpu = torch.device("cpu")
    cfg = ExperimentConfig.preset("cpu-demo")
    log(f"making {args.n_data} synthetic crystals (td-data) ...")
    items = training_items(args.n_data, seed=0, max_atoms=cfg.model_config.max_atoms)
    reference_density = np.array([100.0 * len(i["atomic_numbers"]) / abs(np.linalg.det(i["lattice"])) for i in items])
    model = TopologicalDiffusionModel(cfg)
    model.fit_normalisation(collate(items))
    batch_size = cfg.training_config.batch_size
    print(f"\n## Training step, cpu-demo, batch {batch_size}, {torch.get_num_threads()} threads\n")
    print("| phase | s/step | crystals/s |")
    print("|---|---|---|")
    for physics in (False, True):
        seconds = time_training(model, items, batch_size, 10, physics, cpu)
        label = "physics (heads + penalties)" if physics else "structure"
        print(f"| {label} | {seconds:.3f} | {batch_size / seconds:.0f} |")

    log(f"training cpu-demo for {args.train_steps} steps ...")
    start = time.perf_counter()
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.training_config.learning_rate)
    rng = np.random.default_rng(1)
    for step in range(args.train_steps):
        batch = collate([items[i] for i in rng.choice(len(items), size=batch_size, replace=False)])
        losses = model.training_losses(batch, physics=step >= args.train_steps // 2)
        optimiser.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % 100 == 0:
            log(f"  step {step}: loss {float(losses['total']):.3f}")
    log(f"trained in {time.perf_counter() - start:.0f} s")

    print(f"\n## Sampling, cpu-demo after {args.train_steps} training steps, {args.n_samples} crystals\n")
    print("| steps | corrector | s | crystals/s | vs 1000 steps | valid % | median NN (A) | W(density) |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for steps, corrector in ((1000, 0), (200, 0), (50, 0), (200, 1)):
        log(f"sampling {args.n_samples} crystals with {steps} steps, corrector {corrector} ...")
        start = time.perf_counter()
        crystals = model.sample(args.n_samples, steps=steps, corrector_steps=corrector, seed=0)
        seconds = time.perf_counter() - start
        results[(steps, corrector)] = seconds
        q = quality(crystals, reference_density)
        ratio = results[(1000, 0)] / seconds
        print(
            f"| {steps} | {corrector} | {seconds:.1f} | {args.n_samples / seconds:.1f} | {ratio:.1f}x | "
            f"{q['valid']:.0f} | {q['nn']:.2f} | {q['w_density']:.3f} |"
        )

    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        small = TopologicalDiffusionModel(ExperimentConfig.preset("small")).to(gpu)
        small.fit_normalisation(collate(items))
        print(f"\n## small preset on {torch.cuda.get_device_name()}\n")
        seconds = time_training(small, items, 32, 10, True, gpu, autocast_dtype=torch.bfloat16)
        print(f"training step, batch 32, bf16, physics phase: {seconds:.3f} s ({32 / seconds:.0f} crystals/s)")
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            small.sample(256, steps=50, seed=0)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(f"sampling 256 crystals, 50 steps, bf16: {seconds:.2f} s ({256 / seconds:.0f} crystals/s)")
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    else:
        print("\n(no CUDA device: the small-preset GPU timings were not run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
