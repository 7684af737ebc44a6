#!/usr/bin/env python
"""Rounds of active learning from a labelled crystal store: does the target class's yield rise round by round?

    python benchmarks/active_learning_rounds.py --store outputs/topological_families/families.h5 \\
        [--rounds 3] [--n-candidates 64] [--n-add 8] [--max-epochs 60] [--output-dir outputs/active_learning_rounds]

The store's crystals (TB-labelled, e.g. the topological-families build's ``families.h5``) are split 80/10/10
(``pipelines.split.nodes.split_crystals``, seed 0); a small model (64 hidden, 2 layers, dropout 0.1 for the
acquisition's MC-dropout spread, 50 sampling steps) is trained on the training part for ``--max-epochs`` epochs
(``pipelines.train.nodes.train_model``, one torch thread), then ``pipelines.active_learning.nodes.run_active_learning``
runs ``--rounds`` rounds for ``z2_ti`` with a band gap in [0.1, 0.5] eV: ``--n-candidates`` sampled, at most 32
relaxed with CHGNet (stability threshold 0.1 eV/atom), TB-labelled, ``--n-add`` added by the acquisition rule
(confidence, disagreement and spread weighted 1, a quarter explored at random), five fine-tuning epochs.

Printed: the base training's size and time, then one line per round (generated, relaxed, passed the stability
filter, labelled, added, the ``z2_ti`` yield among the labelled with its Wilson 95% interval, the class counts);
written: ``report.json`` (the pipeline's report) and the pipeline's three figures. The work folder resumes: run
the same command again after an interruption. A measurement, not a test: the yields are whatever they are.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

MODEL = {"num_species": 100, "hidden_dim": 64, "num_topo_classes": 4, "num_layers": 2, "num_heads": 4,
         "max_atoms": 20, "num_steps": 1000, "sampling_steps": 50, "dropout": 0.1}  # fmt: skip
PHYSICS = {"topological_class": "z2_ti", "band_gap_range": [0.1, 0.5], "target_chern_number": 1,
           "stability_threshold": 0.1, "constraint_weight": 2.0, "guidance_scale": 2.0}  # fmt: skip


def training(max_epochs: int) -> dict:
    physics_from = min(21, max(1, max_epochs // 3))
    return {"batch_size": 32, "learning_rate": 0.001, "max_epochs": max_epochs, "warmup_epochs": 1,
            "gradient_clipping": 1.0, "ema_decay": 0.99, "checkpoint_every": 10, "keep_checkpoints": 1, "seed": 0,
            "phases": [{"name": "structure_learning", "start_epoch": 1, "learning_rate": 0.001, "physics": False},
                       {"name": "physics_integration", "start_epoch": physics_from, "learning_rate": 0.0005,
                        "physics": True}]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, required=True, help="a td-data crystal store with TB labels")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n-candidates", type=int, default=64)
    p.add_argument("--n-add", type=int, default=8)
    p.add_argument("--max-epochs", type=int, default=60, help="epochs of the base model")
    p.add_argument("--output-dir", type=Path, default=Path("outputs/active_learning_rounds"))
    args = p.parse_args(argv)
    if not args.store.is_file():
        p.error(f"--store must be a td-data crystal store file, got {str(args.store)!r} (no such file)")
    for name in ("rounds", "n_candidates", "n_add", "max_epochs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    from pipelines.active_learning.nodes import active_learning_plots, run_active_learning
    from pipelines.split.nodes import split_crystals
    from pipelines.train.nodes import train_model
    from td_data.store import CrystalStore

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with CrystalStore.open(args.store) as store:
        records = store.read_all()
    _, train, val, _ = split_crystals(records, {"fractions": [0.8, 0.1, 0.1], "seed": 0})
    options = {"num_threads": 1, "run_dir": str(out / "training")}
    tc = training(args.max_epochs)
    model, _, _ = train_model(train, val, MODEL, PHYSICS, tc, options)
    trained = time.perf_counter()
    print(f"base model: {len(train)} training and {len(val)} validation crystals, {trained - start:.0f} s", flush=True)
    al = {"rounds": args.rounds, "work_dir": str(out / "work"), "n_candidates": args.n_candidates,
          "n_add": args.n_add, "fine_tune_epochs": 5, "acquisition": {"spread": 1.0}}  # fmt: skip
    _, _, _, report = run_active_learning(
        model, train, val, MODEL, PHYSICS, tc, options, {}, {"max_candidates": 32}, {}, {"top_n": 2}, al
    )
    done = time.perf_counter()
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    for name, figure in zip(("yield.png", "scores.png", "classes.png"), active_learning_plots(report), strict=True):
        figure.savefig(out / name, dpi=120)
    print(f"{args.rounds} rounds in {done - trained:.0f} s; total {done - start:.0f} s")
    print("round  generated  relaxed  stable  labelled  added  z2_ti yield [95% CI]       classes")
    for entry in report["rounds"]:
        y = entry["yield"]
        ci = f"{y['count']}/{y['n']} [{y['ci_low']:.2f}, {y['ci_high']:.2f}]" if y["n"] else "0/0"
        counts = (entry["round"], entry["n_generated"], entry["n_relaxed"], entry["n_passed_stability"])
        print("{:>5}  {:>9}  {:>7}  {:>6}".format(*counts), end="")
        print(f"  {entry['n_labelled']:>8}  {entry['n_added']:>5}  {ci:<24}  {entry['class_counts']}")
    print(f"wrote {out}/report.json, yield.png, scores.png, classes.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
