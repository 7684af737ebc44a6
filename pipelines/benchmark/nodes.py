"""The benchmarks' CPU half: the published splits -> model items; samples -> records, metrics, table, figure.

The metrics are td-data's (:func:`td_data.metrics.generation_metrics`, the CDVAE / DiffCSP protocol, its
definitions and deviations from the reference code in its docstring) against the test split with the data
set's published coverage cutoffs, plus coverage over only the fully valid generated crystals (a stricter
reading). Training is unconditional: the benchmark rows carry no topological labels and no ``band_gap`` /
``formation_energy``, so every condition is null and the model learns the null embeddings that unconditioned
sampling uses.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.benchmark.options import BenchmarkOptions
from pipelines.benchmark.published import CITATIONS, PUBLISHED
from pipelines.benchmark.training import hardware
from pipelines.exceptions import ParameterError
from td_physics.jsonable import to_jsonable

logger = logging.getLogger(__name__)

#: (td-data key, row label, factor from td-data's value to the table's unit)
TABLE_ROWS = (
    ("struct_valid", "validity, structure [%]", 100.0),
    ("comp_valid", "validity, composition [%]", 100.0),
    ("cov_recall", "COV-R [%]", 100.0),
    ("cov_precision", "COV-P [%]", 100.0),
    ("wdist_density", "W-distance, density [g/cm^3]", 1.0),
    ("wdist_num_elems", "W-distance, # elements", 1.0),
)
COLUMNS = ("ours (this run)", "CDVAE (published)", "DiffCSP (published)")
#: Every metric in metrics.json["metrics"]; a None there has its reason in metrics.json["null_reasons"].
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


# ---------------------------------------------------------------------------------------------- prepare
def split_records(split: Any, limit: int | None) -> tuple[list, int]:
    """``(records, number quarantined)`` of a loaded split (``td_data.evaluation.LoadedSplit``), the first
    ``limit`` kept (None: all)."""
    records = list(split.records)
    return (records[:limit] if limit else records), split.n_quarantined


def _files(records: Sequence[Any]) -> list[str]:
    """The file names the records were read from, in order of first appearance (``source`` is ``path:row N``)."""
    names: list[str] = []
    for r in records:
        name = r.source.rsplit(":row ", 1)[0].replace("\\", "/").rsplit("/", 1)[-1]
        if name not in names:
            names.append(name)
    return names


def prepare_items(train_split: Any, benchmark_options: Mapping[str, Any]) -> tuple[list[dict], dict[str, Any]]:
    """``(model items, metadata)`` of the training crystals: what the GPU half trains on (needs td-data here)."""
    from td_models.batch import item_from_record

    options = BenchmarkOptions.from_dict(benchmark_options)
    started = time.perf_counter()
    records, quarantined = split_records(train_split, options.max_train)
    items = [item_from_record(r) for r in records]  # no labels, no band_gap/formation_energy: all null
    counts = np.bincount([len(it["atomic_numbers"]) for it in items])
    meta = {
        "benchmark": options.name,
        "n_train": len(items),
        "train_quarantined": quarantined,
        "train_atom_counts": {int(n): int(c) for n, c in enumerate(counts) if c},
        "train_files": _files(train_split.records),
        "max_train": options.max_train,
        "seconds": round(time.perf_counter() - started, 2),
        "hardware": hardware("cpu"),
    }
    logger.info("prepare: %d training crystals (atoms per cell %s, %d quarantined)", len(items),
                meta["train_atom_counts"], quarantined)  # fmt: skip
    return items, to_jsonable(meta, strict=False)


# ---------------------------------------------------------------------------------------------- evaluate
def generated_records(samples_file: tuple[list, dict], benchmark_options: Mapping[str, Any]) -> list:
    """The samples that are valid crystal records (ids ``<name>-gen-NNNN``), with the stored predictions."""
    from td_data.evaluation import samples_to_records

    options = BenchmarkOptions.from_dict(benchmark_options)
    samples, _ = samples_file
    records, rejected = samples_to_records(samples, id_prefix=f"{options.name}-gen")
    for r in rejected[:5]:
        logger.info("sample %d is not a crystal record: %s", r["index"], r["reason"])
    if not records:
        raise ParameterError(f"none of the {len(samples)} samples is a valid crystal record (degenerate cells)")
    logger.info("records: %d of %d samples are crystals", len(records), len(samples))
    return records


def _metrics(generated: list, test: list, train: list, options: BenchmarkOptions) -> tuple[dict, np.ndarray, dict]:
    """(generation_metrics plus COV over the valid generated crystals only, valid mask, timings)."""
    from td_data.metrics import coverage, fingerprints, generation_metrics, validity_flags

    cutoffs = options.coverage_cutoffs()
    t0 = time.perf_counter()
    cache = options.reference_cache
    metrics = generation_metrics(generated, test, dataset=options.dataset, train=train, cutoffs=cutoffs,
                                 n_jobs=options.n_jobs, reference_cache=cache)  # fmt: skip
    t_metrics = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen_fp = fingerprints(generated, n_jobs=options.n_jobs)
    ref_fp = fingerprints(test, n_jobs=options.n_jobs, cache=cache)  # from the cache written just above
    struct_ok, comp_ok = validity_flags(generated)
    valid = struct_ok & comp_ok & gen_fp.ok
    strict = coverage(gen_fp, ref_fp, struct_cutoff=cutoffs[0], comp_cutoff=cutoffs[1], generated_mask=valid)
    metrics["cov_recall_valid_only"] = strict["cov_recall"]
    metrics["cov_precision_valid_only"] = strict["cov_precision"]
    return metrics, valid, {"metrics": t_metrics, "coverage_valid_only": time.perf_counter() - t0}


def null_reasons(metrics: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """Why each metric that is None or not finite has no value."""
    reasons = {
        "wdist_prop": "no property predictor for the data set's property target was given (CDVAE's d_E), so it "
        "is not measured",
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


def table_rows(metrics: Mapping[str, Any], dataset: str) -> list[dict[str, Any]]:
    """One row per :data:`TABLE_ROWS` entry: ours (in the table's unit) and the published values."""
    published = PUBLISHED[dataset]
    rows = []
    for key, label, factor in TABLE_ROWS:
        value = metrics.get(key)
        ours = None if value is None or not math.isfinite(value) else value * factor
        rows.append({"key": key, "metric": label, "ours": ours, **{m: published[m][key] for m in published}})
    return rows


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if key.startswith(("struct", "comp", "cov")) else f"{value:.4f}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| metric | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = (r["ours"], r["CDVAE"], r["DiffCSP"])
        lines.append(f"| {r['metric']} | " + " | ".join(_fmt(v, r["key"]) for v in cells) + " |")
    return "\n".join(lines)


def caveats(summary: Mapping[str, Any], options: BenchmarkOptions) -> list[str]:
    """The lines under the table: why the comparison is not like for like."""
    tr, data = summary["training"], summary["data"]
    budget = "none (trained to max_epochs)" if tr["budget_minutes"] is None else f"{tr['budget_minutes']:g} min"
    subset = []
    if data["max_train"] or data["max_test"]:
        subset.append(
            f"SUBSET RUN (max_train/max_test): the first {data['n_train']:,} of the training crystals and the "
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
        f"Not like for like. Our training set: {data['n_train']:,} crystals (from {options.train_description}); "
        f"the published models trained on the full {options.full_train_split:,}-crystal train split.",
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


def benchmark_metrics(
    generated: list,
    samples_file: tuple[list, dict],
    train_split: Any,
    test_split: Any,
    benchmark_options: Mapping[str, Any],
) -> tuple[dict[str, Any], str, Any]:
    """``(metrics.json content, table.md text, figure)`` of the generated crystals against the test split.

    Novelty is measured against the same training crystals the model trained on (``max_train`` must equal the
    prepare stage's, a ParameterError otherwise)."""
    options = BenchmarkOptions.from_dict(benchmark_options)
    started = time.perf_counter()
    samples, meta = samples_file
    prep = meta["prepare"]
    if options.max_train != prep["max_train"]:
        made, given = (
            ("no max_train" if n is None else f"max_train {n}") for n in (prep["max_train"], options.max_train)
        )
        raise ParameterError(
            f"benchmark_options: the model trained with {made} (bench_prepare), but this run has {given}; "
            "novelty needs the same training crystals: set the same max_train"
        )
    t0 = time.perf_counter()
    train, _ = split_records(train_split, options.max_train)
    if len(train) != prep["n_train"]:
        raise ParameterError(
            f"the training split gives {len(train)} crystals, but the model trained on {prep['n_train']} "
            f"({prep['train_files']}): point benchmark_train_split at the files bench_prepare read"
        )
    test, test_quarantined = split_records(test_split, options.max_test)
    timings = {"load_data": time.perf_counter() - t0}
    metrics, valid, t_eval = _metrics(generated, test, train, options)
    timings.update(t_eval)
    t0 = time.perf_counter()
    fig = figure(generated, valid, test, options.title)
    timings["figure"] = time.perf_counter() - t0
    n_requested = meta["sampling"]["n_requested"]
    cutoffs = options.coverage_cutoffs()
    rows = table_rows(metrics, options.dataset)
    stages = {
        "prepare": {"hardware": prep.get("hardware"), "seconds": prep.get("seconds")},
        "train": {"hardware": meta["hardware"], "seconds": meta.get("seconds"), "options": meta.get("options")},
        "evaluate": {"hardware": hardware("cpu"), "seconds": round(time.perf_counter() - started, 2)},
    }
    all_timings = {"prepare": prep.get("seconds") or 0.0, **meta["timings_seconds"], **timings}
    all_timings["total"] = sum(stages[name]["seconds"] or 0.0 for name in ("prepare", "train", "evaluate"))
    summary: dict[str, Any] = {
        "benchmark": f"{options.title} de-novo generation (CDVAE / DiffCSP protocol)",
        "name": options.name,
        "dataset": options.dataset,
        "metrics": {k: metrics.get(k) for k in METRIC_KEYS},
        "null_reasons": null_reasons(metrics, options.dataset),
        "table": rows,
        "published": PUBLISHED[options.dataset],
        "citations": CITATIONS,
        "n_requested": n_requested,
        "n_generated": len(generated),
        "n_rejected_samples": len(samples) - len(generated),
        "n_valid": int(metrics["n_valid"]),
        "n_featurisation_failed": metrics["n_featurisation_failed"],
        "n_reference_featurisation_failed": metrics["n_reference_featurisation_failed"],
        "cutoffs": list(cutoffs),
        "coverage_convention": "COV over every featurised generated crystal (CDVAE code); *_valid_only: valid ones",
        "data": {
            "train_files": prep["train_files"],
            "test_files": _files(test_split.records),
            "n_train": prep["n_train"],
            "n_test": len(test),
            "max_train": prep["max_train"],
            "max_test": options.max_test,
            "train_quarantined": prep["train_quarantined"],
            "test_quarantined": test_quarantined,
            "train_atom_counts": prep["train_atom_counts"],
            "full_train_split": options.full_train_split,
            "novelty_against": f"the {len(train)} training crystals used here",
        },
        "preset": meta["preset"],
        "parameters": meta["parameters"],
        "config": meta["config"],
        "training": meta["training"],
        "sampling": meta["sampling"],
        "timings_seconds": {k: round(v, 2) for k, v in all_timings.items()},
        "hardware": meta["hardware"],  # where the model trained and sampled
        "stages": stages,
        "options": {"benchmark_options": {**benchmark_options}, "benchmark_training": meta.get("options")},
    }
    notes = caveats(summary, options)
    summary["caveats"] = notes
    table = (
        f"# {options.title} de-novo generation\n\n" + markdown_table(rows) + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\nPublished: " + "; ".join(f"{k}: {v}" for k, v in CITATIONS.items()) + ".\n"
    )  # fmt: skip
    logger.info("%s", table)
    return to_jsonable(summary, strict=False), table, fig


def figure(generated: list, valid: np.ndarray, test: list, title: str) -> Any:
    """Density and #elements histograms (valid generated vs test) and element frequencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from td_data.record import symbol

    valid_records = [r for r, ok in zip(generated, valid) if ok]
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
    bins = np.arange(0.5, max(n_test + n_gen + [5]) + 1.5, 1.0)
    ax.hist(n_test, bins=bins, density=True, alpha=0.6, label="test")
    if n_gen:
        ax.hist(n_gen, bins=bins, density=True, alpha=0.6, label="generated, valid")
    ax.set_xlabel("elements per cell")
    ax.legend(fontsize=8)
    ax = axes[2]

    def share(records: Sequence[Any]) -> dict[int, float]:
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
    fig.suptitle(f"{title}: {len(generated)} generated ({len(valid_records)} valid) vs {len(test)} test crystals")
    fig.tight_layout()
    return fig
