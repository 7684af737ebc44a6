#!/usr/bin/env python
"""Size-bucketed training batches against random ones: crystals a second of the training step, in one process.

    OMP_NUM_THREADS=1 python benchmarks/batch_padding.py --dataset carbon_24 --image-cutoff 3
    python benchmarks/batch_padding.py --dataset perov_5            # one size (5 atoms): nothing to gain

The denoiser pads every crystal of a batch to the batch's largest (dense attention over all pairs), so a batch of
random sizes pays for pairs it does not have. ``training_config.bucket_batches`` k sorts pools of k batches by
atom count before cutting them into batches (``td_models.training.sampler``). This script takes the training
crystals of a benchmark data set (``../shared/data/benchmarks``), a fresh model of the benchmark's shape (2
layers of 64, as ``conf/carbon24``; ``--hidden-dim``, ``--num-layers``, ``--image-cutoff`` change it) and times
whole epochs of optimiser steps (forward, backward, gradient clipping, AdamW) with the batches of the trainer's
sampler, random (``bucket_batches`` 0) and bucketed, alternating epoch by epoch so that a change in the
machine's load touches both. Printed: crystals a second (median over the epochs), padded pair slots over real
pairs, and the ratio. Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="carbon_24", choices=("carbon_24", "perov_5"))
    p.add_argument("--data-dir", type=Path, default=None, help="the CDVAE files (default ../shared/data/benchmarks/X)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--bucket-batches", type=int, default=20, help="the bucketed run's pool, in batches (default 20)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs of each kind (default 3)")
    p.add_argument("--max-train", type=int, default=None, help="the first N training crystals only")
    p.add_argument("--hidden-dim", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--image-cutoff", type=float, default=None, help="model_config.image_cutoff (default off)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for name in ("batch_size", "epochs", "hidden_dim", "num_layers", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.bucket_batches < 2:
        p.error(f"--bucket-batches must be >= 2, got {args.bucket_batches}")

    import torch
    from tqdm.auto import tqdm

    from td_data.evaluation import SPLIT_FILES, load_split
    from td_models import ExperimentConfig, ModelConfig, TopologicalDiffusionModel, TrainingConfig
    from td_models.batch import CrystalDataset, collate, crystal_item
    from td_models.training.sampler import ShardedBatchSampler

    torch.set_num_threads(args.threads)
    data_dir = args.data_dir or ROOT.parent / "shared" / "data" / "benchmarks" / args.dataset
    files = SPLIT_FILES[args.dataset]
    records = load_split([data_dir / f for f in files.train], "training", limit=args.max_train).records
    items = [crystal_item(np.asarray(r.lattice), np.asarray(r.frac_coords), list(r.atomic_numbers)) for r in records]
    dataset = CrystalDataset(items)
    sizes = dataset.num_atoms()
    model_config = ModelConfig(
        hidden_dim=args.hidden_dim,
        num_layers=args.num_layers,
        num_heads=4,
        max_atoms=int(sizes.max()),
        image_cutoff=args.image_cutoff,
    )
    config = ExperimentConfig(model_config=model_config, training_config=TrainingConfig(batch_size=args.batch_size))
    torch.manual_seed(0)
    model = TopologicalDiffusionModel(config).train()
    model.fit_normalisation(collate(dataset.items))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    samplers = {
        "random": ShardedBatchSampler(len(dataset), args.batch_size, seed=0),
        "bucketed": ShardedBatchSampler(
            len(dataset), args.batch_size, seed=0, sizes=sizes, bucket_batches=args.bucket_batches
        ),
    }
    log(
        f"{len(dataset)} training crystals of {args.dataset} ({sizes.min()}-{sizes.max()} atoms), batch "
        f"{args.batch_size}, {model.num_parameters() / 1e6:.2f}M parameters, load average {os.getloadavg()[0]:.1f}"
    )

    def epoch(kind: str, e: int) -> float:
        """Crystals a second of the optimiser steps of epoch ``e`` with ``kind`` batches."""
        seconds, crystals = 0.0, 0
        for index in samplers[kind].batches(e):
            batch = collate([dataset[int(i)] for i in index])
            t0 = time.perf_counter()
            loss = model.training_losses(batch, conditioning=False, generator=generator)["total"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds += time.perf_counter() - t0
            crystals += len(index)
        return crystals / seconds

    rates: dict[str, list[float]] = {"random": [], "bucketed": []}
    epoch("random", 0)  # warm-up
    with tqdm(total=2 * args.epochs, desc="epochs", unit="epoch", file=sys.stderr) as bar:
        for e in range(1, args.epochs + 1):
            for kind in ("random", "bucketed") if e % 2 else ("bucketed", "random"):
                rates[kind].append(epoch(kind, e))
                bar.update(1)

    real = int((sizes.astype(np.int64) ** 2).sum())
    print(f"# {args.dataset}: {len(dataset)} training crystals, batch {args.batch_size}, {args.epochs} epochs each, "
          f"hidden {args.hidden_dim} x {args.num_layers} layers, image_cutoff {args.image_cutoff}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| batches | crystals/s (median) | padded pair slots / real pairs |")
    print("|---|---:|---:|")
    for kind, sampler in samplers.items():
        padded = sum(len(b) * int(sizes[b].max()) ** 2 for b in sampler.batches(1))
        label = kind if kind == "random" else f"bucketed (bucket_batches {args.bucket_batches})"
        print(f"| {label} | {statistics.median(rates[kind]):.1f} | {padded / real:.2f} |")
    ratio = statistics.median(rates["bucketed"]) / statistics.median(rates["random"])
    print(f"bucketed / random: {ratio:.2f}x crystals a second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
