"""Configuration users already know: ``model_config``, ``physics_config``, ``training_config``.

The three blocks mirror the JSON of the user guide::

    {"model_config":    {"num_species": 100, "hidden_dim": 512, "num_topo_classes": 4,
                         "num_layers": 12, "num_heads": 8},
     "physics_config":  {"topological_class": "TI", "band_gap_range": [0.1, 0.5], "target_chern_number": 1,
                         "stability_threshold": 0.1, "constraint_weight": 2.0},
     "training_config": {"batch_size": 32, "learning_rate": 1e-4, "max_epochs": 1000, "warmup_epochs": 50,
                         "gradient_clipping": 1.0}}

Every other field has a documented default, so the user guide's file loads as it is. Values are
checked when a config is made (type, range, unknown keys) and a bad one raises
:class:`~td_models.exceptions.ConfigError` naming the field, the rule and the value.

>>> cfg = ExperimentConfig.preset("cpu-demo")
>>> cfg.model_config.hidden_dim, cfg.physics_config.topo_class_index
(64, 1)
>>> ExperimentConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from td_models.exceptions import ConfigError
from td_physics.classes import CLASS_ALIASES, TOPO_CLASSES
from td_physics.files import atomic_write
from td_physics.options import from_mapping

__all__ = [
    "TOPO_CLASSES",
    "ModelConfig",
    "PhysicsConfig",
    "TrainingConfig",
    "PhaseConfig",
    "ExperimentConfig",
    "topo_class_index",
    "load_config",
    "save_config",
]

log = logging.getLogger(__name__)


def topo_class_index(name: str | int) -> int:
    """Index (0..3) of a topological class given by name ("TI", "z2_ti", "chern", ...) or index."""
    if isinstance(name, bool):
        raise ConfigError(f"topological_class must be a class name or index 0..3, got {name!r}")
    if isinstance(name, int):
        if not 0 <= name < len(TOPO_CLASSES):
            raise ConfigError(f"topological_class index must be in 0..{len(TOPO_CLASSES) - 1}, got {name}")
        return name
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    if key not in CLASS_ALIASES:
        raise ConfigError(f"topological_class must be one of {sorted(CLASS_ALIASES)} (case-insensitive), got {name!r}")
    return CLASS_ALIASES[key]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """:class:`ConfigError` unless ``value`` is one of ``choices`` ("x must be 'a', 'b' or 'c', got ...")."""
    quoted = [repr(choice) for choice in choices]
    listed = " or ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else quoted[0]
    _check(value in choices, f"{name} must be {listed}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Block:
    """Shared behaviour: from_dict with unknown-key errors, to_dict, replace."""

    _block_name = "config"

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        return from_mapping(
            cls,
            data,
            lambda unknown, known: ConfigError(f"{cls._block_name} has unknown keys {unknown}; known keys are {known}"),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelConfig(_Block):
    """Architecture of the denoiser and the diffusion processes."""

    _block_name = "model_config"

    num_species: int = 100  # atomic numbers 1..num_species; index z-1, plus one mask token for D3PM
    hidden_dim: int = 512  # width of the transformer over atoms
    num_topo_classes: int = 4  # trivial, z2_ti, chern, semimetal_or_metal
    num_layers: int = 12  # transformer blocks
    num_heads: int = 8  # attention heads; hidden_dim must divide by it
    mlp_ratio: int = 4  # feed-forward width = mlp_ratio * hidden_dim
    num_frequencies: int = 8  # Fourier frequencies per axis of the periodic pair features
    num_rbf: int = 32  # Gaussian radial basis functions of the (wrapped, metric) pair distance
    dropout: float = 0.0
    max_atoms: int = 20  # largest cell the sampler draws when no atom count is given
    num_steps: int = 1000  # diffusion steps T (DiffCSP's default)
    sampling_steps: int | None = None  # reverse steps sample() takes by default; None = num_steps (full chain)
    lattice_schedule: str = "cosine"  # VP noise schedule of the lattice: "cosine" or "linear"
    sigma_min: float = 0.005  # wrapped-normal sigma range of fractional coordinates (DiffCSP)
    sigma_max: float = 0.5
    species_process: str = "absorbing"  # D3PM kind: "absorbing" or "uniform"
    # D3PM keep schedule: "jsd" (linear, the absorbing default) or "cosine" (species decided earlier in the reverse
    # chain, while the lattice is still forming; the uniform default); null: the kind's default
    species_schedule: str | None = None
    cond_drop_prob: float = 0.1  # each condition dropped independently in training (classifier-free guidance)
    lattice_loss_weight: float = 1.0
    coord_loss_weight: float = 1.0
    species_loss_weight: float = 1.0
    property_loss_weight: float = 1.0
    gradient_checkpointing: bool = False
    pair_values: bool = False  # pair state projected into every attention value (geometry in each layer's messages)
    # units of the pair distances and lattice-metric features the denoiser sees: "angstrom" (the physical cell) or
    # "normalised" (the cell scaled to about unit volume per crystal: blind to the atom count; files without the key)
    pair_distances: str = "angstrom"
    # coordinate score plus sum_j w_ij sin(2 pi (f_j - f_i)) / (2 pi): a pair "force" along each pair's direction
    coord_vectors: bool = False
    # null: pair distances of the minimum image only. A number (Angstrom, needs pair_distances "angstrom"): the pair
    # input also sums the distance basis over every periodic image within it (an atom's own images included), and
    # coord_vectors then sums the pair vectors over those images
    image_cutoff: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_species", "hidden_dim", "num_topo_classes", "num_layers", "num_heads", "mlp_ratio"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"model_config.{name} must be an integer >= 1, got {value!r}")
        for name in ("num_frequencies", "num_rbf", "max_atoms", "num_steps"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"model_config.{name} must be an integer >= 1, got {value!r}")
        _check(
            self.sampling_steps is None
            or (_is_int(self.sampling_steps) and 1 <= self.sampling_steps <= self.num_steps),
            f"model_config.sampling_steps must be null or an integer in 1..num_steps ({self.num_steps}), "
            f"got {self.sampling_steps!r}",
        )
        _check(
            self.num_species <= 118,
            f"model_config.num_species must be <= 118 (elements known), got {self.num_species}",
        )
        _check(
            self.hidden_dim % self.num_heads == 0,
            f"model_config.hidden_dim must be divisible by num_heads "
            f"({self.hidden_dim} % {self.num_heads} = {self.hidden_dim % self.num_heads})",
        )
        _check(
            self.num_topo_classes == len(TOPO_CLASSES),
            f"model_config.num_topo_classes must be {len(TOPO_CLASSES)} ({', '.join(TOPO_CLASSES)}), "
            f"got {self.num_topo_classes!r}",
        )
        _check(
            _is_number(self.dropout) and 0.0 <= self.dropout < 1.0,
            f"model_config.dropout must be in [0, 1), got {self.dropout!r}",
        )
        _check_choice("model_config.lattice_schedule", self.lattice_schedule, ("cosine", "linear"))
        _check_choice("model_config.species_process", self.species_process, ("absorbing", "uniform"))
        if self.species_schedule is not None:
            _check_choice("model_config.species_schedule", self.species_schedule, ("jsd", "cosine"))
        _check(
            _is_number(self.sigma_min) and _is_number(self.sigma_max) and 0 < self.sigma_min < self.sigma_max,
            f"model_config.sigma_min and sigma_max must satisfy 0 < sigma_min < sigma_max, "
            f"got {self.sigma_min!r}, {self.sigma_max!r}",
        )
        _check(
            _is_number(self.cond_drop_prob) and 0.0 <= self.cond_drop_prob <= 1.0,
            f"model_config.cond_drop_prob must be in [0, 1], got {self.cond_drop_prob!r}",
        )
        for name in ("lattice_loss_weight", "coord_loss_weight", "species_loss_weight", "property_loss_weight"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, f"model_config.{name} must be a number >= 0, got {value!r}")
        _check(
            isinstance(self.gradient_checkpointing, bool),
            f"model_config.gradient_checkpointing must be true or false, got {self.gradient_checkpointing!r}",
        )
        _check(
            isinstance(self.pair_values, bool),
            f"model_config.pair_values must be true or false, got {self.pair_values!r}",
        )
        _check_choice("model_config.pair_distances", self.pair_distances, ("angstrom", "normalised"))
        _check(
            isinstance(self.coord_vectors, bool),
            f"model_config.coord_vectors must be true or false, got {self.coord_vectors!r}",
        )
        _check(
            self.image_cutoff is None
            or (_is_number(self.image_cutoff) and math.isfinite(self.image_cutoff) and self.image_cutoff > 0),
            f"model_config.image_cutoff must be null or a finite number > 0 (Angstrom), got {self.image_cutoff!r}",
        )
        _check(
            self.image_cutoff is None or self.pair_distances == "angstrom",
            f"model_config.image_cutoff needs pair_distances 'angstrom' (it is in Angstrom), "
            f"got {self.pair_distances!r}",
        )


def _check_stability_threshold(value: Any) -> None:
    _check(
        value is None or (_is_number(value) and value >= 0),
        f"physics_config.stability_threshold must be a number >= 0 (eV/atom above the hull) or null, got {value!r}",
    )


def config_from_checkpoint(data: dict[str, Any]) -> ExperimentConfig:
    """The configuration stored in a checkpoint, read as :meth:`ExperimentConfig.from_dict` reads a user's.

    Checkpoints of older td-models versions hold ``stability_threshold: 0.1`` (the user guide's value,
    unused then), or no such key (while it was refused): both load, as the value they hold. Files from
    before ``model_config.pair_distances`` were trained on normalised distances and load as such.
    """
    if isinstance(data, dict) and isinstance(data.get("model_config"), dict):
        if "pair_distances" not in data["model_config"]:
            data = {**data, "model_config": {**data["model_config"], "pair_distances": "normalised"}}
    return ExperimentConfig.from_dict(data)


@dataclass(frozen=True)
class PhysicsConfig(_Block):
    """What to generate and which physics the training and sampling enforce."""

    _block_name = "physics_config"

    topological_class: str = "TI"  # target class: TI (z2_ti), trivial, chern, semimetal_or_metal
    band_gap_range: tuple[float, float] = (0.1, 0.5)  # eV; the sampler draws target gaps uniformly in it
    target_chern_number: int = 1  # Chern number sample(topo_class="chern") conditions on unless given one
    # eV/atom: candidates whose energy above the hull (CHGNet relaxation, td_data.relax) exceeds it, or
    # that have none, are not passed on to verification. Sampling does not apply it (nothing is relaxed
    # there): the Kedro `relax` pipeline does. None = no filter; the user guide's value is 0.1.
    stability_threshold: float | None = None
    constraint_weight: float = 2.0  # weight of the physics penalties in the loss and in guidance
    min_distance: float = 0.5  # Angstrom: interatomic distances below this are penalised (CDVAE's validity rule)
    volume_per_atom_range: tuple[float, float] = (5.0, 60.0)  # Angstrom^3: plausible density window
    guidance_scale: float = 2.0  # classifier-free guidance scale w (1 = plain conditional, 0 = unconditional)

    def __post_init__(self) -> None:
        topo_class_index(self.topological_class)  # raises ConfigError with the accepted names
        object.__setattr__(self, "band_gap_range", self._pair("band_gap_range", self.band_gap_range, 0.0))
        object.__setattr__(
            self, "volume_per_atom_range", self._pair("volume_per_atom_range", self.volume_per_atom_range, 1e-9)
        )
        _check(
            _is_int(self.target_chern_number) and abs(self.target_chern_number) <= 4,
            f"physics_config.target_chern_number must be an integer in [-4, 4], got {self.target_chern_number!r}",
        )
        _check_stability_threshold(self.stability_threshold)
        if self.stability_threshold is not None:
            object.__setattr__(self, "stability_threshold", float(self.stability_threshold))
        for name in ("constraint_weight", "min_distance", "guidance_scale"):
            value = getattr(self, name)
            _check(_is_number(value), f"physics_config.{name} must be a finite number, got {value!r}")
        for name in ("constraint_weight", "min_distance", "guidance_scale"):
            value = getattr(self, name)
            _check(value >= 0, f"physics_config.{name} must be >= 0, got {value!r}")

    @staticmethod
    def _pair(name: str, value: Any, lowest: float) -> tuple[float, float]:
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)
        _check(ok, f"physics_config.{name} must be two numbers [low, high], got {value!r}")
        low, high = float(value[0]), float(value[1])
        _check(lowest <= low <= high, f"physics_config.{name} must satisfy {lowest:g} <= low <= high, got {value!r}")
        return (low, high)

    @property
    def topo_class_index(self) -> int:
        """Index of the target class in :data:`TOPO_CLASSES`."""
        return topo_class_index(self.topological_class)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["band_gap_range"] = list(self.band_gap_range)
        data["volume_per_atom_range"] = list(self.volume_per_atom_range)
        return data


@dataclass(frozen=True)
class PhaseConfig(_Block):
    """One training phase: from ``start_epoch`` (1-based) on, at learning rate ``learning_rate``."""

    _block_name = "training_config.phases[]"

    name: str
    start_epoch: int
    learning_rate: float
    physics: bool = False  # physics penalties and property heads switched on
    conditioning: bool = True  # condition embeddings trained (dropped with cond_drop_prob)

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name, f"phase name must be a non-empty string, got {self.name!r}")
        _check(
            _is_int(self.start_epoch) and self.start_epoch >= 1,
            f"phase {self.name!r}: start_epoch must be an integer >= 1, got {self.start_epoch!r}",
        )
        _check(
            _is_number(self.learning_rate) and self.learning_rate > 0,
            f"phase {self.name!r}: learning_rate must be > 0, got {self.learning_rate!r}",
        )


def _default_phases() -> tuple[PhaseConfig, ...]:
    # The user guide's three phases: structure learning (1-200, 1e-4), physics integration
    # (201-600, 5e-5), fine-tuning (601-1000, 1e-5).
    return (
        PhaseConfig("structure_learning", 1, 1e-4, physics=False),
        PhaseConfig("physics_integration", 201, 5e-5, physics=True),
        PhaseConfig("fine_tuning", 601, 1e-5, physics=True),
    )


@dataclass(frozen=True)
class TrainingConfig(_Block):
    """Optimisation, schedule, checkpoints and precision."""

    _block_name = "training_config"

    batch_size: int = 32  # crystals per step per process
    # 0: batches of random sizes. k >= 2: crystals pooled k batches at a time, each pool sorted by atom count and cut
    # into batches, the batches shuffled (td_models.training.sampler): less padding in the dense denoiser
    bucket_batches: int = 0
    # scheduler "phases": the first phase's rate. Given without phases, the default phases are scaled to
    # it (1e-4, 5e-5, 1e-5 keep their ratios); given with phases it must equal phases[0].learning_rate.
    # None: taken from the phases. scheduler "cosine": the peak rate (None: 1e-4).
    learning_rate: float | None = None
    max_epochs: int = 1000
    warmup_epochs: int = 50  # linear warm-up from 0 to the phase rate
    gradient_clipping: float = 1.0  # max global gradient norm; 0 turns clipping off
    scheduler: str = "phases"  # "phases" (the three phases below) or "cosine" (annealing to min_learning_rate)
    min_learning_rate: float = 1e-6  # eta_min of cosine annealing (refused with scheduler "phases" unless default)
    cosine_period_epochs: int | None = None  # T_max of cosine annealing in epochs; None = max_epochs; then eta_min
    # With scheduler "cosine" the phases only switch physics and conditioning; their learning rates are unused.
    phases: tuple[PhaseConfig, ...] = field(default_factory=_default_phases)
    weight_decay: float = 0.0
    ema_decay: float = 0.999  # exponential moving average of the weights; 0 turns it off
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (fp16 with loss scaling)
    checkpoint_every: int = 10  # epochs between checkpoints (the user guide's checkpoint_interval)
    keep_checkpoints: int = 5  # newest K kept, 0 keeps all (the user guide's keep_n_checkpoints)
    checkpoint_dir: str | None = None  # None: output_dir/checkpoints; relative paths are under output_dir
    max_nonfinite_steps: int = 5  # this many non-finite losses in a row stop the run (0 never stops)
    seed: int = 0
    num_workers: int = 0  # data-loader workers

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs", "gradient_accumulation_steps", "checkpoint_every"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 1, f"training_config.{name} must be an integer >= 1, got {value!r}")
        _check(
            _is_int(self.bucket_batches) and (self.bucket_batches == 0 or self.bucket_batches >= 2),
            "training_config.bucket_batches must be 0 (off) or an integer >= 2 (a pool of one batch sorts nothing), "
            f"got {self.bucket_batches!r}",
        )
        for name in ("warmup_epochs", "keep_checkpoints", "max_nonfinite_steps", "seed", "num_workers"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 0, f"training_config.{name} must be an integer >= 0, got {value!r}")
        for name in ("learning_rate", "min_learning_rate"):
            value = getattr(self, name)
            if name == "learning_rate" and value is None:
                continue
            _check(_is_number(value) and value > 0, f"training_config.{name} must be > 0, got {value!r}")
        _check(
            self.cosine_period_epochs is None
            or (_is_int(self.cosine_period_epochs) and self.cosine_period_epochs >= 1),
            f"training_config.cosine_period_epochs must be null or an integer >= 1, got {self.cosine_period_epochs!r}",
        )
        _check(
            self.checkpoint_dir is None or (isinstance(self.checkpoint_dir, str) and self.checkpoint_dir.strip() != ""),
            f"training_config.checkpoint_dir must be null or a non-empty path, got {self.checkpoint_dir!r}",
        )
        for name in ("gradient_clipping", "weight_decay"):
            value = getattr(self, name)
            _check(_is_number(value) and value >= 0, f"training_config.{name} must be >= 0, got {value!r}")
        _check(
            _is_number(self.ema_decay) and 0.0 <= self.ema_decay < 1.0,
            f"training_config.ema_decay must be in [0, 1), got {self.ema_decay!r}",
        )
        _check_choice("training_config.scheduler", self.scheduler, ("phases", "cosine"))
        _check_choice("training_config.mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        phases = tuple(p if isinstance(p, PhaseConfig) else PhaseConfig.from_dict(p) for p in self.phases)
        _check(len(phases) >= 1, "training_config.phases must hold at least one phase, got none")
        _check(phases[0].start_epoch == 1, f"the first phase must start at epoch 1, got {phases[0].start_epoch}")
        starts = [p.start_epoch for p in phases]
        _check(
            starts == sorted(set(starts)),
            f"training_config.phases must have strictly increasing start_epoch, got {starts}",
        )
        if self.scheduler == "phases":
            default_rate = _default_phases()[0].learning_rate
            if self.learning_rate is not None and phases == _default_phases():
                # the guide's three phases, scaled to the given rate (the first one equals it exactly)
                phases = tuple(
                    p.replace(learning_rate=self.learning_rate * (p.learning_rate / default_rate)) for p in phases
                )
            elif self.learning_rate is not None and not math.isclose(self.learning_rate, phases[0].learning_rate):
                raise ConfigError(
                    f"training_config.learning_rate ({self.learning_rate!r}) and training_config.phases[0]"
                    f".learning_rate ({phases[0].learning_rate!r}) disagree; with scheduler 'phases' the phases set "
                    "the rates: give one of them, or the same value"
                )
            object.__setattr__(self, "learning_rate", phases[0].learning_rate)
            for name, default in (("min_learning_rate", 1e-6), ("cosine_period_epochs", None)):
                _check(
                    getattr(self, name) == default,
                    f"training_config.{name} applies to scheduler 'cosine' only, got {getattr(self, name)!r} with "
                    "scheduler 'phases' (set scheduler: cosine, or scheduler_config.type: cosine_annealing)",
                )
        elif self.learning_rate is None:
            object.__setattr__(self, "learning_rate", _default_phases()[0].learning_rate)
        object.__setattr__(self, "phases", phases)

    def phase_at(self, epoch: int) -> PhaseConfig:
        """The phase active at a 1-based epoch."""
        active = self.phases[0]
        for phase in self.phases:
            if phase.start_epoch <= epoch:
                active = phase
        return active

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["phases"] = [p.to_dict() for p in self.phases]
        return data


# Presets. Parameter counts of the denoiser are tested on torch's meta device (tests/test_config.py).
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Small enough to train and sample on a laptop CPU: the main job's default (timings: benchmarks/README.md).
    "cpu-demo": {
        # 100 strided reverse steps by default (benchmarks/sampling_throughput.py times them against the full
        # chain); sample(steps=1000) runs the full chain.
        "model_config": {"hidden_dim": 64, "num_layers": 2, "num_heads": 4, "num_steps": 1000, "sampling_steps": 100},
        "training_config": {
            "batch_size": 32,
            "learning_rate": 1e-3,
            "max_epochs": 30,
            "warmup_epochs": 2,
            "ema_decay": 0.99,
            "checkpoint_every": 5,
            "keep_checkpoints": 2,
            "phases": [
                {"name": "structure_learning", "start_epoch": 1, "learning_rate": 1e-3, "physics": False},
                {"name": "physics_integration", "start_epoch": 11, "learning_rate": 5e-4, "physics": True},
                {"name": "fine_tuning", "start_epoch": 21, "learning_rate": 1e-4, "physics": True},
            ],
        },
    },
    # About 128M parameters (the user guide's "Small").
    "small": {"model_config": {"hidden_dim": 768, "num_layers": 12, "num_heads": 12}},
    # About 512M parameters ("Medium").
    "medium": {"model_config": {"hidden_dim": 1280, "num_layers": 16, "num_heads": 16}},
    # About 2B parameters ("Large").
    "large": {"model_config": {"hidden_dim": 2048, "num_layers": 26, "num_heads": 16}},
}


#: The user guide's other configuration blocks, as aliases of ``training_config`` fields: the one
#: mapping from (block, key) to (canonical field, value translation). ``checkpoint_config`` and
#: ``scheduler_config`` may stand beside the three blocks in a configuration file; their values are
#: moved into ``training_config`` (and :meth:`ExperimentConfig.to_dict` writes only the canonical names).
GUIDE_ALIASES: dict[tuple[str, str], tuple[str, Any]] = {
    ("checkpoint_config", "checkpoint_interval"): ("checkpoint_every", None),
    ("checkpoint_config", "keep_n_checkpoints"): ("keep_checkpoints", None),
    ("checkpoint_config", "checkpoint_dir"): ("checkpoint_dir", None),
    ("scheduler_config", "type"): ("scheduler", {"cosine_annealing": "cosine", "cosine": "cosine", "phases": "phases"}),
    ("scheduler_config", "T_max"): ("cosine_period_epochs", None),
    ("scheduler_config", "eta_min"): ("min_learning_rate", None),
}
ALIAS_BLOCKS = tuple(sorted({block for block, _ in GUIDE_ALIASES}))


def _apply_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the alias blocks folded into ``training_config`` (conflicting values refused)."""
    training = dict(data.get("training_config") or {})
    given: dict[str, str] = {}  # canonical field -> the alias that set it
    for block in ALIAS_BLOCKS:
        if block not in data:
            continue
        values = data[block]
        if not isinstance(values, dict):
            raise ConfigError(f"{block} must be a mapping, got {type(values).__name__}")
        known = sorted(key for b, key in GUIDE_ALIASES if b == block)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{block} has unknown keys {unknown}; known keys are {known}")
        for key, value in values.items():
            target, translation = GUIDE_ALIASES[(block, key)]
            if translation is not None:
                if value not in translation:
                    raise ConfigError(f"{block}.{key} must be one of {sorted(translation)}, got {value!r}")
                value = translation[value]
            if target in training and training[target] != value:
                raise ConfigError(
                    f"{block}.{key} = {values[key]!r} and training_config.{target} = {training[target]!r} "
                    f"conflict (the first is the user guide's name for the second): give one, or the same value"
                )
            training[target] = value
            given[target] = f"{block}.{key}"
    if "scheduler_config" in data and training.get("scheduler", "phases") != "cosine":
        extra = sorted(k for k in data["scheduler_config"] if k != "type")
        if extra:
            raise ConfigError(
                f"scheduler_config {extra} apply to type 'cosine_annealing', but the scheduler is "
                f'{training.get("scheduler", "phases")!r}: add "type": "cosine_annealing"'
            )
    out = {k: v for k, v in data.items() if k not in ALIAS_BLOCKS}
    if given or "training_config" in data:
        out["training_config"] = training
    return out


@dataclass(frozen=True)
class ExperimentConfig:
    """The three blocks together, as written in ``training_config.json``.

    A file may also hold the user guide's ``checkpoint_config`` (``checkpoint_interval``,
    ``keep_n_checkpoints``, ``checkpoint_dir``) and ``scheduler_config`` (``type: cosine_annealing``,
    ``T_max`` in epochs, ``eta_min``) blocks: :data:`GUIDE_ALIASES` maps them onto ``training_config``.

    >>> cfg = ExperimentConfig.from_dict({"scheduler_config": {"type": "cosine_annealing", "T_max": 100,
    ...                                   "eta_min": 1e-6}, "checkpoint_config": {"checkpoint_interval": 10}})
    >>> tc = cfg.training_config
    >>> tc.scheduler, tc.cosine_period_epochs, tc.min_learning_rate, tc.checkpoint_every
    ('cosine', 100, 1e-06, 10)
    """

    model_config: ModelConfig = field(default_factory=ModelConfig)
    physics_config: PhysicsConfig = field(default_factory=PhysicsConfig)
    training_config: TrainingConfig = field(default_factory=TrainingConfig)

    BLOCKS = ("model_config", "physics_config", "training_config")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a configuration must be a mapping of blocks {cls.BLOCKS}, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.BLOCKS) - set(ALIAS_BLOCKS))
        if unknown:
            raise ConfigError(
                f"configuration has unknown blocks {unknown}; known blocks are {list(cls.BLOCKS)} "
                f"and the user guide's {list(ALIAS_BLOCKS)}"
            )
        for name in cls.BLOCKS:
            if name in data and not isinstance(data[name], dict):
                raise ConfigError(f"{name} must be a mapping, got {type(data[name]).__name__}")
        data = _apply_aliases(data)
        return cls(
            model_config=ModelConfig.from_dict(data.get("model_config")),
            physics_config=PhysicsConfig.from_dict(data.get("physics_config")),
            training_config=TrainingConfig.from_dict(data.get("training_config")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_dict() for name in self.BLOCKS}

    @classmethod
    def preset(cls, name: str, **overrides: dict[str, Any]) -> ExperimentConfig:
        """A named preset (``cpu-demo``, ``small``, ``medium``, ``large``), with per-block overrides.

        >>> ExperimentConfig.preset("small", training_config={"batch_size": 8}).training_config.batch_size
        8
        """
        if name not in _PRESETS:
            raise ConfigError(f"preset must be one of {sorted(_PRESETS)}, got {name!r}")
        data: dict[str, dict[str, Any]] = {block: dict(values) for block, values in _PRESETS[name].items()}
        for block, values in overrides.items():
            if block not in cls.BLOCKS:
                raise ConfigError(f"preset override block must be one of {list(cls.BLOCKS)}, got {block!r}")
            base = data.setdefault(block, {})
            if block == "model_config" and "num_steps" in values and "sampling_steps" not in values:
                if (base.get("sampling_steps") or 0) > values["num_steps"]:  # a shorter chain than the preset's
                    base["sampling_steps"] = None  # default: the whole (shorter) chain
            if block == "training_config":  # the preset's rate and phases stay consistent under an override
                if "phases" in values and "learning_rate" not in values:
                    base.pop("learning_rate", None)
                elif "learning_rate" in values and "phases" not in values and "phases" in base:
                    factor = values["learning_rate"] / base["learning_rate"]
                    base["phases"] = [{**p, "learning_rate": p["learning_rate"] * factor} for p in base["phases"]]
            base.update(values)
        return cls.from_dict(data)

    @staticmethod
    def preset_names() -> tuple[str, ...]:
        return tuple(_PRESETS)


def _preset_model(name: str) -> ModelConfig:
    return ExperimentConfig.preset(name).model_config


ModelConfig.preset = staticmethod(_preset_model)  # type: ignore[attr-defined]
ModelConfig.preset.__doc__ = "The model block of a named preset (``cpu-demo``, ``small``, ``medium``, ``large``)."


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read a JSON or YAML configuration file (chosen by suffix) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file must exist, got {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"configuration file must end in .json, .yml or .yaml, got {path.name!r}")
    except (json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"configuration file {str(path)!r} is not valid {suffix[1:].upper()}: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise ConfigError(f"configuration file {str(path)!r} is not valid YAML: {exc}") from exc
    return ExperimentConfig.from_dict(data)


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> Path:
    """Write a configuration as JSON or YAML (by suffix), atomically (temporary file, fsync, rename), umask mode."""
    path = Path(path)
    data = config.to_dict()
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    elif suffix in (".yml", ".yaml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        raise ConfigError(f"configuration file must end in .json, .yml or .yaml, got {path.name!r}")
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
