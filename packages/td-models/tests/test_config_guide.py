"""The user guide's other blocks (checkpoint_config, scheduler_config) are real aliases; no setting is ignored."""

from __future__ import annotations

import copy
import json
import logging
import math

import numpy as np
import pytest
import torch

from td_models.batch import crystal_item
from td_models.config import (
    GUIDE_ALIASES,
    ExperimentConfig,
    PhysicsConfig,
    TrainingConfig,
    config_from_checkpoint,
    load_config,
)
from td_models.exceptions import ConfigError
from td_models.training import Trainer, list_checkpoints, read_metrics

GUIDE = {
    "model_config": {"num_species": 100, "hidden_dim": 512, "num_topo_classes": 4, "num_layers": 12, "num_heads": 8},
    "physics_config": {
        "topological_class": "TI",
        "band_gap_range": [0.1, 0.5],
        "target_chern_number": 1,
        "constraint_weight": 2.0,
    },
    "training_config": {
        "batch_size": 32,
        "learning_rate": 1e-4,
        "max_epochs": 1000,
        "warmup_epochs": 50,
        "gradient_clipping": 1.0,
    },
    # pasted from the guide's "Monitoring and Checkpointing" and "Convergence Issues" sections
    "checkpoint_config": {"checkpoint_interval": 10, "keep_n_checkpoints": 5, "checkpoint_dir": "/scratch/checkpoints"},
    "scheduler_config": {"type": "cosine_annealing", "T_max": 1000, "eta_min": 1e-6},
}


def test_the_guide_blocks_load_as_aliases_of_training_config(tmp_path):
    path = tmp_path / "training_config.json"
    path.write_text(json.dumps(GUIDE))
    cfg = load_config(path)
    tc = cfg.training_config
    assert (tc.checkpoint_every, tc.keep_checkpoints, tc.checkpoint_dir) == (10, 5, "/scratch/checkpoints")
    assert (tc.scheduler, tc.cosine_period_epochs, tc.min_learning_rate) == ("cosine", 1000, 1e-6)
    assert tc.learning_rate == 1e-4
    written = cfg.to_dict()
    assert written["physics_config"]["stability_threshold"] is None  # not in the guide block above: no filter
    assert set(written) == {"model_config", "physics_config", "training_config"}  # canonical names only
    assert ExperimentConfig.from_dict(written) == cfg
    assert {target for target, _ in GUIDE_ALIASES.values()} <= set(written["training_config"])


@pytest.mark.parametrize(
    ("alias", "canonical", "alias_value", "canonical_value"),
    [
        (("checkpoint_config", "checkpoint_interval"), "checkpoint_every", 10, 5),
        (("checkpoint_config", "keep_n_checkpoints"), "keep_checkpoints", 5, 2),
        (("checkpoint_config", "checkpoint_dir"), "checkpoint_dir", "/scratch/a", "/scratch/b"),
        (("scheduler_config", "eta_min"), "min_learning_rate", 1e-6, 1e-5),
        (("scheduler_config", "T_max"), "cosine_period_epochs", 1000, 500),
        (("scheduler_config", "type"), "scheduler", "cosine_annealing", "phases"),
    ],
)
def test_conflicting_values_under_both_names_are_refused_naming_both(alias, canonical, alias_value, canonical_value):
    data = {"scheduler_config": {"type": "cosine_annealing"}, alias[0]: {alias[1]: alias_value}}
    if alias[0] == "scheduler_config" and alias[1] != "type":
        data["scheduler_config"] = {"type": "cosine_annealing", alias[1]: alias_value}
    data["training_config"] = {canonical: canonical_value}
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    message = str(info.value)
    assert f"{alias[0]}.{alias[1]}" in message and f"training_config.{canonical}" in message and "conflict" in message
    data["training_config"] = {canonical: alias_value if alias[1] != "type" else "cosine"}  # the same value: fine
    ExperimentConfig.from_dict(data)


def test_alias_blocks_refuse_unknown_keys_and_types_and_dangling_cosine_settings():
    with pytest.raises(ConfigError, match=r"checkpoint_config has unknown keys \['every'\]"):
        ExperimentConfig.from_dict({"checkpoint_config": {"every": 3}})
    with pytest.raises(ConfigError, match="scheduler_config.type must be one of .* got 'step'"):
        ExperimentConfig.from_dict({"scheduler_config": {"type": "step"}})
    with pytest.raises(ConfigError, match=r"scheduler_config \['T_max'\] apply to type 'cosine_annealing'"):
        ExperimentConfig.from_dict({"scheduler_config": {"T_max": 10}})
    with pytest.raises(ConfigError, match="min_learning_rate applies to scheduler 'cosine' only"):
        TrainingConfig(min_learning_rate=1e-5)
    with pytest.raises(ConfigError, match="cosine_period_epochs applies to scheduler 'cosine' only"):
        TrainingConfig(cosine_period_epochs=10)


@pytest.mark.parametrize("value", [0.1, 0.2, 0, None])  # the guide's block, its troubleshooting advice, 0, off
def test_stability_threshold_loads_and_is_kept_in_the_checkpoint(tmp_path, value):
    data = copy.deepcopy(GUIDE)
    data["physics_config"]["stability_threshold"] = value
    path = tmp_path / "training_config.json"
    path.write_text(json.dumps(data))
    cfg = load_config(path)
    assert cfg.physics_config.stability_threshold == value
    written = cfg.to_dict()
    assert written["physics_config"]["stability_threshold"] == value
    assert config_from_checkpoint(written) == cfg


@pytest.mark.parametrize("value", [-0.1, "0.1", True, float("nan"), [0.1]])
def test_stability_threshold_refuses_negative_and_non_numbers_naming_rule_and_value(value):
    with pytest.raises(ConfigError) as info:
        PhysicsConfig(stability_threshold=value)
    assert "physics_config.stability_threshold must be a number >= 0" in str(info.value)
    assert repr(value) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_checkpoints_of_older_versions_load_with_or_without_the_key():
    saved = ExperimentConfig.from_dict({}).to_dict()
    older = {**saved, "physics_config": {**saved["physics_config"], "stability_threshold": 0.1}}
    assert config_from_checkpoint(older).physics_config.stability_threshold == 0.1
    refused_era = {**saved, "physics_config": {k: v for k, v in saved["physics_config"].items()
                                               if k != "stability_threshold"}}  # fmt: skip
    assert config_from_checkpoint(refused_era) == ExperimentConfig.from_dict({})


def test_learning_rate_is_never_ignored():
    # given alone: the guide's three phases keep their ratios at the new rate
    tc = TrainingConfig(learning_rate=3e-4)
    assert [p.learning_rate for p in tc.phases] == pytest.approx([3e-4, 1.5e-4, 3e-5])
    # given with phases: the phases rule, and a different rate is refused naming both
    phases = [{"name": "a", "start_epoch": 1, "learning_rate": 1e-3}]
    assert TrainingConfig(phases=phases).learning_rate == 1e-3
    with pytest.raises(ConfigError, match=r"learning_rate \(0.0003\) and training_config.phases\[0\].learning_rate"):
        TrainingConfig(learning_rate=3e-4, phases=phases)
    # presets stay consistent under an override of either
    demo = ExperimentConfig.preset("cpu-demo", training_config={"learning_rate": 2e-3}).training_config
    assert [p.learning_rate for p in demo.phases] == pytest.approx([2e-3, 1e-3, 2e-4])
    demo = ExperimentConfig.preset("cpu-demo", training_config={"phases": phases}).training_config
    assert demo.learning_rate == 1e-3


# ---------------------------------------------------------------------------------------------- in training
def _items(n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        crystal_item(rng.uniform(3.0, 5.0) * np.eye(3), rng.uniform(0, 1, (2, 3)), rng.integers(1, 20, 2))
        for _ in range(n)
    ]


def _guide_config(max_epochs: int, **changes) -> ExperimentConfig:
    data = copy.deepcopy(GUIDE)
    data["model_config"] = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "num_steps": 20, "max_atoms": 4}
    data["training_config"] = {
        "batch_size": 4,
        "learning_rate": 1e-3,
        "max_epochs": max_epochs,
        "warmup_epochs": 0,
        "ema_decay": 0.0,
    }
    for block, values in changes.items():
        data[block] = values
    return ExperimentConfig.from_dict(data)


def test_cosine_annealing_from_the_guide_sets_the_learning_rate_of_each_epoch(tmp_path):
    torch.set_num_threads(1)
    t_max, eta_min, peak = 4, 1e-5, 1e-3
    config = _guide_config(
        6,
        scheduler_config={"type": "cosine_annealing", "T_max": t_max, "eta_min": eta_min},
        checkpoint_config={"checkpoint_interval": 100, "checkpoint_dir": "ckpt"},
    )
    trainer = Trainer(config, _items(8), output_dir=tmp_path, progress_bar=False, tensorboard=False)
    trainer.fit()
    rows = read_metrics(tmp_path / "metrics.csv")
    first_lr = {}
    for row in rows:
        if row["kind"] == "train":
            first_lr.setdefault(row["epoch"], row["lr"])
    for epoch in range(1, 7):  # the first step of epoch e runs at T_cur = e - 1 (PyTorch's closed form), then eta_min
        t_cur = min(epoch - 1, t_max)
        expected = eta_min + (peak - eta_min) * (1 + math.cos(math.pi * t_cur / t_max)) / 2
        assert first_lr[epoch] == pytest.approx(expected, rel=1e-9), epoch
    assert first_lr[5] == pytest.approx(eta_min) and first_lr[6] == pytest.approx(eta_min)


def test_checkpoint_interval_retention_and_folder_from_the_guide_change_what_is_written(tmp_path):
    torch.set_num_threads(1)
    config = _guide_config(
        6, checkpoint_config={"checkpoint_interval": 2, "keep_n_checkpoints": 2, "checkpoint_dir": "my_ckpts"}
    )
    trainer = Trainer(config, _items(8), output_dir=tmp_path, progress_bar=False, tensorboard=False)
    result = trainer.fit()
    written = [p.name for p in list_checkpoints(tmp_path / "my_ckpts")]
    assert written == ["checkpoint_epoch_0004.pt", "checkpoint_epoch_0006.pt"]  # every 2 epochs, newest 2 kept
    assert not (tmp_path / "checkpoints").exists() and result.last_checkpoint.parent == tmp_path / "my_ckpts"
    # resume "latest" looks in the configured folder; the guide's unpadded name is found too
    again = Trainer(
        _guide_config(7, checkpoint_config={"checkpoint_interval": 2, "checkpoint_dir": "my_ckpts"}),
        _items(8),
        output_dir=tmp_path,
        progress_bar=False,
        tensorboard=False,
    )
    assert again.resume("latest").name == "checkpoint_epoch_0006.pt"
    assert again.resume(tmp_path / "my_ckpts" / "checkpoint_epoch_4.pt").name == "checkpoint_epoch_0004.pt"


def test_a_preset_with_a_shorter_chain_samples_the_whole_chain_by_default():
    config = ExperimentConfig.preset("cpu-demo", model_config={"num_steps": 50})
    assert config.model_config.sampling_steps is None  # the preset's 100 would exceed the 50-step chain
    assert ExperimentConfig.preset("cpu-demo", model_config={"num_steps": 500}).model_config.sampling_steps == 100


def test_sampling_says_it_does_not_apply_the_stability_threshold(caplog):
    from td_models.model import TopologicalDiffusionModel

    tiny = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "num_steps": 5, "sampling_steps": None}
    model = TopologicalDiffusionModel(
        ExperimentConfig.from_dict({"model_config": tiny, "physics_config": {"stability_threshold": 0.1}})
    )
    with caplog.at_level(logging.INFO, logger="td_models.sampling"):
        assert len(model.sample(1, steps=1, seed=0)) == 1
    assert "stability_threshold = 0.1 eV/atom is not applied by sampling" in caplog.text
    assert "relax pipeline" in caplog.text
