"""``Trainer``: one training loop on Hugging Face Accelerate for CPU, multi-process CPU, GPUs and nodes.

Run it as a plain script for one process; under ``accelerate launch --num_processes N`` (add
``--cpu`` for CPU processes over gloo) or ``torchrun --nproc_per_node N`` for data parallelism (DDP).
The same code path serves every case: Accelerate picks the device, the process group and the mixed
precision; this module owns the data order, the schedule, the non-finite guard, EMA, checkpoints
and logs.

Per epoch ``e`` (1-based) the phase ``TrainingConfig.phase_at(e)`` decides ``physics`` and
``conditioning`` of :meth:`TopologicalDiffusionModel.training_losses`, and (``scheduler="phases"``)
the learning rate; see :mod:`td_models.training.schedule`. Every process reads its shard of a
permutation that depends only on ``(seed, epoch)`` (:class:`ShardedBatchSampler`), and draws the
diffusion noise from its own ``torch.Generator``, seeded from ``(seed, rank)`` and checkpointed, so
a run that is interrupted and resumed computes the same losses as one that was not.

A training step is ``gradient_accumulation_steps`` micro-batches (gradients synchronised only on
the last), then clipping to ``gradient_clipping``, one AdamW update, one EMA update and one
scheduler step. Step slots whose loss (or, outside fp16, gradient norm) is not finite are skipped:
no update, the gradients dropped, the count logged; ``max_nonfinite_steps`` of them in a row raise
:class:`~td_models.exceptions.TrainingDivergedError` and leave the last checkpoint as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from td_models.batch import CrystalDataset
from td_models.config import ExperimentConfig, PhaseConfig, save_config
from td_models.exceptions import CheckpointError, ConfigError, TrainingDivergedError
from td_models.model import TopologicalDiffusionModel, atomic_torch_save
from td_models.training.checkpoint import (
    TRAINER_CHECKPOINT_FORMAT,
    capture_rng_state,
    check_resumable,
    checkpoint_name,
    load_latest_checkpoint,
    load_trainer_checkpoint,
    remove_orphan_checkpoint_files,
    restore_rng_state,
    rotate_checkpoints,
)
from td_models.training.data import LossModule, as_dataset, derived_seed, make_loader
from td_models.training.ema import ExponentialMovingAverage
from td_models.training.logbook import LOSS_PARTS, MetricsLogger
from td_models.training.preemption import PREEMPTED_EXIT_CODE, PreemptionFlag
from td_models.training.result import TrainingResult
from td_models.training.sampler import ShardedBatchSampler
from td_models.training.schedule import make_scheduler

__all__ = ["Trainer", "PREEMPTED_EXIT_CODE", "GRADIENT_COMPRESSION"]

log = logging.getLogger(__name__)

#: DDP gradient compression: none, fp16 (``fp16_compress_hook``) or PowerSGD (rank 1, plain
#: all-reduce for the first 1,000 steps: PyTorch's defaults).
GRADIENT_COMPRESSION = ("none", "fp16", "powersgd")

_PHYSICS_PARTS = frozenset({"properties", "band_gap", "formation_energy", "topo", "min_distance", "density", "charge"})


def _canonical_checkpoint_path(path: Path) -> Path:
    """``path``, or its zero-padded sibling when only that exists (the user guide types ``checkpoint_epoch_100.pt``)."""
    if path.exists():
        return path
    match = re.match(r"^checkpoint_epoch_(\d+)(?:_batch_(\d+))?\.pt$", path.name)
    if match is None:
        return path
    padded = path.with_name(checkpoint_name(int(match.group(1)), int(match.group(2) or 0)))
    if padded.is_file():
        log.info("resume_from %s: reading %s", path, padded.name)
        return padded
    return path


class Trainer:
    """Trains a :class:`TopologicalDiffusionModel` with the schedule of its ``training_config``.

    Parameters
    ----------
    model:
        The model to train, or an :class:`ExperimentConfig` to build it from (weights seeded with
        ``training_config.seed``). Its ``training_config`` drives everything below.
    train_dataset, val_dataset:
        :class:`CrystalDataset` or lists of :func:`crystal_item` dicts. Validation (optional) runs the
        EMA weights once an epoch with a fixed noise seed; its ``diffusion`` loss picks
        ``best_model.pt`` (the training epoch mean when there is no validation set).
    output_dir:
        ``config.json``, ``metrics.csv``, ``tensorboard/``, ``checkpoints/`` (or
        ``training_config.checkpoint_dir``; a relative one is under ``output_dir``), ``best_model.pt``,
        ``final_model.pt`` (and ``data_order/`` with ``record_data_order``).
    mixed_precision:
        ``"no"``, ``"bf16"`` or ``"fp16"`` (loss scaling; needs a GPU: on CPU Accelerate runs fp32 and a
        warning says so); None takes ``training_config.mixed_precision``. The resolved value is saved.
    gradient_checkpointing:
        Recompute transformer blocks in the backward pass (less memory, one more forward pass); None takes
        ``model_config.gradient_checkpointing``.
    gradient_compression:
        DDP communication hook: ``"none"``, ``"fp16"`` or ``"powersgd"``. Only meaningful with more
        than one process; with one it is ignored (and logged). PowerSGD's error-feedback state is not
        checkpointed: a resumed run restarts it.
    cpu:
        Force CPU even when a GPU is visible (``accelerate launch --cpu`` sets it too).
    handle_preemption:
        Install SIGUSR1 and SIGTERM handlers for the duration of :meth:`fit`: on the signal the
        current step finishes, a checkpoint is written and ``fit`` returns with ``preempted=True``
        (a script then exits with :data:`PREEMPTED_EXIT_CODE`).
    progress_bar:
        A tqdm bar on the main process (when tqdm is installed).
    tensorboard, wandb_project:
        See :class:`~td_models.training.logbook.MetricsLogger`.
    record_data_order:
        Each process appends the data-set indices of every micro-batch to
        ``data_order/rank_R.jsonl`` (a debugging and test aid).
    fit_normalisation:
        Fit the lattice scale and atom-count histogram on ``train_dataset`` first (off for a model
        whose statistics should stay, e.g. fine-tuning).
    validate_every:
        Epochs between validation passes.
    keep_history:
        Keep every metrics row in memory and return them as :attr:`TrainingResult.history` (off by
        default: a long run logs one row per optimiser step). ``metrics.csv`` is written either way.

    Torch's thread count is process-wide and the trainer leaves it alone; to bound it for a run, wrap
    the work in :func:`td_models.threads.torch_threads` (``with torch_threads(1): trainer.fit()``),
    which restores the previous value.
    """

    def __init__(
        self,
        model: TopologicalDiffusionModel | ExperimentConfig,
        train_dataset: CrystalDataset | Sequence[dict[str, Any]],
        val_dataset: CrystalDataset | Sequence[dict[str, Any]] | None = None,
        *,
        output_dir: str | os.PathLike,
        mixed_precision: str | None = None,
        gradient_checkpointing: bool | None = None,
        gradient_compression: str = "none",
        cpu: bool = False,
        handle_preemption: bool = False,
        progress_bar: bool = True,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        record_data_order: bool = False,
        fit_normalisation: bool = True,
        validate_every: int = 1,
        keep_history: bool = False,
    ) -> None:
        if isinstance(model, ExperimentConfig):
            torch.manual_seed(model.training_config.seed)
            model = TopologicalDiffusionModel(model)
        if not isinstance(model, TopologicalDiffusionModel):
            kind = type(model).__name__
            raise ConfigError(f"model must be a TopologicalDiffusionModel or ExperimentConfig, got {kind}")
        config = model.config
        precision = config.training_config.mixed_precision if mixed_precision is None else mixed_precision
        if precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {precision!r}")
        if gradient_compression not in GRADIENT_COMPRESSION:
            raise ConfigError(
                f"gradient_compression must be one of {GRADIENT_COMPRESSION}, got {gradient_compression!r}"
            )
        if not isinstance(validate_every, int) or validate_every < 1:
            raise ConfigError(f"validate_every must be an integer >= 1, got {validate_every!r}")
        checkpointing = config.model_config.gradient_checkpointing
        if gradient_checkpointing is not None:
            checkpointing = bool(gradient_checkpointing)
        config = dataclasses.replace(
            config,
            model_config=config.model_config.replace(gradient_checkpointing=checkpointing),
            training_config=config.training_config.replace(mixed_precision=precision),
        )
        model.config = config  # the resolved configuration goes into every checkpoint
        model.denoiser.gradient_checkpointing = checkpointing
        self.config = config
        self.model = model
        self.gradient_compression = gradient_compression
        self.handle_preemption = bool(handle_preemption)
        self.progress_bar = bool(progress_bar)
        self.tensorboard = bool(tensorboard)
        self.wandb_project = wandb_project
        self.record_data_order = bool(record_data_order)
        self.validate_every = validate_every
        self.keep_history = bool(keep_history)
        self.output_dir = Path(output_dir)
        tc = config.training_config
        # training_config.checkpoint_dir (the user guide's checkpoint_config.checkpoint_dir); relative: under output_dir
        self.checkpoint_dir = self.output_dir / (tc.checkpoint_dir or "checkpoints")
        num_species = config.model_config.num_species
        self.train_dataset = as_dataset(train_dataset, num_species, "train_dataset")
        self.val_dataset = None if val_dataset is None else as_dataset(val_dataset, num_species, "val_dataset")

        self.accelerator = self._make_accelerator(precision, cpu)
        acc = self.accelerator
        self.rank, self.world_size = acc.process_index, acc.num_processes
        self.distributed = self.world_size > 1
        if gradient_compression != "none" and not self.distributed:
            log.info("gradient_compression=%r ignored: it applies to DDP with >1 process", gradient_compression)
        if tc.scheduler == "cosine":
            log.info(
                "scheduler cosine: %g -> %g over %d epochs; the phases switch physics and conditioning, "
                "their learning rates are not used",
                tc.learning_rate,
                tc.min_learning_rate,
                tc.cosine_period_epochs or tc.max_epochs,
            )
        unrun = [f"{ph.name} (from epoch {ph.start_epoch})" for ph in tc.phases if ph.start_epoch > tc.max_epochs]
        if unrun:  # legitimate when a wall-clock fit lowered max_epochs, but never silent
            log.warning("training_config.max_epochs = %d: the phases %s start after it and will not run",
                        tc.max_epochs, ", ".join(unrun))  # fmt: skip
        if precision == "fp16" and acc.device.type == "cpu":
            log.warning("mixed_precision='fp16' needs a GPU (loss scaling); on CPU Accelerate trains in fp32")

        if fit_normalisation:
            model.fit_normalisation(self.train_dataset.items)
        self.loss_module = LossModule(model)
        decay, no_decay = [], []
        for p in model.parameters():
            (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        self._raw_optimizer = torch.optim.AdamW(groups, lr=tc.learning_rate)
        self.wrapped, self.optimizer = acc.prepare(self.loss_module, self._raw_optimizer)

        self.sampler = ShardedBatchSampler(
            len(self.train_dataset),
            tc.batch_size,
            self.world_size,
            self.rank,
            seed=tc.seed,
            shuffle=True,
            pad=True,
            sizes=self.train_dataset.num_atoms() if tc.bucket_batches else None,
            bucket_batches=tc.bucket_batches,
        )
        self.batches_per_epoch = self.sampler.batches_per_epoch()
        self.steps_per_epoch = -(-self.batches_per_epoch // tc.gradient_accumulation_steps)
        self.scheduler = make_scheduler(self._raw_optimizer, tc, self.steps_per_epoch)
        self.ema = ExponentialMovingAverage(model, tc.ema_decay) if tc.ema_decay > 0 else None
        self.noise = torch.Generator(device=acc.device).manual_seed(derived_seed(tc.seed, self.rank, 1))
        torch.manual_seed(derived_seed(tc.seed, self.rank, 2))  # dropout and anything else on the global RNG

        self.epoch = 0  # epochs completed
        self.batches_done = 0  # micro-batches done in epoch self.epoch + 1
        self.global_step = 0
        self.nonfinite_consecutive = 0
        self.nonfinite_total = 0
        self.best_metric = math.inf
        self.best_epoch: int | None = None
        self.last_checkpoint: Path | None = None
        self.last_losses: dict[str, float] = {}
        self.preemption = PreemptionFlag()
        self._deadline: float | None = None  # time.monotonic() past which fit(max_seconds=...) stops
        self._resumed_step: int | None = None
        self.resumed_from: Path | None = None
        self._logbook: MetricsLogger | None = None
        self._bar = None

    # ------------------------------------------------------------------------------ setup helpers
    def _make_accelerator(self, precision: str, cpu: bool):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import DDPCommunicationHookType, DistributedDataParallelKwargs

        hook = {
            "none": DDPCommunicationHookType.NO,
            "fp16": DDPCommunicationHookType.FP16,
            "powersgd": DDPCommunicationHookType.POWER_SGD,
        }[self.gradient_compression]
        # The heads and the physics terms are unused outside the physics phases: DDP must look for
        # parameters without gradients.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=True, comm_hook=hook)
        # AcceleratorState is a per-process singleton that refuses a second mixed-precision choice;
        # reset it (the process group in PartialState stays) so that one process can run several
        # Trainers one after the other. Two live Trainers in one process are not supported.
        # After a Trainer's fit destroyed the process group (end_training), PartialState must be
        # rebuilt too, so that it initialises a new group.
        distributed_env = int(os.environ.get("WORLD_SIZE", "1")) > 1
        group_gone = distributed_env and not (torch.distributed.is_available() and torch.distributed.is_initialized())
        AcceleratorState._reset_state(reset_partial_state=group_gone)
        return Accelerator(cpu=cpu, mixed_precision=precision, kwargs_handlers=[ddp])

    def _loader(self, sampler: ShardedBatchSampler, dataset: CrystalDataset) -> torch.utils.data.DataLoader:
        tc = self.config.training_config
        return make_loader(dataset, sampler, tc.num_workers, tc.seed)

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    def request_stop(self) -> None:
        """Ask :meth:`fit` to stop after the current step and write a checkpoint (what the signals do)."""
        self.preemption.request()

    # ------------------------------------------------------------------------------ public loop
    def fit(
        self,
        resume_from: str | os.PathLike | None = None,
        *,
        max_steps: int | None = None,
        max_seconds: float | None = None,
    ) -> TrainingResult:
        """Train until ``max_epochs`` (or a preemption signal) and return what happened.

        ``resume_from``: a checkpoint file, or ``"latest"`` for the newest in ``output_dir``
        (starting afresh when there is none, so a requeued job can always pass it; truncated or
        corrupt newer files are skipped, see :meth:`resume`).
        At the end (finished, preempted or raised) ``accelerator.end_training()`` runs and the
        torch.distributed process group is destroyed, so every rank exits cleanly; a multi-process
        Trainer therefore trains once (a new Trainer in the same process starts a new group).
        ``max_steps``: stop after this many optimiser steps of this call, mid-epoch if need be,
        without writing a checkpoint or the final model, and keeping the process group so that
        ``fit`` can continue (benchmarks and smoke tests).
        ``max_seconds``: a wall-clock budget for this call, counted from here (a time limit, a benchmark's
        budget): after the first optimiser step that ends past it, every process stops, a checkpoint is
        written (``fit(resume_from="latest")`` goes on from it) and the result has ``time_limited=True`` and
        no final model. The check is between steps: a step in progress always finishes.
        """
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ConfigError(f"max_steps must be None or an integer >= 1, got {max_steps!r}")
        if max_seconds is not None and (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, (int, float))
            or not math.isfinite(max_seconds)
            or max_seconds <= 0
        ):
            raise ConfigError(f"max_seconds must be None or a number of seconds > 0, got {max_seconds!r}")
        self._deadline = None if max_seconds is None else time.monotonic() + float(max_seconds)
        if resume_from is not None:
            try:
                self.resume(resume_from)
            except BaseException:
                self._end_training()
                raise
        tc = self.config.training_config
        acc = self.accelerator
        if self.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.output_dir / "config.json")
        self._logbook = MetricsLogger(
            self.output_dir,
            enabled=self.is_main_process,
            tensorboard=self.tensorboard,
            wandb_project=self.wandb_project,
            resume_step=self._resumed_step,
            run_config=self.config.to_dict(),
            keep_rows=self.keep_history,
        )
        log.info(
            "training on %s, %d process(es), mixed precision %s: %d crystals, %d steps/epoch, epochs %d..%d",
            acc.device,
            self.world_size,
            acc.mixed_precision,
            len(self.train_dataset),
            self.steps_per_epoch,
            self.epoch + 1,
            tc.max_epochs,
        )
        step_losses: list[float] = []
        final_model = None
        stop_at = None if max_steps is None else self.global_step + max_steps
        status = "done"
        if self.handle_preemption:
            self.preemption.install()
        try:
            while self.epoch < tc.max_epochs:
                status = self._train_epoch(step_losses, stop_at)
                if status == "preempted":
                    self.save_checkpoint()
                    log.warning("preempted: wrote %s; exit status %d", self.last_checkpoint, PREEMPTED_EXIT_CODE)
                elif status == "time_limit":
                    self.save_checkpoint()
                    log.info("time limit of %g s reached after step %d: wrote %s", max_seconds, self.global_step,
                             self.last_checkpoint)  # fmt: skip
                if status != "done":
                    break
                self._end_of_epoch()
            if status == "done":
                final_model = self.output_dir / "final_model.pt"
                if self.is_main_process:
                    self._inference_model().save(final_model)
                acc.wait_for_everyone()
        finally:
            self.preemption.restore()
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._logbook.close()
            if status != "max_steps":
                self._end_training()
        best = self.output_dir / "best_model.pt"
        history = self._logbook.rows
        return TrainingResult(
            epochs_completed=self.epoch,
            global_step=self.global_step,
            last_losses=dict(self.last_losses),
            nonfinite_steps=self.nonfinite_total,
            preempted=status == "preempted",
            output_dir=self.output_dir,
            metrics_csv=self.output_dir / "metrics.csv",
            last_checkpoint=self.last_checkpoint,
            best_model=best if best.is_file() else None,
            final_model=final_model,
            step_losses=step_losses,
            reached_max_steps=status == "max_steps",
            time_limited=status == "time_limit",
            model=self._inference_model(),
            history=None if history is None else tuple(history),
            phases=self._phases_begun(),
            best_epoch=self.best_epoch,
            resumed_from=self.resumed_from,
        )

    def _end_training(self) -> None:
        """``accelerator.end_training()``: finish trackers and destroy the torch.distributed process group.

        Without it a rank can abort at interpreter exit ("terminate called without an active
        exception") while gloo's threads are still alive. Safe with one process (nothing to destroy).
        """
        try:
            self.accelerator.end_training()
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _inference_model(self) -> TopologicalDiffusionModel:
        return self.ema.model if self.ema is not None else self.model

    def _phase(self) -> PhaseConfig:
        return self.config.training_config.phase_at(self.epoch + 1)

    def _phases_begun(self) -> tuple[str, ...]:
        """Names of the phases of the epochs begun so far (the current one when stopped midway), in order."""
        begun = self.epoch + (1 if self.batches_done else 0)
        return tuple(dict.fromkeys(self.config.training_config.phase_at(e).name for e in range(1, begun + 1)))

    # ------------------------------------------------------------------------------ one epoch
    def _any_process(self, flag: bool) -> bool:
        """True on every process if ``flag`` is True on any (one tiny all-reduce; none with one process)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self.accelerator.device)
        torch.distributed.all_reduce(value)
        return bool(value[0] > 0)

    def _train_epoch(self, step_losses: list[float], stop_at: int | None) -> str:
        """Train the rest of epoch ``self.epoch + 1``: ``"done"``, ``"preempted"``, ``"time_limit"`` or
        ``"max_steps"``."""
        tc = self.config.training_config
        acc = self.accelerator
        phase = self._phase()
        accum = tc.gradient_accumulation_steps
        n_batches = self.batches_per_epoch
        self.sampler.set_epoch(self.epoch, start_batch=self.batches_done)
        if self.batches_done == 0:
            self._epoch_sums = torch.zeros(len(LOSS_PARTS) + 1, dtype=torch.float64)
            self._epoch_time = 0.0
            self._epoch_samples = 0
        self._open_bar(n_batches, phase)
        self.wrapped.train()
        order = []
        window: list[dict[str, float]] = []
        window_bad = False
        window_samples = 0
        started = time.perf_counter()
        for indices, batch in self._loader(self.sampler, self.train_dataset):
            b = self.batches_done
            window_start = (b // accum) * accum
            window_len = min(accum, n_batches - window_start)
            sync = b + 1 == window_start + window_len
            if self.record_data_order:
                order.append({"epoch": self.epoch + 1, "batch": b, "indices": indices})
            context = contextlib.nullcontext() if sync else acc.no_sync(self.wrapped)
            with context:
                losses = self.wrapped(batch, phase.physics, phase.conditioning, self.noise)
                total = losses["total"]
                values = self._floats(losses)  # one device sync for every part
                nonfinite = self._any_process(not math.isfinite(values["total"]))
                if not nonfinite:
                    acc.backward(total / window_len)
                elif self.distributed and sync:
                    acc.backward(total * 0.0)  # completes DDP's reduction; these gradients are dropped below
            window_bad |= nonfinite
            if not nonfinite:
                window.append(values)
            window_samples += len(batch)
            self.batches_done += 1
            if not sync:
                continue

            lr = self.scheduler.get_last_lr()[0]
            grad_norm = None
            if not window_bad:
                max_norm = tc.gradient_clipping if tc.gradient_clipping > 0 else math.inf
                grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), max_norm))
                if not math.isfinite(grad_norm) and acc.scaler is None:  # fp16's scaler skips such steps itself
                    window_bad = True
            if window_bad:
                self.optimizer.zero_grad(set_to_none=True)
                self.nonfinite_consecutive += 1
                self.nonfinite_total += 1
                log.warning(
                    "step %d skipped: non-finite loss or gradient norm (%d in a row, %d in total)",
                    self.global_step,
                    self.nonfinite_consecutive,
                    self.nonfinite_total,
                )
                limit = tc.max_nonfinite_steps
                if limit and self.nonfinite_consecutive >= limit:
                    self._write_data_order(order)
                    raise TrainingDivergedError(
                        f"training_config.max_nonfinite_steps = {limit} non-finite steps in a row reached at "
                        f"epoch {self.epoch + 1}, step {self.global_step}; the last good checkpoint is "
                        f"{self.last_checkpoint} (lower the learning rate or check the data)"
                    )
            else:
                self.optimizer.step()
                if self.ema is not None and not acc.optimizer_step_was_skipped:
                    self.ema.update(self.model)
                self.optimizer.zero_grad(set_to_none=True)
                self.nonfinite_consecutive = 0
            self.scheduler.step()
            self.global_step += 1

            elapsed = time.perf_counter() - started
            samples = window_samples * self.world_size
            step_mean = {k: float(np.mean([w[k] for w in window])) for k in window[0]} if window else {}
            if step_mean:
                step_losses.append(step_mean["total"])
                self.last_losses = step_mean
                vector = [step_mean.get(part, 0.0) for part in LOSS_PARTS]
                self._epoch_sums += torch.tensor([*vector, 1.0], dtype=torch.float64)
            self._epoch_time += elapsed
            self._epoch_samples += samples
            self._logbook.log(
                "train",
                epoch=self.epoch + 1,
                step=self.global_step,
                phase=phase.name,
                lr=lr,
                losses=step_mean,
                samples_per_s=samples / elapsed if elapsed > 0 else None,
                grad_norm=grad_norm,
                skipped=self.nonfinite_total,
            )
            if self._bar is not None:
                self._bar.update(window_len)
                if step_mean:
                    self._bar.set_postfix(loss=f"{step_mean['total']:.4f}", lr=f"{lr:.2e}")
            window, window_bad, window_samples = [], False, 0
            started = time.perf_counter()
            late = self._deadline is not None and time.monotonic() >= self._deadline
            if self._any_process(self.preemption.requested or late):  # the step is done: stop here if asked
                self._write_data_order(order)
                # a signal on any process wins over the time limit (the job script requeues on it)
                return "preempted" if self._any_process(self.preemption.requested) else "time_limit"
            if stop_at is not None and self.global_step >= stop_at:
                self._write_data_order(order)
                return "max_steps"
        self._write_data_order(order)
        return "done"

    def _floats(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Loss parts as floats (one transfer), plus ``diffusion``, the weighted denoising loss of every phase."""
        mc = self.config.model_config
        keys = [k for k in LOSS_PARTS if k in losses]
        out = dict(zip(keys, torch.stack([losses[k].detach().float() for k in keys]).tolist()))
        out["diffusion"] = (
            mc.lattice_loss_weight * out["lattice"]
            + mc.coord_loss_weight * out["coords"]
            + mc.species_loss_weight * out["species"]
        )
        return out

    def _open_bar(self, n_batches: int, phase: PhaseConfig) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not (self.progress_bar and self.accelerator.is_local_main_process):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        tc = self.config.training_config
        self._bar = tqdm(
            total=n_batches,
            initial=self.batches_done,
            desc=f"epoch {self.epoch + 1}/{tc.max_epochs} {phase.name}",
            unit="batch",
            leave=False,
            dynamic_ncols=True,
        )

    def _write_data_order(self, order: list[dict[str, Any]]) -> None:
        if not (self.record_data_order and order):
            return
        path = self.output_dir / "data_order" / f"rank_{self.rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in order)

    def _reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        if not self.distributed:
            return values
        moved = values.to(self.accelerator.device)
        torch.distributed.all_reduce(moved)
        return moved.cpu()

    def _means(self, sums: torch.Tensor, physics: bool) -> dict[str, float]:
        count = float(sums[-1])
        if count == 0:
            return {}
        return {
            part: float(sums[i]) / count for i, part in enumerate(LOSS_PARTS) if physics or part not in _PHYSICS_PARTS
        }

    def _end_of_epoch(self) -> None:
        tc = self.config.training_config
        phase = self._phase()
        sums = self._reduce_sum(self._epoch_sums.clone())
        # the time of the slowest process paces the epoch
        elapsed = self._reduce_max(self._epoch_time)
        self.epoch += 1
        self.batches_done = 0
        train = self._means(sums, phase.physics)
        if train:
            self.last_losses = train
        self._log_epoch_row("epoch", phase, train, self._epoch_samples / elapsed if elapsed > 0 else None)
        metric = train.get("diffusion", math.inf)
        if self.val_dataset is not None and self.epoch % self.validate_every == 0:
            val = self.evaluate()
            metric = val.get("diffusion", math.inf)
            self._log_epoch_row("val", phase, val)
            log.info("epoch %d (%s): val %.4f", self.epoch, phase.name, val.get("total", math.nan))
        log.info("epoch %d (%s): train %.4f", self.epoch, phase.name, train.get("total", math.nan))
        self._logbook.flush()
        if metric < self.best_metric:
            self.best_metric, self.best_epoch = metric, self.epoch
            if self.is_main_process:
                self._inference_model().save(self.output_dir / "best_model.pt")
        if self.epoch % tc.checkpoint_every == 0 or self.epoch == tc.max_epochs:
            self.save_checkpoint()

    def _log_epoch_row(
        self, kind: str, phase: PhaseConfig, losses: dict[str, float], samples_per_s: float | None = None
    ) -> None:
        """A metrics row for the epoch just completed: its mean losses (``epoch``) or a validation (``val``)."""
        self._logbook.log(
            kind,
            epoch=self.epoch,
            step=self.global_step,
            phase=phase.name,
            lr=self.scheduler.get_last_lr()[0],
            losses=losses,
            samples_per_s=samples_per_s,
            skipped=self.nonfinite_total,
        )

    def _reduce_max(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return float(t)

    # ------------------------------------------------------------------------------ validation
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean losses on the validation set with the EMA weights (fixed noise seed), over all processes."""
        if self.val_dataset is None:
            raise ConfigError("evaluate needs a val_dataset, got none")
        tc = self.config.training_config
        phase = self._phase() if self.epoch == 0 else tc.phase_at(self.epoch)
        model = self._inference_model()
        was_training = model.training
        model.eval()
        sampler = ShardedBatchSampler(
            len(self.val_dataset), tc.batch_size, self.world_size, self.rank, seed=tc.seed, shuffle=False, pad=False
        )
        generator = torch.Generator(device=self.accelerator.device).manual_seed(derived_seed(tc.seed, self.rank, 3))
        sums = torch.zeros(len(LOSS_PARTS) + 1, dtype=torch.float64)
        try:
            for _, batch in self._loader(sampler, self.val_dataset):
                with self.accelerator.autocast():
                    losses = model.training_losses(
                        batch, physics=phase.physics, conditioning=phase.conditioning, generator=generator
                    )
                values = self._floats(losses)
                sums += torch.tensor([*(values.get(p, 0.0) * len(batch) for p in LOSS_PARTS), len(batch)])
        finally:
            model.train(was_training)
        return self._means(self._reduce_sum(sums), phase.physics)

    # ------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the whole training state (all processes must call it); returns its path."""
        tc = self.config.training_config
        acc = self.accelerator
        local = {  # per process: RNG streams and the partial sums of an epoch stopped midway
            "rng": capture_rng_state(self.noise),
            "epoch_sums": self._epoch_sums.clone() if self.batches_done else None,
            "epoch_time": self._epoch_time if self.batches_done else 0.0,
            "epoch_samples": self._epoch_samples if self.batches_done else 0,
        }
        if self.distributed:
            from accelerate.utils import gather_object

            processes = gather_object([local])
        else:
            processes = [local]
        path = self.checkpoint_dir / checkpoint_name(self.epoch, self.batches_done)
        if self.is_main_process:
            from td_models import __version__

            remove_orphan_checkpoint_files(self.checkpoint_dir)
            payload = {
                "format": TRAINER_CHECKPOINT_FORMAT[0],
                "format_version": TRAINER_CHECKPOINT_FORMAT[1],
                "td_models_version": __version__,
                "config": self.config.to_dict(),
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "ema": None if self.ema is None else self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": None if acc.scaler is None else acc.scaler.state_dict(),
                "epoch": self.epoch,
                "batches_done": self.batches_done,
                "global_step": self.global_step,
                "data_order": {
                    "seed": tc.seed,
                    "batch_size": tc.batch_size,
                    "gradient_accumulation_steps": tc.gradient_accumulation_steps,
                    "num_processes": self.world_size,
                    "num_items": len(self.train_dataset),
                    "steps_per_epoch": self.steps_per_epoch,
                },
                "processes": processes,
                "nonfinite": {"consecutive": self.nonfinite_consecutive, "total": self.nonfinite_total},
                "best": {"metric": self.best_metric, "epoch": self.best_epoch},
            }
            atomic_torch_save(payload, path)
            rotate_checkpoints(self.checkpoint_dir, tc.keep_checkpoints)
            log.info("checkpoint %s (epoch %d, step %d)", path, self.epoch, self.global_step)
        acc.wait_for_everyone()
        self.last_checkpoint = path
        return path

    def resume(self, checkpoint: str | os.PathLike) -> Path | None:
        """Restore the whole training state from a checkpoint file or ``"latest"`` (None: nothing to resume).

        ``"latest"`` takes the newest checkpoint in the checkpoint folder that loads: truncated or
        corrupt newer files are skipped with a warning naming each and why (so a requeued job never
        fails on one bad file); with no checkpoint at all the run starts afresh. A named file that
        is truncated or corrupt raises :class:`~td_models.exceptions.CorruptCheckpointError`.
        Orphan temporaries of killed saves (``.checkpoint_*.tmp``) are removed first.
        """
        if self.is_main_process:
            remove_orphan_checkpoint_files(self.checkpoint_dir)
        if str(checkpoint) == "latest":
            found = load_latest_checkpoint(self.checkpoint_dir, map_location="cpu")
            if found is None:
                log.info("resume_from='latest': no checkpoint in %s, starting afresh", self.checkpoint_dir)
                return None
            path, payload = found
        else:
            path = _canonical_checkpoint_path(Path(checkpoint))
            payload = load_trainer_checkpoint(path, map_location="cpu")
        check_resumable(payload, path, self.config, self.world_size, len(self.train_dataset))
        order = payload["data_order"]
        try:
            self.model.load_state_dict(_with_data_buffers(payload["model"], self.model))
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint {str(path)!r} does not match the model: {exc}") from exc
        if self.ema is not None:
            if payload["ema"] is not None:
                ema = payload["ema"]
                self.ema.load_state_dict({**ema, "weights": _with_data_buffers(ema.get("weights") or {}, self.model)})
            else:
                self.ema.copy_from(self.model)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.accelerator.scaler is not None and payload["scaler"] is not None:
            self.accelerator.scaler.load_state_dict(payload["scaler"])
        self.epoch = int(payload["epoch"])
        self.batches_done = int(payload["batches_done"])
        self.global_step = int(payload["global_step"])
        if order["steps_per_epoch"] != self.steps_per_epoch:
            log.warning(
                "steps per epoch changed from %d to %d: the learning-rate schedule restarts at epoch %d",
                order["steps_per_epoch"],
                self.steps_per_epoch,
                self.epoch + 1,
            )
            self.scheduler.last_epoch = self.epoch * self.steps_per_epoch - 1
            self.scheduler.step()
        self.nonfinite_consecutive = int(payload["nonfinite"]["consecutive"])
        self.nonfinite_total = int(payload["nonfinite"]["total"])
        self.best_metric = float(payload["best"]["metric"])
        self.best_epoch = payload["best"]["epoch"]
        processes = payload["processes"]
        if len(processes) == self.world_size:
            mine = processes[self.rank]
            restore_rng_state(mine["rng"], self.noise)
            if self.batches_done:  # same world size is guaranteed above for a mid-epoch checkpoint
                self._epoch_sums = mine["epoch_sums"].to(torch.float64)
                self._epoch_time = float(mine["epoch_time"])
                self._epoch_samples = int(mine["epoch_samples"])
        else:
            log.warning(
                "checkpoint holds RNG states of %d process(es), this run has %d: RNG streams reseeded",
                len(processes),
                self.world_size,
            )
        self._resumed_step = self.global_step
        self.resumed_from = path
        self.last_checkpoint = path
        log.info("resumed %s: epoch %d, micro-batch %d, step %d", path, self.epoch, self.batches_done, self.global_step)
        return path


#: data statistics a checkpoint may predate (the element volumes were added later): the model's own,
#: fitted on the training data at set-up, fill them in on resume
DATA_BUFFERS_ADDED_LATER = ("species_volume", "class_element_count_weights")


def _with_data_buffers(state: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """``state`` with each of :data:`DATA_BUFFERS_ADDED_LATER` it lacks taken from ``model`` (fitted at set-up)."""
    own = model.state_dict()
    missing = {k: own[k].detach().cpu() for k in DATA_BUFFERS_ADDED_LATER if k not in state and k in own}
    if missing:
        log.info("the checkpoint predates %s: using the ones fitted on this run's training data", sorted(missing))
    return {**state, **missing}
