#!/usr/bin/env python
"""Training throughput of ``cpu-demo`` on this machine: samples/s with 1 and 2 processes, scaling efficiency.

    python benchmarks/training_throughput.py                # 512 synthetic crystals, 4 epochs a run
    python benchmarks/training_throughput.py --quick        # 128 crystals, 3 epochs
    python benchmarks/training_throughput.py --physics      # the physics phase (two denoiser passes a step)

The same ``td_models.training.Trainer`` on the same crystals (td-data's synthetic generator, seed 0,
made once and handed to every run), each run in a fresh process:

1. one process, one torch thread: the baseline of the scaling efficiency;
2. one process, two torch threads: intra-op parallelism on the same cores, to compare;
3. two processes, one thread each, started by ``accelerate launch --multi_gpu --num_processes 2``
   with the script's ``--cpu`` (DDP over gloo; accelerate's own ``--cpu`` launch starts one process).

Batch 32 crystals per process (weak scaling: the global batch doubles with two processes), EMA on,
no validation. samples/s is what the Trainer logs per epoch (crystals of all processes over the
summed step time of the slowest process: data loading, forward, backward, all-reduce, optimiser and
EMA; checkpoint I/O excluded); the first epoch is warm-up and left out, the median of the others is
reported. Scaling efficiency = samples/s(2 processes) / (2 x samples/s(1 process, 1 thread)).

Nothing asserts on time. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_items(n: int, path: Path) -> None:
    from td_data import SyntheticDatasetGenerator
    from td_models import crystal_item

    records = SyntheticDatasetGenerator(seed=0).generate_dataset(n)
    items = [crystal_item(r.lattice, r.frac_coords, r.atomic_numbers) for r in records if r.num_atoms <= 20]
    with open(path, "wb") as handle:
        pickle.dump(items, handle)


def worker(args: argparse.Namespace) -> int:
    """One training run; the main process writes its throughput to ``args.worker`` (JSON)."""
    import torch

    from td_models import ExperimentConfig
    from td_models.training import Trainer, read_metrics

    torch.set_num_threads(args.threads)
    with open(args.items, "rb") as handle:
        items = pickle.load(handle)
    phases = [{"name": "physics_integration" if args.physics else "structure_learning", "start_epoch": 1,
               "learning_rate": 5e-4, "physics": args.physics}]  # fmt: skip
    config = ExperimentConfig.preset(
        "cpu-demo", training_config={"max_epochs": args.epochs, "checkpoint_every": 1000, "phases": phases}
    )
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, items, output_dir=out, cpu=True, progress_bar=False, tensorboard=False)
        started = time.perf_counter()
        trainer.fit()
        wall = time.perf_counter() - started
        if trainer.is_main_process:
            rows = [r for r in read_metrics(Path(out) / "metrics.csv") if r["kind"] == "epoch"]
            rates = [r["samples_per_s"] for r in rows[1:]] or [rows[0]["samples_per_s"]]
            result = {
                "processes": trainer.world_size,
                "threads": args.threads,
                "samples_per_s": statistics.median(rates),
                "epoch_rates": rates,
                "steps_per_epoch": trainer.steps_per_epoch,
                "crystals": len(items),
                "wall_s": wall,
            }
            Path(args.worker).write_text(json.dumps(result))
    return 0


def run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        log(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"run failed with status {done.returncode}: {' '.join(command)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512, help="synthetic crystals (512)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs a run, the first one warm-up (4)")
    parser.add_argument("--quick", action="store_true", help="128 crystals, 3 epochs")
    parser.add_argument("--physics", action="store_true", help="time the physics phase instead of structure learning")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--items", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", action="store_true", help=argparse.SUPPRESS)  # workers always train on CPU
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.quick:
        args.n, args.epochs = 128, 3

    python = sys.executable
    launcher = str(Path(python).with_name("accelerate"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        items = Path(tmp) / "items.pkl"
        log(f"generating {args.n} synthetic crystals ...")
        make_items(args.n, items)
        common = ["--items", str(items), "--epochs", str(args.epochs), *(["--physics"] if args.physics else [])]
        runs = [
            ("1 process, 1 thread", [python, str(HERE), "--threads", "1"]),
            ("1 process, 2 threads", [python, str(HERE), "--threads", "2"]),
            (
                "2 processes x 1 thread",
                [
                    launcher,
                    "launch",
                    "--multi_gpu",
                    "--num_processes",
                    "2",
                    "--num_machines",
                    "1",
                    "--mixed_precision",
                    "no",
                    "--dynamo_backend",
                    "no",
                    "--num_cpu_threads_per_process",
                    "1",
                    str(HERE),
                    "--threads",
                    "1",
                    "--cpu",
                ],
            ),  # fmt: skip
        ]
        for label, command in runs:
            out = Path(tmp) / f"result_{len(rows)}.json"
            log(f"{label}: {args.epochs} epochs ...")
            run([*command, *common, "--worker", str(out)], env)
            result = json.loads(out.read_text())
            rows.append((label, result))
            log(f"  {result['samples_per_s']:.1f} samples/s (epochs {[round(r, 1) for r in result['epoch_rates']]})")

    base = rows[0][1]["samples_per_s"]
    phase = "physics phase" if args.physics else "structure learning"
    print(f"\ncpu-demo training throughput ({phase}, batch 32 per process, {rows[0][1]['crystals']} crystals)\n")
    print(f"{'run':<26}{'samples/s':>12}{'steps/epoch':>13}{'vs 1x1':>9}{'efficiency':>12}")
    for label, result in rows:
        speedup = result["samples_per_s"] / base
        efficiency = speedup / result["processes"] if result["processes"] > 1 else None
        eff = f"{100 * efficiency:.0f}%" if efficiency is not None else "-"
        print(f"{label:<26}{result['samples_per_s']:>12.1f}{result['steps_per_epoch']:>13}{speedup:>9.2f}{eff:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
