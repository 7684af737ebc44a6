#!/usr/bin/env python
"""Perov-5 de-novo generation benchmark: train our diffusion model, sample, and score it as CDVAE and DiffCSP do.

    python benchmarks/perov5.py --budget-minutes 30 --max-epochs 1000             # CPU, cpu-demo preset
    python benchmarks/perov5.py --device cuda --preset small --budget-minutes 60   # one GPU, bf16
    python benchmarks/perov5.py --budget-minutes 0.2 --n-samples 16 --steps 20 --max-train 64 --max-test 64  # smoke

(cpu-demo's own 30 epochs take a few minutes, so a longer budget needs a larger ``--max-epochs``; training
stops at whichever comes first. docs/benchmarks.md has the protocol, the caveats and run times.)

Staged run, for a GPU node with torch and accelerate but without the materials stack (td-data, pymatgen,
spglib): ``--stage all`` (the default) does everything in one process; ``--stage prepare`` and ``--stage
evaluate`` need td-data, ``--stage train`` imports only torch, accelerate, numpy and td-models:

    python benchmarks/perov5.py --stage prepare                 # here: outputs/perov5/train_items.npz
    # copy the repository and outputs/perov5/train_items.npz to the GPU node; there, from the repository's copy
    # (td-models importable: PYTHONPATH=packages/td-models/src, or pip install --no-deps packages/td-models):
    python benchmarks/perov5.py --stage train --device cuda --preset small --budget-minutes 60   # model.pt, samples.npz
    # copy outputs/perov5/samples.npz back (model.pt and training/ too, to keep them); here:
    python benchmarks/perov5.py --stage evaluate                # metrics.json, table.md, samples/, perov5.png

Each stage reads the options it needs: prepare ``--data-dir`` and ``--max-train``; train the training and
sampling options (``--preset``, ``--budget-minutes``, ``--n-samples``, ``--steps``, ``--seed`` ...) and
``--items`` (default ``--output-dir``/train_items.npz); evaluate ``--samples`` (default
``--output-dir``/samples.npz), ``--data-dir``, the same ``--max-train`` (novelty is measured against those
training crystals), ``--max-test``, ``--cutoffs`` and ``--n-jobs``. The crystals travel as
``td_models.save_crystals`` files; samples.npz carries the model's predicted properties and everything the
metrics need from training (summary, configuration, timings, hardware), so metrics.json says where each
stage ran.

Data (``--data-dir``, default ``../shared/data/benchmarks/perov_5`` next to the repository; see its README):
the CDVAE Perov-5 split files ``val.csv.gz`` (3,787 crystals), ``train_first1024.csv.gz`` (the first 1,024 of
the 11,356 training crystals; the rest is not available here) and ``test.csv.gz`` (3,785). We train on val +
train_first1024 (4,811 crystals, all with 5 atoms) and evaluate against test.

Training: ``td_models.training.Trainer`` with the ``--preset`` configuration (its phases and learning rates),
unconditionally: Perov-5 rows carry no topological labels and no ``band_gap`` / ``formation_energy``
properties (their columns are ``heat_ref``, ``heat_all``, ``dir_gap``, ``ind_gap``), so every condition of
every crystal is null and the condition embedding always gives its learned null vectors, which is what
unconditioned sampling uses. ``--budget-minutes`` stops training after the step in progress once the
wall-clock budget is spent; the EMA weights are kept (saved as ``model.pt``).

Sampling: ``--n-samples`` crystals without conditions, with the atom count drawn from the training
distribution (5 atoms for every Perov-5 crystal) and the elements restricted to those seen in training
(the sampler's default), ``--steps`` reverse steps (default: the model's full 1,000-step chain, as DiffCSP).

Metrics: ``td_data.metrics.generation_metrics`` (definitions and deviations from the reference code in its
docstring) against the test split with CDVAE's Perov-5 coverage cutoffs (structure 0.2, composition 4;
``COV_Cutoffs['perovskite']`` in CDVAE's ``scripts/eval_utils.py``), plus COV over only the fully valid
generated crystals (a stricter reading, reported in ``metrics.json``).

Outputs in ``--output-dir`` (default ``outputs/perov5``): ``metrics.json`` (every number, the configuration,
timings and hardware), ``table.md``, ``model.pt`` (EMA weights, ``TopologicalDiffusionModel.load``),
``samples/`` (one CIF per generated crystal with ``index.json`` / ``index.csv``, the pipelines' CIF folder),
``perov5.png``, ``training/`` (the Trainer's ``config.json``, ``metrics.csv``, checkpoints) and the stages'
files ``train_items.npz`` and ``samples.npz`` (``--stage all`` writes them too, so that ``--stage evaluate``
can rerun the metrics). The reference fingerprints are cached in ``cache/`` so that a second run skips
featurising the test set.

Exit status 0, or 2 with a one-line ``error:`` message for a usage error (missing data, bad option, a
stage's missing input file, named with the stage that writes it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scripts._evaluation import (  # the evaluation scripts' shared helpers (the installed root project puts
    # the repository on the import path); td-data only inside functions
    ScriptError,
    predict_samples,
    quiet_libraries,
    read_crystal_file,
    run_main,
    samples_to_records,
    save_figure,
    to_jsonable,
    write_cifs,
    write_crystal_file,
    write_json,
)

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "benchmarks" / "perov_5"
TRAIN_FILES = ("val.csv.gz", "train_first1024.csv.gz")
TEST_FILE = "test.csv.gz"
FULL_TRAIN_SPLIT = 11_356  # crystals in the Perov-5 train split the published models used
STAGES = ("all", "prepare", "train", "evaluate")
ITEMS_FILE = "train_items.npz"  # written by --stage prepare, read by --stage train
SAMPLES_FILE = "samples.npz"  # written by --stage train, read by --stage evaluate
# metadata that --stage train needs in train_items.npz and --stage evaluate in samples.npz
PREPARE_KEYS = ("n_train", "train_quarantined", "train_atom_counts", "data_dir", "train_files", "max_train")
SAMPLES_KEYS = ("prepare", "training", "preset", "parameters", "config", "sampling", "timings_seconds", "hardware")

# Published Perov-5 de-novo ("ab initio") generation results: validity and coverage in percent, Wasserstein
# distances of density (g/cm^3) and of the number of elements per cell.
# DiffCSP: Jiao et al., "Crystal Structure Prediction by Joint Equivariant Diffusion", NeurIPS 2023, Table 3.
# CDVAE:   Xie et al., "Crystal Diffusion Variational Autoencoder for Periodic Material Generation", ICLR 2022,
#          Table 3 (the same numbers are quoted in DiffCSP's Table 3).
# The #elements distance of CDVAE is 0.0628; 0.0264 in the same row is its property (formation-energy)
# distance d_E, which we do not measure (DiffCSP: d_E 0.0263). benchmarks/data_metrics.py quotes the same values.
PUBLISHED: dict[str, dict[str, float]] = {
    "CDVAE": {
        "struct_valid": 100.0,
        "comp_valid": 98.59,
        "cov_recall": 99.45,
        "cov_precision": 98.46,
        "wdist_density": 0.1258,
        "wdist_num_elems": 0.0628,
    },
    "DiffCSP": {
        "struct_valid": 100.0,
        "comp_valid": 98.85,
        "cov_recall": 99.74,
        "cov_precision": 98.27,
        "wdist_density": 0.1110,
        "wdist_num_elems": 0.0128,
    },
}
CITATIONS = {
    "CDVAE": "Xie et al., Crystal Diffusion Variational Autoencoder for Periodic Material Generation, ICLR 2022",
    "DiffCSP": "Jiao et al., Crystal Structure Prediction by Joint Equivariant Diffusion, NeurIPS 2023, Table 3",
}
# (td-data key, row label, factor from td-data's value to the table's unit)
TABLE_ROWS = (
    ("struct_valid", "validity, structure [%]", 100.0),
    ("comp_valid", "validity, composition [%]", 100.0),
    ("cov_recall", "COV-R [%]", 100.0),
    ("cov_precision", "COV-P [%]", 100.0),
    ("wdist_density", "W-distance, density [g/cm^3]", 1.0),
    ("wdist_num_elems", "W-distance, # elements", 1.0),
)
COLUMNS = ("ours (this run)", "CDVAE (published)", "DiffCSP (published)")
# Every metric written to metrics.json["metrics"]; a None there has its reason in metrics.json["null_reasons"].
METRIC_KEYS = (
    "struct_valid",
    "comp_valid",
    "valid",
    "cov_recall",
    "cov_precision",
    "cov_recall_valid_only",
    "cov_precision_valid_only",
    "amsd_recall",
    "amsd_precision",
    "amcd_recall",
    "amcd_precision",
    "wdist_density",
    "wdist_num_elems",
    "wdist_prop",
    "uniqueness",
    "novelty",
)

log = logging.getLogger("perov5")


# ---------------------------------------------------------------------------------------------- options
class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only when there is one (not None or a bare flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The training options this benchmark shares with ``conditional_yield.py`` (read by :func:`train`)."""
    from td_models import ExperimentConfig

    p.add_argument("--preset", default="cpu-demo", choices=ExperimentConfig.preset_names(), help="model preset")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="wall-clock training budget; training stops after the step in progress (default: no limit, "
                   "train to --max-epochs)")  # fmt: skip
    p.add_argument("--max-epochs", type=int, default=None, help="override the preset's max_epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="peak learning rate of the first phase; later phases keep their ratio to it (default: the "
                   "preset's)")  # fmt: skip
    p.add_argument("--warmup-epochs", type=int, default=None, help="override the preset's linear warm-up epochs")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda trains in bf16")


def build_parser() -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(
        prog="perov5.py",
        description="Perov-5 de-novo generation benchmark: train, sample, CDVAE/DiffCSP metrics.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--stage", choices=STAGES, default="all",
                   help="all: everything in one process; or the staged run: prepare (needs td-data) writes "
                   f"{ITEMS_FILE}, train (torch and accelerate only, e.g. on a GPU node) writes model.pt and "
                   f"{SAMPLES_FILE}, evaluate (needs td-data) writes the metrics")  # fmt: skip
    p.add_argument("--items", default=None,
                   help=f"--stage train: the training items (default: --output-dir/{ITEMS_FILE})")  # fmt: skip
    p.add_argument("--samples", default=None,
                   help=f"--stage evaluate: the samples (default: --output-dir/{SAMPLES_FILE})")  # fmt: skip
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="folder with val/train_first1024/test.csv.gz")
    p.add_argument("--output-dir", default="outputs/perov5", help="where metrics.json, table.md, model.pt ... go")
    add_training_options(p)
    p.add_argument("--gpu", dest="device", action="store_const", const="cuda", help="shorthand for --device cuda")
    p.add_argument("--n-samples", type=int, default=1000, help="crystals to generate")
    p.add_argument("--steps", type=int, default=None, help="reverse sampling steps (default: the full chain)")
    p.add_argument("--sample-batch-size", type=int, default=256, help="crystals per sampling batch")
    p.add_argument("--seed", type=int, default=0, help="training (weights, data order, noise) and sampling seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes for the fingerprints")
    p.add_argument("--cutoffs", type=float, nargs=2, metavar=("STRUCT", "COMP"), default=None,
                   help="coverage cutoffs (default: CDVAE's Perov-5 cutoffs 0.2 and 4)")  # fmt: skip
    p.add_argument("--max-train", type=int, default=None, help="use only the first N training crystals (smoke runs)")
    p.add_argument("--max-test", type=int, default=None, help="use only the first N test crystals (smoke runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="library logs at INFO")
    return p


def _check_args(args: argparse.Namespace) -> None:
    positive = {"--n-samples": args.n_samples, "--sample-batch-size": args.sample_batch_size,
                "--threads": args.threads, "--n-jobs": args.n_jobs}  # fmt: skip
    optional = {"--max-epochs": args.max_epochs, "--batch-size": args.batch_size, "--steps": args.steps,
                "--max-train": args.max_train, "--max-test": args.max_test}  # fmt: skip
    for name, value in {**positive, **{k: v for k, v in optional.items() if v is not None}}.items():
        if value < 1:
            raise ScriptError(f"{name} must be >= 1, got {value}")
    if args.budget_minutes is not None and not (math.isfinite(args.budget_minutes) and args.budget_minutes > 0):
        raise ScriptError(f"--budget-minutes must be a number > 0, got {args.budget_minutes}")
    if args.cutoffs is not None and not all(math.isfinite(c) and c > 0 for c in args.cutoffs):
        raise ScriptError(f"--cutoffs must be two numbers > 0, got {args.cutoffs}")
    if args.items is not None and args.stage != "train":
        raise ScriptError(f"--items is read only by --stage train, not --stage {args.stage}")
    if args.samples is not None and args.stage != "evaluate":
        raise ScriptError(f"--samples is read only by --stage evaluate, not --stage {args.stage}")


# ---------------------------------------------------------------------------------------------- data
def data_files(data_dir: str | Path) -> tuple[list[Path], Path]:
    """(training files, test file) in ``data_dir``; a ScriptError naming what is missing."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise ScriptError(
            f"Perov-5 data folder {str(folder)!r} does not exist; pass --data-dir with the folder holding "
            f"{', '.join(TRAIN_FILES)} and {TEST_FILE} (the CDVAE Perov-5 CSV files)"
        )
    missing = [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]
    if missing:
        raise ScriptError(f"Perov-5 data folder {str(folder)!r} lacks {', '.join(missing)}")
    return [folder / name for name in TRAIN_FILES], folder / TEST_FILE


def load_split(paths: Sequence[Path], what: str, limit: int | None) -> tuple[list, int]:
    """(records, number quarantined) from CDVAE CSV files, in file order, the first ``limit`` kept."""
    from td_data import load_materials_database

    result = load_materials_database(list(paths))
    for q in result.quarantined[:5]:
        log.warning("%s: skipped %s: %s", what, q.source, q.reason)
    if not result.records:
        raise ScriptError(f"the {what} files {[str(p) for p in paths]} hold no readable crystal")
    records = list(result.records)
    return (records[:limit] if limit else records), len(result.quarantined)


# ---------------------------------------------------------------------------------------------- training
class _BudgetStopFilter(logging.Filter):
    """Drops the Trainer's "preempted: ... exit status 75" warning when the stop was our budget, not a signal."""

    def __init__(self) -> None:
        super().__init__()
        self.active = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.active and str(record.msg).startswith("preempted:"))


def make_config(args: argparse.Namespace):
    """The preset with this run's overrides: seed, epochs, batch size, precision, fewer checkpoints."""
    from td_models import ExperimentConfig

    config = ExperimentConfig.preset(args.preset)
    tc = config.training_config
    max_epochs = args.max_epochs if args.max_epochs is not None else tc.max_epochs
    training = {
        "seed": args.seed,
        "max_epochs": max_epochs,
        "mixed_precision": "bf16" if args.device == "cuda" else "no",
        # a checkpoint holds weights, EMA and AdamW state (about 2 GB for `small`): write one at the end only
        "checkpoint_every": max_epochs,
        "keep_checkpoints": 1,
    }
    if args.batch_size is not None:
        training["batch_size"] = args.batch_size
    if getattr(args, "warmup_epochs", None) is not None:
        training["warmup_epochs"] = args.warmup_epochs
    if getattr(args, "learning_rate", None) is not None:  # one factor for every phase and the cosine peak
        factor = args.learning_rate / tc.phases[0].learning_rate
        training["learning_rate"] = tc.learning_rate * factor
        training["phases"] = tuple(dataclasses.replace(ph, learning_rate=ph.learning_rate * factor) for ph in tc.phases)
    return dataclasses.replace(config, training_config=tc.replace(**training))


def train(args: argparse.Namespace, items: list[dict], out: Path) -> tuple[Any, dict[str, Any]]:
    """Train with the Trainer, stopping at the budget; returns (EMA model in eval mode, training summary)."""
    from td_models.training import Trainer

    config = make_config(args)
    t0 = time.perf_counter()
    trainer = Trainer(
        config,
        items,
        None,
        output_dir=out / "training",
        cpu=args.device == "cpu",
        progress_bar=not args.no_progress,
        tensorboard=False,
    )
    setup_s = time.perf_counter() - t0
    stop_filter = _BudgetStopFilter()
    trainer_log = logging.getLogger("td_models.training.trainer")
    trainer_log.addFilter(stop_filter)
    timer = None
    budget_s = None if args.budget_minutes is None else 60.0 * args.budget_minutes
    if budget_s is not None:

        def stop() -> None:
            stop_filter.active = True
            trainer.request_stop()

        timer = threading.Timer(budget_s, stop)
        timer.daemon = True
    t0 = time.perf_counter()
    try:
        if timer is not None:
            timer.start()
        result = trainer.fit()
    finally:
        if timer is not None:
            timer.cancel()
        trainer_log.removeFilter(stop_filter)
    fit_s = time.perf_counter() - t0
    model = trainer.ema.model if trainer.ema is not None else trainer.model
    model.eval()
    tc = trainer.config.training_config
    summary = {
        "stopped_by": "budget" if result.preempted else "max_epochs",
        "budget_minutes": args.budget_minutes,
        "epochs_completed": result.epochs_completed,
        "max_epochs": tc.max_epochs,
        "steps": result.global_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "batch_size": tc.batch_size,
        "mixed_precision": tc.mixed_precision,
        "device": str(trainer.accelerator.device),
        "ema_decay": tc.ema_decay,
        "weights": "EMA" if trainer.ema is not None else "raw (ema_decay 0)",
        "last_losses": result.last_losses,
        "nonfinite_steps": result.nonfinite_steps,
        "phases_reached": phases_reached(tc, result.epochs_completed + (1 if result.preempted else 0)),
        "setup_seconds": round(setup_s, 2),
        "fit_seconds": round(fit_s, 2),
        "seconds_per_step": round(fit_s / result.global_step, 4) if result.global_step else None,
        "metrics_csv": str(result.metrics_csv),
    }
    return model, summary


def phases_reached(tc: Any, last_epoch: int) -> list[str]:
    """Names of the training phases of epochs 1..last_epoch (the last one possibly unfinished), in order."""
    names: list[str] = []
    for epoch in range(1, max(last_epoch, 1) + 1):
        name = tc.phase_at(epoch).name
        if name not in names:
            names.append(name)
    return names


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate(
    generated: list, test: list, train_records: list, cutoffs: tuple[float, float], n_jobs: int, cache: Path
) -> tuple[dict[str, Any], np.ndarray, dict[str, float]]:
    """(generation_metrics, valid mask of the generated crystals, timings): td-data's metrics plus COV over only
    the fully valid generated crystals."""
    from td_data.metrics import coverage, fingerprints, generation_metrics, validity_flags

    t0 = time.perf_counter()
    metrics = generation_metrics(
        generated, test, dataset="perov_5", train=train_records, cutoffs=cutoffs, n_jobs=n_jobs, reference_cache=cache
    )
    t_metrics = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen_fp = fingerprints(generated, n_jobs=n_jobs)
    ref_fp = fingerprints(test, n_jobs=n_jobs, cache=cache)  # from the cache written just above
    struct_ok, comp_ok = validity_flags(generated)
    valid = struct_ok & comp_ok & gen_fp.ok
    strict = coverage(gen_fp, ref_fp, struct_cutoff=cutoffs[0], comp_cutoff=cutoffs[1], generated_mask=valid)
    metrics["cov_recall_valid_only"] = strict["cov_recall"]
    metrics["cov_precision_valid_only"] = strict["cov_precision"]
    t_strict = time.perf_counter() - t0
    return metrics, valid, {"metrics": t_metrics, "coverage_valid_only": t_strict}


def null_reasons(metrics: dict[str, Any]) -> dict[str, str]:
    """Why each metric that is None or not finite has no value."""
    reasons = {
        "wdist_prop": "no property predictor for Perov-5's heat_ref was given (CDVAE's d_E), so it is not measured",
        "novelty": "no valid generated crystal to compare with the training set",
        "wdist_density": "no valid generated crystal",
        "wdist_num_elems": "no valid generated crystal",
    }
    for key in ("amsd_recall", "amsd_precision", "amcd_recall", "amcd_precision"):
        reasons[key] = "no generated crystal could be featurised"
    out = {}
    for key in METRIC_KEYS:
        value = metrics.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            out[key] = reasons.get(key, "not computed")
    return out


def table_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, label, factor in TABLE_ROWS:
        value = metrics.get(key)
        ours = None if value is None or not math.isfinite(value) else value * factor
        rows.append({"key": key, "metric": label, "ours": ours, **{m: PUBLISHED[m][key] for m in PUBLISHED}})
    return rows


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if key.startswith(("struct", "comp", "cov")) else f"{value:.4f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'metric':<30}" + "".join(f"{c:>22}" for c in COLUMNS)]
    for r in rows:
        cells = (r["ours"], r["CDVAE"], r["DiffCSP"])
        lines.append(f"{r['metric']:<30}" + "".join(f"{_fmt(v, r['key']):>22}" for v in cells))
    return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| metric | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = (r["ours"], r["CDVAE"], r["DiffCSP"])
        lines.append(f"| {r['metric']} | " + " | ".join(_fmt(v, r["key"]) for v in cells) + " |")
    return "\n".join(lines)


def caveats(summary: dict[str, Any]) -> list[str]:
    """The lines printed under the table: why the comparison is not like for like."""
    tr, data = summary["training"], summary["data"]
    budget = "none (trained to max_epochs)" if tr["budget_minutes"] is None else f"{tr['budget_minutes']:g} min"
    subset = []
    if data["max_train"] or data["max_test"]:
        subset.append(
            f"SUBSET RUN (--max-train/--max-test): the first {data['n_train']:,} of the training crystals and the "
            f"first {data['n_test']:,} of the test crystals only."
        )
    failed = summary["n_featurisation_failed"], summary["n_reference_featurisation_failed"]
    if any(failed):
        subset.append(
            f"Fingerprints failed for {failed[0]} generated crystals (counted invalid, as CDVAE does) and "
            f"{failed[1]} test crystals (left out of coverage)."
        )
    return [
        *subset,
        f"Not like for like. Our training set: {data['n_train']:,} crystals (from Perov-5 val + the first 1,024 of "
        f"train, 4,811 in all); the published models trained on the full {FULL_TRAIN_SPLIT:,}-crystal train split.",
        f"Our training budget: {budget} of wall-clock on {tr['device']} ({summary['hardware']['device_name']}), "
        f"preset {summary['preset']} ({summary['parameters'] / 1e6:.2f}M parameters), {tr['epochs_completed']} epochs "
        f"/ {tr['steps']} steps done in {tr['fit_seconds']:.0f} s, stopped by {tr['stopped_by']}; "
        "the published models used their own, full training schedules.",
        f"Generated: {summary['n_generated']} of {summary['n_requested']} requested "
        f"({summary['sampling']['steps']} reverse steps); {summary['n_valid']} fully valid "
        "(structure, composition and fingerprint).",
        "COV uses every featurised generated crystal, as the CDVAE code does (COV over only the valid ones is in "
        f"metrics.json); cutoffs structure {summary['cutoffs'][0]:g}, composition {summary['cutoffs'][1]:g}. Magpie "
        "vectors are scaled by the test set's statistics, not CDVAE's stored constants, so COV compares only "
        "approximately.",
    ]


# ---------------------------------------------------------------------------------------------- figure
def figure(generated: list, valid: np.ndarray, test: list):
    """Density and #elements histograms (valid generated vs test) and element frequencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from td_data.record import symbol

    valid_records = [r for r, v in zip(generated, valid) if v]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    d_test = np.array([r.density for r in test])
    d_gen = np.array([r.density for r in valid_records])
    hi = float(np.percentile(np.concatenate([d_test, d_gen]) if len(d_gen) else d_test, 99.5))
    bins = np.linspace(0.0, hi, 40)
    ax.hist(np.clip(d_test, 0, hi), bins=bins, density=True, alpha=0.6, label=f"test ({len(test)})")
    if len(d_gen):
        ax.hist(np.clip(d_gen, 0, hi), bins=bins, density=True, alpha=0.6, label=f"generated, valid ({len(d_gen)})")
    ax.set_xlabel("density (g/cm$^3$)")
    ax.legend(fontsize=8)
    ax = axes[1]
    n_test = [len(set(r.atomic_numbers.tolist())) for r in test]
    n_gen = [len(set(r.atomic_numbers.tolist())) for r in valid_records]
    bins = np.arange(0.5, 6.5, 1.0)
    ax.hist(n_test, bins=bins, density=True, alpha=0.6, label="test")
    if n_gen:
        ax.hist(n_gen, bins=bins, density=True, alpha=0.6, label="generated, valid")
    ax.set_xlabel("elements per cell")
    ax.legend(fontsize=8)
    ax = axes[2]

    def share(records: list) -> dict[int, float]:
        counts: dict[int, int] = {}
        for r in records:
            for z in set(r.atomic_numbers.tolist()):
                counts[z] = counts.get(z, 0) + 1
        return {z: c / max(len(records), 1) for z, c in counts.items()}

    s_test, s_gen = share(test), share(generated)
    top = sorted(s_test, key=lambda z: -s_test[z])[:15]
    x = np.arange(len(top))
    ax.bar(x - 0.2, [s_test[z] for z in top], width=0.4, label="test")
    ax.bar(x + 0.2, [s_gen.get(z, 0.0) for z in top], width=0.4, label="generated (all)")
    ax.set_xticks(x, [symbol(z) for z in top], fontsize=8)
    ax.set_ylabel("share of crystals containing it")
    ax.legend(fontsize=8)
    fig.suptitle(f"Perov-5: {len(generated)} generated ({len(valid_records)} valid) vs {len(test)} test crystals")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- hardware
def hardware(device: str) -> dict[str, Any]:
    import accelerate
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "accelerate": accelerate.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "device_name": cpu,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# ---------------------------------------------------------------------------------------------- stages
def prepare_items(args: argparse.Namespace, train_paths: Sequence[Path]) -> tuple[list, list[dict], dict[str, Any]]:
    """(training records, training items, the prepare metadata) from the CSV files (needs td-data)."""
    from td_models.batch import item_from_record

    records, quarantined = load_split(train_paths, "training", args.max_train)
    items = [item_from_record(r) for r in records]  # no labels, no band_gap/formation_energy: all null
    counts = np.bincount([len(it["atomic_numbers"]) for it in items])
    prep = {
        "n_train": len(items),
        "train_quarantined": quarantined,
        "train_atom_counts": {int(n): int(c) for n, c in enumerate(counts) if c},
        "data_dir": str(Path(args.data_dir).resolve()),
        "train_files": [p.name for p in train_paths],
        "max_train": args.max_train,
    }
    return records, items, prep


def read_stage_file(path: Path, stage: str, maker: str, option: str, keys: Sequence[str]) -> tuple[list, dict]:
    """(crystals, metadata) of a file that ``--stage maker`` wrote; a one-line ScriptError when it is missing."""
    if not path.is_file():
        raise ScriptError(
            f"--stage {stage} needs {str(path)!r}, which does not exist: --stage {maker} writes it (run that first "
            f"with the same --output-dir, or pass {option} PATH)"
        )
    crystals, meta = read_crystal_file(path)
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ScriptError(
            f"{str(path)!r} was not written by perov5.py --stage {maker}: its metadata lacks {', '.join(missing)}"
        )
    return crystals, meta


def stage_train(args: argparse.Namespace, items: list[dict], prep: dict[str, Any], out: Path) -> tuple[list, dict]:
    """Train, save ``model.pt``, sample and predict; returns (samples with ``"predicted"``, their metadata), also
    written to ``samples.npz``. Uses torch, accelerate and td-models only: no td-data, pymatgen or spglib."""
    from td_models.exceptions import TDModelsError

    started = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        model, training = train(args, items, out)
    except TDModelsError as err:
        raise ScriptError(str(err)) from err
    timings["train_setup"] = training["setup_seconds"]
    timings["train"] = training["fit_seconds"]
    t0 = time.perf_counter()
    model.save(out / "model.pt")
    timings["save_model"] = time.perf_counter() - t0
    print(f"training: {training['epochs_completed']} epochs, {training['steps']} steps, "
          f"stopped by {training['stopped_by']} [{training['fit_seconds']:.1f} s]", flush=True)  # fmt: skip

    steps = args.steps if args.steps is not None else model.num_steps
    t0 = time.perf_counter()
    try:
        samples = model.sample(args.n_samples, steps=steps, seed=args.seed, batch_size=args.sample_batch_size,
                               progress=not args.no_progress)  # fmt: skip
    except TDModelsError as err:
        raise ScriptError(str(err)) from err
    timings["sample"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    samples = predict_samples(samples, model)  # the property heads run here, where the model is
    timings["predict"] = time.perf_counter() - t0
    meta: dict[str, Any] = {
        "prepare": prep,
        "training": training,
        "preset": args.preset,
        "parameters": model.num_parameters(),
        "config": make_config(args).to_dict(),
        "sampling": {
            "steps": steps,
            "seed": args.seed,
            "batch_size": args.sample_batch_size,
            "n_requested": args.n_samples,
            "conditions": None,
            "num_atoms": "drawn from the training distribution",
            "restrict_species": True,
            "seconds_per_step_per_crystal": timings["sample"] / (steps * args.n_samples),
        },
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "seconds": round(time.perf_counter() - started, 2),
        "hardware": hardware(args.device),
        "args": vars(args),
    }
    meta = to_jsonable(meta)  # NaN (a diverged loss) -> null: the metadata is strict JSON
    path = write_crystal_file(out / SAMPLES_FILE, samples, meta)
    n_predicted = sum(s["predicted"]["band_gap"] is not None for s in samples)
    print(f"sampling: {len(samples)} crystals ({n_predicted} with predicted properties), {steps} steps "
          f"[{timings['sample']:.1f} s] -> {path}", flush=True)  # fmt: skip
    return samples, meta


def stage_evaluate(
    args: argparse.Namespace,
    out: Path,
    samples: list[dict],
    meta: dict[str, Any],
    data: tuple[list, list, int, Path],
    timings: dict[str, float],
    stages: dict[str, Any],
    started: float,
) -> int:
    """CIFs, metrics, figure, metrics.json and table.md from the samples and their metadata (needs td-data).

    ``data``: (training records, test records, test quarantined, test file); ``timings``: those of the earlier
    steps, in order; ``stages``: where and how long prepare and train ran (evaluate's are added here);
    ``started``: ``time.perf_counter()`` when this stage began."""
    from td_data.metrics import COVERAGE_CUTOFFS

    train_records, test, test_quarantined, test_path = data
    prep, n_requested = meta["prepare"], meta["sampling"]["n_requested"]
    t0 = time.perf_counter()
    generated, rejected = samples_to_records(samples, None, prefix="perov5-gen")  # the stored predictions
    if not generated:
        raise ScriptError(f"none of the {n_requested} samples is a valid crystal record (degenerate cells)")
    write_cifs(generated, out / "samples")
    timings["write_samples"] = time.perf_counter() - t0
    print(f"records: {len(generated)} of {n_requested} samples are crystals ({meta['sampling']['steps']} steps) "
          f"-> {out / 'samples'}/", flush=True)  # fmt: skip

    cutoffs = tuple(args.cutoffs) if args.cutoffs else COVERAGE_CUTOFFS["perov_5"]
    metrics, valid, t_eval = evaluate(generated, test, train_records, cutoffs, args.n_jobs, out / "cache" / "test.npz")
    timings.update(t_eval)
    t0 = time.perf_counter()
    save_figure(figure(generated, valid, test), out / "perov5.png")
    timings["figure"] = time.perf_counter() - t0
    stages["evaluate"]["hardware"] = hardware("cpu")
    stages["evaluate"]["seconds"] = round(time.perf_counter() - started, 2)
    # the three stages' wall-clock (in separate processes: not counting the copies between machines)
    timings["total"] = sum(stages[name].get("seconds") or 0.0 for name in ("prepare", "train", "evaluate"))

    rows = table_rows(metrics)
    summary: dict[str, Any] = {
        "benchmark": "Perov-5 de-novo generation (CDVAE / DiffCSP protocol)",
        "metrics": {k: metrics.get(k) for k in METRIC_KEYS},
        "null_reasons": null_reasons(metrics),
        "table": rows,
        "published": PUBLISHED,
        "citations": CITATIONS,
        "n_requested": n_requested,
        "n_generated": len(generated),
        "n_rejected_samples": len(rejected),
        "n_valid": int(metrics["n_valid"]),
        "n_featurisation_failed": metrics["n_featurisation_failed"],
        "n_reference_featurisation_failed": metrics["n_reference_featurisation_failed"],
        "cutoffs": list(cutoffs),
        "coverage_convention": "COV over every featurised generated crystal (CDVAE code); *_valid_only: valid ones",
        "data": {
            "data_dir": str(Path(args.data_dir).resolve()),
            "train_files": prep["train_files"],
            "test_file": test_path.name,
            "n_train": prep["n_train"],
            "n_test": len(test),
            "max_train": prep["max_train"],
            "max_test": args.max_test,
            "train_quarantined": prep["train_quarantined"],
            "test_quarantined": test_quarantined,
            "train_atom_counts": prep["train_atom_counts"],
            "full_train_split": FULL_TRAIN_SPLIT,
            "novelty_against": f"the {len(train_records)} training crystals used here",
        },
        "preset": meta["preset"],
        "parameters": meta["parameters"],
        "config": meta["config"],
        "training": meta["training"],
        "sampling": meta["sampling"],
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "hardware": meta["hardware"],  # where the model trained and sampled (the train stage)
        "stages": stages,
        "args": vars(args),
    }
    notes = caveats(summary)
    summary["caveats"] = notes
    write_json(summary, out / "metrics.json")
    (out / "table.md").write_text(
        "# Perov-5 de-novo generation\n\n" + markdown_table(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)
        + "\n\nPublished: " + "; ".join(f"{k}: {v}" for k, v in CITATIONS.items()) + ".\n",
        encoding="utf-8",
    )  # fmt: skip

    print()
    print(format_table(rows))
    print()
    for note in notes:
        print(f"* {note}")
    print("\ntimings [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return 0


def _stage_hardware(meta: dict[str, Any]) -> str:
    hw = meta.get("hardware") or {}
    return f"{hw.get('device', '?')} ({hw.get('device_name', '?')}, torch {hw.get('torch', '?')})"


# ---------------------------------------------------------------------------------------------- main
def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    stage, out = args.stage, Path(args.output_dir)
    if stage == "train":  # the input file first: a missing one is the likeliest mistake of a staged run
        items_path = Path(args.items) if args.items else out / ITEMS_FILE
        items, prep = read_stage_file(items_path, "train", "prepare", "--items", PREPARE_KEYS)
        if args.max_train is not None and args.max_train != prep["max_train"]:
            raise ScriptError(
                f"--max-train is applied by --stage prepare: {str(items_path)!r} holds its {prep['n_train']} "
                f"crystals (--max-train {prep['max_train']}); run --stage prepare with --max-train {args.max_train}"
            )
    elif stage == "evaluate":
        samples_path = Path(args.samples) if args.samples else out / SAMPLES_FILE
        t0 = time.perf_counter()
        samples, meta = read_stage_file(samples_path, "evaluate", "train", "--samples", SAMPLES_KEYS)
        load_samples = time.perf_counter() - t0
        prep = meta["prepare"]
        if args.max_train != prep["max_train"]:
            made, given = (
                ("no --max-train" if n is None else f"--max-train {n}") for n in (prep["max_train"], args.max_train)
            )
            raise ScriptError(
                f"the model of {str(samples_path)!r} trained with {made} (--stage prepare), but this run has "
                f"{given}; novelty needs the same training crystals: pass the same --max-train"
            )
    train_paths, test_path = data_files(args.data_dir) if stage != "train" else ([], Path())
    quiet_libraries(args.verbose)
    if not args.verbose:  # one warning per crystal whose fingerprint fails: counted in metrics.json instead
        logging.getLogger("td_data.metrics").setLevel(logging.ERROR)

    import torch

    if stage in ("all", "train") and args.device == "cuda" and not torch.cuda.is_available():
        raise ScriptError("--device cuda needs a CUDA device, but torch sees none (torch " + torch.__version__ + ")")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    if stage == "prepare":
        _, items, prep = prepare_items(args, train_paths)
        prep = {**prep, "seconds": round(time.perf_counter() - started, 2), "hardware": hardware("cpu")}
        path = write_crystal_file(out / ITEMS_FILE, items, prep)
        print(f"prepare: {len(items)} training crystals (atoms per cell {prep['train_atom_counts']}, "
              f"{prep['train_quarantined']} quarantined) -> {path} [{prep['seconds']:.1f} s]", flush=True)  # fmt: skip
        return 0

    if stage == "train":
        print(f"items: {len(items)} training crystals from {items_path}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        stage_train(args, items, prep, out)
        print(f"wrote {out}/: model.pt, {SAMPLES_FILE}, training/")
        return 0

    if stage == "evaluate":
        print(f"samples: {len(samples)} from {samples_path}, trained and sampled on {_stage_hardware(meta)}",
              flush=True)  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        train_records, _ = load_split(train_paths, "training", args.max_train)
        if len(train_records) != prep["n_train"]:
            raise ScriptError(
                f"--data-dir {args.data_dir!r} gives {len(train_records)} training crystals, but the model trained "
                f"on {prep['n_train']} (from {prep['data_dir']!r}); pass the --data-dir that --stage prepare read"
            )
        test, test_quarantined = load_split([test_path], "test", args.max_test)
        timings = {"prepare": prep.get("seconds") or 0.0, **meta["timings_seconds"], "load_samples": load_samples,
                   "load_data": time.perf_counter() - t0}  # fmt: skip
        print(f"data: {len(train_records)} training crystals (for novelty), {len(test)} test crystals "
              f"[{timings['load_data']:.1f} s]", flush=True)  # fmt: skip
        stages = {
            "run": "separate processes (--stage prepare, train, evaluate)"
            if (meta.get("args") or {}).get("stage") != "all"
            else "--stage evaluate rerun on the samples of a --stage all run",
            "prepare": {"hardware": prep.get("hardware"), "seconds": prep.get("seconds")},
            "train": {"hardware": meta["hardware"], "seconds": meta.get("seconds"), "args": meta.get("args")},
            "evaluate": {"samples_file": str(samples_path.resolve())},
        }
        data = (train_records, test, test_quarantined, test_path)
        stage_evaluate(args, out, samples, meta, data, timings, stages, started)
        print(f"wrote {out}/: metrics.json, table.md, samples/, perov5.png")
        return 0

    # --stage all: the three stages in this process (writing their files too, so --stage evaluate can rerun)
    out.mkdir(parents=True, exist_ok=True)
    train_records, items, prep = prepare_items(args, train_paths)
    test, test_quarantined = load_split([test_path], "test", args.max_test)
    load_data = time.perf_counter() - started
    print(f"data: {len(items)} training crystals (atoms per cell {prep['train_atom_counts']}), {len(test)} test "
          f"crystals [{load_data:.1f} s]", flush=True)  # fmt: skip
    prep = {**prep, "seconds": round(load_data, 2), "hardware": hardware("cpu")}
    write_crystal_file(out / ITEMS_FILE, items, prep)
    prepare_done = time.perf_counter()
    samples, meta = stage_train(args, items, prep, out)
    train_done = time.perf_counter()
    stages = {
        "run": "one process (--stage all)",
        "prepare": {"hardware": prep["hardware"], "seconds": round(prepare_done - started, 2)},
        "train": {"hardware": meta["hardware"], "seconds": round(train_done - prepare_done, 2)},
        "evaluate": {"samples_file": str((out / SAMPLES_FILE).resolve())},
    }
    timings = {"load_data": load_data, **meta["timings_seconds"]}
    stage_evaluate(args, out, samples, meta, (train_records, test, test_quarantined, test_path), timings, stages,
                   train_done)  # fmt: skip
    print(f"wrote {out}/: metrics.json, table.md, model.pt, samples/, perov5.png, training/, {ITEMS_FILE}, "
          f"{SAMPLES_FILE}")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
