"""Train: the diffusion model on the training split, with the validation split for model selection.

The trainer keeps its rotating checkpoints and logs in ``train_options.run_dir`` (``data/06_models/training``),
a resume cache that no later pipeline reads; the node returns the trained model (EMA weights) and the metrics
rows from the trainer's result in memory, and what is kept goes through the catalog (``model``,
``training_metrics``, ``training_summary``). Torch's thread count is set for the training only and restored.
A run killed midway resumes from the newest checkpoint there when it is the same run: the folder's
``run.json`` holds a fingerprint of the configuration and of the training and validation data; with any
difference the old files are removed and training starts afresh, and the log says which part differed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pipelines._options import OptionsBlock
from pipelines.exceptions import ParameterError
from td_data import CrystalRecord
from td_physics.files import write_text_atomic

logger = logging.getLogger(__name__)

#: Written in ``run_dir`` before training; a rerun resumes only when its content is the same.
RUN_FILE = "run.json"
#: What the trainer writes in its output folder (removed when a run starts afresh).
_TRAINER_FILES = (
    "checkpoints",
    "metrics.csv",
    "config.json",
    "best_model.pt",
    "final_model.pt",
    "data_order",
    "tensorboard",
)


@dataclass(frozen=True)
class TrainOptions(OptionsBlock):
    """The ``train_options`` block of ``parameters_train.yml``: how to run training, not what to learn."""

    block: ClassVar[str] = "train_options"

    num_threads: int | None = 1  # torch threads while training, restored afterwards (None: leave torch's)
    progress_bar: bool = False  # a tqdm bar per epoch
    run_dir: str = "data/06_models/training"  # the trainer's checkpoints and logs; a rerun resumes from here
    resume: bool = True  # resume the same run from its newest checkpoint (False: always start afresh)
    augmentation: tuple[str, ...] = ()  # td_data.augment.OPERATIONS applied to training crystals, in order
    augmentation_copies: int = 1  # augmented copies added per training crystal (the originals stay)
    augmentation_seed: int = 0  # seed of the augmentation draws
    # wall-clock minutes for this run's training (None: until max_epochs); past it the step in progress finishes, a
    # checkpoint is written in run_dir and the model trained so far (EMA weights) goes on; a rerun resumes there
    budget_minutes: float | None = None

    def __post_init__(self) -> None:
        from td_data.augment import OPERATIONS

        names = self.augmentation
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ParameterError(f"train_options.augmentation must be a list of names, got {names!r}")
        unknown = [n for n in names if n not in OPERATIONS]
        if unknown:
            raise ParameterError(
                f"train_options.augmentation has unknown names {unknown}; allowed: {sorted(OPERATIONS)}"
            )
        object.__setattr__(self, "augmentation", tuple(names))
        copies = self.augmentation_copies
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ParameterError(f"train_options.augmentation_copies must be an integer >= 1, got {copies!r}")
        threads = self.num_threads
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ParameterError(f"train_options.num_threads must be None or an integer >= 1, got {threads!r}")
        budget = self.budget_minutes
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, (int, float)) or not np.isfinite(budget) or budget <= 0
        ):
            raise ParameterError(
                f"train_options.budget_minutes must be null or a number of minutes > 0, got {budget!r}"
            )
        if not isinstance(self.run_dir, str) or not self.run_dir.strip():
            raise ParameterError(f"train_options.run_dir must be a folder path, got {self.run_dir!r}")


def experiment_config(
    model_config: Mapping[str, Any], physics_config: Mapping[str, Any], training_config: Mapping[str, Any]
):
    """The three parameter blocks as a typed, validated :class:`td_models.ExperimentConfig`."""
    from td_models import ExperimentConfig

    return ExperimentConfig.from_dict(
        {
            "model_config": dict(model_config),
            "physics_config": dict(physics_config),
            "training_config": dict(training_config),
        }
    )


def record_to_item(record: CrystalRecord, num_species: int) -> dict[str, Any]:
    """A crystal record as a model item; class, Chern number, band gap and formation energy become conditions."""
    from td_models.batch import item_from_record

    return item_from_record(record, num_species)


def augment_records(records: Sequence[CrystalRecord], options: TrainOptions) -> list[CrystalRecord]:
    """The records followed by ``augmentation_copies`` augmented copies of each (none without ``augmentation``).

    Copy ``c`` of record ``i`` draws from ``default_rng((augmentation_seed, c, i))``: the same options and
    records give the same copies, whatever the order of the calls.
    """
    from td_data.augment import augment

    out = list(records)
    if not options.augmentation:
        return out
    for copy in range(options.augmentation_copies):
        for i, record in enumerate(records):
            rng = np.random.default_rng((options.augmentation_seed, copy, i))
            out.append(augment(record, rng, ops=options.augmentation))
    return out


def _item_digest(items: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 of the items' arrays and labels, in order."""
    digest = hashlib.sha256()
    for item in items:
        for key in sorted(item):
            value = item[key]
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            digest.update(key.encode())
            if isinstance(value, np.ndarray):
                digest.update(f"{value.dtype}{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()


def run_fingerprint(config: Any, train_items: Sequence[Mapping], val_items: Sequence[Mapping]) -> dict[str, Any]:
    """What makes two training runs the same: the resolved configuration and the data, by digest."""
    from td_models import __version__

    return {
        "config": config.to_dict(),
        "train_data": {"n": len(train_items), "sha256": _item_digest(train_items)},
        "val_data": {"n": len(val_items), "sha256": _item_digest(val_items)},
        "td_models_version": __version__,
    }


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    found = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def prepare_run_dir(run_dir: Path, fingerprint: Mapping[str, Any], resume: bool) -> bool:
    """Make ``run_dir`` ready for this run; True when it holds checkpoints of the same run to resume from.

    Another run's files (or any files when ``resume`` is False) are removed, with the reason logged.
    """
    from td_models.training.checkpoint import list_checkpoints

    marker = run_dir / RUN_FILE
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from JSON (tuples become lists)
    has_checkpoints = bool(list_checkpoints(run_dir / "checkpoints"))
    reason = None
    if has_checkpoints:
        if not resume:
            reason = "train_options.resume is false"
        elif not marker.is_file():
            reason = f"{marker} is missing, so the checkpoints cannot be matched to this run"
        else:
            try:
                previous = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                previous, reason = None, f"{marker} is unreadable ({exc})"
            if previous is not None:
                differ = _differences(previous, fingerprint)
                if differ:
                    reason = "the run differs from the checkpointed one in " + ", ".join(differ)
    if reason is not None:
        logger.warning("train: not resuming from the checkpoints in %s: %s; starting afresh", run_dir, reason)
    if reason is not None or not has_checkpoints:
        for name in _TRAINER_FILES:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    write_text_atomic(marker, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    return has_checkpoints and reason is None


def _last_losses(losses: Mapping[str, float], metrics: pd.DataFrame) -> dict[str, float]:
    """The last epoch's mean losses: the trainer's, or from ``metrics.csv`` when this call ran no epoch."""
    if losses:
        return {k: float(v) for k, v in losses.items()}
    from td_models.training.logbook import LOSS_PARTS

    epochs = metrics[metrics["kind"] == "epoch"]
    if epochs.empty:
        return {}
    last = epochs.iloc[-1]
    return {k: float(last[k]) for k in LOSS_PARTS if k in last and pd.notna(last[k])}


def metrics_frame(history: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The trainer's metrics rows as a table, with the columns and types of its ``metrics.csv``."""
    from td_models.training import COLUMNS

    whole = ("epoch", "step", "skipped")
    types = {c: ("int64" if c in whole else "float64") for c in COLUMNS if c not in ("kind", "phase")}
    return pd.DataFrame(list(history), columns=list(COLUMNS)).astype(types)


def train_model(
    train: Sequence[CrystalRecord],
    val: Sequence[CrystalRecord],
    model_config: Mapping[str, Any],
    physics_config: Mapping[str, Any],
    training_config: Mapping[str, Any],
    train_options: Mapping[str, Any],
    initial_model: Any = None,
) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """``(model with EMA weights, metrics table (one row per step/epoch/validation), summary)``.

    ``train_options`` (:class:`TrainOptions`): ``run_dir`` for the trainer's checkpoints and logs (a rerun of
    the same run resumes there), ``augmentation`` applied to the training crystals (never to validation),
    ``num_threads`` (torch threads while training, restored afterwards), ``progress_bar`` and ``budget_minutes``
    (a wall-clock limit: the summary's ``stopped_by`` says whether it or ``max_epochs`` ended the run).
    ``initial_model``: a trained model to fine-tune (its weights and data normalisation, under this
    configuration, whose architecture must match); None trains a new model.
    """
    from td_data.evaluation import BAND_GAP_KEYS, FORMATION_ENERGY_KEYS, first_property
    from td_models import torch_threads
    from td_models.training import Trainer

    config = experiment_config(model_config, physics_config, training_config)
    options = TrainOptions.from_dict(train_options)
    n, max_atoms = config.model_config.num_species, config.model_config.max_atoms
    train_records = augment_records(train, options)
    train_items = [record_to_item(r, n) for r in train_records if r.num_atoms <= max_atoms]
    val_items = [record_to_item(r, n) for r in val if r.num_atoms <= max_atoms]
    if len(train_items) < 2:
        raise ValueError(f"training needs at least 2 crystals of at most max_atoms sites, got {len(train_items)}")
    run_dir = Path(options.run_dir)
    fingerprint = run_fingerprint(config, train_items, val_items)
    start: Any = config
    if initial_model is not None:
        from td_models import TopologicalDiffusionModel

        start = TopologicalDiffusionModel(config)
        start.load_state_dict(initial_model.state_dict())  # a different architecture is refused here
        fingerprint["initial_weights"] = _item_digest([initial_model.state_dict()])
    resume = prepare_run_dir(run_dir, fingerprint, options.resume)
    with torch_threads(options.num_threads):
        trainer = Trainer(
            start,
            train_items,
            val_items or None,
            output_dir=run_dir,
            progress_bar=options.progress_bar,
            tensorboard=False,
            keep_history=True,
            fit_normalisation=initial_model is None,
        )
        if resume:
            checkpoint = trainer.resume("latest")
            logger.info("train: resuming the same run from %s after epoch %d", checkpoint, trainer.epoch)
        result = trainer.fit(max_seconds=None if options.budget_minutes is None else 60.0 * options.budget_minutes)
    metrics = metrics_frame(result.history)
    model = result.model.cpu()
    summary = {
        "epochs_completed": result.epochs_completed,
        "global_step": result.global_step,
        "stopped_by": "budget" if result.time_limited else "max_epochs",
        "budget_minutes": options.budget_minutes,
        "last_losses": _last_losses(result.last_losses, metrics),
        "nonfinite_steps": result.nonfinite_steps,
        "n_train": len(train_items),
        "n_train_augmented": len(train_items) - sum(r.num_atoms <= max_atoms for r in train),
        "augmentation": list(options.augmentation),
        "n_val": len(val_items),
        "n_train_labelled": sum("topo_class" in r.labels for r in train),
        "n_train_with_band_gap": sum(first_property(r.properties, BAND_GAP_KEYS) is not None for r in train),
        "n_train_with_formation_energy": sum(
            first_property(r.properties, FORMATION_ENERGY_KEYS) is not None for r in train
        ),
        "num_parameters": int(model.num_parameters()),
        "config": config.to_dict(),
    }
    logger.info("train: %d epochs, last losses %s", result.epochs_completed, summary["last_losses"])
    return model, metrics, summary
