"""Train: the diffusion model on the training split, with the validation split for model selection."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from td_data import CrystalRecord

logger = logging.getLogger(__name__)


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


def train_model(
    train: Sequence[CrystalRecord],
    val: Sequence[CrystalRecord],
    model_config: Mapping[str, Any],
    physics_config: Mapping[str, Any],
    training_config: Mapping[str, Any],
    train_options: Mapping[str, Any],
) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """``(model with EMA weights, metrics table (one row per step/epoch/validation), summary)``.

    The Trainer needs a working folder for its rotating checkpoints and ``metrics.csv``; it is a
    temporary one, deleted when training ends: what is kept goes through the catalog.
    ``train_options``: ``num_threads`` (torch threads; 1 is fastest on a shared 2-core machine) and
    ``progress_bar``.
    """
    import torch

    from td_models import TopologicalDiffusionModel
    from td_models.training import Trainer

    config = experiment_config(model_config, physics_config, training_config)
    options = dict(train_options or {})
    if options.get("num_threads"):
        torch.set_num_threads(int(options["num_threads"]))
    n = config.model_config.num_species
    train_items = [record_to_item(r, n) for r in train if r.num_atoms <= config.model_config.max_atoms]
    val_items = [record_to_item(r, n) for r in val if r.num_atoms <= config.model_config.max_atoms]
    if len(train_items) < 2:
        raise ValueError(f"training needs at least 2 crystals of at most max_atoms sites, got {len(train_items)}")
    with tempfile.TemporaryDirectory(prefix="td-train-") as workdir:
        trainer = Trainer(
            config,
            train_items,
            val_items or None,
            output_dir=workdir,
            progress_bar=bool(options.get("progress_bar", False)),
            tensorboard=False,
        )
        result = trainer.fit()
        metrics = pd.read_csv(result.metrics_csv)
        model = TopologicalDiffusionModel.load(result.final_model)
    summary = {
        "epochs_completed": result.epochs_completed,
        "global_step": result.global_step,
        "last_losses": {k: float(v) for k, v in result.last_losses.items()},
        "nonfinite_steps": result.nonfinite_steps,
        "n_train": len(train_items),
        "n_val": len(val_items),
        "n_train_labelled": sum("topo_class" in r.labels for r in train),
        "num_parameters": int(model.num_parameters()),
        "config": config.to_dict(),
    }
    logger.info("train: %d epochs, last losses %s", result.epochs_completed, summary["last_losses"])
    return model, metrics, summary
