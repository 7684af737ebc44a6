#!/usr/bin/env python
"""GPU training throughput and peak memory per preset, bf16, with and without gradient checkpointing.

    python benchmarks/gpu_training.py                          # every preset, batch 32, 5 warm-up + 20 timed steps
    python benchmarks/gpu_training.py --presets small medium --batch-size 16 --steps 10
    python benchmarks/gpu_training.py --cpu-dry-run            # check the script on CPU (cpu-demo, 2 steps)
    python benchmarks/gpu_training.py --items items.npz --json out.json   # a node without td-data (see below)

``--items`` takes training crystals from a ``td_models.save_crystals`` file instead of td-data's synthetic
generator, so the script runs on a GPU node that has PyTorch but not pymatgen; make such a file where
td-data is installed with ``python benchmarks/gpu_training.py --write-items items.npz``.

Without a CUDA device it prints a message and exits 0 (``--cpu-dry-run`` runs the same code on CPU,
with no memory figures, so that the script can be checked anywhere).

For each preset and each ``gradient_checkpointing`` setting: a ``td_models.training.Trainer`` (one
process, ``mixed_precision="bf16"``, EMA on, AdamW) on td-data synthetic crystals (seed 0, at most
20 atoms, repeated so that no epoch ends inside the measurement), ``fit(max_steps=warmup)`` to warm up,
then ``fit(max_steps=steps)`` timed with ``torch.cuda.synchronize`` on both sides. samples/s =
steps x batch / time; peak memory = ``torch.cuda.max_memory_allocated`` over the timed steps
(weights, EMA copy, AdamW state, gradients, activations). Out-of-memory is reported as such.

Beside the user guide's expectations (one H100): Small 32 samples/s at 24 GB, Medium 16 at 48 GB,
Large 8 at 80 GB. Nothing asserts on time. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time

import torch

EXPECTED = {"small": (32.0, 24.0), "medium": (16.0, 48.0), "large": (8.0, 80.0)}  # samples/s, GB (user guide)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synthetic_items(n: int) -> list[dict]:
    """``n`` training items: td-data synthetic crystals (seed 0, at most 20 atoms), repeated as needed."""
    from td_data import SyntheticDatasetGenerator
    from td_models import crystal_item

    records = SyntheticDatasetGenerator(seed=0).generate_dataset(min(n, 256))
    return [crystal_item(r.lattice, r.frac_coords, r.atomic_numbers) for r in records if r.num_atoms <= 20]


def repeat(base: list[dict], n: int) -> list[dict]:
    return [base[i % len(base)] for i in range(n)]


def measure(preset: str, checkpointing: bool, items: list[dict], args: argparse.Namespace, cuda: bool) -> dict:
    from td_models import ExperimentConfig
    from td_models.training import Trainer

    phases = [{"name": "physics_integration" if args.physics else "structure_learning", "start_epoch": 1,
               "learning_rate": 1e-4, "physics": args.physics}]  # fmt: skip
    config = ExperimentConfig.preset(
        preset,
        model_config={"gradient_checkpointing": checkpointing},
        training_config={"batch_size": args.batch_size, "mixed_precision": "bf16", "phases": phases},
    )
    trainer = None
    try:
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(config, items, output_dir=out, cpu=not cuda, progress_bar=False, tensorboard=False)
            params = trainer.model.num_parameters()
            trainer.fit(max_steps=args.warmup)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            result = trainer.fit(max_steps=args.steps)
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else None
        return {
            "params": params,
            "samples_per_s": args.steps * args.batch_size / elapsed,
            "peak_gb": peak,
            "loss": result.last_losses.get("total"),
        }
    except torch.cuda.OutOfMemoryError:
        return {"params": None, "samples_per_s": None, "peak_gb": None, "error": "out of memory"}
    finally:
        if trainer is not None:
            trainer.accelerator.free_memory()
        del trainer
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cpu-demo", "small", "medium", "large"])
    parser.add_argument("--batch-size", type=int, default=32, help="crystals per step (32)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps (20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (5)")
    parser.add_argument("--physics", action="store_true", help="time the physics phase (two denoiser passes)")
    parser.add_argument("--cpu-dry-run", action="store_true", help="cpu-demo, 2 steps on CPU: checks the script")
    parser.add_argument("--checkpointing", choices=("both", "off", "on"), default="both",
                        help="gradient checkpointing settings to time (both)")  # fmt: skip
    parser.add_argument("--items", default=None, help="training crystals from a td_models.save_crystals file")
    parser.add_argument("--write-items", default=None, metavar="PATH",
                        help="write the synthetic training crystals to PATH (for --items) and exit")  # fmt: skip
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON")
    args = parser.parse_args(argv)
    if args.write_items:
        from td_models import save_crystals

        path = save_crystals(args.write_items, synthetic_items(256), metadata={"source": "td-data synthetic, seed 0"})
        log(f"wrote {path}")
        return 0
    cuda = torch.cuda.is_available()
    if args.cpu_dry_run:
        args.presets, args.steps, args.warmup, args.batch_size, cuda = ["cpu-demo"], 2, 1, 8, False
        torch.set_num_threads(1)  # shared CPUs: more threads than free cores stall every op
    elif not cuda:
        print("gpu_training.py: no CUDA device visible; nothing to measure (try --cpu-dry-run to check the script)")
        return 0
    device = torch.cuda.get_device_name(0) if cuda else "CPU (dry run)"
    needed = args.batch_size * (args.warmup + args.steps + 1)
    if args.items:
        from td_models import load_crystals

        items = repeat(load_crystals(args.items)[0], needed)
    else:
        items = repeat(synthetic_items(needed), needed)
    rows = []
    for preset in args.presets:
        for checkpointing in {"both": (False, True), "off": (False,), "on": (True,)}[args.checkpointing]:
            log(f"{preset}, gradient checkpointing {'on' if checkpointing else 'off'} ...")
            rows.append((preset, checkpointing, measure(preset, checkpointing, items, args, cuda)))
            log(f"  {rows[-1][2]}")

    phase = "physics phase" if args.physics else "structure learning"
    print(f"\ntraining on {device}, bf16, batch {args.batch_size}, {phase}, {args.steps} steps after {args.warmup}\n")
    print(f"{'preset':<10}{'params':>9}{'grad ckpt':>11}{'samples/s':>11}{'peak GB':>9}{'user guide':>22}")
    for preset, checkpointing, r in rows:
        params = f"{r['params'] / 1e6:.{0 if r['params'] >= 1e7 else 2}f}M" if r.get("params") else "-"
        rate = f"{r['samples_per_s']:.1f}" if r.get("samples_per_s") else r.get("error", "-")
        peak = f"{r['peak_gb']:.1f}" if r.get("peak_gb") is not None else "-"
        guide = "{:.0f} samples/s, {:.0f} GB".format(*EXPECTED[preset]) if preset in EXPECTED else "-"
        print(f"{preset:<10}{params:>9}{'on' if checkpointing else 'off':>11}{rate:>11}{peak:>9}{guide:>22}")
    if args.json:
        import json

        rows_json = [{"preset": p, "gradient_checkpointing": c, **r} for p, c, r in rows]
        meta = {"device": device, "torch": torch.__version__, "batch_size": args.batch_size, "steps": args.steps,
                "warmup": args.warmup, "phase": phase, "rows": rows_json}  # fmt: skip
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
