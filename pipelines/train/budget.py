"""Epochs fitted to a wall-clock budget (``train_options.fit_epochs_to_budget``): time a few optimiser steps of a
throw-away copy of the model in each kind of phase and plan the epochs that fit, so that a schedule over
``max_epochs`` (cosine annealing with ``cosine_period_epochs: null``, or the phases) ends when the budget is spent.

Torch and td-models only: the train node runs on a GPU node without the materials stack.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

#: Steps timed per kind of phase (after two warm-up steps) to fit the epochs to the budget, and the share of the
#: budget planned (the rest absorbs validation, logging, checkpoints and a slower stretch of a shared machine).
PROBE_STEPS = 12
BUDGET_SHARE = 0.92


def fit_epochs_to_budget(
    items: Sequence[Mapping[str, Any]], config: Any, budget_minutes: float, device: str, seed: int
) -> dict[str, Any]:
    """How many epochs of ``items`` fit in ``budget_minutes``.

    A throw-away model of ``config`` takes :data:`PROBE_STEPS` optimiser steps (after two warm-up steps) for each
    distinct ``(physics, conditioning)`` setting of the phases that start within ``max_epochs``, as the trainer's
    step does: a full batch drawn at random from ``items`` (a store sorted by size would otherwise time its
    smallest cells, with the least padding; with ``training_config.bucket_batches`` the epoch's size-sorted batches
    instead, one from each of :data:`PROBE_STEPS` equal strata of their padded pair count, whose cost varies
    several-fold), forward, backward (bf16 autocast on CUDA when ``mixed_precision`` is
    bf16), gradient clipping, AdamW and the EMA update. The epochs are then summed phase by phase (a physics phase's
    step costs more) until :data:`BUDGET_SHARE` of the budget is spent.

    Returns ``epochs``, ``probe_seconds_per_step`` (the first phase's), ``probe_seconds_per_step_by_phase`` (each
    timed phase's), ``planned_seconds`` (the probe's estimate of the fitted epochs), ``probe_steps``,
    ``budget_share`` and ``steps_per_epoch``."""
    import numpy as np
    import torch

    from td_models import TopologicalDiffusionModel
    from td_models.batch import CrystalDataset, collate
    from td_models.training.ema import ExponentialMovingAverage

    tc = config.training_config
    model = TopologicalDiffusionModel(config).to(device)
    dataset = CrystalDataset(list(items), num_species=config.model_config.num_species)  # as Trainer
    size = min(tc.batch_size, len(dataset))
    model.fit_normalisation(collate([dataset[i] for i in range(size)]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema = ExponentialMovingAverage(model, tc.ema_decay) if tc.ema_decay > 0 else None
    generator = torch.Generator(device=device).manual_seed(seed)
    autocast = device == "cuda" and tc.mixed_precision == "bf16"
    clip = tc.gradient_clipping if tc.gradient_clipping > 0 else None
    rng = np.random.default_rng(seed)  # batches drawn as the trainer's shuffled epochs draw them: mixed sizes pad
    strata = _size_strata(dataset.num_atoms(), size, tc.bucket_batches, seed) if tc.bucket_batches else None

    def step(physics: bool, conditioning: bool, stratum: int | None = None) -> None:
        if strata is None or stratum is None:
            index = rng.choice(len(dataset), size=size, replace=False)
        else:
            index = strata[stratum]
        batch = collate([dataset[int(i)] for i in index]).to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            loss = model.training_losses(batch, physics=physics, conditioning=conditioning, generator=generator)
        loss["total"].backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if ema is not None:
            ema.update(model)
        optimizer.zero_grad(set_to_none=True)

    def timed(physics: bool, conditioning: bool) -> float:
        for _ in range(2):
            step(physics, conditioning)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for j in range(PROBE_STEPS):
            step(physics, conditioning, j)
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / PROBE_STEPS

    phases = [ph for ph in tc.phases if ph.start_epoch <= tc.max_epochs] or list(tc.phases[:1])
    by_setting: dict[tuple[bool, bool], float] = {}
    for ph in phases:
        key = (bool(ph.physics), bool(ph.conditioning))
        if key not in by_setting:
            by_setting[key] = timed(*key)
    by_phase = {ph.name: by_setting[(bool(ph.physics), bool(ph.conditioning))] for ph in phases}
    steps_per_epoch = -(-len(items) // tc.batch_size)
    epochs, planned = plan_epochs(
        [(ph.start_epoch, steps_per_epoch * by_phase[ph.name]) for ph in phases], BUDGET_SHARE * 60.0 * budget_minutes
    )
    logger.info("budget: %s s a step on %d crystals a batch -> %d epochs of %d steps, %.1f of %.1f min planned",
                ", ".join(f"{name} {sec:.3f}" for name, sec in by_phase.items()), tc.batch_size, epochs,
                steps_per_epoch, planned / 60.0, budget_minutes)  # fmt: skip
    return {"epochs": epochs, "probe_seconds_per_step": by_phase[phases[0].name],
            "probe_seconds_per_step_by_phase": by_phase, "planned_seconds": planned, "probe_steps": PROBE_STEPS,
            "budget_share": BUDGET_SHARE, "steps_per_epoch": steps_per_epoch}  # fmt: skip


def _size_strata(sizes: Any, batch_size: int, bucket_batches: int, seed: int) -> list[Any]:
    """:data:`PROBE_STEPS` batches of the trainer's first size-bucketed epoch, the middle one of each of as many
    equal strata of the batches ranked by padded pair count (batch size times the largest cell squared)."""
    import numpy as np

    from td_models.training.sampler import ShardedBatchSampler

    sampler = ShardedBatchSampler(len(sizes), batch_size, seed=seed, sizes=sizes, bucket_batches=bucket_batches)
    batches = sampler.batches(0)
    cost = [len(b) * int(sizes[b].max()) ** 2 for b in batches]
    ranked = [batches[i] for i in np.argsort(cost, kind="stable")]
    return [ranked[min(len(ranked) - 1, int((j + 0.5) * len(ranked) / PROBE_STEPS))] for j in range(PROBE_STEPS)]


def plan_epochs(phases: Sequence[tuple[int, float]], seconds: float) -> tuple[int, float]:
    """``(epochs, their seconds)``: the most epochs (at least one) whose summed cost fits in ``seconds``.

    ``phases`` are ``(start_epoch, seconds per epoch)`` in order, the first starting at epoch 1; each runs until
    the next one starts, the last one on.

    >>> plan_epochs([(1, 2.0), (4, 10.0)], 30.0)  # 3 epochs at 2 s, then 2 at 10 s
    (5, 26.0)
    >>> plan_epochs([(1, 2.0), (4, 10.0)], 5.0)
    (2, 4.0)
    """
    epochs, spent = 0, 0.0
    for i, (start, cost) in enumerate(phases):
        stop = phases[i + 1][0] if i + 1 < len(phases) else None  # first epoch of the next phase
        fit = int((seconds - spent) // cost) if cost > 0 else 10**9
        if stop is not None and fit >= stop - start:
            epochs, spent = stop - 1, spent + (stop - start) * cost
            continue
        epochs, spent = start - 1 + max(0, fit), spent + max(0, fit) * cost
        break
    if epochs < 1:
        return 1, phases[0][1]
    return epochs, spent


def with_epochs(config: Any, epochs: int) -> Any:
    """``config`` training for at most ``epochs`` (its own ``max_epochs`` when smaller); a checkpoint interval
    beyond the new end is kept (the trainer writes one at the last epoch)."""
    tc = config.training_config
    return dataclasses.replace(config, training_config=tc.replace(max_epochs=min(tc.max_epochs, int(epochs))))
