#!/usr/bin/env python
"""Fewer reverse steps at equal quality? Sampler settings of one trained model against its full chain, in one run.

    python benchmarks/sampler_quality.py                                   # outputs/perov5/model.pt, 1,000 crystals
    python benchmarks/sampler_quality.py --model-path M.pt --rows 1000:0,100:1,50:1 --n 2000
    python benchmarks/sampler_quality.py --dataset carbon_24 --model-path outputs/carbon24/model.pt

Each row samples ``--n`` crystals from the same model with the same seed (unconditioned, atom counts from the
training distribution) under ``steps:corrector_steps`` (``:free`` also turns off the sampler's composition
rules, ``SamplingOptions.element_counts`` and ``charge_balance``: what the network alone does) and scores them
against the data set's test split with the published protocol of ``td_data.metrics.generation_metrics``
(coverage, joint coverage, the Wasserstein distances, validity). The first row is the reference, by default
the model's full chain with one corrector step (DiffCSP's sampler: 1,000 predictor steps, one Langevin
corrector step each); the last columns give each row's change in coverage against it, in points, and its
speed-up. ``make bench-perov5`` writes the model this reads (``outputs/perov5/model.pt``).

Coverage over ``--n`` crystals is lower than over the published 10,000 for every row alike: compare rows of one
run, not with the published table. Times are wall clock on this machine with ``--threads`` torch threads; the
load average is printed (on a shared machine, compare rows of one run only). Nothing asserts on time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("perov_5", "carbon_24")
KEYS = ("struct_valid", "comp_valid", "cov_recall", "cov_precision", "cov_recall_joint", "wdist_density",
        "wdist_num_elems")  # fmt: skip


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_rows(text: str) -> list[tuple[int, int, bool]]:
    """``"1000:0,100:1,100:3:free"`` -> ``[(1000, 0, True), (100, 1, True), (100, 3, False)]`` (the third item: the
    sampler's composition rules on; ``free`` turns them off); a clear error for anything else."""
    rows = []
    for item in text.split(","):
        parts = item.split(":")
        free = len(parts) == 3 and parts[2] == "free"
        try:
            if len(parts) not in (2, 3) or (len(parts) == 3 and not free):
                raise ValueError
            steps, corrector = int(parts[0]), int(parts[1])
        except ValueError:
            raise SystemExit(
                f"--rows takes steps:corrector_steps[:free] items separated by commas, got {item!r}"
            ) from None
        if steps < 1 or corrector < 0:
            raise SystemExit(f"--rows: steps must be >= 1 and corrector steps >= 0, got {item!r}")
        rows.append((steps, corrector, not free))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-path", default=str(ROOT / "outputs" / "perov5" / "model.pt"))
    parser.add_argument("--dataset", choices=SPLITS, default="perov_5")
    parser.add_argument("--data-dir", default=None, help="folder of the CDVAE split files (default ../shared/...)")
    parser.add_argument(
        "--rows",
        default="1000:1,1000:0,100:0,100:3,100:3:free",
        help="steps:corrector_steps[:free] (free: the composition rules off); the first is the reference",
    )
    parser.add_argument("--n", type=int, default=1000, help="crystals per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    if args.n < 1:
        raise SystemExit(f"--n must be >= 1, got {args.n}")

    from td_data.evaluation import SPLIT_FILES, load_split, samples_to_records
    from td_data.metrics import generation_metrics
    from td_models import TopologicalDiffusionModel

    rows = parse_rows(args.rows)
    data_dir = Path(args.data_dir) if args.data_dir else ROOT.parent / "shared" / "data" / "benchmarks" / args.dataset
    test_files = [data_dir / SPLIT_FILES[args.dataset].test]
    if not Path(args.model_path).is_file():
        raise SystemExit(f"no model at {args.model_path}: run `make bench-perov5` first or pass --model-path")
    torch.set_num_threads(args.threads)
    model = TopologicalDiffusionModel.load(args.model_path).eval()
    test = load_split(test_files, "test").records
    log(f"model {args.model_path} ({model.num_parameters() / 1e6:.2f}M parameters), {len(test)} test crystals, "
        f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    results = []
    for steps, corrector, rules in rows:
        log(f"sampling {args.n} crystals: {steps} steps, {corrector} corrector steps each, composition rules "
            f"{'on' if rules else 'off'}")  # fmt: skip
        t0 = time.perf_counter()
        samples = model.sample(args.n, steps=steps, corrector_steps=corrector, seed=args.seed, element_counts=rules,
                               charge_balance=rules, batch_size=args.batch_size, progress=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        records, _ = samples_to_records(samples, id_prefix="sampler")
        metrics = generation_metrics(records, test, dataset=args.dataset, seed=args.seed)
        results.append((steps, corrector, rules, seconds * 1000 / args.n, metrics))
    ref_seconds, ref = results[0][3], results[0][4]
    print(f"# Sampler settings, {args.dataset}, {args.n} crystals a row, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(
        "| steps | corrector | composition rules | s / 1,000 | " + " | ".join(KEYS) + " | dCOV-R | dCOV-P | speed-up |"
    )
    print("|---" * (len(KEYS) + 7) + "|")
    for steps, corrector, rules, seconds, m in results:
        cells = [f"{m[k]:.4f}" if m[k] is not None else "n/a" for k in KEYS]
        d_r = 100 * (m["cov_recall"] - ref["cov_recall"])
        d_p = 100 * (m["cov_precision"] - ref["cov_precision"])
        print(f"| {steps} | {corrector} | {'on' if rules else 'off'} | {seconds:.1f} | " + " | ".join(cells)
              + f" | {d_r:+.1f} | {d_p:+.1f} | {ref_seconds / seconds:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
