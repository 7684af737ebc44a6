"""The wall-clock budget's probe against the trainer it plans for: seconds per optimiser step of each phase.

``train_options.fit_epochs_to_budget`` plans the epochs from a short probe (``pipelines.train.budget``); a probe
that times a cheaper step than the trainer takes makes the run stop at the budget before its schedule ends. This
script runs the probe and then the real ``td_models.training.Trainer`` for ``--steps`` optimiser steps of each
timed phase (after two warm-up steps), in the same process on the same crystals, and prints both with their
ratio. Repeat with ``--repeats`` to see the spread of a shared machine.

    OMP_NUM_THREADS=1 python benchmarks/budget_probe.py          # the families run file, its training crystals
    python benchmarks/budget_probe.py --run-file benchmarks/yield_families.yml \
        --store outputs/topological_families/families.h5

The store is read as the yield benchmark reads it (every record, with its labels); without one the script says
how to build it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def experiment(run_file: Path):
    """The run file's configuration merged over conf/base and conf/yield, as ``kedro run --config`` merges it."""
    from pipelines.train.nodes import experiment_config

    base = yaml.safe_load((ROOT / "conf" / "base" / "parameters_train.yml").read_text())
    env = yaml.safe_load((ROOT / "conf" / "yield" / "parameters_benchmark.yml").read_text())
    params = yaml.safe_load(run_file.read_text())["run"]["params"]
    blocks = {}
    for block in ("model_config", "physics_config", "training_config"):
        blocks[block] = {**(base.get(block) or {}), **(env.get(block) or {}), **(params.get(block) or {})}
    return experiment_config(blocks["model_config"], blocks["physics_config"], blocks["training_config"])


def trainer_seconds_per_step(config, items, phase, steps: int) -> float:
    """Seconds per optimiser step of the real Trainer in ``phase`` (moved to epoch 1, no warm-up)."""
    from td_models.training import Trainer

    tc = config.training_config
    changes = {"phases": (dataclasses.replace(phase, start_epoch=1),), "warmup_epochs": 0}
    if tc.scheduler == "phases":
        changes["learning_rate"] = phase.learning_rate
    cfg = dataclasses.replace(config, training_config=tc.replace(**changes))
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(cfg, items, None, output_dir=folder, cpu=True, progress_bar=False, tensorboard=False,
                          keep_history=True)  # fmt: skip
        trainer.fit(max_steps=2)
        t0 = time.perf_counter()
        trainer.fit(max_steps=steps)
        return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-file", type=Path, default=ROOT / "benchmarks" / "yield_families.yml")
    parser.add_argument("--store", type=Path, default=ROOT / "outputs" / "topological_families" / "families.h5")
    parser.add_argument("--steps", type=int, default=24, help="trainer steps timed per phase")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not args.store.is_file():
        build = "python scripts/build_topological_families.py --n 1500 --seed 0 --label-timeout 60"
        print(f"no crystal store at {args.store}: build it with {build} --output-dir outputs/topological_families",
              file=sys.stderr)  # fmt: skip
        return 2

    import torch

    from pipelines.train.budget import fit_epochs_to_budget
    from td_data import CrystalStore
    from td_models.batch import item_from_record

    torch.set_num_threads(1)
    config = experiment(args.run_file)
    mc = config.model_config
    with CrystalStore.open(args.store) as store:
        items = [item_from_record(r, mc.num_species) for r in store.read_all() if r.num_atoms <= mc.max_atoms]
    print(f"{len(items)} crystals of {args.store}, batch {config.training_config.batch_size}, run file {args.run_file}")
    print("| repeat | phase | probe s/step | trainer s/step | trainer / probe |")
    print("|---:|---|---:|---:|---:|")
    for repeat in range(args.repeats):
        fit = fit_epochs_to_budget(items, config, args.budget_minutes, "cpu", config.training_config.seed)
        timed = fit["probe_seconds_per_step_by_phase"]
        seen: dict[tuple[bool, bool], float] = {}
        for phase in config.training_config.phases:
            if phase.name not in timed:
                continue
            key = (bool(phase.physics), bool(phase.conditioning))
            if key not in seen:
                seen[key] = trainer_seconds_per_step(config, items, phase, args.steps)
            probe, real = timed[phase.name], seen[key]
            print(f"| {repeat + 1} | {phase.name} | {probe:.4f} | {real:.4f} | {real / probe:.2f} |")
        print(f"|   | plan | {fit['epochs']} epochs of {fit['steps_per_epoch']} steps, "
              f"{fit['planned_seconds'] / 60:.1f} of {args.budget_minutes:g} min | | |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
