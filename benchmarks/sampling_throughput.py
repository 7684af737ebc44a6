#!/usr/bin/env python
"""Sampling throughput of ``cpu-demo``: 1,000 crystals now, against the old sampling path in the same run.

    python benchmarks/sampling_throughput.py                      # 1,000 crystals, the default settings
    python benchmarks/sampling_throughput.py --model-path outputs/training/final_model.pt
    python benchmarks/sampling_throughput.py --quick              # 200 crystals, 20 steps: checks the script

Rows (all in one process, on the same model and the same requested atom counts):

* **new, default**: ``model.sample(n, threads=1)`` -- the model's ``sampling_steps`` (100 strided
  reverse steps for ``cpu-demo``), crystals sorted by atom count before batching, the cheap
  nearest-image search of the distance penalty, one torch thread.
* **new, torch threads**: the same with torch's own thread count (``torch.get_num_threads()``).
* **old path**: what sampling did before: batches of 256 crystals in request order (every crystal padded
  to the largest of its batch), the 27-image autograd distance penalty, at the same step count on
  ``--baseline-n`` crystals (the first of the request), with one thread and with torch's threads (the
  old default); and the old default, the full chain of ``num_steps`` (1,000) reverse steps with
  torch's threads, extrapolated from that row (time is linear in steps; the full chain of 1,000
  crystals is what did not finish in 400 s).

Without ``--model-path`` the model is a ``cpu-demo`` network whose weights are drawn at random
(N(0, 0.02), so that no output layer is zero) with its normalisation fitted to td-data's synthetic
crystals: the cost of sampling does not depend on how well a model is trained. Nothing asserts on time;
progress goes to stderr, the table to stdout. The load average is printed: on a shared machine, compare
rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from td_models import ExperimentConfig, TopologicalDiffusionModel, crystal_item
from td_models import constraints as td_constraints

_IMAGES = td_constraints._IMAGES


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def old_pair_distances(lattice: torch.Tensor, frac_coords: torch.Tensor) -> torch.Tensor:
    """The distance kernel sampling used before: autograd through all 27 periodic images."""
    diff = frac_coords[:, None, :, :] - frac_coords[:, :, None, :]  # (B, N, N, 3)
    diff = diff - torch.round(diff)
    images = _IMAGES.to(device=frac_coords.device, dtype=frac_coords.dtype)
    shifted = diff[..., None, :] + images  # (B, N, N, 27, 3)
    cart = torch.einsum("bijmk,bkl->bijml", shifted, lattice)  # (B, N, N, 27, 3)
    sq = (cart * cart).sum(-1)  # (B, N, N, 27)
    n = frac_coords.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=frac_coords.device)
    origin = (images.abs().sum(-1) == 0)[None, None, None, :] & eye[None, :, :, None]
    sq = sq.masked_fill(origin, float("inf"))
    return torch.sqrt(sq.min(dim=-1).values.clamp_min(1e-12))


def build_model(args: argparse.Namespace) -> TopologicalDiffusionModel:
    if args.model_path:
        return TopologicalDiffusionModel.load(args.model_path)
    from td_data import SyntheticDatasetGenerator

    torch.manual_seed(0)
    model = TopologicalDiffusionModel(ExperimentConfig.preset("cpu-demo"))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    records = SyntheticDatasetGenerator(seed=0, max_atoms=model.config.model_config.max_atoms).generate_dataset(256)
    model.fit_normalisation([crystal_item(r.lattice, r.frac_coords, r.atomic_numbers) for r in records])
    return model


def atom_counts(model: TopologicalDiffusionModel, n: int, seed: int) -> list[int]:
    weights = model.atom_count_weights.double().cpu().numpy()
    rng = np.random.default_rng(seed)
    return rng.choice(np.arange(len(weights)), size=n, p=weights / weights.sum()).tolist()


def run_new(model, counts, steps, threads) -> float:
    start = time.perf_counter()
    model.sample(len(counts), num_atoms=counts, steps=steps, seed=0, threads=threads)
    return time.perf_counter() - start


def run_old(model, counts, steps) -> float:
    """Request order in batches of 256 (one sample call each: no sorting across them), old distance kernel."""
    real = td_constraints.pair_distances
    td_constraints.pair_distances = old_pair_distances
    try:
        start = time.perf_counter()
        for i in range(0, len(counts), 256):
            chunk = counts[i : i + 256]
            model.sample(len(chunk), num_atoms=chunk, steps=steps, seed=i, batch_size=256)
        return time.perf_counter() - start
    finally:
        td_constraints.pair_distances = real


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", help="a TopologicalDiffusionModel file (default: a fresh cpu-demo network)")
    parser.add_argument("--n-samples", type=int, default=1000, help="crystals of the new path (1000)")
    parser.add_argument("--baseline-n", type=int, default=128, help="crystals of the old path (128)")
    parser.add_argument("--steps", type=int, help="reverse steps of both paths (default: the model's sampling_steps)")
    parser.add_argument("--quick", action="store_true", help="300 crystals, 32 for the old path, 10 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_samples, args.baseline_n, args.steps = 300, 32, args.steps or 10

    default_threads = torch.get_num_threads()
    model = build_model(args)
    model.eval()
    mc = model.config.model_config
    steps = args.steps or mc.sampling_steps or mc.num_steps
    counts = atom_counts(model, args.n_samples, seed=1)
    log(f"{args.n_samples} crystals, {steps} steps, mean {np.mean(counts):.1f} atoms; warming up")
    model.sample(4, num_atoms=2, steps=2, seed=0)

    rows = []
    log("new path, one thread ...")
    load = os.getloadavg()[0]
    rows.append(("new, default (threads=1)", args.n_samples, steps, load, run_new(model, counts, steps, 1)))
    log(f"new path, {default_threads} threads ...")
    load = os.getloadavg()[0]
    wall = run_new(model, counts, steps, default_threads)
    rows.append((f"new, torch threads ({default_threads})", args.n_samples, steps, load, wall))
    log(f"old path, {args.baseline_n} crystals, one thread ...")
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    wall = run_old(model, counts[: args.baseline_n], steps)
    rows.append(("old path (threads=1)", args.baseline_n, steps, load, wall))
    log(f"old path, {args.baseline_n} crystals, {default_threads} threads ...")
    torch.set_num_threads(default_threads)
    load = os.getloadavg()[0]
    wall = run_old(model, counts[: args.baseline_n], steps)
    rows.append((f"old path, torch threads ({default_threads})", args.baseline_n, steps, load, wall))
    old_per_step = wall / (args.baseline_n * steps)
    full = mc.num_steps * args.n_samples * old_per_step
    rows.append(("old default: full chain, extrapolated", args.n_samples, mc.num_steps, load, full))

    baseline = args.n_samples / full
    print(f"sampling throughput, cpu-demo ({model.num_parameters():,} parameters) on {os.cpu_count()} CPUs;"
          " load = 1-minute load average when the row started")  # fmt: skip
    print(f"{'path':<40} {'crystals':>8} {'steps':>6} {'load':>5} {'wall s':>9} {'crystals/s':>11} "
          f"{'ms/crystal-step':>16} {'vs old default':>15}")  # fmt: skip
    for label, n, s, load, wall in rows:
        rate = n / wall
        print(f"{label:<40} {n:>8} {s:>6} {load:>5.1f} {wall:>9.1f} {rate:>11.2f} {1e3 * wall / (n * s):>16.3f} "
              f"{rate / baseline:>14.1f}x")  # fmt: skip
    default_steps = mc.sampling_steps or mc.num_steps
    new_wall = rows[0][4] * (1000 / args.n_samples) * (default_steps / steps)
    measured = "measured" if (args.n_samples, steps) == (1000, default_steps) else "extrapolated"
    print(f"1,000 crystals at the default {default_steps} steps, new path, one thread: {new_wall:.0f} s ({measured};"
          " target: at most 120 s on 2 cores)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
