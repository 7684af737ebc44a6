"""Epochs fitted to a wall-clock budget (``train_options.fit_epochs_to_budget``): time a few optimiser steps of a
throw-away copy of the model and plan the epochs that fit, so that a schedule over ``max_epochs`` (cosine
annealing with ``cosine_period_epochs: null``, or the phases) ends when the budget is spent.

Torch and td-models only: the train node runs on a GPU node without the materials stack.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger(__name__)

#: Steps timed (after two warm-up steps) to fit the epochs to the budget, and the share of the budget planned
#: (the rest absorbs the EMA, logging and a slower stretch of a shared machine).
PROBE_STEPS = 12
BUDGET_SHARE = 0.92


def fit_epochs_to_budget(
    items: Sequence[Mapping[str, Any]], config: Any, budget_minutes: float, device: str, seed: int
) -> dict[str, Any]:
    """How many epochs of ``items`` fit in ``budget_minutes``: a throw-away model of ``config`` takes
    :data:`PROBE_STEPS` optimiser steps on full training batches (forward, backward, AdamW, bf16 autocast on CUDA
    when ``mixed_precision`` is bf16) and the rate found sets the epochs. Returns the epochs and what the probe
    measured (``epochs``, ``probe_seconds_per_step``, ``probe_steps``, ``budget_share``, ``steps_per_epoch``)."""
    import torch

    from td_models import TopologicalDiffusionModel
    from td_models.batch import CrystalDataset, collate

    tc = config.training_config
    model = TopologicalDiffusionModel(config).to(device)
    dataset = CrystalDataset(list(items[: tc.batch_size]), num_species=config.model_config.num_species)  # as Trainer
    batch = collate([dataset[i] for i in range(len(dataset))])
    model.fit_normalisation(batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator(device=device).manual_seed(seed)
    physics = tc.phases[0].physics
    autocast = device == "cuda" and tc.mixed_precision == "bf16"

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
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
    planned = BUDGET_SHARE * 60.0 * budget_minutes / seconds_per_step
    epochs = max(1, int(planned // steps_per_epoch))
    logger.info("budget: %.3f s a step on %d crystals a batch -> %d epochs of %d steps in %.1f min",
                seconds_per_step, tc.batch_size, epochs, steps_per_epoch, budget_minutes)  # fmt: skip
    return {"epochs": epochs, "probe_seconds_per_step": seconds_per_step, "probe_steps": PROBE_STEPS,
            "budget_share": BUDGET_SHARE, "steps_per_epoch": steps_per_epoch}  # fmt: skip


def with_epochs(config: Any, epochs: int) -> Any:
    """``config`` training for at most ``epochs`` (its own ``max_epochs`` when smaller); a checkpoint interval
    beyond the new end is kept (the trainer writes one at the last epoch)."""
    tc = config.training_config
    return dataclasses.replace(config, training_config=tc.replace(max_epochs=min(tc.max_epochs, int(epochs))))
