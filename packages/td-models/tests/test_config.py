"""Configuration blocks: the user guide's JSON loads, bad values are refused by name, presets resolve."""

from __future__ import annotations

import json

import pytest

from td_models.config import (
    TOPO_CLASSES,
    ExperimentConfig,
    ModelConfig,
    PhysicsConfig,
    TrainingConfig,
    load_config,
    save_config,
    topo_class_index,
)
from td_models.exceptions import ConfigError

USER_GUIDE_JSON = {
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
}


def test_user_guide_configuration_loads_with_its_values():
    cfg = ExperimentConfig.from_dict(USER_GUIDE_JSON)
    assert cfg.model_config.hidden_dim == 512 and cfg.model_config.num_layers == 12
    assert cfg.physics_config.band_gap_range == (0.1, 0.5)
    assert cfg.physics_config.topo_class_index == TOPO_CLASSES.index("z2_ti")
    assert cfg.training_config.warmup_epochs == 50
    # the guide's phases: 1-200 at 1e-4, 201-600 at 5e-5, 601-1000 at 1e-5
    assert [cfg.training_config.phase_at(e).learning_rate for e in (1, 200, 201, 600, 601, 1000)] == [
        1e-4,
        1e-4,
        5e-5,
        5e-5,
        1e-5,
        1e-5,
    ]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_and_load_round_trip(tmp_path, suffix):
    cfg = ExperimentConfig.preset("cpu-demo")
    path = save_config(cfg, tmp_path / f"training_config{suffix}")
    assert load_config(path) == cfg
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind


@pytest.mark.parametrize(
    ("block", "key", "value", "fragment"),
    [
        ("model_config", "hidden_dim", 100, "divisible by num_heads"),
        ("model_config", "num_layers", 0, "num_layers must be an integer >= 1, got 0"),
        ("model_config", "num_topo_classes", 3, "num_topo_classes must be 4"),
        ("model_config", "species_process", "gaussian", "species_process"),
        ("model_config", "species_schedule", "linear", "species_schedule"),
        ("model_config", "pair_values", "yes", "pair_values must be true or false, got 'yes'"),
        ("model_config", "coord_vectors", "yes", "coord_vectors must be true or false, got 'yes'"),
        ("model_config", "pair_distances", "bohr", "pair_distances must be 'angstrom' or 'normalised', got 'bohr'"),
        ("model_config", "image_cutoff", 0, "image_cutoff must be null or a finite number > 0 (Angstrom), got 0"),
        ("model_config", "image_cutoff", "3", "image_cutoff must be null or a finite number > 0 (Angstrom), got '3'"),
        ("physics_config", "band_gap_range", [0.5, 0.1], "low <= high"),
        ("physics_config", "band_gap_range", [0.1], "two numbers"),
        ("physics_config", "topological_class", "axion", "topological_class must be one of"),
        ("physics_config", "constraint_weight", -1.0, "constraint_weight must be >= 0"),
        ("training_config", "batch_size", 0, "batch_size must be an integer >= 1, got 0"),
        ("training_config", "learning_rate", float("nan"), "learning_rate must be > 0"),
        ("training_config", "mixed_precision", "fp8", "mixed_precision"),
        ("training_config", "batch_size", True, "batch_size"),
    ],
)
def test_bad_values_name_the_rule_and_the_value(block, key, value, fragment):
    data = json.loads(json.dumps(USER_GUIDE_JSON))
    data[block][key] = value
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ExperimentConfig.from_dict(data)


def test_image_cutoff_needs_angstrom_pair_distances():
    assert ModelConfig(image_cutoff=3.0).image_cutoff == 3.0 and ModelConfig().image_cutoff is None
    with pytest.raises(ConfigError, match="image_cutoff needs pair_distances 'angstrom' .*, got 'normalised'"):
        ModelConfig(pair_distances="normalised", image_cutoff=3.0)


def test_unknown_keys_and_blocks_are_refused():
    with pytest.raises(ConfigError, match="unknown keys \\['hiden_dim'\\]"):
        ExperimentConfig.from_dict({"model_config": {"hiden_dim": 8}})
    with pytest.raises(ConfigError, match="unknown blocks"):
        ExperimentConfig.from_dict({"data_config": {}})


def test_phases_must_start_at_one_and_increase():
    with pytest.raises(ConfigError, match="must start at epoch 1"):
        TrainingConfig(phases=({"name": "a", "start_epoch": 5, "learning_rate": 1e-4},))
    with pytest.raises(ConfigError, match="strictly increasing"):
        TrainingConfig(
            phases=(
                {"name": "a", "start_epoch": 1, "learning_rate": 1e-4},
                {"name": "b", "start_epoch": 1, "learning_rate": 1e-5},
            )
        )


def test_class_names_users_type():
    assert topo_class_index("TI") == topo_class_index("z2_ti") == 1
    assert topo_class_index("Chern") == 2 and topo_class_index("semimetal") == 3
    assert PhysicsConfig(topological_class="trivial").topo_class_index == 0
    with pytest.raises(ConfigError, match="index must be in 0..3, got 7"):
        topo_class_index(7)


def test_presets_exist_and_unknown_preset_is_named():
    assert set(ExperimentConfig.preset_names()) == {"cpu-demo", "small", "medium", "large"}
    assert ModelConfig.preset("cpu-demo").hidden_dim < ModelConfig.preset("small").hidden_dim
    with pytest.raises(ConfigError, match="preset must be one of .* got 'huge'"):
        ExperimentConfig.preset("huge")


def test_species_schedule_reaches_the_species_process():
    """null keeps the kind's default (jsd for absorbing); cosine keeps more species unmasked at mid times."""
    from td_models import TopologicalDiffusionModel

    small = {"hidden_dim": 16, "num_layers": 1, "num_heads": 2, "num_steps": 100}
    default = TopologicalDiffusionModel(ModelConfig(**small)).species_process
    cosine = TopologicalDiffusionModel(ModelConfig(**small, species_schedule="cosine")).species_process
    assert (default.schedule, cosine.schedule) == ("jsd", "cosine")
    assert float(cosine.alpha_bars[50]) > float(default.alpha_bars[50]) == 0.5
