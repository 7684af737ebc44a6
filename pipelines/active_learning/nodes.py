"""Active learning: rounds of generate, relax, label, select and fine-tune, resumable after a crash.

Round ``r`` (1-based) runs the project's own nodes in order, each step a resumable unit of
:class:`~pipelines.active_learning.state.RoundState` (``active_learning_options.work_dir``):

1. ``generate``: ``n_candidates`` crystals for the target class and band-gap range (``target_class`` and
   ``band_gap_range``, by default ``physics_config``'s) from the current model (the ``generate`` pipeline's
   node, seed ``seed + r``); ids ``alRR-cand-NNNN``;
2. ``relax``: CHGNet relaxation and the stability filter (the ``relax`` pipeline's node);
3. ``label``: the TB ensemble on the candidates that passed (the ``label`` pipeline's node, ``label_options``);
4. ``verify``: DFT on the top ``verify_options.top_n`` labelled candidates (the ``evaluate`` pipeline's
   selection and runner) when ``dft`` is true and ``td-physics[dft]`` is installed; a converged DFT class
   replaces the TB one. Otherwise the summary says why it was skipped;
5. ``acquire``: the acquisition rule (:mod:`~pipelines.active_learning.acquisition`) over the labelled,
   stable candidates, with the current model's class head and MC-dropout spread;
6. ``add``: the picks, each with ``al_round``, ``al_label_source`` (``tb`` or ``dft``), ``al_pick`` (``score``
   or ``random``) and ``al_score`` in its labels, become the round's additions;
7. ``train``: the model fine-tuned from the current one (the ``train`` pipeline's node, ``fine_tune_epochs``
   epochs at ``fine_tune_learning_rate`` with the physics heads on) on the training crystals plus every
   round's additions so far.

The training store is never appended to: it is the training split followed by the additions of rounds
``1..r``, each round's additions one file, so a step that reruns after a crash overwrites its own output and a
record is never added twice or lost. The yield of a round is the share of its labelled candidates (stable ones
with a TB label, or a DFT one) of the target class, with a Wilson interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipelines._options import OptionsBlock, is_int, is_number
from pipelines.active_learning.acquisition import (
    TERMS,
    AcquisitionOptions,
    acquisition_scores,
    acquisition_terms,
    select,
)
from pipelines.active_learning.state import RoundState
from pipelines.evaluate.nodes import verify_candidates
from pipelines.exceptions import ParameterError, RoundDataError
from pipelines.generate.nodes import GenerateOptions, generate_candidates
from pipelines.label.nodes import label_crystals, records_to_label
from pipelines.relax.nodes import relax_candidates
from pipelines.train.nodes import train_model
from td_data import CrystalRecord
from td_physics.classes import TOPO_CLASSES
from td_physics.files import write_text_atomic

__all__ = ["ActiveLearningOptions", "STEPS", "active_learning_plots", "run_active_learning"]

logger = logging.getLogger(__name__)

#: The steps of a round, in order (the names in the round state and in ``stop_after``).
STEPS = ("generate", "relax", "label", "verify", "acquire", "add", "train")
#: The files of a round's steps in ``work_dir/round_RR/``.
_FILES = {
    "generate": "generated.h5",
    "relax": "relaxed.h5",
    "label": "labelled.h5",
    "verify": "verified.h5",
    "acquire": "acquisition.json",
    "add": "added.h5",
    "train": "model.pt",
}
#: The relax step's store of the crystals the label step labels, and the folder of a SLURM array's labelled shards.
TO_LABEL = "to_label.h5"
LABEL_SHARDS = "label_shards"
#: ``labels["label_source"]`` of a class that DFT gave.
DFT_LABEL_SOURCE = "td-physics DFT (PBE + spin-orbit)"


@dataclass(frozen=True)
class ActiveLearningOptions(OptionsBlock):
    """The ``active_learning_options`` block of ``parameters_active_learning.yml``."""

    block: ClassVar[str] = "active_learning_options"

    rounds: int = 2  # rounds to run (a finished run given more rounds goes on from its last one)
    work_dir: str = "data/06_models/active_learning"  # round state and step outputs; a rerun resumes from here
    resume: bool = True  # resume the same run from its state (False: always start afresh)
    stop_after: str | None = None  # a step name: the last round stops after it (SLURM chains); null runs it all
    target_class: str | None = None  # the class asked for; null: physics_config.topological_class
    band_gap_range: list[float] | None = None  # eV; null: physics_config.band_gap_range
    n_candidates: int = 32  # crystals sampled per round
    sampling_steps: int | None = None  # reverse steps; null: generate_options.steps
    seed: int = 0  # round r samples with seed + r and draws its random picks with (seed, r)
    n_add: int = 8  # crystals added to the training store per round (fewer when fewer are eligible)
    dft: bool = False  # DFT on verify_options.top_n labelled candidates (needs td-physics[dft])
    fine_tune_epochs: int = 5  # epochs of fine-tuning per round
    fine_tune_learning_rate: float = 1.0e-4  # constant, with the property heads and physics penalties on
    acquisition: Any = None  # AcquisitionOptions; a mapping from YAML, None: every default

    def __post_init__(self) -> None:
        b = self.block
        if not isinstance(self.acquisition, AcquisitionOptions):
            if self.acquisition is not None and not isinstance(self.acquisition, Mapping):
                raise ParameterError(f"{b}.acquisition must be a mapping, got {self.acquisition!r}")
            object.__setattr__(self, "acquisition", AcquisitionOptions.from_dict(self.acquisition))
        for name, low in (("rounds", 1), ("n_candidates", 1), ("n_add", 1), ("fine_tune_epochs", 1)):
            value = getattr(self, name)
            if not is_int(value) or value < low:
                raise ParameterError(f"{b}.{name} must be an integer >= {low}, got {value!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ParameterError(f"{b}.seed must be an integer >= 0, got {self.seed!r}")
        steps = self.sampling_steps
        if steps is not None and (not is_int(steps) or steps < 1):
            raise ParameterError(f"{b}.sampling_steps must be an integer >= 1 or null, got {steps!r}")
        for name in ("resume", "dft"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{b}.{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.work_dir, str) or not self.work_dir.strip():
            raise ParameterError(f"{b}.work_dir must be a folder path, got {self.work_dir!r}")
        if self.stop_after is not None and self.stop_after not in STEPS:
            raise ParameterError(f"{b}.stop_after must be one of {STEPS} or null, got {self.stop_after!r}")
        if self.target_class is not None and not isinstance(self.target_class, str):
            raise ParameterError(f"{b}.target_class must be a class name or null, got {self.target_class!r}")
        gaps = self.band_gap_range
        if gaps is not None:
            if not (isinstance(gaps, (list, tuple)) and len(gaps) == 2 and all(is_number(g) for g in gaps)
                    and 0 <= gaps[0] <= gaps[1]):  # fmt: skip
                raise ParameterError(f"{b}.band_gap_range must be [low, high] eV with 0 <= low <= high or null, "
                                     f"got {gaps!r}")  # fmt: skip
            object.__setattr__(self, "band_gap_range", [float(g) for g in gaps])
        lr = self.fine_tune_learning_rate
        if not is_number(lr) or not (lr > 0 and math.isfinite(lr)):
            raise ParameterError(f"{b}.fine_tune_learning_rate must be a number > 0, got {lr!r}")

    def round_physics(self, physics_config: Mapping[str, Any]) -> dict[str, Any]:
        """``physics_config`` with this block's target class and band-gap range where they are set."""
        out = dict(physics_config)
        if self.target_class is not None:
            out["topological_class"] = self.target_class
        if self.band_gap_range is not None:
            out["band_gap_range"] = list(self.band_gap_range)
        return out

    def fine_tune_config(self, training_config: Mapping[str, Any]) -> dict[str, Any]:
        """``training_config`` for one round's fine-tuning: ``fine_tune_epochs`` epochs, one phase at
        ``fine_tune_learning_rate`` with physics (the property heads) on, no warm-up."""
        phase = {"name": "fine_tuning", "start_epoch": 1, "learning_rate": self.fine_tune_learning_rate,
                 "physics": True}  # fmt: skip
        return {**dict(training_config), "max_epochs": self.fine_tune_epochs, "warmup_epochs": 0,
                "learning_rate": self.fine_tune_learning_rate, "scheduler": "phases", "phases": [phase]}  # fmt: skip


# ------------------------------------------------------------------------------------------------ files


def _read_store(path: Path) -> list[CrystalRecord]:
    from td_data.store import CrystalStore

    with CrystalStore.open(path) as store:
        return store.read_all()


def _store_step(name: str):
    """``(save, load)`` of a step whose output is a list of records (one HDF5 store, written atomically)."""
    from td_data.store import write_store

    return (lambda records, folder: write_store(folder / _FILES[name], records, overwrite=True),
            lambda folder: _read_store(folder / _FILES[name]))  # fmt: skip


def _save_json(data: Any, folder: Path, name: str) -> None:
    from td_physics.jsonable import to_jsonable

    write_text_atomic(folder / _FILES[name], json.dumps(to_jsonable(data), indent=1) + "\n")


def _load_json(folder: Path, name: str) -> Any:
    return json.loads((folder / _FILES[name]).read_text(encoding="utf-8"))


def _records_digest(records: Sequence[CrystalRecord]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for rec in records:
        digest.update(json.dumps(rec.to_dict(), sort_keys=True, default=str).encode())
    return {"n": len(records), "sha256": digest.hexdigest()}


def _model_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ steps


def _target(physics: Mapping[str, Any]) -> str:
    from td_data.evaluation import requested_class

    return requested_class({"topo_class": physics["topological_class"]})


def _generate(model: Any, round_number: int, physics: dict, generate_options: Mapping, opts: ActiveLearningOptions):
    gen = {**dict(generate_options), "n_candidates": opts.n_candidates, "seed": opts.seed + round_number}
    if opts.sampling_steps is not None:
        gen["steps"] = opts.sampling_steps
    records, summary = generate_candidates(model, physics, gen)
    prefix = f"al{round_number:02d}-"
    out = [r.replace(id=prefix + r.id, source=f"active learning round {round_number}") for r in records]
    summary = {**summary, "n_rejected": len(summary.get("rejected", ())), "seed": gen["seed"]}
    return out, summary


def _stable(rec: CrystalRecord) -> bool:
    return rec.labels.get("passed_stability", True) is not False


def _label(relaxed: Sequence[CrystalRecord], label_options: Mapping, folder: Path) -> tuple[list[CrystalRecord], dict]:
    """Every relaxed candidate, those that passed the stability filter labelled by the TB ensemble: here, or by a
    SLURM labelling array whose shards are in ``folder/label_shards`` (:mod:`pipelines.active_learning.slurm`)."""
    stable = [r for r in relaxed if _stable(r)]
    shards = folder / LABEL_SHARDS
    if list(shards.glob("shard_*.json")):
        labelled, summary = _merge_shards(stable, records_to_label(stable, label_options), shards)
    else:
        labelled, summary = label_crystals(stable, label_options)
    by_id = {r.id: r for r in labelled}
    return [by_id.get(r.id, r) for r in relaxed], {**summary, "n_held_back_by_stability": len(relaxed) - len(stable)}


def _merge_shards(stable: list[CrystalRecord], to_label: list[CrystalRecord], shards: Path):
    """The labels a SLURM array wrote (``python -m td_data.label_shard``) for ``to_label``, as :func:`label_crystals`
    gives them; an array that did not label every record of ``to_label`` is an error."""
    from td_data.label_shard import merge_label_shards

    notes = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(shards.glob("shard_*.json"))]
    n_shards = notes[0]["num_shards"]
    n_records = sum(n["records"] for n in notes)
    if len(notes) != n_shards or n_records != len(to_label):
        raise RoundDataError(f"the labelling array in {shards} must cover the {len(to_label)} records to label in "
                         f"{n_shards} shards, got {len(notes)} shards of {n_records} records")  # fmt: skip
    merged = merge_label_shards(shards, shards / "merged.h5", num_shards=n_shards, overwrite=True)
    labelled = {r.id: r for r in _read_store(merged)}
    out = [labelled.get(r.id, r) for r in stable]
    failures = [{"source": q["source"], "reason": q["reason"]} for n in notes for q in n["quarantined"]]
    summary = {"n_records": len(stable), "n_attempted": len(to_label), "n_labelled": len(labelled),
               "n_failed": len(failures), "failures": failures, "labelled_by": f"a SLURM array of {n_shards} shards",
               "class_counts": _counts(r.labels.get("topo_class", "unlabelled") for r in out)}  # fmt: skip
    return out, summary


def _verify(labelled: Sequence[CrystalRecord], verify_options: Mapping, opts: ActiveLearningOptions):
    """DFT on the top labelled candidates (the evaluate pipeline's selection and runner), or why not."""
    if not opts.dft:
        return list(labelled), {"dft": "skipped", "reason": "active_learning_options.dft is false", "n_verified": 0}
    # the evaluate pipeline ranks by the relabelled class and confidence: here they are the TB labels
    view = [r.with_labels(recomputed_class=r.labels["topo_class"], recomputed_confidence=r.labels.get("confidence"))
            for r in labelled if "topo_class" in r.labels]  # fmt: skip
    results, _, summary = verify_candidates(view, {**dict(verify_options), "enabled": True})
    by_id = {}
    for res in results:
        if res.get("converged") and res.get("topo_class") in TOPO_CLASSES:
            by_id[res["id"]] = res
    out = []
    for rec in labelled:
        res = by_id.get(rec.id)
        if res is not None:
            rec = rec.with_labels(topo_class=res["topo_class"], tb_class=rec.labels["topo_class"],
                                  label_source=DFT_LABEL_SOURCE, dft_z2_indices=res.get("z2_indices"))  # fmt: skip
        out.append(rec)
    computed = summary.get("available") and summary.get("n_verified", 0) > 0
    note = {"dft": "computed" if computed else "skipped", "reason": summary.get("reason", ""),
            "n_verified": summary.get("n_verified", 0), "n_dft_labels": len(by_id),
            "results": [{k: r.get(k) for k in ("id", "tb_class", "topo_class", "converged", "reason")}
                        for r in results]}  # fmt: skip
    if not computed:
        logger.warning("active learning: DFT skipped: %s", note["reason"])
    return out, note


def _label_source(rec: CrystalRecord) -> str:
    return "dft" if rec.labels.get("label_source") == DFT_LABEL_SOURCE else "tb"


def _acquire(
    model: Any, verified: Sequence[CrystalRecord], round_number: int, opts: ActiveLearningOptions
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores of the eligible candidates (labelled, stable, within the model's ``max_atoms``) and the picks."""
    acq = opts.acquisition
    max_atoms = model.config.model_config.max_atoms
    eligible = [r for r in verified if "topo_class" in r.labels and _stable(r) and r.num_atoms <= max_atoms]
    rows: list[dict[str, Any]] = []
    if eligible:
        crystals = [{"lattice": r.lattice, "frac_coords": r.frac_coords, "atomic_numbers": r.atomic_numbers}
                    for r in eligible]  # fmt: skip
        probs = model.predict_properties(crystals).topo_probabilities  # (n, classes)
        index = [TOPO_CLASSES.index(r.labels["topo_class"]) for r in eligible]
        p_label = probs[np.arange(len(eligible)), index]
        spread = np.zeros(len(eligible))
        if acq.spread > 0:
            spread = _mc_spread(model, crystals, acq.mc_samples, (opts.seed, round_number))
        confidence = [1.0 if _label_source(r) == "dft" else float(r.labels.get("confidence") or 0.0) for r in eligible]
        terms = acquisition_terms(confidence, p_label, spread, acq.spread_scale)
        scores = acquisition_scores(terms, acq)
        by_score, at_random = select([r.id for r in eligible], scores, opts.n_add, acq.exploration_share,
                                     (opts.seed, round_number))  # fmt: skip
        pick = {i: "score" for i in by_score} | {i: "random" for i in at_random}
        for i, rec in enumerate(eligible):
            rows.append({"id": rec.id, "topo_class": rec.labels["topo_class"], "label_source": _label_source(rec),
                         "class_probability": float(p_label[i]), "spread_ev": float(spread[i]),
                         **{t: float(terms[i, j]) for j, t in enumerate(TERMS)}, "score": float(scores[i]),
                         "pick": pick.get(i, "")})  # fmt: skip
    picked = [r for r in rows if r["pick"]]
    summary = {"n_eligible": len(eligible), "n_picked": len(picked),
               "n_by_score": sum(r["pick"] == "score" for r in rows),
               "n_at_random": sum(r["pick"] == "random" for r in rows),
               "rule": acq.rule, "weights": dict(zip(TERMS, acq.weights.tolist(), strict=True)),
               "exploration_share": acq.exploration_share}  # fmt: skip
    return {"candidates": rows, **summary}, summary


def _mc_spread(model: Any, crystals: list[dict], passes: int, seed: tuple[int, int]) -> np.ndarray:
    """Standard deviation (eV) of the band-gap head over ``passes`` MC-dropout passes, seeded."""
    import torch

    if not model.config.model_config.dropout > 0:
        raise ParameterError(
            "active_learning_options.acquisition.spread > 0 needs MC dropout, which needs model_config.dropout > 0 "
            f"in the model being fine-tuned, got dropout {model.config.model_config.dropout!r}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        gaps = np.stack([model.predict_properties(crystals, dropout=True).band_gap for _ in range(passes)])
    return gaps.std(axis=0)  # (n,)


def _add(verified: Sequence[CrystalRecord], acquisition: Mapping[str, Any], round_number: int):
    rows = {r["id"]: r for r in acquisition["candidates"] if r["pick"]}
    added = [rec.with_labels(al_round=round_number, al_label_source=_label_source(rec),
                             al_pick=rows[rec.id]["pick"], al_score=rows[rec.id]["score"])
             for rec in verified if rec.id in rows]  # fmt: skip
    summary = {
        "n_added": len(added),
        "class_counts": _counts(r.labels["topo_class"] for r in added),
        "label_sources": _counts(r.labels["al_label_source"] for r in added),
        "ids": [r.id for r in added],
    }
    return added, summary


def _counts(values) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _training_store(train: Sequence[CrystalRecord], additions: Sequence[Sequence[CrystalRecord]]):
    records = list(train) + [rec for added in additions for rec in added]
    seen = Counter(r.id for r in records)
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        raise RoundDataError(f"a record id may enter the training store once, got {twice[:5]} more than once")
    return records


# ------------------------------------------------------------------------------------------------ node


def run_active_learning(
    model: Any,
    train_crystals: Sequence[CrystalRecord],
    val_crystals: Sequence[CrystalRecord],
    model_config: Mapping[str, Any],
    physics_config: Mapping[str, Any],
    training_config: Mapping[str, Any],
    train_options: Mapping[str, Any],
    generate_options: Mapping[str, Any],
    relax_options: Mapping[str, Any],
    label_options: Mapping[str, Any],
    verify_options: Mapping[str, Any],
    active_learning_options: Mapping[str, Any],
) -> tuple[Any, list[CrystalRecord], dict[str, list[CrystalRecord]], dict[str, Any]]:
    """``(fine-tuned model, training store, {"round_RR": additions}, report)`` after ``rounds`` rounds.

    The report has one entry per round under ``rounds``: ``round``, ``n_generated``, ``n_added``, ``yield``
    (``count``, ``n``, ``share``, ``ci_low``, ``ci_high``: the target class among the labelled candidates,
    Wilson 95%) and the steps' summaries. With ``stop_after`` the last round stops after that step and the
    model and store are those of the rounds completed before it.
    """
    opts = ActiveLearningOptions.from_dict(active_learning_options)
    if not GenerateOptions.from_dict(generate_options).conditioned:
        raise ParameterError(
            "active learning generates for its target class (active_learning_options.target_class, else "
            "physics_config's); generate_options.conditioned: false would sample without it. Set it to true for "
            "kedro run --pipeline=active_learning"
        )
    physics = opts.round_physics(physics_config)
    target = _target(physics)
    params = {"model_config": model_config, "physics_config": physics, "training_config": training_config,
              "train_options": train_options, "generate_options": generate_options, "relax_options": relax_options,
              "label_options": label_options, "verify_options": verify_options,
              "active_learning_options": {k: v for k, v in dict(active_learning_options).items()
                                          if k not in ("rounds", "work_dir", "resume", "stop_after")}}  # fmt: skip
    fingerprint = {"parameters": params, "model": _model_digest(model), "train": _records_digest(train_crystals),
                   "val": _records_digest(val_crystals)}  # fmt: skip
    state = RoundState(opts.work_dir, fingerprint, opts.resume)
    run = _Run(state, opts, list(train_crystals), list(val_crystals), physics, model_config,
               opts.fine_tune_config(training_config), train_options, generate_options, relax_options, label_options,
               verify_options)  # fmt: skip
    current, additions, entries = model, [], []
    for r in range(1, opts.rounds + 1):
        last = r == opts.rounds
        steps = STEPS[: STEPS.index(opts.stop_after) + 1] if (last and opts.stop_after) else STEPS
        out = _round(run, r, steps, current, additions)
        if "train" not in out:
            logger.info("active learning: stopped after %s of round %d (stop_after)", steps[-1], r)
            break
        current = out["train"]
        additions.append(out["add"])
        entries.append(_round_entry(r, target, physics, state))
    store = _training_store(train_crystals, additions)
    report = {
        "target_class": target,
        "band_gap_range": list(physics["band_gap_range"]),
        "rounds_requested": opts.rounds,
        "rounds_completed": len(entries),
        "n_train_start": len(train_crystals),
        "n_train_end": len(store),
        "yield_definition": "share of each round's labelled candidates (passed the stability filter, labelled by "
        "the TB ensemble, or by DFT where verified) whose class is the target class; Wilson 95% interval",
        "rounds": entries,
    }
    return current, store, {f"round_{i:02d}": a for i, a in enumerate(additions, start=1)}, report


@dataclass(frozen=True)
class _Run:
    """What every round of one run reads: its state, options, data and the other pipelines' parameter blocks."""

    state: RoundState
    opts: ActiveLearningOptions
    train: list[CrystalRecord]
    val: list[CrystalRecord]
    physics: dict[str, Any]
    model_config: Mapping[str, Any]
    tune: dict[str, Any]  # training_config of a round's fine-tuning
    train_options: Mapping[str, Any]
    generate_options: Mapping[str, Any]
    relax_options: Mapping[str, Any]
    label_options: Mapping[str, Any]
    verify_options: Mapping[str, Any]


def _round(run: _Run, r: int, steps: Sequence[str], model: Any, additions: list) -> dict[str, Any]:
    """The outputs of round ``r``'s ``steps`` from ``model``, each run (or loaded) through the round state."""
    from td_models import TopologicalDiffusionModel

    out: dict[str, Any] = {}
    compute = {
        "generate": lambda: _generate(model, r, run.physics, run.generate_options, run.opts),
        "relax": lambda: _relax(out["generate"], run),
        "label": lambda: _label(out["relax"], run.label_options, run.state.round_dir(r)),
        "verify": lambda: _verify(out["label"], run.verify_options, run.opts),
        "acquire": lambda: _acquire(model, out["verify"], r, run.opts),
        "add": lambda: _add(out["verify"], out["acquire"], r),
        "train": lambda: _fine_tune(model, _training_store(run.train, [*additions, out["add"]]), r, run),
    }
    files: dict[str, tuple[Any, Any]] = {n: _store_step(n) for n in ("generate", "relax", "label", "verify", "add")}
    files["relax"] = (lambda d, f: _save_relaxed(d, f, run.label_options), files["relax"][1])
    files["acquire"] = (lambda d, f: _save_json(d, f, "acquire"), lambda f: _load_json(f, "acquire"))
    files["train"] = (
        lambda m, f: m.save(f / _FILES["train"]),
        lambda f: TopologicalDiffusionModel.load(f / _FILES["train"]),
    )
    for step in steps:
        save, load = files[step]
        out[step], _ = run.state.run_step(r, step, compute[step], save, load)
    return out


def _save_relaxed(records: list[CrystalRecord], folder: Path, label_options: Mapping[str, Any]) -> None:
    """The relaxed candidates, and the store of those the label step labels (a SLURM array's input)."""
    from td_data.store import write_store

    write_store(folder / TO_LABEL, records_to_label([r for r in records if _stable(r)], label_options), overwrite=True)
    write_store(folder / _FILES["relax"], records, overwrite=True)


def _relax(generated: Sequence[CrystalRecord], run: _Run) -> tuple[list[CrystalRecord], dict[str, Any]]:
    records, _, summary = relax_candidates(generated, run.train, run.physics, run.relax_options)
    return records, summary


def _fine_tune(model: Any, records: list[CrystalRecord], r: int, run: _Run) -> tuple[Any, dict[str, Any]]:
    options = {**dict(run.train_options), "run_dir": str(run.state.round_dir(r) / "training")}
    tuned, _, summary = train_model(records, run.val, run.model_config, run.physics, run.tune, options,
                                    initial_model=model)  # fmt: skip
    keep = ("epochs_completed", "global_step", "last_losses", "n_train", "n_train_labelled", "n_val")
    return tuned, {k: summary[k] for k in keep}


def _round_entry(r: int, target: str, physics: Mapping[str, Any], state: RoundState) -> dict[str, Any]:
    """The report's entry of a completed round, from the summaries in the round state."""
    from td_data.evaluation import share

    s = state.summaries(r)
    verified = _read_store(state.round_dir(r) / _FILES["verify"])
    labelled = [rec for rec in verified if "topo_class" in rec.labels and _stable(rec)]
    classes = Counter(rec.labels["topo_class"] for rec in labelled)
    acquisition = _load_json(state.round_dir(r), "acquire")
    return {
        "round": r,
        "target_class": target,
        "n_requested": s["generate"]["n_requested"],
        "n_generated": s["generate"]["n_records"],
        "n_relaxed": s["relax"]["n_relaxed"],
        "n_passed_stability": s["relax"]["n_passed_stability"],
        "n_labelled": len(labelled),
        "n_added": s["add"]["n_added"],
        "yield": share(classes.get(target, 0), len(labelled)),
        "class_counts": {c: classes.get(c, 0) for c in TOPO_CLASSES},
        "added_class_counts": s["add"]["class_counts"],
        "added_label_sources": s["add"]["label_sources"],
        "dft": s["verify"],
        "acquisition": {
            **s["acquire"],
            "scores": [row["score"] for row in acquisition["candidates"]],
            "picked": [row["pick"] for row in acquisition["candidates"]],
        },
        "relax_note": s["relax"].get("note", ""),
        "label_failures": len(s["label"].get("failures", ())),
        "training": s["train"],
    }


# ------------------------------------------------------------------------------------------------ plots


def active_learning_plots(report: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """Three figures: the target-class yield per round (Wilson 95% bars), the acquisition scores per round (the
    picks marked) and the class distribution of each round's labelled candidates."""
    import matplotlib.pyplot as plt

    rounds = list(report.get("rounds", []))
    xs = [e["round"] for e in rounds]
    fig_yield, ax = plt.subplots(figsize=(5, 3.5))
    shares = [e["yield"]["share"] for e in rounds]
    ok = [i for i, s in enumerate(shares) if s is not None]
    if ok:
        ys = np.array([shares[i] for i in ok])
        low = ys - np.array([rounds[i]["yield"]["ci_low"] for i in ok])
        high = np.array([rounds[i]["yield"]["ci_high"] for i in ok]) - ys
        ax.errorbar([xs[i] for i in ok], ys, yerr=[low, high], marker="o", capsize=4)
    ax.set(xlabel="round", ylabel=f"{report.get('target_class')} yield", ylim=(-0.02, 1.02),
           title="target-class yield of labelled candidates")  # fmt: skip
    ax.set_xticks(xs)
    fig_yield.tight_layout()

    fig_scores, ax = plt.subplots(figsize=(5, 3.5))
    for e in rounds:
        scores, picked = e["acquisition"]["scores"], e["acquisition"]["picked"]
        for kind, marker, color in (("", ".", "0.5"), ("score", "o", "C1"), ("random", "s", "C2")):
            ys = [s for s, p in zip(scores, picked, strict=True) if p == kind]
            label = {"": "not picked", "score": "picked by score", "random": "picked at random"}[kind]
            ax.scatter([e["round"]] * len(ys), ys, marker=marker, color=color, alpha=0.7,
                       label=label if e is rounds[0] else None)  # fmt: skip
    ax.set(xlabel="round", ylabel="acquisition score", ylim=(-0.02, 1.02), title="acquisition scores")
    ax.set_xticks(xs)
    if rounds:
        ax.legend(fontsize=7)
    fig_scores.tight_layout()

    fig_classes, ax = plt.subplots(figsize=(5, 3.5))
    bottom = np.zeros(len(rounds))
    for cls in TOPO_CLASSES:
        counts = np.array([e["class_counts"].get(cls, 0) for e in rounds], dtype=float)
        ax.bar(xs, counts, bottom=bottom, label=cls)
        bottom += counts
    ax.set(xlabel="round", ylabel="labelled candidates", title="class distribution per round")
    ax.set_xticks(xs)
    ax.legend(fontsize=7)
    fig_classes.tight_layout()
    return fig_yield, fig_scores, fig_classes
