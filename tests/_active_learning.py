"""Helpers of the active-learning tests: a tiny trained model with its crystals, and a project copy that holds them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

MODEL_CONFIG = {"num_species": 100, "hidden_dim": 16, "num_topo_classes": 4, "num_layers": 1, "num_heads": 2,
                "max_atoms": 20, "num_steps": 20, "dropout": 0.1}  # fmt: skip
PHYSICS = {"topological_class": "TI", "band_gap_range": [0.1, 0.5], "stability_threshold": None}
TRAINING = {"batch_size": 8, "learning_rate": 0.001, "max_epochs": 1, "warmup_epochs": 0, "checkpoint_every": 1,
            "keep_checkpoints": 1, "seed": 0}  # fmt: skip
#: The other pipelines' blocks: relax off (CHGNet is slow; the summary says so), small labelling.
BLOCKS = {
    "generate_options": {"steps": 5},
    "relax_options": {"enabled": False},
    "label_options": {"max_records": 4, "max_atoms": 6, "workers": 1, "gap_mesh": 4},
    "verify_options": {"top_n": 1},
}
AL = {"rounds": 2, "n_candidates": 8, "sampling_steps": 5, "n_add": 3, "fine_tune_epochs": 1,
      "acquisition": {"spread": 1.0, "mc_samples": 4, "exploration_share": 0.34}}  # fmt: skip


def tiny_inputs(folder: Path) -> dict[str, Any]:
    """Training and validation crystals (synthetic) and a tiny model trained for one epoch, also saved in ``folder``
    as ``train.h5``, ``val.h5`` and ``model.pt``."""
    from pipelines.ingest.nodes import ingest_crystals
    from pipelines.split.nodes import split_crystals
    from pipelines.train.nodes import train_model
    from td_data.store import write_store

    records, _ = ingest_crystals({"source": "synthetic", "n_samples": 30, "seed": 0, "max_atoms": 12})
    _, train, val, _ = split_crystals(records, {"fractions": [0.8, 0.1, 0.1]})
    model, _, _ = train_model(train, val, MODEL_CONFIG, PHYSICS, TRAINING, {"run_dir": str(folder / "train")})
    model.save(folder / "model.pt")
    write_store(folder / "train.h5", train)
    write_store(folder / "val.h5", val)
    return {"model": model, "train": train, "val": val, "folder": folder}


def project_skeleton(tmp_path: Path) -> Path:
    """``tmp_path/project``: the project's configuration (without conf/local) with the real package linked in."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "pipelines").symlink_to(ROOT / "pipelines")
    return project


def project_copy(tmp_path: Path, inputs_folder: Path, **al: Any) -> Path:
    """:func:`project_skeleton` with the tiny parameters in conf/local (``al`` updates the active-learning block) and
    the inputs of ``tiny_inputs`` where the catalog reads them."""
    project = project_skeleton(tmp_path)
    local = {"model_config": MODEL_CONFIG, "physics_config": PHYSICS, "training_config": TRAINING, **BLOCKS,
             "train_options": {"num_threads": 1}, "active_learning_options": {**AL, **al}}  # fmt: skip
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters_tiny.yml").write_text(yaml.safe_dump(local), encoding="utf-8")
    data = project / "data"
    (data / "05_model_input").mkdir(parents=True)
    (data / "06_models").mkdir()
    for name, dest in (("train.h5", "05_model_input"), ("val.h5", "05_model_input"), ("model.pt", "06_models")):
        shutil.copy(inputs_folder / name, data / dest / name)
    return project
