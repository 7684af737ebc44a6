"""The benchmarks' CPU half: the published splits -> model items; samples -> records, metrics, table, figure.

The metrics are td-data's (:func:`td_data.metrics.generation_metrics`, its definitions and deviations from the
reference code in its docstring) against the test split with the data set's published coverage cutoffs, under
two protocols: ``published`` (CDVAE's and DiffCSP's ``compute_metrics.py``: CDVAE's composition scaling
constants, Wasserstein distances over ``n_wdist`` valid crystals drawn at random), the one in
``metrics.json["metrics"]`` and beside the published rows, and ``legacy`` (the test set's scaling, every valid
crystal); both with the joint coverage and the coverage over only the fully valid generated crystals. The
baselines of :mod:`td_data.evaluation.baselines` (memorisation, random structures, the ideal prototype) are
built from the same training crystals, as many as the model's samples, and scored the same way.

Training is unconditional: the benchmark rows carry no topological labels and no ``band_gap`` /
``formation_energy``, so every condition is null and the model learns the null embeddings that unconditioned
sampling uses.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.benchmark.options import BenchmarkOptions
from pipelines.benchmark.published import CITATIONS, PUBLISHED
from pipelines.devices import hardware
from pipelines.evaluate.nodes import EvaluateOptions, score_generated
from pipelines.exceptions import ParameterError
from pipelines.train.nodes import training_record
from td_physics.jsonable import to_jsonable

logger = logging.getLogger(__name__)

#: (td-data key, row label, factor from td-data's value to the table's unit): the published protocol's table
TABLE_ROWS = (
    ("struct_valid", "validity, structure [%]", 100.0),
    ("comp_valid", "validity, composition [%]", 100.0),
    ("cov_recall", "COV-R [%]", 100.0),
    ("cov_precision", "COV-P [%]", 100.0),
    ("wdist_density", "W-distance, density [g/cm^3]", 1.0),
    ("wdist_num_elems", "W-distance, # elements", 1.0),
    ("cov_recall_joint", "joint COV-R [%]", 100.0),
    ("cov_precision_joint", "joint COV-P [%]", 100.0),
    ("novelty", "novelty [%]", 100.0),
)
TABLE_LABELS = {key: (label, factor) for key, label, factor in TABLE_ROWS}
#: the rows whose value depends on the protocol: the legacy table has these
PROTOCOL_KEYS = ("cov_recall", "cov_precision", "wdist_density", "wdist_num_elems", "cov_recall_joint",
                 "cov_precision_joint")  # fmt: skip
#: the published models in the published protocol's table (columns), as :data:`PUBLISHED` names them
PUBLISHED_MODELS = ("CDVAE", "DiffCSP")
#: generated crystals DiffCSP's Table 3 scores (its ``scripts/generation.py``: 20 batches of 500)
PUBLISHED_N_GENERATED = 10_000
#: the baselines' column headings (``td_data.evaluation.baselines.BASELINES``)
BASELINE_LABELS = {
    "memorise": "memorise (training crystals)",
    "random_structures": "random structures (PyXtal)",
    "prototype": "ideal prototype",
}
#: Every metric in metrics.json["metrics"] (the published protocol); a None there has its reason in
#: metrics.json["null_reasons"].
METRIC_KEYS = (
    "struct_valid",
    "comp_valid",
    "valid",
    "cov_recall",
    "cov_precision",
    "cov_recall_joint",
    "cov_precision_joint",
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
#: the generate node's settings that metrics.json["options"]["generate_options"] repeats from its summary
GENERATE_KEYS = ("n_requested", "conditioned", "steps", "corrector_steps", "element_counts", "class_counts",
                 "charge_balance", "volume_guidance", "volume_tolerance", "covalent_guidance", "covalent_fraction",
                 "seed", "batch_size", "device")  # fmt: skip
#: each entry of metrics.json["protocols"]: the metrics and what the protocol used
PROTOCOL_ENTRY_KEYS = (*METRIC_KEYS, "n_wdist", "wdist_sample", "comp_scaling")


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


def training_crystals(train_split: Any, options: BenchmarkOptions, prep: Mapping[str, Any]) -> list:
    """The crystals the model trained on (the prepare stage's ``max_train``): novelty and the baselines draw
    from them. A ParameterError when this run's ``max_train`` or files differ from the prepare stage's."""
    if options.max_train != prep["max_train"]:
        made, given = (
            ("no max_train" if n is None else f"max_train {n}") for n in (prep["max_train"], options.max_train)
        )
        raise ParameterError(
            f"benchmark_options: the model trained with {made} (bench_prepare), but this run has {given}; "
            "novelty needs the same training crystals: set the same max_train"
        )
    train, _ = split_records(train_split, options.max_train)
    if len(train) != prep["n_train"]:
        raise ParameterError(
            f"the training split gives {len(train)} crystals, but the model trained on {prep['n_train']} "
            f"({prep['train_files']}): point benchmark_train_split at the files bench_prepare read"
        )
    return train


def reference_crystals(
    train_split: Any,
    test_split: Any,
    training_summary: Mapping[str, Any],
    benchmark_options: Mapping[str, Any],
    evaluate_options: Mapping[str, Any],
) -> tuple[list, list, dict[str, Any]]:
    """``(training crystals, test crystals, what was read)``: the crystals the model trained on (novelty and the
    baselines draw from them; :func:`training_crystals` checks them against the prepare stage's record, which
    the train node's summary carries as ``train_data``) and the test split (the first ``max_test``). The evaluate
    stage's first node, so ``evaluate_options`` is checked here (:func:`evaluate_options_for`), before the
    metrics run."""
    options = BenchmarkOptions.from_dict(benchmark_options)
    evaluate_options_for(options, evaluate_options)
    started = time.perf_counter()
    train = training_crystals(train_split, options, training_summary["train_data"])
    test, quarantined = split_records(test_split, options.max_test)
    read = {"test_quarantined": quarantined, "test_files": _files(test_split.records),
            "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
    return train, test, read


def evaluate_options_for(benchmark: BenchmarkOptions, evaluate_options: Mapping[str, Any]) -> EvaluateOptions:
    """The environment's ``evaluate_options``, refused when its coverage data set is not the benchmark's or when
    it scores only some of the generated crystals (``max_metric_candidates`` must be null)."""
    options = EvaluateOptions.from_dict(evaluate_options)
    if options.coverage_dataset != benchmark.dataset:
        raise ParameterError(
            f"evaluate_options.coverage_dataset is {options.coverage_dataset!r}, but benchmark_options.dataset is "
            f"{benchmark.dataset!r}: the coverage cutoffs must be the benchmark's; set both to the same data set"
        )
    if options.max_metric_candidates is not None:
        raise ParameterError(
            f"evaluate_options.max_metric_candidates is {options.max_metric_candidates}, but the benchmark scores "
            "every generated crystal: set it to null"
        )
    return options


def null_reasons(metrics: Mapping[str, Any]) -> dict[str, str]:
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


def summarise(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` (the published protocol's :data:`METRIC_KEYS`), ``protocols`` (each protocol's
    :data:`PROTOCOL_ENTRY_KEYS`) and ``null_reasons`` of one generated set's :func:`score`."""
    protocols = {
        name: {key: {**metrics, **own}.get(key) for key in PROTOCOL_ENTRY_KEYS}
        for name, own in metrics["protocols"].items()
    }
    return {"metrics": {k: metrics.get(k) for k in METRIC_KEYS}, "protocols": protocols,
            "null_reasons": null_reasons(metrics)}  # fmt: skip


def run_meta(training_summary: Mapping[str, Any], sampling: Mapping[str, Any]) -> dict[str, Any]:
    """The train stage's record: the train node's summary (with the prepare stage's metadata, ``train_data``) and
    the generate node's sampling summary, the sampling's seconds added to the stage's timings. Conditioned
    samples are refused: the published protocol is de-novo generation, and the benchmark rows carry no labels to
    condition on."""
    if sampling.get("conditioned"):
        raise ParameterError(
            f"the samples were conditioned on {sampling.get('requested_class')!r}, but the benchmark scores de-novo "
            "generation: set generate_options.conditioned to false"
        )
    seconds = sampling.get("seconds") or 0.0
    timings = {**(training_summary.get("timings_seconds") or {}), **(sampling.get("timings_seconds") or {})}
    return {
        **training_summary,
        "sampling": dict(sampling),
        "timings_seconds": timings,
        "seconds": round((training_summary.get("seconds") or 0.0) + seconds, 2),
    }


def baseline_metrics(
    train: list,
    test: list,
    samples_file: tuple[list, dict],
    benchmark_options: Mapping[str, Any],
    evaluate_options: Mapping[str, Any],
) -> dict[str, Any]:
    """Each of ``benchmark_options.baselines`` built from the model's training crystals, as many crystals as
    the model's samples (or ``baseline_samples``), scored as the model is (the evaluate node's
    :func:`~pipelines.evaluate.nodes.score_generated`): ``{kind: {"n", "metrics", "protocols", "null_reasons",
    "seconds"}}``, or ``{kind: {"null_reason": why}}`` for a baseline the data set does not have
    (``td_data.exceptions.BaselineNotApplicableError``)."""
    from td_data.evaluation.baselines import baseline_records
    from td_data.exceptions import BaselineNotApplicableError

    options = BenchmarkOptions.from_dict(benchmark_options)
    scoring = evaluate_options_for(options, evaluate_options)
    if not options.baselines:
        return {}
    n = options.baseline_samples or samples_file[1]["n_requested"]
    out: dict[str, Any] = {}
    for kind in options.baselines:
        t0 = time.perf_counter()
        try:
            records = baseline_records(kind, train, n, dataset=options.dataset, seed=scoring.seed,
                                       n_jobs=scoring.n_jobs)  # fmt: skip
        except BaselineNotApplicableError as err:
            out[kind] = {"null_reason": str(err)}
            logger.info("baseline %s: not applicable (%s)", kind, err)
            continue
        out[kind] = {"n": len(records), **summarise(score_generated(records, test, train, scoring)),
                     "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
        logger.info("baseline %s: %d crystals scored in %.1f s", kind, len(records), out[kind]["seconds"])
    return to_jsonable(out, strict=False)


def _columns(baselines: Mapping[str, Any], published: bool) -> list[tuple[str, str]]:
    """(column key, heading) of a table: ours, each baseline, the published models (published protocol only)."""
    cols = [("ours", "ours (this run)")] + [(kind, BASELINE_LABELS[kind]) for kind in baselines]
    return cols + ([(m, f"{m} (published)") for m in PUBLISHED_MODELS] if published else [])


def table_rows(ours: Mapping[str, Any], baselines: Mapping[str, Any], dataset: str) -> list[dict[str, Any]]:
    """The published protocol's rows (:data:`TABLE_ROWS`), then the legacy protocol's (:data:`PROTOCOL_KEYS`):
    each with ``key``, ``metric``, ``protocol`` and one value per column in the table's unit (None: n/a)."""
    published = PUBLISHED[dataset]
    rows = []
    for protocol, keys in (("published", [k for k, _, _ in TABLE_ROWS]), ("legacy", PROTOCOL_KEYS)):
        for key in keys:
            label, factor = TABLE_LABELS[key]
            row: dict[str, Any] = {"key": key, "metric": label, "protocol": protocol}
            for column, result in (("ours", ours), *baselines.items()):
                value = result.get("protocols", {}).get(protocol, {}).get(key)
                row[column] = None if value is None or not math.isfinite(value) else value * factor
            for model in PUBLISHED_MODELS:
                row[model] = published[model].get(key) if protocol == "published" else None
            rows.append(row)
    return rows


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if key.startswith("wdist") else f"{value:.2f}"


def markdown_table(rows: Sequence[Mapping[str, Any]], baselines: Mapping[str, Any], protocol: str) -> str:
    """One protocol's rows as a Markdown table (the published models' columns in the published one only)."""
    cols = _columns(baselines, protocol == "published")
    lines = ["| metric | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        if r["protocol"] == protocol:
            lines.append(f"| {r['metric']} | " + " | ".join(_fmt(r[c], r["key"]) for c, _ in cols) + " |")
    return "\n".join(lines)


def caveats(summary: Mapping[str, Any], options: BenchmarkOptions, scoring: EvaluateOptions) -> list[str]:
    """The lines under the tables: what the protocols are and why the comparison is not like for like."""
    tr, data, mc = summary["training"], summary["data"], summary["config"]["model_config"]
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
    if summary["n_requested"] < PUBLISHED_N_GENERATED:
        subset.append(
            f"DiffCSP's table scores {PUBLISHED_N_GENERATED:,} generated crystals, this run "
            f"{summary['n_requested']:,}: COV-R grows with the number generated, so it is understated here "
            "(the memorise baseline shows by how much)."
        )
    if summary["n_match_sample"] < summary["n_generated"]:
        subset.append(
            f"Uniqueness and novelty (no published table has them) use {summary['n_match_sample']:,} of the "
            f"{summary['n_generated']:,} generated crystals, drawn at random (seed {scoring.seed}; "
            "evaluate_options.match_sample), and at most as many of each baseline's: StructureMatcher compares "
            "every pair of one formula and cell size."
        )
    published, legacy = summary["protocols"]["published"], summary["protocols"]["legacy"]
    notes = [
        *subset,
        f"Not like for like. Our training set: {data['n_train']:,} crystals (from {options.train_description}); "
        f"the published models trained on the full {options.full_train_split:,}-crystal train split.",
        f"Our training budget: {budget} of wall-clock on {tr['device']} ({summary['hardware']['device_name']}), "
        f"model hidden_dim {mc['hidden_dim']}, {mc['num_layers']} layers ({summary['parameters'] / 1e6:.2f}M "
        f"parameters), {tr['epochs_completed']} epochs / {tr['global_step']} steps done in "
        f"{tr['timings_seconds']['train']:.0f} s, stopped by {tr['stopped_by']}; "
        "the published models used their own, full training schedules.",
        f"Generated: {summary['n_generated']} of {summary['n_requested']} requested "
        f"({summary['sampling']['steps']} reverse steps); {summary['n_valid']} fully valid "
        "(structure, composition and fingerprint).",
        "COV uses every featurised generated crystal, as the CDVAE code does (COV over only the valid ones is in "
        f"metrics.json); cutoffs structure {summary['cutoffs'][0]:g}, composition {summary['cutoffs'][1]:g}. "
        "Joint COV (no published table has it) counts a crystal only when ONE crystal on the other side is within "
        "both cutoffs.",
        "Published protocol (CDVAE / DiffCSP compute_metrics.py): Magpie vectors scaled by "
        f"{published['comp_scaling']}; W-distances over {published['wdist_sample']}. Legacy protocol (this "
        f"project's earlier reading, not comparable to published numbers): scaled by {legacy['comp_scaling']}; "
        f"W-distances over {legacy['wdist_sample']}.",
    ]
    applied = [k for k, b in summary["baselines"].items() if "null_reason" not in b]
    if summary["baselines"]:
        notes.append(
            f"Baselines, built in this run from the same {data['n_train']:,} training crystals (seed "
            f"{scoring.seed}) and scored the same way: "
            + "; ".join(f"{BASELINE_LABELS[k]}: {summary['baselines'][k]['n']:,} crystals" for k in applied)
            + "".join(
                f"; {BASELINE_LABELS[k]}: n/a, {b['null_reason']}"
                for k, b in summary["baselines"].items()
                if "null_reason" in b
            )  # fmt: skip
            + "."
        )
    return notes


def benchmark_metrics(
    generated: list,
    generation_metrics: Mapping[str, Any],
    training_summary: Mapping[str, Any],
    samples_file: tuple[list, dict],
    test: list,
    read: Mapping[str, Any],
    baselines: Mapping[str, Any],
    benchmark_options: Mapping[str, Any],
    evaluate_options: Mapping[str, Any],
) -> tuple[dict[str, Any], str, Any]:
    """``(metrics.json content, table.md text, figure)``: the evaluate node's metrics of the generated crystals
    (``generation_metrics``, :func:`pipelines.evaluate.nodes.generation_quality` against the test split) beside
    the baselines (:func:`baseline_metrics`) and the published rows.

    Novelty is measured against the same training crystals the model trained on (:func:`reference_crystals`:
    ``max_train`` must equal the prepare stage's, a ParameterError otherwise)."""
    from td_data.metrics import validity_flags

    options = BenchmarkOptions.from_dict(benchmark_options)
    scoring = evaluate_options_for(options, evaluate_options)
    started = time.perf_counter()
    samples = samples_file[0]
    meta = run_meta(training_summary, samples_file[1])
    prep = meta["train_data"]
    metrics = generation_metrics
    timings = {"load_data": read["seconds"], "metrics": metrics["seconds"]}
    t0 = time.perf_counter()
    struct_ok, comp_ok = validity_flags(generated)
    fig = figure(generated, np.asarray(struct_ok) & np.asarray(comp_ok), test, options.title)
    timings["figure"] = time.perf_counter() - t0
    timings["baselines"] = sum(b.get("seconds", 0.0) for b in baselines.values())
    n_requested = meta["sampling"]["n_requested"]
    cutoffs = scoring.coverage_cutoffs()
    ours = summarise(metrics)
    rows = table_rows(ours, baselines, options.dataset)
    # the reference crystals, the metrics and the baselines ran in their own nodes
    evaluate_seconds = time.perf_counter() - started + timings["load_data"] + timings["metrics"] + timings["baselines"]
    stages = {
        "prepare": {"hardware": prep.get("hardware"), "seconds": prep.get("seconds")},
        "train": {"hardware": meta["hardware"], "seconds": meta.get("seconds"), "options": meta.get("options")},
        "evaluate": {"hardware": hardware("cpu"), "seconds": round(evaluate_seconds, 2)},
    }
    all_timings = {"prepare": prep.get("seconds") or 0.0, **meta["timings_seconds"], **timings}
    all_timings["total"] = sum(stages[name]["seconds"] or 0.0 for name in ("prepare", "train", "evaluate"))
    summary: dict[str, Any] = {
        "benchmark": f"{options.title} de-novo generation (CDVAE / DiffCSP protocol)",
        "name": options.name,
        "dataset": options.dataset,
        **ours,
        "baselines": dict(baselines),
        "table": rows,
        "published": PUBLISHED[options.dataset],
        "citations": CITATIONS,
        "n_requested": n_requested,
        "n_generated": len(generated),
        "n_rejected_samples": len(samples) - len(generated),
        "n_valid": int(metrics["n_valid"]),
        "n_featurisation_failed": metrics["n_featurisation_failed"],
        "n_reference_featurisation_failed": metrics["n_reference_featurisation_failed"],
        "n_match_sample": metrics["n_match_sample"],
        "cutoffs": list(cutoffs),
        "coverage_convention": "COV over every featurised generated crystal (CDVAE code); *_valid_only: valid ones; "
        "*_joint: one crystal within both cutoffs",
        "data": {
            "train_files": prep["train_files"],
            "test_files": read["test_files"],
            "n_train": prep["n_train"],
            "n_test": len(test),
            "max_train": prep["max_train"],
            "max_test": options.max_test,
            "train_quarantined": prep["train_quarantined"],
            "test_quarantined": read["test_quarantined"],
            "train_atom_counts": prep["train_atom_counts"],
            "full_train_split": options.full_train_split,
            "novelty_against": f"the {prep['n_train']} training crystals used here",
        },
        "parameters": meta["num_parameters"],
        "config": meta["config"],
        "training": training_record(training_summary),
        "sampling": meta["sampling"],
        "composition": metrics.get("composition"),  # elements and atoms per cell, charge balance, against training
        "timings_seconds": {k: round(v, 2) for k, v in all_timings.items()},
        "hardware": meta["hardware"],  # where the model trained and sampled
        "stages": stages,
        "options": {
            "benchmark_options": {**benchmark_options},
            "train_options": meta.get("options"),
            "generate_options": {k: meta["sampling"].get(k) for k in GENERATE_KEYS},
            "evaluate_options": dataclasses.asdict(scoring),
        },
    }
    notes = caveats(summary, options, scoring)
    summary["caveats"] = notes
    table = (
        f"# {options.title} de-novo generation\n\n"
        + f"## Published protocol\n\n{markdown_table(rows, baselines, 'published')}\n\n"
        + f"## Legacy protocol\n\n{markdown_table(rows, baselines, 'legacy')}\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\nPublished: " + "; ".join(f"{k}: {v}" for k, v in CITATIONS.items()) + ".\n"
    )  # fmt: skip
    logger.info("%s", table)
    return to_jsonable(summary, strict=False), table, fig


def figure(generated: list, valid: np.ndarray, test: list, title: str) -> Any:
    """Density and #elements histograms (generated crystals with ``valid`` true vs test) and element frequencies."""
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
        ax.hist(np.clip(d_gen, 0, hi), bins=bins, density=True, alpha=0.6,
                label=f"generated, valid structure and composition ({len(d_gen)})")  # fmt: skip
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
