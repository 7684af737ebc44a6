"""The conditional-yield benchmark: how often does asking the diffusion model for ``z2_ti`` give a ``z2_ti`` crystal?

Two arms of ``generate_options.n_candidates`` crystals each, from one model, sampled by the generate node's
sampler (:func:`pipelines.generate.nodes.sample_crystals`, with the environment's ``generate_options``):
**conditioned** on ``topo_class="z2_ti"`` and **unconditioned** (the learned null, guidance off). The conditioned
arm is sampled at every point of the guidance sweep (:meth:`YieldOptions.sweep`: each classifier-free
``guidance_scales`` value with each ``property_guidance_scales`` value, the class head's log-probability guidance;
without lists, the single ``guidance_scale`` (null: the model's ``physics_config.guidance_scale``) and
``property_guidance``). Every point and
the unconditioned arm get the same drawn atom counts (one seeded draw; with ``num_atoms`` ``class-labellable`` or
``class`` the points share their own draw from the ``TARGET`` training crystals' sizes); the conditioned points
share the noise seed ``generate_options.seed``, the unconditioned arm has that seed + 1.

Every generated crystal the labeller can take is relaxed with CHGNet first (``relax``; :mod:`.yield_judging`), then
relabelled by td-physics' structure labeller (``td_data.labels.label_records`` with the ``label`` pipeline's
options, spin-orbit on); the yield is the share whose *recomputed* class is ``z2_ti``, over the labelled crystals and
over all generated ones, each with its 95% Wilson interval, and the enrichment (conditioned / unconditioned) has the
Katz log interval, or a one-sided bound when a share is 0 (:mod:`td_data.evaluation.yields`). Each sweep point is
reported with its validity and diversity (:mod:`.yield_sweep`); the headline point's enrichment is written at the
top of ``metrics.json`` (``enrichment``, ``enrichment_ci_low``, ``enrichment_ci_high``, and ``enrichment_from``
saying which point and why), beside ``dft_confirmed_conditioned`` and ``dft_confirmed_unconditioned``: the
``z2_ti`` answers of DFT on the top ``dft_top_k`` labelled crystals of the headline point and of the
unconditioned arm (null, with the reason in ``dft.skipped``, when no DFT ran). The model's own class head is not
used for the yield (its answers are ``predicted_class_counts``; it ranks the DFT candidates after the labeller).

Training data: every record of the ``train_data`` store with the labels it carries, or ``n_train`` crystals of
td-data's synthetic generator restricted to the elements the labeller can build (those with at most
``max_label_atoms`` sites labelled, the others train without a class).

Crystals that cannot be labelled are counted by reason (:data:`UNLABELLED_REASONS`): not a valid record,
structurally invalid (atoms closer than 0.5 A or a tiny volume), too many sites, elements the labeller lacks, a
relaxation refused, failed or exploded, labeller error, labeller timeout (``label_timeout`` seconds on one crystal).

Nodes: :func:`yield_training_items` (prepare, td-data and td-physics), :func:`sample_yield_arms` (after the
train pipeline's node, :func:`pipelines.train.nodes.train_on_items`; torch and td-models only, the GPU half) and
:func:`yield_report` (relax, relabel, DFT, tables, figures).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.benchmark.options import NUM_ATOMS_MODES, YieldOptions
from pipelines.devices import hardware
from pipelines.exceptions import ParameterError
from pipelines.generate.nodes import GenerateOptions, on_device, sample_crystals
from pipelines.train.nodes import training_record
from td_data.evaluation import (
    enrichment,
    enrichment_for_json,
    format_enrichment,
    format_share,
    share,
)
from td_physics.classes import TOPO_CLASSES
from td_physics.jsonable import to_jsonable

logger = logging.getLogger(__name__)

TARGET = "z2_ti"
CLASSES = TOPO_CLASSES
ARMS = ("conditioned", "unconditioned")
#: reasons a generated crystal gets no recomputed label, in the order they are checked
UNLABELLED_REASONS = (
    "not a valid record",
    "structurally invalid",
    "too many sites",
    "unsupported elements",
    "relaxation refused",
    "relaxation failed",
    "relaxation exploded",
    "labeller error",
    "labeller timeout",
)
PUBLISHED_NOTE = (
    "The project's goal quotes about five-fold enrichment over unconditioned sampling for published "
    "topology-targeted generation (a different model, data and labeller; not re-checked here)."
)


# ---------------------------------------------------------------------------------------------- labelling
def _label_config(options: YieldOptions) -> Any:
    """The ``label`` pipeline's options (spin-orbit on) with this run's workers, gap mesh and size cap."""
    from pipelines.config import LabelConfig

    return LabelConfig.from_dict({"workers": options.workers, "gap_mesh": options.gap_mesh,
                                  "max_atoms": options.max_label_atoms})  # fmt: skip


def run_labeller(records: Sequence[Any], options: YieldOptions) -> tuple[list, list[tuple[str, str]]]:
    """``(labelled records, [(id, reason), ...])``: ``td_data.labels.label_records`` on the records (labels
    cleared first) in ``workers`` processes; a record that takes longer than ``label_timeout`` seconds is given up
    (reason ``"labeller timeout ..."``)."""
    from threadpoolctl import threadpool_limits

    from td_data.labels import label_records

    if not records:
        return [], []
    cfg = _label_config(options)
    todo = [r.replace(labels={}) for r in records]
    with threadpool_limits(limits=1, user_api="blas"):  # the workers limit themselves; this is for workers=1
        result = label_records(todo, workers=max(1, int(cfg.workers)), timeout=options.label_timeout,
                               **cfg.classify_options())  # fmt: skip
    failed = [(q.record_id, "labeller " + q.reason if q.reason.startswith("timeout") else q.reason)
              for q in result.quarantined]  # fmt: skip
    return list(result.records), failed


def _class_summary(records: Sequence[Any]) -> dict[str, Any]:
    """Class counts of the records that carry a ``topo_class`` label, and the site counts of the ``TARGET`` ones."""
    labelled = [r for r in records if r.labels.get("topo_class") is not None]
    counts = Counter(r.labels["topo_class"] for r in labelled)
    target_sizes = Counter(r.num_atoms for r in labelled if r.labels["topo_class"] == TARGET)
    return {
        "n_records": len(records),
        "n_labelled": len(labelled),
        "n_unlabelled": len(records) - len(labelled),
        "class_counts": {c: counts.get(c, 0) for c in CLASSES},
        "target_atom_counts": {int(k): v for k, v in sorted(target_sizes.items())},
    }


def label_training(records: Sequence[Any], options: YieldOptions) -> tuple[list, dict[str, Any]]:
    """All ``records``, those with at most ``max_label_atoms`` sites labelled; a summary with class counts."""
    eligible = [r for r in records if r.num_atoms <= options.max_label_atoms]
    labelled, failed = run_labeller(eligible, options)
    by_id = {r.id: r for r in labelled}
    out = [by_id.get(r.id, r.replace(labels={k: v for k, v in r.labels.items() if k != "topo_class"}))
           for r in records]  # fmt: skip
    summary = {
        "source": "synthetic",
        **_class_summary(out),
        "n_attempted": len(eligible),
        "n_failed": len(failed),
        "failures": [{"id": rid, "reason": reason} for rid, reason in failed],
        "max_label_atoms": options.max_label_atoms,
    }
    return out, summary


def read_training_store(options: YieldOptions) -> tuple[list, dict[str, Any]]:
    """Every record of the ``train_data`` store, with the labels it carries (no relabelling); a summary with class
    counts. A path that is not a readable store is a :class:`ParameterError` naming the key."""
    from pathlib import Path

    from td_data import CrystalStore
    from td_data.exceptions import TDDataError

    path = Path(options.train_data)
    if not path.is_file():
        raise ParameterError(
            f"yield_options.train_data must name an existing td-data crystal store, got {options.train_data!r} "
            "(missing on disk; scripts/build_topological_families.py writes one), or null for synthetic crystals"
        )
    try:
        with CrystalStore.open(path) as store:
            records = store.read_all()
    except (OSError, TDDataError) as err:
        raise ParameterError(f"yield_options.train_data {options.train_data!r} is not a readable td-data crystal "
                             f"store: {err}") from err  # fmt: skip
    return records, {"source": "store", "path": str(path), **_class_summary(records)}


def yield_training_items(
    yield_options: Mapping[str, Any], model_config: Mapping[str, Any], training_config: Mapping[str, Any]
) -> tuple[list[dict], dict[str, Any]]:
    """``(model items, metadata)``: the ``train_data`` store's crystals with their labels, or synthetic training
    crystals labelled where small enough (td-data, td-physics; the generator's seed is
    ``training_config.seed``, its largest cell ``model_config.max_atoms`` up to 20)."""
    from pipelines.config import LABELLER_ELEMENTS
    from td_data import SyntheticDatasetGenerator
    from td_models import ModelConfig, TrainingConfig
    from td_models.batch import item_from_record

    options = YieldOptions.from_dict(yield_options)
    mc = ModelConfig.from_dict(dict(model_config or {}))
    seed = TrainingConfig.from_dict(dict(training_config or {})).seed
    started = time.perf_counter()
    if options.train_data is not None:
        records, training_labels = read_training_store(options)
        generated = labelled = time.perf_counter()
    else:
        generator = SyntheticDatasetGenerator(seed=seed, max_atoms=min(20, mc.max_atoms),
                                              allowed_elements=LABELLER_ELEMENTS)  # fmt: skip
        records = generator.generate_dataset(options.n_train)
        generated = time.perf_counter()
        records, training_labels = label_training(records, options)
        labelled = time.perf_counter()
    cc = training_labels["class_counts"]
    logger.info("training labels (%s): %d of %d crystals labelled (%s)", training_labels["source"],
                training_labels["n_labelled"], len(records), ", ".join(f"{c} {cc[c]}" for c in CLASSES))  # fmt: skip
    if cc[TARGET] == 0:
        logger.warning("no %s example in the training labels: the conditioned arm cannot learn it", TARGET)
    items = [item_from_record(r, mc.num_species) for r in records if r.num_atoms <= mc.max_atoms]
    meta = {
        "benchmark": "yield",
        "training_labels": training_labels,
        "n_records": len(records),
        "n_items": len(items),
        "n_train": options.n_train if options.train_data is None else len(records),
        "train_data": options.train_data,
        "max_atoms": mc.max_atoms,
        "timings_seconds": {
            "generate_training_data": round(generated - started, 2),
            "label_training_data": round(labelled - generated, 2),
        },  # fmt: skip
        "seconds": round(time.perf_counter() - started, 2),
        "hardware": hardware("cpu"),
    }
    return items, to_jsonable(meta, strict=False)


# ---------------------------------------------------------------------------------------------- sampling
def atom_counts(model: Any, options: YieldOptions, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(conditioned counts, unconditioned counts, how they were made)``: ``n`` atom counts per arm.

    ``train`` modes: one draw from the training crystals' sizes, shared by both arms. ``class`` modes: the
    conditioned arm's from the sizes of the model's ``TARGET`` training crystals (its per-class histogram), the
    unconditioned arm's from all of them, each with the same seed. ``-labellable``: sizes of at most
    ``max_label_atoms`` sites only."""
    if options.num_atoms not in NUM_ATOMS_MODES:
        value = int(options.num_atoms)
        counts = np.full(n, value, dtype=np.int64)
        return counts, counts, {"mode": "fixed", "value": value}
    labellable = options.num_atoms.endswith("-labellable")

    def draw(weights: np.ndarray, what: str) -> tuple[np.ndarray, dict[str, float]]:
        weights = weights.copy()
        if labellable:
            weights[options.max_label_atoms + 1 :] = 0.0
        weights[0] = 0.0
        if weights.sum() <= 0:
            limit = f"of at most {options.max_label_atoms} sites " if labellable else ""
            raise ParameterError(f"the model's training distribution has no {what} cell {limit}(yield_options."
                                 f"num_atoms {options.num_atoms}); set num_atoms to another mode or an "
                                 "integer")  # fmt: skip
        p = weights / weights.sum()
        rng = np.random.default_rng([int(seed), 0xA70])
        shares = {int(k): round(float(v), 4) for k, v in enumerate(p) if v > 0}
        return rng.choice(np.arange(len(p)), size=n, p=p), shares

    def tally(counts: np.ndarray) -> dict[int, int]:
        return {int(k): int(v) for k, v in sorted(Counter(counts.tolist()).items())}

    counts, dist = draw(model.atom_count_weights.double().cpu().numpy(), "training")
    info: dict[str, Any] = {"mode": options.num_atoms, "distribution": dist, "drawn": tally(counts)}
    if not options.num_atoms.startswith("class"):
        return counts, counts, info
    by_class = model.class_element_count_weights[CLASSES.index(TARGET)].double().cpu().numpy().sum(axis=1)
    if by_class.sum() <= 0:
        raise ParameterError(f"yield_options.num_atoms {options.num_atoms}: the model has no {TARGET} training "
                             "crystal in its per-class histograms (none in its training labels, or a file written "
                             "before td-models kept them); use train-labellable")  # fmt: skip
    conditioned, cond_dist = draw(by_class, TARGET)
    info.update(distribution_conditioned=cond_dist, drawn_conditioned=tally(conditioned))
    return conditioned, counts, info


def sample_arm(
    model: Any,
    arm: str,
    counts: np.ndarray,
    generate: GenerateOptions,
    point: tuple[float | None, float] = (None, 0.0),
    class_counts: bool = False,
):
    """Generate one arm with the generate node's sampler; ``(samples with the model's predictions, sampling
    options)``. ``point``: the conditioned arm's ``(guidance_scale, property_guidance)`` (guidance scale None: the
    model's ``physics_config`` one). The physics guidance is the model's (0.01 x its ``constraint_weight``).
    ``class_counts``: the conditioned arm's element counts from the ``TARGET`` training crystals (the sampler's
    ``class_counts``)."""
    if arm == "conditioned":
        generate = dataclasses.replace(generate, class_counts=class_counts)
        w, p = point
        w = w if w is not None else model.config.physics_config.guidance_scale
        condition, guidance = {"topo_class": TARGET}, {"guidance_scale": float(w), "property_guidance": float(p)}
        seed = generate.seed
    else:  # no condition: the learned null, guidance off
        condition, guidance, seed = {}, {}, generate.seed + 1
    samples = sample_crystals(model, generate, condition=condition, guidance=guidance, num_atoms=counts, seed=seed)
    info = {"steps": generate.sampler_steps(model), "batch_size": generate.batch_size,
            "corrector_steps": generate.corrector_steps, "element_counts": generate.element_counts,
            "class_counts": generate.class_counts,
            "charge_balance": generate.charge_balance, "volume_guidance": generate.volume_guidance,
            "volume_tolerance": generate.volume_tolerance, "covalent_guidance": generate.covalent_guidance,
            "covalent_fraction": generate.covalent_fraction, "seed": seed, "topo_class": condition.get("topo_class"),
            "guidance_scale": guidance.get("guidance_scale", 1.0),
            "property_guidance": guidance.get("property_guidance", 0.0),
            "physics_guidance": 0.01 * model.config.physics_config.constraint_weight}  # fmt: skip
    return samples, info


def sample_yield_arms(
    model: Any,
    training_summary: Mapping[str, Any],
    yield_options: Mapping[str, Any],
    generate_options: Mapping[str, Any],
) -> tuple[tuple[list, dict], tuple[list, dict]]:
    """``(conditioned, unconditioned)`` sample files (samples with predictions, metadata): both arms of one run,
    ``generate_options.n_candidates`` crystals each, with the generate node's sampler settings.

    The conditioned file holds every point of the guidance sweep (:meth:`YieldOptions.sweep`), one after the
    other, each from the same seed and atom counts; its ``sweep`` metadata lists each point's ``start``,
    ``stop`` and sampling options."""
    options = YieldOptions.from_dict(yield_options)
    generate = GenerateOptions.from_dict(generate_options)
    if not generate.conditioned:
        raise ParameterError("generate_options.conditioned is false, but the yield benchmark samples both arms "
                             "(conditioned on z2_ti and unconditioned) itself: leave it true")  # fmt: skip
    model = on_device(model, generate.device)
    prepared = training_summary.get("train_data") or {}  # the prepare stage's metadata, through the train node
    timings = {**(prepared.get("timings_seconds") or {}), **(training_summary.get("timings_seconds") or {})}
    started = time.perf_counter()
    if generate.class_counts:
        raise ParameterError("generate_options.class_counts is true, but the yield benchmark sets it per arm from "
                             "yield_options.num_atoms (class-labellable or class: the conditioned arm's sizes and "
                             "element counts from its z2_ti training crystals): leave it false")  # fmt: skip
    cond_counts, counts, num_atoms_info = atom_counts(model, options, generate.n_candidates, generate.seed)
    by_class = str(options.num_atoms).startswith("class")
    conditioned: list[dict] = []
    sweep: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for point in options.sweep():
        samples, info = sample_arm(model, "conditioned", cond_counts, generate, point, class_counts=by_class)
        sweep.append({"start": len(conditioned), "stop": len(conditioned) + len(samples), "sampling": info})
        conditioned += samples
        n_pred = sum(s["predicted"]["topo_class"] == TARGET for s in samples)
        logger.info("conditioned (w=%g, property guidance %g): %d crystals sampled, %d predicted %s",
                    info["guidance_scale"], info["property_guidance"], len(samples), n_pred, TARGET)  # fmt: skip
    timings["sample_conditioned"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    unconditioned, info = sample_arm(model, "unconditioned", counts, generate)
    timings["sample_unconditioned"] = round(time.perf_counter() - t0, 2)
    n_pred = sum(s["predicted"]["topo_class"] == TARGET for s in unconditioned)
    logger.info("unconditioned: %d crystals sampled, %d predicted %s", len(unconditioned), n_pred, TARGET)
    shared = {
        "benchmark": "yield",
        "run_id": uuid.uuid4().hex,
        "num_atoms": num_atoms_info,
        "training": training_record(training_summary),
        "training_labels": prepared.get("training_labels"),
        "n_train": prepared.get("n_train"),
        "model_config": model.config.to_dict(),
        "n_parameters": model.num_parameters(),
        "options": training_summary.get("options") or {},
        "generate_options": dataclasses.asdict(generate),
        "timings_seconds": timings,
        "stage_seconds": {"prepare": prepared.get("seconds"),
                          "train": round((training_summary.get("seconds") or 0.0) + time.perf_counter() - started, 2)},
        "hardware": training_summary.get("hardware") or hardware(generate.device),
        "hardware_prepare": prepared.get("hardware"),
    }  # fmt: skip
    return (
        (conditioned, to_jsonable({**shared, "arm": "conditioned", "sweep": sweep}, strict=False)),
        (unconditioned, to_jsonable({**shared, "arm": "unconditioned", "sampling": info}, strict=False)),
    )


# ---------------------------------------------------------------------------------------------- report
def relabel_arm(
    records: list, rejected: list, options: YieldOptions, arm: str, relaxer: Any = None, timings: dict | None = None
) -> tuple[list, dict[str, Any], dict[str, Any]]:
    """Recomputed class (or why none) of every generated crystal of one arm; ``(rows, counts, judged)``.

    The crystals the labeller can take (structurally valid, at most ``max_label_atoms`` sites, its elements) are
    relaxed first when ``relax`` is on (``relaxer``: a loaded CHGNet to reuse); only those that relaxed are
    labelled. ``judged``: id -> the record that went to the labeller (relaxed where relaxation
    is on). ``timings``: seconds of the relaxation and the labelling are added to its ``relax`` and
    ``label_<arm>``."""
    from pipelines.benchmark.yield_judging import generation_quality, relax_counts, relax_for_judging
    from pipelines.config import LABELLER_ELEMENTS
    from td_data.relax.idealise import idealised
    from td_data.validity import structure_validity

    timings = timings if timings is not None else {}

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
               "predicted_class": rec.labels.get("predicted_class"),
               "predicted_class_probability": rec.labels.get("predicted_class_probability")}  # fmt: skip
        if not ok:
            row.update(status="structurally invalid", detail=why)
        elif rec.num_atoms > options.max_label_atoms:
            row.update(status="too many sites", detail=f"{rec.num_atoms} > max_label_atoms {options.max_label_atoms}")
        elif not set(rec.species) <= allowed:
            row.update(status="unsupported elements", detail=str(sorted(set(rec.species) - allowed)))
        else:
            todo.append(rec)
        rows.append(row)
        by_id[rec.id] = row
    judged = {rec.id: rec for rec in todo}
    t0 = time.perf_counter()
    if options.relax:
        for rid, fact in relax_for_judging(todo, options, relaxer).items():
            by_id[rid].update(relax_outcome=fact["outcome"], relax_energy_per_atom=fact["energy_per_atom"],
                              relax_rmsd=fact["rmsd"], relax_steps=fact["n_steps"])  # fmt: skip
            if fact["record"] is None:
                by_id[rid].update(status=f"relaxation {fact['outcome']}", detail=fact["reason"])
                del judged[rid]
            else:  # back on its symmetric sites: the labeller is hundreds of times slower on the relaxation's noise
                judged[rid] = idealised(fact["record"], options.relax_symprec)
    t1 = time.perf_counter()
    timings["relax"] = round(timings.get("relax", 0.0) + t1 - t0, 2)
    labelled, failed = run_labeller(list(judged.values()), options)
    timings[f"label_{arm}"] = round(timings.get(f"label_{arm}", 0.0) + time.perf_counter() - t1, 2)
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
    n_generated = len(records) + len(rejected)
    summary = arm_summary(rows, n_generated=n_generated)
    t0 = time.perf_counter()
    summary["quality"] = generation_quality(records, n_generated)
    timings["quality"] = round(timings.get("quality", 0.0) + time.perf_counter() - t0, 2)
    summary["relaxation"] = relax_counts(rows, options.relax)
    return rows, summary, {rid: judged[rid] for rid in judged if by_id[rid]["status"] == "labelled"}


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


def _arm_label(arm: str, result: dict[str, Any]) -> str:
    if arm == "conditioned":
        s = result["sampling"][arm]
        p = s.get("property_guidance") or 0.0
        return f"conditioned on {TARGET} (w={s['guidance_scale']:g}" + (f", property guidance {p:g})" if p else ")")
    return "unconditioned"


def _reasons_text(reasons: dict[str, int]) -> str:
    text = ", ".join(f"{k} {v}" for k, v in reasons.items() if v)
    return text or "none"


def tables(result: dict[str, Any]) -> tuple[str, str]:
    """``(markdown, plain text)`` of the yield table, the class table and the training labels."""
    arms, enr = result["arms"], result["enrichment_by_basis"]
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
        train_line = (f"Training labels: unknown; the yield can only be learned if the model's training set had "
                      f"{TARGET} examples.")  # fmt: skip
    elif tl.get("source") == "store":
        cc = ", ".join(f"{c} {tl['class_counts'][c]}" for c in CLASSES)
        train_line = (f"Training labels: {tl['n_records']} crystals of the store {tl['path']}, {tl['n_labelled']} "
                      f"with a class ({cc}), {tl['n_unlabelled']} train without a class. {TARGET} examples by "
                      f"sites: {tl['target_atom_counts'] or 'none'}.")  # fmt: skip
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
    sweep_head, sweep_rows = sweep_table(result)
    markdown = "\n\n".join([
        f"# Conditional generation yield of {TARGET}", train_line, md(head, rows),
        "Class shares of the labelled crystals (recomputed by the structure labeller):", md(cls_head, cls_rows),
        "Guidance sweep (conditioned arm at each point against the same unconditioned arm):",
        md(sweep_head, sweep_rows), "\n".join(f"- {n}" for n in notes),
    ]) + "\n"  # fmt: skip
    text = "\n\n".join([train_line, plain(head, rows), plain(cls_head, cls_rows), plain(sweep_head, sweep_rows),
                         "\n".join(f"* {n}" for n in notes)])  # fmt: skip
    return markdown, text


def sweep_table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """``(header, rows)``: one row per sweep point, the headline one marked."""
    head = [
        "guidance point",
        f"{TARGET} share of labelled [95% CI]",
        "enrichment of labelled [95% CI]",
        "structurally valid",
        "compositionally valid",
        "distinct compositions",
        "mean fingerprint distance",
    ]
    rows = []
    sweep = result["sweep"]
    for row in sweep["points"]:
        q = row["quality"]
        mark = " (headline)" if row["point"] == sweep["headline"] else ""
        fp = q["mean_fingerprint_distance"]
        rows.append([f"w={row['guidance_scale']:g}, property {row['property_guidance']:g}{mark}",
                     format_share(row["share_over_labelled"]), format_enrichment(row["enrichment_over_labelled"]),
                     format_share(q["structural_validity"]), format_share(q["compositional_validity"]),
                     format_share(q["unique_compositions"]), "n/a" if fp is None else f"{fp:.3f}"])  # fmt: skip
    return head, rows


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
    enr = result["enrichment_by_basis"]["over_labelled"]
    if enr["status"] == "both_zero":
        out.append(f"No {TARGET} crystal in either arm: the enrichment cannot be estimated ({enr['note']}).")
    timeouts = sum(result["arms"][arm]["unlabelled_reasons"]["labeller timeout"] for arm in ARMS)
    if timeouts:
        limit = result["labeller"]["label_timeout"]
        out.append(f"{timeouts} generated crystals hit the {limit:g} s labeller timeout (counted as not "
                   "labelled; they stay in the denominators of the shares of generated crystals).")  # fmt: skip
    if tr is not None:
        mc = result["config"]["model_config"]["model_config"]  # the model's whole configuration, its model block
        out.append(f"Training: model hidden_dim {mc['hidden_dim']}, {mc['num_layers']} layers "
                   f"({result['config']['n_parameters'] / 1e6:.2f}M parameters), {tr['epochs_completed']} epochs / "
                   f"{tr['global_step']} steps in {tr['timings_seconds']['train']:.0f} s, stopped by "
                   f"{tr['stopped_by']}, phases {', '.join(tr['phases_reached'])}.")  # fmt: skip
    s = result["sampling"]["conditioned"]
    mode = result["num_atoms"]["mode"]
    drawn = (f"conditioned arm's sizes and element counts from the {TARGET} training crystals, unconditioned arm's "
             "from all" if str(mode).startswith("class") else "same draw for both arms")  # fmt: skip
    out.append(f"Sampling: {s['steps']} reverse steps, atom counts {mode} ({drawn}), elements restricted to those "
               "seen in training, physics guidance "
               f"{s['physics_guidance']:g} in both arms.")  # fmt: skip
    relax = result["relaxation"]
    if relax["enabled"]:
        counts = "; ".join(f"{arm}: {relax[arm]['n_relaxed']} relaxed, {relax[arm]['n_failed']} failed, "
                           f"{relax[arm]['n_exploded']} exploded, {relax[arm]['n_refused']} refused of "
                           f"{relax[arm]['n_attempted']}" for arm in ARMS)  # fmt: skip
        out.append(f"Relaxed with CHGNet (fmax {relax['fmax']:g} eV/A, at most {relax['max_steps']} steps) before "
                   f"labelling; only relaxed crystals are labelled ({counts}).")  # fmt: skip
    else:
        out.append("Not relaxed (yield_options.relax is false): crystals are labelled as sampled.")
    n_points = len(result["sweep"]["points"])
    if n_points > 1:
        out.append(f"Headline point: {result['sweep']['headline_rule']}.")
    dft = result["dft"]
    if dft["skipped"]:
        out.append(f"No DFT: {dft['skipped']}.")
    else:
        out.append(
            f"DFT (GPAW, PBE + spin-orbit) on the top {dft['top_k']} of each arm ({dft['ranking']}): "
            f"{TARGET} confirmed in {dft['confirmed']['conditioned']} of {dft['n_converged']['conditioned']} "
            f"converged conditioned and {dft['confirmed']['unconditioned']} of "
            f"{dft['n_converged']['unconditioned']} unconditioned; {len(dft['quarantined'])} quarantined."
        )
    out.append(
        "Labels are the td-physics structure labeller's (universal tight binding, six-variant ensemble; "
        "docs/labeller_accuracy.md). Intervals: Wilson 95% per share; enrichment: Katz log 95% "
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
    enr = result["enrichment_by_basis"]["over_labelled"]
    fig.suptitle(f"Recomputed class of generated crystals; {TARGET} enrichment (of labelled): "
                 f"{format_enrichment(enr)}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


#: the columns of crystals.csv, one row per generated crystal (``point``: the sweep point of a conditioned one)
ROW_KEYS = ("arm", "point", "guidance_scale", "property_guidance", "id", "formula", "num_atoms", "volume_per_atom",
            "struct_valid", "relax_outcome", "relax_energy_per_atom", "relax_rmsd", "status", "recomputed_class",
            "confidence", "predicted_class", "predicted_class_probability", "dft_class", "detail")  # fmt: skip


def _read_arms(conditioned: tuple[list, dict], unconditioned: tuple[list, dict]) -> dict[str, tuple[list, dict]]:
    """Both sample files, checked to be the two arms of one sampling run."""
    loaded = {"conditioned": conditioned, "unconditioned": unconditioned}
    for arm, (_, meta) in loaded.items():
        if meta.get("benchmark") != "yield" or meta.get("arm") != arm or not ({"sampling", "sweep"} & set(meta)):
            raise ParameterError(f"yield_samples_{arm} does not hold the {arm} arm of yield_train (arm "
                                 f"{meta.get('arm')!r})")  # fmt: skip
    if conditioned[1]["run_id"] != unconditioned[1]["run_id"]:
        raise ParameterError("yield_samples_conditioned and yield_samples_unconditioned come from different "
                             "yield_train runs")  # fmt: skip
    return loaded


def sweep_points(samples: list, meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conditioned file's sweep points ``{"samples", "sampling"}``; a file written before the sweep existed
    (``sampling`` only) is one point."""
    sweep = meta.get("sweep") or [{"start": 0, "stop": len(samples), "sampling": meta["sampling"]}]
    return [{"samples": samples[p["start"] : p["stop"]], "sampling": p["sampling"]} for p in sweep]


def _judge(crystals: list, prefix: str, arm: str, options: YieldOptions, relaxer: Any, timings: dict) -> dict:
    """One set of samples relabelled: ``{"rows", "summary", "judged"}`` (:func:`relabel_arm`)."""
    from td_data.evaluation import samples_to_records

    records, rejected = samples_to_records(crystals, id_prefix=prefix)  # the stored predictions
    rows, summary, judged = relabel_arm(records, rejected, options, arm, relaxer, timings)
    logger.info("%s: %d of %d labelled, %d %s", prefix, summary["n_labelled"], summary["n_generated"],
                summary[f"n_{TARGET}"], TARGET)  # fmt: skip
    return {"rows": rows, "summary": summary, "judged": judged}


def _relaxer(options: YieldOptions) -> Any:
    """A loaded CHGNet when ``relax`` is on (None otherwise); a missing extra is a :class:`ParameterError`."""
    if not options.relax:
        return None
    try:
        from td_data.relax import Relaxer

        return Relaxer(threads=1)
    except ImportError as err:
        raise ParameterError(f"yield_options.relax is true but CHGNet cannot be loaded ({err}): pip install "
                             "'td-data[relax]', or set yield_options.relax to false") from err  # fmt: skip


def _headline_keys(enr: Mapping[str, Any], sampling: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """The top-level enrichment keys the issue names, and where they come from."""
    e = enrichment_for_json(enr)
    return {
        "enrichment": e["ratio"],
        "enrichment_ci_low": e["ci_low"],
        "enrichment_ci_high": e["ci_high"],
        "enrichment_from": {
            "basis": f"{TARGET} share of labelled crystals, conditioned / unconditioned",
            "status": e["status"],
            "method": e["method"],
            "guidance_scale": sampling["guidance_scale"],
            "property_guidance": sampling.get("property_guidance", 0.0),
            "rule": rule,
        },
    }


def yield_report(
    conditioned: tuple[list, dict], unconditioned: tuple[list, dict], yield_options: Mapping[str, Any]
) -> tuple[dict[str, Any], str, Any, Any, Any]:
    """Relax, relabel and judge both arms: ``(metrics.json content, yield.md text, figure, crystals table, sweep
    figure)``."""
    import pandas as pd

    from pipelines.benchmark.yield_judging import dft_top_k
    from pipelines.benchmark.yield_sweep import sweep_figure, sweep_summary

    options = YieldOptions.from_dict(yield_options)
    started = time.perf_counter()
    loaded = _read_arms(conditioned, unconditioned)
    meta = loaded["conditioned"][1]
    timings: dict[str, float] = dict(meta.get("timings_seconds") or {})
    relaxer = _relaxer(options)
    points = sweep_points(*loaded["conditioned"])
    for k, point in enumerate(points):
        prefix = "conditioned" if len(points) == 1 else f"conditioned-{k}"
        point.update(_judge(point["samples"], prefix, "conditioned", options, relaxer, timings))
        for row in point["rows"]:
            row.update(point=k, guidance_scale=point["sampling"]["guidance_scale"],
                       property_guidance=point["sampling"].get("property_guidance", 0.0))  # fmt: skip
    base = _judge(loaded["unconditioned"][0], "unconditioned", "unconditioned", options, relaxer, timings)
    sweep, enrichments = sweep_summary(points, base["summary"], TARGET)
    best = points[sweep["headline"]]
    c, u = best["summary"], base["summary"]
    enr = {
        "over_labelled": enrichments[sweep["headline"]],
        "over_generated": enrichment(c[f"n_{TARGET}"], c["n_generated"], u[f"n_{TARGET}"], u["n_generated"]),
    }
    t0 = time.perf_counter()
    dft = dft_top_k({"conditioned": best["rows"], "unconditioned": base["rows"]},
                    {**best["judged"], **base["judged"]}, options, TARGET)  # fmt: skip
    timings["dft"] = round(time.perf_counter() - t0, 2)
    dft_class = {r["id"]: r.get("topo_class") if r.get("converged") else "not converged" for r in dft["results"]}
    all_rows = [row for point in points for row in point["rows"]] + base["rows"]
    for row in all_rows:
        row["dft_class"] = dft_class.get(row["id"], "")
    training_options = meta.get("options") or {}
    result: dict[str, Any] = {
        "benchmark": f"conditional generation yield of {TARGET} (recomputed by the td-physics structure labeller)",
        "target_class": TARGET,
        **_headline_keys(enr["over_labelled"], best["sampling"], sweep["headline_rule"]),
        "dft_confirmed_conditioned": dft["confirmed"]["conditioned"],
        "dft_confirmed_unconditioned": dft["confirmed"]["unconditioned"],
        "arms": {"conditioned": c, "unconditioned": u},
        "enrichment_by_basis": enr,
        "sweep": sweep,
        "dft": dft,
        "relaxation": {
            "enabled": options.relax,
            "fmax": options.relax_fmax,
            "max_steps": options.relax_max_steps,
            "conditioned": c["relaxation"],
            "unconditioned": u["relaxation"],
        },  # fmt: skip
        "training_labels": meta.get("training_labels"),
        "training": meta.get("training"),
        "sampling": {"conditioned": best["sampling"], "unconditioned": loaded["unconditioned"][1]["sampling"]},
        "num_atoms": meta["num_atoms"],
        "labeller": {
            "options": {"spin_orbit": True, "gap_mesh": options.gap_mesh, "workers": options.workers},
            "max_label_atoms": options.max_label_atoms,
            "label_timeout": options.label_timeout,
        },
        "config": {
            "train_options": training_options,
            **dataclasses.asdict(options),
            "n_train": meta.get("n_train"),
            "model_config": meta["model_config"],
            "n_parameters": meta["n_parameters"],
        },  # fmt: skip
        "published_reference": PUBLISHED_NOTE,
    }
    result["notes"] = notes(result)
    t0 = time.perf_counter()
    fig, sweep_fig = figure(result), sweep_figure(sweep, TARGET)
    timings["figure"] = round(time.perf_counter() - t0, 2)
    stages = {**(meta.get("stage_seconds") or {}), "evaluate": round(time.perf_counter() - started, 2)}
    timings["total"] = round(sum(v or 0.0 for v in stages.values()), 2)
    result["timings_seconds"] = timings
    result["stage_seconds"] = stages
    result["hardware"] = meta.get("hardware")  # where the model trained and sampled
    result["hardware_prepare"] = meta.get("hardware_prepare")
    result["hardware_label"] = hardware("cpu")  # this stage's: the labeller runs on the CPU
    markdown, text = tables(result)
    logger.info("%s", text)
    result["enrichment_by_basis"] = {k: enrichment_for_json(v) for k, v in enr.items()}
    crystals = pd.DataFrame([{k: r.get(k, "") for k in ROW_KEYS} for r in all_rows], columns=list(ROW_KEYS))
    return to_jsonable(result, strict=False), markdown, fig, crystals, sweep_fig
