"""The benchmarks' GPU half: train on model items within a wall-clock budget (the sampling that follows is the
generate pipeline's node, :func:`pipelines.generate.nodes.sample_candidates`).

Everything here needs only torch, accelerate, numpy and td-models (no reader, pymatgen or spglib is imported),
so ``kedro run --pipelines=bench_train`` runs on a GPU node without the materials stack. The items arrive, and
the samples leave, as ``td_models.save_crystals`` files (the catalog's
:class:`pipelines.benchmark.datasets.CrystalFileDataset`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.benchmark.options import BenchmarkTraining
from pipelines.exceptions import ParameterError
from td_physics.jsonable import to_jsonable

logger = logging.getLogger(__name__)


def experiment_config(options: BenchmarkTraining, fitted_epochs: int | None = None) -> Any:
    """The preset with this run's overrides: model, seed, epochs, batch size, learning rate, EMA, precision, one
    checkpoint; with ``schedule: budget_cosine`` one phase and cosine annealing over ``fitted_epochs`` (the
    budget's, :func:`fit_epochs_to_budget`; ``max_epochs`` or the preset's until it is known)."""
    from td_models import ExperimentConfig
    from td_models.config import PhaseConfig
    from td_models.exceptions import ConfigError

    config = ExperimentConfig.preset(options.preset)
    if options.model:
        try:
            config = dataclasses.replace(config, model_config=config.model_config.replace(**options.model))
        except (TypeError, ConfigError) as err:
            raise ParameterError(f"benchmark_training.model: {err}") from None
    tc = config.training_config
    max_epochs = options.max_epochs if options.max_epochs is not None else tc.max_epochs
    if fitted_epochs is not None:
        max_epochs = min(max_epochs, fitted_epochs)
    training: dict[str, Any] = {
        "seed": options.seed,
        "max_epochs": max_epochs,
        "mixed_precision": "bf16" if options.device == "cuda" else "no",
        # a checkpoint holds weights, EMA and AdamW state (about 2 GB for `small`): write one at the end only
        "checkpoint_every": max_epochs,
        "keep_checkpoints": 1,
    }
    if options.batch_size is not None:
        training["batch_size"] = options.batch_size
    if options.warmup_epochs is not None:
        training["warmup_epochs"] = options.warmup_epochs
    if options.ema_decay is not None:
        training["ema_decay"] = float(options.ema_decay)
    if options.schedule == "budget_cosine":
        peak = options.learning_rate if options.learning_rate is not None else tc.phases[0].learning_rate
        training.update(
            scheduler="cosine",
            learning_rate=peak,
            min_learning_rate=peak * COSINE_FLOOR,
            cosine_period_epochs=None,  # = max_epochs
            phases=(PhaseConfig("budget_cosine", 1, peak, physics=options.physics),),
        )
        if options.warmup_epochs is None:
            training["warmup_epochs"] = 1
    elif options.learning_rate is not None:  # one factor for every phase and the cosine peak
        factor = options.learning_rate / tc.phases[0].learning_rate
        training["learning_rate"] = tc.learning_rate * factor
        training["phases"] = tuple(dataclasses.replace(ph, learning_rate=ph.learning_rate * factor) for ph in tc.phases)
    return dataclasses.replace(config, training_config=tc.replace(**training))


#: budget_cosine anneals from the peak rate to this fraction of it.
COSINE_FLOOR = 0.01
#: Steps timed (after two warm-up steps) to fit the epochs to the budget, and the share of the budget planned
#: (the rest absorbs the EMA, logging and a slower stretch of a shared machine).
PROBE_STEPS = 12
BUDGET_SHARE = 0.92


def fit_epochs_to_budget(items: Sequence[Mapping[str, Any]], options: BenchmarkTraining) -> dict[str, Any]:
    """How many epochs fit in ``budget_minutes``: a throw-away copy of the model takes ``PROBE_STEPS`` optimiser
    steps on full training batches (forward, backward, AdamW) and the rate found sets the epochs, so that the
    cosine schedule ends with the budget. Returns the epochs and what the probe measured."""
    import torch

    from td_models import TopologicalDiffusionModel
    from td_models.batch import CrystalDataset, collate

    config = experiment_config(options)
    tc = config.training_config
    model = TopologicalDiffusionModel(config)
    device = "cuda" if options.device == "cuda" else "cpu"
    model = model.to(device)
    dataset = CrystalDataset(list(items[: tc.batch_size]), num_species=config.model_config.num_species)  # as Trainer
    batch = collate([dataset[i] for i in range(len(dataset))])
    model.fit_normalisation(batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    physics = tc.phases[0].physics

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model.training_losses(batch, physics=physics, conditioning=False, generator=generator)["total"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(PROBE_STEPS):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds_per_step = (time.perf_counter() - t0) / PROBE_STEPS
    steps_per_epoch = -(-len(items) // tc.batch_size)
    planned = BUDGET_SHARE * 60.0 * options.budget_minutes / seconds_per_step
    epochs = max(1, int(planned // steps_per_epoch))
    logger.info("budget: %.3f s a step on %d crystals a batch -> %d epochs of %d steps in %.1f min",
                seconds_per_step, tc.batch_size, epochs, steps_per_epoch, options.budget_minutes)  # fmt: skip
    return {"epochs": epochs, "probe_seconds_per_step": seconds_per_step, "probe_steps": PROBE_STEPS,
            "budget_share": BUDGET_SHARE, "steps_per_epoch": steps_per_epoch}  # fmt: skip


def hardware(device: str) -> dict[str, Any]:
    """Where this process runs: CPU model and count, torch threads and versions, the device's name."""
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


def check_device(options: BenchmarkTraining) -> None:
    """A ParameterError when ``device: cuda`` is asked for and torch sees no CUDA device."""
    import torch

    if options.device == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            f"benchmark_training.device is 'cuda', but torch {torch.__version__} sees no CUDA device; set it to 'cpu'"
        )


def train_with_budget(items: Sequence[Mapping[str, Any]], options: BenchmarkTraining) -> tuple[Any, dict[str, Any]]:
    """Train with the Trainer in ``options.run_dir``, stopping at the budget; (EMA model in eval mode, summary)."""
    from td_models.training import Trainer

    check_device(options)
    fitted = fit_epochs_to_budget(items, options) if options.schedule == "budget_cosine" else None
    config = experiment_config(options, None if fitted is None else fitted["epochs"])
    t0 = time.perf_counter()
    trainer = Trainer(
        config,
        list(items),
        None,
        output_dir=Path(options.run_dir),
        cpu=options.device == "cpu",
        progress_bar=options.progress_bar,
        tensorboard=False,
    )
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    budget = None if options.budget_minutes is None else 60.0 * options.budget_minutes
    result = trainer.fit(max_seconds=budget)  # stops after the step that crosses the budget
    fit_s = time.perf_counter() - t0
    model = trainer.ema.model if trainer.ema is not None else trainer.model
    model.eval()
    tc = trainer.config.training_config
    summary = {
        "stopped_by": "budget" if result.time_limited else "preempted" if result.preempted else "max_epochs",
        "budget_minutes": options.budget_minutes,
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
        "phases_reached": list(result.phases),  # of the epochs begun, the one the budget stopped included
        "setup_seconds": round(setup_s, 2),
        "fit_seconds": round(fit_s, 2),
        "seconds_per_step": round(fit_s / result.global_step, 4) if result.global_step else None,
        "metrics_csv": str(result.metrics_csv),
        "schedule": options.schedule,
        "budget_fit": fitted,
    }
    logger.info(
        "training: %d epochs, %d steps, stopped by %s [%.1f s]",
        result.epochs_completed,
        result.global_step,
        summary["stopped_by"],
        fit_s,
    )
    return model, summary


# ---------------------------------------------------------------------------------------------- nodes
def train_benchmark(items_file: tuple[list, dict], benchmark_training: Mapping[str, Any]) -> tuple[Any, dict]:
    """``(model, training summary)`` from the prepare stage's items; the summary carries the prepare metadata,
    the configuration, the parameter count, this stage's timings and hardware."""
    from td_models import torch_threads
    from td_models.exceptions import TDModelsError

    options = BenchmarkTraining.from_dict(benchmark_training)
    items, prepared = items_file
    started = time.perf_counter()
    max_atoms = experiment_config(options).model_config.max_atoms
    kept = [it for it in items if len(it["atomic_numbers"]) <= max_atoms]
    if len(kept) < 2:
        raise ParameterError(f"training needs at least 2 crystals of at most {max_atoms} sites, got {len(kept)}")
    with torch_threads(options.num_threads):
        try:
            model, training = train_with_budget(kept, options)
        except TDModelsError as err:
            raise ParameterError(f"training on {len(kept)} items failed: {err}") from err
    training["n_items"] = len(kept)
    training["n_items_too_large"] = len(items) - len(kept)  # more sites than the model's max_atoms
    training["n_items_with_class"] = sum(_has_class(it) for it in kept)
    summary = {
        "prepare": prepared,
        "training": training,
        "preset": options.preset,
        "parameters": model.num_parameters(),
        "config": model.config.to_dict(),  # with budget_cosine: the fitted epochs
        "timings_seconds": {"train_setup": training["setup_seconds"], "train": training["fit_seconds"]},
        "seconds": round(time.perf_counter() - started, 2),
        "hardware": hardware(options.device),
        "options": dataclasses.asdict(options),
    }
    return model, to_jsonable(summary, strict=False)


def _has_class(item: Mapping[str, Any]) -> bool:
    """Whether a training item has a topological class (index >= 0, or a class name)."""
    cls = item.get("topo_class")
    return cls is not None and (isinstance(cls, str) or int(cls) >= 0)
