"""Configuration shared by more than one pipeline (or by a pipeline and the project's hooks and datasets).

A pipeline imports its configuration from here or from its own ``nodes.py``, never from another pipeline:
``data_config`` (ingest, and the ``user_crystals`` dataset that reads the user's files), the labeller's
elements (ingest and evaluate) and ``label_options`` (label, and evaluate and report, which run the labeller
with the same options), the train node's parameter inputs (train, and the benchmarks' train stages) and the
parameter blocks of earlier releases that every run refuses (the project's hooks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pipelines._options import OptionsBlock, is_number
from pipelines.exceptions import ParameterError
from td_physics.structure import supported_elements

if TYPE_CHECKING:
    from td_data.filters import QualityFilter

__all__ = [
    "SOURCES",
    "LABELLER_ELEMENTS",
    "TRAIN_PARAMS",
    "RETIRED_BLOCKS",
    "retired_block_message",
    "QualityFilterOptions",
    "DataConfig",
    "LabelConfig",
]

SOURCES = ("synthetic", "cif_folder", "mp_export", "benchmark_csv", "store")

#: The train node's parameter inputs (``pipelines.train.nodes.train_on_items`` keyword -> dataset), the same in
#: the train pipeline and in the benchmarks' train stages, which take the blocks from their environment.
TRAIN_PARAMS = {
    "model_config": "params:model_config",
    "physics_config": "params:physics_config",
    "training_config": "params:training_config",
    "train_options": "params:train_options",
}

#: Parameter blocks of earlier releases, with where each key went (a run that still sets one is refused).
RETIRED_BLOCKS = {
    "benchmark_training": {
        "preset": "model_config (hidden_dim, num_layers, num_heads of td_models.ExperimentConfig.preset) and "
        "training_config",
        "model": "model_config",
        "budget_minutes": "train_options.budget_minutes",
        "schedule": "training_config.scheduler (budget_cosine: scheduler cosine, one phase, and "
        "train_options.fit_epochs_to_budget true)",
        "physics": "training_config.phases[].physics",
        "max_epochs": "training_config.max_epochs",
        "batch_size": "training_config.batch_size",
        "learning_rate": "training_config.learning_rate",
        "warmup_epochs": "training_config.warmup_epochs",
        "ema_decay": "training_config.ema_decay",
        "seed": "training_config.seed",
        "device": "train_options.device (and training_config.mixed_precision bf16 on CUDA)",
        "num_threads": "train_options.num_threads",
        "progress_bar": "train_options.progress_bar",
        "run_dir": "train_options.run_dir",
        "n_samples": "generate_options.n_candidates",
        "steps": "generate_options.steps",
        "corrector_steps": "generate_options.corrector_steps",
        "composition_rules": "generate_options.element_counts and generate_options.charge_balance",
        "sample_batch_size": "generate_options.batch_size",
    }
}


def retired_block_message(block: str, given: Mapping[str, Any] | None) -> str:
    """Why a retired parameter block is refused, with the new home of each key it sets."""
    moved = RETIRED_BLOCKS[block]
    keys = sorted(given or {}) or sorted(moved)
    where = "; ".join(f"{k} -> {moved.get(k, 'no longer a setting')}" for k in keys)
    return (
        f"the {block} block is gone: the benchmarks train with the train pipeline's node and blocks, set in "
        f"their environment (conf/<env>/parameters_benchmark.yml). Move its keys: {where}"
    )


#: Elements td-physics' structure labeller accepts (its parameter tables): crystals with others cannot be labelled.
LABELLER_ELEMENTS = supported_elements()


@dataclass(frozen=True)
class QualityFilterOptions(OptionsBlock):
    """The ``data_config.quality_filters`` block: what ingest refuses, for every source.

    The defaults keep every crystal of the Perov-5, Carbon-24 and MP-20 benchmark files (the
    duplicate filter aside, which keeps the first of each set of matching structures).
    """

    block: ClassVar[str] = "data_config.quality_filters"

    min_distance: float | None = 0.5  # Angstrom between two atoms, periodic images included (CDVAE; H2 has 0.74)
    min_volume_per_atom: float | None = 1.0  # Angstrom^3 per atom (diamond has 5.7); null turns it off
    composition_validity: bool = True  # SMACT charge neutrality + Pauling test (CDVAE's compositional validity)
    max_elements: int | None = None  # distinct elements per cell; null: no limit
    spacegroup: bool = True  # find the space group (spglib) and label it; cells spglib cannot analyse are refused
    symprec: float = 0.1  # Angstrom, spglib's tolerance (pymatgen's SpacegroupAnalyzer default)
    allowed_spacegroups: list[int] | None = None  # keep only these space-group numbers; null keeps all
    duplicates: bool = True  # drop structures pymatgen's StructureMatcher matches to an earlier one

    def __post_init__(self) -> None:
        b = self.block
        for name in ("min_distance", "min_volume_per_atom"):
            value = getattr(self, name)
            if value is not None and (not is_number(value) or value < 0):
                raise ParameterError(f"{b}.{name} must be a non-negative number (Angstrom) or null, got {value!r}")
        for name in ("composition_validity", "spacegroup", "duplicates"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(f"{b}.{name} must be true or false, got {getattr(self, name)!r}")
        m = self.max_elements
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ParameterError(f"{b}.max_elements must be a positive integer or null, got {m!r}")
        if not is_number(self.symprec) or not self.symprec > 0:
            raise ParameterError(f"{b}.symprec must be a positive distance in Angstrom, got {self.symprec!r}")
        allowed = self.allowed_spacegroups
        if allowed is not None:
            if not isinstance(allowed, (list, tuple)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 230 for n in allowed
            ):
                raise ParameterError(
                    f"{b}.allowed_spacegroups must be a list of numbers 1..230 or null, got {allowed!r}"
                )
            if not self.spacegroup:
                raise ParameterError(f"{b}.allowed_spacegroups needs {b}.spacegroup: true, got spacegroup: false")

    def quality_filter(self) -> QualityFilter:
        """The filters, cheapest first and the pairwise duplicate search last."""
        from td_data.filters import (
            CompositionValidityFilter,
            DuplicateFilter,
            PlausibilityFilter,
            QualityFilter,
            SizeFilter,
            SpaceGroupFilter,
        )

        filters: list[Any] = [PlausibilityFilter(self.min_distance, self.min_volume_per_atom)]
        if self.composition_validity:
            filters.append(CompositionValidityFilter())
        if self.max_elements is not None:
            filters.append(SizeFilter(max_elements=self.max_elements))
        if self.spacegroup:
            allowed = None if self.allowed_spacegroups is None else frozenset(self.allowed_spacegroups)
            filters.append(SpaceGroupFilter(symprec=self.symprec, allowed=allowed))
        if self.duplicates:
            filters.append(DuplicateFilter())
        return QualityFilter(tuple(filters))


@dataclass(frozen=True)
class DataConfig(OptionsBlock):
    """The ``data_config`` block of ``parameters_ingest.yml``."""

    block: ClassVar[str] = "data_config"

    source: str = "synthetic"  # synthetic | cif_folder | mp_export | benchmark_csv | store
    path: str | None = None  # file or folder for every source but synthetic
    n_samples: int = 300  # synthetic crystals to generate
    seed: int = 0  # generator seed (and split seed, see parameters_split.yml)
    max_atoms: int = 20  # larger cells are quarantined (the cpu-demo model takes at most this many)
    elements: str | list[str] | None = "labeller"  # "labeller", a list of symbols, or None = all
    fraction_2d: float = 0.1  # share of 2D sheets from the synthetic generator
    trusted: bool = False  # allow pickle files (never for files from others)
    quality_filters: Any = None  # QualityFilterOptions; a mapping from YAML, None: every default

    def __post_init__(self) -> None:
        if not isinstance(self.quality_filters, QualityFilterOptions):
            if self.quality_filters is not None and not isinstance(self.quality_filters, Mapping):
                raise ParameterError(f"data_config.quality_filters must be a mapping, got {self.quality_filters!r}")
            object.__setattr__(self, "quality_filters", QualityFilterOptions.from_dict(self.quality_filters))
        for name in ("n_samples", "seed", "max_atoms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ParameterError(f"data_config.{name} must be an integer, got {value!r}")
        if not isinstance(self.trusted, bool):
            raise ParameterError(f"data_config.trusted must be true or false, got {self.trusted!r}")
        if not is_number(self.fraction_2d) or not 0 <= self.fraction_2d <= 1:
            raise ParameterError(f"data_config.fraction_2d must be a number between 0 and 1, got {self.fraction_2d!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise ParameterError(f"data_config.path must be a file or folder name or null, got {self.path!r}")
        elements = self.elements
        if not (
            elements is None
            or elements == "labeller"
            or (isinstance(elements, (list, tuple)) and all(isinstance(e, str) for e in elements))
        ):
            raise ParameterError(
                f"data_config.elements must be 'labeller', a list of element symbols or null, got {elements!r}"
            )
        if self.source not in SOURCES:
            raise ParameterError(f"data_config.source must be one of {SOURCES}, got {self.source!r}")
        if self.source != "synthetic" and not self.path:
            raise ParameterError(f"data_config.path must name a file or folder for source {self.source!r}, got none")
        if self.n_samples < 1:
            raise ParameterError(f"data_config.n_samples must be at least 1, got {self.n_samples}")
        if self.max_atoms < 1:
            raise ParameterError(f"data_config.max_atoms must be at least 1, got {self.max_atoms}")

    @property
    def input_path(self) -> str | None:
        """The user's file or folder that the ``user_crystals`` dataset reads (None for ``synthetic``)."""
        return None if self.source == "synthetic" else self.path

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`td_data.load_materials_database` for the user's files.

        ``max_atoms`` lets the reader refuse an oversized CIF before parsing it; the plausibility limits are
        the quality filters' own, so a crushed crystal is set aside with the reader's reason.
        """
        limits = self.quality_filters
        return {
            "trusted": self.trusted,
            "max_atoms": self.max_atoms,
            "min_distance": limits.min_distance,
            "min_volume_per_atom": limits.min_volume_per_atom,
        }

    @property
    def allowed_elements(self) -> tuple[str, ...] | None:
        if self.elements == "labeller":
            return LABELLER_ELEMENTS
        if self.elements is None:
            return None
        return tuple(self.elements)


@dataclass(frozen=True)
class LabelConfig(OptionsBlock):
    """The ``label_options`` block of ``parameters_label.yml``."""

    block: ClassVar[str] = "label_options"

    max_records: int = 40  # label at most this many crystals (smallest cells first)
    max_atoms: int = 6  # and only cells with at most this many sites
    workers: int = 2  # worker processes
    spin_orbit: bool = True  # atomic lambda L.S on p shells (td-physics' computed table)
    spin_orbit_constants: dict[str, float] | None = None  # {symbol: lambda_p eV}, overrides the table
    gap_mesh: int | None = 6  # k-points per periodic axis for the gap search (None: td-physics' density mesh)
    metal_gap: float = 1e-3  # eV: smaller gaps count as closed
    max_band_overlap: float = 0.5  # eV: bands separated at every k but overlapping by less keep their invariant

    def classify_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`td_physics.classify.classify_structure`."""
        from td_physics.structure import DEFAULT_VARIANTS

        variants = [dataclasses.replace(v, spin_orbit=self.spin_orbit) for v in DEFAULT_VARIANTS]
        options: dict[str, Any] = {
            "variants": variants,
            "gap_mesh": self.gap_mesh,
            "metal_gap": self.metal_gap,
            "max_band_overlap": self.max_band_overlap,
        }
        if self.spin_orbit and self.spin_orbit_constants:
            options["spin_orbit_constants"] = dict(self.spin_orbit_constants)
        return options
