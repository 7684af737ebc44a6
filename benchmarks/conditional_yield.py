#!/usr/bin/env python
"""Conditional generation yield: how often does asking the diffusion model for ``z2_ti`` give a ``z2_ti`` crystal?

    python benchmarks/conditional_yield.py --n-train 300 --budget-minutes 7 --max-epochs 1000 \\
        --n-samples 150 --steps 100                                              # train, then sample both arms
    python benchmarks/conditional_yield.py --model-path outputs/conditional_yield/model.pt --n-samples 400
    python benchmarks/conditional_yield.py --n-train 24 --budget-minutes 0.2 --max-epochs 2 --n-samples 6 --steps 5

Stages (``--stage``, default ``all``: the three in one process). Data preparation and labelling need td-data,
td-physics and the ``pipelines`` package; training and sampling need only td-models (torch, accelerate), so
they can run on a GPU machine without the materials stack:

    # here: synthetic training crystals, labelled; writes OUT/train_items.npz
    python benchmarks/conditional_yield.py --stage prepare --n-train 300 --output-dir OUT
    # copy OUT/train_items.npz and the repository to the GPU node, then there: train, sample both arms, and
    # predict (the model's class head); writes OUT/model.pt, OUT/samples_conditioned.npz, OUT/samples_unconditioned.npz
    python benchmarks/conditional_yield.py --stage train --device cuda --preset small --sample-batch-size 1000 \
        --budget-minutes 30 --max-epochs 1000 --n-samples 1000 --output-dir OUT
    # copy the two sample files back to OUT (or pass --samples-dir), then here: relabel, yield.json/.md/.png
    python benchmarks/conditional_yield.py --stage label --workers 2 --output-dir OUT

``--stage prepare`` writes ``--items`` (default ``OUT/train_items.npz``: the training crystals as model items,
with the training label counts in its metadata); ``--stage train`` reads it (or loads ``--model-path``
instead) and writes the two sample files, whose metadata carries the sampling options, the atom counts, the
training summary and labels, the model configuration, the options, timings and hardware of the stages so
far; ``--stage label`` reads them from ``--samples-dir`` (default ``OUT``) and writes the report, whose
``hardware`` is the train stage's and ``hardware_label`` the label stage's. Options read by a stage must be
given to that stage (``--n-train`` to prepare; ``--preset``, ``--n-samples``, ``--steps``, ``--num-atoms``,
``--seed`` ... to train; ``--workers``, ``--label-timeout``, ``--gap-mesh`` to label); ``--max-label-atoms``
to all three (label warns when it differs from the train stage's). The files are td-models crystal files
(``td_models.save_crystals``, no pickle).

Two arms of ``--n-samples`` crystals each, from the same model: **conditioned** on ``topo_class="z2_ti"`` with
classifier-free guidance ``--guidance-scale`` (default: the model's ``physics_config.guidance_scale``), and
**unconditioned** (no condition: the learned null, guidance off). Every generated crystal is re-labelled by
td-physics' structure labeller (``td_data.labels.label_records`` with the ``label`` pipeline's options:
spin-orbit on, ``--gap-mesh``), and the yield is the share whose *recomputed* class is ``z2_ti``. The model's
own class head is not used for the yield (its answers are in ``yield.json`` as ``predicted_class_counts``).

Training (skipped with ``--model-path``): ``--n-train`` crystals from td-data's synthetic generator restricted
to the elements the labeller can build (the ingest pipeline's ``elements: labeller``); those with at most
``--max-label-atoms`` sites are labelled, the others train without a class (null condition). The class counts
of the training labels are reported: the conditioned arm can only learn ``z2_ti`` from ``z2_ti`` examples.
``td_models.training.Trainer`` with ``--preset``; ``--budget-minutes`` stops it after the step in progress
(EMA weights kept, saved as ``model.pt``); ``--max-epochs`` caps it too.

Atom counts (``--num-atoms``): ``train-labellable`` (default) draws them from the model's training
distribution truncated to at most ``--max-label-atoms`` sites, so that the labeller can judge every crystal;
``train`` draws from the whole training distribution (larger cells are then counted as not labelled); an
integer fixes it. Both arms get the same drawn counts (one seeded draw) and different noise seeds
(``--seed`` and ``--seed + 1``), so the arms are independent samples of the same size distribution.

Crystals that cannot be labelled are counted by reason: not a valid record (degenerate cell), structurally
invalid (atoms closer than 0.5 A or tiny volume), too many sites, elements the labeller lacks, labeller error,
labeller timeout (more than ``--label-timeout`` seconds on one crystal: an undertrained model makes some
extremely skewed cells, 50 A vectors around an 86 A^3 volume, on which one labelling takes minutes).
Shares are reported over all generated crystals and over the labelled ones, each with a 95% Wilson score
interval. The enrichment (conditioned share / unconditioned share) gets the Katz log interval; when a share
is 0 the ratio is 0, infinite or undefined and only a one-sided bound is given (see :func:`enrichment`).

Issue 9 quotes about five-fold enrichment over unconditioned sampling for published topology-targeted
generation; this script reports our number as measured, whatever it is.

Outputs in ``--output-dir`` (default ``outputs/conditional_yield``): ``yield.json`` (every count, share and
interval, training label counts, configuration, timings, hardware), ``yield.md`` (the tables), ``yield.png``
(class shares per arm with Wilson error bars), ``crystals.csv`` (one row per generated crystal: arm, status,
recomputed class), ``samples_conditioned.npz`` and ``samples_unconditioned.npz`` (the generated crystals
with the model's predictions) and, after training, ``train_items.npz``, ``model.pt`` and ``training/``. The
tables also go to stdout.

Exit status 0, or 2 with a one-line ``error:`` message for a usage error (a bad option, or a stage's input
file missing: the message names the file and the stage that makes it).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scripts._evaluation import (  # the evaluation scripts' shared helpers, through the installed root project
    ScriptError,
    load_model,
    predict_samples,
    progress,
    quiet_libraries,
    read_crystal_file,
    run_main,
    samples_to_records,
    save_figure,
    write_crystal_file,
    write_json,
)
from td_physics.classes import TOPO_CLASSES

ROOT = Path(__file__).resolve().parents[1]

TARGET = "z2_ti"
CLASSES = TOPO_CLASSES
ARMS = ("conditioned", "unconditioned")
STAGES = ("all", "prepare", "train", "label")
ITEMS_FILE = "train_items.npz"  # --stage prepare -> --stage train
SAMPLES_FILE = "samples_{arm}.npz"  # --stage train -> --stage label, one per arm
BENCHMARK = "conditional_yield"  # the stage files' metadata "benchmark"
#: options of the label stage that override the train stage's in yield.json's "config"
LABEL_OPTIONS = ("stage", "output_dir", "samples_dir", "workers", "label_timeout", "gap_mesh", "max_label_atoms")
#: reasons a generated crystal gets no recomputed label, in the order they are checked
UNLABELLED_REASONS = (
    "not a valid record",
    "structurally invalid",
    "too many sites",
    "unsupported elements",
    "labeller error",
    "labeller timeout",
)
Z95 = 1.959963984540054  # two-sided 95% normal quantile
PUBLISHED_NOTE = (
    "Issue 9 quotes about five-fold enrichment over unconditioned sampling for published topology-targeted "
    "generation (a different model, data and labeller; not re-checked here)."
)

log = logging.getLogger("conditional_yield")


# ---------------------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of a binomial proportion (95% by default); ``(None, None)`` when ``n == 0``."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return None, None
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if successes == 0:
        low = 0.0
    if successes == n:
        high = 1.0
    return low, high


def share(successes: int, n: int, z: float = Z95) -> dict[str, Any]:
    """``{"count", "n", "share", "ci_low", "ci_high"}``: the share with its Wilson interval (None when n = 0)."""
    low, high = wilson_interval(successes, n, z)
    return {"count": successes, "n": n, "share": successes / n if n else None, "ci_low": low, "ci_high": high}


def katz_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """``(ratio, low, high)``: the risk ratio (x1/n1)/(x2/n2) with the Katz log interval.

    SE(ln RR) = sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2) (Katz et al. 1978); needs x1, x2 > 0.
    """
    if min(x1, x2) <= 0 or x1 > n1 or x2 > n2:
        raise ValueError(f"the Katz interval needs 0 < x <= n in both groups, got {x1}/{n1} and {x2}/{n2}")
    ratio = (x1 / n1) / (x2 / n2)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se)


def enrichment(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> dict[str, Any]:
    """Ratio of two independent binomial shares, arm 1 (conditioned) over arm 2 (unconditioned), with a 95% interval.

    ``status`` says which case applies:

    * ``finite``: both counts > 0; Katz log interval.
    * ``infinite``: x2 = 0 < x1; the ratio is infinite and only a one-sided lower bound is given,
      ``ci_low`` = Wilson lower bound of share 1 / Wilson upper bound of share 2 (each a one-sided 97.5%
      bound, so together at least 95% by Bonferroni); ``ci_high`` = inf.
    * ``zero``: x1 = 0 < x2; the ratio is 0, ``ci_low`` = 0 and the one-sided upper bound is
      Wilson upper of share 1 / Wilson lower of share 2 (same construction).
    * ``both_zero``: no success in either arm; no ratio, no interval (the upper bound of share 1 is
      reported in ``note``).
    * ``undefined``: an arm has n = 0.

    ``ratio``, ``ci_low`` and ``ci_high`` are floats (``math.inf`` allowed) or None.
    """
    base = {"x1": x1, "n1": n1, "x2": x2, "n2": n2}
    if n1 <= 0 or n2 <= 0:
        return {**base, "status": "undefined", "ratio": None, "ci_low": None, "ci_high": None, "method": None,
                "note": "an arm has no crystal in the denominator"}  # fmt: skip
    if x1 > 0 and x2 > 0:
        ratio, low, high = katz_interval(x1, n1, x2, n2, z)
        return {**base, "status": "finite", "ratio": ratio, "ci_low": low, "ci_high": high, "method": "katz-log",
                "note": ""}  # fmt: skip
    lo1, hi1 = wilson_interval(x1, n1, z)
    lo2, hi2 = wilson_interval(x2, n2, z)
    method = "one-sided: Wilson bounds of the two shares (Bonferroni, >= 95%)"
    if x1 > 0:  # x2 == 0
        note = "unconditioned share is 0: the ratio is infinite; lower bound only"
        return {**base, "status": "infinite", "ratio": math.inf, "ci_low": lo1 / hi2, "ci_high": math.inf,
                "method": method, "note": note}  # fmt: skip
    if x2 > 0:  # x1 == 0
        return {**base, "status": "zero", "ratio": 0.0, "ci_low": 0.0, "ci_high": hi1 / lo2, "method": method,
                "note": "conditioned share is 0: the ratio is 0; upper bound only"}  # fmt: skip
    return {**base, "status": "both_zero", "ratio": None, "ci_low": None, "ci_high": None, "method": None,
            "note": f"both shares are 0 (upper bounds {hi1:.3g} and {hi2:.3g}): no ratio can be given"}  # fmt: skip


def format_share(s: dict[str, Any]) -> str:
    """``"0.120 [0.071, 0.196] (12/100)"``, or ``"n/a (0/0)"``."""
    if s["share"] is None:
        return f"n/a ({s['count']}/{s['n']})"
    return f"{s['share']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}] ({s['count']}/{s['n']})"


def format_enrichment(e: dict[str, Any]) -> str:
    """The ratio and its interval as text, with the zero cases spelled out."""
    status = e["status"]
    if status == "finite":
        return f"{e['ratio']:.2f} [{e['ci_low']:.2f}, {e['ci_high']:.2f}]"
    if status == "infinite":
        return f"infinite (unconditioned 0); >= {e['ci_low']:.2f} (one-sided 95%)"
    if status == "zero":
        return f"0 (conditioned 0); <= {e['ci_high']:.2f} (one-sided 95%)"
    if status == "both_zero":
        return "undefined: both shares are 0"
    return "undefined: an arm has no crystal"


def _json_ratio(e: dict[str, Any]) -> dict[str, Any]:
    """The enrichment for JSON: infinities as the string ``"inf"`` (JSON has no infinity)."""
    return {k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in e.items()}


# ---------------------------------------------------------------------------------------------- options
class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Module docstring as is; a default shown only when there is one (not None or a bare flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from td_models import ExperimentConfig

    p = argparse.ArgumentParser(prog="conditional_yield.py", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--stage", choices=STAGES, default="all",
                   help="prepare: training data, labelled (writes --items); train: train or load the model, sample "
                   "both arms (writes the sample files; needs no td-data/td-physics); label: relabel the samples, "
                   "the report; all: the three")  # fmt: skip
    p.add_argument("--items", default=None,
                   help=f"training items file written by --stage prepare, read by --stage train (default: "
                   f"OUTPUT_DIR/{ITEMS_FILE})")  # fmt: skip
    p.add_argument("--samples-dir", default=None,
                   help=f"folder --stage label reads {SAMPLES_FILE.format(arm='conditioned')} and "
                   f"{SAMPLES_FILE.format(arm='unconditioned')} from (default: --output-dir)")  # fmt: skip
    p.add_argument("--model-path", default=None, help="a trained model file (TopologicalDiffusionModel.save); "
                   "skips data generation, labelling and training")  # fmt: skip
    p.add_argument("--trusted", action="store_true", help="load --model-path without weights_only (your own files)")
    p.add_argument("--output-dir", default="outputs/conditional_yield", help="where yield.json/.md/.png go")
    p.add_argument("--n-train", type=int, default=300, help="synthetic training crystals")
    p.add_argument("--max-label-atoms", type=int, default=6,
                   help="only crystals with at most this many sites are labelled (training and generated)")  # fmt: skip
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
    p.add_argument("--n-samples", type=int, default=200, help="crystals generated per arm")
    p.add_argument("--steps", type=int, default=None, help="reverse sampling steps (default: the model's full chain)")
    p.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance w of the conditioned arm (1 = plain conditional; default: the "
                   "model's physics_config.guidance_scale)")  # fmt: skip
    p.add_argument("--num-atoms", default="train-labellable",
                   help="atoms per crystal: 'train-labellable' (training distribution, at most --max-label-atoms), "
                   "'train' (whole training distribution) or an integer")  # fmt: skip
    p.add_argument("--sample-batch-size", type=int, default=256, help="crystals per sampling batch")
    p.add_argument("--seed", type=int, default=0, help="data, training and sampling seed (unconditioned arm: +1)")
    p.add_argument("--workers", type=int, default=1, help="labeller worker processes")
    p.add_argument("--label-timeout", type=float, default=20.0,
                   help="seconds the labeller may spend on one crystal; slower ones are counted as not labelled "
                   "(reason 'labeller timeout')")  # fmt: skip
    p.add_argument("--gap-mesh", type=int, default=6, help="k-points per axis of the labeller's gap search")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="library logs at INFO")
    return p


def _check_args(args: argparse.Namespace) -> None:
    positive = {"--n-train": args.n_train, "--max-label-atoms": args.max_label_atoms, "--n-samples": args.n_samples,
                "--sample-batch-size": args.sample_batch_size, "--workers": args.workers,
                "--gap-mesh": args.gap_mesh, "--threads": args.threads}  # fmt: skip
    optional = {"--max-epochs": args.max_epochs, "--batch-size": args.batch_size, "--steps": args.steps}
    for name, value in {**positive, **{k: v for k, v in optional.items() if v is not None}}.items():
        if value < 1:
            raise ScriptError(f"{name} must be >= 1, got {value}")
    if args.budget_minutes is not None and not (math.isfinite(args.budget_minutes) and args.budget_minutes > 0):
        raise ScriptError(f"--budget-minutes must be a number > 0, got {args.budget_minutes}")
    if not (math.isfinite(args.label_timeout) and args.label_timeout > 0):
        raise ScriptError(f"--label-timeout must be a number > 0, got {args.label_timeout}")
    if args.guidance_scale is not None and not (math.isfinite(args.guidance_scale) and args.guidance_scale >= 0):
        raise ScriptError(f"--guidance-scale must be a number >= 0, got {args.guidance_scale}")
    if args.num_atoms not in ("train", "train-labellable"):
        try:
            n = int(args.num_atoms)
        except ValueError:
            raise ScriptError(
                f"--num-atoms must be 'train', 'train-labellable' or an integer, got {args.num_atoms!r}"
            ) from None
        if n < 1:
            raise ScriptError(f"--num-atoms must be >= 1, got {n}")


# ---------------------------------------------------------------------------------------------- labelling
def label_config(args: argparse.Namespace):
    """The ``label`` pipeline's options (spin-orbit on) with this run's workers, gap mesh and size cap."""
    from pipelines.config import LabelConfig

    return LabelConfig.from_dict({"workers": args.workers, "gap_mesh": args.gap_mesh,
                                  "max_atoms": args.max_label_atoms})  # fmt: skip


def run_labeller(records: list, cfg: Any, timeout: float, desc: str, no_progress: bool) -> tuple[list, list]:
    """``(labelled records, [(id, reason), ...])``: ``td_data.labels.label_records`` on the records (labels
    cleared first) in ``cfg.workers`` processes; a record that takes longer than ``timeout`` seconds is given up
    (``label_records(timeout=...)``; reason ``"labeller timeout ..."``)."""
    from threadpoolctl import threadpool_limits

    from td_data.labels import label_records

    if not records:
        return [], []
    bar = progress(range(len(records)), total=len(records), desc=desc, disable=no_progress)

    def advance(done: int, total: int) -> None:
        if hasattr(bar, "update"):
            bar.update(done - bar.n)

    todo = [r.replace(labels={}) for r in records]
    try:
        with threadpool_limits(limits=1, user_api="blas"):  # the workers limit themselves; this is for workers=1
            result = label_records(todo, workers=max(1, int(cfg.workers)), timeout=timeout, progress=advance,
                                   **cfg.classify_options())  # fmt: skip
    finally:
        if hasattr(bar, "close"):
            bar.close()
    failed = []
    for q in result.quarantined:
        rid, reason = q.record_id, q.reason
        failed.append((rid, "labeller " + reason if reason.startswith("timeout") else reason))
    return list(result.records), failed


def label_training(records: list, args: argparse.Namespace) -> tuple[list, dict[str, Any]]:
    """All ``records``, those with at most ``--max-label-atoms`` sites labelled; a summary with class counts."""
    cfg = label_config(args)
    eligible = [r for r in records if r.num_atoms <= args.max_label_atoms]
    labelled, failed = run_labeller(eligible, cfg, args.label_timeout, "labelling training crystals", args.no_progress)
    by_id = {r.id: r for r in labelled}
    out = [by_id.get(r.id, r.replace(labels={k: v for k, v in r.labels.items() if k != "topo_class"}))
           for r in records]  # fmt: skip
    counts = Counter(r.labels["topo_class"] for r in labelled)
    target_sizes = Counter(r.num_atoms for r in labelled if r.labels["topo_class"] == TARGET)
    summary = {
        "n_records": len(records),
        "n_attempted": len(eligible),
        "n_labelled": len(labelled),
        "n_failed": len(failed),
        "n_unlabelled": len(records) - len(labelled),
        "class_counts": {c: counts.get(c, 0) for c in CLASSES},
        "target_atom_counts": {int(k): v for k, v in sorted(target_sizes.items())},
        "failures": [{"id": rid, "reason": reason} for rid, reason in failed],
        "max_label_atoms": args.max_label_atoms,
    }
    return out, summary


def relabel_arm(records: list, rejected: list, args: argparse.Namespace, arm: str) -> tuple[list, dict[str, Any]]:
    """Recomputed class (or why none) of every generated crystal of one arm; ``(rows, counts)``."""
    from pipelines.config import LABELLER_ELEMENTS
    from td_data.validity import structure_validity

    allowed = set(LABELLER_ELEMENTS)
    rows: list[dict[str, Any]] = []
    todo = []
    for rej in rejected:
        rows.append({"arm": arm, "id": f"{arm}-{rej['index']:04d}", "formula": "", "num_atoms": None,
                     "struct_valid": False, "status": "not a valid record", "detail": rej["reason"]})  # fmt: skip
    by_id: dict[str, dict[str, Any]] = {}
    for rec in records:
        ok, why = structure_validity(rec)
        row = {"arm": arm, "id": rec.id, "formula": rec.formula, "num_atoms": rec.num_atoms, "struct_valid": ok,
               "volume_per_atom": round(float(rec.volume) / rec.num_atoms, 3),
               "predicted_class": rec.labels.get("predicted_class")}  # fmt: skip
        if not ok:
            row.update(status="structurally invalid", detail=why)
        elif rec.num_atoms > args.max_label_atoms:
            row.update(status="too many sites", detail=f"{rec.num_atoms} > --max-label-atoms {args.max_label_atoms}")
        elif not set(rec.species) <= allowed:
            row.update(status="unsupported elements", detail=str(sorted(set(rec.species) - allowed)))
        else:
            todo.append(rec)
        rows.append(row)
        by_id[rec.id] = row
    labelled, failed = run_labeller(todo, label_config(args), args.label_timeout, f"labelling {arm}", args.no_progress)
    for rec in labelled:
        by_id[rec.id].update(status="labelled", detail="", recomputed_class=rec.labels["topo_class"],
                             confidence=rec.labels.get("confidence"))  # fmt: skip
    for rid, reason in failed:
        if reason.startswith("labeller timeout"):
            kind = "labeller timeout"
        elif "UnsupportedElementError" in reason:
            kind = "unsupported elements"
        else:
            kind = "labeller error"
        by_id[rid].update(status=kind, detail=reason)
    return rows, arm_summary(rows, n_generated=len(records) + len(rejected))


def arm_summary(rows: list[dict[str, Any]], n_generated: int) -> dict[str, Any]:
    """Counts, shares (over labelled and over generated) with Wilson intervals, unlabelled reasons."""
    labelled = [r for r in rows if r["status"] == "labelled"]
    n_lab = len(labelled)
    counts = Counter(r["recomputed_class"] for r in labelled)
    n_target = counts.get(TARGET, 0)
    reasons = Counter(r["status"] for r in rows if r["status"] != "labelled")
    examples: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] != "labelled" and len(examples.setdefault(r["status"], [])) < 3:
            examples[r["status"]].append(f"{r['id']} {r['formula']}: {r['detail']}"[:300])
    return {
        "n_generated": n_generated,
        "n_valid_records": sum(r["status"] != "not a valid record" for r in rows),
        "n_structurally_valid": sum(bool(r["struct_valid"]) for r in rows),
        "n_labelled": n_lab,
        "n_unlabelled": n_generated - n_lab,
        "unlabelled_reasons": {k: reasons.get(k, 0) for k in UNLABELLED_REASONS},
        "unlabelled_examples": examples,
        f"n_{TARGET}": n_target,
        "share_over_labelled": share(n_target, n_lab),
        "share_over_generated": share(n_target, n_generated),
        "class_counts": {c: counts.get(c, 0) for c in CLASSES},
        "class_shares_over_labelled": {c: share(counts.get(c, 0), n_lab) for c in CLASSES},
        "predicted_class_counts": dict(Counter(r.get("predicted_class") for r in rows if r.get("predicted_class"))),
        "mean_confidence": float(np.mean([r["confidence"] for r in labelled])) if labelled else None,
    }


# ---------------------------------------------------------------------------------------------- data, model
def training_records(args: argparse.Namespace, max_atoms: int) -> list:
    from pipelines.config import LABELLER_ELEMENTS
    from td_data import SyntheticDatasetGenerator

    generator = SyntheticDatasetGenerator(seed=args.seed, max_atoms=min(20, max_atoms),
                                          allowed_elements=LABELLER_ELEMENTS)  # fmt: skip
    return generator.generate_dataset(args.n_train)


def training_items(records: list, mc: Any) -> list[dict[str, Any]]:
    """The records with at most ``mc.max_atoms`` sites as model items (``item_from_record``); at least 2."""
    from td_models.batch import item_from_record

    items = [item_from_record(r, mc.num_species) for r in records if r.num_atoms <= mc.max_atoms]
    if len(items) < 2:
        raise ScriptError(f"training needs at least 2 crystals of at most {mc.max_atoms} sites, got {len(items)}")
    return items


def train_on_items(args: argparse.Namespace, items: list[dict], out: Path) -> tuple[Any, dict[str, Any]]:
    """The benchmarks' budgeted Trainer run on the (partly labelled) items; EMA model and summary.

    Imports nothing from td-data, td-physics or the pipelines (``--stage train`` runs without them)."""
    from pipelines.benchmark.options import BenchmarkTraining
    from pipelines.benchmark.training import train_with_budget
    from td_models import ExperimentConfig

    mc = ExperimentConfig.preset(args.preset).model_config
    items = [it for it in items if len(it["atomic_numbers"]) <= mc.max_atoms]
    if len(items) < 2:
        raise ScriptError(f"training needs at least 2 crystals of at most {mc.max_atoms} sites, got {len(items)}")
    options = BenchmarkTraining(
        preset=args.preset,
        budget_minutes=args.budget_minutes,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_epochs=args.warmup_epochs,
        device=args.device,
        seed=args.seed,
        num_threads=args.threads,
        progress_bar=not args.no_progress,
        run_dir=str(out / "training"),
    )
    model, summary = train_with_budget(items, options)
    summary["n_items"] = len(items)
    summary["n_items_with_class"] = sum(_has_class(it) for it in items)
    return model, summary


def _has_class(item: dict[str, Any]) -> bool:
    """Whether a training item has a topological class (index >= 0, or a class name)."""
    cls = item.get("topo_class")
    return cls is not None and (isinstance(cls, str) or int(cls) >= 0)


def train_model(args: argparse.Namespace, records: list, out: Path) -> tuple[Any, dict[str, Any]]:
    """:func:`train_on_items` on the records' items (:func:`training_items`)."""
    from td_models import ExperimentConfig

    return train_on_items(args, training_items(records, ExperimentConfig.preset(args.preset).model_config), out)


def atom_counts(model: Any, args: argparse.Namespace) -> tuple[np.ndarray, dict[str, Any]]:
    """One draw of ``--n-samples`` atom counts, shared by both arms, and how it was made."""
    if args.num_atoms not in ("train", "train-labellable"):
        n = int(args.num_atoms)
        return np.full(args.n_samples, n, dtype=np.int64), {"mode": "fixed", "value": n}
    weights = model.atom_count_weights.double().cpu().numpy().copy()
    if args.num_atoms == "train-labellable":
        weights[args.max_label_atoms + 1 :] = 0.0
    weights[0] = 0.0
    if weights.sum() <= 0:
        raise ScriptError(f"the model's training distribution has no cell of at most {args.max_label_atoms} sites "
                          "(--num-atoms train-labellable); pass --num-atoms train or an integer")  # fmt: skip
    p = weights / weights.sum()
    rng = np.random.default_rng([int(args.seed), 0xA70])
    counts = rng.choice(np.arange(len(p)), size=args.n_samples, p=p)
    dist = {int(k): round(float(v), 4) for k, v in enumerate(p) if v > 0}
    return counts, {"mode": args.num_atoms, "distribution": dist,
                    "drawn": {int(k): int(v) for k, v in sorted(Counter(counts.tolist()).items())}}  # fmt: skip


def sample_arm(model: Any, arm: str, counts: np.ndarray, args: argparse.Namespace) -> tuple[list, dict]:
    """Generate one arm; ``(samples with the model's predictions, sampling options)``.

    The samples are ``model.sample``'s dicts with ``"predicted"`` added (``predict_samples``); no td-data needed.
    """
    from td_models.exceptions import TDModelsError

    steps = args.steps if args.steps is not None else model.num_steps
    opts: dict[str, Any] = {"steps": steps, "num_atoms": counts.tolist(), "batch_size": args.sample_batch_size,
                            "progress": not args.no_progress}  # fmt: skip
    if arm == "conditioned":
        w = args.guidance_scale if args.guidance_scale is not None else model.config.physics_config.guidance_scale
        opts.update(topo_class=TARGET, guidance_scale=float(w), seed=args.seed)
    else:
        opts.update(seed=args.seed + 1)  # no condition: the learned null, guidance off
    try:
        samples = predict_samples(model.sample(args.n_samples, **opts), model)
    except TDModelsError as err:
        raise ScriptError(str(err)) from err
    info = {k: v for k, v in opts.items() if k not in ("num_atoms", "progress")}
    info.setdefault("topo_class", None)
    info.setdefault("guidance_scale", 1.0)
    info["physics_guidance"] = 0.01 * model.config.physics_config.constraint_weight  # the sampler's default
    return samples, info


# ---------------------------------------------------------------------------------------------- stage files
def _int_keys(d: Any) -> Any:
    """A dict with the integer keys JSON turned into strings restored (anything else as is)."""
    return {int(k): v for k, v in d.items()} if isinstance(d, dict) else d


def _restore_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Integer-keyed counts back to int keys after the JSON of a crystal file's metadata."""
    tl = meta.get("training_labels")
    if isinstance(tl, dict) and "target_atom_counts" in tl:
        tl["target_atom_counts"] = _int_keys(tl["target_atom_counts"])
    na = meta.get("num_atoms")
    if isinstance(na, dict):
        for key in ("distribution", "drawn"):
            if key in na:
                na[key] = _int_keys(na[key])
    return meta


def read_stage_file(path: Path, what: str, stage: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(crystals, metadata)`` of a td-models crystal file; a ScriptError naming the stage that makes it."""
    crystals, meta = read_crystal_file(path, hint=f" ({what}; make it with --stage {stage})")
    return crystals, _restore_metadata(meta)


# ---------------------------------------------------------------------------------------------- report
def _arm_label(arm: str, result: dict[str, Any]) -> str:
    if arm == "conditioned":
        return f"conditioned on {TARGET} (w={result['sampling'][arm]['guidance_scale']:g})"
    return "unconditioned"


def _reasons_text(reasons: dict[str, int]) -> str:
    text = ", ".join(f"{k} {v}" for k, v in reasons.items() if v)
    return text or "none"


def tables(result: dict[str, Any]) -> tuple[str, str]:
    """``(markdown, plain text)`` of the yield table, the class table and the training labels."""
    arms, enr = result["arms"], result["enrichment"]
    head = ["arm", "generated", "valid records", "struct. valid", "labelled", TARGET,
            f"{TARGET} share of labelled [95% CI]", f"{TARGET} share of generated [95% CI]",
            "not labelled (reasons)"]  # fmt: skip
    rows = []
    for arm in ARMS:
        a = arms[arm]
        rows.append([_arm_label(arm, result), a["n_generated"], a["n_valid_records"], a["n_structurally_valid"],
                     a["n_labelled"], a[f"n_{TARGET}"], format_share(a["share_over_labelled"]),
                     format_share(a["share_over_generated"]),
                     f"{a['n_unlabelled']} ({_reasons_text(a['unlabelled_reasons'])})"])  # fmt: skip
    rows.append(["enrichment (conditioned / unconditioned)", "", "", "", "", "",
                 format_enrichment(enr["over_labelled"]), format_enrichment(enr["over_generated"]), ""])  # fmt: skip
    cls_head = ["arm", *[f"{c} (share of labelled)" for c in CLASSES], "mean labeller confidence"]
    cls_rows = []
    for arm in ARMS:
        a = arms[arm]
        conf = "n/a" if a["mean_confidence"] is None else f"{a['mean_confidence']:.2f}"
        cls_rows.append([_arm_label(arm, result),
                         *[format_share(a["class_shares_over_labelled"][c]) for c in CLASSES], conf])  # fmt: skip
    tl = result["training_labels"]
    if tl is None:
        train_line = (f"Training labels: unknown (model from {result['config']['model_path']}); the yield can only be "
                      f"learned if its training set had {TARGET} examples.")  # fmt: skip
    else:
        cc = ", ".join(f"{c} {tl['class_counts'][c]}" for c in CLASSES)
        train_line = (f"Training labels: {tl['n_records']} synthetic crystals, {tl['n_attempted']} with at most "
                      f"{tl['max_label_atoms']} sites sent to the labeller, {tl['n_labelled']} labelled ({cc}; "
                      f"{tl['n_failed']} failed), {tl['n_unlabelled']} train without a class. {TARGET} examples by "
                      f"sites: {tl['target_atom_counts'] or 'none'}.")  # fmt: skip

    def md(h: list, rs: list) -> str:
        lines = ["| " + " | ".join(h) + " |", "|" + "---|" * len(h)]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rs]
        return "\n".join(lines)

    def plain(h: list, rs: list) -> str:
        lines = []
        for r in rs:
            lines.append(str(r[0]))
            lines += [f"    {k:<40} {v}" for k, v in zip(h[1:], r[1:]) if v != ""]
        return "\n".join(lines)

    notes = result["notes"]
    markdown = "\n\n".join([
        f"# Conditional generation yield of {TARGET}", train_line, md(head, rows),
        "Class shares of the labelled crystals (recomputed by the structure labeller):", md(cls_head, cls_rows),
        "\n".join(f"- {n}" for n in notes),
    ]) + "\n"  # fmt: skip
    text = "\n\n".join([train_line, plain(head, rows), plain(cls_head, cls_rows), "\n".join(f"* {n}" for n in notes)])
    return markdown, text


def notes(result: dict[str, Any]) -> list[str]:
    """Caveats printed under the tables."""
    out = []
    tl, tr = result["training_labels"], result["training"]
    if tl is not None and tl["class_counts"][TARGET] == 0:
        out.append(f"NO {TARGET} EXAMPLE in the training labels: the conditioned arm cannot have learned the class.")
    elif tl is not None and tl["class_counts"][TARGET] < 20:
        out.append(f"Only {tl['class_counts'][TARGET]} {TARGET} examples in the training labels.")
    for arm in ARMS:
        a = result["arms"][arm]
        if a["n_generated"] and a["n_labelled"] < 0.5 * a["n_generated"]:
            out.append(f"{arm}: only {a['n_labelled']} of {a['n_generated']} generated crystals could be labelled "
                       f"({_reasons_text(a['unlabelled_reasons'])}).")  # fmt: skip
    enr = result["enrichment"]["over_labelled"]
    if enr["status"] == "both_zero":
        out.append(f"No {TARGET} crystal in either arm: the enrichment cannot be estimated ({enr['note']}).")
    timeouts = sum(result["arms"][arm]["unlabelled_reasons"]["labeller timeout"] for arm in ARMS)
    if timeouts:
        limit = result["config"]["label_timeout"]
        out.append(f"{timeouts} generated crystals hit the {limit:g} s labeller timeout (counted as not "
                   "labelled; they stay in the denominators of the shares of generated crystals).")  # fmt: skip
    if tr is not None:
        out.append(f"Training: preset {result['config']['preset']}, {tr['epochs_completed']} epochs / {tr['steps']} "
                   f"steps in {tr['fit_seconds']:.0f} s, stopped by {tr['stopped_by']}, phases "
                   f"{', '.join(tr['phases_reached'])}.")  # fmt: skip
    s = result["sampling"]["conditioned"]
    out.append(f"Sampling: {s['steps']} reverse steps, atom counts {result['num_atoms']['mode']} (same draw for "
               "both arms), elements restricted to those seen in training, physics guidance "
               f"{s['physics_guidance']:g} in both arms.")  # fmt: skip
    out.append(
        "Labels are the td-physics structure labeller's (universal tight binding, six-variant ensemble; "
        "docs/labeller_accuracy.md), not DFT. Intervals: Wilson 95% per share; enrichment: Katz log 95% "
        "(one-sided Wilson/Bonferroni bound when a share is 0); the arms are independent samples."
    )
    out.append(PUBLISHED_NOTE)
    return out


def figure(result: dict[str, Any]):
    """Class shares per arm with Wilson error bars: of the labelled crystals, and of all generated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    colours = {"conditioned": "tab:red", "unconditioned": "tab:grey"}
    for ax, basis in zip(axes, ("labelled", "generated")):
        cats = list(CLASSES) if basis == "labelled" else [*CLASSES, "not labelled"]
        x = np.arange(len(cats))
        for k, arm in enumerate(ARMS):
            a = result["arms"][arm]
            n = a["n_labelled"] if basis == "labelled" else a["n_generated"]
            counts = [a["class_counts"].get(c, a["n_unlabelled"] if c == "not labelled" else 0) for c in cats]
            stats = [share(c, n) for c in counts]
            vals = np.array([s["share"] or 0.0 for s in stats])
            lo = np.array([s["share"] - s["ci_low"] if s["share"] is not None else 0.0 for s in stats])
            hi = np.array([s["ci_high"] - s["share"] if s["share"] is not None else 0.0 for s in stats])
            ax.bar(x + (k - 0.5) * 0.38, vals, width=0.38, yerr=[lo, hi], capsize=3, color=colours[arm],
                   label=f"{_arm_label(arm, result)} (n={n})")  # fmt: skip
        ax.set_xticks(x, cats, fontsize=8, rotation=10)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"share of {basis} crystals")
        ax.legend(fontsize=8)
    enr = result["enrichment"]["over_labelled"]
    fig.suptitle(f"Recomputed class of generated crystals; {TARGET} enrichment (of labelled): "
                 f"{format_enrichment(enr)}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    keys = ["arm", "id", "formula", "num_atoms", "volume_per_atom", "struct_valid", "status", "recomputed_class",
            "confidence", "predicted_class", "detail"]  # fmt: skip
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: r.get(k, "") for k in keys})


# ---------------------------------------------------------------------------------------------- stages
def _paths(args: argparse.Namespace) -> tuple[Path, Path, dict[str, Path]]:
    """``(output folder, items file, {arm: sample file})`` of this run (the sample files --stage label reads)."""
    out = Path(args.output_dir)
    items = Path(args.items) if args.items else out / ITEMS_FILE
    folder = Path(args.samples_dir) if args.samples_dir and args.stage == "label" else out
    return out, items, {arm: folder / SAMPLES_FILE.format(arm=arm) for arm in ARMS}


def _check_stage_inputs(args: argparse.Namespace) -> None:
    """The files a stage reads exist (before anything slow): a ScriptError naming the file and its stage."""
    _, items, samples = _paths(args)
    if args.stage == "prepare" and args.model_path:
        raise ScriptError("--stage prepare makes training data for a new model; --model-path has no use there "
                          "(pass it to --stage train)")  # fmt: skip
    if args.stage == "train" and not args.model_path and not items.is_file():
        raise ScriptError(f"--stage train needs the training items file {str(items)!r} (made by --stage prepare; "
                          "or pass --items, or --model-path to skip training)")  # fmt: skip
    if args.stage == "label":
        missing = [str(path) for path in samples.values() if not path.is_file()]
        if missing:
            raise ScriptError(f"--stage label needs the sample file{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(repr(m) for m in missing)} (made by --stage train; or pass "
                              "--samples-dir)")  # fmt: skip


def prepare_stage(args: argparse.Namespace, items_path: Path) -> Path:
    """Training crystals, labelled, as model items in ``items_path`` (needs td-data, td-physics, pipelines)."""
    from pipelines.benchmark.training import hardware
    from td_models import ExperimentConfig

    started = time.perf_counter()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    mc = ExperimentConfig.preset(args.preset).model_config
    records = training_records(args, mc.max_atoms)
    timings["generate_training_data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    records, training_labels = label_training(records, args)
    timings["label_training_data"] = time.perf_counter() - t0
    cc = training_labels["class_counts"]
    print(f"training labels: {training_labels['n_labelled']} of {len(records)} crystals labelled "
          f"({', '.join(f'{c} {cc[c]}' for c in CLASSES)}; {training_labels['n_failed']} failed) "
          f"[{timings['label_training_data']:.0f} s]", flush=True)  # fmt: skip
    if cc[TARGET] == 0:
        print(f"warning: no {TARGET} example in the training labels", file=sys.stderr, flush=True)
    items = training_items(records, mc)
    timings["stage_prepare"] = time.perf_counter() - started
    meta = {
        "benchmark": BENCHMARK,
        "stage": "prepare",
        "training_labels": training_labels,
        "n_records": len(records),
        "n_items": len(items),
        "preset": args.preset,
        "max_atoms": mc.max_atoms,
        "num_species": mc.num_species,
        "config": vars(args),
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "hardware": hardware("cpu"),
    }
    write_crystal_file(items_path, items, meta)
    print(f"training items: {len(items)} crystals of at most {mc.max_atoms} sites, "
          f"{sum(_has_class(it) for it in items)} with a class", flush=True)  # fmt: skip
    return items_path


def train_stage(args: argparse.Namespace, out: Path, items_path: Path, samples: dict[str, Path]) -> list[Path]:
    """Train on the items (or load ``--model-path``), sample and predict both arms, write the sample files.

    Imports nothing from td-data, td-physics or the pipelines: this stage runs on a machine without them."""
    from pipelines.benchmark.training import hardware

    started = time.perf_counter()
    timings: dict[str, float] = {}
    written: list[Path] = []
    training_labels = training = prepared = None
    if args.model_path:
        t0 = time.perf_counter()
        model = load_model(args.model_path, device=args.device, trusted=args.trusted)
        model.eval()
        timings["load_model"] = time.perf_counter() - t0
        print(f"model: {args.model_path} ({model.num_parameters():,} parameters)", flush=True)
    else:
        items, prepared = read_stage_file(items_path, "training items file", "prepare")
        if prepared.get("benchmark") == BENCHMARK and prepared.get("stage") != "prepare":
            raise ScriptError(f"{str(items_path)!r} is a file of --stage {prepared.get('stage')}, not training items "
                              "(made by --stage prepare)")  # fmt: skip
        timings.update(prepared.get("timings_seconds") or {})
        training_labels = prepared.get("training_labels")
        model, training = train_on_items(args, items, out)
        timings["train"] = training["fit_seconds"]
        model.save(out / "model.pt")
        written.append(out / "model.pt")
        print(f"training: {training['epochs_completed']} epochs, {training['steps']} steps, stopped by "
              f"{training['stopped_by']} [{training['fit_seconds']:.0f} s]", flush=True)  # fmt: skip

    counts, num_atoms_info = atom_counts(model, args)
    arms: dict[str, tuple[list, dict[str, Any]]] = {}
    for arm in ARMS:
        t0 = time.perf_counter()
        arms[arm] = sample_arm(model, arm, counts, args)
        timings[f"sample_{arm}"] = time.perf_counter() - t0
        n_pred = sum(s["predicted"]["topo_class"] is not None for s in arms[arm][0])
        print(f"{arm}: {len(arms[arm][0])} crystals sampled, {n_pred} with a predicted class "
              f"[sampling {timings[f'sample_{arm}']:.0f} s]", flush=True)  # fmt: skip
    timings["stage_train"] = time.perf_counter() - started
    shared = {
        "benchmark": BENCHMARK,
        "stage": "train",
        "run_id": uuid.uuid4().hex,
        "num_atoms": num_atoms_info,
        "training": training,
        "training_labels": training_labels,
        "model_path": args.model_path or str(out / "model.pt"),
        "model_config": model.config.to_dict(),
        "n_parameters": model.num_parameters(),
        "config": vars(args),
        "prepare_config": (prepared or {}).get("config"),
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()},
        "hardware": hardware(args.device),
    }
    for arm, (crystals, info) in arms.items():
        written.append(write_crystal_file(samples[arm], crystals, {**shared, "arm": arm, "sampling": info}))
    return written


def _read_samples(samples: dict[str, Path]) -> dict[str, tuple[list, dict[str, Any]]]:
    """Both arms' sample files, checked to be the two arms of one --stage train run."""
    loaded = {}
    for arm, path in samples.items():
        crystals, meta = read_stage_file(path, "sample file", "train")
        if meta.get("benchmark") != BENCHMARK or meta.get("arm") != arm or "sampling" not in meta:
            raise ScriptError(f"sample file {str(path)!r} does not hold the {arm} arm of conditional_yield.py "
                              f"--stage train (arm {meta.get('arm')!r})")  # fmt: skip
        loaded[arm] = (crystals, meta)
    ids = {meta["run_id"] for _, meta in loaded.values()}
    if len(ids) != 1:
        raise ScriptError(f"the sample files {', '.join(repr(str(p)) for p in samples.values())} come from "
                          "different --stage train runs")  # fmt: skip
    return loaded


def label_stage(args: argparse.Namespace, out: Path, samples: dict[str, Path]) -> list[Path]:
    """Relabel both arms from the sample files; yield.json, yield.md, yield.png, crystals.csv (and the tables)."""
    from pipelines.benchmark.training import hardware

    started = time.perf_counter()
    loaded = _read_samples(samples)
    meta = loaded["conditioned"][1]
    train_cfg = meta.get("config") or {}
    if train_cfg.get("max_label_atoms", args.max_label_atoms) != args.max_label_atoms:
        print(f"warning: --max-label-atoms {args.max_label_atoms} here, {train_cfg['max_label_atoms']} in --stage "
              "train (its atom counts)", file=sys.stderr, flush=True)  # fmt: skip
    timings: dict[str, float] = dict(meta.get("timings_seconds") or {})
    arms: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    all_rows: list[dict[str, Any]] = []
    for arm in ARMS:
        crystals, arm_meta = loaded[arm]
        records, rejected = samples_to_records(crystals, model=None, prefix=arm)  # the stored predictions
        t0 = time.perf_counter()
        rows, summary = relabel_arm(records, rejected, args, arm)
        timings[f"label_{arm}"] = time.perf_counter() - t0
        arms[arm], sampling[arm] = summary, arm_meta["sampling"]
        all_rows += rows
        print(f"{arm}: {summary['n_labelled']} of {summary['n_generated']} labelled, {summary[f'n_{TARGET}']} "
              f"{TARGET} [sampling {timings.get(f'sample_{arm}', 0.0):.0f} s, labelling "
              f"{timings[f'label_{arm}']:.0f} s]", flush=True)  # fmt: skip

    c, u = arms["conditioned"], arms["unconditioned"]
    enr = {
        "over_labelled": enrichment(c[f"n_{TARGET}"], c["n_labelled"], u[f"n_{TARGET}"], u["n_labelled"]),
        "over_generated": enrichment(c[f"n_{TARGET}"], c["n_generated"], u[f"n_{TARGET}"], u["n_generated"]),
    }
    label_cfg = vars(args)
    prepare_cfg = meta.get("prepare_config")
    config = {**train_cfg, **({"n_train": prepare_cfg["n_train"]} if prepare_cfg else {}),
              **{k: label_cfg[k] for k in LABEL_OPTIONS}, "model_config": meta["model_config"]}  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": f"conditional generation yield of {TARGET} (recomputed by the td-physics structure labeller)",
        "target_class": TARGET,
        "arms": arms,
        "enrichment": enr,
        "training_labels": meta.get("training_labels"),
        "training": meta.get("training"),
        "sampling": sampling,
        "num_atoms": meta["num_atoms"],
        "labeller": {
            "options": {"spin_orbit": True, "gap_mesh": args.gap_mesh, "workers": args.workers},
            "max_label_atoms": args.max_label_atoms,
        },  # fmt: skip
        "config": config,
        "published_reference": PUBLISHED_NOTE,
    }
    result["notes"] = notes(result)
    t0 = time.perf_counter()
    save_figure(figure(result), out / "yield.png")
    timings["figure"] = time.perf_counter() - t0
    timings["stage_label"] = time.perf_counter() - started
    timings["total"] = sum(v for k, v in timings.items() if k.startswith("stage_"))
    result["timings_seconds"] = {k: round(v, 2) for k, v in timings.items()}
    result["hardware"] = meta.get("hardware")  # the train stage's: training and sampling
    result["hardware_label"] = hardware("cpu")  # this stage's: the labeller runs on the CPU
    result["stage_configs"] = {"prepare": prepare_cfg, "train": train_cfg, "label": label_cfg}
    result["sample_files"] = {arm: str(path) for arm, path in samples.items()}
    markdown, text = tables(result)
    result["enrichment"] = {k: _json_ratio(v) for k, v in enr.items()}
    write_json(result, out / "yield.json")
    (out / "yield.md").write_text(markdown, encoding="utf-8")
    write_rows(all_rows, out / "crystals.csv")

    print()
    print(text)
    print("\ntimings [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return [out / name for name in ("yield.json", "yield.md", "yield.png", "crystals.csv")]


# ---------------------------------------------------------------------------------------------- main
def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    _check_stage_inputs(args)
    quiet_libraries(args.verbose)
    import torch

    if args.stage in ("all", "train") and args.device == "cuda" and not torch.cuda.is_available():
        raise ScriptError("--device cuda needs a CUDA device, but torch sees none")
    torch.set_num_threads(args.threads)
    out, items_path, samples = _paths(args)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if args.stage in ("all", "prepare") and not args.model_path:
        written.append(prepare_stage(args, items_path))
    if args.stage in ("all", "train"):
        written += train_stage(args, out, items_path, samples)
    if args.stage in ("all", "label"):
        written = label_stage(args, out, samples) + written

    inside = [p.name for p in written if p.parent == out]
    outside = [str(p) for p in written if p.parent != out]
    print(f"wrote {out}/: {', '.join(inside)}" + "".join(f"; {p}" for p in outside))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark with ``argv`` (``sys.argv[1:]`` when None); returns the exit status."""
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
