"""Train: the diffusion model on model items, with the validation items for model selection.

Two nodes. :func:`training_items` (td-data) turns the ``train_crystals`` and ``val_crystals`` records into model
items (the training ones with ``train_options.augmentation``); :func:`train_on_items` (torch, accelerate and
td-models only, so it runs on a GPU node without the materials stack) trains on them. The benchmarks' train
stages are the same node, fed with the items their prepare stage wrote (``pipelines.benchmark``).

The trainer keeps its rotating checkpoints and logs in ``train_options.run_dir`` (``data/06_models/training``),
a resume cache that no later pipeline reads; the node returns the trained model (EMA weights) and the metrics
rows from the trainer's result in memory, and what is kept goes through the catalog (``model``,
``training_metrics``, ``training_summary``). Torch's thread count is set for the training only and restored.
A run killed midway resumes from the newest checkpoint there when it is the same run: the folder's
``run.json`` holds a fingerprint of the configuration and of the training and validation data; with any
difference the old files are removed and training starts afresh, and the log says which part differed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from pipelines._options import OptionsBlock
from pipelines.devices import hardware, require_device
from pipelines.exceptions import ParameterError
from td_physics.files import write_text_atomic

if TYPE_CHECKING:
    from td_data import CrystalRecord

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
    "budget_fit.json",
)
#: ``train_options.device`` values: ``auto`` lets accelerate choose (the first CUDA device when torch sees one).
TRAIN_DEVICES = ("auto", "cpu", "cuda")
#: A training or validation set as the train node takes it: (model items, metadata), the contents of a
#: ``td_models.save_crystals`` file (``pipelines.benchmark.datasets.CrystalFileDataset``).
ItemSet = tuple[list[dict[str, Any]], dict[str, Any]]


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
    # true: before training, time a few steps and lower training_config.max_epochs to the epochs that fit in
    # budget_minutes, so that a schedule over max_epochs (cosine with cosine_period_epochs null) ends with the budget
    fit_epochs_to_budget: bool = False
    device: str = "auto"  # auto (accelerate's choice: CUDA when torch sees it) | cpu | cuda (refused without CUDA)

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
        if not isinstance(self.fit_epochs_to_budget, bool):
            raise ParameterError(
                f"train_options.fit_epochs_to_budget must be true or false, got {self.fit_epochs_to_budget!r}"
            )
        if self.fit_epochs_to_budget and budget is None:
            raise ParameterError(
                "train_options.fit_epochs_to_budget fits the epochs to the wall-clock budget: set budget_minutes"
            )
        if self.device not in TRAIN_DEVICES:
            raise ParameterError(f"train_options.device must be one of {list(TRAIN_DEVICES)}, got {self.device!r}")


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


def _resolved(fingerprint: Any) -> Any:
    """An earlier run's fingerprint with its configuration resolved again by today's td-models, so that an option
    added since (whose default keeps the earlier behaviour) reads as its default instead of as a difference. A
    configuration today's td-models refuses (a removed key, say) is left as it was and differs."""
    if not isinstance(fingerprint, Mapping) or not isinstance(fingerprint.get("config"), Mapping):
        return fingerprint
    from td_models import ExperimentConfig
    from td_models.exceptions import ConfigError

    try:
        config = ExperimentConfig.from_dict(dict(fingerprint["config"])).to_dict()
    except (ConfigError, TypeError, ValueError):
        return fingerprint
    return {**fingerprint, "config": json.loads(json.dumps(config))}


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
                differ = _differences(_resolved(previous), fingerprint)
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


def training_items(
    train: Sequence[CrystalRecord],
    val: Sequence[CrystalRecord],
    model_config: Mapping[str, Any],
    train_options: Mapping[str, Any],
) -> tuple[ItemSet, ItemSet]:
    """``(training items, validation items)``, each with its metadata: the records as model items (class, Chern
    number, band gap and formation energy become conditions), the training ones followed by their
    ``train_options.augmentation`` copies (never the validation ones)."""
    from td_models import ModelConfig

    options = TrainOptions.from_dict(train_options)
    n = ModelConfig.from_dict(dict(model_config)).num_species
    records = augment_records(train, options)
    train_meta = {"source": "train_crystals", "n_records": len(train), "n_augmented": len(records) - len(train),
                  "augmentation": list(options.augmentation)}  # fmt: skip
    val_meta = {"source": "val_crystals", "n_records": len(val)}
    return ([record_to_item(r, n) for r in records], train_meta), ([record_to_item(r, n) for r in val], val_meta)


def _conditions(items: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many items carry a class, a band gap and a formation energy (the conditions the model learns)."""

    def present(value: Any) -> bool:
        return value is not None and not (isinstance(value, float) and np.isnan(value))

    def has_class(value: Any) -> bool:
        return value is not None and (isinstance(value, str) or int(value) >= 0)

    return {
        "n_train_labelled": sum(has_class(it.get("topo_class")) for it in items),
        "n_train_with_band_gap": sum(present(it.get("band_gap")) for it in items),
        "n_train_with_formation_energy": sum(present(it.get("formation_energy")) for it in items),
    }


def _budget_fit(
    run_dir: Path, resume: bool, items: Sequence[Mapping[str, Any]], config: Any, options: TrainOptions, device: str
) -> dict[str, Any]:
    """The epochs that fit in the budget: those of the run being resumed (``budget_fit.json``, so a resumed run
    keeps its schedule), or measured now and written there."""
    from pipelines.train.budget import fit_epochs_to_budget

    path = run_dir / "budget_fit.json"
    if resume and path.is_file():
        fitted = json.loads(path.read_text(encoding="utf-8"))
        logger.info("train: the resumed run's budget fit, %d epochs (%s)", fitted["epochs"], path)
        return fitted
    fitted = fit_epochs_to_budget(items, config, options.budget_minutes, device, config.training_config.seed)
    write_text_atomic(path, json.dumps(fitted, indent=1) + "\n")
    return fitted


def train_on_items(
    train_items: ItemSet,
    model_config: Mapping[str, Any],
    physics_config: Mapping[str, Any],
    training_config: Mapping[str, Any],
    train_options: Mapping[str, Any],
    val_items: ItemSet | None = None,
    initial_model: Any = None,
) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """``(model with EMA weights, metrics table (one row per step/epoch/validation), summary)``.

    ``train_items`` and ``val_items`` (None: no validation) are ``(items, metadata)`` pairs
    (:func:`training_items`, or a benchmark's prepare stage); items with more sites than ``max_atoms`` are left
    out and counted. ``train_options`` (:class:`TrainOptions`): ``run_dir`` for the trainer's checkpoints and
    logs (a rerun of the same run resumes there), ``num_threads`` (torch threads while training, restored
    afterwards), ``progress_bar``, ``budget_minutes`` (a wall-clock limit: the summary's ``stopped_by`` says
    whether it, a preemption or ``max_epochs`` ended the run), ``fit_epochs_to_budget`` and ``device``.
    ``initial_model``: a trained model to fine-tune (its weights and data normalisation, under this
    configuration, whose architecture must match); None trains a new model.

    The summary holds the training figures, the item counts and conditions, the configuration as trained (with
    fitted epochs), the timings, the machine (``hardware``), the options and both item sets' metadata
    (``train_data``, ``val_data``).
    """
    from td_models import torch_threads
    from td_models.exceptions import TDModelsError
    from td_models.training import Trainer

    started = time.perf_counter()
    config = experiment_config(model_config, physics_config, training_config)
    options = TrainOptions.from_dict(train_options)
    require_device(TrainOptions.block, options.device)
    items, train_meta = train_items
    v_items, val_meta = val_items if val_items is not None else ([], {"source": "none"})
    max_atoms = config.model_config.max_atoms
    kept = [it for it in items if len(it["atomic_numbers"]) <= max_atoms]
    v_kept = [it for it in v_items if len(it["atomic_numbers"]) <= max_atoms]
    if len(kept) < 2:
        raise ParameterError(f"training needs at least 2 crystals of at most max_atoms sites, got {len(kept)}")
    run_dir = Path(options.run_dir)
    fingerprint = run_fingerprint(config, kept, v_kept)
    if options.fit_epochs_to_budget:  # the epochs come from the budget: a fixed max_epochs run is another run
        fingerprint["fit_epochs_to_budget"] = True
    if initial_model is not None:
        fingerprint["initial_weights"] = _item_digest([initial_model.state_dict()])
    resume = prepare_run_dir(run_dir, fingerprint, options.resume)
    with torch_threads(options.num_threads):
        import torch

        use_cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
        fitted = None
        if options.fit_epochs_to_budget:
            from pipelines.train.budget import with_epochs

            fitted = _budget_fit(run_dir, resume, kept, config, options, "cuda" if use_cuda else "cpu")
            config = with_epochs(config, fitted["epochs"])
        start: Any = config
        if initial_model is not None:
            from td_models import TopologicalDiffusionModel

            start = TopologicalDiffusionModel(config)
            start.load_state_dict(initial_model.state_dict())  # a different architecture is refused here
        t0 = time.perf_counter()
        try:
            trainer = Trainer(
                start,
                kept,
                v_kept or None,
                output_dir=run_dir,
                cpu=options.device == "cpu",
                progress_bar=options.progress_bar,
                tensorboard=False,
                keep_history=True,
                fit_normalisation=initial_model is None,
            )
        except TDModelsError as err:
            raise ParameterError(f"training on {len(kept)} items failed: {err}") from err
        setup_seconds = time.perf_counter() - t0
        if resume:
            checkpoint = trainer.resume("latest")
            logger.info("train: resuming the same run from %s after epoch %d", checkpoint, trainer.epoch)
        t0 = time.perf_counter()
        result = trainer.fit(max_seconds=None if options.budget_minutes is None else 60.0 * options.budget_minutes)
        fit_seconds = time.perf_counter() - t0
    metrics = metrics_frame(result.history)
    model = result.model.cpu().eval()
    tc = trainer.config.training_config
    device = str(trainer.accelerator.device)
    summary = {
        "epochs_completed": result.epochs_completed,
        "max_epochs": tc.max_epochs,
        "global_step": result.global_step,
        "steps_per_epoch": trainer.steps_per_epoch,
        "stopped_by": "budget" if result.time_limited else "preempted" if result.preempted else "max_epochs",
        "budget_minutes": options.budget_minutes,
        "budget_fit": fitted,
        "last_losses": _last_losses(result.last_losses, metrics),
        "nonfinite_steps": result.nonfinite_steps,
        "phases_reached": list(result.phases),  # of the epochs begun, the one a budget stopped included
        "n_train": len(kept),
        "n_train_too_large": len(items) - len(kept),  # more sites than max_atoms
        "n_train_augmented": int(train_meta.get("n_augmented", 0)),
        "augmentation": list(train_meta.get("augmentation", [])),
        "n_val": len(v_kept),
        **_conditions(kept),
        "num_parameters": int(model.num_parameters()),
        "batch_size": tc.batch_size,
        "mixed_precision": tc.mixed_precision,
        "ema_decay": tc.ema_decay,
        "weights": "EMA" if trainer.ema is not None else "raw (ema_decay 0)",
        "device": device,
        "seconds_per_step": round(fit_seconds / result.global_step, 4) if result.global_step else None,
        "timings_seconds": {"train_setup": round(setup_seconds, 2), "train": round(fit_seconds, 2)},
        "seconds": round(time.perf_counter() - started, 2),
        "hardware": hardware("cuda" if device.startswith("cuda") else "cpu"),
        "options": dataclasses.asdict(options),
        "config": trainer.config.to_dict(),
        "train_data": dict(train_meta),
        "val_data": dict(val_meta),
    }
    logger.info("training: %d epochs, %d steps, stopped by %s, last losses %s", result.epochs_completed,
                result.global_step, summary["stopped_by"], summary["last_losses"])  # fmt: skip
    return model, metrics, summary


#: Keys of the train node's summary that hold the run's setting rather than what the training did.
SETTING_KEYS = ("config", "train_data", "val_data", "hardware", "options")


def training_record(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What the training did (epochs, steps, stop, losses, counts, timings), from the train node's summary:
    everything but :data:`SETTING_KEYS`."""
    return {k: v for k, v in summary.items() if k not in SETTING_KEYS}


def train_model(
    train: Sequence[CrystalRecord],
    val: Sequence[CrystalRecord],
    model_config: Mapping[str, Any],
    physics_config: Mapping[str, Any],
    training_config: Mapping[str, Any],
    train_options: Mapping[str, Any],
    initial_model: Any = None,
) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """:func:`training_items` then :func:`train_on_items`, in one call: the train pipeline's two nodes on records
    (active learning's fine-tuning uses it)."""
    train_items, val_items = training_items(train, val, model_config, train_options)
    return train_on_items(train_items, model_config, physics_config, training_config, train_options,
                          val_items=val_items, initial_model=initial_model)  # fmt: skip
